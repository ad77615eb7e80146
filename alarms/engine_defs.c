/*
 * engine_defs.c — the alarm engine's definitions: loading them from
 * alarms.db, and the API's create, update, delete, enable/disable, get,
 * list and history (vigie/alarm_engine.h).
 *
 * Design. A definition is validated (model.c), compiled (rule.c for a
 * composite), checked against the others (unique name per project;
 * composites refer to existing alarms, without cycles, at most
 * COMPOSITE_DEPTH deep) and stored with its history row in one
 * transaction before it enters the engine's maps; a failure leaves both
 * memory and alarms.db as they were. Every entry point first flushes the
 * persistence queue, so what it reads and writes follows every decision
 * already made. Changing what an alarm watches (metric, resource,
 * selector) drops its instances (their state rows deleted); changing only
 * how it evaluates (threshold, N, M...) keeps states and forgets the
 * datapoints; either bumps `gen` so series rebind lazily.
 *
 * Invariants: an alarm is in `alarms` and `names` together or in neither;
 * called with the engine's lock taken here, never held by the caller.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alarms/engine_defs.h"
#include "alarms/quota.h"
#include "alarms/engine_eval.h"
#include "alarms/engine_gstate.h"
#include "alarms/engine_queue.h"
#include "alarms/notice.h"
#include "alarms/rule.h"
#include "vigie/log.h"

#define MAX_INSTANCES_SHOWN 1000

/* ---- loading ---------------------------------------------------------------------------------------- */

static int compile(struct alarm *a, char *err, size_t errlen)
{
	vg_alarm_params_from_def(&a->params, &a->def);
	if (a->def.kind == VG_ALARM_COMPOSITE)
		return vg_alarm_rule_parse(a->def.rule, &a->rule, err, errlen);
	return 0;
}

static int insert_alarm(struct vg_alarm_engine *e, struct alarm *a)
{
	char k[600];
	size_t kl = key2(k, sizeof(k), a->def.project, a->def.name);

	if (!kl)
		return -ENAMETOOLONG;
	if (vg_hmap_put(&e->alarms, a->def.id, strlen(a->def.id), a, NULL))
		return -ENOMEM;
	if (vg_hmap_put(&e->names, k, kl, a, NULL)) {
		vg_hmap_del(&e->alarms, a->def.id, strlen(a->def.id));
		return -ENOMEM;
	}
	if (!a->def.webhook_fence)
		vg_alarm_unfenced_set(e, a->def.id, 1);
	e->gen++;
	return 0;
}

static void remove_alarm(struct vg_alarm_engine *e, struct alarm *a)
{
	char k[600];
	size_t kl = key2(k, sizeof(k), a->def.project, a->def.name);

	vg_hmap_del(&e->alarms, a->def.id, strlen(a->def.id));
	if (kl && vg_hmap_get(&e->names, k, kl) == a)
		vg_hmap_del(&e->names, k, kl);
	vg_alarm_unfenced_set(e, a->def.id, 0);
	e->gen++;
}

static int load_def(void *ctx, const char *id, const char *json,
		    int64_t created, int64_t updated)
{
	struct vg_alarm_engine *e = ctx;
	json_t *j = json_loads(json, 0, NULL), *errors = NULL;
	struct vg_alarm_policy pol = {0};
	struct alarm *a = calloc(1, sizeof(*a));
	char err[256];
	int rc;

	if (!a || !j) {
		vg_warn("alarms: alarm %s in alarms.db is unreadable; skipped", id);
		free(a);
		json_decref(j);
		return 0;
	}
	/* stored definitions were validated on the way in; only the
	 * deployment may have changed (exec names, Alertmanager) */
	pol.exec_names = e->exec_names;
	pol.nexec = e->o.nexec;
	pol.alertmanager = 1;
	pol.agent_interval_s = 0.001;
	pol.webhook_fence_default = 1; /* written before the fence existed */
	pol.stored = 1;
	rc = vg_alarm_def_from_json(j, &pol, &a->def, &errors);
	json_decref(j);
	if (rc) {
		char *t = errors ? json_dumps(errors, JSON_COMPACT) : NULL;
		vg_warn("alarms: alarm %s in alarms.db no longer validates (%s); "
			"skipped",
			id, t ? t : "out of memory");
		free(t);
		json_decref(errors);
		free(a);
		return 0;
	}
	snprintf(a->def.id, sizeof(a->def.id), "%s", id);
	a->def.created_ms = created;
	a->def.updated_ms = updated;
	vg_hmap_init(&a->insts);
	if (compile(a, err, sizeof(err)) || insert_alarm(e, a)) {
		vg_warn("alarms: alarm %s: %s; skipped", id, err);
		vg_alarm_free(e, a);
	}
	return 0;
}

static int load_state(void *ctx, const struct vg_alarm_state_row *row)
{
	struct vg_alarm_engine *e = ctx;
	struct alarm *a = vg_hmap_gets(&e->alarms, row->alarm_id);
	struct inst *in;

	if (!a)
		return 0;
	if (!(in = vg_hmap_gets(&a->insts, row->resource)) &&
	    !(in = vg_alarm_inst_new(a, row->resource)))
		return 0;
	in->ev.state = row->state;
	in->ev.since_ms = row->since_ms;
	in->ev.clear_since_ms = row->clear_since_ms;
	in->ev.alarm_periods = row->alarm_periods;
	in->updated_ms = row->updated_ms;
	in->cooldown_last_ms = row->cooldown_ms;
	/* a row written by the hot path has no text: rebuilt from the ring */
	if (!row->reason && row->ring)
		in->reason_stale = 1;
	else
		snprintf(in->reason, sizeof(in->reason), "%s", row->reason ? row->reason : "");
	if (row->ring)
		vg_alarm_eval_ring_unpack(&in->ev, row->ring, row->ring_len);
	/* a fillable row stands for itself and the quiet steps after it, up
	 * to the next datapoint (engine_queue.c, quiet steps); group alarms
	 * write every period */
	in->row_fillable = !a->def.group && row->ring && vg_alarm_eval_fillable(&in->ev);
	in->fill_quiet = in->row_fillable;
	/* the step log's entries after this row carry its log_base */
	in->row_base = row->log_base;
	in->logged = 0;
	if (row->log_base > e->log_base)
		e->log_base = row->log_base;
	return 0;
}

int vg_alarm_defs_load(struct vg_alarm_engine *e, char *err, size_t errlen)
{
	int rc;

	if ((rc = vg_alarm_store_load_defs(e->store, load_def, e))) {
		snprintf(err, errlen, "alarms.db: cannot load definitions: %s",
			 vg_alarm_store_errmsg(e->store));
		return rc;
	}
	if ((rc = vg_alarm_store_load_states(e->store, load_state, e)) ||
	    (rc = vg_alarm_gstate_load(e, NULL)) || (rc = vg_alarm_queue_log_load(e)))
		snprintf(err, errlen, "alarms.db: cannot load states: %s",
			 vg_alarm_store_errmsg(e->store));
	return rc;
}

int vg_alarm_defs_load_one(struct vg_alarm_engine *e, const char *id)
{
	return vg_alarm_store_load_def(e->store, id, load_def, e);
}

int vg_alarm_defs_load_states(struct vg_alarm_engine *e, const char *alarm_id)
{
	return vg_alarm_store_load_states_of(e->store, alarm_id, load_state, e);
}

void vg_alarm_defs_forget(struct vg_alarm_engine *e, struct alarm *a)
{
	remove_alarm(e, a);
	vg_alarm_free(e, a);
}

/* An alarm another node owns changed state: read what its owner
 * stored (what this node's API shows), and re-evaluate the composites
 * that name it (those this node owns decide). The database unreachable
 * (the read already ran once more on a connection lost at a restart)
 * stops the refresh, so the next round reads these alarms again instead
 * of moving past their transitions with the composites not told. */
static int refresh_one(void *ctx, const char *alarm_id)
{
	struct vg_alarm_engine *e = ctx;
	struct alarm *a = alarm_id ? vg_hmap_gets(&e->alarms, alarm_id) : NULL;
	int rc;

	if (!a || vg_alarm_owned(e, a))
		return 0;
	if (!(rc = vg_alarm_store_load_states_of(e->store, alarm_id, load_state, e)))
		vg_alarm_after_change(e, a, wall(e), 0);
	return rc == -EAGAIN ? rc : 0;
}

int vg_alarm_defs_refresh_unowned(struct vg_alarm_engine *e, int64_t since_ms)
{
	return vg_alarm_store_transitioned_since(e->store, since_ms, refresh_one, e);
}

/* ---- API ---------------------------------------------------------------------------------------------- */

/* The alarm ref names within scope into *out: 0, -ENOENT (none), or
 * -ENOTUNIQ: an administrator's bare name that alarms of several projects
 * share (the caller lists them; an id always works). */
static int find(struct vg_alarm_engine *e, const char *ref, const char *scope,
		struct alarm **out)
{
	struct alarm *a = vg_hmap_gets(&e->alarms, ref);
	size_t pos = 0;
	const struct vg_hmap_entry *s;

	*out = NULL;
	if (a) {
		if (scope && strcmp(scope, a->def.project))
			return -ENOENT;
		*out = a;
		return 0;
	}
	if (scope)
		return (*out = vg_alarm_by_name(e, scope, ref)) ? 0 : -ENOENT;
	/* administrator: a name unique across projects */
	while ((s = vg_hmap_next(&e->alarms, &pos))) {
		struct alarm *x = s->value;
		if (!strcmp(x->def.name, ref)) {
			if (a)
				return -ENOTUNIQ;
			a = x;
		}
	}
	*out = a;
	return a ? 0 : -ENOENT;
}

static void add_error(json_t **errors, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void add_error(json_t **errors, const char *field, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!*errors)
		*errors = json_array();
	json_array_append_new(*errors, json_pack("{s:s,s:s}", "field", field,
						 "message", msg));
}

/* Whether following composite references from `from` reaches `target`. */
static int reaches(struct vg_alarm_engine *e, const char *project,
		   const struct vg_alarm_rule *rule, const char *target, int depth)
{
	if (depth > COMPOSITE_DEPTH)
		return 1; /* too deep counts as a cycle */
	for (size_t i = 0; i < vg_alarm_rule_nrefs(rule); i++) {
		const char *n = vg_alarm_rule_ref(rule, i);
		struct alarm *r;
		if (!strcmp(n, target))
			return 1;
		r = vg_alarm_by_name(e, project, n);
		if (r && r->rule && reaches(e, project, r->rule, target, depth + 1))
			return 1;
	}
	return 0;
}

/* Check a composite's references; errors go to *errors. */
static int check_refs(struct vg_alarm_engine *e, struct alarm *a, json_t **errors)
{
	int bad = 0;

	for (size_t i = 0; i < vg_alarm_rule_nrefs(a->rule); i++) {
		const char *n = vg_alarm_rule_ref(a->rule, i);
		if (!strcmp(n, a->def.name)) {
			add_error(errors, "rule", "an alarm cannot refer to itself");
			bad = 1;
		} else if (!vg_alarm_by_name(e, a->def.project, n)) {
			add_error(errors, "rule", "no alarm named '%s' in project '%s'",
				  n, a->def.project);
			bad = 1;
		}
	}
	if (!bad && reaches(e, a->def.project, a->rule, a->def.name, 0)) {
		add_error(errors, "rule", "the rule makes a cycle through other "
					  "composite alarms (or nests deeper than %d)",
			  COMPOSITE_DEPTH);
		bad = 1;
	}
	return bad ? -EINVAL : 0;
}

/* Names of composites referring to a (for -EBUSY messages); "" if none. */
static void referrers(struct vg_alarm_engine *e, struct alarm *a, char *buf,
		      size_t len)
{
	char k[600];
	size_t kl = key2(k, sizeof(k), a->def.project, a->def.name);
	struct list *l;

	buf[0] = '\0';
	vg_alarm_reindex(e);
	l = kl ? vg_hmap_get(&e->deps, k, kl) : NULL;
	for (size_t i = 0; l && i < l->n; i++) {
		size_t n = strlen(buf);
		if (l->a[i] == a)
			continue;
		snprintf(buf + n, len - n, "%s%s", n ? ", " : "", l->a[i]->def.name);
	}
}

static json_t *state_json(struct alarm *a, int with_instances)
{
	json_t *o = vg_alarm_def_to_json(&a->def), *insts;
	size_t pos = 0, n = 0, counts[3] = {0, 0, 0};
	const struct vg_hmap_entry *s;
	char ts[32];
	int64_t since = 0;
	const char *reason = NULL;

	if (!o)
		return NULL;
	insts = json_array();
	while ((s = vg_hmap_next(&a->insts, &pos))) {
		struct inst *in = s->value;
		counts[in->ev.state]++;
		if (in->ev.state == a->agg && (!since || in->ev.since_ms > since)) {
			since = in->ev.since_ms;
			reason = vg_alarm_inst_reason(in);
		}
		if (with_instances && n++ < MAX_INSTANCES_SHOWN)
			json_array_append_new(insts, json_pack(
							     "{s:o,s:s,s:o,s:s}", "resource",
							     *in->resource ? json_string(in->resource) : json_null(),
							     "state", vg_alarm_state_name(in->ev.state), "since",
							     in->ev.since_ms ? json_string(vg_time_format(in->ev.since_ms, ts,
													  sizeof(ts)))
									     : json_null(),
							     "reason", vg_alarm_inst_reason(in)));
	}
	json_object_set_new(o, "state", json_string(vg_alarm_state_name(a->agg)));
	json_object_set_new(o, "state_since",
			    since ? json_string(vg_time_format(since, ts, sizeof(ts)))
				  : json_null());
	json_object_set_new(o, "state_reason", json_string(reason ? reason : "no datapoints yet"));
	json_object_set_new(o, "state_counts",
			    json_pack("{s:I,s:I,s:I}", "alarm", (json_int_t)counts[2], "ok",
				      (json_int_t)counts[1], "insufficient_data",
				      (json_int_t)counts[0]));
	if (with_instances)
		json_object_set_new(o, "instances", insts);
	else
		json_decref(insts);
	return o;
}

static void materialize_reasons(struct alarm *a)
{
	size_t pos = 0;
	const struct vg_hmap_entry *s;

	while ((s = vg_hmap_next(&a->insts, &pos)))
		vg_alarm_inst_reason(s->value);
}

static struct vg_alarm_policy policy(struct vg_alarm_engine *e, const char *scope)
{
	struct vg_alarm_policy p = {
		.exec_names = e->exec_names,
		.nexec = e->o.nexec,
		.alertmanager = e->am_url != NULL,
		.agent_interval_s = e->o.agent_interval_s,
		.scope_project = scope,
		.check_metric = e->o.check_metrics,
		.metric_seen = e->o.metric_seen,
		.metric_ctx = e->o.metric_ctx,
	};
	return p;
}

/* Store a definition with a history row in one transaction. */
static int persist_def(struct vg_alarm_engine *e, struct alarm *a, const char *type,
		       json_t *detail)
{
	json_t *j = vg_alarm_def_to_json(&a->def);
	char *text, *dt;
	int rc;

	if (!j)
		return -ENOMEM;
	json_object_del(j, "id");
	json_object_del(j, "created_at");
	json_object_del(j, "updated_at");
	text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
	if (!detail)
		detail = json_pack("{s:O}", "definition", j);
	json_decref(j);
	dt = detail ? json_dumps(detail, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
	json_decref(detail);
	if (!text) {
		free(dt);
		return -ENOMEM;
	}
	rc = vg_alarm_store_begin(e->store);
	if (!rc)
		rc = vg_alarm_store_put_def(e->store, a->def.id, a->def.project,
					    a->def.name, text, a->def.created_ms,
					    a->def.updated_ms);
	if (!rc)
		rc = vg_alarm_store_history_add(e->store, a->def.id, a->def.project,
						type, NULL, wall(e), wall(e), dt);
	if (!rc)
		rc = vg_alarm_store_commit(e->store);
	if (rc)
		vg_alarm_store_rollback(e->store);
	free(text);
	free(dt);
	return rc;
}

int vg_alarm_engine_create(struct vg_alarm_engine *e, const json_t *body,
			   const char *scope, json_t **out, json_t **errors)
{
	struct vg_alarm_policy pol = policy(e, scope);
	struct alarm *a = calloc(1, sizeof(*a));
	char err[256];
	int rc;

	*out = NULL;
	*errors = NULL;
	if (!a)
		return -ENOMEM;
	vg_hmap_init(&a->insts);
	rc = vg_alarm_def_from_json(body, &pol, &a->def, errors);
	if (rc) {
		free(a);
		return rc;
	}
	if ((rc = vg_alarm_uuid(a->def.id, sizeof(a->def.id)))) {
		vg_alarm_free(e, a);
		return rc;
	}
	if ((rc = compile(a, err, sizeof(err)))) {
		add_error(errors, "rule", "%s", err);
		vg_alarm_free(e, a);
		return -EINVAL;
	}
	pthread_mutex_lock(&e->lock);
	vg_alarm_queue_flush(e);
	a->def.created_ms = a->def.updated_ms = wall(e);
	if (vg_hmap_count(&e->alarms) >= VG_ALARM_MAX_ALARMS) {
		rc = -ENOSPC;
		add_error(errors, "", "this collector already has %d alarms",
			  VG_ALARM_MAX_ALARMS);
	} else if (scope && vg_alarm_quota_check_def(e, &a->def, NULL, errors)) {
		rc = -EDQUOT; /* per-project limits: project tokens only */
	} else if (vg_alarm_by_name(e, a->def.project, a->def.name)) {
		rc = -EEXIST;
		add_error(errors, "name", "an alarm named '%s' already exists in "
					  "project '%s'",
			  a->def.name, a->def.project);
	} else if (a->rule)
		rc = check_refs(e, a, errors);
	if (!rc)
		rc = persist_def(e, a, "creation", NULL);
	int was_indexed = e->indexed_gen == e->gen;
	if (!rc)
		rc = insert_alarm(e, a);
	if (rc) {
		pthread_mutex_unlock(&e->lock);
		vg_alarm_free(e, a);
		return rc;
	}
	if (was_indexed) { /* O(1) instead of a full rebuild */
		vg_alarm_index_add(e, a);
		e->indexed_gen = e->gen;
	} else
		vg_alarm_reindex(e);
	if (a->rule) {
		vg_alarm_composite_eval(e, a, wall(e), 0);
		vg_alarm_queue_flush(e);
	}
	*out = state_json(a, 1);
	pthread_mutex_unlock(&e->lock);
	if (e->on_create) /* clustered: lease the new alarm now */
		e->on_create(e->on_create_ctx);
	return 0;
}

int vg_alarm_engine_update(struct vg_alarm_engine *e, const char *ref,
			   const json_t *body, int patch, const char *scope,
			   json_t **out, json_t **errors)
{
	struct vg_alarm_policy pol = policy(e, scope);
	struct vg_alarm_def nd;
	struct vg_alarm_rule *nrule = NULL;
	struct alarm *a;
	json_t *merged = NULL;
	char err[256], refs[512];
	int rc, reset_insts = 0, reset_rings = 0;

	*out = NULL;
	*errors = NULL;
	pthread_mutex_lock(&e->lock);
	vg_alarm_queue_flush(e);
	if ((rc = find(e, ref, scope, &a))) {
		pthread_mutex_unlock(&e->lock);
		return rc;
	}
	if (patch) {
		if (!json_is_object(body)) {
			pthread_mutex_unlock(&e->lock);
			add_error(errors, "", "the patch must be a JSON object");
			return -EINVAL;
		}
		merged = vg_alarm_def_to_json(&a->def);
		if (!merged || json_object_update(merged, (json_t *)body)) {
			pthread_mutex_unlock(&e->lock);
			json_decref(merged);
			return -ENOMEM;
		}
		/* the stored form names the selector type "any" for none */
		json_t *sel = json_object_get(merged, "selector");
		if (json_is_object(sel) &&
		    json_is_string(json_object_get(sel, "type")) &&
		    !strcmp(json_string_value(json_object_get(sel, "type")), "any"))
			json_object_del(sel, "type");
		if (json_object_get(body, "resource"))
			json_object_del(merged, "selector");
		else if (json_object_get(body, "selector"))
			json_object_del(merged, "resource");
		if (!scope)
			json_object_set_new(merged, "project", json_string(a->def.project));
		/* an alarm changed with a project's token is fenced, as PUT
		 * makes it (docs/alarms.md): an administrator's stored
		 * "false" is not the caller's, and read as given it made any
		 * PATCH of the tenant a 400 about a fence it never named */
		else if (!json_object_get(body, "webhook_fence"))
			json_object_del(merged, "webhook_fence");
		body = merged;
	} else if (!scope && !json_object_get(body, "project")) {
		/* a replacement keeps the alarm in its project */
		merged = json_deep_copy(body);
		if (merged && json_is_object(merged)) {
			json_object_set_new(merged, "project", json_string(a->def.project));
			body = merged;
		}
	}
	rc = vg_alarm_def_from_json(body, &pol, &nd, errors);
	json_decref(merged);
	if (rc) {
		pthread_mutex_unlock(&e->lock);
		return rc;
	}
	if (strcmp(nd.project, a->def.project)) {
		add_error(errors, "project", "an alarm cannot move to another "
					     "project (delete and create it)");
		rc = -EINVAL;
	} else if (nd.kind != a->def.kind) {
		add_error(errors, "type", "an alarm cannot change type");
		rc = -EINVAL;
	}
	if (!rc && strcmp(nd.name, a->def.name)) {
		struct alarm *other = vg_alarm_by_name(e, nd.project, nd.name);
		referrers(e, a, refs, sizeof(refs));
		if (other && other != a) {
			add_error(errors, "name", "an alarm named '%s' already exists "
						  "in project '%s'",
				  nd.name, nd.project);
			rc = -EEXIST;
		} else if (*refs) {
			add_error(errors, "name", "renaming would break composite "
						  "alarm(s) %s",
				  refs);
			rc = -EBUSY;
		}
	}
	if (!rc && nd.kind == VG_ALARM_COMPOSITE &&
	    vg_alarm_rule_parse(nd.rule, &nrule, err, sizeof(err))) {
		add_error(errors, "rule", "%s", err);
		rc = -EINVAL;
	}
	if (!rc && scope && vg_alarm_quota_check_def(e, &nd, a, errors))
		rc = -EDQUOT;
	if (!rc && nrule) {
		struct alarm probe = {0};
		probe.def = nd;
		probe.rule = nrule;
		rc = check_refs(e, &probe, errors);
	}
	if (rc) {
		vg_alarm_rule_free(nrule);
		vg_alarm_def_release(&nd);
		pthread_mutex_unlock(&e->lock);
		return rc;
	}
	memcpy(nd.id, a->def.id, sizeof(nd.id));
	nd.created_ms = a->def.created_ms;
	nd.updated_ms = wall(e);
	if (nd.kind == VG_ALARM_THRESHOLD &&
	    (!str_eq(nd.metric, a->def.metric) || !str_eq(nd.resource, a->def.resource) ||
	     nd.sel.rtype != a->def.sel.rtype || !str_eq(nd.sel.project, a->def.sel.project) ||
	     !str_eq(nd.sel.host, a->def.sel.host) || !str_eq(nd.sel.flavor, a->def.sel.flavor) ||
	     nd.sel.nmeta != a->def.sel.nmeta || nd.group != a->def.group))
		reset_insts = 1;
	else if (nd.kind == VG_ALARM_EVENT && vg_alarm_def_eval_changed(&nd, &a->def))
		reset_insts = 1; /* instances of events the alarm no longer matches */
	else if (vg_alarm_def_eval_changed(&nd, &a->def))
		reset_rings = 1;
	/* the reasons the ring still explains are written out before the
	 * parameters or the ring change */
	materialize_reasons(a);
	/* swap in, keeping the old definition to restore on failure */
	struct vg_alarm_def old = a->def;
	struct vg_alarm_rule *oldrule = a->rule;
	struct vg_alarm_params oldparams = a->params;
	remove_alarm(e, a);
	a->def = nd;
	a->rule = nrule;
	vg_alarm_params_from_def(&a->params, &a->def);
	rc = persist_def(e, a, "update", NULL);
	if (!rc)
		rc = insert_alarm(e, a);
	if (rc) {
		a->def = old;
		a->rule = oldrule;
		a->params = oldparams;
		insert_alarm(e, a);
		vg_alarm_rule_free(nrule);
		vg_alarm_def_release(&nd);
		pthread_mutex_unlock(&e->lock);
		return rc;
	}
	vg_alarm_rule_free(oldrule);
	vg_alarm_def_release(&old);
	if (reset_insts) {
		size_t pos = 0;
		const struct vg_hmap_entry *s;
		while ((s = vg_hmap_next(&a->insts, &pos))) {
			struct inst *in = s->value;
			vg_alarm_queue_delete_state(e, a->def.id, in->resource);
		}
		vg_alarm_free_insts(e, a);
		vg_alarm_gstate_free(e, a); /* members join again */
		a->agg = VG_ALARM_INSUFFICIENT_DATA;
	} else if (reset_rings || oldparams.n != a->params.n) {
		size_t pos = 0;
		const struct vg_hmap_entry *s;
		while ((s = vg_hmap_next(&a->insts, &pos))) {
			struct inst *in = s->value;
			struct vg_alarm_eval ev;
			if (!vg_alarm_eval_init(&ev, &a->params)) {
				ev.state = in->ev.state;
				ev.since_ms = in->ev.since_ms;
				vg_alarm_eval_release(&in->ev);
				in->ev = ev;
			} else
				vg_alarm_eval_reset(&in->ev);
			vg_alarm_queue_mark_dirty(e, in);
		}
	}
	vg_alarm_reindex(e);
	if (a->rule)
		vg_alarm_composite_eval(e, a, wall(e), 0);
	vg_alarm_after_change(e, a, wall(e), 0);
	vg_alarm_queue_flush(e);
	*out = state_json(a, 1);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

int vg_alarm_engine_delete(struct vg_alarm_engine *e, const char *ref,
			   const char *scope, json_t **errors)
{
	struct alarm *a;
	char refs[512];
	int rc;

	*errors = NULL;
	pthread_mutex_lock(&e->lock);
	vg_alarm_queue_flush(e);
	if ((rc = find(e, ref, scope, &a))) {
		pthread_mutex_unlock(&e->lock);
		return rc;
	}
	referrers(e, a, refs, sizeof(refs));
	if (*refs) {
		add_error(errors, "", "alarm '%s' is used by composite alarm(s) %s; "
				      "change or delete those first",
			  a->def.name, refs);
		pthread_mutex_unlock(&e->lock);
		return -EBUSY;
	}
	rc = vg_alarm_store_begin(e->store);
	if (!rc)
		rc = vg_alarm_store_delete_def(e->store, a->def.id);
	if (!rc)
		rc = vg_alarm_store_history_add(e->store, a->def.id, a->def.project,
						"deletion", NULL, wall(e), wall(e),
						"{}");
	if (!rc)
		rc = vg_alarm_store_commit(e->store);
	if (rc) {
		vg_alarm_store_rollback(e->store);
		pthread_mutex_unlock(&e->lock);
		return rc;
	}
	remove_alarm(e, a);
	vg_alarm_free(e, a);
	vg_alarm_reindex(e);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

int vg_alarm_engine_set_enabled(struct vg_alarm_engine *e, const char *ref,
				const char *scope, int enabled, json_t **out)
{
	struct alarm *a;
	int rc = 0;

	*out = NULL;
	pthread_mutex_lock(&e->lock);
	vg_alarm_queue_flush(e);
	if ((rc = find(e, ref, scope, &a))) {
		pthread_mutex_unlock(&e->lock);
		return rc;
	}
	if (a->def.enabled != !!enabled) {
		a->def.enabled = !!enabled;
		a->def.updated_ms = wall(e);
		rc = persist_def(e, a, enabled ? "enabled" : "disabled", json_object());
		if (rc)
			a->def.enabled = !enabled;
		else {
			/* datapoints from before the pause say nothing now */
			size_t pos = 0;
			const struct vg_hmap_entry *s;
			materialize_reasons(a);
			while (enabled && (s = vg_hmap_next(&a->insts, &pos))) {
				vg_alarm_eval_reset(&((struct inst *)s->value)->ev);
				vg_alarm_queue_mark_dirty(e, s->value);
			}
			e->gen++;
			vg_alarm_reindex(e);
			if (enabled && a->rule)
				vg_alarm_composite_eval(e, a, wall(e), 0);
			vg_alarm_queue_flush(e);
		}
	}
	if (!rc)
		*out = state_json(a, 1);
	pthread_mutex_unlock(&e->lock);
	return rc;
}

int vg_alarm_engine_get(struct vg_alarm_engine *e, const char *ref,
			const char *scope, json_t **out)
{
	struct alarm *a;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&e->lock);
	rc = find(e, ref, scope, &a);
	if (!rc)
		*out = state_json(a, 1);
	pthread_mutex_unlock(&e->lock);
	if (rc)
		return rc;
	return *out ? 0 : -ENOMEM;
}

static int cmp_alarm(const void *x, const void *y)
{
	const struct alarm *a = *(struct alarm *const *)x, *b = *(struct alarm *const *)y;
	int c = strcmp(a->def.project, b->def.project);

	return c ? c : strcmp(a->def.name, b->def.name);
}

/* 1 if a comes after the cursor: the last alarm of the previous page,
 * "project/name" (or "name" when scoped), in the order of cmp_alarm.
 * Compared as the pair, not as one string: "shop-eu/x" sorts before
 * "shop/x" as a string ('-' < '/') but after it as a pair, so the page
 * after "shop/x" skipped project shop-eu, and a project with a '/' in its
 * name sent the pages round in a loop. Alarm names have no '/': the
 * project is what comes before the last one. */
static int after_cursor(const struct alarm *a, const char *scope, const char *after)
{
	const char *slash = strrchr(after, '/');
	size_t pl;
	int c;

	if (scope)
		return strcmp(a->def.name, after) > 0;
	if (!slash) /* a project alone: its alarms and those after it */
		return strcmp(a->def.project, after) >= 0;
	pl = (size_t)(slash - after);
	c = strncmp(a->def.project, after, pl);
	if (!c && a->def.project[pl])
		c = 1; /* a longer project, after the cursor's */
	return c ? c > 0 : strcmp(a->def.name, slash + 1) > 0;
}

int vg_alarm_engine_list(struct vg_alarm_engine *e, const char *scope,
			 const struct vg_alarm_list_filter *f, json_t **out)
{
	struct alarm **v;
	size_t n = 0, pos = 0;
	const struct vg_hmap_entry *s;
	json_t *arr, *o;
	int limit = f->limit > 0 && f->limit <= 1000 ? f->limit : 100, k = 0;
	const char *project = scope ? scope : f->project;

	*out = NULL;
	pthread_mutex_lock(&e->lock);
	v = malloc((vg_hmap_count(&e->alarms) + 1) * sizeof(*v));
	if (!v) {
		pthread_mutex_unlock(&e->lock);
		return -ENOMEM;
	}
	while ((s = vg_hmap_next(&e->alarms, &pos))) {
		struct alarm *a = s->value;
		if (project && strcmp(project, a->def.project))
			continue;
		if (f->state >= 0 && a->agg != f->state)
			continue;
		if (f->enabled >= 0 && a->def.enabled != f->enabled)
			continue;
		if (f->kind >= 0 && a->def.kind != f->kind)
			continue;
		if (f->name && strcmp(f->name, a->def.name))
			continue;
		v[n++] = a;
	}
	qsort(v, n, sizeof(*v), cmp_alarm);
	arr = json_array();
	o = json_object();
	json_object_set_new(o, "next", json_null());
	for (size_t i = 0; i < n; i++) {
		if (f->after && !after_cursor(v[i], scope, f->after))
			continue;
		if (k == limit) {
			const struct alarm *last = v[i - 1];
			char cur[600];
			snprintf(cur, sizeof(cur), "%s/%s", last->def.project, last->def.name);
			json_object_set_new(o, "next", json_string(scope ? last->def.name : cur));
			break;
		}
		json_array_append_new(arr, state_json(v[i], 0));
		k++;
	}
	json_object_set_new(o, "alarms", arr);
	free(v);
	pthread_mutex_unlock(&e->lock);
	*out = o;
	return 0;
}

int vg_alarm_engine_test_notification(struct vg_alarm_engine *e, const char *ref,
				      const char *scope, const char *state, json_t **out,
				      int64_t *retry_after_ms)
{
	struct vg_alarm_notice_info ni = {0};
	struct pending *p;
	struct alarm *a;
	json_t *rd, *acts;
	char nid[40];
	int st = state ? vg_alarm_state_parse(state) : VG_ALARM_ALARM, rc;
	int64_t now;

	*out = NULL;
	*retry_after_ms = 0;
	if (st < 0)
		return -EINVAL;
	pthread_mutex_lock(&e->lock);
	vg_alarm_queue_flush(e);
	if ((rc = find(e, ref, scope, &a))) {
		pthread_mutex_unlock(&e->lock);
		return rc;
	}
	if (!a->def.nactions[st]) {
		pthread_mutex_unlock(&e->lock);
		return -ENOMSG;
	}
	now = wall(e);
	if (vg_alarm_quota_take_notification(e, a->def.project, now)) {
		*retry_after_ms = vg_alarm_quota_wait_ms(e, a->def.project, now);
		e->st.rate_limited++;
		pthread_mutex_unlock(&e->lock);
		return -EDQUOT;
	}
	if ((rc = vg_alarm_uuid(nid, sizeof(nid)))) {
		pthread_mutex_unlock(&e->lock);
		return rc;
	}
	rd = json_pack("{s:s}", "type", "test");
	ni.notice_id = nid;
	ni.sequence = a->seq;
	ni.def = &a->def;
	ni.previous = ni.current = st;
	ni.reason = "a test notification, asked for through the API";
	ni.reason_data = rd;
	ni.time_ms = ni.period_start_ms = ni.evaluated_ms = now;
	p = vg_alarm_queue_history(e, a, "test", NULL, now,
				   json_pack("{s:s,s:s}", "notification_id", nid, "state",
					     vg_alarm_state_name(st)));
	rc = -ENOMEM;
	if (p) {
		json_t *b;
		char *body = vg_alarm_notice_json(&ni, &p->body_len);
		snprintf(p->notice_id, sizeof(p->notice_id), "%s", nid);
		p->test = 1;
		/* "type": "test", so no receiver takes it for a transition */
		if (body && (b = json_loads(body, 0, NULL))) {
			json_object_set_new(b, "type", json_string("test"));
			p->body = json_dumps(b, JSON_COMPACT | JSON_REAL_PRECISION(17));
			p->body_len = p->body ? strlen(p->body) : 0;
			json_decref(b);
		}
		free(body);
		if (p->body && (p->actions = calloc(a->def.nactions[st], sizeof(char *)))) {
			for (size_t k = 0; k < a->def.nactions[st]; k++)
				if ((p->actions[p->nactions] = strdup(a->def.actions[st][k])))
					p->nactions++;
			if (asprintf(&p->log_line, "alarm %s/%s: test notification (%s)",
				     a->def.project, a->def.name, vg_alarm_state_name(st)) < 0)
				p->log_line = NULL;
			rc = 0;
		}
	}
	json_decref(rd);
	if (!rc)
		rc = vg_alarm_queue_flush(e);
	if (!rc) {
		acts = json_array();
		for (size_t k = 0; k < a->def.nactions[st]; k++)
			json_array_append_new(acts, json_string(a->def.actions[st][k]));
		*out = json_pack("{s:s,s:s,s:o}", "notification_id", nid, "state",
				 vg_alarm_state_name(st), "actions", acts);
	}
	pthread_mutex_unlock(&e->lock);
	return rc ? rc : *out ? 0
			      : -ENOMEM;
}

int vg_alarm_engine_groups(struct vg_alarm_engine *e, const char *scope, json_t **out)
{
	json_t *g = NULL;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&e->lock);
	vg_alarm_queue_flush(e);
	rc = vg_alarm_store_groups_pending(e->store, scope, &g);
	pthread_mutex_unlock(&e->lock);
	if (rc)
		return rc;
	*out = json_pack("{s:o}", "groups", g);
	return *out ? 0 : -ENOMEM;
}

int vg_alarm_engine_history(struct vg_alarm_engine *e, const char *ref,
			    const char *scope, struct vg_alarm_history_query *q,
			    json_t **out, int64_t *next_seq)
{
	struct alarm *a;
	char id[40];
	int rc;

	*out = NULL;
	pthread_mutex_lock(&e->lock);
	vg_alarm_queue_flush(e);
	if ((rc = find(e, ref, scope, &a))) {
		pthread_mutex_unlock(&e->lock);
		return rc;
	}
	snprintf(id, sizeof(id), "%s", a->def.id);
	q->alarm_id = id;
	rc = vg_alarm_store_history(e->store, q, out, next_seq);
	q->alarm_id = NULL;
	pthread_mutex_unlock(&e->lock);
	return rc;
}
