/*
 * vigie — usage intervals derived from the meter's timelines
 * (billing/usage.c): what an invoice prices.
 *
 * For a window [from, to) (a UTC month) and one project or all, the
 * loader replays every resource's timeline from its beginning and returns
 * intervals clipped exactly to the window:
 *   compute  an instance running with one flavor; each belongs to a run (a
 *            start to its stop) whose whole length is known once it has
 *            stopped, for the minimum billed run length;
 *   storage  a disk's capacity while it and its instance exist, or, for an
 *            instance whose disks were never reported, its flavor's root
 *            disk while it exists (running or stopped);
 * and the vNICs' bytes per hour. An interval that is still open (no stop
 * or delete yet) ends at the resource's last sighting: the meter never
 * invents usage it has not seen.
 *
 * A vg_bill_usage owns everything it points to. Not thread-safe per object;
 * loads on separate connections may run in parallel.
 */
#ifndef VIGIE_BILL_USAGE_H
#define VIGIE_BILL_USAGE_H

#include <stddef.h>
#include <stdint.h>

#include "vigie/db.h"

#define VG_BILL_NO_INDEX ((size_t)-1)

struct vg_bill_usage_res {
	char *id, *name, *project, *parent;
	int type;          /* enum vg_rtype */
	size_t parent_idx; /* VG_BILL_NO_INDEX if unknown */
};

enum vg_bill_usage_kind {
	VG_BILL_U_COMPUTE = 1,
	VG_BILL_U_STORAGE = 2,
};

struct vg_bill_usage_seg {
	size_t res;               /* the instance (compute, root disk) or disk */
	int kind;                 /* enum vg_bill_usage_kind */
	int64_t start_ms, end_ms; /* within [from, to), start < end */
	/* compute */
	int64_t run_start_ms;
	int64_t run_ms;        /* the whole run's length; -1 while running */
	int run_first;         /* this segment is the first of its run */
	const char *flavor;    /* NULL if unknown (owned by the usage) */
	int64_t vcpus, ram_mb; /* -1 if unknown */
	/* storage */
	int64_t bytes; /* capacity */
	int root;      /* 1: the flavor's root disk (no disk seen) */
};

struct vg_bill_usage_net {
	size_t res;      /* the vNIC */
	int64_t hour_ms; /* start of the UTC hour */
	int64_t tx, rx;  /* bytes sent (egress), received (ingress) */
};

struct vg_bill_usage {
	int64_t from_ms, to_ms;
	size_t nres;
	struct vg_bill_usage_res *res; /* sorted by id */
	size_t nsegs;
	struct vg_bill_usage_seg *segs; /* by resource, then time */
	size_t nnet;
	struct vg_bill_usage_net *net; /* by project, hour, vNIC id */
	/* private */
	char **strs;
	size_t nstrs, capstrs;
};

/* Derive the usage of [from_ms, to_ms) for project (NULL: all projects)
 * from the billing database. *out is overwritten (clear it later).
 * 0, -ENOMEM, or a vg_db error (vigie/db.h). */
int vg_bill_usage_load(struct vg_db *db, int64_t from_ms, int64_t to_ms,
		       const char *project, struct vg_bill_usage *out);

/* Turn u's network bytes (as loaded) into what finalized invoices billed
 * for u's window: each row that changed after its month was finalized is
 * replaced by its pre-image (network_billed, billing schema step 4; zeros
 * for a row that did not exist), for project (NULL: all). For
 * adjustments of network lines (billing/finalize.c). 0, -ENOMEM, or a
 * vg_db error (u unchanged). */
int vg_bill_usage_load_billed_net(struct vg_db *db, const char *project,
				  struct vg_bill_usage *u);

/* Rows per page of the hourly network query (0: the default, 65536); a
 * PostgreSQL result is held whole in memory, so a month's rows come in
 * pages. For tests, which use a tiny page to cross page boundaries. Not
 * thread-safe: set it before loading. */
void vg_bill_usage_set_page(size_t rows);

/* Free what u owns and zero it. Accepts NULL and zeroed. */
void vg_bill_usage_clear(struct vg_bill_usage *u);

/* Index of resource id in u->res, or VG_BILL_NO_INDEX. */
size_t vg_bill_usage_find(const struct vg_bill_usage *u, const char *id);

#endif
