/*
 * store_rrdcached_test.c — the store on two real rrdcached daemons: a
 * daemon killed (kill -9) leaves the other daemon's series written and
 * readable, its own series' values wait in the cache and the journal
 * (reads of them answer -EHOSTUNREACH, its state says down), and when it
 * is back every value is in its file exactly once — whether the daemon
 * returns while the collector runs or after a collector crash (replay).
 * Values FLUSHed by the store's sync survive a kill -9 of the daemon.
 * A collector started again while a daemon is still down opens, holding
 * the replayed values for it, and writes them once when it is back.
 * Many series go to a daemon in one round trip. A daemon started
 * without -R (it cannot create a new series' directory) makes the batch
 * wait, naming the cause, instead of acknowledging values it never wrote.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <rrd.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/rrdcached.h"
#include "vigie/storage_cmd.h"
#include "vigie/store.h"
#include "rrdcached_harness.h"
#include "../support/journal_segments.h"
#include "../support/rrd_last.h"
#include "../support/store_series.h"
#include "../support/tmpdir.h"

#define NS 24 /* series */

struct fx {
	char dir[256];
	struct hrd_daemon d[2];
	struct vg_config cfg;
	struct vg_store *s;
	int on1[NS]; /* series i lives on daemon 1 */
};

static int setup(void **state)
{
	static const char *const extra[] = {"-O", "-R", NULL};
	struct fx *f = calloc(1, sizeof(*f));
	char err[256], daemons[PATH_MAX * 2];

	if (fx_tmpdir(f->dir, sizeof(f->dir), "store-rcd") || hrd_start(&f->d[0], NULL, extra) ||
	    hrd_start(&f->d[1], NULL, extra))
		return -1;
	snprintf(daemons, sizeof(daemons), "%.400s, %.200s", f->d[0].unix_addr, f->d[1].tcp_addr);
	fxs_config(&f->cfg, "1m:1d,5m:7d", daemons, NULL);
	if (vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	vg_store_close(f->s);
	hrd_cleanup(&f->d[0]);
	hrd_cleanup(&f->d[1]);
	if (fx_rm_tree(f->dir))
		fprintf(stderr, "cannot remove %s\n", f->dir);
	free(f);
	return 0;
}

/* One minute of every series: value = 1000 * series + minute. */
static void write_minute(struct vg_store *s, int minute)
{
	assert_int_equal(fxs_write_minute(s, "node", 0, NS, minute), 0);
}

static void find_owners(struct fx *f)
{
	int n1 = 0;

	for (int i = 0; i < NS; i++) {
		char id[16], path[PATH_MAX], addr[256];
		snprintf(id, sizeof(id), "node%d", i);
		assert_int_equal(vg_store_locate(f->s, VG_RT_HOST, id, "load.1", path,
						 sizeof(path), addr, sizeof(addr)),
				 0);
		f->on1[i] = !strcmp(addr, f->d[1].tcp_addr);
		n1 += f->on1[i];
	}
	assert_true(n1 > 0 && n1 < NS); /* both daemons hold some */
}

/* The store gives the backend the cached values of many series per call:
 * one BATCH round trip per daemon, not one round trip per series (the
 * daemon's and the collector's CPU per value went mostly to round trips:
 * docs/benchmarks.md "Store backends"). */
static void test_many_series_per_round_trip(void **state)
{
	struct fx *f = *state;
	struct vg_store_stats st0, st1;

	write_minute(f->s, 0);
	assert_int_equal(vg_store_flush(f->s), 0);
	vg_store_get_stats(f->s, &st0);
	write_minute(f->s, 1);
	write_minute(f->s, 2);
	assert_int_equal(vg_store_flush(f->s), 0);
	vg_store_get_stats(f->s, &st1);
	assert_int_equal(st1.values_flushed - st0.values_flushed, 2 * NS);
	/* one call per daemon; at most twice that if the storage thread took
	 * some of them first */
	assert_true(st1.flushes - st0.flushes >= 2);
	assert_true(st1.flushes - st0.flushes <= 4);
	for (int i = 0; i < NS; i++)
		fxs_check_series(f->s, i, 3);
}

/* Flush until no value waits (the daemon back, the store has reached it
 * again), for up to 30 s: a series waits 1 s after its daemon failed and
 * the daemon up to 2 s after repeated failures (backend_rrdcached.c), and
 * on a loaded machine the restarted daemon may not answer the store's
 * first PING (1 s) either, so a fixed sleep before one flush left values
 * pending. The caller asserts values_pending 0. */
static void flush_until_drained(struct fx *f)
{
	struct vg_store_stats st;

	for (int i = 0; i < 120; i++) {
		int rc = vg_store_flush(f->s);
		assert_true(rc == 0 || rc == -EIO); /* -EIO: its sync failed */
		vg_store_get_stats(f->s, &st);
		if (!rc && !st.values_pending)
			return;
		usleep(250 * 1000);
	}
}

/* The last update (s) of node<i>'s file on daemon D, read by librrd from
 * the file itself (not through the daemon, whose cache holds writes for
 * an hour: only a FLUSH puts them there). */
static time_t file_last_s(const struct hrd_daemon *d, int i)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/host/node%d/load.1.rrd", d->base, i);
	return fx_rrd_last_s(path);
}

static void test_daemon_down_then_back(void **state)
{
	struct fx *f = *state;
	struct vg_store_daemon dm[4];
	struct vg_store_stats st;

	write_minute(f->s, 0);
	write_minute(f->s, 1);
	assert_int_equal(vg_store_flush(f->s), 0);
	find_owners(f);

	assert_int_equal(hrd_kill(&f->d[1], SIGKILL), 0);
	for (int m = 2; m < 6; m++)
		write_minute(f->s, m);
	/* daemon 1's files not synced: said */
	assert_int_equal(vg_store_flush(f->s), -EIO);
	/* daemon 0's are: FLUSHed, every file at its newest value. The
	 * flush's sync was skipped while the journal's oldest segment was
	 * held by daemon 1's values (no segment to retire), and daemon 0
	 * still owed the FLUSH of each file it had written */
	assert_int_equal(vg_store_daemons(f->s, dm, 4), 2);
	assert_int_equal(dm[0].pending, 0);
	for (int i = 0; i < NS; i++)
		if (!f->on1[i])
			assert_int_equal(file_last_s(&f->d[0], i), FXS_T0 + 300);
	for (int i = 0; i < NS; i++) {
		if (!f->on1[i]) {
			fxs_check_series(f->s, i, 6); /* the other daemon: unaffected */
			continue;
		}
		struct vg_series r;
		char id[16];
		snprintf(id, sizeof(id), "node%d", i);
		assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, id, "load.1", VG_CF_AVERAGE,
						FXS_MS(FXS_T0), FXS_MS(FXS_T0 + 300), 60, 0, &r),
				 -EHOSTUNREACH);
	}
	assert_int_equal(vg_store_daemons(f->s, dm, 4), 2);
	assert_int_equal(dm[0].up, 1);
	assert_int_equal(dm[1].up, 0);
	assert_true(strlen(dm[1].error) > 0);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.write_errors, 0); /* waiting, not failed */
	assert_true(st.values_pending > 0);

	/* back (its own journal replayed): everything drains, once */
	assert_int_equal(hrd_restart(&f->d[1]), 0);
	flush_until_drained(f);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.write_errors, 0);
	for (int i = 0; i < NS; i++)
		fxs_check_series(f->s, i, 6);
}

/* The collector "crashes" (closed without its daemon) while values wait;
 * at the next open, with the daemon back, the replay writes them to the
 * recorded owner, once. Then the daemon is killed -9 after a sync: what
 * was synced is in the files. */
static void test_replay_and_daemon_crash(void **state)
{
	struct fx *f = *state;
	char err[256];

	write_minute(f->s, 0);
	assert_int_equal(vg_store_flush(f->s), 0);
	find_owners(f);
	assert_int_equal(hrd_kill(&f->d[1], SIGKILL), 0);
	for (int m = 1; m < 4; m++)
		write_minute(f->s, m);
	vg_store_close(f->s); /* values for daemon 1 stay in the journal */
	f->s = NULL;
	assert_int_equal(hrd_restart(&f->d[1]), 0);
	assert_int_equal(vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)), 0);
	for (int i = 0; i < NS; i++)
		fxs_check_series(f->s, i, 4);

	/* synced (FLUSHed) values survive a kill -9 of either daemon */
	write_minute(f->s, 4);
	assert_int_equal(vg_store_flush(f->s), 0);
	vg_store_close(f->s);
	f->s = NULL;
	assert_int_equal(hrd_kill(&f->d[0], SIGKILL), 0);
	assert_int_equal(hrd_kill(&f->d[1], SIGKILL), 0);
	assert_int_equal(hrd_restart(&f->d[0]), 0);
	assert_int_equal(hrd_restart(&f->d[1]), 0);
	assert_int_equal(vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)), 0);
	for (int i = 0; i < NS; i++)
		fxs_check_series(f->s, i, 5);
}

/* The journal's segments (*.vgj) in the store's data dir FX. */
static int segments(const struct fx *f, const char *suffix)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/journal", f->dir);
	assert_non_null(d = opendir(path));
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		n += l > strlen(suffix) && !strcmp(e->d_name + l - strlen(suffix), suffix);
	}
	closedir(d);
	return n;
}

/* The journal's segments left once a flush retired them, polled for up
 * to 30 s: vg_store_flush writes every cached value, but the sync that
 * retires the segments is skipped when the storage thread is running its
 * own (reclaim), which then may not cover the newest segment; the next
 * flush retires it. An assertion right after one flush failed 4 runs of
 * 6 on a loaded machine once no sleep(2) came before it. */
static int journal_retired(struct fx *f)
{
	int n = segments(f, ".vgj");

	for (int i = 0; i < 120 && n; i++) {
		usleep(250 * 1000);
		assert_int_equal(vg_store_flush(f->s), 0);
		n = segments(f, ".vgj");
	}
	return n;
}

/* Copy file a to b (a journal segment), every byte. */
static void copy_file(const char *a, const char *b)
{
	FILE *in = fopen(a, "rb"), *out = fopen(b, "wb");
	char buf[65536];
	size_t n;

	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

/* Copy every segment of the journal to (TO=1) or back from (TO=0) the
 * directory <dir>/saved. */
static void copy_segments(const struct fx *f, int to)
{
	char jdir[PATH_MAX], sdir[PATH_MAX], a[PATH_MAX * 2], b[PATH_MAX * 2];
	struct dirent *e;
	DIR *d;

	snprintf(jdir, sizeof(jdir), "%s/journal", f->dir);
	snprintf(sdir, sizeof(sdir), "%s/saved", f->dir);
	if (to)
		assert_true(mkdir(sdir, 0755) == 0 || errno == EEXIST);
	assert_non_null(d = opendir(to ? jdir : sdir));
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l < 4 || strcmp(e->d_name + l - 4, ".vgj"))
			continue;
		snprintf(a, sizeof(a), "%s/%s", to ? jdir : sdir, e->d_name);
		snprintf(b, sizeof(b), "%s/%s", to ? sdir : jdir, e->d_name);
		copy_file(a, b);
	}
	closedir(d);
}

/* The collector dies while a daemon is down and values wait for it, and
 * starts again before the daemon: the open must not need the daemon. Its
 * journal also holds values the daemons' files already have (a segment
 * not yet retired when a kill -9 came: simulated by putting a retired
 * segment back). The open replays everything: the series on the daemon
 * that answers skip what their files have; those on the one down are
 * held with their last update unknown (reads -EHOSTUNREACH, the daemon
 * down, the segments kept) and new batches are taken; when the daemon is
 * back, what its files have is skipped as already stored, the rest
 * written: every minute once, and the journal drained. */
static void test_open_daemon_down(void **state)
{
	struct fx *f = *state;
	struct vg_store_daemon dm[4];
	struct vg_store_stats st;
	char err[512];
	int n1 = 0;

	write_minute(f->s, 0);
	write_minute(f->s, 1);
	assert_int_equal(vg_store_flush(f->s), 0);
	find_owners(f);
	for (int i = 0; i < NS; i++)
		n1 += f->on1[i];
	write_minute(f->s, 2);
	write_minute(f->s, 3);
	copy_segments(f, 1); /* minutes 2 and 3, written next */
	assert_int_equal(vg_store_flush(f->s), 0);
	assert_int_equal(journal_retired(f), 0);

	assert_int_equal(hrd_kill(&f->d[1], SIGKILL), 0);
	write_minute(f->s, 4);
	write_minute(f->s, 5);
	vg_store_close(f->s); /* as a kill -9: daemon 1's values in the journal */
	f->s = NULL;
	copy_segments(f, 0); /* and a segment whose values the files have */
	assert_true(segments(f, ".vgj") >= 2);

	/* started again, daemon 1 still down */
	if (vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)))
		fail_msg("open with a daemon down: %s", err);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(st.values_pending, 4 * (uint64_t)n1); /* minutes 2-5 */
	assert_true(segments(f, ".vgj") >= 2);
	assert_int_equal(vg_store_daemons(f->s, dm, 4), 2);
	assert_int_equal(dm[1].up, 0);
	for (int i = 0; i < NS; i++) {
		struct vg_series r;
		char id[16];
		if (!f->on1[i]) {
			fxs_check_series(f->s, i, 6);
			continue;
		}
		snprintf(id, sizeof(id), "node%d", i);
		assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, id, "load.1", VG_CF_AVERAGE,
						FXS_MS(FXS_T0), FXS_MS(FXS_T0 + 300), 60, 0, &r),
				 -EHOSTUNREACH);
	}
	write_minute(f->s, 6);                        /* taken, not refused */
	assert_int_equal(vg_store_flush(f->s), -EIO); /* daemon 1 down */
	assert_true(segments(f, ".vgj") >= 2);        /* nothing retired for daemon 1 */

	/* daemon 1 back: minutes 2-3 found in its files, 4-6 written */
	assert_int_equal(hrd_restart(&f->d[1]), 0);
	flush_until_drained(f);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.write_errors, 0);
	assert_true(st.values_duplicate >= 2 * (uint64_t)n1);
	for (int i = 0; i < NS; i++)
		fxs_check_series(f->s, i, 7);
	assert_int_equal(journal_retired(f), 0);
	assert_int_equal(segments(f, ".kept"), 0);
}

/* The bound holds after such an open: the replayed values count in
 * cache_values, a batch that fits is taken, the one that does not is
 * refused (-EAGAIN: RETRY to the agent) until the daemon takes them. */
static void test_open_daemon_down_bound(void **state)
{
	struct fx *f = *state;
	struct vg_store_stats st;
	char err[512];
	int n1 = 0;

	write_minute(f->s, 0);
	assert_int_equal(vg_store_flush(f->s), 0);
	find_owners(f);
	for (int i = 0; i < NS; i++)
		n1 += f->on1[i];
	assert_int_equal(hrd_kill(&f->d[1], SIGKILL), 0);
	for (int m = 1; m < 4; m++)
		write_minute(f->s, m);
	vg_store_close(f->s);
	f->s = NULL;

	f->cfg.storage_cache_values = 4 * (uint64_t)n1 + NS - 1;
	if (vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)))
		fail_msg("open with a daemon down: %s", err);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_pending, 3 * (uint64_t)n1);
	write_minute(f->s, 4);                        /* fits */
	assert_int_equal(vg_store_flush(f->s), -EIO); /* daemon 1 down */
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_pending, 4 * (uint64_t)n1);
	assert_int_equal(fxs_write_minute(f->s, "node", 0, NS, 5), -EAGAIN);
	/* the RETRY says what it waits for: not a slow writer, the daemon */
	assert_non_null(strstr(vg_store_last_error(f->s), "storage full"));
	assert_non_null(strstr(vg_store_last_error(f->s), "storage daemon that is down"));

	assert_int_equal(hrd_restart(&f->d[1]), 0);
	flush_until_drained(f);
	write_minute(f->s, 5);
	assert_int_equal(vg_store_flush(f->s), 0);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.write_errors, 0);
	for (int i = 0; i < NS; i++)
		fxs_check_series(f->s, i, 6);
	assert_int_equal(journal_retired(f), 0);
}

/* A journal spread over more segment numbers than the running store's
 * ring (left by an older version: its segments kept for a next start)
 * cannot become the live journal: with a daemon down the open fails,
 * saying why, and keeps everything; with the daemon back it succeeds and
 * writes every value once. */
static void test_open_daemon_down_wide_journal(void **state)
{
	struct fx *f = *state;
	char err[512], jdir[PATH_MAX], a[PATH_MAX * 2], b[PATH_MAX * 2], name[64] = "";
	struct dirent *e;
	DIR *d;

	write_minute(f->s, 0);
	assert_int_equal(vg_store_flush(f->s), 0);
	find_owners(f);
	assert_int_equal(hrd_kill(&f->d[1], SIGKILL), 0);
	write_minute(f->s, 1);
	write_minute(f->s, 2);
	vg_store_close(f->s);
	f->s = NULL;
	/* the same segment again, 100 numbers later (its values duplicates) */
	snprintf(jdir, sizeof(jdir), "%s/journal", f->dir);
	assert_non_null(d = opendir(jdir));
	while ((e = readdir(d)))
		if (strlen(e->d_name) == 20 && strstr(e->d_name, ".vgj"))
			snprintf(name, sizeof(name), "%s", e->d_name);
	closedir(d);
	assert_true(name[0]);
	snprintf(a, sizeof(a), "%s/%s", jdir, name);
	snprintf(b, sizeof(b), "%s/%016llx.vgj", jdir, strtoull(name, NULL, 16) + 100);
	copy_file(a, b);

	assert_int_equal(vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)), -EAGAIN);
	assert_non_null(strstr(err, "spread over"));
	assert_int_equal(segments(f, ".vgj"), 2);
	assert_int_equal(hrd_restart(&f->d[1]), 0);
	if (vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)))
		fail_msg("open with the daemon back: %s", err);
	for (int i = 0; i < NS; i++)
		fxs_check_series(f->s, i, 3);
	assert_int_equal(segments(f, ".vgj"), 0);
}

/* The daemon's options: without -R (it creates a file only in a
 * directory that is there), and with it. */
static const char *const without_r[] = {"-O", NULL};
static const char *const with_r[] = {"-O", "-R", NULL};

/* D, a daemon started with EXTRA, and a store on it in a new temporary
 * directory DIR (of size LEN, named after NAME) with CFG: the store. */
static struct vg_store *daemon_store(struct hrd_daemon *d, struct vg_config *cfg, char *dir,
				     size_t len, const char *name, const char *const *extra)
{
	struct vg_store *s;
	char err[1024];

	memset(d, 0, sizeof(*d));
	assert_int_equal(fx_tmpdir(dir, len, name), 0);
	assert_int_equal(hrd_start(d, NULL, extra), 0);
	fxs_config(cfg, "1m:1d", d->unix_addr, NULL);
	if (vg_store_open(dir, cfg, &s, err, sizeof(err)))
		fail_msg("open: %s", err);
	return s;
}

/* D killed and started again with -R, as an operator fixes it. */
static void restart_with_r(struct hrd_daemon *d)
{
	hrd_kill(d, SIGKILL);
	for (int i = 0; with_r[i]; i++)
		d->extra[i] = with_r[i];
	assert_int_equal(hrd_restart(d), 0);
}

/* The directories of node0's and node1's files made on D's base, as an
 * operator (or a volume mounted again) does. */
static void node_dirs(struct hrd_daemon *d)
{
	char sub[PATH_MAX + 32];

	snprintf(sub, sizeof(sub), "%s/host", d->base);
	assert_int_equal(mkdir(sub, 0700), 0);
	for (int i = 0; i < 2; i++) {
		snprintf(sub, sizeof(sub), "%s/host/node%d", d->base, i);
		assert_int_equal(mkdir(sub, 0700), 0);
	}
}

/* vg_store_flush until it passes, every 250 ms up to 60 s (only a bound
 * against a hang): its last answer. */
static int flush_until_passed(struct vg_store *s)
{
	int rc = vg_store_flush(s);

	for (int k = 0; k < 240 && rc; k++) {
		usleep(250 * 1000);
		rc = vg_store_flush(s);
	}
	return rc;
}

/* A daemon started without -R cannot create a series' directories: its
 * CREATE answers "No permission to recursively create" (or "No such
 * file or directory" for the parent). The batch was acknowledged with
 * its values only in a *.kept journal segment, never written, and the
 * daemon showed "up". Now: the batch waits (-EAGAIN: RETRY, the agent
 * keeps it), counted in series_unreachable and in the daemon's
 * create_errors, and the daemon's state names the cause (-R); started
 * again with -R, the same batch is taken and written. */
static void test_daemon_without_R(void **state)
{
	struct hrd_daemon d;
	struct vg_config cfg;
	struct vg_store *s;
	struct vg_store_stats st;
	struct vg_store_daemon dm[2];
	char dir[256];

	(void)state;
	s = daemon_store(&d, &cfg, dir, sizeof(dir), "store-rcd-noR", without_r);
	/* before: 0 (acknowledged), the values in write_errors and a kept
	 * journal segment, the daemon "up" without an error */
	assert_int_equal(fxs_write_minute(s, "node", 0, 2, 0), -EAGAIN);
	assert_non_null(strstr(vg_store_last_error(s), "cannot create directories"));
	assert_non_null(strstr(vg_store_last_error(s), "-R"));
	assert_non_null(strstr(vg_store_last_error(s), d.unix_addr));
	vg_store_get_stats(s, &st);
	assert_true(st.series_unreachable >= 1);
	assert_int_equal(st.values_written, 0);
	assert_int_equal(st.segments_kept, 0);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	assert_non_null(strstr(dm[0].error, "cannot create directories"));
	assert_non_null(strstr(dm[0].error, "-R"));
	assert_true(dm[0].create_errors >= 1);
	assert_true(dm[0].cannot_create);
	/* the same again: refused again, the same cause */
	assert_int_equal(fxs_write_minute(s, "node", 0, 2, 0), -EAGAIN);
	/* the operator restarts the daemon with -R: the batch is taken */
	restart_with_r(&d);
	int rc = -EAGAIN;
	for (int i = 0; i < 40 && rc == -EAGAIN; i++) {
		rc = fxs_write_minute(s, "node", 0, 2, 0);
		if (rc == -EAGAIN)
			usleep(250 * 1000);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(fxs_write_minute(s, "node", 0, 2, 1), 0);
	assert_int_equal(vg_store_flush(s), 0);
	fxs_check_series(s, 0, 2);
	fxs_check_series(s, 1, 2);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	assert_false(dm[0].cannot_create);
	assert_null(strstr(dm[0].error, "-R"));
	vg_store_close(s);
	hrd_cleanup(&d);
	assert_int_equal(fx_rm_tree(dir), 0);
}

/* The clock of the -R cause's expiry (backend.h
 * vg_rrd_rrdcached_test_nodir_now): the monotonic time plus g_nodir_skew_ms. */
static int64_t g_nodir_skew_ms;

int64_t vg_rrd_rrdcached_test_nodir_now(int64_t now_ms)
{
	return now_ms + __atomic_load_n(&g_nodir_skew_ms, __ATOMIC_RELAXED);
}

/* The "start it with -R" cause expires (docs/operations.md): a series
 * whose create the daemon refused and that nobody tries again (its batch
 * answered RETRY, its agent gone) holds the cause 2 minutes; a create
 * that succeeds within them leaves it shown, one after them clears it.
 * The expiry's clock is moved by the test hook, not waited for. */
static void test_no_R_cause_expires(void **state)
{
	struct hrd_daemon d;
	struct vg_config cfg;
	struct vg_store *s;
	struct vg_store_daemon dm[2];
	char dir[200];

	(void)state;
	s = daemon_store(&d, &cfg, dir, sizeof(dir), "store-rcd-noR-expiry", without_r);
	node_dirs(&d); /* node0's and node1's, not node5's */
	/* node5, new, in no directory: RETRY, the cause shown */
	assert_int_equal(fxs_write_minute(s, "node", 5, 1, 0), -EAGAIN);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	assert_true(dm[0].cannot_create);
	/* 1 minute 59 s later node0 is created: node5 still counts */
	__atomic_store_n(&g_nodir_skew_ms, 119 * 1000, __ATOMIC_RELAXED);
	assert_int_equal(fxs_write_minute(s, "node", 0, 1, 0), 0);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	assert_true(dm[0].cannot_create);
	assert_non_null(strstr(dm[0].error, "start rrdcached with -R"));
	/* 2 minutes 1 s after node5's refusal node1 is created: the cause
	 * expired and clears */
	__atomic_store_n(&g_nodir_skew_ms, 121 * 1000, __ATOMIC_RELAXED);
	assert_int_equal(fxs_write_minute(s, "node", 1, 1, 0), 0);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	assert_false(dm[0].cannot_create);
	assert_null(strstr(dm[0].error, "-R"));
	__atomic_store_n(&g_nodir_skew_ms, 0, __ATOMIC_RELAXED);
	vg_store_close(s);
	hrd_cleanup(&d);
	assert_int_equal(fx_rm_tree(dir), 0);
}

/* A resource's directory removed (rm -r base/host/node0, its file
 * FORGOTten first) under a daemon started without -R: the store creates
 * the file again (its type directory is there: a deletion), and the
 * daemon refuses the CREATE ("No permission to recursively create").
 * Nothing is lost, counted a write error or created elsewhere: node0's
 * values wait in the cache and the journal, the daemon's state says
 * "start rrdcached with -R" (/v1/health's cause) and counts the refusals,
 * the other series are written as usual (a new one created in a
 * directory that is there leaves that cause shown: node0 still waits);
 * restarted with -R, the next try
 * creates the file (series_recreated) and writes every waiting value. */
static void test_recreate_daemon_without_R(void **state)
{
	struct hrd_daemon d;
	struct vg_config cfg;
	struct vg_store *s;
	struct vg_store_stats st;
	struct vg_store_daemon dm[2];
	struct vg_series r;
	struct stat sb;
	char dir[200], sub[PATH_MAX + 32];

	(void)state;
	s = daemon_store(&d, &cfg, dir, sizeof(dir), "store-rcd-recreate-noR", without_r);
	/* without -R the daemon creates files only in directories that are
	 * there: the operator made them */
	node_dirs(&d);
	for (int m = 0; m < 2; m++)
		assert_int_equal(fxs_write_minute(s, "node", 0, 2, m), 0);
	assert_int_equal(vg_store_flush(s), 0);

	/* node0's directory removed by the operator */
	fxs_forget(d.unix_addr, "host/node0/load.1.rrd");
	snprintf(sub, sizeof(sub), "%s/host/node0", d.base);
	assert_int_equal(fx_rm_tree(sub), 0);
	for (int m = 2; m < 4; m++) {
		assert_int_equal(fxs_write_minute(s, "node", 0, 2, m), 0);
		(void)vg_store_flush(s);
	}
	assert_int_not_equal(vg_store_flush(s), 0);
	vg_store_get_stats(s, &st);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	printf("# without -R: pending %llu, recreated %llu, write errors %llu, create errors "
	       "%llu: %s\n",
	       (unsigned long long)st.values_pending, (unsigned long long)st.series_recreated,
	       (unsigned long long)st.write_errors, (unsigned long long)dm[0].create_errors,
	       dm[0].error);
	assert_int_equal(st.values_pending, 2); /* node0's minutes 2 and 3 */
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(st.segments_kept, 0);
	assert_int_equal(st.series_recreated, 0);
	assert_int_equal(st.series_dir_missing, 0); /* not a volume gone */
	assert_int_equal(stat(sub, &sb), -1);
	assert_true(dm[0].cannot_create);
	assert_true(dm[0].create_errors >= 1);
	assert_non_null(strstr(dm[0].error, "start rrdcached with -R"));
	assert_true(journal_segments(dir) >= 1);
	/* a new series in a directory that is there (node2's, made by the
	 * operator) is created: node0 still waits, so the cause stays (it
	 * was cleared until node0's next try: /v1/health flapped) */
	snprintf(sub, sizeof(sub), "%s/host/node2", d.base);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(fxs_write_minute(s, "node", 2, 1, 3), 0);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	assert_true(dm[0].cannot_create);
	assert_non_null(strstr(dm[0].error, "start rrdcached with -R"));
	snprintf(sub, sizeof(sub), "%s/host/node0", d.base);

	/* restarted with -R: node0's file made again, its values written */
	restart_with_r(&d);
	assert_int_equal(flush_until_passed(s), 0);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(st.series_recreated, 1);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	assert_false(dm[0].cannot_create);
	fxs_check_series(s, 1, 4);
	/* node0: minutes 2 and 3 in the new file (what the old held is gone) */
	assert_int_equal(vg_store_fetch(s, VG_RT_HOST, "node0", "load.1", VG_CF_AVERAGE,
					FXS_MS(FXS_T0), FXS_MS(FXS_T0 + 180), 60, 0, &r),
			 0);
	int seen = 0;
	for (size_t k = 0; k < r.n; k++) {
		if (isnan(r.points[k].value))
			continue;
		int minute = (int)((r.points[k].time_ms / 1000 - FXS_T0) / 60) + 1;
		assert_true(minute >= 2 && r.points[k].value == (double)minute);
		seen++;
	}
	assert_int_equal(seen, 2);
	vg_series_free(&r);
	vg_store_close(s);
	assert_int_equal(journal_segments(dir), 0);
	hrd_cleanup(&d);
	assert_int_equal(fx_rm_tree(dir), 0);
}

/* The journal's replay at start-up meets a daemon started without -R on
 * an emptied base (re-installed, or a volume not mounted at its -b: the
 * daemon's disk cannot tell them apart). The series the journal holds
 * values of are not new, and their directories are missing: out of reach,
 * so nothing is created for them (issue 14; before, the start refused,
 * naming -R, and a start with -R created fresh files that would shadow the
 * real ones once the volume was back). The start succeeds, their values
 * wait in the cache (counted as a directory missing), the segments stay,
 * and once the directories are there again (the volume mounted, or made
 * by the operator) every value is written, without -R. */
static void test_replay_daemon_without_R(void **state)
{
	struct hrd_daemon d;
	struct vg_config cfg;
	struct vg_store *s;
	struct vg_store_stats st;
	struct stat sb;
	char dir[200], err[1024], sub[PATH_MAX + 32];

	(void)state;
	s = daemon_store(&d, &cfg, dir, sizeof(dir), "store-rcd-replay-noR", with_r);
	assert_int_equal(fxs_write_minute(s, "node", 0, 2, 0), 0);
	assert_int_equal(fxs_write_minute(s, "node", 0, 2, 1), 0);
	assert_int_equal(fxs_write_minute(s, "node", 0, 2, 2), 0);
	assert_int_equal(hrd_kill(&d, SIGKILL), 0);
	vg_store_close(s); /* as a kill -9: the values in the journal */
	int nseg = journal_segments(dir);
	assert_true(nseg >= 1);

	/* the daemon back on an empty base, without -R */
	assert_int_equal(fx_rm_tree(d.base), 0);
	assert_int_equal(mkdir(d.base, 0700), 0);
	if (!d.no_journal) {
		assert_int_equal(fx_rm_tree(d.journal), 0);
		assert_int_equal(mkdir(d.journal, 0700), 0);
	}
	for (int i = 0; without_r[i]; i++)
		d.extra[i] = without_r[i];
	d.extra[1] = NULL;
	assert_int_equal(hrd_restart(&d), 0);
	if (vg_store_open(dir, &cfg, &s, err, sizeof(err)))
		fail_msg("open: %s", err);
	for (int k = 0; k < 1200; k++) { /* 60 s: only a bound against a hang */
		vg_store_get_stats(s, &st);
		if (st.series_dir_missing == 2)
			break;
		usleep(50 * 1000);
	}
	assert_int_not_equal(vg_store_flush(s), 0);
	vg_store_get_stats(s, &st);
	printf("# replayed on an empty base: pending %llu, dir missing %llu: %s\n",
	       (unsigned long long)st.values_pending, (unsigned long long)st.series_dir_missing,
	       vg_store_last_error(s));
	assert_int_equal(st.series_dir_missing, 2);
	assert_int_equal(st.values_pending, 6);
	assert_int_equal(st.write_errors, 0);
	snprintf(sub, sizeof(sub), "%s/host", d.base);
	assert_int_equal(stat(sub, &sb), -1); /* nothing created */
	assert_true(journal_segments(dir) >= 1);

	/* the directories back: every value written (no -R needed) */
	node_dirs(&d);
	assert_int_equal(flush_until_passed(s), 0);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.write_errors, 0);
	fxs_check_series(s, 0, 3);
	fxs_check_series(s, 1, 3);
	vg_store_close(s);
	assert_int_equal(journal_segments(dir), 0);
	hrd_cleanup(&d);
	assert_int_equal(fx_rm_tree(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_many_series_per_round_trip, setup, teardown),
		cmocka_unit_test(test_daemon_without_R),
		cmocka_unit_test(test_replay_daemon_without_R),
		cmocka_unit_test(test_recreate_daemon_without_R),
		cmocka_unit_test(test_no_R_cause_expires),
		cmocka_unit_test_setup_teardown(test_daemon_down_then_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_and_daemon_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_daemon_down, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_daemon_down_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_daemon_down_wide_journal, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
