/*
 * vigie — a group alarm's members and open periods in the database
 * (alarms/engine_gstate.c). Private to alarms/engine*.c; called with the
 * engine's lock held. Knows only the engine's structures and the store.
 */
#ifndef VIGIE_ALARMS_ENGINE_GSTATE_H
#define VIGIE_ALARMS_ENGINE_GSTATE_H

#include "alarms/engine_state.h"

/* The group state of a (a->grp), made empty on first use; NULL on out of
 * memory. */
struct group_acc *vg_alarm_gstate_get(struct alarm *a);
/* Free a->grp and forget it in the write queue; NULL a->grp is fine. */
void vg_alarm_gstate_free(struct vg_alarm_engine *e, struct alarm *a);

/* Add member's value v to open period p: 0, 1 when the member already
 * has a value in p (kept, v ignored), -ENOMEM. */
int vg_alarm_gstate_period_add(struct group_period *p, const char *member, double v);
/* Empty p (its buffers kept) and mark it unused. */
void vg_alarm_gstate_period_clear(struct group_period *p);

/* What changed, written at the next flush (owned alarms only; on a
 * cluster node that does not own a, nothing is recorded): a member
 * joined (join 1) or left (0); a value was added; the period starting at
 * start_ms was decided (its rows go). */
void vg_alarm_gstate_member(struct vg_alarm_engine *e, struct alarm *a,
			    const char *id, int join);
void vg_alarm_gstate_mark(struct vg_alarm_engine *e, struct alarm *a);
void vg_alarm_gstate_closed(struct vg_alarm_engine *e, struct alarm *a,
			    int64_t start_ms);

/* Inside the flush's transaction, after the fence (engine_own.c, which
 * drops the alarms whose lease is gone from e->gdirty): write the queued
 * member changes and values. 0 or the store's error. */
int vg_alarm_gstate_write(struct vg_alarm_engine *e);
/* After the transaction: committed (1) empties the queue; not (0) keeps
 * it for the next flush. */
void vg_alarm_gstate_after_commit(struct vg_alarm_engine *e, int committed);

/* Read the stored members and open periods of one group alarm (or of
 * every one: alarm_id NULL) into memory, after its states: members
 * missing in memory are added, values of a period the "" instance already
 * evaluated are skipped, others join their open period unless memory
 * already has one from the member or the period is before memory's
 * oldest open one. 0 or the store's error. */
int vg_alarm_gstate_load(struct vg_alarm_engine *e, const char *alarm_id);
/* This node took group alarm a over: rewrite its rows from memory at the
 * next flush (every member, every open value; the rows of periods before
 * the oldest open one deleted), since memory may hold what the previous
 * owner never wrote. */
void vg_alarm_gstate_adopt(struct vg_alarm_engine *e, struct alarm *a);

#endif
