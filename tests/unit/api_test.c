/*
 * api_test.c — the vigie JSON API: the pure parameter checks of
 * api_measures.c / api.c, then the real server (vg_api_start on a loopback
 * port) over a temporary data dir filled through vg_registry_update and
 * vg_store_write_batch with hand-built batches (synthetic times, one per
 * minute over ten minutes), queried with libcurl: health, resources (list,
 * filters, pagination), one resource, measures whose values are computed
 * by hand from what was written, and every 4xx. Then the resource list,
 * written as text, on names with quotes, backslashes,
 * control characters, UTF-8 and bytes that are not UTF-8: byte for byte
 * the jansson answer, and fixed answers taken from the collector before.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "vigie/api.h"
#include "query/api/api_handlers.h"
#include "vigie/batch.h"
#include "vigie/catalog.h"
#include "vigie/clock.h"
#include "vigie/config.h"
#include "vigie/name.h"
#include "vigie/registry.h"
#include "vigie/store.h"
#include "vigie/token.h"

#include "../support/api_fixture.h"

/* ---- pure pieces ------------------------------------------------------------- */

static void test_parse_limit(void **state)
{
	int v = -1;

	(void)state;
	assert_int_equal(vg_api_parse_limit(NULL, 100, 1000, &v), 0);
	assert_int_equal(v, 100);
	assert_int_equal(vg_api_parse_limit("1", 100, 1000, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(vg_api_parse_limit("1000", 100, 1000, &v), 0);
	assert_int_equal(v, 1000);
	assert_int_equal(vg_api_parse_limit("0", 100, 1000, &v), -EINVAL);
	assert_int_equal(vg_api_parse_limit("1001", 100, 1000, &v), -EINVAL);
	assert_int_equal(vg_api_parse_limit("-5", 100, 1000, &v), -EINVAL);
	assert_int_equal(vg_api_parse_limit("+5", 100, 1000, &v), -EINVAL);
	assert_int_equal(vg_api_parse_limit("5x", 100, 1000, &v), -EINVAL);
	assert_int_equal(vg_api_parse_limit("", 100, 1000, &v), -EINVAL);
	assert_int_equal(vg_api_parse_limit("99999999999999999999", 100, 1000, &v),
			 -EINVAL);
}

/* The rule under limit, period and the graph's size: lo and hi are both
 * allowed, a rejected value leaves *out alone. */
static void test_parse_uint(void **state)
{
	unsigned v = 7;

	(void)state;
	assert_int_equal(vg_api_parse_uint(NULL, 400, 100, 4000, &v), 0);
	assert_int_equal(v, 400);
	assert_int_equal(vg_api_parse_uint("100", 400, 100, 4000, &v), 0);
	assert_int_equal(v, 100);
	assert_int_equal(vg_api_parse_uint("4000", 400, 100, 4000, &v), 0);
	assert_int_equal(v, 4000);
	v = 7;
	assert_int_equal(vg_api_parse_uint("99", 400, 100, 4000, &v), -EINVAL);
	assert_int_equal(vg_api_parse_uint("4001", 400, 100, 4000, &v), -EINVAL);
	assert_int_equal(vg_api_parse_uint(" 500", 400, 100, 4000, &v), -EINVAL);
	assert_int_equal(vg_api_parse_uint("500 ", 400, 100, 4000, &v), -EINVAL);
	assert_int_equal(vg_api_parse_uint("18446744073709551616", 400, 100, 4000, &v),
			 -EINVAL);
	assert_int_equal(v, 7);
}

static void test_parse_granularity(void **state)
{
	uint32_t g = 7;

	(void)state;
	assert_int_equal(vg_api_parse_granularity(NULL, &g), 0);
	assert_int_equal(g, 0);
	assert_int_equal(vg_api_parse_granularity("auto", &g), 0);
	assert_int_equal(g, 0);
	assert_int_equal(vg_api_parse_granularity("60", &g), 0);
	assert_int_equal(g, 60);
	assert_int_equal(vg_api_parse_granularity("300", &g), 0);
	assert_int_equal(g, 300);
	assert_int_equal(vg_api_parse_granularity("3600", &g), 0);
	assert_int_equal(g, 3600);
	assert_int_equal(vg_api_parse_granularity("61", &g), -EINVAL);
	assert_int_equal(vg_api_parse_granularity("060", &g), -EINVAL);
	assert_int_equal(vg_api_parse_granularity("1m", &g), -EINVAL);
	assert_int_equal(vg_api_parse_granularity("", &g), -EINVAL);
}

static void test_parse_aggregation(void **state)
{
	int cf = -1;
	const char *name = NULL;

	(void)state;
	assert_int_equal(vg_api_parse_aggregation(NULL, &cf, &name), 0);
	assert_int_equal(cf, VG_CF_AVERAGE);
	assert_string_equal(name, "mean");
	assert_int_equal(vg_api_parse_aggregation("average", &cf, &name), 0);
	assert_string_equal(name, "mean");
	assert_int_equal(vg_api_parse_aggregation("min", &cf, &name), 0);
	assert_int_equal(cf, VG_CF_MIN);
	assert_int_equal(vg_api_parse_aggregation("max", &cf, &name), 0);
	assert_int_equal(cf, VG_CF_MAX);
	assert_string_equal(name, "max");
	assert_int_equal(vg_api_parse_aggregation("median", &cf, &name), -EINVAL);
	assert_int_equal(vg_api_parse_aggregation("MAX", &cf, &name), -EINVAL);
}

static void test_parse_window(void **state)
{
	const int64_t now = 1795000000000LL;
	int64_t s, e;
	char err[256];

	(void)state;
	assert_int_equal(vg_api_parse_window(NULL, NULL, now, &s, &e, err,
					     sizeof(err)),
			 0);
	assert_true(s == now - 3600000 && e == now);
	assert_int_equal(vg_api_parse_window("-3h", "now", now, &s, &e, err,
					     sizeof(err)),
			 0);
	assert_true(s == now - 3 * 3600000 && e == now);
	assert_int_equal(vg_api_parse_window("2026-11-18T11:00:00Z", "1794999700",
					     now, &s, &e, err, sizeof(err)),
			 0);
	assert_true(s == 1794999600000LL && e == 1794999700000LL);
	/* start defaults to an hour before end, not before now */
	assert_int_equal(vg_api_parse_window(NULL, "-1d", now, &s, &e, err,
					     sizeof(err)),
			 0);
	assert_true(e == now - 86400000 && s == e - 3600000);
	assert_int_equal(vg_api_parse_window("1794999600", "1794999600", now, &s,
					     &e, err, sizeof(err)),
			 0);
	assert_true(s == e);

	assert_int_equal(vg_api_parse_window("yesterday", NULL, now, &s, &e, err,
					     sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "bad start 'yesterday'"));
	assert_int_equal(vg_api_parse_window(NULL, "2026-13-01", now, &s, &e,
					     err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "bad end"));
	/* an unencoded '+' arrives as a space: the message says what to do */
	assert_int_equal(vg_api_parse_window("2026-11-18T11:00:00 01:00", NULL,
					     now, &s, &e, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "%2B"));
	assert_int_equal(vg_api_parse_window("-1h", "-2h", now, &s, &e, err,
					     sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "is after end"));
}

static void test_pick_granularity(void **state)
{
	const int64_t t = 1794999600000LL;
	uint32_t g;
	size_t n;

	(void)state;
	assert_int_equal(vg_api_points_in(t, t + 600000, 60), 11);
	assert_int_equal(vg_api_points_in(t, t, 60), 1);
	assert_int_equal(vg_api_points_in(t + 1000, t + 59000, 60), 1);
	assert_int_equal(vg_api_points_in(t, t + 86400000, 300), 289);
	assert_int_equal(vg_api_points_in(t + 1, t, 60), 0);

	/* explicit: kept when within the limit */
	assert_int_equal(vg_api_pick_granularity(t, t + 86400000, 60, 10000, &g,
						 &n),
			 0);
	assert_int_equal(g, 60);
	assert_int_equal(n, 1441);
	/* explicit beyond: -E2BIG with the count */
	assert_int_equal(vg_api_pick_granularity(t, t + 30LL * 86400000, 60,
						 10000, &g, &n),
			 -E2BIG);
	assert_int_equal(n, 43201);
	/* auto: the finest that fits */
	assert_int_equal(vg_api_pick_granularity(t, t + 86400000, 0, 10000, &g,
						 &n),
			 0);
	assert_int_equal(g, 60);
	assert_int_equal(vg_api_pick_granularity(t, t + 30LL * 86400000, 0,
						 10000, &g, &n),
			 0);
	assert_int_equal(g, 300);
	assert_int_equal(n, 8641);
	assert_int_equal(vg_api_pick_granularity(t, t + 100LL * 86400000, 0,
						 10000, &g, &n),
			 0);
	assert_int_equal(g, 3600);
	assert_int_equal(vg_api_pick_granularity(t, t + 800LL * 86400000, 0,
						 10000, &g, &n),
			 -E2BIG);
	assert_int_equal(g, 3600);
	assert_int_equal(n, 19201);
}

static void test_reply_errno(void **state)
{
	struct vg_http_resp r = {0};

	(void)state;
	vg_api_reply_errno(&r, -ENOENT, "resource 'x'");
	assert_int_equal(r.status, 404);
	assert_non_null(strstr(r.body, "no resource 'x'"));
	vg_api_reply_errno(&r, -EINVAL, "x");
	assert_int_equal(r.status, 400);
	vg_api_reply_errno(&r, -EAGAIN, "x");
	assert_int_equal(r.status, 503);
	/* the registry of an API thread opened while the state database
	 * does not answer: retry, as for any other state read then */
	vg_api_reply_errno(&r, -ENOTCONN, "resources");
	assert_int_equal(r.status, 503);
	assert_non_null(strstr(r.body, "the state database does not answer"));
	vg_api_reply_errno(&r, -EIO, "x");
	assert_int_equal(r.status, 500);
	vg_http_resp_release(&r);
}

/* ---- the real server ---------------------------------------------------------- */

#define T0 1794999600LL /* 2026-11-18T11:00:00Z, a multiple of 3600 */
#define NPOLLS 11       /* T0, T0+60 ... T0+600 */

static struct fx_api srv;
static char admin_auth[VG_TOKEN_LEN + 16]; /* "Bearer ..." */

/* What was written, so the checks can compute expectations. */
static double mem_at(int k)
{
	return 1000.0 * (k + 1);
} /* gauge */
static double cpu_at(int k)
{
	return 5000.0 + 30.0 * k;
} /* counter */
static double rd_at(int k)
{
	return 6000.0 * k;
} /* counter */

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

		r = vg_batch_resource(b, VG_RT_INSTANCE, "inst-1", "vm-one", NULL, t);
		assert_non_null(r);
		vg_batch_identity(b, "p1", "u1", "m1.small");
		vg_batch_attr(b, "az", "zone-a");
		vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, cpu_at(k));
		vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, mem_at(k));

		vg_batch_resource(b, VG_RT_DISK, "inst-1-vda", "vda", "inst-1", t);
		vg_batch_identity(b, "p1", "u1", NULL);
		vg_batch_sample(b, "disk.read.bytes", VG_KIND_COUNTER, rd_at(k));

		r = vg_batch_resource(b, VG_RT_INSTANCE, "inst-2", "vm-two", NULL, t);
		vg_batch_identity(b, "p2", "u2", "m1.large");
		vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, 10.0 * k);
		if (k == NPOLLS - 1)
			r->state = VG_RSTATE_ENDED;

		vg_batch_resource(b, VG_RT_HOST, "h1", "h1", NULL, t);
		vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 5e9);

		/* an id with a slash: must survive URL encoding and paths */
		vg_batch_resource(b, VG_RT_INSTANCE, "a/b", "slashy", NULL, t);
		vg_batch_identity(b, "p1", NULL, NULL);
		vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 7.0);

		assert_int_equal(fx_data_write(&d, b), 0);
	}
	fx_data_done(&d);
	return 0;
}

static int setup_server(void **state)
{
	/* test_concurrent runs one token's requests on every worker at once:
	 * the per-project cap at the workers lets it (the cap's own test is
	 * http_test's test_tenant_cap) */
	struct vg_api_options o = {.threads = 3, .max_per_project = 3};
	char tok[VG_TOKEN_LEN + 1];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (fx_tmpdir(srv.dir, sizeof(srv.dir), "api-test") || write_data())
		return -1;
	/* every route but /v1/health needs a token */
	if (fx_token(srv.dir, NULL, "api_test", tok))
		return -1;
	snprintf(admin_auth, sizeof(admin_auth), "Bearer %s", tok);
	return fx_api_start(&srv, &o);
}

static int teardown_server(void **state)
{
	(void)state;
	fx_api_stop(&srv);
	curl_global_cleanup();
	return 0;
}

/* One request as the administrator; the answer must be JSON. */
static long call(const char *method, const char *path, const char *body,
		 struct fx_answer *a)
{
	if (fx_http(srv.url, method, path, admin_auth, body, a) < 0)
		fail_msg("%s %s: no answer", method, path);
	if (!a->json)
		a->json = json_loadb(a->body ? a->body : "", a->len, 0, NULL);
	if (!a->json)
		fail_msg("%s %s: not JSON: %s", method, path, a->body);
	return a->status;
}

static long GET(const char *path, struct fx_answer *a)
{
	return call("GET", path, NULL, a);
}

/* The status must be `status` and the error message must contain `frag`. */
static void expect_error(const char *path, long status, const char *frag)
{
	struct fx_answer a;

	if (GET(path, &a) != status)
		fail_msg("GET %s: HTTP %ld, wanted %ld (%s)", path, a.status,
			 status, a.body);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(a.json, "error"), "code")),
			 status);
	if (frag && !strstr(fx_errmsg(&a), frag))
		fail_msg("GET %s: message '%s' lacks '%s'", path, fx_errmsg(&a), frag);
	fx_answer_free(&a);
}

static void test_health(void **state)
{
	struct fx_answer a;

	(void)state;
	/* public (load balancers): no token; the state database's state,
	 * not its error text */
	assert_int_equal(fx_http(srv.url, "GET", "/v1/health", NULL, NULL, &a), 200);
	if (!a.json)
		a.json = json_loadb(a.body ? a.body : "", a.len, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(a.json, "status")), "ok");
	assert_string_equal(json_string_value(json_object_get(a.json, "version")),
			    VG_VERSION);
	json_t *sd = json_object_get(a.json, "state_db");
	assert_string_equal(json_string_value(json_object_get(sd, "state")), "up");
	assert_null(json_object_get(sd, "error"));
	fx_answer_free(&a);
	/* an admin token sees the error text (empty while it is up) */
	assert_int_equal(GET("/v1/health", &a), 200);
	sd = json_object_get(a.json, "state_db");
	assert_string_equal(json_string_value(json_object_get(sd, "error")), "");
	fx_answer_free(&a);
}

static void test_resources_list(void **state)
{
	static const char *ids[] = {"a/b", "h1", "inst-1", "inst-1-vda", "inst-2"};
	struct fx_answer a;
	json_t *arr;

	(void)state;
	assert_int_equal(GET("/v1/resources", &a), 200);
	arr = json_object_get(a.json, "resources");
	assert_int_equal(json_array_size(arr), 5);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(json_string_value(json_object_get(
					    json_array_get(arr, i), "id")),
				    ids[i]);
	assert_true(json_is_null(json_object_get(a.json, "next")));
	json_t *i1 = json_array_get(arr, 2);
	assert_string_equal(json_string_value(json_object_get(i1, "project")), "p1");
	assert_string_equal(json_string_value(json_object_get(i1, "host")), "h1");
	assert_string_equal(json_string_value(json_object_get(i1, "type")), "instance");
	fx_answer_free(&a);

	/* filters */
	assert_int_equal(GET("/v1/resources?type=instance", &a), 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "resources")), 3);
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/resources?project=p2", &a), 200);
	arr = json_object_get(a.json, "resources");
	assert_int_equal(json_array_size(arr), 1);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(arr, 0), "id")),
			    "inst-2");
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/resources?type=instance&project=p1&host=h1", &a), 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "resources")), 2);
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/resources?state=ended", &a), 200);
	arr = json_object_get(a.json, "resources");
	assert_int_equal(json_array_size(arr), 1);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(arr, 0), "state")),
			    "ended");
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/resources?parent=inst-1", &a), 200);
	arr = json_object_get(a.json, "resources");
	assert_int_equal(json_array_size(arr), 1);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(arr, 0), "id")),
			    "inst-1-vda");
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/resources?name=vm-two", &a), 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "resources")), 1);
	fx_answer_free(&a);
	assert_int_equal(GET("/v1/resources?host=nowhere", &a), 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "resources")), 0);
	fx_answer_free(&a);
}

static void test_resources_pagination(void **state)
{
	char path[256], cursor[256] = "";
	int seen = 0, pages = 0;
	const char *last = "";
	char prev[256] = "";

	(void)state;
	do {
		struct fx_answer a;
		json_t *arr;
		const char *next;

		if (cursor[0])
			snprintf(path, sizeof(path),
				 "/v1/resources?limit=2&cursor=%s", cursor);
		else
			snprintf(path, sizeof(path), "/v1/resources?limit=2");
		assert_int_equal(GET(path, &a), 200);
		arr = json_object_get(a.json, "resources");
		assert_true(json_array_size(arr) <= 2);
		for (size_t i = 0; i < json_array_size(arr); i++) {
			last = json_string_value(json_object_get(
				json_array_get(arr, i), "id"));
			assert_true(strcmp(last, prev) > 0); /* ordered, no repeat */
			snprintf(prev, sizeof(prev), "%s", last);
			seen++;
		}
		next = json_string_value(json_object_get(a.json, "next"));
		if (next) {
			/* the cursor is the last id of the page, URL-encoded */
			assert_string_equal(next, prev);
			char *e = curl_easy_escape(NULL, next, 0);
			snprintf(cursor, sizeof(cursor), "%s", e);
			curl_free(e);
		} else {
			cursor[0] = '\0';
		}
		pages++;
		fx_answer_free(&a);
	} while (cursor[0] && pages < 10);
	assert_int_equal(seen, 5);
	assert_int_equal(pages, 3);
}

static void test_resource_get(void **state)
{
	struct fx_answer a;
	json_t *m;

	(void)state;
	assert_int_equal(GET("/v1/resources/inst-1", &a), 200);
	assert_string_equal(json_string_value(json_object_get(a.json, "id")), "inst-1");
	assert_string_equal(json_string_value(json_object_get(a.json, "name")), "vm-one");
	assert_string_equal(json_string_value(json_object_get(a.json, "flavor")),
			    "m1.small");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(a.json, "attributes"), "az")),
			    "zone-a");
	m = json_object_get(a.json, "metrics");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(m, "memory.used"), "archive_policy")),
			    "default");
	assert_int_equal(json_object_size(m), 2);
	assert_true(json_number_value(json_object_get(
			    json_object_get(m, "memory.used"), "last_value")) ==
		    mem_at(NPOLLS - 1));
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(m, "cpu.time"), "kind")),
			    "counter");
	fx_answer_free(&a);

	/* a URL-encoded id with a slash */
	assert_int_equal(GET("/v1/resources/a%2Fb", &a), 200);
	assert_string_equal(json_string_value(json_object_get(a.json, "id")), "a/b");
	fx_answer_free(&a);

	expect_error("/v1/resources/nope", 404, "no resource 'nope'");
	expect_error("/v1/resources/a/b", 404, "no such endpoint");
	expect_error("/v1/resources/inst-1?x=1", 400, "unknown parameter 'x'");
}

/* GET measures for inst-1's metric over [T0, T0+600] and return points. */
static json_t *measures(const char *metric, const char *extra,
			struct fx_answer *a)
{
	char path[512];

	snprintf(path, sizeof(path),
		 "/v1/measures?resource=inst-1&metric=%s&start=%lld&end=%lld%s",
		 metric, (long long)T0, (long long)T0 + 600, extra);
	if (GET(path, a) != 200)
		fail_msg("GET %s: HTTP %ld %s", path, a->status, a->body);
	return json_object_get(a->json, "points");
}

static int64_t point_time(json_t *p)
{
	int64_t t = -1;

	assert_int_equal(vg_time_parse(json_string_value(json_array_get(p, 0)),
				       0, &t),
			 0);
	return t / 1000;
}

static void test_measures_gauge(void **state)
{
	struct fx_answer a;
	json_t *pts;

	(void)state;
	pts = measures("memory.used", "&granularity=60", &a);
	assert_int_equal(json_integer_value(json_object_get(a.json, "granularity")), 60);
	/* the series' own archives and the rule that made them */
	assert_int_equal(json_array_size(json_object_get(a.json, "granularities")), 3);
	assert_int_equal(json_integer_value(json_array_get(
				 json_object_get(a.json, "granularities"), 0)),
			 60);
	assert_int_equal(json_integer_value(json_array_get(
				 json_object_get(a.json, "granularities"), 2)),
			 3600);
	assert_string_equal(json_string_value(json_object_get(a.json, "archive_policy")),
			    "default");
	assert_string_equal(json_string_value(json_object_get(a.json, "aggregation")),
			    "mean");
	assert_string_equal(json_string_value(json_object_get(a.json, "kind")), "gauge");
	assert_string_equal(json_string_value(json_object_get(a.json, "resource")),
			    "inst-1");
	/* The row named T0+60(k-1) covers (T0+60(k-1), T0+60k]: the gauge
	 * written at T0+60k. Ten rows, k = 1..10. */
	assert_int_equal(json_array_size(pts), NPOLLS - 1);
	for (int k = 1; k < NPOLLS; k++) {
		json_t *p = json_array_get(pts, (size_t)k - 1);
		assert_int_equal(point_time(p), T0 + 60 * (k - 1));
		assert_true(fabs(json_number_value(json_array_get(p, 1)) -
				 mem_at(k)) < 1e-9);
	}
	fx_answer_free(&a);

	/* auto over ten minutes is the 1-minute archive too */
	pts = measures("memory.used", "", &a);
	assert_int_equal(json_integer_value(json_object_get(a.json, "granularity")), 60);
	assert_int_equal(json_array_size(pts), NPOLLS - 1);
	fx_answer_free(&a);

	/* 5 minutes: mean/min/max of k = 1..5 and 6..10 */
	pts = measures("memory.used", "&granularity=300", &a);
	assert_int_equal(json_integer_value(json_object_get(a.json, "granularity")), 300);
	assert_int_equal(json_array_size(pts), 2);
	assert_int_equal(point_time(json_array_get(pts, 0)), T0);
	assert_int_equal(point_time(json_array_get(pts, 1)), T0 + 300);
	assert_true(fabs(json_number_value(json_array_get(json_array_get(pts, 0), 1)) -
			 (mem_at(1) + mem_at(2) + mem_at(3) + mem_at(4) + mem_at(5)) / 5) <
		    1e-6);
	assert_true(fabs(json_number_value(json_array_get(json_array_get(pts, 1), 1)) -
			 (mem_at(6) + mem_at(7) + mem_at(8) + mem_at(9) + mem_at(10)) / 5) <
		    1e-6);
	fx_answer_free(&a);
	pts = measures("memory.used", "&granularity=300&aggregation=min", &a);
	assert_string_equal(json_string_value(json_object_get(a.json, "aggregation")),
			    "min");
	assert_true(json_number_value(json_array_get(json_array_get(pts, 0), 1)) ==
		    mem_at(1));
	assert_true(json_number_value(json_array_get(json_array_get(pts, 1), 1)) ==
		    mem_at(6));
	fx_answer_free(&a);
	pts = measures("memory.used", "&granularity=300&aggregation=max", &a);
	assert_true(json_number_value(json_array_get(json_array_get(pts, 0), 1)) ==
		    mem_at(5));
	assert_true(json_number_value(json_array_get(json_array_get(pts, 1), 1)) ==
		    mem_at(10));
	fx_answer_free(&a);

	/* a sub-range: only the rows that overlap it */
	assert_int_equal(GET("/v1/measures?resource=inst-1&metric=memory.used"
			     "&start=1794999720&end=1794999839&granularity=60",
			     &a),
			 200);
	pts = json_object_get(a.json, "points");
	assert_int_equal(json_array_size(pts), 2);
	assert_int_equal(point_time(json_array_get(pts, 0)), T0 + 120);
	assert_true(json_number_value(json_array_get(json_array_get(pts, 0), 1)) ==
		    mem_at(3));
	fx_answer_free(&a);

	/* ISO times (with %2B for the offset) mean the same instants */
	assert_int_equal(GET("/v1/measures?resource=inst-1&metric=memory.used"
			     "&start=2026-11-18T12:02:00%2B01:00"
			     "&end=2026-11-18T11:03:59Z&granularity=60",
			     &a),
			 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "points")), 2);
	fx_answer_free(&a);
}

static void test_measures_counter(void **state)
{
	const struct vg_metric_def *def = vg_catalog_find(VG_RT_INSTANCE, "cpu.time");
	struct fx_answer a;
	json_t *pts;
	char unit[64] = "";

	(void)state;
	pts = measures("cpu.time", "&granularity=60", &a);
	assert_string_equal(json_string_value(json_object_get(a.json, "kind")),
			    "counter");
	if (def)
		vg_catalog_query_unit(def, unit, sizeof(unit));
	assert_string_equal(json_string_value(json_object_get(a.json, "unit")), unit);
	/* +30 s of CPU per 60 s: a rate of 0.5 in every row */
	assert_int_equal(json_array_size(pts), NPOLLS - 1);
	for (size_t i = 0; i < json_array_size(pts); i++)
		assert_true(fabs(json_number_value(json_array_get(
					 json_array_get(pts, i), 1)) -
				 0.5) < 1e-9);
	fx_answer_free(&a);

	/* the disk's counter: 6000 B per minute = 100 B/s */
	assert_int_equal(GET("/v1/measures?resource=inst-1-vda&metric=disk.read.bytes"
			     "&start=1794999600&end=1795000200&granularity=300",
			     &a),
			 200);
	pts = json_object_get(a.json, "points");
	assert_int_equal(json_array_size(pts), 2);
	for (size_t i = 0; i < 2; i++)
		assert_true(fabs(json_number_value(json_array_get(
					 json_array_get(pts, i), 1)) -
				 100.0) < 1e-9);
	fx_answer_free(&a);

	/* the resource with a slash in its id */
	assert_int_equal(GET("/v1/measures?resource=a%2Fb&metric=memory.used"
			     "&start=1794999600&end=1795000200",
			     &a),
			 200);
	pts = json_object_get(a.json, "points");
	assert_int_equal(json_array_size(pts), NPOLLS - 1);
	assert_true(json_number_value(json_array_get(json_array_get(pts, 0), 1)) == 7.0);
	fx_answer_free(&a);
}

static void test_errors(void **state)
{
	struct fx_answer a;

	(void)state;
	/* measures: every parameter check */
	expect_error("/v1/measures?metric=cpu.time", 400,
		     "missing parameter 'resource'");
	expect_error("/v1/measures?resource=inst-1", 400,
		     "missing parameter 'metric'");
	expect_error("/v1/measures?resource=&metric=cpu.time", 400,
		     "missing parameter 'resource'");
	expect_error("/v1/measures?resource=inst-1&metric=cpu.time&granularity=7",
		     400, "bad granularity '7' (one of: 60, 300, 3600, auto)");
	expect_error("/v1/measures?resource=inst-1&metric=cpu.time&aggregation=median",
		     400, "bad aggregation 'median'");
	expect_error("/v1/measures?resource=inst-1&metric=cpu.time&start=yesterday",
		     400, "bad start 'yesterday'");
	expect_error("/v1/measures?resource=inst-1&metric=cpu.time&end=2026-02-30T99",
		     400, "bad end");
	expect_error("/v1/measures?resource=inst-1&metric=cpu.time"
		     "&start=1795000200&end=1794999600",
		     400, "is after end");
	expect_error("/v1/measures?resource=inst-1&metric=cpu.time"
		     "&start=-30d&granularity=60",
		     400, "too many points: 43201");
	expect_error("/v1/measures?resource=inst-1&metric=cpu.time&start=-800d",
		     400, "limit is 10000");
	expect_error("/v1/measures?resource=inst-1&metric=cpu.time&bogus=1", 400,
		     "unknown parameter 'bogus'");
	expect_error("/v1/measures?resource=inst-1&metric=cpu.time&metric=x", 400,
		     "more than once");
	expect_error("/v1/measures?resource=ghost&metric=cpu.time", 404,
		     "no resource 'ghost'");
	expect_error("/v1/measures?resource=inst-1&metric=no.such", 404,
		     "has no metric 'no.such'");

	/* resources: filters */
	expect_error("/v1/resources?type=vm", 400, "bad type 'vm'");
	expect_error("/v1/resources?state=gone", 400, "bad state 'gone'");
	expect_error("/v1/resources?limit=0", 400, "bad limit");
	expect_error("/v1/resources?limit=1001", 400, "bad limit");
	expect_error("/v1/resources?limit=ten", 400, "bad limit");
	expect_error("/v1/resources?host=", 400, "is empty");

	/* routes, methods, bodies, URI length */
	expect_error("/v2/resources", 404, "no such endpoint");
	expect_error("/v1", 404, NULL); /* "/" is the web console: api_static_test.c */
	expect_error("/v1/health/x", 404, NULL);
	assert_int_equal(call("POST", "/v1/resources", NULL, &a), 405);
	assert_string_equal(a.allow, "GET, HEAD");
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(a.json, "error"), "code")),
			 405);
	fx_answer_free(&a);
	assert_int_equal(call("DELETE", "/v1/resources/inst-1", NULL, &a), 405);
	fx_answer_free(&a);
	assert_int_equal(call("GET", "/v1/resources", "{\"x\":1}", &a), 413);
	fx_answer_free(&a);

	char *path = malloc(VG_HTTP_MAX_URI + 64);
	strcpy(path, "/v1/resources?name=");
	memset(path + strlen(path), 'n', VG_HTTP_MAX_URI);
	path[VG_HTTP_MAX_URI + 19] = '\0';
	expect_error(path, 414, "longer than");
	free(path);
}

struct worker {
	int ok;
};

static void *worker(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 25; i++) {
		struct fx_answer a;
		const char *p = i % 2 ? "/v1/resources?type=instance"
				      : "/v1/measures?resource=inst-1&metric=memory.used"
					"&start=1794999600&end=1795000200";
		if (GET(p, &a) == 200)
			w->ok++;
		fx_answer_free(&a);
	}
	return NULL;
}

/* Several clients at once: each server thread uses its own registry. */
static void test_concurrent(void **state)
{
	pthread_t t[4];
	struct worker w[4] = {{0}};

	(void)state;
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, worker, &w[i]);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].ok, 25);
	}
}

/* GET /v1/resources?limit=1, ?limit=1&cursor=odd-1 and
 * ?limit=2&cursor=odd-2-%C3%A9 on write_odd's data, as the collector answered
 * them when jansson built the list. */
#define ODD_1                                                                                            \
	"{\"resources\":[{\"id\":\"odd-1\",\"type\":\"instance\",\"host\":\"h\\\"1\","                   \
	"\"name\":\"quote\\\"back\\\\slash/\",\"parent\":null,\"project\":\"p-\\\"1\\\"\","              \
	"\"user\":\"u\\\\1\",\"flavor\":\"f\303\251\",\"state\":\"active\","                             \
	"\"first_seen\":\"2026-11-18T11:00:00Z\",\"last_seen\":\"2026-11-18T11:01:00Z\","                \
	"\"ended_at\":null,\"attributes\":{\"az\":\"zone \\\"a\\\"\",\"note\":\"tab\\there\\nnl\","      \
	"\"\346\227\245\":\"\360\237\230\200\"},\"metrics\":{\"cpu.time\":{"                             \
	"\"unit\":\"s\",\"kind\":\"counter\",\"last_value\":123456789013.5,"                             \
	"\"last_time\":\"2026-11-18T11:01:00Z\"},\"cpu.util\":{\"unit\":\"%\","                          \
	"\"kind\":\"gauge\",\"last_value\":0.10000000000000001,\"last_time\":\"2026-11-18T11:01:00Z\"}," \
	"\"memory.used\":{\"unit\":\"B\",\"kind\":\"gauge\",\"last_value\":2.0,"                         \
	"\"last_time\":\"2026-11-18T11:01:00Z\"}}}],\"next\":\"odd-1\"}"
#define ODD_2                                                                                                  \
	"{\"resources\":[{\"id\":\"odd-2-\303\251\",\"type\":\"instance\",\"host\":\"h\\\"1\","                \
	"\"name\":\"ctl\\u0001\\u001B]0;x\\u0007\\u001B[31m\\b\\f\\r\177\","                                   \
	"\"parent\":null,\"project\":\"p1\",\"user\":null,\"flavor\":null,"                                    \
	"\"state\":\"ended\",\"first_seen\":\"2026-11-18T11:00:00Z\",\"last_seen\":\"2026-11-18T11:00:00Z\","  \
	"\"ended_at\":\"2026-11-18T11:01:00Z\",\"attributes\":{},\"metrics\":{"                                \
	"\"m\\\"x\\\\y\":{\"unit\":\"\",\"kind\":\"gauge\",\"last_value\":1e20,"                               \
	"\"last_time\":\"2026-11-18T11:01:00Z\"},\"nan.metric\":{\"unit\":\"\","                               \
	"\"kind\":\"gauge\",\"last_value\":null,\"last_time\":\"2026-11-18T11:01:00Z\"},"                      \
	"\"tiny\":{\"unit\":\"\",\"kind\":\"gauge\",\"last_value\":1.0000000000000001e-5,"                     \
	"\"last_time\":\"2026-11-18T11:01:00Z\"},\"\303\274.util\":{\"unit\":\"\","                            \
	"\"kind\":\"gauge\",\"last_value\":-3.2500000000000001e-7,\"last_time\":\"2026-11-18T11:01:00Z\"}}}]," \
	"\"next\":\"odd-2-\303\251\"}"
#define ODD_34                                                                                                       \
	"{\"resources\":[{\"id\":\"odd-3\",\"type\":\"disk\",\"host\":\"h\\\"1\","                                   \
	"\"parent\":\"odd-1\",\"project\":\"p1\",\"user\":null,\"flavor\":null,"                                     \
	"\"state\":\"active\",\"first_seen\":\"2026-11-18T11:00:00Z\",\"last_seen\":\"2026-11-18T11:01:00Z\","       \
	"\"ended_at\":null,\"attributes\":{\"K\":\"\\\\\",\"k\\u0001\":\"v\"},"                                      \
	"\"metrics\":{\"disk.read.bytes\":{\"unit\":\"B\",\"kind\":\"counter\","                                     \
	"\"last_value\":5000000000000000.0,\"last_time\":\"2026-11-18T11:01:00Z\"}}},"                               \
	"{\"id\":\"odd-4\",\"type\":\"host\",\"host\":\"h\\\"1\",\"name\":\"\346\227\245\346\234\254\350\252\236\"," \
	"\"parent\":null,\"project\":\"default\",\"user\":null,\"flavor\":null,"                                     \
	"\"state\":\"active\",\"first_seen\":\"2026-11-18T11:00:00Z\",\"last_seen\":\"2026-11-18T11:01:00Z\","       \
	"\"ended_at\":null,\"attributes\":{},\"metrics\":{}}],\"next\":null}"

/* ---- the list written as text ----------------------------------------------- */

/* Resources whose every string needs care: quotes, backslashes, control
 * characters (an agent's domain name may hold them), UTF-8, a name that is
 * not UTF-8 (jansson refused it: the member was left out), metrics whose
 * values jansson writes in each of its forms (2.0, 0.1's 17 digits, 1e20,
 * an exponent below 1e-4, NaN as null), an ended resource, attributes in
 * and out of the registry's sorted compact form. */
static int write_odd(void)
{
	struct fx_data d;

	if (fx_data_open(srv.dir, &d))
		return -1;
	srv.store = d.store;
	for (int k = 0; k < 2; k++) {
		int64_t t = (T0 + 60 * k) * 1000 + 250;
		struct vg_batch *b = vg_batch_new("h\"1", 1, (uint64_t)k + 1, t);
		struct vg_resource *r;

		vg_batch_resource(b, VG_RT_INSTANCE, "odd-1",
				  "quote\"back\\slash/", NULL, t);
		vg_batch_identity(b, "p-\"1\"", "u\\1", "f\xc3\xa9");
		vg_batch_attr(b, "az", "zone \"a\"");
		vg_batch_attr(b, "note", "tab\there\nnl");
		vg_batch_attr(b, "\xe6\x97\xa5", "\xf0\x9f\x98\x80");
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, k ? 0.1 : 0.5);
		vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 2.0);
		vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER,
				123456789012.5 + k);

		r = vg_batch_resource(b, VG_RT_INSTANCE, "odd-2-\xc3\xa9",
				      "ctl\x01\x1b]0;x\x07\x1b[31m\b\f\r\x7f",
				      NULL, t);
		vg_batch_identity(b, "p1", NULL, NULL);
		vg_batch_sample(b, "m\"x\\y", VG_KIND_GAUGE, 1e20);
		vg_batch_sample(b, "\xc3\xbc.util", VG_KIND_GAUGE, -3.25e-7);
		vg_batch_sample(b, "nan.metric", VG_KIND_GAUGE, NAN);
		vg_batch_sample(b, "tiny", VG_KIND_GAUGE, 1e-5);
		if (k == 1)
			r->state = VG_RSTATE_ENDED;

		vg_batch_resource(b, VG_RT_DISK, "odd-3", "bad\xff utf8", "odd-1",
				  t);
		vg_batch_identity(b, "p1", NULL, NULL);
		vg_batch_attr(b, "k\x01", "v");
		vg_batch_attr(b, "K", "\\");
		vg_batch_sample(b, "disk.read.bytes", VG_KIND_COUNTER, 5e15);

		vg_batch_resource(b, VG_RT_HOST, "odd-4",
				  "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", NULL, t);
		/* the registry only: the list reads nothing else */
		assert_int_equal(vg_registry_update(d.registry, b), 0);
		vg_batch_free(b);
	}
	fx_data_done(&d);
	return 0;
}

static int setup_odd(void **state)
{
	struct vg_api_options o = {.threads = 3};
	char tok[VG_TOKEN_LEN + 1];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (fx_tmpdir(srv.dir, sizeof(srv.dir), "api-list-test") || write_odd() ||
	    fx_token(srv.dir, NULL, "api_test", tok))
		return -1;
	snprintf(admin_auth, sizeof(admin_auth), "Bearer %s", tok);
	return fx_api_start(&srv, &o);
}

/* The page's body is what the handler wrote with jansson, byte for
 * byte: json_dumps (compact) of {"resources": vg_registry_list's jansson
 * array, "next": ...}. */
static void expect_as_jansson(const char *path,
			      const struct vg_resource_filter *f)
{
	struct vg_registry *reg;
	char err[256], next[VG_NAME_MAX * 3 + 1];
	struct fx_answer a;
	json_t *arr, *page;
	char *want;

	assert_int_equal(vg_registry_open(srv.dir, &reg, err, sizeof(err)), 0);
	assert_int_equal(vg_registry_list(reg, f, &arr, next, sizeof(next)), 0);
	vg_registry_close(reg);
	page = json_pack("{s:o,s:o}", "resources", arr, "next",
			 next[0] ? json_string(next) : json_null());
	want = json_dumps(page, JSON_COMPACT);
	json_decref(page);
	assert_non_null(want);
	assert_int_equal(GET(path, &a), 200);
	if (strcmp(a.body, want))
		fail_msg("GET %s:\n wrote   %s\n jansson %s", path, a.body, want);
	free(want);
	fx_answer_free(&a);
}

static void test_list_text_as_jansson(void **state)
{
	static const struct {
		const char *path;
		struct vg_resource_filter f;
	} cases[] = {
		{"/v1/resources", {.limit = 100}},
		{"/v1/resources?limit=1", {.limit = 1}},
		{"/v1/resources?limit=2&cursor=odd-1", {.after = "odd-1", .limit = 2}},
		{"/v1/resources?limit=1&cursor=odd-2-%C3%A9",
		 {.after = "odd-2-\xc3\xa9", .limit = 1}},
		{"/v1/resources?type=instance", {.type = "instance", .limit = 100}},
		{"/v1/resources?state=ended", {.state = "ended", .limit = 100}},
		{"/v1/resources?state=active&project=p1",
		 {.state = "active", .project = "p1", .limit = 100}},
		{"/v1/resources?parent=odd-1", {.parent = "odd-1", .limit = 100}},
		{"/v1/resources?host=h%221", {.host = "h\"1", .limit = 100}},
		{"/v1/resources?host=none", {.host = "none", .limit = 100}},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_as_jansson(cases[i].path, &cases[i].f);
}

/* Fixed answers, checked against the jansson-built collector with
 * jq -S (docs/benchmarks.md): a change in members, order, escaping or
 * number format shows here even if vg_registry_list changed with it. */
static void test_list_text_fixed(void **state)
{
	static const struct {
		const char *path, *body;
	} cases[] = {
		{"/v1/resources?limit=1", ODD_1},
		{"/v1/resources?limit=1&cursor=odd-1", ODD_2},
		{"/v1/resources?limit=2&cursor=odd-2-%C3%A9", ODD_34},
	};
	struct fx_answer a;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(GET(cases[i].path, &a), 200);
		if (strcmp(a.body, cases[i].body))
			fail_msg("GET %s:\n got  %s\n want %s", cases[i].path,
				 a.body, cases[i].body);
		fx_answer_free(&a);
	}
}

static void test_start_errors(void **state)
{
	/* the fixture's private data dir: a shared one such as /tmp may hold
	 * another user's tokens.db, and this test must not leave one there */
	struct vg_api_options o = {.listen = "127.0.0.1", .data_dir = srv.dir, .threads = 1};
	struct vg_api *a = NULL;
	char err[256], addr[64];

	(void)state;
	assert_int_equal(vg_api_start(&o, &a, err, sizeof(err)), -EINVAL);
	assert_null(a);
	assert_non_null(strstr(err, "missing port"));
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", srv.port);
	o.listen = addr;
	assert_int_equal(vg_api_start(&o, &a, err, sizeof(err)), -EADDRINUSE);
	assert_null(a);
	o.data_dir = NULL;
	assert_int_equal(vg_api_start(&o, &a, err, sizeof(err)), -EINVAL);
	vg_api_stop(NULL);
}

/* The data directory's own file system in /metrics: size as statvfs says. */
static void test_metrics_datadir(void **state)
{
	struct fx_answer a = {0};
	struct statvfs sv;
	char want[128];

	(void)state;
	assert_int_equal(statvfs(srv.dir, &sv), 0);
	if (fx_http(srv.url, "GET", "/metrics", admin_auth, NULL, &a) != 200)
		fail_msg("GET /metrics: HTTP %ld", a.status);
	assert_non_null(a.body);
	snprintf(want, sizeof(want), "\nvigie_collector_datadir_size_bytes %.15g\n",
		 (double)sv.f_blocks * (double)sv.f_frsize);
	if (!strstr(a.body, want))
		fail_msg("/metrics lacks %s in:\n%.2000s", want + 1, a.body);
	assert_non_null(strstr(a.body, "\nvigie_collector_datadir_free_bytes "));
	assert_non_null(strstr(a.body, "# TYPE vigie_collector_datadir_size_bytes gauge\n"));
	fx_answer_free(&a);
}

/* The host type directory away (a data volume not mounted): h1's values
 * wait, and /v1/health says "degraded" with the reason and how many
 * series wait, no path for a request without a token; once it is back
 * and the values are written, "ok" again. Fails without the fix: the
 * answer stayed {"status":"ok"} while values piled up (issue 14). */
static void test_health_dir_waiting(void **state)
{
	char path[PATH_MAX], away[PATH_MAX + 8];
	struct fx_answer a = {0};
	struct vg_store_stats st;
	struct vg_batch *b;
	int64_t t = (T0 + 60 * NPOLLS - 30) * 1000; /* before test_health_degraded's */

	(void)state;
	assert_int_equal(vg_store_flush(srv.store), 0);
	assert_int_equal(vg_store_path(srv.store, VG_RT_HOST, "h1", "memory.used", path,
				       sizeof(path)),
			 0);
	*strrchr(path, '/') = '\0';
	*strrchr(path, '/') = '\0'; /* rrd/host */
	snprintf(away, sizeof(away), "%s.away", path);
	assert_int_equal(rename(path, away), 0);
	b = vg_batch_new("h1", 1, NPOLLS + 1, t);
	vg_batch_resource(b, VG_RT_HOST, "h1", "h1", NULL, t);
	vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 5e9);
	assert_int_equal(vg_store_write_batch(srv.store, b), 0);
	vg_batch_free(b);
	(void)vg_store_flush(srv.store);

	assert_int_equal(fx_http(srv.url, "GET", "/v1/health", NULL, NULL, &a), 200);
	if (!a.json)
		a.json = json_loadb(a.body ? a.body : "", a.len, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(a.json, "status")), "degraded");
	const char *why = json_string_value(json_object_get(a.json, "reason"));
	if (!why || !strstr(why, "values wait: series directories are missing"))
		fail_msg("reason: %s", why ? why : "(none)");
	assert_int_equal(json_integer_value(json_object_get(a.json, "series_dir_waiting")), 1);
	assert_null(strstr(a.body, srv.dir)); /* no path without a token */
	assert_null(strstr(a.body, "host/h1"));
	fx_answer_free(&a);

	assert_int_equal(rename(away, path), 0);
	for (int k = 0; k < 1200; k++) { /* the storage thread's next try */
		vg_store_get_stats(srv.store, &st);
		if (!st.values_pending)
			break;
		usleep(50 * 1000);
	}
	assert_int_equal(vg_store_flush(srv.store), 0);
	assert_int_equal(fx_http(srv.url, "GET", "/v1/health", NULL, NULL, &a), 200);
	if (!a.json)
		a.json = json_loadb(a.body ? a.body : "", a.len, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(a.json, "status")), "ok");
	assert_null(json_object_get(a.json, "series_dir_waiting"));
	fx_answer_free(&a);

	if (fx_http(srv.url, "GET", "/metrics", admin_auth, NULL, &a) != 200)
		fail_msg("GET /metrics: HTTP %ld", a.status);
	if (!strstr(a.body, "\nvigie_store_series_dir_waiting 0\n") ||
	    !strstr(a.body, "\nvigie_store_series_dir_missing_total 1\n") ||
	    !strstr(a.body, "\nvigie_store_cache_refusing 0\n"))
		fail_msg("/metrics lacks the directory gauges:\n%.3000s", a.body);
	fx_answer_free(&a);
}

/* A store of its own with [storage] cache_values = 2, the host type
 * directory away: once the cache is full every batch is refused (RETRY),
 * and /v1/health says so, with the directories as the cause,
 * "cache_full":true. Fails without the fix: "ok" (issue 14). */
static void test_health_cache_full(void **state)
{
	struct fx_api x = {0};
	struct fx_answer a = {0};
	struct vg_config cfg;
	char err[256], path[PATH_MAX], away[PATH_MAX + 8];
	int rc = 0, m;

	(void)state;
	assert_int_equal(fx_tmpdir(x.dir, sizeof(x.dir), "api-full"), 0);
	vg_config_defaults(&cfg);
	cfg.storage_cache_values = 2;
	if (vg_store_open(x.dir, &cfg, &x.store, err, sizeof(err)))
		fail_msg("open: %s", err);
	for (m = 0; m < 20 && !rc; m++) {
		int64_t t = (T0 + 60 * m) * 1000;
		struct vg_batch *b = vg_batch_new("h9", 1, (uint64_t)m + 1, t);
		vg_batch_resource(b, VG_RT_HOST, "h9", "h9", NULL, t);
		vg_batch_sample(b, "load.1", VG_KIND_GAUGE, m);
		rc = vg_store_write_batch(x.store, b);
		vg_batch_free(b);
		(void)vg_store_flush(x.store);
		if (!m) { /* its file made: the type directory away */
			assert_int_equal(vg_store_path(x.store, VG_RT_HOST, "h9", "load.1", path,
						       sizeof(path)),
					 0);
			*strrchr(path, '/') = '\0';
			*strrchr(path, '/') = '\0';
			snprintf(away, sizeof(away), "%s.away", path);
			assert_int_equal(rename(path, away), 0);
		}
	}
	assert_int_equal(rc, -EAGAIN);
	assert_int_equal(fx_api_start(&x, NULL), 0);
	assert_int_equal(fx_http(x.url, "GET", "/v1/health", NULL, NULL, &a), 200);
	if (!a.json)
		a.json = json_loadb(a.body ? a.body : "", a.len, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(a.json, "status")), "degraded");
	const char *why = json_string_value(json_object_get(a.json, "reason"));
	if (!why || !strstr(why, "series directories are missing") ||
	    !strstr(why, "the write-behind cache is full: batches are answered RETRY"))
		fail_msg("reason: %s", why ? why : "(none)");
	assert_true(json_is_true(json_object_get(a.json, "cache_full")));
	assert_null(strstr(a.body, x.dir));
	fx_answer_free(&a);
	assert_int_equal(rename(away, path), 0);
	fx_api_stop(&x);
}

/* An acknowledged value that cannot be written (its file replaced by one
 * librrd cannot read): /v1/health says "degraded" and /metrics counts it
 * under its reason. Runs last: it damages the host's file. */
static void test_health_degraded(void **state)
{
	char path[PATH_MAX];
	struct fx_answer a = {0};
	struct vg_batch *b;
	FILE *fp;
	int64_t t = (T0 + 60 * NPOLLS) * 1000;

	(void)state;
	assert_int_equal(vg_store_flush(srv.store), 0); /* what came before is in */
	b = vg_batch_new("h1", 1, NPOLLS + 1, t);
	vg_batch_resource(b, VG_RT_HOST, "h1", "h1", NULL, t);
	vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 6e9);
	assert_int_equal(vg_store_write_batch(srv.store, b), 0);
	vg_batch_free(b);
	assert_int_equal(vg_store_path(srv.store, VG_RT_HOST, "h1", "memory.used", path,
				       sizeof(path)),
			 0);
	assert_non_null(fp = fopen(path, "w"));
	fputs("garbage", fp);
	fclose(fp);
	vg_store_flush(srv.store);

	assert_int_equal(GET("/v1/health", &a), 200);
	assert_string_equal(json_string_value(json_object_get(a.json, "status")),
			    "degraded");
	assert_int_equal(json_integer_value(json_object_get(a.json,
							    "store_write_errors")),
			 1);
	fx_answer_free(&a);

	if (fx_http(srv.url, "GET", "/metrics", admin_auth, NULL, &a) != 200)
		fail_msg("GET /metrics: HTTP %ld", a.status);
	assert_non_null(a.body);
	if (!strstr(a.body, "vigie_store_write_errors_total{reason=\"file\"} 1\n") ||
	    !strstr(a.body, "vigie_store_write_errors_total{reason=\"time\"} 0\n"))
		fail_msg("/metrics lacks the per-reason write errors:\n%s", a.body);
	fx_answer_free(&a);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_parse_limit),
		cmocka_unit_test(test_parse_uint),
		cmocka_unit_test(test_parse_granularity),
		cmocka_unit_test(test_parse_aggregation),
		cmocka_unit_test(test_parse_window),
		cmocka_unit_test(test_pick_granularity),
		cmocka_unit_test(test_reply_errno),
	};
	const struct CMUnitTest server[] = {
		cmocka_unit_test(test_health),
		cmocka_unit_test(test_resources_list),
		cmocka_unit_test(test_resources_pagination),
		cmocka_unit_test(test_resource_get),
		cmocka_unit_test(test_measures_gauge),
		cmocka_unit_test(test_measures_counter),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_start_errors),
		cmocka_unit_test(test_metrics_datadir),
		cmocka_unit_test(test_health_dir_waiting),
		cmocka_unit_test(test_health_cache_full),
		cmocka_unit_test(test_health_degraded),
	};
	const struct CMUnitTest list_text[] = {
		cmocka_unit_test(test_list_text_as_jansson),
		cmocka_unit_test(test_list_text_fixed),
	};
	int rc = cmocka_run_group_tests_name("api_pure", pure, NULL, NULL);

	rc += cmocka_run_group_tests_name("api_server", server, setup_server,
					  teardown_server);
	rc += cmocka_run_group_tests_name("api_list_text", list_text, setup_odd,
					  teardown_server);
	return rc;
}
