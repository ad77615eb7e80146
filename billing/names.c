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
 * Table bill_project_names(project, name, updated_ms), created by step 2
 * of billing's schema (billing/db.c), so an existing billing.db gains it
 * when it is opened. The SQL here is portable (sqlite and PostgreSQL,
 * include/vigie/db.h's rules: ?N parameters, an upsert whose SET
 * qualifies the old row). Invariants: a name is replaced only by a newer report
 * (updated_ms strictly greater), so a re-delivered or late batch cannot
 * bring an old name back; a reader whose database has no such table (or
 * no row) gets no name, never an error.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/bill_invoice.h"
#include "vigie/bill_meter.h"

static const char put_sql[] =
	"INSERT INTO bill_project_names(project,name,updated_ms) "
	"VALUES(?1,?2,?3) ON CONFLICT(project) DO UPDATE SET "
	"name=excluded.name,updated_ms=excluded.updated_ms "
	"WHERE bill_project_names.updated_ms<excluded.updated_ms "
	"AND bill_project_names.name<>excluded.name";

static const char get_sql[] =
	"SELECT name FROM bill_project_names WHERE project=?1";

int vg_bill_names_put(struct vg_db *db, const char *project, const char *name,
		      int64_t time_ms)
{
	struct vg_db_stmt *s;
	int rc;

	if (!project || !name || !*name)
		return 0;
	if ((rc = vg_db_prepare(db, put_sql, &s)))
		return vg_bill_db_errno(rc);
	vg_db_bind_text(s, 1, project);
	vg_db_bind_text(s, 2, name);
	vg_db_bind_int64(s, 3, time_ms);
	rc = vg_db_step(s);
	vg_db_reset(s);
	return rc < 0 ? vg_bill_db_errno(rc) : 0;
}

int vg_bill_names_fill(struct vg_db *db, struct vg_bill_invoice **inv, size_t n)
{
	struct vg_db_stmt *s;
	int rc;

	if (n == 0)
		return 0;
	if ((rc = vg_db_prepare(db, get_sql, &s)))
		return vg_bill_db_errno(rc);
	for (size_t i = 0; i < n; i++) {
		const char *name;

		if (inv[i]->project_name)
			continue;
		vg_db_bind_text(s, 1, inv[i]->project);
		rc = vg_db_step(s);
		if (rc < 0)
			return vg_bill_db_errno(rc);
		name = rc == 1 ? vg_db_column_text(s, 0) : NULL;
		if (name && !(inv[i]->project_name = strdup(name))) {
			vg_db_reset(s);
			return -ENOMEM;
		}
		vg_db_reset(s);
	}
	return 0;
}
