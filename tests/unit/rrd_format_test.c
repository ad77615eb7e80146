/*
 * rrd_format_test.c — update values as text (collector/rrd_format.h):
 * every value, short form or not, reads back through strtod as the same
 * double, the common values take their short form, and times keep their
 * milliseconds (negative ones too).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector/rrd_format.h"

static void round_trip(double v)
{
	char buf[VG_RRD_FMT_LEN];
	char *end = vg_rrd_fmt_value(buf, v);
	double back = strtod(buf, NULL);

	assert_int_equal((size_t)(end - buf), strlen(buf));
	if (back != v)
		fail_msg("%.17g written as \"%s\" reads back as %.17g", v, buf, back);
}

static void test_values(void **state)
{
	static const struct {
		double v;
		const char *text;
	} fixed[] = {
		{0, "0"},
		{42, "42"},
		{-7, "-7"},
		{1099511627776.0, "1099511627776"},
		{0.1, "0.1"},
		{12.34, "12.34"},
		{-2.5, "-2.5"},
		{99.999, "99.999"},
		{0.001, "0.001"},
		{1.0 / 3, "0.33333333333333331"},
		{1e20, "1e+20"},
		{0.0001, "0.0001"},
	};
	char buf[VG_RRD_FMT_LEN];

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		vg_rrd_fmt_value(buf, fixed[i].v);
		assert_string_equal(buf, fixed[i].text);
		round_trip(fixed[i].v);
	}
	/* the short forms' edges, and doubles of every magnitude */
	for (int64_t k = -200000; k <= 200000; k += 7)
		round_trip((double)k / 1000.0);
	for (int64_t k = 999999999999990; k <= 1000000000000010; k++)
		round_trip((double)k / 1000.0), round_trip((double)k);
	srand(7);
	for (int i = 0; i < 200000; i++) {
		uint64_t bits = ((uint64_t)rand() << 42) ^ ((uint64_t)rand() << 21) ^ (uint64_t)rand();
		double v;
		memcpy(&v, &bits, sizeof(v));
		if (isfinite(v))
			round_trip(v);
	}
	vg_rrd_fmt_value(buf, NAN);
	assert_true(isnan(strtod(buf, NULL)));
}

static void test_times(void **state)
{
	char buf[VG_RRD_FMT_LEN];
	char *end = vg_rrd_fmt_time_ms(buf, 1700000040229LL);

	assert_string_equal(buf, "1700000040.229");
	assert_int_equal((size_t)(end - buf), strlen(buf));
	vg_rrd_fmt_time_ms(buf, 1700000040000LL);
	assert_string_equal(buf, "1700000040.000");
	vg_rrd_fmt_time_ms(buf, 5);
	assert_string_equal(buf, "0.005");
	vg_rrd_fmt_time_ms(buf, -1500);
	assert_string_equal(buf, "-1.500");
	vg_rrd_fmt_time_ms(buf, -5);
	assert_string_equal(buf, "-0.005");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_times),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
