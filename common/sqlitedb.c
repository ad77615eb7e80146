/*
 * sqlitedb.c — open a vigie sqlite database with the project's pragmas and
 * bring its schema to the version this program writes (vigie/sqlitedb.h).
 *
 * Design: open (read-write, create, no mutex: one handle per thread), busy
 * timeout, WAL and the caller's synchronous level; then, inside BEGIN
 * IMMEDIATE, read PRAGMA user_version and run the schema only when the file
 * is older than this program. The write lock makes the check-and-create
 * atomic between processes and threads that open the same new file at
 * once; the busy timeout lets the second one wait for the first.
 *
 * Invariants: a file whose user_version is newer than ours is never
 * written; on any failure the handle is closed, *out stays NULL and err
 * names the file.
 */
#include <errno.h>
#include <stdio.h>

#include "vigie/sqlitedb.h"

int vg_sqlitedb_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_FULL:
		return -EAGAIN;
	case SQLITE_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static int map(const struct vg_sqlitedb_schema *sch, int rc)
{
	int e = sch->map_err ? sch->map_err(rc) : vg_sqlitedb_errno(rc);

	return e ? e : -EIO;
}

/* Read PRAGMA user_version into *version. SQLITE_OK or a sqlite code. */
static int user_version(sqlite3 *db, int *version)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);

	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			*version = sqlite3_column_int(s, 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(s);
	return rc;
}

/* In the open transaction: check the version, create or upgrade. 0, or a
 * sqlite code with *msg (sqlite3_malloc'd, may stay NULL), or
 * -EPROTONOSUPPORT with err set. */
static int migrate(sqlite3 *db, const char *path,
		   const struct vg_sqlitedb_schema *sch,
		   const char *const *upgrade, char **msg, char *err,
		   size_t errlen)
{
	char sql[64];
	int version = -1, rc;

	rc = user_version(db, &version);
	if (rc != SQLITE_OK)
		return rc;
	if (version > sch->version) {
		snprintf(err, errlen, "%s: schema version %d is newer than this "
				      "program's %d",
			 path, version, sch->version);
		return -EPROTONOSUPPORT;
	}
	if (version == sch->version)
		return SQLITE_OK;
	for (int v = version; upgrade && v >= 1 && v < sch->version &&
			      upgrade[v];
	     v++) {
		rc = sqlite3_exec(db, upgrade[v], NULL, NULL, msg);
		if (rc != SQLITE_OK)
			return rc;
	}
	/* sql is idempotent (IF NOT EXISTS): it completes what steps left */
	rc = sqlite3_exec(db, sch->sql, NULL, NULL, msg);
	if (rc != SQLITE_OK)
		return rc;
	snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", sch->version);
	return sqlite3_exec(db, sql, NULL, NULL, msg);
}

int vg_sqlitedb_open(const char *path, const struct vg_sqlitedb_schema *sch,
		     sqlite3 **out, char *err, size_t errlen)
{
	return vg_sqlitedb_open_upgrade(path, sch, NULL, out, err, errlen);
}

int vg_sqlitedb_open_upgrade(const char *path,
			     const struct vg_sqlitedb_schema *sch,
			     const char *const *upgrade, sqlite3 **out,
			     char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	char *msg = NULL, pragmas[96];
	int rc, in_txn = 0;

	*out = NULL;
	rc = sqlite3_open_v2(path, &db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
			 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return rc == SQLITE_CANTOPEN ? -ENOENT : map(sch, rc);
	}
	sqlite3_busy_timeout(db, sch->busy_timeout_ms);
	snprintf(pragmas, sizeof(pragmas),
		 "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;",
		 sch->synchronous ? sch->synchronous : "NORMAL");
	rc = sqlite3_exec(db, pragmas, NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
	if (rc == SQLITE_OK) {
		rc = migrate(db, path, sch, upgrade, &msg, err, errlen);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
		in_txn = rc != SQLITE_OK;
	}
	if (rc != SQLITE_OK) {
		if (rc != -EPROTONOSUPPORT) {
			/* read the message before ROLLBACK overwrites it */
			snprintf(err, errlen, "%s: %s", path,
				 msg ? msg : sqlite3_errmsg(db));
			rc = map(sch, rc);
		}
		if (in_txn)
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_free(msg);
		sqlite3_close(db);
		return rc;
	}
	*out = db;
	return 0;
}
