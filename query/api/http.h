/*
 * vigie — the generic HTTP layer under the JSON API (query/api/http.c, the
 * server; http_request.c, parsing and routing; http_listen.c, the listen
 * addresses).
 *
 * A small server on libmicrohttpd that knows nothing about resources or
 * measures: it parses the raw request URI itself (so a "%2F" inside a path
 * segment stays inside that segment), matches it against a route table,
 * enforces the limits (URI length, request bodies, unknown or repeated
 * query parameters), runs an optional authorisation hook, calls the route's
 * handler and sends what the handler put in a struct vg_http_resp. Every
 * error it produces itself is JSON: {"error":{"code":404,"message":"..."}}.
 *
 * Handlers never see libmicrohttpd: a struct vg_http_req is plain data, so
 * unit tests build one by hand (vg_http_req_parse) and call a handler or
 * vg_http_dispatch directly.
 *
 * Threading: the server runs a pool of worker threads of its own; a
 * handler runs on one of them and may run concurrently with itself on
 * others. libmicrohttpd's threads parse, authorise and write, and never
 * wait for a handler (its connection is suspended meanwhile); public
 * routes (VG_ROUTE_PUBLIC: health, console files) run on them at once.
 * The route table and ctx are read-only while the server runs.
 */
#ifndef VIGIE_HTTP_H
#define VIGIE_HTTP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

/* Limits (documented in docs/api.md). */
#define VG_HTTP_MAX_URI 4096    /* request-target bytes, else 414 */
#define VG_HTTP_MAX_PARAMS 32   /* query parameters, else 400 */
#define VG_HTTP_MAX_SEGMENTS 16 /* path segments, else 404 */
#define VG_HTTP_MAX_VARS 4      /* {vars} in one route pattern */
#define VG_HTTP_MAX_HEADERS 4   /* extra response headers */
#define VG_HTTP_TIMEOUT_S 30    /* idle connection timeout */
#define VG_HTTP_CONN_LIMIT 1024 /* concurrent connections */
/* File descriptors left to the rest of the process when the connection
 * limit is bounded by the open-file limit (vg_http_conn_cap). */
#define VG_HTTP_FD_RESERVE 256
/* libmicrohttpd's memory per connection (MHD_OPTION_CONNECTION_MEMORY_LIMIT,
 * set so the boundary below is ours, not a library default): the request
 * line and the headers must fit in it. A request-target over
 * VG_HTTP_MAX_URI whose line fits gets vigie's JSON 414; a request line
 * that does not fit (a target of about 32 KiB or more) never reaches
 * vigie: libmicrohttpd answers its own 414, and headers that do not fit
 * its own 431, each with a short HTML body and no Content-Type, then
 * closes the connection. libmicrohttpd 0.9.75 has no way to replace
 * those bodies (docs/api.md "Errors"). */
#define VG_HTTP_CONN_MEMORY (32u << 10)

/* Methods, as a bit mask so a route can accept several. */
enum vg_http_method {
	VG_HTTP_GET = 1 << 0,
	VG_HTTP_HEAD = 1 << 1,
	VG_HTTP_POST = 1 << 2,
	VG_HTTP_PUT = 1 << 3,
	VG_HTTP_DELETE = 1 << 4,
	VG_HTTP_PATCH = 1 << 5,
	VG_HTTP_OPTIONS = 1 << 6,
	VG_HTTP_OTHER = 1 << 15,
};
int vg_http_method_parse(const char *name); /* "GET" -> VG_HTTP_GET; else OTHER */
/* "GET, HEAD" for a mask, into buf. Returns buf. */
char *vg_http_methods_format(unsigned mask, char *buf, size_t len);

/* ---- listen addresses ------------------------------------------------- */

struct vg_listen_addr {
	int family;    /* AF_INET, AF_INET6, or AF_UNSPEC for "all addresses" */
	char host[64]; /* numeric address, "" for all */
	uint16_t port; /* 0 = any free port (tests) */
};

/* Parse "127.0.0.1:7480", "[::1]:7480", ":7480" (all addresses, IPv6
 * dual-stack when available, else IPv4), "*:7480" (same), "localhost:7480"
 * (127.0.0.1). Host names other than localhost are refused (no DNS at
 * start-up). 0, or -EINVAL with a one-line reason in err. Pure. */
int vg_listen_parse(const char *s, struct vg_listen_addr *out, char *err,
		    size_t errlen);

/* Create a listening TCP socket for a (SO_REUSEADDR, non-blocking,
 * backlog 128). Returns the fd or -errno with a reason in err
 * ("127.0.0.1:7480: Address already in use"). */
int vg_listen_socket(const struct vg_listen_addr *a, char *err, size_t errlen);

/* ---- requests --------------------------------------------------------- */

struct vg_http_param {
	const char *key;   /* decoded, NUL-terminated */
	const char *value; /* decoded; "" for "?flag" */
};

struct vg_route;

struct vg_http_req {
	int method;              /* enum vg_http_method */
	const char *method_name; /* as sent */
	const char *path;        /* raw path (before '?'), for logs */
	size_t nseg;
	const char *seg[VG_HTTP_MAX_SEGMENTS]; /* decoded path segments */
	size_t nparams;
	struct vg_http_param params[VG_HTTP_MAX_PARAMS];
	const char *vars[VG_HTTP_MAX_VARS]; /* route {vars}, in order */
	const char *rest;                   /* raw remainder for a "{name*}" pattern */
	const char *body;                   /* request body (routes with max_body) */
	size_t body_len;
	const char *authorization; /* Authorization header or NULL */
	const char *last_event_id; /* Last-Event-ID header (SSE) or NULL */
	const struct vg_route *route;
	void *ctx;      /* the server's ctx (the API) */
	int64_t now_ms; /* request arrival, UTC ms */
	/* Set by the authorisation hook (API tokens): NULL = sees everything;
	 * otherwise the only project whose data this request may read. */
	const char *scope_project;
	char scope_buf[256];
	/* private */
	char *buf;
	char *path_buf;
};

/* Parse a raw request-target ("/v1/resources/a%2Fb?limit=5&x=%20") into
 * req (which is zeroed first): path segments and query parameters are
 * percent-decoded ('+' is a space in the query), pointing into one
 * private copy. Empty segments ("//") are skipped. Returns 0, -EINVAL (bad
 * escape, NUL byte, not starting with '/'), -E2BIG (more than
 * VG_HTTP_MAX_PARAMS parameters), -ENAMETOOLONG (longer than
 * VG_HTTP_MAX_URI), -ELOOP (more than VG_HTTP_MAX_SEGMENTS segments),
 * -ENOMEM. Free with vg_http_req_release. */
int vg_http_req_parse(struct vg_http_req *req, const char *method,
		      const char *raw_uri);
void vg_http_req_release(struct vg_http_req *req); /* accepts zeroed req */

/* The decoded value of query parameter key, or NULL if absent. */
const char *vg_http_param(const struct vg_http_req *req, const char *key);

/* Percent-decode src[0..len) into dst (>= len + 1 bytes); plus_is_space
 * turns '+' into ' '. Returns the decoded length or -EINVAL for a bad
 * escape or a decoded NUL. Pure. */
int vg_http_unescape(const char *src, size_t len, char *dst,
		     int plus_is_space);

/* ---- responses -------------------------------------------------------- */

struct vg_http_stream;

struct vg_http_resp {
	int status;                    /* 0 until a reply is set */
	struct vg_http_stream *stream; /* streaming reply, see below */
	const char *content_type;      /* static string */
	char *body;                    /* malloc'd, owned by the response */
	size_t len;
	size_t nheaders;
	struct {
		const char *name; /* static */
		char value[128];
	} headers[VG_HTTP_MAX_HEADERS];
	/* Set by a handler that logged this 4xx itself, with more context
	 * than the server's own "http: rejected" line (which then is not
	 * written: one log line per refusal). */
	int logged;
};

/* Each reply function replaces any earlier reply and returns 0, or -ENOMEM
 * (the resp then holds a bare 500). */
/* JSON reply; takes ownership of j (json_decref'd). */
int vg_http_reply_json(struct vg_http_resp *r, int status, json_t *j);
/* Raw bytes; takes ownership of body (malloc'd). */
int vg_http_reply_raw(struct vg_http_resp *r, int status,
		      const char *content_type, char *body, size_t len);
/* The JSON error document for status and a printf-style message. */
int vg_http_reply_error(struct vg_http_resp *r, int status, const char *fmt,
			...) __attribute__((format(printf, 3, 4)));
int vg_http_reply_verror(struct vg_http_resp *r, int status, const char *fmt,
			 va_list ap);
/* Add a header (name must be a static string). 0 or -ENOSPC. */
int vg_http_resp_header(struct vg_http_resp *r, const char *name,
			const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void vg_http_resp_release(struct vg_http_resp *r); /* frees the body (and
							  an unsent stream) */

/* ---- streaming replies (Server-Sent Events) ------------------------------ */

#define VG_HTTP_HAVE_STREAM 1

/* Produce the next bytes of a streamed body into buf (at most max):
 * > 0 bytes written, 0 when nothing is ready (the connection is parked,
 * without a thread, until vg_http_stream_wake), -1 to end the response.
 * Runs on a worker thread and must not block. */
typedef ssize_t (*vg_http_stream_read_fn)(void *ctx, char *buf, size_t max);

/* Reply with a body produced over time by read_fn (no Content-Length).
 * ctx goes to read_fn and, exactly once, to release_fn: when the
 * connection ends, the server stops, or the reply is replaced or released
 * unsent. *stream (may be NULL) gets the handle to wake; it stays valid
 * until release_fn runs. Takes ownership of ctx, even on error. 0 or
 * -ENOMEM. */
int vg_http_reply_stream(struct vg_http_resp *r, int status,
			 const char *content_type, vg_http_stream_read_fn read_fn,
			 void (*release_fn)(void *ctx), void *ctx,
			 struct vg_http_stream **stream);

/* How often the server looks at the connections of parked streams (ones
 * whose read_fn answered 0) for a client that left: such a stream ends,
 * and its release_fn runs, within about this long of its client closing
 * the connection, without waiting for bytes to write. A stream that is
 * writing ends at its next read_fn call instead (checked before it).
 * While the server has no streamed reply, nothing wakes at this rate. */
#define VG_HTTP_STREAM_PROBE_MS 1000

/* New bytes may be ready: resume the parked connection. Thread-safe; call
 * it until release_fn ran (e.g. from a callback the releaser unregisters). */
void vg_http_stream_wake(struct vg_http_stream *s);

/* {"error":{"code":status,"message":msg}} as a malloc'd string, NULL on
 * out of memory. Pure. A msg that is not valid UTF-8 (an echoed request's
 * bytes, a character cut by "%.100s") is kept with each bad byte a '?'
 * (vg_text_clean). */
char *vg_http_error_json(int status, const char *msg);

/* ---- routes ----------------------------------------------------------- */

/* A handler fills resp and returns 0; a negative return without a reply
 * becomes a 500. It may read req->ctx (the server ctx). */
typedef int (*vg_http_handler)(struct vg_http_req *req,
			       struct vg_http_resp *resp);

enum vg_route_flags {
	VG_ROUTE_PUBLIC = 1 << 0,    /* the authorisation hook is skipped */
	VG_ROUTE_ANY_PARAMS = 1 << 1 /* do not reject unknown parameters */
};

struct vg_route {
	unsigned methods; /* mask of enum vg_http_method */
	/* "/v1/resources/{id}": literal segments, "{name}" takes one decoded
	 * segment into req->vars[i], a final "{name*}" takes the raw rest of
	 * the path (possibly empty) into req->rest. */
	const char *pattern;
	vg_http_handler handler;
	/* Accepted query parameters, NULL-terminated; NULL = none. Others
	 * get 400 unless VG_ROUTE_ANY_PARAMS. */
	const char *const *params;
	size_t max_body; /* 0: a request with a body gets 413 */
	unsigned flags;  /* enum vg_route_flags */
};

/* Find the route for req's path and method. Of the patterns that match
 * the path, only those with the most literal segments count (a literal
 * "/v1/alarms/stream" owns that path over "/v1/alarms/{id}"); among them
 * the first that takes the method wins. 0 (req->route and req->vars
 * set), -ENOENT (no pattern matches the path), -EOPNOTSUPP (the path
 * matches but not the method; *allowed gets the methods that would). */
int vg_http_route_find(const struct vg_route *routes, size_t n,
		       struct vg_http_req *req, unsigned *allowed);

/* Authorisation hook: 0 to let the request through (optionally setting
 * req->scope_project), or fill resp (401/403) and return non-zero. */
typedef int (*vg_http_authorize_fn)(void *ctx, struct vg_http_req *req,
				    struct vg_http_resp *resp);

/* The checks of vg_http_dispatch before the handler: route, parameters
 * and the authorisation hook (skipped for VG_ROUTE_PUBLIC). 1 when the
 * handler may run (req->route set, and req->scope_project as the hook
 * left it), else 0 with the reply in resp. The server runs these, then
 * its per-tenant cap (vg_http_options.max_per_scope), then vg_http_run. */
int vg_http_check(const struct vg_route *routes, size_t n,
		  vg_http_authorize_fn authorize, struct vg_http_req *req,
		  struct vg_http_resp *resp);
/* Call req->route's handler; a 500 if it set no reply. */
void vg_http_run(struct vg_http_req *req, struct vg_http_resp *resp);

/* Route, validate parameters, authorise and call the handler: what the
 * server does once the request (and any body) is in. Always leaves a
 * reply in resp: 404 unknown path, 405 wrong method (with Allow), 400
 * unknown or repeated parameter, the hook's reply, or the handler's
 * (500 if the handler set none). HEAD is served by GET routes. */
void vg_http_dispatch(const struct vg_route *routes, size_t n,
		      vg_http_authorize_fn authorize, struct vg_http_req *req,
		      struct vg_http_resp *resp);

/* ---- the server ------------------------------------------------------- */

struct vg_http_server;

struct vg_http_options {
	const char *listen;            /* see vg_listen_parse */
	unsigned threads;              /* worker threads, >= 1 */
	unsigned conn_limit;           /* 0 = VG_HTTP_CONN_LIMIT */
	unsigned timeout_s;            /* 0 = VG_HTTP_TIMEOUT_S */
	const struct vg_route *routes; /* must outlive the server */
	size_t nroutes;
	vg_http_authorize_fn authorize; /* may be NULL: everything allowed */
	void *ctx;                      /* handed to handlers as req->ctx */
	/* HTTPS (libmicrohttpd with GnuTLS): both PEM texts, or both NULL
	 * for plain HTTP. Copied by vg_http_start. */
	const char *tls_cert_pem; /* certificate chain */
	const char *tls_key_pem;  /* its private key (unencrypted) */
	/* Per-tenant cap: at most this many requests of one scope in flight
	 * at once (0: no cap). A tenant is the req->scope_project the
	 * authorisation hook left (a project); requests it left with none (an
	 * admin token) share one bucket of their own with the same cap.
	 * Requests the hook refused, and routes without the hook
	 * (VG_ROUTE_PUBLIC, or no hook at all), take no slot. A request holds
	 * its slot while its handler runs on a worker, until the handler
	 * returned: writing the answer holds no thread (a slow reader takes
	 * no slot), and a streamed reply is parked without one (its handler
	 * bounds the streams of a tenant itself). Over the cap the request
	 * waits (below); past the queue: 429, the JSON error with
	 * Retry-After: VG_HTTP_CAP_RETRY_S, counted
	 * (vg_http_stats.cap_refused) and logged at most once per
	 * VG_HTTP_CAP_LOG_MS, not per request. */
	unsigned max_per_scope;
	/* The queue in front of the cap: a request over its tenant's cap
	 * waits for a slot (its connection suspended, no thread held) in its
	 * tenant's FIFO, tenants served in turn (round robin). At most
	 * max_per_scope + queue_per_scope requests of one tenant between its
	 * hook and its answer (on a worker or waiting, for a slot or for a
	 * worker); one more is answered the cap's 429 at once. A request
	 * that waited queue_wait_ms without a worker taking it is answered
	 * the same 429 then. queue_per_scope 0: no queue (429 at once, over
	 * the cap); queue_wait_ms 0: VG_HTTP_QUEUE_WAIT_MS. Without a cap
	 * (max_per_scope 0, or no hook) nothing is refused: requests wait
	 * for a worker in turn, bounded by the connection limit. */
	unsigned queue_per_scope;
	unsigned queue_wait_ms;
};

#define VG_HTTP_CAP_RETRY_S 1      /* Retry-After of a 429 over the cap */
#define VG_HTTP_CAP_LOG_MS 60000   /* one log line per this, at most */
#define VG_HTTP_QUEUE_WAIT_MS 5000 /* default queue_wait_ms */

/* Counters of a running server (thread-safe reads). */
struct vg_http_stats {
	uint64_t connections;  /* open now */
	uint64_t responses[6]; /* sent, by status class: [2] 2xx .. [5] 5xx */
	/* rounds of the stream prober: none while the server has no
	 * streamed reply */
	uint64_t stream_probes;
	/* the per-tenant cap (max_per_scope): requests holding a slot now,
	 * and the 429s it answered, [0] for projects, [1] for the admin
	 * bucket */
	uint64_t in_flight;
	uint64_t cap_refused[2];
	/* requests waiting now for a slot or a worker, and the requests that
	 * found their tenant's slots all taken and waited (since start) */
	uint64_t queued;
	uint64_t queued_total;
	/* the connection limit in force (vg_http_conn_cap), and the
	 * connections libmicrohttpd closed at once because it was reached or
	 * no file descriptor was left (since start) */
	uint64_t conn_limit;
	uint64_t conn_refused;
};
void vg_http_get_stats(const struct vg_http_server *s,
		       struct vg_http_stats *out);

/* The connection limit for want connections (0: VG_HTTP_CONN_LIMIT) in a
 * process allowed nofile open files (its soft RLIMIT_NOFILE): at most
 * half of what VG_HTTP_FD_RESERVE leaves, so that the API's clients can
 * never take the descriptors the journal, the RRD files, the databases
 * and the agents' connections need (the other half); at least 16. */
unsigned vg_http_conn_cap(unsigned want, uint64_t nofile);

/* Bind and start serving on worker threads. 0 or -errno with a message in
 * err (bad address, address in use, libmicrohttpd failure). */
int vg_http_start(const struct vg_http_options *o,
		  struct vg_http_server **out, char *err, size_t errlen);
/* The bound TCP port (useful with port 0). */
uint16_t vg_http_port(const struct vg_http_server *s);
/* Stop accepting, finish running handlers, join the threads and free.
 * Accepts NULL. After it returns no handler runs. */
void vg_http_stop(struct vg_http_server *s);

/* ---- a growable text buffer for hand-written JSON (query/api/jsonbuf.c) ---- */

struct vg_buf {
	char *p;
	size_t len, cap;
	int oom; /* set once an append failed; later appends are ignored */
};
void vg_buf_append(struct vg_buf *b, const char *s, size_t n);
void vg_buf_printf(struct vg_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal (quotes and escapes); s not being
 * UTF-8 counts as a failed append (oom). */
void vg_buf_json_string(struct vg_buf *b, const char *s);
/* Append the n bytes at s as a JSON string literal, exactly as jansson's
 * json_dumps writes it without JSON_ENSURE_ASCII (", \ and control
 * characters escaped, \b \f \n \r \t or \u00XX upper case; UTF-8 as
 * it is). 0, or -EILSEQ with nothing appended when s is not UTF-8 as
 * jansson accepts it (json_string refuses it). */
int vg_buf_json_str(struct vg_buf *b, const char *s, size_t n);
/* Append a double exactly as jansson's json_dumps writes json_real(v)
 * ("%.17g", "2.0", "0.10000000000000001", "1e20"): what a jansson answer
 * held before, byte for byte; non-finite values as null. */
void vg_buf_json_real(struct vg_buf *b, double v);
/* Append the JSON object in text as json_dumps(json_loads(text),
 * JSON_COMPACT) would (an object jansson writes is copied as it is; other
 * text goes through jansson), or {} when text is NULL or no object. */
void vg_buf_json_object_text(struct vg_buf *b, const char *text);
/* Append a finite double in the shortest form that reads back the same
 * ("1.5", "0.1", "1e+20"); non-finite values as null. */
void vg_buf_json_number(struct vg_buf *b, double v);
/* ms as "2026-11-26T06:49:14Z" into out (>= 21 bytes), exactly as
 * vg_time_format but without gmtime/strftime (hot loops). Returns out. */
char *vg_iso_time(int64_t ms, char *out);
/* Hand over the text (NUL-terminated, caller frees); NULL if oom. */
char *vg_buf_take(struct vg_buf *b, size_t *len);
void vg_buf_release(struct vg_buf *b);

#endif
