/*
 * vigie — the usage meter (billing/meter.c) and its database
 * (billing/db.c, <data_dir>/billing.db).
 *
 * The meter is a collector consumer (dispatch.h). From every batch it
 * takes the instances, their disks and vNICs, and the lifecycle events,
 * and records in the billing database:
 *   - per resource, a timeline of transitions keyed (resource, time, kind):
 *     CREATE, START, STOP, FLAVOR (a resize, with the new flavor), CAPACITY
 *     (a disk's size), DELETE. Each is exact (from a libvirt event's own
 *     timestamp) or inferred from polling, with the window [lo, hi] in
 *     which it really happened; an exact event inside that window later
 *     replaces the inferred one. Usage intervals (billing/usage.c) are
 *     derived from the timelines.
 *   - per vNIC, transmitted and received bytes per UTC hour, from counter
 *     deltas (a counter that goes backwards restarted from zero: its new
 *     value is the traffic since; never negative usage).
 * Idempotent: a resource's observations, and the events the agent derived
 * from its polls, at or before its last applied poll time are ignored and
 * transitions are unique on (resource, time, kind), so a re-delivered
 * batch changes nothing. A FLAVOR transition also sets the flavor of a
 * CREATE or START at the same instant (those sort after it and would
 * otherwise bring back the flavor from before the resize).
 *
 * What the meter reads from a batch (the agent's contract, docs/protocol.md):
 *   instance  state ACTIVE/ENDED; project, user, name, flavor (name);
 *             attrs "flavor_vcpus", "flavor_memory_mb", "flavor_disk_gb"
 *             (or "flavor.vcpus", ...), else samples "vcpus" and
 *             "memory.size" (bytes); sample "power.state" or "state"
 *             (virDomainState: 1 running, 2 blocked, 3 paused,
 *             4 shutting down, 7 pmsuspended count as running; 5 shut
 *             off, 6 crashed as stopped). Without a power state an ACTIVE
 *             instance counts as running until an event says otherwise.
 *   disk      parent = instance id; sample "disk.capacity" (bytes).
 *   nic       parent = instance id; counters "net.tx.bytes" (egress) and
 *             "net.rx.bytes" (ingress), from the guest's point of view.
 *   events    STARTED, STOPPED, DEFINED, UNDEFINED, RESIZED (detail JSON
 *             {"flavor":"m1.large","vcpus":4,"memory_mb":8192,
 *             "disk_gb":40}); SUSPENDED/RESUMED keep accruing compute (a
 *             paused guest holds its vCPUs and RAM). An event whose detail
 *             has "derived":true or "initial":true was inferred by the
 *             agent from a poll and is treated as inferred.
 *   host      the batch's host runs the resource. Live migration: an exact
 *             STOPPED with "reason":"migrated" puts the instance in flight
 *             (nothing recorded); while in flight, stops and deletions are
 *             recorded as inferred at the migration time. A host that is
 *             not the instance's current one cannot stop or end it (its
 *             reports are counted in `elsewhere` and ignored). A running
 *             observation or a STARTED event (exact ones only with
 *             "reason":"migrated") from another host takes the resource
 *             over: the inferred stop/deletion the old host recorded is
 *             removed when the new host saw it no later than one vanish
 *             window (at least 5 s) after the old host's report, so the run
 *             continues with no gap and no second minimum.
 *
 * Several meters (one per collector) may write one shared PostgreSQL
 * database at once: each resource's read-modify-write is serialised by a
 * lock keyed on the resource, and the watermark then makes a batch that
 * another collector already applied a no-op (billing/meter.c says why
 * that gives the same timelines as one meter). Waits for another meter's
 * locks are bounded (vg_bill_meter_set_lock_timeout).
 *
 * Threading: a meter (one connection) is used by one thread at a time
 * (the receiver). Readers open their own connections (WAL on sqlite).
 */
#ifndef VIGIE_BILL_METER_H
#define VIGIE_BILL_METER_H

#include <stddef.h>
#include <stdint.h>

#include "vigie/batch.h"
#include "vigie/db.h"
#include "vigie/dispatch.h"

#define VG_BILL_DB "billing.db"

/* Transition kinds; the numbers order transitions at the same instant. */
enum vg_bill_tkind {
	VG_BILL_T_CREATE = 1,
	VG_BILL_T_STOP = 2,
	VG_BILL_T_FLAVOR = 3,
	VG_BILL_T_START = 4,
	VG_BILL_T_CAPACITY = 5,
	VG_BILL_T_DELETE = 6,
};

/* ---- the database (billing/db.c) ---------------------------------------- */

/* Open the billing database at url (a sqlite path, or a PostgreSQL URL or
 * conninfo: vigie/db.h) and bring its schema up to date (an existing
 * billing.db at PRAGMA user_version 1 is adopted as it is). A plain path
 * is opened with synchronous=NORMAL, WAL. *out is a connection for one
 * thread; close with vg_db_close. 0 or -errno with a message in err
 * (-ENOTCONN: the server is unreachable). */
int vg_bill_db_open(const char *url, struct vg_db **out, char *err, size_t errlen);

/* <data_dir>/billing.db into buf. Returns buf. */
char *vg_bill_db_path(const char *data_dir, char *buf, size_t len);

/* The billing database's url: state_url ([state] url) if set and not
 * empty, else <data_dir>/billing.db. Returns buf. */
char *vg_bill_db_url(const char *data_dir, const char *state_url, char *buf,
		     size_t len);

/* Map a vg_db error to what the meter's callers act on: a database that
 * is busy, full, read-only or unreachable, or a lock wait past its bound
 * (-EBUSY, -ETIMEDOUT, -ENOSPC, -EROFS, -ECONNRESET, -ENOTCONN) ->
 * -EAGAIN (the agent keeps the batch and sends it again); anything else
 * unchanged. */
int vg_bill_db_errno(int db_rc);

/* ---- the meter ------------------------------------------------------------ */

struct vg_bill_meter;

/* Implausible usage (docs/billing.md "Implausible usage"): what one guest
 * can use is bounded by hardware, and a value past these bounds is a
 * broken agent's, never a guest's. Such a value is ignored where it enters
 * the meter, as if the batch had not carried it (the rest of the
 * observation applies: the flavor stays the last plausible one, a disk
 * keeps its capacity, a vNIC's counter moves on without billing the
 * delta), counted by kind (vg_bill_meter_stats.implausible) and logged
 * once per resource. Never stored: no timeline and no network row holds
 * it. */
#define VG_BILL_MAX_VCPUS 8192LL                   /* a guest's vCPUs */
#define VG_BILL_MAX_RAM_MB (1LL << 30)             /* a guest's RAM: 1 PiB */
#define VG_BILL_MAX_DISK_GB (1LL << 30)            /* a flavor's root disk: 1 EiB */
#define VG_BILL_MAX_CAPACITY_BYTES (1LL << 60)     /* a disk's size: 1 EiB */
#define VG_BILL_MAX_NET_BYTES_PER_S 200000000000LL /* a vNIC, each way:
						      * 1.6 Tbit/s */
enum vg_bill_implausible {
	VG_BILL_IMPL_VCPUS,   /* flavor vCPUs (attribute, sample, event) */
	VG_BILL_IMPL_MEMORY,  /* flavor RAM, memory.size */
	VG_BILL_IMPL_DISK,    /* flavor root disk, disk.capacity */
	VG_BILL_IMPL_NETWORK, /* a vNIC counter's delta over its interval */
	VG_BILL_IMPL_N
};
/* "vcpus", "memory", "disk", "network" (the /metrics label); NULL past N. */
const char *vg_bill_implausible_name(int kind);

struct vg_bill_meter_stats {
	uint64_t batches;      /* taken */
	uint64_t observations; /* resource observations applied */
	uint64_t stale;        /* observations ignored (re-delivered/old) */
	uint64_t events;       /* lifecycle events that changed a timeline */
	uint64_t refined;      /* inferred transitions replaced by events */
	uint64_t resets;       /* counter resets seen */
	uint64_t errors;       /* batches refused (database errors) */
	uint64_t migrations;   /* runs continued on another host */
	uint64_t elsewhere;    /* stops/ends ignored: reported by a host that
				  no longer runs the instance */
	/* values ignored as implausible, by enum vg_bill_implausible (of the
	 * batches applied); vg_bill_meter_implausible reads them from any
	 * thread */
	uint64_t implausible[VG_BILL_IMPL_N];
};

/* Open the meter on the database at url (vg_bill_db_open), with its
 * connection's planner settings on PostgreSQL (vg_bill_meter_db). 0 or
 * -errno, message in err. */
int vg_bill_meter_open(const char *url, struct vg_bill_meter **out, char *err,
		       size_t errlen);
void vg_bill_meter_close(struct vg_bill_meter *m); /* accepts NULL */

/* Apply one batch in one transaction (retried a few times when the
 * engine reports a conflict with another writer). 0; -EAGAIN when the
 * database is busy, full or unreachable (nothing applied: the batch is
 * retried); -EIO, -ENOMEM. */
int vg_bill_meter_batch(struct vg_bill_meter *m, const struct vg_batch *b);

/* The consumer to register with vg_dispatch_add_hooks (ctx = m), with
 * vg_bill_meter_hooks(). It applies each batch as vg_bill_meter_batch
 * does, with the same result; with its hooks, on PostgreSQL, it overlaps
 * the server's work with the other consumers' (begin sends the batch's
 * locks and read, end waits for the COMMIT: dispatch.h, "Order of
 * calls"), so its outcome is then end()'s; a group (vg_dispatch_group)
 * is applied in one transaction committed in its group_end, each batch
 * applied again alone if that transaction fails. Registered without the hooks
 * (vg_dispatch_add) it waits in batch(), as vg_bill_meter_batch. */
struct vg_consumer vg_bill_meter_consumer(struct vg_bill_meter *m);
struct vg_consumer_hooks vg_bill_meter_hooks(void);

/* Bound the meter's waits for the locks of another collector's meter
 * (PostgreSQL: its connection's lock_timeout, lock_ms, kept across
 * reconnects; docs/billing.md "Several collectors"). A collector stopped
 * inside a batch's transaction (SIGSTOP, a frozen VM) holds that batch's
 * locks; without a bound a batch naming one of them waited until it
 * resumed. With it, a batch whose locks are not granted within lock_ms
 * is rolled back, answered -EAGAIN (RETRY: the agent sends it again; it
 * is metered once, when its locks are free), counted
 * (vg_bill_meter_lock_timeouts) and logged once per episode (the first
 * one, then once none came for a while). Not retried: waiting again would
 * wait as long again. A group (vg_dispatch_group) waits at most once:
 * once a lock wait of its transaction or of one of its batches passed
 * the bound, its batches still to apply are applied alone each waiting
 * at most 1 ms for a lock, so those whose locks are free are stored and
 * the others answered -EAGAIN at once. 0: no bound (the meter's at open,
 * PostgreSQL's default). sqlite: nothing to bound (one writer at a time
 * behind its busy timeout), 0. 0 or -errno with vg_db_errmsg (the server
 * refused the setting; a lost connection: set at the reconnect, as
 * vg_db_set_session). Call it between batches, on the receiver's thread. */
int vg_bill_meter_set_lock_timeout(struct vg_bill_meter *m, uint32_t lock_ms);

/* Batches answered -EAGAIN because a lock wait passed the bound of
 * vg_bill_meter_set_lock_timeout. Thread-safe (the /metrics page). */
uint64_t vg_bill_meter_lock_timeouts(const struct vg_bill_meter *m);

/* Batches the consumer applied with the overlap (for tests). */
uint64_t vg_bill_meter_overlapped(const struct vg_bill_meter *m);
/* Groups of batches (dispatch.h, vg_dispatch_group) the consumer applied
 * in one transaction each, and groups whose transaction failed and whose
 * batches it applied again one by one (for tests and self-metrics). */
uint64_t vg_bill_meter_groups(const struct vg_bill_meter *m);
uint64_t vg_bill_meter_group_fallbacks(const struct vg_bill_meter *m);

void vg_bill_meter_get_stats(const struct vg_bill_meter *m, struct vg_bill_meter_stats *out);

/* The implausible values ignored so far, by enum vg_bill_implausible
 * (out: VG_BILL_IMPL_N counters). Thread-safe (the /metrics page reads
 * them while the receiver's thread applies batches). */
void vg_bill_meter_implausible(const struct vg_bill_meter *m, uint64_t *out);

/* The meter's connection (tests and tools read the tables through it;
 * owned by the meter). On PostgreSQL it plans without sequential scans,
 * hash or merge joins and JIT (billing/meter.c, "Keyed plans"): fit for
 * keyed reads, not for reading whole tables. */
struct vg_db *vg_bill_meter_db(struct vg_bill_meter *m);

#endif
