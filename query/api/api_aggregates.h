/*
 * vigie — GET /v1/aggregates (query/api/api_aggregates.c): one metric
 * combined over every resource a filter selects.
 */
#ifndef VIGIE_API_AGGREGATES_H
#define VIGIE_API_AGGREGATES_H

#include "query/api/http.h"

#define VG_API_AGG_MAX_RESOURCES 5000 /* series one aggregate combines */

int vg_api_h_aggregates(struct vg_http_req *req, struct vg_http_resp *resp);
extern const char *const vg_api_aggregates_params[]; /* for the route table */

#endif
