/*
 * api_publish.c — POST /v1/measures: a project publishes its own measures
 * (CloudWatch's PutMetricData, Gnocchi's POST measures), for its
 * instances and for custom resources it creates by writing to them.
 *
 * Design. The worker thread parses the JSON body, checks every point with
 * the rules an agent batch meets (names as vg_name_valid, the wire
 * decoder's rule; finite values; no time before 1970-01-02 or beyond
 * now + max_future; and, as the store would only drop them, none older
 * than the longest archive) plus one of its own: a counter's value is a
 * total, never negative. It sorts the points by (resource, time, metric,
 * place in the request), takes them from the project's points-per-second
 * bucket and drops every point of a series at a time an earlier point of
 * the request has (answered as a duplicate, as the store would: so the
 * first one is the value everywhere, file, last value, alarms). Then one
 * job on the receiver thread (vg_receiver_submit) does what needs the
 * registry and the store, in the order agent batches are handled, so no
 * other write can slip between the check and the write:
 *   - each resource: absent -> created as type "custom" of the project;
 *     the project's instance or custom resource -> its identity (host,
 *     name, parent, project, user, flavor) is copied from the registry,
 *     so the registry and the billing meter see it unchanged; another
 *     project's resource, or an agent's disk, nic or host -> 403;
 *   - each series: a kind other than the stored one -> 409; a unit other
 *     than the stored one -> 409 (none stored: the request sets it); a
 *     catalogue metric of an instance (the agent writes it, with the
 *     catalogue's unit) -> 403; new series past the project's
 *     publish_series_max -> 429;
 *   - one vg_batch per host handed to vg_receiver_inject_batch: the same
 *     dispatch chain as agent batches (store, registry, billing, alarms,
 *     the PUB stream: a batch the store refuses reaches no other, so a
 *     503 leaves no resource, metric row or last value), marked published: values, never an observation
 *     of the resource (the meter skips it, the alarm engine's host clock
 *     and agent_silent ignore it). 2xx only when every batch returned 0, i.e. every
 *     value is journaled (fdatasync) like an acknowledged agent batch;
 *   - then the units the request gives to series that had none
 *     (vg_registry_set_unit: a batch carries no unit outside the
 *     catalogue, and the registry keeps a stored one).
 *
 * Invariants: a request is all or nothing up to the writes (any refused
 * point refuses the request before anything is written); a 503 after a
 * partial write is safe to resend, as points at or before a series' last
 * update are skipped and reported as duplicates (the store's rule); the
 * series counts (struct vg_pub_state.series) are touched only on the
 * receiver thread, the buckets under their lock; they are made again from
 * the registry after an agent's report took a custom resource over (its
 * metric rows dropped: vg_registry_custom_drops, summed over every
 * collector of the state, whichever took the report), so the series a
 * project lost no longer count against its limit.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "query/api/api_handlers.h"
#include "query/api/api_publish.h"
#include "vigie/batch.h"
#include "vigie/catalog.h"
#include "vigie/clock.h"
#include "vigie/hmap.h"
#include "vigie/name.h"
#include "vigie/receiver.h"

#define DEFAULT_POINTS_PER_S 1000000
#define DEFAULT_SERIES_MAX 10000
#define MIN_TIME_MS (86400 * 1000LL) /* as the receiver: 1970-01-02 */
#define PUB_HOST "api"               /* the host of a custom resource */
#define MAX_BUCKETS 4096

struct bucket {
	double tokens;
	int64_t at_ms;
};

struct vg_pub_state {
	uint32_t rate, series_max;
	pthread_mutex_t lock;   /* guards buckets */
	struct vg_hmap buckets; /* project -> struct bucket */
	struct vg_hmap series;  /* project -> uint64_t count; receiver thread */
	/* the state's vg_registry_custom_drops when series was last valid:
	 * an agent's takeover of a custom resource drops its metric rows,
	 * on whichever collector took the report, and the counts are then
	 * recounted; receiver thread */
	uint64_t dropped_seen;
};

struct vg_pub_state *vg_pub_state_new(uint32_t points_per_s, uint32_t series_max)
{
	struct vg_pub_state *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->rate = points_per_s ? points_per_s : DEFAULT_POINTS_PER_S;
	s->series_max = series_max ? series_max : DEFAULT_SERIES_MAX;
	pthread_mutex_init(&s->lock, NULL);
	vg_hmap_init(&s->buckets);
	vg_hmap_init(&s->series);
	return s;
}

static void free_values(struct vg_hmap *m)
{
	const struct vg_hmap_entry *e;
	size_t pos = 0;

	while ((e = vg_hmap_next(m, &pos)))
		free(e->value);
	vg_hmap_release(m);
}

void vg_pub_state_free(struct vg_pub_state *s)
{
	if (!s)
		return;
	free_values(&s->buckets);
	free_values(&s->series);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int vg_pub_take(struct vg_pub_state *s, const char *project, uint32_t n,
		int64_t now_ms, uint32_t *retry_s)
{
	struct bucket *b;
	int rc = 0;

	*retry_s = 0;
	if (n > s->rate)
		return -E2BIG;
	pthread_mutex_lock(&s->lock);
	b = vg_hmap_gets(&s->buckets, project);
	if (!b) {
		if (vg_hmap_count(&s->buckets) >= MAX_BUCKETS)
			free_values(&s->buckets), vg_hmap_init(&s->buckets);
		if (!(b = malloc(sizeof(*b))) ||
		    vg_hmap_puts(&s->buckets, project, b)) {
			free(b);
			pthread_mutex_unlock(&s->lock);
			return -ENOMEM;
		}
		b->tokens = s->rate;
		b->at_ms = now_ms;
	}
	if (now_ms > b->at_ms) {
		b->tokens += (double)(now_ms - b->at_ms) * s->rate / 1000.0;
		if (b->tokens > s->rate)
			b->tokens = s->rate;
		b->at_ms = now_ms;
	}
	if (b->tokens >= n) {
		b->tokens -= n;
	} else {
		double missing = n - b->tokens;
		*retry_s = (uint32_t)ceil(missing / s->rate);
		if (!*retry_s)
			*retry_s = 1;
		rc = -EAGAIN;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* ---- one point ------------------------------------------------------------ */

static int text_field(json_t *o, const char *key, int required, const char **out,
		      char *err, size_t errlen)
{
	json_t *v = json_object_get(o, key);

	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required)
			snprintf(err, errlen, "missing \"%s\"", key);
		return required ? -EINVAL : 0;
	}
	if (!json_is_string(v)) {
		snprintf(err, errlen, "\"%s\" must be a string", key);
		return -EINVAL;
	}
	*out = json_string_value(v);
	return 0;
}

int vg_pub_parse_point(json_t *o, const struct vg_pub_limits *lim,
		       struct vg_pub_point *out, char *err, size_t errlen)
{
	const char *kind, *type, *ts;
	json_t *v, *t;
	const char *key;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(o)) {
		snprintf(err, errlen, "a measure must be an object");
		return -EINVAL;
	}
	json_object_foreach(o, key, v) {
		static const char *const known[] = {"resource", "metric", "unit",
						    "kind", "type", "time", "value"};
		size_t k = 0;
		while (k < sizeof(known) / sizeof(known[0]) && strcmp(key, known[k]))
			k++;
		if (k == sizeof(known) / sizeof(known[0])) {
			snprintf(err, errlen, "unknown field \"%.64s\"", key);
			return -EINVAL;
		}
	}
	if (text_field(o, "resource", 1, &out->resource, err, errlen) ||
	    text_field(o, "metric", 1, &out->metric, err, errlen) ||
	    text_field(o, "unit", 0, &out->unit, err, errlen) ||
	    text_field(o, "kind", 0, &kind, err, errlen) ||
	    text_field(o, "type", 0, &type, err, errlen))
		return -EINVAL;
	/* the wire decoder's rule for ids and metric names */
	if (!vg_name_valid(out->resource)) {
		snprintf(err, errlen, "bad resource id (1..%d bytes of UTF-8 "
				      "without control or hidden characters)",
			 VG_NAME_MAX);
		return -EINVAL;
	}
	if (!vg_name_valid(out->metric)) {
		snprintf(err, errlen, "bad metric name (1..%d bytes of UTF-8 "
				      "without control or hidden characters)",
			 VG_NAME_MAX);
		return -EINVAL;
	}
	if (out->unit && !vg_text_valid(out->unit, VG_PUB_UNIT_MAX)) {
		snprintf(err, errlen, "bad unit (1..%d bytes of UTF-8 without "
				      "control characters)",
			 VG_PUB_UNIT_MAX);
		return -EINVAL;
	}
	if (!kind || !strcmp(kind, "gauge")) {
		out->kind = VG_KIND_GAUGE;
	} else if (!strcmp(kind, "counter")) {
		out->kind = VG_KIND_COUNTER;
	} else {
		snprintf(err, errlen, "bad kind \"%.32s\" (gauge or counter)", kind);
		return -EINVAL;
	}
	if (!type) {
		out->rtype = 0;
	} else if (!strcmp(type, "custom")) {
		out->rtype = VG_RT_CUSTOM;
	} else if (!strcmp(type, "instance")) {
		out->rtype = VG_RT_INSTANCE;
	} else {
		snprintf(err, errlen, "bad type \"%.32s\" (custom or instance)", type);
		return -EINVAL;
	}
	v = json_object_get(o, "value");
	if (!v || !json_is_number(v) || !isfinite(json_number_value(v))) {
		snprintf(err, errlen, "\"value\" must be a finite number");
		return -EINVAL;
	}
	out->value = json_number_value(v);
	if (fabs(out->value) > VG_PUB_VALUE_MAX) {
		snprintf(err, errlen, "\"value\" beyond +/-1e300: the store could "
				      "not keep it");
		return -EINVAL;
	}
	/* A counter is a growing total from zero: a reset publishes the new,
	 * smaller total (the rate then has a gap), never a negative one. */
	if (out->kind == VG_KIND_COUNTER && out->value < 0) {
		snprintf(err, errlen, "a counter's \"value\" must not be negative (it is a "
				      "growing total; after a reset, publish the new total)");
		return -EINVAL;
	}
	t = json_object_get(o, "time");
	if (!t || json_is_null(t)) {
		out->time_ms = lim->now_ms;
	} else if (json_is_string(t)) {
		double secs;
		const char *end;

		ts = json_string_value(t);
		/* Seconds are a JSON number (docs/api.md): "1795676400" as a
		 * string is a client's encoding slip (or milliseconds, or a
		 * local time) that a number check would have caught; strings
		 * are RFC 3339 or relative times. */
		if (!vg_decimal_parse(ts, &secs, &end) && !*end) {
			snprintf(err, errlen, "\"time\" must be a number: seconds "
					      "since 1970 are a JSON number (%.24s, "
					      "not \"%.24s\"); a string is RFC 3339 "
					      "or relative (-5m, now)",
				 ts, ts);
			return -EINVAL;
		}
		if (vg_time_parse(ts, lim->now_ms, &out->time_ms)) {
			snprintf(err, errlen, "bad time \"%.40s\" (RFC 3339, or "
					      "seconds since 1970 as a number)",
				 ts);
			return -EINVAL;
		}
	} else if (json_is_number(t) && isfinite(json_number_value(t)) &&
		   fabs(json_number_value(t)) < 1e15) {
		out->time_ms = (int64_t)llround(json_number_value(t) * 1000.0);
	} else {
		snprintf(err, errlen, "bad time (RFC 3339, or seconds since 1970 "
				      "as a number)");
		return -EINVAL;
	}
	if (out->time_ms < MIN_TIME_MS) {
		snprintf(err, errlen, "time before 1970-01-02");
		return -EINVAL;
	}
	if (lim->max_future_ms > 0 && out->time_ms > lim->now_ms + lim->max_future_ms) {
		snprintf(err, errlen, "time further ahead of the collector's "
				      "clock than max_future (%lld s)",
			 (long long)(lim->max_future_ms / 1000));
		return -EINVAL;
	}
	if (lim->max_age_ms > 0 && out->time_ms < lim->now_ms - lim->max_age_ms) {
		snprintf(err, errlen, "time older than the longest archive "
				      "keeps (%lld s)",
			 (long long)(lim->max_age_ms / 1000));
		return -EINVAL;
	}
	return 0;
}

static int cmp_point(const void *a, const void *b)
{
	const struct vg_pub_point *x = a, *y = b;
	int c = strcmp(x->resource, y->resource);

	if (c)
		return c;
	if (x->time_ms != y->time_ms)
		return x->time_ms < y->time_ms ? -1 : 1;
	if ((c = strcmp(x->metric, y->metric)))
		return c;
	/* qsort is not stable: the request's order decides */
	return x->index < y->index ? -1 : x->index > y->index;
}

void vg_pub_sort(struct vg_pub_point *pts, size_t n)
{
	qsort(pts, n, sizeof(*pts), cmp_point);
}

size_t vg_pub_drop_repeats(struct vg_pub_point *pts, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (k && pts[k - 1].time_ms == pts[i].time_ms &&
		    !strcmp(pts[k - 1].resource, pts[i].resource) &&
		    !strcmp(pts[k - 1].metric, pts[i].metric))
			continue;
		pts[k++] = pts[i];
	}
	return k;
}

/* ---- the job on the receiver thread -------------------------------------- */

/* One distinct resource of the request. */
struct pres {
	size_t first, n; /* its points in the sorted array */
	int rtype;
	int created;
	char *host, *name, *parent, *user, *flavor;
};

struct job {
	const char *project;
	struct vg_pub_point *pts;
	size_t n;
	struct vg_pub_state *st;
	struct pres *res;
	size_t nres;
	/* the answer */
	int status;
	char err[512];
	uint64_t duplicates;
	size_t created;
	size_t fresh_tmp; /* distinct_metrics' count of new series */
	/* series whose unit the request sets (a point of each in pts: its
	 * resource, metric and unit), written after the values */
	const struct vg_pub_point **units;
	size_t nunits;
};

static char *dup_text(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? strdup(s) : NULL;
}

static int fail(struct job *j, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct job *j, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(j->err, sizeof(j->err), fmt, ap);
	va_end(ap);
	j->status = status;
	return -EINVAL;
}

/* Count the project's published series (custom resources' metrics and
 * instances' metrics outside the catalogue). */
struct count_ctx {
	int rtype;
	uint64_t n;
};
static int count_res(void *ctx, const struct vg_registry_res *r)
{
	((struct count_ctx *)ctx)->rtype = r->type;
	return 0;
}
static int count_metric(void *ctx, const struct vg_registry_metric *m)
{
	struct count_ctx *c = ctx;
	if (c->rtype == VG_RT_CUSTOM || !vg_catalog_find(c->rtype, m->name))
		c->n++;
	return 0;
}

static int count_end(void *ctx)
{
	(void)ctx;
	return 0;
}

static int series_count(struct job *j, struct vg_registry *reg, uint64_t **out)
{
	uint64_t *n = vg_hmap_gets(&j->st->series, j->project);
	struct count_ctx c = {0};
	struct vg_registry_visitor v = {count_res, count_metric, count_end, &c};
	struct vg_resource_filter f = {.project = j->project, .limit = 1000};
	char cursor[VG_NAME_MAX + 1] = "";
	uint64_t dropped;
	int rc;

	/* an agent took a custom resource over since the counts were made,
	 * through any collector of the state (the sum is in the shared
	 * state: this handle's own count would miss the others'): its
	 * series are gone from the registry, so no count is trusted;
	 * counting again is rare, as takeovers are. One statement per
	 * request that adds series. */
	if ((rc = vg_registry_custom_drops(reg, &dropped)))
		return rc;
	if (dropped != j->st->dropped_seen) {
		free_values(&j->st->series);
		vg_hmap_init(&j->st->series);
		j->st->dropped_seen = dropped;
		n = NULL;
	}
	if (n) {
		*out = n;
		return 0;
	}
	do {
		char next[VG_NAME_MAX + 1];
		f.after = cursor[0] ? cursor : NULL;
		if ((rc = vg_registry_list_visit(reg, &f, &v, next, sizeof(next))))
			return rc;
		snprintf(cursor, sizeof(cursor), "%s", next);
	} while (cursor[0]);
	if (!(n = malloc(sizeof(*n))))
		return -ENOMEM;
	*n = c.n;
	if ((rc = vg_hmap_puts(&j->st->series, j->project, n))) {
		free(n);
		return rc;
	}
	*out = n;
	return 0;
}

/* The distinct metrics of p's points: with metrics NULL (a new
 * resource), how many; else checks each against the stored series (kind,
 * and a catalogue metric of an instance) and sets j->fresh_tmp to those
 * not stored yet; (size_t)-1 after fail(). */
static size_t distinct_metrics(struct job *j, struct pres *p, json_t *metrics)
{
	const struct vg_pub_point *pt = j->pts + p->first;
	struct vg_hmap seen;
	size_t n = 0, bad = 0;

	j->fresh_tmp = 0;
	vg_hmap_init_borrow(&seen);
	for (size_t i = 0; i < p->n && !bad; i++) {
		json_t *m;
		const char *k, *u;

		if (vg_hmap_gets(&seen, pt[i].metric))
			continue;
		if (vg_hmap_puts(&seen, pt[i].metric, (void *)&pt[i])) {
			fail(j, 503, "out of memory");
			bad = 1;
			break;
		}
		n++;
		if (!metrics) {
			if (pt[i].unit)
				j->units[j->nunits++] = &pt[i];
			continue;
		}
		if (p->rtype == VG_RT_INSTANCE &&
		    vg_catalog_find(VG_RT_INSTANCE, pt[i].metric)) {
			fail(j, 403, "metric '%s' of instance '%s' is the agent's",
			     pt[i].metric, pt->resource);
			bad = 1;
			break;
		}
		m = json_object_get(metrics, pt[i].metric);
		k = m ? json_string_value(json_object_get(m, "kind")) : NULL;
		if (k && strcmp(k, vg_kind_name(pt[i].kind))) {
			fail(j, 409, "metric '%s' of '%s' is a %s", pt[i].metric,
			     pt->resource, k);
			bad = 1;
			break;
		}
		/* a series keeps its unit; one stored without a unit takes
		 * the first one published */
		u = m ? json_string_value(json_object_get(m, "unit")) : NULL;
		if (pt[i].unit && u && *u && strcmp(u, pt[i].unit)) {
			fail(j, 409, "metric '%s' of '%s' is in '%s'", pt[i].metric,
			     pt->resource, u);
			bad = 1;
			break;
		}
		if (pt[i].unit && !(u && *u))
			j->units[j->nunits++] = &pt[i];
		if (!m)
			j->fresh_tmp++;
	}
	vg_hmap_release(&seen);
	return bad ? (size_t)-1 : n;
}

/* Look one resource up and check what the request does to it; *fresh
 * gets the series it adds. */
static int check_resource(struct job *j, struct vg_registry *reg, struct pres *p,
			  uint64_t *fresh)
{
	const struct vg_pub_point *pt = j->pts + p->first;
	json_t *r = NULL, *metrics;
	const char *type, *project, *state;
	int rc = vg_registry_get(reg, pt->resource, &r);

	if (rc == -ENOENT) {
		if (pt->rtype == VG_RT_INSTANCE)
			return fail(j, 404, "no instance '%s' (published measures "
					    "create custom resources only)",
				    pt->resource);
		p->rtype = VG_RT_CUSTOM;
		p->created = 1;
		{
			size_t n = distinct_metrics(j, p, NULL);
			if (n == (size_t)-1)
				return -EINVAL;
			*fresh += n;
		}
		p->host = strdup(PUB_HOST);
		return p->host ? 0 : fail(j, 503, "out of memory");
	}
	if (rc)
		return fail(j, 503, "registry unavailable (%s)", strerror(-rc));
	project = json_string_value(json_object_get(r, "project"));
	type = json_string_value(json_object_get(r, "type"));
	/* the same answer whether the id is another project's or an agent's
	 * disk: nothing of it is told */
	if (!project || strcmp(project, j->project)) {
		json_decref(r);
		return fail(j, 403, "resource '%s' belongs to another project",
			    pt->resource);
	}
	p->rtype = type ? vg_rtype_parse(type) : -1;
	if (p->rtype != VG_RT_INSTANCE && p->rtype != VG_RT_CUSTOM) {
		/* the message first: type is r's and goes with it */
		rc = fail(j, 403, "resource '%s' is a %s: measures go to "
				  "instances and custom resources",
			  pt->resource,
			  type ? type : "?");
		json_decref(r);
		return rc;
	}
	if (pt->rtype && pt->rtype != p->rtype) {
		rc = fail(j, 409, "resource '%s' is a%s %s", pt->resource,
			  p->rtype == VG_RT_INSTANCE ? "n" : "", type);
		json_decref(r);
		return rc;
	}
	/* An ended instance stays ended: the registry takes a report
	 * after the end for the resource coming back, so a point published
	 * after it would show a deleted VM alive (listed, on /metrics, never
	 * swept). Its agent is the authority on that; points up to the end
	 * are values like any other. */
	state = json_string_value(json_object_get(r, "state"));
	if (p->rtype == VG_RT_INSTANCE && state && !strcmp(state, "ended")) {
		const char *e = json_string_value(json_object_get(r, "ended_at"));
		int64_t end = INT64_MIN;
		if (e && vg_time_parse(e, 0, &end))
			end = INT64_MIN;
		for (size_t i = 0; i < p->n; i++)
			if (pt[i].time_ms > end) {
				rc = fail(j, 409, "instance '%s' ended at %s: no measure "
						  "after its end",
					  pt->resource, e ? e : "?");
				json_decref(r);
				return rc;
			}
	}
	metrics = json_object_get(r, "metrics");
	if (distinct_metrics(j, p, metrics) == (size_t)-1) {
		json_decref(r);
		return -EINVAL;
	}
	*fresh += j->fresh_tmp;
	p->host = dup_text(r, "host");
	p->name = dup_text(r, "name");
	p->parent = dup_text(r, "parent");
	p->user = dup_text(r, "user");
	p->flavor = dup_text(r, "flavor");
	json_decref(r);
	return p->host ? 0 : fail(j, 503, "out of memory");
}

/* Every resource of host h as one batch, its points grouped by time. */
static int write_host(struct job *j, struct vg_receiver_inject *in, const char *h)
{
	struct vg_batch *b = vg_batch_new(h, 0, 0, vg_now_ms());
	uint64_t dup = 0;
	int rc = 0;

	if (!b)
		return fail(j, 503, "out of memory");
	b->published = 1; /* values, not an observation: the meter skips it */
	for (size_t r = 0; r < j->nres && !rc; r++) {
		struct pres *p = &j->res[r];
		const struct vg_pub_point *pt = j->pts + p->first;
		if (strcmp(p->host, h))
			continue;
		for (size_t i = 0; i < p->n && !rc; i++) {
			if (i == 0 || pt[i].time_ms != pt[i - 1].time_ms) {
				struct vg_resource *res = vg_batch_resource(
					b, (uint8_t)p->rtype, pt->resource,
					p->name, p->parent, pt[i].time_ms);
				if (!res) {
					rc = -ENOMEM;
					break;
				}
				res->state = VG_RSTATE_ACTIVE;
				rc = vg_batch_identity(b, j->project, p->user,
						       p->flavor);
			}
			if (!rc)
				rc = vg_batch_sample(b, pt[i].metric, pt[i].kind,
						     pt[i].value);
		}
	}
	if (rc) {
		vg_batch_free(b);
		return fail(j, 503, "out of memory");
	}
	rc = vg_receiver_inject_batch(in, b, &dup);
	vg_batch_free(b);
	if (rc == -EAGAIN)
		return fail(j, 503, "the store cannot take measures now (disk "
				    "full or behind, or a storage daemon cannot create "
				    "a new series: see /v1/health); nothing acknowledged, "
				    "resend");
	j->duplicates += dup;
	return 0;
}

static int run_job(void *ctx, struct vg_receiver_inject *in)
{
	struct job *j = ctx;
	struct vg_registry *reg = vg_receiver_inject_registry(in);
	uint64_t fresh = 0, *count = NULL;
	int rc;

	for (size_t r = 0; r < j->nres; r++)
		if (check_resource(j, reg, &j->res[r], &fresh))
			return 0;
	if (fresh) {
		if ((rc = series_count(j, reg, &count)))
			return fail(j, 503, "registry unavailable (%s)",
				    strerror(-rc)),
			       0;
		if (*count + fresh > j->st->series_max)
			return fail(j, 429, "project '%s' has %llu published "
					    "series and this request adds %llu: the "
					    "limit is %u (publish_series_max)",
				    j->project, (unsigned long long)*count,
				    (unsigned long long)fresh,
				    j->st->series_max),
			       0;
	}
	for (size_t r = 0; r < j->nres; r++) {
		int seen = 0;
		for (size_t q = 0; q < r && !seen; q++)
			seen = !strcmp(j->res[q].host, j->res[r].host);
		if (!seen && write_host(j, in, j->res[r].host))
			return 0; /* the hosts written so far are stored */
	}
	if (count)
		*count += fresh;
	/* The values are journaled; now the units of the series that take
	 * one. A failure is a 503: resending is safe (the values come back
	 * as duplicates) and sets them. */
	for (size_t i = 0; i < j->nunits; i++) {
		const struct vg_pub_point *u = j->units[i];
		rc = vg_registry_set_unit(reg, u->resource, u->metric, u->unit);
		if (rc && rc != -ENOENT) /* -ENOENT: the registry refused the
					    series (logged by the receiver) */
			return fail(j, 503, "the unit of '%s' of '%s' is not "
					    "stored (%s); the values are: resend",
				    u->metric, u->resource, strerror(-rc)),
			       0;
	}
	for (size_t r = 0; r < j->nres; r++)
		j->created += j->res[r].created;
	j->status = 200;
	return 0;
}

static void free_res(struct pres *res, size_t n)
{
	for (size_t i = 0; res && i < n; i++) {
		free(res[i].host);
		free(res[i].name);
		free(res[i].parent);
		free(res[i].user);
		free(res[i].flavor);
	}
	free(res);
}

/* ---- the body's shape, before parsing --------------------------------------- */

int vg_pub_body_shape(const char *body, size_t len, char *err, size_t errlen)
{
	const size_t max_nest = (size_t)VG_PUB_MAX_POINTS + 2;
	const size_t max_commas = (size_t)VG_PUB_POINT_FIELDS * VG_PUB_MAX_POINTS + 1;
	size_t nest = 0, commas = 0;
	int in_str = 0;

	for (size_t i = 0; i < len; i++) {
		char c = body[i];
		if (in_str) {
			if (c == '\\')
				i++; /* the escaped byte ends nothing */
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == '"')
			in_str = 1;
		else if (c == '{' || c == '[')
			nest++;
		else if (c == ',')
			commas++;
		if (nest > max_nest || commas > max_commas) {
			snprintf(err, errlen,
				 "more than %d measures in one request (the body holds "
				 "more JSON %s than %d measures of at most %d fields "
				 "can: refused before parsing)",
				 VG_PUB_MAX_POINTS,
				 nest > max_nest ? "objects and arrays" : "values",
				 VG_PUB_MAX_POINTS, VG_PUB_POINT_FIELDS);
			return -E2BIG;
		}
	}
	return 0;
}

/* ---- the handler ---------------------------------------------------------- */

int vg_api_h_publish(struct vg_http_req *req, struct vg_http_resp *resp)
{
	struct vg_api *api = req->ctx;
	struct vg_receiver *rx = vg_api_receiver(api);
	struct vg_pub_state *st = vg_api_pub_state(api);
	struct vg_pub_limits lim = {.now_ms = req->now_ms};
	struct job j = {0};
	json_error_t jerr;
	json_t *doc, *arr, *pj;
	const char *project = req->scope_project;
	char err[256];
	uint32_t retry;
	size_t sent; /* the points of the request, j.n those written */
	int rc;

	if (!rx || !st)
		return vg_http_reply_error(resp, 503, "publishing measures is "
						      "not available in this process");
	vg_api_pub_limits(api, &lim.max_future_ms, &lim.max_age_ms);
	if (vg_pub_body_shape(req->body, req->body_len, err, sizeof(err)))
		return vg_http_reply_error(resp, 413, "%s", err);
	doc = json_loadb(req->body ? req->body : "", req->body_len,
			 JSON_REJECT_DUPLICATES, &jerr);
	if (!doc)
		return vg_http_reply_error(resp, 400, "bad JSON at byte %d: %s",
					   jerr.position, jerr.text);
	/* as every other body of the API: a misspelt field ("Project",
	 * "measure") is named, never taken as absent */
	if (json_is_object(doc)) {
		const char *key;
		json_t *v;
		json_object_foreach(doc, key, v) {
			if (strcmp(key, "measures") && strcmp(key, "project")) {
				int r = vg_http_reply_error(resp, 400,
							    "unknown field \"%.64s\" (known: "
							    "measures, project)",
							    key);
				json_decref(doc);
				return r;
			}
		}
	}
	arr = json_object_get(doc, "measures");
	if (!json_is_array(arr)) {
		json_decref(doc);
		return vg_http_reply_error(resp, 400, "the body must be an object "
						      "with an array \"measures\"");
	}
	pj = json_object_get(doc, "project");
	if (pj && !json_is_string(pj)) {
		json_decref(doc);
		return vg_http_reply_error(resp, 400, "\"project\" must be a string");
	}
	if (pj && project && strcmp(json_string_value(pj), project)) {
		json_decref(doc);
		return vg_http_reply_error(resp, 403, "this token publishes for "
						      "project '%s' only",
					   project);
	}
	if (!project && !pj) {
		json_decref(doc);
		return vg_http_reply_error(resp, 400, "an admin token names the "
						      "project: {\"project\": ..., "
						      "\"measures\": [...]}");
	}
	if (!project)
		project = json_string_value(pj);
	if (!vg_name_valid(project) || !strcmp(project, "*")) {
		/* "*" is every project to silences and alarm selectors */
		json_decref(doc);
		return vg_http_reply_error(resp, 400, "bad project name");
	}
	if (!vg_project_name_valid(project)) {
		/* the token rule: " acme" reads as "acme" but is another project */
		json_decref(doc);
		return vg_http_reply_error(resp, 400, "bad project name: it begins or "
						      "ends with white space");
	}
	j.n = json_array_size(arr);
	if (j.n > VG_PUB_MAX_POINTS) {
		json_decref(doc);
		return vg_http_reply_error(resp, 413, "%zu measures in one request; "
						      "the limit is %d",
					   j.n, VG_PUB_MAX_POINTS);
	}
	if (!j.n) {
		json_decref(doc);
		return vg_http_reply_error(resp, 400, "no measures");
	}
	if (!(j.pts = calloc(j.n, sizeof(*j.pts)))) {
		json_decref(doc);
		return vg_http_reply_error(resp, 503, "out of memory");
	}
	for (size_t i = 0; i < j.n; i++) {
		if (vg_pub_parse_point(json_array_get(arr, i), &lim, &j.pts[i],
				       err, sizeof(err))) {
			free(j.pts);
			json_decref(doc);
			return vg_http_reply_error(resp, 400, "measures[%zu]: %s",
						   i, err);
		}
		j.pts[i].index = i;
	}
	vg_pub_sort(j.pts, j.n);
	/* one kind, one unit and one type per series and resource in a
	 * request: each resource's metrics in a map (the points are sorted by
	 * resource); a series' first point gets the unit any of its points
	 * gives (the job reads it there) */
	{
		struct vg_hmap kinds;
		const char *bad = NULL;
		int two_types = 0, two_units = 0;

		vg_hmap_init_borrow(&kinds);
		for (size_t i = 0; i < j.n && !bad; i++) {
			struct vg_pub_point *b = &j.pts[i], *seen;
			if (i && strcmp(j.pts[i - 1].resource, b->resource)) {
				vg_hmap_release(&kinds);
				vg_hmap_init_borrow(&kinds);
			} else if (i && j.pts[i - 1].rtype != b->rtype) {
				bad = b->resource;
				two_types = 1;
				break;
			}
			seen = vg_hmap_gets(&kinds, b->metric);
			if (!seen && vg_hmap_puts(&kinds, b->metric, (void *)b)) {
				vg_hmap_release(&kinds);
				free(j.pts);
				json_decref(doc);
				return vg_http_reply_error(resp, 503, "out of memory");
			}
			if (seen && seen->kind != b->kind)
				bad = b->resource;
			if (seen && b->unit && seen->unit && strcmp(seen->unit, b->unit))
				bad = b->resource, two_units = 1;
			if (seen && b->unit && !seen->unit)
				seen->unit = b->unit;
		}
		vg_hmap_release(&kinds);
		if (bad) {
			vg_http_reply_error(resp, 400,
					    two_types   ? "resource '%s' is given two types"
					    : two_units ? "resource '%s' has a metric given two units"
							: "resource '%s' has a metric given two kinds",
					    bad);
			free(j.pts);
			json_decref(doc);
			return 0;
		}
	}
	rc = vg_pub_take(st, project, (uint32_t)j.n, vg_monotonic_ms(), &retry);
	if (rc) {
		free(j.pts);
		json_decref(doc);
		if (rc == -E2BIG)
			return vg_http_reply_error(resp, 413, "more measures in one "
							      "request than the project may "
							      "publish in a second "
							      "(publish_points_per_s)");
		if (rc == -EAGAIN) {
			vg_http_reply_error(resp, 429, "project '%s' publishes more "
						       "than publish_points_per_s; retry in "
						       "%u s",
					    project, retry);
			vg_http_resp_header(resp, "Retry-After", "%u", retry);
			return 0;
		}
		return vg_http_reply_error(resp, 503, "out of memory");
	}
	/* every point was checked and counts against the rate: now the
	 * repeated ones go, answered as duplicates */
	sent = j.n;
	j.n = vg_pub_drop_repeats(j.pts, j.n);
	/* the distinct resources */
	for (size_t i = 0; i < j.n; i++)
		j.nres += i == 0 || strcmp(j.pts[i].resource, j.pts[i - 1].resource);
	if (!(j.res = calloc(j.nres, sizeof(*j.res))) ||
	    !(j.units = calloc(j.n, sizeof(*j.units)))) {
		free(j.res);
		free(j.pts);
		json_decref(doc);
		return vg_http_reply_error(resp, 503, "out of memory");
	}
	for (size_t i = 0, r = 0; i < j.n; i++) {
		if (i && !strcmp(j.pts[i].resource, j.pts[i - 1].resource)) {
			j.res[r - 1].n++;
			continue;
		}
		j.res[r].first = i;
		j.res[r++].n = 1;
	}
	j.project = project;
	j.st = st;
	rc = vg_receiver_submit(rx, run_job, &j);
	if (rc == -EBUSY) {
		vg_http_reply_error(resp, 503, "too many publish requests "
					       "waiting; retry");
		vg_http_resp_header(resp, "Retry-After", "1");
	} else if (rc) {
		vg_http_reply_error(resp, 503, "the collector is stopping (%s)",
				    strerror(-rc));
	} else if (j.status != 200) {
		vg_http_reply_error(resp, j.status, "%s", j.err);
		if (j.status == 503 || j.status == 429)
			vg_http_resp_header(resp, "Retry-After", "%d",
					    j.status == 429 ? 60 : 1);
	} else {
		json_t *o = json_pack("{s:s,s:I,s:I,s:I}", "project", project,
				      "stored", (json_int_t)(j.n - j.duplicates),
				      "duplicates",
				      (json_int_t)(j.duplicates + (sent - j.n)),
				      "resources_created", (json_int_t)j.created);
		vg_http_reply_json(resp, 200, o);
	}
	free_res(j.res, j.nres);
	free(j.units);
	free(j.pts);
	json_decref(doc);
	return 0;
}
