/*
 * engine_queue.c — the alarm engine's persistence queue: what is written
 * to alarms.db, when, and what is told after the write.
 *
 * Why. A decision (a transition, a repeat, a resource joining or leaving)
 * must survive a kill -9 exactly once: its history row, the instance's
 * state row (datapoints ring, so a restart never evaluates a period twice)
 * and one outbox row per webhook/exec/Alertmanager action commit in the
 * same transaction, or not at all. The delivery thread (outbox.c) only
 * sees committed rows, so a notification is delivered once whatever the
 * moment of the kill.
 *
 * Design. Evaluation never writes: it queues. `dirty` lists instances
 * whose state row must be rewritten (each at most once; a quiet step
 * is not, and a logged step is appended to the step log instead, see
 * below), `pend` the rows
 * to insert (history with an optional notification) or delete (state of
 * an instance that left). vg_alarm_queue_flush writes all of it in one
 * transaction; only after the commit are notifications published on SSE
 * and the log and the delivery thread woken. The PUB socket, live and
 * lossy by contract, gets each notification at its decision, before the
 * commit (engine_eval.c). A flush happens at the end of a batch or tick,
 * before any definition change (so the API reads what the engine
 * decided), and early, in the middle of a batch, when a notification
 * waits (vg_alarm_queue_commit_early, below).
 *
 * Early commits, and why exactly-once survives them. A batch of 1,000
 * samples used to commit its notifications after the last evaluation: a
 * webhook decided at the first sample waited for 999 more evaluations and
 * their state rows (~10 ms). Now, between two decisions, if a
 * notification is queued and has waited at least as long as the previous
 * early commit took (the first at once, at most 5 ms), everything queued
 * so far commits, and the batch's remaining evaluations go on after it.
 * Exactly-once rests on three facts that hold for any commit point taken
 * between two decisions:
 *  1. A decision and everything it implies are queued by one call of
 *     on_period/eval_composite before the next decision starts: the
 *     instance's state row (state, ring with the new period), its history
 *     row, one outbox row per action, and the aggregate's and composites'
 *     consequences. The early commit runs only after that call returns, so
 *     a commit holds whole decisions: an outbox row never commits without
 *     the state row that says its period was evaluated, nor the reverse.
 *  2. After a kill -9, the agent re-sends (or the sender repeats) every
 *     batch not acknowledged, and a batch is acknowledged only after the
 *     engine returned, i.e. after its last flush. Re-fed, a committed
 *     decision's period is refused by its instance (the persisted ring's
 *     newest period, vg_alarm_eval_push), so it is not notified again; an
 *     uncommitted decision was never delivered (the outbox reads only
 *     committed rows) and is decided again from the same data, once.
 *  3. Evaluations committed early but not yet acknowledged are exactly
 *     those of fact 2's first case: the state they wrote is what the
 *     re-sent data would rebuild, so committing them early changes no
 *     outcome, only its time.
 * What a kill between an early commit and the batch's end costs is only
 * that the rest of the batch is evaluated after the restart, as before.
 * The grouping (wait as long as the last commit took) keeps commits to
 * about half of a burst's time at most: a burst of 1,000 transitions is a
 * handful of transactions, not 1,000 fsyncs.
 *
 * Quiet steps, and why not writing them keeps restarts exact. Most
 * evaluations, most of the time, are quiet steps: an instance in ok (no
 * keep-firing clock, no periods in alarm) gets a good datapoint (real,
 * not breaching) for the period right after its newest, and stays ok
 * without a notification. Such a step changes nothing but the ring, and
 * rewriting the row for it every period was most of the engine's cost
 * (docs/benchmarks.md). So a quiet step is not written when the row last
 * committed for the instance is fillable (vg_alarm_eval_fillable: ok, no
 * keep-firing clock, no periods in alarm, a datapoint) and the instance
 * is not already queued; any other evaluation (a breaching or missing
 * datapoint, a gap, a transition, anything in alarm) is written as
 * before. The stored row then stands for "this, followed by good
 * datapoints up to the next one". What a restart or a takeover reads
 * back (engine_defs.c load_state: state, since, the keep-firing clock,
 * periods in alarm, the ring) is the uninterrupted engine's state except
 * for the ring's newest periods, which were all good datapoints of
 * consecutive periods. The restored instance, marked fill_quiet when its
 * row is fillable, appends a good datapoint for every period between the
 * stored newest and its next datapoint (vg_alarm_eval_fill_quiet) before
 * evaluating that one, so every later decision sees what the
 * uninterrupted engine saw: a verdict reads only whether each period in
 * the range has a real datapoint and whether it breaches (the breaching
 * ones of a pending M of N are in the stored ring: they were written).
 * Two facts make this exact:
 *  a. every evaluation between the stored row and the kill was a quiet
 *     step (any other is written, and commits with its batch before the
 *     batch is acknowledged), so the periods not written were good,
 *     consecutive, and changed nothing but the ring;
 *  b. the data resumes where the acknowledged data stopped (the agent
 *     re-sends what was not acknowledged; a new owner replays the
 *     periods it kept), so the periods between the stored row and the
 *     next datapoint are exactly the steps not written. A re-sent period
 *     the old engine had evaluated (a quiet step) is evaluated again,
 *     from the re-sent samples: with one sample per period the same
 *     value, so the same quiet step; with several, only the samples of
 *     the batches not acknowledged, as for the open period at any restart.
 * Where (b) does not hold — a series that had no data across the
 * restart, or more periods lost than a new owner keeps — the restored
 * instance takes the unseen periods as good datapoints, where it used to
 * take them as missing; neither matches an engine that ran through (its
 * timer would have closed them as missing one by one). The values filled
 * in are the stored ring's newest good value: a reason shows them until
 * they leave the range.
 *
 * Logged steps, and why the log keeps restarts exact. The next most
 * common evaluation is a step that changes nothing but the ring either:
 * from a fillable committed state, the datapoint of the period right
 * after the newest (breaching, or missing) leaves the state fillable
 * (ok, M of N not reached) without a notification. Rewriting the
 * instance's row for it cost a b-tree upsert and, over a batch, a WAL
 * page per row (about 4 µs a row; 900 of them per batch of 10,000 series
 * when 9 % of datapoints breach, docs/benchmarks.md). In a node's own
 * alarms.db (vg_alarm_store_local; never on a shared PostgreSQL store,
 * where another node may take the alarm over) such a step is appended to
 * the step log instead: one entry (alarm, resource, the log_base of the
 * row it follows, period, value, updated_ms), and one state_log row per
 * flush holding all of the flush's entries, in the flush's transaction.
 * At open (vg_alarm_queue_log_load) the entries are replayed in order
 * onto the instances restored from their rows: the quiet steps before
 * each are filled in as for a row (vg_alarm_eval_fill_quiet), its
 * datapoint pushed and decided again without notifying, which is what
 * the evaluation that logged it did (a decision reads the ring and the
 * state only, and the step left the state fillable, so the quiet-step
 * facts (a) and (b) above hold after it as after a row). An entry
 * applies only to the row it followed (its log_base; every row write
 * takes a new number, above wall ms x 1000 at open so numbers are never
 * reused across restarts) and only after that row's newest period, so an
 * entry made stale by a later row (any non-logged evaluation rewrites
 * the row, which then holds the entry's period) is skipped. The log is
 * compacted (every instance with entries rewritten and the log deleted,
 * in one transaction) at the first commit after an open that found
 * entries and whenever it holds LOG_MAX_ENTRIES; a failed commit keeps
 * the flush's entries in memory (at most LOG_MAX_BYTES: beyond, steps
 * are written as rows again) and retries them with the next flush.
 *
 * Invariants: pending entries own their strings; a failed commit keeps
 * everything queued and retries at the next flush; the queue is bounded
 * (VG_ALARM_MAX_PENDING, the oldest dropped and counted, logged once).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alarms/engine_queue.h"
#include "alarms/engine_gstate.h"
#include "alarms/group.h"
#include "alarms/notice.h"
#include "alarms/inhibit.h"
#include "alarms/quota.h"
#include "alarms/timewin.h"
#include "vigie/alarm_outbox.h"
#include "vigie/alarm_silence.h"
#include "vigie/log.h"

/* an early commit waits at most this long for company */
#define EARLY_WAIT_MAX_NS 5000000
/* the step log is compacted when it holds this many entries (about 60
 * bytes each: a few MB, replayed in well under a second at a restart) */
#define LOG_MAX_ENTRIES 100000
/* the entries of one flush kept in memory at most (the database failing
 * for long): beyond, steps are written as rows again */
#define LOG_MAX_BYTES (16u << 20)

/* ---- pending writes ------------------------------------------------------ */

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

struct pending *vg_alarm_queue_add(struct vg_alarm_engine *e)
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

struct pending *vg_alarm_queue_history(struct vg_alarm_engine *e, struct alarm *a,
				       const char *type, const char *resource, int64_t t,
				       json_t *detail)
{
	struct pending *p = vg_alarm_queue_add(e);

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

void vg_alarm_queue_mark_dirty(struct vg_alarm_engine *e, struct inst *in)
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

void vg_alarm_queue_forget(struct vg_alarm_engine *e, struct inst *in)
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
		.reason = in->reason_stale ? NULL : in->reason, /* rebuilt at load */
		.ring = ring,
		.ring_len = vg_alarm_eval_ring_pack(&in->ev, ring, sizeof(ring)),
		.updated_ms = in->updated_ms,
		.cooldown_ms = in->cooldown_last_ms,
		.log_base = ++e->log_base,
	};

	/* what the row will stand for once committed (see the top) */
	in->row_fillable_next = !in->a->def.group && vg_alarm_eval_fillable(&in->ev);
	in->row_base_next = row.log_base;
	e->st.state_writes++;
	return vg_alarm_store_put_state(e->store, &row);
}

/* Whether p's notification matches an active silence (at the wall
 * clock: a silence is about when people are told, not sample time) or is
 * over its project's notification rate; if so its history detail says
 * which, and nothing is notified. Decided
 * inside the transaction that would have written its outbox rows, so a
 * silenced notification is never delivered, across any crash. */
static void apply_silences(struct vg_alarm_engine *e, struct pending *p)
{
	struct vg_alarm_silence_subject sj = {0};
	struct alarm *a;
	struct res_info *r;
	char sid[40];
	const char *why = NULL;
	char by[VG_ALARM_NAME_MAX + 1], why_buf[VG_ALARM_NAME_MAX + 64];
	json_t *d;

	if (!e->silences || !p->body || p->silenced || p->test)
		return; /* a test was checked against the rate when asked */
	a = vg_hmap_gets(&e->alarms, p->alarm_id);
	r = p->resource ? vg_hmap_gets(&e->resources, p->resource) : NULL;
	sj.project = p->project;
	sj.resource = p->resource;
	sj.host = r ? r->host : NULL;
	sj.alarm = a ? a->def.name : NULL;
	sj.severity = a ? a->def.severity : -1;
	sj.def = a ? &a->def : NULL;
	if (vg_alarm_silences_match(e->silences, &sj, wall(e), sid)) {
		e->st.silenced++;
	} else if (a && vg_alarm_inhibited(e, a, p->resource, sj.host, by, sizeof(by))) {
		e->st.inhibited++;
		sid[0] = '\0';
		snprintf(why_buf, sizeof(why_buf), "inhibited by alarm '%s', which "
						   "is in alarm",
			 by);
		why = why_buf;
	} else if (a && !vg_alarm_timewin_inside(a->def.time_constraints, wall(e))) {
		e->st.outside_time++;
		sid[0] = '\0';
		why = "outside the alarm's time_constraints";
	} else if (vg_alarm_quota_take_notification(e, p->project, wall(e))) {
		e->st.rate_limited++;
		sid[0] = '\0';
		why = "rate limit: more than [alarms] max_notifications_per_minute "
		      "notifications of this project in the last minute";
	} else {
		return;
	}
	p->silenced = 1;
	d = p->detail ? json_loads(p->detail, 0, NULL) : json_object();
	if (d) {
		if (sid[0])
			json_object_set_new(d, "silenced_by", json_string(sid));
		else
			json_object_set_new(d, "suppressed", json_string(why));
		json_object_set_new(d, "notified", json_false());
		char *t = json_dumps(d, JSON_COMPACT | JSON_REAL_PRECISION(17));
		if (t) {
			free(p->detail);
			p->detail = t;
		}
		json_decref(d);
	}
}

/* ---- logged steps ---------------------------------------------------------- */

static void put64(unsigned char *p, int64_t v)
{
	memcpy(p, &v, 8);
}

static int64_t get64(const unsigned char *p)
{
	int64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* One entry: alarm id NUL resource NUL, then log_base, start_ms, end_ms,
 * the value's bits and updated_ms, 8 bytes each in this host's order (the
 * log is this node's own file). */
#define ENTRY_FIXED 40

int vg_alarm_queue_log_step(struct vg_alarm_engine *e, struct inst *in,
			    int64_t start_ms, int64_t end_ms, double v)
{
	size_t la = strlen(in->a->def.id) + 1, lr = strlen(in->resource) + 1;
	size_t need = e->nsteps_bytes + la + lr + ENTRY_FIXED;
	unsigned char *p;
	int64_t bits;

	/* a row from before the log (log_base 0, schema step 6) has no
	 * number an entry could follow: it is rewritten first */
	if (!e->log_on || e->cluster || !in->row_base || need > LOG_MAX_BYTES)
		return -ENOSPC;
	if (need > e->capsteps) {
		size_t cap = e->capsteps ? 2 * e->capsteps : 64 * 1024;
		while (cap < need)
			cap *= 2;
		if (!(p = realloc(e->steps, cap)))
			return -ENOMEM;
		e->steps = p;
		e->capsteps = cap;
	}
	p = e->steps + e->nsteps_bytes;
	memcpy(p, in->a->def.id, la);
	memcpy(p + la, in->resource, lr);
	p += la + lr;
	memcpy(&bits, &v, 8);
	put64(p, in->row_base);
	put64(p + 8, start_ms);
	put64(p + 16, end_ms);
	put64(p + 24, bits);
	put64(p + 32, in->updated_ms);
	e->nsteps_bytes = need;
	e->nsteps++;
	in->logged = 1;
	return 0;
}

/* Replay one entry onto its instance (at open): what the evaluation that
 * logged it did, without telling anyone. */
static void replay_entry(struct vg_alarm_engine *e, const char *alarm_id,
			 const char *resource, const unsigned char *p)
{
	struct alarm *a = vg_hmap_gets(&e->alarms, alarm_id);
	struct inst *in = a ? vg_hmap_gets(&a->insts, resource) : NULL;
	int64_t base = get64(p), start = get64(p + 8), end = get64(p + 16), bits;
	struct vg_alarm_decision d;
	double v;

	bits = get64(p + 24);
	memcpy(&v, &bits, 8);
	/* only onto the row it followed, and after that row's periods (a
	 * row rewritten since holds the entry's period already) */
	if (!in || a->def.group || !base || in->row_base != base || !in->ev.n ||
	    start <= in->ev.last_start_ms || !in->row_fillable)
		return;
	if (in->fill_quiet)
		vg_alarm_eval_fill_quiet(&a->params, &in->ev, start);
	if (vg_alarm_eval_push(&in->ev, start, v))
		return;
	vg_alarm_eval_decide(&a->params, &in->ev, end, &d, 0);
	json_decref(d.reason_data);
	in->reason_stale = 1;
	in->updated_ms = get64(p + 32);
	/* logged only when it left the state fillable: the periods after it
	 * up to the next datapoint were quiet steps again */
	in->fill_quiet = vg_alarm_eval_fillable(&in->ev);
	in->logged = 1;
	e->st.log_replayed++;
}

static int replay_row(void *ctx, const void *entries, size_t len)
{
	struct vg_alarm_engine *e = ctx;
	const unsigned char *p = entries, *end = p + len;

	while (p < end) {
		const unsigned char *a = p, *r, *z;
		if (!(z = memchr(a, 0, (size_t)(end - a))))
			break;
		r = z + 1;
		if (r >= end || !(z = memchr(r, 0, (size_t)(end - r))) ||
		    (size_t)(end - (z + 1)) < ENTRY_FIXED)
			break;
		replay_entry(e, (const char *)a, (const char *)r, z + 1);
		e->log_entries++;
		p = z + 1 + ENTRY_FIXED;
	}
	e->log_compact = 1; /* the first flush rewrites and clears */
	return 0;
}

int vg_alarm_queue_log_load(struct vg_alarm_engine *e)
{
	e->log_on = vg_alarm_store_local(e->store);
	if (!e->log_on)
		return 0;
	/* numbers never given before, across restarts (see the top) */
	if (e->log_base < wall(e) * 1000)
		e->log_base = wall(e) * 1000;
	return vg_alarm_store_log_load(e->store, replay_row, e);
}

/* Compaction: every instance with entries in the log gets its row
 * rewritten in this flush, and the log is cleared in the same
 * transaction. 0, or -ENOMEM if one could not be queued (the log is then
 * kept, and compacted at a later flush). */
static int log_compact_prepare(struct vg_alarm_engine *e)
{
	size_t pos = 0, ip;
	const struct vg_hmap_entry *s, *t;

	while ((s = vg_hmap_next(&e->alarms, &pos))) {
		struct alarm *a = s->value;
		ip = 0;
		while ((t = vg_hmap_next(&a->insts, &ip))) {
			struct inst *in = t->value;
			if (!in->logged)
				continue;
			vg_alarm_queue_mark_dirty(e, in);
			if (!in->dirty)
				return -ENOMEM;
		}
	}
	return 0;
}

/* Write dirty states and pending rows in one transaction; then publish. */
int vg_alarm_queue_flush(struct vg_alarm_engine *e)
{
	int rc, wake = 0, compact = 0;
	int64_t now = wall(e);

	if (e->log_on && e->log_entries + e->nsteps >=
				 (e->o.log_max_entries ? e->o.log_max_entries : LOG_MAX_ENTRIES))
		e->log_compact = 1;
	if (e->log_compact && !e->cluster)
		compact = !log_compact_prepare(e);
	if (!e->ndirty && !e->npend && !e->ngdirty && !e->nsteps && !compact &&
	    !vg_alarm_group_maybe_due(e, now))
		return 0;
	rc = vg_alarm_store_begin(e->store);
	if (!rc) /* clustered: only what this node still holds a lease on */
		rc = vg_alarm_own_fence(e);
	for (size_t i = 0; !rc && i < e->ndirty; i++)
		rc = write_state(e, e->dirty[i]);
	/* the rows just written hold every logged step: the log goes */
	if (!rc && compact)
		rc = vg_alarm_store_log_clear(e->store);
	else if (!rc && e->nsteps)
		rc = vg_alarm_store_log_add(e->store, e->steps, e->nsteps_bytes);
	for (size_t i = 0; !rc && i < e->npend; i++) {
		struct pending *p = &e->pend[i];
		if (p->kind == P_DELETE_STATE) {
			rc = vg_alarm_store_delete_state(e->store, p->alarm_id,
							 p->resource);
			continue;
		}
		apply_silences(e, p);
		rc = vg_alarm_store_history_add(e->store, p->alarm_id, p->project,
						p->type, p->resource, p->time_ms,
						wall(e), p->detail);
		/* the other nodes' SSE hubs read it (engine_own.c, the feed) */
		if (!rc && e->cluster && p->body && !p->silenced)
			rc = vg_alarm_store_notice_add(e->store, e->node, p->project,
						       p->body, wall(e));
		const struct alarm *a = p->body && !p->silenced
						? vg_hmap_gets(&e->alarms, p->alarm_id)
						: NULL;
		for (size_t k = 0; !rc && p->body && !p->silenced && k < p->nactions;
		     k++) {
			if (!p->test && vg_alarm_group_applies(a, p->actions[k])) {
				/* a member of its group instead of an outbox
				 * row: the group's flush writes one row */
				rc = vg_alarm_group_add(e, a, p, p->actions[k], now);
				if (!strncmp(p->actions[k], "log://", 6))
					p->log_grouped = 1;
				continue;
			}
			if (!strncmp(p->actions[k], "log://", 6))
				continue;
			rc = vg_alarm_store_outbox_add(e->store, p->notice_id,
						       p->alarm_id, p->project,
						       p->actions[k], p->body, wall(e));
			wake = 1;
		}
	}
	if (!rc) /* after the pending rows: a group's "" state deletion first */
		rc = vg_alarm_gstate_write(e);
	if (!rc)
		rc = vg_alarm_group_flush_due(e, now, &wake);
	if (!rc)
		rc = vg_alarm_store_commit(e->store);
	vg_alarm_group_after_commit(e, !rc);
	vg_alarm_gstate_after_commit(e, !rc);
	if (rc) {
		vg_alarm_store_rollback(e->store);
		e->st.store_errors++;
		vg_log_limited(VG_LOG_ERROR, &e->log_store,
			       "alarms: cannot write alarms.db (%s); %zu "
			       "changes kept in memory and retried",
			       vg_alarm_store_errmsg(e->store), e->npend + e->ndirty);
		return rc;
	}
	for (size_t i = 0; i < e->ndirty; i++) {
		struct inst *in = e->dirty[i];
		in->dirty = 0;
		in->row_fillable = in->row_fillable_next;
		in->row_base = in->row_base_next;
		in->logged = 0; /* its row holds what the log had */
	}
	e->ndirty = 0;
	if (compact) {
		e->log_entries = 0;
		e->log_compact = 0;
		e->st.log_compactions++;
	} else
		e->log_entries += e->nsteps;
	e->nsteps = e->nsteps_bytes = 0;
	e->st.log_entries = e->log_entries;
	for (size_t i = 0; i < e->npend; i++) {
		struct pending *p = &e->pend[i];
		if (p->body && !p->silenced) {
			vg_alarm_hub_publish(e->o.hub, p->project, "alarm", p->body);
			for (size_t k = 0; k < p->nactions; k++)
				if (!strncmp(p->actions[k], "log://", 6) &&
				    !p->log_grouped)
					vg_info("%s", p->log_line);
			e->st.notifications++;
		}
		pending_release(p);
	}
	e->npend = 0;
	e->notice_since_ns = 0;
	if (wake)
		vg_alarm_outbox_wake(e->outbox);
	return 0;
}

void vg_alarm_queue_delete_state(struct vg_alarm_engine *e, const char *alarm_id,
				 const char *resource)
{
	struct pending *p = vg_alarm_queue_add(e);

	if (!p)
		return;
	p->kind = P_DELETE_STATE;
	p->alarm_id = xstrdup(alarm_id);
	p->resource = xstrdup(resource);
}

void vg_alarm_queue_release(struct vg_alarm_engine *e)
{
	for (size_t i = 0; i < e->npend; i++)
		pending_release(&e->pend[i]);
	free(e->pend);
	free(e->dirty);
	free(e->gdirty);
	free(e->steps);
	e->steps = NULL;
	e->nsteps = e->nsteps_bytes = e->capsteps = 0;
	e->pend = NULL;
	e->dirty = NULL;
	e->gdirty = NULL;
	e->ngdirty = e->capgdirty = 0;
	e->npend = e->cappend = e->ndirty = e->capdirty = 0;
}

void vg_alarm_queue_noticed(struct vg_alarm_engine *e)
{
	if (!e->notice_since_ns)
		e->notice_since_ns = vg_monotonic_ns();
}

void vg_alarm_queue_commit_early(struct vg_alarm_engine *e)
{
	int64_t now;

	if (!e->notice_since_ns || e->early_off)
		return;
	now = vg_monotonic_ns();
	if (now - e->notice_since_ns < e->early_cost_ns)
		return;
	if (vg_alarm_queue_flush(e)) {
		e->early_off = 1;
		return;
	}
	e->early_cost_ns = vg_monotonic_ns() - now;
	if (e->early_cost_ns > EARLY_WAIT_MAX_NS)
		e->early_cost_ns = EARLY_WAIT_MAX_NS;
}

void vg_alarm_queue_batch_start(struct vg_alarm_engine *e)
{
	e->early_off = 0;
}

void vg_alarm_pending_release(struct pending *p)
{
	pending_release(p);
}
