/*
 * vigie — the RRD store: one RRD file per (resource, metric).
 *
 * Layout: <data_dir>/rrd/<type>/<escaped resource id>/<escaped metric>.rrd
 * (escaping per vigie/name.h, so no name from the wire escapes the tree).
 * Each file has one data source "value": GAUGE for gauges, DDERIVE with
 * minimum 0 for counters, so a counter comes out as a rate per second and
 * a reset (guest reboot) gives an unknown point, never a negative rate.
 * Archives AVERAGE, MIN and MAX for each configured tier (default 1 min for
 * 15 days, 5 min for 63 days, 1 h for 455 days).
 *
 * Write-behind (docs/benchmarks.md, "Why the store is shaped this way"): vg_store_write_batch
 * appends the batch's new values to a journal (<data_dir>/journal/, append
 * + fdatasync) and to an in-memory cache per series, and returns; a storage
 * thread writes each series' cached values to its RRD file many timestamps
 * per librrd call. So a value is durable (journal or RRD file) when
 * vg_store_write_batch returns 0; vg_store_open replays what the journal
 * holds after a crash; vg_store_fetch first writes the cached values of the
 * series it reads (read-your-writes); vg_store_close writes everything.
 * Only one store at a time owns a data directory's journal (flock); another
 * vg_store_open on the same directory (a second collector) is refused
 * (-EBUSY, naming the holder's pid): it would journal nothing, so values
 * it acknowledged could be lost. A tool that only reads beside a running
 * collector (storage stats), or checks and refuses itself, asks for it:
 * vg_store_open_beside gets a write-through store that neither journals
 * nor caches nor replays.
 *
 * Invariant: updates to one file are strictly increasing in time. The store
 * keeps each series' last accepted time (exact to the millisecond, read
 * from the file's header on first use, rounded to the nearest millisecond
 * as librrd keeps .229 s as 228999 us); a sample at or before it is a
 * duplicate (a re-sent batch) and is skipped and counted, not an error.
 *
 * A value librrd refuses never takes other values with it: the store then
 * writes the series' values one call at a time (skipping those at or
 * before the file's last update: already stored), and a value that cannot
 * be written is counted by reason (write_errors_by), noted for the log
 * (vg_store_last_error) and its journal segment is kept on disk as
 * <data_dir>/journal/<id>.kept (docs/operations.md).
 *
 * Thread-safety: vg_store_write_batch from one thread (the receiver);
 * vg_store_fetch and vg_store_get_stats from any thread concurrently.
 */
#ifndef VIGIE_STORE_H
#define VIGIE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/dispatch.h"

struct vg_store;

/* Why a value could not be written to its file (write_errors_by). */
enum vg_store_err {
	VG_STORE_ERR_TIME = 0, /* librrd: not after the file's last update */
	VG_STORE_ERR_FILE,     /* cannot open, lock, map or read the file */
	VG_STORE_ERR_MEMORY,   /* out of memory in the store */
	VG_STORE_ERR_OTHER,    /* any other librrd refusal */
	VG_STORE_ERR_N
};
/* "time", "file", "memory", "librrd"; NULL out of range. */
const char *vg_store_err_reason(int reason);

/* What made the store sync its backend (backend_syncs_by). A sync retires
 * the journal segments whose values were all written; the store tries one
 * whenever a segment may have become free, so the cause is what wrote
 * (or asked for) the values that freed it. */
enum vg_store_sync_cause {
	VG_STORE_SYNC_FLUSH = 0, /* vg_store_flush, the close */
	VG_STORE_SYNC_DEPTH,     /* the storage thread wrote series that held
				  * [storage] flush_depth values */
	VG_STORE_SYNC_AGE,       /* ... series whose oldest value waited the
				  * longest a value may wait (5 min) */
	VG_STORE_SYNC_IDLE,      /* ... the whole cache: no batch for 1 s */
	VG_STORE_SYNC_CACHE,     /* ... oldest first: the cache over half full */
	VG_STORE_SYNC_SEGMENTS,  /* the journal's live segments at their bound */
	VG_STORE_SYNC_BATCH,     /* write-through, no sync_interval: a batch */
	VG_STORE_SYNC_INTERVAL,  /* write-through: [storage] sync_interval */
	VG_STORE_SYNC_RETRY,     /* the previous sync failed: tried again */
	VG_STORE_SYNC_OTHER,     /* a read's or removal's write, the replay */
	VG_STORE_SYNC_N
};
/* "flush", "depth", "age", "idle", "cache", "segments", "batch",
 * "interval", "retry", "other"; NULL out of range. */
const char *vg_store_sync_cause(int cause);

/* Where the rrdcached backend sent a FLUSH from (vg_store_daemon.flushes_by;
 * one per file, also inside a BATCH). */
enum vg_store_flush_site {
	VG_STORE_FLUSH_SYNC = 0, /* a sync: every file sent since the last */
	VG_STORE_FLUSH_CHECK,    /* a new connection's check of those files */
	VG_STORE_FLUSH_READ,     /* a file's last update read (FLUSH + INFO):
				  * opening a series, the replay */
	VG_STORE_FLUSH_ARRIVAL,  /* a host arrived from another collector */
	VG_STORE_FLUSH_REPAIR,   /* a refused update (its cache entry ahead) */
	VG_STORE_FLUSH_CONVERT,  /* storage convert */
	VG_STORE_FLUSH_N
};
/* "sync", "check", "read", "arrival", "repair", "convert"; NULL out of
 * range. */
const char *vg_store_flush_site(int site);

struct vg_store_stats {
	uint64_t files_created;
	uint64_t values_written;   /* accepted: in the journal or the file */
	uint64_t values_duplicate; /* at or before the series' last update */
	uint64_t values_rejected;  /* non-finite, bad name */
	uint64_t write_errors;     /* values that could not be written:
				     * the sum of write_errors_by */
	uint64_t write_errors_by[VG_STORE_ERR_N];
	uint64_t write_retries;         /* refused librrd calls retried value
				     * by value (no value lost by them) */
	uint64_t segments_kept;         /* journal segments kept (*.kept) because
				     * a value of theirs was not written */
	uint64_t segments_kept_dropped; /* ... deleted instead: 16 *.kept
				     * files were already on disk */
	uint64_t write_ns_total;        /* time spent in librrd updates */
	/* write-behind */
	uint64_t values_flushed;     /* written to RRD files */
	uint64_t flushes;            /* rrd_update calls */
	uint64_t values_pending;     /* in the cache now, not yet in files */
	uint64_t pending_peak;       /* highest values_pending since open */
	uint64_t cache_bytes_peak;   /* most memory the cache's arrays held */
	uint64_t values_replayed;    /* taken from the journal at open */
	uint64_t values_resent;      /* taken from the journal again: a storage
				    * daemon lost them (restarted before
				    * writing them) */
	uint64_t headers_restored;   /* RRD headers put back at open: an
				     * update a kill -9 interrupted */
	uint64_t cache_full;         /* batches refused (-EAGAIN): cache full */
	uint64_t series_unreachable; /* batches refused (-EAGAIN): a series new
				      * to the store could not be read or
				      * created on its storage daemon (down,
				      * no answer within the receiver's
				      * bound, or it cannot create the file
				      * now: no -R, no space; or no file
				      * descriptor or memory left to read,
				      * create or hold it); the agent
				      * re-sends it */
	uint64_t batches_nomem;      /* batches refused (-EAGAIN): no memory
				      * to cache a value of a series already
				      * open (its cache array could not
				      * grow); the agent re-sends it */
	uint64_t journal_bytes;      /* appended since open */
	uint64_t journal_syncs;      /* fdatasync calls */
	uint64_t backend_syncs;      /* backend syncs before retiring journal
				      * segments (rrdcached: a FLUSH of each
				      * file sent since the last one); the
				      * storage thread's tries again of a
				      * failed one count too (each second,
				      * or each sync_interval when set) */
	uint64_t series_removed;     /* deleted by vg_store_remove_series */
	uint64_t series_recreated;   /* files created again by a write that
				      * found them missing (deleted while the
				      * store ran: docs/operations.md) */
	uint64_t series_dir_missing; /* series whose file a write found
				      * missing with its directory (a volume
				      * not mounted, a directory renamed
				      * away): not created again, their
				      * values wait (values_pending) until
				      * it is back; once per series and
				      * episode (docs/operations.md) */
	uint64_t series_dir_waiting; /* gauge: series whose values wait now
				      * because their type directory is
				      * missing (or replaced): those of
				      * series_dir_missing not back yet */
	uint64_t cache_refusing;     /* gauge: 1 while batches are refused
				      * because the cache is full (one
				      * refused in the last 10 s), else 0 */
	/* backend_syncs by cause (enum vg_store_sync_cause) */
	uint64_t backend_syncs_by[VG_STORE_SYNC_N];
};

/* Open (creating <data_dir>/rrd and <data_dir>/journal if needed),
 * replay the journal left by a crash into the RRD files, and start the
 * storage thread. Values whose storage daemon does not answer (or a sync
 * that fails) do not fail the open: they stay cached and journaled
 * (stats values_pending) and the storage thread writes them when it
 * answers, as values of a daemon that goes down later. Archives and step
 * from cfg (copied). 0 or -errno with a message in err (among them a
 * series the placement record cannot place at the replay). */
int vg_store_open(const char *data_dir, const struct vg_config *cfg,
		  struct vg_store **out, char *err, size_t errlen);
/* vg_store_open, except when another process (or store) owns the
 * directory's journal: then not -EBUSY but a write-through store beside
 * it, which does not own the journal (vg_store_owns_journal 0), replays
 * nothing and runs no storage thread. For tools that read beside a
 * running collector or refuse by themselves. */
int vg_store_open_beside(const char *data_dir, const struct vg_config *cfg,
			 struct vg_store **out, char *err, size_t errlen);
/* Write every cached value to its file, sync, remove the journal, stop
 * the storage thread and free. Accepts NULL. */
void vg_store_close(struct vg_store *s);
/* For a command run with no collector (storage flush, convert, move):
 * whether values of the open's replay wait for a storage daemon, decided
 * once. Stops the storage thread, then reads the stats into *st; when
 * values wait (st->values_pending) the thread stays stopped, so nothing
 * more is tried for them (a check cut short at [storage] check_max does
 * not go on) and the caller ends with vg_store_close_held: what it says
 * of them stays true. Otherwise the thread is started again. 0, -EINVAL,
 * or -errno when the thread cannot be started again (the store still
 * closes). Not thread-safe: the command's own thread. */
int vg_store_pending_hold(struct vg_store *s, struct vg_store_stats *st);
/* vg_store_close without writing anything: the storage thread stopped,
 * the values still cached (stats values_pending) left in the journal as
 * they are, no segment retired, no new connection to a daemon (so a check
 * cut short at [storage] check_max does not go on). For a command that
 * found values waiting after the open's replay and said they stay in the
 * journal: the next open replays them. Accepts NULL. Not thread-safe (as
 * vg_store_close). */
void vg_store_close_held(struct vg_store *s);

/* Take every sample of b: new files are created now, new values are
 * journaled (fdatasync) and cached, and written to their files later by
 * the storage thread. 0 when every accepted value is durable; -EAGAIN if
 * nothing was taken and the caller should retry later (disk full, no file
 * descriptor or memory left, the journal's append failed, the
 * cache holds its maximum: the storage thread is behind, or a series new
 * to the store could not be read or created on its storage daemon in
 * time, series_unreachable; such a create is redone safely when b comes
 * again); other errors are counted per value and the rest of the batch is
 * still taken. */
int vg_store_write_batch(struct vg_store *s, const struct vg_batch *b);
/* How long the receiver's write of a batch (write-through, or opening a
 * series new to the collector) waits on a storage daemon at most: a
 * quarter of [agent] ack_timeout_ms, between 100 ms and 10 s, so that a
 * batch is acknowledged within the agents' ack timeout. 0 when the
 * backend is not rrdcached. Any thread. */
uint32_t vg_store_daemon_wait_ms(const struct vg_store *s);
/* The receiver's deadline for the batches it is about to write
 * (vg_monotonic_ms; 0: none), until set again: the opens of new series
 * stop at it, each wait of one bounded by the time left (the batch
 * answers -EAGAIN, RETRY, as past vg_store_daemon_wait_ms), and the write-through starts no round trip
 * after it and waits on a daemon no longer than the time left: the
 * values not sent stay in the cache and the journal for the storage
 * thread (vg_store_holding), as for a stalled daemon. Receiver thread. */
void vg_store_set_deadline(struct vg_store *s, int64_t deadline_ms);
/* How many vg_store_write_batch calls the deadline cut short (their
 * opens, or their write-through) since the last call; resets the count.
 * Receiver thread. */
uint64_t vg_store_deadline_cuts(struct vg_store *s);
/* Whether this store writes through (several collectors share the storage
 * daemons) and holds acknowledged values a daemon has not taken: the ones
 * the last batches' write-through could not write (a daemon down,
 * restarting or stalled) wait in its cache for the storage thread. The
 * receiver marks the hosts of the batches it acknowledges meanwhile
 * (vg_registry_mark.hold) and clears the marks once this is 0 again. One
 * atomic load: any thread. */
int vg_store_holding(struct vg_store *s);
/* The wall time (ms) up to which every value this store acknowledged is
 * proven durable in the backend: a sync (rrdcached: FLUSH of every file
 * sent) succeeded and retired every journal segment, the active one
 * included, closed at that time; now when no segment is live and nothing
 * is cached. 0 before the first such sync. A batch acknowledged after
 * its write_batch returned, at a later wall time, is covered once this
 * passes that time (the receiver's verified row, docs/scaling.md
 * "Closing the second"). Takes the store's lock briefly: any thread. */
int64_t vg_store_verified_ms(struct vg_store *s);
/* A series named by its resource and metric (the strings the caller's). */
struct vg_store_series {
	int rtype; /* enum vg_rtype */
	const char *id, *metric;
};
/* Called by the thread that re-sends values a storage daemon lost (a
 * restart without its journal: the backend's check found their files
 * behind what the daemon took), with the lost series ser[0..n), before
 * their values are put back in front of the cache: the composition marks
 * their hosts held (docs/scaling.md "Holding marks"), so that no other
 * collector writes newer values of them before the re-send. 0 or -EBUSY
 * (some host is another collector's: re-sent anyway) lets the re-send
 * go; another -errno (the marks not written) puts it off, retried as a
 * journal that cannot be read. While it runs vg_store_holding is 1, and
 * stays 1 until the re-sent values are written: the marks are cleared as
 * any. No store lock held; the strings are valid during the call. */
typedef int (*vg_store_lost_fn)(void *ctx, const struct vg_store_series *ser, size_t n);
/* Set fn (NULL: none) before the receiver runs. */
void vg_store_on_lost(struct vg_store *s, vg_store_lost_fn fn, void *ctx);
/* Prove by this store's own connections that values another collector
 * sent to the storage daemons before before_ms (wall ms) for b's series
 * and for more[0..nmore) (the other series of b's host that collector may
 * have written: a resource or metric not in every batch) are durable,
 * and make them so: for every daemon owning one of those files, a
 * connection made at or before before_ms and alive (the daemon did not
 * restart since) FLUSHes that daemon's files, in BATCHes, before
 * anything of b is written (docs/scaling.md "Closing the second", part
 * 2). 0 when done; -ESTALE when some daemon has no such connection idle,
 * -EHOSTUNREACH when a FLUSH failed (each wait bounded as the
 * write-through's is), -ETIMEDOUT when the whole proof reached
 * deadline_ms (vg_monotonic_ms; 0: no overall bound) first: looked at
 * between FLUSH BATCHes only, never inside a wait, so a BATCH under way
 * finishes within its own bound and its connection is kept (the old
 * connection a later proof needs); the call can take deadline_ms plus
 * one BATCH's wait. -ENOTSUP when the backend
 * has no daemons (files), -EINVAL, -ENOMEM. On any error nothing is
 * proven: the caller waits as before. The receiver thread only (as
 * vg_store_write_batch). */
int vg_store_prove_arrival(struct vg_store *s, const struct vg_batch *b,
			   const struct vg_store_series *more, size_t nmore,
			   int64_t before_ms, int64_t deadline_ms);

/* Write the cached values to their files now (tests, shutdown), those
 * of every series but one in back-off (its daemon or its directory did
 * not take its last write: the storage thread tries it again each
 * second; its values stay cached, owed, so the call fails as below), wait
 * for the writes the storage thread had under way when it was called, then
 * sync the backend so that the journal segments they were in are
 * retired: after a sync another thread had in progress ends (it may not
 * cover them), with one of its own. 0 when that sync passed and nothing
 * is owed: every value written is durable in the backend (rrdcached: its
 * daemon FLUSHed the file and its last update, read back, covers them;
 * vg_store_daemons pending 0); values other threads cached meanwhile
 * may still be (stats values_pending). Else the first -errno of the
 * writes, or -EIO when the sync failed (a daemon down, refusing a FLUSH
 * or inside the back-off of an earlier refusal, a loss found; also when
 * no sync could run and the last one had failed), or while values are owed (a daemon or file
 * did not take them, or a daemon lost them, and no write has since:
 * they stay cached for it, in stats values_pending): the segments stay
 * in the journal and the storage thread tries again; calling again
 * later is safe. Values other threads cache meanwhile are not owed:
 * once the owed ones are written, a flush passes again, however long
 * ago a daemon was down. Thread-safe. */
int vg_store_flush(struct vg_store *s);

/* Test hook, weak: a program that defines it is called by a store that
 * owns its journal after each rrd_update_r, before the update's header
 * undo slot is cleared (tests/unit/journal_test.c tears the file there to
 * make the state a kill -9 inside librrd leaves). The daemon leaves it
 * undefined. */
void vg_store_test_after_update(const char *path) __attribute__((weak));

/* Test hook, weak: a program that defines it is called by a store that
 * owns its journal before each sync of its backend, with no lock held,
 * on the thread that syncs (tests/unit/store_rrdcached_sync_test.c holds
 * the storage thread's sync there while vg_store_flush runs). The daemon
 * leaves it undefined. */
void vg_store_test_before_sync(void) __attribute__((weak));

/* Text of the last write error ("<file>: <librrd message>"), "" if none,
 * so the receiver can log why write_errors grew (errors of the storage
 * thread are copied in at the next vg_store_write_batch). Writer thread
 * only; the string stays valid until the next vg_store_write_batch. */
const char *vg_store_last_error(const struct vg_store *s);

/* A vg_consumer wrapping vg_store_write_batch. Its tick (the receiver
 * thread, vg_dispatch_tick) opens the new series of the last batch whose
 * opens reached vg_store_daemon_wait_ms (answered -EAGAIN): at most half
 * that bound per tick, in the batch's order, as its next attempt would,
 * so that the agent's back-off after the RETRY is spent opening and the
 * re-sent batch finds them open. Only the newest such batch is kept (up
 * to 65,536 series); a failure (a daemon that does not answer) drops the
 * rest, which the re-sends open as before. */
struct vg_consumer vg_store_consumer(struct vg_store *s);

/* Copy the counters (thread-safe). */
void vg_store_get_stats(struct vg_store *s, struct vg_store_stats *out);

/* One storage daemon's state (the rrdcached backend; none for files). */
struct vg_store_daemon {
	char address[256];
	int up;                 /* the last call reached it */
	uint64_t calls;         /* round trips */
	uint64_t errors;        /* failures that broke a connection */
	uint64_t pending;       /* files updated, not yet FLUSHed (durable) */
	uint64_t lost;          /* files whose values it lost (a restart before
			   * writing them), waiting for their re-send */
	uint64_t repairs;       /* files whose cache entry it had ahead of the
			   * file (its journal replay), FORGOTten so that
			   * the refused values could be written */
	uint64_t checks_cut;    /* checks of a new connection cut at their
			      * bound (the rest checked by the next one) */
	uint64_t overtaken;     /* files lacking a value of this collector's
			      * that another collector's newer ones
			      * overtook, so it cannot be written: lost by
			      * the daemon (a restart), or, found by the
			      * start replay, maybe never sent; once per
			      * check that finds it (docs/operations.md) */
	uint64_t flush_refused; /* FLUSHes of a file (a sync's) it refused,
				 * one per file and attempt: its values stay
				 * in the journal, the sync backs off (250 ms
				 * doubling to 2 s) while refusals repeat */
	/* 1 from a sync's FLUSH it refused (flush_refused) until a sync's
	 * FLUSHes pass again: /v1/health shows it degraded meanwhile, with
	 * flush_refusal, the last refusal ("FILE: ANSWER"; "" when 0) */
	int flush_refusing;
	uint64_t vanished; /* files a sync found gone from its disk (deleted
			    * under it) with values of ours accepted: those
			    * values are lost (docs/operations.md "A file
			    * deleted under the daemon") */
	/* files a sync FLUSHed ("Successfully flushed", or "Nothing to
	 * flush") whose last update, read back, was still behind the newest
	 * value it took of ours: its write failed (a read-only or immutable
	 * file, a full disk), which rrdcached only logs. Once per file and
	 * sync that finds it; the values stay in the journal and are re-sent
	 * (lost), the daemon shows flush_refusing meanwhile
	 * (docs/operations.md "A file the daemon cannot write") */
	uint64_t unwritten;
	/* files that read-back of the syncs read: from the daemon's disk as
	 * this host sees it ([storage] daemon_base: the header's last update,
	 * no round trip), and through the daemon's INFO (no daemon_base, a
	 * file the local read did not find written, or the local read turned
	 * off: docs/operations.md "A file the daemon cannot write") */
	uint64_t readback_local, readback_info;
	/* the receivers' write-through round trips not started because the
	 * batch's time left could not hold this daemon's recent round-trip
	 * time: their values wait for the storage thread (docs/operations.md
	 * "One deadline per batch") */
	uint64_t round_trips_skipped;
	/* files found lost whose re-send is watched now (its refusal as
	 * older than the file counted in overtaken): each leaves once its
	 * re-send was decided (written, refused, or the file removed), so
	 * a value that stays above 0 with nothing lost (lost) names a
	 * re-send never decided; while above 0 every update to the daemon
	 * costs a look-up more (docs/operations.md "A replay that skips a
	 * value") */
	uint64_t resend_watch;
	char flush_refusal[400];
	int cannot_create;      /* its last create failed so (below:
				 * VG_STORE_CAUSE_NO_DIRS) */
	uint64_t create_errors; /* creates it refused for a cause of its
				 * own (started without -R: it cannot
				 * create the series' directories); the
				 * batches wait (RETRY) */
	char error[512];        /* last failure, "" if none; while its creates
			      * fail so, that cause ("... start rrdcached
			      * with -R") */
	/* FLUSHes sent to it, one per file, by call site (enum
	 * vg_store_flush_site) */
	uint64_t flushes_by[VG_STORE_FLUSH_N];
};
/* The cause of vg_store_daemon.cannot_create, the one spelling of it
 * (the engine's messages, its state's error, /v1/health's "cause"). */
#define VG_STORE_CAUSE_NO_DIRS "the daemon cannot create directories: start rrdcached with -R"
/* Fill out[0..max) with each daemon's state; the count (0 for files).
 * Thread-safe. */
size_t vg_store_daemons(struct vg_store *s, struct vg_store_daemon *out, size_t max);

/* Why values wait in the cache (vg_store_stats.values_pending), as the
 * store recorded it, into buf (always terminated): the series waiting
 * because their type directory is missing ("N series whose type directory
 * is missing ..."), the daemons not answering ("not answering: ADDR, ..."), the daemons up whose check of
 * their files at connecting was cut short at [storage] check_max ("up,
 * ... cut short at [storage] check_max, to go on at a later connection:
 * ADDR"; AT_START words it as the start replay's check, which opening a
 * store runs), the daemons up that cannot create directories
 * (VG_STORE_CAUSE_NO_DIRS), joined by "; "; with none of these, a
 * pointer to the store's last error and /v1/health, which callers print
 * beside it (vg_store_last_error says which file and what failed). The
 * one wording of the collector's start warning and of `storage flush` /
 * `convert` / `move`. Thread-safe. */
#define VG_STORE_PENDING_DAEMON 1 /* the cause names a storage daemon */
#define VG_STORE_PENDING_DIRS 2   /* ... series directories missing */
int vg_store_pending_cause(struct vg_store *s, int at_start, char *buf, size_t len);
/* "their storage daemon", "their series' directories" or "their files to
 * be writable", after vg_store_pending_cause's answer: what the values
 * wait for, as `storage flush` and the start warning say it. */
const char *vg_store_pending_what(int cause);

/* An address the placement record names that is not in [storage] daemons
 * (a daemon removed from the list before its series were moved): reads
 * of its series answer 503 naming it; move them (`vigie-collector
 * storage move`) before removing a daemon (docs/operations.md). */
struct vg_store_unlisted {
	char address[256];
	uint64_t series; /* series recorded on it (known to this store) */
};
/* Fill out[0..max) with them; the count (0 for files, or none).
 * whole_record 0: the series this store knows (its owners record and
 * what it looked up: cheap, for /v1/health and /metrics); 1: with a
 * shared placement record, all of it (one query over the record, for
 * `vigie-collector storage stats`). Thread-safe. */
size_t vg_store_unlisted(struct vg_store *s, struct vg_store_unlisted *out, size_t max,
			 int whole_record);

/* The shared placement record (rrdcached backend with PostgreSQL state:
 * which daemon holds each series, collector/placement.c). */
struct vg_store_placement {
	int shared;       /* 1: the record is in the shared database */
	int up;           /* the last call reached the database */
	uint64_t lookups; /* series looked up (not known locally) */
	uint64_t claims;  /* series claimed at create */
	uint64_t errors;  /* calls that failed (the database unreachable:
			   * new series wait, their batches answered RETRY) */
	char error[256];  /* the last failure, "" if none */
};
/* Fill out (all zero, shared 0, without a shared record). Thread-safe. */
void vg_store_placement(struct vg_store *s, struct vg_store_placement *out);

/* Path of the file for (type, id, metric). 0, -EINVAL (bad name),
 * -ENAMETOOLONG. */
int vg_store_path(const struct vg_store *s, int rtype, const char *id,
		  const char *metric, char *out, size_t outlen);

/* Delete one series through the backend (whichever engine holds it),
 * never while it is being flushed, read by vg_store_fetch or created: the
 * series leaves the cache first (values still cached for it are dropped,
 * their journal segment kept), the call waits for those in flight, and
 * fetches or creates of the same series that start meanwhile wait for it
 * to end (then see -ENOENT, or make a new series). 0, -ENOENT (no such
 * series), -EINVAL, -EIO. Thread-safe; one removal at a time. */
int vg_store_remove_series(struct vg_store *s, int rtype, const char *id,
			   const char *metric);

/* Give an existing series the archives its metric's rule names now
 * (`vigie-collector storage convert`): nothing if it has them already
 * (*changed 0), else the backend rewrites it keeping every stored row of
 * the archives both layouts share (same resolution) within what the new
 * one retains (backend.h, convert). Either way it first removes what a
 * conversion killed before its end left beside the file (the file holds
 * every value); then 0 comes with msg naming what it removed ("" if
 * nothing). Exclusive like a removal. 0, -ENOENT,
 * -ENOTSUP (the engine cannot: rrdcached without vg_store_convert_at),
 * -EXDEV (another holder's series, see vg_store_convert_at), -EIO with
 * msg. One call at a time (librrd's modify is not thread-safe). */
int vg_store_convert_series(struct vg_store *s, int rtype, const char *id,
			    const char *metric, int *changed, char *msg, size_t msglen);

/* For an engine whose files are its holders' (rrdcached: each daemon's),
 * before vg_store_convert_series: convert the series of the holder
 * ADDRESS ([storage] daemons, written as there) through DIR, its files'
 * directory as mounted here (a daemon's -b); from then on
 * vg_store_convert_series answers -EXDEV, reading nothing, for a series
 * another holder has. 0, -ENOTSUP (the engine converts its own files:
 * files), -EINVAL (no such holder), -ENOTDIR; err says why. Not
 * thread-safe. */
int vg_store_convert_at(struct vg_store *s, const char *address, const char *dir, char *err,
			size_t errlen);

/* What the series use on each disk (files) or daemon (rrdcached). */
#define VG_STORE_HOLDERS 16
struct vg_store_holder {
	char where[256];       /* directory or daemon address */
	uint64_t series;       /* series files */
	uint64_t bytes;        /* their bytes on disk (allocated blocks) */
	uint64_t bytes_free;   /* free there (UINT64_MAX: unknown) */
	uint64_t bytes_recent; /* bytes of series created at or after since_s */
	uint64_t no_birth;     /* series whose creation time is unknown */
};
struct vg_store_usage {
	size_t n;
	struct vg_store_holder h[VG_STORE_HOLDERS];
};
/* Walk what the backend holds (files: every .rrd under <data_dir>/rrd,
 * creation time from statx's birth time). Costly (a stat per series):
 * for the lifecycle thread and `storage stats`, not for each request.
 * 0, -ENOTSUP (the engine cannot tell), -errno. Thread-safe. */
int vg_store_usage(struct vg_store *s, int64_t since_s, struct vg_store_usage *out);

/* Whether this store holds the data directory's journal lock (no other
 * vigie-collector runs on it). */
int vg_store_owns_journal(const struct vg_store *s);

/* The [archives] rule a series of this metric gets when it is created:
 * its pattern, or "default" ([storage] archives). The string is the
 * store's, valid until vg_store_close. Thread-safe. */
const char *vg_store_policy_name(const struct vg_store *s, const char *metric);

/* Where an existing series is, for a reader that opens it itself
 * (rrd_graph): its path (a file, or a name relative to its daemon's base
 * dir) and the address of the rrdcached daemon that holds it ("" for the
 * files backend: read the path directly; else give rrd_graph --daemon
 * ADDR). Writes the series' cached values to it first, as vg_store_fetch
 * does (a file deleted while values wait is created again by that
 * write), then checks that the series exists (through its daemon, which
 * writes it out first), so what the reader sees is fresh. 0, -EINVAL (bad name),
 * -ENAMETOOLONG, -ENOENT (no such series), -EHOSTUNREACH (its daemon
 * does not answer: addr names it, or is "" when the shared placement
 * record does not answer), -EADDRNOTAVAIL (recorded on a daemon that is
 * not in [storage] daemons: addr names the recorded address), -EIO (the
 * file cannot be read, or its daemon answers but refused to FLUSH or
 * read it, "Permission denied" included: addr names the daemon). */
int vg_store_locate(struct vg_store *s, int rtype, const char *id, const char *metric,
		    char *path, size_t pathlen, char *addr, size_t addrlen);

/* Where a series is or would be, as vg_store_locate names it (path, and
 * addr: its daemon, or the recorded address of an unlisted one), from
 * the backend's placement only: no round trip to a storage daemon and no
 * check that the series exists, so that a message about a daemon that
 * just failed costs no second wait for it (with a shared [state] url, a
 * series this collector has not placed yet is looked up in the
 * placement record). 0, -EINVAL, -ENAMETOOLONG, -EADDRNOTAVAIL (recorded
 * on a daemon not in [storage] daemons: addr names the recorded
 * address); addr "" for the files backend, or when no listed daemon
 * holds it (the placement record does not answer). Thread-safe. */
int vg_store_where(struct vg_store *s, int rtype, const char *id, const char *metric,
		   char *path, size_t pathlen, char *addr, size_t addrlen);

enum vg_cf { VG_CF_AVERAGE = 0,
	     VG_CF_MIN = 1,
	     VG_CF_MAX = 2 };
int vg_cf_parse(const char *s); /* "mean"|"average"|"min"|"max" or -EINVAL */

struct vg_point {
	int64_t time_ms; /* start of the interval the point covers... see docs */
	double value;    /* NaN when unknown */
};

struct vg_series {
	uint32_t resolution_s;
	uint32_t archives_s[VG_MAX_ARCHIVES]; /* the series' archives'
					       * resolutions, fine to coarse */
	size_t narchives;
	int kind; /* enum vg_kind, from the file's DS type */
	size_t n;
	struct vg_point *points; /* malloc'd, owned by the series */
};
void vg_series_free(struct vg_series *s); /* frees points; accepts NULL */

/* Read [start_ms, end_ms] of one series at resolution_s (60, 300, 3600 or
 * 0 for the finest archive covering start), after writing the series'
 * cached values to its file, so every value accepted before the call is
 * seen. Unknown points are dropped unless keep_unknown. 0, -ENOENT (no
 * such series), -EINVAL, -EIO, -EHOSTUNREACH (its storage daemon does
 * not answer), -EREMOTEIO (its daemon answers but refused to FLUSH or
 * read its file: what the file holds cannot be shown as all that was
 * accepted; vg_store_locate names the daemon and the file).
 * Thread-safe. */
int vg_store_fetch(struct vg_store *s, int rtype, const char *id,
		   const char *metric, int cf, int64_t start_ms,
		   int64_t end_ms, uint32_t resolution_s, int keep_unknown,
		   struct vg_series *out);

#endif
