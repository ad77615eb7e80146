/*
 * store.c — the RRD store: the series table, the write-behind cache and its
 * flusher thread, and the policy that ties the journal to the backend
 * (include/vigie/store.h; docs/benchmarks.md "Why the store is shaped this way").
 *
 * Why. An RRD engine pays per call far more than per value (librrd ~20 us
 * per rrd_update_r call, ~0.4 us per value in it), so the store gives each
 * call many timestamps of one series, as rrdcached does, and makes the
 * acknowledgement true in between with a journal.
 *
 * Design. Three parts, dependencies pointing one way:
 *   store.c            series table, cache, flusher, journal policy
 *     -> journal.c     segments of batch records, append + fdatasync,
 *                      replay to a callback; knows nothing of the store
 *     -> backend.h     the RRD engine as a table of operations; files
 *                      (backend_files.c: librrd files + header undo) now
 *
 *   receiver thread                        storage thread (flusher)
 *   vg_store_write_batch(b)                loop: oldest dirty series with
 *     look up / create each series            >= flush_depth values, or
 *     skip duplicates (t <= last)             older than FLUSH_MAX_AGE_MS,
 *     journal append + fdatasync              or the cache over half full,
 *     append (t, v) to the series' cache      or the receiver idle:
 *     return 0  => the agent gets its ack     copy its values out, give
 *                                             them to the backend in one call
 *
 * The cache is bounded ([storage] cache_values and flush_depth set the
 * bound and the depth): a batch that would overflow it gets -EAGAIN, so
 * the receiver answers RETRY and the agents keep their batches
 * (backpressure), and nothing unacknowledged is journaled.
 * vg_store_fetch writes the series' cached values before reading.
 *
 * Several collectors, one set of daemons ([storage] write_through, on by
 * default with rrdcached and a shared [state] url). An RRD accepts only
 * values newer than a series' last update. When an agent moves to
 * another collector (failover, or a kill -9 and restart), the new one
 * writes the host's newer values at once; values the old one still held
 * in its cache (acknowledged, journaled) would then reach the daemon
 * late, be refused as older and be lost (tests/cluster found 6 minutes
 * of every series of a failed-over host). So with shared daemons each
 * batch is written to the backend before its ack, in batch order, and
 * rrdcached does the write-behind: the cache holds only values waiting
 * for an unreachable daemon, and the journal still keeps every value
 * until the daemon holds it (below). The receiver never waits on a
 * daemon's fault: its opens of new series wait on a daemon at most the
 * receiver's bound (VG_RRD_RECEIVER; beyond it the batch is answered
 * RETRY, series_open, and the consumer's tick opens the rest before the
 * agent sends it again, open_later), it writes only over connections already verified
 * (vg_rrd_item.no_connect) and leaves what needs a new one (a daemon
 * down, restarting, stalled), and the retiring of segments, to the
 * storage thread at once (series deferred, reclaim_due). Otherwise a
 * batch's ack would wait for the reconnection and the check of a
 * restarted daemon's files, the agent would time out and move to another
 * collector, and its newer values would reach the files before these
 * (tests/integration/shared_daemon_fault_test.sh). A host that moves for
 * another reason while values wait here is kept from the other
 * collectors by a holding mark in the shared state, which the receiver
 * writes and clears by vg_store_holding (docs/scaling.md).
 *
 * Journal policy. A segment is retired (collector/journal.c) once no
 * cached value from it is left and the backend synced (a backend may
 * accept values before they are durable: rrdcached acknowledges UPDATE
 * before its disk has it, and loses it if killed before writing it); when
 * the cache is empty even the active segment goes, so an idle store
 * leaves only RRD files. With write-through the cache is empty after
 * nearly every batch, and retiring then would sync the backend per batch:
 * rrdcached's sync FLUSHes every file sent since the last one, so each
 * file would be written once per poll with one value, none of the
 * daemon's write coalescing (rrdcached's cost is per file written). So a
 * write-through store syncs and retires (the active segment too, which
 * rotates it by age) every [storage] sync_interval when it is set (0,
 * the default, keeps the sync per batch: with an interval, a host that
 * moved between collectors can lose values at a daemon's restart, the
 * check of one collector FORGETting files the other wrote since:
 * docs/scaling.md "Still open"), or sooner when
 * WT_MAX_LIVE_SEGS segments are live (sync_due); segments also rotate by
 * size (VG_JOURNAL_SEG_MAX_BYTES). The values of that interval stay in
 * the journal until the sync verified them, so a crash replays them and
 * resend_lost finds them after a daemon restart. Values a storage daemon
 * accepted and then lost (it restarted) are read back from the live
 * segments and written again, before anything newer of their series
 * (resend_lost). A sync that fails is tried again by the storage thread
 * itself (RETRY_SYNC_MS), not only by the next batch's writes: an idle
 * store still drains its journal once the daemon is back. One journal serves
 * every daemon: a daemon that is down holds the segments from its oldest
 * waiting value on, bounded by the cache (its waiting values count in
 * cache_values, so the bound answers RETRY) and the segment ring. On open, the
 * backend first repairs what a kill -9 interrupted (the files backend's
 * header undo), then the segments left by a crash are replayed in order,
 * written, synced and retired (an engine that may have lost some of the
 * values it took first checks the files the journal holds values of:
 * replay_spans); what a daemon that does not answer cannot
 * take stays cached, its segments live, as if the daemon had gone down
 * while the store ran (replay, series_open). One store owns a journal (flock); a second
 * open gets a write-through store that neither journals nor caches nor
 * replays.
 *
 * Invariants:
 *  - updates to one series are strictly increasing in time: a sample at or
 *    before the series' last accepted time (the backend's last_ms, exact
 *    to the millisecond) is a duplicate, skipped and counted;
 *  - a value the backend refuses never takes other values with it: it is
 *    counted by reason and noted for the log, and the journal segments
 *    that may hold it are kept (renamed <id>.kept, not deleted, not
 *    replayed: the operator's copy of what the files lack);
 *  - a series is flushed by one thread at a time (flushing flag), and its
 *    values leave the cache in time order, so the backend sees increasing
 *    times;
 *  - lock: one mutex (mu) guards the series table, every series' cache,
 *    the dirty list and the journal's segment counts. It is never held
 *    across backend calls or fdatasync. Only the receiver thread inserts
 *    series and takes removed ones out of the table (reap_dead), so it
 *    looks them up without the lock; other threads only mark a series
 *    dead (vg_store_remove_series, the lifecycle of ended resources);
 *  - a series is deleted or converted only while no flush, fetch or
 *    create of it is in flight (the removal section below);
 *  - a new series gets the archives of the first [archives] rule matching
 *    its metric (policy_layout); only a create looks (also the create
 *    again of a file deleted while the store runs: recreate);
 *  - a series created by published measures (vg_batch.published) gets
 *    [storage] publish_heartbeat and starts one step before its first
 *    point (published_layout); agents' series keep [storage]
 *    heartbeat and start 1 s before their first sample;
 *  - counters are updated with __atomic builtins: readable from any thread.
 *
 * Why one file (~1,700 lines): the series table, the cache, the flusher,
 * the journal policy, and the removal and conversion that must wait for
 * them share one mutex and one series struct; cutting
 * them apart would publish both in another private header for no reader's
 * gain. What was separable (the journal, the RRD engine, the undo) is in
 * journal.c and backend_files.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/fsutil.h"
#include "vigie/hash.h"
#include "vigie/hmap.h"
#include "vigie/log.h"
#include "vigie/store.h"
#include "collector/backend.h"
#include "collector/journal.h"
#include "collector/placement.h"
#include "collector/timepack.h"

/* Rows a fetch returns past a series' last update, at most (unknown rows:
 * a range reaching further into the future is cut there). */
#define FETCH_AHEAD_ROWS 100000

/* Write-behind policy (figures in docs/benchmarks.md). */
#define FLUSH_MIN_DEPTH 64          /* default [storage] flush_depth */
#define FLUSH_MAX_AGE_MS 300000     /* oldest cached value waits at most */
#define IDLE_FLUSH_MS 1000          /* no batch for this long: write all */
#define WARM_EVERY_MS 1000          /* backend warm(): write-through stores */
#define CACHE_MAX_VALUES (8u << 20) /* default [storage] cache_values (128 MiB) */
#define MAX_DEPTH 256               /* flush_depth at most */
#define SEG_RING 64                 /* live segments tracked */
#define MAX_LIVE_SEGS 8             /* more: flush oldest first */
#define WT_MAX_LIVE_SEGS 32         /* write-through: more, sync now */

struct series {
	uint64_t hash;
	char *id, *metric; /* one allocation */
	uint8_t rtype, kind;
	int flushing;        /* a thread is writing its values (mu) */
	int in_dirty;        /* on the dirty list (mu) */
	int dead;            /* removed (vg_store_remove_series): off the
				* dirty list, on the dead list, freed by the
				* receiver (mu; read by the receiver) */
	uint32_t owner;      /* the backend's holder (vg_rrd_loc.owner) */
	int64_t retry_at_ms; /* its daemon was unreachable: not before */
	int64_t last_ms;     /* newest value accepted (receiver; mu to write) */
	/* the newest time of a value taken from a batch whose host arrived
	 * from elsewhere (vg_batch.arrived; INT64_MIN: none): given to the
	 * backend with every update (vg_rrd_loc.arrived_ms; mu) */
	int64_t arrived_ms;
	/* the arrived_ms up to which its file was FLUSHed on its daemon
	 * since (by the backend, vg_rrd_result.flushed; or by its open's
	 * read of the last update in the batch that arrived): an update with
	 * arrived_ms past it asks the backend to FLUSH first, so the previous
	 * collector's cached values reach the file before ours
	 * (vg_rrd_loc.flush_first; mu) */
	int64_t flushed_ms;
	uint64_t opened_gen;       /* receiver only: the batch generation of its open */
	int64_t tent_ms;           /* receiver only: within the current batch */
	uint64_t gen;              /* receiver only: batch generation of tent_ms */
	struct vg_rrd_value *pend; /* cached values, oldest first (mu) */
	uint32_t npend, cap;
	/* how many of them, the oldest, are owed: they went back to the
	 * cache because their daemon or file did not take them (requeue),
	 * or their daemon lost them (resend_lost); none once written
	 * (vg_store.owed; mu) */
	uint32_t owed;
	uint64_t seg;                 /* journal segment of pend[0] (mu) */
	int64_t since_ms;             /* monotonic ms when pend[0] arrived (mu) */
	int deferred;                 /* the receiver's write-through left it to
				       * the storage thread (no verified
				       * connection to its daemon; mu) */
	int published;                /* a batch of published measures
				       * named it (OPEN_PUBLISHED): created
				       * again with publish_heartbeat
				       * (recreate; __atomic) */
	int dir_gone;                 /* its last write found its directory
				       * missing (dir_missing; only the thread
				       * flushing it) */
	struct series *dprev, *dnext; /* dirty list, oldest first (mu) */
};

/* A table slot keeps the hash beside the pointer, so probing compares
 * hashes in the table itself and touches a series (another cache miss)
 * only on a match: the lookup was 6-8 % of the collector's CPU at 100,000
 * series.
 * Not the common map (vigie/hmap.h) on purpose: moved onto it (with a
 * caller-hash variant), the 100,000-series ingest bench cost 2.3 us of
 * collector CPU per value against 1.7-1.9 us with this table, in
 * alternating runs on the same machine (docs/benchmarks.md). */
struct slot {
	uint64_t hash;
	struct series *se; /* NULL: empty */
};

/* The series one thread is flushing together (flush_group below). */
#define FLUSH_GROUP_MAX 256   /* series per backend call */
#define WGROUP_BUF_KEEP 65536 /* values flush_all_locked's group keeps */

struct flush_group {
	struct series **se;
	uint64_t *seg, *seg_hi; /* segment of each series' oldest value; the
				 * newest its values may be in */
	size_t *off, *cnt;      /* its values: buf[off[i] .. off[i] + cnt[i]) */
	uint32_t *owed;         /* how many of them were owed (series.owed) */
	struct vg_rrd_loc *loc; /* path "" when it could not be located */
	struct vg_rrd_item *it; /* the located ones, in order */
	size_t n, cap;
	struct vg_rrd_value *buf;
	size_t nbuf, bufcap;
	int no_connect; /* the receiver's write-through (vg_rrd_item) */
	int cause;      /* why it is written (enum vg_store_sync_cause): the
			 * cause of the sync that may follow */
	/* vg_store.group_seq when its first series was taken; next in
	 * vg_store.groups while it has series */
	uint64_t seq;
	struct flush_group *anext;
};

struct vg_store {
	struct vg_rrd_backend *be;
	char daemon_base[512];        /* [storage] daemon_base, "" if unset */
	char convert_at[256];         /* vg_store_convert_at's holder, or "" */
	struct vg_rrd_layout layout;  /* [storage] step, heartbeat, archives */
	uint32_t publish_heartbeat_s; /* [storage] publish_heartbeat */
	struct vg_archive archives[VG_MAX_ARCHIVES];
	struct vg_archive_policy policies[VG_MAX_POLICIES]; /* [archives] */
	size_t npolicies;

	pthread_mutex_t mu;
	pthread_cond_t work_cv; /* flusher: something may be due */
	pthread_cond_t done_cv; /* a flush completed */
	struct slot *tab;       /* open addressing; inserted by the receiver */
	size_t cap, used;
	struct series *dhead, *dtail;
	/* groups started (flush_group.seq); those taken, not yet settled */
	uint64_t group_seq;
	struct flush_group *groups;
	uint64_t cache_max;    /* [storage] cache_values */
	uint32_t flush_depth;  /* [storage] flush_depth */
	uint64_t pending;      /* values in all caches (mu) */
	uint64_t inflight;     /* values taken out of a cache by a flush and
				* not settled yet (mu) */
	uint64_t held;         /* pending + inflight, as last published
				* (__atomic; vg_store_holding) */
	uint64_t cache_bytes;  /* allocated for them (mu) */
	uint64_t gen;          /* receiver only */
	int64_t last_batch_ms; /* monotonic ms of the last write_batch (mu) */
	int receiving;         /* __atomic: the receiver is in a write_batch
				* (opening, creating, journaling): not idle,
				* however long it takes */

	/* journal: seg_active, seg_oldest and seg_fd under mu */
	struct vg_journal j;
	int owner;                 /* holds the journal lock: write-behind on */
	uint32_t daemon_wait_ms;   /* the receiver's bound on a daemon (0:
				    * not rrdcached; vg_store_daemon_wait_ms) */
	int64_t batch_deadline_ms; /* the receiver's batch deadline
				    * (vg_store_set_deadline; 0: none) and
				    * the write_batch calls it cut short
				    * (vg_store_deadline_cuts): receiver only */
	uint64_t deadline_cuts;
	/* mu: a write-through round trip was not started (or ended) for the
	 * batch's deadline (vg_rrd_result.cut) since the receiver's
	 * write-through began: the rest waits for the storage thread */
	int wt_cut;
	int write_through;         /* [storage] write_through: each batch
				    * reaches the backend before its ack */
	uint32_t segcnt[SEG_RING]; /* caches + flushes holding each segment */
	uint8_t segkeep[SEG_RING]; /* a value of it was not written: keep it
				    * as <id>.kept instead of deleting (mu) */
	int journal_busy;          /* the receiver is appending (mu) */

	/* removal (vg_store_remove_series; all under mu) */
	struct series *dead;      /* removed series, linked by dnext, that
				  * the receiver takes out of the table */
	struct key_use *readers;  /* keys vg_store_fetch is reading */
	struct key_use *creating; /* the key the receiver is creating */
	struct key_use *removing; /* the key being removed, or NULL */
	uint64_t series_removed;  /* __atomic */
	int reclaiming;           /* a thread is retiring segments, or
				   * reading them for lost values (mu) */
	int64_t lost_retry_ms;    /* resend_lost failed: not before (mu) */
	vg_store_lost_fn on_lost; /* marks the lost series' hosts (set once) */
	void *on_lost_ctx;
	int lost_marking;         /* resend_lost is marking and re-sending:
				   * counted in held (mu) */
	int reclaim_due;          /* the receiver wrote through: the storage
				   * thread retires the segments (mu) */
	int64_t sync_interval_ms; /* [storage] sync_interval: with write-through,
				   * segments are retired (a backend sync) at
				   * most this often, unless WT_MAX_LIVE_SEGS */
	int64_t sync_try_ms;      /* monotonic ms of the last sync of
				   * reclaim (mu; sync_interval_ms counts
				   * from there) */
	int sync_failed;          /* that sync failed (mu) */
	/* settled writes that wrote a value (mu), and their count when the
	 * last sync that passed began: a forced reclaim (vg_store_flush, the
	 * close) syncs when they differ even with no segment to retire
	 * (the oldest held by values cached for a daemon that is down),
	 * so that what was written to the others is FLUSHed too */
	uint64_t write_gen, synced_gen;
	int64_t warm_ms; /* monotonic ms of the last backend warm()
				   * (the storage thread's) */
	/* series this store has had (known_*: mu; see "series known
	 * before") */
	uint64_t *known; /* open addressing of key_hash, 0 = empty */
	size_t known_cap, known_n;
	int known_fd;             /* <journal>/known, appended (owner), or -1 */
	int known_dirty;          /* appended since its last fdatasync */
	int64_t verified_ms;      /* wall ms: every value journaled before it
				   * is durable in the backend (a sync retired
				   * the whole journal; mu; vg_store_verified_ms) */
	uint64_t replay_flush_at; /* replay_take writes the cache from this
				   * many values on (open only) */

	void **scratch; /* receiver only: series of each sample (a
				  * struct series *, or NULL: not taken) */
	size_t scap;
	/* receiver only: the new series of the last batch whose opens
	 * reached the receiver's bound, opened by the consumer's tick
	 * between its attempts (open_later) */
	struct later_key *later;
	size_t nlater, later_next;

	pthread_t flusher;
	int running, stop;
	struct flush_group fgroup; /* flusher only */
	/* flush_all_locked's group, kept between calls: write-through runs it
	 * for every batch and its arrays are ~1.3 MB (FLUSH_GROUP_MAX paths).
	 * Used by one caller at a time (wgroup_busy, mu); another caller
	 * meanwhile takes a group of its own. */
	struct flush_group wgroup;
	int wgroup_busy;

	struct vg_store_stats stats; /* __atomic; the backend's and the
				      * journal's counters are merged in by
				      * vg_store_get_stats */
	char last_error[512];        /* receiver thread only */
	char flush_error[512];       /* mu */
	int flush_error_new;         /* mu */
	/* values owed to storage (mu): the owed values of every cache
	 * (series.owed), and of the flushes writing them again, until a
	 * write takes them (or fails them, or their series is removed).
	 * vg_store_flush fails while any is left; a value cached later is
	 * not owed until its daemon too does not take it, however long ago
	 * an earlier one did not */
	uint64_t owed;
	int64_t dir_log_ms;     /* __atomic: when dir_missing last logged */
	int64_t cache_full_ms;  /* __atomic: when a batch was last refused
				 * for a full cache (0: never) */
	uint64_t dir_log_quiet; /* __atomic: series not logged since */
};

/* A series key some thread is using (reading, creating, removing): on
 * that thread's stack, linked under mu. */
struct key_use {
	int rtype;
	const char *id, *metric;
	struct key_use *next;
};

static void count(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

/* Publish the cache's value count, and what it holds for the daemons with
 * the values a flush is writing (mu held). */
static void publish_pending(struct vg_store *s)
{
	__atomic_store_n(&s->stats.values_pending, s->pending, __ATOMIC_RELAXED);
	__atomic_store_n(&s->held, s->pending + s->inflight + (s->lost_marking ? 1 : 0),
			 __ATOMIC_RELAXED);
}

static uint64_t key_hash(int rtype, uint64_t id_hash, const char *metric)
{
	uint64_t h = vg_fnv1a(id_hash ^ (uint64_t)rtype * 0x9e3779b97f4a7c15ull, metric);

	return h ^ (h >> 31);
}

/* ---- the series table --------------------------------------------------------
 * Inserted and grown by the receiver thread only, under mu; read by the
 * receiver without mu, by other threads with mu. */

static struct series *table_find(const struct vg_store *s, int rtype,
				 const char *id, const char *metric, uint64_t h)
{
	size_t mask = s->cap - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		const struct slot *sl = &s->tab[i];
		struct series *se = sl->se;
		if (!se)
			return NULL;
		if (sl->hash == h && se->rtype == rtype &&
		    !strcmp(se->metric, metric) && !strcmp(se->id, id) &&
		    !__atomic_load_n(&se->dead, __ATOMIC_ACQUIRE))
			return se; /* a removed one waits for reap_dead */
	}
}

/* Caller holds mu. */
static int table_insert(struct vg_store *s, struct series *se)
{
	if ((s->used + 1) * 10 > s->cap * 7) {
		size_t ncap = s->cap * 2;
		struct slot *nt = calloc(ncap, sizeof(*nt));
		if (!nt)
			return -ENOMEM;
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->tab[i].se)
				continue;
			size_t j = s->tab[i].hash & (ncap - 1);
			while (nt[j].se)
				j = (j + 1) & (ncap - 1);
			nt[j] = s->tab[i];
		}
		free(s->tab);
		s->tab = nt;
		s->cap = ncap;
	}
	size_t j = se->hash & (s->cap - 1);
	while (s->tab[j].se)
		j = (j + 1) & (s->cap - 1);
	s->tab[j] = (struct slot){se->hash, se};
	s->used++;
	return 0;
}

static struct series *series_new(int rtype, const char *id, const char *metric,
				 int kind, uint64_t h)
{
	size_t il = strlen(id), ml = strlen(metric);
	struct series *se = calloc(1, sizeof(*se) + il + ml + 2);

	if (!se)
		return NULL;
	se->id = (char *)(se + 1);
	se->metric = se->id + il + 1;
	memcpy(se->id, id, il + 1);
	memcpy(se->metric, metric, ml + 1);
	se->rtype = (uint8_t)rtype;
	se->kind = (uint8_t)kind;
	se->hash = h;
	se->last_ms = INT64_MIN;
	se->arrived_ms = INT64_MIN;
	se->flushed_ms = INT64_MIN;
	return se;
}

/* ---- dirty list (mu) ------------------------------------------------------------ */

static void dirty_unlink(struct vg_store *s, struct series *se)
{
	if (!se->in_dirty)
		return;
	if (se->dprev)
		se->dprev->dnext = se->dnext;
	else
		s->dhead = se->dnext;
	if (se->dnext)
		se->dnext->dprev = se->dprev;
	else
		s->dtail = se->dprev;
	se->dprev = se->dnext = NULL;
	se->in_dirty = 0;
}

static void dirty_append(struct vg_store *s, struct series *se)
{
	se->dnext = NULL;
	se->dprev = s->dtail;
	if (s->dtail)
		s->dtail->dnext = se;
	else
		s->dhead = se;
	s->dtail = se;
	se->in_dirty = 1;
}

/* ---- open / close helpers ------------------------------------------------------------ */

#define CACHE_REFUSING_MS 10000 /* cache_refusing: a refusal this recent */

void vg_store_get_stats(struct vg_store *s, struct vg_store_stats *out)
{
#define LD(f) out->f = __atomic_load_n(&s->stats.f, __ATOMIC_RELAXED)
	LD(values_written);
	LD(values_duplicate);
	LD(values_rejected);
	LD(write_errors);
	for (int i = 0; i < VG_STORE_ERR_N; i++)
		LD(write_errors_by[i]);
	LD(write_retries);
	LD(values_flushed);
	LD(values_pending);
	LD(pending_peak);
	LD(cache_bytes_peak);
	LD(values_replayed);
	LD(values_resent);
	LD(cache_full);
	LD(series_unreachable);
	LD(batches_nomem);
	LD(series_recreated);
	LD(series_dir_missing);
	LD(series_dir_waiting);
	LD(backend_syncs);
	for (int i = 0; i < VG_STORE_SYNC_N; i++)
		LD(backend_syncs_by[i]);
#undef LD
	struct vg_rrd_backend_stats bs = {0};
	if (s->be)
		s->be->ops->get_stats(s->be, &bs);
	out->files_created = bs.files_created;
	out->flushes = bs.calls;
	out->write_ns_total = bs.write_ns_total;
	out->headers_restored = bs.headers_restored;
	out->segments_kept = __atomic_load_n(&s->j.stats.kept, __ATOMIC_RELAXED);
	out->segments_kept_dropped =
		__atomic_load_n(&s->j.stats.kept_dropped, __ATOMIC_RELAXED);
	out->journal_bytes = __atomic_load_n(&s->j.stats.bytes, __ATOMIC_RELAXED);
	out->journal_syncs = __atomic_load_n(&s->j.stats.syncs, __ATOMIC_RELAXED);
	out->series_removed = __atomic_load_n(&s->series_removed, __ATOMIC_RELAXED);
	int64_t full = __atomic_load_n(&s->cache_full_ms, __ATOMIC_RELAXED);
	out->cache_refusing = full && vg_monotonic_ms() - full < CACHE_REFUSING_MS;
}

const char *vg_store_err_reason(int reason)
{
	static const char *const names[VG_STORE_ERR_N] = {"time", "file", "memory",
							  "librrd"};

	return reason >= 0 && reason < VG_STORE_ERR_N ? names[reason] : NULL;
}

const char *vg_store_sync_cause(int cause)
{
	static const char *const names[VG_STORE_SYNC_N] = {
		"flush", "depth", "age", "idle", "cache", "segments", "batch", "interval", "retry",
		"other"};

	return cause >= 0 && cause < VG_STORE_SYNC_N ? names[cause] : NULL;
}

const char *vg_store_flush_site(int site)
{
	static const char *const names[VG_STORE_FLUSH_N] = {"sync", "check", "read",
							    "arrival", "repair", "convert"};

	return site >= 0 && site < VG_STORE_FLUSH_N ? names[site] : NULL;
}

/* n values that could not be written, for this reason. */
static void count_err(struct vg_store *s, int reason, uint64_t n)
{
	if (!n)
		return;
	count(&s->stats.write_errors_by[reason], n);
	count(&s->stats.write_errors, n);
}

const char *vg_store_last_error(const struct vg_store *s)
{
	return s ? s->last_error : "";
}

static void set_error(struct vg_store *s, const char *msg)
{
	snprintf(s->last_error, sizeof(s->last_error), "%s", msg);
}

int vg_store_path(const struct vg_store *s, int rtype, const char *id,
		  const char *metric, char *out, size_t outlen)
{
	struct vg_rrd_loc loc;
	int rc;

	if (!s || !out)
		return -EINVAL;
	if ((rc = s->be->ops->locate(s->be, rtype, id, metric, &loc)))
		return rc;
	if ((size_t)snprintf(out, outlen, "%s", loc.path) >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

/* ---- the journal's segments (mu) ------------------------------------------------ */

/* Whether a write-through store syncs now (mu held). Its cache is empty
 * after nearly every batch, so retiring whenever it is would sync the
 * backend per batch: rrdcached's sync FLUSHes every file sent since the
 * last one, i.e. each file written once per poll with one value, none of
 * the daemon's write coalescing (docs/benchmarks.md "Write-through
 * syncs"). So the segments wait: a sync every sync_interval_ms, or
 * sooner when WT_MAX_LIVE_SEGS segments are live (2 GiB: the journal's
 * bound on disk and on what resend_lost and a replay read; half the
 * ring, the rest left for values a daemon that is down holds). Not
 * MAX_LIVE_SEGS (512 MiB): at the capacity model's 356,000 values/s per
 * collector (docs/scaling.md) and 16-41 journal bytes per value it fills
 * in 40-90 s, which would cap the interval there. A failed sync under
 * that pressure is tried again after RETRY_SYNC_MS, not at every turn of
 * the storage thread.
 *
 * A failed sync is also tried again by the storage thread itself every
 * RETRY_SYNC_MS while its segments wait (flusher_main), when it would be
 * due anyway (sync_due: always without write-through or with
 * sync_interval 0; with an interval the next one comes from the interval
 * as before). Otherwise only the next written value triggered the next
 * try: after a daemon's restart with no batch coming (agents idle, the
 * last batch before a quiet spell), the journal kept its segments, the
 * daemon's files stayed pending and the values it lost were not re-sent
 * (only a new connection's check finds them) until traffic resumed. The
 * backend's own back-off decides whether a try reaches a daemon: one
 * inside it answers at once without a connection attempt (rrdcached:
 * client_get's down_until), so a daemon that stays down costs a connect
 * per back-off (at most 2 s), not a busy loop; and one that answers but
 * refuses a FLUSH costs a FLUSH BATCH per back-off of the same length
 * (rcd_sync's refused_until), not one per sync. */
#define RETRY_SYNC_MS 1000

static int sync_due(struct vg_store *s)
{
	int64_t since = vg_monotonic_ms() - s->sync_try_ms;

	if (!s->write_through || s->sync_interval_ms <= 0 || since >= s->sync_interval_ms)
		return 1;
	return s->j.seg_active - s->j.seg_oldest >= WT_MAX_LIVE_SEGS &&
	       (!s->sync_failed || since >= RETRY_SYNC_MS);
}

/* Retire the segments no cached value needs any more; when the cache is
 * empty, the active one too. Called with mu held (drops it while syncing
 * and unlinking). The backend syncs first, so what a retired segment held
 * is durable in the backend; if it cannot, the segments stay. With
 * write-through only when sync_due, or when force (vg_store_flush, the
 * close), which also syncs with no segment to retire when values were
 * written since the last sync that passed (write_gen). cause: what asks (enum vg_store_sync_cause), counted in
 * backend_syncs_by; a try again after a failed sync counts as retry, and
 * a write-through sync with an interval as interval or segments. */
static int known_sync(struct vg_store *s);

static void reclaim(struct vg_store *s, int force, int cause)
{
	uint64_t from, upto, keep = 0;
	int fd = -1;

	if (!s->owner || s->reclaiming || (!force && !sync_due(s)))
		return;
	from = s->j.seg_oldest;
	upto = from;
	while (upto < s->j.seg_active && !s->segcnt[upto % SEG_RING])
		upto++;
	int64_t closed_ms = 0;
	if (upto == s->j.seg_active && !s->pending && !s->segcnt[upto % SEG_RING] &&
	    !s->journal_busy && s->j.seg_fd >= 0) {
		/* every append that ended before now is in a segment up to
		 * this one: once they are retired, it is all verified. One
		 * ms less: an append after this close, and the commit after
		 * it, may fall in this same millisecond */
		closed_ms = vg_now_ms() - 1;
		fd = s->j.seg_fd;
		s->j.seg_fd = -1;
		s->j.seg_active++;
		upto = s->j.seg_active;
	}
	if (upto == from && !(force && s->write_gen != s->synced_gen))
		return;
	if (s->sync_failed)
		cause = VG_STORE_SYNC_RETRY;
	else if (!force && s->write_through && s->sync_interval_ms > 0)
		cause = vg_monotonic_ms() - s->sync_try_ms >= s->sync_interval_ms
				? VG_STORE_SYNC_INTERVAL
				: VG_STORE_SYNC_SEGMENTS;
	count(&s->stats.backend_syncs_by[cause], 1);
	s->reclaiming = 1;
	s->sync_try_ms = vg_monotonic_ms();
	uint64_t gen = s->write_gen; /* what this sync covers */
	pthread_mutex_unlock(&s->mu);
	if (vg_store_test_before_sync)
		vg_store_test_before_sync();
	int synced = s->be->ops->sync(s->be) == 0 && known_sync(s) == 0;
	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&s->mu);
	count(&s->stats.backend_syncs, 1);
	s->sync_failed = !synced;
	if (synced && gen > s->synced_gen)
		s->synced_gen = gen;
	if (!synced) {
		/* Not durable in the backend yet: the segments stay (a closed
		 * active one is simply no longer appended to). */
		s->reclaiming = 0;
		pthread_cond_broadcast(&s->done_cv); /* vg_store_flush waits */
		return;
	}
	/* upto - from <= SEG_RING (take_batch bounds the live segments) */
	for (uint64_t id = from; id < upto && id - from < 64; id++) {
		keep |= (uint64_t)s->segkeep[id % SEG_RING] << (id - from);
		s->segkeep[id % SEG_RING] = 0;
	}
	pthread_mutex_unlock(&s->mu);
	for (uint64_t id = from; id < upto; id++)
		vg_journal_retire(&s->j, id, (keep >> (id - from)) & 1);
	pthread_mutex_lock(&s->mu);
	s->j.seg_oldest = upto;
	if (closed_ms > s->verified_ms)
		s->verified_ms = closed_ms;
	s->reclaiming = 0;
	pthread_cond_broadcast(&s->done_cv); /* vg_store_flush waits */
}

size_t vg_store_daemons(struct vg_store *s, struct vg_store_daemon *out, size_t max)
{
	return s && s->be ? vg_rrd_rrdcached_state(s->be, out, max) : 0;
}

int vg_store_pending_cause(struct vg_store *s, int at_start, char *buf, size_t len)
{
	enum { MAXD = 64 };
	struct vg_store_daemon *dm = calloc(MAXD, sizeof(*dm));
	char down[512] = "", cut[512] = "", nodirs[512] = "";
	size_t od = 0, oc = 0, on = 0, nd, l = 0;
	unsigned long long dirs = __atomic_load_n(&s->stats.series_dir_waiting, __ATOMIC_RELAXED);
	int rc = 0;

	if (!len) {
		free(dm);
		return 0;
	}
	buf[0] = '\0';
	nd = dm ? vg_store_daemons(s, dm, MAXD) : 0;
	for (size_t i = 0; i < nd; i++) {
		/* the address lists are bounded: snprintf's count past the end
		 * stops the appending */
		if (!dm[i].up && od < sizeof(down))
			od += (size_t)snprintf(down + od, sizeof(down) - od, "%s%s",
					       od ? ", " : "", dm[i].address);
		else if (dm[i].up && dm[i].cannot_create && on < sizeof(nodirs))
			on += (size_t)snprintf(nodirs + on, sizeof(nodirs) - on, "%s%s",
					       on ? ", " : "", dm[i].address);
		else if (dm[i].up && dm[i].checks_cut && oc < sizeof(cut))
			oc += (size_t)snprintf(cut + oc, sizeof(cut) - oc, "%s%s",
					       oc ? ", " : "", dm[i].address);
	}
	free(dm);
	if (dirs) {
		/* their type directory missing: not a daemon's doing */
		l = (size_t)snprintf(buf, len,
				     "%llu series whose type directory is missing (a data volume "
				     "not mounted, a directory renamed away?): their values wait "
				     "until it is back",
				     dirs);
		if (l >= len)
			l = len - 1;
		rc |= VG_STORE_PENDING_DIRS;
	}
	if (down[0] || cut[0] || nodirs[0]) {
		snprintf(buf + l, len - l, "%s%s%s%s%s%s%s%s%s", l ? "; " : "",
			 down[0] ? "not answering: " : "", down,
			 down[0] && (cut[0] || nodirs[0]) ? "; " : "",
			 cut[0] ? (at_start ? "up, the start replay's check of its files cut "
					      "short at [storage] check_max, to go on at a "
					      "later connection: "
					    : "up, the check of its files at connecting cut "
					      "short at [storage] check_max, to go on at a "
					      "later connection: ")
				: "",
			 cut, cut[0] && nodirs[0] ? "; " : "",
			 nodirs[0] ? "up, " VG_STORE_CAUSE_NO_DIRS ": " : "", nodirs);
		rc |= VG_STORE_PENDING_DAEMON;
	} else if (!dirs) {
		snprintf(buf, len, "%s",
			 nd ? "no daemon down, cut short or unable to create "
			      "directories: see the store's last error and /v1/health"
			    : "no series directory missing: see the store's last error "
			      "and /v1/health");
	}
	return rc;
}

/* What values still cached wait for, after vg_store_pending_cause's
 * answer rc: the words of `storage flush` and the start warning. */
const char *vg_store_pending_what(int rc)
{
	return rc & VG_STORE_PENDING_DAEMON ? "their storage daemon"
	       : rc & VG_STORE_PENDING_DIRS ? "their series' directories"
					    : "their files to be writable";
}

size_t vg_store_unlisted(struct vg_store *s, struct vg_store_unlisted *out, size_t max,
			 int whole_record)
{
	return s && s->be ? vg_rrd_rrdcached_unlisted(s->be, out, max, whole_record) : 0;
}

void vg_store_placement(struct vg_store *s, struct vg_store_placement *out)
{
	if (s && s->be)
		vg_rrd_rrdcached_placement(s->be, out);
	else
		memset(out, 0, sizeof(*out));
}

static void reader_begin(struct vg_store *s, struct key_use *k);
static void reader_end(struct vg_store *s, struct key_use *k);
static void flush_one(struct vg_store *s, int rtype, const char *id,
		      const char *metric, const struct vg_rrd_loc *loc);

/* vg_store_where's naming of loc, after the backend's locate filled it. */
static int where_of(struct vg_store *s, const struct vg_rrd_loc *loc, char *path,
		    size_t pathlen, char *addr, size_t addrlen)
{
	/* librrd's client makes a relative name absolute from its own
	 * directory when the daemon is on a unix socket (it assumes the same
	 * host): give it the daemon's base dir then, when configured. */
	if (loc->address && loc->path[0] != '/' && s->daemon_base[0] &&
	    (!strncmp(loc->address, "unix:", 5) || loc->address[0] == '/')) {
		if ((size_t)snprintf(path, pathlen, "%s/%s", s->daemon_base, loc->path) >= pathlen)
			return -ENAMETOOLONG;
	} else if ((size_t)snprintf(path, pathlen, "%s", loc->path) >= pathlen) {
		return -ENAMETOOLONG;
	}
	if (loc->address && (size_t)snprintf(addr, addrlen, "%s", loc->address) >= addrlen)
		return -ENAMETOOLONG;
	if (loc->recorded) { /* on a daemon no longer listed: name it */
		if (addrlen)
			snprintf(addr, addrlen, "%s", loc->recorded);
		return -EADDRNOTAVAIL;
	}
	return 0;
}

int vg_store_where(struct vg_store *s, int rtype, const char *id, const char *metric,
		   char *path, size_t pathlen, char *addr, size_t addrlen)
{
	struct vg_rrd_loc loc;
	int rc;

	if (addrlen)
		addr[0] = '\0';
	if ((rc = s->be->ops->locate(s->be, rtype, id, metric, &loc)))
		return rc;
	return where_of(s, &loc, path, pathlen, addr, addrlen);
}

int vg_store_locate(struct vg_store *s, int rtype, const char *id, const char *metric,
		    char *path, size_t pathlen, char *addr, size_t addrlen)
{
	struct vg_rrd_loc loc;
	struct vg_rrd_info d;
	int rc;

	if (addrlen)
		addr[0] = '\0';
	if ((rc = s->be->ops->locate(s->be, rtype, id, metric, &loc)) ||
	    (rc = where_of(s, &loc, path, pathlen, addr, addrlen)))
		return rc;
	/* the series' cached values written first, as vg_store_fetch does:
	 * the reader (rrd_graph) sees all that was accepted, and a file
	 * deleted while values wait is created again by that write rather
	 * than answered "no such series" */
	struct key_use mine = {rtype, id, metric, NULL};
	reader_begin(s, &mine); /* a removal of this key waits for us */
	flush_one(s, rtype, id, metric, &loc);
	/* info, not last_ms: last_ms is also a new series' open, which takes
	 * a daemon's "Permission denied" (-P without FLUSH or INFO) for "no
	 * file" so that its create still goes ahead (rcd_last_ms); a reader
	 * must see that refusal as the daemon's fault (-EIO: the API's 503
	 * naming the daemon and the file), as vg_store_fetch does, not as a
	 * missing series (404) */
	rc = s->be->ops->info(s->be, &loc, VG_CF_AVERAGE, &d);
	reader_end(s, &mine);
	return rc == -ENOENT || rc == -EHOSTUNREACH ? rc : rc ? -EIO
							      : 0;
}

/* ---- writing cached values to the backend -------------------------------------- */

static int reserve_pend(struct vg_rrd_value **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap : 64;
	while (ncap < need)
		ncap *= 2;
	struct vg_rrd_value *n = realloc(*buf, ncap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	*buf = n;
	*cap = ncap;
	return 0;
}

#define RETRY_UNREACHABLE_MS 1000 /* a series whose daemon did not answer */

/* Put v[0..n) (the oldest values of se, from segment seg on) back at the
 * front of its cache: its daemon could not be reached. mu held. The
 * series keeps holding seg (the oldest), so no later segment is retired
 * before these values are written. 0 or -ENOMEM. */
static int requeue(struct vg_store *s, struct series *se, const struct vg_rrd_value *v,
		   size_t n, uint64_t seg)
{
	if (se->npend + n > se->cap) {
		uint32_t ncap = se->cap ? se->cap : s->flush_depth;
		while (ncap < se->npend + n)
			ncap *= 2;
		struct vg_rrd_value *p = realloc(se->pend, ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		s->cache_bytes += (ncap - se->cap) * sizeof(*p);
		se->pend = p;
		se->cap = ncap;
	}
	memmove(se->pend + n, se->pend, se->npend * sizeof(*se->pend));
	memcpy(se->pend, v, n * sizeof(*v));
	if (se->npend) {
		/* newer values came meanwhile, holding a newer segment */
		s->segcnt[se->seg % SEG_RING]--;
	} else {
		se->since_ms = vg_monotonic_ms();
		dirty_append(s, se);
	}
	se->seg = seg; /* the hold flush_series took over stays */
	se->npend += (uint32_t)n;
	s->pending += n;
	publish_pending(s);
	se->retry_at_ms = vg_monotonic_ms() + RETRY_UNREACHABLE_MS;
	return 0;
}

/* ---- values a storage daemon lost --------------------------------------------
 * A storage daemon that restarts before writing what it accepted (rrdcached
 * killed without its -j journal, or before the journal had them) loses
 * those values. The backend finds out (it checks every file it sent to on
 * each new connection, before sending anything newer, and at each sync:
 * backend.h "Lost values") and holds the series' updates. The values are
 * still in the journal: a sync that did not verify them failed, so no
 * segment holding them was retired. resend_lost reads the segments for
 * those series and puts back in front of each cache every value after the
 * newest its daemon still holds and before the oldest still cached, then
 * lets the backend take the series' updates again: written in order, once. */

#define LOST_MAX 1024 /* series taken per read of the journal */

struct lost_series {
	struct vg_rrd_lost l;
	struct series *se; /* claimed (flushing set by us), or NULL */
	struct vg_rrd_value *v;
	size_t n, cap;
	uint64_t seg; /* segment of v[0] */
	int oom;
};

struct lost_scan {
	struct lost_series *ls;
	size_t n;
	uint64_t seg;  /* segment being read */
	uint32_t *idx; /* open addressing by series hash: m + 1, 0 empty */
	size_t mask;
};

/* vg_journal_replay's callback: the values of the lost series in b. */
static int lost_take(void *ctx, const struct vg_batch *b)
{
	struct lost_scan *sc = ctx;

	for (size_t i = 0; i < b->nres; i++) {
		const struct vg_resource *r = &b->res[i];
		uint64_t hid = vg_fnv1a(VG_FNV_OFFSET, r->id);
		for (uint32_t k = 0; k < r->nsamples; k++) {
			const struct vg_sample *smp = &b->samples[r->first_sample + k];
			uint64_t h = key_hash(r->type, hid, smp->metric);
			for (size_t j = h & sc->mask; sc->idx[j]; j = (j + 1) & sc->mask) {
				struct lost_series *ls = &sc->ls[sc->idx[j] - 1];
				const struct series *se = ls->se;
				if (se->hash != h || se->rtype != r->type ||
				    strcmp(se->metric, smp->metric) || strcmp(se->id, r->id))
					continue;
				if (r->time_ms <= ls->l.have_ms ||
				    (ls->n && r->time_ms <= ls->v[ls->n - 1].t_ms))
					break;
				if (reserve_pend(&ls->v, &ls->cap, ls->n + 1)) {
					ls->oom = 1;
					break;
				}
				if (!ls->n)
					ls->seg = sc->seg;
				ls->v[ls->n].t_ms = r->time_ms;
				ls->v[ls->n].v = smp->value;
				ls->n++;
				break;
			}
		}
	}
	return 0;
}

/* Claim the series of ls[0..n) (flushing set, so no flush or removal
 * touches them), waiting for flushes in flight. mu held. One pass over
 * the table per wait, locating only the series of the daemons concerned. */
static void lost_claim(struct vg_store *s, struct lost_series *ls, size_t n)
{
	struct vg_hmap bypath;
	uint64_t owners = 0;

	vg_hmap_init(&bypath);
	for (size_t m = 0; m < n; m++) {
		owners |= 1ull << (ls[m].l.owner & 63);
		if (vg_hmap_puts(&bypath, ls[m].l.path, (void *)(uintptr_t)(m + 1)))
			ls[m].oom = 1; /* no memory: taken next time */
	}
	for (int round = 0; round < 100; round++) {
		int busy = 0;
		for (size_t i = 0; i < s->cap; i++) {
			struct series *se = s->tab[i].se;
			struct vg_rrd_loc loc;
			void *v;
			if (!se || se->dead || !(owners >> (se->owner & 63) & 1) ||
			    s->be->ops->locate(s->be, se->rtype, se->id, se->metric, &loc) ||
			    !(v = vg_hmap_gets(&bypath, loc.path)))
				continue;
			struct lost_series *l = &ls[(uintptr_t)v - 1];
			if (l->se || se->owner != l->l.owner)
				continue;
			if (se->flushing) {
				busy = 1;
			} else {
				se->flushing = 1;
				l->se = se;
			}
		}
		if (!busy)
			break;
		pthread_cond_wait(&s->done_cv, &s->mu);
	}
	vg_hmap_release(&bypath);
}

/* The hosts of the claimed series of ls[0..n) marked held through the
 * composition's callback (vg_store_on_lost), before their re-send: 0
 * (none set, marked, or some host another collector's) or -errno (put
 * off). mu not held; the claimed series' strings stay. */
static int lost_mark(vg_store_lost_fn fn, void *ctx, const struct lost_series *ls, size_t n)
{
	struct vg_store_series *ser;
	size_t k = 0;
	int rc;

	if (!fn || !n)
		return 0;
	if (!(ser = calloc(n, sizeof(*ser))))
		return -ENOMEM;
	for (size_t m = 0; m < n; m++)
		if (ls[m].se)
			ser[k++] = (struct vg_store_series){ls[m].se->rtype, ls[m].se->id,
							    ls[m].se->metric};
	rc = k ? fn(ctx, ser, k) : 0;
	free(ser);
	return rc == -EBUSY ? 0 : rc;
}

void vg_store_on_lost(struct vg_store *s, vg_store_lost_fn fn, void *ctx)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	while (s->lost_marking) /* a call in progress ends first */
		pthread_cond_wait(&s->done_cv, &s->mu);
	s->on_lost = fn;
	s->on_lost_ctx = ctx;
	pthread_mutex_unlock(&s->mu);
}

/* Put the lost values back in front of their caches (see above). mu held
 * on entry and on return (dropped while reading the journal). */
static void resend_lost(struct vg_store *s)
{
	struct vg_rrd_lost *tmp;
	struct lost_series *ls;
	struct lost_scan sc;
	uint64_t *ids = NULL, active, nrec = 0, resent = 0;
	size_t n, nids = 0;
	vg_store_lost_fn fn;
	void *fn_ctx;
	int rc;

	if (!s->owner || !s->be->ops->lost || s->reclaiming ||
	    !s->be->ops->lost(s->be, NULL, 0) || vg_monotonic_ms() < s->lost_retry_ms)
		return;
	tmp = calloc(LOST_MAX, sizeof(*tmp));
	ls = calloc(LOST_MAX, sizeof(*ls));
	if (!tmp || !ls)
		goto out;
	n = s->be->ops->lost(s->be, tmp, LOST_MAX);
	if (n > LOST_MAX)
		n = LOST_MAX;
	for (size_t m = 0; m < n; m++)
		ls[m].l = tmp[m];
	s->reclaiming = 1; /* no segment goes while we read them */
	lost_claim(s, ls, n);
	active = s->j.seg_active;
	fn = s->on_lost;
	fn_ctx = s->on_lost_ctx;
	if (fn) { /* held from the marks until the values are written */
		s->lost_marking = 1;
		publish_pending(s);
	}
	pthread_mutex_unlock(&s->mu);

	rc = lost_mark(fn, fn_ctx, ls, n);

	sc = (struct lost_scan){ls, n, 0, NULL, 4 * LOST_MAX - 1};
	if (rc)
		; /* the marks not written: the re-send waits for them */
	else if (!(sc.idx = calloc(4 * LOST_MAX, sizeof(*sc.idx))))
		rc = -ENOMEM;
	else
		rc = vg_journal_list(&s->j, &ids, &nids);
	for (size_t m = 0; !rc && m < n; m++) {
		size_t j;
		if (!ls[m].se)
			continue;
		for (j = ls[m].se->hash & sc.mask; sc.idx[j]; j = (j + 1) & sc.mask)
			;
		sc.idx[j] = (uint32_t)(m + 1);
	}
	for (size_t i = 0; !rc && i < nids && ids[i] <= active; i++) {
		sc.seg = ids[i];
		rc = vg_journal_replay(&s->j, ids[i], lost_take, &sc, &nrec);
		if (rc == -ENOENT) /* retired meanwhile: held by no lost value */
			rc = 0;
	}
	free(ids);
	free(sc.idx);

	pthread_mutex_lock(&s->mu);
	for (size_t m = 0; m < n; m++) {
		struct series *se = ls[m].se;
		size_t k = 0;
		if (rc || ls[m].oom) { /* try again later; the series stays held */
			if (se)
				se->flushing = 0;
			continue;
		}
		/* only what left the cache: after the daemon's newest, before
		 * the oldest still cached, at most what was accepted */
		for (; se && k < ls[m].n; k++)
			if ((se->npend && ls[m].v[k].t_ms >= se->pend[0].t_ms) ||
			    ls[m].v[k].t_ms > se->last_ms)
				break;
		if (k) {
			uint64_t hold = ls[m].seg < s->j.seg_oldest ? s->j.seg_oldest : ls[m].seg;
			size_t ncap = se->cap;
			while (ncap < se->npend + k)
				ncap = ncap ? ncap * 2 : s->flush_depth;
			struct vg_rrd_value *p = realloc(se->pend, ncap * sizeof(*p));
			if (!p) {
				se->flushing = 0;
				continue;
			}
			s->cache_bytes += (ncap - se->cap) * sizeof(*p);
			se->pend = p;
			se->cap = (uint32_t)ncap;
			memmove(se->pend + k, se->pend, se->npend * sizeof(*se->pend));
			memcpy(se->pend, ls[m].v, k * sizeof(*se->pend));
			if (se->npend) {
				if (se->seg < hold)
					hold = se->seg;
				s->segcnt[se->seg % SEG_RING]--;
			} else {
				se->since_ms = vg_monotonic_ms();
				dirty_append(s, se);
			}
			se->seg = hold;
			s->segcnt[hold % SEG_RING]++;
			se->npend += (uint32_t)k;
			s->pending += k;
			se->owed += (uint32_t)k; /* its daemon lost them */
			s->owed += k;
			resent += k;
		}
		if (se) {
			se->flushing = 0;
			se->retry_at_ms = 0;
		}
		s->be->ops->resent(s->be, &ls[m].l);
	}
	if (rc)
		s->lost_retry_ms = vg_monotonic_ms() + RETRY_UNREACHABLE_MS;
	s->lost_marking = 0; /* the re-sent values count in pending now */
	publish_pending(s);
	count(&s->stats.values_resent, resent);
	s->reclaiming = 0;
	pthread_cond_broadcast(&s->done_cv); /* vg_store_flush waits */
	pthread_cond_broadcast(&s->done_cv);
	pthread_cond_signal(&s->work_cv);
out:
	for (size_t m = 0; ls && m < LOST_MAX; m++)
		free(ls[m].v);
	free(ls);
	free(tmp);
}

/* ---- flushing: a group of series per backend call ------------------------------
 * A flush takes the cached values of up to FLUSH_GROUP_MAX series (marked
 * flushing, off the dirty list), writes them with mu released in one
 * backend call (update_many: one BATCH round trip per daemon, instead of
 * one round trip per series; an engine without it gets update per
 * series), then settles each series under mu: values its daemon could not
 * take go back in front of its cache, failed ones keep their segments. */

static void group_free(struct flush_group *g)
{
	free(g->se);
	free(g->seg);
	free(g->seg_hi);
	free(g->off);
	free(g->cnt);
	free(g->owed);
	free(g->loc);
	free(g->it);
	free(g->buf);
	memset(g, 0, sizeof(*g));
}

/* Room for one more series in g. 0 or -ENOMEM. */
static int group_reserve(struct flush_group *g)
{
	if (g->n < g->cap)
		return 0;
	size_t nc = g->cap ? g->cap * 2 : 8;
	if (nc > FLUSH_GROUP_MAX)
		nc = FLUSH_GROUP_MAX;
	if (nc <= g->n)
		return -ENOMEM;
	struct series **se = realloc(g->se, nc * sizeof(*se));
	if (se)
		g->se = se;
	uint64_t *seg = realloc(g->seg, nc * sizeof(*seg));
	if (seg)
		g->seg = seg;
	uint64_t *hi = realloc(g->seg_hi, nc * sizeof(*hi));
	if (hi)
		g->seg_hi = hi;
	size_t *off = realloc(g->off, nc * sizeof(*off));
	if (off)
		g->off = off;
	size_t *cnt = realloc(g->cnt, nc * sizeof(*cnt));
	if (cnt)
		g->cnt = cnt;
	uint32_t *owed = realloc(g->owed, nc * sizeof(*owed));
	if (owed)
		g->owed = owed;
	struct vg_rrd_loc *loc = realloc(g->loc, nc * sizeof(*loc));
	if (loc)
		g->loc = loc;
	struct vg_rrd_item *it = realloc(g->it, nc * sizeof(*it));
	if (it)
		g->it = it;
	if (!se || !seg || !hi || !off || !cnt || !owed || !loc || !it)
		return -ENOMEM;
	g->cap = nc;
	return 0;
}

/* Take se's cached values into g (mu held; se has values and is not in a
 * flush). 0 or -ENOMEM (se untouched). */
static int group_take(struct vg_store *s, struct flush_group *g, struct series *se)
{
	size_t n = se->npend;

	if (group_reserve(g) || reserve_pend(&g->buf, &g->bufcap, g->nbuf + n))
		return -ENOMEM;
	memcpy(g->buf + g->nbuf, se->pend, n * sizeof(*g->buf));
	g->se[g->n] = se;
	g->seg[g->n] = se->seg;
	g->seg_hi[g->n] = s->j.seg_active;
	g->off[g->n] = g->nbuf;
	g->cnt[g->n] = n;
	g->owed[g->n] = se->owed; /* still owed (vg_store.owed) until settled */
	se->owed = 0;
	g->n++;
	g->nbuf += n;
	se->npend = 0;
	if (se->cap > 4 * s->flush_depth && n < se->cap / 4) {
		/* A burst grew it: give the memory back. */
		s->cache_bytes -= se->cap * sizeof(*se->pend);
		free(se->pend);
		se->pend = NULL;
		se->cap = 0;
	}
	s->pending -= n;
	s->inflight += n;
	publish_pending(s);
	dirty_unlink(s, se);
	se->flushing = 1;
	se->deferred = 0;
	if (g->n == 1) { /* in flight until group_write settles it */
		g->seq = ++s->group_seq;
		g->anext = s->groups;
		s->groups = g;
	}
	return 0;
}

/* Whether a group started at or before seq is still being written (its
 * values out of every cache, not yet settled). mu held. */
static int group_in_flight(const struct vg_store *s, uint64_t seq)
{
	for (const struct flush_group *g = s->groups; g; g = g->anext)
		if (g->seq <= seq)
			return 1;
	return 0;
}

/* ---- a series' file deleted while the store runs -----------------------------------
 * The series is in the table (its last update known), so no open will
 * create its file again: the first write that finds it missing does
 * (backend.h "missing": the files backend's librrd cannot open it,
 * rrdcached answers its UPDATE "No such file"). The file is created with
 * the archives of the series' [archives] rule (policy_layout; an agent's
 * heartbeat, or publish_heartbeat for a series a batch of published
 * measures named since the store opened), starting one step
 * before the oldest value that found it missing, and those values are
 * sent again at once, so none of them is lost. Counted
 * (series_recreated) and logged once per re-creation (once per file and
 * deletion: the next write finds the file). */

static void policy_layout(const struct vg_store *s, const char *metric,
			  struct vg_rrd_layout *lay);

/* it's missing values (its last res.missing): create the file of se and
 * write them, folding the outcome into it->res. mu not held; se is being
 * flushed by this thread. The receiver's write-through (no_connect) does
 * not create (that may wait on a daemon): its values stay missing, which
 * group_write settles as unavailable (deferred), so the storage thread
 * takes them at once and finds the file missing itself. A create that cannot be done now (-EAGAIN: no space, the
 * daemon cannot create directories; -EHOSTUNREACH) leaves them
 * unavailable too (cached, retried); any other failure counts them as
 * failed (VG_STORE_ERR_FILE, their journal segments kept). */
static void recreate(struct vg_store *s, struct series *se, struct vg_rrd_item *it, int no_connect)
{
	struct vg_rrd_result *res = &it->res, again = {0};
	size_t nm = res->missing <= it->n ? (size_t)res->missing : it->n;
	const struct vg_rrd_value *v = it->v + (it->n - nm);
	struct vg_rrd_layout lay;
	char msg[512] = "";
	int rc;

	if (no_connect) /* settled as unavailable, retried at once (group_write) */
		return;
	res->missing = 0;
	policy_layout(s, se->metric, &lay);
	/* a published series keeps its long heartbeat, or its sparse points
	 * would read back unknown in the new file (published_layout) */
	if (__atomic_load_n(&se->published, __ATOMIC_RELAXED))
		lay.heartbeat_s = s->publish_heartbeat_s;
	/* from one step before the value (as published_layout): in the old
	 * file it filled the interval since the previous value, so it fills
	 * a whole row here too instead of 1 s of one (an unknown point) */
	int64_t t_s = v[0].t_ms / 1000, step = lay.step_s;
	int64_t first_ms = ((t_s - step >= 0 ? t_s - step : t_s - 1) + 1) * 1000;
	rc = s->be->ops->create(s->be, it->loc, se->kind, first_ms, &lay, msg, sizeof(msg), 0);
	if (rc == -EAGAIN || rc == -EHOSTUNREACH) {
		/* waits with the daemon's other values (its state and error
		 * are the backend's); not last_error: this runs on the storage
		 * or an API thread, and last_error is the receiver's */
		res->unavailable += nm;
		return;
	}
	if (rc) {
		res->failed += nm;
		res->failed_by[VG_STORE_ERR_FILE] += nm;
		snprintf(res->msg, sizeof(res->msg), "%.250s: missing, and could not be created again: %.200s",
			 it->loc->path, msg);
		return;
	}
	count(&s->stats.series_recreated, 1);
	vg_warn("store: %s%s%s: the series' file was missing (deleted while the collector "
		"ran?): created again with the archives of [archives] rule '%s', its values "
		"from %lld ms written to it; what the old file held is gone "
		"(docs/operations.md \"A series file deleted while the collector runs\")",
		it->loc->address ? it->loc->address : "", it->loc->address ? ": " : "",
		it->loc->path, vg_store_policy_name(s, se->metric), (long long)v[0].t_ms);
	s->be->ops->update(s->be, it->loc, v, nm, &again);
	res->written += again.written;
	res->duplicate += again.duplicate;
	res->retries += again.retries;
	res->unavailable += again.unavailable;
	for (int r = 0; r < VG_STORE_ERR_N; r++)
		res->failed_by[r] += again.failed_by[r];
	res->failed += again.failed;
	if (again.missing) { /* gone again at once: not chased */
		res->failed += again.missing;
		res->failed_by[VG_STORE_ERR_FILE] += again.missing;
		snprintf(res->msg, sizeof(res->msg), "%.300s: missing again right after its create",
			 it->loc->path);
	} else if (again.failed) {
		snprintf(res->msg, sizeof(res->msg), "%s", again.msg);
	}
}

/* ---- series known before -------------------------------------------------------------
 * A series not in the table, whose file is missing, may be new (create
 * it) or one the store had before a restart whose type directory is out
 * of reach (a data volume not mounted: its values must wait, not go to a
 * fresh file). The journal's replay knows its series; one with nothing
 * journaled (everything synced before the stop) is told by this set: the
 * key hash of every series the store opened or created, appended to
 * <journal>/known (8 bytes each, host order) and made durable by the
 * sync before any journal segment is retired. A deleted series stays in
 * it (harmless: only a missing type directory makes it wait). A 64-bit
 * hash: two series colliding make a new one wait only while its type
 * directory is missing. */

static uint64_t known_key(uint64_t h)
{
	return h ? h : 1;
}

static int known_has_locked(const struct vg_store *s, uint64_t h)
{
	h = known_key(h);
	for (size_t i = s->known_cap ? h & (s->known_cap - 1) : 0; s->known_cap;
	     i = (i + 1) & (s->known_cap - 1)) {
		if (!s->known[i])
			return 0;
		if (s->known[i] == h)
			return 1;
	}
	return 0;
}

/* 1 if added, 0 if there already, -ENOMEM. */
static int known_put_locked(struct vg_store *s, uint64_t h)
{
	h = known_key(h);
	if ((s->known_n + 1) * 2 > s->known_cap) {
		size_t cap = s->known_cap ? s->known_cap * 2 : 1024;
		uint64_t *t = calloc(cap, sizeof(*t));
		if (!t)
			return -ENOMEM;
		for (size_t i = 0; i < s->known_cap; i++) {
			if (!s->known[i])
				continue;
			size_t j = s->known[i] & (cap - 1);
			while (t[j])
				j = (j + 1) & (cap - 1);
			t[j] = s->known[i];
		}
		free(s->known);
		s->known = t;
		s->known_cap = cap;
	}
	size_t i = h & (s->known_cap - 1);
	while (s->known[i]) {
		if (s->known[i] == h)
			return 0;
		i = (i + 1) & (s->known_cap - 1);
	}
	s->known[i] = h;
	s->known_n++;
	return 1;
}

/* Forget h (mu held): backward-shift deletion, so no tombstone. */
static int known_del_locked(struct vg_store *s, uint64_t h)
{
	size_t i, j, mask = s->known_cap - 1;

	h = known_key(h);
	if (!s->known_cap)
		return 0;
	for (i = h & mask; s->known[i] != h; i = (i + 1) & mask)
		if (!s->known[i])
			return 0;
	for (j = (i + 1) & mask; s->known[j]; j = (j + 1) & mask) {
		size_t home = s->known[j] & mask;
		/* j's entry may move to the hole i unless its home lies
		 * cyclically in (i, j] */
		if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
			s->known[i] = s->known[j];
			i = j;
		}
	}
	s->known[i] = 0;
	s->known_n--;
	return 1;
}

/* se opened: remember it (mu held). A failed append only loses the
 * wait after a restart for this one series (its file is then created as
 * a new one's would be). */
static void known_add_locked(struct vg_store *s, uint64_t h)
{
	if (known_put_locked(s, h) == 1 && s->known_fd >= 0) {
		uint64_t k = known_key(h);
		if (write(s->known_fd, &k, sizeof(k)) == (ssize_t)sizeof(k))
			s->known_dirty = 1;
	}
}

/* A series deleted (vg_store_remove_series): forgotten, so the set and
 * its file stay the size of the series kept; a record 0 then the key
 * (0 is never a key) says so in the file. mu held. */
static void known_forget_locked(struct vg_store *s, uint64_t h)
{
	if (known_del_locked(s, h) && s->known_fd >= 0) {
		uint64_t k[2] = {0, known_key(h)};
		if (write(s->known_fd, k, sizeof(k)) == (ssize_t)sizeof(k))
			s->known_dirty = 1;
	}
}

/* Before a sync retires segments: the keys appended are durable too.
 * mu not held. 0 or -errno. */
static int known_sync(struct vg_store *s)
{
	pthread_mutex_lock(&s->mu);
	int dirty = s->known_dirty, fd = s->known_fd;
	s->known_dirty = 0;
	pthread_mutex_unlock(&s->mu);
	if (!dirty || fd < 0 || !fdatasync(fd))
		return 0;
	int rc = -errno;
	pthread_mutex_lock(&s->mu);
	s->known_dirty = 1;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* Load <journal>/known; the store's owner appends to it. A record torn
 * by a crash (the size not a multiple of 8) is cut off. 0 or -errno. */
static int known_open(struct vg_store *s, char *err, size_t errlen)
{
	char path[PATH_MAX];
	uint64_t buf[512];
	ssize_t n;
	off_t total = 0;
	int fd;

	s->known_fd = -1;
	if ((size_t)snprintf(path, sizeof(path), "%s/known", s->j.dir) >= sizeof(path))
		return 0;
	fd = open(path, (s->owner ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC, 0644);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "store: %s: %s", path, strerror(errno));
		return -errno;
	}
	int forget = 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i + (ssize_t)sizeof(uint64_t) <= n; i += sizeof(uint64_t)) {
			uint64_t k = buf[i / sizeof(uint64_t)];
			if (!k) { /* the next key was deleted */
				forget = 1;
				continue;
			}
			if (forget)
				(void)known_del_locked(s, k);
			else if (known_put_locked(s, k) < 0) {
				close(fd);
				snprintf(err, errlen, "store: out of memory");
				return -ENOMEM;
			}
			forget = 0;
		}
		total += n;
	}
	if (!s->owner) {
		close(fd);
		return 0;
	}
	if ((uint64_t)total / sizeof(uint64_t) > 2 * (uint64_t)s->known_n + 4096) {
		/* mostly deletions: written again with the keys kept only */
		char tmp[PATH_MAX + 8];
		int tfd, ok;
		snprintf(tmp, sizeof(tmp), "%s.new", path);
		ok = (tfd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) >= 0;
		for (size_t i = 0; ok && i < s->known_cap; i++)
			ok = !s->known[i] || write(tfd, &s->known[i], sizeof(uint64_t)) ==
						     (ssize_t)sizeof(uint64_t);
		ok = ok && !fdatasync(tfd) && !rename(tmp, path);
		if (tfd >= 0)
			close(tfd);
		if (!ok) {
			(void)unlink(tmp);
		} else {
			close(fd);
			if ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0) {
				snprintf(err, errlen, "store: %s: %s", path, strerror(errno));
				return -errno;
			}
			total = lseek(fd, 0, SEEK_END);
			(void)vg_fs_fsync_parent(path);
		}
	}
	if ((total % (off_t)sizeof(uint64_t) &&
	     ftruncate(fd, total - total % (off_t)sizeof(uint64_t))) ||
	    lseek(fd, 0, SEEK_END) < 0) {
		snprintf(err, errlen, "store: %s: %s", path, strerror(errno));
		close(fd);
		return -EIO;
	}
	s->known_fd = fd;
	return 0;
}

/* ---- a series' directory missing ---------------------------------------------------
 * A file whose type directory is gone with it (a data volume not mounted,
 * a type directory renamed away; a series' own directory removed, its
 * type directory there, is a deletion: recreate), or whose directory is
 * on another file system
 * than the store's (a volume replaced: files backend) was not deleted: it
 * is out of reach, and a file
 * created again there would split the series and, once the directory is
 * back, shadow the real one. So the backend answers its values
 * unavailable (backend.h dir_missing), never missing: they wait in the
 * cache and the journal (their segments held) as for a storage daemon
 * that is down, retried each second, the cache bound answering RETRY
 * when too many wait, and are written to the real file once its directory
 * is back. Counted once per series and episode (series_dir_missing) and
 * logged at most once a minute, with the path. A daemon that refuses the
 * LIST that would tell (dir_unknown) is treated alike, its log saying so.
 * The start replay's series are not new either, nor those the store had
 * before a restart (series known before): series_open does not create
 * them when their directory is missing (VG_RRD_KNOWN). */

#define DIR_LOG_MS 60000

/* se's write it found its directory missing (it->res.dir_missing) or not.
 * mu not held; se is being flushed by this thread. */
static void dir_note(struct vg_store *s, struct series *se, const struct vg_rrd_item *it)
{
	const char *addr = it->loc->address;

	if (!it->res.dir_missing) {
		if (it->res.written && se->dir_gone) {
			se->dir_gone = 0; /* back: a later loss is a new episode */
			__atomic_fetch_sub(&s->stats.series_dir_waiting, 1, __ATOMIC_RELAXED);
		}
		return;
	}
	if (se->dir_gone)
		return;
	se->dir_gone = 1;
	count(&s->stats.series_dir_missing, 1);
	count(&s->stats.series_dir_waiting, 1);
	int64_t now = vg_monotonic_ms();
	int64_t last = __atomic_load_n(&s->dir_log_ms, __ATOMIC_RELAXED);
	if (last && now - last < DIR_LOG_MS) {
		__atomic_fetch_add(&s->dir_log_quiet, 1, __ATOMIC_RELAXED);
		return;
	}
	if (!__atomic_compare_exchange_n(&s->dir_log_ms, &last, now, 0, __ATOMIC_RELAXED,
					 __ATOMIC_RELAXED)) {
		__atomic_fetch_add(&s->dir_log_quiet, 1, __ATOMIC_RELAXED);
		return;
	}
	uint64_t quiet = __atomic_exchange_n(&s->dir_log_quiet, 0, __ATOMIC_RELAXED);
	if (it->res.dir_unknown) {
		vg_warn("store: %s%s%s: the series' file is missing and the storage daemon "
			"cannot tell whether its directory is there (%s): not created again; "
			"its values wait in the cache and the journal until the daemon answers "
			"(%llu other series found so since the last such message): permit LIST "
			"on its socket, with the other commands the collector uses (-P "
			"PING,UPDATE,BATCH,CREATE,INFO,LAST,FIRST,FORGET,FLUSH,FETCH,LIST,"
			"PENDING,STATS; docs/operations.md \"A directory gone, not a file\")",
			addr ? addr : "", addr ? ": " : "", it->loc->path, it->res.msg,
			(unsigned long long)quiet);
		return;
	}
	vg_warn("store: %s%s%s: the series' file and its type directory are missing, or "
		"that directory is on another file system than before (a data volume not "
		"mounted or replaced, a directory renamed away?): not created again; its "
		"values wait in the cache and the journal until the directory is back "
		"(%llu other series found so since the last such message; "
		"docs/operations.md \"A series file deleted while the collector runs\")",
		addr ? addr : "", addr ? ": " : "", it->loc->path, (unsigned long long)quiet);
}

/* Write the series of g and settle them. mu held on entry and on return
 * (dropped while writing). Empties g (keeps its memory). */
static void group_write(struct vg_store *s, struct flush_group *g)
{
	size_t m = 0;

	if (!g->n)
		return;
	for (size_t i = 0; i < g->n; i++) { /* read under mu */
		g->loc[i].arrived_ms = g->se[i]->arrived_ms;
		g->loc[i].flush_first = g->se[i]->arrived_ms > g->se[i]->flushed_ms;
	}
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < g->n; i++) {
		struct series *se = g->se[i];
		int64_t arrived = g->loc[i].arrived_ms;
		int flush_first = g->loc[i].flush_first;
		if (s->be->ops->locate(s->be, se->rtype, se->id, se->metric, &g->loc[i])) {
			g->loc[i].path[0] = '\0';
			continue;
		}
		g->loc[i].owner = se->owner;
		g->loc[i].arrived_ms = arrived;
		g->loc[i].flush_first = flush_first;
		g->it[m] = (struct vg_rrd_item){.loc = &g->loc[i],
						.v = g->buf + g->off[i],
						.n = g->cnt[i],
						.no_connect = g->no_connect,
						.deadline_ms = g->no_connect ? s->batch_deadline_ms
									     : 0};
		m++;
	}
	if (s->be->ops->update_many && (m > 1 || (m && g->no_connect)))
		s->be->ops->update_many(s->be, g->it, m);
	else
		for (size_t k = 0; k < m; k++)
			s->be->ops->update(s->be, g->it[k].loc, g->it[k].v, g->it[k].n,
					   &g->it[k].res);
	for (size_t k = 0; k < m; k++) {
		struct series *se = g->se[g->it[k].loc - g->loc];
		if (g->it[k].res.missing)
			recreate(s, se, &g->it[k], g->no_connect);
		dir_note(s, se, &g->it[k]);
	}
	pthread_mutex_lock(&s->mu);

	for (size_t i = 0, k = 0; i < g->n; i++) {
		struct series *se = g->se[i];
		size_t n = g->cnt[i], unavail = 0, failed = n, cut = 0;
		const struct vg_rrd_value *v = g->buf + g->off[i];

		s->inflight -= n; /* settled below: written, failed or requeued */

		if (g->loc[i].path[0]) {
			const struct vg_rrd_result *res = &g->it[k++].res;
			/* missing: left by the receiver's write-through (recreate) */
			unavail = res->unavailable + res->missing <= n
					  ? (size_t)(res->unavailable + res->missing)
					  : n;
			count(&s->stats.values_flushed, res->written);
			if (res->written)
				s->write_gen++; /* for the next sync (reclaim) */
			count(&s->stats.values_duplicate, res->duplicate);
			count(&s->stats.write_retries, res->retries);
			for (int r = 0; r < VG_STORE_ERR_N; r++)
				count_err(s, r, res->failed_by[r]);
			failed = res->failed;
			cut = res->cut;
			if (cut)
				s->wt_cut = 1;
			if (res->flushed && g->loc[i].arrived_ms > se->flushed_ms)
				se->flushed_ms = g->loc[i].arrived_ms;
			if (res->failed) {
				snprintf(s->flush_error, sizeof(s->flush_error), "%s", res->msg);
				s->flush_error_new = 1;
			}
		} else {
			count_err(s, VG_STORE_ERR_OTHER, n);
		}
		/* its owed values are settled here: written, failed, or owed
		 * again below */
		s->owed -= g->owed[i];
		if (unavail && requeue(s, se, v + (n - unavail), unavail, g->seg[i]) == 0) {
			/* Waiting for its daemon, still in the cache and the
			 * journal (its segment stays held); counted in
			 * pending, so the cache bound answers RETRY when too
			 * many wait, and owed. Left by the receiver: the
			 * storage thread takes it at once (it may connect);
			 * owed meanwhile, as vg_store_flush skips it (its
			 * retry_at_ms) */
			se->owed += (uint32_t)unavail;
			s->owed += unavail;
			se->flushing = 0;
			if (cut >= unavail) /* the batch's deadline only: no back-off */
				se->retry_at_ms = 0;
			if (g->no_connect) {
				se->deferred = 1;
				pthread_cond_signal(&s->work_cv);
			}
			continue;
		}
		if (unavail) /* no memory to keep them: its segments are kept */
			failed += unavail;
		if (failed) {
			/* Its values went into segments seg..seg_hi (appended
			 * before they were copied out): keep them all. */
			for (uint64_t id = g->seg[i]; id <= g->seg_hi[i] && id < g->seg[i] + SEG_RING;
			     id++)
				s->segkeep[id % SEG_RING] = 1;
		}
		se->flushing = 0;
		s->segcnt[g->seg[i] % SEG_RING]--;
	}
	g->n = 0;
	g->nbuf = 0;
	for (struct flush_group **p = &s->groups; *p; p = &(*p)->anext)
		if (*p == g) {
			*p = g->anext;
			break;
		}
	g->anext = NULL;
	publish_pending(s);
	pthread_cond_broadcast(&s->done_cv);
	if (g->no_connect) {
		/* the backend's sync may connect: the storage thread's */
		s->reclaim_due = 1;
		pthread_cond_signal(&s->work_cv);
	} else {
		reclaim(s, 0, g->cause);
	}
}

/* Take a series' cached values and write them. mu held on entry and on
 * return (dropped while writing). se must have values and not be in a
 * flush. */
static int flush_series(struct vg_store *s, struct series *se, struct flush_group *g)
{
	if (group_take(s, g, se))
		return -ENOMEM;
	group_write(s, g);
	return 0;
}

/* The receiver's write-through reached the batch's deadline: every
 * cached series not being written is left to the storage thread, taken
 * at once (deferred), in the cache and the journal meanwhile. 1 when
 * some was left. mu held. */
static int defer_rest(struct vg_store *s, int64_t now)
{
	int left = 0;

	for (struct series *se = s->dhead; se; se = se->dnext)
		if (!se->flushing && se->npend && se->retry_at_ms <= now) {
			se->deferred = 1;
			left = 1;
		}
	if (left)
		pthread_cond_signal(&s->work_cv);
	return left;
}

/* Write every cached value, FLUSH_GROUP_MAX series per backend call.
 * mu held. */
static int flush_all_locked(struct vg_store *s, int no_connect, int cause)
{
	struct flush_group own = {0}, *g = &own;
	int rc = 0;

	int64_t now = vg_monotonic_ms();

	if (!s->wgroup_busy) { /* the store's group, reused (see wgroup) */
		g = &s->wgroup;
		s->wgroup_busy = 1;
	}
	g->no_connect = no_connect;
	g->cause = cause;

	for (;;) {
		struct series *se = s->dhead, *next;
		int busy = 0;
		if (no_connect && s->batch_deadline_ms && now >= s->batch_deadline_ms &&
		    defer_rest(s, now)) {
			/* the batch's deadline: what is left waits for the
			 * storage thread (held: the batch's host is marked) */
			break;
		}
		/* series waiting for an unreachable daemon stay cached */
		for (; se && g->n < FLUSH_GROUP_MAX; se = next) {
			next = se->dnext;
			if (se->flushing || se->retry_at_ms > now) {
				busy |= se->flushing;
				if (no_connect && se->flushing)
					se->deferred = 1; /* its newer values too */
				continue;
			}
			if ((rc = group_take(s, g, se)))
				break;
		}
		if (g->n) {
			group_write(s, g);
			now = vg_monotonic_ms();
			if (no_connect && s->wt_cut) {
				/* a round trip the deadline could not hold:
				 * the rest cannot wait for it either */
				defer_rest(s, now);
				break;
			}
			if (!rc)
				continue;
		}
		if (rc || !busy || no_connect)
			break;
		/* Only series another thread is writing are left (the
		 * receiver does not wait for them: the storage thread's write
		 * may be connecting to a daemon, and takes their newer values
		 * after, deferred). */
		pthread_cond_wait(&s->done_cv, &s->mu);
		now = vg_monotonic_ms();
	}
	if (g == &own) {
		group_free(&own);
	} else {
		/* keep the arrays; give back values memory a big flush grew */
		if (g->bufcap > WGROUP_BUF_KEEP) {
			free(g->buf);
			g->buf = NULL;
			g->bufcap = 0;
		}
		s->wgroup_busy = 0;
	}
	return rc;
}

int vg_store_flush(struct vg_store *s)
{
	int rc;

	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->mu);
	uint64_t started = s->group_seq;
	resend_lost(s);
	rc = flush_all_locked(s, 0, VG_STORE_SYNC_FLUSH);
	/* Groups another thread took before this call (the storage thread's,
	 * the receiver's write-through) hold values handed in before it,
	 * out of the cache (flush_all_locked does not see them) but not yet
	 * on the backend, their journal segments held, their owed values
	 * still counted: wait for them to settle, or the sync below does not
	 * cover them and the flush returned 0 with a segment left, or -EIO
	 * for values on their way (store_flush_wait_test). Each write is
	 * bounded by the backend's own waits. Groups started after this
	 * call are not waited for. */
	while (group_in_flight(s, started))
		pthread_cond_wait(&s->done_cv, &s->mu);
	resend_lost(s); /* found by this flush's new connections */
	/* Another thread's sync (the storage thread's, after its own writes)
	 * may be running: it took its files before ours were written and
	 * reclaim would return at once, leaving them for some later sync.
	 * Wait for it, then sync (docs/benchmarks.md "Where the FLUSHes come
	 * from": the bench's creating round leaked into its measured one). */
	while (s->reclaiming)
		pthread_cond_wait(&s->done_cv, &s->mu);
	reclaim(s, 1, VG_STORE_SYNC_FLUSH);
	/* That sync failed (a daemon down, refusing its FLUSHes, or inside
	 * the back-off of an earlier refusal, when it sends nothing): what
	 * it was to make durable is not, and the caller must not take a 0
	 * for it (the bench's rounds did: its store owed the FLUSHes of
	 * every file it had written). The storage thread tries again.
	 * A forced reclaim skips the sync only when nothing was written
	 * since the last one that passed. */
	if (!rc && s->sync_failed)
		rc = -EIO;
	/* Nor while values are owed: their daemon or file did not take them
	 * (down, a directory gone) and no write has since. A sync can pass,
	 * or have nothing to do, while they wait, since the daemon that is
	 * down has no file of ours to FLUSH (store_rrdcached_test
	 * test_open_daemon_down_bound got 0 with a daemon down, twice in
	 * fresh-clone CI runs on 2026-12-07). Values cached meanwhile by
	 * another thread are not owed: once the owed ones are written, a
	 * flush passes, however long ago the daemon was down
	 * (store_rrdcached_sync_test test_flush_after_outage). */
	if (!rc && s->owed)
		rc = -EIO;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* The storage thread: write the oldest series that is due; sleep when
 * none is. A series is due when it holds flush_depth values, when its
 * oldest value waited FLUSH_MAX_AGE_MS, when the cache is over half full
 * or the journal has too many segments (oldest first, to free them), or
 * when no batch came for IDLE_FLUSH_MS and none is being taken (an idle
 * store writes everything).
 * A sync that failed is tried again every RETRY_SYNC_MS with no batch
 * needed (see there), so the journal drains and a restarted daemon's
 * losses are found and re-sent while no agent sends. */
static void *flusher_main(void *arg)
{
	struct vg_store *s = arg;

	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		resend_lost(s);
		int64_t now = vg_monotonic_ms(), wait_ms = 100;
		if (s->reclaim_due || (s->write_through && s->sync_interval_ms > 0) ||
		    (s->sync_failed && now - s->sync_try_ms >= RETRY_SYNC_MS)) {
			/* left by the receiver's write-through, or its
			 * sync_interval passed, or the last sync failed and
			 * no write since tried again (reclaim asks sync_due;
			 * see RETRY_SYNC_MS) */
			int cause = s->reclaim_due ? VG_STORE_SYNC_BATCH
						   : VG_STORE_SYNC_INTERVAL;
			/* Cleared before the sync, which drops mu: a batch
			 * written through meanwhile asks again and gets a
			 * sync of its own. Cleared after it, that ask was
			 * lost, and a collector whose agents then went quiet
			 * left its last batch unFLUSHed, its segment and its
			 * verified row behind, until the next batch (seen in
			 * shared_daemon_fault_test: 1,520 files for a
			 * minute). Another thread's sync under way (reclaim
			 * returns at once) leaves the ask for the next pass. */
			if (!s->reclaiming) {
				s->reclaim_due = 0;
				reclaim(s, 0, cause);
			}
			now = vg_monotonic_ms();
		}
		int full = s->pending > s->cache_max / 2;
		int segs = s->j.seg_active - s->j.seg_oldest >=
			   (s->write_through ? WT_MAX_LIVE_SEGS : MAX_LIVE_SEGS);
		int pressure = full || segs;
		/* not while a batch is being taken: one that creates many
		 * series may take seconds (1,000 CREATEs on a busy daemon),
		 * and writing the cache then synced the backend once per such
		 * batch (docs/benchmarks.md "Where the FLUSHes come from") */
		int receiving = __atomic_load_n(&s->receiving, __ATOMIC_RELAXED);
		int idle = !receiving && now - s->last_batch_ms >= IDLE_FLUSH_MS;
		int skipped = 0;

		/* every due series among the oldest, up to a group */
		for (struct series *se = s->dhead, *next;
		     se && skipped < 64 && s->fgroup.n < FLUSH_GROUP_MAX; se = next) {
			next = se->dnext;
			if (se->flushing || (se->retry_at_ms > now && !se->deferred)) {
				skipped++;
				continue;
			}
			if (pressure || idle || se->deferred || se->npend >= s->flush_depth ||
			    now - se->since_ms >= FLUSH_MAX_AGE_MS) {
				/* the group's cause: its first series' */
				int why = full                          ? VG_STORE_SYNC_CACHE
					  : segs                        ? VG_STORE_SYNC_SEGMENTS
					  : idle                        ? VG_STORE_SYNC_IDLE
					  : se->deferred                ? VG_STORE_SYNC_BATCH
					  : se->npend >= s->flush_depth ? VG_STORE_SYNC_DEPTH
									: VG_STORE_SYNC_AGE;
				if (!s->fgroup.n)
					s->fgroup.cause = why;
				if (group_take(s, &s->fgroup, se))
					break;
			} else {
				skipped++;
			}
		}
		if (s->fgroup.n) {
			group_write(s, &s->fgroup);
			continue;
		}
		if (s->write_through && s->be->ops->warm && now - s->warm_ms >= WARM_EVERY_MS) {
			/* a connection to every daemon, also on a collector
			 * that writes nothing now: what proves another
			 * collector's values when a host fails over to it
			 * (vg_store_prove_arrival) */
			s->warm_ms = now;
			pthread_mutex_unlock(&s->mu);
			s->be->ops->warm(s->be);
			pthread_mutex_lock(&s->mu);
			continue;
		}
		if (s->dhead) {
			int64_t due = s->dhead->since_ms + FLUSH_MAX_AGE_MS - now;
			int64_t idle_due = s->last_batch_ms + IDLE_FLUSH_MS - now;
			if (due < wait_ms)
				wait_ms = due;
			if (!receiving && idle_due < wait_ms)
				wait_ms = idle_due;
			if (wait_ms < 1)
				wait_ms = s->dhead->retry_at_ms > now ? 50 : 1;
		}
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += wait_ms / 1000;
		ts.tv_nsec += (wait_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->work_cv, &s->mu, &ts);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* ---- taking a batch (receiver thread) ----------------------------------------------------- */

/* ---- removal: taking a series out (vg_store_remove_series) ----------------------
 * A series is removed only when nothing uses it: the remover marks its key
 * (removing) under mu, takes the series out of the cache (dead: the
 * flusher skips it, the receiver stops caching for it), waits until no
 * flush of it, no vg_store_fetch of its key and no create of its key is in
 * flight, then lets the backend delete it with mu released. Readers and a
 * create of the same key wait for the removal to end. Only the receiver
 * takes a dead series out of the table and frees it (reap_dead), since it
 * looks series up without the lock; the others only mark. */

static int key_eq(const struct key_use *a, int rtype, const char *id,
		  const char *metric)
{
	return a && a->rtype == rtype && !strcmp(a->id, id) &&
	       !strcmp(a->metric, metric);
}

/* Wait (mu held) until no creation and no read of this key is running. */
static void wait_key_unused(struct vg_store *s, int rtype, const char *id, const char *metric)
{
	for (;;) {
		int busy = key_eq(s->creating, rtype, id, metric);
		for (struct key_use *k = s->readers; k && !busy; k = k->next)
			busy = key_eq(k, rtype, id, metric);
		if (!busy)
			break;
		pthread_cond_wait(&s->done_cv, &s->mu);
	}
}

/* Wait (mu held) until no removal of this key is running. */
static void wait_not_removing(struct vg_store *s, int rtype, const char *id,
			      const char *metric)
{
	while (key_eq(s->removing, rtype, id, metric))
		pthread_cond_wait(&s->done_cv, &s->mu);
}

static void creating_begin(struct vg_store *s, struct key_use *k)
{
	pthread_mutex_lock(&s->mu);
	wait_not_removing(s, k->rtype, k->id, k->metric);
	s->creating = k;
	pthread_mutex_unlock(&s->mu);
}

static void creating_end(struct vg_store *s)
{
	pthread_mutex_lock(&s->mu);
	s->creating = NULL;
	pthread_cond_broadcast(&s->done_cv);
	pthread_mutex_unlock(&s->mu);
}

static void reader_begin(struct vg_store *s, struct key_use *k)
{
	pthread_mutex_lock(&s->mu);
	wait_not_removing(s, k->rtype, k->id, k->metric);
	k->next = s->readers;
	s->readers = k;
	pthread_mutex_unlock(&s->mu);
}

static void reader_end(struct vg_store *s, struct key_use *k)
{
	pthread_mutex_lock(&s->mu);
	for (struct key_use **pp = &s->readers; *pp; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	pthread_cond_broadcast(&s->done_cv);
	pthread_mutex_unlock(&s->mu);
}

/* Backward-shift deletion from the open-addressing table. mu held;
 * receiver thread only (it reads the table without the lock). */
static void table_remove(struct vg_store *s, struct series *se)
{
	size_t mask = s->cap - 1, i = se->hash & mask;

	while (s->tab[i].se != se) {
		if (!s->tab[i].se)
			return;
		i = (i + 1) & mask;
	}
	for (size_t j = (i + 1) & mask; s->tab[j].se; j = (j + 1) & mask) {
		size_t home = s->tab[j].hash & mask;
		/* move j into the hole at i if its home is not in (i, j] */
		if ((j > i && (home <= i || home > j)) ||
		    (j < i && (home <= i && home > j))) {
			s->tab[i] = s->tab[j];
			i = j;
		}
	}
	s->tab[i] = (struct slot){0, NULL};
	s->used--;
}

/* Take the removed series out of the table and free them. Receiver
 * thread only, holding no series pointer. */
static void reap_dead(struct vg_store *s)
{
	pthread_mutex_lock(&s->mu);
	while (s->dead) {
		struct series *se = s->dead;
		s->dead = se->dnext;
		table_remove(s, se);
		if (se->dir_gone) /* its values went with it */
			__atomic_fetch_sub(&s->stats.series_dir_waiting, 1, __ATOMIC_RELAXED);
		free(se->pend);
		free(se);
	}
	pthread_mutex_unlock(&s->mu);
}

int vg_store_remove_series(struct vg_store *s, int rtype, const char *id,
			   const char *metric)
{
	struct vg_rrd_loc loc;
	struct key_use mine = {rtype, id, metric, NULL};
	struct series *se;
	int rc;

	if (!s || !id || !metric)
		return -EINVAL;
	if ((rc = s->be->ops->locate(s->be, rtype, id, metric, &loc)))
		return rc == -ENAMETOOLONG ? -EINVAL : rc;
	pthread_mutex_lock(&s->mu);
	while (s->removing) /* one removal at a time */
		pthread_cond_wait(&s->done_cv, &s->mu);
	s->removing = &mine;
	se = table_find(s, rtype, id, metric,
			key_hash(rtype, vg_fnv1a(VG_FNV_OFFSET, id), metric));
	if (se && !se->dead) {
		while (se->flushing)
			pthread_cond_wait(&s->done_cv, &s->mu);
		if (se->npend) {
			/* values of a series being deleted: not written; their
			 * journal segment is kept (a replay would bring them
			 * back as a new series) */
			s->pending -= se->npend;
			publish_pending(s);
			s->segcnt[se->seg % SEG_RING]--;
			s->segkeep[se->seg % SEG_RING] = 1;
			se->npend = 0;
			s->owed -= se->owed; /* no longer owed to any file */
			se->owed = 0;
		}
		dirty_unlink(s, se);
		loc.owner = se->owner;
		__atomic_store_n(&se->dead, 1, __ATOMIC_RELEASE);
		se->dnext = s->dead;
		__atomic_store_n(&s->dead, se, __ATOMIC_RELEASE);
	}
	wait_key_unused(s, rtype, id, metric);
	pthread_mutex_unlock(&s->mu);

	rc = s->be->ops->remove(s->be, &loc);

	pthread_mutex_lock(&s->mu);
	if (!rc) /* its file gone: it may come back as a new series */
		known_forget_locked(s, key_hash(rtype, vg_fnv1a(VG_FNV_OFFSET, id), metric));
	s->removing = NULL;
	pthread_cond_broadcast(&s->done_cv);
	reclaim(s, 0, VG_STORE_SYNC_OTHER);
	pthread_mutex_unlock(&s->mu);
	if (!rc)
		count(&s->series_removed, 1);
	return rc;
}

/* ---- archive policies (create time) ------------------------------------------------
 * A new series gets the archives of the first [archives] rule whose
 * pattern matches its metric name, else [storage] archives. Only a create
 * looks: an existing series keeps the layout it was created with until
 * `vigie-collector storage convert` changes it. */

static const struct vg_archive_policy *policy_find(const struct vg_store *s,
						   const char *metric)
{
	for (size_t i = 0; i < s->npolicies; i++)
		if (!fnmatch(s->policies[i].pattern, metric, 0))
			return &s->policies[i];
	return NULL;
}

static void policy_layout(const struct vg_store *s, const char *metric,
			  struct vg_rrd_layout *lay)
{
	const struct vg_archive_policy *p = policy_find(s, metric);

	*lay = s->layout;
	if (p) {
		lay->archives = p->archives;
		lay->narchives = p->narchives;
	}
}

/* ---- published series (create time) ------------------------------------------------
 * A series created by published measures (POST /v1/measures: a backup's
 * size once an hour, a job's duration once a day) is sparse by nature,
 * where an agent's is sampled every interval. RRD keeps intervals: a
 * value at T fills the interval since the previous update only if that is
 * at most the data source's heartbeat, and a file's first update fills the
 * interval since its start. So a published series gets
 *  - [storage] publish_heartbeat (2 days by default) instead of
 *    [storage] heartbeat: each point fills the whole interval since the
 *    series' previous point, up to that long (a gauge reads, in every row
 *    in between, the value published at the row's end);
 *  - its start one step before its first point (T - step), not one
 *    second before it: the first point fills a step of time as every later
 *    point does, so at least half of one row holds it whatever T's place
 *    in its step (a start at T's step boundary would leave a point at
 *    08:00:20 20 s of its row: unknown until the next point).
 * Agents' series keep the 600 s heartbeat (a silent agent's VM shows as a
 * gap, not as its next sample's value held back over the outage) and
 * their start at T - 1 s. Only a create looks, and only the batch's flag
 * says "published": a series re-created from the journal's replay (its
 * file gone meanwhile) gets the agent's layout. A file deleted while the
 * store runs is created again with publish_heartbeat if a published batch
 * named its series since the open (series.published, recreate). */
static void published_layout(const struct vg_store *s, struct vg_rrd_layout *lay,
			     int64_t *first_ms)
{
	int64_t t_s = *first_ms / 1000, step = lay->step_s;
	int64_t start = t_s - step >= 0 ? t_s - step : t_s - 1;

	lay->heartbeat_s = s->publish_heartbeat_s;
	/* create's contract: first accepted time after first_ms - 1 s */
	*first_ms = (start + 1) * 1000;
}

const char *vg_store_policy_name(const struct vg_store *s, const char *metric)
{
	const struct vg_archive_policy *p = s && metric ? policy_find(s, metric) : NULL;

	return p ? p->pattern : "default";
}

static void flush_one(struct vg_store *s, int rtype, const char *id,
		      const char *metric, const struct vg_rrd_loc *loc);

/* Whether the series' AVERAGE archives are exactly lay's tiers. */
static int layout_matches(const struct vg_rrd_info *d, const struct vg_rrd_layout *lay)
{
	if (d->nrra != lay->narchives)
		return 0;
	for (size_t i = 0; i < lay->narchives; i++) {
		const struct vg_archive *a = &lay->archives[i];
		time_t span = 0;
		size_t k;
		for (k = 0; k < d->nrra && d->rra[k].res_s != a->resolution_s; k++)
			;
		if (k == d->nrra)
			return 0;
		span = d->last_update - d->last_update % (time_t)a->resolution_s -
		       d->rra[k].cal_start;
		if (span != (time_t)(a->retention_s / a->resolution_s) * a->resolution_s)
			return 0;
	}
	return 1;
}

int vg_store_convert_series(struct vg_store *s, int rtype, const char *id,
			    const char *metric, int *changed, char *msg, size_t msglen)
{
	struct vg_rrd_loc loc;
	struct vg_rrd_layout lay;
	struct vg_rrd_info d;
	struct key_use mine = {rtype, id, metric, NULL};
	struct series *se;
	int rc;

	*changed = 0;
	if (!s || !id || !metric)
		return -EINVAL;
	if (!s->be->ops->convert)
		return -ENOTSUP;
	if ((rc = s->be->ops->locate(s->be, rtype, id, metric, &loc)))
		return rc == -ENAMETOOLONG ? -EINVAL : rc;
	/* another holder's series: not read, not flushed */
	if (s->convert_at[0] &&
	    (loc.recorded || !loc.address || strcmp(loc.address, s->convert_at)))
		return -EXDEV;
	flush_one(s, rtype, id, metric, &loc);
	policy_layout(s, metric, &lay);
	/* exclusive, as a removal: no flush, read or create meanwhile */
	pthread_mutex_lock(&s->mu);
	while (s->removing)
		pthread_cond_wait(&s->done_cv, &s->mu);
	s->removing = &mine;
	se = table_find(s, rtype, id, metric,
			key_hash(rtype, vg_fnv1a(VG_FNV_OFFSET, id), metric));
	while (se && se->flushing)
		pthread_cond_wait(&s->done_cv, &s->mu);
	if (se)
		loc.owner = se->owner;
	wait_key_unused(s, rtype, id, metric);
	pthread_mutex_unlock(&s->mu);

	rc = s->be->ops->info(s->be, &loc, VG_CF_AVERAGE, &d);
	if (rc == -EREMOTEIO) { /* not FLUSHed or unreadable: never "no file" */
		snprintf(msg, msglen,
			 "the storage daemon %.200s refused to FLUSH or read %.300s (its log "
			 "says why): not converted, the file is as it was",
			 loc.address ? loc.address : "", loc.path);
		rc = -EIO;
	}
	if (!rc) {
		/* also with the rule's archives: the engine removes what a
		 * conversion killed before its end left beside the file */
		int need = !layout_matches(&d, &lay);
		rc = s->be->ops->convert(s->be, &loc, need ? &lay : NULL, msg, msglen);
		*changed = need && !rc;
	}

	pthread_mutex_lock(&s->mu);
	s->removing = NULL;
	pthread_cond_broadcast(&s->done_cv);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int vg_store_convert_at(struct vg_store *s, const char *address, const char *dir, char *err,
			size_t errlen)
{
	int rc;

	if (!s || !address || !dir)
		return -EINVAL;
	if ((rc = vg_rrd_rrdcached_convert_dir(s->be, address, dir, err, errlen)))
		return rc;
	snprintf(s->convert_at, sizeof(s->convert_at), "%s", address);
	return 0;
}

int vg_store_usage(struct vg_store *s, int64_t since_s, struct vg_store_usage *out)
{
	memset(out, 0, sizeof(*out));
	if (!s)
		return -EINVAL;
	if (!s->be->ops->usage)
		return -ENOTSUP;
	return s->be->ops->usage(s->be, since_s, out);
}

int vg_store_owns_journal(const struct vg_store *s)
{
	return s && s->owner;
}

/* Every rule's tiers must be multiples of the step. 0 or -EINVAL. */
static int check_archives(const struct vg_archive *a, size_t n, uint32_t step_s,
			  const char *what, char *err, size_t errlen)
{
	if (!n || n > VG_MAX_ARCHIVES) {
		snprintf(err, errlen, "store: %s: no archives", what);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if (!a[i].resolution_s || a[i].resolution_s % step_s ||
		    a[i].retention_s < a[i].resolution_s) {
			snprintf(err, errlen,
				 "store: %s: archive %us:%us is not a multiple of "
				 "the %us step",
				 what, a[i].resolution_s,
				 a[i].retention_s, step_s);
			return -EINVAL;
		}
	return 0;
}

static int series_open(struct vg_store *s, int rtype, const char *id,
		       const char *metric, int kind, uint64_t h, int64_t t_ms,
		       struct vg_rrd_loc *locp, int flags, struct series **out);

/* series_get's flag for a series of published measures (vg_batch.published,
 * never passed to the engine): if it is created, see published_layout. */
#define OPEN_PUBLISHED 0x200

/* series_get's flag for the journal's replay at open (never passed to the
 * engine): a series whose daemon does not answer is opened with its last
 * update unknown (see series_open). */
#define OPEN_REPLAY 0x100

/* The series for (rtype, id, metric), opened on first use: its file's last
 * update is read from the header, or the file is created. Receiver thread
 * (flags VG_RRD_RECEIVER: the engine's waits bounded, backend.h) or open
 * (the journal's replay, flags OPEN_REPLAY); only this path inserts, so
 * lookups need no lock here. 0, -EINVAL (bad name: refused), -EAGAIN (disk full,
 * or its daemon or the placement record does not answer: the batch
 * waits), -EIO, -ENOMEM. */
static int series_get(struct vg_store *s, int rtype, const char *id,
		      const char *metric, int kind, uint64_t h, int64_t t_ms, int flags,
		      struct series **out)
{
	struct vg_rrd_loc loc;
	struct series *se = table_find(s, rtype, id, metric, h);
	int rc;

	if (se) {
		if ((flags & OPEN_PUBLISHED) && !__atomic_load_n(&se->published, __ATOMIC_RELAXED))
			__atomic_store_n(&se->published, 1, __ATOMIC_RELAXED);
		*out = se;
		return 0;
	}
	if (s->be->ops->locate(s->be, rtype, id, metric, &loc))
		return -EINVAL;
	struct key_use mine = {rtype, id, metric, NULL};
	creating_begin(s, &mine);
	rc = series_open(s, rtype, id, metric, kind, h, t_ms, &loc, flags, out);
	creating_end(s);
	if (!rc && (flags & OPEN_PUBLISHED))
		__atomic_store_n(&(*out)->published, 1, __ATOMIC_RELAXED);
	return rc;
}

/* series_get's create-or-read, with the key marked as being created.
 *
 * A daemon that does not answer, or not within the receiver's bound
 * (VG_RRD_RECEIVER), makes the batch wait: -EAGAIN, RETRY to the agent,
 * nothing of the batch journaled or acknowledged, counted in
 * series_unreachable. Never -EIO, which would acknowledge the batch with
 * these values journaled and not cached (kept, never written). A create
 * cut short may have been done or not; the batch's next attempt reads the
 * series again and creates it only if it is still missing (the engine
 * never overwrites: backend.h create), and the series of the batch opened
 * before it stay in the table with their last update (the batch's values
 * are not in them yet), so the re-sent batch is taken whole, once. */
static int series_open(struct vg_store *s, int rtype, const char *id,
		       const char *metric, int kind, uint64_t h, int64_t t_ms,
		       struct vg_rrd_loc *locp, int flags, struct series **out)
{
	struct vg_rrd_loc loc = *locp;
	struct series *se;
	int64_t last;
	int rc;

	rc = s->be->ops->last_ms(s->be, &loc, &last,
				 (flags & VG_RRD_RECEIVER) | (flags & OPEN_REPLAY ? VG_RRD_REPLAY : 0));
	if (rc == -ETIMEDOUT && !((flags & OPEN_REPLAY) && loc.address))
		rc = -EHOSTUNREACH; /* (no daemon known to hold it: below) */
	if (rc == -EHOSTUNREACH && (flags & OPEN_REPLAY) && loc.address) {
		/* The journal's replay, the series' daemon (a configured one,
		 * the series recorded on it when its values were journaled)
		 * not answering: opened with its last update unknown, so that
		 * every value the journal holds for it is cached, held for
		 * the daemon as a running store holds the values of a daemon
		 * that went down (they count in cache_values, their segments
		 * stay). When the daemon answers, those its file already has
		 * (written before the crash) are refused for their time and
		 * skipped as already stored by the engine (backend.h "Errors
		 * per item": at or before the series' last update), the rest
		 * written in order. */
		snprintf(s->last_error, sizeof(s->last_error),
			 "the start replay: the storage daemon %.160s holding %.160s does "
			 "not answer; its journaled values wait in the cache, its files "
			 "checked at a later connection before they are written",
			 loc.address, loc.path);
		last = INT64_MIN;
		rc = 0;
	} else if (rc == -ETIMEDOUT && (flags & OPEN_REPLAY) && loc.address) {
		/* The same wait, the daemon answering: the check of the files
		 * the journal holds values of (replay_spans) reached its bound
		 * ([storage] check_max) before this one, which was not read;
		 * a later connection goes on with the check. */
		snprintf(s->last_error, sizeof(s->last_error),
			 "the start replay: its check of the files on the storage daemon "
			 "%.140s was cut short at [storage] check_max before %.140s, whose "
			 "journaled values wait in the cache; the check goes on at a later "
			 "connection before they are written",
			 loc.address, loc.path);
		last = INT64_MIN;
		rc = 0;
	} else if (rc == -ENOENT) {
		char msg[512] = "";
		struct vg_rrd_layout lay;
		int64_t first_ms = t_ms;
		policy_layout(s, metric, &lay);
		if (flags & OPEN_PUBLISHED)
			published_layout(s, &lay, &first_ms);
		/* the journal's replay, or a series the store had before
		 * (series known before): not a new series, so a file missing
		 * with its directory is out of reach, not to be created
		 * (backend.h VG_RRD_KNOWN) */
		pthread_mutex_lock(&s->mu);
		int known = (flags & OPEN_REPLAY) || known_has_locked(s, h);
		pthread_mutex_unlock(&s->mu);
		rc = s->be->ops->create(s->be, &loc, kind, first_ms, &lay, msg, sizeof(msg),
					(flags & VG_RRD_RECEIVER) | (known ? VG_RRD_KNOWN : 0));
		if (rc == -ENOTDIR) {
			/* opened with its last update unknown: its journaled
			 * values are cached and wait for the directory as a
			 * running store's do ("a series' directory missing",
			 * dir_note), then go to the real file, those it
			 * already holds skipped as already stored */
			snprintf(s->last_error, sizeof(s->last_error),
				 "%s: %.300s: not created, its %s values wait in the cache "
				 "until the directory is back",
				 flags & OPEN_REPLAY ? "the start replay"
						     : "a series this store had before",
				 msg, flags & OPEN_REPLAY ? "journaled" : "new");
			last = INT64_MIN;
			rc = 0;
		} else if (rc) {
			if (rc == -EHOSTUNREACH) {
				count(&s->stats.series_unreachable, 1);
				snprintf(s->last_error, sizeof(s->last_error),
					 "creating a new series: the storage daemon did not "
					 "answer in time (%.300s); created when the batch "
					 "comes again",
					 msg);
				return -EAGAIN;
			}
			if (*msg)
				set_error(s, msg);
			if (rc == -EAGAIN) /* the batch waits: counted as one */
				count(&s->stats.series_unreachable, 1);
			return rc == -EAGAIN ? -EAGAIN : -EIO;
		} else {
			last = (first_ms / 1000 - 1) * 1000;
			/* the engine may have placed it elsewhere (a shared
			 * record's earlier claim): its owner is what locate
			 * says now */
			if (s->be->ops->locate(s->be, rtype, id, metric, &loc))
				return -EIO;
		}
	} else if (rc == -EHOSTUNREACH) {
		/* A new series on a daemon that does not answer: the batch
		 * waits (RETRY) rather than journal a value no file takes. */
		count(&s->stats.series_unreachable, 1);
		if (loc.address)
			snprintf(s->last_error, sizeof(s->last_error),
				 "the storage daemon %.200s holding %.200s does not answer",
				 loc.address, loc.path);
		else /* vg_store_placement says which */
			snprintf(s->last_error, sizeof(s->last_error),
				 "%.300s: no daemon known to hold it (the shared placement "
				 "record does not answer, or names a daemon not in [storage] "
				 "daemons)",
				 loc.path);
		return -EAGAIN;
	} else if (rc == -EAGAIN) {
		/* No file descriptor or memory to read it now (the engine's
		 * -EAGAIN): the batch waits rather than journal values whose
		 * series is unreadable (their segment would be kept, never
		 * written back). */
		count(&s->stats.series_unreachable, 1);
		snprintf(s->last_error, sizeof(s->last_error), "%.300s: %s",
			 strlen(loc.path) > 300 ? loc.path + strlen(loc.path) - 300
						: loc.path,
			 "cannot be opened now (no file descriptor or memory left)");
		return -EAGAIN;
	} else if (rc) {
		snprintf(s->last_error, sizeof(s->last_error), "%.300s: %s",
			 strlen(loc.path) > 300 ? loc.path + strlen(loc.path) - 300
						: loc.path,
			 "exists but librrd cannot read it");
		return -EIO;
	}
	if (!(se = series_new(rtype, id, metric, kind, h)))
		return -ENOMEM;
	se->last_ms = last;
	se->owner = loc.owner;
	/* its last update read (the engine FLUSHes first) or its file made
	 * now: nothing of another collector's waits to be FLUSHed before
	 * this batch's values (take_batch) */
	if (last != INT64_MIN)
		se->opened_gen = s->gen;
	pthread_mutex_lock(&s->mu);
	rc = table_insert(s, se);
	if (!rc)
		known_add_locked(s, h);
	pthread_mutex_unlock(&s->mu);
	if (rc) {
		free(se);
		return rc;
	}
	*out = se;
	return 0;
}

#define PREFETCH_MAX 8192 /* series announced to the engine per batch */

/* Announce to the engine the series of b not yet in the table, from
 * resource i0's sample j0 on (backend.h prefetch: an engine with a remote
 * placement record asks for them all in one round trip, not one per
 * series). Receiver thread: the table is only inserted into here. */
static void prefetch(struct vg_store *s, const struct vg_batch *b, size_t i0, uint32_t j0)
{
	struct vg_rrd_key *keys = malloc(PREFETCH_MAX * sizeof(*keys));
	size_t n = 0;

	if (!keys)
		return;
	for (size_t i = i0; i < b->nres && n < PREFETCH_MAX; i++) {
		const struct vg_resource *r = &b->res[i];
		uint64_t hid = vg_fnv1a(VG_FNV_OFFSET, r->id);
		for (uint32_t j = i == i0 ? j0 : 0; j < r->nsamples && n < PREFETCH_MAX; j++) {
			const char *m = b->samples[r->first_sample + j].metric;
			if (m && !table_find(s, r->type, r->id, m, key_hash(r->type, hid, m)))
				keys[n++] = (struct vg_rrd_key){r->type, r->id, m};
		}
	}
	s->be->ops->prefetch(s->be, keys, n);
	free(keys);
}

/* take_batch's mark for a sample whose file exists but cannot be read:
 * journaled (its segment is then kept), not cached, counted. */
static struct series unreadable;

/* A series take_batch could not open within the receiver's bound, to be
 * opened between the batch's attempts (open_later). */
struct later_key {
	int rtype, kind, flags;
	int64_t t_ms;
	char *id, *metric;
};

#define LATER_MAX 65536 /* series kept for open_later, the rest left to the re-sends */

static void later_clear(struct vg_store *s)
{
	for (size_t i = 0; i < s->nlater; i++) {
		free(s->later[i].id);
		free(s->later[i].metric);
	}
	free(s->later);
	s->later = NULL;
	s->nlater = s->later_next = 0;
}

/* take_batch cut b's opens at the bound before resource i0's sample j0:
 * note the valid samples from there on whose series is not in the table
 * (replacing what an earlier cut noted: the newest cut batch is the one
 * whose agent re-sends next). On no memory, fewer or none: the re-sends
 * open them as before. */
static void later_note(struct vg_store *s, const struct vg_batch *b, size_t i0, uint32_t j0)
{
	later_clear(s);
	for (size_t i = i0; i < b->nres && s->nlater < LATER_MAX; i++) {
		const struct vg_resource *r = &b->res[i];
		uint64_t hid = vg_fnv1a(VG_FNV_OFFSET, r->id);
		for (uint32_t j = i == i0 ? j0 : 0; j < r->nsamples && s->nlater < LATER_MAX; j++) {
			const struct vg_sample *smp = &b->samples[r->first_sample + j];
			struct later_key *k;
			if (!isfinite(smp->value) || r->time_ms < 1000 || !smp->metric ||
			    (smp->kind != VG_KIND_GAUGE && smp->kind != VG_KIND_COUNTER) ||
			    table_find(s, r->type, r->id, smp->metric,
				       key_hash(r->type, hid, smp->metric)))
				continue;
			if (!(s->nlater & (s->nlater - 1))) { /* 0, 1, 2, 4 ...: grow */
				size_t cap = s->nlater ? 2 * s->nlater : 64;
				void *n = realloc(s->later, cap * sizeof(*s->later));
				if (!n)
					return;
				s->later = n;
			}
			k = &s->later[s->nlater];
			*k = (struct later_key){r->type, smp->kind,
						VG_RRD_RECEIVER | (b->published ? OPEN_PUBLISHED : 0),
						r->time_ms, strdup(r->id), strdup(smp->metric)};
			if (!k->id || !k->metric) {
				free(k->id);
				free(k->metric);
				return;
			}
			s->nlater++;
		}
	}
}

/* The consumer's tick (receiver thread): open the series later_note kept,
 * as the batch's next attempt would (series_get: read, or created with
 * the batch's time), for at most half the receiver's bound, so that the
 * agent's back-off after the RETRY is spent opening and the re-sent batch
 * finds its series open. A refused name is skipped (as the attempt
 * skips it); any other failure (a daemon that does not answer, no space,
 * a file librrd cannot read) drops the rest: the re-sends open them, as
 * without this. */
static void open_later(struct vg_store *s)
{
	int64_t until = vg_monotonic_ms() + (s->daemon_wait_ms / 2 ? s->daemon_wait_ms / 2 : 1);
	size_t opened = 0;

	if (s->later_next >= s->nlater)
		return;
	if (__atomic_load_n(&s->dead, __ATOMIC_ACQUIRE))
		reap_dead(s);
	__atomic_store_n(&s->receiving, 1, __ATOMIC_RELAXED);
	if (s->later_next == 0 && s->be->ops->prefetch) {
		/* as take_batch does: one round trip for a remote placement
		 * record, not one per series */
		size_t n = s->nlater < PREFETCH_MAX ? s->nlater : PREFETCH_MAX;
		struct vg_rrd_key *keys = malloc(n * sizeof(*keys));
		for (size_t i = 0; keys && i < n; i++)
			keys[i] = (struct vg_rrd_key){s->later[i].rtype, s->later[i].id,
						      s->later[i].metric};
		if (keys)
			s->be->ops->prefetch(s->be, keys, n);
		free(keys);
	}
	while (s->later_next < s->nlater && vg_monotonic_ms() < until) {
		struct later_key *k = &s->later[s->later_next];
		struct series *se;
		uint64_t h = key_hash(k->rtype, vg_fnv1a(VG_FNV_OFFSET, k->id), k->metric);
		if (!table_find(s, k->rtype, k->id, k->metric, h)) {
			int rc = series_get(s, k->rtype, k->id, k->metric, k->kind, h, k->t_ms,
					    k->flags, &se);
			if (rc == -EINVAL || rc == -ENOMEM) { /* refused, as the batch's
							       * attempt refuses it */
				s->later_next++;
				continue;
			}
			if (rc) {
				vg_debug("store: opening %s %s between a batch's attempts "
					 "failed: %s; its re-sends open the rest",
					 k->id, k->metric, s->last_error);
				s->later_next = s->nlater;
				break;
			}
			opened++;
		}
		s->later_next++;
	}
	__atomic_store_n(&s->receiving, 0, __ATOMIC_RELAXED);
	if (opened)
		vg_debug("store: %zu new series opened between a batch's attempts, "
			 "%zu left",
			 opened, s->nlater - s->later_next);
	if (s->later_next >= s->nlater)
		later_clear(s);
}

/* Take b: see vg_store_write_batch. journal=0 when replaying. */
static int take_batch(struct vg_store *s, const struct vg_batch *b, int journal,
		      void ***scratch, size_t *scap)
{
	uint64_t naccept = 0, ndup = 0, nrej = 0, nerr_file = 0, nerr_mem = 0,
		 seg = 0, nuncached = 0;
	size_t jlen = 0;
	void **sp;
	int rc, prefetched = 0;

	if (b->nsamples > *scap) {
		void **n = realloc(*scratch, b->nsamples * sizeof(*n));
		if (!n)
			return -ENOMEM;
		*scratch = n;
		*scap = b->nsamples;
	}
	sp = *scratch;
	/* The receiver's opens of new series (a create each, one round trip
	 * and a file written by the daemon) bounded as a whole by its wait
	 * on a daemon: a host's first batch of ~2,600 series took 33 s at
	 * load 22 (docs/benchmarks.md "A host's proof"), past the agents'
	 * ack timeout, and the agent failed over although nothing was
	 * wrong. Past the bound the batch waits (-EAGAIN, RETRY: the agent
	 * stays and re-sends), the series opened so far stay in the table,
	 * so each attempt goes on where the last one stopped and the batch
	 * is taken whole, once (see series_open). */
	/* and by the batch's deadline (vg_store_set_deadline), whichever
	 * comes first: the phases before (a proof) used part of the time */
	int by_deadline = 0;
	int64_t opens_until = journal ? vg_phase_end(vg_monotonic_ms(), s->daemon_wait_ms,
						     s->batch_deadline_ms, &by_deadline)
				      : 0;
	s->gen++;
	if (__atomic_load_n(&s->dead, __ATOMIC_ACQUIRE))
		reap_dead(s); /* before any series pointer of this batch */

	/* 1. Resolve every sample to its series; drop refused and duplicate
	 * ones. Creating files happens here, before anything is journaled,
	 * so a full disk refuses the whole batch. */
	for (size_t i = 0; i < b->nres; i++) {
		const struct vg_resource *r = &b->res[i];
		uint64_t hid = vg_fnv1a(VG_FNV_OFFSET, r->id);

		for (uint32_t j = 0; j < r->nsamples; j++) {
			size_t k = r->first_sample + j;
			const struct vg_sample *smp = &b->samples[k];
			struct series *se = NULL;

			sp[k] = NULL;
			if (!isfinite(smp->value) || r->time_ms < 1000 ||
			    (smp->kind != VG_KIND_GAUGE && smp->kind != VG_KIND_COUNTER) ||
			    !smp->metric) {
				nrej++;
				continue;
			}
			uint64_t h = key_hash(r->type, hid, smp->metric);
			if (opens_until && vg_monotonic_ms() >= opens_until &&
			    !table_find(s, r->type, r->id, smp->metric, h)) {
				count(&s->stats.series_unreachable, 1);
				later_note(s, b, i, j);
				if (by_deadline) {
					s->deadline_cuts++;
					snprintf(s->last_error, sizeof(s->last_error),
						 "opening the batch's new series reached the "
						 "batch's deadline (docs/operations.md \"One "
						 "deadline per batch\"); the rest are opened when "
						 "it comes again");
				} else {
					snprintf(s->last_error, sizeof(s->last_error),
						 "opening the batch's new series took longer "
						 "than the receiver's bound (%u ms, a quarter of "
						 "[agent] ack_timeout_ms); the rest are opened "
						 "when it comes again",
						 s->daemon_wait_ms);
				}
				return -EAGAIN;
			}
			if (!prefetched && s->be->ops->prefetch &&
			    !table_find(s, r->type, r->id, smp->metric, h)) {
				prefetch(s, b, i, j); /* the first new series */
				prefetched = 1;
			}
			rc = series_get(s, r->type, r->id, smp->metric, smp->kind, h,
					r->time_ms,
					(journal ? VG_RRD_RECEIVER : OPEN_REPLAY) |
						(b->published ? OPEN_PUBLISHED : 0),
					&se);
			if (rc == -EAGAIN)
				return rc;
			if (rc == -EINVAL) {
				nrej++;
				continue;
			}
			if (rc == -ENOMEM && journal) {
				/* no memory for the series: its value would be
				 * neither journaled nor cached, and the batch
				 * acknowledged. The batch waits (RETRY, nothing
				 * journaled); the series opened so far stay in the
				 * table, so its next attempt goes on from here. */
				count(&s->stats.series_unreachable, 1);
				snprintf(s->last_error, sizeof(s->last_error),
					 "no memory to open a series of the batch; "
					 "nothing of it journaled, answered RETRY");
				return -EAGAIN;
			}
			if (rc == -ENOMEM) { /* the replay: counted */
				nerr_mem++;
				continue;
			}
			if (rc) {
				nerr_file++;
				sp[k] = &unreadable;
				continue;
			}
			if (se->gen != s->gen) {
				se->gen = s->gen;
				se->tent_ms = se->last_ms;
			}
			if (r->time_ms <= se->tent_ms) {
				ndup++;
				continue;
			}
			se->tent_ms = r->time_ms;
			sp[k] = se;
			naccept++;
		}
	}

	/* 2. The journal record of the accepted samples (and of those whose
	 * file cannot be read: kept with their segment). */
	if ((naccept || nerr_file) && journal && s->owner) {
		if (vg_journal_encode(&s->j, b, sp, &jlen))
			return -ENOMEM;
	}

	/* 3. Room in the cache? Then claim the journal and append. */
	pthread_mutex_lock(&s->mu);
	if (s->flush_error_new) {
		snprintf(s->last_error, sizeof(s->last_error), "%s", s->flush_error);
		s->flush_error_new = 0;
	}
	if (naccept && journal && s->pending &&
	    s->pending + naccept > s->cache_max) {
		pthread_cond_signal(&s->work_cv);
		/* Why it is full, as far as the store can tell: series whose
		 * type directory is missing, values their daemon did not take
		 * and that wait for it (owed), or a slow writer. */
		int waiting = s->owed > 0;
		unsigned long long held = s->pending;
		pthread_mutex_unlock(&s->mu);
		count(&s->stats.cache_full, 1);
		__atomic_store_n(&s->cache_full_ms, vg_monotonic_ms(), __ATOMIC_RELAXED);
		unsigned long long dirs =
			__atomic_load_n(&s->stats.series_dir_waiting, __ATOMIC_RELAXED);
		int daemons = s->be && !strcmp(s->be->ops->name, "rrdcached");
		if (dirs)
			snprintf(s->last_error, sizeof(s->last_error),
				 "storage full: the write-behind cache holds %llu values, those of "
				 "%llu series waiting because their type directory is missing (a "
				 "data volume not mounted, a directory renamed away?: see the log "
				 "and /v1/health)",
				 held, dirs);
		else
			snprintf(s->last_error, sizeof(s->last_error),
				 "storage full: the write-behind cache holds %llu values, %s", held,
				 !waiting  ? "the storage thread is behind"
				 : daemons ? "some waiting for a storage daemon that is down or "
					     "behind (see /v1/health)"
					   : "some that could not be written for now (a full "
					     "disk? see the log and /v1/health)");
		return -EAGAIN;
	}
	if (jlen) {
		if (s->j.seg_fd >= 0 && s->j.seg_bytes + jlen > VG_JOURNAL_SEG_MAX_BYTES) {
			if (s->j.seg_active + 1 - s->j.seg_oldest >= SEG_RING) {
				pthread_cond_signal(&s->work_cv);
				pthread_mutex_unlock(&s->mu);
				snprintf(s->last_error, sizeof(s->last_error),
					 "storage full: %d journal segments wait for the "
					 "storage thread",
					 SEG_RING - 1);
				return -EAGAIN;
			}
			/* the closed segment stays until its values are written */
			vg_journal_rotate(&s->j);
		}
		s->journal_busy = 1;
		seg = s->j.seg_active;
		pthread_mutex_unlock(&s->mu);
		int rotate = 0;
		rc = vg_journal_append(&s->j, seg, jlen, &rotate, s->last_error,
				       sizeof(s->last_error));
		pthread_mutex_lock(&s->mu);
		if (rotate)
			s->j.seg_active++; /* never append after a torn record */
		if (rc) {
			s->journal_busy = 0;
			pthread_mutex_unlock(&s->mu);
			return rc;
		}
	} else {
		seg = s->j.seg_active;
	}

	/* 4. Into the caches. */
	int64_t now = vg_monotonic_ms();
	if (nerr_file && jlen)
		s->segkeep[seg % SEG_RING] = 1;
	for (size_t i = 0; i < b->nres && naccept; i++) {
		const struct vg_resource *r = &b->res[i];
		for (uint32_t j = 0; j < r->nsamples; j++) {
			struct series *se = sp[r->first_sample + j];
			if (!se || se == &unreadable)
				continue;
			if (se->dead) {
				/* removed since step 1: journaled, not cached;
				 * counted, and its segment is kept */
				nerr_file++;
				naccept--;
				s->segkeep[seg % SEG_RING] = 1;
				continue;
			}
			if (se->npend == se->cap) {
				uint32_t ncap = se->cap ? se->cap * 2 : s->flush_depth;
				struct vg_rrd_value *n = realloc(se->pend, ncap * sizeof(*n));
				if (!n && journal) {
					/* journaled and not cached: the batch
					 * waits (RETRY, below) and its re-send
					 * takes this value (its time is past
					 * the series' last), each value this
					 * batch cached already a duplicate then */
					nuncached++;
					naccept--;
					continue;
				}
				if (!n) {
					/* the replay: counted, and its segment
					 * kept (the value is only there) */
					nerr_mem++;
					naccept--;
					s->segkeep[seg % SEG_RING] = 1;
					continue;
				}
				s->cache_bytes += (ncap - se->cap) * sizeof(*n);
				se->pend = n;
				se->cap = ncap;
			}
			if (!se->npend) {
				se->seg = seg;
				s->segcnt[seg % SEG_RING]++;
				se->since_ms = now;
				dirty_append(s, se);
			}
			se->pend[se->npend].t_ms = r->time_ms;
			se->pend[se->npend].v = b->samples[r->first_sample + j].value;
			se->npend++;
			se->last_ms = r->time_ms;
			if (b->arrived && r->time_ms > se->arrived_ms) {
				se->arrived_ms = r->time_ms;
				if (se->opened_gen == s->gen) /* opened by this batch */
					se->flushed_ms = r->time_ms;
			}
			s->pending++;
		}
	}
	s->journal_busy = 0;
	s->last_batch_ms = now;
	publish_pending(s);
	if (s->pending > s->stats.pending_peak)
		__atomic_store_n(&s->stats.pending_peak, s->pending, __ATOMIC_RELAXED);
	if (s->cache_bytes > s->stats.cache_bytes_peak)
		__atomic_store_n(&s->stats.cache_bytes_peak, s->cache_bytes, __ATOMIC_RELAXED);
	if (s->dhead && (s->dhead->npend >= s->flush_depth ||
			 s->pending > s->cache_max / 2))
		pthread_cond_signal(&s->work_cv);
	pthread_mutex_unlock(&s->mu);

	count(&s->stats.values_rejected, nrej);
	count(&s->stats.values_duplicate, ndup);
	count_err(s, VG_STORE_ERR_FILE, nerr_file);
	count_err(s, VG_STORE_ERR_MEMORY, nerr_mem);
	count(journal ? &s->stats.values_written : &s->stats.values_replayed, naccept);
	if (nuncached) {
		/* no memory to cache a value: never acknowledged as if taken
		 * (what the batch cached is, and is written; its re-send
		 * takes the rest once); not a new series' RETRY */
		count(&s->stats.batches_nomem, 1);
		snprintf(s->last_error, sizeof(s->last_error),
			 "no memory to cache %llu value(s) of the batch; answered RETRY",
			 (unsigned long long)nuncached);
		return -EAGAIN;
	}
	return 0;
}

int vg_store_write_batch(struct vg_store *s, const struct vg_batch *b)
{
	int rc;

	if (!s || !b)
		return -EINVAL;
	__atomic_store_n(&s->receiving, 1, __ATOMIC_RELAXED);
	rc = take_batch(s, b, 1, &s->scratch, &s->scap);
	/* take_batch fails only before the batch's record is in the journal
	 * (no memory, no file descriptor, the journal's disk): nothing of it
	 * is durable, so it is never acknowledged but asked again (RETRY;
	 * include/vigie/dispatch.h acknowledges any other error) */
	if (rc < 0)
		rc = -EAGAIN;
	if (!rc && (!s->owner || s->write_through)) {
		/* write-through: another store owns the journal, or several
		 * collectors share the storage daemons (see the top). The
		 * receiver writes only over verified connections: what needs
		 * a new one is left to the storage thread (deferred), so a
		 * daemon that is down or restarting never makes this batch's
		 * ack late (vg_rrd_item.no_connect) */
		pthread_mutex_lock(&s->mu);
		s->wt_cut = 0;
		rc = flush_all_locked(s, s->owner, VG_STORE_SYNC_BATCH);
		/* the deadline reached, or a round trip not started for it:
		 * what was not sent is held (above) */
		if (s->wt_cut ||
		    (s->batch_deadline_ms && vg_monotonic_ms() >= s->batch_deadline_ms))
			s->deadline_cuts++;
		pthread_mutex_unlock(&s->mu);
	}
	__atomic_store_n(&s->receiving, 0, __ATOMIC_RELAXED);
	return rc;
}

void vg_store_set_deadline(struct vg_store *s, int64_t deadline_ms)
{
	if (!s)
		return;
	s->batch_deadline_ms = deadline_ms;
	vg_rrd_rrdcached_set_deadline(s->be, deadline_ms);
}

uint64_t vg_store_deadline_cuts(struct vg_store *s)
{
	uint64_t n = s ? s->deadline_cuts : 0;

	if (s)
		s->deadline_cuts = 0;
	return n;
}

uint32_t vg_store_daemon_wait_ms(const struct vg_store *s)
{
	return s ? s->daemon_wait_ms : 0;
}

int vg_store_holding(struct vg_store *s)
{
	/* with write-through the cache holds only what a daemon did not take;
	 * values a flush took out count until settled (written, or back in
	 * the cache), so a write that finds the daemon still down never
	 * shows 0 meanwhile: a mark may last a moment too long, never too
	 * short */
	return s && s->write_through &&
	       __atomic_load_n(&s->held, __ATOMIC_RELAXED) > 0;
}

/* vg_store_prove_arrival: 1 when loc's file is new to seen (noted), 0
 * when it is listed already. */
static size_t proof_note(struct vg_hmap *seen, struct vg_rrd_loc *loc)
{
	if (vg_hmap_gets(seen, loc->path))
		return 0;
	(void)vg_hmap_put(seen, loc->path, strlen(loc->path), loc, NULL);
	return 1;
}

int vg_store_prove_arrival(struct vg_store *s, const struct vg_batch *b,
			   const struct vg_store_series *more, size_t nmore,
			   int64_t before_ms, int64_t deadline_ms)
{
	struct vg_rrd_loc *locs;
	size_t n = 0;
	int rc;

	if (!s || !b || (nmore && !more))
		return -EINVAL;
	if (!s->be->ops->flush_before)
		return -ENOTSUP;
	if (!b->nsamples && !nmore)
		return 0;
	if (!(locs = malloc((b->nsamples + nmore) * sizeof(*locs))))
		return -ENOMEM;
	/* the batch's series new here are placed (claimed) in one round
	 * trip, as the write that follows would; the others the previous
	 * collector placed: their owners noted the same way */
	if (s->be->ops->prefetch) {
		prefetch(s, b, 0, 0);
		for (size_t i = 0; i < nmore; i += PREFETCH_MAX) {
			size_t m = nmore - i < PREFETCH_MAX ? nmore - i : PREFETCH_MAX;
			struct vg_rrd_key *keys;
			/* each chunk a round trip to the placement record: the
			 * bound covers them (the locates below would each make
			 * one for what is not prefetched) */
			if (deadline_ms && vg_monotonic_ms() >= deadline_ms) {
				free(locs);
				return -ETIMEDOUT;
			}
			if (!(keys = malloc(m * sizeof(*keys))))
				break; /* each located on its own below */
			for (size_t k = 0; k < m; k++)
				keys[k] = (struct vg_rrd_key){more[i + k].rtype, more[i + k].id,
							      more[i + k].metric};
			s->be->ops->prefetch(s->be, keys, m);
			free(keys);
		}
	}
	/* each file once: the host's series listed by the registry are
	 * most often the batch's too (a host reports every series in
	 * every poll), and a FLUSH BATCH twice as long for nothing would
	 * bring the proof closer to its bound. The map borrows the paths
	 * in locs; a file it could not note is FLUSHed twice, harmless */
	struct vg_hmap seen;
	vg_hmap_init_borrow(&seen);
	for (size_t i = 0; i < b->nres; i++) {
		const struct vg_resource *r = &b->res[i];
		for (uint32_t j = 0; j < r->nsamples; j++) {
			const char *m = b->samples[r->first_sample + j].metric;
			/* a name locate refuses is refused by the write too */
			if (m && !s->be->ops->locate(s->be, r->type, r->id, m, &locs[n]))
				n += proof_note(&seen, &locs[n]);
		}
	}
	for (size_t i = 0; i < nmore; i++)
		if (more[i].id && more[i].metric &&
		    !s->be->ops->locate(s->be, more[i].rtype, more[i].id, more[i].metric, &locs[n]))
			n += proof_note(&seen, &locs[n]);
	/* the placement's round trips above count in the bound too */
	if (deadline_ms && vg_monotonic_ms() >= deadline_ms)
		rc = -ETIMEDOUT;
	else
		rc = s->be->ops->flush_before(s->be, locs, n, before_ms, deadline_ms);
	vg_hmap_release(&seen);
	free(locs);
	return rc;
}

int64_t vg_store_verified_ms(struct vg_store *s)
{
	int64_t v;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->mu);
	v = s->verified_ms;
	/* no segment live, no value cached or in flight, no append under
	 * way: everything acknowledged so far is durable */
	if (s->owner && s->j.seg_fd < 0 && s->j.seg_oldest == s->j.seg_active &&
	    !s->pending && !s->inflight && !s->journal_busy && !s->reclaiming)
		v = vg_now_ms();
	pthread_mutex_unlock(&s->mu);
	return v;
}

static int consumer_batch(void *ctx, const struct vg_batch *b)
{
	return vg_store_write_batch(ctx, b);
}

static void consumer_tick(void *ctx, int64_t now_ms)
{
	open_later(ctx);
}

struct vg_consumer vg_store_consumer(struct vg_store *s)
{
	struct vg_consumer c = {
		.name = "store",
		.ctx = s,
		.batch = consumer_batch,
		.tick = consumer_tick,
	};
	return c;
}

/* ---- replay ----------------------------------------------------------------------------- */

/* One journal record: taken as a batch (not journaled again); the cache
 * is written out when it passes half full. Values held for a daemon that
 * does not answer stay in it: the next write waits until the cache grew
 * by another eighth, so that a large journal for a daemon that is down
 * does not walk the whole cache at every record. */
static int replay_take(void *ctx, const struct vg_batch *b)
{
	struct vg_store *s = ctx;
	int rc = take_batch(s, b, 0, &s->scratch, &s->scap);

	if (!rc && s->pending > s->cache_max / 2 && s->pending >= s->replay_flush_at) {
		pthread_mutex_lock(&s->mu);
		rc = flush_all_locked(s, 0, VG_STORE_SYNC_OTHER);
		s->replay_flush_at = s->pending + s->cache_max / 8;
		pthread_mutex_unlock(&s->mu);
	}
	return rc;
}

/* The journal's values of one series (replay_spans). */
struct replay_span {
	int64_t first_ms, newest_ms;
	/* the newest time of a record marked arrived (the host came from
	 * another collector, journal.c "The arrival marker"); INT64_MIN:
	 * none */
	int64_t arrived_ms;
	/* every journaled time, packed as they come (timepack.h: about 2
	 * to 3 bytes each, not 8; sorted and made distinct by replay_spans
	 * before replay_note) */
	struct vg_tpack t;
};

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

struct replay_scan {
	struct vg_hmap keys; /* "<rtype>\0<id>\0<metric>" -> span index + 1 */
	struct replay_span *span;
	size_t n, cap;
	int oom;
};

/* vg_journal_replay's callback of replay_spans: the oldest and newest
 * time of every series in b, taking the samples take_batch takes, and
 * the newest of a batch whose host arrived from another collector. */
static int span_take(void *ctx, const struct vg_batch *b)
{
	struct replay_scan *sc = ctx;
	char key[PATH_MAX];

	for (size_t i = 0; i < b->nres && !sc->oom; i++) {
		const struct vg_resource *r = &b->res[i];
		size_t idlen = strlen(r->id);
		for (uint32_t j = 0; j < r->nsamples; j++) {
			const struct vg_sample *smp = &b->samples[r->first_sample + j];
			if (!isfinite(smp->value) || r->time_ms < 1000 ||
			    (smp->kind != VG_KIND_GAUGE && smp->kind != VG_KIND_COUNTER) ||
			    !smp->metric)
				continue;
			size_t mlen = strlen(smp->metric);
			int tl = snprintf(key, sizeof(key), "%d", r->type);
			if (tl + 2 + idlen + mlen > sizeof(key))
				continue; /* no series: longer than any path */
			memcpy(key + tl + 1, r->id, idlen + 1);
			memcpy(key + tl + 2 + idlen, smp->metric, mlen);
			size_t klen = tl + 2 + idlen + mlen;
			uint64_t h = vg_hmap_hash(key, klen);
			uintptr_t v = (uintptr_t)vg_hmap_get_hashed(&sc->keys, key, klen, h);
			if (v) {
				struct replay_span *sp = &sc->span[v - 1];
				if (r->time_ms < sp->first_ms)
					sp->first_ms = r->time_ms;
				if (r->time_ms > sp->newest_ms)
					sp->newest_ms = r->time_ms;
				if (b->arrived && r->time_ms > sp->arrived_ms)
					sp->arrived_ms = r->time_ms;
				if (vg_tpack_add(&sp->t, r->time_ms))
					sc->oom = 1;
				continue;
			}
			if (sc->n == sc->cap) {
				size_t ncap = sc->cap ? 2 * sc->cap : 1024;
				struct replay_span *p = realloc(sc->span, ncap * sizeof(*p));
				if (!p) {
					sc->oom = 1;
					break;
				}
				sc->span = p;
				sc->cap = ncap;
			}
			sc->span[sc->n] = (struct replay_span){
				r->time_ms, r->time_ms, b->arrived ? r->time_ms : INT64_MIN, {0}};
			if (vg_tpack_add(&sc->span[sc->n].t, r->time_ms) ||
			    vg_hmap_put_hashed(&sc->keys, key, klen, h, (void *)(sc->n + 1), NULL)) {
				vg_tpack_free(&sc->span[sc->n].t);
				sc->oom = 1;
				break;
			}
			sc->n++;
		}
	}
	return sc->oom ? -ENOMEM : 0;
}

/* Before the replay, for an engine that checks what it may have lost
 * (backend.h replay_note: rrdcached): one pass over the segments ids[0..n)
 * for each series' oldest and newest journaled time, every journaled
 * time (the engine tells by them a prefix of ours its daemon lost from
 * ours it holds) and its newest
 * arrival from another collector (the journal's marker), each series
 * named to the engine with them. So only the files the journal holds
 * values of are checked, and the check knows which of the values their
 * daemon holds cached are ours: not one older than the oldest, newer
 * than the newest, or older than the arrival (the host was here, left
 * and came back: the other collector's lie between). The price: the segments are read twice (what
 * the journal holds: at most the values of one sync interval, or of the
 * storage thread's lag), and the times held packed (timepack.h: 2 to 3
 * bytes per journaled value, each series' freed as the engine takes its
 * own packed copy, so the two are never both whole; 16 to 24 bytes as
 * int64 arrays before, docs/benchmarks.md "The start replay's memory").
 * 0 or -errno (the replay's own). */
static int replay_spans(struct vg_store *s, const uint64_t *ids, size_t n)
{
	struct replay_scan sc = {0};
	const struct vg_hmap_entry *e;
	uint64_t nrec = 0;
	size_t pos = 0;
	int rc = 0;

	vg_hmap_init(&sc.keys);
	for (size_t i = 0; i < n && !rc; i++)
		rc = vg_journal_replay(&s->j, ids[i], span_take, &sc, &nrec);
	while (!rc && (e = vg_hmap_next(&sc.keys, &pos))) {
		struct replay_span *sp = &sc.span[(uintptr_t)e->value - 1];
		const char *id = e->key + strlen(e->key) + 1;
		const char *metric = id + strlen(id) + 1;
		struct vg_rrd_loc loc;
		int64_t *t = malloc(sp->t.n * sizeof(*t));
		size_t nt = 0;
		if (!t) {
			rc = -ENOMEM;
			break;
		}
		/* one series unpacked at a time; its packed times go once the
		 * engine has its own (packed too) */
		size_t nv = vg_tpack_unpack(sp->t.b, sp->t.len, t);
		if (sp->t.unsorted) { /* else ascending, distinct */
			qsort(t, nv, sizeof(t[0]), cmp_i64);
			for (size_t i = 0; i < nv; i++)
				if (!nt || t[i] != t[nt - 1])
					t[nt++] = t[i];
		} else {
			nt = nv;
		}
		vg_tpack_free(&sp->t);
		if (!s->be->ops->locate(s->be, atoi(e->key), id, metric, &loc))
			s->be->ops->replay_note(s->be, &loc, sp->first_ms, sp->newest_ms,
						sp->arrived_ms, t, nt);
		free(t);
	}
	for (size_t i = 0; i < sc.n; i++)
		vg_tpack_free(&sc.span[i].t);
	vg_hmap_release(&sc.keys);
	free(sc.span);
	return rc;
}

/* Replay every segment left in the journal directory, write it all to the
 * backend, sync, retire the segments. 0 or -errno (message in err).
 *
 * What cannot be written now (a storage daemon that does not answer, or
 * a sync that fails) is left to the running store, as if it had happened
 * while it ran: the replayed values stay in the cache, each holding the
 * segment it was replayed from (segcnt), and the replayed segments become
 * the journal's live ones (seg_oldest the first of them), retired by the
 * storage thread once their values are written and synced (reclaim),
 * read again for values a restarted daemon lost (resend_lost). The
 * collector starts and serves meanwhile: its cache and segment bounds
 * answer RETRY as they do while it runs. Only segments spread wider than
 * the segment ring (left by an older version) still need every daemon to
 * answer at open. */
static int replay(struct vg_store *s, char *err, size_t errlen)
{
	uint64_t *ids = NULL, nrec = 0, first, next;
	uint8_t *keep = NULL;
	size_t n = 0;
	int rc;

	if ((rc = vg_journal_scan(&s->j, &ids, &n, err, errlen)))
		return rc;
	first = s->j.seg_active; /* numbered after every kept segment */
	if (n && !(keep = calloc(n, 1)))
		rc = -ENOMEM;
	if (!rc && n && s->be->ops->replay_note)
		rc = replay_spans(s, ids, n);
	/* no segment goes before all are replayed (reclaim waits) */
	s->reclaiming = 1;
	/* One segment at a time, written to the backend before the next, so
	 * a value that cannot be written is known to be of this segment: it
	 * is kept (vg_journal_retire), the others go. Its values still
	 * cached afterwards hold it, as appended values hold theirs. */
	for (size_t i = 0; i < n && !rc; i++) {
		uint64_t errs = __atomic_load_n(&s->stats.write_errors, __ATOMIC_RELAXED);
		s->j.seg_active = ids[i];
		rc = vg_journal_replay(&s->j, ids[i], replay_take, s, &nrec);
		if (!rc) {
			pthread_mutex_lock(&s->mu);
			rc = flush_all_locked(s, 0, VG_STORE_SYNC_OTHER);
			pthread_mutex_unlock(&s->mu);
		}
		keep[i] = __atomic_load_n(&s->stats.write_errors, __ATOMIC_RELAXED) != errs;
	}
	s->reclaiming = 0;
	s->j.seg_active = s->j.seg_oldest = first;
	next = n && ids[n - 1] + 1 > first ? ids[n - 1] + 1 : first;
	if (!rc && n && !s->pending && s->be->ops->sync(s->be) == 0 && known_sync(s) == 0) {
		for (size_t i = 0; i < n; i++)
			vg_journal_retire(&s->j, ids[i], keep[i]);
		s->j.seg_active = s->j.seg_oldest = next;
		memset(s->segkeep, 0, sizeof(s->segkeep));
		if (s->flush_error_new) { /* for the log at open */
			snprintf(s->last_error, sizeof(s->last_error), "%s", s->flush_error);
			s->flush_error_new = 0;
		}
	} else if (!rc && n && next - ids[0] < SEG_RING) {
		/* Values wait for a storage daemon that does not answer (or
		 * the backend cannot sync yet): the running store's case
		 * (above). New segments are numbered after these. */
		s->j.seg_oldest = ids[0];
		s->j.seg_active = next;
		for (size_t i = 0; i < n; i++)
			s->segkeep[ids[i] % SEG_RING] |= keep[i];
	} else if (!rc && n) {
		rc = -EAGAIN;
		snprintf(err, errlen,
			 "store: replaying the journal in %s: its segments %016llx to "
			 "%016llx are spread over more than the %d numbers a running "
			 "store keeps, and %s (%s)",
			 s->j.dir, (unsigned long long)ids[0], (unsigned long long)ids[n - 1],
			 SEG_RING - 1,
			 s->pending ? "values wait for a storage daemon that does not answer"
				    : "the storage backend cannot sync",
			 s->last_error);
	} else if (rc == -EAGAIN) {
		/* A series of the journal could not be opened now: its file
		 * cannot be created (a daemon without -R, no space, the
		 * placement record not answering): the engine's message says
		 * which (series_open), and nothing is retired. The cause
		 * before the daemon's own words: callers' buffers are short */
		snprintf(err, errlen,
			 "store: replaying the journal in %s: its values are kept (nothing "
			 "is lost) and written at the next start once this is fixed: %s",
			 s->j.dir, s->last_error[0] ? s->last_error : "a series cannot be created now");
	} else if (rc) {
		snprintf(err, errlen, "store: replaying the journal in %s: %s (%s)",
			 s->j.dir, strerror(-rc), s->last_error);
	}
	free(ids);
	free(keep);
	return rc;
}

/* ---- open / close ----------------------------------------------------------------------- */

/* The journal of s is another process's (or another store's): err says
 * whose, -EBUSY. */
static int refuse_busy(struct vg_store *s, const char *data_dir, char *err, size_t errlen)
{
	char comm[64];
	long pid = vg_fs_flock_holder(s->j.dir);

	vg_fs_pid_comm(pid, comm, sizeof(comm));
	if (pid > 0)
		snprintf(err, errlen,
			 "store: data directory %s is in use by another process (pid %ld%s%s): "
			 "one process at a time owns a data directory; stop it, or give this "
			 "one its own data directory",
			 data_dir, pid, comm[0] ? ", " : "", comm);
	else
		snprintf(err, errlen,
			 "store: data directory %s is in use by another process (its lock on "
			 "%s is held): one process at a time owns a data directory; stop it, "
			 "or give this one its own data directory",
			 data_dir, s->j.dir);
	return -EBUSY;
}

static int store_open(const char *data_dir, const struct vg_config *cfg, int beside,
		      struct vg_store **out, char *err, size_t errlen)
{
	struct vg_store *s;
	char path[PATH_MAX];
	int rc;

	*out = NULL;
	if (!data_dir || !*data_dir || !cfg) {
		snprintf(err, errlen, "store: no data directory");
		return -EINVAL;
	}
	if (!cfg->storage_step_s || !cfg->narchives ||
	    cfg->narchives > VG_MAX_ARCHIVES ||
	    cfg->storage_heartbeat_s < cfg->storage_step_s) {
		snprintf(err, errlen, "store: bad step, heartbeat or archives");
		return -EINVAL;
	}
	if (cfg->storage_publish_heartbeat_s < cfg->storage_step_s) {
		snprintf(err, errlen,
			 "store: [storage] publish_heartbeat (%.0f s) is shorter than "
			 "the %u s step",
			 cfg->storage_publish_heartbeat_s, cfg->storage_step_s);
		return -EINVAL;
	}
	if ((rc = check_archives(cfg->archives, cfg->narchives, cfg->storage_step_s,
				 "[storage] archives", err, errlen)))
		return rc;
	for (size_t i = 0; i < cfg->npolicies && i < VG_MAX_POLICIES; i++) {
		char what[VG_POLICY_PATTERN_MAX + 16];
		snprintf(what, sizeof(what), "[archives] %s", cfg->policies[i].pattern);
		if ((rc = check_archives(cfg->policies[i].archives,
					 cfg->policies[i].narchives,
					 cfg->storage_step_s, what, err, errlen)))
			return rc;
	}
	if (!(s = calloc(1, sizeof(*s)))) {
		snprintf(err, errlen, "store: out of memory");
		return -ENOMEM;
	}
	s->j.seg_fd = s->j.lock_fd = -1;
	s->known_fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	vg_cond_init_monotonic(&s->work_cv);
	pthread_cond_init(&s->done_cv, NULL);
	s->last_batch_ms = vg_monotonic_ms();
	s->cache_max = cfg->storage_cache_values ? cfg->storage_cache_values
						 : CACHE_MAX_VALUES;
	s->flush_depth = cfg->storage_flush_depth ? cfg->storage_flush_depth
						  : FLUSH_MIN_DEPTH;
	if (s->cache_max < 16)
		s->cache_max = 16;
	if (s->flush_depth < 1 || s->flush_depth > MAX_DEPTH)
		s->flush_depth = FLUSH_MIN_DEPTH;
	memcpy(s->archives, cfg->archives, sizeof(s->archives));
	s->npolicies = cfg->npolicies < VG_MAX_POLICIES ? cfg->npolicies : VG_MAX_POLICIES;
	memcpy(s->policies, cfg->policies, s->npolicies * sizeof(*s->policies));
	s->layout = (struct vg_rrd_layout){
		.step_s = cfg->storage_step_s,
		.heartbeat_s = cfg->storage_heartbeat_s,
		.archives = s->archives,
		.narchives = cfg->narchives,
	};
	s->publish_heartbeat_s = (uint32_t)cfg->storage_publish_heartbeat_s;
	s->cap = 1024;
	if (!(s->tab = calloc(s->cap, sizeof(*s->tab)))) {
		snprintf(err, errlen, "store: out of memory");
		vg_store_close(s);
		return -ENOMEM;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/journal", data_dir) >= sizeof(path)) {
		snprintf(err, errlen, "store: data directory path too long");
		vg_store_close(s);
		return -ENAMETOOLONG;
	}
	if ((rc = vg_journal_open(&s->j, path, err, errlen))) {
		vg_store_close(s);
		return rc;
	}
	if (!s->j.owner && !beside) {
		/* a second collector on the directory would journal nothing
		 * and its cache would never be written: refused */
		rc = refuse_busy(s, data_dir, err, errlen);
		vg_store_close(s);
		return rc;
	}
	s->owner = s->j.owner;
	if ((rc = known_open(s, err, errlen))) {
		vg_store_close(s);
		return rc;
	}
	{
		/* The undo file lives with the journal: only its owner repairs
		 * and protects updates. */
		char rrd[PATH_MAX], undo[PATH_MAX];
		if ((size_t)snprintf(rrd, sizeof(rrd), "%s/rrd", data_dir) >= sizeof(rrd) ||
		    (size_t)snprintf(undo, sizeof(undo), "%s/undo", s->j.dir) >= sizeof(undo)) {
			snprintf(err, errlen, "store: data directory path too long");
			vg_store_close(s);
			return -ENAMETOOLONG;
		}
		snprintf(s->daemon_base, sizeof(s->daemon_base), "%s",
			 cfg->storage_daemon_base);
		if (!strcmp(cfg->storage_backend, "rrdcached")) {
			/* The owners record lives with the journal: the series
			 * it places are the ones the journal replays. */
			char owners[PATH_MAX];
			snprintf(owners, sizeof(owners), "%s/owners", s->j.dir);
			rc = vg_rrd_rrdcached_open(cfg->storage_daemons,
						   cfg->storage_daemon_base[0]
							   ? cfg->storage_daemon_base
							   : NULL,
						   s->owner ? owners : NULL, &s->be, err,
						   errlen);
			/* Several collectors share the daemons: the record is
			 * the shared state's (collector/placement.c). */
			if (!rc && vg_placement_wanted(cfg->state_url))
				rc = vg_rrd_rrdcached_share(s->be, cfg->state_url, err, errlen);
			/* the receiver's waits on a daemon: well within the
			 * agents' ack timeout ([agent] ack_timeout_ms) */
			if (!rc)
				s->daemon_wait_ms = vg_rrd_rrdcached_write_through_timeout(
					s->be, cfg->agent_ack_timeout_ms);
			/* beside a running collector (storage stats): its
			 * record read, not taken over, so the placements on
			 * unlisted daemons are known here too */
			if (!rc && !s->owner)
				(void)vg_rrd_rrdcached_load_owners(s->be, owners);
		} else if (cfg->storage_backend[0] && strcmp(cfg->storage_backend, "files")) {
			snprintf(err, errlen, "store: unknown [storage] backend '%s'",
				 cfg->storage_backend);
			rc = -EINVAL;
		} else {
			rc = vg_rrd_files_open(rrd, s->owner ? undo : NULL, &s->be, err,
					       errlen);
		}
		if (rc) {
			vg_store_close(s);
			return rc;
		}
	}
	if (!cfg->storage_write_through[0] || !strcmp(cfg->storage_write_through, "auto"))
		s->write_through = !strcmp(cfg->storage_backend, "rrdcached") &&
				   cfg->state_url[0];
	else if (!strcmp(cfg->storage_write_through, "yes"))
		s->write_through = 1;
	else if (strcmp(cfg->storage_write_through, "no")) {
		snprintf(err, errlen, "store: [storage] write_through must be "
				      "auto, yes or no, not '%s'",
			 cfg->storage_write_through);
		vg_store_close(s);
		return -EINVAL;
	}
	/* [storage] verify_writes (empty, in a configuration not set up by
	 * vg_config_defaults: yes) */
	if (cfg->storage_verify_writes[0] && strcmp(cfg->storage_verify_writes, "yes")) {
		if (strcmp(cfg->storage_verify_writes, "no")) {
			snprintf(err, errlen, "store: [storage] verify_writes must be yes or no, "
					      "not '%s'",
				 cfg->storage_verify_writes);
			vg_store_close(s);
			return -EINVAL;
		}
		(void)vg_rrd_rrdcached_verify_writes(s->be, 0);
	}
	/* [storage] check_max (0, in a configuration not set up by
	 * vg_config_defaults: the backend's 30 s), before the replay below,
	 * whose connections may run the check it bounds */
	if (cfg->storage_check_max_s != 0 &&
	    !(cfg->storage_check_max_s >= 0.001 && cfg->storage_check_max_s <= 3600)) {
		snprintf(err, errlen, "store: [storage] check_max must be between 0.001 and "
				      "3600 seconds, not %g",
			 cfg->storage_check_max_s);
		vg_store_close(s);
		return -EINVAL;
	}
	(void)vg_rrd_rrdcached_check_bound(s->be,
					   (uint32_t)llround(cfg->storage_check_max_s * 1000));
	s->sync_interval_ms = (int64_t)(cfg->storage_sync_interval_s * 1000);
	s->sync_try_ms = vg_monotonic_ms();
	if (s->owner) {
		if ((rc = replay(s, err, errlen))) {
			vg_store_close(s);
			return rc;
		}
		if ((rc = pthread_create(&s->flusher, NULL, flusher_main, s))) {
			snprintf(err, errlen, "store: cannot start the storage thread: %s",
				 strerror(rc));
			vg_store_close(s);
			return -rc;
		}
		s->running = 1;
	}
	*out = s;
	return 0;
}

int vg_store_open(const char *data_dir, const struct vg_config *cfg,
		  struct vg_store **out, char *err, size_t errlen)
{
	return store_open(data_dir, cfg, 0, out, err, errlen);
}

int vg_store_open_beside(const char *data_dir, const struct vg_config *cfg,
			 struct vg_store **out, char *err, size_t errlen)
{
	return store_open(data_dir, cfg, 1, out, err, errlen);
}

/* Stop the storage thread (if it runs) and wait for it. */
static void thread_stop(struct vg_store *s)
{
	if (!s->running)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	pthread_cond_signal(&s->work_cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->flusher, NULL);
	s->running = 0;
	s->stop = 0;
}

int vg_store_pending_hold(struct vg_store *s, struct vg_store_stats *st)
{
	int rc;

	if (!s || !st)
		return -EINVAL;
	thread_stop(s);
	vg_store_get_stats(s, st);
	if (st->values_pending || !s->owner)
		return 0;
	if ((rc = pthread_create(&s->flusher, NULL, flusher_main, s)))
		return -rc;
	s->running = 1;
	return 0;
}

/* The last write of a store that closes: every cached value, tried again
 * until none is left or CLOSE_RETRY_MS passed. One pass is not enough:
 * a series whose daemon did not answer a moment ago waits
 * RETRY_UNREACHABLE_MS before its next try and the backend answers its
 * daemon unreachable during its back-off (up to 2 s, backend_rrdcached.c),
 * so a collector stopped within a second or two of a daemon's return
 * (restarted, or continued after a stall) skipped every value still
 * waiting, although the daemon answered, and exited with them in its
 * journal; its files then lacked every poll since the daemon's fault
 * until the collector's next start replayed them
 * (tests/integration/shared_daemon_stop_test.sh). The bound is one try
 * after the longest back-off: a daemon still down at the stop leaves its
 * values in the journal, as before. mu held; the storage thread stopped. */
#define CLOSE_RETRY_MS 3500

static void close_write_out(struct vg_store *s)
{
	int64_t end = vg_monotonic_ms() + CLOSE_RETRY_MS;

	for (;;) {
		resend_lost(s);
		flush_all_locked(s, 0, VG_STORE_SYNC_FLUSH);
		resend_lost(s); /* found by this pass's new connections */
		if (!s->pending || vg_monotonic_ms() >= end)
			break;
		pthread_mutex_unlock(&s->mu);
		vg_sleep_ms(50);
		pthread_mutex_lock(&s->mu);
	}
	reclaim(s, 1, VG_STORE_SYNC_FLUSH);
}

/* vg_store_close, writing (and syncing, retiring segments) only when
 * write_out: vg_store_close_held leaves what is cached in the journal. */
static void store_close(struct vg_store *s, int write_out)
{
	if (!s)
		return;
	thread_stop(s);
	if (s->tab && s->be && write_out) {
		pthread_mutex_lock(&s->mu);
		close_write_out(s);
		pthread_mutex_unlock(&s->mu);
	}
	if (s->be)
		s->be->ops->close(s->be); /* removes the undo file */
	if (s->known_fd >= 0) {
		(void)fdatasync(s->known_fd);
		close(s->known_fd);
	}
	free(s->known);
	vg_journal_close(&s->j); /* releases the flock */
	for (size_t i = 0; s->tab && i < s->cap; i++) {
		if (!s->tab[i].se)
			continue;
		free(s->tab[i].se->pend);
		free(s->tab[i].se);
	}
	free(s->tab);
	group_free(&s->fgroup);
	group_free(&s->wgroup);
	free(s->scratch);
	later_clear(s);
	pthread_cond_destroy(&s->work_cv);
	pthread_cond_destroy(&s->done_cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

void vg_store_close(struct vg_store *s)
{
	store_close(s, 1);
}

/* The offline commands (storage flush, convert, move) found values
 * waiting (vg_store_pending_hold) and said that they stay in the journal.
 * vg_store_close would try them once more, and once the back-off of a
 * series whose daemon did not answer had passed (RETRY_UNREACHABLE_MS: a
 * command that lasted a second, on a loaded machine) its new connection
 * went on with a check cut short at [storage] check_max, wrote them and
 * retired the journal (so did the storage thread, meanwhile): what the
 * command said, and what a collector started next replays, depended on
 * timing. */
void vg_store_close_held(struct vg_store *s)
{
	store_close(s, 0);
}

/* Write the cached values of one series (read-your-writes). Any thread. */
static void flush_one(struct vg_store *s, int rtype, const char *id,
		      const char *metric, const struct vg_rrd_loc *loc)
{
	struct series *se;
	struct flush_group g = {.cause = VG_STORE_SYNC_OTHER};

	(void)loc; /* the table holds the owner; the path is recomputed */
	pthread_mutex_lock(&s->mu);
	se = table_find(s, rtype, id, metric,
			key_hash(rtype, vg_fnv1a(VG_FNV_OFFSET, id), metric));
	if (se) {
		while (se->flushing)
			pthread_cond_wait(&s->done_cv, &s->mu);
		if (se->npend)
			flush_series(s, se, &g);
	}
	pthread_mutex_unlock(&s->mu);
	group_free(&g);
}

/* ---- reading -------------------------------------------------------------- */

int vg_cf_parse(const char *s)
{
	if (!s)
		return -EINVAL;
	if (!strcmp(s, "mean") || !strcmp(s, "average") || !strcmp(s, "avg"))
		return VG_CF_AVERAGE;
	if (!strcmp(s, "min"))
		return VG_CF_MIN;
	if (!strcmp(s, "max"))
		return VG_CF_MAX;
	return -EINVAL;
}

void vg_series_free(struct vg_series *s)
{
	if (!s)
		return;
	free(s->points);
	s->points = NULL;
	s->n = 0;
}

static int fetch_locked_key(struct vg_store *s, int rtype, const char *id,
			    const char *metric, int cf, int64_t start_ms,
			    int64_t end_ms, uint32_t resolution_s, int keep_unknown,
			    struct vg_rrd_loc *locp, struct vg_series *out);

int vg_store_fetch(struct vg_store *s, int rtype, const char *id,
		   const char *metric, int cf, int64_t start_ms,
		   int64_t end_ms, uint32_t resolution_s, int keep_unknown,
		   struct vg_series *out)
{
	struct vg_rrd_loc loc;
	int rc;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!s || cf < VG_CF_AVERAGE || cf > VG_CF_MAX || start_ms > end_ms ||
	    start_ms < 0)
		return -EINVAL;
	if ((rc = s->be->ops->locate(s->be, rtype, id, metric, &loc)))
		return rc == -ENAMETOOLONG ? -EINVAL : rc;
	struct key_use mine = {rtype, id, metric, NULL};
	reader_begin(s, &mine); /* a removal of this key waits for us */
	rc = fetch_locked_key(s, rtype, id, metric, cf, start_ms, end_ms,
			      resolution_s, keep_unknown, &loc, out);
	reader_end(s, &mine);
	return rc;
}

/* vg_store_fetch's reading, with the key registered as read. */
static int fetch_locked_key(struct vg_store *s, int rtype, const char *id,
			    const char *metric, int cf, int64_t start_ms,
			    int64_t end_ms, uint32_t resolution_s, int keep_unknown,
			    struct vg_rrd_loc *locp, struct vg_series *out)
{
	struct vg_rrd_loc loc = *locp;
	struct vg_rrd_info d;
	struct vg_rrd_rows rows;
	const struct vg_rrd_archive *pick = NULL;
	time_t start, end;
	int rc;

	flush_one(s, rtype, id, metric, &loc);
	if ((rc = s->be->ops->info(s->be, &loc, cf, &d)))
		return rc;

	start = (time_t)(start_ms / 1000);
	end = (time_t)vg_ms_to_s_ceil(end_ms);
	if (resolution_s) {
		for (size_t k = 0; k < d.nrra; k++)
			if (d.rra[k].res_s == resolution_s)
				pick = &d.rra[k];
		if (!pick)
			return -EINVAL;
	} else {
		/* Finest archive covering start, else the longest-reaching. */
		for (size_t k = 0; k < d.nrra; k++) {
			const struct vg_rrd_archive *r = &d.rra[k];
			if (r->cal_start <= start &&
			    (!pick || pick->cal_start > start || r->res_s < pick->res_s))
				pick = r;
			else if (!pick || (pick->cal_start > start &&
					   r->cal_start < pick->cal_start))
				pick = r;
		}
	}
	out->resolution_s = pick->res_s;
	out->kind = d.kind;
	for (size_t k = 0; k < d.nrra && out->narchives < VG_MAX_ARCHIVES; k++) {
		size_t j = out->narchives++;
		while (j && out->archives_s[j - 1] > d.rra[k].res_s) {
			out->archives_s[j] = out->archives_s[j - 1];
			j--;
		}
		out->archives_s[j] = d.rra[k].res_s;
	}
	/* Clamp to what the archive holds, so the engine (librrd would switch
	 * to another archive for a partial match) reads exactly this one. */
	if (start < pick->cal_start)
		start = pick->cal_start;
	/* And at most FETCH_AHEAD_ROWS rows past the last update (all
	 * unknown): librrd allocates every row of the range, and a query
	 * for the year 300,000 (remote read takes any int64) would ask it
	 * for terabytes. */
	if (end > d.last_update &&
	    (end - d.last_update) / pick->res_s > FETCH_AHEAD_ROWS)
		end = d.last_update + (time_t)FETCH_AHEAD_ROWS * pick->res_s;
	if (start >= end)
		return 0;

	if ((rc = s->be->ops->fetch(s->be, &loc, cf, start, end, pick->res_s, &rows)))
		return rc;
	out->points = malloc((rows.n ? rows.n : 1) * sizeof(*out->points));
	if (!out->points) {
		free(rows.v);
		return -ENOMEM;
	}
	for (size_t k = 0; k < rows.n; k++) {
		/* Row k covers (start + k*step, start + (k+1)*step]; rrdtool
		 * prints it at the end, we name it by its start. */
		int64_t t = ((int64_t)rows.start + (int64_t)(k * rows.step)) * 1000;
		double v = rows.v[k];
		if (t + (int64_t)rows.step * 1000 <= start_ms || t > end_ms)
			continue;
		if (isnan(v) && !keep_unknown)
			continue;
		out->points[out->n].time_ms = t;
		out->points[out->n].value = v;
		out->n++;
	}
	free(rows.v);
	return 0;
}
