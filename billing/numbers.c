/*
 * numbers.c — invoice number sequences, one per issuer
 * (bill_invoice.h: vg_bill_numbers_*).
 *
 * Invoice numbers must be consecutive per issuer and must not leak
 * anything (a project UUID, a month's count of customers): an issuer's
 * invoices and credit notes are numbered prefix + a sequence that never
 * restarts ("VC-000041", "VC-000042" in the next month).
 *
 * Table bill_number_seq(issuer, last): the last number given, created by
 * step 2 of billing's schema (billing/db.c). Portable SQL (sqlite >= 3.35
 * and PostgreSQL: an upsert whose SET qualifies the old row, RETURNING). Invariant: a number is taken inside the finalizing
 * transaction, so a rolled-back finalization gives its numbers back and
 * a committed one never reuses them; two collectors finalizing at once
 * serialise on the row.
 */
#include <errno.h>

#include "vigie/bill_invoice.h"
#include "vigie/bill_meter.h"

static const char next_sql[] =
	"INSERT INTO bill_number_seq(issuer,last) VALUES(?1,1) "
	"ON CONFLICT(issuer) DO UPDATE SET last=bill_number_seq.last+1 "
	"RETURNING last";

int vg_bill_numbers_next(struct vg_db *db, const char *issuer, int64_t *out)
{
	struct vg_db_stmt *s;
	int rc;

	if ((rc = vg_db_prepare(db, next_sql, &s)))
		return vg_bill_db_errno(rc);
	vg_db_bind_text(s, 1, issuer);
	rc = vg_db_step(s);
	if (rc == 1)
		*out = vg_db_column_int64(s, 0);
	vg_db_reset(s);
	if (rc < 0)
		return vg_bill_db_errno(rc);
	return rc == 1 ? 0 : -EIO;
}
