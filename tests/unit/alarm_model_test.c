/*
 * alarm_model_test.c — an alarm definition read from JSON, written back
 * with vg_alarm_def_to_json and read again is the same definition
 * (api_body_fuzz checks this on random bodies; these are the cases it
 * found, kept here so they fail without the fix).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_percentile_names_stay_short),
		cmocka_unit_test(test_long_percentile_survives),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
