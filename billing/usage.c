/*
 * usage.c — usage intervals for a window, derived from the timelines the
 * meter keeps (bill_usage.h).
 *
 * Design: load the window's resources (sorted by id, so vNICs, disks and
 * parents are found by binary search) and all their transitions in one
 * ordered query; walk each instance's timeline from its beginning with a
 * small state machine (exists, running, flavor) emitting compute intervals
 * (split at every flavor change and closed at every stop or deletion, all
 * intervals of a run sharing the run's start and final length) and
 * existence pieces (split at flavor changes, for the root-disk fallback);
 * walk each disk's timeline emitting capacity pieces, intersected with its
 * instance's existence. Every interval is finally clipped to [from, to),
 * which is what splits usage exactly at 00:00:00 UTC on the 1st.
 *
 * Invariants: an interval never extends past the last time its resource
 * was seen unless a transition closed it later (events carry their own
 * times); a run of zero length (start and stop at the same instant) is
 * kept as a zero-length interval so the minimum run length still applies.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/array.h"
#include "vigie/batch.h"
#include "vigie/bill_meter.h"
#include "vigie/bill_ratecard.h"
#include "vigie/bill_usage.h"

struct tr {
	size_t res;
	int64_t t;
	int kind;
	const char *flavor;
	int64_t vcpus, ram_mb, disk_gb, cap;
};

struct span {
	int64_t a, b;
};

struct fl {
	const char *name;
	int64_t vcpus, ram_mb, disk_gb;
};

/* Loader state. */
struct ld {
	struct vg_bill_usage *u;
	int64_t *last_seen; /* per resource */
	int *has_disks;
	struct tr *t;
	size_t nt, capt;
	size_t *tb, *te;    /* per resource: [tb, te) in t */
	struct span *spans; /* existence spans of instances */
	size_t nspans, capspans;
	size_t *sb, *se; /* per resource: [sb, se) in spans */
	size_t capsegs;
};

static const char *keep(struct vg_bill_usage *u, const char *s)
{
	if (!s)
		return NULL;
	for (size_t i = u->nstrs; i > 0 && i + 8 > u->nstrs; i--)
		if (!strcmp(u->strs[i - 1], s))
			return u->strs[i - 1];
	if (vg_array_grow((void **)&u->strs, &u->capstrs, u->nstrs + 1, sizeof(char *)))
		return NULL;
	char *d = strdup(s);
	if (d)
		u->strs[u->nstrs++] = d;
	return d;
}

size_t vg_bill_usage_find(const struct vg_bill_usage *u, const char *id)
{
	size_t lo = 0, hi = u->nres;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(u->res[mid].id, id);
		if (!c)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return VG_BILL_NO_INDEX;
}

void vg_bill_usage_clear(struct vg_bill_usage *u)
{
	if (!u)
		return;
	for (size_t i = 0; i < u->nres; i++) {
		free(u->res[i].id);
		free(u->res[i].name);
		free(u->res[i].project);
		free(u->res[i].parent);
	}
	for (size_t i = 0; i < u->nstrs; i++)
		free(u->strs[i]);
	free(u->strs);
	free(u->res);
	free(u->segs);
	free(u->net);
	memset(u, 0, sizeof(*u));
}

static char *dupcol(struct vg_db_stmt *s, int i)
{
	const char *t = vg_db_column_text(s, i);
	return t ? strdup(t) : NULL;
}

static int64_t optcol(struct vg_db_stmt *s, int i)
{
	return vg_db_column_is_null(s, i) ? -1
					  : vg_db_column_int64(s, i);
}

static int prep(struct vg_db *db, const char *sql, const char *project,
		struct vg_db_stmt **s)
{
	int rc = vg_db_prepare(db, sql, s);
	if (rc)
		return rc;
	if (project)
		vg_db_bind_text(*s, 1, project);
	return 0;
}

/* A resource's last sighting is the later of its own column and its
 * host's sightings generation's time, if it belongs to one (billing/db.c,
 * "sightings"; billing/meter.c). */
#define USAGE_RES_COLS                                                       \
	"r.id,r.type,r.parent,r.project,r.name,CASE WHEN s.time_ms>"         \
	"r.last_seen_ms THEN s.time_ms ELSE r.last_seen_ms END,r.has_disks " \
	"FROM resources r LEFT JOIN sightings s ON s.host=r.host AND s.gen=" \
	"r.sight_gen"

static int load_resources(struct vg_db *db, const char *project, struct ld *L)
{
	struct vg_bill_usage *u = L->u;
	struct vg_db_stmt *s;
	size_t cap = 0, capls = 0;
	int rc;

	rc = prep(db,
		  project ? "SELECT " USAGE_RES_COLS " WHERE r.project=?1 "
			    "ORDER BY r.id"
			  : "SELECT " USAGE_RES_COLS " ORDER BY r.id",
		  project, &s);
	if (rc)
		return rc;
	while ((rc = vg_db_step(s)) == 1) {
		if (vg_array_grow((void **)&u->res, &cap, u->nres + 1, sizeof(*u->res)) ||
		    vg_array_grow((void **)&L->last_seen, &capls, u->nres + 1, sizeof(int64_t))) {
			vg_db_reset(s);
			return -ENOMEM;
		}
		L->has_disks = realloc(L->has_disks, capls * sizeof(int));
		if (!L->has_disks) {
			vg_db_reset(s);
			return -ENOMEM;
		}
		struct vg_bill_usage_res *r = &u->res[u->nres];
		memset(r, 0, sizeof(*r));
		r->id = dupcol(s, 0);
		r->type = (int)vg_db_column_int64(s, 1);
		r->parent = dupcol(s, 2);
		r->project = dupcol(s, 3);
		r->name = dupcol(s, 4);
		r->parent_idx = VG_BILL_NO_INDEX;
		L->last_seen[u->nres] = vg_db_column_int64(s, 5);
		L->has_disks[u->nres] = (int)vg_db_column_int64(s, 6);
		u->nres++;
		if (!r->id || !r->project) {
			vg_db_reset(s);
			return -ENOMEM;
		}
	}
	vg_db_reset(s);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < u->nres; i++)
		if (u->res[i].parent)
			u->res[i].parent_idx = vg_bill_usage_find(u, u->res[i].parent);
	return 0;
}

static int load_transitions(struct vg_db *db, const char *project, struct ld *L)
{
	struct vg_bill_usage *u = L->u;
	struct vg_db_stmt *s;
	size_t cur = VG_BILL_NO_INDEX;
	const char *last_id = NULL;
	char *last_buf = NULL;
	int rc;

	rc = prep(db,
		  project ? "SELECT t.resource,t.time_ms,t.kind,t.flavor,t.vcpus,"
			    "t.ram_mb,t.disk_gb,t.capacity FROM transitions t "
			    "JOIN resources r ON r.id=t.resource WHERE r.project=?1 "
			    "ORDER BY t.resource,t.time_ms,t.kind"
			  : "SELECT resource,time_ms,kind,flavor,vcpus,ram_mb,"
			    "disk_gb,capacity FROM transitions "
			    "ORDER BY resource,time_ms,kind",
		  project, &s);
	if (rc)
		return rc;
	L->tb = calloc(u->nres + 1, sizeof(size_t));
	L->te = calloc(u->nres + 1, sizeof(size_t));
	if (!L->tb || !L->te) {
		vg_db_reset(s);
		return -ENOMEM;
	}
	while ((rc = vg_db_step(s)) == 1) {
		const char *id = (const char *)vg_db_column_text(s, 0);
		if (!id)
			continue;
		if (!last_id || strcmp(last_id, id)) {
			free(last_buf);
			last_buf = strdup(id);
			last_id = last_buf;
			cur = vg_bill_usage_find(u, id);
			if (cur != VG_BILL_NO_INDEX)
				L->tb[cur] = L->te[cur] = L->nt;
		}
		if (cur == VG_BILL_NO_INDEX)
			continue;
		if (vg_array_grow((void **)&L->t, &L->capt, L->nt + 1, sizeof(*L->t))) {
			rc = -ENOMEM;
			break;
		}
		struct tr *t = &L->t[L->nt++];
		t->res = cur;
		t->t = vg_db_column_int64(s, 1);
		t->kind = (int)vg_db_column_int64(s, 2);
		t->flavor = keep(u, (const char *)vg_db_column_text(s, 3));
		t->vcpus = optcol(s, 4);
		t->ram_mb = optcol(s, 5);
		t->disk_gb = optcol(s, 6);
		t->cap = optcol(s, 7);
		L->te[cur] = L->nt;
	}
	free(last_buf);
	vg_db_reset(s);
	return rc;
}

/* Append an unclipped segment, clipping it to the window. */
static int emit(struct ld *L, const struct vg_bill_usage_seg *seg)
{
	struct vg_bill_usage *u = L->u;
	struct vg_bill_usage_seg c = *seg;

	if (c.start_ms == c.end_ms) { /* a zero-length run */
		if (c.start_ms < u->from_ms || c.start_ms >= u->to_ms)
			return 0;
	} else {
		if (c.end_ms <= u->from_ms || c.start_ms >= u->to_ms)
			return 0;
		if (c.start_ms < u->from_ms) {
			c.start_ms = u->from_ms;
			c.run_first = 0;
		}
		if (c.end_ms > u->to_ms)
			c.end_ms = u->to_ms;
	}
	if (vg_array_grow((void **)&u->segs, &L->capsegs, u->nsegs + 1, sizeof(*u->segs)))
		return -ENOMEM;
	u->segs[u->nsegs++] = c;
	return 0;
}

static int add_span(struct ld *L, int64_t a, int64_t b)
{
	if (vg_array_grow((void **)&L->spans, &L->capspans, L->nspans + 1, sizeof(*L->spans)))
		return -ENOMEM;
	L->spans[L->nspans++] = (struct span){a, b};
	return 0;
}

/* The instance's compute intervals of one run, waiting for the run's end. */
struct runbuf {
	struct vg_bill_usage_seg *s;
	size_t n, cap;
};

static int run_add(struct runbuf *rb, const struct vg_bill_usage_seg *seg)
{
	if (vg_array_grow((void **)&rb->s, &rb->cap, rb->n + 1, sizeof(*rb->s)))
		return -ENOMEM;
	rb->s[rb->n++] = *seg;
	return 0;
}

static int run_flush(struct ld *L, struct runbuf *rb, int64_t run_ms)
{
	int rc = 0;
	for (size_t i = 0; i < rb->n && !rc; i++) {
		rb->s[i].run_ms = run_ms;
		rc = emit(L, &rb->s[i]);
	}
	rb->n = 0;
	return rc;
}

static int fl_merge(struct fl *f, const struct tr *t)
{
	struct fl o = *f;
	if (t->flavor)
		f->name = t->flavor;
	if (t->vcpus >= 0)
		f->vcpus = t->vcpus;
	if (t->ram_mb >= 0)
		f->ram_mb = t->ram_mb;
	if (t->disk_gb >= 0)
		f->disk_gb = t->disk_gb;
	return o.name != f->name || o.vcpus != f->vcpus || o.ram_mb != f->ram_mb ||
	       o.disk_gb != f->disk_gb;
}

struct iw { /* instance walk state */
	int exists, running;
	struct fl f;
	int64_t exist_start, piece_start, run_start, seg_start;
};

static int root_piece(struct ld *L, size_t ri, const struct iw *w, int64_t end)
{
	if (L->has_disks[ri] || w->f.disk_gb <= 0 || end <= w->piece_start)
		return 0;
	struct vg_bill_usage_seg s = {0};
	s.res = ri;
	s.kind = VG_BILL_U_STORAGE;
	s.start_ms = w->piece_start;
	s.end_ms = end;
	s.bytes = w->f.disk_gb * VG_BILL_GIB;
	s.root = 1;
	s.run_ms = -1;
	return emit(L, &s);
}

static int compute_piece(struct runbuf *rb, size_t ri, const struct iw *w,
			 int64_t end, int zero_ok)
{
	if (end < w->seg_start || (end == w->seg_start && !zero_ok))
		return 0;
	struct vg_bill_usage_seg s = {0};
	s.res = ri;
	s.kind = VG_BILL_U_COMPUTE;
	s.start_ms = w->seg_start;
	s.end_ms = end;
	s.run_start_ms = w->run_start;
	s.run_first = w->seg_start == w->run_start;
	s.flavor = w->f.name;
	s.vcpus = w->f.vcpus;
	s.ram_mb = w->f.ram_mb;
	return run_add(rb, &s);
}

static int walk_instance(struct ld *L, size_t ri, struct runbuf *rb)
{
	struct iw w = {0};
	int rc = 0;

	w.f.vcpus = w.f.ram_mb = w.f.disk_gb = -1;
	L->sb[ri] = L->nspans;
	for (size_t i = L->tb[ri]; i < L->te[ri] && !rc; i++) {
		/* A STOP and a START at the same instant (sorted STOP first):
		 * a restart if it was running; if not, a run seen by a single
		 * poll (started at its first sighting, stopped at its last:
		 * the same one), so take the START first and the run ends
		 * there instead of lasting until the next stop. */
		if (L->t[i].kind == VG_BILL_T_STOP && !w.running)
			for (size_t j = i + 1; j < L->te[ri] && L->t[j].t == L->t[i].t; j++)
				if (L->t[j].kind == VG_BILL_T_START) {
					struct tr x = L->t[i];
					L->t[i] = L->t[j];
					L->t[j] = x;
					break;
				}
		const struct tr *t = &L->t[i];
		int64_t T = t->t;
		struct fl nf = w.f;
		int fch = (t->kind == VG_BILL_T_CREATE || t->kind == VG_BILL_T_START ||
			   t->kind == VG_BILL_T_FLAVOR) &&
			  fl_merge(&nf, t);

		if (fch) { /* close the pieces with the old flavor */
			if (w.running && T > w.seg_start) {
				if ((rc = compute_piece(rb, ri, &w, T, 0)))
					break;
				w.seg_start = T;
			}
			if (w.exists && T > w.piece_start) {
				if ((rc = root_piece(L, ri, &w, T)))
					break;
				w.piece_start = T;
			}
			w.f = nf;
		}
		switch (t->kind) {
		case VG_BILL_T_CREATE:
		case VG_BILL_T_START:
			if (!w.exists) {
				w.exists = 1;
				w.exist_start = w.piece_start = T;
			}
			if (t->kind == VG_BILL_T_START && !w.running) {
				w.running = 1;
				w.run_start = w.seg_start = T;
			}
			break;
		case VG_BILL_T_STOP:
		case VG_BILL_T_DELETE:
			if (w.running) {
				if ((rc = compute_piece(rb, ri, &w, T, 1)) ||
				    (rc = run_flush(L, rb, T - w.run_start)))
					break;
				w.running = 0;
			}
			if (t->kind == VG_BILL_T_DELETE && w.exists) {
				if ((rc = root_piece(L, ri, &w, T)) ||
				    (rc = add_span(L, w.exist_start, T)))
					break;
				w.exists = 0;
			}
			break;
		}
	}
	if (!rc && w.running) {
		int64_t end = L->last_seen[ri] > w.seg_start ? L->last_seen[ri]
							     : w.seg_start;
		if (!(rc = compute_piece(rb, ri, &w, end, 1)))
			rc = run_flush(L, rb, -1);
	}
	if (!rc && w.exists) {
		int64_t end = L->last_seen[ri] > w.piece_start ? L->last_seen[ri]
							       : w.piece_start;
		if (!(rc = root_piece(L, ri, &w, end)))
			rc = add_span(L, w.exist_start, end);
	}
	L->se[ri] = L->nspans;
	rb->n = 0;
	return rc;
}

/* Emit [a, b) of a disk with cap bytes, within its instance's life. */
static int disk_piece(struct ld *L, size_t di, int64_t a, int64_t b, int64_t cap)
{
	size_t p = L->u->res[di].parent_idx;
	struct vg_bill_usage_seg s = {0};
	int rc;

	if (cap <= 0 || b <= a)
		return 0;
	s.res = di;
	s.kind = VG_BILL_U_STORAGE;
	s.bytes = cap;
	s.run_ms = -1;
	if (p == VG_BILL_NO_INDEX || L->sb[p] == L->se[p]) {
		s.start_ms = a;
		s.end_ms = b;
		return emit(L, &s);
	}
	for (size_t k = L->sb[p]; k < L->se[p]; k++) {
		int64_t x = a > L->spans[k].a ? a : L->spans[k].a;
		int64_t y = b < L->spans[k].b ? b : L->spans[k].b;
		if (x >= y)
			continue;
		s.start_ms = x;
		s.end_ms = y;
		if ((rc = emit(L, &s)))
			return rc;
	}
	return 0;
}

static int walk_disk(struct ld *L, size_t di)
{
	int exists = 0, rc = 0;
	int64_t a = 0, cap = -1;

	for (size_t i = L->tb[di]; i < L->te[di] && !rc; i++) {
		const struct tr *t = &L->t[i];
		switch (t->kind) {
		case VG_BILL_T_CREATE:
			if (!exists) {
				exists = 1;
				a = t->t;
			}
			if (t->cap >= 0)
				cap = t->cap;
			break;
		case VG_BILL_T_CAPACITY:
			if (exists) {
				rc = disk_piece(L, di, a, t->t, cap);
				a = t->t;
			}
			if (t->cap >= 0)
				cap = t->cap;
			break;
		case VG_BILL_T_DELETE:
			if (exists)
				rc = disk_piece(L, di, a, t->t, cap);
			exists = 0;
			break;
		}
	}
	if (!rc && exists)
		rc = disk_piece(L, di, a,
				L->last_seen[di] > a ? L->last_seen[di] : a, cap);
	return rc;
}

/* Rows per page of the network query: a PostgreSQL result is read whole
 * (vigie/db.h), and a month of a large cloud is millions of hourly rows,
 * so they come in pages of this many, each after the last key of the one
 * before (the primary key's order, which both engines walk by index). */
#define NET_PAGE 65536
static size_t g_net_page = NET_PAGE;

void vg_bill_usage_set_page(size_t rows)
{
	g_net_page = rows ? rows : NET_PAGE;
}

/* The rows of table ("network", or "network_billed": what finalized
 * invoices billed) in u's window, appended to u->net. */
static int load_network(struct vg_db *db, const char *table, const char *project,
			struct vg_bill_usage *u)
{
	char sql[400];
	struct vg_db_stmt *s;
	size_t cap = u->nnet, got;
	char *last_proj = NULL, *last_nic = NULL;
	int64_t last_hour = 0;
	int rc, first = 1;

	do {
		/* ?1, ?2 the window, ?3 the page size, ?4 the project (or the
		 * last key's), ?5 and ?6 the rest of the last key */
		if (first)
			snprintf(sql, sizeof(sql), project ? "SELECT nic,hour_ms,tx,rx,project FROM %s WHERE project=?4 "
							     "AND hour_ms>=?1 AND hour_ms<?2 ORDER BY hour_ms,nic LIMIT ?3"
							   : "SELECT nic,hour_ms,tx,rx,project FROM %s WHERE hour_ms>=?1 "
							     "AND hour_ms<?2 ORDER BY project,hour_ms,nic LIMIT ?3",
				 table);
		else
			snprintf(sql, sizeof(sql), project ? "SELECT nic,hour_ms,tx,rx,project FROM %s WHERE project=?4 "
							     "AND hour_ms>=?1 AND hour_ms<?2 AND (hour_ms,nic)>(?5,?6) "
							     "ORDER BY hour_ms,nic LIMIT ?3"
							   : "SELECT nic,hour_ms,tx,rx,project FROM %s WHERE hour_ms>=?1 "
							     "AND hour_ms<?2 AND (project,hour_ms,nic)>(?4,?5,?6) "
							     "ORDER BY project,hour_ms,nic LIMIT ?3",
				 table);
		rc = vg_db_prepare(db, sql, &s);
		if (rc)
			break;
		vg_db_bind_int64(s, 1, u->from_ms);
		vg_db_bind_int64(s, 2, u->to_ms);
		vg_db_bind_int64(s, 3, (int64_t)g_net_page);
		if (project)
			vg_db_bind_text(s, 4, project);
		if (!first) {
			if (!project)
				vg_db_bind_text(s, 4, last_proj);
			vg_db_bind_int64(s, 5, last_hour);
			vg_db_bind_text(s, 6, last_nic);
		}
		first = 0;
		got = 0;
		while ((rc = vg_db_step(s)) == 1) {
			const char *nic = vg_db_column_text(s, 0);
			const char *proj = vg_db_column_text(s, 4);
			got++;
			if (got == g_net_page) { /* the next page starts after this key */
				free(last_proj);
				free(last_nic);
				last_proj = strdup(proj ? proj : "");
				last_nic = strdup(nic ? nic : "");
				last_hour = vg_db_column_int64(s, 1);
				if (!last_proj || !last_nic) {
					rc = -ENOMEM;
					break;
				}
			}
			size_t ri = nic ? vg_bill_usage_find(u, nic) : VG_BILL_NO_INDEX;
			if (ri == VG_BILL_NO_INDEX)
				continue;
			if (vg_array_grow((void **)&u->net, &cap, u->nnet + 1, sizeof(*u->net))) {
				rc = -ENOMEM;
				break;
			}
			struct vg_bill_usage_net *n = &u->net[u->nnet++];
			n->res = ri;
			n->hour_ms = vg_db_column_int64(s, 1);
			n->tx = vg_db_column_int64(s, 2);
			n->rx = vg_db_column_int64(s, 3);
		}
		vg_db_reset(s);
	} while (rc == 0 && got == g_net_page);
	free(last_proj);
	free(last_nic);
	return rc;
}

/* Row order of the loader: project, hour, vNIC id (resource indexes
 * follow ids). */
static int net_cmp(const struct vg_bill_usage *u, const struct vg_bill_usage_net *x,
		   const struct vg_bill_usage_net *y)
{
	int c = strcmp(u->res[x->res].project, u->res[y->res].project);
	if (c)
		return c;
	if (x->hour_ms != y->hour_ms)
		return x->hour_ms < y->hour_ms ? -1 : 1;
	return x->res < y->res ? -1 : x->res > y->res;
}

int vg_bill_usage_load_billed_net(struct vg_db *db, const char *project,
				  struct vg_bill_usage *u)
{
	struct vg_bill_usage pre = {0};
	struct vg_bill_usage_net *out;
	size_t i = 0, j = 0, k = 0;
	int rc;

	/* the pre-images, found by the same resources */
	pre.from_ms = u->from_ms;
	pre.to_ms = u->to_ms;
	pre.res = u->res;
	pre.nres = u->nres;
	rc = load_network(db, "network_billed", project, &pre);
	if (rc || !pre.nnet) {
		free(pre.net);
		return rc;
	}
	if (!(out = malloc((u->nnet + pre.nnet) * sizeof(*out)))) {
		free(pre.net);
		return -ENOMEM;
	}
	/* merge: a row with a pre-image is billed as the pre-image */
	while (i < u->nnet || j < pre.nnet) {
		int c = i == u->nnet ? 1 : j == pre.nnet ? -1
							 : net_cmp(u, &u->net[i], &pre.net[j]);
		if (c < 0) {
			out[k++] = u->net[i++];
		} else {
			out[k++] = pre.net[j++];
			i += c == 0;
		}
	}
	free(pre.net);
	free(u->net);
	u->net = out;
	u->nnet = k;
	return 0;
}

int vg_bill_usage_load(struct vg_db *db, int64_t from_ms, int64_t to_ms,
		       const char *project, struct vg_bill_usage *out)
{
	struct ld L = {0};
	struct runbuf rb = {0};
	int rc;

	memset(out, 0, sizeof(*out));
	out->from_ms = from_ms;
	out->to_ms = to_ms;
	L.u = out;
	if ((rc = load_resources(db, project, &L)) ||
	    (rc = load_transitions(db, project, &L)))
		goto out;
	L.sb = calloc(out->nres + 1, sizeof(size_t));
	L.se = calloc(out->nres + 1, sizeof(size_t));
	if (!L.sb || !L.se) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < out->nres && !rc; i++)
		if (out->res[i].type == VG_RT_INSTANCE)
			rc = walk_instance(&L, i, &rb);
	for (size_t i = 0; i < out->nres && !rc; i++)
		if (out->res[i].type == VG_RT_DISK)
			rc = walk_disk(&L, i);
	if (!rc)
		rc = load_network(db, "network", project, out);
out:
	free(rb.s);
	free(L.last_seen);
	free(L.has_disks);
	free(L.t);
	free(L.tb);
	free(L.te);
	free(L.spans);
	free(L.sb);
	free(L.se);
	if (rc)
		vg_bill_usage_clear(out);
	return rc;
}
