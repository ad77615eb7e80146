/*
 * vigie — the state database: one thin layer, two engines (common/db.c,
 * common/db_sqlite.c, common/db_pg.c).
 *
 * What the collector keeps between restarts (registry, tokens, alarms,
 * billing) goes through this layer, so the same code runs on an embedded
 * sqlite file (the default: nothing to install, `make demo` needs no
 * server) or on a PostgreSQL server shared by several collectors (issue
 * 15). The layer carries SQL, it does not write it: callers write SQL that
 * both engines accept (see "Portable SQL" below) and never ask which
 * engine they have, except in schema migrations (vg_db_engine).
 *
 * URL (vg_db_open):
 *   sqlite:/path/file.db[?synchronous=normal|full][&busy_timeout_ms=N]
 *   /path/file.db  or  relative/file.db         (a plain path: sqlite)
 *   postgresql://user@host:port/dbname?...      (libpq URI, also postgres://)
 *   host=db1,db2 port=5432 dbname=vigie target_session_attrs=read-write
 *                                               (libpq key=value conninfo)
 * A string that starts with postgresql:// or postgres://, or that holds
 * an '=' and no '/' before it, is PostgreSQL; anything else is a sqlite
 * path (prefix a path that contains '=' with "sqlite:"). sqlite files are
 * opened in WAL mode with synchronous=FULL (an acknowledged write survives
 * a power cut; "normal" trades that for speed) and a busy timeout of
 * 5000 ms. PostgreSQL connections get application_name=vigie,
 * client_encoding=UTF8 and connect_timeout=10 unless the URL says
 * otherwise; libpq's multi-host strings and target_session_attrs work
 * as libpq documents them (each reconnect tries the hosts again).
 *
 * Parameters are written ONE way: ?1, ?2, ... ?N (sqlite's numbered form;
 * a number may repeat and appear in any order). The PostgreSQL driver
 * rewrites them to $1..$N outside string literals, quoted identifiers and
 * comments. A bare '?' and PostgreSQL's own $N are refused (-EINVAL) on
 * both engines, so SQL that works on one works on the other.
 *
 * Values: int64, double, text (UTF-8, NUL-terminated), blob (bytes), NULL.
 * Getters convert like sqlite does (an int64 getter on a text column
 * parses it). Doubles: NaN is bound as NULL on both engines (sqlite turns
 * NaN into NULL by itself; PostgreSQL would keep it, so we do the same
 * thing everywhere), +-Infinity round-trip on both. Integers are exact
 * over the whole int64 range on both (PostgreSQL column type BIGINT).
 * Booleans are integers 0/1 in vigie's SQL; a PostgreSQL boolean read
 * through vg_db_column_int64 gives 0/1 too.
 *
 * Errors: every function returns 0 (or a documented positive value) or a
 * negative errno, and keeps the engine's message for vg_db_errmsg:
 *   -EBUSY        locked or busy (sqlite BUSY/LOCKED after the busy
 *                 timeout; PostgreSQL serialization failure 40001,
 *                 deadlock 40P01, foreign key violation 23503: the
 *                 referenced row was deleted by a transaction that
 *                 committed meanwhile): retry the whole transaction
 *                 (vg_db_transact does)
 *   -ETIMEDOUT    PostgreSQL lock not available 55P03: a lock wait
 *                 passed the session's lock_timeout (or a NOWAIT lock
 *                 was held); or query canceled 57014: the statement ran
 *                 past statement_timeout (or an operator cancelled it:
 *                 pg_cancel_backend). Not retried by vg_db_transact: the holder
 *                 has held it that long, and waiting again would wait
 *                 as long again; the caller decides (the billing meter
 *                 answers the batch RETRY: billing/meter.c)
 *   -EEXIST       unique or primary key violation
 *   -EINVAL       another constraint (NOT NULL, CHECK), a
 *                 misuse of this API, or SQL with a bare '?'
 *   -ECONNRESET   the PostgreSQL connection was lost during this call; the
 *                 call's effect is unknown if it was a COMMIT, else it did
 *                 not happen (an open transaction is gone)
 *   -ENOTCONN     the connection is down and reconnecting failed now
 *   -EROFS        PostgreSQL is read-only (a standby after failover)
 *   -ENOSPC       disk full; -ENOMEM out of memory; -ENOENT cannot open
 *   -EPROTONOSUPPORT  the database's schema is newer than this program's
 *   -EIO          anything else (syntax error, I/O error, ...)
 *
 * Reconnect (PostgreSQL): a call that loses the connection fails with
 * -ECONNRESET and marks it lost; the NEXT call on that handle reconnects
 * first (same conninfo, so multi-host failover applies), re-prepares
 * cached statements lazily, and goes on, or fails with -ENOTCONN if the
 * server is still away (and tries again at the call after). So a
 * restarted server costs exactly one failed call per connection, and the
 * caller decides whether that call is retried (vg_db_transact retries a
 * transaction lost before its COMMIT was sent; vg_db_retry_lost runs
 * work outside a transaction once more).
 *
 * Transactions: vg_db_begin is BEGIN IMMEDIATE on sqlite (the write lock
 * at once, so two writers queue on the busy timeout instead of failing
 * at their first write) and BEGIN (READ COMMITTED) on PostgreSQL (sent
 * with the transaction's first statement: vg_db_step_queued), where
 * writers serialise on row locks: write read-modify-write as one UPDATE
 * or upsert, or lock rows with SELECT ... FOR UPDATE [SKIP LOCKED]
 * (PostgreSQL only: choose it in engine-specific code paths such as a
 * work-queue claim). After any error inside a transaction roll it back:
 * PostgreSQL refuses every statement until then, sqlite does not.
 *
 * Schema migrations: a component (registry, alarms, billing, ...) gives a
 * list of numbered steps; vg_db_migrate applies those newer than the
 * database's version in one transaction and records the new version in
 * the table vg_schema(component TEXT PRIMARY KEY, version BIGINT) — on
 * both engines, so several components can share one PostgreSQL database
 * (or one sqlite file). A database newer than the list is refused with
 * -EPROTONOSUPPORT and left as it was. On PostgreSQL a transaction-scoped
 * advisory lock serialises collectors that migrate at the same moment; on
 * sqlite BEGIN IMMEDIATE does.
 * Lock waits (PostgreSQL): after the advisory lock, the migration's
 * transaction waits at most a lock_timeout for each table or row lock
 * (vg_db_set_migrate_wait), so that a session holding a lock the
 * migration needs (a collector stopped inside a transaction) does not
 * hold it up forever, nor everyone else's writes that would queue behind
 * its waiting step. On that timeout (SQLSTATE 55P03) the migration rolls
 * back, logs once (warn) the sessions of older transactions holding
 * locks on the component's tables (table, mode, pid, application_name,
 * transaction start), pauses (lock_timeout, doubling up to 30 s) and
 * tries again, for at most the migration's wait in all; then it fails
 * with -ETIMEDOUT and err names those sessions and pg_terminate_backend.
 * Today's sqlite files (PRAGMA user_version = N, no vg_schema): a port
 * keeps its current schema text as steps 1..N in the same numbering and
 * sets adopt_user_version; when vg_schema has no row for the component,
 * the file's user_version is taken as its version (a new file has 0), so
 * an existing registry.db at version N runs only steps N+1.. . With
 * adopt_user_version, sqlite's user_version is also kept equal to the
 * version, so a vigie from before the port still refuses a newer file.
 *
 * Portable SQL (both sqlite >= 3.24 and PostgreSQL 15 accept it):
 *  - types: BIGINT, DOUBLE PRECISION, TEXT, and blobs as BLOB (sqlite) /
 *    BYTEA (PostgreSQL) — DDL that differs goes in a step's sql_pg;
 *    auto-numbered keys: INTEGER PRIMARY KEY (sqlite) vs BIGINT GENERATED
 *    BY DEFAULT AS IDENTITY PRIMARY KEY (PostgreSQL).
 *  - upsert: INSERT ... ON CONFLICT (cols) DO UPDATE SET c = excluded.c;
 *    qualify the old row's columns with the table name in the SET
 *    expressions (t.n + 1): PostgreSQL finds a bare name ambiguous.
 *  - max(a, b)/min(a, b) of two values are sqlite-only (PostgreSQL:
 *    GREATEST/LEAST): write CASE WHEN a > b THEN a ELSE b END.
 *  - a parameter whose type PostgreSQL cannot infer from its context
 *    (SELECT ?1, ?1 IS NULL, CASE WHEN ?1 ...) needs CAST(?1 AS BIGINT).
 *  - RETURNING works on both; in sqlite 3.40.1 (Debian 12) a RETURNING
 *    expression "col IS NOT NULL" gives 1 for a NULL: return the column
 *    and test vg_db_column_is_null (collector/registry.c does).
 *
 * Statements: vg_db_prepare returns a statement from the connection's
 * cache (keyed by the SQL text; prepared on the server once per
 * connection), reset and with every parameter NULL. It is owned by the
 * connection and lives until vg_db_close; callers never free it. Up to
 * VG_DB_MAX_STMTS distinct SQL texts per connection (more: -ENOSPC):
 * prepared statements are for a program's fixed set of SQL; run one-off
 * SQL with vg_db_exec. One statement is one cursor: preparing the same
 * SQL again resets it. A PostgreSQL result is read whole by the first
 * vg_db_step (no streaming): select what fits in memory, page with LIMIT.
 *
 * Thread-safety: none inside a connection. One struct vg_db per thread
 * (or a caller's lock around it); connections in different threads or
 * processes are independent and the engines arbitrate between them.
 */
#ifndef VIGIE_DB_H
#define VIGIE_DB_H

#include <stddef.h>
#include <stdint.h>

enum vg_db_engine { VG_DB_SQLITE = 1,
		    VG_DB_POSTGRESQL = 2 };

#define VG_DB_MAX_STMTS 256
/* vg_db_step_queued: statements (with their server-side prepares) that
 * wait at most before the connection waits for them. */
#define VG_DB_MAX_QUEUED 64
/* vg_db_transact: attempts before it gives up with the last error. */
#define VG_DB_TRIES 8

struct vg_db;
struct vg_db_stmt;

/* One migration step. sql runs on both engines unless the engine's own
 * text is given (sql_sqlite / sql_pg non-NULL replaces sql there); any of
 * them may hold several statements. fn, if set, runs after the SQL in the
 * same transaction (for steps that move data with code); it returns 0 or a
 * negative errno that aborts the migration. */
struct vg_db_step {
	int version; /* > 0, strictly increasing along the list */
	const char *sql;
	const char *sql_sqlite;
	const char *sql_pg;
	int (*fn)(struct vg_db *db, void *arg);
};

struct vg_db_schema {
	const char *component; /* vg_schema key: "registry", ... */
	const struct vg_db_step *steps;
	size_t nsteps;          /* the schema's version: the last step's */
	int adopt_user_version; /* sqlite: see "Today's sqlite files" */
	void *arg;              /* passed to every step's fn */
	/* PostgreSQL only: the component's own schema (namespace), created if
	 * missing and made the connection's search_path (also across
	 * reconnects), so components that share one database never share a
	 * table name (registry and billing both have "resources"). NULL: the
	 * server's default search_path. A plain identifier. */
	const char *pg_schema;
};

/* Open a connection to URL (see above) and, if sch is not NULL, migrate
 * it (vg_db_migrate). On success *out is the connection; close it with
 * vg_db_close. On failure *out is NULL, err (if errlen > 0) holds one
 * line naming the database (never a password: PostgreSQL is named by
 * host/port/dbname), and the return is a code listed above (-ENOTCONN:
 * server unreachable). Thread-safe. */
int vg_db_open(const char *url, const struct vg_db_schema *sch, struct vg_db **out,
	       char *err, size_t errlen);

/* Finalize the cached statements and close. Accepts NULL. An open
 * transaction is rolled back (by the engine). */
void vg_db_close(struct vg_db *db);

enum vg_db_engine vg_db_engine(const struct vg_db *db);

/* Bring the database to the schema's version (see "Schema migrations");
 * 0 when done or nothing to do. Must not be called inside a transaction.
 * On error nothing changed, and err names the component. */
int vg_db_migrate(struct vg_db *db, const struct vg_db_schema *sch, char *err, size_t errlen);

/* How migrations on PostgreSQL wait for locks (see "Schema migrations"):
 * lock_timeout_ms per lock wait (1 ms..1 h; 0 keeps the current value)
 * and wait_ms in all, over the tries, before vg_db_migrate gives up (0:
 * no second try). Process-wide, for connections migrated after the call;
 * thread-safe. Defaults: VG_DB_MIGRATE_LOCK_TIMEOUT_MS and
 * VG_DB_MIGRATE_WAIT_MS ([state] migrate_lock_timeout_ms and
 * migrate_wait, docs/operations.md). */
#define VG_DB_MIGRATE_LOCK_TIMEOUT_MS 2000u
#define VG_DB_MIGRATE_WAIT_MS 300000u
void vg_db_set_migrate_wait(uint32_t lock_timeout_ms, uint32_t wait_ms);

/* The database's recorded version for component (0: none); for tests and
 * /v1/health. */
int vg_db_schema_version(struct vg_db *db, const char *component, int64_t *version);

/* Run SQL without parameters or results (DDL, several statements allowed,
 * separated by ';'). */
int vg_db_exec(struct vg_db *db, const char *sql);

/* PostgreSQL: run sql (SET statements, several allowed) on this
 * connection now and again after each reconnect, so that its settings
 * hold for the connection's whole life; a second call replaces the
 * first's text for later reconnects (settings already made stay). For
 * the settings of a connection that runs one kind of work: the meter's
 * planner settings (billing/meter.c, "Keyed plans"). sqlite: does
 * nothing, returns 0. Not inside a transaction (-EINVAL). sql refused
 * by the server: its error, as vg_db_exec's, and the previous text stays
 * the one made at reconnects; lost connection (-ECONNRESET, -ENOTCONN):
 * the text is made at the reconnect. A reconnect whose settings fail
 * fails the call that reconnected (-ENOTCONN; the next call tries
 * again). The text is copied. */
int vg_db_set_session(struct vg_db *db, const char *sql);

/* A cached statement for sql (see "Statements"). *out is NULL on error. */
int vg_db_prepare(struct vg_db *db, const char *sql, struct vg_db_stmt **out);

/* Bind parameter ?i (1-based, up to the highest ?N in the SQL: else
 * -EINVAL). Values are copied. Text is NUL-terminated UTF-8; a NULL text
 * or blob pointer binds NULL (a blob of length 0 with a non-NULL pointer
 * is an empty blob). */
int vg_db_bind_int64(struct vg_db_stmt *st, int i, int64_t v);
int vg_db_bind_double(struct vg_db_stmt *st, int i, double v);
int vg_db_bind_text(struct vg_db_stmt *st, int i, const char *v);
int vg_db_bind_blob(struct vg_db_stmt *st, int i, const void *v, size_t len);
int vg_db_bind_null(struct vg_db_stmt *st, int i);

/* A PostgreSQL array literal ("{e1,e2,...}") built one element at a time,
 * for statements that take one array parameter per column and unnest them
 * (one statement, one plan, whatever the rows: collector/registry.c's
 * flush, billing/meter.c's bulk update). Zero-initialise; the memory is
 * kept between uses (vg_db_array_clear) until vg_db_array_free. Text is
 * always quoted (so "" and "NULL" stay text) with '"' and '\' escaped, a
 * NULL pointer is NULL; a double is written exactly (%.17g) and a
 * non-finite one as NULL (as the sqlite statements bind it). Each append
 * returns 0 or -ENOMEM. vg_db_array_end closes the literal ("{}" without
 * elements) and returns it NUL-terminated, NULL without memory. */
struct vg_db_array {
	char *p;
	size_t len, cap;
};
int vg_db_array_text(struct vg_db_array *a, const char *v);
int vg_db_array_int(struct vg_db_array *a, int64_t v);
int vg_db_array_double(struct vg_db_array *a, double v);
int vg_db_array_null(struct vg_db_array *a);
const char *vg_db_array_end(struct vg_db_array *a);
void vg_db_array_clear(struct vg_db_array *a);
void vg_db_array_free(struct vg_db_array *a);

/* Run the statement, or move to its next row: 1 a row is there, 0 done,
 * <0 error (the statement is reset). Bindings stay until the next
 * vg_db_prepare of this SQL; calling step after 0 runs it again. */
int vg_db_step(struct vg_db_stmt *st);

/* Done with the rows (frees a PostgreSQL result, ends sqlite's read of the
 * statement). Bindings are kept. Accepts NULL. */
void vg_db_reset(struct vg_db_stmt *st);

/* Run the statement for its effect, its rows (if any) unread, without
 * waiting for the server when the engine allows it: 0 or <0 like a
 * vg_db_step followed by vg_db_reset. sqlite runs it now. PostgreSQL
 * sends it in libpq's pipeline mode and returns 0; the statements queued
 * this way run on the server in the order they were sent, and their
 * outcome comes back with the next call on the connection that waits for
 * the server (vg_db_step of any statement, vg_db_commit, vg_db_exec,
 * vg_db_sync), which sends its own statement in the same round trip: that
 * call returns the first queued statement's error, if any, instead of its
 * own result (its statement did not run). So a transaction's writes and
 * its COMMIT cost one wait, and a lock taken before a read, the read.
 * vg_db_begin is queued the same way on PostgreSQL. At most
 * VG_DB_MAX_QUEUED statements wait (more: the connection waits for them
 * first). vg_db_changes counts a queued statement once it was waited for.
 * Bindings may change as soon as it returns (they were copied). */
int vg_db_step_queued(struct vg_db_stmt *st);

/* Like vg_db_step_queued, for a query whose rows the caller reads later:
 * the next vg_db_step of st waits for the queue if it has not been waited
 * for yet and returns st's first row (1), or 0 (no row), or the first
 * queued statement's error. sqlite runs it now (to its first row, which
 * that vg_db_step returns). A vg_db_reset or vg_db_prepare of st, or a
 * rollback, drops its rows. PostgreSQL keeps the whole result, as
 * vg_db_step does. 0 or <0 like vg_db_step_queued. */
int vg_db_query_queued(struct vg_db_stmt *st);

/* Send what vg_db_step_queued / vg_db_query_queued / vg_db_begin queued
 * to the server now, without waiting for any result, so the server works
 * while the caller does something else (PostgreSQL: the commands run as
 * they arrive; their results wait for the next call that waits). 0 or
 * -ECONNRESET; 0 at once when nothing is queued (always on sqlite). */
int vg_db_flush(struct vg_db *db);

/* Wait for the statements queued by vg_db_step_queued (and a queued
 * BEGIN or COMMIT): 0, or the first one's error (the ones after it did
 * not run). 0 at once when nothing waits (always on sqlite). */
int vg_db_sync(struct vg_db *db);

/* Rows changed by the last INSERT/UPDATE/DELETE that ran to completion on
 * this connection. */
int64_t vg_db_changes(struct vg_db *db);

/* Column i (0-based) of the current row. NULL gives 0, 0.0 and a NULL
 * pointer. Pointers stay valid until the next step/reset/prepare of this
 * statement. vg_db_column_blob's *len is its size (0 for NULL). */
int vg_db_column_count(struct vg_db_stmt *st);
int vg_db_column_is_null(struct vg_db_stmt *st, int i);
int64_t vg_db_column_int64(struct vg_db_stmt *st, int i);
double vg_db_column_double(struct vg_db_stmt *st, int i);
const char *vg_db_column_text(struct vg_db_stmt *st, int i);
const void *vg_db_column_blob(struct vg_db_stmt *st, int i, size_t *len);

/* Transactions (see above). begin inside a transaction, or commit /
 * rollback outside one: -EINVAL. rollback after a lost connection is 0. */
int vg_db_begin(struct vg_db *db);
int vg_db_commit(struct vg_db *db);
/* COMMIT without waiting where the engine allows: PostgreSQL queues it
 * behind the transaction's queued statements, sends them all
 * (vg_db_flush) and returns 0; the outcome comes from the next vg_db_sync
 * (or any call that waits), which ends the transaction on success. sqlite
 * commits now and returns what vg_db_commit would. Either way a failure
 * leaves the transaction to roll back, as vg_db_commit's does. */
int vg_db_commit_queued(struct vg_db *db);
int vg_db_rollback(struct vg_db *db);
int vg_db_in_transaction(const struct vg_db *db);

/* Run fn(db, arg) inside a transaction and commit; on -EBUSY (from fn,
 * BEGIN or COMMIT), or -ECONNRESET/-ENOTCONN before COMMIT was sent (the
 * statements fn queued last travel with the COMMIT: a connection lost
 * there is lost at COMMIT, reported and not retried), roll
 * back, wait a little (1, 2, 4... ms, jittered, at most 100 ms) and run it
 * again, at most VG_DB_TRIES times. Any other error from fn rolls back and
 * is returned as is. fn must therefore be safe to run again (it sees the
 * database as it is, not as the failed attempt left it), and must not
 * begin/commit itself. No savepoints are used. */
int vg_db_transact(struct vg_db *db, int (*fn)(struct vg_db *db, void *arg), void *arg);

/* Run fn(db, arg) and, if it lost the connection (-ECONNRESET) while no
 * transaction was open, run it once more: a server's restart costs each
 * connection its first call (see "Reconnect"), and the second run's first
 * call reconnects. -ENOTCONN (the server is still away) and every other
 * error are returned at once; inside a transaction fn runs once (the loss
 * ended the transaction: whoever opened it runs it again whole, as
 * vg_db_transact does). For work that may run twice: reads (PostgreSQL
 * reads a result whole at the step that runs its statement, so a loss
 * there comes before any of its rows was handed out) and writes whose
 * second run changes nothing more, such as an UPDATE setting a value (a
 * write lost with its answer may have been done). Returns fn's last
 * result. */
int vg_db_retry_lost(struct vg_db *db, int (*fn)(struct vg_db *db, void *arg), void *arg);

/* The last error's message (engine text, one line), "" if none. Owned by
 * db, valid until the next call on db. */
const char *vg_db_errmsg(const struct vg_db *db);

/* ---- Driver interface (common/db_*.c only; callers never use it) ----
 *
 * Like sqlite's VFS: db.c holds what both engines share (URL dispatch,
 * the statement cache, parameter scanning, transactions state, the retry
 * helper, migrations) and calls one table of operations per engine.
 * Drivers return 0 or a normalised negative errno and leave their message
 * in db->errmsg (vg_db__err). A driver returns -ECONNRESET only when its
 * connection is gone; db.c then calls xreconnect before the next call. */
struct vg_db_value {
	enum { VG_DB_NULL,
	       VG_DB_INT,
	       VG_DB_REAL,
	       VG_DB_TEXT,
	       VG_DB_BLOB } type;
	int64_t i;
	double d;
	const void *p; /* TEXT: NUL-terminated; BLOB: len bytes */
	size_t len;
};

struct vg_db_driver {
	enum vg_db_engine engine;
	const char *name;
	const char *begin_sql;        /* "BEGIN IMMEDIATE" / "BEGIN" */
	const char *migrate_lock_sql; /* run after begin_sql in migrations, or NULL */
	/* migrations, after migrate_lock_sql: a printf format of the SQL that
	 * bounds each lock wait of the transaction (its %u: milliseconds),
	 * and a query of the sessions holding locks on the connection's
	 * tables in transactions at least ?1 ms old (columns: table, mode,
	 * pid, application_name, transaction start, state), or NULL */
	const char *migrate_timeout_fmt;
	const char *lock_holders_sql;
	const char *user_version_sql; /* sqlite: "PRAGMA user_version", else NULL */
	size_t stmt_size;             /* sizeof the driver's statement */
	int (*xopen)(struct vg_db *db, const char *target);
	void (*xclose)(struct vg_db *db);
	int (*xreconnect)(struct vg_db *db); /* NULL: never loses its connection */
	int (*xexec)(struct vg_db *db, const char *sql);
	/* st->sql (our syntax), st->nparams are set; prepare may be lazy */
	int (*xprepare)(struct vg_db *db, struct vg_db_stmt *st);
	void (*xfinalize)(struct vg_db_stmt *st);
	int (*xbind)(struct vg_db_stmt *st, int i, const struct vg_db_value *v);
	int (*xstep)(struct vg_db_stmt *st); /* 1 row, 0 done, <0 */
	void (*xreset)(struct vg_db_stmt *st);
	void (*xclear)(struct vg_db_stmt *st); /* every parameter NULL */
	int (*xcolumn_count)(struct vg_db_stmt *st);
	void (*xcolumn)(struct vg_db_stmt *st, int i, struct vg_db_value *out);
	int64_t (*xchanges)(struct vg_db *db);
	/* NULL: the engine runs every statement at once (db.c steps and
	 * resets it). Else send st (or parameterless sql) without waiting,
	 * and xsync waits for what was sent (vg_db_step_queued); keep: st's
	 * rows are kept for its next xstep (vg_db_query_queued) */
	int (*xqueue)(struct vg_db_stmt *st, int keep);
	int (*xqueue_exec)(struct vg_db *db, const char *sql);
	int (*xsync)(struct vg_db *db);
	int (*xflush)(struct vg_db *db); /* NULL with xqueue */
	/* COMMIT: wait = 1 run it now (with the queue, if any); 0 queue it
	 * and flush, its outcome at the next xsync. NULL: xexec "COMMIT". */
	int (*xcommit)(struct vg_db *db, int wait);
};

/* The generic part of every statement; a driver's statement starts with it. */
struct vg_db_stmt {
	struct vg_db *db;
	char *sql;
	int nparams; /* highest ?N */
	int early;   /* engines without xqueue: vg_db_query_queued's first
		      * xstep result + 1, for the next vg_db_step (0: none) */
};

struct vg_db {
	const struct vg_db_driver *drv;
	void *impl;            /* the driver's connection */
	char *name;            /* for messages: path or host:port/dbname */
	const char *pg_schema; /* vg_db_schema.pg_schema, for the driver's open */
	char *session;         /* vg_db_set_session's SQL, run at each reconnect */
	int in_txn;
	int commit_sent;     /* vg_db_commit_queued: the next wait ends in_txn */
	int lost;            /* connection lost: reconnect before the next call */
	unsigned generation; /* bumped at each reconnect: statements re-prepare */
	struct vg_db_stmt *stmts[VG_DB_MAX_STMTS];
	size_t nstmts;
	char errmsg[512];
};

extern const struct vg_db_driver vg_db_sqlite_driver;
extern const struct vg_db_driver vg_db_pg_driver;

/* Set db->errmsg (printf-style) and return code. */
int vg_db__err(struct vg_db *db, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Scan sql for ?N parameters outside literals, identifiers and comments.
 * Returns the highest N (0: none), or -EINVAL for a bare '?', ?0 or $N. If
 * out is not NULL it receives sql with each ?N written $N (PostgreSQL);
 * out must hold strlen(sql) + 1 bytes (the text never grows). */
int vg_db__scan_params(const char *sql, char *out);

#endif
