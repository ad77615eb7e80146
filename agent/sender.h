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

#include <stdint.h>

#include "agent/spool.h"
#include "vigie/sign.h"

struct vg_sender_opts {
	const char *url;          /* "tcp://127.0.0.1:7470" */
	uint32_t ack_timeout_ms;  /* 0: 5000 */
	uint32_t backoff_min_ms;  /* 0: 100 */
	uint32_t backoff_max_ms;  /* 0: 5000 */
	const struct vg_key *key; /* sign with it; NULL: unsigned. Copied. */
};

struct vg_sender_stats {
	uint64_t sent;       /* send attempts (a resend counts again) */
	uint64_t acked;      /* OK acks */
	uint64_t duplicates; /* DUPLICATE acks */
	uint64_t retries;    /* RETRY acks */
	uint64_t rejected;   /* REJECTED acks + unreadable spool files */
	uint64_t timeouts;   /* no ack within ack_timeout_ms */
	uint64_t bad_acks;   /* undecodable or mismatched acks (ignored) */
	uint64_t unauth_acks; /* with a key: unsigned or forged acks (ignored) */
	uint64_t failing;    /* consecutive attempts without an ack (0: fine) */
	uint64_t last_seq;   /* last acknowledged seq */
};

struct vg_sender;

/* Create the socket, connect (asynchronously: the collector need not be
 * up) and start the thread. The spool must outlive the sender.
 * 0, -EINVAL (bad url: nanomsg rejected it), -ENOMEM, -errno. */
int vg_sender_start(struct vg_spool *sp, const struct vg_sender_opts *o,
		    struct vg_sender **out);

/* Tell the thread a new batch was spooled. Thread-safe. */
void vg_sender_wake(struct vg_sender *s);

/* Keep sending until the spool is empty or timeout_ms passed, then stop
 * the thread. 0 if the spool is empty, -ETIMEDOUT otherwise. */
int vg_sender_drain(struct vg_sender *s, int64_t timeout_ms);

/* Stop the thread (if running), close the socket, free. Accepts NULL. */
void vg_sender_free(struct vg_sender *s);

/* Copy of the counters. Thread-safe. */
void vg_sender_get_stats(struct vg_sender *s, struct vg_sender_stats *out);

#endif
