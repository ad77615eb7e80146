/*
 * api_statistics.c — GET /v1/statistics: CloudWatch-style statistics of
 * one metric of one resource, per period.
 *
 * Design: the range is cut into periods aligned on multiples of `period`
 * seconds since the epoch (a 3600 s period starts on the hour, UTC). The
 * finer points inside each period — the AVERAGE archive at `granularity`,
 * which must divide the period — give SampleCount (known points), Sum,
 * Average and the percentiles pNN (nearest rank over the period's points:
 * the smallest value v such that at least NN % of the points are <= v).
 * Minimum and Maximum come from the MIN and MAX archives at the same
 * granularity, so they are the extremes of every sample the collector
 * consolidated, not of the averages. A period without a known point is
 * left out (as CloudWatch does). Counters are rates per second, as in
 * /v1/measures.
 *
 * Invariants: at most VG_API_STATS_MAX_POINTS finer points are read and at
 * most VG_API_MAX_POINTS periods returned (400 beyond, before any fetch
 * where the range tells); the resource's project is checked before
 * anything that depends on the resource existing (another project's
 * resource is a 404).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "query/api/api_handlers.h"
#include "vigie/batch.h"
#include "vigie/catalog.h"
#include "vigie/clock.h"
#include "vigie/name.h"

static const char *const stat_names[] = {
	[VG_API_STAT_SAMPLE_COUNT] = "SampleCount",
	[VG_API_STAT_SUM] = "Sum",
	[VG_API_STAT_AVERAGE] = "Average",
	[VG_API_STAT_MINIMUM] = "Minimum",
	[VG_API_STAT_MAXIMUM] = "Maximum",
};

int vg_api_parse_statistics(const char *s, struct vg_api_stat *out,
			    size_t max, size_t *n, char *err, size_t errlen)
{
	static const char *const def = "SampleCount,Sum,Average,Minimum,Maximum";
	const char *p, *end;

	*n = 0;
	if (!s)
		s = def;
	if (!*s) {
		snprintf(err, errlen, "parameter 'statistics' is empty");
		return -EINVAL;
	}
	for (p = s; *p; p = *end ? end + 1 : end) {
		char item[24];
		size_t len;
		struct vg_api_stat st = {0};

		end = strchrnul(p, ',');
		len = (size_t)(end - p);
		if (!len || len >= sizeof(item)) {
			snprintf(err, errlen, "bad statistics list '%.64s' (e.g. "
					      "SampleCount,Average,p99)",
				 s);
			return -EINVAL;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		st.kind = -1;
		for (int k = 0; k < VG_API_STAT_PERCENTILE; k++)
			if (!strcasecmp(item, stat_names[k]))
				st.kind = k;
		if (st.kind < 0 && (item[0] == 'p' || item[0] == 'P') &&
		    item[1] >= '0' && item[1] <= '9') {
			char *e;
			double v = strtod(item + 1, &e);
			const char *dot = strchr(item + 1, '.');
			/* a plain decimal: strtod alone read p0x10 as p16 and
			 * p1e1 as p10, answered under the name asked */
			size_t digits = strspn(item + 1, "0123456789.");
			if (!*e && !item[1 + digits] && (!dot || !strchr(dot + 1, '.')) &&
			    v >= 0 && v <= 100 &&
			    (!dot || strlen(dot + 1) <= 3)) {
				st.kind = VG_API_STAT_PERCENTILE;
				st.p = v;
				snprintf(st.name, sizeof(st.name), "p%s", item + 1);
			}
		} else if (st.kind >= 0) {
			snprintf(st.name, sizeof(st.name), "%s",
				 stat_names[st.kind]);
		}
		if (st.kind < 0) {
			snprintf(err, errlen,
				 "unknown statistic '%s' (SampleCount, Sum, "
				 "Average, Minimum, Maximum, or a percentile "
				 "pNN with 0 <= NN <= 100, up to 3 decimals, "
				 "such as p0, p99, p99.9)",
				 item);
			return -EINVAL;
		}
		for (size_t i = 0; i < *n; i++)
			if (!strcmp(out[i].name, st.name)) {
				snprintf(err, errlen,
					 "statistic '%s' given twice", st.name);
				return -EINVAL;
			}
		if (*n == max) {
			snprintf(err, errlen, "too many statistics (at most %zu)",
				 max);
			return -EINVAL;
		}
		out[(*n)++] = st;
	}
	return 0;
}

double vg_api_percentile(const double *sorted, size_t n, double p)
{
	size_t rank;

	if (!n)
		return NAN;
	rank = (size_t)ceil(p / 100.0 * (double)n);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int vg_api_parse_period(const char *s, uint32_t *out)
{
	unsigned v;
	int rc = vg_api_parse_uint(s, VG_API_STATS_DEFAULT_PERIOD, 60, VG_API_STATS_MAX_PERIOD, &v);

	if (!rc)
		*out = v;
	return rc;
}

/* Index of the first point at or after time t in s (points sorted). */
static size_t first_at(const struct vg_series *s, int64_t t)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->points[mid].time_ms < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static const char *const too_many =
	"too many %s: %zu at %u s between %s and %s; the limit is %d per "
	"request (use a longer period, a coarser granularity or a shorter "
	"range)";

int vg_api_h_statistics(struct vg_http_req *req, struct vg_http_resp *resp)
{
	struct vg_api *api = req->ctx;
	const char *res = vg_http_param(req, "resource");
	const char *metric = vg_http_param(req, "metric");
	const char *ps = vg_http_param(req, "period");
	const char *gs = vg_http_param(req, "granularity");
	struct vg_api_stat stats[VG_API_STATS_MAX];
	struct vg_series avg = {0}, mn = {0}, mx = {0};
	const struct vg_metric_def *def;
	struct vg_store *store;
	char err[256], unit[64], ts[32], te[32];
	int64_t start_ms, end_ms, pm;
	uint32_t period, g, gran = 0;
	size_t nstats, nperiods, npts;
	int rc, rtype, want_min = 0, want_max = 0, kind;
	double *buf = NULL;
	json_t *arr, *names;

	if (!res || !*res)
		return vg_http_reply_error(resp, 400, "missing parameter 'resource'");
	if (!metric || !*metric)
		return vg_http_reply_error(resp, 400, "missing parameter 'metric'");
	if (vg_api_parse_period(ps, &period))
		return vg_http_reply_error(resp, 400,
					   "bad period '%.32s' (seconds, 60..%d, "
					   "a multiple of the granularity)",
					   ps, VG_API_STATS_MAX_PERIOD);
	if (vg_api_granularity_param(resp, gs, &g))
		return 0;
	if (period % (g ? g : 60))
		return vg_http_reply_error(resp, 400,
					   "period %u is not a multiple of the "
					   "granularity %u",
					   period, g ? g : 60);
	if (vg_api_parse_statistics(vg_http_param(req, "statistics"), stats,
				    VG_API_STATS_MAX, &nstats, err, sizeof(err)))
		return vg_http_reply_error(resp, 400, "%s", err);
	if (vg_api_window_param(req, resp, &start_ms, &end_ms))
		return 0;
	vg_time_format(start_ms, ts, sizeof(ts));
	vg_time_format(end_ms, te, sizeof(te));
	nperiods = vg_api_points_in(start_ms, end_ms, period);
	if (nperiods > VG_API_MAX_POINTS)
		return vg_http_reply_error(resp, 400, too_many, "periods",
					   nperiods, period, ts, te,
					   VG_API_MAX_POINTS);
	for (size_t i = 0; i < nstats; i++) {
		want_min |= stats[i].kind == VG_API_STAT_MINIMUM;
		want_max |= stats[i].kind == VG_API_STAT_MAXIMUM;
	}
	if (vg_api_series_resource(req, resp, res, metric, &rtype))
		return 0;
	if (!(store = vg_api_store(api)))
		return vg_http_reply_error(resp, 503, "no store configured");

	/* The finer points: an explicit granularity, or the finest archive
	 * that holds `start`, divides the period and fits the limit. */
	if (g) {
		npts = vg_api_points_in(start_ms, end_ms, g);
		if (npts > VG_API_STATS_MAX_POINTS)
			return vg_http_reply_error(resp, 400, too_many, "points",
						   npts, g, ts, te,
						   VG_API_STATS_MAX_POINTS);
		gran = g;
		rc = vg_store_fetch(store, rtype, res, metric, VG_CF_AVERAGE,
				    start_ms, end_ms, g, 0, &avg);
	} else {
		rc = vg_store_fetch(store, rtype, res, metric, VG_CF_AVERAGE,
				    start_ms, end_ms, 0, 0, &avg);
		if (rc == 0) {
			static const uint32_t gs_all[] = {60, 300, 3600};
			uint32_t have = avg.resolution_s;
			for (size_t i = 0; i < 3 && !gran; i++)
				if (gs_all[i] >= have && period % gs_all[i] == 0 &&
				    vg_api_points_in(start_ms, end_ms, gs_all[i]) <=
					    VG_API_STATS_MAX_POINTS)
					gran = gs_all[i];
			if (!gran) {
				vg_series_free(&avg);
				return vg_http_reply_error(
					resp, 400,
					"no granularity fits: the period %u must "
					"be a multiple of one of 60, 300, 3600 "
					"at or above %u (the finest archive "
					"holding start) with at most %d points",
					period, have, VG_API_STATS_MAX_POINTS);
			}
			if (gran != have) {
				vg_series_free(&avg);
				rc = vg_store_fetch(store, rtype, res, metric,
						    VG_CF_AVERAGE, start_ms,
						    end_ms, gran, 0, &avg);
			}
		}
	}
	if (rc == 0 && want_min)
		rc = vg_store_fetch(store, rtype, res, metric, VG_CF_MIN, start_ms,
				    end_ms, gran, 0, &mn);
	if (rc == 0 && want_max)
		rc = vg_store_fetch(store, rtype, res, metric, VG_CF_MAX, start_ms,
				    end_ms, gran, 0, &mx);
	if (rc) {
		vg_series_free(&avg);
		vg_series_free(&mn);
		vg_series_free(&mx);
		if (rc == -ENOENT)
			return vg_http_reply_error(resp, 404,
						   "resource '%s' has no metric '%s'",
						   res, metric);
		if (rc == -EINVAL && gran)
			return vg_http_reply_error(resp, 400,
						   "no %u s archive for '%s' of '%s'",
						   gran, metric, res);
		if (rc == -EINVAL) /* auto: no archive at all, never "0 s" */
			return vg_http_reply_error(resp, 400,
						   "no archive for '%s' of '%s'",
						   metric, res);
		if (rc == -EHOSTUNREACH)
			return vg_api_reply_unreachable(resp, store, rtype, res, metric,
							!req->scope_project);
		if (rc == -EREMOTEIO)
			return vg_api_reply_refused(resp, store, rtype, res, metric,
						    !req->scope_project);
		return vg_api_reply_errno(resp, rc, "statistics");
	}

	/* one pass over the periods */
	pm = (int64_t)period * 1000;
	arr = json_array();
	buf = malloc((avg.n ? avg.n : 1) * sizeof(*buf));
	if (!buf || !arr) {
		free(buf);
		json_decref(arr);
		vg_series_free(&avg);
		vg_series_free(&mn);
		vg_series_free(&mx);
		return vg_http_reply_error(resp, 503, "out of memory");
	}
	for (size_t i = 0; i < avg.n;) {
		int64_t p0 = avg.points[i].time_ms / pm * pm, p1 = p0 + pm;
		size_t k = 0;
		double sum = 0, lo = NAN, hi = NAN;
		int sorted = 0;
		char t[32];
		json_t *dp;

		for (; i < avg.n && avg.points[i].time_ms < p1; i++) {
			buf[k++] = avg.points[i].value;
			sum += avg.points[i].value;
		}
		if (want_min)
			for (size_t j = first_at(&mn, p0);
			     j < mn.n && mn.points[j].time_ms < p1; j++)
				if (isnan(lo) || mn.points[j].value < lo)
					lo = mn.points[j].value;
		if (want_max)
			for (size_t j = first_at(&mx, p0);
			     j < mx.n && mx.points[j].time_ms < p1; j++)
				if (isnan(hi) || mx.points[j].value > hi)
					hi = mx.points[j].value;
		dp = json_object();
		json_object_set_new(dp, "timestamp",
				    json_string(vg_time_format(p0, t, sizeof(t))));
		for (size_t s = 0; s < nstats; s++) {
			double v = NAN;
			switch (stats[s].kind) {
			case VG_API_STAT_SAMPLE_COUNT:
				json_object_set_new(dp, stats[s].name,
						    json_integer((json_int_t)k));
				continue;
			case VG_API_STAT_SUM: v = sum; break;
			case VG_API_STAT_AVERAGE: v = sum / (double)k; break;
			case VG_API_STAT_MINIMUM: v = lo; break;
			case VG_API_STAT_MAXIMUM: v = hi; break;
			default:
				if (!sorted) {
					qsort(buf, k, sizeof(*buf), cmp_double);
					sorted = 1;
				}
				v = vg_api_percentile(buf, k, stats[s].p);
			}
			json_object_set_new(dp, stats[s].name,
					    isfinite(v) ? json_real(v) : json_null());
		}
		json_array_append_new(arr, dp);
	}
	free(buf);
	kind = avg.kind;
	vg_series_free(&avg);
	vg_series_free(&mn);
	vg_series_free(&mx);

	def = vg_catalog_find(rtype, metric);
	if (!kind)
		kind = def ? def->kind : VG_KIND_GAUGE;
	/* a published series' unit too ("B/s" for a counter of "B"), as
	 * /v1/measures gives it */
	vg_api_series_unit(api, rtype, res, metric, kind, unit, sizeof(unit));
	names = json_array();
	for (size_t s = 0; s < nstats; s++)
		json_array_append_new(names, json_string(stats[s].name));
	return vg_http_reply_json(
		resp, 200,
		json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:s,s:s,s:o,s:o}", "resource",
			  res, "metric", metric, "start", ts, "end", te, "period",
			  (int)period, "granularity", (int)gran, "unit", unit,
			  "kind", vg_kind_name(kind) ? vg_kind_name(kind) : "gauge",
			  "statistics", names, "datapoints", arr));
}

const char *const vg_api_statistics_params[] = {
	"resource", "metric", "start", "end", "period", "granularity",
	"statistics", NULL};
