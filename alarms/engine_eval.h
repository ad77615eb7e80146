/*
 * vigie — the alarm engine's evaluation (alarms/engine_eval.c), as the
 * definitions (engine_defs.c) and the lifecycle (engine.c) use it.
 * Private to alarms/engine*.c; called with the engine's lock held.
 */
#ifndef VIGIE_ALARMS_ENGINE_EVAL_H
#define VIGIE_ALARMS_ENGINE_EVAL_H

#include "alarms/engine_state.h"

/* Instances: new (state insufficient_data, in a->insts) or NULL; free
 * (forgotten by the queue first). */
struct inst *vg_alarm_inst_new(struct alarm *a, const char *resource);
void vg_alarm_inst_free(struct vg_alarm_engine *e, struct inst *in);
void vg_alarm_free_insts(struct vg_alarm_engine *e, struct alarm *a);
/* Free an alarm with its instances, rule and definition; NULL is fine. */
void vg_alarm_free(struct vg_alarm_engine *e, struct alarm *a);
/* The alarm's state over its instances (any alarm -> alarm, any ok -> ok). */
int vg_alarm_aggregate(struct alarm *a);
/* After instances of a changed: update its aggregate and evaluate the
 * composites that name it. */
void vg_alarm_after_change(struct vg_alarm_engine *e, struct alarm *a, int64_t t,
			   int depth);
/* Evaluate composite c now (sample time t); notifies a transition. */
void vg_alarm_composite_eval(struct vg_alarm_engine *e, struct alarm *c, int64_t t,
			     int depth);
struct alarm *vg_alarm_by_name(struct vg_alarm_engine *e, const char *project,
			       const char *name);
/* The derived indexes: add one alarm, or rebuild all when gen moved. */
void vg_alarm_index_add(struct vg_alarm_engine *e, struct alarm *a);
void vg_alarm_reindex(struct vg_alarm_engine *e);
void vg_alarm_free_lists(struct vg_hmap *m);
void vg_alarm_series_free(struct series *s);
void vg_alarm_res_free(struct res_info *r);

/* Queue one "repeat" notification of in (in alarm) with reason, at t
 * (alarms/silence_end.c: a silence ended while it was firing). */
/* Evaluate one closed period's value v for instance in (owned): push,
 * decide, queue the state and any notification. A period the instance
 * evaluated before is ignored. */
void vg_alarm_inst_datapoint(struct vg_alarm_engine *e, struct inst *in,
			     int64_t start_ms, int64_t end_ms, double v);
/* Decide a group alarm's period kept in its shadow (a takeover). */
void vg_alarm_group_datapoint(struct vg_alarm_engine *e, struct inst *in,
			      const struct shadow_dp *dp);
/* Keep a datapoint of an alarm another node owns (engine_own.c): the
 * entry (members, reported, used zero; the caller may set them), or NULL
 * on out of memory. */
struct shadow_dp *vg_alarm_shadow_push(struct vg_alarm_engine *e, struct inst *in,
				       int64_t start_ms, int64_t end_ms, double v);

void vg_alarm_notify_still_firing(struct vg_alarm_engine *e, struct inst *in,
				  const char *reason, int64_t t);

#endif
