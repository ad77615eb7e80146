/*
 * vigie — grouped notifications of the alarm engine (alarms/group.c):
 * many notifications with equal group_by labels sent as one.
 * Internal to the engine; called under the engine's lock, inside the
 * transaction of vg_alarm_queue_flush (alarms/engine_queue.c).
 */
#ifndef VIGIE_ALARM_GROUP_H
#define VIGIE_ALARM_GROUP_H

#include "alarms/engine_state.h"

/* Members read into one group notification at most; the rest follow in
 * the next one, at the next flush. */
#define VG_ALARM_GROUP_MEMBERS_MAX 1000

/* Whether a's notifications to action are grouped: the alarm has
 * notify_group and the action is a webhook or the log. */
int vg_alarm_group_applies(const struct alarm *a, const char *action);

/* Add p's notification (p->body) to the group of a and action at wall
 * time now_ms, inside the caller's transaction: the group's row is
 * created or its flush time kept, and the member stored. 0 or -errno
 * (the caller rolls back). */
int vg_alarm_group_add(struct vg_alarm_engine *e, const struct alarm *a,
		       const struct pending *p, const char *action, int64_t now_ms);

/* Whether a group may be due at now_ms (an in-memory hint; the database
 * decides). */
int vg_alarm_group_maybe_due(const struct vg_alarm_engine *e, int64_t now_ms);

/* Send the groups due at now_ms, inside the caller's transaction: per
 * group, one outbox row holding every member (or one log line, kept for
 * vg_alarm_group_after_commit), the members deleted and the flush taken,
 * all in the same transaction. *wake = 1 when an outbox row was added. */
int vg_alarm_group_flush_due(struct vg_alarm_engine *e, int64_t now_ms, int *wake);

/* After the transaction: committed (1) writes the group log lines; not
 * (0) drops them and makes the next flush look at the database again. */
void vg_alarm_group_after_commit(struct vg_alarm_engine *e, int committed);

/* Load the next flush time at start (0 or -errno). */
int vg_alarm_group_load(struct vg_alarm_engine *e);

#endif
