/*
 * alarm_series_test.c — period windows: statistics, the three ways a
 * period closes (next period's sample, expected rhythm, timer), gaps as
 * missing datapoints, late samples, percentiles and counter rates.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vigie/alarm.h"
#include "alarms/series.h"

struct seen {
	int n;
	int64_t start[32];
	uint32_t count[32];
	double avg[32], p90[32], max[32];
};

static void cb(void *ctx, const struct vg_alarm_datapoint *dp)
{
	struct seen *s = ctx;

	s->start[s->n] = dp->start_ms;
	s->count[s->n] = dp->count;
	s->avg[s->n] = vg_alarm_statistic(dp, VG_STAT_AVERAGE, 0);
	s->p90[s->n] = vg_alarm_statistic(dp, VG_STAT_PERCENTILE, 90);
	s->max[s->n] = vg_alarm_statistic(dp, VG_STAT_MAXIMUM, 0);
	s->n++;
}

static void test_closing_by_next_period(void **state)
{
	struct vg_alarm_window w;
	struct seen s = {0};

	vg_alarm_window_init(&w, 60000, 1);
	for (int i = 0; i < 6; i++) /* 10 s samples in [0, 60) */
		assert_int_equal(vg_alarm_window_add(&w, i * 10000, i, 5, cb, &s), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(vg_alarm_window_add(&w, 60000, 100, 5, cb, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.start[0], 0);
	assert_int_equal(s.count[0], 6);
	assert_true(s.avg[0] == 2.5);
	assert_true(s.max[0] == 5);
	assert_true(fabs(s.p90[0] - 4.5) < 1e-9); /* 0..5, rank 4.5 */
	/* a sample for the closed period is late */
	assert_int_equal(vg_alarm_window_add(&w, 59000, 1, 5, cb, &s), -EALREADY);
	assert_int_equal(w.late, 1);
	/* gap of three empty periods then a sample: open + 3 missing */
	assert_int_equal(vg_alarm_window_add(&w, 300000, 7, 5, cb, &s), 0);
	assert_int_equal(s.n, 5);
	assert_int_equal(s.start[1], 60000);
	assert_int_equal(s.count[1], 1);
	for (int i = 2; i < 5; i++) {
		assert_int_equal(s.start[i], i * 60000);
		assert_int_equal(s.count[i], 0);
		assert_true(isnan(s.avg[i]));
	}
	vg_alarm_window_release(&w);
}

static void test_gap_bounded(void **state)
{
	struct vg_alarm_window w;
	struct seen s = {0};

	vg_alarm_window_init(&w, 60000, 0);
	vg_alarm_window_add(&w, 0, 1, 3, cb, &s);
	/* a day later: the open period plus only the 3 most recent empties */
	vg_alarm_window_add(&w, 86400000, 1, 3, cb, &s);
	assert_int_equal(s.n, 4);
	assert_int_equal(s.start[0], 0);
	assert_int_equal(s.start[3], 86400000 - 60000);
	assert_int_equal(s.start[1], 86400000 - 3 * 60000);
	vg_alarm_window_release(&w);
}

static void test_close_if_complete(void **state)
{
	struct vg_alarm_window w;
	struct seen s = {0};

	vg_alarm_window_init(&w, 60000, 0);
	/* one sample per period (interval 60 s): complete on arrival */
	vg_alarm_window_add(&w, 120000, 5, 5, cb, &s);
	assert_int_equal(vg_alarm_window_close_if_complete(&w, 180000, cb, &s), 1);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.start[0], 120000);
	/* the next sample opens the next period without another callback */
	vg_alarm_window_add(&w, 180000, 6, 5, cb, &s);
	assert_int_equal(s.n, 1);
	/* next expected inside the period: not complete */
	assert_int_equal(vg_alarm_window_close_if_complete(&w, 200000, cb, &s), 0);
	vg_alarm_window_release(&w);
}

static void test_timer_expiry(void **state)
{
	struct vg_alarm_window w;
	struct seen s = {0};

	vg_alarm_window_init(&w, 60000, 0);
	vg_alarm_window_add(&w, 10000, 1, 5, cb, &s);
	/* not before end + grace */
	assert_int_equal(vg_alarm_window_expire(&w, 65000, 10000, 5, cb, &s), 0);
	assert_int_equal(vg_alarm_window_expire(&w, 70000, 10000, 5, cb, &s), 1);
	assert_int_equal(s.count[0], 1);
	/* two more periods of silence: two missing datapoints */
	assert_int_equal(vg_alarm_window_expire(&w, 190000, 10000, 5, cb, &s), 2);
	assert_int_equal(s.count[1], 0);
	assert_int_equal(s.start[2], 120000);
	/* a sample from an expired period is late */
	assert_int_equal(vg_alarm_window_add(&w, 150000, 1, 5, cb, &s), -EALREADY);
	vg_alarm_window_release(&w);
}

static void test_statistics(void **state)
{
	double v[] = {1, 2, 3, 4, 100};
	struct vg_alarm_datapoint dp = {.count = 5, .sum = 110, .min = 1, .max = 100, .values = v, .nvalues = 5};

	assert_true(vg_alarm_statistic(&dp, VG_STAT_AVERAGE, 0) == 22);
	assert_true(vg_alarm_statistic(&dp, VG_STAT_MINIMUM, 0) == 1);
	assert_true(vg_alarm_statistic(&dp, VG_STAT_SUM, 0) == 110);
	assert_true(vg_alarm_statistic(&dp, VG_STAT_SAMPLE_COUNT, 0) == 5);
	assert_true(vg_alarm_statistic(&dp, VG_STAT_PERCENTILE, 50) == 3);
	assert_true(vg_alarm_statistic(&dp, VG_STAT_PERCENTILE, 100) == 100);
	assert_true(vg_alarm_statistic(&dp, VG_STAT_PERCENTILE, 0) == 1);
	assert_true(fabs(vg_alarm_statistic(&dp, VG_STAT_PERCENTILE, 87.5) - 52) < 1e-9);
	dp.count = 0;
	assert_true(isnan(vg_alarm_statistic(&dp, VG_STAT_SUM, 0)));
}

static void test_counter_rate(void **state)
{
	int64_t pt = VG_WINDOW_NONE;
	double pv = 0, r = -1;

	assert_int_equal(vg_alarm_rate(&pt, &pv, 0, 100, &r), -ENODATA);
	assert_int_equal(vg_alarm_rate(&pt, &pv, 10000, 600, &r), 0);
	assert_true(r == 50);
	/* reset (guest reboot): no value, then rates resume */
	assert_int_equal(vg_alarm_rate(&pt, &pv, 20000, 10, &r), -ENODATA);
	assert_int_equal(vg_alarm_rate(&pt, &pv, 30000, 30, &r), 0);
	assert_true(r == 2);
	/* a re-sent older sample changes nothing */
	assert_int_equal(vg_alarm_rate(&pt, &pv, 30000, 30, &r), -ENODATA);
	assert_int_equal(pt, 30000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_closing_by_next_period),
		cmocka_unit_test(test_gap_bounded),
		cmocka_unit_test(test_close_if_complete),
		cmocka_unit_test(test_timer_expiry),
		cmocka_unit_test(test_statistics),
		cmocka_unit_test(test_counter_rate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
