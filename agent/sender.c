/*
 * sender.c — delivery of spooled batches over nanomsg REQ
 * (agent/sender.h).
 *
 * Design: one thread, one REQ socket per collector, one batch in flight
 * (to one collector at a time). The loop
 * re-reads the oldest spooled batch before every attempt, so a batch the
 * spool dropped (bound reached) while we were backing off is never sent
 * again, and order is the spool's order by construction.
 *
 * With a key, the spooled (unsigned) batch is signed right before each
 * attempt and the ack must carry a signature over itself and that batch's
 * MAC (vg_sign_ack_verify).
 *
 * Several collectors: `pos` is the current collector's position in the
 * host's rendezvous order (0: the primary). Only the thread reads or
 * changes pos and the sockets; the counters that show them (current,
 * failovers, failbacks) are under the lock like the others. A socket
 * whose request was abandoned (no ack in time) is closed and re-created
 * before anything else is sent, because nanomsg's REQ keeps an
 * unanswered request and sends it again on its own when the peer
 * reconnects: an old batch would reach a restarted collector behind the
 * agent's back. With a single collector nothing changes: a new request
 * on the same socket replaces the old one.
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
#include "vigie/hash.h"
#include "vigie/log.h"
#include "vigie/wire.h"

#define SLICE_MS 100

struct peer {
	char *url;
	int sock; /* -1 if re-creating it failed (retried before each use) */
};

struct vg_sender {
	struct vg_spool *sp;
	size_t n;                                   /* collectors */
	struct peer peer[VG_SENDER_MAX_COLLECTORS]; /* configured order */
	size_t order[VG_SENDER_MAX_COLLECTORS];     /* rendezvous order */
	size_t pos;                                 /* current: peer[order[pos]] */
	uint32_t ack_timeout_ms, bmin, bmax, probe_ms;
	pthread_t thread;
	int running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int woken;
	int stop;
	int draining;
	int64_t drain_deadline;
	int exited; /* run() returned; done_cond signals it */
	pthread_cond_t done_cond;
	struct vg_sender_stats st;
	int has_key;
	struct vg_key key; /* wiped in vg_sender_free */
};

/* splitmix64's finaliser. FNV-1a's last bytes reach its high bits through
 * a single multiply; the comparison of weights uses all 64 bits, so mix
 * them fully (the spread test passes without it on numbered host names,
 * but names differing in one late byte are the common case). */
static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t weight(const char *host, const char *url)
{
	uint64_t h = vg_fnv1a(VG_FNV_OFFSET, url);

	h = vg_fnv1a_n(h, "", 1);
	return mix64(vg_fnv1a(h, host ? host : ""));
}

void vg_sender_rendezvous(const char *host, const char *const *urls, size_t n,
			  size_t *order)
{
	uint64_t w[VG_SENDER_MAX_COLLECTORS];

	if (n > VG_SENDER_MAX_COLLECTORS)
		n = VG_SENDER_MAX_COLLECTORS;
	for (size_t i = 0; i < n; i++) {
		w[i] = weight(host, urls[i]);
		order[i] = i;
	}
	/* insertion sort, heaviest first: n is at most 16 */
	for (size_t i = 1; i < n; i++) {
		size_t k = order[i], j = i;
		while (j > 0 && (w[order[j - 1]] < w[k] ||
				 (w[order[j - 1]] == w[k] &&
				  strcmp(urls[order[j - 1]], urls[k]) > 0))) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = k;
	}
}

/* A REQ socket to p->url: no resend of its own (the sender decides),
 * reconnect at most every 5 s, sends that never block longer than a
 * slice. 0, -EINVAL (address refused), -ENOMEM, -errno. */
static int peer_open(struct peer *p)
{
	int ivl = 3600 * 1000, rmax = 5000, sndto = SLICE_MS, rc;
	int sock = nn_socket(AF_SP, NN_REQ);

	if (sock < 0)
		return -nn_errno();
	nn_setsockopt(sock, NN_REQ, NN_REQ_RESEND_IVL, &ivl, sizeof(ivl));
	nn_setsockopt(sock, NN_SOL_SOCKET, NN_RECONNECT_IVL_MAX, &rmax, sizeof(rmax));
	nn_setsockopt(sock, NN_SOL_SOCKET, NN_SNDTIMEO, &sndto, sizeof(sndto));
	if (nn_connect(sock, p->url) < 0) {
		rc = -nn_errno();
		nn_close(sock);
		return rc == -ENOMEM ? rc : -EINVAL;
	}
	p->sock = sock;
	return 0;
}

/* Forget the request left unanswered on p (see the design note). */
static void peer_reset(struct vg_sender *s, struct peer *p)
{
	if (s->n < 2)
		return;
	if (p->sock >= 0)
		nn_close(p->sock);
	p->sock = -1;
	peer_open(p); /* on failure: retried before the next use */
}

/* 1 if nanomsg has a live connection to p's collector. */
static int peer_connected(const struct peer *p)
{
	return p->sock >= 0 &&
	       nn_get_statistic(p->sock, NN_STAT_CURRENT_CONNECTIONS) > 0;
}

/* Position to fail over to from `from`: the next collector in rendezvous
 * order that has a connection, else simply the next one. */
static size_t next_pos(const struct vg_sender *s, size_t from)
{
	for (size_t k = 1; k < s->n; k++) {
		size_t p = (from + k) % s->n;
		if (peer_connected(&s->peer[s->order[p]]))
			return p;
	}
	return (from + 1) % s->n;
}

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

enum outcome { OUT_ACK,
	       OUT_RETRY,
	       OUT_REJECTED,
	       OUT_TIMEOUT,
	       OUT_QUIT };

static enum outcome attempt_signed(struct vg_sender *s, int sock,
				   const void *buf, size_t len,
				   const uint8_t *mac, uint64_t stream,
				   uint64_t seq, int *status);

/* Send one batch (signed if we have a key) to p and wait for its ack. */
static enum outcome attempt(struct vg_sender *s, struct peer *p,
			    const void *buf, size_t len, uint64_t stream,
			    uint64_t seq, int *status)
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
	if (p->sock < 0 && peer_open(p)) {
		free(signed_buf);
		count(s, &s->st.sent);
		return OUT_TIMEOUT; /* no socket (out of descriptors?) */
	}
	enum outcome o = attempt_signed(s, p->sock, buf, len, mac, stream, seq,
					status);
	free(signed_buf);
	return o;
}

/* Send buf (signed when mac != NULL) and wait for its ack. */
static enum outcome attempt_signed(struct vg_sender *s, int sock,
				   const void *buf, size_t len,
				   const uint8_t *mac, uint64_t stream,
				   uint64_t seq, int *status)
{
	int64_t deadline;

	count(s, &s->st.sent);
	if (nn_send(sock, buf, len, 0) < 0)
		return errno == ETERM ? OUT_QUIT : OUT_TIMEOUT;
	deadline = vg_monotonic_ms() + s->ack_timeout_ms;
	for (;;) {
		struct nn_pollfd pfd = {.fd = sock, .events = NN_POLLIN};
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
		int n = nn_recv(sock, &msg, NN_MSG, NN_DONTWAIT);
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

/* Make position pos current (under the lock: the counters show it). */
static void set_current(struct vg_sender *s, size_t pos, uint64_t *counter)
{
	pthread_mutex_lock(&s->lock);
	s->pos = pos;
	s->st.current = (uint32_t)s->order[pos];
	(*counter)++;
	pthread_mutex_unlock(&s->lock);
}

static void *run_loop(struct vg_sender *s);

/* The thread: run_loop, then the exit that vg_sender_drain waits for. */
static void *run(void *arg)
{
	struct vg_sender *s = arg;

	run_loop(s);
	pthread_mutex_lock(&s->lock);
	s->exited = 1;
	pthread_cond_broadcast(&s->done_cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void *run_loop(struct vg_sender *s)
{
	int64_t backoff = s->bmin, next_probe = 0;

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
		/* On a secondary, now and then the primary gets the batch. */
		size_t tpos = s->pos;
		int probing = 0;
		if (s->pos != 0 && vg_monotonic_ms() >= next_probe) {
			next_probe = vg_monotonic_ms() + s->probe_ms;
			if (peer_connected(&s->peer[s->order[0]])) {
				tpos = 0;
				probing = 1;
			}
		}
		struct peer *p = &s->peer[s->order[tpos]];
		int status = -1;
		enum outcome o = attempt(s, p, buf, len, stream, wseq, &status);
		free(buf);
		/* which collector answered what, per batch: the trail that
		 * tells a lost poll's path through failovers and re-sends */
		vg_debug("seq %llu to %s: %s", (unsigned long long)wseq, p->url,
			 o == OUT_TIMEOUT             ? "no ack in time"
			 : o == OUT_QUIT              ? "stopped"
			 : status == VG_ACK_OK        ? "OK"
			 : status == VG_ACK_DUPLICATE ? "DUPLICATE"
			 : status == VG_ACK_RETRY     ? "RETRY"
						      : "REJECTED");
		if (probing && o == OUT_TIMEOUT) {
			/* The primary is connected but does not answer: stay
			 * on the secondary and resend there at once. The next
			 * probe is an interval after this one ended, or a
			 * probe interval shorter than the ack timeout would
			 * send every batch to the silent primary first. */
			next_probe = vg_monotonic_ms() + s->probe_ms;
			count(s, &s->st.timeouts);
			peer_reset(s, p);
			continue;
		}
		if (probing && o == OUT_RETRY) {
			/* The primary answers but cannot store now: stay on
			 * the secondary, which can, and resend there at once.
			 * Returning would move the host away from the
			 * collector that may still hold its newest values
			 * for a storage daemon that is down; the primary
			 * would then write the host's newer values first and
			 * those older ones be refused by the files (the
			 * cluster test lost two polls of every series of a
			 * host on the restarted daemon that way). */
			next_probe = vg_monotonic_ms() + s->probe_ms;
			count(s, &s->st.retries);
			continue;
		}
		if (probing && o != OUT_QUIT)
			set_current(s, 0, &s->st.failbacks);
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
			uint64_t failing = s->st.failing;
			pthread_mutex_unlock(&s->lock);
			if (o == OUT_TIMEOUT && s->n > 1) {
				/* Fail over; the same batch goes to the next
				 * collector at once, until all have failed. */
				peer_reset(s, p);
				set_current(s, next_pos(s, s->pos), &s->st.failovers);
				if (s->pos != 0)
					next_probe = vg_monotonic_ms() + s->probe_ms;
				if (failing < s->n)
					break;
			}
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

static void peers_close(struct vg_sender *s)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->peer[i].sock >= 0)
			nn_close(s->peer[i].sock);
		free(s->peer[i].url);
	}
}

int vg_sender_start(struct vg_spool *sp, const struct vg_sender_opts *o,
		    struct vg_sender **out)
{
	struct vg_sender *s;
	const char *const *urls = o && o->nurls ? o->urls : o ? &o->url
							      : NULL;
	size_t n = o && o->nurls ? o->nurls : 1;
	int rc = 0;

	if (!sp || !o || !urls || n > VG_SENDER_MAX_COLLECTORS)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!urls[i] || !*urls[i])
			return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->sp = sp;
	s->n = n;
	for (size_t i = 0; i < n; i++) {
		s->peer[i].sock = -1;
		if (!(s->peer[i].url = strdup(urls[i])))
			rc = -ENOMEM;
	}
	vg_sender_rendezvous(o->host, urls, n, s->order);
	s->st.primary = s->st.current = (uint32_t)s->order[0];
	s->probe_ms = o->probe_interval_ms ? o->probe_interval_ms : 10000;
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
	pthread_cond_init(&s->done_cond, NULL);
	for (size_t i = 0; i < n && !rc; i++)
		rc = peer_open(&s->peer[i]);
	if (rc)
		goto fail;
	if ((rc = -pthread_create(&s->thread, NULL, run, s)))
		goto fail;
	s->running = 1;
	*out = s;
	return 0;
fail:
	peers_close(s);
	pthread_cond_destroy(&s->cond);
	pthread_cond_destroy(&s->done_cond);
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

int vg_sender_drain(struct vg_sender *s, int64_t timeout_ms,
		    void (*tick)(void *arg), void *arg)
{
	if (!s)
		return 0;
	if (s->running) {
		pthread_mutex_lock(&s->lock);
		s->draining = 1;
		s->drain_deadline = vg_monotonic_ms() + timeout_ms;
		s->woken = 1;
		pthread_cond_signal(&s->cond);
		/* wait for the thread's exit in slices, calling tick
		 * between them (unlocked): the agent keeps logging the
		 * sender's failovers and returns while it drains */
		while (!s->exited) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)SLICE_MS * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&s->done_cond, &s->lock, &ts);
			if (tick && !s->exited) {
				pthread_mutex_unlock(&s->lock);
				tick(arg);
				pthread_mutex_lock(&s->lock);
			}
		}
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
		s->running = 0;
		if (tick) /* the last change (the ack that emptied the spool) */
			tick(arg);
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
	peers_close(s);
	pthread_cond_destroy(&s->cond);
	pthread_cond_destroy(&s->done_cond);
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
