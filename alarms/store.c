/*
 * store.c — alarms.db: definitions, states, history and the notification
 * outbox in sqlite (vigie/alarm_store.h).
 *
 * Design: one handle per thread, each with its prepared statements; the
 * schema version lives in PRAGMA user_version. WAL with synchronous=FULL:
 * alarm writes are rare (transitions, definition changes, one state row
 * per evaluated period per instance, batched per agent batch), so the
 * fsync per commit is cheap and buys the outbox's durability across power
 * loss as well as kill -9.
 *
 * Invariants:
 *  - (project, name) is unique among definitions (UNIQUE index);
 *  - an outbox row moves pending -> delivered or pending -> failed once,
 *    never back; a delivered row is never handed out again, which is what
 *    makes delivery exactly-once once the receiver's 2xx is recorded;
 *  - history rows are append-only except for retention pruning.
 * sqlite's BUSY/LOCKED/FULL become -EAGAIN, other failures -EIO.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "vigie/alarm_store.h"
#include "vigie/clock.h"
#include "vigie/sqlitedb.h"

#define SCHEMA_VERSION 1
#define BUSY_TIMEOUT_MS 5000

enum {
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
	ST_DEF_PUT, ST_DEF_DEL, ST_DEF_STATES_DEL, ST_DEF_NAME,
	ST_STATE_PUT, ST_STATE_DEL,
	ST_HIST_ADD,
	ST_OB_ADD, ST_OB_DUE, ST_OB_NEXT, ST_OB_DONE, ST_OB_FAIL, ST_OB_RETRY,
	ST_COUNT
};

static const char *const sql_text[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_DEF_PUT] = "INSERT INTO alarms(id, project, name, definition, "
		       "created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
		       "ON CONFLICT(id) DO UPDATE SET project = ?2, name = ?3, "
		       "definition = ?4, updated_ms = ?6",
	[ST_DEF_DEL] = "DELETE FROM alarms WHERE id = ?1",
	[ST_DEF_STATES_DEL] = "DELETE FROM states WHERE alarm_id = ?1",
	[ST_DEF_NAME] = "SELECT id FROM alarms WHERE project = ?1 AND name = ?2 "
			"AND id <> ?3",
	[ST_STATE_PUT] = "INSERT INTO states(alarm_id, resource, state, since_ms, "
			 "clear_since_ms, alarm_periods, reason, ring, updated_ms) "
			 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
			 "ON CONFLICT(alarm_id, resource) DO UPDATE SET state = ?3, "
			 "since_ms = ?4, clear_since_ms = ?5, alarm_periods = ?6, "
			 "reason = ?7, ring = ?8, updated_ms = ?9",
	[ST_STATE_DEL] = "DELETE FROM states WHERE alarm_id = ?1 AND resource = ?2",
	[ST_HIST_ADD] = "INSERT INTO history(alarm_id, project, type, resource, "
			"time_ms, recorded_ms, detail) VALUES (?1, ?2, ?3, ?4, "
			"?5, ?6, ?7)",
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
			"last_error = ?4 WHERE id = ?1 AND state = 0",
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS alarms ("
	" id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL,"
	" definition TEXT NOT NULL, created_ms INTEGER NOT NULL,"
	" updated_ms INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX IF NOT EXISTS alarms_name ON alarms(project, name);"
	"CREATE TABLE IF NOT EXISTS states ("
	" alarm_id TEXT NOT NULL, resource TEXT NOT NULL, state INTEGER NOT NULL,"
	" since_ms INTEGER NOT NULL, clear_since_ms INTEGER NOT NULL DEFAULT 0,"
	" alarm_periods INTEGER NOT NULL DEFAULT 0, reason TEXT, ring BLOB,"
	" updated_ms INTEGER NOT NULL, PRIMARY KEY (alarm_id, resource));"
	"CREATE TABLE IF NOT EXISTS history ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT, alarm_id TEXT NOT NULL,"
	" project TEXT NOT NULL, type TEXT NOT NULL, resource TEXT,"
	" time_ms INTEGER NOT NULL, recorded_ms INTEGER NOT NULL, detail TEXT);"
	"CREATE INDEX IF NOT EXISTS history_alarm ON history(alarm_id, time_ms);"
	"CREATE INDEX IF NOT EXISTS history_recorded ON history(recorded_ms);"
	"CREATE TABLE IF NOT EXISTS outbox ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT, notice_id TEXT NOT NULL,"
	" alarm_id TEXT NOT NULL, project TEXT NOT NULL, action TEXT NOT NULL,"
	" body TEXT NOT NULL, created_ms INTEGER NOT NULL,"
	" next_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
	" state INTEGER NOT NULL DEFAULT 0, last_error TEXT, done_ms INTEGER);"
	"CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_ms);";

struct vg_alarm_store {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
};

/* vg_sqlitedb_errno, but a broken constraint is a duplicate name. */
static int map_rc(int rc)
{
	return (rc & 0xff) == SQLITE_CONSTRAINT ? -EEXIST : vg_sqlitedb_errno(rc);
}

/* version, schema, synchronous, busy timeout, errors */
static const struct vg_sqlitedb_schema alarms_schema = {
	SCHEMA_VERSION, schema, "FULL", BUSY_TIMEOUT_MS, map_rc};

const char *vg_alarm_store_errmsg(const struct vg_alarm_store *s)
{
	return s && s->db ? sqlite3_errmsg(s->db) : "no database";
}

void vg_alarm_store_close(struct vg_alarm_store *s)
{
	if (!s)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	free(s);
}

/* sqlite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries:
 * the engine commits notifications while the delivery thread records
 * deliveries, and one such sleep is a notification's whole latency budget
 * (a few ms). Retry every 50 us for the first millisecond, then every
 * millisecond, for the same total bound as before. */
static int busy_wait(void *ctx, int count)
{
	struct timespec ts = {0, count < 20 ? 50000 : 1000000};

	(void)ctx;
	if (count >= 20 + BUSY_TIMEOUT_MS)
		return 0;
	nanosleep(&ts, NULL);
	return 1;
}

int vg_alarm_store_open(const char *data_dir, struct vg_alarm_store **out,
			char *err, size_t errlen)
{
	struct vg_alarm_store *s;
	char path[4096];
	int rc;

	*out = NULL;
	if ((size_t)snprintf(path, sizeof(path), "%s/alarms.db", data_dir) >=
	    sizeof(path)) {
		snprintf(err, errlen, "alarms: data_dir too long");
		return -ENAMETOOLONG;
	}
	if (!(s = calloc(1, sizeof(*s)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if ((rc = vg_sqlitedb_open(path, &alarms_schema, &s->db, err,
				   errlen))) {
		vg_alarm_store_close(s);
		return rc;
	}
	sqlite3_busy_handler(s->db, busy_wait, NULL);
	for (int i = 0; rc == SQLITE_OK && i < ST_COUNT; i++)
		rc = sqlite3_prepare_v3(s->db, sql_text[i], -1,
					SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(s->db));
		rc = map_rc(rc);
		vg_alarm_store_close(s);
		return rc ? rc : -EIO;
	}
	*out = s;
	return 0;
}

/* Run a prepared statement that returns no rows; resets it. */
static int run(struct vg_alarm_store *s, int i)
{
	int rc = sqlite3_step(s->st[i]);

	sqlite3_reset(s->st[i]);
	sqlite3_clear_bindings(s->st[i]);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : map_rc(rc);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

int vg_alarm_store_begin(struct vg_alarm_store *s)
{
	return run(s, ST_BEGIN);
}

int vg_alarm_store_commit(struct vg_alarm_store *s)
{
	return run(s, ST_COMMIT);
}

void vg_alarm_store_rollback(struct vg_alarm_store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		run(s, ST_ROLLBACK);
}

/* ---- definitions ---------------------------------------------------------- */

int vg_alarm_store_load_defs(struct vg_alarm_store *s, vg_alarm_def_row_fn fn,
			     void *ctx)
{
	sqlite3_stmt *st;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(s->db, "SELECT id, definition, created_ms, "
				"updated_ms FROM alarms ORDER BY created_ms, id",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return map_rc(rc);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && !ret)
		ret = fn(ctx, (const char *)sqlite3_column_text(st, 0),
			 (const char *)sqlite3_column_text(st, 1),
			 sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3));
	sqlite3_finalize(st);
	if (ret)
		return ret;
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : map_rc(rc);
}

int vg_alarm_store_put_def(struct vg_alarm_store *s, const char *id,
			   const char *project, const char *name,
			   const char *json, int64_t created_ms,
			   int64_t updated_ms)
{
	sqlite3_stmt *st = s->st[ST_DEF_NAME];
	int rc;

	bind_text(st, 1, project);
	bind_text(st, 2, name);
	bind_text(st, 3, id);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_ROW)
		return -EEXIST;
	if (rc != SQLITE_DONE)
		return map_rc(rc);
	st = s->st[ST_DEF_PUT];
	bind_text(st, 1, id);
	bind_text(st, 2, project);
	bind_text(st, 3, name);
	bind_text(st, 4, json);
	sqlite3_bind_int64(st, 5, created_ms);
	sqlite3_bind_int64(st, 6, updated_ms);
	return run(s, ST_DEF_PUT);
}

int vg_alarm_store_delete_def(struct vg_alarm_store *s, const char *id)
{
	int rc;

	bind_text(s->st[ST_DEF_STATES_DEL], 1, id);
	rc = run(s, ST_DEF_STATES_DEL);
	if (rc)
		return rc;
	bind_text(s->st[ST_DEF_DEL], 1, id);
	return run(s, ST_DEF_DEL);
}

/* ---- states ------------------------------------------------------------------- */

int vg_alarm_store_load_states(struct vg_alarm_store *s,
			       vg_alarm_state_row_fn fn, void *ctx)
{
	sqlite3_stmt *st;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(s->db, "SELECT alarm_id, resource, state, "
				"since_ms, clear_since_ms, alarm_periods, reason, "
				"ring, updated_ms FROM states", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return map_rc(rc);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && !ret) {
		struct vg_alarm_state_row row = {
			.alarm_id = (const char *)sqlite3_column_text(st, 0),
			.resource = (const char *)sqlite3_column_text(st, 1),
			.state = sqlite3_column_int(st, 2),
			.since_ms = sqlite3_column_int64(st, 3),
			.clear_since_ms = sqlite3_column_int64(st, 4),
			.alarm_periods = (uint32_t)sqlite3_column_int64(st, 5),
			.reason = (const char *)sqlite3_column_text(st, 6),
			.ring = sqlite3_column_blob(st, 7),
			.ring_len = (size_t)sqlite3_column_bytes(st, 7),
			.updated_ms = sqlite3_column_int64(st, 8),
		};
		ret = fn(ctx, &row);
	}
	sqlite3_finalize(st);
	if (ret)
		return ret;
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : map_rc(rc);
}

int vg_alarm_store_put_state(struct vg_alarm_store *s,
			     const struct vg_alarm_state_row *r)
{
	sqlite3_stmt *st = s->st[ST_STATE_PUT];

	bind_text(st, 1, r->alarm_id);
	bind_text(st, 2, r->resource ? r->resource : "");
	sqlite3_bind_int(st, 3, r->state);
	sqlite3_bind_int64(st, 4, r->since_ms);
	sqlite3_bind_int64(st, 5, r->clear_since_ms);
	sqlite3_bind_int64(st, 6, r->alarm_periods);
	bind_text(st, 7, r->reason);
	if (r->ring)
		sqlite3_bind_blob(st, 8, r->ring, (int)r->ring_len, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 8);
	sqlite3_bind_int64(st, 9, r->updated_ms);
	return run(s, ST_STATE_PUT);
}

int vg_alarm_store_delete_state(struct vg_alarm_store *s, const char *alarm_id,
				const char *resource)
{
	bind_text(s->st[ST_STATE_DEL], 1, alarm_id);
	bind_text(s->st[ST_STATE_DEL], 2, resource ? resource : "");
	return run(s, ST_STATE_DEL);
}

/* ---- history -------------------------------------------------------------------- */

int vg_alarm_store_history_add(struct vg_alarm_store *s, const char *alarm_id,
			       const char *project, const char *type,
			       const char *resource, int64_t time_ms,
			       int64_t recorded_ms, const char *detail)
{
	sqlite3_stmt *st = s->st[ST_HIST_ADD];

	bind_text(st, 1, alarm_id);
	bind_text(st, 2, project ? project : "");
	bind_text(st, 3, type);
	bind_text(st, 4, resource && *resource ? resource : NULL);
	sqlite3_bind_int64(st, 5, time_ms);
	sqlite3_bind_int64(st, 6, recorded_ms);
	bind_text(st, 7, detail);
	return run(s, ST_HIST_ADD);
}

int vg_alarm_store_history(struct vg_alarm_store *s,
			   const struct vg_alarm_history_query *q, json_t **out,
			   int64_t *next_seq)
{
	sqlite3_stmt *st;
	json_t *a;
	int rc, n = 0, limit = q->limit > 0 && q->limit <= 1000 ? q->limit : 100;
	char ts[32], rs[32];

	*out = NULL;
	*next_seq = 0;
	rc = sqlite3_prepare_v2(s->db,
				"SELECT seq, type, time_ms, recorded_ms, resource, "
				"detail FROM history WHERE alarm_id = ?1 AND "
				"time_ms >= ?2 AND time_ms <= ?3 AND seq > ?4 AND "
				"(?5 IS NULL OR type = ?5) ORDER BY seq LIMIT ?6",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return map_rc(rc);
	bind_text(st, 1, q->alarm_id);
	sqlite3_bind_int64(st, 2, q->start_ms);
	sqlite3_bind_int64(st, 3, q->end_ms);
	sqlite3_bind_int64(st, 4, q->after_seq);
	bind_text(st, 5, q->type);
	sqlite3_bind_int(st, 6, limit + 1);
	if (!(a = json_array())) {
		sqlite3_finalize(st);
		return -ENOMEM;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(st, 0);
		if (n == limit) {
			*next_seq = seq - 1;
			break;
		}
		const char *detail = (const char *)sqlite3_column_text(st, 5);
		const char *res = (const char *)sqlite3_column_text(st, 4);
		json_t *d = detail ? json_loads(detail, 0, NULL) : NULL;
		int64_t t = sqlite3_column_int64(st, 2);
		vg_time_format(t, ts, sizeof(ts));
		vg_time_format(sqlite3_column_int64(st, 3), rs, sizeof(rs));
		json_array_append_new(
			a, json_pack("{s:I,s:s,s:s,s:I,s:s,s:o,s:o}", "seq",
				     (json_int_t)seq, "type",
				     (const char *)sqlite3_column_text(st, 1),
				     "time", ts, "time_ms", (json_int_t)t,
				     "recorded_at", rs, "resource",
				     res ? json_string(res) : json_null(),
				     "detail", d ? d : json_object()));
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		json_decref(a);
		return map_rc(rc);
	}
	*out = a;
	return 0;
}

int vg_alarm_store_prune(struct vg_alarm_store *s, int64_t before_ms,
			 uint64_t *deleted)
{
	sqlite3_stmt *st;
	uint64_t n = 0;
	int rc;
	static const char *const q[] = {
		"DELETE FROM history WHERE recorded_ms < ?1",
		"DELETE FROM outbox WHERE state <> 0 AND done_ms < ?1",
	};

	for (size_t i = 0; i < 2; i++) {
		rc = sqlite3_prepare_v2(s->db, q[i], -1, &st, NULL);
		if (rc != SQLITE_OK)
			return map_rc(rc);
		sqlite3_bind_int64(st, 1, before_ms);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return map_rc(rc);
		n += (uint64_t)sqlite3_changes(s->db);
	}
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
	sqlite3_stmt *st = s->st[ST_OB_ADD];

	bind_text(st, 1, notice_id);
	bind_text(st, 2, alarm_id);
	bind_text(st, 3, project ? project : "");
	bind_text(st, 4, action);
	bind_text(st, 5, body);
	sqlite3_bind_int64(st, 6, created_ms);
	return run(s, ST_OB_ADD);
}

static void copy_col(char *dst, size_t len, sqlite3_stmt *st, int col)
{
	const char *v = (const char *)sqlite3_column_text(st, col);

	snprintf(dst, len, "%s", v ? v : "");
}

int vg_alarm_store_outbox_due(struct vg_alarm_store *s, int64_t now_ms,
			      int64_t after_id, struct vg_alarm_outbox_item *items,
			      size_t max, size_t *n, int64_t *next_due_ms)
{
	sqlite3_stmt *st = s->st[ST_OB_DUE];
	int rc;

	*n = 0;
	*next_due_ms = INT64_MAX;
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	sqlite3_bind_int64(st, 3, after_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct vg_alarm_outbox_item *it = &items[*n];
		memset(it, 0, sizeof(*it));
		it->id = sqlite3_column_int64(st, 0);
		copy_col(it->notice_id, sizeof(it->notice_id), st, 1);
		copy_col(it->alarm_id, sizeof(it->alarm_id), st, 2);
		copy_col(it->project, sizeof(it->project), st, 3);
		it->action = strdup((const char *)sqlite3_column_text(st, 4));
		it->body = strdup((const char *)sqlite3_column_text(st, 5));
		it->attempts = (uint32_t)sqlite3_column_int64(st, 6);
		it->created_ms = sqlite3_column_int64(st, 7);
		it->next_ms = sqlite3_column_int64(st, 8);
		if (!it->action || !it->body) {
			vg_alarm_outbox_item_release(it);
			rc = SQLITE_NOMEM;
			break;
		}
		(*n)++;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE) {
		for (size_t i = 0; i < *n; i++)
			vg_alarm_outbox_item_release(&items[i]);
		*n = 0;
		return map_rc(rc);
	}
	st = s->st[ST_OB_NEXT];
	sqlite3_bind_int64(st, 1, now_ms);
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL)
		*next_due_ms = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return 0;
}

int vg_alarm_store_outbox_delivered(struct vg_alarm_store *s, int64_t id,
				    uint32_t attempts, int64_t when_ms)
{
	sqlite3_stmt *st = s->st[ST_OB_DONE];

	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, attempts);
	sqlite3_bind_int64(st, 3, when_ms);
	return run(s, ST_OB_DONE);
}

int vg_alarm_store_outbox_failed(struct vg_alarm_store *s, int64_t id,
				 uint32_t attempts, const char *error)
{
	sqlite3_stmt *st = s->st[ST_OB_FAIL];

	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, attempts);
	bind_text(st, 3, error);
	sqlite3_bind_int64(st, 4, vg_now_ms());
	return run(s, ST_OB_FAIL);
}

int vg_alarm_store_outbox_retry(struct vg_alarm_store *s, int64_t id,
				uint32_t attempts, int64_t next_ms,
				const char *error)
{
	sqlite3_stmt *st = s->st[ST_OB_RETRY];

	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, attempts);
	sqlite3_bind_int64(st, 3, next_ms);
	bind_text(st, 4, error);
	return run(s, ST_OB_RETRY);
}
