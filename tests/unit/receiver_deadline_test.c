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
 * The slow phase is run again (up to ATTEMPTS times, node3's batch the
 * new one, ...) when the machine decided it, not the receiver: on a
 * loaded machine the staller may let the daemon run long enough to take
 * a whole batch in time (not cut, nothing held), or the receiver's
 * thread may get the CPU too late to answer a batch cut at its deadline
 * within the last quarter of the ack timeout (cut, answered after it).
 * The test waits LATE_MS, twice the ack timeout, for an answer.
 * Without the deadline (ack_timeout_ms 0, the receiver before it) the
 * write-through spends the daemon's whole slowness (each round trip
 * within its own bound, 6 s and more for NFILES / 256 of them): not
 * cut, answered after the ack timeout or not at all, the case fails at
 * the first slow batch.
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
/* How long the test waits for an answer: the agent's ack timeout, and
 * as long again for the machine's own lateness (a loaded CI runner). An
 * uncut write-through takes the daemon's stops until its NFILES / 256
 * round trips are done (6 s and more, each run letting a few through). */
#define LATE_MS (2 * ACK_TIMEOUT_MS)
#define ATTEMPTS 5 /* of the slow phase, when the machine decided one */

static uint32_t port_seed;

static int setup(void **state)
{
	struct fxr_slow *f = calloc(1, sizeof(*f));
	struct vg_receiver_options o = {0};

	vg_log_init("receiver_deadline_test", VG_LOG_ERROR);
	*state = f;
	if (!f || fxr_slow_open(f, "/tmp/vigie-deadline-test.XXXXXX"))
		return -1;
	o.max_message = 1u << 22;
	o.ack_timeout_ms = ACK_TIMEOUT_MS;
	return fxr_slow_start(f, &o, &port_seed);
}

static int teardown(void **state)
{
	struct fxr_slow *f = *state;
	int rc = fxr_slow_close(f);

	free(f);
	return rc;
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
static int send_until_taken(struct fxr_slow *f, const char *host, uint64_t seq)
{
	int st = send_on(f->req, host, seq);

	for (int i = 0; i < 200 && st == VG_ACK_RETRY; i++) {
		usleep(50 * 1000);
		st = send_on(f->req, host, seq);
	}
	return st;
}

static int recorded(struct fxr_slow *f, const char *host, uint64_t seq)
{
	int rc = vg_registry_seen(f->watch, host, STREAM, seq, T0 + (int64_t)seq * 60000);

	assert_true(rc == 0 || rc == 1);
	return rc;
}

/* 1 when host's metric.<i> holds value v in minute m's interval */
static int has_value(struct fxr_slow *f, const char *host, int i, int m, double v)
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

/* vg_store_flush until it passes and nothing is cached: a write-through
 * cut at its deadline may have closed a connection, and the daemon's
 * back-off fails a sync started within it (calling again later is safe);
 * values a batch cached for series in that back-off are not owed (a
 * flush may pass without them) and are written by the storage thread
 * once it is over */
static int flush_all(struct fxr_slow *f)
{
	struct vg_store_stats ss;
	int rc = vg_store_flush(f->store);

	vg_store_get_stats(f->store, &ss);
	for (int i = 0; i < 100 && (rc || ss.values_pending); i++) {
		usleep(100 * 1000);
		rc = vg_store_flush(f->store);
		vg_store_get_stats(f->store, &ss);
	}
	return rc ? rc : ss.values_pending ? -EAGAIN
					   : 0;
}

static uint64_t cuts(struct fxr_slow *f)
{
	struct vg_receiver_stats cs;

	vg_receiver_stats_fn(f->rx, &cs);
	return cs.batch_deadline;
}

/* f's REQ socket again, waiting timeout_ms for each answer */
static void req_reopen(struct fxr_slow *f, int timeout_ms)
{
	nn_close(f->req);
	f->req = fxr_req_open(f->url, timeout_ms);
	assert_true(f->req >= 0);
}

/* The daemon running: node1's batches (from *seq + 1) until one is
 * written through whole before its ack. The first ones may be cut at
 * their deadline too (a loaded machine), the round trip under way then
 * closing its connection, which puts its series and the daemon in a
 * back-off (the write-through then leaves the next batch's values to
 * the storage thread at once). */
static void written_through(struct fxr_slow *f, uint64_t *seq)
{
	struct vg_store_stats ss;

	req_reopen(f, 120000);
	for (int i = 0; i < 30; i++) {
		assert_int_equal(flush_all(f), 0);
		usleep(200 * 1000);
		assert_int_equal(send_until_taken(f, "node1", ++*seq), VG_ACK_OK);
		vg_store_get_stats(f->store, &ss);
		if (!ss.values_pending)
			return;
	}
	fail_msg("no batch of node1 written through whole in 30");
}

/* Send host's batch seq as send_on: its status; *ms, the time from its
 * send (encoded before) to its answer. */
static int send_timed(struct fxr_slow *f, const char *host, uint64_t seq, int64_t *ms)
{
	size_t len;
	uint8_t *buf = fxr_gauges(host, STREAM, seq, T0, NFILES, &len);
	int64_t t = vg_monotonic_ms();
	int st;

	assert_non_null(buf);
	st = fxr_send(f->req, buf, len, seq);
	*ms = vg_monotonic_ms() - t;
	assert_int_not_equal(st, -2);
	return st;
}

static void test_slow_daemon_one_deadline(void **state)
{
	struct fxr_slow *f = *state;
	struct vg_store_stats ss;
	uint64_t cut0, seq = 1;
	int64_t ms1, ms2, t0 = vg_monotonic_ms(), t1, t2;
	int st1, st2, attempt;
	char host[16];

	/* the files, with the daemon running */
	assert_int_equal(send_until_taken(f, "node1", seq), VG_ACK_OK);
	t1 = vg_monotonic_ms();

	/* The slow phase, again (a new host each time) when the machine,
	 * not the receiver, decided it: the daemon got the CPU to take a
	 * whole batch in time (no cut: the staller ran late), or an answer
	 * cut at the deadline came after the ack timeout (the receiver's
	 * thread waited for the CPU past the last quarter). Without the
	 * deadline the batch is not cut and is answered after the ack
	 * timeout, or not within LATE_MS: that fails at once. */
	for (attempt = 0;; attempt++) {
		int machine = 0;

		assert_true(attempt < ATTEMPTS);
		written_through(f, &seq);
		cut0 = cuts(f);
		/* the daemon slow: answering each round trip within its bound */
		assert_int_equal(fxr_stall_start(&f->staller, f->daemon.pid, STOPPED_US, RUNNING_US),
				 0);
		req_reopen(f, LATE_MS);
		/* node1's next batch: acknowledged (-1 would be the agent's
		 * ack timeout, twice over), its write-through cut */
		st1 = send_timed(f, "node1", ++seq, &ms1);
		vg_store_get_stats(f->store, &ss);
		print_message("attempt %d: node1 %d after %lld ms, %llu cut, %llu held\n",
			      attempt, st1, (long long)ms1,
			      (unsigned long long)(cuts(f) - cut0),
			      (unsigned long long)ss.values_pending);
		assert_int_equal(st1, VG_ACK_OK);
		assert_int_equal(recorded(f, "node1", seq), 1);
		if (cuts(f) == cut0) {
			/* not cut: only when written through whole in time
			 * (late, it is the write-through without the deadline) */
			assert_int_equal(ss.values_pending, 0);
			assert_true(ms1 < ACK_TIMEOUT_MS);
			fxr_stall_stop(&f->staller);
			continue;
		}
		machine = ms1 >= ACK_TIMEOUT_MS;

		/* a new host's NFILES opens: RETRY (cut at the deadline, or
		 * at once while the daemon, whose connection the cut above
		 * closed, is in its back-off), nothing recorded */
		snprintf(host, sizeof(host), "node%d", attempt + 2);
		st2 = send_timed(f, host, 1, &ms2);
		print_message("attempt %d: %s %d after %lld ms\n", attempt, host, st2,
			      (long long)ms2);
		fxr_stall_stop(&f->staller);
		assert_int_equal(st2, VG_ACK_RETRY);
		assert_int_equal(recorded(f, host, 1), 0);
		if (!machine && ms2 < ACK_TIMEOUT_MS)
			break;
	}

	/* the daemon runs again: the agents' re-sends */
	t2 = vg_monotonic_ms();
	req_reopen(f, 120000);
	assert_int_equal(send_until_taken(f, "node1", seq), VG_ACK_DUPLICATE);
	assert_int_equal(send_until_taken(f, host, 1), VG_ACK_OK);
	assert_int_equal(recorded(f, host, 1), 1);
	/* (a file's first update makes no point: the second shows it) */
	assert_int_equal(send_until_taken(f, host, 2), VG_ACK_OK);

	/* every value taken once (every node1 batch, the new host's two),
	 * and in its file */
	assert_int_equal(flush_all(f), 0);
	print_message("# files %lld ms, slow phase %lld ms, re-sends %lld ms\n",
		      (long long)(t1 - t0), (long long)(t2 - t1),
		      (long long)(vg_monotonic_ms() - t2));
	vg_store_get_stats(f->store, &ss);
	assert_int_equal(ss.values_written, (seq + 2) * NFILES);
	assert_int_equal(ss.values_pending, 0);
	for (int i = 0; i < NFILES; i += NFILES / 8 - 1) {
		assert_true(has_value(f, "node1", i, (int)seq, (double)seq + i));
		assert_true(has_value(f, host, i, 2, 2.0 + i));
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
