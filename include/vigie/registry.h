/*
 * vigie — the resource registry, on the state database (vigie/db.h):
 * <data_dir>/registry.db (sqlite) by default, or the PostgreSQL server of
 * `[state] url` that several collectors share.
 *
 * Keeps every resource ever seen: type, id, host, name, parent, project,
 * user, flavor, attributes, first/last seen, when it ended; each resource's
 * metrics with unit, kind and last raw value; and, per agent host, the
 * stream id and last acknowledged sequence number used to drop duplicate
 * batches across collector restarts.
 *
 * sqlite runs in WAL mode: one writer (the receiver thread) and any number
 * of readers proceed together. Metric rows are written when a (resource,
 * metric) is new to the process; newer values are kept in memory, shared
 * by all handles of the process that open the same state (lastval.h), and
 * written every 10 s (on PostgreSQL by a thread of the updating handle,
 * on a connection of its own: see vg_registry_flush), so readers of this
 * process always see the newest
 * value. A reader in ANOTHER process (another collector on a shared
 * PostgreSQL, or the `vigie` CLI on the file) sees last values and
 * last_seen times as of the writer's last flush: at most 10 s old. A
 * handle is used by one thread at a time: open one handle per thread.
 */
#ifndef VIGIE_REGISTRY_H
#define VIGIE_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "vigie/batch.h"
#include "vigie/dispatch.h"

struct vg_registry;
struct vg_db;

/* Open the registry of state_url (a vg_db URL: PostgreSQL for shared
 * state), or, when state_url is NULL or "", open or create
 * <data_dir>/registry.db (sqlite; files of earlier versions are
 * migrated). The schema is created or migrated on open, on either engine.
 * 0 or -errno (-ENOTCONN: server unreachable, -EPROTONOSUPPORT: schema
 * newer than this program), a one-line message in err. */
int vg_registry_open_state(const char *data_dir, const char *state_url,
			   struct vg_registry **out, char *err, size_t errlen);
/* vg_registry_open_state(data_dir, NULL, ...). */
int vg_registry_open(const char *data_dir, struct vg_registry **out,
		     char *err, size_t errlen);
void vg_registry_close(struct vg_registry *r); /* accepts NULL */

/* Streams remembered per host (its most recently acknowledged ones). */
#define VG_REGISTRY_STREAMS 16

/* Duplicate check of a batch (host, stream, seq, poll time time_ms):
 * 1 if it must be answered DUPLICATE, 0 if new, -errno. It is a duplicate
 * when the host keeps the stream and seq <= its last committed seq, or
 * when the host does not keep the stream and time_ms is at or before the
 * host's floor (the newest batch time of the streams it dropped after
 * VG_REGISTRY_STREAMS newer ones: every acknowledged batch of a dropped
 * stream is at or before it). A stream this handle committed lately is
 * answered without the database: seq at or below its commit is a
 * duplicate, the next seq is new (with shared state another collector may
 * have taken it meanwhile: the commit then returns 1); any other seq asks
 * the database. The check is an early answer; the commit decides. 2 when
 * the batch is new but another collector (a holder other than this
 * handle's, vg_registry_set_holder) holds a live mark on the host: it
 * acknowledged the host's batches whose values a storage daemon has not
 * taken yet, so this one must not store newer ones now (the receiver
 * answers RETRY). 3 when the batch is new, no mark holds it, but with
 * vg_registry_set_wait_verified on, another collector committed a batch
 * of the host (its streams row names it, step 6) after the time its
 * verified row covers, less than the holder's ttl ([cluster] hold_max)
 * ago: values it acknowledged may not be durable on the storage daemons
 * yet, so this one must not write newer ones now (RETRY; vg_registry_held_by
 * names it). Read in the same statement as the seq: no round trip
 * of its own; a stream this handle answers from memory is not asked. */
int vg_registry_seen(struct vg_registry *r, const char *host,
		     uint64_t stream, uint64_t seq, int64_t time_ms);
/* 1 when the last vg_registry_seen on r that answered 0 did so from this
 * handle's memory (it committed the stream's previous seq itself: the
 * host did not come from elsewhere), else 0. */
int vg_registry_seen_local(const struct vg_registry *r);
/* Record (host, stream, seq, time_ms) as acknowledged, in one
 * transaction: the stream becomes the host's most recent, and if the host
 * now has more than VG_REGISTRY_STREAMS streams the least recent is
 * dropped and the floor raised to its newest time. Called by the receiver
 * after every consumer took the batch. The check and the write are one
 * statement, atomic in the database: of several handles (or collectors
 * sharing one PostgreSQL) committing the same (host, stream, seq), exactly
 * one gets 0; the others get 1, as does a seq at or below the stream's
 * last committed one (the batch is a duplicate: answer DUPLICATE; its
 * values, if stored again, were idempotent writes). -errno on error
 * (-EAGAIN: busy or unreachable; nothing was recorded). */
int vg_registry_commit(struct vg_registry *r, const char *host,
		       uint64_t stream, uint64_t seq, int64_t time_ms);

/* One acknowledged batch for vg_registry_commit_group. */
struct vg_registry_mark {
	const char *host;
	uint64_t stream, seq;
	int64_t time_ms;
	/* this collector holds values of the host that its storage daemon
	 * has not taken (write-through could not write them): the commit
	 * records the host's holding mark in its transaction (needs a
	 * holder, vg_registry_set_holder), a live mark of another holder
	 * staying as it is: then a batch this commit would apply is not
	 * recorded and its rcs is -EBUSY (answer RETRY: acknowledged, its
	 * values would wait in this collector's cache with no mark keeping
	 * the host from moving on; docs/scaling.md "Holding marks"), and
	 * one committed elsewhere first is 1 as usual. Such a mark is
	 * committed alone (a transaction of a few statements, not the
	 * group's one statement). */
	int hold;
	/* the batch's deadline (vg_monotonic_ms; 0: none): the group's
	 * commit ends by the earliest of its marks' (see
	 * vg_registry_seen_by) */
	int64_t deadline_ms;
};
/* Rows one statement of vg_registry_commit_group records at most. */
#define VG_REGISTRY_GROUP_MAX 16
/* vg_registry_commit for each of mk[0..n) (no two of one (host, stream)),
 * with the same result in rcs[i] (0, 1 or -errno) and the same
 * guarantees, in fewer statements: the streams this handle committed
 * last at a lower seq, of distinct hosts, are recorded by one atomic
 * multi-row statement (one round trip, one transaction: all or none);
 * the others one by one. The statement's rows go in (host, stream)
 * order, so two collectors' groups lock shared rows in one order and
 * never deadlock each other. Returns 0, or -EINVAL (bad arguments). */
int vg_registry_commit_group(struct vg_registry *r,
			     const struct vg_registry_mark *mk, size_t n, int *rcs);
/* vg_registry_seen ending by deadline_ms (vg_monotonic_ms; 0: none), the
 * receiver's batch deadline (docs/operations.md "One deadline per
 * batch"), as the commits of vg_registry_commit_group do by their marks'
 * deadline_ms and vg_registry_update by its batch's (vg_batch.
 * deadline_ms). On PostgreSQL each such call that asks the database runs
 * in a transaction whose statements are bounded by the time left
 * (statement_timeout); one cut there, or begun with no time left, is
 * rolled back, records nothing and gives -ETIMEDOUT (answer RETRY; the
 * consumer's vg_registry_update answers -EAGAIN). A statement cancelled
 * well before the deadline (an operator's pg_cancel_backend, the same
 * SQLSTATE 57014) gives -ECANCELED instead, rolled back as well. sqlite: no bound
 * beyond its busy timeout (registry.c "Commits bounded by the
 * deadline"). */
int vg_registry_seen_by(struct vg_registry *r, const char *host, uint64_t stream,
			uint64_t seq, int64_t time_ms, int64_t deadline_ms);

/* Holding marks, for collectors that share storage daemons (an RRD
 * takes only values newer than its last update, so of two collectors
 * holding values of one host for a daemon that is down, the one that
 * writes its newer values first makes the other's older ones refused;
 * docs/scaling.md). node names this collector in the marks (its cluster
 * node id, "" : no marks are written and every mark is someone else's);
 * a mark lasts ttl_ms (wall clock) past its last write or renewal: the
 * collector passes [cluster] hold_max, hours, so that a holder killed
 * while its journal holds the values keeps its hosts until it comes back
 * and writes them (a mark that lapsed sooner let the others write newer
 * values first); vg_registry_marks_release frees a holder that will not
 * come back. 0 or -EINVAL. */
int vg_registry_set_holder(struct vg_registry *r, const char *node,
			   int64_t ttl_ms);
/* Extend every mark of this handle's holder to now + ttl_ms. 0 or -errno
 * (-EAGAIN: busy or unreachable). */
int vg_registry_hold_renew(struct vg_registry *r);
/* Delete every mark of this handle's holder: its store holds no value a
 * daemon has not taken. 0 or -errno. */
int vg_registry_hold_clear(struct vg_registry *r);
/* Mark the hosts of resources ids[0..n) (their rows' host; an id with
 * no row marks nothing) as held by this handle's holder, in one
 * transaction, a live mark of another holder staying as it is: the
 * storage backend found files of these resources lost by a daemon (a
 * restart) and the store re-sends their values from its journal; until
 * they are written no other collector may write newer ones
 * (docs/scaling.md "Holding marks"). Cleared by vg_registry_hold_clear
 * as any mark. *marked (may be NULL) gets how many ids marked their
 * host (a host of several ids counts each; one refused counts 0). 0,
 * -EINVAL (no holder) or -errno (-EAGAIN: busy or unreachable; nothing
 * marked). */
int vg_registry_hold_resources(struct vg_registry *r, const char *const *ids, size_t n,
			       uint64_t *marked);
/* Verified rows (docs/scaling.md "Closing the second", part 3). With a
 * holder set, each commit writes the holder's name and the commit's wall
 * time (never behind this handle's previous one) in the stream's row;
 * without one, no name (nobody waits for such a row). */
/* Whether vg_registry_seen waits (3) for another node's verified row
 * ([cluster] wait_verified, which the collector's composition applies
 * with the rrdcached backend only). Off until set. */
void vg_registry_set_wait_verified(struct vg_registry *r, int on);
/* The commit time this handle wrote last in a streams row (0: none). */
int64_t vg_registry_committed_ms(const struct vg_registry *r);
/* Record that every batch this handle's holder committed at or before
 * upto_ms (its commit times) is durable on the storage daemons (its
 * store's syncs verified it). Only moves the row forward. Nothing
 * without a holder. 0 or -errno (-EAGAIN: busy or unreachable). */
int vg_registry_set_verified(struct vg_registry *r, int64_t upto_ms);
/* Call fn(ctx, node, upto_ms, streams_behind) for every node with
 * commits its verified row does not cover (upto_ms 0: no row yet), by
 * node. A nonzero return of fn stops the walk and is returned. 0 or
 * -errno. */
int vg_registry_verified(struct vg_registry *r,
			 int (*fn)(void *ctx, const char *node, int64_t upto_ms,
				   uint64_t streams_behind),
			 void *ctx);
/* The operator's release of a node that will not return: its verified
 * row moves to now, so no host waits for its commits any more. *released
 * (may be NULL) is 1 when some commit was waited for, else 0. 0 or
 * -errno (-EINVAL: no node). */
int vg_registry_verified_release(struct vg_registry *r, const char *node,
				 uint64_t *released);
/* The holder named by the mark (or the verified row) that made
 * vg_registry_seen return 2 (3) last on this handle ("" if none yet);
 * valid until the next call on r. */
const char *vg_registry_held_by(const struct vg_registry *r);
/* After vg_registry_seen returned 3 on r: the oldest of the commits it
 * waits for (wall ms, the committing node's clock; one per stream of the
 * host committed by another node after that node's verified row), what
 * a proof by this collector's own connections must predate
 * (vg_store_prove_arrival). INT64_MAX when unknown. */
int64_t vg_registry_held_commit_ms(const struct vg_registry *r);
/* Call fn(ctx, rtype, id, metric) for every series the registry knows
 * of host's resources (their metrics rows, ended resources included; the
 * strings valid during the call), in no particular order: the files a
 * previous collector may have written for the host, which a proof of its
 * values covers (docs/scaling.md "Closing the second", part 2). A
 * nonzero return of fn stops the walk and is returned. 0 or -errno. */
int vg_registry_host_series(struct vg_registry *r, const char *host,
			    int (*fn)(void *ctx, int rtype, const char *id,
				      const char *metric),
			    void *ctx);
/* Call fn(ctx, host, node, until_ms) for every holding mark, by node
 * then host (the strings valid during the call); a nonzero return of fn
 * stops the walk and is returned. 0 or -errno. */
int vg_registry_marks(struct vg_registry *r,
		      int (*fn)(void *ctx, const char *host, const char *node,
				int64_t until_ms),
		      void *ctx);
/* Delete every holding mark of node, whatever its time limit: the
 * operator's release of a collector that will never return (its journal
 * is lost; `vigie-collector storage marks release`). *released (may be
 * NULL) gets how many. 0 or -errno (-EINVAL: no node). */
int vg_registry_marks_release(struct vg_registry *r, const char *node,
			      uint64_t *released);

/* Upsert every resource and metric of b in one transaction. Idempotent.
 * A resource with state ENDED gets ended_at = its time. Identity (type,
 * host, name, parent, project, user, flavor, attributes) is taken only
 * from a report whose time is at or after the one that set it, so an
 * older batch never overwrites a newer identity. 0 or -errno
 * (-EAGAIN when the database is busy or the disk is full). */
int vg_registry_update(struct vg_registry *r, const struct vg_batch *b);
struct vg_consumer vg_registry_consumer(struct vg_registry *r);
/* Write the newest values that vg_registry_update kept in memory (every
 * handle of the process reads them already; this makes them durable), in
 * a transaction of r's connection, now. Periodically (every 10 s) it is
 * done for the handle that updates: on sqlite by vg_registry_update, in
 * the batch's transaction; on PostgreSQL by a thread the first
 * vg_registry_update starts, on a connection of its own, so that no
 * batch waits for it. Closing a handle that updated stops that thread
 * and flushes. Nothing acknowledged depends on it: the values are the
 * store's, these rows their cache (at most 10 s behind after a kill -9).
 * 0 or -errno. */
int vg_registry_flush(struct vg_registry *r);
/* How often the periodic flush runs (default 10,000 ms); for tests, which
 * make it frequent to see a flush in progress, or rare to keep it out of
 * their way. Takes effect now (a running flusher restarts its wait).
 * 0 or -EINVAL. */
int vg_registry_flush_every(struct vg_registry *r, int64_t interval_ms);
/* The message of the last failed flush of r's flusher thread ("" if
 * none), for the log of the thread that owns r; it counts them in
 * vg_registry_stats' flush_failures. Copied into buf (len bytes). */
void vg_registry_flush_error(struct vg_registry *r, char *buf, size_t len);

/* Rows this handle wrote (committed or not): resource and metric rows of
 * the slow path, and the values written by flushes. The fast path of a
 * known series writes none; the tests and the bench check it. */
struct vg_registry_stats {
	uint64_t resource_rows;
	uint64_t metric_rows;
	uint64_t flushed_values;
	/* flushes of the handle's flusher thread (PostgreSQL) that
	 * committed, and that failed (their values wait for the next) */
	uint64_t flushes;
	uint64_t flush_failures;
	/* reports of an id whose row holds another type (only an agent's
	 * report over a custom row may change it): ignored, logged */
	uint64_t resources_conflicting;
	/* metric rows of custom resources dropped because an agent's report
	 * took the resource over (docs/api.md, POST /v1/measures) */
	uint64_t custom_metrics_dropped;
	/* resources this handle's cache held whose rows were gone when it
	 * wrote (another collector's sweep of ended resources deleted them):
	 * forgotten, their values that waited not written; the next report
	 * of one registers it anew (docs/operations.md "Ended series") */
	uint64_t gone_resources;
	/* holding marks (vg_registry_mark.hold) this handle could not
	 * write: refused, another collector's live mark being on the host
	 * (the commit then answers -EBUSY, or 1 for a batch committed
	 * elsewhere first), or failed (the commit's error) */
	uint64_t hold_refused;
	uint64_t hold_failed;
	/* batches whose transaction as a consumer (vg_registry_consumer)
	 * the deadline cut (PostgreSQL): rolled back, the batch answered
	 * -EAGAIN (RETRY) */
	uint64_t consumer_deadline;
	/* of the same, cancelled well before the deadline (an operator's
	 * pg_cancel_backend): rolled back, -EAGAIN too */
	uint64_t consumer_canceled;
};
void vg_registry_stats(const struct vg_registry *r,
		       struct vg_registry_stats *out);

/* Ask the state database a trivial question (SELECT 1) through r: 0 when
 * it answers, -errno when not, with a one-line reason in err (may be NULL).
 * A connection lost since the last call (a restarted server) is reopened
 * first, so a server that is back answers 0. For /v1/health and /metrics:
 * the state database's reachability as this process sees it. Uses r like
 * every other call: from the one thread that owns the handle. */
int vg_registry_ping(struct vg_registry *r, char *err, size_t errlen);

/* The handle's connection to the state database (tests read the
 * server's view of its prepared statements through it); owned by r,
 * used from r's thread only. */
struct vg_db *vg_registry_db(struct vg_registry *r);

/* The message of the handle's last failed update or commit (else the
 * state database's last message; one line,
 * "" if none), for logs. Owned by r, valid until its next call. */
const char *vg_registry_last_error(const struct vg_registry *r);

struct vg_resource_filter {
	const char *type; /* "instance", ... or NULL */
	const char *host;
	const char *project;
	const char *name;  /* exact */
	const char *state; /* "active" | "ended" | NULL */
	const char *parent;
	const char *after; /* cursor: list ids greater than this */
	int limit;         /* 1..1000 */
};

/* List resources matching f, ordered by id, each object as
 * vg_registry_get gives it (metrics included). *out is a new JSON array
 * (caller json_decref). next_cursor gets the id to pass as `after` for the
 * next page, or "" when this is the last page. A page costs two statements
 * (its resources, then one scan of the metrics over its id range), not one
 * per resource. 0 or -errno. */
int vg_registry_list(struct vg_registry *r, const struct vg_resource_filter *f,
		     json_t **out, char *next_cursor, size_t cursorlen);

/* One resource of a list page as its row holds it, for a visitor. Every
 * pointer is the registry's and valid during the call only; a NULL text is
 * SQL NULL. last_seen_ms and a metric's last value include what the
 * last-value cache holds that is newer than the database. */
struct vg_registry_res {
	const char *id, *host, *name, *parent, *project, *user, *flavor;
	const char *attributes; /* JSON text as stored, or NULL */
	int type;               /* enum vg_rtype as stored */
	int has_first_seen;     /* first_seen_ms is not NULL */
	int ended;              /* ended_at_ms is not NULL */
	int64_t first_seen_ms, last_seen_ms, ended_at_ms;
};
struct vg_registry_metric {
	const char *name, *unit;
	int kind;          /* enum vg_kind as stored */
	double last_value; /* NAN when there is none */
	int64_t last_time_ms;
};
/* Called for each resource of a page in id order: resource(), then
 * metric() for each of its metrics in name order (bytewise), then
 * resource_end(). A non-zero return (-errno) stops the walk and is
 * returned by vg_registry_list_visit. */
struct vg_registry_visitor {
	int (*resource)(void *ctx, const struct vg_registry_res *res);
	int (*metric)(void *ctx, const struct vg_registry_metric *m);
	int (*resource_end)(void *ctx);
	void *ctx;
};

/* vg_registry_list without building JSON: the page's rows go to v as
 * they are read (the resources and one walk of the metrics primary key
 * side by side), the API writes them as text. The callbacks run with the
 * data directory's last-value cache locked (one resource at a time): they
 * must not call the registry. Same filters, order, cursor and errors as vg_registry_list,
 * which is built on it. */
int vg_registry_list_visit(struct vg_registry *r,
			   const struct vg_resource_filter *f,
			   const struct vg_registry_visitor *v,
			   char *next_cursor, size_t cursorlen);

/* One resource as a JSON object (caller json_decref):
 * {"id","type","host","name","parent","project","user","flavor",
 *  "state":"active"|"ended","first_seen","last_seen","ended_at"(or null),
 *  "attributes":{..},"metrics":{"cpu.time":{"unit":"s","kind":"counter",
 *  "last_value":1.5,"last_time":"2026-..Z"},..}}
 * 0 or -ENOENT. */
int vg_registry_get(struct vg_registry *r, const char *id, json_t **out);

/* The type of a resource (enum vg_rtype) and its project. 0, -ENOENT,
 * or -ENAMETOOLONG when the project does not fit projectlen. Access
 * checks use vg_registry_visible instead. */
int vg_registry_lookup(struct vg_registry *r, const char *id, int *rtype,
		       char *project, size_t projectlen);

/* The metric rows of custom resources dropped because an agent's report
 * took the resource over (the per-handle custom_metrics_dropped of
 * vg_registry_stats), summed over every collector of the state: it moves
 * whichever collector took the report, so a publish quota that counted a
 * project's series knows to count them again (docs/api.md "Limits").
 * One statement. 0 or -errno. */
int vg_registry_custom_drops(struct vg_registry *r, uint64_t *out);

/* Whether resource id exists and a token of scope_project (NULL: every
 * project) may see it, with its type in *rtype. The scope is compared in
 * the query, before anything of the resource is copied, so a resource the
 * token may not see and a resource that does not exist give the same
 * -ENOENT whatever the resource holds. 0, -ENOENT or -errno. */
int vg_registry_visible(struct vg_registry *r, const char *id,
			const char *scope_project, int *rtype);

/* Whether some resource of project (NULL: any project) has reported the
 * metric: 1, 0, or -errno. Alarm creation asks it, so a custom metric the
 * collector has seen counts as known though it is not in the catalogue.
 * A scan of the metrics by name: for definitions, not for the data path. */
int vg_registry_metric_seen(struct vg_registry *r, const char *project,
			    const char *metric);

/* Set the unit of the series (id, metric), which must exist: a published
 * series' unit (POST /v1/measures). Batches never name a unit outside the
 * catalogue, and a batch's "" leaves a stored unit as it is. Its own
 * transaction, on the writer's handle (the receiver thread). 0, -ENOENT
 * (no such series), -EAGAIN (busy or the disk full), -errno. */
int vg_registry_set_unit(struct vg_registry *r, const char *id,
			 const char *metric, const char *unit);

/* The stored unit of the series (id, metric) into unit ("" when it has
 * none): the catalogue's for the agent's metrics, the published one for
 * the others. 0, -ENOENT, -ENAMETOOLONG (unitlen too small), -errno. */
int vg_registry_metric_unit(struct vg_registry *r, const char *id,
			    const char *metric, char *unit, size_t unitlen);
/* The same, and its kind (enum vg_kind as stored) into *kind (may be
 * NULL). */
int vg_registry_metric_unit_kind(struct vg_registry *r, const char *id, const char *metric,
				 char *unit, size_t unitlen, int *kind);

/* Delete resource id's rows (its resource row and its metrics rows) if it
 * ended at or before ended_before_ms, in one transaction; the last-value
 * cache forgets it before the delete (so a flush that took its values
 * meanwhile, on any handle of this process, throws away what it would
 * write back) and again after it (an entry a late report made meanwhile),
 * so a resource that reports again later is registered anew. Another
 * process's cache (another collector on the same PostgreSQL) is not
 * told: its flush and its receiver write no metrics row of a resource
 * whose row is gone (a foreign key on PostgreSQL, the statement's check
 * on sqlite), forget the resource when they find it gone, and register
 * it anew at its next report (docs/operations.md "Ended series"). Forgotten
 * but not deleted (it came back, or the delete failed), it only loses
 * the last values not yet flushed: its next report writes its rows
 * again. The lifecycle of ended series calls it after the store deleted
 * the series (collector/lifecycle.c). 0, -ENOENT (no such resource, or not
 * ended by then), -EAGAIN (busy), -errno. */
int vg_registry_remove_ended(struct vg_registry *r, const char *id,
			     int64_t ended_before_ms);

/* Test hook, weak: a program that defines it is called by the registry
 * where another connection's work may fall between two steps of one:
 * "flush-taken" (a flush took its values out of the last-value cache and
 * has written none yet) and "ended-removed" (vg_registry_remove_ended
 * committed its delete and has not forgotten the resource a second
 * time). tests/unit/registry_test.c runs a sweep's delete between the two
 * steps of a flush there. The daemon leaves it undefined. */
void vg_registry_test_point(const char *where) __attribute__((weak));

#endif
