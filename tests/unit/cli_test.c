/*
 * cli_test.c — the `vigie` CLI: table layout and number formatting, URL
 * building, and whole commands run in-process (vg_cli_run) against a
 * canned API served by the generic HTTP layer on a loopback port: the
 * printed tables, --json, pagination being followed, and every exit code
 * (0 ok, 1 API error, 2 usage, 3 cannot connect).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "query/cli/cli.h"
#include "query/api/http.h"

#include "../support/api_fixture.h"

/* ---- pure pieces ----------------------------------------------------------- */

static char *print_table(struct vg_table *t)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	vg_table_print(t, f);
	fclose(f);
	return buf;
}

static void test_table(void **state)
{
	static const char *const hdr[] = {"ID", "NAME", "VALUE"};
	static const int al[] = {VG_ALIGN_LEFT, VG_ALIGN_LEFT, VG_ALIGN_RIGHT};
	struct vg_table *t = vg_table_new(3, hdr, al);
	const char *r1[] = {"inst-1", "vm", "1.5"};
	const char *r2[] = {"x", NULL, "1234.25"};
	const char *r3[] = {"é", "ünïcode", ""};
	char *s;

	(void)state;
	assert_non_null(t);
	assert_int_equal(vg_table_rows(t), 0);
	assert_int_equal(vg_table_add(t, r1), 0);
	assert_int_equal(vg_table_add(t, r2), 0);
	assert_int_equal(vg_table_add(t, r3), 0);
	assert_int_equal(vg_table_rows(t), 3);
	s = print_table(t);
	assert_string_equal(s,
			    "ID      NAME       VALUE\n"
			    "inst-1  vm           1.5\n"
			    "x       -        1234.25\n"
			    "é       ünïcode        -\n");
	free(s);
	vg_table_free(t);

	/* the last column, left-aligned, is not padded */
	static const char *const h2[] = {"A", "B"};
	t = vg_table_new(2, h2, NULL);
	const char *r4[] = {"long cell", "x"};
	const char *r5[] = {"y", "longer cell"};
	vg_table_add(t, r4);
	vg_table_add(t, r5);
	s = print_table(t);
	assert_string_equal(s,
			    "A          B\n"
			    "long cell  x\n"
			    "y          longer cell\n");
	free(s);
	vg_table_free(t);
	vg_table_free(NULL);
	assert_null(vg_table_new(0, NULL, NULL));
}

static void test_format_value(void **state)
{
	char b[64];

	(void)state;
	assert_string_equal(vg_cli_format_value(0, b, sizeof(b)), "0");
	assert_string_equal(vg_cli_format_value(1.5, b, sizeof(b)), "1.5");
	assert_string_equal(vg_cli_format_value(12.3456789, b, sizeof(b)), "12.346");
	assert_string_equal(vg_cli_format_value(1234.0, b, sizeof(b)), "1234");
	assert_string_equal(vg_cli_format_value(123456789.5, b, sizeof(b)),
			    "123456789.5");
	assert_string_equal(vg_cli_format_value(0.0015, b, sizeof(b)), "0.0015");
	assert_string_equal(vg_cli_format_value(0.5, b, sizeof(b)), "0.5");
	assert_string_equal(vg_cli_format_value(-2.25, b, sizeof(b)), "-2.25");
	assert_string_equal(vg_cli_format_value(-0.0001, b, sizeof(b)), "-0.0001");
	assert_string_equal(vg_cli_format_value(2e18, b, sizeof(b)), "2e+18");
	assert_string_equal(vg_cli_format_value(0.0 / 0.0, b, sizeof(b)), "-");
}

static void test_escape_path(void **state)
{
	char *s;

	(void)state;
	s = vg_cli_escape("a/b c+d%é~._-");
	assert_string_equal(s, "a%2Fb%20c%2Bd%25%C3%A9~._-");
	free(s);
	const char *kv[] = {"resource", "r/1", "metric", "cpu.time", "start",
			    NULL, "end", "-1h", NULL};
	s = vg_cli_path("/v1/measures", kv);
	assert_string_equal(s, "/v1/measures?resource=r%2F1&metric=cpu.time&end=-1h");
	free(s);
	s = vg_cli_path("/v1/health", NULL);
	assert_string_equal(s, "/v1/health");
	free(s);
}

/* ---- a canned API --------------------------------------------------------------- */

static char seen_type[64];
static char seen_limit[16];
static int resource_pages;

static json_t *res_obj(const char *id, const char *type, const char *name)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:n}", "id", id, "type",
			 type, "name", name, "host", "h1", "project", "p1",
			 "state", "active", "last_seen", "2026-11-18T11:10:00Z",
			 "parent");
}

static int h_health(struct vg_http_req *req, struct vg_http_resp *resp)
{
	(void)req;
	return vg_http_reply_json(resp, 200,
				  json_pack("{s:s,s:s,s:s}", "status", "ok",
					    "version", "9.9", "time",
					    "2026-11-18T11:10:00Z"));
}

static int h_resources(struct vg_http_req *req, struct vg_http_resp *resp)
{
	const char *cursor = vg_http_param(req, "cursor");
	const char *type = vg_http_param(req, "type");
	const char *limit = vg_http_param(req, "limit");
	const char *parent = vg_http_param(req, "parent");

	if (vg_http_param(req, "metadata")) /* a name looked up: none here */
		return vg_http_reply_json(resp, 200,
					  json_pack("{s:[],s:n}", "resources", "next"));
	snprintf(seen_type, sizeof(seen_type), "%s", type ? type : "");
	snprintf(seen_limit, sizeof(seen_limit), "%s", limit ? limit : "");
	resource_pages++;
	if (parent) {
		json_t *a = json_array();
		if (!strcmp(parent, "r/1"))
			json_array_append_new(a, res_obj("r/1-vda", "disk", "vda"));
		return vg_http_reply_json(resp, 200,
					  json_pack("{s:o,s:n}", "resources", a,
						    "next"));
	}
	if (!cursor) {
		json_t *a = json_array();
		json_array_append_new(a, res_obj("r/1", "instance", "vm one"));
		json_array_append_new(a, res_obj("r2", "host", "h1"));
		return vg_http_reply_json(resp, 200,
					  json_pack("{s:o,s:s}", "resources", a,
						    "next", "r2"));
	}
	if (!strcmp(cursor, "r2")) {
		json_t *a = json_array();
		json_array_append_new(a, res_obj("r3", "nic", "tap0"));
		return vg_http_reply_json(resp, 200,
					  json_pack("{s:o,s:n}", "resources", a,
						    "next"));
	}
	return vg_http_reply_error(resp, 400, "bad cursor");
}

static int h_resource(struct vg_http_req *req, struct vg_http_resp *resp)
{
	json_t *r;

	if (!strcmp(req->vars[0], "locked")) /* as the API answers no token */
		return vg_http_reply_error(resp, 401, "missing bearer token (send "
						      "'Authorization: Bearer TOKEN')");
	if (strcmp(req->vars[0], "r/1"))
		return vg_http_reply_error(resp, 404, "no resource '%s'",
					   req->vars[0]);
	r = res_obj("r/1", "instance", "vm one");
	json_object_set_new(r, "attributes", json_pack("{s:s}", "az", "zone-a"));
	json_object_set_new(
		r, "metrics",
		json_pack("{s:{s:s,s:s,s:f,s:s},s:{s:s,s:s,s:f,s:s}}",
			  "memory.used", "unit", "B", "kind", "gauge",
			  "last_value", 1048576.0, "last_time",
			  "2026-11-18T11:10:00Z", "cpu.time", "unit", "s",
			  "kind", "counter", "last_value", 12.5, "last_time",
			  "2026-11-18T11:10:00Z"));
	return vg_http_reply_json(resp, 200, r);
}

static int h_measures(struct vg_http_req *req, struct vg_http_resp *resp)
{
	const char *metric = vg_http_param(req, "metric");

	if (!strcmp(metric, "bad"))
		return vg_http_reply_error(resp, 400, "bad start 'x'");
	if (!strcmp(metric, "empty"))
		return vg_http_reply_json(
			resp, 200,
			json_pack("{s:s,s:s,s:s,s:s,s:[]}", "unit", "", "kind",
				  "gauge", "start", "2026-11-18T11:00:00Z",
				  "end", "2026-11-18T12:00:00Z", "points"));
	return vg_http_reply_json(
		resp, 200,
		json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:[[s,f],[s,f]]}",
			  "resource", vg_http_param(req, "resource"), "metric",
			  metric, "aggregation", "mean", "granularity", 60,
			  "unit", "s/s", "kind", "counter", "points",
			  "2026-11-18T11:00:00Z", 0.5, "2026-11-18T11:01:00Z",
			  12.25));
}

static int h_text(struct vg_http_req *req, struct vg_http_resp *resp)
{
	(void)req;
	return vg_http_reply_raw(resp, 200, "text/plain", strdup("hello"), 5);
}

/* Busy: 503 with Retry-After: 1, as a loaded collector answers. */
static int h_busy(struct vg_http_req *req, struct vg_http_resp *resp)
{
	(void)req;
	vg_http_reply_error(resp, 503, "busy");
	return vg_http_resp_header(resp, "Retry-After", "1");
}

/* 429s for a POST, as the per-project cap answers (docs/api.md) or not:
 * the error's "reason" is what tells the cap's apart; a collector older
 * than that field says so only in its message. */
static int cap_429(struct vg_http_resp *resp, const char *message,
		   const char *reason)
{
	json_t *e = json_pack("{s:i,s:s}", "code", 429, "message", message);

	if (reason)
		json_object_set_new(e, "reason", json_string(reason));
	vg_http_reply_json(resp, 429, json_pack("{s:o}", "error", e));
	return vg_http_resp_header(resp, "Retry-After", "1");
}

static int h_cap_reason(struct vg_http_req *req, struct vg_http_resp *resp)
{
	(void)req;
	return cap_429(resp, "busy for this project", "project_concurrency");
}

static int h_cap_admin(struct vg_http_req *req, struct vg_http_resp *resp)
{
	(void)req;
	return cap_429(resp, "busy for admin tokens", "admin_concurrency");
}

static int h_cap_old(struct vg_http_req *req, struct vg_http_resp *resp)
{
	(void)req;
	return cap_429(resp,
		       "too many requests in flight for this project (at most 1 "
		       "at once); retry when one of them is answered",
		       NULL);
}

static int h_not_cap(struct vg_http_req *req, struct vg_http_resp *resp)
{
	(void)req;
	return cap_429(resp,
		       "too many requests in flight for this project, but not the cap",
		       "something_else");
}

static const char *const res_params[] = {"type", "host", "project", "name",
					 "state", "parent", "limit", "cursor",
					 "metadata", NULL};
static const char *const m_params[] = {"resource", "metric", "start", "end",
				       "granularity", "aggregation", NULL};
static const struct vg_route routes[] = {
	{VG_HTTP_GET, "/v1/health", h_health, NULL, 0, 0},
	{VG_HTTP_GET, "/v1/resources", h_resources, res_params, 0, 0},
	{VG_HTTP_GET, "/v1/resources/{id}", h_resource, NULL, 0, 0},
	{VG_HTTP_GET, "/v1/measures", h_measures, m_params, 0, 0},
	{VG_HTTP_GET, "/text/v1/health", h_text, NULL, 0, 0},
	{VG_HTTP_GET, "/busy/v1/health", h_busy, NULL, 0, 0},
	{VG_HTTP_POST, "/busy/v1/measures", h_busy, NULL, 4096, 0},
	{VG_HTTP_POST, "/busy/v1/tokens", h_busy, NULL, 4096, 0},
	{VG_HTTP_POST, "/capr/v1/tokens", h_cap_reason, NULL, 4096, 0},
	{VG_HTTP_POST, "/capa/v1/tokens", h_cap_admin, NULL, 4096, 0},
	{VG_HTTP_POST, "/capm/v1/tokens", h_cap_old, NULL, 4096, 0},
	{VG_HTTP_POST, "/capx/v1/tokens", h_not_cap, NULL, 4096, 0},
};

static struct vg_http_server *srv;
static char api_url[64];

static int setup(void **state)
{
	struct vg_http_options o = {.listen = "127.0.0.1:0", .threads = 1, .routes = routes, .nroutes = sizeof(routes) / sizeof(routes[0])};
	char err[256];

	(void)state;
	if (vg_http_start(&o, &srv, err, sizeof(err)))
		return -1;
	snprintf(api_url, sizeof(api_url), "http://127.0.0.1:%u",
		 vg_http_port(srv));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vg_http_stop(srv);
	return 0;
}

/* Run `vigie ARGS...` (NULL-terminated) with --api pointing at the canned
 * server unless the first argument is "--api". */
static struct fx_run run(const char *first, ...)
{
	va_list ap;
	struct fx_run r;

	va_start(ap, first);
	r = fx_vcli(first && strcmp(first, "--api") ? api_url : NULL, NULL,
		    first, ap);
	va_end(ap);
	return r;
}

/* run() with --token TOKEN */
static struct fx_run run_tok(const char *token, const char *first, ...)
{
	va_list ap;
	struct fx_run r;

	va_start(ap, first);
	r = fx_vcli(api_url, token, first, ap);
	va_end(ap);
	return r;
}

static void test_cmd_health(void **state)
{
	struct fx_run r;
	char want[256];

	(void)state;
	r = run("health", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	snprintf(want, sizeof(want),
		 "ok (vigie 9.9 at %s, 2026-11-18T11:10:00Z)\n", api_url);
	assert_string_equal(r.out, want);
	assert_string_equal(r.err, "");
	fx_run_free(&r);

	r = run("health", "--json", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	json_t *j = json_loads(r.out, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
	json_decref(j);
	fx_run_free(&r);
}

static void test_cmd_resources(void **state)
{
	struct fx_run r;

	(void)state;
	resource_pages = 0;
	r = run("resources", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_int_equal(resource_pages, 2); /* followed the cursor */
	assert_string_equal(seen_limit, "1000");
	assert_string_equal(r.out,
			    "ID   TYPE      NAME    HOST  PROJECT  STATE   LAST SEEN\n"
			    "r/1  instance  vm one  h1    p1       active  2026-11-18T11:10:00Z\n"
			    "r2   host      h1      h1    p1       active  2026-11-18T11:10:00Z\n"
			    "r3   nic       tap0    h1    p1       active  2026-11-18T11:10:00Z\n");
	fx_run_free(&r);

	/* filters go through; --json prints one document with every page */
	r = run("resources", "--type", "instance", "--json", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_string_equal(seen_type, "instance");
	json_t *j = json_loads(r.out, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(j, "resources")), 3);
	assert_true(json_is_null(json_object_get(j, "next")));
	json_decref(j);
	fx_run_free(&r);

	/* --limit stops early and asks for no more than needed */
	resource_pages = 0;
	r = run("resources", "--limit", "1", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_int_equal(resource_pages, 1);
	assert_string_equal(seen_limit, "1");
	fx_run_free(&r);

	r = run("resources", "--type", NULL);
	assert_int_equal(r.rc, VG_EXIT_USAGE);
	assert_string_equal(r.err, "vigie resources: option '--type' needs a value\n");
	fx_run_free(&r);
	r = run("resources", "extra", NULL);
	assert_int_equal(r.rc, VG_EXIT_USAGE);
	fx_run_free(&r);
}

static void test_cmd_show(void **state)
{
	struct fx_run r;

	(void)state;
	r = run("show", "r/1", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.out, "ID          r/1\n"));
	assert_non_null(strstr(r.out, "Parent      -\n"));
	assert_non_null(strstr(r.out, "  az = zone-a\n"));
	assert_non_null(strstr(r.out,
			       "Metrics (2)\n"
			       "METRIC       UNIT  KIND     LAST VALUE  LAST TIME\n"
			       "cpu.time     s     counter        12.5  2026-11-18T11:10:00Z\n"
			       "memory.used  B     gauge       1048576  2026-11-18T11:10:00Z\n"));
	assert_non_null(strstr(r.out, "Children (1)\nID       TYPE  NAME  STATE\n"
				      "r/1-vda  disk  vda   active\n"));
	fx_run_free(&r);

	r = run("show", "ghost", NULL);
	assert_int_equal(r.rc, VG_EXIT_API);
	assert_string_equal(r.out, "");
	assert_string_equal(r.err, "vigie: no resource 'ghost' (HTTP 404)\n");
	fx_run_free(&r);

	r = run("show", NULL);
	assert_int_equal(r.rc, VG_EXIT_USAGE);
	fx_run_free(&r);
}

static void test_cmd_measures(void **state)
{
	struct fx_run r;

	(void)state;
	r = run("measures", "r/1", "cpu.time", "--start", "-1h", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_string_equal(r.out,
			    "TIME                  VALUE (s/s)\n"
			    "2026-11-18T11:00:00Z          0.5\n"
			    "2026-11-18T11:01:00Z        12.25\n");
	fx_run_free(&r);

	/* options before the positionals work too */
	r = run("measures", "--granularity", "300", "--aggregation", "max", "--json",
		"r/1", "cpu.time", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	json_t *j = json_loads(r.out, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "resource")), "r/1");
	assert_int_equal(json_array_size(json_object_get(j, "points")), 2);
	json_decref(j);
	fx_run_free(&r);

	r = run("measures", "r/1", "empty", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_string_equal(r.out, "TIME  VALUE\n");
	assert_non_null(strstr(r.err, "no points"));
	fx_run_free(&r);

	r = run("measures", "r/1", "bad", NULL);
	assert_int_equal(r.rc, VG_EXIT_API);
	assert_string_equal(r.err, "vigie: bad start 'x' (HTTP 400)\n");
	fx_run_free(&r);

	r = run("measures", "r/1", "cpu.time", "--granularity", "61", NULL);
	assert_int_equal(r.rc, VG_EXIT_USAGE);
	fx_run_free(&r);
	r = run("measures", "r/1", "cpu.time", "--aggregation", "sum", NULL);
	assert_int_equal(r.rc, VG_EXIT_USAGE);
	fx_run_free(&r);
	r = run("measures", "r/1", NULL);
	assert_int_equal(r.rc, VG_EXIT_USAGE);
	assert_non_null(strstr(r.err, "expected RESOURCE and METRIC"));
	fx_run_free(&r);
}

static void test_usage_and_help(void **state)
{
	static const char *cmds[] = {"resources", "show", "measures", "health"};
	struct fx_run r;

	(void)state;
	r = run("--api", api_url, NULL);
	assert_int_equal(r.rc, VG_EXIT_USAGE);
	assert_non_null(strstr(r.err, "usage: vigie"));
	fx_run_free(&r);
	r = run("frobnicate", NULL);
	assert_int_equal(r.rc, VG_EXIT_USAGE);
	assert_string_equal(r.err, "vigie: unknown command 'frobnicate' (see 'vigie --help')\n");
	fx_run_free(&r);
	r = run("--bogus", NULL);
	assert_int_equal(r.rc, VG_EXIT_USAGE);
	fx_run_free(&r);
	r = run("--help", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.out, "Exit codes: 0 ok, 1 API error, 2 usage error, 3 cannot connect"));
	fx_run_free(&r);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char want[64];
		r = run(cmds[i], "--help", NULL);
		assert_int_equal(r.rc, VG_EXIT_OK);
		snprintf(want, sizeof(want), "usage: vigie %s", cmds[i]);
		assert_non_null(strstr(r.out, want));
		fx_run_free(&r);
	}
}

/* A first-time user without $VIGIE_TOKEN got only the API's "missing
 * bearer token (send 'Authorization: Bearer TOKEN')": the CLI says where
 * it takes a token from; with a token given, a 401 is the API's alone. */
static void test_no_token_hint(void **state)
{
	struct fx_run r;

	(void)state;
	unsetenv("VIGIE_TOKEN");
	r = run("show", "locked", NULL);
	assert_int_equal(r.rc, VG_EXIT_API);
	assert_non_null(strstr(r.err, "missing bearer token"));
	assert_non_null(strstr(r.err, "set VIGIE_TOKEN or pass --token"));
	fx_run_free(&r);
	r = run_tok("vgt_x", "show", "locked", NULL);
	assert_int_equal(r.rc, VG_EXIT_API);
	assert_null(strstr(r.err, "VIGIE_TOKEN"));
	fx_run_free(&r);
}

static void test_connect_errors(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	char url[128];
	struct fx_run r;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	/* a port that was free a moment ago: nobody listens there */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", ntohs(sa.sin_port));
	close(fd);
	r = run("--api", url, "health", NULL);
	assert_int_equal(r.rc, VG_EXIT_CONNECT);
	assert_non_null(strstr(r.err, "cannot reach the API"));
	fx_run_free(&r);

	r = run("--api", "ftp://127.0.0.1:1", "health", NULL);
	assert_int_equal(r.rc, VG_EXIT_USAGE);
	fx_run_free(&r);

	/* an answer that is not JSON is an API error */
	snprintf(url, sizeof(url), "%s/text", api_url);
	r = run("--api", url, "health", NULL);
	assert_int_equal(r.rc, VG_EXIT_API);
	assert_non_null(strstr(r.err, "did not answer JSON"));
	fx_run_free(&r);

	/* --api after the command works as well */
	r = run("--api", "http://127.0.0.1:1", "health", "--api", api_url, NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	fx_run_free(&r);
}

/* vigie(1): every global option may also come after the command. Each
 * one is given after the command only, and its effect is observed. */
static void test_global_options_after_command(void **state)
{
	static const char *const cmds[][3] = {
		{"health", NULL, NULL},
		{"resources", NULL, NULL},
		{"invoice", "--month", "2026-11"},
		{"token", "list", NULL},
		{"alarms", "list", NULL},
		{"top", "--once", NULL},
	};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	char stalled[64], tls[64], busy[96], want[128];
	struct fx_run r;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	/* a port that takes connections (the kernel's backlog) and never
	 * answers */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(stalled, sizeof(stalled), "http://127.0.0.1:%u", ntohs(sa.sin_port));
	snprintf(tls, sizeof(tls), "https://127.0.0.1:%u", ntohs(sa.sin_port));
	snprintf(busy, sizeof(busy), "%s/busy", api_url);

	/* --timeout: gives up after 1 s, not the default 60 */
	r = run("--api", stalled, "health", "--timeout", "1", NULL);
	assert_int_equal(r.rc, VG_EXIT_CONNECT);
	if (!strstr(r.err, "timed out after 1"))
		fail_msg("--timeout 1 after the command: '%s'", r.err);
	fx_run_free(&r);

	/* --retry-wait: one wait of 1 s, then gives up (default: 10 s) */
	r = run("--api", busy, "health", "--retry-wait", "1", NULL);
	assert_int_equal(r.rc, VG_EXIT_API);
	if (!strstr(r.err, "(HTTP 503); gave up after 2 tries over 1 s"))
		fail_msg("--retry-wait 1 after the command: '%s'", r.err);
	fx_run_free(&r);

	/* --cacert: the file named is the one TLS is set up with */
	r = run("--api", tls, "health", "--timeout", "2", "--cacert",
		"/nonexistent/vigie-ca.pem", NULL);
	assert_int_equal(r.rc, VG_EXIT_CONNECT);
	if (!strstr(r.err, "/nonexistent/vigie-ca.pem"))
		fail_msg("--cacert after the command: '%s'", r.err);
	fx_run_free(&r);
	close(fd);

	/* --output json: the API's document */
	r = run("health", "--output", "json", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	if (r.out[0] != '{' || !strstr(r.out, "\"status\": \"ok\""))
		fail_msg("--output json after the command: '%s'", r.out);
	fx_run_free(&r);

	/* --token: sent (no "no token given" hint on the 401) */
	unsetenv("VIGIE_TOKEN");
	r = run("show", "locked", "--token", "vgt_x", NULL);
	assert_int_equal(r.rc, VG_EXIT_API);
	assert_null(strstr(r.err, "VIGIE_TOKEN"));
	fx_run_free(&r);

	/* --api */
	r = run("--api", "http://127.0.0.1:1", "health", "--api", api_url, NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	fx_run_free(&r);

	/* every command's parser takes them (the commands with a table of
	 * their own as well), and checks their values as before it */
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		static const char *const bad[][2] = {
			{"--timeout", "0"},
			{"--retry-wait", "x"},
			{"--output", "xml"},
		};
		for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
			const char *a[6] = {cmds[i][0]};
			size_t n = 1;
			for (size_t m = 1; m < 3 && cmds[i][m]; m++)
				a[n++] = cmds[i][m];
			a[n++] = bad[k][0];
			a[n++] = bad[k][1];
			r = run(a[0], a[1], a[2], a[3], a[4], a[5], NULL);
			snprintf(want, sizeof(want), "%s wants", bad[k][0]);
			if (r.rc != VG_EXIT_USAGE || !strstr(r.err, want))
				fail_msg("%s ... %s %s: exit %d, '%s'", cmds[i][0],
					 bad[k][0], bad[k][1], r.rc, r.err);
			fx_run_free(&r);
		}
		const char *a[6] = {cmds[i][0]};
		size_t n = 1;
		for (size_t m = 1; m < 3 && cmds[i][m]; m++)
			a[n++] = cmds[i][m];
		a[n++] = "--cacert";
		r = run(a[0], a[1], a[2], a[3], NULL);
		if (r.rc != VG_EXIT_USAGE || !strstr(r.err, "'--cacert' needs a value"))
			fail_msg("%s ... --cacert: exit %d, '%s'", cmds[i][0], r.rc,
				 r.err);
		fx_run_free(&r);
	}
	/* graph's --output is its PNG; the others it takes */
	r = run("graph", "-o", "/dev/null", "r/1", "cpu.time", "--timeout", "0", NULL);
	assert_int_equal(r.rc, VG_EXIT_USAGE);
	assert_non_null(strstr(r.err, "vigie graph: --timeout wants"));
	fx_run_free(&r);
}

/* A POST (not repeated after any 429: it could run twice; here token
 * create) is sent again after the per-project cap's 429, which ran
 * nothing: the cap's is the one whose error's reason says so, or, from a
 * collector without that field, whose message does. (put's POST
 * /v1/measures is repeated after any 429 or 503 with a Retry-After:
 * test_put_repeated_after_503.) */
static void test_cap_429_reason(void **state)
{
	static const struct {
		const char *prefix;
		int cap;
	} cases[] = {
		{"capr", 1}, /* reason project_concurrency, another message */
		{"capa", 1}, /* reason admin_concurrency */
		{"capm", 1}, /* no reason: the cap's message */
		{"capx", 0}, /* another reason: the message does not count */
	};
	char api[96];
	struct fx_run r;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(api, sizeof(api), "%s/%s", api_url, cases[i].prefix);
		r = run("--api", api, "--token", "vgt_x", "--retry-wait", "1",
			"token", "create", "--admin", NULL);
		assert_int_equal(r.rc, VG_EXIT_API);
		if (cases[i].cap &&
		    (!strstr(r.err, "(HTTP 429); gave up after 2 tries over 1 s") ||
		     !strstr(r.err, "[collector] http_max_concurrent_per_project")))
			fail_msg("%s: the cap's 429 not asked again: '%s'",
				 cases[i].prefix, r.err);
		if (!cases[i].cap &&
		    (strstr(r.err, "gave up") || strstr(r.err, "http_max_concurrent")))
			fail_msg("%s: a POST asked again after another 429: '%s'",
				 cases[i].prefix, r.err);
		fx_run_free(&r);
	}
}

/* put's POST /v1/measures is sent again after a 503 with Retry-After (a
 * resend stores nothing twice: duplicates are skipped), as the store's
 * 503 while it opens a request's many new series asks; another POST
 * (token create) is not. */
static void test_put_repeated_after_503(void **state)
{
	char api[96];
	struct fx_run r;

	(void)state;
	snprintf(api, sizeof(api), "%s/busy", api_url);
	r = run("--api", api, "--token", "vgt_x", "--retry-wait", "1", "put", "r1", "m", "1",
		NULL);
	assert_int_equal(r.rc, VG_EXIT_API);
	if (!strstr(r.err, "(HTTP 503); gave up after 2 tries over 1 s"))
		fail_msg("put's 503 not asked again: '%s'", r.err);
	fx_run_free(&r);
	r = run("--api", api, "--token", "vgt_x", "--retry-wait", "1", "token", "create",
		"--admin", NULL);
	assert_int_equal(r.rc, VG_EXIT_API);
	if (strstr(r.err, "gave up"))
		fail_msg("token create's 503 asked again: '%s'", r.err);
	fx_run_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_format_value),
		cmocka_unit_test(test_escape_path),
		cmocka_unit_test(test_cmd_health),
		cmocka_unit_test(test_cmd_resources),
		cmocka_unit_test(test_cmd_show),
		cmocka_unit_test(test_cmd_measures),
		cmocka_unit_test(test_usage_and_help),
		cmocka_unit_test(test_no_token_hint),
		cmocka_unit_test(test_connect_errors),
		cmocka_unit_test(test_cap_429_reason),
		cmocka_unit_test(test_put_repeated_after_503),
		cmocka_unit_test(test_global_options_after_command),
	};

	unsetenv("VIGIE_API");
	unsetenv("VIGIE_TOKEN");
	return cmocka_run_group_tests(tests, setup, teardown);
}
