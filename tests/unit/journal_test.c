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

#define T0 1699999980LL /* a multiple of the 60 s step */
#define MS(s) ((int64_t)(s) * 1000)
#define NVAL 10         /* fewer than the flush depth: stays cached */

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
	time_t last = 0;
	unsigned long n = 0;
	char **names = NULL, **vals = NULL;

	snprintf(path, sizeof(path), "%s/rrd/instance/inst-1/%s.rrd", f->dir, metric);
	assert_int_equal(rrd_lastupdate_r(path, &last, &n, &names, &vals), 0);
	for (unsigned long k = 0; k < n; k++) {
		free(names[k]);
		free(vals[k]);
	}
	free(names);
	free(vals);
	return last;
}

static int count_segments(struct fixture *f)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/journal", f->dir);
	if (!(d = opendir(path)))
		return 0;
	while ((e = readdir(d)))
		n += strstr(e->d_name, ".vgj") != NULL;
	closedir(d);
	return n;
}

static void check_gauge(struct vg_store *s, int upto)
{
	struct vg_series g;

	/* point T0+60k covers (T0+60k, T0+60(k+1)]: the value of poll k+1 */
	assert_int_equal(vg_store_fetch(s, VG_RT_INSTANCE, "inst-1", "memory.used",
					VG_CF_AVERAGE, MS(T0), MS(T0 + 60 * upto), 60, 0, &g), 0);
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
					VG_CF_AVERAGE, MS(T0), MS(T0 + 60 * NVAL), 60, 0, &c), 0);
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
					VG_CF_AVERAGE, MS(T0), MS(T0 + 180), 60, 0, &c), 0);
	vg_series_free(&c);
	assert_int_equal(count_segments(f), 0);
	vg_store_close(s);
}

/* ---- kill -9 between librrd's rows and last_up ---- */

static int tear_armed;        /* in the child only */
static time_t tear_last_up;   /* what last_up was before the update */

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
					VG_CF_AVERAGE, MS(T0), MS(T0 + 60 * upto), 60, 0, &g), 0);
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
						  "6m:6d,10m:10d,1h:30d", f->cfg.archives,
						  VG_MAX_ARCHIVES, &f->cfg.narchives), 0);
	kill_inside_librrd(f);
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
