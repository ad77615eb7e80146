/*
 * vigie — the agent's sender: delivers spooled batches to the collector.
 *
 * A thread of its own (so a slow or absent collector never delays a poll)
 * owns a nanomsg NN_REQ socket connected to the collector. It sends the
 * OLDEST spooled batch and waits up to ack_timeout_ms for its ack:
 *   OK / DUPLICATE -> delete it from the spool, send the next at once;
 *   RETRY          -> back off, then resend the (then) oldest batch;
 *   REJECTED       -> move it to <spool>/rejected/, send the next;
 *   no ack in time -> back off, then resend (the collector drops
 *                     duplicates, so resending is always safe).
 * Back-off doubles from backoff_min_ms to backoff_max_ms and resets on an
 * ack. Batches leave strictly in sequence order: the next one is only sent
 * after the previous one was acknowledged, rejected or dropped by the
 * spool bound. nanomsg's own REQ resend is disabled (interval of one
 * hour): the sender decides when to resend. An ack whose stream/seq does
 * not match the batch in flight is ignored.
 *
 * Several collectors ([agent] collectors): one REQ socket per collector,
 * each connected to one address, so the sender alone decides which
 * collector gets a batch. (nanomsg's own REQ over several endpoints
 * spreads requests over its pipes round-robin: consecutive batches of one
 * host would land on different collectors, and a resend after a timeout
 * could go anywhere — no stickiness, no primary.) The host's primary is
 * the first of its rendezvous order (vg_sender_rendezvous); batches go to
 * the current collector, still one at a time and in spool order:
 *   no ack in time -> the socket is re-created (so nanomsg cannot deliver
 *                     the abandoned request later) and the SAME batch is
 *                     sent at once to the next collector in rendezvous
 *                     order that has a connection (else simply the next);
 *                     back-off only once every collector has failed in a
 *                     row. Counted in failovers.
 *   on a secondary -> every probe_interval_ms, if the primary's socket has
 *                     a connection, the next batch goes to the primary;
 *                     an answer other than RETRY makes it current again
 *                     (counted in failbacks); a RETRY, or no answer in
 *                     time (which re-creates its socket), sends the batch
 *                     back to the secondary at once.
 *   RETRY          -> the collector is alive: no failover, back-off.
 * A batch whose ack was lost may so be stored by two collectors: with
 * state shared between collectors, (host, stream, seq) makes the second
 * one a DUPLICATE.
 *
 * With a key (vigie/sign.h), each batch is signed as it is sent (the
 * spool keeps it unsigned, so a new key applies to what waits there), and
 * only a signed ack that verifies under the key for that very batch
 * counts: any other answer is counted in unauth_acks and ignored, like no
 * answer, so an attacker who forges "OK" cannot make a batch disappear.
 *
 * Nothing here logs; the agent's main loop reads vg_sender_stats() each
 * poll and logs changes. Every wait is sliced (<= 100 ms) so stop and
 * drain take effect promptly.
 */
#ifndef VIGIE_AGENT_SENDER_H
#define VIGIE_AGENT_SENDER_H

#include <stddef.h>
#include <stdint.h>

#include "agent/spool.h"
#include "vigie/sign.h"

#define VG_SENDER_MAX_COLLECTORS 16

struct vg_sender_opts {
	const char *url;            /* "tcp://127.0.0.1:7470" (when nurls == 0) */
	const char *const *urls;    /* several collectors, in configured order */
	size_t nurls;               /* 0..VG_SENDER_MAX_COLLECTORS */
	const char *host;           /* rendezvous key (NULL: ""); copied */
	uint32_t ack_timeout_ms;    /* 0: 5000 */
	uint32_t probe_interval_ms; /* 0: 10000; on a secondary, how often
				     * the next batch goes to the primary */
	uint32_t backoff_min_ms;    /* 0: 100 */
	uint32_t backoff_max_ms;    /* 0: 5000 */
	const struct vg_key *key;   /* sign with it; NULL: unsigned. Copied. */
};

struct vg_sender_stats {
	uint64_t sent;        /* send attempts (a resend counts again) */
	uint64_t acked;       /* OK acks */
	uint64_t duplicates;  /* DUPLICATE acks */
	uint64_t retries;     /* RETRY acks */
	uint64_t rejected;    /* REJECTED acks + unreadable spool files */
	uint64_t timeouts;    /* no ack within ack_timeout_ms */
	uint64_t bad_acks;    /* undecodable or mismatched acks (ignored) */
	uint64_t unauth_acks; /* with a key: unsigned or forged acks (ignored) */
	uint64_t failing;     /* consecutive attempts without an ack (0: fine) */
	uint64_t last_seq;    /* last acknowledged seq */
	uint32_t current;     /* index (configured order) of the collector
			      * batches go to now */
	uint32_t primary;     /* index of this host's primary */
	uint64_t failovers;   /* switches to another collector on a timeout */
	uint64_t failbacks;   /* returns to the primary after a probe */
};

/* Rendezvous (highest-random-weight) order of host over the n collector
 * addresses: order[0] is the index in urls of the host's primary, then
 * its first fallback, and so on. The weight of (host, url) is FNV-1a
 * (vigie/hash.h) over the url, a NUL byte and the host, passed through a
 * 64-bit finaliser (splitmix64) so that the top bits are well mixed; ties
 * (none seen in practice) go to the smaller url by strcmp. It depends on
 * the strings only, not on their order in the list, so every agent
 * computes the same order for a host from the same set of addresses
 * spelled the same way, and removing one address only moves the hosts
 * whose primary it was. n <= VG_SENDER_MAX_COLLECTORS. Pure, thread-safe. */
void vg_sender_rendezvous(const char *host, const char *const *urls, size_t n,
			  size_t *order);

struct vg_sender;

/* Create one socket per collector, connect (asynchronously: collectors
 * need not be up) and start the thread. The spool must outlive the
 * sender; urls and host are copied. 0, -EINVAL (no url, more than
 * VG_SENDER_MAX_COLLECTORS, or nanomsg rejected one), -ENOMEM, -errno. */
int vg_sender_start(struct vg_spool *sp, const struct vg_sender_opts *o,
		    struct vg_sender **out);

/* Tell the thread a new batch was spooled. Thread-safe. */
void vg_sender_wake(struct vg_sender *s);

/* Keep sending until the spool is empty or timeout_ms passed, then stop
 * the thread. 0 if the spool is empty, -ETIMEDOUT otherwise. While it
 * waits, tick(arg) (if not NULL) is called from the caller's thread about
 * every 100 ms, without the sender's lock: the agent logs the
 * sender's changes of collector with it, as it does after each poll. */
int vg_sender_drain(struct vg_sender *s, int64_t timeout_ms,
		    void (*tick)(void *arg), void *arg);

/* Stop the thread (if running), close the socket, free. Accepts NULL. */
void vg_sender_free(struct vg_sender *s);

/* Copy of the counters. Thread-safe. */
void vg_sender_get_stats(struct vg_sender *s, struct vg_sender_stats *out);

#endif
