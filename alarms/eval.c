/*
 * eval.c — the threshold alarm state machine (alarms/eval.h).
 *
 * Transitions, decided after each closed period (see the header for how
 * the datapoints give a raw verdict):
 *
 *   from \ raw         ok              alarm            insufficient     keep (-1)
 *   insufficient_data  -> ok (notify)  -> alarm (notify) stay             stay
 *   ok                 stay            -> alarm (notify) -> insuff (notify) stay
 *   alarm              -> ok (notify)* stay (repeat)    -> insuff (notify)* stay (repeat)
 *
 *   * unless keep_firing_for holds the alarm: the transition waits until
 *     the condition has been clear for keep_firing_for of sample time.
 *   repeat: in alarm, every K-th evaluated period notifies again.
 *
 * Invariants: the ring holds at most cap = N + 2 datapoints in strictly
 * increasing period order; since_ms only moves on a transition; a
 * decision never notifies twice for one period (the engine pushes each
 * period once).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alarms/eval.h"
#include "vigie/clock.h"

void vg_alarm_params_from_def(struct vg_alarm_params *p,
			      const struct vg_alarm_def *d)
{
	memset(p, 0, sizeof(*p));
	p->n = d->evaluation_periods ? d->evaluation_periods : 1;
	p->m = d->datapoints_to_alarm ? d->datapoints_to_alarm : p->n;
	p->cmp = d->comparison;
	p->threshold = d->threshold;
	p->missing = d->missing;
	p->repeat = d->repeat_periods;
	p->keep_firing_ms = (int64_t)d->keep_firing_for_s * 1000;
	p->period_ms = (int64_t)(d->period_s ? d->period_s : 60) * 1000;
	p->statistic = d->statistic;
	p->percentile = d->percentile;
}

int vg_alarm_eval_init(struct vg_alarm_eval *e, const struct vg_alarm_params *p)
{
	uint32_t cap = p->n + VG_ALARM_RANGE_EXTRA;

	memset(e, 0, sizeof(*e));
	e->state = VG_ALARM_INSUFFICIENT_DATA;
	e->ring = calloc(cap, sizeof(*e->ring));
	if (!e->ring)
		return -ENOMEM;
	e->cap = cap;
	return 0;
}

void vg_alarm_eval_release(struct vg_alarm_eval *e)
{
	if (!e)
		return;
	free(e->ring);
	e->ring = NULL;
	e->cap = e->n = e->head = 0;
}

void vg_alarm_eval_reset(struct vg_alarm_eval *e)
{
	e->n = e->head = 0;
	e->last_start_ms = 0;
	e->clear_since_ms = 0;
	e->alarm_periods = 0;
}

int vg_alarm_eval_push(struct vg_alarm_eval *e, int64_t start_ms, double value)
{
	if (e->n && start_ms <= e->last_start_ms)
		return -EALREADY;
	if (!e->cap)
		return -EINVAL;
	if (e->n < e->cap) {
		e->ring[(e->head + e->n) % e->cap] =
			(struct vg_alarm_point){start_ms, value};
		e->n++;
	} else {
		e->ring[e->head] = (struct vg_alarm_point){start_ms, value};
		e->head = (e->head + 1) % e->cap;
	}
	e->last_start_ms = start_ms;
	return 0;
}

/* ---- the verdict -------------------------------------------------------- */

struct verdict {
	int raw;         /* state, or -1 = keep the current one */
	uint32_t nreal;  /* real datapoints in the range */
	uint32_t used;   /* real datapoints evaluated */
	uint32_t filled; /* missing datapoints filled by the treatment */
	uint32_t breaching;
	int why; /* enum below, for the reason */
	const struct vg_alarm_point *pts[VG_ALARM_MAX_N + VG_ALARM_RANGE_EXTRA];
};

enum {
	WHY_FULL,          /* >= N real datapoints */
	WHY_NONE,          /* no datapoint in the range */
	WHY_FILLED,        /* some real, rest filled by breaching/not_breaching */
	WHY_PARTIAL_OK,    /* missing/ignore: some real; enough or a good one */
	WHY_PARTIAL_WAIT,  /* missing: all real breach, too few, recent */
	WHY_PARTIAL_STALE, /* missing: all real breach, none in the last N */
	WHY_PARTIAL_KEEP,  /* ignore: all real breach, too few */
};

static void judge(const struct vg_alarm_params *p, const struct vg_alarm_eval *e,
		  struct verdict *v)
{
	uint32_t R = e->cap, N = p->n, M = p->m;
	const struct vg_alarm_point *real[VG_ALARM_MAX_N + VG_ALARM_RANGE_EXTRA];
	uint32_t nreal = 0, recent = 0, good = 0;
	int64_t newest = e->last_start_ms;
	int64_t oldest_in_range = newest - (int64_t)(R - 1) * p->period_ms;
	int64_t oldest_recent = newest - (int64_t)(N - 1) * p->period_ms;

	memset(v, 0, sizeof(*v));
	for (uint32_t i = 0; i < e->n; i++) {
		const struct vg_alarm_point *pt = &e->ring[(e->head + i) % e->cap];
		if (pt->start_ms < oldest_in_range || isnan(pt->value))
			continue;
		real[nreal++] = pt;
		if (pt->start_ms >= oldest_recent)
			recent++;
	}
	v->nreal = nreal;
	if (nreal >= N) {
		v->why = WHY_FULL;
		v->used = N;
		for (uint32_t i = 0; i < N; i++) {
			v->pts[i] = real[nreal - N + i];
			v->breaching += vg_alarm_compare(p->cmp, v->pts[i]->value,
							 p->threshold);
		}
		v->raw = v->breaching >= M ? VG_ALARM_ALARM : VG_ALARM_OK;
		return;
	}
	v->used = nreal;
	for (uint32_t i = 0; i < nreal; i++) {
		v->pts[i] = real[i];
		if (vg_alarm_compare(p->cmp, real[i]->value, p->threshold))
			v->breaching++;
		else
			good++;
	}
	if (nreal == 0) {
		v->why = WHY_NONE;
		v->filled = N;
		switch (p->missing) {
		case VG_MISSING_BREACHING:
			v->breaching = N;
			v->raw = VG_ALARM_ALARM;
			break;
		case VG_MISSING_NOT_BREACHING:
			v->raw = VG_ALARM_OK;
			break;
		case VG_MISSING_IGNORE:
			v->raw = -1;
			break;
		default:
			v->raw = VG_ALARM_INSUFFICIENT_DATA;
			break;
		}
		return;
	}
	switch (p->missing) {
	case VG_MISSING_BREACHING:
	case VG_MISSING_NOT_BREACHING:
		v->why = WHY_FILLED;
		v->filled = N - nreal;
		if (p->missing == VG_MISSING_BREACHING)
			v->breaching += v->filled;
		v->raw = v->breaching >= M ? VG_ALARM_ALARM : VG_ALARM_OK;
		return;
	default:
		break;
	}
	if (v->breaching >= M || good) {
		v->why = WHY_PARTIAL_OK;
		v->raw = v->breaching >= M ? VG_ALARM_ALARM : VG_ALARM_OK;
	} else if (p->missing == VG_MISSING_IGNORE) {
		v->why = WHY_PARTIAL_KEEP;
		v->raw = -1;
	} else if (recent) {
		v->why = WHY_PARTIAL_WAIT;
		v->raw = VG_ALARM_INSUFFICIENT_DATA;
	} else {
		v->why = WHY_PARTIAL_STALE;
		v->raw = VG_ALARM_ALARM;
	}
}

/* ---- reasons -------------------------------------------------------------- */

struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->len + 1 >= b->cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	b->len += (size_t)n;
	if (b->len >= b->cap)
		b->len = b->cap - 1;
}

static void sb_values(struct sbuf *b, const struct verdict *v)
{
	char num[48];

	sb_printf(b, "[");
	for (uint32_t i = 0; i < v->used; i++) {
		if (b->len + 40 >= b->cap - 120) { /* leave room for the rest */
			sb_printf(b, "%s...", i ? ", " : "");
			break;
		}
		sb_printf(b, "%s%s", i ? ", " : "",
			  vg_alarm_format_value(v->pts[i]->value, num, sizeof(num)));
	}
	for (uint32_t i = 0; i < v->filled && v->why == WHY_FILLED; i++)
		sb_printf(b, "%smissing", v->used || i ? ", " : "");
	sb_printf(b, "]");
}

static const char *plural(uint32_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static void make_reason(const struct vg_alarm_params *p, const struct verdict *v,
			char *out, size_t len)
{
	struct sbuf b = {out, 0, len};
	char thr[48];
	const char *words = vg_alarm_cmp_words(p->cmp);
	uint32_t shown = v->used + (v->why == WHY_FILLED ? v->filled : 0);
	uint32_t R = p->n + VG_ALARM_RANGE_EXTRA;

	out[0] = '\0';
	vg_alarm_format_value(p->threshold, thr, sizeof(thr));
	switch (v->why) {
	case WHY_FULL:
	case WHY_FILLED:
	case WHY_PARTIAL_OK:
		if (v->raw == VG_ALARM_ALARM)
			sb_printf(&b, "%u out of the last %u %s ", v->breaching,
				  shown, plural(shown, "datapoint", "datapoints"));
		else
			sb_printf(&b, "only %u out of the last %u %s ",
				  v->breaching, shown,
				  plural(shown, "datapoint", "datapoints"));
		sb_values(&b, v);
		sb_printf(&b, " %s %s the threshold (%s)",
			  plural(v->breaching, "was", "were"), words, thr);
		if (v->raw != VG_ALARM_ALARM)
			sb_printf(&b, ", %u needed for alarm", p->m);
		if (v->why == WHY_FILLED)
			sb_printf(&b, " (%u missing %s treated as %s)", v->filled,
				  plural(v->filled, "datapoint", "datapoints"),
				  p->missing == VG_MISSING_BREACHING
					  ? "breaching"
					  : "not breaching");
		else if (v->why == WHY_PARTIAL_OK && v->used < p->n)
			sb_printf(&b, " (%u of the last %u periods had no data)",
				  R - v->nreal, R);
		break;
	case WHY_NONE:
		sb_printf(&b, "no datapoints in the last %u periods", R);
		if (p->missing == VG_MISSING_BREACHING)
			sb_printf(&b, "; missing data is treated as breaching");
		else if (p->missing == VG_MISSING_NOT_BREACHING)
			sb_printf(&b, "; missing data is treated as not breaching");
		else if (p->missing == VG_MISSING_IGNORE)
			sb_printf(&b, "; missing data is ignored, state kept");
		break;
	case WHY_PARTIAL_WAIT:
	case WHY_PARTIAL_KEEP:
		sb_printf(&b, "%u out of the last %u %s ", v->breaching, v->used,
			  plural(v->used, "datapoint", "datapoints"));
		sb_values(&b, v);
		sb_printf(&b, " %s %s the threshold (%s), but %u %s needed and "
			      "%u of the last %u periods had no data",
			  plural(v->breaching, "was", "were"), words, thr, p->m,
			  plural(p->m, "is", "are"), R - v->nreal, R);
		if (v->why == WHY_PARTIAL_KEEP)
			sb_printf(&b, "; missing data is ignored, state kept");
		break;
	case WHY_PARTIAL_STALE:
		sb_printf(&b, "no datapoints in the last %u periods; the %u "
			      "before ",
			  p->n, v->used);
		sb_values(&b, v);
		sb_printf(&b, " %s %s the threshold (%s)",
			  plural(v->breaching, "was", "were"), words, thr);
		break;
	}
}

static json_t *reason_data(const struct vg_alarm_params *p,
			   const struct verdict *v, int kept)
{
	json_t *o = json_object(), *pts = json_array();
	char ts[32], stat[VG_ALARM_STAT_NAME_MAX];

	if (!o || !pts) {
		json_decref(o);
		json_decref(pts);
		return NULL;
	}
	for (uint32_t i = 0; i < v->used; i++) {
		vg_time_format(v->pts[i]->start_ms, ts, sizeof(ts));
		json_array_append_new(pts, json_pack("{s:s,s:I,s:f}", "time", ts,
						     "time_ms",
						     (json_int_t)v->pts[i]->start_ms,
						     "value", v->pts[i]->value));
	}
	json_object_set_new(o, "type", json_string("threshold"));
	json_object_set_new(o, "datapoints", pts);
	json_object_set_new(o, "breaching", json_integer(v->breaching));
	json_object_set_new(o, "evaluated", json_integer(v->used + v->filled));
	json_object_set_new(o, "missing_filled", json_integer(v->filled));
	json_object_set_new(o, "real_in_range", json_integer(v->nreal));
	json_object_set_new(o, "range", json_integer(p->n + VG_ALARM_RANGE_EXTRA));
	json_object_set_new(o, "datapoints_to_alarm", json_integer(p->m));
	json_object_set_new(o, "evaluation_periods", json_integer(p->n));
	json_object_set_new(o, "comparison", json_string(vg_alarm_cmp_name(p->cmp)));
	json_object_set_new(o, "threshold", json_real(p->threshold));
	json_object_set_new(o, "statistic",
			    json_string(vg_alarm_stat_name(p->statistic,
							   p->percentile, stat,
							   sizeof(stat))));
	json_object_set_new(o, "period", json_integer(p->period_ms / 1000));
	json_object_set_new(o, "missing_data",
			    json_string(vg_alarm_missing_name(p->missing)));
	json_object_set_new(o, "kept_firing", json_boolean(kept));
	return o;
}

/* The reason of verdict v, with the keep-firing note when the alarm was
 * held (clear_since_ms: when the condition cleared). */
static void reason_of(const struct vg_alarm_params *p, const struct verdict *v,
		      int kept, int64_t clear_since_ms, char *out, size_t len)
{
	make_reason(p, v, out, len);
	if (kept) {
		char ts[32];
		size_t n = strlen(out);
		vg_time_format(clear_since_ms, ts, sizeof(ts));
		snprintf(out + n, len - n,
			 "; still firing: keep_firing_for %lld s since "
			 "the condition cleared at %s",
			 (long long)(p->keep_firing_ms / 1000), ts);
	}
}

int vg_alarm_eval_decide(const struct vg_alarm_params *p, struct vg_alarm_eval *e,
			 int64_t end_ms, struct vg_alarm_decision *d, int want_reason)
{
	struct verdict v;
	int next;

	d->notify = VG_NOTIFY_NONE;
	d->kept_firing = 0;
	d->reason[0] = '\0';
	d->reason_data = NULL;
	judge(p, e, &v);
	d->raw = v.raw;
	d->previous = e->state;
	d->time_ms = end_ms;
	next = v.raw < 0 ? e->state : v.raw;

	if (e->state == VG_ALARM_ALARM && next != VG_ALARM_ALARM && v.raw >= 0 &&
	    p->keep_firing_ms > 0) {
		if (!e->clear_since_ms)
			e->clear_since_ms = end_ms;
		if (end_ms - e->clear_since_ms < p->keep_firing_ms) {
			next = VG_ALARM_ALARM;
			d->kept_firing = 1;
		}
	}
	int64_t cleared = e->clear_since_ms;
	if (v.raw == VG_ALARM_ALARM)
		e->clear_since_ms = 0;

	d->current = next;
	if (next != e->state) {
		e->state = next;
		e->since_ms = end_ms;
		e->alarm_periods = 0;
		e->clear_since_ms = 0;
		d->notify = VG_NOTIFY_TRANSITION;
	} else if (next == VG_ALARM_ALARM) {
		e->alarm_periods++;
		if (p->repeat && e->alarm_periods % p->repeat == 0)
			d->notify = VG_NOTIFY_REPEAT;
	}
	/* the text and the data behind a reason cost more than the decision
	 * itself: built only when someone is told (or asked for) */
	if (want_reason || d->notify)
		reason_of(p, &v, d->kept_firing, cleared, d->reason, sizeof(d->reason));
	if (d->notify)
		d->reason_data = reason_data(p, &v, d->kept_firing);
	return d->notify;
}

int vg_alarm_eval_step(const struct vg_alarm_params *p, struct vg_alarm_eval *e,
		       int64_t end_ms, struct vg_alarm_decision *d)
{
	memset(d, 0, sizeof(*d));
	return vg_alarm_eval_decide(p, e, end_ms, d, 1);
}

void vg_alarm_eval_reason(const struct vg_alarm_params *p,
			  const struct vg_alarm_eval *e, char *out, size_t len)
{
	struct verdict v;
	int kept;

	judge(p, e, &v);
	/* held by keep-firing-for: the step left the state in alarm while
	 * the datapoints said otherwise, with the clearing time kept */
	kept = e->state == VG_ALARM_ALARM && v.raw >= 0 && v.raw != VG_ALARM_ALARM &&
	       p->keep_firing_ms > 0 && e->clear_since_ms;
	reason_of(p, &v, kept, e->clear_since_ms, out, len);
}

/* ---- quiet steps (not written, filled in at a restore) ------------------------ */

int vg_alarm_eval_fillable(const struct vg_alarm_eval *e)
{
	return e->state == VG_ALARM_OK && !e->clear_since_ms && !e->alarm_periods &&
	       e->n && e->cap;
}

int vg_alarm_eval_good_next(const struct vg_alarm_params *p,
			    const struct vg_alarm_eval *e, int64_t start_ms, double v)
{
	return e->n && start_ms == e->last_start_ms + p->period_ms && !isnan(v) &&
	       !vg_alarm_compare(p->cmp, v, p->threshold);
}

/* A good value to fill with (see the header). */
static double fill_value(const struct vg_alarm_params *p, const struct vg_alarm_eval *e)
{
	for (uint32_t i = e->n; i-- > 0;) {
		double v = e->ring[(e->head + i) % e->cap].value;
		if (!isnan(v) && !vg_alarm_compare(p->cmp, v, p->threshold))
			return v;
	}
	switch (p->cmp) {
	case VG_CMP_GE:
		return nextafter(p->threshold, -INFINITY);
	case VG_CMP_LE:
	case VG_CMP_EQ:
		return nextafter(p->threshold, INFINITY);
	default: /* gt, lt, ne: the threshold itself does not breach */
		return p->threshold;
	}
}

void vg_alarm_eval_fill_quiet(const struct vg_alarm_params *p, struct vg_alarm_eval *e,
			      int64_t start_ms)
{
	int64_t from, missed;
	double v;

	if (!e->n || !e->cap || p->period_ms <= 0 ||
	    start_ms <= e->last_start_ms + p->period_ms)
		return;
	v = fill_value(p, e);
	from = e->last_start_ms + p->period_ms;
	missed = (start_ms - from) / p->period_ms;
	if (missed > (int64_t)e->cap) /* older ones leave the ring anyway */
		from = start_ms - (int64_t)e->cap * p->period_ms;
	for (int64_t t = from; t < start_ms; t += p->period_ms)
		vg_alarm_eval_push(e, t, v);
}

/* ---- persistence of the ring ------------------------------------------------ */

size_t vg_alarm_eval_ring_pack(const struct vg_alarm_eval *e, void *buf, size_t len)
{
	unsigned char *b = buf;
	size_t n = 0;

	for (uint32_t i = 0; i < e->n && n + 16 <= len; i++) {
		const struct vg_alarm_point *pt = &e->ring[(e->head + i) % e->cap];
		memcpy(b + n, &pt->start_ms, 8);
		memcpy(b + n + 8, &pt->value, 8);
		n += 16;
	}
	return n;
}

void vg_alarm_eval_ring_unpack(struct vg_alarm_eval *e, const void *buf, size_t len)
{
	const unsigned char *b = buf;

	e->n = e->head = 0;
	e->last_start_ms = 0;
	for (size_t n = 0; n + 16 <= len; n += 16) {
		int64_t t;
		double v;
		memcpy(&t, b + n, 8);
		memcpy(&v, b + n + 8, 8);
		vg_alarm_eval_push(e, t, v);
	}
}
