/*
 * expr_test.c — the /v1/query expression language: the
 * parser alone (positions of errors, limits) and expressions evaluated by
 * the real API server (vg_api_start on loopback, libcurl) over real RRD
 * files: selectors, arithmetic, resample, rolling, fill, aggregation
 * across series grouped by a label or metadata, top/bottom, tenant
 * scoping, POST bodies and every error with its position.
 *
 * Data (one poll a minute, k = 0..30 at T0 + 60k; the RRD row named
 * T0+60(k-1) holds the value written at T0+60k):
 *   vm-a  instance p1 h1 small az=zone-a  cpu.util = 10
 *   vm-b  instance p1 h2 large az=zone-b  cpu.util = 30
 *   vm-c  instance p2 h1 small az=zone-a  cpu.util = 50
 *   vm-d  instance p1 h1 small            cpu.util = k (row T0+60j = j+1)
 *   vm-a-vda disk of vm-a (p1)            disk.read.bytes = 600k (10 B/s)
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "query/api/api_handlers.h"
#include "query/api/expr.h"
#include "vigie/batch.h"
#include "vigie/token.h"

#include "../support/api_fixture.h"

#define T0 1794999600LL /* 2026-11-18T11:00:00Z */
#define NPOLLS 31

static struct fx_api srv;
static char tok_admin[VG_TOKEN_LEN + 1], tok_p1[VG_TOKEN_LEN + 1];

/* ---- the parser ------------------------------------------------------------ */

static int perr(const char *text, char *err, size_t len)
{
	struct vg_expr *e = NULL;
	int pos = -1, rc = vg_expr_parse(text, &e, err, len, &pos);

	vg_expr_free(e);
	return rc ? pos : -1;
}

static void test_parse(void **state)
{
	struct vg_expr *e = NULL;
	char err[320], big[VG_EXPR_MAX_LEN + 2];
	int pos;

	(void)state;
	assert_int_equal(vg_expr_parse("sum(cpu.util{project=\"p1\", "
				       "metadata.az!=\"x\"}, by=host) / 2 + -1",
				       &e, err, sizeof(err), &pos),
			 0);
	assert_int_equal(e->root->kind, VG_EXPR_BIN);
	assert_int_equal(e->root->op, '+');
	assert_int_equal(e->root->a[0]->a[0]->fn, VG_FN_SUM);
	assert_string_equal(e->root->a[0]->a[0]->by, "host");
	assert_int_equal(e->root->a[0]->a[0]->a[0]->nm, 2);
	vg_expr_free(e);
	assert_int_equal(vg_expr_parse("p99.9(rolling(resample(x, 300, max), 3, "
				       "min))",
				       &e, err, sizeof(err), &pos),
			 0);
	assert_true(fabs(e->root->pct - 99.9) < 1e-9);
	assert_int_equal(e->root->a[0]->agg, VG_AGG_MIN);
	assert_int_equal(e->root->a[0]->a[0]->iarg, 300);
	vg_expr_free(e);

	/* errors point at the offending byte */
	assert_int_equal(perr("sum(cpu.util", err, sizeof(err)), 12);
	assert_non_null(strstr(err, "expected ',' or ')'"));
	assert_int_equal(perr("cpu.util{foo=\"x\"}", err, sizeof(err)), 9);
	assert_non_null(strstr(err, "unknown label 'foo'"));
	assert_int_equal(perr("resample(cpu.util, 90)", err, sizeof(err)), 19);
	assert_int_equal(perr("1 + nope(2)", err, sizeof(err)), 4);
	assert_non_null(strstr(err, "unknown function 'nope'"));
	assert_int_equal(perr("1 +", err, sizeof(err)), 3);
	assert_int_equal(perr("", err, sizeof(err)), 0);
	assert_int_equal(perr("a{id=\"x}", err, sizeof(err)), 5);
	assert_non_null(strstr(err, "unterminated"));
	assert_int_equal(perr("top(a, 0)", err, sizeof(err)), 7);
	assert_int_equal(perr("p101(a)", err, sizeof(err)), 0);
	assert_non_null(strstr(err, "0 <= NN <= 100"));
	assert_int_equal(perr("p0(a)", err, sizeof(err)), -1); /* the minimum */
	assert_int_equal(perr("a $ b", err, sizeof(err)), 2);
	assert_int_equal(perr("sum(a, by=id)", err, sizeof(err)), 7);
	assert_int_equal(perr("a{type=\"vm\"}", err, sizeof(err)), 7);
	assert_int_equal(perr("1e999", err, sizeof(err)), 0);
	assert_int_equal(perr("fill(a, foo)", err, sizeof(err)), 8);
	/* limits */
	memset(big, ' ', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	big[0] = '1';
	assert_int_equal(perr(big, err, sizeof(err)), VG_EXPR_MAX_LEN);
	{
		char deep[200] = "";
		for (int i = 0; i < 40; i++)
			strcat(deep, "(");
		strcat(deep, "1");
		assert_true(perr(deep, err, sizeof(err)) > 0);
		assert_non_null(strstr(err, "nested"));
	}
	{
		char many[4000] = "1";
		for (int i = 0; i < 300; i++)
			strcat(many, "+1");
		assert_true(perr(many, err, sizeof(err)) > 0);
		assert_non_null(strstr(err, "too large"));
	}
}

/* ---- the server ----------------------------------------------------------------- */

static int write_data(void)
{
	struct fx_data d;

	if (fx_data_open(srv.dir, &d))
		return -1;
	srv.store = d.store;
	for (int k = 0; k < NPOLLS; k++) {
		int64_t t = (T0 + 60 * k) * 1000;
		static const struct {
			const char *id, *proj, *host, *flavor, *az;
			double v;
		} vm[] = {{"vm-a", "p1", "h1", "small", "zone-a", 10},
			  {"vm-b", "p1", "h2", "large", "zone-b", 30},
			  {"vm-c", "p2", "h1", "small", "zone-a", 50},
			  {"vm-d", "p1", "h1", "small", NULL, -1}};
		for (int h = 1; h <= 2; h++) {
			char host[8];
			struct vg_batch *b;
			snprintf(host, sizeof(host), "h%d", h);
			b = vg_batch_new(host, 1, (uint64_t)k + 1, t);
			for (size_t i = 0; i < 4; i++) {
				if (strcmp(vm[i].host, host))
					continue;
				vg_batch_resource(b, VG_RT_INSTANCE, vm[i].id,
						  vm[i].id, NULL, t);
				vg_batch_identity(b, vm[i].proj, "u", vm[i].flavor);
				if (vm[i].az)
					vg_batch_attr(b, "az", vm[i].az);
				vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE,
						vm[i].v < 0 ? k : vm[i].v);
			}
			/* 20 hosts' memory: enough series for the parallel read */
			for (int i = 0; h == 2 && i < 20; i++) {
				char id[16];
				snprintf(id, sizeof(id), "node-%02d", i);
				vg_batch_resource(b, VG_RT_HOST, id, id, NULL, t);
				vg_batch_sample(b, "memory.used", VG_KIND_GAUGE,
						1000.0 * i);
			}
			if (h == 1) {
				vg_batch_resource(b, VG_RT_DISK, "vm-a-vda", "vda",
						  "vm-a", t);
				vg_batch_identity(b, "p1", "u", NULL);
				vg_batch_sample(b, "disk.read.bytes",
						VG_KIND_COUNTER, 600.0 * k);
			}
			if (fx_data_write(&d, b))
				return -1;
		}
	}
	fx_data_done(&d);
	return 0;
}

static int setup_server(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (fx_tmpdir(srv.dir, sizeof(srv.dir), "expr-test") || write_data() ||
	    fx_token(srv.dir, NULL, "admin", tok_admin) ||
	    fx_token(srv.dir, "p1", "p1", tok_p1))
		return -1;
	return fx_api_start(&srv, NULL);
}

static int teardown_server(void **state)
{
	(void)state;
	fx_api_stop(&srv);
	curl_global_cleanup();
	return 0;
}

/* GET /v1/query for expr over [T0, T0+29 min] at 60 s as token. */
static long query(const char *token, const char *expr, struct fx_answer *a)
{
	char path[4096], auth[256];
	CURL *h = curl_easy_init();
	char *esc = curl_easy_escape(h, expr, 0);
	long st;

	snprintf(path, sizeof(path), "/v1/query?expr=%s&start=%lld&end=%lld"
				     "&granularity=60",
		 esc, T0, T0 + 29 * 60);
	curl_free(esc);
	curl_easy_cleanup(h);
	snprintf(auth, sizeof(auth), "Bearer %s", token);
	st = fx_http(srv.url, "GET", path, auth, NULL, a);
	if (getenv("EXPR_TEST_DEBUG"))
		fprintf(stderr, "%s -> %ld %s\n", expr, st, a->body);
	return st;
}

static json_t *series(const struct fx_answer *a)
{
	return json_object_get(a->json, "series");
}

static json_t *by_key(const struct fx_answer *a, const char *key)
{
	size_t i;
	json_t *s;

	json_array_foreach(series(a), i, s)
		if (!strcmp(json_string_value(json_object_get(s, "key")), key))
			return s;
	return NULL;
}

/* The value at time T0 + 60 * slot of series s (NAN if absent). */
static double at(json_t *s, int64_t t)
{
	char want[32];
	size_t i;
	json_t *p;

	vg_iso_time(t * 1000, want);
	json_array_foreach(json_object_get(s, "points"), i, p)
		if (!strcmp(json_string_value(json_array_get(p, 0)), want))
			return json_number_value(json_array_get(p, 1));
	return NAN;
}

static void test_select_arith(void **state)
{
	struct fx_answer a;
	json_t *s;

	(void)state;
	assert_int_equal(query(tok_admin, "cpu.util{id=\"vm-a\"}", &a), 200);
	assert_int_equal(json_array_size(series(&a)), 1);
	s = by_key(&a, "vm-a");
	assert_non_null(s);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(s, "labels"), "project")),
			    "p1");
	assert_true(at(s, T0 + 600) == 10);
	assert_true(json_array_size(json_object_get(s, "points")) >= 25);
	assert_int_equal(json_integer_value(json_object_get(a.json, "granularity")),
			 60);
	fx_answer_free(&a);

	assert_int_equal(query(tok_admin, "cpu.util{project=\"p1\"} * 2 + 1", &a), 200);
	assert_int_equal(json_array_size(series(&a)), 3);
	assert_true(at(by_key(&a, "vm-a"), T0 + 600) == 21);
	assert_true(at(by_key(&a, "vm-b"), T0 + 600) == 61);
	assert_true(at(by_key(&a, "vm-d"), T0 + 600) == 23); /* 2*11+1 */
	fx_answer_free(&a);

	/* series with series: paired by key; one-series side broadcast */
	assert_int_equal(query(tok_admin, "cpu.util{host=\"h1\"} - "
					  "cpu.util{id=\"vm-a\"}",
			       &a),
			 200);
	assert_int_equal(json_array_size(series(&a)), 3);
	assert_true(at(by_key(&a, "vm-c"), T0 + 600) == 40);
	fx_answer_free(&a);
	assert_int_equal(query(tok_admin, "cpu.util{project=\"p1\"} / "
					  "cpu.util{flavor=\"small\"}",
			       &a),
			 200);
	assert_int_equal(json_array_size(series(&a)), 2); /* vm-a, vm-d */
	assert_true(at(by_key(&a, "vm-a"), T0 + 600) == 1);
	assert_null(by_key(&a, "vm-b"));
	fx_answer_free(&a);

	/* constants; counters are rates */
	assert_int_equal(query(tok_admin, "(1 + 2) * -3", &a), 200);
	assert_true(json_number_value(json_object_get(a.json, "scalar")) == -9);
	fx_answer_free(&a);
	assert_int_equal(query(tok_admin, "disk.read.bytes{parent=\"vm-a\"} * 60",
			       &a),
			 200);
	assert_true(fabs(at(by_key(&a, "vm-a-vda"), T0 + 600) - 600) < 1e-6);
	fx_answer_free(&a);
	/* an unknown metric is an empty list, not an error */
	assert_int_equal(query(tok_admin, "nosuch.metric + 1", &a), 200);
	assert_int_equal(json_array_size(series(&a)), 0);
	fx_answer_free(&a);
}

static void test_functions(void **state)
{
	struct fx_answer a;
	json_t *s;

	(void)state;
	assert_int_equal(query(tok_admin, "resample(cpu.util{id=\"vm-d\"}, 300, "
					  "max)",
			       &a),
			 200);
	assert_int_equal(json_integer_value(json_object_get(a.json, "granularity")),
			 300);
	s = by_key(&a, "vm-d");
	assert_true(at(s, T0) == 5);        /* rows T0..T0+240: 1..5 */
	assert_true(at(s, T0 + 300) == 10); /* 6..10 */
	fx_answer_free(&a);
	assert_int_equal(query(tok_admin, "resample(cpu.util{id=\"vm-d\"}, 300)",
			       &a),
			 200);
	assert_true(at(by_key(&a, "vm-d"), T0 + 300) == 8);
	fx_answer_free(&a);

	assert_int_equal(query(tok_admin, "rolling(cpu.util{id=\"vm-d\"}, 3)", &a),
			 200);
	s = by_key(&a, "vm-d");
	assert_true(at(s, T0 + 600) == 10); /* (9 + 10 + 11) / 3 */
	assert_true(at(s, T0) == 1);        /* only one point known yet */
	fx_answer_free(&a);
	assert_int_equal(query(tok_admin, "rolling(cpu.util{id=\"vm-d\"}, 4, min)"
					  " + rolling(cpu.util{id=\"vm-d\"}, 4, max)",
			       &a),
			 200);
	assert_true(at(by_key(&a, "vm-d"), T0 + 600) == 8 + 11);
	fx_answer_free(&a);

	/* x / 0 is missing; fill gives it a value */
	assert_int_equal(query(tok_admin, "cpu.util{id=\"vm-a\"} / 0", &a), 200);
	assert_int_equal(json_array_size(json_object_get(by_key(&a, "vm-a"),
							 "points")),
			 0);
	fx_answer_free(&a);
	assert_int_equal(query(tok_admin, "fill(cpu.util{id=\"vm-a\"} / 0, -7)",
			       &a),
			 200);
	assert_true(at(by_key(&a, "vm-a"), T0 + 600) == -7);
	fx_answer_free(&a);
	/* previous: the last row (T0+29 min) is missing beyond the data end */
	assert_int_equal(query(tok_admin, "fill(cpu.util{id=\"vm-d\"}, previous)",
			       &a),
			 200);
	assert_true(at(by_key(&a, "vm-d"), T0 + 600) == 11);
	fx_answer_free(&a);
}

static void test_across(void **state)
{
	struct fx_answer a;
	json_t *s;

	(void)state;
	assert_int_equal(query(tok_admin, "sum(cpu.util{type=\"instance\"}, "
					  "by=project)",
			       &a),
			 200);
	assert_int_equal(json_array_size(series(&a)), 2);
	s = by_key(&a, "p1");
	assert_true(at(s, T0 + 600) == 10 + 30 + 11);
	assert_int_equal(json_integer_value(json_object_get(s, "members")), 3);
	assert_true(at(by_key(&a, "p2"), T0 + 600) == 50);
	fx_answer_free(&a);

	assert_int_equal(query(tok_admin, "mean(cpu.util, by=metadata.az)", &a), 200);
	assert_true(at(by_key(&a, "zone-a"), T0 + 600) == 30); /* (10+50)/2 */
	assert_true(at(by_key(&a, "zone-b"), T0 + 600) == 30);
	s = by_key(&a, ""); /* vm-d has no az: the null group */
	assert_non_null(s);
	assert_true(json_is_null(json_object_get(json_object_get(s, "labels"),
						 "metadata.az")));
	fx_answer_free(&a);

	/* 20 series, read by several threads: every value in its place */
	assert_int_equal(query(tok_admin, "memory.used{type=\"host\"}", &a), 200);
	assert_int_equal(json_array_size(series(&a)), 20);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(series(&a), 7), "key")),
			    "node-07");
	assert_true(at(by_key(&a, "node-13"), T0 + 600) == 13000);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(a.json, "read"), "series")),
			 20);
	fx_answer_free(&a);
	assert_int_equal(query(tok_admin, "sum(memory.used{type=\"host\"})", &a), 200);
	assert_true(at(by_key(&a, ""), T0 + 600) == 190000);
	assert_int_equal(json_integer_value(json_object_get(by_key(&a, ""),
							    "members")),
			 20);
	fx_answer_free(&a);

	assert_int_equal(query(tok_admin, "count(cpu.util)", &a), 200);
	assert_true(at(by_key(&a, ""), T0 + 600) == 4);
	fx_answer_free(&a);
	assert_int_equal(query(tok_admin, "max(cpu.util) - min(cpu.util)", &a), 200);
	assert_true(at(by_key(&a, ""), T0 + 600) == 40);
	fx_answer_free(&a);
	assert_int_equal(query(tok_admin, "p50(cpu.util, by=host)", &a), 200);
	assert_true(at(by_key(&a, "h1"), T0 + 600) == 11); /* 10, 11, 50 */
	fx_answer_free(&a);

	assert_int_equal(query(tok_admin, "top(cpu.util, 2)", &a), 200);
	assert_int_equal(json_array_size(series(&a)), 2);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(series(&a), 0), "key")),
			    "vm-c");
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(series(&a), 1), "key")),
			    "vm-b");
	fx_answer_free(&a);
	assert_int_equal(query(tok_admin, "bottom(cpu.util, 1, max)", &a), 200);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(series(&a), 0), "key")),
			    "vm-a");
	fx_answer_free(&a);
	assert_int_equal(query(tok_admin, "top(cpu.util, 1, max)", &a), 200);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(series(&a), 0), "key")),
			    "vm-c");
	fx_answer_free(&a);
}

static void test_scope(void **state)
{
	struct fx_answer a;

	(void)state;
	assert_int_equal(query(tok_p1, "cpu.util", &a), 200);
	assert_int_equal(json_array_size(series(&a)), 3);
	assert_null(strstr(a.body, "vm-c"));
	assert_null(strstr(a.body, "p2"));
	fx_answer_free(&a);
	assert_int_equal(query(tok_p1, "cpu.util{project=\"p2\"}", &a), 200);
	assert_int_equal(json_array_size(series(&a)), 0);
	fx_answer_free(&a);
	assert_int_equal(query(tok_p1, "cpu.util{id=\"vm-c\"}", &a), 200);
	assert_int_equal(json_array_size(series(&a)), 0);
	fx_answer_free(&a);
	assert_int_equal(query(tok_p1, "top(cpu.util, 10)", &a), 200);
	assert_null(strstr(a.body, "vm-c"));
	fx_answer_free(&a);
	assert_int_equal(query(tok_p1, "sum(cpu.util, by=project)", &a), 200);
	assert_int_equal(json_array_size(series(&a)), 1);
	assert_null(strstr(a.body, "p2"));
	fx_answer_free(&a);
	assert_int_equal(query("vgt_0000000000000000_00", "cpu.util", &a), 401);
	fx_answer_free(&a);
}

static void test_errors_post(void **state)
{
	struct fx_answer a;
	char auth[256];

	(void)state;
	snprintf(auth, sizeof(auth), "Bearer %s", tok_admin);
	assert_int_equal(query(tok_admin, "sum(cpu.util", &a), 400);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(a.json, "error"), "position")),
			 12);
	assert_non_null(strstr(fx_errmsg(&a), "at 12:"));
	fx_answer_free(&a);
	assert_int_equal(query(tok_admin, "resample(cpu.util{id=\"vm-a\"}, 300) + "
					  "cpu.util{id=\"vm-a\"}",
			       &a),
			 400);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(a.json, "error"), "position")),
			 35);
	assert_non_null(strstr(fx_errmsg(&a), "resample() one side"));
	fx_answer_free(&a);
	/* a type quoted at 32 bytes, 'é' at bytes 31-32: the quote stops
	 * before it (cut inside it, the message was no UTF-8, the error
	 * object no JSON: a 500) */
	assert_int_equal(query(tok_admin, "cpu.util{type=\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
					  "\xc3\xa9yy\"}",
			       &a),
			 400);
	assert_non_null(strstr(fx_errmsg(&a), "bad type 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' "
					      "(one of"));
	fx_answer_free(&a);
	assert_int_equal(fx_http(srv.url, "GET", "/v1/query", auth, NULL, &a), 400);
	fx_answer_free(&a);
	assert_int_equal(fx_http(srv.url, "GET", "/v1/query?expr=1&granularity=7",
				 auth, NULL, &a),
			 400);
	assert_string_equal(fx_errmsg(&a), "bad granularity '7' (one of: 60, 300, 3600, auto)");
	fx_answer_free(&a);
	assert_int_equal(fx_http(srv.url, "GET", "/v1/query?expr=1&start=-30d&"
						 "granularity=60",
				 auth, NULL, &a),
			 400);
	assert_non_null(strstr(fx_errmsg(&a), "too many points"));
	fx_answer_free(&a);

	/* POST: the same in a JSON body */
	assert_int_equal(fx_http(srv.url, "POST", "/v1/query", auth,
				 "{\"expr\":\"sum(cpu.util{project=\\\"p1\\\"})\","
				 "\"start\":\"1794999600\",\"end\":\"1795001340\","
				 "\"granularity\":60}",
				 &a),
			 200);
	assert_true(at(by_key(&a, ""), T0 + 600) == 51);
	fx_answer_free(&a);
	assert_int_equal(fx_http(srv.url, "POST", "/v1/query", auth,
				 "{\"expr\":\"1\",\"step\":60}", &a),
			 400);
	assert_non_null(strstr(fx_errmsg(&a), "unknown field 'step'"));
	fx_answer_free(&a);
	assert_int_equal(fx_http(srv.url, "POST", "/v1/query", auth, "[1]", &a), 400);
	fx_answer_free(&a);
	/* a body that is not JSON says why, not only what was expected */
	assert_int_equal(fx_http(srv.url, "POST", "/v1/query", auth,
				 "{\"expr\":\"1\",\"expr\":\"2\"}", &a),
			 400);
	assert_non_null(strstr(fx_errmsg(&a), "duplicate object key"));
	fx_answer_free(&a);
	assert_int_equal(fx_http(srv.url, "POST", "/v1/query", auth,
				 "{\"expr\":1}", &a),
			 400);
	assert_non_null(strstr(fx_errmsg(&a), "field 'expr' must be a string"));
	assert_null(strstr(fx_errmsg(&a), "whole number"));
	fx_answer_free(&a);
	/* a granularity that is a number but not a whole one is told what
	 * is accepted, not "must be a string" (which 60 is not either) */
	assert_int_equal(fx_http(srv.url, "POST", "/v1/query", auth,
				 "{\"expr\":\"1\",\"granularity\":60.0}", &a),
			 400);
	assert_non_null(strstr(fx_errmsg(&a), "string or a whole number of seconds"));
	fx_answer_free(&a);
	{
		size_t n = 70 * 1024;
		char *big = malloc(n + 32);
		snprintf(big, 32, "{\"expr\":\"");
		memset(big + 9, '1', n);
		strcpy(big + 9 + n, "\"}");
		assert_int_equal(fx_http(srv.url, "POST", "/v1/query", auth, big,
					 &a),
				 413);
		fx_answer_free(&a);
		free(big);
	}
}

static struct fx_run vcli(const char *first, ...)
{
	va_list ap;
	struct fx_run r;

	va_start(ap, first);
	r = fx_vcli(srv.url, tok_p1, first, ap);
	va_end(ap);
	return r;
}

/* `vigie query`: one sparkline per series, the server's error with its
 * position, a scalar, --json. */
static void test_cli(void **state)
{
	struct fx_run r;

	(void)state;
	r = vcli("query", "sum(cpu.util, by=host)", "--start", "1794999600",
		 "--end", "1795001340", "--granularity", "60", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "h1 {\"host\":\"h1\"}"));
	assert_non_null(strstr(r.out, "h2 {\"host\":\"h2\"}"));
	assert_non_null(strstr(r.out, "max 30")); /* h2: vm-b alone */
	assert_null(strstr(r.out, "vm-c"));
	assert_non_null(strstr(r.out, "\xe2\x96")); /* a block character */
	fx_run_free(&r);
	r = vcli("query", "sum(cpu.util", NULL);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, "at 12:"));
	fx_run_free(&r);
	r = vcli("query", "2 * 21", NULL);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, "42\n");
	fx_run_free(&r);
	r = vcli("query", "--json", "count(cpu.util)", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "\"members\""));
	fx_run_free(&r);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_parse),
	};
	const struct CMUnitTest server[] = {
		cmocka_unit_test(test_select_arith),
		cmocka_unit_test(test_functions),
		cmocka_unit_test(test_across),
		cmocka_unit_test(test_scope),
		cmocka_unit_test(test_errors_post),
		cmocka_unit_test(test_cli),
	};
	int rc = cmocka_run_group_tests_name("expr_pure", pure, NULL, NULL);

	rc += cmocka_run_group_tests_name("expr_server", server, setup_server,
					  teardown_server);
	return rc;
}
