/*
 * vigie — alarm ownership by row leases in the shared state database
 * (alarms/lease.c): with several collectors on one PostgreSQL, each alarm
 * is evaluated by exactly one live collector, the holder of its lease.
 *
 * A lease is one row (alarm_id, owner, expires_at) in the table
 * alarm_leases beside the alarm tables (schema vigie_alarms). Expiry is
 * the database's clock (now()), never a collector's, so clock skew between
 * collectors cannot make two of them believe they hold the same alarm.
 *
 * One round (vg_alarm_lease_round, every third of the lease) given the
 * live nodes (the node registry's view, vigie/cluster.h):
 *   - renew every lease this node holds (expires_at = now() + lease);
 *   - for each alarm, the node that should own it is the highest
 *     rendezvous score of (node, alarm id) over the live nodes
 *     (vg_alarm_lease_pick): so alarms spread evenly and only the alarms
 *     of a node that joins or leaves move;
 *   - claim the alarms it should own whose lease is free or expired (one
 *     upsert that only wins over an expired row);
 *   - release the ones it holds but should no longer own (a node joined),
 *     so their new owner claims them at its next round;
 *   - report every alarm id with whether this node holds it now.
 * A node that dies stops renewing: its leases expire after at most
 * `lease`, it leaves the live list after `lease` without a heartbeat, and
 * the next owner's round (lease / 3 later at most) claims them: a takeover
 * within 4/3 x lease.
 *
 * After the state database was unreachable (a round failed: the
 * registry's, vg_alarm_lease_unreachable, or this module's own), every
 * node's leases and heartbeats may have expired meanwhile, and the first
 * answered round may list this node alone: the others' rows are not
 * renewed yet, not because they died but because they were cut off too.
 * So for one lease from its first answered round after a failed one (on
 * this node's monotonic clock) a node holds back: it renews its own
 * leases, claims free rows (a new alarm, one a clean stop released) and
 * hands over what a listed node should own, but takes no row another
 * node held, expired or not. Its live peers renew theirs within that
 * lease (they renew every third of it), so an outage moves no alarm, of
 * any length; a node that stays dead has its alarms taken at the first
 * round after the hold: within 5/3 x lease of the database's return (the
 * registry round that finds it back, at most a third of a lease after;
 * the hold, one lease; the round after it, a third at most). A node
 * that has failed no round since it opened holds nothing back: a start
 * is not an outage (a fresh cluster leases at once, a restarted collector
 * renews its name's rows at once).
 *
 * Holding a lease is what lets the engine evaluate; recording a decision
 * additionally checks the lease row in the transaction that writes it
 * (vg_alarm_store_leases_held: the fence), so a node that lost its lease
 * while stalled cannot notify.
 *
 * sqlite (a single collector): no leases; the engine evaluates everything
 * as it always did, and this module is not opened.
 *
 * Threading: a handle is used by one thread (the cluster thread).
 */
#ifndef VIGIE_ALARM_LEASE_H
#define VIGIE_ALARM_LEASE_H

#include <stddef.h>
#include <stdint.h>

struct vg_alarm_lease;

/* One alarm as a round saw it. */
struct vg_alarm_lease_item {
	char id[40];
	int64_t updated_ms; /* the stored definition's (a change elsewhere) */
	int held;           /* 1: this node holds its lease now */
	int taken;          /* 1: this round took it from another node (expired) */
};

/* Open (and create the lease table in) the PostgreSQL state database url
 * for node (its name in the node registry), leases of lease_ms. -ENOTSUP
 * for a sqlite url; other -errno with a message in err. */
int vg_alarm_lease_open(const char *url, const char *node, int64_t lease_ms,
			struct vg_alarm_lease **out, char *err, size_t errlen);
/* Release every lease this node holds (a clean stop hands its alarms over
 * at once) and close. Accepts NULL. */
void vg_alarm_lease_close(struct vg_alarm_lease *l);

/* One round (see above). live: the node ids seen alive (this node among
 * them or not: it is always counted). *items gets a malloc'd array of
 * every defined alarm (the caller frees it), *n its length. 0 or -errno
 * (the database is unreachable: the held leases simply expire; the
 * caller should then stop evaluating, see vg_alarm_engine_own). A
 * connection lost at a server's restart fails its first call: the round
 * retries that call once, so it renews at the first answered round. */
int vg_alarm_lease_round(struct vg_alarm_lease *l, const char *const *live,
			 size_t nlive, struct vg_alarm_lease_item **items, size_t *n);

/* A round could not reach the state database (the registry's, when
 * vg_alarm_lease_round is not called): from the next answered round on,
 * this node takes no other node's lease for one lease (see above). A
 * failed vg_alarm_lease_round counts by itself. */
void vg_alarm_lease_unreachable(struct vg_alarm_lease *l);

/* This handle's counters (read on the thread that runs the rounds). */
struct vg_alarm_lease_stats {
	uint64_t taken;       /* leases taken from another node (theirs expired) */
	uint64_t held_back;   /* claims not made: another node's row, in a hold */
	int64_t hold_left_ms; /* of the hold after an outage at the last round; 0: none */
};
void vg_alarm_lease_get_stats(const struct vg_alarm_lease *l, struct vg_alarm_lease_stats *out);

/* The clock the hold after an outage is measured on (ms, monotonic);
 * NULL = vg_monotonic_ms. Tests inject their own. */
void vg_alarm_lease_set_clock(struct vg_alarm_lease *l, int64_t (*now_ms)(void));

/* The index in nodes[0..n) of the node that should own alarm_id: the
 * highest rendezvous score. n > 0. Pure, thread-safe. */
size_t vg_alarm_lease_pick(const char *alarm_id, const char *const *nodes, size_t n);

/* Last database error on this handle, for logs. */
const char *vg_alarm_lease_errmsg(const struct vg_alarm_lease *l);

#endif
