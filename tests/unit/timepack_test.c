/*
 * timepack_test.c — times packed as varints (collector/timepack.h), the
 * start replay's journaled times: every time comes back exactly and in
 * its order (steps forward, back, repeated, the int64 extremes), the
 * first after a time is the one a linear search of the int64 array
 * finds, and a 10 s poll's step takes 2 bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "collector/timepack.h"

static void check_round_trip(const int64_t *t, size_t n)
{
	struct vg_tpack p = {0};
	int64_t *out = malloc((n + 1) * sizeof(*out));
	size_t m = 0;

	assert_non_null(out);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(vg_tpack_add(&p, t[i]), 0);
	/* an immediate repeat is dropped, as a record's other metrics */
	for (size_t i = 0; i < n; i++)
		if (!i || t[i] != t[i - 1])
			m++;
	assert_int_equal(p.n, m);
	assert_int_equal(vg_tpack_unpack(p.b, p.len, out), m);
	for (size_t i = 0, k = 0; i < n; i++)
		if (!i || t[i] != t[i - 1])
			assert_true(out[k++] == t[i]);
	vg_tpack_free(&p);
	free(out);
}

static void test_round_trip(void **state)
{
	const int64_t a[] = {1699999980229LL, 1699999990229LL, 1700000000229LL};
	const int64_t b[] = {1700000000000LL, 1699999940000LL, 1700000060000LL,
			     1700000060000LL, 1699999880000LL, 1700000120000LL};
	const int64_t c[] = {INT64_MIN, INT64_MAX, 0, -1, INT64_MIN, 1, INT64_MAX, -5};

	(void)state;
	check_round_trip(a, 3);
	check_round_trip(b, 6);
	check_round_trip(c, 8);
	check_round_trip(NULL, 0);
}

static void test_sorted_write_and_first_after(void **state)
{
	int64_t t[1000], out[1000];
	uint8_t *b;
	size_t len;

	(void)state;
	srand(7);
	t[0] = 1699999980000LL;
	for (int i = 1; i < 1000; i++)
		t[i] = t[i - 1] + 9000 + rand() % 2000; /* 10 s polls with jitter */
	len = vg_tpack_size(t, 1000);
	/* the first time whole (6 bytes), then 2 bytes a step */
	assert_int_equal(len, 6 + 999 * 2);
	assert_non_null(b = malloc(len));
	vg_tpack_write(t, 1000, b);
	assert_int_equal(vg_tpack_unpack(b, len, out), 1000);
	assert_memory_equal(out, t, sizeof(t));
	for (int k = 0; k < 3000; k++) {
		int64_t after = t[0] - 20000 + (int64_t)rand() % (t[999] - t[0] + 40000);
		int64_t want = INT64_MAX;
		for (int i = 0; i < 1000 && want == INT64_MAX; i++)
			if (t[i] > after)
				want = t[i];
		assert_true(vg_tpack_first_after(b, len, after) == want);
	}
	assert_true(vg_tpack_first_after(b, len, t[999]) == INT64_MAX);
	assert_true(vg_tpack_first_after(b, len, t[500]) == t[501]);
	assert_true(vg_tpack_first_after(NULL, 0, 0) == INT64_MAX);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_sorted_write_and_first_after),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
