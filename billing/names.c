/*
 * names.c — the names people know a project by, for invoices
 * (bill_invoice.h: vg_bill_names_*).
 *
 * An invoice shows a project's name beside its id (the id is what the
 * cloud keys everything by; the name is what the customer recognises).
 * The agent sends the Nova project name with every instance (attribute
 * "project_name"); the meter keeps the latest one per project here.
 * Instance display names need no table: the meter keeps an instance's
 * Nova display name (attribute "display_name") as its resource name.
 *
 * Table bill_project_names(project, name, updated_ms), separate from the
 * metering schema on purpose: its SQL is portable (sqlite and PostgreSQL,
 * include/vigie/db.h's rules: TEXT/BIGINT, an upsert whose SET qualifies
 * the old row) and it is created here, IF NOT EXISTS, so it changes no
 * existing table. Invariants: a name is replaced only by a newer report
 * (updated_ms strictly greater), so a re-delivered or late batch cannot
 * bring an old name back; a reader whose database has no such table (or
 * no row) gets no name, never an error.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/bill_invoice.h"
#include "vigie/bill_meter.h"

static const char ddl[] =
	"CREATE TABLE IF NOT EXISTS bill_project_names("
	" project TEXT PRIMARY KEY,"
	" name TEXT NOT NULL,"
	" updated_ms BIGINT NOT NULL)";

static const char put_sql[] =
	"INSERT INTO bill_project_names(project,name,updated_ms) "
	"VALUES(?1,?2,?3) ON CONFLICT(project) DO UPDATE SET "
	"name=excluded.name,updated_ms=excluded.updated_ms "
	"WHERE bill_project_names.updated_ms<excluded.updated_ms "
	"AND bill_project_names.name<>excluded.name";

static const char get_sql[] =
	"SELECT name FROM bill_project_names WHERE project=?1";

int vg_bill_names_init(sqlite3 *db)
{
	return vg_bill_db_errno(sqlite3_exec(db, ddl, NULL, NULL, NULL));
}

int vg_bill_names_put(sqlite3 *db, const char *project, const char *name,
		      int64_t time_ms)
{
	sqlite3_stmt *s;
	int rc;

	if (!project || !name || !*name)
		return 0;
	if ((rc = sqlite3_prepare_v3(db, put_sql, -1, SQLITE_PREPARE_PERSISTENT,
				     &s, NULL)) != SQLITE_OK)
		return vg_bill_db_errno(rc);
	sqlite3_bind_text(s, 1, project, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, time_ms);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : vg_bill_db_errno(rc);
}

int vg_bill_names_fill(sqlite3 *db, struct vg_bill_invoice **inv, size_t n)
{
	sqlite3_stmt *s;

	if (n == 0 || sqlite3_prepare_v2(db, get_sql, -1, &s, NULL) != SQLITE_OK)
		return 0; /* no table yet: no names */
	for (size_t i = 0; i < n; i++) {
		if (inv[i]->project_name)
			continue;
		sqlite3_bind_text(s, 1, inv[i]->project, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) &&
		    !(inv[i]->project_name =
			      strdup((const char *)sqlite3_column_text(s, 0)))) {
			sqlite3_finalize(s);
			return -ENOMEM;
		}
		sqlite3_reset(s);
	}
	sqlite3_finalize(s);
	return 0;
}
