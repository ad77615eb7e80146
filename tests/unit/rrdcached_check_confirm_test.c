/*
 * rrdcached_check_confirm_test.c — a new connection's check of the files
 * sent before (collector/backend_rrdcached.c check_sent) does not take a
 * file another FLUSH is still writing for lost, with a real rrdcached.
 *
 * rrdcached 1.7.2 answers a FLUSH "Successfully flushed" at once, without
 * waiting, when a writer thread already took the file's values for
 * another FLUSH of it (another connection of the collector's, another
 * collector, the daemon's -w timer) and is still writing them; an INFO
 * then reads the file half written. The check read the file so (FLUSH
 * then INFO, or after a failure INFO, FORGET then INFO), found it behind
 * our newest value and marked it lost: its values re-sent (refused as
 * already stored) or, after a FORGET, dropped for a re-send. Seen in a
 * benchmark as a false "lost" at a new connection's check. The check now
 * reads a file found behind again while its last update moves
 * (behind_confirm, as the sync's read-back does).
 *
 * Both tests: CONFIRM_MINUTES values of one file with 18 archives cached
 * by the daemon, a FLUSH of it sent on a connection of the test's, and
 * the check run once INFO shows that write going on (the file's last
 * update past T0, not yet at the newest value). test_running_check: a
 * running collector's new connection (its one client held by a create,
 * where the test hook reads another series: FLUSH then INFO).
 * test_start_replay_check: the check a collector's start replay asks for
 * (the daemon suspect: INFO, PENDING, FORGET then INFO). Without the
 * confirmation both found the file lost. test_start_replay_read: the start
 * replay's own read of the file (FLUSH then INFO), which re-sent the
 * values past a half-written read, refused by the daemon as already
 * stored (59,047 of them); now confirmed the same way.
 *
 * No timing assertion: the test states that the write was going on when
 * the check began (the file's last update read then) and asserts on what
 * the backend counts lost and what the file holds.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <stdarg.h>

#include <cmocka.h>

#include "vigie/clock.h"
#include "vigie/config.h"
#include "vigie/rrdcached.h"
#include "collector/backend.h"
#include "rrdcached_backend_fixture.h"

#define T0 1699999980LL /* a minute boundary */
#define MS(s) ((int64_t)(s)*1000)
/* Values of the file the other FLUSH writes: enough that the daemon's
 * write of them takes long (70 ms for 20,000 values in 19 archives,
 * unloaded) against the check's round trips (a fraction of a ms each) */
#define CONFIRM_MINUTES 60000
#define FINAL (T0 + 60LL * (CONFIRM_MINUTES - 1))

struct fx {
	struct hbf h;
	struct vg_archive big_arch[VG_MAX_ARCHIVES];
	struct vg_rrd_layout big;
	struct vg_rrd_loc x; /* the file the other FLUSH writes */
	struct vg_rrd_loc z; /* another series, read to run the check */
	struct vg_rrdcd *cb; /* the test's: the values and the other FLUSH */
	struct vg_rrdcd *cp; /* the test's: INFO while that write goes on */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char msg[256] = "";

	if (!f || hbf_open(&f->h, "check-confirm", 1, 90))
		return -1;
	f->big.step_s = 60;
	f->big.heartbeat_s = 90;
	f->big.archives = f->big_arch;
	if (vg_config_parse_archives("1m:15d,2m:30d,5m:63d,10m:100d,15m:200d,1h:455d", f->big_arch,
				     VG_MAX_ARCHIVES, &f->big.narchives) ||
	    f->h.be->ops->locate(f->h.be, VG_RT_HOST, "node7", "load.1", &f->x) ||
	    f->h.be->ops->create(f->h.be, &f->x, VG_KIND_GAUGE, MS(T0), &f->big, msg, sizeof(msg),
				 0) ||
	    f->h.be->ops->locate(f->h.be, VG_RT_HOST, "node8", "load.1", &f->z) ||
	    f->h.be->ops->create(f->h.be, &f->z, VG_KIND_GAUGE, MS(T0), &f->h.lay, msg, sizeof(msg),
				 0) ||
	    vg_rrdcd_connect(f->h.d.tcp_addr, 30000, &f->cb) ||
	    vg_rrdcd_connect(f->h.d.tcp_addr, 30000, &f->cp)) {
		fprintf(stderr, "# setup: %s\n", msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	vg_rrdcd_close(f->cb);
	vg_rrdcd_close(f->cp);
	hbf_close(&f->h);
	free(f);
	return 0;
}

/* Minutes 1..upto of x sent to the daemon on the test's connection. */
static void cache_minutes(struct fx *f, int upto)
{
	int64_t *ts = malloc(sizeof(*ts) * (size_t)upto);
	double *v = malloc(sizeof(*v) * (size_t)upto);

	assert_true(ts && v);
	for (int m = 1; m <= upto; m++) {
		ts[m - 1] = T0 + 60 * m;
		v[m - 1] = m;
	}
	struct vg_rrdcd_update u = {f->x.path, (size_t)upto, 1, ts, v, 0};
	assert_int_equal(vg_rrdcd_update(f->cb, &u), 0);
	free(ts);
	free(v);
}

/* Another FLUSH of x, its answer read later (flush_done); returns once
 * INFO shows that write going on: the file's last update, in s (no
 * timing asserted: 60 s is only a bound against a hang). */
static int64_t other_flush(struct fx *f)
{
	const char *name = f->x.path;
	int64_t last_s = 0, until = vg_monotonic_ms() + 60000;
	int ierr = 0;

	assert_int_equal(vg_rrdcd_flush_many_send(f->cb, &name, 1), 0);
	do
		assert_int_equal(vg_rrdcd_info_last_many(f->cp, &name, 1, &last_s, &ierr), 0);
	while (!ierr && last_s <= T0 && vg_monotonic_ms() < until);
	assert_int_equal(ierr, 0);
	return last_s;
}

static void flush_done(struct fx *f)
{
	int ferr = 0;

	assert_int_equal(vg_rrdcd_flush_many_recv(f->cb, 1, &ferr, NULL), 0);
	assert_int_equal(ferr, 0);
}

/* The test hook: armed, the create's client held, read z through the
 * backend (no idle client left: a new connection, its check). */
static struct vg_rrd_backend *hook_be;
static const struct vg_rrd_loc *hook_loc;
static int hook_rc = 1;

void vg_rrd_rrdcached_test_before_create(const char *path)
{
	int64_t last;

	(void)path;
	if (!hook_be)
		return;
	struct vg_rrd_backend *be = hook_be;
	hook_be = NULL;
	hook_rc = be->ops->last_ms(be, hook_loc, &last, 0);
}

/* The check that ran during the other FLUSH (its answer rc; the file's
 * last update seen when that FLUSH began) passed and found nothing lost;
 * the other FLUSH is then let finish. */
static void check_passed(struct fx *f, struct vg_rrd_backend *be, int rc, int64_t seen)
{
	size_t lost = be->ops->lost(be, NULL, 0);

	printf("# check during the other FLUSH: %d (the file's last update at minute %lld of %d "
	       "when it began), lost %zu\n",
	       rc, (long long)(seen - T0) / 60, CONFIRM_MINUTES - 1, lost);
	assert_int_equal(rc, 0);
	/* the case this test is about was met: the write was going on */
	assert_true(seen > T0 && seen < FINAL);
	assert_int_equal(lost, 0);
	flush_done(f);
}

/* A running collector: x's newest minute sent through the backend (in
 * d->sent, not yet FLUSHed by a sync), the rest by the test. While the
 * other FLUSH writes x, the backend's one client is held by a create and
 * a read of z makes a new connection, whose check FLUSHes x (answered at
 * once) and reads it: behind. Not lost: the check reads it again. */
static void test_running_check(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_backend *be = f->h.be;
	struct vg_rrd_value v = {MS(FINAL), 1.0};
	struct vg_rrd_result res;
	struct vg_rrd_loc y;
	char msg[256] = "";
	int64_t last = INT64_MIN;

	cache_minutes(f, CONFIRM_MINUTES - 2);
	memset(&res, 0, sizeof(res));
	be->ops->update(be, &f->x, &v, 1, &res);
	assert_int_equal(res.written, 1);
	assert_int_equal(be->ops->locate(be, VG_RT_HOST, "node9", "load.1", &y), 0);

	int64_t seen = other_flush(f);
	hook_loc = &f->z;
	hook_be = be;
	assert_int_equal(be->ops->create(be, &y, VG_KIND_GAUGE, MS(T0), &f->h.lay, msg,
					 sizeof(msg), 0),
			 0);
	check_passed(f, be, hook_rc, seen);
	assert_int_equal(be->ops->sync(be), 0);
	assert_int_equal(be->ops->lost(be, NULL, 0), 0);
	assert_int_equal(be->ops->last_ms(be, &f->x, &last, 0), 0);
	assert_int_equal(last, MS(FINAL) + 999);
}

/* A collector started again (a new backend on the same owners file), its
 * journal holding x's values: the start replay names x (replay_note), so
 * the first connection runs the check after a failure (INFO; behind:
 * PENDING, nothing cached, the writer thread took it all; FORGET, INFO).
 * The other FLUSH still writing x, the file read after the FORGET is
 * behind. Not lost: the check reads it again (INFO alone), and the
 * replay reads what the file holds once written. */
static void test_start_replay_check(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_backend *b = NULL;
	struct vg_rrd_loc bx, bz;
	char owners[PATH_MAX], err[256] = "";
	int64_t last = INT64_MIN;

	cache_minutes(f, CONFIRM_MINUTES - 1);
	snprintf(owners, sizeof(owners), "%s/owners", f->h.dir);
	if (vg_rrd_rrdcached_open(f->h.d.tcp_addr, f->h.d.base, owners, &b, err, sizeof(err)))
		fail_msg("backend: %s", err);
	assert_int_equal(b->ops->locate(b, VG_RT_HOST, "node7", "load.1", &bx), 0);
	assert_int_equal(b->ops->locate(b, VG_RT_HOST, "node8", "load.1", &bz), 0);
	int64_t *times = malloc(sizeof(*times) * (CONFIRM_MINUTES - 1));
	assert_non_null(times);
	for (int m = 1; m < CONFIRM_MINUTES; m++)
		times[m - 1] = MS(T0 + 60 * m);
	b->ops->replay_note(b, &bx, times[0], MS(FINAL), INT64_MIN, times, CONFIRM_MINUTES - 1);
	free(times);

	int64_t seen = other_flush(f);
	int rc = b->ops->last_ms(b, &bz, &last, 0); /* the connection, its check */
	check_passed(f, b, rc, seen);
	assert_int_equal(b->ops->last_ms(b, &bx, &last, VG_RRD_REPLAY), 0);
	assert_int_equal(last, MS(FINAL) + 999);
	assert_int_equal(b->ops->lost(b, NULL, 0), 0);
	b->ops->close(b);
}

/* The start replay's read of a file (replay_read: FLUSH, then INFO) while
 * another FLUSH writes it. Here the replay's connection was made before
 * the replay named the file (an idle client: no check of it ran), so the
 * read is the first of the file: the FLUSH answered at once, INFO read the
 * file half written, and the replay re-sent the journaled values past
 * that, which the daemon refused as older than its cache entry (a refused
 * duplicate: res.retries, res.duplicate). The read is now confirmed as
 * the checks' are (behind_confirm): a file behind its newest journaled
 * value is read again while its last update moves. */
static void test_start_replay_read(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_backend *b = NULL;
	struct vg_rrd_loc bx, bz;
	struct vg_rrd_result res;
	char owners[PATH_MAX], err[256] = "";
	int64_t last = INT64_MIN;

	snprintf(owners, sizeof(owners), "%s/owners", f->h.dir);
	if (vg_rrd_rrdcached_open(f->h.d.tcp_addr, f->h.d.base, owners, &b, err, sizeof(err)))
		fail_msg("backend: %s", err);
	assert_int_equal(b->ops->locate(b, VG_RT_HOST, "node7", "load.1", &bx), 0);
	assert_int_equal(b->ops->locate(b, VG_RT_HOST, "node8", "load.1", &bz), 0);
	assert_int_equal(b->ops->last_ms(b, &bz, &last, 0), 0); /* a connection, idle */
	cache_minutes(f, CONFIRM_MINUTES - 1);
	int64_t *times = malloc(sizeof(*times) * (CONFIRM_MINUTES - 1));
	struct vg_rrd_value *v = malloc(sizeof(*v) * (CONFIRM_MINUTES - 1));
	assert_true(times && v);
	for (int m = 1; m < CONFIRM_MINUTES; m++)
		times[m - 1] = MS(T0 + 60 * m);
	b->ops->replay_note(b, &bx, times[0], MS(FINAL), INT64_MIN, times, CONFIRM_MINUTES - 1);

	int64_t seen = other_flush(f);
	assert_int_equal(b->ops->last_ms(b, &bx, &last, VG_RRD_REPLAY), 0);
	flush_done(f);
	/* what the replay sends: the journaled values past the answer */
	size_t n = 0;
	for (int m = 1; m < CONFIRM_MINUTES; m++)
		if (times[m - 1] > last)
			v[n++] = (struct vg_rrd_value){times[m - 1], m};
	memset(&res, 0, sizeof(res));
	if (n)
		b->ops->update(b, &bx, v, n, &res);
	printf("# the replay's read during the other FLUSH: minute %lld of %d (the file's last "
	       "update at minute %lld when it began); re-sent %zu, refused %llu, duplicate %llu\n",
	       last == INT64_MIN ? -1LL : (long long)(last / 1000 - T0) / 60, CONFIRM_MINUTES - 1,
	       (long long)(seen - T0) / 60, n, (unsigned long long)res.retries,
	       (unsigned long long)res.duplicate);
	assert_true(seen > T0 && seen < FINAL);
	assert_int_equal(last, MS(FINAL) + 999);
	assert_int_equal(res.retries, 0);
	assert_int_equal(res.duplicate, 0);
	free(times);
	free(v);
	b->ops->close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_running_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_replay_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_replay_read, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
