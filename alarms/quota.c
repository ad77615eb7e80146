/*
 * quota.c — per-project limits of the alarm engine (alarms/quota.h).
 *
 * Why: one global cap of 100,000 alarms let one tenant take the whole
 * collector; webhooks to many destinations and notification storms cost
 * every other project delivery slots. Definitions are checked when a
 * project token creates or changes them (an administrator is not
 * limited: the operator decides for itself); notifications are limited
 * for everyone, because a storm hurts whoever caused it.
 *
 * Design: the definition checks count over the engine's alarm map (at
 * most 100,000 entries, a create is rare); the notification budget (when
 * configured) is a token bucket per project (capacity = rate per minute, refilled
 * continuously), kept in a map bounded to 4096 projects.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alarms/quota.h"
#include "alarms/webhook.h"
#include "vigie/name.h"

#define BUCKETS_MAX 4096

struct bucket {
	double tokens;
	int64_t at_ms;
};

static void err1(json_t **errors, const char *field, const char *msg)
{
	if (!*errors)
		*errors = json_array();
	json_array_append_new(*errors, json_pack("{s:s,s:s}", "field", field,
						 "message", msg));
}

/* Distinct webhook origins of d into set (keys borrowed from d). */
static void origins(const struct vg_alarm_def *d, struct vg_hmap *set)
{
	for (int s = 0; s < VG_ALARM_NSTATES; s++)
		for (size_t i = 0; i < d->nactions[s]; i++) {
			const char *u = d->actions[s][i];
			char o[300];
			if (strncmp(u, "http://", 7) && strncmp(u, "https://", 8))
				continue;
			if (vg_alarm_webhook_origin(u, o, sizeof(o)))
				snprintf(o, sizeof(o), "%.299s", u);
			if (!vg_hmap_get(set, o, strlen(o)))
				vg_hmap_put(set, o, strlen(o), (void *)1, NULL);
		}
}

int vg_alarm_quota_check_def(struct vg_alarm_engine *e, const struct vg_alarm_def *d,
			     const struct alarm *old, json_t **errors)
{
	unsigned max_alarms = e->o.max_alarms_per_project ? e->o.max_alarms_per_project
							  : VG_QUOTA_ALARMS;
	unsigned max_hooks = e->o.max_webhooks_per_project ? e->o.max_webhooks_per_project
							   : VG_QUOTA_WEBHOOKS;
	struct vg_hmap set;
	const struct vg_hmap_entry *en;
	size_t pos = 0, n = 0, before;
	char m[400];
	int rc = 0;

	vg_hmap_init(&set);
	while ((en = vg_hmap_next(&e->alarms, &pos))) {
		const struct alarm *a = en->value;
		if (a == old || strcmp(a->def.project, d->project))
			continue;
		n++;
		origins(&a->def, &set);
	}
	if (!old && n >= max_alarms) {
		snprintf(m, sizeof(m), "project '%.*s' has %zu alarms, "
				       "at most %u ([alarms] max_alarms_per_project)",
			 (int)vg_utf8_prefix(d->project, 100), d->project, n,
			 max_alarms);
		err1(errors, "", m);
		rc = -EDQUOT;
	}
	before = vg_hmap_count(&set);
	origins(d, &set);
	if (!rc && vg_hmap_count(&set) > max_hooks && vg_hmap_count(&set) > before) {
		snprintf(m, sizeof(m), "project '%.*s' would send "
				       "webhooks to %zu destinations (scheme://host:port), at most "
				       "%u ([alarms] max_webhooks_per_project)",
			 (int)vg_utf8_prefix(d->project, 100), d->project,
			 vg_hmap_count(&set), max_hooks);
		err1(errors, "actions", m);
		rc = -EDQUOT;
	}
	vg_hmap_release(&set);
	return rc;
}

int vg_alarm_quota_take_notification(struct vg_alarm_engine *e, const char *project,
				     int64_t now_ms)
{
	double rate = e->o.max_notifications_per_minute;
	struct bucket *b;

	if (!rate)
		return 0; /* no limit configured */
	b = vg_hmap_gets(&e->quota_buckets, project);
	if (!b) {
		if (vg_hmap_count(&e->quota_buckets) >= BUCKETS_MAX)
			vg_alarm_quota_release(e); /* start over: every bucket full */
		if (!(b = malloc(sizeof(*b))))
			return 0;
		b->tokens = rate;
		b->at_ms = now_ms;
		if (vg_hmap_put(&e->quota_buckets, project, strlen(project), b, NULL)) {
			free(b);
			return 0;
		}
	}
	if (now_ms > b->at_ms) {
		b->tokens += rate * (double)(now_ms - b->at_ms) / 60000.0;
		if (b->tokens > rate)
			b->tokens = rate;
		b->at_ms = now_ms;
	}
	if (b->tokens < 1.0)
		return -EDQUOT;
	b->tokens -= 1.0;
	return 0;
}

int64_t vg_alarm_quota_wait_ms(struct vg_alarm_engine *e, const char *project,
			       int64_t now_ms)
{
	double rate = e->o.max_notifications_per_minute, tokens;
	const struct bucket *b;

	if (!rate || !(b = vg_hmap_gets(&e->quota_buckets, project)))
		return 0;
	tokens = b->tokens;
	if (now_ms > b->at_ms)
		tokens += rate * (double)(now_ms - b->at_ms) / 60000.0;
	if (tokens >= 1.0)
		return 0;
	return (int64_t)ceil((1.0 - tokens) * 60000.0 / rate);
}

void vg_alarm_quota_release(struct vg_alarm_engine *e)
{
	size_t pos = 0;
	const struct vg_hmap_entry *en;

	while ((en = vg_hmap_next(&e->quota_buckets, &pos)))
		free(en->value);
	vg_hmap_release(&e->quota_buckets);
}
