/*
 * vigie — a client for rrdcached's line protocol, one connection per
 * client object (see collector/rrdcached.c for why not librrd's rrdc_*).
 *
 * A client talks to one daemon over a unix socket or TCP. Every call is
 * one round trip (a BATCH is one round trip for many commands): the
 * command goes out, the whole answer is read and parsed before the call
 * returns, so the connection is always between two commands when a call
 * returns 0 or a daemon error.
 *
 * Errors: 0 on success, a negative errno on failure:
 *   -EINVAL     an argument the protocol cannot carry (a file name or a
 *               definition with a space or a control character, an empty
 *               or too long one, a non-increasing timestamp);
 *   -EEXIST     CREATE refused because the file exists (the daemon runs
 *               with -O, or the call asked for no overwrite);
 *   -EACCES     the daemon refused a path outside its base dir (-b -B);
 *   -ENOENT     the daemon has no such file;
 *   -EREMOTEIO  any other error the daemon answered;
 *   -ETIMEDOUT  the daemon made no progress for io_timeout_ms on one
 *               read, write or the connect;
 *   -EPROTO     the answer was malformed; -EMSGSIZE it was over a bound
 *               (VG_RRDCD_LINE_MAX per line, VG_RRDCD_LINES_MAX lines);
 *   -ECONNRESET the daemon closed the connection; other -errno from the
 *               socket calls.
 * The daemon's errors (-EEXIST, -EACCES, -ENOENT, -EREMOTEIO) leave the
 * connection usable. Every other failure breaks it: the socket is closed
 * and every later call returns -ENOTCONN until vg_rrdcd_reconnect
 * succeeds. vg_rrdcd_error gives the text of the last failure (the
 * daemon's own message for its errors).
 *
 * Timeouts: io_timeout_ms bounds each wait for the socket (connect, each
 * write, each read), so a stalled daemon costs at most that long per
 * wait and the call returns -ETIMEDOUT; a daemon that keeps answering a
 * byte at a time is bounded by the answer-size bounds instead. A FLUSH
 * waits for the daemon's write of the file: give it a timeout that covers
 * one file write on a loaded disk (seconds, not milliseconds).
 *
 * Thread-safety: a client is used by one thread at a time (one client
 * object per thread); it holds no global state, so clients on different
 * threads, to the same or different daemons, run in parallel. No call
 * raises SIGPIPE.
 *
 * File names are sent as given: relative names resolve in the daemon's
 * base dir (-b), and the daemon confines them there with -B. The
 * protocol splits on spaces and ends commands at a newline, so names and
 * definitions with whitespace or control characters are refused here
 * (-EINVAL) rather than sent.
 */
#ifndef VIGIE_RRDCACHED_H
#define VIGIE_RRDCACHED_H

#include <stddef.h>
#include <stdint.h>

#include "vigie/config.h"

#define VG_RRDCD_DEFAULT_PORT VG_RRDCACHED_DEFAULT_PORT
/* Longest line we send: rrdcached (1.7) reads a command into a fixed
 * buffer; librrd's client keeps its commands under 4096 bytes too. An
 * UPDATE with more values than fit is split into several commands. */
#define VG_RRDCD_CMD_MAX 4096
/* Longest line we accept in an answer, and most lines in one answer. */
#define VG_RRDCD_LINE_MAX 65536
#define VG_RRDCD_LINES_MAX 2000000
/* Most values (rows x data sources) one FETCH answer may hold. */
#define VG_RRDCD_FETCH_VALUES_MAX (16u * 1024 * 1024)
/* Longest file name or definition we send. */
#define VG_RRDCD_NAME_MAX 1024

struct vg_rrdcd;

/* Connect to ADDR: "unix:/path", "/path" (unix), "host:port",
 * "[v6addr]:port", "host" or "[v6addr]" (port 42217). io_timeout_ms > 0
 * bounds the connect and every later wait (see above). On success *out
 * is a new client the caller frees with vg_rrdcd_close. On failure *out
 * is NULL and the result is -EINVAL (bad address), -ETIMEDOUT,
 * -ECONNREFUSED, -ENOENT (no such socket), -EHOSTUNREACH (name not
 * resolved) or another -errno. A host name is resolved by getaddrinfo,
 * which the timeout does not bound: configure addresses, or names the
 * resolver answers locally (/etc/hosts). */
int vg_rrdcd_connect(const char *addr, int io_timeout_ms, struct vg_rrdcd **out);
/* Change io_timeout_ms (> 0) for the following calls: e.g. longer
 * around a FLUSH of a big file. 0 or -EINVAL. */
int vg_rrdcd_set_timeout(struct vg_rrdcd *c, int io_timeout_ms);
/* Send QUIT (best effort), close the socket, free the client. NULL ok. */
void vg_rrdcd_close(struct vg_rrdcd *c);
/* Close the current connection (if any) and connect again to the same
 * address. 0 or the errors of vg_rrdcd_connect. */
int vg_rrdcd_reconnect(struct vg_rrdcd *c);
/* 1 if the connection is usable, 0 after a failure that broke it. */
int vg_rrdcd_connected(const struct vg_rrdcd *c);
/* The wall time (vg_now_ms) at which the current connection was made
 * (by connect or reconnect), INT64_MAX when it is broken. A daemon that
 * restarted since would have broken it: while it stays connected, the
 * daemon process that answers it ran since that time. */
int64_t vg_rrdcd_connected_ms(const struct vg_rrdcd *c);
/* The text of the last failure ("" if none); valid until the next call
 * on C. */
const char *vg_rrdcd_error(const struct vg_rrdcd *c);
/* The address given to connect. */
const char *vg_rrdcd_address(const struct vg_rrdcd *c);

/* PING: 0 if the daemon answered PONG. */
int vg_rrdcd_ping(struct vg_rrdcd *c);

/* CREATE FILE -s STEP_S -b START DEFS... [-O]: DEFS are ndefs strings
 * "DS:..." and "RRA:..." as rrdcreate(1) takes them. no_overwrite adds
 * -O: the daemon refuses (-EEXIST) if the file exists; a daemon started
 * with -O refuses whatever this says. */
int vg_rrdcd_create(struct vg_rrdcd *c, const char *file, uint32_t step_s, int64_t start,
		    const char *const *defs, size_t ndefs, int no_overwrite);

/* The values of one file at n timestamps: ts[i] strictly increasing,
 * values row-major (values[i * nds + d] is DS d at ts[i]); NaN is sent
 * as unknown ("U"). ts are seconds, or milliseconds when ts_ms is set
 * (non-negative: sent as "seconds.mmm", which rrdcached and librrd keep
 * to the microsecond). */
struct vg_rrdcd_update {
	const char *file;
	size_t n;
	size_t nds;
	const int64_t *ts;
	const double *values;
	int ts_ms; /* 1: ts are milliseconds (sent as "s.mmm"), else seconds */
};

/* Send every value of U: one UPDATE command if it fits in
 * VG_RRDCD_CMD_MAX bytes, else a BATCH of UPDATEs of consecutive
 * timestamps (one round trip either way). On a daemon error some of the
 * values may have been taken (those of the chunks before the failing
 * one); the daemon refuses a timestamp not after the file's last one, so
 * sending the same values again fails rather than duplicates.
 * 0 means the daemon took the values into its cache, and nothing more:
 * rrdcached 1.7.2 checks a timestamp against the last one on receipt,
 * but the number of values against the file's data sources only when it
 * writes the file, and a write that fails then is only in its log (the
 * values are lost, LAST still counts them). nds must be the file's own
 * data source count. Not durable either: the daemon's journal (-j) is
 * buffered and a kill -9 of the daemon loses unflushed values; after
 * vg_rrdcd_flush of the file they are in the file (page cache). */
int vg_rrdcd_update(struct vg_rrdcd *c, const struct vg_rrdcd_update *u);

/* The result of a BATCH, per item. */
struct vg_rrdcd_batch_result {
	size_t nfailed; /* items with at least one refused command */
	size_t nerrors; /* error lines the daemon sent */
};

/* BATCH: every update of items[0..n) in one round trip (items may name
 * different files, or the same file with later timestamps). Returns 0
 * when the daemon answered, even if it refused some commands: then
 * item_err[i] (n entries, if not NULL) is 0 or the negative errno of
 * item i's first refused command (-ENOENT, -EACCES, -EREMOTEIO, ...),
 * res counts them, and vg_rrdcd_error gives the first refusal's text.
 * A failure of the connection returns its negative errno, and then
 * item_err says nothing. Validation happens before anything is sent:
 * one invalid item fails the call with -EINVAL and sends nothing. */
int vg_rrdcd_batch(struct vg_rrdcd *c, const struct vg_rrdcd_update *items, size_t n,
		   int *item_err, struct vg_rrdcd_batch_result *res);

/* FLUSH FILE: returns when the daemon has written FILE's pending
 * values. FLUSHALL: asks the daemon to start writing its files and
 * returns at once (rrdcached(1)); it promises no file (a file written
 * moments before may wait for the daemon's own timer): not for
 * durability, use FLUSH. */
int vg_rrdcd_flush(struct vg_rrdcd *c, const char *file);
/* FLUSH commands this process wrote to a daemon, over every client (one
 * per file, also inside a BATCH; written to the socket or a broken
 * connection's buffer): to hold against the daemons' FlushesReceived.
 * Any thread. */
uint64_t vg_rrdcd_flushes_written(void);
int vg_rrdcd_flushall(struct vg_rrdcd *c);
/* FLUSH of every file of files[0..n) in one BATCH round trip: the daemon
 * runs them in order, each returning once its file is written, and
 * answers after the last, so the answer waits for all n writes (the
 * client's timeout bounds that one wait: keep n small enough that n file
 * writes fit in it). Returns 0 when the daemon answered: item_err[i]
 * (n entries, if not NULL) is then 0 (written, or nothing was pending)
 * or the negative errno of the daemon's refusal of file i (-ENOENT: no
 * such file, -EACCES, -EREMOTEIO), counted in res. A failure of the
 * connection returns its negative errno and item_err says nothing (some
 * files may have been written). Names are validated before anything is
 * sent (-EINVAL). */
int vg_rrdcd_flush_many(struct vg_rrdcd *c, const char *const *files, size_t n,
			int *item_err, struct vg_rrdcd_batch_result *res);
/* vg_rrdcd_flush_many in two halves, so that one thread keeps FLUSH
 * BATCHes waiting on several connections at once (the daemon serves each
 * connection on its own thread): _send writes the BATCH and returns
 * without waiting (0, or the errors of vg_rrdcd_flush_many before the
 * answer); _recv with the same n reads its answer, with
 * vg_rrdcd_flush_many's results. In between, every other call on C but
 * vg_rrdcd_close answers -EBUSY; _recv without a matching _send answers
 * -EINVAL (-ENOTCONN once the connection broke). The timeout bounds each
 * wait of _recv, counted from the call, not from the send. */
int vg_rrdcd_flush_many_send(struct vg_rrdcd *c, const char *const *files, size_t n);
int vg_rrdcd_flush_many_recv(struct vg_rrdcd *c, size_t n, int *item_err,
			     struct vg_rrdcd_batch_result *res);
/* Files at most per vg_rrdcd_last_update_many call: their INFO commands
 * are written before any answer is read, so they must fit in the
 * sockets' buffers whatever the daemon does meanwhile (32 names of at
 * most VG_RRDCD_NAME_MAX bytes: 32 KiB). */
#define VG_RRDCD_LAST_MANY_MAX 32
/* The durable last update of every file of files[0..n) (n at most
 * VG_RRDCD_LAST_MANY_MAX) in two round trips: a FLUSH BATCH of them all
 * (as vg_rrdcd_flush_many), then INFO of each, the n commands written at
 * once and their answers read in order (INFO reads the file, so after the
 * FLUSH it shows what the daemon wrote). For each file, item_err[i] is 0
 * and last_s[i] its last_update in seconds; or the negative errno of the
 * daemon's refusal of its FLUSH (other than -ENOENT and -EREMOTEIO: the
 * INFO that follows reads what the file itself holds, which is what the
 * caller compares, whether the FLUSH happened or not) or of its INFO
 * (-ENOENT: no such file), or -EPROTO for an INFO answer without
 * last_update. Returns 0 when every answer was read (the
 * per-file results then hold), or the connection's negative errno (it is
 * broken; item_err and last_s say nothing). -EINVAL (nothing sent) for an
 * invalid name or n above the maximum. Not thread-safe on one C. */
int vg_rrdcd_last_update_many(struct vg_rrdcd *c, const char *const *files, size_t n,
			      int64_t *last_s, int *item_err);
/* vg_rrdcd_last_update_many with FORGET in place of FLUSH: the daemon
 * drops what it holds cached of each file (values not yet written are
 * lost: a FORGET BATCH, one round trip), then the INFOs read what each
 * file itself holds. -ENOENT from a FORGET (nothing cached) is no error;
 * otherwise the same results. Used after a daemon may have restarted with
 * its -j journal replayed (collector/backend_rrdcached.c, "A replay that
 * skips a value"). Not thread-safe on one C. */
int vg_rrdcd_forget_last_many(struct vg_rrdcd *c, const char *const *files, size_t n,
			      int64_t *last_s, int *item_err);
/* The last update of each file as the file itself holds it (INFO reads
 * the file, not the daemon's cache; LAST answers the cache's newest
 * UPDATE while the daemon holds the file, a failed write or not), the n
 * INFOs written at once and read
 * in order: one round trip, nothing FLUSHed or FORGOTten. Results as
 * vg_rrdcd_last_update_many's. Not thread-safe on one C. */
int vg_rrdcd_info_last_many(struct vg_rrdcd *c, const char *const *files, size_t n,
			    int64_t *last_s, int *item_err);
/* PENDING of each file of files[0..n) (n at most
 * VG_RRDCD_LAST_MANY_MAX), the n commands written at once and their
 * answers read in order, one round trip: what the daemon holds cached for
 * the file and has not written. newest_ms[i] is the newest time of those
 * values in ms (INT64_MIN: none; INT64_MAX when a line's time is not a
 * number, e.g. "N"), has_want[i] 1 when one of them is at exactly
 * want_ms[i] (want_ms may be NULL: all 0), oldest_ms[i] (oldest_ms may be
 * NULL) the oldest of those times past after_ms[i] (INT64_MAX: none; a
 * cached value at or before the file's last update is refused when
 * written), item_err[i] the negative errno of the daemon's refusal (then
 * the others say nothing). Returns 0 when
 * every answer was read, or the connection's negative errno (broken;
 * the results say nothing); -EINVAL (nothing sent) for an invalid name or
 * n above the maximum. Not thread-safe on one C. */
int vg_rrdcd_pending_many(struct vg_rrdcd *c, const char *const *files, size_t n,
			  const int64_t *want_ms, int64_t *newest_ms, int *has_want,
			  const int64_t *after_ms, int64_t *oldest_ms, int *item_err);
/* FORGET FILE: the daemon drops FILE from its cache; values not yet
 * written are lost (use before deleting a file). -ENOENT if the daemon
 * had nothing cached for it. */
int vg_rrdcd_forget(struct vg_rrdcd *c, const char *file);
/* LIST /DIR (rrdcached 1.7): whether the directory DIR (relative to the
 * daemon's -b, no leading '/') exists on the daemon's disk: 0 if it does
 * (its listing read and ignored), -ENOENT if it or one above it does not,
 * another negative errno otherwise (a daemon error keeps the connection;
 * -EREMOTEIO also for a daemon without LIST). Not thread-safe on one C. */
int vg_rrdcd_dir(struct vg_rrdcd *c, const char *dir);

/* FETCH FILE CF START END: the daemon flushes FILE first, so the answer
 * holds every value it took. On success *out owns ds_names, ts and
 * values; free with vg_rrdcd_fetch_free. Rows are at ts[0] = start+step,
 * ... (as rrd_fetch), values row-major with NaN for unknown. */
struct vg_rrdcd_fetch {
	int64_t start, end, step;
	size_t nds, nrows;
	char **ds_names;
	int64_t *ts;
	double *values;
};
int vg_rrdcd_fetch(struct vg_rrdcd *c, const char *file, const char *cf, int64_t start,
		   int64_t end, struct vg_rrdcd_fetch *out);
void vg_rrdcd_fetch_free(struct vg_rrdcd_fetch *f);

/* INFO FILE (not flushed first, see rrdcached(1)): key/value pairs as
 * `rrdtool info` prints them ("step" "10", "ds[value].type" "GAUGE").
 * type is rrd_info's type: 0 value, 1 count, 2 string, 3 int, 4 blob. */
struct vg_rrdcd_kv {
	char *key;
	char *value;
	int type;
};
struct vg_rrdcd_info {
	size_t n;
	struct vg_rrdcd_kv *items;
};
int vg_rrdcd_info(struct vg_rrdcd *c, const char *file, struct vg_rrdcd_info *out);
/* The value of KEY in INFO, NULL if absent. */
const char *vg_rrdcd_info_get(const struct vg_rrdcd_info *info, const char *key);
void vg_rrdcd_info_free(struct vg_rrdcd_info *info);

/* FIRST FILE RRA (the first row's time of archive rra) and LAST FILE
 * (the time of the last update the daemon has taken for FILE, written
 * or not, rounded down to a multiple of the file's step by the daemon:
 * 1.7.2 answers t - t % step). rrdcached 1.7.2 has no LASTUPDATE
 * command: the exact last time and values are in INFO (last_update,
 * ds[NAME].last_ds) after a FLUSH. */
int vg_rrdcd_first(struct vg_rrdcd *c, const char *file, unsigned rra, int64_t *out);
int vg_rrdcd_last(struct vg_rrdcd *c, const char *file, int64_t *out);

/* STATS: the daemon's counters ("QueueLength", "UpdatesReceived",
 * "JournalBytes", ...), values in items[i].value as text. Free with
 * vg_rrdcd_info_free. */
int vg_rrdcd_stats(struct vg_rrdcd *c, struct vg_rrdcd_info *out);

#endif
