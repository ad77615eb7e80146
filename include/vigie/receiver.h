/*
 * vigie — the collector's receiver: batches in over nanomsg, acks out.
 *
 * A NN_REP socket bound to the listen address takes one encoded batch per
 * request and answers one acknowledgement (vigie/wire.h):
 *   undecodable, unknown version or flag       -> REJECTED (malformed)
 *   a name against the rules of vigie/wire.h   -> REJECTED (bad_name)
 *   over max_message                           -> REJECTED (oversize)
 *   unsigned, forged, wrong host, no key, or
 *   poll time outside max_clock_skew           -> REJECTED (vigie/sign.h,
 *                                                 counted per reason)
 *   any time beyond now + max_future           -> REJECTED (future)
 *   any time before 1970-01-02                 -> REJECTED (clock_unset)
 *   (host, stream, seq) already acknowledged   -> DUPLICATE
 *   every consumer took it (vigie/dispatch.h)  -> OK, seq committed
 *   a consumer asked for a retry (-EAGAIN)     -> RETRY
 *   a consumer failed otherwise                -> logged, OK, seq committed
 * The receive call times out every ~200 ms so the loop can notice a stop
 * request and drive the consumers' timers (vg_dispatch_tick). The ack to a
 * batch whose signature verified is signed with the host's key.
 * Batches from several agents that are already waiting when the receiver
 * turns to the socket are taken together (at most VG_RECEIVER_GROUP_MAX)
 * and handed to the consumers as one group (vg_dispatch_group), each
 * still answered by its own ack after every durable write that covers
 * it; the socket is a raw REP so each reply goes back to its requester.
 * Agents see the same REQ/REP exchange either way.
 *
 * Threading: vg_receiver_run runs on one thread (the collector's main
 * thread). The registry handle and the dispatch table given in the options
 * are used only from that thread while it runs; other threads reach them
 * only through vg_receiver_submit (a job run on that thread).
 * vg_receiver_stop is async-signal-safe; vg_receiver_get_stats and
 * vg_receiver_submit are thread-safe.
 */
#ifndef VIGIE_RECEIVER_H
#define VIGIE_RECEIVER_H

#include <stddef.h>
#include <stdint.h>

#include "vigie/dispatch.h"
#include "vigie/name.h"
#include "vigie/registry.h"
#include "vigie/sign.h"
#include "vigie/store.h"

struct vg_receiver;

/* The receiver's counters (vg_receiver_get_stats; the API shows them on
 * GET /metrics). */
struct vg_receiver_stats {
	uint64_t batches_received;
	uint64_t batches_rejected; /* every REJECTED answer: the sum of the
				      * per-reason counters below */
	uint64_t batches_duplicate;
	uint64_t batches_retry; /* answered RETRY (storage not ready) */
	uint64_t samples_received;
	/* Refused by the signature and time checks (also counted in
	 * batches_rejected; docs/security.md). */
	uint64_t batches_unsigned;   /* no signature where one is required */
	uint64_t batches_forged;     /* signature matches no key tried */
	uint64_t batches_wrong_host; /* signed with another host's key */
	uint64_t batches_no_key;     /* signed, but the host has no key */
	uint64_t batches_stale;      /* poll time beyond max_clock_skew */
	uint64_t batches_future;     /* a time beyond now + max_future */
	/* Refused before or after decoding (also in batches_rejected). */
	uint64_t batches_malformed;   /* undecodable, unknown version/flag */
	uint64_t batches_oversize;    /* over max_message_bytes */
	uint64_t batches_clock_unset; /* a time before 1970-01-02 */
	uint64_t batches_bad_name;    /* a name breaks the name rules */
	/* Host-scoped resources (host, host disk, host NIC, host file
	 * system) and gap events that name another host than the batch's,
	 * removed from an accepted batch before anything stores them
	 * (docs/protocol.md "Host-scoped resources"). */
	uint64_t resources_foreign;
	/* Resources whose project began or ended with white space, taken
	 * as the project without it (docs/protocol.md "Names"). */
	uint64_t projects_trimmed;
	/* Measures published through the API (vg_receiver_submit). */
	uint64_t samples_published; /* stored (also in samples_received) */
	uint64_t jobs_refused;      /* queue full: -EBUSY */
	/* Group commit (docs/architecture.md "Receiver"): hand-overs of
	 * two or more batches that were waiting together to the consumers
	 * at once, the batches they held, and batches held back to the next
	 * group because one of their (host, stream) was in it. */
	uint64_t groups;
	uint64_t batches_grouped;
	uint64_t batches_deferred;
	/* answered RETRY, not stored, because another live collector holds
	 * values of the batch's host that a storage daemon has not taken
	 * (vg_registry_seen's 2; docs/scaling.md); also in batches_retry */
	uint64_t batches_held_elsewhere;
	/* answered RETRY, not stored, because another collector committed
	 * the host's last batch after the time its verified row covers
	 * (vg_registry_seen's 3, [cluster] wait_verified; docs/scaling.md
	 * "Closing the second"); also in batches_retry */
	uint64_t batches_unverified;
	/* stored at once although another collector's commit of the host
	 * was not verified yet: this collector proved those values durable
	 * itself, FLUSHing the batch's files over connections made before
	 * that commit (vg_store_prove_arrival; "Closing the second",
	 * part 2) */
	uint64_t batches_proven;
	/* of the batches_unverified: those whose proof was cut off by
	 * proof_timeout_ms (a slow daemon, or many files), answered RETRY
	 * before the agent's ack timeout instead of holding the receiver */
	uint64_t proofs_timed_out;
	/* batches whose deadline (ack_timeout_ms, docs/operations.md "One
	 * deadline per batch") cut a phase short: answered RETRY before
	 * their proof, opens or write-through (also in batches_retry), or a
	 * write-through left to the storage thread (acknowledged, held) */
	uint64_t batch_deadline;
	/* of those: batches whose commit of their seq in the state database
	 * (PostgreSQL) the deadline cut, rolled back, answered RETRY */
	uint64_t commit_deadline;
	/* batches whose work in the state database was cancelled well
	 * before their deadline (an operator's pg_cancel_backend, the same
	 * SQLSTATE as the deadline's cut): rolled back, answered RETRY; not
	 * counted in commit_deadline */
	uint64_t state_canceled;
	/* writes of this collector's verified row that failed in the state
	 * database (retried at the next tick) */
	uint64_t verified_write_failed;
	/* batches stored while a storage daemon could not take their values
	 * whose holding mark was not written: refused because another
	 * collector marked the host after this one's duplicate check
	 * (answered RETRY, or DUPLICATE when that collector committed the
	 * batch first), or the write failed (answered RETRY) */
	uint64_t hold_marks_refused;
	uint64_t hold_marks_failed;
	/* renewals and clears of this collector's holding marks that failed
	 * in the state database (each retried at the next tick: a mark not
	 * renewed lapses one ttl after its last renewal, one not cleared
	 * keeps its hosts from moving until it does) */
	uint64_t hold_marks_renew_failed;
	uint64_t hold_marks_clear_failed;
	/* 1 while this collector's holding marks may be in the shared state
	 * (it holds values a daemon has not taken, or just started and has
	 * not yet cleared those of its last run), else 0: a gauge */
	uint64_t marks_holding;
	/* failures of the registry's flusher thread (PostgreSQL: the last
	 * values and last-seen times written on a connection of its own,
	 * registry.c "The flusher"), as the receiver last saw them; each is
	 * retried, and logged (rate-limited) */
	uint64_t registry_flush_failures;
	/* resources the registry's cache held whose rows another
	 * collector's sweep of ended resources had deleted when this one
	 * wrote (vg_registry_stats' gone_resources, both engines), as the
	 * receiver last saw them: forgotten, their waiting values dropped */
	uint64_t registry_gone_resources;
};

struct vg_receiver_options {
	const char *listen;           /* nanomsg address, e.g. tcp://0.0.0.0:7470 */
	uint32_t max_message;         /* bytes; bigger batches are REJECTED */
	int recv_timeout_ms;          /* 0: 200 */
	struct vg_registry *registry; /* duplicate filter; not owned */
	struct vg_dispatch *dispatch; /* consumers; not owned */
	struct vg_store *store;       /* optional, only to log its errors */
	const char *data_dir;         /* optional: named, with its free space,
				      * when batches are answered RETRY */
	/* Optional: called on the receiver thread on every loop turn
	 * (at least every recv_timeout_ms), e.g. to act on a SIGHUP flag. */
	void (*idle)(void *ctx);
	void *idle_ctx;
	/* Signed agents (vigie/sign.h, docs/security.md). All zero: every
	 * batch is accepted unsigned (tests, the demo). keys is not owned;
	 * replace it with vg_receiver_set_keys. */
	const struct vg_keyring *keys;
	int require_signatures;    /* refuse unsigned batches, unknown hosts */
	int64_t max_clock_skew_ms; /* |poll time - now| allowed; 0: no check */
	int64_t max_future_ms;     /* a poll, sample or event time beyond
				    * now + this is refused; 0: no check */
	/* Holding marks (collectors sharing storage daemons): with a store
	 * that writes through and a registry given a holder
	 * (vg_registry_set_holder, same ttl), a batch acknowledged while the
	 * store holds values a daemon has not taken marks its host in the
	 * commit; the marks are renewed every hold_ttl_ms / 3 and cleared
	 * once the store holds none. 0: no marks. */
	int64_t hold_ttl_ms;
	/* With hold_ttl_ms: a registry handle given the same holder, used
	 * only by vg_receiver_hold_lost (on the store's thread). NULL: the
	 * hosts of files a daemon lost are not marked. Not owned. */
	struct vg_registry *lost_registry;
	/* How long a host answered RETRY for another's mark stays in
	 * vg_receiver_held_elsewhere after its last such answer.
	 * 0: VG_RECEIVER_HELD_AGE_MS. */
	int64_t held_age_ms;
	/* Verified rows: with a registry given a holder and a store, the
	 * receiver writes at most once a tick the wall time up to which the
	 * store verified everything this collector acknowledged
	 * (vg_store_verified_ms, vg_registry_set_verified), when it has
	 * moved and some commit of this run, or the run's start, is not
	 * covered yet. 0: none written (no holder). */
	int verified_rows;
	/* How long before another collector's commit (its clock) a
	 * connection of this collector to a storage daemon must have been
	 * made to prove that commit's values durable
	 * (vg_store_prove_arrival): the time that collector may take from
	 * its sends of a batch to its commit (its waits on daemons and on
	 * the database, each a quarter of the agents' ack timeout) plus the
	 * collectors' clock difference. 0: VG_RECEIVER_PROOF_MARGIN_MS;
	 * negative: no proof (every such host waits for the row). */
	int64_t proof_margin_ms;
	/* The bound of one such proof as a whole (its placement round trips
	 * and every FLUSH BATCH to every daemon, on the receiver thread,
	 * which serves every host meanwhile): past it the proof is cut off
	 * and the batch answered RETRY (the agent keeps it and re-sends),
	 * counted in proofs_timed_out. The composition makes it [cluster]
	 * proof_timeout_ms, or half the agents' ack timeout (the write and
	 * the commit after it are bounded by a quarter each). 0:
	 * VG_RECEIVER_PROOF_TIMEOUT_MS. */
	int64_t proof_timeout_ms;
	/* The agents' ack timeout ([agent] ack_timeout_ms): each batch gets
	 * one deadline when it is received, three quarters of it later (the
	 * last quarter for the commit and the network), that bounds its
	 * proof, its opens of new series and its write-through as well as
	 * their own bounds; with less than an eighth of it left before the
	 * consumers the batch is answered RETRY. 0: no deadline. */
	uint32_t ack_timeout_ms;
};

/* proof_margin_ms's default: the default ack timeout (5 s) and 1 s of
 * clock difference between collectors. */
#define VG_RECEIVER_PROOF_MARGIN_MS 6000
/* proof_timeout_ms's default: half the default ack timeout (5 s). */
#define VG_RECEIVER_PROOF_TIMEOUT_MS 2500

/* Create the socket and bind it. The options are copied; the registry,
 * dispatch and store must outlive the receiver. 0 or -errno with a
 * one-line message in err (bad address, address in use). */
int vg_receiver_open(const struct vg_receiver_options *o,
		     struct vg_receiver **out, char *err, size_t errlen);

/* Batches one turn of the receiver takes from the socket at most (one
 * group), and their encoded bytes at most (the batch that crosses it is
 * the group's last). */
#define VG_RECEIVER_GROUP_MAX 16
#define VG_RECEIVER_GROUP_BYTES (32u << 20)

/* Serve until vg_receiver_stop. A batch being handled when the stop comes
 * is finished and answered first, and so are the batches its group held
 * back for the next turn (one of their (host, stream) was in it); a
 * message still waiting unreceived at the socket is not taken. Returns 0,
 * or -errno if the socket failed for good. */
int vg_receiver_run(struct vg_receiver *r);

/* ---- work from other threads (the API's POST /v1/measures) ---------- */

#define VG_RECEIVER_QUEUE_MAX 64 /* jobs waiting at most */

/* What a job sees on the receiver thread. */
struct vg_receiver_inject;
/* A job: runs on the receiver thread between two agent batches; its
 * return value is vg_receiver_submit's. */
typedef int (*vg_receiver_job_fn)(void *ctx, struct vg_receiver_inject *in);

/* Queue fn(ctx, ...) for the receiver thread, wake it, and wait until the
 * job ran. Returns the job's result, -EBUSY when VG_RECEIVER_QUEUE_MAX
 * jobs already wait (counted in jobs_refused), -ESHUTDOWN when the
 * receiver stopped (or stops before running the job), -EINVAL for a NULL
 * receiver or fn. Thread-safe; must not be called from the receiver
 * thread (it would wait for itself). A job queued before vg_receiver_run
 * starts runs when it does. */
int vg_receiver_submit(struct vg_receiver *r, vg_receiver_job_fn fn, void *ctx);

/* Inside a job: the receiver's registry handle (the receiver thread's). */
struct vg_registry *vg_receiver_inject_registry(struct vg_receiver_inject *in);

/* Inside a job: hand b to the dispatch chain, as an accepted agent batch
 * (no signature, time or duplicate-batch check: the job did its own).
 * 0 when every value is stored as durably as an acknowledged agent batch
 * (consumer errors other than a retry are logged, as for agents);
 * -EAGAIN when a consumer cannot take it now (nothing to acknowledge).
 * *duplicates (may be NULL) gets the values the store skipped as at or
 * before their series' last update. */
int vg_receiver_inject_batch(struct vg_receiver_inject *in,
			     const struct vg_batch *b, uint64_t *duplicates);

/* Use another keyring from the next batch on (e.g. reloaded on SIGHUP).
 * Call on the receiver thread only (from the idle callback) or before
 * vg_receiver_run; the caller frees the old keyring after this returns. */
void vg_receiver_set_keys(struct vg_receiver *r, const struct vg_keyring *keys);

/* Ask vg_receiver_run to return (async-signal-safe, any thread). */
void vg_receiver_stop(struct vg_receiver *r);

/* Close the socket and free. Call after vg_receiver_run returned.
 * Accepts NULL. */
void vg_receiver_close(struct vg_receiver *r);
/* vg_store_lost_fn (vg_store_on_lost, ctx the receiver): the hosts of
 * the series ser[0..n) a storage daemon lost are marked held by this
 * collector through o.lost_registry, before the store re-sends their
 * values; the loop then tends them as its own (renewed, and cleared once
 * the store holds nothing, the re-sent values written). 0, -EBUSY (a
 * host another collector's live mark holds, or with no registry row),
 * -errno (not marked: the re-send waits). Any thread but the loop's. */
int vg_receiver_hold_lost(void *ctx, const struct vg_store_series *ser, size_t n);

/* Copy the counters (thread-safe). batches_received counts every message
 * received, including those rejected or duplicate; samples_received counts
 * the samples of acknowledged (OK) batches. Every REJECTED answer counts
 * once in batches_rejected and once in exactly one per-reason counter
 * (batches_malformed ... batches_bad_name), so batches_rejected is their
 * sum; GET /metrics shows them as vigie_collector_batches_rejected_total
 * {reason=...} (docs/api.md). */
void vg_receiver_get_stats(struct vg_receiver *r, struct vg_receiver_stats *out);

/* The hosts this receiver answers RETRY because another collector's
 * holding mark names them (docs/scaling.md "Holding marks"), as
 * GET /v1/health shows them. A host is in the table from its first such
 * RETRY; it leaves when one of its batches passes the duplicate check
 * (its mark is gone: cleared, released or expired), or when none of its
 * batches was answered so for the option held_age_ms (default
 * VG_RECEIVER_HELD_AGE_MS: an agent retries at least every 5 s; one that
 * went back to the holder stops asking here). The table holds
 * VG_RECEIVER_HELD_MAX hosts (allocated at the first): a new host when
 * it is full replaces the one answered least recently, and the count is
 * then a lower bound (*capped, for held_age_ms). */
#define VG_RECEIVER_HELD_MAX 512
#define VG_RECEIVER_HELD_AGE_MS 60000

struct vg_receiver_held {
	char host[VG_NAME_MAX + 1];
	char holder[256]; /* the holding collector's [cluster] node */
	int64_t since_ms; /* wall ms of the first RETRY of this wait */
	int64_t last_ms;  /* wall ms of the latest */
	uint64_t batches; /* RETRY answers since since_ms */
	int unverified;   /* 1: waits for holder's verified row, not a mark */
};

/* Copies up to max of those hosts into out (NULL when max is 0), the
 * longest waiting first (since_ms, then host), and returns how many
 * there are (may exceed max); *capped (may be NULL) is set to 1 when the
 * table overflowed within the last held_age_ms, else 0.
 * Thread-safe (GET /v1/health); 0 for a NULL receiver. */
size_t vg_receiver_held_elsewhere(struct vg_receiver *r, struct vg_receiver_held *out,
				  size_t max, int *capped);

/* The same with ctx the receiver: a callback of the shape the API takes
 * (vg_stats_fn in vigie/api.h), handed over by the composition root. */
void vg_receiver_stats_fn(void *ctx, struct vg_receiver_stats *out);

#endif
