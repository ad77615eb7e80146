/*
 * vigie — GET /v1/graph (query/api/api_graph.c): a PNG drawn by
 * rrd_graph from the store's files. Building the argument vector is pure
 * (unit-tested); drawing is serialised.
 */
#ifndef VIGIE_API_GRAPH_H
#define VIGIE_API_GRAPH_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "query/api/http.h"

#define VG_API_GRAPH_MAX_SERIES 8
#define VG_API_GRAPH_TITLE_MAX 200  /* bytes */
#define VG_API_GRAPH_LEGEND_MAX 100 /* bytes */
#define VG_API_GRAPH_DEF_WIDTH 800
#define VG_API_GRAPH_DEF_HEIGHT 250
#define VG_API_GRAPH_MIN_WIDTH 100
#define VG_API_GRAPH_MAX_WIDTH 3000
#define VG_API_GRAPH_MIN_HEIGHT 50
#define VG_API_GRAPH_MAX_HEIGHT 2000

int vg_api_h_graph(struct vg_http_req *req, struct vg_http_resp *resp);
extern const char *const vg_api_graph_params[]; /* for the route table */

struct vg_api_graph_line {
	char path[PATH_MAX];                          /* the RRD file: built by the server only */
	char daemon[256];                             /* its rrdcached daemon, "" for a local file */
	char legend[4 * VG_API_GRAPH_LEGEND_MAX + 8]; /* raw text */
	int legend_strict;                            /* 1: from the request (refuse bad bytes);
				  0: a default (replace them) */
	int cf;                                       /* enum vg_cf */
	int rtype;
};

struct vg_api_graph_spec {
	int64_t start_ms, end_ms;
	unsigned width, height;
	const char *title; /* raw request text or NULL */
	char vlabel[64];   /* unit of the first series */
	size_t n;
	struct vg_api_graph_line line[VG_API_GRAPH_MAX_SERIES];
};

struct vg_api_graph_args {
	int argc;
	char *argv[64]; /* NULL-terminated, pointing into buf */
	char buf[32768];
	size_t used;
};

/* The legend of a series the request did not name: "RESOURCE METRIC
 * (unit)" (no parentheses for a NULL or empty unit), the resource id cut
 * to at most 60 bytes and the metric to 40, each on a UTF-8 character
 * boundary (Pango refuses a split character), the id shorter still if the
 * whole would pass VG_API_GRAPH_LEGEND_MAX bytes. Raw text for
 * vg_api_graph_text (non-strict). Pure. */
void vg_api_graph_default_legend(const char *res, const char *metric,
				 const char *unit, char *out, size_t outlen);

/* Make text safe for rrd_graph into out: legend=1 escapes ':' as "\:";
 * strict=1 refuses (-EINVAL) control characters, backslashes and invalid
 * UTF-8, strict=0 replaces control characters and backslashes by '?'.
 * -ENAMETOOLONG beyond VG_API_GRAPH_LEGEND_MAX / VG_API_GRAPH_TITLE_MAX bytes or
 * if out is too small. Pure. */
int vg_api_graph_text(const char *in, int legend, int strict, char *out,
		      size_t outlen);

/* The rrd_graph argument vector for g. -EINVAL (message in err) for a bad
 * title or legend, sizes or range; -ENOTSUP for a file path holding ':'
 * or '\'. Pure. */
int vg_api_graph_build(const struct vg_api_graph_spec *g, struct vg_api_graph_args *a,
		       char *err, size_t errlen);

/* Draw: *png (malloc'd, caller frees) and *len. legends (may be NULL) gets
 * a new array of the legend texts librrd reports, plus "PRINT" for any
 * PRINT result (tests assert there is none). Serialised by a mutex.
 * 0 or -EIO with librrd's message in err. */
int vg_api_graph_render(const struct vg_api_graph_args *a, char **png, size_t *len,
			json_t **legends, char *err, size_t errlen);

#endif
