/*
 * vigie — the query endpoints inside the JSON API: tenants
 * (bearer tokens), statistics, aggregates, latest values and top, graphs
 * and the Prometheus exposition (query/api_tokens.c, api_statistics.c,
 * api_aggregates.c, api_latest.c, api_graph.c, api_prometheus.c).
 * docs/api.md documents each endpoint; this header is what those files
 * share with query/api.c and with their unit tests.
 *
 * Every handler honours req->scope_project (set by vg_api_authorize for a
 * project token): another project's resource is a 404, another project's
 * filter an empty result, so nothing tells whether it exists. Handlers are
 * thread-safe (each worker thread has its own registry handle; the token
 * store and the store are shared and locked inside).
 */
#ifndef VIGIE_API_QUERY_H
#define VIGIE_API_QUERY_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "vigie/api.h"
#include "vigie/http.h"
#include "vigie/registry.h"
#include "vigie/store.h"

struct vg_token_store;

/* ---- limits (docs/api.md) ---------------------------------------------- */

#define VG_API_LATEST_WINDOW_S 900      /* a counter's rate: newest point within */
#define VG_API_TOP_DEFAULT 10
#define VG_API_TOP_MAX 1000
#define VG_API_SCAN_MAX 100000          /* resources one top/aggregate scans */
#define VG_API_AGG_MAX_RESOURCES 5000   /* series one aggregate combines */
#define VG_API_STATS_MAX 16             /* statistics per request */
#define VG_API_STATS_MAX_POINTS 100000  /* finer points read per request */
#define VG_API_STATS_DEFAULT_PERIOD 300
#define VG_API_STATS_MAX_PERIOD (366 * 86400)

#define VG_GRAPH_MAX_SERIES 8
#define VG_GRAPH_TITLE_MAX 200          /* bytes */
#define VG_GRAPH_LEGEND_MAX 100         /* bytes */
#define VG_GRAPH_DEF_WIDTH 800
#define VG_GRAPH_DEF_HEIGHT 250
#define VG_GRAPH_MIN_WIDTH 100
#define VG_GRAPH_MAX_WIDTH 3000
#define VG_GRAPH_MIN_HEIGHT 50
#define VG_GRAPH_MAX_HEIGHT 2000

/* ---- shared state (query/api.c) ----------------------------------------- */

/* The API's token store (opened by vg_api_start; never NULL while the
 * server runs). */
struct vg_token_store *vg_api_tokens(struct vg_api *a);

/* The HTTP server's counters. */
void vg_api_http_stats(struct vg_api *a, struct vg_http_stats *out);

/* ---- tenants (query/api_tokens.c) ----------------------------------------- */

/* The server's authorisation hook (vg_http_authorize_fn; ctx is the
 * struct vg_api): 401 with WWW-Authenticate for a missing, malformed,
 * unknown or revoked bearer token; otherwise 0 with req->scope_project
 * set for a project token (NULL for an admin token). */
int vg_api_authorize(void *ctx, struct vg_http_req *req,
		     struct vg_http_resp *resp);

int vg_api_h_tokens_list(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_tokens_create(struct vg_http_req *req, struct vg_http_resp *resp);
/* The body of POST /v1/tokens: {"admin":true} or {"project":"P"}, with an
 * optional "name" (no other field). 0 with *doc a new JSON object (caller
 * decrefs) and *project / *name pointing into it (NULL when absent; a NULL
 * project means an admin token); or -EINVAL with *doc NULL and the 400
 * message in err. Names and projects are checked by vg_token_create.
 * Pure (the handler's parsing, apart so the fuzzer can reach it). */
int vg_api_token_request_parse(const char *body, size_t len, json_t **doc,
			       const char **project, const char **name,
			       char *err, size_t errlen);
int vg_api_h_token_get(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_token_revoke(struct vg_http_req *req, struct vg_http_resp *resp);

/* ---- handlers ------------------------------------------------------------- */

int vg_api_h_statistics(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_aggregates(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_latest(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_top(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_graph(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_metrics(struct vg_http_req *req, struct vg_http_resp *resp);

/* Accepted query parameters, for the route table. */
extern const char *const vg_api_statistics_params[];
extern const char *const vg_api_aggregates_params[];
extern const char *const vg_api_top_params[];
extern const char *const vg_api_graph_params[];

/* ---- the resource scan (query/api_latest.c) -------------------------------- */

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

/* A counter's current rate: the newest known point of the finest archive
 * in the VG_API_LATEST_WINDOW_S before last_ms. 0 with *value and *time_ms
 * (start of that point's interval); -ENODATA if none; -ENOENT no file. */
int vg_api_latest_rate(struct vg_store *store, int rtype, const char *id,
		       const char *metric, int64_t last_ms, double *value,
		       int64_t *time_ms);

/* ---- statistics (query/api_statistics.c), pure ------------------------------ */

enum vg_api_stat_kind {
	VG_QSTAT_SAMPLE_COUNT,
	VG_QSTAT_SUM,
	VG_QSTAT_AVERAGE,
	VG_QSTAT_MINIMUM,
	VG_QSTAT_MAXIMUM,
	VG_QSTAT_PERCENTILE,
};

struct vg_api_stat {
	int kind;      /* enum vg_api_stat_kind */
	double p;      /* percentile, 0 < p <= 100 */
	char name[32]; /* canonical: "SampleCount", "p99", "p99.9" */
};

/* "SampleCount,Average,p99" (case-insensitive names; NULL = the five basic
 * statistics) into out[0..*n). -EINVAL with a message in err for an
 * unknown or repeated statistic, a bad percentile or more than max. */
int vg_api_parse_statistics(const char *s, struct vg_api_stat *out,
			    size_t max, size_t *n, char *err, size_t errlen);

/* Nearest-rank percentile of n sorted values (NaN for n == 0). */
double vg_api_percentile(const double *sorted, size_t n, double p);

/* "period": NULL -> VG_API_STATS_DEFAULT_PERIOD; an integer 60..max. */
int vg_api_parse_period(const char *s, uint32_t *out);

/* ---- graphs (query/api_graph.c) ------------------------------------------------ */

struct vg_graph_line {
	char path[PATH_MAX];   /* the RRD file: built by the server only */
	char legend[4 * VG_GRAPH_LEGEND_MAX + 8]; /* raw text */
	int legend_strict;     /* 1: from the request (refuse bad bytes);
				  0: a default (replace them) */
	int cf;                /* enum vg_cf */
	int rtype;
};

struct vg_graph_spec {
	int64_t start_ms, end_ms;
	unsigned width, height;
	const char *title;     /* raw request text or NULL */
	char vlabel[64];       /* unit of the first series */
	size_t n;
	struct vg_graph_line line[VG_GRAPH_MAX_SERIES];
};

struct vg_graph_args {
	int argc;
	char *argv[64];        /* NULL-terminated, pointing into buf */
	char buf[32768];
	size_t used;
};

/* Make text safe for rrd_graph into out: legend=1 escapes ':' as "\:";
 * strict=1 refuses (-EINVAL) control characters, backslashes and invalid
 * UTF-8, strict=0 replaces control characters and backslashes by '?'.
 * -ENAMETOOLONG beyond VG_GRAPH_LEGEND_MAX / VG_GRAPH_TITLE_MAX bytes or
 * if out is too small. Pure. */
int vg_graph_text(const char *in, int legend, int strict, char *out,
		  size_t outlen);

/* The rrd_graph argument vector for g. -EINVAL (message in err) for a bad
 * title or legend, sizes or range; -ENOTSUP for a file path holding ':'
 * or '\'. Pure. */
int vg_graph_build(const struct vg_graph_spec *g, struct vg_graph_args *a,
		   char *err, size_t errlen);

/* Draw: *png (malloc'd, caller frees) and *len. legends (may be NULL) gets
 * a new array of the legend texts librrd reports, plus "PRINT" for any
 * PRINT result (tests assert there is none). Serialised by a mutex.
 * 0 or -EIO with librrd's message in err. */
int vg_graph_render(const struct vg_graph_args *a, char **png, size_t *len,
		    json_t **legends, char *err, size_t errlen);

/* ---- Prometheus text format (query/api_prometheus.c), pure ------------------- */

/* Append s escaped as a label value (\\, \", \n). */
void vg_prom_label_value(struct vg_buf *b, const char *s);
/* "vigie_" + metric with [^a-zA-Z0-9_] -> '_', + "_total" for a counter. */
void vg_prom_name(const char *metric, int counter, char *out, size_t len);
/* A sample value: shortest round-trip decimal, NaN, +Inf, -Inf. */
void vg_prom_value(struct vg_buf *b, double v);

#endif
