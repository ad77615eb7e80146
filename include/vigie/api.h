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

/* Callback the API calls to read the collector's counters (thread-safe). */
typedef void (*vg_stats_fn)(void *ctx, struct vg_receiver_stats *out);

struct vg_api_options {
	const char *listen;    /* "127.0.0.1:7480", "[::1]:7480", ":7480" */
	const char *data_dir;  /* where registry.db lives */
	unsigned threads;      /* worker threads, >= 1 */
	struct vg_store *store;
	vg_stats_fn stats;     /* may be NULL */
	void *stats_ctx;
	/* HTTPS: PEM files of the certificate (chain) and its key, both or
	 * neither ([collector] tls_cert, tls_key). */
	const char *tls_cert;
	const char *tls_key;
};

/* Start serving. 0 or -errno with a message in err (bad address, port in
 * use, unreadable TLS files or token store). Every route but /v1/health
 * needs a bearer token (<data_dir>/tokens.db, vigie/token.h). The server
 * runs on its own threads until vg_api_stop. */
int vg_api_start(const struct vg_api_options *o, struct vg_api **out,
		 char *err, size_t errlen);
void vg_api_stop(struct vg_api *a); /* accepts NULL; waits for requests */

#endif
