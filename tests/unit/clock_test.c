/*
 * clock_test.c — time formatting and every accepted input form of
 * vg_time_parse, plus the synthetic clock that tests replay with.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vigie/clock.h"

static void test_format(void **state)
{
	char buf[32];
	assert_string_equal(vg_time_format(0, buf, sizeof(buf)), "1970-01-01T00:00:00Z");
	assert_string_equal(vg_time_format(1795000000999LL, buf, sizeof(buf)), "2026-11-18T11:06:40Z");
	/* negative times round down to the whole second before them */
	assert_string_equal(vg_time_format(-1, buf, sizeof(buf)), "1969-12-31T23:59:59Z");
	assert_string_equal(vg_time_format(-1000, buf, sizeof(buf)), "1969-12-31T23:59:59Z");
	assert_string_equal(vg_time_format(-1001, buf, sizeof(buf)), "1969-12-31T23:59:58Z");
	/* regression (wire fuzz): INT64_MIN overflowed computing the second */
	assert_string_equal(vg_time_format(INT64_MIN, buf, sizeof(buf)),
			    "-292275055-05-16T16:47:04Z");
	assert_non_null(vg_time_format(INT64_MAX, buf, sizeof(buf)));
}

static void test_parse(void **state)
{
	int64_t t, now = 1795000000000LL;
	assert_int_equal(vg_time_parse("2026-11-18T11:06:40Z", now, &t), 0);
	assert_int_equal(t, 1795000000000LL);
	assert_int_equal(vg_time_parse("2026-11-18T12:06:40+01:00", now, &t), 0);
	assert_int_equal(t, 1795000000000LL);
	/* fractions to the millisecond (points published under a second
	 * apart stay apart), further digits truncated */
	assert_int_equal(vg_time_parse("2026-11-18T11:06:40.250Z", now, &t), 0);
	assert_int_equal(t, 1795000000250LL);
	assert_int_equal(vg_time_parse("2026-11-18T11:06:40.2Z", now, &t), 0);
	assert_int_equal(t, 1795000000200LL);
	assert_int_equal(vg_time_parse("2026-11-18T11:06:40.123999+00:00", now, &t), 0);
	assert_int_equal(t, 1795000000123LL);
	assert_int_equal(vg_time_parse("2026-11-18T12:06:40.007+01:00", now, &t), 0);
	assert_int_equal(t, 1795000000007LL);
	assert_int_equal(vg_time_parse("1795000000.25", now, &t), 0);
	assert_int_equal(t, 1795000000250LL);
	assert_int_equal(vg_time_parse("2024-02-29", now, &t), 0);
	assert_int_equal(t, 1709164800000LL);
	assert_int_equal(vg_time_parse("2000-02-29T23:59:60Z", now, &t), 0);
	assert_int_equal(vg_time_parse("2026-12-31", now, &t), 0);
	assert_int_equal(vg_time_parse("2026-04-30", now, &t), 0);
	assert_int_equal(vg_time_parse("1795000000", now, &t), 0);
	assert_int_equal(t, 1795000000000LL);
	assert_int_equal(vg_time_parse("-3h", now, &t), 0);
	assert_int_equal(t, now - 3 * 3600 * 1000LL);
	assert_int_equal(vg_time_parse("-15m", now, &t), 0);
	assert_int_equal(t, now - 900000);
	assert_int_equal(vg_time_parse("now", now, &t), 0);
	assert_int_equal(t, now);
	assert_int_equal(vg_time_parse("-1.5h", now, &t), 0);
	assert_int_equal(t, now - 5400000);
	assert_int_equal(vg_time_parse("+2d", now, &t), 0);
	assert_int_equal(t, now + 2 * 86400000LL);
	assert_int_equal(vg_duration_parse("90m", &t), 0);
	assert_int_equal(t, 5400000);
	assert_int_equal(vg_duration_parse("1e2h", &t), -EINVAL);
	const char *bad[] = {"", "yesterday", "2026-13-01", "2026-11-18T25:00:00Z",
			     "-3y", "12abc", "2026-11-18T11:06:40Q", "-",
			     /* regressions (fuzz): NaN reached an int64 cast;
			      * sscanf's %2d took negative fields */
			     "nan", "NAN", "-nan", "+nan(0x1)", "-nanm",
			     "2026-11-18T-1:-1Z", "2026-11-18T11:06:-1Z",
			     "2026-11-18T11:06+-1:-5", "2026-11-18T11:06:40.Z",
			     /* days a month does not have were moved into the
			      * next month (2026-02-30 read as 2026-03-02); a
			      * sign inside a field was read as a digit */
			     "2026-02-30", "2026-02-29", "2100-02-29", "2026-04-31",
			     "2026-06-31T00:00:00Z", "2026-00-10", "2026-11-00",
			     "2026-+1-01", "2026-11-+1", "2026-11-18T+1:06Z",
			     "2026-11-18T11:+6Z", "2026-11-18T11:06:+1Z",
			     "2026-11-18T11:06+01:+5", "2026-11-18T 1:06Z",
			     /* strtod's other syntaxes are no epoch seconds or
			      * relative time; nor is a moment outside
			      * 1970..9999 ("-99999999d" was the year -271764) */
			     "0x10", " 5", "1e9", "5 ", "-0x10h", "- 1h", "-1e3h",
			     "-infh", "-1.h", "-.5h", "-99999999d", "+99999999d",
			     "1970-01-01T00:00:00+01:00"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(vg_time_parse(bad[i], now, &t), -EINVAL);
}

static void test_synthetic(void **state)
{
	struct vg_clock c;
	vg_clock_synthetic(&c, 1000, 60000);
	assert_int_equal(vg_clock_now(&c), 1000);
	vg_clock_tick(&c);
	vg_clock_tick(&c);
	assert_int_equal(vg_clock_now(&c), 121000);
	vg_clock_real(&c);
	int64_t a = vg_now_ms();
	assert_true(vg_clock_now(&c) >= a);
}

/* Civil dates, shared by ISO parsing and billing months: known days,
 * leap rules (2000 leap, 1900 and 2100 not), and a round trip over six
 * centuries either side of the epoch. */
static void test_civil(void **state)
{
	int64_t y;
	unsigned m, d;

	assert_int_equal(vg_time_days_from_civil(1970, 1, 1), 0);
	assert_int_equal(vg_time_days_from_civil(2024, 2, 29), 19782);
	assert_int_equal(vg_time_days_from_civil(1969, 12, 31), -1);
	assert_int_equal(vg_time_days_from_civil(2000, 3, 1) -
				 vg_time_days_from_civil(2000, 2, 28),
			 2);
	assert_int_equal(vg_time_days_from_civil(2100, 3, 1) -
				 vg_time_days_from_civil(2100, 2, 28),
			 1);
	assert_int_equal(vg_time_days_from_civil(1900, 3, 1) -
				 vg_time_days_from_civil(1900, 2, 28),
			 1);
	vg_time_civil_from_days(19782, &y, &m, &d);
	assert_true(y == 2024 && m == 2 && d == 29);
	vg_time_civil_from_days(-1, &y, &m, &d);
	assert_true(y == 1969 && m == 12 && d == 31);
	for (int64_t days = -220000; days < 220000; days += 7) {
		vg_time_civil_from_days(days, &y, &m, &d);
		assert_true(m >= 1 && m <= 12 && d >= 1 && d <= 31);
		assert_int_equal(vg_time_days_from_civil(y, m, d), days);
	}
}

/* one phase of a batch: its own bound or the batch's deadline, whichever
 * first (vg_phase_end, every phase's end) */
static void test_phase_end(void **state)
{
	int by = -1;

	(void)state;
	assert_int_equal(vg_phase_end(1000, 500, 0, &by), 1500); /* no deadline */
	assert_int_equal(by, 0);
	assert_int_equal(vg_phase_end(1000, 500, 1200, &by), 1200); /* deadline first */
	assert_int_equal(by, 1);
	assert_int_equal(vg_phase_end(1000, 500, 1800, &by), 1500); /* bound first */
	assert_int_equal(by, 0);
	assert_int_equal(vg_phase_end(1000, 500, 1500, &by), 1500); /* a tie: the bound's */
	assert_int_equal(by, 0);
	assert_int_equal(vg_phase_end(1000, 0, 1800, &by), 1800); /* no bound of its own */
	assert_int_equal(by, 1);
	assert_int_equal(vg_phase_end(1000, 0, 0, &by), 0); /* neither */
	assert_int_equal(by, 0);
	assert_int_equal(vg_phase_end(1000, 500, 900, NULL), 900); /* already past */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_synthetic),
		cmocka_unit_test(test_civil),
		cmocka_unit_test(test_phase_end),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
