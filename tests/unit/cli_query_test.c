/*
 * cli_query_test.c — the `vigie` query commands (stats, latest, top,
 * aggregate, graph, token, measures --sparkline) run in-process
 * (vg_cli_run) against the real API (vg_api_start on a loopback port) over
 * a small hand-written data dir, checking the printed text, the files
 * written and the exit codes; plus the pure sparkline.
 *
 * Data: one poll a minute, k = 0..20 at T0 + 60k (the row named
 * T0+60(k-1) holds the value written at T0+60k):
 *   vm-a instance p1 small: cpu.util = k, cpu.time = 30k (0.5 s/s)
 *   vm-b instance p1 large: cpu.util = 2k
 *   vm-c instance p2 small: cpu.util = 100 - k
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "vigie/api.h"
#include "query/api/api_handlers.h"
#include "vigie/batch.h"
#include "query/cli/cli.h"
#include "vigie/config.h"
#include "vigie/registry.h"
#include "vigie/store.h"
#include "vigie/token.h"

#include "../support/api_fixture.h"

#define T0 1794999600LL
#define NPOLLS 21
#define START "1794999600"
#define END "1795000799"

static struct fx_api srv;
static char tok_admin[VG_TOKEN_LEN + 1], tok_p1[VG_TOKEN_LEN + 1];

static void test_sparkline(void **state)
{
	const double up[8] = {0, 1, 2, 3, 4, 5, 6, 7};
	const double gap[3] = {1, NAN, 2};
	double flat[4] = {5, 5, 5, 5}, many[100];
	char out[512];

	(void)state;
	assert_int_equal(vg_cli_sparkline(up, 8, 80, out, sizeof(out)), 8);
	assert_string_equal(out, "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588");
	assert_int_equal(vg_cli_sparkline(gap, 3, 80, out, sizeof(out)), 3);
	assert_string_equal(out, "\u2581 \u2588");
	vg_cli_sparkline(flat, 4, 80, out, sizeof(out));
	assert_string_equal(out, "\u2584\u2584\u2584\u2584");
	/* noise below what the summary prints (all "50") is drawn flat; a
	 * spread it prints (50 and 50.001) is scaled */
	const double noise[3] = {49.9998, 50.0002, 50.0};
	vg_cli_sparkline(noise, 3, 80, out, sizeof(out));
	assert_string_equal(out, "\u2584\u2584\u2584");
	const double small[2] = {50.0, 50.001};
	vg_cli_sparkline(small, 2, 80, out, sizeof(out));
	assert_string_equal(out, "\u2581\u2588");
	for (int i = 0; i < 100; i++)
		many[i] = i < 50 ? 0 : 10;
	assert_int_equal(vg_cli_sparkline(many, 100, 10, out, sizeof(out)), 10);
	assert_string_equal(out, "\u2581\u2581\u2581\u2581\u2581\u2588\u2588\u2588\u2588\u2588");
	assert_int_equal(vg_cli_sparkline(up, 0, 10, out, sizeof(out)), 0);
	assert_string_equal(out, "");
}

static int write_data(void)
{
	struct fx_data d;

	if (fx_data_open(srv.dir, &d))
		return -1;
	srv.store = d.store;
	for (int k = 0; k < NPOLLS; k++) {
		int64_t t = (T0 + 60 * k) * 1000;
		struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)k + 1, t);

		vg_batch_resource(b, VG_RT_INSTANCE, "vm-a", "alpha", NULL, t);
		vg_batch_identity(b, "p1", "u1", "small");
		vg_batch_attr(b, "az", "zone-a");
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, k);
		vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, 30.0 * k);
		vg_batch_resource(b, VG_RT_INSTANCE, "vm-b", "beta", NULL, t);
		vg_batch_identity(b, "p1", "u1", "large");
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 2.0 * k);
		vg_batch_resource(b, VG_RT_INSTANCE, "vm-c", "gamma", NULL, t);
		vg_batch_identity(b, "p2", "u2", "small");
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 100.0 - k);
		if (fx_data_write(&d, b))
			return -1;
	}
	fx_data_done(&d);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	unsetenv("VIGIE_API");
	unsetenv("VIGIE_TOKEN");
	setenv("COLUMNS", "40", 1);
	if (fx_tmpdir(srv.dir, sizeof(srv.dir), "cliq-test") || write_data() ||
	    fx_token(srv.dir, NULL, "admin", tok_admin) ||
	    fx_token(srv.dir, "p1", "p1", tok_p1))
		return -1;
	return fx_api_start(&srv, NULL);
}

static int teardown(void **state)
{
	(void)state;
	fx_api_stop(&srv);
	return 0;
}

/* `vigie --api URL --token TOKEN ARGS...` (token NULL: none). */
static struct fx_run vigie(const char *token, ...)
{
	va_list ap;
	struct fx_run r;

	va_start(ap, token);
	r = fx_vcli(srv.url, token, va_arg(ap, const char *), ap);
	va_end(ap);
	return r;
}

/* A failing command: exit code rc, nothing on stdout, one line on stderr
 * containing frag. */
static void expect_fail(struct fx_run r, int rc, const char *frag)
{
	if (r.rc != rc || r.out[0] || !strstr(r.err, frag) ||
	    strchr(r.err, '\n') != r.err + strlen(r.err) - 1)
		fail_msg("exit %d (want %d), out '%s', err '%s' (want '%s')", r.rc, rc,
			 r.out, r.err, frag);
	fx_run_free(&r);
}

static void test_help_everywhere(void **state)
{
	static const char *const cmds[] = {"stats", "latest", "top", "aggregate",
					   "graph", "token", "measures"};
	(void)state;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		struct fx_run r = vigie(NULL, cmds[i], "--help", NULL);
		if (r.rc != 0 || !strstr(r.out, "usage: vigie ") || r.err[0])
			fail_msg("%s --help: exit %d, '%s'", cmds[i], r.rc, r.out);
		fx_run_free(&r);
	}
	struct fx_run r = vigie(NULL, "--help", NULL);
	assert_int_equal(r.rc, 0);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		assert_non_null(strstr(r.out, cmds[i]));
	assert_non_null(strstr(r.out, "--cacert"));
	fx_run_free(&r);
}

static void test_stats(void **state)
{
	struct fx_run r;

	(void)state;
	r = vigie(tok_admin, "stats", "vm-a", "cpu.util", "--period", "600",
		  "--granularity", "60", "--start", START, "--end", END,
		  "--statistics", "SampleCount,Average,Maximum,p90", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "TIME                  SampleCount  Average (%)  "
				      "Maximum (%)  p90 (%)\n"));
	assert_non_null(strstr(r.out, "2026-11-18T11:00:00Z           10          5.5"
				      "           10        9\n"));
	assert_non_null(strstr(r.out, "2026-11-18T11:10:00Z           10         15.5"
				      "           20       19\n"));
	fx_run_free(&r);
	r = vigie(tok_admin, "stats", "vm-a", "cpu.time", "--period", "1200",
		  "--start", START, "--end", END, "--json", NULL);
	assert_int_equal(r.rc, 0);
	json_t *j = json_loads(r.out, 0, NULL);
	assert_true(fabs(json_number_value(json_object_get(
				 json_array_get(json_object_get(j, "datapoints"), 0),
				 "Average")) -
			 0.5) < 1e-9);
	json_decref(j);
	fx_run_free(&r);
	expect_fail(vigie(tok_admin, "stats", "vm-a", NULL), 2, "expected RESOURCE and METRIC");
	expect_fail(vigie(tok_admin, "stats", "vm-a", "cpu.util", "--granularity", "7", NULL),
		    2, "--granularity");
	expect_fail(vigie(tok_admin, "stats", "vm-a", "cpu.util", "--period", "90", NULL), 1,
		    "not a multiple of the granularity 60 (HTTP 400)");
	expect_fail(vigie(tok_admin, "stats", "ghost", "cpu.util", NULL), 1,
		    "no resource 'ghost' (HTTP 404)");
	expect_fail(vigie(tok_p1, "stats", "vm-c", "cpu.util", NULL), 1,
		    "no resource 'vm-c' (HTTP 404)");
}

static void test_latest(void **state)
{
	struct fx_run r;

	(void)state;
	r = vigie(tok_admin, "latest", "vm-a", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "METRIC    VALUE  UNIT  KIND     TIME\n"));
	assert_non_null(strstr(r.out, "cpu.time    0.5  s/s   counter  2026-11-18T11:19:00Z\n"));
	assert_non_null(strstr(r.out, "cpu.util     20  %     gauge    2026-11-18T11:20:00Z\n"));
	fx_run_free(&r);
	expect_fail(vigie(tok_admin, "latest", NULL), 2, "expected one RESOURCE");
	expect_fail(vigie(tok_admin, "latest", "nope", NULL), 1, "no resource 'nope'");
}

static void test_top(void **state)
{
	struct fx_run r;
	char *a, *b, *c;

	(void)state;
	r = vigie(tok_admin, "top", "--once", NULL);
	assert_int_equal(r.rc, 0);
	assert_null(strchr(r.out, '\033')); /* plain text */
	assert_non_null(strstr(r.out, "vigie top: cpu.util, 3 of 3 instance at "));
	a = strstr(r.out, "vm-a");
	b = strstr(r.out, "vm-b");
	c = strstr(r.out, "vm-c");
	assert_true(a && b && c && c < b && b < a);
	assert_non_null(strstr(r.out, "cpu.util (%)"));
	fx_run_free(&r);
	/* a project's token: its own instances only */
	r = vigie(tok_p1, "top", "--once", "--limit", "1", "--asc", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "1 of 2"));
	assert_non_null(strstr(r.out, "vm-a"));
	assert_null(strstr(r.out, "vm-c"));
	fx_run_free(&r);
	/* the live view: redrawn in place, cursor hidden then shown */
	r = vigie(tok_admin, "top", "--count", "2", "--interval", "0.2", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "\033[?25l\033[2J\033[H"));
	assert_non_null(strstr(strstr(r.out, "\033[H") + 1, "\033[H")); /* twice */
	assert_non_null(strstr(r.out, "\033[K\n"));
	assert_non_null(strstr(r.out, "\033[?25h"));
	fx_run_free(&r);
	r = vigie(tok_admin, "top", "--once", "--metric", "cpu.time", "--json", NULL);
	assert_int_equal(r.rc, 0);
	json_t *j = json_loads(r.out, 0, NULL);
	assert_int_equal(json_array_size(json_object_get(j, "resources")), 1);
	json_decref(j);
	fx_run_free(&r);
	expect_fail(vigie(tok_admin, "top", "--once", "--count", "2", NULL), 2, "exclude");
	expect_fail(vigie(tok_admin, "top", "--interval", "0", NULL), 2, "--interval");
	expect_fail(vigie(tok_admin, "top", "--once", "--limit", "0", NULL), 1,
		    "bad limit '0'");
	expect_fail(vigie(tok_admin, "top", "extra", NULL), 2, "unexpected argument");
}

static void test_aggregate(void **state)
{
	struct fx_run r;

	(void)state;
	r = vigie(tok_admin, "aggregate", "cpu.util", "--group-by", "project",
		  "--granularity", "60", "--start", START, "--end", END, NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "TIME                  p1 (%)  p2 (%)\n"));
	/* k = 4: p1 mean (4 + 8) / 2 = 6, p2 = 96 */
	assert_non_null(strstr(r.out, "2026-11-18T11:03:00Z       6      96\n"));
	fx_run_free(&r);
	r = vigie(tok_admin, "aggregate", "cpu.util", "--aggregation", "sum",
		  "--granularity", "300", "--start", START, "--end", END, NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "TIME                  sum (%)\n"));
	/* k = 1..5: (k + 2k + 100 - k) averaged per resource then summed:
	 * mean(k) + mean(2k) + mean(100-k) = 3 + 6 + 97 = 106 */
	assert_non_null(strstr(r.out, "2026-11-18T11:00:00Z      106\n"));
	fx_run_free(&r);
	expect_fail(vigie(tok_admin, "aggregate", NULL), 2, "expected one METRIC");
	expect_fail(vigie(tok_admin, "aggregate", "cpu.util", "--aggregation", "median", NULL),
		    2, "--aggregation");
	expect_fail(vigie(tok_admin, "aggregate", "cpu.util", "--type", "vm", NULL), 1,
		    "bad type 'vm'");
}

static void test_graph(void **state)
{
	char path[300], buf[8];
	struct fx_run r;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/out.png", srv.dir);
	r = vigie(tok_admin, "graph", "-o", path, "vm-a", "cpu.util", "vm-b", "cpu.util",
		  "--start", START, "--end", END, "--title", "CPU: a vs b",
		  "--legend", "a", "--width", "300", "--height", "100", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "wrote "));
	fx_run_free(&r);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(buf, 1, 8, f), 8);
	fclose(f);
	assert_memory_equal(buf, "\x89PNG\r\n\x1a\n", 8);
	expect_fail(vigie(tok_admin, "graph", "-o", path, "vm-a", NULL), 2, "pairs");
	expect_fail(vigie(tok_admin, "graph", "vm-a", "cpu.util", NULL), 2, "-o FILE");
	expect_fail(vigie(tok_admin, "graph", "-o", path, "vm-a", "cpu.util", "--title",
			  "a\nPRINT:v0:AVERAGE:%lf", NULL),
		    1, "bad title");
	expect_fail(vigie(tok_p1, "graph", "-o", path, "vm-c", "cpu.util", NULL), 1,
		    "no resource 'vm-c' (HTTP 404)");
	snprintf(path, sizeof(path), "%s/no/such/dir/out.png", srv.dir);
	expect_fail(vigie(tok_admin, "graph", "-o", path, "vm-a", "cpu.util", NULL), 1,
		    "cannot write");
}

static void test_token(void **state)
{
	struct fx_run r;
	char tok[VG_TOKEN_LEN + 1], id[VG_TOKEN_ID_LEN + 1];

	(void)state;
	r = vigie(tok_admin, "token", "create", "--project", "p2", "--name", "ci", NULL);
	assert_int_equal(r.rc, 0);
	assert_int_equal(strlen(r.out), VG_TOKEN_LEN + 1);
	memcpy(tok, r.out, VG_TOKEN_LEN);
	tok[VG_TOKEN_LEN] = '\0';
	assert_int_equal(vg_token_parse(tok, id), 0);
	assert_non_null(strstr(r.err, "shown only once"));
	fx_run_free(&r);
	/* the new token works and sees p2 only */
	r = vigie(tok, "resources", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "vm-c"));
	assert_null(strstr(r.out, "vm-a"));
	fx_run_free(&r);
	r = vigie(tok_admin, "token", "list", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, id));
	assert_non_null(strstr(r.out, "project  p2"));
	fx_run_free(&r);
	/* --json: the answer indented, one final newline */
	r = vigie(tok_admin, "token", "list", "--json", NULL);
	assert_int_equal(r.rc, 0);
	assert_int_equal(strncmp(r.out, "{\n  \"tokens\": [", 15), 0);
	assert_non_null(strstr(r.out, id));
	assert_string_equal(r.out + strlen(r.out) - 2, "}\n");
	fx_run_free(&r);
	r = vigie(tok_admin, "token", "revoke", id, NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "revoked"));
	fx_run_free(&r);
	expect_fail(vigie(tok, "resources", NULL), 1, "invalid or revoked token (HTTP 401)");
	expect_fail(vigie(tok_admin, "token", "revoke", id, NULL), 1, "already revoked");
	expect_fail(vigie(tok_p1, "token", "list", NULL), 1, "needs an admin token (HTTP 403)");
	expect_fail(vigie(tok_admin, "token", "create", NULL), 2, "exactly one of");
	expect_fail(vigie(tok_admin, "token", "create", "--admin", "--project", "x", NULL), 2,
		    "exactly one of");
	expect_fail(vigie(tok_admin, "token", "burn", NULL), 2, "unknown command");
	expect_fail(vigie(tok_admin, "token", NULL), 2, "expected create, list or revoke");
}

static void test_sparkline_cmd(void **state)
{
	struct fx_run r;

	(void)state;
	r = vigie(tok_admin, "measures", "vm-a", "cpu.util", "--start", START, "--end", END,
		  "--sparkline", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "vm-a cpu.util (%), 2026-11-18T11:00:00Z .. "));
	assert_non_null(strstr(r.out, "\u2581"));
	assert_non_null(strstr(r.out, "\u2588"));
	assert_non_null(strstr(r.out, "min 1  mean 10.5  max 20  last 20  (20 points)\n"));
	fx_run_free(&r);
	/* `vigie query EXPR` draws each series with the same summary line */
	r = vigie(tok_admin, "query", "cpu.util", "--start", START, "--end", END, NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "min 1  mean 10.5  max 20  last 20  (20 points)\n"));
	assert_non_null(strstr(r.out, "min 2  mean 21  max 40  last 40  (20 points)\n"));
	assert_non_null(strstr(r.out, "min 80  mean 89.5  max 99  last 80  (20 points)\n"));
	fx_run_free(&r);
	expect_fail(vigie(tok_admin, "measures", "vm-a", "cpu.util", "--sparkline", "--json",
			  NULL),
		    2, "exclude");
}

static void test_resources_metadata(void **state)
{
	struct fx_run r;

	(void)state;
	r = vigie(tok_admin, "resources", "--metadata", "az=zone-a", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "vm-a"));
	assert_null(strstr(r.out, "vm-b"));
	fx_run_free(&r);
	expect_fail(vigie(tok_admin, "resources", "--metadata", "=x", NULL), 1, "bad metadata");
}

static void test_exit_codes(void **state)
{
	(void)state;
	expect_fail(vigie(NULL, "resources", NULL), 1,
		    "missing bearer token (send 'Authorization: Bearer TOKEN') (HTTP 401)");
	expect_fail(vigie("vgt_bad", "resources", NULL), 1, "invalid or revoked token");
	/* nobody listens on port 1 */
	char *argv[] = {"vigie", "--api", "http://127.0.0.1:1", "latest", "x", NULL};
	FILE *out = tmpfile(), *err = tmpfile();
	assert_int_equal(vg_cli_run(5, argv, out, err), 3);
	fclose(out);
	fclose(err);
	expect_fail(vigie(tok_admin, "stats", "--bogus", NULL), 2, "unknown option");
	expect_fail(vigie(tok_admin, "graph", "--title", NULL), 2, "needs a value");
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_sparkline),
	};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_help_everywhere),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_latest),
		cmocka_unit_test(test_top),
		cmocka_unit_test(test_aggregate),
		cmocka_unit_test(test_graph),
		cmocka_unit_test(test_token),
		cmocka_unit_test(test_sparkline_cmd),
		cmocka_unit_test(test_resources_metadata),
		cmocka_unit_test(test_exit_codes),
	};
	int rc = cmocka_run_group_tests_name("cli_query_pure", pure, NULL, NULL);

	rc += cmocka_run_group_tests_name("cli_query", tests, setup, teardown);
	return rc;
}
