/*
 * numbers.c — invoice number sequences, one per issuer
 * (bill_invoice.h: vg_bill_numbers_*).
 *
 * Invoice numbers must be consecutive per issuer and must not leak
 * anything (a project UUID, a month's count of customers): an issuer's
 * invoices and credit notes are numbered prefix + a sequence that never
 * restarts ("VC-000041", "VC-000042" in the next month).
 *
 * Table bill_number_seq(issuer, last): the last number given. Kept apart
 * from the metering schema and created here IF NOT EXISTS, in portable SQL
 * (sqlite >= 3.35 and PostgreSQL: an upsert whose SET qualifies the old
 * row, RETURNING). Invariant: a number is taken inside the finalizing
 * transaction, so a rolled-back finalization gives its numbers back and
 * a committed one never reuses them; two collectors finalizing at once
 * serialise on the row.
 */
#include <errno.h>

#include "vigie/bill_invoice.h"
#include "vigie/bill_meter.h"

static const char ddl[] =
	"CREATE TABLE IF NOT EXISTS bill_number_seq("
	" issuer TEXT PRIMARY KEY,"
	" last BIGINT NOT NULL)";

static const char next_sql[] =
	"INSERT INTO bill_number_seq(issuer,last) VALUES(?1,1) "
	"ON CONFLICT(issuer) DO UPDATE SET last=bill_number_seq.last+1 "
	"RETURNING last";

int vg_bill_numbers_init(sqlite3 *db)
{
	return vg_bill_db_errno(sqlite3_exec(db, ddl, NULL, NULL, NULL));
}

int vg_bill_numbers_next(sqlite3 *db, const char *issuer, int64_t *out)
{
	sqlite3_stmt *s;
	int rc;

	if ((rc = vg_bill_numbers_init(db)))
		return rc;
	if ((rc = sqlite3_prepare_v2(db, next_sql, -1, &s, NULL)) != SQLITE_OK)
		return vg_bill_db_errno(rc);
	sqlite3_bind_text(s, 1, issuer, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	while (rc == SQLITE_ROW)
		rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : vg_bill_db_errno(rc);
}
