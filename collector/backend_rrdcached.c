/*
 * backend_rrdcached.c — the rrdcached backend: every series lives on one
 * of several rrdcached daemons (collector/backend.h), reached through
 * collector/rrdcached.c (our own line-protocol client: librrd 1.7.2
 * exports only one global connection per process, which would serialise
 * every flusher thread and every daemon behind one lock).
 *
 * Why. One collector's disk caps a cloud; rrdcached (the daemon collectd,
 * Munin and Icinga use) writes RRD files on its own host. The store keeps
 * deciding what to write and when; this file only knows the daemons.
 *
 * Names. A series' file is "<type>/<escaped id>/<escaped metric>.rrd",
 * relative: the daemon resolves it in its -b base dir and, with -B,
 * refuses anything outside (the escaping of vigie/name.h already keeps
 * every name to one component). The same relative name is what
 * `rrdtool fetch --daemon ADDR NAME` takes.
 *
 * Placement. A series new to the backend goes to the daemon with the
 * highest rendezvous weight mix(hash(name) ^ hash(address)): adding a
 * daemon takes new series only from the others in proportion, and the
 * owner of every series created is recorded (the owners file, one line
 * "<address> <name>" appended per create, fdatasync'd by sync() so it is
 * durable before the journal segments that needed it are retired), so
 * adding a daemon never moves an existing series. A recorded address no
 * longer configured makes the series unreachable (-EHOSTUNREACH) rather
 * than silently created again elsewhere. With PostgreSQL state the record
 * is shared by every collector (collector/placement.c, attached by
 * vg_rrd_rrdcached_share): a name not in the map is looked up there
 * (then cached in the map and the owners file), a create claims the name
 * there first and creates on the winner's daemon, and without an answer
 * from the database nothing is placed by guess (the series answers
 * -EHOSTUNREACH: its batch waits). The database is never asked for a
 * series the store already holds: every series the store opens is in
 * the map by then (locate, create or last_ms put it there), so the
 * store's hot paths and its locked scans (lost_claim) stay local.
 *
 * Connections. Each daemon has a small pool of clients (a client serves
 * one thread at a time); a broken client is closed, the next call
 * connects again. A sync also keeps a few connections of its own per
 * daemon, FLUSH only, to keep several FLUSHes waiting at once (see
 * flush_sent). Each daemon's state (up, errors, last error) is kept
 * for health reporting. Every wait is bounded: IO_TIMEOUT_MS for the
 * storage thread, a quarter of the agents' ack timeout for the
 * receiver's write-through (client_idle) and for its opens of new series
 * (VG_RRD_RECEIVER: last update, create; client_bounded), so a stalled
 * daemon never delays an ack past it.
 *
 * Unlisted daemons. A series recorded on an address no longer in
 * [storage] daemons is never placed again elsewhere (above); the map
 * keeps the address (UNLISTED_MAX of them, counted) so reads answer an
 * error naming it and health reports the series recorded on it.
 *
 * Durability. rrdcached acknowledges an UPDATE when the values are in its
 * cache (and, with -j, in its buffered journal): not durable, and without
 * -j a kill -9 of the daemon loses them. So the store keeps its journal
 * segments until sync() has FLUSHed every file updated since (the daemon
 * returns once it wrote the file: the page cache of the storage host,
 * safe against a kill -9 of either process). A FLUSH is only proof on the
 * daemon that accepted the values: one that restarted answers "Nothing to
 * flush" for a file whose values it lost. Hence the check below on every
 * new connection, which is the only way to reach a restarted daemon.
 * Nor is "Successfully flushed" proof that the file was written: 1.7.2
 * answers it once its writer thread took the file, whether its
 * rrd_update_r then failed or not (only its log says so); the one such
 * failure: so the sync reads each FLUSHed file's last update back and
 * finds a file behind what the daemon took (unwritten_check: a full disk,
 * a read-only or immutable file) or gone (vanished_check)
 * (docs/operations.md "A file the daemon cannot write"); from the file's
 * header where the collector sees the daemon's files (behind_confirm,
 * [storage] daemon_base), by the daemon's INFO otherwise and for a file
 * not found written there.
 *
 * Lost values. A restarted daemon's loss must be found before anything
 * newer is written to the file, since RRD refuses older times after a
 * newer one: the loss would be final and invisible to any later check.
 * Every update to a daemon goes over a connection made after its restart,
 * so each new connection first verifies every file sent to that daemon
 * and not yet FLUSHed by a sync: FLUSH, then INFO's last_update (read from
 * the file) must cover the newest time the daemon accepted. The newest
 * time of each call is recorded before it is sent (and lowered after, if
 * not all of it was written), so a verification running meanwhile sees
 * it. A file found
 * behind, and still behind once read again while another FLUSH's write
 * of it may be going on (check_confirm), is "lost": its updates answer
 * unavailable (the store keeps the
 * values cached) until the store, told through lost(), has put the lost
 * values back in front of its cache from the journal and called resent().
 * A restarted daemon may also refuse a value its file lacks (its -j
 * journal replay moved the file's cache entry past it): update_refused
 * FORGETs the file there and sends the value again.
 * A replay that skips a value. The same race (an UPDATE journaled during
 * the write that precedes its "wrote" line, the replay throwing it away)
 * followed by a newer UPDATE of the file leaves the restarted daemon
 * holding the newer value without the older one: a FLUSH writes it, the
 * file's last update then covers everything accepted, and the gap is
 * final and invisible to the check above (seen in the cluster test:
 * poll 45 of one series missing, 46 in the file). So the first
 * verification after a failed call (the daemon may have restarted: a
 * restart always breaks a connection or fails a connect) FORGETs each
 * file instead of FLUSHing it and reads what the file itself holds: the
 * daemon's replayed values for it are dropped and found lost, and the
 * store re-sends them from its own journal, which holds every value not
 * yet FLUSHed by a sync. No UPDATE of ours may reach the daemon between
 * a FORGET and that re-send, or the newer value makes the older ones
 * refused (a first version without it lost four polls of 1,147 series
 * of the cluster test: the receiver's write-through, on a connection
 * verified meanwhile, sent a host's next batch during the check). So
 * sends hold d->smu for reading from their lost-file check to their
 * answer, the check holds it for writing, and the receiver neither waits
 * for it (its values go to the storage thread) nor makes a connection
 * that would run the check. As with update_refused, this assumes one
 * writer per series (docs/operations.md). A failure that was no restart
 * (a stall, a timeout) FORGETs nothing the daemon still holds: a file
 * behind the oldest value of ours since it was last proven durable,
 * whose daemon holds that value cached, is FLUSHed (overtaken_check; the
 * daemon's -j replay loses a prefix or a suffix of a file's unwritten
 * values, never one between two it kept). A FORGET there dropped a live
 * daemon's values for a re-send that a host moving meanwhile beat with
 * its next collector's newer ones (the cluster test: 324 values).
 * Since a host that moves between collectors around the failure breaks
 * that assumption, the check FORGETs only where it must: a file of which
 * the daemon took nothing of ours (a send that broke) is left out, and
 * each file is read first (INFO) and FORGOTten only if it lacks our
 * newest value: any other FORGET could only drop another collector's
 * values the daemon holds cached. Nor is a file FORGOTten of which the
 * daemon holds (PENDING) a value newer than ours: another collector
 * wrote it since, and it is FLUSHed instead (overtaken_check); our
 * values the daemon lost are then lost (counted), not re-sent at the
 * cost of that collector's newer ones. Values the daemon lost and
 * another collector wrote past before this check cannot be repaired
 * either (the window docs/scaling.md, "What holds now", leaves open):
 * a file past our newest value has the row of that value read
 * (overtaken_find), and an unknown row is counted the same way. Nor
 * values a check found lost that another collector wrote past between
 * the check and the store's re-send: the re-send's refusal is counted
 * the same way (resend_refused), no longer taken for duplicates.
 * A collector killed meanwhile has no list of files to check: its
 * store's start replay names the files its journal holds values of, with
 * the host's newest journaled arrival from another collector
 * (rcd_replay_note), and the same check runs on them before the replay
 * reads any (replay_last_ms). With every journaled time of each file:
 * a collector restart is no daemon restart, and a FORGET of a file whose
 * daemon holds our values would drop them until the replay's re-send,
 * which another collector's newer value may beat (then refused: seen in
 * the cluster test, 3,589 values). The daemon's -j replay loses a prefix
 * of a file's unwritten values or a suffix, so the file is FORGOTten
 * only when the oldest value the daemon holds cached after the file's
 * last update is newer than our oldest journaled one after it (a prefix
 * of ours lost); otherwise FLUSHed (overtaken_check). The running
 * collector's check applies the same rule (prefix_lost: one function).
 * Either check goes 32 files per group (a BATCH of FLUSHes or FORGETs,
 * then the INFOs pipelined) and starts no group after CHECK_MAX_MS: the
 * files left wait for the next connection, which goes on with them (no
 * failure counted, no back-off), so a long check after a restart is
 * spread over several connections instead of holding the storage thread
 * (vg_rrd_rrdcached_check_bound; counted in checks_cut).
 * Why not the alternatives: requiring the daemon's -j journal would leave
 * the acknowledgement depending on a daemon setting the collector cannot
 * see (and 1.7.2 does not fsync its journal either); FLUSH after every
 * update would give up the daemon's write coalescing, the reason to use
 * it; keeping every unverified value in memory costs up to a journal
 * segment's worth of values, which the journal already holds on disk.
 *
 * Several daemons share the store's one journal: a segment goes only when
 * every daemon FLUSHed what it holds, so a daemon that is down keeps the
 * segments from its oldest waiting value on. That is bounded by the
 * store's cache (its waiting values count in [storage] cache_values: at
 * the bound the collector answers RETRY) and by the journal's segment
 * ring; until then the other daemons' series are written and read as
 * usual (docs/operations.md).
 *
 * Last update. rrdcached 1.7.2 answers LAST rounded down to the step and
 * INFO's last_update in whole seconds: last_ms is FLUSH + INFO and answers
 * the last millisecond of that second, so after a restart a value re-sent
 * within the file's last second counts as already stored (a genuinely new
 * value in that same second is dropped: rrdcached would take it and
 * librrd refuse it at write time, with the rest of that write).
 *
 * Delete. rrdcached has no delete: remove() FORGETs the file on its
 * daemon, then unlinks it when the daemons' base dir is shared with the
 * collector (cfg [storage] daemon_base, e.g. one local daemon); without
 * it remove answers -EOPNOTSUPP and the file stays (docs/operations.md).
 *
 * Convert. rrdcached cannot change a file's archives: convert() rewrites
 * one daemon's files through its -b directory as mounted where `storage
 * convert --daemon ADDR --dir DIR` runs, with the files backend's librrd
 * code, between a FLUSH + FORGET and a check through the daemon (the
 * section "conversion" below).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/fsutil.h"
#include "vigie/hash.h"
#include "vigie/hmap.h"
#include "vigie/name.h"
#include "vigie/rrdcached.h"
#include "vigie/log.h"
#include "collector/backend.h"
#include "collector/placement.h"
#include "collector/rrd_file.h"
#include "collector/rrd_view.h"
#include "collector/timepack.h"

#define ESC_MAX (3 * VG_NAME_MAX + 1)
#define POOL_MAX 8          /* idle clients kept per daemon */
#define IO_TIMEOUT_MS 10000 /* each wait on a daemon (a FLUSH writes) */
#define PROBE_MS 1000       /* a new connection's PING */
/* The receiver's write-through waits on a daemon at most this long by
 * default (vg_rrd_rrdcached_write_through_timeout sets it from the
 * agents' ack timeout): well below an ack timeout, so a daemon that
 * stalls behind a connection the receiver holds never makes an agent
 * fail over (see client_idle) */
#define WT_TIMEOUT_MS 1250
#define WT_TIMEOUT_MIN_MS 100
#define UNLISTED_MAX 16       /* unlisted addresses named (see struct rcd) */
#define UNLISTED_TAG 0x10000u /* the owners map's value for unlisted[0] */
#define BACKOFF_MIN_MS 250    /* after a failure, no new attempt before */
#define BACKOFF_MAX_MS 2000
/* A new connection's check of the files sent before (check_sent) starts
 * no group of files after this long: the rest wait for the next
 * connection, which goes on from there (see client_get_bounded). The
 * default of [storage] check_max (vg_rrd_rrdcached_check_bound) */
#define CHECK_MAX_MS 30000
/* A file the sync's read-back, or a new connection's check, finds behind
 * is read again before it is counted unwritten or lost (behind_confirm):
 * FLUSH (none after a FORGET) and INFO on the same connection, at once
 * and then after pauses doubling from CONFIRM_PAUSE_MS to
 * CONFIRM_PAUSE_MAX_MS; declared once its last update stayed where it was
 * (still behind) for CONFIRM_STALL_MS, as a failed write does; one still
 * moving after CONFIRM_MAX_MS (a long write) goes back for the next sync
 * or connection, not counted */
#define CONFIRM_PAUSE_MS 5
#define CONFIRM_PAUSE_MAX_MS 200
#define CONFIRM_STALL_MS 1000
#define CONFIRM_MAX_MS 5000
#define CHUNK 256       /* timestamps per UPDATE */
#define BATCH_ITEMS 512 /* series per BATCH round trip */
/* FLUSHes in flight at once during a sync, over all its connections: a
 * BATCH is answered after its last file is written, within IO_TIMEOUT_MS,
 * and the daemon shares its writer threads between the connections, so
 * 128 writes of up to ~75 ms each */
#define FLUSH_BATCH 128
/* Connections a sync FLUSHes over at once, the verified one included (see
 * flush_sent): rrdcached's default 4 writer threads then find its queue
 * full. At 20,000 series 2 to 8 measured alike and 1 cost the daemon
 * 20-30 % more CPU per file; at 100,000 the difference was within the
 * noise (docs/benchmarks.md) */
#define FLUSH_CONNS 4
#define FLUSH_CONNS_MAX FLUSH_CONNS

/* Files updated on a daemon and not yet verified durable (see check_sent):
 * name -> the newest time the daemon accepted for it. Every file written
 * is noted here once or twice per update and taken out by the next sync,
 * so it allocates nothing once warm: each entry (the time and a copy of
 * the name) is cut from blocks that are kept and reused, the map borrows
 * the names from them, and a sync swaps the set with a cleared spare
 * instead of starting a table from empty (a key copy, a malloc'd time and
 * a table rebuilt from 16 slots per sync were ~10 % of the collector's
 * CPU in the rrdcached mode's profile, docs/benchmarks.md). Memory: what
 * the largest sync held (entries ~48 bytes and ~64 bytes of table per
 * file), twice (the set and its spare). */
struct sent_entry {
	int64_t t_ms;
	/* the newest time some call proved the daemon took, or a check put
	 * back: an update that fails lowers t_ms (its own claim) to no less
	 * than this (see unmark_sent) */
	int64_t floor_ms;
	/* the newest time ever claimed (never lowered): a value up to it
	 * may be ours, taken by the daemon from a call whose answer was
	 * lost (see overtaken_check) */
	int64_t claim_ms;
	/* the oldest time of ours the entry may stand for: the oldest value
	 * of any call claimed since the file was last proven durable (a
	 * check or sync took it out of d->sent), or, for a time put back by
	 * a check or sync, that time (its older values unknown here: too
	 * high, never too low). Our values before it are in the file, so a
	 * value the daemon holds cached between the file's last update and
	 * this one is another collector's (see overtaken_check) */
	int64_t first_ms;
	/* the newest vg_rrd_loc.arrived_ms of the calls claimed (never
	 * lowered): the host came from another collector at that time, so
	 * a value cached before it may be that collector's even if we sent
	 * values older still (the host was ours, left and came back) */
	int64_t arrived_ms;
	/* 1: named by the start replay (rcd_replay_note): the values are
	 * the journal's, and the daemon may never have taken them (the
	 * collector killed before their send) as well as lost them; kept
	 * when a check or sync puts the entry back (put_back), for the
	 * words of overtaken_find and overtaken_check */
	int journaled;
	char name[]; /* NUL-terminated */
};

#define SENT_BLOCK (64 * 1024 - 64)

struct sent_block {
	struct sent_block *next;
	size_t used;
	_Alignas(8) char data[SENT_BLOCK];
};

struct sent_set {
	struct vg_hmap map;        /* borrowed keys: entry->name -> entry */
	struct sent_block *blocks; /* kept across clears */
	struct sent_block *cur;    /* the block entries are cut from */
};

static void sent_init(struct sent_set *s)
{
	vg_hmap_init_borrow(&s->map);
	s->blocks = s->cur = NULL;
}

/* Empty the set, keeping its blocks (and its table, see vg_hmap_clear). */
static void sent_clear(struct sent_set *s)
{
	vg_hmap_clear(&s->map);
	for (struct sent_block *b = s->blocks; b; b = b->next)
		b->used = 0;
	s->cur = s->blocks;
}

static void sent_free(struct sent_set *s)
{
	vg_hmap_release(&s->map);
	while (s->blocks) {
		struct sent_block *b = s->blocks;
		s->blocks = b->next;
		free(b);
	}
	s->cur = NULL;
}

/* NAME's entry, or NULL. */
static struct sent_entry *sent_get(const struct sent_set *s, const char *name)
{
	return vg_hmap_gets(&s->map, name);
}

/* Note that the daemon may hold NAME's values from first_ms up to t_ms: the
 * entry's time raised to t_ms and its first_ms lowered to first_ms, or a
 * new entry; with floor, its floor too. Returns the
 * time noted before (INT64_MIN: none). A new entry that cannot be
 * allocated is not noted (as mark_sent did before: the next sync then
 * does not FLUSH the file). */
static int64_t sent_note(struct sent_set *s, const char *name, int64_t first_ms, int64_t t_ms,
			 int64_t arrived_ms, int floor)
{
	size_t len = strlen(name);
	uint64_t h = vg_hmap_hash(name, len);
	struct sent_entry *e = vg_hmap_get_hashed(&s->map, name, len, h);
	size_t need = (offsetof(struct sent_entry, name) + len + 1 + 7) & ~(size_t)7;

	if (e) {
		int64_t old = e->t_ms;
		if (t_ms > e->t_ms)
			e->t_ms = t_ms;
		if (t_ms > e->claim_ms)
			e->claim_ms = t_ms;
		if (first_ms < e->first_ms)
			e->first_ms = first_ms;
		if (arrived_ms > e->arrived_ms)
			e->arrived_ms = arrived_ms;
		if (floor && t_ms > e->floor_ms)
			e->floor_ms = t_ms;
		return old;
	}
	if (need > SENT_BLOCK)
		return INT64_MIN;
	while (s->cur && s->cur->used + need > SENT_BLOCK) {
		if (!s->cur->next)
			break;
		s->cur = s->cur->next;
		s->cur->used = 0; /* a block after cur is never in use */
	}
	if (!s->cur || s->cur->used + need > SENT_BLOCK) {
		struct sent_block *b = malloc(sizeof(*b));
		if (!b)
			return INT64_MIN;
		b->next = NULL;
		b->used = 0;
		if (s->cur)
			s->cur->next = b;
		else
			s->blocks = b;
		s->cur = b;
	}
	e = (struct sent_entry *)(s->cur->data + s->cur->used);
	e->t_ms = t_ms;
	e->claim_ms = t_ms;
	e->first_ms = first_ms;
	e->arrived_ms = arrived_ms;
	e->floor_ms = floor ? t_ms : INT64_MIN;
	e->journaled = 0;
	memcpy(e->name, name, len + 1);
	if (vg_hmap_put_hashed(&s->map, e->name, len, h, e, NULL))
		return INT64_MIN; /* the space is reused by the next entry */
	s->cur->used += need;
	return INT64_MIN;
}

struct flush_conn;

/* A file read back after a FLUSH (or FORGET) and found behind, to be
 * confirmed (behind_confirm): the sync's read-back (unwritten_check) and
 * a new connection's check (check_sent). Its name (borrowed from the
 * taken set, which outlives the read-back) and the newest time of ours
 * it must hold. */
struct rb_item {
	const char *name;
	int64_t want;
	/* once found behind (behind_confirm): its last update read back
	 * (ms), when that was first read, and what the confirmation found
	 * (RB_*) */
	int64_t have;
	int64_t seen_ms;
	int state;
	int journaled; /* check_sent's: the entry's journaled */
};

#define RB_OPEN 0    /* being read again */
#define RB_WRITTEN 1 /* reached want: written (another's write ended) */
#define RB_STILL 2   /* stayed behind CONFIRM_STALL_MS: not written */
#define RB_GONE 3    /* no such file */
#define RB_UNREAD 4  /* not read (broken, another error), or still moving */

/* behind_confirm's reads: */
#define CF_FLUSH 1 /* re-reads FLUSH first */
#define CF_FRESH 2 /* not read yet: the first reads are INFO alone */

struct daemon {
	char addr[256];
	pthread_mutex_t mu; /* idle, err */
	struct vg_rrdcd *idle[POOL_MAX];
	size_t nidle;
	/* the sync's extra FLUSH connections, kept between syncs (flush_sent);
	 * never used for anything else */
	struct vg_rrdcd *fidle[FLUSH_CONNS_MAX];
	size_t nfidle;
	char err[512]; /* last failure */
	/* Why its last CREATE failed for a cause of the daemon's own that
	 * every create meets (started without -R: it cannot make the
	 * series' directories), "" once a create succeeds (d->mu); the
	 * state shows it before err, the log has it once per episode. */
	char create_err[384];
	/* the files whose create it refused so, each with the time of its
	 * last refusal (int64_t ms, malloc'd; d->mu): create_err stays
	 * while one of them, refused within NODIR_STALE_MS, still waits, so
	 * another series' create that succeeds does not clear the cause
	 * (/v1/health) between a waiting series' retries (nodir_done) */
	struct vg_hmap nodir;
	uint64_t create_errors; /* __atomic: creates refused so */
	int up;                 /* __atomic: last call reached it */
	/* __atomic: a call failed (backoff) since the last verification of
	 * a new connection that completed: the daemon may have restarted,
	 * so that verification FORGETs before it reads (check_sent) */
	int suspect;
	uint64_t errors; /* __atomic */
	uint64_t calls;  /* __atomic */
	/* __atomic: its BATCH round trips' recent duration (rtt_note), and
	 * the receiver's round trips not started for it (rcd_update_many) */
	int64_t rtt_ms;
	uint64_t rtt_skips;
	/* Files updated and not yet verified durable, with the newest time
	 * the daemon accepted for each (d->mu) */
	struct sent_set sent;
	/* a cleared set that a verification swaps with sent; held by the
	 * verification in progress (d->vmu) */
	struct sent_set spare;
	struct flush_conn *fc; /* flush_sent's, FLUSH_CONNS_MAX (d->vmu) */
	/* Files whose accepted values the daemon lost (it restarted before
	 * writing them): name -> int64_t * (malloc'd), the newest time its
	 * file still holds; their updates wait for the store to re-send the
	 * lost values from its journal (vg_rrd_backend_ops.lost; d->mu). */
	struct vg_hmap lost;
	/* The files of lost, and those re-sent since, whose re-send may be
	 * refused as older than the file: name -> struct resend *
	 * (malloc'd), from mark_lost until the re-send was decided: a call
	 * of ours after it (lost_take: the store's rcd_resent or the start
	 * replay's replay_last_ms) wrote the file up to the newest lost
	 * value, update_refused found the re-sent values refused
	 * (resend_refused), or the file was removed (rcd_remove). While it
	 * holds any, every update of the daemon looks its file up here
	 * (resend_after; d->mu) */
	struct vg_hmap resend;
	/* The start replay's journaled times of each file it named
	 * (rcd_replay_note): name -> struct replay_times * (malloc'd),
	 * dropped once the file's check decided and carried it out
	 * (replay_times_done; d->mu) */
	struct vg_hmap jtimes;
	/* The files the start replay named (rcd_replay_note): name ->
	 * struct replay_pre * (malloc'd), their last updates read in groups
	 * ahead of the replay's opens (replay_read; d->mu) */
	struct vg_hmap rpre;
	uint64_t nlost;        /* __atomic: entries in lost */
	uint64_t nresend;      /* __atomic: entries in resend */
	uint64_t losses;       /* __atomic: lost files ever found (a sync
				  * during which it moves keeps the journal) */
	uint64_t repairs;      /* __atomic: cache entries found ahead of
				  * their file and FORGOTten (update_refused) */
	uint64_t checks_cut;   /* __atomic: checks of a new connection that
				  * reached check_max_ms (check_sent) */
	uint64_t overtaken;    /* __atomic: files whose values of ours
				  * cannot be written, another collector's
				  * newer ones having reached them first: the
				  * daemon lost ours (a restart), or, the start
				  * replay's, never had them (overtaken_check,
				  * overtaken_find), or re-sent values of a
				  * lost file refused (resend_refused) */
	uint32_t check_max_ms; /* __atomic: a check's overall bound */
	/* __atomic: [storage] verify_writes: 0 skips the sync's read-back
	 * (unwritten_check) */
	int verify_writes;
	/* __atomic: FLUSHes sent to it (one per file), by call site (enum
	 * vg_store_flush_site) */
	uint64_t flushes_by[VG_STORE_FLUSH_N];
	pthread_mutex_t vmu; /* one verification at a time */
	/* Sends to the daemon (read: from the lost-file check to the answer)
	 * against a check that FORGETs (write, check_sent): no UPDATE that
	 * passed is_lost may reach the daemon between such a check's FORGET
	 * of its file and the re-send of what the file lacks */
	pthread_rwlock_t smu;
	int64_t down_until_ms; /* __atomic: no new connection before */
	uint32_t backoff_ms;   /* __atomic: the current back-off */
	/* The daemon answered a sync's FLUSH of some file with a refusal
	 * (the file's, not the connection's: -P without FLUSH, ...): no
	 * sync FLUSHes its files before refused_until_ms, with the same
	 * doubling back-off as a connection's (backoff_step), so a refusal
	 * that persists costs a FLUSH BATCH per back-off, not one per sync
	 * (per batch with write-through). refused_backoff_ms 0: no refusal
	 * since the last sync whose FLUSHes all passed. Written under d->vmu
	 * (__atomic, read without it). */
	int64_t refused_until_ms;
	uint32_t refused_backoff_ms;
	uint64_t flush_refused; /* __atomic: FLUSHes of a file refused so */
	/* While a refusal episode lasts (refused_backoff_ms != 0), the
	 * last refusal: "FILE: ANSWER"; "" once a sync's FLUSHes pass
	 * again (d->mu): /v1/health shows the daemon degraded meanwhile
	 * (d->err, the last failure of any kind, is overwritten by others) */
	char refusal[400];
	/* __atomic: files a sync found gone from the daemon's disk with
	 * values of ours accepted for them (flush_sent, "A file deleted
	 * under the daemon") */
	uint64_t vanished;
	/* __atomic: files a sync's read-back found behind what the daemon
	 * took of ours once FLUSHed (its write failed: unwritten_check) */
	uint64_t unwritten;
	/* __atomic: files the sync's read-back read here and by INFO
	 * (behind_confirm) */
	uint64_t rb_local, rb_info;
	/* __atomic: the read-back's local read is off for this daemon (its
	 * probe found daemon_base not to be this daemon's -b: probe_here) */
	int rb_local_off;
	/* the files of a sync whose FLUSH passed, read back after it
	 * (unwritten_check): grown to the largest sync and kept (d->vmu) */
	struct rb_item *rb;
	size_t nrb, rb_cap;
	/* names of the files found unwritten and logged since the last sync
	 * that found none (d->mu): one log line per file and episode */
	struct vg_hmap unwritten_logged;
	const char *base; /* the rcd's base: the daemons' -b here, or "" */
};

struct rcd {
	struct vg_rrd_backend be; /* first: the handle */
	struct daemon *d;
	size_t nd;
	char base[PATH_MAX];   /* the daemons' -b when shared, or "" */
	pthread_mutex_t mu;    /* owners, owners_fd; taken inside the shared
				* record's lock (its callbacks), never held
				* while calling it */
	struct vg_hmap owners; /* name -> (void *)(daemon index + 1), or
				* UNLISTED_TAG + k (unlisted[k]), or -1 (an
				* unlisted address beyond the table) */
	/* Addresses the record names that are not in [storage] daemons (a
	 * daemon removed before its series were moved): kept to name them in
	 * reads' errors and in health (vg_rrd_rrdcached_unlisted); a slot is
	 * never reused, so loc->recorded stays valid. r->mu. */
	struct {
		char addr[256];
		uint64_t series; /* names recorded on it now */
	} unlisted[UNLISTED_MAX];
	size_t nunlisted;
	int owners_fd;
	int owners_dirty;
	char owners_path[PATH_MAX];        /* "" when none */
	struct vg_placement *shared;       /* the shared record, or NULL */
	int upload_pending;                /* the owners file not uploaded yet */
	struct vg_rrd_backend_stats stats; /* __atomic */
	int wt_timeout_ms;                 /* the receiver's bound per wait */
	int64_t rx_deadline_ms;            /* the receiver's batch deadline
					    * (monotonic; 0: none): its opens'
					    * waits end by it (receiver only) */
	/* `storage convert`: the daemon whose files convert() rewrites
	 * (SIZE_MAX: none, convert answers -ENOTSUP) and its -b directory
	 * as mounted here, resolved (vg_rrd_rrdcached_convert_dir) */
	size_t conv_owner;
	char conv_dir[PATH_MAX];
};

static void count(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

/* ---- daemons and their clients ------------------------------------------------ */

static int64_t mark_sent(struct daemon *d, const char *name, int64_t t_ms);
static void put_back(struct daemon *d, const char *key);

/* One more failure in a row: the back-off *b_ms doubles from
 * BACKOFF_MIN_MS (0: the first failure) to BACKOFF_MAX_MS, and *until_ms
 * says no new attempt before it has passed. The one back-off of this
 * file, for a daemon that does not answer (backoff) and for one that
 * refuses a sync's FLUSH (flush_sent). */
static void backoff_step(uint32_t *b_ms, int64_t *until_ms)
{
	uint32_t b = __atomic_load_n(b_ms, __ATOMIC_RELAXED);

	b = b ? (b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2) : BACKOFF_MIN_MS;
	__atomic_store_n(b_ms, b, __ATOMIC_RELAXED);
	__atomic_store_n(until_ms, vg_monotonic_ms() + b, __ATOMIC_RELAXED);
}

/* A call to d failed: no new attempt before the back-off has passed, so a
 * daemon that is down or stalled (SIGSTOP, a hung disk: it takes
 * connections and never answers) costs the storage thread one timed-out
 * wait per back-off, not one per series, and other daemons' series keep
 * being written. The back-off doubles from BACKOFF_MIN_MS to
 * BACKOFF_MAX_MS while failures repeat. */
static void backoff(struct daemon *d)
{
	__atomic_store_n(&d->suspect, 1, __ATOMIC_RELAXED);
	backoff_step(&d->backoff_ms, &d->down_until_ms);
}

/* c failed: close it and every idle client of d (made before the
 * failure: dead if the daemon restarted, each another timed-out wait if
 * it is stalled). */
static void client_broken(struct daemon *d, struct vg_rrdcd *c)
{
	struct vg_rrdcd *idle[POOL_MAX], *fidle[FLUSH_CONNS_MAX];
	size_t n, nf;

	backoff(d);
	__atomic_store_n(&d->up, 0, __ATOMIC_RELAXED);
	count(&d->errors, 1);
	pthread_mutex_lock(&d->mu);
	snprintf(d->err, sizeof(d->err), "%.200s: %.280s", d->addr, vg_rrdcd_error(c));
	n = d->nidle;
	memcpy(idle, d->idle, n * sizeof(*idle));
	d->nidle = 0;
	nf = d->nfidle;
	memcpy(fidle, d->fidle, nf * sizeof(*fidle));
	d->nfidle = 0;
	pthread_mutex_unlock(&d->mu);
	vg_rrdcd_close(c);
	for (size_t k = 0; k < n; k++)
		vg_rrdcd_close(idle[k]);
	for (size_t k = 0; k < nf; k++)
		vg_rrdcd_close(fidle[k]);
}

/* Verify on client c that the daemon durably holds what it accepted:
 * every file of d->sent (taken out now) is FLUSHed (the daemon returns
 * once the file is written: its host's page cache, safe against a kill -9
 * of the daemon), then its last update read (INFO reads the file) and
 * compared with the newest time accepted. A file behind that time lost
 * values (the daemon restarted before writing them, without its -j
 * journal or before the journal had them): it moves to d->lost with the
 * time it still holds. Files not checked (the connection broke, or the
 * daemon refused) go back to d->sent. *nlost (may be NULL) counts the
 * lost files found. 0, or -EIO when some file could not be checked. */
static int flush_sent(struct daemon *d, struct vg_rrdcd *c, struct vg_rrdcd **extra,
		      size_t nextra, const struct sent_set *snap);

/* A lost file's re-send (d->resend): what the file held when it was found
 * lost, and the times of ours any call sent it since (one interval, the
 * oldest first and newest last of those calls: a call's values are
 * consecutive, so a value inside may be one of them, taken by the daemon
 * even if the call failed after). */
struct resend {
	int64_t have_ms; /* the lost entry's: the file's newest time then */
	int64_t upto_ms; /* the newest time of ours it was found lacking */
	int64_t from_ms; /* INT64_MAX: no call since */
	int64_t to_ms;   /* INT64_MIN: no call since */
	int resent;      /* their re-send began (lost_take) */
};

/* Drop NAME's re-send entry; d->mu held. */
static void resend_drop(struct daemon *d, const char *name)
{
	struct resend *rs = vg_hmap_dels(&d->resend, name);

	if (rs) {
		free(rs);
		__atomic_fetch_sub(&d->nresend, 1, __ATOMIC_RELEASE);
	}
}

/* Records NAME as lost on D: the daemon's file holds values up to HAVE
 * (INT64_MIN: none, or no file) only, not UPTO, the newest the daemon
 * accepted; 0 when recorded or already there,
 * -ENOMEM when it could not be (the caller keeps it as sent, checked
 * again later). Its re-send is watched from now on (d->resend; without
 * memory for that, only its refusal goes uncounted). */
static int mark_lost(struct daemon *d, const char *name, int64_t have, int64_t upto,
		     size_t *nlost)
{
	int64_t *want = malloc(sizeof(*want));
	struct resend *rs = malloc(sizeof(*rs));

	if (!want) {
		free(rs);
		return -ENOMEM;
	}
	pthread_mutex_lock(&d->mu);
	*want = have;
	if (vg_hmap_gets(&d->lost, name) || vg_hmap_puts(&d->lost, name, want)) {
		free(want);
	} else {
		__atomic_fetch_add(&d->nlost, 1, __ATOMIC_RELEASE);
		count(&d->losses, 1);
		if (nlost)
			(*nlost)++;
		resend_drop(d, name); /* a loss found again: watched anew */
		if (rs)
			*rs = (struct resend){have, upto, INT64_MAX, INT64_MIN, 0};
		if (rs && !vg_hmap_puts(&d->resend, name, rs)) {
			__atomic_fetch_add(&d->nresend, 1, __ATOMIC_RELEASE);
			rs = NULL;
		}
	}
	pthread_mutex_unlock(&d->mu);
	free(rs);
	return 0;
}

/* After a call of ours sent NAME its values FIRST..LAST (ms), ALL of them
 * decided or not (written, or found stored: nothing of the call waits
 * for a retry): a lost file's entry notes them (a failed call may have
 * had them taken, so their later refusal is no loss); once the lost
 * values' re-send began (lost_take), a call that decided everything up
 * to the newest lost one (upto_ms) or past it ends the watch (the
 * re-sent values went in, or their refusal was counted by
 * resend_refused or was no loss: the store sends a series' values in
 * order). */
static void resend_after(struct daemon *d, const char *name, int64_t first, int64_t last,
			 int all)
{
	struct resend *rs;

	if (!__atomic_load_n(&d->nresend, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&d->mu);
	if ((rs = vg_hmap_gets(&d->resend, name))) {
		if (all && rs->resent && last >= rs->upto_ms) {
			resend_drop(d, name);
		} else {
			if (first < rs->from_ms)
				rs->from_ms = first;
			if (last > rs->to_ms)
				rs->to_ms = last;
		}
	}
	pthread_mutex_unlock(&d->mu);
}

/* NAME leaves d->lost for the re-send of its lost values, which comes
 * now: the store's (rcd_resent) or, for a file the start replay's check
 * found lost, the replay's own sends after replay_last_ms answered what
 * the file holds. Its watch (d->resend) from then on ends with the first
 * call that decides everything up to the newest lost value (resend_after)
 * or with the re-send's refusal (resend_refused): before it was marked
 * here, the start replay's entries never ended, and every later update
 * of the daemon paid a lock and a look-up for them. The lost entry, or
 * NULL (not lost); the caller frees it. d->mu held. */
static int64_t *lost_take(struct daemon *d, const char *name)
{
	int64_t *have = vg_hmap_dels(&d->lost, name);
	struct resend *rs;

	if (!have)
		return NULL;
	__atomic_fetch_sub(&d->nlost, 1, __ATOMIC_RELEASE);
	if ((rs = vg_hmap_gets(&d->resend, name)))
		rs->resent = 1;
	return have;
}

/* update_refused found v[0..n) of NAME no newer than the file's last
 * update LAST (ms), skipped as already stored. For a file found lost
 * (d->resend), a value after what the file held then (have_ms) that no
 * call of ours sent since is not ours in the file: the daemon lost it (a
 * restart) and newer values reached the file before the store's re-send
 * (the host moved to another collector, whose values the file took
 * first; an RRD takes only newer times). Lost for good: counted
 * (overtaken) and logged once per loss found, where before they counted
 * as duplicates, silently (docs/scaling.md "What holds now"). */
static void resend_refused(struct daemon *d, const char *name, const struct vg_rrd_value *v,
			   size_t n, int64_t last)
{
	struct resend *rs;
	int64_t from = INT64_MIN, to = INT64_MIN;
	size_t k = 0;

	if (!n || !__atomic_load_n(&d->nresend, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&d->mu);
	if ((rs = vg_hmap_gets(&d->resend, name))) {
		for (size_t j = 0; j < n; j++) {
			int64_t t = v[j].t_ms;
			if (t <= rs->have_ms || (t >= rs->from_ms && t <= rs->to_ms))
				continue;
			if (!k++)
				from = t;
			to = t;
		}
		if (k)
			resend_drop(d, name);
	}
	pthread_mutex_unlock(&d->mu);
	if (!k)
		return;
	count(&d->overtaken, 1);
	vg_warn("storage: %s: %s: %zu value(s) of this collector's from %lld to %lld ms, "
		"lost by the daemon (a restart) and re-sent from the journal, are older "
		"than the file's last update at %lld ms: newer values (the host's next "
		"collector's) reached the file first, and they cannot be written "
		"(docs/scaling.md \"What holds now\")",
		d->addr, name, k, (long long)from, (long long)to, (long long)last);
}

/* The check after a failure (check_sent) found NAME's file past our
 * newest value t_ms: another collector wrote it since (we never send past
 * our claim). If the daemon lost our value (a restart, its journal short)
 * before that collector's newer one reached it, the file's last update
 * hides the loss and no re-send can repair it (an RRD takes only newer
 * times); the file's row holding t_ms, unknown, shows it (a lost value
 * leaves its rows unknown when its neighbours are more than a heartbeat
 * apart: the loss a reader of the series sees). Counted (overtaken) and
 * logged; nothing else. A value we sent unknown (U) would be counted
 * too; a row another value filled within the heartbeat is not. A failed
 * FETCH decides nothing (the caller's next call finds a broken
 * connection). JOURNALED: the value is the start replay's
 * (rcd_replay_note), which the daemon may never have had (the collector
 * killed before sending it): the log says so rather than that the daemon
 * lost it; the count is the same (a value of ours the file can no longer
 * take). */
static void overtaken_find(struct daemon *d, struct vg_rrdcd *c, const char *name, int64_t t_ms,
			   int journaled)
{
	struct vg_rrdcd_fetch f;
	int64_t t_s = t_ms / 1000 + (t_ms % 1000 != 0);

	if (t_ms <= 0 || vg_rrdcd_fetch(c, name, "AVERAGE", t_s - 1, t_s, &f))
		return;
	for (size_t i = 0; i < f.nrows; i++) {
		int known = 0;
		if (f.ts[i] * 1000 < t_ms)
			continue;
		for (size_t k = 0; k < f.nds && !known; k++)
			known = !isnan(f.values[i * f.nds + k]);
		if (!known) {
			count(&d->overtaken, 1);
			if (journaled)
				vg_warn("storage: %s: %s: the start replay's check: the file "
					"lacks this collector's journaled value at %lld ms "
					"(never sent before the kill, or lost by the daemon) "
					"and newer values reached the file first: it cannot "
					"be written (docs/operations.md \"A replay that skips "
					"a value\")",
					d->addr, name, (long long)t_ms);
			else
				vg_warn("storage: %s: %s: the daemon lost this collector's "
					"value at %lld ms (a restart; its journal lacked it) "
					"and newer values reached the file first: it cannot "
					"be written (docs/operations.md \"A replay that skips "
					"a value\")",
					d->addr, name, (long long)t_ms);
		}
		break;
	}
	vg_rrdcd_fetch_free(&f);
}

/* The start replay's journaled times of a file (rcd_replay_note),
 * ascending, packed (timepack.h: 2 to 3 bytes each rather than 8). */
struct replay_times {
	size_t len;
	uint8_t b[];
};

/* The oldest journaled time of NAME after AFTER (ms), from the times the
 * start replay named; INT64_MAX: none known (not named, or none after). */
static int64_t replay_oldest_after(struct daemon *d, const char *name, int64_t after)
{
	const struct replay_times *rt;
	int64_t t = INT64_MAX;

	pthread_mutex_lock(&d->mu);
	if ((rt = vg_hmap_gets(&d->jtimes, name)))
		t = vg_tpack_first_after(rt->b, rt->len, after);
	pthread_mutex_unlock(&d->mu);
	return t;
}

/* The oldest value of ours that the daemon should hold cached for NAME
 * after its file's last update AFTER (ms), unwritten; INT64_MAX: not
 * known. For a file the start replay named (se->journaled), its oldest
 * journaled time after AFTER (replay_oldest_after). For a running
 * collector's, the oldest value of ours claimed since the file was last
 * proven durable (se->first_ms), when the file's last update is before
 * it; a file written past first_ms holds some of those values, and which
 * of ours come after its last update is not known here. */
static int64_t ours_oldest_after(struct daemon *d, const char *name, const struct sent_entry *se,
				 int64_t after)
{
	if (se->journaled)
		return replay_oldest_after(d, name, after);
	return after < se->first_ms ? se->first_ms : INT64_MAX;
}

/* The one rule of both checks (overtaken_check: the start replay's and
 * the one after a failed call) for a file behind our newest value: did
 * the daemon lose a prefix of our unwritten values? OLDEST is the oldest
 * value it holds cached after the file's last update (INT64_MAX: none),
 * OURS our oldest value after that last update (ours_oldest_after;
 * INT64_MAX: not known). The daemon's -j replay loses a prefix of a
 * file's unwritten values (journaled before a "wrote") or a suffix (its
 * journal's unflushed tail), never one between two it kept; a daemon
 * that did not restart loses nothing. So unless what it holds cached
 * starts after our oldest value, it holds ours from the oldest on: 0,
 * FLUSH (what the file then lacks is lost and re-sent). 1 (a prefix of
 * ours lost, or ours unknown): FORGET, and the store re-sends from its
 * journal everything the file lacks.
 * Why not FORGET always: a FORGET drops our values the daemon holds
 * until the re-send, and the host's next collector's newer value
 * reaching the file first makes them refused (the cluster test: 3,589
 * values of 672 files at a collector's start; at a running collector's
 * check after a write-through timing out on a loaded machine, `73 W 74
 * F 75 … 83 74 75` in the daemon's journal, 324 values). */
static int prefix_lost(int64_t oldest, int64_t ours)
{
	return ours == INT64_MAX || oldest > ours;
}

/* NAME left d->sent with its check's decision carried out (durable, its
 * FLUSH or FORGET done and the file read, or marked lost): the start
 * replay's journaled times of it (JOURNALED: it named NAME) are no longer
 * needed. Never before that, nor for a file put back: a FLUSH that failed
 * (a timeout, a broken connection, an INFO refused) leaves the daemon
 * holding our values, and the next check, without the times, would take
 * our oldest for unknown and FORGET them (prefix_lost), for a re-send
 * that the host's next collector's newer value may beat. */
static void replay_times_done(struct daemon *d, const char *name, int journaled)
{
	if (!journaled)
		return;
	pthread_mutex_lock(&d->mu);
	free(vg_hmap_dels(&d->jtimes, name));
	pthread_mutex_unlock(&d->mu);
}

static int rb_add(struct daemon *d, const char *name, int64_t want);
static void behind_confirm(struct daemon *d, struct vg_rrdcd *c, struct rb_item *b, size_t n,
			   int how, int site);

/* NAME, read after its FLUSH or FORGET, is behind WANT, the newest time
 * of ours (HAVE: its last update read): noted in d->rb, which check_sent
 * confirms once its groups are done (check_confirm: another FLUSH's write
 * of it may still be going on). Without memory for that it is marked
 * lost at once, as before the confirmation. 0, or mark_lost's error. */
static int check_behind(struct daemon *d, const char *name, int64_t have, int64_t want,
			int journaled, size_t *nlost)
{
	if (!rb_add(d, name, want)) {
		d->rb[d->nrb - 1].have = have;
		d->rb[d->nrb - 1].journaled = journaled;
		return 0;
	}
	if (mark_lost(d, name, have, want, nlost))
		return -ENOMEM;
	replay_times_done(d, name, journaled);
	return 0;
}

/* The files check_sent found behind (d->rb, check_behind), read again on
 * c (behind_confirm: FLUSH and INFO, or INFO alone after a FORGET): one
 * that reached our newest time is durable; one that stayed behind, or is
 * gone, lost (mark_lost: the store re-sends what it lacks); one not read
 * or still being written goes back to d->sent (*ret -EIO: the next
 * connection checks it again). Once for all the check's groups, so a
 * daemon that lost many files costs the check CONFIRM_STALL_MS once. */
static void check_confirm(struct daemon *d, struct vg_rrdcd *c, int forget, size_t *nlost,
			  int *ret)
{
	behind_confirm(d, c, d->rb, d->nrb, forget ? 0 : CF_FLUSH, VG_STORE_FLUSH_CHECK);
	for (size_t i = 0; i < d->nrb; i++) {
		const struct rb_item *it = &d->rb[i];

		if (it->state == RB_WRITTEN ||
		    ((it->state == RB_STILL || it->state == RB_GONE) &&
		     !mark_lost(d, it->name, it->state == RB_GONE ? INT64_MIN : it->have,
				it->want, nlost))) {
			replay_times_done(d, it->name, it->journaled);
			continue; /* durable, or lost */
		}
		put_back(d, it->name); /* checked again later, by its times */
		*ret = -EIO;
	}
	d->nrb = 0;
}

/* The check after a failure (check_sent), for the files se/names[0..*k)
 * that lack our newest value: asks the daemon what it holds cached of
 * each (PENDING). A file with a cached value newer than any we claimed
 * (claim_ms: also the values of a call that broke, which the daemon may
 * have taken) had another collector write it since (the host moved; we
 * never send a time past our claim, and smu keeps our own sends out
 * meanwhile): it is FLUSHed,
 * not FORGOTten, so that collector's values are written, and so are ours
 * if the daemon still holds them (a failure that was no restart: nothing
 * lost). If our newest value is neither cached nor in the file, the
 * daemon lost it (its journal replay) and a time past it is now taken:
 * no re-send can put it back (RRD takes only newer times), so it is
 * counted (overtaken) and logged, never FORGOTten at the cost of the
 * other collector's values (the log tells a value the start replay named,
 * which the daemon may never have had, from one it acknowledged).
 * Nor is a file FORGOTten whose daemon holds cached a value past the
 * file's last update (last_s) and older than any we sent since the file
 * was last proven durable (first_ms), or than the host's arrival here
 * from another collector (arrived_ms: we may have sent older values
 * before it left, and that collector's lie between): that is another
 * collector's too, whose sync had not FLUSHed it yet (with
 * [storage] sync_interval = 300s, up to 300 s of its values). A FORGET
 * would drop it for good: we re-send only our own values, and that
 * collector's check then finds the file past its values (seen in the
 * cluster test with sync_interval = 300s: polls 38-50 of 3,262 series,
 * docs/scaling.md "Still open"). It is FLUSHed as well; what the file
 * then lacks of ours is lost (mark_lost) and re-sent by the store. The
 * price: a value of ours that the daemon's journal replay skipped
 * (docs/operations.md "A replay that skips a value") under a newer one of
 * ours it kept is not found, as with a FLUSH before that FORGET existed.
 * Those files leave names/se/last_s (done, noted for check_confirm when
 * still behind, or back in d->sent when their FLUSH failed); the rest are compacted to the front and *k says
 * how many, for the FORGET. 0, or the connection's negative errno
 * (nothing decided: the caller puts every file back). */
static int overtaken_check(struct daemon *d, struct vg_rrdcd *c,
			   const struct sent_entry **se, const char **names, int64_t *last_s,
			   size_t *k, size_t *nlost, int *ret)
{
	int64_t want[VG_RRDCD_LAST_MANY_MAX], newest[VG_RRDCD_LAST_MANY_MAX];
	int64_t after[VG_RRDCD_LAST_MANY_MAX], oldest[VG_RRDCD_LAST_MANY_MAX];
	int has[VG_RRDCD_LAST_MANY_MAX], perr[VG_RRDCD_LAST_MANY_MAX];
	int older[VG_RRDCD_LAST_MANY_MAX], fjournaled[VG_RRDCD_LAST_MANY_MAX];
	const char *fnames[VG_RRDCD_LAST_MANY_MAX];
	int64_t fwant[VG_RRDCD_LAST_MANY_MAX], flast[VG_RRDCD_LAST_MANY_MAX];
	int fhas[VG_RRDCD_LAST_MANY_MAX], ferr[VG_RRDCD_LAST_MANY_MAX];
	size_t n = *k, nf = 0, kb = 0;
	int rc;

	for (size_t i = 0; i < n; i++) {
		want[i] = se[i]->t_ms;
		after[i] = last_s[i] * 1000 + 999;
	}
	if ((rc = vg_rrdcd_pending_many(c, names, n, want, newest, has, after, oldest, perr)))
		return rc;
	for (size_t i = 0; i < n; i++) {
		int newer = !perr[i] && newest[i] != INT64_MIN && newest[i] > se[i]->claim_ms;
		int64_t ours = se[i]->first_ms > se[i]->arrived_ms ? se[i]->first_ms
								   : se[i]->arrived_ms;
		int old = !perr[i] && oldest[i] != INT64_MAX && oldest[i] < ours;
		/* Our values the daemon still holds from the oldest on (no
		 * prefix of them lost): FLUSHed, not FORGOTten (prefix_lost) */
		if (!newer && !old && !perr[i] && oldest[i] != INT64_MAX)
			old = !prefix_lost(oldest[i], ours_oldest_after(d, names[i], se[i], after[i]));
		if (newer || old) {
			fnames[nf] = names[i];
			fwant[nf] = want[i];
			older[nf] = !newer;
			fjournaled[nf] = se[i]->journaled;
			fhas[nf++] = has[i];
			continue;
		}
		se[kb] = se[i];
		last_s[kb] = last_s[i];
		names[kb++] = names[i];
	}
	*k = kb;
	if (!nf)
		return 0;
	/* the FLUSH BATCH, then each file's INFO: written past ours now */
	if (vg_rrd_rrdcached_test_before_check_flush)
		vg_rrd_rrdcached_test_before_check_flush();
	count(&d->flushes_by[VG_STORE_FLUSH_CHECK], nf);
	if ((rc = vg_rrdcd_last_update_many(c, fnames, nf, flast, ferr))) {
		for (size_t i = 0; i < nf; i++)
			put_back(d, fnames[i]);
		*ret = -EIO;
		return rc;
	}
	for (size_t i = 0; i < nf; i++) {
		/* the file lacks ours: confirmed at the check's end (another
		 * FLUSH's write may be going on), then re-sent after the older */
		if (!ferr[i] && older[i] && flast[i] * 1000 + 999 < fwant[i] &&
		    !check_behind(d, fnames[i], flast[i] * 1000 + 999, fwant[i], fjournaled[i],
				  nlost))
			continue;
		if (ferr[i] || flast[i] * 1000 + 999 < fwant[i]) {
			put_back(d, fnames[i]); /* checked again later, by its times */
			*ret = -EIO;
			continue;
		}
		replay_times_done(d, fnames[i], fjournaled[i]);
		if (fhas[i] || older[i])
			continue; /* ours were cached still: written now */
		count(&d->overtaken, 1);
		if (fjournaled[i]) /* the start replay's: maybe never sent */
			vg_warn("storage: %s: %s: the start replay's check: the file "
				"lacks this collector's journaled values up to %lld ms "
				"(never sent before the kill, or lost by the daemon) and "
				"the daemon holds another collector's newer ones: those "
				"are written, ours cannot be (docs/operations.md \"A "
				"replay that skips a value\")",
				d->addr, fnames[i], (long long)fwant[i]);
		else
			vg_warn("storage: %s: %s: the daemon lost this collector's values "
				"up to %lld ms (a restart; its journal lacked them) and holds "
				"another collector's newer ones: those are written, ours "
				"cannot be (docs/operations.md \"A replay that skips a "
				"value\")",
				d->addr, fnames[i], (long long)fwant[i]);
	}
	return 0;
}

/* The caller holds d->vmu (which owns d->spare). */
static int check_sent(struct daemon *d, struct vg_rrdcd *c, struct vg_rrdcd **extra,
		      size_t nextra, size_t *nlost, int read_last)
{
	struct sent_set snap;
	const struct vg_hmap_entry *e;
	size_t pos = 0;
	int ret = 0, forget = 0;

	/* After a failure the daemon may have restarted, with its -j
	 * journal replayed: FORGET each file before reading it, so that only
	 * what the file holds counts (see the comment at the top, "A replay
	 * that skips a value"), with every other send to the daemon stopped
	 * (smu) from before the files are taken until they are marked lost:
	 * a newer value reaching the daemon after the FORGET would make the
	 * re-send of the older ones refused. Set again below if this check
	 * fails. */
	if (read_last && (forget = __atomic_exchange_n(&d->suspect, 0, __ATOMIC_RELAXED)))
		pthread_rwlock_wrlock(&d->smu);
	pthread_mutex_lock(&d->mu);
	snap = d->sent;
	d->sent = d->spare; /* cleared when it was put back, below */
	pthread_mutex_unlock(&d->mu);
	d->nrb = 0; /* the files found behind (check_behind) */
	if (!read_last) {
		ret = flush_sent(d, c, extra, nextra, &snap);
		goto done;
	}
	/* in groups of VG_RRDCD_LAST_MANY_MAX files, two round trips each
	 * (a FLUSH BATCH, or after a failure a FORGET BATCH, then their
	 * INFOs pipelined), within the check's overall bound: once it has
	 * passed no group starts and the files left go back (the first group
	 * always runs, so each check gets somewhere) */
	int64_t until = vg_monotonic_ms() + (int64_t)__atomic_load_n(&d->check_max_ms,
								     __ATOMIC_RELAXED);
	for (int first = 1;; first = 0) {
		const struct sent_entry *se[VG_RRDCD_LAST_MANY_MAX];
		const char *names[VG_RRDCD_LAST_MANY_MAX];
		int64_t last_s[VG_RRDCD_LAST_MANY_MAX];
		int err[VG_RRDCD_LAST_MANY_MAX], rc = -EIO;
		size_t k = 0;

		if (!first && vg_monotonic_ms() >= until) {
			while ((e = vg_hmap_next(&snap.map, &pos))) {
				int64_t t = ((const struct sent_entry *)e->value)->t_ms;
				if (t == INT64_MIN) /* nothing to verify (below) */
					continue;
				put_back(d, e->key);
				if (!ret)
					ret = -ETIMEDOUT;
			}
			if (ret == -ETIMEDOUT)
				count(&d->checks_cut, 1);
			break;
		}
		while (k < VG_RRDCD_LAST_MANY_MAX && (e = vg_hmap_next(&snap.map, &pos))) {
			/* A file of which the daemon took nothing of ours (a
			 * claim taken back after a send that failed, no floor)
			 * has nothing to verify; and FORGETting it would drop
			 * what the daemon holds of another collector's, the
			 * host's previous one (its own check, later, would then
			 * find the file past those values: lost for good) */
			if (((const struct sent_entry *)e->value)->t_ms == INT64_MIN)
				continue;
			se[k] = e->value;
			names[k++] = e->key;
		}
		if (!k)
			break;
		if (vg_rrdcd_connected(c) && !forget) {
			count(&d->flushes_by[VG_STORE_FLUSH_CHECK], k);
			rc = vg_rrdcd_last_update_many(c, names, k, last_s, err);
		} else if (vg_rrdcd_connected(c)) {
			/* What the files hold first: one that holds our newest
			 * value already is durable and is not FORGOTten, which
			 * would drop whatever the daemon holds cached for it of
			 * another collector's (the host's next one, which
			 * counts those values written: lost for good; seen in
			 * the cluster test, docs/scaling.md). Only the files
			 * behind are FORGOTten and read again. */
			size_t kb = 0;
			if (!(rc = vg_rrdcd_info_last_many(c, names, k, last_s, err))) {
				for (size_t i = 0; i < k; i++) {
					if (!err[i] && last_s[i] * 1000 > se[i]->t_ms) {
						/* past our newest: another
						 * collector wrote since; does
						 * the file hold ours? */
						overtaken_find(d, c, names[i], se[i]->t_ms,
							       se[i]->journaled);
						replay_times_done(d, names[i], se[i]->journaled);
						continue;
					}
					if (!err[i] && last_s[i] * 1000 + 999 >= se[i]->t_ms) {
						replay_times_done(d, names[i], se[i]->journaled);
						continue; /* durable */
					}
					se[kb] = se[i];
					/* unread: nothing taken for another's */
					last_s[kb] = err[i] ? INT64_MAX / 1000 - 1 : last_s[i];
					names[kb++] = names[i];
				}
				if (!(k = kb))
					continue;
				/* Then what the daemon holds cached of the files
				 * behind: one holding a value newer than ours was
				 * written since by another collector (the host's
				 * next one), and a FORGET would drop that value
				 * for good (that collector counts it written) */
				if (!(rc = overtaken_check(d, c, se, names, last_s, &k, nlost,
							   &ret)) &&
				    k)
					rc = vg_rrdcd_forget_last_many(c, names, k, last_s, err);
				else if (!rc)
					continue;
			}
		}
		for (size_t i = 0; i < k; i++) {
			int64_t have = INT64_MIN;
			int ri = err[i];

			if (rc) { /* not checked: the connection broke */
				put_back(d, names[i]);
				ret = -EIO;
				continue;
			}
			if (ri == 0)
				have = last_s[i] * 1000 + 999;
			if (ri == 0 && have >= se[i]->t_ms) {
				replay_times_done(d, names[i], se[i]->journaled);
				continue; /* durable */
			}
			if (ri == 0 &&
			    !check_behind(d, names[i], have, se[i]->t_ms, se[i]->journaled, nlost))
				continue; /* behind: confirmed below */
			if ((ri == -ENOENT || ri == -EREMOTEIO) &&
			    !mark_lost(d, names[i], have, se[i]->t_ms, nlost)) {
				replay_times_done(d, names[i], se[i]->journaled);
				continue; /* behind what it accepted, or gone: lost */
			}
			put_back(d, names[i]); /* checked again later, by its times */
			ret = -EIO;
		}
	}
	check_confirm(d, c, forget, nlost, &ret);
done:
	/* snap was the set before the swap; d->sent now holds what came
	 * since, and the cleared snap is the next spare */
	sent_clear(&snap);
	d->spare = snap;
	if (forget) {
		pthread_rwlock_unlock(&d->smu);
		if (ret)
			__atomic_store_n(&d->suspect, 1, __ATOMIC_RELAXED);
	}
	return ret;
}

/* One connection of a sync's FLUSHes: the files of its BATCH in flight. */
struct flush_conn {
	struct vg_rrdcd *c;
	size_t n; /* files in flight (their answer not read) */
	int sent; /* a BATCH is in flight (n may be 0) */
	const char *names[FLUSH_BATCH];
	int64_t want[FLUSH_BATCH];
	/* the entries' floor_ms: what calls proved the daemon took (the
	 * read-back's bar, see unwritten_check) */
	int64_t floor[FLUSH_BATCH];
	int err[FLUSH_BATCH];
};

/* check_sent without reading the last update back (see rcd_sync): the
 * files of snap (taken out of d->sent) FLUSHed in BATCHes
 * over c and the extra connections at once, each keeping one BATCH in
 * flight (vg_rrdcd_flush_many_send), its next one sent as soon as its
 * answer is read. Why several: rrdcached 1.7.2 serves a connection's
 * FLUSHes one after the other, each putting its file at the head of the
 * write queue and sleeping until a writer thread wrote it; with one
 * connection every file costs the daemon a hand-off between two sleeping
 * threads, with several the writer threads find the queue full and the
 * connection threads wake in parallel (docs/benchmarks.md).
 *
 * Why a FLUSH over an extra connection proves what one over c does. c
 * was verified (client_get) and made before the files were taken (see
 * rcd_sync); an extra connection was not verified: made after a restart
 * of the daemon, its FLUSHes would answer "nothing to flush" for values
 * the old daemon lost. So c answers a PING after every extra connection
 * was made and before anything is sent on them: at that moment the
 * daemon c reached was alive, so (one daemon listens on an address, as
 * everything else here assumes) each extra connection was made to that
 * same daemon, and any later restart breaks them as it breaks c. A
 * failed PING sends nothing on the extras (rcd_sync's client_put of the
 * broken c then closes them) and everything goes back to d->sent.
 *
 * What rrdcached 1.7.2 answers a FLUSH (handle_request_flush): "0
 * Successfully flushed" (the file was cached and its writer thread took
 * it), "0 Nothing to flush" (nothing cached, the file exists), "-1 No
 * such file" (nothing cached, no file: -ENOENT), or a refusal: "FILE:
 * Permission denied" (-B, or -P: -EACCES), "Cannot allocate memory",
 * "Usage: ..." and whatever else the client does not recognise
 * (-EREMOTEIO): a FLUSH that did not happen, so a refusal like the
 * others (until issue 14 it counted as done, and the journal segments
 * holding those values could be retired with nothing written).
 * A file the daemon wrote, had nothing pending for, or no longer has is
 * done; one it refused otherwise, or not reached because a connection
 * broke, goes back to d->sent (the caller closes a broken connection).
 * A refusal (the daemon answered, and said no for that file) starts or
 * lengthens d's refusal back-off (backoff_step; rcd_sync skips d's
 * FLUSHes until it has passed) and is counted per file; the first of an
 * episode is logged, with the daemon's answer (rcd_sync ends it).
 * 0, or -EIO when some file went back. */
/* A file deleted under the daemon (tried with rrdcached 1.7.2: UPDATE,
 * rm, FLUSH). While the daemon holds values for it, FLUSH answers
 * "Successfully flushed": its writer thread's rrd_update_r fails to open
 * the file, which only its log says (at NOTICE), and the values are gone;
 * its cache entry stays, so every later UPDATE of the file is accepted
 * and lost the same way, FLUSHed "successfully", for as long as values
 * keep coming (the entry leaves only after -f seconds with nothing
 * cached). Holding nothing for it, FLUSH answers "No such file". So a
 * file of ours (the daemon took values of ours: want > INT64_MIN) that a
 * FLUSH answers "No such file" for, or, where the collector sees the
 * daemons' -b directory ([storage] daemon_base), that is missing there
 * once FLUSHed and for the daemon too (its LAST cannot open it), is
 * gone with values counted acknowledged: counted
 * (vanished), logged, and FORGOTten on the daemon over C (idle: its
 * answer read), so that its next UPDATE is refused "No such file"
 * rather than taken and silently lost, and the store creates the file
 * again with it (update_refused: missing; store.c recreate). Not put back: the
 * values are not on the daemon any more, and keeping the journal for
 * them would keep every segment from then on. The store's own deletes
 * (rcd_remove, the lifecycle of ended series) take the file out of
 * d->sent first, under d->vmu, so they never count here. 1 if NAME was
 * found gone. */
static int vanished_check(struct daemon *d, struct vg_rrdcd *c, const char *name, int64_t want,
			  int err)
{
	char path[PATH_MAX * 2];
	struct stat st;
	int rc;

	if (want == INT64_MIN || (err && err != -ENOENT))
		return 0;
	if (!err) {
		if (!d->base || !d->base[0])
			return 0;
		snprintf(path, sizeof(path), "%s/%s", d->base, name);
		if (!stat(path, &st) || errno != ENOENT)
			return 0;
		/* the daemon's own view first (LAST opens the file): a
		 * daemon_base that is not this daemon's -b must not make
		 * its files FORGOTten, which would drop values sent since */
		int64_t last;
		if (vg_rrdcd_last(c, name, &last) != -ENOENT)
			return 0;
	}
	count(&d->vanished, 1);
	rc = vg_rrdcd_forget(c, name);
	vg_warn("storage: %s: %s: the file is gone from the daemon's disk while values "
		"of this collector's were accepted for it (deleted under the daemon?): "
		"those the daemon held are lost; %s (docs/operations.md \"A file "
		"deleted under the daemon\")",
		d->addr, name,
		rc && rc != -ENOENT ? "its FORGET failed, so later values may be accepted "
				      "and lost the same way"
				    : "its next value is refused \"No such file\" and the "
				      "store creates the file again");
	return 1;
}

/* Note NAME (borrowed: the taken set outlives the read-back) for the
 * read-back of this sync or check (d->vmu). 0, or -ENOMEM. */
static int rb_add(struct daemon *d, const char *name, int64_t want)
{
	if (d->nrb == d->rb_cap) {
		size_t cap = d->rb_cap ? d->rb_cap * 2 : 256;
		struct rb_item *rb = realloc(d->rb, cap * sizeof(*rb));
		if (!rb)
			return -ENOMEM;
		d->rb = rb;
		d->rb_cap = cap;
	}
	d->rb[d->nrb].name = name;
	d->rb[d->nrb].have = INT64_MIN;
	d->rb[d->nrb].journaled = 0;
	d->rb[d->nrb++].want = want;
	return 0;
}

/* behind_confirm's probe of the local read: NAME, read at HAVE here, is
 * at least there for the daemon (INFO on c). 1: trusted; 0: not for this
 * call (INFO could not tell), or, the daemon's file behind, never again
 * for this daemon (logged once). */
static int probe_here(struct daemon *d, struct vg_rrdcd *c, const char *name, int64_t have,
		      int sync)
{
	int64_t last_s = 0;
	int err = 0;

	if (sync)
		count(&d->rb_info, 1);
	if (!vg_rrdcd_connected(c) || vg_rrdcd_info_last_many(c, &name, 1, &last_s, &err) || err)
		return 0;
	if (last_s * 1000 + 999 >= have)
		return 1;
	__atomic_store_n(&d->rb_local_off, 1, __ATOMIC_RELAXED);
	vg_warn("storage: %s: %s is at %lld ms in [storage] daemon_base (%s) but at %lld s for "
		"the daemon: daemon_base is not this daemon's -b, so the read-back asks the "
		"daemon (INFO) for every file from now on (docs/operations.md \"A file the "
		"daemon cannot write\")",
		d->addr, name, (long long)have, d->base, (long long)last_s);
	return 0;
}

/* Where a file's last update is read from, for the checks that decide
 * whether the daemon wrote it (issue 14): the sync's read-back
 * (unwritten_check), a new connection's check (check_confirm) and the
 * start replay's reads (replay_read). Each file of b[0..n) is read until
 * it reaches want (RB_WRITTEN, have its last update read), or what it is
 * is known: RB_STILL (behind, its last update stayed where it was for
 * CONFIRM_STALL_MS: not written; have is the last read), RB_GONE (no such
 * file), RB_UNREAD (the connection broke or another error, or still
 * moving at CONFIRM_MAX_MS: a long write). The callers decide.
 *
 * From the file's header here when the collector sees the daemon's files
 * ([storage] daemon_base: one local daemon, or its -b mounted here;
 * vg_rrd_file_last_ms: one open and pread, no round trip), which only
 * ever passes a file at or past want: one behind, missing or unreadable
 * here is read by the daemon. Why: rrdcached 1.7.2's INFO costs the
 * daemon ~100 us per file (it opens, maps and formats the whole file) and
 * the client a wake-up per answer, as much CPU as the FLUSHed write it
 * checks (docs/benchmarks.md "The read-back from the daemon's disk"). It
 * reads what INFO would: INFO prints the very file's header last_up;
 * librrd sets it once a value's rows are in the mapped file, so a write
 * in flight shows the old time or one whose values are in the file, and a
 * stale view (a network file system's cache) is older, never newer. What
 * it must not trust: a daemon_base that is not this daemon's -b (a copy,
 * another daemon's) could hold a file ahead of the daemon's. So each call
 * one file passed here is also read by INFO (the probe): the daemon's
 * file must be at least as far. If it is not, the local read is turned
 * off for this daemon (logged once); if INFO could not tell, this call
 * reads every file by the daemon.
 *
 * From the daemon otherwise, 32 at a time on C: INFO alone for a file not
 * read yet (CF_FRESH: the sync's, just FLUSHed) or after a FORGET (no
 * CF_FLUSH: a FLUSH would write another collector's values taken since,
 * past ours, and hide ours as written), FLUSH and INFO for a re-read
 * with CF_FLUSH (vg_rrdcd_last_update_many: the FLUSH writes what the
 * daemon took for it since; counted in d->flushes_by[SITE]).
 *
 * Why a file found behind is read again. rrdcached 1.7.2 answers a FLUSH
 * "Successfully flushed" at once, without waiting, when a writer thread
 * already took the file's values for another FLUSH of it and is still
 * writing them (its flush_file waits only while values are cached):
 * another connection of this collector's (the receiver's proof FLUSH, an
 * API read), another collector, the daemon's -w timer. An INFO then reads
 * the file before that write lands: a false alarm, which counted the file
 * unwritten (or lost), degraded the daemon and sent its values again, to
 * be refused as already stored. A write in progress shows: librrd updates
 * the file's last update in place (mmap), value by value (tried with the
 * Debian daemon: 20,000 values in 19 archives written in 70 ms, the last
 * update seen from another connection moving 12 times meanwhile; a second
 * FLUSH answered in 51 us). A failed write never moves it. So a file
 * behind is read again at once and then after pauses doubling from
 * CONFIRM_PAUSE_MS to CONFIRM_PAUSE_MAX_MS. Left: a write that shows no
 * progress for CONFIRM_STALL_MS (its writer thread held that long before
 * the first value) is taken for still (sent again, nothing lost). Costs
 * nothing while every file reads written; a failed write makes its
 * caller wait CONFIRM_STALL_MS more, once for all its files. */
static void behind_confirm(struct daemon *d, struct vg_rrdcd *c, struct rb_item *b, size_t n,
			   int how, int site)
{
	char path[PATH_MAX * 2];
	const char *names[VG_RRDCD_LAST_MANY_MAX];
	int64_t last_s[VG_RRDCD_LAST_MANY_MAX];
	int err[VG_RRDCD_LAST_MANY_MAX];
	size_t idx[VG_RRDCD_LAST_MANY_MAX];
	int64_t start = vg_monotonic_ms(), pause = 0;
	size_t nopen = n;
	int here = d->base && d->base[0] && !__atomic_load_n(&d->rb_local_off, __ATOMIC_RELAXED);
	int probed = 0, sync = site == VG_STORE_FLUSH_SYNC;

	for (size_t i = 0; i < n; i++) {
		b[i].seen_ms = start;
		b[i].state = RB_OPEN;
	}
	while (nopen) {
		if (pause) {
			int64_t left = start + CONFIRM_MAX_MS - vg_monotonic_ms();
			if (left > 0)
				vg_sleep_ms(pause < left ? pause : left);
		}
		int flush = (how & CF_FLUSH) && (pause || !(how & CF_FRESH));
		int first = !pause;
		pause = pause ? (pause * 2 < CONFIRM_PAUSE_MAX_MS ? pause * 2 : CONFIRM_PAUSE_MAX_MS)
			      : CONFIRM_PAUSE_MS;
		for (size_t at = 0; at < n;) {
			size_t k = 0;
			int rc = -ENOTCONN;

			for (; at < n && k < VG_RRDCD_LAST_MANY_MAX; at++) {
				struct rb_item *it = &b[at];
				int64_t have;

				if (it->state != RB_OPEN)
					continue;
				if (here) {
					snprintf(path, sizeof(path), "%s/%s", d->base, it->name);
					if (!vg_rrd_file_last_ms(path, &have) && have >= it->want &&
					    (probed || (probed = 1, here = probe_here(d, c, it->name,
										      have, sync)))) {
						it->have = have;
						it->state = RB_WRITTEN;
						if (sync && first)
							count(&d->rb_local, 1);
						continue;
					}
				}
				idx[k] = at;
				names[k++] = it->name;
			}
			if (!k)
				break;
			if (sync && first)
				count(&d->rb_info, k);
			if (vg_rrdcd_connected(c) && flush) {
				count(&d->flushes_by[site], k);
				rc = vg_rrdcd_last_update_many(c, names, k, last_s, err);
			} else if (vg_rrdcd_connected(c)) {
				rc = vg_rrdcd_info_last_many(c, names, k, last_s, err);
			}
			int64_t now = vg_monotonic_ms();
			for (size_t i = 0; i < k; i++) {
				struct rb_item *it = &b[idx[i]];
				int64_t have = rc || err[i] ? INT64_MIN : last_s[i] * 1000 + 999;

				if (!rc && !err[i] && have >= it->want) {
					it->have = have;
					it->state = RB_WRITTEN; /* another's write ended */
				} else if (!rc && !err[i] && have > it->have) {
					it->have = have; /* a write goes on: wait */
					it->seen_ms = now;
				} else if (!rc && !err[i]) {
					if (now - it->seen_ms >= CONFIRM_STALL_MS)
						it->state = RB_STILL;
				} else if (!rc && err[i] == -ENOENT) {
					it->state = RB_GONE;
				} else {
					it->state = RB_UNREAD;
				}
			}
		}
		nopen = 0;
		int over = vg_monotonic_ms() - start >= CONFIRM_MAX_MS;
		for (size_t i = 0; i < n; i++) {
			if (b[i].state != RB_OPEN)
				continue;
			if (over)
				b[i].state = RB_UNREAD; /* still being written */
			else
				nopen++;
		}
	}
}

/* A file whose write failed in the daemon (issue 14). rrdcached 1.7.2
 * answers a FLUSH "Successfully flushed" once its writer thread took the
 * file, whether rrd_update_r then wrote it or not (tried with the Debian
 * daemon, running as root: an immutable file; the same for a read-only
 * one when it is not root, a full disk, an update older than the file's
 * last), and "Nothing to flush" when its own timer (-w) took it first,
 * the write failed or not; the values are gone from its cache either way,
 * and only its log says so. So the files of d->rb (their FLUSH passed:
 * not refused, not "No such file") are read back after the FLUSHes
 * (behind_confirm: from the file's header here, or INFO on c, which reads
 * the file), and a file whose last update is behind the newest
 * time the daemon is proven to have taken of ours for it (the entry's
 * floor_ms, set once a call's answer came: not its claim, t_ms, which a
 * send in flight on another thread raised before its values reached the
 * daemon, so a FLUSH may rightly not have written them yet; that send
 * claims the file again once answered, for the next sync) and still
 * behind once read again (another FLUSH's write of it may have been
 * going on) was not written: counted
 * (unwritten), logged once per file and episode, and marked lost
 * (mark_lost: the store re-sends what the file lacks from its journal,
 * which it keeps meanwhile, so the next sync FLUSHes them again); the
 * daemon's refusal episode starts (flush_sent: degraded in /v1/health,
 * the syncs back off). A file past ours is fine: another collector wrote
 * it since (one writer per series at a time, docs/scaling.md), and what
 * it lacks of ours is for the check after a failure to find. A file the
 * daemon finds missing is vanished_check's; one not read (the connection broke,
 * another error) goes back to d->sent and *ret is -EIO. Returns the files
 * found unwritten, the first of them described in why.
 *
 * INFO and not LAST, although LAST answers one line: rrdcached 1.7.2's
 * LAST answers the time of the newest UPDATE it took for the file while
 * it holds an entry for it, which it keeps after a failed write, and
 * reads the file only when it holds none (then rounded down to the step
 * too). Tried with the Debian daemon: after a FLUSH of a value 125 s past
 * the file's last one into an immutable file, LAST said that value's step
 * while INFO's last_update kept the old second, so LAST would pass every
 * unwritten file. */
static size_t unwritten_check(struct daemon *d, struct vg_rrdcd *c, int *ret, char *why,
			      size_t whylen)
{
	size_t n = d->nrb, nbehind = 0;

	behind_confirm(d, c, d->rb, n, CF_FLUSH | CF_FRESH, VG_STORE_FLUSH_SYNC);
	for (size_t i = 0; i < n; i++) {
		const struct rb_item *it = &d->rb[i];
		int logged;

		if (it->state == RB_WRITTEN)
			continue;
		if (it->state == RB_GONE && vanished_check(d, c, it->name, it->want, -ENOENT))
			continue;
		if (it->state != RB_STILL) {   /* not read, or still moving */
			put_back(d, it->name); /* read again next sync */
			*ret = -EIO;
			continue;
		}
		if (mark_lost(d, it->name, it->have, it->want, NULL)) {
			put_back(d, it->name); /* read again next sync */
			*ret = -EIO;
			continue;
		}
		*ret = -EIO;
		count(&d->unwritten, 1);
		if (!nbehind++)
			snprintf(why, whylen,
				 "%.200s: not written (its last update %lld s, "
				 "ours %lld ms)",
				 it->name, (long long)(it->have / 1000), (long long)it->want);
		pthread_mutex_lock(&d->mu);
		logged = vg_hmap_gets(&d->unwritten_logged, it->name) != NULL ||
			 vg_hmap_puts(&d->unwritten_logged, it->name, (void *)1);
		pthread_mutex_unlock(&d->mu);
		if (!logged)
			vg_error("storage: %s: %s: the daemon did not write this "
				 "collector's values up to %lld ms although its FLUSH "
				 "passed (the file's last update is %lld s: a read-only "
				 "or immutable file, a full disk? the daemon's log says "
				 "why): they stay in the journal and are sent again "
				 "(docs/operations.md \"A file the daemon cannot "
				 "write\")",
				 d->addr, it->name, (long long)it->want,
				 (long long)(it->have / 1000));
	}
	d->nrb = 0;
	return nbehind;
}

/* 1 when a file whose FLUSH answered ERR goes to the read-back and is
 * read here (behind_confirm): its vanished_check by the daemon_base is then
 * the read-back's (missing here, it goes to INFO, whose "No such file"
 * is vanished_check's), so the FLUSH's answer is not followed by a stat
 * of the same file. */
static int rb_reads_here(struct daemon *d, int verify, int64_t floor, int err)
{
	return verify && !err && floor != INT64_MIN && d->base && d->base[0] &&
	       !__atomic_load_n(&d->rb_local_off, __ATOMIC_RELAXED);
}

static int flush_sent(struct daemon *d, struct vg_rrdcd *c, struct vg_rrdcd **extra,
		      size_t nextra, const struct sent_set *snap)
{
	/* the connections' state, kept for the next sync (d->vmu is held:
	 * one sync or verification at a time per daemon) */
	struct flush_conn *fc = d->fc;
	const struct vg_hmap_entry *e;
	size_t pos = 0, nc = 1 + nextra, per, nrefused = 0, nunwritten;
	int ret = 0, stop = 0;
	/* [storage] verify_writes = no: no file is read back */
	int verify = __atomic_load_n(&d->verify_writes, __ATOMIC_RELAXED);
	char why[400] = "", unwritten[400] = "";

	if (!vg_hmap_count(&snap->map))
		return 0;
	d->nrb = 0;
	if (!fc && !(fc = d->fc = calloc(FLUSH_CONNS_MAX, sizeof(*fc)))) {
		stop = 1;
		nc = 0;
	}
	for (size_t k = 0; k < nc; k++) {
		fc[k].c = k ? extra[k - 1] : c;
		fc[k].n = 0;
		fc[k].sent = 0;
	}
	if (nextra && (!vg_rrdcd_connected(c) || vg_rrdcd_ping(c)))
		stop = 1;
	per = nc ? FLUSH_BATCH / nc : 1;
	for (int any = 1; any;) {
		any = 0;
		for (size_t k = 0; k < nc; k++) {
			struct flush_conn *f = &fc[k];
			if (f->sent) {
				int rc = vg_rrdcd_flush_many_recv(f->c, f->n, f->err, NULL);
				for (size_t i = 0; i < f->n; i++) {
					int refused = !rc && f->err[i] && f->err[i] != -ENOENT;
					if (refused && !nrefused++) {
						const char *m = vg_rrdcd_error(f->c);
						snprintf(why, sizeof(why), "%.200s: %.*s",
							 f->names[i], (int)strcspn(m, "\n"), m);
					}
					if (rc || refused) {
						put_back(d, f->names[i]);
						ret = -EIO;
					} else if (vg_rrdcd_connected(f->c) &&
						   (rb_reads_here(d, verify, f->floor[i], f->err[i]) ||
						    !vanished_check(d, f->c, f->names[i],
								    f->want[i], f->err[i])) &&
						   verify && !f->err[i] && f->floor[i] != INT64_MIN &&
						   rb_add(d, f->names[i], f->floor[i])) {
						put_back(d, f->names[i]); /* no memory */
						ret = -EIO;
					}
				}
				f->sent = 0;
				f->n = 0;
				if (rc)
					stop = 1; /* what is in flight is still read */
			}
			if (stop || !vg_rrdcd_connected(f->c))
				continue;
			while (f->n < per && (e = vg_hmap_next(&snap->map, &pos))) {
				const struct sent_entry *se = e->value;
				f->names[f->n] = e->key;
				f->floor[f->n] = se->floor_ms;
				f->want[f->n++] = se->t_ms;
			}
			if (!f->n)
				continue;
			if (!vg_rrdcd_flush_many_send(f->c, f->names, f->n)) {
				count(&d->flushes_by[VG_STORE_FLUSH_SYNC], f->n);
				f->sent = any = 1;
				continue;
			}
			for (size_t i = 0; i < f->n; i++)
				put_back(d, f->names[i]);
			f->n = 0;
			ret = -EIO;
			stop = 1;
		}
	}
	/* what was never sent (a failure, or no memory) goes back */
	while ((e = vg_hmap_next(&snap->map, &pos))) {
		put_back(d, e->key);
		ret = -EIO;
	}
	/* what the FLUSHes passed for is read back (c broken: all back) */
	nunwritten = unwritten_check(d, c, &ret, unwritten, sizeof(unwritten));
	if (nunwritten && !nrefused) {
		backoff_step(&d->refused_backoff_ms, &d->refused_until_ms);
		pthread_mutex_lock(&d->mu);
		snprintf(d->err, sizeof(d->err), "%.60s: did not write %zu file(s): %.380s",
			 d->addr, nunwritten, unwritten);
		snprintf(d->refusal, sizeof(d->refusal), "%s", unwritten);
		pthread_mutex_unlock(&d->mu);
	}
	if (nrefused) {
		uint32_t was = d->refused_backoff_ms;
		count(&d->flush_refused, nrefused);
		backoff_step(&d->refused_backoff_ms, &d->refused_until_ms);
		pthread_mutex_lock(&d->mu);
		snprintf(d->err, sizeof(d->err), "%.60s: refused FLUSH of %zu file(s): %.380s",
			 d->addr, nrefused, why);
		snprintf(d->refusal, sizeof(d->refusal), "%s", why);
		pthread_mutex_unlock(&d->mu);
		if (!was)
			vg_error("storage: %s: refused to FLUSH %zu file(s) (%s): their values "
				 "stay in the journal and the sync is tried again after a "
				 "back-off of up to %d ms (docs/operations.md \"A daemon that "
				 "refuses a FLUSH\")",
				 d->addr, nrefused, why, BACKOFF_MAX_MS);
	}
	return ret;
}

/* While d is suspect, close its idle clients (the caller holds d->mu; at
 * most POOL_MAX + FLUSH_CONNS_MAX of them go into OUT, closed by the
 * caller after the lock): each was checked before d became suspect, and
 * the check the suspicion asks for runs only on a new connection
 * (client_get_cut). The start replay marks its daemons suspect
 * (rcd_replay_note) without a failure, so a client made before it (the
 * store's warm, an open) stayed in the pool, and the replay read its
 * files on it, FLUSH then INFO, without the check: a file the daemon's -j
 * replay left holding minute 6 without 5 had 6 written over the gap and
 * 5 skipped as stored, lost for good. The number put into OUT. */
static size_t pool_take_if_suspect(struct daemon *d, struct vg_rrdcd **out)
{
	size_t n = 0;

	if (!__atomic_load_n(&d->suspect, __ATOMIC_RELAXED))
		return 0;
	while (d->nidle)
		out[n++] = d->idle[--d->nidle];
	while (d->nfidle)
		out[n++] = d->fidle[--d->nfidle];
	return n;
}

static void pool_close(struct vg_rrdcd **c, size_t n)
{
	for (size_t k = 0; k < n; k++)
		vg_rrdcd_close(c[k]);
}

/* The last idle client of d, or NULL (always while d is suspect). */
static struct vg_rrdcd *idle_pop(struct daemon *d)
{
	struct vg_rrdcd *c = NULL, *drop[POOL_MAX + FLUSH_CONNS_MAX];
	size_t ndrop;

	pthread_mutex_lock(&d->mu);
	ndrop = pool_take_if_suspect(d, drop);
	if (d->nidle)
		c = d->idle[--d->nidle];
	pthread_mutex_unlock(&d->mu);
	pool_close(drop, ndrop);
	return c;
}

static struct vg_rrdcd *client_get_bounded(struct daemon *d, int *rc, int io_ms);
static struct vg_rrdcd *client_get_cut(struct daemon *d, int *rc, int io_ms, int *cut);

static struct vg_rrdcd *client_get(struct daemon *d, int *rc)
{
	return client_get_bounded(d, rc, IO_TIMEOUT_MS);
}

/* client_get waiting at most io_ms per read or write on a new connection
 * (its PING: at most PROBE_MS); an idle client is returned as it is. With
 * io_ms below IO_TIMEOUT_MS (the receiver) a verification or sync running
 * on another connection is waited for at most io_ms, then it answers NULL
 * (-EHOSTUNREACH). */
static struct vg_rrdcd *client_get_bounded(struct daemon *d, int *rc, int io_ms)
{
	return client_get_cut(d, rc, io_ms, NULL);
}

/* client_get_bounded, setting *cut (when not NULL) to 1 when the new
 * connection's check reached its bound (check_max) and NULL is returned
 * for it: the daemon answers, the files left wait for a later connection
 * (for replay_last_ms, which says so rather than "does not answer"). */
static struct vg_rrdcd *client_get_cut(struct daemon *d, int *rc, int io_ms, int *cut)
{
	struct vg_rrdcd *c = idle_pop(d);

	if (c)
		return c;
	if (vg_monotonic_ms() < __atomic_load_n(&d->down_until_ms, __ATOMIC_RELAXED)) {
		*rc = -EHOSTUNREACH; /* failed a moment ago: wait (see backoff) */
		return NULL;
	}
	/* A PING with a short timeout first: a stalled daemon that still
	 * takes connections is found in PROBE_MS, not IO_TIMEOUT_MS. */
	if ((*rc = vg_rrdcd_connect(d->addr, io_ms < PROBE_MS ? io_ms : PROBE_MS, &c)) == 0 &&
	    ((*rc = vg_rrdcd_ping(c)) || (*rc = vg_rrdcd_set_timeout(c, io_ms)))) {
		client_broken(d, c);
		return NULL;
	}
	if (*rc < 0) {
		backoff(d);
		__atomic_store_n(&d->up, 0, __ATOMIC_RELAXED);
		count(&d->errors, 1);
		pthread_mutex_lock(&d->mu);
		snprintf(d->err, sizeof(d->err), "%.200s: cannot connect: %.200s", d->addr,
			 strerror(-*rc));
		pthread_mutex_unlock(&d->mu);
		return NULL;
	}
	/* A new connection may reach a daemon that restarted and lost what
	 * it had accepted and not yet written: before anything newer is sent
	 * on it (which would make the loss final and invisible), check every
	 * file sent to and not yet verified on this daemon. The receiver
	 * (a bound below IO_TIMEOUT_MS) waits for another thread's
	 * verification or sync (which may wait IO_TIMEOUT_MS per file) at
	 * most its bound, then leaves the batch's values to the storage
	 * thread (or answers a new series' batch RETRY). Not at once: the
	 * storage thread's sync after each written-through batch holds the
	 * lock while it FLUSHes, with the receiver's idle client taken, so
	 * giving up at once deferred whole batches of a healthy daemon. */
	if (io_ms < IO_TIMEOUT_MS) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += io_ms / 1000;
		until.tv_nsec += (long)(io_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if (pthread_mutex_timedlock(&d->vmu, &until)) {
			vg_rrdcd_close(c);
			*rc = -EHOSTUNREACH;
			return NULL;
		}
	} else {
		pthread_mutex_lock(&d->vmu);
	}
	*rc = check_sent(d, c, NULL, 0, NULL, 1);
	pthread_mutex_unlock(&d->vmu);
	if (*rc == -ETIMEDOUT) {
		/* The check's bound passed, the daemon answering: its files
		 * not checked yet went back, and no call fails for it (no
		 * back-off, no error counted). The caller's values wait; the
		 * next connection goes on with the check (FORGETs still, if
		 * this one did: check_sent left the daemon suspect). */
		vg_rrdcd_close(c);
		*rc = -EHOSTUNREACH;
		if (cut)
			*cut = 1;
		return NULL;
	}
	if (*rc) {
		client_broken(d, c);
		return NULL;
	}
	return c;
}

/* For the receiver's write-through (vg_rrd_item.no_connect): an idle
 * client of d, already verified; or a new one only while d is up (its
 * last call succeeded and none failed since: what a new connection
 * verifies then is what was sent since the last sync, which a sync in
 * flight has taken); NULL when d failed and has not answered a call
 * since (down, restarting, stalled: the storage thread reconnects and
 * verifies).
 *
 * Every wait on the client it returns is bounded by io_ms (the backend's
 * wt_timeout_ms, a fraction of the agents' ack timeout) until client_put
 * gives it back: a daemon that stalls (SIGSTOP, a hung disk) behind a
 * connection the receiver holds costs the batch io_ms once, not
 * IO_TIMEOUT_MS. The connection is then closed (client_broken: no new
 * attempt before the back-off, and d is down for the receiver until the
 * storage thread reaches it again); the values not written stay in the
 * store's cache and journal and the storage thread writes them, in order.
 * What the stalled daemon takes later from the closed connection's
 * socket is found as already stored when they are sent again
 * (update_refused), never written twice. */
static struct vg_rrdcd *client_idle(struct daemon *d, int *rc, int io_ms)
{
	struct vg_rrdcd *c = idle_pop(d);

	if (c)
		(void)vg_rrdcd_set_timeout(c, io_ms);
	else if (__atomic_load_n(&d->up, __ATOMIC_RELAXED) &&
		 !__atomic_load_n(&d->suspect, __ATOMIC_RELAXED))
		c = client_get_bounded(d, rc, io_ms); /* not the FORGET check */
	return c;
}

/* For the receiver's open of a new series (VG_RRD_RECEIVER: its last
 * update read, or its create): an idle client of d, or a new one (made
 * and verified as client_get does, waiting for another thread's
 * verification), every wait on it bounded by io_ms until client_put gives
 * it back. Unlike client_idle it connects to a daemon that failed: the
 * open needs an answer now, and a daemon with nothing sent to it since
 * its last sync has no other thread to reach it again. NULL
 * (-EHOSTUNREACH for the caller) when d cannot be reached in time. */
static struct vg_rrdcd *client_bounded(struct daemon *d, int *rc, int io_ms)
{
	struct vg_rrdcd *c = idle_pop(d);

	if (c) {
		(void)vg_rrdcd_set_timeout(c, io_ms);
		return c;
	}
	return client_get_bounded(d, rc, io_ms);
}

/* The receiver's bound on one wait of an open: wt_timeout_ms, or the
 * time left before its batch's deadline when shorter (at least 1 ms:
 * the store looks at the deadline before each open). */
static int rx_io_ms(const struct rcd *r)
{
	int64_t now = vg_monotonic_ms();
	int64_t left = vg_phase_end(now, r->wt_timeout_ms, r->rx_deadline_ms, NULL) - now;

	return left < 1 ? 1 : (int)left;
}

/* Give the client back after a call that returned rc. */
static void client_put(struct daemon *d, struct vg_rrdcd *c, int rc)
{
	count(&d->calls, 1);
	if (!vg_rrdcd_connected(c)) {
		client_broken(d, c);
		return;
	}
	(void)rc;
	(void)vg_rrdcd_set_timeout(c, IO_TIMEOUT_MS); /* a receiver's bound ends */
	__atomic_store_n(&d->up, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&d->backoff_ms, 0, __ATOMIC_RELAXED);
	pthread_mutex_lock(&d->mu);
	if (d->nidle < POOL_MAX) {
		d->idle[d->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&d->mu);
	vg_rrdcd_close(c);
}

/* Note that the daemon holds values of NAME up to t_ms, as far as we know:
 * written by a call (claim_written), or put back by a check or a sync
 * that could not prove them on disk. No failed update takes it back. */
static int64_t mark_sent(struct daemon *d, const char *name, int64_t t_ms)
{
	int64_t old;

	pthread_mutex_lock(&d->mu);
	old = sent_note(&d->sent, name, t_ms, t_ms, INT64_MIN, 1);
	pthread_mutex_unlock(&d->mu);
	return old;
}

/* A file a check or sync took out of d->sent and could not prove durable
 * goes back, KEY being its entry's name (a key of that taken set): as
 * mark_sent, keeping the entry's first_ms and arrived_ms (with the time
 * alone its first_ms would become its newest time, and a later check
 * would take our own older values the daemon holds for another
 * collector's: FLUSHed, not FORGOTten, so a value the daemon's replay
 * skipped would go unfound), and whether the start replay named it. */
static void put_back(struct daemon *d, const char *key)
{
	const struct sent_entry *e =
		(const struct sent_entry *)(key - offsetof(struct sent_entry, name));
	struct sent_entry *now;

	pthread_mutex_lock(&d->mu);
	sent_note(&d->sent, key, e->first_ms, e->t_ms, e->arrived_ms, 1);
	if (e->journaled && (now = sent_get(&d->sent, key)))
		now->journaled = 1;
	pthread_mutex_unlock(&d->mu);
}

/* Claim NAME from first_ms up to t_ms before an update is sent (the
 * oldest and newest times of the call), so a verification that runs
 * meanwhile checks it; taken back by unmark_sent if not all of it was
 * written (first_ms is not: too low would let a check take another
 * collector's cached values for ours, see overtaken_check; a first_ms
 * of a call that wrote nothing only marks values no other collector
 * sent, since each batch is acknowledged once). Returns the time noted
 * before (INT64_MIN: none). */
static int64_t claim_sent(struct daemon *d, const struct vg_rrd_loc *loc, int64_t first_ms,
			  int64_t t_ms)
{
	int64_t old;

	pthread_mutex_lock(&d->mu);
	old = sent_note(&d->sent, loc->path, first_ms, t_ms, loc->arrived_ms, 0);
	pthread_mutex_unlock(&d->mu);
	return old;
}

/* Set NAME's newest accepted time back to t_ms (a call of which not every
 * value was written: the claim made before it was too high), never below
 * the entry's floor. Why the floor: between this call's claim and now, a
 * sync that had taken NAME out of d->sent before the claim (so the claim
 * made a new entry, t_ms here INT64_MIN) may have failed and put NAME's
 * older, accepted time back; that time is below the claim, so it left no
 * trace in t_ms, and lowering to t_ms alone would drop it: the next check
 * then finds nothing to verify, the values the daemon lost are never
 * found lost, and a newer value makes them final (seen in
 * shared_daemon_fault_test: a daemon killed during a sync and a
 * write-through, one series missing two polls). */
static void unmark_sent(struct daemon *d, const char *name, int64_t t_ms)
{
	struct sent_entry *e;

	pthread_mutex_lock(&d->mu);
	if ((e = sent_get(&d->sent, name)) && t_ms < e->t_ms)
		e->t_ms = t_ms > e->floor_ms ? t_ms : e->floor_ms;
	pthread_mutex_unlock(&d->mu);
}

/* After a call that wrote values of NAME up to wmax (INT64_MIN: none),
 * claim them again. The claim made before sending may have been taken
 * meanwhile by a sync on another connection (check_sent empties d->sent
 * when it starts): that sync's FLUSH could reach the daemon before these
 * values did, find nothing pending, and count the file as durable. Without
 * a claim left after the send, no later sync would FLUSH the file, and the
 * store would retire the journal segments of values that are only in the
 * daemon's memory (seen in tests/cluster: a flush group's 256 series
 * without their last poll in the files, the daemon's -j journal holding
 * the UPDATE and no write after it). */
static void claim_written(struct daemon *d, const char *name, int64_t wmax)
{
	if (wmax != INT64_MIN)
		mark_sent(d, name, wmax);
}

static int is_lost(struct daemon *d, const char *name)
{
	int lost;

	if (!__atomic_load_n(&d->nlost, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&d->mu);
	lost = vg_hmap_gets(&d->lost, name) != NULL;
	pthread_mutex_unlock(&d->mu);
	return lost;
}

static void free_values(struct vg_hmap *m)
{
	size_t pos = 0;
	const struct vg_hmap_entry *e;

	while ((e = vg_hmap_next(m, &pos)))
		free(e->value);
	vg_hmap_release(m);
}

/* ---- placement ---------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* The rendezvous owner of NAME among ADDRS[0..n). */
size_t vg_rrd_rendezvous(const char *name, const char *const *addrs, size_t n)
{
	uint64_t hn = vg_fnv1a(0xcbf29ce484222325ULL, name), best = 0;
	size_t owner = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t w = mix64(hn ^ mix64(vg_fnv1a(0xcbf29ce484222325ULL, addrs[i])));
		if (i == 0 || w > best) {
			best = w;
			owner = i;
		}
	}
	return owner;
}

static size_t place(struct rcd *r, const char *name)
{
	const char *addrs[64] = {NULL};
	size_t n = r->nd < 64 ? r->nd : 64;

	for (size_t i = 0; i < n; i++)
		addrs[i] = r->d[i].addr;
	return vg_rrd_rendezvous(name, addrs, n);
}

/* A name's path component for the daemon: vigie/name.h's escaping, with
 * a trailing '.' also escaped, since rrdcached refuses any name holding
 * "../" (a component ending in ".." before the next '/'). Injective: a
 * literal "%2E" never survives the escaping ('%' becomes "%25"). */
static int component(const char *name, char *out, size_t outlen)
{
	int n = vg_name_component(name, out, outlen);

	if (n < 0)
		return n;
	if (n > 0 && out[n - 1] == '.') {
		if ((size_t)n + 3 > outlen || n + 2 > NAME_MAX - 16)
			return -ENAMETOOLONG;
		memcpy(out + n - 1, "%2E", 4);
		n += 2;
	}
	return n;
}

static size_t addr_index(struct rcd *r, const char *addr)
{
	size_t idx;

	for (idx = 0; idx < r->nd && strcmp(r->d[idx].addr, addr); idx++)
		;
	return idx < r->nd ? idx : SIZE_MAX;
}

static void owner_note(struct rcd *r, const char *name, const char *addr);

/* The unlisted slot a map value names, or -1 (a configured daemon, or an
 * unlisted address beyond the table, or no value). */
static int unlisted_slot(const void *v)
{
	uintptr_t u = (uintptr_t)v;

	return u >= UNLISTED_TAG && u < UNLISTED_TAG + UNLISTED_MAX ? (int)(u - UNLISTED_TAG) : -1;
}

/* Put NAME -> ADDR in the owners map, counting the series recorded on
 * unlisted addresses. r->mu held (or the backend not yet shared). 0 or
 * -ENOMEM. */
static int owner_put(struct rcd *r, const char *name, const char *addr)
{
	size_t idx = addr_index(r, addr);
	void *nv, *old = NULL;
	int k, rc;

	if (idx < r->nd) {
		nv = (void *)(uintptr_t)(idx + 1);
	} else {
		size_t j;
		for (j = 0; j < r->nunlisted && strcmp(r->unlisted[j].addr, addr); j++)
			;
		if (j == r->nunlisted && j < UNLISTED_MAX &&
		    strlen(addr) < sizeof(r->unlisted[0].addr)) {
			snprintf(r->unlisted[j].addr, sizeof(r->unlisted[j].addr), "%s", addr);
			r->unlisted[j].series = 0;
			r->nunlisted++;
		}
		nv = j < r->nunlisted ? (void *)(uintptr_t)(UNLISTED_TAG + j) : (void *)(uintptr_t)-1;
	}
	if ((rc = vg_hmap_put(&r->owners, name, strlen(name), nv, &old)))
		return rc;
	if ((k = unlisted_slot(old)) >= 0)
		r->unlisted[k].series--;
	if ((k = unlisted_slot(nv)) >= 0)
		r->unlisted[k].series++;
	return 0;
}

/* Forget NAME in the owners map (r->mu held). */
static void owner_del(struct rcd *r, const char *name)
{
	int k = unlisted_slot(vg_hmap_dels(&r->owners, name));

	if (k >= 0)
		r->unlisted[k].series--;
}

/* The map's answer for a name the shared record was asked about and could
 * not answer (the database unreachable): not placed, never guessed. */
#define UNPLACED ((void *)(uintptr_t)-2)

/* NAME is not in the map: ask the shared record (one round trip), and
 * keep the answer in the map and the owners file. The map's value, NULL
 * (no record: a new series, placed by rendezvous at its create), or
 * UNPLACED. */
static void *shared_lookup(struct rcd *r, const char *name)
{
	char addr[256];
	void *v;
	int rc = vg_placement_lookup(r->shared, name, addr, sizeof(addr));

	if (rc < 0)
		return UNPLACED;
	if (rc == 0)
		return NULL;
	owner_note(r, name, addr);
	pthread_mutex_lock(&r->mu);
	v = vg_hmap_gets(&r->owners, name);
	pthread_mutex_unlock(&r->mu);
	return v ? v : UNPLACED;
}

/* The series' name for the daemons, into out. 0, -EINVAL, -ENAMETOOLONG. */
static int series_name(int rtype, const char *id, const char *metric, char *out, size_t outlen)
{
	const char *tname = vg_rtype_name(rtype);
	char eid[ESC_MAX], em[ESC_MAX];
	int rc;

	out[0] = '\0';
	if (!tname)
		return -EINVAL;
	if ((rc = component(id, eid, sizeof(eid))) < 0 ||
	    (rc = component(metric, em, sizeof(em))) < 0)
		return rc;
	if ((size_t)snprintf(out, outlen, "%s/%s/%s.rrd", tname, eid, em) >= VG_RRDCD_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

static int rcd_locate(struct vg_rrd_backend *be, int rtype, const char *id,
		      const char *metric, struct vg_rrd_loc *loc)
{
	struct rcd *r = (struct rcd *)be;
	void *v;
	int rc;

	loc->owner = 0;
	loc->address = NULL;
	loc->recorded = NULL;
	loc->arrived_ms = INT64_MIN;
	loc->flush_first = 0;
	if ((rc = series_name(rtype, id, metric, loc->path, sizeof(loc->path))))
		return rc;
	pthread_mutex_lock(&r->mu);
	v = vg_hmap_gets(&r->owners, loc->path);
	pthread_mutex_unlock(&r->mu);
	if (!v && r->shared)
		v = shared_lookup(r, loc->path);
	if (unlisted_slot(v) >= 0) {
		/* recorded on a daemon no longer in [storage] daemons: say
		 * which (its slot's address never changes) */
		loc->owner = UINT32_MAX;
		loc->recorded = r->unlisted[unlisted_slot(v)].addr;
	} else if (v == (void *)(uintptr_t)-1 || v == UNPLACED)
		loc->owner = UINT32_MAX; /* recorded on a daemon not configured,
					  * or the shared record unreachable */
	else
		loc->owner = v ? (uint32_t)((uintptr_t)v - 1) : (uint32_t)place(r, loc->path);
	loc->address = loc->owner < r->nd ? r->d[loc->owner].addr : NULL;
	return 0;
}

static void prefetch_note(void *ctx, const char *name, const char *recorded)
{
	owner_note(ctx, name, recorded);
}

/* The receiver is about to open these series: with the shared record,
 * claim every one not in the map for its rendezvous daemon and note the
 * winners, in two round trips and one commit per few hundred names
 * (collector/placement.c), so the locate and create that follow find
 * them in the map. The database down: nothing noted, each series then
 * waits as usual. */
static void rcd_prefetch(struct vg_rrd_backend *be, const struct vg_rrd_key *keys, size_t n)
{
	struct rcd *r = (struct rcd *)be;
	const char **names, **addrs;
	char path[PATH_MAX];
	size_t m = 0;

	if (!r->shared || !n)
		return;
	names = calloc(n, sizeof(*names));
	addrs = calloc(n, sizeof(*addrs));
	for (size_t i = 0; names && addrs && i < n; i++) {
		void *v;
		if (series_name(keys[i].rtype, keys[i].id, keys[i].metric, path, sizeof(path)))
			continue;
		pthread_mutex_lock(&r->mu);
		v = vg_hmap_gets(&r->owners, path);
		pthread_mutex_unlock(&r->mu);
		if (v || !(names[m] = strdup(path)))
			continue;
		addrs[m++] = r->d[place(r, path)].addr;
	}
	if (m)
		(void)vg_placement_claim_many(r->shared, names, addrs, m, prefetch_note, r);
	for (size_t i = 0; names && i < m; i++)
		free((char *)names[i]);
	free(names);
	free(addrs);
}

static struct daemon *owner_of(struct rcd *r, const struct vg_rrd_loc *loc)
{
	return loc->owner < r->nd ? &r->d[loc->owner] : NULL;
}

/* Record NAME on daemon IDX (create). Appended now, made durable by sync. */
static void owner_record(struct rcd *r, const char *name, size_t idx)
{
	owner_note(r, name, r->d[idx].addr);
}

/* Record NAME on ADDR (a configured daemon or not) in the map and the
 * owners file; ADDR "-" forgets it (a deleted series). */
static void owner_note(struct rcd *r, const char *name, const char *addr)
{
	char line[VG_RRDCD_NAME_MAX + 300];
	int n = snprintf(line, sizeof(line), "%s %s\n", addr, name);

	pthread_mutex_lock(&r->mu);
	if (!strcmp(addr, "-"))
		owner_del(r, name);
	else
		(void)owner_put(r, name, addr);
	if (r->owners_fd >= 0 && n > 0 && (size_t)n < sizeof(line) &&
	    write(r->owners_fd, line, (size_t)n) == n)
		r->owners_dirty = 1;
	pthread_mutex_unlock(&r->mu);
}

/* ---- operations --------------------------------------------------------------- */

/* A refusal of a create for want of directories (d->nodir) ages out
 * after this: a series that still waits is tried again each second by
 * the storage thread, a new one each time its agent re-sends the batch;
 * one no longer tried (its agent gone, the series removed) stops holding
 * the cause once another create succeeds. */
#define NODIR_STALE_MS (120 * 1000)

/* The clock of the expiry (a test moves it: backend.h). */
static int64_t nodir_now(void)
{
	int64_t now = vg_monotonic_ms();

	return vg_rrd_rrdcached_test_nodir_now ? vg_rrd_rrdcached_test_nodir_now(now) : now;
}

/* path's create refused for want of directories, now. d->mu held. A
 * failed allocation only leaves it out of the set. */
static void nodir_note(struct daemon *d, const char *path)
{
	int64_t *t = vg_hmap_gets(&d->nodir, path);

	if (!t && (t = malloc(sizeof(*t))) && vg_hmap_puts(&d->nodir, path, t)) {
		free(t);
		return;
	}
	if (t)
		*t = nodir_now();
}

/* path's create succeeded: 1 when no other file refused so within
 * NODIR_STALE_MS still waits (the set then emptied), so the cause can be
 * cleared; 0 while one does. d->mu held. */
static int nodir_done(struct daemon *d, const char *path)
{
	const struct vg_hmap_entry *e;
	int64_t now = nodir_now();
	size_t pos = 0;

	free(vg_hmap_dels(&d->nodir, path));
	while ((e = vg_hmap_next(&d->nodir, &pos)))
		if (now - *(const int64_t *)e->value < NODIR_STALE_MS)
			return 0;
	free_values(&d->nodir);
	return 1;
}

/* Whether PATH (under the daemon's -b, a file the daemon answers "No such
 * file" for) is out of reach on the daemon's disk rather than deleted: 0
 * if its directory is there, or if only the series' own directory is
 * missing while its type directory (the first component) is there (an
 * operator's rm -r of one resource: the file is created again, so that
 * one deleted resource cannot hold every series' values back); -ENOENT
 * if its type directory is missing (a volume not mounted under -b, a type
 * directory renamed away); another negative errno if the daemon cannot
 * tell (a LIST refused: -EACCES for a socket whose -P does not permit it,
 * or failed; the connection broken if !vg_rrdcd_connected). */
static int dir_check(struct vg_rrdcd *c, const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	int rc;

	if (!slash || slash == path)
		return 0;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if ((rc = vg_rrdcd_dir(c, dir)) != -ENOENT)
		return rc;
	char *up = strrchr(dir, '/');
	if (!up || up == dir)
		return rc; /* the type directory itself is missing */
	*up = '\0';
	return vg_rrdcd_dir(c, dir); /* 0: there, the series' directory deleted */
}

static int map_err(int rc)
{
	switch (rc) {
	case -ENOENT:
		return -ENOENT;
	case -ENOSPC:
		return -EAGAIN;
	default:
		return -EIO;
	}
}

static int rcd_create(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc, int kind,
		      int64_t t_ms, const struct vg_rrd_layout *lay, char *msg, size_t msglen,
		      int flags)
{
	struct rcd *r = (struct rcd *)be;
	struct daemon *d = owner_of(r, loc);
	char ds[64], rra[3 * VG_MAX_ARCHIVES][64];
	const char *defs[1 + 3 * VG_MAX_ARCHIVES];
	static const char *cfs[] = {"AVERAGE", "MIN", "MAX"};
	size_t ndefs = 0;
	struct vg_rrdcd *c;
	int rc = 0;

	if (!d) {
		snprintf(msg, msglen, "%s: its storage daemon is not configured", loc->path);
		return -EIO;
	}
	if (lay->narchives > VG_MAX_ARCHIVES || !lay->step_s)
		return -EINVAL;
	pthread_mutex_lock(&r->mu);
	void *known = vg_hmap_gets(&r->owners, loc->path);
	pthread_mutex_unlock(&r->mu);
	if (r->shared && !(known && (uintptr_t)known <= r->nd && loc->owner < r->nd)) {
		/* The shared record first: the first claim wins, and the file
		 * goes to the winner's daemon (see collector/placement.c). A
		 * name in the map is recorded there already (looked up,
		 * claimed by rcd_prefetch, or uploaded at start). */
		char win[256];
		size_t w;
		if (vg_placement_claim(r->shared, loc->path, d->addr, win, sizeof(win))) {
			snprintf(msg, msglen,
				 "%s: the state database does not answer: a new series is not "
				 "placed by guess (its values wait)",
				 loc->path);
			return -EAGAIN;
		}
		if ((w = addr_index(r, win)) == SIZE_MAX) {
			owner_note(r, loc->path, win);
			snprintf(msg, msglen,
				 "%s: recorded on %.200s, which is not in [storage] daemons here",
				 loc->path, win);
			return -EAGAIN;
		}
		d = &r->d[w];
	}
	snprintf(ds, sizeof(ds), "DS:value:%s:%u:%s:U",
		 kind == VG_KIND_COUNTER ? "DDERIVE" : "GAUGE", lay->heartbeat_s,
		 kind == VG_KIND_COUNTER ? "0" : "U");
	defs[ndefs++] = ds;
	for (size_t i = 0; i < lay->narchives; i++) {
		uint32_t pdp = lay->archives[i].resolution_s / lay->step_s;
		uint32_t rows = lay->archives[i].retention_s / lay->archives[i].resolution_s;
		for (int k = 0; k < 3; k++) {
			snprintf(rra[ndefs - 1], sizeof(rra[0]), "RRA:%s:0.5:%u:%u", cfs[k],
				 pdp, rows ? rows : 1);
			defs[ndefs] = rra[ndefs - 1];
			ndefs++;
		}
	}
	c = flags & VG_RRD_RECEIVER ? client_bounded(d, &rc, rx_io_ms(r))
				    : client_get(d, &rc);
	if (!c) {
		pthread_mutex_lock(&d->mu);
		snprintf(msg, msglen, "%s: %s", loc->path, d->err);
		pthread_mutex_unlock(&d->mu);
		return -EHOSTUNREACH; /* nothing sent: the create waits */
	}
	if (flags & VG_RRD_KNOWN) {
		/* not a new series (backend.h): its type directory missing
		 * on the daemon's disk, or a LIST that cannot tell, means out of
		 * reach, and the create (-R makes the directories) would
		 * shadow the real file once it is back */
		int drc = dir_check(c, loc->path);
		if (drc) {
			const char *e = vg_rrdcd_error(c);
			int broke = !vg_rrdcd_connected(c);
			snprintf(msg, msglen, "%s on %s: %s (%.*s)", loc->path, d->addr,
				 drc == -ENOENT ? "its type directory is missing"
						: "the LIST of its directory failed",
				 (int)strcspn(e, "\n"), e);
			client_put(d, c, drc);
			return broke ? -EHOSTUNREACH : -ENOTDIR;
		}
	}
	/* -O: never over an existing file (a series created meanwhile, or a
	 * name the daemon already holds, or this very create sent before on
	 * a connection that timed out: see below). */
	if (vg_rrd_rrdcached_test_before_create)
		vg_rrd_rrdcached_test_before_create(loc->path);
	rc = vg_rrdcd_create(c, loc->path, lay->step_s, t_ms / 1000 - 1, defs, ndefs, 1);
	/* A daemon without -R answers "No permission to recursively
	 * create: DIR" for a series in a directory it has not got, and a
	 * daemon whose base lost the directory "No such file or directory":
	 * no create of a new series' directory can succeed there. Not a
	 * file's failure (-EIO: the batch acknowledged, its values kept in
	 * the journal and never written): the daemon's, so the batch waits
	 * (RETRY) as for a daemon down, and the daemon's state says why. */
	int nodirs = rc == -ENOENT ||
		     (rc == -EACCES && strstr(vg_rrdcd_error(c), "recursively"));
	if (nodirs) {
		const char *e = vg_rrdcd_error(c);
		int first;
		snprintf(msg, msglen,
			 "%s on %s: " VG_STORE_CAUSE_NO_DIRS " (it answered: %.*s)",
			 loc->path, d->addr, (int)strcspn(e, "\n"), e);
		count(&d->create_errors, 1);
		pthread_mutex_lock(&d->mu);
		nodir_note(d, loc->path);
		first = !d->create_err[0];
		snprintf(d->create_err, sizeof(d->create_err),
			 "%.200s: " VG_STORE_CAUSE_NO_DIRS " (the values of new series, and of files deleted with their directory, wait)",
			 d->addr);
		pthread_mutex_unlock(&d->mu);
		if (first) /* the receiver's batch, or the journal's replay */
			vg_error("storage: %s: cannot create %s: " VG_STORE_CAUSE_NO_DIRS "; %s (%.*s)",
				 d->addr, loc->path,
				 (flags & VG_RRD_RECEIVER)
					 ? "batches with a new series answer RETRY until then"
					 : "the values wait in the journal",
				 (int)strcspn(e, "\n"), e);
	} else if (rc && rc != -EEXIST)
		snprintf(msg, msglen, "%s on %s: %s", loc->path, d->addr, vg_rrdcd_error(c));
	int broke = rc && !vg_rrdcd_connected(c);
	client_put(d, c, rc);
	if (nodirs && !broke)
		return -EAGAIN;
	if (rc == -EEXIST)
		rc = 0; /* it is there: the store reads its last update next time */
	if (broke)
		/* No answer (a timeout, a reset): the daemon may or may not
		 * have created the file, now or later from the closed
		 * connection's socket. Half-done either way and safe to redo:
		 * the caller retries (RETRY), the next open reads the file's
		 * last update (the create's start, nothing written to it) or
		 * creates it again, and -O makes a create that comes second
		 * answer "exists". Its owner is recorded by the create that
		 * succeeds (the shared record already holds the claim). */
		return -EHOSTUNREACH;
	if (rc)
		return map_err(rc) == -EAGAIN ? -EAGAIN : -EIO;
	owner_record(r, loc->path, (size_t)(d - r->d));
	count(&r->stats.files_created, 1);
	pthread_mutex_lock(&d->mu);
	if (nodir_done(d, loc->path) && d->create_err[0]) {
		d->create_err[0] = '\0';
		vg_info("storage: %s: creates new series again", d->addr);
	}
	pthread_mutex_unlock(&d->mu);
	return 0;
}

/* FLUSH then INFO (the daemon's INFO reads the file, not its cache).
 * flags VG_RRD_RECEIVER: every wait bounded by the receiver's bound.
 * A FLUSH the daemon refused with an answer the client does not
 * recognise (-EREMOTEIO: out of memory, or an answer 1.7.2 never gives)
 * is returned as it is: the file may lack values the daemon holds, so
 * what INFO read of it would be a view the caller cannot trust, and
 * "no such series" would hide the daemon's fault (issue 14). The same
 * for an INFO so refused (a file the daemon cannot read as an RRD). */
static int info_of(struct rcd *r, const struct vg_rrd_loc *loc, struct vg_rrdcd_info *out,
		   int flags)
{
	struct daemon *d = owner_of(r, loc);
	struct vg_rrdcd *c;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!d)
		return -EHOSTUNREACH;
	c = flags & VG_RRD_RECEIVER ? client_bounded(d, &rc, rx_io_ms(r))
				    : client_get(d, &rc);
	if (!c)
		return -EHOSTUNREACH;
	count(&d->flushes_by[VG_STORE_FLUSH_READ], 1);
	rc = vg_rrdcd_flush(c, loc->path);
	if (rc == 0 || rc == -ENOENT)
		rc = vg_rrdcd_info(c, loc->path, out);
	if (rc && !vg_rrdcd_connected(c))
		rc = -EHOSTUNREACH; /* broke or timed out: the daemon, not the file */
	client_put(d, c, rc);
	/* -EACCES: "Permission denied" (a socket started with -P without
	 * FLUSH or INFO; a name outside -B's base dir cannot happen, the
	 * names are relative to it): each caller says what it means */
	return rc;
}

/* A file found where the placement rule put a series without a record
 * (created before the shared record, or its owners line lost): record it
 * there, unless another daemon is recorded for it meanwhile (then that
 * one holds the series: -EHOSTUNREACH, the caller locates it again).
 * Known names cost one map lookup. */
static int adopt(struct rcd *r, const struct vg_rrd_loc *loc)
{
	struct daemon *d = owner_of(r, loc);
	char win[256];
	void *v;

	pthread_mutex_lock(&r->mu);
	v = vg_hmap_gets(&r->owners, loc->path);
	pthread_mutex_unlock(&r->mu);
	if (v || !d)
		return 0;
	if (vg_placement_claim(r->shared, loc->path, d->addr, win, sizeof(win)))
		return -EHOSTUNREACH;
	owner_note(r, loc->path, win);
	return strcmp(win, d->addr) ? -EHOSTUNREACH : 0;
}

static int replay_last_ms(struct rcd *r, const struct vg_rrd_loc *loc, int64_t *out);

static int rcd_last_ms(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc, int64_t *out,
		       int flags)
{
	struct vg_rrdcd_info info;
	const char *v;
	int rc;

	if (flags & VG_RRD_REPLAY) {
		rc = replay_last_ms((struct rcd *)be, loc, out);
		if (!rc && ((struct rcd *)be)->shared)
			rc = adopt((struct rcd *)be, loc);
		return rc;
	}
	rc = info_of((struct rcd *)be, loc, &info, flags);
	/* refused (-EREMOTEIO): a fault, never "create it". Not permitted
	 * (-EACCES, -P): as before issue 14, "no file": the create that
	 * follows is answered "exists" (-O) or makes it, and the sync counts
	 * and shows the refused FLUSHes (docs/operations.md) */
	if (rc)
		return rc == -ENOENT || rc == -EACCES ? -ENOENT : rc == -EHOSTUNREACH ? -EHOSTUNREACH
										      : -EIO;
	v = vg_rrdcd_info_get(&info, "last_update");
	rc = v ? 0 : -EIO;
	/* The end of the last whole second: rrdcached starts a file's cache
	 * entry from librrd's whole-second last update, so it would accept a
	 * value re-sent within that second, which librrd then refuses when
	 * writing, with every later value of the same write. */
	if (v)
		*out = strtoll(v, NULL, 10) * 1000 + 999;
	vg_rrdcd_info_free(&info);
	if (!rc && ((struct rcd *)be)->shared)
		rc = adopt((struct rcd *)be, loc);
	return rc;
}

static int refusal_reason(int rc, const char *msg)
{
	if (msg && (strstr(msg, "illegal attempt") || strstr(msg, "minimum one second")))
		return VG_STORE_ERR_TIME;
	if (rc == -ENOENT || rc == -EACCES || (msg && strstr(msg, "No such file")))
		return VG_STORE_ERR_FILE;
	return VG_STORE_ERR_OTHER;
}

static void fail(struct vg_rrd_result *res, int reason, size_t n, const char *path,
		 const char *why)
{
	res->failed += n;
	res->failed_by[reason] += n;
	snprintf(res->msg, sizeof(res->msg), "%.300s: %.200s", path, why);
}

/* Send v[0..n) of one file on client c. 0 or the client's error. */
static int send_values(struct vg_rrdcd *c, const char *path, const struct vg_rrd_value *v,
		       size_t n)
{
	int64_t ts[CHUNK];
	double vals[CHUNK];

	for (size_t i = 0; i < n;) {
		size_t k = n - i < CHUNK ? n - i : CHUNK;
		for (size_t j = 0; j < k; j++) {
			ts[j] = v[i + j].t_ms;
			vals[j] = v[i + j].v;
		}
		/* the client sends seconds with milliseconds */
		struct vg_rrdcd_update u = {.file = path, .n = k, .nds = 1, .ts = ts, .ts_ms = 1, .values = vals};
		int rc = vg_rrdcd_update(c, &u);
		if (rc)
			return rc;
		i += k;
	}
	return 0;
}

/* FLUSH then INFO on c (a daemon of d's, counted at site): the end of
 * the last second NAME's file holds (see rcd_last_ms) into *out. 0 or the
 * client's error. */
static int file_last_ms(struct daemon *d, int site, struct vg_rrdcd *c, const char *name,
			int64_t *out)
{
	struct vg_rrdcd_info info;
	const char *v;
	int rc;

	count(&d->flushes_by[site], 1);
	rc = vg_rrdcd_flush(c, name);

	if (rc && rc != -ENOENT && rc != -EREMOTEIO)
		return rc;
	if ((rc = vg_rrdcd_info(c, name, &info)))
		return rc;
	v = vg_rrdcd_info_get(&info, "last_update");
	if (v)
		*out = strtoll(v, NULL, 10) * 1000 + 999;
	vg_rrdcd_info_free(&info);
	return v ? 0 : -EIO;
}

/* A file the start replay named, its last update read ahead
 * (replay_read). */
struct replay_pre {
	int state; /* PRE_* */
	int rc;    /* PRE_READ: 0 or the file's error, as file_last_ms's */
	int64_t out;
	int64_t want; /* the newest journaled time */
	char name[];
};

#define PRE_UNREAD 0
#define PRE_READING 1 /* in a group being read */
#define PRE_READ 2

/* The start replay (backend.h replay_note): a file its journal holds
 * values of is noted as sent to its daemon, from the oldest to the newest
 * of them, and the daemon suspect, as after a failed call. A collector
 * killed while the daemon restarted (the held host case: the holder
 * killed while the daemon is down, started again once it is back) has no
 * list of files to check, and the daemon's -j replay may hold a newer
 * value of ours without an older one ("A replay that skips a value"): a
 * FLUSH then writes the newer over the gap, and a last update read after
 * it makes the replay skip the older value as stored, lost for good. So
 * the first connection to the daemon runs the check after a failure on
 * exactly these files (check_sent: INFO; a file behind our newest value
 * FORGOTten, unless the daemon holds cached another collector's values,
 * PENDING, or ours from our oldest journaled time after the file's last
 * update on (TIMES[0..NTIMES), kept packed in d->jtimes, timepack.h,
 * until the file's check decides: the collector restarted, not the
 * daemon), then FLUSHed; then
 * read again, and found lost with what it holds), before the replay
 * reads any of them (replay_last_ms). Only the
 * files the journal holds values of, in groups of 32 within the check's
 * bound (a check cut short goes on at the next connection). The host's
 * newest arrival from another collector the journal holds (arrived_ms,
 * journal.c "The arrival marker") goes with them, as a running
 * collector's claims carry it: a value the daemon holds cached between
 * two of ours but older than that arrival is the other collector's
 * (the host was here, left and came back), FLUSHed, not FORGOTten
 * (overtaken_check). */
static void rcd_replay_note(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc,
			    int64_t first_ms, int64_t newest_ms, int64_t arrived_ms,
			    const int64_t *times, size_t ntimes)
{
	struct daemon *d = owner_of((struct rcd *)be, loc);
	struct sent_entry *e;
	struct replay_times *rt = NULL;
	struct replay_pre *pre;
	size_t len = strlen(loc->path);

	if (!d)
		return;
	/* no entry (out of memory): the file is read alone, as before */
	if ((pre = calloc(1, sizeof(*pre) + len + 1))) {
		memcpy(pre->name, loc->path, len + 1);
		pre->want = newest_ms;
	}
	/* no times (out of memory): the check FORGETs, as before them */
	if (ntimes) {
		size_t blen = vg_tpack_size(times, ntimes);
		if ((rt = malloc(sizeof(*rt) + blen))) {
			rt->len = blen;
			vg_tpack_write(times, ntimes, rt->b);
		}
	}
	pthread_mutex_lock(&d->mu);
	(void)sent_note(&d->sent, loc->path, first_ms, newest_ms, arrived_ms, 1);
	if ((e = sent_get(&d->sent, loc->path)))
		e->journaled = 1; /* the words of a loss found (overtaken_find) */
	free(vg_hmap_dels(&d->jtimes, loc->path));
	if (rt && vg_hmap_puts(&d->jtimes, loc->path, rt))
		free(rt);
	free(vg_hmap_dels(&d->rpre, loc->path));
	if (pre && vg_hmap_puts(&d->rpre, loc->path, pre))
		free(pre);
	pthread_mutex_unlock(&d->mu);
	__atomic_store_n(&d->suspect, 1, __ATOMIC_RELAXED);
}

/* The last update of NAME (see rcd_last_ms) for the start replay, on c
 * (a connection of d's, whose check ran on every file rcd_replay_note
 * named): what file_last_ms answers, read with the files named after it
 * in groups of VG_RRDCD_LAST_MANY_MAX (a FLUSH BATCH, then the INFOs
 * pipelined: two round trips per group, not two per file; a restart
 * spent ~10 s, 16 s under load, in ~2,600 files' reads, docs/scaling.md).
 * The group is NAME and the next files named and not read yet, but not
 * one the check found lost (answered from d->lost, replay_last_ms). The
 * answer read ahead is what the serial read would give at the file's
 * open: the replay sends nothing to a file before opening it, the check
 * left the daemon holding nothing of ours for it (durable, FLUSHed, or
 * FORGOTten: lost, and a file found lost later, after a restart of the
 * daemon, is answered from d->lost first), and a series has one writer
 * (docs/operations.md). A group whose connection broke reads nothing:
 * its files stay unread, NAME's answer is then the broken connection's. */
static int replay_read(struct daemon *d, struct vg_rrdcd *c, const char *name, int64_t *out)
{
	struct replay_pre *p, *g[VG_RRDCD_LAST_MANY_MAX];
	const char *names[VG_RRDCD_LAST_MANY_MAX];
	int64_t last_s[VG_RRDCD_LAST_MANY_MAX];
	int err[VG_RRDCD_LAST_MANY_MAX], rc;
	struct rb_item b[VG_RRDCD_LAST_MANY_MAX];
	size_t bi[VG_RRDCD_LAST_MANY_MAX], nb = 0;
	const struct vg_hmap_entry *e;
	size_t k = 1, pos = 0;

	pthread_mutex_lock(&d->mu);
	p = vg_hmap_dels(&d->rpre, name);
	if (!p || p->state != PRE_UNREAD) {
		pthread_mutex_unlock(&d->mu);
		if (p && p->state == PRE_READ) {
			rc = p->rc;
			if (!rc)
				*out = p->out;
			free(p);
			return rc;
		}
		free(p);
		return file_last_ms(d, VG_STORE_FLUSH_READ, c, name, out);
	}
	g[0] = p;
	names[0] = p->name;
	while (k < VG_RRDCD_LAST_MANY_MAX && (e = vg_hmap_next(&d->rpre, &pos))) {
		struct replay_pre *q = e->value;
		if (q->state != PRE_UNREAD || vg_hmap_gets(&d->lost, q->name))
			continue;
		q->state = PRE_READING;
		g[k] = q;
		names[k++] = q->name;
	}
	pthread_mutex_unlock(&d->mu);
	count(&d->flushes_by[VG_STORE_FLUSH_READ], k);
	rc = vg_rrdcd_last_update_many(c, names, k, last_s, err);
	/* a file behind its newest journaled time is read again while
	 * another FLUSH's write of it goes on (behind_confirm): read half
	 * written, the replay would re-send values the daemon holds, refused
	 * as older than its cache entry (a refused duplicate) */
	for (size_t i = 0; !rc && i < k; i++)
		if (!err[i] && last_s[i] * 1000 + 999 < g[i]->want) {
			bi[nb] = i;
			b[nb++] = (struct rb_item){.name = names[i], .want = g[i]->want, .have = last_s[i] * 1000 + 999};
		}
	behind_confirm(d, c, b, nb, CF_FLUSH, VG_STORE_FLUSH_READ);
	for (size_t j = 0; j < nb; j++) {
		if (b[j].state == RB_GONE)
			err[bi[j]] = -ENOENT;
		last_s[bi[j]] = b[j].have / 1000;
	}
	pthread_mutex_lock(&d->mu);
	for (size_t i = 1; i < k; i++) {
		g[i]->state = rc ? PRE_UNREAD : PRE_READ;
		if (rc)
			continue;
		g[i]->rc = err[i] == -EPROTO ? -EIO : err[i];
		g[i]->out = last_s[i] * 1000 + 999;
	}
	pthread_mutex_unlock(&d->mu);
	if (!rc) {
		rc = err[0] == -EPROTO ? -EIO : err[0];
		if (!rc)
			*out = last_s[0] * 1000 + 999;
	} else if (vg_rrdcd_connected(c)) { /* refused as a whole: alone */
		rc = file_last_ms(d, VG_STORE_FLUSH_READ, c, name, out);
	}
	free(p);
	return rc;
}

/* last_ms for the start replay (VG_RRD_REPLAY): a connection (whose check
 * ran first on the files rcd_replay_note named), then a file the check
 * found lost is answered with what it holds, read after its FORGET, and
 * taken out of d->lost: the replay caches every journaled value past it
 * and sends them in order, the re-send rcd_resent waits for. Any other
 * file, checked durable or FLUSHed by the check's PENDING rule (or not
 * named), is read as before (FLUSH, then INFO). -ETIMEDOUT when the
 * connection's check reached its bound (check_max) first: the daemon
 * answers, nothing of the file is read, and the check goes on at a later
 * connection (backend.h last_ms). */
static int replay_last_ms(struct rcd *r, const struct vg_rrd_loc *loc, int64_t *out)
{
	struct daemon *d = owner_of(r, loc);
	struct vg_rrdcd *c;
	int64_t *have;
	int rc = 0, cut = 0;

	if (!d)
		return -EHOSTUNREACH;
	if (!(c = client_get_cut(d, &rc, IO_TIMEOUT_MS, &cut)))
		return cut ? -ETIMEDOUT : -EHOSTUNREACH;
	pthread_mutex_lock(&d->mu);
	have = lost_take(d, loc->path); /* the replay's sends are its re-send */
	pthread_mutex_unlock(&d->mu);
	if (have) {
		*out = *have;
		rc = *have == INT64_MIN ? -ENOENT : 0; /* gone: created again */
		free(have);
	} else {
		rc = replay_read(d, c, loc->path, out);
	}
	if (rc && !vg_rrdcd_connected(c))
		rc = -EHOSTUNREACH; /* broke or timed out: the daemon, not the file */
	client_put(d, c, rc);
	if (rc == -ENOENT || rc == -EREMOTEIO || rc == -EACCES)
		return -ENOENT;
	return rc == -EHOSTUNREACH || !rc ? rc : -EIO;
}

/* The daemon refused some of v[0..n): skip what is at or before the
 * file's last second (already stored), resend the rest, then one by
 * one, so no value goes down with another.
 *
 * The file's last update is read on c itself (FLUSH, then INFO): c was
 * verified when it was made, and another client could be a new
 * connection, whose verification would find this file behind the time
 * claimed for the values being retried here and call it lost.
 *
 * A daemon whose cache entry is ahead of its file. rrdcached refuses any
 * time at or before its cache entry's last update, which its journal
 * replay sets from every UPDATE it replays, while a "wrote" line throws
 * the values before it away. 1.7.2 journals "wrote" after its writer
 * thread wrote the values it took, so an UPDATE taken during that write
 * is before the "wrote": after a kill -9 and restart the daemon refuses
 * that value's time although its file lacks it (seen in the cluster test:
 * the one-by-one retry then wrote the newer values and the refused one
 * was lost for good). So when the resend of values all newer than the
 * file, just FLUSHed, is refused for its time, the entry is stale: FLUSH
 * again (what this resend got in is written), FORGET the file (the next
 * UPDATE starts its entry again from the file's last update), read the
 * file's last update and resend what is newer, once. Nothing of ours is
 * pending there (FLUSHed); a series has one writer (docs/operations.md). */
static void update_refused(struct rcd *r, struct daemon *d, struct vg_rrdcd *c,
			   const struct vg_rrd_loc *loc, const struct vg_rrd_value *v,
			   size_t n, int first_rc, struct vg_rrd_result *res, int64_t *wmax)
{
	int64_t last;
	size_t skip;
	int rc;

	if (first_rc == -ENOENT) {
		/* "No such file": the daemon holds no entry for the file and
		 * its UPDATE found none on disk (deleted under the daemon,
		 * and FORGOTten by vanished_check or never cached since),
		 * so it took nothing of the call: the store creates the file
		 * again and sends them (backend.h "missing"), also when the
		 * series' own directory was deleted with it (its type
		 * directory there: dir_check). Unless its type directory is
		 * missing on the daemon's disk too (a volume not mounted
		 * under its -b, a type directory renamed away: LIST answers
		 * "No such file"): then the file is out of reach,
		 * not deleted, and a create (a daemon with -R makes the
		 * directories) would shadow it once it is back; the values
		 * wait (backend.h dir_missing), as they do when the LIST
		 * breaks the connection. A LIST the daemon refuses or fails
		 * (-P without LIST: "Permission denied.") cannot tell: the
		 * values wait as for a directory missing (dir_unknown), never
		 * a create on a guess */
		int drc = dir_check(c, loc->path);
		if (drc && !vg_rrdcd_connected(c)) {
			res->unavailable += n;
			return;
		}
		if (drc) {
			res->unavailable += n;
			res->dir_missing += n;
			if (drc != -ENOENT) {
				res->dir_unknown += n;
				snprintf(res->msg, sizeof(res->msg), "%s: LIST of its directory: %.*s",
					 d->addr, (int)strcspn(vg_rrdcd_error(c), "\n"),
					 vg_rrdcd_error(c));
			}
			return;
		}
		res->missing += n;
		(void)r;
		return;
	}
	res->retries++;
	for (int pass = 0;; pass++) {
		if (file_last_ms(d, VG_STORE_FLUSH_REPAIR, c, loc->path, &last))
			last = INT64_MIN;
		for (skip = 0; skip < n && v[skip].t_ms <= last; skip++)
			;
		resend_refused(d, loc->path, v, skip, last);
		res->duplicate += skip;
		v += skip;
		n -= skip;
		if (!n)
			return;
		if (first_rc == -ENOENT || !vg_rrdcd_connected(c))
			break;
		if (!(rc = send_values(c, loc->path, v, n))) {
			res->written += n;
			*wmax = v[n - 1].t_ms;
			return;
		}
		if (pass || last == INT64_MIN || !vg_rrdcd_connected(c) ||
		    refusal_reason(rc, vg_rrdcd_error(c)) != VG_STORE_ERR_TIME)
			break;
		/* refused for its time, every value newer than the file: the
		 * daemon's entry is ahead of its file (above) */
		count(&d->flushes_by[VG_STORE_FLUSH_REPAIR], 1);
		rc = vg_rrdcd_flush(c, loc->path);
		if (rc && rc != -ENOENT) /* not FLUSHed: a FORGET would drop it */
			break;
		if ((rc = vg_rrdcd_forget(c, loc->path)) && rc != -ENOENT)
			break;
		/* for /metrics: a restart that keeps needing this says the
		 * daemon's journal replay and its files disagree */
		__atomic_fetch_add(&d->repairs, 1, __ATOMIC_RELAXED);
		res->retries++;
	}
	for (size_t j = 0; j < n; j++) {
		if (!vg_rrdcd_connected(c)) {
			res->unavailable += n - j;
			return;
		}
		if (!(rc = send_values(c, loc->path, &v[j], 1))) {
			res->written++;
			*wmax = v[j].t_ms;
		} else {
			fail(res, refusal_reason(rc, vg_rrdcd_error(c)), 1, loc->path,
			     vg_rrdcd_error(c));
		}
	}
	(void)r;
}

/* FLUSH names[0..n) on c, one BATCH round trip (vg_rrdcd_flush_many;
 * err: n entries), before an update sends them values of a host that
 * arrived from another collector (vg_rrd_loc.flush_first).
 *
 * Why. A host that moves from collector P to us leaves P's latest values
 * cached by the daemon, taken but not yet FLUSHed by P's sync (up to
 * [storage] sync_interval, or the storage thread's lag at 0). If the
 * daemon then loses them (a restart without -j, its replay race, a
 * power cut), P's check re-sends them from P's journal, but once our
 * newer values of the same file are in, rrdcached refuses P's older
 * ones: lost for good (docs/scaling.md "Still open", form 3). FLUSHed
 * first, P's values are in the file before anything of ours reaches the
 * daemon, and P's check finds them durable. The store asks for it once
 * per arrival (series.flushed_ms), not for files its open read after the
 * arrival (the last update read FLUSHes too). The daemon writes a BATCH's
 * FLUSHes one after another, one file write each: 2,550 files took
 * 0.11-0.73 s with one value cached per file, 0.23-1.40 s with 30
 * (2026-12-06, load 10-11, docs/benchmarks.md "FLUSH on arrival"), so the
 * receiver leaves such items to the storage thread (update_many) rather
 * than wait within an agent's ack bound.
 *
 * Returns 0 when the daemon answered, whatever it answered per file (a
 * refusal says nothing was cached for it, or its write failed, which the
 * values sent next meet as well), or the connection's negative errno:
 * then nothing of the call is sent and the values wait, as for a daemon
 * that is down, so the FLUSH is tried again before they are written. */
static int arrival_flush(struct daemon *d, struct vg_rrdcd *c, const char *const *names,
			 size_t n, int *err)
{
	struct vg_rrdcd_batch_result br;
	int rc;

	count(&d->flushes_by[VG_STORE_FLUSH_ARRIVAL], n);
	rc = vg_rrdcd_flush_many(c, names, n, err, &br);

	/* -EINVAL (a name the protocol cannot carry: nothing sent) leaves
	 * the connection usable and the update reports it */
	if (vg_rrdcd_connected(c))
		return 0;
	return rc ? rc : -ENOTCONN;
}

static void rcd_update(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc,
		       const struct vg_rrd_value *v, size_t n, struct vg_rrd_result *res)
{
	struct rcd *r = (struct rcd *)be;
	struct daemon *d = owner_of(r, loc);
	struct vg_rrdcd *c;
	int64_t t0 = vg_monotonic_ns();
	int rc = 0;

	if (!n)
		return;
	if (!d) {
		fail(res, VG_STORE_ERR_FILE, n, loc->path, "its storage daemon is not configured");
		return;
	}
	if (!(c = client_get(d, &rc))) {
		res->unavailable += n;
		return;
	}
	/* Looked at once the client is ours: getting it may have found the
	 * file lost (a new connection verifies). A lost file waits for the
	 * store's re-send of its lost values. */
	pthread_rwlock_rdlock(&d->smu);
	if (is_lost(d, loc->path)) {
		pthread_rwlock_unlock(&d->smu);
		res->unavailable += n;
		client_put(d, c, 0);
		return;
	}
	/* The host arrived from another collector: its values the daemon
	 * holds go to the file before ours (see arrival_flush) */
	if (loc->flush_first) {
		int err = 0;
		const char *name = loc->path;
		if ((rc = arrival_flush(d, c, &name, 1, &err))) {
			pthread_rwlock_unlock(&d->smu);
			res->unavailable += n;
			client_put(d, c, rc);
			return;
		}
		res->flushed = 1;
	}
	/* Claimed before sending (see check_sent), corrected after. A
	 * connection that breaks: every value waits for the daemon (some may
	 * have been taken: the retry finds them as already stored). */
	int64_t old = claim_sent(d, loc, v[0].t_ms, v[n - 1].t_ms), wmax = INT64_MIN;
	if (vg_rrd_rrdcached_test_before_send)
		vg_rrd_rrdcached_test_before_send(loc->path);
	if (!(rc = send_values(c, loc->path, v, n))) {
		res->written += n;
		wmax = v[n - 1].t_ms;
	} else if (vg_rrdcd_connected(c)) {
		update_refused(r, d, c, loc, v, n, rc, res, &wmax);
	} else {
		res->unavailable += n;
	}
	if (res->written != n)
		unmark_sent(d, loc->path, old > wmax ? old : wmax);
	claim_written(d, loc->path, wmax);
	resend_after(d, loc->path, v[0].t_ms, v[n - 1].t_ms,
		     res->written + res->duplicate == n);
	pthread_rwlock_unlock(&d->smu);
	client_put(d, c, rc);
	count(&r->stats.calls, 1);
	count(&r->stats.write_ns_total, (uint64_t)(vg_monotonic_ns() - t0));
}

/* A write-through BATCH round trip of the receiver's to d took ms (cut:
 * at least that): d's estimate of its next ones, the longest of the
 * recent ones (a slower one raises it at once, each faster one lowers it
 * by an eighth). The receiver's only: each of its waits is bounded by
 * wt_timeout_ms, so the estimate never exceeds what a batch's deadline
 * holds and its first round trips always start (a storage thread's wait
 * on a stalled daemon, up to IO_TIMEOUT_MS, would make it skip every one
 * until the estimate came down). */
static void rtt_note(struct daemon *d, int64_t ms)
{
	int64_t old = __atomic_load_n(&d->rtt_ms, __ATOMIC_RELAXED);
	int64_t est = ms > old - old / 8 ? ms : old - old / 8;

	__atomic_store_n(&d->rtt_ms, est, __ATOMIC_RELAXED);
}

/* Many series: one BATCH per daemon (per BATCH_ITEMS series); an item the
 * daemon refused goes through update_refused alone. */
static void rcd_update_many(struct vg_rrd_backend *be, struct vg_rrd_item *items, size_t n)
{
	struct rcd *r = (struct rcd *)be;
	struct vg_rrdcd_update *u = calloc(BATCH_ITEMS, sizeof(*u));
	int64_t *ts = NULL;
	double *vals = NULL;
	size_t *idx = calloc(BATCH_ITEMS, sizeof(*idx));
	int err[BATCH_ITEMS];
	int64_t old_ms[BATCH_ITEMS];
	const char *fnames[BATCH_ITEMS];

	if (!u || !idx) {
		free(u);
		free(idx);
		for (size_t i = 0; i < n; i++)
			rcd_update(be, items[i].loc, items[i].v, items[i].n, &items[i].res);
		return;
	}
	for (size_t o = 0; o < r->nd; o++) {
		struct daemon *d = &r->d[o];
		size_t i = 0;

		while (i < n) {
			size_t k = 0, nv = 0, off = 0;
			struct vg_rrdcd *c;
			int64_t t0 = vg_monotonic_ns();
			int rc = 0;

			/* gather up to BATCH_ITEMS items of this daemon (chunk-sized) */
			for (; i < n && k < BATCH_ITEMS; i++) {
				if (items[i].loc->owner != o || !items[i].n)
					continue;
				if (items[i].loc->flush_first && items[i].no_connect) {
					/* its FLUSH first (arrival_flush), on the
					 * storage thread: not on an agent's ack */
					items[i].res.unavailable += items[i].n;
					continue;
				}
				if (items[i].n > CHUNK) {        /* long ones alone */
					if (items[i].no_connect) /* a backlog: the storage thread's */
						items[i].res.unavailable += items[i].n;
					else
						rcd_update(be, items[i].loc, items[i].v, items[i].n,
							   &items[i].res);
					continue;
				}
				idx[k++] = i;
				nv += items[i].n;
			}
			if (!k)
				break;
			free(ts);
			free(vals);
			ts = malloc(nv * sizeof(*ts));
			vals = malloc(nv * sizeof(*vals));
			if (!ts || !vals) {
				for (size_t j = 0; j < k; j++)
					fail(&items[idx[j]].res, VG_STORE_ERR_MEMORY, items[idx[j]].n,
					     items[idx[j]].loc->path, "out of memory");
				continue;
			}
			for (size_t j = 0; j < k; j++) {
				struct vg_rrd_item *it = &items[idx[j]];
				for (size_t m = 0; m < it->n; m++) {
					ts[off + m] = it->v[m].t_ms;
					vals[off + m] = it->v[m].v;
				}
				u[j] = (struct vg_rrdcd_update){.file = it->loc->path, .n = it->n, .nds = 1, .ts = ts + off, .ts_ms = 1, .values = vals + off};
				off += it->n;
			}
			/* the receiver's batch deadline (vg_rrd_item) or its
			 * own bound per wait, whichever first. A round trip the
			 * time left cannot hold (this daemon's recent ones took
			 * longer) is not started: cut under way, its answer
			 * would be left unread and its connection closed, a
			 * back-off for every batch after; not started, its
			 * values only wait for the storage thread */
			int by_deadline = 0;
			int64_t now = vg_monotonic_ms();
			int64_t dl = items[idx[0]].no_connect ? items[idx[0]].deadline_ms : 0;
			int64_t left = vg_phase_end(now, r->wt_timeout_ms, dl, &by_deadline) - now;
			if (by_deadline &&
			    (left <= 0 || left < __atomic_load_n(&d->rtt_ms, __ATOMIC_RELAXED))) {
				for (size_t j = 0; j < k; j++) {
					items[idx[j]].res.unavailable += items[idx[j]].n;
					items[idx[j]].res.cut += items[idx[j]].n;
				}
				count(&d->rtt_skips, 1);
				continue;
			}
			int io_ms = left < 1 ? 1 : (int)left;
			c = items[idx[0]].no_connect ? client_idle(d, &rc, io_ms)
						     : client_get(d, &rc);
			if (!c) {
				for (size_t j = 0; j < k; j++)
					items[idx[j]].res.unavailable += items[idx[j]].n;
				continue;
			}
			/* lost files wait (see rcd_update), looked at now; the
			 * receiver does not wait for a FORGET check (smu): its
			 * values go to the storage thread */
			if (items[idx[0]].no_connect ? pthread_rwlock_tryrdlock(&d->smu)
						     : pthread_rwlock_rdlock(&d->smu)) {
				for (size_t j = 0; j < k; j++)
					items[idx[j]].res.unavailable += items[idx[j]].n;
				client_put(d, c, 0);
				continue;
			}
			size_t kk = 0;
			for (size_t j = 0; j < k; j++) {
				if (is_lost(d, items[idx[j]].loc->path)) {
					items[idx[j]].res.unavailable += items[idx[j]].n;
					continue;
				}
				idx[kk] = idx[j];
				u[kk++] = u[j];
			}
			if (!(k = kk)) {
				pthread_rwlock_unlock(&d->smu);
				client_put(d, c, 0);
				continue;
			}
			size_t nf = 0;
			for (size_t j = 0; j < k; j++)
				if (items[idx[j]].loc->flush_first)
					fnames[nf++] = u[j].file;
			if (nf && (rc = arrival_flush(d, c, fnames, nf, err))) {
				for (size_t j = 0; j < k; j++)
					items[idx[j]].res.unavailable += items[idx[j]].n;
				pthread_rwlock_unlock(&d->smu);
				client_put(d, c, rc);
				continue;
			}
			for (size_t j = 0; nf && j < k; j++)
				items[idx[j]].res.flushed = items[idx[j]].loc->flush_first;
			struct vg_rrdcd_batch_result br = {0};
			for (size_t j = 0; j < k; j++) /* claimed, see rcd_update */
				old_ms[j] = claim_sent(d, items[idx[j]].loc,
						       items[idx[j]].v[0].t_ms,
						       items[idx[j]].v[items[idx[j]].n - 1].t_ms);
			if (vg_rrd_rrdcached_test_before_send)
				vg_rrd_rrdcached_test_before_send(items[idx[0]].loc->path);
			int64_t sent_ms = vg_monotonic_ms();
			rc = vg_rrdcd_batch(c, u, k, err, &br);
			if (items[idx[0]].no_connect) /* the receiver's: see rtt_note */
				rtt_note(d, vg_monotonic_ms() - sent_ms);
			for (size_t j = 0; j < k; j++) {
				struct vg_rrd_item *it = &items[idx[j]];
				int64_t wmax = INT64_MIN;
				if (rc)
					it->res.unavailable += it->n;
				else if (!err[j])
					it->res.written += it->n;
				else if (vg_rrdcd_connected(c))
					update_refused(r, d, c, it->loc, it->v, it->n, err[j],
						       &it->res, &wmax);
				if (!rc && !err[j])
					wmax = it->v[it->n - 1].t_ms;
				if (it->res.written != it->n)
					unmark_sent(d, it->loc->path,
						    old_ms[j] > wmax ? old_ms[j] : wmax);
				claim_written(d, it->loc->path, wmax);
				resend_after(d, it->loc->path, it->v[0].t_ms,
					     it->v[it->n - 1].t_ms,
					     it->res.written + it->res.duplicate == it->n);
			}
			pthread_rwlock_unlock(&d->smu);
			client_put(d, c, rc);
			count(&r->stats.calls, 1);
			count(&r->stats.write_ns_total, (uint64_t)(vg_monotonic_ns() - t0));
		}
	}
	for (size_t i = 0; i < n; i++) /* recorded on no configured daemon */
		if (items[i].loc->owner >= r->nd && items[i].n)
			fail(&items[i].res, VG_STORE_ERR_FILE, items[i].n, items[i].loc->path,
			     "its storage daemon is not configured");
	free(ts);
	free(vals);
	free(u);
	free(idx);
}

static const char *const cfnames[] = {"AVERAGE", "MIN", "MAX"};
static int rcd_info(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc, int cf,
		    struct vg_rrd_info *d);

static int rcd_info(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc, int cf,
		    struct vg_rrd_info *d)
{
	struct vg_rrdcd_info info;
	long cf_of[32], pdp[32], rows[32];
	size_t maxidx = 0;
	int rc;

	memset(d, 0, sizeof(*d));
	if (cf < VG_CF_AVERAGE || cf > VG_CF_MAX)
		return -EINVAL;
	if ((rc = info_of((struct rcd *)be, loc, &info, 0))) /* -EACCES: refused too */
		return rc == -ENOENT || rc == -EHOSTUNREACH ? rc
		       : rc == -EREMOTEIO || rc == -EACCES  ? -EREMOTEIO
							    : -EIO;
	for (int k = 0; k < 32; k++)
		cf_of[k] = pdp[k] = rows[k] = -1;
	for (size_t i = 0; i < info.n; i++) {
		const char *key = info.items[i].key, *val = info.items[i].value;
		unsigned idx;
		char field[32];

		if (!strcmp(key, "step"))
			d->step = strtoul(val, NULL, 10);
		else if (!strcmp(key, "last_update"))
			d->last_update = (time_t)strtoll(val, NULL, 10);
		else if (!strcmp(key, "ds[value].type"))
			d->kind = !strcmp(val, "GAUGE") ? VG_KIND_GAUGE : VG_KIND_COUNTER;
		else if (sscanf(key, "rra[%u].%31s", &idx, field) == 2 && idx < 32) {
			if (!strcmp(field, "cf"))
				cf_of[idx] = !strcmp(val, cfnames[cf]);
			else if (!strcmp(field, "pdp_per_row"))
				pdp[idx] = strtol(val, NULL, 10);
			else if (!strcmp(field, "rows"))
				rows[idx] = strtol(val, NULL, 10);
			if (idx + 1 > maxidx)
				maxidx = idx + 1;
		}
	}
	vg_rrdcd_info_free(&info);
	return vg_rrd_info_archives(d, maxidx, cf_of, pdp, rows);
}

static int rcd_fetch(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc, int cf,
		     time_t start, time_t end, unsigned long step_s, struct vg_rrd_rows *out)
{
	struct rcd *r = (struct rcd *)be;
	struct daemon *d = owner_of(r, loc);
	struct vg_rrdcd_fetch f;
	struct vg_rrdcd *c;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (cf < VG_CF_AVERAGE || cf > VG_CF_MAX)
		return -EINVAL;
	/* rrdcached's FETCH takes no resolution: like rrd_fetch at the
	 * file's step it answers from the finest archive that covers the
	 * whole range. For a coarser archive, ask from before the coverage of
	 * every finer one, and drop the rows before START. */
	time_t from = start;
	struct vg_rrd_info info;
	if (!d)
		return -EHOSTUNREACH;
	if ((rc = rcd_info(be, loc, cf, &info)))
		return rc;
	for (size_t k = 0; k < info.nrra; k++)
		if (info.rra[k].res_s < step_s && info.rra[k].cal_start - (time_t)step_s < from)
			from = info.rra[k].cal_start - (time_t)step_s;
	if (!(c = client_get(d, &rc)))
		return -EHOSTUNREACH;
	rc = vg_rrdcd_fetch(c, loc->path, cfnames[cf], from, end, &f);
	if (rc && !vg_rrdcd_connected(c))
		rc = -EHOSTUNREACH;
	client_put(d, c, rc);
	if (rc)
		return rc == -ENOENT || rc == -EHOSTUNREACH ? rc : -EIO;
	if (f.nds != 1 || (unsigned long)f.step != step_s) {
		vg_rrdcd_fetch_free(&f);
		return -EIO;
	}
	size_t skip = 0;
	time_t want = start - start % (time_t)step_s;
	if (f.start < want) {
		skip = (size_t)((want - f.start) / (time_t)step_s);
		if (skip > f.nrows)
			skip = f.nrows;
		memmove(f.values, f.values + skip, (f.nrows - skip) * sizeof(*f.values));
	}
	out->start = (time_t)f.start + (time_t)(skip * step_s);
	out->end = (time_t)f.end;
	out->step = (unsigned long)f.step;
	out->n = f.nrows - skip;
	out->v = f.values;
	f.values = NULL;
	vg_rrdcd_fetch_free(&f);
	return 0;
}

/* The series' file is deleted (rc 0 or -ENOENT) or FORGOTten
 * (-EOPNOTSUPP: it stays on the storage host): delete its shared record,
 * so a later series of that name is placed afresh. rc, or -EIO when the
 * record could not be deleted (the lifecycle tries again). */
static int shared_forget(struct rcd *r, struct daemon *d, const struct vg_rrd_loc *loc, int rc)
{
	if (!r->shared || (rc && rc != -ENOENT && rc != -EOPNOTSUPP))
		return rc;
	if (vg_placement_forget(r->shared, loc->path, d->addr))
		return -EIO;
	owner_note(r, loc->path, "-");
	return rc;
}

static int rcd_remove(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc)
{
	struct rcd *r = (struct rcd *)be;
	struct daemon *d = owner_of(r, loc);
	struct vg_rrdcd *c;
	char path[PATH_MAX * 2];
	int rc = 0;

	if (!d || !(c = client_get(d, &rc)))
		return -EIO;
	/* Intended: no sync may take the file for deleted under the daemon
	 * (vanished_check), so none runs meanwhile (vmu: client_get, which
	 * may take it, returned) and the file leaves what they verify */
	pthread_mutex_lock(&d->vmu);
	rc = vg_rrdcd_forget(c, loc->path);
	client_put(d, c, rc);
	if (rc && rc != -ENOENT) {
		pthread_mutex_unlock(&d->vmu);
		return -EIO;
	}
	pthread_mutex_lock(&d->mu);
	vg_hmap_dels(&d->sent.map, loc->path);
	int64_t *lost = vg_hmap_dels(&d->lost, loc->path);
	if (lost) {
		free(lost);
		__atomic_fetch_sub(&d->nlost, 1, __ATOMIC_RELEASE);
	}
	resend_drop(d, loc->path); /* no re-send comes for a removed file */
	pthread_mutex_unlock(&d->mu);
	if (!r->base[0]) {
		pthread_mutex_unlock(&d->vmu);
		return shared_forget(r, d, loc, -EOPNOTSUPP);
	}
	snprintf(path, sizeof(path), "%s/%s", r->base, loc->path);
	rc = unlink(path) ? (errno == ENOENT ? -ENOENT : -EIO) : 0;
	pthread_mutex_unlock(&d->vmu);
	return shared_forget(r, d, loc, rc);
}

/* The extra FLUSH connections of a sync of nfiles files to d (into out):
 * kept ones first, then new ones (connect and PING, nothing verified:
 * flush_sent proves them through the verified one). No more than the
 * files need; fewer when a connect fails (the sync goes on with those). */
static size_t flush_conns_get(struct daemon *d, size_t nfiles, struct vg_rrdcd **out)
{
	size_t want = FLUSH_CONNS - 1, n = 0;

	if (want > (nfiles - 1) / (FLUSH_BATCH / FLUSH_CONNS_MAX))
		want = (nfiles - 1) / (FLUSH_BATCH / FLUSH_CONNS_MAX);
	pthread_mutex_lock(&d->mu);
	while (n < want && d->nfidle)
		out[n++] = d->fidle[--d->nfidle];
	pthread_mutex_unlock(&d->mu);
	while (n < want) {
		struct vg_rrdcd *c;
		if (vg_rrdcd_connect(d->addr, PROBE_MS, &c))
			break;
		if (vg_rrdcd_ping(c) || vg_rrdcd_set_timeout(c, IO_TIMEOUT_MS)) {
			vg_rrdcd_close(c);
			break;
		}
		out[n++] = c;
	}
	return n;
}

/* Keep the sync's extra connections that still work for the next one. */
static void flush_conns_put(struct daemon *d, struct vg_rrdcd **c, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		pthread_mutex_lock(&d->mu);
		if (vg_rrdcd_connected(c[k]) && d->nfidle < FLUSH_CONNS_MAX) {
			d->fidle[d->nfidle++] = c[k];
			c[k] = NULL;
		}
		pthread_mutex_unlock(&d->mu);
		vg_rrdcd_close(c[k]);
	}
}

static int owners_upload(struct rcd *r);

/* Make every file updated since it was last verified durable: FLUSH
 * (the daemon returns once it wrote the file), with a client taken before
 * the files are, holding the daemon's verification lock. FLUSH, then
 * INFO of the files whose FLUSH passed (unwritten_check: "Successfully
 * flushed" does not say the write succeeded), without FORGET or PENDING:
 * the client was made before the files were
 * taken, so it reaches the daemon that accepted them (a daemon that
 * restarted since broke it: the FLUSH fails and they stay), or a daemon
 * that restarted before it was made, and then its new-connection check
 * (client_get) already took every file sent before that restart, since
 * each is noted before it is sent and no sync held it meanwhile (vmu).
 * The FLUSHes go over that client and up to FLUSH_CONNS - 1 extra
 * connections at once, which that client vouches for (flush_sent).
 * Then make the owners file durable. Fails (the store keeps its journal
 * segments) when a daemon cannot be reached, while lost files wait for
 * their re-send, or when a loss was found during the sync. */
static int rcd_sync(struct vg_rrd_backend *be)
{
	struct rcd *r = (struct rcd *)be;
	int ret = 0;

	for (size_t o = 0; o < r->nd; o++) {
		struct daemon *d = &r->d[o];
		uint64_t losses = __atomic_load_n(&d->losses, __ATOMIC_ACQUIRE);
		struct vg_rrdcd *c;
		size_t nlost = 0;
		int rc = 0, reached = 0;

		pthread_mutex_lock(&d->mu);
		size_t n = vg_hmap_count(&d->sent.map);
		pthread_mutex_unlock(&d->mu);
		if (n && vg_monotonic_ms() < __atomic_load_n(&d->refused_until_ms,
							     __ATOMIC_RELAXED)) {
			ret = -EIO; /* it refused a FLUSH a moment ago: wait */
		} else if (n) {
			if ((c = client_get(d, &rc))) {
				struct vg_rrdcd *extra[FLUSH_CONNS_MAX];
				size_t nextra = flush_conns_get(d, n, extra);
				reached = 1;
				pthread_mutex_lock(&d->vmu);
				rc = check_sent(d, c, extra, nextra, &nlost, 0);
				pthread_mutex_unlock(&d->vmu);
				flush_conns_put(d, extra, nextra);
				client_put(d, c, rc);
			}
			if (rc || nlost)
				ret = -EIO;
		}
		/* every file of d verified (by this sync, or before it by a
		 * new connection's check), none lost: a refusal episode is
		 * over */
		if ((!n || (reached && !rc && !nlost)) && !__atomic_load_n(&d->nlost, __ATOMIC_ACQUIRE)) {
			if (__atomic_exchange_n(&d->refused_backoff_ms, 0, __ATOMIC_RELAXED)) {
				pthread_mutex_lock(&d->mu);
				d->refusal[0] = '\0';
				vg_hmap_clear(&d->unwritten_logged);
				pthread_mutex_unlock(&d->mu);
				vg_info("storage: %s: FLUSHes accepted again", d->addr);
			}
		}
		if (__atomic_load_n(&d->nlost, __ATOMIC_ACQUIRE) ||
		    __atomic_load_n(&d->losses, __ATOMIC_ACQUIRE) != losses)
			ret = -EIO;
	}
	if (__atomic_load_n(&r->upload_pending, __ATOMIC_RELAXED))
		owners_upload(r);
	pthread_mutex_lock(&r->mu);
	if (r->owners_dirty && r->owners_fd >= 0) {
		if (fdatasync(r->owners_fd))
			ret = -errno;
		else
			r->owners_dirty = 0;
	}
	pthread_mutex_unlock(&r->mu);
	return ret;
}

/* Files whose accepted values a daemon lost (see check_sent). */
static size_t rcd_lost(struct vg_rrd_backend *be, struct vg_rrd_lost *out, size_t max)
{
	struct rcd *r = (struct rcd *)be;
	size_t n = 0;

	for (size_t o = 0; o < r->nd; o++) {
		struct daemon *d = &r->d[o];
		const struct vg_hmap_entry *e;
		size_t pos = 0;

		if (!__atomic_load_n(&d->nlost, __ATOMIC_ACQUIRE))
			continue;
		pthread_mutex_lock(&d->mu);
		while ((e = vg_hmap_next(&d->lost, &pos))) {
			if (n < max) {
				snprintf(out[n].path, sizeof(out[n].path), "%s", e->key);
				out[n].owner = (uint32_t)o;
				out[n].have_ms = *(int64_t *)e->value;
			}
			n++;
		}
		pthread_mutex_unlock(&d->mu);
	}
	return n;
}

static void rcd_resent(struct vg_rrd_backend *be, const struct vg_rrd_lost *l)
{
	struct rcd *r = (struct rcd *)be;
	struct daemon *d = l->owner < r->nd ? &r->d[l->owner] : NULL;

	if (!d)
		return;
	pthread_mutex_lock(&d->mu);
	free(lost_take(d, l->path));
	pthread_mutex_unlock(&d->mu);
}

static void rcd_get_stats(struct vg_rrd_backend *be, struct vg_rrd_backend_stats *out)
{
	struct rcd *r = (struct rcd *)be;

	out->files_created = __atomic_load_n(&r->stats.files_created, __ATOMIC_RELAXED);
	out->calls = __atomic_load_n(&r->stats.calls, __ATOMIC_RELAXED);
	out->write_ns_total = __atomic_load_n(&r->stats.write_ns_total, __ATOMIC_RELAXED);
	out->headers_restored = 0;
}

static void rcd_close(struct vg_rrd_backend *be)
{
	struct rcd *r = (struct rcd *)be;

	if (!r)
		return;
	for (size_t o = 0; o < r->nd; o++) {
		struct daemon *d = &r->d[o];
		for (size_t k = 0; k < d->nidle; k++)
			vg_rrdcd_close(d->idle[k]);
		for (size_t k = 0; k < d->nfidle; k++)
			vg_rrdcd_close(d->fidle[k]);
		sent_free(&d->sent);
		sent_free(&d->spare);
		free(d->fc);
		free_values(&d->lost);
		free_values(&d->resend);
		free_values(&d->jtimes);
		vg_hmap_release(&d->unwritten_logged);
		free(d->rb);
		free_values(&d->rpre);
		free_values(&d->nodir);
		pthread_mutex_destroy(&d->mu);
		pthread_mutex_destroy(&d->vmu);
		pthread_rwlock_destroy(&d->smu);
	}
	free(r->d);
	if (r->owners_fd >= 0) {
		(void)fdatasync(r->owners_fd);
		close(r->owners_fd);
	}
	vg_hmap_release(&r->owners);
	vg_placement_close(r->shared);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* ---- conversion (storage convert) ------------------------------------------------
 * rrdcached's protocol cannot change a file's archives, so the file is
 * converted where its daemon keeps it, through the daemon's -b directory
 * as mounted here (vg_rrd_rrdcached_convert_dir), by the same librrd code
 * as the files backend's (collector/rrd_file.c), with every collector
 * stopped (the command holds the journal lock; the store has written
 * what its journal held):
 *   1. FLUSH the file on its daemon, then read it through the daemon
 *      (collector/rrd_view.c: INFO, a FETCH per archive);
 *   2. the file under the directory must be the one the daemon reads:
 *      librrd's INFO of it equal to the daemon's, field by field (the
 *      random current rows of its archives and its last update make any
 *      other copy differ); else nothing is touched;
 *   3. FORGET it on the daemon (no cached value, no state of it left
 *      there), convert it under a side name <file>.vigie-convert
 *      (vg_rrd_file_convert_safe: a hard link, which librrd's modify
 *      replaces with the converted file; the file itself untouched);
 *   4. read the side file through the daemon: the rule's archives, INFO
 *      outside the archives unchanged, each archive both layouts have
 *      unchanged in its definition, its state and every row both hold,
 *      bit for bit (vg_rrd_view_kept), and FORGET the side name there;
 *      only then is it renamed over the file (atomic). If any of it
 *      fails, the side file is removed: the file was never changed.
 * Names are confined: the file's real path (realpath) must be exactly the
 * directory's real path, "/", and the name (no symbolic link on the way,
 * nothing outside the directory), a regular file. A run killed anywhere
 * leaves the file whole, either old or converted and checked, and at most
 * a side file (or librrd's temporary file of it) that nothing reads: the
 * next run removes it first (vg_rrd_file_conv_cleanup), also for a
 * series that needs no conversion, and says so. Versions before the side
 * name kept the old file as <file>.vigie-convert.old while converting in
 * place: that link is removed when it is the file itself, and left alone
 * (the series failing, naming it) when it is another file. */

/* The side file through the daemon, against what it read before. */
struct side_check {
	struct vg_rrdcd *c;
	const char *name; /* the series' name on the daemon */
	const struct vg_rrd_view *before;
	struct vg_rrd_view *after;
	const struct vg_rrd_layout *lay;
};

static int check_side(void *ctx, const char *side, char *why, size_t whylen)
{
	struct side_check *k = ctx;
	char name[VG_RRDCD_NAME_MAX + 32];
	int rc;

	(void)side;
	snprintf(name, sizeof(name), "%s.vigie-convert", k->name);
	if ((rc = vg_rrd_view_take(k->c, name, k->after, why, whylen)) == -ENOENT) {
		/* the directory is a copy, not the daemon's -b directory */
		snprintf(why, whylen, "the daemon does not see the converted file %.300s "
				      "(is the directory its -b directory?)",
			 name);
		rc = -EIO;
	} else if (!rc && !vg_rrd_view_kept(k->before, k->after, k->lay->archives,
					    k->lay->narchives, k->lay->step_s, why, whylen)) {
		rc = -EIO;
	}
	/* nothing of the side name stays on the daemon */
	if (vg_rrdcd_connected(k->c))
		(void)vg_rrdcd_forget(k->c, name);
	return rc;
}

/* The file of NAME under DIR (resolved), confined there. 0, -ENOENT,
 * -EXDEV (a link on the way or out of DIR), -ENAMETOOLONG. */
static int conv_path(const char *dir, const char *name, char *path, size_t pathlen)
{
	char real[PATH_MAX];
	struct stat st;

	if ((size_t)snprintf(path, pathlen, "%s/%s", dir, name) >= pathlen ||
	    strlen(path) + sizeof(".vigie-convert.old") + 6 > PATH_MAX)
		return -ENAMETOOLONG;
	if (lstat(path, &st))
		return errno == ENOENT ? -ENOENT : -EIO;
	if (!realpath(path, real) || strcmp(real, path) || !S_ISREG(st.st_mode))
		return -EXDEV;
	return 0;
}

/* librrd's INFO of the file here equal to the daemon's (but the name). */
static int same_file(const char *path, const struct vg_rrdcd_info *daemon, char *why,
		     size_t whylen)
{
	struct vg_rrdcd_info mine;
	size_t i, j;
	int rc;

	if ((rc = vg_rrd_file_info(path, &mine))) {
		snprintf(why, whylen, "librrd cannot read %.300s: %s", path, strerror(-rc));
		return 0;
	}
	for (i = j = 0; i < daemon->n || j < mine.n;) {
		if (i < daemon->n && !strcmp(daemon->items[i].key, "filename")) {
			i++;
			continue;
		}
		if (j < mine.n && !strcmp(mine.items[j].key, "filename")) {
			j++;
			continue;
		}
		if (i == daemon->n || j == mine.n || strcmp(daemon->items[i].key, mine.items[j].key) ||
		    strcmp(daemon->items[i].value, mine.items[j].value)) {
			snprintf(why, whylen, "%.300s is not the file the daemon reads: INFO %.60s "
					      "is '%.60s' there, '%.60s' here",
				 path, i < daemon->n ? daemon->items[i].key : mine.items[j].key,
				 i < daemon->n ? daemon->items[i].value : "(none)",
				 j < mine.n ? mine.items[j].value : "(none)");
			vg_rrdcd_info_free(&mine);
			return 0;
		}
		i++;
		j++;
	}
	vg_rrdcd_info_free(&mine);
	return 1;
}

static int rcd_convert(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc,
		       const struct vg_rrd_layout *lay, char *msg, size_t msglen)
{
	struct rcd *r = (struct rcd *)be;
	struct daemon *d = owner_of(r, loc);
	struct vg_rrd_view *before = NULL, *after = NULL;
	struct vg_rrdcd *c = NULL;
	char path[PATH_MAX * 2], why[768] = "", left[512] = "";
	int rc = 0, nleft;

	if (r->conv_owner == SIZE_MAX)
		return -ENOTSUP;
	if (!d || loc->owner != r->conv_owner)
		return -EXDEV;
	if ((rc = conv_path(r->conv_dir, loc->path, path, sizeof(path)))) {
		snprintf(msg, msglen, "%.300s/%.300s: %s (is it %.200s's -b directory?)",
			 r->conv_dir, loc->path,
			 rc == -EXDEV ? "not a regular file of the directory (a symbolic link "
					"on the way, or out of it): left alone"
				      : strerror(-rc),
			 d->addr);
		return rc == -EXDEV || rc == -ENOENT ? -EIO : rc;
	}
	/* what a run killed before its end left beside the file: the file
	 * holds every value (vg_rrd_file_convert_safe) */
	if ((nleft = vg_rrd_file_conv_cleanup(path, left, sizeof(left))) == -EEXIST) {
		snprintf(msg, msglen, "%s", left);
		return -EIO;
	}
	if (nleft > 0)
		snprintf(msg, msglen, "leftovers of a conversion killed before its end: %s", left);
	if (!lay) /* it has the rule's archives: nothing else to do */
		return 0;
	if (!(before = calloc(1, sizeof(*before))) || !(after = calloc(1, sizeof(*after)))) {
		free(before);
		return -ENOMEM;
	}
	if (!(c = client_get(d, &rc))) {
		snprintf(msg, msglen, "%.200s: cannot connect: %s", d->addr, strerror(-rc));
		free(before);
		free(after);
		return -EIO;
	}
	/* 1. what the daemon reads now, with nothing left in its cache */
	count(&d->flushes_by[VG_STORE_FLUSH_CONVERT], 1);
	rc = vg_rrdcd_flush(c, loc->path);
	if (rc && rc != -ENOENT) { /* -EREMOTEIO too: not FLUSHed */
		snprintf(why, sizeof(why), "FLUSH on %.200s: %.300s", d->addr, vg_rrdcd_error(c));
		goto fail;
	}
	if ((rc = vg_rrd_view_take(c, loc->path, before, why, sizeof(why))))
		goto fail;
	/* 2. the file here is that one */
	if (!same_file(path, &before->info, why, sizeof(why))) {
		size_t l = strlen(why);
		snprintf(why + l, sizeof(why) - l, " (is it %.200s's -b directory?)", d->addr);
		rc = -EIO;
		goto fail;
	}
	/* 3. the daemon forgets it; converted under the side name; 4. the
	 * side file checked through the daemon, then renamed over the file */
	rc = vg_rrdcd_forget(c, loc->path);
	if (rc && rc != -ENOENT) { /* -EREMOTEIO too: still cached */
		snprintf(why, sizeof(why), "FORGET on %.200s: %.300s", d->addr, vg_rrdcd_error(c));
		goto fail;
	}
	{
		struct side_check k = {c, loc->path, before, after, lay};
		if ((rc = vg_rrd_file_convert_safe(path, lay, check_side, &k, why, sizeof(why))))
			goto fail;
	}
	if (vg_rrdcd_connected(c))
		(void)vg_rrdcd_forget(c, loc->path);
	client_put(d, c, 0);
	vg_rrd_view_free(before);
	vg_rrd_view_free(after);
	free(before);
	free(after);
	return 0;
fail:
	/* the file was not changed; nothing of it stays cached there */
	if (vg_rrdcd_connected(c))
		(void)vg_rrdcd_forget(c, loc->path);
	snprintf(msg, msglen, "%s", why);
	client_put(d, c, rc);
	vg_rrd_view_free(before);
	vg_rrd_view_free(after);
	free(before);
	free(after);
	return rc == -EAGAIN || rc == -ENOMEM ? rc : rc == -ENOENT ? -ENOENT
								   : -EIO;
}

/* ---- proof of an arrival ------------------------------------------------ */

/* An idle client of d made at or before before_ms (vg_rrdcd_connected_ms),
 * taken out of the pool (the oldest such), its waits bounded by io_ms
 * until client_put gives it back; NULL if none. */
static struct vg_rrdcd *client_older(struct daemon *d, int64_t before_ms, int io_ms)
{
	struct vg_rrdcd *c = NULL;
	size_t best = SIZE_MAX;

	pthread_mutex_lock(&d->mu);
	for (size_t k = 0; k < d->nidle; k++)
		if (vg_rrdcd_connected_ms(d->idle[k]) <= before_ms &&
		    (best == SIZE_MAX ||
		     vg_rrdcd_connected_ms(d->idle[k]) < vg_rrdcd_connected_ms(d->idle[best])))
			best = k;
	if (best != SIZE_MAX) {
		c = d->idle[best];
		memmove(&d->idle[best], &d->idle[best + 1], (d->nidle - best - 1) * sizeof(*d->idle));
		d->nidle--;
	}
	pthread_mutex_unlock(&d->mu);
	if (c)
		(void)vg_rrdcd_set_timeout(c, io_ms);
	return c;
}

/* vg_rrd_backend_ops.flush_before (backend.h): part 2 of "Closing the
 * second" (docs/scaling.md). A host whose last batch another collector
 * P committed at a time its syncs have not verified yet may have values
 * of P's cached by their daemons and nowhere written. A connection of
 * ours made before P sent them, still alive, proves the daemon did not
 * restart since (a restart breaks every connection), so it still holds
 * them, and a FLUSH of each file over it writes them before anything of
 * ours, newer, is sent. Only idle connections are looked at: the pool
 * keeps them until one fails, so this is the usual case; a daemon
 * without one answers -ESTALE before any FLUSH is sent. */
static int rcd_flush_before(struct vg_rrd_backend *be, const struct vg_rrd_loc *locs, size_t n,
			    int64_t before_ms, int64_t deadline_ms)
{
	struct rcd *r = (struct rcd *)be;
	struct vg_rrdcd **conn = calloc(r->nd ? r->nd : 1, sizeof(*conn));
	const char **names = malloc((n ? n : 1) * sizeof(*names));
	int *err = malloc((n ? n : 1) * sizeof(*err));
	int rc = 0;

	if (!conn || !names || !err) {
		free(conn);
		free(names);
		free(err);
		return -ENOMEM;
	}
	/* a connection old enough to every daemon concerned, or nothing */
	for (size_t i = 0; i < n && !rc; i++) {
		size_t o = locs[i].owner;
		if (o >= r->nd || conn[o])
			continue; /* unlisted: nothing of ours is written there */
		if (!(conn[o] = client_older(&r->d[o], before_ms, r->wt_timeout_ms)))
			rc = -ESTALE;
	}
	size_t failed = SIZE_MAX; /* the daemon whose FLUSH failed */
	int slow = 0;             /* ... by its timeout */
	int late = 0;             /* ... past deadline_ms */
	for (size_t o = 0; o < r->nd && !rc; o++) {
		struct daemon *d = &r->d[o];
		size_t k = 0;
		if (!conn[o])
			continue;
		/* the whole proof's bound, over every daemon's BATCHes: a
		 * daemon answering each within its own timeout (slow, or many
		 * files) must not hold the receiver past it. Looked at between
		 * BATCHes only, never inside a wait: a wait cut there leaves
		 * its answers unread, so its connection is closed, and it was
		 * the old connection the proof needs: every later proof of a
		 * host from that collector then found none (-ESTALE) and
		 * waited for its verified row, which a stopped collector never
		 * writes (held_host_test, load 5-10: "the host's batches go to
		 * the other collector" failed, the host answered RETRY). So
		 * the bound is deadline_ms plus one BATCH's own wait */
		for (size_t i = 0; i < n; i++)
			if (locs[i].owner == o)
				names[k++] = locs[i].path;
		for (size_t off = 0; off < k && !rc; off += FLUSH_BATCH) {
			size_t m = k - off < FLUSH_BATCH ? k - off : FLUSH_BATCH;
			struct vg_rrdcd_batch_result br;
			if (deadline_ms && vg_monotonic_ms() >= deadline_ms) {
				rc = -ETIMEDOUT; /* nothing sent: the connection is idle */
				late = 1;
				break;
			}
			count(&d->flushes_by[VG_STORE_FLUSH_ARRIVAL], m);
			rc = vg_rrdcd_flush_many(conn[o], names + off, m, err, &br);
			slow = rc == -ETIMEDOUT;
			if (!rc && !vg_rrdcd_connected(conn[o]))
				rc = -ENOTCONN;
			for (size_t j = 0; j < m && !rc; j++)
				if (err[j] && err[j] != -ENOENT && err[j] != -EREMOTEIO)
					rc = err[j]; /* a file it has and could not write */
		}
		if (rc) {
			failed = o;
			rc = late ? -ETIMEDOUT : -EHOSTUNREACH;
		}
	}
	/* A FLUSH that timed out (its own wait) closes its
	 * connection only (answers may be
	 * left unread on it): no back-off, the daemon not marked down, it
	 * was only slow (a BATCH of many files within the receiver's
	 * bound). One that broke (the daemon restarted) is a failed call
	 * as any other's (client_broken: the daemon is suspect, so the
	 * next connection's check FORGETs); one that refused a file goes
	 * back to the pool. Either way the proof fails and the host waits */
	for (size_t o = 0; o < r->nd; o++) {
		if (!conn[o])
			continue;
		if (o == failed && slow) {
			count(&r->d[o].calls, 1);
			vg_rrdcd_close(conn[o]);
		} else { /* a broken one: client_broken */
			client_put(&r->d[o], conn[o], 0);
		}
	}
	free(conn);
	free(names);
	free(err);
	return rc;
}

/* vg_rrd_backend_ops.warm: a daemon with no idle connection, not in its
 * back-off and with no failed call since its last check gets one (made
 * and checked as client_get does), back in the pool. A daemon that
 * fails is left to the callers that need it. */
static void rcd_warm(struct vg_rrd_backend *be)
{
	struct rcd *r = (struct rcd *)be;

	for (size_t o = 0; o < r->nd; o++) {
		struct daemon *d = &r->d[o];
		struct vg_rrdcd *c;
		size_t idle;
		int rc = 0;
		pthread_mutex_lock(&d->mu);
		idle = d->nidle;
		pthread_mutex_unlock(&d->mu);
		/* not a daemon that failed since its last check: the storage
		 * thread reaches it again when it has something for it (and
		 * checks its files then, FORGETting) */
		if (idle || __atomic_load_n(&d->suspect, __ATOMIC_RELAXED) ||
		    vg_monotonic_ms() < __atomic_load_n(&d->down_until_ms, __ATOMIC_RELAXED))
			continue;
		if ((c = client_get(d, &rc)))
			client_put(d, c, 0);
	}
}

static const struct vg_rrd_backend_ops rcd_ops = {
	.name = "rrdcached",
	.locate = rcd_locate,
	.last_ms = rcd_last_ms,
	.create = rcd_create,
	.update = rcd_update,
	.update_many = rcd_update_many,
	.prefetch = rcd_prefetch,
	.info = rcd_info,
	.fetch = rcd_fetch,
	.convert = rcd_convert,
	.remove = rcd_remove,
	.sync = rcd_sync,
	.replay_note = rcd_replay_note,
	.lost = rcd_lost,
	.resent = rcd_resent,
	.flush_before = rcd_flush_before,
	.warm = rcd_warm,
	.get_stats = rcd_get_stats,
	.close = rcd_close,
};

/* Load the owners file: later lines win (a series moved is recorded
 * again). */
static int owners_load(struct rcd *r, const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "re");
	char line[VG_RRDCD_NAME_MAX + 300];

	if (!fp)
		return errno == ENOENT ? 0 : -errno;
	while (fgets(line, sizeof(line), fp)) {
		char *sp = strchr(line, ' '), *nl = strchr(line, '\n');
		if (!sp || !nl) /* a line torn by a crash: its create is redone */
			continue;
		*sp = *nl = '\0';
		if (!strcmp(line, "-")) { /* a deleted series (owner_note) */
			owner_del(r, sp + 1);
			continue;
		}
		if (owner_put(r, sp + 1, line)) {
			fclose(fp);
			snprintf(err, errlen, "store: out of memory");
			return -ENOMEM;
		}
	}
	fclose(fp);
	return 0;
}

int vg_rrd_rrdcached_open(const char *daemons, const char *base, const char *owners_path,
			  struct vg_rrd_backend **out, char *err, size_t errlen)
{
	struct rcd *r;
	char list[4096], *save = NULL, *tok;
	int rc;

	*out = NULL;
	if (!daemons || (size_t)snprintf(list, sizeof(list), "%s", daemons) >= sizeof(list)) {
		snprintf(err, errlen, "store: [storage] daemons is missing or too long");
		return -EINVAL;
	}
	if (!(r = calloc(1, sizeof(*r))) || !(r->d = calloc(64, sizeof(*r->d)))) {
		free(r);
		snprintf(err, errlen, "store: out of memory");
		return -ENOMEM;
	}
	r->be.ops = &rcd_ops;
	r->owners_fd = -1;
	r->conv_owner = SIZE_MAX;
	r->wt_timeout_ms = WT_TIMEOUT_MS;
	pthread_mutex_init(&r->mu, NULL);
	vg_hmap_init(&r->owners);
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		size_t len = strlen(tok);
		while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
			tok[--len] = '\0';
		if (!len)
			continue;
		if (r->nd == 64 || len >= sizeof(r->d[0].addr)) {
			snprintf(err, errlen, "store: too many daemons or address too long");
			rcd_close(&r->be);
			return -EINVAL;
		}
		struct daemon *d = &r->d[r->nd++];
		memcpy(d->addr, tok, len + 1);
		pthread_mutex_init(&d->mu, NULL);
		pthread_mutex_init(&d->vmu, NULL);
		pthread_rwlockattr_t ra; /* a waiting FORGET check goes first */
		pthread_rwlockattr_init(&ra);
		pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&d->smu, &ra);
		pthread_rwlockattr_destroy(&ra);
		sent_init(&d->sent);
		sent_init(&d->spare);
		d->check_max_ms = CHECK_MAX_MS;
		d->verify_writes = 1;
		vg_hmap_init(&d->lost);
		vg_hmap_init(&d->resend);
		vg_hmap_init(&d->jtimes);
		vg_hmap_init(&d->unwritten_logged);
		vg_hmap_init(&d->rpre);
		vg_hmap_init(&d->nodir);
	}
	if (!r->nd) {
		snprintf(err, errlen, "store: backend rrdcached needs [storage] daemons");
		rcd_close(&r->be);
		return -EINVAL;
	}
	if (base)
		snprintf(r->base, sizeof(r->base), "%s", base);
	for (size_t o = 0; o < r->nd; o++)
		r->d[o].base = r->base;
	if (owners_path) {
		snprintf(r->owners_path, sizeof(r->owners_path), "%s", owners_path);
		if ((rc = owners_load(r, owners_path, err, errlen)) ||
		    ((r->owners_fd = open(owners_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
					  0600)) < 0 &&
		     (rc = -errno))) {
			if (!*err)
				snprintf(err, errlen, "store: %s: %s", owners_path, strerror(-rc));
			rcd_close(&r->be);
			return rc;
		}
	}
	*out = &r->be;
	return 0;
}

/* ---- the shared placement record ------------------------------------------ */

/* vg_placement_upload's callback: the record wins, said once per name. */
static void upload_conflict(void *ctx, const char *name, const char *mine, const char *recorded)
{
	struct rcd *r = ctx;

	vg_warn("storage placement: %s: the owners file here says %s, the shared record "
		"says %s: using %s (the shared record wins; a `storage move` run by "
		"another collector does this)",
		name, mine, recorded, recorded);
	owner_note(r, name, recorded);
}

/* Upload the owners file to the shared record (every start: entries
 * already recorded cost nothing but the round trip; a deployment from
 * before the shared record converges). Reads the file again for the
 * addresses not configured (the map keeps no string for them). 0, or
 * -errno with upload_pending left set (retried at the next sync). */
static int owners_upload(struct rcd *r)
{
	struct vg_hmap m;
	const struct vg_hmap_entry *e;
	const char **names = NULL, **addrs = NULL;
	char line[VG_RRDCD_NAME_MAX + 300];
	size_t n = 0, pos = 0;
	FILE *fp;
	int rc = 0;

	if (!r->owners_path[0] || !(fp = fopen(r->owners_path, "re"))) {
		__atomic_store_n(&r->upload_pending, 0, __ATOMIC_RELAXED);
		return 0;
	}
	vg_hmap_init(&m);
	while (!rc && fgets(line, sizeof(line), fp)) {
		char *sp = strchr(line, ' '), *nl = strchr(line, '\n'), *a;
		if (!sp || !nl)
			continue;
		*sp = *nl = '\0';
		free(vg_hmap_dels(&m, sp + 1));
		if (strcmp(line, "-") && (!(a = strdup(line)) || vg_hmap_puts(&m, sp + 1, a))) {
			free(a);
			rc = -ENOMEM;
		}
	}
	fclose(fp);
	if (!rc && (!(names = calloc(vg_hmap_count(&m) + 1, sizeof(*names))) ||
		    !(addrs = calloc(vg_hmap_count(&m) + 1, sizeof(*addrs)))))
		rc = -ENOMEM;
	while (!rc && (e = vg_hmap_next(&m, &pos))) {
		names[n] = e->key;
		addrs[n++] = e->value;
	}
	if (!rc)
		rc = vg_placement_upload(r->shared, names, addrs, n, upload_conflict, r);
	__atomic_store_n(&r->upload_pending, rc != 0, __ATOMIC_RELAXED);
	free(names);
	free(addrs);
	free_values(&m);
	return rc;
}

int vg_rrd_rrdcached_share(struct vg_rrd_backend *be, const char *state_url, char *err,
			   size_t errlen)
{
	struct rcd *r = (struct rcd *)be;
	int rc;

	if (!be || be->ops != &rcd_ops || r->shared) {
		snprintf(err, errlen, "store: no rrdcached backend to share");
		return -EINVAL;
	}
	if ((rc = vg_placement_open(state_url, &r->shared, err, errlen)))
		return rc;
	r->upload_pending = 1;
	if ((rc = owners_upload(r)) == -ENOMEM) {
		snprintf(err, errlen, "store: out of memory");
		return rc;
	}
	return 0; /* the database down: uploaded at a later sync */
}

void vg_rrd_rrdcached_placement(struct vg_rrd_backend *be, struct vg_store_placement *out)
{
	struct rcd *r = (struct rcd *)be;

	memset(out, 0, sizeof(*out));
	if (be && be->ops == &rcd_ops)
		vg_placement_get_stats(r->shared, out);
}

/* The receiver's bound on a daemon: a quarter of the agents' ack timeout,
 * kept between WT_TIMEOUT_MIN_MS and the I/O timeout. Returns it (0: not
 * an rrdcached backend). */
uint32_t vg_rrd_rrdcached_write_through_timeout(struct vg_rrd_backend *be,
						uint32_t ack_timeout_ms)
{
	uint32_t ms = ack_timeout_ms / 4;

	if (!be || be->ops != &rcd_ops)
		return 0;
	ms = ms < WT_TIMEOUT_MIN_MS ? WT_TIMEOUT_MIN_MS : ms > IO_TIMEOUT_MS ? IO_TIMEOUT_MS
									     : ms;
	((struct rcd *)be)->wt_timeout_ms = (int)ms;
	return ms;
}

void vg_rrd_rrdcached_set_deadline(struct vg_rrd_backend *be, int64_t deadline_ms)
{
	if (be && be->ops == &rcd_ops)
		((struct rcd *)be)->rx_deadline_ms = deadline_ms;
}

int vg_rrd_rrdcached_verify_writes(struct vg_rrd_backend *be, int on)
{
	struct rcd *r = (struct rcd *)be;

	if (!be || be->ops != &rcd_ops)
		return -EINVAL;
	for (size_t i = 0; i < r->nd; i++)
		__atomic_store_n(&r->d[i].verify_writes, !!on, __ATOMIC_RELAXED);
	return 0;
}

uint32_t vg_rrd_rrdcached_check_bound(struct vg_rrd_backend *be, uint32_t ms)
{
	struct rcd *r = (struct rcd *)be;

	if (!be || be->ops != &rcd_ops)
		return 0;
	if (!ms)
		ms = CHECK_MAX_MS;
	for (size_t i = 0; i < r->nd; i++)
		__atomic_store_n(&r->d[i].check_max_ms, ms, __ATOMIC_RELAXED);
	return ms;
}

struct unlisted_acc {
	struct rcd *r;
	struct vg_store_unlisted *out;
	size_t max, n;
};

static void unlisted_each(void *ctx, const char *addr, uint64_t names)
{
	struct unlisted_acc *a = ctx;

	if (addr_index(a->r, addr) != SIZE_MAX || a->n >= a->max)
		return;
	snprintf(a->out[a->n].address, sizeof(a->out[0].address), "%s", addr);
	a->out[a->n++].series = names;
}

size_t vg_rrd_rrdcached_unlisted(struct vg_rrd_backend *be, struct vg_store_unlisted *out,
				 size_t max, int ask_record)
{
	struct rcd *r = (struct rcd *)be;
	size_t n = 0;

	if (!be || be->ops != &rcd_ops)
		return 0;
	if (ask_record && r->shared) {
		struct unlisted_acc a = {r, out, max, 0};
		if (!vg_placement_addresses(r->shared, unlisted_each, &a))
			return a.n;
	}
	pthread_mutex_lock(&r->mu);
	for (size_t k = 0; k < r->nunlisted && n < max; k++) {
		if (!r->unlisted[k].series)
			continue;
		snprintf(out[n].address, sizeof(out[n].address), "%s", r->unlisted[k].addr);
		out[n++].series = r->unlisted[k].series;
	}
	pthread_mutex_unlock(&r->mu);
	return n;
}

int vg_rrd_rrdcached_load_owners(struct vg_rrd_backend *be, const char *path)
{
	struct rcd *r = (struct rcd *)be;
	char err[128];
	int rc;

	if (!be || be->ops != &rcd_ops || !path)
		return -EINVAL;
	pthread_mutex_lock(&r->mu);
	rc = owners_load(r, path, err, sizeof(err));
	pthread_mutex_unlock(&r->mu);
	return rc;
}

/* Each daemon's state for health and metrics. */
size_t vg_rrd_rrdcached_state(struct vg_rrd_backend *be, struct vg_store_daemon *out,
			      size_t max)
{
	struct rcd *r = (struct rcd *)be;
	size_t n = 0;

	if (!be || be->ops != &rcd_ops)
		return 0;
	for (; n < r->nd && n < max; n++) {
		struct daemon *d = &r->d[n];
		snprintf(out[n].address, sizeof(out[n].address), "%s", d->addr);
		out[n].up = __atomic_load_n(&d->up, __ATOMIC_RELAXED);
		out[n].errors = __atomic_load_n(&d->errors, __ATOMIC_RELAXED);
		out[n].calls = __atomic_load_n(&d->calls, __ATOMIC_RELAXED);
		out[n].repairs = __atomic_load_n(&d->repairs, __ATOMIC_RELAXED);
		out[n].checks_cut = __atomic_load_n(&d->checks_cut, __ATOMIC_RELAXED);
		out[n].overtaken = __atomic_load_n(&d->overtaken, __ATOMIC_RELAXED);
		out[n].flush_refused = __atomic_load_n(&d->flush_refused, __ATOMIC_RELAXED);
		out[n].vanished = __atomic_load_n(&d->vanished, __ATOMIC_RELAXED);
		out[n].unwritten = __atomic_load_n(&d->unwritten, __ATOMIC_RELAXED);
		out[n].readback_local = __atomic_load_n(&d->rb_local, __ATOMIC_RELAXED);
		out[n].readback_info = __atomic_load_n(&d->rb_info, __ATOMIC_RELAXED);
		out[n].round_trips_skipped = __atomic_load_n(&d->rtt_skips, __ATOMIC_RELAXED);
		out[n].resend_watch = __atomic_load_n(&d->nresend, __ATOMIC_ACQUIRE);
		for (int k = 0; k < VG_STORE_FLUSH_N; k++)
			out[n].flushes_by[k] = __atomic_load_n(&d->flushes_by[k], __ATOMIC_RELAXED);
		pthread_mutex_lock(&d->mu);
		out[n].pending = vg_hmap_count(&d->sent.map);
		out[n].lost = vg_hmap_count(&d->lost);
		snprintf(out[n].error, sizeof(out[n].error), "%s",
			 d->create_err[0] ? d->create_err : d->err);
		out[n].cannot_create = d->create_err[0] != '\0';
		snprintf(out[n].flush_refusal, sizeof(out[n].flush_refusal), "%s", d->refusal);
		out[n].flush_refusing = d->refusal[0] != '\0';
		pthread_mutex_unlock(&d->mu);
		out[n].create_errors = __atomic_load_n(&d->create_errors, __ATOMIC_RELAXED);
	}
	return n;
}

int vg_rrd_rrdcached_convert_dir(struct vg_rrd_backend *be, const char *address,
				 const char *dir, char *err, size_t errlen)
{
	struct rcd *r = (struct rcd *)be;
	char real[PATH_MAX];
	struct stat st;
	size_t idx;

	if (!be || be->ops != &rcd_ops) {
		snprintf(err, errlen, "the %s backend converts its own files",
			 be ? be->ops->name : "(no)");
		return -ENOTSUP;
	}
	if ((idx = addr_index(r, address)) == SIZE_MAX) {
		snprintf(err, errlen, "%.200s is not one of [storage] daemons (written as there)",
			 address);
		return -EINVAL;
	}
	if (stat(dir, &st) || !S_ISDIR(st.st_mode) || !realpath(dir, real)) {
		snprintf(err, errlen, "%.300s: not a directory", dir);
		return -ENOTDIR;
	}
	snprintf(r->conv_dir, sizeof(r->conv_dir), "%s", real);
	r->conv_owner = idx;
	return 0;
}
