/*
 * receiver_test.c — the receiver on a real loopback socket: a REQ socket
 * sends encoded batches and checks every acknowledgement (OK, DUPLICATE,
 * REJECTED for garbage, truncation, an unknown version and oversize,
 * RETRY when a consumer is not ready), that the collector keeps serving
 * afterwards, that a retried batch is stored once, and that the counters
 * match what was sent. Every case runs on each state engine (sqlite's
 * registry.db and a PostgreSQL server the test starts); on a shared state,
 * a batch another collector committed while this one stored it is
 * answered DUPLICATE and counted once, and a batch of a host another
 * collector holds (its holding mark) is answered RETRY, stored by no
 * consumer, until the mark is cleared. Groups of waiting batches: one
 * group, each its own ack; bad input and a consumer's retry in a group
 * touch only their own batch; a batch held back to the next turn is
 * answered at a clean stop, and signed with its key after a key reload.
 * The job queue other threads use (vg_receiver_submit): a job runs on
 * the receiver thread, its batch goes through the same consumers, a
 * consumer's retry comes back as -EAGAIN, and a stopped receiver answers
 * -ESHUTDOWN instead of leaving the submitter waiting.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <math.h>
#include <rrd.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "state_engines.h"

#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/config.h"
#include "vigie/db.h"
#include "vigie/dispatch.h"
#include "vigie/log.h"
#include "vigie/receiver.h"
#include "vigie/rrdcached.h"
#include "vigie/registry.h"
#include "vigie/sign.h"
#include "vigie/store.h"
#include "vigie/wire.h"

#include "../support/receiver_fixture.h"
#include "../support/row_lock.h"
#include "rrdcached_harness.h"

#define T0 1699999980000LL
#define STREAM 0x1122334455667788ull
#define MAX_MESSAGE (64u << 10)
/* test_commit_deadline: the agents' ack timeout (the batch's deadline is
 * three quarters of it from its arrival) */
#define DEADLINE_ACK_MS 2000

/* A consumer the test controls: returns `ret` and counts calls/ticks. */
struct gate {
	int ret;
	char fail_host[16]; /* batch() of this host returns -EAGAIN */
	int calls;
	int ticks;
	size_t nres, nsamples, nevents; /* of the last batch */
};

/* A consumer with group hooks (like the billing meter): records the
 * groups it is handed, can hold the receiver inside batch() (so that
 * the agents' next batches queue up at the socket), and answers -EAGAIN
 * from group_end for the batches of host `fail_host`. */
struct grouper {
	int hold;           /* batch() waits while set */
	int inside;         /* batch() calls so far */
	int groups;         /* group_begin calls */
	size_t largest;     /* batches in the largest group */
	char fail_host[16]; /* "" : none */
	int same_stream;    /* a group held two of one (host, stream) */
	int stop_at;        /* batch() call that stops the receiver; 0: none */
	int renew_at;       /* batch() call after which the keys are renewed */
};

struct fixture {
	struct st_engine *e;
	char surl[700];            /* the state URL: "" on sqlite */
	struct vg_registry *other; /* another collector's handle, or NULL */
	int other_holds;           /* its commit records a holding mark */
	char dir[64];
	char url[64];
	struct vg_config cfg;
	struct vg_store *store;
	struct vg_registry *reg;
	struct vg_dispatch d;
	struct gate gate;
	struct grouper grouper;
	struct vg_receiver *rx;
	pthread_t thread;
	int run_rc;
	int req;
	/* signatures: h3's key; the receiver's keyring (replaced on the
	 * receiver thread by idle(), as the collector's SIGHUP does) */
	struct vg_key key;
	struct vg_keyring *keys, *next_keys;
	int renew_keys; /* idle(): replace the keyring by a copy */
	/* holding marks (setup_holding): the store writes through to an
	 * rrdcached the case kills; the registry holds as "this-node";
	 * marker, when set, marks the batch's host as "other-node" while
	 * this collector stores the batch (after its duplicate check) */
	struct hrd_daemon daemon;
	int holding;
	struct vg_registry *marker;
	struct vg_registry *watch; /* reads the marks, as another collector */
	struct vg_registry *lost;  /* o.lost_registry (setup_holding) */
};

static int gate_batch(void *ctx, const struct vg_batch *b)
{
	struct gate *g = ctx;
	struct fixture *f = (struct fixture *)((char *)g - offsetof(struct fixture, gate));

	/* another collector of the shared state commits the same batch
	 * while this one is storing it */
	if (f->other && f->other_holds) { /* holding values for a daemon */
		struct vg_registry_mark mk = {b->host, b->stream, b->seq, b->time_ms, 1, 0};
		int rc;
		vg_registry_commit_group(f->other, &mk, 1, &rc);
	} else if (f->other) {
		vg_registry_commit(f->other, b->host, b->stream, b->seq, b->time_ms);
	}
	struct vg_registry *marker = __atomic_load_n(&f->marker, __ATOMIC_SEQ_CST);
	if (marker) {
		struct vg_registry_mark mk = {b->host, 99, b->seq, b->time_ms, 1, 0};
		int rc;
		vg_registry_commit_group(marker, &mk, 1, &rc);
	}
	g->nres = b->nres;
	g->nsamples = b->nsamples;
	g->nevents = b->nevents;
	__atomic_fetch_add(&g->calls, 1, __ATOMIC_SEQ_CST);
	if (g->fail_host[0] && !strcmp(b->host, g->fail_host))
		return -EAGAIN;
	return __atomic_load_n(&g->ret, __ATOMIC_SEQ_CST);
}

static int grouper_batch(void *ctx, const struct vg_batch *b)
{
	struct grouper *g = ctx;
	struct fixture *f = (struct fixture *)((char *)g - offsetof(struct fixture, grouper));
	int call = __atomic_add_fetch(&g->inside, 1, __ATOMIC_SEQ_CST);

	if (call == __atomic_load_n(&g->stop_at, __ATOMIC_SEQ_CST))
		vg_receiver_stop(f->rx);
	if (call == __atomic_load_n(&g->renew_at, __ATOMIC_SEQ_CST))
		__atomic_store_n(&f->renew_keys, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&g->hold, __ATOMIC_SEQ_CST))
		usleep(1000);
	return 0;
}

static void grouper_begin(void *ctx, const struct vg_batch *const *b, size_t n)
{
	struct grouper *g = ctx;

	__atomic_fetch_add(&g->groups, 1, __ATOMIC_SEQ_CST);
	if (n > g->largest)
		g->largest = n;
	/* never two batches of one (host, stream) in a group (checked by
	 * the test's thread: cmocka asserts only there) */
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (b[i]->stream == b[j]->stream && !strcmp(b[i]->host, b[j]->host))
				g->same_stream = 1;
}

static void grouper_end(void *ctx, const struct vg_batch *const *b, size_t n, int *rcs)
{
	struct grouper *g = ctx;

	for (size_t i = 0; i < n; i++)
		if (!strcmp(b[i]->host, g->fail_host))
			rcs[i] = -EAGAIN;
}

static void gate_tick(void *ctx, int64_t now)
{
	__atomic_fetch_add(&((struct gate *)ctx)->ticks, 1, __ATOMIC_SEQ_CST);
}

/* The receiver's idle callback: installs next_keys, or (renew_keys) a
 * new keyring with the same key, and frees the one it replaces, as the
 * collector's SIGHUP handling does. */
static void idle(void *ctx)
{
	struct fixture *f = ctx;
	struct vg_keyring *kr = __atomic_exchange_n(&f->next_keys, NULL, __ATOMIC_SEQ_CST);

	if (!kr && __atomic_exchange_n(&f->renew_keys, 0, __ATOMIC_SEQ_CST)) {
		kr = vg_keyring_new();
		if (kr && vg_keyring_add(kr, "h3", &f->key)) {
			vg_keyring_free(kr);
			kr = NULL;
		}
	}
	if (!kr)
		return;
	vg_receiver_set_keys(f->rx, kr);
	vg_keyring_free(__atomic_exchange_n(&f->keys, kr, __ATOMIC_SEQ_CST));
}

/* the receiver's thread: its return kept for the cases that stop it */
static void *run(void *arg)
{
	struct fixture *f = arg;
	f->run_rc = vg_receiver_run(f->rx);
	return NULL;
}

static uint32_t port_seed; /* vg_test_free_port's */

static int setup_with(void **state, int holding)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct vg_receiver_options o = {0};
	struct vg_consumer c;
	char err[256];
	int rc;

	vg_log_init("receiver_test", VG_LOG_ERROR);
	f->e = *state;
	*state = f;
	f->req = -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vigie-receiver-test.XXXXXX");
	if (!mkdtemp(f->dir) || st_fresh(f->e, f->surl, sizeof(f->surl)))
		return -1;
	if (!f->e->ready)
		return 0; /* the case skips */
	vg_config_defaults(&f->cfg);
	vg_config_parse_archives("1m:1d", f->cfg.archives, VG_MAX_ARCHIVES, &f->cfg.narchives);
	int fast_flush = holding == 3; /* test_flush_failures_counted */
	if (holding == 2) {
		o.held_age_ms = 300; /* test_held_elsewhere_ages */
		holding = 0;
	}
	if (holding == 6) {
		o.ack_timeout_ms = DEADLINE_ACK_MS; /* test_commit_deadline */
		holding = 0;
	}
	if (fast_flush)
		holding = 0;
	/* test_wait_verified; 5: test_verified_proof, whose proof margin is
	 * 1 ms, so that a connection made a moment before the other node's
	 * commit proves it (the default margin is seconds) */
	int verified = holding == 4 || holding == 5;
	/* test_wait_verified's waits are part 3's alone: no proof by this
	 * collector's connections (part 2) may end them, whenever the
	 * daemon's restart in it made the connection */
	o.proof_margin_ms = holding == 5 ? 1 : holding == 4 ? -1
							    : 0;
	if (holding) {
		static const char *const extra[] = {"-O", "-R", NULL};
		if ((rc = hrd_start(&f->daemon, NULL, extra))) {
			fprintf(stderr, "rrdcached: %s\n", strerror(-rc));
			return -1;
		}
		f->holding = 1;
		fxr_write_through(&f->cfg, f->daemon.unix_addr, f->daemon.base);
	}
	if (vg_store_open(f->dir, &f->cfg, &f->store, err, sizeof(err)) ||
	    vg_registry_open_state(f->dir, f->surl, &f->reg, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	if (fast_flush && vg_registry_flush_every(f->reg, 50))
		return -1;
	fxr_dispatch(&f->d, f->reg, f->store);
	c = (struct vg_consumer){"gate", &f->gate, gate_batch, gate_tick};
	vg_dispatch_add(&f->d, &c);
	{
		struct vg_consumer_hooks gh = {.group_begin = grouper_begin,
					       .group_end = grouper_end};
		c = (struct vg_consumer){"grouper", &f->grouper, grouper_batch, NULL};
		vg_dispatch_add_hooks(&f->d, &c, &gh);
	}
	fxr_options(&o, f->reg, &f->d, f->store, MAX_MESSAGE);
	o.idle = idle;
	o.idle_ctx = f;
	if (holding) {
		o.hold_ttl_ms = 600000;
		if (vg_registry_set_holder(f->reg, "this-node", o.hold_ttl_ms) ||
		    vg_registry_open_state(f->dir, f->surl, &f->lost, err, sizeof(err)) ||
		    vg_registry_set_holder(f->lost, "this-node", o.hold_ttl_ms))
			return -1;
		o.lost_registry = f->lost;
	}
	if (verified) {
		o.verified_rows = 1;
		vg_registry_set_wait_verified(f->reg, 1);
	}
	if (fxr_start(&o, f->url, sizeof(f->url), &port_seed, &f->rx, &f->thread, run, f))
		return -1;
	f->req = fxr_req_open(f->url, 5000);
	return f->req < 0 ? -1 : 0;
}

static int setup(void **state)
{
	return setup_with(state, 0);
}

static int setup_held_age(void **state)
{
	return setup_with(state, 2);
}

static int setup_holding(void **state)
{
	return setup_with(state, 1);
}

static int setup_fast_flush(void **state)
{
	return setup_with(state, 3);
}

static int setup_verified(void **state)
{
	return setup_with(state, 4);
}

static int setup_verified_proof(void **state)
{
	return setup_with(state, 5);
}

static int setup_deadline(void **state)
{
	return setup_with(state, 6);
}

static struct fixture *fx(void **state)
{
	struct fixture *f = *state;

	st_need(f->e);
	return f;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->req >= 0)
		nn_close(f->req);
	/* a case that failed while holding the receiver lets it go */
	__atomic_store_n(&f->grouper.hold, 0, __ATOMIC_SEQ_CST);
	fxr_stop(f->rx, f->thread);
	vg_keyring_free(f->keys);
	vg_keyring_free(f->next_keys);
	vg_registry_close(f->other);
	vg_registry_close(f->marker);
	vg_registry_close(f->watch);
	vg_registry_close(f->lost);
	vg_registry_close(f->reg);
	vg_store_close(f->store);
	if (f->holding)
		hrd_cleanup(&f->daemon);
	if (fxr_rm_dir(f->dir))
		return -1;
	free(f);
	return 0;
}

/* A batch: one instance with `nsamples` gauges at time T0 + seq minutes. */
static struct vg_batch *make_batch(uint64_t seq, int nsamples)
{
	int64_t t = T0 + (int64_t)seq * 60000;
	struct vg_batch *b = vg_batch_new("node1", STREAM, seq, t);

	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, "inst-1", "vm1", NULL, t));
	for (int i = 0; i < nsamples; i++) {
		char m[32];
		snprintf(m, sizeof(m), "metric.%d", i);
		assert_int_equal(vg_batch_sample(b, m, VG_KIND_GAUGE, (double)seq + i), 0);
	}
	return b;
}

/* Send raw bytes, return the decoded ack. */
static struct vg_ack send_raw(struct fixture *f, const void *buf, size_t len)
{
	struct vg_ack ack;
	void *reply = NULL;
	int n;

	assert_int_equal(nn_send(f->req, buf, len, 0), (int)len);
	n = nn_recv(f->req, &reply, NN_MSG, 0);
	assert_int_equal(n, VG_WIRE_ACK_LEN);
	assert_int_equal(vg_wire_ack_decode(reply, (size_t)n, &ack), 0);
	nn_freemsg(reply);
	return ack;
}

static struct vg_ack send_batch(struct fixture *f, uint64_t seq, int nsamples)
{
	struct vg_batch *b = make_batch(seq, nsamples);
	uint8_t *buf;
	size_t len;
	struct vg_ack ack;

	assert_int_equal(vg_wire_encode(b, &buf, &len), 0);
	vg_batch_free(b);
	ack = send_raw(f, buf, len);
	free(buf);
	return ack;
}

static void expect(struct vg_ack a, int status, uint64_t stream, uint64_t seq)
{
	assert_int_equal(a.status, status);
	assert_true(a.stream == stream);
	assert_int_equal(a.seq, seq);
}

static void test_ok_duplicate_rejected(void **state)
{
	struct fixture *f = fx(state);
	struct vg_receiver_stats cs;
	struct vg_store_stats ss;
	struct vg_batch *b;
	uint8_t *buf;
	size_t len;
	json_t *o;
	struct vg_registry *reader;
	char err[256];

	expect(send_batch(f, 1, 3), VG_ACK_OK, STREAM, 1);
	expect(send_batch(f, 1, 3), VG_ACK_DUPLICATE, STREAM, 1);
	expect(send_batch(f, 2, 3), VG_ACK_OK, STREAM, 2);
	expect(send_batch(f, 1, 3), VG_ACK_DUPLICATE, STREAM, 1);

	/* garbage */
	expect(send_raw(f, "hello, collector", 16), VG_ACK_REJECTED, 0, 0);
	/* a good header on a truncated body: named by its header */
	b = make_batch(3, 3);
	assert_int_equal(vg_wire_encode(b, &buf, &len), 0);
	vg_batch_free(b);
	expect(send_raw(f, buf, len - 5), VG_ACK_REJECTED, STREAM, 3);
	/* an unknown protocol version */
	buf[4] = VG_WIRE_VERSION + 1;
	expect(send_raw(f, buf, len), VG_ACK_REJECTED, 0, 0);
	free(buf);
	/* over max_message_bytes (but under the wire limit) */
	b = make_batch(4, 6000);
	assert_int_equal(vg_wire_encode(b, &buf, &len), 0);
	vg_batch_free(b);
	assert_true(len > MAX_MESSAGE);
	expect(send_raw(f, buf, len), VG_ACK_REJECTED, STREAM, 4);
	free(buf);
	/* a poll time before 1970-01-02: an agent whose clock is not set */
	b = vg_batch_new("node1", STREAM, 5, 1000);
	assert_int_equal(vg_wire_encode(b, &buf, &len), 0);
	vg_batch_free(b);
	expect(send_raw(f, buf, len), VG_ACK_REJECTED, STREAM, 5);
	free(buf);

	/* still serving, and seq 3 was never acknowledged */
	expect(send_batch(f, 3, 3), VG_ACK_OK, STREAM, 3);

	vg_receiver_get_stats(f->rx, &cs);
	assert_int_equal(cs.batches_received, 10);
	assert_int_equal(cs.batches_rejected, 5);
	/* each rejection under exactly one reason (GET /metrics shows them) */
	assert_int_equal(cs.batches_malformed, 3);
	assert_int_equal(cs.batches_oversize, 1);
	assert_int_equal(cs.batches_clock_unset, 1);
	assert_int_equal(cs.batches_malformed + cs.batches_oversize +
				 cs.batches_clock_unset + cs.batches_unsigned +
				 cs.batches_forged + cs.batches_wrong_host +
				 cs.batches_no_key + cs.batches_stale +
				 cs.batches_future,
			 cs.batches_rejected);
	assert_int_equal(cs.batches_duplicate, 2);
	assert_int_equal(cs.batches_retry, 0);
	assert_int_equal(cs.samples_received, 9);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.batches_received, 10);

	vg_store_get_stats(f->store, &ss);
	assert_int_equal(ss.values_written, 9);
	assert_int_equal(ss.files_created, 3);
	assert_int_equal(f->gate.calls, 3);
	assert_true(__atomic_load_n(&f->gate.ticks, __ATOMIC_SEQ_CST) >= 1);

	/* the registry saw it (through another handle, as the API does) */
	assert_int_equal(vg_registry_open_state(f->dir, f->surl, &reader, err, sizeof(err)), 0);
	assert_int_equal(vg_registry_get(reader, "inst-1", &o), 0);
	assert_int_equal(json_object_size(json_object_get(o, "metrics")), 3);
	json_decref(o);
	assert_int_equal(vg_registry_seen(reader, "node1", STREAM, 3, T0 + 3 * 60000), 1);
	assert_int_equal(vg_registry_seen(reader, "node1", STREAM, 4, T0 + 4 * 60000), 0);
	vg_registry_close(reader);
}

static void test_retry_then_ok(void **state)
{
	struct fixture *f = fx(state);
	struct vg_receiver_stats cs;
	struct vg_store_stats ss;

	__atomic_store_n(&f->gate.ret, -EAGAIN, __ATOMIC_SEQ_CST);
	expect(send_batch(f, 1, 2), VG_ACK_RETRY, STREAM, 1);
	expect(send_batch(f, 1, 2), VG_ACK_RETRY, STREAM, 1); /* not a duplicate */
	__atomic_store_n(&f->gate.ret, 0, __ATOMIC_SEQ_CST);
	expect(send_batch(f, 1, 2), VG_ACK_OK, STREAM, 1);
	expect(send_batch(f, 1, 2), VG_ACK_DUPLICATE, STREAM, 1);
	/* another error than -EAGAIN: acknowledged (resending would not help) */
	__atomic_store_n(&f->gate.ret, -EIO, __ATOMIC_SEQ_CST);
	expect(send_batch(f, 2, 2), VG_ACK_OK, STREAM, 2);
	expect(send_batch(f, 2, 2), VG_ACK_DUPLICATE, STREAM, 2);

	vg_receiver_get_stats(f->rx, &cs);
	assert_int_equal(cs.batches_received, 6);
	assert_int_equal(cs.batches_retry, 2);
	assert_int_equal(cs.batches_duplicate, 2);
	assert_int_equal(cs.batches_rejected, 0);
	assert_int_equal(cs.samples_received, 4);
	/* the store wrote seq 1 once; the re-sends were duplicates */
	vg_store_get_stats(f->store, &ss);
	assert_int_equal(ss.values_written, 4);
	assert_int_equal(ss.values_duplicate, 4);
	assert_int_equal(ss.write_errors, 0);
	assert_int_equal(f->d.errors[2], 1); /* the -EIO was counted */
}

/* The replay after a new stream, over the wire: (node1, S1, seq 1, inst-1 in p1),
 * (node1, S2, seq 1, inst-1 in p2), then the first message byte for byte:
 * DUPLICATE, and inst-1 stays in p2. */
static void test_replay_after_new_stream(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry *reader;
	uint8_t *m1, *m2;
	size_t l1, l2;
	json_t *o;
	char err[256];

	for (int i = 0; i < 2; i++) {
		int64_t t = T0 + i * 60000;
		struct vg_batch *b = vg_batch_new("node1", i ? 0x5252 : 0x5151, 1, t);
		assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, "inst-1", "vm1",
						  NULL, t));
		assert_int_equal(vg_batch_identity(b, i ? "p2" : "p1", "u", "m1"), 0);
		assert_int_equal(vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, i), 0);
		assert_int_equal(vg_wire_encode(b, i ? &m2 : &m1, i ? &l2 : &l1), 0);
		vg_batch_free(b);
	}
	expect(send_raw(f, m1, l1), VG_ACK_OK, 0x5151, 1);
	expect(send_raw(f, m2, l2), VG_ACK_OK, 0x5252, 1);
	expect(send_raw(f, m1, l1), VG_ACK_DUPLICATE, 0x5151, 1);
	expect(send_raw(f, m1, l1), VG_ACK_DUPLICATE, 0x5151, 1);
	free(m1);
	free(m2);
	assert_int_equal(vg_registry_open_state(f->dir, f->surl, &reader, err, sizeof(err)), 0);
	assert_int_equal(vg_registry_get(reader, "inst-1", &o), 0);
	assert_string_equal(json_string_value(json_object_get(o, "project")), "p2");
	json_decref(o);
	vg_registry_close(reader);
}

/* Send batch seq of one instance "inst-1" named name with one sample of
 * metric, encoded without the encoder's name check (as a hostile or older
 * agent could); return the ack. */
static struct vg_ack send_unchecked(struct fixture *f, uint64_t seq,
				    const char *name, const char *metric)
{
	int64_t t = T0 + (int64_t)(seq - 1) * 60000;
	struct vg_batch *b = vg_batch_new("node1", STREAM, seq, t);
	struct vg_ack ack;
	uint8_t *buf;
	size_t len;

	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, "inst-1", name, NULL, t));
	assert_int_equal(vg_batch_sample(b, metric, VG_KIND_GAUGE, 1), 0);
	assert_int_equal(vg_wire_encode_unchecked(b, &buf, &len), 0);
	vg_batch_free(b);
	ack = send_raw(f, buf, len);
	free(buf);
	return ack;
}

/* A name against the rules: REJECTED, counted as bad_name. */
static void test_bad_name(void **state)
{
	struct fixture *f = fx(state);
	struct vg_receiver_stats cs;

	expect(send_unchecked(f, 1, "vm\x1b]0;pwned\x07", "cpu.util"),
	       VG_ACK_REJECTED, STREAM, 1);
	vg_receiver_get_stats(f->rx, &cs);
	assert_int_equal(cs.batches_rejected, 1);
	assert_int_equal(cs.batches_bad_name, 1);
	assert_int_equal(cs.batches_malformed, 0);

	/* a metric named with U+202E (RIGHT-TO-LEFT OVERRIDE), which would
	 * display as another name: the same refusal */
	expect(send_unchecked(f, 2, "vm1", "cpu.\xe2\x80\xaelitu"),
	       VG_ACK_REJECTED, STREAM, 2);
	vg_receiver_get_stats(f->rx, &cs);
	assert_int_equal(cs.batches_rejected, 2);
	assert_int_equal(cs.batches_bad_name, 2);
	/* and the receiver goes on: the next batch is stored */
	expect(send_batch(f, 3, 1), VG_ACK_OK, STREAM, 3);
}

/* The host-level resources and gap events of another host than the
 * batch's are dropped, unsigned batches too (one rule everywhere); the
 * rest is stored. */
static void test_foreign_host(void **state)
{
	struct fixture *f = fx(state);
	struct vg_receiver_stats cs;
	struct vg_keyring *kr = vg_keyring_new();
	struct vg_key k = {.len = 32};
	struct vg_batch *b = vg_batch_new("node1", STREAM, 1, T0);
	struct vg_registry *reader;
	char err[256];
	uint8_t *buf;
	size_t len;
	json_t *o;
	static const struct {
		int type;
		const char *id, *parent;
		int own;
	} res[] = {
		{VG_RT_HOST, "node2", NULL, 0},
		{VG_RT_HOST, "node1", NULL, 1},
		{VG_RT_HOST_DISK, "node2-sda", "node2", 0},
		{VG_RT_HOST_DISK, "node2-sdb", "node1", 0},
		{VG_RT_HOST_NIC, "node1-eth1", "node2", 0},
		{VG_RT_HOST_NIC, "node1-eth0", NULL, 0},
		{VG_RT_HOST_DISK, "node1", "node1", 0},
		/* a host "node1-2" has a key: its disk is not node1's */
		{VG_RT_HOST_DISK, "node1-2-sda", "node1", 0},
		{VG_RT_HOST_DISK, "node1-sda", "node1", 1},
		{VG_RT_HOST_DISK, "node1-dm-0", "node1", 1},
		{VG_RT_HOST_DISK, "node1-fs:/var/lib-x", "node1", 1},
		{VG_RT_HOST_NIC, "node1-eth0", "node1", 1},
		{VG_RT_INSTANCE, "node2-vm", NULL, 1},
		{VG_RT_DISK, "node2-vm-vda", "node2-vm", 1},
	};
	const size_t n = sizeof(res) / sizeof(res[0]);
	size_t own = 0;

	memset(k.bytes, 7, k.len);
	assert_int_equal(vg_keyring_add(kr, "node1-2", &k), 0);
	vg_receiver_set_keys(f->rx, kr);
	for (size_t i = 0; i < n; i++) {
		assert_non_null(vg_batch_resource(b, (uint8_t)res[i].type, res[i].id,
						  NULL, res[i].parent, T0));
		assert_int_equal(vg_batch_attr(b, "i", res[i].id), 0);
		for (size_t j = 0; j <= i % 3; j++)
			assert_int_equal(vg_batch_sample(b, "m", VG_KIND_GAUGE,
							 (double)i),
					 0);
		own += res[i].own;
	}
	/* a gap is its host's; lifecycle events of instances are anyone's */
	assert_int_equal(vg_batch_event(b, "node2", VG_EV_GAP, T0, NULL), 0);
	assert_int_equal(vg_batch_event(b, "node1", VG_EV_GAP, T0, NULL), 0);
	assert_int_equal(vg_batch_event(b, "node2-vm", VG_EV_STOPPED, T0, NULL), 0);
	assert_int_equal(vg_wire_encode(b, &buf, &len), 0);
	vg_batch_free(b);
	expect(send_raw(f, buf, len), VG_ACK_OK, STREAM, 1);
	free(buf);
	vg_receiver_get_stats(f->rx, &cs);
	vg_receiver_set_keys(f->rx, NULL);
	assert_int_equal(f->gate.nevents, 2);
	vg_keyring_free(kr);
	assert_int_equal(cs.resources_foreign, n - own + 1);
	assert_int_equal(cs.batches_rejected, 0);
	assert_int_equal(f->gate.nres, own);

	/* each kept resource kept its own samples and attributes */
	assert_int_equal(vg_registry_open_state(f->dir, f->surl, &reader, err, sizeof(err)), 0);
	size_t samples = 0;
	for (size_t i = 0; i < n; i++) {
		int rc = vg_registry_get(reader, res[i].id, &o);
		if (!res[i].own) {
			/* unless a kept one has the same id (node1, node1-eth0) */
			int twin = 0;
			for (size_t j = 0; j < n; j++)
				twin |= res[j].own && !strcmp(res[j].id, res[i].id);
			if (!twin)
				assert_int_equal(rc, -ENOENT);
			else
				json_decref(o);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_string_equal(json_string_value(json_object_get(
					    json_object_get(o, "attributes"), "i")),
				    res[i].id);
		assert_true(json_number_value(json_object_get(
				    json_object_get(json_object_get(o, "metrics"), "m"),
				    "last_value")) == (double)i);
		samples += i % 3 + 1;
		json_decref(o);
	}
	vg_registry_close(reader);
	assert_int_equal(f->gate.nsamples, samples);
	assert_int_equal(cs.samples_received, samples);
}

/* A project with white space at either end, which the API refuses
 * everywhere, reads as acme but was stored as another project no API
 * user can name or query (nor be billed as): the collector takes it as
 * the project without the white space, only white space as no project,
 * counts each, and stores the rest of the batch as it came (the user
 * field, white space inside a project). */
static void test_project_blank_trimmed(void **state)
{
	struct fixture *f = fx(state);
	struct vg_receiver_stats cs;
	struct vg_batch *b = vg_batch_new("node1", STREAM, 1, T0);
	struct vg_registry *reader;
	char err[256];
	uint8_t *buf;
	size_t len;
	json_t *o;
	static const struct {
		const char *id, *project, *user, *stored;
	} res[] = {
		{"vm-1", "acme\xc2\xa0", "bob ", "acme"},
		{"vm-2", "\xe3\x80\x80"
			 "acme ",
		 "bob", "acme"},
		{"vm-3", "\xe2\x80\x83 ", "bob", "default"},
		{"vm-4", "ac\xc2\xa0me", "bob", "ac\xc2\xa0me"},
		{"vm-5", "acme", "bob", "acme"},
	};
	const size_t n = sizeof(res) / sizeof(res[0]);

	for (size_t i = 0; i < n; i++) {
		assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, res[i].id, NULL,
						  NULL, T0));
		assert_int_equal(vg_batch_identity(b, res[i].project, res[i].user, NULL), 0);
		assert_int_equal(vg_batch_sample(b, "m", VG_KIND_GAUGE, (double)i), 0);
	}
	assert_int_equal(vg_wire_encode(b, &buf, &len), 0);
	vg_batch_free(b);
	expect(send_raw(f, buf, len), VG_ACK_OK, STREAM, 1);
	free(buf);
	vg_receiver_get_stats(f->rx, &cs);
	assert_int_equal(cs.projects_trimmed, 3);
	assert_int_equal(cs.batches_rejected, 0);
	assert_int_equal(f->gate.nres, n);
	assert_int_equal(f->gate.nsamples, n);

	assert_int_equal(vg_registry_open_state(f->dir, f->surl, &reader, err, sizeof(err)), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(vg_registry_get(reader, res[i].id, &o), 0);
		const char *p = json_string_value(json_object_get(o, "project"));
		if (!p || strcmp(p, res[i].stored))
			fail_msg("%s: project '%s' stored as '%s', not '%s'", res[i].id,
				 res[i].project, p ? p : "(null)", res[i].stored);
		assert_string_equal(json_string_value(json_object_get(o, "user")),
				    res[i].user);
		json_decref(o);
	}
	vg_registry_close(reader);
}

static void test_open_errors(void **state)
{
	struct fixture *f = fx(state);
	struct vg_receiver_options o = {0};
	struct vg_receiver *r = NULL;
	char err[256] = "";

	o.listen = f->url; /* in use by the fixture's receiver */
	o.max_message = MAX_MESSAGE;
	o.registry = f->reg;
	o.dispatch = &f->d;
	assert_int_equal(vg_receiver_open(&o, &r, err, sizeof(err)), -EADDRINUSE);
	assert_null(r);
	assert_non_null(strstr(err, f->url));
	o.listen = "nonsense://x";
	assert_true(vg_receiver_open(&o, &r, err, sizeof(err)) < 0);
	o.listen = f->url;
	o.registry = NULL;
	assert_int_equal(vg_receiver_open(&o, &r, err, sizeof(err)), -EINVAL);
	vg_receiver_close(NULL);
}

/* Two collectors share the state and the agent re-sent a batch to the
 * second after a lost ack: the first commits it while the second is
 * storing it (the gate consumer does the first's commit). The second's
 * own commit does not apply: it answers DUPLICATE and counts the batch
 * as a duplicate, not as received. A later batch is OK again. */
static void test_committed_elsewhere(void **state)
{
	struct fixture *f = fx(state);
	struct vg_receiver_stats cs;
	struct vg_batch *b;
	char err[256];
	uint8_t *m;
	size_t l;

	assert_int_equal(vg_registry_open_state(f->dir, f->surl, &f->other, err,
						sizeof(err)),
			 0);
	b = make_batch(1, 2);
	assert_int_equal(vg_wire_encode(b, &m, &l), 0);
	vg_batch_free(b);
	expect(send_raw(f, m, l), VG_ACK_DUPLICATE, STREAM, 1);
	free(m);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.batches_duplicate, 1);
	assert_int_equal(cs.samples_received, 0);
	vg_registry_close(f->other);
	f->other = NULL;
	b = make_batch(2, 2);
	assert_int_equal(vg_wire_encode(b, &m, &l), 0);
	vg_batch_free(b);
	expect(send_raw(f, m, l), VG_ACK_OK, STREAM, 2);
	free(m);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.samples_received, 2);
}

/* Issue 15 window (b) at the receiver: the agent re-sent a batch to this
 * collector after a late ack while a storage daemon is down; the other
 * collector commits it first, with its holding mark, while this one
 * stores it (the gate). This one answers DUPLICATE; the host's next
 * batch must then be answered RETRY (the other holds the one before for
 * the daemon). Before the fix this collector answered it from memory as
 * new and stored it past the mark (OK): two collectors holding the
 * host's values for one daemon. */
static void test_committed_elsewhere_held(void **state)
{
	struct fixture *f = fx(state);
	struct vg_receiver_stats cs;
	struct vg_registry *other;
	char err[256];

	assert_int_equal(vg_registry_open_state(f->dir, f->surl, &other, err, sizeof(err)),
			 0);
	assert_int_equal(vg_registry_set_holder(other, "other-node", 600000), 0);
	f->other_holds = 1;
	f->other = other;
	expect(send_batch(f, 1, 2), VG_ACK_DUPLICATE, STREAM, 1);
	f->other = NULL; /* the gate commits nothing more */
	expect(send_batch(f, 2, 2), VG_ACK_RETRY, STREAM, 2);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.batches_held_elsewhere, 1);
	assert_int_equal(cs.samples_received, 0);
	/* the other wrote its values and cleared its mark: stored here */
	assert_int_equal(vg_registry_hold_clear(other), 0);
	expect(send_batch(f, 2, 2), VG_ACK_OK, STREAM, 2);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.samples_received, 2);
	vg_registry_close(other);
}

/* Another collector holds values of the host that a storage daemon has
 * not taken (its holding mark): the host's batch is answered RETRY, no
 * consumer sees it, and it is counted; once the mark is cleared the same
 * batch is stored. */
static void test_held_elsewhere(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry_mark mk = {"node1", 99, 1, T0, 1, 0};
	struct vg_receiver_stats cs;
	struct vg_registry *holder; /* not f->other: the gate commits with it */
	char err[256];
	int rc;

	assert_int_equal(vg_receiver_held_elsewhere(f->rx, NULL, 0, NULL), 0);
	assert_int_equal(vg_registry_open_state(f->dir, f->surl, &holder, err,
						sizeof(err)),
			 0);
	assert_int_equal(vg_registry_set_holder(holder, "other-node", 600000), 0);
	assert_int_equal(vg_registry_commit_group(holder, &mk, 1, &rc), 0);
	assert_int_equal(rc, 0);
	expect(send_batch(f, 1, 2), VG_ACK_RETRY, STREAM, 1);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.batches_held_elsewhere, 1);
	assert_int_equal(cs.batches_retry, 1);
	assert_int_equal(cs.samples_received, 0);
	assert_int_equal(__atomic_load_n(&f->grouper.inside, __ATOMIC_SEQ_CST), 0);
	{ /* what /v1/health shows: the host, its holder, since when */
		struct vg_receiver_held h[2];
		assert_int_equal(vg_receiver_held_elsewhere(f->rx, h, 2, NULL), 1);
		assert_string_equal(h[0].host, "node1");
		assert_string_equal(h[0].holder, "other-node");
		assert_true(h[0].since_ms >= vg_now_ms() - 60000);
		assert_int_equal(h[0].batches, 1);
	}
	assert_int_equal(vg_registry_hold_clear(holder), 0);
	expect(send_batch(f, 1, 2), VG_ACK_OK, STREAM, 1);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.batches_held_elsewhere, 1);
	assert_int_equal(cs.samples_received, 2);
	assert_int_equal(__atomic_load_n(&f->grouper.inside, __ATOMIC_SEQ_CST), 1);
	/* stored: the host no longer waits */
	assert_int_equal(vg_receiver_held_elsewhere(f->rx, NULL, 0, NULL), 0);
	vg_registry_close(holder);
}

/* A batch of host with one sample at seq (its own stream). */
static struct vg_ack send_host(struct fixture *f, const char *host, uint64_t seq)
{
	int64_t t = T0 + (int64_t)seq * 60000;
	struct vg_batch *b = vg_batch_new(host, STREAM, seq, t);
	struct vg_ack ack;
	uint8_t *buf;
	size_t len;

	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, "inst-1", "vm1", NULL, t));
	assert_int_equal(vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, (double)seq), 0);
	assert_int_equal(vg_wire_encode(b, &buf, &len), 0);
	vg_batch_free(b);
	ack = send_raw(f, buf, len);
	free(buf);
	return ack;
}

/* Mark host as held by node (another collector's commit of its seq 99). */
static void mark(struct fixture *f, const char *node, const char *host,
		 struct vg_registry **reg)
{
	struct vg_registry_mark mk = {host, 99, 1, T0, 1, 0};
	char err[256];
	int rc;

	if (!*reg) {
		assert_int_equal(vg_registry_open_state(f->dir, f->surl, reg, err,
							sizeof(err)),
				 0);
		assert_int_equal(vg_registry_set_holder(*reg, node, 600000), 0);
	}
	assert_int_equal(vg_registry_commit_group(*reg, &mk, 1, &rc), 0);
	assert_int_equal(rc, 0);
}

/* Several hosts wait for marks of two holders: GET /v1/health's list
 * names every one with its own holder (before, only the last one
 * answered RETRY was kept), the longest waiting first, the count beyond
 * what the caller copies; a host whose mark its holder released leaves
 * the list as soon as one of its batches is stored here, the others
 * stay; the list is the same after a host of one holder is released. */
static void test_held_elsewhere_hosts(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry *a = NULL, *b = NULL;
	struct vg_receiver_held h[4];
	uint64_t released = 0;
	int capped = -1;

	mark(f, "node-a", "h1", &a);
	mark(f, "node-a", "h2", &a);
	mark(f, "node-b", "h3", &b);
	expect(send_host(f, "h1", 1), VG_ACK_RETRY, STREAM, 1);
	expect(send_host(f, "h2", 1), VG_ACK_RETRY, STREAM, 1);
	expect(send_host(f, "h3", 1), VG_ACK_RETRY, STREAM, 1);
	expect(send_host(f, "h1", 1), VG_ACK_RETRY, STREAM, 1);
	assert_int_equal(vg_receiver_held_elsewhere(f->rx, h, 4, &capped), 3);
	assert_int_equal(capped, 0);
	assert_string_equal(h[0].host, "h1");
	assert_string_equal(h[0].holder, "node-a");
	assert_int_equal(h[0].batches, 2);
	assert_true(h[0].last_ms >= h[0].since_ms);
	assert_string_equal(h[1].host, "h2");
	assert_string_equal(h[1].holder, "node-a");
	assert_string_equal(h[2].host, "h3");
	assert_string_equal(h[2].holder, "node-b");
	assert_int_equal(h[2].batches, 1);
	assert_true(h[0].since_ms <= h[1].since_ms && h[1].since_ms <= h[2].since_ms);
	/* a shorter copy still counts them all */
	memset(h, 0, sizeof(h));
	assert_int_equal(vg_receiver_held_elsewhere(f->rx, h, 1, NULL), 3);
	assert_string_equal(h[0].host, "h1");
	assert_string_equal(h[1].host, "");

	/* node-a will not come back: released, h1's next batch is stored */
	assert_int_equal(vg_registry_marks_release(b, "node-a", &released), 0);
	assert_int_equal(released, 2);
	expect(send_host(f, "h1", 1), VG_ACK_OK, STREAM, 1);
	assert_int_equal(vg_receiver_held_elsewhere(f->rx, h, 4, NULL), 2);
	assert_string_equal(h[0].host, "h2");
	assert_string_equal(h[1].host, "h3");
	expect(send_host(f, "h2", 1), VG_ACK_OK, STREAM, 1);
	expect(send_host(f, "h3", 2), VG_ACK_RETRY, STREAM, 2);
	assert_int_equal(vg_receiver_held_elsewhere(f->rx, h, 4, NULL), 1);
	assert_string_equal(h[0].host, "h3");
	assert_string_equal(h[0].holder, "node-b");
	assert_int_equal(h[0].batches, 2);
	vg_registry_close(a);
	vg_registry_close(b);
}

/* A host not answered RETRY for held_age_ms (its agent went back to the
 * holder, or stopped) drops out of the list without a batch stored here,
 * and comes back as a new wait. The fixture's held_age_ms is 300 ms. */
static void test_held_elsewhere_ages(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry *a = NULL;
	struct vg_receiver_held h[2];
	int64_t first;

	mark(f, "node-a", "h1", &a);
	expect(send_host(f, "h1", 1), VG_ACK_RETRY, STREAM, 1);
	/* within the age unless this thread was descheduled that long */
	assert_in_range(vg_receiver_held_elsewhere(f->rx, h, 2, NULL), 0, 1);
	first = vg_now_ms();
	usleep(400 * 1000);
	assert_int_equal(vg_receiver_held_elsewhere(f->rx, h, 2, NULL), 0);
	expect(send_host(f, "h1", 1), VG_ACK_RETRY, STREAM, 1);
	if (vg_receiver_held_elsewhere(f->rx, h, 2, NULL) == 1) {
		assert_true(h[0].since_ms >= first + 400);
		assert_int_equal(h[0].batches, 1);
	}
	vg_registry_close(a);
}

/* Whether another collector's duplicate check finds node1 held (2),
 * polled up to 60 s until it answers want. */
static int wait_held(struct vg_registry *r, int want)
{
	int got = -1;

	for (int i = 0; i < 600; i++) {
		if ((got = vg_registry_seen(r, "node1", 4242, 1, T0)) == want)
			break;
		usleep(100 * 1000);
	}
	return got;
}

/* Lines of the file at path that hold text. */
static int count_lines(const char *path, const char *text)
{
	char line[2048];
	int n = 0;
	FILE *fp = fopen(path, "r");

	if (!fp)
		return -1;
	while (fgets(line, sizeof(line), fp))
		n += strstr(line, text) != NULL;
	fclose(fp);
	return n;
}

/* expect(send_batch(...)) with the failing line named */
#define EXPECT_SENT(f_, q_, n_, st_, stm_, sq_)            \
	do {                                               \
		struct vg_ack a_ = send_batch(f_, q_, n_); \
		assert_int_equal(a_.status, st_);          \
		assert_true(a_.stream == (stm_));          \
		assert_int_equal(a_.seq, sq_);             \
	} while (0)

/* Holding marks at the receiver, with a real rrdcached the case kills:
 *  - another collector marks the host after this one's duplicate check,
 *    while this one stores the batch with the daemon down: this one's
 *    mark is refused, so the batch is answered RETRY (acknowledged, its
 *    values would wait here with no mark keeping the host from moving
 *    on), counted in hold_marks_refused, and not recorded: the same
 *    batch sent again once that mark is gone is stored (OK, not
 *    DUPLICATE) and marks the host as this collector's;
 *  - a daemon that flaps: each outage sets this collector's marks and
 *    each return clears them, but the info lines saying so are logged
 *    once per 1,000 (vg_log_limited), not at every flap. */
/* The hosts of series a storage daemon lost (a restart), marked through
 * vg_receiver_hold_lost on the store's thread before their re-send
 * (vg_store_on_lost), are this collector's marks: the loop tends them as
 * its own and clears them once the store holds nothing (here at its next
 * tick: nothing waits). Before, no mark was written for them; a mark
 * written by another handle under this node's name, with no batch
 * committed with one, was never cleared by the loop (hold_max). A
 * series with no registry row marks nothing (-EBUSY: re-sent anyway). */
static void test_lost_hosts_marked(void **state)
{
	struct fixture *f = fx(state);
	const struct vg_store_series ser[] = {
		{VG_RT_INSTANCE, "inst-1", "metric.1"},
		{VG_RT_INSTANCE, "inst-1", "metric.0"},
	};
	const struct vg_store_series none = {VG_RT_INSTANCE, "inst-none", "metric.0"};
	char err[256], logpath[128];
	int saved, fd, rc;

	assert_int_equal(vg_registry_open_state(f->dir, f->surl, &f->watch, err,
						sizeof(err)),
			 0);
	EXPECT_SENT(f, 1, 2, VG_ACK_OK, STREAM, 1); /* inst-1 of node1 */
	assert_int_equal(wait_held(f->watch, 0), 0);

	snprintf(logpath, sizeof(logpath), "%s/log", f->dir);
	fflush(stderr);
	saved = dup(2);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);
	vg_log_set_level(VG_LOG_INFO);
	rc = vg_receiver_hold_lost(f->rx, ser, 2);
	int cleared = wait_held(f->watch, 0);
	int rc_none = vg_receiver_hold_lost(f->rx, &none, 1);
	vg_log_set_level(VG_LOG_ERROR);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	assert_int_equal(rc, 0);
	assert_int_equal(count_lines(logpath, "(1 of 1 resources marked)"), 1);
	assert_int_equal(cleared, 0); /* the loop's tick, the store empty */
	assert_int_equal(rc_none, -EBUSY);
	assert_int_equal(wait_held(f->watch, 0), 0);
}

static void test_hold_marks(void **state)
{
	struct fixture *f = fx(state);
	struct vg_receiver_stats cs;
	char err[256], logpath[128];
	int saved, fd;

	assert_int_equal(vg_registry_open_state(f->dir, f->surl, &f->watch, err,
						sizeof(err)),
			 0);
	/* the series exist (their files are created with the daemon up) */
	EXPECT_SENT(f, 1, 2, VG_ACK_OK, STREAM, 1);
	assert_int_equal(vg_registry_seen(f->watch, "node1", 4242, 1, T0), 0);
	assert_int_equal(hrd_kill(&f->daemon, SIGKILL), 0);

	/* the mark refused */
	struct vg_registry *marker;
	assert_int_equal(vg_registry_open_state(f->dir, f->surl, &marker, err,
						sizeof(err)),
			 0);
	assert_int_equal(vg_registry_set_holder(marker, "other-node", 600000), 0);
	__atomic_store_n(&f->marker, marker, __ATOMIC_SEQ_CST);
	EXPECT_SENT(f, 2, 2, VG_ACK_RETRY, STREAM, 2);
	__atomic_store_n(&f->marker, NULL, __ATOMIC_SEQ_CST);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.hold_marks_refused, 1);
	assert_int_equal(cs.hold_marks_failed, 0);
	assert_int_equal(cs.batches_retry, 1);
	assert_int_equal(vg_registry_hold_clear(marker), 0);
	vg_registry_close(marker);
	EXPECT_SENT(f, 2, 2, VG_ACK_OK, STREAM, 2);
	assert_int_equal(wait_held(f->watch, 2), 2); /* this node's mark */

	/* the flapping daemon: its log lines go to a file */
	snprintf(logpath, sizeof(logpath), "%s/log", f->dir);
	fflush(stderr);
	saved = dup(2);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);
	vg_log_set_level(VG_LOG_INFO);
	int cleared = 1;
	for (uint64_t seq = 3; seq <= 5 && cleared; seq++) {
		assert_int_equal(hrd_restart(&f->daemon), 0);
		cleared = wait_held(f->watch, 0) == 0;
		if (!cleared)
			break;
		assert_int_equal(hrd_kill(&f->daemon, SIGKILL), 0);
		EXPECT_SENT(f, seq, 2, VG_ACK_OK, STREAM, seq);
		cleared = wait_held(f->watch, 2) == 2;
	}
	vg_log_set_level(VG_LOG_ERROR);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	assert_true(cleared);
	assert_int_equal(count_lines(logpath, "acknowledged with values a storage "
					      "daemon has not taken"),
			 0); /* the first was logged before the capture */
	assert_int_equal(count_lines(logpath, "is written; this collector's hosts "
					      "may move again"),
			 1);

	/* the marks cannot be cleared (their table is gone from under the
	 * registry): each failed try is counted, and the clear succeeds
	 * once the table is back. The loop left the daemon down and the
	 * host marked. */
	struct vg_db *db = st_db(f->surl, f->dir, "registry.db");
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.hold_marks_clear_failed, 0);
	assert_int_equal(cs.hold_marks_renew_failed, 0);
	assert_int_equal(vg_db_exec(db, "ALTER TABLE held RENAME TO held_away"), 0);
	assert_int_equal(hrd_restart(&f->daemon), 0);
	for (int i = 0; i < 600 && !cs.hold_marks_clear_failed; i++) {
		usleep(100 * 1000);
		vg_receiver_stats_fn(f->rx, &cs);
	}
	assert_true(cs.hold_marks_clear_failed >= 1);
	assert_int_equal(vg_db_exec(db, "ALTER TABLE held_away RENAME TO held"), 0);
	vg_db_close(db);
	assert_int_equal(wait_held(f->watch, 0), 0);
}

/* How many streams of node its verified row does not cover, as another
 * collector reads them. */
static int vrow(void *ctx, const char *node, int64_t upto_ms, uint64_t behind)
{
	struct {
		const char *node;
		uint64_t behind;
	} *w = ctx;

	if (!strcmp(node, w->node))
		w->behind = behind;
	return 0;
}

static uint64_t streams_behind(struct vg_registry *r, const char *node)
{
	struct {
		const char *node;
		uint64_t behind;
	} w = {node, 0};

	assert_int_equal(vg_registry_verified(r, vrow, &w), 0);
	return w.behind;
}

/* Wait (at most 60 s) until node's verified row covers its commits. */
static uint64_t wait_verified(struct vg_registry *r, const char *node)
{
	uint64_t n = 0;

	for (int i = 0; i < 600 && (n = streams_behind(r, node)); i++)
		usleep(100 * 1000);
	return n;
}

static void other_sends(struct fixture *f, int from, int to, int nmetrics);

/* The start of every case of the verified rows: f->watch open on the
 * state, this collector's batch 1 (nmetrics gauges) stored, its
 * connection to the daemon made, and its verified row covering it. */
static void first_verified(struct fixture *f, int nmetrics)
{
	char err[256];

	assert_int_equal(vg_registry_open_state(f->dir, f->surl, &f->watch, err,
						sizeof(err)),
			 0);
	EXPECT_SENT(f, 1, nmetrics, VG_ACK_OK, STREAM, 1);
	assert_int_equal(wait_verified(f->watch, "this-node"), 0);
}

/* Another collector on the same state, "other-node", that committed
 * node1's batch 3 (T0 + 3 min) and has not verified it, its values of
 * minutes 2-3 sent to the daemon before (other_sends of nmetrics gauges;
 * none when 0). The caller closes what it returns. */
static struct vg_registry *other_commits(struct fixture *f, int nmetrics)
{
	struct vg_registry *other;
	char err[256];

	assert_int_equal(vg_registry_open_state(f->dir, f->surl, &other, err, sizeof(err)),
			 0);
	assert_int_equal(vg_registry_set_holder(other, "other-node", 600000), 0);
	if (nmetrics)
		other_sends(f, 2, 3, nmetrics);
	assert_int_equal(vg_registry_commit(other, "node1", STREAM, 3, T0 + 180000), 0);
	return other;
}

/* Part 3 of "Closing the second" (docs/scaling.md) at the receiver, with
 * a real rrdcached and, on PostgreSQL, a real server:
 *  - as the previous collector: its commits carry its node, and its
 *    verified row follows its store's syncs on the daemon; with the
 *    daemon killed, a batch acknowledged meanwhile is not covered while
 *    its values wait in the store, and is once the daemon is back;
 *  - as the next collector: a batch of a host whose last batch another
 *    node committed after its verified row is answered RETRY, stored by
 *    no consumer, counted and shown in the held hosts; once that node's
 *    row reaches the commit it is stored; a second wait ends with the
 *    operator's release of the node (`storage marks release`). */
static void test_wait_verified(void **state)
{
	struct fixture *f = fx(state);
	struct vg_receiver_stats cs;
	struct vg_registry *other;
	int rc;

	first_verified(f, 2);

	/* the daemon killed: acknowledged, waiting in the store, not
	 * verified; verified once the daemon is back */
	assert_int_equal(hrd_kill(&f->daemon, SIGKILL), 0);
	EXPECT_SENT(f, 2, 2, VG_ACK_OK, STREAM, 2);
	assert_int_equal(streams_behind(f->watch, "this-node"), 1);
	assert_true(vg_store_holding(f->store));
	{ /* the store's verified time stays before that commit (its
	   * values wait for the daemon), so no row can cover it */
		struct vg_db *db = st_db(f->surl, f->dir, "registry.db");
		struct vg_db_stmt *st;
		int64_t commit_ms = 0;
		assert_int_equal(vg_db_prepare(db, "SELECT commit_ms FROM streams WHERE "
						   "host = 'node1' AND node = 'this-node'",
					       &st),
				 0);
		assert_int_equal(vg_db_step(st), 1);
		commit_ms = vg_db_column_int64(st, 0);
		vg_db_reset(st);
		vg_db_close(db);
		assert_true(commit_ms > 0);
		assert_true(vg_store_verified_ms(f->store) < commit_ms);
	}
	assert_int_equal(hrd_restart(&f->daemon), 0);
	assert_int_equal(wait_verified(f->watch, "this-node"), 0);
	assert_int_equal(wait_held(f->watch, 0), 0); /* its mark cleared */

	/* another node took the host's batch 3 and has not verified it */
	other = other_commits(f, 0);
	vg_receiver_stats_fn(f->rx, &cs);
	uint64_t stored = cs.samples_received;
	EXPECT_SENT(f, 4, 2, VG_ACK_RETRY, STREAM, 4);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.batches_unverified, 1);
	assert_int_equal(cs.samples_received, stored);
	{ /* what /v1/health shows */
		struct vg_receiver_held h[2];
		assert_int_equal(vg_receiver_held_elsewhere(f->rx, h, 2, NULL), 1);
		assert_string_equal(h[0].host, "node1");
		assert_string_equal(h[0].holder, "other-node");
		assert_int_equal(h[0].unverified, 1);
	}
	/* its row short of the commit: still waiting; at it: stored */
	assert_int_equal(vg_registry_set_verified(other, vg_registry_committed_ms(other) - 1), 0);
	EXPECT_SENT(f, 4, 2, VG_ACK_RETRY, STREAM, 4);
	assert_int_equal(vg_registry_set_verified(other, vg_registry_committed_ms(other)), 0);
	EXPECT_SENT(f, 4, 2, VG_ACK_OK, STREAM, 4);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.batches_unverified, 2);
	assert_int_equal(cs.samples_received, stored + 2);
	assert_int_equal(vg_receiver_held_elsewhere(f->rx, NULL, 0, NULL), 0);

	/* again, and that node never comes back: the operator releases it */
	assert_int_equal(vg_registry_commit(other, "node1", STREAM, 5, T0 + 300000), 0);
	EXPECT_SENT(f, 6, 2, VG_ACK_RETRY, STREAM, 6);
	uint64_t n = 0;
	assert_int_equal(vg_registry_verified_release(f->watch, "other-node", &n), 0);
	assert_int_equal(n, 1);
	EXPECT_SENT(f, 6, 2, VG_ACK_OK, STREAM, 6);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.batches_unverified, 3);
	assert_int_equal(cs.verified_write_failed, 0);
	(void)rc;
	vg_registry_close(other);
}

static uint8_t *host_batch(const char *host, uint64_t seq, size_t *len);

/* The other node's values of node1's instance, sent to the daemon as
 * that collector would (its own connection; the daemon caches them, -w
 * 3600), minutes from..to of gauges metric.0..nmetrics-1, value minute +
 * metric index. */
static void other_sends(struct fixture *f, int from, int to, int nmetrics)
{
	struct vg_rrdcd *c;
	char path[PATH_MAX];

	assert_int_equal(vg_rrdcd_connect(f->daemon.unix_addr, 5000, &c), 0);
	for (int i = 0; i < nmetrics; i++) {
		char m[32];
		int64_t ts[8];
		double v[8];
		size_t n = 0;
		snprintf(m, sizeof(m), "metric.%d", i);
		assert_int_equal(vg_store_path(f->store, VG_RT_INSTANCE, "inst-1", m, path,
					       sizeof(path)),
				 0);
		for (int k = from; k <= to; k++, n++) {
			ts[n] = (T0 + (int64_t)k * 60000) / 1000;
			v[n] = k + i;
		}
		struct vg_rrdcd_update u = {path, n, 1, ts, v, 0};
		assert_int_equal(vg_rrdcd_update(c, &u), 0);
	}
	vg_rrdcd_close(c);
}

/* metric.<metric>'s row of minute m in its file itself (librrd, not
 * through the daemon: what a daemon killed now would leave) */
static double file_row_of(struct fixture *f, int metric, int m)
{
	char rel[PATH_MAX], path[PATH_MAX * 2], name[32], **names = NULL;
	time_t start = (T0 + (int64_t)(m - 1) * 60000) / 1000, end = start + 60;
	unsigned long step = 60, nds = 0;
	rrd_value_t *data = NULL;
	double v;

	snprintf(name, sizeof(name), "metric.%d", metric);
	assert_int_equal(vg_store_path(f->store, VG_RT_INSTANCE, "inst-1", name, rel,
				       sizeof(rel)),
			 0);
	snprintf(path, sizeof(path), "%s/%s", f->daemon.base, rel);
	/* the daemon's writer (a FLUSH another thread of the store sent)
	 * holds the file's lock while it writes: read once it is done */
	for (int tries = 0;; tries++) {
		start = (T0 + (int64_t)(m - 1) * 60000) / 1000, end = start + 60, step = 60;
		rrd_clear_error();
		if (!rrd_fetch_r(path, "AVERAGE", &start, &end, &step, &nds, &names, &data))
			break;
		if (tries >= 200 || !strstr(rrd_get_error(), "could not lock"))
			fail_msg("fetch %s: %s", path, rrd_get_error());
		usleep(10 * 1000);
	}
	/* the row ending at minute m */
	v = data[((T0 / 1000 + (int64_t)m * 60) - start) / (time_t)step - 1];
	rrd_freemem(names[0]);
	rrd_freemem(names);
	rrd_freemem(data);
	return v;
}

static double file_row(struct fixture *f, int m)
{
	return file_row_of(f, 0, m);
}

/* Part 2 of "Closing the second" (docs/scaling.md) at the receiver, with
 * a real rrdcached and each state engine: another node committed
 * node1's batches 2-3 after its verified row, its values cached by the
 * daemon only:
 *  - this collector's connection to the daemon, made before that commit
 *    and alive, proves them: the next batch is stored at once (no RETRY,
 *    counted in batches_proven), and the other node's values are in the
 *    file itself before this one's, FLUSHed over that connection;
 *  - after a restart of the daemon (its connections broken, the next
 *    one made after the commit) nothing proves the other node's next
 *    commit: RETRY as without the proof, until its row covers it. */
static void test_verified_proof(void **state)
{
	struct fixture *f = fx(state);
	struct vg_receiver_stats cs;
	struct vg_registry *other;
	size_t len;

	first_verified(f, 2);
	usleep(20 * 1000); /* the commit below a few ms after it (margin 1 ms) */
	other = other_commits(f, 2);
	assert_true(isnan(file_row(f, 3))); /* cached by the daemon only */
	EXPECT_SENT(f, 4, 2, VG_ACK_OK, STREAM, 4);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.batches_proven, 1);
	assert_int_equal(cs.batches_unverified, 0);
	assert_int_equal(cs.samples_received, 4);
	assert_true(file_row(f, 3) == 3.0); /* the other node's, in the file */

	/* its next commit, then the daemon restarts: no proof */
	assert_int_equal(vg_registry_commit(other, "node1", STREAM, 5, T0 + 300000), 0);
	assert_int_equal(hrd_restart(&f->daemon), 0);
	EXPECT_SENT(f, 6, 2, VG_ACK_RETRY, STREAM, 6);
	/* another host's batch: a connection of this collector's made now,
	 * after the commit, which proves nothing either */
	uint8_t *buf = host_batch("node2", 1, &len);
	struct vg_ack a = send_raw(f, buf, len);
	for (int i = 0; i < 100 && a.status == VG_ACK_RETRY; i++) {
		usleep(100 * 1000); /* the daemon's files checked meanwhile */
		a = send_raw(f, buf, len);
	}
	free(buf);
	assert_int_equal(a.status, VG_ACK_OK);
	EXPECT_SENT(f, 6, 2, VG_ACK_RETRY, STREAM, 6);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.batches_proven, 1);
	assert_int_equal(cs.batches_unverified, 2);
	assert_int_equal(vg_registry_set_verified(other, vg_registry_committed_ms(other)), 0);
	EXPECT_SENT(f, 6, 2, VG_ACK_OK, STREAM, 6);
	vg_registry_close(other);
}

/* The proof covers every file of the host the registry knows, not only
 * the arriving batch's: node1's instance has three gauges (this
 * collector stored them all once, so the registry has their rows and
 * the daemon their files); the other node's unverified batches 2-3 sent
 * all three, cached by the daemon only; node1's next batch carries two
 * (a metric not in every poll). Proven at once as in
 * test_verified_proof, and metric.2's values of the other node are in
 * its file itself too: a kill -9 of the daemon now loses nothing, where
 * a proof of the batch's files alone left them in the daemon's cache,
 * to be overtaken by this collector's next value of metric.2. */
static void test_verified_proof_all_files(void **state)
{
	struct fixture *f = fx(state);
	struct vg_receiver_stats cs;
	struct vg_registry *other;

	first_verified(f, 3);
	usleep(20 * 1000); /* the commit below a few ms after it (margin 1 ms) */
	other = other_commits(f, 3);
	assert_true(isnan(file_row_of(f, 2, 3))); /* cached by the daemon only */
	EXPECT_SENT(f, 4, 2, VG_ACK_OK, STREAM, 4);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.batches_proven, 1);
	assert_int_equal(cs.batches_unverified, 0);
	assert_true(file_row_of(f, 0, 3) == 3.0); /* the batch's file */
	/* the file the batch does not carry: the other node's minute 3 */
	assert_true(file_row_of(f, 2, 3) == 5.0);
	vg_registry_close(other);
}

/* A job: records its thread, hands a batch to the dispatch chain. */
struct inject_job {
	pthread_t thread;
	struct vg_batch *b;
	uint64_t dup;
	int rc;
};

static int inject_fn(void *ctx, struct vg_receiver_inject *in)
{
	struct inject_job *j = ctx;
	j->thread = pthread_self();
	if (!vg_receiver_inject_registry(in))
		return -EFAULT;
	return j->b ? vg_receiver_inject_batch(in, j->b, &j->dup) : 7;
}

static void test_submit(void **state)
{
	struct fixture *f = fx(state);
	struct inject_job j = {0};
	struct vg_receiver_stats st;
	struct vg_series s = {0};

	/* a job's return value comes back, and it ran on the receiver */
	assert_int_equal(vg_receiver_submit(f->rx, inject_fn, &j), 7);
	assert_true(pthread_equal(j.thread, f->thread));
	/* a batch: every consumer sees it, the store has it */
	j.b = make_batch(1, 3);
	assert_int_equal(vg_receiver_submit(f->rx, inject_fn, &j), 0);
	assert_int_equal(j.dup, 0);
	assert_int_equal(__atomic_load_n(&f->gate.calls, __ATOMIC_SEQ_CST), 1);
	assert_int_equal(vg_store_fetch(f->store, VG_RT_INSTANCE, "inst-1", "metric.0",
					VG_CF_AVERAGE, T0, T0 + 120000, 60, 1, &s),
			 0);
	vg_series_free(&s);
	/* the same again: the store's duplicates are reported */
	assert_int_equal(vg_receiver_submit(f->rx, inject_fn, &j), 0);
	assert_int_equal(j.dup, 3);
	/* a consumer that cannot take it: -EAGAIN, counted as a retry */
	__atomic_store_n(&f->gate.ret, -EAGAIN, __ATOMIC_SEQ_CST);
	assert_int_equal(vg_receiver_submit(f->rx, inject_fn, &j), -EAGAIN);
	__atomic_store_n(&f->gate.ret, 0, __ATOMIC_SEQ_CST);
	vg_receiver_get_stats(f->rx, &st);
	assert_int_equal(st.batches_retry, 1);
	assert_int_equal(st.samples_published, 6);
	vg_batch_free(j.b);
	/* stopped: no waiting forever */
	vg_receiver_stop(f->rx);
	pthread_join(f->thread, NULL);
	assert_int_equal(vg_receiver_submit(f->rx, inject_fn, &j), -ESHUTDOWN);
	assert_int_equal(vg_receiver_submit(f->rx, NULL, &j), -EINVAL);
	/* teardown joins again: start a thread that returns at once */
	pthread_create(&f->thread, NULL, run, f);
}

/* Many threads at once: each job runs once, none is lost. */
static void *submitter(void *arg)
{
	struct fixture *f = arg;
	int ok = 0;
	for (int i = 0; i < 50; i++) {
		struct inject_job j = {0};
		int rc = vg_receiver_submit(f->rx, inject_fn, &j);
		ok += rc == 7 || rc == -EBUSY;
	}
	return (void *)(intptr_t)ok;
}

static void test_submit_threads(void **state)
{
	struct fixture *f = fx(state);
	pthread_t t[8];
	void *ok;

	for (int i = 0; i < 8; i++)
		assert_int_equal(pthread_create(&t[i], NULL, submitter, f), 0);
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], &ok);
		assert_int_equal((intptr_t)ok, 50);
	}
}

/* host's batch seq (one instance of its own, one gauge), encoded. */
static uint8_t *host_batch(const char *host, uint64_t seq, size_t *len)
{
	int64_t t = T0 + (int64_t)seq * 60000;
	struct vg_batch *b = vg_batch_new(host, STREAM, seq, t);
	char id[32];
	uint8_t *buf;

	snprintf(id, sizeof(id), "%s-inst", host);
	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, id, "vm", NULL, t));
	assert_int_equal(vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, (double)seq), 0);
	assert_int_equal(vg_wire_encode(b, &buf, len), 0);
	vg_batch_free(b);
	return buf;
}

static int req_socket(struct fixture *f)
{
	int s = fxr_req_open(f->url, 10000);

	assert_true(s >= 0);
	return s;
}

/* HOST's batch SEQ sent on socket SOCK (its ack read later). */
static void send_on(int sock, const char *host, uint64_t seq)
{
	size_t len;
	uint8_t *buf = host_batch(host, seq, &len);

	assert_int_equal(nn_send(sock, buf, len, 0), (int)len);
	free(buf);
}

/* HOST's batch SEQ sent and acknowledged OK. */
static void stored_ok(struct fixture *f, const char *host, uint64_t seq)
{
	size_t len;
	uint8_t *buf = host_batch(host, seq, &len);

	expect(send_raw(f, buf, len), VG_ACK_OK, STREAM, seq);
	free(buf);
}

/* The receiver held inside h0's batch (g->hold set by the caller), sent
 * on a new socket (returned), until N batches are inside the grouper. */
static int held_inside_h0(struct fixture *f, struct grouper *g, int n)
{
	int s0 = req_socket(f);

	send_on(s0, "h0", 1);
	for (int i = 0; i < 10000 && __atomic_load_n(&g->inside, __ATOMIC_SEQ_CST) < n; i++)
		usleep(1000);
	assert_int_equal(__atomic_load_n(&g->inside, __ATOMIC_SEQ_CST), n);
	return s0;
}

static struct vg_ack ack_of(int s)
{
	struct vg_ack ack;
	void *reply = NULL;
	int n = nn_recv(s, &reply, NN_MSG, 0);

	assert_int_equal(n, VG_WIRE_ACK_LEN);
	assert_int_equal(vg_wire_ack_decode(reply, (size_t)n, &ack), 0);
	nn_freemsg(reply);
	return ack;
}

/* An agent's socket whose connection is up: one request answered on it
 * (a re-send of h1's seq 1, which every group case acknowledged first:
 * DUPLICATE, handed to no consumer). A request on it is then written to
 * the connection by nn_send itself, not later by nanomsg's worker once
 * the connection comes up. */
static int warm_socket(struct fixture *f)
{
	int s = req_socket(f);
	size_t len;
	uint8_t *buf = host_batch("h1", 1, &len);

	assert_int_equal(nn_send(s, buf, len, 0), (int)len);
	free(buf);
	expect(ack_of(s), VG_ACK_DUPLICATE, STREAM, 1);
	return s;
}

/* The loopback TCP connections of port (/proc/net/tcp, established
 * only): 1 when every one's queue of the side asked is empty: the
 * clients' send queues (what they wrote is acknowledged by the
 * receiver's kernel) or the receiver's receive queues (what arrived is
 * read by nanomsg). -1 if the table cannot be read. */
static int tcp_queues_empty(int port, int server_side)
{
	FILE *t = fopen("/proc/net/tcp", "r");
	char line[512];
	int empty = 1;

	if (!t)
		return -1;
	if (!fgets(line, sizeof(line), t)) { /* the header */
		fclose(t);
		return -1;
	}
	while (fgets(line, sizeof(line), t)) {
		unsigned lport, rport, st;
		unsigned long txq, rxq;

		if (sscanf(line, " %*d: %*x:%x %*x:%x %x %lx:%lx", &lport, &rport, &st, &txq,
			   &rxq) != 5 ||
		    st != 1 /* TCP_ESTABLISHED */)
			continue;
		if (server_side && (int)lport == port && rxq)
			empty = 0;
		if (!server_side && (int)rport == port && txq)
			empty = 0;
	}
	fclose(t);
	return empty;
}

/* Wait until the requests just sent (on warm sockets) are in the
 * receiver's socket: its kernel acknowledged them, then nanomsg read
 * them (it reads a connection and queues the message for nn_recvmsg in
 * one step under the socket's lock, which nn_recvmsg takes too). In that
 * order: an empty receive queue seen before the bytes arrived proves
 * nothing. The wait is for those events, bounded only as a hang guard. */
static void wait_arrived(struct fixture *f)
{
	int port = atoi(strrchr(f->url, ':') + 1);

	for (int side = 0; side < 2; side++) {
		int rc = 0;
		for (int64_t t0 = vg_monotonic_ms();
		     vg_monotonic_ms() - t0 < 60000 && (rc = tcp_queues_empty(port, side)) == 0;)
			vg_sleep_ms(1);
		if (rc < 0)
			fail_msg("/proc/net/tcp cannot be read");
		if (!rc)
			fail_msg("the requests did not reach the receiver's socket in 60 s "
				 "(%s queues not empty)",
				 side ? "the receiver's receive" : "the agents' send");
	}
}

/* Group commit over the wire. Five agents (their own REQ sockets) send
 * while the receiver is held inside a consumer; then it goes on: the four
 * hosts' batches that waited are handed over as ONE group (one group_begin
 * of 4; vigie_receiver_groups_total counts it), each answered by its own
 * ack at its own socket; a re-send of h3's batch from another socket (an
 * agent whose ack was lost) is never in the same group: it waits for the
 * next one and is answered DUPLICATE; h4's batch, refused by a consumer
 * in group_end, is answered RETRY and its sequence number not recorded
 * (so its re-send is stored), while the others' are recorded by the
 * group's one registry statement. */
static void test_group_commit(void **state)
{
	struct fixture *f = fx(state);
	struct grouper *g = &f->grouper;
	struct vg_receiver_stats cs;
	const char *hosts[] = {"h1", "h2", "h3", "h4", "h3"};
	int s0, s[5];

	/* seq 1 of each host alone: their streams become known */
	for (int i = 0; i < 4; i++) {
		stored_ok(f, hosts[i], 1);
	}
	vg_receiver_get_stats(f->rx, &cs);
	assert_int_equal(cs.groups, 0);
	for (int i = 0; i < 5; i++)
		s[i] = warm_socket(f);
	snprintf(g->fail_host, sizeof(g->fail_host), "h4");
	/* hold the receiver inside h0's batch */
	__atomic_store_n(&g->hold, 1, __ATOMIC_SEQ_CST);
	s0 = held_inside_h0(f, g, 5);
	for (int i = 0; i < 5; i++) {
		send_on(s[i], hosts[i], 2);
	}
	wait_arrived(f); /* the five are in the collector's socket */
	__atomic_store_n(&g->hold, 0, __ATOMIC_SEQ_CST);
	expect(ack_of(s0), VG_ACK_OK, STREAM, 1);
	{
		struct vg_ack a[5];
		for (int i = 0; i < 5; i++)
			a[i] = ack_of(s[i]);
		expect(a[0], VG_ACK_OK, STREAM, 2);
		expect(a[1], VG_ACK_OK, STREAM, 2);
		expect(a[3], VG_ACK_RETRY, STREAM, 2);
		/* one of h3's two is stored, the other is its duplicate */
		assert_true((a[2].status == VG_ACK_OK && a[4].status == VG_ACK_DUPLICATE) ||
			    (a[2].status == VG_ACK_DUPLICATE && a[4].status == VG_ACK_OK));
	}
	for (int i = 0; i < 5; i++)
		nn_close(s[i]);
	nn_close(s0);
	vg_receiver_get_stats(f->rx, &cs);
	assert_int_equal(cs.groups, 1);
	assert_int_equal(cs.batches_grouped, 4);
	assert_int_equal(cs.batches_deferred, 1);
	assert_int_equal(g->largest, 4);
	assert_int_equal(g->same_stream, 0);
	assert_int_equal(cs.batches_retry, 1);
	/* the group's sequence numbers are recorded, h4's is not */
	assert_int_equal(vg_registry_seen(f->reg, "h1", STREAM, 2, T0 + 120000), 1);
	assert_int_equal(vg_registry_seen(f->reg, "h2", STREAM, 2, T0 + 120000), 1);
	assert_int_equal(vg_registry_seen(f->reg, "h3", STREAM, 2, T0 + 120000), 1);
	assert_int_equal(vg_registry_seen(f->reg, "h4", STREAM, 2, T0 + 120000), 0);
	/* h4's re-send goes through */
	g->fail_host[0] = '\0';
	stored_ok(f, "h4", 2);
}

/* Bad input and a failing consumer inside a group cost the good batches
 * nothing: garbage and a display name with control characters, waiting with
 * three good batches, are answered REJECTED before the group; a consumer
 * without group hooks asking h2's batch for a retry in the middle of the
 * group makes only h2's answer RETRY (its sequence number not recorded,
 * the later consumers not handed it); h1 and h3 are stored and
 * acknowledged as one group. */
static void test_group_bad_input(void **state)
{
	struct fixture *f = fx(state);
	struct grouper *g = &f->grouper;
	struct vg_receiver_stats cs;
	static const uint8_t garbage[] = "VGB\x01 not a batch at all, but long enough to look like one";
	const char *hosts[] = {"h1", "h2", "h3"};
	struct vg_ack a[5];
	int s0, s[5];
	uint8_t *bad;
	size_t blen;

	for (int i = 0; i < 3; i++) {
		stored_ok(f, hosts[i], 1);
	}
	/* h5's batch with a display name holding control characters,
	 * encoded without the encoder's check (as a hostile agent could) */
	{
		int64_t t = T0 + 120000;
		struct vg_batch *b = vg_batch_new("h5", STREAM, 2, t);

		assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, "h5-inst",
						  "vm\x1b]0;pwned\x07", NULL, t));
		assert_int_equal(vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 1), 0);
		assert_int_equal(vg_wire_encode_unchecked(b, &bad, &blen), 0);
		vg_batch_free(b);
	}
	for (int i = 0; i < 5; i++)
		s[i] = warm_socket(f);
	snprintf(f->gate.fail_host, sizeof(f->gate.fail_host), "h2");
	__atomic_store_n(&g->hold, 1, __ATOMIC_SEQ_CST);
	s0 = held_inside_h0(f, g, 4);
	for (int i = 0; i < 3; i++) {
		send_on(s[i], hosts[i], 2);
	}
	assert_int_equal(nn_send(s[3], garbage, sizeof(garbage), 0), (int)sizeof(garbage));
	assert_int_equal(nn_send(s[4], bad, blen, 0), (int)blen);
	free(bad);
	wait_arrived(f); /* the five are in the collector's socket */
	__atomic_store_n(&g->hold, 0, __ATOMIC_SEQ_CST);
	expect(ack_of(s0), VG_ACK_OK, STREAM, 1);
	for (int i = 0; i < 5; i++)
		a[i] = ack_of(s[i]);
	expect(a[0], VG_ACK_OK, STREAM, 2);
	expect(a[1], VG_ACK_RETRY, STREAM, 2);
	expect(a[2], VG_ACK_OK, STREAM, 2);
	assert_int_equal(a[3].status, VG_ACK_REJECTED);
	expect(a[4], VG_ACK_REJECTED, STREAM, 2);
	for (int i = 0; i < 5; i++)
		nn_close(s[i]);
	nn_close(s0);
	vg_receiver_get_stats(f->rx, &cs);
	assert_int_equal(cs.groups, 1);
	assert_int_equal(cs.batches_grouped, 3);
	assert_int_equal(cs.batches_rejected, 2);
	assert_int_equal(cs.batches_retry, 1);
	/* h2's batch went no further than the gate: the grouper saw h1's
	 * and h3's (and h0's before them) */
	assert_int_equal(__atomic_load_n(&g->inside, __ATOMIC_SEQ_CST), 6);
	assert_int_equal(g->largest, 3);
	assert_int_equal(vg_registry_seen(f->reg, "h1", STREAM, 2, T0 + 120000), 1);
	assert_int_equal(vg_registry_seen(f->reg, "h2", STREAM, 2, T0 + 120000), 0);
	assert_int_equal(vg_registry_seen(f->reg, "h3", STREAM, 2, T0 + 120000), 1);
	/* h2's re-send is stored */
	f->gate.fail_host[0] = '\0';
	stored_ok(f, "h2", 2);
}

/* A clean stop while a group is being stored, with a batch held back
 * for the next turn (a re-send of h3's batch from another socket, the
 * way an agent whose ack was lost sends it): before vg_receiver_run
 * returns, every batch the receiver took is answered. Each socket gets
 * its ack (the held one its DUPLICATE) instead of waiting for an ack
 * timeout and sending again. */
static void test_stop_answers_deferred(void **state)
{
	struct fixture *f = fx(state);
	struct grouper *g = &f->grouper;
	struct vg_receiver_stats cs;
	const char *hosts[] = {"h1", "h3", "h3"};
	struct vg_ack a[3];
	int s0, s[3];

	for (int i = 0; i < 2; i++) {
		stored_ok(f, hosts[i], 1);
	}
	for (int i = 0; i < 3; i++)
		s[i] = warm_socket(f);
	/* hold the receiver inside h0's batch while the three queue up */
	__atomic_store_n(&g->hold, 1, __ATOMIC_SEQ_CST);
	s0 = held_inside_h0(f, g, 3);
	for (int i = 0; i < 3; i++) {
		send_on(s[i], hosts[i], 2);
	}
	wait_arrived(f); /* the three are in the collector's socket */
	/* the stop comes inside the next turn's first batch() */
	__atomic_store_n(&g->stop_at, 4, __ATOMIC_SEQ_CST);
	__atomic_store_n(&g->hold, 0, __ATOMIC_SEQ_CST);
	pthread_join(f->thread, NULL);
	assert_int_equal(f->run_rc, 0);
	vg_receiver_get_stats(f->rx, &cs);
	assert_int_equal(cs.batches_deferred, 1);
	/* the socket is open until vg_receiver_close: the acks go out */
	expect(ack_of(s0), VG_ACK_OK, STREAM, 1);
	for (int i = 0; i < 3; i++)
		a[i] = ack_of(s[i]);
	expect(a[0], VG_ACK_OK, STREAM, 2);
	assert_true((a[1].status == VG_ACK_OK && a[2].status == VG_ACK_DUPLICATE) ||
		    (a[1].status == VG_ACK_DUPLICATE && a[2].status == VG_ACK_OK));
	assert_int_equal(vg_registry_seen(f->reg, "h3", STREAM, 2, T0 + 120000), 1);
	for (int i = 0; i < 3; i++)
		nn_close(s[i]);
	nn_close(s0);
	/* teardown joins again: start a thread that returns at once */
	pthread_create(&f->thread, NULL, run, f);
}

/* h3's batch seq, signed with f->key; its MAC into mac. */
static uint8_t *signed_batch(struct fixture *f, uint64_t seq, size_t *len,
			     uint8_t mac[VG_WIRE_MAC_LEN])
{
	uint8_t *buf = host_batch("h3", seq, len);

	assert_int_equal(vg_sign_batch(&f->key, &buf, len), 0);
	memcpy(mac, vg_sign_mac(buf, *len), VG_WIRE_MAC_LEN);
	return buf;
}

/* The ack on socket s, which must be signed with f->key for the batch
 * whose MAC is mac. */
static struct vg_ack signed_ack_of(struct fixture *f, int s, const uint8_t *mac)
{
	struct vg_ack ack;
	void *reply = NULL;
	int n = nn_recv(s, &reply, NN_MSG, 0);

	assert_int_equal(n, VG_WIRE_ACK_LEN + VG_WIRE_MAC_LEN);
	assert_int_equal(vg_sign_ack_verify(&f->key, mac, reply, (size_t)n), 0);
	assert_int_equal(vg_wire_ack_decode(reply, (size_t)n, &ack), 0);
	nn_freemsg(reply);
	return ack;
}

/* The agent keys are reloaded (SIGHUP: a new keyring, the old one freed)
 * between the turn that held a signed batch back and the turn that
 * answers it: the ack is still signed with the key that verified the
 * batch, so the agent accepts it (a signed agent ignores any other
 * answer and waits for its ack timeout). */
static void test_keys_renewed_while_deferred(void **state)
{
	struct fixture *f = fx(state);
	struct grouper *g = &f->grouper;
	struct vg_receiver_stats cs;
	struct vg_keyring *kr = vg_keyring_new(), *first;
	uint8_t mac[VG_WIRE_MAC_LEN], *buf;
	struct vg_ack a[2];
	int s0, s[3];
	size_t len;

	f->key.len = 32;
	for (size_t i = 0; i < f->key.len; i++)
		f->key.bytes[i] = (uint8_t)(0xa5 ^ i);
	assert_non_null(kr);
	assert_int_equal(vg_keyring_add(kr, "h3", &f->key), 0);
	__atomic_store_n(&f->next_keys, kr, __ATOMIC_SEQ_CST);
	for (int i = 0; i < 10000 && __atomic_load_n(&f->keys, __ATOMIC_SEQ_CST) != kr; i++)
		usleep(1000);
	assert_ptr_equal(__atomic_load_n(&f->keys, __ATOMIC_SEQ_CST), kr);
	first = kr;
	stored_ok(f, "h1", 1);
	s[1] = req_socket(f);
	buf = signed_batch(f, 1, &len, mac);
	assert_int_equal(nn_send(s[1], buf, len, 0), (int)len);
	free(buf);
	expect(signed_ack_of(f, s[1], mac), VG_ACK_OK, STREAM, 1);
	s[0] = warm_socket(f);
	s[2] = warm_socket(f);
	/* hold the receiver inside h0's batch while h1's and two copies of
	 * h3's signed batch queue up */
	__atomic_store_n(&g->hold, 1, __ATOMIC_SEQ_CST);
	s0 = held_inside_h0(f, g, 3);
	send_on(s[0], "h1", 2);
	buf = signed_batch(f, 2, &len, mac);
	assert_int_equal(nn_send(s[1], buf, len, 0), (int)len);
	assert_int_equal(nn_send(s[2], buf, len, 0), (int)len);
	free(buf);
	wait_arrived(f); /* the three are in the collector's socket */
	/* the keys are renewed right after the next turn */
	__atomic_store_n(&g->renew_at, 4, __ATOMIC_SEQ_CST);
	__atomic_store_n(&g->hold, 0, __ATOMIC_SEQ_CST);
	expect(ack_of(s0), VG_ACK_OK, STREAM, 1);
	expect(ack_of(s[0]), VG_ACK_OK, STREAM, 2);
	a[0] = signed_ack_of(f, s[1], mac);
	a[1] = signed_ack_of(f, s[2], mac);
	assert_true((a[0].status == VG_ACK_OK && a[1].status == VG_ACK_DUPLICATE) ||
		    (a[0].status == VG_ACK_DUPLICATE && a[1].status == VG_ACK_OK));
	vg_receiver_get_stats(f->rx, &cs);
	assert_int_equal(cs.batches_deferred, 1);
	assert_ptr_not_equal(__atomic_load_n(&f->keys, __ATOMIC_SEQ_CST), first);
	for (int i = 0; i < 3; i++)
		nn_close(s[i]);
	nn_close(s0);
}

/* The registry's flusher thread (PostgreSQL) writes the last values on
 * a connection of its own, so its failures reach no batch: the receiver
 * counts them (registry_flush_failures, /metrics'
 * vigie_registry_flush_failures_total). A trigger makes every update of
 * a metrics row fail: the receiver's batches (new rows, their sequence
 * numbers) are still acknowledged, the flush of their values fails and
 * is counted. */
static void test_flush_failures_counted(void **state)
{
	struct fixture *f = fx(state);
	struct vg_receiver_stats cs;
	struct vg_db *db;

	if (f->e->kind != VG_DB_POSTGRESQL) {
		printf("# SKIP sqlite: the flush stays in the batch's transaction\n");
		return;
	}
	expect(send_batch(f, 1, 3), VG_ACK_OK, STREAM, 1); /* the rows */
	db = st_db(f->surl, f->dir, "registry.db");
	assert_int_equal(vg_db_exec(db, "CREATE FUNCTION refuse() RETURNS trigger AS "
					"$$BEGIN RAISE EXCEPTION 'test: refused'; END$$ "
					"LANGUAGE plpgsql"),
			 0);
	assert_int_equal(vg_db_exec(db, "CREATE TRIGGER refuse BEFORE UPDATE ON metrics "
					"FOR EACH ROW EXECUTE FUNCTION refuse()"),
			 0);
	vg_receiver_get_stats(f->rx, &cs);
	uint64_t before = cs.registry_flush_failures;
	expect(send_batch(f, 2, 3), VG_ACK_OK, STREAM, 2); /* values to flush */
	/* the wait is for the count (a flush every 50 ms, the receiver's
	 * look at its tick), bounded only as a hang guard */
	for (int64_t t0 = vg_monotonic_ms(); vg_monotonic_ms() - t0 < 60000; vg_sleep_ms(20)) {
		vg_receiver_get_stats(f->rx, &cs);
		if (cs.registry_flush_failures > before)
			break;
	}
	if (cs.registry_flush_failures <= before)
		fail_msg("no failed flush counted in 60 s while every metrics update fails");
	assert_int_equal(vg_db_exec(db, "DROP TRIGGER refuse ON metrics"), 0);
	vg_db_close(db);
}

/* Issue 15: another collector on the same state ends inst-1 and sweeps
 * it (its rows deleted) while this collector's cache still knows it;
 * this collector's next batch of inst-1 brings a metric it has no row
 * of: the write finds the resource gone, inst-1 is forgotten and
 * registered anew (the batch acknowledged), and the receiver's stats
 * count it (registry_gone_resources, /metrics'
 * vigie_registry_gone_resources_total). Both engines. */
static void test_gone_resources_counted(void **state)
{
	struct fixture *f = fx(state);
	struct vg_receiver_stats cs;
	struct vg_registry *other;
	struct vg_batch *b;
	struct vg_resource *res;
	struct vg_db *db;
	char err[256], url[900];
	int64_t t = T0 + 2 * 60000;

	expect(send_batch(f, 1, 1), VG_ACK_OK, STREAM, 1); /* inst-1, metric.0 */
	vg_receiver_get_stats(f->rx, &cs);
	assert_int_equal(cs.registry_gone_resources, 0);
	/* the other collector (a cache of its own: the cache is per state
	 * URL): inst-1 ends there, and its sweep deletes it */
	if (f->surl[0])
		snprintf(url, sizeof(url), "%s application_name=collector_b", f->surl);
	else
		snprintf(url, sizeof(url),
			 "sqlite:%s/registry.db?synchronous=normal&busy_timeout_ms=2000", f->dir);
	assert_int_equal(vg_registry_open_state(f->dir, url, &other, err, sizeof(err)), 0);
	b = vg_batch_new("node1", STREAM + 1, 1, t);
	res = vg_batch_resource(b, VG_RT_INSTANCE, "inst-1", "vm1", NULL, t);
	res->state = VG_RSTATE_ENDED;
	assert_int_equal(vg_batch_sample(b, "metric.0", VG_KIND_GAUGE, 7), 0);
	assert_int_equal(vg_registry_update(other, b), 0);
	vg_batch_free(b);
	assert_int_equal(vg_registry_remove_ended(other, "inst-1", t), 0);
	vg_registry_close(other);
	db = st_db(f->surl, f->dir, "registry.db");
	assert_int_equal(st_int(db, "SELECT count(*) FROM resources WHERE id = 'inst-1'"), 0);

	/* this collector: inst-1 with a new metric, registered anew */
	expect(send_batch(f, 3, 2), VG_ACK_OK, STREAM, 3);
	assert_int_equal(st_int(db, "SELECT count(*) FROM metrics WHERE resource_id = 'inst-1'"),
			 2);
	vg_db_close(db);
	/* the receiver copies the count at its tick (every 100 ms); the
	 * wait is bounded only as a hang guard */
	for (int64_t t0 = vg_monotonic_ms(); vg_monotonic_ms() - t0 < 60000; vg_sleep_ms(20)) {
		vg_receiver_get_stats(f->rx, &cs);
		if (cs.registry_gone_resources)
			break;
	}
	assert_int_equal(cs.registry_gone_resources, 1);
}

/* The commit of a batch's seq bounded by its deadline (registry.c
 * "Commits bounded by the deadline"), over the wire on PostgreSQL:
 * another session holds the host's streams row (SELECT ... FOR UPDATE)
 * when its batch 2 arrives. The batch is answered RETRY before the
 * agent's ack timeout (the socket waits twice that: a loaded machine),
 * counted, nothing of it recorded; the row free, the re-sent batch is
 * acknowledged, its values stored once (the store skips the copy of
 * those the first attempt took), and a further copy is a DUPLICATE.
 * Without the bound the commit waits for the row (held 6 s at most):
 * no answer within the socket's wait. */
static void test_commit_deadline(void **state)
{
	struct fixture *f = fx(state);
	struct vg_receiver_stats cs;
	struct vg_store_stats ss;
	struct vg_registry *w;
	struct row_lock l;
	struct vg_batch *b;
	void *reply = NULL;
	struct vg_ack ack = {0};
	uint8_t *buf;
	size_t len;
	char err[256];
	int n;

	nn_close(f->req);
	f->req = fxr_req_open(f->url, 2 * DEADLINE_ACK_MS);
	assert_true(f->req >= 0);
	expect(send_batch(f, 1, 2), VG_ACK_OK, STREAM, 1);
	assert_int_equal(row_lock_hold(&l, st_db(f->surl, f->dir, "registry.db"),
				       "SELECT last_seq FROM streams WHERE host = 'node1' "
				       "FOR UPDATE",
				       3 * DEADLINE_ACK_MS),
			 0);
	b = make_batch(2, 2);
	assert_int_equal(vg_wire_encode(b, &buf, &len), 0);
	vg_batch_free(b);
	assert_int_equal(nn_send(f->req, buf, len, 0), (int)len);
	free(buf);
	n = nn_recv(f->req, &reply, NN_MSG, 0);
	if (n >= 0) {
		assert_int_equal(vg_wire_ack_decode(reply, (size_t)n, &ack), 0);
		nn_freemsg(reply);
	}
	/* not recorded, the row still held */
	assert_int_equal(vg_registry_open_state(f->dir, f->surl, &w, err, sizeof(err)), 0);
	int seen = vg_registry_seen(w, "node1", STREAM, 2, T0 + 120000);
	row_lock_release(&l);
	assert_true(n >= 0); /* answered within twice the ack timeout */
	expect(ack, VG_ACK_RETRY, STREAM, 2);
	assert_int_equal(seen, 0);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.commit_deadline, 1);
	assert_true(cs.batch_deadline >= 1);
	assert_int_equal(cs.batches_retry, 1);

	/* the agent's re-sends (one that came while the receiver was in
	 * the commit above is dated from before it, and may be answered
	 * RETRY before any consumer: "One deadline per batch"), then a copy */
	ack = send_batch(f, 2, 2);
	for (int i = 0; i < 100 && ack.status == VG_ACK_RETRY; i++) {
		vg_sleep_ms(50);
		ack = send_batch(f, 2, 2);
	}
	expect(ack, VG_ACK_OK, STREAM, 2);
	expect(send_batch(f, 2, 2), VG_ACK_DUPLICATE, STREAM, 2);
	assert_int_equal(vg_registry_seen(w, "node1", STREAM, 2, T0 + 120000), 1);
	vg_registry_close(w);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.commit_deadline, 1);
	assert_int_equal(cs.samples_received, 4);
	vg_store_get_stats(f->store, &ss);
	assert_int_equal(ss.values_written, 4);   /* seq 1's and 2's, once */
	assert_int_equal(ss.values_duplicate, 2); /* the re-send's copy */
	assert_int_equal(ss.write_errors, 0);
}

/* Send batch seq (nsamples samples) and wait twice the ack timeout for
 * its answer: 1 with *ack set, or 0 when none came. */
static int send_within(struct fixture *f, uint64_t seq, int nsamples, struct vg_ack *ack)
{
	struct vg_batch *b = make_batch(seq, nsamples);
	void *reply = NULL;
	uint8_t *buf;
	size_t len;
	int n;

	assert_int_equal(vg_wire_encode(b, &buf, &len), 0);
	vg_batch_free(b);
	assert_int_equal(nn_send(f->req, buf, len, 0), (int)len);
	free(buf);
	n = nn_recv(f->req, &reply, NN_MSG, 0);
	if (n < 0)
		return 0;
	assert_int_equal(vg_wire_ack_decode(reply, (size_t)n, ack), 0);
	nn_freemsg(reply);
	return 1;
}

/* The duplicate check and the registry's transaction (as a consumer)
 * bounded by the batch's deadline too, as its commit is
 * (test_commit_deadline). Another session locks the streams table
 * (ACCESS EXCLUSIVE: the check's plain read waits for it) when batch 3
 * arrives (after a gap: this collector's memory cannot answer its check):
 * answered RETRY within the socket's wait, counted. Then it locks the
 * metrics table against writes (SHARE) when batch 2 comes with a new
 * metric (the registry writes its row): RETRY again, rolled back. Free,
 * the re-send is acknowledged. Each is sent right after a copy of batch
 * 1 (DUPLICATE, from memory), so that its deadline runs from its send
 * (recv_msg: an idle receiver's may run from up to a second before), a
 * few times while a slow machine answers it RETRY before the check.
 * Without the bounds the receiver waits for the lock (held 6 s at most):
 * no answer within the socket's wait. */
static int cut_within(struct fixture *f, uint64_t seq, int nsamples, uint64_t cuts)
{
	struct vg_receiver_stats cs;
	struct vg_ack ack = {0};

	for (int i = 0; i < 5; i++) {
		/* RETRY too when it waited for the lock being taken */
		ack = send_batch(f, 1, 2);
		assert_true(ack.status == VG_ACK_DUPLICATE || ack.status == VG_ACK_RETRY);
		if (!send_within(f, seq, nsamples, &ack))
			return 0; /* no answer within twice the ack timeout */
		expect(ack, VG_ACK_RETRY, STREAM, seq);
		vg_receiver_stats_fn(f->rx, &cs);
		if (cs.commit_deadline >= cuts)
			return 1;
	}
	return 1;
}

static void test_state_deadline(void **state)
{
	struct fixture *f = fx(state);
	struct vg_receiver_stats cs;
	struct vg_ack ack = {0};
	struct row_lock l;
	struct vg_db *db;
	int answered;

	nn_close(f->req);
	f->req = fxr_req_open(f->url, 2 * DEADLINE_ACK_MS);
	assert_true(f->req >= 0);
	expect(send_batch(f, 1, 2), VG_ACK_OK, STREAM, 1);

	/* the duplicate check */
	assert_int_equal(table_lock_hold(&l, st_db(f->surl, f->dir, "registry.db"),
					 "LOCK TABLE streams IN ACCESS EXCLUSIVE MODE",
					 3 * DEADLINE_ACK_MS),
			 0);
	answered = cut_within(f, 3, 2, 1);
	row_lock_release(&l);
	assert_true(answered);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.commit_deadline, 1);

	/* the registry's transaction: a new metric's row */
	assert_int_equal(table_lock_hold(&l, st_db(f->surl, f->dir, "registry.db"),
					 "LOCK TABLE metrics IN SHARE MODE", 3 * DEADLINE_ACK_MS),
			 0);
	answered = cut_within(f, 2, 3, 2);
	row_lock_release(&l);
	assert_true(answered);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.commit_deadline, 2);
	db = st_db(f->surl, f->dir, "registry.db");
	assert_int_equal(st_int(db, "SELECT count(*) FROM metrics WHERE name = 'metric.2'"), 0);
	assert_int_equal(st_int(db, "SELECT max(last_seq) FROM streams"), 1);

	ack = send_batch(f, 2, 3);
	for (int i = 0; i < 100 && ack.status == VG_ACK_RETRY; i++) {
		vg_sleep_ms(50);
		ack = send_batch(f, 2, 3);
	}
	expect(ack, VG_ACK_OK, STREAM, 2);
	assert_int_equal(st_int(db, "SELECT count(*) FROM metrics WHERE name = 'metric.2'"), 1);
	vg_db_close(db);
	vg_receiver_stats_fn(f->rx, &cs);
	assert_int_equal(cs.commit_deadline, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		ST_BOTH(test_ok_duplicate_rejected, setup, teardown),
		ST_BOTH(test_flush_failures_counted, setup_fast_flush, teardown),
		ST_BOTH(test_gone_resources_counted, setup, teardown),
		ST_BOTH(test_retry_then_ok, setup, teardown),
		ST_BOTH(test_open_errors, setup, teardown),
		ST_BOTH(test_replay_after_new_stream, setup, teardown),
		ST_BOTH(test_bad_name, setup, teardown),
		ST_BOTH(test_foreign_host, setup, teardown),
		ST_BOTH(test_project_blank_trimmed, setup, teardown),
		ST_BOTH(test_committed_elsewhere, setup, teardown),
		ST_BOTH(test_held_elsewhere, setup, teardown),
		ST_BOTH(test_held_elsewhere_hosts, setup, teardown),
		ST_BOTH(test_held_elsewhere_ages, setup_held_age, teardown),
		ST_BOTH(test_hold_marks, setup_holding, teardown),
		ST_BOTH(test_lost_hosts_marked, setup_holding, teardown),
		ST_BOTH(test_wait_verified, setup_verified, teardown),
		ST_BOTH(test_verified_proof, setup_verified_proof, teardown),
		ST_BOTH(test_verified_proof_all_files, setup_verified_proof, teardown),
		ST_BOTH(test_committed_elsewhere_held, setup, teardown),
		ST_BOTH(test_submit, setup, teardown),
		ST_BOTH(test_submit_threads, setup, teardown),
		ST_BOTH(test_group_commit, setup, teardown),
		ST_BOTH(test_group_bad_input, setup, teardown),
		ST_BOTH(test_stop_answers_deferred, setup, teardown),
		ST_BOTH(test_keys_renewed_while_deferred, setup, teardown),
		/* the bound is PostgreSQL's (sqlite: its busy timeout) */
		{"postgresql test_commit_deadline", test_commit_deadline, setup_deadline, teardown,
		 &ST_PG},
		{"postgresql test_state_deadline", test_state_deadline, setup_deadline, teardown,
		 &ST_PG},
	};
	if (getenv("RECEIVER_TEST_FILTER")) /* e.g. "postgresql*" */
		cmocka_set_test_filter(getenv("RECEIVER_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, st_group_teardown);
}
