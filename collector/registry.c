/*
 * registry.c — the resource registry in sqlite3 (<data_dir>/registry.db).
 *
 * Design. Three tables:
 *   resources (id PK, type, host, name, parent, project, user, flavor,
 *              attributes JSON text, first_seen_ms, last_seen_ms,
 *              ended_at_ms NULL while active)
 *   metrics   ((resource_id, name) PK, kind, unit, last_value, last_time_ms)
 *   streams   ((host, stream) PK, last_seq, last_time_ms, rank): the
 *             duplicate filter, one row per stream a host used lately
 *   stream_floor (host PK, floor_ms): the newest batch time of the
 *             host's streams that were dropped from `streams`
 * and the schema version in PRAGMA user_version (2; version 1 kept one
 * stream per host and no identity time: upgrade_v1 converts it). The database runs in WAL
 * mode so the receiver's writes and the API's reads proceed together; each
 * handle keeps its prepared statements (one handle per thread). A page of
 * the resource list is two statements, not one metrics query per resource
 * (issue 12): the page's resources, and beside them one scan of the
 * metrics primary key from the page's first id, stepped together and
 * handed row by row to a visitor (vg_registry_list_visit) that writes the
 * answer, so no row is copied and no JSON value built per row; the
 * jansson answers (vg_registry_list, vg_registry_get) are built by the
 * same walk.
 *
 * Invariants:
 *  - one transaction per batch (vg_registry_update), so a batch is either
 *    fully registered or not at all; upserts are idempotent, so a re-sent
 *    batch changes nothing but last-seen times it already set.
 *  - first_seen only moves back, last_seen only forward; a metric's
 *    last_value is the one with the newest time.
 *  - identity is monotonic in time: type, host, name, parent, project,
 *    user, flavor and attributes change only for a report at or after
 *    ident_ms (the time of the report that set them), so an old batch
 *    accepted late never rewinds a resource.
 *  - ended_at: set by the first ENDED report (kept by later ones), cleared
 *    by an ACTIVE report newer than it (the resource came back).
 *  - streams.last_seq for (host, stream) only grows. A host keeps its
 *    VG_REGISTRY_STREAMS most recently acknowledged streams; committing
 *    one more drops the least recent and raises the host's floor to that
 *    stream's newest batch time. A batch of a stream the host does not
 *    keep is a duplicate if its time is at or before the floor: every
 *    acknowledged batch of a dropped stream is, so none is ever accepted
 *    twice (docs/security.md "Replays").
 *  - sqlite's BUSY, LOCKED and FULL become -EAGAIN (the batch is retried).
 * Stream ids and sequence numbers are stored as sqlite's signed 64-bit
 * integers (same bits); sequence numbers are compared in SQL, so they must
 * stay below 2^63, which a counter starting at 1 does.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "vigie/batch.h"
#include "vigie/catalog.h"
#include "vigie/clock.h"
#include "vigie/hash.h"
#include "collector/lastval.h"
#include "vigie/name.h"
#include "vigie/registry.h"
#include "vigie/sqlitedb.h"

#define SCHEMA_VERSION 2
#define BUSY_TIMEOUT_MS 2000
/* How often the receiver writes the newest values of the series that
 * changed (see lastval.h). At 100,000 series sending every second this
 * turns 100,000 upserts a second into 100,000 every 10 s; after a kill -9
 * a last_value may be this old until the series' next sample. */
#define LASTVAL_FLUSH_MS 10000

/* Filter bits for the cached list statements. */
enum {
	F_TYPE = 1 << 0,
	F_HOST = 1 << 1,
	F_PROJECT = 1 << 2,
	F_NAME = 1 << 3,
	F_STATE = 1 << 4,
	F_PARENT = 1 << 5,
	F_AFTER = 1 << 6,
	F_ALL = 1 << 7,
};

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SEEN,
	ST_FLOOR,
	ST_ACK,
	ST_RAISE_FLOOR,
	ST_PRUNE,
	ST_RES_UPSERT,
	ST_RES_SEEN,
	ST_METRIC_UPSERT,
	ST_GET,
	ST_METRICS_OF,
	ST_LOOKUP,
	ST_VISIBLE,
	ST_COUNT
};

#define RES_COLUMNS                                                          \
	"id, type, host, name, parent, project, user, flavor, attributes, " \
	"first_seen_ms, last_seen_ms, ended_at_ms"

static const char *const sql_text[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SEEN] = "SELECT last_seq FROM streams WHERE host = ?1 AND "
		    "stream = ?2",
	[ST_FLOOR] = "SELECT floor_ms FROM stream_floor WHERE host = ?1",
	/* ?1 host ?2 stream ?3 seq ?4 batch time: the stream becomes the
	 * host's most recent (highest rank) */
	[ST_ACK] =
		"INSERT INTO streams(host, stream, last_seq, last_time_ms, rank) "
		"VALUES(?1, ?2, ?3, ?4, (SELECT coalesce(max(rank), 0) + 1 "
		"FROM streams WHERE host = ?1)) "
		"ON CONFLICT(host, stream) DO UPDATE SET "
		"last_seq = max(last_seq, excluded.last_seq), "
		"last_time_ms = max(last_time_ms, excluded.last_time_ms), "
		"rank = excluded.rank",
	/* ?1 host ?2 streams kept: the floor takes the newest time of the
	 * streams beyond the kept ones, which ST_PRUNE then deletes */
	[ST_RAISE_FLOOR] =
		"INSERT INTO stream_floor(host, floor_ms) "
		"SELECT ?1, max(last_time_ms) FROM streams WHERE host = ?1 AND "
		"rank <= (SELECT rank FROM streams WHERE host = ?1 "
		"ORDER BY rank DESC LIMIT 1 OFFSET ?2) HAVING count(*) > 0 "
		"ON CONFLICT(host) DO UPDATE SET "
		"floor_ms = max(floor_ms, excluded.floor_ms)",
	[ST_PRUNE] =
		"DELETE FROM streams WHERE host = ?1 AND rank <= "
		"(SELECT rank FROM streams WHERE host = ?1 "
		"ORDER BY rank DESC LIMIT 1 OFFSET ?2)",
	/* ?1 id ?2 type ?3 host ?4 name ?5 parent ?6 project ?7 user
	 * ?8 flavor ?9 attributes ?10 time ?11 ended (0/1) */
	[ST_RES_UPSERT] =
		"INSERT INTO resources(" RES_COLUMNS ", ident_ms) VALUES(?1, ?2, ?3, "
		"?4, ?5, coalesce(?6, 'default'), ?7, ?8, coalesce(?9, '{}'), ?10, "
		"?10, CASE WHEN ?11 THEN ?10 END, ?10) "
		"ON CONFLICT(id) DO UPDATE SET "
		/* identity: only from a report at or after the one that set it
		 * (every right-hand side reads the row before the update) */
		"type = CASE WHEN ?10 >= ident_ms THEN excluded.type ELSE type END, "
		"host = CASE WHEN ?10 >= ident_ms THEN excluded.host ELSE host END, "
		"name = CASE WHEN ?10 >= ident_ms THEN coalesce(?4, name) "
		"ELSE name END, "
		"parent = CASE WHEN ?10 >= ident_ms THEN coalesce(?5, parent) "
		"ELSE parent END, "
		"project = CASE WHEN ?10 >= ident_ms THEN coalesce(?6, project) "
		"ELSE project END, "
		"user = CASE WHEN ?10 >= ident_ms THEN coalesce(?7, user) "
		"ELSE user END, "
		"flavor = CASE WHEN ?10 >= ident_ms THEN coalesce(?8, flavor) "
		"ELSE flavor END, "
		"attributes = CASE WHEN ?10 >= ident_ms THEN "
		"coalesce(?9, attributes) ELSE attributes END, "
		"ident_ms = max(ident_ms, ?10), "
		"first_seen_ms = min(first_seen_ms, ?10), "
		"last_seen_ms = CASE WHEN ?11 THEN last_seen_ms "
		"ELSE max(last_seen_ms, ?10) END, "
		"ended_at_ms = CASE WHEN ?11 THEN coalesce(ended_at_ms, ?10) "
		"WHEN ended_at_ms IS NOT NULL AND ?10 > ended_at_ms THEN NULL "
		"ELSE ended_at_ms END "
		/* ended_at_ms itself: "ended_at_ms IS NOT NULL" here gives 1
		 * for a NULL in sqlite 3.40.1 (Debian 12) */
		"RETURNING first_seen_ms, ended_at_ms, ident_ms = ?10",
	[ST_RES_SEEN] = "UPDATE resources SET last_seen_ms = "
			"max(last_seen_ms, ?2) WHERE id = ?1",
	[ST_METRIC_UPSERT] =
		"INSERT INTO metrics(resource_id, name, kind, unit, last_value, "
		"last_time_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
		"ON CONFLICT(resource_id, name) DO UPDATE SET "
		"kind = excluded.kind, unit = excluded.unit, "
		"last_value = CASE WHEN excluded.last_time_ms >= last_time_ms "
		"THEN excluded.last_value ELSE last_value END, "
		"last_time_ms = max(last_time_ms, excluded.last_time_ms)",
	[ST_GET] = "SELECT " RES_COLUMNS " FROM resources WHERE id = ?1",
	[ST_METRICS_OF] = "SELECT name, kind, unit, last_value, last_time_ms "
			  "FROM metrics WHERE resource_id = ?1 ORDER BY name",
	[ST_LOOKUP] = "SELECT type, project FROM resources WHERE id = ?1",
	[ST_VISIBLE] = "SELECT type FROM resources WHERE id = ?1 AND "
		       "(?2 IS NULL OR project = ?2)",
};

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS resources ("
	" id TEXT PRIMARY KEY NOT NULL,"
	" type INTEGER NOT NULL,"
	" host TEXT NOT NULL,"
	" name TEXT, parent TEXT,"
	" project TEXT NOT NULL DEFAULT 'default',"
	" user TEXT, flavor TEXT,"
	" attributes TEXT NOT NULL DEFAULT '{}',"
	" first_seen_ms INTEGER NOT NULL,"
	" last_seen_ms INTEGER NOT NULL,"
	" ended_at_ms INTEGER,"
	" ident_ms INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS resources_type ON resources(type, id);"
	"CREATE INDEX IF NOT EXISTS resources_host ON resources(host, id);"
	"CREATE INDEX IF NOT EXISTS resources_project ON resources(project, id);"
	"CREATE INDEX IF NOT EXISTS resources_parent ON resources(parent, id);"
	"CREATE TABLE IF NOT EXISTS metrics ("
	" resource_id TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" kind INTEGER NOT NULL,"
	" unit TEXT NOT NULL DEFAULT '',"
	" last_value REAL,"
	" last_time_ms INTEGER NOT NULL,"
	" PRIMARY KEY (resource_id, name)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS streams ("
	" host TEXT NOT NULL,"
	" stream INTEGER NOT NULL,"
	" last_seq INTEGER NOT NULL,"
	" last_time_ms INTEGER NOT NULL,"
	" rank INTEGER NOT NULL,"
	" PRIMARY KEY (host, stream)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS stream_floor ("
	" host TEXT PRIMARY KEY NOT NULL,"
	" floor_ms INTEGER NOT NULL);";

/* Version 1 -> 2: every stream a host used (not only the last), and the
 * time of each resource's identity. A stream of version 1 gets the
 * newest last_seen of its host's resources as its time (the best bound
 * there is); a resource's identity time is its last_seen. */
static const char upgrade_v1[] =
	"ALTER TABLE streams RENAME TO streams_v1;"
	"CREATE TABLE streams ("
	" host TEXT NOT NULL,"
	" stream INTEGER NOT NULL,"
	" last_seq INTEGER NOT NULL,"
	" last_time_ms INTEGER NOT NULL,"
	" rank INTEGER NOT NULL,"
	" PRIMARY KEY (host, stream)) WITHOUT ROWID;"
	"INSERT INTO streams SELECT host, stream, last_seq, "
	"(SELECT coalesce(max(last_seen_ms), 0) FROM resources "
	"WHERE resources.host = streams_v1.host), 1 FROM streams_v1;"
	"DROP TABLE streams_v1;"
	"ALTER TABLE resources ADD COLUMN ident_ms INTEGER NOT NULL DEFAULT 0;"
	"UPDATE resources SET ident_ms = last_seen_ms;";
static const char *const upgrades[SCHEMA_VERSION] = {[1] = upgrade_v1};

struct vg_registry {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	sqlite3_stmt *list[F_ALL]; /* by filter mask, prepared on first use */
	sqlite3_stmt *page_metrics; /* the metrics of a page's id range */
	struct vg_lastval *lv;     /* shared by the handles of this data dir */
	int64_t flushed_ms;        /* monotonic time of the last flush */
	int wrote;                 /* this handle recorded samples */
	struct vg_registry_stats stats;
	/* this transaction's work, to undo in lv on rollback */
	struct vg_lastval_row *rows; /* dirty rows being written */
	size_t nrows, caprows;
	void **fres, **fmet;         /* cache entries whose rows it wrote */
	size_t nfres, capfres, nfmet, capfmet;
};

/* vg_sqlitedb_errno, but a rejected value is the caller's -EINVAL. */
static int map_err(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
	case SQLITE_TOOBIG:
		return -EINVAL;
	default:
		return vg_sqlitedb_errno(rc);
	}
}

/* Prepare (once) and reset statement i. */
static sqlite3_stmt *stmt(struct vg_registry *r, int i)
{
	if (!r->st[i] &&
	    sqlite3_prepare_v3(r->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT,
			       &r->st[i], NULL) != SQLITE_OK)
		return NULL;
	sqlite3_reset(r->st[i]);
	sqlite3_clear_bindings(r->st[i]);
	return r->st[i];
}

/* Run a statement that returns no rows. 0 or -errno. */
static int exec_done(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : map_err(rc ? rc : SQLITE_ERROR);
}

static int exec_simple(struct vg_registry *r, int i)
{
	sqlite3_stmt *s = stmt(r, i);

	return s ? exec_done(s) : map_err(sqlite3_errcode(r->db));
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

/* ---- open / close ---------------------------------------------------------- */

/* version, schema, synchronous, busy timeout, errors */
static const struct vg_sqlitedb_schema registry_schema = {
	SCHEMA_VERSION, schema_sql, "NORMAL", BUSY_TIMEOUT_MS, map_err};

int vg_registry_open(const char *data_dir, struct vg_registry **out,
		     char *err, size_t errlen)
{
	struct vg_registry *r;
	char path[4096];
	int rc;

	*out = NULL;
	if (!data_dir || !*data_dir) {
		snprintf(err, errlen, "registry: no data directory");
		return -EINVAL;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/registry.db", data_dir) >=
	    sizeof(path)) {
		snprintf(err, errlen, "registry: data directory path too long");
		return -ENAMETOOLONG;
	}
	if (!(r = calloc(1, sizeof(*r)))) {
		snprintf(err, errlen, "registry: out of memory");
		return -ENOMEM;
	}
	if ((rc = vg_sqlitedb_open_upgrade(path, &registry_schema, upgrades,
					   &r->db, err, errlen))) {
		vg_registry_close(r);
		return rc;
	}
	{
		char *real = realpath(data_dir, NULL);
		r->lv = vg_lastval_open(real ? real : data_dir);
		free(real);
	}
	if (!r->lv) {
		snprintf(err, errlen, "registry: out of memory");
		vg_registry_close(r);
		return -ENOMEM;
	}
	r->flushed_ms = vg_monotonic_ms();
	*out = r;
	return 0;
}

void vg_registry_close(struct vg_registry *r)
{
	if (!r)
		return;
	if (r->wrote)
		vg_registry_flush(r); /* best effort: the RRD files have the data */
	vg_lastval_close(r->lv);
	free(r->rows);
	free(r->fres);
	free(r->fmet);
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(r->st[i]);
	for (int i = 0; i < F_ALL; i++)
		sqlite3_finalize(r->list[i]);
	sqlite3_finalize(r->page_metrics);
	sqlite3_close(r->db);
	free(r);
}

/* ---- duplicate filter ------------------------------------------------------ */

int vg_registry_seen(struct vg_registry *r, const char *host, uint64_t stream,
		     uint64_t seq, int64_t time_ms)
{
	sqlite3_stmt *s;
	int rc, seen = 0;

	if (!r || !host)
		return -EINVAL;
	if (!(s = stmt(r, ST_SEEN)))
		return map_err(sqlite3_errcode(r->db));
	bind_text(s, 1, host);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)stream);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		seen = seq <= (uint64_t)sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
		return seen;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return map_err(rc);
	/* a stream the host does not keep: new, or dropped long ago */
	if (!(s = stmt(r, ST_FLOOR)))
		return map_err(sqlite3_errcode(r->db));
	bind_text(s, 1, host);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		seen = time_ms <= sqlite3_column_int64(s, 0);
	else if (rc != SQLITE_DONE)
		seen = map_err(rc);
	sqlite3_reset(s);
	return seen;
}

int vg_registry_commit(struct vg_registry *r, const char *host,
		       uint64_t stream, uint64_t seq, int64_t time_ms)
{
	static const int steps[] = {ST_ACK, ST_RAISE_FLOOR, ST_PRUNE};
	sqlite3_stmt *s;
	int rc;

	if (!r || !host)
		return -EINVAL;
	if ((rc = exec_simple(r, ST_BEGIN)))
		return rc;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]) && !rc; i++) {
		if (!(s = stmt(r, steps[i]))) {
			rc = map_err(sqlite3_errcode(r->db));
			break;
		}
		bind_text(s, 1, host);
		if (steps[i] == ST_ACK) {
			sqlite3_bind_int64(s, 2, (sqlite3_int64)stream);
			sqlite3_bind_int64(s, 3, (sqlite3_int64)seq);
			sqlite3_bind_int64(s, 4, time_ms);
		} else {
			sqlite3_bind_int(s, 2, VG_REGISTRY_STREAMS);
		}
		rc = exec_done(s);
	}
	if (!rc)
		rc = exec_simple(r, ST_COMMIT);
	if (rc && !sqlite3_get_autocommit(r->db))
		exec_simple(r, ST_ROLLBACK);
	return rc;
}

/* ---- update from a batch --------------------------------------------------- */

/* The resource's attributes as JSON text (malloc'd), NULL if it has none.
 * Sets *rc to -ENOMEM on failure. */
static char *attrs_json(const struct vg_batch *b, const struct vg_resource *res,
			int *rc)
{
	const struct vg_attr *a = vg_resource_attrs(b, res);
	json_t *o;
	char *text;

	if (!res->nattrs)
		return NULL;
	if (!(o = json_object())) {
		*rc = -ENOMEM;
		return NULL;
	}
	for (uint32_t i = 0; i < res->nattrs; i++)
		if (a[i].key && a[i].value)
			json_object_set_new(o, a[i].key, json_string(a[i].value));
	text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	if (!text)
		*rc = -ENOMEM;
	return text;
}

static int push_ptr(void ***v, size_t *n, size_t *cap, void *p)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 256;
		void **nv = realloc(*v, c * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = p;
	return 0;
}

/* Upsert one metrics row (the newest value wins). */
static int write_metric(struct vg_registry *r, const char *id,
			const char *metric, int kind, const char *unit,
			double value, int64_t time_ms)
{
	sqlite3_stmt *s = stmt(r, ST_METRIC_UPSERT);

	if (!s)
		return map_err(sqlite3_errcode(r->db));
	bind_text(s, 1, id);
	bind_text(s, 2, metric);
	sqlite3_bind_int(s, 3, kind);
	bind_text(s, 4, unit);
	if (isfinite(value))
		sqlite3_bind_double(s, 5, value);
	else
		sqlite3_bind_null(s, 5);
	sqlite3_bind_int64(s, 6, time_ms);
	return exec_done(s);
}

/* 64-bit FNV-1a over the identity a resource row holds; a NULL field
 * hashes differently from "" (it keeps the row's value, "" replaces it).
 * Never 0 (0 means "unknown" in the cache). */
static uint64_t fnv64(uint64_t h, const char *v)
{
	if (!v)
		return (h ^ 0xffu) * VG_FNV_PRIME;
	return vg_fnv1a(h, v) * VG_FNV_PRIME; /* ^ 0: the terminator */
}

static uint64_t ident_of(const struct vg_batch *b, const struct vg_resource *res)
{
	const struct vg_attr *a = vg_resource_attrs(b, res);
	uint64_t h = VG_FNV_OFFSET ^ (uint64_t)res->type;
	const char *f[] = {b->host, res->name, res->parent, res->project,
			   res->user, res->flavor};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		h = fnv64(h, f[i]);
	h = (h ^ res->nattrs) * VG_FNV_PRIME;
	for (uint32_t i = 0; i < res->nattrs; i++)
		h = fnv64(fnv64(h, a[i].key), a[i].value);
	return h ? h : 1;
}

/* The resource row upsert; the cache learns what the row holds now. */
static int write_resource(struct vg_registry *r, const struct vg_batch *b,
			  const struct vg_resource *res, struct vg_lastval_resource *c,
			  uint64_t ident)
{
	sqlite3_stmt *s;
	char *attrs;
	int rc = 0, took = 0;

	attrs = attrs_json(b, res, &rc);
	if (rc)
		return rc;
	if (!(s = stmt(r, ST_RES_UPSERT))) {
		free(attrs);
		return map_err(sqlite3_errcode(r->db));
	}
	bind_text(s, 1, res->id);
	sqlite3_bind_int(s, 2, res->type);
	bind_text(s, 3, b->host);
	bind_text(s, 4, res->name);
	bind_text(s, 5, res->parent);
	bind_text(s, 6, res->project);
	bind_text(s, 7, res->user);
	bind_text(s, 8, res->flavor);
	bind_text(s, 9, attrs);
	sqlite3_bind_int64(s, 10, res->time_ms);
	sqlite3_bind_int(s, 11, res->state == VG_RSTATE_ENDED);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) { /* first_seen_ms, ended_at_ms, took identity */
		c->first_seen = sqlite3_column_int64(s, 0);
		c->ended = sqlite3_column_type(s, 1) != SQLITE_NULL;
		took = sqlite3_column_int(s, 2);
		rc = sqlite3_step(s);
	}
	sqlite3_reset(s);
	free(attrs);
	if (rc != SQLITE_DONE)
		return map_err(rc ? rc : SQLITE_ERROR);
	/* an older report left the row's newer identity: the cache must not
	 * believe the row holds this one (the next report writes again) */
	c->ident = took ? ident : 0;
	r->stats.resource_rows++;
	if (res->state != VG_RSTATE_ENDED && res->time_ms > c->last_seen)
		c->last_seen = res->time_ms; /* the row has it */
	return push_ptr(&r->fres, &r->nfres, &r->capfres, c);
}

/* Register one resource of a batch. The fast path (an active resource
 * whose row already holds this identity, and known metrics) writes
 * nothing: the new last_seen and values wait in the cache. */
static int update_resource(struct vg_registry *r, const struct vg_batch *b,
			   const struct vg_resource *res)
{
	const struct vg_sample *smp = vg_resource_samples(b, res);
	struct vg_lastval *t = r->lv;
	struct vg_lastval_resource *c;
	uint64_t ident;
	int rc = 0;

	if (!vg_name_valid(res->id) || !vg_rtype_name(res->type))
		return 0; /* refused by the store too; nothing to register */
	ident = ident_of(b, res);
	vg_lastval_lock(t);
	if (!(c = vg_lastval_res(t, res->id, 1))) {
		rc = -ENOMEM;
	} else if (c->ident == ident && !c->ended &&
		   res->state != VG_RSTATE_ENDED && res->time_ms >= c->first_seen) {
		rc = vg_lastval_seen(t, c, res->time_ms);
	} else {
		rc = write_resource(r, b, res, c, ident);
	}
	for (uint32_t i = 0; i < res->nsamples && !rc; i++) {
		struct vg_lastval_series *m;
		const struct vg_metric_def *def;
		const char *unit;

		if (!vg_name_valid(smp[i].metric) || !vg_kind_name(smp[i].kind))
			continue;
		if (!(m = vg_lastval_metric(t, c, smp[i].metric, (int)i, 1))) {
			rc = -ENOMEM;
			break;
		}
		if (m->kind == smp[i].kind) { /* the row exists: memory only */
			rc = vg_lastval_value(t, m, smp[i].value, res->time_ms);
			continue;
		}
		def = vg_catalog_find(res->type, smp[i].metric);
		unit = def && def->unit ? def->unit : "";
		rc = write_metric(r, res->id, smp[i].metric, smp[i].kind, unit,
				  smp[i].value, res->time_ms);
		if (rc || (rc = push_ptr(&r->fmet, &r->nfmet, &r->capfmet, m)))
			break;
		r->stats.metric_rows++;
		m->kind = smp[i].kind;
		m->unit = unit;
		if (res->time_ms >= m->time_ms) { /* the row has it */
			m->value = isfinite(smp[i].value) ? smp[i].value : NAN;
			m->time_ms = res->time_ms;
		}
	}
	vg_lastval_unlock(t);
	return rc;
}

/* Take every dirty value out of the cache and write it in the open
 * transaction; on failure undo_lastval puts them back. */
static int flush_rows(struct vg_registry *r)
{
	size_t n;
	int rc = 0;

	vg_lastval_lock(r->lv);
	n = vg_lastval_dirty_rows(r->lv);
	if (r->caprows < n) {
		struct vg_lastval_row *p = realloc(r->rows, n * sizeof(*p));
		if (!p) {
			vg_lastval_unlock(r->lv);
			return -ENOMEM;
		}
		r->rows = p;
		r->caprows = n;
	}
	r->nrows = vg_lastval_take_dirty(r->lv, r->rows);
	vg_lastval_unlock(r->lv);
	/* names live as long as the cache and values are snapshots: no lock
	 * is needed while writing (only this thread changes kinds and units) */
	r->stats.flushed_values += r->nrows;
	for (size_t i = 0; i < r->nrows && !rc; i++) {
		const struct vg_lastval_row *w = &r->rows[i];
		sqlite3_stmt *s;

		if (w->m) {
			rc = write_metric(r, w->res->id, w->m->name, w->m->kind,
					  w->m->unit, w->value, w->time_ms);
			continue;
		}
		if (!(s = stmt(r, ST_RES_SEEN)))
			return map_err(sqlite3_errcode(r->db));
		bind_text(s, 1, w->res->id);
		sqlite3_bind_int64(s, 2, w->time_ms);
		rc = exec_done(s);
	}
	return rc;
}

/* The transaction rolled back: the cache must not believe the rows it
 * wrote exist, and the values it took must be written again. */
static void undo_lastval(struct vg_registry *r)
{
	vg_lastval_lock(r->lv);
	vg_lastval_redirty(r->lv, r->rows, r->nrows);
	for (size_t i = 0; i < r->nfres; i++)
		((struct vg_lastval_resource *)r->fres[i])->ident = 0;
	for (size_t i = 0; i < r->nfmet; i++)
		((struct vg_lastval_series *)r->fmet[i])->kind = -1;
	vg_lastval_unlock(r->lv);
	r->flushed_ms = 0; /* retry the taken values with the next batch */
}

/* One transaction: the due flush, then the batch (NULL: flush only). */
static int in_transaction(struct vg_registry *r, const struct vg_batch *b,
			  int flush)
{
	int rc;

	r->nrows = r->nfres = r->nfmet = 0;
	if ((rc = exec_simple(r, ST_BEGIN)))
		return rc;
	if (flush)
		rc = flush_rows(r);
	for (size_t i = 0; b && !rc && i < b->nres; i++)
		rc = update_resource(r, b, &b->res[i]);
	if (!rc)
		rc = exec_simple(r, ST_COMMIT);
	if (rc) {
		if (!sqlite3_get_autocommit(r->db))
			exec_simple(r, ST_ROLLBACK);
		undo_lastval(r);
	} else if (flush) {
		r->flushed_ms = vg_monotonic_ms();
	}
	r->nrows = r->nfres = r->nfmet = 0;
	return rc;
}

int vg_registry_update(struct vg_registry *r, const struct vg_batch *b)
{
	if (!r || !b || !b->host)
		return -EINVAL;
	r->wrote = 1;
	return in_transaction(r, b,
			      vg_monotonic_ms() - r->flushed_ms >= LASTVAL_FLUSH_MS);
}

int vg_registry_flush(struct vg_registry *r)
{
	if (!r)
		return -EINVAL;
	return in_transaction(r, NULL, 1);
}

void vg_registry_stats(const struct vg_registry *r,
		       struct vg_registry_stats *out)
{
	*out = r->stats;
}

static int consumer_batch(void *ctx, const struct vg_batch *b)
{
	return vg_registry_update(ctx, b);
}

struct vg_consumer vg_registry_consumer(struct vg_registry *r)
{
	struct vg_consumer c = {
		.name = "registry",
		.ctx = r,
		.batch = consumer_batch,
		.tick = NULL,
	};
	return c;
}

/* ---- reading ----------------------------------------------------------------- */

/* The resource on the current row of s (columns RES_COLUMNS); c is its
 * last-value cache entry (lv locked) or NULL. */
static void res_row(sqlite3_stmt *s, struct vg_lastval_resource *c,
		    struct vg_registry_res *o)
{
	o->id = (const char *)sqlite3_column_text(s, 0);
	o->type = sqlite3_column_int(s, 1);
	o->host = (const char *)sqlite3_column_text(s, 2);
	o->name = (const char *)sqlite3_column_text(s, 3);
	o->parent = (const char *)sqlite3_column_text(s, 4);
	o->project = (const char *)sqlite3_column_text(s, 5);
	o->user = (const char *)sqlite3_column_text(s, 6);
	o->flavor = (const char *)sqlite3_column_text(s, 7);
	o->attributes = (const char *)sqlite3_column_text(s, 8);
	o->has_first_seen = sqlite3_column_type(s, 9) != SQLITE_NULL;
	o->first_seen_ms = sqlite3_column_int64(s, 9);
	o->last_seen_ms = sqlite3_column_int64(s, 10);
	/* a newer last_seen not yet written to the database */
	if (c && c->last_seen > o->last_seen_ms)
		o->last_seen_ms = c->last_seen;
	o->ended = sqlite3_column_type(s, 11) != SQLITE_NULL;
	o->ended_at_ms = sqlite3_column_int64(s, 11);
}

/* The metric on the current row of s, whose columns from col on are name,
 * kind, unit, last_value, last_time_ms; c is the resource's last-value
 * cache entry (lv locked) or NULL. */
static void metric_row(struct vg_registry *r, struct vg_lastval_resource *c,
		       sqlite3_stmt *s, int col, struct vg_registry_metric *m)
{
	struct vg_lastval_series *lm;

	m->name = (const char *)sqlite3_column_text(s, col);
	m->kind = sqlite3_column_int(s, col + 1);
	m->unit = (const char *)sqlite3_column_text(s, col + 2);
	m->last_value = sqlite3_column_type(s, col + 3) == SQLITE_NULL
				? NAN
				: sqlite3_column_double(s, col + 3);
	m->last_time_ms = sqlite3_column_int64(s, col + 4);
	/* a newer value not yet written to the database */
	if (c && m->name &&
	    (lm = vg_lastval_metric(r->lv, c, m->name, -1, 0)) &&
	    lm->time_ms > m->last_time_ms) {
		m->last_value = lm->value;
		m->last_time_ms = lm->time_ms;
	}
}

static json_t *text_json(const char *t)
{
	return t ? json_string(t) : json_null();
}

static json_t *time_json(int has, int64_t ms)
{
	char buf[32];

	return has ? json_string(vg_time_format(ms, buf, sizeof(buf)))
		   : json_null();
}

/* {"unit","kind","last_value","last_time"}; NULL when out of memory. */
static json_t *metric_json(const struct vg_registry_metric *m)
{
	const char *kind = vg_kind_name(m->kind);
	json_t *e = json_object();

	if (!e)
		return NULL;
	json_object_set_new(e, "unit", text_json(m->unit));
	json_object_set_new(e, "kind", kind ? json_string(kind) : json_null());
	json_object_set_new(e, "last_value", isfinite(m->last_value)
						     ? json_real(m->last_value)
						     : json_null());
	json_object_set_new(e, "last_time", time_json(1, m->last_time_ms));
	return e;
}

/* The resource's JSON object without "metrics"; NULL when out of memory. */
static json_t *resource_base(const struct vg_registry_res *res)
{
	const char *type = vg_rtype_name(res->type);
	json_t *o = json_object(), *a = NULL;

	if (!o)
		return NULL;
	json_object_set_new(o, "id", text_json(res->id));
	json_object_set_new(o, "type", type ? json_string(type) : json_null());
	json_object_set_new(o, "host", text_json(res->host));
	json_object_set_new(o, "name", text_json(res->name));
	json_object_set_new(o, "parent", text_json(res->parent));
	json_object_set_new(o, "project", text_json(res->project));
	json_object_set_new(o, "user", text_json(res->user));
	json_object_set_new(o, "flavor", text_json(res->flavor));
	json_object_set_new(o, "state",
			    json_string(res->ended ? "ended" : "active"));
	json_object_set_new(o, "first_seen",
			    time_json(res->has_first_seen, res->first_seen_ms));
	json_object_set_new(o, "last_seen", time_json(1, res->last_seen_ms));
	json_object_set_new(o, "ended_at",
			    time_json(res->ended, res->ended_at_ms));
	if (res->attributes)
		a = json_loads(res->attributes, 0, NULL);
	if (!json_is_object(a)) {
		json_decref(a);
		a = json_object();
	}
	json_object_set_new(o, "attributes", a);
	return o;
}

/* The metrics of resource id, one statement, to v (lv locked). */
static int each_metric(struct vg_registry *r, const char *id,
		       struct vg_lastval_resource *c, const struct vg_registry_visitor *v)
{
	sqlite3_stmt *s = stmt(r, ST_METRICS_OF);
	struct vg_registry_metric m;
	int rc;

	if (!s)
		return map_err(sqlite3_errcode(r->db));
	bind_text(s, 1, id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		metric_row(r, c, s, 0, &m);
		if ((rc = v->metric(v->ctx, &m))) {
			sqlite3_reset(s);
			return rc;
		}
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : map_err(rc);
}

/* Building jansson values from the visitor's calls. */
struct json_builder {
	json_t *arr;     /* vg_registry_list's page, or NULL */
	json_t *one;     /* vg_registry_get's resource */
	json_t *metrics; /* of the resource being read */
};

static int jb_resource(void *ctx, const struct vg_registry_res *res)
{
	struct json_builder *jb = ctx;
	json_t *o = resource_base(res);

	if (!o || !(jb->metrics = json_object())) {
		json_decref(o);
		return -ENOMEM;
	}
	json_object_set_new(o, "metrics", jb->metrics);
	if (jb->arr)
		json_array_append_new(jb->arr, o);
	else
		jb->one = o;
	return 0;
}

static int jb_metric(void *ctx, const struct vg_registry_metric *m)
{
	struct json_builder *jb = ctx;
	json_t *e = metric_json(m);

	if (!e)
		return -ENOMEM;
	/* a name jansson refuses (not UTF-8) leaves the metric out */
	json_object_set_new(jb->metrics, m->name, e);
	return 0;
}

static int jb_end(void *ctx)
{
	(void)ctx;
	return 0;
}

int vg_registry_get(struct vg_registry *r, const char *id, json_t **out)
{
	struct json_builder jb = {0};
	struct vg_registry_visitor v = {jb_resource, jb_metric, jb_end, &jb};
	struct vg_registry_res res;
	struct vg_lastval_resource *c;
	sqlite3_stmt *s;
	int rc;

	*out = NULL;
	if (!r || !id)
		return -EINVAL;
	if (!(s = stmt(r, ST_GET)))
		return map_err(sqlite3_errcode(r->db));
	bind_text(s, 1, id);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return rc == SQLITE_DONE ? -ENOENT : map_err(rc);
	}
	vg_lastval_lock(r->lv);
	c = vg_lastval_res(r->lv, id, 0);
	res_row(s, c, &res);
	/* each_metric uses another statement; s stays on its row. */
	if (!(rc = jb_resource(&jb, &res)))
		rc = each_metric(r, id, c, &v);
	vg_lastval_unlock(r->lv);
	sqlite3_reset(s);
	if (rc) {
		json_decref(jb.one);
		return rc;
	}
	*out = jb.one;
	return 0;
}

int vg_registry_lookup(struct vg_registry *r, const char *id, int *rtype,
		       char *project, size_t projectlen)
{
	sqlite3_stmt *s;
	int rc;

	if (!r || !id)
		return -EINVAL;
	if (!(s = stmt(r, ST_LOOKUP)))
		return map_err(sqlite3_errcode(r->db));
	bind_text(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const char *p = (const char *)sqlite3_column_text(s, 1);
		if (rtype)
			*rtype = sqlite3_column_int(s, 0);
		if (project && projectlen) {
			if ((size_t)snprintf(project, projectlen, "%s", p ? p : "") >=
			    projectlen)
				rc = -ENAMETOOLONG;
			else
				rc = 0;
		} else {
			rc = 0;
		}
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : map_err(rc);
	}
	sqlite3_reset(s);
	return rc;
}

int vg_registry_visible(struct vg_registry *r, const char *id,
			const char *scope_project, int *rtype)
{
	sqlite3_stmt *s;
	int rc;

	if (!r || !id)
		return -EINVAL;
	if (!(s = stmt(r, ST_VISIBLE)))
		return map_err(sqlite3_errcode(r->db));
	bind_text(s, 1, id);
	bind_text(s, 2, scope_project);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if (rtype)
			*rtype = sqlite3_column_int(s, 0);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : map_err(rc);
	}
	sqlite3_reset(s);
	return rc;
}

static sqlite3_stmt *list_stmt(struct vg_registry *r, unsigned mask)
{
	char sql[1024];
	size_t n;

	if (r->list[mask]) {
		sqlite3_reset(r->list[mask]);
		sqlite3_clear_bindings(r->list[mask]);
		return r->list[mask];
	}
	n = (size_t)snprintf(sql, sizeof(sql),
			     "SELECT " RES_COLUMNS " FROM resources WHERE 1");
	/* Parameters by number so the binding code does not depend on mask. */
	if (mask & F_TYPE)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND type = ?1");
	if (mask & F_HOST)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND host = ?2");
	if (mask & F_PROJECT)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND project = ?3");
	if (mask & F_NAME)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND name = ?4");
	if (mask & F_STATE)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n,
				      " AND (ended_at_ms IS NULL) = ?5");
	if (mask & F_PARENT)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND parent = ?6");
	if (mask & F_AFTER)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND id > ?7");
	snprintf(sql + n, sizeof(sql) - n, " ORDER BY id LIMIT ?8");
	if (sqlite3_prepare_v3(r->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
			       &r->list[mask], NULL) != SQLITE_OK)
		return NULL;
	return r->list[mask];
}

/* Reading more rows of other resources than this (plus 4 per row of the
 * page's) in a page's id range, the range scan gives way to one lookup per
 * resource: a filter whose matches are sparse among the ids would
 * otherwise read most of the table for a page. */
#define PAGE_SCAN_SLACK 256

/* The walk of the metrics primary key beside the page's resources. */
struct page_scan {
	sqlite3_stmt *s;
	int rc;           /* of the last step; 0 before the first */
	int gave_way;     /* per-resource reads from now on */
	size_t used, skipped;
};

/* The metrics of the page's next resource (id, in id order) to v, lv
 * locked. The first call starts one scan of the metrics primary key from
 * id on; each call takes the rows of its resource and stops at the first
 * row of a later one, so a page reads its metrics in the order they are
 * listed. Rows of resources the filter left out are skipped; when those
 * pass PAGE_SCAN_SLACK the rest of the page is read resource by resource
 * (each_metric). */
static int page_metrics(struct vg_registry *r, struct page_scan *ps,
			const char *id, struct vg_lastval_resource *c,
			const struct vg_registry_visitor *v)
{
	struct vg_registry_metric m;
	int rc;

	if (ps->gave_way)
		return each_metric(r, id, c, v);
	if (!ps->rc) {
		if (!r->page_metrics &&
		    sqlite3_prepare_v3(
			    r->db,
			    "SELECT resource_id, name, kind, unit, last_value, "
			    "last_time_ms FROM metrics WHERE resource_id >= ?1 "
			    "ORDER BY resource_id, name",
			    -1, SQLITE_PREPARE_PERSISTENT, &r->page_metrics,
			    NULL) != SQLITE_OK)
			return map_err(sqlite3_errcode(r->db));
		ps->s = r->page_metrics;
		sqlite3_reset(ps->s);
		/* a copy: id is the page statement's and moves on */
		sqlite3_bind_text(ps->s, 1, id, -1, SQLITE_TRANSIENT);
		ps->rc = sqlite3_step(ps->s);
	}
	for (; ps->rc == SQLITE_ROW; ps->rc = sqlite3_step(ps->s)) {
		const char *rid = (const char *)sqlite3_column_text(ps->s, 0);
		int cmp = strcmp(rid ? rid : "", id);

		if (cmp > 0) /* a later resource's: the next call's */
			return 0;
		if (cmp < 0) { /* a resource the filter left out */
			if (++ps->skipped > PAGE_SCAN_SLACK + 4 * ps->used) {
				/* none of this resource's rows were read */
				ps->gave_way = 1;
				return each_metric(r, id, c, v);
			}
			continue;
		}
		metric_row(r, c, ps->s, 1, &m);
		if ((rc = v->metric(v->ctx, &m)))
			return rc;
		ps->used++;
	}
	return ps->rc == SQLITE_DONE ? 0 : map_err(ps->rc);
}

int vg_registry_list_visit(struct vg_registry *r,
			   const struct vg_resource_filter *f,
			   const struct vg_registry_visitor *v,
			   char *next_cursor, size_t cursorlen)
{
	unsigned mask = 0;
	int rtype = 0, active = 0, rc, rows = 0;
	char last[VG_NAME_MAX * 4 + 1] = "";
	struct page_scan ps = {0};
	sqlite3_stmt *s;

	if (next_cursor && cursorlen)
		next_cursor[0] = '\0';
	if (!r || !f || !v || f->limit < 1 || f->limit > 1000)
		return -EINVAL;
	if (f->type) {
		if ((rtype = vg_rtype_parse(f->type)) < 0)
			return -EINVAL;
		mask |= F_TYPE;
	}
	if (f->state) {
		if (!strcmp(f->state, "active"))
			active = 1;
		else if (strcmp(f->state, "ended"))
			return -EINVAL;
		mask |= F_STATE;
	}
	mask |= (f->host ? F_HOST : 0) | (f->project ? F_PROJECT : 0) |
		(f->name ? F_NAME : 0) | (f->parent ? F_PARENT : 0) |
		(f->after ? F_AFTER : 0);
	if (!(s = list_stmt(r, mask)))
		return map_err(sqlite3_errcode(r->db));
	if (mask & F_TYPE)
		sqlite3_bind_int(s, 1, rtype);
	if (mask & F_HOST)
		bind_text(s, 2, f->host);
	if (mask & F_PROJECT)
		bind_text(s, 3, f->project);
	if (mask & F_NAME)
		bind_text(s, 4, f->name);
	if (mask & F_STATE)
		sqlite3_bind_int(s, 5, active);
	if (mask & F_PARENT)
		bind_text(s, 6, f->parent);
	if (mask & F_AFTER)
		bind_text(s, 7, f->after);
	sqlite3_bind_int(s, 8, f->limit + 1); /* one more: is there a next page? */

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct vg_registry_res res;
		struct vg_lastval_resource *c;
		const char *id = (const char *)sqlite3_column_text(s, 0);

		if (++rows > f->limit || !id) {
			rc = id ? SQLITE_ROW : SQLITE_NOMEM;
			break;
		}
		/* locked a resource at a time: the receiver and the other
		 * API threads take turns with a long page */
		vg_lastval_lock(r->lv);
		c = vg_lastval_res(r->lv, id, 0);
		res_row(s, c, &res);
		if (!(rc = v->resource(v->ctx, &res)) &&
		    !(rc = page_metrics(r, &ps, id, c, v)))
			rc = v->resource_end(v->ctx);
		vg_lastval_unlock(r->lv);
		if (rc)
			break;
		snprintf(last, sizeof(last), "%s", id);
		rc = SQLITE_ROW;
	}
	if (ps.s)
		sqlite3_reset(ps.s);
	sqlite3_reset(s);
	if (rc < 0) /* a visitor's or page_metrics' -errno */
		return rc;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return map_err(rc);
	if (rows > f->limit && next_cursor) {
		if (strlen(last) >= cursorlen)
			return -ENAMETOOLONG;
		memcpy(next_cursor, last, strlen(last) + 1);
	}
	return 0;
}

int vg_registry_list(struct vg_registry *r, const struct vg_resource_filter *f,
		     json_t **out, char *next_cursor, size_t cursorlen)
{
	struct json_builder jb = {0};
	struct vg_registry_visitor v = {jb_resource, jb_metric, jb_end, &jb};
	int rc;

	*out = NULL;
	if (!(jb.arr = json_array()))
		return -ENOMEM;
	if ((rc = vg_registry_list_visit(r, f, &v, next_cursor, cursorlen))) {
		json_decref(jb.arr);
		return rc;
	}
	*out = jb.arr;
	return 0;
}

/* ---- the lifecycle of ended resources ----------------------------------------- */

int vg_registry_remove_ended(struct vg_registry *r, const char *id,
			     int64_t ended_before_ms)
{
	/* Plain SQL both engines take; the metrics go only with their
	 * resource, in one transaction, and only if it is still ended
	 * (a resource that came back keeps everything). */
	static const char *const sql[2] = {
		"DELETE FROM metrics WHERE resource_id = ?1 AND EXISTS "
		"(SELECT 1 FROM resources WHERE id = ?1 AND ended_at_ms <= ?2)",
		"DELETE FROM resources WHERE id = ?1 AND ended_at_ms <= ?2 "
		"RETURNING id",
	};
	int rc, removed = 0;

	if (!r || !id)
		return -EINVAL;
	if ((rc = exec_simple(r, ST_BEGIN)))
		return rc;
	for (int i = 0; i < 2 && !rc; i++) {
		sqlite3_stmt *s = NULL;
		if (sqlite3_prepare_v2(r->db, sql[i], -1, &s, NULL) != SQLITE_OK) {
			rc = map_err(sqlite3_errcode(r->db));
			break;
		}
		bind_text(s, 1, id);
		sqlite3_bind_int64(s, 2, ended_before_ms);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW)
			removed = 1;
		rc = rc == SQLITE_DONE ? 0 : map_err(rc);
		sqlite3_finalize(s);
	}
	if (!rc)
		rc = exec_simple(r, ST_COMMIT);
	if (rc) {
		if (!sqlite3_get_autocommit(r->db))
			exec_simple(r, ST_ROLLBACK);
		return rc;
	}
	if (!removed)
		return -ENOENT;
	/* the cache must not believe the rows still exist */
	vg_lastval_lock(r->lv);
	vg_lastval_forget(r->lv, id);
	vg_lastval_unlock(r->lv);
	return 0;
}
