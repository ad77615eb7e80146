/*
 * hmap_test.c — the common string-keyed hash map (include/vigie/hmap.h),
 * as the agent and the alarm engine use it: put/get/replace/delete, keys
 * with a length (NUL inside), copied and borrowed keys, growth across many
 * keys, deletion while iterating, tombstone reuse, and the table shrinking
 * back after it emptied (bounded growth), and the *_hashed calls (a hash
 * computed once for several lookups of one key) agreeing with the plain
 * ones across many keys and a rebuild, and clear keeping a well-used
 * table (refilled without a rebuild) and freeing a little-used one.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "vigie/hmap.h"

static void test_basic(void **state)
{
	struct vg_hmap m;
	int a = 1, b = 2;
	void *old = &a;

	(void)state;
	vg_hmap_init(&m);
	assert_null(vg_hmap_gets(&m, "x"));
	assert_null(vg_hmap_dels(&m, "x"));
	assert_int_equal(vg_hmap_put(&m, "x", 1, &a, &old), 0);
	assert_null(old);
	assert_ptr_equal(vg_hmap_gets(&m, "x"), &a);
	assert_int_equal(vg_hmap_put(&m, "x", 1, &b, &old), 0); /* replace */
	assert_ptr_equal(old, &a);
	assert_ptr_equal(vg_hmap_gets(&m, "x"), &b);
	assert_int_equal(vg_hmap_count(&m), 1);
	assert_int_equal(vg_hmap_puts(&m, "y", NULL), -EINVAL);
	assert_int_equal(vg_hmap_puts(NULL, "y", &a), -EINVAL);
	assert_int_equal(vg_hmap_puts(&m, NULL, &a), -EINVAL);
	assert_null(vg_hmap_gets(&m, NULL));
	assert_null(vg_hmap_dels(&m, NULL));
	assert_null(vg_hmap_gets(&m, "y"));
	assert_ptr_equal(vg_hmap_dels(&m, "x"), &b);
	assert_null(vg_hmap_gets(&m, "x"));
	assert_null(vg_hmap_dels(&m, "x"));
	assert_int_equal(vg_hmap_count(&m), 0);
	vg_hmap_release(&m);
	vg_hmap_release(NULL);
	assert_int_equal(vg_hmap_count(NULL), 0);
	/* a released map is empty and usable again */
	assert_int_equal(vg_hmap_puts(&m, "z", &a), 0);
	assert_ptr_equal(vg_hmap_gets(&m, "z"), &a);
	vg_hmap_release(&m);
}

/* Keys are bytes with a length: "a\0b" and "a\0c" differ, "a" is a prefix
 * of both and a key of its own; the copy is NUL-terminated. */
static void test_binary_keys(void **state)
{
	struct vg_hmap m;
	int v1 = 1, v2 = 2, v3 = 3;
	size_t pos = 0, n = 0;
	const struct vg_hmap_entry *it;

	(void)state;
	vg_hmap_init(&m);
	assert_int_equal(vg_hmap_put(&m, "a\0b", 3, &v1, NULL), 0);
	assert_int_equal(vg_hmap_put(&m, "a\0c", 3, &v2, NULL), 0);
	assert_int_equal(vg_hmap_put(&m, "a", 1, &v3, NULL), 0);
	assert_ptr_equal(vg_hmap_get(&m, "a\0b", 3), &v1);
	assert_ptr_equal(vg_hmap_get(&m, "a\0c", 3), &v2);
	assert_ptr_equal(vg_hmap_gets(&m, "a"), &v3);
	assert_null(vg_hmap_get(&m, "a\0", 2));
	while ((it = vg_hmap_next(&m, &pos))) {
		n++;
		assert_int_equal(it->key[it->klen], '\0');
	}
	assert_int_equal(n, 3);
	vg_hmap_release(&m);
}

/* A borrowing map keeps the caller's pointer (no copy) and never frees it. */
static void test_borrow(void **state)
{
	struct vg_hmap m;
	char key[] = "uuid-1";
	size_t pos = 0;
	const struct vg_hmap_entry *it;

	(void)state;
	vg_hmap_init_borrow(&m);
	assert_int_equal(vg_hmap_puts(&m, key, key), 0);
	it = vg_hmap_next(&m, &pos);
	assert_non_null(it);
	assert_ptr_equal(it->key, key);
	assert_ptr_equal(vg_hmap_gets(&m, "uuid-1"), key);
	assert_ptr_equal(vg_hmap_dels(&m, "uuid-1"), key);
	vg_hmap_release(&m); /* would free a stack array if it owned keys */
	assert_int_equal(m.borrow, 1);
}

/* clear: every entry gone and the copied keys freed (the sanitizer build
 * finds a leak otherwise); a table at least a quarter used is kept, so the
 * same fill again needs no new table; one used less is freed. */
static void test_clear(void **state)
{
	struct vg_hmap m;
	static int vals[1000];
	char key[32];

	(void)state;
	vg_hmap_init(&m);
	vg_hmap_clear(&m); /* never filled: nothing to do (no table yet) */
	assert_null(m.slots);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 1000; i++) {
			snprintf(key, sizeof(key), "k%d-%d", round, i);
			assert_int_equal(vg_hmap_puts(&m, key, &vals[i]), 0);
		}
		const struct vg_hmap_entry *slots = m.slots;
		size_t cap = m.cap;
		assert_int_equal(vg_hmap_count(&m), 1000);
		vg_hmap_clear(&m);
		assert_int_equal(vg_hmap_count(&m), 0);
		assert_ptr_equal(m.slots, slots); /* kept */
		assert_int_equal(m.cap, cap);
		snprintf(key, sizeof(key), "k%d-%d", round, 7);
		assert_null(vg_hmap_gets(&m, key));
		size_t pos = 0;
		assert_null(vg_hmap_next(&m, &pos));
	}
	/* refilled to the same size: still the same table */
	const struct vg_hmap_entry *slots = m.slots;
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "again%d", i);
		assert_int_equal(vg_hmap_puts(&m, key, &vals[i]), 0);
	}
	assert_ptr_equal(m.slots, slots);
	assert_ptr_equal(vg_hmap_gets(&m, "again999"), &vals[999]);
	vg_hmap_clear(&m);
	/* a few entries in a large table: the table goes */
	assert_int_equal(vg_hmap_puts(&m, "one", &vals[0]), 0);
	vg_hmap_clear(&m);
	assert_null(m.slots);
	assert_int_equal(m.cap, 0);
	assert_int_equal(vg_hmap_puts(&m, "two", &vals[1]), 0);
	assert_ptr_equal(vg_hmap_gets(&m, "two"), &vals[1]);
	vg_hmap_clear(NULL);
	vg_hmap_release(&m);
}

static void test_many(void **state)
{
	struct vg_hmap m;
	static int vals[5000];
	char key[32];

	(void)state;
	vg_hmap_init(&m);
	vg_hmap_clear(&m); /* never filled: nothing to do (no table yet) */
	assert_null(m.slots);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 5000; i++) {
			snprintf(key, sizeof(key), "uuid-%d", i);
			vals[i] = i;
			assert_int_equal(vg_hmap_puts(&m, key, &vals[i]), 0);
		}
		assert_int_equal(vg_hmap_count(&m), 5000);
		for (int i = 0; i < 5000; i++) {
			snprintf(key, sizeof(key), "uuid-%d", i);
			int *v = vg_hmap_gets(&m, key);
			assert_non_null(v);
			assert_int_equal(*v, i);
		}
		/* delete the odd ones while iterating: each entry seen once */
		size_t pos = 0, seen = 0;
		const struct vg_hmap_entry *it;
		while ((it = vg_hmap_next(&m, &pos))) {
			void *v = it->value;
			seen++;
			if (*(int *)v % 2)
				assert_ptr_equal(vg_hmap_del(&m, it->key, it->klen), v);
		}
		assert_int_equal(seen, 5000);
		assert_int_equal(vg_hmap_count(&m), 2500);
		assert_null(vg_hmap_gets(&m, "uuid-1"));
		assert_non_null(vg_hmap_gets(&m, "uuid-2"));
		/* delete the rest: tombstones everywhere, then reinsert */
		for (int i = 0; i < 5000; i += 2) {
			snprintf(key, sizeof(key), "uuid-%d", i);
			assert_non_null(vg_hmap_dels(&m, key));
		}
		assert_int_equal(vg_hmap_count(&m), 0);
	}
	vg_hmap_release(&m);
}

/* After growing to 5000 keys and emptying, a few puts rebuild the table for
 * the live entries: it shrinks back instead of keeping its peak size, and
 * churn (put/delete of ever new keys) never grows it. */
static void test_bounded(void **state)
{
	struct vg_hmap m;
	static int v;
	char key[32];

	(void)state;
	vg_hmap_init(&m);
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(vg_hmap_puts(&m, key, &v), 0);
	}
	size_t peak = m.cap;
	assert_true(peak >= 5000 * 10 / 7);
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_non_null(vg_hmap_dels(&m, key));
	}
	for (int i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "churn%d", i);
		assert_int_equal(vg_hmap_puts(&m, key, &v), 0);
		assert_ptr_equal(vg_hmap_dels(&m, key), &v);
	}
	assert_int_equal(vg_hmap_count(&m), 0);
	assert_true(m.cap <= 32);
	assert_true(m.cap < peak);
	vg_hmap_release(&m);
}

/* One hash, several maps: what vg_hmap_put_hashed stores vg_hmap_get
 * finds and the other way round, in two maps of different sizes (different
 * masks of the same hash), through rebuilds, and for keys with a NUL. */
static void test_hashed(void **state)
{
	struct vg_hmap a, b;
	static int vals[3000];
	char key[32];

	(void)state;
	vg_hmap_init(&a);
	vg_hmap_init_borrow(&b);
	assert_null(vg_hmap_get_hashed(&a, "x", 1, vg_hmap_hash("x", 1)));
	assert_null(vg_hmap_get_hashed(NULL, "x", 1, vg_hmap_hash("x", 1)));
	assert_null(vg_hmap_get_hashed(&a, NULL, 0, 0));
	assert_int_equal(vg_hmap_put_hashed(&a, "x", 1, vg_hmap_hash("x", 1), NULL, NULL),
			 -EINVAL);
	assert_int_equal(vg_hmap_put_hashed(NULL, "x", 1, vg_hmap_hash("x", 1), vals, NULL),
			 -EINVAL);
	for (int i = 0; i < 3000; i++) {
		int n = snprintf(key, sizeof(key), "res-%d", i);
		key[n] = '\0'; /* "res-i\0": the NUL is part of the key */
		size_t kl = (size_t)n + 1;
		uint64_t h = vg_hmap_hash(key, kl);
		vals[i] = i;
		if (i % 2)
			assert_int_equal(vg_hmap_put_hashed(&a, key, kl, h, &vals[i], NULL), 0);
		else
			assert_int_equal(vg_hmap_put(&a, key, kl, &vals[i], NULL), 0);
		if (i < 20) /* b stays small: another mask of the same hash */
			assert_int_equal(vg_hmap_put_hashed(&b, "b", 1, vg_hmap_hash("b", 1),
							    &vals[i], NULL),
					 0);
	}
	assert_int_equal(vg_hmap_count(&a), 3000);
	assert_int_equal(vg_hmap_count(&b), 1);
	assert_ptr_equal(vg_hmap_gets(&b, "b"), &vals[19]);
	for (int i = 0; i < 3000; i++) {
		int n = snprintf(key, sizeof(key), "res-%d", i);
		key[n] = '\0';
		size_t kl = (size_t)n + 1;
		uint64_t h = vg_hmap_hash(key, kl);
		assert_ptr_equal(vg_hmap_get(&a, key, kl), &vals[i]);
		assert_ptr_equal(vg_hmap_get_hashed(&a, key, kl, h), &vals[i]);
		assert_null(vg_hmap_get_hashed(&a, key, (size_t)n, vg_hmap_hash(key, (size_t)n)));
		assert_null(vg_hmap_get_hashed(&b, key, kl, h));
	}
	/* a replace through the hashed put returns the old value */
	void *old = NULL;
	assert_int_equal(
		vg_hmap_put_hashed(&a, "res-7\0", 6, vg_hmap_hash("res-7\0", 6), &vals[0], &old),
		0);
	assert_ptr_equal(old, &vals[7]);
	assert_int_equal(vg_hmap_count(&a), 3000);
	vg_hmap_release(&a);
	vg_hmap_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_binary_keys),
		cmocka_unit_test(test_borrow),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_hashed),
		cmocka_unit_test(test_clear),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
