/*
 * vigie — the HTTP JSON API server (query/), run inside the collector.
 *
 * libmicrohttpd with a small thread pool; every handler reads the registry
 * (one sqlite handle per server thread) and the RRD store (librrd's
 * thread-safe fetch). Endpoints and their JSON are in docs/api.md.
 */
#ifndef VIGIE_API_H
#define VIGIE_API_H

#include <stddef.h>
#include <stdint.h>

#include "vigie/config.h"
#include "vigie/receiver.h" /* the receiver's counters, for GET /metrics */
#include "vigie/store.h"

struct vg_api;
struct vg_alarm_engine;
struct vg_alarm_hub;
struct vg_alarm_pub;
struct vg_bill_service;

/* Callback the API calls to read the collector's counters (thread-safe). */
#define VG_API_QUEUE_PER_PROJECT 64
#define VG_API_NO_QUEUE (~0u)

typedef void (*vg_stats_fn)(void *ctx, struct vg_receiver_stats *out);

struct vg_api_options {
	const char *listen;   /* "127.0.0.1:7480", "[::1]:7480", ":7480" */
	const char *data_dir; /* where registry.db lives */
	/* [state] url: the registry and tokens of a shared PostgreSQL (NULL
	 * or "": sqlite files in data_dir); each HTTP thread's registry
	 * handle opens it. state_token_key: the tokens' key file (NULL or "":
	 * <data_dir>/tokens.key). */
	const char *state_url;
	const char *state_token_key;
	unsigned threads; /* worker threads, >= 1 */
	/* Requests one project may have in flight at once (admin tokens
	 * share one bucket of their own with the same cap); over it a 429
	 * with Retry-After (docs/api.md "Limits"). 0: threads - 1, at least
	 * 1, so that one tenant never holds every worker. */
	unsigned max_per_project;
	/* The queue in front of that cap (docs/api.md "Requests in flight
	 * per project"): requests of a project over its cap that wait in
	 * turn for a place, at most queue_per_project (0: the default,
	 * VG_API_QUEUE_PER_PROJECT, as [collector] http_queue_per_project's;
	 * VG_API_NO_QUEUE: none, 429 at once) and each at most queue_wait_ms
	 * (0: 5000), then the same 429. */
	unsigned queue_per_project;
	unsigned queue_wait_ms;
	struct vg_store *store;
	vg_stats_fn stats; /* may be NULL */
	void *stats_ctx;
	/* HTTPS: PEM files of the certificate (chain) and its key, both or
	 * neither ([collector] tls_cert, tls_key). */
	const char *tls_cert;
	const char *tls_key;
	/* The alarm subsystem (vigie/alarm_engine.h), not owned; each must
	 * outlive vg_api_stop. alarms NULL: every /v1/alarms route answers
	 * 503. alarm_hub NULL: no /v1/alarms/stream (503). alarm_pub NULL:
	 * GET /metrics shows no PUB socket counters. */
	struct vg_alarm_engine *alarms;
	struct vg_alarm_hub *alarm_hub;
	struct vg_alarm_pub *alarm_pub;
	/* The lifecycle of ended series (vigie/lifecycle.h), not owned, or
	 * NULL: /metrics then shows no storage usage. */
	struct vg_lifecycle *lifecycle;
	/* The node registry and metric stream (vigie/cluster.h), not owned,
	 * or NULL (a single collector): /v1/health and /metrics then show no
	 * cluster. */
	struct vg_cluster *cluster;
	/* Published measures (POST /v1/measures; query/api/api_publish.c).
	 * receiver NULL: the route answers 503. The rest as in vg_config:
	 * max_future_ms 0 is no check; max_age_ms is the longest archive's
	 * retention (0: no check); the two limits 0 take their defaults. */
	struct vg_receiver *receiver;
	int64_t max_future_ms;
	int64_t max_age_ms;
	uint32_t publish_points_per_s;
	uint32_t publish_series_max;
};

/* Whether addr is an address the API can listen on (docs/api.md, "Listen
 * address": HOST:PORT, [IPv6]:PORT, :PORT, *:PORT, localhost:PORT, no
 * names): 0, or -EINVAL with the reason in err. Lets the collector refuse
 * a bad [collector] http before it opens anything. Thread-safe. */
int vg_api_listen_check(const char *addr, char *err, size_t errlen);

/* The TLS files of [collector] tls_cert and tls_key, read as vg_api_start
 * reads them: both or neither set, each a readable PEM file of at most
 * 1 MiB. 0 with *cert_pem and *key_pem malloc'd (NULL when neither is
 * set; the caller wipes the key and frees both), or -errno with err
 * naming the key and the file (`config check` and the start, exit 2).
 * Either out pointer may be NULL: the file is checked, not kept. */
int vg_api_tls_read(const char *cert, const char *key, char **cert_pem, char **key_pem,
		    char *err, size_t errlen);

/* Start serving. 0 or -errno with a message in err (bad address, port in
 * use, unreadable TLS files or token store). Every route but /v1/health
 * needs a bearer token (vigie/token.h: tokens.db or the shared state). The server
 * runs on its own threads until vg_api_stop. */
int vg_api_start(const struct vg_api_options *o, struct vg_api **out,
		 char *err, size_t errlen);
void vg_api_stop(struct vg_api *a); /* accepts NULL; waits for requests */

/* The bound port (useful after listening on port 0); 0 for NULL. */
uint16_t vg_api_port(const struct vg_api *a);

/* Billing: the collector hands its billing service over once the API runs
 * (thread-safe; NULL until then: invoices answer 503). Not owned; call
 * with NULL, or stop the API, before closing the service. */
void vg_api_set_billing(struct vg_api *a, struct vg_bill_service *b);
/* The collector's usage meter, for its counters on /metrics (thread-safe;
 * NULL: none). Not owned; stop the API before closing the meter. */
struct vg_bill_meter;
void vg_api_set_meter(struct vg_api *a, struct vg_bill_meter *m);

#endif
