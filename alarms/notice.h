/*
 * vigie — the notification document (alarms/notice.c): one JSON object per
 * transition or repeat, the same bytes on every channel (PUB, SSE, webhook,
 * exec stdin, log), so a receiver can de-duplicate on notification_id.
 *
 *   {"notification_id": "<uuid>", "idempotency_id": "<uuid>",
 *    "type": "transition" | "repeat", "sequence": 7,
 *    "alarm_id", "alarm_name", "project", "severity", "description",
 *    "previous": "ok", "current": "alarm",
 *    "reason": "3 out of the last 3 datapoints [...] were greater than ...",
 *    "reason_data": {...},
 *    "resource", "resource_name", "project_name", "resource_type", "host",
 *    "metric", "statistic", "period",
 *    "comparison", "threshold", "datapoints": [{"time","time_ms","value"}],
 *    "rule" (composite only),
 *    "timestamp": "<end of the deciding period, sample time>",
 *    "period_start", "evaluated_at": "<wall clock>",
 *    "evaluated_at_ms": <the same in ms: the moment of the decision>}
 *
 * The first seven fields after the ids are Aodh's alarm notification
 * (alarm_name, alarm_id, severity, previous, current, reason, reason_data).
 * resource_name and project_name are the names people know (Nova's display
 * name of the resource, the name of the notification's project), null
 * where no agent sent them.
 * Pure functions, thread-safe.
 */
#ifndef VIGIE_ALARM_NOTICE_H
#define VIGIE_ALARM_NOTICE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "vigie/alarm.h"

struct vg_alarm_notice_info {
	const char *notice_id;
	int repeat;        /* 0 transition, 1 repeat */
	uint64_t sequence; /* per alarm and process, grows (time_ms orders) */
	const struct vg_alarm_def *def;
	const char *resource;      /* NULL for composites */
	const char *resource_type; /* may be NULL */
	const char *host;          /* may be NULL */
	const char *resource_name; /* Nova display name; may be NULL */
	const char *project_name;  /* the name of def->project; may be NULL */
	int previous, current;
	const char *reason;
	json_t *reason_data; /* borrowed */
	int64_t time_ms, period_start_ms, evaluated_ms;
};

/* The notification as one line of JSON; malloc'd (caller frees), *len
 * its length. NULL on out of memory. */
char *vg_alarm_notice_json(const struct vg_alarm_notice_info *n, size_t *len);

/* "alarm.<project>.<name>" with the parts escaped (vigie/alarm_pub.h).
 * Length, or -ENOSPC. */
int vg_alarm_notice_topic(const char *project, const char *name, char *buf,
			  size_t len);

/* The Prometheus Alertmanager v2 body (POST /api/v2/alerts) for a
 * notification JSON: one alert labelled alertname, alarm_id, project,
 * severity, resource, metric; annotated summary, description, state and,
 * where known, resource_name and project_name; resolved (endsAt) unless
 * current is alarm.
 * malloc'd or NULL (out of memory or not a notification). */
char *vg_alarm_alertmanager_body(const char *notice_json, size_t *len);

#endif
