/*
 * api_measures.c — GET /v1/measures: one series of one resource's metric
 * over a time range, at a granularity, with an aggregation.
 *
 * Design: parameters are checked first (all pure functions, unit-tested),
 * then the resource's type comes from the registry (it picks the RRD
 * directory), the granularity is chosen so the answer stays within
 * VG_API_MAX_POINTS, and the points come from vg_store_fetch (librrd's
 * thread-safe fetch). An explicit granularity reads that archive only
 * (points older than its retention are absent); "auto" takes the finest
 * archive that holds the start of the range and fits the point limit. The body is written by hand into a growing buffer:
 * a day at one minute is 1440 points and jansson's per-value objects would
 * dominate the request time.
 *
 * Invariants: a response never holds more than VG_API_MAX_POINTS points
 * (checked before the fetch from the range, and after it from the
 * count); counters are returned as rates per second (the store's DDERIVE)
 * with the catalogue's query unit ("B/s"), or for a metric outside the
 * catalogue the unit it was published with ("jobs" -> "jobs/s"); unknown
 * points are left out.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/api/api_handlers.h"
#include "vigie/batch.h"
#include "vigie/catalog.h"
#include "vigie/clock.h"
#include "vigie/name.h"

static const char *const too_many =
	"too many points: %zu at %u s granularity between %s and %s; the "
	"limit is %d per request (use a coarser granularity or a shorter "
	"range)";

int vg_api_h_measures(struct vg_http_req *req, struct vg_http_resp *resp)
{
	struct vg_api *api = req->ctx;
	const char *res = vg_http_param(req, "resource");
	const char *metric = vg_http_param(req, "metric");
	const char *gs = vg_http_param(req, "granularity");
	const char *as = vg_http_param(req, "aggregation");
	const char *agg_name;
	struct vg_series series = {0};
	struct vg_store *store;
	const struct vg_metric_def *def;
	char unit[64], ts[32], te[32];
	int64_t start_ms, end_ms;
	uint32_t g, gran;
	size_t npoints;
	int cf, rtype, rc, kind;
	struct vg_buf b = {0};
	char *body;
	size_t len;

	if (!res || !*res)
		return vg_http_reply_error(resp, 400,
					   "missing parameter 'resource'");
	if (!metric || !*metric)
		return vg_http_reply_error(resp, 400,
					   "missing parameter 'metric'");
	if (vg_api_granularity_param(resp, gs, &g))
		return 0;
	if (vg_api_parse_aggregation(as, &cf, &agg_name))
		return vg_http_reply_error(resp, 400,
					   "bad aggregation '%.32s' (one of: "
					   "mean, min, max)",
					   as);
	if (vg_api_window_param(req, resp, &start_ms, &end_ms))
		return 0;
	vg_time_format(start_ms, ts, sizeof(ts));
	vg_time_format(end_ms, te, sizeof(te));
	if (vg_api_series_resource(req, resp, res, metric, &rtype))
		return 0;

	if (vg_api_pick_granularity(start_ms, end_ms, g, VG_API_MAX_POINTS,
				    &gran, &npoints))
		return vg_http_reply_error(resp, 400, too_many, npoints, gran,
					   ts, te, VG_API_MAX_POINTS);
	store = vg_api_store(api);
	if (!store)
		return vg_http_reply_error(resp, 503, "no store configured");
	if (g) {
		rc = vg_store_fetch(store, rtype, res, metric, cf, start_ms,
				    end_ms, gran, 0, &series);
	} else {
		/* auto: the store's choice (the finest archive that still
		 * holds `start`) unless that gives too many points; coarser
		 * archives keep longer, so `gran` then holds start too. */
		rc = vg_store_fetch(store, rtype, res, metric, cf, start_ms,
				    end_ms, 0, 0, &series);
		if (rc == 0 && series.resolution_s < gran) {
			/* the series' own archive at or above gran (an
			 * [archives] rule may lack gran itself), else its
			 * coarsest */
			uint32_t want = 0;
			for (size_t i = 0; i < series.narchives && !want; i++)
				if (series.archives_s[i] >= gran)
					want = series.archives_s[i];
			if (!want && series.narchives)
				want = series.archives_s[series.narchives - 1];
			vg_series_free(&series);
			rc = vg_store_fetch(store, rtype, res, metric, cf,
					    start_ms, end_ms, want ? want : gran, 0,
					    &series);
		}
	}
	if (rc == -ENOENT)
		return vg_http_reply_error(resp, 404,
					   "resource '%s' has no metric '%s'",
					   res, metric);
	if (rc == -EINVAL)
		return vg_http_reply_error(resp, 400,
					   "no %u s archive for '%s' of '%s'",
					   gran, metric, res);
	if (rc == -EHOSTUNREACH)
		return vg_api_reply_unreachable(resp, store, rtype, res, metric,
						!req->scope_project);
	if (rc == -EREMOTEIO)
		return vg_api_reply_refused(resp, store, rtype, res, metric,
					    !req->scope_project);
	if (rc)
		return vg_api_reply_errno(resp, rc, "measures");
	if (series.n > VG_API_MAX_POINTS) {
		size_t n = series.n;
		uint32_t r = series.resolution_s;
		vg_series_free(&series);
		return vg_http_reply_error(resp, 400, too_many, n, r, ts, te,
					   VG_API_MAX_POINTS);
	}

	def = vg_catalog_find(rtype, metric);
	kind = series.kind ? series.kind : (def ? def->kind : VG_KIND_GAUGE);
	vg_api_series_unit(api, rtype, res, metric, kind, unit, sizeof(unit));

	vg_buf_append(&b, "{\"resource\":", 12);
	vg_buf_json_string(&b, res);
	vg_buf_append(&b, ",\"metric\":", 10);
	vg_buf_json_string(&b, metric);
	vg_buf_printf(&b,
		      ",\"start\":\"%s\",\"end\":\"%s\",\"granularity\":%u,"
		      "\"aggregation\":\"%s\",\"unit\":",
		      ts, te, series.resolution_s ? series.resolution_s : gran,
		      agg_name);
	vg_buf_json_string(&b, unit);
	vg_buf_printf(&b, ",\"kind\":\"%s\",\"granularities\":[",
		      vg_kind_name(kind) ? vg_kind_name(kind) : "gauge");
	for (size_t i = 0; i < series.narchives; i++)
		vg_buf_printf(&b, "%s%u", i ? "," : "", series.archives_s[i]);
	vg_buf_append(&b, "],\"archive_policy\":", 19);
	vg_buf_json_string(&b, vg_store_policy_name(store, metric));
	vg_buf_append(&b, ",\"points\":[", 11);
	for (size_t i = 0; i < series.n; i++) {
		/* ,["2026-11-26T06:49:14Z", — by hand: this loop is the
		 * request's cost for a day of points */
		char t[32];
		t[0] = ',';
		t[1] = '[';
		t[2] = '"';
		vg_iso_time(series.points[i].time_ms, t + 3);
		t[23] = '"';
		t[24] = ',';
		vg_buf_append(&b, i ? t : t + 1, i ? 25 : 24);
		vg_buf_json_number(&b, series.points[i].value);
		vg_buf_append(&b, "]", 1);
	}
	vg_buf_append(&b, "]}", 2);
	vg_series_free(&series);
	body = vg_buf_take(&b, &len);
	if (!body)
		return vg_http_reply_error(resp, 503, "out of memory");
	return vg_http_reply_raw(resp, 200, "application/json", body, len);
}

void vg_api_series_unit(struct vg_api *a, int rtype, const char *res, const char *metric,
			int kind, char *unit, size_t len)
{
	const struct vg_metric_def *def = vg_catalog_find(rtype, metric);
	struct vg_registry *reg;
	char raw[62]; /* and "/s" in the answer's 64 */
	int stored = 0;

	unit[0] = '\0';
	if (def) {
		vg_catalog_query_unit(def, unit, len);
		return;
	}
	/* a published series' unit; a counter reads as a rate */
	if (vg_api_registry(a, &reg) ||
	    vg_registry_metric_unit_kind(reg, res, metric, raw, sizeof(raw), &stored) || !*raw)
		return;
	if (!kind)
		kind = stored;
	snprintf(unit, len, kind == VG_KIND_COUNTER ? "%s/s" : "%s", raw);
}
