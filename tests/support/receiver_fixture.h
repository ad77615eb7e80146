/*
 * receiver_fixture.h — what the receiver's tests (tests/unit/receiver_test.c,
 * tests/unit/receiver_proof_bound_test.c) set up alike: the store written
 * through to a real rrdcached, the registry and the store as the
 * dispatch's first consumers, the receiver on a free loopback port run on
 * a thread of its own, and an agent's REQ socket to send it batches.
 * Header-only; each function returns 0 or -1 (the error printed), so that
 * a cmocka setup can return it.
 */
#ifndef VIGIE_TEST_RECEIVER_FIXTURE_H
#define VIGIE_TEST_RECEIVER_FIXTURE_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "vigie/config.h"
#include "vigie/dispatch.h"
#include "vigie/receiver.h"
#include "vigie/registry.h"
#include "vigie/store.h"

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

/* D initialised with REG's consumer, then STORE's (a test adds its own
 * after them). */
static inline void fxr_dispatch(struct vg_dispatch *d, struct vg_registry *reg,
				struct vg_store *store)
{
	struct vg_consumer c;

	vg_dispatch_init(d);
	c = vg_registry_consumer(reg);
	vg_dispatch_add(d, &c);
	c = vg_store_consumer(store);
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

#endif
