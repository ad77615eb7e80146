/*
 * cluster.c — the node registry and the metric stream between collectors
 * that share one PostgreSQL state (vigie/cluster.h has the contract).
 *
 * Why a registry in the database: the collectors already share it, it has
 * one clock (now()) for everyone's last_seen, and it survives any
 * collector; a node is live while its row was refreshed within one lease.
 * No gossip, no membership protocol of our own.
 *
 * Why PUB/SUB of whole batches: an alarm's owner must see the samples it
 * needs wherever an agent sent them (an agent sticks to its own primary
 * collector). Sending every accepted batch to every peer costs (N - 1)
 * times the agents' traffic on the collectors' network, and lets every
 * engine keep every series' windows warm, so a takeover needs no history
 * from anyone (alarms/engine_own.c). A per-alarm routing would save
 * bandwidth but needs the owner map in the sender's hot path; the
 * nanomsg fan-out is one send per batch.
 *
 * Why a peer's subscription outlives a round that misses it: a round
 * is one view of the registry, and after the state database's restart
 * (or any stall longer than a lease) a node's first answered round may
 * list it alone, the others' heartbeats not renewed yet. Hanging up on
 * them then lost what they published until the next round dialled them
 * again, and an alarm whose breach sat only in those batches never saw
 * it. So a subscription ends only when answered rounds have lacked its
 * peer for a whole lease (the alarm leases' length: by then a live peer
 * has renewed its row three times), counted from the first answered
 * round that lacked it on this node's monotonic clock; a round that could
 * not read the registry restarts that count (the peer gets a whole lease
 * of answered rounds after the database is back). Dialling a peer that is
 * really gone costs a pipe that retries its connect until then.
 *
 * Why signed: the stream crosses the collectors' network, and whoever
 * reaches its port or sits on the path could read every project's
 * samples and feed a peer's alarm engine what it liked. Every message
 * carries an HMAC-SHA-256 under one key shared by the collectors
 * ([cluster] stream_key_file; vigie/sign.h computes and compares it with
 * libcrypto), over its sender's node id, sequence, start and send time
 * and the batch. Replays: a sender numbers its messages from its start
 * (wall ms, its incarnation), so per sender node (start, sequence) only
 * grows; a subscriber takes a message only after the last one it took
 * from that node, and only while its send time is within the window of
 * its own clock, which covers what the per-node state cannot (this node
 * restarted and forgot it, or forgot it after the window: anything it
 * covered is then older than the window). The rule needs a sender's
 * messages to leave in sequence order: the consumer runs on the receiver
 * thread only (vigie/dispatch.h; a project's published measures are
 * injected there too), so one thread numbers and sends them. Not
 * encrypted: nanomsg has no TLS, the samples are readable on the wire
 * (docs/security.md).
 *
 * Invariants: a peer batch goes to peer_batch only (never to the
 * dispatch: not stored, not metered, not republished); the stream socket
 * is subscribed to the peers listed by the answered rounds of the last
 * lease (reconciled at each round: a node that left stops being dialled a
 * lease later, one that moved its stream at once); every queue is
 * nanomsg's bounded buffer, and what it drops is counted.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sys/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>

#include "vigie/clock.h"
#include "vigie/cluster.h"
#include "vigie/db.h"
#include "vigie/hmap.h"
#include "vigie/log.h"
#include "vigie/wire.h"

#define MAGIC "VGS1"
/* a project's published measures (vg_batch.published, not on the agent
 * wire): the peer's alarm engine must not take them as an agent's poll */
#define MAGIC_PUB "VGP1"
/* signed (the stream key): sender's start and send time, then a MAC */
#define MAGIC_SIGNED "VGS2"
#define MAGIC_PUB_SIGNED "VGP2"
#define STREAM_BUF (4 << 20) /* bytes queued per pipe (each way) */

static const struct vg_db_step steps[] = {
	{.version = 1,
	 .sql = "CREATE TABLE IF NOT EXISTS nodes ("
		" node TEXT COLLATE \"C\" PRIMARY KEY, stream TEXT NOT NULL,"
		" api TEXT NOT NULL, started_at TIMESTAMPTZ NOT NULL,"
		" last_seen TIMESTAMPTZ NOT NULL);"},
	/* which process holds the name: two collectors configured with one
	 * [cluster] node name would both evaluate that node's alarms */
	{.version = 2,
	 .sql = "ALTER TABLE nodes ADD COLUMN IF NOT EXISTS instance TEXT NOT NULL"
		" DEFAULT '';"},
};

static const struct vg_db_schema cluster_schema = {
	.component = "cluster",
	.pg_schema = "vigie_cluster",
	.steps = steps,
	.nsteps = 2,
};

struct peer {
	char node[256];
	char stream[256];
	char api[256];
	int64_t ago_ms;
};

/* A peer's stream this node is subscribed to. */
struct sub {
	char node[256];
	char stream[256];
	int eid;           /* nn_connect endpoint */
	int absent;        /* the answered rounds since absent_ms lack it */
	int64_t absent_ms; /* the first of them (the absence clock) */
};

/* Subscriptions: the peers of one round (at most VG_CLUSTER_MAX_NODES)
 * plus room for as many kept through their lease; beyond, the longest
 * absent is hung up on first. */
#define MAX_SUBS (2 * VG_CLUSTER_MAX_NODES)

struct vg_cluster {
	struct vg_cluster_options o;
	char node[256], stream[256], api[256];
	char instance[128 + PATH_MAX + 2]; /* who holds the node name (options' instance) */
	struct vg_db *db;
	int pub, sub;
	pthread_t reg_thr, sub_thr;
	int reg_started, sub_started;
	pthread_mutex_t lock; /* peers, stats, stop */
	pthread_cond_t wake;
	pthread_cond_t served_cv; /* a round asked for by vg_cluster_round_wait ended */
	int stop, poked;
	uint64_t asked, served;                  /* round requests made; the last one a round ended */
	struct peer peers[VG_CLUSTER_MAX_NODES]; /* the last answered round's */
	size_t npeers;
	struct sub subs[MAX_SUBS];
	size_t nsubs;
	struct vg_cluster_stats st;
	uint64_t seq;
	struct vg_hmap last_seq; /* peer node -> struct taken * (sub thread only) */
	uint64_t log_round, log_bad, log_name, log_refused[VG_CLUSTER_REFUSED_N];
	int keyed;          /* key holds the stream key */
	struct vg_key key;  /* wiped at stop */
	int64_t window_ms;  /* a signed message's age accepted, either way */
	int64_t start_wall; /* this incarnation's start (wall ms), in signed messages */
};

/* The last message taken from a peer node. */
struct taken {
	uint64_t start, seq; /* its sender's start and sequence */
	int64_t sent_ms;     /* its send time */
};

static const char *const refusal_names[VG_CLUSTER_REFUSED_N] = {
	"unsigned",
	"bad_signature",
	"replayed",
	"stale",
	"no_key",
};

const char *vg_cluster_refusal_name(int r)
{
	return r >= 0 && r < VG_CLUSTER_REFUSED_N ? refusal_names[r] : "?";
}

static int64_t wall_clock(const struct vg_cluster *c)
{
	return c->o.wall_ms ? c->o.wall_ms() : vg_now_ms();
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

void vg_cluster_node_id(const char *listen, char *out, size_t outlen)
{
	char host[128] = "";

	if (gethostname(host, sizeof(host) - 1) || !host[0])
		snprintf(host, sizeof(host), "localhost");
	snprintf(out, outlen, "%s@%s", host, listen ? listen : "");
}

const char *vg_cluster_node(const struct vg_cluster *c)
{
	return c ? c->node : "";
}

/* What peers dial: the bound address with a wildcard host replaced by
 * this host's name. */
static void advertised(const char *bound, char *out, size_t outlen)
{
	const char *p = strstr(bound, "://");
	char host[128] = "";

	if (p && (!strncmp(p + 3, "*:", 2) || !strncmp(p + 3, "0.0.0.0:", 8))) {
		if (gethostname(host, sizeof(host) - 1) || !host[0])
			snprintf(host, sizeof(host), "localhost");
		snprintf(out, outlen, "%.*s%s%s", (int)(p + 3 - bound), bound, host,
			 strchr(p + 3, ':'));
	} else {
		snprintf(out, outlen, "%s", bound);
	}
}

/* ---- registry rounds ---------------------------------------------------------- */

/* This node's row, renewed. The name is this instance's while it renews
 * it (a restart on the same data directory is the same instance, so it
 * takes its row back at once): another instance (a second collector given
 * the same [cluster] node) holding a row seen within the lease keeps it,
 * and this node answers -EEXIST (it evaluates no alarm: two holders of
 * one name would both act on its leases) until that row expires. */
static int heartbeat(struct vg_cluster *c)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = vg_db_prepare(c->db, "INSERT INTO nodes(node, stream, api, "
				       "started_at, last_seen, instance) VALUES (?1, ?2, ?3, "
				       "now(), now(), ?4) "
				       "ON CONFLICT (node) DO UPDATE SET stream = excluded.stream, "
				       "api = excluded.api, last_seen = now(), "
				       "instance = excluded.instance, started_at = CASE WHEN "
				       "nodes.instance = excluded.instance THEN nodes.started_at "
				       "ELSE now() END WHERE nodes.instance IN ('', "
				       "excluded.instance) OR nodes.last_seen <= now() - "
				       "CAST(?5 AS BIGINT) * interval '1 millisecond'",
				&st)))
		return rc;
	vg_db_bind_text(st, 1, c->node);
	vg_db_bind_text(st, 2, c->stream);
	vg_db_bind_text(st, 3, c->api);
	vg_db_bind_text(st, 4, c->instance);
	vg_db_bind_int64(st, 5, c->o.lease_ms);
	rc = vg_db_step(st);
	vg_db_reset(st);
	if (rc < 0)
		return rc;
	return vg_db_changes(c->db) > 0 ? 0 : -EEXIST;
}

/* Who holds this node's name (for the log line of a refused heartbeat). */
static void holder(struct vg_cluster *c, char *out, size_t outlen)
{
	struct vg_db_stmt *st;

	snprintf(out, outlen, "?");
	if (vg_db_prepare(c->db, "SELECT api, stream, CAST(EXTRACT(EPOCH FROM now() - "
				 "last_seen) * 1000 AS BIGINT) FROM nodes WHERE node = ?1",
			  &st))
		return;
	vg_db_bind_text(st, 1, c->node);
	if (vg_db_step(st) == 1)
		snprintf(out, outlen, "api %s, stream %s, last heartbeat %lld ms ago",
			 vg_db_column_text(st, 0) ?: "", vg_db_column_text(st, 1) ?: "",
			 (long long)vg_db_column_int64(st, 2));
	vg_db_reset(st);
}

/* The live nodes, into peers (this node included). */
static int live_nodes(struct vg_cluster *c, struct peer *out, size_t *n)
{
	struct vg_db_stmt *st;
	int rc;

	*n = 0;
	if ((rc = vg_db_prepare(c->db, "SELECT node, stream, api, CAST(EXTRACT("
				       "EPOCH FROM now() - last_seen) * 1000 AS BIGINT) FROM "
				       "nodes WHERE last_seen > now() - CAST(?1 AS BIGINT) * "
				       "interval '1 millisecond' ORDER BY node",
				&st)))
		return rc;
	vg_db_bind_int64(st, 1, c->o.lease_ms);
	while ((rc = vg_db_step(st)) == 1 && *n < VG_CLUSTER_MAX_NODES) {
		struct peer *p = &out[*n];
		memset(p, 0, sizeof(*p));
		snprintf(p->node, sizeof(p->node), "%s", vg_db_column_text(st, 0) ?: "");
		snprintf(p->stream, sizeof(p->stream), "%s", vg_db_column_text(st, 1) ?: "");
		snprintf(p->api, sizeof(p->api), "%s", vg_db_column_text(st, 2) ?: "");
		p->ago_ms = vg_db_column_int64(st, 3);
		(*n)++;
	}
	vg_db_reset(st);
	return rc < 0 ? rc : 0;
}

static int64_t absence_clock(const struct vg_cluster *c)
{
	return c->o.now_ms ? c->o.now_ms() : vg_monotonic_ms();
}

static void hang_up(struct vg_cluster *c, size_t i, const char *why)
{
	struct sub *s = &c->subs[i];

	nn_shutdown(c->sub, s->eid);
	vg_info("cluster: unsubscribed from %s's metric stream %s (%s)", s->node,
		s->stream, why);
	c->st.stream_hangups++;
	c->subs[i] = c->subs[--c->nsubs];
}

static void subscribe(struct vg_cluster *c, const struct peer *p)
{
	struct sub *s;
	int eid;

	if (c->nsubs == MAX_SUBS) { /* the longest absent goes first */
		size_t victim = MAX_SUBS;
		for (size_t i = 0; i < c->nsubs; i++)
			if (c->subs[i].absent &&
			    (victim == MAX_SUBS ||
			     c->subs[i].absent_ms < c->subs[victim].absent_ms))
				victim = i;
		if (victim == MAX_SUBS)
			return; /* cannot happen: a round lists at most MAX_SUBS / 2 */
		hang_up(c, victim, "room for a listed peer");
	}
	if ((eid = nn_connect(c->sub, p->stream)) < 0) {
		vg_log_limited(VG_LOG_WARN, &c->log_round,
			       "cluster: cannot subscribe to %s's stream %s: %s", p->node,
			       p->stream, nn_strerror(nn_errno()));
		return; /* the next round tries again */
	}
	s = &c->subs[c->nsubs++];
	memset(s, 0, sizeof(*s));
	/* both 256-byte fields: the precision says so to the compiler */
	snprintf(s->node, sizeof(s->node), "%.*s", (int)sizeof(s->node) - 1, p->node);
	snprintf(s->stream, sizeof(s->stream), "%.*s", (int)sizeof(s->stream) - 1, p->stream);
	s->eid = eid;
	vg_info("cluster: subscribed to %s's metric stream %s", p->node, p->stream);
}

/* An answered round listed the nodes now[0..n): dial the listed peers'
 * streams, start or go on counting the absence of the others, hang up on
 * those absent for a whole lease and on a stream its node no longer
 * advertises. Under c->lock. */
static void reconcile(struct vg_cluster *c, const struct peer *now, size_t n)
{
	int64_t t = absence_clock(c);

	for (size_t i = 0; i < c->nsubs;) {
		struct sub *s = &c->subs[i];
		size_t k;
		for (k = 0; k < n; k++)
			if (!strcmp(now[k].node, s->node))
				break;
		if (k < n && !strcmp(now[k].stream, s->stream)) {
			s->absent = 0;
		} else if (k < n) {
			hang_up(c, i, "its node advertises another stream");
			continue;
		} else if (!s->absent) {
			s->absent = 1;
			s->absent_ms = t;
		} else if (t - s->absent_ms >= c->o.lease_ms) {
			hang_up(c, i, "no registry round listed it for a lease");
			continue;
		}
		i++;
	}
	for (size_t k = 0; c->sub >= 0 && k < n; k++) {
		const struct peer *p = &now[k];
		size_t i;
		if (!p->stream[0] || !strcmp(p->node, c->node))
			continue;
		for (i = 0; i < c->nsubs; i++)
			if (!strcmp(c->subs[i].node, p->node))
				break;
		if (i == c->nsubs)
			subscribe(c, p);
	}
	memcpy(c->peers, now, n * sizeof(*now));
	c->npeers = n;
	c->st.stream_peers = c->nsubs;
}

/* A round that could not read the registry: it says nothing of the
 * peers, and the outage does not count as their absence. Under c->lock. */
static void keep_peers(struct vg_cluster *c)
{
	for (size_t i = 0; i < c->nsubs; i++)
		c->subs[i].absent = 0;
}

static void round_once(struct vg_cluster *c)
{
	struct peer now[VG_CLUSTER_MAX_NODES];
	const char *ids[VG_CLUSTER_MAX_NODES];
	size_t n = 0;
	int rc;

	rc = heartbeat(c);
	if (!rc)
		rc = live_nodes(c, now, &n);
	pthread_mutex_lock(&c->lock);
	c->st.rounds++;
	c->st.db_ok = !rc || rc == -EEXIST;
	c->st.name_held_elsewhere = rc == -EEXIST;
	if (rc == -EEXIST)
		c->st.name_conflicts++;
	if (rc) {
		c->st.round_errors += rc != -EEXIST;
		keep_peers(c);
	} else {
		reconcile(c, now, n);
		c->st.live_nodes = n;
	}
	pthread_mutex_unlock(&c->lock);
	if (rc == -EEXIST) {
		char who[800];
		holder(c, who, sizeof(who));
		vg_log_limited(VG_LOG_ERROR, &c->log_name,
			       "cluster: node name %s is held by another collector "
			       "(%s): this node evaluates no alarm until that one "
			       "stops renewing it for %lld ms; give each collector "
			       "its own [cluster] node",
			       c->node, who, (long long)c->o.lease_ms);
	} else if (rc)
		vg_log_limited(VG_LOG_ERROR, &c->log_round,
			       "cluster: the state database cannot be reached "
			       "(%s): this node evaluates no alarm until it can",
			       vg_db_errmsg(c->db));
	for (size_t i = 0; i < n; i++)
		ids[i] = now[i].node;
	if (c->o.round)
		c->o.round(c->o.ctx, ids, rc ? 0 : n, !rc);
}

static void *reg_main(void *arg)
{
	struct vg_cluster *c = arg;
	int64_t every = c->o.lease_ms / 3 > 50 ? c->o.lease_ms / 3 : 50;

	for (;;) {
		struct timespec ts;
		pthread_mutex_lock(&c->lock);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += every / 1000;
		ts.tv_nsec += (every % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		while (!c->stop && !c->poked &&
		       pthread_cond_timedwait(&c->wake, &c->lock, &ts) != ETIMEDOUT)
			;
		c->poked = 0;
		if (c->stop) {
			pthread_mutex_unlock(&c->lock);
			return NULL;
		}
		/* every request made before this round starts is answered by it */
		uint64_t ticket = c->asked;
		pthread_mutex_unlock(&c->lock);
		round_once(c);
		pthread_mutex_lock(&c->lock);
		c->served = ticket;
		pthread_cond_broadcast(&c->served_cv);
		pthread_mutex_unlock(&c->lock);
	}
}

/* ---- the stream ----------------------------------------------------------------- */

static int consumer_batch(void *ctx, const struct vg_batch *b)
{
	struct vg_cluster *c = ctx;
	uint8_t *wire = NULL, *msg;
	size_t len = 0, nl = strlen(c->node), hl;
	uint64_t seq;

	if (c->pub < 0)
		return 0;
	/* nobody to send to: no peer has a pipe to this node's stream. Not
	 * the last round's live count: after the state database's restart a
	 * round may see this node alone (the others' heartbeats not yet
	 * renewed) while they are still subscribed, and the batches its
	 * agents flush then were never sent: the alarms' owners took those
	 * minutes for missing data */
	if (!nn_get_statistic(c->pub, NN_STAT_CURRENT_CONNECTIONS))
		return 0;
	if (vg_wire_encode(b, &wire, &len)) {
		pthread_mutex_lock(&c->lock);
		c->st.stream_dropped++;
		pthread_mutex_unlock(&c->lock);
		return 0; /* never refuse a batch for the stream's sake */
	}
	if (nl > 255)
		nl = 255;
	hl = 4 + 1 + nl + 8 + (c->keyed ? 16 : 0);
	if (!(msg = nn_allocmsg(hl + len + (c->keyed ? VG_WIRE_MAC_LEN : 0), 0))) {
		free(wire);
		return 0;
	}
	pthread_mutex_lock(&c->lock);
	seq = ++c->seq;
	pthread_mutex_unlock(&c->lock);
	if (c->keyed)
		memcpy(msg, b->published ? MAGIC_PUB_SIGNED : MAGIC_SIGNED, 4);
	else
		memcpy(msg, b->published ? MAGIC_PUB : MAGIC, 4);
	msg[4] = (uint8_t)nl;
	memcpy(msg + 5, c->node, nl);
	put_u64(msg + 5 + nl, seq);
	if (c->keyed) {
		put_u64(msg + 13 + nl, (uint64_t)c->start_wall);
		put_u64(msg + 21 + nl, (uint64_t)wall_clock(c));
	}
	memcpy(msg + hl, wire, len);
	free(wire);
	if (c->keyed && vg_sign_hmac(&c->key, msg, hl + len, msg + hl + len)) {
		nn_freemsg(msg);
		pthread_mutex_lock(&c->lock);
		c->st.stream_dropped++;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	void *m = msg;
	if (nn_send(c->pub, &m, NN_MSG, NN_DONTWAIT) < 0) {
		nn_freemsg(msg);
		pthread_mutex_lock(&c->lock);
		c->st.stream_dropped++;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	pthread_mutex_lock(&c->lock);
	c->st.published++;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

struct vg_consumer vg_cluster_consumer(struct vg_cluster *c)
{
	struct vg_consumer k = {"cluster", c, consumer_batch, NULL};

	return k;
}

static void refuse(struct vg_cluster *c, int why, const char *node)
{
	pthread_mutex_lock(&c->lock);
	c->st.refused[why]++;
	pthread_mutex_unlock(&c->lock);
	vg_log_limited(VG_LOG_WARN, &c->log_refused[why],
		       "cluster: a stream message (node %s) refused: %s%s; dropped "
		       "(vigie_cluster_stream_refused_total)",
		       node, refusal_names[why],
		       why == VG_CLUSTER_REFUSED_UNSIGNED || why == VG_CLUSTER_REFUSED_NO_KEY ||
				       why == VG_CLUSTER_REFUSED_BAD_MAC
			       ? " (every collector needs the same [cluster] stream_key_file)"
			       : "");
}

/* Whether a signed message from node, sent at sent_ms by its incarnation
 * start with sequence seq, comes after the last one taken from it (and
 * is within the window): -1 to take it, else the refusal. *gap: the
 * sequence numbers skipped since the last one taken. */
static int fresh(struct vg_cluster *c, const char *node, uint64_t start,
		 uint64_t seq, int64_t sent_ms, uint64_t *gap)
{
	int64_t now = wall_clock(c);
	struct taken *t = vg_hmap_gets(&c->last_seq, node);

	*gap = 0;
	if (sent_ms < now - c->window_ms || sent_ms > now + c->window_ms)
		return VG_CLUSTER_REFUSED_STALE;
	/* forgotten once older than the window: whatever it covered is
	 * refused as stale now (a sender whose clock went back across its
	 * restart is taken again then, not never) */
	if (t && t->sent_ms < now - c->window_ms)
		t->start = t->seq = 0;
	if (t && (start < t->start || (start == t->start && seq <= t->seq)))
		return VG_CLUSTER_REFUSED_REPLAYED;
	if (t && start == t->start && t->seq && seq > t->seq + 1)
		*gap = seq - t->seq - 1;
	if (!t) {
		if (!(t = calloc(1, sizeof(*t))))
			return -1;
		if (vg_hmap_puts(&c->last_seq, node, t)) {
			free(t);
			return -1;
		}
	}
	t->start = start;
	t->seq = seq;
	t->sent_ms = sent_ms;
	return -1;
}

static void on_message(struct vg_cluster *c, const uint8_t *m, size_t len)
{
	char node[256];
	size_t nl, hl;
	uint64_t seq = 0, gap = 0;
	struct taken *last;
	struct vg_batch *b = NULL;
	int rc, signed_msg, why;

	if (len < 13 || (nl = m[4], len < 13 + nl)) {
		rc = -EBADMSG;
		goto bad;
	}
	memcpy(node, m + 5, nl);
	node[nl] = '\0';
	for (size_t i = 0; i < nl; i++) /* logged before it is verified */
		if ((unsigned char)node[i] < 0x20 || node[i] == 0x7f)
			node[i] = '?';
	signed_msg = !memcmp(m, MAGIC_SIGNED, 4) || !memcmp(m, MAGIC_PUB_SIGNED, 4);
	if (!signed_msg && memcmp(m, MAGIC, 4) && memcmp(m, MAGIC_PUB, 4)) {
		rc = -EBADMSG;
		goto bad;
	}
	if (signed_msg != c->keyed) {
		refuse(c, c->keyed ? VG_CLUSTER_REFUSED_UNSIGNED : VG_CLUSTER_REFUSED_NO_KEY,
		       node);
		return;
	}
	seq = get_u64(m + 5 + nl);
	hl = 13 + nl;
	if (signed_msg) {
		hl += 16;
		if (len < hl + VG_WIRE_MAC_LEN) {
			rc = -EBADMSG;
			goto bad;
		}
		len -= VG_WIRE_MAC_LEN;
		if (vg_sign_hmac_check(&c->key, m, len, m + len)) {
			refuse(c, VG_CLUSTER_REFUSED_BAD_MAC, node);
			return;
		}
		why = fresh(c, node, get_u64(m + 13 + nl), seq,
			    (int64_t)get_u64(m + 21 + nl), &gap);
		if (why >= 0) {
			refuse(c, why, node);
			return;
		}
	}
	if ((rc = vg_wire_decode(m + hl, len - hl, &b)))
		goto bad;
	b->published = !memcmp(m, MAGIC_PUB, 4) || !memcmp(m, MAGIC_PUB_SIGNED, 4);
	/* sequence gaps: what a full pipe dropped on the way */
	if (signed_msg) {
		/* fresh() counted them */
	} else if ((last = vg_hmap_gets(&c->last_seq, node))) {
		if (seq > last->seq + 1)
			gap = seq - last->seq - 1;
		last->seq = seq;
	} else if ((last = calloc(1, sizeof(*last)))) {
		last->seq = seq;
		if (vg_hmap_puts(&c->last_seq, node, last))
			free(last);
	}
	pthread_mutex_lock(&c->lock);
	c->st.stream_gaps += gap;
	c->st.peer_batches++;
	pthread_mutex_unlock(&c->lock);
	if (c->o.peer_batch)
		c->o.peer_batch(c->o.ctx, b);
	vg_batch_free(b);
	return;
bad:
	pthread_mutex_lock(&c->lock);
	c->st.peer_bad++;
	pthread_mutex_unlock(&c->lock);
	vg_log_limited(VG_LOG_WARN, &c->log_bad,
		       "cluster: a peer's stream message is unreadable (%s); "
		       "dropped",
		       vg_wire_strerror(rc));
}

static void *sub_main(void *arg)
{
	struct vg_cluster *c = arg;

	for (;;) {
		void *buf = NULL;
		int n, stop;

		pthread_mutex_lock(&c->lock);
		stop = c->stop;
		pthread_mutex_unlock(&c->lock);
		if (stop)
			return NULL;
		n = nn_recv(c->sub, &buf, NN_MSG, 0);
		if (n < 0)
			continue; /* the receive timeout, or a stop */
		on_message(c, buf, (size_t)n);
		nn_freemsg(buf);
	}
}

/* ---- lifecycle ------------------------------------------------------------------ */

int vg_cluster_start(const struct vg_cluster_options *o, struct vg_cluster **out,
		     char *err, size_t errlen)
{
	struct vg_cluster *c;
	int rc, tmo = 250, buf = STREAM_BUF, linger = 0;

	*out = NULL;
	if (!(c = calloc(1, sizeof(*c)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->o = *o;
	if (c->o.lease_ms <= 0)
		c->o.lease_ms = 10000;
	c->pub = c->sub = -1;
	pthread_mutex_init(&c->lock, NULL);
	vg_cond_init_monotonic(&c->wake);
	vg_cond_init_monotonic(&c->served_cv);
	vg_hmap_init(&c->last_seq);
	if (o->stream_key) {
		c->key = *o->stream_key;
		c->keyed = 1;
	}
	c->o.stream_key = NULL; /* the copy is c->key */
	c->window_ms = o->stream_window_ms > 0 ? o->stream_window_ms : 60000;
	c->start_wall = wall_clock(c);
	if (o->node && *o->node)
		snprintf(c->node, sizeof(c->node), "%s", o->node);
	else
		vg_cluster_node_id(o->listen, c->node, sizeof(c->node));
	snprintf(c->api, sizeof(c->api), "%s", o->api ? o->api : "");
	if (o->instance && *o->instance) {
		snprintf(c->instance, sizeof(c->instance), "%s", o->instance);
	} else {
		unsigned char r[8];
		if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
			rc = -errno;
			snprintf(err, errlen, "cluster: getrandom: %s", strerror(errno));
			goto fail;
		}
		snprintf(c->instance, sizeof(c->instance),
			 "%d-%02x%02x%02x%02x%02x%02x%02x%02x", (int)getpid(), r[0], r[1],
			 r[2], r[3], r[4], r[5], r[6], r[7]);
	}
	if ((rc = vg_db_open(o->url, &cluster_schema, &c->db, err, errlen)))
		goto fail;
	if (vg_db_engine(c->db) != VG_DB_POSTGRESQL) {
		snprintf(err, errlen, "cluster: [cluster] needs a PostgreSQL [state] url");
		rc = -ENOTSUP;
		goto fail;
	}
	if (o->stream && *o->stream) {
		advertised(o->stream, c->stream, sizeof(c->stream));
		if ((c->pub = nn_socket(AF_SP, NN_PUB)) < 0 ||
		    (c->sub = nn_socket(AF_SP, NN_SUB)) < 0) {
			rc = -nn_errno();
			snprintf(err, errlen, "cluster: nn_socket: %s", nn_strerror(-rc));
			goto fail;
		}
		nn_setsockopt(c->pub, NN_SOL_SOCKET, NN_SNDBUF, &buf, sizeof(buf));
		nn_setsockopt(c->pub, NN_SOL_SOCKET, NN_LINGER, &linger, sizeof(linger));
		nn_setsockopt(c->sub, NN_SOL_SOCKET, NN_RCVBUF, &buf, sizeof(buf));
		nn_setsockopt(c->sub, NN_SOL_SOCKET, NN_RCVTIMEO, &tmo, sizeof(tmo));
		{
			int max = -1; /* batches are bounded by the wire format */
			nn_setsockopt(c->sub, NN_SOL_SOCKET, NN_RCVMAXSIZE, &max, sizeof(max));
		}
		nn_setsockopt(c->sub, NN_SUB, NN_SUB_SUBSCRIBE, "", 0);
		if (nn_bind(c->pub, o->stream) < 0) {
			rc = -nn_errno();
			snprintf(err, errlen, "cluster: [cluster] stream %s: %s",
				 o->stream, nn_strerror(-rc));
			goto fail;
		}
	}
	round_once(c); /* before the receiver takes its first batch */
	if ((rc = -pthread_create(&c->reg_thr, NULL, reg_main, c)))
		goto fail_thr;
	c->reg_started = 1;
	if (c->sub >= 0) {
		if ((rc = -pthread_create(&c->sub_thr, NULL, sub_main, c)))
			goto fail_thr;
		c->sub_started = 1;
	}
	vg_info("cluster: node %s, lease %lld ms, metric stream %s%s", c->node,
		(long long)c->o.lease_ms, c->stream[0] ? c->stream : "off",
		!c->stream[0] ? ""
		: c->keyed    ? " (signed)"
			      : " (UNSIGNED: [cluster] stream_insecure)");
	*out = c;
	return 0;
fail_thr:
	snprintf(err, errlen, "cluster: cannot start a thread: %s", strerror(-rc));
fail:
	vg_cluster_stop(c);
	return rc;
}

void vg_cluster_stop(struct vg_cluster *c)
{
	size_t pos = 0;
	const struct vg_hmap_entry *s;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = 1;
	pthread_cond_broadcast(&c->wake);
	pthread_cond_broadcast(&c->served_cv);
	pthread_mutex_unlock(&c->lock);
	if (c->reg_started)
		pthread_join(c->reg_thr, NULL);
	if (c->sub_started)
		pthread_join(c->sub_thr, NULL);
	if (c->db && c->reg_started) {
		/* a clean stop: peers see this node gone at their next round */
		struct vg_db_stmt *st;
		if (!vg_db_prepare(c->db, "UPDATE nodes SET last_seen = now() - "
					  "interval '1 day' WHERE node = ?1 AND instance = ?2",
				   &st)) {
			vg_db_bind_text(st, 1, c->node);
			vg_db_bind_text(st, 2, c->instance);
			vg_db_step(st);
			vg_db_reset(st);
		}
	}
	if (c->pub >= 0)
		nn_close(c->pub);
	if (c->sub >= 0)
		nn_close(c->sub);
	while ((s = vg_hmap_next(&c->last_seq, &pos)))
		free(s->value);
	vg_hmap_release(&c->last_seq);
	vg_sign_key_wipe(&c->key);
	vg_db_close(c->db);
	pthread_cond_destroy(&c->wake);
	pthread_cond_destroy(&c->served_cv);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void vg_cluster_poke(struct vg_cluster *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->poked = 1;
	pthread_cond_broadcast(&c->wake);
	pthread_mutex_unlock(&c->lock);
}

int vg_cluster_round_wait(struct vg_cluster *c)
{
	struct timespec ts;
	uint64_t ticket;
	int rc = 0;

	if (!c)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += c->o.lease_ms / 1000;
	ts.tv_nsec += (c->o.lease_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&c->lock);
	ticket = ++c->asked;
	c->poked = 1;
	pthread_cond_broadcast(&c->wake);
	while (!c->stop && c->served < ticket && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&c->served_cv, &c->lock, &ts);
	rc = c->served >= ticket ? 0 : c->stop ? -ESHUTDOWN
					       : -ETIMEDOUT;
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void vg_cluster_get_stats(struct vg_cluster *c, struct vg_cluster_stats *out)
{
	pthread_mutex_lock(&c->lock);
	*out = c->st;
	pthread_mutex_unlock(&c->lock);
}

json_t *vg_cluster_peers_json(struct vg_cluster *c)
{
	json_t *a = json_array();

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; a && i < c->npeers; i++) {
		struct peer *p = &c->peers[i];
		json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:I,s:b}", "node", p->node,
						   "stream", p->stream, "api", p->api,
						   "last_seen_ms_ago", (json_int_t)p->ago_ms,
						   "self", !strcmp(p->node, c->node)));
	}
	pthread_mutex_unlock(&c->lock);
	return a;
}
