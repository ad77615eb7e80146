/*
 * cluster_stream_test.c — the metric stream between collectors
 * (collector/cluster.c): a batch a node accepts reaches every peer
 * subscribed to its stream, whatever the node's last registry round saw.
 *
 * Why: after the state database's restart a node's first round may see
 * it alone (the others' heartbeats not renewed yet). It used to skip
 * publishing then ("nobody to send to"), and the batches its agents
 * flushed right after the restart never reached the alarms' owners on
 * the other nodes, which took those minutes for missing data (the
 * cluster test's alarm -> insufficient_data -> alarm). Here node a's
 * lease is 60 ms and b's a minute: b heartbeats at its start only, so
 * a's rounds see a alone from 60 ms on, while b, whose one round saw a,
 * stays subscribed to a's stream. Real PostgreSQL, real nanomsg sockets
 * on loopback; waits are bounded polls, nothing asserts on time.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "vigie/batch.h"
#include "vigie/cluster.h"
#include "vigie/dispatch.h"

#include "../support/db_engines.h"
#include "../support/free_port.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int received;

static void on_peer_batch(void *ctx, const struct vg_batch *b)
{
	(void)ctx;
	pthread_mutex_lock(&lock);
	if (b->host && !strcmp(b->host, "h1"))
		received++;
	pthread_mutex_unlock(&lock);
}

static int got(void)
{
	int n;

	pthread_mutex_lock(&lock);
	n = received;
	pthread_mutex_unlock(&lock);
	return n;
}

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static struct vg_cluster *start(const char *url, const char *node, int port,
				int64_t lease_ms, void (*peer)(void *, const struct vg_batch *))
{
	struct vg_cluster_options o = {0};
	struct vg_cluster *c = NULL;
	char stream[64], err[512];

	snprintf(stream, sizeof(stream), "tcp://127.0.0.1:%d", port);
	o.url = url;
	o.node = node;
	o.stream = stream;
	o.api = "127.0.0.1:1";
	o.instance = node;
	o.lease_ms = lease_ms;
	o.peer_batch = peer;
	if (vg_cluster_start(&o, &c, err, sizeof(err)))
		fail_msg("cluster %s: %s", node, err);
	return c;
}

static void test_published_while_the_round_sees_it_alone(void **state)
{
	char url[700];
	uint32_t seed = 0;
	struct vg_cluster *a, *b;
	struct vg_cluster_stats st;
	struct vg_consumer pub;
	int pa, pb, i;
	(void)state;

	if (dbe_fresh(&DBE_PG, url, sizeof(url)) == 1)
		dbe_need(&DBE_PG);
	pa = vg_test_free_port(&seed, 1);
	pb = vg_test_free_port(&seed, 2);
	assert_true(pa > 0 && pb > 0 && pa != pb);
	a = start(url, "a", pa, 60, NULL);
	b = start(url, "b", pb, 60000, on_peer_batch); /* sees a: subscribes */
	pub = vg_cluster_consumer(a);
	/* a's rounds now see a alone (b's one heartbeat is older than 60 ms) */
	for (i = 0; i < 200; i++) {
		vg_cluster_get_stats(a, &st);
		if (st.rounds > 2 && st.live_nodes == 1)
			break;
		nap_ms(50);
	}
	assert_int_equal(st.live_nodes, 1);
	/* a batch accepted by a reaches b (its pipe may take a moment) */
	for (i = 0; i < 200 && !got(); i++) {
		struct vg_batch *bt = vg_batch_new("h1", 7, (uint64_t)i + 1, 1795000020000LL);
		assert_non_null(bt);
		assert_int_equal(pub.batch(pub.ctx, bt), 0);
		vg_batch_free(bt);
		nap_ms(50);
	}
	vg_cluster_get_stats(a, &st);
	assert_int_equal(st.live_nodes, 1); /* a was alone all along */
	assert_true(got() > 0);
	vg_cluster_stop(b);
	vg_cluster_stop(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_published_while_the_round_sees_it_alone),
	};
	int rc;

	if (dbe_group_setup(NULL))
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	dbe_group_teardown(NULL);
	return rc;
}
