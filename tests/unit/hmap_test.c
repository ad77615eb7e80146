/*
 * hmap_test.c — the agent's string-keyed hash map: put/get/replace/delete,
 * growth across many keys, tombstone reuse, and iteration with deletion.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "vigie/agent_hmap.h"

static void test_basic(void **state)
{
	struct vg_hmap *m = vg_hmap_new();
	int a = 1, b = 2;

	assert_non_null(m);
	assert_null(vg_hmap_get(m, "x"));
	assert_int_equal(vg_hmap_put(m, "x", &a), 0);
	assert_ptr_equal(vg_hmap_get(m, "x"), &a);
	assert_int_equal(vg_hmap_put(m, "x", &b), 0); /* replace */
	assert_ptr_equal(vg_hmap_get(m, "x"), &b);
	assert_int_equal(vg_hmap_count(m), 1);
	assert_int_equal(vg_hmap_put(m, "y", NULL), -EINVAL);
	assert_ptr_equal(vg_hmap_del(m, "x"), &b);
	assert_null(vg_hmap_get(m, "x"));
	assert_null(vg_hmap_del(m, "x"));
	assert_int_equal(vg_hmap_count(m), 0);
	vg_hmap_free(m);
	vg_hmap_free(NULL);
}

static void test_many(void **state)
{
	struct vg_hmap *m = vg_hmap_new();
	static int vals[5000];
	char key[32];

	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 5000; i++) {
			snprintf(key, sizeof(key), "uuid-%d", i);
			vals[i] = i;
			assert_int_equal(vg_hmap_put(m, key, &vals[i]), 0);
		}
		assert_int_equal(vg_hmap_count(m), 5000);
		for (int i = 0; i < 5000; i++) {
			snprintf(key, sizeof(key), "uuid-%d", i);
			int *v = vg_hmap_get(m, key);
			assert_non_null(v);
			assert_int_equal(*v, i);
		}
		/* delete the odd ones while iterating */
		size_t pos = 0, seen = 0;
		const char *k;
		void *v;
		while (vg_hmap_next(m, &pos, &k, &v)) {
			seen++;
			if (*(int *)v % 2)
				assert_ptr_equal(vg_hmap_del(m, k), v);
		}
		assert_int_equal(seen, 5000);
		assert_int_equal(vg_hmap_count(m), 2500);
		assert_null(vg_hmap_get(m, "uuid-1"));
		assert_non_null(vg_hmap_get(m, "uuid-2"));
		/* delete the rest: tombstones everywhere, then reinsert */
		for (int i = 0; i < 5000; i += 2) {
			snprintf(key, sizeof(key), "uuid-%d", i);
			assert_non_null(vg_hmap_del(m, key));
		}
		assert_int_equal(vg_hmap_count(m), 0);
	}
	vg_hmap_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
