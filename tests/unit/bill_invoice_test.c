/*
 * bill_invoice_test.c — finalization and adjustments on the ledger month:
 * a finalized invoice is immutable and re-renders byte-identically in
 * every format; late usage for a finalized month lands once, as an
 * adjustment line naming that month, on the next month's invoice; the
 * names people know (Nova display and project names) with the ids beside.
 */
#include <errno.h>
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
#include "vigie/clock.h"

#include "../support/db_engines.h"
#include "../support/tmpdir.h"
#include "../support/ledger_fixture.h"

static const struct vg_bill_month SEP = {2026, 9}, OCT = {2026, 10}, NOV = {2026, 11},
				  DEC = {2026, 12};

static int64_t T(const char *iso)
{
	int64_t ms;
	assert_int_equal(vg_time_parse(iso, 0, &ms), 0);
	return ms;
}

static int setup(void **state)
{
	struct ledger_fx *f;
	int rc = ledger_fx_setup(state, "/tmp/vg-bill-inv.XXXXXX");

	f = *state;
	if (rc || !f->m)
		return rc;
	for (size_t i = 0; i < f->l->nbatches; i++)
		assert_int_equal(vg_bill_meter_batch(f->m, f->l->batches[i]), 0);
	f->seq = 1000;
	return 0;
}

static int teardown(void **state)
{
	return ledger_fx_teardown(state);
}

static char *text(struct ledger_fx *f, struct vg_bill_month m, const char *project, int fmt,
		  size_t *len)
{
	char *t = NULL;
	assert_int_equal(vg_bill_invoice_text(vg_bill_meter_db(f->m), f->rc, m, project, fmt,
					      &t, len),
			 0);
	return t;
}

static const struct vg_bill_invoice_line *line(const struct vg_bill_invoice *inv, const char *key)
{
	for (size_t i = 0; i < inv->nlines; i++)
		if (!strcmp(inv->lines[i].key, key))
			return &inv->lines[i];
	return NULL;
}

static void test_finalize_freezes(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	struct vg_db *db = vg_bill_meter_db(f->m);
	struct vg_bill_invoice *inv;
	size_t n, l1, l2;
	char *a, *b;

	assert_int_equal(vg_bill_finalize(db, f->rc, NOV, T("2026-11-26T00:00:00Z"), &n), -EINVAL);
	assert_int_equal(vg_bill_is_final(db, OCT), 0);
	assert_int_equal(vg_bill_finalize(db, f->rc, OCT, T("2026-11-02T00:00:00Z"), &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(vg_bill_is_final(db, OCT), 1);
	assert_int_equal(vg_bill_finalize(db, f->rc, OCT, T("2026-11-03T00:00:00Z"), &n), -EALREADY);

	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, OCT, "acme", &inv), 0);
	assert_true(inv->final);
	assert_string_equal(inv->number, "2026-10-0001");
	assert_int_equal(inv->total_micro, 86460000);
	assert_int_equal(inv->finalized_ms, T("2026-11-02T00:00:00Z"));
	assert_int_equal(vg_bill_ledger_check(f->l, OCT, &inv, 1, NULL), 4 + 2); /* beta's */
	vg_bill_invoice_free(inv);
	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, OCT, "beta", &inv), 0);
	assert_string_equal(inv->number, "2026-10-0002");
	vg_bill_invoice_free(inv);
	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, OCT, "nobody", &inv), -ENOENT);

	for (int fmt = VG_BILL_FMT_JSON; fmt <= VG_BILL_FMT_HTML; fmt++) {
		a = text(f, OCT, "acme", fmt, &l1);
		b = text(f, OCT, "acme", fmt, &l2);
		assert_int_equal(l1, l2);
		assert_memory_equal(a, b, l1);
		free(a);
		free(b);
	}
	/* the JSON is the stored document, and reading it back and rendering
	 * it again gives the same bytes */
	a = text(f, OCT, "acme", VG_BILL_FMT_JSON, &l1);
	assert_non_null(strstr(a, "\"status\": \"final\""));
	assert_int_equal(vg_bill_invoice_from_json(a, l1, &inv), 0);
	assert_int_equal(vg_bill_invoice_render(inv, VG_BILL_FMT_JSON, &b, &l2), 0);
	assert_int_equal(l1, l2);
	assert_memory_equal(a, b, l1);
	vg_bill_invoice_free(inv);
	free(a);
	free(b);
}

/* A batch from host `host` at time t with only events, or an instance
 * observation when `inst` is set. */
static struct vg_batch *batch(struct ledger_fx *f, const char *host, const char *t)
{
	return vg_batch_new(host, 7, ++f->seq, T(t));
}

static void observe(struct vg_batch *b, const char *id, const char *project,
		    const char *t, int running, int ended)
{
	struct vg_resource *r = vg_batch_resource(b, VG_RT_INSTANCE, id, "late", NULL, T(t));
	assert_non_null(r);
	r->state = ended ? VG_RSTATE_ENDED : VG_RSTATE_ACTIVE;
	assert_int_equal(vg_batch_identity(b, project, NULL, "m1.small"), 0);
	if (!ended)
		assert_int_equal(vg_batch_sample(b, "power.state", VG_KIND_GAUGE, running ? 1 : 5), 0);
}

static void test_late_usage_becomes_adjustment(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	struct vg_db *db = vg_bill_meter_db(f->m);
	struct vg_bill_invoice *inv;
	const struct vg_bill_invoice_line *l;
	struct vg_batch *b;
	size_t n, l1, l2;
	char *before, *after;

	assert_int_equal(vg_bill_finalize(db, f->rc, SEP, T("2026-11-02T00:00:00Z"), &n), 0);
	assert_int_equal(vg_bill_finalize(db, f->rc, OCT, T("2026-11-02T00:00:00Z"), &n), 0);
	before = text(f, OCT, "acme", VG_BILL_FMT_JSON, &l1);

	/* late: a 30-minute run of i-batch on Oct 28 (exact events), and a
	 * new project's instance seen Oct 20 00:00-10:00 (polls), both
	 * arriving in November */
	b = batch(f, "ledger-host", "2026-11-01T00:40:00Z");
	assert_int_equal(vg_batch_event(b, "i-batch", VG_EV_STARTED, T("2026-10-28T10:00:00Z"), NULL), 0);
	assert_int_equal(vg_batch_event(b, "i-batch", VG_EV_STOPPED, T("2026-10-28T10:30:00Z"), NULL), 0);
	assert_int_equal(vg_bill_meter_batch(f->m, b), 0);
	vg_batch_free(b);
	const char *times[] = {"2026-10-20T00:00:00Z", "2026-10-20T05:00:00Z",
			       "2026-10-20T10:00:00Z"};
	for (int i = 0; i < 3; i++) {
		b = batch(f, "late-host", times[i]);
		observe(b, "i-late", "gamma", times[i], 1, 0);
		assert_int_equal(vg_bill_meter_batch(f->m, b), 0);
		vg_batch_free(b);
	}
	b = batch(f, "late-host", "2026-10-20T12:00:00Z");
	observe(b, "i-late", "gamma", "2026-10-20T12:00:00Z", 0, 1);
	assert_int_equal(vg_bill_meter_batch(f->m, b), 0);
	vg_batch_free(b);

	/* the finalized month did not move */
	after = text(f, OCT, "acme", VG_BILL_FMT_JSON, &l2);
	assert_int_equal(l1, l2);
	assert_memory_equal(before, after, l1);
	free(before);
	free(after);
	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, OCT, "gamma", &inv), -ENOENT);

	/* November's drafts carry the differences */
	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, NOV, "acme", &inv), 0);
	l = line(inv, "adj|2026-10|i-batch|compute|flavor:m1.small|0.03");
	assert_non_null(l);
	assert_int_equal(l->usage_type, VG_BILL_UT_ADJUSTMENT);
	assert_string_equal(l->adjustment_for, "2026-10");
	assert_string_equal(l->adjusted_type, "compute");
	assert_true(l->qty == 1800000 && !l->qty_neg);
	/* 5520 s x 0.03 / 3600 = 0.046 -> 0.05, billed 0.03: +0.02 */
	assert_int_equal(l->amount_micro, 20000);
	assert_non_null(strstr(l->description, "Adjustment for 2026-10"));
	/* auditable: the invoice it corrects, and the slice that changed: the
	 * late run itself (10-28 10:00 .. 10:30), neither the line's whole
	 * month nor the gap since the billed line's end (the 10 s run at
	 * 10-25 14:00:10) */
	assert_string_equal(l->corrects, "2026-10-0001");
	assert_int_equal(l->start_ms, T("2026-10-28T10:00:00Z"));
	assert_int_equal(l->end_ms, T("2026-10-28T10:30:00Z"));
	assert_non_null(strstr(l->description, "corrects invoice 2026-10-0001"));
	{
		size_t len;
		char *csv = text(f, NOV, "acme", VG_BILL_FMT_CSV, &len);
		/* the same columns as usage: UsageType is the adjusted type */
		assert_non_null(strstr(csv, ",Adjustment,2026-10-28T10:00:00Z,2026-10-28T10:30:00Z,vigie,compute,flavor:m1.small,i-batch,"));
		assert_non_null(strstr(csv, ",2026-10-0001\r\n"));
		free(csv);
	}
	assert_int_equal(inv->total_micro, 80000 + 20000);
	assert_int_equal(inv->subtotal_micro[VG_BILL_UT_ADJUSTMENT], 20000);
	vg_bill_invoice_free(inv);

	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, NOV, "gamma", &inv), 0);
	assert_int_equal(inv->nlines, 1);
	l = line(inv, "adj|2026-10|i-late|compute|flavor:m1.small|0.03");
	assert_non_null(l);
	assert_null(l->corrects); /* gamma had no October invoice */
	assert_non_null(strstr(l->description, "not invoiced before"));
	assert_int_equal(l->start_ms, T("2026-10-20T00:00:00Z"));
	/* seen running 00:00..10:00, gone at 12:00: stopped at 10:00 */
	assert_true(l->qty == 36000000);
	assert_int_equal(l->amount_micro, 300000);
	vg_bill_invoice_free(inv);

	/* finalize November: the adjustments are frozen there, and December
	 * does not bill them again */
	assert_int_equal(vg_bill_finalize(db, f->rc, NOV, T("2026-12-01T00:00:00Z"), &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, NOV, "gamma", &inv), 0);
	assert_true(inv->final);
	assert_int_equal(inv->total_micro, 300000);
	vg_bill_invoice_free(inv);
	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, DEC, "gamma", &inv), 0);
	assert_int_equal(inv->nlines, 0);
	vg_bill_invoice_free(inv);
	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, DEC, "acme", &inv), 0);
	for (size_t i = 0; i < inv->nlines; i++)
		assert_null(inv->lines[i].adjustment_for);
	vg_bill_invoice_free(inv);
}

/* Two exact events of i-web arriving late in November: it was in fact
 * stopped from `stop` to `start` (both in October). */
static void late_pause(struct ledger_fx *f, const char *stop, const char *start)
{
	struct vg_batch *b = batch(f, "ledger-host", "2026-11-01T00:40:00Z");
	assert_int_equal(vg_batch_event(b, "i-web", VG_EV_STOPPED, T(stop), NULL), 0);
	assert_int_equal(vg_batch_event(b, "i-web", VG_EV_STARTED, T(start), NULL), 0);
	assert_int_equal(vg_bill_meter_batch(f->m, b), 0);
	vg_batch_free(b);
}

/* The ledger's rate card with m1.medium at 0.05 for two days of October,
 * decided after October was invoiced. */
static const char rc_retro[] =
	"{\"currency\":\"EUR\",\"minor_unit_digits\":2,\"minimum_run_seconds\":60,"
	"\"prices\":[{\"valid_from\":\"2026-01-01\",\"compute\":{\"flavors\":"
	"{\"m1.small\":\"0.0200\",\"m1.medium\":\"0.0400\",\"m1.large\":\"0.0800\"},"
	"\"vcpu_hour\":\"0.0150\",\"ram_gib_hour\":\"0.0050\"},"
	"\"storage\":{\"gib_month\":\"0.10\"},\"network\":{\"egress_gb\":["
	"{\"up_to_gb\":1,\"price\":\"0\"},{\"up_to_gb\":10,\"price\":\"0.09\"},"
	"{\"price\":\"0.05\"}],\"ingress_gb\":\"0\"}},"
	"{\"valid_from\":\"2026-10-07T00:00:00Z\",\"compute\":{\"flavors\":{\"m1.medium\":\"0.0500\"}}},"
	"{\"valid_from\":\"2026-10-09T00:00:00Z\",\"compute\":{\"flavors\":{\"m1.medium\":\"0.0400\"}}},"
	"{\"valid_from\":\"2026-10-16T00:00:00Z\",\"compute\":{\"flavors\":{\"m1.small\":\"0.0300\"}}}],"
	"\"projects\":{\"beta\":{\"prices\":[{\"valid_from\":\"2026-01-01\","
	"\"storage\":{\"gib_month\":\"0.05\"}}]}}}";

/* A change inside a billed span: the adjustment names the slice where
 * the recomputed line differs from what was billed (from, to, quantity,
 * amount to the cent), not the line's whole span; a second change is
 * measured against the line as the first adjustment left it. */
static void test_adjustment_slice_inside_span(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	struct vg_db *db = vg_bill_meter_db(f->m);
	struct vg_bill_ratecard *retro;
	struct vg_bill_invoice *inv;
	const struct vg_bill_invoice_line *l;
	char err[256];
	size_t n;

	assert_int_equal(vg_bill_finalize(db, f->rc, SEP, T("2026-11-02T00:00:00Z"), &n), 0);
	assert_int_equal(vg_bill_finalize(db, f->rc, OCT, T("2026-11-02T00:00:00Z"), &n), 0);

	/* usage: i-web billed running Oct 1 00:00 .. Oct 16 00:00 at 0.02
	 * (360 h, 7.20); it was stopped Oct 12 10:00 .. 14:00: 356 h, 7.12 */
	late_pause(f, "2026-10-12T10:00:00Z", "2026-10-12T14:00:00Z");
	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, NOV, "acme", &inv), 0);
	l = line(inv, "adj|2026-10|i-web|compute|flavor:m1.small|0.02");
	assert_non_null(l);
	assert_int_equal(l->start_ms, T("2026-10-12T10:00:00Z"));
	assert_int_equal(l->end_ms, T("2026-10-12T14:00:00Z"));
	assert_true(l->qty_neg && l->qty == 4 * 3600000);
	assert_int_equal(l->amount_micro, -80000);
	assert_string_equal(l->corrects, "2026-10-0001");
	assert_non_null(strstr(l->description, "2026-10-12T10:00:00Z to 2026-10-12T14:00:00Z"));
	vg_bill_invoice_free(inv);

	/* rate: m1.medium at 0.05 from Oct 7 to Oct 9; i-api's m1.medium line
	 * (Oct 5 10:00:30 .. Oct 12 06:00, 590370000 ms, 6.56) loses those
	 * 48 h (417570000 ms x 0.04 / 3600000 = 4.6397 -> 4.64: -1.92), and a
	 * new line bills them at 0.05 (2.40) */
	assert_int_equal(vg_bill_ratecard_parse(rc_retro, strlen(rc_retro), "retro", &retro, err, sizeof(err)), 0);
	assert_int_equal(vg_bill_invoice_from_db(db, retro, NOV, "acme", &inv), 0);
	l = line(inv, "adj|2026-10|i-api|compute|flavor:m1.medium|0.04");
	assert_non_null(l);
	assert_int_equal(l->start_ms, T("2026-10-07T00:00:00Z"));
	assert_int_equal(l->end_ms, T("2026-10-09T00:00:00Z"));
	assert_true(l->qty_neg && l->qty == 48 * 3600000LL);
	assert_int_equal(l->amount_micro, -1920000);
	l = line(inv, "adj|2026-10|i-api|compute|flavor:m1.medium|0.05");
	assert_non_null(l);
	assert_int_equal(l->start_ms, T("2026-10-07T00:00:00Z"));
	assert_int_equal(l->end_ms, T("2026-10-09T00:00:00Z"));
	assert_true(!l->qty_neg && l->qty == 48 * 3600000LL);
	assert_int_equal(l->amount_micro, 2400000);
	vg_bill_invoice_free(inv);
	vg_bill_ratecard_free(retro);

	/* November frozen with the first adjustment; another late pause
	 * (Oct 14 00:00 .. 01:00): December's adjustment is that hour only
	 * (355 h, 7.10; billed 7.20 - 0.08: -0.02), read from the frozen
	 * documents' pieces */
	assert_int_equal(vg_bill_finalize(db, f->rc, NOV, T("2026-12-01T00:00:00Z"), &n), 0);
	late_pause(f, "2026-10-14T00:00:00Z", "2026-10-14T01:00:00Z");
	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, DEC, "acme", &inv), 0);
	l = line(inv, "adj|2026-10|i-web|compute|flavor:m1.small|0.02");
	assert_non_null(l);
	assert_int_equal(l->start_ms, T("2026-10-14T00:00:00Z"));
	assert_int_equal(l->end_ms, T("2026-10-14T01:00:00Z"));
	assert_true(l->qty_neg && l->qty == 3600000);
	assert_int_equal(l->amount_micro, -20000);
	assert_non_null(strstr(l->description, "corrects invoice 2026-10-0001"));
	vg_bill_invoice_free(inv);
}

/* One observation of vNIC id of project netco (instance i-net) at t: its
 * sent-bytes counter reads tx. */
static void nic_obs(struct ledger_fx *f, const char *host, const char *id, const char *t, double tx)
{
	struct vg_batch *b = batch(f, host, t);
	struct vg_resource *r = vg_batch_resource(b, VG_RT_NIC, id, "tap9", "i-net", T(t));
	assert_non_null(r);
	r->state = VG_RSTATE_ACTIVE;
	assert_int_equal(vg_batch_identity(b, "netco", NULL, NULL), 0);
	assert_int_equal(vg_batch_sample(b, "net.tx.bytes", VG_KIND_COUNTER, tx), 0);
	assert_int_equal(vg_batch_sample(b, "net.rx.bytes", VG_KIND_COUNTER, 0), 0);
	assert_int_equal(vg_bill_meter_batch(f->m, b), 0);
	vg_batch_free(b);
}

/* Checks one adjustment line of a network line: period, signed quantity
 * (bytes), amount (micro) and its one slice (why: "usage" or "tier"). */
static void net_adj(const struct vg_bill_invoice *inv, const char *key, const char *from,
		    const char *to, long long qty, long long amount, int why)
{
	const struct vg_bill_invoice_line *l = line(inv, key);
	if (!l)
		fail_msg("no line %s", key);
	assert_int_equal(l->usage_type, VG_BILL_UT_ADJUSTMENT);
	assert_string_equal(l->adjusted_type, "network-egress");
	assert_int_equal(l->start_ms, T(from));
	assert_int_equal(l->end_ms, T(to));
	assert_int_equal(l->qty_neg, qty < 0);
	assert_true(l->qty == (vg_bill_u128)(qty < 0 ? -qty : qty));
	assert_int_equal(l->amount_micro, amount);
	assert_int_equal(l->nslices, 1);
	assert_int_equal(l->slices[0].start_ms, T(from));
	assert_int_equal(l->slices[0].end_ms, T(to));
	assert_true(l->slices[0].qty == l->qty && l->slices[0].qty_neg == l->qty_neg);
	assert_int_equal(l->slices[0].why, why);
}

/* Late network usage after finalization, landing in two egress tiers.
 * Project netco (the ledger's rate card: first 1 GB free, up to 10 GB
 * 0.09/GB, above 0.05/GB), October 2026:
 *   n-a sends 12 GB on Oct 1, 0.5 GB in each hour 00:00 .. 24:00. Billed
 *   (invoice 2026-10-0003): tier 1 hours 00-02 (1 GB, 0.00), tier 2
 *   hours 02-20 (9 GB, 0.81), tier 3 hours 20-24 (2 GB, 0.10).
 *   Late (in November): n-b sent 1 GB in hour 14:00 and 3 GB in hour
 *   15:00. Tiers fill hour by hour, vNICs in id order: at 14:00 the month
 *   had 7 GB; 14:00 n-a 0.5 -> 7.5, n-b 1 -> 8.5; 15:00 n-a 0.5 -> 9,
 *   n-b 3: 1 GB in tier 2 -> 10, 2 GB in tier 3; n-a's hours 16-20 move
 *   from tier 2 to tier 3.
 * November's adjustments, each naming its hours:
 *   n-b tier 2  14:00-16:00  +2 GB  2 x 0.09 = 0.18 (not billed before)
 *   n-b tier 3  15:00-16:00  +2 GB  2 x 0.05 = 0.10
 *   n-a tier 2  16:00-20:00  -2 GB  7 x 0.09 = 0.63, billed 0.81: -0.18
 *   n-a tier 3  16:00-20:00  +2 GB  4 x 0.05 = 0.20, billed 0.10: +0.10
 *   total +0.20 (16 GB: 0.81 + 6 x 0.05 = 1.11, billed 0.91).
 * Then November is finalized and n-b's hour 16:00 (0.5 GB, tier 3)
 * arrives: December's adjustment is that hour alone: n-b tier 3 2.5 GB
 * x 0.05 = 0.125 -> 0.13, billed 0.10: +0.03. */
static void test_network_adjustment_hours(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	struct vg_db *db = vg_bill_meter_db(f->m);
	struct vg_bill_invoice *inv, *back;
	const struct vg_bill_invoice_line *l;
	size_t n, len;
	char *t;

	nic_obs(f, "net-host", "n-a", "2026-10-01T00:00:00Z", 0);
	nic_obs(f, "net-host", "n-a", "2026-10-02T00:00:00Z", 12e9);
	assert_int_equal(vg_bill_finalize(db, f->rc, SEP, T("2026-11-02T00:00:00Z"), &n), 0);
	assert_int_equal(vg_bill_finalize(db, f->rc, OCT, T("2026-11-02T00:00:00Z"), &n), 0);
	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, OCT, "netco", &inv), 0);
	assert_string_equal(inv->number, "2026-10-0003");
	assert_int_equal(inv->total_micro, 810000 + 100000);
	vg_bill_invoice_free(inv);

	nic_obs(f, "late-host", "n-b", "2026-10-01T14:00:00Z", 0);
	nic_obs(f, "late-host", "n-b", "2026-10-01T15:00:00Z", 1e9);
	nic_obs(f, "late-host", "n-b", "2026-10-01T16:00:00Z", 4e9);
	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, NOV, "netco", &inv), 0);
	assert_int_equal(inv->nlines, 4);
	net_adj(inv, "adj|2026-10|n-b|network-egress|egress-tier-2|0.09", "2026-10-01T14:00:00Z",
		"2026-10-01T16:00:00Z", 2000000000LL, 180000, VG_BILL_SLICE_USAGE);
	net_adj(inv, "adj|2026-10|n-b|network-egress|egress-tier-3|0.05", "2026-10-01T15:00:00Z",
		"2026-10-01T16:00:00Z", 2000000000LL, 100000, VG_BILL_SLICE_USAGE);
	net_adj(inv, "adj|2026-10|n-a|network-egress|egress-tier-2|0.09", "2026-10-01T16:00:00Z",
		"2026-10-01T20:00:00Z", -2000000000LL, -180000, VG_BILL_SLICE_TIER);
	net_adj(inv, "adj|2026-10|n-a|network-egress|egress-tier-3|0.05", "2026-10-01T16:00:00Z",
		"2026-10-01T20:00:00Z", 2000000000LL, 100000, VG_BILL_SLICE_TIER);
	assert_int_equal(inv->total_micro, 200000);
	l = line(inv, "adj|2026-10|n-a|network-egress|egress-tier-2|0.09");
	assert_string_equal(l->corrects, "2026-10-0003");
	assert_string_equal(l->item, "egress-tier-2");
	assert_non_null(strstr(l->description, "(network-egress, 2026-10-01T16:00:00Z to "
					       "2026-10-01T20:00:00Z, corrects invoice 2026-10-0003)"));
	assert_non_null(strstr(l->description, "tier 2"));
	assert_non_null(strstr(l->description, "hours changed: 2026-10-01T16:00:00Z to "
					       "2026-10-01T20:00:00Z -2.000000 GB (same usage, another tier)"));
	l = line(inv, "adj|2026-10|n-b|network-egress|egress-tier-3|0.05");
	assert_string_equal(l->corrects, "2026-10-0003");
	assert_non_null(strstr(l->description, "hours changed: 2026-10-01T15:00:00Z to "
					       "2026-10-01T16:00:00Z +2.000000 GB (usage changed)"));
	/* the same in every format: JSON keeps the slices (read back
	 * equal), CSV has the usage columns with the slice as the period,
	 * HTML the description */
	t = text(f, NOV, "netco", VG_BILL_FMT_JSON, &len);
	assert_non_null(strstr(t, "\"changed_slices\""));
	assert_non_null(strstr(t, "\"-2000000000\""));
	assert_int_equal(vg_bill_invoice_from_json(t, len, &back), 0);
	for (size_t i = 0; i < inv->nlines; i++) {
		const struct vg_bill_invoice_line *b = line(back, inv->lines[i].key);
		assert_non_null(b);
		assert_int_equal(b->nslices, inv->lines[i].nslices);
		for (size_t k = 0; k < b->nslices; k++) {
			const struct vg_bill_slice *x = &b->slices[k], *y = &inv->lines[i].slices[k];
			assert_int_equal(x->start_ms, y->start_ms);
			assert_int_equal(x->end_ms, y->end_ms);
			assert_true(x->qty == y->qty && x->qty_neg == y->qty_neg && x->why == y->why);
		}
	}
	vg_bill_invoice_free(back);
	free(t);
	t = text(f, NOV, "netco", VG_BILL_FMT_CSV, &len);
	assert_non_null(strstr(t, ",Adjustment,2026-10-01T16:00:00Z,2026-10-01T20:00:00Z,vigie,"
				  "network-egress,egress-tier-2,n-a,"));
	assert_non_null(strstr(t, ",Adjustment,2026-10-01T14:00:00Z,2026-10-01T16:00:00Z,vigie,"
				  "network-egress,egress-tier-2,n-b,"));
	assert_non_null(strstr(t, "-2.000000 GB (same usage, another tier)"));
	free(t);
	t = text(f, NOV, "netco", VG_BILL_FMT_HTML, &len);
	/* the Type column names the usage type adjusted, as CSV's UsageType */
	assert_non_null(strstr(t, "<td>adjustment<br><span class=\"res\">network-egress</span></td>"));
	assert_non_null(strstr(t, "hours changed: 2026-10-01T14:00:00Z to 2026-10-01T16:00:00Z "
				  "+2.000000 GB (usage changed)"));
	free(t);
	vg_bill_invoice_free(inv);

	/* November frozen; one more late hour of n-b */
	assert_int_equal(vg_bill_finalize(db, f->rc, NOV, T("2026-12-01T00:00:00Z"), &n), 0);
	nic_obs(f, "late-host", "n-b", "2026-10-01T17:00:00Z", 4.5e9);
	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, DEC, "netco", &inv), 0);
	assert_int_equal(inv->nlines, 1);
	net_adj(inv, "adj|2026-10|n-b|network-egress|egress-tier-3|0.05", "2026-10-01T16:00:00Z",
		"2026-10-01T17:00:00Z", 500000000LL, 30000, VG_BILL_SLICE_USAGE);
	vg_bill_invoice_free(inv);

	/* without the pre-images (a month finalized before they were kept)
	 * the same difference, named by the line's pieces: the billed n-b tier-3
	 * piece was 15:00-16:00 at 2 GB/h, now 15:00-17:00 at 1.25 GB/h, so
	 * both hours; no slices listed */
	assert_int_equal(vg_db_exec(db, "DELETE FROM network_billed"), 0);
	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, DEC, "netco", &inv), 0);
	l = line(inv, "adj|2026-10|n-b|network-egress|egress-tier-3|0.05");
	assert_non_null(l);
	assert_int_equal(l->nslices, 0);
	assert_int_equal(l->start_ms, T("2026-10-01T15:00:00Z"));
	assert_int_equal(l->end_ms, T("2026-10-01T17:00:00Z"));
	assert_true(l->qty == 500000000 && !l->qty_neg);
	assert_int_equal(l->amount_micro, 30000);
	assert_null(strstr(l->description, "hours changed"));
	vg_bill_invoice_free(inv);
}

static void test_render_formats(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	size_t len;
	char *csv = text(f, OCT, "acme", VG_BILL_FMT_CSV, &len);
	char *html = text(f, OCT, "acme", VG_BILL_FMT_HTML, &len);
	int rows = 0;

	for (char *p = csv; *p; p++)
		rows += *p == '\n';
	assert_int_equal(rows, 1 + 16);
	assert_non_null(strstr(csv, "identity/LineItemId,bill/InvoiceId,bill/BillType,"));
	/* no name known for acme: the name column is empty */
	assert_non_null(strstr(csv, ",Draft,2026-10-01T00:00:00Z,2026-11-01T00:00:00Z,acme,,Usage,"));
	assert_non_null(strstr(csv, ",i-api,api,163.991667,hour,0.04,6.56,EUR,"));
	assert_non_null(strstr(html, "<!DOCTYPE html>"));
	assert_non_null(strstr(html, "@media print"));
	assert_non_null(strstr(html, "<td class=\"n\">86.46</td>"));
	free(csv);
	free(html);
}

/* One Nova instance's poll in December with the names the agent sends. */
static void nova_poll(struct ledger_fx *f, const char *t, const char *project_name)
{
	struct vg_batch *b = vg_batch_new("h1", 1, ++f->seq, T(t));
	struct vg_resource *r = vg_batch_resource(b, VG_RT_INSTANCE,
						  "0f0e0d0c-0000-4000-8000-00000000002a", "instance-0000002a", NULL, T(t));
	assert_non_null(r);
	r->state = VG_RSTATE_ACTIVE;
	assert_int_equal(vg_batch_identity(b, "bbbbbbbb0000000000000000000000b1", "u1", "m1.small"), 0);
	assert_int_equal(vg_batch_sample(b, "power.state", VG_KIND_GAUGE, 1), 0);
	assert_int_equal(vg_batch_attr(b, "display_name", "web-frontend-1"), 0);
	assert_int_equal(vg_batch_attr(b, "project_name", project_name), 0);
	assert_int_equal(vg_bill_meter_batch(f->m, b), 0);
	vg_batch_free(b);
}

static void test_names_people_know(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	struct vg_db *db = vg_bill_meter_db(f->m);
	const char *P = "bbbbbbbb0000000000000000000000b1";
	struct vg_bill_invoice *inv;
	size_t len, n;

	nova_poll(f, "2026-12-01T00:00:00Z", "webshop");
	nova_poll(f, "2026-12-01T10:00:00Z", "webshop-eu"); /* renamed */
	assert_int_equal(vg_bill_names_put(db, P, "webshop", T("2026-12-01T05:00:00Z")), 0);
	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, DEC, P, &inv), 0);
	assert_string_equal(inv->project, P);
	assert_non_null(inv->project_name); /* the newest name wins, not the last written */
	assert_string_equal(inv->project_name, "webshop-eu");
	assert_true(inv->nlines >= 1);
	for (size_t i = 0; i < inv->nlines; i++) {
		assert_string_equal(inv->lines[i].resource_name, "web-frontend-1");
		assert_string_equal(inv->lines[i].resource_id, "0f0e0d0c-0000-4000-8000-00000000002a");
	}
	vg_bill_invoice_free(inv);

	char *js = text(f, DEC, P, VG_BILL_FMT_JSON, &len);
	char *csv = text(f, DEC, P, VG_BILL_FMT_CSV, &len);
	char *html = text(f, DEC, P, VG_BILL_FMT_HTML, &len);
	assert_non_null(strstr(js, "\"project_name\": \"webshop-eu\""));
	assert_non_null(strstr(js, "\"resource_name\": \"web-frontend-1\""));
	assert_non_null(strstr(csv, ",bbbbbbbb0000000000000000000000b1,webshop-eu,Usage,"));
	assert_non_null(strstr(html, "webshop-eu <span class=\"res\">bbbbbbbb0000000000000000000000b1</span>"));
	assert_non_null(strstr(html, "web-frontend-1<br><span class=\"res\">0f0e0d0c-0000-4000-8000-00000000002a</span>"));
	assert_null(strstr(html, "instance-0000002a"));
	free(js);
	free(csv);
	free(html);

	/* the frozen document keeps the names */
	assert_int_equal(vg_bill_finalize(db, f->rc, DEC, T("2027-01-01T00:00:00Z"), &n), 0);
	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, DEC, P, &inv), 0);
	assert_true(inv->final);
	assert_string_equal(inv->project_name, "webshop-eu");
	vg_bill_invoice_free(inv);
}

/* Tenants name their instances and projects: a name a spreadsheet runs
 * as a formula ("=HYPERLINK(...)", "@SUM(...)", "+1+1") stays text in the
 * CSV (a leading '). */
static void test_csv_formulas(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	const char *P = "cccccccc0000000000000000000000c1";
	struct vg_batch *b = vg_batch_new("h1", 1, ++f->seq, T("2026-12-01T00:00:00Z"));
	struct vg_resource *r = vg_batch_resource(b, VG_RT_INSTANCE,
						  "0f0e0d0c-0000-4000-8000-00000000002b",
						  "instance-0000002b", NULL,
						  T("2026-12-01T00:00:00Z"));
	size_t len;
	char *csv;

	assert_non_null(r);
	r->state = VG_RSTATE_ACTIVE;
	assert_int_equal(vg_batch_identity(b, P, "u1", "m1.small"), 0);
	assert_int_equal(vg_batch_sample(b, "power.state", VG_KIND_GAUGE, 1), 0);
	assert_int_equal(vg_batch_attr(b, "display_name", "=HYPERLINK(\"http://x.example/\")"), 0);
	assert_int_equal(vg_batch_attr(b, "project_name", "@SUM(1)"), 0);
	assert_int_equal(vg_bill_meter_batch(f->m, b), 0);
	vg_batch_free(b);
	csv = text(f, DEC, P, VG_BILL_FMT_CSV, &len);
	assert_non_null(strstr(csv, ",\"'=HYPERLINK(\"\"http://x.example/\"\")\","));
	assert_non_null(strstr(csv, ",'@SUM(1),Usage,"));
	assert_null(strstr(csv, ",=HYPERLINK"));
	free(csv);
}

static const struct vg_bill_invoice_line *nth_of(const struct vg_bill_invoice *inv,
						 const char *res, int ut, int i, size_t *at)
{
	for (size_t k = 0; k < inv->nlines; k++)
		if (!strcmp(inv->lines[k].resource_id, res) && inv->lines[k].usage_type == ut &&
		    !inv->lines[k].adjustment_for && i-- == 0) {
			if (at)
				*at = k;
			return &inv->lines[k];
		}
	return NULL;
}

/* Lines read like a bill: by instance, usage type and time (not by key:
 * i-api's m1.medium came first in October, "m1.large" sorts before it);
 * each says why it is apart from the line above; the seconds the minimum
 * added are visible; summaries per service and per instance add up to the
 * ledger's hand-computed lines; empty subtotals are left out. */
static void test_readable_lines(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	struct vg_db *db = vg_bill_meter_db(f->m);
	struct vg_bill_invoice *inv;
	const struct vg_bill_invoice_line *l;
	size_t a, b, len;

	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, OCT, "acme", &inv), 0);
	const char *api[4][2] = {{"flavor:m1.medium", NULL}, {"flavor:m1.large", "resize"}, {"ram", "resize"}, {"vcpu", "vCPU and RAM priced apart"}};
	size_t prev = 0;
	for (int i = 0; i < 4; i++) {
		assert_non_null(l = nth_of(inv, "i-api", VG_BILL_UT_COMPUTE, i, &a));
		assert_string_equal(l->item, api[i][0]);
		if (api[i][1])
			assert_string_equal(l->split, api[i][1]);
		else
			assert_null(l->split);
		assert_true(i == 0 || a == prev + 1);
		prev = a;
	}
	/* the instance's own lines, then its disks and vNICs */
	assert_non_null(nth_of(inv, "i-web", VG_BILL_UT_COMPUTE, 1, &a));
	assert_non_null(nth_of(inv, "d-web", VG_BILL_UT_STORAGE, 0, &b));
	assert_int_equal(b, a + 1);
	assert_non_null(l = nth_of(inv, "i-batch", VG_BILL_UT_COMPUTE, 1, NULL));
	assert_string_equal(l->split, "price change");
	assert_int_equal(l->minimum_runs, 2);
	assert_int_equal(l->minimum_added_ms, 70000); /* 40 s run +20, 10 s run +50 */
	assert_non_null(l = nth_of(inv, "n-web", VG_BILL_UT_EGRESS, 2, NULL));
	assert_string_equal(l->split, "tier");
	assert_string_equal(l->instance_id, "i-web");
	vg_bill_invoice_free(inv);

	char *js = text(f, OCT, "acme", VG_BILL_FMT_JSON, &len);
	char *csv = text(f, OCT, "acme", VG_BILL_FMT_CSV, &len);
	char *html = text(f, OCT, "acme", VG_BILL_FMT_HTML, &len);
	/* hand sums of the ledger's lines (tests/fixtures/billing/ledger-2026-10.txt):
	 * i-api 6.56 + 16.32 + 10.80 + 16.20 = 49.88 compute, 5.98 storage;
	 * i-batch 0.26 + 0.03 = 0.29, 1.00; i-old 7.20, 0.48;
	 * i-web 7.20 + 11.52 = 18.72, 2.00, network 0.00 + 0.81 + 0.10 = 0.91 */
	assert_non_null(strstr(js, "\"services\": {\n      \"compute\": \"76.09\",\n      \"storage\": \"9.46\",\n      \"network\": \"0.91\"\n    }"));
	assert_non_null(strstr(js, "\"instance_id\": \"i-api\",\n        \"name\": \"api\",\n        \"compute\": \"49.88\",\n        \"storage\": \"5.98\",\n        \"total\": \"55.86\""));
	assert_non_null(strstr(js, "\"instance_id\": \"i-web\",\n        \"name\": \"web\",\n        \"compute\": \"18.72\",\n        \"storage\": \"2.00\",\n        \"network\": \"0.91\",\n        \"total\": \"21.63\""));
	assert_non_null(strstr(js, "\"minimum_added_seconds\": \"70.000\""));
	assert_null(strstr(js, "\"adjustment\": \"0.00\""));
	assert_null(strstr(js, "\"network-ingress\""));
	assert_non_null(strstr(csv, ",i-batch,batch,price change,70.000,\r\n"));
	assert_non_null(strstr(html, "Summary by instance"));
	assert_non_null(strstr(html, "apart from the line above: price change"));
	assert_non_null(strstr(html, "+70.000&nbsp;s minimum"));
	assert_null(strstr(html, "Subtotal adjustment"));
	/* rates and money the same way everywhere: 0.005 and 10.80 */
	assert_non_null(strstr(js, "\"rate\": \"0.005\""));
	assert_non_null(strstr(csv, ",0.005,10.80,EUR,"));
	assert_non_null(strstr(html, "<td class=\"n\">0.005</td><td class=\"n\">10.80</td>"));
	free(js);
	free(csv);
	free(html);
}

/* Unpriced usage is named in every format: JSON warnings, an HTML list and
 * a CSV row of its own (LineItemType Warning, no cost). */
static void test_warnings_everywhere(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	size_t len;
	const char *times[] = {"2026-12-02T00:00:00Z", "2026-12-02T01:00:00Z"};

	for (int i = 0; i < 2; i++) {
		struct vg_batch *b = vg_batch_new("h1", 1, ++f->seq, T(times[i]));
		struct vg_resource *r = vg_batch_resource(b, VG_RT_INSTANCE, "i-odd", "odd", NULL, T(times[i]));
		r->state = VG_RSTATE_ACTIVE;
		assert_int_equal(vg_batch_identity(b, "delta", NULL, "x9.odd"), 0);
		assert_int_equal(vg_batch_sample(b, "power.state", VG_KIND_GAUGE, 1), 0);
		assert_int_equal(vg_bill_meter_batch(f->m, b), 0);
		vg_batch_free(b);
	}
	char *js = text(f, DEC, "delta", VG_BILL_FMT_JSON, &len);
	char *csv = text(f, DEC, "delta", VG_BILL_FMT_CSV, &len);
	char *html = text(f, DEC, "delta", VG_BILL_FMT_HTML, &len);
	const char *w = "compute of i-odd from 2026-12-02T00:00:00Z is not priced";
	assert_non_null(strstr(js, w));
	assert_non_null(strstr(html, "<ul class=\"warn\">"));
	assert_non_null(strstr(html, w));
	assert_non_null(strstr(csv, "warning-1,DRAFT-2026-12-"));
	assert_non_null(strstr(csv, ",Draft,"));
	assert_non_null(strstr(csv, ",Warning,,,vigie,"));
	assert_non_null(strstr(csv, w));
	free(js);
	free(csv);
	free(html);
}

/* A draft's number carries the month and an opaque stable part, never
 * the project id; final numbers stay the month's sequence. */
static void test_draft_numbers(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	struct vg_db *db = vg_bill_meter_db(f->m);
	struct vg_bill_invoice *a, *b, *c;
	size_t len, n;

	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, OCT, "acme", &a), 0);
	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, OCT, "acme", &b), 0);
	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, OCT, "beta", &c), 0);
	assert_false(a->final);
	assert_int_equal(strlen(a->number), strlen("DRAFT-2026-10-") + 10);
	assert_memory_equal(a->number, "DRAFT-2026-10-", 14);
	for (const char *p = a->number + 14; *p; p++)
		assert_non_null(strchr("0123456789abcdef", *p));
	assert_null(strstr(a->number, "acme"));
	assert_string_equal(a->number, b->number); /* stable */
	assert_string_not_equal(a->number, c->number);
	assert_null(strstr(c->number, "beta"));
	char *js = text(f, OCT, "acme", VG_BILL_FMT_JSON, &len);
	char want[64];
	snprintf(want, sizeof(want), "\"invoice\": \"%s\"", a->number);
	assert_non_null(strstr(js, want));
	free(js);
	vg_bill_invoice_free(a);
	vg_bill_invoice_free(b);
	vg_bill_invoice_free(c);

	assert_int_equal(vg_bill_finalize(db, f->rc, OCT, T("2026-11-02T00:00:00Z"), &n), 0);
	assert_int_equal(vg_bill_invoice_from_db(db, f->rc, OCT, "beta", &c), 0);
	assert_string_equal(c->number, "2026-10-0002");
	vg_bill_invoice_free(c);
}

/* A rate card may hold prices up to 10^12 a unit: 10^12 EUR an hour for
 * 360 hours is 3.6 x 10^20 micro-units, past int64. Such a line was
 * saturated to INT64_MAX and the next one wrapped the total negative, so
 * the invoice became a credit note for a huge sum. Any amount past 10^12
 * currency units (a line, a subtotal, the total, the tax, the amount
 * due) is now -ERANGE: no document, an error the API names. */
static void test_amounts_out_of_range(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	struct vg_db *db = vg_bill_meter_db(f->m);
	static const char absurd[] =
		"{\"currency\":\"EUR\",\"minor_unit_digits\":2,\"prices\":[{"
		"\"valid_from\":\"2026-01-01\",\"compute\":{\"flavors\":{"
		"\"m1.small\":\"1000000000000\",\"m1.medium\":\"1000000000000\","
		"\"m1.large\":\"1000000000000\"},\"vcpu_hour\":\"1000000000000\","
		"\"ram_gib_hour\":\"1000000000000\"},\"storage\":{\"gib_month\":"
		"\"1000000000000\"},\"network\":{\"egress_gb\":[{\"price\":\"1000000000000\"}],"
		"\"ingress_gb\":\"0\"}}]}";
	/* every line fits (10^9 EUR an hour, at most 744 h), their sum does
	 * not; a tenth of that price is a (large) invoice */
	char many[] =
		"{\"currency\":\"EUR\",\"minor_unit_digits\":2,\"prices\":[{"
		"\"valid_from\":\"2026-01-01\",\"compute\":{\"flavors\":{"
		"\"m1.small\":\"1000000000\",\"m1.medium\":\"1000000000\","
		"\"m1.large\":\"1000000000\"}}}]}";
	struct vg_bill_ratecard *rc;
	struct vg_bill_invoice **inv;
	char err[256], *t = NULL;
	size_t n, len;

	if (vg_bill_ratecard_parse(absurd, sizeof(absurd) - 1, "absurd", &rc, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(vg_bill_invoice_text(db, rc, OCT, "acme", VG_BILL_FMT_JSON, &t, &len), -ERANGE);
	assert_null(t);
	/* the error names the line: its month, project, resource and item */
	const struct vg_bill_range *g = vg_bill_range_last();
	assert_string_equal(g->month, "2026-10");
	assert_string_equal(g->project, "acme");
	assert_true(g->resource[0] && g->item[0] && g->unit[0] && g->usage_type[0]);
	assert_int_equal(g->sum, 0); /* one line alone is past 10^12 */
	assert_int_equal(vg_bill_invoices(db, rc, OCT, NULL, &inv, &n), -ERANGE);
	assert_int_equal(vg_bill_finalize(db, rc, OCT, T("2026-11-02T00:00:00Z"), &n), -ERANGE);
	assert_string_equal(vg_bill_range_last()->month, "2026-10");
	assert_true(vg_bill_range_last()->resource[0]);
	assert_int_equal(vg_bill_is_final(db, OCT), 0);
	vg_bill_ratecard_free(rc);

	assert_int_equal(vg_bill_ratecard_parse(many, sizeof(many) - 1, "many", &rc, err, sizeof(err)), 0);
	assert_int_equal(vg_bill_invoice_text(db, rc, OCT, "acme", VG_BILL_FMT_CSV, &t, &len), -ERANGE);
	assert_int_equal(vg_bill_range_last()->sum, 1); /* the lines together */
	assert_string_equal(vg_bill_range_last()->usage_type, "compute");
	assert_int_equal(strncmp(vg_bill_range_last()->item, "flavor:", 7), 0);
	vg_bill_ratecard_free(rc);
	memcpy(strstr(many, "1000000000\""), "0100000000", 10);
	memcpy(strstr(many, "1000000000\""), "0100000000", 10);
	memcpy(strstr(many, "1000000000\""), "0100000000", 10);
	assert_int_equal(vg_bill_ratecard_parse(many, sizeof(many) - 1, "tenth", &rc, err, sizeof(err)), 0);
	assert_int_equal(vg_bill_invoice_text(db, rc, OCT, "acme", VG_BILL_FMT_JSON, &t, &len), 0);
	assert_non_null(strstr(t, "\"total\": \""));
	assert_null(strstr(t, "\"total\": \"-"));
	free(t);
	assert_int_equal(vg_bill_finalize(db, rc, OCT, T("2026-11-02T00:00:00Z"), &n), 0);
	vg_bill_ratecard_free(rc);

	/* a sane card, an agent reporting 10^15 vCPUs for a flavor without
	 * a price (billed per vCPU-hour at 0.015 and GiB-hour of RAM):
	 * 1.5 x 10^13 EUR an hour. The meter ignores such a value
	 * (bill_meter.h, VG_BILL_MAX_VCPUS): the invoice is computed, and
	 * holds no vCPU-hour of it */
	for (int i = 0; i < 2; i++) {
		struct vg_batch *b = vg_batch_new("h1", 1, ++f->seq,
						  T(i ? "2026-12-01T01:00:00Z" : "2026-12-01T00:00:00Z"));
		struct vg_resource *r = vg_batch_resource(b, VG_RT_INSTANCE, "i-huge", "huge", NULL,
							  b->time_ms);
		assert_non_null(r);
		r->state = VG_RSTATE_ACTIVE;
		assert_int_equal(vg_batch_identity(b, "dddddddd0000000000000000000000d1", "u1", "x9.huge"), 0);
		assert_int_equal(vg_batch_sample(b, "power.state", VG_KIND_GAUGE, 1), 0);
		assert_int_equal(vg_batch_sample(b, "vcpus", VG_KIND_GAUGE, 1e15), 0);
		assert_int_equal(vg_batch_sample(b, "memory.size", VG_KIND_GAUGE, 1 << 30), 0);
		assert_int_equal(vg_bill_meter_batch(f->m, b), 0);
		vg_batch_free(b);
	}
	t = text(f, DEC, "dddddddd0000000000000000000000d1", VG_BILL_FMT_JSON, &len);
	assert_null(strstr(t, "1000000000000000"));
	free(t);
	uint64_t imp[VG_BILL_IMPL_N];
	vg_bill_meter_implausible(f->m, imp);
	assert_int_equal(imp[VG_BILL_IMPL_VCPUS], 2);
	/* such usage stored before the meter refused it (written here by
	 * hand) still passes 10^12: the error names the resource and line */
	assert_int_equal(vg_db_exec(db, "UPDATE transitions SET vcpus = 1000000000000000 "
					"WHERE resource = 'i-huge'"),
			 0);
	assert_int_equal(vg_bill_invoice_text(db, f->rc, DEC, "dddddddd0000000000000000000000d1",
					      VG_BILL_FMT_JSON, &t, &len),
			 -ERANGE);
	g = vg_bill_range_last();
	assert_string_equal(g->month, "2026-12");
	assert_string_equal(g->project, "dddddddd0000000000000000000000d1");
	assert_string_equal(g->resource, "i-huge");
	assert_string_equal(g->usage_type, "compute");
	/* the other projects' December invoices are not held up */
	t = text(f, DEC, "acme", VG_BILL_FMT_JSON, &len);
	free(t);

	/* nor is the month's list: acme's invoice with usage is listed, the
	 * broken project is named apart (vg_bill_invoices_each) */
	for (int i = 0; i < 2; i++) {
		struct vg_batch *b = vg_batch_new("h1", 1, ++f->seq,
						  T(i ? "2026-12-01T03:00:00Z" : "2026-12-01T02:00:00Z"));
		struct vg_resource *r = vg_batch_resource(b, VG_RT_INSTANCE, "i-fine", "fine", NULL,
							  b->time_ms);
		assert_non_null(r);
		r->state = VG_RSTATE_ACTIVE;
		assert_int_equal(vg_batch_identity(b, "acme", "u1", "m1.small"), 0);
		assert_int_equal(vg_batch_sample(b, "power.state", VG_KIND_GAUGE, 1), 0);
		assert_int_equal(vg_bill_meter_batch(f->m, b), 0);
		vg_batch_free(b);
	}
	assert_int_equal(vg_bill_invoices(db, f->rc, DEC, NULL, &inv, &n), -ERANGE);
	struct vg_bill_range *broken;
	size_t nb;
	/* the broken entry is named as a listed invoice is (the API's list
	 * shows project_name in both) */
	assert_int_equal(vg_bill_names_put(db, "dddddddd0000000000000000000000d1", "huge-co",
					   T("2026-12-01T05:00:00Z")),
			 0);
	assert_int_equal(vg_bill_invoices_each(db, f->rc, DEC, NULL, &inv, &n, &broken, &nb), 0);
	assert_int_equal(n, 1);
	assert_string_equal(inv[0]->project, "acme");
	assert_true(inv[0]->nlines > 0);
	assert_int_equal(nb, 1);
	assert_string_equal(broken[0].month, "2026-12");
	assert_string_equal(broken[0].project, "dddddddd0000000000000000000000d1");
	assert_string_equal(broken[0].resource, "i-huge");
	assert_string_equal(broken[0].usage_type, "compute");
	assert_string_equal(broken[0].project_name, "huge-co");
	assert_null(inv[0]->project_name); /* acme has no reported name */
	vg_bill_invoice_free(inv[0]);
	free(inv);
	free(broken);
	/* one project's list (a project token's) of a broken project */
	assert_int_equal(vg_bill_invoices_each(db, f->rc, DEC, "dddddddd0000000000000000000000d1",
					       &inv, &n, &broken, &nb),
			 0);
	assert_int_equal(n + nb, 1);
	assert_int_equal(nb, 1);
	assert_string_equal(broken[0].project_name, "huge-co");
	free(inv);
	free(broken);
	/* finalizing stays all or nothing (docs/billing.md): none is
	 * frozen, and the error names the blocking project and line */
	assert_int_equal(vg_bill_finalize(db, f->rc, DEC, T("2027-01-02T00:00:00Z"), &n), -ERANGE);
	g = vg_bill_range_last();
	assert_string_equal(g->project, "dddddddd0000000000000000000000d1");
	assert_string_equal(g->resource, "i-huge");
	assert_int_equal(vg_bill_is_final(db, DEC), 0);
}

/* The ledger's rate card with one more flavor, x1.gold, at `price` an
 * hour (a decimal string). */
static struct vg_bill_ratecard *card_with_gold(struct ledger_fx *f, const char *price)
{
	struct vg_bill_ratecard *rc;
	char err[512], *buf, *out, *at;
	const char *anchor = "\"m1.small\": \"0.0200\"";
	FILE *fp = fopen(f->l->ratecard, "r");
	size_t len;

	assert_non_null(fp);
	buf = calloc(1, 1 << 16);
	out = calloc(1, (1 << 16) + 256);
	assert_true(buf && out);
	len = fread(buf, 1, (1 << 16) - 1, fp);
	fclose(fp);
	assert_non_null(at = strstr(buf, anchor));
	snprintf(out, (1 << 16) + 256, "%.*s\"x1.gold\": \"%s\", %s", (int)(at - buf), buf, price,
		 at);
	if (vg_bill_ratecard_parse(out, strlen(out), "gold", &rc, err, sizeof(err)))
		fail_msg("%s", err);
	(void)len;
	free(buf);
	free(out);
	return rc;
}

static char *text_rc(struct ledger_fx *f, const struct vg_bill_ratecard *rc, struct vg_bill_month m,
		     const char *project, int fmt, size_t *len)
{
	char *t = NULL;
	assert_int_equal(vg_bill_invoice_text(vg_bill_meter_db(f->m), rc, m, project, fmt, &t, len),
			 0);
	return t;
}

/* An instance poll of x1.gold (project acme) at t, delivered late. */
static void gold_poll(struct ledger_fx *f, const char *t, int ended)
{
	struct vg_batch *b = batch(f, "gold-host", t);
	struct vg_resource *r = vg_batch_resource(b, VG_RT_INSTANCE, "i-gold", "gold", NULL, T(t));
	assert_non_null(r);
	r->state = ended ? VG_RSTATE_ENDED : VG_RSTATE_ACTIVE;
	assert_int_equal(vg_batch_identity(b, "acme", NULL, "x1.gold"), 0);
	if (!ended)
		assert_int_equal(vg_batch_sample(b, "power.state", VG_KIND_GAUGE, 1), 0);
	assert_int_equal(vg_bill_meter_batch(f->m, b), 0);
	vg_batch_free(b);
}

/* November's JSON draft of acme on the first engine run, to compare the
 * other engine's with (byte for byte). */
static char *g_unbillable_json;
static size_t g_unbillable_len;

/* Late usage of a finalized month that cannot be billed: a run of
 * x1.gold, priced 10^12 EUR an hour by a mistaken card, for 10 hours of
 * October (10^13 EUR, past what vigie bills: 10^12 an invoice), reaches
 * the meter after October was finalized, beside a late billable run. The
 * adjustment for it was a line past 10^12 on November's draft, so the
 * whole draft of acme was refused (-ERANGE: a 422) and the month's list
 * left acme out, billable adjustment included. Now that adjustment alone
 * is withheld, named in the invoice's warnings, and stays due: it is
 * billed on the first draft after the card is fixed. */
static void test_late_unbillable_adjustment(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	struct vg_db *db = vg_bill_meter_db(f->m);
	struct vg_bill_ratecard *gold = card_with_gold(f, "1000000000000");
	struct vg_bill_invoice *inv, **all;
	struct vg_bill_range *broken;
	const struct vg_bill_invoice_line *l;
	struct vg_batch *b;
	size_t n, nb, len;
	char *t;

	assert_int_equal(vg_bill_finalize(db, gold, SEP, T("2026-11-02T00:00:00Z"), &n), 0);
	assert_int_equal(vg_bill_finalize(db, gold, OCT, T("2026-11-02T00:00:00Z"), &n), 0);
	/* late, in November: i-batch's 30-minute run on Oct 28 (billable),
	 * and i-gold seen running Oct 20 00:00 and 10:00, gone at 10:30 */
	b = batch(f, "ledger-host", "2026-11-01T00:40:00Z");
	assert_int_equal(vg_batch_event(b, "i-batch", VG_EV_STARTED, T("2026-10-28T10:00:00Z"), NULL), 0);
	assert_int_equal(vg_batch_event(b, "i-batch", VG_EV_STOPPED, T("2026-10-28T10:30:00Z"), NULL), 0);
	assert_int_equal(vg_bill_meter_batch(f->m, b), 0);
	vg_batch_free(b);
	gold_poll(f, "2026-10-20T00:00:00Z", 0);
	gold_poll(f, "2026-10-20T10:00:00Z", 0);
	gold_poll(f, "2026-10-20T10:30:00Z", 1);

	/* November's draft of acme: its usage and the billable adjustment */
	assert_int_equal(vg_bill_invoice_from_db(db, gold, NOV, "acme", &inv), 0);
	l = line(inv, "adj|2026-10|i-batch|compute|flavor:m1.small|0.03");
	assert_non_null(l);
	assert_int_equal(l->amount_micro, 20000);
	for (size_t i = 0; i < inv->nlines; i++)
		assert_null(strstr(inv->lines[i].key, "i-gold"));
	assert_int_equal(inv->total_micro, 80000 + 20000);
	assert_int_equal(inv->subtotal_micro[VG_BILL_UT_ADJUSTMENT], 20000);
	/* the withheld adjustment, named in the warnings */
	const char *w = "adjustment for 2026-10 withheld: resource i-gold, line compute "
			"flavor:x1.gold (hour): its amount is past 10^12 currency units";
	size_t found = 0;
	for (size_t i = 0; i < inv->nwarnings; i++)
		found += strstr(inv->warnings[i], w) != NULL;
	assert_int_equal(found, 1);
	vg_bill_invoice_free(inv);
	/* and for the caller to log and count (api_invoices.c) */
	const struct vg_bill_withheld *wh = vg_bill_withheld_last();
	assert_int_equal(wh->n, 1);
	assert_string_equal(wh->first.month, "2026-10");
	assert_string_equal(wh->first.project, "acme");
	assert_string_equal(wh->first.resource, "i-gold");
	assert_string_equal(wh->first.usage_type, "compute");
	assert_string_equal(wh->first.item, "flavor:x1.gold");
	assert_int_equal(wh->first.sum, 0);
	/* ... in every format */
	t = text_rc(f, gold, NOV, "acme", VG_BILL_FMT_CSV, &len);
	assert_non_null(strstr(t, ",Warning,,,vigie,"));
	assert_non_null(strstr(t, w));
	free(t);
	t = text_rc(f, gold, NOV, "acme", VG_BILL_FMT_HTML, &len);
	assert_non_null(strstr(t, w));
	free(t);
	t = text_rc(f, gold, NOV, "acme", VG_BILL_FMT_JSON, &len);
	assert_non_null(strstr(t, w));
	/* the same batches give the same bytes on either engine */
	if (!g_unbillable_json) {
		g_unbillable_json = t;
		g_unbillable_len = len;
	} else {
		assert_int_equal(len, g_unbillable_len);
		assert_memory_equal(t, g_unbillable_json, len);
		free(t);
		free(g_unbillable_json);
		g_unbillable_json = NULL;
	}
	/* the month's list: acme is listed, not broken */
	assert_int_equal(vg_bill_invoices_each(db, gold, NOV, NULL, &all, &n, &broken, &nb), 0);
	assert_int_equal(nb, 0);
	found = 0;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(all[i]->project, "acme")) {
			found++;
			assert_int_equal(all[i]->total_micro, 100000);
		}
		vg_bill_invoice_free(all[i]);
	}
	free(all);
	free(broken);
	assert_int_equal(found, 1);

	/* November can be finalized: the warning is frozen with it, and the
	 * adjustment is not billed there */
	assert_int_equal(vg_bill_finalize(db, gold, NOV, T("2026-12-01T00:00:00Z"), &n), 0);
	t = text_rc(f, gold, NOV, "acme", VG_BILL_FMT_JSON, &len);
	assert_non_null(strstr(t, w));
	assert_null(strstr(t, "adj|2026-10|i-gold"));
	free(t);
	/* nothing dropped: December's draft withholds it again ... */
	assert_int_equal(vg_bill_invoice_from_db(db, gold, DEC, "acme", &inv), 0);
	found = 0;
	for (size_t i = 0; i < inv->nwarnings; i++)
		found += strstr(inv->warnings[i], w) != NULL;
	assert_int_equal(found, 1);
	assert_null(line(inv, "adj|2026-10|i-batch|compute|flavor:m1.small|0.03"));
	vg_bill_invoice_free(inv);
	vg_bill_ratecard_free(gold);
	/* ... and bills it once the card is fixed: 10 h x 0.10 */
	gold = card_with_gold(f, "0.10");
	assert_int_equal(vg_bill_invoice_from_db(db, gold, DEC, "acme", &inv), 0);
	l = line(inv, "adj|2026-10|i-gold|compute|flavor:x1.gold|0.1");
	assert_non_null(l);
	assert_int_equal(l->amount_micro, 1000000);
	assert_string_equal(l->corrects, "2026-10-0001");
	assert_int_equal(l->start_ms, T("2026-10-20T00:00:00Z"));
	assert_int_equal(l->end_ms, T("2026-10-20T10:00:00Z"));
	assert_int_equal(inv->nwarnings, 0);
	assert_int_equal(vg_bill_withheld_last()->n, 0);
	vg_bill_invoice_free(inv);
	vg_bill_ratecard_free(gold);
}

/* An adjustment that fits alone but not with the invoice's other lines:
 * x1.gold at 99,999,999,999.9999 EUR an hour for 10 hours of October is
 * 10^12 EUR exactly (the bound, billable alone); with acme's November
 * usage it passes. It is withheld, saying so; the rest is billed. */
static void test_late_adjustment_past_with_lines(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	struct vg_db *db = vg_bill_meter_db(f->m);
	struct vg_bill_ratecard *gold = card_with_gold(f, "99999999999.9999");
	struct vg_bill_invoice *inv;
	size_t n, found = 0;

	assert_int_equal(vg_bill_finalize(db, gold, SEP, T("2026-11-02T00:00:00Z"), &n), 0);
	assert_int_equal(vg_bill_finalize(db, gold, OCT, T("2026-11-02T00:00:00Z"), &n), 0);
	gold_poll(f, "2026-10-20T00:00:00Z", 0);
	gold_poll(f, "2026-10-20T10:00:00Z", 0);
	gold_poll(f, "2026-10-20T10:30:00Z", 1);
	assert_int_equal(vg_bill_invoice_from_db(db, gold, NOV, "acme", &inv), 0);
	for (size_t i = 0; i < inv->nlines; i++)
		assert_null(strstr(inv->lines[i].key, "i-gold"));
	assert_int_equal(inv->total_micro, 80000);
	for (size_t i = 0; i < inv->nwarnings; i++)
		found += strstr(inv->warnings[i],
				"adjustment for 2026-10 withheld: resource i-gold, line compute "
				"flavor:x1.gold (hour): with it the invoice's lines come past "
				"10^12 currency units") != NULL;
	assert_int_equal(found, 1);
	assert_int_equal(vg_bill_withheld_last()->n, 1);
	assert_int_equal(vg_bill_withheld_last()->first.sum, 1);
	vg_bill_invoice_free(inv);
	vg_bill_ratecard_free(gold);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		DBE_BOTH(test_finalize_freezes, setup, teardown),
		DBE_BOTH(test_late_usage_becomes_adjustment, setup, teardown),
		DBE_BOTH(test_adjustment_slice_inside_span, setup, teardown),
		DBE_BOTH(test_network_adjustment_hours, setup, teardown),
		DBE_BOTH(test_render_formats, setup, teardown),
		DBE_BOTH(test_names_people_know, setup, teardown),
		DBE_BOTH(test_csv_formulas, setup, teardown),
		DBE_BOTH(test_readable_lines, setup, teardown),
		DBE_BOTH(test_warnings_everywhere, setup, teardown),
		DBE_BOTH(test_draft_numbers, setup, teardown),
		DBE_BOTH(test_amounts_out_of_range, setup, teardown),
		DBE_BOTH(test_late_unbillable_adjustment, setup, teardown),
		DBE_BOTH(test_late_adjustment_past_with_lines, setup, teardown),
	};
	return cmocka_run_group_tests(tests, dbe_group_setup, dbe_group_teardown);
}
