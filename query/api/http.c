/*
 * http.c — the generic HTTP server under the JSON API: request parsing,
 * routing, limits, JSON errors, and libmicrohttpd plumbing.
 *
 * Design: libmicrohttpd runs an internal polling thread per worker (a
 * thread pool of `threads`, epoll when available). We bind the listening
 * socket ourselves so that "address in use" and "bad address" come back as
 * clear errors and so that port 0 (tests) can be read back. The raw
 * request-target is captured by the URI log callback, before
 * libmicrohttpd unescapes it, and we parse it ourselves: that keeps a
 * "%2F" inside a resource id from splitting the path, and gives one place
 * that enforces the URI length limit with a JSON 414.
 *
 * A request goes through on_access() in three phases: the first call
 * (headers in) parses and routes, refusing early (414, 400, 404, 405, 413)
 * before any body is read; upload calls collect a body for routes that
 * take one (bounded by the route's max_body); the last call dispatches to
 * the handler and queues its response.
 *
 * Invariants: every response we send is JSON unless a handler chose
 * another content type; a request body is never buffered beyond its
 * route's max_body; per-request state is freed by the completion
 * callback, which libmicrohttpd calls for every request whose URI log
 * callback ran. (vg_buf, the hand-written JSON buffer, is in jsonbuf.c.)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "vigie/clock.h"
#include "vigie/hex.h"
#include "query/api/http.h"
#include "vigie/log.h"

/* ---- methods ----------------------------------------------------------- */

static const struct {
	const char *name;
	int m;
} methods[] = {
	{"GET", VG_HTTP_GET},
	{"HEAD", VG_HTTP_HEAD},
	{"POST", VG_HTTP_POST},
	{"PUT", VG_HTTP_PUT},
	{"DELETE", VG_HTTP_DELETE},
	{"PATCH", VG_HTTP_PATCH},
	{"OPTIONS", VG_HTTP_OPTIONS},
};

int vg_http_method_parse(const char *name)
{
	for (size_t i = 0; name && i < sizeof(methods) / sizeof(methods[0]); i++)
		if (!strcmp(name, methods[i].name))
			return methods[i].m;
	return VG_HTTP_OTHER;
}

char *vg_http_methods_format(unsigned mask, char *buf, size_t len)
{
	size_t off = 0;

	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (!(mask & (unsigned)methods[i].m))
			continue;
		int n = snprintf(buf + off, len - off, "%s%s", off ? ", " : "",
				 methods[i].name);
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
	return buf;
}

/* ---- listen addresses ---------------------------------------------------- */

static int parse_port(const char *p, uint16_t *out)
{
	char *end;
	unsigned long v;

	if (!*p || *p == '-' || *p == '+' || *p == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoul(p, &end, 10);
	if (errno || *end || v > 65535)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

int vg_listen_parse(const char *s, struct vg_listen_addr *out, char *err,
		    size_t errlen)
{
	const char *colon, *port;
	char host[64];
	size_t hlen;

	memset(out, 0, sizeof(*out));
	if (!s || !*s) {
		snprintf(err, errlen, "empty listen address (expected HOST:PORT)");
		return -EINVAL;
	}
	if (s[0] == '[') { /* [v6]:port */
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':') {
			snprintf(err, errlen,
				 "'%s': expected [IPv6]:PORT, e.g. [::1]:7480", s);
			return -EINVAL;
		}
		hlen = (size_t)(close - s - 1);
		port = close + 2;
		if (hlen == 0 || hlen >= sizeof(host)) {
			snprintf(err, errlen, "'%s': bad IPv6 address", s);
			return -EINVAL;
		}
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		struct in6_addr a6;
		if (inet_pton(AF_INET6, host, &a6) != 1) {
			snprintf(err, errlen, "'%s': '%s' is not an IPv6 address",
				 s, host);
			return -EINVAL;
		}
		out->family = AF_INET6;
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			snprintf(err, errlen,
				 "'%s': missing port (expected HOST:PORT, "
				 "[IPv6]:PORT or :PORT)",
				 s);
			return -EINVAL;
		}
		if (memchr(s, ':', (size_t)(colon - s))) {
			snprintf(err, errlen,
				 "'%s': write an IPv6 address in brackets, "
				 "e.g. [::1]:7480",
				 s);
			return -EINVAL;
		}
		hlen = (size_t)(colon - s);
		port = colon + 1;
		if (hlen >= sizeof(host)) {
			snprintf(err, errlen, "'%s': host too long", s);
			return -EINVAL;
		}
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		if (hlen == 0 || !strcmp(host, "*")) {
			host[0] = '\0';
			out->family = AF_UNSPEC;
		} else if (!strcmp(host, "localhost")) {
			strcpy(host, "127.0.0.1");
			out->family = AF_INET;
		} else {
			struct in_addr a4;
			if (inet_pton(AF_INET, host, &a4) != 1) {
				snprintf(err, errlen,
					 "'%s': '%s' is not an IPv4 address "
					 "(use a numeric address, [IPv6], "
					 "localhost or an empty host for all)",
					 s, host);
				return -EINVAL;
			}
			out->family = AF_INET;
		}
	}
	if (parse_port(port, &out->port)) {
		snprintf(err, errlen, "'%s': port must be a number 0..65535", s);
		return -EINVAL;
	}
	snprintf(out->host, sizeof(out->host), "%s", host);
	return 0;
}

int vg_listen_socket(const struct vg_listen_addr *a, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd = -1, family = a->family, one = 1, zero = 0, e;

	for (int attempt = 0; attempt < 2; attempt++) {
		memset(&ss, 0, sizeof(ss));
		if (family == AF_INET6 || family == AF_UNSPEC) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons(a->port);
			if (family == AF_UNSPEC)
				s6->sin6_addr = in6addr_any;
			else
				inet_pton(AF_INET6, a->host, &s6->sin6_addr);
			sl = sizeof(*s6);
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			s4->sin_family = AF_INET;
			s4->sin_port = htons(a->port);
			if (a->host[0])
				inet_pton(AF_INET, a->host, &s4->sin_addr);
			else
				s4->sin_addr.s_addr = htonl(INADDR_ANY);
			sl = sizeof(*s4);
		}
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 && family == AF_UNSPEC &&
		    (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT)) {
			family = AF_INET; /* no IPv6 here: all IPv4 addresses */
			continue;
		}
		break;
	}
	if (fd < 0) {
		e = errno;
		snprintf(err, errlen, "socket: %s", strerror(e));
		return -e;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY,
			   family == AF_UNSPEC ? &zero : &one, sizeof(int));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 128) < 0) {
		e = errno;
		if (a->family == AF_INET6)
			snprintf(err, errlen, "[%s]:%u: %s", a->host,
				 (unsigned)a->port, strerror(e));
		else
			snprintf(err, errlen, "%s:%u: %s", a->host,
				 (unsigned)a->port, strerror(e));
		close(fd);
		return -e;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		e = errno;
		snprintf(err, errlen, "fcntl: %s", strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}

/* ---- request parsing ----------------------------------------------------- */

int vg_http_unescape(const char *src, size_t len, char *dst, int plus_is_space)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char c = src[i];
		if (c == '%') {
			int h, l;
			if (i + 2 >= len)
				return -EINVAL;
			h = vg_hex_digit((unsigned char)src[i + 1]);
			l = vg_hex_digit((unsigned char)src[i + 2]);
			if (h < 0 || l < 0)
				return -EINVAL;
			c = (char)(h << 4 | l);
			if (!c)
				return -EINVAL;
			i += 2;
		} else if (c == '+' && plus_is_space) {
			c = ' ';
		} else if (!c) {
			return -EINVAL;
		}
		dst[o++] = c;
	}
	dst[o] = '\0';
	return (int)o;
}

int vg_http_req_parse(struct vg_http_req *req, const char *method,
		      const char *raw)
{
	size_t len;
	char *raw_copy, *dec, *q, *p;
	int n;

	memset(req, 0, sizeof(*req));
	req->method_name = method ? method : "";
	req->method = vg_http_method_parse(method);
	req->path = "";
	if (!raw)
		return -EINVAL;
	len = strlen(raw);
	if (len > VG_HTTP_MAX_URI)
		return -ENAMETOOLONG;
	if (raw[0] != '/')
		return -EINVAL;
	/* One allocation: the raw copy (path, for logs and {rest*}), then
	 * the decoded strings, which never need more than len + 2 bytes
	 * because every decoded piece was followed by a separator. */
	req->buf = malloc(2 * len + 4);
	if (!req->buf)
		return -ENOMEM;
	raw_copy = req->buf;
	memcpy(raw_copy, raw, len + 1);
	dec = raw_copy + len + 1;
	q = strchr(raw_copy, '?');
	if (q)
		*q++ = '\0';
	p = strchr(raw_copy, '#'); /* a fragment is never sent; ignore it */
	if (p)
		*p = '\0';
	req->path = raw_copy;
	req->path_buf = raw_copy;

	/* Path segments. */
	p = raw_copy;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		char *end = strchrnul(p, '/');
		if (req->nseg == VG_HTTP_MAX_SEGMENTS)
			return -ELOOP;
		n = vg_http_unescape(p, (size_t)(end - p), dec, 0);
		if (n < 0)
			return -EINVAL;
		req->seg[req->nseg++] = dec;
		dec += n + 1;
		p = end;
	}

	/* Query parameters. */
	while (q && *q) {
		char *amp = strchrnul(q, '&');
		char *eq = memchr(q, '=', (size_t)(amp - q));
		size_t klen = eq ? (size_t)(eq - q) : (size_t)(amp - q);

		if (amp == q) { /* "&&" */
			q = *amp ? amp + 1 : amp;
			continue;
		}
		if (klen == 0)
			return -EINVAL;
		if (req->nparams == VG_HTTP_MAX_PARAMS)
			return -E2BIG;
		struct vg_http_param *pp = &req->params[req->nparams++];
		n = vg_http_unescape(q, klen, dec, 1);
		if (n < 0)
			return -EINVAL;
		pp->key = dec;
		dec += n + 1;
		if (eq) {
			n = vg_http_unescape(eq + 1, (size_t)(amp - eq - 1), dec, 1);
			if (n < 0)
				return -EINVAL;
			pp->value = dec;
			dec += n + 1;
		} else {
			pp->value = "";
		}
		q = *amp ? amp + 1 : amp;
	}
	return 0;
}

void vg_http_req_release(struct vg_http_req *req)
{
	if (!req)
		return;
	free(req->buf);
	req->buf = NULL;
	req->path_buf = NULL;
}

const char *vg_http_param(const struct vg_http_req *req, const char *key)
{
	for (size_t i = 0; i < req->nparams; i++)
		if (!strcmp(req->params[i].key, key))
			return req->params[i].value;
	return NULL;
}

/* ---- responses ----------------------------------------------------------- */

/* A streamed reply. Created by vg_http_reply_stream, attached to the
 * server and its connection by send_resp, destroyed (release_fn first) by
 * libmicrohttpd's free callback or when the reply is dropped unsent. */
struct vg_http_stream {
	struct vg_http_stream *prev, *next; /* server->streams, once sent */
	struct vg_http_server *server;
	struct MHD_Connection *conn;
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

	if (!j) /* msg was not valid UTF-8: say so without echoing it */
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

/* ---- routing ------------------------------------------------------------- */

/* Match one pattern against req's segments; fills vars/rest on success. */
static int pattern_match(const char *pat, struct vg_http_req *req,
			 const char **vars, const char **rest)
{
	size_t i = 0, nv = 0;
	const char *p = pat;

	*rest = NULL;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *end = strchrnul(p, '/');
		size_t plen = (size_t)(end - p);

		if (plen >= 3 && p[0] == '{' && p[plen - 1] == '}' &&
		    p[plen - 2] == '*') {
			/* "{name*}": the raw rest of the path. */
			const char *r = req->path;
			size_t k = 0;
			/* walk i segments into the raw path */
			while (*r && k < i) {
				while (*r == '/')
					r++;
				r = strchrnul(r, '/');
				k++;
			}
			while (*r == '/')
				r++;
			*rest = r;
			return 1;
		}
		if (i >= req->nseg)
			return 0;
		if (plen >= 2 && p[0] == '{' && p[plen - 1] == '}') {
			if (nv == VG_HTTP_MAX_VARS)
				return 0;
			vars[nv++] = req->seg[i];
		} else if (strlen(req->seg[i]) != plen ||
			   memcmp(req->seg[i], p, plen)) {
			return 0;
		}
		i++;
		p = end;
	}
	return i == req->nseg;
}

int vg_http_route_find(const struct vg_route *routes, size_t n,
		       struct vg_http_req *req, unsigned *allowed)
{
	unsigned mask = 0;

	for (size_t i = 0; i < n; i++) {
		const char *vars[VG_HTTP_MAX_VARS] = {0};
		const char *rest = NULL;

		if (!pattern_match(routes[i].pattern, req, vars, &rest))
			continue;
		unsigned m = routes[i].methods;
		if (m & VG_HTTP_GET)
			m |= VG_HTTP_HEAD;
		if (m & (unsigned)req->method) {
			req->route = &routes[i];
			memcpy(req->vars, vars, sizeof(vars));
			req->rest = rest;
			return 0;
		}
		mask |= m;
	}
	if (allowed)
		*allowed = mask;
	return mask ? -EOPNOTSUPP : -ENOENT;
}

static int param_allowed(const struct vg_route *r, const char *key)
{
	if (r->flags & VG_ROUTE_ANY_PARAMS)
		return 1;
	for (const char *const *p = r->params; p && *p; p++)
		if (!strcmp(*p, key))
			return 1;
	return 0;
}

static void unknown_param(const struct vg_route *r, const char *key,
			  struct vg_http_resp *resp)
{
	char list[512] = "";
	size_t off = 0;

	for (const char *const *p = r->params; p && *p; p++) {
		int n = snprintf(list + off, sizeof(list) - off, "%s%s",
				 off ? ", " : "", *p);
		if (n < 0 || (size_t)n >= sizeof(list) - off)
			break;
		off += (size_t)n;
	}
	if (off)
		vg_http_reply_error(resp, 400,
				    "unknown parameter '%.64s' (accepted: %s)",
				    key, list);
	else
		vg_http_reply_error(resp, 400,
				    "unknown parameter '%.64s' (this endpoint "
				    "takes none)",
				    key);
}

void vg_http_dispatch(const struct vg_route *routes, size_t n,
		      vg_http_authorize_fn authorize, struct vg_http_req *req,
		      struct vg_http_resp *resp)
{
	unsigned allowed = 0;
	int rc = vg_http_route_find(routes, n, req, &allowed);

	if (rc == -ENOENT) {
		vg_http_reply_error(resp, 404, "no such endpoint: %.200s",
				    req->path);
		return;
	}
	if (rc == -EOPNOTSUPP) {
		char list[128];
		vg_http_methods_format(allowed, list, sizeof(list));
		vg_http_reply_error(resp, 405,
				    "method %.16s not allowed on %.200s "
				    "(allowed: %s)",
				    req->method_name,
				    req->path, list);
		vg_http_resp_header(resp, "Allow", "%s", list);
		return;
	}
	for (size_t i = 0; i < req->nparams; i++) {
		const char *key = req->params[i].key;
		if (!param_allowed(req->route, key)) {
			unknown_param(req->route, key, resp);
			return;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(req->params[j].key, key)) {
				vg_http_reply_error(resp, 400,
						    "parameter '%.64s' given "
						    "more than once",
						    key);
				return;
			}
	}
	if (authorize && !(req->route->flags & VG_ROUTE_PUBLIC) &&
	    authorize(req->ctx, req, resp)) {
		if (!resp->status)
			vg_http_reply_error(resp, 401, "unauthorized");
		return;
	}
	rc = req->route->handler(req, resp);
	if (!resp->status)
		vg_http_reply_error(resp, 500, "internal error (%s)",
				    rc < 0 ? strerror(-rc) : "no reply");
}

/* ---- the server ------------------------------------------------------------ */

struct vg_http_server {
	struct MHD_Daemon *d;
	pthread_mutex_t streams_lock; /* guards streams */
	struct vg_http_stream *streams;
	int stopping; /* __atomic */
	struct vg_http_options o;
	uint16_t port;
	uint64_t mhd_log_count;
	uint64_t err_5xx;
	uint64_t responses[6];    /* by status class, __atomic */
	char *tls_cert, *tls_key; /* PEM copies, or NULL (plain HTTP) */
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

/* libmicrohttpd asks for more body: produce it, or park the connection
 * (MHD_suspend_connection, no busy loop) until vg_http_stream_wake. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct vg_http_stream *st = cls;
	ssize_t n;

	(void)pos;
	if (__atomic_load_n(&st->server->stopping, __ATOMIC_ACQUIRE))
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
	int64_t t0_ms;
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

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct req_state *st = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (!st)
		return;
	vg_http_req_release(&st->req);
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
	vg_log_limited(VG_LOG_WARN, &s->mhd_log_count, "http: %s", msg);
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
	if (r->stream) {
		struct vg_http_stream *hs = r->stream;
		r->stream = NULL;
		hs->server = s;
		hs->conn = c;
		pthread_mutex_lock(&s->streams_lock);
		hs->next = s->streams;
		if (s->streams)
			s->streams->prev = hs;
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
	st->req.authorization = MHD_lookup_connection_value(
		c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	st->req.last_event_id = MHD_lookup_connection_value(
		c, MHD_HEADER_KIND, "Last-Event-ID");
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
	if (st->body_over)
		return reply_now(s, st, c, 413,
				 "request body larger than %zu bytes",
				 st->req.route->max_body);
	st->req.body = st->body;
	st->req.body_len = st->body_len;
	vg_http_dispatch(s->o.routes, s->o.nroutes, s->o.authorize, &st->req,
			 &r);
	return send_resp(s, st, c, &r);
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
	if (!s->o.threads)
		s->o.threads = 1;
	if (!s->o.conn_limit)
		s->o.conn_limit = VG_HTTP_CONN_LIMIT;
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
		free(s->tls_cert);
		free(s->tls_key);
		free(s);
		return -EIO;
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
	/* end every stream: parked connections are resumed and their
	 * readers answer end-of-stream */
	pthread_mutex_lock(&s->streams_lock);
	__atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
	for (struct vg_http_stream *st = s->streams; st; st = st->next)
		vg_http_stream_wake(st);
	pthread_mutex_unlock(&s->streams_lock);
	MHD_stop_daemon(s->d); /* joins the workers; closes the socket */
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
	di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	if (di)
		out->connections = di->num_connections;
}
