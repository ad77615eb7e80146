/*
 * receiver_fixture.h — what the receiver's tests (tests/unit/receiver_test.c,
 * receiver_proof_bound_test.c, receiver_deadline_test.c) set up alike:
 * the store written through to a real rrdcached, the store and the
 * registry as the dispatch's first consumers (collector/compose.c's
 * order), the receiver on a free
 * loopback port run on a thread of its own, an agent's REQ socket, the
 * batches of gauges they send on it, the daemon made slow for real
 * (fxr_stall_start), and the whole of it as the slow-daemon cases set it
 * up (struct fxr_slow). Header-only; the set-up
 * functions return 0 or -1 (the error printed), so that a cmocka setup
 * can return it.
 */
#ifndef VIGIE_TEST_RECEIVER_FIXTURE_H
#define VIGIE_TEST_RECEIVER_FIXTURE_H

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/types.h>

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
#include "tests/unit/rrdcached_harness.h"

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

/* In DIR: STORE opened with CFG, REG and, unless WATCH is NULL, a second
 * registry *WATCH (a test's view of what was recorded) on its state, and
 * D as fxr_dispatch's. 0, or -1 (the error on stderr). */
static inline int fxr_open_state(const char *dir, const struct vg_config *cfg,
				 struct vg_store **store, struct vg_registry **reg,
				 struct vg_registry **watch, struct vg_dispatch *d)
{
	char err[256];

	if (vg_store_open(dir, cfg, store, err, sizeof(err)) ||
	    vg_registry_open_state(dir, "", reg, err, sizeof(err)) ||
	    (watch && vg_registry_open_state(dir, "", watch, err, sizeof(err)))) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	fxr_dispatch(d, *reg, *store);
	return 0;
}

/* O's consumers as a collector's: REG, D (fxr_dispatch's) and STORE;
 * batches up to MAX_MESSAGE bytes. */
static inline void fxr_options(struct vg_receiver_options *o, struct vg_registry *reg,
			       struct vg_dispatch *d, struct vg_store *store, uint32_t max_message)
{
	o->max_message = max_message;
	o->registry = reg;
	o->dispatch = d;
	o->store = store;
}

/* DIR and everything in it removed (rm -rf): 0, or -1. */
static inline int fxr_rm_dir(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) ? -1 : 0;
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

/* A storage daemon made slow for real: stopped (SIGSTOP) stopped_us,
 * then let run (SIGCONT) running_us, again and again, by a thread of its
 * own from fxr_stall_start until fxr_stall_stop. */
struct fxr_staller {
	pid_t pid;
	useconds_t stopped_us, running_us;
	pthread_t thread;
	int stalling, on;
};

static inline void *fxr_stall_run(void *arg)
{
	struct fxr_staller *st = arg;

	while (__atomic_load_n(&st->stalling, __ATOMIC_SEQ_CST)) {
		kill(st->pid, SIGSTOP);
		usleep(st->stopped_us);
		kill(st->pid, SIGCONT);
		usleep(st->running_us);
	}
	return NULL;
}

/* 1 when process PID is stopped (its state in /proc/<pid>/stat is T). */
static inline int fxr_stopped(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(fp = fopen(path, "r")))
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* after the command's name */
	return p && p[1] == ' ' && p[2] == 'T';
}

/* ST's thread started on the daemon PID, and 0 once the daemon is seen
 * stopped (within a second): a batch sent then does not find it running
 * (on a loaded machine the thread may first run some time after its
 * creation, the daemon taking the batch's round trips meanwhile), else
 * -1 (fxr_stall_stop stops what was started). */
static inline int fxr_stall_start(struct fxr_staller *st, pid_t pid, useconds_t stopped_us,
				  useconds_t running_us)
{
	st->pid = pid;
	st->stopped_us = stopped_us;
	st->running_us = running_us;
	st->stalling = 1;
	if (pthread_create(&st->thread, NULL, fxr_stall_run, st))
		return -1;
	st->on = 1;
	for (int i = 0; i < 1000 && !fxr_stopped(pid); i++)
		usleep(1000);
	return fxr_stopped(pid) ? 0 : -1;
}

/* ST's thread stopped, if started, and the daemon left running. */
static inline void fxr_stall_stop(struct fxr_staller *st)
{
	if (!st->on)
		return;
	__atomic_store_n(&st->stalling, 0, __ATOMIC_SEQ_CST);
	pthread_join(st->thread, NULL);
	st->on = 0;
	kill(st->pid, SIGCONT);
}

/* What the slow-daemon cases (receiver_deadline_test.c,
 * receiver_proof_bound_test.c) set up alike: a real rrdcached (-O -R),
 * the store written through to it, the registry, a second registry on
 * the same state to look at it (watch), the dispatch, the receiver on a
 * thread of its own and an agent's REQ socket; the staller stopped at
 * fxr_slow_close. */
struct fxr_slow {
	char dir[64];
	char url[64];
	struct vg_config cfg;
	struct hrd_daemon daemon;
	struct vg_store *store;
	struct vg_registry *reg, *watch;
	struct vg_dispatch d;
	struct vg_receiver *rx;
	pthread_t thread;
	int req;
	struct fxr_staller staller;
};

/* F's daemon, store, registries and dispatch, in a directory made from
 * TEMPLATE ("/tmp/NAME.XXXXXX"). Each wait on the daemon is bounded by a
 * quarter of an ack timeout of 40 s, 10 s: every round trip of the slow
 * daemon is answered within its own bound, as each of a large host's can
 * be within the default 1.25 s while the whole batch is not; only the
 * bound under test is left to cut it. F zeroed before; fxr_slow_close
 * after, whatever this returned. */
static inline int fxr_slow_open(struct fxr_slow *f, const char *template)
{
	static const char *const extra[] = {"-O", "-R", NULL};
	int rc;

	f->req = -1;
	snprintf(f->dir, sizeof(f->dir), "%s", template);
	if (!mkdtemp(f->dir))
		return -1;
	if ((rc = hrd_start(&f->daemon, NULL, extra))) {
		fprintf(stderr, "rrdcached: %s\n", strerror(-rc));
		return -1;
	}
	vg_config_defaults(&f->cfg);
	f->cfg.agent_ack_timeout_ms = 40000;
	vg_config_parse_archives("1m:1d", f->cfg.archives, VG_MAX_ARCHIVES, &f->cfg.narchives);
	fxr_write_through(&f->cfg, f->daemon.unix_addr, f->daemon.base);
	return fxr_open_state(f->dir, &f->cfg, &f->store, &f->reg, &f->watch, &f->d);
}

/* F's receiver started on O (its registry, dispatch and store F's, its
 * hold of 600 s, held by "this-node"), and F's REQ socket (answers
 * waited 120 s: the first batch creates the files). */
static inline int fxr_slow_start(struct fxr_slow *f, struct vg_receiver_options *o,
				 uint32_t *port_seed)
{
	o->registry = f->reg;
	o->dispatch = &f->d;
	o->store = f->store;
	o->hold_ttl_ms = 600000;
	if (vg_registry_set_holder(f->reg, "this-node", o->hold_ttl_ms) ||
	    fxr_start(o, f->url, sizeof(f->url), port_seed, &f->rx, &f->thread, NULL, NULL))
		return -1;
	f->req = fxr_req_open(f->url, 120000);
	return f->req < 0 ? -1 : 0;
}

/* What fxr_slow_open and fxr_slow_start set up, stopped and removed
 * (the test's own registries closed before): 0, or -1. */
static inline int fxr_slow_close(struct fxr_slow *f)
{
	fxr_stall_stop(&f->staller);
	if (f->req >= 0)
		nn_close(f->req);
	fxr_stop(f->rx, f->thread);
	vg_registry_close(f->watch);
	vg_registry_close(f->reg);
	vg_store_close(f->store);
	hrd_cleanup(&f->daemon);
	return fxr_rm_dir(f->dir);
}

#endif
