/*
 * bill_ledger_test.c — the hand-written ledger (tests/fixtures/billing/
 * ledger-2026-10.txt) fed as real vg_batch objects through the meter
 * consumer must give the invoices computed by hand in its comments, to the
 * cent; re-delivered batches must change nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vigie/bill_invoice.h"
#include "billing/ledger.h"
#include "vigie/bill_meter.h"
#include "vigie/dispatch.h"

#include "../support/db_engines.h"
#include "../support/tmpdir.h"

#define LEDGER "tests/fixtures/billing/ledger-2026-10.txt"

struct fx {
	const struct dbe *e;
	char dir[64], db[700];
	struct vg_bill_ledger *l;
	struct vg_bill_ratecard *rc;
	struct vg_bill_meter *m;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[512];
	int rc;

	f->e = *state;
	*state = f;
	strcpy(f->dir, "/tmp/vg-bill-ledger.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	if ((rc = dbe_fresh(f->e, f->db, sizeof(f->db))))
		return rc < 0 ? -1 : 0;
	if (vg_bill_ledger_load(LEDGER, &f->l, err, sizeof(err)))
		fail_msg("%s", err);
	if (vg_bill_ratecard_load(f->l->ratecard, &f->rc, err, sizeof(err)))
		fail_msg("%s", err);
	if (vg_bill_meter_open(f->db, &f->m, err, sizeof(err)))
		fail_msg("%s", err);
	return 0;
}

/* The case's fixture; skips (or fails) when its engine cannot run. */
static struct fx *fx_get(void **state)
{
	struct fx *f = *state;
	if (!f->m)
		dbe_need(f->e);
	return f;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	vg_bill_meter_close(f->m);
	vg_bill_ratecard_free(f->rc);
	vg_bill_ledger_free(f->l);
	assert_int_equal(fx_rm_tree(f->dir), 0);
	free(f);
	return 0;
}

/* Feed every batch through a dispatch with the meter registered, `times`
 * times each in a row (at-least-once delivery). */
static void feed(struct fx *f, int times)
{
	struct vg_dispatch d;
	struct vg_consumer c = vg_bill_meter_consumer(f->m);

	vg_dispatch_init(&d);
	assert_int_equal(vg_dispatch_add(&d, &c), 0);
	for (size_t i = 0; i < f->l->nbatches; i++)
		for (int k = 0; k < times; k++)
			assert_int_equal(vg_dispatch_batch(&d, f->l->batches[i]), 0);
}

/* Check every month with expectations; returns the mismatches. */
static int check_all(struct fx *f)
{
	struct vg_bill_month months[12];
	size_t nm = vg_bill_ledger_months(f->l, months, 12);
	int bad = 0;

	assert_true(nm >= 3);
	for (size_t i = 0; i < nm; i++) {
		struct vg_bill_usage u;
		struct vg_bill_invoice **inv;
		size_t n;
		assert_int_equal(vg_bill_usage_load(vg_bill_meter_db(f->m),
						    vg_bill_month_start_ms(months[i]),
						    vg_bill_month_end_ms(months[i]), NULL, &u), 0);
		assert_int_equal(vg_bill_invoice_compute_all(&u, f->rc, months[i], &inv, &n), 0);
		bad += vg_bill_ledger_check(f->l, months[i], inv, n, stderr);
		for (size_t k = 0; k < n; k++)
			vg_bill_invoice_free(inv[k]);
		free(inv);
		vg_bill_usage_clear(&u);
	}
	return bad;
}

static void test_ledger_matches_hand_computation(void **state)
{
	struct fx *f = fx_get(state);
	feed(f, 1);
	assert_int_equal(check_all(f), 0);
}

static void test_redelivery_changes_nothing(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_meter_stats st;

	feed(f, 3);                 /* each batch three times in a row */
	assert_int_equal(check_all(f), 0);
	feed(f, 1);                 /* and the whole month again */
	assert_int_equal(check_all(f), 0);
	vg_bill_meter_get_stats(f->m, &st);
	assert_true(st.stale > 0);
}

static void test_per_project_invoice_equals_all(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_month oct = {2026, 10};
	struct vg_bill_invoice *one, **all;
	struct vg_bill_usage u;
	char *a = NULL, *b = NULL, *c = NULL;
	size_t la, lb, lc, n;

	feed(f, 1);
	/* one project through the draft path (vg_bill_invoice_from_db) ... */
	assert_int_equal(vg_bill_invoice_from_db(vg_bill_meter_db(f->m), f->rc, oct, "beta", &one), 0);
	assert_int_equal(vg_bill_invoice_render(one, VG_BILL_FMT_JSON, &a, &la), 0);
	vg_bill_invoice_free(one);
	assert_int_equal(vg_bill_invoice_from_db(vg_bill_meter_db(f->m), f->rc, oct, "beta", &one), 0);
	assert_int_equal(vg_bill_invoice_render(one, VG_BILL_FMT_JSON, &b, &lb), 0);
	vg_bill_invoice_free(one);
	assert_int_equal(la, lb);
	assert_memory_equal(a, b, la);
	/* ... is the same document as beta's among all projects' invoices */
	assert_int_equal(vg_bill_usage_load(vg_bill_meter_db(f->m), vg_bill_month_start_ms(oct),
					    vg_bill_month_end_ms(oct), NULL, &u), 0);
	assert_int_equal(vg_bill_invoice_compute_all(&u, f->rc, oct, &all, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(all[1]->project, "beta");
	assert_int_equal(vg_bill_invoice_render(all[1], VG_BILL_FMT_JSON, &c, &lc), 0);
	assert_int_equal(la, lc);
	assert_memory_equal(a, c, la);
	for (size_t i = 0; i < n; i++)
		vg_bill_invoice_free(all[i]);
	free(all);
	vg_bill_usage_clear(&u);
	free(a);
	free(b);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		DBE_BOTH(test_ledger_matches_hand_computation, setup, teardown),
		DBE_BOTH(test_redelivery_changes_nothing, setup, teardown),
		DBE_BOTH(test_per_project_invoice_equals_all, setup, teardown),
	};
	return cmocka_run_group_tests(tests, dbe_group_setup, dbe_group_teardown);
}
