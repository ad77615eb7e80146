/*
 * vigie — the threshold alarm state machine (alarms/eval.c). Pure: no
 * I/O, no clock, no locks, so tests replay datapoints through it.
 *
 * Each evaluated thing (an alarm on one resource: an "instance") keeps the
 * last R = N + 2 datapoints (the evaluation range, as CloudWatch retrieves
 * five datapoints for a 3-out-of-3 alarm), its state, when the condition
 * last cleared while firing (keep-firing-for) and how many periods it has
 * been in alarm (repeat). After every closed period the engine pushes the
 * datapoint (value, or missing) and runs vg_alarm_eval_step, which decides:
 *
 *   range has >= N real datapoints   -> the N most recent real ones decide:
 *                                       >= M breaching: alarm, else ok
 *   no real datapoint in the range   -> missing: insufficient_data,
 *                                       ignore: keep state, breaching: alarm,
 *                                       not_breaching: ok
 *   1..N-1 real datapoints           -> breaching / not_breaching: fill the
 *                                       N - real slots and count;
 *                                       missing / ignore: >= M breaching:
 *                                       alarm; any real non-breaching: ok;
 *                                       otherwise (all real ones breach but
 *                                       fewer than M) missing gives alarm if
 *                                       none of them is among the last N
 *                                       periods, else insufficient_data;
 *                                       ignore keeps the state
 *
 * which reproduces every row of the two tables in CloudWatch's "How alarm
 * state is evaluated when data is missing" (tests/unit/alarm_eval_test.c
 * replays them). Then keep-firing-for holds alarm until the condition has
 * been clear for keep_firing_for seconds of sample time; a change of state
 * is a transition (notified); staying in alarm notifies again every K
 * periods when repeat is on.
 */
#ifndef VIGIE_ALARM_EVAL_H
#define VIGIE_ALARM_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "vigie/alarm.h"

#define VG_ALARM_RANGE_EXTRA 2 /* R = N + 2 */
#define VG_ALARM_REASON_MAX 512

/* The evaluation parameters of a threshold alarm (a view of its def). */
struct vg_alarm_params {
	uint32_t n, m; /* evaluation_periods, datapoints_to_alarm */
	int cmp;       /* enum vg_alarm_cmp */
	double threshold;
	int missing;     /* enum vg_alarm_missing */
	uint32_t repeat; /* periods, 0 = off */
	int64_t keep_firing_ms;
	int64_t period_ms;
	int statistic; /* for reasons only */
	double percentile;
};
void vg_alarm_params_from_def(struct vg_alarm_params *p,
			      const struct vg_alarm_def *d);

struct vg_alarm_point {
	int64_t start_ms; /* period start */
	double value;     /* NaN = missing */
};

/* Per-instance evaluation state. The ring holds the last cap datapoints,
 * oldest first from `head`. */
struct vg_alarm_eval {
	int state;              /* enum vg_alarm_state */
	int64_t since_ms;       /* when it entered state (sample time) */
	int64_t clear_since_ms; /* 0, or when the condition cleared in alarm */
	uint32_t alarm_periods; /* periods evaluated in alarm (repeat) */
	uint32_t cap, n, head;  /* ring capacity (R), fill, oldest index */
	int64_t last_start_ms;  /* start of the newest pushed period, or 0 */
	struct vg_alarm_point *ring;
};

/* Allocate the ring for R = p->n + 2. state = insufficient_data. 0 or
 * -ENOMEM. vg_alarm_eval_release frees the ring; both accept re-init. */
int vg_alarm_eval_init(struct vg_alarm_eval *e, const struct vg_alarm_params *p);
void vg_alarm_eval_release(struct vg_alarm_eval *e);
/* Forget the datapoints (definition changed), keep state. */
void vg_alarm_eval_reset(struct vg_alarm_eval *e);

/* Append the datapoint for the period starting at start_ms (value NaN =
 * missing). A period at or before the newest one is ignored (returns
 * -EALREADY). Empty periods between are NOT filled here. */
int vg_alarm_eval_push(struct vg_alarm_eval *e, int64_t start_ms, double value);

enum vg_alarm_notify_type {
	VG_NOTIFY_NONE = 0,
	VG_NOTIFY_TRANSITION = 1,
	VG_NOTIFY_REPEAT = 2,
};

/* What one evaluation decided. */
struct vg_alarm_decision {
	int notify; /* enum vg_alarm_notify_type */
	int previous, current;
	int raw;         /* what the datapoints alone said (-1: keep) */
	int kept_firing; /* alarm held by keep-firing-for */
	int64_t time_ms; /* end of the period that decided */
	char reason[VG_ALARM_REASON_MAX];
	json_t *reason_data; /* when notify: a new reference (NULL on out of
				memory), caller decrefs; else NULL */
};

/* Evaluate after the datapoint of the period ending at end_ms was pushed.
 * Updates e (state, since, clear_since, alarm_periods) and fills *d.
 * Returns d->notify. */
int vg_alarm_eval_step(const struct vg_alarm_params *p, struct vg_alarm_eval *e,
		       int64_t end_ms, struct vg_alarm_decision *d);
/* The same, for the engine's hot path: d->reason is built only when the
 * step notifies or want_reason is set (else d->reason is ""); d is not
 * cleared beyond the fields a step sets. vg_alarm_eval_reason then gives
 * the reason of the latest step on demand, identical to what the step
 * would have written, as long as nothing was pushed since. */
int vg_alarm_eval_decide(const struct vg_alarm_params *p, struct vg_alarm_eval *e,
			 int64_t end_ms, struct vg_alarm_decision *d, int want_reason);
void vg_alarm_eval_reason(const struct vg_alarm_params *p,
			  const struct vg_alarm_eval *e, char *out, size_t len);

/* Quiet steps (the engine does not write them, engine_queue.c). A state
 * is fillable when it is ok with no keep-firing clock and no periods in
 * alarm, and has at least one datapoint: from it, a good datapoint (real,
 * not breaching) for the period right after the newest that leaves the
 * state ok without a notification is a quiet step, which changes nothing
 * but the ring. 1 or 0. */
int vg_alarm_eval_fillable(const struct vg_alarm_eval *e);
/* Whether value v for the period starting at start_ms is a good datapoint
 * for the period right after e's newest (call before pushing it). */
int vg_alarm_eval_good_next(const struct vg_alarm_params *p,
			    const struct vg_alarm_eval *e, int64_t start_ms, double v);
/* For a fillable state restored from alarms.db whose next datapoint starts
 * at start_ms: the periods between its newest datapoint and start_ms are
 * quiet steps that were evaluated and not written. Appends a good
 * datapoint for each of them (at most the ring's capacity), so the next
 * decisions see what an uninterrupted engine saw: a good datapoint in
 * every period. The value appended is the ring's newest good value, or,
 * with none, the nearest value to the threshold that does not breach.
 * Nothing when start_ms is not after the next period. */
void vg_alarm_eval_fill_quiet(const struct vg_alarm_params *p, struct vg_alarm_eval *e,
			      int64_t start_ms);

/* Ring <-> bytes for alarms.db, so a restart keeps the datapoints: 16
 * bytes per point, oldest first (int64 start_ms, IEEE double value, NaN =
 * missing; host byte order, the file never leaves the machine). pack
 * returns the length (len >= 16 * cap suffices). unpack ignores a trailing
 * partial point and points beyond the capacity (oldest dropped). */
size_t vg_alarm_eval_ring_pack(const struct vg_alarm_eval *e, void *buf, size_t len);
void vg_alarm_eval_ring_unpack(struct vg_alarm_eval *e, const void *buf, size_t len);

#endif
