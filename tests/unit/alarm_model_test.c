/*
 * alarm_model_test.c — an alarm definition read from JSON, written back
 * with vg_alarm_def_to_json and read again is the same definition
 * (api_body_fuzz checks this on random bodies; these are the cases it
 * found, kept here so they fail without the fix), and the names it
 * refuses.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vigie/alarm.h"

/* Parse body, convert back, parse again: the statistic (as a name) of
 * the second parse, into out. */
static void roundtrip(const char *statistic, char *out, size_t len)
{
	struct vg_alarm_policy pol = {.agent_interval_s = 10};
	struct vg_alarm_def d, d2;
	json_t *in, *errors = NULL, *back;
	char buf[VG_ALARM_STAT_NAME_MAX];

	in = json_pack("{s:s, s:s, s:s, s:s, s:f, s:i, s:s}", "name", "p",
		       "metric", "cpu.util", "resource", "vm/a", "comparison",
		       "gt", "threshold", 90.0, "period", 60, "statistic",
		       statistic);
	assert_non_null(in);
	assert_int_equal(vg_alarm_def_from_json(in, &pol, &d, &errors), 0);
	assert_non_null(back = vg_alarm_def_to_json(&d));
	assert_int_equal(vg_alarm_def_from_json(back, &pol, &d2, &errors), 0);
	assert_false(vg_alarm_def_eval_changed(&d, &d2));
	assert_true(d.percentile == d2.percentile);
	snprintf(out, len, "%s", vg_alarm_stat_name(d2.statistic, d2.percentile, buf, sizeof(buf)));
	vg_alarm_def_release(&d);
	vg_alarm_def_release(&d2);
	json_decref(in);
	json_decref(back);
}

static void test_percentile_names_stay_short(void **state)
{
	char s[64];

	(void)state;
	roundtrip("p99", s, sizeof(s));
	assert_string_equal(s, "p99");
	roundtrip("p99.9", s, sizeof(s));
	assert_string_equal(s, "p99.9");
	roundtrip("p99.99", s, sizeof(s));
	assert_string_equal(s, "p99.99");
	roundtrip("p0", s, sizeof(s));
	assert_string_equal(s, "p0");
}

/* Found by api_body_fuzz: more digits than "%.6g" kept made a different
 * percentile after the round trip. */
static void test_long_percentile_survives(void **state)
{
	char s[64];

	(void)state;
	roundtrip("p99.11111111111111111111111111111111111111111111111119", s,
		  sizeof(s));
	assert_string_equal(s, "p99.11111111111111");
	roundtrip("p1.0000001", s, sizeof(s));
	assert_string_equal(s, "p1.0000001");
}

/* A percentile's number is a plain decimal, for the alarm's statistic and
 * a group's: strtod read "p0x10" as p16 and "p1e1" as p10, and the alarm
 * was stored under a statistic the client never wrote. */
static void test_percentile_syntax(void **state)
{
	static const char *const bad[] = {"p0x10", "p1e1", "p 5", "p+5", "p-1",
					  "p101", "pinf", "pnan", "p5.", "p.5"};
	struct vg_alarm_policy pol = {.agent_interval_s = 10};
	struct vg_alarm_def d;
	json_t *in, *errors;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (int group = 0; group < 2; group++) {
			if (group)
				in = json_pack("{s:s, s:s, s:{s:s}, s:{s:s}, s:s, s:f}",
					       "name", "p", "metric", "cpu.util",
					       "selector", "type", "instance", "group",
					       "statistic", bad[i], "comparison", "gt",
					       "threshold", 90.0);
			else
				in = json_pack("{s:s, s:s, s:s, s:s, s:f, s:s}", "name",
					       "p", "metric", "cpu.util", "resource",
					       "vm-a", "comparison", "gt", "threshold",
					       90.0, "statistic", bad[i]);
			assert_non_null(in);
			errors = NULL;
			if (!vg_alarm_def_from_json(in, &pol, &d, &errors))
				fail_msg("%s statistic %s was taken",
					 group ? "a group" : "an alarm", bad[i]);
			vg_alarm_def_release(&d);
			json_decref(errors);
			json_decref(in);
		}
	}
}

/* A duration given as a string (period, keep_firing_for, cooldown,
 * notify_group's wait and interval) is a plain decimal and a unit, as a
 * silence's: strtod read "0x3c" as 60, "6e1" as 60, " 60" and "+60" too,
 * and the alarm was stored with a period the client never wrote. The
 * plain forms still hold. */
static void test_duration_syntax(void **state)
{
	static const char *const fields[] = {"period", "keep_firing_for", "cooldown",
					     "wait", "interval"};
	static const char *const bad[] = {"0x3c", "6e1", " 60", "+60", "-60", "60 ",
					  "1e0m", "0x1p6", "inf", "nan", "60.", ".5m"};
	static const char *const good[][2] = {{"60", "60"}, {"60s", "60"}, {"1m", "60"}, {"1.5m", "90"}, {"0.25h", "900"}};
	struct vg_alarm_policy pol = {.agent_interval_s = 10};
	struct vg_alarm_def d;
	json_t *in, *errors, *back;

	(void)state;
	for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
		int grp = f >= 3;
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]) + 5; i++) {
			int ok = i >= sizeof(bad) / sizeof(bad[0]);
			const char *val = ok ? good[i - sizeof(bad) / sizeof(bad[0])][0] : bad[i];
			in = json_pack("{s:s, s:s, s:s, s:s, s:f, s:{s:[s]}}", "name", "p",
				       "metric", "cpu.util", "resource", "vm-a", "comparison",
				       "gt", "threshold", 90.0, "actions", "alarm", "log://");
			assert_non_null(in);
			if (grp)
				json_object_set_new(in, "notify_group",
						    json_pack("{s:s}", fields[f], val));
			else
				json_object_set_new(in, fields[f], json_string(val));
			errors = NULL;
			int rc = vg_alarm_def_from_json(in, &pol, &d, &errors);
			if (!ok && !rc)
				fail_msg("%s \"%s\" was taken", fields[f], val);
			if (ok && rc)
				fail_msg("%s \"%s\" was refused", fields[f], val);
			if (ok) {
				const char *want = good[i - sizeof(bad) / sizeof(bad[0])][1];
				back = vg_alarm_def_to_json(&d);
				assert_non_null(back);
				json_t *o = grp ? json_object_get(json_object_get(back,
										  "notify_group"),
								  fields[f])
						: json_object_get(back, fields[f]);
				if (json_integer_value(o) != atoll(want))
					fail_msg("%s \"%s\" is %lld s, not %s", fields[f], val,
						 (long long)json_integer_value(o), want);
				json_decref(back);
			}
			vg_alarm_def_release(&d);
			json_decref(errors);
			json_decref(in);
		}
	}
}

/* The names an alarm watches (project, metric, resource) follow the name
 * rules: a Unicode bidirectional control or an invisible format character
 * would make one tenant's name display as another's in notifications. */
/* parse body (JSON) as an administrator: 0, or -EINVAL with the errors
 * (dumped) in err */
static int admin_parse(const char *body, int stored, char *err, size_t len)
{
	struct vg_alarm_policy pol = {.agent_interval_s = 10, .stored = stored};
	struct vg_alarm_def d;
	json_t *in = json_loads(body, 0, NULL), *errors = NULL;
	int rc;

	assert_non_null(in);
	err[0] = '\0';
	rc = vg_alarm_def_from_json(in, &pol, &d, &errors);
	if (rc) {
		char *t = json_dumps(errors, 0);
		snprintf(err, len, "%s", t ? t : "");
		free(t);
		json_decref(errors);
	} else {
		vg_alarm_def_release(&d);
	}
	json_decref(in);
	return rc;
}

/* An alarm of project acme is read by acme's tokens (GET /v1/alarms/<id>:
 * resource ids, values in the reason): it may watch acme only. An
 * administrator's alarm over other projects or all of them is an alarm
 * of project "*". It was accepted, showing other tenants' data to acme. */
static void test_project_alarm_watches_its_project(void **state)
{
	char err[1024];
	const char *T = "{\"name\":\"x\",\"metric\":\"cpu.util\",\"comparison\":\"gt\","
			"\"threshold\":90,\"period\":60,%s}";
	char body[512];

	(void)state;
	snprintf(body, sizeof(body), T,
		 "\"project\":\"acme\",\"selector\":{\"type\":\"instance\",\"project\":\"other\"}");
	assert_int_equal(admin_parse(body, 0, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "selector.project"));
	assert_non_null(strstr(err, "must be the alarm's project 'acme'"));
	snprintf(body, sizeof(body), T,
		 "\"project\":\"acme\",\"selector\":{\"type\":\"instance\",\"project\":\"*\"}");
	assert_int_equal(admin_parse(body, 0, err, sizeof(err)), -EINVAL);
	/* no project is "default": the same */
	snprintf(body, sizeof(body), T, "\"selector\":{\"type\":\"instance\",\"project\":\"*\"}");
	assert_int_equal(admin_parse(body, 0, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "'default'"));
	/* an event alarm's event.project likewise */
	assert_int_equal(admin_parse("{\"name\":\"e\",\"type\":\"event\",\"project\":\"acme\","
				     "\"event\":{\"kind\":\"crashed\",\"project\":\"*\"}}",
				     0, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "event.project"));
	/* allowed: its own project, and every project from an alarm of "*" */
	snprintf(body, sizeof(body), T,
		 "\"project\":\"acme\",\"selector\":{\"type\":\"instance\",\"project\":\"acme\"}");
	assert_int_equal(admin_parse(body, 0, err, sizeof(err)), 0);
	snprintf(body, sizeof(body), T,
		 "\"project\":\"*\",\"selector\":{\"type\":\"instance\",\"project\":\"other\"}");
	assert_int_equal(admin_parse(body, 0, err, sizeof(err)), 0);
	snprintf(body, sizeof(body), T,
		 "\"project\":\"*\",\"selector\":{\"type\":\"instance\",\"project\":\"*\"}");
	assert_int_equal(admin_parse(body, 0, err, sizeof(err)), 0);
	assert_int_equal(admin_parse("{\"name\":\"e\",\"type\":\"event\",\"project\":\"*\","
				     "\"event\":{\"kind\":\"crashed\",\"project\":\"*\"}}",
				     0, err, sizeof(err)),
			 0);
	/* a definition stored before the rule still loads */
	snprintf(body, sizeof(body), T,
		 "\"project\":\"acme\",\"selector\":{\"type\":\"instance\",\"project\":\"*\"}");
	assert_int_equal(admin_parse(body, 1, err, sizeof(err)), 0);
}

static void test_hidden_names_refused(void **state)
{
	static const char *const fields[] = {"project", "metric", "resource"};
	struct vg_alarm_policy pol = {.agent_interval_s = 10};
	struct vg_alarm_def d;
	json_t *in, *errors;
	char *t;

	(void)state;
	for (size_t i = 0; i <= sizeof(fields) / sizeof(fields[0]); i++) {
		in = json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:i}", "name", "p",
			       "project", "shop", "metric", "cpu.util", "resource",
			       "vm-a", "comparison", "gt", "threshold", 90.0,
			       "period", 60);
		assert_non_null(in);
		errors = NULL;
		if (i == sizeof(fields) / sizeof(fields[0])) { /* the control */
			assert_int_equal(vg_alarm_def_from_json(in, &pol, &d, &errors), 0);
			vg_alarm_def_release(&d);
			json_decref(errors);
			json_decref(in);
			continue;
		}
		/* "shop" + U+202E + "bew" displays as "shopweb" */
		json_object_set_new(in, fields[i], json_string("shop\xe2\x80\xae"
							       "bew"));
		assert_int_not_equal(vg_alarm_def_from_json(in, &pol, &d, &errors), 0);
		t = json_dumps(errors, 0);
		if (!t || !strstr(t, fields[i]) || !strstr(t, "bidirectional"))
			fail_msg("%s: %s", fields[i], t ? t : "(no errors)");
		free(t);
		vg_alarm_def_release(&d);
		json_decref(errors);
		json_decref(in);
	}
}

/* A project an alarm names with white space at an end ("acme" +
 * U+00A0 reads as acme but is another tenant) is refused in every place
 * it can be named: the alarm's own project was, its selector's and its
 * event's were taken. A stored alarm loads as it was written. */
static void test_blank_end_project_refused(void **state)
{
	static const char *const bodies[][2] = {
		{"{\"name\":\"p\",\"project\":\"acme\\u00a0\",\"metric\":\"cpu.util\","
		 "\"resource\":\"vm-a\",\"comparison\":\"gt\",\"threshold\":90,\"period\":60}",
		 "\"project\""},
		{"{\"name\":\"p\",\"metric\":\"cpu.util\",\"selector\":{\"type\":\"instance\","
		 "\"project\":\"acme\\u00a0\"},\"comparison\":\"gt\",\"threshold\":90,"
		 "\"period\":60}",
		 "selector.project"},
		{"{\"name\":\"p\",\"metric\":\"cpu.util\",\"selector\":{\"type\":\"instance\","
		 "\"project\":\"\\u3000acme\"},\"comparison\":\"gt\",\"threshold\":90,"
		 "\"period\":60}",
		 "selector.project"},
		{"{\"name\":\"p\",\"type\":\"event\",\"event\":{\"kind\":\"crashed\","
		 "\"project\":\" acme\"}}",
		 "event.project"},
	};
	struct vg_alarm_def d;
	json_t *in, *errors;
	char *t;

	(void)state;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct vg_alarm_policy pol = {.agent_interval_s = 10};
		assert_non_null(in = json_loads(bodies[i][0], 0, NULL));
		errors = NULL;
		assert_int_not_equal(vg_alarm_def_from_json(in, &pol, &d, &errors), 0);
		t = json_dumps(errors, 0);
		if (!t || !strstr(t, bodies[i][1]) || !strstr(t, "white space"))
			fail_msg("%s: %s", bodies[i][0], t ? t : "(no errors)");
		free(t);
		vg_alarm_def_release(&d);
		json_decref(errors);
		/* stored before the rule: loads as it was */
		pol.stored = 1;
		errors = NULL;
		if (vg_alarm_def_from_json(in, &pol, &d, &errors)) {
			t = json_dumps(errors, 0);
			fail_msg("stored %s refused: %s", bodies[i][0], t);
		}
		vg_alarm_def_release(&d);
		json_decref(errors);
		json_decref(in);
	}
}

/* null is the field left out, for every optional field of an alarm and
 * of its objects: "group": null was a 400 while "notify_group": null was
 * taken (and the API writes "notify_group": null, which a PATCH merges
 * back). Each body with one field null reads as the same alarm as the
 * body without it; a required field null is still required. */
static json_t *parsed(const char *text, char **field_err)
{
	struct vg_alarm_policy pol = {.agent_interval_s = 10};
	struct vg_alarm_def d;
	json_t *in = json_loads(text, 0, NULL), *errors = NULL, *out;

	if (!in)
		fail_msg("bad test JSON: %s", text);
	if (vg_alarm_def_from_json(in, &pol, &d, &errors)) {
		char *t = json_dumps(errors, 0);
		json_decref(in);
		if (field_err) {
			*field_err = t; /* the caller frees it */
			json_decref(errors);
			return NULL;
		}
		fail_msg("%s refused: %s", text, t);
	}
	out = vg_alarm_def_to_json(&d);
	vg_alarm_def_release(&d);
	json_decref(in);
	return out;
}

static void same_with_null(const char *base_fmt, const char *base_fill,
			   const char *with_null)
{
	char a[1024], b[1024];
	json_t *x, *y;

	snprintf(a, sizeof(a), base_fmt, base_fill);
	snprintf(b, sizeof(b), base_fmt, with_null);
	x = parsed(a, NULL);
	y = parsed(b, NULL);
	if (!json_equal(x, y)) {
		char *tx = json_dumps(x, JSON_SORT_KEYS), *ty = json_dumps(y, JSON_SORT_KEYS);
		fail_msg("%s\n  reads as %s\n  not as %s", b, ty, tx);
	}
	json_decref(x);
	json_decref(y);
}

static void test_null_is_left_out(void **state)
{
	static const char *const top[] = {
		"description", "enabled", "webhook_fence", "time_constraints",
		"inhibits", "notify_group", "severity", "type", "project",
		"statistic", "period", "evaluation_periods", "datapoints_to_alarm",
		"missing_data", "repeat_every", "keep_firing_for",
		"allow_unknown_metric", "group", "cooldown", "actions", "resource"};
	const char *threshold = "{\"name\":\"a\",\"metric\":\"cpu.util\",\"comparison\":\"gt\","
				"\"threshold\":1,\"selector\":{\"type\":\"instance\"}%s}";
	char fill[128];

	(void)state;
	for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
		snprintf(fill, sizeof(fill), ",\"%s\":null", top[i]);
		same_with_null(threshold, "", fill);
	}
	/* selector null with a resource; the nested objects' fields */
	same_with_null("{\"name\":\"a\",\"metric\":\"cpu.util\",\"comparison\":\"gt\","
		       "\"threshold\":1,\"resource\":\"vm1\"%s}",
		       "", ",\"selector\":null");
	static const char *const sel[] = {"project", "host", "flavor", "metadata"};
	for (size_t i = 0; i < sizeof(sel) / sizeof(sel[0]); i++) {
		snprintf(fill, sizeof(fill), ",\"%s\":null", sel[i]);
		same_with_null("{\"name\":\"a\",\"metric\":\"cpu.util\",\"comparison\":\"gt\","
			       "\"threshold\":1,\"selector\":{\"type\":\"instance\"%s}}",
			       "", fill);
	}
	same_with_null(threshold, ",\"group\":{}", ",\"group\":{\"statistic\":null}");
	same_with_null(threshold, ",\"group\":{\"statistic\":\"sum\"}",
		       ",\"group\":{\"statistic\":\"sum\",\"member_threshold\":null}");
	static const char *const ng[] = {"by", "wait", "interval"};
	for (size_t i = 0; i < sizeof(ng) / sizeof(ng[0]); i++) {
		snprintf(fill, sizeof(fill), ",\"notify_group\":{\"%s\":null}", ng[i]);
		same_with_null(threshold, ",\"notify_group\":{}", fill);
	}
	const char *event = "{\"name\":\"e\",\"type\":\"event\",\"event\":{\"kind\":[\"crashed\"]%s}}";
	static const char *const ev[] = {"project", "resource", "host", "detail", "silent_for"};
	for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++) {
		snprintf(fill, sizeof(fill), ",\"%s\":null", ev[i]);
		same_with_null(event, "", fill);
	}
	same_with_null("{\"name\":\"c\",\"type\":\"composite\",\"rule\":\"x OR y\"%s}", "",
		       ",\"description\":null,\"actions\":null,\"inhibits\":null,"
		       "\"time_constraints\":null,\"notify_group\":null,\"severity\":null");

	/* a required field null is a required field missing */
	static const char *const req[][2] = {
		{"{\"name\":null,\"metric\":\"cpu.util\",\"comparison\":\"gt\",\"threshold\":1,"
		 "\"resource\":\"vm1\"}",
		 "\"name\""},
		{"{\"name\":\"a\",\"metric\":null,\"comparison\":\"gt\",\"threshold\":1,"
		 "\"resource\":\"vm1\"}",
		 "\"metric\""},
		{"{\"name\":\"a\",\"metric\":\"cpu.util\",\"comparison\":null,\"threshold\":1,"
		 "\"resource\":\"vm1\"}",
		 "\"comparison\""},
		{"{\"name\":\"a\",\"metric\":\"cpu.util\",\"comparison\":\"gt\",\"threshold\":null,"
		 "\"resource\":\"vm1\"}",
		 "\"threshold\""},
		{"{\"name\":\"a\",\"metric\":\"cpu.util\",\"comparison\":\"gt\",\"threshold\":1,"
		 "\"resource\":null}",
		 "\"resource\""},
		{"{\"name\":\"a\",\"metric\":\"cpu.util\",\"comparison\":\"gt\",\"threshold\":1,"
		 "\"selector\":{\"type\":null}}",
		 "\"selector.type\""},
		{"{\"name\":\"c\",\"type\":\"composite\",\"rule\":null}", "\"rule\""},
		{"{\"name\":\"e\",\"type\":\"event\",\"event\":null}", "\"event\""},
		{"{\"name\":\"e\",\"type\":\"event\",\"event\":{\"kind\":null}}", "\"event.kind\""},
	};
	for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
		char *err = NULL;
		json_t *o = parsed(req[i][0], &err);
		if (o || !err || !strstr(err, req[i][1]) || !strstr(err, "required"))
			fail_msg("%s: %s", req[i][0], err ? err : "accepted");
		free(err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_percentile_names_stay_short),
		cmocka_unit_test(test_long_percentile_survives),
		cmocka_unit_test(test_percentile_syntax),
		cmocka_unit_test(test_duration_syntax),
		cmocka_unit_test(test_hidden_names_refused),
		cmocka_unit_test(test_project_alarm_watches_its_project),
		cmocka_unit_test(test_blank_end_project_refused),
		cmocka_unit_test(test_null_is_left_out),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
