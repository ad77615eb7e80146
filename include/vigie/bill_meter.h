/*
 * vigie — the usage meter (billing/meter.c) and its database
 * (billing/db.c, <data_dir>/billing.db).
 *
 * The meter is a collector consumer (dispatch.h). From every batch it
 * takes the instances, their disks and vNICs, and the lifecycle events,
 * and records in sqlite:
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
 * Idempotent: a resource's observations at or before its last applied
 * poll time are ignored and transitions are unique on (resource, time,
 * kind), so a re-delivered batch changes nothing.
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
 * Threading: a meter (one sqlite handle) is used by one thread at a time
 * (the receiver). Readers open their own handles (WAL).
 */
#ifndef VIGIE_BILL_METER_H
#define VIGIE_BILL_METER_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "vigie/batch.h"
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

/* Open or create the billing database at path (schema created or checked).
 * WAL mode, busy timeout. *out is a sqlite handle for one thread; close
 * with sqlite3_close. 0 or -errno with a message in err. */
int vg_bill_db_open(const char *path, sqlite3 **out, char *err, size_t errlen);

/* <data_dir>/billing.db into buf. Returns buf. */
char *vg_bill_db_path(const char *data_dir, char *buf, size_t len);

/* Map a sqlite result code to -errno: BUSY/LOCKED -> -EAGAIN, FULL ->
 * -EAGAIN (the agent keeps the batch), NOMEM -> -ENOMEM, else -EIO. */
int vg_bill_db_errno(int sqlite_rc);

/* ---- the meter ------------------------------------------------------------ */

struct vg_bill_meter;

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
};

/* Open the meter on the database at path. 0 or -errno, message in err. */
int vg_bill_meter_open(const char *path, struct vg_bill_meter **out, char *err,
		       size_t errlen);
void vg_bill_meter_close(struct vg_bill_meter *m); /* accepts NULL */

/* Apply one batch in one transaction. 0; -EAGAIN when the database is busy
 * or full (nothing applied: the batch is retried); -EIO, -ENOMEM. */
int vg_bill_meter_batch(struct vg_bill_meter *m, const struct vg_batch *b);

/* The consumer to register with vg_dispatch_add (ctx = m). */
struct vg_consumer vg_bill_meter_consumer(struct vg_bill_meter *m);

void vg_bill_meter_get_stats(const struct vg_bill_meter *m, struct vg_bill_meter_stats *out);

/* The meter's handle (tests read the tables through it). */
sqlite3 *vg_bill_meter_db(struct vg_bill_meter *m);

#endif
