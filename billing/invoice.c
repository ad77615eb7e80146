/*
 * invoice.c — pricing usage intervals with the rate card into invoice
 * lines (bill_invoice.h).
 *
 * Design: every usage interval is cut at the rate card's price changes
 * (vg_bill_ratecard_prices gives the span over which prices hold) and turned
 * into "charges": (resource, usage type, item, rate, quantity in base
 * units, start, end). Charges are sorted and merged so that one line holds
 * all of one resource's usage of one item at one rate in the month; then
 * each line's amount is computed once, exactly, and rounded half-up to the
 * minor unit (vg_bill_amount). The total is the sum of rounded lines.
 *
 * Rules (docs/billing.md): compute by flavor per hour, or per vCPU-hour
 * plus per GiB-RAM-hour when the flavor has no price; a run shorter than
 * the minimum (60 s) is billed as the minimum, the shortfall added to the
 * run's first interval; storage per GiB-month of the month's real length;
 * egress per GB in tiers filled in time order (hour by hour, vNICs in id
 * order within an hour) per project and month; ingress only if priced.
 *
 * Invariants: integers only; quantities are exact (ms, byte-ms, bytes);
 * each line is rounded exactly once.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "vigie/array.h"
#include "vigie/batch.h"
#include "vigie/bill_invoice.h"
#include "vigie/clock.h"

#include "billing/nethours.h"

#define HOUR_MS 3600000LL

static const char *const ut_names[VG_BILL_UT_N] = {
	"compute",
	"storage",
	"network-egress",
	"network-ingress",
	"adjustment",
};

const char *vg_bill_usage_type_name(int ut)
{
	return ut >= 0 && ut < VG_BILL_UT_N ? ut_names[ut] : NULL;
}

int vg_bill_usage_type_parse(const char *s)
{
	for (int i = 0; s && i < VG_BILL_UT_N; i++)
		if (!strcmp(s, ut_names[i]))
			return i;
	return -EINVAL;
}

/* ---- the invoice object ----------------------------------------------------- */

/* A draft's number: "DRAFT-YYYY-MM-" and 10 hex digits of SHA-256 over
 * the month and the project id. Stable (the same draft keeps its number
 * from one request to the next, and two projects' drafts differ), and it
 * embeds no tenant identifier: the number is copied into mails and
 * accounting tools, the project id is not meant to travel with it. */
static void draft_number(const char *project, const char *month, char *buf, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE] = {0};
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	/* out of memory in OpenSSL: the digits stay zero, still no id */
	if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
	    EVP_DigestUpdate(c, "vigie-draft|", 12) && EVP_DigestUpdate(c, month, strlen(month)) &&
	    EVP_DigestUpdate(c, "|", 1) && EVP_DigestUpdate(c, project, strlen(project)))
		EVP_DigestFinal_ex(c, md, &mdlen);
	EVP_MD_CTX_free(c);
	snprintf(buf, len, "DRAFT-%s-%02x%02x%02x%02x%02x", month, md[0], md[1], md[2], md[3],
		 md[4]);
}

struct vg_bill_invoice *vg_bill_invoice_new(const char *project, struct vg_bill_month m,
					    const struct vg_bill_ratecard *rc)
{
	struct vg_bill_invoice *inv = calloc(1, sizeof(*inv));
	char num[320], ms[16];

	if (!inv)
		return NULL;
	draft_number(project, vg_bill_month_format(m, ms, sizeof(ms)), num, sizeof(num));
	inv->project = strdup(project);
	inv->number = strdup(num);
	inv->month = m;
	if (rc) {
		memcpy(inv->currency, rc->currency, 4);
		inv->digits = rc->digits;
	}
	inv->finalized_ms = -1;
	inv->issue_ms = inv->due_ms = -1;
	inv->payment_terms_days = -1;
	if (!inv->project || !inv->number) {
		vg_bill_invoice_free(inv);
		return NULL;
	}
	return inv;
}

static void line_clear(struct vg_bill_invoice_line *l)
{
	free(l->key);
	free(l->resource_id);
	free(l->resource_name);
	free(l->item);
	free(l->description);
	free(l->unit);
	free(l->base_unit);
	free(l->adjusted_type);
	free(l->adjustment_for);
	free(l->instance_id);
	free(l->instance_name);
	free(l->split);
	free(l->corrects);
	free(l->pieces);
	free(l->slices);
}

void vg_bill_invoice_free(struct vg_bill_invoice *inv)
{
	if (!inv)
		return;
	for (size_t i = 0; i < inv->nlines; i++)
		line_clear(&inv->lines[i]);
	for (size_t i = 0; i < inv->nwarnings; i++)
		free(inv->warnings[i]);
	free(inv->warnings);
	free(inv->lines);
	free(inv->number);
	free(inv->project);
	free(inv->project_name);
	vg_bill_party_free(&inv->issuer);
	vg_bill_party_free(&inv->customer);
	free(inv->tax_note);
	free(inv);
}

static int dupn(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

int vg_bill_invoice_add_line(struct vg_bill_invoice *inv,
			     const struct vg_bill_invoice_line *l)
{
	struct vg_bill_invoice_line *n;

	if (inv->nlines == inv->caplines) {
		size_t cap = inv->caplines ? inv->caplines * 2 : 16;
		n = realloc(inv->lines, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		inv->lines = n;
		inv->caplines = cap;
	}
	n = &inv->lines[inv->nlines];
	*n = *l;
	n->pieces = NULL;
	n->npieces = 0;
	if (l->npieces > 0 && l->npieces <= VG_BILL_MAX_PIECES) {
		if (!(n->pieces = malloc(l->npieces * sizeof(*n->pieces))))
			return -ENOMEM;
		memcpy(n->pieces, l->pieces, l->npieces * sizeof(*n->pieces));
		n->npieces = l->npieces;
	}
	n->slices = NULL;
	n->nslices = 0;
	if (l->nslices > 0 && l->nslices <= VG_BILL_MAX_SLICES) {
		if (!(n->slices = malloc(l->nslices * sizeof(*n->slices)))) {
			free(n->pieces);
			return -ENOMEM;
		}
		memcpy(n->slices, l->slices, l->nslices * sizeof(*n->slices));
		n->nslices = l->nslices;
	}
	if (dupn(&n->key, l->key) || dupn(&n->resource_id, l->resource_id) ||
	    dupn(&n->resource_name, l->resource_name) || dupn(&n->item, l->item) ||
	    dupn(&n->description, l->description) || dupn(&n->unit, l->unit) ||
	    dupn(&n->base_unit, l->base_unit) ||
	    dupn(&n->adjusted_type, l->adjusted_type) ||
	    dupn(&n->adjustment_for, l->adjustment_for) ||
	    dupn(&n->instance_id, l->instance_id) ||
	    dupn(&n->instance_name, l->instance_name) ||
	    dupn(&n->split, l->split) ||
	    dupn(&n->corrects, l->corrects)) {
		line_clear(n);
		return -ENOMEM;
	}
	inv->nlines++;
	return 0;
}

int vg_bill_invoice_warn(struct vg_bill_invoice *inv, const char *msg)
{
	for (size_t i = 0; i < inv->nwarnings; i++)
		if (!strcmp(inv->warnings[i], msg))
			return 0;
	if (inv->nwarnings >= VG_BILL_MAX_WARNINGS)
		return 0;
	char **w = realloc(inv->warnings, (inv->nwarnings + 1) * sizeof(*w));
	if (!w)
		return -ENOMEM;
	inv->warnings = w;
	if (!(w[inv->nwarnings] = strdup(msg)))
		return -ENOMEM;
	inv->nwarnings++;
	return 0;
}

static _Thread_local struct vg_bill_range range_last;

const struct vg_bill_range *vg_bill_range_last(void)
{
	return &range_last;
}

/* -ERANGE, noting the line (vg_bill_range_last). */
static int out_of_range(const struct vg_bill_invoice *inv,
			const struct vg_bill_invoice_line *l, int sum)
{
	char month[16];

	vg_bill_month_format(inv->month, month, sizeof(month));
	vg_bill_range_set(&range_last, month, inv->project, l, sum);
	return -ERANGE;
}

void vg_bill_range_set(struct vg_bill_range *g, const char *month, const char *project,
		       const struct vg_bill_invoice_line *l, int sum)
{
	const char *ut = vg_bill_usage_type_name(l->usage_type);

	memset(g, 0, sizeof(*g));
	snprintf(g->month, sizeof(g->month), "%s", month ? month : "");
	snprintf(g->project, sizeof(g->project), "%s", project ? project : "");
	snprintf(g->resource, sizeof(g->resource), "%s",
		 l->resource_id ? l->resource_id : "");
	snprintf(g->usage_type, sizeof(g->usage_type), "%s", ut ? ut : "");
	snprintf(g->item, sizeof(g->item), "%s", l->item ? l->item : "");
	snprintf(g->unit, sizeof(g->unit), "%s", l->unit ? l->unit : "");
	g->sum = sum;
}

int vg_bill_invoice_totals(struct vg_bill_invoice *inv)
{
	int64_t sum_abs = 0;

	memset(inv->subtotal_micro, 0, sizeof(inv->subtotal_micro));
	inv->total_micro = 0;
	inv->tax_micro = 0;
	inv->amount_due_micro = 0;
	/* the lines' amounts together, in absolute value, at most
	 * VG_BILL_MONEY_MAX: then no sum below (subtotal, total, the
	 * renderer's summaries) can leave int64, and a saturated line
	 * (vg_bill_amount's INT64_MAX) is refused rather than printed */
	for (size_t i = 0; i < inv->nlines; i++) {
		int64_t a = inv->lines[i].amount_micro;
		if (a < -VG_BILL_MONEY_MAX || a > VG_BILL_MONEY_MAX)
			return out_of_range(inv, &inv->lines[i], 0);
		sum_abs += a < 0 ? -a : a;
		if (sum_abs > VG_BILL_MONEY_MAX)
			return out_of_range(inv, &inv->lines[i], 1);
	}
	for (size_t i = 0; i < inv->nlines; i++) {
		int ut = inv->lines[i].usage_type;
		if (ut >= 0 && ut < VG_BILL_UT_N)
			inv->subtotal_micro[ut] += inv->lines[i].amount_micro;
		inv->total_micro += inv->lines[i].amount_micro;
	}
	/* tax on the rounded total, rounded once, half up, symmetric (a rate
	 * is at most 1, so the tax is at most the total) */
	if (inv->has_tax) {
		int64_t t = inv->total_micro;
		vg_bill_u128 mag = (vg_bill_u128)(t < 0 ? -t : t);
		int64_t tax = vg_bill_amount(mag, inv->tax_rate_micro, VG_BILL_MICRO, inv->digits);
		inv->tax_micro = t < 0 ? -tax : tax;
	}
	inv->amount_due_micro = inv->total_micro + inv->tax_micro;
	if (inv->doc != VG_BILL_DOC_STATEMENT)
		inv->doc = inv->total_micro < 0 ? VG_BILL_DOC_CREDIT_NOTE : VG_BILL_DOC_INVOICE;
	return 0;
}

void vg_bill_party_free(struct vg_bill_party *p)
{
	if (!p)
		return;
	free(p->name);
	free(p->tax_id);
	for (size_t i = 0; i < p->naddress; i++)
		free(p->address[i]);
	memset(p, 0, sizeof(*p));
}

int vg_bill_party_copy(struct vg_bill_party *dst, const struct vg_bill_party *src)
{
	memset(dst, 0, sizeof(*dst));
	memcpy(dst->country, src->country, sizeof(dst->country));
	if ((src->name && !(dst->name = strdup(src->name))) ||
	    (src->tax_id && !(dst->tax_id = strdup(src->tax_id))))
		goto oom;
	for (size_t i = 0; i < src->naddress && i < VG_BILL_MAX_ADDRESS; i++) {
		if (!(dst->address[i] = strdup(src->address[i] ? src->address[i] : "")))
			goto oom;
		dst->naddress = i + 1;
	}
	return 0;
oom:
	vg_bill_party_free(dst);
	return -ENOMEM;
}

int vg_bill_invoice_document(struct vg_bill_invoice *inv, const struct vg_bill_ratecard *rc)
{
	const struct vg_bill_rc_profile *pf = vg_bill_ratecard_profile(rc, inv->project);

	if (pf && rc->issuer) {
		vg_bill_party_free(&inv->issuer);
		vg_bill_party_free(&inv->customer);
		if (vg_bill_party_copy(&inv->issuer, &rc->issuer->party) ||
		    vg_bill_party_copy(&inv->customer, &pf->party))
			return -ENOMEM;
		inv->doc = VG_BILL_DOC_INVOICE;
		inv->payment_terms_days = pf->payment_terms_days >= 0
						  ? pf->payment_terms_days
						  : rc->issuer->payment_terms_days;
		inv->has_tax = vg_bill_ratecard_tax_rate(rc, pf, &inv->tax_rate_micro);
		free(inv->tax_note);
		inv->tax_note = NULL;
		if (pf->tax_note && !(inv->tax_note = strdup(pf->tax_note)))
			return -ENOMEM;
	} else {
		inv->doc = VG_BILL_DOC_STATEMENT;
	}
	return vg_bill_invoice_totals(inv);
}

/* ---- charges ------------------------------------------------------------------ */

enum item_kind {
	IK_FLAVOR = 1,
	IK_VCPU,
	IK_RAM,
	IK_UNPRICED,
	IK_DISK,
	IK_ROOT,
	IK_TIER,
	IK_INGRESS,
	IK_NET_UNPRICED,
};

struct charge {
	size_t res;
	int ut, ik;
	const char *arg;          /* flavor name */
	int tier;                 /* 1-based */
	int64_t tier_lo, tier_hi; /* GB bounds, hi -1 = none */
	int64_t rate;
	vg_bill_u128 den, qty;
	int64_t start, end;
	int minimum_runs;
	int64_t minimum_added_ms;
	int64_t bytes; /* network: the vNIC's measured bytes that hour */
};

struct pricer {
	const struct vg_bill_usage *u;
	const struct vg_bill_ratecard *rc;
	struct vg_bill_month m;
	const char *project; /* NULL: all */
	struct charge *c;
	size_t n, cap;
	/* warnings per project, collected as (project, text) */
	char **wproj, **wtext;
	size_t nw, capw;
	int hourly; /* network charges kept per hour (nethours.h), not summed */
};

static int add_charge(struct pricer *P, const struct charge *c)
{
	if (P->n == P->cap) {
		size_t cap = P->cap ? P->cap * 2 : 256;
		struct charge *n = realloc(P->c, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		P->c = n;
		P->cap = cap;
	}
	P->c[P->n++] = *c;
	return 0;
}

static int warn(struct pricer *P, const char *project, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int warn(struct pricer *P, const char *project, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < P->nw; i++)
		if (!strcmp(P->wproj[i], project) && !strcmp(P->wtext[i], buf))
			return 0;
	if (P->nw == P->capw) {
		size_t cap = P->capw ? P->capw * 2 : 16;
		char **a = realloc(P->wproj, cap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		P->wproj = a;
		a = realloc(P->wtext, cap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		P->wtext = a;
		P->capw = cap;
	}
	P->wproj[P->nw] = strdup(project);
	P->wtext[P->nw] = strdup(buf);
	if (!P->wproj[P->nw] || !P->wtext[P->nw]) {
		free(P->wproj[P->nw]);
		free(P->wtext[P->nw]);
		return -ENOMEM;
	}
	P->nw++;
	return 0;
}

static const char *when(int64_t ms, char *buf, size_t len)
{
	return vg_time_format(ms, buf, len);
}

/* One compute piece [a, b) with prices p; extra_ms is the minimum-run
 * shortfall charged with it. */
static int price_compute(struct pricer *P, const struct vg_bill_usage_seg *s,
			 const struct vg_bill_prices *p, int64_t a, int64_t b,
			 int64_t extra_ms, int topped)
{
	const char *proj = P->u->res[s->res].project;
	struct charge c = {0};
	int64_t hour;
	vg_bill_u128 ms = (vg_bill_u128)(b - a + extra_ms);
	char tb[32];

	c.res = s->res;
	c.ut = VG_BILL_UT_COMPUTE;
	c.start = a;
	c.end = b;
	c.minimum_runs = topped;
	c.minimum_added_ms = extra_ms;
	c.arg = s->flavor;
	if (s->flavor && !vg_bill_prices_flavor(p, s->flavor, &hour)) {
		c.ik = IK_FLAVOR;
		c.rate = hour;
		c.den = HOUR_MS;
		c.qty = ms;
		return add_charge(P, &c);
	}
	if (p->has_vcpu_hour && p->has_ram_gib_hour && s->vcpus >= 0 &&
	    s->ram_mb >= 0) {
		int rc;
		c.ik = IK_VCPU;
		c.rate = p->vcpu_hour_micro;
		c.den = HOUR_MS;
		c.qty = ms * (vg_bill_u128)s->vcpus;
		if ((rc = add_charge(P, &c)))
			return rc;
		c.ik = IK_RAM;
		c.rate = p->ram_gib_hour_micro;
		c.den = (vg_bill_u128)HOUR_MS * 1024;
		c.qty = ms * (vg_bill_u128)s->ram_mb;
		return add_charge(P, &c);
	}
	c.ik = IK_UNPRICED;
	c.rate = 0;
	c.den = HOUR_MS;
	c.qty = ms;
	int rc = warn(P, proj, "compute of %s from %s is not priced: flavor %s "
			       "has no price and %s",
		      P->u->res[s->res].id,
		      when(a, tb, sizeof(tb)), s->flavor ? s->flavor : "(unknown)",
		      s->vcpus < 0 || s->ram_mb < 0
			      ? "its vCPUs/RAM are unknown"
			      : "no per-vCPU and per-GiB-RAM prices are in force");
	return rc ? rc : add_charge(P, &c);
}

static int price_storage(struct pricer *P, const struct vg_bill_usage_seg *s,
			 const struct vg_bill_prices *p, int64_t a, int64_t b)
{
	struct charge c = {0};
	char tb[32];

	c.res = s->res;
	c.ut = VG_BILL_UT_STORAGE;
	c.ik = s->root ? IK_ROOT : IK_DISK;
	c.start = a;
	c.end = b;
	c.den = (vg_bill_u128)VG_BILL_GIB * (vg_bill_u128)vg_bill_month_len_ms(P->m);
	c.qty = (vg_bill_u128)s->bytes * (vg_bill_u128)(b - a);
	if (p->has_storage) {
		c.rate = p->storage_gib_month_micro;
	} else {
		int rc = warn(P, P->u->res[s->res].project,
			      "storage from %s is not priced: no storage price "
			      "is in force",
			      when(a, tb, sizeof(tb)));
		if (rc)
			return rc;
	}
	return add_charge(P, &c);
}

static int price_segments(struct pricer *P)
{
	const struct vg_bill_usage *u = P->u;
	int rc = 0;

	for (size_t i = 0; i < u->nsegs && !rc; i++) {
		const struct vg_bill_usage_seg *s = &u->segs[i];
		const char *proj = u->res[s->res].project;
		int64_t extra = 0;
		int topped = 0;

		if (P->project && strcmp(proj, P->project))
			continue;
		if (s->kind == VG_BILL_U_COMPUTE && s->run_first && s->run_ms >= 0 &&
		    s->run_ms < P->rc->min_run_ms) {
			extra = P->rc->min_run_ms - s->run_ms;
			topped = 1;
		}
		int64_t a = s->start_ms;
		do {
			struct vg_bill_prices p;
			vg_bill_ratecard_prices(P->rc, proj, a, &p);
			int64_t b = p.until_ms < s->end_ms ? p.until_ms : s->end_ms;
			if (s->kind == VG_BILL_U_COMPUTE)
				rc = price_compute(P, s, &p, a, b, extra, topped);
			else
				rc = price_storage(P, s, &p, a, b);
			extra = 0;
			topped = 0;
			a = b;
		} while (!rc && a < s->end_ms);
	}
	return rc;
}

/* Network charges are summed per key as they are made (a month has one
 * bucket per vNIC and hour: millions of buckets, thousands of lines). */
struct netacc {
	struct charge *slot;
	size_t cap, n;
};

static uint64_t net_hash(const struct charge *c)
{
	uint64_t h = (uint64_t)c->res * 0x9E3779B97F4A7C15ULL;
	h ^= (uint64_t)(c->ik * 31 + c->tier) * 0xC2B2AE3D27D4EB4FULL;
	h ^= (uint64_t)c->rate * 0x165667B19E3779F9ULL;
	return h ^ (h >> 29);
}

static int net_add(struct netacc *a, const struct charge *c)
{
	if ((a->n + 1) * 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 1024;
		struct charge *s = calloc(cap, sizeof(*s));
		if (!s)
			return -ENOMEM;
		for (size_t i = 0; i < a->cap; i++) {
			if (!a->slot[i].ik)
				continue;
			size_t k = net_hash(&a->slot[i]) & (cap - 1);
			while (s[k].ik)
				k = (k + 1) & (cap - 1);
			s[k] = a->slot[i];
		}
		free(a->slot);
		a->slot = s;
		a->cap = cap;
	}
	size_t k = net_hash(c) & (a->cap - 1);
	for (;;) {
		struct charge *x = &a->slot[k];
		if (!x->ik) {
			*x = *c;
			a->n++;
			return 0;
		}
		if (x->res == c->res && x->ik == c->ik && x->tier == c->tier &&
		    x->rate == c->rate && x->ut == c->ut) {
			x->qty += c->qty;
			if (c->start < x->start)
				x->start = c->start;
			if (c->end > x->end)
				x->end = c->end;
			return 0;
		}
		k = (k + 1) & (a->cap - 1);
	}
}

/* A network charge: summed into its line (acc), or its own hour. */
static int keep(struct pricer *P, struct netacc *acc, const struct charge *c)
{
	return P->hourly ? add_charge(P, c) : net_add(acc, c);
}

static int price_network(struct pricer *P)
{
	const struct vg_bill_usage *u = P->u;
	const char *cur = NULL;
	int64_t cum = 0; /* egress bytes of the project so far this month */
	struct netacc acc = {0};
	struct vg_bill_prices p;
	int rc = 0, have = 0;
	char tb[32];

	for (size_t i = 0; i < u->nnet && !rc; i++) {
		const struct vg_bill_usage_net *n = &u->net[i];
		const char *proj = u->res[n->res].project;
		struct charge c = {0};

		if (P->project && strcmp(proj, P->project))
			continue;
		if (!cur || strcmp(cur, proj)) {
			cur = proj;
			cum = 0;
			have = 0;
		}
		if (!have || n->hour_ms < p.from_ms || n->hour_ms >= p.until_ms) {
			vg_bill_ratecard_prices(P->rc, proj, n->hour_ms, &p);
			have = 1;
		}
		c.res = n->res;
		c.start = n->hour_ms;
		c.end = n->hour_ms + HOUR_MS;
		c.den = VG_BILL_GB;
		c.bytes = n->tx;
		if (n->tx > 0 && !p.has_egress) {
			c.ut = VG_BILL_UT_EGRESS;
			c.ik = IK_NET_UNPRICED;
			c.qty = (vg_bill_u128)n->tx;
			rc = warn(P, proj, "data transfer out from %s is not "
					   "priced: no egress price is in force",
				  when(n->hour_ms, tb, sizeof(tb)));
			if (!rc)
				rc = keep(P, &acc, &c);
		} else if (n->tx > 0) {
			int64_t left = n->tx;
			for (size_t k = 0; k < p.ntiers && left > 0 && !rc; k++) {
				int64_t hi = p.tiers[k].up_to_bytes;
				int64_t room = hi < 0 ? left : hi - cum;
				if (room <= 0)
					continue;
				int64_t take = room < left ? room : left;
				c.ut = VG_BILL_UT_EGRESS;
				c.ik = IK_TIER;
				c.tier = (int)k + 1;
				c.tier_lo = k ? p.tiers[k - 1].up_to_bytes / VG_BILL_GB : 0;
				c.tier_hi = hi < 0 ? -1 : hi / VG_BILL_GB;
				c.rate = p.tiers[k].price_micro;
				c.qty = (vg_bill_u128)take;
				rc = keep(P, &acc, &c);
				cum += take;
				left -= take;
			}
		}
		if (!rc && n->rx > 0 && p.has_ingress && p.ingress_gb_micro > 0) {
			c.ut = VG_BILL_UT_INGRESS;
			c.ik = IK_INGRESS;
			c.tier = 0;
			c.tier_lo = c.tier_hi = 0;
			c.rate = p.ingress_gb_micro;
			c.qty = (vg_bill_u128)n->rx;
			c.bytes = n->rx;
			rc = keep(P, &acc, &c);
		}
	}
	for (size_t i = 0; i < acc.cap && !rc; i++)
		if (acc.slot[i].ik)
			rc = add_charge(P, &acc.slot[i]);
	free(acc.slot);
	return rc;
}

static int cmp_charge_u(const struct vg_bill_usage *u, const struct charge *x,
			const struct charge *y)
{
	int c;
	if (x->res != y->res) {
		c = strcmp(u->res[x->res].project, u->res[y->res].project);
		if (c)
			return c;
		c = strcmp(u->res[x->res].id, u->res[y->res].id);
		if (c)
			return c;
	}
	if (x->ut != y->ut)
		return x->ut - y->ut;
	if (x->ik != y->ik)
		return x->ik - y->ik;
	if (x->arg != y->arg) {
		c = strcmp(x->arg ? x->arg : "", y->arg ? y->arg : "");
		if (c)
			return c;
	}
	if (x->tier != y->tier)
		return x->tier - y->tier;
	if (x->rate != y->rate)
		return x->rate < y->rate ? -1 : 1;
	return 0;
}

static int cmp_charge(const void *a, const void *b, void *ctx)
{
	const struct charge *x = a, *y = b;
	int c = cmp_charge_u(ctx, x, y);
	if (c)
		return c;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Two pieces use at the same rate: qty per ms equal (exact, in 128 bits:
 * quantities stay below 2^80 and lengths below 2^40). */
static int same_density(const struct vg_bill_piece *a, const struct vg_bill_piece *b)
{
	return a->qty * (vg_bill_u128)(b->end_ms - b->start_ms) ==
	       b->qty * (vg_bill_u128)(a->end_ms - a->start_ms);
}

/* The pieces of a line from its charges (sorted by start): contiguous
 * charges at the same rate of use merge. More than VG_BILL_MAX_PIECES:
 * none are kept (*np 0). */
static void line_pieces(const struct charge *c, size_t n, struct vg_bill_piece *out, size_t *np)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		struct vg_bill_piece p = {c[i].start, c[i].end, c[i].qty};
		if (p.end_ms <= p.start_ms)
			continue;
		if (k && out[k - 1].end_ms == p.start_ms && same_density(&out[k - 1], &p)) {
			out[k - 1].end_ms = p.end_ms;
			out[k - 1].qty += p.qty;
			continue;
		}
		if (k == VG_BILL_MAX_PIECES) {
			*np = 0;
			return;
		}
		out[k++] = p;
	}
	*np = k;
}

/* The item of a network charge (part of its line's key). */
static void net_item(const struct charge *c, char *item, size_t len)
{
	if (c->ik == IK_TIER)
		snprintf(item, len, "egress-tier-%d", c->tier);
	else if (c->ik == IK_NET_UNPRICED)
		snprintf(item, len, "egress-unpriced");
	else
		snprintf(item, len, "ingress");
}

/* Build the line for charges [b, e) (all equal keys). */
static int make_line(struct pricer *P, struct vg_bill_invoice *inv,
		     const struct charge *c, size_t n)
{
	const struct vg_bill_usage *u = P->u;
	const struct vg_bill_usage_res *r = &u->res[c->res];
	struct vg_bill_invoice_line l = {0};
	char item[192], desc[512], key[768], name[512], rate[40];
	struct vg_bill_piece pieces[VG_BILL_MAX_PIECES];
	int runs = 0;

	l.start_ms = c->start;
	l.end_ms = c->end;
	for (size_t i = 0; i < n; i++) {
		l.qty += c[i].qty;
		runs += c[i].minimum_runs;
		l.minimum_added_ms += c[i].minimum_added_ms;
		if (c[i].start < l.start_ms)
			l.start_ms = c[i].start;
		if (c[i].end > l.end_ms)
			l.end_ms = c[i].end;
	}
	line_pieces(c, n, pieces, &l.npieces);
	l.pieces = pieces;
	l.qty_den = c->den;
	l.rate_micro = c->rate;
	l.usage_type = c->ut;
	l.minimum_runs = runs;
	l.amount_micro = vg_bill_amount(l.qty, l.rate_micro, l.qty_den, P->rc->digits);

	switch (c->ik) {
	case IK_FLAVOR:
		snprintf(item, sizeof(item), "flavor:%s", c->arg);
		snprintf(desc, sizeof(desc), "Compute: flavor %s", c->arg);
		l.unit = "hour";
		l.base_unit = "ms";
		break;
	case IK_VCPU:
		snprintf(item, sizeof(item), "vcpu");
		snprintf(desc, sizeof(desc), "Compute: vCPUs (flavor %s has no "
					     "price of its own)",
			 c->arg ? c->arg : "unknown");
		l.unit = "vCPU-hour";
		l.base_unit = "vCPU-ms";
		break;
	case IK_RAM:
		snprintf(item, sizeof(item), "ram");
		snprintf(desc, sizeof(desc), "Compute: RAM (flavor %s has no "
					     "price of its own)",
			 c->arg ? c->arg : "unknown");
		l.unit = "GiB-hour";
		l.base_unit = "MiB-ms";
		break;
	case IK_UNPRICED:
		snprintf(item, sizeof(item), "unpriced:%s", c->arg ? c->arg : "");
		snprintf(desc, sizeof(desc), "Compute: flavor %s (no price)",
			 c->arg ? c->arg : "unknown");
		l.unit = "hour";
		l.base_unit = "ms";
		break;
	case IK_DISK:
	case IK_ROOT:
		snprintf(item, sizeof(item), c->ik == IK_DISK ? "disk" : "root-disk");
		snprintf(desc, sizeof(desc), c->ik == IK_DISK ? "Storage: disk" : "Storage: root disk of the flavor (no disk reported)");
		l.unit = "GiB-month";
		l.base_unit = "byte-ms";
		break;
	case IK_TIER:
		net_item(c, item, sizeof(item));
		if (c->tier_hi < 0)
			snprintf(desc, sizeof(desc), "Data transfer out: tier %d "
						     "(above %lld GB this month)",
				 c->tier,
				 (long long)c->tier_lo);
		else
			snprintf(desc, sizeof(desc), "Data transfer out: tier %d "
						     "(%lld to %lld GB this month)",
				 c->tier,
				 (long long)c->tier_lo, (long long)c->tier_hi);
		l.unit = "GB";
		l.base_unit = "byte";
		break;
	case IK_NET_UNPRICED:
		net_item(c, item, sizeof(item));
		snprintf(desc, sizeof(desc), "Data transfer out (no price)");
		l.unit = "GB";
		l.base_unit = "byte";
		break;
	default: /* IK_INGRESS */
		net_item(c, item, sizeof(item));
		snprintf(desc, sizeof(desc), "Data transfer in");
		l.unit = "GB";
		l.base_unit = "byte";
		break;
	}
	if (runs) {
		size_t k = strlen(desc);
		int64_t add = l.minimum_added_ms;
		snprintf(desc + k, sizeof(desc) - k, "; %d run%s shorter than %lld s "
						     "billed as %lld s (+%lld.%03lld s)",
			 runs, runs > 1 ? "s" : "",
			 (long long)(P->rc->min_run_ms / 1000),
			 (long long)(P->rc->min_run_ms / 1000),
			 (long long)(add / 1000), (long long)(add % 1000));
	}
	if (r->parent_idx != VG_BILL_NO_INDEX && u->res[r->parent_idx].name)
		snprintf(name, sizeof(name), "%s/%s", u->res[r->parent_idx].name,
			 r->name ? r->name : r->id);
	else
		snprintf(name, sizeof(name), "%s", r->name ? r->name : "");
	vg_bill_rate_format(l.rate_micro, 0, rate, sizeof(rate));
	snprintf(key, sizeof(key), "%s|%s|%s|%s", r->id, ut_names[c->ut], item, rate);
	l.key = key;
	l.resource_id = r->id;
	l.resource_name = name[0] ? name : NULL;
	l.item = item;
	l.description = desc;
	const struct vg_bill_usage_res *inst =
		r->parent_idx != VG_BILL_NO_INDEX ? &u->res[r->parent_idx] : r;
	l.instance_id = inst->id;
	l.instance_name = inst->name;
	/* unit/base_unit are literals: vg_bill_invoice_add_line copies them */
	return vg_bill_invoice_add_line(inv, &l);
}

static void pricer_free(struct pricer *P)
{
	free(P->c);
	for (size_t i = 0; i < P->nw; i++) {
		free(P->wproj[i]);
		free(P->wtext[i]);
	}
	free(P->wproj);
	free(P->wtext);
}

static int run_pricer(struct pricer *P)
{
	int rc;
	if ((rc = price_segments(P)) || (rc = price_network(P)))
		return rc;
	if (P->n) /* qsort with a NULL base is undefined even for 0 elements */
		qsort_r(P->c, P->n, sizeof(*P->c), cmp_charge, (void *)P->u);
	return 0;
}

static const char *line_inst(const struct vg_bill_invoice_line *l)
{
	return l->instance_id ? l->instance_id : l->resource_id;
}

/* Reading order: by instance (the instance's own lines, then its disks
 * and vNICs), then usage type, then time (so an earlier price period
 * comes first), then the key. */
static int cmp_line(const void *a, const void *b)
{
	const struct vg_bill_invoice_line *x = a, *y = b;
	int c = strcmp(line_inst(x), line_inst(y));
	if (c)
		return c;
	int xs = !strcmp(x->resource_id, line_inst(x)), ys = !strcmp(y->resource_id, line_inst(y));
	if (xs != ys)
		return ys - xs;
	if ((c = strcmp(x->resource_id, y->resource_id)))
		return c;
	if (x->usage_type != y->usage_type)
		return x->usage_type - y->usage_type;
	if (x->start_ms != y->start_ms)
		return x->start_ms < y->start_ms ? -1 : 1;
	return strcmp(x->key, y->key);
}

/* Why line l is apart from p, the line above it: same resource and usage
 * type, so a price change (same item), a resize (another flavor), an
 * egress tier, a flavor without a price billed as vCPUs and RAM, or the
 * flavor's root disk beside a reported disk. */
static const char *split_reason(const struct vg_bill_invoice_line *p,
				const struct vg_bill_invoice_line *l)
{
	if (strcmp(p->resource_id, l->resource_id) || p->usage_type != l->usage_type)
		return NULL;
	if (!strcmp(p->item, l->item))
		return "price change";
	if (!strncmp(l->item, "egress-tier-", 12))
		return "tier";
	if ((!strcmp(l->item, "vcpu") || !strcmp(l->item, "ram")) &&
	    (!strcmp(p->item, "vcpu") || !strcmp(p->item, "ram")) &&
	    p->start_ms == l->start_ms)
		return "vCPU and RAM priced apart";
	if (l->usage_type == VG_BILL_UT_STORAGE)
		return "root disk";
	return "resize";
}

/* Turn the charges of one project [b, e) into inv's lines. */
static int fill(struct pricer *P, struct vg_bill_invoice *inv, size_t b, size_t e)
{
	int rc = 0;
	size_t first = inv->nlines;
	for (size_t i = b; i < e && !rc;) {
		size_t j = i + 1;
		while (j < e && !cmp_charge_u(P->u, &P->c[i], &P->c[j]))
			j++;
		rc = make_line(P, inv, &P->c[i], j - i);
		i = j;
	}
	if (!rc && inv->nlines > first + 1)
		qsort(inv->lines + first, inv->nlines - first, sizeof(*inv->lines), cmp_line);
	for (size_t i = first + 1; i < inv->nlines && !rc; i++) {
		const char *why = split_reason(&inv->lines[i - 1], &inv->lines[i]);
		if (why && !(inv->lines[i].split = strdup(why)))
			rc = -ENOMEM;
	}
	for (size_t i = 0; i < P->nw && !rc; i++)
		if (!strcmp(P->wproj[i], inv->project))
			rc = vg_bill_invoice_warn(inv, P->wtext[i]);
	return rc;
}

int vg_bill_invoice_compute(const struct vg_bill_usage *u, const struct vg_bill_ratecard *rc,
			    struct vg_bill_month m, const char *project,
			    struct vg_bill_invoice **out)
{
	struct pricer P = {u, rc, m, project, NULL, 0, 0, NULL, NULL, 0, 0, 0};
	struct vg_bill_invoice *inv;
	int r;

	*out = NULL;
	inv = vg_bill_invoice_new(project, m, rc);
	if (!inv)
		return -ENOMEM;
	if ((r = run_pricer(&P)) || (r = fill(&P, inv, 0, P.n)) ||
	    (r = vg_bill_invoice_totals(inv))) {
		pricer_free(&P);
		vg_bill_invoice_free(inv);
		return r;
	}
	pricer_free(&P);
	*out = inv;
	return 0;
}

int vg_bill_invoice_compute_all(const struct vg_bill_usage *u,
				const struct vg_bill_ratecard *rc, struct vg_bill_month m,
				struct vg_bill_invoice ***out, size_t *n)
{
	struct pricer P = {u, rc, m, NULL, NULL, 0, 0, NULL, NULL, 0, 0, 0};
	struct vg_bill_invoice **arr = NULL;
	size_t cnt = 0, cap = 0;
	int r;

	*out = NULL;
	*n = 0;
	if ((r = run_pricer(&P)))
		goto fail;
	for (size_t i = 0; i < P.n;) {
		const char *proj = u->res[P.c[i].res].project;
		size_t j = i + 1;
		while (j < P.n && !strcmp(u->res[P.c[j].res].project, proj))
			j++;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			struct vg_bill_invoice **na = realloc(arr, cap * sizeof(*na));
			if (!na) {
				r = -ENOMEM;
				goto fail;
			}
			arr = na;
		}
		if (!(arr[cnt] = vg_bill_invoice_new(proj, m, rc))) {
			r = -ENOMEM;
			goto fail;
		}
		cnt++;
		if ((r = fill(&P, arr[cnt - 1], i, j)))
			goto fail;
		/* an invoice past VG_BILL_MONEY_MAX stays, totals unset:
		 * one project's does not fail the others' (the caller's
		 * vg_bill_invoice_totals says -ERANGE for it) */
		if ((r = vg_bill_invoice_totals(arr[cnt - 1])) && r != -ERANGE)
			goto fail;
		r = 0;
		i = j;
	}
	pricer_free(&P);
	*out = arr;
	*n = cnt;
	return 0;
fail:
	for (size_t i = 0; i < cnt; i++)
		vg_bill_invoice_free(arr[i]);
	free(arr);
	pricer_free(&P);
	return r;
}

/* ---- network lines hour by hour (nethours.h) ---------------------------------- */

void vg_bill_net_hours_clear(struct vg_bill_net_hours *h)
{
	for (size_t i = 0; i < h->nkeys; i++)
		free(h->keys[i]);
	free(h->keys);
	free(h->h);
	memset(h, 0, sizeof(*h));
}

int vg_bill_net_hours(const struct vg_bill_usage *u, const struct vg_bill_ratecard *rc,
		      struct vg_bill_month m, const char *project, struct vg_bill_net_hours *out)
{
	struct pricer P = {u, rc, m, project, NULL, 0, 0, NULL, NULL, 0, 0, 1};
	size_t capk = 0;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = price_network(&P)))
		goto out;
	if (P.n)
		qsort_r(P.c, P.n, sizeof(*P.c), cmp_charge, (void *)u);
	if (P.n && !(out->h = malloc(P.n * sizeof(*out->h)))) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < P.n; i++) {
		const struct charge *c = &P.c[i];
		if (!i || cmp_charge_u(u, &P.c[i - 1], c)) {
			char item[64], rate[40], key[768];
			net_item(c, item, sizeof(item));
			vg_bill_rate_format(c->rate, 0, rate, sizeof(rate));
			snprintf(key, sizeof(key), "%s|%s|%s|%s", u->res[c->res].id,
				 ut_names[c->ut], item, rate);
			if (vg_array_grow((void **)&out->keys, &capk, out->nkeys + 1,
					  sizeof(*out->keys)) ||
			    !(out->keys[out->nkeys] = strdup(key))) {
				r = -ENOMEM;
				goto out;
			}
			out->nkeys++;
		}
		struct vg_bill_net_hour *h = &out->h[out->n++];
		h->key = out->nkeys - 1;
		h->hour_ms = c->start;
		h->qty = c->qty;
		h->bytes = c->bytes;
		h->res = c->res;
		h->ut = c->ut;
	}
out:
	pricer_free(&P);
	if (r)
		vg_bill_net_hours_clear(out);
	return r;
}
