/*
 * receiver_queue_wait_test.c — a batch's deadline counts from its arrival,
 * not from when the receiver takes it (docs/operations.md "One deadline
 * per batch"): a batch that waited in the socket's queue while the
 * previous group was handled has used that time of its agent's ack
 * timeout.
 *
 * The receiver with a real registry and store (files) and one more
 * consumer that takes SLOW_A_MS over host "slow-a"'s batches and
 * SLOW_B_MS over "slow-b"'s (a consumer held up for real: a billing
 * transaction waiting for a lock, a slow state database). slow-a's batch
 * is sent, then slow-b's from another agent while slow-a's is handled:
 * slow-b's waits SLOW_A_MS in the queue. Its agent's ack timeout
 * (ACK_TIMEOUT_MS, the REQ socket's receive timeout) runs from its send,
 * so slow-b's batch must be answered before it: with the deadline taken
 * from its arrival, it has less than an eighth of the ack timeout left
 * when its handling starts and is answered RETRY at once, nothing of it
 * stored or recorded; sent again, it is stored once. Taken from when the
 * receiver took it (the receiver before the fix), it goes to the
 * consumers and is answered SLOW_A_MS + SLOW_B_MS after its send, past
 * the ack timeout: the agent would fail over to another collector.
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

#define T0 1699999980000LL
#define STREAM 0x1122334455667788ull
#define NSERIES 4
#define ACK_TIMEOUT_MS 3000 /* the agents', as their REQ sockets wait */
#define SLOW_A_MS 2000      /* within slow-a's deadline (2250 ms) */
#define SLOW_B_MS 1500      /* with the wait before: past the ack timeout */

struct fixture {
	char dir[64];
	char url[64];
	struct vg_config cfg;
	struct vg_store *store;
	struct vg_registry *reg, *watch;
	struct vg_dispatch d;
	struct vg_receiver *rx;
	pthread_t thread;
	int slow_on; /* the slow consumer holds its hosts' batches */
	int taken_b; /* slow-b's batches it took */
};

/* The consumer held up: SLOW_A_MS or SLOW_B_MS per batch of its hosts */
static int slow_batch(void *ctx, const struct vg_batch *b)
{
	struct fixture *f = ctx;

	if (!__atomic_load_n(&f->slow_on, __ATOMIC_SEQ_CST))
		return 0;
	if (!strcmp(b->host, "slow-a"))
		usleep(SLOW_A_MS * 1000);
	if (!strcmp(b->host, "slow-b")) {
		__atomic_add_fetch(&f->taken_b, 1, __ATOMIC_SEQ_CST);
		usleep(SLOW_B_MS * 1000);
	}
	return 0;
}

static uint32_t port_seed;

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct vg_receiver_options o = {0};
	struct vg_consumer c = {.name = "slow", .batch = slow_batch};

	vg_log_init("receiver_queue_wait_test", VG_LOG_ERROR);
	*state = f;
	if (!f)
		return -1;
	c.ctx = f;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vigie-queue-wait-test.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	vg_config_defaults(&f->cfg);
	vg_config_parse_archives("1m:1d", f->cfg.archives, VG_MAX_ARCHIVES, &f->cfg.narchives);
	if (fxr_open_state(f->dir, &f->cfg, &f->store, &f->reg, &f->watch, &f->d) ||
	    vg_dispatch_add(&f->d, &c))
		return -1;
	fxr_options(&o, f->reg, &f->d, f->store, 1u << 20);
	o.ack_timeout_ms = ACK_TIMEOUT_MS;
	return fxr_start(&o, f->url, sizeof(f->url), &port_seed, &f->rx, &f->thread, NULL,
			 NULL);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	fxr_stop(f->rx, f->thread);
	vg_registry_close(f->watch);
	vg_registry_close(f->reg);
	vg_store_close(f->store);
	if (fxr_rm_dir(f->dir))
		return -1;
	free(f);
	return 0;
}

static int recorded(struct fixture *f, const char *host, uint64_t seq)
{
	int rc = vg_registry_seen(f->watch, host, STREAM, seq, T0 + (int64_t)seq * 60000);

	assert_true(rc == 0 || rc == 1);
	return rc;
}

/* One agent: its REQ socket sends host's batch seq; its ack's status, -1
 * when none came within ACK_TIMEOUT_MS (it would fail over) */
struct agent {
	const char *url, *host;
	uint64_t seq;
	int st;
	int64_t took_ms;
};

static void *agent_send(void *arg)
{
	struct agent *a = arg;
	int s = fxr_req_open(a->url, ACK_TIMEOUT_MS);
	size_t len;
	uint8_t *buf = fxr_gauges(a->host, STREAM, a->seq, T0, NSERIES, &len);
	int64_t t = vg_monotonic_ms();

	a->st = s >= 0 && buf ? fxr_send(s, buf, len, a->seq) : -2;
	a->took_ms = vg_monotonic_ms() - t;
	if (s >= 0)
		nn_close(s);
	return NULL;
}

static void test_queue_wait_counts(void **state)
{
	struct fixture *f = *state;
	struct agent a = {f->url, "slow-a", 1, -3, 0}, b = {f->url, "slow-b", 1, -3, 0};
	struct vg_receiver_stats cs;
	pthread_t ta, tb;

	__atomic_store_n(&f->slow_on, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_create(&ta, NULL, agent_send, &a), 0);
	usleep(300 * 1000); /* slow-a's batch is in the consumer */
	assert_int_equal(pthread_create(&tb, NULL, agent_send, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);

	assert_int_equal(a.st, VG_ACK_OK);
	/* -1 would be its agent's ack timeout: it fails over */
	assert_int_equal(b.st, VG_ACK_RETRY);
	assert_int_equal(__atomic_load_n(&f->taken_b, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(recorded(f, "slow-a", 1), 1);
	assert_int_equal(recorded(f, "slow-b", 1), 0);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.batch_deadline, 1);

	/* its agent sends it again: stored once */
	__atomic_store_n(&f->slow_on, 0, __ATOMIC_SEQ_CST);
	b.st = -3;
	agent_send(&b);
	assert_int_equal(b.st, VG_ACK_OK);
	assert_int_equal(recorded(f, "slow-b", 1), 1);
	b.st = -3;
	agent_send(&b);
	assert_int_equal(b.st, VG_ACK_DUPLICATE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_queue_wait_counts, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
