/*
 * vigie — per-series period statistics for alarm evaluation
 * (alarms/series.c).
 *
 * A window cuts one series' samples into periods aligned on the epoch
 * ([k*P, (k+1)*P) in sample time) and keeps, for the open period, the
 * count, sum, minimum, maximum and (when a percentile alarm needs them) the
 * raw values. A period is closed, and handed to a callback as a datapoint,
 * by whichever comes first:
 *  - a sample at or after its end (the event-driven path);
 *  - the series' own rhythm: the next sample is expected (last time +
 *    interval) at or after the end, so waiting would add nothing;
 *  - the timer: the series' data clock passed end + grace (missing data).
 * A period that saw no sample is handed out with count 0: a missing
 * datapoint. Samples in a period already closed are late: dropped and
 * counted. Time is whatever clock the samples carry, never the wall clock,
 * so tests replay hours in milliseconds.
 *
 * Counters are turned into rates before they reach a window
 * (vg_alarm_rate): delta value over delta time of consecutive samples; a
 * decrease (reset) or a non-increasing time gives no value.
 *
 * Not thread-safe: the engine serialises access.
 */
#ifndef VIGIE_ALARM_SERIES_H
#define VIGIE_ALARM_SERIES_H

#include <stddef.h>
#include <stdint.h>

#define VG_WINDOW_NONE INT64_MIN
#define VG_WINDOW_MAX_VALUES 8192 /* raw values kept per period (percentiles) */

struct vg_alarm_window {
	int64_t period_ms;
	int64_t start_ms;      /* open period, VG_WINDOW_NONE before any sample */
	int64_t closed_end_ms; /* samples before this are late */
	uint32_t count;
	double sum, min, max;
	int keep_values;
	double *values;
	uint32_t nvalues, capvalues;
	uint64_t late;           /* samples dropped as late */
	uint64_t values_dropped; /* beyond VG_WINDOW_MAX_VALUES */
};

/* One closed period. count == 0 means missing. values (sorted ascending)
 * are valid only during the callback and only with keep_values. */
struct vg_alarm_datapoint {
	int64_t start_ms, end_ms;
	uint32_t count;
	double sum, min, max;
	const double *values;
	uint32_t nvalues;
};

typedef void (*vg_alarm_period_fn)(void *ctx, const struct vg_alarm_datapoint *dp);

void vg_alarm_window_init(struct vg_alarm_window *w, int64_t period_ms,
			  int keep_values);
void vg_alarm_window_release(struct vg_alarm_window *w); /* frees values */

/* Add one value at time t. Periods that end at or before t are closed
 * first: the open one with what it holds, then one missing datapoint per
 * empty period in between (only the most recent max_gap of them: older
 * ones would fall out of every evaluation anyway). Returns 0, or
 * -EALREADY for a late value (counted, ignored). */
int vg_alarm_window_add(struct vg_alarm_window *w, int64_t t, double v,
			uint32_t max_gap, vg_alarm_period_fn fn, void *ctx);

/* Close the open period now if the next sample, expected at
 * next_expected_ms, will fall at or after its end. 1 if closed, else 0. */
int vg_alarm_window_close_if_complete(struct vg_alarm_window *w,
				      int64_t next_expected_ms,
				      vg_alarm_period_fn fn, void *ctx);

/* Timer: close every period whose end + grace_ms <= now_ms (missing ones
 * as count 0; at most max_gap of the most recent empty ones). Returns the
 * number of datapoints handed out. */
int vg_alarm_window_expire(struct vg_alarm_window *w, int64_t now_ms,
			   int64_t grace_ms, uint32_t max_gap,
			   vg_alarm_period_fn fn, void *ctx);

/* The statistic (enum vg_alarm_stat) of a datapoint; NaN when missing
 * (or a percentile without values). Percentiles interpolate linearly
 * between the closest ranks. */
double vg_alarm_statistic(const struct vg_alarm_datapoint *dp, int stat,
			  double pct);

/* Counter to rate. *prev_t and *prev_v hold the previous raw sample (prev_t
 * VG_WINDOW_NONE at first) and are updated. Returns 0 with *rate, or
 * -ENODATA (first sample, reset, time not increasing, non-finite). */
int vg_alarm_rate(int64_t *prev_t, double *prev_v, int64_t t, double v,
		  double *rate);

#endif
