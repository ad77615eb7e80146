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
 * handover, however long the owner took to die. A fillable stored state
 * stands for the quiet steps the old owner did not write after it
 * (engine_queue.c): the first replayed period after the ring's newest is
 * preceded by good datapoints (vg_alarm_eval_fill_quiet), and the quiet
 * steps the old owner had evaluated are evaluated again from the kept
 * values, quietly, as it did. The stored states are read before the
 * alarm is owned: a read lost at a server's restart is made again (the
 * store's reads retry once), and when they still cannot be read the
 * alarm stays unowned, its periods kept in the shadow, until a round
 * reads them; going on from this node's own windows instead would miss
 * or double what the previous owner had pending.
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
 * The others' notifications on this node's SSE hub (the feed): the
 * flush that records a decision also writes, in the same transaction,
 * the SSE body this node publishes (peer_notices: writing node, project,
 * body, the transaction's id). At each round, before taking anything
 * over, a node publishes on its hub the rows other nodes wrote that it
 * has not published yet, in seq order. A row's seq is taken at its
 * insert, not at its commit, so "seq > the last one read" would miss a
 * row whose transaction commits after a higher seq's: instead the round
 * first asks for the oldest transaction still running (xmin: every row
 * of an older one is final), then reads the rows of transactions at or
 * after the previous round's xmin, skips those already published (kept
 * in feed_seen until their transaction falls below xmin) and moves the
 * cursor to the new xmin. So each committed row is published once, at
 * the first round after its commit (at most a third of a lease later).
 * Per alarm the order is the owners' commit order: one owner's flushes
 * follow each other, and a new owner's claim waits for the old owner's
 * fenced commit, so its rows are visible to the round that adopts the
 * alarm, which publishes them before the new owner's own decisions. The
 * first round only marks what is already there: a hub starts with the
 * events from its start on. Rows are deleted an hour after they were
 * written (FEED_KEEP_MS); a transaction left open (xmin held back) only
 * makes rounds re-read more rows, up to FEED_SEEN_MAX kept seqs.
 *
 * Group alarms: every node combines the members' datapoints into the
 * open periods (the stream brings them all), but a node that does not
 * own the alarm keeps each closed period's value in the "" instance's
 * shadow instead of deciding it, replayed at a takeover like any other.
 * At the takeover the stored members and open periods are merged into
 * this node's and its own are written (engine_gstate.c). The cooldown's
 * clock is in the state row, loaded with the state.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alarms/engine_defs.h"
#include "alarms/engine_eval.h"
#include "alarms/engine_gstate.h"
#include "alarms/engine_queue.h"
#include "vigie/log.h"

/* Clock difference between collectors tolerated when reading the states
 * other nodes wrote since the last refresh. */
#define REFRESH_MARGIN_MS 60000

/* the feed: rows read per query, seqs kept at most, rows kept this long */
#define FEED_PAGE 1000
#define FEED_SEEN_MAX 100000
#define FEED_KEEP_MS (3600 * 1000)

/* vg_alarm_engine_own's view of a round's alarm: listed, and held */
#define KNOWN ((void *)1)
#define HELD_LEASE ((void *)2)

struct shadow_dp *vg_alarm_shadow_push(struct vg_alarm_engine *e, struct inst *in,
				       int64_t start_ms, int64_t end_ms, double v)
{
	struct shadow_dp *d;

	if (!in->shadow &&
	    !(in->shadow = calloc(VG_ALARM_SHADOW_MAX, sizeof(*in->shadow))))
		return NULL;
	if (in->nshadow == VG_ALARM_SHADOW_MAX) {
		/* the oldest goes: its owner is alive and evaluated it */
		in->shadow_head = (in->shadow_head + 1) % VG_ALARM_SHADOW_MAX;
		in->nshadow--;
		e->st.shadow_dropped++;
	}
	d = &in->shadow[(in->shadow_head + in->nshadow) % VG_ALARM_SHADOW_MAX];
	*d = (struct shadow_dp){.start_ms = start_ms, .end_ms = end_ms, .v = v};
	in->nshadow++;
	return d;
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

/* This node now holds a's lease: the stored states, then the shadow.
 * When they cannot be read (the store's reads already ran once more on a
 * connection lost at a server's restart), a stays unowned: its closed
 * periods go on into the shadow and the next round adopts it, from the
 * stored state, instead of going on now from this node's. */
static void adopt(struct vg_alarm_engine *e, struct alarm *a)
{
	size_t pos = 0;
	const struct vg_hmap_entry *s;
	int rc;

	/* what another owner stored is unknown until read: written in full
	 * until a fillable row is read back (engine_queue.c, quiet steps) */
	while ((s = vg_hmap_next(&a->insts, &pos))) {
		struct inst *in = s->value;
		in->row_fillable = in->fill_quiet = 0;
	}
	pos = 0;
	if ((rc = vg_alarm_defs_load_states(e, a->def.id)) ||
	    (a->def.group && (rc = vg_alarm_gstate_load(e, a->def.id)))) {
		e->st.store_errors++;
		vg_log_limited(VG_LOG_WARN, &e->log_adopt,
			       "alarms: taking over %s/%s: its stored state could "
			       "not be read (%s); taken over at the next round, its "
			       "periods kept until then",
			       a->def.project, a->def.name,
			       vg_alarm_store_errmsg(e->store));
		return;
	}
	a->owned = 1;
	e->st.takeovers++;
	a->agg = vg_alarm_aggregate(a);
	while ((s = vg_hmap_next(&a->insts, &pos))) {
		struct inst *in = s->value;
		for (uint32_t k = 0; k < in->nshadow; k++) {
			struct shadow_dp *d =
				&in->shadow[(in->shadow_head + k) % VG_ALARM_SHADOW_MAX];
			if (a->def.group)
				vg_alarm_group_datapoint(e, in, d);
			else
				vg_alarm_inst_datapoint(e, in, d->start_ms, d->end_ms, d->v);
		}
		shadow_clear(in);
	}
	if (a->def.group) /* what the stream brought and the old owner did not store */
		vg_alarm_gstate_adopt(e, a);
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

struct feed_ctx {
	struct vg_alarm_engine *e;
	int64_t last_seq;
	size_t n;
	int publish;
};

static int feed_one(void *ctx, int64_t seq, uint64_t xid, const char *project,
		    const char *body)
{
	struct feed_ctx *c = ctx;
	struct vg_alarm_engine *e = c->e;
	char k[24];
	int n = snprintf(k, sizeof(k), "%lld", (long long)seq);

	c->last_seq = seq;
	c->n++;
	if (vg_hmap_get(&e->feed_seen, k, (size_t)n))
		return 0; /* published at an earlier round */
	if (vg_hmap_count(&e->feed_seen) >= FEED_SEEN_MAX ||
	    vg_hmap_put(&e->feed_seen, k, (size_t)n, (void *)(uintptr_t)(xid + 1), NULL)) {
		/* not published (so never twice); read again next round */
		vg_log_limited(VG_LOG_WARN, &e->log_feed,
			       "alarms: more than %d other nodes' notifications "
			       "wait for an open transaction to end; SSE is late",
			       FEED_SEEN_MAX);
		return 0;
	}
	if (c->publish && body) {
		vg_alarm_hub_publish(e->o.hub, project, "alarm", body);
		e->st.peer_notices++;
	}
	return 0;
}

/* The feed's round (see the top). */
static void feed_round(struct vg_alarm_engine *e)
{
	struct feed_ctx c = {.e = e, .publish = e->feed_started};
	struct vg_hmap keep;
	size_t pos = 0;
	const struct vg_hmap_entry *s;
	uint64_t xmin;
	int rc;

	if (!e->o.hub)
		return;
	if ((rc = vg_alarm_store_notices_xmin(e->store, &xmin)))
		goto fail;
	if (!e->feed_started)
		e->feed_xmin = xmin;
	do {
		c.n = 0;
		rc = vg_alarm_store_notices_since(e->store, e->node, e->feed_xmin,
						  c.last_seq, FEED_PAGE, feed_one, &c);
	} while (!rc && c.n == FEED_PAGE);
	if (rc)
		goto fail;
	e->feed_started = 1;
	if (xmin > e->feed_xmin)
		e->feed_xmin = xmin;
	/* forget the seqs of transactions below the cursor */
	vg_hmap_init(&keep);
	while ((s = vg_hmap_next(&e->feed_seen, &pos)))
		if ((uint64_t)(uintptr_t)s->value - 1 >= e->feed_xmin)
			vg_hmap_put(&keep, s->key, s->klen, s->value, NULL);
	vg_hmap_release(&e->feed_seen);
	e->feed_seen = keep;
	if (wall(e) - e->feed_pruned_ms >= FEED_KEEP_MS / 60) {
		if (!vg_alarm_store_notices_prune(e->store, wall(e) - FEED_KEEP_MS))
			e->feed_pruned_ms = wall(e);
	}
	return;
fail:
	vg_log_limited(VG_LOG_WARN, &e->log_feed,
		       "alarms: cannot read the other nodes' notifications (%s); "
		       "their SSE events wait for the next round",
		       vg_alarm_store_errmsg(e->store));
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
	/* before any takeover: an old owner's last notifications go out
	 * before this node's first ones for the alarm */
	feed_round(e);
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
		e->st.leases_taken += items[i].taken != 0;
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
	for (size_t i = 0; i < e->ngdirty; i++)
		ask(e, &cache, &csv, &len, &cap, e->gdirty[i]->def.id);
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
	j = 0;
	for (size_t i = 0; i < e->ngdirty; i++) {
		struct alarm *a = e->gdirty[i];
		if (may_write(e, &cache, a->def.id))
			e->gdirty[j++] = a;
		else
			a->grp->dirty = 0; /* the new owner writes them */
	}
	e->ngdirty = j;
	rc = 0;
out:
	free(csv);
	vg_hmap_release(&cache);
	return rc;
}
