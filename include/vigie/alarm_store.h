/*
 * vigie — alarm persistence (alarms/store.c): <data_dir>/alarms.db
 * (sqlite, the default) or the state database shared by several
 * collectors ([state] url, PostgreSQL; vigie/db.h).
 *
 * Tables:
 *   alarms   definitions (id, project, name unique per project, JSON)
 *   states   per (alarm, resource) state, reason, the last datapoints and
 *            the cooldown's clock (so a restart resumes evaluation where
 *            it stopped)
 *   group_alarm_members, group_alarm_values   a group alarm's members
 *            and the values of its open periods (same reason)
 *   history  every transition, notification attempt and definition change
 *   outbox   notifications accepted for delivery (webhook, exec,
 *            alertmanager): pending -> delivered | failed
 *
 * Durability: sqlite in WAL with synchronous=FULL, PostgreSQL with its
 * defaults: a committed transition and its
 * outbox rows survive kill -9 and power loss. The engine writes a batch's
 * transitions, states and outbox rows in one transaction before the batch
 * is acknowledged to the agent; the delivery thread records the outcomes
 * of the attempts that finished together (delivered, retry, failed, and
 * their history rows) in one transaction right after the receivers'
 * answers.
 *
 * Several collectors on one PostgreSQL: each runs a delivery thread over
 * the shared outbox; vg_alarm_store_outbox_due claims the rows it hands
 * out (a lease of VG_ALARM_OUTBOX_LEASE_MS, renewed at every call, taken
 * with SELECT ... FOR UPDATE SKIP LOCKED), so a pending row is attempted
 * by one live worker at a time. On sqlite one process owns the file and
 * rows are handed out as before, without claims.
 *
 * A PostgreSQL restart: the first call on a handle after it fails. The
 * reads that hand rows to a callback (vg_alarm_store_load_def(s),
 * vg_alarm_store_load_states(_of), vg_alarm_store_gopen_load) are made
 * once more when that happens outside a transaction (vg_db_retry_lost),
 * before any row went to the callback, so a takeover's read of the
 * stored state does not fail for it; they return -EAGAIN only when the
 * server is still away. Writes are not retried here: a transaction's
 * owner runs it again.
 *
 * Threading: a handle is used by one thread at a time; open one handle
 * per thread (the engine's and the delivery thread's). WAL (sqlite) or
 * MVCC (PostgreSQL) lets them work together; a busy sqlite database is
 * retried for up to 5 s.
 */
#ifndef VIGIE_ALARM_STORE_H
#define VIGIE_ALARM_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct vg_alarm_store;

/* A delivery worker's claim on the outbox rows it holds lasts this long
 * after its last vg_alarm_store_outbox_due (PostgreSQL). */
#define VG_ALARM_OUTBOX_LEASE_MS 30000

/* The state-database URL of the alarm store for where (a data directory:
 * "sqlite:<dir>/alarms.db"; a database URL: itself), into out. 0,
 * -EINVAL, -ENAMETOOLONG. Pure. Other alarm tables (the silences) live
 * beside the store's. */
int vg_alarm_store_url(const char *where, char *out, size_t outlen);

/* Open the alarm store and bring its schema up to date. where is a
 * directory (its alarms.db, created if missing; a file from before the
 * state database layer is adopted as it is) or a state database URL
 * (postgresql://..., or a libpq key=value conninfo: vigie/db.h). 0 or
 * -errno, message in err (-EAGAIN: the server is unreachable now). */
int vg_alarm_store_open(const char *where, struct vg_alarm_store **out,
			char *err, size_t errlen);
void vg_alarm_store_close(struct vg_alarm_store *s); /* accepts NULL */
/* Text of the last database error on this handle. */
const char *vg_alarm_store_errmsg(const struct vg_alarm_store *s);

/* Transactions (BEGIN IMMEDIATE on sqlite, BEGIN on PostgreSQL). 0 or
 * -EAGAIN (busy, unreachable) / -EIO. After an error inside a
 * transaction, roll it back (PostgreSQL refuses everything until then). */
int vg_alarm_store_begin(struct vg_alarm_store *s);
int vg_alarm_store_commit(struct vg_alarm_store *s);
void vg_alarm_store_rollback(struct vg_alarm_store *s);

/* ---- definitions ---------------------------------------------------------- */

typedef int (*vg_alarm_def_row_fn)(void *ctx, const char *id,
				   const char *json, int64_t created_ms,
				   int64_t updated_ms);
/* Call fn for every stored definition (stops early if fn returns non-0,
 * which is returned). */
int vg_alarm_store_load_defs(struct vg_alarm_store *s, vg_alarm_def_row_fn fn,
			     void *ctx);
/* The same for the one definition id (fn not called when there is none). */
int vg_alarm_store_load_def(struct vg_alarm_store *s, const char *id,
			    vg_alarm_def_row_fn fn, void *ctx);
/* Insert or replace. -EEXIST when another alarm of the project has that
 * name. */
int vg_alarm_store_put_def(struct vg_alarm_store *s, const char *id,
			   const char *project, const char *name,
			   const char *json, int64_t created_ms,
			   int64_t updated_ms);
/* Delete a definition and its states (history and outbox rows stay). */
int vg_alarm_store_delete_def(struct vg_alarm_store *s, const char *id);

/* ---- states ----------------------------------------------------------------- */

struct vg_alarm_state_row {
	const char *alarm_id;
	const char *resource; /* "" for a single-resource or composite alarm */
	int state;
	int64_t since_ms;
	int64_t clear_since_ms;
	uint32_t alarm_periods;
	const char *reason;
	const void *ring; /* packed datapoints (vigie/alarm_eval.h) */
	size_t ring_len;
	int64_t updated_ms;
	int64_t cooldown_ms; /* sample time of the last alarm notification
			      * sent (the cooldown's clock); 0 none */
	int64_t log_base;    /* the step log's entries that follow this row
			      * carry this number (0: none can) */
};

typedef int (*vg_alarm_state_row_fn)(void *ctx,
				     const struct vg_alarm_state_row *row);
int vg_alarm_store_load_states(struct vg_alarm_store *s,
			       vg_alarm_state_row_fn fn, void *ctx);
/* The same for the instances of one alarm (a takeover reloads them). */
int vg_alarm_store_load_states_of(struct vg_alarm_store *s, const char *alarm_id,
				  vg_alarm_state_row_fn fn, void *ctx);
int vg_alarm_store_put_state(struct vg_alarm_store *s,
			     const struct vg_alarm_state_row *row);
/* Delete one instance's state row; for resource "" (the one instance of
 * a single-resource, composite or group alarm) also the group alarm's
 * members and open periods below. */
int vg_alarm_store_delete_state(struct vg_alarm_store *s, const char *alarm_id,
				const char *resource);

/* ---- the step log (alarms/engine_queue.c, "Logged steps") ------------------------ */

/* Whether the store is this node's own file (sqlite alarms.db), never
 * shared with another collector: only then does the engine log steps. */
int vg_alarm_store_local(const struct vg_alarm_store *s);
/* Append one row of packed entries (the caller's format), inside the
 * caller's transaction. 0 or -errno. */
int vg_alarm_store_log_add(struct vg_alarm_store *s, const void *entries, size_t len);
/* Delete every row of the log (after the rows they follow were
 * rewritten in the same transaction). 0 or -errno. */
int vg_alarm_store_log_clear(struct vg_alarm_store *s);
/* Every row of the log, oldest first; fn's entries are valid during the
 * call only; a non-zero return of fn stops and is returned. */
typedef int (*vg_alarm_log_fn)(void *ctx, const void *entries, size_t len);
int vg_alarm_store_log_load(struct vg_alarm_store *s, vg_alarm_log_fn fn, void *ctx);

/* ---- group alarms: members and open periods ------------------------------------- */

/* What a group alarm's evaluation needs besides its state row, so a
 * restart or a takeover decides its next period as an uninterrupted run
 * would: its members (written when one joins or leaves) and, per open
 * period, the value each member reported (written with the batch that
 * brought it; value NaN is stored as NULL: a member with no sample).
 * Rows of a period are deleted when it is decided (values_drop through
 * its start). gmember_del with resource NULL deletes every member.
 * Deleting the definition or its "" state deletes them all. 0 or -errno. */
int vg_alarm_store_gmember_put(struct vg_alarm_store *s, const char *alarm_id,
			       const char *resource);
int vg_alarm_store_gmember_del(struct vg_alarm_store *s, const char *alarm_id,
			       const char *resource);
int vg_alarm_store_gvalue_put(struct vg_alarm_store *s, const char *alarm_id,
			      int64_t start_ms, const char *resource, double value);
int vg_alarm_store_gvalues_drop(struct vg_alarm_store *s, const char *alarm_id,
				int64_t through_ms);
/* Read them back, for one alarm or (alarm_id NULL) all: member(ctx,
 * alarm_id, resource) for each member, then value(ctx, alarm_id,
 * start_ms, resource, value) for each open value, by alarm and start.
 * A non-zero return of a callback stops and is returned. */
typedef int (*vg_alarm_gmember_fn)(void *ctx, const char *alarm_id,
				   const char *resource);
typedef int (*vg_alarm_gvalue_fn)(void *ctx, const char *alarm_id, int64_t start_ms,
				  const char *resource, double value);
int vg_alarm_store_gopen_load(struct vg_alarm_store *s, const char *alarm_id,
			      vg_alarm_gmember_fn member, vg_alarm_gvalue_fn value,
			      void *ctx);

/* The alarms with a transition recorded (by any collector's wall
 * clock) at or after since_ms: fn(ctx, alarm_id) once each (a non-zero
 * return stops and is returned). A cluster node refreshes its view of
 * the alarms others own from them. */
/* The notification feed between cluster nodes (PostgreSQL; on sqlite
 * notice_add does nothing and the readers are -ENOTSUP). A node records,
 * in the transaction that records a decision, the SSE body it publishes
 * on its own hub (notice_add); every other node reads the rows it did not
 * write and publishes them on its hub. Rows carry their transaction's id:
 * notices_xmin gives the oldest transaction still running (every row of
 * an older one is final: committed and visible, or rolled back), and
 * notices_since gives, ordered by seq, the rows of transactions at or
 * after xmin with seq > after_seq and node <> node, at most limit, fn(ctx,
 * seq, xid, project, body) for each (a non-zero return stops and is
 * returned). Rows are deleted by notices_prune (recorded_ms, the writer's
 * wall clock, before before_ms). 0 or a negative errno. */
typedef int (*vg_alarm_notice_fn)(void *ctx, int64_t seq, uint64_t xid,
				  const char *project, const char *body);
int vg_alarm_store_notice_add(struct vg_alarm_store *s, const char *node,
			      const char *project, const char *body, int64_t recorded_ms);
int vg_alarm_store_notices_xmin(struct vg_alarm_store *s, uint64_t *xmin);
int vg_alarm_store_notices_since(struct vg_alarm_store *s, const char *node,
				 uint64_t xmin, int64_t after_seq, size_t limit,
				 vg_alarm_notice_fn fn, void *ctx);
int vg_alarm_store_notices_prune(struct vg_alarm_store *s, int64_t before_ms);

int vg_alarm_store_transitioned_since(struct vg_alarm_store *s, int64_t since_ms,
				      int (*fn)(void *ctx, const char *alarm_id),
				      void *ctx);

/* ---- history -------------------------------------------------------------------- */

/* time_ms: when it happened (sample time for transitions, wall time
 * otherwise); recorded_ms: wall time of the write (retention uses it).
 * detail is JSON text. */
int vg_alarm_store_history_add(struct vg_alarm_store *s, const char *alarm_id,
			       const char *project, const char *type,
			       const char *resource, int64_t time_ms,
			       int64_t recorded_ms, const char *detail);

struct vg_alarm_history_query {
	const char *alarm_id;
	int64_t start_ms, end_ms; /* on time_ms, inclusive */
	const char *type;         /* NULL = any */
	int64_t after_seq;        /* cursor: rows with seq > this */
	int limit;                /* 1..1000 */
};
/* A new JSON array of {"seq","type","time","time_ms","recorded_at",
 * "resource","detail"} ordered by seq. *next_seq gets the cursor for the
 * next page or 0 when this is the last. 0 or -errno. */
int vg_alarm_store_history(struct vg_alarm_store *s,
			   const struct vg_alarm_history_query *q, json_t **out,
			   int64_t *next_seq);

/* Delete history rows and finished outbox rows recorded before
 * before_ms, and the history seq counter of each deleted alarm no history
 * row names any more. *deleted (may be NULL) gets the count of history
 * and outbox rows. */
int vg_alarm_store_prune(struct vg_alarm_store *s, int64_t before_ms,
			 uint64_t *deleted);

/* ---- outbox ---------------------------------------------------------------------- */

enum vg_alarm_outbox_state { VG_OUTBOX_PENDING = 0,
			     VG_OUTBOX_DELIVERED = 1,
			     VG_OUTBOX_FAILED = 2 };

struct vg_alarm_outbox_item {
	int64_t id;
	char notice_id[40];
	char alarm_id[40];
	char project[256];
	char *action; /* malloc'd */
	char *body;   /* malloc'd JSON text */
	uint32_t attempts;
	int64_t created_ms, next_ms;
};
void vg_alarm_outbox_item_release(struct vg_alarm_outbox_item *it); /* frees strings */

int vg_alarm_store_outbox_add(struct vg_alarm_store *s, const char *notice_id,
			      const char *alarm_id, const char *project,
			      const char *action, const char *body,
			      int64_t created_ms);
/* Up to max pending rows due at now_ms with an id above after_id, oldest
 * (lowest id) first, into items (caller releases each): the outbox reads
 * new rows with a cursor and rescans from 0 for retries. *n gets the
 * count; *next_due_ms the earliest next_ms of a pending row not due yet
 * (INT64_MAX if none). On PostgreSQL the rows are claimed for this handle
 * (rows another live worker holds are left out; those this handle holds
 * already are returned again, and their leases renewed), in a transaction
 * of its own unless the caller has one open; *next_due_ms is then at most
 * now_ms + 1 s, so the caller reads again soon (rows added by other
 * collectors, leases that ended). */
int vg_alarm_store_outbox_due(struct vg_alarm_store *s, int64_t now_ms,
			      int64_t after_id, struct vg_alarm_outbox_item *items,
			      size_t max, size_t *n, int64_t *next_due_ms);
/* Mark a row delivered / failed for good / due again at next_ms (and
 * give up its claim: any worker may take the next attempt). */
int vg_alarm_store_outbox_delivered(struct vg_alarm_store *s, int64_t id,
				    uint32_t attempts, int64_t when_ms);
int vg_alarm_store_outbox_failed(struct vg_alarm_store *s, int64_t id,
				 uint32_t attempts, const char *error);
int vg_alarm_store_outbox_retry(struct vg_alarm_store *s, int64_t id,
				uint32_t attempts, int64_t next_ms,
				const char *error);

/* ---- notification groups (alarms/group.c) ------------------------------------------ */

/* One group of notifications waiting to be sent as one: gkey is the
 * project, the action and the group_by labels; flush_ms when it is sent
 * (0: no member waits), last_flush_ms when it was last sent. */
struct vg_alarm_group_row {
	char *gkey, *project, *action;
	char alarm_id[40]; /* the first member's alarm (the fence is per alarm) */
	char *labels;      /* JSON object of the group_by labels */
	int64_t flush_ms, last_flush_ms;
};
void vg_alarm_group_row_release(struct vg_alarm_group_row *g); /* frees strings */

/* The row of gkey into *g (caller releases): 0, -ENOENT, or -errno. */
int vg_alarm_store_group_get(struct vg_alarm_store *s, const char *gkey,
			     struct vg_alarm_group_row *g);
/* Insert g, or set flush_ms and last_flush_ms of its existing row. */
int vg_alarm_store_group_put(struct vg_alarm_store *s, const struct vg_alarm_group_row *g);
/* Add one member (a notification's JSON body) to gkey's group. */
int vg_alarm_store_group_member_add(struct vg_alarm_store *s, const char *gkey,
				    const char *body);
/* Up to max groups due at now_ms, earliest first, into rows (caller
 * releases each); *next_ms the earliest flush_ms after now_ms (INT64_MAX
 * if none). */
int vg_alarm_store_groups_due(struct vg_alarm_store *s, int64_t now_ms,
			      struct vg_alarm_group_row *rows, size_t max, size_t *n,
			      int64_t *next_ms);
/* Take gkey's flush: set flush_ms to new_flush_ms and last_flush_ms if
 * flush_ms is still the one read; -ESTALE when another transaction took
 * it first (several collectors on one PostgreSQL database). */
int vg_alarm_store_group_claim(struct vg_alarm_store *s, const char *gkey,
			       int64_t flush_ms, int64_t new_flush_ms,
			       int64_t last_flush_ms);
/* Move up to max of gkey's members, oldest first, into the JSON array
 * out (their bodies) and delete them; *more = 1 when some are left. */
int vg_alarm_store_group_members(struct vg_alarm_store *s, const char *gkey, size_t max,
				 json_t *out, int64_t *last_id, int *more);
/* A new JSON array of the groups with members waiting ({"project",
 * "action", "group", "flush_at", "flush_at_ms", "members"}), of project
 * (NULL: all), at most 1000, earliest flush first. */
int vg_alarm_store_groups_pending(struct vg_alarm_store *s, const char *project,
				  json_t **out);

/* ---- leases (vigie/alarm_lease.h) ------------------------------------------------- */

/* The lease table, beside the alarm tables (PostgreSQL schema
 * vigie_alarms; alarms/lease.c creates it). */
#define VG_ALARM_LEASE_TABLE "alarm_leases"

/* Inside a transaction: fn(ctx, id) for each alarm of ids_csv (their ids
 * joined by ',') that node holds the lease of now (by the database's
 * clock), locking those lease rows until the transaction ends so no other
 * node can take them over in between. On sqlite every id (a single node).
 * 0 or -errno. */
int vg_alarm_store_leases_held(struct vg_alarm_store *s, const char *node,
			       const char *ids_csv, int (*fn)(void *ctx, const char *id),
			       void *ctx);

#endif
