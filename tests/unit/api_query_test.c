/*
 * api_query_test.c — the query endpoints on the real server
 * (vg_api_start on a loopback port, libcurl): tenants (bearer tokens, 401,
 * 403, token endpoints), statistics, aggregates, latest, top, graph (with
 * the rrd_graph injection attempts), /metrics, tenant isolation across
 * every endpoint, and every 4xx. Plus the pure helpers: statistics list,
 * percentiles, graph text and argument vector, Prometheus escaping.
 *
 * Data (hand-built batches, one poll a minute, k = 0..20 at T0 + 60k; the
 * RRD row named T0+60(k-1) holds the value written at T0+60k):
 *   vm-a  instance p1 h1 small  cpu.util = k       cpu.time = 30k (0.5 s/s)
 *                                app.queue = 3 (not in the catalogue)
 *   vm-b  instance p1 h2 large  cpu.util = 2k      cpu.time = 60k (1 s/s)
 *   vm-c  instance p2 h1 small  cpu.util = 100-k
 *   vm-d  instance p2 h2 small  cpu.util = 50, ended at the last poll
 *   vm-a-vda disk of vm-a (p1)  disk.read.bytes = 1000k
 *   q"x\y instance p2 h1        memory.used = 7   (hostile characters)
 *   h1    host (default)        memory.used = 5e9  host.load.1 = k/4
 *                                app.queue = 4
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "vigie/api.h"
#include "query/api/api_handlers.h"
#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/config.h"
#include "vigie/name.h"
#include "vigie/registry.h"
#include "vigie/store.h"
#include "vigie/token.h"

#include "../support/api_fixture.h"

#define T0 1794999600LL /* 2026-11-18T11:00:00Z, a multiple of 3600 */
#define NPOLLS 21

static struct fx_api srv;
static char tok_admin[VG_TOKEN_LEN + 1], tok_p1[VG_TOKEN_LEN + 1],
	tok_p2[VG_TOKEN_LEN + 1];

/* ---- pure pieces ------------------------------------------------------------- */

static void test_parse_statistics(void **state)
{
	struct vg_api_stat st[VG_API_STATS_MAX];
	char err[256];
	size_t n;

	(void)state;
	assert_int_equal(vg_api_parse_statistics(NULL, st, 16, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 5);
	assert_string_equal(st[0].name, "SampleCount");
	assert_string_equal(st[4].name, "Maximum");
	assert_int_equal(vg_api_parse_statistics("average,p99,P99.9,p50", st, 16,
						 &n, err, sizeof(err)),
			 0);
	assert_int_equal(n, 4);
	assert_string_equal(st[0].name, "Average");
	assert_int_equal(st[1].kind, VG_API_STAT_PERCENTILE);
	assert_true(st[1].p == 99);
	assert_string_equal(st[2].name, "p99.9");
	assert_true(fabs(st[2].p - 99.9) < 1e-9);
	assert_int_equal(vg_api_parse_statistics("Median", st, 16, &n, err,
						 sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "unknown statistic 'Median'"));
	/* the range the message gives is the one taken (docs/api.md): p0
	 * and p0.05 are percentiles */
	assert_non_null(strstr(err, "0 <= NN <= 100"));
	assert_int_equal(vg_api_parse_statistics("p0.05", st, 16, &n, err, sizeof(err)), 0);
	assert_true(st[0].p == 0.05);
	/* p0 as an alarm takes it (alarms.md: p0 to p100): the smallest value */
	assert_int_equal(vg_api_parse_statistics("p0", st, 16, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_int_equal(st[0].kind, VG_API_STAT_PERCENTILE);
	assert_true(st[0].p == 0);
	assert_int_equal(vg_api_parse_statistics("p101", st, 16, &n, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(vg_api_parse_statistics("p9x", st, 16, &n, err, sizeof(err)),
			 -EINVAL);
	/* strtod's other syntaxes: p0x10 was p16 and p1e1 p10 */
	assert_int_equal(vg_api_parse_statistics("p0x10", st, 16, &n, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(vg_api_parse_statistics("p1e1", st, 16, &n, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(vg_api_parse_statistics("Sum,,Average", st, 16, &n, err,
						 sizeof(err)),
			 -EINVAL);
	assert_int_equal(vg_api_parse_statistics("", st, 16, &n, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(vg_api_parse_statistics("Sum,sum", st, 16, &n, err,
						 sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "twice"));
	assert_int_equal(vg_api_parse_statistics("p1,p2,p3", st, 2, &n, err,
						 sizeof(err)),
			 -EINVAL);
}

static void test_percentile(void **state)
{
	const double v[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

	(void)state;
	assert_true(vg_api_percentile(v, 10, 0) == 1);
	assert_true(vg_api_percentile(v, 10, 50) == 5);
	assert_true(vg_api_percentile(v, 10, 90) == 9);
	assert_true(vg_api_percentile(v, 10, 99) == 10);
	assert_true(vg_api_percentile(v, 10, 100) == 10);
	assert_true(vg_api_percentile(v, 10, 0.1) == 1);
	assert_true(vg_api_percentile(v, 1, 50) == 1);
	assert_true(isnan(vg_api_percentile(v, 0, 50)));
}

static void test_period(void **state)
{
	uint32_t p;

	(void)state;
	assert_int_equal(vg_api_parse_period(NULL, &p), 0);
	assert_int_equal(p, VG_API_STATS_DEFAULT_PERIOD);
	assert_int_equal(vg_api_parse_period("3600", &p), 0);
	assert_int_equal(p, 3600);
	assert_int_equal(vg_api_parse_period("59", &p), -EINVAL);
	assert_int_equal(vg_api_parse_period("-60", &p), -EINVAL);
	assert_int_equal(vg_api_parse_period("60s", &p), -EINVAL);
	assert_int_equal(vg_api_parse_period("99999999999", &p), -EINVAL);
}

static void test_graph_text(void **state)
{
	char out[512];

	(void)state;
	assert_int_equal(vg_api_graph_text("cpu: 50%", 1, 1, out, sizeof(out)), 0);
	assert_string_equal(out, "cpu\\: 50%");
	assert_int_equal(vg_api_graph_text("a:b", 0, 1, out, sizeof(out)), 0);
	assert_string_equal(out, "a:b"); /* a title is one argument */
	assert_int_equal(vg_api_graph_text("x\nPRINT:v0:AVERAGE:%lf", 1, 1, out,
					   sizeof(out)),
			 -EINVAL);
	assert_int_equal(vg_api_graph_text("x\\l", 1, 1, out, sizeof(out)), -EINVAL);
	assert_int_equal(vg_api_graph_text("x\\l\nz", 1, 0, out, sizeof(out)), 0);
	assert_string_equal(out, "x?l?z");
	assert_int_equal(vg_api_graph_text("caf\xc3\xa9", 1, 1, out, sizeof(out)), 0);
	assert_int_equal(vg_api_graph_text("bad \xff utf8", 1, 1, out, sizeof(out)),
			 -EINVAL);
	char longs[300];
	memset(longs, 'a', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	assert_int_equal(vg_api_graph_text(longs, 1, 1, out, sizeof(out)),
			 -ENAMETOOLONG);
}

/* The default legend of a series with a multi-byte id: cut on a character
 * boundary, never inside one (Pango: "Invalid UTF-8 string"). */
static void test_graph_default_legend(void **state)
{
	char id[128], out[4 * VG_API_GRAPH_LEGEND_MAX + 8], want[128];
	size_t o;

	(void)state;
	/* "x" + 30 x U+00E9 (2 bytes): byte 60 is the middle of the 30th */
	o = (size_t)snprintf(id, sizeof(id), "x");
	for (int i = 0; i < 30; i++)
		o += (size_t)snprintf(id + o, sizeof(id) - o, "\xc3\xa9");
	vg_api_graph_default_legend(id, "cpu.util", "%", out, sizeof(out));
	assert_true(vg_name_valid(out));
	memcpy(want, id, 59); /* "x" and 29 whole characters */
	snprintf(want + 59, sizeof(want) - 59, " cpu.util (%%)");
	assert_string_equal(out, want);
	/* CJK (3 bytes): "ab" + 20 x U+65E5, byte 60 splits the 20th */
	o = (size_t)snprintf(id, sizeof(id), "ab");
	for (int i = 0; i < 20; i++)
		o += (size_t)snprintf(id + o, sizeof(id) - o, "\xe6\x97\xa5");
	vg_api_graph_default_legend(id, "memory.used", NULL, out, sizeof(out));
	assert_true(vg_name_valid(out));
	memcpy(want, id, 59);
	snprintf(want + 59, sizeof(want) - 59, " memory.used");
	assert_string_equal(out, want);
	/* a short id is whole; a long metric is cut too, and the legend
	 * always fits what vg_api_graph_text takes */
	vg_api_graph_default_legend("vm-a", "cpu.util", "", out, sizeof(out));
	assert_string_equal(out, "vm-a cpu.util");
	char met[80];
	o = 0;
	for (int i = 0; i < 25; i++)
		o += (size_t)snprintf(met + o, sizeof(met) - o, "\xe6\x97\xa5");
	vg_api_graph_default_legend(id, met, "bytes per second", out, sizeof(out));
	assert_true(vg_name_valid(out));
	assert_true(strlen(out) <= VG_API_GRAPH_LEGEND_MAX);
	char text[512];
	assert_int_equal(vg_api_graph_text(out, 1, 1, text, sizeof(text)), 0);
}

static int count_prefix(const struct vg_api_graph_args *a, const char *p)
{
	int n = 0;

	for (int i = 0; i < a->argc; i++)
		n += !strncmp(a->argv[i], p, strlen(p));
	return n;
}

/* The injection attempts of the brief, on the pure argument builder. */
static void test_graph_build_injection(void **state)
{
	struct vg_api_graph_spec *g = calloc(1, sizeof(*g));
	struct vg_api_graph_args *a = calloc(1, sizeof(*a));
	char err[256];

	(void)state;
	g->start_ms = T0 * 1000;
	g->end_ms = (T0 + 1200) * 1000;
	g->width = 400;
	g->height = 100;
	g->n = 1;
	snprintf(g->line[0].path, sizeof(g->line[0].path), "/data/rrd/instance/vm-a/cpu.util.rrd");
	snprintf(g->line[0].legend, sizeof(g->line[0].legend),
		 "x:DEF:y=/etc/passwd:value:AVERAGE PRINT:y:AVERAGE:%%lf");
	g->line[0].legend_strict = 1;
	g->title = "t: a \"quoted\" title";
	assert_int_equal(vg_api_graph_build(g, a, err, sizeof(err)), 0);
	/* exactly one DEF, and it is the server's path */
	assert_int_equal(count_prefix(a, "DEF:"), 1);
	assert_int_equal(count_prefix(a, "PRINT"), 0);
	assert_int_equal(count_prefix(a, "LINE2:"), 1);
	for (int i = 0; i < a->argc; i++) {
		assert_null(strchr(a->argv[i], '\n'));
		if (!strncmp(a->argv[i], "DEF:", 4))
			assert_string_equal(a->argv[i],
					    "DEF:v0=/data/rrd/instance/vm-a/cpu.util.rrd:value:AVERAGE");
		if (!strncmp(a->argv[i], "LINE2:", 6))
			assert_string_equal(a->argv[i],
					    "LINE2:v0#1f77b4:x\\:DEF\\:y=/etc/passwd\\:value\\:AVERAGE "
					    "PRINT\\:y\\:AVERAGE\\:%lf");
		if (!strncmp(a->argv[i], "--title", 7))
			assert_string_equal(a->argv[i], "--title=t: a \"quoted\" title");
	}
	/* a newline in the title or a legend: refused, no arguments */
	g->title = "a:b\nPRINT:v0:AVERAGE:%lf";
	assert_int_equal(vg_api_graph_build(g, a, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "title"));
	g->title = NULL;
	snprintf(g->line[0].legend, sizeof(g->line[0].legend), "ok\\nDEF:z=/etc/passwd");
	assert_int_equal(vg_api_graph_build(g, a, err, sizeof(err)), -EINVAL);
	/* a default legend from an id is cleaned, not refused */
	g->line[0].legend_strict = 0;
	assert_int_equal(vg_api_graph_build(g, a, err, sizeof(err)), 0);
	assert_int_equal(count_prefix(a, "DEF:"), 1);
	/* a data directory with a colon cannot be expressed safely */
	snprintf(g->line[0].path, sizeof(g->line[0].path), "/da:ta/x.rrd");
	assert_int_equal(vg_api_graph_build(g, a, err, sizeof(err)), -ENOTSUP);
	free(g);
	free(a);
}

/* Random bytes as title and legend: whatever vg_api_graph_build accepts has
 * exactly one DEF per series, no newline anywhere, and in every LINE
 * exactly two field separators (colons not escaped by us). */
static void test_graph_build_random(void **state)
{
	struct vg_api_graph_spec *g = calloc(1, sizeof(*g));
	struct vg_api_graph_args *a = calloc(1, sizeof(*a));
	static const char alphabet[] = "ab:\\n\n\r\"'%#=DEFPRINT /.\t\x01\xc3\xa9\xff";
	char err[256], title[64];
	int accepted = 0;

	(void)state;
	srandom(4);
	g->start_ms = T0 * 1000;
	g->end_ms = (T0 + 60) * 1000;
	g->width = 400;
	g->height = 100;
	g->n = 2;
	snprintf(g->line[0].path, sizeof(g->line[0].path), "/d/rrd/instance/a/cpu.util.rrd");
	snprintf(g->line[1].path, sizeof(g->line[1].path), "/d/rrd/instance/b/cpu.util.rrd");
	for (int it = 0; it < 20000; it++) {
		for (int l = 0; l < 2; l++) {
			int n = (int)(random() % 12);
			for (int i = 0; i < n; i++)
				g->line[l].legend[i] =
					alphabet[random() % (sizeof(alphabet) - 1)];
			g->line[l].legend[n] = '\0';
			g->line[l].legend_strict = (int)(random() % 2);
		}
		int tn = (int)(random() % 8);
		for (int i = 0; i < tn; i++)
			title[i] = alphabet[random() % (sizeof(alphabet) - 1)];
		title[tn] = '\0';
		g->title = title;
		if (vg_api_graph_build(g, a, err, sizeof(err)))
			continue;
		accepted++;
		assert_int_equal(count_prefix(a, "DEF:"), 2);
		assert_int_equal(count_prefix(a, "LINE2:"), 2);
		for (int i = 0; i < a->argc; i++) {
			const char *p = a->argv[i];
			assert_null(strchr(p, '\n'));
			assert_null(strchr(p, '\r'));
			if (!strncmp(p, "LINE2:", 6)) {
				int seps = 0;
				for (size_t k = 0; p[k]; k++)
					if (p[k] == ':' && (k == 0 || p[k - 1] != '\\'))
						seps++;
				assert_int_equal(seps, 2);
			}
			if (!strncmp(p, "DEF:", 4))
				assert_non_null(strstr(p, "=/d/rrd/instance/"));
		}
	}
	assert_true(accepted > 500); /* the property was exercised */
	free(g);
	free(a);
}

static void test_prom_pure(void **state)
{
	struct vg_buf b = {0};
	char name[128], *s;

	(void)state;
	vg_api_prom_label_value(&b, "a\"b\\c\nd");
	vg_api_prom_value(&b, 0.1);
	vg_buf_append(&b, " ", 1);
	vg_api_prom_value(&b, NAN);
	vg_buf_append(&b, " ", 1);
	vg_api_prom_value(&b, -INFINITY);
	s = vg_buf_take(&b, NULL);
	assert_string_equal(s, "a\\\"b\\\\c\\nd0.1 NaN -Inf");
	free(s);
	vg_api_prom_name("disk.read.bytes", 1, name, sizeof(name));
	assert_string_equal(name, "vigie_disk_read_bytes_total");
	vg_api_prom_name("vcpu.0-time", 0, name, sizeof(name));
	assert_string_equal(name, "vigie_vcpu_0_time");
}

/* ---- the server ---------------------------------------------------------------- */

static void fake_stats(void *ctx, struct vg_receiver_stats *out)
{
	(void)ctx;
	memset(out, 0, sizeof(*out));
	out->batches_received = 7;
	out->batches_rejected = 2;
	out->batches_forged = 1;
	out->resources_foreign = 3;
	out->projects_trimmed = 5;
	out->batches_malformed = 1;
	out->samples_received = 123;
	out->registry_flush_failures = 4;
	out->registry_gone_resources = 6;
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
		struct vg_resource *r;

		vg_batch_resource(b, VG_RT_INSTANCE, "vm-a", "alpha", NULL, t);
		vg_batch_identity(b, "p1", "u1", "small");
		vg_batch_attr(b, "az", "zone-a");
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, k);
		vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, 30.0 * k);
		vg_batch_sample(b, "app.queue", VG_KIND_GAUGE, 3);
		vg_batch_resource(b, VG_RT_DISK, "vm-a-vda", "vda", "vm-a", t);
		vg_batch_identity(b, "p1", "u1", NULL);
		vg_batch_sample(b, "disk.read.bytes", VG_KIND_COUNTER, 1000.0 * k);
		vg_batch_resource(b, VG_RT_INSTANCE, "vm-c", "gamma", NULL, t);
		vg_batch_identity(b, "p2", "u2", "small");
		vg_batch_attr(b, "az", "zone-a");
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 100.0 - k);
		vg_batch_resource(b, VG_RT_INSTANCE, "q\"x\\y", "hostile", NULL, t);
		vg_batch_identity(b, "p2", "u2", NULL);
		vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 7);
		vg_batch_resource(b, VG_RT_HOST, "h1", "h1", NULL, t);
		vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 5e9);
		vg_batch_sample(b, "host.load.1", VG_KIND_GAUGE, k / 4.0);
		vg_batch_sample(b, "app.queue", VG_KIND_GAUGE, 4);
		if (fx_data_write(&d, b))
			return -1;

		b = vg_batch_new("h2", 1, (uint64_t)k + 1, t);
		vg_batch_resource(b, VG_RT_INSTANCE, "vm-b", "beta", NULL, t);
		vg_batch_identity(b, "p1", "u1", "large");
		vg_batch_attr(b, "az", "zone-b");
		vg_batch_attr(b, "role", "db=primary");
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 2.0 * k);
		vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, 60.0 * k);
		r = vg_batch_resource(b, VG_RT_INSTANCE, "vm-d", "delta", NULL, t);
		vg_batch_identity(b, "p2", "u2", "small");
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 50);
		if (k == NPOLLS - 1)
			r->state = VG_RSTATE_ENDED;
		if (fx_data_write(&d, b))
			return -1;
	}
	fx_data_done(&d);
	return 0;
}

static int setup_server(void **state)
{
	struct vg_api_options o = {.stats = fake_stats};

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (fx_tmpdir(srv.dir, sizeof(srv.dir), "apiq-test") || write_data() ||
	    fx_token(srv.dir, NULL, "admin", tok_admin) ||
	    fx_token(srv.dir, "p1", "p1", tok_p1) ||
	    fx_token(srv.dir, "p2", "p2", tok_p2))
		return -1;
	return fx_api_start(&srv, &o);
}

static int teardown_server(void **state)
{
	(void)state;
	fx_api_stop(&srv);
	curl_global_cleanup();
	return 0;
}

/* One request with token (NULL: none; "raw:..." sends that header). */
static long call(const char *method, const char *path, const char *token,
		 const char *body, struct fx_answer *a)
{
	char auth[512];

	if (token && strncmp(token, "raw:", 4))
		snprintf(auth, sizeof(auth), "Bearer %s", token);
	else if (token)
		snprintf(auth, sizeof(auth), "%s", token + 4);
	if (fx_http(srv.url, method, path, token ? auth : NULL, body, a) < 0)
		fail_msg("%s %s: no answer", method, path);
	return a->status;
}

static long GET(const char *path, const char *token, struct fx_answer *a)
{
	return call("GET", path, token, NULL, a);
}

/* status must be `status`, a JSON error whose message contains frag */
static void expect(const char *path, const char *token, long status,
		   const char *frag)
{
	struct fx_answer a;

	if (GET(path, token, &a) != status)
		fail_msg("GET %s: HTTP %ld, wanted %ld (%s)", path, a.status, status,
			 a.body);
	if (status >= 400) {
		if (!a.json || !fx_errmsg(&a))
			fail_msg("GET %s: not a JSON error: %s", path, a.body);
		assert_int_equal(json_integer_value(json_object_get(
					 json_object_get(a.json, "error"), "code")),
				 status);
		if (frag && !strstr(fx_errmsg(&a), frag))
			fail_msg("GET %s: '%s' lacks '%s'", path, fx_errmsg(&a), frag);
	}
	fx_answer_free(&a);
}

static double dp(json_t *d, const char *k)
{
	return json_number_value(json_object_get(d, k));
}

#define RANGE "&start=1794999600&end=1795000799"

/* ---- tenants ---------------------------------------------------------------------- */

static void test_auth(void **state)
{
	struct fx_answer a;

	(void)state;
	assert_int_equal(GET("/v1/health", NULL, &a), 200); /* public */
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/resources", NULL, &a), 401);
	assert_string_equal(a.www, "Bearer realm=\"vigie\"");
	assert_non_null(strstr(fx_errmsg(&a), "missing bearer token"));
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/resources", "raw:Basic dXNlcjpwYXNz", &a), 401);
	assert_non_null(strstr(a.www, "invalid_request"));
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/resources", "vgt_0000000000000000_00", &a), 401);
	assert_non_null(strstr(a.www, "invalid_token"));
	fx_answer_free(&a);
	/* right shape, right id, wrong secret: the same answer */
	char forged[VG_TOKEN_LEN + 1];
	memcpy(forged, tok_admin, sizeof(forged));
	forged[VG_TOKEN_LEN - 1] = forged[VG_TOKEN_LEN - 1] == '0' ? '1' : '0';
	assert_int_equal(GET("/v1/resources", forged, &a), 401);
	assert_string_equal(fx_errmsg(&a), "invalid or revoked token");
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/resources", tok_admin, &a), 200);
	fx_answer_free(&a);
	/* "bearer" is case-insensitive, extra blanks are fine */
	char raw[300];
	snprintf(raw, sizeof(raw), "raw:bearer   %s  ", tok_p1);
	assert_int_equal(GET("/v1/resources", raw, &a), 200);
	fx_answer_free(&a);
	/* every protected route: 401 without a token */
	static const char *const paths[] = {
		"/v1/resources",
		"/v1/resources/vm-a",
		"/v1/resources/vm-a/latest",
		"/v1/measures?resource=vm-a&metric=cpu.util",
		"/v1/statistics?resource=vm-a&metric=cpu.util",
		"/v1/aggregates?metric=cpu.util",
		"/v1/top?metric=cpu.util",
		"/v1/graph?resource=vm-a&metric=cpu.util",
		"/metrics",
		"/v1/tokens",
		"/v1/alarms",
		"/v1/invoices?project=p1&month=2026-10",
	};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		expect(paths[i], NULL, 401, "missing bearer token");
}

static void test_tokens_api(void **state)
{
	struct fx_answer a;
	char path[128], tok[VG_TOKEN_LEN + 1];
	const char *id;

	(void)state;
	assert_int_equal(GET("/v1/tokens", tok_admin, &a), 200);
	assert_true(json_array_size(json_object_get(a.json, "tokens")) >= 3);
	assert_null(strstr(a.body, tok_p1 + 5 + VG_TOKEN_ID_LEN)); /* no secret */
	fx_answer_free(&a);
	expect("/v1/tokens", tok_p1, 403, "admin token");
	assert_int_equal(call("POST", "/v1/tokens", tok_p1, "{\"project\":\"p1\"}", &a), 403);
	fx_answer_free(&a);
	/* create a project token, use it, revoke it */
	assert_int_equal(call("POST", "/v1/tokens", tok_admin,
			      "{\"project\":\"p2\",\"name\":\"ci\"}", &a),
			 201);
	snprintf(tok, sizeof(tok), "%s", json_string_value(json_object_get(a.json, "token")));
	assert_int_equal(vg_token_parse(tok, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(a.json, "project")), "p2");
	assert_string_equal(json_string_value(json_object_get(a.json, "scope")), "project");
	id = json_string_value(json_object_get(a.json, "id"));
	snprintf(path, sizeof(path), "/v1/tokens/%s", id);
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/resources?type=instance", tok, &a), 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "resources")), 3);
	fx_answer_free(&a);
	assert_int_equal(GET(path, tok_admin, &a), 200);
	assert_string_equal(json_string_value(json_object_get(a.json, "name")), "ci");
	assert_null(json_object_get(a.json, "token")); /* shown once only */
	fx_answer_free(&a);
	expect(path, tok_p2, 403, "admin token");
	expect("/v1/tokens/0123456789abcdef", tok_admin, 404, "no token");
	assert_int_equal(call("PUT", path, tok_admin, NULL, &a), 405);
	fx_answer_free(&a);
	assert_int_equal(call("DELETE", path, tok_p2, NULL, &a), 403);
	fx_answer_free(&a);
	assert_int_equal(call("DELETE", path, tok_admin, NULL, &a), 200);
	assert_true(json_is_string(json_object_get(a.json, "revoked")));
	fx_answer_free(&a);
	expect("/v1/resources", tok, 401, "invalid or revoked token");
	assert_int_equal(call("DELETE", path, tok_admin, NULL, &a), 409);
	fx_answer_free(&a);
	assert_int_equal(call("DELETE", "/v1/tokens/0123456789abcdef", tok_admin,
			      NULL, &a),
			 404);
	fx_answer_free(&a);
	assert_int_equal(call("DELETE", "/v1/tokens/..%2Fx", tok_admin, NULL, &a), 404);
	fx_answer_free(&a);
	/* an admin token over the API */
	assert_int_equal(call("POST", "/v1/tokens", tok_admin, "{\"admin\":true}", &a), 201);
	assert_string_equal(json_string_value(json_object_get(a.json, "scope")), "admin");
	fx_answer_free(&a);
	/* every 4xx of POST /v1/tokens */
	static const char *const bad[] = {
		"{}",
		"{\"admin\":true,\"project\":\"p1\"}",
		"{\"admin\":false}",
		"{\"admin\":\"yes\"}",
		"{\"project\":\"\"}",
		"{\"project\":7}",
		"{\"project\":\"p1\",\"name\":5}",
		"{\"project\":\"p1\",\"x\":1}",
		"[1]",
		"{\"project\":",
		"{\"project\":\"a\\u0001b\"}",
		"{\"project\":\"shop\\u202ebew\"}", /* displays as "shopweb" */
		"{\"project\":\"p1\",\"project\":\"p2\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (call("POST", "/v1/tokens", tok_admin, bad[i], &a) != 400)
			fail_msg("POST %s: HTTP %ld (%s)", bad[i], a.status, a.body);
		fx_answer_free(&a);
	}
	/* the project "*" (every project, to silences and alarm selectors) is
	 * refused as the project, not as the name the request never gave */
	assert_int_equal(call("POST", "/v1/tokens", tok_admin, "{\"project\":\"*\"}", &a), 400);
	assert_non_null(strstr(a.body, "bad project"));
	fx_answer_free(&a);
	assert_int_equal(call("POST", "/v1/tokens", tok_admin, NULL, &a), 400);
	fx_answer_free(&a);
	char *big = malloc(70000);
	memset(big, ' ', 69999);
	big[69999] = '\0';
	assert_int_equal(call("POST", "/v1/tokens", tok_admin, big, &a), 413);
	fx_answer_free(&a);
	free(big);
	assert_int_equal(call("PUT", "/v1/tokens", tok_admin, NULL, &a), 405);
	fx_answer_free(&a);
	expect("/v1/tokens?x=1", tok_admin, 400, "unknown parameter");
}

/* ---- statistics ---------------------------------------------------------------------- */

static void test_statistics(void **state)
{
	struct fx_answer a;
	json_t *d;

	(void)state;
	assert_int_equal(GET("/v1/statistics?resource=vm-a&metric=cpu.util&period=600"
			     "&granularity=60&statistics=SampleCount,Sum,Average,"
			     "Minimum,Maximum,p50,p90,p99" RANGE,
			     tok_admin, &a),
			 200);
	assert_int_equal(json_integer_value(json_object_get(a.json, "period")), 600);
	assert_int_equal(json_integer_value(json_object_get(a.json, "granularity")), 60);
	assert_string_equal(json_string_value(json_object_get(a.json, "unit")), "%");
	json_t *pts = json_object_get(a.json, "datapoints");
	assert_int_equal(json_array_size(pts), 2);
	d = json_array_get(pts, 0); /* k = 1..10 */
	assert_string_equal(json_string_value(json_object_get(d, "timestamp")),
			    "2026-11-18T11:00:00Z");
	assert_int_equal(json_integer_value(json_object_get(d, "SampleCount")), 10);
	assert_true(fabs(dp(d, "Sum") - 55) < 1e-9);
	assert_true(fabs(dp(d, "Average") - 5.5) < 1e-9);
	assert_true(dp(d, "Minimum") == 1 && dp(d, "Maximum") == 10);
	assert_true(dp(d, "p50") == 5 && dp(d, "p90") == 9 && dp(d, "p99") == 10);
	d = json_array_get(pts, 1); /* k = 11..20 */
	assert_true(fabs(dp(d, "Sum") - 155) < 1e-9);
	assert_true(dp(d, "Minimum") == 11 && dp(d, "Maximum") == 20);
	assert_true(dp(d, "p50") == 15 && dp(d, "p90") == 19);
	fx_answer_free(&a);

	/* granularity 300: two finer points per period; Minimum and Maximum
	 * come from the MIN/MAX archives (1 and 10), not from the averages
	 * (3 and 8) */
	assert_int_equal(GET("/v1/statistics?resource=vm-a&metric=cpu.util&period=600"
			     "&granularity=300" RANGE,
			     tok_admin, &a),
			 200);
	d = json_array_get(json_object_get(a.json, "datapoints"), 0);
	assert_int_equal(json_integer_value(json_object_get(d, "SampleCount")), 2);
	assert_true(fabs(dp(d, "Sum") - 11) < 1e-9);
	assert_true(fabs(dp(d, "Average") - 5.5) < 1e-9);
	assert_true(dp(d, "Minimum") == 1 && dp(d, "Maximum") == 10);
	fx_answer_free(&a);

	/* a counter is a rate: 30 s of CPU per minute = 0.5 s/s */
	assert_int_equal(GET("/v1/statistics?resource=vm-a&metric=cpu.time&period=1200"
			     "&statistics=Average" RANGE,
			     tok_admin, &a),
			 200);
	assert_string_equal(json_string_value(json_object_get(a.json, "unit")), "s/s");
	assert_string_equal(json_string_value(json_object_get(a.json, "kind")), "counter");
	d = json_array_get(json_object_get(a.json, "datapoints"), 0);
	assert_true(fabs(dp(d, "Average") - 0.5) < 1e-9);
	assert_null(json_object_get(d, "Sum")); /* only what was asked */
	fx_answer_free(&a);

	/* auto granularity follows the period: 90 s divides nothing above 60 */
	assert_int_equal(GET("/v1/statistics?resource=vm-a&metric=cpu.util&period=120" RANGE, tok_admin, &a), 200);
	assert_int_equal(json_integer_value(json_object_get(a.json, "granularity")), 60);
	assert_int_equal(json_array_size(json_object_get(a.json, "datapoints")), 10);
	fx_answer_free(&a);

	/* every 4xx */
	const char *S = "/v1/statistics?resource=vm-a&metric=cpu.util";
	char p[512];
	expect("/v1/statistics?metric=cpu.util", tok_admin, 400, "missing parameter 'resource'");
	expect("/v1/statistics?resource=vm-a", tok_admin, 400, "missing parameter 'metric'");
	snprintf(p, sizeof(p), "%s&period=90&granularity=60", S);
	expect(p, tok_admin, 400, "not a multiple");
	snprintf(p, sizeof(p), "%s&period=300&granularity=3600", S);
	expect(p, tok_admin, 400, "not a multiple");
	snprintf(p, sizeof(p), "%s&period=30", S);
	expect(p, tok_admin, 400, "bad period");
	snprintf(p, sizeof(p), "%s&period=abc", S);
	expect(p, tok_admin, 400, "bad period");
	snprintf(p, sizeof(p), "%s&granularity=7", S);
	expect(p, tok_admin, 400, "bad granularity");
	snprintf(p, sizeof(p), "%s&statistics=Median", S);
	expect(p, tok_admin, 400, "unknown statistic");
	snprintf(p, sizeof(p), "%s&start=tomorrow", S);
	expect(p, tok_admin, 400, "bad start");
	snprintf(p, sizeof(p), "%s&start=1795000000&end=1794990000", S);
	expect(p, tok_admin, 400, "after end");
	snprintf(p, sizeof(p), "%s&start=1700000000&end=1795000000&period=60", S);
	expect(p, tok_admin, 400, "too many periods");
	snprintf(p, sizeof(p), "%s&start=1700000000&end=1795000000&period=86400&granularity=60", S);
	expect(p, tok_admin, 400, "too many points");
	snprintf(p, sizeof(p), "%s&bogus=1", S);
	expect(p, tok_admin, 400, "unknown parameter");
	expect("/v1/statistics?resource=ghost&metric=cpu.util", tok_admin, 404,
	       "no resource 'ghost'");
	expect("/v1/statistics?resource=vm-a&metric=nope", tok_admin, 404,
	       "has no metric 'nope'");
}

/* ---- aggregates ------------------------------------------------------------------------ */

static json_t *group(json_t *doc, const char *key, const char *val)
{
	size_t i;
	json_t *g;

	json_array_foreach(json_object_get(doc, "groups"), i, g) {
		const char *v = json_string_value(json_object_get(g, key));
		if ((!val && !v) || (val && v && !strcmp(v, val)))
			return g;
	}
	return NULL;
}

static double at(json_t *g, int k) /* the slot of the value written at k */
{
	json_t *pts = json_object_get(g, "points"), *p;
	char want[32];
	size_t i;

	vg_time_format((T0 + 60 * (k - 1)) * 1000, want, sizeof(want));
	json_array_foreach(pts, i, p)
		if (!strcmp(json_string_value(json_array_get(p, 0)), want))
			return json_number_value(json_array_get(p, 1));
	return NAN;
}

static void test_aggregates(void **state)
{
	struct fx_answer a;
	json_t *g;

	(void)state;
	/* all four instances (vm-d ended but has data in the range) */
	assert_int_equal(GET("/v1/aggregates?metric=cpu.util&granularity=60" RANGE,
			     tok_admin, &a),
			 200);
	assert_string_equal(json_string_value(json_object_get(a.json, "aggregation")), "mean");
	assert_string_equal(json_string_value(json_object_get(a.json, "type")), "instance");
	assert_int_equal(json_array_size(json_object_get(a.json, "groups")), 1);
	g = json_array_get(json_object_get(a.json, "groups"), 0);
	assert_int_equal(json_integer_value(json_object_get(g, "resources")), 4);
	assert_int_equal(json_array_size(json_object_get(g, "points")), 20);
	for (int k = 1; k <= 20; k++)
		assert_true(fabs(at(g, k) - (2.0 * k + 150) / 4) < 1e-9);
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/aggregates?metric=cpu.util&aggregation=sum&granularity=60" RANGE,
			     tok_admin, &a),
			 200);
	g = json_array_get(json_object_get(a.json, "groups"), 0);
	assert_true(fabs(at(g, 7) - (2.0 * 7 + 150)) < 1e-9);
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/aggregates?metric=cpu.util&aggregation=max&granularity=60" RANGE,
			     tok_admin, &a),
			 200);
	g = json_array_get(json_object_get(a.json, "groups"), 0);
	assert_true(at(g, 3) == 97);
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/aggregates?metric=cpu.util&aggregation=min&granularity=60"
			     "&host=h1" RANGE,
			     tok_admin, &a),
			 200);
	g = json_array_get(json_object_get(a.json, "groups"), 0);
	assert_int_equal(json_integer_value(json_object_get(g, "resources")), 2);
	assert_true(at(g, 3) == 3);
	fx_answer_free(&a);
	/* grouped by project, by flavor */
	assert_int_equal(GET("/v1/aggregates?metric=cpu.util&group_by=project&granularity=60" RANGE,
			     tok_admin, &a),
			 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "groups")), 2);
	assert_true(fabs(at(group(a.json, "project", "p1"), 4) - 6) < 1e-9);
	assert_true(fabs(at(group(a.json, "project", "p2"), 4) - 73) < 1e-9);
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/aggregates?metric=cpu.util&group_by=flavor&granularity=300" RANGE,
			     tok_admin, &a),
			 200);
	assert_int_equal(json_integer_value(json_object_get(a.json, "granularity")), 300);
	assert_int_equal(json_integer_value(json_object_get(group(a.json, "flavor", "small"),
							    "resources")),
			 3);
	assert_int_equal(json_integer_value(json_object_get(group(a.json, "flavor", "large"),
							    "resources")),
			 1);
	fx_answer_free(&a);
	/* counters are rates; another type */
	assert_int_equal(GET("/v1/aggregates?metric=disk.read.bytes&type=disk&aggregation=sum"
			     "&granularity=60" RANGE,
			     tok_admin, &a),
			 200);
	assert_string_equal(json_string_value(json_object_get(a.json, "unit")), "B/s");
	assert_true(fabs(at(json_array_get(json_object_get(a.json, "groups"), 0), 5) -
			 1000.0 / 60) < 1e-6);
	fx_answer_free(&a);
	/* a host metric without a type is aggregated over the hosts (it was
	 * over instances, which never have it: always no groups) */
	assert_int_equal(GET("/v1/aggregates?metric=host.load.1&granularity=60" RANGE,
			     tok_admin, &a),
			 200);
	assert_string_equal(json_string_value(json_object_get(a.json, "type")), "host");
	assert_string_equal(json_string_value(json_object_get(a.json, "unit")), "count");
	assert_int_equal(json_array_size(json_object_get(a.json, "groups")), 1);
	g = json_array_get(json_object_get(a.json, "groups"), 0);
	assert_int_equal(json_integer_value(json_object_get(g, "resources")), 1);
	assert_true(fabs(at(g, 8) - 2) < 1e-9);
	fx_answer_free(&a);
	/* named explicitly, another type has no such series: no groups */
	assert_int_equal(GET("/v1/aggregates?metric=host.load.1&type=instance" RANGE,
			     tok_admin, &a),
			 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "groups")), 0);
	fx_answer_free(&a);
	/* memory.used is in the catalogue for instances only, so the host's
	 * own memory.used series stays out of the default */
	assert_int_equal(GET("/v1/aggregates?metric=memory.used&aggregation=sum&granularity=60" RANGE,
			     tok_admin, &a),
			 200);
	assert_string_equal(json_string_value(json_object_get(a.json, "type")), "instance");
	g = json_array_get(json_object_get(a.json, "groups"), 0);
	assert_int_equal(json_integer_value(json_object_get(g, "resources")), 1);
	assert_true(at(g, 5) == 7);
	fx_answer_free(&a);
	/* a non-catalogue metric: every type that has it ("type": null) */
	assert_int_equal(GET("/v1/aggregates?metric=app.queue&aggregation=sum&granularity=60" RANGE,
			     tok_admin, &a),
			 200);
	assert_true(json_is_null(json_object_get(a.json, "type")));
	assert_string_equal(json_string_value(json_object_get(a.json, "unit")), "");
	g = json_array_get(json_object_get(a.json, "groups"), 0);
	assert_int_equal(json_integer_value(json_object_get(g, "resources")), 2);
	assert_true(at(g, 5) == 7);
	fx_answer_free(&a);
	/* a metric nobody has: no groups */
	assert_int_equal(GET("/v1/aggregates?metric=nope" RANGE, tok_admin, &a), 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "groups")), 0);
	assert_true(json_is_null(json_object_get(a.json, "type")));
	fx_answer_free(&a);

	expect("/v1/aggregates", tok_admin, 400, "missing parameter 'metric'");
	expect("/v1/aggregates?metric=cpu.util&aggregation=median", tok_admin, 400,
	       "bad aggregation");
	expect("/v1/aggregates?metric=cpu.util&group_by=user", tok_admin, 400, "bad group_by");
	expect("/v1/aggregates?metric=cpu.util&type=vm", tok_admin, 400, "bad type");
	expect("/v1/aggregates?metric=cpu.util&host=", tok_admin, 400, "empty");
	expect("/v1/aggregates?metric=cpu.util&granularity=5", tok_admin, 400,
	       "bad granularity");
	expect("/v1/aggregates?metric=cpu.util&start=-400d&granularity=60", tok_admin, 400,
	       "too many points");
	expect("/v1/aggregates?metric=cpu.util&end=x", tok_admin, 400, "bad end");
	expect("/v1/aggregates?metric=cpu.util&limit=3", tok_admin, 400, "unknown parameter");
}

/* ---- latest and top --------------------------------------------------------------------- */

static void test_latest_top(void **state)
{
	struct fx_answer a;
	json_t *m, *r;

	(void)state;
	assert_int_equal(GET("/v1/resources/vm-a/latest", tok_admin, &a), 200);
	m = json_object_get(json_object_get(a.json, "metrics"), "cpu.util");
	assert_true(dp(m, "value") == 20);
	assert_string_equal(json_string_value(json_object_get(m, "kind")), "gauge");
	assert_string_equal(json_string_value(json_object_get(m, "time")),
			    "2026-11-18T11:20:00Z");
	m = json_object_get(json_object_get(a.json, "metrics"), "cpu.time");
	assert_true(fabs(dp(m, "value") - 0.5) < 1e-9);
	assert_true(dp(m, "total") == 600);
	assert_string_equal(json_string_value(json_object_get(m, "unit")), "s/s");
	assert_string_equal(json_string_value(json_object_get(m, "total_unit")), "s");
	fx_answer_free(&a);
	/* an id with a slash-free but hostile name, percent-encoded */
	assert_int_equal(GET("/v1/resources/q%22x%5Cy/latest", tok_admin, &a), 200);
	fx_answer_free(&a);
	expect("/v1/resources/ghost/latest", tok_admin, 404, "no resource 'ghost'");
	expect("/v1/resources/vm-a/latest?x=1", tok_admin, 400, "unknown parameter");

	/* top: active instances only (vm-d ended), highest first */
	assert_int_equal(GET("/v1/top?metric=cpu.util", tok_admin, &a), 200);
	r = json_object_get(a.json, "resources");
	assert_int_equal(json_array_size(r), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "id")), "vm-c");
	assert_true(dp(json_array_get(r, 0), "value") == 80);
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 1), "id")), "vm-b");
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 2), "id")), "vm-a");
	assert_string_equal(json_string_value(json_object_get(a.json, "unit")), "%");
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/top?metric=cpu.util&order=asc&limit=1", tok_admin, &a), 200);
	r = json_object_get(a.json, "resources");
	assert_int_equal(json_array_size(r), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "id")), "vm-a");
	assert_int_equal(json_integer_value(json_object_get(a.json, "matched")), 3);
	fx_answer_free(&a);
	/* a counter ranks by its rate */
	assert_int_equal(GET("/v1/top?metric=cpu.time", tok_admin, &a), 200);
	r = json_object_get(a.json, "resources");
	assert_int_equal(json_array_size(r), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "id")), "vm-b");
	assert_true(fabs(dp(json_array_get(r, 0), "value") - 1) < 1e-9);
	assert_string_equal(json_string_value(json_object_get(a.json, "unit")), "s/s");
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/top?metric=cpu.util&flavor=small&host=h1", tok_admin, &a), 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "resources")), 2);
	fx_answer_free(&a);

	expect("/v1/top", tok_admin, 400, "missing parameter 'metric'");
	expect("/v1/top?metric=cpu.util&limit=0", tok_admin, 400, "bad limit");
	expect("/v1/top?metric=cpu.util&limit=1001", tok_admin, 400, "bad limit");
	expect("/v1/top?metric=cpu.util&order=up", tok_admin, 400, "bad order");
	expect("/v1/top?metric=cpu.util&type=vm", tok_admin, 400, "bad type");
	expect("/v1/top?metric=cpu.util&start=-1h", tok_admin, 400, "unknown parameter");
}

/* ---- graph --------------------------------------------------------------------------------- */

static int is_png(struct fx_answer *a)
{
	return a->len > 8 && !memcmp(a->body, "\x89PNG\r\n\x1a\n", 8) &&
	       !strcmp(a->ctype, "image/png");
}

static void test_graph(void **state)
{
	struct fx_answer a;

	(void)state;
	assert_int_equal(GET("/v1/graph?resource=vm-a&metric=cpu.util&metric2=cpu.time"
			     "&resource3=vm-b&metric3=cpu.util&title=CPU" RANGE,
			     tok_admin, &a),
			 200);
	assert_true(is_png(&a));
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/graph?resource=vm-a&metric=cpu.util&width=300&height=100"
			     "&aggregation=max" RANGE,
			     tok_admin, &a),
			 200);
	assert_true(is_png(&a));
	fx_answer_free(&a);
	/* injection attempts that are harmless text: drawn as a literal */
	assert_int_equal(GET("/v1/graph?resource=vm-a&metric=cpu.util&title=a%3Ab%20%22c%22"
			     "&legend=x%3ADEF%3Ay%3D%2Fetc%2Fpasswd%3Avalue%3AAVERAGE"
			     "%20PRINT%3Ay%3AAVERAGE%3A%25lf" RANGE,
			     tok_admin, &a),
			 200);
	assert_true(is_png(&a));
	fx_answer_free(&a);
	/* hostile ids in default legends are cleaned */
	assert_int_equal(GET("/v1/graph?resource=q%22x%5Cy&metric=memory.used" RANGE,
			     tok_admin, &a),
			 200);
	assert_true(is_png(&a));
	fx_answer_free(&a);
	/* injection attempts that would need a newline or a backslash: 400 */
	expect("/v1/graph?resource=vm-a&metric=cpu.util&title=a%3Ab%0APRINT%3Av0%3AAVERAGE%3A%25lf",
	       tok_admin, 400, "bad title");
	expect("/v1/graph?resource=vm-a&metric=cpu.util&legend=ok%0ADEF%3Ax%3D%2Fetc%2Fpasswd%3Avalue%3AAVERAGE",
	       tok_admin, 400, "bad legend");
	expect("/v1/graph?resource=vm-a&metric=cpu.util&legend=x%5Cg", tok_admin, 400,
	       "bad legend");
	expect("/v1/graph?resource=vm-a&metric=cpu.util&metric2=cpu.time&legend2=%5Cn",
	       tok_admin, 400, "bad legend2");
	/* a metric name cannot smuggle a DEF either: it only names a file */
	expect("/v1/graph?resource=vm-a&metric=cpu.util%3AAVERAGE%0APRINT", tok_admin, 404,
	       "has no metric");
	expect("/v1/graph?resource=vm-a&metric=..%2F..%2Fregistry.db", tok_admin, 404,
	       "has no metric");
	/* every other 4xx */
	expect("/v1/graph?resource=vm-a", tok_admin, 400, "missing parameter 'metric'");
	expect("/v1/graph?metric=cpu.util", tok_admin, 400, "missing parameter 'resource'");
	expect("/v1/graph?resource=vm-a&metric=cpu.util&resource2=vm-b", tok_admin, 400,
	       "'resource2' given without 'metric2'");
	expect("/v1/graph?resource=vm-a&metric=cpu.util&legend3=x", tok_admin, 400,
	       "'legend3' given without 'metric3'");
	expect("/v1/graph?resource=vm-a&metric=cpu.util&width=10", tok_admin, 400, "bad size");
	expect("/v1/graph?resource=vm-a&metric=cpu.util&height=99999", tok_admin, 400, "bad size");
	expect("/v1/graph?resource=vm-a&metric=cpu.util&aggregation=p99", tok_admin, 400,
	       "bad aggregation");
	expect("/v1/graph?resource=vm-a&metric=cpu.util&start=now&end=-1h", tok_admin, 400,
	       "after end");
	expect("/v1/graph?resource=vm-a&metric=cpu.util&resource9=x", tok_admin, 400,
	       "unknown parameter");
	expect("/v1/graph?resource=ghost&metric=cpu.util", tok_admin, 404, "no resource 'ghost'");
	expect("/v1/graph?resource=vm-a&metric=nope", tok_admin, 404, "has no metric 'nope'");
}

/* /v1/graph answers a series' store faults as /v1/measures does, on a
 * server of its own (files backend; the files are damaged and deleted):
 *   - a file librrd cannot read (its bytes replaced): 500 from both, where
 *     the graph answered 404 "has no metric" (its -EIO branch wanted a
 *     storage daemon, which the files backend has none of);
 *   - a file deleted while a value of its series waits in the cache: the
 *     read writes that value first, which creates the file again
 *     (docs/operations.md "A series file deleted"), so the graph draws it,
 *     where it answered 404. Without the fix this passes only if the
 *     storage thread's idle write (1 s after the last batch) came between
 *     the write and the request;
 *   - a render librrd refuses (a file cut short of its last row, whose
 *     header is whole): 500, librrd's error, which names the file's path
 *     on the storage, to admin tokens only. */
static void test_graph_store_faults(void **state)
{
	struct fx_api g = {0};
	struct fx_data d;
	struct fx_answer a;
	char tok[VG_TOKEN_LEN + 1], tok_g1[VG_TOKEN_LEN + 1], path[PATH_MAX], addr[256], q[256];
	const long long t0 = 1796000040LL; /* a minute boundary */
	(void)state;

	assert_int_equal(fx_tmpdir(g.dir, sizeof(g.dir), "apiq-graph-faults"), 0);
	assert_int_equal(fx_data_open(g.dir, &d), 0);
	g.store = d.store;
	for (int m = 0; m < 4; m++) {
		int64_t t = (t0 + 60 * m) * 1000;
		struct vg_batch *b = vg_batch_new("hg", 1, (uint64_t)m + 1, t);
		assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, "vm-g", "g", NULL, t));
		assert_int_equal(vg_batch_identity(b, "p1", "u1", NULL), 0);
		assert_int_equal(vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 10.0 + m), 0);
		assert_int_equal(vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 1e6), 0);
		assert_int_equal(vg_batch_sample(b, "swap.used", VG_KIND_GAUGE, 1e3), 0);
		assert_int_equal(fx_data_write(&d, b), 0);
	}
	assert_int_equal(vg_store_flush(g.store), 0);
	assert_int_equal(fx_token(g.dir, NULL, "admin", tok), 0);
	assert_int_equal(fx_token(g.dir, "p1", "p1", tok_g1), 0);

	/* swap.used's file cut short of its last row: its header (what the
	 * look-up reads) is whole, librrd's open refuses it naming its path */
	assert_int_equal(vg_store_where(g.store, VG_RT_INSTANCE, "vm-g", "swap.used", path,
					sizeof(path), addr, sizeof(addr)),
			 0);
	{
		struct stat st;
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(truncate(path, st.st_size - 8), 0);
	}

	/* memory.used's file damaged */
	assert_int_equal(vg_store_where(g.store, VG_RT_INSTANCE, "vm-g", "memory.used", path,
					sizeof(path), addr, sizeof(addr)),
			 0);
	{
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		for (int i = 0; i < 64; i++)
			fputs("this is no round robin database\n", f);
		assert_int_equal(fclose(f), 0);
	}
	/* cpu.util's minute 4 cached, then its file deleted */
	assert_int_equal(vg_store_where(g.store, VG_RT_INSTANCE, "vm-g", "cpu.util", path,
					sizeof(path), addr, sizeof(addr)),
			 0);
	{
		int64_t t = (t0 + 240) * 1000;
		struct vg_batch *b = vg_batch_new("hg", 1, 5, t);
		assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, "vm-g", "g", NULL, t));
		assert_int_equal(vg_batch_identity(b, "p1", "u1", NULL), 0);
		assert_int_equal(vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 14.0), 0);
		assert_int_equal(fx_data_write(&d, b), 0);
	}
	fx_data_done(&d);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(fx_api_start(&g, NULL), 0);
	snprintf(q, sizeof(q), "Bearer %s", tok);

	snprintf(path, sizeof(path), "/v1/graph?resource=vm-g&metric=cpu.util&start=%lld&end=%lld",
		 t0, t0 + 300);
	fx_http(g.url, "GET", path, q, NULL, &a);
	printf("# graph of a deleted file with a value cached -> %ld %s\n", a.status,
	       a.json ? a.body : "(image)");
	assert_int_equal(a.status, 200);
	assert_true(is_png(&a));
	fx_answer_free(&a);
	/* the value the graph wrote is in the new file */
	snprintf(path, sizeof(path),
		 "/v1/measures?resource=vm-g&metric=cpu.util&start=%lld&end=%lld", t0, t0 + 300);
	assert_int_equal(fx_http(g.url, "GET", path, q, NULL, &a), 200);
	{
		json_t *p = json_object_get(a.json, "points");
		size_t n = json_array_size(p);
		assert_true(n >= 1);
		assert_true(json_number_value(json_array_get(json_array_get(p, n - 1), 1)) ==
			    14.0);
	}
	fx_answer_free(&a);

	/* a render librrd refuses: 500, its error (the file's path under
	 * the data dir) to admin tokens only */
	for (int admin = 0; admin < 2; admin++) {
		char auth[VG_TOKEN_LEN + 16];
		snprintf(auth, sizeof(auth), "Bearer %s", admin ? tok : tok_g1);
		snprintf(path, sizeof(path),
			 "/v1/graph?resource=vm-g&metric=swap.used&start=%lld&end=%lld", t0,
			 t0 + 300);
		fx_http(g.url, "GET", path, auth, NULL, &a);
		printf("# %s graph librrd refuses -> %ld %s\n", admin ? "admin" : "tenant",
		       a.status, a.body ? a.body : "");
		assert_int_equal(a.status, 500);
		assert_non_null(a.json);
		if (admin) {
			assert_non_null(strstr(a.body, "swap.used.rrd"));
		} else {
			assert_null(strstr(a.body, g.dir));
			assert_null(strstr(a.body, "swap.used.rrd"));
			assert_non_null(strstr(a.body, "cannot draw the graph"));
		}
		fx_answer_free(&a);
	}

	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path),
			 "/v1/%s?resource=vm-g&metric=memory.used&start=%lld&end=%lld",
			 i ? "graph" : "measures", t0, t0 + 300);
		fx_http(g.url, "GET", path, q, NULL, &a);
		printf("# %s of a damaged file -> %ld %s\n", i ? "graph" : "measures", a.status,
		       a.body ? a.body : "");
		assert_int_equal(a.status, 500);
		assert_non_null(a.json);
		fx_answer_free(&a);
	}
	fx_api_stop(&g);
}

/* The hostile legend drawn for real: librrd reports one legend, the
 * literal text, and no PRINT result. */
static void test_graph_render_literal(void **state)
{
	struct vg_api_graph_spec *g = calloc(1, sizeof(*g));
	struct vg_api_graph_args *a = calloc(1, sizeof(*a));
	char err[256], *png = NULL;
	size_t len = 0;
	json_t *legends = NULL;

	(void)state;
	g->start_ms = T0 * 1000;
	g->end_ms = (T0 + 1200) * 1000;
	g->width = 300;
	g->height = 80;
	g->n = 1;
	assert_int_equal(vg_store_path(srv.store, VG_RT_INSTANCE, "vm-a", "cpu.util",
				       g->line[0].path, sizeof(g->line[0].path)),
			 0);
	snprintf(g->line[0].legend, sizeof(g->line[0].legend),
		 "x:DEF:y=/etc/passwd:value:AVERAGE PRINT:v0:AVERAGE:%%lf");
	g->line[0].legend_strict = 1;
	g->title = "title: with \"colons\"";
	assert_int_equal(vg_api_graph_build(g, a, err, sizeof(err)), 0);
	assert_int_equal(vg_api_graph_render(a, &png, &len, &legends, err, sizeof(err)), 0);
	assert_true(len > 8 && !memcmp(png, "\x89PNG", 4));
	assert_int_equal(json_array_size(legends), 1);
	const char *l = json_string_value(json_array_get(legends, 0));
	while (*l == ' ')
		l++;
	assert_string_equal(l, "x:DEF:y=/etc/passwd:value:AVERAGE PRINT:v0:AVERAGE:%lf");
	json_decref(legends);
	free(png);
	free(g);
	free(a);
}

/* ---- resources by metadata --------------------------------------------------------------- */

static const char *ids(struct fx_answer *a, char *buf, size_t len)
{
	size_t i, o = 0;
	json_t *r;

	buf[0] = '\0';
	json_array_foreach(json_object_get(a->json, "resources"), i, r)
		o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? "," : "",
				      json_string_value(json_object_get(r, "id")));
	return buf;
}

static void test_metadata(void **state)
{
	struct fx_answer a;
	char b[256], path[256];

	(void)state;
	assert_int_equal(GET("/v1/resources?metadata=az%3Dzone-a", tok_admin, &a), 200);
	assert_string_equal(ids(&a, b, sizeof(b)), "vm-a,vm-c");
	assert_true(json_is_null(json_object_get(a.json, "next")));
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/resources?metadata=az&type=instance", tok_admin, &a), 200);
	assert_string_equal(ids(&a, b, sizeof(b)), "vm-a,vm-b,vm-c");
	fx_answer_free(&a);
	/* a value holding '=': split at the first one */
	assert_int_equal(GET("/v1/resources?metadata=role%3Ddb%3Dprimary", tok_admin, &a), 200);
	assert_string_equal(ids(&a, b, sizeof(b)), "vm-b");
	fx_answer_free(&a);
	/* a project's token: its own only */
	assert_int_equal(GET("/v1/resources?metadata=az%3Dzone-a", tok_p2, &a), 200);
	assert_string_equal(ids(&a, b, sizeof(b)), "vm-c");
	fx_answer_free(&a);
	/* paged: one match a page, following next */
	assert_int_equal(GET("/v1/resources?metadata=az%3Dzone-a&limit=1", tok_admin, &a), 200);
	assert_string_equal(ids(&a, b, sizeof(b)), "vm-a");
	snprintf(path, sizeof(path), "/v1/resources?metadata=az%%3Dzone-a&limit=1&cursor=%s",
		 json_string_value(json_object_get(a.json, "next")));
	fx_answer_free(&a);
	assert_int_equal(GET(path, tok_admin, &a), 200);
	assert_string_equal(ids(&a, b, sizeof(b)), "vm-c");
	if (json_is_string(json_object_get(a.json, "next"))) {
		snprintf(path, sizeof(path),
			 "/v1/resources?metadata=az%%3Dzone-a&limit=1&cursor=%s",
			 json_string_value(json_object_get(a.json, "next")));
		fx_answer_free(&a);
		assert_int_equal(GET(path, tok_admin, &a), 200);
		assert_int_equal(json_array_size(json_object_get(a.json, "resources")), 0);
		assert_true(json_is_null(json_object_get(a.json, "next")));
	}
	fx_answer_free(&a);
	expect("/v1/resources?metadata=az%3Dnowhere", tok_admin, 200, NULL);
	expect("/v1/resources?metadata=", tok_admin, 400, "empty");
	expect("/v1/resources?metadata=%3Dx", tok_admin, 400, "bad metadata");
	expect("/v1/resources?metadata=az%3D", tok_admin, 400, "bad metadata");
	expect("/v1/resources?metadata=a%0Ab", tok_admin, 400, "not a valid name");
}

/* ---- /metrics ---------------------------------------------------------------------------------- */

static int count_lines(const char *body, const char *prefix)
{
	int n = 0;

	for (const char *p = body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		n += !strncmp(p, prefix, strlen(prefix));
	return n;
}

static void test_metrics(void **state)
{
	struct fx_answer a;

	(void)state;
	assert_int_equal(GET("/metrics", tok_admin, &a), 200);
	assert_non_null(strstr(a.ctype, "text/plain; version=0.0.4"));
	assert_non_null(strstr(a.body,
			       "vigie_cpu_util{resource=\"vm-a\",type=\"instance\","
			       "project=\"p1\",host=\"h1\"} 20\n"));
	assert_non_null(strstr(a.body,
			       "vigie_cpu_time_total{resource=\"vm-b\",type=\"instance\","
			       "project=\"p1\",host=\"h2\"} 1200\n"));
	assert_non_null(strstr(a.body,
			       "vigie_disk_read_bytes_total{resource=\"vm-a-vda\",type=\"disk\","
			       "project=\"p1\",host=\"h1\",device=\"vda\"} 20000\n"));
	/* label values escaped: q"x\y */
	assert_non_null(strstr(a.body, "resource=\"q\\\"x\\\\y\""));
	assert_null(strstr(a.body, "vm-d")); /* ended */
	assert_int_equal(count_lines(a.body, "# TYPE vigie_cpu_util gauge"), 1);
	assert_int_equal(count_lines(a.body, "# TYPE vigie_cpu_time_total counter"), 1);
	assert_int_equal(count_lines(a.body, "# HELP vigie_cpu_util "), 1);
	assert_int_equal(count_lines(a.body, "vigie_cpu_util{"), 3);
	/* self-metrics for the admin */
	assert_non_null(strstr(a.body, "\nvigie_collector_batches_received_total 7\n"));
	assert_non_null(strstr(a.body,
			       "vigie_collector_batches_refused_total{reason=\"forged\"} 1\n"));
	/* every rejection reason in one family (its sum is the total) */
	assert_non_null(strstr(a.body,
			       "\nvigie_collector_batches_rejected_total{reason=\"forged\"} 1\n"));
	assert_non_null(strstr(a.body,
			       "\nvigie_collector_batches_rejected_total{reason=\"malformed\"} 1\n"));
	assert_int_equal(count_lines(a.body, "vigie_collector_batches_rejected_total{"), 10);
	assert_non_null(strstr(a.body, "\nvigie_collector_resources_foreign_total 3\n"));
	assert_non_null(strstr(a.body, "\nvigie_collector_projects_trimmed_total 5\n"));
	/* the registry flusher's failures, counted by the receiver */
	assert_non_null(strstr(a.body, "\n# TYPE vigie_registry_flush_failures_total counter\n"
				       "vigie_registry_flush_failures_total 4\n"));
	/* resources found swept by another collector (issue 15) */
	assert_non_null(strstr(a.body, "\n# TYPE vigie_registry_gone_resources_total counter\n"
				       "vigie_registry_gone_resources_total 6\n"));
	assert_int_equal(count_lines(a.body, "# TYPE vigie_collector_batches_rejected_total "), 1);
	assert_non_null(strstr(a.body, "\nvigie_store_values_written_total "));
	/* what operations.md sends an operator to when plain rrdtool lags */
	assert_non_null(strstr(a.body, "\n# TYPE vigie_store_values_pending gauge\nvigie_store_values_pending "));
	assert_non_null(strstr(a.body, "\nvigie_store_write_seconds_count "));
	assert_non_null(strstr(a.body, "\nvigie_api_connections "));
	/* every sample line has a TYPE'd family before it */
	fx_answer_free(&a);
	/* a project token: its own series only, no self-metrics */
	assert_int_equal(GET("/metrics", tok_p1, &a), 200);
	assert_null(strstr(a.body, "project=\"p2\""));
	assert_null(strstr(a.body, "project=\"default\""));
	assert_null(strstr(a.body, "vigie_collector_"));
	assert_null(strstr(a.body, "vigie_store_"));
	assert_int_equal(count_lines(a.body, "vigie_cpu_util{"), 2);
	fx_answer_free(&a);
	expect("/metrics?format=json", tok_admin, 400, "unknown parameter");
	assert_int_equal(call("POST", "/metrics", tok_admin, NULL, &a), 405);
	fx_answer_free(&a);
}

/* ---- tenant isolation over every endpoint ------------------------------------------------------ */

/* p2's token on p1's data: exactly what a resource that does not exist
 * gets, with the same message. */
static void test_isolation(void **state)
{
	struct fx_answer a, b;
	static const struct {
		const char *other, *ghost, *frag;
	} probes[] = {
		{"/v1/resources/vm-a", "/v1/resources/zz-a", "no resource"},
		{"/v1/resources/vm-a-vda", "/v1/resources/zz-a-vda", "no resource"},
		{"/v1/resources/vm-a/latest", "/v1/resources/zz-a/latest", "no resource"},
		{"/v1/measures?resource=vm-a&metric=cpu.util",
		 "/v1/measures?resource=zz-a&metric=cpu.util", "no resource"},
		{"/v1/measures?resource=vm-a&metric=nope",
		 "/v1/measures?resource=zz-a&metric=nope", "no resource"},
		{"/v1/measures?resource=vm-a&metric=cpu.util&start=-30d&granularity=60",
		 "/v1/measures?resource=zz-a&metric=cpu.util&start=-30d&granularity=60",
		 "no resource"},
		{"/v1/statistics?resource=vm-a&metric=cpu.util",
		 "/v1/statistics?resource=zz-a&metric=cpu.util", "no resource"},
		{"/v1/statistics?resource=vm-a&metric=nope",
		 "/v1/statistics?resource=zz-a&metric=nope", "no resource"},
		{"/v1/graph?resource=vm-a&metric=cpu.util",
		 "/v1/graph?resource=zz-a&metric=cpu.util", "no resource"},
		{"/v1/graph?resource=vm-c&metric=cpu.util&resource2=vm-a&metric2=nope",
		 "/v1/graph?resource=vm-c&metric=cpu.util&resource2=zz-a&metric2=nope",
		 "no resource"},
	};
	char m1[256], m2[256];

	(void)state;
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		GET(probes[i].other, tok_p2, &a);
		GET(probes[i].ghost, tok_p2, &b);
		if (a.status != 404 || b.status != 404)
			fail_msg("%s: HTTP %ld / %ld", probes[i].other, a.status,
				 b.status);
		/* the same message with the id swapped */
		snprintf(m1, sizeof(m1), "%s", fx_errmsg(&a));
		snprintf(m2, sizeof(m2), "%s", fx_errmsg(&b));
		for (char *p = m1; (p = strstr(p, "vm-a")); p += 4)
			memcpy(p, "zz-a", 4);
		assert_string_equal(m1, m2);
		fx_answer_free(&a);
		fx_answer_free(&b);
		/* and the admin sees it (or gets a precise error) */
		GET(probes[i].other, tok_admin, &a);
		assert_true(a.status != 404 || !strstr(fx_errmsg(&a), "no resource"));
		fx_answer_free(&a);
	}

	/* lists: only p2's resources, whatever the filter or cursor */
	static const char *const lists[] = {
		"/v1/resources",
		"/v1/resources?project=p1",
		"/v1/resources?cursor=vm-a",
		"/v1/resources?parent=vm-a",
		"/v1/resources?host=h1&limit=1",
		"/v1/resources?type=disk",
	};
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		size_t k;
		json_t *r;
		assert_int_equal(GET(lists[i], tok_p2, &a), 200);
		json_array_foreach(json_object_get(a.json, "resources"), k, r)
			assert_string_equal(json_string_value(json_object_get(r, "project")), "p2");
		fx_answer_free(&a);
	}
	/* follow the cursor through every page: never a p1 resource */
	{
		char path[512] = "/v1/resources?limit=1";
		int pages = 0;
		for (;;) {
			size_t k;
			json_t *r, *next;
			assert_int_equal(GET(path, tok_p2, &a), 200);
			json_array_foreach(json_object_get(a.json, "resources"), k, r)
				assert_string_equal(json_string_value(json_object_get(r, "project")),
						    "p2");
			next = json_object_get(a.json, "next");
			pages++;
			if (!json_is_string(next)) {
				fx_answer_free(&a);
				break;
			}
			char *e = curl_easy_escape(NULL, json_string_value(next), 0);
			snprintf(path, sizeof(path), "/v1/resources?limit=1&cursor=%s", e);
			curl_free(e);
			fx_answer_free(&a);
		}
		assert_int_equal(pages, 3); /* vm-c, vm-d, q"x\y */
	}
	/* top and aggregates: p1 asked for explicitly is an empty answer */
	assert_int_equal(GET("/v1/top?metric=cpu.util&project=p1", tok_p2, &a), 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "resources")), 0);
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/top?metric=cpu.util", tok_p2, &a), 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "resources")), 1);
	assert_null(strstr(a.body, "p1"));
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/top?metric=cpu.util", tok_p1, &a), 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "resources")), 2);
	assert_null(strstr(a.body, "p2"));
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/aggregates?metric=cpu.util&project=p1" RANGE, tok_p2, &a), 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "groups")), 0);
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/aggregates?metric=cpu.util&group_by=project&granularity=60" RANGE, tok_p2, &a), 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "groups")), 1);
	assert_non_null(group(a.json, "project", "p2"));
	assert_true(fabs(at(group(a.json, "project", "p2"), 4) - 73) < 1e-9);
	fx_answer_free(&a);
	/* /metrics: see test_metrics; tokens: 403 (test_tokens_api) */
	assert_int_equal(GET("/metrics", tok_p2, &a), 200);
	assert_null(strstr(a.body, "project=\"p1\""));
	assert_non_null(strstr(a.body, "project=\"p2\""));
	fx_answer_free(&a);
}

/* Resources that end leave /metrics at once (docs/api.md "GET /metrics"):
 * a Prometheus scrape that no longer has a series marks it stale, so
 * queries and alerts stop seeing the instance; left in, its last value
 * would stay flat forever and count() would count dead instances. The API
 * keeps the resource, ended, with its data. Runs last: it adds vm-e. */
static void test_metrics_ended_leave(void **state)
{
	int64_t t = (T0 + 60 * NPOLLS) * 1000;
	struct fx_answer a;
	char err[256];

	(void)state;
	for (int k = 0; k < 2; k++) {
		struct vg_registry *reg = NULL;
		struct vg_batch *b = vg_batch_new("h3", 3, (uint64_t)k + 1,
						  t + 60000 * k);
		struct vg_resource *r = vg_batch_resource(b, VG_RT_INSTANCE, "vm-e",
							  "epsilon", NULL,
							  t + 60000 * k);
		vg_batch_identity(b, "p1", "u1", "small");
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 42 + k);
		if (k == 1)
			r->state = VG_RSTATE_ENDED;
		assert_int_equal(vg_registry_open(srv.dir, &reg, err, sizeof(err)), 0);
		assert_int_equal(vg_registry_update(reg, b), 0);
		vg_registry_close(reg); /* written: the API reads it next request */
		vg_batch_free(b);

		assert_int_equal(GET("/metrics", tok_admin, &a), 200);
		if (k == 0)
			assert_non_null(strstr(a.body,
					       "vigie_cpu_util{resource=\"vm-e\",type=\"instance\","
					       "project=\"p1\",host=\"h3\"} 42\n"));
		else
			assert_null(strstr(a.body, "vm-e"));
		/* the others stay */
		assert_non_null(strstr(a.body, "vigie_cpu_util{resource=\"vm-a\""));
		fx_answer_free(&a);
		assert_int_equal(GET("/metrics", tok_p1, &a), 200);
		assert_true((strstr(a.body, "vm-e") != NULL) == (k == 0));
		fx_answer_free(&a);
	}
	/* still in the API, ended, with its last value */
	assert_int_equal(GET("/v1/resources/vm-e", tok_admin, &a), 200);
	assert_non_null(strstr(a.body, "\"state\":\"ended\""));
	fx_answer_free(&a);
}

/* A tenant's metric name never breaks the administrator's scrape: a
 * series whose Prometheus name is one of the collector's own families
 * (a counter "collector.batches.received", a gauge named like a
 * summary's _count) or whose family the agents' counter holds (a gauge
 * "cpu.time_total") would add a second HELP and TYPE line, and
 * Prometheus refuses the whole scrape for it. Such series are left out
 * of /metrics (only there); the project's own scrape, without the
 * self-metrics, keeps the first. Runs last: it adds pub-x. */
static void test_metrics_names_collide(void **state)
{
	int64_t t = (T0 + 60 * NPOLLS) * 1000;
	struct vg_registry *reg = NULL;
	struct vg_batch *b = vg_batch_new("api", 4, 1, t);
	struct fx_answer a;
	char err[256];

	(void)state;
	assert_non_null(vg_batch_resource(b, VG_RT_CUSTOM, "pub-x", "pub-x", NULL, t));
	vg_batch_identity(b, "p1", NULL, NULL);
	vg_batch_sample(b, "collector.batches.received", VG_KIND_COUNTER, 5);
	vg_batch_sample(b, "store.write.seconds.count", VG_KIND_GAUGE, 6);
	vg_batch_sample(b, "cpu.time_total", VG_KIND_GAUGE, 9);
	vg_batch_sample(b, "app.fine", VG_KIND_GAUGE, 1);
	/* two names, one family and one label set (the resource's) */
	vg_batch_sample(b, "app.dup", VG_KIND_GAUGE, 2);
	vg_batch_sample(b, "app_dup", VG_KIND_GAUGE, 3);
	assert_int_equal(vg_registry_open(srv.dir, &reg, err, sizeof(err)), 0);
	assert_int_equal(vg_registry_update(reg, b), 0);
	vg_registry_close(reg);
	vg_batch_free(b);

	assert_int_equal(GET("/metrics", tok_admin, &a), 200);
	/* one HELP and one TYPE line per family, whatever the names */
	for (const char *p = a.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		char line[400];
		size_t n;
		if (strncmp(p, "# TYPE ", 7) && strncmp(p, "# HELP ", 7))
			continue;
		n = 7 + strcspn(p + 7, " \n");
		snprintf(line, sizeof(line), "%.*s ", (int)n, p);
		assert_int_equal(count_lines(a.body, line), 1);
	}
	assert_int_equal(count_lines(a.body, "# TYPE vigie_collector_batches_received_total counter"), 1);
	assert_int_equal(count_lines(a.body, "# TYPE vigie_cpu_time_total counter"), 1);
	assert_null(strstr(a.body, "vigie_collector_batches_received_total{resource=\"pub-x\""));
	assert_null(strstr(a.body, "vigie_store_write_seconds_count{"));
	assert_null(strstr(a.body, "vigie_cpu_time_total{resource=\"pub-x\""));
	/* the agents' counter and the tenant's other series stay */
	assert_non_null(strstr(a.body, "vigie_cpu_time_total{resource=\"vm-b\""));
	assert_non_null(strstr(a.body, "vigie_app_fine{resource=\"pub-x\""));
	/* one sample per label set: the format forbids a second */
	assert_int_equal(count_lines(a.body, "vigie_app_dup{resource=\"pub-x\""), 1);
	fx_answer_free(&a);
	/* counted: the three left out of the last scrape */
	assert_int_equal(GET("/metrics", tok_admin, &a), 200);
	{
		const char *v = strstr(a.body, "\nvigie_api_metrics_series_left_out_total ");
		assert_non_null(v);
		assert_true(atof(v + strlen("\nvigie_api_metrics_series_left_out_total ")) >= 3);
	}
	fx_answer_free(&a);
	/* the project's scrape has no self-metrics: its counter is there */
	assert_int_equal(GET("/metrics", tok_p1, &a), 200);
	assert_non_null(strstr(a.body, "vigie_collector_batches_received_total{resource=\"pub-x\""));
	assert_int_equal(count_lines(a.body, "# HELP vigie_cpu_time_total "), 1);
	fx_answer_free(&a);
}

/* A resource whose project is longer than any fixed buffer (a registry
 * written before the decoder checked lengths): every token gets an answer
 * that does not depend on the project's content, and a token that may not
 * see it gets exactly the body a random id gets. */
static void test_long_project(void **state)
{
	static const char *const eps[] = {"/v1/measures", "/v1/statistics",
					  "/v1/graph"};
	struct vg_registry *reg;
	struct vg_batch *b;
	struct fx_answer a, n;
	char err[256], project[301], path[512];
	int64_t t = T0 * 1000;

	memset(project, 'P', sizeof(project) - 1);
	project[sizeof(project) - 1] = '\0';
	assert_int_equal(vg_registry_open(srv.dir, &reg, err, sizeof(err)), 0);
	b = vg_batch_new("h9", 9, 1, t);
	vg_batch_resource(b, VG_RT_INSTANCE, "vm-long", "long", NULL, t);
	vg_batch_identity(b, project, NULL, NULL);
	vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 1);
	assert_int_equal(vg_registry_update(reg, b), 0);
	assert_int_equal(vg_store_write_batch(srv.store, b), 0);
	vg_batch_free(b);
	vg_registry_close(reg);

	for (size_t i = 0; i < 3; i++) {
		/* the admin: never a server error */
		snprintf(path, sizeof(path), "%s?resource=vm-long&metric=cpu.util" RANGE, eps[i]);
		GET(path, tok_admin, &a);
		if (a.status >= 500)
			fail_msg("GET %s as admin: HTTP %ld %s", path, a.status,
				 a.body);
		fx_answer_free(&a);
		/* another tenant: the same 404 as an id that does not exist */
		GET(path, tok_p1, &a);
		snprintf(path, sizeof(path), "%s?resource=vm-none&metric=cpu.util" RANGE, eps[i]);
		GET(path, tok_p1, &n);
		assert_int_equal(a.status, 404);
		assert_int_equal(n.status, 404);
		{ /* identical bodies once the id is taken out */
			char *x = strstr(a.body, "vm-long"), *y = strstr(n.body, "vm-none");
			assert_non_null(x);
			assert_non_null(y);
			assert_int_equal(x - a.body, y - n.body);
			assert_string_equal(x + 7, y + 7);
			assert_memory_equal(a.body, n.body, (size_t)(x - a.body));
		}
		fx_answer_free(&a);
		fx_answer_free(&n);
	}
}

/* NPOLLS minutes of project p2's custom resource id, as POST /v1/measures
 * publishes them: gauge metric at v0, v0 + dv, ... */
static void publish_custom(struct vg_registry *reg, const char *id, const char *metric,
			   double v0, double dv)
{
	for (int k = 0; k < NPOLLS; k++) {
		int64_t t = (T0 + 60 * k) * 1000;
		struct vg_batch *b = vg_batch_new("api", 0, 0, t);
		struct vg_resource *res = vg_batch_resource(b, VG_RT_CUSTOM, id, id, NULL, t);
		res->state = VG_RSTATE_ACTIVE;
		vg_batch_identity(b, "p2", NULL, NULL);
		vg_batch_sample(b, metric, VG_KIND_GAUGE, v0 + dv * k);
		assert_int_equal(vg_registry_update(reg, b), 0);
		assert_int_equal(vg_store_write_batch(srv.store, b), 0);
		vg_batch_free(b);
	}
}

/* A published series' default graph legend is "RESOURCE METRIC (unit)"
 * with the unit it was published with (docs/api.md), as the measures'
 * "unit" says: only catalogue units were shown, so "pubq queue.depth"
 * went without "(jobs)". The legend is drawn in the PNG: the default one
 * draws the same bytes as that legend given, not as the one without it. */
static void test_graph_published_unit(void **state)
{
	struct vg_registry *reg;
	struct fx_answer d, w, wo;
	char err[256];

	(void)state;
	assert_int_equal(vg_registry_open(srv.dir, &reg, err, sizeof(err)), 0);
	publish_custom(reg, "pubq", "queue.depth", 10, 1);
	assert_int_equal(vg_registry_set_unit(reg, "pubq", "queue.depth", "jobs"), 0);
	vg_registry_close(reg);

	assert_int_equal(GET("/v1/measures?resource=pubq&metric=queue.depth" RANGE, tok_admin,
			     &d),
			 200);
	assert_string_equal(json_string_value(json_object_get(d.json, "unit")), "jobs");
	fx_answer_free(&d);
	assert_int_equal(GET("/v1/graph?resource=pubq&metric=queue.depth" RANGE, tok_admin, &d),
			 200);
	assert_int_equal(GET("/v1/graph?resource=pubq&metric=queue.depth"
			     "&legend=pubq%20queue.depth%20(jobs)" RANGE,
			     tok_admin, &w),
			 200);
	assert_int_equal(GET("/v1/graph?resource=pubq&metric=queue.depth"
			     "&legend=pubq%20queue.depth" RANGE,
			     tok_admin, &wo),
			 200);
	assert_true(is_png(&d) && is_png(&w) && is_png(&wo));
	/* the legend shows in the image at all */
	assert_false(w.len == wo.len && !memcmp(w.body, wo.body, w.len));
	assert_int_equal(d.len, w.len);
	assert_memory_equal(d.body, w.body, d.len);
	fx_answer_free(&d);
	fx_answer_free(&w);
	fx_answer_free(&wo);
}

/* A published counter's unit in /v1/statistics is the one /v1/measures
 * gives ("B/s" for a counter published with "unit":"B", docs/api.md):
 * statistics read the catalogue only and said "unit":"". */
static void test_statistics_published_unit(void **state)
{
	struct vg_registry *reg;
	struct fx_answer a;
	char err[256];

	(void)state;
	assert_int_equal(vg_registry_open(srv.dir, &reg, err, sizeof(err)), 0);
	for (int k = 0; k < NPOLLS; k++) {
		int64_t t = (T0 + 60 * k) * 1000;
		struct vg_batch *b = vg_batch_new("api", 0, 0, t);
		struct vg_resource *res =
			vg_batch_resource(b, VG_RT_CUSTOM, "pubc", "pubc", NULL, t);
		res->state = VG_RSTATE_ACTIVE;
		vg_batch_identity(b, "p2", NULL, NULL);
		vg_batch_sample(b, "app.sent", VG_KIND_COUNTER, 1000.0 * k);
		assert_int_equal(vg_registry_update(reg, b), 0);
		assert_int_equal(vg_store_write_batch(srv.store, b), 0);
		vg_batch_free(b);
	}
	assert_int_equal(vg_registry_set_unit(reg, "pubc", "app.sent", "B"), 0);
	vg_registry_close(reg);

	assert_int_equal(GET("/v1/measures?resource=pubc&metric=app.sent" RANGE, tok_admin, &a),
			 200);
	assert_string_equal(json_string_value(json_object_get(a.json, "unit")), "B/s");
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/statistics?resource=pubc&metric=app.sent&period=600" RANGE,
			     tok_admin, &a),
			 200);
	assert_string_equal(json_string_value(json_object_get(a.json, "unit")), "B/s");
	assert_string_equal(json_string_value(json_object_get(a.json, "kind")), "counter");
	fx_answer_free(&a);
}

/* A project may publish a catalogue name such as cpu.util on its custom
 * resources (POST /v1/measures allows it; docs/api.md). Without a type,
 * /v1/top and a /v1/query selector must rank and combine the agent's
 * cpu.util only, so a tenant's 1e300 neither tops the administrator's
 * ranking nor skews a cloud-wide aggregate; naming the type (or the id)
 * still reaches the custom resource. */
static void test_custom_catalogue_names(void **state)
{
	struct vg_registry *reg;
	struct fx_answer a;
	json_t *r;
	char err[256], path[512];

	(void)state;
	assert_int_equal(vg_registry_open(srv.dir, &reg, err, sizeof(err)), 0);
	publish_custom(reg, "squat", "cpu.util", 1e300, 0);
	vg_registry_close(reg);

	/* the administrator's top: the instances, the type said */
	assert_int_equal(GET("/v1/top?metric=cpu.util", tok_admin, &a), 200);
	r = json_object_get(a.json, "resources");
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "id")),
			    "vm-c");
	assert_null(strstr(a.body, "squat"));
	assert_string_equal(json_string_value(json_object_get(a.json, "type")),
			    "instance");
	fx_answer_free(&a);
	/* and the project's own top */
	assert_int_equal(GET("/v1/top?metric=cpu.util", tok_p2, &a), 200);
	assert_null(strstr(a.body, "squat"));
	fx_answer_free(&a);
	/* named, the custom resources rank */
	assert_int_equal(GET("/v1/top?metric=cpu.util&type=custom", tok_admin, &a), 200);
	r = json_object_get(a.json, "resources");
	assert_int_equal(json_array_size(r), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "id")),
			    "squat");
	fx_answer_free(&a);

	/* /v1/aggregates: without a type, the instances only (none above
	 * 100 %); with type=custom, the tenant's series */
	assert_int_equal(GET("/v1/aggregates?metric=cpu.util&aggregation=max&granularity=60" RANGE,
			     tok_admin, &a),
			 200);
	assert_string_equal(json_string_value(json_object_get(a.json, "type")), "instance");
	{
		json_t *g = json_array_get(json_object_get(a.json, "groups"), 0);
		json_t *pt;
		size_t i;
		assert_true(json_array_size(json_object_get(g, "points")) > 0);
		json_array_foreach(json_object_get(g, "points"), i, pt)
			assert_true(json_number_value(json_array_get(pt, 1)) <= 100);
	}
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/aggregates?metric=cpu.util&type=custom&granularity=60" RANGE,
			     tok_admin, &a),
			 200);
	assert_int_equal(json_integer_value(json_object_get(
				 json_array_get(json_object_get(a.json, "groups"), 0), "resources")),
			 1);
	fx_answer_free(&a);

	/* /v1/query: an unqualified selector, an aggregate, top() */
#define Q(e) "/v1/query?start=1794999600&end=1795001400&granularity=60&expr=" e
	assert_int_equal(GET(Q("cpu.util"), tok_admin, &a), 200);
	assert_true(json_array_size(json_object_get(a.json, "series")) > 0);
	assert_null(strstr(a.body, "squat"));
	fx_answer_free(&a);
	assert_int_equal(GET(Q("max(cpu.util)"), tok_admin, &a), 200);
	{
		json_t *pts = json_object_get(json_array_get(json_object_get(a.json, "series"), 0),
					      "points");
		size_t i;
		json_t *pt;
		assert_true(json_array_size(pts) > 0);
		json_array_foreach(pts, i, pt)
			assert_true(json_number_value(json_array_get(pt, 1)) <= 100);
	}
	fx_answer_free(&a);
	assert_int_equal(GET(Q("top(cpu.util%2C1)"), tok_admin, &a), 200);
	assert_null(strstr(a.body, "squat"));
	fx_answer_free(&a);
	/* a type matcher or the id reaches it */
	assert_int_equal(GET(Q("cpu.util%7Btype%3D%22custom%22%7D"), tok_admin, &a), 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "series")), 1);
	assert_non_null(strstr(a.body, "squat"));
	fx_answer_free(&a);
	snprintf(path, sizeof(path), Q("cpu.util%%7Bid%%3D%%22squat%%22%%7D"));
	assert_int_equal(GET(path, tok_p2, &a), 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "series")), 1);
	fx_answer_free(&a);
#undef Q
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_parse_statistics),
		cmocka_unit_test(test_percentile),
		cmocka_unit_test(test_period),
		cmocka_unit_test(test_graph_text),
		cmocka_unit_test(test_graph_default_legend),
		cmocka_unit_test(test_graph_build_injection),
		cmocka_unit_test(test_graph_build_random),
		cmocka_unit_test(test_prom_pure),
	};
	const struct CMUnitTest server[] = {
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_tokens_api),
		cmocka_unit_test(test_statistics),
		cmocka_unit_test(test_aggregates),
		cmocka_unit_test(test_latest_top),
		cmocka_unit_test(test_graph),
		cmocka_unit_test(test_graph_store_faults),
		cmocka_unit_test(test_graph_render_literal),
		cmocka_unit_test(test_metadata),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_isolation),
		cmocka_unit_test(test_metrics_ended_leave),
		cmocka_unit_test(test_long_project),
		cmocka_unit_test(test_metrics_names_collide),
		cmocka_unit_test(test_custom_catalogue_names),
		cmocka_unit_test(test_graph_published_unit),      /* adds to p2 too */
		cmocka_unit_test(test_statistics_published_unit), /* adds to p2 too */
	};
	int rc = cmocka_run_group_tests_name("api_query_pure", pure, NULL, NULL);

	rc += cmocka_run_group_tests_name("api_query_server", server, setup_server,
					  teardown_server);
	return rc;
}
