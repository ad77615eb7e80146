/*
 * store.c — the alarm store: definitions, states, history and the
 * notification outbox (vigie/alarm_store.h), behind vigie/db.h, so the
 * same code and SQL run on <data_dir>/alarms.db (sqlite, the default) or
 * on a PostgreSQL database shared by several collectors ([state] url).
 *
 * Design: one connection per thread, statements cached by the layer; the
 * schema version lives in vg_schema (component "alarms"; an existing
 * alarms.db at PRAGMA user_version 1 is adopted as version 1, then step 2
 * adds the outbox's claim columns, step 3 the tables of grouped
 * notifications waiting for their flush (alarms/group.c), step 4 the feed
 * of notifications between cluster nodes (alarms/engine_own.c), step 5
 * the cooldown's clock in states and the members and open periods of
 * group alarms (alarms/engine_gstate.c), step 6 the step log and the
 * number that ties its entries to a state row (alarms/engine_queue.c)). sqlite
 * runs WAL with synchronous=FULL:
 * alarm writes are rare (transitions, definition changes, one state row
 * per evaluated period per instance that is not quiet, batched per agent
 * batch), so the
 * fsync per commit is cheap and buys the outbox's durability across power
 * loss as well as kill -9. PostgreSQL gives the same with its defaults.
 *
 * The outbox with several workers. On sqlite one collector owns the file
 * and its delivery thread is the only reader: due rows are read as they
 * always were. On PostgreSQL every collector runs a delivery thread over
 * the one shared outbox, so a due row is CLAIMED before it is handed out:
 *   UPDATE outbox SET claimed_by = me, claim_until = now + lease
 *   WHERE id IN (SELECT id ... due, unclaimed or claimed by me or lease
 *                expired ... FOR UPDATE SKIP LOCKED) RETURNING ...
 * SKIP LOCKED lets two workers claim at the same moment without waiting
 * for each other or taking the same row: the second skips what the first
 * is claiming. Each read renews the lease on every pending row this
 * worker holds (its thread reads at least once a second on PostgreSQL:
 * next_due_ms is capped so, which also picks up rows that other
 * collectors' engines inserted and rows whose worker died), so a live
 * worker keeps its rows however long they queue behind a slow receiver;
 * the rows of a worker that died become claimable VG_ALARM_OUTBOX_LEASE_MS
 * after its last read. A retry gives the row back (claim_until = 0): the
 * next attempt may be any worker's.
 *
 * Invariants:
 *  - (project, name) is unique among definitions (UNIQUE index);
 *  - an outbox row moves pending -> delivered or pending -> failed once,
 *    never back (every mark says AND state = 0); a delivered row is never
 *    handed out again, which is what makes delivery exactly-once once the
 *    receiver's 2xx is recorded; a pending row is held by at most one live
 *    worker at a time (its claim), so no two collectors attempt it at once.
 *    A worker that dies after a receiver's 2xx and before the delivered
 *    mark commits leaves the row to be sent again with the same
 *    notification id (Idempotency-Key), exactly as a restart does today;
 *  - history rows are append-only except for retention pruning.
 * Busy, full, read-only or unreachable databases are -EAGAIN; a unique
 * violation is -EEXIST; other failures -EIO.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "vigie/alarm_store.h"
#include "vigie/clock.h"
#include "vigie/db.h"

/* the delivery thread reads at least this often on PostgreSQL */
#define PG_RESCAN_MS 1000

enum {
	ST_DEF_PUT,
	ST_DEF_DEL,
	ST_DEF_STATES_DEL,
	ST_DEF_NAME,
	ST_STATE_PUT,
	ST_STATE_DEL,
	ST_HIST_SEQ,
	ST_HIST_SEQ_N,
	ST_HIST_ADD,
	ST_OB_ADD,
	ST_OB_DUE,
	ST_OB_NEXT,
	ST_OB_DONE,
	ST_OB_FAIL,
	ST_OB_RETRY,
	ST_OB_RENEW,
	ST_OB_CLAIM,
	ST_OB_NEXT_PG,
	ST_GM_PUT,
	ST_GM_DEL,
	ST_GM_DEL_ALL,
	ST_GV_PUT,
	ST_GV_DROP,
	ST_LOG_ADD,
	ST_LOG_CLEAR,
	ST_COUNT
};

static const char *const sql_text[ST_COUNT] = {
	[ST_DEF_PUT] = "INSERT INTO alarms(id, project, name, definition, "
		       "created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
		       "ON CONFLICT(id) DO UPDATE SET project = ?2, name = ?3, "
		       "definition = ?4, updated_ms = ?6",
	[ST_DEF_DEL] = "DELETE FROM alarms WHERE id = ?1",
	[ST_DEF_STATES_DEL] = "DELETE FROM states WHERE alarm_id = ?1",
	[ST_DEF_NAME] = "SELECT id FROM alarms WHERE project = ?1 AND name = ?2 "
			"AND id <> ?3",
	[ST_STATE_PUT] = "INSERT INTO states(alarm_id, resource, state, since_ms, "
			 "clear_since_ms, alarm_periods, reason, ring, updated_ms, "
			 "cooldown_ms, log_base) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
			 "?9, ?10, ?11) "
			 "ON CONFLICT(alarm_id, resource) DO UPDATE SET state = ?3, "
			 "since_ms = ?4, clear_since_ms = ?5, alarm_periods = ?6, "
			 "reason = ?7, ring = ?8, updated_ms = ?9, cooldown_ms = ?10, "
			 "log_base = ?11",
	[ST_STATE_DEL] = "DELETE FROM states WHERE alarm_id = ?1 AND resource = ?2",
	/* the alarm's own row number: "seq" counts its rows only, so it
	 * tells nothing of other projects' alarms (the row lock orders two
	 * writers of one alarm) */
	[ST_HIST_SEQ] = "INSERT INTO history_seq(alarm_id, last) VALUES (?1, 1) "
			"ON CONFLICT(alarm_id) DO UPDATE SET last = history_seq.last + 1 "
			"RETURNING last",
	/* PostgreSQL: ?2 rows of one alarm at a commit (see hist_write) */
	[ST_HIST_SEQ_N] = "INSERT INTO history_seq(alarm_id, last) VALUES (?1, ?2) "
			  "ON CONFLICT(alarm_id) DO UPDATE SET last = history_seq.last + ?2 "
			  "RETURNING last",
	[ST_HIST_ADD] = "INSERT INTO history(alarm_id, project, type, resource, "
			"time_ms, recorded_ms, detail, aseq) VALUES (?1, ?2, ?3, ?4, "
			"?5, ?6, ?7, ?8)",
	[ST_OB_ADD] = "INSERT INTO outbox(notice_id, alarm_id, project, action, "
		      "body, created_ms, next_ms, attempts, state) VALUES (?1, "
		      "?2, ?3, ?4, ?5, ?6, ?6, 0, 0)",
	[ST_OB_DUE] = "SELECT id, notice_id, alarm_id, project, action, body, "
		      "attempts, created_ms, next_ms FROM outbox WHERE state = 0 "
		      "AND next_ms <= ?1 AND id > ?3 ORDER BY id LIMIT ?2",
	[ST_OB_NEXT] = "SELECT min(next_ms) FROM outbox WHERE state = 0 AND "
		       "next_ms > ?1",
	[ST_OB_DONE] = "UPDATE outbox SET state = 1, attempts = ?2, done_ms = ?3, "
		       "last_error = NULL WHERE id = ?1 AND state = 0",
	[ST_OB_FAIL] = "UPDATE outbox SET state = 2, attempts = ?2, done_ms = ?4, "
		       "last_error = ?3 WHERE id = ?1 AND state = 0",
	[ST_OB_RETRY] = "UPDATE outbox SET attempts = ?2, next_ms = ?3, "
			"last_error = ?4, claim_until = 0 WHERE id = ?1 AND state = 0",
	/* PostgreSQL: the shared outbox (see the header) */
	[ST_OB_RENEW] = "UPDATE outbox SET claim_until = ?2 WHERE claimed_by = ?1 "
			"AND state = 0 AND claim_until > 0",
	[ST_OB_CLAIM] = "UPDATE outbox SET claimed_by = ?4, claim_until = ?5 "
			"WHERE id IN (SELECT id FROM outbox WHERE state = 0 AND "
			"next_ms <= ?1 AND id > ?3 AND (claim_until < ?1 OR "
			"claimed_by = ?4) ORDER BY id LIMIT ?2 FOR UPDATE SKIP "
			"LOCKED) RETURNING id, notice_id, alarm_id, project, action, "
			"body, attempts, created_ms, next_ms",
	/* group alarms' members and open periods (step 5) */
	[ST_GM_PUT] = "INSERT INTO group_alarm_members(alarm_id, resource) VALUES "
		      "(?1, ?2) ON CONFLICT(alarm_id, resource) DO NOTHING",
	[ST_GM_DEL] = "DELETE FROM group_alarm_members WHERE alarm_id = ?1 AND "
		      "resource = ?2",
	[ST_GM_DEL_ALL] = "DELETE FROM group_alarm_members WHERE alarm_id = ?1",
	[ST_GV_PUT] = "INSERT INTO group_alarm_values(alarm_id, start_ms, resource, "
		      "value) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(alarm_id, start_ms, "
		      "resource) DO UPDATE SET value = ?4",
	[ST_GV_DROP] = "DELETE FROM group_alarm_values WHERE alarm_id = ?1 AND "
		       "start_ms <= ?2",
	/* when the next row becomes available to this worker: its next_ms,
	 * or after another worker's lease on it ends */
	[ST_OB_NEXT_PG] = "SELECT min(CASE WHEN claimed_by <> ?2 AND claim_until >= "
			  "next_ms THEN claim_until + 1 ELSE next_ms END) FROM outbox "
			  "WHERE state = 0 AND (next_ms > ?1 OR (claimed_by <> ?2 AND "
			  "claim_until >= ?1))",
	[ST_LOG_ADD] = "INSERT INTO state_log(entries) VALUES (?1)",
	[ST_LOG_CLEAR] = "DELETE FROM state_log",
};

#define SCHEMA_V1_SQLITE                                                           \
	"CREATE TABLE IF NOT EXISTS alarms ("                                      \
	" id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL,"         \
	" definition TEXT NOT NULL, created_ms INTEGER NOT NULL,"                  \
	" updated_ms INTEGER NOT NULL);"                                           \
	"CREATE UNIQUE INDEX IF NOT EXISTS alarms_name ON alarms(project, name);"  \
	"CREATE TABLE IF NOT EXISTS states ("                                      \
	" alarm_id TEXT NOT NULL, resource TEXT NOT NULL, state INTEGER NOT NULL," \
	" since_ms INTEGER NOT NULL, clear_since_ms INTEGER NOT NULL DEFAULT 0,"   \
	" alarm_periods INTEGER NOT NULL DEFAULT 0, reason TEXT, ring BLOB,"       \
	" updated_ms INTEGER NOT NULL, PRIMARY KEY (alarm_id, resource));"         \
	"CREATE TABLE IF NOT EXISTS history ("                                     \
	" seq INTEGER PRIMARY KEY AUTOINCREMENT, alarm_id TEXT NOT NULL,"          \
	" project TEXT NOT NULL, type TEXT NOT NULL, resource TEXT,"               \
	" time_ms INTEGER NOT NULL, recorded_ms INTEGER NOT NULL, detail TEXT);"   \
	"CREATE INDEX IF NOT EXISTS history_alarm ON history(alarm_id, time_ms);"  \
	"CREATE INDEX IF NOT EXISTS history_recorded ON history(recorded_ms);"     \
	"CREATE TABLE IF NOT EXISTS outbox ("                                      \
	" id INTEGER PRIMARY KEY AUTOINCREMENT, notice_id TEXT NOT NULL,"          \
	" alarm_id TEXT NOT NULL, project TEXT NOT NULL, action TEXT NOT NULL,"    \
	" body TEXT NOT NULL, created_ms INTEGER NOT NULL,"                        \
	" next_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"          \
	" state INTEGER NOT NULL DEFAULT 0, last_error TEXT, done_ms INTEGER);"    \
	"CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_ms);"

/* The same tables in PostgreSQL's words: BIGINT integers, BYTEA, identity
 * keys, byte-order ("C") text keys as sqlite compares them. */
#define SCHEMA_V1_PG                                                                   \
	"CREATE TABLE IF NOT EXISTS alarms ("                                          \
	" id TEXT COLLATE \"C\" PRIMARY KEY, project TEXT COLLATE \"C\" NOT NULL,"     \
	" name TEXT COLLATE \"C\" NOT NULL,"                                           \
	" definition TEXT NOT NULL, created_ms BIGINT NOT NULL,"                       \
	" updated_ms BIGINT NOT NULL);"                                                \
	"CREATE UNIQUE INDEX IF NOT EXISTS alarms_name ON alarms(project, name);"      \
	"CREATE TABLE IF NOT EXISTS states ("                                          \
	" alarm_id TEXT COLLATE \"C\" NOT NULL, resource TEXT COLLATE \"C\" NOT NULL," \
	" state BIGINT NOT NULL,"                                                      \
	" since_ms BIGINT NOT NULL, clear_since_ms BIGINT NOT NULL DEFAULT 0,"         \
	" alarm_periods BIGINT NOT NULL DEFAULT 0, reason TEXT, ring BYTEA,"           \
	" updated_ms BIGINT NOT NULL, PRIMARY KEY (alarm_id, resource));"              \
	"CREATE TABLE IF NOT EXISTS history ("                                         \
	" seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"                    \
	" alarm_id TEXT COLLATE \"C\" NOT NULL,"                                       \
	" project TEXT NOT NULL, type TEXT NOT NULL, resource TEXT,"                   \
	" time_ms BIGINT NOT NULL, recorded_ms BIGINT NOT NULL, detail TEXT);"         \
	"CREATE INDEX IF NOT EXISTS history_alarm ON history(alarm_id, time_ms);"      \
	"CREATE INDEX IF NOT EXISTS history_recorded ON history(recorded_ms);"         \
	"CREATE TABLE IF NOT EXISTS outbox ("                                          \
	" id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"                     \
	" notice_id TEXT NOT NULL,"                                                    \
	" alarm_id TEXT NOT NULL, project TEXT NOT NULL, action TEXT NOT NULL,"        \
	" body TEXT NOT NULL, created_ms BIGINT NOT NULL,"                             \
	" next_ms BIGINT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0,"                \
	" state BIGINT NOT NULL DEFAULT 0, last_error TEXT, done_ms BIGINT);"          \
	"CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_ms);"

static const struct vg_db_step steps[] = {
	{.version = 1, .sql_sqlite = SCHEMA_V1_SQLITE, .sql_pg = SCHEMA_V1_PG},
	/* the claim of a pending row by one delivery worker (a lease) */
	{.version = 2, .sql = "ALTER TABLE outbox ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';"
			      "ALTER TABLE outbox ADD COLUMN claim_until BIGINT NOT NULL DEFAULT 0;"},
	/* grouped notifications waiting for their flush (alarms/group.c) */
	{.version = 3,
	 .sql_sqlite = "CREATE TABLE IF NOT EXISTS notify_groups ("
		       " gkey TEXT PRIMARY KEY, project TEXT NOT NULL, action TEXT NOT NULL,"
		       " alarm_id TEXT NOT NULL, labels TEXT NOT NULL,"
		       " flush_ms INTEGER NOT NULL, last_flush_ms INTEGER NOT NULL);"
		       "CREATE INDEX IF NOT EXISTS notify_groups_due ON notify_groups(flush_ms);"
		       "CREATE TABLE IF NOT EXISTS notify_group_members ("
		       " id INTEGER PRIMARY KEY AUTOINCREMENT, gkey TEXT NOT NULL,"
		       " body TEXT NOT NULL);"
		       "CREATE INDEX IF NOT EXISTS notify_group_members_key"
		       " ON notify_group_members(gkey, id);",
	 .sql_pg = "CREATE TABLE IF NOT EXISTS notify_groups ("
		   " gkey TEXT COLLATE \"C\" PRIMARY KEY, project TEXT NOT NULL,"
		   " action TEXT NOT NULL, alarm_id TEXT NOT NULL, labels TEXT NOT NULL,"
		   " flush_ms BIGINT NOT NULL, last_flush_ms BIGINT NOT NULL);"
		   "CREATE INDEX IF NOT EXISTS notify_groups_due ON notify_groups(flush_ms);"
		   "CREATE TABLE IF NOT EXISTS notify_group_members ("
		   " id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
		   " gkey TEXT COLLATE \"C\" NOT NULL, body TEXT NOT NULL);"
		   "CREATE INDEX IF NOT EXISTS notify_group_members_key"
		   " ON notify_group_members(gkey, id);"},
	/* the notifications each cluster node published on its SSE hub, for
	 * the other nodes' hubs (vg_alarm_store_notice_add); xid is the
	 * writing transaction's, so a reader knows which rows are final */
	{.version = 4,
	 .sql_sqlite = "CREATE TABLE IF NOT EXISTS peer_notices ("
		       " seq INTEGER PRIMARY KEY AUTOINCREMENT, xid INTEGER NOT NULL DEFAULT 0,"
		       " node TEXT NOT NULL, project TEXT NOT NULL, body TEXT NOT NULL,"
		       " recorded_ms INTEGER NOT NULL);",
	 .sql_pg = "CREATE TABLE IF NOT EXISTS peer_notices ("
		   " seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
		   " xid xid8 NOT NULL DEFAULT pg_current_xact_id(),"
		   " node TEXT COLLATE \"C\" NOT NULL, project TEXT NOT NULL,"
		   " body TEXT NOT NULL, recorded_ms BIGINT NOT NULL);"
		   "CREATE INDEX IF NOT EXISTS peer_notices_xid ON peer_notices(xid);"
		   "CREATE INDEX IF NOT EXISTS peer_notices_recorded ON peer_notices(recorded_ms);"},
	/* what a restart or a takeover needs to go on as an uninterrupted
	 * run would: the cooldown's clock of each instance, and the members
	 * and open periods of group alarms (alarms/engine_gstate.c) */
	{.version = 5,
	 .sql_sqlite = "ALTER TABLE states ADD COLUMN cooldown_ms INTEGER NOT NULL DEFAULT 0;"
		       "CREATE TABLE IF NOT EXISTS group_alarm_members ("
		       " alarm_id TEXT NOT NULL, resource TEXT NOT NULL,"
		       " PRIMARY KEY (alarm_id, resource));"
		       "CREATE TABLE IF NOT EXISTS group_alarm_values ("
		       " alarm_id TEXT NOT NULL, start_ms INTEGER NOT NULL,"
		       " resource TEXT NOT NULL, value REAL,"
		       " PRIMARY KEY (alarm_id, start_ms, resource));",
	 .sql_pg = "ALTER TABLE states ADD COLUMN cooldown_ms BIGINT NOT NULL DEFAULT 0;"
		   "CREATE TABLE IF NOT EXISTS group_alarm_members ("
		   " alarm_id TEXT COLLATE \"C\" NOT NULL, resource TEXT COLLATE \"C\" NOT NULL,"
		   " PRIMARY KEY (alarm_id, resource));"
		   "CREATE TABLE IF NOT EXISTS group_alarm_values ("
		   " alarm_id TEXT COLLATE \"C\" NOT NULL, start_ms BIGINT NOT NULL,"
		   " resource TEXT COLLATE \"C\" NOT NULL, value DOUBLE PRECISION,"
		   " PRIMARY KEY (alarm_id, start_ms, resource));"},
	/* the step log (alarms/engine_queue.c, "Logged steps"): evaluations
	 * that changed only an instance's datapoints, appended per flush as
	 * one row instead of rewriting each instance's row; log_base ties
	 * each entry to the state row it follows */
	{.version = 6,
	 .sql_sqlite = "ALTER TABLE states ADD COLUMN log_base INTEGER NOT NULL DEFAULT 0;"
		       "CREATE TABLE IF NOT EXISTS state_log ("
		       " seq INTEGER PRIMARY KEY AUTOINCREMENT, entries BLOB NOT NULL);",
	 .sql_pg = "ALTER TABLE states ADD COLUMN log_base BIGINT NOT NULL DEFAULT 0;"
		   "CREATE TABLE IF NOT EXISTS state_log ("
		   " seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
		   " entries BYTEA NOT NULL);"},
	/* history's "seq" numbered per alarm (aseq, from history_seq): the
	 * table's own seq counted every project's rows, so a tenant's seq
	 * told how much the others' alarms did; existing rows numbered in
	 * their order */
	{.version = 7,
	 .sql_sqlite = "ALTER TABLE history ADD COLUMN aseq INTEGER NOT NULL DEFAULT 0;"
		       "UPDATE history SET aseq = r.n FROM (SELECT seq, ROW_NUMBER() OVER "
		       " (PARTITION BY alarm_id ORDER BY seq) AS n FROM history) r"
		       " WHERE history.seq = r.seq;"
		       "CREATE INDEX IF NOT EXISTS history_aseq ON history(alarm_id, aseq);"
		       "CREATE TABLE IF NOT EXISTS history_seq ("
		       " alarm_id TEXT PRIMARY KEY, last INTEGER NOT NULL);"
		       "INSERT INTO history_seq(alarm_id, last) SELECT alarm_id, MAX(aseq)"
		       " FROM history GROUP BY alarm_id;",
	 .sql_pg = "ALTER TABLE history ADD COLUMN aseq BIGINT NOT NULL DEFAULT 0;"
		   "UPDATE history SET aseq = r.n FROM (SELECT seq, ROW_NUMBER() OVER "
		   " (PARTITION BY alarm_id ORDER BY seq) AS n FROM history) r"
		   " WHERE history.seq = r.seq;"
		   "CREATE INDEX IF NOT EXISTS history_aseq ON history(alarm_id, aseq);"
		   "CREATE TABLE IF NOT EXISTS history_seq ("
		   " alarm_id TEXT COLLATE \"C\" PRIMARY KEY, last BIGINT NOT NULL);"
		   "INSERT INTO history_seq(alarm_id, last) SELECT alarm_id, MAX(aseq)"
		   " FROM history GROUP BY alarm_id;"},
};

static const struct vg_db_schema alarms_schema = {
	.component = "alarms",
	.pg_schema = "vigie_alarms",
	.steps = steps,
	.nsteps = sizeof(steps) / sizeof(steps[0]),
	.adopt_user_version = 1,
};

/* A history row of an open PostgreSQL transaction, written at its commit
 * (hist_write). */
struct hist_row {
	char *alarm_id, *project, *type, *resource, *detail;
	int64_t time_ms, recorded_ms;
	size_t order; /* the order of the adds */
};

struct vg_alarm_store {
	struct vg_db *db;
	int pg;
	char worker[96];     /* this handle's claim name: host:pid:random */
	struct hist_row *hq; /* PostgreSQL: the open transaction's history rows */
	size_t nhq, caphq;
	char failed[512]; /* the message of the failure a rollback ended */
};

static void hist_clear(struct vg_alarm_store *s);

/* vg_db's codes as this header promises them. */
static int map_rc(int rc)
{
	switch (rc) {
	case 0:
	case -EEXIST:
	case -ENOMEM:
	case -EAGAIN:
		return rc;
	case -EBUSY:
	case -ENOSPC:
	case -EROFS:
	case -ECONNRESET:
	case -ENOTCONN:
		return -EAGAIN;
	default:
		return rc < 0 ? -EIO : rc;
	}
}

const char *vg_alarm_store_errmsg(const struct vg_alarm_store *s)
{
	if (!s || !s->db)
		return "no database";
	return *vg_db_errmsg(s->db) ? vg_db_errmsg(s->db) : s->failed;
}

void vg_alarm_store_close(struct vg_alarm_store *s)
{
	if (!s)
		return;
	hist_clear(s);
	free(s->hq);
	vg_db_close(s->db);
	free(s);
}

/* vigie/db.h's rule: postgresql://, postgres://, or key=value conninfo
 * (an '=' with no '/' before it). */
static int is_url(const char *where)
{
	const char *eq = strchr(where, '='), *sl = strchr(where, '/');
	return !strncmp(where, "postgresql://", 13) || !strncmp(where, "postgres://", 11) ||
	       (eq && (!sl || sl > eq));
}

int vg_alarm_store_url(const char *where, char *out, size_t outlen)
{
	int n;

	if (!where || !*where)
		return -EINVAL;
	n = is_url(where) ? snprintf(out, outlen, "%s", where)
			  : snprintf(out, outlen, "sqlite:%s/alarms.db", where);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

int vg_alarm_store_open(const char *where, struct vg_alarm_store **out,
			char *err, size_t errlen)
{
	struct vg_alarm_store *s;
	char path[4096], host[64] = "";
	unsigned rnd = 0;
	int rc;

	*out = NULL;
	if (!where || !*where) {
		snprintf(err, errlen, "alarms: no data_dir or state database");
		return -EINVAL;
	}
	if (!is_url(where)) {
		if ((size_t)snprintf(path, sizeof(path), "%s/alarms.db", where) >= sizeof(path)) {
			snprintf(err, errlen, "alarms: data_dir too long");
			return -ENAMETOOLONG;
		}
		where = path;
	}
	if (!(s = calloc(1, sizeof(*s)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if ((rc = vg_db_open(where, &alarms_schema, &s->db, err, errlen))) {
		free(s);
		return map_rc(rc);
	}
	s->pg = vg_db_engine(s->db) == VG_DB_POSTGRESQL;
	gethostname(host, sizeof(host) - 1);
	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		rnd = (unsigned)vg_monotonic_ns();
	snprintf(s->worker, sizeof(s->worker), "%.60s:%d:%08x", host, (int)getpid(), rnd);
	*out = s;
	return 0;
}

static int gopen_delete(struct vg_alarm_store *s, const char *alarm_id);

static int prep(struct vg_alarm_store *s, int i, struct vg_db_stmt **st)
{
	return map_rc(vg_db_prepare(s->db, sql_text[i], st));
}

/* Run a statement that returns no rows (or whose rows are not read). */
static int run(struct vg_db_stmt *st)
{
	int rc = vg_db_step(st);

	vg_db_reset(st);
	return rc < 0 ? map_rc(rc) : 0;
}

/* A read whose rows go to a caller's callback: sql, its one text
 * parameter (NULL: none), and row(), which hands the current row to the
 * callback in fn (a non-zero return stops the read and is returned as
 * is). Run by vg_db_retry_lost: a connection lost at a server's restart
 * fails the read's first call, before any row was handed out, and the
 * read runs once more, so a takeover's first read after the restart gets
 * the stored state rather than an error. */
struct read {
	const char *sql, *param;
	int (*row)(const struct read *r, struct vg_db_stmt *st);
	union {
		vg_alarm_def_row_fn def;
		vg_alarm_state_row_fn state;
		vg_alarm_gmember_fn member;
		vg_alarm_gvalue_fn value;
	} fn;
	void *ctx;
	int ret; /* the callback's non-zero return */
};

static int read_rows(struct vg_db *db, void *arg)
{
	struct read *r = arg;
	struct vg_db_stmt *st;
	int rc = vg_db_prepare(db, r->sql, &st);

	if (rc)
		return rc;
	if (r->param)
		vg_db_bind_text(st, 1, r->param);
	while (!r->ret && (rc = vg_db_step(st)) == 1)
		r->ret = r->row(r, st);
	vg_db_reset(st);
	return rc < 0 ? rc : 0;
}

static int read_all(struct vg_alarm_store *s, struct read *r)
{
	int rc = vg_db_retry_lost(s->db, read_rows, r);

	return r->ret ? r->ret : map_rc(rc);
}

static void hist_clear(struct vg_alarm_store *s)
{
	for (size_t i = 0; i < s->nhq; i++) {
		struct hist_row *h = &s->hq[i];
		free(h->alarm_id);
		free(h->project);
		free(h->type);
		free(h->resource);
		free(h->detail);
	}
	s->nhq = 0;
}

static int hist_cmp(const void *a, const void *b)
{
	const struct hist_row *x = a, *y = b;
	int c = strcmp(x->alarm_id, y->alarm_id);

	return c ? c : (x->order > y->order) - (x->order < y->order);
}

static int hist_insert(struct vg_alarm_store *s, const char *alarm_id,
		       const char *project, const char *type, const char *resource,
		       int64_t time_ms, int64_t recorded_ms, const char *detail,
		       int64_t aseq)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = prep(s, ST_HIST_ADD, &st)))
		return rc;
	vg_db_bind_text(st, 1, alarm_id);
	vg_db_bind_text(st, 2, project ? project : "");
	vg_db_bind_text(st, 3, type);
	vg_db_bind_text(st, 4, resource && *resource ? resource : NULL);
	vg_db_bind_int64(st, 5, time_ms);
	vg_db_bind_int64(st, 6, recorded_ms);
	vg_db_bind_text(st, 7, detail);
	vg_db_bind_int64(st, 8, aseq);
	return run(st);
}

/* PostgreSQL: the transaction's history rows, just before its COMMIT.
 * Numbering a row locks its alarm's history_seq row until the commit
 * (that lock orders two writers of one alarm: seq follows the commits).
 * Taken where each row was added, in the order of the adds, two
 * collectors' transactions that both write rows of alarms A and B (an
 * engine's flush deciding for several alarms, a delivery thread
 * recording the attempts that ended together) took those locks in
 * opposite orders and deadlocked: the server aborted one, and when it
 * was a delivery thread's, notifications its receivers had answered 2xx
 * stayed pending and were sent again (the cluster test saw 16 and 20
 * sent twice). So every transaction takes them here, last, in alarm id
 * order, one statement per alarm: waits on them always go up the same
 * order and end. Rows of one alarm keep the order of their adds. */
static int hist_write(struct vg_alarm_store *s)
{
	int rc = 0;

	qsort(s->hq, s->nhq, sizeof(*s->hq), hist_cmp);
	for (size_t i = 0, j; !rc && i < s->nhq; i = j) {
		struct vg_db_stmt *st;
		int64_t last = 0;

		for (j = i + 1; j < s->nhq && !strcmp(s->hq[j].alarm_id, s->hq[i].alarm_id); j++)
			;
		if ((rc = prep(s, ST_HIST_SEQ_N, &st)))
			break;
		vg_db_bind_text(st, 1, s->hq[i].alarm_id);
		vg_db_bind_int64(st, 2, (int64_t)(j - i));
		rc = vg_db_step(st);
		if (rc == 1)
			last = vg_db_column_int64(st, 0);
		vg_db_reset(st);
		if (rc != 1) {
			rc = rc < 0 ? map_rc(rc) : -EIO;
			break;
		}
		rc = 0;
		for (size_t k = i; !rc && k < j; k++) {
			const struct hist_row *h = &s->hq[k];
			rc = hist_insert(s, h->alarm_id, h->project, h->type, h->resource,
					 h->time_ms, h->recorded_ms, h->detail,
					 last - (int64_t)(j - k) + 1);
		}
	}
	hist_clear(s);
	return rc;
}

int vg_alarm_store_begin(struct vg_alarm_store *s)
{
	hist_clear(s);
	s->failed[0] = '\0';
	return map_rc(vg_db_begin(s->db));
}

int vg_alarm_store_commit(struct vg_alarm_store *s)
{
	int rc = s->nhq && vg_db_in_transaction(s->db) ? hist_write(s) : 0;

	/* PostgreSQL: a failed COMMIT has ended the transaction already;
	 * after a failed statement the caller rolls back */
	if (!rc)
		rc = vg_db_commit(s->db);
	return map_rc(rc);
}

void vg_alarm_store_rollback(struct vg_alarm_store *s)
{
	char why[512];

	if (!s)
		return;
	hist_clear(s);
	if (!vg_db_in_transaction(s->db))
		return;
	/* the failure's message stays what vg_alarm_store_errmsg says (a
	 * rollback clears it: callers log it after rolling back) */
	snprintf(why, sizeof(why), "%s", vg_db_errmsg(s->db));
	if (!vg_db_rollback(s->db))
		memcpy(s->failed, why, sizeof(why));
}

/* ---- definitions ---------------------------------------------------------- */

int vg_alarm_store_load_defs(struct vg_alarm_store *s, vg_alarm_def_row_fn fn,
			     void *ctx)
{
	return vg_alarm_store_load_def(s, NULL, fn, ctx);
}

static int def_row(const struct read *r, struct vg_db_stmt *st)
{
	return r->fn.def(r->ctx, vg_db_column_text(st, 0), vg_db_column_text(st, 1),
			 vg_db_column_int64(st, 2), vg_db_column_int64(st, 3));
}

int vg_alarm_store_load_def(struct vg_alarm_store *s, const char *id,
			    vg_alarm_def_row_fn fn, void *ctx)
{
	struct read r = {
		.sql = id ? "SELECT id, definition, created_ms, "
			    "updated_ms FROM alarms WHERE id = ?1"
			  : "SELECT id, definition, created_ms, "
			    "updated_ms FROM alarms ORDER BY created_ms, id",
		.param = id,
		.row = def_row,
		.fn.def = fn,
		.ctx = ctx,
	};

	return read_all(s, &r);
}

int vg_alarm_store_put_def(struct vg_alarm_store *s, const char *id,
			   const char *project, const char *name,
			   const char *json, int64_t created_ms,
			   int64_t updated_ms)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = prep(s, ST_DEF_NAME, &st)))
		return rc;
	vg_db_bind_text(st, 1, project);
	vg_db_bind_text(st, 2, name);
	vg_db_bind_text(st, 3, id);
	rc = vg_db_step(st);
	vg_db_reset(st);
	if (rc == 1)
		return -EEXIST;
	if (rc < 0)
		return map_rc(rc);
	if ((rc = prep(s, ST_DEF_PUT, &st)))
		return rc;
	vg_db_bind_text(st, 1, id);
	vg_db_bind_text(st, 2, project);
	vg_db_bind_text(st, 3, name);
	vg_db_bind_text(st, 4, json);
	vg_db_bind_int64(st, 5, created_ms);
	vg_db_bind_int64(st, 6, updated_ms);
	return run(st);
}

int vg_alarm_store_delete_def(struct vg_alarm_store *s, const char *id)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = prep(s, ST_DEF_STATES_DEL, &st)))
		return rc;
	vg_db_bind_text(st, 1, id);
	if ((rc = run(st)) || (rc = gopen_delete(s, id)) || (rc = prep(s, ST_DEF_DEL, &st)))
		return rc;
	vg_db_bind_text(st, 1, id);
	return run(st);
}

/* ---- states ------------------------------------------------------------------- */

int vg_alarm_store_load_states(struct vg_alarm_store *s,
			       vg_alarm_state_row_fn fn, void *ctx)
{
	return vg_alarm_store_load_states_of(s, NULL, fn, ctx);
}

static int state_row(const struct read *r, struct vg_db_stmt *st)
{
	size_t len = 0;
	const void *ring = vg_db_column_blob(st, 7, &len);
	struct vg_alarm_state_row row = {
		.alarm_id = vg_db_column_text(st, 0),
		.resource = vg_db_column_text(st, 1),
		.state = (int)vg_db_column_int64(st, 2),
		.since_ms = vg_db_column_int64(st, 3),
		.clear_since_ms = vg_db_column_int64(st, 4),
		.alarm_periods = (uint32_t)vg_db_column_int64(st, 5),
		.reason = vg_db_column_text(st, 6),
		.ring = ring,
		.ring_len = len,
		.updated_ms = vg_db_column_int64(st, 8),
		.cooldown_ms = vg_db_column_int64(st, 9),
		.log_base = vg_db_column_int64(st, 10),
	};

	return r->fn.state(r->ctx, &row);
}

int vg_alarm_store_load_states_of(struct vg_alarm_store *s, const char *alarm_id,
				  vg_alarm_state_row_fn fn, void *ctx)
{
	struct read r = {
		.sql = alarm_id ? "SELECT alarm_id, resource, state, "
				  "since_ms, clear_since_ms, alarm_periods, "
				  "reason, ring, updated_ms, cooldown_ms, "
				  "log_base FROM states WHERE alarm_id = ?1"
				: "SELECT alarm_id, resource, state, "
				  "since_ms, clear_since_ms, alarm_periods, "
				  "reason, ring, updated_ms, cooldown_ms, "
				  "log_base FROM states",
		.param = alarm_id,
		.row = state_row,
		.fn.state = fn,
		.ctx = ctx,
	};

	return read_all(s, &r);
}

int vg_alarm_store_put_state(struct vg_alarm_store *s,
			     const struct vg_alarm_state_row *r)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = prep(s, ST_STATE_PUT, &st)))
		return rc;
	vg_db_bind_text(st, 1, r->alarm_id);
	vg_db_bind_text(st, 2, r->resource ? r->resource : "");
	vg_db_bind_int64(st, 3, r->state);
	vg_db_bind_int64(st, 4, r->since_ms);
	vg_db_bind_int64(st, 5, r->clear_since_ms);
	vg_db_bind_int64(st, 6, r->alarm_periods);
	vg_db_bind_text(st, 7, r->reason);
	if (r->ring)
		vg_db_bind_blob(st, 8, r->ring, r->ring_len);
	vg_db_bind_int64(st, 9, r->updated_ms);
	vg_db_bind_int64(st, 10, r->cooldown_ms);
	vg_db_bind_int64(st, 11, r->log_base);
	return run(st);
}

int vg_alarm_store_local(const struct vg_alarm_store *s)
{
	return s && !s->pg;
}

int vg_alarm_store_log_add(struct vg_alarm_store *s, const void *entries, size_t len)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = prep(s, ST_LOG_ADD, &st)))
		return rc;
	vg_db_bind_blob(st, 1, entries, len);
	return run(st);
}

int vg_alarm_store_log_clear(struct vg_alarm_store *s)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = prep(s, ST_LOG_CLEAR, &st)))
		return rc;
	return run(st);
}

int vg_alarm_store_log_load(struct vg_alarm_store *s, vg_alarm_log_fn fn, void *ctx)
{
	struct vg_db_stmt *st;
	int rc, ret = 0;

	if ((rc = vg_db_prepare(s->db, "SELECT entries FROM state_log ORDER BY seq", &st)))
		return map_rc(rc);
	while (!ret && (rc = vg_db_step(st)) == 1) {
		size_t len = 0;
		const void *b = vg_db_column_blob(st, 0, &len);
		ret = fn(ctx, b, len);
	}
	vg_db_reset(st);
	if (ret)
		return ret;
	return rc < 0 ? map_rc(rc) : 0;
}

int vg_alarm_store_delete_state(struct vg_alarm_store *s, const char *alarm_id,
				const char *resource)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = prep(s, ST_STATE_DEL, &st)))
		return rc;
	vg_db_bind_text(st, 1, alarm_id);
	vg_db_bind_text(st, 2, resource ? resource : "");
	if ((rc = run(st)) || (resource && *resource))
		return rc;
	return gopen_delete(s, alarm_id);
}

/* ---- group alarms: members and open periods ------------------------------------- */

static int gopen_delete(struct vg_alarm_store *s, const char *alarm_id)
{
	int rc = vg_alarm_store_gmember_del(s, alarm_id, NULL);

	return rc ? rc : vg_alarm_store_gvalues_drop(s, alarm_id, INT64_MAX);
}

static int gmember(struct vg_alarm_store *s, int which, const char *alarm_id,
		   const char *resource)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = prep(s, which, &st)))
		return rc;
	vg_db_bind_text(st, 1, alarm_id);
	vg_db_bind_text(st, 2, resource);
	return run(st);
}

int vg_alarm_store_gmember_put(struct vg_alarm_store *s, const char *alarm_id,
			       const char *resource)
{
	return gmember(s, ST_GM_PUT, alarm_id, resource);
}

int vg_alarm_store_gmember_del(struct vg_alarm_store *s, const char *alarm_id,
			       const char *resource)
{
	struct vg_db_stmt *st;
	int rc;

	if (resource)
		return gmember(s, ST_GM_DEL, alarm_id, resource);
	if ((rc = prep(s, ST_GM_DEL_ALL, &st)))
		return rc;
	vg_db_bind_text(st, 1, alarm_id);
	return run(st);
}

int vg_alarm_store_gvalue_put(struct vg_alarm_store *s, const char *alarm_id,
			      int64_t start_ms, const char *resource, double value)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = prep(s, ST_GV_PUT, &st)))
		return rc;
	vg_db_bind_text(st, 1, alarm_id);
	vg_db_bind_int64(st, 2, start_ms);
	vg_db_bind_text(st, 3, resource);
	if (isnan(value))
		vg_db_bind_null(st, 4);
	else
		vg_db_bind_double(st, 4, value);
	return run(st);
}

int vg_alarm_store_gvalues_drop(struct vg_alarm_store *s, const char *alarm_id,
				int64_t through_ms)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = prep(s, ST_GV_DROP, &st)))
		return rc;
	vg_db_bind_text(st, 1, alarm_id);
	vg_db_bind_int64(st, 2, through_ms);
	return run(st);
}

static int member_row(const struct read *r, struct vg_db_stmt *st)
{
	return r->fn.member(r->ctx, vg_db_column_text(st, 0), vg_db_column_text(st, 1));
}

static int value_row(const struct read *r, struct vg_db_stmt *st)
{
	return r->fn.value(r->ctx, vg_db_column_text(st, 0), vg_db_column_int64(st, 1),
			   vg_db_column_text(st, 2),
			   vg_db_column_is_null(st, 3) ? NAN : vg_db_column_double(st, 3));
}

int vg_alarm_store_gopen_load(struct vg_alarm_store *s, const char *alarm_id,
			      vg_alarm_gmember_fn member, vg_alarm_gvalue_fn value,
			      void *ctx)
{
	/* two reads, each run again on its own if its connection was lost */
	struct read m = {
		.sql = alarm_id ? "SELECT alarm_id, resource FROM "
				  "group_alarm_members WHERE alarm_id = ?1"
				: "SELECT alarm_id, resource FROM "
				  "group_alarm_members",
		.param = alarm_id,
		.row = member_row,
		.fn.member = member,
		.ctx = ctx,
	};
	struct read v = {
		.sql = alarm_id ? "SELECT alarm_id, start_ms, resource, value "
				  "FROM group_alarm_values WHERE alarm_id = ?1 "
				  "ORDER BY alarm_id, start_ms, resource"
				: "SELECT alarm_id, start_ms, resource, value "
				  "FROM group_alarm_values ORDER BY alarm_id, "
				  "start_ms, resource",
		.param = alarm_id,
		.row = value_row,
		.fn.value = value,
		.ctx = ctx,
	};
	int rc = read_all(s, &m);

	return rc ? rc : read_all(s, &v);
}

/* ---- history -------------------------------------------------------------------- */

int vg_alarm_store_history_add(struct vg_alarm_store *s, const char *alarm_id,
			       const char *project, const char *type,
			       const char *resource, int64_t time_ms,
			       int64_t recorded_ms, const char *detail)
{
	struct vg_db_stmt *st;
	int64_t aseq;
	int rc;

	/* PostgreSQL, in a transaction: written at its commit (hist_write) */
	if (s->pg && vg_db_in_transaction(s->db)) {
		struct hist_row *h;
		if (s->nhq == s->caphq) {
			size_t c = s->caphq ? 2 * s->caphq : 16;
			struct hist_row *m = realloc(s->hq, c * sizeof(*m));
			if (!m)
				return -ENOMEM;
			s->hq = m;
			s->caphq = c;
		}
		h = &s->hq[s->nhq];
		*h = (struct hist_row){.alarm_id = strdup(alarm_id),
				       .project = strdup(project ? project : ""),
				       .type = strdup(type),
				       .resource = resource && *resource ? strdup(resource) : NULL,
				       .detail = strdup(detail),
				       .time_ms = time_ms,
				       .recorded_ms = recorded_ms,
				       .order = s->nhq};
		if (!h->alarm_id || !h->project || !h->type || !h->detail ||
		    (resource && *resource && !h->resource)) {
			free(h->alarm_id);
			free(h->project);
			free(h->type);
			free(h->resource);
			free(h->detail);
			return -ENOMEM;
		}
		s->nhq++;
		return 0;
	}
	if ((rc = prep(s, ST_HIST_SEQ, &st)))
		return rc;
	vg_db_bind_text(st, 1, alarm_id);
	rc = vg_db_step(st);
	aseq = rc == 1 ? vg_db_column_int64(st, 0) : 0;
	vg_db_reset(st);
	if (rc != 1)
		return rc < 0 ? map_rc(rc) : -EIO;
	return hist_insert(s, alarm_id, project, type, resource, time_ms, recorded_ms,
			   detail, aseq);
}

int vg_alarm_store_history(struct vg_alarm_store *s,
			   const struct vg_alarm_history_query *q, json_t **out,
			   int64_t *next_seq)
{
	struct vg_db_stmt *st;
	json_t *a;
	int rc, n = 0, limit = q->limit > 0 && q->limit <= 1000 ? q->limit : 100;
	char ts[32], rs[32];

	*out = NULL;
	*next_seq = 0;
	rc = vg_db_prepare(s->db,
			   "SELECT aseq, type, time_ms, recorded_ms, resource, "
			   "detail FROM history WHERE alarm_id = ?1 AND "
			   "time_ms >= ?2 AND time_ms <= ?3 AND aseq > ?4 AND "
			   "(CAST(?5 AS TEXT) IS NULL OR type = ?5) ORDER BY aseq "
			   "LIMIT ?6",
			   &st);
	if (rc)
		return map_rc(rc);
	vg_db_bind_text(st, 1, q->alarm_id);
	vg_db_bind_int64(st, 2, q->start_ms);
	vg_db_bind_int64(st, 3, q->end_ms);
	vg_db_bind_int64(st, 4, q->after_seq);
	vg_db_bind_text(st, 5, q->type);
	vg_db_bind_int64(st, 6, limit + 1);
	if (!(a = json_array())) {
		vg_db_reset(st);
		return -ENOMEM;
	}
	while ((rc = vg_db_step(st)) == 1) {
		int64_t seq = vg_db_column_int64(st, 0);
		if (n == limit) {
			*next_seq = seq - 1;
			break;
		}
		const char *detail = vg_db_column_text(st, 5);
		const char *res = vg_db_column_text(st, 4);
		const char *type = vg_db_column_text(st, 1);
		json_t *d = detail ? json_loads(detail, 0, NULL) : NULL;
		int64_t t = vg_db_column_int64(st, 2);
		vg_time_format(t, ts, sizeof(ts));
		vg_time_format(vg_db_column_int64(st, 3), rs, sizeof(rs));
		json_array_append_new(
			a, json_pack("{s:I,s:s,s:s,s:I,s:s,s:o,s:o}", "seq",
				     (json_int_t)seq, "type", type ? type : "",
				     "time", ts, "time_ms", (json_int_t)t,
				     "recorded_at", rs, "resource",
				     res ? json_string(res) : json_null(),
				     "detail", d ? d : json_object()));
		n++;
	}
	vg_db_reset(st);
	if (rc < 0) {
		json_decref(a);
		return map_rc(rc);
	}
	*out = a;
	return 0;
}

int vg_alarm_store_prune(struct vg_alarm_store *s, int64_t before_ms,
			 uint64_t *deleted)
{
	struct vg_db_stmt *st;
	uint64_t n = 0;
	int rc;
	static const char *const q[] = {
		"DELETE FROM history WHERE recorded_ms < ?1",
		"DELETE FROM outbox WHERE state <> 0 AND done_ms < ?1",
		"DELETE FROM notify_groups WHERE flush_ms = 0 AND last_flush_ms < ?1",
	};

	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
		if ((rc = vg_db_prepare(s->db, q[i], &st)))
			return map_rc(rc);
		vg_db_bind_int64(st, 1, before_ms);
		if ((rc = run(st)))
			return rc;
		n += (uint64_t)vg_db_changes(s->db);
	}
	/* the seq counter of a deleted alarm, once no history row names it
	 * any more: not at the deletion, whose own history row (and any
	 * notification attempt still due) goes on numbering the alarm's
	 * rows after the ones kept */
	if ((rc = vg_db_prepare(s->db, "DELETE FROM history_seq WHERE NOT EXISTS("
				       "SELECT 1 FROM alarms a WHERE a.id = history_seq.alarm_id)"
				       " AND NOT EXISTS(SELECT 1 FROM history h"
				       " WHERE h.alarm_id = history_seq.alarm_id)",
				&st)))
		return map_rc(rc);
	if ((rc = run(st)))
		return rc;
	if (deleted)
		*deleted = n;
	return 0;
}

/* ---- outbox --------------------------------------------------------------------------- */

void vg_alarm_outbox_item_release(struct vg_alarm_outbox_item *it)
{
	if (!it)
		return;
	free(it->action);
	free(it->body);
	it->action = it->body = NULL;
}

int vg_alarm_store_outbox_add(struct vg_alarm_store *s, const char *notice_id,
			      const char *alarm_id, const char *project,
			      const char *action, const char *body,
			      int64_t created_ms)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = prep(s, ST_OB_ADD, &st)))
		return rc;
	vg_db_bind_text(st, 1, notice_id);
	vg_db_bind_text(st, 2, alarm_id);
	vg_db_bind_text(st, 3, project ? project : "");
	vg_db_bind_text(st, 4, action);
	vg_db_bind_text(st, 5, body);
	vg_db_bind_int64(st, 6, created_ms);
	return run(st);
}

static void copy_col(char *dst, size_t len, struct vg_db_stmt *st, int col)
{
	const char *v = vg_db_column_text(st, col);

	snprintf(dst, len, "%s", v ? v : "");
}

static int cmp_item(const void *a, const void *b)
{
	const struct vg_alarm_outbox_item *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Read the rows of a due/claim statement into items. */
static int read_items(struct vg_db_stmt *st, struct vg_alarm_outbox_item *items,
		      size_t max, size_t *n)
{
	int rc = 0;

	while (*n < max && (rc = vg_db_step(st)) == 1) {
		struct vg_alarm_outbox_item *it = &items[*n];
		const char *action = vg_db_column_text(st, 4), *body = vg_db_column_text(st, 5);
		memset(it, 0, sizeof(*it));
		it->id = vg_db_column_int64(st, 0);
		copy_col(it->notice_id, sizeof(it->notice_id), st, 1);
		copy_col(it->alarm_id, sizeof(it->alarm_id), st, 2);
		copy_col(it->project, sizeof(it->project), st, 3);
		it->action = strdup(action ? action : "");
		it->body = strdup(body ? body : "");
		it->attempts = (uint32_t)vg_db_column_int64(st, 6);
		it->created_ms = vg_db_column_int64(st, 7);
		it->next_ms = vg_db_column_int64(st, 8);
		if (!it->action || !it->body) {
			vg_alarm_outbox_item_release(it);
			vg_db_reset(st);
			return -ENOMEM;
		}
		(*n)++;
	}
	vg_db_reset(st);
	return rc < 0 ? map_rc(rc) : 0;
}

/* PostgreSQL: renew this worker's leases and claim due rows, in one
 * transaction (the claim's row locks last until it commits). */
static int claim_due(struct vg_alarm_store *s, int64_t now_ms, int64_t after_id,
		     struct vg_alarm_outbox_item *items, size_t max, size_t *n)
{
	struct vg_db_stmt *st;
	int own = !vg_db_in_transaction(s->db), rc;

	if (own && (rc = map_rc(vg_db_begin(s->db))))
		return rc;
	if (!(rc = prep(s, ST_OB_RENEW, &st))) {
		vg_db_bind_text(st, 1, s->worker);
		vg_db_bind_int64(st, 2, now_ms + VG_ALARM_OUTBOX_LEASE_MS);
		rc = run(st);
	}
	if (!rc && !(rc = prep(s, ST_OB_CLAIM, &st))) {
		vg_db_bind_int64(st, 1, now_ms);
		vg_db_bind_int64(st, 2, (int64_t)max);
		vg_db_bind_int64(st, 3, after_id);
		vg_db_bind_text(st, 4, s->worker);
		vg_db_bind_int64(st, 5, now_ms + VG_ALARM_OUTBOX_LEASE_MS);
		rc = read_items(st, items, max, n);
	}
	if (!rc && own)
		rc = map_rc(vg_db_commit(s->db));
	if (rc) {
		if (own)
			vg_alarm_store_rollback(s);
		for (size_t i = 0; i < *n; i++)
			vg_alarm_outbox_item_release(&items[i]);
		*n = 0;
		return rc;
	}
	/* RETURNING has no order: oldest first, as the cursor expects */
	qsort(items, *n, sizeof(*items), cmp_item);
	return 0;
}

int vg_alarm_store_outbox_due(struct vg_alarm_store *s, int64_t now_ms,
			      int64_t after_id, struct vg_alarm_outbox_item *items,
			      size_t max, size_t *n, int64_t *next_due_ms)
{
	struct vg_db_stmt *st;
	int rc;

	*n = 0;
	*next_due_ms = INT64_MAX;
	if (s->pg) {
		rc = claim_due(s, now_ms, after_id, items, max, n);
	} else if (!(rc = prep(s, ST_OB_DUE, &st))) {
		vg_db_bind_int64(st, 1, now_ms);
		vg_db_bind_int64(st, 2, (int64_t)max);
		vg_db_bind_int64(st, 3, after_id);
		rc = read_items(st, items, max, n);
		if (rc) {
			for (size_t i = 0; i < *n; i++)
				vg_alarm_outbox_item_release(&items[i]);
			*n = 0;
		}
	}
	if (rc)
		return rc;
	if (prep(s, s->pg ? ST_OB_NEXT_PG : ST_OB_NEXT, &st) == 0) {
		vg_db_bind_int64(st, 1, now_ms);
		if (s->pg)
			vg_db_bind_text(st, 2, s->worker);
		if (vg_db_step(st) == 1 && !vg_db_column_is_null(st, 0))
			*next_due_ms = vg_db_column_int64(st, 0);
		vg_db_reset(st);
	}
	/* PostgreSQL: other collectors add rows and workers die; read again
	 * within a second (this also renews our leases) */
	if (s->pg && *next_due_ms > now_ms + PG_RESCAN_MS)
		*next_due_ms = now_ms + PG_RESCAN_MS;
	return 0;
}

int vg_alarm_store_outbox_delivered(struct vg_alarm_store *s, int64_t id,
				    uint32_t attempts, int64_t when_ms)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = prep(s, ST_OB_DONE, &st)))
		return rc;
	vg_db_bind_int64(st, 1, id);
	vg_db_bind_int64(st, 2, attempts);
	vg_db_bind_int64(st, 3, when_ms);
	return run(st);
}

int vg_alarm_store_outbox_failed(struct vg_alarm_store *s, int64_t id,
				 uint32_t attempts, const char *error)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = prep(s, ST_OB_FAIL, &st)))
		return rc;
	vg_db_bind_int64(st, 1, id);
	vg_db_bind_int64(st, 2, attempts);
	vg_db_bind_text(st, 3, error);
	vg_db_bind_int64(st, 4, vg_now_ms());
	return run(st);
}

int vg_alarm_store_outbox_retry(struct vg_alarm_store *s, int64_t id,
				uint32_t attempts, int64_t next_ms,
				const char *error)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = prep(s, ST_OB_RETRY, &st)))
		return rc;
	vg_db_bind_int64(st, 1, id);
	vg_db_bind_int64(st, 2, attempts);
	vg_db_bind_int64(st, 3, next_ms);
	vg_db_bind_text(st, 4, error);
	return run(st);
}

/* ---- notification groups ------------------------------------------------------------ */

void vg_alarm_group_row_release(struct vg_alarm_group_row *g)
{
	if (!g)
		return;
	free(g->gkey);
	free(g->project);
	free(g->action);
	free(g->labels);
	memset(g, 0, sizeof(*g));
}

static int group_row(struct vg_db_stmt *st, struct vg_alarm_group_row *g)
{
	g->gkey = strdup(vg_db_column_text(st, 0));
	g->project = strdup(vg_db_column_text(st, 1));
	g->action = strdup(vg_db_column_text(st, 2));
	copy_col(g->alarm_id, sizeof(g->alarm_id), st, 3);
	g->labels = strdup(vg_db_column_text(st, 4));
	g->flush_ms = vg_db_column_int64(st, 5);
	g->last_flush_ms = vg_db_column_int64(st, 6);
	if (!g->gkey || !g->project || !g->action || !g->labels) {
		vg_alarm_group_row_release(g);
		return -ENOMEM;
	}
	return 0;
}

#define GROUP_COLS "gkey, project, action, alarm_id, labels, flush_ms, last_flush_ms"

int vg_alarm_store_group_get(struct vg_alarm_store *s, const char *gkey,
			     struct vg_alarm_group_row *g)
{
	struct vg_db_stmt *st;
	int rc;

	memset(g, 0, sizeof(*g));
	if ((rc = vg_db_prepare(s->db, "SELECT " GROUP_COLS " FROM notify_groups WHERE gkey = ?1",
				&st)))
		return map_rc(rc);
	vg_db_bind_text(st, 1, gkey);
	rc = vg_db_step(st);
	if (rc == 1)
		rc = group_row(st, g);
	else
		rc = rc < 0 ? map_rc(rc) : -ENOENT;
	vg_db_reset(st);
	return rc;
}

int vg_alarm_store_group_put(struct vg_alarm_store *s, const struct vg_alarm_group_row *g)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = vg_db_prepare(s->db, "INSERT INTO notify_groups (" GROUP_COLS ")"
				       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
				       " ON CONFLICT (gkey) DO UPDATE SET"
				       " flush_ms = excluded.flush_ms,"
				       " last_flush_ms = excluded.last_flush_ms",
				&st)))
		return map_rc(rc);
	vg_db_bind_text(st, 1, g->gkey);
	vg_db_bind_text(st, 2, g->project);
	vg_db_bind_text(st, 3, g->action);
	vg_db_bind_text(st, 4, g->alarm_id);
	vg_db_bind_text(st, 5, g->labels);
	vg_db_bind_int64(st, 6, g->flush_ms);
	vg_db_bind_int64(st, 7, g->last_flush_ms);
	return run(st);
}

int vg_alarm_store_group_member_add(struct vg_alarm_store *s, const char *gkey,
				    const char *body)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = vg_db_prepare(s->db, "INSERT INTO notify_group_members (gkey, body)"
				       " VALUES (?1, ?2)",
				&st)))
		return map_rc(rc);
	vg_db_bind_text(st, 1, gkey);
	vg_db_bind_text(st, 2, body);
	return run(st);
}

int vg_alarm_store_groups_due(struct vg_alarm_store *s, int64_t now_ms,
			      struct vg_alarm_group_row *rows, size_t max, size_t *n,
			      int64_t *next_ms)
{
	struct vg_db_stmt *st;
	int rc;

	*n = 0;
	*next_ms = INT64_MAX;
	if ((rc = vg_db_prepare(s->db, "SELECT " GROUP_COLS " FROM notify_groups"
				       " WHERE flush_ms > 0 AND flush_ms <= ?1"
				       " ORDER BY flush_ms, gkey LIMIT ?2",
				&st)))
		return map_rc(rc);
	vg_db_bind_int64(st, 1, now_ms);
	vg_db_bind_int64(st, 2, (int64_t)max);
	while ((rc = vg_db_step(st)) == 1 && *n < max) {
		if ((rc = group_row(st, &rows[*n])))
			break;
		(*n)++;
	}
	vg_db_reset(st);
	if (rc < 0)
		goto fail;
	if ((rc = vg_db_prepare(s->db, "SELECT MIN(flush_ms) FROM notify_groups"
				       " WHERE flush_ms > ?1",
				&st)))
		goto fail;
	vg_db_bind_int64(st, 1, now_ms);
	if ((rc = vg_db_step(st)) == 1 && !vg_db_column_is_null(st, 0))
		*next_ms = vg_db_column_int64(st, 0);
	vg_db_reset(st);
	if (rc >= 0)
		return 0;
fail:
	for (size_t i = 0; i < *n; i++)
		vg_alarm_group_row_release(&rows[i]);
	*n = 0;
	return rc == -ENOMEM ? rc : map_rc(rc);
}

int vg_alarm_store_group_claim(struct vg_alarm_store *s, const char *gkey,
			       int64_t flush_ms, int64_t new_flush_ms,
			       int64_t last_flush_ms)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = vg_db_prepare(s->db, "UPDATE notify_groups SET flush_ms = ?3,"
				       " last_flush_ms = ?4 WHERE gkey = ?1 AND flush_ms = ?2",
				&st)))
		return map_rc(rc);
	vg_db_bind_text(st, 1, gkey);
	vg_db_bind_int64(st, 2, flush_ms);
	vg_db_bind_int64(st, 3, new_flush_ms);
	vg_db_bind_int64(st, 4, last_flush_ms);
	if ((rc = run(st)))
		return rc;
	return vg_db_changes(s->db) == 1 ? 0 : -ESTALE;
}

int vg_alarm_store_group_members(struct vg_alarm_store *s, const char *gkey, size_t max,
				 json_t *out, int64_t *last_id, int *more)
{
	struct vg_db_stmt *st;
	size_t n = 0;
	int rc;

	*last_id = 0;
	*more = 0;
	if ((rc = vg_db_prepare(s->db, "SELECT id, body FROM notify_group_members"
				       " WHERE gkey = ?1 ORDER BY id LIMIT ?2",
				&st)))
		return map_rc(rc);
	vg_db_bind_text(st, 1, gkey);
	vg_db_bind_int64(st, 2, (int64_t)max + 1);
	while ((rc = vg_db_step(st)) == 1) {
		if (n == max) {
			*more = 1;
			break;
		}
		json_t *b = json_loads(vg_db_column_text(st, 1), 0, NULL);
		*last_id = vg_db_column_int64(st, 0);
		if (b)
			json_array_append_new(out, b);
		n++;
	}
	vg_db_reset(st);
	if (rc < 0)
		return map_rc(rc);
	if ((rc = vg_db_prepare(s->db, "DELETE FROM notify_group_members"
				       " WHERE gkey = ?1 AND id <= ?2",
				&st)))
		return map_rc(rc);
	vg_db_bind_text(st, 1, gkey);
	vg_db_bind_int64(st, 2, *last_id);
	return run(st);
}

int vg_alarm_store_groups_pending(struct vg_alarm_store *s, const char *project,
				  json_t **out)
{
	struct vg_db_stmt *st;
	char ts[40];
	int rc;

	*out = json_array();
	if (!*out)
		return -ENOMEM;
	if ((rc = vg_db_prepare(s->db, "SELECT g.gkey, g.project, g.action, g.alarm_id,"
				       " g.labels, g.flush_ms, g.last_flush_ms,"
				       " (SELECT COUNT(*) FROM notify_group_members m"
				       "  WHERE m.gkey = g.gkey)"
				       " FROM notify_groups g WHERE g.flush_ms > 0"
				       " AND (?1 = '' OR g.project = ?1)"
				       " ORDER BY g.flush_ms, g.gkey LIMIT 1000",
				&st))) {
		json_decref(*out);
		*out = NULL;
		return map_rc(rc);
	}
	vg_db_bind_text(st, 1, project ? project : "");
	while ((rc = vg_db_step(st)) == 1) {
		json_t *l = json_loads(vg_db_column_text(st, 4), 0, NULL);
		json_array_append_new(
			*out,
			json_pack("{s:s,s:s,s:o,s:s,s:I,s:I}", "project",
				  vg_db_column_text(st, 1), "action", vg_db_column_text(st, 2),
				  "group", l ? l : json_object(), "flush_at",
				  vg_time_format(vg_db_column_int64(st, 5), ts, sizeof(ts)),
				  "flush_at_ms", (json_int_t)vg_db_column_int64(st, 5),
				  "members", (json_int_t)vg_db_column_int64(st, 7)));
	}
	vg_db_reset(st);
	if (rc < 0) {
		json_decref(*out);
		*out = NULL;
		return map_rc(rc);
	}
	return 0;
}

int vg_alarm_store_transitioned_since(struct vg_alarm_store *s, int64_t since_ms,
				      int (*fn)(void *ctx, const char *alarm_id),
				      void *ctx)
{
	struct vg_db_stmt *st;
	int rc, ret = 0;

	rc = vg_db_prepare(s->db, "SELECT DISTINCT alarm_id FROM history WHERE "
				  "recorded_ms >= ?1 AND type = 'transition'",
			   &st);
	if (rc)
		return map_rc(rc);
	vg_db_bind_int64(st, 1, since_ms);
	while (!ret && (rc = vg_db_step(st)) == 1)
		ret = fn(ctx, vg_db_column_text(st, 0));
	vg_db_reset(st);
	if (ret)
		return ret;
	return rc < 0 ? map_rc(rc) : 0;
}

/* ---- the notification feed between cluster nodes (PostgreSQL) --------------------- */

int vg_alarm_store_notice_add(struct vg_alarm_store *s, const char *node,
			      const char *project, const char *body, int64_t recorded_ms)
{
	struct vg_db_stmt *st;
	int rc;

	if (!s->pg)
		return 0; /* one collector: its own hub has everything */
	rc = vg_db_prepare(s->db, "INSERT INTO peer_notices(node, project, body, "
				  "recorded_ms) VALUES (?1, ?2, ?3, ?4)",
			   &st);
	if (rc)
		return map_rc(rc);
	vg_db_bind_text(st, 1, node);
	vg_db_bind_text(st, 2, project);
	vg_db_bind_text(st, 3, body);
	vg_db_bind_int64(st, 4, recorded_ms);
	rc = vg_db_step(st);
	vg_db_reset(st);
	return rc < 0 ? map_rc(rc) : 0;
}

int vg_alarm_store_notices_xmin(struct vg_alarm_store *s, uint64_t *xmin)
{
	struct vg_db_stmt *st;
	int rc;

	*xmin = 0;
	if (!s->pg)
		return -ENOTSUP;
	rc = vg_db_prepare(s->db, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &st);
	if (rc)
		return map_rc(rc);
	if ((rc = vg_db_step(st)) == 1)
		*xmin = strtoull(vg_db_column_text(st, 0) ? vg_db_column_text(st, 0) : "0",
				 NULL, 10);
	vg_db_reset(st);
	return rc < 0 ? map_rc(rc) : 0;
}

int vg_alarm_store_notices_since(struct vg_alarm_store *s, const char *node,
				 uint64_t xmin, int64_t after_seq, size_t limit,
				 vg_alarm_notice_fn fn, void *ctx)
{
	struct vg_db_stmt *st;
	char xbuf[24];
	int rc, ret = 0;

	if (!s->pg)
		return -ENOTSUP;
	rc = vg_db_prepare(s->db, "SELECT seq, xid::text, project, body FROM peer_notices "
				  "WHERE xid >= ?1::xid8 AND seq > ?2 AND node <> ?3 "
				  "ORDER BY seq LIMIT ?4",
			   &st);
	if (rc)
		return map_rc(rc);
	snprintf(xbuf, sizeof(xbuf), "%llu", (unsigned long long)xmin);
	vg_db_bind_text(st, 1, xbuf);
	vg_db_bind_int64(st, 2, after_seq);
	vg_db_bind_text(st, 3, node);
	vg_db_bind_int64(st, 4, (int64_t)limit);
	while (!ret && (rc = vg_db_step(st)) == 1) {
		const char *x = vg_db_column_text(st, 1);
		ret = fn(ctx, vg_db_column_int64(st, 0), strtoull(x ? x : "0", NULL, 10),
			 vg_db_column_text(st, 2), vg_db_column_text(st, 3));
	}
	vg_db_reset(st);
	if (ret)
		return ret;
	return rc < 0 ? map_rc(rc) : 0;
}

int vg_alarm_store_notices_prune(struct vg_alarm_store *s, int64_t before_ms)
{
	if (!s->pg)
		return 0;
	struct vg_db_stmt *st;
	int rc = vg_db_prepare(s->db, "DELETE FROM peer_notices WHERE recorded_ms < ?1", &st);

	if (rc)
		return map_rc(rc);
	vg_db_bind_int64(st, 1, before_ms);
	rc = vg_db_step(st);
	vg_db_reset(st);
	return rc < 0 ? map_rc(rc) : 0;
}

/* ---- leases (clustered alarms, PostgreSQL) ---------------------------------------- */

int vg_alarm_store_leases_held(struct vg_alarm_store *s, const char *node,
			       const char *ids_csv, int (*fn)(void *ctx, const char *id),
			       void *ctx)
{
	struct vg_db_stmt *st;
	int rc;

	if (!s->pg) { /* one node owns a sqlite file */
		char *copy = strdup(ids_csv), *save = NULL;
		if (!copy)
			return -ENOMEM;
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
			fn(ctx, t);
		free(copy);
		return 0;
	}
	/* FOR SHARE: a takeover's UPDATE of these rows waits for our
	 * commit, so a decision recorded here cannot interleave with a new
	 * owner's */
	rc = vg_db_prepare(s->db, "SELECT alarm_id FROM " VG_ALARM_LEASE_TABLE " WHERE owner = ?1 AND expires_at > now() AND "
				  "alarm_id = ANY(string_to_array(?2, ',')) FOR SHARE",
			   &st);
	if (rc)
		return map_rc(rc);
	vg_db_bind_text(st, 1, node);
	vg_db_bind_text(st, 2, ids_csv);
	while ((rc = vg_db_step(st)) == 1)
		fn(ctx, vg_db_column_text(st, 0));
	vg_db_reset(st);
	return rc < 0 ? map_rc(rc) : 0;
}
