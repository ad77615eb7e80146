/*
 * receiver_fixture.h — what the receiver's tests (tests/unit/receiver_test.c,
 * receiver_proof_bound_test.c, receiver_deadline_test.c) set up alike:
 * the store written through to a real rrdcached, the store and the
 * registry as the dispatch's first consumers (collector/compose.c's
 * order), the receiver on a free
 * loopback port run on a thread of its own, an agent's REQ socket, and
 * the batches of gauges they send on it. Header-only; the set-up
 * functions return 0 or -1 (the error printed), so that a cmocka setup
 * can return it.
 */
#ifndef VIGIE_TEST_RECEIVER_FIXTURE_H
#define VIGIE_TEST_RECEIVER_FIXTURE_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/dispatch.h"
#include "vigie/receiver.h"
#include "vigie/registry.h"
#include "vigie/store.h"
#include "vigie/wire.h"

#include "tests/support/free_port.h"

/* CFG's [storage]: the rrdcached backend on the daemon at UNIX_ADDR
 * (whose base dir is BASE), every batch written through. */
static inline void fxr_write_through(struct vg_config *cfg, const char *unix_addr,
				     const char *base)
{
	snprintf(cfg->storage_backend, sizeof(cfg->storage_backend), "rrdcached");
	snprintf(cfg->storage_daemons, sizeof(cfg->storage_daemons), "%.1000s", unix_addr);
	snprintf(cfg->storage_daemon_base, sizeof(cfg->storage_daemon_base), "%.500s", base);
	snprintf(cfg->storage_write_through, sizeof(cfg->storage_write_through), "yes");
}

/* D initialised with STORE's consumer, then REG's, as collector/compose.c
 * registers them (a test adds its own after them). */
static inline void fxr_dispatch(struct vg_dispatch *d, struct vg_registry *reg,
				struct vg_store *store)
{
	struct vg_consumer c;

	vg_dispatch_init(d);
	c = vg_store_consumer(store);
	vg_dispatch_add(d, &c);
	c = vg_registry_consumer(reg);
	vg_dispatch_add(d, &c);
}

/* An agent's REQ socket connected to url, sends and receives timing out
 * after timeout_ms. The socket, or -1. */
static inline int fxr_req_open(const char *url, int timeout_ms)
{
	int s = nn_socket(AF_SP, NN_REQ);

	if (s < 0)
		return -1;
	if (nn_connect(s, url) < 0 ||
	    nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms, sizeof(timeout_ms)) ||
	    nn_setsockopt(s, NN_SOL_SOCKET, NN_SNDTIMEO, &timeout_ms, sizeof(timeout_ms))) {
		nn_close(s);
		return -1;
	}
	return s;
}

static inline void *fxr_run(void *rx)
{
	(void)vg_receiver_run(rx);
	return NULL;
}

/* O's listen set to a free loopback port's URL (written in URL, LEN
 * bytes; PORT_SEED is vg_test_free_port's), the receiver opened on O in
 * *RX, and *THREAD started on RUN(ARG), which runs it until fxr_stop (RUN
 * NULL: vg_receiver_run(*RX), its return ignored). On error *RX is NULL. */
static inline int fxr_start(struct vg_receiver_options *o, char *url, size_t len,
			    uint32_t *port_seed, struct vg_receiver **rx, pthread_t *thread,
			    void *(*run)(void *), void *arg)
{
	char err[256];
	int port;

	*rx = NULL;
	if ((port = vg_test_free_port(port_seed, 0)) < 0)
		return -1;
	snprintf(url, len, "tcp://127.0.0.1:%d", port);
	o->listen = url;
	if (vg_receiver_open(o, rx, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	if (pthread_create(thread, NULL, run ? run : fxr_run, run ? arg : *rx)) {
		vg_receiver_close(*rx);
		*rx = NULL;
		return -1;
	}
	return 0;
}

/* The receiver fxr_start started stopped, its thread joined, closed
 * (NULL: nothing). */
static inline void fxr_stop(struct vg_receiver *rx, pthread_t thread)
{
	if (!rx)
		return;
	vg_receiver_stop(rx);
	pthread_join(thread, NULL);
	vg_receiver_close(rx);
}

/* HOST's batch SEQ of STREAM, at SEQ minutes after T0_MS: its instance
 * "<host>-inst" with N gauges metric.<i> = seq + i; encoded (*len, the
 * caller frees), or NULL. */
static inline uint8_t *fxr_gauges(const char *host, uint64_t stream, uint64_t seq,
				  int64_t t0_ms, int n, size_t *len)
{
	int64_t t = t0_ms + (int64_t)seq * 60000;
	struct vg_batch *b = vg_batch_new(host, stream, seq, t);
	char id[32], m[32];
	uint8_t *buf = NULL;
	int ok = b != NULL;

	snprintf(id, sizeof(id), "%s-inst", host);
	ok = ok && vg_batch_resource(b, VG_RT_INSTANCE, id, "vm", NULL, t);
	for (int i = 0; i < n && ok; i++) {
		snprintf(m, sizeof(m), "metric.%d", i);
		ok = !vg_batch_sample(b, m, VG_KIND_GAUGE, (double)seq + i);
	}
	if (!ok || vg_wire_encode(b, &buf, len))
		buf = NULL;
	vg_batch_free(b);
	return buf;
}

/* Send BUF (LEN bytes, an encoded batch SEQ; freed) on the REQ socket S:
 * its ack's status, -1 when none came within the socket's receive timeout
 * (the agent's ack timeout: it would fail over), -2 when the send failed
 * or the answer is not SEQ's ack. */
static inline int fxr_send(int s, uint8_t *buf, size_t len, uint64_t seq)
{
	struct vg_ack a;
	void *reply = NULL;
	int n, sent = nn_send(s, buf, len, 0);

	free(buf);
	if (sent != (int)len)
		return -2;
	n = nn_recv(s, &reply, NN_MSG, 0);
	if (n < 0)
		return -1;
	sent = vg_wire_ack_decode(reply, (size_t)n, &a);
	nn_freemsg(reply);
	return sent || a.seq != seq ? -2 : a.status;
}

#endif
