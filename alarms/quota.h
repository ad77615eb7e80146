/*
 * vigie — per-project limits of the alarm engine (alarms/quota.c):
 * alarms, webhook destinations, and notifications per minute. Called by
 * the engine under its lock (engine_defs.c on create/update,
 * engine_queue.c on every notification it commits).
 */
#ifndef VIGIE_ALARM_QUOTA_H
#define VIGIE_ALARM_QUOTA_H

#include <stdint.h>

#include <jansson.h>

#include "alarms/engine_state.h"

#define VG_QUOTA_ALARMS 1000 /* default [alarms] max_alarms_per_project */
#define VG_QUOTA_WEBHOOKS 20 /* default max_webhooks_per_project */

/* Whether project-scoped d (replacing `old`, NULL on create) fits the
 * project's limits: 0, or -EDQUOT with one entry in *errors (created if
 * NULL) naming the limit and its configuration key. */
int vg_alarm_quota_check_def(struct vg_alarm_engine *e, const struct vg_alarm_def *d,
			     const struct alarm *old, json_t **errors);

/* Take one notification of project at wall time now_ms from its budget
 * (max_notifications_per_minute; 0 = no limit, the default): 0 allowed, -EDQUOT over max_notifications_per_minute (the caller
 * records it instead of notifying). Budgets are a token bucket per
 * project refilled continuously; at most 4096 projects are tracked
 * (beyond, every bucket starts over full: a bound on memory). */
int vg_alarm_quota_take_notification(struct vg_alarm_engine *e, const char *project,
				     int64_t now_ms);
/* How long until project has a notification in its budget again at
 * now_ms (0: it has one, or no limit): for Retry-After. */
int64_t vg_alarm_quota_wait_ms(struct vg_alarm_engine *e, const char *project,
			       int64_t now_ms);
void vg_alarm_quota_release(struct vg_alarm_engine *e);

#endif
