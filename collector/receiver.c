/*
 * receiver.c — the collector's front door: nanomsg REP, decode, dedup,
 * dispatch, acknowledge.
 *
 * Design. One NN_REP socket, one thread, one batch at a time: receive,
 * check the size, vg_wire_decode, ask the registry whether (host, stream,
 * seq) was already acknowledged, hand the batch to the consumers through
 * vg_dispatch_batch, record the sequence number, answer. The receive call
 * has a short timeout so the loop notices vg_receiver_stop and drives the
 * consumers' timers even when no agent talks.
 *
 * The transport limit (NN_RCVMAXSIZE) is set above the largest message any
 * vigie encoder can produce, and max_message is enforced here: a message
 * over the transport limit makes nanomsg drop the connection without a
 * reply (the peer would resend it forever), while one over max_message
 * gets a REJECTED answer the agent can act on.
 *
 * Invariants:
 *  - an OK or DUPLICATE ack is sent only after every consumer returned (so
 *    the batch is stored) and the sequence number is committed; anything
 *    else a consumer could not take now is answered RETRY.
 *  - hostile input costs one log line per 1000 occurrences (vg_log_limited)
 *    and never stops the loop.
 *  - counters are updated with __atomic builtins; the stop flag is a
 *    sig_atomic_t written by signal handlers.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "vigie/clock.h"
#include "vigie/log.h"
#include "vigie/receiver.h"
#include "vigie/wire.h"

#define DEFAULT_TIMEOUT_MS 200
#define TICK_EVERY_MS 100
#define TRANSPORT_SLACK (64u << 10)

struct vg_receiver {
	int sock;
	struct vg_receiver_options o;
	char listen[256];
	volatile sig_atomic_t stop;
	int64_t last_tick_ms;
	struct vg_collector_stats stats; /* __atomic */
	/* vg_log_limited counters (log lines, not self-metrics) */
	uint64_t n_dispatch_err, n_commit_err, n_seen_err, n_store_err;
	uint64_t n_store_rejected, n_send_err, n_recv_err;
};

static void count(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

int vg_receiver_open(const struct vg_receiver_options *o,
		     struct vg_receiver **out, char *err, size_t errlen)
{
	struct vg_receiver *r;
	int maxsize, timeout;

	*out = NULL;
	if (!o || !o->listen || !*o->listen || !o->registry || !o->dispatch ||
	    !o->max_message) {
		snprintf(err, errlen, "receiver: incomplete options");
		return -EINVAL;
	}
	if (!(r = calloc(1, sizeof(*r)))) {
		snprintf(err, errlen, "receiver: out of memory");
		return -ENOMEM;
	}
	r->o = *o;
	snprintf(r->listen, sizeof(r->listen), "%s", o->listen);
	r->o.listen = r->listen;
	if (r->o.recv_timeout_ms <= 0)
		r->o.recv_timeout_ms = DEFAULT_TIMEOUT_MS;

	r->sock = nn_socket(AF_SP, NN_REP);
	if (r->sock < 0) {
		int e = errno;
		snprintf(err, errlen, "receiver: nn_socket: %s", nn_strerror(e));
		free(r);
		return -e;
	}
	maxsize = (int)((o->max_message > VG_WIRE_MAX_MESSAGE ? o->max_message
							      : VG_WIRE_MAX_MESSAGE) +
			TRANSPORT_SLACK);
	timeout = r->o.recv_timeout_ms;
	if (nn_setsockopt(r->sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, &maxsize,
			  sizeof(maxsize)) < 0 ||
	    nn_setsockopt(r->sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout,
			  sizeof(timeout)) < 0) {
		int e = errno;
		snprintf(err, errlen, "receiver: nn_setsockopt: %s", nn_strerror(e));
		nn_close(r->sock);
		free(r);
		return -e;
	}
	if (nn_bind(r->sock, r->listen) < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot listen on %s: %s", r->listen,
			 nn_strerror(e));
		nn_close(r->sock);
		free(r);
		return -e;
	}
	*out = r;
	return 0;
}

void vg_receiver_close(struct vg_receiver *r)
{
	if (!r)
		return;
	nn_close(r->sock);
	free(r);
}

void vg_receiver_stop(struct vg_receiver *r)
{
	if (r)
		r->stop = 1;
}

void vg_receiver_get_stats(struct vg_receiver *r, struct vg_collector_stats *out)
{
	out->batches_received = __atomic_load_n(&r->stats.batches_received, __ATOMIC_RELAXED);
	out->batches_rejected = __atomic_load_n(&r->stats.batches_rejected, __ATOMIC_RELAXED);
	out->batches_duplicate = __atomic_load_n(&r->stats.batches_duplicate, __ATOMIC_RELAXED);
	out->batches_retry = __atomic_load_n(&r->stats.batches_retry, __ATOMIC_RELAXED);
	out->samples_received = __atomic_load_n(&r->stats.samples_received, __ATOMIC_RELAXED);
}

void vg_receiver_stats_fn(void *ctx, struct vg_collector_stats *out)
{
	vg_receiver_get_stats(ctx, out);
}

/* Log what the store could not write in this batch (it only counts). */
static void log_store(struct vg_receiver *r, const struct vg_store_stats *before,
		      const struct vg_batch *b)
{
	struct vg_store_stats after;

	if (!r->o.store)
		return;
	vg_store_get_stats(r->o.store, &after);
	if (after.write_errors > before->write_errors)
		vg_log_limited(VG_LOG_WARN, &r->n_store_err,
			       "store: %llu write error(s) in batch %s/%llu: %s",
			       (unsigned long long)(after.write_errors -
						    before->write_errors),
			       b->host, (unsigned long long)b->seq,
			       vg_store_last_error(r->o.store));
	if (after.values_rejected > before->values_rejected)
		vg_log_limited(VG_LOG_WARN, &r->n_store_rejected,
			       "store: refused %llu value(s) (bad name, time or "
			       "non-finite) in batch %s/%llu",
			       (unsigned long long)(after.values_rejected -
						    before->values_rejected),
			       b->host, (unsigned long long)b->seq);
}

/* Handle one decoded batch; returns the ack status. */
static uint8_t accept_batch(struct vg_receiver *r, const struct vg_batch *b)
{
	struct vg_store_stats before = {0};
	int rc;

	rc = vg_registry_seen(r->o.registry, b->host, b->stream, b->seq);
	if (rc == 1) {
		count(&r->stats.batches_duplicate, 1);
		vg_debug("duplicate batch %s stream %016llx seq %llu", b->host,
			 (unsigned long long)b->stream, (unsigned long long)b->seq);
		return VG_ACK_DUPLICATE;
	}
	if (rc < 0) {
		vg_log_limited(VG_LOG_WARN, &r->n_seen_err,
			       "registry: duplicate check for %s failed: %s; "
			       "asking for a retry", b->host, strerror(-rc));
		count(&r->stats.batches_retry, 1);
		return VG_ACK_RETRY;
	}
	if (r->o.store)
		vg_store_get_stats(r->o.store, &before);
	rc = vg_dispatch_batch(r->o.dispatch, b);
	log_store(r, &before, b);
	if (rc == -EAGAIN) {
		count(&r->stats.batches_retry, 1);
		vg_debug("batch %s seq %llu: storage not ready, RETRY", b->host,
			 (unsigned long long)b->seq);
		return VG_ACK_RETRY;
	}
	if (rc < 0)
		vg_log_limited(VG_LOG_WARN, &r->n_dispatch_err,
			       "batch %s seq %llu: a consumer failed: %s "
			       "(acknowledged anyway)", b->host,
			       (unsigned long long)b->seq, strerror(-rc));
	rc = vg_registry_commit(r->o.registry, b->host, b->stream, b->seq);
	if (rc < 0) {
		vg_log_limited(VG_LOG_WARN, &r->n_commit_err,
			       "registry: cannot record %s seq %llu: %s; asking "
			       "for a retry", b->host, (unsigned long long)b->seq,
			       strerror(-rc));
		count(&r->stats.batches_retry, 1);
		return VG_ACK_RETRY;
	}
	count(&r->stats.samples_received, b->nsamples);
	vg_debug("accepted batch host=%s stream=%016llx seq=%llu: %zu resources, "
		 "%zu samples stored", b->host, (unsigned long long)b->stream,
		 (unsigned long long)b->seq, b->nres, b->nsamples);
	return VG_ACK_OK;
}

/* Handle one message; fills the ack. */
static void handle(struct vg_receiver *r, const void *buf, size_t len,
		   struct vg_ack *ack)
{
	struct vg_batch *b = NULL;
	int rc;

	memset(ack, 0, sizeof(*ack));
	count(&r->stats.batches_received, 1);
	rc = len > r->o.max_message ? -E2BIG : vg_wire_decode(buf, len, &b);
	if (rc) {
		/* Name it if the header is readable, so the agent can match. */
		vg_wire_peek(buf, len, &ack->stream, &ack->seq);
		ack->status = VG_ACK_REJECTED;
		vg_log_limited(VG_LOG_WARN, &r->stats.batches_rejected,
			       "rejected a %zu-byte message (stream %016llx seq "
			       "%llu): %s", len, (unsigned long long)ack->stream,
			       (unsigned long long)ack->seq,
			       rc == -E2BIG && len > r->o.max_message
				       ? "over max_message_bytes"
				       : vg_wire_strerror(rc));
		return;
	}
	ack->stream = b->stream;
	ack->seq = b->seq;
	ack->status = accept_batch(r, b);
	vg_batch_free(b);
}

static void tick(struct vg_receiver *r)
{
	int64_t now = vg_monotonic_ms();

	if (r->o.idle)
		r->o.idle(r->o.idle_ctx);
	if (now - r->last_tick_ms < TICK_EVERY_MS)
		return;
	r->last_tick_ms = now;
	vg_dispatch_tick(r->o.dispatch, vg_now_ms());
}

int vg_receiver_run(struct vg_receiver *r)
{
	while (!r->stop) {
		void *buf = NULL;
		uint8_t abuf[VG_WIRE_ACK_LEN];
		struct vg_ack ack;
		size_t alen;
		int n = nn_recv(r->sock, &buf, NN_MSG, 0);

		if (n < 0) {
			int e = errno;
			tick(r);
			if (e == ETIMEDOUT || e == EAGAIN || e == EINTR)
				continue;
			if (e == EBADF || e == ETERM)
				return -e;
			vg_log_limited(VG_LOG_WARN, &r->n_recv_err,
				       "receive failed: %s", nn_strerror(e));
			continue;
		}
		handle(r, buf, (size_t)n, &ack);
		nn_freemsg(buf);
		alen = vg_wire_ack_encode(&ack, abuf);
		if (nn_send(r->sock, abuf, alen, 0) < 0)
			vg_log_limited(VG_LOG_INFO, &r->n_send_err,
				       "cannot send ack for seq %llu: %s "
				       "(the agent will resend)",
				       (unsigned long long)ack.seq,
				       nn_strerror(errno));
		tick(r);
	}
	return 0;
}
