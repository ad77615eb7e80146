/*
 * vigie — opening the project's sqlite databases (common/sqlitedb.c).
 *
 * registry.db, alarms.db and billing.db are opened the same way: read-write,
 * created if missing, one handle per thread (SQLITE_OPEN_NOMUTEX), a busy
 * timeout, WAL journal, and a schema whose version lives in PRAGMA
 * user_version. vg_sqlitedb_open does all of that in one call.
 *
 * Thread-safe (each call opens its own handle).
 */
#ifndef VIGIE_SQLITEDB_H
#define VIGIE_SQLITEDB_H

#include <stddef.h>

#include <sqlite3.h>

/* How a database is opened and what schema it must have. */
struct vg_sqlitedb_schema {
	int version;             /* user_version this program writes, >= 1 */
	const char *sql;         /* brings a database of any older version
				  * (0: empty) to `version` */
	const char *synchronous; /* PRAGMA synchronous: "NORMAL" or "FULL" */
	int busy_timeout_ms;     /* sqlite3_busy_timeout */
	/* sqlite result code -> -errno for this database's callers; NULL:
	 * vg_sqlitedb_errno. A mapping to 0 of a failure becomes -EIO. */
	int (*map_err)(int sqlite_rc);
};

/* Open or create the database file at path with the pragmas of sch, then
 * check its user_version inside one BEGIN IMMEDIATE transaction (so two
 * processes opening a new file at once create the schema once):
 *  - equal: nothing more is run;
 *  - older: sch->sql is run and user_version set to sch->version;
 *  - newer: -EPROTONOSUPPORT, "<path>: schema version N is newer than this
 *    program's M" in err (the file is left as it was).
 * On success *out is the handle (the caller closes it with sqlite3_close).
 * On failure *out is NULL, err holds one line that starts with path, and
 * the return is -ENOENT when the file cannot be opened (SQLITE_CANTOPEN),
 * else sch->map_err of the sqlite code (BUSY, LOCKED and FULL give -EAGAIN
 * with the default mapping). */
int vg_sqlitedb_open(const char *path, const struct vg_sqlitedb_schema *sch,
		     sqlite3 **out, char *err, size_t errlen);

/* The same, for a schema change that CREATE ... IF NOT EXISTS cannot make
 * (a new column): a database of version v >= 1 first runs upgrade[v],
 * upgrade[v + 1] ... (up to sch->version - 1, stopping at a NULL entry),
 * each bringing it one version up, then sch->sql as above. upgrade NULL:
 * vg_sqlitedb_open. */
int vg_sqlitedb_open_upgrade(const char *path,
			     const struct vg_sqlitedb_schema *sch,
			     const char *const *upgrade, sqlite3 **out,
			     char *err, size_t errlen);

/* The common mapping of a sqlite result code (extended codes accepted):
 * OK/ROW/DONE -> 0, BUSY/LOCKED/FULL -> -EAGAIN (retry later), NOMEM ->
 * -ENOMEM, anything else -> -EIO. Pure. */
int vg_sqlitedb_errno(int sqlite_rc);

#endif
