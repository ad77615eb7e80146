/*
 * vigie — the expression language of GET/POST /v1/query (query/api/
 * expr_parse.c parses, query/api/expr.c evaluates). The language is
 * documented in docs/api.md ("Expressions"); in short:
 *
 *   expr     := term (('+' | '-') term)*
 *   term     := unary (('*' | '/') unary)*
 *   unary    := '-' unary | primary
 *   primary  := NUMBER | '(' expr ')' | FUNC '(' args ')' | selector
 *   selector := METRIC [ '{' matcher (',' matcher)* '}' ]
 *   matcher  := LABEL ('=' | '!=') STRING
 *   args     := arg (',' arg)*        arg := expr | 'by' '=' LABEL
 *
 * The parser is pure and bounded (text, nodes, depth, matchers), so it is
 * fuzzed alone (tests/fuzz/expr_fuzz.c); every error gives the byte
 * offset in the text it is about.
 */
#ifndef VIGIE_API_EXPR_H
#define VIGIE_API_EXPR_H

#include <stddef.h>

#include "query/api/http.h"

#define VG_EXPR_MAX_LEN 4096      /* bytes of expression text */
#define VG_EXPR_MAX_NODES 256     /* syntax tree nodes */
#define VG_EXPR_MAX_DEPTH 32      /* nesting */
#define VG_EXPR_MAX_MATCHERS 16   /* matchers in one selector */
#define VG_EXPR_MAX_SERIES 5000   /* series read per request */
#define VG_EXPR_MAX_CELLS 4000000 /* values held per request (all steps) */
#define VG_EXPR_MAX_MS 10000      /* evaluation time per request */
#define VG_EXPR_FETCH_THREADS 4   /* threads reading one selector's files */

enum vg_expr_kind {
	VG_EXPR_NUM,   /* num */
	VG_EXPR_SEL,   /* name = metric, m[] matchers; bare: no braces */
	VG_EXPR_NEG,   /* a[0] */
	VG_EXPR_BIN,   /* a[0] op a[1] */
	VG_EXPR_CALL,  /* fn(a[0..na)) */
	VG_EXPR_NAMED, /* name '=' word (by=project), word in word */
};

enum vg_expr_fn {
	VG_FN_RESAMPLE,
	VG_FN_ROLLING,
	VG_FN_FILL,
	VG_FN_SUM,
	VG_FN_MEAN,
	VG_FN_MAX,
	VG_FN_MIN,
	VG_FN_COUNT,
	VG_FN_PCT,
	VG_FN_TOP,
	VG_FN_BOTTOM,
	VG_FN_ABS,
};

/* How a window or group is combined (resample, rolling, top/bottom). */
enum vg_expr_agg { VG_AGG_MEAN,
		   VG_AGG_SUM,
		   VG_AGG_MIN,
		   VG_AGG_MAX,
		   VG_AGG_COUNT };

struct vg_expr_matcher {
	char *label; /* id, type, project, host, flavor, name, parent,
			metadata.KEY */
	char *value;
	int neg; /* != */
	int pos;
};

struct vg_expr_node {
	int kind, pos; /* pos: byte offset of the node's first token */
	double num;
	char op;    /* '+', '-', '*', '/' */
	int fn;     /* enum vg_expr_fn */
	double pct; /* VG_FN_PCT: 0 < pct <= 100 */
	char *name; /* selector metric, named argument's name */
	char *word; /* named argument's value */
	int bare;   /* a selector without braces (may be a keyword) */
	struct vg_expr_matcher *m;
	size_t nm;
	struct vg_expr_node *a[4];
	size_t na;
	/* filled by the parser's check of a call's arguments */
	int agg;        /* enum vg_expr_agg for resample/rolling/top/bottom */
	long iarg;      /* seconds, K, N */
	int fill_prev;  /* fill(x, previous) */
	const char *by; /* group label for aggregations, NULL for none */
};

struct vg_expr {
	struct vg_expr_node *root;
	struct vg_expr_node *nodes; /* all nodes, one allocation */
	size_t nnodes;
};

/* Parse text (NUL-terminated, at most VG_EXPR_MAX_LEN bytes). 0 with *out
 * (free with vg_expr_free), or -EINVAL with a message for people in err
 * and the byte offset it is about in *pos; -ENOMEM. Pure, thread-safe. */
int vg_expr_parse(const char *text, struct vg_expr **out, char *err,
		  size_t errlen, int *pos);
void vg_expr_free(struct vg_expr *e); /* accepts NULL */

/* Function name for messages ("resample"). */
const char *vg_expr_fn_name(int fn);

/* GET /v1/query and POST /v1/query (query/api/expr.c). */
int vg_api_h_query(struct vg_http_req *req, struct vg_http_resp *resp);
extern const char *const vg_api_query_params[];

#endif
