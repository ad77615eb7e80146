/*
 * dispatch_test.c — consumers see every batch in order; a retry request
 * stops the chain; other errors are counted and do not. begin hooks run
 * before any batch(), end hooks after all of them, also after a retry
 * request, and an end()'s retry or error is the batch's. A group calls
 * the group hooks around the batches and keeps each batch's outcome its
 * own.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

/* A consumer with hooks: records "B<id>", "b<id>", "E<id>:<rc>" in a log. */
struct hooked {
	char id;
	int ret, end_ret;
	char *log;
	size_t *len;
};

static void say(struct hooked *h, char what, int rc)
{
	*h->len += (size_t)snprintf(h->log + *h->len, 256 - *h->len, "%c%c", what, h->id);
	if (what == 'E')
		*h->len += (size_t)snprintf(h->log + *h->len, 256 - *h->len, "%d", rc);
	*h->len += (size_t)snprintf(h->log + *h->len, 256 - *h->len, " ");
}

static void hk_begin(void *ctx, const struct vg_batch *b)
{
	say(ctx, 'B', 0);
}

static int hk_batch(void *ctx, const struct vg_batch *b)
{
	say(ctx, 'b', 0);
	return ((struct hooked *)ctx)->ret;
}

static int hk_end(void *ctx, const struct vg_batch *b, int rc)
{
	say(ctx, 'E', rc);
	return ((struct hooked *)ctx)->end_ret;
}

static void test_hooks(void **state)
{
	struct vg_dispatch d;
	char log[256];
	size_t len = 0;
	struct hooked x = {'x', 0, 0, log, &len}, y = {'y', 0, 0, log, &len},
		      z = {'z', 0, 0, log, &len};
	struct vg_consumer cx = {"x", &x, hk_batch, NULL}, cy = {"y", &y, hk_batch, NULL},
			   cz = {"z", &z, hk_batch, NULL};
	struct vg_consumer_hooks both = {.begin = hk_begin, .end = hk_end},
				 end_only = {.end = hk_end};

	vg_dispatch_init(&d);
	assert_int_equal(vg_dispatch_add_hooks(&d, &cx, &both), 0);
	assert_int_equal(vg_dispatch_add(&d, &cy), 0); /* no hooks */
	assert_int_equal(vg_dispatch_add_hooks(&d, &cz, &end_only), 0);

	log[0] = '\0';
	assert_int_equal(vg_dispatch_batch(&d, NULL), 0);
	assert_string_equal(log, "Bx bx by bz Ex0 Ez0 ");

	/* a retry request: the later batch() is skipped, every end() runs
	 * and is told */
	len = 0;
	y.ret = -EAGAIN;
	assert_int_equal(vg_dispatch_batch(&d, NULL), -EAGAIN);
	assert_string_equal(log, "Bx bx by Ex-11 Ez-11 ");

	/* an end() asking for a retry makes the batch a retry */
	len = 0;
	y.ret = 0;
	x.end_ret = -EAGAIN;
	assert_int_equal(vg_dispatch_batch(&d, NULL), -EAGAIN);
	assert_string_equal(log, "Bx bx by bz Ex0 Ez0 ");

	/* an end()'s other error is counted and returned; an earlier
	 * batch() error is what the end()s are told */
	len = 0;
	x.end_ret = 0;
	z.end_ret = -EIO;
	y.ret = -ENOMEM;
	assert_int_equal(vg_dispatch_batch(&d, NULL), -ENOMEM);
	assert_string_equal(log, "Bx bx by bz Ex-12 Ez-12 ");
	assert_int_equal(d.errors[1], 1);
	assert_int_equal(d.errors[2], 1);
	y.ret = 0;
	assert_int_equal(vg_dispatch_batch(&d, NULL), -EIO);
	assert_int_equal(d.errors[2], 2);
}

/* Group hooks: "G<id><n>" before, "H<id><n>" after. */
static void hk_gbegin(void *ctx, const struct vg_batch *const *b, size_t n)
{
	struct hooked *h = ctx;
	*h->len += (size_t)snprintf(h->log + *h->len, 256 - *h->len, "G%c%zu ", h->id, n);
}

static void hk_gend(void *ctx, const struct vg_batch *const *b, size_t n, int *rcs)
{
	struct hooked *h = ctx;
	*h->len += (size_t)snprintf(h->log + *h->len, 256 - *h->len, "H%c%zu ", h->id, n);
	rcs[1] = h->end_ret; /* the second batch's outcome */
}

/* A group: the group hooks around all the batch() calls, a consumer with
 * per-batch hooks still gets them per batch, group_end's outcome for one
 * batch is that batch's only, and a group of one is a single batch. */
static void test_group(void **state)
{
	struct vg_dispatch d;
	char log[256];
	size_t len = 0;
	struct hooked g = {'g', 0, 0, log, &len}, x = {'x', 0, 0, log, &len};
	struct vg_consumer cg = {"g", &g, hk_batch, NULL}, cx = {"x", &x, hk_batch, NULL};
	struct vg_consumer_hooks gh = {.begin = hk_begin, .end = hk_end, .group_begin = hk_gbegin, .group_end = hk_gend},
				 xh = {.begin = hk_begin, .end = hk_end};
	const struct vg_batch *bs[3] = {NULL, NULL, NULL};
	int rcs[3];

	vg_dispatch_init(&d);
	assert_int_equal(vg_dispatch_add_hooks(&d, &cg, &gh), 0);
	assert_int_equal(vg_dispatch_add_hooks(&d, &cx, &xh), 0);
	log[0] = '\0';
	vg_dispatch_group(&d, bs, 3, rcs);
	assert_string_equal(log, "Gg3 Bx bg bx Ex0 Bx bg bx Ex0 Bx bg bx Ex0 Hg3 ");
	assert_int_equal(rcs[0], 0);
	assert_int_equal(rcs[1], 0);
	assert_int_equal(rcs[2], 0);

	len = 0;
	g.end_ret = -EAGAIN;
	vg_dispatch_group(&d, bs, 3, rcs);
	assert_int_equal(rcs[0], 0);
	assert_int_equal(rcs[1], -EAGAIN);
	assert_int_equal(rcs[2], 0);

	/* one batch: the single path, begin and end of both */
	len = 0;
	g.end_ret = 0;
	vg_dispatch_group(&d, bs, 1, rcs);
	assert_string_equal(log, "Bg Bx bg bx Eg0 Ex0 ");
	assert_int_equal(rcs[0], 0);
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
		cmocka_unit_test(test_hooks),
		cmocka_unit_test(test_group),
		cmocka_unit_test(test_capacity),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
