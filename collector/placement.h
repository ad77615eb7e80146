/*
 * placement.h — the shared placement record (private to the collector
 * core): which rrdcached daemon holds each series, kept in the shared
 * PostgreSQL state (vigie_storage.series_owners) when several collectors
 * share their storage daemons (collector/placement.c says why).
 *
 * Names are the backend's series names ("<type>/<id>/<metric>.rrd",
 * relative to the daemons' -b), addresses the [storage] daemons strings.
 *
 * Errors: -ENOTCONN when the database cannot be reached (now, or within
 * the back-off after a failure: a call then fails at once, without a
 * connection attempt), -ENOMEM, -EIO (anything else). Every failure is
 * counted (vg_placement_stats).
 *
 * Thread-safety: every function may be called from any thread; calls on
 * one record are serialised (one connection, one lock). Callbacks
 * (conflict, winner) run under that lock: they may take locks of their
 * own, never call the record. Never call with a
 * lock a hot path needs: each call may wait for the database (at most its
 * connect_timeout when it is unreachable).
 */
#ifndef VIGIE_COLLECTOR_PLACEMENT_H
#define VIGIE_COLLECTOR_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

#include "vigie/store.h"

struct vg_placement;

/* Whether URL ([state] url) names a PostgreSQL database: only then is the
 * placement record shared (sqlite state is one collector's). */
int vg_placement_wanted(const char *url);

/* Open the record on URL (PostgreSQL). Tries to connect and migrate now;
 * a database unreachable is not an error (the record connects at a later
 * call), a schema newer than ours or a bad URL is. 0 or -errno with err;
 * free with vg_placement_close. */
int vg_placement_open(const char *url, struct vg_placement **out, char *err, size_t errlen);

/* Accepts NULL. */
void vg_placement_close(struct vg_placement *p);

/* The daemon recorded for NAME: 1 with its address in addr, 0 when none
 * is recorded, or -errno. One round trip. */
int vg_placement_lookup(struct vg_placement *p, const char *name, char *addr, size_t addrlen);

/* Record NAME on ADDR unless a daemon is already recorded for it, then
 * read the record: the winner's address in winner (ADDR, or the address
 * another collector recorded first). Two collectors claiming one name at
 * once get the same winner. 0 or -errno. */
int vg_placement_claim(struct vg_placement *p, const char *name, const char *addr,
		       char *winner, size_t winnerlen);

/* Record names[0..n) on ADDR, replacing what was recorded (a verified
 * move), in one transaction: all or none. 0 or -errno. */
int vg_placement_set(struct vg_placement *p, const char *const *names, size_t n,
		     const char *addr);

/* Delete NAME's record if it names ADDR (a deleted series). 0 (also when
 * there was none) or -errno. */
int vg_placement_forget(struct vg_placement *p, const char *name, const char *addr);

/* The recorded address of a name (vg_placement_claim_many). */
typedef void vg_placement_winner_fn(void *ctx, const char *name, const char *recorded);

/* vg_placement_claim for many names at once: record every names[i] on
 * addrs[i] unless recorded already, then call winner() with the recorded
 * address of each. A few hundred names per two round trips and one
 * commit (a new host's series are claimed together, not one commit
 * each). 0 or -errno (names without a winner() call are not claimed for
 * sure). */
int vg_placement_claim_many(struct vg_placement *p, const char *const *names,
			    const char *const *addrs, size_t n, vg_placement_winner_fn *winner,
			    void *ctx);

/* A recorded address that differs from the caller's (vg_placement_upload). */
typedef void vg_placement_conflict_fn(void *ctx, const char *name, const char *mine,
				      const char *recorded);

/* Record every names[i] on addrs[i] that has no record yet, and call
 * conflict() for each name recorded on another address (the record
 * wins). A few hundred names per round trip. 0 or -errno (some were not
 * uploaded). */
int vg_placement_upload(struct vg_placement *p, const char *const *names,
			const char *const *addrs, size_t n, vg_placement_conflict_fn *conflict,
			void *ctx);

/* One address of the record and how many names it holds. */
typedef void vg_placement_address_fn(void *ctx, const char *addr, uint64_t names);

/* Call each(ctx, address, names) for every address the record names (one
 * GROUP BY over the record: for `vigie-collector storage stats`, not for
 * a hot path). 0 or -errno (the database does not answer). */
int vg_placement_addresses(struct vg_placement *p, vg_placement_address_fn *each, void *ctx);

/* Copy the counters (struct vg_store_placement, vigie/store.h; shared is
 * 1). Accepts NULL (all zero). */
void vg_placement_get_stats(struct vg_placement *p, struct vg_store_placement *out);

#endif
