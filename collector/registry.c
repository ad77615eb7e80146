/*
 * registry.c — the resource registry, on the state database (vigie/db.h):
 * <data_dir>/registry.db (sqlite, the default) or the PostgreSQL server
 * of `[state] url`, shared by every collector of a cloud. The same SQL
 * runs on both engines, but for the flush's two bulk statements: on
 * PostgreSQL one array parameter per column (flush_kind_pg, planned once
 * by the server), on sqlite multi-row VALUES (flush_sql).
 *
 * Design. Seven tables:
 *   resources (id PK, type, host, name, parent, project, "user", flavor,
 *              attributes JSON text, first_seen_ms, last_seen_ms,
 *              ended_at_ms NULL while active, ident_ms)
 *   metrics   ((resource_id, name) PK, kind, unit, last_value, last_time_ms)
 *   streams   ((host, stream) PK, last_seq, last_time_ms, rank): the
 *             duplicate filter, one row per stream a host used lately
 *   stream_floor (host PK, floor_ms): the newest batch time of the
 *             host's streams that were dropped from `streams`
 *   held      (host PK, node, until_ms): the collector that holds values
 *             of the host a storage daemon has not taken, until when
 *             (holding marks, vg_registry_set_holder; docs/scaling.md)
 *   custom_drops (resource_id PK, metrics): the metric rows of custom
 *             resources that agents' reports took over dropped, for
 *             every collector's publish quota (vg_registry_custom_drops)
 * Schema versions are vg_db migration steps (component "registry"): step
 * 1 is version 1's schema (one stream per host, no identity time), step 2
 * converts it, so a registry.db of either version (PRAGMA user_version)
 * keeps working and a new database runs both. On PostgreSQL step 1 is
 * the whole schema, with the text keys in the "C" collation so that
 * ORDER BY and the list cursor compare bytes, as strcmp and sqlite do;
 * step 3 leaves room in the pages of metrics and resources so that the
 * flush's updates are HOT (PostgreSQL only; nothing on sqlite); step 4
 * adds `held` on both, step 5 `custom_drops`, step 6 who committed each
 * stream's last batch and the verified rows, step 7 the foreign key of
 * metrics to resources (PostgreSQL only: see step7_pg).
 * sqlite runs in WAL mode so the receiver's writes and the API's reads
 * proceed together; each handle is one connection (one per thread).
 * A page of the resource list is two statements, not one metrics query
 * per resource: the page's resources, and beside them one scan of the
 * metrics primary key from the page's first id (bounded: LIMIT, then
 * per-resource reads), stepped together and handed row by row to a
 * visitor (vg_registry_list_visit) that writes the answer, so no row is
 * copied and no JSON value built per row; the jansson answers
 * (vg_registry_list, vg_registry_get) are built by the same walk.
 *
 * Invariants:
 *  - one transaction per batch (vg_registry_update), so a batch is either
 *    fully registered or not at all; it begins at the batch's first write,
 *    so a batch of known series with no flush due costs no statement at
 *    all (on PostgreSQL every statement is a round trip, and no flush is
 *    ever due there: the flusher thread writes the last values on its
 *    own connection, so no acknowledgement waits for them). Upserts are
 *    idempotent, so a re-sent batch changes nothing but last-seen times it
 *    already set.
 *  - first_seen only moves back, last_seen only forward; a metric's
 *    last_value is the one with the newest time. Each is one upsert that
 *    compares with the row it replaces, so several collectors writing the
 *    same rows at once keep these rules (PostgreSQL locks the row and
 *    evaluates the update on its newest version).
 *  - identity is monotonic in time: type, host, name, parent, project,
 *    user, flavor and attributes change only for a report at or after
 *    ident_ms (the time of the report that set them), so an old batch
 *    accepted late never rewinds a resource, whichever collector took it.
 *  - ended_at: set by the first ENDED report (kept by later ones), cleared
 *    by an ACTIVE report newer than it (the resource came back).
 *  - streams.last_seq for (host, stream) only grows, and the commit of
 *    (host, stream, seq) is one statement that applies only when seq is
 *    above the stored one: of two collectors committing the same batch
 *    (an agent that re-sent it after a lost ack), exactly one applies it
 *    and the other learns it is a duplicate (vg_registry_commit returns
 *    1). vg_registry_seen before the store is an early answer, not the
 *    decision (it answers a stream whose last commit this handle applied
 *    from memory: the next seq is new, an older one a duplicate, without
 *    a round trip; after a commit another collector applied first it
 *    asks the database, which also reads the host's holding mark):
 *    both may have stored the batch's values, which is harmless
 *    because every write of a batch is idempotent (the RRD store skips
 *    times at or before a file's last update; the registry's upserts keep
 *    the newest). A host keeps its VG_REGISTRY_STREAMS most recently
 *    acknowledged streams; committing one more drops the least recent and
 *    raises the host's floor to that stream's newest batch time. A batch
 *    of a stream the host does not keep is a duplicate if its time is at
 *    or before the floor: every acknowledged batch of a dropped stream is,
 *    so none is ever accepted twice (docs/security.md "Replays").
 *  - a busy, full, read-only or unreachable database becomes -EAGAIN (the
 *    batch is answered RETRY and sent again).
 * Stream ids and sequence numbers are stored as signed 64-bit integers
 * (same bits); sequence numbers are compared in SQL, so they must stay
 * below 2^63, which a counter starting at 1 does.
 *
 * Why one file (~1,600 lines): it is one schema behind one handle.
 * Every section is SQL on struct vg_registry's one connection, with the
 * per-handle state the sections share: the batch's open transaction and
 * the last-value rows to undo on rollback (update), the streams this handle
 * committed (duplicate filter and commit), the last-value cache that the
 * update fills and the lifecycle of ended resources must clear when it
 * deletes rows. Cutting it would move that struct into a private header
 * read by every part. The one piece with no SQL, the
 * in-memory last values, is already lastval.c.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vigie/batch.h"
#include "vigie/catalog.h"
#include "vigie/clock.h"
#include "vigie/db.h"
#include "vigie/hash.h"
#include "collector/lastval.h"
#include "vigie/name.h"
#include "vigie/registry.h"

/* How often the newest values of the series that changed are written
 * (see lastval.h): by the receiver in a batch's transaction on sqlite, by
 * the flusher thread on its own connection on PostgreSQL ("The
 * flusher"). At 100,000 series sending every second this
 * turns 100,000 upserts a second into 100,000 every 10 s; after a kill -9
 * a last_value may be this old until the series' next sample. With a
 * shared PostgreSQL it is also how old another collector's view of the
 * last values (and last_seen) this collector received may be. */
#define LASTVAL_FLUSH_MS 10000
/* Rows the page's metrics scan reads at most per resource of the page
 * (PostgreSQL reads a statement's result whole); beyond it the page goes
 * on resource by resource. */
#define PAGE_SCAN_PER_RES 64

/* The streams this handle committed lately (direct-mapped by a hash of
 * host and stream): the duplicate check of a stream's next batch is
 * answered from here, without a round trip. */
#define COMMITTED_SLOTS 4096

struct committed {
	uint64_t stream, seq;
	char host[VG_NAME_MAX + 1]; /* "" : empty slot */
};

/* Filter bits for the list statements. */
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
	ST_SEEN,
	ST_HOLD,
	ST_HOLD_RENEW,
	ST_HOLD_CLEAR,
	ST_MARKS,
	ST_VERIFIED,
	ST_VERIFIED_RELEASE,
	ST_VERIFIED_LIST,
	ST_ACK,
	ST_RAISE_FLOOR,
	ST_PRUNE,
	ST_RES_UPSERT,
	ST_METRIC_UPSERT,
	ST_GET,
	ST_METRICS_OF,
	ST_METRICS_AFTER,
	ST_PAGE_METRICS,
	ST_LOOKUP,
	ST_VISIBLE,
	ST_METRIC_SEEN,
	ST_SET_UNIT,
	ST_METRIC_UNIT,
	ST_DROP_CUSTOM,
	ST_DROPS_ADD,
	ST_DROPS_SUM,
	ST_HOST_SERIES,
	ST_HOLD_RESOURCE,
	ST_BOUND_PG,
	ST_COUNT
};

#define RES_COLUMNS                                                             \
	"id, type, host, name, parent, project, \"user\", flavor, attributes, " \
	"first_seen_ms, last_seen_ms, ended_at_ms"
/* the greater of two values (max(a, b) is sqlite's only) */
#define GREATER(a, b) "CASE WHEN " a " > " b " THEN " a " ELSE " b " END"
/* A batch names no unit outside the catalogue (""): a published series'
 * unit, set by vg_registry_set_unit, stays. */
#define KEEP_UNIT "CASE WHEN excluded.unit = '' THEN metrics.unit ELSE excluded.unit END"
#define LESSER(a, b) "CASE WHEN " a " < " b " THEN " a " ELSE " b " END"

/* A project token may publish to a custom resource under any id nobody
 * uses yet (docs/api.md, POST /v1/measures), so a tenant can take the name
 * of a compute host before its agent first reports, or the id of a host's
 * disk or file system. The agent is the authority on what it reports: a
 * report of another type on a custom row (TAKEOVER) takes the row's whole
 * identity whatever its time (a point stamped up to max_future ahead would
 * otherwise hold it), the project falling back to 'default' as for a new
 * row, never kept from the tenant. The publisher's metric rows go at
 * the same time (ST_DROP_CUSTOM, just before the upsert, in its
 * transaction): they would be listed, with the tenant's last values, among
 * the agent's metrics of a resource the tenant no longer owns, and a
 * catalogue name the tenant had published would keep its unit and a value
 * dated ahead. Their files stay in rrd/custom/, unread (a custom
 * resource's own directory: no file of the agent's is touched). The
 * reverse never happens: publishing to an
 * agent's host, disk or nic is refused by the API (403). 7 = VG_RT_CUSTOM. */
#define TAKEOVER "(resources.type = 7 AND ?2 <> 7)"
/* ?12: 1 for a report that observes the resource (an agent's, or a
 * project's points on its custom resource); 0 for a project's points on
 * an instance (vg_batch.published): values, never an observation, so its
 * time moves neither first/last seen nor the identity's time, and never
 * revives an ended row (docs/api.md, POST /v1/measures) */
#define OBSERVES "(?12 = 1)"
#define TAKES_IDENT "((" OBSERVES " AND ?10 >= resources.ident_ms) OR " TAKEOVER ")"
_Static_assert(VG_RT_CUSTOM == 7, "TAKEOVER names VG_RT_CUSTOM by its value");

static const char *const sql_text[ST_COUNT] = {
	/* ?1 host ?2 stream ?3 this handle's holder name ?4 now (wall ms):
	 * one row, always: the stream's last seq, the host's floor, and the
	 * live holding mark of another collector (each NULL if none), so
	 * the check that finds a host held elsewhere costs no round trip of
	 * its own */
	[ST_SEEN] = "SELECT (SELECT last_seq FROM streams WHERE host = ?1 AND "
		    "stream = ?2), (SELECT floor_ms FROM stream_floor WHERE "
		    "host = ?1), (SELECT node FROM held WHERE host = ?1 AND "
		    "node <> ?3 AND until_ms > ?4), "
		    /* ?5 the oldest commit time still waited for (now -
		     * hold_max; past any time when nothing is waited for):
		     * another collector's commit of the host that its
		     * verified row does not cover yet (step 6) */
		    "(SELECT s.node FROM streams s WHERE s.host = ?1 AND "
		    "s.node <> ?3 AND s.commit_ms > ?5 AND s.commit_ms > "
		    "coalesce((SELECT v.upto_ms FROM verified v WHERE "
		    "v.node = s.node), 0) ORDER BY s.commit_ms DESC LIMIT 1), "
		    /* the oldest of those commits (one per stream): what a
		     * proof by this collector's connections must predate
		     * (vg_registry_held_commit_ms) */
		    "(SELECT min(s.commit_ms) FROM streams s WHERE s.host = ?1 "
		    "AND s.node <> ?3 AND s.commit_ms > ?5 AND s.commit_ms > "
		    "coalesce((SELECT v.upto_ms FROM verified v WHERE "
		    "v.node = s.node), 0))",
	/* ?1 host ?2 holder ?3 until (wall ms) ?4 now: this collector holds
	 * values of the host its daemon has not taken; a live mark of
	 * another collector is kept (it was first: its values are older) */
	[ST_HOLD] = "INSERT INTO held(host, node, until_ms) VALUES(?1, ?2, ?3) "
		    "ON CONFLICT(host) DO UPDATE SET node = excluded.node, "
		    "until_ms = excluded.until_ms WHERE held.node = excluded.node "
		    "OR held.until_ms <= ?4",
	/* ST_HOLD for the host of resource ?1 (vg_registry_hold_resources) */
	[ST_HOLD_RESOURCE] = "INSERT INTO held(host, node, until_ms) SELECT host, ?2, ?3 "
			     "FROM resources WHERE id = ?1 "
			     "ON CONFLICT(host) DO UPDATE SET node = excluded.node, "
			     "until_ms = excluded.until_ms WHERE held.node = excluded.node "
			     "OR held.until_ms <= ?4",
	[ST_HOLD_RENEW] = "UPDATE held SET until_ms = ?2 WHERE node = ?1",
	[ST_HOLD_CLEAR] = "DELETE FROM held WHERE node = ?1",
	[ST_MARKS] = "SELECT host, node, until_ms FROM held ORDER BY node, host",
	/* ?1 node ?2 commit time up to which its syncs verified everything
	 * it acknowledged: only moves forward */
	[ST_VERIFIED] = "INSERT INTO verified(node, upto_ms) VALUES(?1, ?2) "
			"ON CONFLICT(node) DO UPDATE SET upto_ms = " GREATER("verified.upto_ms", "excluded.upto_ms"),
	/* ?1 node ?2 now: the operator's release, every commit of node up
	 * to now taken as verified; nothing when no commit of node is
	 * waited for (no row changes: the release says so) */
	[ST_VERIFIED_RELEASE] =
		"INSERT INTO verified(node, upto_ms) SELECT CAST(?1 AS TEXT), "
		"CAST(?2 AS BIGINT) WHERE EXISTS (SELECT 1 FROM streams s WHERE "
		"s.node = ?1 AND s.commit_ms > coalesce((SELECT v.upto_ms FROM "
		"verified v WHERE v.node = ?1), 0)) ON CONFLICT(node) DO UPDATE SET "
		"upto_ms = " GREATER("verified.upto_ms", "excluded.upto_ms"),
	/* the nodes whose verified row is behind commits of theirs: node,
	 * its row (0: none yet), the streams waiting */
	[ST_VERIFIED_LIST] = "SELECT s.node, coalesce(v.upto_ms, 0), count(*) FROM streams s "
			     "LEFT JOIN verified v ON v.node = s.node WHERE s.node IS NOT NULL "
			     "AND s.commit_ms > coalesce(v.upto_ms, 0) "
			     "GROUP BY s.node, v.upto_ms ORDER BY s.node",
	/* ?1 host ?2 stream ?3 seq ?4 batch time ?5 this node (NULL: no
	 * holder set) ?6 commit time (wall ms): applies only to a seq
	 * above the stored one (vg_db_changes tells), and then the stream
	 * becomes the host's most recent (highest rank) */
	[ST_ACK] =
		"INSERT INTO streams(host, stream, last_seq, last_time_ms, rank, "
		"node, commit_ms) "
		"VALUES(?1, ?2, ?3, ?4, (SELECT coalesce(max(rank), 0) + 1 "
		"FROM streams WHERE host = ?1), ?5, ?6) "
		"ON CONFLICT(host, stream) DO UPDATE SET "
		"last_seq = excluded.last_seq, "
		"last_time_ms = " GREATER("streams.last_time_ms",
					  "excluded.last_time_ms") ", "
								   "rank = excluded.rank, node = excluded.node, "
								   "commit_ms = excluded.commit_ms "
								   "WHERE streams.last_seq < excluded.last_seq",
	/* ?1 host ?2 streams kept: the floor takes the newest time of the
	 * streams beyond the kept ones, which ST_PRUNE then deletes */
	[ST_RAISE_FLOOR] =
		"INSERT INTO stream_floor(host, floor_ms) "
		"SELECT CAST(?1 AS TEXT), max(last_time_ms) FROM streams WHERE "
		"host = ?1 AND rank <= (SELECT rank FROM streams WHERE host = ?1 "
		"ORDER BY rank DESC LIMIT 1 OFFSET ?2) HAVING count(*) > 0 "
		"ON CONFLICT(host) DO UPDATE SET floor_ms = " GREATER("stream_floor.floor_ms", "excluded.floor_ms"),
	[ST_PRUNE] =
		"DELETE FROM streams WHERE host = ?1 AND rank <= "
		"(SELECT rank FROM streams WHERE host = ?1 "
		"ORDER BY rank DESC LIMIT 1 OFFSET ?2)",
	/* ?1 id ?2 type ?3 host ?4 name ?5 parent ?6 project ?7 user
	 * ?8 flavor ?9 attributes ?10 time ?11 ended (0/1); TAKEOVER: an
	 * agent's report of an id a custom row holds (see TAKEOVER) */
	[ST_RES_UPSERT] =
		"INSERT INTO resources(" RES_COLUMNS ", ident_ms) VALUES(?1, ?2, ?3, "
		"?4, ?5, coalesce(?6, 'default'), ?7, ?8, coalesce(?9, '{}'), ?10, "
		"?10, CASE WHEN ?11 = 1 THEN CAST(?10 AS BIGINT) END, ?10) "
		"ON CONFLICT(id) DO UPDATE SET "
		/* identity: only from a report at or after the one that set it
		 * (every right-hand side reads the row before the update) */
		"type = CASE WHEN " TAKES_IDENT " THEN excluded.type "
		"ELSE resources.type END, "
		"host = CASE WHEN " TAKES_IDENT " THEN excluded.host "
		"ELSE resources.host END, "
		"name = CASE WHEN " TAKEOVER " THEN ?4 WHEN " OBSERVES " AND ?10 >= resources.ident_ms THEN "
		"coalesce(?4, resources.name) ELSE resources.name END, "
		"parent = CASE WHEN " TAKEOVER " THEN ?5 WHEN " OBSERVES " AND ?10 >= resources.ident_ms THEN "
		"coalesce(?5, resources.parent) ELSE resources.parent END, "
		"project = CASE WHEN " TAKEOVER " THEN coalesce(?6, 'default') "
		"WHEN " OBSERVES " AND ?10 >= resources.ident_ms THEN "
		"coalesce(?6, resources.project) ELSE resources.project END, "
		"\"user\" = CASE WHEN " TAKEOVER " THEN ?7 WHEN " OBSERVES " AND ?10 >= resources.ident_ms THEN "
		"coalesce(?7, resources.\"user\") ELSE resources.\"user\" END, "
		"flavor = CASE WHEN " TAKEOVER " THEN ?8 WHEN " OBSERVES " AND ?10 >= resources.ident_ms THEN "
		"coalesce(?8, resources.flavor) ELSE resources.flavor END, "
		"attributes = CASE WHEN " TAKEOVER " THEN coalesce(?9, '{}') "
		"WHEN " OBSERVES " AND ?10 >= resources.ident_ms THEN "
		"coalesce(?9, resources.attributes) ELSE resources.attributes END, "
		"ident_ms = CASE WHEN " TAKEOVER " THEN CAST(?10 AS BIGINT) WHEN NOT " OBSERVES " THEN resources.ident_ms ELSE " GREATER("resources.ident_ms", "CAST(?10 AS BIGINT)") " END, "
																						      "first_seen_ms = CASE WHEN NOT " OBSERVES " THEN resources.first_seen_ms ELSE " LESSER("resources.first_seen_ms", "CAST(?10 AS BIGINT)") " END, "
																																							       "last_seen_ms = CASE WHEN ?11 = 1 OR NOT " OBSERVES " THEN resources.last_seen_ms "
																																							       "WHEN ?10 > resources.last_seen_ms THEN CAST(?10 AS BIGINT) "
																																							       "ELSE resources.last_seen_ms END, "
																																							       "ended_at_ms = CASE WHEN ?11 = 1 THEN "
																																							       "coalesce(resources.ended_at_ms, CAST(?10 AS BIGINT)) "
																																							       "WHEN " OBSERVES " AND resources.ended_at_ms IS NOT NULL AND "
																																							       "?10 > resources.ended_at_ms THEN NULL "
																																							       "ELSE resources.ended_at_ms END "
																																							       /* a row's type is its first reporter's: a report of another
		 * type changes nothing and returns no row (write_resource) */
																																							       "WHERE resources.type = excluded.type OR " TAKEOVER " "
																																							       /* ended_at_ms itself: "ended_at_ms IS NOT NULL" here gives 1
		 * for a NULL in sqlite 3.40.1 (Debian 12) */
																																							       "RETURNING first_seen_ms, ended_at_ms, "
																																							       "CASE WHEN ident_ms = ?10 AND " OBSERVES " THEN 1 ELSE 0 END",
	/* written only while the resource row exists (RESOURCE_EXISTS):
	 * no row means another collector's sweep deleted it since this
	 * handle's cache learned it (write_metric: -ENOENT) */
	[ST_METRIC_UPSERT] =
		"INSERT INTO metrics(resource_id, name, kind, unit, last_value, "
		"last_time_ms) SELECT CAST(?1 AS TEXT), CAST(?2 AS TEXT), "
		"CAST(?3 AS BIGINT), CAST(?4 AS TEXT), CAST(?5 AS DOUBLE PRECISION), "
		"CAST(?6 AS BIGINT) WHERE EXISTS (SELECT 1 FROM resources WHERE "
		"resources.id = ?1) "
		"ON CONFLICT(resource_id, name) DO UPDATE SET "
		"kind = excluded.kind, unit = " KEEP_UNIT ", "
		"last_value = CASE WHEN excluded.last_time_ms > "
		"metrics.last_time_ms THEN excluded.last_value "
		"ELSE metrics.last_value END, "
		"last_time_ms = " GREATER("metrics.last_time_ms",
					  "excluded.last_time_ms"),
	[ST_GET] = "SELECT " RES_COLUMNS " FROM resources WHERE id = ?1",
	[ST_METRICS_OF] = "SELECT name, kind, unit, last_value, last_time_ms "
			  "FROM metrics WHERE resource_id = ?1 ORDER BY name",
	[ST_METRICS_AFTER] = "SELECT name, kind, unit, last_value, "
			     "last_time_ms FROM metrics WHERE resource_id = ?1 "
			     "AND name > ?2 ORDER BY name",
	[ST_PAGE_METRICS] = "SELECT resource_id, name, kind, unit, last_value, "
			    "last_time_ms FROM metrics WHERE resource_id >= ?1 "
			    "ORDER BY resource_id, name LIMIT ?2",
	[ST_METRIC_SEEN] = "SELECT 1 FROM metrics m JOIN resources r ON r.id = m.resource_id"
			   " WHERE m.name = ?1 AND (CAST(?2 AS TEXT) IS NULL OR r.project = ?2) LIMIT 1",
	[ST_SET_UNIT] = "UPDATE metrics SET unit = ?3 WHERE resource_id = ?1 "
			"AND name = ?2",
	[ST_METRIC_UNIT] = "SELECT unit, kind FROM metrics WHERE resource_id = ?1 AND "
			   "name = ?2",
	[ST_LOOKUP] = "SELECT type, project FROM resources WHERE id = ?1",
	[ST_VISIBLE] = "SELECT type FROM resources WHERE id = ?1 AND "
		       "(CAST(?2 AS TEXT) IS NULL OR project = ?2)",
	/* ?1 id: an agent's report (any type but custom) of an id a custom
	 * row holds drops that row's metrics (see TAKEOVER); one row back
	 * per metric dropped */
	[ST_DROP_CUSTOM] = "DELETE FROM metrics WHERE resource_id = ?1 AND EXISTS "
			   "(SELECT 1 FROM resources WHERE id = ?1 AND type = 7) "
			   "RETURNING 1",
	/* ?1 resource id ?2 its metric rows an agent's takeover dropped
	 * (custom_drops: every collector's publish quota recounts when the
	 * sum moves); the resource's row is locked already in this
	 * transaction, so this one adds no lock order of its own */
	[ST_DROPS_ADD] = "INSERT INTO custom_drops(resource_id, metrics) VALUES(?1, ?2) "
			 "ON CONFLICT(resource_id) DO UPDATE SET "
			 "metrics = custom_drops.metrics + excluded.metrics",
	[ST_DROPS_SUM] = "SELECT coalesce(sum(metrics), 0) FROM custom_drops",
	/* ?1 host: every series the registry knows of the host's resources
	 * (a metrics row is written in the transaction of the batch that
	 * brought the metric, before its commit), ended ones too: their
	 * last values may be in the batch that ended them */
	[ST_HOST_SERIES] = "SELECT r.type, r.id, m.name FROM resources r JOIN "
			   "metrics m ON m.resource_id = r.id WHERE r.host = ?1",
	/* PostgreSQL only: the bound of the commit transaction's next
	 * statements, in ms (SET LOCAL; "Commits bounded by the deadline") */
	[ST_BOUND_PG] = "SELECT set_config('statement_timeout', ?1, true)",
};

/* Version 1's schema (sqlite), which step 2 converts. */
static const char schema_v1_sqlite[] =
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
	" ended_at_ms INTEGER);"
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
	" host TEXT PRIMARY KEY NOT NULL,"
	" stream INTEGER NOT NULL,"
	" last_seq INTEGER NOT NULL);";

/* Version 1 -> 2 (sqlite): every stream a host used (not only the last),
 * the time of each resource's identity, and the floor of dropped
 * streams. A stream of version 1 gets the newest last_seen of its host's
 * resources as its time (the best bound there is); a resource's identity
 * time is its last_seen. */
static const char upgrade_v1_sqlite[] =
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
	"UPDATE resources SET ident_ms = last_seen_ms;"
	"CREATE TABLE IF NOT EXISTS stream_floor ("
	" host TEXT PRIMARY KEY NOT NULL,"
	" floor_ms INTEGER NOT NULL);";

/* PostgreSQL starts at version 2's schema. */
static const char schema_v2_pg[] =
	"CREATE TABLE resources ("
	" id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
	" type BIGINT NOT NULL,"
	" host TEXT COLLATE \"C\" NOT NULL,"
	" name TEXT COLLATE \"C\", parent TEXT COLLATE \"C\","
	" project TEXT COLLATE \"C\" NOT NULL DEFAULT 'default',"
	" \"user\" TEXT, flavor TEXT,"
	" attributes TEXT NOT NULL DEFAULT '{}',"
	" first_seen_ms BIGINT NOT NULL,"
	" last_seen_ms BIGINT NOT NULL,"
	" ended_at_ms BIGINT,"
	" ident_ms BIGINT NOT NULL DEFAULT 0);"
	"CREATE INDEX resources_type ON resources(type, id);"
	"CREATE INDEX resources_host ON resources(host, id);"
	"CREATE INDEX resources_project ON resources(project, id);"
	"CREATE INDEX resources_parent ON resources(parent, id);"
	"CREATE TABLE metrics ("
	" resource_id TEXT COLLATE \"C\" NOT NULL,"
	" name TEXT COLLATE \"C\" NOT NULL,"
	" kind BIGINT NOT NULL,"
	" unit TEXT NOT NULL DEFAULT '',"
	" last_value DOUBLE PRECISION,"
	" last_time_ms BIGINT NOT NULL,"
	" PRIMARY KEY (resource_id, name));"
	"CREATE TABLE streams ("
	" host TEXT NOT NULL,"
	" stream BIGINT NOT NULL,"
	" last_seq BIGINT NOT NULL,"
	" last_time_ms BIGINT NOT NULL,"
	" rank BIGINT NOT NULL,"
	" PRIMARY KEY (host, stream));"
	"CREATE TABLE stream_floor ("
	" host TEXT PRIMARY KEY NOT NULL,"
	" floor_ms BIGINT NOT NULL);";

/* Step 3 (PostgreSQL only): room in each page for the flush's updates.
 * Every flush (LASTVAL_FLUSH_MS) updates each changed series' metrics row
 * and each seen resource's last_seen_ms, none of them an indexed column;
 * a new row version that fits in its page is a HOT update (no new entry
 * in the primary key, or in the four indexes of resources), one that does
 * not is a new tuple elsewhere plus one index entry per index. At the
 * default fillfactor (100) the pages are full and almost no update was
 * HOT (0 of 2,697 metrics updates in bench/state_rows.sh). A flush updates
 * each row once, so half a page free holds the next version of every row
 * of the page; the flush after prunes the old ones. Applies to pages
 * written from now on (a table created before fills its old pages). */
static const char step3_pg[] = "ALTER TABLE metrics SET (fillfactor = 50);"
			       "ALTER TABLE resources SET (fillfactor = 50);";

/* Step 4: the holding marks (vg_registry_set_holder). A host's row names
 * the collector that acknowledged its batches while a storage daemon
 * could not take their values, until when the mark holds unless renewed
 * (wall ms, the holder's clock). One row per host held lately: a scan by
 * node (renew, clear) reads a table that is empty but during a daemon's
 * outage. */
static const char step4_sqlite[] = "CREATE TABLE IF NOT EXISTS held ("
				   " host TEXT PRIMARY KEY NOT NULL,"
				   " node TEXT NOT NULL,"
				   " until_ms INTEGER NOT NULL) WITHOUT ROWID;";
static const char step4_pg[] = "CREATE TABLE IF NOT EXISTS held ("
			       " host TEXT PRIMARY KEY NOT NULL,"
			       " node TEXT NOT NULL,"
			       " until_ms BIGINT NOT NULL);";

/* Step 5: the metric rows of custom resources an agent's report took
 * over, by resource (vg_registry_custom_drops): written in the takeover's
 * transaction by whichever collector took the report, read by every
 * collector's publish quota (docs/api.md "Limits"). One row per resource
 * ever taken over (rare: a tenant squatting an id an agent then reports). */
static const char step5_sqlite[] = "CREATE TABLE IF NOT EXISTS custom_drops ("
				   " resource_id TEXT PRIMARY KEY NOT NULL,"
				   " metrics INTEGER NOT NULL) WITHOUT ROWID;";
static const char step5_pg[] = "CREATE TABLE IF NOT EXISTS custom_drops ("
			       " resource_id TEXT PRIMARY KEY NOT NULL,"
			       " metrics BIGINT NOT NULL);";

/* Step 6: who committed each stream's last batch and when (wall ms, the
 * committer's clock), in the row the commit already writes, and per node
 * the commit time up to which its storage syncs verified everything it
 * acknowledged (vg_registry_set_verified). A host's next collector
 * waits until the previous one's row covers the host's last commit
 * (docs/scaling.md "Closing the second"). Rows of before the step have
 * no node: nothing is waited for them. */
static const char step6_sqlite[] = "ALTER TABLE streams ADD COLUMN node TEXT;"
				   "ALTER TABLE streams ADD COLUMN commit_ms INTEGER NOT NULL "
				   "DEFAULT 0;"
				   "CREATE TABLE IF NOT EXISTS verified ("
				   " node TEXT PRIMARY KEY NOT NULL,"
				   " upto_ms INTEGER NOT NULL) WITHOUT ROWID;";
static const char step6_pg[] = "ALTER TABLE streams ADD COLUMN IF NOT EXISTS node TEXT;"
			       "ALTER TABLE streams ADD COLUMN IF NOT EXISTS commit_ms BIGINT "
			       "NOT NULL DEFAULT 0;"
			       "CREATE TABLE IF NOT EXISTS verified ("
			       " node TEXT PRIMARY KEY NOT NULL,"
			       " upto_ms BIGINT NOT NULL);";
/* Step 7 (PostgreSQL only): a metrics row needs its resource row, so
 * that no collector's flush writes back rows of a resource another
 * collector's sweep of ended resources deleted (its cache still held
 * values of it). A check in the flush's SQL (RESOURCE_EXISTS, sqlite's)
 * would read the statement's snapshot and miss a sweep that commits while
 * the statement runs; the key's check sees the committed delete and
 * fails the statement (SQLSTATE 23503, -EBUSY): the flush then forgets
 * the resources that are gone (flush_gone_after) and its retry writes the
 * others. ON DELETE CASCADE: deleting a resource row takes rows written
 * meanwhile with it. Rows a flush wrote back before this step are deleted
 * first. Its cost: a lookup of the resource's primary key per new row,
 * and the triggers' check that an updated row's key did not change (~5 %
 * of the flush's server CPU, docs/benchmarks.md "Rows of swept
 * resources"). sqlite has one writer, whose check and write are one
 * statement: nothing there. The key is dropped first if there (PostgreSQL
 * has no ADD CONSTRAINT IF NOT EXISTS), so the step can run again on a
 * state whose version was set back. */
static const char step7_pg[] =
	"DELETE FROM metrics WHERE NOT EXISTS (SELECT 1 FROM resources "
	"WHERE resources.id = metrics.resource_id);"
	"ALTER TABLE metrics DROP CONSTRAINT IF EXISTS metrics_resource;"
	"ALTER TABLE metrics ADD CONSTRAINT metrics_resource FOREIGN KEY "
	"(resource_id) REFERENCES resources(id) ON DELETE CASCADE;";

static const struct vg_db_step registry_steps[] = {
	{.version = 1, .sql_sqlite = schema_v1_sqlite, .sql_pg = schema_v2_pg},
	{.version = 2, .sql_sqlite = upgrade_v1_sqlite, .sql_pg = ""},
	{.version = 3, .sql_sqlite = "", .sql_pg = step3_pg},
	{.version = 4, .sql_sqlite = step4_sqlite, .sql_pg = step4_pg},
	{.version = 5, .sql_sqlite = step5_sqlite, .sql_pg = step5_pg},
	{.version = 6, .sql_sqlite = step6_sqlite, .sql_pg = step6_pg},
	{.version = 7, .sql_sqlite = "", .sql_pg = step7_pg},
};

static const struct vg_db_schema registry_schema = {
	.component = "registry",
	.pg_schema = "vigie_registry",
	.steps = registry_steps,
	.nsteps = sizeof(registry_steps) / sizeof(registry_steps[0]),
	.adopt_user_version = 1,
};

struct vg_registry {
	struct vg_db *db;
	struct vg_lastval *lv; /* shared by the handles of this state */
	int64_t flushed_ms;    /* monotonic time of the last flush */
	int wrote;             /* this handle recorded samples */
	struct vg_registry_stats stats;
	/* this transaction's work, to undo in lv on rollback */
	struct vg_lastval_row *rows; /* dirty rows being written */
	size_t nrows, caprows;
	void **fres, **fmet; /* cache entries whose rows it wrote */
	size_t nfres, capfres, nfmet, capfmet;
	char err[256]; /* the last failed write's message */
	/* the (host, stream) whose row vg_registry_seen just found: its
	 * commit is the ACK alone (see vg_registry_commit) */
	char known_host[VG_NAME_MAX + 1];
	uint64_t known_stream;
	int known;
	struct committed *committed; /* COMMITTED_SLOTS, at the first commit */
	uint64_t seen_local;         /* checks answered from it (stats) */
	int last_local;              /* the last check answered 0 from it */
	/* vg_registry_commit_group's statements by row count (built at first
	 * use) */
	char *ack_sql[VG_REGISTRY_GROUP_MAX + 1];
	/* holding marks (vg_registry_set_holder): this handle's name in
	 * them ("" : none set) and how long one lasts unless renewed */
	char holder[256];
	int64_t hold_ttl_ms;
	char held_by[256];      /* the holder vg_registry_seen last found */
	int64_t held_commit_ms; /* with its 3: the oldest unverified commit */
	/* step 6: the wall time of this handle's newest commit (written in
	 * its streams rows with the holder's name), and whether a host new
	 * here waits for the previous committer's verified row */
	int64_t commit_ms;
	int wait_verified;
	/* the deadline of the call being served (vg_registry_seen_by, a
	 * group's marks, vg_batch.deadline_ms; monotonic ms, 0: none): set
	 * at its start, 0 again at its end */
	int64_t deadline_ms;
	/* PostgreSQL's flush: one array literal per column, kept between
	 * flushes; and the resources rows this handle wrote at which it has
	 * the table analyzed next (plans_refresh) */
	struct vg_db_array lit[6];
	uint64_t analyze_at;
	/* the flush being written: the lastval forget count when its rows
	 * were taken (flush_met_forgotten), its rows kept for later
	 * (kept_later), the most last-seen rows one flush wrote */
	uint64_t forgets0;
	size_t nlater;
	uint64_t seen_max;
	/* the resources whose values the flush did not write, their row
	 * being gone (another collector swept them): forgotten after the
	 * transaction ends (flush_find_gone, forget_gone) */
	void **gone;
	size_t ngone, capgone;
	/* as opened, for the flusher's own handle; the flusher (PostgreSQL,
	 * started by the first update: see "The flusher") */
	char *data_dir, *state_url;
	struct flusher *fl;
	int64_t flush_every_ms; /* LASTVAL_FLUSH_MS but in tests */
};

static void flusher_stop(struct vg_registry *r);

static struct committed *committed_slot(struct vg_registry *r, const char *host,
					uint64_t stream)
{
	uint64_t h = vg_fnv1a(VG_FNV_OFFSET, host) ^ (stream * VG_FNV_PRIME);

	if (!r->committed)
		return NULL;
	return &r->committed[(h ^ (h >> 29)) % COMMITTED_SLOTS];
}

/* Note that this handle committed (host, stream) up to seq (or forget
 * it: seq 0). Only a commit that applied is noted: one that found the
 * batch committed by another collector forgets the stream, so that the
 * host's next batch is checked in the database — with the holding mark
 * that collector may hold. Answered from memory, the next seq would be
 * taken here past that mark, while the other collector holds the host's
 * previous batch for a daemon that is down: each would then hold values
 * of the host for it, and whichever wrote first would make the other's
 * older ones refused (docs/scaling.md, issue 15's window (b);
 * registry_test test_same_batch_two_holders). */
static void committed_note(struct vg_registry *r, const char *host,
			   uint64_t stream, uint64_t seq)
{
	struct committed *c;

	if (!r->committed && seq &&
	    !(r->committed = calloc(COMMITTED_SLOTS, sizeof(*r->committed))))
		return; /* no memory: every check asks the database */
	if (!(c = committed_slot(r, host, stream)) || strlen(host) >= sizeof(c->host))
		return;
	if (!seq) {
		if (c->stream == stream && !strcmp(c->host, host))
			c->host[0] = '\0';
		return;
	}
	memcpy(c->host, host, strlen(host) + 1);
	c->stream = stream;
	c->seq = seq;
}

/* The database's errors as the registry's callers know them: what may
 * pass (busy, full, read-only, unreachable) is -EAGAIN, a rejected value
 * the caller's -EINVAL. */
static int map_err(int rc)
{
	switch (rc) {
	case -EBUSY:
	case -ENOSPC:
	case -EROFS:
	case -ECONNRESET:
	case -ENOTCONN:
		return -EAGAIN;
	case -EEXIST:
		return -EINVAL;
	default:
		return rc;
	}
}

/* The cached statement i, reset, every parameter NULL. */
static int stmt(struct vg_registry *r, int i, struct vg_db_stmt **s)
{
	return map_err(vg_db_prepare(r->db, sql_text[i], s));
}

/* The earlier of deadlines a and b (0: none). */
static int64_t earlier(int64_t a, int64_t b)
{
	if (a <= 0)
		return b > 0 ? b : 0;
	return b > 0 && b < a ? b : a;
}

static int bounded(const struct vg_registry *r);

/* A statement cancelled (57014, -ETIMEDOUT) well before the deadline of
 * the call is not its bound's doing: an operator's pg_cancel_backend (or
 * a session lock_timeout). -ECANCELED then, so the receiver tells it
 * apart (still RETRY); rc otherwise. */
#define CANCEL_MARGIN_MS 50
static int cut_or_cancel(const struct vg_registry *r, int rc)
{
	if (rc == -ETIMEDOUT && bounded(r) &&
	    vg_monotonic_ms() < r->deadline_ms - CANCEL_MARGIN_MS)
		return -ECANCELED;
	return rc;
}
static int bound_begin(struct vg_registry *r);

/* Open the batch's transaction at its first write: a batch of known
 * series with no flush due writes nothing and costs no round trip. With
 * a deadline (PostgreSQL), its statements are bounded by the time left
 * ("Commits bounded by the deadline"). */
static int need_txn(struct vg_registry *r)
{
	if (vg_db_in_transaction(r->db))
		return 0;
	return bounded(r) ? bound_begin(r) : map_err(vg_db_begin(r->db));
}

/* Run a statement that returns no rows. 0 or -errno. */
static int exec_done(struct vg_db_stmt *s)
{
	int rc = vg_db_step(s);

	vg_db_reset(s);
	return rc < 0 ? map_err(rc) : 0;
}

/* ---- open / close ---------------------------------------------------------- */

int vg_registry_open_state(const char *data_dir, const char *state_url,
			   struct vg_registry **out, char *err, size_t errlen)
{
	struct vg_registry *r;
	char url[4200];
	int rc;

	*out = NULL;
	if ((!state_url || !*state_url) && (!data_dir || !*data_dir)) {
		snprintf(err, errlen, "registry: no data directory");
		return -EINVAL;
	}
	if (state_url && *state_url)
		rc = snprintf(url, sizeof(url), "%s", state_url);
	else
		rc = snprintf(url, sizeof(url),
			      "sqlite:%s/registry.db?synchronous=normal"
			      "&busy_timeout_ms=2000",
			      data_dir);
	if ((size_t)rc >= sizeof(url)) {
		snprintf(err, errlen, "registry: data directory path too long");
		return -ENAMETOOLONG;
	}
	if (!(r = calloc(1, sizeof(*r)))) {
		snprintf(err, errlen, "registry: out of memory");
		return -ENOMEM;
	}
	if ((rc = vg_db_open(url, &registry_schema, &r->db, err, errlen))) {
		vg_registry_close(r);
		return rc;
	}
	/* one cache per state: the data dir's file, or the shared server */
	if (state_url && *state_url) {
		r->lv = vg_lastval_open(state_url);
	} else {
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
	r->flush_every_ms = LASTVAL_FLUSH_MS;
	r->analyze_at = 64;
	if ((data_dir && !(r->data_dir = strdup(data_dir))) ||
	    (state_url && !(r->state_url = strdup(state_url)))) {
		snprintf(err, errlen, "registry: out of memory");
		vg_registry_close(r);
		return -ENOMEM;
	}
	*out = r;
	return 0;
}

int vg_registry_open(const char *data_dir, struct vg_registry **out,
		     char *err, size_t errlen)
{
	return vg_registry_open_state(data_dir, NULL, out, err, errlen);
}

void vg_registry_close(struct vg_registry *r)
{
	if (!r)
		return;
	flusher_stop(r);
	if (r->wrote && r->lv)
		vg_registry_flush(r); /* best effort: the RRD files have the data */
	free(r->data_dir);
	free(r->state_url);
	vg_lastval_close(r->lv);
	free(r->rows);
	free(r->fres);
	free(r->fmet);
	free(r->gone);
	free(r->committed);
	for (size_t i = 0; i < sizeof(r->lit) / sizeof(r->lit[0]); i++)
		vg_db_array_free(&r->lit[i]);
	for (size_t i = 0; i <= VG_REGISTRY_GROUP_MAX; i++)
		free(r->ack_sql[i]);
	vg_db_close(r->db);
	free(r);
}

/* ---- duplicate filter ------------------------------------------------------ */

int vg_registry_seen_local(const struct vg_registry *r)
{
	return r ? r->last_local : 0;
}

static int seen_in(struct vg_registry *r, const char *host, uint64_t stream,
		   uint64_t seq, int64_t time_ms);

int vg_registry_seen(struct vg_registry *r, const char *host, uint64_t stream,
		     uint64_t seq, int64_t time_ms)
{
	return vg_registry_seen_by(r, host, stream, seq, time_ms, 0);
}

int vg_registry_seen_by(struct vg_registry *r, const char *host, uint64_t stream,
			uint64_t seq, int64_t time_ms, int64_t deadline_ms)
{
	int rc;

	if (!r || !host)
		return -EINVAL;
	r->deadline_ms = earlier(deadline_ms, 0);
	rc = cut_or_cancel(r, seen_in(r, host, stream, seq, time_ms));
	r->deadline_ms = 0;
	return rc;
}

static int seen_in(struct vg_registry *r, const char *host, uint64_t stream,
		   uint64_t seq, int64_t time_ms)
{
	struct vg_db_stmt *s;
	int rc, seen = 0;

	if (!r || !host)
		return -EINVAL;
	r->known = 0;
	r->last_local = 0;
	{
		/* this handle committed the stream up to c->seq: an older seq
		 * is a duplicate for sure (last_seq only grows), and the next
		 * one is new unless another collector of the shared state took
		 * it meanwhile, which the commit finds out (it returns 1) */
		struct committed *c = committed_slot(r, host, stream);
		if (c && c->host[0] && c->stream == stream && !strcmp(c->host, host)) {
			if (seq <= c->seq)
				return 1;
			if (seq == c->seq + 1) {
				memcpy(r->known_host, host, strlen(host) + 1);
				r->known_stream = stream;
				r->known = 1;
				r->seen_local++;
				r->last_local = 1;
				return 0;
			}
		}
	}
	if ((rc = stmt(r, ST_SEEN, &s)))
		return rc;
	vg_db_bind_text(s, 1, host);
	vg_db_bind_int64(s, 2, (int64_t)stream);
	vg_db_bind_text(s, 3, r->holder);
	vg_db_bind_int64(s, 4, vg_now_ms());
	/* nothing waited for without a holder (no node of ours to compare)
	 * or with the wait off */
	vg_db_bind_int64(s, 5, r->holder[0] && r->wait_verified ? vg_now_ms() - r->hold_ttl_ms : INT64_MAX);
	if (bounded(r)) {
		/* a plain read, but a lock on the table (LOCK TABLE, an ALTER)
		 * or a stalled server holds it too: BEGIN, the bound, the read
		 * and COMMIT in one wait, its row read after the COMMIT */
		if ((rc = bound_begin(r))) { /* r->err set */
			vg_db_reset(s);
			return rc;
		}
		if (!(rc = map_err(vg_db_query_queued(s))))
			rc = map_err(vg_db_commit(r->db));
		if (rc) {
			snprintf(r->err, sizeof(r->err), "%s", vg_db_errmsg(r->db));
			if (vg_db_in_transaction(r->db))
				vg_db_rollback(r->db);
			vg_db_reset(s);
			return rc;
		}
	}
	rc = vg_db_step(s);
	if (rc != 1) {
		vg_db_reset(s);
		return rc < 0 ? map_err(rc) : -EIO;
	}
	if (!vg_db_column_is_null(s, 0)) {
		seen = seq <= (uint64_t)vg_db_column_int64(s, 0);
		if (strlen(host) < sizeof(r->known_host)) {
			memcpy(r->known_host, host, strlen(host) + 1);
			r->known_stream = stream;
			r->known = 1;
		}
	} else if (!vg_db_column_is_null(s, 1)) {
		/* a stream the host does not keep: new, or dropped long ago */
		seen = time_ms <= vg_db_column_int64(s, 1);
	}
	if (!seen && !vg_db_column_is_null(s, 2)) {
		const char *by = vg_db_column_text(s, 2);
		seen = 2; /* another live collector holds the host's values */
		snprintf(r->held_by, sizeof(r->held_by), "%s", by ? by : "");
	}
	if (!seen && !vg_db_column_is_null(s, 3)) {
		const char *by = vg_db_column_text(s, 3);
		seen = 3; /* another collector's values not proven durable */
		snprintf(r->held_by, sizeof(r->held_by), "%s", by ? by : "");
		r->held_commit_ms = vg_db_column_is_null(s, 4) ? INT64_MAX
							       : vg_db_column_int64(s, 4);
	}
	vg_db_reset(s);
	return seen;
}

/* The holding mark of host in this handle's transaction: after the
 * streams rows, so every transaction that writes both locks a host's
 * streams rows before its held row (two collectors never wait on each
 * other's). 0, -EBUSY when another collector's live mark is there (the
 * upsert changed no row: it stays that collector's), or -errno. */
static int hold_host(struct vg_registry *r, const char *host)
{
	struct vg_db_stmt *s;
	int64_t now = vg_now_ms();
	int rc;

	if ((rc = stmt(r, ST_HOLD, &s)))
		return rc;
	vg_db_bind_text(s, 1, host);
	vg_db_bind_text(s, 2, r->holder);
	vg_db_bind_int64(s, 3, now + r->hold_ttl_ms);
	vg_db_bind_int64(s, 4, now);
	if ((rc = exec_done(s)))
		return rc;
	return vg_db_changes(r->db) > 0 ? 0 : -EBUSY;
}

/* Bind one row of ST_ACK (or of ack_sql's row at parameter p + 1): the
 * stream's commit, with this node and the commit's time when a holder is
 * set (step 6), NULL otherwise (a single collector: nobody waits). */
static void bind_ack(struct vg_registry *r, struct vg_db_stmt *s, int p,
		     const char *host, uint64_t stream, uint64_t seq, int64_t time_ms)
{
	vg_db_bind_text(s, p + 1, host);
	vg_db_bind_int64(s, p + 2, (int64_t)stream);
	vg_db_bind_int64(s, p + 3, (int64_t)seq);
	vg_db_bind_int64(s, p + 4, time_ms);
	if (r->holder[0]) {
		int64_t now = vg_now_ms();

		if (now > r->commit_ms)
			r->commit_ms = now;
		vg_db_bind_text(s, p + 5, r->holder);
		/* never behind a commit noted before: a wall clock stepped
		 * back does not date this one before a verified row that
		 * does not cover it */
		vg_db_bind_int64(s, p + 6, r->commit_ms);
	} else {
		vg_db_bind_int64(s, p + 6, 0);
	}
}

/* ---- Commits bounded by the deadline --------------------------------------
 *
 * The receiver gives each group's commit the earliest deadline of its
 * batches (vg_registry_mark.deadline_ms, a parameter of the call: no
 * state kept between calls; docs/operations.md "One deadline per
 * batch"). On PostgreSQL a commit then runs in a transaction whose
 * statements are each bounded by the time left (SET LOCAL
 * statement_timeout, queued with the statement: no round trip of its
 * own), so a row lock another session holds, or a slow server, cuts it at
 * the deadline: the server cancels the statement (57014, -ETIMEDOUT), the
 * transaction is rolled back, nothing is recorded, and the receiver
 * answers RETRY before the agent's ack timeout instead of acknowledging
 * late (the agent would have failed over, and the collector it re-sent
 * to would answer DUPLICATE). The re-sent batch is stored once: its
 * values, already taken, are skipped (the store takes only values newer
 * than a series' last; the meter's watermark; the registry's upserts),
 * and its seq is recorded by the commit that succeeds. A deadline already
 * passed sends nothing. The BEGIN, the bound, the statement and the
 * COMMIT travel together: one round trip, as the autocommit statement
 * took. The duplicate check (vg_registry_seen_by, when it reads the
 * database: a table lock or a stalled server holds a plain read too) and
 * the consumer's transaction (vg_batch.deadline_ms; need_txn, re-bounded
 * before each resource)
 * are bounded the same way; the consumer answers a cut -EAGAIN (RETRY,
 * counted in stats.consumer_deadline).
 * sqlite is not bounded: its state is one collector's own file, whose
 * only writers are this process's connections, and a commit waits at
 * most the registry's busy timeout (2 s); an agent acknowledged late
 * there re-sends to the same collector (there is no other), answered
 * DUPLICATE. */

static int bounded(const struct vg_registry *r)
{
	return r->deadline_ms && vg_db_engine(r->db) == VG_DB_POSTGRESQL;
}

/* Queue the bound of the transaction's next statement: the time left
 * (at least 1 ms: a statement that does not wait still runs). */
static int bound_next(struct vg_registry *r)
{
	int64_t left = r->deadline_ms - vg_monotonic_ms();
	struct vg_db_stmt *s;
	char ms[24];
	int rc;

	if ((rc = stmt(r, ST_BOUND_PG, &s)))
		return rc;
	snprintf(ms, sizeof(ms), "%lld", (long long)(left < 1 ? 1 : left));
	vg_db_bind_text(s, 1, ms);
	return map_err(vg_db_step_queued(s));
}

/* A bounded commit's BEGIN and bound (queued), or -ETIMEDOUT when the
 * deadline has passed (nothing sent). r->err set on failure. */
static int bound_begin(struct vg_registry *r)
{
	int rc;

	if (r->deadline_ms - vg_monotonic_ms() < 1) {
		snprintf(r->err, sizeof(r->err), "the batch's deadline passed "
						 "before its commit");
		return -ETIMEDOUT;
	}
	if (!(rc = map_err(vg_db_begin(r->db))) && (rc = bound_next(r)))
		vg_db_rollback(r->db);
	if (rc)
		snprintf(r->err, sizeof(r->err), "%s", vg_db_errmsg(r->db));
	return rc;
}

/* vg_registry_commit, and with hold (and a holder set) the host's holding
 * mark in the same transaction. */
static int commit_one(struct vg_registry *r, const char *host, uint64_t stream,
		      uint64_t seq, int64_t time_ms, int hold)
{
	static const int steps[] = {ST_ACK, ST_RAISE_FLOOR, ST_PRUNE};
	struct vg_db_stmt *s;
	int rc, applied = 0, known;
	size_t nsteps = sizeof(steps) / sizeof(steps[0]);

	if (!r || !host)
		return -EINVAL;
	hold = hold && r->holder[0];
	known = r->known && r->known_stream == stream && !strcmp(r->known_host, host);
	if (known && hold)
		nsteps = 1; /* the ACK and the mark: the streams do not grow */
	if (known && !hold) {
		/* the stream has its row (vg_registry_seen just read it): the
		 * host's streams do not grow, nothing to drop, and the ACK is
		 * one atomic statement, so no transaction (one round trip). A
		 * row pruned meanwhile by another collector is inserted again;
		 * the next new stream's commit drops what is beyond the bound. */
		int b = bounded(r);

		r->known = 0;
		if (b && (rc = bound_begin(r))) {
			committed_note(r, host, stream, 0);
			return rc;
		}
		if (!(rc = stmt(r, ST_ACK, &s))) {
			bind_ack(r, s, 0, host, stream, seq, time_ms);
			/* bounded: BEGIN, bound, ACK and COMMIT in one wait */
			rc = b ? map_err(vg_db_step_queued(s)) : exec_done(s);
		}
		if (b && !rc)
			rc = map_err(vg_db_commit(r->db));
		if (rc) {
			snprintf(r->err, sizeof(r->err), "%s", vg_db_errmsg(r->db));
			if (vg_db_in_transaction(r->db))
				vg_db_rollback(r->db);
			committed_note(r, host, stream, 0);
			return rc;
		}
		/* applied: the next seq is answered from memory; committed
		 * already, by another collector (see committed_note) */
		applied = vg_db_changes(r->db) > 0;
		committed_note(r, host, stream, applied ? seq : 0);
		return !applied;
	}
	r->known = 0;
	if (bounded(r)) {
		if ((rc = bound_begin(r)))
			return rc;
	} else if ((rc = vg_db_begin(r->db))) {
		return map_err(rc);
	}
	for (size_t i = 0; i < nsteps && !rc; i++) {
		/* each statement bounded by the time left then */
		if (i && bounded(r) && (rc = bound_next(r)))
			break;
		if ((rc = stmt(r, steps[i], &s)))
			break;
		if (steps[i] == ST_ACK) {
			bind_ack(r, s, 0, host, stream, seq, time_ms);
		} else {
			vg_db_bind_text(s, 1, host);
			vg_db_bind_int64(s, 2, VG_REGISTRY_STREAMS);
		}
		if ((rc = exec_done(s)))
			break;
		if (steps[i] == ST_ACK && !(applied = vg_db_changes(r->db) > 0))
			break; /* committed already (by another collector) */
	}
	/* even when another collector committed the batch first: this one
	 * stored its values too, and holds them */
	if (!rc && hold && bounded(r))
		rc = bound_next(r);
	if (!rc && hold) {
		rc = hold_host(r, host);
		if (rc == -EBUSY) {
			/* another collector marked the host after this one's
			 * duplicate check: its values are older and it keeps
			 * the host. A batch this commit applied would be
			 * acknowledged with its values in this collector's
			 * cache alone and no mark to keep the host from moving
			 * on before they are written: not recorded (rolled
			 * back), the receiver answers RETRY and the agent
			 * keeps it. One the holder committed first stays a
			 * duplicate (the holder has it). */
			r->stats.hold_refused++;
			snprintf(r->err, sizeof(r->err), "host %s is marked by "
							 "another collector",
				 host);
			rc = applied ? -EBUSY : 0;
		} else if (rc) {
			r->stats.hold_failed++;
		}
	}
	if (!rc)
		rc = map_err(vg_db_commit(r->db));
	if (rc) {
		if (rc != -EBUSY)
			snprintf(r->err, sizeof(r->err), "%s", vg_db_errmsg(r->db));
		if (vg_db_in_transaction(r->db))
			vg_db_rollback(r->db);
	}
	committed_note(r, host, stream, rc || !applied ? 0 : seq);
	return rc ? rc : !applied;
}

int vg_registry_commit(struct vg_registry *r, const char *host,
		       uint64_t stream, uint64_t seq, int64_t time_ms)
{
	return commit_one(r, host, stream, seq, time_ms, 0);
}

/* ---- holding marks --------------------------------------------------------- */

int vg_registry_set_holder(struct vg_registry *r, const char *node,
			   int64_t ttl_ms)
{
	if (!r || !node || strlen(node) >= sizeof(r->holder) || ttl_ms < 0)
		return -EINVAL;
	memcpy(r->holder, node, strlen(node) + 1);
	r->hold_ttl_ms = ttl_ms;
	return 0;
}

/* Run statement which (ST_HOLD_RENEW, ST_HOLD_CLEAR, ST_VERIFIED) for
 * this handle's holder, with arg as its second parameter unless arg < 0;
 * nothing without a holder (a single collector). */
static int holder_exec(struct vg_registry *r, int which, int64_t arg)
{
	struct vg_db_stmt *s;
	int rc;

	if (!r)
		return -EINVAL;
	if (!r->holder[0])
		return 0;
	if ((rc = stmt(r, which, &s)))
		return rc;
	vg_db_bind_text(s, 1, r->holder);
	if (arg >= 0)
		vg_db_bind_int64(s, 2, arg);
	if ((rc = exec_done(s)))
		snprintf(r->err, sizeof(r->err), "%s", vg_db_errmsg(r->db));
	return rc;
}

int vg_registry_hold_renew(struct vg_registry *r)
{
	return holder_exec(r, ST_HOLD_RENEW, r ? vg_now_ms() + r->hold_ttl_ms : 0);
}

int vg_registry_hold_clear(struct vg_registry *r)
{
	return holder_exec(r, ST_HOLD_CLEAR, -1);
}

int vg_registry_hold_resources(struct vg_registry *r, const char *const *ids, size_t n,
			       uint64_t *marked)
{
	struct vg_db_stmt *s;
	int64_t now = vg_now_ms();
	uint64_t k = 0;
	int rc;

	if (marked)
		*marked = 0;
	if (!r || (n && !ids) || !r->holder[0])
		return -EINVAL;
	if (!n)
		return 0;
	if ((rc = vg_db_begin(r->db)))
		return map_err(rc);
	for (size_t i = 0; i < n && !rc; i++) {
		if ((rc = stmt(r, ST_HOLD_RESOURCE, &s)))
			break;
		vg_db_bind_text(s, 1, ids[i]);
		vg_db_bind_text(s, 2, r->holder);
		vg_db_bind_int64(s, 3, now + r->hold_ttl_ms);
		vg_db_bind_int64(s, 4, now);
		if (!(rc = exec_done(s)))
			k += (uint64_t)vg_db_changes(r->db);
	}
	if (!rc)
		rc = map_err(vg_db_commit(r->db));
	if (rc) {
		snprintf(r->err, sizeof(r->err), "%s", vg_db_errmsg(r->db));
		vg_db_rollback(r->db);
		return rc;
	}
	if (marked)
		*marked = k;
	return 0;
}

/* ---- verified rows (step 6) ------------------------------------------------ */

void vg_registry_set_wait_verified(struct vg_registry *r, int on)
{
	if (r)
		r->wait_verified = on != 0;
}

int64_t vg_registry_committed_ms(const struct vg_registry *r)
{
	return r ? r->commit_ms : 0;
}

int vg_registry_set_verified(struct vg_registry *r, int64_t upto_ms)
{
	return holder_exec(r, ST_VERIFIED, upto_ms < 0 ? 0 : upto_ms);
}

/* An operator's release of NODE: statement st bound to the node (and to
 * now as its second parameter when with_now); *released gets the rows it
 * changed. */
static int release_node(struct vg_registry *r, int st, const char *node, int with_now,
			uint64_t *released)
{
	struct vg_db_stmt *s;
	int rc;

	if (!r || !node || !node[0])
		return -EINVAL;
	if ((rc = stmt(r, st, &s)))
		return rc;
	vg_db_bind_text(s, 1, node);
	if (with_now)
		vg_db_bind_int64(s, 2, vg_now_ms());
	if ((rc = exec_done(s))) {
		snprintf(r->err, sizeof(r->err), "%s", vg_db_errmsg(r->db));
		return rc;
	}
	if (released)
		*released = (uint64_t)vg_db_changes(r->db);
	return 0;
}

int vg_registry_verified_release(struct vg_registry *r, const char *node,
				 uint64_t *released)
{
	return release_node(r, ST_VERIFIED_RELEASE, node, 1, released);
}

int vg_registry_verified(struct vg_registry *r,
			 int (*fn)(void *ctx, const char *node, int64_t upto_ms,
				   uint64_t streams_behind),
			 void *ctx)
{
	struct vg_db_stmt *s;
	int rc;

	if (!r || !fn)
		return -EINVAL;
	if ((rc = stmt(r, ST_VERIFIED_LIST, &s)))
		return rc;
	while ((rc = vg_db_step(s)) == 1) {
		const char *n = vg_db_column_text(s, 0);
		if ((rc = fn(ctx, n ? n : "", vg_db_column_int64(s, 1),
			     (uint64_t)vg_db_column_int64(s, 2))))
			break;
	}
	vg_db_reset(s);
	if (rc < 0)
		snprintf(r->err, sizeof(r->err), "%s", vg_db_errmsg(r->db));
	return rc < 0 ? map_err(rc) : rc;
}

const char *vg_registry_held_by(const struct vg_registry *r)
{
	return r ? r->held_by : "";
}

int vg_registry_host_series(struct vg_registry *r, const char *host,
			    int (*fn)(void *ctx, int rtype, const char *id,
				      const char *metric),
			    void *ctx)
{
	struct vg_db_stmt *s;
	int rc;

	if (!r || !host || !fn)
		return -EINVAL;
	if ((rc = stmt(r, ST_HOST_SERIES, &s)))
		return rc;
	vg_db_bind_text(s, 1, host);
	while ((rc = vg_db_step(s)) == 1) {
		const char *id = vg_db_column_text(s, 1);
		const char *m = vg_db_column_text(s, 2);

		if (id && m && (rc = fn(ctx, (int)vg_db_column_int64(s, 0), id, m)))
			break;
	}
	vg_db_reset(s);
	return rc < 0 ? map_err(rc) : rc;
}

int64_t vg_registry_held_commit_ms(const struct vg_registry *r)
{
	return r ? r->held_commit_ms : INT64_MAX;
}

int vg_registry_marks(struct vg_registry *r,
		      int (*fn)(void *ctx, const char *host, const char *node,
				int64_t until_ms),
		      void *ctx)
{
	struct vg_db_stmt *s;
	int rc;

	if (!r || !fn)
		return -EINVAL;
	if ((rc = stmt(r, ST_MARKS, &s)))
		return rc;
	while ((rc = vg_db_step(s)) == 1) {
		const char *h = vg_db_column_text(s, 0), *n = vg_db_column_text(s, 1);
		if ((rc = fn(ctx, h ? h : "", n ? n : "", vg_db_column_int64(s, 2))))
			break;
	}
	vg_db_reset(s);
	if (rc < 0)
		snprintf(r->err, sizeof(r->err), "%s", vg_db_errmsg(r->db));
	return rc < 0 ? map_err(rc) : rc;
}

int vg_registry_marks_release(struct vg_registry *r, const char *node,
			      uint64_t *released)
{
	return release_node(r, ST_HOLD_CLEAR, node, 0, released);
}

/* The commit of rows (host, stream, seq, time) at once: ST_ACK's upsert
 * with one VALUES row per stream; RETURNING names the rows it applied
 * (inserted, or updated because seq was above the stored one). */
static const char *ack_sql(struct vg_registry *r, size_t rows)
{
	static const char head[] =
		"INSERT INTO streams(host, stream, last_seq, last_time_ms, rank, "
		"node, commit_ms) VALUES";
	static const char tail[] =
		" ON CONFLICT(host, stream) DO UPDATE SET "
		"last_seq = excluded.last_seq, last_time_ms = " GREATER(
			"streams.last_time_ms", "excluded.last_time_ms") ", "
									 "rank = excluded.rank, node = excluded.node, "
									 "commit_ms = excluded.commit_ms "
									 "WHERE streams.last_seq < excluded.last_seq "
									 "RETURNING host, stream";
	size_t cap = sizeof(head) + sizeof(tail) + rows * 160, len;
	char *t;

	if (r->ack_sql[rows])
		return r->ack_sql[rows];
	if (!(t = malloc(cap)))
		return NULL;
	len = (size_t)snprintf(t, cap, "%s", head);
	for (size_t i = 0; i < rows; i++) {
		int p = (int)(i * 6);
		len += (size_t)snprintf(t + len, cap - len,
					"%s(?%d, ?%d, ?%d, ?%d, (SELECT coalesce(max(rank), 0) "
					"+ 1 FROM streams WHERE host = ?%d), ?%d, ?%d)",
					i ? ", " : "", p + 1, p + 2, p + 3, p + 4, p + 1,
					p + 5, p + 6);
	}
	snprintf(t + len, cap - len, "%s", tail);
	return r->ack_sql[rows] = t;
}

/* Whether a sorts before b: by host (bytes), then stream. */
static int mark_before(const struct vg_registry_mark *a,
		       const struct vg_registry_mark *b)
{
	int c = strcmp(a->host, b->host);

	return c < 0 || (!c && a->stream < b->stream);
}

static int commit_group(struct vg_registry *r, const struct vg_registry_mark *mk,
			size_t n, int *rcs);

int vg_registry_commit_group(struct vg_registry *r,
			     const struct vg_registry_mark *mk, size_t n, int *rcs)
{
	int rc;

	if (!r || (n && (!mk || !rcs)))
		return -EINVAL;
	/* the group's commits end by its earliest deadline */
	r->deadline_ms = 0;
	for (size_t i = 0; i < n; i++)
		r->deadline_ms = earlier(r->deadline_ms, mk[i].deadline_ms);
	rc = commit_group(r, mk, n, rcs);
	for (size_t i = 0; i < n && !rc; i++)
		rcs[i] = cut_or_cancel(r, rcs[i]);
	r->deadline_ms = 0;
	return rc;
}

static int commit_group(struct vg_registry *r, const struct vg_registry_mark *mk,
			size_t n, int *rcs)
{
	size_t idx[VG_REGISTRY_GROUP_MAX], rows = 0;
	struct vg_db_stmt *s = NULL;
	const char *q;
	int rc;

	if (!r || (n && (!mk || !rcs)))
		return -EINVAL;
	if (n == 1) { /* with vg_registry_seen's shortcut */
		rcs[0] = commit_one(r, mk[0].host, mk[0].stream, mk[0].seq,
				    mk[0].time_ms, mk[0].hold);
		return 0;
	}
	/* one statement for the streams this handle committed (their row
	 * exists: no stream is added, nothing to prune) of distinct hosts
	 * (each row's rank is its host's newest); the others alone */
	for (size_t i = 0; i < n; i++) {
		struct committed *c = committed_slot(r, mk[i].host, mk[i].stream);
		int solo = rows == VG_REGISTRY_GROUP_MAX || mk[i].hold || !c || !c->host[0] ||
			   c->stream != mk[i].stream || strcmp(c->host, mk[i].host) ||
			   c->seq >= mk[i].seq;

		for (size_t j = 0; j < rows && !solo; j++)
			solo = !strcmp(mk[idx[j]].host, mk[i].host);
		rcs[i] = 2; /* not decided */
		if (!solo)
			idx[rows++] = i;
	}
	/* the statement's rows in one total order (host, then stream; its
	 * hosts are distinct): PostgreSQL locks them in VALUES order, so two
	 * collectors committing groups of the same hosts, arrived in
	 * opposite orders, queue on the first row instead of each holding
	 * one row and waiting for the other's (a deadlock: one statement
	 * aborted, its whole group answered RETRY) */
	for (size_t j = 1; j < rows; j++) {
		size_t k = j, v = idx[j];

		for (; k && mark_before(&mk[v], &mk[idx[k - 1]]); k--)
			idx[k] = idx[k - 1];
		idx[k] = v;
	}
	if (rows == 1) {
		rcs[idx[0]] = vg_registry_commit(r, mk[idx[0]].host, mk[idx[0]].stream,
						 mk[idx[0]].seq, mk[idx[0]].time_ms);
		rows = 0;
	}
	if (rows) {
		int b = bounded(r), cut_early = 0;

		rc = (q = ack_sql(r, rows)) ? map_err(vg_db_prepare(r->db, q, &s)) : -ENOMEM;
		if (!rc && b)
			cut_early = (rc = bound_begin(r)) != 0;
		for (size_t j = 0; j < rows && !rc; j++) {
			const struct vg_registry_mark *m = &mk[idx[j]];
			bind_ack(r, s, (int)j * 6, m->host, m->stream, m->seq, m->time_ms);
			rcs[idx[j]] = 1; /* unless RETURNING names it */
		}
		/* bounded: BEGIN, bound, statement and COMMIT in one wait,
		 * the statement's rows read after the COMMIT */
		if (!rc && b && !(rc = map_err(vg_db_query_queued(s))))
			rc = map_err(vg_db_commit(r->db));
		while (!rc && (rc = vg_db_step(s)) == 1) {
			const char *h = vg_db_column_text(s, 0);
			uint64_t st = (uint64_t)vg_db_column_int64(s, 1);

			for (size_t j = 0; j < rows; j++)
				if (mk[idx[j]].stream == st && h && !strcmp(mk[idx[j]].host, h))
					rcs[idx[j]] = 0;
			rc = 0;
		}
		if (rc < 0)
			rc = map_err(rc);
		if (s)
			vg_db_reset(s);
		if (rc && !cut_early) /* else bound_begin's message */
			snprintf(r->err, sizeof(r->err), "%s", vg_db_errmsg(r->db));
		if (rc && vg_db_in_transaction(r->db))
			vg_db_rollback(r->db);
		for (size_t j = 0; j < rows; j++) {
			const struct vg_registry_mark *m = &mk[idx[j]];
			if (rc)
				rcs[idx[j]] = rc;
			committed_note(r, m->host, m->stream, rcs[idx[j]] ? 0 : m->seq);
		}
	}
	for (size_t i = 0; i < n; i++)
		if (rcs[i] == 2)
			rcs[i] = commit_one(r, mk[i].host, mk[i].stream, mk[i].seq,
					    mk[i].time_ms, mk[i].hold);
	return 0;
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

/* Upsert one metrics row (the newest value wins), if the resource row
 * exists: -ENOENT when it does not (another collector's sweep deleted it
 * while this handle's cache still held it). */
static int write_metric(struct vg_registry *r, const char *id,
			const char *metric, int kind, const char *unit,
			double value, int64_t time_ms)
{
	struct vg_db_stmt *s;
	int rc;

	if ((rc = need_txn(r)) || (rc = stmt(r, ST_METRIC_UPSERT, &s)))
		return rc;
	vg_db_bind_text(s, 1, id);
	vg_db_bind_text(s, 2, metric);
	vg_db_bind_int64(s, 3, kind);
	vg_db_bind_text(s, 4, unit);
	if (isfinite(value))
		vg_db_bind_double(s, 5, value);
	vg_db_bind_int64(s, 6, time_ms);
	if ((rc = exec_done(s)))
		return rc;
	return vg_db_changes(r->db) > 0 ? 0 : -ENOENT;
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

/* Does this report observe the resource (OBSERVES)? A project's points
 * on its custom resource do: nothing else reports it. */
static int observes(const struct vg_batch *b, const struct vg_resource *res)
{
	return !b->published || res->type == VG_RT_CUSTOM;
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

/* The resource row upsert; the cache learns what the row holds now. An
 * agent's report over a custom row (TAKEOVER) drops the row's metrics
 * first (ST_DROP_CUSTOM, queued before the upsert: no extra round trip);
 * the cache then forgets the resource, so no flush writes the publisher's
 * values back, and *cp is the new, empty entry the samples go to. */
static int write_resource(struct vg_registry *r, const struct vg_batch *b,
			  const struct vg_resource *res,
			  struct vg_lastval_resource **cp, uint64_t ident)
{
	struct vg_lastval_resource *c = *cp;
	struct vg_db_stmt *s, *drop = NULL;
	char *attrs;
	int rc = 0, took = 0, dropped = 0;
	int64_t first_seen = 0;
	int ended = 0;

	attrs = attrs_json(b, res, &rc);
	if (rc)
		return rc;
	if ((rc = need_txn(r))) {
		free(attrs);
		return rc;
	}
	if (res->type != VG_RT_CUSTOM) {
		if (!(rc = stmt(r, ST_DROP_CUSTOM, &drop))) {
			vg_db_bind_text(drop, 1, res->id);
			rc = map_err(vg_db_query_queued(drop));
		}
		if (rc) {
			if (drop)
				vg_db_reset(drop);
			free(attrs);
			return rc;
		}
	}
	if ((rc = stmt(r, ST_RES_UPSERT, &s))) {
		vg_db_reset(drop);
		free(attrs);
		return rc;
	}
	vg_db_bind_text(s, 1, res->id);
	vg_db_bind_int64(s, 2, res->type);
	vg_db_bind_text(s, 3, b->host);
	vg_db_bind_text(s, 4, res->name);
	vg_db_bind_text(s, 5, res->parent);
	vg_db_bind_text(s, 6, res->project);
	vg_db_bind_text(s, 7, res->user);
	vg_db_bind_text(s, 8, res->flavor);
	vg_db_bind_text(s, 9, attrs);
	vg_db_bind_int64(s, 10, res->time_ms);
	vg_db_bind_int64(s, 11, res->state == VG_RSTATE_ENDED);
	vg_db_bind_int64(s, 12, observes(b, res));
	rc = vg_db_step(s);
	if (rc == 0) { /* the row holds another type: nothing written */
		vg_db_reset(s);
		vg_db_reset(drop);
		free(attrs);
		c->ident = 0;
		r->stats.resources_conflicting++;
		return -EEXIST;
	}
	if (rc == 1) { /* first_seen_ms, ended_at_ms, took identity */
		first_seen = vg_db_column_int64(s, 0);
		ended = !vg_db_column_is_null(s, 1);
		took = vg_db_column_int64(s, 2) != 0;
		rc = vg_db_step(s);
	}
	vg_db_reset(s);
	free(attrs);
	if (rc != 0) {
		vg_db_reset(drop);
		return rc < 0 ? map_err(rc) : -EIO;
	}
	/* the drop ran before the upsert (both waited for by now) */
	if (drop) {
		while ((rc = vg_db_step(drop)) == 1)
			dropped++;
		vg_db_reset(drop);
		if (rc < 0)
			return map_err(rc);
	}
	if (dropped) {
		/* in the shared state, for every collector's publish quota */
		if ((rc = stmt(r, ST_DROPS_ADD, &s)))
			return rc;
		vg_db_bind_text(s, 1, res->id);
		vg_db_bind_int64(s, 2, dropped);
		if ((rc = exec_done(s)))
			return rc;
		r->stats.custom_metrics_dropped += (uint64_t)dropped;
		vg_lastval_forget(r->lv, res->id);
		if (!(c = vg_lastval_res(r->lv, res->id, 1)))
			return -ENOMEM;
		*cp = c;
	}
	c->first_seen = first_seen;
	c->ended = ended;
	/* an older report left the row's newer identity: the cache must not
	 * believe the row holds this one (the next report writes again) */
	c->ident = took ? ident : 0;
	r->stats.resource_rows++;
	if (res->state != VG_RSTATE_ENDED && observes(b, res) && res->time_ms > c->last_seen)
		c->last_seen = res->time_ms; /* the row has it */
	return push_ptr(&r->fres, &r->nfres, &r->capfres, c);
}

/* Register one resource of a batch. The fast path (an active resource
 * whose row already holds this identity, and known metrics) writes
 * nothing: the new last_seen and values wait in the cache. A metric row
 * refused because the resource row is gone (write_metric: another
 * collector swept the resource since this cache learned it) makes the
 * cache forget the resource and the report register it anew, rows and
 * all, as on the collector that swept it (docs/operations.md "Ended
 * series"). */
static int update_resource(struct vg_registry *r, const struct vg_batch *b,
			   const struct vg_resource *res)
{
	const struct vg_sample *smp = vg_resource_samples(b, res);
	struct vg_lastval *t = r->lv;
	struct vg_lastval_resource *c;
	uint64_t ident;
	int rc = 0, again = 1;

	if (!vg_name_valid(res->id) || !vg_rtype_name(res->type))
		return 0; /* refused by the store too; nothing to register */
	ident = ident_of(b, res);
	vg_lastval_lock(t);
anew:
	if (!(c = vg_lastval_res(t, res->id, 1))) {
		rc = -ENOMEM;
	} else if (c->ident == ident && !c->ended &&
		   res->state != VG_RSTATE_ENDED && res->time_ms >= c->first_seen) {
		if (observes(b, res))
			rc = vg_lastval_seen(t, c, res->time_ms);
	} else if ((rc = write_resource(r, b, res, &c, ident)) == -EEXIST) {
		vg_lastval_unlock(t); /* another type's row: not this report's */
		return 0;
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
		if (rc == -ENOENT && again) {
			again = 0; /* the new rows cannot be gone again */
			r->stats.gone_resources++;
			vg_lastval_forget(t, res->id);
			rc = 0;
			goto anew;
		}
		if (rc == -ENOENT) /* deleted again meanwhile: the batch retries */
			rc = -EAGAIN;
		if (rc || (rc = push_ptr(&r->fmet, &r->nfmet, &r->capfmet, m)))
			break;
		r->stats.metric_rows++;
		m->kind = smp[i].kind;
		m->unit = unit;
		if (res->time_ms > m->time_ms) { /* the row has it */
			m->value = isfinite(smp[i].value) ? smp[i].value : NAN;
			m->time_ms = res->time_ms;
		}
	}
	vg_lastval_unlock(t);
	return rc;
}

/* Rows per statement of a flush on sqlite: the dirty values go in
 * multi-row statements of these sizes (largest first), each a cached
 * statement, so a flush of n values costs about n / 64 statements, not n. */
static const int flush_sizes[] = {64, 16, 4, 1};
/* Rows per statement of a flush on PostgreSQL (flush_kind_pg): each
 * column is one array parameter, so any number of rows is one statement
 * of one text; bounded so that the server's unnest of a statement's rows
 * stays well inside work_mem (4 MB by default: ~0.5 MB here) and the
 * literals stay small. */
#define FLUSH_PG_ROWS 4096

/* A metrics row written by the flush: the newest value wins (of two at
 * one time, the first: the store skips the second), as in
 * ST_METRIC_UPSERT. A (resource, metric) appears once in a flush, as
 * PostgreSQL's upsert requires. */
#define METRICS_NEWEST                                    \
	" ON CONFLICT(resource_id, name) DO UPDATE SET "  \
	"kind = excluded.kind, unit = " KEEP_UNIT ", "    \
	"last_value = CASE WHEN excluded.last_time_ms > " \
	"metrics.last_time_ms THEN excluded.last_value "  \
	"ELSE metrics.last_value END, "                   \
	"last_time_ms = " GREATER("metrics.last_time_ms", "excluded.last_time_ms")

/* A flush writes a metrics row only while its resource row exists: the
 * sweep of ended resources on another collector (vg_registry_remove_ended)
 * may have deleted it since this collector's cache took the value. On
 * sqlite the check is in the statement (RESOURCE_EXISTS), and the one
 * writer's check and write see the same rows. On PostgreSQL the check is
 * the foreign key of metrics (step 7), also in the statement, and it sees
 * a delete that committed while the statement ran (a check in the SQL
 * would read the statement's snapshot); a row of a resource that is gone
 * fails the statement, and the flush finds which resources are gone and
 * forgets them before it is tried again (flush_gone_after). The filter in
 * the SQL would cost every flush: the server's CPU per value of
 * bench/registry_flush rose ~25 % at 100,000 series with it, the key's
 * triggers ~5 % (docs/benchmarks.md "Rows of swept resources"). */
#define RESOURCE_EXISTS(id) "EXISTS (SELECT 1 FROM resources WHERE resources.id = " id ")"

/* The SQL of a sqlite flush statement of n rows: metrics (6 parameters a
 * row, those of resources that exist) or last-seen times (2 a row, only
 * forward). The last-seen update
 * also names its ids in an IN list (the same parameters again): on
 * sqlite it changes nothing; it is the form PostgreSQL ran before it got
 * flush_kind_pg's arrays (the join alone hashed the VALUES and scanned
 * the whole table). */
static void flush_sql(int metrics, int n, char *sql, size_t len)
{
	size_t k = 0;

	if (metrics)
		k += (size_t)snprintf(sql + k, len - k,
				      "INSERT INTO metrics(resource_id, name, kind, unit, "
				      "last_value, last_time_ms) SELECT * FROM (VALUES");
	else
		k += (size_t)snprintf(sql + k, len - k,
				      "UPDATE resources SET last_seen_ms = v.column2 "
				      "FROM (VALUES");
	for (int i = 0; i < n; i++) {
		if (metrics)
			k += (size_t)snprintf(sql + k, len - k,
					      "%s(?%d, ?%d, ?%d, ?%d, ?%d, ?%d)",
					      i ? ", " : " ", 6 * i + 1, 6 * i + 2,
					      6 * i + 3, 6 * i + 4, 6 * i + 5, 6 * i + 6);
		else
			k += (size_t)snprintf(sql + k, len - k,
					      "%s(CAST(?%d AS TEXT), CAST(?%d AS BIGINT))",
					      i ? ", " : " ", 2 * i + 1, 2 * i + 2);
	}
	if (metrics)
		snprintf(sql + k, len - k, ") AS v WHERE " RESOURCE_EXISTS("v.column1") "%s", METRICS_NEWEST);
	else {
		k += (size_t)snprintf(sql + k, len - k,
				      ") AS v WHERE resources.id = v.column1 AND "
				      "resources.last_seen_ms < v.column2 AND "
				      "resources.id IN (");
		for (int i = 0; i < n; i++)
			k += (size_t)snprintf(sql + k, len - k, "%s?%d", i ? ", " : "",
					      2 * i + 1);
		snprintf(sql + k, len - k, ")");
	}
}

/* PostgreSQL's flush statements: each column one array parameter,
 * unnested into rows. The server plans a statement with a VALUES list or
 * an IN list of parameters anew at every call for as long as a custom
 * plan (made for the call's values) looks cheaper than a generic one:
 * the last-seen update was (130 plans for 129 calls at 100,000 series,
 * 1.3 ms of planning each). With arrays, one text whatever the rows, the
 * server keeps one generic plan after five calls; the ids' "= ANY" makes
 * that plan fetch the rows by the primary key (a generic plan counts an
 * array parameter as a few values), and plans_refresh has the table analyzed as it grows so that the
 * plan kept is not one made on a nearly empty table (a scan). sqlite has
 * no arrays: it runs flush_sql's statements. */
static const char flush_metrics_pg[] =
	"INSERT INTO metrics(resource_id, name, kind, unit, last_value, last_time_ms) "
	"SELECT * FROM unnest(CAST(?1 AS TEXT[]), CAST(?2 AS TEXT[]), "
	"CAST(?3 AS BIGINT[]), CAST(?4 AS TEXT[]), CAST(?5 AS DOUBLE PRECISION[]), "
	"CAST(?6 AS BIGINT[]))" METRICS_NEWEST;
static const char flush_seen_pg[] =
	"UPDATE resources SET last_seen_ms = v.t FROM unnest(CAST(?1 AS TEXT[]), "
	"CAST(?2 AS BIGINT[])) AS v(id, t) WHERE resources.id = v.id AND "
	"resources.last_seen_ms < v.t AND resources.id = ANY(CAST(?1 AS TEXT[]))";

/* PostgreSQL: rows w[0..n) (all metrics, or all last-seen times) in the
 * open transaction, FLUSH_PG_ROWS to a statement. */
static int flush_kind_pg(struct vg_registry *r, const struct vg_lastval_row *const *w,
			 size_t n, int metrics, size_t *written)
{
	int cols = metrics ? 6 : 2, rc = 0;

	for (size_t i = 0; i < n && !rc;) {
		size_t end = n - i > FLUSH_PG_ROWS ? i + FLUSH_PG_ROWS : n;
		struct vg_db_stmt *s;

		for (int c = 0; c < cols; c++)
			vg_db_array_clear(&r->lit[c]);
		for (; i < end && !rc; i++) {
			const struct vg_lastval_row *x = w[i];
			rc = vg_db_array_text(&r->lit[0], x->res->id);
			if (metrics) {
				rc = rc ? rc : vg_db_array_text(&r->lit[1], x->m->name);
				rc = rc ? rc : vg_db_array_int(&r->lit[2], x->kind);
				rc = rc ? rc : vg_db_array_text(&r->lit[3], x->unit);
				rc = rc ? rc : vg_db_array_double(&r->lit[4], x->value);
				rc = rc ? rc : vg_db_array_int(&r->lit[5], x->time_ms);
			} else {
				rc = rc ? rc : vg_db_array_int(&r->lit[1], x->time_ms);
			}
		}
		if (rc || (rc = need_txn(r)) ||
		    (rc = map_err(vg_db_prepare(r->db, metrics ? flush_metrics_pg : flush_seen_pg, &s))))
			break;
		for (int c = 0; c < cols && !rc; c++) {
			const char *t = vg_db_array_end(&r->lit[c]);
			rc = t ? vg_db_bind_text(s, c + 1, t) : -ENOMEM;
		}
		if (rc) {
			vg_db_reset(s);
			break;
		}
		if (!(rc = exec_done(s)))
			*written += (size_t)vg_db_changes(r->db);
	}
	return rc;
}

/* Write rows w[0..n) (all metrics, or all last-seen times) in the open
 * transaction: in statements of flush_sizes rows on sqlite, of arrays on
 * PostgreSQL. *written: the rows the statements changed. */
static int flush_kind(struct vg_registry *r, const struct vg_lastval_row *const *w,
		      size_t n, int metrics, size_t *written)
{
	char sql[64 * 64 + 512];
	size_t i = 0;
	int rc = 0;

	if (vg_db_engine(r->db) == VG_DB_POSTGRESQL)
		return flush_kind_pg(r, w, n, metrics, written);
	for (size_t z = 0; z < sizeof(flush_sizes) / sizeof(flush_sizes[0]) && !rc; z++) {
		int rows = flush_sizes[z];
		for (; n - i >= (size_t)rows && !rc; i += (size_t)rows) {
			struct vg_db_stmt *s;

			flush_sql(metrics, rows, sql, sizeof(sql));
			if ((rc = need_txn(r)) ||
			    (rc = map_err(vg_db_prepare(r->db, sql, &s))))
				break;
			for (int j = 0; j < rows; j++) {
				const struct vg_lastval_row *x = w[i + (size_t)j];
				if (metrics) {
					vg_db_bind_text(s, 6 * j + 1, x->res->id);
					vg_db_bind_text(s, 6 * j + 2, x->m->name);
					vg_db_bind_int64(s, 6 * j + 3, x->kind);
					vg_db_bind_text(s, 6 * j + 4, x->unit);
					if (isfinite(x->value))
						vg_db_bind_double(s, 6 * j + 5, x->value);
					vg_db_bind_int64(s, 6 * j + 6, x->time_ms);
				} else {
					vg_db_bind_text(s, 2 * j + 1, x->res->id);
					vg_db_bind_int64(s, 2 * j + 2, x->time_ms);
				}
			}
			if (!(rc = exec_done(s)))
				*written += (size_t)vg_db_changes(r->db);
		}
	}
	return rc;
}

/* The metrics statements of a flush wrote fewer rows than they had: the
 * resource rows of some are gone (another collector swept them since
 * this cache took their values, or before). Each resource of rows
 * w[0..n) whose row is not there goes in r->gone, to be forgotten once
 * the transaction ends (forget_gone): so the receiver writes its rows
 * anew at its next report, as on the collector that swept it, instead of
 * believing they exist. Runs only when rows were not written (rare):
 * one lookup per resource of the flush (a resource's rows are together:
 * vg_lastval_take_dirty). */
static int flush_find_gone(struct vg_registry *r, const struct vg_lastval_row *const *w,
			   size_t n)
{
	const struct vg_lastval_resource *last = NULL;
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		struct vg_db_stmt *s;

		if (w[i]->res == last)
			continue;
		last = w[i]->res;
		if ((rc = map_err(vg_db_prepare(r->db, "SELECT 1 FROM resources WHERE id = ?1",
						&s))))
			break;
		vg_db_bind_text(s, 1, last->id);
		rc = vg_db_step(s);
		vg_db_reset(s);
		if (rc == 0) /* no row */
			rc = push_ptr(&r->gone, &r->ngone, &r->capgone, (void *)last);
		else
			rc = rc < 0 ? map_err(rc) : 0;
	}
	return rc;
}

static void forget_gone(struct vg_registry *r);

/* PostgreSQL: a flush that failed on the foreign key of metrics (step 7:
 * a resource of its rows is gone) would fail again at every try. After
 * the rollback, outside any transaction, the resources of its metrics
 * rows that are gone are forgotten (their values dropped), so the next
 * try writes the others. One statement whatever the rows; the matching
 * of its answer to the rows is a scan per resource found gone (rare). */
static void flush_gone_after(struct vg_registry *r)
{
	static const char sql[] =
		"SELECT v.id FROM unnest(CAST(?1 AS TEXT[])) AS v(id) WHERE NOT EXISTS "
		"(SELECT 1 FROM resources WHERE resources.id = v.id)";
	const struct vg_lastval_resource *last = NULL;
	struct vg_db_stmt *s;
	int rc = 0;

	if (vg_db_engine(r->db) != VG_DB_POSTGRESQL || !strstr(r->err, "metrics_resource"))
		return;
	vg_db_array_clear(&r->lit[0]);
	for (size_t i = 0; i < r->nrows && !rc; i++)
		if (r->rows[i].m && r->rows[i].res != last) {
			last = r->rows[i].res;
			rc = vg_db_array_text(&r->lit[0], last->id);
		}
	if (rc || vg_db_prepare(r->db, sql, &s))
		return;
	const char *t = vg_db_array_end(&r->lit[0]);
	if (!t || vg_db_bind_text(s, 1, t)) {
		vg_db_reset(s);
		return;
	}
	r->ngone = 0;
	while (vg_db_step(s) == 1) {
		const char *id = vg_db_column_text(s, 0);
		size_t i = 0;

		while (i < r->nrows && (!r->rows[i].m || strcmp(r->rows[i].res->id, id)))
			i++;
		if (i < r->nrows && push_ptr(&r->gone, &r->ngone, &r->capgone, r->rows[i].res))
			break;
	}
	vg_db_reset(s);
	if (r->ngone)
		forget_gone(r);
}

/* After the flush's transaction committed: forget the resources
 * flush_find_gone found gone, unless the cache has forgotten one already
 * (a takeover, a sweep of this collector) and perhaps made a new entry
 * for its id since. Their values that waited are dropped with them
 * (stats.gone_resources counts the resources). */
static void forget_gone(struct vg_registry *r)
{
	vg_lastval_lock(r->lv);
	for (size_t i = 0; i < r->ngone; i++) {
		const struct vg_lastval_resource *g = r->gone[i];
		if (vg_lastval_res(r->lv, g->id, 0) == g) {
			vg_lastval_forget(r->lv, g->id);
			r->stats.gone_resources++;
		}
	}
	vg_lastval_unlock(r->lv);
	r->ngone = 0;
}

/* Take every dirty value out of the cache and write it in the open
 * transaction; on failure undo_lastval puts them back. */
static int flush_rows(struct vg_registry *r)
{
	const struct vg_lastval_row **met, **seen;
	size_t n, nm = 0, ns = 0, written = 0;
	int rc;

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
	r->forgets0 = vg_lastval_forgets(r->lv);
	r->nrows = vg_lastval_take_dirty(r->lv, r->rows);
	vg_lastval_unlock(r->lv);
	r->nlater = 0;
	if (!r->nrows)
		return 0;
	if (vg_registry_test_point)
		vg_registry_test_point("flush-taken");
	/* names live as long as the cache and values, kinds and units are
	 * snapshots: no lock is needed while writing, on whatever thread */
	if (!(met = calloc(2 * r->nrows, sizeof(*met))))
		return -ENOMEM; /* the caller puts the rows back */
	seen = met + r->nrows;
	for (size_t i = 0; i < r->nrows; i++) {
		if (!r->rows[i].m)
			seen[ns++] = &r->rows[i];
		else if (r->rows[i].kind >= 0)
			met[nm++] = &r->rows[i];
		else /* its row's write rolled back: the receiver writes the
		      * row again; until then the value waits (kept_later) */
			r->nlater++;
	}
	r->stats.flushed_values += nm + ns;
	if (ns > r->seen_max)
		r->seen_max = ns;
	rc = flush_kind(r, met, nm, 1, &written);
	if (!rc && written < nm) /* some resources' rows are gone */
		rc = flush_find_gone(r, met, nm);
	if (!rc)
		rc = flush_kind(r, seen, ns, 0, &written);
	free(met);
	return rc;
}

/* A flush alone in its transaction, on a connection of its own (the
 * flusher), may have written rows of a resource whose rows another
 * transaction deleted meanwhile (an agent's report taking over a custom
 * resource: ST_DROP_CUSTOM; the sweep of ended resources:
 * vg_registry_remove_ended), bringing them back. The receiver forgets
 * such a resource before its transaction commits, the sweep before its
 * transaction begins; so, on PostgreSQL,
 * either the flush's statements locked the rows first (the delete then
 * waits for this commit, and deletes what the flush wrote), or they
 * waited for the delete's commit, after which the resource is gone here:
 * 1 = roll back (the other rows are written again by the next flush).
 * Read without the lastval lock: the receiver may hold it while it waits
 * for a row this transaction locked. */
static int flush_met_forgotten(struct vg_registry *r)
{
	if (vg_lastval_forgets(r->lv) == r->forgets0)
		return 0;
	for (size_t i = 0; i < r->nrows; i++)
		if (vg_lastval_is_gone(r->rows[i].res))
			return 1;
	return 0;
}

/* A flush in a batch's transaction (sqlite's receiver; PostgreSQL's
 * when its flusher could not start) cannot roll back without the batch.
 * The metrics rows it wrote of a resource forgotten since it took them
 * (a sweep of ended resources deleted it on another connection and
 * committed before this transaction could write: vg_registry_remove_ended
 * forgets first) are deleted again in the same transaction, if the
 * resource row is gone: a resource this batch brought back, or took over
 * (its custom rows already dropped by ST_DROP_CUSTOM, after the flush),
 * keeps its rows. On sqlite the transaction holds the write lock and
 * sees the sweep's commit; on PostgreSQL a flush row that met the
 * sweep's deleted row waited for its commit, and one written before it
 * is deleted by the sweep. */
static int flush_drop_orphans(struct vg_registry *r)
{
	static const char sql[] =
		"DELETE FROM metrics WHERE resource_id = ?1 AND NOT EXISTS "
		"(SELECT 1 FROM resources WHERE id = ?1)";
	const struct vg_lastval_resource *last = NULL;
	int rc = 0;

	if (!vg_db_in_transaction(r->db) || vg_lastval_forgets(r->lv) == r->forgets0)
		return 0;
	for (size_t i = 0; i < r->nrows && !rc; i++) {
		const struct vg_lastval_resource *res = r->rows[i].res;
		struct vg_db_stmt *s;

		if (!r->rows[i].m || r->rows[i].kind < 0 || res == last ||
		    !vg_lastval_is_gone(res))
			continue;
		last = res;
		if ((rc = map_err(vg_db_prepare(r->db, sql, &s))))
			break;
		vg_db_bind_text(s, 1, res->id);
		rc = exec_done(s);
	}
	return rc;
}

/* Put back the values flush_rows kept for later (lastval lock held). */
static void kept_later(struct vg_registry *r)
{
	for (size_t i = 0; i < r->nrows && r->nlater; i++)
		if (r->rows[i].m && r->rows[i].kind < 0) {
			(void)vg_lastval_redirty(r->lv, &r->rows[i], 1);
			r->nlater--;
		}
	r->nlater = 0;
}

/* The transaction rolled back: the cache must not believe the rows it
 * wrote exist, and the values it took must be written again. */
static void undo_lastval(struct vg_registry *r)
{
	vg_lastval_lock(r->lv);
	vg_lastval_redirty(r->lv, r->rows, r->nrows);
	r->nlater = 0;
	for (size_t i = 0; i < r->nfres; i++)
		((struct vg_lastval_resource *)r->fres[i])->ident = 0;
	for (size_t i = 0; i < r->nfmet; i++)
		((struct vg_lastval_series *)r->fmet[i])->kind = -1;
	vg_lastval_unlock(r->lv);
	r->flushed_ms = 0; /* retry the taken values with the next batch */
}

/* PostgreSQL keeps one plan of the flush's last-seen update (an array
 * parameter: no per-call choice) once it has run a few times, made from
 * the table's size at that moment, until the table's statistics change.
 * Made while the registry's resources was nearly empty (a cloud's first
 * reports), that plan scans the table, and it would be kept as the table
 * grows: so each time the resources rows this handle wrote have doubled
 * (64, 128, ...: a dozen times up to a million rows, then never again in
 * a steady cloud; a restart writes each row once more), it runs ANALYZE
 * on the table between two transactions, which also makes the server
 * plan the statements that use it anew. (billing/meter.c has its own
 * connection planned keyed instead, "Keyed plans"; a registry handle
 * also serves the API's lists and filters, which such planner settings
 * would not suit.) Its
 * errors are not the batch's (a role that does not own the table gets a warning and nothing
 * happens), and it never waits for the table's lock (SKIP_LOCKED: a
 * vacuum, or another collector's ANALYZE; the next doubling tries
 * again). metrics needs none: its flush is an upsert (the conflict is
 * found by the primary key, whatever the plan). */
static void plans_refresh(struct vg_registry *r)
{
	/* the rows the handle knows: the ones it wrote (the receiver's), or
	 * the most last-seen times one flush wrote (the flusher's) */
	uint64_t rows = r->stats.resource_rows > r->seen_max ? r->stats.resource_rows
							     : r->seen_max;

	if (vg_db_engine(r->db) != VG_DB_POSTGRESQL || vg_db_in_transaction(r->db) ||
	    rows < r->analyze_at)
		return;
	r->analyze_at = rows * 2;
	(void)vg_db_exec(r->db, "ANALYZE (SKIP_LOCKED) resources");
}

/* One transaction: the due flush, then the batch (NULL: flush only). */
static int in_transaction(struct vg_registry *r, const struct vg_batch *b,
			  int flush)
{
	int rc, forgotten = 0;

	plans_refresh(r);

	r->nrows = r->nfres = r->nfmet = r->ngone = 0;
	/* the transaction begins at the first write (need_txn) */
	if (flush)
		rc = flush_rows(r);
	else
		rc = 0;
	for (size_t i = 0; b && !rc && i < b->nres; i++) {
		/* each resource's statements bounded by the time left then */
		if (bounded(r) && vg_db_in_transaction(r->db) && (rc = bound_next(r)))
			break;
		rc = update_resource(r, b, &b->res[i]);
	}
	if (!rc && b && flush)
		rc = flush_drop_orphans(r);
	if (!rc && !b && flush_met_forgotten(r)) {
		forgotten = 1;
		rc = -EAGAIN;
	}
	if (!rc && vg_db_in_transaction(r->db))
		rc = map_err(vg_db_commit(r->db));
	if (rc) {
		if (forgotten)
			snprintf(r->err, sizeof(r->err), "flush: a resource's rows were "
							 "deleted meanwhile; written again later");
		else
			snprintf(r->err, sizeof(r->err), "%s", vg_db_errmsg(r->db));
		if (vg_db_in_transaction(r->db))
			vg_db_rollback(r->db);
		undo_lastval(r);
		if (flush)
			flush_gone_after(r);
	} else if (flush) {
		r->flushed_ms = vg_monotonic_ms();
		if (r->nlater) {
			vg_lastval_lock(r->lv);
			kept_later(r);
			vg_lastval_unlock(r->lv);
		}
		if (r->ngone)
			forget_gone(r);
	}
	r->ngone = 0;
	r->nrows = r->nfres = r->nfmet = 0;
	return rc;
}

/* ---- the flusher ---------------------------------------------------------------
 *
 * On PostgreSQL the periodic flush is not the receiver's: at 100,000
 * series it wrote ~100,000 rows in the batch's transaction every 10 s,
 * and held the receiver (and every agent's acknowledgement) ~0.5 s each
 * time (issue 15). The first update of a handle starts a thread that
 * opens a handle of its own on the same state (its own connection,
 * sharing the last-value cache) and flushes every LASTVAL_FLUSH_MS: it
 * swaps the dirty values out under the cache's lock (a copy of the
 * marks: 1-10 ms for 102,500 values on the loaded 2-core machine, the
 * receiver's longest wait for it) and writes them in its own
 * transaction; the receiver's transactions carry only its batches' rows.
 * Nothing acknowledged waits for it: the values are the journal's and
 * the RRD files', the last values and last-seen times are a cache of
 * them the database may hold up to 10 s late after a kill -9 (as
 * before), and a batch's rows (new resources and metrics, identity) and
 * its sequence number stay in the receiver's transactions, committed
 * before the ack. A failed flush puts its values back and tries again
 * after FLUSHER_RETRY_MS; the receiver never sees it (stats.
 * flush_failures). Two connections writing the same rows: last_seen and
 * last_value only move forward in both (each statement compares with
 * the row), so their order does not matter; a resource whose rows the
 * receiver deletes meanwhile (a takeover), or the sweep of ended
 * resources, makes the flush roll back (flush_met_forgotten). A row
 * both lock at once makes one wait for the other's commit (rare: the
 * receiver writes a known row only when its identity or kind changed),
 * or the server breaks a deadlock by failing one of them: a batch then
 * answered RETRY, or a flush retried.
 *
 * sqlite keeps the flush in the receiver's transaction: it has one
 * writer at a time, so a flush on another connection would hold the
 * write lock the receiver's next commit needs (SQLITE_BUSY, a busy wait)
 * and gain nothing; and it costs no round trips there. */
#define FLUSHER_RETRY_MS 1000

struct flusher {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;          /* CLOCK_MONOTONIC */
	int stop, rewait;           /* mu: end; wait every_ms from now */
	int64_t every_ms;           /* mu */
	char *data_dir, *state_url; /* borrowed from the owner handle */
	/* read by the owner's vg_registry_stats (atomic) */
	uint64_t flushed_values, flushes, failures, gone_resources;
	char err[256]; /* the last failure (mu) */
};

static void *flusher_main(void *arg)
{
	struct flusher *fl = arg;
	struct vg_registry *fr = NULL;
	int64_t wait_ms;

	pthread_mutex_lock(&fl->mu);
	wait_ms = fl->every_ms;
	while (!fl->stop) {
		struct timespec ts;
		int rc;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += wait_ms / 1000;
		ts.tv_nsec += (wait_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (!fl->stop && !fl->rewait &&
		       pthread_cond_timedwait(&fl->cv, &fl->mu, &ts) != ETIMEDOUT)
			;
		if (fl->stop)
			break;
		if (fl->rewait) { /* a new interval, from now */
			fl->rewait = 0;
			wait_ms = fl->every_ms;
			continue;
		}
		pthread_mutex_unlock(&fl->mu);
		char err[256] = "";
		uint64_t before = fr ? fr->stats.flushed_values : 0;
		uint64_t gone0 = fr ? fr->stats.gone_resources : 0;
		if (!fr)
			rc = vg_registry_open_state(fl->data_dir, fl->state_url, &fr, err,
						    sizeof(err));
		else
			rc = 0;
		if (!rc && (rc = in_transaction(fr, NULL, 1)))
			snprintf(err, sizeof(err), "%s", fr->err);
		pthread_mutex_lock(&fl->mu);
		if (rc) {
			__atomic_add_fetch(&fl->failures, 1, __ATOMIC_RELAXED);
			snprintf(fl->err, sizeof(fl->err), "%s", err);
			wait_ms = FLUSHER_RETRY_MS;
		} else {
			__atomic_add_fetch(&fl->flushes, 1, __ATOMIC_RELAXED);
			__atomic_add_fetch(&fl->flushed_values,
					   fr->stats.flushed_values - before, __ATOMIC_RELAXED);
			wait_ms = fl->every_ms;
		}
		/* found by a commit, or after a failure (flush_gone_after) */
		if (fr)
			__atomic_add_fetch(&fl->gone_resources,
					   fr->stats.gone_resources - gone0, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&fl->mu);
	vg_registry_close(fr); /* never updated: closing flushes nothing */
	return NULL;
}

/* Start r's flusher (PostgreSQL). 0: running; -errno: the caller
 * flushes in its own transactions as before. */
static int flusher_start(struct vg_registry *r)
{
	struct flusher *fl;
	sigset_t all, old;
	int rc;

	if (r->fl)
		return 0;
	if (!(fl = calloc(1, sizeof(*fl))))
		return -ENOMEM;
	fl->data_dir = r->data_dir;
	fl->state_url = r->state_url;
	fl->every_ms = r->flush_every_ms;
	pthread_mutex_init(&fl->mu, NULL);
	vg_cond_init_monotonic(&fl->cv);
	/* the thread takes no signal: the daemon's thread that takes them
	 * (the receiver's, which starts this one) must be woken by them */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&fl->th, NULL, flusher_main, fl);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		pthread_cond_destroy(&fl->cv);
		pthread_mutex_destroy(&fl->mu);
		free(fl);
		return -EAGAIN;
	}
	r->fl = fl;
	return 0;
}

/* Stop r's flusher (its flush in progress ends first). */
static void flusher_stop(struct vg_registry *r)
{
	struct flusher *fl = r->fl;

	if (!fl)
		return;
	pthread_mutex_lock(&fl->mu);
	fl->stop = 1;
	pthread_cond_signal(&fl->cv);
	pthread_mutex_unlock(&fl->mu);
	pthread_join(fl->th, NULL);
	pthread_cond_destroy(&fl->cv);
	pthread_mutex_destroy(&fl->mu);
	free(fl);
	r->fl = NULL;
}

int vg_registry_update(struct vg_registry *r, const struct vg_batch *b)
{
	int flush, rc;

	if (!r || !b || !b->host)
		return -EINVAL;
	r->wrote = 1;
	flush = vg_monotonic_ms() - r->flushed_ms >= r->flush_every_ms;
	/* PostgreSQL: the flusher's, off the receiver's path (above) */
	if (vg_db_engine(r->db) == VG_DB_POSTGRESQL && !flusher_start(r))
		flush = 0;
	/* by the batch's deadline ("Commits bounded by the deadline") */
	r->deadline_ms = earlier(b->deadline_ms, 0);
	rc = cut_or_cancel(r, in_transaction(r, b, flush));
	r->deadline_ms = 0;
	return rc;
}

int vg_registry_flush_every(struct vg_registry *r, int64_t interval_ms)
{
	if (!r || interval_ms < 1)
		return -EINVAL;
	r->flush_every_ms = interval_ms;
	if (r->fl) {
		pthread_mutex_lock(&r->fl->mu);
		r->fl->every_ms = interval_ms;
		r->fl->rewait = 1;
		pthread_cond_signal(&r->fl->cv);
		pthread_mutex_unlock(&r->fl->mu);
	}
	return 0;
}

void vg_registry_flush_error(struct vg_registry *r, char *buf, size_t len)
{
	if (!buf || !len)
		return;
	buf[0] = '\0';
	if (!r || !r->fl)
		return;
	pthread_mutex_lock(&r->fl->mu);
	snprintf(buf, len, "%s", r->fl->err);
	pthread_mutex_unlock(&r->fl->mu);
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
	if (r->fl) {
		out->flushed_values +=
			__atomic_load_n(&r->fl->flushed_values, __ATOMIC_RELAXED);
		out->flushes += __atomic_load_n(&r->fl->flushes, __ATOMIC_RELAXED);
		out->flush_failures += __atomic_load_n(&r->fl->failures, __ATOMIC_RELAXED);
		out->gone_resources +=
			__atomic_load_n(&r->fl->gone_resources, __ATOMIC_RELAXED);
	}
}

struct vg_db *vg_registry_db(struct vg_registry *r)
{
	return r ? r->db : NULL;
}

const char *vg_registry_last_error(const struct vg_registry *r)
{
	if (!r)
		return "";
	return r->err[0] ? r->err : r->db ? vg_db_errmsg(r->db)
					  : "";
}

/* vg_db_retry_lost's fn: a read, harmless to run twice. */
static int ping(struct vg_db *db, void *arg)
{
	(void)arg;
	return vg_db_exec(db, "SELECT 1");
}

int vg_registry_ping(struct vg_registry *r, char *err, size_t errlen)
{
	int rc;

	if (!r || !r->db)
		return -EINVAL;
	/* the first call after a lost connection reports the loss and marks
	 * it; the second reconnects (a server still away: -ENOTCONN, with
	 * one reconnect tried per ping) */
	rc = vg_db_retry_lost(r->db, ping, NULL);
	if (rc && err && errlen)
		snprintf(err, errlen, "%s", vg_db_errmsg(r->db));
	return rc;
}

static int consumer_batch(void *ctx, const struct vg_batch *b)
{
	struct vg_registry *r = ctx;
	int rc = vg_registry_update(r, b);

	/* the batch's deadline cut its transaction ("Commits bounded by the
	 * deadline"): rolled back, a retry (the receiver counts it from
	 * consumer_deadline) rather than an ack without its rows */
	if (rc == -ETIMEDOUT) {
		r->stats.consumer_deadline++;
		rc = -EAGAIN;
	} else if (rc == -ECANCELED) { /* an operator's cancel */
		r->stats.consumer_canceled++;
		rc = -EAGAIN;
	}
	return rc;
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
static void res_row(struct vg_db_stmt *s, struct vg_lastval_resource *c,
		    struct vg_registry_res *o)
{
	o->id = vg_db_column_text(s, 0);
	o->type = (int)vg_db_column_int64(s, 1);
	o->host = vg_db_column_text(s, 2);
	o->name = vg_db_column_text(s, 3);
	o->parent = vg_db_column_text(s, 4);
	o->project = vg_db_column_text(s, 5);
	o->user = vg_db_column_text(s, 6);
	o->flavor = vg_db_column_text(s, 7);
	o->attributes = vg_db_column_text(s, 8);
	o->has_first_seen = !vg_db_column_is_null(s, 9);
	o->first_seen_ms = vg_db_column_int64(s, 9);
	o->last_seen_ms = vg_db_column_int64(s, 10);
	/* a newer last_seen not yet written to the database */
	if (c && c->last_seen > o->last_seen_ms)
		o->last_seen_ms = c->last_seen;
	o->ended = !vg_db_column_is_null(s, 11);
	o->ended_at_ms = vg_db_column_int64(s, 11);
}

/* The metric on the current row of s, whose columns from col on are name,
 * kind, unit, last_value, last_time_ms; c is the resource's last-value
 * cache entry (lv locked) or NULL. */
static void metric_row(struct vg_registry *r, struct vg_lastval_resource *c,
		       struct vg_db_stmt *s, int col, struct vg_registry_metric *m)
{
	struct vg_lastval_series *lm;

	m->name = vg_db_column_text(s, col);
	m->kind = (int)vg_db_column_int64(s, col + 1);
	m->unit = vg_db_column_text(s, col + 2);
	m->last_value = vg_db_column_is_null(s, col + 3)
				? NAN
				: vg_db_column_double(s, col + 3);
	m->last_time_ms = vg_db_column_int64(s, col + 4);
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
	json_object_set_new(e, "last_value", isfinite(m->last_value) ? json_real(m->last_value) : json_null());
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

/* The metrics of resource id whose names come after `after` (NULL: all),
 * one statement, to v (lv locked). */
static int each_metric(struct vg_registry *r, const char *id, const char *after,
		       struct vg_lastval_resource *c, const struct vg_registry_visitor *v)
{
	struct vg_registry_metric m;
	struct vg_db_stmt *s;
	int rc;

	if ((rc = stmt(r, after ? ST_METRICS_AFTER : ST_METRICS_OF, &s)))
		return rc;
	vg_db_bind_text(s, 1, id);
	if (after)
		vg_db_bind_text(s, 2, after);
	while ((rc = vg_db_step(s)) == 1) {
		metric_row(r, c, s, 0, &m);
		if ((rc = v->metric(v->ctx, &m))) {
			vg_db_reset(s);
			return rc;
		}
	}
	vg_db_reset(s);
	return rc < 0 ? map_err(rc) : 0;
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
	struct vg_db_stmt *s;
	int rc;

	*out = NULL;
	if (!r || !id)
		return -EINVAL;
	if ((rc = stmt(r, ST_GET, &s)))
		return rc;
	vg_db_bind_text(s, 1, id);
	rc = vg_db_step(s);
	if (rc != 1) {
		vg_db_reset(s);
		return rc == 0 ? -ENOENT : map_err(rc);
	}
	vg_lastval_lock(r->lv);
	c = vg_lastval_res(r->lv, id, 0);
	res_row(s, c, &res);
	/* each_metric uses another statement; s stays on its row. */
	if (!(rc = jb_resource(&jb, &res)))
		rc = each_metric(r, id, NULL, c, &v);
	vg_lastval_unlock(r->lv);
	vg_db_reset(s);
	if (rc) {
		json_decref(jb.one);
		return rc;
	}
	*out = jb.one;
	return 0;
}

int vg_registry_set_unit(struct vg_registry *r, const char *id,
			 const char *metric, const char *unit)
{
	struct vg_db_stmt *s;
	int rc;

	if (!r || !id || !metric || !unit)
		return -EINVAL;
	if ((rc = need_txn(r)) || (rc = stmt(r, ST_SET_UNIT, &s)))
		goto out;
	vg_db_bind_text(s, 1, id);
	vg_db_bind_text(s, 2, metric);
	vg_db_bind_text(s, 3, unit);
	if ((rc = exec_done(s)))
		goto out;
	if (vg_db_changes(r->db) == 0)
		rc = -ENOENT;
	else
		rc = map_err(vg_db_commit(r->db));
out:
	if (vg_db_in_transaction(r->db))
		vg_db_rollback(r->db);
	return rc;
}

int vg_registry_metric_unit(struct vg_registry *r, const char *id,
			    const char *metric, char *unit, size_t unitlen)
{
	return vg_registry_metric_unit_kind(r, id, metric, unit, unitlen, NULL);
}

int vg_registry_metric_unit_kind(struct vg_registry *r, const char *id, const char *metric,
				 char *unit, size_t unitlen, int *kind)
{
	struct vg_db_stmt *s;
	int rc;

	if (!r || !id || !metric || !unit || !unitlen)
		return -EINVAL;
	unit[0] = '\0';
	if ((rc = stmt(r, ST_METRIC_UNIT, &s)))
		return rc;
	vg_db_bind_text(s, 1, id);
	vg_db_bind_text(s, 2, metric);
	rc = vg_db_step(s);
	if (rc == 1) {
		const char *u = vg_db_column_text(s, 0);
		if (kind)
			*kind = (int)vg_db_column_int64(s, 1);
		rc = (size_t)snprintf(unit, unitlen, "%s", u ? u : "") >= unitlen
			     ? -ENAMETOOLONG
			     : 0;
	} else {
		rc = rc == 0 ? -ENOENT : map_err(rc);
	}
	vg_db_reset(s);
	return rc;
}

int vg_registry_lookup(struct vg_registry *r, const char *id, int *rtype,
		       char *project, size_t projectlen)
{
	struct vg_db_stmt *s;
	int rc;

	if (!r || !id)
		return -EINVAL;
	if ((rc = stmt(r, ST_LOOKUP, &s)))
		return rc;
	vg_db_bind_text(s, 1, id);
	rc = vg_db_step(s);
	if (rc == 1) {
		const char *p = vg_db_column_text(s, 1);
		if (rtype)
			*rtype = (int)vg_db_column_int64(s, 0);
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
		rc = rc == 0 ? -ENOENT : map_err(rc);
	}
	vg_db_reset(s);
	return rc;
}

int vg_registry_custom_drops(struct vg_registry *r, uint64_t *out)
{
	struct vg_db_stmt *s;
	int rc;

	if (!r || !out)
		return -EINVAL;
	if ((rc = stmt(r, ST_DROPS_SUM, &s)))
		return rc;
	rc = vg_db_step(s);
	if (rc == 1) {
		*out = (uint64_t)vg_db_column_int64(s, 0);
		rc = 0;
	} else {
		rc = rc == 0 ? -EIO : map_err(rc);
	}
	vg_db_reset(s);
	return rc;
}

int vg_registry_visible(struct vg_registry *r, const char *id,
			const char *scope_project, int *rtype)
{
	struct vg_db_stmt *s;
	int rc;

	if (!r || !id)
		return -EINVAL;
	if ((rc = stmt(r, ST_VISIBLE, &s)))
		return rc;
	vg_db_bind_text(s, 1, id);
	vg_db_bind_text(s, 2, scope_project);
	rc = vg_db_step(s);
	if (rc == 1) {
		if (rtype)
			*rtype = (int)vg_db_column_int64(s, 0);
		rc = 0;
	} else {
		rc = rc == 0 ? -ENOENT : map_err(rc);
	}
	vg_db_reset(s);
	return rc;
}

int vg_registry_metric_seen(struct vg_registry *r, const char *project,
			    const char *metric)
{
	struct vg_db_stmt *s;
	int rc;

	if (!r || !metric)
		return -EINVAL;
	if ((rc = stmt(r, ST_METRIC_SEEN, &s)))
		return rc;
	vg_db_bind_text(s, 1, metric);
	vg_db_bind_text(s, 2, project);
	rc = vg_db_step(s);
	rc = rc == 1 ? 1 : rc == 0 ? 0
				   : map_err(rc);
	vg_db_reset(s);
	return rc;
}

/* The list statement for a filter mask (cached by the connection under
 * its text). Parameters are numbered in the order of the filter bits,
 * only those in mask (PostgreSQL must see every parameter it is given),
 * then the LIMIT. */
static int list_stmt(struct vg_registry *r, unsigned mask, struct vg_db_stmt **s)
{
	static const char *const cond[] = {
		" AND type = ?%d", " AND host = ?%d", " AND project = ?%d",
		" AND name = ?%d",
		" AND (CASE WHEN ended_at_ms IS NULL THEN 1 ELSE 0 END) = ?%d",
		" AND parent = ?%d", " AND id > ?%d"};
	char sql[1024];
	size_t n;
	int k = 0;

	n = (size_t)snprintf(sql, sizeof(sql),
			     "SELECT " RES_COLUMNS " FROM resources WHERE 1 = 1");
	for (unsigned bit = 0; bit < sizeof(cond) / sizeof(cond[0]); bit++)
		if (mask & (1u << bit))
			n += (size_t)snprintf(sql + n, sizeof(sql) - n, cond[bit], ++k);
	snprintf(sql + n, sizeof(sql) - n, " ORDER BY id LIMIT ?%d", ++k);
	return map_err(vg_db_prepare(r->db, sql, s));
}

/* Reading more rows of other resources than this (plus 4 per row of the
 * page's) in a page's id range, the range scan gives way to one lookup per
 * resource: a filter whose matches are sparse among the ids would
 * otherwise read most of the table for a page. */
#define PAGE_SCAN_SLACK 256

/* The walk of the metrics primary key beside the page's resources. */
struct page_scan {
	struct vg_db_stmt *s;
	int rc;        /* of the last step (1 a row, 0 done); -1 before the first */
	int gave_way;  /* per-resource reads from now on */
	int64_t limit; /* rows the scan may read (its LIMIT) */
	int64_t read;  /* rows it read */
	size_t used, skipped;
};

/* The metrics of the page's next resource (id, in id order) to v, lv
 * locked. The first call starts one scan of the metrics primary key from
 * id on; each call takes the rows of its resource and stops at the first
 * row of a later one, so a page reads its metrics in the order they are
 * listed. Rows of resources the filter left out are skipped; when those
 * pass PAGE_SCAN_SLACK the rest of the page is read resource by resource
 * (each_metric). The scan is bounded (ps->limit rows): when it ends at
 * its bound, the resource it was in goes on after its last metric read
 * and the rest of the page resource by resource. */
static int page_metrics(struct vg_registry *r, struct page_scan *ps,
			const char *id, struct vg_lastval_resource *c,
			const struct vg_registry_visitor *v)
{
	char last[VG_NAME_MAX * 4 + 1] = "";
	struct vg_registry_metric m;
	int rc;

	if (ps->gave_way)
		return each_metric(r, id, NULL, c, v);
	if (ps->rc < 0) {
		if ((rc = stmt(r, ST_PAGE_METRICS, &ps->s)))
			return rc;
		vg_db_bind_text(ps->s, 1, id); /* copied: id moves on */
		vg_db_bind_int64(ps->s, 2, ps->limit);
		ps->rc = vg_db_step(ps->s);
		ps->read = ps->rc == 1;
	}
	for (; ps->rc == 1; ps->rc = vg_db_step(ps->s), ps->read += ps->rc == 1) {
		const char *rid = vg_db_column_text(ps->s, 0);
		int cmp = strcmp(rid ? rid : "", id);

		if (cmp > 0) /* a later resource's: the next call's */
			return 0;
		if (cmp < 0) { /* a resource the filter left out */
			if (++ps->skipped > PAGE_SCAN_SLACK + 4 * ps->used) {
				/* none of this resource's rows were read */
				ps->gave_way = 1;
				return each_metric(r, id, NULL, c, v);
			}
			continue;
		}
		metric_row(r, c, ps->s, 1, &m);
		snprintf(last, sizeof(last), "%s", m.name ? m.name : "");
		if ((rc = v->metric(v->ctx, &m)))
			return rc;
		ps->used++;
	}
	if (ps->rc < 0)
		return map_err(ps->rc);
	if (ps->read < ps->limit)
		return 0; /* the table's end */
	/* the scan's bound: this resource's other metrics, if any */
	ps->gave_way = 1;
	return each_metric(r, id, last[0] ? last : NULL, c, v);
}

int vg_registry_list_visit(struct vg_registry *r,
			   const struct vg_resource_filter *f,
			   const struct vg_registry_visitor *v,
			   char *next_cursor, size_t cursorlen)
{
	unsigned mask = 0;
	int rtype = 0, active = 0, rc, rows = 0, k = 0;
	char last[VG_NAME_MAX * 4 + 1] = "";
	struct page_scan ps = {.rc = -1};
	struct vg_db_stmt *s;

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
	if ((rc = list_stmt(r, mask, &s)))
		return rc;
	/* in list_stmt's order */
	if (mask & F_TYPE)
		vg_db_bind_int64(s, ++k, rtype);
	if (mask & F_HOST)
		vg_db_bind_text(s, ++k, f->host);
	if (mask & F_PROJECT)
		vg_db_bind_text(s, ++k, f->project);
	if (mask & F_NAME)
		vg_db_bind_text(s, ++k, f->name);
	if (mask & F_STATE)
		vg_db_bind_int64(s, ++k, active);
	if (mask & F_PARENT)
		vg_db_bind_text(s, ++k, f->parent);
	if (mask & F_AFTER)
		vg_db_bind_text(s, ++k, f->after);
	vg_db_bind_int64(s, ++k, f->limit + 1); /* one more: is there a next page? */
	ps.limit = (int64_t)f->limit * PAGE_SCAN_PER_RES + PAGE_SCAN_SLACK;

	while ((rc = vg_db_step(s)) == 1) {
		struct vg_registry_res res;
		struct vg_lastval_resource *c;
		const char *id = vg_db_column_text(s, 0);

		if (++rows > f->limit || !id) {
			rc = id ? 1 : -ENOMEM;
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
		rc = 1;
	}
	vg_db_reset(ps.s);
	vg_db_reset(s);
	if (rc < 0) /* a visitor's, page_metrics' or the database's -errno */
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
		"DELETE FROM resources WHERE id = ?1 AND ended_at_ms <= ?2",
	};
	struct vg_db_stmt *s;
	int rc, removed = 0;

	if (!r || !id)
		return -EINVAL;
	/* Forgotten first: a flush that took the resource's values (on
	 * another thread or handle of this state) and writes them after this
	 * delete commits finds it gone and throws its rows away (in_transaction);
	 * forgotten only after the commit, a flush could check in between
	 * and bring the metrics rows back. The lastval lock is taken here,
	 * before the transaction, never while it holds row locks: the
	 * receiver holds that lock while it waits for rows (update_resource). */
	vg_lastval_lock(r->lv);
	vg_lastval_forget(r->lv, id);
	vg_lastval_unlock(r->lv);
	if ((rc = vg_db_begin(r->db)))
		return map_err(rc);
	for (int i = 0; i < 2 && !rc; i++) {
		if ((rc = map_err(vg_db_prepare(r->db, sql[i], &s))))
			break;
		vg_db_bind_text(s, 1, id);
		vg_db_bind_int64(s, 2, ended_before_ms);
		rc = vg_db_step(s);
		rc = rc >= 0 ? 0 : map_err(rc);
		vg_db_reset(s);
		if (!rc && i == 1)
			removed = vg_db_changes(r->db) > 0;
	}
	if (!rc)
		rc = map_err(vg_db_commit(r->db));
	if (rc) {
		if (vg_db_in_transaction(r->db))
			vg_db_rollback(r->db);
		return rc;
	}
	if (!removed)
		return -ENOENT;
	if (vg_registry_test_point)
		vg_registry_test_point("ended-removed");
	/* an entry a late report made since the first forget: the cache
	 * must not believe its rows exist */
	vg_lastval_lock(r->lv);
	vg_lastval_forget(r->lv, id);
	vg_lastval_unlock(r->lv);
	return 0;
}
