/*
 * lastval_test.c — the registry's in-memory state: resources and metrics
 * found and created, metric lookup by hint and by name, newest value and
 * last_seen win, the dirty stack with its row count, putting rows back,
 * one cache per key, growth to many resources.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector/lastval.h"

static void test_find_create(void **state)
{
	struct vg_lastval *t = vg_lastval_open("/tmp/lv-a");
	struct vg_lastval_resource *r;
	struct vg_lastval_series *a, *b;

	assert_non_null(t);
	vg_lastval_lock(t);
	assert_null(vg_lastval_res(t, "i1", 0));
	r = vg_lastval_res(t, "i1", 1);
	assert_non_null(r);
	assert_string_equal(r->id, "i1");
	assert_true(r->ident == 0); /* unknown: the row must be written */
	assert_ptr_equal(vg_lastval_res(t, "i1", 1), r);
	assert_null(vg_lastval_metric(t, r, "cpu", 0, 0));
	a = vg_lastval_metric(t, r, "cpu", 0, 1);
	b = vg_lastval_metric(t, r, "mem", 1, 1);
	assert_int_equal(a->kind, -1);
	assert_ptr_equal(a->res, r);
	/* by hint, by name whatever the hint, never a wrong one */
	assert_ptr_equal(vg_lastval_metric(t, r, "mem", 1, 0), b);
	assert_ptr_equal(vg_lastval_metric(t, r, "mem", 0, 0), b);
	assert_ptr_equal(vg_lastval_metric(t, r, "cpu", 7, 0), a);
	assert_ptr_equal(vg_lastval_metric(t, r, "cpu", -1, 0), a);
	assert_null(vg_lastval_metric(t, r, "disk", 1, 0));
	assert_int_equal(vg_lastval_count(t), 2);
	vg_lastval_unlock(t);
	vg_lastval_close(t);
}

static void test_newest_and_dirty(void **state)
{
	struct vg_lastval *t = vg_lastval_open("/tmp/lv-b");
	struct vg_lastval_row rows[8];
	struct vg_lastval_resource *r;
	struct vg_lastval_series *m, *q;

	vg_lastval_lock(t);
	r = vg_lastval_res(t, "i", 1);
	m = vg_lastval_metric(t, r, "m", 0, 1);
	q = vg_lastval_metric(t, r, "q", 1, 1);
	assert_int_equal(vg_lastval_dirty_rows(t), 0);
	assert_int_equal(vg_lastval_value(t, m, 2.0, 200), 0);
	assert_int_equal(vg_lastval_value(t, m, 3.0, 300), 0);
	assert_int_equal(vg_lastval_value(t, m, 9.0, 250), 0); /* older */
	assert_true(m->value == 3.0);
	assert_int_equal(m->time_ms, 300);
	assert_int_equal(vg_lastval_dirty_rows(t), 1); /* once */
	assert_int_equal(vg_lastval_seen(t, r, 300), 0);
	assert_int_equal(vg_lastval_seen(t, r, 100), 0); /* older */
	assert_int_equal(r->last_seen, 300);
	assert_int_equal(vg_lastval_dirty_rows(t), 2);
	assert_int_equal(vg_lastval_take_dirty(t, rows), 2);
	assert_int_equal(vg_lastval_dirty_rows(t), 0);
	assert_null(rows[0].m); /* the resource's last_seen first */
	assert_int_equal(rows[0].time_ms, 300);
	assert_ptr_equal(rows[1].m, m);
	assert_true(rows[1].value == 3.0);
	/* later samples after the snapshot do not change it */
	assert_int_equal(vg_lastval_value(t, m, 4.0, 400), 0);
	assert_true(rows[1].value == 3.0);
	/* a non-finite value is held as NaN */
	assert_int_equal(vg_lastval_value(t, q, INFINITY, 400), 0);
	assert_true(isnan(q->value));
	assert_int_equal(vg_lastval_dirty_rows(t), 2);
	/* the snapshot's write failed: its rows come back, no duplicates */
	assert_int_equal(vg_lastval_redirty(t, rows, 2), 0);
	assert_int_equal(vg_lastval_dirty_rows(t), 3);
	assert_int_equal(vg_lastval_take_dirty(t, rows), 3);
	assert_true(rows[1].value == 4.0); /* newest */
	vg_lastval_unlock(t);
	vg_lastval_close(t);
}

static void test_shared_by_key(void **state)
{
	struct vg_lastval *a = vg_lastval_open("/tmp/lv-d");
	struct vg_lastval *b = vg_lastval_open("/tmp/lv-d");
	struct vg_lastval *c = vg_lastval_open("/tmp/lv-e");

	assert_ptr_equal(a, b);
	assert_ptr_not_equal(a, c);
	vg_lastval_lock(a);
	assert_non_null(vg_lastval_res(a, "i", 1));
	vg_lastval_unlock(a);
	vg_lastval_close(a);
	vg_lastval_lock(b); /* still open: b holds a reference */
	assert_non_null(vg_lastval_res(b, "i", 0));
	vg_lastval_unlock(b);
	vg_lastval_lock(c);
	assert_null(vg_lastval_res(c, "i", 0));
	vg_lastval_unlock(c);
	vg_lastval_close(b);
	vg_lastval_close(c);
	/* the last close freed it: a new cache starts empty */
	a = vg_lastval_open("/tmp/lv-d");
	vg_lastval_lock(a);
	assert_null(vg_lastval_res(a, "i", 0));
	vg_lastval_unlock(a);
	vg_lastval_close(a);
	vg_lastval_close(NULL);
}

static void test_many(void **state)
{
	struct vg_lastval *t = vg_lastval_open("/tmp/lv-f");
	struct vg_lastval_row *rows;
	char id[32], m[8];

	vg_lastval_lock(t);
	for (int i = 0; i < 50000; i++) {
		struct vg_lastval_resource *r;
		snprintf(id, sizeof(id), "inst-%d", i / 10);
		snprintf(m, sizeof(m), "m%d", i % 10);
		assert_non_null(r = vg_lastval_res(t, id, 1));
		assert_int_equal(vg_lastval_value(t, vg_lastval_metric(t, r, m, i % 10, 1),
						  i, i),
				 0);
	}
	assert_int_equal(vg_lastval_count(t), 50000);
	for (int i = 0; i < 50000; i += 997) {
		struct vg_lastval_resource *r;
		snprintf(id, sizeof(id), "inst-%d", i / 10);
		snprintf(m, sizeof(m), "m%d", i % 10);
		assert_non_null(r = vg_lastval_res(t, id, 0));
		assert_true(vg_lastval_metric(t, r, m, -1, 0)->value == i);
	}
	assert_int_equal(vg_lastval_dirty_rows(t), 50000);
	rows = malloc(50000 * sizeof(*rows));
	assert_int_equal(vg_lastval_take_dirty(t, rows), 50000);
	free(rows);
	vg_lastval_unlock(t);
	vg_lastval_close(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find_create),
		cmocka_unit_test(test_newest_and_dirty),
		cmocka_unit_test(test_shared_by_key),
		cmocka_unit_test(test_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
