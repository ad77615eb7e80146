/*
 * api_shared.c — what several endpoints of the JSON API share: the checks
 * of their common query parameters (limit, granularity, aggregation, time
 * window, the resource filter of /v1/top and /v1/aggregates) and the
 * resource scan behind /v1/top, /v1/aggregates and /metrics
 * (query/api/api_shared.h).
 *
 * Design: the parameter checks are pure functions (unit-tested without a
 * server); the scan pages through vg_registry_list (VG_API_LIST_MAX
 * resources a page, keyed by id) with the caller's filter on this worker
 * thread's registry handle.
 *
 * Invariants: a project-scoped request's filter always names its own
 * project (vg_api_scan_params forces it), so a scan can never reach
 * another project's resources; a scan stops at max resources (-E2BIG)
 * rather than holding an unbounded answer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/api/api_handlers.h"
#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/name.h"

/* ---- parameters ------------------------------------------------------------ */

static const uint32_t granularities[] = {60, 300, 3600};
#define NGRAN (sizeof(granularities) / sizeof(granularities[0]))

int vg_api_parse_uint(const char *s, unsigned def, unsigned lo, unsigned hi,
		      unsigned *out)
{
	char *end;
	unsigned long v;

	if (!s) {
		*out = def;
		return 0;
	}
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

int vg_api_parse_limit(const char *s, int def, int max, int *out)
{
	unsigned v;
	int rc = vg_api_parse_uint(s, (unsigned)def, 1, max > 0 ? (unsigned)max : 0, &v);

	if (!rc)
		*out = (int)v;
	return rc;
}

int vg_api_parse_granularity(const char *s, uint32_t *out)
{
	if (!s || !strcmp(s, "auto")) {
		*out = 0;
		return 0;
	}
	for (size_t i = 0; i < NGRAN; i++) {
		char buf[16];
		snprintf(buf, sizeof(buf), "%u", granularities[i]);
		if (!strcmp(s, buf)) {
			*out = granularities[i];
			return 0;
		}
	}
	return -EINVAL;
}

int vg_api_granularity_param(struct vg_http_resp *resp, const char *s, uint32_t *out)
{
	char list[64] = "";
	size_t o = 0;

	if (!vg_api_parse_granularity(s, out))
		return 0;
	for (size_t i = 0; i < NGRAN && o < sizeof(list); i++)
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%u, ", granularities[i]);
	vg_http_reply_error(resp, 400, "bad granularity '%.32s' (one of: %sauto)", s, list);
	return -EINVAL;
}

int vg_api_parse_aggregation(const char *s, int *cf, const char **name)
{
	if (!s || !strcmp(s, "mean") || !strcmp(s, "average")) {
		*cf = VG_CF_AVERAGE;
		*name = "mean";
	} else if (!strcmp(s, "min")) {
		*cf = VG_CF_MIN;
		*name = "min";
	} else if (!strcmp(s, "max")) {
		*cf = VG_CF_MAX;
		*name = "max";
	} else {
		return -EINVAL;
	}
	return 0;
}

int vg_api_parse_window(const char *start, const char *end, int64_t now_ms,
			int64_t *start_ms, int64_t *end_ms, char *err,
			size_t errlen)
{
	static const char forms[] =
		"expected ISO 8601 like 2026-11-26T06:00:00Z (write '+' as "
		"%2B), epoch seconds, or relative like -3h, -15m, now";
	char a[32], b[32];

	*end_ms = now_ms;
	if (end && vg_time_parse(end, now_ms, end_ms)) {
		snprintf(err, errlen, "bad end '%.64s': %s", end, forms);
		return -EINVAL;
	}
	*start_ms = *end_ms - 3600 * 1000;
	if (start && vg_time_parse(start, now_ms, start_ms)) {
		snprintf(err, errlen, "bad start '%.64s': %s", start, forms);
		return -EINVAL;
	}
	if (*start_ms > *end_ms) {
		snprintf(err, errlen, "start %s is after end %s",
			 vg_time_format(*start_ms, a, sizeof(a)),
			 vg_time_format(*end_ms, b, sizeof(b)));
		return -EINVAL;
	}
	return 0;
}

int vg_api_window_param(struct vg_http_req *req, struct vg_http_resp *resp,
			int64_t *start_ms, int64_t *end_ms)
{
	char err[256];

	if (!vg_api_parse_window(vg_http_param(req, "start"), vg_http_param(req, "end"),
				 req->now_ms, start_ms, end_ms, err, sizeof(err)))
		return 0;
	vg_http_reply_error(resp, 400, "%s", err);
	return -EINVAL;
}

size_t vg_api_points_in(int64_t start_ms, int64_t end_ms, uint32_t g)
{
	int64_t gm = (int64_t)g * 1000;

	if (g == 0 || end_ms < start_ms)
		return 0;
	/* floor division for times before the epoch is not needed: the
	 * parser refuses them */
	return (size_t)(end_ms / gm - start_ms / gm) + 1;
}

int vg_api_pick_granularity(int64_t start_ms, int64_t end_ms,
			    uint32_t requested, size_t max_points,
			    uint32_t *out, size_t *npoints)
{
	size_t n = 0;

	if (requested) {
		n = vg_api_points_in(start_ms, end_ms, requested);
		*npoints = n;
		*out = requested;
		return n > max_points ? -E2BIG : 0;
	}
	for (size_t i = 0; i < NGRAN; i++) {
		n = vg_api_points_in(start_ms, end_ms, granularities[i]);
		*out = granularities[i];
		*npoints = n;
		if (n <= max_points)
			return 0;
	}
	return -E2BIG;
}

/* Shared filter parameters of /v1/top and /v1/aggregates: type, host,
 * project (forced to the scope), flavor. 0, or a reply was set. Sets
 * *empty when a scoped request asked for another project (the answer is
 * then an empty result, exactly as for a project without data). */
int vg_api_scan_params(struct vg_http_req *req, struct vg_http_resp *resp,
		       struct vg_resource_filter *f, const char **flavor,
		       int *empty)
{
	static const char *const keys[] = {"type", "host", "project", "flavor"};
	const char *v[4];

	memset(f, 0, sizeof(*f));
	*empty = 0;
	for (size_t i = 0; i < 4; i++) {
		v[i] = vg_http_param(req, keys[i]);
		if (v[i] && (!*v[i] || !vg_name_valid(v[i]))) {
			vg_http_reply_error(resp, 400,
					    "parameter '%s' is empty or not a "
					    "valid name",
					    keys[i]);
			return -EINVAL;
		}
	}
	if (v[0] && vg_rtype_parse(v[0]) < 0) {
		vg_http_reply_error(resp, 400,
				    "bad type '%s' (one of: instance, disk, nic, "
				    "host, host_disk, host_nic)",
				    v[0]);
		return -EINVAL;
	}
	f->type = v[0];
	f->host = v[1];
	f->project = v[2];
	*flavor = v[3];
	if (req->scope_project) {
		if (f->project && strcmp(f->project, req->scope_project))
			*empty = 1;
		f->project = req->scope_project;
	}
	return 0;
}

/* ---- one series ---------------------------------------------------------------- */

int vg_api_series_resource(struct vg_http_req *req, struct vg_http_resp *resp,
			   const char *res, const char *metric, int *rtype)
{
	struct vg_registry *reg;
	int rc;

	if (!vg_name_valid(res)) {
		vg_http_reply_error(resp, 404, "no resource '%.200s'", res);
		return -ENOENT;
	}
	if ((rc = vg_api_registry(req->ctx, &reg))) {
		vg_http_reply_error(resp, 503, "registry unavailable (%s)",
				    strerror(-rc));
		return rc;
	}
	/* the scope first, in the query: nothing of the resource is read
	 * before we know the token may see it */
	rc = vg_registry_visible(reg, res, req->scope_project, rtype);
	if (rc == -ENOENT) {
		vg_http_reply_error(resp, 404, "no resource '%s'", res);
		return rc;
	}
	if (rc) {
		vg_api_reply_errno(resp, rc, "resource");
		return rc;
	}
	if (!vg_name_valid(metric)) {
		vg_http_reply_error(resp, 404,
				    "resource '%s' has no metric '%.200s'", res,
				    metric);
		return -ENOENT;
	}
	return 0;
}

/* ---- the resource scan ------------------------------------------------------ */

int vg_api_scan(struct vg_api *api, const struct vg_resource_filter *filter,
		size_t max, vg_api_scan_fn fn, void *ctx)
{
	struct vg_resource_filter f = *filter;
	struct vg_registry *reg;
	char next[VG_NAME_MAX * 4 + 1], after[VG_NAME_MAX * 4 + 1];
	size_t seen = 0;
	int rc;

	if ((rc = vg_api_registry(api, &reg)))
		return rc;
	f.limit = VG_API_LIST_MAX;
	for (;;) {
		json_t *arr = NULL, *r;
		size_t i;

		rc = vg_registry_list(reg, &f, &arr, next, sizeof(next));
		if (rc)
			return rc;
		json_array_foreach(arr, i, r) {
			if (++seen > max) {
				json_decref(arr);
				return -E2BIG;
			}
			if ((rc = fn(ctx, r))) {
				json_decref(arr);
				return rc;
			}
		}
		json_decref(arr);
		if (!next[0])
			return 0;
		memcpy(after, next, sizeof(after));
		f.after = after;
	}
}
