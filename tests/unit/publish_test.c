/*
 * publish_test.c — the checks of POST /v1/measures that need no server:
 * one point's parsing and validation (every refusal names its field) and
 * the per-project points-per-second bucket, driven by explicit times;
 * the sort and the dropping of a series' repeated times.
 * tests/integration/publish_test.sh runs the endpoint on the real
 * collector (ownership, kinds, series limit, alarms, kill -9).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "query/api/api_publish.h"
#include "vigie/batch.h"

#define NOW 1795000000000LL /* 2026-11-18T11:06:40Z */

static const struct vg_pub_limits lim = {
	.now_ms = NOW, .max_future_ms = 600000, .max_age_ms = 455LL * 86400000};

/* Parse one JSON point: the return code, *p and the message. The
 * point's strings are the document's: it lives until the next call. */
static json_t *g_doc;
static int parse(const char *text, struct vg_pub_point *p, char *err, size_t errlen)
{
	json_error_t je;

	json_decref(g_doc);
	g_doc = json_loads(text, 0, &je);
	assert_non_null(g_doc);
	err[0] = '\0';
	return vg_pub_parse_point(g_doc, &lim, p, err, errlen);
}

static void refused(const char *text, const char *needle)
{
	struct vg_pub_point p;
	char err[256];

	assert_int_equal(parse(text, &p, err, sizeof(err)), -EINVAL);
	if (!strstr(err, needle))
		fail_msg("'%s': message '%s' does not say '%s'", text, err, needle);
}

static void test_point_ok(void **state)
{
	struct vg_pub_point p;
	char err[256];

	(void)state;
	assert_int_equal(parse("{\"resource\":\"q1\",\"metric\":\"queue.depth\","
			       "\"unit\":\"1\",\"time\":\"2026-11-18T11:00:00Z\","
			       "\"value\":42.5}",
			       &p, err, sizeof(err)),
			 0);
	assert_string_equal(p.resource, "q1");
	assert_string_equal(p.metric, "queue.depth");
	assert_int_equal(p.kind, VG_KIND_GAUGE);
	assert_int_equal(p.rtype, 0);
	assert_int_equal(p.time_ms, 1794999600000LL);
	assert_true(p.value == 42.5);
	/* seconds as a number, a counter, a type; no time is now */
	assert_int_equal(parse("{\"resource\":\"q1\",\"metric\":\"n\",\"kind\":\"counter\","
			       "\"type\":\"custom\",\"time\":1794999600.5,\"value\":1}",
			       &p, err, sizeof(err)),
			 0);
	assert_int_equal(p.time_ms, 1794999600500LL);
	assert_int_equal(p.kind, VG_KIND_COUNTER);
	assert_int_equal(p.rtype, VG_RT_CUSTOM);
	assert_int_equal(parse("{\"resource\":\"vm\",\"metric\":\"n\",\"type\":\"instance\","
			       "\"value\":-3}",
			       &p, err, sizeof(err)),
			 0);
	assert_int_equal(p.time_ms, NOW);
	assert_int_equal(p.rtype, VG_RT_INSTANCE);
	/* relative times as elsewhere in the API */
	assert_int_equal(parse("{\"resource\":\"q\",\"metric\":\"n\",\"time\":\"-5m\","
			       "\"value\":1}",
			       &p, err, sizeof(err)),
			 0);
	assert_int_equal(p.time_ms, NOW - 300000);
	/* RFC 3339 fractions to the millisecond: two points under a second
	 * apart are two points, not a point and a duplicate */
	assert_int_equal(parse("{\"resource\":\"q\",\"metric\":\"n\","
			       "\"time\":\"2026-11-18T11:00:00.250Z\",\"value\":1}",
			       &p, err, sizeof(err)),
			 0);
	assert_int_equal(p.time_ms, 1794999600250LL);
	assert_int_equal(parse("{\"resource\":\"q\",\"metric\":\"n\","
			       "\"time\":\"2026-11-18T12:00:00.75+01:00\",\"value\":1}",
			       &p, err, sizeof(err)),
			 0);
	assert_int_equal(p.time_ms, 1794999600750LL);
}

static void test_point_refused(void **state)
{
	char longname[260];

	(void)state;
	refused("[]", "object");
	refused("{\"metric\":\"m\",\"value\":1}", "missing \"resource\"");
	refused("{\"resource\":\"r\",\"value\":1}", "missing \"metric\"");
	refused("{\"resource\":\"r\",\"metric\":\"m\"}", "\"value\"");
	refused("{\"resource\":7,\"metric\":\"m\",\"value\":1}", "\"resource\" must be a string");
	refused("{\"resource\":\"a\\u0007b\",\"metric\":\"m\",\"value\":1}", "bad resource id");
	refused("{\"resource\":\"r\",\"metric\":\"m\\u0085\",\"value\":1}", "bad metric name");
	/* a name that would display as another (U+202E, U+200B) */
	refused("{\"resource\":\"shop\\u202ebew\",\"metric\":\"m\",\"value\":1}", "bad resource id");
	refused("{\"resource\":\"r\",\"metric\":\"cpu\\u200b.util\",\"value\":1}", "bad metric name");
	memset(longname, 'x', 201);
	longname[201] = '\0';
	{
		char doc[400];
		snprintf(doc, sizeof(doc), "{\"resource\":\"%s\",\"metric\":\"m\",\"value\":1}", longname);
		refused(doc, "bad resource id");
	}
	refused("{\"resource\":\"r\",\"metric\":\"m\",\"unit\":\"0123456789abcdef0123456789abcdefX\",\"value\":1}", "bad unit");
	refused("{\"resource\":\"r\",\"metric\":\"m\",\"unit\":\"\",\"value\":1}", "bad unit");
	refused("{\"resource\":\"r\",\"metric\":\"m\",\"kind\":\"derive\",\"value\":1}", "bad kind");
	refused("{\"resource\":\"r\",\"metric\":\"m\",\"type\":\"disk\",\"value\":1}", "bad type");
	refused("{\"resource\":\"r\",\"metric\":\"m\",\"value\":\"NaN\"}", "finite");
	refused("{\"resource\":\"r\",\"metric\":\"m\",\"value\":null}", "finite");
	/* finite but past what the RRD files keep (value x seconds is an
	 * infinite sum, stored as unknown: a 200 read back as null) */
	refused("{\"resource\":\"r\",\"metric\":\"m\",\"value\":1e307}", "beyond");
	refused("{\"resource\":\"r\",\"metric\":\"m\",\"value\":-1.7976931348623157e308}",
		"beyond");
	refused("{\"resource\":\"r\",\"metric\":\"m\",\"kind\":\"counter\",\"value\":1.1e300}",
		"beyond");
	/* a counter is a total: a negative one is refused, zero and a
	 * negative gauge are taken */
	refused("{\"resource\":\"r\",\"metric\":\"m\",\"kind\":\"counter\",\"value\":-1}",
		"a counter's \"value\" must not be negative");
	refused("{\"resource\":\"r\",\"metric\":\"m\",\"kind\":\"counter\",\"value\":-1e-300}",
		"must not be negative");
	{
		struct vg_pub_point p;
		char err[256];
		assert_int_equal(parse("{\"resource\":\"r\",\"metric\":\"m\",\"kind\":\"counter\","
				       "\"value\":0}",
				       &p, err, sizeof(err)),
				 0);
		assert_int_equal(parse("{\"resource\":\"r\",\"metric\":\"m\",\"value\":-1}", &p, err,
				       sizeof(err)),
				 0);
	}
	refused("{\"resource\":\"r\",\"metric\":\"m\",\"value\":1,\"extra\":1}", "unknown field \"extra\"");
	refused("{\"resource\":\"r\",\"metric\":\"m\",\"time\":\"yesterday-ish\",\"value\":1}", "bad time");
	refused("{\"resource\":\"r\",\"metric\":\"m\",\"time\":true,\"value\":1}", "bad time");
	refused("{\"resource\":\"r\",\"metric\":\"m\",\"time\":1e300,\"value\":1}", "bad time");
	refused("{\"resource\":\"r\",\"metric\":\"m\",\"time\":10,\"value\":1}", "1970-01-02");
	/* seconds are a JSON number (docs/api.md): as a string they were
	 * taken; a string is RFC 3339 or relative */
	refused("{\"resource\":\"r\",\"metric\":\"m\",\"time\":\"1794999600\",\"value\":1}",
		"\"time\" must be a number");
	refused("{\"resource\":\"r\",\"metric\":\"m\",\"time\":\"1794999600.5\",\"value\":1}",
		"(1794999600.5, not \"1794999600.5\")");
	{
		struct vg_pub_point p;
		char err[256];
		assert_int_equal(parse("{\"resource\":\"r\",\"metric\":\"m\","
				       "\"time\":1794999600,\"value\":1}",
				       &p, err, sizeof(err)),
				 0);
		assert_int_equal(p.time_ms, 1794999600000LL);
		assert_int_equal(parse("{\"resource\":\"r\",\"metric\":\"m\","
				       "\"time\":\"2026-11-18\",\"value\":1}",
				       &p, err, sizeof(err)),
				 0);
		assert_int_equal(p.time_ms, 1794960000000LL);
	}
	/* max_future: 10 min ahead is taken, a second more is not */
	{
		struct vg_pub_point p;
		char err[256], doc[200];
		snprintf(doc, sizeof(doc), "{\"resource\":\"r\",\"metric\":\"m\",\"time\":%lld,\"value\":1}",
			 (long long)(NOW + 600000) / 1000);
		assert_int_equal(parse(doc, &p, err, sizeof(err)), 0);
		snprintf(doc, sizeof(doc), "{\"resource\":\"r\",\"metric\":\"m\",\"time\":%lld,\"value\":1}",
			 (long long)(NOW + 601000) / 1000);
		refused(doc, "max_future");
		snprintf(doc, sizeof(doc), "{\"resource\":\"r\",\"metric\":\"m\",\"time\":%lld,\"value\":1}",
			 (long long)(NOW - 456LL * 86400000) / 1000);
		refused(doc, "longest archive");
	}
}

static void test_bucket(void **state)
{
	struct vg_pub_state *s = vg_pub_state_new(1000, 0);
	uint32_t retry;

	(void)state;
	assert_non_null(s);
	/* a full second's worth at first, then empty */
	assert_int_equal(vg_pub_take(s, "p1", 600, 0, &retry), 0);
	assert_int_equal(vg_pub_take(s, "p1", 400, 0, &retry), 0);
	assert_int_equal(vg_pub_take(s, "p1", 1, 0, &retry), -EAGAIN);
	assert_int_equal(retry, 1);
	/* another project has its own bucket */
	assert_int_equal(vg_pub_take(s, "p2", 1000, 0, &retry), 0);
	/* refilled at the rate: 500 after half a second, not 501 */
	assert_int_equal(vg_pub_take(s, "p1", 501, 500, &retry), -EAGAIN);
	assert_int_equal(vg_pub_take(s, "p1", 500, 500, &retry), 0);
	/* never more than a second's worth, however long it waited */
	assert_int_equal(vg_pub_take(s, "p1", 1000, 100000, &retry), 0);
	assert_int_equal(vg_pub_take(s, "p1", 1, 100000, &retry), -EAGAIN);
	/* more than a second's worth can never pass */
	assert_int_equal(vg_pub_take(s, "p3", 1001, 0, &retry), -E2BIG);
	vg_pub_state_free(s);
	vg_pub_state_free(NULL);
}

/* A body of size n: head, then rep n times joined by sep, then tail. */
static char *body_of(const char *head, const char *rep, const char *sep, size_t n,
		     const char *tail, size_t *len)
{
	size_t hl = strlen(head), rl = strlen(rep), sl = strlen(sep), tl = strlen(tail);
	char *b = malloc(hl + n * (rl + sl) + tl + 1), *p = b;

	assert_non_null(b);
	memcpy(p, head, hl), p += hl;
	for (size_t i = 0; i < n; i++) {
		if (i)
			memcpy(p, sep, sl), p += sl;
		memcpy(p, rep, rl), p += rl;
	}
	memcpy(p, tail, tl), p += tl;
	*p = '\0';
	*len = (size_t)(p - b);
	return b;
}

/* The body's shape is bounded before jansson sees it (16 MiB of "{},"
 * was 5.6 million objects, 1.4 GB); the largest acceptable body passes;
 * brackets and commas inside strings, escaped quotes included, do not
 * count. tests/integration/publish_body_bound_test.sh measures the
 * collector's memory. */
static void test_body_shape(void **state)
{
	const char *point = "{\"resource\":\"r\",\"metric\":\"m\",\"value\":1,"
			    "\"time\":1,\"kind\":\"gauge\",\"unit\":\"B\","
			    "\"type\":\"custom\"}";
	const char *tricky = "{\"resource\":\"[{,\\\"[{,\",\"metric\":\"m\",\"value\":1}";
	char err[256];
	size_t len;
	char *b;

	(void)state;
	b = body_of("{\"project\":\"p\",\"measures\":[", point, ",", VG_PUB_MAX_POINTS,
		    "]}", &len);
	assert_int_equal(vg_pub_body_shape(b, len, err, sizeof(err)), 0);
	free(b);
	b = body_of("{\"measures\":[", tricky, ",", VG_PUB_MAX_POINTS, "]}", &len);
	assert_int_equal(vg_pub_body_shape(b, len, err, sizeof(err)), 0);
	free(b);
	/* one object more than the points */
	b = body_of("{\"measures\":[", "{}", ",", VG_PUB_MAX_POINTS + 1, "]}", &len);
	assert_int_equal(vg_pub_body_shape(b, len, err, sizeof(err)), -E2BIG);
	assert_non_null(strstr(err, "more than 200000 measures"));
	free(b);
	/* arrays count as objects do */
	b = body_of("{\"measures\":[", "[]", ",", VG_PUB_MAX_POINTS + 1, "]}", &len);
	assert_int_equal(vg_pub_body_shape(b, len, err, sizeof(err)), -E2BIG);
	free(b);
	/* values past what 200,000 points of seven fields hold */
	b = body_of("{\"measures\":[{\"x\":[", "1", ",",
		    (size_t)VG_PUB_POINT_FIELDS * VG_PUB_MAX_POINTS + 3, "]}]}", &len);
	assert_int_equal(vg_pub_body_shape(b, len, err, sizeof(err)), -E2BIG);
	free(b);
	/* no body, a malformed one: left to the parser */
	assert_int_equal(vg_pub_body_shape(NULL, 0, err, sizeof(err)), 0);
	assert_int_equal(vg_pub_body_shape("\"[[[", 4, err, sizeof(err)), 0);
}

/* Two points of one series at one time in a request: the first of the
 * request is kept, whatever order the array holds them in (the sort's
 * tie-break is the place in the request, not qsort's luck); other
 * series, resources and times stay. */
static void test_repeats_keep_first(void **state)
{
	/* as the handler leaves them before the sort: index = place */
	struct vg_pub_point p[] = {
		{.resource = "d1", .metric = "g", .time_ms = NOW, .value = 9, .index = 3},
		{.resource = "d1", .metric = "g", .time_ms = NOW - 60000, .value = 1, .index = 0},
		{.resource = "d2", .metric = "g", .time_ms = NOW, .value = 7, .index = 4},
		{.resource = "d1", .metric = "h", .time_ms = NOW, .value = 2, .index = 2},
		{.resource = "d1", .metric = "g", .time_ms = NOW, .value = 5, .index = 1},
		{.resource = "d1", .metric = "g", .time_ms = NOW, .value = 8, .index = 5},
	};
	size_t n;

	(void)state;
	vg_pub_sort(p, 6);
	n = vg_pub_drop_repeats(p, 6);
	assert_int_equal(n, 4);
	assert_string_equal(p[0].resource, "d1"); /* d1 g at NOW - 60 s */
	assert_true(p[0].value == 1);
	assert_string_equal(p[1].metric, "g"); /* d1 g at NOW: the request's first */
	assert_true(p[1].value == 5);
	assert_string_equal(p[2].metric, "h");
	assert_true(p[2].value == 2);
	assert_string_equal(p[3].resource, "d2");
	assert_true(p[3].value == 7);
	/* nothing repeated: nothing dropped */
	assert_int_equal(vg_pub_drop_repeats(p, n), n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_point_ok),
		cmocka_unit_test(test_point_refused),
		cmocka_unit_test(test_bucket),
		cmocka_unit_test(test_body_shape),
		cmocka_unit_test(test_repeats_keep_first),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	json_decref(g_doc);
	return rc;
}
