/*
 * receiver_round_trip_test.c — the write-through does not start a round
 * trip that the batch's deadline cannot hold (docs/operations.md "One
 * deadline per batch"): cut under way, its answer would be left unread
 * and its connection closed, and the daemon put in a back-off that every
 * later batch pays (their values left to the storage thread at once).
 *
 * A real rrdcached behind a proxy of the test's (a unix socket) that
 * holds each request DELAY_MS before passing it on, so every round trip
 * of the write-through takes about that long: a daemon slow for real,
 * answering each within its own bound. A host's batch of NFILES series
 * is NFILES / 256 round trips, more than its deadline (three quarters of
 * ACK_TIMEOUT_MS) holds. Each of its batches is answered OK before the
 * agent's ack timeout, its write-through cut at the deadline (the values
 * not sent held for the storage thread), and the daemon's connection
 * never closed (its errors count does not move): the round trip that
 * would straddle the deadline is not started. Before the fix (the round
 * trip started with whatever time was left) it was cut under way: a
 * connection closed per batch, the case fails at the first.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
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
#define ACK_TIMEOUT_MS 2000 /* the agent's: a deadline of 1500 ms */
#define DELAY_MS 250        /* each request held this long: 8 take 2 s */

struct fixture {
	char dir[64];
	char url[64];
	char paddr[160]; /* "unix:<proxy socket>" */
	struct sockaddr_un psun, dsun;
	int lfd;
	pthread_t proxy;
	int delay_ms, stop; /* __atomic */
	struct vg_config cfg;
	struct hrd_daemon daemon;
	struct vg_store *store;
	struct vg_registry *reg;
	struct vg_dispatch d;
	struct vg_receiver *rx;
	pthread_t thread;
	int req;
};

/* One connection through the proxy: the client's bytes go to the daemon,
 * held delay_ms when they start a request (the first since the daemon
 * last answered), the daemon's come back at once. */
struct pconn {
	struct fixture *f;
	int cfd, dfd;
};

static void *pconn_run(void *arg)
{
	struct pconn *p = arg;
	char buf[65536];
	int answered = 1;

	while (!__atomic_load_n(&p->f->stop, __ATOMIC_SEQ_CST)) {
		struct pollfd pfd[2] = {{.fd = p->cfd, .events = POLLIN},
					{.fd = p->dfd, .events = POLLIN}};
		ssize_t n;
		if (poll(pfd, 2, 100) <= 0)
			continue;
		if (pfd[0].revents) {
			if (answered) {
				int ms = __atomic_load_n(&p->f->delay_ms, __ATOMIC_SEQ_CST);
				if (ms)
					usleep((useconds_t)ms * 1000);
				answered = 0;
			}
			if ((n = read(p->cfd, buf, sizeof(buf))) <= 0 ||
			    write(p->dfd, buf, (size_t)n) != n)
				break;
		}
		if (pfd[1].revents) {
			if ((n = read(p->dfd, buf, sizeof(buf))) <= 0 ||
			    write(p->cfd, buf, (size_t)n) != n)
				break;
			answered = 1;
		}
	}
	close(p->cfd);
	close(p->dfd);
	free(p);
	return NULL;
}

static void *proxy_run(void *arg)
{
	struct fixture *f = arg;

	while (!__atomic_load_n(&f->stop, __ATOMIC_SEQ_CST)) {
		struct pollfd pfd = {.fd = f->lfd, .events = POLLIN};
		struct pconn *p;
		pthread_t t;
		int cfd;
		if (poll(&pfd, 1, 100) <= 0 || (cfd = accept(f->lfd, NULL, NULL)) < 0)
			continue;
		p = calloc(1, sizeof(*p));
		p->f = f;
		p->cfd = cfd;
		p->dfd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(p->dfd, (struct sockaddr *)&f->dsun, sizeof(f->dsun)) ||
		    pthread_create(&t, NULL, pconn_run, p)) {
			close(p->cfd);
			close(p->dfd);
			free(p);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

static uint32_t port_seed;

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct vg_receiver_options o = {0};
	static const char *const extra[] = {"-O", "-R", NULL};
	int rc;

	vg_log_init("receiver_round_trip_test", VG_LOG_ERROR);
	*state = f;
	if (!f)
		return -1;
	f->req = f->lfd = -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vigie-round-trip-test.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	if ((rc = hrd_start(&f->daemon, NULL, extra))) {
		fprintf(stderr, "rrdcached: %s\n", strerror(-rc));
		return -1;
	}
	f->dsun.sun_family = f->psun.sun_family = AF_UNIX;
	if (strlen(f->daemon.sock) >= sizeof(f->dsun.sun_path))
		return -1;
	memcpy(f->dsun.sun_path, f->daemon.sock, strlen(f->daemon.sock) + 1);
	snprintf(f->psun.sun_path, sizeof(f->psun.sun_path), "%s/proxy.sock", f->dir);
	snprintf(f->paddr, sizeof(f->paddr), "unix:%s", f->psun.sun_path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&f->psun, sizeof(f->psun)) ||
	    listen(f->lfd, 16) || pthread_create(&f->proxy, NULL, proxy_run, f))
		return -1;
	vg_config_defaults(&f->cfg);
	/* each wait on the daemon bounded by a quarter of this, 10 s: every
	 * round trip is answered within its own bound; only the batch's
	 * deadline (from the receiver's ACK_TIMEOUT_MS) cuts the batch */
	f->cfg.agent_ack_timeout_ms = 40000;
	vg_config_parse_archives("1m:1d", f->cfg.archives, VG_MAX_ARCHIVES, &f->cfg.narchives);
	fxr_write_through(&f->cfg, f->paddr, f->daemon.base);
	if (fxr_open_state(f->dir, &f->cfg, &f->store, &f->reg, NULL, &f->d))
		return -1;
	fxr_options(&o, f->reg, &f->d, f->store, 1u << 22);
	o.ack_timeout_ms = ACK_TIMEOUT_MS;
	if (fxr_start(&o, f->url, sizeof(f->url), &port_seed, &f->rx, &f->thread, NULL,
		      NULL))
		return -1;
	f->req = fxr_req_open(f->url, 120000);
	return f->req < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->req >= 0)
		nn_close(f->req);
	fxr_stop(f->rx, f->thread);
	vg_registry_close(f->reg);
	__atomic_store_n(&f->delay_ms, 0, __ATOMIC_SEQ_CST);
	vg_store_close(f->store);
	__atomic_store_n(&f->stop, 1, __ATOMIC_SEQ_CST);
	if (f->lfd >= 0) {
		pthread_join(f->proxy, NULL);
		close(f->lfd);
	}
	hrd_cleanup(&f->daemon);
	if (fxr_rm_dir(f->dir))
		return -1;
	free(f);
	return 0;
}

static int send_on(int s, uint64_t seq)
{
	size_t len;
	uint8_t *buf = fxr_gauges("node1", STREAM, seq, T0, NFILES, &len);
	int st;

	assert_non_null(buf);
	st = fxr_send(s, buf, len, seq);
	assert_int_not_equal(st, -2);
	return st;
}

static int send_until_taken(struct fixture *f, uint64_t seq)
{
	int st = send_on(f->req, seq);

	for (int i = 0; i < 200 && st == VG_ACK_RETRY; i++) {
		usleep(50 * 1000);
		st = send_on(f->req, seq);
	}
	return st;
}

/* the daemon's connections closed by a failure (a wait cut under way) */
static uint64_t daemon_errors(struct fixture *f)
{
	struct vg_store_daemon d[1];

	assert_int_equal(vg_store_daemons(f->store, d, 1), 1);
	return d[0].errors;
}

/* the write-through round trips not started for the daemon (the time
 * left could not hold its round-trip estimate): /metrics'
 * vigie_storage_daemon_round_trips_skipped_total */
static uint64_t daemon_skips(struct fixture *f)
{
	struct vg_store_daemon d[1];

	assert_int_equal(vg_store_daemons(f->store, d, 1), 1);
	return d[0].round_trips_skipped;
}

/* vg_store_flush until it passes (the storage thread may be writing) */
static int flush_all(struct fixture *f)
{
	int rc = vg_store_flush(f->store);

	for (int i = 0; i < 100 && rc; i++) {
		usleep(100 * 1000);
		rc = vg_store_flush(f->store);
	}
	return rc;
}

static void test_round_trip_not_started(void **state)
{
	struct fixture *f = *state;
	struct vg_receiver_stats cs;
	struct vg_store_stats ss;
	uint64_t seq = 1, err0, cut0, skip0;

	/* the files, the daemon answering at once; then batches until one
	 * is written through whole before its ack (the first ones may reach
	 * their deadline on a loaded machine, a connection closed then
	 * putting the daemon in a back-off) */
	assert_int_equal(send_until_taken(f, seq), VG_ACK_OK);
	for (int i = 0; i < 30; i++) {
		assert_int_equal(flush_all(f), 0);
		usleep(200 * 1000);
		assert_int_equal(send_until_taken(f, ++seq), VG_ACK_OK);
		vg_store_get_stats(f->store, &ss);
		if (!ss.values_pending)
			break;
	}
	assert_int_equal(ss.values_pending, 0);
	err0 = daemon_errors(f);
	vg_receiver_stats_fn(f->rx, &cs);
	cut0 = cs.batch_deadline;
	skip0 = daemon_skips(f);

	/* the daemon slow: each round trip DELAY_MS */
	__atomic_store_n(&f->delay_ms, DELAY_MS, __ATOMIC_SEQ_CST);
	nn_close(f->req);
	f->req = fxr_req_open(f->url, ACK_TIMEOUT_MS);
	assert_true(f->req >= 0);
	for (int i = 0; i < 3; i++) {
		/* the storage thread's writes of the last batch's rest done */
		for (int k = 0; k < 200; k++) {
			vg_store_get_stats(f->store, &ss);
			if (!ss.values_pending)
				break;
			usleep(50 * 1000);
		}
		assert_int_equal(ss.values_pending, 0);
		/* -1 would be the agent's ack timeout: it fails over */
		assert_int_equal(send_on(f->req, ++seq), VG_ACK_OK);
		vg_receiver_stats_fn(f->rx, &cs);
		assert_true(cs.batch_deadline > cut0); /* the write-through cut */
		cut0 = cs.batch_deadline;
		/* no round trip cut under way: no connection closed */
		assert_int_equal(daemon_errors(f), err0);
		/* the round trip it did not start, counted */
		assert_true(daemon_skips(f) > skip0);
		skip0 = daemon_skips(f);
	}

	/* every value of every batch written once */
	__atomic_store_n(&f->delay_ms, 0, __ATOMIC_SEQ_CST);
	assert_int_equal(flush_all(f), 0);
	vg_store_get_stats(f->store, &ss);
	assert_int_equal(ss.values_written, seq * NFILES);
	assert_int_equal(ss.values_pending, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip_not_started, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
