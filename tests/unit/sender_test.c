/*
 * sender_test.c — delivery from the spool to a scripted fake collector
 * (a nanomsg REP socket in a thread): in order, exactly what the acks
 * say (OK, DUPLICATE, RETRY, REJECTED, no ack -> resend), mismatched acks
 * ignored, a collector that comes up late, and drain with a deadline.
 * Several collectors: the rendezvous choice (spread, and removing one
 * collector moves only its own hosts), failover to the next collector on
 * an ack timeout and the return to the primary, every batch acknowledged
 * once, in order, and never delivered to the restarted primary behind
 * the agent's back.
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "agent/sender.h"
#include "agent/spool.h"
#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/wire.h"

#include "../support/fake_collector.h"
#include "../support/hang_guard.h"
#include "../support/tmpdir.h"

enum act { A_OK,
	   A_DUP,
	   A_RETRY,
	   A_REJECT,
	   A_SILENT,
	   A_WRONG_SEQ };

struct collector {
	struct fx_rep rep;      /* url, socket, thread */
	const enum act *script; /* action per received message; A_OK after */
	size_t nscript;
	pthread_mutex_t lock;
	uint64_t got[256];
	size_t ngot;
};

static char dir[64];

static int setup(void **state)
{
	strcpy(dir, "/tmp/vigie-sender-test-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	fx_rm_tree(dir);
	return 0;
}

static size_t collector_answer(void *ctx, const void *msg, size_t n, uint8_t *buf)
{
	struct collector *c = ctx;
	uint64_t stream, seq;

	assert_int_equal(vg_wire_peek(msg, n, &stream, &seq), 0);
	pthread_mutex_lock(&c->lock);
	size_t i = c->ngot;
	if (c->ngot < 256)
		c->got[c->ngot++] = seq;
	pthread_mutex_unlock(&c->lock);
	enum act a = i < c->nscript ? c->script[i] : A_OK;
	struct vg_ack ack = {VG_ACK_OK, stream, seq};
	switch (a) {
	case A_OK: break;
	case A_DUP: ack.status = VG_ACK_DUPLICATE; break;
	case A_RETRY: ack.status = VG_ACK_RETRY; break;
	case A_REJECT: ack.status = VG_ACK_REJECTED; break;
	case A_WRONG_SEQ: ack.seq = seq + 1000; break;
	case A_SILENT: return 0;
	}
	return vg_wire_ack_encode(&ack, buf);
}

static void collector_url(struct collector *c)
{
	memset(c, 0, sizeof(*c));
	fx_rep_url(&c->rep, "vigie-sender-test");
}

static void collector_start(struct collector *c, const enum act *script, size_t n)
{
	c->script = script;
	c->nscript = n;
	pthread_mutex_init(&c->lock, NULL);
	assert_int_equal(fx_rep_start(&c->rep, collector_answer, c), 0);
}

static void collector_stop(struct collector *c)
{
	fx_rep_stop(&c->rep);
	pthread_mutex_destroy(&c->lock);
}

static void spool_batches(struct vg_spool *sp, int n)
{
	assert_int_equal(fx_spool_batches(sp, "h1", "h1", n), 0);
}

/* Wait up to ms for the spool to empty. */
/* Wait until the spool is empty: 1, or 0 after 60 s (a hang guard, no
 * timing bound: the wait ends when the spool empties). */
static int wait_empty(struct vg_spool *sp)
{
	return fx_spool_wait(sp, 0, 60000);
}

/* Wait until the sender counted at least one ack timeout and is failing:
 * 1, or 0 after 60 s. */
static int wait_failing(struct vg_sender *s)
{
	struct vg_sender_stats st;

	for (int64_t t0 = vg_monotonic_ms(); vg_monotonic_ms() - t0 < 60000;
	     vg_sleep_ms(10)) {
		vg_sender_get_stats(s, &st);
		if (st.timeouts >= 1 && st.failing >= 1)
			return 1;
	}
	return 0;
}

static void expect_got(struct collector *c, const uint64_t *want, size_t n)
{
	pthread_mutex_lock(&c->lock);
	if (c->ngot != n) {
		for (size_t i = 0; i < c->ngot && i < 32; i++)
			print_message("got[%zu] = %llu\n", i, (unsigned long long)c->got[i]);
		fail_msg("collector got %zu messages, want %zu", c->ngot, n);
	}
	for (size_t i = 0; i < n; i++)
		assert_int_equal(c->got[i], want[i]);
	pthread_mutex_unlock(&c->lock);
}

static void test_in_order(void **state)
{
	struct collector c;
	struct vg_spool *sp;
	struct vg_sender *s;
	struct vg_sender_stats st;
	struct vg_sender_opts o = {.ack_timeout_ms = 1000, .backoff_min_ms = 10, .backoff_max_ms = 50};

	collector_url(&c);
	collector_start(&c, NULL, 0);
	assert_int_equal(vg_spool_open(dir, 100, &sp), 0);
	spool_batches(sp, 5);
	o.url = c.rep.url;
	assert_int_equal(vg_sender_start(sp, &o, &s), 0);
	vg_sender_wake(s);
	assert_true(wait_empty(sp));
	/* more batches after the sender went idle: a wake-up sends them */
	spool_batches(sp, 2);
	vg_sender_wake(s);
	assert_true(wait_empty(sp));
	vg_sender_get_stats(s, &st);
	assert_int_equal(st.acked, 7);
	assert_int_equal(st.last_seq, 7);
	assert_int_equal(st.failing, 0);
	vg_sender_free(s);
	collector_stop(&c);
	const uint64_t want[] = {1, 2, 3, 4, 5, 6, 7};
	expect_got(&c, want, 7);
	vg_spool_close(sp);
}

static void test_acks_drive_the_spool(void **state)
{
	static const enum act script[] = {A_RETRY, A_SILENT, A_WRONG_SEQ, A_OK,
					  A_DUP, A_REJECT, A_OK};
	struct collector c;
	struct vg_spool *sp;
	struct vg_sender *s;
	struct vg_sender_stats st;
	struct vg_sender_opts o = {.ack_timeout_ms = 300, .backoff_min_ms = 10, .backoff_max_ms = 40};
	char path[256];

	collector_url(&c);
	collector_start(&c, script, sizeof(script) / sizeof(script[0]));
	assert_int_equal(vg_spool_open(dir, 100, &sp), 0);
	spool_batches(sp, 4);
	o.url = c.rep.url;
	assert_int_equal(vg_sender_start(sp, &o, &s), 0);
	assert_true(wait_empty(sp));
	vg_sender_get_stats(s, &st);
	vg_sender_free(s);
	collector_stop(&c);
	/* seq 1: RETRY, no ack, wrong ack (-> timeout), OK; 2: DUP;
	 * 3: REJECTED; 4: OK. Never 2 before 1 is settled. */
	const uint64_t want[] = {1, 1, 1, 1, 2, 3, 4};
	expect_got(&c, want, 7);
	assert_int_equal(st.retries, 1);
	assert_int_equal(st.timeouts, 2);
	assert_true(st.bad_acks >= 1);
	assert_int_equal(st.acked, 2);
	assert_int_equal(st.duplicates, 1);
	assert_int_equal(st.rejected, 1);
	assert_int_equal(st.sent, 7);
	snprintf(path, sizeof(path), "%s/rejected/00000000000000000003.vgb", dir);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/00000000000000000004.vgb", dir);
	assert_int_not_equal(access(path, F_OK), 0);
	vg_spool_close(sp);
}

static void test_collector_late_and_drain(void **state)
{
	struct collector c;
	struct vg_spool *sp;
	struct vg_sender *s;
	struct vg_sender_stats st;
	struct vg_sender_opts o = {.ack_timeout_ms = 200, .backoff_min_ms = 10, .backoff_max_ms = 50};

	collector_url(&c);
	assert_int_equal(vg_spool_open(dir, 100, &sp), 0);
	spool_batches(sp, 3);
	o.url = c.rep.url;
	assert_int_equal(vg_sender_start(sp, &o, &s), 0);
	assert_true(wait_failing(s));
	assert_int_equal(vg_spool_count(sp), 3);
	/* the collector comes up: everything arrives, in order, once acked */
	collector_start(&c, NULL, 0);
	assert_true(wait_empty(sp));
	vg_sender_get_stats(s, &st);
	assert_int_equal(st.failing, 0);
	assert_int_equal(st.acked, 3);
	collector_stop(&c);
	pthread_mutex_lock(&c.lock);
	assert_true(c.ngot >= 3);
	/* resends of seq 1 may precede, but the tail is 1, 2, 3 in order
	 * and nothing after 3 */
	assert_int_equal(c.got[c.ngot - 1], 3);
	assert_int_equal(c.got[c.ngot - 2], 2);
	assert_int_equal(c.got[c.ngot - 3], 1);
	pthread_mutex_unlock(&c.lock);

	/* collector gone again: drain gives up at its deadline and keeps
	 * the batches */
	spool_batches(sp, 2);
	int64_t t0 = vg_monotonic_ms();
	hang_guard_arm("vg_sender_drain with a 300 ms deadline");
	assert_int_equal(vg_sender_drain(s, 300, NULL, NULL), -ETIMEDOUT);
	hang_guard_disarm();
	/* it tried until its deadline (a lower bound cannot flake: a busy
	 * machine only makes the drain longer), and returned at it */
	assert_true(vg_monotonic_ms() - t0 >= 300);
	assert_int_equal(vg_spool_count(sp), 2);
	vg_sender_free(s);
	vg_spool_close(sp);
}

static void test_drain_delivers(void **state)
{
	struct collector c;
	struct vg_spool *sp;
	struct vg_sender *s;
	struct vg_sender_opts o = {.ack_timeout_ms = 1000};

	collector_url(&c);
	collector_start(&c, NULL, 0);
	assert_int_equal(vg_spool_open(dir, 100, &sp), 0);
	o.url = c.rep.url;
	assert_int_equal(vg_sender_start(sp, &o, &s), 0);
	spool_batches(sp, 4);
	assert_int_equal(vg_sender_drain(s, 3000, NULL, NULL), 0);
	assert_int_equal(vg_spool_count(sp), 0);
	vg_sender_free(s);
	collector_stop(&c);
	const uint64_t want[] = {1, 2, 3, 4};
	expect_got(&c, want, 4);
	vg_spool_close(sp);
}

static void test_not_a_batch_is_set_aside(void **state)
{
	struct collector c;
	struct vg_spool *sp;
	struct vg_sender *s;
	struct vg_sender_stats st;
	struct vg_sender_opts o = {.ack_timeout_ms = 1000};

	collector_url(&c);
	collector_start(&c, NULL, 0);
	assert_int_equal(vg_spool_open(dir, 100, &sp), 0);
	assert_int_equal(vg_spool_put(sp, 1, "not a batch", 11, NULL), 0);
	spool_batches(sp, 1);
	o.url = c.rep.url;
	assert_int_equal(vg_sender_start(sp, &o, &s), 0);
	assert_true(wait_empty(sp));
	vg_sender_get_stats(s, &st);
	assert_int_equal(st.rejected, 1);
	assert_int_equal(st.acked, 1);
	vg_sender_free(s);
	collector_stop(&c);
	const uint64_t want[] = {2};
	expect_got(&c, want, 1);
	vg_spool_close(sp);
}

static void test_bad_url(void **state)
{
	struct vg_spool *sp;
	struct vg_sender *s = NULL;
	struct vg_sender_opts o = {.url = "nonsense://x"};

	assert_int_equal(vg_spool_open(dir, 10, &sp), 0);
	assert_int_equal(vg_sender_start(sp, &o, &s), -EINVAL);
	o.url = "";
	assert_int_equal(vg_sender_start(sp, &o, &s), -EINVAL);
	vg_sender_free(NULL);
	vg_spool_close(sp);
}

/* ---- several collectors ---- */

static const char *const three[] = {"tcp://c1:7470", "tcp://c2:7470", "tcp://c3:7470"};
#define NHOSTS 10000

static void host_name(char *buf, size_t len, int i)
{
	snprintf(buf, len, "compute-%05d.dc1.example.net", i);
}

static void test_rendezvous_spread(void **state)
{
	size_t per[3] = {0, 0, 0}, order[3], rorder[3];
	const char *const reversed[] = {three[2], three[1], three[0]};
	char host[64];

	for (int i = 0; i < NHOSTS; i++) {
		host_name(host, sizeof(host), i);
		vg_sender_rendezvous(host, three, 3, order);
		/* a permutation */
		assert_int_equal(order[0] + order[1] + order[2], 3);
		assert_true(order[0] != order[1] && order[1] != order[2] && order[0] != order[2]);
		per[order[0]]++;
		/* the order depends on the addresses, not on how they are listed */
		vg_sender_rendezvous(host, reversed, 3, rorder);
		for (int k = 0; k < 3; k++)
			assert_string_equal(reversed[rorder[k]], three[order[k]]);
	}
	print_message("primaries over 3 collectors: %zu %zu %zu\n", per[0], per[1], per[2]);
	/* within 5 % of a third each (one standard deviation is 1.4 %) */
	for (int k = 0; k < 3; k++)
		assert_true(per[k] >= 3167 && per[k] <= 3500);
	/* the same host always gets the same order */
	size_t a[3], b[3];
	vg_sender_rendezvous("h1", three, 3, a);
	vg_sender_rendezvous("h1", three, 3, b);
	assert_memory_equal(a, b, sizeof(a));
}

static void test_rendezvous_removal_moves_only_its_hosts(void **state)
{
	const char *const two[] = {three[0], three[2]}; /* c2 removed */
	size_t order3[3], order2[2], moved = 0, had = 0;
	char host[64];

	for (int i = 0; i < NHOSTS; i++) {
		host_name(host, sizeof(host), i);
		vg_sender_rendezvous(host, three, 3, order3);
		vg_sender_rendezvous(host, two, 2, order2);
		const char *before = three[order3[0]], *after = two[order2[0]];
		if (before == three[1]) {
			had++;
			/* its hosts go to their own second choice */
			assert_string_equal(after, three[order3[1]]);
		}
		if (strcmp(before, after))
			moved++;
		else
			assert_true(before != three[1]);
	}
	print_message("removing c2 moved %zu hosts (it had %zu)\n", moved, had);
	assert_int_equal(moved, had);
	assert_true(had > 0);
}

/* Spool one batch at a time until pred(s) holds (at most n tries). */
static int spool_until(struct vg_spool *sp, struct vg_sender *s,
		       uint32_t want_current, int n)
{
	struct vg_sender_stats st;

	for (int i = 0; i < n; i++) {
		spool_batches(sp, 1);
		vg_sender_wake(s);
		if (!wait_empty(sp))
			return 0;
		vg_sender_get_stats(s, &st);
		if (st.current == want_current)
			return 1;
		vg_sleep_ms(50);
	}
	return 0;
}

static void test_failover_and_return(void **state)
{
	struct collector c[3];
	const char *urls[3];
	size_t order[3];
	struct vg_spool *sp;
	struct vg_sender *s;
	struct vg_sender_stats st;
	struct vg_sender_opts o = {.ack_timeout_ms = 300, .backoff_min_ms = 10, .backoff_max_ms = 50, .probe_interval_ms = 100, .host = "h1"};

	for (int i = 0; i < 3; i++) {
		collector_url(&c[i]);
		collector_start(&c[i], NULL, 0);
		urls[i] = c[i].rep.url;
	}
	vg_sender_rendezvous("h1", urls, 3, order);
	struct collector *pri = &c[order[0]], *sec = &c[order[1]], *third = &c[order[2]];
	o.urls = urls;
	o.nurls = 3;
	assert_int_equal(vg_spool_open(dir, 100, &sp), 0);
	spool_batches(sp, 3);
	assert_int_equal(vg_sender_start(sp, &o, &s), 0);
	assert_true(wait_empty(sp));
	vg_sender_get_stats(s, &st);
	assert_int_equal(st.primary, order[0]);
	assert_int_equal(st.current, order[0]);
	assert_int_equal(st.failovers, 0);
	const uint64_t first[] = {1, 2, 3};
	expect_got(pri, first, 3);

	/* the primary dies: the next batches go to the secondary */
	collector_stop(pri);
	spool_batches(sp, 3);
	vg_sender_wake(s);
	assert_true(wait_empty(sp));
	vg_sender_get_stats(s, &st);
	assert_int_equal(st.current, order[1]);
	assert_int_equal(st.failovers, 1);
	assert_true(st.timeouts >= 1);
	const uint64_t second[] = {4, 5, 6};
	expect_got(sec, second, 3);

	/* it comes back: a probe finds it and it is current again */
	collector_start(pri, NULL, 0);
	assert_true(spool_until(sp, s, (uint32_t)order[0], 50));
	spool_batches(sp, 2);
	vg_sender_wake(s);
	assert_true(wait_empty(sp));
	vg_sender_get_stats(s, &st);
	assert_int_equal(st.current, order[0]);
	assert_int_equal(st.failbacks, 1);
	assert_int_equal(st.failovers, 1);
	uint64_t last = st.last_seq;
	vg_sender_free(s);
	for (int i = 0; i < 3; i++)
		collector_stop(&c[i]);

	/* Every seq exactly once over the three, in order on each: seq 4,
	 * abandoned on the dead primary's socket, never reached it later. */
	int seen[64] = {0};
	assert_true(last < 64);
	for (int i = 0; i < 3; i++) {
		for (size_t k = 0; k < c[i].ngot; k++) {
			if (k)
				assert_true(c[i].got[k] > c[i].got[k - 1]);
			assert_true(c[i].got[k] >= 1 && c[i].got[k] <= last);
			seen[c[i].got[k]]++;
		}
	}
	for (uint64_t q = 1; q <= last; q++) {
		if (seen[q] != 1)
			fail_msg("seq %llu delivered %d times", (unsigned long long)q, seen[q]);
	}
	assert_int_equal(third->ngot, 0);
	vg_spool_close(sp);
}

/* Eight batches of HOST, one at a time, each past the probe interval,
 * through two collectors: the primary (by rendezvous) answers by SCRIPT
 * (256 acts), the secondary stores. Checks that the secondary stored all
 * eight, in order; *st gets the sender's stats, *secondary the
 * secondary's index, *pri_got how many the primary saw. */
static void eight_past_a_primary(const char *host, const enum act *script,
				 struct vg_sender_stats *st, size_t *secondary, size_t *pri_got)
{
	struct collector c[2];
	const char *urls[2];
	size_t order[2];
	struct vg_spool *sp;
	struct vg_sender *s;
	struct vg_sender_opts o = {.ack_timeout_ms = 200, .backoff_min_ms = 10, .backoff_max_ms = 50, .probe_interval_ms = 50, .host = host};

	for (int i = 0; i < 2; i++)
		collector_url(&c[i]);
	urls[0] = c[0].rep.url;
	urls[1] = c[1].rep.url;
	vg_sender_rendezvous(host, urls, 2, order);
	struct collector *pri = &c[order[0]], *sec = &c[order[1]];
	collector_start(pri, script, 256);
	collector_start(sec, NULL, 0);
	o.urls = urls;
	o.nurls = 2;
	assert_int_equal(vg_spool_open(dir, 100, &sp), 0);
	assert_int_equal(vg_sender_start(sp, &o, &s), 0);
	for (int i = 0; i < 8; i++) {
		spool_batches(sp, 1);
		vg_sender_wake(s);
		assert_true(wait_empty(sp));
		vg_sleep_ms(60); /* past the probe interval: the next one probes */
	}
	vg_sender_get_stats(s, st);
	vg_sender_free(s);
	collector_stop(pri);
	collector_stop(sec);
	*secondary = order[1];
	*pri_got = pri->ngot;
	const uint64_t want[] = {1, 2, 3, 4, 5, 6, 7, 8};
	expect_got(sec, want, 8);
	vg_spool_close(sp);
}

/* A primary that accepts connections but never answers: each probe costs
 * one ack timeout and the batch goes back to the secondary; the sender
 * stays there, in order, and never counts a return. */
static void test_silent_primary_keeps_the_secondary(void **state)
{
	static enum act silent[256];
	struct vg_sender_stats st;
	size_t sec, pri_got;

	for (size_t i = 0; i < 256; i++)
		silent[i] = A_SILENT;
	eight_past_a_primary("h2", silent, &st, &sec, &pri_got);
	assert_int_equal(st.current, sec);
	assert_int_equal(st.failovers, 1); /* the first batch, from the primary */
	assert_int_equal(st.failbacks, 0);
	assert_int_equal(st.acked, 8);
	/* the first batch, then probes: the primary saw some, answered none */
	assert_true(pri_got >= 2);
	assert_int_equal(st.timeouts, pri_got);
}

/* A primary that answers RETRY to the probes (it cannot store now, e.g.
 * a storage daemon of its host's new series is down): the host stays on
 * the secondary, which stores, in order, and no return is counted. */
static void test_retrying_primary_keeps_the_secondary(void **state)
{
	static enum act script[256];
	struct vg_sender_stats st;
	size_t sec, pri_got;

	script[0] = A_SILENT; /* the first batch: a failover */
	for (size_t i = 1; i < 256; i++)
		script[i] = A_RETRY;
	eight_past_a_primary("h3", script, &st, &sec, &pri_got);
	assert_int_equal(st.current, sec);
	assert_int_equal(st.failovers, 1);
	assert_int_equal(st.failbacks, 0);
	assert_int_equal(st.acked, 8);
	assert_true(pri_got >= 2); /* the first batch and probes */
}

static void test_too_many_collectors(void **state)
{
	const char *urls[VG_SENDER_MAX_COLLECTORS + 1];
	struct vg_spool *sp;
	struct vg_sender *s = NULL;
	struct vg_sender_opts o = {.urls = urls, .nurls = VG_SENDER_MAX_COLLECTORS + 1};

	for (size_t i = 0; i <= VG_SENDER_MAX_COLLECTORS; i++)
		urls[i] = "tcp://127.0.0.1:9";
	assert_int_equal(vg_spool_open(dir, 10, &sp), 0);
	assert_int_equal(vg_sender_start(sp, &o, &s), -EINVAL);
	o.nurls = 2;
	urls[1] = "";
	assert_int_equal(vg_sender_start(sp, &o, &s), -EINVAL);
	vg_spool_close(sp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acks_drive_the_spool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_collector_late_and_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_delivers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_batch_is_set_aside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_url, setup, teardown),
		cmocka_unit_test(test_rendezvous_spread),
		cmocka_unit_test(test_rendezvous_removal_moves_only_its_hosts),
		cmocka_unit_test_setup_teardown(test_failover_and_return, setup, teardown),
		cmocka_unit_test_setup_teardown(test_silent_primary_keeps_the_secondary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retrying_primary_keeps_the_secondary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many_collectors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
