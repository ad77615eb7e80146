/*
 * http_test.c — the generic HTTP layer (query/api/http.c): listen-address
 * parsing, URI decoding, routing, parameter checks, JSON errors, the JSON
 * number/string writer, and the real server (libmicrohttpd on a loopback
 * port) with its limits: 404, 405 + Allow, 413, 414, HEAD, %2F in a path
 * segment, concurrent clients, and a streamed reply whose client leaves.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "../support/api_fixture.h"
#include "query/api/http.h"

/* ---- listen addresses ------------------------------------------------------ */

static void test_listen_parse_ok(void **state)
{
	struct vg_listen_addr a;
	char err[256];

	(void)state;
	assert_int_equal(vg_listen_parse("127.0.0.1:7480", &a, err, sizeof(err)), 0);
	assert_int_equal(a.family, AF_INET);
	assert_string_equal(a.host, "127.0.0.1");
	assert_int_equal(a.port, 7480);

	assert_int_equal(vg_listen_parse("[::1]:8080", &a, err, sizeof(err)), 0);
	assert_int_equal(a.family, AF_INET6);
	assert_string_equal(a.host, "::1");
	assert_int_equal(a.port, 8080);

	assert_int_equal(vg_listen_parse(":7480", &a, err, sizeof(err)), 0);
	assert_int_equal(a.family, AF_UNSPEC);
	assert_string_equal(a.host, "");
	assert_int_equal(a.port, 7480);

	assert_int_equal(vg_listen_parse("*:80", &a, err, sizeof(err)), 0);
	assert_int_equal(a.family, AF_UNSPEC);

	assert_int_equal(vg_listen_parse("localhost:1", &a, err, sizeof(err)), 0);
	assert_int_equal(a.family, AF_INET);
	assert_string_equal(a.host, "127.0.0.1");

	assert_int_equal(vg_listen_parse("0.0.0.0:0", &a, err, sizeof(err)), 0);
	assert_int_equal(a.port, 0);
	assert_int_equal(vg_listen_parse("[::]:65535", &a, err, sizeof(err)), 0);
	assert_int_equal(a.port, 65535);
}

static void test_listen_parse_bad(void **state)
{
	static const char *bad[] = {
		"",
		"7480",
		"127.0.0.1",
		"127.0.0.1:",
		"1.2.3.4:70000",
		"::1:80",
		"[::1]80",
		"[zz]:80",
		"[]:80",
		"example.com:80",
		"1.2.3.4:-1",
		"1.2.3.4:12a",
		"1.2.3:80",
		"[::1]:",
		"1.2.3.4: 80",
	};
	struct vg_listen_addr a;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(vg_listen_parse(bad[i], &a, err, sizeof(err)),
				 -EINVAL);
		assert_true(strlen(err) > 0); /* a reason is always given */
	}
	assert_int_equal(vg_listen_parse(NULL, &a, err, sizeof(err)), -EINVAL);
	/* the message says what to do */
	vg_listen_parse("::1:80", &a, err, sizeof(err));
	assert_non_null(strstr(err, "brackets"));
	vg_listen_parse("example.com:80", &a, err, sizeof(err));
	assert_non_null(strstr(err, "not an IPv4 address"));
}

static void test_listen_socket_in_use(void **state)
{
	struct vg_listen_addr a;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char err[256];
	int fd, fd2;

	(void)state;
	assert_int_equal(vg_listen_parse("127.0.0.1:0", &a, err, sizeof(err)), 0);
	fd = vg_listen_socket(&a, err, sizeof(err));
	assert_true(fd >= 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
	a.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	fd2 = vg_listen_socket(&a, err, sizeof(err));
	assert_int_equal(fd2, -EADDRINUSE);
	assert_non_null(strstr(err, "in use"));
	close(fd);
}

/* ---- URI decoding ------------------------------------------------------------ */

static void test_unescape(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(vg_http_unescape("%41%2fb", 7, out, 0), 3);
	assert_string_equal(out, "A/b");
	assert_int_equal(vg_http_unescape("a+b", 3, out, 1), 3);
	assert_string_equal(out, "a b");
	assert_int_equal(vg_http_unescape("a+b", 3, out, 0), 3);
	assert_string_equal(out, "a+b");
	assert_int_equal(vg_http_unescape("%2B", 3, out, 1), 1);
	assert_string_equal(out, "+");
	assert_int_equal(vg_http_unescape("%4", 2, out, 0), -EINVAL);
	assert_int_equal(vg_http_unescape("ab%", 3, out, 0), -EINVAL);
	assert_int_equal(vg_http_unescape("%zz", 3, out, 0), -EINVAL);
	assert_int_equal(vg_http_unescape("%00", 3, out, 0), -EINVAL);
	assert_int_equal(vg_http_unescape("", 0, out, 0), 0);
	assert_string_equal(out, "");
}

static void test_req_parse_ok(void **state)
{
	struct vg_http_req r;

	(void)state;
	assert_int_equal(vg_http_req_parse(&r, "GET",
					   "/v1//resources/a%2Fb?limit=5&x=%20y+z&flag&&k="),
			 0);
	assert_int_equal(r.method, VG_HTTP_GET);
	assert_string_equal(r.path, "/v1//resources/a%2Fb");
	assert_int_equal(r.nseg, 3);
	assert_string_equal(r.seg[0], "v1");
	assert_string_equal(r.seg[1], "resources");
	assert_string_equal(r.seg[2], "a/b"); /* one segment, decoded */
	assert_int_equal(r.nparams, 4);
	assert_string_equal(vg_http_param(&r, "limit"), "5");
	assert_string_equal(vg_http_param(&r, "x"), " y z");
	assert_string_equal(vg_http_param(&r, "flag"), "");
	assert_string_equal(vg_http_param(&r, "k"), "");
	assert_null(vg_http_param(&r, "nope"));
	vg_http_req_release(&r);

	assert_int_equal(vg_http_req_parse(&r, "HEAD", "/"), 0);
	assert_int_equal(r.method, VG_HTTP_HEAD);
	assert_int_equal(r.nseg, 0);
	assert_int_equal(r.nparams, 0);
	vg_http_req_release(&r);

	assert_int_equal(vg_http_req_parse(&r, "BREW", "/x?a=%E2%82%AC"), 0);
	assert_int_equal(r.method, VG_HTTP_OTHER);
	assert_string_equal(vg_http_param(&r, "a"), "\xE2\x82\xAC");
	vg_http_req_release(&r);
}

static void test_req_parse_bad(void **state)
{
	struct vg_http_req r;
	char big[VG_HTTP_MAX_URI + 16];
	char many[VG_HTTP_MAX_PARAMS * 8 + 16];
	size_t n = 0;

	(void)state;
	assert_int_equal(vg_http_req_parse(&r, "GET", "v1/health"), -EINVAL);
	vg_http_req_release(&r);
	assert_int_equal(vg_http_req_parse(&r, "GET", "http://x/v1"), -EINVAL);
	vg_http_req_release(&r);
	assert_int_equal(vg_http_req_parse(&r, "GET", "/v1/%zz"), -EINVAL);
	vg_http_req_release(&r);
	assert_int_equal(vg_http_req_parse(&r, "GET", "/v1?a=%0"), -EINVAL);
	vg_http_req_release(&r);
	assert_int_equal(vg_http_req_parse(&r, "GET", "/v1?=x"), -EINVAL);
	vg_http_req_release(&r);
	assert_int_equal(vg_http_req_parse(&r, "GET", "/v1/a%00b"), -EINVAL);
	vg_http_req_release(&r);

	big[0] = '/';
	memset(big + 1, 'a', sizeof(big) - 2);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(vg_http_req_parse(&r, "GET", big), -ENAMETOOLONG);
	vg_http_req_release(&r);

	n = (size_t)sprintf(many, "/x?");
	for (int i = 0; i <= VG_HTTP_MAX_PARAMS; i++)
		n += (size_t)sprintf(many + n, "p%d=1&", i);
	assert_int_equal(vg_http_req_parse(&r, "GET", many), -E2BIG);
	vg_http_req_release(&r);

	n = 0;
	for (int i = 0; i <= VG_HTTP_MAX_SEGMENTS; i++)
		n += (size_t)sprintf(many + n, "/s");
	assert_int_equal(vg_http_req_parse(&r, "GET", many), -ELOOP);
	vg_http_req_release(&r);
}

/* ---- routing ------------------------------------------------------------------ */

static int h_echo(struct vg_http_req *req, struct vg_http_resp *resp)
{
	json_t *j = json_object();
	json_t *params = json_object();

	for (size_t i = 0; i < req->nparams; i++)
		json_object_set_new(params, req->params[i].key,
				    json_string(req->params[i].value));
	json_object_set_new(j, "method", json_string(req->method_name));
	json_object_set_new(j, "params", params);
	json_object_set_new(j, "var", req->vars[0] ? json_string(req->vars[0]) : json_null());
	json_object_set_new(j, "rest", req->rest ? json_string(req->rest) : json_null());
	json_object_set_new(j, "body", req->body ? json_stringn(req->body, req->body_len) : json_null());
	return vg_http_reply_json(resp, 200, j);
}

static int h_noreply(struct vg_http_req *req, struct vg_http_resp *resp)
{
	(void)req;
	(void)resp;
	return -EIO;
}

static const char *const echo_params[] = {"a", "b", NULL};

/* A streamed reply that says hello and then has nothing more: parked
 * until its client leaves. g_streams_released counts its release_fn,
 * which signals g_released_cond (under g_released_lock). */
static int g_streams_released; /* __atomic */
static pthread_mutex_t g_released_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_released_cond = PTHREAD_COND_INITIALIZER;

static ssize_t hello_read(void *ctx, char *buf, size_t max)
{
	int *said = ctx;

	if (*said || max < 6)
		return 0;
	*said = 1;
	memcpy(buf, "hello\n", 6);
	return 6;
}

static void hello_release(void *ctx)
{
	free(ctx);
	pthread_mutex_lock(&g_released_lock);
	__atomic_add_fetch(&g_streams_released, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&g_released_cond);
	pthread_mutex_unlock(&g_released_lock);
}

static int h_stream(struct vg_http_req *req, struct vg_http_resp *resp)
{
	int *said = calloc(1, sizeof(*said));

	(void)req;
	if (!said)
		return -ENOMEM;
	return vg_http_reply_stream(resp, 200, "text/event-stream", hello_read,
				    hello_release, said, NULL);
}

/* A slow request, for the per-tenant cap: its handler holds its worker
 * thread until the test opens the gate, as a query over a long range or
 * a storage daemon that does not answer would. This is the test route's
 * own handler (the generic server under test runs it like any other),
 * not a hook in the server. g_slow_entered counts the handlers that
 * started; both under g_slow_lock, signalled on g_slow_cond. */
static pthread_mutex_t g_slow_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_slow_cond = PTHREAD_COND_INITIALIZER;
static int g_slow_entered, g_slow_open;

static int h_slow(struct vg_http_req *req, struct vg_http_resp *resp)
{
	(void)req;
	pthread_mutex_lock(&g_slow_lock);
	g_slow_entered++;
	pthread_cond_broadcast(&g_slow_cond);
	while (!g_slow_open)
		pthread_cond_wait(&g_slow_cond, &g_slow_lock);
	pthread_mutex_unlock(&g_slow_lock);
	return vg_http_reply_json(resp, 200, json_pack("{s:b}", "slow", 1));
}

static const struct vg_route test_routes[] = {
	{VG_HTTP_GET, "/v1/echo", h_echo, echo_params, 0, VG_ROUTE_PUBLIC},
	{VG_HTTP_GET, "/v1/things/{id}", h_echo, NULL, 0, 0},
	{VG_HTTP_DELETE, "/v1/things/{id}", h_echo, NULL, 0, 0},
	/* after the {id} routes on purpose: the literal path still owns it */
	{VG_HTTP_GET, "/v1/things/live", h_echo, NULL, 0, 0},
	{VG_HTTP_POST, "/v1/upload", h_echo, NULL, 64, VG_ROUTE_ANY_PARAMS},
	{VG_HTTP_GET, "/v1/broken", h_noreply, NULL, 0, 0},
	{VG_HTTP_GET, "/static/{path*}", h_echo, NULL, 0, 0},
	{VG_HTTP_GET, "/v1/stream", h_stream, NULL, 0, 0},
	{VG_HTTP_GET, "/v1/slow", h_slow, NULL, 0, 0},
};
#define NTEST_ROUTES (sizeof(test_routes) / sizeof(test_routes[0]))

static int deny_all(void *ctx, struct vg_http_req *req,
		    struct vg_http_resp *resp)
{
	(void)ctx;
	(void)req;
	return vg_http_reply_error(resp, 401, "token required") || 1;
}

/* Dispatch uri and return the status; *out gets the parsed body. */
static int dispatch(const char *method, const char *uri,
		    vg_http_authorize_fn auth, json_t **out,
		    struct vg_http_resp *keep)
{
	struct vg_http_req req;
	struct vg_http_resp resp = {0};
	int status;

	assert_int_equal(vg_http_req_parse(&req, method, uri), 0);
	vg_http_dispatch(test_routes, NTEST_ROUTES, auth, &req, &resp);
	status = resp.status;
	assert_string_equal(resp.content_type, "application/json");
	if (out) {
		*out = json_loadb(resp.body, resp.len, 0, NULL);
		assert_non_null(*out);
	}
	if (keep)
		*keep = resp;
	else
		vg_http_resp_release(&resp);
	vg_http_req_release(&req);
	return status;
}

static int error_code(json_t *j)
{
	return (int)json_integer_value(
		json_object_get(json_object_get(j, "error"), "code"));
}

static const char *error_message(json_t *j)
{
	return json_string_value(
		json_object_get(json_object_get(j, "error"), "message"));
}

/* The error's machine-readable "reason", NULL when it has none. */
static const char *error_reason(json_t *j)
{
	return json_string_value(
		json_object_get(json_object_get(j, "error"), "reason"));
}

static void test_dispatch(void **state)
{
	struct vg_http_resp keep;
	json_t *j;

	(void)state;
	assert_int_equal(dispatch("GET", "/v1/echo?a=1&b=x+y", NULL, &j, NULL), 200);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(j, "params"), "b")),
			    "x y");
	json_decref(j);

	/* HEAD is served by GET routes */
	assert_int_equal(dispatch("HEAD", "/v1/echo", NULL, NULL, NULL), 200);

	/* a {var} takes one decoded segment, %2F included */
	assert_int_equal(dispatch("GET", "/v1/things/a%2Fb", NULL, &j, NULL), 200);
	assert_string_equal(json_string_value(json_object_get(j, "var")), "a/b");
	json_decref(j);
	assert_int_equal(dispatch("DELETE", "/v1/things/x", NULL, NULL, NULL), 200);

	/* {rest*} takes the raw remainder */
	assert_int_equal(dispatch("GET", "/static/css/a%20b.css", NULL, &j, NULL), 200);
	assert_string_equal(json_string_value(json_object_get(j, "rest")),
			    "css/a%20b.css");
	json_decref(j);
	assert_int_equal(dispatch("GET", "/static", NULL, &j, NULL), 200);
	assert_string_equal(json_string_value(json_object_get(j, "rest")), "");
	json_decref(j);

	/* unknown path: 404 JSON */
	assert_int_equal(dispatch("GET", "/v1/nope", NULL, &j, NULL), 404);
	assert_int_equal(error_code(j), 404);
	assert_non_null(strstr(error_message(j), "/v1/nope"));
	json_decref(j);
	assert_int_equal(dispatch("GET", "/v1/things/a/b", NULL, NULL, NULL), 404);
	assert_int_equal(dispatch("GET", "/v1/echo/extra", NULL, NULL, NULL), 404);

	/* wrong method: 405 with Allow listing every method of the path */
	assert_int_equal(dispatch("POST", "/v1/things/x", NULL, &j, &keep), 405);
	assert_int_equal(error_code(j), 405);
	assert_int_equal(keep.nheaders, 1);
	assert_string_equal(keep.headers[0].name, "Allow");
	assert_string_equal(keep.headers[0].value, "GET, HEAD, DELETE");
	vg_http_resp_release(&keep);
	json_decref(j);
	/* a literal path over a {var} one: its own methods only */
	assert_int_equal(dispatch("GET", "/v1/things/live", NULL, &j, NULL), 200);
	assert_true(json_is_null(json_object_get(j, "var")));
	json_decref(j);
	assert_int_equal(dispatch("DELETE", "/v1/things/live", NULL, &j, &keep), 405);
	assert_string_equal(keep.headers[0].value, "GET, HEAD");
	vg_http_resp_release(&keep);
	json_decref(j);

	/* unknown and repeated parameters */
	assert_int_equal(dispatch("GET", "/v1/echo?c=1", NULL, &j, NULL), 400);
	assert_non_null(strstr(error_message(j), "unknown parameter 'c'"));
	assert_non_null(strstr(error_message(j), "a, b"));
	json_decref(j);
	assert_int_equal(dispatch("GET", "/v1/things/x?a=1", NULL, &j, NULL), 400);
	assert_non_null(strstr(error_message(j), "takes none"));
	json_decref(j);
	assert_int_equal(dispatch("GET", "/v1/echo?a=1&a=2", NULL, &j, NULL), 400);
	assert_non_null(strstr(error_message(j), "more than once"));
	json_decref(j);
	assert_int_equal(dispatch("POST", "/v1/upload?anything=1", NULL, NULL, NULL), 200);

	/* the authorisation hook: public routes skip it */
	assert_int_equal(dispatch("GET", "/v1/things/x", deny_all, &j, NULL), 401);
	assert_string_equal(error_message(j), "token required");
	json_decref(j);
	assert_int_equal(dispatch("GET", "/v1/echo", deny_all, NULL, NULL), 200);

	/* a handler that sets no reply gives a 500, not a crash */
	assert_int_equal(dispatch("GET", "/v1/broken", NULL, &j, NULL), 500);
	json_decref(j);
}

/* ---- JSON pieces ---------------------------------------------------------------- */

static void test_error_json(void **state)
{
	char *s;
	json_t *j;

	(void)state;
	s = vg_http_error_json(400, "bad \"thing\"\n");
	assert_non_null(s);
	j = json_loads(s, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_object_size(j), 1);
	assert_int_equal(error_code(j), 400);
	assert_string_equal(error_message(j), "bad \"thing\"\n");
	json_decref(j);
	free(s);

	/* invalid UTF-8 in a message never yields invalid JSON */
	s = vg_http_error_json(404, "no resource '\xff\xfe'");
	assert_non_null(s);
	j = json_loads(s, 0, NULL);
	assert_non_null(j);
	assert_int_equal(error_code(j), 404);
	/* the message is kept, each bad byte a '?' (it was replaced whole by
	 * "(message not valid UTF-8)": a "%.100s" cutting a user's "é" in
	 * two hid what was wrong) */
	assert_string_equal(error_message(j), "no resource '?"
					      "?'");
	json_decref(j);
	free(s);
	s = vg_http_error_json(400, "bad regular expression 'caf\xc3' for label 'name'");
	j = json_loads(s, 0, NULL);
	assert_non_null(j);
	assert_string_equal(error_message(j), "bad regular expression 'caf?' for label 'name'");
	json_decref(j);
	free(s);

	struct vg_http_resp r = {0};
	assert_int_equal(vg_http_reply_error(&r, 413, "body of %d bytes", 12), 0);
	assert_int_equal(r.status, 413);
	assert_string_equal(r.body,
			    "{\"error\":{\"code\":413,\"message\":\"body of 12 bytes\"}}");
	vg_http_resp_release(&r);
}

static void test_buf_numbers(void **state)
{
	struct vg_buf b = {0};
	char *s;

	(void)state;
	vg_buf_json_number(&b, 0.1);
	vg_buf_append(&b, " ", 1);
	vg_buf_json_number(&b, 1.5);
	vg_buf_append(&b, " ", 1);
	vg_buf_json_number(&b, 1e20);
	vg_buf_append(&b, " ", 1);
	vg_buf_json_number(&b, NAN);
	vg_buf_append(&b, " ", 1);
	vg_buf_json_number(&b, -INFINITY);
	vg_buf_append(&b, " ", 1);
	vg_buf_json_number(&b, 0);
	vg_buf_append(&b, " ", 1);
	vg_buf_json_string(&b, "a\"b\\c\n");
	s = vg_buf_take(&b, NULL);
	assert_string_equal(s, "0.1 1.5 1e+20 null null 0 \"a\\\"b\\\\c\\n\"");
	free(s);

	/* shortest form still reads back exactly */
	double third = 1.0 / 3.0;
	vg_buf_json_number(&b, third);
	s = vg_buf_take(&b, NULL);
	assert_true(strtod(s, NULL) == third);
	free(s);

	vg_buf_printf(&b, "%d-%s", 42, "x");
	s = vg_buf_take(&b, NULL);
	assert_string_equal(s, "42-x");
	free(s);
}

/* What jansson's json_dumps writes for j (compact), malloc'd. */
static char *jansson_text(json_t *j)
{
	char *t = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);

	json_decref(j);
	assert_non_null(t);
	return t;
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static void expect_real(double v)
{
	struct vg_buf b = {0};
	char *mine, *theirs = jansson_text(json_real(v));

	vg_buf_json_real(&b, v);
	mine = vg_buf_take(&b, NULL);
	if (strcmp(mine, theirs))
		fail_msg("%a: vg_buf_json_real wrote '%s', jansson '%s'", v,
			 mine, theirs);
	free(mine);
	free(theirs);
}

/* The resource list is written by hand and must stay what
 * jansson wrote, byte for byte: reals as json_real dumps them. */
static void test_buf_reals_as_jansson(void **state)
{
	static const struct {
		double v;
		const char *text;
	} fixed[] = {
		{2, "2.0"},
		{-0.0, "-0.0"},
		{0, "0.0"},
		{1.5, "1.5"},
		{0.1, "0.10000000000000001"},
		{1e20, "1e20"},
		{1e-5, "1.0000000000000001e-5"},
		{123456789.125, "123456789.125"},
		{1e16, "10000000000000000.0"},
		{0.0001, "0.0001"},
		{-3.25e-7, "-3.2500000000000001e-7"},
	};
	struct vg_buf b = {0};
	char *s;

	(void)state;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		vg_buf_json_real(&b, fixed[i].v);
		s = vg_buf_take(&b, NULL);
		assert_string_equal(s, fixed[i].text);
		free(s);
		expect_real(fixed[i].v);
	}
	vg_buf_json_real(&b, NAN);
	s = vg_buf_take(&b, NULL);
	assert_string_equal(s, "null");
	free(s);
	for (int i = 0; i < 60000; i++) {
		uint64_t bits = rnd();
		double v;

		memcpy(&v, &bits, sizeof(v));
		if (isfinite(v))
			expect_real(v);                                /* any double */
		expect_real((double)(int64_t)(rnd() >> (rnd() % 64))); /* counters */
		expect_real((double)(rnd() % 1000000) / 100);          /* cents */
		expect_real((double)(rnd() % 100000) / 1000);          /* utilisations */
		/* the fast path's range, evenly in the exponent */
		expect_real((rnd() % 2 ? -1 : 1) *
			    pow(10, -4.5 + 21.0 * (double)(rnd() >> 11) * 0x1p-53));
	}
}

static void same_string_as_jansson(const char *str, size_t n)
{
	struct vg_buf b = {0};
	char *copy = malloc(n + 1), *mine, *theirs;
	json_t *j;
	int rc;

	assert_non_null(copy);
	memcpy(copy, str, n);
	copy[n] = '\0';
	vg_buf_append(&b, "x", 1);
	rc = vg_buf_json_str(&b, copy, strlen(copy));
	mine = vg_buf_take(&b, NULL);
	j = json_string(copy);
	if (!j) { /* jansson refuses it: so do we, appending nothing */
		assert_int_equal(rc, -EILSEQ);
		assert_string_equal(mine, "x");
	} else {
		theirs = jansson_text(j);
		assert_int_equal(rc, 0);
		if (strcmp(mine + 1, theirs))
			fail_msg("vg_buf_json_str wrote '%s', jansson '%s'",
				 mine + 1, theirs);
		free(theirs);
	}
	free(mine);
	free(copy);
}

/* Strings as json_dumps escapes them; what json_string refuses is
 * refused. */
static void test_buf_strings_as_jansson(void **state)
{
	static const struct {
		const char *s, *text;
	} fixed[] = {
		{"plain", "\"plain\""},
		{"q\"b\\s/", "\"q\\\"b\\\\s/\""},
		{"\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\""},
		{"\x01\x1b]0;x\x07\x1f\x7f", "\"\\u0001\\u001B]0;x\\u0007\\u001F\x7f\""},
		{"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
		 "\"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\""},
		{"", "\"\""},
	};
	static const char *const bad[] = {
		"\xc3",
		"\xc0\x80",
		"\xed\xa0\x80",
		"\xf4\x90\x80\x80",
		"a\xff",
		"\xe0\x80\xaf",
		"\xf8\x88\x80\x80\x80",
	};
	/* bytes that matter to an escaper and a UTF-8 check */
	static const unsigned char alphabet[] = {
		'a', '"', '\\', '/', 0x01, '\n', 0x1f, 0x7f, 0x80, 0xbf, 0xc2,
		0xc3, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xa0, 0x90};
	struct vg_buf b = {0};
	char *s, str[8];

	(void)state;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		assert_int_equal(vg_buf_json_str(&b, fixed[i].s,
						 strlen(fixed[i].s)),
				 0);
		s = vg_buf_take(&b, NULL);
		assert_string_equal(s, fixed[i].text);
		free(s);
		same_string_as_jansson(fixed[i].s, strlen(fixed[i].s));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(vg_buf_json_str(&b, bad[i], strlen(bad[i])),
				 -EILSEQ);
		same_string_as_jansson(bad[i], strlen(bad[i]));
	}
	vg_buf_release(&b);
	for (int i = 0; i < 200000; i++) {
		size_t n = 1 + rnd() % sizeof(str);
		for (size_t k = 0; k < n; k++)
			str[k] = (char)alphabet[rnd() % sizeof(alphabet)];
		same_string_as_jansson(str, n);
	}
}

/* A stored object text comes out as jansson's load and dump would. */
static void test_buf_object_text_as_jansson(void **state)
{
	static const char *const texts[] = {
		"{}",
		"{\"a\":\"1\"}",
		"{\"a\":\"1\",\"b\":\"x\\\"y\\\\z\"}",
		"{\"k\":\"\\u001F\\n\",\"\\t\":\"caf\xc3\xa9\"}",
		"{\"b\":\"1\",\"a\":\"2\"}",
		"{\"a\":\"1\",\"a\":\"2\"}",
		"{ \"a\" : \"1\" }",
		"{\"a\":\"\\u00e9\"}",
		"{\"a\":\"\\/\"}",
		"{\"a\":\"\\u001f\"}",
		"{\"a\":\"\\u0000\"}",
		"{\"a\":1}",
		"{\"a\":\"\\u0041\"}",
		"[]",
		"not json",
		"",
		"{\"a\":\"\xc3\"}",
		"{\"a\":\"1\"",
		"{\"ab\":\"1\",\"a\":\"2\"}",
		"{\"a\":\"1\",\"ab\":\"2\"}",
	};
	struct vg_buf b = {0};

	(void)state;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		json_t *o = json_loads(texts[i], 0, NULL);
		char *theirs, *mine;

		if (!json_is_object(o)) {
			json_decref(o);
			o = json_object();
		}
		theirs = jansson_text(o);
		vg_buf_json_object_text(&b, texts[i]);
		mine = vg_buf_take(&b, NULL);
		if (strcmp(mine, theirs))
			fail_msg("'%s': wrote '%s', jansson '%s'", texts[i], mine,
				 theirs);
		free(mine);
		free(theirs);
	}
	vg_buf_json_object_text(&b, NULL);
	char *s = vg_buf_take(&b, NULL);
	assert_string_equal(s, "{}");
	free(s);
}

static void test_methods(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(vg_http_method_parse("GET"), VG_HTTP_GET);
	assert_int_equal(vg_http_method_parse("get"), VG_HTTP_OTHER);
	assert_int_equal(vg_http_method_parse(NULL), VG_HTTP_OTHER);
	assert_string_equal(vg_http_methods_format(VG_HTTP_GET | VG_HTTP_POST,
						   buf, sizeof(buf)),
			    "GET, POST");
	assert_string_equal(vg_http_methods_format(0, buf, sizeof(buf)), "");
}

/* "/v1/echo?a=qqq…", n bytes in all (malloc'd). */
static char *echo_target(size_t n)
{
	char *p = malloc(n + 1);

	assert_non_null(p);
	strcpy(p, "/v1/echo?a=");
	memset(p + strlen(p), 'q', n - strlen(p));
	p[n] = '\0';
	return p;
}

/* ---- the real server --------------------------------------------------------------- */

/* The answer's Content-Type into f->ctype ("" for none), as fx_http does. */
static void fetched_ctype(CURL *h, struct fx_answer *f)
{
	char *ct = NULL;

	curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
	snprintf(f->ctype, sizeof(f->ctype), "%s", ct ? ct : "");
}

static long fetch(uint16_t port, const char *method, const char *path,
		  const char *body, struct fx_answer *f)
{
	size_t ulen = strlen(path) + 64;
	char *url = malloc(ulen);
	CURL *h = curl_easy_init();
	struct curl_slist *hd = NULL;

	assert_non_null(url);
	memset(f, 0, sizeof(*f));
	snprintf(url, ulen, "http://127.0.0.1:%u%s", port, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fx_on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, fx_on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, f);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	else
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		hd = curl_slist_append(hd, "Expect:");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	assert_int_equal(curl_easy_perform(h), CURLE_OK);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &f->status);
	fetched_ctype(h, f);
	curl_easy_cleanup(h);
	curl_slist_free_all(hd);
	free(url);
	return f->status;
}

static struct vg_http_server *start_test_server(unsigned threads)
{
	struct vg_http_options o = {
		.listen = "127.0.0.1:0",
		.threads = threads,
		.routes = test_routes,
		.nroutes = NTEST_ROUTES,
	};
	struct vg_http_server *s = NULL;
	char err[256];

	assert_int_equal(vg_http_start(&o, &s, err, sizeof(err)), 0);
	assert_non_null(s);
	assert_true(vg_http_port(s) > 0);
	return s;
}

static void test_server_limits(void **state)
{
	struct vg_http_server *s = start_test_server(2);
	uint16_t port = vg_http_port(s);
	struct fx_answer f;
	json_t *j;
	char path[VG_HTTP_MAX_URI + 64];

	(void)state;
	assert_int_equal(fetch(port, "GET", "/v1/echo?a=1", NULL, &f), 200);
	assert_string_equal(f.ctype, "application/json");
	j = json_loads(f.body, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(j, "params"), "a")),
			    "1");
	json_decref(j);
	fx_answer_free(&f);

	/* %2F reaches the handler inside one segment */
	assert_int_equal(fetch(port, "GET", "/v1/things/x%2Fy%20z", NULL, &f), 200);
	j = json_loads(f.body, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "var")), "x/y z");
	json_decref(j);
	fx_answer_free(&f);

	assert_int_equal(fetch(port, "HEAD", "/v1/echo", NULL, &f), 200);
	assert_int_equal(f.len, 0);
	fx_answer_free(&f);

	assert_int_equal(fetch(port, "GET", "/nothing/here", NULL, &f), 404);
	j = json_loads(f.body, 0, NULL);
	assert_int_equal(error_code(j), 404);
	json_decref(j);
	fx_answer_free(&f);

	assert_int_equal(fetch(port, "PUT", "/v1/echo", NULL, &f), 405);
	assert_string_equal(f.allow, "GET, HEAD");
	fx_answer_free(&f);

	/* a body on GET: 413, JSON */
	assert_int_equal(fetch(port, "GET", "/v1/echo", "some body", &f), 413);
	j = json_loads(f.body, 0, NULL);
	assert_int_equal(error_code(j), 413);
	json_decref(j);
	fx_answer_free(&f);

	/* a body where one is allowed, within and beyond the route's max */
	assert_int_equal(fetch(port, "POST", "/v1/upload", "hello", &f), 200);
	j = json_loads(f.body, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "body")), "hello");
	json_decref(j);
	fx_answer_free(&f);
	char big[200];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(fetch(port, "POST", "/v1/upload", big, &f), 413);
	fx_answer_free(&f);

	/* URI over the limit: 414, JSON */
	strcpy(path, "/v1/echo?a=");
	memset(path + strlen(path), 'q', VG_HTTP_MAX_URI);
	path[VG_HTTP_MAX_URI + 11] = '\0';
	assert_int_equal(fetch(port, "GET", path, NULL, &f), 414);
	j = json_loads(f.body, 0, NULL);
	assert_int_equal(error_code(j), 414);
	json_decref(j);
	fx_answer_free(&f);

	/* the same answer for any target whose request line fits
	 * libmicrohttpd's connection buffer (VG_HTTP_CONN_MEMORY) */
	{
		size_t n = VG_HTTP_CONN_MEMORY - 2048;
		char *p = echo_target(n);

		assert_int_equal(fetch(port, "GET", p, NULL, &f), 414);
		assert_string_equal(f.ctype, "application/json");
		j = json_loads(f.body, 0, NULL);
		assert_int_equal(error_code(j), 414);
		json_decref(j);
		fx_answer_free(&f);
		free(p);
	}
	/* a request line beyond it never reaches vigie: libmicrohttpd's own
	 * 414, HTML without a Content-Type (docs/api.md "Errors": pinned so
	 * that a change of either side is seen), and the server goes on */
	{
		size_t n = VG_HTTP_CONN_MEMORY + 1024;
		char *p = echo_target(n);

		assert_int_equal(fetch(port, "GET", p, NULL, &f), 414);
		assert_string_equal(f.ctype, "");
		assert_non_null(f.body);
		assert_non_null(strstr(f.body, "<html>"));
		fx_answer_free(&f);
		free(p);
		assert_int_equal(fetch(port, "GET", "/v1/echo", NULL, &f), 200);
		fx_answer_free(&f);
	}

	/* a bad escape: 400 */
	assert_int_equal(fetch(port, "GET", "/v1/echo?a=%zz", NULL, &f), 400);
	fx_answer_free(&f);

	assert_int_equal(fetch(port, "GET", "/v1/broken", NULL, &f), 500);
	fx_answer_free(&f);

	vg_http_stop(s);
	vg_http_stop(NULL);
}

struct hammer {
	uint16_t port;
	int ok;
};

static void *hammer_thread(void *arg)
{
	struct hammer *h = arg;
	char path[64];

	for (int i = 0; i < 40; i++) {
		struct fx_answer f;
		snprintf(path, sizeof(path), "/v1/things/t%d", i);
		if (fetch(h->port, "GET", path, NULL, &f) == 200 && f.body &&
		    strstr(f.body, path + 11))
			h->ok++;
		fx_answer_free(&f);
	}
	return NULL;
}

static void test_server_concurrent(void **state)
{
	struct vg_http_server *s = start_test_server(4);
	struct hammer h[4];
	pthread_t t[4];

	(void)state;
	for (int i = 0; i < 4; i++) {
		h[i].port = vg_http_port(s);
		h[i].ok = 0;
		pthread_create(&t[i], NULL, hammer_thread, &h[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(h[i].ok, 40);
	}
	vg_http_stop(s);
}

/* A raw connection that asked for /v1/stream (with "Authorization:
 * Bearer token", none for NULL) and read its hello. */
static int open_stream_as(uint16_t port, const char *token)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	char rq[256];
	char buf[1024];
	size_t got = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0), rqlen;

	rqlen = snprintf(rq, sizeof(rq), "GET /v1/stream HTTP/1.1\r\nHost: t\r\n%s%s%s\r\n",
			 token ? "Authorization: Bearer " : "", token ? token : "",
			 token ? "\r\n" : "");
	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, rq, (size_t)rqlen), rqlen);
	while (got < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
		assert_true(n > 0);
		got += (size_t)n;
		buf[got] = '\0';
		if (strstr(buf, "hello\n"))
			break;
	}
	assert_non_null(strstr(buf, "200"));
	assert_non_null(strstr(buf, "hello\n"));
	return fd;
}

static int open_stream(uint16_t port)
{
	return open_stream_as(port, NULL);
}

/* Wait until want streams were released: 1, or 0 if they were not after
 * VG_TEST_HANG_S. The wait ends at the release, not at a clock tick, and
 * the cap only turns a prober that never frees a stream into a failure
 * instead of a hang: it is no timing bound (a probe is 1 s). */
#define VG_TEST_HANG_S 60
static int released(int want)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += VG_TEST_HANG_S;
	pthread_mutex_lock(&g_released_lock);
	while (__atomic_load_n(&g_streams_released, __ATOMIC_ACQUIRE) < want && rc == 0)
		rc = pthread_cond_timedwait(&g_released_cond, &g_released_lock, &until);
	pthread_mutex_unlock(&g_released_lock);
	return __atomic_load_n(&g_streams_released, __ATOMIC_ACQUIRE) >= want;
}

/* A parked stream (nothing to write) whose client closed the connection
 * ends, and gives back what it holds (release_fn), at the next probe
 * (about a second): it used to wait for a write to fail, the second one
 * after the client left (~30 s with an alarm stream's keepalives), and a
 * stream that never writes again was held until the server stopped. A
 * client that stays, or that sends bytes without leaving, keeps its
 * stream. The waits are for the releases themselves (released()), so a
 * slow machine makes the test slower, never wrong. */
static void test_stream_departed_client(void **state)
{
	struct vg_http_server *s = start_test_server(2);
	uint16_t port = vg_http_port(s);
	int fds[6], stay, chatty;

	(void)state;
	__atomic_store_n(&g_streams_released, 0, __ATOMIC_RELEASE);
	for (int i = 0; i < 6; i++)
		fds[i] = open_stream(port);
	stay = open_stream(port);
	chatty = open_stream(port);
	assert_int_equal(write(chatty, "x", 1), 1); /* data, not a departure */
	assert_int_equal(__atomic_load_n(&g_streams_released, __ATOMIC_ACQUIRE), 0);

	for (int i = 0; i < 6; i++)
		close(fds[i]);
	assert_true(released(6));
	/* two probes later the clients that stayed still hold theirs */
	usleep(2 * VG_HTTP_STREAM_PROBE_MS * 1000);
	assert_int_equal(__atomic_load_n(&g_streams_released, __ATOMIC_ACQUIRE), 6);

	/* a client that half-closes (FIN) is gone too: a stream reply has
	 * nothing more to read from it, as libmicrohttpd itself decides */
	shutdown(chatty, SHUT_WR);
	assert_true(released(7));
	close(chatty);

	vg_http_stop(s); /* ends the one that stayed */
	assert_int_equal(__atomic_load_n(&g_streams_released, __ATOMIC_ACQUIRE), 8);
	close(stay);
}

/* Wait until the server's prober made at least want rounds: 1, or 0 if
 * not after VG_TEST_HANG_S (a prober that never wakes: no timing bound). */
static int probed(struct vg_http_server *s, uint64_t want)
{
	struct vg_http_stats st;

	for (int i = 0; i < VG_TEST_HANG_S * 50; i++) {
		vg_http_get_stats(s, &st);
		if (st.stream_probes >= want)
			return 1;
		usleep(20 * 1000);
	}
	return 0;
}

/* The prober wakes only while a streamed reply exists: a server nobody
 * streams from has no thread waking each second (it used to probe an
 * empty list every VG_HTTP_STREAM_PROBE_MS for the server's life). The
 * first stream wakes it, a departed client's stream is still freed, and
 * it sleeps again once the last stream is gone. No count depends on the
 * machine's speed: with no stream there is no round at all, and after
 * the last stream's release at most the one round that may already have
 * found it in the list. */
static void test_stream_prober_sleeps(void **state)
{
	struct vg_http_server *s = start_test_server(1);
	struct vg_http_stats st;
	uint64_t after_release;
	int fd;

	(void)state;
	__atomic_store_n(&g_streams_released, 0, __ATOMIC_RELEASE);
	usleep(3 * VG_HTTP_STREAM_PROBE_MS * 1000);
	vg_http_get_stats(s, &st);
	assert_int_equal(st.stream_probes, 0);

	fd = open_stream(vg_http_port(s));
	assert_true(probed(s, 2)); /* the stream woke it; it goes on */
	close(fd);
	assert_true(released(1));
	vg_http_get_stats(s, &st);
	after_release = st.stream_probes;

	usleep(3 * VG_HTTP_STREAM_PROBE_MS * 1000);
	vg_http_get_stats(s, &st);
	assert_true(st.stream_probes <= after_release + 1);
	vg_http_stop(s);
}

static void test_server_bad_listen(void **state)
{
	struct vg_http_options o = {
		.listen = "nonsense",
		.threads = 1,
		.routes = test_routes,
		.nroutes = NTEST_ROUTES,
	};
	struct vg_http_server *s = NULL, *s2 = NULL;
	char err[256];
	char addr[64];

	(void)state;
	assert_int_equal(vg_http_start(&o, &s, err, sizeof(err)), -EINVAL);
	assert_null(s);
	assert_non_null(strstr(err, "nonsense"));

	/* the same port twice: the second says so */
	s = start_test_server(1);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", vg_http_port(s));
	o.listen = addr;
	assert_int_equal(vg_http_start(&o, &s2, err, sizeof(err)), -EADDRINUSE);
	assert_non_null(strstr(err, "in use"));
	vg_http_stop(s);
}

/* ":0" listens on every address: reachable through 127.0.0.1 (IPv4, or
 * IPv4-mapped on a dual-stack socket). */
static void test_server_all_addresses(void **state)
{
	struct vg_http_options o = {
		.listen = ":0",
		.threads = 1,
		.routes = test_routes,
		.nroutes = NTEST_ROUTES,
	};
	struct vg_http_server *s = NULL;
	struct fx_answer f;
	char err[256];

	(void)state;
	assert_int_equal(vg_http_start(&o, &s, err, sizeof(err)), 0);
	assert_int_equal(fetch(vg_http_port(s), "GET", "/v1/echo", NULL, &f), 200);
	fx_answer_free(&f);
	vg_http_stop(s);
}

/* Lines of the text at path holding needle. */
static int count_lines(const char *path, const char *needle)
{
	char line[4096];
	FILE *f = fopen(path, "r");
	int n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/* Client errors were counted but logged at debug only: an operator saw
 * nothing of bad input at the default level. Each 4xx status is logged at
 * info on its first answer, then every 1000th with the running count, so
 * a flood of bad requests costs a line per thousand. Checked in the log
 * output itself (stderr into a file). */
static void test_rejected_logged(void **state)
{
	char logp[] = "/tmp/vigie-http-log-XXXXXX", url[128];
	int fd = mkstemp(logp), saved = dup(2);
	struct vg_http_server *s;
	struct fx_answer f;
	CURL *h;
	long code;
	int ok404 = 0;

	(void)state;
	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	assert_int_equal(dup2(fd, 2), 2);
	s = start_test_server(2);
	/* three 404s, two 405s, a 400, a 200 */
	for (int i = 0; i < 3; i++) {
		fetch(vg_http_port(s), "GET", "/nothing/here", NULL, &f);
		fx_answer_free(&f);
	}
	for (int i = 0; i < 2; i++) {
		fetch(vg_http_port(s), "PUT", "/v1/echo", NULL, &f);
		fx_answer_free(&f);
	}
	fetch(vg_http_port(s), "GET", "/v1/echo?a=%zz", NULL, &f);
	fx_answer_free(&f);
	fetch(vg_http_port(s), "GET", "/v1/echo", NULL, &f);
	fx_answer_free(&f);
	/* 997 more 404s on one connection: the 1000th is logged again */
	h = curl_easy_init();
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/nothing/here", vg_http_port(s));
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fx_on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &f);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	for (int i = 0; i < 997; i++) {
		memset(&f, 0, sizeof(f));
		if (curl_easy_perform(h) == CURLE_OK &&
		    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 404)
			ok404++;
		fx_answer_free(&f);
	}
	curl_easy_cleanup(h);
	vg_http_stop(s);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(fd);

	assert_int_equal(ok404, 997);
	/* at the default level (info), with the request, the client and why */
	assert_int_equal(count_lines(logp, " info: http: rejected GET /nothing/here from "
					   "127.0.0.1: 404 no such endpoint: /nothing/here "
					   "(occurrence 1; logged 1st and every 1000th)"),
			 1);
	assert_int_equal(count_lines(logp, " info: http: rejected GET /nothing/here from "
					   "127.0.0.1: 404 no such endpoint: /nothing/here "
					   "(occurrence 1000; logged 1st and every 1000th)"),
			 1);
	assert_int_equal(count_lines(logp, "rejected GET /nothing/here"), 2);
	assert_int_equal(count_lines(logp, " info: http: rejected PUT /v1/echo from 127.0.0.1: "
					   "405 method PUT not allowed on /v1/echo (allowed: GET, "
					   "HEAD) (occurrence 1;"),
			 1);
	assert_int_equal(count_lines(logp, "rejected PUT"), 1);
	assert_int_equal(count_lines(logp, "rejected GET /v1/echo from 127.0.0.1: 400 "), 1);
	assert_int_equal(count_lines(logp, "rejected"), 4);
	unlink(logp);
}

/* ---- the per-tenant cap ---------------------------------------------------------- */

/* Tokens of the cap test: "Bearer a" is project a, "Bearer b" project b,
 * "Bearer admin" an admin (no scope); anything else a 401. */
static int tenant_auth(void *ctx, struct vg_http_req *req, struct vg_http_resp *resp)
{
	const char *h = req->authorization;

	(void)ctx;
	if (h && !strcmp(h, "Bearer admin")) {
		req->scope_project = NULL;
		return 0;
	}
	if (h && (!strcmp(h, "Bearer a") || !strcmp(h, "Bearer b"))) {
		snprintf(req->scope_buf, sizeof(req->scope_buf), "%s", h + 7);
		req->scope_project = req->scope_buf;
		return 0;
	}
	return vg_http_reply_error(resp, 401, "token required") || 1;
}

/* GET path with "Authorization: Bearer token" (none for NULL) on the easy
 * handle h, which keeps its connection alive for the next call; *conns
 * (may be NULL) gets how many connections it opened for this one (0: it
 * went on the kept-alive one). */
static long fetch_on(CURL *h, uint16_t port, const char *token, const char *path,
		     long timeout_s, struct fx_answer *f, long *conns)
{
	char url[256], auth[128];
	struct curl_slist *hd = NULL;

	memset(f, 0, sizeof(*f));
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fx_on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, fx_on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, f);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		hd = curl_slist_append(hd, auth);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	}
	if (curl_easy_perform(h) == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &f->status);
		fetched_ctype(h, f);
	} else
		f->status = -1;
	if (conns)
		curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, conns);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hd);
	return f->status;
}

/* The same on a connection of its own. */
static long fetch_as(uint16_t port, const char *token, const char *path, long timeout_s,
		     struct fx_answer *f)
{
	CURL *h = curl_easy_init();
	long rc = fetch_on(h, port, token, path, timeout_s, f, NULL);

	curl_easy_cleanup(h);
	return rc;
}

struct slow_call {
	uint16_t port;
	const char *token;
	pthread_t th;
	struct fx_answer f;
};

static void *slow_thread(void *arg)
{
	struct slow_call *c = arg;

	/* 60 s: a hang guard, not a timing bound (the gate opens it) */
	fetch_as(c->port, c->token, "/v1/slow", 60L, &c->f);
	return NULL;
}

/* Wait until n slow handlers have started: 1, or 0 after VG_TEST_HANG_S
 * (a hang turned into a failure, no timing bound). */
static int slow_entered(int n)
{
	struct timespec until;
	int rc = 1;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += VG_TEST_HANG_S;
	pthread_mutex_lock(&g_slow_lock);
	while (g_slow_entered < n && rc)
		rc = pthread_cond_timedwait(&g_slow_cond, &g_slow_lock, &until) != ETIMEDOUT;
	rc = g_slow_entered >= n;
	pthread_mutex_unlock(&g_slow_lock);
	return rc;
}

/* Start n slow requests of token, one after the other: each is sent once
 * the one before holds its worker, so each lands on a worker of its own
 * (a busy worker accepts no connection). */
static void hold_slow(struct slow_call *c, int n, uint16_t port, const char *token)
{
	int before;

	pthread_mutex_lock(&g_slow_lock);
	before = g_slow_entered;
	g_slow_open = 0;
	pthread_mutex_unlock(&g_slow_lock);
	for (int i = 0; i < n; i++) {
		c[i].port = port;
		c[i].token = token;
		assert_int_equal(pthread_create(&c[i].th, NULL, slow_thread, &c[i]), 0);
		assert_true(slow_entered(before + i + 1));
	}
}

static void release_slow(struct slow_call *c, int n)
{
	pthread_mutex_lock(&g_slow_lock);
	g_slow_open = 1;
	pthread_cond_broadcast(&g_slow_cond);
	pthread_mutex_unlock(&g_slow_lock);
	for (int i = 0; i < n; i++) {
		pthread_join(c[i].th, NULL);
		assert_int_equal(c[i].f.status, 200);
		fx_answer_free(&c[i].f);
	}
}

/* Wait until the server counts want requests in flight (the completion
 * callback gives a slot back just after the answer is out). */
static int in_flight_is(struct vg_http_server *s, uint64_t want)
{
	struct vg_http_stats hs;

	for (int i = 0; i < VG_TEST_HANG_S * 100; i++) {
		vg_http_get_stats(s, &hs);
		if (hs.in_flight == want)
			return 1;
		nanosleep(&(struct timespec){0, 10000000L}, NULL);
	}
	return 0;
}

static struct vg_http_server *start_capped_server(unsigned threads, unsigned cap)
{
	struct vg_http_options o = {
		.listen = "127.0.0.1:0",
		.threads = threads,
		.routes = test_routes,
		.nroutes = NTEST_ROUTES,
		.authorize = tenant_auth,
		.max_per_scope = cap,
	};
	struct vg_http_server *s = NULL;
	char err[256];

	assert_int_equal(vg_http_start(&o, &s, err, sizeof(err)), 0);
	return s;
}

/* One tenant cannot hold every worker: with 4 workers and a cap of 3,
 * project a holds 3 slow requests; its next is a 429 at once (JSON error,
 * Retry-After) while project b and an admin are served, a request
 * without a token is a 401 that takes no slot; once a's requests are
 * answered a is served again. The refusals are counted, logged once (not
 * per request) and not as "rejected" lines. Streams give their slot back
 * when their handler returns. Then the admin bucket: admin tokens share
 * one bucket with the same cap, apart from the projects'. Without the
 * cap a's fourth request is served (200): the test fails. */
static void test_tenant_cap(void **state)
{
	char logp[] = "/tmp/vigie-http-cap-XXXXXX";
	int fd = mkstemp(logp), saved = dup(2), streams[3];
	struct slow_call calls[3];
	struct vg_http_server *s;
	struct vg_http_stats hs;
	struct fx_answer f;
	json_t *j;
	uint16_t port;

	(void)state;
	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	assert_int_equal(dup2(fd, 2), 2);
	s = start_capped_server(4, 3);
	port = vg_http_port(s);

	hold_slow(calls, 3, port, "a");
	/* a's fourth: refused at once */
	assert_int_equal(fetch_as(port, "a", "/v1/things/x", 10L, &f), 429);
	assert_string_equal(f.retry_after, "1");
	assert_string_equal(f.ctype, "application/json");
	j = json_loadb(f.body, f.len, 0, NULL);
	assert_int_equal(error_code(j), 429);
	assert_non_null(strstr(error_message(j), "too many requests in flight for this project"));
	assert_non_null(error_reason(j));
	assert_string_equal(error_reason(j), "project_concurrency");
	json_decref(j);
	fx_answer_free(&f);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(fetch_as(port, "a", "/v1/things/x", 10L, &f), 429);
		fx_answer_free(&f);
	}
	/* the others are served meanwhile, on the worker a cannot take */
	assert_int_equal(fetch_as(port, "b", "/v1/things/x", 10L, &f), 200);
	fx_answer_free(&f);
	assert_int_equal(fetch_as(port, "admin", "/v1/things/x", 10L, &f), 200);
	fx_answer_free(&f);
	/* no token: refused by the hook, before any slot */
	assert_int_equal(fetch_as(port, NULL, "/v1/things/x", 10L, &f), 401);
	fx_answer_free(&f);
	assert_int_equal(fetch_as(port, "nope", "/v1/things/x", 10L, &f), 401);
	fx_answer_free(&f);
	vg_http_get_stats(s, &hs);
	assert_int_equal(hs.cap_refused[0], 5);
	assert_int_equal(hs.cap_refused[1], 0);
	assert_true(in_flight_is(s, 3)); /* a's three: b's, admin's, the 401s gone */

	release_slow(calls, 3);
	assert_true(in_flight_is(s, 0));
	assert_int_equal(fetch_as(port, "a", "/v1/things/x", 10L, &f), 200);
	fx_answer_free(&f);

	/* streams: parked without a thread, their slots given back */
	for (int i = 0; i < 3; i++)
		streams[i] = open_stream_as(port, "a");
	assert_true(in_flight_is(s, 0));
	assert_int_equal(fetch_as(port, "a", "/v1/things/x", 10L, &f), 200);
	fx_answer_free(&f);
	for (int i = 0; i < 3; i++)
		close(streams[i]);
	vg_http_get_stats(s, &hs);
	assert_int_equal(hs.cap_refused[0], 5);
	vg_http_stop(s);

	/* the admin bucket: 2 workers, cap 1 */
	s = start_capped_server(2, 1);
	port = vg_http_port(s);
	hold_slow(calls, 1, port, "admin");
	assert_int_equal(fetch_as(port, "admin", "/v1/things/x", 10L, &f), 429);
	assert_string_equal(f.retry_after, "1");
	j = json_loadb(f.body, f.len, 0, NULL);
	assert_non_null(strstr(error_message(j), "too many requests in flight for admin tokens"));
	assert_non_null(error_reason(j));
	assert_string_equal(error_reason(j), "admin_concurrency");
	json_decref(j);
	fx_answer_free(&f);
	assert_int_equal(fetch_as(port, "a", "/v1/things/x", 10L, &f), 200);
	fx_answer_free(&f);
	vg_http_get_stats(s, &hs);
	assert_int_equal(hs.cap_refused[0], 0);
	assert_int_equal(hs.cap_refused[1], 1);
	release_slow(calls, 1);
	assert_int_equal(fetch_as(port, "admin", "/v1/things/x", 10L, &f), 200);
	fx_answer_free(&f);
	vg_http_stop(s);

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(fd);
	/* six refusals, two servers: one line each (the first refusal's), no
	 * line per request, and none among the "rejected" 4xx lines */
	assert_int_equal(count_lines(logp, "refused (429) over the cap"), 2);
	assert_int_equal(count_lines(logp, " warn: http: 1 request refused (429) over the cap "
					   "of 3 in flight per tenant"),
			 1);
	assert_int_equal(count_lines(logp, "the last of project 'a'"), 1);
	assert_int_equal(count_lines(logp, "the last of admin tokens"), 1);
	assert_int_equal(count_lines(logp, ": 429 "), 0);
	unlink(logp);
}

/* One tenant's slow request does not hold another tenant's kept-alive
 * connection. libmicrohttpd keeps a connection on the thread that took it;
 * before the worker pool the handler ran on that thread, so project b's
 * next request on a connection that shared a's thread waited until a's
 * slow request ended. Here b opens KEEP_CONNS connections (libmicrohttpd
 * spreads them over its two threads), a's slow request holds its handler,
 * and b asks again on every one of its kept-alive connections (curl
 * opened none): each is answered while a's handler is still held. Without
 * the pool b's request on a's thread is answered only at the gate: its
 * 10 s guard fails the test. */
#define KEEP_CONNS 16
static void test_tenant_keepalive(void **state)
{
	struct slow_call call;
	struct vg_http_server *s;
	struct fx_answer f;
	CURL *b[KEEP_CONNS];
	uint16_t port;
	long conns;

	(void)state;
	s = start_capped_server(2, 1);
	port = vg_http_port(s);
	for (int i = 0; i < KEEP_CONNS; i++) {
		assert_non_null(b[i] = curl_easy_init());
		assert_int_equal(fetch_on(b[i], port, "b", "/v1/things/x", 10L, &f, &conns), 200);
		assert_int_equal(conns, 1);
		fx_answer_free(&f);
	}
	hold_slow(&call, 1, port, "a");
	for (int i = 0; i < KEEP_CONNS; i++) {
		assert_int_equal(fetch_on(b[i], port, "b", "/v1/things/x", 10L, &f, &conns), 200);
		assert_int_equal(conns, 0); /* the kept-alive connection */
		fx_answer_free(&f);
	}
	pthread_mutex_lock(&g_slow_lock);
	assert_int_equal(g_slow_open, 0); /* a's handler still held */
	pthread_mutex_unlock(&g_slow_lock);
	release_slow(&call, 1);
	for (int i = 0; i < KEEP_CONNS; i++)
		curl_easy_cleanup(b[i]);
	vg_http_stop(s);
}

/* A burst of one token's requests in parallel: the ones over its cap wait
 * in its queue instead of a 429. */
#define BURST 16
struct burst {
	uint16_t port;
	const char *token;
	pthread_t th[BURST];
	struct fx_answer f[BURST];
	int ended; /* __atomic */
};

struct burst_call {
	struct burst *b;
	int i;
};

static void *burst_thread(void *arg)
{
	struct burst_call *c = arg;

	/* 60 s: a hang guard, not a timing bound */
	fetch_as(c->b->port, c->b->token, "/v1/things/x", 60L, &c->b->f[c->i]);
	__atomic_add_fetch(&c->b->ended, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void burst_start(struct burst *b, struct burst_call *calls, int n, uint16_t port,
			const char *token)
{
	b->port = port;
	b->token = token;
	b->ended = 0;
	for (int i = 0; i < n; i++) {
		calls[i].b = b;
		calls[i].i = i;
		assert_int_equal(pthread_create(&b->th[i], NULL, burst_thread, &calls[i]), 0);
	}
}

/* Wait until the server has want requests queued, or every one of the
 * burst's n requests was answered (a server that queues nothing): 1 when
 * want are queued. */
static int queued_is(struct vg_http_server *s, struct burst *b, int n, uint64_t want)
{
	struct vg_http_stats hs;

	for (int i = 0; i < VG_TEST_HANG_S * 100; i++) {
		vg_http_get_stats(s, &hs);
		if (hs.queued == want)
			return 1;
		if (__atomic_load_n(&b->ended, __ATOMIC_ACQUIRE) == n)
			return 0;
		nanosleep(&(struct timespec){0, 10000000L}, NULL);
	}
	return 0;
}

static struct vg_http_server *start_queued_server(unsigned threads, unsigned cap, unsigned queue,
						  unsigned wait_ms)
{
	struct vg_http_options o = {
		.listen = "127.0.0.1:0",
		.threads = threads,
		.routes = test_routes,
		.nroutes = NTEST_ROUTES,
		.authorize = tenant_auth,
		.max_per_scope = cap,
		.queue_per_scope = queue,
		.queue_wait_ms = wait_ms,
	};
	struct vg_http_server *s = NULL;
	char err[256];

	assert_int_equal(vg_http_start(&o, &s, err, sizeof(err)), 0);
	return s;
}

/* The queue in front of the cap (2 workers, cap 1, a queue of BURST).
 * While a's slow request holds a's one place, a burst of BURST of a's
 * requests in parallel all wait (queued, none refused) and project b is
 * served meanwhile on the other worker; once a's slow request ends they
 * are all answered 200, in turn. One more than the cap and the queue is
 * a 429 at once with the cap's reason and Retry-After; a request that
 * waits longer than queue_wait_ms is the same 429, saying it waited.
 * Without the queue (the cap answering 429 at once) the burst is 429s
 * and never queued: the test fails. */
static void test_tenant_queue(void **state)
{
	struct burst_call calls[BURST];
	struct slow_call call;
	struct vg_http_server *s;
	struct vg_http_stats hs;
	struct burst b;
	struct fx_answer f;
	uint16_t port;
	json_t *j;

	(void)state;
	s = start_queued_server(2, 1, BURST, 60000);
	port = vg_http_port(s);
	hold_slow(&call, 1, port, "a");
	burst_start(&b, calls, BURST, port, "a");
	assert_true(queued_is(s, &b, BURST, BURST));
	/* b has places of its own, and a worker a cannot take */
	assert_int_equal(fetch_as(port, "b", "/v1/things/x", 10L, &f), 200);
	fx_answer_free(&f);
	/* one more than a's cap and queue: the cap's 429 at once */
	assert_int_equal(fetch_as(port, "a", "/v1/things/x", 10L, &f), 429);
	assert_string_equal(f.retry_after, "1");
	j = json_loadb(f.body, f.len, 0, NULL);
	assert_int_equal(error_code(j), 429);
	assert_non_null(strstr(error_message(j), "too many requests in flight for this project"));
	assert_non_null(strstr(error_message(j), "and 16 waiting"));
	assert_string_equal(error_reason(j), "project_concurrency");
	json_decref(j);
	fx_answer_free(&f);
	vg_http_get_stats(s, &hs);
	assert_int_equal(hs.in_flight, 1);
	assert_int_equal(hs.queued, BURST);
	assert_int_equal(hs.queued_total, BURST);
	assert_int_equal(hs.cap_refused[0], 1);
	release_slow(&call, 1);
	for (int i = 0; i < BURST; i++) {
		pthread_join(b.th[i], NULL);
		assert_int_equal(b.f[i].status, 200);
		fx_answer_free(&b.f[i]);
	}
	assert_true(in_flight_is(s, 0));
	vg_http_get_stats(s, &hs);
	assert_int_equal(hs.queued, 0);
	assert_int_equal(hs.cap_refused[0], 1);
	vg_http_stop(s);

	/* the wait is bounded: 200 ms, then the cap's 429 (the admin bucket) */
	s = start_queued_server(2, 1, 4, 200);
	port = vg_http_port(s);
	hold_slow(&call, 1, port, "admin");
	assert_int_equal(fetch_as(port, "admin", "/v1/things/x", 10L, &f), 429);
	assert_string_equal(f.retry_after, "1");
	j = json_loadb(f.body, f.len, 0, NULL);
	assert_non_null(strstr(error_message(j), "too many requests in flight for admin tokens"));
	assert_non_null(strstr(error_message(j), "ms for a place"));
	assert_string_equal(error_reason(j), "admin_concurrency");
	json_decref(j);
	fx_answer_free(&f);
	vg_http_get_stats(s, &hs);
	assert_int_equal(hs.cap_refused[1], 1);
	assert_int_equal(hs.queued_total, 1);
	assert_int_equal(hs.queued, 0);
	release_slow(&call, 1);
	vg_http_stop(s);
}

static void *stop_thread(void *arg)
{
	vg_http_stop(arg);
	return NULL;
}

/* Stopping the server answers what waits (503) at once, lets the
 * running handler end, and frees everything. */
static void test_tenant_queue_stop(void **state)
{
	struct burst_call calls[2];
	struct slow_call call;
	struct vg_http_server *s;
	struct burst b;

	(void)state;
	s = start_queued_server(2, 1, 4, 60000);
	hold_slow(&call, 1, vg_http_port(s), "a");
	burst_start(&b, calls, 2, vg_http_port(s), "a");
	assert_true(queued_is(s, &b, 2, 2));
	/* the queued are answered before the stop waits for the handler */
	pthread_t stopper;
	assert_int_equal(pthread_create(&stopper, NULL, stop_thread, s), 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(b.th[i], NULL);
		assert_int_equal(b.f[i].status, 503);
		assert_non_null(strstr(b.f[i].body, "the server is stopping"));
		fx_answer_free(&b.f[i]);
	}
	/* the slow one's answer may not go out: the server is stopping */
	pthread_mutex_lock(&g_slow_lock);
	g_slow_open = 1;
	pthread_cond_broadcast(&g_slow_cond);
	pthread_mutex_unlock(&g_slow_lock);
	pthread_join(call.th, NULL);
	fx_answer_free(&call.f);
	pthread_join(stopper, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen_parse_ok),
		cmocka_unit_test(test_listen_parse_bad),
		cmocka_unit_test(test_listen_socket_in_use),
		cmocka_unit_test(test_unescape),
		cmocka_unit_test(test_req_parse_ok),
		cmocka_unit_test(test_req_parse_bad),
		cmocka_unit_test(test_dispatch),
		cmocka_unit_test(test_error_json),
		cmocka_unit_test(test_buf_numbers),
		cmocka_unit_test(test_buf_reals_as_jansson),
		cmocka_unit_test(test_buf_strings_as_jansson),
		cmocka_unit_test(test_buf_object_text_as_jansson),
		cmocka_unit_test(test_methods),
		cmocka_unit_test(test_server_limits),
		cmocka_unit_test(test_server_concurrent),
		cmocka_unit_test(test_stream_departed_client),
		cmocka_unit_test(test_stream_prober_sleeps),
		cmocka_unit_test(test_server_bad_listen),
		cmocka_unit_test(test_server_all_addresses),
		cmocka_unit_test(test_rejected_logged),
		cmocka_unit_test(test_tenant_cap),
		cmocka_unit_test(test_tenant_keepalive),
		cmocka_unit_test(test_tenant_queue),
		cmocka_unit_test(test_tenant_queue_stop),
	};
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
