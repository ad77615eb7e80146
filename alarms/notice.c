/*
 * notice.c — the notification document shared by every channel
 * (alarms/notice.h).
 *
 * Design: built once with jansson at the moment of the decision and kept
 * as text (in the outbox row, the PUB message, the SSE event), so a
 * retried webhook carries exactly the bytes of the first attempt.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alarms/notice.h"
#include "vigie/alarm_pub.h"
#include "vigie/clock.h"

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

char *vg_alarm_notice_json(const struct vg_alarm_notice_info *n, size_t *len)
{
	const struct vg_alarm_def *d = n->def;
	json_t *o = json_object();
	char ts[32], stat[VG_ALARM_STAT_NAME_MAX];
	char *text;

	if (!o)
		return NULL;
	json_object_set_new(o, "notification_id", json_string(n->notice_id));
	json_object_set_new(o, "idempotency_id", json_string(n->notice_id));
	json_object_set_new(o, "type", json_string(n->repeat ? "repeat" : "transition"));
	json_object_set_new(o, "sequence", json_integer((json_int_t)n->sequence));
	json_object_set_new(o, "alarm_name", str_or_null(d->name));
	json_object_set_new(o, "alarm_id", json_string(d->id));
	json_object_set_new(o, "severity", json_string(vg_alarm_severity_name(d->severity)));
	json_object_set_new(o, "previous", json_string(vg_alarm_state_name(n->previous)));
	json_object_set_new(o, "current", json_string(vg_alarm_state_name(n->current)));
	json_object_set_new(o, "reason", json_string(n->reason ? n->reason : ""));
	json_object_set_new(o, "reason_data",
			    n->reason_data ? json_incref(n->reason_data) : json_object());
	json_object_set_new(o, "project", str_or_null(d->project));
	json_object_set_new(o, "description", json_string(d->description ? d->description : ""));
	json_object_set_new(o, "resource", str_or_null(n->resource));
	json_object_set_new(o, "resource_name", str_or_null(n->resource_name));
	json_object_set_new(o, "project_name", str_or_null(n->project_name));
	json_object_set_new(o, "resource_type", str_or_null(n->resource_type));
	json_object_set_new(o, "host", str_or_null(n->host));
	if (d->kind == VG_ALARM_COMPOSITE) {
		json_object_set_new(o, "rule", str_or_null(d->rule));
		json_object_set_new(o, "metric", json_null());
		json_object_set_new(o, "datapoints", json_array());
	} else if (d->kind == VG_ALARM_EVENT) {
		json_t *ev = n->reason_data ? json_object_get(n->reason_data, "kind") : NULL;
		json_object_set_new(o, "event", ev ? json_incref(ev) : json_null());
		json_object_set_new(o, "metric", json_null());
		json_object_set_new(o, "datapoints", json_array());
	} else {
		json_t *pts = n->reason_data ? json_object_get(n->reason_data, "datapoints") : NULL;
		json_object_set_new(o, "metric", str_or_null(d->metric));
		json_object_set_new(o, "statistic", json_string(vg_alarm_stat_name(d->statistic, d->percentile, stat, sizeof(stat))));
		json_object_set_new(o, "period", json_integer(d->period_s));
		json_object_set_new(o, "comparison", json_string(vg_alarm_cmp_name(d->comparison)));
		json_object_set_new(o, "threshold", json_real(d->threshold));
		json_object_set_new(o, "datapoints", pts ? json_deep_copy(pts) : json_array());
	}
	json_object_set_new(o, "timestamp", json_string(vg_time_format(n->time_ms, ts, sizeof(ts))));
	json_object_set_new(o, "timestamp_ms", json_integer(n->time_ms));
	json_object_set_new(o, "period_start",
			    n->period_start_ms
				    ? json_string(vg_time_format(n->period_start_ms, ts, sizeof(ts)))
				    : json_null());
	json_object_set_new(o, "evaluated_at",
			    json_string(vg_time_format(n->evaluated_ms, ts, sizeof(ts))));
	json_object_set_new(o, "evaluated_at_ms", json_integer(n->evaluated_ms));
	text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
	json_decref(o);
	if (text && len)
		*len = strlen(text);
	return text;
}

int vg_alarm_notice_topic(const char *project, const char *name, char *buf,
			  size_t len)
{
	int n = vg_alarm_topic_append(buf, len, 0, "alarm.");

	if (n >= 0)
		n = vg_alarm_topic_append_part(buf, len, (size_t)n,
					       project ? project : "");
	if (n >= 0)
		n = vg_alarm_topic_append(buf, len, (size_t)n, ".");
	if (n >= 0)
		n = vg_alarm_topic_append(buf, len, (size_t)n, name ? name : "");
	return n < 0 ? -ENOSPC : n;
}

static void label(json_t *labels, const char *k, json_t *v)
{
	if (json_is_string(v) && json_string_length(v))
		json_object_set_new(labels, k, json_string(json_string_value(v)));
}

char *vg_alarm_alertmanager_body(const char *notice_json, size_t *len)
{
	json_t *n = json_loads(notice_json, 0, NULL), *a, *labels, *ann, *arr;
	const char *cur;
	char *text;

	if (!n)
		return NULL;
	cur = json_string_value(json_object_get(n, "current"));
	if (!cur) {
		json_decref(n);
		return NULL;
	}
	labels = json_object();
	label(labels, "alertname", json_object_get(n, "alarm_name"));
	label(labels, "alarm_id", json_object_get(n, "alarm_id"));
	label(labels, "project", json_object_get(n, "project"));
	label(labels, "severity", json_object_get(n, "severity"));
	label(labels, "resource", json_object_get(n, "resource"));
	label(labels, "metric", json_object_get(n, "metric"));
	ann = json_object();
	label(ann, "summary", json_object_get(n, "reason"));
	label(ann, "description", json_object_get(n, "description"));
	label(ann, "state", json_object_get(n, "current"));
	/* names as annotations, not labels: a rename must not make a new alert */
	label(ann, "resource_name", json_object_get(n, "resource_name"));
	label(ann, "project_name", json_object_get(n, "project_name"));
	a = json_object();
	json_object_set_new(a, "labels", labels);
	json_object_set_new(a, "annotations", ann);
	json_object_set(a, "startsAt", json_object_get(n, "timestamp"));
	if (strcmp(cur, "alarm"))
		json_object_set(a, "endsAt", json_object_get(n, "evaluated_at"));
	arr = json_array();
	json_array_append_new(arr, a);
	text = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	json_decref(n);
	if (text && len)
		*len = strlen(text);
	return text;
}
