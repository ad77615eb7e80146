/*
 * db.c — the state database's engine-independent half (vigie/db.h).
 *
 * Design: sqlite's VFS turned around — this file holds everything the two
 * engines share and calls a table of operations (struct vg_db_driver) for
 * the rest: common/db_sqlite.c and common/db_pg.c each fill one in. Here:
 * choosing the driver from the URL, the per-connection statement cache,
 * checking ?N parameters, transaction state, the reconnect gate, the retry
 * helper and schema migrations.
 *
 * Invariants:
 *  - every public call on a connection passes through gate(): if the last
 *    call lost the connection, this one reconnects first (or fails with
 *    -ENOTCONN and leaves the connection marked lost for the next call);
 *  - db->in_txn is 1 exactly between a successful (or queued) BEGIN and
 *    the COMMIT or ROLLBACK that ends it; a lost connection ends it too
 *    (the server rolled it back);
 *  - a statement in the cache belongs to its connection until vg_db_close;
 *    the driver re-prepares it after a reconnect (db->generation);
 *  - vg_db_migrate never writes a database whose schema is newer than the
 *    caller's, and applies all of its steps or none;
 *  - a migration on PostgreSQL never waits for one lock longer than the
 *    migrate lock_timeout, nor for locks longer than the migrate wait in
 *    all (vg_db_set_migrate_wait): a session holding a lock its steps
 *    need makes it roll back, pause and try again, so the writes of
 *    others queued behind its waiting step wait a lock_timeout at most.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vigie/clock.h"
#include "vigie/db.h"
#include "vigie/log.h"

int vg_db__err(struct vg_db *db, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(db->errmsg, sizeof(db->errmsg), fmt, ap);
	va_end(ap);
	/* one line */
	for (char *p = db->errmsg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = *(p + 1) ? ' ' : '\0';
	return code;
}

int vg_db__scan_params(const char *sql, char *out)
{
	int max = 0;
	const char *p = sql;
	char *o = out;

#define EMIT(c)                   \
	do {                      \
		char c_ = (c);    \
		if (o) *o++ = c_; \
	} while (0)
	while (*p) {
		char c = *p;
		if (c == '\'' || c == '"') { /* literal or quoted identifier; '' and "" escape */
			EMIT(*p++);
			while (*p) {
				if (*p == c && p[1] == c) {
					EMIT(*p++);
					EMIT(*p++);
					continue;
				}
				if (*p == c)
					break;
				EMIT(*p++);
			}
			if (*p)
				EMIT(*p++);
		} else if (c == '-' && p[1] == '-') {
			while (*p && *p != '\n')
				EMIT(*p++);
		} else if (c == '/' && p[1] == '*') {
			EMIT(*p++);
			EMIT(*p++);
			while (*p && !(p[0] == '*' && p[1] == '/'))
				EMIT(*p++);
			if (*p) {
				EMIT(*p++);
				EMIT(*p++);
			}
		} else if (c == '$' && p[1] >= '0' && p[1] <= '9') {
			return -EINVAL; /* PostgreSQL's own syntax: one way only */
		} else if (c == '?') {
			long n = 0;
			int digits = 0;
			for (p++; *p >= '0' && *p <= '9'; p++, digits++)
				if (digits < 6)
					n = n * 10 + (*p - '0');
			if (!digits || digits > 5 || n == 0)
				return -EINVAL;
			if (o)
				o += sprintf(o, "$%ld", n);
			if (n > max)
				max = (int)n;
		} else {
			EMIT(*p++);
		}
	}
	if (o)
		*o = '\0';
#undef EMIT
	return max;
}

static const struct vg_db_driver *pick(const char *url, const char **target)
{
	const char *eq = strchr(url, '='), *slash = strchr(url, '/');

	if (!strncmp(url, "sqlite:", 7)) {
		*target = url + 7;
		return &vg_db_sqlite_driver;
	}
	*target = url;
	if (!strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11))
		return &vg_db_pg_driver;
	if (eq && (!slash || slash > eq))
		return &vg_db_pg_driver;
	return &vg_db_sqlite_driver;
}

static int gate(struct vg_db *db)
{
	int rc;

	db->errmsg[0] = '\0';
	if (!db->lost)
		return 0;
	rc = db->drv->xreconnect(db);
	if (rc)
		return rc == -ENOMEM ? rc : -ENOTCONN;
	/* the new session's settings, before anything else runs on it */
	if (db->session && (rc = db->drv->xexec(db, db->session)))
		return rc == -ENOMEM ? rc : -ENOTCONN;
	db->lost = 0;
	db->generation++;
	return 0;
}

/* Note what a driver's failure means for the connection. */
static int after(struct vg_db *db, int rc)
{
	if (rc == -ECONNRESET && db->drv->xreconnect) {
		db->lost = 1;
		db->in_txn = 0;
		db->commit_sent = 0;
	}
	return rc;
}

int vg_db_open(const char *url, const struct vg_db_schema *sch, struct vg_db **out,
	       char *err, size_t errlen)
{
	const char *target;
	struct vg_db *db;
	int rc;

	*out = NULL;
	if (errlen)
		err[0] = '\0';
	if (!url || !*url) {
		if (errlen)
			snprintf(err, errlen, "state database: empty URL");
		return -EINVAL;
	}
	if (!(db = calloc(1, sizeof(*db))))
		return -ENOMEM;
	db->drv = pick(url, &target);
	db->pg_schema = sch ? sch->pg_schema : NULL;
	rc = db->drv->xopen(db, target);
	if (rc) {
		if (errlen)
			snprintf(err, errlen, "%s: %s", db->name ? db->name : target, db->errmsg);
		vg_db_close(db);
		return rc == -ECONNRESET ? -ENOTCONN : rc;
	}
	if (db->pg_schema && db->drv == &vg_db_pg_driver) {
		/* the search_path (set at connect) names it: make it exist; two
		 * collectors starting at once may race to create it */
		char sql[128];
		snprintf(sql, sizeof(sql), "CREATE SCHEMA IF NOT EXISTS %s", db->pg_schema);
		rc = vg_db_exec(db, sql);
		if (rc && rc != -EEXIST) {
			if (errlen)
				snprintf(err, errlen, "%s: creating schema %s: %s", db->name,
					 db->pg_schema, db->errmsg);
			vg_db_close(db);
			return rc;
		}
	}
	if (sch && (rc = vg_db_migrate(db, sch, err, errlen))) {
		vg_db_close(db);
		return rc;
	}
	*out = db;
	return 0;
}

void vg_db_close(struct vg_db *db)
{
	if (!db)
		return;
	for (size_t i = 0; i < db->nstmts; i++) {
		struct vg_db_stmt *st = db->stmts[i];
		db->drv->xfinalize(st);
		free(st->sql);
		free(st);
	}
	if (db->impl)
		db->drv->xclose(db);
	free(db->session);
	free(db->name);
	free(db);
}

enum vg_db_engine vg_db_engine(const struct vg_db *db)
{
	return db->drv->engine;
}

const char *vg_db_errmsg(const struct vg_db *db)
{
	return db->errmsg;
}

int vg_db_in_transaction(const struct vg_db *db)
{
	return db->in_txn;
}

int vg_db_exec(struct vg_db *db, const char *sql)
{
	int rc = gate(db);

	return rc ? rc : after(db, db->drv->xexec(db, sql));
}

int vg_db_set_session(struct vg_db *db, const char *sql)
{
	char *copy;
	int rc;

	if (!db || !sql)
		return -EINVAL;
	if (db->drv->engine != VG_DB_POSTGRESQL)
		return 0;
	if (db->in_txn)
		return vg_db__err(db, -EINVAL, "session settings inside a transaction");
	if (!(copy = strdup(sql)))
		return -ENOMEM;
	rc = vg_db_exec(db, sql);
	if (rc && rc != -ECONNRESET && rc != -ENOTCONN) { /* refused: keep the old text */
		free(copy);
		return rc;
	}
	free(db->session); /* made, or to be made at the reconnect */
	db->session = copy;
	return rc;
}

int vg_db_prepare(struct vg_db *db, const char *sql, struct vg_db_stmt **out)
{
	struct vg_db_stmt *st;
	int n, rc;

	*out = NULL;
	if ((rc = gate(db)))
		return rc;
	for (size_t i = 0; i < db->nstmts; i++)
		if (!strcmp(db->stmts[i]->sql, sql)) {
			st = db->stmts[i];
			st->early = 0;
			db->drv->xreset(st);
			db->drv->xclear(st);
			*out = st;
			return 0;
		}
	if ((n = vg_db__scan_params(sql, NULL)) < 0)
		return vg_db__err(db, -EINVAL, "parameters are written ?1..?N (bare ? or ?0 in: %.200s)", sql);
	if (db->nstmts == VG_DB_MAX_STMTS)
		return vg_db__err(db, -ENOSPC, "more than %d cached statements", VG_DB_MAX_STMTS);
	if (!(st = calloc(1, db->drv->stmt_size)) || !(st->sql = strdup(sql))) {
		free(st);
		return -ENOMEM;
	}
	st->db = db;
	st->nparams = n;
	if ((rc = db->drv->xprepare(db, st))) {
		db->drv->xfinalize(st);
		free(st->sql);
		free(st);
		return after(db, rc);
	}
	db->stmts[db->nstmts++] = st;
	*out = st;
	return 0;
}

static int bind(struct vg_db_stmt *st, int i, const struct vg_db_value *v)
{
	if (i < 1 || i > st->nparams)
		return vg_db__err(st->db, -EINVAL, "parameter ?%d out of range 1..%d", i, st->nparams);
	return st->db->drv->xbind(st, i, v);
}

int vg_db_bind_int64(struct vg_db_stmt *st, int i, int64_t v)
{
	struct vg_db_value x = {.type = VG_DB_INT, .i = v};
	return bind(st, i, &x);
}

int vg_db_bind_double(struct vg_db_stmt *st, int i, double v)
{
	struct vg_db_value x = {.type = v != v ? VG_DB_NULL : VG_DB_REAL, .d = v};
	return bind(st, i, &x);
}

int vg_db_bind_text(struct vg_db_stmt *st, int i, const char *v)
{
	struct vg_db_value x = {.type = v ? VG_DB_TEXT : VG_DB_NULL, .p = v, .len = v ? strlen(v) : 0};
	return bind(st, i, &x);
}

int vg_db_bind_blob(struct vg_db_stmt *st, int i, const void *v, size_t len)
{
	struct vg_db_value x = {.type = v ? VG_DB_BLOB : VG_DB_NULL, .p = v, .len = len};
	return bind(st, i, &x);
}

int vg_db_bind_null(struct vg_db_stmt *st, int i)
{
	struct vg_db_value x = {.type = VG_DB_NULL};
	return bind(st, i, &x);
}

int vg_db_step(struct vg_db_stmt *st)
{
	int rc = gate(st->db);

	if (rc)
		return rc;
	if (st->early) { /* vg_db_query_queued ran it to its first row */
		rc = st->early - 1;
		st->early = 0;
		return rc;
	}
	rc = st->db->drv->xstep(st);
	if (rc < 0)
		st->db->drv->xreset(st);
	return rc < 0 ? after(st->db, rc) : rc;
}

void vg_db_reset(struct vg_db_stmt *st)
{
	if (st) {
		st->early = 0;
		st->db->drv->xreset(st);
	}
}

int vg_db_step_queued(struct vg_db_stmt *st)
{
	struct vg_db *db = st->db;
	int rc = gate(db);

	if (rc)
		return rc;
	st->early = 0;
	if (db->drv->xqueue)
		return after(db, db->drv->xqueue(st, 0));
	rc = db->drv->xstep(st);
	db->drv->xreset(st);
	return rc < 0 ? after(db, rc) : 0;
}

int vg_db_query_queued(struct vg_db_stmt *st)
{
	struct vg_db *db = st->db;
	int rc = gate(db);

	if (rc)
		return rc;
	st->early = 0;
	db->drv->xreset(st);
	if (db->drv->xqueue)
		return after(db, db->drv->xqueue(st, 1));
	rc = db->drv->xstep(st);
	if (rc < 0) {
		db->drv->xreset(st);
		return after(db, rc);
	}
	st->early = rc + 1;
	return 0;
}

int vg_db_flush(struct vg_db *db)
{
	int rc = gate(db);

	if (rc || !db->drv->xflush)
		return rc;
	return after(db, db->drv->xflush(db));
}

int vg_db_sync(struct vg_db *db)
{
	int rc = gate(db);

	if (rc || !db->drv->xsync)
		return rc;
	rc = after(db, db->drv->xsync(db));
	if (db->commit_sent) { /* the queue ended with the COMMIT */
		db->commit_sent = 0;
		if (!rc)
			db->in_txn = 0;
	}
	return rc;
}

int64_t vg_db_changes(struct vg_db *db)
{
	return db->drv->xchanges(db);
}

int vg_db_column_count(struct vg_db_stmt *st)
{
	return st->db->drv->xcolumn_count(st);
}

static struct vg_db_value column(struct vg_db_stmt *st, int i)
{
	struct vg_db_value v = {.type = VG_DB_NULL};

	if (i >= 0 && i < st->db->drv->xcolumn_count(st))
		st->db->drv->xcolumn(st, i, &v);
	return v;
}

int vg_db_column_is_null(struct vg_db_stmt *st, int i)
{
	return column(st, i).type == VG_DB_NULL;
}

int64_t vg_db_column_int64(struct vg_db_stmt *st, int i)
{
	struct vg_db_value v = column(st, i);

	switch (v.type) {
	case VG_DB_INT:
		return v.i;
	case VG_DB_REAL:
		return (int64_t)v.d;
	case VG_DB_TEXT:
		if (!strcmp(v.p, "t") || !strcmp(v.p, "f")) /* a PostgreSQL boolean */
			return *(const char *)v.p == 't';
		return strtoll(v.p, NULL, 10);
	default:
		return 0;
	}
}

double vg_db_column_double(struct vg_db_stmt *st, int i)
{
	struct vg_db_value v = column(st, i);

	switch (v.type) {
	case VG_DB_INT:
		return (double)v.i;
	case VG_DB_REAL:
		return v.d;
	case VG_DB_TEXT:
		return strtod(v.p, NULL); /* also "NaN", "Infinity" */
	default:
		return 0;
	}
}

const char *vg_db_column_text(struct vg_db_stmt *st, int i)
{
	struct vg_db_value v = column(st, i);

	return v.type == VG_DB_NULL ? NULL : v.p;
}

const void *vg_db_column_blob(struct vg_db_stmt *st, int i, size_t *len)
{
	struct vg_db_value v = column(st, i);

	*len = v.type == VG_DB_NULL ? 0 : v.len;
	return v.type == VG_DB_NULL ? NULL : v.p;
}

int vg_db_begin(struct vg_db *db)
{
	int rc;

	if ((rc = gate(db)))
		return rc;
	if (db->in_txn)
		return vg_db__err(db, -EINVAL, "BEGIN inside a transaction");
	if (db->drv->xqueue_exec) /* sent with the first statement */
		rc = after(db, db->drv->xqueue_exec(db, db->drv->begin_sql));
	else
		rc = after(db, db->drv->xexec(db, db->drv->begin_sql));
	db->in_txn = !rc;
	return rc;
}

int vg_db_commit(struct vg_db *db)
{
	int rc;

	if ((rc = gate(db)))
		return rc;
	if (!db->in_txn || db->commit_sent)
		return vg_db__err(db, -EINVAL, "COMMIT outside a transaction");
	if (db->drv->xcommit)
		rc = after(db, db->drv->xcommit(db, 1));
	else
		rc = after(db, db->drv->xexec(db, "COMMIT"));
	/* a failed COMMIT: sqlite may keep the transaction (BUSY), PostgreSQL
	 * has ended it; the caller rolls back, which is harmless either way */
	if (!rc)
		db->in_txn = 0;
	return rc;
}

int vg_db_commit_queued(struct vg_db *db)
{
	int rc;

	if ((rc = gate(db)))
		return rc;
	if (!db->in_txn || db->commit_sent)
		return vg_db__err(db, -EINVAL, "COMMIT outside a transaction");
	if (!db->drv->xqueue || !db->drv->xcommit)
		return vg_db_commit(db);
	rc = after(db, db->drv->xcommit(db, 0));
	db->commit_sent = !rc && db->in_txn;
	return rc;
}

int vg_db_rollback(struct vg_db *db)
{
	int rc;

	db->commit_sent = 0;
	if (db->lost) { /* the server already rolled it back */
		db->in_txn = 0;
		return 0;
	}
	db->errmsg[0] = '\0';
	if (!db->in_txn)
		return vg_db__err(db, -EINVAL, "ROLLBACK outside a transaction");
	for (size_t i = 0; i < db->nstmts; i++) { /* sqlite: no pending reads */
		db->stmts[i]->early = 0;
		db->drv->xreset(db->stmts[i]);
	}
	rc = after(db, db->drv->xexec(db, "ROLLBACK"));
	db->in_txn = 0;
	return rc == -ECONNRESET ? 0 : rc;
}

static void backoff(int attempt)
{
	static _Thread_local unsigned seed;
	long ms = 1L << (attempt < 7 ? attempt : 7);

	if (!seed)
		seed = (unsigned)time(NULL) ^ (unsigned)(size_t)&seed;
	seed = seed * 1103515245u + 12345u;
	ms = ms / 2 + (long)((seed >> 8) % (unsigned long)(ms + 1));
	if (ms > 100)
		ms = 100;
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

int vg_db_transact(struct vg_db *db, int (*fn)(struct vg_db *db, void *arg), void *arg)
{
	int rc = 0;

	if (db->in_txn)
		return vg_db__err(db, -EINVAL, "vg_db_transact inside a transaction");
	for (int attempt = 0; attempt < VG_DB_TRIES; attempt++) {
		int committing = 0;

		if (attempt)
			backoff(attempt);
		rc = vg_db_begin(db);
		if (!rc) {
			rc = fn(db, arg);
			if (!rc) {
				committing = 1;
				rc = vg_db_commit(db);
			}
		}
		if (!rc)
			return 0;
		if (db->in_txn) {
			char keep[sizeof(db->errmsg)];
			memcpy(keep, db->errmsg, sizeof(keep));
			vg_db_rollback(db);
			memcpy(db->errmsg, keep, sizeof(keep));
		}
		if (rc == -EBUSY)
			continue;
		if ((rc == -ECONNRESET || rc == -ENOTCONN) && !committing)
			continue;
		return rc;
	}
	return rc;
}

int vg_db_retry_lost(struct vg_db *db, int (*fn)(struct vg_db *db, void *arg), void *arg)
{
	int in_txn = db->in_txn, rc = fn(db, arg);

	if (rc == -ECONNRESET && !in_txn)
		rc = fn(db, arg);
	return rc;
}

/* ---- migrations ---- */

int vg_db_schema_version(struct vg_db *db, const char *component, int64_t *version)
{
	struct vg_db_stmt *st;
	int rc;

	*version = 0;
	rc = vg_db_exec(db, "CREATE TABLE IF NOT EXISTS vg_schema(component TEXT PRIMARY KEY, "
			    "version BIGINT NOT NULL)");
	if (!rc)
		rc = vg_db_prepare(db, "SELECT version FROM vg_schema WHERE component = ?1", &st);
	if (rc)
		return rc;
	if (!(rc = vg_db_bind_text(st, 1, component)) && (rc = vg_db_step(st)) == 1)
		*version = vg_db_column_int64(st, 0);
	vg_db_reset(st);
	return rc < 0 ? rc : 0;
}

static int user_version(struct vg_db *db, int64_t *v)
{
	struct vg_db_stmt *st;
	int rc = vg_db_prepare(db, db->drv->user_version_sql, &st);

	if (!rc && (rc = vg_db_step(st)) == 1)
		*v = vg_db_column_int64(st, 0);
	vg_db_reset(st);
	return rc < 0 ? rc : 0;
}

/* vg_db_set_migrate_wait's values (atomic: connections of several
 * threads migrate at once) */
static uint32_t mig_lock_timeout_ms = VG_DB_MIGRATE_LOCK_TIMEOUT_MS;
static uint32_t mig_wait_ms = VG_DB_MIGRATE_WAIT_MS;
/* the pause after a try that timed out starts at its lock_timeout and
 * doubles up to this */
#define MIG_PAUSE_MAX_MS 30000

void vg_db_set_migrate_wait(uint32_t lock_timeout_ms, uint32_t wait_ms)
{
	if (lock_timeout_ms)
		__atomic_store_n(&mig_lock_timeout_ms,
				 lock_timeout_ms > 3600000 ? 3600000 : lock_timeout_ms,
				 __ATOMIC_RELAXED);
	__atomic_store_n(&mig_wait_ms, wait_ms, __ATOMIC_RELAXED);
}

static int migrate(struct vg_db *db, const struct vg_db_schema *sch, uint32_t lock_ms,
		   char *err, size_t errlen)
{
	int64_t cur = 0, want = sch->steps[sch->nsteps - 1].version;
	struct vg_db_stmt *st;
	char sql[64];
	int rc, fresh;

	if (db->drv->migrate_lock_sql && (rc = vg_db_exec(db, db->drv->migrate_lock_sql)))
		return rc;
	/* after the advisory lock: a collector waiting for another's
	 * migration (a long step) waits as before; only the steps' table
	 * and row locks, where everyone else's writes queue behind the
	 * waiting migration, are bounded */
	if (db->drv->migrate_timeout_fmt) {
		snprintf(sql, sizeof(sql), db->drv->migrate_timeout_fmt, (unsigned)lock_ms);
		if ((rc = vg_db_exec(db, sql)))
			return rc;
	}
	if ((rc = vg_db_schema_version(db, sch->component, &cur)))
		return rc;
	fresh = cur == 0;
	if (fresh && sch->adopt_user_version && db->drv->user_version_sql &&
	    (rc = user_version(db, &cur)))
		return rc;
	if (cur > want) {
		if (errlen)
			snprintf(err, errlen, "%s: %s schema version %lld is newer than this program's %lld",
				 db->name, sch->component, (long long)cur, (long long)want);
		return vg_db__err(db, -EPROTONOSUPPORT, "schema version %lld is newer than %lld",
				  (long long)cur, (long long)want);
	}
	if (cur == want && !fresh)
		return 0;
	for (size_t i = 0; i < sch->nsteps; i++) {
		const struct vg_db_step *s = &sch->steps[i];
		const char *text = db->drv->engine == VG_DB_POSTGRESQL ? s->sql_pg : s->sql_sqlite;

		if (s->version <= cur)
			continue;
		if (!text)
			text = s->sql;
		if (text && (rc = vg_db_exec(db, text)))
			return rc;
		if (s->fn && (rc = s->fn(db, sch->arg)))
			return rc;
	}
	rc = vg_db_prepare(db, "INSERT INTO vg_schema(component, version) VALUES(?1, ?2) "
			       "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
			   &st);
	if (rc)
		return rc;
	vg_db_bind_text(st, 1, sch->component);
	vg_db_bind_int64(st, 2, want);
	rc = vg_db_step(st);
	vg_db_reset(st);
	if (rc < 0)
		return rc;
	if (sch->adopt_user_version && db->drv->user_version_sql) {
		snprintf(sql, sizeof(sql), "%s = %lld", db->drv->user_version_sql, (long long)want);
		if ((rc = vg_db_exec(db, sql)))
			return rc;
	}
	return 0;
}

/* After a try that timed out on a lock: the sessions whose transactions
 * are at least lock_ms old and hold locks on the connection's tables
 * (driver's lock_holders_sql), as "TABLE (MODE) held by pid N
 * \"APP\" in a transaction since T (STATE); ..." in buf, and the first
 * one's pid in *pid (0: none found). */
static void lock_holders(struct vg_db *db, uint32_t lock_ms, char *buf, size_t len, int64_t *pid)
{
	struct vg_db_stmt *st;
	size_t off = 0;

	buf[0] = '\0';
	*pid = 0;
	if (vg_db_prepare(db, db->drv->lock_holders_sql, &st))
		return;
	vg_db_bind_int64(st, 1, lock_ms);
	while (vg_db_step(st) == 1 && off < len) {
		int n = snprintf(buf + off, len - off,
				 "%s%s (%s) held by pid %lld \"%s\" in a transaction since %s (%s)",
				 off ? "; " : "", vg_db_column_text(st, 0), vg_db_column_text(st, 1),
				 (long long)vg_db_column_int64(st, 2), vg_db_column_text(st, 3),
				 vg_db_column_text(st, 4), vg_db_column_text(st, 5));
		if (!*pid)
			*pid = vg_db_column_int64(st, 2);
		off = n < 0 ? len : off + (size_t)n;
	}
	vg_db_reset(st);
}

/* One try: BEGIN, the steps, COMMIT; rolled back on failure with the
 * failure's message kept. */
static int migrate_once(struct vg_db *db, const struct vg_db_schema *sch, uint32_t lock_ms,
			char *err, size_t errlen)
{
	int rc;

	if ((rc = vg_db_begin(db)))
		return rc;
	if ((rc = migrate(db, sch, lock_ms, err, errlen))) {
		char keep[sizeof(db->errmsg)];
		memcpy(keep, db->errmsg, sizeof(keep));
		vg_db_rollback(db);
		memcpy(db->errmsg, keep, sizeof(keep));
		return rc;
	}
	if ((rc = vg_db_commit(db)))
		vg_db_rollback(db);
	return rc;
}

int vg_db_migrate(struct vg_db *db, const struct vg_db_schema *sch, char *err, size_t errlen)
{
	uint32_t lock_ms = __atomic_load_n(&mig_lock_timeout_ms, __ATOMIC_RELAXED);
	uint32_t wait_ms = __atomic_load_n(&mig_wait_ms, __ATOMIC_RELAXED);
	int64_t t0 = vg_monotonic_ms(), pause_ms = lock_ms, pid = 0;
	char holders[768];
	int rc, tries = 0;

	if (errlen)
		err[0] = '\0';
	if (!sch->component || !sch->nsteps)
		return vg_db__err(db, -EINVAL, "schema without component or steps");
	for (size_t i = 0; i < sch->nsteps; i++)
		if (sch->steps[i].version <= (i ? sch->steps[i - 1].version : 0))
			return vg_db__err(db, -EINVAL, "%s: migration steps must be numbered 1.. increasing",
					  sch->component);
	/* a lock held past lock_timeout (55P03): roll back, let the writes
	 * queued behind this migration through, and try again */
	while ((rc = migrate_once(db, sch, lock_ms, err, errlen)) == -ETIMEDOUT &&
	       db->drv->lock_holders_sql) {
		int64_t waited = vg_monotonic_ms() - t0;
		char keep[sizeof(db->errmsg)], end[32] = "pid";

		tries++;
		memcpy(keep, db->errmsg, sizeof(keep));
		lock_holders(db, lock_ms, holders, sizeof(holders), &pid);
		memcpy(db->errmsg, keep, sizeof(keep));
		if (!holders[0])
			snprintf(holders, sizeof(holders), "no session holds a lock on its "
							   "tables that long now");
		if (pid)
			snprintf(end, sizeof(end), "%lld", (long long)pid);
		if (waited >= (int64_t)wait_ms) {
			if (errlen)
				snprintf(err, errlen,
					 "%s: migrating %s: gave up after %.1f s and %d tries, each "
					 "waiting %u ms for a lock (lock_timeout): %s; a session stopped "
					 "inside a transaction (a stopped collector) keeps its locks until "
					 "it resumes or ends: SELECT pg_terminate_backend(%s) ends it "
					 "(its transaction is rolled back), then start again",
					 db->name, sch->component, waited / 1000.0, tries,
					 lock_ms, holders, end);
			return rc;
		}
		if (tries == 1)
			vg_log(VG_LOG_WARN,
			       "%s: migrating %s: a lock was not granted within %u ms "
			       "(lock_timeout; %s): %s; rolled back so that the writes queued "
			       "behind it go on, tried again for up to %g s in all; SELECT "
			       "pg_terminate_backend(%s) ends a stopped session",
			       db->name, sch->component, lock_ms, db->errmsg, holders,
			       wait_ms / 1000.0, end);
		if (pause_ms > (int64_t)wait_ms - waited)
			pause_ms = (int64_t)wait_ms - waited;
		vg_sleep_ms(pause_ms);
		pause_ms = pause_ms * 2 > MIG_PAUSE_MAX_MS ? MIG_PAUSE_MAX_MS : pause_ms * 2;
		if (errlen)
			err[0] = '\0';
	}
	if (!rc && tries)
		vg_log(VG_LOG_INFO, "%s: migrating %s: done at try %d, after %d that waited for a lock",
		       db->name, sch->component, tries + 1, tries);
	if (rc && errlen && !err[0])
		snprintf(err, errlen, "%s: migrating %s: %s", db->name, sch->component, db->errmsg);
	return rc;
}

/* ---- array literals (PostgreSQL's unnest statements) ------------------------- */

/* Append n bytes of t to a (with room for "}" and the NUL after). */
static int array_put(struct vg_db_array *a, const char *t, size_t n)
{
	if (a->len + n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap : 256;
		char *p;
		while (a->len + n + 2 > cap)
			cap *= 2;
		if (!(p = realloc(a->p, cap)))
			return -ENOMEM;
		a->p = p;
		a->cap = cap;
	}
	memcpy(a->p + a->len, t, n);
	a->len += n;
	return 0;
}

/* The next element: "{" or ",", then t. */
static int array_elem(struct vg_db_array *a, const char *t, size_t n)
{
	int rc = array_put(a, a->len ? "," : "{", 1);

	return rc ? rc : array_put(a, t, n);
}

int vg_db_array_text(struct vg_db_array *a, const char *v)
{
	int rc;

	if (!v)
		return array_elem(a, "NULL", 4);
	rc = array_elem(a, "\"", 1);
	for (const char *q = v; *q && !rc;) {
		size_t n = strcspn(q, "\"\\");
		if (n) {
			rc = array_put(a, q, n);
			q += n;
		} else {
			char e[2] = {'\\', *q++};
			rc = array_put(a, e, 2);
		}
	}
	return rc ? rc : array_put(a, "\"", 1);
}

int vg_db_array_int(struct vg_db_array *a, int64_t v)
{
	char t[24];

	return array_elem(a, t, (size_t)snprintf(t, sizeof(t), "%lld", (long long)v));
}

int vg_db_array_double(struct vg_db_array *a, double v)
{
	char t[32];

	if (!isfinite(v))
		return array_elem(a, "NULL", 4);
	return array_elem(a, t, (size_t)snprintf(t, sizeof(t), "%.17g", v));
}

int vg_db_array_null(struct vg_db_array *a)
{
	return array_elem(a, "NULL", 4);
}

const char *vg_db_array_end(struct vg_db_array *a)
{
	if (!a->len && array_put(a, "{", 1))
		return NULL;
	if (array_put(a, "}", 1))
		return NULL;
	a->p[a->len] = '\0';
	return a->p;
}

void vg_db_array_clear(struct vg_db_array *a)
{
	a->len = 0;
}

void vg_db_array_free(struct vg_db_array *a)
{
	free(a->p);
	a->p = NULL;
	a->len = a->cap = 0;
}
