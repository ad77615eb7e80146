/*
 * rrdcached_open_stall_test.c — the receiver's open of a new series on a
 * storage daemon that stalls (SIGSTOP: it keeps its connections and
 * answers nothing), with a real rrdcached (collector/backend_rrdcached.c,
 * VG_RRD_RECEIVER in collector/backend.h).
 *
 * Why. The store answers a batch RETRY when a new series' daemon does not
 * answer (-EHOSTUNREACH, -EAGAIN) and acknowledges it when the series
 * "cannot be read" (-EIO: the values are journaled in a kept segment and
 * never written). A CREATE that timed out used to answer -EIO: the
 * agent's values for the new series were acknowledged and lost. It must
 * answer -EHOSTUNREACH (the batch waits), and the create, which the
 * daemon may still do later from the closed connection's socket, must be
 * safe to do again: after SIGCONT the series opens as the store opens it
 * (last update, else create), a second create answers 0 (the file exists:
 * -O), and every value written afterwards is in the file once.
 *
 * The store's part (test_store_retries_a_batch_whose_create_is_cut_short):
 * the daemon stalls between a new series' last-update read and its CREATE
 * (the backend's test hook); the batch must be refused whole (-EAGAIN:
 * the receiver answers RETRY, nothing journaled or acknowledged), counted
 * in series_unreachable, and the same batch re-sent after SIGCONT, then
 * the next minutes, must leave every series with every minute once, no
 * value counted as an error, no journal segment kept.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/store.h"
#include "collector/backend.h"
#include "rrdcached_backend_fixture.h"
#include "../support/proc_stall.h"
#include "../support/store_series.h"
#include "../support/tmpdir.h"

#define T0 1699999980LL /* a minute boundary */
#define MS(s) ((int64_t)(s)*1000)

static int setup(void **state)
{
	struct hbf *h = calloc(1, sizeof(*h));

	if (!h || hbf_open(h, "open-stall", 0, 90))
		return -1;
	/* the receiver's bound: a quarter of a 400 ms ack timeout */
	vg_rrd_rrdcached_write_through_timeout(h->be, 400);
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	struct hbf *h = *state;

	hbf_close(h);
	free(h);
	return 0;
}

/* The store's open once the daemon answers again: its last update, else
 * a create (VG_RRD_RECEIVER), repeated while the daemon is in its
 * back-off (-EHOSTUNREACH). 0 with *last, or the error. */
static int open_again(struct hbf *h, const struct vg_rrd_loc *loc, int64_t *last)
{
	char msg[256] = "";
	int rc = -EHOSTUNREACH;

	for (int i = 0; i < 400 && rc == -EHOSTUNREACH; i++) {
		if (i) {
			struct timespec ts = {0, 50 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		rc = h->be->ops->last_ms(h->be, loc, last, VG_RRD_RECEIVER);
		if (rc == -ENOENT) {
			rc = h->be->ops->create(h->be, loc, VG_KIND_GAUGE, MS(T0), &h->lay, msg,
						sizeof(msg), VG_RRD_RECEIVER);
			*last = MS(T0 - 1);
		}
	}
	if (rc)
		fprintf(stderr, "# open again: %d %s\n", rc, msg);
	return rc;
}

/* v at T0 + 60 k, k = 1..n, into loc; the values written. */
static uint64_t write_minutes(struct hbf *h, const struct vg_rrd_loc *loc, int n)
{
	struct vg_rrd_value v[16];
	struct vg_rrd_result res;

	for (int k = 0; k < n; k++)
		v[k] = (struct vg_rrd_value){MS(T0 + 60 * (k + 1)), 10.0 + k};
	memset(&res, 0, sizeof(res));
	h->be->ops->update(h->be, loc, v, (size_t)n, &res);
	if (res.failed || res.unavailable)
		fprintf(stderr, "# update: %s\n", res.msg);
	return res.written;
}

/* A CREATE the stalled daemon does not answer within the receiver's
 * bound: -EHOSTUNREACH (the batch waits), never -EIO (acknowledged and
 * lost); redone after SIGCONT, once. */
static void test_create_cut_short_waits_and_is_redone(void **state)
{
	struct hbf *h = *state;
	struct vg_rrd_loc loc;
	char msg[256] = "";
	int64_t last = 0;

	assert_int_equal(h->be->ops->locate(h->be, VG_RT_HOST, "fresh", "load.1", &loc), 0);
	/* read on a connection the backend then keeps idle */
	assert_int_equal(h->be->ops->last_ms(h->be, &loc, &last, VG_RRD_RECEIVER), -ENOENT);
	assert_int_equal(vg_test_stall(h->d.pid), 0);
	int rc = h->be->ops->create(h->be, &loc, VG_KIND_GAUGE, MS(T0), &h->lay, msg,
				    sizeof(msg), VG_RRD_RECEIVER);
	assert_int_equal(kill(h->d.pid, SIGCONT), 0);
	if (rc != -EHOSTUNREACH)
		fprintf(stderr, "# create on the stalled daemon: %d %s\n", rc, msg);
	assert_int_equal(rc, -EHOSTUNREACH);
	assert_non_null(strstr(msg, loc.path));

	/* half-done or not done: the open is redone as the store does it */
	assert_int_equal(open_again(h, &loc, &last), 0);
	assert_true(last <= MS(T0 - 1) + 999);
	assert_int_equal(h->be->ops->create(h->be, &loc, VG_KIND_GAUGE, MS(T0), &h->lay, msg,
					    sizeof(msg), VG_RRD_RECEIVER),
			 0);
	assert_int_equal(write_minutes(h, &loc, 5), 5);
	assert_int_equal(h->be->ops->last_ms(h->be, &loc, &last, 0), 0);
	assert_int_equal(last, MS(T0 + 300) + 999);
}

/* The last update of a new series read over a connection the backend
 * already holds, on a stalled daemon: the daemon, not the file
 * (-EHOSTUNREACH: the batch waits), and the series opens after SIGCONT. */
static void test_last_update_on_held_connection_waits(void **state)
{
	struct hbf *h = *state;
	struct vg_rrd_loc a, b;
	int64_t last = 0;

	assert_int_equal(h->be->ops->locate(h->be, VG_RT_HOST, "old", "load.1", &a), 0);
	assert_int_equal(h->be->ops->locate(h->be, VG_RT_HOST, "new", "load.1", &b), 0);
	assert_int_equal(open_again(h, &a, &last), 0); /* leaves a client idle */
	assert_int_equal(vg_test_stall(h->d.pid), 0);
	int rc = h->be->ops->last_ms(h->be, &b, &last, VG_RRD_RECEIVER);
	assert_int_equal(kill(h->d.pid, SIGCONT), 0);
	assert_int_equal(rc, -EHOSTUNREACH);
	assert_int_equal(open_again(h, &b, &last), 0);
	assert_int_equal(write_minutes(h, &b, 3), 3);
	assert_int_equal(h->be->ops->last_ms(h->be, &b, &last, 0), 0);
	assert_int_equal(last, MS(T0 + 180) + 999);
}

/* The daemon the hook stalls at the create of the batch's last new series
 * (the series before it are created: only this one is cut short), or 0. */
static pid_t stall_at_create;

void vg_rrd_rrdcached_test_before_create(const char *path)
{
	if (stall_at_create > 0 && !strcmp(path, "host/node3/load.1.rrd")) {
		assert_int_equal(vg_test_stall(stall_at_create), 0);
		stall_at_create = 0;
	}
}

static void test_store_retries_a_batch_whose_create_is_cut_short(void **state)
{
	static const char *const extra[] = {"-O", "-R", NULL};
	struct hrd_daemon d;
	struct vg_config cfg;
	struct vg_store *s;
	struct vg_store_stats st;
	char dir[256], err[256];
	int rc = -EAGAIN;

	(void)state;
	memset(&d, 0, sizeof(d));
	assert_int_equal(fx_tmpdir(dir, sizeof(dir), "open-stall-store"), 0);
	assert_int_equal(hrd_start(&d, NULL, extra), 0);
	fxs_config(&cfg, "1m:1d", d.tcp_addr, NULL);
	cfg.agent_ack_timeout_ms = 400; /* the receiver's bound: 100 ms */
	assert_int_equal(vg_store_open(dir, &cfg, &s, err, sizeof(err)), 0);
	/* a batch of old series first: the receiver then holds a connection */
	assert_int_equal(fxs_write_minute(s, "old", 0, 2, 0), 0);

	stall_at_create = d.pid;
	assert_int_equal(fxs_write_minute(s, "node", 0, 4, 0), -EAGAIN);
	assert_int_equal(kill(d.pid, SIGCONT), 0);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.series_unreachable, 1);
	assert_int_equal(st.values_written, 2); /* the old batch's only */
	assert_int_equal(st.write_errors, 0);

	/* the agent re-sends the batch (RETRY) until the daemon answers */
	for (int i = 0; i < 400 && rc == -EAGAIN; i++) {
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
		rc = fxs_write_minute(s, "node", 0, 4, 0);
	}
	assert_int_equal(rc, 0);
	for (int m = 1; m < 5; m++)
		assert_int_equal(fxs_write_minute(s, "node", 0, 4, m), 0);
	for (int i = 0; i < 4; i++)
		fxs_check_series(s, i, 5);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.values_written, 2 + 4 * 5);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(st.segments_kept, 0);
	vg_store_close(s);
	hrd_cleanup(&d);
	fx_rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_cut_short_waits_and_is_redone, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_last_update_on_held_connection_waits, setup,
						teardown),
		cmocka_unit_test(test_store_retries_a_batch_whose_create_is_cut_short),
	};
	if (system("command -v rrdcached >/dev/null")) {
		printf("# skipped: rrdcached not installed\n");
		return 0;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
