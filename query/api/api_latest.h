/*
 * vigie — the newest values (query/api/api_latest.c): GET
 * /v1/resources/{id}/latest and GET /v1/top.
 */
#ifndef VIGIE_API_LATEST_H
#define VIGIE_API_LATEST_H

#include <stdint.h>

#include "query/api/http.h"
#include "vigie/store.h"

#define VG_API_LATEST_WINDOW_S 900 /* a counter's rate: newest point within */
#define VG_API_TOP_DEFAULT 10
#define VG_API_TOP_MAX 1000

int vg_api_h_latest(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_top(struct vg_http_req *req, struct vg_http_resp *resp);
extern const char *const vg_api_top_params[]; /* for the route table */

/* A counter's current rate: the newest known point of the finest archive
 * in the VG_API_LATEST_WINDOW_S before last_ms. 0 with *value and *time_ms
 * (start of that point's interval); -ENODATA if none; -ENOENT no file. */
int vg_api_latest_rate(struct vg_store *store, int rtype, const char *id,
		       const char *metric, int64_t last_ms, double *value,
		       int64_t *time_ms);

#endif
