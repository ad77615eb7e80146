/*
 * finalize.c — drafts, finalization and adjustments (bill_invoice.h).
 *
 * Design. A month is a draft until `finalize` freezes it: every project's
 * invoice is computed, numbered "YYYY-MM-NNNN" in project order, rendered
 * to JSON and stored with the month's mark in one transaction. From then
 * on that stored document IS the invoice: JSON answers return its bytes
 * and CSV/HTML are rendered from it, so re-rendering is byte-identical
 * whatever arrives later.
 *
 * Late usage. Usage that reaches the database after its month was
 * finalized (an agent's spool drained late, an exact event refining an
 * inferred stop) changes what that month would compute to. A draft of
 * month M looks back over the unbroken run of finalized months before it
 * (M-1, M-2, ... while finalized, at most 24): for each such month F and
 * each line key it recomputes F, subtracts what F's frozen invoice and the
 * adjustments already frozen on invoices after F billed for that key, and
 * puts any difference on M as an adjustment line naming F. Finalizing M
 * freezes those adjustments too, so a difference is billed exactly once.
 * An adjustment line's span is the slice that changed: every line keeps
 * its usage pieces (invoice.c), the frozen document and each adjustment
 * store them, and the recomputed pieces are compared with the newest of
 * those, at the rate of use of each instant.
 *
 * Invariants: a finalized month's stored documents are never rewritten;
 * adjustment amounts are differences of rounded amounts, so they need no
 * rounding of their own.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/bill_invoice.h"
#include "vigie/bill_meter.h"
#include "vigie/clock.h"

#include "billing/nethours.h"

#define MAX_LOOKBACK 24

int vg_bill_is_final(struct vg_db *db, struct vg_bill_month m)
{
	struct vg_db_stmt *s;
	char ms[16];
	int rc;

	rc = vg_db_prepare(db, "SELECT 1 FROM months WHERE month=?1", &s);
	if (rc)
		return rc;
	vg_db_bind_text(s, 1, vg_bill_month_format(m, ms, sizeof(ms)));
	rc = vg_db_step(s);
	vg_db_reset(s);
	if (rc == 1)
		return 1;
	return rc;
}

/* The stored invoices of month m (one project or all), parsed. */
static int load_frozen(struct vg_db *db, struct vg_bill_month m, const char *project,
		       struct vg_bill_invoice ***out, size_t *n)
{
	struct vg_db_stmt *s;
	char ms[16];
	size_t cnt = 0, cap = 0;
	struct vg_bill_invoice **arr = NULL;
	int rc;

	*out = NULL;
	*n = 0;
	rc = vg_db_prepare(db, project ? "SELECT document FROM invoices WHERE month=?1 AND project=?2" : "SELECT document FROM invoices WHERE month=?1 ORDER BY project",
			   &s);
	if (rc)
		return rc;
	vg_db_bind_text(s, 1, vg_bill_month_format(m, ms, sizeof(ms)));
	if (project)
		vg_db_bind_text(s, 2, project);
	while ((rc = vg_db_step(s)) == 1) {
		const char *doc = (const char *)vg_db_column_text(s, 0);
		struct vg_bill_invoice *inv;
		if (cnt == cap) {
			cap = cap ? 2 * cap : 8;
			struct vg_bill_invoice **na = realloc(arr, cap * sizeof(*na));
			if (!na) {
				rc = -ENOMEM;
				break;
			}
			arr = na;
		}
		if (!doc || vg_bill_invoice_from_json(doc, strlen(doc), &inv)) {
			rc = -EIO; /* a stored document we cannot read */
			break;
		}
		arr[cnt++] = inv;
	}
	vg_db_reset(s);
	if (rc != 0) {
		for (size_t i = 0; i < cnt; i++)
			vg_bill_invoice_free(arr[i]);
		free(arr);
		return rc;
	}
	*out = arr;
	*n = cnt;
	return 0;
}

static void free_arr(struct vg_bill_invoice **a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		vg_bill_invoice_free(a[i]);
	free(a);
}

/* Compute month m's invoices from the database (no adjustments). */
static int compute_month(struct vg_db *db, const struct vg_bill_ratecard *rc,
			 struct vg_bill_month m, const char *project,
			 struct vg_bill_invoice ***out, size_t *n)
{
	struct vg_bill_usage u;
	int r;

	*out = NULL;
	*n = 0;
	if ((r = vg_bill_usage_load(db, vg_bill_month_start_ms(m), vg_bill_month_end_ms(m),
				    project, &u)))
		return r;
	/* u holds project's usage alone when one is asked for: at most its
	 * invoice, none without lines; one past VG_BILL_MONEY_MAX is there,
	 * its totals left to the caller (drafts) */
	r = vg_bill_invoice_compute_all(&u, rc, m, out, n);
	vg_bill_usage_clear(&u);
	if (!r && project) { /* as the pricer would for project alone */
		size_t w = 0;
		for (size_t i = 0; i < *n; i++) {
			if (strcmp((*out)[i]->project, project) || !(*out)[i]->nlines)
				vg_bill_invoice_free((*out)[i]);
			else
				(*out)[w++] = (*out)[i];
		}
		*n = w;
	}
	return r;
}

static struct vg_bill_invoice *find_inv(struct vg_bill_invoice **a, size_t n,
					const char *project)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(a[i]->project, project))
			return a[i];
	return NULL;
}

static const struct vg_bill_invoice_line *find_line(const struct vg_bill_invoice *inv,
						    const char *key)
{
	for (size_t i = 0; inv && i < inv->nlines; i++)
		if (!inv->lines[i].adjustment_for && !strcmp(inv->lines[i].key, key))
			return &inv->lines[i];
	return NULL;
}

/* Signed quantity helpers (|q| < 2^127 always holds here). */
typedef __int128 s128;
static s128 sq(const struct vg_bill_invoice_line *l)
{
	return l ? (l->qty_neg ? -(s128)l->qty : (s128)l->qty) : 0;
}

/* What invoices after F already billed for key (adjustments), and the
 * newest such adjustment line (*last, NULL if none): its pieces are the
 * line as that adjustment left it. later[0] is the newest month. */
static void prior(struct vg_bill_invoice ***later, size_t *nlater, size_t nmonths,
		  const char *project, const char *fm, const char *key,
		  s128 *qty, s128 *amount, const struct vg_bill_invoice_line **last)
{
	char akey[1024];

	snprintf(akey, sizeof(akey), "adj|%s|%s", fm, key);
	*qty = 0;
	*amount = 0;
	*last = NULL;
	for (size_t k = 0; k < nmonths; k++) {
		struct vg_bill_invoice *inv = find_inv(later[k], nlater[k], project);
		for (size_t i = 0; inv && i < inv->nlines; i++) {
			const struct vg_bill_invoice_line *l = &inv->lines[i];
			if (l->adjustment_for && !strcmp(l->key, akey)) {
				*qty += sq(l);
				*amount += l->amount_micro;
				if (!*last)
					*last = l;
			}
		}
	}
}

/* Where two piece lists differ: the first and last instant at which
 * their rate of use is not the same (a piece against nothing, or two
 * pieces at different rates). 1 with [*a, *b) set, 0 if they agree
 * everywhere. Both lists are in time order without overlaps. */
static int pieces_differ(const struct vg_bill_piece *x, size_t nx,
			 const struct vg_bill_piece *y, size_t ny, int64_t *a, int64_t *b)
{
	size_t i = 0, j = 0;
	int64_t t = INT64_MIN;
	int found = 0;

	for (;;) {
		/* skip pieces that end at or before t */
		while (i < nx && x[i].end_ms <= t)
			i++;
		while (j < ny && y[j].end_ms <= t)
			j++;
		if (i == nx && j == ny)
			break;
		/* the elementary interval [t, u): no boundary of either list
		 * inside it */
		int64_t lo = INT64_MAX;
		if (i < nx)
			lo = x[i].start_ms > t ? x[i].start_ms : t;
		if (j < ny) {
			int64_t ly = y[j].start_ms > t ? y[j].start_ms : t;
			lo = ly < lo ? ly : lo;
		}
		t = lo;
		int in_x = i < nx && x[i].start_ms <= t, in_y = j < ny && y[j].start_ms <= t;
		int64_t u = INT64_MAX;
		if (i < nx)
			u = in_x ? x[i].end_ms : x[i].start_ms;
		if (j < ny) {
			int64_t uy = in_y ? y[j].end_ms : y[j].start_ms;
			u = uy < u ? uy : u;
		}
		int differ;
		if (in_x && in_y)
			differ = x[i].qty * (vg_bill_u128)(y[j].end_ms - y[j].start_ms) !=
				 y[j].qty * (vg_bill_u128)(x[i].end_ms - x[i].start_ms);
		else
			differ = in_x ? x[i].qty != 0 : y[j].qty != 0;
		if (differ) {
			if (!found)
				*a = t;
			*b = u;
			found = 1;
		}
		t = u;
	}
	return found;
}

/* The slice of time that changed between what was billed for a key (the
 * frozen line x, or the newest adjustment of it, base) and the
 * recomputed line r: from the first to the last instant where their
 * pieces differ. Documents without pieces: where the spans differ, or
 * the whole span. */
static void changed_slice(const struct vg_bill_invoice_line *r,
			  const struct vg_bill_invoice_line *x,
			  const struct vg_bill_invoice_line *base, int64_t *a, int64_t *b)
{
	const struct vg_bill_invoice_line *o = r ? r : x;
	*a = o->start_ms;
	*b = o->end_ms;
	if (!base)
		base = x;
	if ((!r || r->npieces) && (!base || base->npieces) &&
	    pieces_differ(r ? r->pieces : NULL, r ? r->npieces : 0,
			  base ? base->pieces : NULL, base ? base->npieces : 0, a, b))
		return;
	if (!r || !x || (r->start_ms == x->start_ms && r->end_ms == x->end_ms))
		return;
	if (r->start_ms != x->start_ms) {
		*a = r->start_ms < x->start_ms ? r->start_ms : x->start_ms;
		*b = r->start_ms < x->start_ms ? x->start_ms : r->start_ms;
	}
	if (r->end_ms != x->end_ms) {
		int64_t lo = r->end_ms < x->end_ms ? r->end_ms : x->end_ms;
		int64_t hi = r->end_ms < x->end_ms ? x->end_ms : r->end_ms;
		if (r->start_ms == x->start_ms)
			*a = lo;
		*b = hi;
	}
}

/* ---- network adjustments: the hours that changed ----------------------------- */

#define HOUR_MS 3600000LL

/* Month F's network for one project hour by hour, as it is now and as
 * the finalized invoices billed it (the rows overlaid by their
 * pre-images, network_billed), loaded the first time an adjustment of a
 * network line needs it. */
struct netctx {
	struct vg_db *db;
	const struct vg_bill_ratecard *rc;
	struct vg_bill_month m;
	const char *project;
	int state;                         /* 0 not loaded, 1 loaded, -1 could not be loaded */
	struct vg_bill_usage u;            /* resources, and the billed rows */
	struct vg_bill_usage_net *cur_net; /* the rows now */
	size_t ncur_net;
	struct vg_bill_net_hours cur, billed;
};

static void netctx_clear(struct netctx *c)
{
	vg_bill_usage_clear(&c->u);
	free(c->cur_net);
	vg_bill_net_hours_clear(&c->cur);
	vg_bill_net_hours_clear(&c->billed);
	c->cur_net = NULL;
	c->ncur_net = 0;
	c->state = 0;
}

static int netctx_load(struct netctx *c)
{
	int r;

	if (c->state)
		return c->state > 0 ? 0 : -EIO;
	c->state = -1;
	if ((r = vg_bill_usage_load(c->db, vg_bill_month_start_ms(c->m),
				    vg_bill_month_end_ms(c->m), c->project, &c->u)) ||
	    (r = vg_bill_net_hours(&c->u, c->rc, c->m, c->project, &c->cur)))
		return r;
	if (c->u.nnet && !(c->cur_net = malloc(c->u.nnet * sizeof(*c->cur_net))))
		return -ENOMEM;
	if (c->u.nnet)
		memcpy(c->cur_net, c->u.net, c->u.nnet * sizeof(*c->cur_net));
	c->ncur_net = c->u.nnet;
	if ((r = vg_bill_usage_load_billed_net(c->db, c->project, &c->u)) ||
	    (r = vg_bill_net_hours(&c->u, c->rc, c->m, c->project, &c->billed)))
		return r;
	c->state = 1;
	return 0;
}

/* The measured bytes of vNIC res in hour h, direction ut (rows sorted by
 * hour, then vNIC id, which is the order of resource indexes). */
static int64_t raw_bytes(const struct vg_bill_usage_net *n, size_t nn, size_t res, int64_t h,
			 int ut)
{
	size_t lo = 0, hi = nn;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (n[mid].hour_ms < h || (n[mid].hour_ms == h && n[mid].res < res))
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < nn && n[lo].hour_ms == h && n[lo].res == res)
		return ut == VG_BILL_UT_INGRESS ? n[lo].rx : n[lo].tx;
	return 0;
}

/* The hours of key in h: [*b, *e) of h->h; empty if the key is absent. */
static void key_hours(const struct vg_bill_net_hours *h, const char *key, size_t *b, size_t *e)
{
	*b = *e = 0;
	for (size_t k = 0; k < h->nkeys; k++) {
		if (strcmp(h->keys[k], key))
			continue;
		size_t i = 0;
		while (i < h->n && h->h[i].key != k)
			i++;
		*b = i;
		while (i < h->n && h->h[i].key == k)
			i++;
		*e = i;
		return;
	}
}

/* The slices of a network line key that changed: hours where its
 * quantity now differs from what was billed, contiguous hours changed
 * the same way (more, or fewer; late usage, or a tier filled
 * differently) merged. 1 with sl and *nsl (at most VG_BILL_MAX_SLICES listed;
 * *nsl 0 if more) and the hull [*a, *b); 0 when what was billed hour by
 * hour is not known to add up to what the invoices billed for the key
 * (billed_q: a month finalized before the copy was kept, or a rate card
 * changed since): the caller falls back to the line's pieces. A database
 * error (negative) is returned: a frozen document must not fall back
 * because a read failed. */
static int net_slices(struct netctx *c, const char *key, s128 billed_q, struct vg_bill_slice *sl,
		      size_t *nsl, size_t *total, int64_t *a, int64_t *b)
{
	size_t cb, ce, bb, be;
	s128 sum = 0;

	*nsl = 0;
	*total = 0;
	int r = netctx_load(c);
	if (r)
		return r;
	key_hours(&c->cur, key, &cb, &ce);
	key_hours(&c->billed, key, &bb, &be);
	for (size_t i = bb; i < be; i++)
		sum += (s128)c->billed.h[i].qty;
	if (sum != billed_q)
		return 0;
	size_t i = cb, j = bb;
	struct vg_bill_slice last = {0};
	int found = 0;
	while (i < ce || j < be) {
		int64_t hc = i < ce ? c->cur.h[i].hour_ms : INT64_MAX;
		int64_t hb = j < be ? c->billed.h[j].hour_ms : INT64_MAX;
		int64_t h = hc < hb ? hc : hb;
		const struct vg_bill_net_hour *x = hc == h ? &c->cur.h[i++] : NULL;
		const struct vg_bill_net_hour *y = hb == h ? &c->billed.h[j++] : NULL;
		s128 d = (x ? (s128)x->qty : 0) - (y ? (s128)y->qty : 0);
		if (!d)
			continue;
		const struct vg_bill_net_hour *o = x ? x : y;
		int why = raw_bytes(c->cur_net, c->ncur_net, o->res, h, o->ut) !=
					  raw_bytes(c->u.net, c->u.nnet, o->res, h, o->ut)
				  ? VG_BILL_SLICE_USAGE
				  : VG_BILL_SLICE_TIER;
		if (found && last.end_ms == h && last.why == why && last.qty_neg == (d < 0)) {
			last.end_ms = h + HOUR_MS;
			last.qty += (vg_bill_u128)(d < 0 ? -d : d);
			continue;
		}
		if (found && (*total)++ < VG_BILL_MAX_SLICES)
			sl[*total - 1] = last;
		if (!found)
			*a = h;
		found = 1;
		last.start_ms = h;
		last.end_ms = h + HOUR_MS;
		last.qty = (vg_bill_u128)(d < 0 ? -d : d);
		last.qty_neg = d < 0;
		last.why = why;
	}
	if (found) {
		*b = last.end_ms;
		if ((*total)++ < VG_BILL_MAX_SLICES)
			sl[*total - 1] = last;
	}
	*nsl = *total <= VG_BILL_MAX_SLICES ? *total : 0;
	return found;
}

/* The slices as text for a description: "2026-10-01T14:00:00Z to
 * 2026-10-01T16:00:00Z +2.000000 GB (late usage); ...". */
static void slices_text(const struct vg_bill_slice *sl, size_t n, size_t total, vg_bill_u128 den,
			const char *unit, char *buf, size_t len)
{
	size_t k = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n && k < len; i++) {
		char ta[32], tb[32], q[64];
		vg_time_format(sl[i].start_ms, ta, sizeof(ta));
		vg_time_format(sl[i].end_ms, tb, sizeof(tb));
		vg_bill_u128_decimal(sl[i].qty, den, 6, q, sizeof(q));
		int w = snprintf(buf + k, len - k, "%s%s to %s %s%s %s (%s)", i ? "; " : "", ta, tb,
				 sl[i].qty_neg ? "-" : "+", q, unit,
				 sl[i].why == VG_BILL_SLICE_USAGE ? "usage changed"
								  : "same usage, another tier");
		k += w > 0 ? (size_t)w : 0;
	}
	if (!n && total && k < len)
		snprintf(buf + k, len - k, "%zu stretches of hours changed", total);
}

/* An adjustment line on inv for F's line ref (the recomputed line r, or
 * the billed line x when the key is gone), billed x (NULL: not billed),
 * base the newest earlier adjustment of it (NULL: none). */
static int add_adjustment(struct vg_bill_invoice *inv, const char *fm,
			  const struct vg_bill_invoice *frozen,
			  const struct vg_bill_invoice_line *r,
			  const struct vg_bill_invoice_line *x,
			  const struct vg_bill_invoice_line *base, s128 dq, int64_t damount,
			  struct netctx *net, s128 billed_q)
{
	const struct vg_bill_invoice_line *ref = r ? r : x;
	struct vg_bill_invoice_line l = *ref;
	char key[1024], desc[6144], ta[32], tb[32], hours[4096] = "";
	struct vg_bill_slice sl[VG_BILL_MAX_SLICES];
	size_t nsl = 0, total = 0;

	int ns = 0;
	if (ref->usage_type == VG_BILL_UT_EGRESS || ref->usage_type == VG_BILL_UT_INGRESS)
		ns = net_slices(net, ref->key, billed_q, sl, &nsl, &total, &l.start_ms, &l.end_ms);
	if (ns < 0)
		return ns;
	if (ns)
		slices_text(sl, nsl, total, ref->qty_den, ref->unit ? ref->unit : "", hours,
			    sizeof(hours));
	else
		changed_slice(r, x, base, &l.start_ms, &l.end_ms);
	vg_time_format(l.start_ms, ta, sizeof(ta));
	vg_time_format(l.end_ms, tb, sizeof(tb));
	snprintf(key, sizeof(key), "adj|%s|%s", fm, ref->key);
	snprintf(desc, sizeof(desc), "Adjustment for %s (%s, %s to %s%s%s): %s%s%s", fm,
		 vg_bill_usage_type_name(ref->usage_type), ta, tb,
		 frozen ? ", corrects invoice " : ", not invoiced before",
		 frozen ? frozen->number : "", ref->description, hours[0] ? "; hours changed: " : "",
		 hours);
	l.slices = sl;
	l.nslices = nsl;
	l.corrects = frozen ? frozen->number : NULL;
	l.split = NULL;
	l.minimum_added_ms = 0;
	l.key = key;
	l.description = desc;
	l.usage_type = VG_BILL_UT_ADJUSTMENT;
	l.adjusted_type = (char *)vg_bill_usage_type_name(ref->usage_type);
	l.adjustment_for = (char *)fm;
	l.qty_neg = dq < 0;
	l.qty = (vg_bill_u128)(dq < 0 ? -dq : dq);
	l.amount_micro = damount;
	l.minimum_runs = 0;
	/* the line as it now stands: none left when the key is gone */
	l.pieces = r ? r->pieces : NULL;
	l.npieces = r ? r->npieces : 0;
	return vg_bill_invoice_add_line(inv, &l);
}

/* ---- adjustments that cannot be billed ---------------------------------------
 *
 * Late usage of a finalized month F may price past VG_BILL_MONEY_MAX (a
 * price of 10^12 an hour on the card, usage stored before the meter
 * refused implausible values). Its adjustment cannot be a line: the draft
 * of M could not be represented, and the whole of it (every billable line
 * and adjustment of the project) would be refused. Such an adjustment is
 * withheld instead: not a line, a warning of the invoice naming F, the
 * resource and the line; not frozen when M is finalized, so every later
 * draft computes the same difference again and bills it once the card or
 * the usage is fixed. Nothing is dropped. M's own usage past the bound is
 * not withheld: that invoice stays refused as a whole (-ERANGE), as it
 * was. Which adjustments are withheld depends only on the lines, in their
 * order, so both engines withhold the same ones. */

/* Per draft: the lines' amounts so far in absolute value, whether M's own
 * usage is already past the bound (then nothing is withheld), and the
 * withheld adjustments the warnings had no room left to name. */
struct budget {
	s128 sum;
	int usage_past;
	size_t unnamed;
};

static _Thread_local struct vg_bill_withheld withheld_last;

const struct vg_bill_withheld *vg_bill_withheld_last(void)
{
	return &withheld_last;
}

static void budget_init(struct budget *b, const struct vg_bill_invoice *inv)
{
	memset(b, 0, sizeof(*b));
	for (size_t i = 0; i < inv->nlines; i++) {
		int64_t a = inv->lines[i].amount_micro;
		if (a < -VG_BILL_MONEY_MAX || a > VG_BILL_MONEY_MAX)
			b->usage_past = 1;
		b->sum += a < 0 ? -(s128)a : a;
	}
	if (b->sum > VG_BILL_MONEY_MAX)
		b->usage_past = 1;
}

/* Withhold the adjustment for F's line ref on inv (amount da, past the
 * bound alone or, sum, with the lines before it): a warning naming it,
 * noted in withheld_last. 0 or -ENOMEM. */
static int withhold(struct vg_bill_invoice *inv, struct budget *b, const char *fm,
		    const struct vg_bill_invoice_line *ref, int sum)
{
	const char *ut = vg_bill_usage_type_name(ref->usage_type);
	char msg[1024];

	if (!withheld_last.n++) {
		vg_bill_range_set(&withheld_last.first, fm, inv->project, ref, sum);
	}
	/* the last slot is kept for the count of those not named */
	if (inv->nwarnings + 1 >= VG_BILL_MAX_WARNINGS) {
		b->unnamed++;
		return 0;
	}
	snprintf(msg, sizeof(msg),
		 "adjustment for %s withheld: resource %s, line %s %s (%s): %s past 10^12 "
		 "currency units, more than vigie bills; a price of the rate card or a "
		 "usage reported is implausible: once the card or the usage of that "
		 "resource is fixed, the next draft bills it",
		 fm, ref->resource_id ? ref->resource_id : "", ut ? ut : "",
		 ref->item ? ref->item : "", ref->unit ? ref->unit : "",
		 sum ? "with it the invoice's lines come" : "its amount is");
	return vg_bill_invoice_warn(inv, msg);
}

/* The withheld adjustments the warnings could not name, counted in the
 * last warning's place. 0 or -ENOMEM. */
static int withheld_unnamed(struct vg_bill_invoice *inv, const struct budget *b)
{
	char msg[256], *t;

	if (!b->unnamed)
		return 0;
	snprintf(msg, sizeof(msg),
		 "%zu more adjustments withheld: their amounts, or with them the "
		 "invoice's lines, are past 10^12 currency units",
		 b->unnamed);
	if (inv->nwarnings < VG_BILL_MAX_WARNINGS)
		return vg_bill_invoice_warn(inv, msg);
	if (!(t = strdup(msg)))
		return -ENOMEM;
	free(inv->warnings[inv->nwarnings - 1]);
	inv->warnings[inv->nwarnings - 1] = t;
	return 0;
}

/* The adjustment of F's line ref on inv, or its withholding when it
 * cannot be billed. */
static int bill_difference(struct vg_bill_invoice *inv, struct budget *b, const char *fm,
			   const struct vg_bill_invoice *frozen,
			   const struct vg_bill_invoice_line *r,
			   const struct vg_bill_invoice_line *x,
			   const struct vg_bill_invoice_line *base, s128 dq, s128 da,
			   struct netctx *net, s128 billed_q)
{
	s128 mag = da < 0 ? -da : da;

	if (!b->usage_past && (mag > VG_BILL_MONEY_MAX || b->sum + mag > VG_BILL_MONEY_MAX))
		return withhold(inv, b, fm, r ? r : x, mag <= VG_BILL_MONEY_MAX);
	b->sum += mag;
	/* M's usage past the bound: its totals refuse the invoice anyway;
	 * the amount only has to stay an int64 */
	int64_t a = da > INT64_MAX ? INT64_MAX : da < -INT64_MAX ? -INT64_MAX
								 : (int64_t)da;
	return add_adjustment(inv, fm, frozen, r, x, base, dq, a, net, billed_q);
}

/* Adjustment lines on inv for finalized month F (index k in the chain:
 * later[0..k) are the finalized months after F, newest last). */
static int adjust(struct vg_db *db, const struct vg_bill_ratecard *rcard,
		  struct vg_bill_month fmon, struct vg_bill_invoice *inv, struct budget *bud,
		  const char *fm, const struct vg_bill_invoice *recomputed,
		  const struct vg_bill_invoice *frozen, struct vg_bill_invoice ***later,
		  size_t *nlater, size_t nmonths)
{
	struct netctx net = {.db = db, .rc = rcard, .m = fmon, .project = inv->project};
	int rc = 0;

	/* keys of the recomputed month */
	for (size_t i = 0; recomputed && i < recomputed->nlines && !rc; i++) {
		const struct vg_bill_invoice_line *r = &recomputed->lines[i];
		if (r->adjustment_for)
			continue;
		const struct vg_bill_invoice_line *x = find_line(frozen, r->key);
		const struct vg_bill_invoice_line *base;
		s128 pq, pa;
		prior(later, nlater, nmonths, inv->project, fm, r->key, &pq, &pa, &base);
		s128 dq = sq(r) - sq(x) - pq;
		/* r's amount may be saturated (INT64_MAX): no int64 arithmetic */
		s128 da = (s128)r->amount_micro - (x ? x->amount_micro : 0) - pa;
		if (dq || da)
			rc = bill_difference(inv, bud, fm, frozen, r, x, base, dq, da, &net,
					     sq(x) + pq);
	}
	/* keys billed but gone from the recomputation (usage shrank to 0) */
	for (size_t i = 0; frozen && i < frozen->nlines && !rc; i++) {
		const struct vg_bill_invoice_line *x = &frozen->lines[i];
		if (x->adjustment_for || find_line(recomputed, x->key))
			continue;
		const struct vg_bill_invoice_line *base;
		s128 pq, pa;
		prior(later, nlater, nmonths, inv->project, fm, x->key, &pq, &pa, &base);
		s128 dq = -sq(x) - pq;
		s128 da = -(s128)x->amount_micro - pa;
		if (dq || da)
			rc = bill_difference(inv, bud, fm, frozen, NULL, x, base, dq, da, &net,
					     sq(x) + pq);
	}
	netctx_clear(&net);
	return rc;
}

static int cmp_inv(const void *a, const void *b)
{
	return strcmp((*(struct vg_bill_invoice *const *)a)->project,
		      (*(struct vg_bill_invoice *const *)b)->project);
}

/* Keep g as one more broken invoice of *broken (*nbroken of them). */
static int note_broken(struct vg_bill_range **broken, size_t *nbroken,
		       const struct vg_bill_range *g)
{
	struct vg_bill_range *b = realloc(*broken, (*nbroken + 1) * sizeof(*b));

	if (!b)
		return -ENOMEM;
	b[(*nbroken)++] = *g;
	*broken = b;
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	return strcmp(((const struct vg_bill_range *)a)->project,
		      ((const struct vg_bill_range *)b)->project);
}

/* Drafts of month m with adjustments for one project or all. broken
 * NULL: an invoice past VG_BILL_MONEY_MAX fails them all (-ERANGE,
 * vg_bill_range_last); else it is left out and noted in *broken. */
static int drafts(struct vg_db *db, const struct vg_bill_ratecard *rc, struct vg_bill_month m,
		  const char *project, struct vg_bill_invoice ***out, size_t *n,
		  struct vg_bill_range **broken, size_t *nbroken)
{
	struct vg_bill_invoice **arr = NULL, **chain_r[MAX_LOOKBACK] = {0},
			       **chain_x[MAX_LOOKBACK] = {0};
	size_t cnt = 0, nr[MAX_LOOKBACK] = {0}, nx[MAX_LOOKBACK] = {0};
	struct vg_bill_month fmon[MAX_LOOKBACK];
	struct budget *bud = NULL;
	int depth = 0, r;

	memset(&withheld_last, 0, sizeof(withheld_last));
	if ((r = compute_month(db, rc, m, project, &arr, &cnt)))
		return r;
	/* the unbroken run of finalized months before m, newest first */
	struct vg_bill_month f = vg_bill_month_prev(m);
	while (depth < MAX_LOOKBACK && f.year >= 1970 && (r = vg_bill_is_final(db, f)) == 1) {
		fmon[depth] = f;
		if ((r = compute_month(db, rc, f, project, &chain_r[depth], &nr[depth])) ||
		    (r = load_frozen(db, f, project, &chain_x[depth], &nx[depth]))) {
			depth++;
			goto out;
		}
		depth++;
		f = vg_bill_month_prev(f);
	}
	if (r < 0)
		goto out;
	r = 0;
	/* projects that only have adjustments get an invoice too */
	for (int k = 0; k < depth && !r; k++) {
		for (int pass = 0; pass < 2 && !r; pass++) {
			struct vg_bill_invoice **a = pass ? chain_x[k] : chain_r[k];
			size_t na = pass ? nx[k] : nr[k];
			for (size_t i = 0; i < na && !r; i++) {
				if (find_inv(arr, cnt, a[i]->project))
					continue;
				struct vg_bill_invoice **g = realloc(arr, (cnt + 1) * sizeof(*g));
				if (!g) {
					r = -ENOMEM;
					break;
				}
				arr = g;
				if (!(arr[cnt] = vg_bill_invoice_new(a[i]->project, m, rc)))
					r = -ENOMEM;
				else
					cnt++;
			}
		}
	}
	if (!r && cnt && !(bud = calloc(cnt, sizeof(*bud))))
		r = -ENOMEM;
	for (size_t i = 0; i < cnt && !r; i++)
		budget_init(&bud[i], arr[i]);
	/* adjustments, oldest month first; "later" for month k are the
	 * frozen invoices of months k-1 .. 0 (all after it, before m) */
	for (int k = depth - 1; k >= 0 && !r; k--) {
		char fm[16];
		vg_bill_month_format(fmon[k], fm, sizeof(fm));
		for (size_t i = 0; i < cnt && !r; i++)
			r = adjust(db, rc, fmon[k], arr[i], &bud[i], fm,
				   find_inv(chain_r[k], nr[k], arr[i]->project),
				   find_inv(chain_x[k], nx[k], arr[i]->project),
				   chain_x, nx, (size_t)k);
	}
	for (size_t i = 0; i < cnt && !r; i++)
		r = withheld_unnamed(arr[i], &bud[i]);
	free(bud);
	/* drop invoices left without any line (one whose only news is a
	 * withheld adjustment stays: its warning says so); sort; totals */
	size_t w = 0;
	for (size_t i = 0; i < cnt; i++) {
		if (arr[i]->nlines == 0 && arr[i]->nwarnings == 0 && !project) {
			vg_bill_invoice_free(arr[i]);
			continue;
		}
		if (!r) {
			int t = vg_bill_invoice_totals(arr[i]);
			if (t == -ERANGE && broken) {
				/* named as the listed ones are (below) */
				r = vg_bill_names_fill(db, &arr[i], 1);
				if (!r)
					r = note_broken(broken, nbroken, vg_bill_range_last());
				if (!r && arr[i]->project_name)
					snprintf((*broken)[*nbroken - 1].project_name,
						 sizeof((*broken)->project_name), "%s",
						 arr[i]->project_name);
				vg_bill_invoice_free(arr[i]);
				continue;
			}
			r = t;
		}
		arr[w++] = arr[i];
	}
	cnt = w;
	if (arr)
		qsort(arr, cnt, sizeof(*arr), cmp_inv);
	if (broken && *nbroken)
		qsort(*broken, *nbroken, sizeof(**broken), cmp_range);
	if (!r) /* project names (names.c) */
		r = vg_bill_names_fill(db, arr, cnt);
	for (size_t i = 0; i < cnt && !r; i++) /* invoice or usage statement */
		r = vg_bill_invoice_document(arr[i], rc);
out:
	for (int k = 0; k < depth; k++) {
		free_arr(chain_r[k], nr[k]);
		free_arr(chain_x[k], nx[k]);
	}
	if (r) {
		free_arr(arr, cnt);
		return r;
	}
	*out = arr;
	*n = cnt;
	return 0;
}

int vg_bill_invoices(struct vg_db *db, const struct vg_bill_ratecard *rc,
		     struct vg_bill_month m, const char *project,
		     struct vg_bill_invoice ***out, size_t *n)
{
	int r;

	memset(&withheld_last, 0, sizeof(withheld_last));
	r = vg_bill_is_final(db, m);

	*out = NULL;
	*n = 0;
	if (r < 0)
		return r;
	if (r == 1)
		return load_frozen(db, m, project, out, n);
	return drafts(db, rc, m, project, out, n, NULL, NULL);
}

int vg_bill_invoices_each(struct vg_db *db, const struct vg_bill_ratecard *rc,
			  struct vg_bill_month m, const char *project,
			  struct vg_bill_invoice ***out, size_t *n,
			  struct vg_bill_range **broken, size_t *nbroken)
{
	int r;

	memset(&withheld_last, 0, sizeof(withheld_last));
	r = vg_bill_is_final(db, m);

	*out = NULL;
	*n = 0;
	*broken = NULL;
	*nbroken = 0;
	if (r < 0)
		return r;
	if (r == 1) /* frozen documents were all representable */
		return load_frozen(db, m, project, out, n);
	r = drafts(db, rc, m, project, out, n, broken, nbroken);
	if (r) {
		free(*broken);
		*broken = NULL;
		*nbroken = 0;
	}
	return r;
}

int vg_bill_invoice_from_db(struct vg_db *db, const struct vg_bill_ratecard *rc,
			    struct vg_bill_month m, const char *project,
			    struct vg_bill_invoice **out)
{
	struct vg_bill_invoice **arr;
	size_t n;
	int r;

	*out = NULL;
	if ((r = vg_bill_invoices(db, rc, m, project, &arr, &n)))
		return r;
	if (n == 0) {
		free(arr);
		if (vg_bill_is_final(db, m) == 1)
			return -ENOENT;
		*out = vg_bill_invoice_new(project, m, rc); /* an empty draft */
		return *out ? 0 : -ENOMEM;
	}
	*out = arr[0];
	for (size_t i = 1; i < n; i++)
		vg_bill_invoice_free(arr[i]);
	free(arr);
	return 0;
}

int vg_bill_invoice_text(struct vg_db *db, const struct vg_bill_ratecard *rc,
			 struct vg_bill_month m, const char *project, int fmt,
			 char **out, size_t *len)
{
	struct vg_bill_invoice *inv;
	int r;

	*out = NULL;
	*len = 0;
	memset(&withheld_last, 0, sizeof(withheld_last));
	if (fmt == VG_BILL_FMT_JSON && (r = vg_bill_is_final(db, m)) == 1) {
		struct vg_db_stmt *s;
		char ms[16];
		r = vg_db_prepare(db, "SELECT document FROM invoices WHERE "
				      "month=?1 AND project=?2",
				  &s);
		if (r)
			return r;
		vg_db_bind_text(s, 1, vg_bill_month_format(m, ms, sizeof(ms)));
		vg_db_bind_text(s, 2, project);
		r = vg_db_step(s);
		if (r == 1) {
			const char *d = (const char *)vg_db_column_text(s, 0);
			*len = d ? strlen(d) : 0;
			*out = malloc(*len + 1);
			if (*out) {
				memcpy(*out, d, *len);
				(*out)[*len] = '\0';
			}
			r = *out ? 0 : -ENOMEM;
		} else {
			r = r == 0 ? -ENOENT : r;
		}
		vg_db_reset(s);
		return r;
	}
	if ((r = vg_bill_invoice_from_db(db, rc, m, project, &inv)))
		return r;
	r = vg_bill_invoice_render(inv, fmt, out, len);
	vg_bill_invoice_free(inv);
	return r;
}

/* Month m and the finalized months before it that the drafts adjusted
 * (the unbroken run, at most 24) are billed as their rows now stand: the
 * months' ranges go in network_billed_months (from now on the meter keeps
 * the pre-image of a row it changes there) and their pre-images are
 * dropped. In the finalization's own transaction. */
static int keep_billed_network(struct vg_db *db, struct vg_bill_month m)
{
	struct vg_bill_month f = m, from = m;
	struct vg_db_stmt *s;
	int r = 1;

	for (int depth = 0; depth <= MAX_LOOKBACK && f.year >= 1970 && r == 1; depth++) {
		if (depth && (r = vg_bill_is_final(db, f)) != 1)
			break;
		from = f;
		if ((r = vg_db_prepare(db, "INSERT INTO network_billed_months(start_ms,end_ms) "
					   "VALUES(?1,?2) ON CONFLICT(start_ms) DO NOTHING",
				       &s)))
			return r;
		vg_db_bind_int64(s, 1, vg_bill_month_start_ms(f));
		vg_db_bind_int64(s, 2, vg_bill_month_end_ms(f));
		r = vg_db_step(s);
		vg_db_reset(s);
		if (r < 0)
			return r;
		r = 1;
		f = vg_bill_month_prev(f);
	}
	if (r < 0)
		return r;
	if ((r = vg_db_prepare(db, "DELETE FROM network_billed WHERE hour_ms>=?1 AND hour_ms<?2",
			       &s)))
		return r;
	vg_db_bind_int64(s, 1, vg_bill_month_start_ms(from));
	vg_db_bind_int64(s, 2, vg_bill_month_end_ms(m));
	r = vg_db_step(s);
	vg_db_reset(s);
	return r < 0 ? r : 0;
}

/* The silences kept for late starts (sighting_gaps, billing schema
 * step 7; meter.c) that no late start can change the bill of any more,
 * once month m is finalized: those that end before the oldest month a
 * later draft looks back to (m - MAX_LOOKBACK + 1) and begin inside the
 * unbroken run of finalized months that ends at m. A month not finalized
 * before them may still be drafted and look back over theirs: those stay.
 * In the finalization's own transaction. */
static int prune_silences(struct vg_db *db, struct vg_bill_month m)
{
	struct vg_bill_month f = m, first = m, oldest = m;
	struct vg_db_stmt *s;
	int r = 1;

	for (int i = 1; i < MAX_LOOKBACK; i++)
		oldest = vg_bill_month_prev(oldest);
	for (;;) { /* first: where the unbroken run ending at m begins */
		f = vg_bill_month_prev(f);
		if (f.year < 1970 || (r = vg_bill_is_final(db, f)) != 1)
			break;
		first = f;
	}
	if (r < 0)
		return r;
	if (vg_bill_month_cmp(first, oldest) >= 0)
		return 0;
	if ((r = vg_db_prepare(db, "DELETE FROM sighting_gaps WHERE from_ms>=?1 AND to_ms<?2",
			       &s)))
		return r;
	vg_db_bind_int64(s, 1, vg_bill_month_start_ms(first));
	vg_db_bind_int64(s, 2, vg_bill_month_start_ms(oldest));
	r = vg_db_step(s);
	vg_db_reset(s);
	return r < 0 ? r : 0;
}

/* Freeze month m: one transaction that reads the drafts and writes the
 * invoices and the month's mark. Two nodes finalizing the same month at
 * once (a shared PostgreSQL): both may compute, but the month's and the
 * invoices' primary keys let one commit; the other's INSERT waits for it
 * and then fails with a unique violation, reported as -EALREADY. */
int vg_bill_finalize(struct vg_db *db, const struct vg_bill_ratecard *rc,
		     struct vg_bill_month m, int64_t now_ms, size_t *count)
{
	struct vg_bill_invoice **arr = NULL;
	size_t n = 0;
	struct vg_db_stmt *s = NULL;
	char ms[16];
	int r;

	*count = 0;
	memset(&withheld_last, 0, sizeof(withheld_last));
	if (now_ms < vg_bill_month_end_ms(m))
		return -EINVAL;
	if ((r = vg_db_begin(db)))
		return r;
	/* the drafts read several tables that the meters keep writing: on
	 * PostgreSQL read them from one snapshot, as a sqlite transaction
	 * does by itself */
	if (vg_db_engine(db) == VG_DB_POSTGRESQL &&
	    (r = vg_db_exec(db, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")))
		goto fail;
	if ((r = vg_bill_is_final(db, m)) != 0) {
		r = r == 1 ? -EALREADY : r;
		goto fail;
	}
	if ((r = drafts(db, rc, m, NULL, &arr, &n, NULL, NULL)))
		goto fail;
	vg_bill_month_format(m, ms, sizeof(ms));
	/* the month's mark first: a concurrent finalizer stops here */
	if ((r = vg_db_prepare(db, "INSERT INTO months(month,finalized_ms) VALUES(?1,?2)", &s)))
		goto fail;
	vg_db_bind_text(s, 1, ms);
	vg_db_bind_int64(s, 2, now_ms);
	r = vg_db_step(s);
	vg_db_reset(s);
	if (r < 0)
		goto fail;
	if ((r = vg_db_prepare(db, "INSERT INTO invoices(month,project,number,document) "
				   "VALUES(?1,?2,?3,?4)",
			       &s)))
		goto fail;
	for (size_t i = 0; i < n; i++) {
		char num[160], *doc;
		size_t len;
		const struct vg_bill_rc_issuer *is = rc ? rc->issuer : NULL;
		if (is && is->number_prefix && arr[i]->doc != VG_BILL_DOC_STATEMENT) {
			/* the issuer's sequence (numbers.c), no project id */
			int64_t seq;
			if ((r = vg_bill_numbers_next(db, is->party.name, &seq)))
				goto fail;
			snprintf(num, sizeof(num), "%s%0*lld", is->number_prefix,
				 is->number_digits, (long long)seq);
		} else {
			snprintf(num, sizeof(num), "%s-%04zu", ms, i + 1);
		}
		if (arr[i]->doc != VG_BILL_DOC_STATEMENT) {
			arr[i]->issue_ms = now_ms;
			arr[i]->due_ms = now_ms + (int64_t)arr[i]->payment_terms_days * 86400000LL;
		}
		free(arr[i]->number);
		if (!(arr[i]->number = strdup(num))) {
			r = -ENOMEM;
			goto fail;
		}
		arr[i]->final = 1;
		arr[i]->finalized_ms = now_ms;
		if ((r = vg_bill_invoice_render(arr[i], VG_BILL_FMT_JSON, &doc, &len)))
			goto fail;
		vg_db_bind_text(s, 1, ms);
		vg_db_bind_text(s, 2, arr[i]->project);
		vg_db_bind_text(s, 3, num);
		vg_db_bind_text(s, 4, doc);
		r = vg_db_step(s);
		vg_db_reset(s);
		free(doc);
		if (r < 0)
			goto fail;
	}
	if ((r = keep_billed_network(db, m)) || (r = prune_silences(db, m)))
		goto fail;
	if ((r = vg_db_commit(db)))
		goto fail;
	*count = n;
	free_arr(arr, n);
	return 0;
fail:
	if (vg_db_in_transaction(db))
		vg_db_rollback(db);
	free_arr(arr, n);
	return r == -EEXIST ? -EALREADY : vg_bill_db_errno(r);
}
