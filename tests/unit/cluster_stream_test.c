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
 *
 * And the other side: a node keeps its subscription to a peer that its
 * registry rounds stop listing, until answered rounds have lacked it for
 * a whole lease. It used to hang up at the first round that missed the
 * peer (after the database's restart a round may list the node alone),
 * and what the peer published until the next round dialled it again
 * never reached the alarms' owner. There node a's absence clock is the
 * test's (the lease's length on it, injected); b's registry row is made
 * stale in the database to have a's rounds miss it, and PostgreSQL is
 * stopped and started again for the rounds that fail.
 *
 * And the stream is signed (issue 15): it was plain nanomsg PUB/SUB, and
 * anyone reaching a collector's stream port, or on the path, could feed
 * a peer's alarm engine what they liked. Node a, with the cluster key,
 * subscribes to b (the same key), w (another key), u (no key, unsigned)
 * and x, the test's own PUB socket, an attacker's, listed in the
 * registry: x replays a message captured from b's stream, then the same
 * bytes altered; and a's wall clock is moved past the window for a
 * replay after it. Each is refused, counted by reason, and never reaches
 * a's peer_batch (the alarm engine); b's own batches still do.
 *
 * And the round an alarm's creation waits for (vg_cluster_round_wait):
 * it returns once a round that started after the call has ended, its
 * round callback (where the collector leases the new alarm) included.
 * The create used to only poke the round, so the API answered before the
 * alarm was leased, and the batches acknowledged meanwhile were kept in
 * memory only (lost at a kill -9: alarms_pg_test's M of N). Here the
 * callback takes a while (a nap standing for a slow database): a wait
 * that returns before it ended fails, whatever the machine's speed.
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

#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>

#include "vigie/batch.h"
#include "vigie/cluster.h"
#include "vigie/db.h"
#include "vigie/dispatch.h"
#include "vigie/sign.h"

#include "../support/db_engines.h"
#include "../support/free_port.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t received, received_published, received_other;

/* The cluster's stream key, and another one. */
static const struct vg_key cluster_key = {32, "0123456789abcdef0123456789abcdef"};
static const struct vg_key wrong_key = {32, "fedcba9876543210fedcba9876543210"};

static void on_peer_batch(void *ctx, const struct vg_batch *b)
{
	(void)ctx;
	pthread_mutex_lock(&lock);
	if (b->host && !strcmp(b->host, "h1"))
		received++;
	else
		received_other++;
	if (b->host && !strcmp(b->host, "h1") && b->published)
		received_published++;
	pthread_mutex_unlock(&lock);
}

/* Read one of the counters above under the lock. */
static int64_t locked(const int64_t *v)
{
	int64_t n;

	pthread_mutex_lock(&lock);
	n = *v;
	pthread_mutex_unlock(&lock);
	return n;
}

static int got(void)
{
	return (int)locked(&received);
}

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Node a's absence clock (ms), moved by the tests only. */
static int64_t fake_ms = 1000000;

static int64_t fake_now(void)
{
	return locked(&fake_ms);
}

static void advance(int64_t ms)
{
	pthread_mutex_lock(&lock);
	fake_ms += ms;
	pthread_mutex_unlock(&lock);
}

/* The subscribers' wall clock: the real one moved by wall_offset. */
static int64_t wall_offset;

static int64_t fake_wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + locked(&wall_offset);
}

static struct vg_cluster *start_full(const char *url, const char *node, int port,
				     int64_t lease_ms,
				     void (*peer)(void *, const struct vg_batch *),
				     int64_t (*now_ms)(void), const struct vg_key *key)
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
	o.now_ms = now_ms;
	o.stream_key = key;
	o.stream_window_ms = 60000;
	o.wall_ms = fake_wall;
	if (vg_cluster_start(&o, &c, err, sizeof(err)))
		fail_msg("cluster %s: %s", node, err);
	return c;
}

static struct vg_cluster *start_clock(const char *url, const char *node, int port,
				      int64_t lease_ms,
				      void (*peer)(void *, const struct vg_batch *),
				      int64_t (*now_ms)(void))
{
	return start_full(url, node, port, lease_ms, peer, now_ms, &cluster_key);
}

static struct vg_cluster *start(const char *url, const char *node, int port,
				int64_t lease_ms, void (*peer)(void *, const struct vg_batch *))
{
	return start_clock(url, node, port, lease_ms, peer, NULL);
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
	assert_int_equal(locked(&received_published), 0);
	/* a project's published measures stay published on the peer: its
	 * alarm engine must not take them as the agent's poll */
	for (i = 0; i < 200 && !locked(&received_published); i++) {
		struct vg_batch *bt = vg_batch_new("h1", 0, 0, 1795000020000LL);
		assert_non_null(bt);
		bt->published = 1;
		assert_int_equal(pub.batch(pub.ctx, bt), 0);
		vg_batch_free(bt);
		nap_ms(50);
	}
	assert_true(locked(&received_published) > 0);
	vg_cluster_stop(b);
	vg_cluster_stop(a);
}

/* ---- a peer the rounds miss keeps its subscription for a lease ---------------- */

#define LEASE 60000 /* a's lease: its absence clock is the test's */

/* Run one of c's registry rounds now; its stats after it. */
static void round_now(struct vg_cluster *c, struct vg_cluster_stats *st)
{
	uint64_t r0;
	int i;

	vg_cluster_get_stats(c, st);
	r0 = st->rounds;
	vg_cluster_poke(c);
	for (i = 0; i < 400; i++) {
		vg_cluster_get_stats(c, st);
		if (st->rounds > r0)
			return;
		nap_ms(25);
	}
	fail_msg("no registry round in 10 s");
}

/* b's registry row made stale, as after the database's restart before b
 * renews it (b's own next heartbeat is minutes away). 0 or -errno. */
static int stale_b(struct vg_db *db)
{
	const char *sql = "UPDATE vigie_cluster.nodes SET last_seen = now() - "
			  "interval '1 day' WHERE node = 'b'";

	/* the first call after the server's restart reconnects */
	return vg_db_exec(db, sql) ? vg_db_exec(db, sql) : 0;
}

/* An answered round of c that does not list b. */
static void round_without_b(struct vg_cluster *c, struct vg_db *db,
			    struct vg_cluster_stats *st)
{
	for (int i = 0; i < 40; i++) {
		if (!stale_b(db)) {
			round_now(c, st);
			if (st->db_ok && st->live_nodes == 1)
				return;
		}
		nap_ms(250);
	}
	fail_msg("no answered round without b");
}

/* b publishes batches until a receives one more than it had. */
static int a_receives_from(struct vg_consumer *pub)
{
	int n0 = got();

	for (int i = 0; i < 200; i++) {
		struct vg_batch *bt = vg_batch_new("h1", 7, (uint64_t)i + 1, 1795000020000LL);
		assert_non_null(bt);
		assert_int_equal(pub->batch(pub->ctx, bt), 0);
		vg_batch_free(bt);
		nap_ms(50);
		if (got() > n0)
			return 1;
	}
	return 0;
}

struct pair {
	struct vg_cluster *a, *b;
	struct vg_consumer pub; /* b's */
	struct vg_db *db;       /* the test's own connection */
};

/* b, then a (whose first round lists b: it subscribes), b's batches
 * reaching a. b's lease is long: it heartbeats at its start only. */
static void pair_start(struct pair *p)
{
	char url[700], err[512];
	uint32_t seed = 0;
	struct vg_cluster_stats st;
	int pa, pb;

	if (dbe_fresh(&DBE_PG, url, sizeof(url)) == 1)
		dbe_need(&DBE_PG);
	pa = vg_test_free_port(&seed, 3);
	pb = vg_test_free_port(&seed, 4);
	assert_true(pa > 0 && pb > 0 && pa != pb);
	p->b = start(url, "b", pb, 600000, NULL);
	p->a = start_clock(url, "a", pa, LEASE, on_peer_batch, fake_now);
	p->pub = vg_cluster_consumer(p->b);
	if (vg_db_open(url, NULL, &p->db, err, sizeof(err)))
		fail_msg("%s", err);
	vg_cluster_get_stats(p->a, &st);
	assert_int_equal(st.live_nodes, 2);
	assert_int_equal(st.stream_peers, 1);
	assert_true(a_receives_from(&p->pub));
}

static void pair_stop(struct pair *p)
{
	vg_db_close(p->db);
	vg_cluster_stop(p->b);
	vg_cluster_stop(p->a);
}

static void test_peer_missing_from_rounds_kept_for_a_lease(void **state)
{
	struct pair p = {0};
	struct vg_cluster_stats st;
	(void)state;

	pair_start(&p);
	/* a round misses b: a still hears b */
	round_without_b(p.a, p.db, &st);
	assert_int_equal(st.stream_peers, 1);
	assert_true(a_receives_from(&p.pub));
	/* more rounds miss it, short of a lease: still subscribed */
	advance(LEASE - 1);
	round_without_b(p.a, p.db, &st);
	assert_int_equal(st.stream_peers, 1);
	assert_int_equal(st.stream_hangups, 0);
	assert_true(a_receives_from(&p.pub));
	/* a whole lease of rounds without b: a hangs up */
	advance(1);
	round_without_b(p.a, p.db, &st);
	assert_int_equal(st.stream_peers, 0);
	assert_int_equal(st.stream_hangups, 1);
	/* b listed again: subscribed again */
	assert_int_equal(vg_db_exec(p.db, "UPDATE vigie_cluster.nodes SET "
					  "last_seen = now() WHERE node = 'b'"),
			 0);
	round_now(p.a, &st);
	assert_int_equal(st.live_nodes, 2);
	assert_int_equal(st.stream_peers, 1);
	assert_true(a_receives_from(&p.pub));
	pair_stop(&p);
}

static void test_failed_rounds_do_not_count_as_absence(void **state)
{
	struct pair p = {0};
	struct vg_cluster_stats st;
	uint64_t errors;
	(void)state;

	pair_start(&p);
	/* b missed, then the database goes away for two leases */
	round_without_b(p.a, p.db, &st);
	/* the server runs with synchronous_commit off: what the immediate
	 * stop would lose is made durable first */
	assert_int_equal(vg_db_exec(p.db, "CHECKPOINT"), 0);
	hpg_stop(&dbe_pg);
	round_now(p.a, &st);
	errors = st.round_errors;
	assert_true(errors > 0);
	assert_false(st.db_ok);
	advance(2 * LEASE);
	round_now(p.a, &st);
	assert_int_equal(st.stream_peers, 1);
	assert_true(a_receives_from(&p.pub)); /* the stream does not need it */
	assert_int_equal(hpg_start_again(&dbe_pg), 0);
	/* its first answered round lists a alone: b is kept, and heard */
	round_without_b(p.a, p.db, &st);
	assert_int_equal(st.stream_peers, 1);
	assert_int_equal(st.stream_hangups, 0);
	assert_true(a_receives_from(&p.pub));
	/* from there, a lease of answered rounds without b ends it */
	advance(LEASE);
	round_without_b(p.a, p.db, &st);
	assert_int_equal(st.stream_peers, 0);
	assert_int_equal(st.stream_hangups, 1);
	pair_stop(&p);
}

/* ---- the stream is signed ------------------------------------------------------- */

/* c publishes one batch of host. */
static void publish(struct vg_cluster *c, const char *host, uint64_t seq)
{
	struct vg_consumer pub = vg_cluster_consumer(c);
	struct vg_batch *bt = vg_batch_new(host, 7, seq, 1795000020000LL);

	assert_non_null(bt);
	assert_int_equal(pub.batch(pub.ctx, bt), 0);
	vg_batch_free(bt);
}

static uint64_t refused(struct vg_cluster *c, int why)
{
	struct vg_cluster_stats st;

	vg_cluster_get_stats(c, &st);
	return st.refused[why];
}

/* sender publishes (when non-NULL) or the attacker's socket x sends msg,
 * until a has refused one more message for why; 1 if it did. */
static int until_refused(struct vg_cluster *a, int why, struct vg_cluster *sender,
			 const char *host, int x, const void *msg, size_t len)
{
	uint64_t r0 = refused(a, why);

	for (int i = 0; i < 200; i++) {
		if (sender)
			publish(sender, host, (uint64_t)i + 1);
		else
			assert_true(nn_send(x, msg, len, 0) == (int)len);
		nap_ms(50);
		if (refused(a, why) > r0)
			return 1;
	}
	return 0;
}

static void test_stream_refuses_unsigned_forged_and_replayed(void **state)
{
	char url[700], err[512], addr[64], sql[300];
	uint32_t seed = 0;
	struct vg_cluster *a, *b, *w, *u;
	struct vg_cluster_stats sa;
	struct vg_db *db;
	int pa, pb, pw, pu, px, x, cap, i, n;
	void *captured = NULL;
	uint8_t *copy;
	size_t clen = 0;
	int64_t h0 = got(), h1; /* the earlier tests' */
	(void)state;

	if (dbe_fresh(&DBE_PG, url, sizeof(url)) == 1)
		dbe_need(&DBE_PG);
	pa = vg_test_free_port(&seed, 5);
	pb = vg_test_free_port(&seed, 6);
	pw = vg_test_free_port(&seed, 7);
	pu = vg_test_free_port(&seed, 8);
	px = vg_test_free_port(&seed, 9);
	assert_true(pa > 0 && pb > 0 && pw > 0 && pu > 0 && px > 0);
	b = start_full(url, "b", pb, 600000, NULL, NULL, &cluster_key);
	w = start_full(url, "w", pw, 600000, NULL, NULL, &wrong_key);
	u = start_full(url, "u", pu, 600000, NULL, NULL, NULL); /* unsigned */
	/* the attacker's stream, listed in the registry as node x */
	x = nn_socket(AF_SP, NN_PUB);
	assert_true(x >= 0);
	snprintf(addr, sizeof(addr), "tcp://127.0.0.1:%d", px);
	assert_true(nn_bind(x, addr) >= 0);
	if (vg_db_open(url, NULL, &db, err, sizeof(err)))
		fail_msg("%s", err);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO vigie_cluster.nodes(node, stream, api, started_at, "
		 "last_seen, instance) VALUES ('x', '%s', '', now(), now(), 'x')",
		 addr);
	assert_int_equal(vg_db_exec(db, sql), 0);
	a = start_full(url, "a", pa, 600000, on_peer_batch, NULL, &cluster_key);
	vg_cluster_get_stats(a, &sa);
	assert_int_equal(sa.stream_peers, 4);

	/* a hears b */
	for (i = 0; i < 200 && got() == h0; i++) {
		publish(b, "h1", (uint64_t)i + 1);
		nap_ms(50);
	}
	assert_true(got() > h0);
	/* a message of b's, captured on the wire */
	cap = nn_socket(AF_SP, NN_SUB);
	assert_true(cap >= 0);
	assert_int_equal(nn_setsockopt(cap, NN_SUB, NN_SUB_SUBSCRIBE, "", 0), 0);
	snprintf(addr, sizeof(addr), "tcp://127.0.0.1:%d", pb);
	assert_true(nn_connect(cap, addr) >= 0);
	for (i = 0; i < 200 && !captured; i++) {
		publish(b, "h1", 300 + (uint64_t)i);
		nap_ms(50);
		if ((n = nn_recv(cap, &captured, NN_MSG, NN_DONTWAIT)) > 0)
			clen = (size_t)n;
		else
			captured = NULL;
	}
	assert_non_null(captured);
	/* a takes a later one of b's (one pipe, in order): a is past the
	 * captured message's sequence */
	h1 = got();
	for (i = 0; i < 200 && got() == h1; i++) {
		publish(b, "h1", 600 + (uint64_t)i);
		nap_ms(50);
	}
	assert_true(got() > h1);
	do { /* what b sent meanwhile arrives */
		h1 = got();
		nap_ms(300);
	} while (got() != h1);
	vg_cluster_get_stats(a, &sa);
	assert_int_equal(sa.peer_batches, (uint64_t)(h1 - h0));

	/* replayed by x: refused */
	assert_true(until_refused(a, VG_CLUSTER_REFUSED_REPLAYED, NULL, NULL, x,
				  captured, clen));
	/* altered (a byte of the batch), by x: refused */
	copy = malloc(clen);
	assert_non_null(copy);
	memcpy(copy, captured, clen);
	copy[clen - VG_WIRE_MAC_LEN - 1] ^= 1;
	assert_true(until_refused(a, VG_CLUSTER_REFUSED_BAD_MAC, NULL, NULL, x, copy, clen));
	/* signed with another key, by w: refused */
	assert_true(until_refused(a, VG_CLUSTER_REFUSED_BAD_MAC, w, "hw", -1, NULL, 0));
	/* unsigned, by u: refused */
	assert_true(until_refused(a, VG_CLUSTER_REFUSED_UNSIGNED, u, "hu", -1, NULL, 0));
	/* replayed once a's clock has left the message's window (as after
	 * a's restart, which forgot b's sequence): refused as stale */
	pthread_mutex_lock(&lock);
	wall_offset = 60001;
	pthread_mutex_unlock(&lock);
	assert_true(until_refused(a, VG_CLUSTER_REFUSED_STALE, NULL, NULL, x, captured, clen));
	pthread_mutex_lock(&lock);
	wall_offset = 0;
	pthread_mutex_unlock(&lock);
	/* none reached a's alarm engine */
	assert_int_equal(got(), h1);
	assert_int_equal(locked(&received_other), 0);
	vg_cluster_get_stats(a, &sa);
	assert_int_equal(sa.peer_batches, (uint64_t)(h1 - h0));
	assert_int_equal(sa.peer_bad, 0);
	/* b's own batches still are */
	for (i = 0; i < 200 && got() == h1; i++) {
		publish(b, "h1", 1000 + (uint64_t)i);
		nap_ms(50);
	}
	assert_true(got() > h1);
	assert_int_equal(locked(&received_other), 0);
	assert_string_equal(vg_cluster_refusal_name(VG_CLUSTER_REFUSED_BAD_MAC),
			    "bad_signature");

	free(copy);
	nn_freemsg(captured);
	nn_close(cap);
	nn_close(x);
	vg_db_close(db);
	vg_cluster_stop(a);
	vg_cluster_stop(u);
	vg_cluster_stop(w);
	vg_cluster_stop(b);
}

/* ---- key rotation: SIGHUP's vg_cluster_set_keys --------------------------------- */

static const struct vg_key next_key = {32, "abcdefghijklmnopqrstuvwxyz012345"};

/* Batches of host h1 a node took from its peers, per node (ctx). */
static void count_peer_batch(void *ctx, const struct vg_batch *b)
{
	pthread_mutex_lock(&lock);
	if (b->host && !strcmp(b->host, "h1"))
		(*(int64_t *)ctx)++;
	pthread_mutex_unlock(&lock);
}

static struct vg_cluster *start_counted(const char *url, const char *node, int port,
					int64_t *count)
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
	o.lease_ms = 600000;
	o.peer_batch = count_peer_batch;
	o.ctx = count;
	o.stream_key = &cluster_key;
	o.stream_window_ms = 60000;
	if (vg_cluster_start(&o, &c, err, sizeof(err)))
		fail_msg("cluster %s: %s", node, err);
	return c;
}

/* from sends n batches; how many to's count grew by once it settles. */
static int64_t delivered(struct vg_cluster *from, int64_t *to_count, int n)
{
	int64_t before = locked(to_count), now;

	for (int i = 0; i < n; i++)
		publish(from, "h1", (uint64_t)i + 1);
	for (int i = 0; i < 100 && locked(to_count) - before < n; i++)
		nap_ms(50);
	do { /* and nothing more arrives */
		now = locked(to_count);
		nap_ms(200);
	} while (locked(to_count) != now);
	return now - before;
}

/* from publishes, one batch every 50 ms, until to's count grows (the
 * subscription's connect is asynchronous: what is published before it
 * completes is dropped), then until nothing more arrives; 1 if it grew. */
static int hears(struct vg_cluster *from, int64_t *to_count)
{
	int64_t before = locked(to_count), now;
	int grew = 0;

	for (int i = 0; i < 200 && !grew; i++) {
		publish(from, "h1", (uint64_t)i + 1);
		nap_ms(50);
		grew = locked(to_count) > before;
	}
	do {
		now = locked(to_count);
		nap_ms(200);
	} while (locked(to_count) != now);
	return grew;
}

/* A rolling rotation over two nodes, one node at a time in each of the
 * three steps (docs/operations.md "Rotating the stream key"): accept the
 * new key, sign with it (the old still accepted), drop the old. Every
 * batch either node sends between two reloads reaches the other, none is
 * refused; afterwards a node that still signs with the old key is
 * refused, and a reload without a key keeps the keys and is counted. */
static void test_key_rotation_loses_nothing(void **state)
{
	char url[700];
	uint32_t seed = 0;
	int64_t na = 0, nb = 0, nold = 0;
	struct vg_cluster *a, *b, *old, *u;
	struct vg_cluster_stats st;
	int pa, pb, po, pu;
	const struct {
		char node; /* which node reloads */
		const struct vg_key *sign, *accept;
	} steps[] = {
		{'a', &cluster_key, &next_key}, {'b', &cluster_key, &next_key}, /* 1 */
		{'a', &next_key, &cluster_key},
		{'b', &next_key, &cluster_key}, /* 2 */
		{'a', &next_key, NULL},
		{'b', &next_key, NULL}, /* 3 */
	};
	(void)state;

	if (dbe_fresh(&DBE_PG, url, sizeof(url)) == 1)
		dbe_need(&DBE_PG);
	pa = vg_test_free_port(&seed, 10);
	pb = vg_test_free_port(&seed, 11);
	po = vg_test_free_port(&seed, 12);
	pu = vg_test_free_port(&seed, 13);
	assert_true(pa > 0 && pb > 0 && po > 0 && pu > 0);
	a = start_counted(url, "a", pa, &na);
	b = start_counted(url, "b", pb, &nb);
	assert_int_equal(vg_cluster_round_wait(a), 0); /* a subscribes to b */
	/* both subscriptions connected before anything is counted exactly */
	assert_true(hears(a, &nb));
	assert_true(hears(b, &na));

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct vg_cluster *c = steps[i].node == 'a' ? a : b;
		assert_int_equal(vg_cluster_set_keys(c, steps[i].sign, steps[i].accept), 0);
		if (delivered(a, &nb, 20) != 20 || delivered(b, &na, 20) != 20)
			fail_msg("after reload %zu (node %c): batches lost", i + 1,
				 steps[i].node);
	}
	assert_int_equal(refused(a, VG_CLUSTER_REFUSED_BAD_MAC), 0);
	assert_int_equal(refused(b, VG_CLUSTER_REFUSED_BAD_MAC), 0);
	vg_cluster_get_stats(a, &st);
	assert_int_equal(st.keys_reloaded, 3);
	assert_int_equal(st.keys_kept, 0);

	/* the old key is no longer taken: a node still signing with it is
	 * refused by a, and takes nothing of a's */
	old = start_counted(url, "old", po, &nold);
	assert_int_equal(vg_cluster_round_wait(a), 0);
	assert_true(until_refused(a, VG_CLUSTER_REFUSED_BAD_MAC, old, "h1", -1, NULL, 0));
	assert_int_equal(delivered(a, &nold, 5), 0);
	assert_true(refused(old, VG_CLUSTER_REFUSED_BAD_MAC) > 0);

	/* a reload without a key (the composition root's failed file read
	 * calls vg_cluster_key_reload_failed): the keys stay, counted */
	assert_int_equal(vg_cluster_set_keys(a, NULL, NULL), -EINVAL);
	vg_cluster_key_reload_failed(a);
	vg_cluster_get_stats(a, &st);
	assert_int_equal(st.keys_reloaded, 3);
	assert_int_equal(st.keys_kept, 2);
	assert_int_equal(delivered(a, &nb, 5), 5);
	assert_int_equal(delivered(b, &na, 5), 5);
	/* an unsigned stream takes no key (it would cut itself off) */
	u = start_full(url, "u", pu, 600000, NULL, NULL, NULL);
	assert_int_equal(vg_cluster_set_keys(u, &next_key, NULL), -EINVAL);
	assert_int_equal(vg_cluster_keyed(u), 0);
	assert_int_equal(vg_cluster_keyed(a), 1);

	vg_cluster_stop(u);
	vg_cluster_stop(old);
	vg_cluster_stop(b);
	vg_cluster_stop(a);
}

/* ---- vg_cluster_round_wait ends after a whole round ----------------------------- */

static int64_t rounds_ended;

/* A slow round callback: it naps before counting the round as ended. */
static void slow_round(void *ctx, const char *const *live, size_t n, int ok)
{
	(void)ctx;
	(void)live;
	(void)n;
	(void)ok;
	nap_ms(300);
	pthread_mutex_lock(&lock);
	rounds_ended++;
	pthread_mutex_unlock(&lock);
}

static void test_round_wait_ends_after_the_round(void **state)
{
	struct vg_cluster_options o = {0};
	struct vg_cluster *c = NULL;
	char url[700], err[512];
	int64_t before;
	(void)state;

	if (dbe_fresh(&DBE_PG, url, sizeof(url)) == 1)
		dbe_need(&DBE_PG);
	o.url = url;
	o.node = "w";
	o.api = "127.0.0.1:1";
	o.instance = "w";
	o.lease_ms = 600000; /* no round of its own during the test */
	o.round = slow_round;
	if (vg_cluster_start(&o, &c, err, sizeof(err)))
		fail_msg("cluster: %s", err);
	before = locked(&rounds_ended); /* the start's round */
	assert_int_equal(before, 1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(vg_cluster_round_wait(c), 0);
		assert_true(locked(&rounds_ended) >= before + 1);
		before = locked(&rounds_ended);
	}
	assert_int_equal(vg_cluster_round_wait(NULL), 0);
	vg_cluster_stop(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_published_while_the_round_sees_it_alone),
		cmocka_unit_test(test_peer_missing_from_rounds_kept_for_a_lease),
		cmocka_unit_test(test_failed_rounds_do_not_count_as_absence),
		cmocka_unit_test(test_stream_refuses_unsigned_forged_and_replayed),
		cmocka_unit_test(test_round_wait_ends_after_the_round),
		cmocka_unit_test(test_key_rotation_loses_nothing),
	};
	int rc;

	if (dbe_group_setup(NULL))
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	dbe_group_teardown(NULL);
	return rc;
}
