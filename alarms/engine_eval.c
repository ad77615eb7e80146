/*
 * engine_eval.c — the alarm engine's evaluation: samples of a batch ->
 * series -> closed periods -> instances -> decisions, composites over
 * alarms, and the indexes that find who watches a sample.
 *
 * Design. A definition change bumps `gen`; a series whose gen is older
 * rebinds (re-matches selectors) before it is used, so definitions change
 * in O(1) and bindings follow lazily. Samples are de-duplicated per series
 * by time (re-sent batches, replays after a restart feed nothing twice);
 * an instance also refuses a period at or before its newest datapoint
 * (persisted), so a restart never evaluates a period twice. A period
 * closes at the sample that completes it (the next sample, predicted one
 * interval later, falls past its end), at the first sample of a later
 * period, or on the timer once the host's data clock is a grace past its
 * end (expire_all).
 *
 * An instance (one alarm on one resource, or a composite's one instance
 * "") moves between the three states; vg_alarm_eval_step (eval.c) decides
 * each threshold step from its datapoints, this file does the rest:
 *
 *   event                          from     to        written / told
 *   resource matches a selector    -        insuff.   state row, history
 *                                                     "resource_joined"
 *   period closed, step says X     S        X (!= S)  state row, history
 *                                                     "transition", PUB
 *                                                     now, outbox/SSE/log
 *                                                     after the commit
 *   period closed, same state      S        S         state row (ring),
 *                                                     unless a quiet step
 *                                                     (engine_queue.c);
 *                                                     "repeat" every K
 *                                                     periods in alarm
 *   composite rule re-evaluated    S        X (!= S)  as a transition
 *   resource ended / stops        any      -         state row deleted,
 *   matching                                          history "resource_left"
 *
 * and after any instance transition the alarm's aggregate (any alarm ->
 * alarm, any ok -> ok, else insufficient_data) is recomputed and the
 * composites naming it re-evaluated (depth bounded by COMPOSITE_DEPTH).
 *
 * A group alarm has one instance "" fed by all its members' periods
 * (combined per period: group_add / group_close below); members join and
 * leave with history rows but no instance of their own. An event alarm
 * has one instance per resource that had a matching lifecycle event
 * (events_batch), back to ok on the timer (events_tick). A notification
 * into alarm within an instance's cooldown is recorded ("cooldown"), not
 * sent.
 *
 * Nothing here writes: changes go to the persistence queue
 * (engine_queue.c), flushed at the end of each batch and tick.
 *
 * Invariants: a binding points at a live instance when its series' gen
 * equals the engine's gen; called with the engine's lock held.
 *
 * Why one file (~1,500 lines): it is one path, run under the engine's lock,
 * whose stages call each other both ways: a closed period feeds a group
 * alarm (group_add) and the timer closes groups (group_close); threshold,
 * group, composite and event alarms all end in the same notify();
 * rebind() serves the batch path and the timer.
 * The persistence queue and definition changes are already their own files
 * (engine_queue.c, engine_defs.c). The next cut, if one is needed, is the
 * group alarms (~490 lines) and the event alarms (~265 lines), at the price
 * of making notify, rebind and group_close engine-wide functions.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alarms/engine_eval.h"
#include "alarms/engine_gstate.h"
#include "alarms/silence_end.h"
#include "alarms/engine_queue.h"
#include "alarms/notice.h"
#include "alarms/rule.h"
#include "vigie/alarm_outbox.h"
#include "vigie/alarm_silence.h"
#include "vigie/log.h"
#include "vigie/name.h"
#include "vigie/wire.h"

#define EXPIRE_EVERY_MS 500
#define PRUNE_EVERY_MS 3600000
/* A sample completes its period when the next one, expected one interval
 * later, falls past the period's end. The interval is measured between two
 * jittered samples: a sample a little earlier in its minute than the one
 * before (…:00.100 after …:59.900) predicts the next one before the end
 * although it comes in the next minute, so the period stayed open a whole
 * interval, in memory only: a kill lost its decision and the transition
 * came a period late. The prediction is pushed a quarter interval later;
 * a period closes early only if a sample comes more than a quarter
 * interval ahead of its rhythm (it is then counted late and left out). */
#define JITTER_SLACK_DIV 4

/* ---- lists of alarms (index values) ------------------------------------------------ */

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

void vg_alarm_free_lists(struct vg_hmap *m)
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

/* ---- instances -------------------------------------------------------------------- */

void vg_alarm_inst_free(struct vg_alarm_engine *e, struct inst *in)
{
	if (!in)
		return;
	vg_alarm_queue_forget(e, in);
	vg_alarm_eval_release(&in->ev);
	free(in->shadow);
	free(in->resource);
	free(in);
}

struct inst *vg_alarm_inst_new(struct alarm *a, const char *resource)
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

int vg_alarm_aggregate(struct alarm *a)
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

void vg_alarm_free_insts(struct vg_alarm_engine *e, struct alarm *a)
{
	size_t pos = 0;
	const struct vg_hmap_entry *s;

	while ((s = vg_hmap_next(&a->insts, &pos)))
		vg_alarm_inst_free(e, s->value);
	vg_hmap_release(&a->insts);
	vg_hmap_init(&a->insts);
}

void vg_alarm_free(struct vg_alarm_engine *e, struct alarm *a)
{
	if (!a)
		return;
	vg_alarm_free_insts(e, a);
	vg_alarm_gstate_free(e, a);
	vg_alarm_rule_free(a->rule);
	vg_alarm_def_release(&a->def);
	free(a);
}

/* ---- notifications ------------------------------------------------------------------ */

static struct res_info *res_get(struct vg_alarm_engine *e, const char *id)
{
	return id && *id ? vg_hmap_gets(&e->resources, id) : NULL;
}

/* The value of attribute key of r (the agent's Nova names), or NULL. */
static const char *res_attr(const struct res_info *r, const char *key)
{
	for (size_t i = 0; r && i < r->nattrs; i++)
		if (!strcmp(r->attrs[i].key, key))
			return *r->attrs[i].value ? r->attrs[i].value : NULL;
	return NULL;
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

	/* clustered: the lease holder notifies; this node's view of an
	 * alarm it does not own is reloaded from the database at a takeover */
	if (!vg_alarm_owned(e, a))
		return;

	/* cooldown: an alarm notification (whose actions scale a group,
	 * page someone) is not repeated sooner than cooldown after the last
	 * one; the decision is still recorded, marked so */
	if (d->current == VG_ALARM_ALARM && a->def.cooldown_s) {
		int64_t cd = (int64_t)a->def.cooldown_s * 1000;
		if (in->cooldown_last_ms && d->time_ms < in->cooldown_last_ms + cd) {
			vg_alarm_queue_history(e, a, "cooldown", in->resource,
					       d->time_ms, json_pack("{s:s,s:s,s:s,s:I}", "previous", vg_alarm_state_name(d->previous), "current", vg_alarm_state_name(d->current), "reason", d->reason, "cooldown_until_ms", (json_int_t)(in->cooldown_last_ms + cd)));
			e->st.cooldowns++;
			return;
		}
		/* its clock is in the state row: a restart or a new owner
		 * holds back what this one would */
		in->cooldown_last_ms = d->time_ms;
		vg_alarm_queue_mark_dirty(e, in);
	}
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
	ni.resource_name = res_attr(r, "display_name");
	/* the resource's project name names the notification's project only
	 * when they are the same project */
	if (r && r->project && a->def.project && !strcmp(r->project, a->def.project))
		ni.project_name = res_attr(r, "project_name");
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
	if (!(p = vg_alarm_queue_history(e, a, ev_type, in->resource, d->time_ms, detail)))
		return;
	snprintf(p->notice_id, sizeof(p->notice_id), "%s", nid);
	p->body = vg_alarm_notice_json(&ni, &p->body_len);
	if (!p->body)
		return; /* history stays; the notification is lost (out of memory) */
	/* PUB is live and best effort: publish at the decision, before its
	 * commit; SSE, log and the outbox wait for the commit in
	 * vg_alarm_queue_flush() (early, vg_alarm_queue_commit_early). */
	if (vg_alarm_notice_topic(a->def.project, a->def.name, topic, sizeof(topic)) >= 0)
		vg_alarm_pub_send(e->o.pub, topic, p->body, p->body_len, 1);
	size_t na = a->def.nactions[d->current];
	if (na && (p->actions = calloc(na, sizeof(char *)))) {
		for (size_t k = 0; k < na; k++)
			if ((p->actions[p->nactions] = strdup(a->def.actions[d->current][k])))
				p->nactions++;
	}
	if (asprintf(&p->log_line, "alarm %s/%s%s%s%s%s%s: %s -> %s%s: %s", a->def.project,
		     a->def.name, *in->resource ? " on " : "", in->resource,
		     ni.resource_name ? " (" : "", ni.resource_name ? ni.resource_name : "",
		     ni.resource_name ? ")" : "", vg_alarm_state_name(d->previous), vg_alarm_state_name(d->current),
		     ni.repeat ? " (repeat)" : "", d->reason) < 0)
		p->log_line = NULL;
	if (d->notify == VG_NOTIFY_TRANSITION)
		e->st.transitions++;
	vg_alarm_queue_noticed(e);
}

void vg_alarm_notify_still_firing(struct vg_alarm_engine *e, struct inst *in,
				  const char *reason, int64_t t)
{
	struct vg_alarm_decision d;

	memset(&d, 0, sizeof(d));
	d.notify = VG_NOTIFY_REPEAT;
	d.previous = d.current = VG_ALARM_ALARM;
	d.raw = -1;
	d.time_ms = t;
	snprintf(d.reason, sizeof(d.reason), "%s", reason);
	notify(e, in, &d, t);
}

static void eval_dependents(struct vg_alarm_engine *e, struct alarm *a,
			    int64_t t, int depth);

/* After an instance of a changed state, update the aggregate and the
 * composites that watch it. */
void vg_alarm_after_change(struct vg_alarm_engine *e, struct alarm *a, int64_t t,
			   int depth)
{
	int agg = vg_alarm_aggregate(a);

	if (agg == a->agg)
		return;
	a->agg = agg;
	eval_dependents(e, a, t, depth);
}

/* ---- composites ----------------------------------------------------------------------- */

struct alarm *vg_alarm_by_name(struct vg_alarm_engine *e, const char *project,
			       const char *name)
{
	char k[600];
	size_t kl = key2(k, sizeof(k), project, name);

	return kl ? vg_hmap_get(&e->names, k, kl) : NULL;
}

void vg_alarm_composite_eval(struct vg_alarm_engine *e, struct alarm *c, int64_t t,
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
		struct alarm *r = vg_alarm_by_name(e, c->def.project, name);
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
	       : truth          ? VG_ALARM_ALARM
				: VG_ALARM_OK;
	in = vg_hmap_get(&c->insts, "", 0);
	if (!in && !(in = vg_alarm_inst_new(c, ""))) {
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
		snprintf(d.reason, sizeof(d.reason), "rule %.*s is %s: %s",
			 (int)vg_utf8_prefix(c->def.rule, 120), c->def.rule, truth ? "true" : "false", list);
	d.reason_data = json_pack("{s:s,s:s,s:b,s:o}", "type", "composite", "rule",
				  c->def.rule, "value", truth, "states", refs);
	snprintf(in->reason, sizeof(in->reason), "%s", d.reason);
	in->reason_stale = 0;
	in->updated_ms = wall(e);
	e->st.evaluations++;
	if (next != in->ev.state) {
		d.notify = VG_NOTIFY_TRANSITION;
		in->ev.state = next;
		in->ev.since_ms = t;
		vg_alarm_queue_mark_dirty(e, in);
		notify(e, in, &d, 0);
		json_decref(d.reason_data);
		vg_alarm_after_change(e, c, t, depth + 1);
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
		vg_alarm_composite_eval(e, l->a[i], t, depth + 1);
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
void vg_alarm_index_add(struct vg_alarm_engine *e, struct alarm *a)
{
	char k[1024];
	size_t kl;

	if (a->def.kind == VG_ALARM_EVENT) {
		if (a->def.enabled)
			list_add(&e->evalarms, a);
		return;
	}
	if (a->def.kind == VG_ALARM_THRESHOLD) {
		void *n;
		if (!a->def.enabled)
			return;
		if (a->def.group)
			e->ngroups++;
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
void vg_alarm_reindex(struct vg_alarm_engine *e)
{
	size_t pos = 0;
	const struct vg_hmap_entry *s;

	if (e->indexed_gen == e->gen)
		return;
	vg_alarm_free_lists(&e->watchers);
	vg_alarm_free_lists(&e->exact);
	vg_alarm_free_lists(&e->deps);
	vg_hmap_release(&e->metrics);
	vg_hmap_init(&e->metrics);
	e->ngroups = 0;
	e->evalarms.n = 0;
	while ((s = vg_hmap_next(&e->alarms, &pos)))
		vg_alarm_index_add(e, s->value);
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

void vg_alarm_series_free(struct series *s)
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

/* ---- group alarms -------------------------------------------------------------------- */

/* A group alarm has one instance ("") fed by every member's series: each
 * member's period value (its own statistic) goes into the group's open
 * period; the period is combined (group statistic) and evaluated by the
 * same state machine once every member reported for it, at the first
 * datapoint of a later period, or when the members' data clock is past
 * its end by two agent intervals (expire_all). A member that reported no
 * sample in a period (its datapoint is missing) does not count: average,
 * minimum, maximum, sum, percentiles and count_above are over the members
 * that reported, `count` is how many did; a period in which none did is a
 * missing datapoint for the group (missing_data applies). The members and
 * the open periods' values are stored too (engine_gstate.c says why), so
 * a restart or a takeover decides the open periods from every value. */

#define GROUP_MAX_MEMBERS 100000

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

/* The group's value for the values of its reporting members (NaN: none
 * reported a value); *used gets how many had a value. Reorders v. */
static double group_value(const struct vg_alarm_def *d, double *v, size_t n,
			  size_t *used)
{
	double acc = NAN;
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (!isnan(v[i]))
			v[k++] = v[i];
	*used = k;
	if (d->group_stat == VG_GROUP_COUNT)
		return (double)k;
	if (d->group_stat == VG_GROUP_COUNT_ABOVE) {
		size_t above = 0;
		for (size_t i = 0; i < k; i++)
			above += v[i] > d->group_member_threshold;
		return k ? (double)above : NAN;
	}
	if (!k)
		return NAN;
	switch (d->group_stat) {
	case VG_GROUP_AVERAGE:
	case VG_GROUP_SUM:
		acc = 0;
		for (size_t i = 0; i < k; i++)
			acc += v[i];
		return d->group_stat == VG_GROUP_SUM ? acc : acc / (double)k;
	case VG_GROUP_MINIMUM:
	case VG_GROUP_MAXIMUM:
		acc = v[0];
		for (size_t i = 1; i < k; i++)
			if (d->group_stat == VG_GROUP_MINIMUM ? v[i] < acc : v[i] > acc)
				acc = v[i];
		return acc;
	case VG_GROUP_PERCENTILE: {
		/* nearest rank */
		double rank = ceil(d->group_percentile / 100.0 * (double)k);
		size_t r = rank < 1 ? 0 : (size_t)rank - 1;
		qsort(v, k, sizeof(*v), cmp_double);
		return v[r < k ? r : k - 1];
	}
	}
	return NAN;
}

/* Decide group alarm a's period [start, start + period) of value v
 * (members, reported, with a value: for the notification), on its
 * instance in; the owner only. */
static void group_decide(struct vg_alarm_engine *e, struct alarm *a, struct inst *in,
			 int64_t start, double v, size_t members, size_t reported,
			 size_t used)
{
	int64_t end = start + (int64_t)a->def.period_s * 1000;
	struct vg_alarm_decision d;

	if (vg_alarm_eval_push(&in->ev, start, v))
		return; /* decided before (a replay after a restart or takeover) */
	e->st.datapoints++;
	vg_alarm_eval_decide(&a->params, &in->ev, end, &d, 0);
	e->st.evaluations++;
	if (d.notify) {
		char gs[VG_ALARM_STAT_NAME_MAX];
		memcpy(in->reason, d.reason, strlen(d.reason) + 1);
		in->reason_stale = 0;
		if (d.reason_data)
			json_object_set_new(d.reason_data, "group", json_pack("{s:s,s:o,s:I,s:I,s:I}", "statistic", vg_alarm_group_stat_name(a->def.group_stat, a->def.group_percentile, gs, sizeof(gs)), "value", isnan(v) ? json_null() : json_real(v), "members", (json_int_t)members, "reported", (json_int_t)reported, "with_value", (json_int_t)used));
	} else
		in->reason_stale = 1;
	in->updated_ms = wall(e);
	vg_alarm_queue_mark_dirty(e, in);
	if (d.notify)
		notify(e, in, &d, start);
	json_decref(d.reason_data);
	if (d.notify == VG_NOTIFY_TRANSITION)
		vg_alarm_after_change(e, a, end, 0);
	vg_alarm_queue_commit_early(e);
}

void vg_alarm_group_datapoint(struct vg_alarm_engine *e, struct inst *in,
			      const struct shadow_dp *dp)
{
	group_decide(e, in->a, in, dp->start_ms, dp->v, dp->members, dp->reported,
		     dp->used);
}

/* Combine and evaluate the oldest open period of group alarm a, and make
 * the next one the oldest. On a cluster node that does not own a, the
 * combined value is kept in the instance's shadow (decided if this node
 * takes a over before its owner decided it). */
static void group_close(struct vg_alarm_engine *e, struct alarm *a)
{
	struct group_acc *g = a->grp;
	struct group_period *p, done;
	struct inst *in = vg_hmap_get(&a->insts, "", 0);
	struct shadow_dp *sd;
	size_t used = 0, reported, members;
	int64_t start;
	double v;

	if (!g || g->slot[0].start_ms == VG_WINDOW_NONE)
		return;
	p = &g->slot[0];
	start = p->start_ms;
	reported = p->nvals;
	members = vg_hmap_count(&g->members);
	v = group_value(&a->def, p->vals, p->nvals, &used);
	/* shift: slot 1 becomes the oldest, slot 0's buffers are reused */
	done = g->slot[0];
	g->slot[0] = g->slot[1];
	g->slot[1] = done;
	vg_alarm_gstate_period_clear(&g->slot[1]);
	vg_alarm_gstate_closed(e, a, start); /* its stored values go */
	if (!in || !a->def.enabled)
		return;
	if (!vg_alarm_owned(e, a)) {
		sd = vg_alarm_shadow_push(e, in, start,
					  start + (int64_t)a->def.period_s * 1000, v);
		if (sd) {
			sd->members = (uint32_t)members;
			sd->reported = (uint32_t)reported;
			sd->used = (uint32_t)used;
		}
		return;
	}
	group_decide(e, a, in, start, v, members, reported, used);
}

/* Close the oldest open periods while every member reported for them. */
static void group_maybe_close(struct vg_alarm_engine *e, struct alarm *a)
{
	struct group_acc *g = a->grp;

	while (g && g->slot[0].start_ms != VG_WINDOW_NONE &&
	       g->slot[0].nvals >= vg_hmap_count(&g->members))
		group_close(e, a);
}

/* member's value v for the open period p (stored at the next flush) */
static void period_add(struct vg_alarm_engine *e, struct alarm *a,
		       struct group_period *p, const char *member, double v)
{
	if (!vg_alarm_gstate_period_add(p, member, v))
		vg_alarm_gstate_mark(e, a);
}

/* One member's datapoint (value v, NaN when it had no sample). */
static void group_add(struct vg_alarm_engine *e, struct alarm *a,
		      const char *member, int64_t start_ms, double v)
{
	struct group_acc *g = vg_alarm_gstate_get(a);
	struct inst *in;

	if (!g)
		return;
	in = vg_hmap_get(&a->insts, "", 0);
	if (in && in->ev.last_start_ms && start_ms <= in->ev.last_start_ms)
		return; /* evaluated before (a replay after a restart) */
	for (;;) {
		struct group_period *s0 = &g->slot[0], *s1 = &g->slot[1];
		if (s0->start_ms == VG_WINDOW_NONE) {
			s0->start_ms = start_ms;
			period_add(e, a, s0, member, v);
			break;
		}
		if (start_ms == s0->start_ms) {
			period_add(e, a, s0, member, v);
			break;
		}
		if (start_ms < s0->start_ms ||
		    (s1->start_ms != VG_WINDOW_NONE && start_ms < s1->start_ms)) {
			g->late++; /* its group period closed without it */
			e->st.samples_late++;
			break;
		}
		if (s1->start_ms == VG_WINDOW_NONE) {
			s1->start_ms = start_ms;
			period_add(e, a, s1, member, v);
			break;
		}
		if (start_ms == s1->start_ms) {
			period_add(e, a, s1, member, v);
			break;
		}
		/* two periods ahead of the oldest: it closes without the
		 * members that did not report */
		group_close(e, a);
	}
	group_maybe_close(e, a);
}

/* A resource joins group alarm a: the one instance "", and a history
 * row the first time the member is seen. */
static struct inst *group_join(struct vg_alarm_engine *e, struct alarm *a,
			       const struct res_info *r)
{
	struct group_acc *g = vg_alarm_gstate_get(a);
	struct inst *in = vg_hmap_get(&a->insts, "", 0);

	if (!g)
		return NULL;
	if (!in) {
		if (!(in = vg_alarm_inst_new(a, "")))
			return NULL;
		in->updated_ms = wall(e);
		vg_alarm_queue_mark_dirty(e, in);
	}
	if (!vg_hmap_gets(&g->members, r->id)) {
		if (vg_hmap_count(&g->members) >= GROUP_MAX_MEMBERS)
			return NULL;
		if (vg_hmap_put(&g->members, r->id, strlen(r->id), (void *)1, NULL))
			return NULL;
		vg_alarm_gstate_member(e, a, r->id, 1);
		vg_alarm_queue_history(e, a, "resource_joined", r->id, wall(e),
				       json_pack("{s:s,s:s,s:I}", "resource", r->id, "type",
						 vg_rtype_name(r->rtype) ? vg_rtype_name(r->rtype) : "?",
						 "members", (json_int_t)vg_hmap_count(&g->members)));
	}
	return in;
}

/* A member leaves (ended, or stopped matching): history, and the open
 * period may now be complete without it. */
static void group_leave(struct vg_alarm_engine *e, struct alarm *a,
			const char *id, int64_t t)
{
	struct group_acc *g = a->grp;

	if (!g || !vg_hmap_gets(&g->members, id))
		return;
	vg_hmap_del(&g->members, id, strlen(id));
	vg_alarm_gstate_member(e, a, id, 0);
	vg_alarm_queue_history(e, a, "resource_left", id, t,
			       json_pack("{s:s,s:I}", "resource", id, "members",
					 (json_int_t)vg_hmap_count(&g->members)));
	group_maybe_close(e, a);
}

static struct inst *inst_for(struct vg_alarm_engine *e, struct alarm *a,
			     const struct res_info *r)
{
	struct inst *in;

	if (a->def.group)
		return group_join(e, a, r);
	in = vg_hmap_gets(&a->insts, r->id);

	if (in)
		return in;
	if (!(in = vg_alarm_inst_new(a, r->id)))
		return NULL;
	in->updated_ms = wall(e);
	if (!a->def.resource)
		vg_alarm_queue_history(e, a, "resource_joined", r->id, wall(e),
				       json_pack("{s:s,s:s}", "resource", r->id, "type",
						 vg_rtype_name(r->rtype) ? vg_rtype_name(r->rtype) : "?"));
	vg_alarm_queue_mark_dirty(e, in);
	return in;
}

/* A resource leaves a selector alarm: history, state row deleted,
 * instance freed, aggregate updated. */
static void leave(struct vg_alarm_engine *e, struct alarm *a, struct inst *in,
		  int64_t t)
{
	vg_hmap_del(&a->insts, in->resource, strlen(in->resource));
	vg_alarm_queue_history(e, a, "resource_left", in->resource, t,
			       json_pack("{s:s,s:s}", "resource", in->resource, "state",
					 vg_alarm_state_name(in->ev.state)));
	vg_alarm_queue_delete_state(e, a->def.id, in->resource);
	vg_alarm_inst_free(e, in);
	vg_alarm_after_change(e, a, t, 0);
}

static void rebind(struct vg_alarm_engine *e, struct series *s)
{
	struct list *l;
	int *used = NULL;

	vg_alarm_reindex(e);
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
			if (a->def.group)
				group_leave(e, a, s->res->id, wall(e));
			else if (!a->def.resource &&
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

void vg_alarm_res_free(struct res_info *r)
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

/* The batch's identity of resource r into ri; its series re-match their
 * selectors if anything a selector reads changed. */
static void res_refresh(struct vg_alarm_engine *e, struct res_info *ri,
			const struct vg_batch *b, const struct vg_resource *r)
{
	if (res_update(e, ri, b, r) > 0)
		for (size_t i = 0; i < ri->nseries; i++)
			ri->series[i]->gen = 0; /* re-match selectors */
}

static struct res_info *res_for(struct vg_alarm_engine *e, const struct vg_batch *b,
				const struct vg_resource *r)
{
	struct res_info *ri = vg_hmap_gets(&e->resources, r->id);

	if (!ri) {
		if (!(ri = calloc(1, sizeof(*ri))) || !(ri->id = strdup(r->id)) ||
		    vg_hmap_put(&e->resources, r->id, strlen(r->id), ri, NULL)) {
			vg_alarm_res_free(ri);
			return NULL;
		}
	}
	res_refresh(e, ri, b, r);
	return ri;
}

/* Make the series of key (kl bytes, "resource\0metric", hash h =
 * vg_hmap_hash(key, kl)) for ri and metric: the caller looked key up in
 * e->series just before and found nothing. NULL when out of memory. */
static struct series *series_for(struct vg_alarm_engine *e, struct res_info *ri,
				 const char *metric, int kind, const char *k, size_t kl,
				 uint64_t h)
{
	struct series *s;

	if (!(s = calloc(1, sizeof(*s))))
		return NULL;
	s->res = ri;
	s->kind = kind;
	s->last_t = VG_WINDOW_NONE;
	s->metric = strdup(metric);
	s->key = malloc(kl);
	if (!s->metric || !s->key) {
		vg_alarm_series_free(s);
		return NULL;
	}
	memcpy(s->key, k, kl);
	s->klen = kl;
	if (ri->nseries == ri->capseries) {
		size_t cap = ri->capseries ? 2 * ri->capseries : 4;
		struct series **n = realloc(ri->series, cap * sizeof(*n));
		if (!n) {
			vg_alarm_series_free(s);
			return NULL;
		}
		ri->series = n;
		ri->capseries = cap;
	}
	if (vg_hmap_put_hashed(&e->series, k, kl, h, s, NULL)) {
		vg_alarm_series_free(s);
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

/* 1: dp is an empty period of a host's interval whose batches this node
 * did not see (engine_state.h, struct host_clock): unknown here. */
static int unseen(struct vg_alarm_engine *e, const struct series *s,
		  const struct vg_alarm_datapoint *dp)
{
	const struct host_clock *hc;

	if (dp->count || !s->res->host || !(hc = vg_hmap_gets(&e->hosts, s->res->host)))
		return 0;
	return dp->start_ms < hc->unseen_to_ms && dp->end_ms > hc->unseen_from_ms + 1;
}

static void on_period(void *ctx, const struct vg_alarm_datapoint *dp)
{
	struct period_ctx *pc = ctx;
	struct vg_alarm_engine *e = pc->e;
	struct series *s = pc->s;

	/* the data exists (another collector took it), this node only did
	 * not get it: deciding such a period as missing would invent a
	 * transition (and its notification) the data does not make, and
	 * the next transition back; the periods are left out, as a period
	 * past the evaluation range is, and the next real datapoint is
	 * decided over the range with them absent */
	if (unseen(e, s, dp)) {
		e->st.unseen_periods++;
		return;
	}
	e->st.datapoints++;
	for (size_t i = 0; i < s->nbind; i++) {
		struct inst *in = s->bind[i].in;
		struct alarm *a = in->a;
		double v;

		if (s->bind[i].win != pc->win || !a->def.enabled)
			continue;
		v = vg_alarm_statistic(dp, a->def.statistic, a->def.percentile);
		if (a->def.group) {
			group_add(e, a, s->res->id, dp->start_ms, v);
			continue;
		}
		if (!vg_alarm_owned(e, a)) {
			vg_alarm_shadow_push(e, in, dp->start_ms, dp->end_ms, v);
			continue;
		}
		vg_alarm_inst_datapoint(e, in, dp->start_ms, dp->end_ms, v);
	}
}

void vg_alarm_inst_datapoint(struct vg_alarm_engine *e, struct inst *in,
			     int64_t start_ms, int64_t end_ms, double v)
{
	struct alarm *a = in->a;
	struct vg_alarm_decision d;
	int quiet, loggable;

	/* restored from a fillable row: the periods since it were quiet
	 * steps, evaluated and not written (engine_queue.c, quiet steps) */
	if (in->fill_quiet && in->ev.n && start_ms > in->ev.last_start_ms) {
		vg_alarm_eval_fill_quiet(&a->params, &in->ev, start_ms);
		in->fill_quiet = 0;
	}
	/* a good datapoint right after the newest, from ok: a quiet step if
	 * the decision then keeps ok without notifying */
	quiet = in->row_fillable && !in->dirty && in->ev.state == VG_ALARM_OK &&
		vg_alarm_eval_fillable(&in->ev) &&
		vg_alarm_eval_good_next(&a->params, &in->ev, start_ms, v);
	/* any datapoint for the period right after the newest, from a
	 * fillable committed row: logged instead of written if it leaves
	 * the state fillable without a notification (engine_queue.c) */
	loggable = e->log_on && in->row_fillable && !in->dirty &&
		   vg_alarm_eval_fillable(&in->ev) &&
		   start_ms == in->ev.last_start_ms + a->params.period_ms;
	if (vg_alarm_eval_push(&in->ev, start_ms, v))
		return; /* evaluated before (a replay after restart or takeover) */
	in->fill_quiet = 0;
	/* the reason's text only when someone is told; otherwise it
	 * is rebuilt from the ring when read (vg_alarm_inst_reason) */
	vg_alarm_eval_decide(&a->params, &in->ev, end_ms, &d, 0);
	e->st.evaluations++;
	if (d.notify) {
		memcpy(in->reason, d.reason, strlen(d.reason) + 1);
		in->reason_stale = 0;
	} else
		in->reason_stale = 1;
	in->updated_ms = wall(e);
	/* a quiet step: the stored row, with good datapoints after it,
	 * already stands for this state (engine_queue.c), nothing to write */
	if (quiet && !d.notify && in->ev.state == VG_ALARM_OK)
		e->st.quiet_evaluations++;
	else if (loggable && !d.notify && vg_alarm_eval_fillable(&in->ev) &&
		 !vg_alarm_queue_log_step(e, in, start_ms, end_ms, v))
		e->st.logged_steps++;
	else
		vg_alarm_queue_mark_dirty(e, in);
	if (d.notify)
		notify(e, in, &d, start_ms);
	json_decref(d.reason_data);
	if (d.notify == VG_NOTIFY_TRANSITION)
		vg_alarm_after_change(e, a, end_ms, 0);
	/* this decision and its consequences (aggregate, composites)
	 * are queued whole: commit them now if notifications wait */
	vg_alarm_queue_commit_early(e);
}

/* The agents' poll interval in seconds, as configured ([agent]
 * interval; 0 there means the agents' default, 10). */
static double agent_interval_s(const struct vg_alarm_engine *e)
{
	return e->o.agent_interval_s > 0 ? e->o.agent_interval_s : 10;
}

static void feed(struct vg_alarm_engine *e, struct series *s, int64_t t,
		 double value)
{
	double v = value;
	int64_t iv;

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
	/* a series' first sample (a new series, or the first after a
	 * restart) has no measured rhythm: the agents' configured interval
	 * stands for it, or a kill before the second sample lost the first
	 * one's acknowledged period (its transition a period late) */
	iv = s->interval_ms > 0 ? s->interval_ms : llround(agent_interval_s(e) * 1000);
	for (size_t w = 0; w < s->nwin; w++) {
		struct period_ctx pc = {e, s, (uint32_t)w};
		if (vg_alarm_window_add(&s->win[w].w, t, v, s->win[w].max_gap,
					on_period, &pc))
			e->st.samples_late++;
		vg_alarm_window_close_if_complete(&s->win[w].w,
						  t + iv + iv / JITTER_SLACK_DIV,
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
			if (a->def.group) {
				group_leave(e, a, ri->id, t);
				continue;
			}
			if (vg_hmap_gets(&a->insts, ri->id) != in)
				continue; /* already left via another metric */
			leave(e, a, in, t);
		}
		vg_hmap_del(&e->series, s->key, s->klen);
		vg_alarm_series_free(s);
	}
	ri->nseries = 0;
	vg_hmap_del(&e->resources, ri->id, strlen(ri->id));
	vg_alarm_res_free(ri);
	e->gen++; /* other series may hold bindings to freed instances */
}

/* ---- event alarms ---------------------------------------------------------------------- */

/* An event alarm has one instance per resource that had a matching event
 * (per host for agent_silent). A matching event is a notification into
 * alarm: a transition, or a repeat when the instance is still in alarm
 * (every event is told). The instance returns to ok keep_firing_for
 * seconds (wall clock) after its last event, on the timer; an
 * agent_silent instance returns to ok when the host sends again. */

#define SILENT_DEFAULT_INTERVALS 3

static int event_project_match(const struct alarm *a, const char *project)
{
	const char *want = a->def.event_project;

	return !want || !strcmp(want, "*") || !strcmp(want, project);
}

static void event_fire(struct vg_alarm_engine *e, struct alarm *a,
		       const char *resource, const char *host, int kind,
		       int64_t t, const char *detail, int silent)
{
	struct inst *in = vg_hmap_gets(&a->insts, resource);
	struct vg_alarm_decision d;
	const char *kn = vg_alarm_event_kind_name(kind);
	char clean[VG_WIRE_MAX_STRING + 1];

	/* the agent's detail is any bytes but NUL (docs/protocol.md): a
	 * '?' for each byte that is not UTF-8 (and each control or hidden
	 * character), or jansson would drop the reason and its data */
	if (detail) {
		vg_text_clean(detail, clean, sizeof(clean) - 1);
		detail = clean;
	}
	if (!in) {
		if (!(in = vg_alarm_inst_new(a, resource)))
			return;
	}
	in->silent = silent;
	memset(&d, 0, sizeof(d));
	d.previous = in->ev.state;
	d.current = VG_ALARM_ALARM;
	d.raw = VG_ALARM_ALARM;
	d.time_ms = t;
	d.notify = d.previous == VG_ALARM_ALARM ? VG_NOTIFY_REPEAT
						: VG_NOTIFY_TRANSITION;
	snprintf(d.reason, sizeof(d.reason), "event %s on %.*s%s%.*s", kn,
		 (int)vg_utf8_prefix(resource, 100), resource,
		 detail && *detail ? ": " : "", (int)vg_utf8_prefix(detail, 200),
		 detail ? detail : "");
	d.reason_data = json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:I}", "type", "event",
				  "kind", kn, "resource", resource, "host", host,
				  "detail", detail, "time_ms", (json_int_t)t);
	if (d.previous != VG_ALARM_ALARM)
		in->ev.since_ms = t;
	in->ev.state = VG_ALARM_ALARM;
	memcpy(in->reason, d.reason, strlen(d.reason) + 1);
	in->reason_stale = 0;
	in->updated_ms = wall(e);
	e->st.evaluations++;
	vg_alarm_queue_mark_dirty(e, in);
	notify(e, in, &d, 0);
	json_decref(d.reason_data);
	if (d.notify == VG_NOTIFY_TRANSITION)
		vg_alarm_after_change(e, a, t, 0);
	vg_alarm_queue_commit_early(e);
}

/* An event alarm's instance back to ok. */
static void event_clear(struct vg_alarm_engine *e, struct inst *in, int64_t t,
			const char *why)
{
	struct vg_alarm_decision d;

	memset(&d, 0, sizeof(d));
	d.previous = in->ev.state;
	d.current = VG_ALARM_OK;
	d.raw = VG_ALARM_OK;
	d.time_ms = t;
	d.notify = VG_NOTIFY_TRANSITION;
	snprintf(d.reason, sizeof(d.reason), "%s", why);
	d.reason_data = json_pack("{s:s,s:s}", "type", "event", "resource",
				  in->resource);
	in->ev.state = VG_ALARM_OK;
	in->ev.since_ms = t;
	memcpy(in->reason, d.reason, strlen(d.reason) + 1);
	in->reason_stale = 0;
	in->updated_ms = wall(e);
	vg_alarm_queue_mark_dirty(e, in);
	notify(e, in, &d, 0);
	json_decref(d.reason_data);
	vg_alarm_after_change(e, in->a, t, 0);
}

/* The project of a resource an event names: from the batch, else what the
 * engine knows, else "default" (hosts). */
static const char *event_res_project(struct vg_alarm_engine *e,
				     const struct vg_batch *b, const char *id)
{
	struct res_info *ri;

	for (size_t i = 0; i < b->nres; i++)
		if (!strcmp(b->res[i].id, id)) {
			if (b->res[i].project)
				return b->res[i].project;
			if (b->res[i].parent && (ri = res_get(e, b->res[i].parent)))
				return ri->project;
			break;
		}
	ri = res_get(e, id);
	return ri && ri->project ? ri->project : "default";
}

static void events_batch(struct vg_alarm_engine *e, const struct vg_batch *b)
{
	int64_t now = wall(e);

	/* agent_silent instances of this host end: it sends again (a
	 * project's published measures are not its agent) */
	for (size_t k = 0; b->host && !b->published && k < e->evalarms.n; k++) {
		struct alarm *a = e->evalarms.a[k];
		struct inst *in;
		if (!(a->def.event_kinds & (1u << VG_ALARM_EV_AGENT_SILENT)) ||
		    !(in = vg_hmap_gets(&a->insts, b->host)) || !in->silent ||
		    in->ev.state != VG_ALARM_ALARM)
			continue;
		event_clear(e, in, b->time_ms, "the agent sends again");
	}
	for (size_t i = 0; i < b->nevents; i++) {
		const struct vg_event *ev = &b->events[i];
		const char *project = NULL;
		int kind = ev->type, derived = 0;
		if (!ev->resource)
			continue;
		if (kind == VG_EV_STOPPED && ev->detail &&
		    (strstr(ev->detail, "\"reason\":\"crashed\"") ||
		     strstr(ev->detail, "\"reason\":\"failed\"")))
			derived = VG_ALARM_EV_CRASHED;
		for (size_t k = 0; k < e->evalarms.n; k++) {
			struct alarm *a = e->evalarms.a[k];
			const struct vg_alarm_def *d = &a->def;
			int fire = d->event_kinds & (1u << kind) ? kind
				   : derived && (d->event_kinds & (1u << derived))
					   ? derived
					   : 0;
			if (!fire)
				continue;
			if (d->event_resource && strcmp(d->event_resource, ev->resource))
				continue;
			if (d->event_host && !str_eq(d->event_host, b->host))
				continue;
			if (d->event_detail &&
			    (!ev->detail || !strstr(ev->detail, d->event_detail)))
				continue;
			if (!project)
				project = event_res_project(e, b, ev->resource);
			if (!event_project_match(a, project))
				continue;
			event_fire(e, a, ev->resource, b->host, fire, ev->time_ms,
				   ev->detail, 0);
		}
	}
	(void)now;
}

/* The timer: agents gone silent, and event instances whose
 * keep_firing_for ran out. */
static void events_tick(struct vg_alarm_engine *e, int64_t now)
{
	double iv = agent_interval_s(e);

	for (size_t k = 0; k < e->evalarms.n; k++) {
		struct alarm *a = e->evalarms.a[k];
		size_t pos = 0;
		const struct vg_hmap_entry *sl;

		if (a->def.event_kinds & (1u << VG_ALARM_EV_AGENT_SILENT)) {
			int64_t after = a->def.silent_for_s
						? (int64_t)a->def.silent_for_s * 1000
						: (int64_t)(iv * 1000 * SILENT_DEFAULT_INTERVALS);
			while ((sl = vg_hmap_next(&e->hosts, &pos))) {
				const struct host_clock *hc = sl->value;
				struct inst *in;
				char host[256], detail[96];
				if (now - hc->wall_ms < after || sl->klen >= sizeof(host))
					continue;
				memcpy(host, sl->key, sl->klen);
				host[sl->klen] = '\0';
				if (a->def.event_host && strcmp(a->def.event_host, host))
					continue;
				if (!event_project_match(a, "default"))
					continue;
				in = vg_hmap_gets(&a->insts, host);
				if (in && in->ev.state == VG_ALARM_ALARM)
					continue; /* told once per silence */
				snprintf(detail, sizeof(detail), "{\"silent_s\":%lld}",
					 (long long)((now - hc->wall_ms) / 1000));
				/* in sample time: the host's last data plus the silence */
				event_fire(e, a, host, host, VG_ALARM_EV_AGENT_SILENT,
					   hc->data_ms + (now - hc->wall_ms), detail, 1);
			}
		}
		pos = 0;
		while ((sl = vg_hmap_next(&a->insts, &pos))) {
			struct inst *in = sl->value;
			if (in->silent || in->ev.state != VG_ALARM_ALARM ||
			    now < in->updated_ms + (int64_t)a->def.keep_firing_for_s * 1000)
				continue;
			event_clear(e, in, in->ev.since_ms + (now - in->updated_ms),
				    "no matching event for keep_firing_for");
		}
	}
}

int vg_alarm_engine_batch(struct vg_alarm_engine *e, const struct vg_batch *b)
{
	int64_t t0 = vg_monotonic_ns(), now;

	pthread_mutex_lock(&e->lock);
	now = wall(e);
	vg_alarm_queue_batch_start(e);
	vg_alarm_reindex(e);
	e->st.batches++;
	/* the host's data clock */
	if (b->host) {
		struct host_clock *hc = vg_hmap_gets(&e->hosts, b->host);
		if (!hc && (hc = calloc(1, sizeof(*hc))) &&
		    vg_hmap_put(&e->hosts, b->host, strlen(b->host), hc, NULL)) {
			free(hc);
			hc = NULL;
		}
		/* A project's published measures (POST /v1/measures) carry
		 * the compute host of its instance and times up to
		 * max_future ahead: they would move the data clock of every
		 * series on that host (other projects' windows closing as
		 * missing data) and keep its agent from being seen silent.
		 * They move only a host no agent reports (custom resources'
		 * "api"). */
		if (hc && !b->published)
			hc->agent = 1;
		if (hc && !(b->published && hc->agent)) {
			int64_t newest = b->time_ms;
			/* batches of this host that reached another collector
			 * and not this one (the stream lost them) */
			if (hc->seq && b->stream == hc->stream && b->seq > hc->seq + 1 &&
			    b->time_ms > hc->seq_time_ms) {
				hc->unseen_from_ms = hc->seq_time_ms;
				hc->unseen_to_ms = b->time_ms;
				vg_log_limited(VG_LOG_INFO, &e->log_unseen,
					       "alarms: host %s's batches %llu to %llu did not "
					       "reach this collector: their periods are left "
					       "out, not taken as missing data",
					       b->host, (unsigned long long)hc->seq + 1,
					       (unsigned long long)b->seq - 1);
			}
			if (!hc->seq || b->stream != hc->stream || b->seq > hc->seq) {
				hc->stream = b->stream;
				hc->seq = b->seq;
				hc->seq_time_ms = b->time_ms;
			}
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
			const char *metric = sm[k].metric;
			size_t ml = strlen(metric), kl;
			uint64_t mh = vg_hmap_hash(metric, ml), kh;
			struct series *s;
			char key[1024];
			if (!vg_hmap_get_hashed(&e->metrics, metric, ml, mh))
				continue;
			/* each key hashed once for all its lookups below (a
			 * sample no alarm binds makes four) */
			if (!(kl = key2(key, sizeof(key), r->id, metric)))
				continue; /* longer than any name (never from the wire) */
			kh = vg_hmap_hash(key, kl);
			/* a series already kept (the usual case): it knows
			 * its resource, and rebind below whether any alarm
			 * still binds it; one lookup instead of three (each a
			 * cache miss or two in a collector's working set) */
			if ((s = vg_hmap_get_hashed(&e->series, key, kl, kh))) {
				if (!ri)
					res_refresh(e, ri = s->res, b, r);
			} else {
				/* no alarm can bind it: no selector alarm
				 * watches the metric and no single-resource
				 * alarm names this resource; nothing to keep
				 * for it (among 100,000 series with 10,000
				 * alarms, most samples) */
				if (!vg_hmap_get_hashed(&e->watchers, metric, ml, mh) &&
				    !vg_hmap_get_hashed(&e->exact, key, kl, kh))
					continue;
				if (!ri && !(ri = res_for(e, b, r)))
					break;
				if (!(s = series_for(e, ri, metric, sm[k].kind, key, kl, kh)))
					continue;
			}
			if (s->gen != e->gen)
				rebind(e, s);
			if (!s->nbind)
				continue;
			e->st.samples++;
			feed(e, s, r->time_ms, sm[k].value);
		}
	}
	if (e->evalarms.n)
		events_batch(e, b);
	vg_alarm_queue_flush(e);
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
		for (size_t k = 0; k < s->nbind; k++) {
			struct alarm *a = s->bind[k].in->a;
			if (a->grp && clock > a->grp->clock_ms) {
				a->grp->clock_ms = clock;
				a->grp->grace_ms = grace;
			}
		}
	}
	/* group periods whose members stayed silent: closed once the data
	 * clock is past the end by two intervals (members' own windows close
	 * at one) */
	if (e->ngroups) {
		pos = 0;
		while ((sl = vg_hmap_next(&e->alarms, &pos))) {
			struct alarm *a = sl->value;
			struct group_acc *g = a->grp;
			while (g && g->slot[0].start_ms != VG_WINDOW_NONE &&
			       g->clock_ms >= g->slot[0].start_ms +
						      (int64_t)a->def.period_s * 1000 + 2 * g->grace_ms)
				group_close(e, a);
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
		vg_alarm_series_free(s);
		if (!ri->nseries) {
			vg_hmap_del(&e->resources, ri->id, strlen(ri->id));
			vg_alarm_res_free(ri);
		}
	}
	free(gc);
}

void vg_alarm_engine_tick(struct vg_alarm_engine *e, int64_t now_ms)
{
	(void)now_ms;
	pthread_mutex_lock(&e->lock);
	int64_t now = wall(e);
	vg_alarm_queue_batch_start(e);
	if (now - e->last_expire_ms >= EXPIRE_EVERY_MS) {
		e->last_expire_ms = now;
		vg_alarm_reindex(e);
		expire_all(e, now);
		if (e->evalarms.n)
			events_tick(e, now);
	}
	vg_alarm_silence_ends(e, now); /* alarms/silence_end.c */
	vg_alarm_queue_flush(e);
	if (now - e->last_prune_ms >= PRUNE_EVERY_MS) {
		uint64_t n = 0;
		e->last_prune_ms = now;
		if (!vg_alarm_store_prune(e->store, now - e->o.history_retention_ms, &n) && n)
			vg_info("alarms: pruned %llu history and outbox rows older "
				"than %lld days",
				(unsigned long long)n,
				(long long)(e->o.history_retention_ms / 86400000));
		if (!vg_alarm_silences_prune(e->silences, now, e->o.history_retention_ms, &n) &&
		    n)
			vg_info("alarms: pruned %llu silences ended more than %lld days ago",
				(unsigned long long)n,
				(long long)((e->o.history_retention_ms > VG_SILENCE_KEEP_EXPIRED_MS
						     ? e->o.history_retention_ms
						     : VG_SILENCE_KEEP_EXPIRED_MS) /
					    86400000));
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
