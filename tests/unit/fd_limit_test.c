/*
 * fd_limit_test.c — a process out of file descriptors (EMFILE) loses
 * nothing: the journal's append answers -EAGAIN (the receiver answers
 * RETRY, the agent keeps the batch), the store asks for the batch again
 * rather than journal values whose file it cannot read (a segment kept,
 * never written back), the files backend answers values it cannot open
 * the file of "unavailable" (kept and retried, never a file's error), and
 * the API's connection limit stays below the open-file limit.
 *
 * A real shortage: the soft RLIMIT_NOFILE of this process is lowered and
 * every descriptor left is taken (open /dev/null) for the call under
 * test, then given back. No mocks, no sleeps beyond the store's 1 s
 * retry of a series whose file could not be opened.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/config.h"
#include "vigie/fsutil.h"
#include "vigie/store.h"
#include "collector/backend.h"
#include "collector/journal.h"
#include "query/api/http.h"

#define T0 1699999980LL /* a minute boundary */
#define MS(s) ((int64_t)(s)*1000)

/* ---- a real shortage of descriptors ---------------------------------------- */

static int g_fill[4096];
static int g_nfill;

/* Lower the soft limit to at most 512 (kept for the rest of the process)
 * and take every descriptor left. */
static void fds_take(void)
{
	struct rlimit rl;
	int fd;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur > 512) {
		rl.rlim_cur = 512;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	g_nfill = 0;
	while (g_nfill < (int)(sizeof(g_fill) / sizeof(g_fill[0])) &&
	       (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		g_fill[g_nfill++] = fd;
	assert_int_equal(errno, EMFILE);
}

static void fds_give(void)
{
	while (g_nfill)
		close(g_fill[--g_nfill]);
}

static void rm_rf(const char *dir)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static void tmpdir(char dir[64])
{
	snprintf(dir, 64, "/tmp/vigie-fd-test.XXXXXX");
	assert_non_null(mkdtemp(dir));
}

/* *.kept files in dir/journal. */
static int kept_files(const char *dir)
{
	char jdir[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(jdir, sizeof(jdir), "%s/journal", dir);
	assert_non_null(d = opendir(jdir));
	while ((e = readdir(d)))
		n += strstr(e->d_name, ".kept") != NULL;
	closedir(d);
	return n;
}

static struct vg_batch *batch_of(const char *const *ids, int n, int minute)
{
	struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)minute + 1, MS(T0 + 60 * minute));

	assert_non_null(b);
	for (int i = 0; i < n; i++) {
		assert_non_null(vg_batch_resource(b, VG_RT_HOST, ids[i], NULL, NULL,
						  MS(T0 + 60 * minute)));
		assert_int_equal(vg_batch_sample(b, "load.1", VG_KIND_GAUGE, 100.0 * i + minute),
				 0);
	}
	return b;
}

static int write_minute(struct vg_store *s, const char *const *ids, int n, int minute)
{
	struct vg_batch *b = batch_of(ids, n, minute);
	int rc = vg_store_write_batch(s, b);

	vg_batch_free(b);
	return rc;
}

static void open_store(const char *dir, struct vg_store **s)
{
	struct vg_config cfg;
	char err[256];

	vg_config_defaults(&cfg);
	assert_int_equal(vg_config_parse_archives("1m:1d,5m:7d", cfg.archives, VG_MAX_ARCHIVES,
						  &cfg.narchives),
			 0);
	if (vg_store_open(dir, &cfg, s, err, sizeof(err)))
		fail_msg("store: %s", err);
}

/* The value of id's load.1 at minute (a row covers (t, t+60]). */
static double value_at(struct vg_store *s, const char *id, int minute)
{
	struct vg_series r;
	double v = -1;

	assert_int_equal(vg_store_fetch(s, VG_RT_HOST, id, "load.1", VG_CF_AVERAGE,
					MS(T0 + 60 * (minute - 1)), MS(T0 + 60 * minute), 60, 0,
					&r),
			 0);
	for (size_t k = 0; k < r.n; k++)
		if (r.points[k].time_ms == MS(T0 + 60 * (minute - 1)))
			v = r.points[k].value;
	vg_series_free(&r);
	return v;
}

/* ---- the journal ----------------------------------------------------------- */

static int take_none(void *ctx, const struct vg_batch *b)
{
	(void)ctx;
	(void)b;
	return 0;
}

/* A segment that cannot be opened for want of a descriptor is a batch to
 * ask again (-EAGAIN: RETRY), never -EIO (acknowledged anyway by the
 * receiver: values acknowledged and never journaled). Once descriptors
 * are back the same record is appended and replayed. */
static void test_journal_append_without_fds(void **state)
{
	char dir[64], jdir[PATH_MAX], err[512] = "";
	struct vg_journal j;
	void *sel[1];
	size_t len = 0, n = 0;
	uint64_t *ids = NULL, nrec = 0;
	int rotate = 0;
	const char *id = "node1";
	struct vg_batch *b = batch_of(&id, 1, 1);

	(void)state;
	tmpdir(dir);
	snprintf(jdir, sizeof(jdir), "%s/journal", dir);
	if (vg_journal_open(&j, jdir, err, sizeof(err)))
		fail_msg("journal: %s", err);
	sel[0] = &j;
	assert_int_equal(vg_journal_encode(&j, b, sel, &len), 0);
	fds_take();
	int rc = vg_journal_append(&j, 1, len, &rotate, err, sizeof(err));
	fds_give();
	assert_int_equal(rc, -EAGAIN);
	assert_non_null(strstr(err, "Too many open files"));
	assert_int_equal(vg_journal_append(&j, 1, len, &rotate, err, sizeof(err)), 0);
	assert_int_equal(vg_journal_list(&j, &ids, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(vg_journal_replay(&j, ids[0], take_none, NULL, &nrec), 0);
	assert_int_equal(nrec, 1);
	free(ids);
	vg_journal_close(&j);
	vg_batch_free(b);
	rm_rf(dir);
}

/* ---- the store ------------------------------------------------------------- */

/* A batch naming a series whose file exists but cannot be opened now (no
 * descriptor) is asked again (-EAGAIN), not taken with that series'
 * values journaled and "unreadable" (acknowledged, its segment kept and
 * never written back). Asked again with descriptors back, it is taken
 * whole and its values are in the files. */
static void test_store_series_without_fds(void **state)
{
	static const char *const x[] = {"node1"}, *const xy[] = {"node1", "node2"};
	struct vg_store *s;
	struct vg_store_stats st;
	char dir[64];
	int rc;

	(void)state;
	tmpdir(dir);
	open_store(dir, &s);
	assert_int_equal(write_minute(s, xy, 2, 0), 0); /* both files made */
	vg_store_close(s);
	open_store(dir, &s);
	assert_int_equal(write_minute(s, x, 1, 1), 0); /* node1 open, a segment too */
	assert_int_equal(vg_store_flush(s), 0);
	fds_take();
	rc = write_minute(s, xy, 2, 2); /* node2's file cannot be read now */
	fds_give();
	assert_int_equal(rc, -EAGAIN);
	assert_non_null(strstr(vg_store_last_error(s), "no file descriptor"));
	assert_int_equal(write_minute(s, xy, 2, 2), 0); /* the agent's re-send */
	assert_int_equal(vg_store_flush(s), 0);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(st.segments_kept, 0);
	assert_true(value_at(s, "node2", 2) == 102.0);
	vg_store_close(s);
	assert_int_equal(kept_files(dir), 0);
	rm_rf(dir);
}

/* Cached values whose files cannot be opened at the flush (no descriptor)
 * wait in the cache and the journal and are written once descriptors
 * are back: no write error, no kept segment. */
static void test_store_flush_without_fds(void **state)
{
	static const char *const xy[] = {"node1", "node2"};
	struct vg_store *s;
	struct vg_store_stats st;
	char dir[64];
	int rc = -1;

	(void)state;
	tmpdir(dir);
	open_store(dir, &s);
	assert_int_equal(write_minute(s, xy, 2, 0), 0);
	assert_int_equal(vg_store_flush(s), 0);
	assert_int_equal(write_minute(s, xy, 2, 1), 0); /* cached, journaled */
	fds_take();
	(void)vg_store_flush(s);
	vg_store_get_stats(s, &st);
	fds_give();
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(st.values_pending, 2);
	/* retried after the store's 1 s wait for a series it could not write */
	for (int64_t until = vg_monotonic_ms() + 5000; rc && vg_monotonic_ms() < until;) {
		struct timespec ts = {0, 50 * 1000 * 1000};
		if ((rc = vg_store_flush(s)))
			nanosleep(&ts, NULL);
	}
	assert_int_equal(rc, 0);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(st.segments_kept, 0);
	assert_true(value_at(s, "node1", 1) == 1.0);
	assert_true(value_at(s, "node2", 1) == 101.0);
	vg_store_close(s);
	assert_int_equal(kept_files(dir), 0);
	rm_rf(dir);
}

/* ---- the files backend ----------------------------------------------------- */

/* Without a descriptor: update answers every value unavailable (none
 * failed), last_ms and create answer -EAGAIN (the batch waits), never
 * -EIO (a file's error: values kept and never written back). */
static void test_files_backend_without_fds(void **state)
{
	char dir[64], rrd[PATH_MAX], undo[PATH_MAX], err[256], msg[512] = "";
	struct vg_archive archives[VG_MAX_ARCHIVES];
	struct vg_rrd_layout lay = {.step_s = 60, .heartbeat_s = 600, .archives = archives};
	struct vg_rrd_backend *be;
	struct vg_rrd_loc loc, loc2;
	struct vg_rrd_value v[300];
	struct vg_rrd_result res = {0};
	int64_t last = 0;
	int rc_last, rc_create;

	(void)state;
	tmpdir(dir);
	assert_int_equal(vg_config_parse_archives("1m:1d", archives, VG_MAX_ARCHIVES,
						  &lay.narchives),
			 0);
	snprintf(rrd, sizeof(rrd), "%s/rrd", dir);
	snprintf(undo, sizeof(undo), "%s/undo", dir);
	if (vg_rrd_files_open(rrd, undo, &be, err, sizeof(err)))
		fail_msg("files: %s", err);
	assert_int_equal(be->ops->locate(be, VG_RT_HOST, "node1", "load.1", &loc), 0);
	assert_int_equal(be->ops->create(be, &loc, VG_KIND_GAUGE, MS(T0), &lay, msg,
					 sizeof(msg), 0),
			 0);
	assert_int_equal(be->ops->locate(be, VG_RT_HOST, "node2", "load.1", &loc2), 0);
	for (int i = 0; i < 300; i++) /* more than one librrd call */
		v[i] = (struct vg_rrd_value){MS(T0 + 60 * i), (double)i};
	fds_take();
	be->ops->update(be, &loc, v, 300, &res);
	rc_last = be->ops->last_ms(be, &loc, &last, 0);
	rc_create = be->ops->create(be, &loc2, VG_KIND_GAUGE, MS(T0), &lay, msg, sizeof(msg), 0);
	fds_give();
	assert_int_equal(res.written, 0);
	assert_int_equal(res.failed, 0);
	assert_int_equal(res.unavailable, 300);
	assert_int_equal(rc_last, -EAGAIN);
	if (rc_create != -EAGAIN)
		fprintf(stderr, "# create: %s\n", msg);
	assert_int_equal(rc_create, -EAGAIN);
	/* with descriptors back, the same call writes them all */
	memset(&res, 0, sizeof(res));
	be->ops->update(be, &loc, v, 300, &res);
	assert_int_equal(res.written, 300);
	assert_int_equal(res.failed, 0);
	be->ops->close(be);
	rm_rf(dir);
}

/* ---- the API's connections ------------------------------------------------- */

/* The API holds at most half of what VG_HTTP_FD_RESERVE leaves of the
 * open-file limit, so its clients cannot take the descriptors the journal
 * and the RRD files need; with the limit a unit sets (65536) the default
 * stands. The server started under a low limit says its limit. */
static int h_none(struct vg_http_req *req, struct vg_http_resp *resp)
{
	(void)req;
	(void)resp;
	return -1;
}

static const struct vg_route routes[] = {
	{VG_HTTP_GET, "/v1/none", h_none, NULL, 0, VG_ROUTE_PUBLIC},
};

static void test_http_limit_below_fds(void **state)
{
	struct vg_http_options o = {.listen = "127.0.0.1:0", .threads = 1, .routes = routes, .nroutes = 1};
	struct vg_http_server *h = NULL;
	struct vg_http_stats hs;
	struct rlimit rl;
	char err[256];

	(void)state;
	assert_int_equal(vg_http_conn_cap(0, 65536), VG_HTTP_CONN_LIMIT);
	assert_int_equal(vg_http_conn_cap(0, 1024), (1024 - VG_HTTP_FD_RESERVE) / 2);
	assert_int_equal(vg_http_conn_cap(100, 1024), 100);
	assert_int_equal(vg_http_conn_cap(0, 64), 16);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = 512;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	if (vg_http_start(&o, &h, err, sizeof(err)))
		fail_msg("http: %s", err);
	vg_http_get_stats(h, &hs);
	assert_int_equal(hs.conn_limit, (512 - VG_HTTP_FD_RESERVE) / 2);
	assert_int_equal(hs.conn_refused, 0);
	vg_http_stop(h);
}

/* ---- the limit itself ------------------------------------------------------ */

/* vg_fs_raise_nofile raises the soft limit to the hard one. */
static void test_raise_nofile(void **state)
{
	struct rlimit rl;
	uint64_t soft, hard;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max < 128)
		skip();
	rl.rlim_cur = 64;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(vg_fs_raise_nofile(&soft, &hard), 0);
	assert_true(soft == hard);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_true(rl.rlim_cur == rl.rlim_max);
	assert_true(vg_fs_short_of_fds(EMFILE) && vg_fs_short_of_fds(ENFILE) &&
		    !vg_fs_short_of_fds(ENOENT));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_journal_append_without_fds),
		cmocka_unit_test(test_store_series_without_fds),
		cmocka_unit_test(test_store_flush_without_fds),
		cmocka_unit_test(test_files_backend_without_fds),
		cmocka_unit_test(test_http_limit_below_fds),
		cmocka_unit_test(test_raise_nofile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
