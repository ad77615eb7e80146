/*
 * vigie — several collectors on one shared state (collector/cluster.c):
 * the node registry and the metric stream between collectors.
 *
 * Node registry: each collector has a node id ([cluster] node, or
 * "<host name>@<[collector] listen>": stable across restarts) and, every
 * third of [cluster] lease, upserts its row (node, stream endpoint, API
 * address, last_seen = now() by the database's clock) in the table nodes
 * of the PostgreSQL schema vigie_cluster, then reads the nodes seen within
 * one lease: the live nodes. The round callback gets them (the
 * composition root runs the alarm leases, vigie/alarm_lease.h, on them).
 *
 * Metric stream: every batch this collector accepts (validated, not a
 * duplicate: the dispatch consumer runs after the registry and the store)
 * is published on a nanomsg PUB socket bound to [cluster] stream; the
 * collector SUBscribes to the stream of every live peer and hands each
 * peer batch to the peer_batch callback (the alarm engine only: a peer's
 * batch is stored, metered and registered by the collector that received
 * it, never again). Peer batches are never republished, so a batch crosses
 * one hop. Queues are nanomsg's, bounded (NN_SNDBUF / NN_RCVBUF): a PUB
 * pipe that is full drops the message for that subscriber; each message
 * carries the sender's node id and sequence number, so a subscriber counts
 * what it missed (stream_gaps) and a sender counts what it could not queue
 * (stream_dropped).
 *
 * A subscription outlives the rounds that miss its peer for one lease
 * (lease_ms, counted from the first answered round that lacked it; a
 * round that could not reach the database restarts the count): after the
 * database's restart a round may list this node alone, and hanging up on
 * the others then would lose what they publish meanwhile. A peer whose
 * node advertises another stream is hung up on at once.
 *
 * Signed messages (with a stream key, the default; docs/protocol.md
 * "The collectors' metric stream"): "VGS2" ("VGP2" for a project's
 * published measures), u8 node length, node, u64 sequence, u64 the
 * sender's start (wall ms: its incarnation), i64 the send time (wall ms),
 * all little-endian, then the batch in the agents' wire format
 * (vigie/wire.h), then HMAC-SHA-256(stream key, every preceding byte)
 * (vigie/sign.h). A subscriber takes a message only if its MAC matches,
 * its send time is within stream_window_ms of the subscriber's clock, and
 * its (start, sequence) is after the last one taken from that node (a
 * node's state is forgotten once its last taken message is older than the
 * window, which then refuses any replay of it): a captured message replayed,
 * altered or forged without the key is refused and counted by reason
 * (vg_cluster_refusal_name), never handed to peer_batch.
 *
 * Unsigned messages (no key: [cluster] stream_insecure = yes): "VGS1" /
 * "VGP1", u8 node length, node, u64 sequence, then the batch. A node
 * with a key refuses them ("unsigned"); a node without refuses signed
 * ones ("no key"): a cluster is all signed or all not.
 *
 * Only with a PostgreSQL [state] url: on sqlite there is one node and
 * nothing here runs.
 *
 * Threading: vg_cluster_start starts two threads (registry rounds; stream
 * receiver); callbacks run on them. The consumer runs on the receiver
 * thread. vg_cluster_get_stats and vg_cluster_peers_json are thread-safe.
 */
#ifndef VIGIE_CLUSTER_H
#define VIGIE_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "vigie/batch.h"
#include "vigie/dispatch.h"
#include "vigie/sign.h"

#define VG_CLUSTER_MAX_NODES 64

struct vg_cluster;

struct vg_cluster_options {
	const char *url;    /* the PostgreSQL state database (vigie/db.h) */
	const char *node;   /* node id; NULL/"" = derived from listen */
	const char *listen; /* [collector] listen, for the derived id */
	const char *stream; /* PUB address to bind; "" = no stream */
	/* the stream's HMAC key (copied): messages sent are signed with it and
	 * only messages signed with it are taken; NULL = unsigned both ways */
	const struct vg_key *stream_key;
	/* a second key (copied) whose messages are taken too, never signed
	 * with: a rotation's old or new key. NULL or len 0 = none; ignored
	 * without stream_key */
	const struct vg_key *stream_accept_key;
	int64_t stream_window_ms; /* a signed message's age accepted (<= 0: 60 s) */
	const char *api;          /* HTTP API address, advertised */
	/* who holds the node name: the same for this collector restarted
	 * (the composition root gives "<host name>:<data_dir>", which one
	 * process at a time owns through its journal's lock), different for
	 * another collector given the same name; NULL/"" = random */
	const char *instance;
	int64_t lease_ms; /* liveness window; rounds every lease_ms / 3 */
	/* after each registry round: the live nodes' ids (this node among
	 * them), or ok = 0 when the database could not be reached */
	void (*round)(void *ctx, const char *const *live, size_t n, int ok);
	/* a batch from a peer's stream (decoded, valid) */
	void (*peer_batch)(void *ctx, const struct vg_batch *b);
	void *ctx;
	/* the clock a peer's absence from the rounds is measured on (ms,
	 * monotonic); NULL = vg_monotonic_ms. Tests inject their own */
	int64_t (*now_ms)(void);
	/* the wall clock (ms) send times are written and checked with; NULL =
	 * vg_now_ms. Tests inject their own */
	int64_t (*wall_ms)(void);
};

/* The derived node id "<host name>@<listen>" into out. */
void vg_cluster_node_id(const char *listen, char *out, size_t outlen);

/* Open the registry, bind the stream, start the threads (the first round
 * runs before this returns). 0 or -errno with a message in err. */
int vg_cluster_start(const struct vg_cluster_options *o, struct vg_cluster **out,
		     char *err, size_t errlen);
/* Stop the threads, mark this node gone (last_seen in the past), close.
 * Accepts NULL. */
void vg_cluster_stop(struct vg_cluster *c);

/* Replace the stream's keys (SIGHUP; copied): messages are signed with
 * *sign from the next one on, and taken when signed with *sign or
 * *accept (NULL or len 0: none). Only a signed stream takes keys: NULL
 * sign, len 0, or a cluster started unsigned (or with no stream) keeps
 * its keys, counts the reload as failed (keys_kept) and returns -EINVAL.
 * 0 counts keys_reloaded. Thread-safe; accepts NULL c (0). */
int vg_cluster_set_keys(struct vg_cluster *c, const struct vg_key *sign,
			const struct vg_key *accept);
/* Count a key reload that failed before vg_cluster_set_keys (a key file
 * unreadable or bad: the keys in use are kept). Thread-safe; accepts NULL. */
void vg_cluster_key_reload_failed(struct vg_cluster *c);
/* Whether the stream is signed (started with a key): 1 or 0. */
int vg_cluster_keyed(const struct vg_cluster *c);

/* Run the next registry round now, without waiting for it. Thread-safe;
 * accepts NULL. */
void vg_cluster_poke(struct vg_cluster *c);
/* Run a registry round now and wait until one that started after this
 * call has ended, its round callback (the alarm leases) included: an
 * alarm created before the call is then leased, and evaluated here if
 * this node holds it. Waits one lease at most. 0, -ETIMEDOUT (the round
 * did not end within the lease: it still runs), -ESHUTDOWN (the cluster
 * is stopping). Thread-safe (not from the round callback itself: it would
 * wait for its own round); accepts NULL (0). */
int vg_cluster_round_wait(struct vg_cluster *c);

/* The dispatch consumer "cluster" that publishes accepted batches. */
struct vg_consumer vg_cluster_consumer(struct vg_cluster *c);

const char *vg_cluster_node(const struct vg_cluster *c);

/* Why a peer's stream message was refused (the refused counters' index). */
enum vg_cluster_refusal {
	VG_CLUSTER_REFUSED_UNSIGNED = 0, /* no MAC, while this node has a key */
	VG_CLUSTER_REFUSED_BAD_MAC,      /* MAC does not match the key */
	VG_CLUSTER_REFUSED_REPLAYED,     /* not after the node's last taken one */
	VG_CLUSTER_REFUSED_STALE,        /* send time outside the window */
	VG_CLUSTER_REFUSED_NO_KEY,       /* signed, while this node has no key */
	VG_CLUSTER_REFUSED_N
};
/* "unsigned", "bad_signature", "replayed", "stale", "no_key"; "?". */
const char *vg_cluster_refusal_name(int r);

struct vg_cluster_stats {
	uint64_t rounds, round_errors;
	uint64_t published, stream_dropped;     /* batches sent / not queued */
	uint64_t peer_batches, peer_bad;        /* received / undecodable */
	uint64_t stream_gaps;                   /* peer batches missed (sequence gaps) */
	uint64_t live_nodes;                    /* at the last round */
	uint64_t stream_peers;                  /* peers' streams subscribed to now */
	uint64_t stream_hangups;                /* subscriptions ended (absent a lease, moved) */
	int db_ok;                              /* the last round reached the database */
	int name_held_elsewhere;                /* the last round: another process holds the node name */
	uint64_t name_conflicts;                /* rounds refused for that */
	uint64_t refused[VG_CLUSTER_REFUSED_N]; /* peer messages refused, by reason */
	uint64_t keys_reloaded, keys_kept;      /* SIGHUP's key reloads: done / failed */
};
void vg_cluster_get_stats(struct vg_cluster *c, struct vg_cluster_stats *out);
/* A new JSON array of the nodes of the last round: {"node","stream",
 * "api","last_seen_ms_ago","self"}. */
json_t *vg_cluster_peers_json(struct vg_cluster *c);

#endif
