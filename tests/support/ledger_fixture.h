/*
 * ledger_fixture.h — the fixture of the tests that meter the October 2026
 * ledger (tests/unit/bill_ledger_test.c, tests/unit/bill_invoice_test.c):
 * a fresh state database of the case's engine (db_engines.h), the ledger
 * (tests/fixtures/billing/ledger-2026-10.txt), its rate card and a meter
 * open on the database, in a temporary directory removed at the end.
 * Header-only; include after <cmocka.h>, db_engines.h and tmpdir.h.
 */
#ifndef VIGIE_TEST_LEDGER_FIXTURE_H
#define VIGIE_TEST_LEDGER_FIXTURE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "billing/ledger.h"
#include "vigie/bill_meter.h"
#include "vigie/bill_ratecard.h"

#define LEDGER "tests/fixtures/billing/ledger-2026-10.txt"

struct ledger_fx {
	const struct dbe *e;
	char dir[64], db[700];
	struct vg_bill_ledger *l;
	struct vg_bill_ratecard *rc;
	struct vg_bill_meter *m;
	uint64_t seq; /* the last batch sequence number a case used */
};

/* *state (the case's engine) becomes the fixture, its directory made from
 * TEMPLATE (mkdtemp); 0, or -1 when its database cannot be made (the case
 * then fails or skips in ledger_fx_get: f->m stays NULL). */
static inline int ledger_fx_setup(void **state, const char *template)
{
	struct ledger_fx *f = calloc(1, sizeof(*f));
	char err[512];
	int rc;

	f->e = *state;
	*state = f;
	snprintf(f->dir, sizeof(f->dir), "%s", template);
	assert_non_null(mkdtemp(f->dir));
	if ((rc = dbe_fresh(f->e, f->db, sizeof(f->db))))
		return rc < 0 ? -1 : 0;
	if (vg_bill_ledger_load(LEDGER, &f->l, err, sizeof(err)) ||
	    vg_bill_ratecard_load(f->l->ratecard, &f->rc, err, sizeof(err)) ||
	    vg_bill_meter_open(f->db, &f->m, err, sizeof(err)))
		fail_msg("%s", err);
	return 0;
}

/* The case's fixture; skips (or fails) when its engine cannot run. */
static inline struct ledger_fx *ledger_fx_get(void **state)
{
	struct ledger_fx *f = *state;
	if (!f->m)
		dbe_need(f->e);
	return f;
}

static inline int ledger_fx_teardown(void **state)
{
	struct ledger_fx *f = *state;
	vg_bill_meter_close(f->m);
	vg_bill_ratecard_free(f->rc);
	vg_bill_ledger_free(f->l);
	assert_int_equal(fx_rm_tree(f->dir), 0);
	free(f);
	return 0;
}

#endif
