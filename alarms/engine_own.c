/*
 * engine_own.c — clustered alarms in the engine: which alarms this node
 * decides for, what it keeps for the others, and the fence on its writes
 * (vigie/alarm_lease.h has the lease design, docs/alarms.md "Clustered
 * alarms" the operator's view).
 *
 * Every collector of a cluster receives every sample (its agents' through
 * the dispatch, its peers' through the metric stream, vigie/cluster.h), so
 * every engine keeps every series' windows warm. What differs is who
 * decides: a closed period of an alarm this node owns is evaluated as on
 * a single collector; one of an alarm another node owns is kept in the
 * instance's shadow ring (the last VG_ALARM_SHADOW_MAX periods) and
 * nothing is decided, stored or notified for it.
 *
 * Takeover (vg_alarm_engine_own sees a lease newly held): the alarm's
 * stored states are loaded over the ones in memory (state, since,
 * keep-firing clear_since, M-of-N counts and the ring of the last
 * datapoints, as the previous owner committed them with its last
 * decision), then the shadow is replayed in order. A period the previous
 * owner evaluated is in the loaded ring and skipped (vg_alarm_eval_push
 * refuses a period not after the ring's newest), one it did not is
 * evaluated now: so no transition is missed or doubled across the
 * handover, however long the owner took to die.
 *
 * Fence: the flush's transaction first checks, for every alarm it would
 * record a state or history row for, that this node still holds the lease
 * by the database's clock, locking the lease row until the commit
 * (vg_alarm_store_leases_held). Rows of an alarm whose lease is gone are
 * dropped and the alarm stops being owned, so a node that stalled past
 * its lease cannot notify what the new owner decides.
 *
 * The others' alarms: at each round the definitions are synchronised
 * with the round's list (created, changed or deleted on another
 * collector), and the alarms with a transition recorded since the last
 * round are read again (what this node's API shows; a composite owned
 * here whose operand changed elsewhere is re-evaluated then).
 *
 * Not carried over: a group alarm's open periods and an alarm's cooldown
 * clock are in memory only (as across a restart).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alarms/engine_defs.h"
#include "alarms/engine_eval.h"
#include "alarms/engine_queue.h"
#include "vigie/log.h"

/* Clock difference between collectors tolerated when reading the states
 * other nodes wrote since the last refresh. */
#define REFRESH_MARGIN_MS 60000

/* vg_alarm_engine_own's view of a round's alarm: listed, and held */
#define KNOWN ((void *)1)
#define HELD_LEASE ((void *)2)

void vg_alarm_shadow_push(struct vg_alarm_engine *e, struct inst *in,
			  int64_t start_ms, int64_t end_ms, double v)
{
	struct shadow_dp *d;

	if (!in->shadow &&
	    !(in->shadow = calloc(VG_ALARM_SHADOW_MAX, sizeof(*in->shadow))))
		return;
	if (in->nshadow == VG_ALARM_SHADOW_MAX) {
		/* the oldest goes: its owner is alive and evaluated it */
		in->shadow_head = (in->shadow_head + 1) % VG_ALARM_SHADOW_MAX;
		in->nshadow--;
		e->st.shadow_dropped++;
	}
	d = &in->shadow[(in->shadow_head + in->nshadow) % VG_ALARM_SHADOW_MAX];
	d->start_ms = start_ms;
	d->end_ms = end_ms;
	d->v = v;
	in->nshadow++;
}

static void shadow_clear(struct inst *in)
{
	free(in->shadow);
	in->shadow = NULL;
	in->nshadow = in->shadow_head = 0;
}

void vg_alarm_engine_cluster(struct vg_alarm_engine *e, const char *node)
{
	size_t pos = 0;
	const struct vg_hmap_entry *s;

	pthread_mutex_lock(&e->lock);
	e->cluster = 1;
	snprintf(e->node, sizeof(e->node), "%s", node);
	while ((s = vg_hmap_next(&e->alarms, &pos)))
		((struct alarm *)s->value)->owned = 0;
	pthread_mutex_unlock(&e->lock);
}

void vg_alarm_engine_on_create(struct vg_alarm_engine *e, void (*fn)(void *ctx),
			       void *ctx)
{
	pthread_mutex_lock(&e->lock);
	e->on_create = fn;
	e->on_create_ctx = ctx;
	pthread_mutex_unlock(&e->lock);
}

/* This node now holds a's lease: the stored states, then the shadow. */
static void adopt(struct vg_alarm_engine *e, struct alarm *a)
{
	size_t pos = 0;
	const struct vg_hmap_entry *s;
	int rc;

	if ((rc = vg_alarm_defs_load_states(e, a->def.id)))
		vg_warn("alarms: taking over %s/%s: its stored state could not "
			"be read (%s); going on from this node's",
			a->def.project, a->def.name, vg_alarm_store_errmsg(e->store));
	a->owned = 1;
	e->st.takeovers++;
	a->agg = vg_alarm_aggregate(a);
	while ((s = vg_hmap_next(&a->insts, &pos))) {
		struct inst *in = s->value;
		for (uint32_t k = 0; k < in->nshadow; k++) {
			struct shadow_dp *d =
				&in->shadow[(in->shadow_head + k) % VG_ALARM_SHADOW_MAX];
			vg_alarm_inst_datapoint(e, in, d->start_ms, d->end_ms, d->v);
		}
		shadow_clear(in);
	}
	vg_debug("alarms: this node now evaluates %s/%s", a->def.project, a->def.name);
}

static void disown(struct alarm *a)
{
	size_t pos = 0;
	const struct vg_hmap_entry *s;

	a->owned = 0;
	while ((s = vg_hmap_next(&a->insts, &pos)))
		shadow_clear(s->value);
}

void vg_alarm_engine_own(struct vg_alarm_engine *e,
			 const struct vg_alarm_lease_item *items, size_t n)
{
	struct vg_hmap held;
	size_t pos = 0;
	const struct vg_hmap_entry *s;
	int loaded = 0;

	vg_hmap_init(&held);
	pthread_mutex_lock(&e->lock);
	vg_alarm_queue_batch_start(e);
	vg_alarm_queue_flush(e); /* nothing queued for an alarm dropped below */
	for (size_t i = 0; i < n; i++) {
		struct alarm *a = vg_hmap_gets(&e->alarms, items[i].id);
		/* changed on another collector: read again (its instances
		 * start from the stored states, as at a restart) */
		if (a && a->def.updated_ms != items[i].updated_ms) {
			vg_alarm_defs_forget(e, a);
			a = NULL;
		}
		/* created on another collector */
		if (!a) {
			if (vg_alarm_defs_load_one(e, items[i].id))
				continue;
			loaded = 1;
		}
		vg_hmap_put(&held, items[i].id, strlen(items[i].id),
			    items[i].held ? HELD_LEASE : KNOWN, NULL);
	}
	/* deleted on another collector: gone from the list. One created here
	 * after the round listed the alarms is not yet in it: spared for a
	 * minute. */
	while ((s = vg_hmap_next(&e->alarms, &pos))) {
		struct alarm *a = s->value;
		if (!vg_hmap_gets(&held, a->def.id) &&
		    a->def.created_ms < wall(e) - REFRESH_MARGIN_MS) {
			vg_alarm_defs_forget(e, a);
			loaded = 1;
			pos = 0; /* the map changed: start over */
		}
	}
	if (loaded)
		vg_alarm_reindex(e);
	pos = 0;
	while ((s = vg_hmap_next(&e->alarms, &pos))) {
		struct alarm *a = s->value;
		int want = vg_hmap_gets(&held, a->def.id) == HELD_LEASE;
		if (want && !a->owned)
			adopt(e, a);
		else if (!want && a->owned)
			disown(a);
	}
	/* what the other owners decided, for this node's API and its
	 * composites: alarms with a transition since the last refresh, less
	 * a margin for the writers' clocks (history rows carry their wall
	 * time) */
	{
		int64_t now = wall(e);
		if (!vg_alarm_defs_refresh_unowned(e, e->refreshed_ms - REFRESH_MARGIN_MS))
			e->refreshed_ms = now;
	}
	vg_alarm_queue_flush(e); /* what the replays and composites decided */
	pthread_mutex_unlock(&e->lock);
	vg_hmap_release(&held);
}

void vg_alarm_engine_disown_all(struct vg_alarm_engine *e)
{
	size_t pos = 0;
	const struct vg_hmap_entry *s;

	pthread_mutex_lock(&e->lock);
	while ((s = vg_hmap_next(&e->alarms, &pos)))
		if (((struct alarm *)s->value)->owned)
			disown(s->value);
	pthread_mutex_unlock(&e->lock);
}

/* The fence's verdicts, per alarm id of one flush: ASKED (owned here,
 * its lease is checked), HELD (the database says it is still ours), LOST
 * (it is not: logged and disowned once). */
#define ASKED ((void *)1)
#define HELD ((void *)2)
#define LOST ((void *)3)

static void ask(struct vg_alarm_engine *e, struct vg_hmap *cache, char **csv,
		size_t *len, size_t *cap, const char *id)
{
	struct alarm *a = vg_hmap_gets(&e->alarms, id);
	size_t n = strlen(id);

	if (!a || !a->owned || vg_hmap_gets(cache, id))
		return;
	if (*len + n + 2 > *cap) {
		size_t c = (*cap ? *cap * 2 : 1024) + n;
		char *m = realloc(*csv, c);
		if (!m)
			return; /* not asked: treated as lost, retried later */
		*csv = m;
		*cap = c;
	}
	if (*len)
		(*csv)[(*len)++] = ',';
	memcpy(*csv + *len, id, n + 1);
	*len += n;
	vg_hmap_put(cache, id, n, ASKED, NULL);
}

static int mark_held(void *ctx, const char *id)
{
	struct vg_hmap *cache = ctx;

	if (vg_hmap_gets(cache, id))
		vg_hmap_put(cache, id, strlen(id), HELD, NULL);
	return 0;
}

/* 1: this node may record for alarm id; 0: it may not. */
static int may_write(struct vg_alarm_engine *e, struct vg_hmap *cache,
		     const char *id)
{
	struct alarm *a = vg_hmap_gets(&e->alarms, id);
	void *v;

	if (!a)
		return 1; /* deleted meanwhile: the history stays, as alone */
	if (!a->owned)
		return 0;
	v = vg_hmap_gets(cache, id);
	if (v == HELD)
		return 1;
	if (v != LOST) {
		vg_warn("alarms: lease of %s/%s lost (another collector took "
			"it over): its pending decisions are dropped",
			a->def.project, a->def.name);
		disown(a);
		e->st.fenced++;
		vg_hmap_put(cache, id, strlen(id), LOST, NULL);
	}
	return 0;
}

int vg_alarm_own_fence(struct vg_alarm_engine *e)
{
	struct vg_hmap cache;
	char *csv = NULL;
	size_t len = 0, cap = 0, j = 0;
	int rc = 0;

	if (!e->cluster)
		return 0;
	vg_hmap_init(&cache);
	/* one statement for every alarm this flush records for */
	for (size_t i = 0; i < e->ndirty; i++)
		ask(e, &cache, &csv, &len, &cap, e->dirty[i]->a->def.id);
	for (size_t i = 0; i < e->npend; i++)
		if (e->pend[i].kind == P_HISTORY && e->pend[i].alarm_id)
			ask(e, &cache, &csv, &len, &cap, e->pend[i].alarm_id);
	if (len && (rc = vg_alarm_store_leases_held(e->store, e->node, csv,
						    mark_held, &cache)) < 0)
		goto out; /* nothing dropped: the flush is retried */
	for (size_t i = 0; i < e->ndirty; i++) {
		struct inst *in = e->dirty[i];
		if (may_write(e, &cache, in->a->def.id))
			e->dirty[j++] = in;
		else
			in->dirty = 0;
	}
	e->ndirty = j;
	j = 0;
	for (size_t i = 0; i < e->npend; i++) {
		struct pending *p = &e->pend[i];
		if (p->kind == P_HISTORY && p->alarm_id && !may_write(e, &cache, p->alarm_id)) {
			vg_alarm_pending_release(p);
			continue;
		}
		if (j != i)
			e->pend[j] = *p;
		j++;
	}
	e->npend = j;
	rc = 0;
out:
	free(csv);
	vg_hmap_release(&cache);
	return rc;
}
