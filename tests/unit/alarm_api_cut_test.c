/*
 * alarm_api_cut_test.c — an alarm whose body quotes a long key or value
 * with a character across the byte where its error cuts it is a 400
 * naming the problem, over the real API (loopback port, real alarm
 * engine, an administrator's token).
 *
 * The errors quote part of what the client wrote ("selector.%.60s",
 * "unsupported action '%.64s'"); cut inside a character, the string was
 * not UTF-8, jansson's json_pack refused it, the error was lost and the
 * definition counted as out of memory: a 500. The cut is now between
 * characters (vg_utf8_prefix), and each case checks the field and the
 * message the client gets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "vigie/log.h"

#include "../support/alarm_api_fixture.h"

static struct {
	struct fx_alarm_api a;
	char auth[VG_TOKEN_LEN + 16];
} g;

static int setup(void **state)
{
	(void)state;
	if (fx_tmpdir(g.a.srv.dir, sizeof(g.a.srv.dir), "alarm-api-cut") ||
	    fx_alarm_api_start(&g.a))
		return -1;
	snprintf(g.auth, sizeof(g.auth), "Bearer %s", g.a.tok);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return fx_alarm_api_stop(&g.a);
}

/* n 'x' then "é" (U+00E9, two bytes): the character is at bytes n and
 * n + 1, so a cut at n + 1 bytes falls inside it. */
static char *x_then_e(char *buf, size_t len, int n)
{
	snprintf(buf, len, "%.*s\xc3\xa9tail", n,
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	return buf;
}

/* n 'x' alone: what a cut before the character keeps. */
static char *xs(char *buf, size_t len, int n)
{
	snprintf(buf, len, "%.*s", n, x_then_e((char[400]){0}, 400, n));
	return buf;
}

/* POST body (printf-style); assert a 400 whose error lists an entry
 * with this field whose message holds want. */
static void expect_400(const char *field, const char *want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void expect_400(const char *field, const char *want, const char *fmt, ...)
{
	char body[2048];
	struct fx_answer a;
	json_t *fields, *e;
	va_list ap;
	size_t i;
	int found = 0;

	va_start(ap, fmt);
	vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	fx_http(g.a.srv.url, "POST", "/v1/alarms", g.auth, body, &a);
	if (a.status != 400 || !a.json)
		fail_msg("POST %s: %ld %s", body, a.status, a.body ? a.body : "");
	fields = json_object_get(json_object_get(a.json, "error"), "fields");
	json_array_foreach(fields, i, e) {
		const char *f = json_string_value(json_object_get(e, "field"));
		const char *m = json_string_value(json_object_get(e, "message"));
		if (f && m && !strcmp(f, field) && strstr(m, want))
			found = 1;
	}
	if (!found)
		fail_msg("no error %s: ...%s... in %s", field, want, a.body);
	fx_answer_free(&a);
}

#define THRESHOLD                                                                       \
	"\"name\":\"cut\",\"metric\":\"cpu.util\",\"period\":60,\"comparison\":\"gt\"," \
	"\"threshold\":90"

/* POST BODY_FMT, its %s a key or value of N 'x' then "é" (x_then_e):
 * a 400 listing the field FIELD_FMT with a message holding WANT_FMT,
 * where a %s stands for the N 'x' alone (xs: what a cut before the
 * character keeps). */
static void expect_cut(const char *field_fmt, const char *want_fmt, int n, const char *body_fmt)
{
	char k[256], x[256], field[320], want[320];

	xs(x, sizeof(x), n);
	snprintf(field, sizeof(field), field_fmt, x);
	snprintf(want, sizeof(want), want_fmt, x);
	expect_400(field, want, body_fmt, x_then_e(k, sizeof(k), n));
}

/* Keys cut at 60 bytes into a field's name: selector, its metadata,
 * group, event, actions. */
static void test_long_keys_named(void **state)
{
	(void)state;
	expect_cut("selector.%s", "unknown field", 59,
		   "{" THRESHOLD ",\"selector\":{\"type\":\"instance\",\"%s\":\"v\"}}");
	expect_cut("selector.metadata.%s", "keys must be 1 to 64 bytes", 59,
		   "{" THRESHOLD ",\"selector\":{\"type\":\"instance\","
		   "\"metadata\":{\"%syyyyyyyyy\":\"v\"}}}");
	expect_cut("group.%s", "unknown field", 59,
		   "{" THRESHOLD ",\"selector\":{\"type\":\"instance\"},"
		   "\"group\":{\"%s\":1}}");
	expect_cut("event.%s", "unknown field", 59,
		   "{\"name\":\"cut\",\"type\":\"event\",\"event\":{\"kind\":\"crashed\","
		   "\"%s\":1}}");
	expect_cut("actions.%s", "unknown state", 59,
		   "{" THRESHOLD ",\"resource\":\"vm1\",\"actions\":{\"%s\":[\"log://\"]}}");
}

/* Values and keys quoted in a message: notify_group's fields (40
 * bytes), an action (64), an exec name (64), a time window's field (60)
 * and time zone (100). */
static void test_long_values_quoted(void **state)
{
	(void)state;
	expect_cut("notify_group", "unknown field '%s' (by,", 39,
		   "{" THRESHOLD ",\"resource\":\"vm1\",\"notify_group\":{\"%s\":1}}");
	expect_cut("actions.alarm[0]", "unsupported action 'ftp://%s' (use", 57,
		   "{" THRESHOLD ",\"resource\":\"vm1\",\"actions\":{\"alarm\":"
		   "[\"ftp://%s\"]}}");
	expect_cut("actions.alarm[0]", "no exec command named '%s' is configured", 63,
		   "{" THRESHOLD ",\"resource\":\"vm1\",\"actions\":{\"alarm\":"
		   "[\"exec://%s\"]}}");
	expect_cut("time_constraints", "[0]: unknown field '%s'", 59,
		   "{" THRESHOLD ",\"resource\":\"vm1\",\"time_constraints\":[{\"start\":"
		   "\"0 9 * * 1-5\",\"duration\":3600,\"%s\":1}]}");
	expect_cut("time_constraints", "[0].timezone: '%s' is not in the tz database", 99,
		   "{" THRESHOLD ",\"resource\":\"vm1\",\"time_constraints\":[{\"start\":"
		   "\"0 9 * * 1-5\",\"duration\":3600,\"timezone\":\"%s\"}]}");
}

/* The only error of a body, an unknown top-level field of 260 bytes:
 * the answer's message "invalid alarm: FIELD: unknown field" is cut at
 * 255 bytes, here inside the 'é' at bytes 254-255 (15 bytes of
 * "invalid alarm: ", then 239 'x'). The field is listed whole. */
static void test_long_message_cut(void **state)
{
	char k[300], x[300], body[1024];
	struct fx_answer a;
	const char *m;
	json_t *fields;

	(void)state;
	x_then_e(k, sizeof(k), 239);
	snprintf(body, sizeof(body), "{" THRESHOLD ",\"resource\":\"vm1\",\"%s\":1}", k);
	fx_http(g.a.srv.url, "POST", "/v1/alarms", g.auth, body, &a);
	if (a.status != 400 || !a.json)
		fail_msg("%ld %s", a.status, a.body ? a.body : "");
	fields = json_object_get(json_object_get(a.json, "error"), "fields");
	assert_int_equal(json_array_size(fields), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(fields, 0),
							      "field")),
			    k);
	m = json_string_value(json_object_get(json_object_get(a.json, "error"), "message"));
	assert_non_null(m);
	snprintf(body, sizeof(body), "invalid alarm: %s", xs(x, sizeof(x), 239));
	assert_string_equal(m, body);
	fx_answer_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_long_keys_named),
		cmocka_unit_test(test_long_values_quoted),
		cmocka_unit_test(test_long_message_cut),
	};
	vg_log_init("alarm_api_cut_test", VG_LOG_ERROR);
	return cmocka_run_group_tests(tests, setup, teardown);
}
