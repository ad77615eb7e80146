/*
 * sender.c — delivery of spooled batches over nanomsg REQ
 * (agent/sender.h).
 *
 * Design: one thread, one REQ socket, one batch in flight. The loop
 * re-reads the oldest spooled batch before every attempt, so a batch the
 * spool dropped (bound reached) while we were backing off is never sent
 * again, and order is the spool's order by construction.
 *
 * With a key, the spooled (unsigned) batch is signed right before each
 * attempt and the ack must carry a signature over itself and that batch's
 * MAC (vg_sign_ack_verify).
 *
 * Invariants:
 *  - a batch is deleted from the spool only on an OK/DUPLICATE ack whose
 *    stream and seq match it (and, with a key, whose signature verifies),
 *    and moved to rejected/ only on such a REJECTED (or when its file is
 *    unreadable);
 *  - every blocking call has a bounded wait (<= SLICE_MS), and the thread
 *    checks stop/drain between slices;
 *  - counters are updated before the spool changes, so an observer that
 *    sees the spool shrink sees the counters that explain it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "agent/sender.h"
#include "vigie/clock.h"
#include "vigie/wire.h"

#define SLICE_MS 100

struct vg_sender {
	struct vg_spool *sp;
	int sock;
	uint32_t ack_timeout_ms, bmin, bmax;
	pthread_t thread;
	int running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int woken;
	int stop;
	int draining;
	int64_t drain_deadline;
	struct vg_sender_stats st;
	int has_key;
	struct vg_key key; /* wiped in vg_sender_free */
};

/* Wait until woken, stopped, the drain deadline, or ms elapsed. */
static void wait_wake(struct vg_sender *s, int64_t ms)
{
	int64_t until = vg_monotonic_ms() + ms;

	pthread_mutex_lock(&s->lock);
	while (!s->woken && !s->stop) {
		int64_t now = vg_monotonic_ms();
		if (now >= until || (s->draining && now >= s->drain_deadline))
			break;
		int64_t left = until - now;
		if (left > SLICE_MS)
			left = SLICE_MS;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(left % 1000) * 1000000L;
		ts.tv_sec += left / 1000 + ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
	}
	s->woken = 0;
	pthread_mutex_unlock(&s->lock);
}

/* 1 if the thread must leave now (stop, or drain time is up). */
static int must_quit(struct vg_sender *s)
{
	int q;

	pthread_mutex_lock(&s->lock);
	q = s->stop || (s->draining && vg_monotonic_ms() >= s->drain_deadline);
	pthread_mutex_unlock(&s->lock);
	return q;
}

static int draining(struct vg_sender *s)
{
	pthread_mutex_lock(&s->lock);
	int d = s->draining;
	pthread_mutex_unlock(&s->lock);
	return d;
}

static void count(struct vg_sender *s, uint64_t *field)
{
	pthread_mutex_lock(&s->lock);
	(*field)++;
	pthread_mutex_unlock(&s->lock);
}

enum outcome { OUT_ACK, OUT_RETRY, OUT_REJECTED, OUT_TIMEOUT, OUT_QUIT };

static enum outcome attempt_signed(struct vg_sender *s, const void *buf,
				   size_t len, const uint8_t *mac,
				   uint64_t stream, uint64_t seq, int *status);

/* Send one batch (signed if we have a key) and wait for its ack. */
static enum outcome attempt(struct vg_sender *s, const void *buf, size_t len,
			    uint64_t stream, uint64_t seq, int *status)
{

	const uint8_t *mac = NULL;
	uint8_t *signed_buf = NULL;

	if (s->has_key) {
		/* Sign a copy: the spool keeps the batch as it was. */
		size_t slen = len;
		if (!(signed_buf = malloc(len)))
			return OUT_TIMEOUT;
		memcpy(signed_buf, buf, len);
		if (vg_sign_batch(&s->key, &signed_buf, &slen)) {
			free(signed_buf);
			return OUT_TIMEOUT;
		}
		buf = signed_buf;
		len = slen;
		mac = vg_sign_mac(signed_buf, slen);
	}
	enum outcome o = attempt_signed(s, buf, len, mac, stream, seq, status);
	free(signed_buf);
	return o;
}

/* Send buf (signed when mac != NULL) and wait for its ack. */
static enum outcome attempt_signed(struct vg_sender *s, const void *buf,
				   size_t len, const uint8_t *mac,
				   uint64_t stream, uint64_t seq, int *status)
{
	int64_t deadline;

	count(s, &s->st.sent);
	if (nn_send(s->sock, buf, len, 0) < 0)
		return errno == ETERM ? OUT_QUIT : OUT_TIMEOUT;
	deadline = vg_monotonic_ms() + s->ack_timeout_ms;
	for (;;) {
		struct nn_pollfd pfd = {.fd = s->sock, .events = NN_POLLIN};
		int64_t left = deadline - vg_monotonic_ms();
		void *msg = NULL;
		struct vg_ack ack;

		if (must_quit(s))
			return OUT_QUIT;
		if (left <= 0)
			return OUT_TIMEOUT;
		int r = nn_poll(&pfd, 1, (int)(left < SLICE_MS ? left : SLICE_MS));
		if (r < 0 && nn_errno() == ETERM)
			return OUT_QUIT;
		if (r <= 0 || !(pfd.revents & NN_POLLIN))
			continue;
		int n = nn_recv(s->sock, &msg, NN_MSG, NN_DONTWAIT);
		if (n < 0)
			continue;
		if (mac && vg_sign_ack_verify(&s->key, mac, msg, (size_t)n)) {
			/* Unsigned, or not for this batch under our key. */
			nn_freemsg(msg);
			count(s, &s->st.unauth_acks);
			continue;
		}
		int rc = vg_wire_ack_decode(msg, (size_t)n, &ack);
		nn_freemsg(msg);
		if (rc || ack.stream != stream || ack.seq != seq) {
			count(s, &s->st.bad_acks);
			continue;
		}
		*status = ack.status;
		switch (ack.status) {
		case VG_ACK_OK:
		case VG_ACK_DUPLICATE:
			return OUT_ACK;
		case VG_ACK_RETRY:
			return OUT_RETRY;
		case VG_ACK_REJECTED:
			return OUT_REJECTED;
		default:
			count(s, &s->st.bad_acks);
			continue;
		}
	}
}

static void *run(void *arg)
{
	struct vg_sender *s = arg;
	int64_t backoff = s->bmin;

	while (!must_quit(s)) {
		uint64_t seq = 0, stream = 0, wseq = 0;
		void *buf = NULL;
		size_t len = 0;
		int rc = vg_spool_oldest(s->sp, &seq, &buf, &len);

		if (rc == -ENOENT) {
			if (draining(s))
				break; /* everything delivered */
			wait_wake(s, 1000);
			continue;
		}
		if (rc == -EIO || (rc == 0 && vg_wire_peek(buf, len, &stream, &wseq) != 0)) {
			/* Unreadable or not a batch: never send it, keep it. */
			free(buf);
			count(s, &s->st.rejected);
			vg_spool_reject(s->sp, seq);
			continue;
		}
		if (rc) {
			wait_wake(s, backoff);
			continue;
		}
		int status = -1;
		enum outcome o = attempt(s, buf, len, stream, wseq, &status);
		free(buf);
		switch (o) {
		/* Counters first, spool second: whoever sees the spool
		 * shrink also sees the counters that explain it. */
		case OUT_ACK:
			pthread_mutex_lock(&s->lock);
			if (status == VG_ACK_DUPLICATE)
				s->st.duplicates++;
			else
				s->st.acked++;
			s->st.failing = 0;
			s->st.last_seq = wseq;
			pthread_mutex_unlock(&s->lock);
			vg_spool_remove(s->sp, seq);
			backoff = s->bmin;
			break;
		case OUT_REJECTED:
			pthread_mutex_lock(&s->lock);
			s->st.rejected++;
			s->st.failing = 0;
			pthread_mutex_unlock(&s->lock);
			vg_spool_reject(s->sp, seq);
			backoff = s->bmin;
			break;
		case OUT_RETRY:
		case OUT_TIMEOUT:
			pthread_mutex_lock(&s->lock);
			if (o == OUT_RETRY)
				s->st.retries++;
			else
				s->st.timeouts++;
			s->st.failing++;
			pthread_mutex_unlock(&s->lock);
			wait_wake(s, backoff);
			/* A wake-up (new batch) must not cut the back-off
			 * short for a collector that asked us to wait, but
			 * it is harmless: the wait is at most one backoff. */
			backoff *= 2;
			if (backoff > s->bmax)
				backoff = s->bmax;
			break;
		case OUT_QUIT:
			return NULL;
		}
	}
	return NULL;
}

int vg_sender_start(struct vg_spool *sp, const struct vg_sender_opts *o,
		    struct vg_sender **out)
{
	struct vg_sender *s;
	int rc, ivl = 3600 * 1000, rmax = 5000, sndto = SLICE_MS;

	if (!sp || !o || !o->url || !*o->url)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->sp = sp;
	s->ack_timeout_ms = o->ack_timeout_ms ? o->ack_timeout_ms : 5000;
	s->bmin = o->backoff_min_ms ? o->backoff_min_ms : 100;
	s->bmax = o->backoff_max_ms ? o->backoff_max_ms : 5000;
	if (s->bmax < s->bmin)
		s->bmax = s->bmin;
	if (o->key) {
		s->key = *o->key;
		s->has_key = 1;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->sock = nn_socket(AF_SP, NN_REQ);
	if (s->sock < 0) {
		rc = -nn_errno();
		goto fail;
	}
	nn_setsockopt(s->sock, NN_REQ, NN_REQ_RESEND_IVL, &ivl, sizeof(ivl));
	nn_setsockopt(s->sock, NN_SOL_SOCKET, NN_RECONNECT_IVL_MAX, &rmax, sizeof(rmax));
	nn_setsockopt(s->sock, NN_SOL_SOCKET, NN_SNDTIMEO, &sndto, sizeof(sndto));
	if (nn_connect(s->sock, o->url) < 0) {
		rc = -nn_errno();
		if (rc != -ENOMEM)
			rc = -EINVAL;
		goto fail;
	}
	if ((rc = -pthread_create(&s->thread, NULL, run, s)))
		goto fail;
	s->running = 1;
	*out = s;
	return 0;
fail:
	if (s->sock >= 0)
		nn_close(s->sock);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	vg_sign_key_wipe(&s->key);
	free(s);
	return rc;
}

void vg_sender_wake(struct vg_sender *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->woken = 1;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

int vg_sender_drain(struct vg_sender *s, int64_t timeout_ms)
{
	if (!s)
		return 0;
	if (s->running) {
		pthread_mutex_lock(&s->lock);
		s->draining = 1;
		s->drain_deadline = vg_monotonic_ms() + timeout_ms;
		s->woken = 1;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
		s->running = 0;
	}
	return vg_spool_count(s->sp) == 0 ? 0 : -ETIMEDOUT;
}

void vg_sender_free(struct vg_sender *s)
{
	if (!s)
		return;
	if (s->running) {
		pthread_mutex_lock(&s->lock);
		s->stop = 1;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
		s->running = 0;
	}
	nn_close(s->sock);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	vg_sign_key_wipe(&s->key);
	free(s);
}

void vg_sender_get_stats(struct vg_sender *s, struct vg_sender_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	*out = s->st;
	pthread_mutex_unlock(&s->lock);
}
