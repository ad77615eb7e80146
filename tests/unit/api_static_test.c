/*
 * api_static_test.c — the web console's file server (query/api/api_static.c):
 * the name grammar and content types (pure), then the handler over a
 * temporary www directory, reached through the real route table
 * (vg_api_routes) the way the server reaches it: files served with their
 * type and security headers, every traversal (raw, encoded, double-encoded,
 * overlong UTF-8), hidden files, unknown extensions, a symlink out of the
 * directory and unknown API paths refused with the router's JSON 404; the
 * catch-all is the last route and public; a literal API path's 405 names
 * its own methods only (/v1/alarms/stream over /v1/alarms/{id}); the
 * directory choice.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "query/api/api_handlers.h"
#include "vigie/api_static.h"
#include "query/api/http.h"

#include "../support/tmpdir.h"

static char g_root[PATH_MAX]; /* temp dir: www/ and outside/ */
static char g_www[PATH_MAX + 8];

static void put(const char *dir, const char *name, const char *text)
{
	char p[PATH_MAX * 2];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	char p[PATH_MAX * 2], err[256];

	(void)state;
	snprintf(g_root, sizeof(g_root), "/tmp/vigie-static.XXXXXX");
	assert_non_null(mkdtemp(g_root));
	snprintf(g_www, sizeof(g_www), "%s/www", g_root);
	assert_int_equal(mkdir(g_www, 0755), 0);
	snprintf(p, sizeof(p), "%s/outside", g_root);
	assert_int_equal(mkdir(p, 0755), 0);
	put(g_www, "index.html", "<!doctype html><title>vigie</title>");
	put(g_www, "app.js", "'use strict';");
	put(g_www, "style.css", "body{}");
	put(g_www, ".secret.txt", "hidden");
	put(g_www, "notes.md", "# unknown type");
	put(p, "secret.txt", "outside the www dir");
	snprintf(p, sizeof(p), "%s/img", g_www);
	assert_int_equal(mkdir(p, 0755), 0);
	put(p, "dot.svg", "<svg/>");
	/* a symlink out of the directory, and one that stays inside */
	snprintf(p, sizeof(p), "%s/outside/secret.txt", g_root);
	{
		char l[PATH_MAX * 2];
		snprintf(l, sizeof(l), "%s/evil.txt", g_www);
		assert_int_equal(symlink(p, l), 0);
		snprintf(l, sizeof(l), "%s/home.html", g_www);
		assert_int_equal(symlink("index.html", l), 0);
		snprintf(l, sizeof(l), "%s/up", g_www);
		assert_int_equal(symlink("../outside", l), 0);
	}
	assert_int_equal(vg_api_static_set_dir(g_www, err, sizeof(err)), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return fx_rm_tree(g_root) == 0 ? 0 : -1;
}

/* ---- pure ----------------------------------------------------------------- */

static void test_path_ok(void **state)
{
	(void)state;
	assert_true(vg_api_static_path_ok("index.html"));
	assert_true(vg_api_static_path_ok("app.js"));
	assert_true(vg_api_static_path_ok("img/logo-2_x.v1.png"));
	assert_false(vg_api_static_path_ok(NULL));
	assert_false(vg_api_static_path_ok(""));
	assert_false(vg_api_static_path_ok(".."));
	assert_false(vg_api_static_path_ok("../etc/passwd"));
	assert_false(vg_api_static_path_ok("img/../../x.js"));
	assert_false(vg_api_static_path_ok("img/./x.js"));
	assert_false(vg_api_static_path_ok(".git/config"));
	assert_false(vg_api_static_path_ok("/etc/passwd"));
	assert_false(vg_api_static_path_ok("img//x.js"));
	assert_false(vg_api_static_path_ok("img/"));
	assert_false(vg_api_static_path_ok("a\\..\\b.js"));
	assert_false(vg_api_static_path_ok("%2e%2e/x.js"));
	assert_false(vg_api_static_path_ok("a b.js"));
	assert_false(vg_api_static_path_ok("a:b.js"));
	assert_false(vg_api_static_path_ok("\xc0\xae\xc0\xae/x.js"));
	{
		char big[300];
		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_false(vg_api_static_path_ok(big));
	}
}

static void test_types(void **state)
{
	(void)state;
	assert_string_equal(vg_api_static_type("index.html"), "text/html; charset=utf-8");
	assert_string_equal(vg_api_static_type("app.js"), "text/javascript; charset=utf-8");
	assert_string_equal(vg_api_static_type("style.css"), "text/css; charset=utf-8");
	assert_string_equal(vg_api_static_type("img/a.png"), "image/png");
	assert_string_equal(vg_api_static_type("img/a.svg"), "image/svg+xml");
	assert_null(vg_api_static_type("notes.md"));
	assert_null(vg_api_static_type("Makefile"));
	assert_null(vg_api_static_type("a.js/b"));
	assert_null(vg_api_static_type("x."));
	assert_null(vg_api_static_type(NULL));
}

/* ---- through the route table ------------------------------------------------------ */

struct got {
	int status;
	char type[64];
	char *body;
	size_t len;
	char csp[128];
	char msg[256];
};

static void get(const char *method, const char *uri, struct got *g)
{
	struct vg_http_req req;
	struct vg_http_resp resp = {0};

	memset(g, 0, sizeof(*g));
	assert_int_equal(vg_http_req_parse(&req, method, uri), 0);
	/* no authorize hook: a public route must not need one anyway */
	vg_http_dispatch(vg_api_routes, vg_api_nroutes, NULL, &req, &resp);
	g->status = resp.status;
	snprintf(g->type, sizeof(g->type), "%s",
		 resp.content_type ? resp.content_type : "application/json");
	for (size_t i = 0; i < resp.nheaders; i++)
		if (!strcmp(resp.headers[i].name, "Content-Security-Policy"))
			snprintf(g->csp, sizeof(g->csp), "%s", resp.headers[i].value);
	if (!strcmp(g->type, "application/json") && resp.body) {
		json_t *j = json_loadb(resp.body, resp.len, 0, NULL);
		const char *m = json_string_value(json_object_get(
			json_object_get(j, "error"), "message"));
		snprintf(g->msg, sizeof(g->msg), "%s", m ? m : "");
		json_decref(j);
	}
	g->body = resp.body;
	g->len = resp.len;
	resp.body = NULL;
	vg_http_resp_release(&resp);
	vg_http_req_release(&req);
}

static void expect_file(const char *uri, const char *type, const char *text)
{
	struct got g;

	get("GET", uri, &g);
	if (g.status != 200)
		fail_msg("GET %s: %d %s", uri, g.status, g.msg);
	assert_string_equal(g.type, type);
	assert_int_equal(g.len, strlen(text));
	assert_memory_equal(g.body, text, g.len);
	assert_string_equal(g.csp, VG_API_STATIC_CSP);
	free(g.body);
}

static void expect_404(const char *uri)
{
	struct got g;

	get("GET", uri, &g);
	if (g.status != 404)
		fail_msg("GET %s: %d, wanted 404 (%.*s)", uri, g.status,
			 (int)(g.len > 80 ? 80 : g.len), g.body ? g.body : "");
	assert_string_equal(g.type, "application/json");
	if (!strstr(g.msg, "no such endpoint"))
		fail_msg("GET %s: message '%s'", uri, g.msg);
	free(g.body);
}

static void test_serves_files(void **state)
{
	(void)state;
	expect_file("/", "text/html; charset=utf-8", "<!doctype html><title>vigie</title>");
	expect_file("/index.html", "text/html; charset=utf-8", "<!doctype html><title>vigie</title>");
	expect_file("/app.js", "text/javascript; charset=utf-8", "'use strict';");
	expect_file("/style.css", "text/css; charset=utf-8", "body{}");
	expect_file("/img/dot.svg", "image/svg+xml", "<svg/>");
	expect_file("/%61pp.js", "text/javascript; charset=utf-8", "'use strict';");
	/* a symlink that stays inside is fine */
	expect_file("/home.html", "text/html; charset=utf-8", "<!doctype html><title>vigie</title>");
	/* query strings (cache busters) are ignored, not a 400 */
	expect_file("/app.js?v=2", "text/javascript; charset=utf-8", "'use strict';");
}

static void test_refuses(void **state)
{
	(void)state;
	expect_404("/../outside/secret.txt");
	expect_404("/img/../../outside/secret.txt");
	expect_404("/..%2foutside%2fsecret.txt");
	expect_404("/%2e%2e/outside/secret.txt");
	expect_404("/%2E%2E%2Foutside%2Fsecret.txt");
	expect_404("/%252e%252e/outside/secret.txt");
	expect_404("/%c0%ae%c0%ae/outside/secret.txt");
	expect_404("/..%5coutside%5csecret.txt");
	expect_404("/evil.txt");      /* symlink out of the dir */
	expect_404("/up/secret.txt"); /* symlinked directory out */
	expect_404("/.secret.txt");   /* hidden */
	expect_404("/notes.md");      /* unknown type */
	expect_404("/missing.js");
	expect_404("/img"); /* a directory */
	expect_404("/img/");
	expect_404("/v1/nothing-here"); /* unknown API path */
	expect_404("/v1/resources/a/b");
	expect_404("/v2/resources");
	expect_404("/etc/passwd");
}

static void test_methods(void **state)
{
	struct got g;

	(void)state;
	get("HEAD", "/app.js", &g);
	assert_int_equal(g.status, 200);
	free(g.body);
	get("POST", "/index.html", &g);
	assert_int_equal(g.status, 405);
	free(g.body);
	/* a GET on a POST-only API path is that path's 405, not the
	 * console's 404 (Prometheus remote read, the invoice freeze) */
	get("GET", "/api/v1/read", &g);
	assert_int_equal(g.status, 405);
	assert_non_null(strstr(g.msg, "allowed: POST"));
	free(g.body);
	get("GET", "/v1/invoices/finalize", &g);
	assert_int_equal(g.status, 405);
	free(g.body);
	/* a literal path owns its methods over a {var} route that also
	 * matches it: /v1/alarms/stream is GET only (its 405 listed
	 * /v1/alarms/{id}'s PUT, DELETE and PATCH, and DELETE reached an
	 * alarm named "stream"); the same for /v1/alarms/groups */
	get("POST", "/v1/alarms/stream", &g);
	assert_int_equal(g.status, 405);
	assert_non_null(strstr(g.msg, "(allowed: GET, HEAD)"));
	free(g.body);
	get("DELETE", "/v1/alarms/stream", &g);
	assert_int_equal(g.status, 405);
	free(g.body);
	get("PUT", "/v1/alarms/groups", &g);
	assert_int_equal(g.status, 405);
	assert_non_null(strstr(g.msg, "(allowed: GET, HEAD)"));
	free(g.body);
	/* ... while an alarm's own path keeps them */
	get("POST", "/v1/alarms/cpu-high", &g);
	assert_int_equal(g.status, 405);
	assert_non_null(strstr(g.msg, "(allowed: GET, HEAD, PUT, DELETE, PATCH)"));
	free(g.body);
	/* API routes still win over the catch-all */
	get("GET", "/v1/health", &g);
	assert_int_equal(g.status, 200);
	assert_string_equal(g.type, "application/json");
	free(g.body);
}

static void test_route_is_last_and_public(void **state)
{
	const struct vg_route *last = &vg_api_routes[vg_api_nroutes - 1];

	(void)state;
	assert_string_equal(last->pattern, "/{path*}");
	assert_ptr_equal(last->handler, vg_api_h_static);
	assert_true(last->flags & VG_ROUTE_PUBLIC);
	assert_false(last->methods & VG_HTTP_POST);
	for (size_t i = 0; i + 1 < vg_api_nroutes; i++)
		if (vg_api_routes[i].handler == vg_api_h_static)
			fail_msg("the static route appears before the end (%zu)", i);
}

static void test_choose_dir(void **state)
{
	char err[256], p[PATH_MAX * 2], real[PATH_MAX];

	(void)state;
	snprintf(p, sizeof(p), "%s/outside", g_root); /* no index.html */
	assert_int_equal(vg_api_static_set_dir(p, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "outside"));
	assert_string_equal(vg_api_static_dir(), "");
	expect_404("/"); /* console off, still a clean 404 */
	assert_int_equal(vg_api_static_set_dir("/nonexistent/www", err, sizeof(err)), -ENOENT);
	/* the directory is kept resolved (absolute, no symlinks) */
	assert_int_equal(vg_api_static_set_dir(g_www, err, sizeof(err)), 0);
	assert_non_null(realpath(g_www, real));
	assert_string_equal(vg_api_static_dir(), real);
	expect_file("/app.js", "text/javascript; charset=utf-8", "'use strict';");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_ok),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_serves_files),
		cmocka_unit_test(test_refuses),
		cmocka_unit_test(test_methods),
		cmocka_unit_test(test_route_is_last_and_public),
		cmocka_unit_test(test_choose_dir),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
