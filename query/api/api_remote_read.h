/*
 * vigie — Prometheus remote read, POST /api/v1/read (query/api/
 * api_remote_read.c; labels and limits in docs/api.md).
 */
#ifndef VIGIE_API_REMOTE_READ_H
#define VIGIE_API_REMOTE_READ_H

#include <stddef.h>

#include "query/api/http.h"
#include "vigie/api.h"

#define VG_RR_MAX_BODY (1 << 20)  /* compressed request bytes (413) */
#define VG_RR_MAX_RAW (4 << 20)   /* decompressed request bytes (413) */
#define VG_RR_MAX_QUERIES 64      /* queries per request */
#define VG_RR_MAX_MATCHERS 32     /* matchers per query */
#define VG_RR_MAX_FIELDS 65536    /* protobuf fields per request */
#define VG_RR_MAX_REGEX 1024      /* bytes of one regular expression */
#define VG_RR_MAX_REPEAT 1000     /* nested counted repetitions ({m,n}) */
#define VG_RR_MAX_LOOPS 10        /* loops over groups matching "" */
#define VG_RR_MAX_ATOMS 2000      /* atoms of a regex, repetitions unrolled */
#define VG_RR_MAX_SERIES 50000    /* series per query */
#define VG_RR_MAX_SAMPLES 1000000 /* samples per answer */
#define VG_RR_MAX_MS 30000        /* time to answer a request */
#define VG_RR_MAX_REGEX_MS 1000   /* thread CPU in regular expressions a request (400) */

/* series in one answer, all its queries together (a series costs its
 * labels even without samples) */
#define VG_RR_MAX_ANSWER_SERIES 100000

/* the latest end a query reads to (9999-12-31T23:59:59.999Z): a later
 * one, up to INT64_MAX, is taken as this */
#define VG_RR_MAX_TIME_MS 253402300799999LL

/* Answer a snappy-compressed protobuf ReadRequest (body, len) for a token
 * of scope (NULL: every project): *out gets the snappy-compressed
 * ReadResponse (malloc'd, caller frees) and *status 200; or -errno with
 * *status (400 malformed or over a limit, 413 too large, 503 busy or out
 * of memory, 500 storage error) and a message in err. Thread-safe (each
 * worker thread reads its own registry handle). */
int vg_api_remote_read(struct vg_api *api, const char *scope,
		       const void *body, size_t len, char **out,
		       size_t *outlen, int *status, char *err, size_t errlen);

int vg_api_h_remote_read(struct vg_http_req *req, struct vg_http_resp *resp);

#endif
