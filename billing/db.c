/*
 * db.c — the billing database: schema, opening, error mapping.
 *
 * Tables (schema version in PRAGMA user_version):
 *   resources    one row per metered instance, disk and vNIC: identity,
 *                the meter's watermarks (last poll applied, last seen,
 *                last transition), its current state and counter baselines.
 *   transitions  the timelines: (resource, time_ms, kind) unique, exact or
 *                inferred with the window [lo_ms, hi_ms], the flavor or
 *                capacity that holds from then on.
 *   network      bytes per (project, UTC hour, vNIC): the order egress
 *                tiers are filled in.
 *   months       finalized months; invoices: the frozen invoice documents.
 *
 * WAL mode so the API's readers never block the receiver's writes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vigie/bill_meter.h"
#include "vigie/sqlitedb.h"

#define SCHEMA_VERSION 1
#define BUSY_TIMEOUT_MS 5000

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS resources("
	" id TEXT PRIMARY KEY,"
	" type INTEGER NOT NULL,"
	" parent TEXT,"
	" project TEXT NOT NULL,"
	" user TEXT, name TEXT, host TEXT,"
	" first_ms INTEGER NOT NULL,"
	" last_seen_ms INTEGER NOT NULL,"
	" last_poll_ms INTEGER NOT NULL,"
	" last_change_ms INTEGER NOT NULL,"
	" state INTEGER NOT NULL,"     /* bit 1 exists, bit 2 running, 4 run known */
	" flavor TEXT, vcpus INTEGER, ram_mb INTEGER, disk_gb INTEGER,"
	" capacity INTEGER,"
	" has_disks INTEGER NOT NULL DEFAULT 0,"
	" ctr_ms INTEGER, ctr_tx INTEGER, ctr_rx INTEGER);"
	"CREATE INDEX IF NOT EXISTS resources_project ON resources(project);"
	"CREATE INDEX IF NOT EXISTS resources_parent ON resources(parent);"
	"CREATE TABLE IF NOT EXISTS transitions("
	" resource TEXT NOT NULL,"
	" time_ms INTEGER NOT NULL,"
	" kind INTEGER NOT NULL,"
	" exact INTEGER NOT NULL,"
	" lo_ms INTEGER NOT NULL,"
	" hi_ms INTEGER NOT NULL,"
	" flavor TEXT, vcpus INTEGER, ram_mb INTEGER, disk_gb INTEGER,"
	" capacity INTEGER,"
	" PRIMARY KEY(resource, time_ms, kind)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS network("
	" project TEXT NOT NULL,"
	" hour_ms INTEGER NOT NULL,"
	" nic TEXT NOT NULL,"
	" tx INTEGER NOT NULL,"
	" rx INTEGER NOT NULL,"
	" PRIMARY KEY(project, hour_ms, nic)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS months("
	" month TEXT PRIMARY KEY,"
	" finalized_ms INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS invoices("
	" month TEXT NOT NULL,"
	" project TEXT NOT NULL,"
	" number TEXT NOT NULL UNIQUE,"
	" document TEXT NOT NULL,"
	" PRIMARY KEY(month, project));";

char *vg_bill_db_path(const char *data_dir, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", data_dir, VG_BILL_DB);
	return buf;
}

int vg_bill_db_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_READONLY:
		return -EACCES;
	default:
		return vg_sqlitedb_errno(rc);
	}
}

/* version, schema, synchronous, busy timeout, errors */
static const struct vg_sqlitedb_schema billing_schema = {
	SCHEMA_VERSION, schema, "NORMAL", BUSY_TIMEOUT_MS, vg_bill_db_errno};

int vg_bill_db_open(const char *path, sqlite3 **out, char *err, size_t errlen)
{
	return vg_sqlitedb_open(path, &billing_schema, out, err, errlen);
}
