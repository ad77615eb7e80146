/*
 * vigie — the lifecycle of ended series (collector/lifecycle.c).
 *
 * A resource that ended more than [storage] keep_ended ago (default 90
 * days; 0 keeps everything forever) has its series deleted through the
 * store (vg_store_remove_series: the backend that holds them, never while
 * a flush, a read or a create of one is in flight) and then its registry
 * rows (vg_registry_remove_ended), so the API answers 404 for it. Billing
 * keeps its own records: invoices do not change. Files first, rows second:
 * a crash in between leaves rows whose series are gone, and the next sweep
 * finishes the job (a missing series counts as removed).
 *
 * The sweep runs on its own thread (vg_lifecycle_start), never on the
 * receiver's path: at start and then every interval. Tests call
 * vg_lifecycle_sweep directly with the "now" they want.
 */
#ifndef VIGIE_LIFECYCLE_H
#define VIGIE_LIFECYCLE_H

#include <stddef.h>
#include <stdint.h>

#include "vigie/registry.h"
#include "vigie/store.h"

struct vg_lifecycle_result {
	uint64_t resources_removed; /* rows deleted */
	uint64_t series_removed;    /* series the backend deleted */
	uint64_t series_missing;    /* already gone (an earlier sweep) */
	uint64_t errors;            /* series or rows that could not go */
	uint64_t resources_waiting; /* ended, not yet keep_ended ago */
	uint64_t series_waiting;    /* their series */
};

/* One sweep as if the time were now_ms: every resource ended at or before
 * now_ms - keep_ms loses its series and rows. keep_ms <= 0: nothing is
 * deleted (waiting figures are still counted). res is filled (zeroed
 * first). 0, or the first -errno that stopped the walk (err says why);
 * per-resource failures are counted in res->errors and the walk goes on.
 * reg: a handle of the calling thread. */
int vg_lifecycle_sweep(struct vg_registry *reg, struct vg_store *s, int64_t now_ms,
		       int64_t keep_ms, struct vg_lifecycle_result *res,
		       char *err, size_t errlen);

struct vg_lifecycle;

/* Start the sweeping thread: its own registry handle on data_dir, a sweep
 * now and every interval_ms, each logged (info when it deleted something,
 * error when it failed). keep_ms <= 0: no thread, *out = NULL, 0.
 * 0 or -errno with a message in err. */
int vg_lifecycle_start(const char *data_dir, const char *state_url,
		       struct vg_store *s, int64_t keep_ms,
		       int64_t interval_ms, struct vg_lifecycle **out, char *err,
		       size_t errlen);
/* Totals since start (sums of every sweep) and the last sweep's waiting
 * figures. Thread-safe; lc may be NULL (zeros). */
void vg_lifecycle_get_stats(struct vg_lifecycle *lc, struct vg_lifecycle_result *out);
/* What the store held at the last sweep (vg_store_usage, with since_s a
 * week before it) and when (*at_ms, 0: not yet). -ENOTSUP when the
 * engine cannot tell; lc may be NULL (-ENOENT). Thread-safe. */
int vg_lifecycle_get_usage(struct vg_lifecycle *lc, struct vg_store_usage *out,
			   int64_t *at_ms);
/* Stop the thread (a sweep in progress finishes its resource) and free.
 * Accepts NULL. */
void vg_lifecycle_stop(struct vg_lifecycle *lc);

#endif
