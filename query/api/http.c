/*
 * http.c — the generic HTTP server under the JSON API: libmicrohttpd
 * plumbing, limits, responses (JSON errors, streamed replies) and the
 * server's counters. The request side with no libmicrohttpd in it
 * (method names, request-target parsing, routing, dispatch) is in
 * http_request.c; the listen addresses and the bound socket are in
 * http_listen.c.
 *
 * Design: libmicrohttpd runs an internal polling thread per worker (a
 * thread pool of `threads`, epoll when available). We bind the listening
 * socket ourselves (vg_listen_socket) so that "address in use" and "bad
 * address" come back as clear errors and so that port 0 (tests) can be
 * read back. The raw request-target is captured by the URI log callback,
 * before libmicrohttpd unescapes it, and parsed by vg_http_req_parse:
 * that keeps a "%2F" inside a resource id from splitting the path, and
 * gives one place that enforces the URI length limit with a JSON 414.
 * A request line too long for libmicrohttpd's connection buffer
 * (VG_HTTP_CONN_MEMORY) is refused by libmicrohttpd itself before that
 * callback runs, with its own HTML 414 (431 for headers): http.h.
 *
 * A request goes through on_access() in three phases: the first call
 * (headers in) parses and routes, refusing early (414, 400, 404, 405, 413)
 * before any body is read, and for a request with a body also checks its
 * token and parameters (401, 400: the body dropped) and takes its place
 * under its tenant's cap (below), waiting for it before the body; upload
 * calls collect a body for routes that take one (bounded by the route's
 * max_body); the last call dispatches to the handler and queues its
 * response.
 *
 * A streamed reply (Server-Sent Events) parks its connection while it has
 * nothing to write; one more thread per server (stream_prober) looks at
 * the parked connections' sockets each VG_HTTP_STREAM_PROBE_MS and ends
 * the streams whose client left, so a departed client gives back what its
 * stream holds within about a second, not at a write that fails. While
 * the server has no stream the prober sleeps on a condition variable
 * that the first stream signals: a server nobody streams from has no
 * thread waking every second.
 *
 * The worker pool. libmicrohttpd keeps a connection on the thread that
 * accepted it for the connection's life; a handler run on that thread
 * held every other connection of it (another tenant's kept-alive one
 * waited for a slow query it had nothing to do with). So handlers run on
 * `threads` workers of our own: once the hook let a request through, its
 * connection is suspended (MHD_suspend_connection, called from the
 * access callback as the manual requires, before the request is visible
 * to a worker, which may resume it at once), the request goes to its
 * tenant's queue, a worker runs the handler, leaves the answer in the
 * request's state and resumes the connection; libmicrohttpd then calls
 * on_access again, which sends it. A request with a body goes to the
 * queue twice: from its first call (before_body), where a worker that
 * reaches it gives it its place instead of running it and resumes it
 * (libmicrohttpd calls the first call again: the body comes next), and
 * once its body is whole, to the placed list, which workers take before
 * the turn (it holds its place already). A body is kept whole until the
 * request is complete, so it is received only in a place: a tenant holds
 * at most max_per_scope bodies, and a request waiting in the queue none
 * (1,024 slow uploads of one token held 16 GiB). A place taken that way
 * and left (a body over max_body, a sender that left or timed out) is
 * given back by place_give. Public routes (health, the console's
 * files) run at once on libmicrohttpd's thread, as before.
 *
 * The per-tenant cap (vg_http_options.max_per_scope) is the number of a
 * tenant's requests on workers; the ones over it wait in its FIFO. The
 * tenants that may run one more are in a ready list (the turn): a free
 * worker takes the first, runs its oldest request and puts it back at the
 * end, so a tenant with a burst does not make another's one request wait
 * behind all of it. Bounds: a tenant has at most max_per_scope +
 * queue_per_scope requests running or waiting (one more: 429 at once),
 * and a request waits at most queue_wait_ms (a timer thread answers it
 * 429 then: the workers may all be in slow handlers). The slot is given
 * back as soon as the handler returned, before the answer is sent: a
 * client that sends its next request as soon as it read an answer (on
 * another connection) must not find its own previous request counted.
 * Writing an answer holds no thread (libmicrohttpd writes non-blocking),
 * so a slow reader takes no slot; nor does a streamed reply parked
 * between events. Lock order: cap_lock is never held while calling into
 * libmicrohttpd (suspend before, resume after). vg_http_stop answers what
 * waits 503, lets the running handlers end and joins the workers before
 * stopping libmicrohttpd, so no suspended connection is left to it.
 *
 * Invariants: every response we send is JSON unless a handler chose
 * another content type; a request body is never buffered beyond its
 * route's max_body; per-request state is freed by the completion
 * callback, which libmicrohttpd calls for every request whose URI log
 * callback ran. (vg_buf, the hand-written JSON buffer, is in jsonbuf.c.)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "vigie/clock.h"
#include "query/api/http.h"
#include "vigie/log.h"
#include "vigie/name.h"

/* ---- responses ----------------------------------------------------------- */

/* A streamed reply. Created by vg_http_reply_stream, attached to the
 * server and its connection by send_resp, destroyed (release_fn first) by
 * libmicrohttpd's free callback or when the reply is dropped unsent. */
struct vg_http_stream {
	struct vg_http_stream *prev, *next; /* server->streams, once sent */
	struct vg_http_server *server;
	struct MHD_Connection *conn;
	int fd;               /* conn's socket (open while conn is suspended) */
	pthread_mutex_t lock; /* guards suspended, woken */
	int suspended, woken;
	vg_http_stream_read_fn read_fn;
	void (*release_fn)(void *ctx);
	void *ctx;
};

static void stream_destroy(struct vg_http_stream *st);

static void resp_set(struct vg_http_resp *r, int status, const char *ctype,
		     char *body, size_t len)
{
	if (r->stream) {
		stream_destroy(r->stream);
		r->stream = NULL;
	}
	free(r->body);
	r->status = status;
	r->content_type = ctype;
	r->body = body;
	r->len = len;
}

static void resp_oom(struct vg_http_resp *r)
{
	static const char msg[] =
		"{\"error\":{\"code\":500,\"message\":\"out of memory\"}}";
	char *b = strdup(msg);
	resp_set(r, 500, "application/json", b, b ? strlen(b) : 0);
}

int vg_http_reply_raw(struct vg_http_resp *r, int status,
		      const char *content_type, char *body, size_t len)
{
	resp_set(r, status, content_type, body, len);
	return 0;
}

int vg_http_reply_json(struct vg_http_resp *r, int status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (!s) {
		resp_oom(r);
		return -ENOMEM;
	}
	resp_set(r, status, "application/json", s, strlen(s));
	return 0;
}

char *vg_http_error_json(int status, const char *msg)
{
	json_t *j = json_pack("{s:{s:i,s:s}}", "error", "code", status,
			      "message", msg ? msg : "");
	char *s;

	if (!j && msg) {
		/* not valid UTF-8: a request's bytes echoed, or a "%.100s" that
		 * cut a character in two ('a' x 99 + "é" + "(" as a regular
		 * expression). Each bad byte becomes '?': the message still
		 * says what was wrong. */
		char clean[1024];
		vg_text_clean(msg, clean, sizeof(clean) - 1);
		j = json_pack("{s:{s:i,s:s}}", "error", "code", status, "message", clean);
	}
	if (!j)
		j = json_pack("{s:{s:i,s:s}}", "error", "code", status,
			      "message", "(message not valid UTF-8)");
	s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return s;
}

int vg_http_reply_verror(struct vg_http_resp *r, int status, const char *fmt,
			 va_list ap)
{
	char msg[1024];
	char *s;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	s = vg_http_error_json(status, msg);
	if (!s) {
		resp_oom(r);
		return -ENOMEM;
	}
	resp_set(r, status, "application/json", s, strlen(s));
	return 0;
}

int vg_http_reply_error(struct vg_http_resp *r, int status, const char *fmt,
			...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vg_http_reply_verror(r, status, fmt, ap);
	va_end(ap);
	return rc;
}

int vg_http_resp_header(struct vg_http_resp *r, const char *name,
			const char *fmt, ...)
{
	va_list ap;

	if (r->nheaders == VG_HTTP_MAX_HEADERS)
		return -ENOSPC;
	r->headers[r->nheaders].name = name;
	va_start(ap, fmt);
	vsnprintf(r->headers[r->nheaders].value,
		  sizeof(r->headers[r->nheaders].value), fmt, ap);
	va_end(ap);
	r->nheaders++;
	return 0;
}

void vg_http_resp_release(struct vg_http_resp *r)
{
	if (!r)
		return;
	if (r->stream) {
		stream_destroy(r->stream);
		r->stream = NULL;
	}
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

/* ---- the server ------------------------------------------------------------ */

struct vg_http_server {
	struct MHD_Daemon *d;
	pthread_mutex_t streams_lock; /* guards streams, prober_stop */
	struct vg_http_stream *streams;
	int stopping; /* __atomic */
	/* the prober of parked streams (stream_prober): it waits on
	 * prober_cond under streams_lock, signalled by the first stream
	 * added to an empty list and by prober_stop */
	pthread_t prober;
	int prober_started;
	pthread_cond_t prober_cond;
	int prober_stop;
	uint64_t stream_probes; /* rounds of probe_streams, __atomic */
	struct vg_http_options o;
	uint16_t port;
	uint64_t mhd_log_count;
	uint64_t conn_refused; /* __atomic: vg_http_stats.conn_refused */
	uint64_t err_5xx;
	uint64_t rejected[100];   /* log lines of 4xx answers, by status */
	uint64_t responses[6];    /* by status class, __atomic */
	char *tls_cert, *tls_key; /* PEM copies, or NULL (plain HTTP) */
	/* the workers and the per-tenant cap with its queue (below, "The
	 * worker pool"): a tenant entry per tenant with requests in flight or
	 * waiting (scope NULL: the admin bucket) */
	pthread_mutex_t cap_lock;          /* guards everything down to cap_unlogged */
	pthread_cond_t work_cond;          /* a tenant became ready, or pool_stop */
	pthread_cond_t timer_cond;         /* a first request waits, or pool_stop */
	struct tenant *tenants;            /* all entries */
	struct tenant *ready, *ready_tail; /* the turn: ones that may run */
	/* requests that took their place before their body and now have it
	 * whole: they run before the turn (they hold a place, and a body) */
	struct req_state *placed, *placed_tail;
	int pool_stop;
	int timer_idle;   /* the timer sleeps without a deadline */
	uint64_t submits; /* requests handed to the pool, for the timer */
	pthread_t *workers;
	unsigned nworkers;
	pthread_t timer;
	int timer_started;
	uint64_t in_flight;      /* __atomic */
	uint64_t cap_refused[2]; /* projects, admin; __atomic */
	uint64_t queued;         /* waiting now, __atomic */
	uint64_t queued_total;   /* waited over the cap, __atomic */
	int64_t cap_log_ms;      /* monotonic ms of the last log line, 0: none */
	uint64_t cap_unlogged;   /* refusals since that line */
};

/* ---- streaming replies ---------------------------------------------------- */

int vg_http_reply_stream(struct vg_http_resp *r, int status,
			 const char *content_type, vg_http_stream_read_fn read_fn,
			 void (*release_fn)(void *ctx), void *ctx,
			 struct vg_http_stream **stream)
{
	struct vg_http_stream *st = calloc(1, sizeof(*st));

	if (stream)
		*stream = NULL;
	if (!st) {
		if (release_fn)
			release_fn(ctx);
		resp_oom(r);
		return -ENOMEM;
	}
	pthread_mutex_init(&st->lock, NULL);
	st->fd = -1; /* until send_resp gives it a connection */
	st->read_fn = read_fn;
	st->release_fn = release_fn;
	st->ctx = ctx;
	resp_set(r, status, content_type, NULL, 0);
	r->stream = st;
	if (stream)
		*stream = st;
	return 0;
}

void vg_http_stream_wake(struct vg_http_stream *st)
{
	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	st->woken = 1;
	if (st->suspended) {
		st->suspended = 0;
		MHD_resume_connection(st->conn);
	}
	pthread_mutex_unlock(&st->lock);
}

static void stream_destroy(struct vg_http_stream *st)
{
	struct vg_http_server *s = st->server;

	/* after release_fn nobody calls vg_http_stream_wake any more */
	if (st->release_fn)
		st->release_fn(st->ctx);
	if (s) {
		pthread_mutex_lock(&s->streams_lock);
		if (st->prev)
			st->prev->next = st->next;
		else
			s->streams = st->next;
		if (st->next)
			st->next->prev = st->prev;
		pthread_mutex_unlock(&s->streams_lock);
	}
	pthread_mutex_destroy(&st->lock);
	free(st);
}

/* The client of a streamed reply went away: its end of the connection is
 * closed (a FIN: POLLRDHUP) or reset (POLLHUP, POLLERR). Bytes it sent and
 * we did not read (POLLIN alone) are not a departure. Does not block. */
static int peer_gone(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};

	if (fd < 0)
		return 0;
	return poll(&p, 1, 0) == 1 &&
	       (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* libmicrohttpd asks for more body: produce it, or park the connection
 * (MHD_suspend_connection, no busy loop) until vg_http_stream_wake.
 * A client that left ends the reply here, before any event: TCP would
 * take the first write after it left without an error (it only draws the
 * peer's reset) and report it at the second, so a stream that writes a
 * keepalive every 15 s kept its place for ~30 s after its client left. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct vg_http_stream *st = cls;
	ssize_t n;

	(void)pos;
	if (__atomic_load_n(&st->server->stopping, __ATOMIC_ACQUIRE))
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* the end of the stream, not an error: libmicrohttpd then finds the
	 * connection closed as it would for any client that left, where an
	 * error logs a warning for every closed browser tab */
	if (peer_gone(st->fd))
		return MHD_CONTENT_READER_END_OF_STREAM;
	pthread_mutex_lock(&st->lock);
	st->woken = 0;
	pthread_mutex_unlock(&st->lock);
	n = st->read_fn(st->ctx, buf, max);
	if (n < 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n > 0)
		return n;
	pthread_mutex_lock(&st->lock);
	if (!st->woken) {
		st->suspended = 1;
		MHD_suspend_connection(st->conn);
	}
	pthread_mutex_unlock(&st->lock);
	return 0;
}

static void stream_free_cb(void *cls)
{
	stream_destroy(cls);
}

/* A parked stream writes nothing and libmicrohttpd does not watch a
 * suspended connection, so nothing would notice its client leave until
 * the next event or keepalive resumed it. Every VG_HTTP_STREAM_PROBE_MS
 * this thread looks at the socket of each parked stream (one poll, no
 * read) and resumes those whose client left: their reader then ends them
 * and their release_fn frees what they hold (an alarm stream's place).
 * The socket is looked at under the stream's lock while it is suspended:
 * only a wake-up (under that lock) resumes a suspended connection, and
 * libmicrohttpd closes no suspended connection, so the fd is its own.
 * Under streams_lock. */
static void probe_streams(struct vg_http_server *s)
{
	__atomic_add_fetch(&s->stream_probes, 1, __ATOMIC_RELAXED);
	for (struct vg_http_stream *st = s->streams; st; st = st->next) {
		pthread_mutex_lock(&st->lock);
		if (st->suspended && peer_gone(st->fd)) {
			st->suspended = 0;
			st->woken = 1;
			MHD_resume_connection(st->conn);
		}
		pthread_mutex_unlock(&st->lock);
	}
}

/* Probe each VG_HTTP_STREAM_PROBE_MS while there are streams; with none,
 * sleep until send_resp adds the first (or the server stops). */
static void *stream_prober(void *arg)
{
	struct vg_http_server *s = arg;
	struct timespec ts;

	pthread_mutex_lock(&s->streams_lock);
	while (!s->prober_stop) {
		if (!s->streams) {
			pthread_cond_wait(&s->prober_cond, &s->streams_lock);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += VG_HTTP_STREAM_PROBE_MS / 1000;
		ts.tv_nsec += (VG_HTTP_STREAM_PROBE_MS % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		/* the whole interval: a signal for a first stream (the list
		 * emptied and filled again meanwhile) does not probe sooner */
		while (!s->prober_stop &&
		       pthread_cond_timedwait(&s->prober_cond, &s->streams_lock, &ts) !=
			       ETIMEDOUT)
			;
		if (!s->prober_stop && s->streams)
			probe_streams(s);
	}
	pthread_mutex_unlock(&s->streams_lock);
	return NULL;
}

/* 0, or -EAGAIN (no thread). */
static int prober_start(struct vg_http_server *s)
{
	vg_cond_init_monotonic(&s->prober_cond);
	if (pthread_create(&s->prober, NULL, stream_prober, s)) {
		pthread_cond_destroy(&s->prober_cond);
		return -EAGAIN;
	}
	s->prober_started = 1;
	return 0;
}

static void prober_stop(struct vg_http_server *s)
{
	if (!s->prober_started)
		return;
	pthread_mutex_lock(&s->streams_lock);
	s->prober_stop = 1;
	pthread_cond_signal(&s->prober_cond);
	pthread_mutex_unlock(&s->streams_lock);
	pthread_join(s->prober, NULL);
	pthread_cond_destroy(&s->prober_cond);
	s->prober_started = 0;
}

/* Per-request state, created by the URI log callback. */
struct req_state {
	char *uri; /* raw request-target; NULL if too long */
	int too_long;
	int started;
	int replied; /* a response is queued */
	size_t discarded;
	struct vg_http_req req;
	char *body;
	size_t body_len;
	int body_over;
	int checked; /* route, parameters and token checked (first_call) */
	int64_t t0_ms;
	int cap_refused; /* answered 429 by the cap: logged apart */
	/* the worker pool: the connection is suspended from pool_submit
	 * until its answer is in resp (done), then resumed */
	struct MHD_Connection *conn;
	struct tenant *tenant;   /* while waiting or running */
	struct req_state *qnext; /* in its tenant's queue */
	int64_t deadline_ms;     /* monotonic: 429 if still waiting then */
	int in_pool;             /* handed to the pool, connection suspended */
	int before_body;         /* waits for its place before its body */
	int done;                /* __atomic: resp holds the answer */
	struct vg_http_resp resp;
};

/* Bytes of an unwanted body we read (and drop) after an early reply
 * before giving up on the connection. */
#define DISCARD_MAX (1u << 20)

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct req_state *st = calloc(1, sizeof(*st));

	(void)cls;
	(void)c;
	if (!st)
		return NULL;
	st->t0_ms = vg_monotonic_ms();
	if (strlen(uri) > VG_HTTP_MAX_URI)
		st->too_long = 1;
	else if (!(st->uri = strdup(uri)))
		st->too_long = 1; /* treated as too long: we cannot hold it */
	return st;
}

/* ---- the per-tenant cap ---------------------------------------------------- */

static int same_scope(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

/* Count a refusal and log at most one line per VG_HTTP_CAP_LOG_MS: the
 * first refusal at once, then, at the first refusal after the interval,
 * how many there were meanwhile (the counter has them all). */
static void cap_refused(struct vg_http_server *s, const struct req_state *st)
{
	const char *scope = st->req.scope_project;
	int64_t now = vg_monotonic_ms();
	uint64_t n = 0;
	char who[80];

	__atomic_add_fetch(&s->cap_refused[scope ? 0 : 1], 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&s->cap_lock);
	s->cap_unlogged++;
	if (!s->cap_log_ms || now - s->cap_log_ms >= VG_HTTP_CAP_LOG_MS) {
		n = s->cap_unlogged;
		s->cap_unlogged = 0;
		s->cap_log_ms = now;
	}
	pthread_mutex_unlock(&s->cap_lock);
	if (!n)
		return;
	if (scope) {
		char clean[64];
		vg_text_clean(scope, clean, sizeof(clean) - 1);
		snprintf(who, sizeof(who), "project '%s'", clean);
	} else {
		snprintf(who, sizeof(who), "admin tokens");
	}
	vg_warn("http: %llu request%s refused (429) over the cap of %u in flight "
		"per tenant in the last %d s (at most one line per %d s; "
		"vigie_api_requests_refused_total counts them all), the last of %s",
		(unsigned long long)n, n == 1 ? "" : "s", s->o.max_per_scope,
		VG_HTTP_CAP_LOG_MS / 1000, VG_HTTP_CAP_LOG_MS / 1000, who);
}

/* ---- the worker pool ------------------------------------------------------- */

/* A tenant (a project, or the admin bucket): its requests on a worker
 * (running) and those waiting, oldest first. It is in the turn (the ready
 * list) when it may run one more: a worker takes the first tenant of the
 * turn, starts its oldest request and puts it back at the end if it may
 * still run another, so tenants are served in turn and each tenant's
 * requests in order. An entry lives while it has a request running or
 * waiting or is in the turn (dropped from it lazily). Under cap_lock. */
struct tenant {
	struct tenant *next;       /* s->tenants */
	struct tenant *ready_next; /* the turn */
	int in_ready;
	char *scope; /* malloc'd, NULL: the admin bucket */
	/* running: places held (on a worker, or a body being received) */
	unsigned running, waiting;
	struct req_state *qhead, *qtail;
};

/* The two request queues (a tenant's, and s->placed) are FIFOs linked
 * through qnext: st goes last. */
static void rq_append(struct req_state **head, struct req_state **tail,
		      struct req_state *st)
{
	st->qnext = NULL;
	if (*tail)
		(*tail)->qnext = st;
	else
		*head = st;
	*tail = st;
}

/* The first of a non-empty queue, taken out (its qnext NULL). */
static struct req_state *rq_pop(struct req_state **head, struct req_state **tail)
{
	struct req_state *st = *head;

	*head = st->qnext;
	if (!*head)
		*tail = NULL;
	st->qnext = NULL;
	return st;
}

static int tenant_may_run(const struct vg_http_server *s, const struct tenant *t)
{
	/* without a cap the workers alone bound a tenant */
	return t->waiting && (!s->o.max_per_scope || !s->o.authorize ||
			      t->running < s->o.max_per_scope);
}

static void ready_push(struct vg_http_server *s, struct tenant *t)
{
	if (t->in_ready)
		return;
	t->in_ready = 1;
	t->ready_next = NULL;
	if (s->ready_tail)
		s->ready_tail->ready_next = t;
	else
		s->ready = t;
	s->ready_tail = t;
	pthread_cond_signal(&s->work_cond);
}

/* Free t if nothing holds it any more. */
static void tenant_forget(struct vg_http_server *s, struct tenant *t)
{
	if (t->running || t->waiting || t->in_ready)
		return;
	for (struct tenant **p = &s->tenants; *p; p = &(*p)->next)
		if (*p == t) {
			*p = t->next;
			break;
		}
	free(t->scope);
	free(t);
}

/* A place of t's given back (under cap_lock): t's next request may run,
 * or t goes if nothing holds it. */
static void place_return(struct vg_http_server *s, struct tenant *t)
{
	t->running--;
	__atomic_sub_fetch(&s->in_flight, 1, __ATOMIC_RELAXED);
	if (tenant_may_run(s, t))
		ready_push(s, t);
	else
		tenant_forget(s, t);
}

/* scope's entry, created if need be; NULL when out of memory. */
static struct tenant *tenant_get(struct vg_http_server *s, const char *scope)
{
	struct tenant *t;

	for (t = s->tenants; t; t = t->next)
		if (same_scope(t->scope, scope))
			return t;
	if (!(t = calloc(1, sizeof(*t))))
		return NULL;
	if (scope && !(t->scope = strdup(scope))) {
		free(t);
		return NULL;
	}
	t->next = s->tenants;
	s->tenants = t;
	return t;
}

/* The next request in turn, now counted running; NULL if none may run. */
static struct req_state *pool_next(struct vg_http_server *s)
{
	if (s->placed) /* counted running since their place was given */
		return rq_pop(&s->placed, &s->placed_tail);
	while (s->ready) {
		struct tenant *t = s->ready;
		struct req_state *st;

		s->ready = t->ready_next;
		if (!s->ready)
			s->ready_tail = NULL;
		t->in_ready = 0;
		if (!tenant_may_run(s, t)) { /* its waiting ones expired */
			tenant_forget(s, t);
			continue;
		}
		st = rq_pop(&t->qhead, &t->qtail);
		t->waiting--;
		t->running++;
		__atomic_sub_fetch(&s->queued, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&s->in_flight, 1, __ATOMIC_RELAXED);
		if (tenant_may_run(s, t))
			ready_push(s, t); /* at the end of the turn */
		return st;
	}
	return NULL;
}

/* st's answer is in st->resp: hand the connection back to libmicrohttpd,
 * which calls on_access again (it sends the answer). st is not touched
 * after this. */
static void pool_answer(struct req_state *st)
{
	struct MHD_Connection *c = st->conn;

	__atomic_store_n(&st->done, 1, __ATOMIC_RELEASE);
	MHD_resume_connection(c);
}

static void *pool_worker(void *arg)
{
	struct vg_http_server *s = arg;
	struct req_state *st;

	pthread_mutex_lock(&s->cap_lock);
	for (;;) {
		if (!(st = pool_next(s))) {
			if (s->pool_stop)
				break;
			pthread_cond_wait(&s->work_cond, &s->cap_lock);
			continue;
		}
		pthread_mutex_unlock(&s->cap_lock);
		if (st->before_body) {
			/* its place, not its handler: its connection is resumed
			 * and its body received (pool_submit again once whole) */
			pool_answer(st);
			pthread_mutex_lock(&s->cap_lock);
			continue;
		}
		vg_http_run(&st->req, &st->resp);
		pthread_mutex_lock(&s->cap_lock);
		/* the slot is given back before the answer is sent: a client
		 * that asks again once it read it always finds it free */
		struct tenant *t = st->tenant;
		st->tenant = NULL;
		place_return(s, t);
		pthread_mutex_unlock(&s->cap_lock);
		pool_answer(st);
		pthread_mutex_lock(&s->cap_lock);
	}
	pthread_mutex_unlock(&s->cap_lock);
	return NULL;
}

/* The cap's 429 into r: over the cap and its queue (waited_ms < 0), or
 * after waiting waited_ms in the queue. */
static void cap_reply(struct vg_http_server *s, const struct req_state *st,
		      struct vg_http_resp *r, int64_t waited_ms)
{
	char msg[200], more[80] = "";

	if (waited_ms >= 0)
		snprintf(more, sizeof(more), "; waited %lld ms for a place",
			 (long long)waited_ms);
	else if (s->o.queue_per_scope)
		snprintf(more, sizeof(more), ", and %u waiting", s->o.queue_per_scope);
	snprintf(msg, sizeof(msg),
		 "too many requests in flight for %s (at most %u at once%s); "
		 "retry when one of them is answered",
		 st->req.scope_project ? "this project" : "admin tokens",
		 s->o.max_per_scope, more);
	/* reason: the label of vigie_api_requests_refused_total, for clients
	 * (the CLI's retry) that must not parse the message */
	vg_http_reply_json(r, 429,
			   json_pack("{s:{s:i,s:s,s:s}}", "error", "code", 429, "message",
				     msg, "reason",
				     st->req.scope_project ? "project_concurrency"
							   : "admin_concurrency"));
	vg_http_resp_header(r, "Retry-After", "%d", VG_HTTP_CAP_RETRY_S);
}

/* Ends the requests that waited past their deadline with the cap's 429:
 * a worker may not come for a long time (every one in a slow handler),
 * so the bound on the wait cannot be left to them. Sleeps without a
 * deadline while nothing waits. */
static void *pool_timer(void *arg)
{
	struct vg_http_server *s = arg;
	struct timespec ts;
	uint64_t seen = 0;

	pthread_mutex_lock(&s->cap_lock);
	while (!s->pool_stop) {
		int64_t now = vg_monotonic_ms(), next = INT64_MAX;
		struct req_state *expired = NULL;

		for (struct tenant *t = s->tenants; t; t = t->next) {
			while (t->qhead && t->qhead->deadline_ms <= now) {
				struct req_state *st = rq_pop(&t->qhead, &t->qtail);
				t->waiting--;
				__atomic_sub_fetch(&s->queued, 1, __ATOMIC_RELAXED);
				st->tenant = NULL;
				st->qnext = expired;
				expired = st;
			}
			if (t->qhead && t->qhead->deadline_ms < next)
				next = t->qhead->deadline_ms;
		}
		for (struct tenant *t = s->tenants, *n; t; t = n) {
			n = t->next;
			tenant_forget(s, t);
		}
		if (expired) {
			pthread_mutex_unlock(&s->cap_lock);
			while (expired) {
				struct req_state *st = expired;
				expired = st->qnext;
				st->cap_refused = 1;
				cap_refused(s, st);
				cap_reply(s, st, &st->resp,
					  now - (st->deadline_ms - s->o.queue_wait_ms));
				pool_answer(st);
			}
			pthread_mutex_lock(&s->cap_lock);
			continue;
		}
		/* Nothing waits. While requests come, sleep one wait's length,
		 * not until signalled: a request queued meanwhile has its
		 * deadline after that, and waking the timer for every request
		 * (the first after each idle sleep) cost a thread switch per
		 * request. A whole wait without a request: sleep until one. */
		if (next == INT64_MAX && s->submits == seen) {
			s->timer_idle = 1;
			pthread_cond_wait(&s->timer_cond, &s->cap_lock);
			s->timer_idle = 0;
			continue;
		}
		if (next == INT64_MAX) {
			seen = s->submits;
			next = now + s->o.queue_wait_ms;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t wait = next - now;
		ts.tv_sec += wait / 1000;
		ts.tv_nsec += (wait % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->timer_cond, &s->cap_lock, &ts);
	}
	pthread_mutex_unlock(&s->cap_lock);
	return NULL;
}

/* Hand st to the workers: its connection is suspended until its answer is
 * ready (pool_answer), so this libmicrohttpd thread goes on with its other
 * connections. Over its tenant's cap and queue, at a stop, or out of
 * memory, the answer is made here (429, 503, or the handler run on this
 * thread) and the connection resumed at once. */
static enum MHD_Result pool_submit(struct vg_http_server *s, struct req_state *st,
				   struct MHD_Connection *c)
{
	int capped = s->o.max_per_scope && s->o.authorize;
	struct tenant *t = NULL;
	int refuse = 0; /* 1: the cap, 2: stopping, 3: out of memory */

	st->conn = c;
	st->in_pool = 1;
	/* before the request is visible to a worker, which may resume it */
	MHD_suspend_connection(c);
	pthread_mutex_lock(&s->cap_lock);
	if (s->pool_stop) {
		refuse = 2;
		st->tenant = NULL; /* (a place before its body: pool_stop freed it) */
	} else if (st->tenant) {
		/* its place taken before its body, which is now whole: to a
		 * worker, ahead of the turn, no second wait */
		rq_append(&s->placed, &s->placed_tail, st);
		pthread_cond_signal(&s->work_cond);
	} else if (!(t = tenant_get(s, st->req.scope_project)))
		refuse = 3;
	else if (capped &&
		 t->running + t->waiting >= s->o.max_per_scope + s->o.queue_per_scope)
		refuse = 1;
	else {
		if (capped && t->running + t->waiting >= s->o.max_per_scope)
			__atomic_add_fetch(&s->queued_total, 1, __ATOMIC_RELAXED);
		st->tenant = t;
		/* without a cap nothing is refused: the wait is for a worker */
		st->deadline_ms = capped ? vg_monotonic_ms() + s->o.queue_wait_ms : INT64_MAX;
		rq_append(&t->qhead, &t->qtail, st);
		t->waiting++;
		s->submits++;
		__atomic_add_fetch(&s->queued, 1, __ATOMIC_RELAXED);
		if (tenant_may_run(s, t))
			ready_push(s, t);
		if (s->timer_idle)
			pthread_cond_signal(&s->timer_cond);
	}
	pthread_mutex_unlock(&s->cap_lock);
	if (refuse == 1) {
		st->cap_refused = 1;
		cap_refused(s, st);
		cap_reply(s, st, &st->resp, -1);
	} else if (refuse == 2) {
		vg_http_reply_error(&st->resp, 503, "the server is stopping");
	} else if (refuse == 3 && !st->before_body) {
		/* refusing it for our own lack of memory would be worse (one
		 * before its body goes on without a place: resp left empty) */
		vg_http_run(&st->req, &st->resp);
	}
	if (refuse)
		pool_answer(st);
	return MHD_YES;
}

/* Give back the place st took before its body (first_call), if it holds
 * one and is not on a worker: its body was too large, or its sender went
 * away. After pool_stop the tenants are gone: nothing to give back. */
static void place_give(struct vg_http_server *s, struct req_state *st)
{
	struct tenant *t = st->tenant;

	if (!t || st->in_pool || st->before_body)
		return;
	pthread_mutex_lock(&s->cap_lock);
	st->tenant = NULL;
	if (!s->pool_stop)
		place_return(s, t);
	pthread_mutex_unlock(&s->cap_lock);
}

/* 0, or -EAGAIN (no thread: what started is stopped). */
static int pool_start(struct vg_http_server *s)
{
	vg_cond_init_monotonic(&s->timer_cond);
	pthread_cond_init(&s->work_cond, NULL);
	if (!(s->workers = calloc(s->o.threads, sizeof(*s->workers))))
		return -EAGAIN;
	if (!pthread_create(&s->timer, NULL, pool_timer, s))
		s->timer_started = 1;
	for (unsigned i = 0; s->timer_started && i < s->o.threads; i++) {
		if (pthread_create(&s->workers[i], NULL, pool_worker, s))
			return -EAGAIN;
		s->nworkers++;
	}
	return s->timer_started ? 0 : -EAGAIN;
}

/* Answer what still waits (503), let the running handlers end, join the
 * threads. No handler runs after it returns. */
static void pool_stop(struct vg_http_server *s)
{
	struct req_state *left = NULL;

	pthread_mutex_lock(&s->cap_lock);
	s->pool_stop = 1;
	for (struct tenant *t = s->tenants; t; t = t->next) {
		while (t->qhead) {
			struct req_state *st = t->qhead;
			t->qhead = st->qnext;
			t->waiting--;
			__atomic_sub_fetch(&s->queued, 1, __ATOMIC_RELAXED);
			st->tenant = NULL;
			st->qnext = left;
			left = st;
		}
		t->qtail = NULL;
	}
	while (s->placed) {
		struct req_state *st = s->placed;
		s->placed = st->qnext;
		st->tenant = NULL;
		st->qnext = left;
		left = st;
	}
	s->placed_tail = NULL;
	pthread_cond_broadcast(&s->work_cond);
	pthread_cond_signal(&s->timer_cond);
	pthread_mutex_unlock(&s->cap_lock);
	while (left) {
		struct req_state *st = left;
		left = st->qnext;
		vg_http_reply_error(&st->resp, 503, "the server is stopping");
		pool_answer(st);
	}
	for (unsigned i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	if (s->timer_started)
		pthread_join(s->timer, NULL);
	free(s->workers);
	s->workers = NULL;
	s->nworkers = 0;
	s->timer_started = 0;
	while (s->tenants) { /* nothing runs or waits: only the turn's */
		struct tenant *t = s->tenants;
		s->tenants = t->next;
		free(t->scope);
		free(t);
	}
	s->ready = s->ready_tail = NULL;
	pthread_cond_destroy(&s->work_cond);
	pthread_cond_destroy(&s->timer_cond);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct req_state *st = *con_cls;

	(void)c;
	(void)toe;
	if (!st)
		return;
	/* a body's sender that went away (or timed out) while sending it
	 * held a place */
	place_give(cls, st);
	vg_http_req_release(&st->req);
	vg_http_resp_release(&st->resp);
	free(st->uri);
	free(st->body);
	free(st);
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct vg_http_server *s = cls;
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	/* libmicrohttpd says so, and only so, when it closes a new
	 * connection at its limit or for want of a file descriptor */
	if (strstr(msg, "reached connection limit") || strstr(msg, "resource limit"))
		__atomic_fetch_add(&s->conn_refused, 1, __ATOMIC_RELAXED);
	vg_log_limited(VG_LOG_WARN, &s->mhd_log_count, "http: %s", msg);
}

unsigned vg_http_conn_cap(unsigned want, uint64_t nofile)
{
	uint64_t room = nofile > VG_HTTP_FD_RESERVE ? (nofile - VG_HTTP_FD_RESERVE) / 2 : 0;

	if (!want)
		want = VG_HTTP_CONN_LIMIT;
	if (room < 16)
		room = 16;
	return want < room ? want : (unsigned)room;
}

/* Bad input is rejected (the 4xx), counted (vigie_api_requests_total)
 * and logged once: at info, the first answer of each status, then every
 * 1000th with the running count (vg_log_limited), so an operator sees it
 * in the log at the default level and a hostile client cannot flood it.
 * The line names the request, the client's address and the reason (the
 * message of a JSON error body of at most 4 KiB). */
static void log_rejected(struct vg_http_server *s, const struct req_state *st,
			 struct MHD_Connection *c, const struct vg_http_resp *r)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char peer[INET6_ADDRSTRLEN] = "?";
	const char *why = NULL;
	json_t *j = NULL;

	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
				  peer, sizeof(peer));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6,
				  &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, peer,
				  sizeof(peer));
	}
	if (r->body && r->len <= 4096 && r->content_type &&
	    !strcmp(r->content_type, "application/json"))
		j = json_loadb(r->body, r->len, 0, NULL);
	why = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
	vg_log_limited(VG_LOG_INFO, &s->rejected[r->status - 400],
		       "http: rejected %s %.200s from %s: %d%s%.300s",
		       st->req.method_name ? st->req.method_name : "-",
		       st->req.path ? st->req.path : "-", peer, r->status, why ? " " : "",
		       why ? why : "");
	json_decref(j);
}

static enum MHD_Result send_resp(struct vg_http_server *s,
				 struct req_state *st,
				 struct MHD_Connection *c,
				 struct vg_http_resp *r)
{
	struct MHD_Response *mr;
	enum MHD_Result ret;

	if (!r->status)
		vg_http_reply_error(r, 500, "internal error");
	/* (a refusal of the cap has its own log line, once per interval;
	 * a handler that logged its refusal said so in r->logged) */
	if (r->status >= 400 && r->status < 500 && !st->cap_refused && !r->logged)
		log_rejected(s, st, c, r); /* before the body goes to libmicrohttpd */
	if (r->stream) {
		struct vg_http_stream *hs = r->stream;
		r->stream = NULL;
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
			c, MHD_CONNECTION_INFO_CONNECTION_FD);
		hs->server = s;
		hs->conn = c;
		hs->fd = ci ? (int)ci->connect_fd : -1;
		pthread_mutex_lock(&s->streams_lock);
		hs->next = s->streams;
		if (s->streams)
			s->streams->prev = hs;
		else /* the prober sleeps while there is no stream */
			pthread_cond_signal(&s->prober_cond);
		s->streams = hs;
		pthread_mutex_unlock(&s->streams_lock);
		mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
						       stream_reader, hs,
						       stream_free_cb);
		if (!mr) {
			stream_destroy(hs);
			vg_http_resp_release(r);
			return MHD_NO;
		}
	} else if (r->body) {
		mr = MHD_create_response_from_buffer(r->len, r->body,
						     MHD_RESPMEM_MUST_FREE);
		if (mr)
			r->body = NULL; /* now owned by libmicrohttpd */
	} else {
		mr = MHD_create_response_from_buffer(0, (void *)"",
						     MHD_RESPMEM_PERSISTENT);
	}
	if (!mr) {
		vg_http_resp_release(r);
		return MHD_NO;
	}
	MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE,
				r->content_type ? r->content_type
						: "application/json");
	MHD_add_response_header(mr, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
	for (size_t i = 0; i < r->nheaders; i++)
		MHD_add_response_header(mr, r->headers[i].name,
					r->headers[i].value);
	ret = MHD_queue_response(c, (unsigned)r->status, mr);
	MHD_destroy_response(mr);
	st->replied = 1;
	if (r->status >= 100 && r->status < 600)
		__atomic_add_fetch(&s->responses[r->status / 100], 1,
				   __ATOMIC_RELAXED);
	if (r->status >= 500)
		vg_log_limited(VG_LOG_WARN, &s->err_5xx,
			       "http: %s %.200s -> %d", st->req.method_name,
			       st->req.path, r->status);
	else
		vg_debug("http: %s %.200s -> %d (%lld ms)", st->req.method_name,
			 st->req.path, r->status,
			 (long long)(vg_monotonic_ms() - st->t0_ms));
	vg_http_resp_release(r);
	return ret;
}

static enum MHD_Result reply_now(struct vg_http_server *s,
				 struct req_state *st,
				 struct MHD_Connection *c, int status,
				 const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static enum MHD_Result reply_now(struct vg_http_server *s,
				 struct req_state *st,
				 struct MHD_Connection *c, int status,
				 const char *fmt, ...)
{
	struct vg_http_resp r = {0};
	va_list ap;

	va_start(ap, fmt);
	vg_http_reply_verror(&r, status, fmt, ap);
	va_end(ap);
	return send_resp(s, st, c, &r);
}

/* MHD_get_connection_values callback: count the Authorization headers. */
static enum MHD_Result count_authorization(void *cls, enum MHD_ValueKind kind,
					   const char *key, const char *value)
{
	(void)kind;
	(void)value;
	if (key && !strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION))
		++*(unsigned *)cls;
	return MHD_YES;
}

/* First call: headers are in, no body read yet. Refuse what we can. */
static enum MHD_Result first_call(struct vg_http_server *s,
				  struct req_state *st,
				  struct MHD_Connection *c, const char *method)
{
	const char *cl, *te;
	unsigned long long body_len = 0;
	unsigned allowed = 0;
	int rc;

	if (st->too_long) {
		st->req.method_name = method;
		st->req.path = "(too long)";
		return reply_now(s, st, c, 414,
				 "request URI longer than %d bytes",
				 VG_HTTP_MAX_URI);
	}
	rc = vg_http_req_parse(&st->req, method, st->uri);
	st->req.ctx = s->o.ctx;
	st->req.now_ms = vg_now_ms();
	if (rc == -E2BIG)
		return reply_now(s, st, c, 400,
				 "too many query parameters (limit %d)",
				 VG_HTTP_MAX_PARAMS);
	if (rc == -ELOOP)
		return reply_now(s, st, c, 404, "no such endpoint");
	if (rc == -ENOMEM)
		return reply_now(s, st, c, 503, "out of memory");
	if (rc)
		return reply_now(s, st, c, 400,
				 "malformed request URI (bad %%-escape or "
				 "not an absolute path)");
	rc = vg_http_route_find(s->o.routes, s->o.nroutes, &st->req, &allowed);
	if (rc) {
		struct vg_http_resp r = {0};
		/* dispatch() produces the 404/405 with its Allow header */
		vg_http_dispatch(s->o.routes, s->o.nroutes, NULL, &st->req, &r);
		return send_resp(s, st, c, &r);
	}
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_CONTENT_LENGTH);
	te = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_TRANSFER_ENCODING);
	if (cl)
		body_len = strtoull(cl, NULL, 10);
	if ((body_len > 0 || te) && st->req.route->max_body == 0)
		return reply_now(s, st, c, 413,
				 "%s %.200s takes no request body", method,
				 st->req.path);
	if (body_len > st->req.route->max_body)
		return reply_now(s, st, c, 413,
				 "request body larger than %zu bytes",
				 st->req.route->max_body);
	/* Two credentials are ambiguous: this server would take the first,
	 * a proxy in front may have checked the last (RFC 9110: the field
	 * is not a list). Refused before either is looked at. */
	unsigned nauth = 0;
	MHD_get_connection_values(c, MHD_HEADER_KIND, count_authorization, &nauth);
	if (nauth > 1)
		return reply_now(s, st, c, 400, "more than one Authorization header");
	st->req.authorization = MHD_lookup_connection_value(
		c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	st->req.last_event_id = MHD_lookup_connection_value(
		c, MHD_HEADER_KIND, "Last-Event-ID");
	/* A body is kept whole (up to the route's max_body: 16 MiB for
	 * published measures) until the request is complete, so it is taken
	 * from a client whose token holds only: checked once the headers
	 * are in, before any byte of it, or 1,024 connections without a
	 * token held 16 GiB of the collector's memory. What the check
	 * refuses is answered now and its body dropped (DISCARD_MAX). */
	if (body_len > 0 || te) {
		struct vg_http_resp r = {0};
		if (!vg_http_check(s->o.routes, s->o.nroutes, s->o.authorize, &st->req,
				   &r))
			return send_resp(s, st, c, &r);
		st->checked = 1;
		/* and the body is received in a place of the tenant's cap, so
		 * one tenant's slow uploads hold at most that many bodies
		 * (1,024 connections of one token held 16 GiB): the request
		 * waits in its tenant's queue before its body, its connection
		 * suspended, not one byte read; a worker that gives it its
		 * place resumes it (on_access: the first call again) */
		if (s->o.max_per_scope && s->o.authorize &&
		    !(st->req.route->flags & VG_ROUTE_PUBLIC)) {
			st->before_body = 1;
			return pool_submit(s, st, c);
		}
	}
	return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c,
				 const char *url, const char *method,
				 const char *version, const char *upload,
				 size_t *upload_size, void **con_cls)
{
	struct vg_http_server *s = cls;
	struct req_state *st = *con_cls;
	struct vg_http_resp r = {0};

	(void)url;
	(void)version;
	if (!st) { /* the URI callback could not allocate */
		static const char oom[] =
			"{\"error\":{\"code\":503,\"message\":\"out of memory\"}}";
		struct MHD_Response *mr = MHD_create_response_from_buffer(
			sizeof(oom) - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
		enum MHD_Result ret;
		if (!mr)
			return MHD_NO;
		ret = MHD_queue_response(c, 503, mr);
		MHD_destroy_response(mr);
		return ret;
	}
	if (st->in_pool) { /* resumed: its answer is ready */
		if (!__atomic_load_n(&st->done, __ATOMIC_ACQUIRE))
			return MHD_YES; /* (suspended until then: not seen) */
		st->in_pool = 0;
		__atomic_store_n(&st->done, 0, __ATOMIC_RELAXED);
		/* waited before its body: libmicrohttpd calls this again as
		 * the first call (it was suspended in it); with its place (or
		 * none to be had for lack of memory: resp empty) the body
		 * comes next, else its refusal is sent and the body dropped */
		if (st->before_body) {
			st->before_body = 0;
			if (!st->resp.status)
				return MHD_YES;
		}
		return send_resp(s, st, c, &st->resp);
	}
	if (!st->started) {
		st->started = 1;
		return first_call(s, st, c, method);
	}
	if (*upload_size) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (st->replied) {
			st->discarded += n;
			return st->discarded > DISCARD_MAX ? MHD_NO : MHD_YES;
		}
		if (st->body_over || st->body_len + n > st->req.route->max_body) {
			st->body_over = 1;
			free(st->body);
			st->body = NULL;
			return MHD_YES;
		}
		char *b = realloc(st->body, st->body_len + n + 1);
		if (!b) {
			st->body_over = 1;
			return MHD_YES;
		}
		memcpy(b + st->body_len, upload, n);
		st->body = b;
		st->body_len += n;
		st->body[st->body_len] = '\0';
		return MHD_YES;
	}
	if (st->replied)
		return MHD_YES;
	if (st->body_over) {
		place_give(s, st);
		return reply_now(s, st, c, 413,
				 "request body larger than %zu bytes",
				 st->req.route->max_body);
	}
	st->req.body = st->body;
	st->req.body_len = st->body_len;
	if (!st->checked &&
	    !vg_http_check(s->o.routes, s->o.nroutes, s->o.authorize, &st->req, &r))
		return send_resp(s, st, c, &r);
	/* the public routes (health, the console's files) take no place and
	 * run here; the others on a worker, this connection suspended */
	if (st->req.route->flags & VG_ROUTE_PUBLIC) {
		vg_http_run(&st->req, &r);
		return send_resp(s, st, c, &r);
	}
	return pool_submit(s, st, c);
}

int vg_http_start(const struct vg_http_options *o,
		  struct vg_http_server **out, char *err, size_t errlen)
{
	struct vg_listen_addr la;
	struct vg_http_server *s;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd, rc;

	*out = NULL;
	if (!o || !o->routes || !o->nroutes) {
		snprintf(err, errlen, "http: no routes");
		return -EINVAL;
	}
	rc = vg_listen_parse(o->listen, &la, err, errlen);
	if (rc)
		return rc;
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->o = *o;
	pthread_mutex_init(&s->streams_lock, NULL);
	pthread_mutex_init(&s->cap_lock, NULL);
	if (!s->o.threads)
		s->o.threads = 1;
	{
		/* each connection holds a file descriptor: at the process's
		 * limit libmicrohttpd spins on accept and every open of the
		 * collector fails (docs/operations.md "Open files") */
		struct rlimit rl;
		unsigned want = s->o.conn_limit ? s->o.conn_limit : VG_HTTP_CONN_LIMIT;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
			s->o.conn_limit = vg_http_conn_cap(want, (uint64_t)rl.rlim_cur);
		else
			s->o.conn_limit = want;
		if (s->o.conn_limit < want)
			vg_warn("http: at most %u connections (not %u): the open-file "
				"limit is %llu (LimitNOFILE, docs/operations.md)",
				s->o.conn_limit, want, (unsigned long long)rl.rlim_cur);
	}
	if (!s->o.timeout_s)
		s->o.timeout_s = VG_HTTP_TIMEOUT_S;
	fd = vg_listen_socket(&la, err, errlen);
	if (fd < 0) {
		free(s);
		return fd;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		s->port = ntohs(ss.ss_family == AF_INET6
					? ((struct sockaddr_in6 *)&ss)->sin6_port
					: ((struct sockaddr_in *)&ss)->sin_port);
	/* One thread needs no pool (libmicrohttpd warns about a pool of 1). */
	struct MHD_OptionItem pool[] = {
		{MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)s->o.threads, NULL},
		{MHD_OPTION_END, 0, NULL},
	};
	if (s->o.threads < 2)
		pool[0].option = MHD_OPTION_END;
	/* HTTPS: libmicrohttpd's GnuTLS, key and certificate from memory */
	struct MHD_OptionItem tls[] = {
		{MHD_OPTION_HTTPS_MEM_KEY, 0, NULL},
		{MHD_OPTION_HTTPS_MEM_CERT, 0, NULL},
		{MHD_OPTION_END, 0, NULL},
	};
	unsigned tls_flag = 0;
	if (!o->tls_cert_pem != !o->tls_key_pem) {
		snprintf(err, errlen, "TLS needs both a certificate and a key");
		close(fd);
		free(s);
		return -EINVAL;
	}
	if (o->tls_cert_pem) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			snprintf(err, errlen, "this libmicrohttpd has no TLS "
					      "support");
			close(fd);
			free(s);
			return -ENOTSUP;
		}
		s->tls_cert = strdup(o->tls_cert_pem);
		s->tls_key = strdup(o->tls_key_pem);
		if (!s->tls_cert || !s->tls_key) {
			snprintf(err, errlen, "out of memory");
			free(s->tls_cert);
			free(s->tls_key);
			close(fd);
			free(s);
			return -ENOMEM;
		}
		tls[0].ptr_value = s->tls_key;
		tls[1].ptr_value = s->tls_cert;
		tls_flag = MHD_USE_TLS;
	} else {
		tls[0].option = MHD_OPTION_END;
	}
	if (!s->o.queue_wait_ms)
		s->o.queue_wait_ms = VG_HTTP_QUEUE_WAIT_MS;
	/* the workers before the first request can come */
	if (pool_start(s)) {
		snprintf(err, errlen, "%s: cannot start a thread", o->listen);
		pool_stop(s);
		close(fd);
		free(s->tls_cert);
		free(s->tls_key);
		free(s);
		return -EAGAIN;
	}
	s->d = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
			MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME | tls_flag,
		0, NULL, NULL, on_access, s,
		/* the logger first, so no message goes to stderr directly */
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
		MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
		MHD_OPTION_ARRAY, pool,
		MHD_OPTION_ARRAY, tls,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)s->o.conn_limit,
		/* one client (address) may hold at most a quarter of the
		 * connections, so a slow or hostile one cannot lock out others */
		MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		(unsigned int)(s->o.conn_limit >= 8 ? s->o.conn_limit / 4 : s->o.conn_limit),
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)s->o.timeout_s,
		/* the request line and headers must fit (http.h) */
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)VG_HTTP_CONN_MEMORY,
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
		MHD_OPTION_END);
	if (!s->d) {
		/* The socket may or may not have been closed by libmicrohttpd
		 * on its failure path; leaking it once at a failed start-up
		 * is safer than closing an fd number someone else reuses. */
		snprintf(err, errlen, "%s: libmicrohttpd failed to start%s",
			 o->listen, s->tls_cert ? " (check the TLS certificate "
						  "and key)"
						: "");
		pool_stop(s);
		free(s->tls_cert);
		free(s->tls_key);
		free(s);
		return -EIO;
	}
	if (prober_start(s)) {
		snprintf(err, errlen, "%s: cannot start a thread", o->listen);
		pool_stop(s);
		MHD_stop_daemon(s->d);
		free(s->tls_cert);
		free(s->tls_key);
		free(s);
		return -EAGAIN;
	}
	*out = s;
	return 0;
}

uint16_t vg_http_port(const struct vg_http_server *s)
{
	return s ? s->port : 0;
}

void vg_http_stop(struct vg_http_server *s)
{
	if (!s)
		return;
	/* the queued answered 503, the running ended, no handler after */
	pool_stop(s);
	prober_stop(s);
	/* end every stream: parked connections are resumed and their
	 * readers answer end-of-stream */
	pthread_mutex_lock(&s->streams_lock);
	__atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
	for (struct vg_http_stream *st = s->streams; st; st = st->next)
		vg_http_stream_wake(st);
	pthread_mutex_unlock(&s->streams_lock);
	MHD_stop_daemon(s->d); /* joins its threads; closes the socket */
	pthread_mutex_destroy(&s->cap_lock);
	free(s->tls_cert);
	free(s->tls_key);
	free(s);
}

void vg_http_get_stats(const struct vg_http_server *s,
		       struct vg_http_stats *out)
{
	const union MHD_DaemonInfo *di;

	memset(out, 0, sizeof(*out));
	if (!s)
		return;
	for (int i = 0; i < 6; i++)
		out->responses[i] = __atomic_load_n(&s->responses[i],
						    __ATOMIC_RELAXED);
	out->stream_probes = __atomic_load_n(&s->stream_probes, __ATOMIC_RELAXED);
	out->in_flight = __atomic_load_n(&s->in_flight, __ATOMIC_RELAXED);
	out->queued = __atomic_load_n(&s->queued, __ATOMIC_RELAXED);
	out->queued_total = __atomic_load_n(&s->queued_total, __ATOMIC_RELAXED);
	for (int i = 0; i < 2; i++)
		out->cap_refused[i] = __atomic_load_n(&s->cap_refused[i],
						      __ATOMIC_RELAXED);
	out->conn_limit = s->o.conn_limit;
	out->conn_refused = __atomic_load_n(&s->conn_refused, __ATOMIC_RELAXED);
	di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	if (di)
		out->connections = di->num_connections;
}
