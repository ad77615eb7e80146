/*
 * db_sqlite.c — the state database's sqlite driver (vigie/db.h).
 *
 * Design: a thin mapping onto sqlite3. The SQL syntax of the layer (?N) is
 * sqlite's own, so statements are prepared as written
 * (SQLITE_PREPARE_PERSISTENT: they live as long as the connection). A
 * file is opened as the project always opened its databases
 * (common/sqlitedb.c): read-write, created if missing, no mutex (one
 * handle per thread), WAL, a busy timeout; extended result codes tell a
 * unique violation from other constraints.
 *
 * Invariants: sqlite never loses its "connection", so this driver has no
 * xreconnect and never returns -ECONNRESET; BUSY and LOCKED are -EBUSY
 * only after the busy timeout has run out.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "vigie/db.h"

struct lite_stmt {
	struct vg_db_stmt base;
	sqlite3_stmt *s;
};

static sqlite3 *H(struct vg_db *db)
{
	return db->impl;
}

static int lite_code(int rc)
{
	switch (rc) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return -EEXIST;
	}
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
	case SQLITE_TOOBIG:
		return -EINVAL;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_READONLY:
		return -EROFS;
	default:
		return -EIO;
	}
}

static int fail(struct vg_db *db, int rc)
{
	return vg_db__err(db, lite_code(rc), "%s", H(db) ? sqlite3_errmsg(H(db)) : sqlite3_errstr(rc));
}

/* sqlite's own busy handler (sqlite3_busy_timeout) sleeps 1, 2, 5, 10 ...
 * 100 ms between tries: one such sleep can be a whole latency budget (the
 * alarm engine commits notifications while the delivery thread records
 * deliveries, a few ms each). Retry every 50 us for the first millisecond,
 * then every millisecond, for about the same total bound (ctx: the busy
 * timeout in ms). */
static int busy_wait(void *ctx, int count)
{
	struct timespec ts = {0, count < 20 ? 50000 : 1000000};

	if (count >= 20 + (int)(intptr_t)ctx)
		return 0;
	nanosleep(&ts, NULL);
	return 1;
}

/* target: path[?synchronous=normal|full][&busy_timeout_ms=N] */
static int lite_open(struct vg_db *db, const char *target)
{
	const char *q = strchr(target, '?');
	char *path = q ? strndup(target, (size_t)(q - target)) : strdup(target);
	const char *sync = "FULL";
	int busy_ms = 5000, rc;
	char pragmas[96];
	sqlite3 *h = NULL;

	if (!path)
		return -ENOMEM;
	db->name = path;
	for (const char *o = q ? q + 1 : NULL; o && *o;) {
		size_t n = strcspn(o, "&");
		if (n == 18 && !strncmp(o, "synchronous=normal", n))
			sync = "NORMAL";
		else if (n == 16 && !strncmp(o, "synchronous=full", n))
			sync = "FULL";
		else if (n > 16 && !strncmp(o, "busy_timeout_ms=", 16))
			busy_ms = atoi(o + 16);
		else
			return vg_db__err(db, -EINVAL, "unknown sqlite option '%.*s'", (int)n, o);
		o += n;
		if (*o == '&')
			o++;
	}
	rc = sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			     NULL);
	db->impl = h;
	if (rc != SQLITE_OK)
		return fail(db, rc);
	sqlite3_extended_result_codes(h, 1);
	sqlite3_busy_handler(h, busy_wait, (void *)(intptr_t)busy_ms);
	snprintf(pragmas, sizeof(pragmas), "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;", sync);
	/* Turning a new file to WAL while another connection does the same
	 * can answer BUSY without calling the busy handler: wait here, within
	 * the busy timeout, like any other lock. */
	for (int waited = 0;; waited += 10) {
		rc = sqlite3_exec(h, pragmas, NULL, NULL, NULL);
		if ((rc & 0xff) != SQLITE_BUSY || waited >= busy_ms)
			break;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return rc == SQLITE_OK ? 0 : fail(db, rc);
}

static void lite_close(struct vg_db *db)
{
	sqlite3_close(H(db));
	db->impl = NULL;
}

static int lite_exec(struct vg_db *db, const char *sql)
{
	int rc = sqlite3_exec(H(db), sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : fail(db, rc);
}

static int lite_prepare(struct vg_db *db, struct vg_db_stmt *base)
{
	struct lite_stmt *st = (struct lite_stmt *)base;
	int rc = sqlite3_prepare_v3(H(db), base->sql, -1, SQLITE_PREPARE_PERSISTENT, &st->s, NULL);

	if (rc != SQLITE_OK)
		return fail(db, rc);
	if (!st->s)
		return vg_db__err(db, -EINVAL, "no statement in: %.200s", base->sql);
	return 0;
}

static void lite_finalize(struct vg_db_stmt *base)
{
	sqlite3_finalize(((struct lite_stmt *)base)->s);
}

static int lite_bind(struct vg_db_stmt *base, int i, const struct vg_db_value *v)
{
	sqlite3_stmt *s = ((struct lite_stmt *)base)->s;
	int rc;

	switch (v->type) {
	case VG_DB_INT:
		rc = sqlite3_bind_int64(s, i, v->i);
		break;
	case VG_DB_REAL:
		rc = sqlite3_bind_double(s, i, v->d);
		break;
	case VG_DB_TEXT:
		rc = sqlite3_bind_text64(s, i, v->p, v->len, SQLITE_TRANSIENT, SQLITE_UTF8);
		break;
	case VG_DB_BLOB:
		rc = sqlite3_bind_blob64(s, i, v->p, v->len, SQLITE_TRANSIENT);
		break;
	default:
		rc = sqlite3_bind_null(s, i);
	}
	return rc == SQLITE_OK ? 0 : fail(base->db, rc);
}

static int lite_step(struct vg_db_stmt *base)
{
	int rc = sqlite3_step(((struct lite_stmt *)base)->s);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return fail(base->db, rc);
}

static void lite_reset(struct vg_db_stmt *base)
{
	sqlite3_reset(((struct lite_stmt *)base)->s);
}

static void lite_clear(struct vg_db_stmt *base)
{
	sqlite3_clear_bindings(((struct lite_stmt *)base)->s);
}

static int lite_column_count(struct vg_db_stmt *base)
{
	return sqlite3_data_count(((struct lite_stmt *)base)->s);
}

static void lite_column(struct vg_db_stmt *base, int i, struct vg_db_value *out)
{
	sqlite3_stmt *s = ((struct lite_stmt *)base)->s;

	switch (sqlite3_column_type(s, i)) {
	case SQLITE_INTEGER:
		out->type = VG_DB_INT;
		out->i = sqlite3_column_int64(s, i);
		break;
	case SQLITE_FLOAT:
		out->type = VG_DB_REAL;
		out->d = sqlite3_column_double(s, i);
		break;
	case SQLITE_TEXT:
		out->type = VG_DB_TEXT;
		out->p = sqlite3_column_text(s, i);
		out->len = (size_t)sqlite3_column_bytes(s, i);
		break;
	case SQLITE_BLOB:
		out->type = VG_DB_BLOB;
		out->p = sqlite3_column_blob(s, i);
		out->len = (size_t)sqlite3_column_bytes(s, i);
		if (!out->p)
			out->p = ""; /* an empty blob is not NULL */
		break;
	default:
		out->type = VG_DB_NULL;
	}
}

static int64_t lite_changes(struct vg_db *db)
{
	return sqlite3_changes64(H(db));
}

const struct vg_db_driver vg_db_sqlite_driver = {
	.engine = VG_DB_SQLITE,
	.name = "sqlite",
	.begin_sql = "BEGIN IMMEDIATE",
	.migrate_lock_sql = NULL,
	.user_version_sql = "PRAGMA user_version",
	.stmt_size = sizeof(struct lite_stmt),
	.xopen = lite_open,
	.xclose = lite_close,
	.xreconnect = NULL,
	.xexec = lite_exec,
	.xprepare = lite_prepare,
	.xfinalize = lite_finalize,
	.xbind = lite_bind,
	.xstep = lite_step,
	.xreset = lite_reset,
	.xclear = lite_clear,
	.xcolumn_count = lite_column_count,
	.xcolumn = lite_column,
	.xchanges = lite_changes,
};
