/*
 * group.c — grouped notifications (alarms/group.h), after Alertmanager's
 * group_by / group_wait / group_interval.
 *
 * Why: a hundred instances of one selector crossing the same threshold in
 * the same minute are one event for the person paged; a hundred webhooks
 * are noise, and cost a receiver a hundred requests. An alarm with
 * "notify_group" sends its webhook and log notifications as one per group.
 *
 * Where the configuration lives: on the alarm. Alertmanager has it on a
 * route because its routes decide the receivers; in vigie the alarm
 * decides its receivers (its actions), so it is also where the grouping
 * of what it sends to them is decided, by whoever owns the alarm (a
 * project token changes its own alarms, not a collector-wide route).
 * Alarms with the same settings, project and action share groups: with
 * "by": ["severity"], every critical notification of a project's grouped
 * alarms to one webhook is one group.
 *
 * Design: the group key is the project, the action, the fence, wait and
 * interval, and the values of the group_by labels taken from the
 * notification itself (alarm_name, severity, current, resource, host,
 * metric). A group is a row of notify_groups (its flush time) and its
 * members rows of notify_group_members, in alarms.db (or the shared
 * PostgreSQL database), written in the same transaction as the decision's
 * history and state rows instead of an outbox row. A group is flushed in
 * a later (or the same) transaction of vg_alarm_queue_flush: the flush
 * is taken (flush_ms compared and set), the members read and deleted,
 * one outbox row written with all of them. So a member is in exactly one
 * committed place at any time — the group, or one outbox row — and a
 * kill -9 anywhere loses none and sends none twice; the outbox then gives
 * the group notification its exactly-once like any other row.
 *
 * Timing (the wall clock of the engine, injectable as now_ms): the first
 * member of an idle group sets flush = now + wait; members joining before
 * the flush join it; after a flush, new members wait until last flush +
 * interval (or now + wait if that is already past). Repeats of an alarm
 * still firing (repeat_every) are members like transitions.
 *
 * Several collectors on one PostgreSQL database: any of them may send a
 * due group (the database is asked at least every RECHECK_MS, so a group
 * started by a collector that died is still sent); the compared update of
 * its flush time lets only one transaction take it.
 *
 * Invariants: members of one group are sent oldest first, at most
 * VG_ALARM_GROUP_MEMBERS_MAX per notification (the rest at the next
 * flush); log lines are bounded (GROUP_LOGS_MAX per flush, the others
 * wait for the next).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alarms/group.h"
#include "vigie/alarm_store.h"
#include "vigie/log.h"

#define GROUPS_PER_FLUSH 64 /* groups sent per transaction */
/* the database is asked for due groups at least this often, whatever
 * this process knows: on a shared PostgreSQL database another collector
 * may have started a group and died before sending it */
#define RECHECK_MS 5000
#define LOG_MEMBERS 20 /* members named in a group's log line */

static const char *const body_field[VG_GL_COUNT] = {
	"alarm_name", "severity", "current", "resource", "host", "metric"};

int vg_alarm_group_applies(const struct alarm *a, const char *action)
{
	return a && a->def.notify_group &&
	       (!strncmp(action, "http://", 7) || !strncmp(action, "https://", 8) ||
		!strncmp(action, "log://", 6));
}

int vg_alarm_group_add(struct vg_alarm_engine *e, const struct alarm *a,
		       const struct pending *p, const char *action, int64_t now_ms)
{
	struct vg_alarm_group_row g = {0}, old;
	json_t *body = json_loads(p->body, 0, NULL), *labels = json_object();
	char *ltxt = NULL, *key = NULL;
	int rc = -ENOMEM;

	if (!body || !labels)
		goto out;
	for (int l = 0; l < VG_GL_COUNT; l++) {
		const char *v;
		if (!(a->def.group_by & (1u << l)))
			continue;
		v = json_string_value(json_object_get(body, body_field[l]));
		json_object_set_new(labels, vg_alarm_group_label_name(l),
				    json_string(v ? v : ""));
	}
	if (!(ltxt = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS)))
		goto out;
	if (asprintf(&key, "%s|%s|%d|%u|%u|%s", p->project ? p->project : "", action,
		     a->def.webhook_fence, a->def.group_wait_s, a->def.group_interval_s,
		     ltxt) < 0) {
		key = NULL;
		goto out;
	}
	rc = vg_alarm_store_group_get(e->store, key, &old);
	if (rc && rc != -ENOENT)
		goto out;
	g.gkey = key;
	g.project = p->project ? p->project : "";
	g.action = (char *)action;
	snprintf(g.alarm_id, sizeof(g.alarm_id), "%s", rc ? a->def.id : old.alarm_id);
	g.labels = ltxt;
	g.last_flush_ms = rc ? 0 : old.last_flush_ms;
	if (!rc && old.flush_ms > 0)
		g.flush_ms = old.flush_ms; /* join the waiting flush */
	else if (g.last_flush_ms &&
		 now_ms < g.last_flush_ms + (int64_t)a->def.group_interval_s * 1000)
		g.flush_ms = g.last_flush_ms + (int64_t)a->def.group_interval_s * 1000;
	else
		g.flush_ms = now_ms + (int64_t)a->def.group_wait_s * 1000;
	if (g.flush_ms <= 0)
		g.flush_ms = 1;
	if (!rc)
		vg_alarm_group_row_release(&old);
	rc = vg_alarm_store_group_put(e->store, &g);
	if (!rc)
		rc = vg_alarm_store_group_member_add(e->store, key, p->body);
	if (!rc && (!e->group_next_ms || g.flush_ms < e->group_next_ms))
		e->group_next_ms = g.flush_ms;
out:
	free(key);
	free(ltxt);
	json_decref(labels);
	json_decref(body);
	return rc;
}

int vg_alarm_group_maybe_due(const struct vg_alarm_engine *e, int64_t now_ms)
{
	return (e->group_next_ms && e->group_next_ms <= now_ms) ||
	       now_ms - e->group_checked_ms >= RECHECK_MS || now_ms < e->group_checked_ms;
}

/* "alarm group {labels} of project P: N notifications: a on r ok ->
 * alarm, ..." */
static char *log_line(const struct vg_alarm_group_row *g, json_t *members)
{
	size_t i, n = json_array_size(members);
	json_t *m;
	char *s = NULL, *t;

	if (asprintf(&s, "alarm group %s of project %s: %zu notification%s:", g->labels,
		     g->project, n, n == 1 ? "" : "s") < 0)
		return NULL;
	json_array_foreach(members, i, m) {
		const char *res = json_string_value(json_object_get(m, "resource"));
		if (i == LOG_MEMBERS) {
			if (asprintf(&t, "%s and %zu more", s, n - i) < 0)
				break;
			free(s);
			s = t;
			break;
		}
		if (asprintf(&t, "%s%s %s%s%s %s -> %s", s, i ? "," : "",
			     json_string_value(json_object_get(m, "alarm_name")),
			     res ? "on " : "", res ? res : "",
			     json_string_value(json_object_get(m, "previous")),
			     json_string_value(json_object_get(m, "current"))) < 0)
			break;
		free(s);
		s = t;
	}
	return s;
}

/* The group notification: the group's labels and every member's own
 * notification, oldest first. */
static char *group_body(const struct vg_alarm_group_row *g, json_t *members,
			const char *nid, int64_t now_ms)
{
	json_t *labels = json_loads(g->labels, 0, NULL), *o;
	char ts[40];
	char *s;

	o = json_pack("{s:s,s:s,s:s,s:s,s:o,s:I,s:s,s:I,s:O}", "notification_id", nid,
		      "idempotency_id", nid, "type", "group", "project", g->project,
		      "group", labels ? labels : json_object(), "count",
		      (json_int_t)json_array_size(members), "timestamp",
		      vg_time_format(now_ms, ts, sizeof(ts)), "timestamp_ms",
		      (json_int_t)now_ms, "notifications", members);
	if (!o)
		return NULL;
	s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
	json_decref(o);
	return s;
}

static int flush_one(struct vg_alarm_engine *e, const struct vg_alarm_group_row *g,
		     int64_t now_ms, int *wake)
{
	json_t *members = json_array();
	int64_t last = 0;
	int more = 0, rc;
	char nid[40];
	char *body = NULL;

	if (!members)
		return -ENOMEM;
	rc = vg_alarm_store_group_claim(e->store, g->gkey, g->flush_ms, 0, now_ms);
	if (rc == -ESTALE) { /* another collector sent it */
		json_decref(members);
		return 0;
	}
	if (!rc)
		rc = vg_alarm_store_group_members(e->store, g->gkey,
						  VG_ALARM_GROUP_MEMBERS_MAX, members, &last,
						  &more);
	if (!rc && more) {
		struct vg_alarm_group_row again = *g;
		again.flush_ms = now_ms;
		again.last_flush_ms = now_ms;
		rc = vg_alarm_store_group_put(e->store, &again);
		e->group_next_ms = now_ms;
	}
	if (rc || !json_array_size(members)) {
		json_decref(members);
		return rc;
	}
	if (!strncmp(g->action, "log://", 6)) {
		char *line = log_line(g, members);
		if (line && e->ngroup_logs < GROUPS_PER_FLUSH)
			e->group_logs[e->ngroup_logs++] = line;
		else
			free(line);
		e->st.notifications++;
		json_decref(members);
		return 0;
	}
	if ((rc = vg_alarm_uuid(nid, sizeof(nid))) ||
	    !(body = group_body(g, members, nid, now_ms))) {
		json_decref(members);
		return rc ? rc : -ENOMEM;
	}
	json_decref(members);
	rc = vg_alarm_store_outbox_add(e->store, nid, g->alarm_id, g->project, g->action,
				       body, now_ms);
	if (!rc) {
		e->st.notifications++;
		*wake = 1;
	}
	free(body);
	return rc;
}

int vg_alarm_group_flush_due(struct vg_alarm_engine *e, int64_t now_ms, int *wake)
{
	struct vg_alarm_group_row rows[GROUPS_PER_FLUSH];
	int64_t next = INT64_MAX;
	size_t n = 0;
	int rc;

	if (!vg_alarm_group_maybe_due(e, now_ms))
		return 0;
	rc = vg_alarm_store_groups_due(e->store, now_ms, rows, GROUPS_PER_FLUSH, &n, &next);
	if (rc)
		return rc;
	e->group_checked_ms = now_ms;
	e->group_next_ms = n == GROUPS_PER_FLUSH ? now_ms : next == INT64_MAX ? 0
									      : next;
	for (size_t i = 0; i < n; i++) {
		if (!rc)
			rc = flush_one(e, &rows[i], now_ms, wake);
		vg_alarm_group_row_release(&rows[i]);
	}
	return rc;
}

void vg_alarm_group_after_commit(struct vg_alarm_engine *e, int committed)
{
	for (size_t i = 0; i < e->ngroup_logs; i++) {
		if (committed)
			vg_info("%s", e->group_logs[i]);
		free(e->group_logs[i]);
	}
	e->ngroup_logs = 0;
	if (!committed)
		e->group_next_ms = 1; /* look again at the next flush */
}

int vg_alarm_group_load(struct vg_alarm_engine *e)
{
	struct vg_alarm_group_row rows[1];
	int64_t next = INT64_MAX;
	size_t n = 0;
	int rc = vg_alarm_store_groups_due(e->store, 0, rows, 1, &n, &next);

	for (size_t i = 0; i < n; i++)
		vg_alarm_group_row_release(&rows[i]);
	if (!rc)
		e->group_next_ms = next == INT64_MAX ? 0 : next;
	return rc;
}
