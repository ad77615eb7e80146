/*
 * storage_flush.c — write the running collector's cache to its files on
 * demand: SIGUSR1, and `vigie-collector storage flush` which sends it and
 * waits for the answer (docs/operations.md, "Fresh reads").
 *
 * Why. The store caches values for a while before they reach a series'
 * file (include/vigie/store.h: while batches keep coming, until a series
 * holds flush_depth values or its oldest waited 300 s), so plain
 * `rrdtool fetch FILE` lags the API. "Archives readable by standard tools"
 * needs a way to see current data without stopping the collector.
 *
 * Design. A signal, because it is the collector's existing control path
 * (SIGHUP reloads keys) and needs no socket, no token and no port: the
 * handler only sets a flag; the receiver thread, between two batches
 * (compose.c's idle callback, at least every 200 ms), calls
 * vg_storage_flush_serve, which writes every cached value
 * (vg_store_flush: files backend: into the files; rrdcached: to the
 * daemons, where `rrdtool fetch --daemon` sees them) and then replaces
 * <data_dir>/flush.done with when it started and what it wrote. On the
 * receiver thread on purpose: no batch is taken meanwhile, so the flush
 * ends (values arriving during it would keep a flush from another thread
 * going), and agents wait for their ack a little longer (nothing is lost).
 *
 * The command finds the collector as the holder of the journal's flock
 * (/proc/locks: no pid file to go stale), notes the monotonic clock (one
 * clock for every process of the host), signals, and waits until
 * flush.done says a flush started at or after that moment. With no
 * collector running it opens the store itself, which replays a journal a
 * crash left into the files, and closes it: nothing is cached then.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vigie/clock.h"
#include "vigie/fsutil.h"
#include "vigie/storage_cmd.h"
#include "vigie/store.h"
#include "collector/journal.h"

#define PROG "vigie-collector storage flush"
#define DONE_FILE "flush.done"
#define WAIT_DEFAULT_S 300
#define WAIT_MAX_S 86400 /* a day */

int vg_storage_flush_serve(struct vg_store *s, const char *data_dir, char *msg, size_t msglen)
{
	struct vg_store_stats a, b;
	char path[4096], tmp[4200], why[1200] = "";
	int64_t t0 = vg_monotonic_ns();
	FILE *fp;
	int rc, cause = 0;

	vg_store_get_stats(s, &a);
	rc = vg_store_flush(s);
	vg_store_get_stats(s, &b);
	/* the receiver (this thread) adds nothing meanwhile; the storage
	 * thread's writes count as this flush's */
	uint64_t written = a.values_pending > b.values_pending ? a.values_pending - b.values_pending
							       : 0;
	int64_t ms = (vg_monotonic_ns() - t0) / 1000000;
	if (b.values_pending) {
		/* the cause the store recorded, and its last error (this is
		 * the receiver thread, whose error it is) */
		cause = vg_store_pending_cause(s, 0, why, sizeof(why));
		const char *le = vg_store_last_error(s);
		size_t l = strlen(why);
		if (*le)
			snprintf(why + l, sizeof(why) - l, "; %s", le);
	}
	if (b.values_pending)
		snprintf(msg, msglen,
			 "%s: %" PRIu64 " cached values written in %" PRId64 " ms, %" PRIu64
			 " still cached, waiting for %s (%s)",
			 rc ? "flush failed" : "flushed", written, ms, b.values_pending,
			 vg_store_pending_what(cause), why);
	else
		snprintf(msg, msglen,
			 "%s: %" PRIu64 " cached values written in %" PRId64
			 " ms, none left cached",
			 rc ? "flush failed" : "flushed", written, ms);
	if ((size_t)snprintf(path, sizeof(path), "%s/" DONE_FILE, data_dir) >= sizeof(path))
		return -ENAMETOOLONG;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (!(fp = fopen(tmp, "we")))
		return -errno;
	/* why: the cause the store recorded, one line, read by the command */
	for (char *c = why; *c; c++)
		if (*c == '\n')
			*c = ' ';
	fprintf(fp, "started_ns %" PRId64 "\nstatus %d\nwritten %" PRIu64 "\ncached %" PRIu64 "\nms %" PRId64 "\nwhy %s\n",
		t0, rc, written, b.values_pending, ms, why);
	if (fclose(fp) || rename(tmp, path)) {
		int e = -errno;
		unlink(tmp);
		return e;
	}
	return rc;
}

/* 1 if PID runs a `vigie-collector ... storage|token ...` command, not
 * the daemon (a SIGUSR1 would stop it). */
static int is_command(long pid)
{
	char path[64], buf[8192];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	for (ssize_t i = 0; i < n;) {
		const char *a = buf + i;
		if (!strcmp(a, "storage") || !strcmp(a, "token"))
			return 1;
		i += (ssize_t)strlen(a) + 1;
	}
	return 0;
}

/* flush.done's fields; 0 or -errno. */
static int read_done(const char *path, int64_t *started, int *status, uint64_t *written,
		     uint64_t *cached, int64_t *ms, char *why, size_t whylen)
{
	FILE *fp = fopen(path, "re");
	char line[1400];
	int n;

	if (!fp)
		return -errno;
	n = fscanf(fp, "started_ns %" SCNd64 " status %d written %" SCNu64 " cached %" SCNu64 " ms %" SCNd64 " ",
		   started, status, written, cached, ms);
	/* the cause line: absent in a file of a collector from before it */
	why[0] = '\0';
	if (n == 5 && fgets(line, sizeof(line), fp) && !strncmp(line, "why ", 4)) {
		line[strcspn(line, "\n")] = '\0';
		snprintf(why, whylen, "%.1199s", line + 4);
	}
	fclose(fp);
	return n == 5 ? 0 : -EAGAIN;
}

static int flush_offline(const struct vg_config *cfg, FILE *out, FILE *errf)
{
	struct vg_store *s = NULL;
	struct vg_store_stats st;
	char err[512];

	if (vg_store_open_beside(cfg->collector_data_dir, cfg, &s, err, sizeof(err))) {
		fprintf(errf, PROG ": %s\n", err);
		return 1;
	}
	if (!vg_store_owns_journal(s)) { /* a collector started meanwhile */
		vg_store_close(s);
		return -EAGAIN;
	}
	int hrc = vg_store_pending_hold(s, &st); /* decided once: see store.h */
	if (hrc) {
		fprintf(errf, PROG ": the storage thread: %s\n", strerror(-hrc));
		vg_store_close(s);
		return 1;
	}
	if (st.values_pending) {
		/* the replay's values for a daemon that is down, or whose
		 * files' check was cut short at [storage] check_max */
		char why[1200];
		int cause = vg_store_pending_cause(s, 1, why, sizeof(why));
		fprintf(errf,
			PROG ": no vigie-collector runs on %s, and %" PRIu64 " values of the "
			     "journal a crash left wait for %s (%s): they stay "
			     "in the journal, written when the collector runs, the daemon "
			     "answers and its files are checked (%s)\n",
			cfg->collector_data_dir, st.values_pending,
			cause & VG_STORE_PENDING_DAEMON ? "a storage daemon"
							: vg_store_pending_what(cause),
			why, vg_store_last_error(s));
		vg_store_close_held(s); /* as said: no new try at close */
		return 1;
	}
	vg_store_close(s);
	fprintf(out, "no vigie-collector runs on %s: nothing is cached%s\n",
		cfg->collector_data_dir,
		st.values_replayed ? " (the journal a crash left was written to the files now)" : "");
	return 0;
}

int vg_storage_flush_command(const struct vg_config *cfg, int argc, char **argv, FILE *out,
			     FILE *errf)
{
	char jdir[4096], done[4096];
	long wait_s = WAIT_DEFAULT_S, pid;
	int64_t t0;

	static const char usage[] =
		"usage: vigie-collector [--config FILE] [--data-dir DIR] storage "
		"flush [--timeout SECONDS]\n"
		"Make the running collector write its cached values to the series\n"
		"(SIGUSR1) and wait until it did, at most --timeout seconds (300; 1 to 86400).\n";

	if (argc == 3 && !strcmp(argv[2], "--help")) {
		fputs(usage, out);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[2], "--timeout")) {
		char *end;
		/* bounded: a value past LONG_MAX / 1000 overflowed the wait's
		 * end in milliseconds, to the past, and the command said at
		 * once that the collector did not report its flush */
		errno = 0;
		wait_s = strtol(argv[3], &end, 10);
		if (errno || end == argv[3] || *end || wait_s <= 0 || wait_s > WAIT_MAX_S) {
			fprintf(errf, PROG ": --timeout takes seconds from 1 to %d\n",
				WAIT_MAX_S);
			return 2;
		}
	} else if (argc != 2) {
		fputs(usage, errf);
		return 2;
	}
	{
		/* a typo in --data-dir: said, not a new directory (the store's
		 * open below would make one) */
		struct stat st;
		int e = stat(cfg->collector_data_dir, &st) ? errno
			: S_ISDIR(st.st_mode)              ? 0
							   : ENOTDIR;
		if (e) {
			fprintf(errf, PROG ": data directory %s: %s (check --data-dir or "
					   "[collector] data_dir)\n",
				cfg->collector_data_dir, strerror(e));
			return 1;
		}
	}
	snprintf(jdir, sizeof(jdir), "%s/journal", cfg->collector_data_dir);
	snprintf(done, sizeof(done), "%s/" DONE_FILE, cfg->collector_data_dir);
	for (int attempt = 0;; attempt++) {
		pid = vg_fs_flock_holder(jdir);
		if (pid < 0 && pid != -ENOENT) {
			fprintf(errf, PROG ": %s: %s\n", jdir, strerror((int)-pid));
			return 1;
		}
		if (pid > 0)
			break;
		int rc = flush_offline(cfg, out, errf);
		if (rc != -EAGAIN || attempt == 2)
			return rc == -EAGAIN ? 1 : rc;
	}
	if (is_command(pid)) {
		fprintf(errf, PROG ": %s is held by a vigie-collector storage or token command "
				   "(pid %ld), not the daemon: try again when it ends\n",
			cfg->collector_data_dir, pid);
		return 1;
	}
	t0 = vg_monotonic_ns();
	if (kill((pid_t)pid, SIGUSR1)) {
		fprintf(errf, PROG ": cannot signal vigie-collector (pid %ld): %s (run as its "
				   "user, or root)\n",
			pid, strerror(errno));
		return 1;
	}
	for (int64_t end = vg_monotonic_ms() + wait_s * 1000; vg_monotonic_ms() < end;) {
		int64_t started, ms;
		uint64_t written, cached;
		char why[1200];
		int status;
		struct timespec ts = {0, 50 * 1000000};

		if (!read_done(done, &started, &status, &written, &cached, &ms, why, sizeof(why)) &&
		    started >= t0) {
			char tail[1300] = "";
			if (cached)
				snprintf(tail, sizeof(tail),
					 ", %" PRIu64 " still cached, waiting for their storage "
					 "daemon (%s)",
					 cached, why[0] ? why : "see its log and /v1/health");
			fprintf(out, "%s (vigie-collector pid %ld): %" PRIu64 " cached values "
				     "written in %" PRId64 " ms%s\n",
				status ? "flush failed" : "flushed", pid, written, ms, tail);
			return status || cached ? 1 : 0;
		}
		nanosleep(&ts, NULL);
	}
	fprintf(errf, PROG ": vigie-collector (pid %ld) did not report a flush within %ld s "
			   "(its log says why)\n",
		pid, wait_s);
	return 1;
}
