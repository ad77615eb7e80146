/*
 * journal_test.c — the store's journal (collector/store.c): what
 * vg_store_write_batch accepted survives a crash before the storage thread
 * wrote it to the RRD files, because vg_store_open replays the journal.
 *
 * A "crash" is a child process that opens the store, writes, and _exit()s
 * without vg_store_close: its cache and storage thread vanish, its flock is
 * released, its journal segment stays. The parent first proves the values
 * never reached the RRD file (rrd_lastupdate_r on the file, no store open),
 * then opens the store and finds every value. A torn last record (a crash
 * mid-append) must end the replay cleanly, keeping what came before; a
 * clean close and an idle store leave no journal segment behind.
 *
 * A kill -9 inside librrd's update (test_kill_inside_librrd): librrd
 * updates a mapped file in place, rows and row pointers before last_up,
 * so a process killed in between leaves the newest row written and
 * last_up one step behind. The test makes exactly that state with the
 * store's test hook (vg_store_test_after_update, called after
 * rrd_update_r): it puts last_up back and _exit()s, as a SIGKILL there
 * would. Reopened, the store must put the header back from its undo file
 * and replay the update: every value at its own time. The same directory
 * without the undo file shows what the undo prevents (values one step
 * early).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#define RRD_EXPORT_DEPRECATED /* the header structs, to tear a file */
#include <rrd.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/store.h"
#include "collector/journal.h"

#include "../support/rrd_last.h"

#define T0 1699999980LL /* a multiple of the 60 s step */
#define MS(s) ((int64_t)(s)*1000)
#define NVAL 10 /* fewer than the flush depth: stays cached */

struct fixture {
	char dir[64];
	struct vg_config cfg;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/vigie-journal-test.XXXXXX");
	if (!f || !mkdtemp(f->dir))
		return -1;
	vg_config_defaults(&f->cfg);
	if (vg_config_parse_archives("1m:1d,5m:7d", f->cfg.archives, VG_MAX_ARCHIVES,
				     &f->cfg.narchives))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", f->dir);
	free(f);
	return 0;
}

/* Poll i: one gauge and one counter of one instance, a minute apart. */
static struct vg_batch *poll_batch(int i)
{
	struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)i + 1, MS(T0 + 60 * i));

	assert_non_null(b);
	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, "inst-1", "vm", NULL,
					  MS(T0 + 60 * i)));
	assert_int_equal(vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 100 + 10 * i), 0);
	assert_int_equal(vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, 60.0 * i * i), 0);
	return b;
}

/* Write polls [from, to) and crash: the child never closes the store. */
static void crash_after_writing(struct fixture *f, int from, int to)
{
	pid_t pid = fork();
	int st = 0;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct vg_store *s;
		char err[256];
		if (vg_store_open(f->dir, &f->cfg, &s, err, sizeof(err)))
			_exit(2);
		for (int i = from; i < to; i++) {
			struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)i + 1,
							  MS(T0 + 60 * i));
			vg_batch_resource(b, VG_RT_INSTANCE, "inst-1", "vm", NULL,
					  MS(T0 + 60 * i));
			vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 100 + 10 * i);
			vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, 60.0 * i * i);
			if (vg_store_write_batch(s, b))
				_exit(3);
			vg_batch_free(b);
		}
		_exit(0); /* no vg_store_close: the "kill" */
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* Last update time of a file, read by librrd itself (no store open). */
static time_t file_last(struct fixture *f, const char *metric)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/rrd/instance/inst-1/%s.rrd", f->dir, metric);
	return fx_rrd_last_s(path);
}

/* The files of the journal directory whose name holds WHAT (0 without
 * the directory). */
static int count_journal_files(struct fixture *f, const char *what)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/journal", f->dir);
	if (!(d = opendir(path)))
		return 0;
	while ((e = readdir(d)))
		n += strstr(e->d_name, what) != NULL;
	closedir(d);
	return n;
}

static int count_segments(struct fixture *f)
{
	return count_journal_files(f, ".vgj");
}

static void check_gauge(struct vg_store *s, int upto)
{
	struct vg_series g;

	/* point T0+60k covers (T0+60k, T0+60(k+1)]: the value of poll k+1 */
	assert_int_equal(vg_store_fetch(s, VG_RT_INSTANCE, "inst-1", "memory.used",
					VG_CF_AVERAGE, MS(T0), MS(T0 + 60 * upto), 60, 0, &g),
			 0);
	assert_int_equal(g.n, (size_t)(upto - 1));
	for (size_t k = 0; k < g.n; k++) {
		assert_int_equal(g.points[k].time_ms, MS(T0 + 60 * (int64_t)k));
		assert_true(g.points[k].value == 100 + 10 * (double)(k + 1));
	}
	vg_series_free(&g);
}

static void test_replay_after_crash(void **state)
{
	struct fixture *f = *state;
	struct vg_store *s;
	struct vg_store_stats st;
	struct vg_series c;
	char err[256];

	crash_after_writing(f, 0, NVAL);
	/* The values are only in the journal: the files were created (last
	 * update one second before the first sample) but never written. */
	assert_int_equal(file_last(f, "memory.used"), T0 - 1);
	assert_int_equal(file_last(f, "cpu.time"), T0 - 1);
	assert_int_equal(count_segments(f), 1);

	assert_int_equal(vg_store_open(f->dir, &f->cfg, &s, err, sizeof(err)), 0);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.values_replayed, 2 * NVAL);
	assert_int_equal(st.values_pending, 0);
	/* replayed into the files, and the journal is gone */
	assert_int_equal(file_last(f, "memory.used"), T0 + 60 * (NVAL - 1));
	assert_int_equal(count_segments(f), 0);
	check_gauge(s, NVAL);
	/* counter: 60*i^2 per poll i, so the rate in minute k is 60(2k+1)/60 */
	assert_int_equal(vg_store_fetch(s, VG_RT_INSTANCE, "inst-1", "cpu.time",
					VG_CF_AVERAGE, MS(T0), MS(T0 + 60 * NVAL), 60, 0, &c),
			 0);
	assert_int_equal(c.n, NVAL - 1);
	for (size_t k = 0; k < c.n; k++)
		assert_true(fabs(c.points[k].value - (2.0 * (double)k + 1)) < 1e-9);
	vg_series_free(&c);

	/* A re-sent poll after the restart is a duplicate, to the ms. */
	struct vg_batch *b = poll_batch(NVAL - 1);
	assert_int_equal(vg_store_write_batch(s, b), 0);
	vg_batch_free(b);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.values_duplicate, 2);
	assert_int_equal(st.values_written, 0);
	vg_store_close(s);
	assert_int_equal(count_segments(f), 0);
}

static void test_two_crashes(void **state)
{
	struct fixture *f = *state;
	struct vg_store *s;
	char err[256];

	/* crash, replay (by a child that crashes again after more writes),
	 * then a last replay: every value of both runs is there */
	crash_after_writing(f, 0, 5);
	crash_after_writing(f, 5, NVAL);
	assert_int_equal(vg_store_open(f->dir, &f->cfg, &s, err, sizeof(err)), 0);
	check_gauge(s, NVAL);
	vg_store_close(s);
}

static void test_torn_record(void **state)
{
	struct fixture *f = *state;
	struct vg_store *s;
	struct vg_store_stats st;
	char path[PATH_MAX], seg[PATH_MAX + 256] = "", err[256];
	struct dirent *e;
	DIR *d;
	int fd;
	static const char junk[] = "\x40\x00\x00\x00\x01\x00\x00\x00garbage-torn";

	crash_after_writing(f, 0, NVAL);
	snprintf(path, sizeof(path), "%s/journal", f->dir);
	assert_non_null(d = opendir(path));
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".vgj"))
			snprintf(seg, sizeof(seg), "%s/%s", path, e->d_name);
	closedir(d);
	assert_true(seg[0]);
	/* half a record at the end, as a crash mid-append leaves it */
	assert_true((fd = open(seg, O_WRONLY | O_APPEND)) >= 0);
	assert_int_equal(write(fd, junk, sizeof(junk) - 1), (ssize_t)sizeof(junk) - 1);
	close(fd);

	assert_int_equal(vg_store_open(f->dir, &f->cfg, &s, err, sizeof(err)), 0);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.values_replayed, 2 * NVAL);
	check_gauge(s, NVAL);
	vg_store_close(s);
	assert_int_equal(count_segments(f), 0);
}

static void test_idle_store_leaves_no_journal(void **state)
{
	struct fixture *f = *state;
	struct vg_store *s;
	char err[256];

	assert_int_equal(vg_store_open(f->dir, &f->cfg, &s, err, sizeof(err)), 0);
	for (int i = 0; i < 3; i++) {
		struct vg_batch *b = poll_batch(i);
		assert_int_equal(vg_store_write_batch(s, b), 0);
		vg_batch_free(b);
	}
	/* reading both series writes them: the cache is empty, and the
	 * journal goes with it */
	check_gauge(s, 3);
	struct vg_series c;
	assert_int_equal(vg_store_fetch(s, VG_RT_INSTANCE, "inst-1", "cpu.time",
					VG_CF_AVERAGE, MS(T0), MS(T0 + 180), 60, 0, &c),
			 0);
	vg_series_free(&c);
	assert_int_equal(count_segments(f), 0);
	vg_store_close(s);
}

/* ---- kill -9 between librrd's rows and last_up ---- */

static int tear_armed;      /* in the child only */
static time_t tear_last_up; /* what last_up was before the update */

/* The hook: the memory.used file's update is done; make it look like a
 * kill came before librrd wrote last_up, and die there. */
void vg_store_test_after_update(const char *path)
{
	unsigned char buf[4096];
	stat_head_t sh;
	live_head_t lh = {0};
	size_t off;
	int fd;

	if (!tear_armed || !strstr(path, "memory.used"))
		return;
	if ((fd = open(path, O_RDWR)) < 0 || pread(fd, buf, sizeof(buf), 0) < (ssize_t)sizeof(sh))
		_exit(4);
	memcpy(&sh, buf, sizeof(sh));
	off = sizeof(stat_head_t) + sh.ds_cnt * sizeof(ds_def_t) +
	      sh.rra_cnt * sizeof(rra_def_t);
	lh.last_up = tear_last_up;
	lh.last_up_usec = 0;
	if (pwrite(fd, &lh, sizeof(lh), (off_t)off) != (ssize_t)sizeof(lh))
		_exit(5);
	_exit(0); /* SIGKILL: no unmap, no close, no undo clear */
}

static void write_polls(struct vg_store *s, int from, int to)
{
	for (int i = from; i < to; i++) {
		struct vg_batch *b = poll_batch(i);
		assert_int_equal(vg_store_write_batch(s, b), 0);
		vg_batch_free(b);
	}
}

/* The gauge's points [T0, T0 + 60 upto) each hold their own poll's value. */
static int gauge_right(struct vg_store *s, int upto)
{
	struct vg_series g;
	int ok;

	assert_int_equal(vg_store_fetch(s, VG_RT_INSTANCE, "inst-1", "memory.used",
					VG_CF_AVERAGE, MS(T0), MS(T0 + 60 * upto), 60, 0, &g),
			 0);
	ok = g.n == (size_t)(upto - 1);
	for (size_t k = 0; ok && k < g.n; k++)
		ok = g.points[k].time_ms == MS(T0 + 60 * (int64_t)k) &&
		     g.points[k].value == 100 + 10 * (double)(k + 1);
	vg_series_free(&g);
	return ok;
}

static void kill_inside_librrd(struct fixture *f)
{
	struct vg_store *s;
	struct vg_store_stats st;
	char err[256], cmd[512], copy[96];
	pid_t pid;
	int wst = 0;

	/* polls 0..4 written cleanly */
	assert_int_equal(vg_store_open(f->dir, &f->cfg, &s, err, sizeof(err)), 0);
	write_polls(s, 0, 5);
	vg_store_close(s);
	assert_int_equal(file_last(f, "memory.used"), T0 + 240);

	/* poll 5, killed inside its update */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (vg_store_open(f->dir, &f->cfg, &s, err, sizeof(err)))
			_exit(2);
		write_polls(s, 5, 6);
		tear_armed = 1;
		tear_last_up = T0 + 240;
		vg_store_flush(s);
		_exit(3); /* the hook did not run */
	}
	assert_int_equal(waitpid(pid, &wst, 0), pid);
	assert_true(WIFEXITED(wst));
	assert_int_equal(WEXITSTATUS(wst), 0);
	/* torn: the row of poll 5 is in, last_up says poll 4 */
	assert_int_equal(file_last(f, "memory.used"), T0 + 240);
	assert_int_equal(count_segments(f), 1);

	/* the same state without the undo file: the known failure */
	snprintf(copy, sizeof(copy), "%s.noundo", f->dir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s' && rm '%s/journal/undo'",
		 copy, f->dir, copy, copy);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(vg_store_open(copy, &f->cfg, &s, err, sizeof(err)), 0);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.headers_restored, 0);
	assert_false(gauge_right(s, 6)); /* poll 5's row twice: older ones shift */
	vg_store_close(s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", copy);
	assert_int_equal(system(cmd), 0);

	/* with it: the header goes back, the journal redoes the update */
	assert_int_equal(vg_store_open(f->dir, &f->cfg, &s, err, sizeof(err)), 0);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.headers_restored, 1);
	assert_int_equal(st.values_replayed, 2);
	assert_int_equal(file_last(f, "memory.used"), T0 + 300);
	assert_true(gauge_right(s, 6));
	/* and the store goes on as if nothing happened */
	write_polls(s, 6, NVAL);
	assert_true(gauge_right(s, NVAL));
	vg_store_close(s);
	assert_int_equal(count_segments(f), 0);
	assert_int_equal(access(strcat(strcpy(cmd, f->dir), "/journal/undo"), F_OK), -1);
}

static void test_kill_inside_librrd(void **state)
{
	kill_inside_librrd(*state);
}

/* Eight archive tiers: 24 archives, a 5.3 KiB header (more than the
 * store's first 4 KiB read). */
static void test_kill_inside_librrd_big_header(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(vg_config_parse_archives("1m:1d,2m:2d,3m:3d,4m:4d,5m:5d,"
						  "6m:6d,10m:10d,1h:30d",
						  f->cfg.archives,
						  VG_MAX_ARCHIVES, &f->cfg.narchives),
			 0);
	kill_inside_librrd(f);
}

/* ---- a busy store killed with sub-second times ----
 *
 * librrd parses "T.229" with strtod and keeps 228999 us; a store that
 * truncated that to ms (T.228) after a restart offered the value at T.229
 * again as new, librrd refused the whole rrd_update_r call and every value
 * of it was dropped and counted as a write error. The sequence: polls
 * every 200 ms at .229/.429/... of two series, a flush of one of them
 * (read-your-writes) at a time librrd truncates, more polls, a kill while
 * the journal segment is live (the other series keeps it), a reopen that
 * replays the segment, then the agent's re-send of every poll. Every value
 * must be in the files at its own time (1 s archive: each row is the
 * time-weighted mean of the five values of its second, read back with
 * rrd_fetch_r) and no value may count as a write error. */

#define SUB_N2 600 /* polls: two minutes at 200 ms */
#define SUB_STEP_MS 200
#define SUB_OFF_MS 229

static int64_t sub_time(int i)
{
	return MS(T0) + SUB_OFF_MS + (int64_t)SUB_STEP_MS * i;
}

static double sub_value(const char *metric, int i)
{
	/* neighbours differ by tens, so a lost or moved value shows */
	return (metric[0] == 'm' ? 1000 : 5000) + (i % 7) * 37 + i;
}

/* What librrd makes of "seconds.millis": microseconds truncated after
 * strtod (rrd_update.c, get_time_from_reading). */
static int librrd_truncates(int64_t t_ms)
{
	char buf[32];
	double tmp;
	long usec;

	snprintf(buf, sizeof(buf), "%lld.%03d", (long long)(t_ms / 1000), (int)(t_ms % 1000));
	tmp = strtod(buf, NULL);
	usec = (long)((tmp - floor(tmp)) * 1e6f);
	return usec != (long)(t_ms % 1000) * 1000;
}

static void write_sub_polls(struct vg_store *s, int from, int to)
{
	for (int i = from; i < to; i++) {
		struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)i + 1, sub_time(i));
		assert_non_null(b);
		assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, "inst-1", "vm",
						  NULL, sub_time(i)));
		assert_int_equal(vg_batch_sample(b, "memory.used", VG_KIND_GAUGE,
						 sub_value("memory.used", i)),
				 0);
		assert_int_equal(vg_batch_sample(b, "disk.used", VG_KIND_GAUGE,
						 sub_value("disk.used", i)),
				 0);
		assert_int_equal(vg_store_write_batch(s, b), 0);
		vg_batch_free(b);
	}
}

/* Every 1 s row the polls cover whole, compared with the time-weighted
 * mean of the values: value i holds over (t(i-1), t(i)]. */
static void check_sub_file(struct fixture *f, const char *metric, int npolls)
{
	char path[PATH_MAX];
	time_t start = (time_t)T0, end = (time_t)(sub_time(npolls - 1) / 1000);
	unsigned long step = 1, ds_cnt = 0;
	char **ds_namv = NULL;
	rrd_value_t *data = NULL;
	size_t rows, checked = 0;

	snprintf(path, sizeof(path), "%s/rrd/instance/inst-1/%s.rrd", f->dir, metric);
	rrd_clear_error();
	assert_int_equal(rrd_fetch_r(path, "AVERAGE", &start, &end, &step, &ds_cnt,
				     &ds_namv, &data),
			 0);
	assert_int_equal(step, 1);
	assert_int_equal(ds_cnt, 1);
	rows = (size_t)(end - start);
	for (size_t k = 0; k < rows; k++) {
		/* row k covers (start + k, start + k + 1] */
		int64_t lo = ((int64_t)start + (int64_t)k) * 1000, hi = lo + 1000;
		double sum = 0;
		if (lo < MS(T0) || hi > sub_time(npolls - 1))
			continue;
		for (int i = 0; i < npolls; i++) {
			int64_t a = i ? sub_time(i - 1) : MS(T0) - 1000, b = sub_time(i);
			if (a < lo)
				a = lo;
			if (b > hi)
				b = hi;
			if (b > a)
				sum += sub_value(metric, i) * (double)(b - a) / 1000.0;
		}
		if (fabs(data[k] - sum) > 1e-3) /* librrd's 1 us rounding: < 1e-4 */
			fail_msg("%s: row %lld: %.6f in the file, %.6f expected", metric,
				 (long long)lo / 1000, data[k], sum);
		checked++;
	}
	assert_true(checked >= (size_t)(SUB_N2 * SUB_STEP_MS / 1000 - 2));
	for (unsigned long k = 0; k < ds_cnt; k++)
		free(ds_namv[k]);
	free(ds_namv);
	free(data);

	/* the newest value, at its time to the second, as librrd reads it */
	{
		time_t last = 0;
		unsigned long n = 0;
		char **names = NULL, **vals = NULL;
		assert_int_equal(rrd_lastupdate_r(path, &last, &n, &names, &vals), 0);
		assert_int_equal(last, sub_time(npolls - 1) / 1000);
		assert_int_equal(n, 1);
		assert_true(strtod(vals[0], NULL) == sub_value(metric, npolls - 1));
		free(names[0]);
		free(vals[0]);
		free(names);
		free(vals);
	}
}

static void test_busy_kill_subsecond(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	struct vg_store *s;
	char err[256];
	int n1 = -1, status = 0;
	pid_t pid;

	assert_int_equal(vg_config_parse_archives("1s:1h", f->cfg.archives,
						  VG_MAX_ARCHIVES, &f->cfg.narchives),
			 0);
	f->cfg.storage_step_s = 1;
	f->cfg.storage_flush_depth = 256; /* no automatic flush of inst-1 after n1 */
	/* The flush point: a poll librrd keeps a microsecond early. */
	for (int i = SUB_N2 / 2; i < SUB_N2 - 50 && n1 < 0; i++)
		if (librrd_truncates(sub_time(i)))
			n1 = i + 1;
	assert_true(n1 > 0);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct vg_series g;
		if (vg_store_open(f->dir, &f->cfg, &s, err, sizeof(err)))
			_exit(2);
		write_sub_polls(s, 0, n1);
		/* read-your-writes: memory.used goes to its file now, while
		 * disk.used's values keep the journal segment alive */
		if (vg_store_fetch(s, VG_RT_INSTANCE, "inst-1", "memory.used",
				   VG_CF_AVERAGE, MS(T0), sub_time(n1), 1, 0, &g))
			_exit(3);
		vg_series_free(&g);
		write_sub_polls(s, n1, SUB_N2);
		_exit(0); /* kill -9: no close, segment live */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(count_segments(f) > 0);

	/* restart: the replay; then the agent re-sends what it holds */
	assert_int_equal(vg_store_open(f->dir, &f->cfg, &s, err, sizeof(err)), 0);
	vg_store_get_stats(s, &st);
	assert_true(st.values_replayed > 0);
	assert_int_equal(st.write_errors, 0);
	write_sub_polls(s, 0, SUB_N2);
	assert_int_equal(vg_store_flush(s), 0);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(st.values_written, 0); /* all already stored */
	vg_store_close(s);

	check_sub_file(f, "memory.used", SUB_N2);
	check_sub_file(f, "disk.used", SUB_N2);
}

/* ---- a refused call takes no other value with it ----
 * Something else (rrdtool, an operator) updated the file past some of the
 * cached values: librrd refuses the store's call, whose first values are
 * now older than the file. The later values must still be written. */
static void test_refused_call_keeps_the_rest(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	struct vg_store *s;
	char err[256], path[PATH_MAX], arg[64];
	const char *argv[1] = {arg};
	time_t last = 0;
	unsigned long n = 0;
	char **names = NULL, **vals = NULL;

	assert_int_equal(vg_store_open(f->dir, &f->cfg, &s, err, sizeof(err)), 0);
	for (int i = 0; i < NVAL; i++) {
		struct vg_batch *b = poll_batch(i);
		assert_int_equal(vg_store_write_batch(s, b), 0);
		vg_batch_free(b);
	}
	/* cached (NVAL < flush depth); the file is at poll 0's time - 1 s */
	snprintf(path, sizeof(path), "%s/rrd/instance/inst-1/memory.used.rrd", f->dir);
	snprintf(arg, sizeof(arg), "%lld:777", (long long)(T0 + 60 * 3));
	rrd_clear_error();
	assert_int_equal(rrd_update_r(path, NULL, 1, argv), 0);
	assert_int_equal(vg_store_flush(s), 0);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.write_errors, 0);
	assert_true(st.write_retries >= 1);
	vg_store_close(s);

	assert_int_equal(rrd_lastupdate_r(path, &last, &n, &names, &vals), 0);
	assert_int_equal(last, T0 + 60 * (NVAL - 1));
	assert_true(strtod(vals[0], NULL) == 100 + 10 * (NVAL - 1));
	free(names[0]);
	free(vals[0]);
	free(names);
	free(vals);
}

/* ---- a value that cannot be written makes noise and keeps its journal ----
 * The file is replaced by one librrd cannot read: the cached values are
 * counted by reason ("file"), the message names the file, and the journal
 * segment holding them stays as <id>.kept. */
static int count_kept(struct fixture *f)
{
	return count_journal_files(f, ".kept");
}

static void test_unwritable_value_is_kept(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	struct vg_store *s;
	char err[256], path[PATH_MAX];
	FILE *fp;

	assert_int_equal(vg_store_open(f->dir, &f->cfg, &s, err, sizeof(err)), 0);
	for (int i = 0; i < NVAL; i++) {
		struct vg_batch *b = poll_batch(i);
		assert_int_equal(vg_store_write_batch(s, b), 0);
		vg_batch_free(b);
	}
	snprintf(path, sizeof(path), "%s/rrd/instance/inst-1/memory.used.rrd", f->dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs("not an rrd file\n", fp);
	fclose(fp);
	vg_store_flush(s);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.write_errors, NVAL);
	assert_int_equal(st.write_errors_by[VG_STORE_ERR_FILE], NVAL);
	assert_int_equal(st.values_flushed, NVAL); /* cpu.time */
	assert_int_equal(st.segments_kept, 1);
	assert_int_equal(count_kept(f), 1);
	assert_int_equal(count_segments(f), 0);
	assert_string_equal(vg_store_err_reason(VG_STORE_ERR_FILE), "file");
	/* the next batch brings the storage thread's message to the log */
	{
		struct vg_batch *b = poll_batch(NVAL);
		assert_int_equal(vg_store_write_batch(s, b), 0);
		vg_batch_free(b);
	}
	assert_non_null(strstr(vg_store_last_error(s), "memory.used.rrd"));
	vg_store_close(s);
	/* poll NVAL's value could not be written either: its segment too;
	 * kept ones are the operator's, a close does not delete them */
	assert_int_equal(count_kept(f), 2);

	/* A new store finds the file unreadable at the series' first use:
	 * the value is journaled all the same, counted, and kept. */
	assert_int_equal(vg_store_open(f->dir, &f->cfg, &s, err, sizeof(err)), 0);
	{
		struct vg_batch *b = poll_batch(NVAL + 1);
		assert_int_equal(vg_store_write_batch(s, b), 0);
		vg_batch_free(b);
	}
	vg_store_get_stats(s, &st);
	assert_int_equal(st.write_errors, 1);
	assert_int_equal(st.write_errors_by[VG_STORE_ERR_FILE], 1);
	assert_int_equal(vg_store_flush(s), 0);
	assert_int_equal(count_kept(f), 3);

	/* Bounded: 16 kept files at most, the next segments are deleted
	 * and counted. */
	for (int i = NVAL + 2; i < NVAL + 2 + 16; i++) {
		struct vg_batch *b = poll_batch(i);
		assert_int_equal(vg_store_write_batch(s, b), 0);
		vg_batch_free(b);
		assert_int_equal(vg_store_flush(s), 0);
	}
	vg_store_get_stats(s, &st);
	assert_int_equal(st.segments_kept, 14); /* 2 found at open + 14 = 16 */
	assert_int_equal(st.segments_kept_dropped, 3);
	vg_store_close(s);
	assert_int_equal(count_kept(f), 16);
	assert_int_equal(count_segments(f), 0);
}

/* vg_journal_replay's callback of test_arrival_marker: each record's
 * arrival flag, resources and samples, after the ones before. */
struct seen {
	int arrived[4];
	size_t nres[4], nsamples[4];
	double first[4];
	int n;
};

static int seen_take(void *ctx, const struct vg_batch *b)
{
	struct seen *sn = ctx;

	assert_true(sn->n < 4);
	sn->arrived[sn->n] = b->arrived;
	sn->nres[sn->n] = b->nres;
	sn->nsamples[sn->n] = b->nsamples;
	sn->first[sn->n] = b->nsamples ? b->samples[0].value : NAN;
	sn->n++;
	return 0;
}

/* The arrival marker (journal.c): a batch whose host arrived from
 * another collector is replayed with vg_batch.arrived set and the same
 * resources and samples, one that did not without it; the marked
 * record keeps version 1 (its header's second word), so an older
 * collector reads it too (a resource without samples, which it skips). */
static void test_arrival_marker(void **state)
{
	struct fixture *f = *state;
	struct vg_journal j;
	struct seen sn = {0};
	char dir[128], path[PATH_MAX], err[256] = "";
	uint64_t *ids = NULL, nrec = 0;
	void *sel[4];
	size_t n = 0, len = 0;
	int rotate = 0;
	uint32_t hdr[2];
	FILE *fp;

	snprintf(dir, sizeof(dir), "%s/journal", f->dir);
	if (vg_journal_open(&j, dir, err, sizeof(err)))
		fail_msg("journal: %s", err);
	for (int i = 0; i < 4; i++)
		sel[i] = &j;
	for (int i = 1; i <= 2; i++) {
		struct vg_batch *b = poll_batch(i);
		assert_non_null(vg_batch_resource(b, VG_RT_HOST, "node1", NULL, NULL,
						  MS(T0 + 60 * i)));
		assert_int_equal(vg_batch_sample(b, "load.1", VG_KIND_GAUGE, 1.5), 0);
		b->arrived = i == 1;
		assert_int_equal(vg_journal_encode(&j, b, sel, &len), 0);
		assert_int_equal(vg_journal_append(&j, 1, len, &rotate, err, sizeof(err)), 0);
		vg_batch_free(b);
	}
	assert_int_equal(vg_journal_list(&j, &ids, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(vg_journal_replay(&j, ids[0], seen_take, &sn, &nrec), 0);
	assert_int_equal(nrec, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sn.arrived[i], i == 0);
		assert_int_equal(sn.nres[i], 2);
		assert_int_equal(sn.nsamples[i], 3);
		assert_true(sn.first[i] == 100 + 10 * (i + 1));
	}
	vg_journal_seg_path(&j, ids[0], path, sizeof(path));
	assert_non_null(fp = fopen(path, "rb"));
	assert_int_equal(fread(hdr, sizeof(hdr[0]), 2, fp), 2);
	fclose(fp);
	assert_int_equal(hdr[1], 1);
	free(ids);
	vg_journal_close(&j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_replay_after_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_crashes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_store_leaves_no_journal, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_kill_inside_librrd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill_inside_librrd_big_header, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_busy_kill_subsecond, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_call_keeps_the_rest, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unwritable_value_is_kept, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_arrival_marker, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
