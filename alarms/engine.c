/*
 * engine.c — the alarm engine: definitions in memory, event-driven
 * evaluation of samples, composites, persistence and fan-out of
 * notifications (vigie/alarm_engine.h).
 *
 * Design. Nine hash maps, all under one lock:
 *   alarms     id -> alarm (definition, compiled rule, instances)
 *   names      project NUL name -> alarm (composites refer by name)
 *   watchers   metric -> enabled selector alarms watching it
 *   exact      resource NUL metric -> enabled single-resource alarms
 *   metrics    metric -> how many enabled threshold alarms watch it
 *   deps       project NUL name -> composites that name that alarm
 *   series     resource NUL metric -> series (counter state, one window per
 *              distinct period, bindings window -> alarm instance)
 *   resources  id -> type, project, host, flavor, attributes, series
 *   hosts      host -> data clock
 * watchers, exact, metrics and deps are indexes rebuilt from `alarms`
 * (reindex). A definition change bumps `gen`; a series
 * whose gen is older rebinds (re-matches selectors) before it is used, so
 * definitions change in O(1) and bindings follow lazily.
 *
 * Samples are de-duplicated per series by time (re-sent batches, replays
 * after a restart feed nothing twice); an instance also refuses a period
 * at or before its newest datapoint (persisted), so a restart never
 * evaluates a period twice.
 *
 * Every change that must survive a crash (instance state and datapoints,
 * history, outbox rows) is queued in `pending` and `dirty` and written in
 * one transaction at the end of the batch or tick; only then are
 * notifications published on SSE and the log and the delivery thread
 * woken. The PUB socket, live and lossy by contract, gets each
 * notification at its decision, before the commit.
 *
 * Invariants: a binding points at a live instance when its series' gen
 * equals the engine's gen; an instance is in `dirty` at most once and is
 * removed from it before it is freed; pending entries own their strings.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vigie/alarm_engine.h"
#include "alarms/eval.h"
#include "vigie/hmap.h"
#include "alarms/notice.h"
#include "vigie/alarm_outbox.h"
#include "alarms/rule.h"
#include "alarms/series.h"
#include "vigie/clock.h"
#include "vigie/log.h"

#define EXPIRE_EVERY_MS 500
#define PRUNE_EVERY_MS 3600000
#define COMPOSITE_DEPTH 16
#define MAX_INSTANCES_SHOWN 1000

struct alarm;
struct series;

struct kv {
	char *key, *value;
};

struct res_info {
	char *id;
	int rtype;
	char *project, *host, *flavor;
	size_t nattrs;
	struct kv *attrs;
	struct series **series;
	size_t nseries, capseries;
};

struct inst {
	struct alarm *a;
	char *resource;              /* "" for a composite */
	struct vg_alarm_eval ev;
	char reason[VG_ALARM_REASON_MAX];
	int dirty;
	int64_t updated_ms;
};

struct alarm {
	struct vg_alarm_def def;
	struct vg_alarm_params params;
	struct vg_alarm_rule *rule;
	struct vg_hmap insts;        /* resource -> inst */
	int agg;
	uint64_t seq;                /* notifications sent */
	int visit;
};

struct list {
	struct alarm **a;
	size_t n, cap;
};

struct window_ent {
	struct vg_alarm_window w;
	uint32_t max_gap;
};

struct binding {
	struct inst *in;
	uint32_t win;
};

struct series {
	struct res_info *res;
	char *metric;
	char *key;
	size_t klen;
	int kind;
	int64_t last_t;
	double last_raw;
	int64_t interval_ms;
	uint64_t gen;
	struct window_ent *win;
	size_t nwin;
	struct binding *bind;
	size_t nbind;
};

struct host_clock {
	int64_t data_ms, wall_ms;
};

enum pend_kind { P_HISTORY, P_DELETE_STATE };

struct pending {
	int kind;
	char *alarm_id, *project, *type, *resource;
	int64_t time_ms;
	char *detail;
	/* a notification (body != NULL) */
	char notice_id[40];
	char *body;
	size_t body_len;
	char **actions;
	size_t nactions;
	char *log_line;
};

struct vg_alarm_engine {
	struct vg_alarm_engine_options o;
	struct vg_alarm_exec_cmd exec[VG_EXEC_MAX];
	const char *exec_names[VG_EXEC_MAX];
	char *am_url;
	pthread_mutex_t lock;
	struct vg_alarm_store *store;
	struct vg_alarm_outbox *outbox;
	struct vg_hmap alarms, names, watchers, exact, metrics, deps, series,
		resources, hosts;
	uint64_t gen, indexed_gen;
	struct inst **dirty;
	size_t ndirty, capdirty;
	struct pending *pend;
	size_t npend, cappend;
	int64_t last_expire_ms, last_prune_ms;
	struct vg_alarm_engine_stats st;
	uint64_t log_store, log_dropped;
	/* scratch for the current batch */
	const char *cur_host;
};

/* ---- small helpers ---------------------------------------------------------- */

static int64_t wall(struct vg_alarm_engine *e)
{
	return e->o.now_ms ? e->o.now_ms() : vg_now_ms();
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* key = a NUL b, in buf; returns length or 0 if it does not fit. */
static size_t key2(char *buf, size_t len, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la + lb + 2 > len)
		return 0;
	memcpy(buf, a, la);
	buf[la] = '\0';
	memcpy(buf + la + 1, b, lb + 1);
	return la + 1 + lb;
}

static int list_add(struct list *l, struct alarm *a)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 4;
		struct alarm **n = realloc(l->a, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		l->a = n;
		l->cap = cap;
	}
	l->a[l->n++] = a;
	return 0;
}

static void free_lists(struct vg_hmap *m)
{
	size_t pos = 0;
	const struct vg_hmap_entry *s;

	while ((s = vg_hmap_next(m, &pos))) {
		struct list *l = s->value;
		free(l->a);
		free(l);
	}
	vg_hmap_release(m);
	vg_hmap_init(m);
}

/* ---- pending writes ----------------------------------------------------------- */

static void pending_release(struct pending *p)
{
	free(p->alarm_id);
	free(p->project);
	free(p->type);
	free(p->resource);
	free(p->detail);
	free(p->body);
	for (size_t i = 0; i < p->nactions; i++)
		free(p->actions[i]);
	free(p->actions);
	free(p->log_line);
	memset(p, 0, sizeof(*p));
}

static struct pending *pending_new(struct vg_alarm_engine *e)
{
	if (e->npend >= VG_ALARM_MAX_PENDING) {
		/* the database has been failing for a long time: drop the
		 * oldest so memory stays bounded */
		pending_release(&e->pend[0]);
		memmove(e->pend, e->pend + 1, (e->npend - 1) * sizeof(*e->pend));
		e->npend--;
		e->st.pending_dropped++;
		vg_log_limited(VG_LOG_ERROR, &e->log_dropped,
			       "alarms: alarms.db unwritable for too long, "
			       "dropping the oldest pending notification");
	}
	if (e->npend == e->cappend) {
		size_t cap = e->cappend ? 2 * e->cappend : 64;
		struct pending *n = realloc(e->pend, cap * sizeof(*n));
		if (!n)
			return NULL;
		e->pend = n;
		e->cappend = cap;
	}
	struct pending *p = &e->pend[e->npend++];
	memset(p, 0, sizeof(*p));
	return p;
}

static struct pending *history(struct vg_alarm_engine *e, struct alarm *a,
				const char *type, const char *resource, int64_t t,
				json_t *detail)
{
	struct pending *p = pending_new(e);

	if (!p) {
		json_decref(detail);
		return NULL;
	}
	p->kind = P_HISTORY;
	p->alarm_id = xstrdup(a->def.id);
	p->project = xstrdup(a->def.project);
	p->type = xstrdup(type);
	p->resource = xstrdup(resource && *resource ? resource : NULL);
	p->time_ms = t;
	p->detail = detail ? json_dumps(detail, JSON_COMPACT | JSON_REAL_PRECISION(17))
			   : NULL;
	json_decref(detail);
	return p;
}

static void mark_dirty(struct vg_alarm_engine *e, struct inst *in)
{
	if (in->dirty)
		return;
	if (e->ndirty == e->capdirty) {
		size_t cap = e->capdirty ? 2 * e->capdirty : 64;
		struct inst **n = realloc(e->dirty, cap * sizeof(*n));
		if (!n)
			return; /* written with a later change */
		e->dirty = n;
		e->capdirty = cap;
	}
	e->dirty[e->ndirty++] = in;
	in->dirty = 1;
}

static void undirty(struct vg_alarm_engine *e, struct inst *in)
{
	if (!in->dirty)
		return;
	for (size_t i = 0; i < e->ndirty; i++)
		if (e->dirty[i] == in) {
			e->dirty[i] = e->dirty[--e->ndirty];
			break;
		}
	in->dirty = 0;
}

static int write_state(struct vg_alarm_engine *e, struct inst *in)
{
	unsigned char ring[(VG_ALARM_MAX_N + VG_ALARM_RANGE_EXTRA) * 16];
	struct vg_alarm_state_row row = {
		.alarm_id = in->a->def.id,
		.resource = in->resource,
		.state = in->ev.state,
		.since_ms = in->ev.since_ms,
		.clear_since_ms = in->ev.clear_since_ms,
		.alarm_periods = in->ev.alarm_periods,
		.reason = in->reason,
		.ring = ring,
		.ring_len = vg_alarm_eval_ring_pack(&in->ev, ring, sizeof(ring)),
		.updated_ms = in->updated_ms,
	};

	return vg_alarm_store_put_state(e->store, &row);
}

/* Write dirty states and pending rows in one transaction; then publish. */
static int flush(struct vg_alarm_engine *e)
{
	int rc, wake = 0;

	if (!e->ndirty && !e->npend)
		return 0;
	rc = vg_alarm_store_begin(e->store);
	for (size_t i = 0; !rc && i < e->ndirty; i++)
		rc = write_state(e, e->dirty[i]);
	for (size_t i = 0; !rc && i < e->npend; i++) {
		struct pending *p = &e->pend[i];
		if (p->kind == P_DELETE_STATE) {
			rc = vg_alarm_store_delete_state(e->store, p->alarm_id,
							 p->resource);
			continue;
		}
		rc = vg_alarm_store_history_add(e->store, p->alarm_id, p->project,
						p->type, p->resource, p->time_ms,
						wall(e), p->detail);
		for (size_t k = 0; !rc && p->body && k < p->nactions; k++) {
			if (!strncmp(p->actions[k], "log://", 6))
				continue;
			rc = vg_alarm_store_outbox_add(e->store, p->notice_id,
						       p->alarm_id, p->project,
						       p->actions[k], p->body, wall(e));
			wake = 1;
		}
	}
	if (!rc)
		rc = vg_alarm_store_commit(e->store);
	if (rc) {
		vg_alarm_store_rollback(e->store);
		e->st.store_errors++;
		vg_log_limited(VG_LOG_ERROR, &e->log_store,
			       "alarms: cannot write alarms.db (%s); %zu "
			       "changes kept in memory and retried",
			       vg_alarm_store_errmsg(e->store), e->npend + e->ndirty);
		return rc;
	}
	for (size_t i = 0; i < e->ndirty; i++)
		e->dirty[i]->dirty = 0;
	e->ndirty = 0;
	for (size_t i = 0; i < e->npend; i++) {
		struct pending *p = &e->pend[i];
		if (p->body) {
			vg_alarm_hub_publish(e->o.hub, p->project, "alarm", p->body);
			for (size_t k = 0; k < p->nactions; k++)
				if (!strncmp(p->actions[k], "log://", 6))
					vg_info("%s", p->log_line);
			e->st.notifications++;
		}
		pending_release(p);
	}
	e->npend = 0;
	if (wake)
		vg_alarm_outbox_wake(e->outbox);
	return 0;
}

/* ---- instances -------------------------------------------------------------------- */

static void inst_free(struct vg_alarm_engine *e, struct inst *in)
{
	if (!in)
		return;
	undirty(e, in);
	vg_alarm_eval_release(&in->ev);
	free(in->resource);
	free(in);
}

static struct inst *inst_new(struct alarm *a, const char *resource)
{
	struct inst *in = calloc(1, sizeof(*in));

	if (!in)
		return NULL;
	in->a = a;
	if (!(in->resource = strdup(resource)) ||
	    vg_alarm_eval_init(&in->ev, &a->params)) {
		free(in->resource);
		free(in);
		return NULL;
	}
	snprintf(in->reason, sizeof(in->reason), "no datapoints yet");
	if (vg_hmap_put(&a->insts, resource, strlen(resource), in, NULL)) {
		vg_alarm_eval_release(&in->ev);
		free(in->resource);
		free(in);
		return NULL;
	}
	return in;
}

static int aggregate(struct alarm *a)
{
	size_t pos = 0;
	const struct vg_hmap_entry *s;
	int agg = VG_ALARM_INSUFFICIENT_DATA;

	while ((s = vg_hmap_next(&a->insts, &pos))) {
		struct inst *in = s->value;
		if (in->ev.state == VG_ALARM_ALARM)
			return VG_ALARM_ALARM;
		if (in->ev.state == VG_ALARM_OK)
			agg = VG_ALARM_OK;
	}
	return agg;
}

static void free_alarm_insts(struct vg_alarm_engine *e, struct alarm *a)
{
	size_t pos = 0;
	const struct vg_hmap_entry *s;

	while ((s = vg_hmap_next(&a->insts, &pos)))
		inst_free(e, s->value);
	vg_hmap_release(&a->insts);
	vg_hmap_init(&a->insts);
}

static void alarm_free(struct vg_alarm_engine *e, struct alarm *a)
{
	if (!a)
		return;
	free_alarm_insts(e, a);
	vg_alarm_rule_free(a->rule);
	vg_alarm_def_release(&a->def);
	free(a);
}

/* ---- notifications ------------------------------------------------------------------ */

static struct res_info *res_get(struct vg_alarm_engine *e, const char *id)
{
	return id && *id ? vg_hmap_gets(&e->resources, id) : NULL;
}

/* Queue the notification (and its history row) for decision d of in. */
static void notify(struct vg_alarm_engine *e, struct inst *in,
		   const struct vg_alarm_decision *d, int64_t period_start_ms)
{
	struct alarm *a = in->a;
	struct res_info *r = res_get(e, in->resource);
	struct vg_alarm_notice_info ni;
	struct pending *p;
	char topic[1024], nid[40];
	json_t *detail;
	const char *ev_type = d->notify == VG_NOTIFY_REPEAT ? "repeat" : "transition";

	if (vg_alarm_uuid(nid, sizeof(nid)))
		snprintf(nid, sizeof(nid), "%.16s-%llu", a->def.id,
			 (unsigned long long)a->seq + 1);
	memset(&ni, 0, sizeof(ni));
	ni.notice_id = nid;
	ni.repeat = d->notify == VG_NOTIFY_REPEAT;
	ni.sequence = ++a->seq;
	ni.def = &a->def;
	ni.resource = *in->resource ? in->resource : NULL;
	ni.resource_type = r ? vg_rtype_name(r->rtype) : NULL;
	ni.host = r ? r->host : NULL;
	ni.previous = d->previous;
	ni.current = d->current;
	ni.reason = d->reason;
	ni.reason_data = d->reason_data;
	ni.time_ms = d->time_ms;
	ni.period_start_ms = period_start_ms;
	ni.evaluated_ms = wall(e);

	detail = json_pack("{s:s,s:s,s:s,s:s,s:O?}", "notification_id", nid,
			   "previous", vg_alarm_state_name(d->previous), "current",
			   vg_alarm_state_name(d->current), "reason", d->reason,
			   "reason_data", d->reason_data);
	if (!(p = history(e, a, ev_type, in->resource, d->time_ms, detail)))
		return;
	snprintf(p->notice_id, sizeof(p->notice_id), "%s", nid);
	p->body = vg_alarm_notice_json(&ni, &p->body_len);
	if (!p->body)
		return; /* history stays; the notification is lost (out of memory) */
	/* PUB is live and best effort: publish at the decision rather than
	 * after the batch's commit (issue 12); SSE, log and the outbox wait
	 * for the commit in flush(). */
	if (vg_alarm_notice_topic(a->def.project, a->def.name, topic, sizeof(topic)) >= 0)
		vg_alarm_pub_send(e->o.pub, topic, p->body, p->body_len, 1);
	size_t na = a->def.nactions[d->current];
	if (na && (p->actions = calloc(na, sizeof(char *)))) {
		for (size_t k = 0; k < na; k++)
			if ((p->actions[p->nactions] = strdup(a->def.actions[d->current][k])))
				p->nactions++;
	}
	if (asprintf(&p->log_line, "alarm %s/%s%s%s: %s -> %s%s: %s", a->def.project,
		     a->def.name, *in->resource ? " on " : "", in->resource,
		     vg_alarm_state_name(d->previous), vg_alarm_state_name(d->current),
		     ni.repeat ? " (repeat)" : "", d->reason) < 0)
		p->log_line = NULL;
	if (d->notify == VG_NOTIFY_TRANSITION)
		e->st.transitions++;
}

static void eval_dependents(struct vg_alarm_engine *e, struct alarm *a,
			    int64_t t, int depth);

/* After an instance of a changed state, update the aggregate and the
 * composites that watch it. */
static void after_change(struct vg_alarm_engine *e, struct alarm *a, int64_t t,
			 int depth)
{
	int agg = aggregate(a);

	if (agg == a->agg)
		return;
	a->agg = agg;
	eval_dependents(e, a, t, depth);
}

/* ---- composites ----------------------------------------------------------------------- */

static struct alarm *by_name(struct vg_alarm_engine *e, const char *project,
			     const char *name)
{
	char k[600];
	size_t kl = key2(k, sizeof(k), project, name);

	return kl ? vg_hmap_get(&e->names, k, kl) : NULL;
}

static void eval_composite(struct vg_alarm_engine *e, struct alarm *c, int64_t t,
			   int depth)
{
	size_t n = vg_alarm_rule_nrefs(c->rule);
	int states[VG_RULE_MAX_TERMS], all_insufficient = 1, next;
	struct vg_alarm_decision d;
	struct inst *in;
	json_t *refs;
	char list[300] = "";

	if (!c->def.enabled || !c->rule || depth > COMPOSITE_DEPTH)
		return;
	refs = json_object();
	for (size_t i = 0; i < n; i++) {
		const char *name = vg_alarm_rule_ref(c->rule, i);
		struct alarm *r = by_name(e, c->def.project, name);
		size_t l = strlen(list);
		states[i] = r ? r->agg : VG_ALARM_INSUFFICIENT_DATA;
		if (states[i] != VG_ALARM_INSUFFICIENT_DATA)
			all_insufficient = 0;
		json_object_set_new(refs, name, json_string(vg_alarm_state_name(states[i])));
		if (l < sizeof(list) - 40)
			snprintf(list + l, sizeof(list) - l, "%s%s is %s", i ? ", " : "",
				 name, vg_alarm_state_name(states[i]));
	}
	int truth = vg_alarm_rule_eval(c->rule, states);
	next = all_insufficient ? VG_ALARM_INSUFFICIENT_DATA
				: truth ? VG_ALARM_ALARM : VG_ALARM_OK;
	in = vg_hmap_get(&c->insts, "", 0);
	if (!in && !(in = inst_new(c, ""))) {
		json_decref(refs);
		return;
	}
	memset(&d, 0, sizeof(d));
	d.previous = in->ev.state;
	d.current = next;
	d.raw = next;
	d.time_ms = t;
	if (all_insufficient)
		snprintf(d.reason, sizeof(d.reason),
			 "every alarm of the rule has insufficient data (%s)", list);
	else
		snprintf(d.reason, sizeof(d.reason), "rule %.120s is %s: %s",
			 c->def.rule, truth ? "true" : "false", list);
	d.reason_data = json_pack("{s:s,s:s,s:b,s:o}", "type", "composite", "rule",
				  c->def.rule, "value", truth, "states", refs);
	snprintf(in->reason, sizeof(in->reason), "%s", d.reason);
	in->updated_ms = wall(e);
	e->st.evaluations++;
	if (next != in->ev.state) {
		d.notify = VG_NOTIFY_TRANSITION;
		in->ev.state = next;
		in->ev.since_ms = t;
		mark_dirty(e, in);
		notify(e, in, &d, 0);
		json_decref(d.reason_data);
		after_change(e, c, t, depth + 1);
		return;
	}
	json_decref(d.reason_data);
}

static void eval_dependents(struct vg_alarm_engine *e, struct alarm *a,
			    int64_t t, int depth)
{
	char k[600];
	size_t kl = key2(k, sizeof(k), a->def.project, a->def.name);
	struct list *l = kl ? vg_hmap_get(&e->deps, k, kl) : NULL;

	for (size_t i = 0; l && i < l->n; i++)
		eval_composite(e, l->a[i], t, depth + 1);
}

/* ---- indexes ------------------------------------------------------------------------------- */

static int list_put(struct vg_hmap *m, const char *k, size_t kl, struct alarm *a)
{
	struct list *l = vg_hmap_get(m, k, kl);

	if (!l) {
		if (!(l = calloc(1, sizeof(*l))))
			return -ENOMEM;
		if (vg_hmap_put(m, k, kl, l, NULL)) {
			free(l);
			return -ENOMEM;
		}
	}
	return list_add(l, a);
}

/* Add one alarm to the indexes: an enabled threshold alarm to `exact`
 * (one resource) or `watchers` (by metric) and to the metric counts; a
 * composite to `deps` under each alarm it names. */
static void index_add(struct vg_alarm_engine *e, struct alarm *a)
{
	char k[1024];
	size_t kl;

	if (a->def.kind == VG_ALARM_THRESHOLD) {
		void *n;
		if (!a->def.enabled)
			return;
		if (a->def.resource) {
			if ((kl = key2(k, sizeof(k), a->def.resource, a->def.metric)))
				list_put(&e->exact, k, kl, a);
		} else
			list_put(&e->watchers, a->def.metric, strlen(a->def.metric), a);
		n = vg_hmap_gets(&e->metrics, a->def.metric);
		vg_hmap_put(&e->metrics, a->def.metric, strlen(a->def.metric),
			    (void *)((uintptr_t)n + 1), NULL);
		return;
	}
	for (size_t i = 0; i < vg_alarm_rule_nrefs(a->rule); i++)
		if ((kl = key2(k, sizeof(k), a->def.project, vg_alarm_rule_ref(a->rule, i))))
			list_put(&e->deps, k, kl, a);
}

/* Rebuild every index after definitions changed (O(alarms)); creations
 * are added incrementally instead (index_add). */
static void reindex(struct vg_alarm_engine *e)
{
	size_t pos = 0;
	const struct vg_hmap_entry *s;

	if (e->indexed_gen == e->gen)
		return;
	free_lists(&e->watchers);
	free_lists(&e->exact);
	free_lists(&e->deps);
	vg_hmap_release(&e->metrics);
	vg_hmap_init(&e->metrics);
	while ((s = vg_hmap_next(&e->alarms, &pos)))
		index_add(e, s->value);
	e->indexed_gen = e->gen;
}

/* ---- resources and series --------------------------------------------------------------------- */

static int selector_match(const struct alarm *a, const struct res_info *r)
{
	const struct vg_alarm_def *d = &a->def;

	if (d->resource)
		return !strcmp(d->resource, r->id) && !strcmp(d->project, r->project);
	if (d->sel.rtype && d->sel.rtype != r->rtype)
		return 0;
	if (d->sel.project) {
		if (strcmp(d->sel.project, "*") && strcmp(d->sel.project, r->project))
			return 0;
	} else if (strcmp(d->project, r->project))
		return 0;
	if (d->sel.host && !str_eq(d->sel.host, r->host))
		return 0;
	if (d->sel.flavor && !str_eq(d->sel.flavor, r->flavor))
		return 0;
	for (size_t i = 0; i < d->sel.nmeta; i++) {
		size_t k;
		for (k = 0; k < r->nattrs; k++)
			if (!strcmp(r->attrs[k].key, d->sel.meta[i].key) &&
			    !strcmp(r->attrs[k].value, d->sel.meta[i].value))
				break;
		if (k == r->nattrs)
			return 0;
	}
	return 1;
}

static void series_free(struct series *s)
{
	for (size_t i = 0; i < s->nwin; i++)
		vg_alarm_window_release(&s->win[i].w);
	free(s->win);
	free(s->bind);
	free(s->metric);
	free(s->key);
	free(s);
}

static int window_for(struct series *s, int64_t period_ms, int keep)
{
	for (size_t i = 0; i < s->nwin; i++)
		if (s->win[i].w.period_ms == period_ms) {
			if (keep)
				s->win[i].w.keep_values = 1;
			return (int)i;
		}
	struct window_ent *n = realloc(s->win, (s->nwin + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	s->win = n;
	vg_alarm_window_init(&s->win[s->nwin].w, period_ms, keep);
	s->win[s->nwin].max_gap = 0;
	return (int)s->nwin++;
}

static struct inst *inst_for(struct vg_alarm_engine *e, struct alarm *a,
			     const struct res_info *r)
{
	struct inst *in = vg_hmap_gets(&a->insts, r->id);

	if (in)
		return in;
	if (!(in = inst_new(a, r->id)))
		return NULL;
	in->updated_ms = wall(e);
	if (!a->def.resource)
		history(e, a, "resource_joined", r->id, wall(e),
			json_pack("{s:s,s:s}", "resource", r->id, "type",
				  vg_rtype_name(r->rtype) ? vg_rtype_name(r->rtype) : "?"));
	mark_dirty(e, in);
	return in;
}

/* A resource leaves a selector alarm: history, state row deleted,
 * instance freed, aggregate updated. */
static void leave(struct vg_alarm_engine *e, struct alarm *a, struct inst *in,
		  int64_t t)
{
	struct pending *p;

	vg_hmap_del(&a->insts, in->resource, strlen(in->resource));
	history(e, a, "resource_left", in->resource, t,
		json_pack("{s:s,s:s}", "resource", in->resource, "state",
			  vg_alarm_state_name(in->ev.state)));
	if ((p = pending_new(e))) {
		p->kind = P_DELETE_STATE;
		p->alarm_id = xstrdup(a->def.id);
		p->resource = xstrdup(in->resource);
	}
	inst_free(e, in);
	after_change(e, a, t, 0);
}

static void rebind(struct vg_alarm_engine *e, struct series *s)
{
	struct list *l;
	int *used = NULL;

	reindex(e);
	s->nbind = 0;
	for (size_t i = 0; i < s->nwin; i++)
		s->win[i].max_gap = 0;
	struct list *lx = vg_hmap_get(&e->exact, s->key, s->klen);
	l = vg_hmap_gets(&e->watchers, s->metric);
	size_t nsel = l ? l->n : 0, nall = nsel + (lx ? lx->n : 0);
	for (size_t i = 0; i < nall; i++) {
		struct alarm *a = i < nsel ? l->a[i] : lx->a[i - nsel];
		struct inst *in;
		int w;
		if (!selector_match(a, s->res)) {
			/* it matched before (flavor, host or metadata changed) */
			if (!a->def.resource &&
			    (in = vg_hmap_gets(&a->insts, s->res->id)))
				leave(e, a, in, wall(e));
			continue;
		}
		if (!(in = inst_for(e, a, s->res)))
			continue;
		w = window_for(s, (int64_t)a->def.period_s * 1000,
			       a->def.statistic == VG_STAT_PERCENTILE);
		if (w < 0)
			continue;
		struct binding *nb = realloc(s->bind, (s->nbind + 1) * sizeof(*nb));
		if (!nb)
			continue;
		s->bind = nb;
		s->bind[s->nbind++] = (struct binding){in, (uint32_t)w};
		if (a->params.n + VG_ALARM_RANGE_EXTRA > s->win[w].max_gap)
			s->win[w].max_gap = a->params.n + VG_ALARM_RANGE_EXTRA;
	}
	/* drop windows nobody uses any more (renumbering the bindings) */
	if (s->nwin && (used = calloc(s->nwin, sizeof(int)))) {
		size_t k = 0;
		for (size_t i = 0; i < s->nbind; i++)
			used[s->bind[i].win] = 1;
		for (size_t i = 0; i < s->nwin; i++) {
			if (!used[i]) {
				vg_alarm_window_release(&s->win[i].w);
				used[i] = -1;
				continue;
			}
			s->win[k] = s->win[i];
			used[i] = (int)k++;
		}
		for (size_t i = 0; i < s->nbind; i++)
			s->bind[i].win = (uint32_t)used[s->bind[i].win];
		s->nwin = k;
		free(used);
	}
	s->gen = e->gen;
}

static void res_free(struct res_info *r)
{
	if (!r)
		return;
	free(r->id);
	free(r->project);
	free(r->host);
	free(r->flavor);
	for (size_t i = 0; i < r->nattrs; i++) {
		free(r->attrs[i].key);
		free(r->attrs[i].value);
	}
	free(r->attrs);
	free(r->series);
	free(r);
}

static int set_if_changed(char **dst, const char *v)
{
	if (str_eq(*dst, v))
		return 0;
	char *n = xstrdup(v);
	if (v && !n)
		return -ENOMEM;
	free(*dst);
	*dst = n;
	return 1;
}

/* Update the resource's identity from the batch; returns 1 if anything a
 * selector looks at changed. */
static int res_update(struct vg_alarm_engine *e, struct res_info *ri,
		      const struct vg_batch *b, const struct vg_resource *r)
{
	const struct vg_attr *at = vg_resource_attrs(b, r);
	const char *project = r->project;
	int changed = 0;

	if (!project && r->parent) {
		struct res_info *p = res_get(e, r->parent);
		project = p ? p->project : NULL;
	}
	if (!project)
		project = "default";
	changed |= set_if_changed(&ri->project, project) > 0;
	changed |= set_if_changed(&ri->host, b->host) > 0;
	changed |= set_if_changed(&ri->flavor, r->flavor) > 0;
	if (ri->rtype != r->type) {
		ri->rtype = r->type;
		changed = 1;
	}
	int same = ri->nattrs == r->nattrs;
	for (uint32_t i = 0; same && i < r->nattrs; i++)
		same = !strcmp(ri->attrs[i].key, at[i].key) &&
		       !strcmp(ri->attrs[i].value, at[i].value);
	if (!same) {
		struct kv *n = calloc(r->nattrs + 1, sizeof(*n));
		if (n) {
			size_t k = 0;
			for (uint32_t i = 0; i < r->nattrs; i++) {
				n[k].key = strdup(at[i].key);
				n[k].value = strdup(at[i].value);
				if (n[k].key && n[k].value)
					k++;
				else {
					free(n[k].key);
					free(n[k].value);
				}
			}
			for (size_t i = 0; i < ri->nattrs; i++) {
				free(ri->attrs[i].key);
				free(ri->attrs[i].value);
			}
			free(ri->attrs);
			ri->attrs = n;
			ri->nattrs = k;
			changed = 1;
		}
	}
	return changed;
}

static struct res_info *res_for(struct vg_alarm_engine *e, const struct vg_batch *b,
				const struct vg_resource *r)
{
	struct res_info *ri = vg_hmap_gets(&e->resources, r->id);

	if (!ri) {
		if (!(ri = calloc(1, sizeof(*ri))) || !(ri->id = strdup(r->id)) ||
		    vg_hmap_put(&e->resources, r->id, strlen(r->id), ri, NULL)) {
			res_free(ri);
			return NULL;
		}
	}
	if (res_update(e, ri, b, r) > 0)
		for (size_t i = 0; i < ri->nseries; i++)
			ri->series[i]->gen = 0; /* re-match selectors */
	return ri;
}

static struct series *series_for(struct vg_alarm_engine *e, struct res_info *ri,
				 const char *metric, int kind)
{
	char k[1024];
	size_t kl = key2(k, sizeof(k), ri->id, metric);
	struct series *s;

	if (!kl)
		return NULL;
	if ((s = vg_hmap_get(&e->series, k, kl)))
		return s;
	if (!(s = calloc(1, sizeof(*s))))
		return NULL;
	s->res = ri;
	s->kind = kind;
	s->last_t = VG_WINDOW_NONE;
	s->metric = strdup(metric);
	s->key = malloc(kl);
	if (!s->metric || !s->key) {
		series_free(s);
		return NULL;
	}
	memcpy(s->key, k, kl);
	s->klen = kl;
	if (ri->nseries == ri->capseries) {
		size_t cap = ri->capseries ? 2 * ri->capseries : 4;
		struct series **n = realloc(ri->series, cap * sizeof(*n));
		if (!n) {
			series_free(s);
			return NULL;
		}
		ri->series = n;
		ri->capseries = cap;
	}
	if (vg_hmap_put(&e->series, k, kl, s, NULL)) {
		series_free(s);
		return NULL;
	}
	ri->series[ri->nseries++] = s;
	return s;
}

/* ---- evaluation of a closed period --------------------------------------------------------------- */

struct period_ctx {
	struct vg_alarm_engine *e;
	struct series *s;
	uint32_t win;
};

static void on_period(void *ctx, const struct vg_alarm_datapoint *dp)
{
	struct period_ctx *pc = ctx;
	struct vg_alarm_engine *e = pc->e;
	struct series *s = pc->s;

	e->st.datapoints++;
	for (size_t i = 0; i < s->nbind; i++) {
		struct inst *in = s->bind[i].in;
		struct alarm *a = in->a;
		struct vg_alarm_decision d;
		double v;

		if (s->bind[i].win != pc->win || !a->def.enabled)
			continue;
		v = vg_alarm_statistic(dp, a->def.statistic, a->def.percentile);
		if (vg_alarm_eval_push(&in->ev, dp->start_ms, v))
			continue; /* evaluated before (a replay after restart) */
		vg_alarm_eval_step(&a->params, &in->ev, dp->end_ms, &d);
		e->st.evaluations++;
		snprintf(in->reason, sizeof(in->reason), "%s", d.reason);
		in->updated_ms = wall(e);
		mark_dirty(e, in);
		if (d.notify)
			notify(e, in, &d, dp->start_ms);
		json_decref(d.reason_data);
		if (d.notify == VG_NOTIFY_TRANSITION)
			after_change(e, a, dp->end_ms, 0);
	}
}

static void feed(struct vg_alarm_engine *e, struct series *s, int64_t t,
		 double value)
{
	double v = value;

	if (s->last_t != VG_WINDOW_NONE && t <= s->last_t) {
		e->st.samples_duplicate++;
		return;
	}
	if (s->last_t != VG_WINDOW_NONE)
		s->interval_ms = t - s->last_t;
	if (s->kind == VG_KIND_COUNTER) {
		int64_t pt = s->last_t;
		double pv = s->last_raw;
		int rc = vg_alarm_rate(&pt, &pv, t, value, &v);
		s->last_t = t;
		s->last_raw = value;
		if (rc)
			return;
	} else {
		s->last_t = t;
		s->last_raw = value;
	}
	for (size_t w = 0; w < s->nwin; w++) {
		struct period_ctx pc = {e, s, (uint32_t)w};
		if (vg_alarm_window_add(&s->win[w].w, t, v, s->win[w].max_gap,
					on_period, &pc))
			e->st.samples_late++;
		if (s->interval_ms > 0)
			vg_alarm_window_close_if_complete(&s->win[w].w,
							  t + s->interval_ms,
							  on_period, &pc);
	}
}

/* A selector resource ended: its selector instances leave. */
static void resource_ended(struct vg_alarm_engine *e, struct res_info *ri,
			   int64_t t)
{
	for (size_t i = 0; i < ri->nseries; i++) {
		struct series *s = ri->series[i];
		if (s->gen != e->gen)
			rebind(e, s);
		for (size_t k = 0; k < s->nbind; k++) {
			struct inst *in = s->bind[k].in;
			struct alarm *a = in->a;
			if (a->def.resource)
				continue; /* a named resource stays (missing data) */
			if (vg_hmap_gets(&a->insts, ri->id) != in)
				continue; /* already left via another metric */
			leave(e, a, in, t);
		}
		vg_hmap_del(&e->series, s->key, s->klen);
		series_free(s);
	}
	ri->nseries = 0;
	vg_hmap_del(&e->resources, ri->id, strlen(ri->id));
	res_free(ri);
	e->gen++; /* other series may hold bindings to freed instances */
}

int vg_alarm_engine_batch(struct vg_alarm_engine *e, const struct vg_batch *b)
{
	int64_t t0 = vg_monotonic_ns(), now;

	pthread_mutex_lock(&e->lock);
	now = wall(e);
	reindex(e);
	e->st.batches++;
	/* the host's data clock */
	if (b->host) {
		struct host_clock *hc = vg_hmap_gets(&e->hosts, b->host);
		if (!hc && (hc = calloc(1, sizeof(*hc))) &&
		    vg_hmap_put(&e->hosts, b->host, strlen(b->host), hc, NULL)) {
			free(hc);
			hc = NULL;
		}
		if (hc) {
			int64_t newest = b->time_ms;
			for (size_t i = 0; i < b->nres; i++)
				if (b->res[i].time_ms > newest)
					newest = b->res[i].time_ms;
			if (newest >= hc->data_ms) {
				hc->data_ms = newest;
				hc->wall_ms = now;
			}
		}
	}
	for (size_t i = 0; i < b->nres; i++) {
		const struct vg_resource *r = &b->res[i];
		const struct vg_sample *sm = vg_resource_samples(b, r);
		struct res_info *ri = NULL;

		if (r->state == VG_RSTATE_ENDED) {
			if ((ri = vg_hmap_gets(&e->resources, r->id)))
				resource_ended(e, ri, r->time_ms);
			continue;
		}
		for (uint32_t k = 0; k < r->nsamples; k++) {
			struct series *s;
			if (!vg_hmap_gets(&e->metrics, sm[k].metric))
				continue;
			if (!ri && !(ri = res_for(e, b, r)))
				break;
			if (!(s = series_for(e, ri, sm[k].metric, sm[k].kind)))
				continue;
			if (s->gen != e->gen)
				rebind(e, s);
			if (!s->nbind)
				continue;
			e->st.samples++;
			feed(e, s, r->time_ms, sm[k].value);
		}
	}
	flush(e);
	e->st.batch_ns_total += (uint64_t)(vg_monotonic_ns() - t0);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

/* ---- the timer ------------------------------------------------------------------------------------- */

static void expire_all(struct vg_alarm_engine *e, int64_t now)
{
	size_t pos = 0;
	const struct vg_hmap_entry *sl;
	struct series **gc = NULL;
	size_t ngc = 0, capgc = 0;

	while ((sl = vg_hmap_next(&e->series, &pos))) {
		struct series *s = sl->value;
		struct host_clock *hc;
		int64_t clock, grace;

		if (s->gen != e->gen)
			rebind(e, s);
		if (!s->nbind) {
			if (ngc == capgc) {
				size_t cap = capgc ? capgc * 2 : 16;
				struct series **n = realloc(gc, cap * sizeof(*n));
				if (!n)
					continue;
				gc = n;
				capgc = cap;
			}
			gc[ngc++] = s;
			continue;
		}
		hc = s->res->host ? vg_hmap_gets(&e->hosts, s->res->host) : NULL;
		if (!hc)
			continue;
		clock = hc->data_ms + (now > hc->wall_ms ? now - hc->wall_ms : 0);
		grace = s->interval_ms > 1000 ? s->interval_ms : 1000;
		for (size_t w = 0; w < s->nwin; w++) {
			struct period_ctx pc = {e, s, (uint32_t)w};
			vg_alarm_window_expire(&s->win[w].w, clock, grace,
					       s->win[w].max_gap, on_period, &pc);
		}
	}
	/* forget series (and then resources) nobody watches */
	for (size_t i = 0; i < ngc; i++) {
		struct series *s = gc[i];
		struct res_info *ri = s->res;
		for (size_t k = 0; k < ri->nseries; k++)
			if (ri->series[k] == s) {
				ri->series[k] = ri->series[--ri->nseries];
				break;
			}
		vg_hmap_del(&e->series, s->key, s->klen);
		series_free(s);
		if (!ri->nseries) {
			vg_hmap_del(&e->resources, ri->id, strlen(ri->id));
			res_free(ri);
		}
	}
	free(gc);
}

void vg_alarm_engine_tick(struct vg_alarm_engine *e, int64_t now_ms)
{
	(void)now_ms;
	pthread_mutex_lock(&e->lock);
	int64_t now = wall(e);
	if (now - e->last_expire_ms >= EXPIRE_EVERY_MS) {
		e->last_expire_ms = now;
		reindex(e);
		expire_all(e, now);
	}
	flush(e);
	if (now - e->last_prune_ms >= PRUNE_EVERY_MS) {
		uint64_t n = 0;
		e->last_prune_ms = now;
		if (!vg_alarm_store_prune(e->store, now - e->o.history_retention_ms, &n) && n)
			vg_info("alarms: pruned %llu history and outbox rows older "
				"than %lld days", (unsigned long long)n,
				(long long)(e->o.history_retention_ms / 86400000));
	}
	pthread_mutex_unlock(&e->lock);
	vg_alarm_hub_tick(e->o.hub, now);
}

static int consumer_batch(void *ctx, const struct vg_batch *b)
{
	return vg_alarm_engine_batch(ctx, b);
}

static void consumer_tick(void *ctx, int64_t now)
{
	vg_alarm_engine_tick(ctx, now);
}

struct vg_consumer vg_alarm_engine_consumer(struct vg_alarm_engine *e)
{
	struct vg_consumer c = {"alarms", e, consumer_batch, consumer_tick};

	return c;
}

struct vg_alarm_outbox *vg_alarm_engine_outbox(struct vg_alarm_engine *e)
{
	return e->outbox;
}

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
	rc = vg_alarm_def_from_json(j, &pol, &a->def, &errors);
	json_decref(j);
	if (rc) {
		char *t = errors ? json_dumps(errors, JSON_COMPACT) : NULL;
		vg_warn("alarms: alarm %s in alarms.db no longer validates (%s); "
			"skipped", id, t ? t : "out of memory");
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
		alarm_free(e, a);
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
	    !(in = inst_new(a, row->resource)))
		return 0;
	in->ev.state = row->state;
	in->ev.since_ms = row->since_ms;
	in->ev.clear_since_ms = row->clear_since_ms;
	in->ev.alarm_periods = row->alarm_periods;
	in->updated_ms = row->updated_ms;
	snprintf(in->reason, sizeof(in->reason), "%s", row->reason ? row->reason : "");
	if (row->ring)
		vg_alarm_eval_ring_unpack(&in->ev, row->ring, row->ring_len);
	return 0;
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
	e->gen = 1;
	rc = vg_alarm_store_open(o->data_dir, &e->store, err, errlen);
	if (!rc && (rc = vg_alarm_store_load_defs(e->store, load_def, e)))
		snprintf(err, errlen, "alarms.db: cannot load definitions: %s",
			 vg_alarm_store_errmsg(e->store));
	if (!rc && (rc = vg_alarm_store_load_states(e->store, load_state, e)))
		snprintf(err, errlen, "alarms.db: cannot load states: %s",
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
		a->agg = aggregate(a);
	}
	reindex(e);
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
		flush(e);
	pthread_mutex_unlock(&e->lock);
	vg_alarm_outbox_close(e->outbox);
	pos = 0;
	while ((s = vg_hmap_next(&e->series, &pos)))
		series_free(s->value);
	pos = 0;
	while ((s = vg_hmap_next(&e->resources, &pos)))
		res_free(s->value);
	pos = 0;
	while ((s = vg_hmap_next(&e->hosts, &pos)))
		free(s->value);
	pos = 0;
	while ((s = vg_hmap_next(&e->alarms, &pos)))
		alarm_free(e, s->value);
	free_lists(&e->watchers);
	free_lists(&e->exact);
	free_lists(&e->deps);
	vg_hmap_release(&e->metrics);
	vg_hmap_release(&e->alarms);
	vg_hmap_release(&e->names);
	vg_hmap_release(&e->watchers);
	vg_hmap_release(&e->deps);
	vg_hmap_release(&e->series);
	vg_hmap_release(&e->resources);
	vg_hmap_release(&e->hosts);
	for (size_t i = 0; i < e->npend; i++)
		pending_release(&e->pend[i]);
	free(e->pend);
	free(e->dirty);
	vg_alarm_store_close(e->store);
	free(e->am_url);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

/* ---- API ---------------------------------------------------------------------------------------------- */

static struct alarm *find(struct vg_alarm_engine *e, const char *ref,
			  const char *scope)
{
	struct alarm *a = vg_hmap_gets(&e->alarms, ref);
	size_t pos = 0;
	const struct vg_hmap_entry *s;

	if (a)
		return !scope || !strcmp(scope, a->def.project) ? a : NULL;
	if (scope)
		return by_name(e, scope, ref);
	/* administrator: a name unique across projects */
	while ((s = vg_hmap_next(&e->alarms, &pos))) {
		struct alarm *x = s->value;
		if (!strcmp(x->def.name, ref)) {
			if (a)
				return NULL; /* ambiguous: use the id */
			a = x;
		}
	}
	return a;
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
		r = by_name(e, project, n);
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
		} else if (!by_name(e, a->def.project, n)) {
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
	reindex(e);
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
			reason = in->reason;
		}
		if (with_instances && n++ < MAX_INSTANCES_SHOWN)
			json_array_append_new(insts, json_pack(
				"{s:o,s:s,s:o,s:s}", "resource",
				*in->resource ? json_string(in->resource) : json_null(),
				"state", vg_alarm_state_name(in->ev.state), "since",
				in->ev.since_ms ? json_string(vg_time_format(in->ev.since_ms, ts,
									     sizeof(ts)))
						: json_null(),
				"reason", in->reason));
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

static struct vg_alarm_policy policy(struct vg_alarm_engine *e, const char *scope)
{
	struct vg_alarm_policy p = {
		.exec_names = e->exec_names,
		.nexec = e->o.nexec,
		.alertmanager = e->am_url != NULL,
		.agent_interval_s = e->o.agent_interval_s,
		.scope_project = scope,
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
		alarm_free(e, a);
		return rc;
	}
	if ((rc = compile(a, err, sizeof(err)))) {
		add_error(errors, "rule", "%s", err);
		alarm_free(e, a);
		return -EINVAL;
	}
	pthread_mutex_lock(&e->lock);
	flush(e);
	a->def.created_ms = a->def.updated_ms = wall(e);
	if (vg_hmap_count(&e->alarms) >= VG_ALARM_MAX_ALARMS) {
		rc = -ENOSPC;
		add_error(errors, "", "this collector already has %d alarms",
			  VG_ALARM_MAX_ALARMS);
	} else if (by_name(e, a->def.project, a->def.name)) {
		rc = -EEXIST;
		add_error(errors, "name", "an alarm named '%s' already exists in "
			  "project '%s'", a->def.name, a->def.project);
	} else if (a->rule)
		rc = check_refs(e, a, errors);
	if (!rc)
		rc = persist_def(e, a, "creation", NULL);
	int was_indexed = e->indexed_gen == e->gen;
	if (!rc)
		rc = insert_alarm(e, a);
	if (rc) {
		pthread_mutex_unlock(&e->lock);
		alarm_free(e, a);
		return rc;
	}
	if (was_indexed) { /* O(1) instead of a full rebuild */
		index_add(e, a);
		e->indexed_gen = e->gen;
	} else
		reindex(e);
	if (a->rule) {
		eval_composite(e, a, wall(e), 0);
		flush(e);
	}
	*out = state_json(a, 1);
	pthread_mutex_unlock(&e->lock);
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
	flush(e);
	if (!(a = find(e, ref, scope))) {
		pthread_mutex_unlock(&e->lock);
		return -ENOENT;
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
		struct alarm *other = by_name(e, nd.project, nd.name);
		referrers(e, a, refs, sizeof(refs));
		if (other && other != a) {
			add_error(errors, "name", "an alarm named '%s' already exists "
				  "in project '%s'", nd.name, nd.project);
			rc = -EEXIST;
		} else if (*refs) {
			add_error(errors, "name", "renaming would break composite "
				  "alarm(s) %s", refs);
			rc = -EBUSY;
		}
	}
	if (!rc && nd.kind == VG_ALARM_COMPOSITE &&
	    vg_alarm_rule_parse(nd.rule, &nrule, err, sizeof(err))) {
		add_error(errors, "rule", "%s", err);
		rc = -EINVAL;
	}
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
	     nd.sel.nmeta != a->def.sel.nmeta))
		reset_insts = 1;
	else if (vg_alarm_def_eval_changed(&nd, &a->def))
		reset_rings = 1;
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
		struct pending *p;
		while ((s = vg_hmap_next(&a->insts, &pos))) {
			struct inst *in = s->value;
			if ((p = pending_new(e))) {
				p->kind = P_DELETE_STATE;
				p->alarm_id = xstrdup(a->def.id);
				p->resource = xstrdup(in->resource);
			}
		}
		free_alarm_insts(e, a);
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
			mark_dirty(e, in);
		}
	}
	reindex(e);
	if (a->rule)
		eval_composite(e, a, wall(e), 0);
	after_change(e, a, wall(e), 0);
	flush(e);
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
	flush(e);
	if (!(a = find(e, ref, scope))) {
		pthread_mutex_unlock(&e->lock);
		return -ENOENT;
	}
	referrers(e, a, refs, sizeof(refs));
	if (*refs) {
		add_error(errors, "", "alarm '%s' is used by composite alarm(s) %s; "
			  "change or delete those first", a->def.name, refs);
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
	alarm_free(e, a);
	reindex(e);
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
	flush(e);
	if (!(a = find(e, ref, scope))) {
		pthread_mutex_unlock(&e->lock);
		return -ENOENT;
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
			while (enabled && (s = vg_hmap_next(&a->insts, &pos))) {
				vg_alarm_eval_reset(&((struct inst *)s->value)->ev);
				mark_dirty(e, s->value);
			}
			e->gen++;
			reindex(e);
			if (enabled && a->rule)
				eval_composite(e, a, wall(e), 0);
			flush(e);
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

	*out = NULL;
	pthread_mutex_lock(&e->lock);
	a = find(e, ref, scope);
	if (a)
		*out = state_json(a, 1);
	pthread_mutex_unlock(&e->lock);
	if (!a)
		return -ENOENT;
	return *out ? 0 : -ENOMEM;
}

static int cmp_alarm(const void *x, const void *y)
{
	const struct alarm *a = *(struct alarm *const *)x, *b = *(struct alarm *const *)y;
	int c = strcmp(a->def.project, b->def.project);

	return c ? c : strcmp(a->def.name, b->def.name);
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
		if (f->after) {
			/* cursor "project/name" (or "name" when scoped) */
			char cur[600];
			snprintf(cur, sizeof(cur), "%s/%s", v[i]->def.project, v[i]->def.name);
			if (strcmp(scope ? v[i]->def.name : cur, f->after) <= 0)
				continue;
		}
		if (k == limit) {
			char cur[600];
			snprintf(cur, sizeof(cur), "%s/%s", v[i - 1]->def.project,
				 v[i - 1]->def.name);
			json_object_set_new(o, "next", json_string(scope ? v[i - 1]->def.name
									 : cur));
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

int vg_alarm_engine_history(struct vg_alarm_engine *e, const char *ref,
			    const char *scope, struct vg_alarm_history_query *q,
			    json_t **out, int64_t *next_seq)
{
	struct alarm *a;
	char id[40];
	int rc;

	*out = NULL;
	pthread_mutex_lock(&e->lock);
	flush(e);
	a = find(e, ref, scope);
	if (!a) {
		pthread_mutex_unlock(&e->lock);
		return -ENOENT;
	}
	snprintf(id, sizeof(id), "%s", a->def.id);
	q->alarm_id = id;
	rc = vg_alarm_store_history(e->store, q, out, next_seq);
	q->alarm_id = NULL;
	pthread_mutex_unlock(&e->lock);
	return rc;
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
	out->instances = 0;
	while ((s = vg_hmap_next(&e->alarms, &pos)))
		out->instances += vg_hmap_count(&((struct alarm *)s->value)->insts);
	pthread_mutex_unlock(&e->lock);
}
