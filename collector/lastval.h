/*
 * vigie — the registry's in-memory state: what registry.db already holds,
 * and the newest last-seen times and values it does not hold yet.
 *
 * The registry used to run one sqlite upsert per resource and one per
 * sample of every batch (59 % of the collector's CPU at 100,000 series,
 * measured). Nearly all of them changed nothing but a last-seen time and a
 * last value. This cache remembers, per resource, a hash of the identity
 * the database holds (type, host, name, parent, project, user, flavor,
 * attributes) and whether it is ended; per (resource, metric), the kind
 * and unit of its row. The registry writes a row only when something other
 * than those times and values changed; the newest ones wait here ("dirty")
 * and are written together every few seconds. Readers overlay them on the
 * rows they read, so the API always shows the newest.
 *
 * Layout: resources in the common hash map by id; each resource has its metrics
 * in an array in the order first seen, so a batch (which lists a
 * resource's samples in the same order every time) finds each metric at
 * its own index without hashing.
 *
 * One cache per data directory, shared by every registry handle of the
 * process: vg_lastval_open returns the same cache for the same key and
 * counts references. Every other call (but vg_lastval_forgets and
 * vg_lastval_is_gone) must be made between vg_lastval_lock
 * and vg_lastval_unlock. Entries are never freed before the cache, so the
 * pointers handed out stay valid while it is open. One thread writes (the
 * receiver's registry handle); others only read, but for the flush, which
 * may run on a thread of its own (registry.c "The flusher"): it takes the
 * dirty values out under the lock and writes its snapshot without it.
 */
#ifndef VIGIE_LASTVAL_H
#define VIGIE_LASTVAL_H

#include <stddef.h>
#include <stdint.h>

struct vg_lastval;
struct vg_lastval_resource;

struct vg_lastval_series {
	struct vg_lastval_resource *res;
	uint8_t dirty;    /* value/time newer than the row */
	int kind;         /* of the row; -1: the row must be written again */
	const char *unit; /* of the row (a catalogue string, not owned) */
	double value;     /* newest (NaN when not finite) */
	int64_t time_ms;
	char name[];
};

struct vg_lastval_resource {
	uint8_t dirty;      /* on the dirty stack */
	uint8_t seen_dirty; /* last_seen newer than the row */
	uint8_t ended;      /* the row is ended (ended_at set) */
	uint8_t gone;       /* forgotten (vg_lastval_forget): read without the
			     * lock by a flush on another thread (atomic) */
	uint64_t ident;     /* identity hash of the row; 0: unknown */
	int64_t first_seen; /* of the row */
	int64_t last_seen;  /* newest */
	struct vg_lastval_series **m;
	uint32_t nm, capm;
	char id[];
};

/* A snapshot of one dirty value to write: m == NULL for the resource's
 * last_seen, else the metric's value with the kind and unit its row had
 * when it was taken (the receiver may change m's while a flush on
 * another thread writes the snapshot). */
struct vg_lastval_row {
	struct vg_lastval_resource *res;
	struct vg_lastval_series *m;
	double value;
	int64_t time_ms;
	int kind;
	const char *unit;
};

/* The cache for key (the data directory), created on first use. NULL when
 * out of memory. */
struct vg_lastval *vg_lastval_open(const char *key);
/* Drop a reference; the last one frees the cache. Accepts NULL. */
void vg_lastval_close(struct vg_lastval *t);

void vg_lastval_lock(struct vg_lastval *t);
void vg_lastval_unlock(struct vg_lastval *t);

/* The resource id; with create, a new one (ident 0) if absent. NULL when
 * absent, or out of memory with create. */
struct vg_lastval_resource *vg_lastval_res(struct vg_lastval *t, const char *id,
					   int create);
/* The metric name of r, looked up first at index hint (the sample's index
 * within its resource; -1 for none); with create, a new one (kind -1) if
 * absent. NULL when absent, or out of memory with create. */
struct vg_lastval_series *vg_lastval_metric(struct vg_lastval *t,
					    struct vg_lastval_resource *r, const char *name,
					    int hint, int create);

/* Note a newer last_seen / value: a last_seen kept if not older than the
 * one held, a value if newer (of two at one time the first stays: the
 * store skips the second as a duplicate), and marked dirty. -ENOMEM (the
 * dirty stack could not grow). */
int vg_lastval_seen(struct vg_lastval *t, struct vg_lastval_resource *r, int64_t time_ms);
int vg_lastval_value(struct vg_lastval *t, struct vg_lastval_series *m,
		     double value, int64_t time_ms);

/* How many rows vg_lastval_take_dirty can return at most right now. */
size_t vg_lastval_dirty_rows(struct vg_lastval *t);
/* Move every dirty value into out (room for vg_lastval_dirty_rows),
 * clearing the marks. Returns how many. */
size_t vg_lastval_take_dirty(struct vg_lastval *t, struct vg_lastval_row *out);
/* Mark the values of rows dirty again (their write failed), but those
 * of a resource forgotten since (its rows were deleted: writing them
 * again would bring them back). -ENOMEM. */
int vg_lastval_redirty(struct vg_lastval *t, const struct vg_lastval_row *rows,
		       size_t n);

size_t vg_lastval_count(struct vg_lastval *t); /* metrics held */

/* How many resources were forgotten since the cache was made. Thread-safe
 * without the lock (atomic): a flush writing a snapshot on another thread
 * compares it before and after to know whether any of its resources may
 * have been forgotten meanwhile (then it reads each one's gone flag with
 * vg_lastval_is_gone, also without the lock). */
uint64_t vg_lastval_forgets(struct vg_lastval *t);
int vg_lastval_is_gone(const struct vg_lastval_resource *r);

/* Forget resource id: its rows were deleted. The entry leaves the map (a
 * later report makes a new one, whose rows are written again) and its
 * dirty marks are cleared, so no flush writes a row back; the entry
 * itself is kept until the cache is freed (snapshots may point into it),
 * marked gone. */
void vg_lastval_forget(struct vg_lastval *t, const char *id);

#endif
