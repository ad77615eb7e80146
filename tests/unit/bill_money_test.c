/*
 * bill_money_test.c — exact decimals, half-up rounding once per line,
 * 128-bit quantities, and UTC months (February, 30- and 31-day months).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "vigie/bill.h"
#include "vigie/clock.h"

static void test_parse(void **state)
{
	int64_t v;
	(void)state;
	assert_int_equal(vg_bill_money_parse("0.0125", 0, &v), 0);
	assert_int_equal(v, 12500);
	assert_int_equal(vg_bill_money_parse("12", 0, &v), 0);
	assert_int_equal(v, 12000000);
	assert_int_equal(vg_bill_money_parse("0.000001", 0, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(vg_bill_money_parse("-3.5", 1, &v), 0);
	assert_int_equal(v, -3500000);
	assert_int_equal(vg_bill_money_parse("-3.5", 0, &v), -EINVAL);
	assert_int_equal(vg_bill_money_parse("0.0000001", 0, &v), -ERANGE);
	assert_int_equal(vg_bill_money_parse("1e3", 0, &v), -EINVAL);
	assert_int_equal(vg_bill_money_parse("1.", 0, &v), -EINVAL);
	assert_int_equal(vg_bill_money_parse(".5", 0, &v), -EINVAL);
	assert_int_equal(vg_bill_money_parse("", 0, &v), -EINVAL);
	assert_int_equal(vg_bill_money_parse(" 1", 0, &v), -EINVAL);
	assert_int_equal(vg_bill_money_parse("99999999999999999999", 0, &v), -ERANGE);
}

static void test_format(void **state)
{
	char b[40];
	(void)state;
	assert_string_equal(vg_bill_money_format(11960000, 2, b, sizeof(b)), "11.96");
	assert_string_equal(vg_bill_money_format(-500000, 2, b, sizeof(b)), "-0.50");
	assert_string_equal(vg_bill_money_format(7000000, 0, b, sizeof(b)), "7");
	assert_string_equal(vg_bill_money_format(1234, 3, b, sizeof(b)), "0.001");
	assert_string_equal(vg_bill_rate_format(12500, 2, b, sizeof(b)), "0.0125");
	assert_string_equal(vg_bill_rate_format(100000, 2, b, sizeof(b)), "0.10");
	assert_string_equal(vg_bill_rate_format(0, 2, b, sizeof(b)), "0.00");
	assert_string_equal(vg_bill_rate_format(1, 2, b, sizeof(b)), "0.000001");
}

static void test_round_half_up_once(void **state)
{
	(void)state;
	/* 6.25 h at 0.02/h = 0.125 -> 0.13 (half up, not to even) */
	assert_int_equal(vg_bill_amount(22500000, 20000, 3600000, 2), 130000);
	/* 0.124999.. -> 0.12 */
	assert_int_equal(vg_bill_amount(22499999, 20000, 3600000, 2), 120000);
	/* 0.5 h at 0.03 = 0.015 -> 0.02 */
	assert_int_equal(vg_bill_amount(1800000, 30000, 3600000, 2), 20000);
	/* JPY: 0 digits: 2.5 -> 3 */
	assert_int_equal(vg_bill_amount(5, 500000, 1, 0), 3000000);
	/* 3 digits (BHD) */
	assert_int_equal(vg_bill_amount(1, 1500, 1, 3), 2000);
	/* rounding happens once on the line: three 0.004 pieces on one line
	 * are 0.012 -> 0.01, not 3 x 0.00 */
	assert_int_equal(vg_bill_amount(3 * 720000, 20000, 3600000, 2), 10000);
	/* no overflow: 10 TB for 31 days at 1000/GiB-month */
	vg_bill_u128 qty = (vg_bill_u128)10000000000000LL * 2678400000LL;
	vg_bill_u128 den = (vg_bill_u128)1073741824LL * 2678400000LL;
	int64_t a = vg_bill_amount(qty, 1000 * 1000000LL, den, 2);
	/* 10^13 / 2^30 GiB = 9313.225746... x 1000 = 9313225.75 */
	assert_int_equal(a, 9313225750000LL);
	assert_int_equal(vg_bill_amount(0, 5, 7, 2), 0);
	assert_int_equal(vg_bill_amount(5, 0, 7, 2), 0);
}

static void test_u128(void **state)
{
	char b[48];
	vg_bill_u128 v;
	(void)state;
	v = (vg_bill_u128)10000000000000LL * 2678400000LL;
	assert_string_equal(vg_bill_u128_format(v, b, sizeof(b)), "26784000000000000000000");
	vg_bill_u128 back;
	assert_int_equal(vg_bill_u128_parse(b, &back), 0);
	assert_true(back == v);
	assert_int_equal(vg_bill_u128_parse("12a", &back), -EINVAL);
	assert_string_equal(vg_bill_u128_decimal(590370000, 3600000, 6, b, sizeof(b)), "163.991667");
	assert_string_equal(vg_bill_u128_decimal(1, 3, 0, b, sizeof(b)), "0");
	assert_string_equal(vg_bill_u128_decimal(2, 3, 0, b, sizeof(b)), "1");
}

static void test_months(void **state)
{
	struct vg_bill_month m;
	char b[16];
	(void)state;
	assert_int_equal(vg_bill_month_parse("2026-02", &m), 0);
	assert_int_equal(vg_bill_month_len_ms(m), 28LL * 86400000);
	m.year = 2028; /* leap */
	assert_int_equal(vg_bill_month_len_ms(m), 29LL * 86400000);
	m.year = 2100; /* not leap */
	assert_int_equal(vg_bill_month_len_ms(m), 28LL * 86400000);
	m.year = 2000; /* leap */
	assert_int_equal(vg_bill_month_len_ms(m), 29LL * 86400000);
	assert_int_equal(vg_bill_month_parse("2026-11", &m), 0);
	assert_int_equal(vg_bill_month_len_ms(m), 30LL * 86400000);
	assert_int_equal(vg_bill_month_parse("2026-12", &m), 0);
	assert_int_equal(vg_bill_month_len_ms(m), 31LL * 86400000);
	/* 2026-11-01T00:00:00Z = 1793491200 */
	assert_int_equal(vg_bill_month_start_ms((struct vg_bill_month){2026, 11}), 1793491200000LL);
	assert_int_equal(vg_bill_month_end_ms((struct vg_bill_month){2026, 10}), 1793491200000LL);
	m = vg_bill_month_of(1793491200000LL);
	assert_int_equal(m.year, 2026);
	assert_int_equal(m.month, 11);
	m = vg_bill_month_of(1793491200000LL - 1);
	assert_int_equal(m.month, 10);
	m = vg_bill_month_next((struct vg_bill_month){2026, 12});
	assert_string_equal(vg_bill_month_format(m, b, sizeof(b)), "2027-01");
	m = vg_bill_month_prev((struct vg_bill_month){2027, 1});
	assert_string_equal(vg_bill_month_format(m, b, sizeof(b)), "2026-12");
	assert_int_equal(vg_bill_month_parse("2026-13", &m), -EINVAL);
	assert_int_equal(vg_bill_month_parse("2026-1", &m), -EINVAL);
	assert_int_equal(vg_bill_month_parse("2026-01x", &m), -EINVAL);
	/* sscanf's %2d took a sign: ?month=2026-+1 was January's invoice */
	assert_int_equal(vg_bill_month_parse("2026-+1", &m), -EINVAL);
	assert_int_equal(vg_bill_month_parse("2026- 1", &m), -EINVAL);
	assert_int_equal(vg_bill_month_parse("2026--1", &m), -EINVAL);
	/* the range: 9999-12 would end at 10000-01-01T00:00:00Z, past every
	 * time the API takes; 9999-11 ends at a time it does */
	assert_int_equal(vg_bill_month_parse("9999-12", &m), -ERANGE);
	assert_int_equal(vg_bill_month_parse("1969-12", &m), -ERANGE);
	assert_int_equal(vg_bill_month_parse("0000-01", &m), -ERANGE);
	assert_int_equal(vg_bill_month_parse("1970-01", &m), 0);
	assert_int_equal(vg_bill_month_start_ms(m), 0);
	assert_int_equal(vg_bill_month_parse("9999-11", &m), 0);
	{
		char t[32];
		assert_string_equal(vg_time_format(vg_bill_month_end_ms(m), t, sizeof(t)),
				    "9999-12-01T00:00:00Z");
	}
	assert_true(vg_bill_month_cmp((struct vg_bill_month){2026, 1}, (struct vg_bill_month){2025, 12}) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_round_half_up_once),
		cmocka_unit_test(test_u128),
		cmocka_unit_test(test_months),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
