/*
 * cli_alarms_test.c — `vigie alarms` run in-process (vg_cli_run) against
 * the real alarm API: the alarm engine (temporary alarms.db) and its SSE
 * hub behind the /v1/alarms routes of query/api/api_alarms.c, served by the
 * API (vg_api_start, an admin token) on a loopback port. Checks the printed tables and
 * texts, --json, the one-line field errors of a refused definition, every
 * exit code, and `watch` printing the transition a batch causes.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "query/cli/cli.h"
#include "vigie/alarm_engine.h"
#include "vigie/alarm_stream.h"
#include "vigie/api.h"
#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/log.h"
#include "vigie/token.h"

#include "../support/alarm_api_fixture.h"

#define MIN 60000LL

static struct {
	struct fx_alarm_api a; /* engine, hub, API, token */
	uint64_t seq;
} g;

static int setup(void **state)
{
	(void)state;
	if (fx_tmpdir(g.a.srv.dir, sizeof(g.a.srv.dir), "cli-alarms"))
		return -1;
	return fx_alarm_api_start(&g.a);
}

static int teardown(void **state)
{
	(void)state;
	return fx_alarm_api_stop(&g.a);
}

/* `vigie --api <test server> ARGS...` (NULL-terminated). */
static struct fx_run vrun(const char *first, ...)
{
	va_list ap;
	struct fx_run r;

	va_start(ap, first);
	r = fx_vcli(g.a.srv.url, g.a.tok, first, ap);
	va_end(ap);
	return r;
}

/* `vigie ... ARGS...` (NULL-terminated) exits RC, NEEDLE in its stderr. */
static void fails_saying(int rc, const char *needle, const char *first, ...)
{
	va_list ap;
	struct fx_run r;

	va_start(ap, first);
	r = fx_vcli(g.a.srv.url, g.a.tok, first, ap);
	va_end(ap);
	assert_int_equal(r.rc, rc);
	assert_non_null(strstr(r.err, needle));
	fx_run_free(&r);
}

static int lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static char *write_file(const char *name, const char *text)
{
	char *path = fx_write_file(g.a.srv.dir, name, text);

	assert_non_null(path);
	return path;
}

/* One batch: resource vm1 of project default, one cpu.util sample. */
static void sample(int64_t t, double v)
{
	struct vg_batch *b = vg_batch_new("h1", 1, ++g.seq, t);

	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, "vm1", "vm1", NULL, t));
	vg_batch_identity(b, "default", NULL, "m1.small");
	vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, v);
	assert_int_equal(vg_alarm_engine_batch(g.a.e, b), 0);
	vg_batch_free(b);
}

static const char def_cpu[] =
	"{\"name\": \"cpu-high\", \"severity\": \"critical\",\n"
	" \"metric\": \"cpu.util\", \"resource\": \"vm1\", \"period\": 60,\n"
	" \"evaluation_periods\": 1, \"comparison\": \"gt\", \"threshold\": 90,\n"
	" \"description\": \"vm1 busy\", \"actions\": {\"alarm\": [\"log://\"]}}\n";

/* ---- create, list, show ---------------------------------------------------- */

static void test_create_list_show(void **state)
{
	struct fx_run r;

	(void)state;
	r = vrun("alarms", "create", "--file", write_file("cpu.json", def_cpu), NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.out, "created alarm cpu-high (id "));
	assert_non_null(strstr(r.out, ") in project default\n"));
	assert_string_equal(r.err, "");
	fx_run_free(&r);

	r = vrun("alarms", "create", "--file",
		 write_file("comp.json", "{\"name\":\"web-down\",\"type\":\"composite\","
					 "\"rule\":\"ALARM(cpu-high)\"}"),
		 NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	fx_run_free(&r);

	r = vrun("alarms", "list", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_string_equal(r.out,
			    "NAME      PROJECT  RESOURCE  STATE              SEVERITY  METRIC       THRESHOLD  ENABLED\n"
			    "cpu-high  default  vm1       insufficient_data  critical  cpu.util     gt 90      true\n"
			    "web-down  default  -         insufficient_data  moderate  (composite)  -          true\n");
	fx_run_free(&r);

	r = vrun("alarms", "list", "--json", "--project", "default", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	json_t *j = json_loads(r.out, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(j, "alarms")), 2);
	assert_true(json_is_null(json_object_get(j, "next")));
	json_decref(j);
	fx_run_free(&r);

	r = vrun("alarms", "list", "--state", "alarm", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_int_equal(lines(r.out), 1); /* the header alone */
	fx_run_free(&r);

	/* options may come after the positional argument */
	r = vrun("alarms", "show", "cpu-high", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.out, "Name             cpu-high\n"));
	assert_non_null(strstr(r.out, "State            insufficient_data\n"));
	assert_non_null(strstr(r.out, "Condition        gt 90\n"));
	assert_non_null(strstr(r.out, "Datapoints       1 of 1\n"));
	assert_non_null(strstr(r.out, "Actions          alarm: log://\n"));
	fx_run_free(&r);

	r = vrun("alarms", "show", "web-down", "--json", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	j = json_loads(r.out, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "rule")),
			    "ALARM(cpu-high)");
	json_decref(j);
	fx_run_free(&r);
}

/* ---- errors ------------------------------------------------------------------ */

static void test_errors(void **state)
{
	struct fx_run r;

	(void)state;
	/* several invalid fields: exit 1, every field's message on one line */
	r = vrun("alarms", "create", "--file",
		 write_file("bad.json", "{\"name\":\"bad name\",\"metric\":\"cpu.util\","
					"\"resource\":\"vm1\",\"comparison\":\"bigger\","
					"\"threshold\":1,\"period\":7}"),
		 NULL);
	assert_int_equal(r.rc, VG_EXIT_API);
	assert_string_equal(r.out, "");
	assert_int_equal(lines(r.err), 1);
	assert_non_null(strstr(r.err, "vigie: invalid alarm (3 problems): "));
	assert_non_null(strstr(r.err, "comparison: must be one of gt, ge, lt, le, eq, ne"));
	assert_non_null(strstr(r.err, "; period: must be 60, 300, 3600"));
	assert_non_null(strstr(r.err, "name: "));
	assert_non_null(strstr(r.err, " (HTTP 400)\n"));
	fx_run_free(&r);

	/* one invalid field: the API's message already names it */
	r = vrun("alarms", "create", "--file",
		 write_file("bad1.json", "{\"name\":\"x\",\"metric\":\"cpu.util\","
					 "\"resource\":\"vm1\",\"comparison\":\"bigger\","
					 "\"threshold\":1}"),
		 NULL);
	assert_int_equal(r.rc, VG_EXIT_API);
	assert_string_equal(r.err, "vigie: invalid alarm: comparison: must be one of "
				   "gt, ge, lt, le, eq, ne (HTTP 400)\n");
	fx_run_free(&r);

	/* the same name again */
	r = vrun("alarms", "create", "--file", write_file("cpu.json", def_cpu), NULL);
	assert_int_equal(r.rc, VG_EXIT_API);
	assert_non_null(strstr(r.err, "already exists"));
	assert_non_null(strstr(r.err, "(HTTP 409)"));
	fx_run_free(&r);

	/* a file that is not JSON, or missing: usage errors naming the file */
	fails_saying(VG_EXIT_USAGE, "typo.json: not valid JSON (line 2", "alarms", "create", "--file", write_file("typo.json", "{\"name\":\n"), NULL);
	fails_saying(VG_EXIT_USAGE, "must be a JSON object", "alarms", "create", "--file", write_file("arr.json", "[1]"), NULL);
	fails_saying(VG_EXIT_USAGE, "cannot read /nonexistent/def.json", "alarms", "create", "--file", "/nonexistent/def.json", NULL);

	r = vrun("alarms", "show", "ghost", NULL);
	assert_int_equal(r.rc, VG_EXIT_API);
	assert_string_equal(r.err, "vigie: no alarm 'ghost' (HTTP 404)\n");
	fx_run_free(&r);

	/* deleting an alarm a composite uses */
	r = vrun("alarms", "delete", "cpu-high", NULL);
	assert_int_equal(r.rc, VG_EXIT_API);
	assert_non_null(strstr(r.err, "vigie: in use: alarm 'cpu-high' is used by "
				      "composite alarm(s) web-down"));
	fx_run_free(&r);

	/* usage errors, before any request */
	static const char *const bad[][5] = {
		{"alarms", NULL},
		{"alarms", "frob", NULL},
		{"alarms", "show", NULL},
		{"alarms", "show", "a", "b", NULL},
		{"alarms", "create", NULL},
		{"alarms", "list", "--state", "bogus", NULL},
		{"alarms", "show", "a", "--state", "ok"},
		{"alarms", "history", "a", "--limit", "0"},
		{"alarms", "list", "--bogus", NULL},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = vrun(bad[i][0], bad[i][1], bad[i][2], bad[i][3], bad[i][4], NULL);
		assert_int_equal(r.rc, VG_EXIT_USAGE);
		assert_int_equal(lines(r.err), 1);
		assert_string_equal(r.out, "");
		fx_run_free(&r);
	}

	/* --help everywhere */
	static const char *const subs[] = {"list", "show", "create", "update",
					   "delete", "enable", "disable",
					   "history", "watch"};
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		char want[64];
		r = vrun("alarms", subs[i], "--help", NULL);
		assert_int_equal(r.rc, VG_EXIT_OK);
		snprintf(want, sizeof(want), "usage: vigie alarms %s", subs[i]);
		assert_non_null(strstr(r.out, want));
		fx_run_free(&r);
	}
	r = vrun("alarms", "--help", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.out, "vigie alarms watch"));
	fx_run_free(&r);

	/* nobody listening: 3 */
	char *argv[] = {"vigie", "--api", "http://127.0.0.1:1", "alarms", "list", NULL};
	char *o = NULL, *e = NULL;
	size_t ol, el;
	FILE *out = open_memstream(&o, &ol), *err = open_memstream(&e, &el);
	assert_int_equal(vg_cli_run(5, argv, out, err), VG_EXIT_CONNECT);
	fclose(out);
	fclose(err);
	assert_non_null(strstr(e, "cannot reach the API"));
	free(o);
	free(e);
}

/* ---- enable/disable, update, history, watch, delete --------------------------- */

static struct fx_run watch_cmd(void)
{
	return vrun("alarms", "watch", "--count", "1", NULL);
}

static void test_lifecycle(void **state)
{
	struct vg_alarm_hub_stats hs;
	struct fx_watch w;
	int64_t t0 = (vg_now_ms() - 3600 * 1000) / MIN * MIN;
	struct fx_run r;

	(void)state;
	r = vrun("alarms", "disable", "cpu-high", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_string_equal(r.out, "disabled alarm cpu-high\n");
	fx_run_free(&r);
	r = vrun("alarms", "list", "--json", NULL);
	assert_non_null(strstr(r.out, "\"enabled\": false"));
	fx_run_free(&r);
	r = vrun("alarms", "enable", "cpu-high", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_string_equal(r.out, "enabled alarm cpu-high\n");
	fx_run_free(&r);

	r = vrun("alarms", "update", "cpu-high", "--patch", "--file",
		 write_file("patch.json", "{\"threshold\": 95}"), NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.out, "updated alarm cpu-high (id "));
	fx_run_free(&r);
	r = vrun("alarms", "show", "cpu-high", NULL);
	assert_non_null(strstr(r.out, "Condition        gt 95\n"));
	fx_run_free(&r);
	/* PUT replaces: a partial definition is refused */
	r = vrun("alarms", "update", "cpu-high", "--file",
		 write_file("patch.json", "{\"threshold\": 95}"), NULL);
	assert_int_equal(r.rc, VG_EXIT_API);
	assert_non_null(strstr(r.err, "metric: is required"));
	fx_run_free(&r);

	/* watch: one line for the transition a batch causes */
	assert_int_equal(fx_watch_start(&w, watch_cmd, g.a.hub, &hs), 0);
	assert_int_equal(hs.subscribers, 1);
	sample(t0, 99);
	sample(t0 + MIN, 99); /* closes both periods: insufficient -> alarm */
	fx_watch_end(&w);
	assert_int_equal(w.r.rc, VG_EXIT_OK);
	assert_int_equal(lines(w.r.out), 1);
	assert_non_null(strstr(w.r.out, " default/cpu-high critical "
					"insufficient_data -> alarm on vm1: "));
	assert_non_null(strstr(w.r.out, "greater than the threshold (95.0)"));
	fx_run_free(&w.r);

	r = vrun("alarms", "list", "--state", "alarm", NULL);
	assert_non_null(strstr(r.out, "\ncpu-high  default  vm1       alarm"));
	fx_run_free(&r);

	r = vrun("alarms", "history", "cpu-high", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.out, "TIME                  TYPE"));
	assert_non_null(strstr(r.out, "  creation    -         average cpu.util gt 90, 1 of 1 x 60 s\n"));
	assert_non_null(strstr(r.out, "  disabled    -         -\n"));
	assert_non_null(strstr(r.out, "  enabled     -         -\n"));
	assert_non_null(strstr(r.out, "  update      -         average cpu.util gt 95, 1 of 1 x 60 s\n"));
	assert_non_null(strstr(r.out, "  transition  vm1       insufficient_data -> alarm: "));
	fx_run_free(&r);
	r = vrun("alarms", "history", "cpu-high", "--type", "transition", "--json", NULL);
	json_t *j = json_loads(r.out, 0, NULL);
	assert_int_equal(json_array_size(json_object_get(j, "history")), 1);
	json_decref(j);
	fx_run_free(&r);
	r = vrun("alarms", "history", "cpu-high", "--limit", "2", NULL);
	assert_int_equal(lines(r.out), 3);
	fx_run_free(&r);
	fails_saying(VG_EXIT_API, "start: not a time", "alarms", "history", "cpu-high", "--start", "yesterday", NULL);

	r = vrun("alarms", "delete", "web-down", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_string_equal(r.out, "deleted alarm web-down\n");
	fx_run_free(&r);
	r = vrun("alarms", "show", "web-down", NULL);
	assert_int_equal(r.rc, VG_EXIT_API);
	fx_run_free(&r);
}

/* ---- group and event alarms --------------------------------------------------- */

static void test_group_and_event_alarms(void **state)
{
	struct fx_run r;

	(void)state;
	r = vrun("alarms", "create", "--file", write_file("grp.json", "{\"name\":\"web-scale-out\",\"metric\":\"cpu.util\","
								      "\"selector\":{\"type\":\"instance\",\"metadata\":"
								      "{\"metering.server_group\":\"web\"}},"
								      "\"group\":{\"statistic\":\"count_above\",\"member_threshold\":90},"
								      "\"comparison\":\"ge\",\"threshold\":2,\"cooldown\":300}"),
		 NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	fx_run_free(&r);
	r = vrun("alarms", "create", "--file", write_file("ev.json", "{\"name\":\"crashes\",\"type\":\"event\","
								     "\"event\":{\"kind\":[\"crashed\",\"gap\"]}}"),
		 NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	fx_run_free(&r);

	r = vrun("alarms", "list", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_string_equal(r.out,
			    "NAME           PROJECT  RESOURCE    STATE              SEVERITY  METRIC                          THRESHOLD  ENABLED\n"
			    "cpu-high       default  vm1         alarm              critical  cpu.util                        gt 95      true\n"
			    "crashes        default  -           insufficient_data  moderate  (event gap,crashed)             -          true\n"
			    "web-scale-out  default  (selector)  insufficient_data  moderate  count_above(cpu.util) of group  ge 2       true\n");
	fx_run_free(&r);

	r = vrun("alarms", "show", "web-scale-out", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.out, "Group            count_above across the members "
				      "(member threshold 90)\n"));
	assert_non_null(strstr(r.out, "Cooldown         300 s\n"));
	fx_run_free(&r);
	r = vrun("alarms", "show", "crashes", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.out, "Event            kind=gap,crashed project=default\n"));
	fx_run_free(&r);

	r = vrun("alarms", "delete", "web-scale-out", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	fx_run_free(&r);
	r = vrun("alarms", "delete", "crashes", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	fx_run_free(&r);
}

/* An alarm with grouped notifications: show says how, and `alarms
 * groups` lists the group waiting with its member (no delivery thread
 * here: the group stays pending for its hour of group_wait). */
static void test_notify_groups(void **state)
{
	struct fx_run r;
	struct vg_batch *b;
	int64_t t = vg_now_ms() / MIN * MIN;

	(void)state;
	r = vrun("alarms", "create", "--file",
		 write_file("ng.json", "{\"name\":\"grouped\",\"metric\":\"cpu.util\","
				       "\"resource\":\"vm7\",\"comparison\":\"gt\","
				       "\"threshold\":90,\"notify_group\":{\"by\":[\"alarm\"],"
				       "\"wait\":\"1h\"},\"actions\":{\"alarm\":"
				       "[\"http://127.0.0.1:9/hook\"]}}"),
		 NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	fx_run_free(&r);
	r = vrun("alarms", "show", "grouped", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.out, "Notify group     by alarm, wait 3600 s, interval 300 s\n"));
	fx_run_free(&r);
	for (int i = 0; i < 2; i++) {
		b = vg_batch_new("h1", 1, ++g.seq, t + i * MIN);
		assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, "vm7", "vm7", NULL, t + i * MIN));
		vg_batch_identity(b, "default", NULL, NULL);
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 95);
		assert_int_equal(vg_alarm_engine_batch(g.a.e, b), 0);
		vg_batch_free(b);
	}
	r = vrun("alarms", "groups", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_int_equal(lines(r.out), 1);
	assert_non_null(strstr(r.out, "  1 members  default  {\"alarm\":\"grouped\"}  "
				      "http://127.0.0.1:9/hook\n"));
	fx_run_free(&r);
	r = vrun("alarms", "groups", "--json", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.out, "\"members\": 1"));
	fx_run_free(&r);
	r = vrun("alarms", "delete", "grouped", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	fx_run_free(&r);
}

/* A test notification through the API and the CLI, and the project's
 * notification rate: over max_notifications_per_minute (2 here) the
 * request that would notify at once is a 429 naming the limit, with a
 * Retry-After the engine's clock (injected) then honours. */
static int64_t g_fake_ms;
static int64_t fake_ms(void)
{
	return g_fake_ms;
}

/* `vigie --api api ARGS...` (NULL-terminated). */
static struct fx_run vrun_at(const char *api, const char *first, ...)
{
	va_list ap;
	struct fx_run r;

	va_start(ap, first);
	r = fx_vcli(api, g.a.tok, first, ap);
	va_end(ap);
	return r;
}

/* Page parameters are integers written as digits: strtol alone took
 * " 5" and "+5" as a limit, and a history cursor past 64 bits saturated
 * to the largest one (an empty page, as if the history had ended). */
static void test_page_parameters(void **state)
{
	static const char *const bad[] = {
		"/v1/alarms?limit=%205",
		"/v1/alarms?limit=%2B5",
		"/v1/alarms?limit=-0",
		"/v1/alarms?limit=0x10",
		"/v1/alarms?limit=5%20",
		"/v1/alarms?limit=99999999999999999999",
		"/v1/alarms/pp/history?cursor=99999999999999999999",
		"/v1/alarms/pp/history?cursor=%2B1",
		"/v1/alarms/pp/history?cursor=%201",
		"/v1/alarms/pp/history?limit=%2B5",
	};
	struct fx_answer a;
	char auth[128];
	json_t *in, *out = NULL, *errors = NULL;

	(void)state;
	snprintf(auth, sizeof(auth), "Bearer %s", g.a.tok);
	in = json_loads("{\"name\":\"pp\",\"metric\":\"cpu.util\",\"resource\":\"vm1\","
			"\"comparison\":\"gt\",\"threshold\":90}",
			0, NULL);
	assert_int_equal(vg_alarm_engine_create(g.a.e, in, NULL, &out, &errors), 0);
	json_decref(in);
	json_decref(out);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (fx_http(g.a.srv.url, "GET", bad[i], auth, NULL, &a) != 400)
			fail_msg("%s: %ld, want 400", bad[i], a.status);
		fx_answer_free(&a);
	}
	assert_int_equal(fx_http(g.a.srv.url, "GET", "/v1/alarms?limit=5", auth, NULL, &a), 200);
	fx_answer_free(&a);
	assert_int_equal(fx_http(g.a.srv.url, "GET", "/v1/alarms/pp/history?cursor=0&limit=1",
				 auth, NULL, &a),
			 200);
	assert_int_equal(json_array_size(json_object_get(a.json, "history")), 1);
	fx_answer_free(&a);
}

/* An alarm named "stream" or "groups" was created, but GET by its name
 * answered the event stream or the group list while PUT and DELETE
 * reached the alarm: such names are refused at create and rename. */
static void test_reserved_names(void **state)
{
	struct fx_answer a;
	char auth[128];

	(void)state;
	snprintf(auth, sizeof(auth), "Bearer %s", g.a.tok);
	assert_int_equal(fx_http(g.a.srv.url, "POST", "/v1/alarms", auth,
				 "{\"name\":\"groups\",\"metric\":\"cpu.util\","
				 "\"resource\":\"vm1\",\"comparison\":\"gt\",\"threshold\":1}",
				 &a),
			 400);
	assert_non_null(strstr(fx_errmsg(&a), "path of the API"));
	fx_answer_free(&a);
	assert_int_equal(fx_http(g.a.srv.url, "POST", "/v1/alarms", auth,
				 "{\"name\":\"rn\",\"metric\":\"cpu.util\","
				 "\"resource\":\"vm1\",\"comparison\":\"gt\",\"threshold\":1}",
				 &a),
			 201);
	fx_answer_free(&a);
	assert_int_equal(fx_http(g.a.srv.url, "PATCH", "/v1/alarms/rn", auth,
				 "{\"name\":\"stream\"}", &a),
			 400);
	fx_answer_free(&a);
	assert_int_equal(fx_http(g.a.srv.url, "GET", "/v1/alarms/rn", auth, NULL, &a), 200);
	fx_answer_free(&a);
}

static void test_test_notification_rate_limit(void **state)
{
	struct vg_alarm_engine_options eo = {0};
	struct vg_api_options ao = {.listen = "127.0.0.1:0", .threads = 1};
	struct vg_alarm_engine *e;
	struct vg_api *srv;
	struct fx_answer ans;
	struct fx_run r;
	char dir[300], api[64], auth[128], err[256];
	json_t *in, *out = NULL, *errors = NULL;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/rate", g.a.srv.dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	g_fake_ms = 1795000020000LL;
	eo.data_dir = dir;
	eo.agent_interval_s = 10;
	eo.now_ms = fake_ms;
	eo.max_notifications_per_minute = 2;
	assert_int_equal(vg_alarm_engine_open(&eo, &e, err, sizeof(err)), 0);
	in = json_loads("{\"name\":\"t\",\"metric\":\"cpu.util\",\"resource\":\"vm1\","
			"\"comparison\":\"gt\",\"threshold\":90,\"actions\":{\"alarm\":"
			"[\"log://\"]}}",
			0, NULL);
	assert_int_equal(vg_alarm_engine_create(e, in, NULL, &out, &errors), 0);
	json_decref(in);
	json_decref(out);
	ao.data_dir = g.a.srv.dir;
	ao.alarms = e;
	assert_int_equal(vg_api_start(&ao, &srv, err, sizeof(err)), 0);
	snprintf(api, sizeof(api), "http://127.0.0.1:%u", vg_api_port(srv));
	snprintf(auth, sizeof(auth), "Bearer %s", g.a.tok);

	/* two within the budget: 202, sent, recorded as type test */
	assert_int_equal(fx_http(api, "POST", "/v1/alarms/t/test", auth, NULL, &ans), 202);
	assert_string_equal(json_string_value(json_object_get(ans.json, "state")), "alarm");
	fx_answer_free(&ans);
	r = vrun_at(api, "alarms", "test", "t", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.out, "sent test notification "));
	assert_non_null(strstr(r.out, "(alarm) to:\n  log://\n"));
	fx_run_free(&r);
	/* the third in the same minute: 429, naming the limit */
	assert_int_equal(fx_http(api, "POST", "/v1/alarms/t/test", auth, NULL, &ans), 429);
	assert_non_null(strstr(fx_errmsg(&ans), "max_notifications_per_minute"));
	assert_string_equal(ans.retry_after, "30"); /* 2 a minute: one every 30 s */
	fx_answer_free(&ans);
	r = vrun_at(api, "alarms", "test", "t", NULL);
	assert_int_not_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.err, "max_notifications_per_minute"));
	fx_run_free(&r);
	/* a state without actions, or not a state: 400 */
	assert_int_equal(fx_http(api, "POST", "/v1/alarms/t/test", auth, "{\"state\":\"ok\"}",
				 &ans),
			 400);
	fx_answer_free(&ans);
	assert_int_equal(fx_http(api, "POST", "/v1/alarms/t/test", auth, "{\"state\":\"hot\"}",
				 &ans),
			 400);
	fx_answer_free(&ans);
	/* after Retry-After, one more fits */
	g_fake_ms += 30000;
	assert_int_equal(fx_http(api, "POST", "/v1/alarms/t/test", auth, NULL, &ans), 202);
	fx_answer_free(&ans);
	assert_int_equal(fx_http(api, "GET", "/v1/alarms/t/history?type=test", auth, NULL, &ans),
			 200);
	assert_int_equal(json_array_size(json_object_get(ans.json, "history")), 3);
	fx_answer_free(&ans);
	vg_api_stop(srv);
	vg_alarm_engine_close(e);
}

/* Two projects with an alarm of the same name: an administrator naming it
 * bare got 404 "no alarm", as if neither existed. It is a 409 that lists
 * both (id and project) for every operation on one alarm; the id works,
 * and a project token still reaches its own by name. */
static void test_ambiguous_name(void **state)
{
	static const char *const ops[][2] = {
		{"GET", "/v1/alarms/twin"},
		{"PATCH", "/v1/alarms/twin"},
		{"DELETE", "/v1/alarms/twin"},
		{"POST", "/v1/alarms/twin/disable"},
		{"POST", "/v1/alarms/twin/test"},
		{"GET", "/v1/alarms/twin/history"},
	};
	const char *ids[2], *projects[] = {"pa", "pb"};
	struct fx_answer a;
	struct fx_run r;
	char auth[128], pauth[128], ptok[VG_TOKEN_LEN + 1], path[128], want[256];
	json_t *made[2];

	(void)state;
	snprintf(auth, sizeof(auth), "Bearer %s", g.a.tok);
	for (int i = 0; i < 2; i++) {
		char body[256];
		json_t *in, *errors = NULL;
		snprintf(body, sizeof(body),
			 "{\"name\":\"twin\",\"project\":\"%s\",\"metric\":\"cpu.util\","
			 "\"resource\":\"vm1\",\"comparison\":\"gt\",\"threshold\":90,"
			 "\"actions\":{\"alarm\":[\"log://\"]}}",
			 projects[i]);
		in = json_loads(body, 0, NULL);
		assert_int_equal(vg_alarm_engine_create(g.a.e, in, NULL, &made[i], &errors), 0);
		json_decref(in);
		ids[i] = json_string_value(json_object_get(made[i], "id"));
	}
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		long st = fx_http(g.a.srv.url, ops[i][0], ops[i][1], auth,
				  !strcmp(ops[i][0], "PATCH") ? "{\"threshold\":80}" : NULL, &a);
		if (st != 409)
			fail_msg("%s %s: %ld, want 409", ops[i][0], ops[i][1], st);
		json_t *c = json_object_get(json_object_get(a.json, "error"), "candidates");
		assert_int_equal(json_array_size(c), 2);
		for (int k = 0; k < 2; k++) {
			json_t *x = json_array_get(c, (size_t)k);
			assert_string_equal(json_string_value(json_object_get(x, "id")), ids[k]);
			assert_string_equal(json_string_value(json_object_get(x, "project")),
					    projects[k]);
		}
		snprintf(want, sizeof(want),
			 "alarm name 'twin' names 2 alarms: %s (project pa), %s (project pb); "
			 "give the id",
			 ids[0], ids[1]);
		assert_string_equal(fx_errmsg(&a), want);
		fx_answer_free(&a);
	}
	/* nothing was changed or deleted; each id works */
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "/v1/alarms/%s", ids[i]);
		assert_int_equal(fx_http(g.a.srv.url, "GET", path, auth, NULL, &a), 200);
		assert_true(json_is_true(json_object_get(a.json, "enabled")));
		assert_true(json_number_value(json_object_get(a.json, "threshold")) == 90);
		fx_answer_free(&a);
	}
	/* the CLI says it as the API does */
	r = vrun("alarms", "show", "twin", NULL);
	assert_int_equal(r.rc, VG_EXIT_API);
	assert_non_null(strstr(r.err, "alarm name 'twin' names 2 alarms: "));
	assert_non_null(strstr(r.err, "give the id"));
	fx_run_free(&r);
	/* within a project the name is unique */
	assert_int_equal(fx_token(g.a.srv.dir, "pb", "pb-reader", ptok), 0);
	snprintf(pauth, sizeof(pauth), "Bearer %s", ptok);
	assert_int_equal(fx_http(g.a.srv.url, "GET", "/v1/alarms/twin", pauth, NULL, &a), 200);
	assert_string_equal(json_string_value(json_object_get(a.json, "id")), ids[1]);
	fx_answer_free(&a);
	/* an unknown name is still a 404 */
	assert_int_equal(fx_http(g.a.srv.url, "GET", "/v1/alarms/nobody", auth, NULL, &a), 404);
	fx_answer_free(&a);
	json_decref(made[0]);
	json_decref(made[1]);
}

/* notify_group.by is a set of labels: a label given twice was taken
 * silently. A 400 naming the repeated label. */
static void test_group_by_duplicate(void **state)
{
	struct fx_answer a;
	char auth[128];

	(void)state;
	snprintf(auth, sizeof(auth), "Bearer %s", g.a.tok);
	assert_int_equal(fx_http(g.a.srv.url, "POST", "/v1/alarms", auth,
				 "{\"name\":\"gb\",\"metric\":\"cpu.util\",\"resource\":\"vm1\","
				 "\"comparison\":\"gt\",\"threshold\":1,"
				 "\"notify_group\":{\"by\":[\"alarm\",\"alarm\"]}}",
				 &a),
			 400);
	assert_string_equal(fx_errmsg(&a),
			    "invalid alarm: notify_group.by: [1]: 'alarm' is given twice");
	fx_answer_free(&a);
	assert_int_equal(fx_http(g.a.srv.url, "GET", "/v1/alarms/gb", auth, NULL, &a), 404);
	fx_answer_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_list_show),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_lifecycle),
		cmocka_unit_test(test_group_and_event_alarms),
		cmocka_unit_test(test_notify_groups),
		cmocka_unit_test(test_page_parameters),
		cmocka_unit_test(test_reserved_names),
		cmocka_unit_test(test_test_notification_rate_limit),
		cmocka_unit_test(test_ambiguous_name),
		cmocka_unit_test(test_group_by_duplicate),
	};

	unsetenv("VIGIE_API");
	unsetenv("VIGIE_TOKEN");
	vg_log_init("cli_alarms_test", VG_LOG_ERROR);
	return cmocka_run_group_tests(tests, setup, teardown);
}
