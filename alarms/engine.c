/*
 * engine.c — the alarm engine's lifecycle (vigie/alarm_engine.h): open
 * (alarms.db, definitions and states, the outbox and its delivery
 * thread), close, statistics.
 *
 * The engine is split by concept (engine_state.h has the map):
 * evaluation in engine_eval.c, the persistence queue in engine_queue.c,
 * definitions in engine_defs.c. This file only puts them together.
 *
 * Invariants: after open, every alarm's aggregate reflects its loaded
 * instances and the indexes are built, so the first batch evaluates
 * against a consistent view; close flushes the queue before the store
 * closes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alarms/engine_defs.h"
#include "alarms/engine_eval.h"
#include "alarms/engine_queue.h"
#include "alarms/group.h"
#include "alarms/guard.h"
#include "alarms/inhibit.h"
#include "alarms/quota.h"
#include "vigie/alarm_outbox.h"
#include "vigie/alarm_silence.h"
#include "vigie/log.h"

/* The outbox asks, per webhook attempt, whether the alarm is a
 * project's (fenced) or an administrator's; a deleted alarm is fenced.
 * Only the small unfenced set's lock is taken, never e->lock, so a
 * delivery never waits for a batch's evaluation. */
static int webhook_fenced(void *ctx, const char *alarm_id)
{
	struct vg_alarm_engine *e = ctx;
	int fenced;

	pthread_mutex_lock(&e->unfenced_lock);
	fenced = !vg_hmap_gets(&e->unfenced, alarm_id);
	pthread_mutex_unlock(&e->unfenced_lock);
	return fenced;
}

void vg_alarm_unfenced_set(struct vg_alarm_engine *e, const char *id, int on)
{
	pthread_mutex_lock(&e->unfenced_lock);
	if (on)
		vg_hmap_put(&e->unfenced, id, strlen(id), (void *)1, NULL);
	else
		vg_hmap_del(&e->unfenced, id, strlen(id));
	pthread_mutex_unlock(&e->unfenced_lock);
}

int vg_alarm_webhook_allow_check(const char *allow, char *err, size_t errlen)
{
	struct vg_alarm_guard *g = NULL;
	int rc = vg_alarm_guard_create(allow, &g, err, errlen);

	vg_alarm_guard_free(g);
	return rc;
}

int vg_alarm_engine_open(const struct vg_alarm_engine_options *o,
			 struct vg_alarm_engine **out, char *err, size_t errlen)
{
	struct vg_alarm_engine *e;
	struct vg_alarm_outbox_options oo;
	size_t pos = 0;
	const struct vg_hmap_entry *s;
	int rc;

	*out = NULL;
	if (!(e = calloc(1, sizeof(*e)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	e->o = *o;
	if (e->o.nexec > VG_EXEC_MAX)
		e->o.nexec = VG_EXEC_MAX;
	for (size_t i = 0; i < e->o.nexec; i++) {
		e->exec[i] = o->exec[i];
		e->exec_names[i] = e->exec[i].name;
	}
	e->o.exec = e->exec;
	if (!e->o.history_retention_ms)
		e->o.history_retention_ms = 30LL * 86400000;
	if (o->alertmanager_url && *o->alertmanager_url &&
	    !(e->am_url = strdup(o->alertmanager_url))) {
		free(e);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	e->o.alertmanager_url = e->am_url;
	e->o.data_dir = NULL;
	e->o.silence_db = NULL;
	pthread_mutex_init(&e->lock, NULL);
	vg_hmap_init(&e->alarms);
	vg_hmap_init(&e->names);
	vg_hmap_init(&e->watchers);
	vg_hmap_init(&e->exact);
	vg_hmap_init(&e->metrics);
	vg_hmap_init(&e->deps);
	vg_hmap_init(&e->series);
	vg_hmap_init(&e->resources);
	vg_hmap_init(&e->hosts);
	vg_hmap_init(&e->feed_seen);
	vg_hmap_init(&e->quota_buckets);
	vg_hmap_init(&e->inhib);
	vg_hmap_init(&e->unfenced);
	pthread_mutex_init(&e->unfenced_lock, NULL);
	e->gen = 1;
	rc = vg_alarm_store_open(o->data_dir, &e->store, err, errlen);
	if (!rc) {
		char url[1100];
		if (!o->silence_db &&
		    (rc = vg_alarm_store_url(o->data_dir, url, sizeof(url))))
			snprintf(err, errlen, "alarms: state database name too long");
		else
			rc = vg_alarm_silences_open(o->silence_db ? o->silence_db : url,
						    o->max_silences_per_project, wall(e),
						    &e->silences, err, errlen);
	}
	if (!rc)
		rc = vg_alarm_defs_load(e, err, errlen);
	if (!rc && (rc = vg_alarm_group_load(e)))
		snprintf(err, errlen, "alarms: cannot read notification groups: %s",
			 vg_alarm_store_errmsg(e->store));
	if (!rc) {
		memset(&oo, 0, sizeof(oo));
		oo.data_dir = o->data_dir;
		oo.webhook_timeout_ms = o->webhook_timeout_ms;
		oo.retry_initial_ms = o->retry_initial_ms;
		oo.retry_max_ms = o->retry_max_ms;
		oo.retry_for_ms = o->retry_for_ms;
		oo.exec = e->exec;
		oo.nexec = e->o.nexec;
		oo.exec_timeout_ms = o->exec_timeout_ms;
		oo.alertmanager_url = e->am_url;
		oo.now_ms = o->now_ms;
		oo.webhook_allow = o->webhook_allow;
		oo.webhook_fenced = webhook_fenced;
		oo.fenced_ctx = e;
		rc = vg_alarm_outbox_open(&oo, &e->outbox, err, errlen);
	}
	if (!rc && o->deliver && (rc = vg_alarm_outbox_start(e->outbox)))
		snprintf(err, errlen, "alarms: cannot start the delivery thread: %s",
			 strerror(-rc));
	if (rc) {
		vg_alarm_engine_close(e);
		return rc;
	}
	/* aggregates, then composites (whose refs now have their states) */
	while ((s = vg_hmap_next(&e->alarms, &pos))) {
		struct alarm *a = s->value;
		a->agg = vg_alarm_aggregate(a);
	}
	vg_alarm_reindex(e);
	*out = e;
	return 0;
}

void vg_alarm_engine_close(struct vg_alarm_engine *e)
{
	size_t pos;
	const struct vg_hmap_entry *s;

	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	if (e->store)
		vg_alarm_queue_flush(e);
	pthread_mutex_unlock(&e->lock);
	vg_alarm_outbox_close(e->outbox);
	vg_alarm_silences_close(e->silences);
	vg_alarm_quota_release(e);
	vg_alarm_inhibit_release(e);
	vg_hmap_release(&e->unfenced);
	vg_hmap_release(&e->feed_seen);
	pthread_mutex_destroy(&e->unfenced_lock);
	pos = 0;
	while ((s = vg_hmap_next(&e->series, &pos)))
		vg_alarm_series_free(s->value);
	pos = 0;
	while ((s = vg_hmap_next(&e->resources, &pos)))
		vg_alarm_res_free(s->value);
	pos = 0;
	while ((s = vg_hmap_next(&e->hosts, &pos)))
		free(s->value);
	pos = 0;
	while ((s = vg_hmap_next(&e->alarms, &pos)))
		vg_alarm_free(e, s->value);
	vg_alarm_free_lists(&e->watchers);
	vg_alarm_free_lists(&e->exact);
	vg_alarm_free_lists(&e->deps);
	free(e->evalarms.a);
	vg_hmap_release(&e->metrics);
	vg_hmap_release(&e->alarms);
	vg_hmap_release(&e->names);
	vg_hmap_release(&e->watchers);
	vg_hmap_release(&e->deps);
	vg_hmap_release(&e->series);
	vg_hmap_release(&e->resources);
	vg_hmap_release(&e->hosts);
	vg_alarm_queue_release(e);
	vg_alarm_store_close(e->store);
	free(e->am_url);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

struct vg_alarm_silences *vg_alarm_engine_silences(struct vg_alarm_engine *e)
{
	return e->silences;
}

/* The subjects a project token's view of global silences is matched
 * against: each alarm of the project, once per instance (its resource
 * and host) and once without one (a silence on the alarm's name, severity
 * or labels applies before any instance reports). Under e->lock; the
 * strings are the engine's, valid while it is held. *out: free(). */
static int project_subjects(struct vg_alarm_engine *e, const char *project,
			    struct vg_alarm_silence_subject **out, size_t *n)
{
	struct vg_alarm_silence_subject *v = NULL;
	size_t cap = 0, pos = 0;
	const struct vg_hmap_entry *en;

	*out = NULL;
	*n = 0;
	while ((en = vg_hmap_next(&e->alarms, &pos))) {
		struct alarm *a = en->value;
		const struct vg_hmap_entry *ie;
		size_t ip = 0;
		int first = 1;

		if (strcmp(a->def.project, project))
			continue;
		while (first || (ie = vg_hmap_next(&a->insts, &ip))) {
			struct vg_alarm_silence_subject *sj;
			if (*n == cap) {
				size_t c = cap ? cap * 2 : 64;
				void *nv = realloc(v, c * sizeof(*v));
				if (!nv) {
					free(v);
					return -ENOMEM;
				}
				v = nv;
				cap = c;
			}
			sj = &v[(*n)++];
			memset(sj, 0, sizeof(*sj));
			sj->project = a->def.project;
			sj->alarm = a->def.name;
			sj->severity = a->def.severity;
			sj->def = &a->def;
			if (!first) {
				struct inst *in = ie->value;
				struct res_info *r = in->resource[0]
							     ? vg_hmap_gets(&e->resources, in->resource)
							     : NULL;
				sj->resource = in->resource[0] ? in->resource : NULL;
				sj->host = r ? r->host : NULL;
			}
			first = 0;
		}
	}
	*out = v;
	return 0;
}

/* What a silence call does, with the subjects of scope's alarms (what a
 * project token may see of global silences), under the engine's lock. */
enum silence_op { SILENCE_LIST,
		  SILENCE_GET,
		  SILENCE_EXPIRE };

static int silence_call(struct vg_alarm_engine *e, enum silence_op op, const char *id,
			const char *state, const char *scope, int64_t now_ms, json_t **out)
{
	struct vg_alarm_silence_subject *subj = NULL;
	size_t n = 0;
	int rc = 0;

	if (out)
		*out = NULL;
	pthread_mutex_lock(&e->lock);
	if (scope)
		rc = project_subjects(e, scope, &subj, &n);
	if (!rc) {
		if (op == SILENCE_LIST)
			rc = vg_alarm_silences_list_for(e->silences, scope, subj, n, state,
							now_ms, out);
		else if (op == SILENCE_GET)
			rc = vg_alarm_silences_get_for(e->silences, id, scope, subj, n, now_ms,
						       out);
		else
			rc = vg_alarm_silences_expire_for(e->silences, id, scope, subj, n, now_ms);
	}
	pthread_mutex_unlock(&e->lock);
	free(subj);
	return rc;
}

int vg_alarm_engine_silences_list(struct vg_alarm_engine *e, const char *scope,
				  const char *state, int64_t now_ms, json_t **out)
{
	return silence_call(e, SILENCE_LIST, NULL, state, scope, now_ms, out);
}

int vg_alarm_engine_silence_get(struct vg_alarm_engine *e, const char *id,
				const char *scope, int64_t now_ms, json_t **out)
{
	return silence_call(e, SILENCE_GET, id, NULL, scope, now_ms, out);
}

int vg_alarm_engine_silence_expire(struct vg_alarm_engine *e, const char *id,
				   const char *scope, int64_t now_ms)
{
	return silence_call(e, SILENCE_EXPIRE, id, NULL, scope, now_ms, NULL);
}

struct vg_alarm_outbox *vg_alarm_engine_outbox(struct vg_alarm_engine *e)
{
	return e->outbox;
}

void vg_alarm_engine_get_stats(struct vg_alarm_engine *e,
			       struct vg_alarm_engine_stats *out)
{
	size_t pos = 0;
	const struct vg_hmap_entry *s;

	pthread_mutex_lock(&e->lock);
	*out = e->st;
	out->alarms = vg_hmap_count(&e->alarms);
	out->series = vg_hmap_count(&e->series);
	out->resources = vg_hmap_count(&e->resources);
	out->pending = e->npend;
	out->silences_active = vg_alarm_silences_active(e->silences, wall(e));
	out->instances = 0;
	out->owned = 0;
	while ((s = vg_hmap_next(&e->alarms, &pos))) {
		out->instances += vg_hmap_count(&((struct alarm *)s->value)->insts);
		out->owned += vg_alarm_owned(e, s->value);
	}
	pthread_mutex_unlock(&e->lock);
}
