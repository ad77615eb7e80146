/*
 * sender_test.c — delivery from the spool to a scripted fake collector
 * (a nanomsg REP socket in a thread): in order, exactly what the acks
 * say (OK, DUPLICATE, RETRY, REJECTED, no ack -> resend), mismatched acks
 * ignored, a collector that comes up late, and drain with a deadline.
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

#include "../support/tmpdir.h"

enum act { A_OK, A_DUP, A_RETRY, A_REJECT, A_SILENT, A_WRONG_SEQ };

struct collector {
	char url[64];
	int sock;
	pthread_t th;
	volatile int stop;
	const enum act *script; /* action per received message; A_OK after */
	size_t nscript;
	pthread_mutex_t lock;
	uint64_t got[256];
	size_t ngot;
};

static char dir[64];
static int url_counter;

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

static void *collector_run(void *arg)
{
	struct collector *c = arg;

	while (!c->stop) {
		void *msg = NULL;
		int n = nn_recv(c->sock, &msg, NN_MSG, 0);
		uint64_t stream, seq;

		if (n < 0)
			continue; /* timeout slice */
		assert_int_equal(vg_wire_peek(msg, (size_t)n, &stream, &seq), 0);
		nn_freemsg(msg);
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
		case A_SILENT: continue;
		}
		uint8_t buf[VG_WIRE_ACK_LEN];
		size_t len = vg_wire_ack_encode(&ack, buf);
		nn_send(c->sock, buf, len, 0);
	}
	return NULL;
}

static void collector_url(struct collector *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->url, sizeof(c->url), "inproc://vigie-sender-test-%d-%d", (int)getpid(),
		 ++url_counter);
}

static void collector_start(struct collector *c, const enum act *script, size_t n)
{
	int to = 50;

	c->script = script;
	c->nscript = n;
	c->stop = 0;
	pthread_mutex_init(&c->lock, NULL);
	c->sock = nn_socket(AF_SP, NN_REP);
	assert_true(c->sock >= 0);
	nn_setsockopt(c->sock, NN_SOL_SOCKET, NN_RCVTIMEO, &to, sizeof(to));
	assert_true(nn_bind(c->sock, c->url) >= 0);
	assert_int_equal(pthread_create(&c->th, NULL, collector_run, c), 0);
}

static void collector_stop(struct collector *c)
{
	c->stop = 1;
	pthread_join(c->th, NULL);
	nn_close(c->sock);
	pthread_mutex_destroy(&c->lock);
}

static void spool_batches(struct vg_spool *sp, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t seq = vg_spool_next_seq(sp);
		struct vg_batch *b = vg_batch_new("h1", vg_spool_stream(sp), seq,
						  1795000000000 + (int64_t)seq * 1000);
		uint8_t *buf;
		size_t len;

		assert_non_null(vg_batch_resource(b, VG_RT_HOST, "h1", "h1", NULL, b->time_ms));
		assert_int_equal(vg_batch_sample(b, "host.load.1", VG_KIND_GAUGE, (double)seq), 0);
		assert_int_equal(vg_wire_encode(b, &buf, &len), 0);
		assert_int_equal(vg_spool_put(sp, seq, buf, len, NULL), 0);
		free(buf);
		vg_batch_free(b);
	}
}

/* Wait up to ms for the spool to empty. */
static int wait_empty(struct vg_spool *sp, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (vg_spool_count(sp) == 0)
			return 1;
		vg_sleep_ms(10);
	}
	return vg_spool_count(sp) == 0;
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
	struct vg_sender_opts o = {.ack_timeout_ms = 1000, .backoff_min_ms = 10,
				   .backoff_max_ms = 50};

	collector_url(&c);
	collector_start(&c, NULL, 0);
	assert_int_equal(vg_spool_open(dir, 100, &sp), 0);
	spool_batches(sp, 5);
	o.url = c.url;
	assert_int_equal(vg_sender_start(sp, &o, &s), 0);
	vg_sender_wake(s);
	assert_true(wait_empty(sp, 5000));
	/* more batches after the sender went idle: a wake-up sends them */
	spool_batches(sp, 2);
	vg_sender_wake(s);
	assert_true(wait_empty(sp, 5000));
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
	struct vg_sender_opts o = {.ack_timeout_ms = 300, .backoff_min_ms = 10,
				   .backoff_max_ms = 40};
	char path[256];

	collector_url(&c);
	collector_start(&c, script, sizeof(script) / sizeof(script[0]));
	assert_int_equal(vg_spool_open(dir, 100, &sp), 0);
	spool_batches(sp, 4);
	o.url = c.url;
	assert_int_equal(vg_sender_start(sp, &o, &s), 0);
	assert_true(wait_empty(sp, 10000));
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
	struct vg_sender_opts o = {.ack_timeout_ms = 200, .backoff_min_ms = 10,
				   .backoff_max_ms = 50};

	collector_url(&c);
	assert_int_equal(vg_spool_open(dir, 100, &sp), 0);
	spool_batches(sp, 3);
	o.url = c.url;
	assert_int_equal(vg_sender_start(sp, &o, &s), 0);
	vg_sleep_ms(500);
	vg_sender_get_stats(s, &st);
	assert_true(st.timeouts >= 1);
	assert_true(st.failing >= 1);
	assert_int_equal(vg_spool_count(sp), 3);
	/* the collector comes up: everything arrives, in order, once acked */
	collector_start(&c, NULL, 0);
	assert_true(wait_empty(sp, 5000));
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
	assert_int_equal(vg_sender_drain(s, 300), -ETIMEDOUT);
	int64_t took = vg_monotonic_ms() - t0;
	assert_true(took >= 250 && took < 1500);
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
	o.url = c.url;
	assert_int_equal(vg_sender_start(sp, &o, &s), 0);
	spool_batches(sp, 4);
	assert_int_equal(vg_sender_drain(s, 3000), 0);
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
	o.url = c.url;
	assert_int_equal(vg_sender_start(sp, &o, &s), 0);
	assert_true(wait_empty(sp, 5000));
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acks_drive_the_spool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_collector_late_and_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_delivers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_batch_is_set_aside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_url, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
