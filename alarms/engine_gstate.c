/*
 * engine_gstate.c — what a group alarm needs besides its state row to go
 * on after a restart or a takeover as an uninterrupted run would: its
 * members and the values of its open periods, in the database
 * (vigie/alarm_store.h, tables group_alarm_members and group_alarm_values).
 *
 * Why. A group period is decided when every member reported for it
 * (engine_eval.c, group alarms). Members report in different batches, from
 * different agents, and each batch is acknowledged once the engine has
 * taken it: a member's value for a period still open is acknowledged and
 * never sent again. Held in memory only, a kill -9 lost it, and lost the
 * member list too, so after the restart the period was decided as soon as
 * the first member reported again, from that member alone (an average of
 * one). A period restarted empty therefore does not decide the same; the
 * values and members must survive.
 *
 * Cost. A member's value is written once per member per period, in the
 * transaction of the batch that brought it (before its acknowledgement):
 * the same rate as the state rows of a per-resource alarm over the same
 * resources, which every evaluated period already writes. A period's rows
 * are deleted when it is decided, in the transaction that writes the
 * decision (the "" instance's state row, with its datapoints ring). The
 * member list is written when a member joins or leaves (rare). The
 * cooldown's clock is not here: it is a column of the state row, written
 * with the decision that sets it.
 *
 * Reading back (vg_alarm_gstate_load), after the state rows: a value of
 * a period the instance already evaluated (the ring's newest or older) is
 * skipped, so a crash between the decision's commit and nothing else
 * cannot decide a period twice; each member has one value per period (a
 * re-sent batch whose acknowledgement was lost rebuilds a value that is
 * already there: ignored).
 *
 * Clustered (engine_own.c): every node sees every member's datapoints and
 * keeps the open periods in memory, but only the owner writes them (and
 * the fence drops them once its lease is gone). A node taking an alarm
 * over merges the stored rows into what it has (it may have started after
 * the members reported) and rewrites the rows from memory: what the old
 * owner never committed but the stream brought here is then stored too.
 *
 * Invariants: an alarm is in e->gdirty at most once (g->dirty), and is
 * taken out before its group state is freed; queued member changes are
 * written in the order they happened, deletions of decided periods
 * before new values.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alarms/engine_gstate.h"
#include "vigie/alarm_store.h"

/* member changes queued per group before the queue falls back to
 * rewriting every member (a database down for long, members churning) */
#define CHANGES_MAX 4096

struct group_acc *vg_alarm_gstate_get(struct alarm *a)
{
	if (!a->grp && (a->grp = calloc(1, sizeof(*a->grp)))) {
		for (int k = 0; k < 2; k++) {
			a->grp->slot[k].start_ms = VG_WINDOW_NONE;
			vg_hmap_init_borrow(&a->grp->slot[k].seen);
		}
		vg_hmap_init(&a->grp->members);
		a->grp->drop_through_ms = VG_WINDOW_NONE;
	}
	return a->grp;
}

static void changes_clear(struct group_acc *g)
{
	for (size_t i = 0; i < g->nchg; i++)
		free(g->chg[i].id);
	g->nchg = 0;
}

static void forget(struct vg_alarm_engine *e, struct alarm *a)
{
	for (size_t i = 0; i < e->ngdirty; i++)
		if (e->gdirty[i] == a) {
			e->gdirty[i] = e->gdirty[--e->ngdirty];
			break;
		}
	if (a->grp)
		a->grp->dirty = 0;
}

void vg_alarm_gstate_free(struct vg_alarm_engine *e, struct alarm *a)
{
	struct group_acc *g = a ? a->grp : NULL;

	if (!g)
		return;
	if (g->dirty)
		forget(e, a);
	for (int k = 0; k < 2; k++) {
		vg_alarm_gstate_period_clear(&g->slot[k]);
		vg_hmap_release(&g->slot[k].seen);
		free(g->slot[k].vals);
		free(g->slot[k].who);
	}
	changes_clear(g);
	free(g->chg);
	vg_hmap_release(&g->members);
	free(g);
	a->grp = NULL;
}

int vg_alarm_gstate_period_add(struct group_period *p, const char *member, double v)
{
	char *id;

	if (vg_hmap_gets(&p->seen, member))
		return 1;
	if (p->nvals == p->capvals) {
		size_t cap = p->capvals ? 2 * p->capvals : 16;
		double *n = realloc(p->vals, cap * sizeof(*n));
		char **w;
		if (!n)
			return -ENOMEM;
		p->vals = n;
		if (!(w = realloc(p->who, cap * sizeof(*w))))
			return -ENOMEM;
		p->who = w;
		p->capvals = cap;
	}
	if (!(id = strdup(member)))
		return -ENOMEM;
	if (vg_hmap_puts(&p->seen, id, (void *)1)) {
		free(id);
		return -ENOMEM;
	}
	p->who[p->nvals] = id;
	p->vals[p->nvals++] = v;
	return 0;
}

void vg_alarm_gstate_period_clear(struct group_period *p)
{
	for (size_t i = 0; i < p->nvals; i++)
		free(p->who[i]);
	vg_hmap_release(&p->seen);
	vg_hmap_init_borrow(&p->seen);
	p->nvals = p->nsaved = 0;
	p->start_ms = VG_WINDOW_NONE;
}

void vg_alarm_gstate_mark(struct vg_alarm_engine *e, struct alarm *a)
{
	struct group_acc *g = a->grp;

	if (!g || g->dirty || !vg_alarm_owned(e, a))
		return;
	if (e->ngdirty == e->capgdirty) {
		size_t cap = e->capgdirty ? 2 * e->capgdirty : 16;
		struct alarm **n = realloc(e->gdirty, cap * sizeof(*n));
		if (!n)
			return; /* written with its next change */
		e->gdirty = n;
		e->capgdirty = cap;
	}
	e->gdirty[e->ngdirty++] = a;
	g->dirty = 1;
}

void vg_alarm_gstate_member(struct vg_alarm_engine *e, struct alarm *a,
			    const char *id, int join)
{
	struct group_acc *g = a->grp;
	char *copy;

	if (!g || !vg_alarm_owned(e, a))
		return;
	vg_alarm_gstate_mark(e, a);
	if (g->resync)
		return; /* every member is written anyway */
	if (g->nchg == g->capchg) {
		size_t cap = g->capchg ? 2 * g->capchg : 8;
		struct group_change *n =
			g->capchg < CHANGES_MAX ? realloc(g->chg, cap * sizeof(*n)) : NULL;
		if (!n) {
			changes_clear(g);
			g->resync = 1;
			return;
		}
		g->chg = n;
		g->capchg = cap;
	}
	if (!(copy = strdup(id))) {
		changes_clear(g);
		g->resync = 1;
		return;
	}
	g->chg[g->nchg++] = (struct group_change){copy, join};
}

void vg_alarm_gstate_closed(struct vg_alarm_engine *e, struct alarm *a,
			    int64_t start_ms)
{
	struct group_acc *g = a->grp;

	if (!g || !vg_alarm_owned(e, a))
		return;
	if (g->drop_through_ms == VG_WINDOW_NONE || start_ms > g->drop_through_ms)
		g->drop_through_ms = start_ms;
	vg_alarm_gstate_mark(e, a);
}

static int write_one(struct vg_alarm_engine *e, struct alarm *a)
{
	struct group_acc *g = a->grp;
	const char *id = a->def.id;
	int rc = 0;

	if (g->resync) {
		size_t pos = 0;
		const struct vg_hmap_entry *m;
		/* the stored list becomes memory's */
		rc = vg_alarm_store_gmember_del(e->store, id, NULL);
		while (!rc && (m = vg_hmap_next(&g->members, &pos)))
			rc = vg_alarm_store_gmember_put(e->store, id, m->key);
	}
	for (size_t i = 0; !rc && i < g->nchg; i++)
		rc = g->chg[i].join ? vg_alarm_store_gmember_put(e->store, id, g->chg[i].id)
				    : vg_alarm_store_gmember_del(e->store, id, g->chg[i].id);
	if (!rc && g->drop_through_ms != VG_WINDOW_NONE)
		rc = vg_alarm_store_gvalues_drop(e->store, id, g->drop_through_ms);
	for (int k = 0; !rc && k < 2; k++) {
		struct group_period *p = &g->slot[k];
		if (p->start_ms == VG_WINDOW_NONE)
			continue;
		for (size_t i = p->nsaved; !rc && i < p->nvals; i++)
			rc = vg_alarm_store_gvalue_put(e->store, id, p->start_ms, p->who[i],
						       p->vals[i]);
	}
	return rc;
}

int vg_alarm_gstate_write(struct vg_alarm_engine *e)
{
	int rc = 0;

	for (size_t i = 0; !rc && i < e->ngdirty; i++)
		rc = write_one(e, e->gdirty[i]);
	return rc;
}

void vg_alarm_gstate_after_commit(struct vg_alarm_engine *e, int committed)
{
	if (!committed)
		return;
	for (size_t i = 0; i < e->ngdirty; i++) {
		struct group_acc *g = e->gdirty[i]->grp;
		changes_clear(g);
		g->resync = 0;
		g->drop_through_ms = VG_WINDOW_NONE;
		g->slot[0].nsaved = g->slot[0].nvals;
		g->slot[1].nsaved = g->slot[1].nvals;
		g->dirty = 0;
	}
	e->ngdirty = 0;
}

/* ---- reading back ---------------------------------------------------------------- */

static struct alarm *group_alarm(struct vg_alarm_engine *e, const char *alarm_id)
{
	struct alarm *a = vg_hmap_gets(&e->alarms, alarm_id);

	return a && a->def.group ? a : NULL;
}

static int load_member(void *ctx, const char *alarm_id, const char *resource)
{
	struct vg_alarm_engine *e = ctx;
	struct alarm *a = group_alarm(e, alarm_id);
	struct group_acc *g = a ? vg_alarm_gstate_get(a) : NULL;

	if (g && !vg_hmap_gets(&g->members, resource))
		vg_hmap_puts(&g->members, resource, (void *)1);
	return 0;
}

/* The open period of g starting at start_ms, taken if a slot is free and
 * it is after the ones open; NULL when it cannot be one (before the
 * oldest open period: this node decided or kept it already). */
static struct group_period *slot_for(struct group_acc *g, int64_t start_ms)
{
	struct group_period *s0 = &g->slot[0], *s1 = &g->slot[1];

	if (s0->start_ms == start_ms)
		return s0;
	if (s1->start_ms == start_ms)
		return s1;
	if (s0->start_ms == VG_WINDOW_NONE) {
		s0->start_ms = start_ms;
		return s0;
	}
	if (start_ms > s0->start_ms && s1->start_ms == VG_WINDOW_NONE) {
		s1->start_ms = start_ms;
		return s1;
	}
	return NULL;
}

static int load_value(void *ctx, const char *alarm_id, int64_t start_ms,
		      const char *resource, double v)
{
	struct vg_alarm_engine *e = ctx;
	struct alarm *a = group_alarm(e, alarm_id);
	struct group_acc *g = a ? vg_alarm_gstate_get(a) : NULL;
	struct inst *in = a ? vg_hmap_get(&a->insts, "", 0) : NULL;
	struct group_period *p;

	if (!g || (in && in->ev.last_start_ms && start_ms <= in->ev.last_start_ms))
		return 0; /* decided before (its rows go at the next decision) */
	if (!(p = slot_for(g, start_ms)))
		return 0;
	/* what came from the database is there already */
	if (!vg_alarm_gstate_period_add(p, resource, v) && p->nsaved == p->nvals - 1)
		p->nsaved = p->nvals;
	return 0;
}

int vg_alarm_gstate_load(struct vg_alarm_engine *e, const char *alarm_id)
{
	return vg_alarm_store_gopen_load(e->store, alarm_id, load_member, load_value, e);
}

void vg_alarm_gstate_adopt(struct vg_alarm_engine *e, struct alarm *a)
{
	struct group_acc *g = vg_alarm_gstate_get(a);

	if (!g)
		return;
	changes_clear(g);
	g->resync = 1;
	g->drop_through_ms = g->slot[0].start_ms == VG_WINDOW_NONE ? INT64_MAX
								   : g->slot[0].start_ms - 1;
	g->slot[0].nsaved = g->slot[1].nsaved = 0;
	vg_alarm_gstate_mark(e, a);
}
