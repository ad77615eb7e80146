/*
 * vigie — the alarm engine's persistence queue (alarms/engine_queue.c).
 * Private to alarms/engine*.c; every function is called with the engine's
 * lock held. Knows only the engine's structures (engine_state.h).
 */
#ifndef VIGIE_ALARMS_ENGINE_QUEUE_H
#define VIGIE_ALARMS_ENGINE_QUEUE_H

#include <jansson.h>

#include "alarms/engine_state.h"

/* A new zeroed pending entry, owned by the queue (NULL on out of memory).
 * At VG_ALARM_MAX_PENDING the oldest is dropped and counted. */
struct pending *vg_alarm_queue_add(struct vg_alarm_engine *e);
/* Queue a history row of alarm a; takes detail (decref'd). The entry, or
 * NULL on out of memory. */
struct pending *vg_alarm_queue_history(struct vg_alarm_engine *e, struct alarm *a,
				       const char *type, const char *resource,
				       int64_t t, json_t *detail);
/* Queue the deletion of an instance's state row. */
void vg_alarm_queue_delete_state(struct vg_alarm_engine *e, const char *alarm_id,
				 const char *resource);
/* The instance's state row is to be written (at most once per flush). */
void vg_alarm_queue_mark_dirty(struct vg_alarm_engine *e, struct inst *in);
/* Logged steps (engine_queue.c): append the evaluation of instance in
 * for the period [start_ms, end_ms) with value v to the step log of the
 * next flush, instead of rewriting its row. 0, or -errno when it cannot
 * be logged (the log is off, or full while the database fails): then
 * mark the instance dirty. Call only for an evaluation that changed
 * nothing but the ring (see the file's top). */
int vg_alarm_queue_log_step(struct vg_alarm_engine *e, struct inst *in,
			    int64_t start_ms, int64_t end_ms, double v);
/* At open, after the state rows: turn the log on for a node's own
 * alarms.db and replay its entries onto the instances (the first flush
 * then compacts it). 0 or the store's error. */
int vg_alarm_queue_log_load(struct vg_alarm_engine *e);
/* Forget a dirty instance before it is freed. */
void vg_alarm_queue_forget(struct vg_alarm_engine *e, struct inst *in);
/* Write everything queued in one transaction, then publish (SSE, log)
 * and wake the delivery thread. 0, or the store's error (everything kept
 * and retried at the next flush). */
int vg_alarm_queue_flush(struct vg_alarm_engine *e);
/* A notification was queued (its decision was just made). */
void vg_alarm_queue_noticed(struct vg_alarm_engine *e);
/* Between two decisions: flush now if a notification waits and has
 * waited at least as long as the previous early commit took (the first
 * at once), so a notification leaves long before its batch ends and
 * commits take at most about half the time of a burst. A failure turns
 * early commits off until vg_alarm_queue_batch_start. */
void vg_alarm_queue_commit_early(struct vg_alarm_engine *e);
void vg_alarm_queue_batch_start(struct vg_alarm_engine *e);
/* Free the queue (at close, after the last flush). */
void vg_alarm_queue_release(struct vg_alarm_engine *e);
void vg_alarm_pending_release(struct pending *p);
/* Inside the flush's transaction: drop the queued states and history of
 * alarms whose lease this node no longer holds (engine_own.c). 0 or
 * -errno (the flush is then retried). */
int vg_alarm_own_fence(struct vg_alarm_engine *e);

#endif
