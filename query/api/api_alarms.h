/*
 * vigie — the alarm endpoints of the JSON API (query/api/api_alarms.c), under
 * /v1/alarms. docs/alarms.md and docs/api.md show each with an example.
 *
 *   GET    /v1/alarms                    list (state, enabled, type, name,
 *                                        project (admin), limit, cursor)
 *   POST   /v1/alarms                    create -> 201 + Location
 *   GET    /v1/alarms/stream             Server-Sent Events of notifications
 *   GET    /v1/alarms/groups             notification groups waiting for
 *                                        their flush
 *   GET    /v1/alarms/{id}               definition, state, instances
 *   PUT    /v1/alarms/{id}               replace the definition
 *   PATCH  /v1/alarms/{id}               change some fields
 *   DELETE /v1/alarms/{id}               -> 204
 *   POST   /v1/alarms/{id}/enable        (and /disable)
 *   POST   /v1/alarms/{id}/test          a test notification now -> 202;
 *                                        429 + Retry-After over the
 *                                        project's notification rate
 *   GET    /v1/alarms/{id}/history       start, end, type, limit, cursor
 *   GET    /v1/silences                  list (state: active, pending,
 *                                        expired, all; default not expired)
 *   POST   /v1/silences                  create -> 201 + Location
 *   GET    /v1/silences/{id}             one silence
 *   DELETE /v1/silences/{id}             expire now -> 204
 *
 * {id} is an alarm id or, within the caller's project, its name. Every
 * handler is project-scoped through req->scope_project (another project's
 * alarm is a 404). Validation failures are 400 with one entry per field:
 *   {"error":{"code":400,"message":"invalid alarm (2 problems)",
 *             "fields":[{"field":"threshold","message":"..."}, ...]}}
 *
 * The handlers reach the engine, its SSE hub and PUB socket through the
 * struct vg_api in req->ctx (given at start in struct vg_api_options;
 * without an engine every alarm endpoint answers 503). Handlers are
 * thread-safe (the engine locks).
 */
#ifndef VIGIE_ALARM_API_H
#define VIGIE_ALARM_API_H

#include <stddef.h>

#include "vigie/alarm_engine.h"
#include "vigie/alarm_outbox.h"
#include "vigie/alarm_pub.h"
#include "vigie/alarm_stream.h"
#include "vigie/api.h"
#include "query/api/http.h"

#define VG_ALARM_API_MAX_BODY (64u << 10)

/* The alarm subsystem's self-metrics, for GET /metrics
 * (query/api/api_prometheus.c): the engine's counters, its delivery outbox's
 * and the SSE hub's (have_sse = 0 without a hub, its fields 0). Returns 0
 * with *out filled, or -ENOENT (nothing filled) when no engine is
 * attached. Thread-safe (each part is read under its own lock). */
struct vg_api_alarm_stats {
	struct vg_alarm_engine_stats engine;
	struct vg_alarm_outbox_stats outbox;
	struct vg_alarm_hub_stats sse;
	int have_sse;
	struct vg_alarm_pub_stats pub; /* have_pub = 0: no PUB socket */
	int have_pub;
};
int vg_api_alarms_stats(struct vg_api *a, struct vg_api_alarm_stats *out);

int vg_api_h_alarms_list(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_alarm_groups(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_alarm_test(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_silences_list(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_silences_create(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_silence_get(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_silence_expire(struct vg_http_req *req, struct vg_http_resp *resp);
extern const char *const vg_api_silences_list_params[];
int vg_api_h_alarms_create(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_alarms_stream(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_alarm_get(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_alarm_update(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_alarm_delete(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_alarm_enable(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_alarm_disable(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_alarm_history(struct vg_http_req *req, struct vg_http_resp *resp);

/* Accepted query parameters (for the route table). */
extern const char *const vg_api_alarms_list_params[];
extern const char *const vg_api_alarms_history_params[];
extern const char *const vg_api_alarms_stream_params[];

/* The routes, in matching order, for the route table of query/api/api.c
 * (copy this block there; "stream" and "groups" must precede "{id}"):
 */
#define VG_ALARM_ROUTES                                                                   \
	{VG_HTTP_GET | VG_HTTP_HEAD, "/v1/alarms", vg_api_h_alarms_list,                  \
	 vg_api_alarms_list_params, 0, 0},                                                \
		{VG_HTTP_POST, "/v1/alarms", vg_api_h_alarms_create, NULL,                \
		 VG_ALARM_API_MAX_BODY, 0},                                               \
		{VG_HTTP_GET, "/v1/alarms/stream", vg_api_h_alarms_stream,                \
		 vg_api_alarms_stream_params, 0, 0},                                      \
		{VG_HTTP_GET | VG_HTTP_HEAD, "/v1/alarms/groups", vg_api_h_alarm_groups,  \
		 NULL, 0, 0},                                                             \
		{VG_HTTP_GET | VG_HTTP_HEAD, "/v1/alarms/{id}", vg_api_h_alarm_get, NULL, \
		 0, 0},                                                                   \
		{VG_HTTP_PUT | VG_HTTP_PATCH, "/v1/alarms/{id}", vg_api_h_alarm_update,   \
		 NULL, VG_ALARM_API_MAX_BODY, 0},                                         \
		{VG_HTTP_DELETE, "/v1/alarms/{id}", vg_api_h_alarm_delete, NULL, 0, 0},   \
		{VG_HTTP_POST, "/v1/alarms/{id}/enable", vg_api_h_alarm_enable, NULL, 0,  \
		 0},                                                                      \
		{VG_HTTP_POST, "/v1/alarms/{id}/disable", vg_api_h_alarm_disable, NULL,   \
		 0, 0},                                                                   \
		{VG_HTTP_POST, "/v1/alarms/{id}/test", vg_api_h_alarm_test, NULL, 4096,   \
		 0},                                                                      \
		{VG_HTTP_GET | VG_HTTP_HEAD, "/v1/alarms/{id}/history",                   \
		 vg_api_h_alarm_history, vg_api_alarms_history_params, 0, 0},             \
		{VG_HTTP_GET | VG_HTTP_HEAD, "/v1/silences", vg_api_h_silences_list,      \
		 vg_api_silences_list_params, 0, 0},                                      \
		{VG_HTTP_POST, "/v1/silences", vg_api_h_silences_create, NULL,            \
		 VG_ALARM_API_MAX_BODY, 0},                                               \
		{VG_HTTP_GET | VG_HTTP_HEAD, "/v1/silences/{id}", vg_api_h_silence_get,   \
		 NULL, 0, 0},                                                             \
	{                                                                                 \
		VG_HTTP_DELETE, "/v1/silences/{id}", vg_api_h_silence_expire, NULL, 0, 0  \
	}

#endif
