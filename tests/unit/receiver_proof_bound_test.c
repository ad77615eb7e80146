/*
 * receiver_proof_bound_test.c — the bound of a proof ([cluster]
 * proof_timeout_ms, docs/scaling.md "Closing the second", part 2) at the
 * receiver, with a real rrdcached made slow for real: the test's own
 * daemon is stopped (SIGSTOP) most of the time and let run for a moment
 * now and then, so that it answers every wait within its own timeout and
 * a proof of many files takes many times the agents' ack timeout.
 *
 * Another node committed node1's batches 2-3 after its verified row, its
 * values of the host's NFILES series cached by the daemon only, and this
 * collector has a connection to the daemon made before that commit: the
 * next batch would be proven by FLUSHing NFILES files over it. With the
 * daemon slow:
 *  - the batch is answered RETRY (nothing lost: the agent keeps it)
 *    before the agent's ack timeout (the REQ socket's receive timeout),
 *    counted in proofs_timed_out (and unverified), nothing of it
 *    recorded; another host's batch sent with it is answered too;
 *  - once the daemon runs again, the other node's row covering its
 *    commit (its next sync), the same batch sent again is stored.
 * Without the bound the receiver spends the daemon's whole slowness on
 * the proof (each FLUSH BATCH answered within its own wait): the first
 * answer does not come within the ack timeout and the case fails.
 * sqlite state only: the bound is the receiver's and the backend's, the
 * state engine plays no part in it (receiver_test.c runs the proof on
 * both).
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
#include <math.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/config.h"
#include "vigie/dispatch.h"
#include "vigie/log.h"
#include "vigie/receiver.h"
#include "vigie/registry.h"
#include "vigie/rrdcached.h"
#include "vigie/store.h"
#include "vigie/wire.h"

#include "../support/receiver_fixture.h"
#include "rrdcached_harness.h"

#define T0 1699999980000LL
#define STREAM 0x1122334455667788ull
#define NFILES 640          /* five FLUSH BATCHes of 128 */
#define ACK_TIMEOUT_MS 4000 /* the agent's, as its REQ socket waits */
#define PROOF_BOUND_MS 400  /* [cluster] proof_timeout_ms */
#define STOPPED_US 300000   /* the slow daemon: stopped this long, */
#define RUNNING_US 2000     /* then running this long, again and again */

struct fixture {
	struct fxr_slow s;
	struct vg_registry *other; /* the other node's */
};

static uint32_t port_seed;

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct vg_receiver_options o = {0};
	char err[256];

	vg_log_init("receiver_proof_bound_test", VG_LOG_ERROR);
	*state = f;
	if (!f || fxr_slow_open(&f->s, "/tmp/vigie-proof-bound-test.XXXXXX"))
		return -1;
	if (vg_registry_open_state(f->s.dir, "", &f->other, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	o.max_message = 1u << 20;
	o.verified_rows = 1;
	/* a connection made a moment before the other node's commit
	 * proves it (the default margin is seconds) */
	o.proof_margin_ms = 1;
	o.proof_timeout_ms = PROOF_BOUND_MS;
	if (vg_registry_set_holder(f->other, "other-node", 600000))
		return -1;
	vg_registry_set_wait_verified(f->s.reg, 1);
	/* the first batch creates NFILES files: not the bound's concern */
	return fxr_slow_start(&f->s, &o, &port_seed);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc;

	fxr_stall_stop(&f->s.staller); /* the other registry closed after */
	vg_registry_close(f->other);
	rc = fxr_slow_close(&f->s);
	free(f);
	return rc;
}

/* Send host's batch seq on s (node1's instance with NFILES gauges metric.<i> = seq + i at minute seq, another host's with one): its ack's
 * status, or -1 when none came within the socket's receive timeout. */
static int send_on(int s, const char *host, uint64_t seq)
{
	size_t len;
	uint8_t *buf = fxr_gauges(host, STREAM, seq, T0, strcmp(host, "node1") ? 1 : NFILES, &len);
	int st;

	assert_non_null(buf);
	st = fxr_send(s, buf, len, seq);
	assert_int_not_equal(st, -2);
	return st;
}

static int vrow(void *ctx, const char *node, int64_t upto_ms, uint64_t behind)
{
	uint64_t *w = ctx;

	if (!strcmp(node, "this-node"))
		*w = behind;
	return 0;
}

/* The other node's values of node1's NFILES series, minutes 2-3, sent
 * to the daemon over its own connection (cached there, -w 3600). */
static void other_sends(struct fixture *f)
{
	struct vg_rrdcd *c;
	char path[PATH_MAX];

	assert_int_equal(vg_rrdcd_connect(f->s.daemon.unix_addr, 30000, &c), 0);
	for (int i = 0; i < NFILES; i++) {
		char m[32];
		int64_t ts[2] = {(T0 + 2 * 60000) / 1000, (T0 + 3 * 60000) / 1000};
		double v[2] = {2 + i, 3 + i};
		snprintf(m, sizeof(m), "metric.%d", i);
		assert_int_equal(vg_store_path(f->s.store, VG_RT_INSTANCE, "node1-inst", m, path,
					       sizeof(path)),
				 0);
		struct vg_rrdcd_update u = {path, 2, 1, ts, v, 0};
		assert_int_equal(vg_rrdcd_update(c, &u), 0);
	}
	vg_rrdcd_close(c);
}

/* 1 when node1's batch seq is recorded (committed), as another
 * collector's duplicate check reads it */
static int recorded(struct fixture *f, uint64_t seq)
{
	int rc = vg_registry_seen(f->s.watch, "node1", STREAM, seq, T0 + (int64_t)seq * 60000);

	assert_true(rc == 0 || rc == 1);
	return rc;
}

/* 1 when metric.<i> holds value v in minute m's interval, read through
 * the store (and so through the daemon) */
static int has_value(struct fixture *f, int i, int m, double v)
{
	struct vg_series s = {0};
	char name[32];
	int64_t t = T0 + (int64_t)m * 60000;
	int found = 0;

	snprintf(name, sizeof(name), "metric.%d", i);
	assert_int_equal(vg_store_fetch(f->s.store, VG_RT_INSTANCE, "node1-inst", name,
					VG_CF_AVERAGE, t - 120000, t + 60000, 60, 1, &s),
			 0);
	for (size_t k = 0; k < s.n; k++)
		found |= s.points[k].value == v;
	vg_series_free(&s);
	return found;
}

static void test_slow_daemon_bounded(void **state)
{
	struct fixture *f = *state;
	struct vg_receiver_stats cs;
	uint64_t behind = 1;
	int s2, st1, st2;

	assert_int_equal(send_on(f->s.req, "node1", 1), VG_ACK_OK); /* files, connection */
	for (int i = 0; i < 600 && behind; i++) {
		behind = 0;
		assert_int_equal(vg_registry_verified(f->s.watch, vrow, &behind), 0);
		if (behind)
			usleep(100 * 1000);
	}
	assert_int_equal(behind, 0); /* synced: the connection back in the pool */
	usleep(20 * 1000);           /* the commit below after it (margin 1 ms) */
	other_sends(f);
	assert_int_equal(vg_registry_commit(f->other, "node1", STREAM, 3, T0 + 180000), 0);

	/* the daemon slow: answering each wait within its timeout */
	assert_int_equal(fxr_stall_start(&f->s.staller, f->s.daemon.pid, STOPPED_US, RUNNING_US), 0);
	nn_close(f->s.req);
	f->s.req = fxr_req_open(f->s.url, ACK_TIMEOUT_MS);
	s2 = fxr_req_open(f->s.url, ACK_TIMEOUT_MS);
	assert_true(f->s.req >= 0 && s2 >= 0);
	st1 = send_on(f->s.req, "node1", 4);
	st2 = send_on(s2, "node2", 1);
	nn_close(s2);
	/* answered before the agent gives up on this collector: -1 would be
	 * its ack timeout, the agent failing over */
	assert_int_equal(st1, VG_ACK_RETRY);
	assert_int_not_equal(st2, -1); /* another host not held behind it */
	vg_receiver_stats_fn(f->s.rx, &cs);
	assert_int_equal(cs.proofs_timed_out, 1);
	assert_int_equal(cs.batches_unverified, 1);
	assert_int_equal(cs.batches_proven, 0);
	assert_int_equal(recorded(f, 3), 1);
	assert_int_equal(recorded(f, 4), 0); /* nothing of batch 4 recorded */

	/* the daemon runs again; the other node's sync verifies its commit:
	 * the agent's re-send is stored, and the other node's values kept */
	fxr_stall_stop(&f->s.staller);
	nn_close(f->s.req);
	f->s.req = fxr_req_open(f->s.url, 60000);
	assert_int_equal(vg_registry_set_verified(f->other, vg_registry_committed_ms(f->other)),
			 0);
	st1 = send_on(f->s.req, "node1", 4);
	for (int i = 0; i < 100 && st1 == VG_ACK_RETRY; i++) {
		usleep(100 * 1000);
		st1 = send_on(f->s.req, "node1", 4);
	}
	assert_int_equal(st1, VG_ACK_OK);
	assert_int_equal(recorded(f, 4), 1);
	assert_true(has_value(f, 0, 4, 4.0));
	assert_true(has_value(f, NFILES - 1, 4, 4.0 + NFILES - 1));
	assert_true(has_value(f, NFILES - 1, 3, 3.0 + NFILES - 1)); /* the other's */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_slow_daemon_bounded, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
