/*
 * vigie — inside the JSON API (query/api/api*.c): the route table, the shared
 * state handlers reach through req->ctx, and the handlers.
 *
 * vigie/api.h is what the collector sees (start/stop); this header is what
 * the query/api/ files share with each other and with their unit tests.
 * Adding an endpoint means: a handler in its own query/api/api_<concept>.c,
 * a prototype here (or in the concept's header, as api_alarms.h), a line in vg_api_routes[] (query/api/api.c) and a section in
 * docs/api.md. Authorisation plugs in as the server's authorize hook
 * (vg_api_authorize), which sets req->scope_project; every handler already
 * honours that scope (another project's resource is a 404).
 */
#ifndef VIGIE_API_HANDLERS_H
#define VIGIE_API_HANDLERS_H

#include <stddef.h>
#include <stdint.h>

#include "query/api/api_alarms.h" /* alarm handlers and routes */
#include "vigie/api.h"
#include "query/api/api_aggregates.h"
#include "query/api/api_graph.h"
#include "query/api/api_latest.h"
#include "query/api/api_publish.h"
#include "query/api/api_prometheus.h"
#include "query/api/api_statistics.h"
#include "query/api/api_tokens.h"
#include "query/api/expr.h"
#include "query/api/api_remote_read.h"
#include "query/api/api_shared.h" /* parameters and the resource scan */
#include "query/api/http.h"
#include "vigie/registry.h"
#include "vigie/store.h"

#ifndef VG_VERSION
#define VG_VERSION "0.1.0"
#endif

#define VG_API_MAX_POINTS 10000 /* points per measures response */
#define VG_API_LIST_DEFAULT 100 /* resources per page by default */
#define VG_API_LIST_MAX 1000    /* resources per page at most */
#define VG_API_META_SCAN 100000 /* resources one metadata-filtered page reads */

/* ---- shared state (query/api/api.c) ------------------------------------------ */

/* The billing service given by vg_api_set_billing (NULL: none yet). */
struct vg_bill_service *vg_api_billing(struct vg_api *a);
/* The usage meter given by vg_api_set_meter (NULL: none). */
struct vg_bill_meter *vg_api_meter(struct vg_api *a);

/* The alarm engine, its SSE hub and PUB socket given at start (each may
 * be NULL, see struct vg_api_options). */
struct vg_alarm_engine *vg_api_alarm_engine(struct vg_api *a);
struct vg_alarm_hub *vg_api_alarm_hub(struct vg_api *a);
struct vg_alarm_pub *vg_api_alarm_pub(struct vg_api *a);

/* The API's token store (opened by vg_api_start; never NULL while the
 * server runs). */
struct vg_token_store;
struct vg_token_store *vg_api_tokens(struct vg_api *a);

/* The HTTP server's counters. */
void vg_api_http_stats(struct vg_api *a, struct vg_http_stats *out);

/* The store given at start (may be NULL: measures then answer 503). */
struct vg_store *vg_api_store(struct vg_api *a);
struct vg_lifecycle *vg_api_lifecycle(struct vg_api *a);
struct vg_cluster *vg_api_cluster(struct vg_api *a);
/* This node's view of the cluster for /v1/health (a new object), or NULL
 * without a cluster; *degraded is set to why /v1/health is degraded (the
 * state database could not be reached at the last round, or another
 * collector holds this node's name), else NULL. Without admin (the
 * request carries no admin token) it holds no node name, address or host
 * name: states, counts and ages only. */
json_t *vg_api_cluster_json(struct vg_api *a, const char **degraded, int admin);
/* The collector's data directory (never NULL; valid while a lives). */
const char *vg_api_data_dir(const struct vg_api *a);

/* This worker thread's registry handle, opened on first use and closed by
 * vg_api_stop. 0 or -errno (message logged, rate-limited). Thread-safe:
 * each thread gets its own handle. */
int vg_api_registry(struct vg_api *a, struct vg_registry **out);
/* The unit a series reads in, into unit (len bytes, "" when unknown):
 * the catalogue's query unit ("B/s"), else the unit it was published
 * with, "/s" after it for a counter ("jobs" -> "jobs/s"). kind: the
 * series' kind when read (enum vg_kind), 0 for the registry's. For the
 * measures' "unit" and the graph's legend and axis alike. */
void vg_api_series_unit(struct vg_api *a, int rtype, const char *res, const char *metric,
			int kind, char *unit, size_t len);
/* The state database as this node sees it: 0 when it answers (through the
 * calling worker's registry handle), -errno with a one-line reason in err
 * when it cannot be opened or does not answer. *shared is 1 when the state
 * is a shared server ([state] url), 0 for the sqlite files. */
int vg_api_state_ping(struct vg_api *a, int *shared, char *err, size_t errlen);

/* POST /v1/measures: the receiver given at start (NULL: none), the
 * per-project limits (never NULL while the server runs), and the time
 * bounds of struct vg_api_options. */
struct vg_receiver *vg_api_receiver(struct vg_api *a);
struct vg_pub_state *vg_api_pub_state(struct vg_api *a);
void vg_api_pub_limits(const struct vg_api *a, int64_t *max_future_ms,
		       int64_t *max_age_ms);

/* The collector's counters; -ENOENT if no stats callback was given. */
int vg_api_collector_stats(struct vg_api *a, struct vg_receiver_stats *out);

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
/* The same with the billing service given (query/api/api_invoices.c; unit
 * tests call these without a server). */
int vg_api_invoices_answer(const struct vg_bill_service *svc,
			   struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_finalize_answer(const struct vg_bill_service *svc,
			   struct vg_http_req *req, struct vg_http_resp *resp);
/* Invoice answers (drafts, lists, finalizations) that withheld an
 * adjustment of late usage past 10^12 currency units (bill_invoice.h,
 * vg_bill_withheld_last), since start; thread-safe. */
uint64_t vg_api_invoices_withheld(void);

/* Reply for a negative errno from the registry or store: -ENOENT 404,
 * -EINVAL 400, -EAGAIN/-EBUSY and -ENOTCONN/-ECONNRESET (the state
 * database does not answer) 503 with Retry-After, anything else 500;
 * `what` names the object ("resource 'x'"). Returns 0. */
struct vg_store;
int vg_api_reply_errno(struct vg_http_resp *resp, int err, const char *what);

/* The message of a read's storage fault: for err -EHOSTUNREACH (the
 * series' daemon does not answer) or -EREMOTEIO (it answers but refused
 * to FLUSH or read the file), from vg_store_fetch, 503 and into msg a
 * message naming the daemon (and the file) when admin (the request
 * carries an admin token: req->scope_project NULL), else, for a project
 * token, one that names only the series ("storage unavailable ...;
 * retry later"): a tenant never learns a daemon's address or a path on
 * its host. The detail is logged either way (vg_log_limited: the 1st and
 * every 1000th). 0 for any other err (msg untouched). A read of many
 * series (aggregates, expressions, remote read) answers it for the first
 * series that faults: a partial answer would pass for a complete one.
 * Thread-safe. */
int vg_api_storage_fault(struct vg_store *store, int rtype, const char *res,
			 const char *metric, int err, int admin, char *msg, size_t len);

/* Reply 503 with Retry-After: 5 for a series whose storage daemon does
 * not answer (-EHOSTUNREACH from vg_store_fetch), naming the daemon's
 * address when admin (vg_api_storage_fault). Returns 0. */
int vg_api_reply_unreachable(struct vg_http_resp *resp, struct vg_store *store, int rtype,
			     const char *res, const char *metric, int admin);

/* Reply 503 with Retry-After: 5 for a series whose storage daemon
 * answers but refused to FLUSH or read its file (-EREMOTEIO from
 * vg_store_fetch), naming the daemon's address and the file when admin
 * (vg_api_storage_fault). Returns 0. */
int vg_api_reply_refused(struct vg_http_resp *resp, struct vg_store *store, int rtype,
			 const char *res, const char *metric, int admin);

#endif
