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

#include "../support/tmpdir.h"

#define LEDGER "tests/fixtures/billing/ledger-2026-10.txt"

struct fx {
	char dir[64], db[128];
	struct vg_bill_ledger *l;
	struct vg_bill_ratecard *rc;
	struct vg_bill_meter *m;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[512];

	strcpy(f->dir, "/tmp/vg-bill-ledger.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/billing.db", f->dir);
	if (vg_bill_ledger_load(LEDGER, &f->l, err, sizeof(err)))
		fail_msg("%s", err);
	if (vg_bill_ratecard_load(f->l->ratecard, &f->rc, err, sizeof(err)))
		fail_msg("%s", err);
	if (vg_bill_meter_open(f->db, &f->m, err, sizeof(err)))
		fail_msg("%s", err);
	*state = f;
	return 0;
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
	struct fx *f = *state;
	feed(f, 1);
	assert_int_equal(check_all(f), 0);
}

static void test_redelivery_changes_nothing(void **state)
{
	struct fx *f = *state;
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
	struct fx *f = *state;
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

/* The documents ledger: invoices with tax, a usage statement, a live
 * migration, summaries, a credit note (tests/fixtures/billing/
 * ledger-2026-07.txt, figures by hand in its comments). Months are
 * finalized where the file says, with the rate card in force there; the
 * checks read what the API serves (vg_bill_invoices: frozen documents of
 * finalized months, drafts with adjustments otherwise). */
static void test_documents_ledger(void **state)
{
	struct fx *f = *state;
	struct vg_bill_ledger *l;
	struct vg_bill_ratecard *rc;
	sqlite3 *db = vg_bill_meter_db(f->m);
	char err[512];
	size_t b = 0;
	int bad = 0;

	if (vg_bill_ledger_load("tests/fixtures/billing/ledger-2026-07.txt", &l, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(l->nfinal, 1);
	for (size_t k = 0; k <= l->nfinal; k++) {
		size_t upto = k < l->nfinal ? l->final[k].after : l->nbatches;
		for (; b < upto; b++)
			assert_int_equal(vg_bill_meter_batch(f->m, l->batches[b]), 0);
		if (k < l->nfinal) {
			size_t n;
			if (vg_bill_ratecard_load(l->final[k].ratecard, &rc, err, sizeof(err)))
				fail_msg("%s", err);
			assert_int_equal(vg_bill_finalize(db, rc, l->final[k].month, l->final[k].at_ms, &n), 0);
			assert_int_equal(n, 3);
			vg_bill_ratecard_free(rc);
		}
	}
	if (vg_bill_ratecard_load(l->ratecard, &rc, err, sizeof(err)))
		fail_msg("%s", err);
	struct vg_bill_month months[4];
	size_t nm = vg_bill_ledger_months(l, months, 4);
	assert_int_equal(nm, 2);
	for (size_t i = 0; i < nm; i++) {
		struct vg_bill_invoice **inv;
		size_t n;
		assert_int_equal(vg_bill_invoices(db, rc, months[i], NULL, &inv, &n), 0);
		bad += vg_bill_ledger_check(l, months[i], inv, n, stderr);
		for (size_t k = 0; k < n; k++)
			vg_bill_invoice_free(inv[k]);
		free(inv);
	}
	assert_int_equal(bad, 0);

	/* numbers: the issuer's sequence, no project id; dates and terms */
	struct vg_bill_invoice *inv;
	struct vg_bill_month jul = {2026, 7};
	assert_int_equal(vg_bill_invoice_from_db(db, rc, jul, "de-co", &inv), 0);
	assert_string_equal(inv->number, "VC-000001");
	assert_int_equal(inv->payment_terms_days, 15);
	assert_string_equal(inv->customer.name, "Brot GmbH");
	assert_string_equal(inv->issuer.tax_id, "FR00123456789");
	vg_bill_invoice_free(inv);
	assert_int_equal(vg_bill_invoice_from_db(db, rc, jul, "fr-co", &inv), 0);
	assert_string_equal(inv->number, "VC-000002");
	char *html = NULL, *js = NULL, *csv = NULL;
	size_t len;
	assert_int_equal(vg_bill_invoice_render(inv, VG_BILL_FMT_JSON, &js, &len), 0);
	assert_non_null(strstr(js, "\"issue_date\": \"2026-08-01\""));
	assert_non_null(strstr(js, "\"due_date\": \"2026-08-31\""));
	assert_non_null(strstr(js, "\"amount_due\": \"3.62\""));
	assert_int_equal(vg_bill_invoice_render(inv, VG_BILL_FMT_CSV, &csv, &len), 0);
	assert_non_null(strstr(csv, "tax-1,VC-000002,Final,"));
	assert_non_null(strstr(csv, ",Tax,,,vigie,tax,tax,,,3.02,EUR,0.20,0.60,EUR,"));
	assert_int_equal(vg_bill_invoice_render(inv, VG_BILL_FMT_HTML, &html, &len), 0);
	assert_non_null(strstr(html, "<h1>Invoice <span class=\"num\">VC-000002</span></h1>"));
	assert_non_null(strstr(html, "Fromagerie Dupont SARL"));
	assert_non_null(strstr(html, "Tax 20&nbsp;% on 3.02</td><td class=\"n\">0.60</td>"));
	assert_non_null(strstr(html, "Amount due EUR</td><td class=\"n\">3.62</td>"));
	free(html);
	free(js);
	free(csv);
	vg_bill_invoice_free(inv);
	assert_int_equal(vg_bill_invoice_from_db(db, rc, jul, "lab", &inv), 0);
	assert_int_equal(inv->doc, VG_BILL_DOC_STATEMENT);
	assert_int_equal(vg_bill_invoice_render(inv, VG_BILL_FMT_HTML, &html, &len), 0);
	assert_non_null(strstr(html, "This is a usage statement, not an invoice"));
	assert_null(strstr(html, "Amount due"));
	free(html);
	vg_bill_invoice_free(inv);
	struct vg_bill_month aug = {2026, 8};
	assert_int_equal(vg_bill_invoice_from_db(db, rc, aug, "fr-co", &inv), 0);
	assert_int_equal(vg_bill_invoice_render(inv, VG_BILL_FMT_HTML, &html, &len), 0);
	assert_non_null(strstr(html, "<h1>Credit note"));
	assert_non_null(strstr(html, "Amount credited EUR</td><td class=\"n\">1.81</td>"));
	free(html);
	vg_bill_invoice_free(inv);
	vg_bill_ratecard_free(rc);
	vg_bill_ledger_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ledger_matches_hand_computation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redelivery_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_per_project_invoice_equals_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_documents_ledger, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
