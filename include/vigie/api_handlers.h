/*
 * vigie — inside the JSON API (query/api*.c): the route table, the shared
 * state handlers reach through req->ctx, and the pure parameter checks.
 *
 * vigie/api.h is what the collector sees (start/stop); this header is what
 * the query/ files share with each other and with their unit tests. Adding
 * an endpoint (as statistics, aggregates, latest/top, graph, /metrics and
 * tokens were added) means: a handler in its own query/api_<concept>.c, a
 * prototype here, a line in vg_api_routes[] (query/api.c) and a section in
 * docs/api.md. Authorisation plugs in as the server's authorize hook
 * (vg_api_authorize), which sets req->scope_project; every handler already
 * honours that scope (another project's resource is a 404).
 */
#ifndef VIGIE_API_HANDLERS_H
#define VIGIE_API_HANDLERS_H

#include <stddef.h>
#include <stdint.h>

#include "vigie/alarm_api.h" /* alarm handlers and routes */
#include "vigie/api.h"
#include "vigie/api_query.h" /* query endpoints, tokens */
#include "vigie/http.h"
#include "vigie/registry.h"
#include "vigie/store.h"

#ifndef VG_VERSION
#define VG_VERSION "0.1.0"
#endif

#define VG_API_MAX_POINTS 10000   /* points per measures response */
#define VG_API_LIST_DEFAULT 100   /* resources per page by default */
#define VG_API_LIST_MAX 1000      /* resources per page at most */
#define VG_API_META_SCAN 100000   /* resources one metadata-filtered page reads */

/* ---- shared state (query/api.c) ------------------------------------------ */

struct vg_bill_service;
/* Billing: the collector hands its billing service over once
 * the API runs (thread-safe; NULL until then: invoices answer 503). */
void vg_api_set_billing(struct vg_api *a, struct vg_bill_service *b);
struct vg_bill_service *vg_api_billing(struct vg_api *a);

/* The store given at start (may be NULL: measures then answer 503). */
struct vg_store *vg_api_store(struct vg_api *a);

/* This worker thread's registry handle, opened on first use and closed by
 * vg_api_stop. 0 or -errno (message logged, rate-limited). Thread-safe:
 * each thread gets its own handle. */
int vg_api_registry(struct vg_api *a, struct vg_registry **out);

/* The collector's counters; -ENOENT if no stats callback was given. */
int vg_api_collector_stats(struct vg_api *a, struct vg_collector_stats *out);

/* The bound port (useful after listening on port 0). */
uint16_t vg_api_port(const struct vg_api *a);

/* The route table, in matching order. */
extern const struct vg_route vg_api_routes[];
extern const size_t vg_api_nroutes;

/* ---- handlers ------------------------------------------------------------- */

int vg_api_h_health(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_resources(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_resource(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_measures(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_static(struct vg_http_req *req, struct vg_http_resp *resp); /* web console, api_static.c */
int vg_api_h_invoices(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_invoices_finalize(struct vg_http_req *req,
			       struct vg_http_resp *resp);
/* The same with the billing service given (query/api_invoices.c; unit
 * tests call these without a server). */
int vg_api_invoices_answer(const struct vg_bill_service *svc,
			   struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_finalize_answer(const struct vg_bill_service *svc,
			   struct vg_http_req *req, struct vg_http_resp *resp);

/* ---- pure helpers (unit-tested) ---------------------------------------------- */

/* Reply for a negative errno from the registry or store: -ENOENT 404,
 * -EINVAL 400, -EAGAIN/-EBUSY 503, anything else 500; `what` names the
 * object ("resource 'x'"). Returns 0. */
int vg_api_reply_errno(struct vg_http_resp *resp, int err, const char *what);

/* "limit": NULL -> def; an integer 1..max -> it; else -EINVAL. */
int vg_api_parse_limit(const char *s, int def, int max, int *out);

/* "granularity": NULL or "auto" -> 0; "60", "300", "3600" -> that; else
 * -EINVAL. */
int vg_api_parse_granularity(const char *s, uint32_t *out);

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

/* Points a [start, end] range gives at g seconds (both ends counted). */
size_t vg_api_points_in(int64_t start_ms, int64_t end_ms, uint32_t g);

/* Choose the granularity for a query: requested != 0 is kept if it gives
 * at most max_points; requested == 0 (auto) takes the finest of 60, 300,
 * 3600 that does. 0 with *out set, or -E2BIG with *npoints the count at
 * the granularity that was tried last (the coarsest for auto). */
int vg_api_pick_granularity(int64_t start_ms, int64_t end_ms,
			    uint32_t requested, size_t max_points,
			    uint32_t *out, size_t *npoints);

#endif
