/*
 * backend.h — the store's RRD engine: one table of operations (private to
 * the collector core; the API reads through vg_store_fetch/vg_store_path).
 *
 * The store (collector/store.c) decides what to write and when: the series
 * table, the write-behind cache, the flusher thread, the journal policy.
 * A backend only moves values to and from one engine, so every engine is
 * one file that fills in struct vg_rrd_backend_ops:
 *   files      collector/backend_files.c: local librrd files (the default),
 *              with the header undo that makes librrd's in-place updates
 *              safe against a kill -9;
 *   rrdcached  collector/backend_rrdcached.c: one or more rrdcached
 *              daemons over collector/rrdcached.c, series placed by
 *              rendezvous hashing and their owner recorded at create
 *              (in the shared PostgreSQL state when several collectors
 *              share the daemons: collector/placement.c).
 * Callers never test which engine they have (docs/architecture.md).
 *
 * Locating a series. locate() names a series' place once, from its key:
 * a path (for librrd and for rrd_graph's DEF) and an owner (the index of
 * the daemon that holds it; always 0 for files) with that owner's address
 * (NULL for files: rrd_graph reads the path itself; "unix:/run/x.sock" for
 * rrdcached: rrd_graph --daemon). Every other operation takes the
 * struct vg_rrd_loc locate() filled, so an engine that records ownership
 * at create time can keep it in loc.owner.
 *
 * Durability. A value is *accepted* when update() returns with it counted
 * in res->written: later fetches see it. It is *durable* only after a
 * sync() that started after the update returned and succeeded: the
 * store's journal keeps every segment until then (files: syncfs;
 * rrdcached: FLUSH of every file updated, then its last update checked
 * against what the daemon accepted). A sync that fails leaves the
 * segments in the journal, replayed after a crash.
 *
 * Lost values. An engine may lose values it accepted (rrdcached restarted
 * before writing them, without its -j journal). Such an engine reports
 * the series through lost() with the newest time it still holds, and
 * answers every update of them "unavailable" (res->unavailable) until the
 * store has put the lost values back in front of its cache (from its
 * journal, whose segments no sync let go meanwhile) and called resent().
 * No value newer than a lost one reaches the engine before that, since a
 * newer value would make the lost ones impossible to write.
 *
 * Errors per item. update() never lets one refused value take others with
 * it: it reports how many values it wrote, skipped as already stored
 * (at or before the series' last update) and could not write, by reason
 * (enum vg_store_err), with the last engine message. A file that is gone
 * (deleted by hand or by a disk fault while the store runs) is not a
 * failure: its values are answered missing (res->missing), for the store
 * to create the file again and send them; so is a file whose series'
 * own directory is gone with it, its type directory there (an operator's
 * rm -r of one resource). A file whose type directory is gone with it
 * (that directory or one above it: a data volume unmounted, a type
 * directory renamed away), or whose directory is another file system
 * mounted in the store's place (the files backend: a device other than
 * the one its type directory was first seen on), is not deleted but out
 * of reach: its values are answered unavailable (res->dir_missing of them), and the store
 * keeps them until the directory is back. A call that fails for want of
 * a file descriptor or memory (EMFILE, ENFILE, ENOMEM: the files
 * backend) is not the file's fault either: its values are answered
 * unavailable, kept and retried, and last_ms and create answer -EAGAIN
 * (the batch waits). update_many() (may be
 * NULL: the store then calls update() per series) does the same for many
 * series in one round trip, one result per item.
 *
 * Thread-safety: every operation may be called from several threads at
 * once, but never for the same series concurrently (the store flushes a
 * series from one thread at a time, and creates from the receiver only).
 * Operations return 0 or a negative errno; they do not log.
 */
#ifndef VIGIE_COLLECTOR_BACKEND_H
#define VIGIE_COLLECTOR_BACKEND_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "vigie/config.h"
#include "vigie/store.h"

struct vg_rrd_backend;

/* Where a series lives. */
struct vg_rrd_loc {
	char path[PATH_MAX];  /* file (files) or path under the daemon's -b */
	uint32_t owner;       /* engine's index of the holder (daemon); 0 */
	const char *address;  /* owner's address for rrd_graph --daemon, or
			       * NULL: read path directly (files). Owned by
			       * the backend, valid until it is closed. */
	const char *recorded; /* the address the placement record names when
			       * it is not in [storage] daemons (owner is
			       * then out of range), else NULL. Owned by the
			       * backend, valid until it is closed. */
	/* The time of the first value this collector stored for the series
	 * since its host was last acknowledged elsewhere (the store's
	 * series.arrived_ms; INT64_MIN: none known). Set by the store on
	 * the loc of an update after locate (which sets INT64_MIN). Values
	 * before it that a daemon holds cached may be another collector's:
	 * the rrdcached check after a failure never FORGETs them
	 * (backend_rrdcached.c overtaken_check). Other engines ignore it. */
	int64_t arrived_ms;
	/* Set by the store with arrived_ms (locate sets 0): the series' host
	 * arrived from another collector and its file was not FLUSHed on
	 * its daemon since. The engine then FLUSHes it before sending any
	 * value of the call, so that the previous collector's values the
	 * daemon holds cached reach the file before ours, newer, do (a
	 * daemon that loses them later cannot make them refused as older
	 * than ours: docs/scaling.md, form 3), and says so in
	 * vg_rrd_result.flushed; an item of the receiver's write-through
	 * (vg_rrd_item.no_connect) is not FLUSHed there but answered
	 * unavailable, for the storage thread to FLUSH and write. Other
	 * engines ignore it. */
	int flush_first;
};

/* One timestamped value (t_ms strictly increasing within a call). */
struct vg_rrd_value {
	int64_t t_ms;
	double v;
};

/* What a create lays out: one data source "value" (GAUGE, or DDERIVE with
 * minimum 0 for counters) and AVERAGE, MIN and MAX per archive. */
struct vg_rrd_layout {
	uint32_t step_s;
	uint32_t heartbeat_s;
	const struct vg_archive *archives;
	size_t narchives;
};

/* The outcome of one update (or one item of update_many). */
struct vg_rrd_result {
	uint64_t written;   /* accepted (see Durability) */
	uint64_t duplicate; /* at or before the last update */
	uint64_t failed;    /* sum of failed_by */
	uint64_t failed_by[VG_STORE_ERR_N];
	uint64_t retries;     /* refused calls retried */
	uint64_t unavailable; /* not sent: the engine (its
					      * daemon) could not be reached;
					      * always the last values of the
					      * call; the store retries them */
	uint64_t missing;     /* not written: the series' file does not
			       * exist (deleted under the engine while the
			       * store knows the series); always the last
			       * values of the call, after any written, and
			       * not in failed: the store creates the file
			       * again and writes them (group_write) */
	uint64_t dir_missing; /* of unavailable: not sent because the
			       * type directory of a file that is missing
			       * is missing too (a data volume unmounted, a
			       * directory renamed away, on the engine's
			       * disk): never missing, so that no fresh file
			       * shadows the real one when it is back; the
			       * store keeps them and retries */
	uint64_t cut;         /* of unavailable: not sent because the
			       * receiver's batch deadline came first
			       * (vg_rrd_item.deadline_ms): the daemon is
			       * not known unreachable, no back-off */
	uint64_t dir_unknown; /* of dir_missing: the engine could not tell
			       * whether that directory is there (an
			       * rrdcached that refused or failed its LIST:
			       * msg says its answer); kept and retried as
			       * dir_missing, never created again */
	char msg[512];        /* "<path>: why" of the last
					      * failure, "" if none */
	int flushed;          /* loc.flush_first was honoured: the file
			       * was FLUSHed before any value was sent */
};

/* One item of update_many. */
struct vg_rrd_item {
	const struct vg_rrd_loc *loc;
	const struct vg_rrd_value *v;
	size_t n;
	struct vg_rrd_result res; /* filled by the backend (zeroed first) */
	/* update_many only: nonzero never to connect to a daemon that
	 * failed and has not answered a call since (down, restarting,
	 * stalled), so never to verify a restarted daemon's files (what a
	 * new connection does first, a FLUSH and an INFO per file sent to
	 * it since its last sync: seconds for thousands of files): only
	 * connections already verified, or a new one to a daemon that is
	 * up. Values that would need more answer unavailable, and so do
	 * items of more than one UPDATE's values (a backlog). The store's
	 * write-through on the receiver thread
	 * sets it, so a daemon that is down or restarting never holds an
	 * agent's ack past its timeout (the agent would move to another
	 * collector, which would write newer values before these); the
	 * storage thread connects and verifies. An engine without
	 * connections ignores it. */
	int no_connect;
	/* with no_connect: the receiver's batch deadline (vg_monotonic_ms;
	 * 0: none). No round trip starts after it, and each wait is bounded
	 * by the time left as well as by the write-through's own bound:
	 * what is not sent answers unavailable (the storage thread's). */
	int64_t deadline_ms;
};

/* A series' key (prefetch). */
struct vg_rrd_key {
	int rtype;
	const char *id;
	const char *metric;
};

/* An archive of one consolidation function, as info() reads it. */
struct vg_rrd_archive {
	uint32_t res_s;
	time_t cal_start; /* oldest time the archive still covers */
};

struct vg_rrd_info {
	int kind;           /* VG_KIND_GAUGE or VG_KIND_COUNTER */
	unsigned long step; /* s */
	time_t last_update; /* whole seconds */
	struct vg_rrd_archive rra[32];
	size_t nrra;
};

/* Rows of one archive: rows[k] covers (start + k*step, start+(k+1)*step]. */
struct vg_rrd_rows {
	time_t start, end;
	unsigned long step;
	size_t n;
	double *v; /* malloc'd; free() it */
};

/* A series whose engine lost values it had accepted (see Lost values). */
struct vg_rrd_lost {
	char path[PATH_MAX]; /* loc.path */
	uint32_t owner;      /* loc.owner */
	int64_t have_ms;     /* newest time the engine still holds, INT64_MIN
			      * if its file is gone */
};

/* Counters of the engine itself (read with __atomic loads). */
struct vg_rrd_backend_stats {
	uint64_t files_created;
	uint64_t calls;            /* engine update calls (rrd_update_r) */
	uint64_t write_ns_total;   /* time spent in them */
	uint64_t headers_restored; /* files: undo slots put back at open */
};

/* Flags of last_ms and create. VG_RRD_RECEIVER: the receiver thread
 * opens a series new to the store while an agent waits for its ack. Every
 * wait on a daemon is then bounded as the receiver's write-through is
 * (vg_rrd_rrdcached_write_through_timeout: a quarter of the agents' ack
 * timeout), also over a connection already held and for a verification
 * of the daemon running on another thread: what runs out answers
 * -EHOSTUNREACH, and the store answers the batch RETRY
 * (nothing journaled, nothing acknowledged; the agent re-sends it). An
 * engine without daemons ignores it. */
#define VG_RRD_RECEIVER 1
/* Flag of last_ms: the store's start replay opens a series its journal
 * holds values of, after replay_note named them all. Every journaled
 * value past the answer is then cached and sent again, in order, so an
 * engine that found the file lost (backend.h "Lost values") answers what
 * the file itself holds and no longer holds its updates back: the replay
 * is the re-send. Engines without replay_note ignore it. */
#define VG_RRD_REPLAY 2
/* Flag of create: the series is not new, its file is missing (the store's
 * start replay opens a series its journal holds values of, or the store
 * opens a series it had before a restart: store.c "series known
 * before"). If the file's
 * type directory is missing too (it or one above it, up to the data
 * directory or the daemon's -b; files: or on another device than
 * recorded), or the engine cannot tell (an rrdcached that
 * refuses or fails the LIST of it), nothing is created: -ENOTDIR, msg
 * says why. The store then keeps its values as for a directory gone
 * (res.dir_missing), so no fresh file shadows the real one once it is
 * back. Without it a create makes the directories it needs. */
#define VG_RRD_KNOWN 4

struct vg_rrd_backend_ops {
	const char *name; /* "files", "rrdcached" */

	/* Fill loc for (rtype, id, metric). 0, -EINVAL (bad name),
	 * -ENAMETOOLONG. files: pure, no I/O; an engine that records the
	 * owner when a series is created (rrdcached's placement) fills
	 * loc->owner from that record, or from its placement rule for a
	 * series it has not seen (the store copies the owner into its
	 * series table at create and passes it back on every update). */
	int (*locate)(struct vg_rrd_backend *be, int rtype, const char *id,
		      const char *metric, struct vg_rrd_loc *loc);
	/* Time of the series' last update in ms, exact to the millisecond
	 * (rounded to the nearest: librrd keeps .229 s as 228999 us).
	 * flags: VG_RRD_RECEIVER, VG_RRD_REPLAY or 0. 0, -ENOENT (no such series), -EIO
	 * (exists, unreadable), -EHOSTUNREACH (its daemon does not answer,
	 * or not within the receiver's bound); with VG_RRD_REPLAY also
	 * -ETIMEDOUT (its daemon answers, but the check replay_note asked
	 * for reached its bound, [storage] check_max, before the series
	 * could be read: it goes on at a later connection). */
	int (*last_ms)(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc,
		       int64_t *out, int flags);
	/* Create the series, first accepted time after first_ms - 1 s; never
	 * over an existing file (an existing one answers 0: a create again
	 * is always safe). flags: VG_RRD_RECEIVER, VG_RRD_KNOWN or 0.
	 * 0, -ENOTDIR (VG_RRD_KNOWN: its directory missing), -EAGAIN (no
	 * space, the placement record does not answer, or the daemon cannot
	 * create the file's directories, an rrdcached without -R: retry
	 * later),
	 * -EHOSTUNREACH (its daemon could not be reached or did not answer
	 * in time: it may or may not have done the create, so the caller
	 * retries it later, never counts the series as failed), -EIO; msg
	 * gets why. */
	int (*create)(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc,
		      int kind, int64_t first_ms, const struct vg_rrd_layout *lay,
		      char *msg, size_t msglen, int flags);
	/* Write v[0..n) to one series, many per engine call. Never fails as
	 * a whole: res says what happened to each value (see the top). */
	void (*update)(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc,
		       const struct vg_rrd_value *v, size_t n,
		       struct vg_rrd_result *res);
	/* Optional (NULL: update per item): many series in one round trip. */
	void (*update_many)(struct vg_rrd_backend *be, struct vg_rrd_item *items,
			    size_t n);
	/* Optional (NULL: nothing to do): the receiver is about to open
	 * (locate, then read or create) the series keys[0..n), not yet in the
	 * store's table. An engine whose placement record is remote
	 * (rrdcached with the shared record) fetches and claims their owners
	 * now, in one round trip for all, instead of one per series. Errors
	 * are the engine's to count; the opens that follow behave as without
	 * it. Receiver thread, no store lock held. */
	void (*prefetch)(struct vg_rrd_backend *be, const struct vg_rrd_key *keys, size_t n);
	/* Archives of consolidation function cf (enum vg_cf) and the kind.
	 * 0, -ENOENT, -EIO, -EHOSTUNREACH, or -EREMOTEIO: the series'
	 * daemon answers but refused to FLUSH or read its file (a fault of
	 * that daemon or file, not a missing series). */
	int (*info)(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc,
		    int cf, struct vg_rrd_info *out);
	/* Rows of the archive of cf at exactly step_s over (start, end].
	 * 0, -EIO, -ENOMEM; out->v owned by the caller. */
	int (*fetch)(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc,
		     int cf, time_t start, time_t end, unsigned long step_s,
		     struct vg_rrd_rows *out);
	/* Optional (NULL: this engine cannot; the store answers -ENOTSUP):
	 * rewrite the series with layout lay ([archives] rules changed),
	 * keeping its data source's state and every row of the archives both
	 * layouts have (same consolidation function and resolution) that the
	 * new one still retains; new archives are filled from the old ones.
	 * Never while the series is written; single-threaded (librrd's
	 * modify parses with getopt). rrdcached: only the series of the
	 * daemon given to vg_rrd_rrdcached_convert_dir, through that
	 * directory, verified through the daemon (-ENOTSUP without one,
	 * -EXDEV for another daemon's series; backend_rrdcached.c). First
	 * it removes what a conversion killed before its end left beside the
	 * file (vg_rrd_file_conv_cleanup, collector/rrd_file.h), then
	 * converts with vg_rrd_file_convert_safe; lay NULL (the series has
	 * its rule's archives) does only the first. 0 (msg then says which
	 * leftovers it removed, "" if none), -ENOENT, -EAGAIN (no space),
	 * -EIO; msg gets why. */
	int (*convert)(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc,
		       const struct vg_rrd_layout *lay, char *msg, size_t msglen);
	/* Optional (NULL: -ENOTSUP): series, bytes, free space and bytes of
	 * series created at or after since_s, per disk or daemon
	 * (vg_store_usage). 0 or -errno. */
	int (*usage)(struct vg_rrd_backend *be, int64_t since_s,
		     struct vg_store_usage *out);
	/* Delete the series. 0, -ENOENT, -EIO. */
	int (*remove)(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc);
	/* Make every value accepted before the call durable. 0 or -errno
	 * (then the journal keeps its segments). */
	int (*sync)(struct vg_rrd_backend *be);
	/* Optional (NULL: nothing to check). The store's start replay, before
	 * it opens any series: its journal holds values of loc from first_ms
	 * to newest_ms (the oldest and newest it holds of the series) that no
	 * sync proved durable (the store was killed before its sync). An
	 * engine that may have taken them and lost some (rrdcached: a daemon
	 * restarted meanwhile whose -j replay skipped one,
	 * backend_rrdcached.c "A replay that skips a value") checks these
	 * files as after a failed call before it answers any last_ms, so
	 * that last_ms with VG_RRD_REPLAY answers what each file holds, not
	 * what the engine would write over a gap. arrived_ms: the newest
	 * time of a journaled batch whose host arrived from another
	 * collector (as vg_rrd_loc.arrived_ms; INT64_MIN: none journaled):
	 * values the engine holds of loc older than it may be that
	 * collector's, not ours, whatever first_ms says. times[0..ntimes):
	 * every journaled time of loc, ascending, distinct (the engine tells
	 * by them a prefix of ours it lost from values of ours it holds).
	 * Single-threaded (the store opens), before any other call but
	 * locate. */
	void (*replay_note)(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc,
			    int64_t first_ms, int64_t newest_ms, int64_t arrived_ms,
			    const int64_t *times, size_t ntimes);
	/* Optional (NULL: the engine never loses an accepted value). The
	 * series whose accepted values were lost: fills out[0..max) and
	 * returns how many there are (may be more than max). Thread-safe. */
	size_t (*lost)(struct vg_rrd_backend *be, struct vg_rrd_lost *out, size_t max);
	/* The store re-queued the lost values of l (or has no such series):
	 * its updates go through again. */
	void (*resent)(struct vg_rrd_backend *be, const struct vg_rrd_lost *l);
	/* Optional (NULL: -ENOTSUP). Prove that what the engine accepted
	 * for locs[0..n) before before_ms (wall ms, vg_now_ms) is durable:
	 * for every daemon that owns one of the files, take a connection
	 * to it made at or before before_ms and still alive (a restart of
	 * the daemon since would have broken it, so the daemon process
	 * that accepted those values still runs and holds whatever it did
	 * not write yet), and FLUSH that daemon's files over it, one BATCH
	 * (the daemon answers once each is written). 0 when every daemon
	 * answered (a file it does not have is fine: nothing was taken for
	 * it), -ESTALE when some daemon has no such connection (none was
	 * made early enough, or none is idle; nothing is sent to the
	 * others then), -EHOSTUNREACH when a FLUSH failed or refused a
	 * file that exists (what was FLUSHed before stays written; a
	 * connection that timed out is closed, the daemon not taken for
	 * down: it may only have been slow; one that broke is a failed
	 * call as any other).
	 * Every wait is bounded as the receiver's write-through is (its
	 * connections come back to the pool after), and the whole call by
	 * deadline_ms (vg_monotonic_ms; 0: no overall bound), looked at
	 * before each FLUSH BATCH, never inside a wait: -ETIMEDOUT once it
	 * has passed, nothing more sent; a BATCH under way finishes within
	 * its own wait and its connection is kept (cutting it would leave
	 * answers unread and close the old connection every later proof
	 * needs), so the call can take deadline_ms plus one BATCH's wait.
	 * The receiver's thread (vg_store_prove_arrival). */
	int (*flush_before)(struct vg_rrd_backend *be, const struct vg_rrd_loc *locs, size_t n,
			    int64_t before_ms, int64_t deadline_ms);
	/* Optional (NULL: nothing to keep). Keep a connection to every
	 * daemon that answers, so that one made long ago is there for
	 * flush_before when a host arrives, also on a collector that wrote
	 * nothing for a while (a standby): make one where none is idle and
	 * the daemon is neither in its back-off nor failed since its last
	 * check. The storage thread calls it
	 * about once a second on a write-through store. */
	void (*warm)(struct vg_rrd_backend *be);
	/* Counters (thread-safe copy). */
	void (*get_stats)(struct vg_rrd_backend *be, struct vg_rrd_backend_stats *out);
	/* Free everything. Accepts NULL. */
	void (*close)(struct vg_rrd_backend *be);
};

/* Every engine's handle starts with its ops. */
struct vg_rrd_backend {
	const struct vg_rrd_backend_ops *ops;
};

/* Open the files backend on rrd_dir (created if needed). undo_path: the
 * header undo file (created, and headers a kill -9 left half-updated are
 * put back now, before any replay), or NULL for no undo (a store that
 * does not own the journal). 0 or -errno with a message in err. */
int vg_rrd_files_open(const char *rrd_dir, const char *undo_path,
		      struct vg_rrd_backend **out, char *err, size_t errlen);

/* Open the rrdcached backend on DAEMONS ("unix:/run/rrdcached.sock" or
 * "storage1:42217, storage2:42217": comma-separated). base: the daemons'
 * -b dir when the collector shares it (remove then unlinks the file), or
 * NULL (remove answers -EOPNOTSUPP after FORGET). owners_path: the file
 * recording each series' daemon (loaded now, appended at create), or
 * NULL (placement by rendezvous only). No daemon is contacted here: one
 * down at start is down for its series only. 0 or -errno with err. */
int vg_rrd_rrdcached_open(const char *daemons, const char *base, const char *owners_path,
			  struct vg_rrd_backend **out, char *err, size_t errlen);

/* Test hook, weak: a program that defines it is called by the rrdcached
 * backend after an update's values are claimed in the daemon's list of
 * files to FLUSH and before they are sent, with the client held and no
 * lock (tests/unit/rrdcached_flush_test.c runs a sync there: the sync of
 * the storage thread meeting the receiver's write-through). The daemon
 * leaves it undefined. */
void vg_rrd_rrdcached_test_before_send(const char *path) __attribute__((weak));

/* Test hook, weak: called by the rrdcached backend's create with the
 * client held, before the CREATE is sent (tests/unit/
 * rrdcached_open_stall_test.c stalls the daemon there: a create cut
 * short between the store's last-update read and the CREATE). The daemon
 * leaves it undefined. */
void vg_rrd_rrdcached_test_before_create(const char *path) __attribute__((weak));

/* Test hook, weak: the clock of the "start it with -R" cause's expiry
 * (backend_rrdcached.c NODIR_STALE_MS), given the monotonic time now and
 * answering the time to use (tests/unit/store_rrdcached_test.c moves it
 * past the 2 minutes). The daemon leaves it undefined. */
int64_t vg_rrd_rrdcached_test_nodir_now(int64_t now_ms) __attribute__((weak));

/* Test hook, weak: called by the rrdcached backend's check after a
 * failure (overtaken_check) once it decided to FLUSH files behind our
 * values, before that FLUSH BATCH is sent, with the client held
 * (tests/unit/rrdcached_replay_test.c kills the daemon there: a FLUSH
 * that fails after the decision). The daemon leaves it undefined. */
void vg_rrd_rrdcached_test_before_check_flush(void) __attribute__((weak));

/* Share the placement record of an rrdcached backend through the state
 * database at STATE_URL (PostgreSQL: collector/placement.c): names not in
 * its owners map are looked up there, creates claim there first, and the
 * owners file given to vg_rrd_rrdcached_open (if any) is uploaded now (or
 * at a later sync when the database does not answer; that is not an
 * error). 0 or -errno with err (a bad URL, a newer schema). Before any
 * other call. */
int vg_rrd_rrdcached_share(struct vg_rrd_backend *be, const char *state_url, char *err,
			   size_t errlen);

/* The shared record's counters (all zero when not shared). */
void vg_rrd_rrdcached_placement(struct vg_rrd_backend *be, struct vg_store_placement *out);

/* The rendezvous (highest random weight) owner of series file NAME among
 * ADDRS[0..n): the index of the address with the highest weight. Adding
 * an address moves a name only to the new address. */
size_t vg_rrd_rendezvous(const char *name, const char *const *addrs, size_t n);

/* Bound the receiver's write-through (vg_rrd_item.no_connect) on an
 * rrdcached backend to a quarter of ACK_TIMEOUT_MS per wait on a daemon
 * (at least 100 ms, at most the 10 s I/O timeout; 1,250 ms until set):
 * what it cannot write in time is left to the storage thread, so an
 * agent's batch is acknowledged before its ack timeout even when a
 * daemon stalls behind a connection the receiver holds. Nothing for the
 * files backend. Before the store is used from several threads. */
uint32_t vg_rrd_rrdcached_write_through_timeout(struct vg_rrd_backend *be,
						uint32_t ack_timeout_ms);
/* The receiver's batch deadline (vg_monotonic_ms; 0: none), until set
 * again: each wait of its opens (VG_RRD_RECEIVER) is bounded by the time
 * left as well as by the write-through timeout. No-op for another
 * backend. Receiver thread (vg_store_set_deadline). */
void vg_rrd_rrdcached_set_deadline(struct vg_rrd_backend *be, int64_t deadline_ms);

/* The overall bound of the check a new connection to a daemon runs before
 * anything is sent on it (every file sent there and not yet verified
 * durable, 32 per FLUSH or FORGET BATCH and their INFOs): after MS
 * milliseconds (0: the default, 30 s; the store passes [storage]
 * check_max) it starts no further group of files
 * and the connection is closed without counting a failure; the files not
 * checked wait for the next connection, which goes on from there, so a
 * slow check after a restart of a daemon with many files is spread over
 * several connections instead of holding the storage thread. Counted in
 * vg_store_daemon.checks_cut. Returns the bound (0: not an rrdcached
 * backend). Thread-safe. */
uint32_t vg_rrd_rrdcached_check_bound(struct vg_rrd_backend *be, uint32_t ms);

/* [storage] verify_writes: on (the default), every sync reads back (INFO)
 * the files its FLUSHes passed for and counts a file the daemon did not
 * write (vg_store_daemon.unwritten; rrdcached acknowledges a FLUSH whose
 * write failed); off, the read-back is skipped: a write the daemon
 * acknowledged but failed (a full disk, an unwritable file) is then
 * neither counted nor sent again, and its values are lost. Applies from
 * the next sync. Returns 0, or -EINVAL when be is not an rrdcached
 * backend. Thread-safe. */
int vg_rrd_rrdcached_verify_writes(struct vg_rrd_backend *be, int on);

/* The addresses the placement record names that are not in [storage]
 * daemons, with the series recorded on each, into out[0..max); the count
 * (0 for files). ask_record 0: as far as this backend knows them (its
 * owners file, and what it looked up in the shared record: a map read);
 * 1: with a shared record, the whole record (one query; the map when the
 * database does not answer). Thread-safe. */
size_t vg_rrd_rrdcached_unlisted(struct vg_rrd_backend *be, struct vg_store_unlisted *out,
				 size_t max, int ask_record);

/* Let convert() rewrite the series of the daemon ADDRESS (one of
 * [storage] daemons, written as there) through DIR, that daemon's -b
 * directory as mounted here (`vigie-collector storage convert --daemon
 * ADDRESS --dir DIR`): the other daemons' series answer -EXDEV. 0,
 * -ENOTSUP (not rrdcached: an engine that converts its own files),
 * -EINVAL (not a configured address), -ENOTDIR; err says why. Before convert() is called; not thread-safe. */
int vg_rrd_rrdcached_convert_dir(struct vg_rrd_backend *be, const char *address,
				 const char *dir, char *err, size_t errlen);

/* Read the owners file at PATH into the map without taking it over (no
 * line is appended to it): for a store that does not own the journal
 * (`vigie-collector storage stats` beside a running collector). 0,
 * -EINVAL (not rrdcached), -errno. */
int vg_rrd_rrdcached_load_owners(struct vg_rrd_backend *be, const char *path);

/* Fill out[0..max) for an rrdcached backend; the count (0 for files). */
size_t vg_rrd_rrdcached_state(struct vg_rrd_backend *be, struct vg_store_daemon *out,
			      size_t max);

#endif
