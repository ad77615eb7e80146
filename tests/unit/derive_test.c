/*
 * derive_test.c — derived values from two polls, checked against numbers
 * computed by hand, and never negative or built from a counter reset.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agent/derive.h"

#define EPS 1e-9

static void test_delta_and_rate(void **state)
{
	double v = -1;

	assert_int_equal(vg_derive_delta(10, 25, &v), 0);
	assert_true(fabs(v - 15) < EPS);
	assert_int_equal(vg_derive_rate(1000, 1600, 60, &v), 0);
	assert_true(fabs(v - 10) < EPS);
	/* counter went backwards: no value, output untouched */
	v = 42;
	assert_int_equal(vg_derive_delta(100, 99, &v), -ERANGE);
	assert_int_equal(vg_derive_rate(100, 5, 10, &v), -ERANGE);
	assert_true(v == 42);
	/* missing / invalid inputs */
	assert_int_equal(vg_derive_delta(NAN, 5, &v), -EINVAL);
	assert_int_equal(vg_derive_delta(5, INFINITY, &v), -EINVAL);
	assert_int_equal(vg_derive_rate(1, 2, 0, &v), -EINVAL);
	assert_int_equal(vg_derive_rate(1, 2, -5, &v), -EINVAL);
	assert_true(v == 42);
}

static void test_cpu_util(void **state)
{
	double v = -1;

	/* 2 vCPUs, 10 s, 10 s of CPU used -> 50 % */
	assert_int_equal(vg_derive_cpu_util(100.0, 110.0, 10.0, 2, &v), 0);
	assert_true(fabs(v - 50.0) < EPS);
	/* 4 vCPUs, 60 s, 30 s used -> 12.5 % */
	assert_int_equal(vg_derive_cpu_util(5.0, 35.0, 60.0, 4, &v), 0);
	assert_true(fabs(v - 12.5) < EPS);
	/* idle guest */
	assert_int_equal(vg_derive_cpu_util(7.0, 7.0, 10.0, 1, &v), 0);
	assert_true(v == 0);
	/* jitter above 100 % is clamped */
	assert_int_equal(vg_derive_cpu_util(0.0, 10.2, 10.0, 1, &v), 0);
	assert_true(v == 100.0);
	/* restart: cpu time fell from 5000 s to 3 s -> no value, not huge */
	v = 7;
	assert_int_equal(vg_derive_cpu_util(5000.0, 3.0, 10.0, 2, &v), -ERANGE);
	assert_true(v == 7);
	/* vcpus unknown or zero */
	assert_int_equal(vg_derive_cpu_util(1, 2, 10, 0, &v), -EINVAL);
	assert_int_equal(vg_derive_cpu_util(1, 2, 10, NAN, &v), -EINVAL);
	/* process util is per host CPU, not clamped */
	assert_int_equal(vg_derive_proc_util(7.5, 10.0, 10.0, &v), 0);
	assert_true(fabs(v - 25.0) < EPS);
	assert_int_equal(vg_derive_proc_util(0, 30, 10, &v), 0);
	assert_true(fabs(v - 300.0) < EPS);
}

static void test_latency(void **state)
{
	double v = -1;

	/* 100 reads took 0.3 s in total -> 3 ms per read */
	assert_int_equal(vg_derive_latency(2.0, 2.3, 1000, 1100, &v), 0);
	assert_true(fabs(v - 0.003) < EPS);
	/* no operation completed: undefined, not 0 */
	v = 9;
	assert_int_equal(vg_derive_latency(2.0, 2.0, 1000, 1000, &v), -ENODATA);
	assert_true(v == 9);
	/* reset of either counter */
	assert_int_equal(vg_derive_latency(2.0, 0.1, 1000, 1100, &v), -ERANGE);
	assert_int_equal(vg_derive_latency(2.0, 2.5, 1000, 10, &v), -ERANGE);
	assert_true(v == 9);
}

static void test_queue_and_idle(void **state)
{
	double v = -1;

	/* requests spent 20 s in total over 10 s -> 2 outstanding */
	assert_int_equal(vg_derive_queue_length(6.0, 26.0, 10.0, &v), 0);
	assert_true(fabs(v - 2.0) < EPS);
	/* busy 5 s of 10 -> idle 5 s */
	assert_int_equal(vg_derive_idle_time(4.0, 9.0, 10.0, &v), 0);
	assert_true(fabs(v - 5.0) < EPS);
	/* busy longer than dt (sum of overlapping request times) -> 0 */
	assert_int_equal(vg_derive_idle_time(0.0, 25.0, 10.0, &v), 0);
	assert_true(v == 0);
	/* fully idle */
	assert_int_equal(vg_derive_idle_time(3.0, 3.0, 10.0, &v), 0);
	assert_true(fabs(v - 10.0) < EPS);
	v = 1;
	assert_int_equal(vg_derive_queue_length(26.0, 6.0, 10.0, &v), -ERANGE);
	assert_int_equal(vg_derive_idle_time(26.0, 6.0, 10.0, &v), -ERANGE);
	assert_int_equal(vg_derive_idle_time(1, 2, 0, &v), -EINVAL);
	assert_true(v == 1);
}

static void test_host_cpu(void **state)
{
	/* The t0 -> t1 fixture numbers (tests/fixtures/proc/README). */
	struct vg_cpu_times a = {1000, 100, 500, 8000, 200, 50, 50, 100, 2};
	struct vg_cpu_times b = {1600, 200, 800, 8800, 300, 80, 70, 150, 2};
	struct vg_cpu_pct p;

	assert_int_equal(vg_derive_host_cpu(&a, &b, &p), 0);
	assert_true(fabs(p.user - 30.0) < EPS);
	assert_true(fabs(p.nice - 5.0) < EPS);
	assert_true(fabs(p.system - 15.0) < EPS);
	assert_true(fabs(p.idle - 40.0) < EPS);
	assert_true(fabs(p.iowait - 5.0) < EPS);
	assert_true(fabs(p.irq - 2.5) < EPS);
	assert_true(fabs(p.steal - 2.5) < EPS);
	assert_true(fabs(p.user + p.nice + p.system + p.idle + p.iowait + p.irq +
			 p.steal - 100.0) < 1e-6);
	/* no time passed */
	assert_int_equal(vg_derive_host_cpu(&a, &a, &p), -EINVAL);
	/* a counter went backwards (e.g. CPU hot-unplug) */
	struct vg_cpu_times c = b;
	c.user = 10;
	assert_int_equal(vg_derive_host_cpu(&b, &c, &p), -ERANGE);
	/* iowait going down is tolerated (kernel estimate), counted as 0 */
	c = b;
	c.iowait = 250;
	c.idle = 9800;
	assert_int_equal(vg_derive_host_cpu(&b, &c, &p), 0);
	assert_true(p.iowait == 0);
	assert_true(fabs(p.idle - 100.0) < EPS);
}

static void test_overhead(void **state)
{
	double v = -1;

	/* QEMU used 3 s, vCPUs 2.5 s, over 10 s -> 5 % of one CPU */
	assert_int_equal(vg_derive_overhead(10.0, 13.0, 4.0, 6.5, 10.0, &v), 0);
	assert_true(fabs(v - 5.0) < EPS);
	/* read skew can make vCPU > process: clamp at 0 */
	assert_int_equal(vg_derive_overhead(10.0, 12.0, 4.0, 6.5, 10.0, &v), 0);
	assert_true(v == 0);
	assert_int_equal(vg_derive_overhead(10.0, 12.0, NAN, 6.5, 10.0, &v), -EINVAL);
	assert_int_equal(vg_derive_overhead(10.0, 2.0, 4.0, 6.5, 10.0, &v), -ERANGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delta_and_rate),
		cmocka_unit_test(test_cpu_util),
		cmocka_unit_test(test_latency),
		cmocka_unit_test(test_queue_and_idle),
		cmocka_unit_test(test_host_cpu),
		cmocka_unit_test(test_overhead),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
