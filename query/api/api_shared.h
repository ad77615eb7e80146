/*
 * vigie — what several endpoints of the JSON API share (query/api/
 * api_shared.c): the checks of common query parameters and the resource
 * scan. Pure functions unless said otherwise; the scan is thread-safe
 * (each worker thread reads its own registry handle).
 */
#ifndef VIGIE_API_SHARED_H
#define VIGIE_API_SHARED_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "query/api/http.h"
#include "vigie/api.h"
#include "vigie/registry.h"

/* ---- parameters ------------------------------------------------------------ */

/* An optional whole-number parameter: NULL -> def; decimal digits only
 * (no sign, space or suffix) with a value in lo..hi -> it; else -EINVAL.
 * The one rule behind limit, period and the graph's width and height. */
int vg_api_parse_uint(const char *s, unsigned def, unsigned lo, unsigned hi,
		      unsigned *out);

/* "limit": NULL -> def; an integer 1..max -> it; else -EINVAL. */
int vg_api_parse_limit(const char *s, int def, int max, int *out);

/* "granularity": NULL or "auto" -> 0; "60", "300", "3600" -> that; else
 * -EINVAL. */
int vg_api_parse_granularity(const char *s, uint32_t *out);

/* The same for a request: 0 with *out set, or -EINVAL with the 400 in
 * resp ("bad granularity '7' (one of: 60, 300, 3600, auto)", the list
 * from the accepted values). */
int vg_api_granularity_param(struct vg_http_resp *resp, const char *s, uint32_t *out);

/* "aggregation": NULL or "mean"/"average" -> VG_CF_AVERAGE, "min", "max";
 * *name gets the canonical name ("mean", "min", "max"). -EINVAL if
 * unknown. */
int vg_api_parse_aggregation(const char *s, int *cf, const char **name);

/* "start"/"end" via vg_time_parse relative to now_ms; end defaults to
 * now, start to one hour before end. -EINVAL with a message in err for a
 * bad time or start > end. */
int vg_api_parse_window(const char *start, const char *end, int64_t now_ms,
			int64_t *start_ms, int64_t *end_ms, char *err,
			size_t errlen);

/* The same for a request's "start" and "end" parameters: 0 with the
 * window set, or -EINVAL with the 400 in resp (vg_api_parse_window's
 * message). */
int vg_api_window_param(struct vg_http_req *req, struct vg_http_resp *resp,
			int64_t *start_ms, int64_t *end_ms);

/* Points a [start, end] range gives at g seconds (both ends counted). */
size_t vg_api_points_in(int64_t start_ms, int64_t end_ms, uint32_t g);

/* Choose the granularity for a query: requested != 0 is kept if it gives
 * at most max_points; requested == 0 (auto) takes the finest of 60, 300,
 * 3600 that does. 0 with *out set, or -E2BIG with *npoints the count at
 * the granularity that was tried last (the coarsest for auto). */
int vg_api_pick_granularity(int64_t start_ms, int64_t end_ms,
			    uint32_t requested, size_t max_points,
			    uint32_t *out, size_t *npoints);

/* ---- one series ---------------------------------------------------------------- */

/* The resource of a one-series query (/v1/measures, /v1/statistics), in
 * the request's scope: res must name a resource the request's token may
 * see (checked before anything of it is read) and metric must be a valid
 * name. 0 with *rtype set; otherwise non-zero with the reply in resp: 404
 * for a bad or unknown resource (or one of another project) and for a bad
 * metric name, 503 when the registry cannot be opened. */
int vg_api_series_resource(struct vg_http_req *req, struct vg_http_resp *resp,
			   const char *res, const char *metric, int *rtype);

/* ---- the resource scan -------------------------------------------------------- */

#define VG_API_SCAN_MAX 100000 /* resources one top/aggregate scans */

/* Called once per resource (the registry's JSON object, borrowed); a
 * non-zero return stops the scan and is returned by vg_api_scan. */
typedef int (*vg_api_scan_fn)(void *ctx, json_t *resource);

/* Every resource matching filter (its limit and `after` are ignored), in
 * id order, page by page on this thread's registry handle. 0, -E2BIG when
 * more than max match, the callback's code, or a registry -errno. */
int vg_api_scan(struct vg_api *api, const struct vg_resource_filter *filter,
		size_t max, vg_api_scan_fn fn, void *ctx);

/* Read the filter parameters type, host, project and flavor of /v1/top and
 * /v1/aggregates into f and *flavor (pointing into req). The project is
 * forced to req->scope_project; *empty is set when a scoped request named
 * another project (answer with an empty result). 0, or -EINVAL with a 400
 * in resp. */
int vg_api_scan_params(struct vg_http_req *req, struct vg_http_resp *resp,
		       struct vg_resource_filter *f, const char **flavor,
		       int *empty);

#endif
