/*
 * dispatch_test.c — consumers see every batch in order; a retry request
 * stops the chain; other errors are counted and do not.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vigie/dispatch.h"

struct probe {
	int calls, ret, ticks;
	int *order, *pos;
};

static int probe_batch(void *ctx, const struct vg_batch *b)
{
	struct probe *p = ctx;
	p->calls++;
	p->order[(*p->pos)++] = p->ret;
	return p->ret;
}

static void probe_tick(void *ctx, int64_t now)
{
	((struct probe *)ctx)->ticks++;
}

static void test_order_and_errors(void **state)
{
	struct vg_dispatch d;
	int order[8], pos = 0;
	struct probe a = {0, 0, 0, order, &pos}, b = {0, -EIO, 0, order, &pos},
		     c = {0, 1, 0, order, &pos};
	vg_dispatch_init(&d);
	struct vg_consumer ca = {"a", &a, probe_batch, probe_tick},
			   cb = {"b", &b, probe_batch, NULL}, cc = {"c", &c, probe_batch, NULL};
	vg_dispatch_add(&d, &ca);
	vg_dispatch_add(&d, &cb);
	vg_dispatch_add(&d, &cc);
	c.ret = 0;
	assert_int_equal(vg_dispatch_batch(&d, NULL), -EIO);
	assert_int_equal(a.calls + b.calls + c.calls, 3); /* all still called */
	assert_int_equal(d.errors[1], 1);
	assert_int_equal(order[0], 0);
	assert_int_equal(order[1], -EIO);
	b.ret = -EAGAIN;
	assert_int_equal(vg_dispatch_batch(&d, NULL), -EAGAIN);
	assert_int_equal(c.calls, 1); /* later consumers skipped on retry */
	vg_dispatch_tick(&d, 5);
	assert_int_equal(a.ticks, 1);
}

static void test_capacity(void **state)
{
	struct vg_dispatch d;
	struct probe p = {0};
	struct vg_consumer c = {"p", &p, probe_batch, NULL};
	vg_dispatch_init(&d);
	for (int i = 0; i < VG_DISPATCH_MAX; i++)
		assert_int_equal(vg_dispatch_add(&d, &c), 0);
	assert_int_equal(vg_dispatch_add(&d, &c), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_and_errors),
		cmocka_unit_test(test_capacity),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
