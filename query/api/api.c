/*
 * api.c — the vigie JSON API: start/stop (vigie/api.h), the route table,
 * per-thread registry handles, /v1/health and the errno -> status mapping.
 *
 * Design: the generic server (http.c) owns sockets, threads, limits and
 * routing; this file wires the vigie routes into it with the API as ctx.
 * Each libmicrohttpd worker thread lazily opens its own sqlite registry
 * handle (a registry handle is single-threaded; WAL lets the readers run
 * beside the receiver's writes). Handles are found through a pthread key
 * private to this API instance and also kept in a list, so vg_api_stop can
 * close them after the workers are joined.
 *
 * Invariants: a registry handle is used by the one thread that opened it
 * until vg_api_stop, which runs after every worker has exited; the route
 * table is constant.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "vigie/api.h"
#include "vigie/cluster.h"
#include "query/api/api_handlers.h"
#include "vigie/clock.h"
#include "query/api/http.h"
#include "vigie/log.h"
#include "vigie/name.h"
#include "vigie/store.h"
#include "vigie/token.h"

struct vg_api {
	struct vg_http_server *http;
	char data_dir[512];
	char *state_url; /* NULL: sqlite files in data_dir */
	struct vg_store *store;
	struct vg_lifecycle *lifecycle;
	struct vg_cluster *cluster;
	vg_stats_fn stats;
	void *stats_ctx;
	pthread_key_t key;
	pthread_mutex_t lock; /* guards regs */
	struct vg_registry **regs;
	size_t nregs, capregs;
	uint64_t reg_errors;
	struct vg_bill_service *billing; /* atomic: set once after start */
	struct vg_bill_meter *meter;     /* atomic: set once after start */
	struct vg_token_store *tokens;   /* bearer tokens (tokens.db) */
	struct vg_alarm_engine *alarms;  /* the alarm subsystem, not owned */
	struct vg_alarm_hub *alarm_hub;
	struct vg_alarm_pub *alarm_pub;
	struct vg_receiver *receiver; /* POST /v1/measures, not owned */
	struct vg_pub_state *pub;     /* its limits, owned */
	int64_t max_future_ms, max_age_ms;
};

/* ---- the route table ------------------------------------------------------ */

static const char *const resources_params[] = {
	"type", "host", "project", "name", "state", "parent", "limit", "cursor",
	"metadata", NULL};
static const char *const measures_params[] = {
	"resource", "metric", "start", "end", "granularity", "aggregation",
	NULL};

static const char *const invoices_params[] = {"project", "month", "format", NULL};
static const char *const finalize_params[] = {"month", NULL};

#define GETS (VG_HTTP_GET | VG_HTTP_HEAD)
/* the hosts GET /v1/health lists under cluster.held_elsewhere */
#define VG_API_HELD_LIST 50

const struct vg_route vg_api_routes[] = {
	{GETS, "/v1/health", vg_api_h_health, NULL, 0, VG_ROUTE_PUBLIC},
	{GETS, "/v1/resources", vg_api_h_resources, resources_params, 0, 0},
	{GETS, "/v1/resources/{id}", vg_api_h_resource, NULL, 0, 0},
	{GETS, "/v1/measures", vg_api_h_measures, measures_params, 0, 0},
	{VG_HTTP_POST, "/v1/measures", vg_api_h_publish, NULL, VG_PUB_MAX_BODY, 0},
	/* alarms (query/api/api_alarms.c; the block is in its header) */
	VG_ALARM_ROUTES,
	{GETS, "/v1/invoices", vg_api_h_invoices, invoices_params, 0, 0},
	{VG_HTTP_POST, "/v1/invoices/finalize", vg_api_h_invoices_finalize,
	 finalize_params, 0, 0},
	/* statistics, aggregates, latest, top, graphs, /metrics, tokens */
	{GETS, "/v1/statistics", vg_api_h_statistics, vg_api_statistics_params, 0, 0},
	{GETS, "/v1/aggregates", vg_api_h_aggregates, vg_api_aggregates_params, 0, 0},
	{GETS, "/v1/resources/{id}/latest", vg_api_h_latest, NULL, 0, 0},
	{GETS, "/v1/top", vg_api_h_top, vg_api_top_params, 0, 0},
	{GETS, "/v1/graph", vg_api_h_graph, vg_api_graph_params, 0, 0},
	{GETS, "/metrics", vg_api_h_metrics, NULL, 0, 0},
	/* expressions across series (query/api/expr.c) */
	{GETS, "/v1/query", vg_api_h_query, vg_api_query_params, 0, 0},
	{VG_HTTP_POST, "/v1/query", vg_api_h_query, NULL, 64u << 10, 0},
	/* Prometheus remote read (query/api/api_remote_read.c) */
	{VG_HTTP_POST, "/api/v1/read", vg_api_h_remote_read, NULL, VG_RR_MAX_BODY, 0},
	{GETS, "/v1/tokens", vg_api_h_tokens_list, NULL, 0, 0},
	{VG_HTTP_POST, "/v1/tokens", vg_api_h_tokens_create, NULL, 64u << 10, 0},
	{GETS, "/v1/tokens/{id}", vg_api_h_token_get, NULL, 0, 0},
	{VG_HTTP_DELETE, "/v1/tokens/{id}", vg_api_h_token_revoke, NULL, 0, 0},
	{GETS, "/{path*}", vg_api_h_static, NULL, 0, VG_ROUTE_PUBLIC | VG_ROUTE_ANY_PARAMS}, /* catch-all: KEEP LAST */
};
const size_t vg_api_nroutes = sizeof(vg_api_routes) / sizeof(vg_api_routes[0]);

/* ---- shared state ------------------------------------------------------------ */

void vg_api_set_billing(struct vg_api *a, struct vg_bill_service *b)
{
	__atomic_store_n(&a->billing, b, __ATOMIC_RELEASE);
}

void vg_api_set_meter(struct vg_api *a, struct vg_bill_meter *m)
{
	__atomic_store_n(&a->meter, m, __ATOMIC_RELEASE);
}

struct vg_bill_meter *vg_api_meter(struct vg_api *a)
{
	return __atomic_load_n(&a->meter, __ATOMIC_ACQUIRE);
}

struct vg_bill_service *vg_api_billing(struct vg_api *a)
{
	return __atomic_load_n(&a->billing, __ATOMIC_ACQUIRE);
}

struct vg_alarm_engine *vg_api_alarm_engine(struct vg_api *a)
{
	return a->alarms;
}

struct vg_alarm_hub *vg_api_alarm_hub(struct vg_api *a)
{
	return a->alarm_hub;
}

struct vg_alarm_pub *vg_api_alarm_pub(struct vg_api *a)
{
	return a->alarm_pub;
}

struct vg_receiver *vg_api_receiver(struct vg_api *a)
{
	return a->receiver;
}

struct vg_pub_state *vg_api_pub_state(struct vg_api *a)
{
	return a->pub;
}

void vg_api_pub_limits(const struct vg_api *a, int64_t *max_future_ms,
		       int64_t *max_age_ms)
{
	*max_future_ms = a->max_future_ms;
	*max_age_ms = a->max_age_ms;
}

struct vg_token_store *vg_api_tokens(struct vg_api *a)
{
	return a->tokens;
}

void vg_api_http_stats(struct vg_api *a, struct vg_http_stats *out)
{
	vg_http_get_stats(a ? a->http : NULL, out);
}

const char *vg_api_data_dir(const struct vg_api *a)
{
	return a->data_dir;
}

struct vg_store *vg_api_store(struct vg_api *a)
{
	return a->store;
}

struct vg_lifecycle *vg_api_lifecycle(struct vg_api *a)
{
	return a->lifecycle;
}

struct vg_cluster *vg_api_cluster(struct vg_api *a)
{
	return a ? a->cluster : NULL;
}

json_t *vg_api_cluster_json(struct vg_api *a, const char **degraded, int admin)
{
	struct vg_cluster_stats cs;
	struct vg_alarm_engine_stats es = {0};
	json_t *o;

	*degraded = NULL;
	if (!a || !a->cluster)
		return NULL;
	vg_cluster_get_stats(a->cluster, &cs);
	if (a->alarms)
		vg_alarm_engine_get_stats(a->alarms, &es);
	if (!cs.db_ok)
		*degraded = "the state database does not answer; see \"cluster\"";
	else if (cs.name_held_elsewhere)
		*degraded = "another collector holds this node's name; see \"cluster\"";
	o = json_pack("{s:s,s:s,s:s,s:I,s:o,s:{s:I,s:I,s:I,s:I}}", "node",
		      vg_cluster_node(a->cluster), "node_name",
		      cs.name_held_elsewhere ? "held by another collector" : "held",
		      "state_database", cs.db_ok ? "reachable" : "unreachable",
		      "alarm_leases",
		      (json_int_t)es.owned, "nodes", vg_cluster_peers_json(a->cluster),
		      "stream", "published", (json_int_t)cs.published, "dropped",
		      (json_int_t)cs.stream_dropped, "received",
		      (json_int_t)cs.peer_batches, "missed", (json_int_t)cs.stream_gaps);
	if (o && !admin) {
		/* the route is public: collectors' names and addresses to an
		 * admin token only; the others see how many are alive. The
		 * alarm leases (every project's alarms) and the stream's
		 * counts move with other tenants' activity: admin only too */
		json_t *nodes = json_object_get(o, "nodes");
		size_t i;
		json_t *n;

		json_object_del(o, "node");
		json_object_del(o, "alarm_leases");
		json_object_del(o, "stream");
		json_array_foreach(nodes, i, n) {
			json_object_del(n, "node");
			json_object_del(n, "stream");
			json_object_del(n, "api");
		}
	}
	if (o && a->receiver) {
		/* holding marks (docs/scaling.md): whether this node may hold
		 * some, and the hosts it answers RETRY for another's mark
		 * (each within the last minute: an agent retries at least
		 * every 5 s), the longest waiting first: each waits for its
		 * holder, which may be dead (`vigie-collector storage marks`) */
		struct vg_receiver_stats rs;
		struct vg_receiver_held *h = calloc(VG_API_HELD_LIST, sizeof(*h));
		int capped;
		size_t n = h ? vg_receiver_held_elsewhere(a->receiver, h, VG_API_HELD_LIST,
							  &capped)
			     : 0;

		vg_receiver_get_stats(a->receiver, &rs);
		json_object_set_new(o, "holding_marks", json_boolean(rs.marks_holding));
		if (n) {
			json_t *list = json_array();
			for (size_t i = 0; i < n && i < VG_API_HELD_LIST; i++)
				json_array_append_new(
					list, json_pack("{s:s,s:s,s:I,s:I,s:I,s:b}", "host",
							h[i].host, "holder", h[i].holder,
							"since_ms", (json_int_t)h[i].since_ms,
							"last_ms", (json_int_t)h[i].last_ms,
							"batches", (json_int_t)h[i].batches,
							"unverified", h[i].unverified));
			/* the hosts' names to an admin token only: the route is
			 * public (load balancers), and compute host names are
			 * no business of a tenant or a passer-by */
			json_t *he = json_pack("{s:I,s:b,s:I}", "count", (json_int_t)n,
					       "count_capped", capped, "batches",
					       (json_int_t)rs.batches_held_elsewhere);
			if (admin)
				json_object_set_new(he, "hosts", list);
			else
				json_decref(list);
			json_object_set_new(o, "held_elsewhere", he);
			if (!*degraded)
				*degraded = "hosts' batches wait for the collector holding "
					    "their values (holding marks); see \"cluster\"";
		}
		free(h);
	}
	return o;
}

int vg_api_registry(struct vg_api *a, struct vg_registry **out)
{
	struct vg_registry *r = pthread_getspecific(a->key);
	char err[256];
	int rc;

	if (r) {
		*out = r;
		return 0;
	}
	rc = vg_registry_open_state(a->data_dir, a->state_url, &r, err, sizeof(err));
	if (rc) {
		vg_log_limited(VG_LOG_WARN, &a->reg_errors,
			       "api: cannot open the registry: %s", err);
		return rc;
	}
	pthread_mutex_lock(&a->lock);
	if (a->nregs == a->capregs) {
		size_t cap = a->capregs ? 2 * a->capregs : 8;
		struct vg_registry **n = realloc(a->regs, cap * sizeof(*n));
		if (!n) {
			pthread_mutex_unlock(&a->lock);
			vg_registry_close(r);
			return -ENOMEM;
		}
		a->regs = n;
		a->capregs = cap;
	}
	a->regs[a->nregs++] = r;
	pthread_mutex_unlock(&a->lock);
	pthread_setspecific(a->key, r);
	*out = r;
	return 0;
}

int vg_api_state_ping(struct vg_api *a, int *shared, char *err, size_t errlen)
{
	struct vg_registry *r;
	int rc;

	*shared = a->state_url && a->state_url[0];
	err[0] = '\0';
	if ((rc = vg_api_registry(a, &r))) {
		snprintf(err, errlen, "cannot open the state database: %s",
			 strerror(-rc));
		return rc;
	}
	return vg_registry_ping(r, err, errlen);
}

int vg_api_collector_stats(struct vg_api *a, struct vg_receiver_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!a->stats)
		return -ENOENT;
	a->stats(a->stats_ctx, out);
	return 0;
}

uint16_t vg_api_port(const struct vg_api *a)
{
	return a ? vg_http_port(a->http) : 0;
}

/* Storage faults a read answered (vg_api_storage_fault): their detail
 * logged at the 1st and every 1000th (vg_log_limited). */
static uint64_t n_storage_faults;

int vg_api_storage_fault(struct vg_store *store, int rtype, const char *res,
			 const char *metric, int err, int admin, char *msg, size_t len)
{
	char path[1024] = "", addr[256] = "", detail[2048];
	int rc;

	if (err != -EHOSTUNREACH && err != -EREMOTEIO)
		return 0;
	/* where only: the daemon just failed this read (its own wait
	 * spent), so no second round trip to it (vg_store_locate's FLUSH and
	 * INFO would wait for it again) */
	rc = vg_store_where(store, rtype, res, metric, path, sizeof(path), addr,
			    sizeof(addr));
	if (err == -EREMOTEIO)
		snprintf(detail, sizeof(detail),
			 "the storage daemon %s holding '%s' of '%s' refused to FLUSH or read "
			 "its file %s (the daemon's log says why; /v1/health lists the daemons)",
			 addr[0] ? addr : "(unknown)", metric, res, path[0] ? path : "(unknown)");
	/* No address: the series is recorded on an address not in [storage]
	 * daemons that the store could not keep (more than it names), or the
	 * shared placement record does not answer; name both. */
	else if (rc == -EADDRNOTAVAIL)
		snprintf(detail, sizeof(detail),
			 "'%s' of '%s' is recorded on the storage daemon %s, which is "
			 "not in [storage] daemons: list it again, or move its series "
			 "(vigie-collector storage move) before removing it "
			 "(/v1/health lists unlisted_daemons)",
			 metric, res, addr);
	else if (addr[0])
		snprintf(detail, sizeof(detail),
			 "the storage daemon %s holding '%s' of '%s' does not answer "
			 "(/v1/health lists the daemons)",
			 addr, metric, res);
	else
		snprintf(detail, sizeof(detail),
			 "'%s' of '%s' is recorded on a storage daemon that is not in "
			 "[storage] daemons (keep an address listed until its series "
			 "are moved), or the placement record does not answer "
			 "(/v1/health)",
			 metric, res);
	vg_log_limited(VG_LOG_WARN, &n_storage_faults, "api: read: %s", detail);
	/* A project token is a tenant: the storage daemons' addresses and
	 * the paths on their hosts are the operator's, as /v1/health shows
	 * them to admin tokens only. */
	if (admin)
		snprintf(msg, len, "%s", detail);
	else
		snprintf(msg, len,
			 "storage unavailable for '%s' of '%s'; retry later (the operator "
			 "finds the cause in the collector's log)",
			 metric, res);
	return 503;
}

/* Reply the 503 of vg_api_storage_fault for err, with a Retry-After. */
static int reply_fault(struct vg_http_resp *resp, struct vg_store *store, int rtype,
		       const char *res, const char *metric, int err, int admin)
{
	char msg[2048];

	vg_api_storage_fault(store, rtype, res, metric, err, admin, msg, sizeof(msg));
	vg_http_reply_error(resp, 503, "%s", msg);
	vg_http_resp_header(resp, "Retry-After", "5");
	return 0;
}

int vg_api_reply_unreachable(struct vg_http_resp *resp, struct vg_store *store, int rtype,
			     const char *res, const char *metric, int admin)
{
	return reply_fault(resp, store, rtype, res, metric, -EHOSTUNREACH, admin);
}

int vg_api_reply_refused(struct vg_http_resp *resp, struct vg_store *store, int rtype,
			 const char *res, const char *metric, int admin)
{
	return reply_fault(resp, store, rtype, res, metric, -EREMOTEIO, admin);
}

int vg_api_reply_errno(struct vg_http_resp *resp, int err, const char *what)
{
	switch (err) {
	case -ENOENT:
		vg_http_reply_error(resp, 404, "no %s", what);
		break;
	case -EINVAL:
		vg_http_reply_error(resp, 400, "invalid %s", what);
		break;
	case -EHOSTUNREACH:
		vg_http_reply_error(resp, 503,
				    "the storage daemon holding %s does not answer "
				    "(/v1/health names it)",
				    what);
		vg_http_resp_header(resp, "Retry-After", "5");
		break;
	case -EAGAIN:
	case -EBUSY:
		vg_http_reply_error(resp, 503,
				    "storage busy reading %s, retry shortly",
				    what);
		vg_http_resp_header(resp, "Retry-After", "1");
		break;
	case -ENOTCONN:   /* an API thread's first registry: opened when */
	case -ECONNRESET: /* the state database does not answer */
		vg_http_reply_error(resp, 503,
				    "the state database does not answer reading "
				    "%s, retry shortly",
				    what);
		vg_http_resp_header(resp, "Retry-After", "1");
		break;
	default:
		vg_http_reply_error(resp, 500, "error reading %s: %s", what,
				    strerror(err < 0 ? -err : err));
		break;
	}
	return 0;
}

/* ---- GET /v1/health ------------------------------------------------------------ */

/* "degraded" (still 200: the API answers) once an acknowledged value
 * could not be written to its RRD file: the operator must look
 * (docs/operations.md, "Values that cannot be written").
 * The route is public (load balancers): without an admin token the
 * answer holds states and counts only, never an address, a node name, a
 * path or an error text (a storage daemon's or the state database's
 * error names hosts, ports, users and files); an admin token sees it all
 * (docs/api.md "GET /v1/health"). */
int vg_api_h_health(struct vg_http_req *req, struct vg_http_resp *resp)
{
	int admin = req->ctx && vg_api_request_is_admin(req->ctx, req);
	struct vg_store *store = req->ctx ? vg_api_store(req->ctx) : NULL;
	struct vg_store_stats ss = {0};
	struct vg_store_daemon dm[16];
	size_t nd = 0, down = 0, nocreate = 0, refusing = 0, vanished = 0;
	json_t *o, *daemons = NULL, *state = NULL, *unlisted = NULL;
	char now[32], serr[256] = "";
	int shared = 0, state_rc = 0;

	if (store) {
		vg_store_get_stats(store, &ss);
		nd = vg_store_daemons(store, dm, sizeof(dm) / sizeof(dm[0]));
	}
	if (req->ctx) {
		/* the state database (registry, tokens, alarms, billing): a
		 * node that cannot reach it answers no batch (RETRY) */
		state_rc = vg_api_state_ping(req->ctx, &shared, serr, sizeof(serr));
		state = json_pack("{s:s,s:b}", "state", state_rc ? "down" : "up",
				  "shared", shared);
		if (state_rc) {
			/* no token can be checked while it is down, so even an
			 * admin sees no error text here: the log has it */
			static uint64_t n_down;
			vg_log_limited(VG_LOG_WARN, &n_down,
				       "health: the state database does not answer: %s", serr);
		}
		if (state && admin)
			json_object_set_new(state, "error", json_string(serr));
	}
	vg_time_format(req->now_ms, now, sizeof(now));
	if (nd) {
		/* Each storage daemon: its series wait in the journal while it
		 * is down (docs/operations.md, "Storage on rrdcached"). */
		daemons = json_array();
		for (size_t i = 0; i < nd; i++) {
			down += !dm[i].up && dm[i].calls + dm[i].errors > 0;
			nocreate += dm[i].cannot_create != 0;
			refusing += dm[i].flush_refusing != 0;
			vanished += dm[i].vanished != 0;
			json_t *d = json_pack(
				"{s:s,s:I,s:I,s:I,s:I}", "state",
				dm[i].up                     ? (dm[i].flush_refusing ? "degraded" : "up")
				: dm[i].calls + dm[i].errors ? "down"
							     : "unused",
				"pending_files", (json_int_t)dm[i].pending, "lost_files",
				(json_int_t)dm[i].lost, "repairs", (json_int_t)dm[i].repairs,
				"errors", (json_int_t)dm[i].errors);
			if (d) {
				json_object_set_new(d, "create_errors",
						    json_integer((json_int_t)dm[i].create_errors));
				json_object_set_new(d, "flush_refused",
						    json_integer((json_int_t)dm[i].flush_refused));
				json_object_set_new(d, "flush_refusing",
						    json_boolean(dm[i].flush_refusing));
				json_object_set_new(d, "vanished_files",
						    json_integer((json_int_t)dm[i].vanished));
				json_object_set_new(d, "unwritten_files",
						    json_integer((json_int_t)dm[i].unwritten));
			}
			/* the cause names no host: every token sees it */
			if (d && dm[i].cannot_create)
				json_object_set_new(d, "cause",
						    json_string(VG_STORE_CAUSE_NO_DIRS));
			if (d && admin) {
				json_object_set_new(d, "address", json_string(dm[i].address));
				json_object_set_new(d, "error", json_string(dm[i].error));
				/* the daemon's answer names a file: admin only */
				if (dm[i].flush_refusing)
					json_object_set_new(d, "flush_refusal",
							    json_string(dm[i].flush_refusal));
			}
			json_array_append_new(daemons, d);
		}
	}
	if (store) {
		/* series recorded on a daemon no longer listed: their reads
		 * answer 503 until it is listed again (docs/operations.md,
		 * "Moving series between daemons") */
		struct vg_store_unlisted ul[16];
		size_t nu = vg_store_unlisted(store, ul, sizeof(ul) / sizeof(ul[0]), 0);
		if (nu) {
			unlisted = json_array();
			for (size_t i = 0; i < nu; i++)
				json_array_append_new(
					unlisted,
					admin ? json_pack("{s:s,s:I}", "address", ul[i].address,
							  "series", (json_int_t)ul[i].series)
					      : json_pack("{s:I}", "series", (json_int_t)ul[i].series));
		}
	}
	/* values held back by the store itself: series whose type directory
	 * is missing (a volume not mounted), a cache full (every batch
	 * answered RETRY); counts only, never a path */
	int dirwait = ss.series_dir_waiting != 0, cachefull = ss.cache_refusing != 0;
	if (ss.write_errors || down || nocreate || refusing || vanished || state_rc || unlisted ||
	    dirwait || cachefull)
		o = json_pack("{s:s,s:s,s:s,s:I,s:s}", "status", "degraded", "version",
			      VG_VERSION, "time", now, "store_write_errors",
			      (json_int_t)ss.write_errors, "reason",
			      state_rc    ? "the state database does not answer; see \"state_db\""
			      : down      ? "a storage daemon does not answer; see \"storage\""
			      : dirwait   ? (cachefull ? "values wait: series directories are missing "
							 "(a data volume not mounted?), and the "
							 "write-behind cache is full: batches are "
							 "answered RETRY; see the collector's log"
						       : "values wait: series directories are missing "
							 "(a data volume not mounted?); see the "
							 "collector's log")
			      : cachefull ? "the write-behind cache is full: batches are answered "
					    "RETRY; see the collector's log"
			      : nocreate  ? "a storage daemon cannot create new series (start "
					    "rrdcached with -R); see \"storage\""
			      : refusing  ? "a storage daemon refuses the sync's FLUSH, or did not "
					    "write a file it FLUSHed: values wait in the journal; "
					    "see \"storage\""
			      : vanished  ? "series files were deleted under a storage daemon "
					    "while it held acknowledged values for them; see "
					    "\"storage\" and the collector's log"
			      : unlisted  ? "series are recorded on a storage daemon that is not in "
					    "[storage] daemons; see \"unlisted_daemons\""
					  : "values could not be written to their "
					    "RRD files; see the collector's log");
	else
		o = json_pack("{s:s,s:s,s:s}", "status", "ok", "version", VG_VERSION,
			      "time", now);
	if (dirwait)
		json_object_set_new(o, "series_dir_waiting",
				    json_integer((json_int_t)ss.series_dir_waiting));
	if (cachefull)
		json_object_set_new(o, "cache_full", json_true());
	if (state)
		json_object_set_new(o, "state_db", state);
	if (daemons)
		json_object_set_new(o, "storage", daemons);
	if (unlisted)
		json_object_set_new(o, "unlisted_daemons", unlisted);
	if (store) { /* the shared placement record (docs/operations.md) */
		struct vg_store_placement pl;
		vg_store_placement(store, &pl);
		if (pl.shared) {
			json_t *po = json_pack("{s:s,s:I,s:I,s:I}", "state", pl.up ? "up" : "down",
					       "lookups", (json_int_t)pl.lookups, "claims",
					       (json_int_t)pl.claims, "errors", (json_int_t)pl.errors);
			if (po && admin)
				json_object_set_new(po, "error", json_string(pl.error));
			json_object_set_new(o, "placement", po);
		}
	}
	{ /* several collectors: this node's view (docs/operations.md) */
		const char *why = NULL;
		json_t *cl = vg_api_cluster_json(req->ctx, &why, admin);
		if (cl) {
			json_object_set_new(o, "cluster", cl);
			if (why) {
				json_object_set_new(o, "status", json_string("degraded"));
				json_object_set_new(o, "reason", json_string(why));
			}
		}
	}
	return vg_http_reply_json(resp, 200, o);
}

/* ---- start / stop ------------------------------------------------------------------ */

/* Read a PEM file whole (at most 1 MiB) into *out (malloc'd). */
static int read_pem(const char *what, const char *path, char **out, char *err,
		    size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	*out = NULL;
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "[collector] %s: %s: %s", what, path, strerror(e));
		return -e;
	}
	buf = malloc((1u << 20) + 1);
	n = buf ? fread(buf, 1, 1u << 20, f) : 0;
	fclose(f);
	if (!buf || !n || n == (1u << 20)) {
		free(buf);
		snprintf(err, errlen, "[collector] %s: %s: %s", what, path,
			 !buf ? "out of memory" : n ? "larger than 1 MiB"
						    : "empty");
		return buf ? -EINVAL : -ENOMEM;
	}
	buf[n] = '\0';
	if (!strstr(buf, "-----BEGIN ")) {
		free(buf);
		snprintf(err, errlen, "[collector] %s: %s: not a PEM file", what, path);
		return -EINVAL;
	}
	*out = buf;
	return 0;
}

int vg_api_tls_read(const char *cert, const char *key, char **cert_pem, char **key_pem,
		    char *err, size_t errlen)
{
	int has_cert = cert && *cert, has_key = key && *key, rc;
	char *c = NULL, *k = NULL;

	if (cert_pem)
		*cert_pem = NULL;
	if (key_pem)
		*key_pem = NULL;
	if (has_cert != has_key) {
		snprintf(err, errlen,
			 "[collector] %s = %s is set without %s: TLS needs both "
			 "tls_cert and tls_key",
			 has_cert ? "tls_cert" : "tls_key", has_cert ? cert : key,
			 has_cert ? "tls_key" : "tls_cert");
		return -EINVAL;
	}
	if (!has_cert)
		return 0;
	if ((rc = read_pem("tls_cert", cert, &c, err, errlen)))
		return rc;
	if ((rc = read_pem("tls_key", key, &k, err, errlen))) {
		free(c);
		return rc;
	}
	if (cert_pem)
		*cert_pem = c;
	else
		free(c);
	if (key_pem) {
		*key_pem = k;
	} else {
		OPENSSL_cleanse(k, strlen(k));
		free(k);
	}
	return 0;
}

int vg_api_listen_check(const char *addr, char *err, size_t errlen)
{
	struct vg_listen_addr a;

	return vg_listen_parse(addr, &a, err, errlen) ? -EINVAL : 0;
}

int vg_api_start(const struct vg_api_options *o, struct vg_api **out,
		 char *err, size_t errlen)
{
	struct vg_http_options ho = {0};
	struct vg_api *a;
	char *cert = NULL, *key = NULL;
	int rc;

	*out = NULL;
	if (!o || !o->listen || !o->data_dir || !*o->data_dir) {
		snprintf(err, errlen, "api: listen address and data_dir needed");
		return -EINVAL;
	}
	if (strlen(o->data_dir) >= sizeof(a->data_dir)) {
		snprintf(err, errlen, "api: data_dir too long");
		return -ENAMETOOLONG;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(a->data_dir, sizeof(a->data_dir), "%s", o->data_dir);
	if (o->state_url && *o->state_url && !(a->state_url = strdup(o->state_url))) {
		free(a);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	a->store = o->store;
	a->lifecycle = o->lifecycle;
	a->cluster = o->cluster;
	a->stats = o->stats;
	a->stats_ctx = o->stats_ctx;
	a->alarms = o->alarms;
	a->alarm_hub = o->alarm_hub;
	a->alarm_pub = o->alarm_pub;
	a->receiver = o->receiver;
	a->max_future_ms = o->max_future_ms;
	a->max_age_ms = o->max_age_ms;
	if (!(a->pub = vg_pub_state_new(o->publish_points_per_s,
					o->publish_series_max))) {
		snprintf(err, errlen, "out of memory");
		free(a);
		return -ENOMEM;
	}
	pthread_mutex_init(&a->lock, NULL);
	rc = pthread_key_create(&a->key, NULL);
	if (rc) {
		snprintf(err, errlen, "api: pthread_key_create: %s",
			 strerror(rc));
		pthread_mutex_destroy(&a->lock);
		free(a->state_url);
		vg_pub_state_free(a->pub);
		free(a);
		return -rc;
	}
	rc = vg_token_store_open_state(o->data_dir, o->state_url, o->state_token_key,
				       &a->tokens, err, errlen);
	if (!rc)
		rc = vg_api_tls_read(o->tls_cert, o->tls_key, &cert, &key, err, errlen);
	if (!rc) {
		ho.listen = o->listen;
		ho.threads = o->threads ? o->threads : 1;
		ho.max_per_scope = o->max_per_project ? o->max_per_project
				   : ho.threads > 1   ? ho.threads - 1
						      : 1;
		ho.queue_per_scope = !o->queue_per_project ? VG_API_QUEUE_PER_PROJECT
				     : o->queue_per_project == VG_API_NO_QUEUE
					     ? 0
					     : o->queue_per_project;
		ho.queue_wait_ms = o->queue_wait_ms;
		ho.routes = vg_api_routes;
		ho.nroutes = vg_api_nroutes;
		ho.authorize = vg_api_authorize; /* bearer tokens, api_tokens.c */
		ho.ctx = a;
		ho.tls_cert_pem = cert;
		ho.tls_key_pem = key;
		rc = vg_http_start(&ho, &a->http, err, errlen);
	}
	if (key) {
		OPENSSL_cleanse(key, strlen(key));
		free(key);
	}
	free(cert);
	if (rc) {
		vg_token_store_close(a->tokens);
		pthread_key_delete(a->key);
		pthread_mutex_destroy(&a->lock);
		free(a->state_url);
		vg_pub_state_free(a->pub);
		free(a);
		return rc;
	}
	if (!vg_token_count_active(a->tokens))
		vg_warn("api: no API token yet: every request but /v1/health "
			"gets 401; create one with 'vigie-collector --data-dir "
			"%s token create --admin'",
			a->data_dir);
	*out = a;
	return 0;
}

void vg_api_stop(struct vg_api *a)
{
	if (!a)
		return;
	vg_http_stop(a->http); /* no handler runs after this */
	for (size_t i = 0; i < a->nregs; i++)
		vg_registry_close(a->regs[i]);
	free(a->regs);
	vg_token_store_close(a->tokens);
	pthread_key_delete(a->key);
	pthread_mutex_destroy(&a->lock);
	free(a->state_url);
	vg_pub_state_free(a->pub);
	free(a);
}
