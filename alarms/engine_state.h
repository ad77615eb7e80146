/*
 * vigie — the alarm engine's shared state (private to alarms/engine*.c).
 *
 * The engine is four files around this one set of structures, all under
 * the engine's one lock:
 *   engine.c        open, close, statistics (the composition of the three)
 *   engine_queue.c  the persistence queue: what is written to alarms.db,
 *                   when, and what is published after the commit
 *   engine_eval.c   evaluation: samples -> series -> periods -> instances
 *                   -> decisions, composites, the indexes behind them
 *   engine_defs.c   definitions: load, create, update, delete, enable,
 *                   read (the API's entry points)
 * beside them engine_own.c (clustered alarms: leases, takeover, fence)
 * and engine_gstate.c (group alarms' members and open periods, stored);
 * Dependencies point one way, through the headers beside them:
 *   engine_defs.h -> engine_eval.h -> engine_queue.h -> engine_state.h
 * (defs uses evaluation and the queue; evaluation uses the queue; the
 * queue knows only the structures). engine.c sits on top of all three.
 *
 * Nine maps index the state (e->...):
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
 * watchers, exact, metrics and deps are derived from `alarms` (rebuilt by
 * vg_alarm_reindex when `gen` moved), as are the list of enabled event
 * alarms (evalarms) and the count of group alarms; the others own what
 * they point to.
 *
 * Invariants: a binding points at a live instance when its series' gen
 * equals the engine's gen; an instance is in `dirty` at most once and is
 * removed from it before it is freed; pending entries own their strings.
 */
#ifndef VIGIE_ALARMS_ENGINE_STATE_H
#define VIGIE_ALARMS_ENGINE_STATE_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alarms/eval.h"
#include "alarms/series.h"
#include "vigie/alarm_engine.h"
#include "vigie/clock.h"
#include "vigie/hmap.h"

#define COMPOSITE_DEPTH 16

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
	char *resource; /* "" for a composite */
	struct vg_alarm_eval ev;
	char reason[VG_ALARM_REASON_MAX];
	int reason_stale; /* reason is the ring's: rebuild on read */
	int dirty;
	/* quiet steps (engine_queue.c): the row last committed for this
	 * instance is fillable (vg_alarm_eval_fillable), so a quiet step is
	 * not written; row_fillable_next is what the flush being written
	 * stores. fill_quiet: restored from a fillable row and nothing
	 * pushed since, so the periods before the next datapoint are quiet
	 * steps that were not written (vg_alarm_eval_fill_quiet). */
	int row_fillable, row_fillable_next, fill_quiet;
	/* the step log (engine_queue.c, logged steps): the log_base of the
	 * row last committed for this instance (and of the one being
	 * written), and whether the log holds entries after that row */
	int64_t row_base, row_base_next;
	int logged;
	int64_t updated_ms;
	int silent;               /* event alarm: an agent_silent instance */
	int64_t cooldown_last_ms; /* last alarm notification (cooldown) */
	/* clustered alarms (engine_own.c): the datapoints of the latest
	 * closed periods while another node owns the alarm, oldest first
	 * from shadow_head, replayed at a takeover; NULL until the first */
	struct shadow_dp *shadow;
	uint32_t nshadow, shadow_head;
};

/* A closed period's value kept by a node that does not own the alarm
 * (for a group alarm also how many members there were, reported and had
 * a value: the notification says so when the period is decided). */
struct shadow_dp {
	int64_t start_ms, end_ms;
	double v;
	uint32_t members, reported, used;
};

/* Datapoints kept per instance while not owned: the takeover needs those
 * since the previous owner's last commit, at most 2 x lease + a period;
 * 16 periods of 10 s is well over 2 x 10 s, for 512 bytes an instance. */
#define VG_ALARM_SHADOW_MAX 16

/* One open period of a group alarm: the values of the members that
 * reported for it (NaN: a member whose own datapoint was missing), each
 * member once. */
struct group_period {
	int64_t start_ms; /* VG_WINDOW_NONE: slot unused */
	double *vals;
	char **who;          /* the member of each value (owned) */
	struct vg_hmap seen; /* who[i] -> (void *)1, keys borrowed from who */
	size_t nvals, capvals;
	size_t nsaved; /* vals[0, nsaved) are in the database */
};

/* A change of a group's members not yet written (engine_gstate.c). */
struct group_change {
	char *id;
	int join; /* 1 joined, 0 left */
};

/* A group alarm's open periods: the oldest (slot[0]) and the next, so a
 * member a period ahead of the others does not close the older period
 * early. slot[0] is combined and evaluated when every member reported for
 * it, when a datapoint comes for a period after slot[1], or when the
 * members' data clock is two intervals past its end. The members and the
 * open periods' values are also in the database (engine_gstate.c), so a
 * restart or a takeover goes on with them. */
struct group_acc {
	struct group_period slot[2];
	struct vg_hmap members;     /* resource id -> (void *)1 */
	int64_t clock_ms, grace_ms; /* newest data clock of its members */
	uint64_t late;              /* datapoints after their period closed */
	/* not yet in the database (engine_gstate.c): member changes in
	 * order, or all of them (resync); closed periods' rows to delete
	 * (through this start; VG_WINDOW_NONE none) */
	struct group_change *chg;
	size_t nchg, capchg;
	int resync;
	int64_t drop_through_ms;
	int dirty; /* in e->gdirty */
};

struct alarm {
	struct vg_alarm_def def;
	struct vg_alarm_params params;
	struct vg_alarm_rule *rule;
	struct vg_hmap insts; /* resource -> inst */
	int agg;
	uint64_t seq; /* notifications sent */
	int owned;    /* clustered: this node holds its lease (engine_own.c) */
	int visit;
	struct group_acc *grp; /* group alarms only */
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

/* A host's data clock, and the batches of its agent this node did not
 * see: the agent numbers them (stream, seq), so a batch whose seq skips
 * some tells that the host sent data meanwhile which reached another
 * collector and not this one (lost on the metric stream, e.g. while a
 * peer restarted and this node was not yet subscribed to it). The
 * periods of that interval, unseen_from_ms (exclusive: the poll time of
 * the last batch seen before the skip) to unseen_to_ms (exclusive: the
 * poll time of the batch after it), are unknown here, not missing: one
 * that closes empty is left out (engine_eval.c, on_period). */
struct host_clock {
	int64_t data_ms, wall_ms;
	uint64_t stream, seq;   /* the newest batch seen */
	int64_t seq_time_ms;    /* its poll time */
	int64_t unseen_from_ms; /* the last interval of unseen batches, */
	int64_t unseen_to_ms;   /* empty when from >= to */
	int agent;              /* an agent's batch came: only agents move it */
};

enum pend_kind { P_HISTORY,
		 P_DELETE_STATE };

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
	int silenced;    /* matched a silence at the flush: not notified */
	int log_grouped; /* its log:// line goes out with its group */
	int test;        /* a test notification: sent alone, never silenced */
};

struct vg_alarm_engine {
	struct vg_alarm_engine_options o;
	struct vg_alarm_exec_cmd exec[VG_EXEC_MAX];
	const char *exec_names[VG_EXEC_MAX];
	char *am_url;
	pthread_mutex_t lock;
	struct vg_alarm_store *store;
	struct vg_alarm_outbox *outbox;
	struct vg_alarm_silences *silences; /* alarms/silence.c; own lock */
	struct vg_hmap quota_buckets;       /* alarms/quota.c: project -> bucket */
	struct vg_hmap inhib;               /* alarms/inhibit.c: name -> inhibitors */
	/* ids of alarms whose webhooks are not fenced (an administrator's),
	 * under its own lock: the delivery thread asks per attempt and must
	 * never wait for e->lock (held through a whole batch) */
	pthread_mutex_t unfenced_lock;
	struct vg_hmap unfenced;
	uint64_t inhib_gen; /* gen the index was built at */
	struct vg_hmap alarms, names, watchers, exact, metrics, deps, series,
		resources, hosts;
	uint64_t gen, indexed_gen;
	size_t ngroups;       /* enabled group alarms (expire_all) */
	struct list evalarms; /* enabled event alarms (derived) */
	struct inst **dirty;
	size_t ndirty, capdirty;
	struct pending *pend;
	size_t npend, cappend;
	/* the step log (engine_queue.c): on for a node's own alarms.db;
	 * the entries of the flush being prepared; entries committed since
	 * the last compaction; compact at the next flush; the last log_base
	 * given to a row */
	int log_on, log_compact;
	unsigned char *steps;
	size_t nsteps_bytes, capsteps, nsteps;
	uint64_t log_entries;
	int64_t log_base;
	int64_t last_expire_ms, last_prune_ms;
	struct vg_alarm_engine_stats st;
	uint64_t log_store, log_dropped;
	/* early commits (vg_alarm_queue_commit_early): when the oldest
	 * uncommitted notification was decided (0: none), what the last
	 * early commit took, and whether one failed in this batch */
	int64_t notice_since_ns, early_cost_ns;
	int early_off;
	/* group alarms whose members or open periods are to be written
	 * (engine_gstate.c) */
	struct alarm **gdirty;
	size_t ngdirty, capgdirty;
	/* clustered alarms (engine_own.c): evaluate only owned alarms */
	int cluster;
	char node[128];
	int64_t refreshed_ms; /* others' states read up to (wall) */
	/* the notifications other nodes published (engine_own.c, the
	 * feed): rows of transactions older than feed_xmin were all read;
	 * feed_seen holds the seqs (value: their xid) read at or after it */
	uint64_t feed_xmin;
	int feed_started;
	int64_t feed_pruned_ms;
	struct vg_hmap feed_seen;
	uint64_t log_feed;
	uint64_t log_adopt; /* takeovers whose stored state could not be read */
	uint64_t log_unseen;
	void (*on_create)(void *ctx); /* after an alarm is created (unlocked) */
	void *on_create_ctx;
	/* scratch for the current batch */
	const char *cur_host;
	/* grouped notifications (alarms/group.c): the earliest flush time a
	 * group may have (0: none), and the log lines of groups flushed in
	 * the transaction being written (printed after its commit) */
	int64_t group_next_ms, group_checked_ms;
	char *group_logs[64];
	size_t ngroup_logs;
};

/* Whether this node decides for alarm a: always, unless clustered and
 * another node holds its lease. */
static inline int vg_alarm_owned(const struct vg_alarm_engine *e,
				 const struct alarm *a)
{
	return !e->cluster || a->owned;
}

/* Record (on = 1) or forget alarm id as unfenced (engine.c). */
void vg_alarm_unfenced_set(struct vg_alarm_engine *e, const char *id, int on);

static inline int64_t wall(struct vg_alarm_engine *e)
{
	return e->o.now_ms ? e->o.now_ms() : vg_now_ms();
}

static inline char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static inline int str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* key = a NUL b, in buf; returns length or 0 if it does not fit. */
static inline size_t key2(char *buf, size_t len, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la + lb + 2 > len)
		return 0;
	memcpy(buf, a, la);
	buf[la] = '\0';
	memcpy(buf + la + 1, b, lb + 1);
	return la + 1 + lb;
}

/* The reason of the instance's latest evaluation, rebuilt from its ring
 * when the hot path skipped the text (vg_alarm_eval_decide). */
static inline const char *vg_alarm_inst_reason(struct inst *in)
{
	if (in->reason_stale) {
		vg_alarm_eval_reason(&in->a->params, &in->ev, in->reason,
				     sizeof(in->reason));
		in->reason_stale = 0;
	}
	return in->reason;
}

#endif
