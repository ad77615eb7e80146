/*
 * render.c — invoices as JSON (the document of record), CSV (one row per
 * line item, columns in the spirit of AWS Cost and Usage Report line
 * items) and a printable HTML page; and JSON back into an invoice.
 *
 * Design: rendering is a pure function of the invoice: no clock, no
 * locale, fixed key order, fixed number formats (amounts with exactly the
 * currency's minor digits, rates with up to 6 decimals, quantities with 6
 * decimals of the billed unit plus the exact integer in base units). So a
 * finalized invoice, stored as JSON and read back, renders to the same
 * bytes every time, in every format. Times are ISO 8601 UTC, with
 * milliseconds only when they are not zero.
 *
 * Why one file (~1,100 lines): the three formats must say the same thing
 * about the same invoice, and they do so by sharing the formatting of
 * times, quantities and amounts and the summaries at the top of this file;
 * JSON is also read back here, so the writer and the reader of the document
 * of record change together.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "vigie/bill_invoice.h"
#include "vigie/clock.h"
#include "vigie/csv.h"

int vg_bill_invoice_format_parse(const char *s)
{
	if (!s || !strcmp(s, "json"))
		return VG_BILL_FMT_JSON;
	if (!strcmp(s, "csv"))
		return VG_BILL_FMT_CSV;
	if (!strcmp(s, "html"))
		return VG_BILL_FMT_HTML;
	return -EINVAL;
}

const char *vg_bill_invoice_format_mime(int fmt)
{
	switch (fmt) {
	case VG_BILL_FMT_CSV: return "text/csv; charset=utf-8";
	case VG_BILL_FMT_HTML: return "text/html; charset=utf-8";
	default: return "application/json";
	}
}

/* ---- times ------------------------------------------------------------------- */

static char *iso(int64_t ms, char *buf, size_t len)
{
	int64_t s = ms >= 0 ? ms / 1000 * 1000 : (ms - 999) / 1000 * 1000;
	int frac = (int)(ms - s);

	vg_time_format(s, buf, len);
	if (frac && strlen(buf) == 20) { /* "....T..:..:..Z" */
		buf[19] = '\0';
		size_t n = strlen(buf);
		snprintf(buf + n, len - n, ".%03dZ", frac);
	}
	return buf;
}

static int iso_parse(const char *s, int64_t *ms)
{
	char tmp[40];
	const char *dot;
	int frac = 0;

	if (!s || strlen(s) >= sizeof(tmp))
		return -EINVAL;
	snprintf(tmp, sizeof(tmp), "%s", s);
	if ((dot = strchr(s, '.'))) {
		if (strlen(dot) != 5 || dot[4] != 'Z')
			return -EINVAL;
		for (int i = 1; i <= 3; i++) {
			if (dot[i] < '0' || dot[i] > '9')
				return -EINVAL;
			frac = frac * 10 + (dot[i] - '0');
		}
		tmp[dot - s] = 'Z';
		tmp[dot - s + 1] = '\0';
	}
	if (vg_time_parse(tmp, 0, ms))
		return -EINVAL;
	*ms += frac;
	return 0;
}

/* ---- quantities (signed on adjustment lines) ------------------------------------- */

static char *qty_text(const struct vg_bill_invoice_line *l, char *buf, size_t len)
{
	buf[0] = '-';
	vg_bill_u128_decimal(l->qty, l->qty_den, 6, buf + 1, len - 1);
	return l->qty_neg && l->qty ? buf : buf + 1;
}

static char *qty_base_text(const struct vg_bill_invoice_line *l, char *buf, size_t len)
{
	buf[0] = '-';
	vg_bill_u128_format(l->qty, buf + 1, len - 1);
	return l->qty_neg && l->qty ? buf : buf + 1;
}

/* ---- summaries ------------------------------------------------------------------ */

/* Services an AWS-like bill sums by: compute, storage, network (egress and
 * ingress), adjustments. */
enum { SV_COMPUTE,
       SV_STORAGE,
       SV_NETWORK,
       SV_ADJUST,
       SV_N };
static const char *const sv_names[SV_N] = {"compute", "storage", "network",
					   "adjustment"};

static int service_of(int ut)
{
	switch (ut) {
	case VG_BILL_UT_COMPUTE: return SV_COMPUTE;
	case VG_BILL_UT_STORAGE: return SV_STORAGE;
	case VG_BILL_UT_EGRESS:
	case VG_BILL_UT_INGRESS: return SV_NETWORK;
	default: return SV_ADJUST;
	}
}

struct inst_sum {
	const char *id, *name;
	int64_t sv[SV_N], total;
};

/* Per-instance sums of inv's lines, in the order instances first appear.
 * *out malloc'd (caller frees), NULL with *n = 0 if there are no lines.
 * 0 or -ENOMEM. */
static int instance_sums(const struct vg_bill_invoice *inv, struct inst_sum **out, size_t *n)
{
	struct inst_sum *a = NULL;
	size_t cnt = 0, last = 0;

	*out = NULL;
	*n = 0;
	if (inv->nlines && !(a = calloc(inv->nlines, sizeof(*a))))
		return -ENOMEM;
	for (size_t i = 0; i < inv->nlines; i++) {
		const struct vg_bill_invoice_line *l = &inv->lines[i];
		const char *id = l->instance_id ? l->instance_id : l->resource_id;
		size_t k = cnt;
		if (cnt && !strcmp(a[last].id, id))
			k = last;
		else
			for (size_t j = 0; j < cnt; j++)
				if (!strcmp(a[j].id, id)) {
					k = j;
					break;
				}
		if (k == cnt) {
			a[cnt].id = id;
			a[cnt].name = l->instance_name  ? l->instance_name
				      : !l->instance_id ? l->resource_name
							: NULL;
			cnt++;
		}
		int sv = l->adjustment_for ? SV_ADJUST : service_of(l->usage_type);
		a[k].sv[sv] += l->amount_micro;
		a[k].total += l->amount_micro;
		last = k;
	}
	*out = a;
	*n = cnt;
	return 0;
}

static void service_sums(const struct vg_bill_invoice *inv, int64_t sv[SV_N])
{
	memset(sv, 0, SV_N * sizeof(*sv));
	for (size_t i = 0; i < inv->nlines; i++) {
		const struct vg_bill_invoice_line *l = &inv->lines[i];
		sv[l->adjustment_for ? SV_ADJUST : service_of(l->usage_type)] += l->amount_micro;
	}
}

/* The seconds the minimum added, "95.000"; "" when none. */
static char *min_secs(const struct vg_bill_invoice_line *l, char *buf, size_t len)
{
	if (l->minimum_runs <= 0 && l->minimum_added_ms <= 0)
		buf[0] = '\0';
	else
		snprintf(buf, len, "%lld.%03lld", (long long)(l->minimum_added_ms / 1000),
			 (long long)(l->minimum_added_ms % 1000));
	return buf;
}

static const char *const doc_names[] = {"usage-statement", "invoice", "credit-note"};
static const char *const doc_titles[] = {"Usage statement", "Invoice", "Credit note"};

static const char *doc_name(int d)
{
	return d >= 0 && d <= 2 ? doc_names[d] : doc_names[0];
}

/* "2026-11-02" (UTC day of ms) */
static char *day(int64_t ms, char *buf, size_t len)
{
	char t[48];
	vg_time_format(ms, t, sizeof(t));
	snprintf(buf, len, "%.10s", t);
	return buf;
}

/* ---- JSON ---------------------------------------------------------------------- */

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *party_json(const struct vg_bill_party *p)
{
	json_t *o, *a;
	if (!p->name)
		return json_null();
	o = json_object();
	a = json_array();
	json_object_set_new(o, "name", json_string(p->name));
	for (size_t i = 0; i < p->naddress; i++)
		json_array_append_new(a, json_string(p->address[i]));
	json_object_set_new(o, "address", a);
	json_object_set_new(o, "tax_id", str_or_null(p->tax_id));
	json_object_set_new(o, "country", p->country[0] ? json_string(p->country) : json_null());
	return o;
}

static json_t *to_json(const struct vg_bill_invoice *inv)
{
	json_t *root = json_object(), *lines = json_array(), *sub = json_object(),
	       *warn = json_array(), *period = json_object();
	char b1[48], b2[48], ms[16];

	if (!root || !lines || !sub || !warn || !period)
		goto oom;
	json_object_set_new(root, "invoice", json_string(inv->number));
	json_object_set_new(root, "document", json_string(doc_name(inv->doc)));
	json_object_set_new(root, "status", json_string(inv->final ? "final" : "draft"));
	json_object_set_new(root, "issuer", party_json(&inv->issuer));
	json_object_set_new(root, "customer", party_json(&inv->customer));
	json_object_set_new(root, "issue_date", inv->issue_ms >= 0 ? json_string(day(inv->issue_ms, b1, sizeof(b1))) : json_null());
	json_object_set_new(root, "due_date", inv->due_ms >= 0 ? json_string(day(inv->due_ms, b1, sizeof(b1))) : json_null());
	json_object_set_new(root, "payment_terms_days", inv->payment_terms_days >= 0 ? json_integer(inv->payment_terms_days) : json_null());
	json_object_set_new(root, "project", json_string(inv->project));
	json_object_set_new(root, "project_name", str_or_null(inv->project_name));
	json_object_set_new(period, "month", json_string(vg_bill_month_format(inv->month, ms, sizeof(ms))));
	json_object_set_new(period, "start", json_string(iso(vg_bill_month_start_ms(inv->month), b1, sizeof(b1))));
	json_object_set_new(period, "end", json_string(iso(vg_bill_month_end_ms(inv->month), b1, sizeof(b1))));
	json_object_set_new(root, "period", period);
	period = NULL;
	json_object_set_new(root, "currency", json_string(inv->currency));
	json_object_set_new(root, "minor_unit_digits", json_integer(inv->digits));
	json_object_set_new(root, "finalized_at", inv->final && inv->finalized_ms >= 0 ? json_string(iso(inv->finalized_ms, b1, sizeof(b1))) : json_null());
	for (size_t i = 0; i < inv->nlines; i++) {
		const struct vg_bill_invoice_line *l = &inv->lines[i];
		json_t *o = json_object();
		if (!o)
			goto oom;
		json_object_set_new(o, "key", json_string(l->key));
		json_object_set_new(o, "resource_id", json_string(l->resource_id));
		json_object_set_new(o, "resource_name", str_or_null(l->resource_name));
		json_object_set_new(o, "usage_type", json_string(vg_bill_usage_type_name(l->usage_type)));
		json_object_set_new(o, "item", json_string(l->item));
		json_object_set_new(o, "description", json_string(l->description));
		json_object_set_new(o, "usage_start", json_string(iso(l->start_ms, b1, sizeof(b1))));
		json_object_set_new(o, "usage_end", json_string(iso(l->end_ms, b1, sizeof(b1))));
		json_object_set_new(o, "quantity", json_string(qty_text(l, b1, sizeof(b1))));
		json_object_set_new(o, "unit", json_string(l->unit));
		json_object_set_new(o, "quantity_base", json_string(qty_base_text(l, b1, sizeof(b1))));
		json_object_set_new(o, "base_unit", json_string(l->base_unit));
		json_object_set_new(o, "base_per_unit", json_string(vg_bill_u128_format(l->qty_den, b1, sizeof(b1))));
		json_object_set_new(o, "rate", json_string(vg_bill_rate_format(l->rate_micro, inv->digits, b1, sizeof(b1))));
		json_object_set_new(o, "amount", json_string(vg_bill_money_format(l->amount_micro, inv->digits, b2, sizeof(b2))));
		json_object_set_new(o, "amount_micro", json_integer(l->amount_micro));
		json_object_set_new(o, "minimum_runs", json_integer(l->minimum_runs));
		if (l->minimum_runs > 0 || l->minimum_added_ms > 0)
			json_object_set_new(o, "minimum_added_seconds", json_string(min_secs(l, b1, sizeof(b1))));
		json_object_set_new(o, "instance_id", json_string(l->instance_id ? l->instance_id : l->resource_id));
		json_object_set_new(o, "instance_name", str_or_null(l->instance_id ? l->instance_name : l->resource_name));
		json_object_set_new(o, "split", str_or_null(l->split));
		if (l->npieces > 0) {
			/* [from, to, quantity in base units]: what the quantity
			 * is made of, what a later adjustment compares with */
			json_t *ps = json_array();
			for (size_t k = 0; ps && k < l->npieces; k++) {
				const struct vg_bill_piece *pc = &l->pieces[k];
				json_t *a = json_array();
				json_array_append_new(a, json_string(iso(pc->start_ms, b1, sizeof(b1))));
				json_array_append_new(a, json_string(iso(pc->end_ms, b1, sizeof(b1))));
				json_array_append_new(a, json_string(vg_bill_u128_format(pc->qty, b1, sizeof(b1))));
				json_array_append_new(ps, a);
			}
			json_object_set_new(o, "usage_pieces", ps);
		}
		if (l->nslices > 0) {
			/* [from, to, signed quantity in base units, why]: the
			 * hours of a network line that changed */
			json_t *ss = json_array();
			for (size_t k = 0; ss && k < l->nslices; k++) {
				const struct vg_bill_slice *sc = &l->slices[k];
				json_t *a = json_array();
				json_array_append_new(a, json_string(iso(sc->start_ms, b1, sizeof(b1))));
				json_array_append_new(a, json_string(iso(sc->end_ms, b1, sizeof(b1))));
				b1[0] = '-';
				vg_bill_u128_format(sc->qty, b1 + 1, sizeof(b1) - 1);
				json_array_append_new(a, json_string(sc->qty_neg ? b1 : b1 + 1));
				json_array_append_new(a, json_string(sc->why == VG_BILL_SLICE_TIER ? "tier" : "usage"));
				json_array_append_new(ss, a);
			}
			json_object_set_new(o, "changed_slices", ss);
		}
		if (l->adjustment_for) {
			json_object_set_new(o, "adjustment_for", json_string(l->adjustment_for));
			json_object_set_new(o, "adjusted_type", str_or_null(l->adjusted_type));
			json_object_set_new(o, "corrects_invoice", str_or_null(l->corrects));
		}
		json_array_append_new(lines, o);
	}
	json_object_set_new(root, "lines", lines);
	lines = NULL;
	/* empty subtotals are omitted: a usage type with no line */
	for (int ut = 0; ut < VG_BILL_UT_N; ut++) {
		int any = 0;
		for (size_t i = 0; i < inv->nlines && !any; i++)
			any = inv->lines[i].usage_type == ut;
		if (any)
			json_object_set_new(sub, vg_bill_usage_type_name(ut),
					    json_string(vg_bill_money_format(inv->subtotal_micro[ut], inv->digits, b1, sizeof(b1))));
	}
	json_object_set_new(root, "subtotals", sub);
	sub = NULL;
	{
		json_t *summ = json_object(), *svs = json_object(), *insts = json_array();
		struct inst_sum *is;
		size_t nis;
		int64_t sv[SV_N];
		if (!summ || !svs || !insts || instance_sums(inv, &is, &nis)) {
			json_decref(summ);
			json_decref(svs);
			json_decref(insts);
			goto oom;
		}
		service_sums(inv, sv);
		for (int k = 0; k < SV_N; k++) {
			int any = 0;
			for (size_t i = 0; i < inv->nlines && !any; i++)
				any = (inv->lines[i].adjustment_for ? SV_ADJUST
								    : service_of(inv->lines[i].usage_type)) == k;
			if (any)
				json_object_set_new(svs, sv_names[k], json_string(vg_bill_money_format(sv[k], inv->digits, b1, sizeof(b1))));
		}
		for (size_t i = 0; i < nis; i++) {
			json_t *o = json_object();
			json_object_set_new(o, "instance_id", json_string(is[i].id));
			json_object_set_new(o, "name", str_or_null(is[i].name));
			for (int k = 0; k < SV_N; k++)
				if (is[i].sv[k])
					json_object_set_new(o, sv_names[k], json_string(vg_bill_money_format(is[i].sv[k], inv->digits, b1, sizeof(b1))));
			json_object_set_new(o, "total", json_string(vg_bill_money_format(is[i].total, inv->digits, b1, sizeof(b1))));
			json_array_append_new(insts, o);
		}
		free(is);
		json_object_set_new(summ, "services", svs);
		json_object_set_new(summ, "instances", insts);
		json_object_set_new(root, "summary", summ);
	}
	json_object_set_new(root, "total", json_string(vg_bill_money_format(inv->total_micro, inv->digits, b1, sizeof(b1))));
	json_object_set_new(root, "total_micro", json_integer(inv->total_micro));
	{
		json_t *tax = json_array();
		if (inv->has_tax) {
			json_t *o = json_object();
			json_object_set_new(o, "rate", json_string(vg_bill_rate_format(inv->tax_rate_micro, 2, b1, sizeof(b1))));
			json_object_set_new(o, "base", json_string(vg_bill_money_format(inv->total_micro, inv->digits, b1, sizeof(b1))));
			json_object_set_new(o, "amount", json_string(vg_bill_money_format(inv->tax_micro, inv->digits, b1, sizeof(b1))));
			json_object_set_new(o, "note", str_or_null(inv->tax_note));
			json_array_append_new(tax, o);
		}
		json_object_set_new(root, "tax", tax);
	}
	json_object_set_new(root, "amount_due", json_string(vg_bill_money_format(inv->amount_due_micro, inv->digits, b1, sizeof(b1))));
	for (size_t i = 0; i < inv->nwarnings; i++)
		json_array_append_new(warn, json_string(inv->warnings[i]));
	json_object_set_new(root, "warnings", warn);
	return root;
oom:
	json_decref(root);
	json_decref(lines);
	json_decref(sub);
	json_decref(warn);
	json_decref(period);
	return NULL;
}

static int render_json(const struct vg_bill_invoice *inv, char **out, size_t *len)
{
	json_t *j = to_json(inv);
	char *s;

	if (!j)
		return -ENOMEM;
	s = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	if (!s)
		return -ENOMEM;
	size_t n = strlen(s);
	char *t = realloc(s, n + 2);
	if (!t) {
		free(s);
		return -ENOMEM;
	}
	t[n] = '\n';
	t[n + 1] = '\0';
	*out = t;
	*len = n + 1;
	return 0;
}

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int party_from(json_t *o, struct vg_bill_party *p)
{
	json_t *a, *x;
	size_t i;

	if (!json_is_object(o))
		return 0;
	if (!jstr(o, "name"))
		return -EBADMSG;
	if (!(p->name = strdup(jstr(o, "name"))) ||
	    (jstr(o, "tax_id") && !(p->tax_id = strdup(jstr(o, "tax_id")))))
		return -ENOMEM;
	if (jstr(o, "country"))
		snprintf(p->country, sizeof(p->country), "%s", jstr(o, "country"));
	a = json_object_get(o, "address");
	json_array_foreach(a, i, x) {
		if (i >= VG_BILL_MAX_ADDRESS || !json_is_string(x))
			return -EBADMSG;
		if (!(p->address[i] = strdup(json_string_value(x))))
			return -ENOMEM;
		p->naddress = i + 1;
	}
	return 0;
}

static int day_parse(const char *s, int64_t *ms)
{
	char t[32];
	if (!s || strlen(s) != 10)
		return -EINVAL;
	snprintf(t, sizeof(t), "%sT00:00:00Z", s);
	return vg_time_parse(t, 0, ms) ? -EINVAL : 0;
}

int vg_bill_invoice_from_json(const char *text, size_t len, struct vg_bill_invoice **out)
{
	json_t *root, *lines, *l;
	struct vg_bill_invoice *inv = NULL;
	struct vg_bill_month m;
	size_t i;
	int rc = -EBADMSG;

	*out = NULL;
	if (!(root = json_loadb(text, len, 0, NULL)))
		return -EBADMSG;
	const char *proj = jstr(root, "project"), *num = jstr(root, "invoice"),
		   *cur = jstr(root, "currency"), *st = jstr(root, "status");
	json_t *period = json_object_get(root, "period");
	if (!proj || !num || !cur || strlen(cur) != 3 || !st ||
	    vg_bill_month_parse(jstr(period, "month"), &m) ||
	    !json_is_integer(json_object_get(root, "minor_unit_digits")))
		goto out;
	if (!(inv = vg_bill_invoice_new(proj, m, NULL))) {
		rc = -ENOMEM;
		goto out;
	}
	free(inv->number);
	if (!(inv->number = strdup(num))) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = party_from(json_object_get(root, "issuer"), &inv->issuer)) ||
	    (rc = party_from(json_object_get(root, "customer"), &inv->customer)))
		goto out;
	rc = -EBADMSG;
	for (int d = 0; d < 3; d++)
		if (jstr(root, "document") && !strcmp(jstr(root, "document"), doc_names[d]))
			inv->doc = d;
	if (jstr(root, "issue_date") && day_parse(jstr(root, "issue_date"), &inv->issue_ms))
		goto out;
	if (jstr(root, "due_date") && day_parse(jstr(root, "due_date"), &inv->due_ms))
		goto out;
	if (json_is_integer(json_object_get(root, "payment_terms_days")))
		inv->payment_terms_days = (int)json_integer_value(json_object_get(root, "payment_terms_days"));
	{
		json_t *t0 = json_array_get(json_object_get(root, "tax"), 0);
		if (t0) {
			if (vg_bill_money_parse(jstr(t0, "rate"), 0, &inv->tax_rate_micro))
				goto out;
			inv->has_tax = 1;
			if (jstr(t0, "note") && !(inv->tax_note = strdup(jstr(t0, "note")))) {
				rc = -ENOMEM;
				goto out;
			}
		}
	}
	if (jstr(root, "project_name") &&
	    !(inv->project_name = strdup(jstr(root, "project_name")))) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(inv->currency, cur, 4);
	inv->digits = (int)json_integer_value(json_object_get(root, "minor_unit_digits"));
	inv->final = !strcmp(st, "final");
	if (jstr(root, "finalized_at") && iso_parse(jstr(root, "finalized_at"), &inv->finalized_ms))
		goto out;
	lines = json_object_get(root, "lines");
	if (!json_is_array(lines))
		goto out;
	json_array_foreach(lines, i, l) {
		struct vg_bill_invoice_line x = {0};
		int ut = vg_bill_usage_type_parse(jstr(l, "usage_type"));
		json_t *am = json_object_get(l, "amount_micro");
		if (ut < 0 || !jstr(l, "key") || !jstr(l, "resource_id") ||
		    !jstr(l, "item") || !jstr(l, "description") || !jstr(l, "unit") ||
		    !jstr(l, "base_unit") || !json_is_integer(am) ||
		    iso_parse(jstr(l, "usage_start"), &x.start_ms) ||
		    iso_parse(jstr(l, "usage_end"), &x.end_ms) ||
		    !jstr(l, "quantity_base") ||
		    vg_bill_u128_parse(jstr(l, "quantity_base") + (jstr(l, "quantity_base")[0] == '-'), &x.qty) ||
		    vg_bill_u128_parse(jstr(l, "base_per_unit"), &x.qty_den) ||
		    vg_bill_money_parse(jstr(l, "rate"), 1, &x.rate_micro))
			goto out;
		x.usage_type = ut;
		x.qty_neg = jstr(l, "quantity_base")[0] == '-';
		x.key = (char *)jstr(l, "key");
		x.resource_id = (char *)jstr(l, "resource_id");
		x.resource_name = (char *)jstr(l, "resource_name");
		x.item = (char *)jstr(l, "item");
		x.description = (char *)jstr(l, "description");
		x.unit = (char *)jstr(l, "unit");
		x.base_unit = (char *)jstr(l, "base_unit");
		x.amount_micro = json_integer_value(am);
		x.minimum_runs = (int)json_integer_value(json_object_get(l, "minimum_runs"));
		x.adjustment_for = (char *)jstr(l, "adjustment_for");
		x.adjusted_type = (char *)jstr(l, "adjusted_type");
		x.instance_id = (char *)jstr(l, "instance_id");
		x.instance_name = (char *)jstr(l, "instance_name");
		x.split = (char *)jstr(l, "split");
		x.corrects = (char *)jstr(l, "corrects_invoice");
		if (jstr(l, "minimum_added_seconds")) {
			int64_t micro;
			if (vg_bill_money_parse(jstr(l, "minimum_added_seconds"), 1, &micro))
				goto out;
			x.minimum_added_ms = micro / 1000;
		}
		struct vg_bill_piece pcs[VG_BILL_MAX_PIECES];
		json_t *ps = json_object_get(l, "usage_pieces"), *pa;
		size_t pi;
		if (ps && (!json_is_array(ps) || json_array_size(ps) > VG_BILL_MAX_PIECES))
			goto out;
		json_array_foreach(ps, pi, pa) {
			const char *f = json_string_value(json_array_get(pa, 0));
			const char *t = json_string_value(json_array_get(pa, 1));
			const char *q = json_string_value(json_array_get(pa, 2));
			if (!f || !t || !q || iso_parse(f, &pcs[pi].start_ms) ||
			    iso_parse(t, &pcs[pi].end_ms) || vg_bill_u128_parse(q, &pcs[pi].qty) ||
			    pcs[pi].end_ms <= pcs[pi].start_ms)
				goto out;
		}
		x.pieces = pcs;
		x.npieces = ps ? json_array_size(ps) : 0;
		struct vg_bill_slice scs[VG_BILL_MAX_SLICES];
		json_t *ss = json_object_get(l, "changed_slices"), *sa;
		size_t si;
		if (ss && (!json_is_array(ss) || json_array_size(ss) > VG_BILL_MAX_SLICES))
			goto out;
		json_array_foreach(ss, si, sa) {
			const char *f = json_string_value(json_array_get(sa, 0));
			const char *t = json_string_value(json_array_get(sa, 1));
			const char *q = json_string_value(json_array_get(sa, 2));
			const char *w = json_string_value(json_array_get(sa, 3));
			if (!f || !t || !q || !w || iso_parse(f, &scs[si].start_ms) ||
			    iso_parse(t, &scs[si].end_ms) || scs[si].end_ms <= scs[si].start_ms ||
			    (strcmp(w, "usage") && strcmp(w, "tier")))
				goto out;
			scs[si].qty_neg = q[0] == '-';
			if (vg_bill_u128_parse(q + scs[si].qty_neg, &scs[si].qty))
				goto out;
			scs[si].why = strcmp(w, "tier") ? VG_BILL_SLICE_USAGE : VG_BILL_SLICE_TIER;
		}
		x.slices = scs;
		x.nslices = ss ? json_array_size(ss) : 0;
		if ((rc = vg_bill_invoice_add_line(inv, &x)))
			goto out;
		rc = -EBADMSG;
	}
	json_t *w = json_object_get(root, "warnings");
	json_array_foreach(w, i, l)
		if (json_is_string(l) && (rc = vg_bill_invoice_warn(inv, json_string_value(l))))
			goto out;
	if (vg_bill_invoice_totals(inv) ||
	    inv->total_micro != json_integer_value(json_object_get(root, "total_micro"))) {
		rc = -EBADMSG;
		goto out;
	}
	if (jstr(root, "amount_due")) {
		int64_t due;
		if (vg_bill_money_parse(jstr(root, "amount_due"), 1, &due) || due != inv->amount_due_micro) {
			rc = -EBADMSG;
			goto out;
		}
	}
	*out = inv;
	inv = NULL;
	rc = 0;
out:
	vg_bill_invoice_free(inv);
	json_decref(root);
	return rc;
}

/* ---- text buffer ------------------------------------------------------------------ */

struct tb {
	char *p;
	size_t len, cap;
	int oom;
};

static void tb_add(struct tb *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void tb_puts(struct tb *b, const char *s)
{
	tb_add(b, s, strlen(s));
}

static int tb_done(struct tb *b, char **out, size_t *len)
{
	if (b->oom || !b->p) {
		free(b->p);
		return -ENOMEM;
	}
	*out = b->p;
	*len = b->len;
	return 0;
}

/* ---- CSV -------------------------------------------------------------------------- */

static void csv_field(struct tb *b, const char *s, int last)
{
	s = s ? s : "";
	if (strpbrk(s, ",\"\r\n")) {
		tb_puts(b, "\"");
		if (vg_csv_formula(s))
			tb_puts(b, "'");
		for (; *s; s++) {
			if (*s == '"')
				tb_puts(b, "\"\"");
			else
				tb_add(b, s, 1);
		}
		tb_puts(b, "\"");
	} else {
		if (vg_csv_formula(s))
			tb_puts(b, "'");
		tb_puts(b, s);
	}
	tb_puts(b, last ? "\r\n" : ",");
}

static const char *const csv_cols[] = {
	"identity/LineItemId",
	"bill/InvoiceId",
	"bill/BillType",
	"bill/BillingPeriodStartDate",
	"bill/BillingPeriodEndDate",
	"lineItem/UsageAccountId",
	"lineItem/UsageAccountName",
	"lineItem/LineItemType",
	"lineItem/UsageStartDate",
	"lineItem/UsageEndDate",
	"lineItem/ProductCode",
	"lineItem/UsageType",
	"lineItem/Operation",
	"lineItem/ResourceId",
	"resourceTags/user:Name",
	"lineItem/UsageAmount",
	"pricing/unit",
	"lineItem/UnblendedRate",
	"lineItem/UnblendedCost",
	"lineItem/CurrencyCode",
	"lineItem/LineItemDescription",
	"vigie/AdjustmentFor",
	"vigie/InstanceId",
	"vigie/InstanceName",
	"vigie/SplitReason",
	"vigie/MinimumAddedSeconds",
	"vigie/CorrectsInvoice",
};
#define NCOLS (sizeof(csv_cols) / sizeof(csv_cols[0]))

static int render_csv(const struct vg_bill_invoice *inv, char **out, size_t *len)
{
	struct tb b = {0};
	char ps[40], pe[40], us[40], ue[40], q[48], r[40], a[40], mn[40];

	for (size_t i = 0; i < NCOLS; i++)
		csv_field(&b, csv_cols[i], i + 1 == NCOLS);
	iso(vg_bill_month_start_ms(inv->month), ps, sizeof(ps));
	iso(vg_bill_month_end_ms(inv->month), pe, sizeof(pe));
	for (size_t i = 0; i < inv->nlines; i++) {
		const struct vg_bill_invoice_line *l = &inv->lines[i];
		const char *row[NCOLS] = {
			l->key,
			inv->number,
			inv->final ? "Final" : "Draft",
			ps,
			pe,
			inv->project,
			inv->project_name,
			l->adjustment_for ? "Adjustment" : "Usage",
			iso(l->start_ms, us, sizeof(us)),
			iso(l->end_ms, ue, sizeof(ue)),
			"vigie",
			l->adjustment_for && l->adjusted_type ? l->adjusted_type
							      : vg_bill_usage_type_name(l->usage_type),
			l->item,
			l->resource_id,
			l->resource_name,
			qty_text(l, q, sizeof(q)),
			l->unit,
			vg_bill_rate_format(l->rate_micro, inv->digits, r, sizeof(r)),
			vg_bill_money_format(l->amount_micro, inv->digits, a, sizeof(a)),
			inv->currency,
			l->description,
			l->adjustment_for,
			l->instance_id ? l->instance_id : l->resource_id,
			l->instance_id ? l->instance_name : l->resource_name,
			l->split,
			min_secs(l, mn, sizeof(mn)),
			l->corrects,
		};
		for (size_t k = 0; k < NCOLS; k++)
			csv_field(&b, row[k], k + 1 == NCOLS);
	}
	/* the tax, as AWS's "Tax" line item: base in UsageAmount */
	if (inv->has_tax) {
		char base[40], rt[40], tx[40];
		const char *row[NCOLS] = {
			"tax-1",
			inv->number,
			inv->final ? "Final" : "Draft",
			ps,
			pe,
			inv->project,
			inv->project_name,
			"Tax",
			NULL,
			NULL,
			"vigie",
			"tax",
			"tax",
			NULL,
			NULL,
			vg_bill_money_format(inv->total_micro, inv->digits, base, sizeof(base)),
			inv->currency,
			vg_bill_rate_format(inv->tax_rate_micro, 2, rt, sizeof(rt)),
			vg_bill_money_format(inv->tax_micro, inv->digits, tx, sizeof(tx)),
			inv->currency,
			inv->tax_note ? inv->tax_note : "Tax on the rounded total",
		};
		for (size_t k = 0; k < NCOLS; k++)
			csv_field(&b, row[k], k + 1 == NCOLS);
	}
	/* warnings (unpriced usage) as rows of their own, with no cost */
	for (size_t i = 0; i < inv->nwarnings; i++) {
		char id[32];
		snprintf(id, sizeof(id), "warning-%zu", i + 1);
		const char *row[NCOLS] = {
			id,
			inv->number,
			inv->final ? "Final" : "Draft",
			ps,
			pe,
			inv->project,
			inv->project_name,
			"Warning",
			NULL,
			NULL,
			"vigie",
			NULL,
			NULL,
			NULL,
			NULL,
			NULL,
			NULL,
			NULL,
			NULL,
			inv->currency,
			inv->warnings[i],
		};
		for (size_t k = 0; k < NCOLS; k++)
			csv_field(&b, row[k], k + 1 == NCOLS);
	}
	return tb_done(&b, out, len);
}

/* ---- HTML ------------------------------------------------------------------------- */

static void html_text(struct tb *b, const char *s)
{
	for (s = s ? s : ""; *s; s++) {
		switch (*s) {
		case '&': tb_puts(b, "&amp;"); break;
		case '<': tb_puts(b, "&lt;"); break;
		case '>': tb_puts(b, "&gt;"); break;
		case '"': tb_puts(b, "&quot;"); break;
		case '\'': tb_puts(b, "&#39;"); break;
		default: tb_add(b, s, 1); break;
		}
	}
}

static void html_cell(struct tb *b, const char *tag, const char *cls, const char *s)
{
	tb_puts(b, "<");
	tb_puts(b, tag);
	if (cls) {
		tb_puts(b, " class=\"");
		tb_puts(b, cls);
		tb_puts(b, "\"");
	}
	tb_puts(b, ">");
	html_text(b, s);
	tb_puts(b, "</");
	tb_puts(b, tag);
	tb_puts(b, ">");
}

static const char css[] =
	"body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;font-size:10pt;"
	"color:#111;margin:2em}"
	"h1{font-size:18pt;margin:0 0 .2em}"
	".status{display:inline-block;padding:.1em .6em;border:1px solid #888;"
	"border-radius:3px;font-size:9pt;text-transform:uppercase}"
	".draft{color:#a40;border-color:#a40}"
	"dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;"
	"margin:1em 0}dt{font-weight:bold}dd{margin:0}"
	"table{border-collapse:collapse;width:100%;margin-top:1em}"
	"th,td{border-bottom:1px solid #ccc;padding:.3em .4em;text-align:left;"
	"vertical-align:top}"
	"th{background:#eee}td.n,th.n{text-align:right;white-space:nowrap}"
	"tfoot td{font-weight:bold;border-bottom:none}"
	"tr.total td{border-top:2px solid #111;font-size:11pt}"
	".res{font-family:monospace;font-size:8pt;color:#555}"
	".warn{color:#a40}.why{font-size:8pt;color:#555;font-style:italic}"
	"h2{font-size:12pt;margin:1.2em 0 .3em}"
	"table.sum{width:auto;min-width:40%}"
	"td.t{white-space:nowrap;font-size:8pt}"
	".nw,.num{white-space:nowrap}.stmt{font-weight:bold;color:#a40}"
	".parties{display:flex;gap:3em;margin:1em 0}address{font-style:normal}"
	"@media print{body{margin:0}th{background:none}"
	"thead{display:table-header-group}tr{page-break-inside:avoid}"
	"@page{size:A4 landscape;margin:12mm}}";

/* Summary by service, then by instance (AWS-like); services and columns
 * with nothing are left out. 0 or -ENOMEM. */
static int html_summaries(struct tb *b, const struct vg_bill_invoice *inv)
{
	struct inst_sum *is;
	size_t nis;
	int64_t sv[SV_N];
	int used[SV_N] = {0};
	char buf[64];

	if (!inv->nlines)
		return 0;
	if (instance_sums(inv, &is, &nis))
		return -ENOMEM;
	service_sums(inv, sv);
	for (size_t i = 0; i < inv->nlines; i++)
		used[inv->lines[i].adjustment_for ? SV_ADJUST : service_of(inv->lines[i].usage_type)] = 1;
	tb_puts(b, "<section class=\"summary\">\n<h2>Summary by service</h2>\n<table class=\"sum\">\n<tbody>\n");
	for (int k = 0; k < SV_N; k++) {
		if (!used[k])
			continue;
		tb_puts(b, "<tr>");
		html_cell(b, "td", NULL, sv_names[k]);
		html_cell(b, "td", "n", vg_bill_money_format(sv[k], inv->digits, buf, sizeof(buf)));
		tb_puts(b, "</tr>\n");
	}
	tb_puts(b, "</tbody>\n</table>\n<h2>Summary by instance</h2>\n<table class=\"sum\">\n<thead><tr>");
	html_cell(b, "th", NULL, "Instance");
	for (int k = 0; k < SV_N; k++)
		if (used[k])
			html_cell(b, "th", "n", sv_names[k]);
	html_cell(b, "th", "n", "Total");
	tb_puts(b, "</tr></thead>\n<tbody>\n");
	for (size_t i = 0; i < nis; i++) {
		tb_puts(b, "<tr><td>");
		html_text(b, is[i].name ? is[i].name : is[i].id);
		tb_puts(b, "<br><span class=\"res\">");
		html_text(b, is[i].id);
		tb_puts(b, "</span></td>");
		for (int k = 0; k < SV_N; k++)
			if (used[k])
				html_cell(b, "td", "n", is[i].sv[k] ? vg_bill_money_format(is[i].sv[k], inv->digits, buf, sizeof(buf)) : "");
		html_cell(b, "td", "n", vg_bill_money_format(is[i].total, inv->digits, buf, sizeof(buf)));
		tb_puts(b, "</tr>\n");
	}
	tb_puts(b, "</tbody>\n</table>\n</section>\n");
	free(is);
	return 0;
}

static void html_party(struct tb *b, const char *role, const struct vg_bill_party *p)
{
	if (!p->name)
		return;
	tb_puts(b, "<address><strong>");
	html_text(b, role);
	tb_puts(b, "</strong><br>");
	html_text(b, p->name);
	for (size_t i = 0; i < p->naddress; i++) {
		tb_puts(b, "<br>");
		html_text(b, p->address[i]);
	}
	if (p->tax_id) {
		tb_puts(b, "<br>Tax id: <span class=\"nw\">");
		html_text(b, p->tax_id);
		tb_puts(b, "</span>");
	}
	tb_puts(b, "</address>\n");
}

static int render_html(const struct vg_bill_invoice *inv, char **out, size_t *len)
{
	struct tb b = {0};
	char buf[64], b2[64], ms[16];

	const char *title = doc_titles[inv->doc >= 0 && inv->doc <= 2 ? inv->doc : 0];
	tb_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
	html_text(&b, title);
	tb_puts(&b, " ");
	html_text(&b, inv->number);
	tb_puts(&b, "</title>\n<style>");
	tb_puts(&b, css);
	tb_puts(&b, "</style>\n</head>\n<body>\n<header>\n<h1>");
	html_text(&b, title);
	tb_puts(&b, " <span class=\"num\">");
	html_text(&b, inv->number);
	tb_puts(&b, "</span></h1>\n<span class=\"status");
	tb_puts(&b, inv->final ? "\">final" : " draft\">draft: amounts may change until the month is finalized");
	tb_puts(&b, "</span>\n");
	if (inv->doc == VG_BILL_DOC_STATEMENT)
		tb_puts(&b, "<p class=\"stmt\">This is a usage statement, not an invoice: "
			    "no billing profile is configured for this project.</p>\n");
	if (inv->issuer.name || inv->customer.name) {
		tb_puts(&b, "<div class=\"parties\">\n");
		html_party(&b, "From", &inv->issuer);
		html_party(&b, "Bill to", &inv->customer);
		tb_puts(&b, "</div>\n");
	}
	tb_puts(&b, "<dl>\n");
	if (inv->issue_ms >= 0) {
		html_cell(&b, "dt", NULL, "Issue date");
		html_cell(&b, "dd", NULL, day(inv->issue_ms, buf, sizeof(buf)));
	}
	if (inv->due_ms >= 0) {
		html_cell(&b, "dt", NULL, "Due date");
		html_cell(&b, "dd", NULL, day(inv->due_ms, buf, sizeof(buf)));
	}
	if (inv->payment_terms_days >= 0) {
		snprintf(b2, sizeof(b2), "%d days", inv->payment_terms_days);
		html_cell(&b, "dt", NULL, "Payment terms");
		html_cell(&b, "dd", NULL, b2);
	}
	html_cell(&b, "dt", NULL, "Project");
	tb_puts(&b, "<dd>");
	if (inv->project_name) {
		html_text(&b, inv->project_name);
		tb_puts(&b, " <span class=\"res\">");
		html_text(&b, inv->project);
		tb_puts(&b, "</span>");
	} else {
		html_text(&b, inv->project);
	}
	tb_puts(&b, "</dd>\n");
	html_cell(&b, "dt", NULL, "Period");
	snprintf(b2, sizeof(b2), "%s (", vg_bill_month_format(inv->month, ms, sizeof(ms)));
	tb_puts(&b, "<dd>");
	html_text(&b, b2);
	html_text(&b, iso(vg_bill_month_start_ms(inv->month), buf, sizeof(buf)));
	tb_puts(&b, " to ");
	html_text(&b, iso(vg_bill_month_end_ms(inv->month), buf, sizeof(buf)));
	tb_puts(&b, ", UTC)</dd>\n");
	html_cell(&b, "dt", NULL, "Currency");
	html_cell(&b, "dd", NULL, inv->currency);
	if (inv->final && inv->finalized_ms >= 0) {
		html_cell(&b, "dt", NULL, "Finalized");
		html_cell(&b, "dd", NULL, iso(inv->finalized_ms, buf, sizeof(buf)));
	}
	tb_puts(&b, "\n</dl>\n</header>\n");
	if (html_summaries(&b, inv))
		b.oom = 1;
	tb_puts(&b, "<h2>Lines</h2>\n<table>\n<thead><tr>");
	const char *hdr[] = {"Resource", "Type", "Description", "Usage start",
			     "Usage end", "Quantity", "Unit", "Rate", "Amount"};
	for (size_t i = 0; i < 9; i++)
		html_cell(&b, "th", i == 5 || i >= 7 ? "n" : NULL, hdr[i]);
	tb_puts(&b, "</tr></thead>\n<tbody>\n");
	for (size_t i = 0; i < inv->nlines; i++) {
		const struct vg_bill_invoice_line *l = &inv->lines[i];
		tb_puts(&b, "<tr><td>");
		html_text(&b, l->resource_name ? l->resource_name : l->resource_id);
		tb_puts(&b, "<br><span class=\"res\">");
		html_text(&b, l->resource_id);
		tb_puts(&b, "</span></td>");
		tb_puts(&b, "<td>");
		html_text(&b, vg_bill_usage_type_name(l->usage_type));
		if (l->adjustment_for && l->adjusted_type) {
			/* the usage type it adjusts, as CSV's UsageType */
			tb_puts(&b, "<br><span class=\"res\">");
			html_text(&b, l->adjusted_type);
			tb_puts(&b, "</span>");
		}
		tb_puts(&b, "</td><td>");
		html_text(&b, l->description);
		if (l->split) {
			tb_puts(&b, "<br><span class=\"why\">apart from the line above: ");
			html_text(&b, l->split);
			tb_puts(&b, "</span>");
		}
		tb_puts(&b, "</td>");
		html_cell(&b, "td", "t", iso(l->start_ms, buf, sizeof(buf)));
		html_cell(&b, "td", "t", iso(l->end_ms, buf, sizeof(buf)));
		tb_puts(&b, "<td class=\"n\">");
		html_text(&b, qty_text(l, buf, sizeof(buf)));
		if (*min_secs(l, buf, sizeof(buf))) {
			tb_puts(&b, "<br><span class=\"res\">+");
			html_text(&b, buf);
			tb_puts(&b, "&nbsp;s minimum</span>");
		}
		tb_puts(&b, "</td>");
		html_cell(&b, "td", NULL, l->unit);
		html_cell(&b, "td", "n", vg_bill_rate_format(l->rate_micro, inv->digits, buf, sizeof(buf)));
		html_cell(&b, "td", "n", vg_bill_money_format(l->amount_micro, inv->digits, buf, sizeof(buf)));
		tb_puts(&b, "</tr>\n");
	}
	tb_puts(&b, "</tbody>\n<tfoot>\n");
	for (int ut = 0; ut < VG_BILL_UT_N; ut++) {
		int any = 0;
		for (size_t i = 0; i < inv->nlines && !any; i++)
			any = inv->lines[i].usage_type == ut;
		if (!any)
			continue; /* empty subtotals are omitted */
		tb_puts(&b, "<tr><td colspan=\"8\" class=\"n\">Subtotal ");
		html_text(&b, vg_bill_usage_type_name(ut));
		tb_puts(&b, "</td>");
		html_cell(&b, "td", "n", vg_bill_money_format(inv->subtotal_micro[ut], inv->digits, buf, sizeof(buf)));
		tb_puts(&b, "</tr>\n");
	}
	tb_puts(&b, "<tr class=\"total\"><td colspan=\"8\" class=\"n\">Total ");
	html_text(&b, inv->currency);
	tb_puts(&b, "</td>");
	html_cell(&b, "td", "n", vg_bill_money_format(inv->total_micro, inv->digits, buf, sizeof(buf)));
	tb_puts(&b, "</tr>\n");
	if (inv->has_tax) {
		tb_puts(&b, "<tr><td colspan=\"8\" class=\"n\">Tax ");
		html_text(&b, vg_bill_rate_format(inv->tax_rate_micro * 100, 0, buf, sizeof(buf)));
		tb_puts(&b, "&nbsp;% on ");
		html_text(&b, vg_bill_money_format(inv->total_micro, inv->digits, buf, sizeof(buf)));
		if (inv->tax_note) {
			tb_puts(&b, " (");
			html_text(&b, inv->tax_note);
			tb_puts(&b, ")");
		}
		tb_puts(&b, "</td>");
		html_cell(&b, "td", "n", vg_bill_money_format(inv->tax_micro, inv->digits, buf, sizeof(buf)));
		tb_puts(&b, "</tr>\n");
	}
	if (inv->doc != VG_BILL_DOC_STATEMENT) {
		tb_puts(&b, "<tr class=\"total\"><td colspan=\"8\" class=\"n\">");
		tb_puts(&b, inv->doc == VG_BILL_DOC_CREDIT_NOTE ? "Amount credited " : "Amount due ");
		html_text(&b, inv->currency);
		tb_puts(&b, "</td>");
		int64_t due = inv->amount_due_micro;
		html_cell(&b, "td", "n", vg_bill_money_format(inv->doc == VG_BILL_DOC_CREDIT_NOTE ? -due : due, inv->digits, buf, sizeof(buf)));
		tb_puts(&b, "</tr>\n");
	}
	tb_puts(&b, "</tfoot>\n</table>\n");
	if (inv->nwarnings) {
		tb_puts(&b, "<ul class=\"warn\">\n");
		for (size_t i = 0; i < inv->nwarnings; i++) {
			html_cell(&b, "li", NULL, inv->warnings[i]);
			tb_puts(&b, "\n");
		}
		tb_puts(&b, "</ul>\n");
	}
	tb_puts(&b, "<p class=\"res\">Each line's amount is its exact quantity times "
		    "its rate, rounded once, half up, to the currency's minor unit; "
		    "the total is the sum of the rounded lines.</p>\n</body>\n</html>\n");
	return tb_done(&b, out, len);
}

int vg_bill_invoice_render(const struct vg_bill_invoice *inv, int fmt, char **out,
			   size_t *len)
{
	*out = NULL;
	*len = 0;
	switch (fmt) {
	case VG_BILL_FMT_CSV: return render_csv(inv, out, len);
	case VG_BILL_FMT_HTML: return render_html(inv, out, len);
	default: return render_json(inv, out, len);
	}
}
