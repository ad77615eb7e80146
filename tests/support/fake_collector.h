/*
 * fake_collector.h — what the agent sender's tests share
 * (tests/unit/sender_test.c, sign_sender_test.c): a fake collector, a
 * nanomsg REP socket on an inproc URL served by a thread that hands each
 * message to the test's answer function and sends back what it returns;
 * batches put in a spool the way the agent's sources do; and waiting for
 * the spool to reach a count.
 *
 * Design: header-only, every function static inline, like api_fixture.h.
 * No cmocka here: functions return an error and the test asserts. What a
 * fake answers, and what it records of each message, is the test's own
 * (its answer function and the struct around struct fx_rep), so every
 * check stays in the test.
 *
 * Invariants: fx_rep_start has its undo (fx_rep_stop, which joins the
 * thread); the thread wakes every 50 ms (its receive timeout) to see the
 * stop flag; nothing here sleeps longer than 10 ms at a time.
 */
#ifndef VIGIE_TEST_FAKE_COLLECTOR_H
#define VIGIE_TEST_FAKE_COLLECTOR_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "agent/spool.h"
#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/wire.h"

/* The longest answer a fake sends: a signed ack. */
#define FX_REP_ACK_MAX (VG_WIRE_ACK_LEN + VG_WIRE_MAC_LEN)

/* The answer to one message msg[0..len): its length in ack (at most
 * FX_REP_ACK_MAX), or 0 to send nothing (a collector that stays silent).
 * Called on the fake's thread; msg is freed after it returns. */
typedef size_t (*fx_rep_answer)(void *ctx, const void *msg, size_t len, uint8_t *ack);

struct fx_rep {
	char url[64]; /* inproc://..., set by fx_rep_url */
	int sock;
	pthread_t th;
	volatile int stop;
	fx_rep_answer answer;
	void *ctx;
};

/* Clear r and give it a URL of its own: inproc://<name>-<pid>-<n>, n
 * counting the calls of this test program. The URL is known before the
 * fake starts (a sender may be pointed at a collector not up yet). */
static inline void fx_rep_url(struct fx_rep *r, const char *name)
{
	static int counter;

	memset(r, 0, sizeof(*r));
	snprintf(r->url, sizeof(r->url), "inproc://%s-%d-%d", name, (int)getpid(), ++counter);
}

static inline void *fx_rep_run(void *arg)
{
	struct fx_rep *r = arg;

	while (!r->stop) {
		void *msg = NULL;
		uint8_t ack[FX_REP_ACK_MAX];
		int n = nn_recv(r->sock, &msg, NN_MSG, 0);
		size_t alen;

		if (n < 0)
			continue; /* timeout slice */
		alen = r->answer(r->ctx, msg, (size_t)n, ack);
		nn_freemsg(msg);
		if (alen)
			nn_send(r->sock, ack, alen, 0);
	}
	return NULL;
}

/* Bind r->url (fx_rep_url) and serve it with answer(ctx, ...) on a thread
 * of its own. Again after fx_rep_stop: the same URL comes back. 0 or -1. */
static inline int fx_rep_start(struct fx_rep *r, fx_rep_answer answer, void *ctx)
{
	int to = 50;

	r->answer = answer;
	r->ctx = ctx;
	r->stop = 0;
	r->sock = nn_socket(AF_SP, NN_REP);
	if (r->sock < 0)
		return -1;
	nn_setsockopt(r->sock, NN_SOL_SOCKET, NN_RCVTIMEO, &to, sizeof(to));
	if (nn_bind(r->sock, r->url) < 0 || pthread_create(&r->th, NULL, fx_rep_run, r)) {
		nn_close(r->sock);
		return -1;
	}
	return 0;
}

/* Stop the thread (within its 50 ms slice) and close the socket. */
static inline void fx_rep_stop(struct fx_rep *r)
{
	r->stop = 1;
	pthread_join(r->th, NULL);
	nn_close(r->sock);
}

/* Put n batches in sp as an agent's host would: the spool's next
 * sequence numbers, one host resource (host, domain) with one gauge
 * host.load.1 equal to the sequence number, a second of sample time
 * apart. 0 or -1. */
static inline int fx_spool_batches(struct vg_spool *sp, const char *host, const char *domain,
				   int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t seq = vg_spool_next_seq(sp);
		struct vg_batch *b = vg_batch_new(host, vg_spool_stream(sp), seq,
						  1795000000000 + (int64_t)seq * 1000);
		uint8_t *buf = NULL;
		size_t len;
		int rc = !b || !vg_batch_resource(b, VG_RT_HOST, host, domain, NULL, b->time_ms) ||
			 vg_batch_sample(b, "host.load.1", VG_KIND_GAUGE, (double)seq) ||
			 vg_wire_encode(b, &buf, &len) || vg_spool_put(sp, seq, buf, len, NULL);

		free(buf);
		vg_batch_free(b);
		if (rc)
			return -1;
	}
	return 0;
}

/* Wait up to ms for sp to hold want batches (polled every 10 ms). 1 if
 * it does, 0 if it still does not at the end. */
static inline int fx_spool_wait(struct vg_spool *sp, size_t want, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (vg_spool_count(sp) == want)
			return 1;
		vg_sleep_ms(10);
	}
	return vg_spool_count(sp) == want;
}

#endif
