/*
 * meter.c — the usage meter: batches and lifecycle events -> timelines of
 * transitions and hourly network bytes in billing.db (bill_meter.h).
 *
 * Design. Each batch is applied in one transaction (vg_db_transact: the
 * same code and SQL on sqlite and PostgreSQL). The resources rows it
 * needs (every resource it observes or an event names) are locked and
 * read first, in bulk; the items change in-memory copies of them, and the
 * changed rows and the batch's network bytes (summed per vNIC and hour)
 * are written back in multi-row statements before COMMIT. On PostgreSQL
 * each statement the receiver waits for is a round trip: this makes a
 * steady poll cost a handful of statements per batch instead of about
 * eleven per instance (docs/benchmarks.md), and the writes and locks
 * are queued (libpq's pipeline mode, vg_db_step_queued), so a steady
 * batch waits twice: BEGIN, the locks and the read of its rows; then
 * its writes and COMMIT. As a collector consumer the meter does not even
 * wait then: it sends the first part before the other consumers run and
 * waits for the COMMIT after them ("Overlap" below). Timelines (transitions) are
 * still written as each item changes them: they change rarely. Its events and
 * resource observations are merged in time order (an event before an
 * observation at the same instant) and each is applied to its resource's
 * row and timeline:
 *   - An exact event (libvirt's own timestamp) first looks for an inferred
 *     transition of the same kind whose window [lo, hi] contains its time
 *     and replaces it ("refines"); otherwise it adds a transition if it
 *     changes the state at its time (a late event is inserted into the
 *     past and the current state is replayed from the timeline).
 *   - A poll observation compares what it sees with the current state and
 *     infers what changed: started or created at the first sample that
 *     shows it, stopped or deleted at the last time the resource was seen
 *     before (the poll interval is the accuracy cost, docs/billing.md).
 *   - A vNIC's counters give deltas since the previous observation, spread
 *     over the UTC hours they cover in proportion to time. Before a
 *     batch first adds to an hour of a finalized month, that hour's row as
 *     it was billed is kept in network_billed (a pre-image, in the same
 *     statement on PostgreSQL), so an adjustment can name the hours that
 *     changed (finalize.c).
 *
 * Invariants. A resource's observations, and the events the agent derived
 * from a poll (stamped with the poll's time), at or before its last
 * applied poll (last_poll_ms) are ignored, and transitions are unique on
 * (resource, time, kind): applying a batch twice changes nothing. At one
 * instant a FLAVOR sorts before a CREATE/START, which carry a flavor too:
 * recording a FLAVOR gives its flavor to them, so the flavor in force
 * after an instant is the last one reported for it. Usage is
 * never negative: a counter that goes backwards restarted from zero.
 * Nothing in this file uses floating point except reading sample values at
 * the door (a double holding an integer up to 2^53 converts exactly).
 *
 * Several meters, one database (collectors sharing PostgreSQL). Each
 * collector's meter writes the same timelines, and the same batch can
 * reach two of them (an agent re-sends it elsewhere after a lost ack).
 * What keeps the result equal to one meter fed each batch once:
 *  - Every change to a resource is a read-modify-write of its row and
 *    timeline, done after taking that resource's lock: on PostgreSQL a
 *    transaction-scoped advisory lock keyed on a hash of the id (taken
 *    before the row is read, so it also covers a row that does not exist
 *    yet — a row lock could not); on sqlite BEGIN IMMEDIATE already lets
 *    one writer in at a time. A batch takes the locks of all its
 *    resources in one statement, in key order, before reading any of
 *    their rows; they are held until COMMIT, and under READ COMMITTED
 *    each statement after it sees what the previous holder committed.
 *  - The watermark last_poll_ms only moves forward and is checked under
 *    that lock, so the second meter to apply a batch finds every
 *    observation at or before it and changes nothing — in particular it
 *    does not add a vNIC's counter delta to the hourly network bytes a
 *    second time (that upsert is additive, so it must run once).
 *  - Transitions are keyed (resource, time, kind), inserted with
 *    ON CONFLICT DO NOTHING (inferred) or DO UPDATE (exact: the event's
 *    own timestamp wins), so a lifecycle event applied twice writes the
 *    same row.
 *  - has_disks, set on a parent by its disks without the parent's lock,
 *    only moves up (CASE WHEN old > new ...), so a meter saving the
 *    parent row it read earlier cannot turn it back off.
 * Taken at once and in key order, two meters' advisory locks cannot form
 * a cycle; a group of batches in one transaction takes the locks of all
 * its batches at once too, before the first ("Groups" below). The rows
 * a batch locks outside its resources (the parent a disk marks with
 * Q_HAS_DISKS, a project's name) get an advisory key in the same
 * statement (rows_collect), so no meter waits for a row lock another
 * meter holds and no cycle goes through row locks either. Should the
 * server still find one (a writer outside the meter), it breaks it
 * (40P01 -> -EBUSY) and vg_db_transact runs the losing batch again from
 * the start, from fresh copies of the rows (a group: each of its batches
 * alone). A batch's items are applied in time order
 * whatever node applies them, so the rows written depend only on the
 * batches and their order per host, which the agent keeps (it sends a
 * host's next batch only once the previous one is acknowledged). A
 * meter stopped inside its transaction keeps its locks: the others wait
 * for them at most a bound, then answer the batch RETRY ("Bounded lock
 * waits" below).
 *
 * Sightings. Every observation moves its resource's last sighting
 * (last_seen_ms: where an open run ends, the lower bound of an inferred
 * stop) and watermark (last_poll_ms); written into every row, that was
 * one row version per instance and disk per poll for nothing else. A
 * host instead has a current generation in `sightings` (host, gen,
 * time_ms, members), and a row whose (host, sight_gen) names a
 * generation reads as last seen and last polled at the later of its own
 * columns and the generation's time (RES_COLS; usage.c reads the same).
 * At the end of a batch whose observations all carry one time T (a poll;
 * sight_plan):
 *   - if every member of the host's generation is among them and ends
 *     seen and polled at T on that host, the generation moves to T and a
 *     member's row is written only if something else in it changed;
 *     rows seen at T that were not members join (written once);
 *   - otherwise (a member vanished, moved or ended) a new generation
 *     starts at T with the rows seen at T; the old one keeps its time
 *     for the members the batch did not see. Then, after the batch's
 *     rows are written, the host's older generations that no row names
 *     any more are deleted (Q_SIGHT_GC: a member that left one only
 *     by being written, so one nothing names stays unnamed; without it a
 *     resource that comes and goes left one row per absence).
 * A batch that is not one poll (no observation, or several times), or
 * whose T is not after the generation's, changes no generation: the rows
 * it changes are written with their own columns, keeping their
 * generation while their host is the same.
 * The count `members` is an upper bound of the rows naming the
 * generation (rows only leave it, by being written with another), so
 * "all members present" is exact when the count of rows present equals
 * it. Values only grow, so a row written with its own (read, already
 * including the generation) columns stays right whatever the generation
 * does later. The sightings row is read and written under the host's
 * lock (PostgreSQL: an advisory lock taken with the resources', in key
 * order) in the batch's transaction: a crash leaves the generation and
 * the rows of one committed batch, and a re-delivered batch (T not after
 * the generation's time) changes neither.
 *
 * Keyed plans (PostgreSQL). Every statement of the meter names its rows
 * by key, and the server keeps one (generic) plan of each bulk statement
 * once it has run a few times, made again only when the tables'
 * statistics change (an ANALYZE, autovacuum's among them). Left to the
 * costs, that plan depended on the table's size at that moment: a scan of
 * billing's resources on a small table (below ~100 pages, 10,000 series;
 * with the ids as an "= ANY" array, each row compared with every id), the
 * primary key on a large one, flipping from run to run near that size
 * (docs/benchmarks.md). So the meter's connection plans without
 * sequential scans, hash joins or merge joins (vg_db_set_session, also
 * after a reconnect): its read and bulk update are driven by the unnest
 * of the batch's ids and fetch each row by the primary key, at every
 * size and whatever the statistics say; its other statements were keyed
 * already. A table without a usable index is still scanned (those
 * settings only price the alternatives out), and JIT is off on that
 * connection (those prices would make the server compile such a plan at
 * every call).
 *
 * Why one file (~2,000 lines): everything here is one read-modify-write of
 * a resource's row and timeline inside the batch's transaction, under that
 * resource's lock. Events and observations edit the same timeline through
 * the same few helpers (record, refine, state_at, replay), and the
 * multi-meter argument above holds because nothing else writes a
 * timeline; cutting events from observations would make those helpers
 * and the resource row (struct mres) billing-wide. Rate card, usage,
 * invoices and their rendering are files of their own.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "vigie/bill_invoice.h"
#include "vigie/bill_meter.h"
#include "vigie/clock.h"
#include "vigie/hmap.h"
#include "vigie/log.h"

#define ST_EXISTS 1
#define ST_RUNNING 2
#define ST_RUNKNOWN 4 /* a start or stop was ever recorded */

#define HOUR_MS 3600000LL
#define MAX_SPREAD_HOURS (24 * 400)

enum {
	Q_GET,
	Q_PUT,
	Q_INS_IGNORE,
	Q_INS_REPLACE,
	Q_FIND_INFERRED,
	Q_DEL,
	Q_LOAD,
	Q_FILL_FLAVOR,
	Q_NET_ADD,
	Q_HAS_DISKS,
	Q_PARENT_CREATE,
	Q_PARENT_DELETE,
	Q_UPD,
	Q_LOCK_PG,
	Q_TAIL,
	Q_SAME_START,
	Q_LOCK_ALL_PG,
	Q_SIGHT_GET,
	Q_SIGHT_PUT,
	Q_SIGHT_GC,
	Q_LOCK_WAIT_PG,
	Q_SILENCE_PUT,
	Q_SILENCE_AT,
	Q_RUN_START,
	NQ
};

/* A resources row's columns as the meter reads them (read_row's order):
 * last_seen_ms and last_poll_ms include its host's sightings ("Sightings"
 * in the header). */
#define RES_COLS                                                                 \
	"r.type,r.parent,r.project,r.\"user\",r.name,r.host,r.first_ms,"         \
	"CASE WHEN s.time_ms>r.last_seen_ms THEN s.time_ms ELSE r.last_seen_ms " \
	"END,CASE WHEN s.time_ms>r.last_poll_ms THEN s.time_ms ELSE "            \
	"r.last_poll_ms END,r.last_change_ms,r.state,r.flavor,r.vcpus,r.ram_mb," \
	"r.disk_gb,r.capacity,r.has_disks,r.ctr_ms,r.ctr_tx,r.ctr_rx,r.sight_gen"
#define RES_FROM                                                              \
	" FROM resources r LEFT JOIN sightings s ON s.host=r.host AND s.gen=" \
	"r.sight_gen"

static const char *const sql[NQ] = {
	[Q_GET] = "SELECT " RES_COLS RES_FROM " WHERE r.id=?1",
	/* a new row, or one whose identity changed; has_disks only moves
	 * up (another collector's meter may have set it meanwhile) */
	[Q_PUT] = "INSERT INTO resources(id,type,parent,project,\"user\","
		  "name,host,first_ms,last_seen_ms,last_poll_ms,"
		  "last_change_ms,state,flavor,vcpus,ram_mb,disk_gb,capacity,"
		  "has_disks,ctr_ms,ctr_tx,ctr_rx,sight_gen) VALUES(?1,?2,?3,?4,"
		  "?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,"
		  "?21,?22) "
		  "ON CONFLICT(id) DO UPDATE SET type=excluded.type,"
		  "parent=excluded.parent,project=excluded.project,"
		  "\"user\"=excluded.\"user\",name=excluded.name,"
		  "host=excluded.host,first_ms=excluded.first_ms,"
		  "last_seen_ms=excluded.last_seen_ms,"
		  "last_poll_ms=excluded.last_poll_ms,"
		  "last_change_ms=excluded.last_change_ms,state=excluded.state,"
		  "flavor=excluded.flavor,vcpus=excluded.vcpus,"
		  "ram_mb=excluded.ram_mb,disk_gb=excluded.disk_gb,"
		  "capacity=excluded.capacity,has_disks=CASE WHEN "
		  "resources.has_disks>excluded.has_disks THEN "
		  "resources.has_disks ELSE excluded.has_disks END,"
		  "ctr_ms=excluded.ctr_ms,ctr_tx=excluded.ctr_tx,"
		  "ctr_rx=excluded.ctr_rx,sight_gen=excluded.sight_gen",
	[Q_INS_IGNORE] = "INSERT INTO transitions(resource,time_ms,"
			 "kind,exact,lo_ms,hi_ms,flavor,vcpus,ram_mb,disk_gb,"
			 "capacity) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11) "
			 "ON CONFLICT(resource,time_ms,kind) DO NOTHING",
	[Q_INS_REPLACE] = "INSERT INTO transitions(resource,"
			  "time_ms,kind,exact,lo_ms,hi_ms,flavor,vcpus,ram_mb,"
			  "disk_gb,capacity) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,"
			  "?10,?11) ON CONFLICT(resource,time_ms,kind) DO UPDATE "
			  "SET exact=excluded.exact,lo_ms=excluded.lo_ms,"
			  "hi_ms=excluded.hi_ms,flavor=excluded.flavor,"
			  "vcpus=excluded.vcpus,ram_mb=excluded.ram_mb,"
			  "disk_gb=excluded.disk_gb,capacity=excluded.capacity",
	[Q_FIND_INFERRED] = "SELECT time_ms,flavor,vcpus,ram_mb,disk_gb,"
			    "capacity FROM transitions WHERE resource=?1 AND "
			    "kind=?2 AND exact=0 AND lo_ms<=?3 AND hi_ms>=?3-?4 "
			    "ORDER BY time_ms DESC LIMIT 1",
	[Q_DEL] = "DELETE FROM transitions WHERE resource=?1 AND time_ms=?2 "
		  "AND kind=?3",
	[Q_LOAD] = "SELECT time_ms,kind,flavor,vcpus,ram_mb,disk_gb,capacity "
		   "FROM transitions WHERE resource=?1 AND time_ms<=?2 "
		   "ORDER BY time_ms,kind",
	[Q_FILL_FLAVOR] = "UPDATE transitions SET flavor=?2,vcpus=?3,ram_mb=?4,"
			  "disk_gb=?5 WHERE resource=?1 AND kind IN (1,4) AND "
			  "flavor IS NULL AND vcpus IS NULL",
	[Q_NET_ADD] = "INSERT INTO network(project,hour_ms,nic,tx,rx) "
		      "VALUES(?1,?2,?3,?4,?5) ON CONFLICT(project,hour_ms,nic) "
		      "DO UPDATE SET tx=network.tx+excluded.tx,"
		      "rx=network.rx+excluded.rx",
	[Q_HAS_DISKS] = "UPDATE resources SET has_disks=1 WHERE id=?1 AND "
			"has_disks=0",
	[Q_PARENT_CREATE] = "SELECT time_ms FROM transitions WHERE resource=?1 "
			    "AND kind IN (1,4) AND time_ms<=?2 ORDER BY kind=1 "
			    "DESC, time_ms DESC LIMIT 1",
	[Q_PARENT_DELETE] = "SELECT time_ms FROM transitions WHERE resource=?1 "
			    "AND kind=6 AND time_ms>=?2 AND time_ms<=?3 ORDER BY "
			    "exact DESC, time_ms DESC LIMIT 1",
	/* the row of Q_PUT when its identity columns did not change: no
	 * index entry is written. Its parameters are Q_PUT's ?1 and ?8..?22
	 * moved down by 6 (PostgreSQL must see every parameter it is given
	 * used, to know its type) */
	[Q_UPD] = "UPDATE resources SET first_ms=?2,last_seen_ms=?3,"
		  "last_poll_ms=?4,last_change_ms=?5,state=?6,flavor=?7,"
		  "vcpus=?8,ram_mb=?9,disk_gb=?10,capacity=?11,has_disks=CASE "
		  "WHEN has_disks>?12 THEN has_disks ELSE ?12 END,"
		  "ctr_ms=?13,ctr_tx=?14,ctr_rx=?15,sight_gen=?16 WHERE id=?1",
	/* PostgreSQL only: a resource's lock until the transaction ends
	 * (the key is a 64-bit hash of the id: a collision only makes two
	 * resources wait for each other) */
	[Q_LOCK_PG] = "SELECT pg_advisory_xact_lock(hashtextextended(?1, 0))",
	/* live migration (resume_moved): the last transitions of a
	 * resource, newest first */
	[Q_TAIL] = "SELECT time_ms,kind,exact,lo_ms,hi_ms FROM transitions "
		   "WHERE resource=?1 ORDER BY time_ms DESC,kind DESC LIMIT 8",
	/* a FLAVOR recorded at ?2: the CREATE/START at that instant too */
	[Q_SAME_START] = "UPDATE transitions SET flavor=COALESCE(?3,flavor),"
			 "vcpus=COALESCE(?4,vcpus),ram_mb=COALESCE(?5,ram_mb),"
			 "disk_gb=COALESCE(?6,disk_gb) WHERE resource=?1 AND "
			 "time_ms=?2 AND kind IN (1,4)",
	/* PostgreSQL only: the locks of Q_LOCK_PG for every id of the text
	 * array ?1 at once, in key order (the subquery sorts, the aggregate
	 * takes them in that order) */
	[Q_LOCK_ALL_PG] = "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT "
			  "DISTINCT hashtextextended(x, 0) AS k FROM "
			  "unnest(CAST(?1 AS TEXT[])) AS x ORDER BY 1) AS l",
	/* a host's current sightings generation */
	[Q_SIGHT_GET] = "SELECT gen,time_ms,members FROM sightings WHERE host=?1 "
			"ORDER BY gen DESC LIMIT 1",
	[Q_SIGHT_PUT] = "INSERT INTO sightings(host,gen,time_ms,members) "
			"VALUES(?1,?2,?3,?4) ON CONFLICT(host,gen) DO UPDATE SET "
			"time_ms=excluded.time_ms,members=excluded.members",
	/* the host's generations before ?2 that no resources row names any
	 * more (rows only leave a generation, by being written with another
	 * or none; index resources_sight, billing schema step 6) */
	[Q_SIGHT_GC] = "DELETE FROM sightings WHERE host=?1 AND gen<?2 AND NOT "
		       "EXISTS(SELECT 1 FROM resources r WHERE r.host=?1 AND "
		       "r.sight_gen=sightings.gen)",
	/* PostgreSQL only: this transaction's bound on a lock wait, in ms
	 * (SET LOCAL; "Bounded lock waits" above) */
	[Q_LOCK_WAIT_PG] = "SELECT set_config('lock_timeout', ?1, true)",
	/* an instance's silences while running (observe_instance; billing
	 * schema step 7), and the one that holds ?2 (apply_event) */
	[Q_SILENCE_PUT] = "INSERT INTO sighting_gaps(resource,from_ms,to_ms) "
			  "VALUES(?1,?2,?3) ON CONFLICT(resource,from_ms) DO NOTHING",
	[Q_SILENCE_AT] = "SELECT from_ms FROM sighting_gaps WHERE resource=?1 AND "
			 "from_ms<?2 AND to_ms>=?2 ORDER BY from_ms DESC LIMIT 1",
	/* the last transition of a resource before ?2 (silence_ends) */
	[Q_RUN_START] = "SELECT time_ms,kind,exact FROM transitions WHERE "
			"resource=?1 AND time_ms<?2 ORDER BY time_ms DESC,kind DESC "
			"LIMIT 1",
};

/* Project names last written (names.c): a batch repeats its projects'
 * names for every instance; an unchanged one is not written again.
 * Direct-mapped; emptied when a batch rolls back. */
#define NAME_CACHE 64
struct name_slot {
	char *project, *name;
};

/* The batch host's current sightings generation (Q_SIGHT_GET). */
struct sight {
	int found;
	int64_t gen, time_ms, members;
};

struct vg_bill_meter {
	struct vg_db *db;
	const struct vg_batch *batch;   /* the batch being applied */
	struct vg_bill_meter_stats cur; /* this attempt's counts */
	struct vg_bill_meter_stats st;
	struct name_slot names[NAME_CACHE];
	int attempts;         /* of the batch being applied (vg_db_transact retries) */
	struct vg_hmap rows;  /* id -> struct crow: the batch's resources */
	struct vg_hmap lockx; /* lock keys beyond rows' and hosts' (rows_collect) */
	struct vg_hmap net;   /* "project\0hour\0nic" -> struct cnet */
	struct sight sg;      /* the batch host's, read with its rows */
	int64_t gc_below;     /* sight_plan: a new generation; rows_flush then
			      * deletes the older ones nothing names (-1: no) */
	/* the bulk statements' SQL, built at open (rows_* below) */
	char *fetch_sql, *upd_sql[6], *net_sql[6];
	/* PostgreSQL's read and bulk update: arrays (fetch_bind, upd_pg) */
	char *fetch_pg_sql, *upd_pg_sql;
	/* the network rows' pre-images (network_billed): sqlite runs pre_sql
	 * before net_sql, PostgreSQL net_pg_sql, both in one statement */
	char *pre_sql[6], *net_pg_sql[6];
	/* the overlapped path ("Overlap" below): EARLY_SENT after begin
	 * sent the transaction's locks and read, EARLY_COMMIT after batch
	 * sent its writes and COMMIT */
	enum { EARLY_NONE,
	       EARLY_SENT,
	       EARLY_COMMIT } early;
	struct vg_db_stmt *early_fetch; /* the read sent by begin */
	uint64_t overlapped;            /* batches applied that way (tests) */
	/* a group ("Groups" below): G_OPEN while its transaction holds
	 * every batch so far, G_FAILED once it was rolled back */
	enum { G_NONE,
	       G_OPEN,
	       G_FAILED } group;
	const struct vg_batch *gb[VG_DISPATCH_GROUP_MAX]; /* batch() saw */
	size_t gn;
	struct vg_bill_meter_stats gst;     /* the group's counts until COMMIT */
	uint64_t groups;                    /* group transactions committed */
	const struct vg_batch *const *gall; /* the group (group_begin's) */
	size_t gall_n;
	const struct vg_batch *gnext; /* its locks and read were sent */
	struct vg_db_stmt *gfetch;    /* that read */
	uint64_t group_fallbacks;     /* groups applied again batch by batch */
	/* resources whose implausible usage was logged (keys only; at most
	 * IMPLAUSIBLE_LOGGED, then one line says the others are counted
	 * only) */
	struct vg_hmap implausible_logged;
	int implausible_full;
	/* "Bounded lock waits" below */
	uint32_t lock_ms;         /* the connection's lock_timeout (0: none) */
	int lock_short;           /* the transactions of a group's batches
				    * after a lock wait of the group passed
				    * lock_ms: LOCK_SHORT_MS each */
	int group_timed_out;      /* the group's transaction failed so */
	uint64_t lock_timeouts;   /* __atomic: batches answered -EAGAIN so */
	int episode;              /* since the first of them (logged) */
	uint64_t episode_n;       /* batches answered so in the episode */
	int64_t episode_first_ms; /* monotonic */
	int64_t episode_last_ms;
	/* "A test's fault" below: NULL unless VIGIE_TEST_BILLING_PAUSE is set */
	char *pause_host;
	long pause_n;
};

static void names_forget(struct vg_bill_meter *m)
{
	for (int i = 0; i < NAME_CACHE; i++) {
		free(m->names[i].project);
		free(m->names[i].name);
		m->names[i].project = m->names[i].name = NULL;
	}
}

/* vg_bill_names_put unless (project, name) is what was last written. */
static int put_name(struct vg_bill_meter *m, const char *project, const char *name,
		    int64_t t)
{
	uint32_t h = 2166136261u;
	int rc;

	if (!project || !name || !*name)
		return 0;
	for (const char *p = project; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	struct name_slot *sl = &m->names[h % NAME_CACHE];
	if (sl->project && !strcmp(sl->project, project) && !strcmp(sl->name, name))
		return 0;
	if ((rc = vg_bill_names_put(m->db, project, name, t)))
		return rc;
	free(sl->project);
	free(sl->name);
	sl->project = strdup(project);
	sl->name = strdup(name);
	if (!sl->project || !sl->name) {
		free(sl->project);
		free(sl->name);
		sl->project = sl->name = NULL;
	}
	return 0;
}

/* The flavor of an instance; -1 / NULL for what is unknown. */
struct flavor {
	char name[128];
	int has_name;
	int64_t vcpus, ram_mb, disk_gb;
};

/* One resources row in memory. */
struct mres {
	char *id, *parent, *project, *user, *name, *host;
	int type, found;
	int ident_changed; /* type/parent/project/user/name/host since load */
	int moved;         /* this observation took it over from another host */
	int64_t first_ms, last_seen_ms, last_poll_ms, last_change_ms;
	int state;
	struct flavor fl;
	int64_t capacity;
	int has_disks;
	int ctr_valid;
	int64_t ctr_ms, ctr_tx, ctr_rx;
	int64_t sight_gen; /* as read; -1: none */
};

/* A transition to record. */
struct trans {
	int64_t t;
	int kind, exact;
	int64_t lo, hi;
	const struct flavor *fl; /* CREATE/START/FLAVOR */
	int64_t capacity;        /* CREATE/CAPACITY of disks, -1 */
};

/* ---- small helpers -------------------------------------------------------- */

static int q(struct vg_bill_meter *m, int i, struct vg_db_stmt **s)
{
	return vg_db_prepare(m->db, sql[i], s);
}

/* Run a write (or a lock) whose rows are not read. Queued on PostgreSQL:
 * it travels with the next read or the COMMIT, in the same round trip
 * (vg_db_step_queued); its error, if any, comes back from that call,
 * still inside the batch's transaction, which fails as a whole. */
static int step_done(struct vg_db_stmt *s)
{
	return vg_db_step_queued(s);
}

static void bind_opt(struct vg_db_stmt *s, int i, int64_t v)
{
	if (v >= 0)
		vg_db_bind_int64(s, i, v);
	else
		vg_db_bind_null(s, i);
}

static int64_t col_opt(struct vg_db_stmt *s, int i)
{
	return vg_db_column_is_null(s, i) ? -1
					  : vg_db_column_int64(s, i);
}

static char *col_dup(struct vg_db_stmt *s, int i)
{
	const char *t = vg_db_column_text(s, i);
	return t ? strdup(t) : NULL;
}

/* Set an identity column of r to src unless src is NULL (unknown). */
static int set_str(struct mres *r, char **dst, const char *src)
{
	if (!src || (*dst && !strcmp(*dst, src)))
		return 0;
	char *n = strdup(src);
	if (!n)
		return -ENOMEM;
	free(*dst);
	*dst = n;
	r->ident_changed = 1;
	return 0;
}

static void mres_clear(struct mres *r)
{
	free(r->id);
	free(r->parent);
	free(r->project);
	free(r->user);
	free(r->name);
	free(r->host);
	memset(r, 0, sizeof(*r));
}

static void flavor_unknown(struct flavor *f)
{
	memset(f, 0, sizeof(*f));
	f->vcpus = f->ram_mb = f->disk_gb = -1;
}

static void flavor_read(struct flavor *f, struct vg_db_stmt *s, int name_col)
{
	const char *n = vg_db_column_text(s, name_col);
	flavor_unknown(f);
	if (n) {
		snprintf(f->name, sizeof(f->name), "%s", (const char *)n);
		f->has_name = 1;
	}
	f->vcpus = col_opt(s, name_col + 1);
	f->ram_mb = col_opt(s, name_col + 2);
	f->disk_gb = col_opt(s, name_col + 3);
}

static int flavor_known(const struct flavor *f)
{
	return f->has_name || f->vcpus >= 0 || f->ram_mb >= 0 || f->disk_gb >= 0;
}

/* Lay the known fields of n over *f. Returns 1 if anything changed. */
static int flavor_merge(struct flavor *f, const struct flavor *n)
{
	int ch = 0;
	if (n->has_name && (!f->has_name || strcmp(f->name, n->name))) {
		memcpy(f->name, n->name, sizeof(f->name));
		f->has_name = 1;
		ch = 1;
	}
	if (n->vcpus >= 0 && n->vcpus != f->vcpus) {
		f->vcpus = n->vcpus;
		ch = 1;
	}
	if (n->ram_mb >= 0 && n->ram_mb != f->ram_mb) {
		f->ram_mb = n->ram_mb;
		ch = 1;
	}
	if (n->disk_gb >= 0 && n->disk_gb != f->disk_gb) {
		f->disk_gb = n->disk_gb;
		ch = 1;
	}
	return ch;
}

/* ---- implausible usage (bill_meter.h) ------------------------------------- */

#define IMPLAUSIBLE_LOGGED 10000

const char *vg_bill_implausible_name(int kind)
{
	static const char *const n[VG_BILL_IMPL_N] = {"vcpus", "memory", "disk", "network"};
	return kind >= 0 && kind < VG_BILL_IMPL_N ? n[kind] : NULL;
}

/* Count an implausible value of resource id and log it, once per
 * resource (a batch applied again after a conflict, or the same broken
 * agent at every poll, logs nothing more). */
static void implausible(struct vg_bill_meter *m, const char *id, int kind,
			const char *what, int64_t v, int64_t max)
{
	m->cur.implausible[kind]++;
	if (!id || vg_hmap_gets(&m->implausible_logged, id))
		return;
	if (vg_hmap_count(&m->implausible_logged) >= IMPLAUSIBLE_LOGGED) {
		if (!m->implausible_full)
			vg_warn("billing: implausible usage of more than %d resources: "
				"the others are counted (vigie_billing_implausible_total) "
				"and not logged",
				IMPLAUSIBLE_LOGGED);
		m->implausible_full = 1;
		return;
	}
	(void)vg_hmap_puts(&m->implausible_logged, id, (void *)1);
	vg_warn("billing: resource %s: %s %lld is past %lld, no guest uses that much: "
		"ignored (not billed; the agent reporting it is broken; logged once "
		"per resource, counted in vigie_billing_implausible_total)",
		id, what, (long long)v, (long long)max);
}

/* v if at most max (or unknown, < 0), else -1 after implausible(). */
static int64_t plausible(struct vg_bill_meter *m, const char *id, int kind,
			 const char *what, int64_t v, int64_t max)
{
	if (v <= max)
		return v;
	implausible(m, id, kind, what, v, max);
	return -1;
}

/* The flavor values of an observation or event, bounded. */
static void flavor_bound(struct vg_bill_meter *m, const char *id, struct flavor *f)
{
	f->vcpus = plausible(m, id, VG_BILL_IMPL_VCPUS, "vcpus", f->vcpus, VG_BILL_MAX_VCPUS);
	f->ram_mb = plausible(m, id, VG_BILL_IMPL_MEMORY, "memory_mb", f->ram_mb,
			      VG_BILL_MAX_RAM_MB);
	f->disk_gb = plausible(m, id, VG_BILL_IMPL_DISK, "disk_gb", f->disk_gb,
			       VG_BILL_MAX_DISK_GB);
}

void vg_bill_meter_implausible(const struct vg_bill_meter *m, uint64_t *out)
{
	for (int k = 0; k < VG_BILL_IMPL_N; k++)
		out[k] = m ? __atomic_load_n(&m->st.implausible[k], __ATOMIC_RELAXED) : 0;
}

/* A sample value as a non-negative integer, or -1. */
static int64_t to_int(double v)
{
	if (!isfinite(v) || v < 0 || v >= 9.2e18)
		return -1;
	return (int64_t)v;
}

/* ---- the batch's rows, read and written in bulk ------------------------ */

/* A resource the batch observes or an event names: read with the others
 * before the first item is applied (after taking every lock at once on
 * PostgreSQL), changed in memory by the items, written back with the
 * others before COMMIT. */
struct crow {
	struct mres r;
	int dirty;        /* changed since read: write it at the end */
	int need_put;     /* new, or identity changed: the upsert, not the update */
	struct mres base; /* as read: its scalar columns only (no strings) */
	char *host0;      /* host as read (NULL: none, or not found) */
	int64_t gen;      /* sight_gen to write (sight_plan) */
	int write;        /* sight_plan: write the row */
};

/* Hourly network bytes of a vNIC, summed over the batch (the upsert adds:
 * a sum written once equals its parts written one by one). */
struct cnet {
	char *project, *nic;
	int64_t hour, tx, rx;
	char key[];
};

/* Rows per statement when reading (IN list, padded with NULL, which
 * matches nothing) and writing (the smallest of these sizes that holds
 * what is left, at most 64, padded with rows of NULL that match and
 * insert nothing): n rows cost one round trip per 64, not n (nor one per
 * exact size: 18 rows were 16 + 1 + 1, three statements). On PostgreSQL
 * the read takes its FETCH_ROWS ids as one text[] (fetch_bind) and the
 * update all of a batch's rows as one array per column (upd_pg): the
 * server plans such a statement once, where it planned the IN lists and
 * VALUES of 64 rows anew at every call (their parameters' values made a
 * custom plan look cheaper), a third of their server time; and the
 * custom plans of the read had turned to a scan of the whole table
 * once the table was analyzed. Both are driven by the unnest of the ids
 * and planned keyed ("Keyed plans" above). */
#define FETCH_ROWS 128
/* The meter's connection's planner settings ("Keyed plans" above). jit
 * off: the settings price a plan that still scans a table (the network
 * statements' MAX over network_billed_months, which has no index on its
 * column) above jit_above_cost, and the server then compiled the
 * statement at every call (~0.65 s each); a statement of a few keyed rows
 * never gains from JIT anyway. */
#define METER_SESSION_PG                                                                    \
	"SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off; " \
	"SET jit = off"
static const int write_sizes[] = {64, 32, 16, 8, 4, 1};
#define NWRITE (sizeof(write_sizes) / sizeof(write_sizes[0]))
/* The types of the bulk statements' columns, one letter each (t TEXT,
 * b BIGINT): the resources rows' (bind_upd) and the network rows'
 * (bind_net). */
static const char UPD_TYPES[] = "tbbbbbtbbbbbbbbb";
static const char NET_TYPES[] = "tbtbb";
#define UPD_COLS ((int)sizeof(UPD_TYPES) - 1)
#define NET_COLS ((int)sizeof(NET_TYPES) - 1)

static void rows_forget(struct vg_bill_meter *m)
{
	size_t pos = 0;
	const struct vg_hmap_entry *e;

	while ((e = vg_hmap_next(&m->rows, &pos))) {
		struct crow *c = e->value;
		mres_clear(&c->r);
		free(c->host0);
		free(c);
	}
	vg_hmap_release(&m->rows);
	vg_hmap_release(&m->lockx); /* its values are not owned */
	pos = 0;
	while ((e = vg_hmap_next(&m->net, &pos)))
		free(e->value);
	vg_hmap_release(&m->net);
}

static int dup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (src && !(*dst = strdup(src)))
		return -ENOMEM;
	return 0;
}

/* *dst = a deep copy of *src (dst's old strings freed). */
static int mres_copy(struct mres *dst, const struct mres *src)
{
	struct mres n = *src;
	int rc = 0;

	rc |= dup_opt(&n.id, src->id);
	rc |= dup_opt(&n.parent, src->parent);
	rc |= dup_opt(&n.project, src->project);
	rc |= dup_opt(&n.user, src->user);
	rc |= dup_opt(&n.name, src->name);
	rc |= dup_opt(&n.host, src->host);
	if (rc) {
		mres_clear(&n);
		return -ENOMEM;
	}
	mres_clear(dst);
	*dst = n;
	return 0;
}

/* The resources row in s's current row, columns from 0 (Q_GET's order). */
static void read_row(struct mres *r, struct vg_db_stmt *s, int c);

/* Add id to the batch's rows (not read yet: found = 0). */
static int rows_add(struct vg_bill_meter *m, const char *id)
{
	struct crow *c;

	if (!id || vg_hmap_gets(&m->rows, id))
		return 0;
	if (!(c = calloc(1, sizeof(*c))))
		return -ENOMEM;
	flavor_unknown(&c->r.fl);
	c->r.capacity = -1;
	c->r.sight_gen = -1;
	c->r.first_ms = c->r.last_seen_ms = c->r.last_poll_ms = c->r.last_change_ms =
		INT64_MIN;
	if (!(c->r.id = strdup(id)) || vg_hmap_puts(&m->rows, c->r.id, c)) {
		free(c->r.id);
		free(c);
		return -ENOMEM;
	}
	return 0;
}

/* Append "<pre><key>" to the text[] literal *a (see rows_lock_pg). */
static int lock_key(char **a, size_t *len, size_t *cap, const char *pre,
		    const char *key, size_t klen)
{
	size_t pl = strlen(pre), need = 2 * (pl + klen) + 4;

	if (*len + need + 2 > *cap) {
		char *n;
		while (*len + need + 2 > *cap)
			*cap *= 2;
		if (!(n = realloc(*a, *cap)))
			return -ENOMEM;
		*a = n;
	}
	if (*len > 1)
		(*a)[(*len)++] = ',';
	(*a)[(*len)++] = '"';
	for (size_t i = 0; i < pl + klen; i++) {
		char ch = i < pl ? pre[i] : key[i - pl];
		if (ch == '"' || ch == '\\')
			(*a)[(*len)++] = '\\';
		(*a)[(*len)++] = ch;
	}
	(*a)[(*len)++] = '"';
	return 0;
}

/* PostgreSQL: the resource locks of m->rows, the other keys of m->lockx,
 * and the sightings locks of hosts[0..nhosts) (keyed "sightings:" +
 * host), in one statement, in the
 * order of their keys, so two meters never wait for each other in a
 * cycle: a batch's rows and host, or a whole group's (group_lock_pg). The
 * ids travel as one text[] literal: {"a","b"} with " and \ escaped. */
static int rows_lock_pg(struct vg_bill_meter *m, const char *const *hosts, size_t nhosts)
{
	size_t cap = 64, len = 0, pos = 0;
	const struct vg_hmap_entry *e;
	char *a = malloc(cap);
	struct vg_db_stmt *s;
	int rc = 0;

	if (!a)
		return -ENOMEM;
	a[len++] = '{';
	while (!rc && (e = vg_hmap_next(&m->rows, &pos)))
		rc = lock_key(&a, &len, &cap, "", e->key, e->klen);
	pos = 0;
	while (!rc && (e = vg_hmap_next(&m->lockx, &pos)))
		rc = lock_key(&a, &len, &cap, "", e->key, e->klen);
	for (size_t i = 0; !rc && i < nhosts; i++)
		rc = lock_key(&a, &len, &cap, "sightings:", hosts[i], strlen(hosts[i]));
	if (rc) {
		free(a);
		return rc;
	}
	a[len++] = '}';
	a[len] = '\0';
	rc = q(m, Q_LOCK_ALL_PG, &s);
	if (!rc) {
		vg_db_bind_text(s, 1, a);
		rc = step_done(s);
	}
	free(a);
	return rc;
}

/* The read of the FETCH_ROWS rows from the one at *pos on, bound. */
static int fetch_bind(struct vg_bill_meter *m, const char *host, size_t *pos,
		      const struct vg_hmap_entry **e, struct vg_db_stmt **s)
{
	int rc;

	if (vg_db_engine(m->db) == VG_DB_POSTGRESQL) { /* the ids as one text[] */
		size_t cap = 64, len = 0;
		char *a = malloc(cap);
		int rc2 = 0;

		if (!a)
			return -ENOMEM;
		a[len++] = '{';
		for (int i = 1; i <= FETCH_ROWS && *e && !rc2; i++) {
			const char *id = ((struct crow *)(*e)->value)->r.id;
			rc2 = lock_key(&a, &len, &cap, "", id, strlen(id));
			*e = vg_hmap_next(&m->rows, pos);
		}
		if (rc2 || (rc2 = vg_db_prepare(m->db, m->fetch_pg_sql, s))) {
			free(a);
			return rc2;
		}
		a[len++] = '}';
		a[len] = '\0';
		vg_db_bind_text(*s, 1, a);
		vg_db_bind_text(*s, 2, host);
		free(a);
		return 0;
	}
	if ((rc = vg_db_prepare(m->db, m->fetch_sql, s)))
		return rc;
	for (int i = 1; i <= FETCH_ROWS && *e; i++) {
		vg_db_bind_text(*s, i, ((struct crow *)(*e)->value)->r.id);
		*e = vg_hmap_next(&m->rows, pos);
	}
	vg_db_bind_text(*s, FETCH_ROWS + 1, host);
	return 0;
}

/* Read the batch's rows that exist, FETCH_ROWS ids a statement, and with
 * them host's current sightings generation (into m->sg; *got = 1 if any
 * row came back, so that it was read). sent: the only statement needed
 * was bound and sent already (vg_db_query_queued; the batch has at most
 * FETCH_ROWS rows). */
static int rows_fetch(struct vg_bill_meter *m, const char *host, int *got,
		      struct vg_db_stmt *sent)
{
	size_t pos = 0;
	const struct vg_hmap_entry *e = vg_hmap_next(&m->rows, &pos);
	struct vg_db_stmt *s;
	int rc;

	*got = 0;
	while (e) {
		if (sent) {
			s = sent;
			e = NULL;
		} else if ((rc = fetch_bind(m, host, &pos, &e, &s))) {
			return rc;
		}
		while ((rc = vg_db_step(s)) == 1) {
			struct crow *c = vg_hmap_gets(&m->rows, vg_db_column_text(s, 0));
			if (!*got && !vg_db_column_is_null(s, 22)) {
				m->sg.found = 1;
				m->sg.gen = vg_db_column_int64(s, 22);
				m->sg.time_ms = vg_db_column_int64(s, 23);
				m->sg.members = vg_db_column_int64(s, 24);
			}
			*got = 1;
			if (!c)
				continue;
			read_row(&c->r, s, 1);
			c->base = c->r;
			c->base.id = c->base.parent = c->base.project = NULL;
			c->base.user = c->base.name = c->base.host = NULL;
			if (c->r.host && !(c->host0 = strdup(c->r.host))) {
				vg_db_reset(s);
				return -ENOMEM;
			}
		}
		vg_db_reset(s);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Whether resource i of b is metered: an instance, disk or vNIC an agent
 * observed. A project's published measures (b->published) observe
 * nothing: stamped up to max_future ahead, they would move the watermark
 * past the agent's next polls and a start or stop they show would be
 * billed from the published time. */
static int metered(const struct vg_batch *b, size_t i)
{
	int ty = b->res[i].type;

	return !b->published && (ty == VG_RT_INSTANCE || ty == VG_RT_DISK || ty == VG_RT_NIC);
}

static const char *attr_get(const struct vg_batch *b, const struct vg_resource *res,
			    const char *k1, const char *k2);

/* Add "<pre><key>" to the lock keys of m->lockx. */
static int lockx_add(struct vg_bill_meter *m, const char *pre, const char *key)
{
	size_t pl = strlen(pre), kl = strlen(key);
	char *k = malloc(pl + kl + 1);
	int rc;

	if (!k)
		return -ENOMEM;
	memcpy(k, pre, pl);
	memcpy(k + pl, key, kl + 1);
	rc = vg_hmap_puts(&m->lockx, k, m); /* the map copies the key */
	free(k);
	return rc;
}

/* The resources and events of b into m->rows (not read yet), and into
 * m->lockx the keys of the other rows that applying b may lock on
 * PostgreSQL: the project-name row an instance's project_name may write
 * (put_name; keyed "names:" + project) and the parent a disk may mark as
 * having disks (Q_HAS_DISKS; its resource key, usually one of the
 * batch's rows already). Taking their advisory locks with the others,
 * in key order, before any row lock, keeps those row locks out of any
 * cycle: whoever waits for such a row lock holds its advisory lock, so
 * no other meter holds the row. */
static int rows_collect(struct vg_bill_meter *m, const struct vg_batch *b)
{
	int rc = 0;

	for (size_t i = 0; i < b->nres && !rc; i++) {
		const struct vg_resource *res = &b->res[i];
		const char *pn;
		if (!metered(b, i))
			continue;
		rc = rows_add(m, res->id);
		if (!rc && res->type == VG_RT_INSTANCE && res->state == VG_RSTATE_ACTIVE &&
		    res->project && (pn = attr_get(b, res, "project_name", NULL)) && *pn)
			rc = lockx_add(m, "names:", res->project);
		if (!rc && res->type == VG_RT_DISK && res->parent)
			rc = lockx_add(m, "", res->parent);
	}
	for (size_t i = 0; i < b->nevents && !rc; i++) {
		const struct vg_event *e = &b->events[i];
		if (e->resource && e->type != VG_EV_GAP && e->type != VG_EV_SUSPENDED &&
		    e->type != VG_EV_RESUMED)
			rc = rows_add(m, e->resource);
	}
	memset(&m->sg, 0, sizeof(m->sg));
	return rc;
}

static const char *batch_host(const struct vg_batch *b)
{
	return b->host && *b->host ? b->host : NULL;
}

/* Read the rows of m->rows (locked before on PostgreSQL), and the host's
 * sightings. sent: rows_fetch's. */
static int rows_read(struct vg_bill_meter *m, const char *host,
		     struct vg_db_stmt *sent)
{
	int got, rc;

	if ((rc = rows_fetch(m, host, &got, sent)))
		return rc;
	if (host && !got) { /* no row to bring the sightings along */
		struct vg_db_stmt *s;
		if ((rc = q(m, Q_SIGHT_GET, &s)))
			return rc;
		vg_db_bind_text(s, 1, host);
		if ((rc = vg_db_step(s)) == 1) {
			m->sg.found = 1;
			m->sg.gen = vg_db_column_int64(s, 0);
			m->sg.time_ms = vg_db_column_int64(s, 1);
			m->sg.members = vg_db_column_int64(s, 2);
			rc = 0;
		}
		vg_db_reset(s);
	}
	return rc;
}

/* The resources and events of b: their rows, locked (PostgreSQL) and read. */
static int rows_prefetch(struct vg_bill_meter *m, const struct vg_batch *b)
{
	const char *host = batch_host(b);
	int rc;

	if ((rc = rows_collect(m, b)) || !vg_hmap_count(&m->rows))
		return rc;
	if (vg_db_engine(m->db) == VG_DB_POSTGRESQL &&
	    (rc = rows_lock_pg(m, &host, host ? 1 : 0)))
		return rc;
	return rows_read(m, host, NULL);
}

/* ---- resources rows ---------------------------------------------------------- */

/* Load resource id into *r. lock: the caller is about to change it, so
 * on PostgreSQL take its lock first (see the header). */
static void read_row(struct mres *r, struct vg_db_stmt *s, int c)
{
	r->found = 1;
	r->type = (int)vg_db_column_int64(s, c + 0);
	r->parent = col_dup(s, c + 1);
	r->project = col_dup(s, c + 2);
	r->user = col_dup(s, c + 3);
	r->name = col_dup(s, c + 4);
	r->host = col_dup(s, c + 5);
	r->first_ms = vg_db_column_int64(s, c + 6);
	r->last_seen_ms = vg_db_column_int64(s, c + 7);
	r->last_poll_ms = vg_db_column_int64(s, c + 8);
	r->last_change_ms = vg_db_column_int64(s, c + 9);
	r->state = (int)vg_db_column_int64(s, c + 10);
	flavor_read(&r->fl, s, c + 11);
	r->capacity = col_opt(s, c + 15);
	r->has_disks = (int)vg_db_column_int64(s, c + 16);
	r->ctr_valid = !vg_db_column_is_null(s, c + 17);
	r->ctr_ms = vg_db_column_int64(s, c + 17);
	r->ctr_tx = vg_db_column_int64(s, c + 18);
	r->ctr_rx = vg_db_column_int64(s, c + 19);
	r->sight_gen = col_opt(s, c + 20);
}

/* Load resource id into *r: the batch's copy if it is one of the batch's
 * resources (locked and read by rows_prefetch), else from the database.
 * lock: the caller is about to change it, so on PostgreSQL take its lock
 * first (see the header) — only for an id outside the batch's rows. */
static int load_res(struct vg_bill_meter *m, const char *id, struct mres *r, int lock)
{
	struct crow *c = vg_hmap_gets(&m->rows, id);
	struct vg_db_stmt *s;
	int rc;

	memset(r, 0, sizeof(*r));
	if (c) {
		if ((rc = mres_copy(r, &c->r)))
			return rc;
		r->ident_changed = r->moved = 0;
		return 0;
	}
	flavor_unknown(&r->fl);
	r->capacity = -1;
	r->sight_gen = -1;
	r->first_ms = r->last_seen_ms = r->last_poll_ms = r->last_change_ms =
		INT64_MIN;
	if (!(r->id = strdup(id)))
		return -ENOMEM;
	if (lock && vg_db_engine(m->db) == VG_DB_POSTGRESQL) {
		if ((rc = q(m, Q_LOCK_PG, &s)))
			return rc;
		vg_db_bind_text(s, 1, id);
		if ((rc = step_done(s)))
			return rc;
	}
	if ((rc = q(m, Q_GET, &s)))
		return rc;
	vg_db_bind_text(s, 1, id);
	rc = vg_db_step(s);
	if (rc == 1) {
		read_row(r, s, 0);
		rc = 0;
	}
	vg_db_reset(s);
	return rc;
}

/* Where a bulk statement's row goes: bound as parameters ?base+1..
 * (the VALUES rows), or appended to one array literal per column
 * (PostgreSQL's unnest statements: arr[i - 1] for column i). */
struct sink {
	struct vg_db_stmt *s;
	int base;
	struct vg_db_array *arr;
};

static int sink_text(struct sink *k, int i, const char *v)
{
	return k->arr ? vg_db_array_text(&k->arr[i - 1], v) : vg_db_bind_text(k->s, k->base + i, v);
}

static int sink_int(struct sink *k, int i, int64_t v)
{
	return k->arr ? vg_db_array_int(&k->arr[i - 1], v) : vg_db_bind_int64(k->s, k->base + i, v);
}

static int sink_null(struct sink *k, int i)
{
	return k->arr ? vg_db_array_null(&k->arr[i - 1]) : vg_db_bind_null(k->s, k->base + i);
}

/* bind_opt's rule: a negative value is NULL */
static int sink_opt(struct sink *k, int i, int64_t v)
{
	return v >= 0 ? sink_int(k, i, v) : sink_null(k, i);
}

/* A resources row's UPD_COLS columns, as Q_UPD and the bulk updates
 * take them (id and ?8..?22 of Q_PUT), with sight_gen gen (-1: NULL). */
static int sink_upd(struct sink *k, const struct mres *r, int64_t gen)
{
	int rc = 0;

	rc |= sink_text(k, 1, r->id);
	rc |= sink_int(k, 2, r->first_ms == INT64_MIN ? -1 : r->first_ms);
	rc |= sink_int(k, 3, r->last_seen_ms);
	rc |= sink_int(k, 4, r->last_poll_ms);
	rc |= sink_int(k, 5, r->last_change_ms);
	rc |= sink_int(k, 6, r->state);
	rc |= sink_text(k, 7, r->fl.has_name ? r->fl.name : NULL);
	rc |= sink_opt(k, 8, r->fl.vcpus);
	rc |= sink_opt(k, 9, r->fl.ram_mb);
	rc |= sink_opt(k, 10, r->fl.disk_gb);
	rc |= sink_opt(k, 11, r->capacity);
	rc |= sink_int(k, 12, r->has_disks);
	if (r->ctr_valid) {
		rc |= sink_int(k, 13, r->ctr_ms);
		rc |= sink_int(k, 14, r->ctr_tx);
		rc |= sink_int(k, 15, r->ctr_rx);
	} else {
		rc |= sink_null(k, 13);
		rc |= sink_null(k, 14);
		rc |= sink_null(k, 15);
	}
	rc |= sink_opt(k, 16, gen);
	return rc ? -ENOMEM : 0;
}

/* Bind r's Q_UPD columns at ?base+1.. */
static void bind_upd(struct vg_db_stmt *s, int base, const struct mres *r, int64_t gen)
{
	struct sink k = {s, base, NULL};

	(void)sink_upd(&k, r, gen);
}

/* Write r now: the upsert (new row or identity changed) or the update,
 * with sight_gen gen (-1: NULL; r's last sightings are then its own). */
static int write_res(struct vg_bill_meter *m, const struct mres *r, int put, int64_t gen)
{
	struct vg_db_stmt *s;
	int rc = q(m, put ? Q_PUT : Q_UPD, &s);

	if (rc)
		return rc;
	if (!put) {
		bind_upd(s, 0, r, gen);
		return step_done(s);
	}
	vg_db_bind_text(s, 1, r->id);
	vg_db_bind_int64(s, 2, r->type);
	vg_db_bind_text(s, 3, r->parent);
	vg_db_bind_text(s, 4, r->project ? r->project : "default");
	vg_db_bind_text(s, 5, r->user);
	vg_db_bind_text(s, 6, r->name);
	vg_db_bind_text(s, 7, r->host);
	vg_db_bind_int64(s, 8, r->first_ms == INT64_MIN ? -1 : r->first_ms);
	vg_db_bind_int64(s, 9, r->last_seen_ms);
	vg_db_bind_int64(s, 10, r->last_poll_ms);
	vg_db_bind_int64(s, 11, r->last_change_ms);
	vg_db_bind_int64(s, 12, r->state);
	vg_db_bind_text(s, 13, r->fl.has_name ? r->fl.name : NULL);
	bind_opt(s, 14, r->fl.vcpus);
	bind_opt(s, 15, r->fl.ram_mb);
	bind_opt(s, 16, r->fl.disk_gb);
	bind_opt(s, 17, r->capacity);
	vg_db_bind_int64(s, 18, r->has_disks);
	if (r->ctr_valid) {
		vg_db_bind_int64(s, 19, r->ctr_ms);
		vg_db_bind_int64(s, 20, r->ctr_tx);
		vg_db_bind_int64(s, 21, r->ctr_rx);
	}
	bind_opt(s, 22, gen);
	return step_done(s);
}

/* Save r: into the batch's copy (written by rows_flush before COMMIT), or
 * at once for a resource outside the batch's rows. */
static int save_res(struct vg_bill_meter *m, const struct mres *r)
{
	struct crow *c = vg_hmap_gets(&m->rows, r->id);
	int put = !r->found || r->ident_changed, rc;

	if (!c) /* read with its sightings included: its own from now on */
		return write_res(m, r, put, -1);
	/* the copy's id is the map's key: keep that string */
	char *key = c->r.id;
	c->r.id = NULL;
	rc = mres_copy(&c->r, r);
	if (rc) {
		c->r.id = key;
		return rc;
	}
	free(c->r.id);
	c->r.id = key;
	c->r.found = 1;
	c->r.ident_changed = c->r.moved = 0;
	c->need_put |= put;
	c->dirty = 1;
	return 0;
}

static void bind_net(struct vg_db_stmt *s, int b, const struct cnet *x)
{
	vg_db_bind_text(s, b + 1, x->project);
	vg_db_bind_int64(s, b + 2, x->hour);
	vg_db_bind_text(s, b + 3, x->nic);
	vg_db_bind_int64(s, b + 4, x->tx);
	vg_db_bind_int64(s, b + 5, x->rx);
}

/* ---- sightings ------------------------------------------------------------ */

static int same_str(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

/* Does a differ from b in nothing but last_seen_ms and last_poll_ms (the
 * scalar columns; identity changes make the row an upsert anyway)? */
static int only_sightings_changed(const struct mres *a, const struct mres *b)
{
	return a->type == b->type && a->first_ms == b->first_ms &&
	       a->last_change_ms == b->last_change_ms && a->state == b->state &&
	       a->fl.has_name == b->fl.has_name &&
	       (!a->fl.has_name || !strcmp(a->fl.name, b->fl.name)) &&
	       a->fl.vcpus == b->fl.vcpus && a->fl.ram_mb == b->fl.ram_mb &&
	       a->fl.disk_gb == b->fl.disk_gb && a->capacity == b->capacity &&
	       a->has_disks == b->has_disks && a->ctr_valid == b->ctr_valid &&
	       (!a->ctr_valid || (a->ctr_ms == b->ctr_ms && a->ctr_tx == b->ctr_tx &&
				  a->ctr_rx == b->ctr_rx));
}

/* The one time of every instance, disk and vNIC observation of b (a poll);
 * 0 if it has none or several. */
static int poll_time(const struct vg_batch *b, int64_t *t)
{
	int n = 0;

	for (size_t i = 0; i < b->nres; i++) {
		if (!metered(b, i))
			continue;
		if (n++ && b->res[i].time_ms != *t)
			return 0;
		*t = b->res[i].time_ms;
	}
	return n > 0;
}

enum { SIGHT_KEEP,
       SIGHT_CONTINUE,
       SIGHT_NEW };

/* Decide, for each of the batch's rows, the sight_gen to write and whether
 * to write it, and write the host's sightings row (the header's
 * "Sightings"). */
static int sight_plan(struct vg_bill_meter *m, const struct vg_batch *b)
{
	const char *H = b->host && *b->host ? b->host : NULL;
	const struct sight *sg = &m->sg;
	size_t pos = 0;
	const struct vg_hmap_entry *e;
	int64_t T = 0, g = -1, present = 0, members = 0;
	int mode = SIGHT_KEEP, rc;

	m->gc_below = -1;

	if (H && poll_time(b, &T) && (!sg->found || T > sg->time_ms)) {
		while ((e = vg_hmap_next(&m->rows, &pos))) {
			const struct crow *c = e->value;
			if (!sg->found || c->r.sight_gen != sg->gen || !same_str(c->host0, H))
				continue;
			if (same_str(c->r.host, H) && c->r.last_seen_ms == T &&
			    c->r.last_poll_ms == T)
				present++;
		}
		mode = sg->found && present == sg->members ? SIGHT_CONTINUE : SIGHT_NEW;
		g = mode == SIGHT_CONTINUE ? sg->gen : sg->found ? sg->gen + 1
								 : 1;
	}
	pos = 0;
	while ((e = vg_hmap_next(&m->rows, &pos))) {
		struct crow *c = e->value;
		int64_t gen0 = c->r.sight_gen;
		int member0 = sg->found && gen0 == sg->gen && same_str(c->host0, H);
		int joins = mode != SIGHT_KEEP && same_str(c->r.host, H) &&
			    c->r.last_seen_ms == T && c->r.last_poll_ms == T;
		if (joins)
			c->gen = g;
		else if (member0 && mode == SIGHT_NEW)
			c->gen = -1;
		else
			c->gen = same_str(c->r.host, c->host0) ? gen0 : -1;
		if (c->gen == g && g >= 0)
			members++;
		c->write = c->need_put || c->gen != gen0 ||
			   (c->dirty && !(mode == SIGHT_CONTINUE && member0 &&
					  c->gen == gen0 &&
					  only_sightings_changed(&c->r, &c->base)));
	}
	if (mode == SIGHT_KEEP ||
	    (mode == SIGHT_CONTINUE && members == sg->members && T == sg->time_ms))
		return 0;
	struct vg_db_stmt *s;
	if ((rc = q(m, Q_SIGHT_PUT, &s)))
		return rc;
	vg_db_bind_text(s, 1, H);
	vg_db_bind_int64(s, 2, g);
	vg_db_bind_int64(s, 3, T);
	vg_db_bind_int64(s, 4, members);
	if ((rc = step_done(s)))
		return rc;
	/* the old generations that nothing names once the rows are written
	 * (rows_flush): at each new generation only, so it is as rare as a
	 * change of the host's membership */
	if (mode == SIGHT_NEW && sg->found)
		m->gc_below = g;
	return 0;
}

/* The index in write_sizes of the statement for the next of left rows. */
static size_t write_size(size_t left)
{
	size_t z = 0;

	while (z + 1 < NWRITE && (size_t)write_sizes[z + 1] >= left)
		z++;
	return z;
}

/* PostgreSQL: the bulk update of w[0..n) in one statement, each column
 * an array (upd_pg_sql_for). */
static int upd_pg(struct vg_bill_meter *m, const struct crow *const *w, size_t n)
{
	struct vg_db_array a[UPD_COLS];
	struct sink k = {NULL, 0, a};
	struct vg_db_stmt *s;
	int rc = 0;

	memset(a, 0, sizeof(a));
	for (size_t i = 0; i < n && !rc; i++)
		rc = sink_upd(&k, &w[i]->r, w[i]->gen);
	if (!rc)
		rc = vg_db_prepare(m->db, m->upd_pg_sql, &s);
	for (int c = 0; c < UPD_COLS && !rc; c++) {
		const char *t = vg_db_array_end(&a[c]);
		rc = t ? vg_db_bind_text(s, c + 1, t) : -ENOMEM;
	}
	if (!rc)
		rc = step_done(s);
	for (int c = 0; c < UPD_COLS; c++)
		vg_db_array_free(&a[c]);
	return rc;
}

/* Write the batch's changed rows and summed network bytes: the upserts one
 * by one (a resource's first batch or a new identity), the updates and the
 * bytes in multi-row statements. */
static int rows_flush(struct vg_bill_meter *m, const struct vg_batch *b)
{
	size_t n = 0, pos = 0, i;
	const struct vg_hmap_entry *e;
	const struct crow **w;
	int rc;

	if ((rc = sight_plan(m, b)))
		return rc;
	w = malloc((vg_hmap_count(&m->rows) + 1) * sizeof(*w));
	if (!w)
		return -ENOMEM;
	while ((e = vg_hmap_next(&m->rows, &pos)) && !rc) {
		struct crow *c = e->value;
		if (!c->write)
			continue;
		if (c->need_put) {
			rc = write_res(m, &c->r, 1, c->gen);
		} else {
			w[n++] = c;
		}
	}
	i = 0;
	if (n && !rc && vg_db_engine(m->db) == VG_DB_POSTGRESQL) {
		rc = upd_pg(m, w, n); /* every row in one statement */
		i = n;
	}
	while (i < n && !rc) {
		size_t z = write_size(n - i), rows = (size_t)write_sizes[z];
		struct vg_db_stmt *s;
		if ((rc = vg_db_prepare(m->db, m->upd_sql[z], &s)))
			break;
		for (size_t k = 0; k < rows; k++, i++)
			if (i < n)
				bind_upd(s, (int)k * UPD_COLS, &w[i]->r, w[i]->gen);
			else
				for (int c = 1; c <= UPD_COLS; c++)
					vg_db_bind_null(s, (int)k * UPD_COLS + c);
		rc = step_done(s);
	}
	free(w);
	if (!rc && m->gc_below >= 0) { /* after the rows that left them */
		struct vg_db_stmt *s;
		if (!(rc = q(m, Q_SIGHT_GC, &s))) {
			vg_db_bind_text(s, 1, b->host);
			vg_db_bind_int64(s, 2, m->gc_below);
			rc = step_done(s);
		}
	}
	if (rc)
		return rc;

	const struct cnet **nw = malloc((vg_hmap_count(&m->net) + 1) * sizeof(*nw));
	if (!nw)
		return -ENOMEM;
	n = pos = 0;
	while ((e = vg_hmap_next(&m->net, &pos)))
		if (((struct cnet *)e->value)->tx || ((struct cnet *)e->value)->rx)
			nw[n++] = e->value;
	i = 0;
	int pg = vg_db_engine(m->db) == VG_DB_POSTGRESQL;
	for (size_t z = 0; z < NWRITE && !rc; z++) {
		size_t rows = (size_t)write_sizes[z];
		for (; n - i >= rows && !rc; i += rows) {
			/* sqlite: the pre-images first, then the sums */
			for (int pass = pg; pass < 2 && !rc; pass++) {
				struct vg_db_stmt *s;
				const char *text = pass == 0 ? m->pre_sql[z]
						   : pg      ? m->net_pg_sql[z]
							     : m->net_sql[z];
				if ((rc = vg_db_prepare(m->db, text, &s)))
					break;
				for (size_t k = 0; k < rows; k++)
					bind_net(s, (int)k * NET_COLS, nw[i + k]);
				rc = step_done(s);
			}
		}
	}
	free(nw);
	return rc;
}

/* "VALUES (..),(..)": rows rows of strlen(types) parameters, ?1.. in
 * order, the first row casting each to its type so that PostgreSQL knows
 * the columns' types (sqlite ignores the casts' effect on NULL padding).
 * Every multi-row statement of the meter is built around one of these.
 * Returns the length written (txt holds len bytes). */
static size_t values_rows(char *txt, size_t len, int rows, const char *types)
{
	int cols = (int)strlen(types);
	size_t k = (size_t)snprintf(txt, len, "VALUES ");

	for (int i = 0; i < rows; i++) {
		k += (size_t)snprintf(txt + k, len - k, "%s(", i ? "," : "");
		for (int c = 1; c <= cols; c++) {
			int n = i * cols + c;
			if (i == 0)
				k += (size_t)snprintf(txt + k, len - k, "%sCAST(?%d AS %s)",
						      c > 1 ? "," : "", n,
						      types[c - 1] == 't' ? "TEXT" : "BIGINT");
			else
				k += (size_t)snprintf(txt + k, len - k, "%s?%d", c > 1 ? "," : "",
						      n);
		}
		k += (size_t)snprintf(txt + k, len - k, ")");
	}
	return k;
}

/* head, then the VALUES of rows rows of types, then tail (malloc'd). */
static char *values_sql(const char *head, int rows, const char *types, const char *tail)
{
	size_t len = strlen(head) + strlen(tail) + 64 + (size_t)rows * strlen(types) * 24;
	char *txt = malloc(len);
	size_t k;

	if (!txt)
		return NULL;
	k = (size_t)snprintf(txt, len, "%s", head);
	k += values_rows(txt + k, len - k, rows, types);
	snprintf(txt + k, len - k, "%s", tail);
	return txt;
}

/* The bulk update of rows resources rows (bind_upd's columns). The ids
 * also go in an IN list (the same parameters again), which says nothing
 * new but makes PostgreSQL's planner fetch the rows by the primary key:
 * with the join alone it hashed the VALUES and scanned the whole table at
 * every statement (the planner's price of a random page against a
 * sequential one), which at 100,000 series (~4,500 rows) was the server's
 * largest cost. A padding row's NULL id matches nothing in either. */
static char *upd_sql_for(int rows)
{
	size_t len = (size_t)rows * 8 + 64, k;
	char *in = malloc(len), *txt;

	if (!in)
		return NULL;
	k = (size_t)snprintf(in, len, ") AS v WHERE resources.id=v.column1 AND resources.id IN (");
	for (int i = 0; i < rows; i++)
		k += (size_t)snprintf(in + k, len - k, "%s?%d", i ? "," : "", i * UPD_COLS + 1);
	snprintf(in + k, len - k, ")");
	txt = values_sql("UPDATE resources SET first_ms=v.column2,"
			 "last_seen_ms=v.column3,last_poll_ms=v.column4,"
			 "last_change_ms=v.column5,state=v.column6,"
			 "flavor=v.column7,vcpus=v.column8,ram_mb=v.column9,"
			 "disk_gb=v.column10,capacity=v.column11,has_disks="
			 "CASE WHEN resources.has_disks>v.column12 THEN "
			 "resources.has_disks ELSE v.column12 END,"
			 "ctr_ms=v.column13,ctr_tx=v.column14,"
			 "ctr_rx=v.column15,sight_gen=v.column16 FROM (",
			 rows, UPD_TYPES, in);
	free(in);
	return txt;
}

/* PostgreSQL: the bulk update of any number of rows, each column one
 * array parameter (?1 the ids, TEXT[]; then UPD_TYPES' order) unnested
 * into rows: one statement per batch, no padding, and a statement the
 * server plans once for every call (a generic plan: its parameters are
 * sixteen arrays, whatever the rows), each row found by the primary key
 * ("Keyed plans" above). */
static char *upd_pg_sql_for(void)
{
	size_t len = 2048, k;
	char *txt = malloc(len);

	if (!txt)
		return NULL;
	k = (size_t)snprintf(txt, len,
			     "UPDATE resources SET first_ms=v.c2,last_seen_ms=v.c3,"
			     "last_poll_ms=v.c4,last_change_ms=v.c5,state=v.c6,"
			     "flavor=v.c7,vcpus=v.c8,ram_mb=v.c9,disk_gb=v.c10,"
			     "capacity=v.c11,has_disks=CASE WHEN resources.has_disks>"
			     "v.c12 THEN resources.has_disks ELSE v.c12 END,"
			     "ctr_ms=v.c13,ctr_tx=v.c14,ctr_rx=v.c15,sight_gen=v.c16 "
			     "FROM unnest(");
	for (int c = 1; c <= UPD_COLS; c++)
		k += (size_t)snprintf(txt + k, len - k, "%sCAST(?%d AS %s[])", c > 1 ? "," : "", c,
				      UPD_TYPES[c - 1] == 't' ? "TEXT" : "BIGINT");
	k += (size_t)snprintf(txt + k, len - k, ") AS v(");
	for (int c = 1; c <= UPD_COLS; c++)
		k += (size_t)snprintf(txt + k, len - k, "%sc%d", c > 1 ? "," : "", c);
	snprintf(txt + k, len - k, ") WHERE resources.id=v.c1");
	return txt;
}

/* Pre-images: before a batch adds to an hour of a month whose invoices
 * are final (network_billed_months), the hour's row as it was billed
 * (zeros if it had none) is kept in network_billed, once: an adjustment
 * of a network line names the hours where the rows differ from it
 * (finalize.c). Hours of months not final (nearly every row) stop at the
 * scalar bound, read once per statement. v is the rows' VALUES. */
#define PRE_SQL                                                                        \
	"INSERT INTO network_billed(project,hour_ms,nic,tx,rx) "                       \
	"SELECT v.column1,v.column2,v.column3,COALESCE(n.tx,0),COALESCE(n.rx,0) "      \
	"FROM %s v LEFT JOIN network n ON n.project=v.column1 AND "                    \
	"n.hour_ms=v.column2 AND n.nic=v.column3 "                                     \
	"WHERE v.column2<(SELECT COALESCE(MAX(end_ms),0) FROM network_billed_months) " \
	"AND EXISTS(SELECT 1 FROM network_billed_months b WHERE "                      \
	"v.column2>=b.start_ms AND v.column2<b.end_ms) "                               \
	"ON CONFLICT(project,hour_ms,nic) DO NOTHING"

/* sqlite: the pre-images of rows rows, a statement of its own. */
static char *pre_sql_for(int rows)
{
	char *vals = values_sql("(", rows, NET_TYPES, ") AS"), *txt;
	size_t len;

	if (!vals)
		return NULL;
	len = strlen(PRE_SQL) + strlen(vals) + 1;
	if ((txt = malloc(len)))
		snprintf(txt, len, PRE_SQL, vals);
	free(vals);
	return txt;
}

/* PostgreSQL: the pre-images and the sums in one statement (one round
 * trip); the CTE's INSERT reads the rows as they were before the main
 * INSERT adds to them (one snapshot). */
static char *net_pg_sql_for(int rows)
{
	char tail[2048];

	snprintf(tail, sizeof(tail),
		 "), pre AS (" PRE_SQL ") INSERT INTO network(project,hour_ms,nic,tx,rx) "
		 "SELECT column1,column2,column3,column4,column5 FROM v WHERE true "
		 "ON CONFLICT(project,hour_ms,nic) DO UPDATE "
		 "SET tx=network.tx+excluded.tx,rx=network.rx+excluded.rx",
		 "v AS");
	return values_sql("WITH v AS (", rows, NET_TYPES, tail);
}

/* The sums of rows network rows (sqlite; after pre_sql_for's). WHERE:
 * the padding rows (NULL) insert nothing; and sqlite reads ON CONFLICT
 * after a bare SELECT's FROM as a join constraint. */
static char *net_sql_for(int rows)
{
	return values_sql("INSERT INTO network(project,hour_ms,nic,tx,rx) "
			  "SELECT column1,column2,column3,column4,column5 FROM (",
			  rows, NET_TYPES,
			  ") AS v WHERE column1 IS NOT NULL ON CONFLICT(project,hour_ms,nic) "
			  "DO UPDATE SET tx=network.tx+excluded.tx,rx=network.rx+excluded.rx");
}

static void sql_free(struct vg_bill_meter *m)
{
	free(m->fetch_sql);
	free(m->fetch_pg_sql);
	free(m->upd_pg_sql);
	for (size_t z = 0; z < NWRITE; z++) {
		free(m->upd_sql[z]);
		free(m->net_sql[z]);
		free(m->pre_sql[z]);
		free(m->net_pg_sql[z]);
	}
}

/* A column of the host's (?%d) current sightings generation: evaluated
 * once per statement (it does not depend on the row). */
#define CUR_SIGHT(col)                                                     \
	"(SELECT " col " FROM sightings WHERE host=?%d ORDER BY gen DESC " \
	"LIMIT 1)"

/* PostgreSQL's read: the rows of the ids' unnest, each by the key (the
 * ids are distinct; "Keyed plans" above). The row's generation's time (s,
 * as RES_FROM's join gives it) is the batch host's (?2) current
 * generation's, already read once for the statement, when the row names
 * that generation, as every member of a steady host does; only a row
 * naming another host's or an older generation looks its own up. The
 * join probed the sightings key once per row: a fifth of the read's
 * server CPU at 100,000 series (docs/benchmarks.md). */
#define FETCH_PG_FROM                                                               \
	" FROM unnest(CAST(?1 AS TEXT[])) AS k(id) JOIN resources r ON r.id = k.id" \
	" LEFT JOIN LATERAL (SELECT CASE WHEN r.host = ?2 AND r.sight_gen ="        \
	" (SELECT gen FROM sightings WHERE host=?2 ORDER BY gen DESC LIMIT 1)"      \
	" THEN (SELECT time_ms FROM sightings WHERE host=?2 ORDER BY gen DESC"      \
	" LIMIT 1) ELSE (SELECT x.time_ms FROM sightings x WHERE x.host = r.host"   \
	" AND x.gen = r.sight_gen) END AS time_ms) s ON true"

static int sql_build(struct vg_bill_meter *m)
{
	size_t len = 2048 + FETCH_ROWS * 8, k = 0;

	if (!(m->fetch_sql = malloc(len)))
		return -ENOMEM;
	k += (size_t)snprintf(m->fetch_sql + k, len - k,
			      "SELECT r.id," RES_COLS "," CUR_SIGHT("gen") "," CUR_SIGHT("time_ms") "," CUR_SIGHT("members") RES_FROM
			      " WHERE r.id IN (",
			      FETCH_ROWS + 1, FETCH_ROWS + 1, FETCH_ROWS + 1);
	for (int i = 1; i <= FETCH_ROWS; i++)
		k += (size_t)snprintf(m->fetch_sql + k, len - k, "%s?%d", i > 1 ? "," : "", i);
	snprintf(m->fetch_sql + k, len - k, ")");
	if (!(m->fetch_pg_sql = malloc(len)))
		return -ENOMEM;
	snprintf(m->fetch_pg_sql, len,
		 "SELECT r.id," RES_COLS "," CUR_SIGHT("gen") "," CUR_SIGHT("time_ms") "," CUR_SIGHT("members") "%s",
		 2, 2, 2, FETCH_PG_FROM);
	if (!(m->upd_pg_sql = upd_pg_sql_for()))
		return -ENOMEM;
	for (size_t z = 0; z < NWRITE; z++)
		if (!(m->upd_sql[z] = upd_sql_for(write_sizes[z])) ||
		    !(m->net_sql[z] = net_sql_for(write_sizes[z])) ||
		    !(m->pre_sql[z] = pre_sql_for(write_sizes[z])) ||
		    !(m->net_pg_sql[z] = net_pg_sql_for(write_sizes[z])))
			return -ENOMEM;
	return 0;
}

/* ---- timelines ------------------------------------------------------------ */

struct tstate {
	int state;
	struct flavor fl;
	int64_t capacity;
};

/* Replay r's timeline up to and including upto into *st. */
static int replay(struct vg_bill_meter *m, const char *id, int64_t upto,
		  struct tstate *st)
{
	struct vg_db_stmt *s;
	int rc;

	memset(st, 0, sizeof(*st));
	flavor_unknown(&st->fl);
	st->capacity = -1;
	if ((rc = q(m, Q_LOAD, &s)))
		return rc;
	vg_db_bind_text(s, 1, id);
	vg_db_bind_int64(s, 2, upto);
	/* A STOP while stopped, then a START at the same instant (rows sort
	 * STOP first): a run seen by a single poll, started and stopped
	 * there (billing/usage.c walks it the same way). */
	int64_t idle_stop = INT64_MIN;
	while ((rc = vg_db_step(s)) == 1) {
		int64_t time_ms = vg_db_column_int64(s, 0);
		int kind = (int)vg_db_column_int64(s, 1);
		struct flavor f;
		flavor_read(&f, s, 2);
		switch (kind) {
		case VG_BILL_T_CREATE:
			st->state |= ST_EXISTS;
			break;
		case VG_BILL_T_START:
			if (time_ms == idle_stop && !(st->state & ST_RUNNING))
				st->state |= ST_EXISTS | ST_RUNKNOWN;
			else
				st->state |= ST_EXISTS | ST_RUNNING | ST_RUNKNOWN;
			break;
		case VG_BILL_T_STOP:
			if (!(st->state & ST_RUNNING))
				idle_stop = time_ms;
			st->state = (st->state & ~ST_RUNNING) | ST_RUNKNOWN;
			break;
		case VG_BILL_T_DELETE:
			st->state &= ~(ST_EXISTS | ST_RUNNING);
			break;
		case VG_BILL_T_CAPACITY:
			break;
		}
		if (kind == VG_BILL_T_CREATE || kind == VG_BILL_T_START || kind == VG_BILL_T_FLAVOR)
			flavor_merge(&st->fl, &f);
		if (col_opt(s, 6) >= 0)
			st->capacity = col_opt(s, 6);
	}
	vg_db_reset(s);
	return rc;
}

/* r's current state again from its whole timeline (a transition was
 * inserted into, or deleted from, its past). */
static int replay_current(struct vg_bill_meter *m, struct mres *r)
{
	struct tstate st;
	int rc = replay(m, r->id, INT64_MAX, &st);

	if (rc)
		return rc;
	r->state = st.state;
	r->fl = st.fl;
	r->capacity = st.capacity;
	return 0;
}

/* The state of r at time t (after every transition at or before t). */
static int state_at(struct vg_bill_meter *m, const struct mres *r, int64_t t,
		    struct tstate *st)
{
	if (t >= r->last_change_ms) {
		st->state = r->state;
		st->fl = r->fl;
		st->capacity = r->capacity;
		return 0;
	}
	return replay(m, r->id, t, st);
}

/* Apply a just-recorded transition to the row's current state. */
static int advance(struct vg_bill_meter *m, struct mres *r, const struct trans *t)
{
	if (t->t < r->last_change_ms) /* inserted into the past: replay */
		return replay_current(m, r);
	r->last_change_ms = t->t;
	switch (t->kind) {
	case VG_BILL_T_CREATE:
		r->state |= ST_EXISTS;
		break;
	case VG_BILL_T_START:
		r->state |= ST_EXISTS | ST_RUNNING | ST_RUNKNOWN;
		break;
	case VG_BILL_T_STOP:
		r->state = (r->state & ~ST_RUNNING) | ST_RUNKNOWN;
		break;
	case VG_BILL_T_DELETE:
		r->state &= ~(ST_EXISTS | ST_RUNNING);
		break;
	}
	if (t->fl)
		flavor_merge(&r->fl, t->fl);
	if (t->capacity >= 0)
		r->capacity = t->capacity;
	return 0;
}

static int record(struct vg_bill_meter *m, struct mres *r, const struct trans *t)
{
	const struct flavor *f = t->fl;
	struct vg_db_stmt *s;
	int rc;

	if ((rc = q(m, t->exact ? Q_INS_REPLACE : Q_INS_IGNORE, &s)))
		return rc;

	vg_db_bind_text(s, 1, r->id);
	vg_db_bind_int64(s, 2, t->t);
	vg_db_bind_int64(s, 3, t->kind);
	vg_db_bind_int64(s, 4, t->exact);
	vg_db_bind_int64(s, 5, t->lo);
	vg_db_bind_int64(s, 6, t->hi);
	vg_db_bind_text(s, 7, f && f->has_name ? f->name : NULL);
	bind_opt(s, 8, f ? f->vcpus : -1);
	bind_opt(s, 9, f ? f->ram_mb : -1);
	bind_opt(s, 10, f ? f->disk_gb : -1);
	bind_opt(s, 11, t->capacity);
	rc = step_done(s);
	if (rc)
		return rc;
	if (t->kind == VG_BILL_T_FLAVOR && f && t->t <= r->last_change_ms) {
		/* A CREATE or START at the same instant sorts after the
		 * FLAVOR and carries a flavor of its own, which would undo it
		 * (a start inferred with the flavor known before the resize
		 * that the same poll then reports): it starts with this one.
		 * None can be at an instant after the row's last transition
		 * (last_change_ms is the latest time ever recorded for it):
		 * then there is nothing to update, and no statement to send. */
		if ((rc = q(m, Q_SAME_START, &s)))
			return rc;
		vg_db_bind_text(s, 1, r->id);
		vg_db_bind_int64(s, 2, t->t);
		vg_db_bind_text(s, 3, f->has_name ? f->name : NULL);
		bind_opt(s, 4, f->vcpus);
		bind_opt(s, 5, f->ram_mb);
		bind_opt(s, 6, f->disk_gb);
		if ((rc = step_done(s)))
			return rc;
	}
	return advance(m, r, t);
}

/* libvirt announces a start or stop after a poll can already see it (the
 * domain is marked shut off, or paused while QEMU starts up, before the
 * event is sent: 0.4-2.5 s under real QEMU, tests/e2e/qemu_test.sh). An
 * exact event this late after an inferred window's end is that window's
 * transition, announced late; it replaces the inference. */
#define EVENT_LATE_MS 5000

/* A stretch between two polls that saw an instance running, longer than
 * this, is kept as a silence (table sighting_gaps): an exact start inside it
 * that arrives after the later poll ends the run at the earlier one, as
 * it does delivered in order. Far above any poll interval in use (10 s
 * by default), so a steady poll writes nothing more. */
#define SILENCE_MS (10 * 60 * 1000LL)

/* An exact event at t of `kind`: replace an inferred transition of the
 * same kind whose window holds t (or ends at most EVENT_LATE_MS before
 * it). *done = 1 if one was replaced. */
static int refine(struct vg_bill_meter *m, struct mres *r, int kind, int64_t t,
		  const struct flavor *nf, int *done)
{
	struct vg_db_stmt *s;
	struct flavor f;
	int64_t old_t, cap;
	int rc;

	*done = 0;
	if ((rc = q(m, Q_FIND_INFERRED, &s)))
		return rc;
	vg_db_bind_text(s, 1, r->id);
	vg_db_bind_int64(s, 2, kind);
	vg_db_bind_int64(s, 3, t);
	vg_db_bind_int64(s, 4, EVENT_LATE_MS);
	rc = vg_db_step(s);
	if (rc != 1) {
		vg_db_reset(s);
		return rc;
	}
	old_t = vg_db_column_int64(s, 0);
	flavor_read(&f, s, 1);
	cap = col_opt(s, 5);
	vg_db_reset(s);
	if (nf)
		flavor_merge(&f, nf);

	if ((rc = q(m, Q_DEL, &s)))
		return rc;
	vg_db_bind_text(s, 1, r->id);
	vg_db_bind_int64(s, 2, old_t);
	vg_db_bind_int64(s, 3, kind);
	if ((rc = step_done(s)))
		return rc;
	struct trans tr = {t, kind, 1, t, t, flavor_known(&f) ? &f : NULL, cap};
	/* The timeline changed in the past: record, then replay all. */
	if ((rc = record(m, r, &tr)))
		return rc;
	if ((rc = replay_current(m, r)))
		return rc;
	m->cur.refined++;
	*done = 1;
	return 0;
}

/* ---- live migration ------------------------------------------------------- */

/* Does host (a batch's) differ from the host that runs r? An unknown host
 * on either side, or an instance in flight (host ""), is not "another". */
static int other_host(const struct mres *r, const char *host)
{
	return r->found && r->host && *r->host && host && strcmp(r->host, host);
}

static int in_flight(const struct mres *r)
{
	return r->host && !*r->host;
}

/* r is seen running at t on a host that is not the one that last ran it.
 * If the old host ended its run with inferred stops/deletions only (it saw
 * the domain vanish, or it was in flight) and the new host saw it no later
 * than one vanish window after the old host's report (at least
 * EVENT_LATE_MS), those transitions are removed: the run goes on, with no
 * gap and no second minimum. An exact stop (a real shutdown before a cold
 * migration) is kept. *resumed = 1 if the run was continued. */
static int resume_moved(struct vg_bill_meter *m, struct mres *r, int64_t t,
			int *resumed)
{
	struct vg_db_stmt *s;
	int64_t tt[8], lo = INT64_MAX, hi = INT64_MIN;
	int kk[8], n = 0, exact = 0, rc;

	*resumed = 0;
	if ((rc = q(m, Q_TAIL, &s)))
		return rc;
	vg_db_bind_text(s, 1, r->id);
	while (n < 8 && (rc = vg_db_step(s)) == 1) {
		int kind = (int)vg_db_column_int64(s, 1);
		if (kind != VG_BILL_T_STOP && kind != VG_BILL_T_DELETE)
			break;
		if (vg_db_column_int64(s, 2))
			exact = 1;
		tt[n] = vg_db_column_int64(s, 0);
		kk[n++] = kind;
		if (vg_db_column_int64(s, 3) < lo)
			lo = vg_db_column_int64(s, 3);
		if (vg_db_column_int64(s, 4) > hi)
			hi = vg_db_column_int64(s, 4);
	}
	vg_db_reset(s);
	if (rc < 0)
		return rc;
	if (n == 0 || exact)
		return 0;
	int64_t win = hi - lo > EVENT_LATE_MS ? hi - lo : EVENT_LATE_MS;
	if (t > hi + win)
		return 0;
	for (int i = 0; i < n; i++) {
		if ((rc = q(m, Q_DEL, &s)))
			return rc;
		vg_db_bind_text(s, 1, r->id);
		vg_db_bind_int64(s, 2, tt[i]);
		vg_db_bind_int64(s, 3, kk[i]);
		if ((rc = step_done(s)))
			return rc;
	}
	if ((rc = replay_current(m, r)))
		return rc;
	m->cur.migrations++;
	*resumed = 1;
	return 0;
}

/* r, running on the timeline, is reported started at t after its last
 * sighting before t, from (r->last_seen_ms; or, late = 1, for a start
 * delivered after later polls, the start of the silence that holds t,
 * and the run is the one at t). If its run
 * was seen by no poll after the one that inferred its start, that
 * inferred start is removed (*moved = 1): the start at t replaces it,
 * rather than leaving a run of one instant (billed the minimum) before
 * it. */
static int silence_ends(struct vg_bill_meter *m, struct mres *r, int64_t from, int64_t t,
			int late, int *moved)
{
	struct vg_db_stmt *s;
	int64_t at;
	int rc, kind, exact;

	*moved = 0;
	if ((rc = q(m, late ? Q_RUN_START : Q_TAIL, &s)))
		return rc;
	vg_db_bind_text(s, 1, r->id);
	if (late)
		vg_db_bind_int64(s, 2, t);
	rc = vg_db_step(s);
	if (rc != 1) {
		vg_db_reset(s);
		return rc;
	}
	at = vg_db_column_int64(s, 0);
	kind = (int)vg_db_column_int64(s, 1);
	exact = (int)vg_db_column_int64(s, 2);
	vg_db_reset(s);
	if (kind != VG_BILL_T_START || exact || at < from || at >= t)
		return 0;
	if ((rc = q(m, Q_DEL, &s)))
		return rc;
	vg_db_bind_text(s, 1, r->id);
	vg_db_bind_int64(s, 2, at);
	vg_db_bind_int64(s, 3, kind);
	if ((rc = step_done(s)) || (rc = replay_current(m, r)))
		return rc;
	*moved = 1;
	return 0;
}

/* The start of the silence of r (a stretch longer than SILENCE_MS
 * between two polls that saw it running, observe_instance) that holds t:
 * *from, *found = 1; or *found = 0. */
static int silence_at(struct vg_bill_meter *m, const struct mres *r, int64_t t,
		      int64_t *from, int *found)
{
	struct vg_db_stmt *s;
	int rc;

	*found = 0;
	if ((rc = q(m, Q_SILENCE_AT, &s)))
		return rc;
	vg_db_bind_text(s, 1, r->id);
	vg_db_bind_int64(s, 2, t);
	rc = vg_db_step(s);
	if (rc == 1) {
		*from = vg_db_column_int64(s, 0);
		*found = 1;
	}
	vg_db_reset(s);
	return rc < 0 ? rc : 0;
}

/* ---- events --------------------------------------------------------------- */

/* Parse an event's detail: derived/initial flags, libvirt's "migrated"
 * reason and a flavor. */
static void parse_detail(const char *detail, int *inferred, int *initial,
			 int *migrated, struct flavor *f)
{
	json_t *j, *v;

	*inferred = 0;
	*initial = 0;
	*migrated = 0;
	flavor_unknown(f);
	if (!detail || !(j = json_loads(detail, 0, NULL)))
		return;
	if (json_is_true(json_object_get(j, "derived")) ||
	    json_is_true(json_object_get(j, "initial")))
		*inferred = 1;
	/* the agent's first poll: nobody watched the domain before it */
	if (json_is_true(json_object_get(j, "initial")))
		*initial = 1;
	if ((v = json_object_get(j, "reason")) && json_is_string(v) &&
	    !strcmp(json_string_value(v), "migrated"))
		*migrated = 1;
	if ((v = json_object_get(j, "flavor")) && json_is_string(v)) {
		snprintf(f->name, sizeof(f->name), "%s", json_string_value(v));
		f->has_name = 1;
	}
	if ((v = json_object_get(j, "vcpus")) && json_is_integer(v))
		f->vcpus = json_integer_value(v);
	if ((v = json_object_get(j, "memory_mb")) && json_is_integer(v))
		f->ram_mb = json_integer_value(v);
	if ((v = json_object_get(j, "ram_mb")) && json_is_integer(v))
		f->ram_mb = json_integer_value(v);
	if ((v = json_object_get(j, "disk_gb")) && json_is_integer(v))
		f->disk_gb = json_integer_value(v);
	json_decref(j);
}

static int apply_event(struct vg_bill_meter *m, const struct vg_event *e,
		       const char *host)
{
	struct mres r;
	struct flavor f;
	struct tstate st;
	int inferred, initial, migrated, polled, done = 0, rc, changed = 0;
	int64_t t = e->time_ms, lo, at;

	if (!e->resource || e->type == VG_EV_GAP || e->type == VG_EV_SUSPENDED ||
	    e->type == VG_EV_RESUMED)
		return 0;
	if ((rc = load_res(m, e->resource, &r, 1)))
		goto out;
	if (!r.found) {
		r.type = VG_RT_INSTANCE;
		r.first_ms = INT64_MIN;
		r.last_seen_ms = r.last_poll_ms = r.last_change_ms = INT64_MIN;
	}
	parse_detail(e->detail, &inferred, &initial, &migrated, &f);
	flavor_bound(m, e->resource, &f);
	polled = inferred; /* derived by the agent from its poll */
	/* The poll it was derived from was applied already (its observation
	 * has the same time and moved the watermark): a re-delivery. Applied
	 * again it would be read against the timeline that poll left (a
	 * restart's STOPPED would stop the run its STARTED began). The rule
	 * holds per host, as for observations. */
	if (polled && r.found && t <= r.last_poll_ms && !other_host(&r, host)) {
		m->cur.stale++;
		goto out;
	}

	/* Live migration (bill_meter.h). */
	int stopish = e->type == VG_EV_STOPPED || e->type == VG_EV_UNDEFINED;
	if ((stopish || (e->type == VG_EV_DEFINED && (r.state & ST_EXISTS))) &&
	    other_host(&r, host)) {
		m->cur.elsewhere++; /* the old host's word on a moved instance */
		goto out;
	}
	if (e->type == VG_EV_STOPPED && migrated && !inferred) {
		/* Left this host, runs on the destination: in flight. */
		if (!in_flight(&r)) {
			free(r.host);
			if (!(r.host = strdup(""))) {
				rc = -ENOMEM;
				goto out;
			}
			r.ident_changed = 1;
		}
		if (t > r.last_seen_ms)
			r.last_seen_ms = t;
		m->cur.events++;
		rc = save_res(m, &r);
		goto out;
	}
	if (stopish && in_flight(&r))
		inferred = 1; /* the source's vanish; the destination may resume */
	/* A start reported by the host that ran it (no migration). */
	int here = !other_host(&r, host) && !in_flight(&r) && !migrated;
	if (e->type == VG_EV_STARTED && (inferred || migrated) &&
	    (other_host(&r, host) || in_flight(&r))) {
		int resumed = 0;
		if ((rc = resume_moved(m, &r, t, &resumed)))
			goto out;
		changed |= resumed;
	}
	if (e->type == VG_EV_STARTED && (rc = set_str(&r, &r.host, host)))
		goto out;
	lo = r.found && r.last_seen_ms != INT64_MIN ? r.last_seen_ms : 0;
	if (lo > t)
		lo = t;
	/* Poll-derived stops and deletions happened after the last sighting. */
	at = inferred ? lo : t;

	switch (e->type) {
	case VG_EV_STARTED:
	case VG_EV_DEFINED: {
		int kind = e->type == VG_EV_STARTED ? VG_BILL_T_START : VG_BILL_T_CREATE;
		if (!inferred) {
			int d2 = 0;
			if ((rc = refine(m, &r, VG_BILL_T_CREATE, t, NULL, &d2)))
				goto out;
			if (kind == VG_BILL_T_START &&
			    (rc = refine(m, &r, VG_BILL_T_START, t, NULL, &done)))
				goto out;
			if (d2 || done) {
				changed = 1;
				break;
			}
		}
		if ((rc = state_at(m, &r, t, &st)))
			goto out;
		struct flavor fl = st.fl;
		flavor_merge(&fl, &f);
		if (!(st.state & ST_EXISTS)) {
			struct trans tr = {t, VG_BILL_T_CREATE, !inferred, inferred ? lo : t,
					   t, &fl, -1};
			if ((rc = record(m, &r, &tr)))
				goto out;
			changed = 1;
		}
		int64_t from = lo;
		int late = 0;
		int silent = kind == VG_BILL_T_START && (st.state & ST_RUNNING) && here &&
			     (!inferred || initial) && r.found && r.last_seen_ms != INT64_MIN;
		if (silent && r.last_seen_ms >= t) {
			/* Delivered after polls that followed it (another
			 * stream's batch, sent late): it ends the silence
			 * that holds it, as it would have in order. */
			struct tstate before;
			silent = 0;
			late = 1;
			/* running just before it (not this start applied
			 * again: a re-delivery changes nothing) */
			if (!inferred && (rc = state_at(m, &r, t - 1, &before)))
				goto out;
			if (!inferred && (before.state & ST_RUNNING) &&
			    (rc = silence_at(m, &r, t, &from, &silent)))
				goto out;
		}
		if (silent) {
			/* Started while the timeline says running: it was not
			 * running just before (or, for the agent's first poll,
			 * nobody watched it). The run ends at its last sighting
			 * and a new one starts here: a silence ended by a start
			 * is never billed. */
			int moved = 0;
			if ((rc = silence_ends(m, &r, from, t, late, &moved)))
				goto out;
			if (!moved) {
				struct trans tr = {from, VG_BILL_T_STOP, 0, from, t, NULL, -1};
				if ((rc = record(m, &r, &tr)))
					goto out;
			}
			st.state &= ~ST_RUNNING;
			changed = 1;
		}
		if (kind == VG_BILL_T_START && !(st.state & ST_RUNNING)) {
			struct trans tr = {t, VG_BILL_T_START, !inferred, inferred ? lo : t,
					   t, &fl, -1};
			if ((rc = record(m, &r, &tr)))
				goto out;
			changed = 1;
		}
		break;
	}
	case VG_EV_STOPPED:
	case VG_EV_UNDEFINED:
		if (!inferred) {
			int d2 = 0;
			if ((rc = refine(m, &r, VG_BILL_T_STOP, t, NULL, &done)))
				goto out;
			if (e->type == VG_EV_UNDEFINED &&
			    (rc = refine(m, &r, VG_BILL_T_DELETE, t, NULL, &d2)))
				goto out;
			if (done || d2) {
				changed = 1;
				break;
			}
		}
		if ((rc = state_at(m, &r, at, &st)))
			goto out;
		if (st.state & ST_RUNNING) {
			struct trans tr = {at, VG_BILL_T_STOP, !inferred, at, t, NULL, -1};
			if ((rc = record(m, &r, &tr)))
				goto out;
			changed = 1;
		}
		if (e->type == VG_EV_UNDEFINED && (st.state & ST_EXISTS)) {
			struct trans tr = {at, VG_BILL_T_DELETE, !inferred, at, t, NULL, -1};
			if ((rc = record(m, &r, &tr)))
				goto out;
			changed = 1;
		}
		break;
	case VG_EV_RESIZED:
		if (!flavor_known(&f))
			break;
		if (!inferred) {
			if ((rc = refine(m, &r, VG_BILL_T_FLAVOR, t, &f, &done)))
				goto out;
			if (done) {
				changed = 1;
				break;
			}
		}
		if ((rc = state_at(m, &r, t, &st)))
			goto out;
		struct flavor fl = st.fl;
		if (flavor_merge(&fl, &f)) {
			struct trans tr = {t, VG_BILL_T_FLAVOR, !inferred, inferred ? lo : t,
					   t, &fl, -1};
			if ((rc = record(m, &r, &tr)))
				goto out;
			changed = 1;
		}
		break;
	default:
		break;
	}
	if (t > r.last_seen_ms)
		r.last_seen_ms = t;
	if (changed)
		m->cur.events++;
	rc = save_res(m, &r);
out:
	mres_clear(&r);
	return rc;
}

/* ---- observations ------------------------------------------------------------ */

static const char *attr_get(const struct vg_batch *b, const struct vg_resource *res,
			    const char *k1, const char *k2)
{
	const struct vg_attr *a = vg_resource_attrs(b, res);
	for (uint32_t i = 0; i < res->nattrs; i++)
		if (!strcmp(a[i].key, k1) || (k2 && !strcmp(a[i].key, k2)))
			return a[i].value;
	return NULL;
}

static int64_t attr_int(const struct vg_batch *b, const struct vg_resource *res,
			const char *k1, const char *k2)
{
	const char *v = attr_get(b, res, k1, k2);
	char *end;
	long long x;

	if (!v || !*v)
		return -1;
	errno = 0;
	x = strtoll(v, &end, 10);
	return errno || *end || x < 0 ? -1 : (int64_t)x;
}

static int64_t sample_int(const struct vg_batch *b, const struct vg_resource *res,
			  const char *m1, const char *m2)
{
	const struct vg_sample *s = vg_resource_samples(b, res);
	for (uint32_t i = 0; i < res->nsamples; i++)
		if (!strcmp(s[i].metric, m1) || (m2 && !strcmp(s[i].metric, m2)))
			return to_int(s[i].value);
	return -1;
}

/* virDomainState counted as running (bill_meter.h); no power state: yes. */
static int power_running(int64_t ps)
{
	return ps < 0 || ps == 1 || ps == 2 || ps == 3 || ps == 4 || ps == 7;
}

static int obs_running(const struct vg_batch *b, const struct vg_resource *res)
{
	return power_running(sample_int(b, res, "power.state", "state"));
}

/* Update identity from the observation; project falls back to the
 * parent's or "default". */
static int update_identity(struct vg_bill_meter *m, struct mres *r,
			   const struct vg_batch *b, const struct vg_resource *res)
{
	int rc = 0;
	if (r->type != res->type)
		r->ident_changed = 1;
	r->type = res->type;
	const char *name = res->name;
	if (res->type == VG_RT_INSTANCE) {
		/* the name people know it by (Nova's display name), not
		 * libvirt's "instance-0000002a"; the id stays beside it */
		const char *dn = attr_get(b, res, "display_name", NULL);
		if (dn && *dn)
			name = dn;
	}
	if ((rc = set_str(r, &r->parent, res->parent)) ||
	    (rc = set_str(r, &r->user, res->user)) ||
	    (rc = set_str(r, &r->name, name)))
		return rc;
	if (res->project)
		return set_str(r, &r->project, res->project);
	if (!r->project && r->parent) {
		struct mres p;
		if ((rc = load_res(m, r->parent, &p, 0)) == 0 && p.found && p.project)
			rc = set_str(r, &r->project, p.project);
		mres_clear(&p);
	}
	return rc;
}

static int observe_instance(struct vg_bill_meter *m, struct mres *r,
			    const struct vg_batch *b, const struct vg_resource *res)
{
	int64_t t = res->time_ms, lo = r->found ? r->last_seen_ms : 0;
	struct flavor f;
	struct tstate st;
	int rc, running, was_running = r->found && (r->state & ST_RUNNING);

	if (lo == INT64_MIN)
		lo = 0;
	if (lo > t)
		lo = t;
	if (res->state == VG_RSTATE_ENDED) {
		if (r->state & ST_RUNNING) {
			struct trans tr = {lo, VG_BILL_T_STOP, 0, lo, t, NULL, -1};
			if ((rc = record(m, r, &tr)))
				return rc;
		}
		if (r->state & ST_EXISTS) {
			struct trans tr = {lo, VG_BILL_T_DELETE, 0, lo, t, NULL, -1};
			if ((rc = record(m, r, &tr)))
				return rc;
		}
		return 0;
	}
	flavor_unknown(&f);
	if (res->flavor) {
		snprintf(f.name, sizeof(f.name), "%s", res->flavor);
		f.has_name = 1;
	}
	f.vcpus = attr_int(b, res, "flavor_vcpus", "flavor.vcpus");
	if (f.vcpus < 0)
		f.vcpus = sample_int(b, res, "vcpus", NULL);
	f.ram_mb = attr_int(b, res, "flavor_memory_mb", "flavor.memory_mb");
	if (f.ram_mb < 0) {
		int64_t bytes = sample_int(b, res, "memory.size", NULL);
		f.ram_mb = bytes >= 0 ? bytes / (1024 * 1024) : -1;
	}
	f.disk_gb = attr_int(b, res, "flavor_disk_gb", "flavor.disk_gb");
	flavor_bound(m, res->id, &f);

	int64_t ps = sample_int(b, res, "power.state", "state");
	if ((rc = state_at(m, r, t, &st)))
		return rc;
	if (ps >= 0)
		running = ps == 1 || ps == 2 || ps == 3 || ps == 4 || ps == 7;
	else if (!(st.state & ST_RUNKNOWN))
		running = 1;
	else
		running = !!(st.state & ST_RUNNING);

	/* An event after this poll's time was already applied: the poll is
	 * older news; keep the timeline. */
	if (t < r->last_change_ms)
		return 0;

	if (!flavor_known(&r->fl) && flavor_known(&f)) {
		/* First flavor we learn: give it to the transitions that had
		 * none (an event came before the first poll). */
		struct vg_db_stmt *s;
		if ((rc = q(m, Q_FILL_FLAVOR, &s)))
			return rc;
		vg_db_bind_text(s, 1, r->id);
		vg_db_bind_text(s, 2, f.has_name ? f.name : NULL);
		bind_opt(s, 3, f.vcpus);
		bind_opt(s, 4, f.ram_mb);
		bind_opt(s, 5, f.disk_gb);
		rc = step_done(s);
		if (rc)
			return rc;
		flavor_merge(&r->fl, &f);
	}
	struct flavor nf = r->fl;
	int fch = flavor_merge(&nf, &f);

	if (!(r->state & ST_EXISTS)) {
		struct trans tr = {t, VG_BILL_T_CREATE, 0, lo, t, &nf, -1};
		if ((rc = record(m, r, &tr)))
			return rc;
		fch = 0;
	}
	if (running && !(r->state & ST_RUNNING)) {
		struct trans tr = {t, VG_BILL_T_START, 0, lo, t, &nf, -1};
		if ((rc = record(m, r, &tr)))
			return rc;
		fch = 0;
	} else if (!running && (r->state & ST_RUNNING)) {
		struct trans tr = {lo, VG_BILL_T_STOP, 0, lo, t, NULL, -1};
		if ((rc = record(m, r, &tr)))
			return rc;
	}
	if (fch) {
		struct trans tr = {t, VG_BILL_T_FLAVOR, 0, lo, t, &nf, -1};
		if ((rc = record(m, r, &tr)))
			return rc;
	}
	if (running && was_running && lo > 0 && t - lo > SILENCE_MS) {
		/* Seen running on both sides of a silence: kept, so a
		 * start inside it that arrives later still ends the run
		 * there (apply_event). */
		struct vg_db_stmt *s;
		if ((rc = q(m, Q_SILENCE_PUT, &s)))
			return rc;
		vg_db_bind_text(s, 1, r->id);
		vg_db_bind_int64(s, 2, lo);
		vg_db_bind_int64(s, 3, t);
		if ((rc = step_done(s)))
			return rc;
	}
	return 0;
}

static int observe_disk(struct vg_bill_meter *m, struct mres *r,
			const struct vg_batch *b, const struct vg_resource *res)
{
	int64_t t = res->time_ms, lo = r->found ? r->last_seen_ms : 0;
	int64_t cap = plausible(m, res->id, VG_BILL_IMPL_DISK, "disk.capacity",
				sample_int(b, res, "disk.capacity", "capacity"),
				VG_BILL_MAX_CAPACITY_BYTES);
	int rc;

	if (lo == INT64_MIN)
		lo = 0;
	if (lo > t)
		lo = t;
	if (res->state == VG_RSTATE_ENDED) {
		if (!(r->state & ST_EXISTS))
			return 0;
		/* Deleted with its instance: take the instance's deletion
		 * time when it falls between the last sighting and now. */
		int64_t at = lo;
		if (r->parent) {
			struct vg_db_stmt *s;
			if ((rc = q(m, Q_PARENT_DELETE, &s)))
				return rc;
			vg_db_bind_text(s, 1, r->parent);
			vg_db_bind_int64(s, 2, lo);
			vg_db_bind_int64(s, 3, t);
			if ((rc = vg_db_step(s)) == 1)
				at = vg_db_column_int64(s, 0);
			vg_db_reset(s);
			if (rc < 0)
				return rc;
		}
		struct trans tr = {at, VG_BILL_T_DELETE, 0, lo, t, NULL, -1};
		return record(m, r, &tr);
	}
	if (t < r->last_change_ms)
		return 0;
	if (!(r->state & ST_EXISTS)) {
		int64_t at = t;
		/* A disk first seen with its instance is as old as it. */
		if (r->parent && !r->found) {
			struct mres p;
			if ((rc = load_res(m, r->parent, &p, 0))) {
				mres_clear(&p);
				return rc;
			}
			if (p.found && p.first_ms == t) {
				struct vg_db_stmt *s;
				if ((rc = q(m, Q_PARENT_CREATE, &s))) {
					mres_clear(&p);
					return rc;
				}
				vg_db_bind_text(s, 1, r->parent);
				vg_db_bind_int64(s, 2, t);
				if ((rc = vg_db_step(s)) == 1 &&
				    !vg_db_column_is_null(s, 0))
					at = vg_db_column_int64(s, 0);
				vg_db_reset(s);
				if (rc < 0) {
					mres_clear(&p);
					return rc;
				}
			}
			mres_clear(&p);
		}
		struct trans tr = {at, VG_BILL_T_CREATE, 0, lo < at ? lo : at, t, NULL, cap};
		if ((rc = record(m, r, &tr)))
			return rc;
	} else if (cap >= 0 && cap != r->capacity) {
		struct trans tr = {t, VG_BILL_T_CAPACITY, 0, lo, t, NULL, cap};
		if ((rc = record(m, r, &tr)))
			return rc;
	}
	if (cap >= 0 && r->parent) {
		struct crow *pc = vg_hmap_gets(&m->rows, r->parent);
		struct vg_db_stmt *s;
		if (pc && pc->r.found) {
			/* the parent is one of the batch's rows: its copy is
			 * written at the end (has_disks only moves up there) */
			if (!pc->r.has_disks) {
				pc->r.has_disks = 1;
				pc->dirty = 1;
			}
			return 0;
		}
		if ((rc = q(m, Q_HAS_DISKS, &s)))
			return rc;
		vg_db_bind_text(s, 1, r->parent);
		if ((rc = step_done(s)))
			return rc;
	}
	return 0;
}

/* Add (tx, rx) bytes to the project's vNIC hour: summed in the batch's
 * net map, written by rows_flush. */
static int net_add(struct vg_bill_meter *m, const char *project, const char *nic,
		   int64_t hour, int64_t tx, int64_t rx)
{
	size_t pl = strlen(project), nl = strlen(nic), kl;
	char hb[24];
	struct cnet *x;

	if (tx == 0 && rx == 0)
		return 0;
	int hl = snprintf(hb, sizeof(hb), "%lld", (long long)hour);
	kl = pl + 1 + (size_t)hl + 1 + nl;
	if (!(x = calloc(1, sizeof(*x) + kl + 1)))
		return -ENOMEM;
	memcpy(x->key, project, pl);
	memcpy(x->key + pl + 1, hb, (size_t)hl);
	memcpy(x->key + pl + 1 + hl + 1, nic, nl);
	struct cnet *old = vg_hmap_get(&m->net, x->key, kl);
	if (old) {
		free(x);
		old->tx += tx;
		old->rx += rx;
		return 0;
	}
	x->project = x->key;
	x->hour = hour;
	x->nic = x->key + pl + 1 + hl + 1;
	x->tx = tx;
	x->rx = rx;
	if (vg_hmap_put(&m->net, x->key, kl, x, NULL)) {
		free(x);
		return -ENOMEM;
	}
	return 0;
}

static int64_t hour_of(int64_t t)
{
	return (t >= 0 ? t : t - HOUR_MS + 1) / HOUR_MS * HOUR_MS;
}

/* Spread (tx, rx) bytes over the hours of (a, b], in proportion to time;
 * the last hour takes the remainder so nothing is lost. */
static int spread(struct vg_bill_meter *m, const char *project, const char *nic,
		  int64_t a, int64_t b, int64_t tx, int64_t rx)
{
	int64_t h0 = hour_of(a), hb = hour_of(b - 1);
	int rc;

	if (b <= a || h0 == hb || (hb - h0) / HOUR_MS > MAX_SPREAD_HOURS)
		return net_add(m, project, nic, hour_of(b > a ? b - 1 : b), tx, rx);
	int64_t left_tx = tx, left_rx = rx;
	for (int64_t h = h0; h < hb; h += HOUR_MS) {
		int64_t s = h > a ? h : a, e = h + HOUR_MS;
		unsigned __int128 num_tx = (unsigned __int128)tx * (uint64_t)(e - s);
		unsigned __int128 num_rx = (unsigned __int128)rx * (uint64_t)(e - s);
		int64_t ptx = (int64_t)(num_tx / (uint64_t)(b - a));
		int64_t prx = (int64_t)(num_rx / (uint64_t)(b - a));
		if ((rc = net_add(m, project, nic, h, ptx, prx)))
			return rc;
		left_tx -= ptx;
		left_rx -= prx;
	}
	return net_add(m, project, nic, hb, left_tx, left_rx);
}

/* Whether a vNIC's deltas (tx, rx) over (a_ms, b_ms] are plausible: at
 * most VG_BILL_MAX_NET_BYTES_PER_S each way for every second begun (at
 * least one: counters are read at a poll's time, not the bytes');
 * implausible() for each that is not. */
static int nic_plausible(struct vg_bill_meter *m, const char *id, int64_t a_ms,
			 int64_t b_ms, int64_t tx, int64_t rx)
{
	int ok = 1;
	int64_t s = b_ms > a_ms ? (b_ms - a_ms) / 1000 + 1 : 1;
	int64_t max = s > INT64_MAX / VG_BILL_MAX_NET_BYTES_PER_S
			      ? INT64_MAX
			      : s * VG_BILL_MAX_NET_BYTES_PER_S;

	if (tx > max) {
		implausible(m, id, VG_BILL_IMPL_NETWORK, "net.tx.bytes delta", tx, max);
		ok = 0;
	}
	if (rx > max) {
		implausible(m, id, VG_BILL_IMPL_NETWORK, "net.rx.bytes delta", rx, max);
		ok = 0;
	}
	return ok;
}

static int observe_nic(struct vg_bill_meter *m, struct mres *r,
		       const struct vg_batch *b, const struct vg_resource *res)
{
	int64_t t = res->time_ms;
	int64_t tx = sample_int(b, res, "net.tx.bytes", NULL);
	int64_t rx = sample_int(b, res, "net.rx.bytes", NULL);

	if (res->state == VG_RSTATE_ENDED) {
		r->ctr_valid = 0;
		return 0;
	}
	if (tx < 0 || rx < 0)
		return 0;
	if (r->moved) {
		/* A new host's vNIC counts from zero since the migration:
		 * its first value is the traffic since the old host's last
		 * report. */
		int64_t from = r->ctr_valid ? r->ctr_ms : r->last_seen_ms;
		if (from != INT64_MIN && from < t && nic_plausible(m, r->id, from, t, tx, rx)) {
			int rc = spread(m, r->project ? r->project : "default",
					r->id, from, t, tx, rx);
			if (rc)
				return rc;
		}
	} else if (r->ctr_valid && t > r->ctr_ms) {
		int64_t dtx = tx >= r->ctr_tx ? tx - r->ctr_tx : tx;
		int64_t drx = rx >= r->ctr_rx ? rx - r->ctr_rx : rx;
		if (tx < r->ctr_tx || rx < r->ctr_rx)
			m->cur.resets++;
		/* an implausible delta is not billed; the counter moves on
		 * from the value reported (a broken reading once does not
		 * hold back every delta after it) */
		if (nic_plausible(m, r->id, r->ctr_ms, t, dtx, drx)) {
			int rc = spread(m, r->project ? r->project : "default", r->id,
					r->ctr_ms, t, dtx, drx);
			if (rc)
				return rc;
		}
	}
	r->ctr_valid = 1;
	r->ctr_ms = t;
	r->ctr_tx = tx;
	r->ctr_rx = rx;
	return 0;
}

static int apply_resource(struct vg_bill_meter *m, const struct vg_batch *b,
			  const struct vg_resource *res)
{
	struct mres r;
	int rc;

	if (res->type != VG_RT_INSTANCE && res->type != VG_RT_DISK &&
	    res->type != VG_RT_NIC)
		return 0;
	if ((rc = load_res(m, res->id, &r, 1)))
		goto out;
	/* A report from another host is not a re-delivery: the stale rule
	 * holds per host (the new host of a moved instance may poll before
	 * the old host's last report arrives). */
	if (r.found && res->time_ms <= r.last_poll_ms && !other_host(&r, b->host)) {
		m->cur.stale++;
		goto out;
	}
	int running = res->state == VG_RSTATE_ACTIVE &&
		      (res->type != VG_RT_INSTANCE || obs_running(b, res));
	if (other_host(&r, b->host) || in_flight(&r)) {
		if (!running && other_host(&r, b->host)) {
			m->cur.elsewhere++; /* left behind on the old host */
			goto out;
		}
		if (running) {
			int resumed;
			if ((rc = resume_moved(m, &r, res->time_ms, &resumed)))
				goto out;
			r.moved = 1;
		}
	}
	if (res->type == VG_RT_INSTANCE && res->state == VG_RSTATE_ACTIVE &&
	    (rc = put_name(m, res->project, attr_get(b, res, "project_name", NULL),
			   res->time_ms)))
		goto out;
	if ((rc = update_identity(m, &r, b, res)) ||
	    ((running || !r.host) && (rc = set_str(&r, &r.host, b->host))))
		goto out;
	if (r.first_ms == INT64_MIN || r.first_ms < 0) {
		if (res->state == VG_RSTATE_ACTIVE)
			r.first_ms = res->time_ms;
	}
	if (!r.found)
		r.last_change_ms = INT64_MIN;
	switch (res->type) {
	case VG_RT_INSTANCE:
		rc = observe_instance(m, &r, b, res);
		break;
	case VG_RT_DISK:
		rc = observe_disk(m, &r, b, res);
		break;
	default:
		rc = observe_nic(m, &r, b, res);
		break;
	}
	if (rc)
		goto out;
	if (res->state == VG_RSTATE_ACTIVE && res->time_ms > r.last_seen_ms)
		r.last_seen_ms = res->time_ms;
	if (r.last_seen_ms == INT64_MIN)
		r.last_seen_ms = res->time_ms;
	if (res->time_ms > r.last_poll_ms)
		r.last_poll_ms = res->time_ms;
	m->cur.observations++;
	rc = save_res(m, &r);
out:
	mres_clear(&r);
	return rc;
}

/* ---- the batch --------------------------------------------------------------- */

struct item {
	int64_t t;
	int is_obs;
	size_t idx;
};

static int cmp_item(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	if (x->is_obs != y->is_obs)
		return x->is_obs - y->is_obs;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* ---- A test's fault: stopped inside a transaction ------------------------
 *
 * VIGIE_TEST_BILLING_PAUSE=HOST[:N] (read once, at vg_bill_meter_open,
 * and only when set) makes the meter stop its own process (SIGSTOP)
 * once, in the N-th batch of HOST it applies (default 1), after that
 * batch's advisory locks were granted and its rows read, before its
 * writes and COMMIT. A collector stopped exactly there, holding a
 * host's billing locks, is what "Bounded lock waits" is about; a SIGSTOP
 * from outside lands there only by chance (a batch's billing lasts a
 * few milliseconds), so tests/integration/billing_stop_test.sh uses
 * this. Nothing else reads it. */
static void test_pause_setup(struct vg_bill_meter *m)
{
	const char *v = getenv("VIGIE_TEST_BILLING_PAUSE");
	const char *colon;
	size_t len;

	if (!v || !*v)
		return;
	colon = strrchr(v, ':');
	len = colon ? (size_t)(colon - v) : strlen(v);
	m->pause_n = colon ? strtol(colon + 1, NULL, 10) : 1;
	if (m->pause_n < 1)
		m->pause_n = 1;
	if ((m->pause_host = malloc(len + 1))) {
		memcpy(m->pause_host, v, len);
		m->pause_host[len] = '\0';
		vg_warn("billing: VIGIE_TEST_BILLING_PAUSE is set: this collector stops "
			"itself (SIGSTOP) inside the billing transaction of batch %ld of "
			"host %s (a test's fault; never set it in production)",
			m->pause_n, m->pause_host);
	}
}

static void test_pause(struct vg_bill_meter *m, const struct vg_batch *b)
{
	if (!m->pause_host || !b->host || strcmp(b->host, m->pause_host) || --m->pause_n)
		return;
	free(m->pause_host);
	m->pause_host = NULL;
	raise(SIGSTOP);
}

/* The batch's items applied to its rows (read), then the rows written. */
static int apply_read(struct vg_bill_meter *m, const struct vg_batch *b)
{
	size_t n = 0;
	struct item *items;
	int rc = 0;

	test_pause(m, b); /* its locks are held and its rows read */

	items = malloc((b->nres + b->nevents + 1) * sizeof(*items));
	if (!items)
		return -ENOMEM;
	for (size_t i = 0; i < b->nevents; i++)
		items[n++] = (struct item){b->events[i].time_ms, 0, i};
	for (size_t i = 0; i < b->nres; i++)
		if (metered(b, i))
			items[n++] = (struct item){b->res[i].time_ms, 1, i};
	qsort(items, n, sizeof(*items), cmp_item);
	for (size_t i = 0; i < n && !rc; i++) {
		if (items[i].is_obs)
			rc = apply_resource(m, b, &b->res[items[i].idx]);
		else
			rc = apply_event(m, &b->events[items[i].idx], b->host);
	}
	free(items);
	return rc ? rc : rows_flush(m, b);
}

/* ---- Bounded lock waits ----------------------------------------------------
 *
 * A collector stopped inside a batch's transaction (SIGSTOP, a frozen VM)
 * keeps that batch's advisory locks until it resumes or its connection
 * closes. Without a bound, another collector's meter given a batch that
 * names one of those resources (the host's agent failing over) waited
 * for them in the receiver's thread, and that collector stored nothing
 * of any host meanwhile. So the meter's connection has a lock_timeout
 * (vg_bill_meter_set_lock_timeout: the collector gives it [billing]
 * lock_timeout_ms, by default a quarter of the agents' ack timeout). A
 * lock wait past it fails its statement (55P03, -ETIMEDOUT from the db
 * layer), the transaction is rolled back, and the batch is answered
 * -EAGAIN: RETRY, the agent keeps it and sends it again. Not retried
 * here, and not applied again through the synchronous path as other
 * failures are: the holder has held the lock that long, waiting again
 * would wait as long again. Nothing is lost or counted twice: nothing of
 * the batch was committed, so its re-send, once the locks are free, is
 * metered once (the watermark makes any further copy a no-op, as for any
 * re-delivery).
 * A group waits at most once. Its lock statement takes every batch's
 * locks; past the bound the group is rolled back and, as after any
 * failure, each batch applied alone. Those transactions wait at most
 * LOCK_SHORT_MS for a lock (SET LOCAL, Q_LOCK_WAIT_PG), so the batches
 * whose locks are free are stored and the one still held answers RETRY
 * at once, instead of each held batch waiting the bound again (up to a
 * group of them, past the agents' ack timeout). The same once a batch
 * applied alone after another failure of the group passed the bound.
 * Each batch so answered is counted (vg_bill_meter_lock_timeouts,
 * vigie_billing_lock_timeouts_total); the first of an episode is logged,
 * and its end (a batch applied after none for EPISODE_QUIET_MS, or four
 * bounds if longer) with how many there were. */
#define LOCK_SHORT_MS "1"
#define EPISODE_QUIET_MS 10000

/* This transaction's lock waits: LOCK_SHORT_MS each (queued with the
 * first statement: no round trip of its own). */
static int lock_wait_short(struct vg_bill_meter *m)
{
	struct vg_db_stmt *s;
	int rc;

	if (vg_db_engine(m->db) != VG_DB_POSTGRESQL)
		return 0;
	if ((rc = q(m, Q_LOCK_WAIT_PG, &s)))
		return rc;
	vg_db_bind_text(s, 1, LOCK_SHORT_MS);
	return step_done(s);
}

/* b was rolled back for a lock wait past the bound: count it, log the
 * episode's first, answer -EAGAIN. */
static int lock_timed_out(struct vg_bill_meter *m, const struct vg_batch *b)
{
	int64_t now = vg_monotonic_ms();

	__atomic_add_fetch(&m->lock_timeouts, 1, __ATOMIC_RELAXED);
	if (!m->episode) {
		m->episode = 1;
		m->episode_n = 0;
		m->episode_first_ms = now;
		vg_warn("billing: a batch of host %s waited %u ms for billing locks "
			"another collector holds (stopped inside a transaction?): "
			"rolled back and answered RETRY, the agent sends it again; "
			"the next ones are counted in vigie_billing_lock_timeouts_total "
			"and logged when they stop",
			b && b->host ? b->host : "?", m->lock_ms);
	}
	m->episode_n++;
	m->episode_last_ms = now;
	return -EAGAIN;
}

/* A batch or a group was applied: the end of an episode once no lock
 * wait passed the bound for a while. */
static void lock_episode_check(struct vg_bill_meter *m)
{
	int64_t now, quiet = EPISODE_QUIET_MS;

	if (!m->episode)
		return;
	now = vg_monotonic_ms();
	if ((int64_t)m->lock_ms * 4 > quiet)
		quiet = (int64_t)m->lock_ms * 4;
	if (now - m->episode_last_ms < quiet)
		return;
	vg_info("billing: no wait for billing locks passed %u ms for %lld s: "
		"%llu batch(es) had been answered RETRY for it, over %lld s",
		m->lock_ms, (long long)((now - m->episode_last_ms) / 1000),
		(unsigned long long)m->episode_n,
		(long long)((m->episode_last_ms - m->episode_first_ms) / 1000));
	m->episode = 0;
}

/* One attempt at the batch, inside vg_db_transact's transaction. */
static int apply_items(struct vg_db *db, void *arg)
{
	struct vg_bill_meter *m = arg;
	int rc;

	(void)db;
	memset(&m->cur, 0, sizeof(m->cur));
	if (m->attempts++)
		names_forget(m); /* the last attempt's writes were rolled back */
	rows_forget(m);
	if (m->lock_short && (rc = lock_wait_short(m)))
		return rc;
	if ((rc = rows_prefetch(m, m->batch)))
		return rc;
	return apply_read(m, m->batch);
}

/* Add c's counts to *to; `batches` counts c as `nbatches` batches. */
static void stats_into(struct vg_bill_meter_stats *to, const struct vg_bill_meter_stats *c,
		       uint64_t nbatches)
{
	to->batches += nbatches;
	to->observations += c->observations;
	to->stale += c->stale;
	to->events += c->events;
	to->refined += c->refined;
	to->resets += c->resets;
	to->migrations += c->migrations;
	to->elsewhere += c->elsewhere;
	for (int k = 0; k < VG_BILL_IMPL_N; k++) /* read by vg_bill_meter_implausible */
		__atomic_add_fetch(&to->implausible[k], c->implausible[k], __ATOMIC_RELAXED);
}

static void stats_add(struct vg_bill_meter *m)
{
	stats_into(&m->st, &m->cur, 1);
	lock_episode_check(m);
}

int vg_bill_meter_batch(struct vg_bill_meter *m, const struct vg_batch *b)
{
	int rc;

	m->batch = b;
	m->attempts = 0;
	rc = vg_db_transact(m->db, apply_items, m);
	m->batch = NULL;
	rows_forget(m);
	if (rc) {
		names_forget(m); /* what it wrote is gone */
		m->st.errors++;
		if (rc == -ETIMEDOUT) /* "Bounded lock waits" */
			return lock_timed_out(m, b);
		return vg_bill_db_errno(rc);
	}
	stats_add(m);
	return 0;
}

/* ---- Overlap: the consumer's begin, batch and end (dispatch.h) --------------
 *
 * On PostgreSQL the receiver's thread would otherwise wait for the server
 * twice per batch while doing nothing: for BEGIN, the locks and the read
 * of the batch's rows, then for the writes and COMMIT. As a consumer with
 * begin and end, the meter instead sends the first part in begin (before
 * the registry and the store take the batch, so the server reads while
 * they work), reads its answer in batch, applies the items, sends the
 * writes and COMMIT without waiting, and waits for the COMMIT in end
 * (after the alarm engine and the publishers ran). It is the same
 * transaction as vg_bill_meter_batch's, statement for statement, so the
 * rows written are the same; only when the caller waits changes. Any
 * failure on the way (a deadlock, a lost connection, an error) rolls the
 * attempt back and applies the batch again through vg_bill_meter_batch
 * (vg_db_transact, with its retries), so errors and their mapping are
 * exactly the synchronous path's. The one exception is a connection lost
 * after the COMMIT was sent: the outcome is unknown and, as in
 * vg_db_transact, reported (-EAGAIN: the agent sends the batch again,
 * which the watermark makes harmless). sqlite, and a batch with no rows
 * or more than one read's worth (FETCH_ROWS), take the synchronous path
 * in batch(): begin does nothing for them. */

/* Collect b's rows for a read sent ahead. 0 when there is nothing to send
 * ahead (no rows, or more than one read's worth: the batch reads them
 * itself), the rows forgotten. */
static int rows_ready(struct vg_bill_meter *m, const struct vg_batch *b)
{
	rows_forget(m);
	if (rows_collect(m, b) || !vg_hmap_count(&m->rows) ||
	    vg_hmap_count(&m->rows) > FETCH_ROWS) {
		rows_forget(m);
		return 0;
	}
	return 1;
}

/* Send the collected rows' locks and read (rows_prefetch's statements)
 * without waiting for them: 0 or -errno. */
static int rows_send(struct vg_bill_meter *m, const char *host, struct vg_db_stmt **fetch)
{
	size_t pos = 0;
	const struct vg_hmap_entry *e = vg_hmap_next(&m->rows, &pos);
	int rc;

	if ((rc = rows_lock_pg(m, &host, host ? 1 : 0)) ||
	    (rc = fetch_bind(m, host, &pos, &e, fetch)) ||
	    (rc = vg_db_query_queued(*fetch)))
		return rc;
	return vg_db_flush(m->db);
}

/* Leave the overlapped path: roll back what it sent, forget its rows and
 * the names it wrote. */
static void early_abort(struct vg_bill_meter *m)
{
	if (vg_db_in_transaction(m->db))
		vg_db_rollback(m->db);
	m->early = EARLY_NONE;
	m->early_fetch = NULL;
	m->batch = NULL;
	rows_forget(m);
	names_forget(m);
}

static void meter_begin(void *ctx, const struct vg_batch *b)
{
	struct vg_bill_meter *m = ctx;
	const char *host = batch_host(b);
	int rc;

	m->early = EARLY_NONE;
	if (vg_db_engine(m->db) != VG_DB_POSTGRESQL || vg_db_in_transaction(m->db))
		return;
	memset(&m->cur, 0, sizeof(m->cur));
	if (!rows_ready(m, b))
		return;
	if ((rc = vg_db_begin(m->db)) || (rc = rows_send(m, host, &m->early_fetch))) {
		early_abort(m);
		return;
	}
	m->batch = b;
	m->early = EARLY_SENT;
}

/* ---- Groups: one transaction for the batches of a group (dispatch.h) --------
 *
 * The receiver hands over, as one group, batches that were already
 * waiting together (never two of one host's stream). group_begin opens
 * one transaction; each batch() applies its batch inside it exactly as
 * apply_items does in its own (locks, read, items, writes queued), and
 * group_end sends one COMMIT for all of them. Applying several batches
 * in one transaction gives the same rows as one transaction each: each
 * batch reads the rows as the earlier ones left them (its own
 * transaction's writes), and the locks it takes are held to the COMMIT
 * (on PostgreSQL advisory locks of the same key nest). What it saves is a
 * COMMIT (a wait for the server and a WAL flush) per batch.
 * Locks. Taken batch by batch, a group's locks would be taken in the
 * order of its batches, and another collector's group of the same
 * resources in another order (two hosts' batches arriving in the other
 * order, a resource named by two hosts' batches during a migration)
 * could hold what this one waits for and wait for what it holds: the
 * server would detect the deadlock only after deadlock_timeout (1 s by
 * default) and abort one group, applied again batch by batch. So on
 * PostgreSQL group_begin first takes the locks of the union of the
 * group's batches (their resources and their hosts' sightings) in one
 * statement, in key order (group_lock_pg, queued with BEGIN: no round
 * trip of its own); each batch's own lock statement then finds them
 * held (advisory locks of one key nest). Two groups, or a group and a
 * single batch, thus take their common locks in one global order and
 * cannot wait for each other in a cycle. sqlite needs nothing: BEGIN
 * IMMEDIATE lets one writer in at a time. Any failure
 * (a statement's error, a deadlock with another collector, a COMMIT
 * refused) rolls the whole group back and group_end applies each batch
 * again alone through vg_bill_meter_batch, so its result and its error
 * are the single path's; a connection lost after the COMMIT was sent
 * leaves the outcome unknown and, as in the single path, every batch of
 * the group is answered -EAGAIN (sent again, the watermark makes a
 * second application change nothing). Counts are added at the COMMIT.
 * On PostgreSQL the waits inside the group overlap as in "Overlap":
 * group_begin sends BEGIN and the first batch's locks and read, and each
 * batch, once its writes are queued, sends the next batch's locks and
 * read behind them (group_send), so the server reads while the other
 * consumers work and the only wait left for the group is its COMMIT
 * (plus each read the server has not finished when its batch comes). */

static void group_fail(struct vg_bill_meter *m, int rc)
{
	if (rc == -ETIMEDOUT)
		m->group_timed_out = 1; /* "Bounded lock waits" */
	if (vg_db_in_transaction(m->db))
		vg_db_rollback(m->db);
	rows_forget(m);
	names_forget(m);
	m->gnext = NULL;
	m->group = G_FAILED;
}

/* PostgreSQL: send b's locks and read now, without waiting, behind the
 * writes of the batch before it (the server runs them in order, so the
 * read sees them), so that the server works while the other consumers
 * take the batch; group_add reads the answer. Same statements as
 * rows_prefetch's; a batch with no rows or more than one read's worth is
 * read by group_add itself. */
static void group_send(struct vg_bill_meter *m, const struct vg_batch *b)
{
	const char *host = batch_host(b);

	m->gnext = NULL;
	if (m->group != G_OPEN || vg_db_engine(m->db) != VG_DB_POSTGRESQL)
		return;
	if (!rows_ready(m, b))
		return;
	int rc;

	if ((rc = rows_send(m, host, &m->gfetch))) {
		group_fail(m, rc);
		return;
	}
	m->gnext = b;
}

/* PostgreSQL: the locks of every batch of the group (b[0..n)) at once,
 * in key order ("Locks" above). Queued: the error, if any, comes back
 * with the first batch's read. */
static int group_lock_pg(struct vg_bill_meter *m, const struct vg_batch *const *b, size_t n)
{
	const char *hosts[VG_DISPATCH_GROUP_MAX];
	size_t nh = 0;
	int rc = 0;

	if (n > VG_DISPATCH_GROUP_MAX)
		return -EINVAL; /* vg_dispatch_group never makes one */
	rows_forget(m);
	for (size_t i = 0; i < n && !rc; i++) {
		rc = rows_collect(m, b[i]);
		if (batch_host(b[i]))
			hosts[nh++] = batch_host(b[i]);
	}
	if (!rc && (vg_hmap_count(&m->rows) || nh))
		rc = rows_lock_pg(m, hosts, nh);
	rows_forget(m);
	return rc;
}

static void meter_group_begin(void *ctx, const struct vg_batch *const *b, size_t n)
{
	struct vg_bill_meter *m = ctx;

	m->early = EARLY_NONE;
	m->gn = 0;
	m->gall = b;
	m->gall_n = n;
	m->gnext = NULL;
	memset(&m->gst, 0, sizeof(m->gst));
	m->group = G_OPEN;
	m->group_timed_out = 0;
	if (vg_db_in_transaction(m->db) || vg_db_begin(m->db) ||
	    (vg_db_engine(m->db) == VG_DB_POSTGRESQL && group_lock_pg(m, b, n))) {
		group_fail(m, 0);
		return;
	}
	if (n)
		group_send(m, b[0]);
}

static void group_add(struct vg_bill_meter *m, const struct vg_batch *b)
{
	int rc;

	if (m->gn < VG_DISPATCH_GROUP_MAX)
		m->gb[m->gn++] = b;
	if (m->group != G_OPEN)
		return;
	memset(&m->cur, 0, sizeof(m->cur));
	if (m->gnext == b) { /* its rows were collected, locked and sent */
		m->gnext = NULL;
		if (!(rc = rows_read(m, batch_host(b), m->gfetch)))
			m->overlapped++;
	} else { /* not sent, or sent for a batch the chain skipped */
		m->gnext = NULL;
		rows_forget(m);
		rc = rows_prefetch(m, b);
	}
	if (rc || (rc = apply_read(m, b))) {
		group_fail(m, rc);
		return;
	}
	rows_forget(m);
	stats_into(&m->gst, &m->cur, 1);
	for (size_t k = 0; k + 1 < m->gall_n; k++)
		if (m->gall[k] == b) {
			group_send(m, m->gall[k + 1]);
			break;
		}
}

static void meter_group_end(void *ctx, const struct vg_batch *const *b, size_t n,
			    int *rcs)
{
	struct vg_bill_meter *m = ctx;
	int rc = 0, lost = 0;

	m->gnext = NULL;
	m->gall = NULL;
	m->gall_n = 0;
	if (m->group == G_OPEN) {
		if (!(rc = vg_db_commit(m->db))) {
			stats_into(&m->st, &m->gst, m->gst.batches);
			m->groups++;
			m->group = G_NONE;
			m->gn = 0;
			lock_episode_check(m);
			return;
		}
		lost = rc == -ECONNRESET; /* lost with the COMMIT sent: unknown */
		group_fail(m, rc);
	}
	m->group = G_NONE;
	if (!lost)
		m->group_fallbacks++;
	/* the group waited the bound once: no batch of it waits again */
	m->lock_short = m->group_timed_out;
	for (size_t k = 0; k < m->gn; k++) {
		size_t i = 0;

		while (i < n && b[i] != m->gb[k])
			i++;
		if (i == n)
			continue;
		if (lost) {
			m->st.errors++;
			rcs[i] = vg_bill_db_errno(rc);
		} else {
			uint64_t before = __atomic_load_n(&m->lock_timeouts, __ATOMIC_RELAXED);

			rcs[i] = vg_bill_meter_batch(m, b[i]);
			if (__atomic_load_n(&m->lock_timeouts, __ATOMIC_RELAXED) != before)
				m->lock_short = 1; /* this one waited the bound */
		}
	}
	m->lock_short = 0;
	m->group_timed_out = 0;
	m->gn = 0;
}

static int consume(void *ctx, const struct vg_batch *b)
{
	struct vg_bill_meter *m = ctx;
	int rc;

	if (m->group != G_NONE) {
		group_add(m, b);
		return 0; /* its outcome is group_end's */
	}

	if (m->early == EARLY_SENT && m->batch == b) {
		if (!(rc = rows_read(m, batch_host(b), m->early_fetch)) &&
		    !(rc = apply_read(m, b)) && !(rc = vg_db_commit_queued(m->db))) {
			m->early = EARLY_COMMIT;
			return 0;
		}
		early_abort(m);
		if (rc == -ETIMEDOUT) { /* not again: "Bounded lock waits" */
			m->st.errors++;
			return lock_timed_out(m, b);
		}
	} else if (m->early != EARLY_NONE) {
		early_abort(m); /* not the batch begin saw: start again */
	}
	return vg_bill_meter_batch(m, b);
}

static int meter_end(void *ctx, const struct vg_batch *b, int rc)
{
	struct vg_bill_meter *m = ctx;

	(void)rc;                     /* a COMMIT sent stands whatever the later consumers said */
	if (m->early == EARLY_SENT) { /* batch() was not called: nothing to do */
		early_abort(m);
		return 0;
	}
	if (m->early != EARLY_COMMIT)
		return 0;
	rc = vg_db_sync(m->db);
	if (!rc) {
		m->early = EARLY_NONE;
		m->early_fetch = NULL;
		m->batch = NULL;
		rows_forget(m);
		stats_add(m);
		m->overlapped++;
		return 0;
	}
	early_abort(m);
	if (rc == -ECONNRESET) { /* lost with the COMMIT sent: unknown */
		m->st.errors++;
		return vg_bill_db_errno(rc);
	}
	if (rc == -ETIMEDOUT) { /* rolled back; not again: "Bounded lock waits" */
		m->st.errors++;
		return lock_timed_out(m, b);
	}
	return vg_bill_meter_batch(m, b);
}

struct vg_consumer vg_bill_meter_consumer(struct vg_bill_meter *m)
{
	struct vg_consumer c = {"billing", m, consume, NULL};
	return c;
}

struct vg_consumer_hooks vg_bill_meter_hooks(void)
{
	struct vg_consumer_hooks h = {meter_begin, meter_end, meter_group_begin,
				      meter_group_end};
	return h;
}

int vg_bill_meter_set_lock_timeout(struct vg_bill_meter *m, uint32_t lock_ms)
{
	char session[sizeof(METER_SESSION_PG) + 48];
	int rc;

	if (!m)
		return -EINVAL;
	if (vg_db_engine(m->db) != VG_DB_POSTGRESQL)
		return 0; /* sqlite: one writer at a time, behind its busy timeout */
	/* with the planner settings, made again at every reconnect */
	snprintf(session, sizeof(session), METER_SESSION_PG "; SET lock_timeout = %u", lock_ms);
	rc = vg_db_set_session(m->db, session);
	if (!rc || rc == -ECONNRESET || rc == -ENOTCONN)
		m->lock_ms = lock_ms;
	return rc;
}

uint64_t vg_bill_meter_lock_timeouts(const struct vg_bill_meter *m)
{
	return m ? __atomic_load_n(&m->lock_timeouts, __ATOMIC_RELAXED) : 0;
}

uint64_t vg_bill_meter_groups(const struct vg_bill_meter *m)
{
	return m->groups;
}

uint64_t vg_bill_meter_group_fallbacks(const struct vg_bill_meter *m)
{
	return m->group_fallbacks;
}

uint64_t vg_bill_meter_overlapped(const struct vg_bill_meter *m)
{
	return m->overlapped;
}

void vg_bill_meter_get_stats(const struct vg_bill_meter *m, struct vg_bill_meter_stats *out)
{
	*out = m->st;
}

struct vg_db *vg_bill_meter_db(struct vg_bill_meter *m)
{
	return m->db;
}

int vg_bill_meter_open(const char *url, struct vg_bill_meter **out, char *err,
		       size_t errlen)
{
	struct vg_bill_meter *m = calloc(1, sizeof(*m));
	int rc;

	*out = NULL;
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	vg_hmap_init(&m->rows);
	vg_hmap_init(&m->lockx);
	vg_hmap_init_borrow(&m->net);
	vg_hmap_init(&m->implausible_logged);
	if ((rc = sql_build(m))) {
		sql_free(m);
		free(m);
		snprintf(err, errlen, "out of memory");
		return rc;
	}
	if ((rc = vg_bill_db_open(url, &m->db, err, errlen))) {
		sql_free(m);
		free(m);
		return rc;
	}
	/* "Keyed plans" above; sqlite: nothing to set */
	if ((rc = vg_db_set_session(m->db, METER_SESSION_PG))) {
		snprintf(err, errlen, "billing: planner settings: %s", vg_db_errmsg(m->db));
		vg_bill_meter_close(m);
		return rc;
	}
	test_pause_setup(m);
	*out = m;
	return 0;
}

void vg_bill_meter_close(struct vg_bill_meter *m)
{
	if (!m)
		return;
	vg_db_close(m->db);
	names_forget(m);
	rows_forget(m);
	sql_free(m);
	vg_hmap_release(&m->implausible_logged);
	free(m->pause_host);
	free(m);
}
