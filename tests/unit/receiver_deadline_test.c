/*
 * receiver_deadline_test.c — one deadline per batch (docs/operations.md
 * "One deadline per batch"): a batch's phases draw from one deadline
 * taken at its arrival, three quarters of the agents' ack timeout, so
 * that their bounds do not stack past the agent's ack timeout. With a
 * real rrdcached made slow for real: the test's own daemon is stopped
 * (SIGSTOP) most of the time and let run for a moment now and then, so
 * that it answers every wait within the write-through's own bound while
 * a batch of NFILES series (NFILES / 256 round trips) takes many times
 * the agent's ack timeout.
 *
 * node1's first batch creates its NFILES files (the daemon running; its
 * opens may reach the deadline too: answered RETRY, sent again, each
 * attempt going on where the last stopped), and its next ones are sent
 * until one is written through whole. Then, the daemon slow:
 *  - node1's next batch is answered before the agent's ack timeout (the
 *    REQ socket's receive timeout): acknowledged, its write-through cut
 *    at the deadline (vigie_receiver_batch_deadline_total), the values
 *    not sent held for the storage thread;
 *  - a new host's first batch (NFILES new series) is answered RETRY
 *    before the ack timeout (its opens cut at the deadline, or the
 *    daemon in its back-off), nothing of it recorded;
 *  - the daemon running again, both sent again: node1's is a DUPLICATE,
 *    node2's stored; every value is taken by the store once
 *    (values_written) and is in its file.
 * Without the deadline (ack_timeout_ms 0, the receiver before it) the
 * write-through spends the daemon's whole slowness (each round trip
 * within its own bound): no answer within the ack timeout, the case
 * fails at the first slow batch.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/config.h"
#include "vigie/dispatch.h"
#include "vigie/log.h"
#include "vigie/receiver.h"
#include "vigie/registry.h"
#include "vigie/store.h"
#include "vigie/wire.h"

#include "../support/receiver_fixture.h"
#include "rrdcached_harness.h"

#define T0 1699999980000LL
#define STREAM 0x1122334455667788ull
#define NFILES 2048         /* eight write-through round trips of 256 */
#define ACK_TIMEOUT_MS 3000 /* the agent's, as its REQ socket waits */
#define STOPPED_US 2000000  /* the slow daemon: stopped this long, */
#define RUNNING_US 2000     /* then running this long, again and again */

struct fixture {
	char dir[64];
	char url[64];
	struct vg_config cfg;
	struct hrd_daemon daemon;
	struct vg_store *store;
	struct vg_registry *reg, *watch;
	struct vg_dispatch d;
	struct vg_receiver *rx;
	pthread_t thread;
	int req;
	pthread_t staller;
	int stalling, staller_on;
};

static void *stall(void *arg)
{
	struct fixture *f = arg;

	while (__atomic_load_n(&f->stalling, __ATOMIC_SEQ_CST)) {
		kill(f->daemon.pid, SIGSTOP);
		usleep(STOPPED_US);
		kill(f->daemon.pid, SIGCONT);
		usleep(RUNNING_US);
	}
	return NULL;
}

static void stall_start(struct fixture *f)
{
	f->stalling = 1;
	assert_int_equal(pthread_create(&f->staller, NULL, stall, f), 0);
	f->staller_on = 1;
}

static void stall_stop(struct fixture *f)
{
	if (!f->staller_on)
		return;
	__atomic_store_n(&f->stalling, 0, __ATOMIC_SEQ_CST);
	pthread_join(f->staller, NULL);
	f->staller_on = 0;
	kill(f->daemon.pid, SIGCONT);
}

static uint32_t port_seed;

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct vg_receiver_options o = {0};
	static const char *const extra[] = {"-O", "-R", NULL};
	char err[256];
	int rc;

	vg_log_init("receiver_deadline_test", VG_LOG_ERROR);
	*state = f;
	if (!f)
		return -1;
	f->req = -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vigie-deadline-test.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	if ((rc = hrd_start(&f->daemon, NULL, extra))) {
		fprintf(stderr, "rrdcached: %s\n", strerror(-rc));
		return -1;
	}
	vg_config_defaults(&f->cfg);
	/* each wait on the daemon bounded by a quarter of this, 10 s: every
	 * round trip of the slow daemon is answered within its own bound, as
	 * each of a large host's can be within the default 1.25 s while the
	 * whole batch is not; only the batch's deadline is left to cut it */
	f->cfg.agent_ack_timeout_ms = 40000;
	vg_config_parse_archives("1m:1d", f->cfg.archives, VG_MAX_ARCHIVES, &f->cfg.narchives);
	fxr_write_through(&f->cfg, f->daemon.unix_addr, f->daemon.base);
	if (vg_store_open(f->dir, &f->cfg, &f->store, err, sizeof(err)) ||
	    vg_registry_open_state(f->dir, "", &f->reg, err, sizeof(err)) ||
	    vg_registry_open_state(f->dir, "", &f->watch, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	fxr_dispatch(&f->d, f->reg, f->store);
	o.max_message = 1u << 22;
	o.registry = f->reg;
	o.dispatch = &f->d;
	o.store = f->store;
	o.hold_ttl_ms = 600000;
	o.ack_timeout_ms = ACK_TIMEOUT_MS;
	if (vg_registry_set_holder(f->reg, "this-node", o.hold_ttl_ms))
		return -1;
	if (fxr_start(&o, f->url, sizeof(f->url), &port_seed, &f->rx, &f->thread, NULL,
		      NULL))
		return -1;
	f->req = fxr_req_open(f->url, 120000);
	return f->req < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	stall_stop(f);
	if (f->req >= 0)
		nn_close(f->req);
	fxr_stop(f->rx, f->thread);
	vg_registry_close(f->watch);
	vg_registry_close(f->reg);
	vg_store_close(f->store);
	hrd_cleanup(&f->daemon);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd))
		return -1;
	free(f);
	return 0;
}

/* Send host's batch seq on s (its instance with NFILES gauges metric.<i> = seq + i at minute seq): its ack's
 * status, or -1 when none came within the socket's receive timeout. */
static int send_on(int s, const char *host, uint64_t seq)
{
	size_t len;
	uint8_t *buf = fxr_gauges(host, STREAM, seq, T0, NFILES, &len);
	int st;

	assert_non_null(buf);
	st = fxr_send(s, buf, len, seq);
	assert_int_not_equal(st, -2);
	return st;
}

/* Send until not answered RETRY (the agent's re-sends); the last status. */
static int send_until_taken(struct fixture *f, const char *host, uint64_t seq)
{
	int st = send_on(f->req, host, seq);

	for (int i = 0; i < 200 && st == VG_ACK_RETRY; i++) {
		usleep(50 * 1000);
		st = send_on(f->req, host, seq);
	}
	return st;
}

static int recorded(struct fixture *f, const char *host, uint64_t seq)
{
	int rc = vg_registry_seen(f->watch, host, STREAM, seq, T0 + (int64_t)seq * 60000);

	assert_true(rc == 0 || rc == 1);
	return rc;
}

/* 1 when host's metric.<i> holds value v in minute m's interval */
static int has_value(struct fixture *f, const char *host, int i, int m, double v)
{
	struct vg_series s = {0};
	char name[32], id[32];
	int64_t t = T0 + (int64_t)m * 60000;
	int found = 0;

	snprintf(name, sizeof(name), "metric.%d", i);
	snprintf(id, sizeof(id), "%s-inst", host);
	assert_int_equal(vg_store_fetch(f->store, VG_RT_INSTANCE, id, name, VG_CF_AVERAGE,
					t - 120000, t + 60000, 60, 1, &s),
			 0);
	for (size_t k = 0; k < s.n; k++)
		found |= s.points[k].value == v;
	vg_series_free(&s);
	return found;
}

/* vg_store_flush until it passes: a write-through cut at its deadline
 * may have closed a connection, and the daemon's back-off fails a sync
 * started within it (calling again later is safe) */
static int flush_all(struct fixture *f)
{
	int rc = vg_store_flush(f->store);

	for (int i = 0; i < 100 && rc; i++) {
		usleep(100 * 1000);
		rc = vg_store_flush(f->store);
	}
	return rc;
}

static void test_slow_daemon_one_deadline(void **state)
{
	struct fixture *f = *state;
	struct vg_receiver_stats cs;
	struct vg_store_stats ss;
	uint64_t cut0, seq = 1;
	int st1, st2;

	/* the files, with the daemon running */
	assert_int_equal(send_until_taken(f, "node1", seq), VG_ACK_OK);
	/* then node1's batches until one is written through whole before
	 * its ack: the first ones may be cut at their deadline too (a
	 * loaded machine), the round trip under way then closing its
	 * connection, which puts its series and the daemon in a back-off
	 * (the write-through then leaves the next batch's values to the
	 * storage thread at once) */
	for (int i = 0; i < 30; i++) {
		assert_int_equal(flush_all(f), 0);
		usleep(200 * 1000);
		assert_int_equal(send_until_taken(f, "node1", ++seq), VG_ACK_OK);
		vg_store_get_stats(f->store, &ss);
		if (!ss.values_pending)
			break;
	}
	assert_int_equal(ss.values_pending, 0);
	vg_receiver_stats_fn(f->rx, &cs);
	cut0 = cs.batch_deadline;

	/* the daemon slow: answering each round trip within its bound */
	stall_start(f);
	nn_close(f->req);
	f->req = fxr_req_open(f->url, ACK_TIMEOUT_MS);
	assert_true(f->req >= 0);
	st1 = send_on(f->req, "node1", ++seq);
	/* -1 would be the agent's ack timeout: it fails over */
	assert_int_equal(st1, VG_ACK_OK);
	assert_int_equal(recorded(f, "node1", seq), 1);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_true(cs.batch_deadline >= cut0 + 1); /* the write-through cut */

	/* a new host's NFILES opens: RETRY before the ack timeout (cut at
	 * the deadline, or at once while the daemon, whose connection the
	 * cut above closed, is in its back-off), nothing recorded */
	st2 = send_on(f->req, "node2", 1);
	assert_int_equal(st2, VG_ACK_RETRY);
	assert_int_equal(recorded(f, "node2", 1), 0);

	/* the daemon runs again: the agents' re-sends */
	stall_stop(f);
	nn_close(f->req);
	f->req = fxr_req_open(f->url, 120000);
	assert_int_equal(send_until_taken(f, "node1", seq), VG_ACK_DUPLICATE);
	assert_int_equal(send_until_taken(f, "node2", 1), VG_ACK_OK);
	assert_int_equal(recorded(f, "node2", 1), 1);
	/* (a file's first update makes no point: node2's second shows it) */
	assert_int_equal(send_until_taken(f, "node2", 2), VG_ACK_OK);

	/* every value taken once, and in its file */
	assert_int_equal(flush_all(f), 0);
	vg_store_get_stats(f->store, &ss);
	assert_int_equal(ss.values_written, (seq + 2) * NFILES);
	assert_int_equal(ss.values_pending, 0);
	for (int i = 0; i < NFILES; i += NFILES / 8 - 1) {
		assert_true(has_value(f, "node1", i, (int)seq, (double)seq + i));
		assert_true(has_value(f, "node2", i, 2, 2.0 + i));
	}
	assert_true(has_value(f, "node1", NFILES - 1, (int)seq, (double)seq + NFILES - 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_slow_daemon_one_deadline, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
