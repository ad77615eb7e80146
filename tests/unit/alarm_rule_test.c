/*
 * alarm_rule_test.c — composite rules: grammar, precedence, references,
 * errors with positions, limits, and format -> parse round trips.
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
#include "alarms/rule.h"

#define I VG_ALARM_INSUFFICIENT_DATA
#define O VG_ALARM_OK
#define A VG_ALARM_ALARM

static struct vg_alarm_rule *parse_ok(const char *text)
{
	struct vg_alarm_rule *r = NULL;
	char err[128];
	int rc = vg_alarm_rule_parse(text, &r, err, sizeof(err));

	if (rc)
		fail_msg("'%s' did not parse: %s", text, err);
	return r;
}

/* Evaluate text with states given per reference in order of first use. */
static int eval(const char *text, const int *states)
{
	struct vg_alarm_rule *r = parse_ok(text);
	int v = vg_alarm_rule_eval(r, states);
	char *canon = vg_alarm_rule_format(r);
	struct vg_alarm_rule *r2 = parse_ok(canon);

	/* the canonical text means the same thing */
	assert_int_equal(vg_alarm_rule_nrefs(r2), vg_alarm_rule_nrefs(r));
	assert_int_equal(vg_alarm_rule_eval(r2, states), v);
	free(canon);
	vg_alarm_rule_free(r2);
	vg_alarm_rule_free(r);
	return v;
}

static void test_truth_tables(void **state)
{
	int aa[] = {A, A}, ao[] = {A, O}, oa[] = {O, A}, oo[] = {O, O};

	assert_true(eval("a AND b", aa));
	assert_false(eval("a AND b", ao));
	assert_true(eval("a OR b", oa));
	assert_false(eval("a OR b", oo));
	assert_true(eval("ALARM(a) && OK(b)", ao));
	assert_false(eval("ALARM(a) && OK(b)", aa));
	assert_true(eval("not a or b", oo));
	assert_true(eval("!a || b", oa));
	int ii[] = {I, I};
	assert_true(eval("INSUFFICIENT_DATA(a) and insufficient_data(b)", ii));
	assert_false(eval("a or b", ii));
	assert_true(eval("TRUE", NULL));
	assert_false(eval("FALSE OR NOT TRUE", NULL));
}

static void test_precedence_and_parentheses(void **state)
{
	/* NOT > AND > OR: a OR b AND c == a OR (b AND c) */
	int s1[] = {A, O, O};
	assert_true(eval("a OR b AND c", s1));
	assert_false(eval("(a OR b) AND c", s1));
	int s2[] = {O, A};
	assert_false(eval("NOT a AND NOT b", s2));
	assert_true(eval("NOT (a AND b)", s2));
	assert_true(eval("NOT NOT b", (int[]){A}));
	assert_true(eval("((((a))))", (int[]){A}));
}

static void test_references(void **state)
{
	struct vg_alarm_rule *r =
		parse_ok("ALARM(cpu-high) AND NOT (OK(\"disk:full\") OR "
			 "web.5xx OR cpu-high)");

	assert_int_equal(vg_alarm_rule_nrefs(r), 3);
	assert_string_equal(vg_alarm_rule_ref(r, 0), "cpu-high");
	assert_string_equal(vg_alarm_rule_ref(r, 1), "disk:full");
	assert_string_equal(vg_alarm_rule_ref(r, 2), "web.5xx");
	assert_null(vg_alarm_rule_ref(r, 3));
	char *f = vg_alarm_rule_format(r);
	assert_string_equal(f, "ALARM(\"cpu-high\") AND NOT (OK(\"disk:full\") OR "
			       "ALARM(\"web.5xx\") OR ALARM(\"cpu-high\"))");
	free(f);
	vg_alarm_rule_free(r);
	/* an alarm named like a keyword is quoted */
	r = parse_ok("ALARM(\"and\") or 'ok'");
	assert_string_equal(vg_alarm_rule_ref(r, 0), "and");
	assert_string_equal(vg_alarm_rule_ref(r, 1), "ok");
	vg_alarm_rule_free(r);
}

static void expect_error(const char *text, int rc, const char *msg)
{
	struct vg_alarm_rule *r = (void *)1;
	char err[160];

	assert_int_equal(vg_alarm_rule_parse(text, &r, err, sizeof(err)), rc);
	assert_null(r);
	if (!strstr(err, msg))
		fail_msg("'%s': error '%s' lacks '%s'", text, err, msg);
}

static void test_errors(void **state)
{
	expect_error("", -EINVAL, "empty rule");
	expect_error("a AND", -EINVAL, "at 6: unexpected end of rule");
	expect_error("(a OR b", -EINVAL, "expected ')'");
	expect_error("a OR b)", -EINVAL, "at 7: unbalanced ')'");
	expect_error("ALARM a", -EINVAL, "expected '(' after a state keyword");
	expect_error("OK()", -EINVAL, "expected an alarm name");
	expect_error("a b", -EINVAL, "at 3: expected AND, OR");
	expect_error("a & b", -EINVAL, "unexpected character");
	expect_error("\"unterminated", -EINVAL, "unexpected character");
	expect_error("\"sp ace\"", -EINVAL, "unexpected character");
	expect_error("a AND $", -EINVAL, "at 7:");
	expect_error("OK(\"\")", -EINVAL, "expected an alarm name");

	char deep[200] = "";
	for (int i = 0; i < 40; i++)
		strcat(deep, "(");
	strcat(deep, "a");
	for (int i = 0; i < 40; i++)
		strcat(deep, ")");
	expect_error(deep, -E2BIG, "nested deeper than 32");

	char many[1100] = "";
	for (int i = 0; i < 70; i++)
		sprintf(many + strlen(many), "%sa%d", i ? " OR " : "", i);
	expect_error(many, -E2BIG, "more than 64 distinct alarms");

	char longr[1100];
	memset(longr, 'a', 1050);
	longr[1050] = '\0';
	expect_error(longr, -E2BIG, "longer than 1024");
}

/* Found by the fuzzer: a long flat chain formatted with a pair of
 * parentheses per operator nested deeper than the parser allows. */
static void test_format_of_long_chain_parses(void **state)
{
	char text[1024] = "", *canon;
	struct vg_alarm_rule *r = NULL, *r2 = NULL;
	char err[128];

	for (int i = 0; i < 60; i++)
		strcat(text, i ? (i % 2 ? " OR a" : " AND NOT a") : "a");
	assert_int_equal(vg_alarm_rule_parse(text, &r, err, sizeof(err)), 0);
	canon = vg_alarm_rule_format(r);
	assert_non_null(canon);
	if (vg_alarm_rule_parse(canon, &r2, err, sizeof(err)))
		fail_msg("canonical form does not parse: %s", err);
	for (int s = 0; s < 3; s++)
		assert_int_equal(vg_alarm_rule_eval(r, &s), vg_alarm_rule_eval(r2, &s));
	free(canon);
	vg_alarm_rule_free(r);
	vg_alarm_rule_free(r2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_truth_tables),
		cmocka_unit_test(test_precedence_and_parentheses),
		cmocka_unit_test(test_references),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_format_of_long_chain_parses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
