/*
 * series.c — period statistics of one series, fed sample by sample
 * (alarms/series.h).
 *
 * Design: a window holds only the open period's aggregates; closing a
 * period calls back with a datapoint and resets them. Gaps are filled
 * with missing datapoints, bounded by max_gap (the evaluation range), so
 * a series silent for a year costs one callback per range, not per period.
 *
 * Invariants: closed_end_ms <= start_ms whenever start_ms is set; start_ms
 * is a multiple of period_ms; count/sum/min/max/values describe exactly the
 * samples accepted into [start_ms, start_ms + period_ms).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/alarm.h"
#include "alarms/series.h"

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t period_start(const struct vg_alarm_window *w, int64_t t)
{
	return floor_div(t, w->period_ms) * w->period_ms;
}

void vg_alarm_window_init(struct vg_alarm_window *w, int64_t period_ms,
			  int keep_values)
{
	memset(w, 0, sizeof(*w));
	w->period_ms = period_ms > 0 ? period_ms : 60000;
	w->start_ms = VG_WINDOW_NONE;
	w->closed_end_ms = VG_WINDOW_NONE;
	w->keep_values = keep_values;
}

void vg_alarm_window_release(struct vg_alarm_window *w)
{
	if (!w)
		return;
	free(w->values);
	w->values = NULL;
	w->nvalues = w->capvalues = 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Hand out the open period and open the next one. */
static void close_open(struct vg_alarm_window *w, vg_alarm_period_fn fn,
		       void *ctx)
{
	struct vg_alarm_datapoint dp = {
		.start_ms = w->start_ms,
		.end_ms = w->start_ms + w->period_ms,
		.count = w->count,
		.sum = w->sum,
		.min = w->min,
		.max = w->max,
	};

	if (w->keep_values && w->nvalues) {
		qsort(w->values, w->nvalues, sizeof(double), cmp_double);
		dp.values = w->values;
		dp.nvalues = w->nvalues;
	}
	if (fn)
		fn(ctx, &dp);
	w->closed_end_ms = dp.end_ms;
	w->start_ms = dp.end_ms;
	w->count = 0;
	w->sum = 0;
	w->min = w->max = 0;
	w->nvalues = 0;
}

/* Close the open period, then the empty ones up to (not including) the
 * period starting at upto (a multiple of period_ms > start_ms). */
static int close_until(struct vg_alarm_window *w, int64_t upto,
		       uint32_t max_gap, vg_alarm_period_fn fn, void *ctx)
{
	int n = 0;
	int64_t empty;

	close_open(w, fn, ctx);
	n++;
	empty = (upto - w->start_ms) / w->period_ms;
	if (empty > (int64_t)max_gap) {
		/* Skip the older empty periods without a callback. */
		w->start_ms = upto - (int64_t)max_gap * w->period_ms;
		empty = max_gap;
	}
	while (empty-- > 0) {
		close_open(w, fn, ctx);
		n++;
	}
	w->start_ms = upto;
	w->closed_end_ms = upto;
	return n;
}

int vg_alarm_window_add(struct vg_alarm_window *w, int64_t t, double v,
			uint32_t max_gap, vg_alarm_period_fn fn, void *ctx)
{
	int64_t ps = period_start(w, t);

	if (w->closed_end_ms != VG_WINDOW_NONE && t < w->closed_end_ms) {
		w->late++;
		return -EALREADY;
	}
	if (w->start_ms == VG_WINDOW_NONE)
		w->start_ms = ps;
	else if (ps > w->start_ms)
		close_until(w, ps, max_gap, fn, ctx);
	if (!w->count || v < w->min)
		w->min = v;
	if (!w->count || v > w->max)
		w->max = v;
	w->count++;
	w->sum += v;
	if (w->keep_values) {
		if (w->nvalues == w->capvalues &&
		    w->capvalues < VG_WINDOW_MAX_VALUES) {
			uint32_t cap = w->capvalues ? w->capvalues * 2 : 16;
			if (cap > VG_WINDOW_MAX_VALUES)
				cap = VG_WINDOW_MAX_VALUES;
			double *n = realloc(w->values, cap * sizeof(*n));
			if (n) {
				w->values = n;
				w->capvalues = cap;
			}
		}
		if (w->nvalues < w->capvalues)
			w->values[w->nvalues++] = v;
		else
			w->values_dropped++;
	}
	return 0;
}

int vg_alarm_window_close_if_complete(struct vg_alarm_window *w,
				      int64_t next_expected_ms,
				      vg_alarm_period_fn fn, void *ctx)
{
	if (w->start_ms == VG_WINDOW_NONE || !w->count)
		return 0;
	if (next_expected_ms < w->start_ms + w->period_ms)
		return 0;
	close_open(w, fn, ctx);
	return 1;
}

int vg_alarm_window_expire(struct vg_alarm_window *w, int64_t now_ms,
			   int64_t grace_ms, uint32_t max_gap,
			   vg_alarm_period_fn fn, void *ctx)
{
	int64_t k;

	if (w->start_ms == VG_WINDOW_NONE)
		return 0;
	if (now_ms - grace_ms < w->start_ms + w->period_ms)
		return 0;
	/* Periods entirely before now - grace are over. */
	k = floor_div(now_ms - grace_ms - w->start_ms, w->period_ms);
	return close_until(w, w->start_ms + k * w->period_ms, max_gap, fn, ctx);
}

double vg_alarm_statistic(const struct vg_alarm_datapoint *dp, int stat,
			  double pct)
{
	if (!dp->count)
		return NAN;
	switch (stat) {
	case VG_STAT_AVERAGE:
		return dp->sum / dp->count;
	case VG_STAT_MINIMUM:
		return dp->min;
	case VG_STAT_MAXIMUM:
		return dp->max;
	case VG_STAT_SUM:
		return dp->sum;
	case VG_STAT_SAMPLE_COUNT:
		return (double)dp->count;
	case VG_STAT_PERCENTILE: {
		if (!dp->nvalues)
			return NAN;
		double rank = pct / 100.0 * (dp->nvalues - 1);
		size_t lo = (size_t)floor(rank), hi = (size_t)ceil(rank);
		if (hi >= dp->nvalues)
			hi = dp->nvalues - 1;
		if (lo > hi)
			lo = hi;
		return dp->values[lo] +
		       (dp->values[hi] - dp->values[lo]) * (rank - (double)lo);
	}
	}
	return NAN;
}

int vg_alarm_rate(int64_t *prev_t, double *prev_v, int64_t t, double v,
		  double *rate)
{
	int64_t pt = *prev_t;
	double pv = *prev_v;

	if (!isfinite(v))
		return -ENODATA;
	if (pt != VG_WINDOW_NONE && t <= pt)
		return -ENODATA; /* a re-sent or out-of-order sample */
	*prev_t = t;
	*prev_v = v;
	if (pt == VG_WINDOW_NONE || v < pv)
		return -ENODATA; /* first sample, or a counter reset */
	*rate = (v - pv) / ((double)(t - pt) / 1000.0);
	return 0;
}
