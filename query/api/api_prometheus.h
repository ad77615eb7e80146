/*
 * vigie — GET /metrics (query/api/api_prometheus.c): the resources'
 * newest values and the collector's self-metrics in the Prometheus text
 * format. The formatting helpers are pure (unit-tested).
 */
#ifndef VIGIE_API_PROMETHEUS_H
#define VIGIE_API_PROMETHEUS_H

#include <stddef.h>

#include "query/api/http.h"

int vg_api_h_metrics(struct vg_http_req *req, struct vg_http_resp *resp);

/* Append s escaped as a label value (\\, \", \n). */
void vg_api_prom_label_value(struct vg_buf *b, const char *s);
/* "vigie_" + metric with [^a-zA-Z0-9_] -> '_', + "_total" for a counter. */
void vg_api_prom_name(const char *metric, int counter, char *out, size_t len);
/* A sample value: shortest round-trip decimal, NaN, +Inf, -Inf. */
void vg_api_prom_value(struct vg_buf *b, double v);

#endif
