/*
 * rrd_view.h — what an rrdcached daemon shows of one series file: its INFO
 * and, for every archive, a FETCH the daemon answers from that archive.
 * Taken before and after an operation on the file and compared, it proves
 * through the daemon that nothing stored changed: `storage move` (every
 * field and row equal, collector/storage_move.c) and `storage convert` on
 * the rrdcached backend (the archives both layouts share, collector/
 * backend_rrdcached.c). rrdcached prints FETCH values with %0.17e, which
 * gives back the exact double, so the parsed values are the stored bits.
 *
 * Not thread-safe on one client (as vigie/rrdcached.h); no state.
 */
#ifndef VIGIE_COLLECTOR_RRD_VIEW_H
#define VIGIE_COLLECTOR_RRD_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "vigie/config.h"
#include "vigie/rrdcached.h"

#define VG_RRD_VIEW_MAX 96 /* FETCH answers: 32 archives x 3 functions */

/* One archive as INFO describes it, and the FETCH meant to read it. */
struct vg_rrd_view_rra {
	size_t index;      /* rra[index] in INFO */
	char cf[16];       /* "AVERAGE", "MIN", "MAX" */
	long pdp, rows;    /* pdp_per_row, rows */
	int64_t res_s;     /* pdp * step */
	int64_t cal_start; /* oldest time it covers (rows end after it) */
};

struct vg_rrd_view {
	struct vg_rrdcd_info info;
	int64_t step, last_update;
	struct vg_rrd_view_rra rra[VG_RRD_VIEW_MAX];
	struct vg_rrdcd_fetch f[VG_RRD_VIEW_MAX]; /* f[i] reads rra[i] */
	size_t nf;
};

/* INFO of NAME through C, then for every archive one FETCH that the
 * daemon answers from it: rrdcached's FETCH takes no resolution and,
 * like rrd_fetch at the file's step, answers from the finest archive of
 * the function covering the whole range, so the range starts where the
 * archive starts, before the start of every finer archive of the same
 * function (an archive that a finer one covers as far back is read from
 * before both, where the daemon picks the one covering the most; the
 * answer's step says which it was). V is filled
 * (free with vg_rrd_view_free, also on error). 0, -ENOENT (no such file
 * on that daemon), or -errno with why filled. */
int vg_rrd_view_take(struct vg_rrdcd *c, const char *name, struct vg_rrd_view *v, char *why,
		     size_t whylen);

void vg_rrd_view_free(struct vg_rrd_view *v);

/* Equal views: INFO key by key but the file name, every FETCH answer in
 * full, values bit for bit. 1, or 0 with what differs in why. */
int vg_rrd_view_equal(const struct vg_rrd_view *a, const struct vg_rrd_view *b, char *why,
		      size_t whylen);

/* After a conversion to the tiers archives[0..n) at STEP_S (`storage
 * convert`): 1 when AFTER has exactly those tiers (each with AVERAGE, MIN
 * and MAX, rows = retention / resolution, at least 1: the daemon reads
 * the converted file), INFO's fields outside the archives are BEFORE's
 * (but the file name and header_size), and every archive of BEFORE that
 * AFTER has too (same function and pdp_per_row) kept its definition and
 * consolidation state (INFO) and every row both hold, bit for bit (the
 * rows both layouts retain, read through the daemon from that archive);
 * else 0 with what differs in why. */
int vg_rrd_view_kept(const struct vg_rrd_view *before, const struct vg_rrd_view *after,
		     const struct vg_archive *archives, size_t n, uint32_t step_s, char *why,
		     size_t whylen);

#endif
