/*
 * ratecard.c — load, validate and query the rate card (JSON via jansson).
 *
 * Design: the file is parsed once at start-up into plain arrays of int64
 * micro-unit prices; every field is checked with a message that names the
 * file and the JSON path of the offending value, so an operator can fix
 * the card from the error alone. Prices are decimal strings parsed by
 * vg_bill_money_parse (JSON integers are accepted too: they are exact); a JSON
 * real is refused, because jansson would already have rounded it through
 * a double.
 *
 * Queries: vg_bill_ratecard_prices resolves, for a project and a time, which
 * sheet of the global list and which of the project's list are in force
 * and folds the inheritance (a sheet inherits what it does not set from
 * earlier sheets of its list; the project's fields lie over the global
 * ones). It also returns [from, until): the span over which those prices
 * hold, so callers split usage exactly at a price change.
 *
 * Invariants: lists are sorted by strictly increasing valid_from; at most
 * one tier list per sheet, with increasing bounds and only the last one
 * unbounded; a loaded card is never modified (thread-safe reads).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "vigie/bill.h"
#include "vigie/bill_ratecard.h"
#include "vigie/clock.h"

struct ctx {
	const char *name;
	char *err;
	size_t errlen;
	char path[512];
};

static int fail(struct ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(struct ctx *c, const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "%s: %s: %s", c->name, c->path, msg);
	return -EINVAL;
}

/* Append ".key" or "[\"key\"]" (bracket) or "[i]" to the path; returns the
 * old length so the caller can restore it. */
static size_t push_key(struct ctx *c, const char *key, int bracket)
{
	size_t n = strlen(c->path);
	snprintf(c->path + n, sizeof(c->path) - n, bracket ? "[\"%s\"]" : ".%s",
		 key);
	return n;
}

static size_t push_idx(struct ctx *c, size_t i)
{
	size_t n = strlen(c->path);
	snprintf(c->path + n, sizeof(c->path) - n, "[%zu]", i);
	return n;
}

static void pop(struct ctx *c, size_t n)
{
	c->path[n] = '\0';
}

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number with a fraction";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* Reject keys of obj not in the NULL-terminated list `known`. */
static int check_keys(struct ctx *c, json_t *obj, const char *const *known)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		int ok = 0;
		for (const char *const *p = known; *p; p++)
			if (!strcmp(*p, k))
				ok = 1;
		if (!ok) {
			char list[256] = "";
			for (const char *const *p = known; *p; p++) {
				size_t n = strlen(list);
				snprintf(list + n, sizeof(list) - n, "%s%s",
					 p == known ? "" : ", ", *p);
			}
			size_t o = push_key(c, k, 0);
			int rc = fail(c, "unknown key (expected one of: %s)", list);
			pop(c, o);
			return rc;
		}
	}
	return 0;
}

static int want_object(struct ctx *c, json_t *v)
{
	if (!json_is_object(v))
		return fail(c, "must be an object, not %s", json_kind(v));
	return 0;
}

/* A price: decimal string or JSON integer, >= 0. The path is already
 * pushed. */
static int parse_price(struct ctx *c, json_t *v, int64_t *out)
{
	char buf[64];
	int rc;

	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		if (i < 0 || i > VG_BILL_MONEY_MAX / VG_BILL_MICRO)
			return fail(c, "must be between 0 and 10^12, got %lld",
				    (long long)i);
		*out = (int64_t)i * VG_BILL_MICRO;
		return 0;
	}
	if (json_is_real(v))
		return fail(c, "must be a decimal string such as \"0.0125\": a "
			       "JSON number with a fraction cannot be read exactly");
	if (!json_is_string(v))
		return fail(c, "must be a decimal string such as \"0.0125\", "
			       "not %s",
			    json_kind(v));
	snprintf(buf, sizeof(buf), "%s", json_string_value(v));
	rc = vg_bill_money_parse(json_string_value(v), 0, out);
	if (rc == -ERANGE)
		return fail(c, "\"%s\": at most 6 decimals (micro-units) and "
			       "at most 10^12",
			    buf);
	if (rc)
		return fail(c, "\"%s\" is not a non-negative decimal such as "
			       "\"0.0125\"",
			    buf);
	return 0;
}

static int price_field(struct ctx *c, json_t *obj, const char *key,
		       int *has, int64_t *out)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	size_t o = push_key(c, key, 0);
	int rc = parse_price(c, v, out);
	pop(c, o);
	if (!rc)
		*has = 1;
	return rc;
}

static int parse_tiers(struct ctx *c, json_t *arr, struct vg_bill_rc_sheet *s)
{
	static const char *const keys[] = {"up_to_gb", "price", "comment", NULL};
	size_t i, n;
	json_t *t;
	int rc;

	if (!json_is_array(arr))
		return fail(c, "must be an array of tiers "
			       "[{\"up_to_gb\": 1, \"price\": \"0\"}, ..., "
			       "{\"price\": \"0.05\"}], not %s",
			    json_kind(arr));
	n = json_array_size(arr);
	if (n == 0)
		return fail(c, "needs at least one tier");
	if (n > VG_BILL_RC_MAX_TIERS)
		return fail(c, "at most %d tiers, got %zu", VG_BILL_RC_MAX_TIERS, n);
	json_array_foreach(arr, i, t) {
		size_t o = push_idx(c, i);
		json_t *up = json_object_get(t, "up_to_gb");
		json_t *pr = json_object_get(t, "price");

		if ((rc = want_object(c, t)) || (rc = check_keys(c, t, keys)))
			return rc;
		if (!pr) {
			rc = fail(c, "missing \"price\"");
			return rc;
		}
		size_t o2 = push_key(c, "price", 0);
		rc = parse_price(c, pr, &s->tiers[i].price_micro);
		pop(c, o2);
		if (rc)
			return rc;
		if (i + 1 == n) {
			if (up)
				return fail(c, "the last tier has no "
					       "\"up_to_gb\": it takes everything "
					       "above the previous bound");
			s->tiers[i].up_to_bytes = -1;
		} else {
			o2 = push_key(c, "up_to_gb", 0);
			if (!up) {
				pop(c, o2);
				return fail(c, "missing \"up_to_gb\" (only the "
					       "last tier is unbounded)");
			}
			if (!json_is_integer(up) || json_integer_value(up) <= 0 ||
			    json_integer_value(up) > 1000000000LL)
				return fail(c, "must be a whole number of GB "
					       "between 1 and 10^9");
			s->tiers[i].up_to_bytes =
				(int64_t)json_integer_value(up) * VG_BILL_GB;
			if (i > 0 && s->tiers[i].up_to_bytes <=
					     s->tiers[i - 1].up_to_bytes)
				return fail(c, "must be greater than the "
					       "previous tier's (%lld)",
					    (long long)(s->tiers[i - 1].up_to_bytes /
							VG_BILL_GB));
			pop(c, o2);
		}
		pop(c, o);
	}
	s->ntiers = n;
	s->has_egress = 1;
	return 0;
}

static int parse_valid_from(struct ctx *c, json_t *v, int64_t *out)
{
	const char *s = json_string_value(v);
	size_t o = push_key(c, "valid_from", 0);
	int rc = 0;

	if (!v)
		rc = fail(c, "missing (a UTC date such as \"2026-10-01\" or "
			     "\"2026-10-16T12:00:00Z\")");
	else if (!s || !isdigit((unsigned char)s[0]) || !strchr(s, '-') ||
		 vg_time_parse(s, 0, out))
		rc = fail(c, "must be a date such as \"2026-10-01\" or "
			     "\"2026-10-16T12:00:00Z\"");
	pop(c, o);
	return rc;
}

static int parse_sheet(struct ctx *c, json_t *js, struct vg_bill_rc_sheet *s)
{
	static const char *const keys[] = {"valid_from", "compute", "storage",
					   "network", "comment", NULL};
	static const char *const ckeys[] = {"flavors", "vcpu_hour",
					    "ram_gib_hour", NULL};
	static const char *const skeys[] = {"gib_month", NULL};
	static const char *const nkeys[] = {"egress_gb", "ingress_gb", NULL};
	json_t *v;
	size_t o;
	int rc;

	if ((rc = want_object(c, js)) || (rc = check_keys(c, js, keys)))
		return rc;
	if ((rc = parse_valid_from(c, json_object_get(js, "valid_from"),
				   &s->valid_from_ms)))
		return rc;
	if ((v = json_object_get(js, "compute"))) {
		o = push_key(c, "compute", 0);
		if ((rc = want_object(c, v)) || (rc = check_keys(c, v, ckeys)) ||
		    (rc = price_field(c, v, "vcpu_hour", &s->has_vcpu_hour,
				      &s->vcpu_hour_micro)) ||
		    (rc = price_field(c, v, "ram_gib_hour", &s->has_ram_gib_hour,
				      &s->ram_gib_hour_micro)))
			return rc;
		json_t *fl = json_object_get(v, "flavors");
		if (fl) {
			size_t o2 = push_key(c, "flavors", 0);
			const char *k;
			json_t *p;
			if ((rc = want_object(c, fl)))
				return rc;
			s->flavors = calloc(json_object_size(fl) + 1,
					    sizeof(*s->flavors));
			if (!s->flavors)
				return -ENOMEM;
			json_object_foreach(fl, k, p) {
				size_t o3 = push_key(c, k, 1);
				if (!*k)
					return fail(c, "empty flavor name");
				struct vg_bill_rc_flavor *f = &s->flavors[s->nflavors];
				if ((rc = parse_price(c, p, &f->hour_micro)))
					return rc;
				if (!(f->name = strdup(k)))
					return -ENOMEM;
				s->nflavors++;
				pop(c, o3);
			}
			pop(c, o2);
		}
		pop(c, o);
	}
	if ((v = json_object_get(js, "storage"))) {
		o = push_key(c, "storage", 0);
		if ((rc = want_object(c, v)) || (rc = check_keys(c, v, skeys)) ||
		    (rc = price_field(c, v, "gib_month", &s->has_storage,
				      &s->storage_gib_month_micro)))
			return rc;
		pop(c, o);
	}
	if ((v = json_object_get(js, "network"))) {
		o = push_key(c, "network", 0);
		if ((rc = want_object(c, v)) || (rc = check_keys(c, v, nkeys)) ||
		    (rc = price_field(c, v, "ingress_gb", &s->has_ingress,
				      &s->ingress_gb_micro)))
			return rc;
		json_t *eg = json_object_get(v, "egress_gb");
		if (eg) {
			size_t o2 = push_key(c, "egress_gb", 0);
			if ((rc = parse_tiers(c, eg, s)))
				return rc;
			pop(c, o2);
		}
		pop(c, o);
	}
	return 0;
}

static void free_list(struct vg_bill_rc_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		for (size_t f = 0; f < l->sheets[i].nflavors; f++)
			free(l->sheets[i].flavors[f].name);
		free(l->sheets[i].flavors);
	}
	free(l->sheets);
	l->sheets = NULL;
	l->n = 0;
}

/* "prices": [sheet, ...]; the path is at the list's parent. */
static int parse_list(struct ctx *c, json_t *arr, struct vg_bill_rc_list *l,
		      int required)
{
	size_t i, o = push_key(c, "prices", 0);
	json_t *js;
	int rc;

	if (!arr) {
		if (!required) {
			pop(c, o);
			return 0;
		}
		return fail(c, "missing: a list of price sheets "
			       "[{\"valid_from\": \"2026-01-01\", ...}]");
	}
	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return fail(c, "must be a non-empty array of price sheets");
	if (json_array_size(arr) > VG_BILL_RC_MAX_SHEETS)
		return fail(c, "at most %d price sheets", VG_BILL_RC_MAX_SHEETS);
	l->sheets = calloc(json_array_size(arr), sizeof(*l->sheets));
	if (!l->sheets)
		return -ENOMEM;
	json_array_foreach(arr, i, js) {
		size_t o2 = push_idx(c, i);
		l->n = i + 1;
		if ((rc = parse_sheet(c, js, &l->sheets[i])))
			return rc;
		if (i > 0 && l->sheets[i].valid_from_ms <=
				     l->sheets[i - 1].valid_from_ms) {
			size_t o3 = push_key(c, "valid_from", 0);
			(void)o3;
			return fail(c, "must be later than the previous "
				       "sheet's valid_from (sheets are in date "
				       "order)");
		}
		pop(c, o2);
	}
	pop(c, o);
	return 0;
}

static int cmp_project(const void *a, const void *b)
{
	return strcmp(((const struct vg_bill_rc_project *)a)->project,
		      ((const struct vg_bill_rc_project *)b)->project);
}

/* ---- issuer, billing profiles, tax ------------------------------------------- */

static int opt_str(struct ctx *c, json_t *obj, const char *key, char **out)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	size_t o = push_key(c, key, 0);
	if (!json_is_string(v) || !*json_string_value(v))
		return fail(c, "must be a non-empty string");
	pop(c, o);
	return (*out = strdup(json_string_value(v))) ? 0 : -ENOMEM;
}

static int parse_country(struct ctx *c, json_t *v, int star, char out[3])
{
	const char *s = json_string_value(v);
	if (!s || !((strlen(s) == 2 && isupper((unsigned char)s[0]) &&
		     isupper((unsigned char)s[1])) ||
		    (star && !strcmp(s, "*"))))
		return fail(c, "must be an ISO 3166 alpha-2 country code such as \"FR\"%s",
			    star ? " or \"*\"" : "");
	snprintf(out, 3, "%s", s);
	return 0;
}

/* A tax rate: a decimal fraction from 0 to 1 ("0.20" is 20 %). */
static int parse_rate(struct ctx *c, json_t *v, int64_t *out)
{
	int r = parse_price(c, v, out);
	if (!r && *out > VG_BILL_MICRO)
		return fail(c, "a tax rate is a fraction from 0 to 1 (\"0.20\" for 20 %%)");
	return r;
}

static int parse_terms(struct ctx *c, json_t *obj, int *out)
{
	json_t *v = json_object_get(obj, "payment_terms_days");
	if (!v)
		return 0;
	size_t o = push_key(c, "payment_terms_days", 0);
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 365)
		return fail(c, "must be an integer number of days from 0 to 365");
	*out = (int)json_integer_value(v);
	pop(c, o);
	return 0;
}

/* name, address, tax_id, country: the party fields of issuer and profiles */
static int parse_party(struct ctx *c, json_t *obj, struct vg_bill_party *p)
{
	json_t *v;
	int r;

	if ((r = opt_str(c, obj, "name", &p->name)) || (r = opt_str(c, obj, "tax_id", &p->tax_id)))
		return r;
	if (!p->name) {
		size_t o = push_key(c, "name", 0);
		(void)o;
		return fail(c, "missing: the legal name");
	}
	if ((v = json_object_get(obj, "address"))) {
		size_t i, o = push_key(c, "address", 0);
		json_t *line;
		if (!json_is_array(v) || json_array_size(v) > VG_BILL_MAX_ADDRESS)
			return fail(c, "must be an array of at most %d lines", VG_BILL_MAX_ADDRESS);
		json_array_foreach(v, i, line) {
			size_t o2 = push_idx(c, i);
			if (!json_is_string(line))
				return fail(c, "must be a string");
			if (!(p->address[i] = strdup(json_string_value(line))))
				return -ENOMEM;
			p->naddress = i + 1;
			pop(c, o2);
		}
		pop(c, o);
	}
	if ((v = json_object_get(obj, "country"))) {
		size_t o = push_key(c, "country", 0);
		if ((r = parse_country(c, v, 0, p->country)))
			return r;
		pop(c, o);
	}
	return 0;
}

static void free_party(struct vg_bill_party *p)
{
	free(p->name);
	free(p->tax_id);
	for (size_t i = 0; i < p->naddress; i++)
		free(p->address[i]);
}

static int parse_issuer(struct ctx *c, json_t *v, struct vg_bill_ratecard *rc)
{
	static const char *const keys[] = {"name", "address", "tax_id", "country",
					   "number_prefix", "number_digits", "payment_terms_days", "tax_rates",
					   "comment", NULL};
	struct vg_bill_rc_issuer *is;
	json_t *t;
	int r;

	if ((r = want_object(c, v)) || (r = check_keys(c, v, keys)))
		return r;
	if (!(is = rc->issuer = calloc(1, sizeof(*is))))
		return -ENOMEM;
	is->number_digits = 6;
	is->payment_terms_days = 30;
	if ((r = parse_party(c, v, &is->party)) ||
	    (r = opt_str(c, v, "number_prefix", &is->number_prefix)) ||
	    (r = parse_terms(c, v, &is->payment_terms_days)))
		return r;
	if ((t = json_object_get(v, "number_digits"))) {
		size_t o = push_key(c, "number_digits", 0);
		if (!json_is_integer(t) || json_integer_value(t) < 1 || json_integer_value(t) > 12)
			return fail(c, "must be an integer from 1 to 12");
		is->number_digits = (int)json_integer_value(t);
		pop(c, o);
	}
	if ((t = json_object_get(v, "tax_rates"))) {
		const char *k;
		json_t *x;
		size_t o = push_key(c, "tax_rates", 0);
		if ((r = want_object(c, t)))
			return r;
		if (json_object_size(t) > VG_BILL_MAX_TAX_RATES)
			return fail(c, "at most %d rates", VG_BILL_MAX_TAX_RATES);
		json_object_foreach(t, k, x) {
			size_t o2 = push_key(c, k, 1);
			json_t *ks = json_string(k);
			struct vg_bill_rc_tax *tx = &is->tax[is->ntax];
			r = ks ? parse_country(c, ks, 1, tx->country) : -ENOMEM;
			json_decref(ks);
			if (r || (r = parse_rate(c, x, &tx->rate_micro)))
				return r;
			is->ntax++;
			pop(c, o2);
		}
		pop(c, o);
	}
	return 0;
}

static int parse_profile(struct ctx *c, json_t *v, struct vg_bill_rc_project *pr)
{
	static const char *const keys[] = {"name", "address", "tax_id", "country",
					   "tax_rate", "tax_note", "payment_terms_days", "comment", NULL};
	struct vg_bill_rc_profile *pf;
	json_t *t;
	int r;

	size_t o = push_key(c, "billing_profile", 0);
	if ((r = want_object(c, v)) || (r = check_keys(c, v, keys)))
		return r;
	if (!(pf = pr->profile = calloc(1, sizeof(*pf))))
		return -ENOMEM;
	pf->payment_terms_days = -1;
	if ((r = parse_party(c, v, &pf->party)) ||
	    (r = opt_str(c, v, "tax_note", &pf->tax_note)) ||
	    (r = parse_terms(c, v, &pf->payment_terms_days)))
		return r;
	if ((t = json_object_get(v, "tax_rate"))) {
		size_t o2 = push_key(c, "tax_rate", 0);
		if ((r = parse_rate(c, t, &pf->tax_rate_micro)))
			return r;
		pf->has_tax_rate = 1;
		pop(c, o2);
	}
	pop(c, o);
	return 0;
}

const struct vg_bill_rc_profile *vg_bill_ratecard_profile(const struct vg_bill_ratecard *rc,
							  const char *project)
{
	for (size_t i = 0; rc && project && i < rc->nprojects; i++)
		if (!strcmp(rc->projects[i].project, project))
			return rc->projects[i].profile;
	return NULL;
}

int vg_bill_ratecard_tax_rate(const struct vg_bill_ratecard *rc,
			      const struct vg_bill_rc_profile *pf, int64_t *rate_micro)
{
	if (pf && pf->has_tax_rate) {
		*rate_micro = pf->tax_rate_micro;
		return 1;
	}
	if (!rc || !rc->issuer)
		return 0;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < rc->issuer->ntax; i++)
			if (pass ? !strcmp(rc->issuer->tax[i].country, "*")
				 : pf && pf->party.country[0] &&
					    !strcmp(rc->issuer->tax[i].country, pf->party.country)) {
				*rate_micro = rc->issuer->tax[i].rate_micro;
				return 1;
			}
	return 0;
}

static int parse_card(struct ctx *c, json_t *root, struct vg_bill_ratecard *rc)
{
	static const char *const keys[] = {"currency", "minor_unit_digits",
					   "minimum_run_seconds", "prices",
					   "projects", "issuer", "comment", NULL};
	static const char *const pkeys[] = {"prices", "billing_profile", "comment", NULL};
	json_t *v;
	size_t o;
	int r;

	strcpy(c->path, "$");
	if ((r = want_object(c, root)) || (r = check_keys(c, root, keys)))
		return r;

	v = json_object_get(root, "currency");
	o = push_key(c, "currency", 0);
	const char *cur = json_string_value(v);
	if (!cur || strlen(cur) != 3 || !isupper((unsigned char)cur[0]) ||
	    !isupper((unsigned char)cur[1]) || !isupper((unsigned char)cur[2]))
		return fail(c, "%s: must be a 3-letter ISO 4217 code such as "
			       "\"EUR\"",
			    v ? "invalid" : "missing");
	memcpy(rc->currency, cur, 4);
	pop(c, o);

	v = json_object_get(root, "minor_unit_digits");
	o = push_key(c, "minor_unit_digits", 0);
	if (!v)
		return fail(c, "missing: digits of the currency's minor unit "
			       "(2 for EUR/USD, 0 for JPY, 3 for BHD)");
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > VG_BILL_MONEY_MAX_DIGITS)
		return fail(c, "must be an integer from 0 to %d",
			    VG_BILL_MONEY_MAX_DIGITS);
	rc->digits = (int)json_integer_value(v);
	pop(c, o);

	rc->min_run_ms = VG_BILL_RC_DEFAULT_MIN_RUN_S * 1000LL;
	if ((v = json_object_get(root, "minimum_run_seconds"))) {
		o = push_key(c, "minimum_run_seconds", 0);
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 86400)
			return fail(c, "must be an integer number of seconds "
				       "from 0 to 86400");
		rc->min_run_ms = (int64_t)json_integer_value(v) * 1000;
		pop(c, o);
	}

	if ((r = parse_list(c, json_object_get(root, "prices"), &rc->global, 1)))
		return r;

	if ((v = json_object_get(root, "projects"))) {
		const char *k;
		json_t *p;
		o = push_key(c, "projects", 0);
		if ((r = want_object(c, v)))
			return r;
		rc->projects = calloc(json_object_size(v) + 1,
				      sizeof(*rc->projects));
		if (!rc->projects)
			return -ENOMEM;
		json_object_foreach(v, k, p) {
			size_t o2 = push_key(c, k, 1);
			struct vg_bill_rc_project *pr = &rc->projects[rc->nprojects];
			if (!*k)
				return fail(c, "empty project id");
			if (!(pr->project = strdup(k)))
				return -ENOMEM;
			rc->nprojects++;
			json_t *bp = json_object_get(p, "billing_profile");
			if ((r = want_object(c, p)) ||
			    (r = check_keys(c, p, pkeys)) ||
			    (r = parse_list(c, json_object_get(p, "prices"),
					    &pr->list, !bp)) ||
			    (bp && (r = parse_profile(c, bp, pr))))
				return r;
			pop(c, o2);
		}
		qsort(rc->projects, rc->nprojects, sizeof(*rc->projects),
		      cmp_project);
		pop(c, o);
	}
	if ((v = json_object_get(root, "issuer"))) {
		o = push_key(c, "issuer", 0);
		if ((r = parse_issuer(c, v, rc)))
			return r;
		pop(c, o);
	}
	return 0;
}

void vg_bill_ratecard_free(struct vg_bill_ratecard *rc)
{
	if (!rc)
		return;
	free_list(&rc->global);
	for (size_t i = 0; i < rc->nprojects; i++) {
		free(rc->projects[i].project);
		free_list(&rc->projects[i].list);
		if (rc->projects[i].profile) {
			free_party(&rc->projects[i].profile->party);
			free(rc->projects[i].profile->tax_note);
			free(rc->projects[i].profile);
		}
	}
	free(rc->projects);
	if (rc->issuer) {
		free_party(&rc->issuer->party);
		free(rc->issuer->number_prefix);
		free(rc->issuer);
	}
	free(rc);
}

int vg_bill_ratecard_parse(const char *text, size_t len, const char *name,
			   struct vg_bill_ratecard **out, char *err, size_t errlen)
{
	struct ctx c = {name ? name : "rate card", err, errlen, "$"};
	struct vg_bill_ratecard *rc;
	json_error_t je;
	json_t *root;
	int r;

	*out = NULL;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		snprintf(err, errlen, "%s:%d:%d: JSON syntax error: %s", c.name,
			 je.line, je.column, je.text);
		return -EINVAL;
	}
	rc = calloc(1, sizeof(*rc));
	if (!rc) {
		json_decref(root);
		snprintf(err, errlen, "%s: out of memory", c.name);
		return -ENOMEM;
	}
	r = parse_card(&c, root, rc);
	json_decref(root);
	if (r) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "%s: out of memory", c.name);
		vg_bill_ratecard_free(rc);
		return r;
	}
	*out = rc;
	return 0;
}

int vg_bill_ratecard_load(const char *path, struct vg_bill_ratecard **out, char *err,
			  size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	int rc;

	*out = NULL;
	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot read the rate card: %s", path,
			 strerror(errno));
		return rc;
	}
	do {
		if (cap - len < 4096) {
			if (cap > (16u << 20)) {
				fclose(f);
				free(buf);
				snprintf(err, errlen, "%s: larger than 16 MiB",
					 path);
				return -EINVAL;
			}
			char *nb = realloc(buf, cap ? cap * 2 : 8192);
			if (!nb) {
				fclose(f);
				free(buf);
				snprintf(err, errlen, "%s: out of memory", path);
				return -ENOMEM;
			}
			buf = nb;
			cap = cap ? cap * 2 : 8192;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	rc = vg_bill_ratecard_parse(buf ? buf : "", len, path, out, err, errlen);
	free(buf);
	return rc;
}

/* Index of the last sheet with valid_from <= t, or -1. */
static ptrdiff_t in_force(const struct vg_bill_rc_list *l, int64_t t)
{
	ptrdiff_t lo = 0, hi = (ptrdiff_t)l->n - 1, r = -1;
	while (lo <= hi) {
		ptrdiff_t mid = (lo + hi) / 2;
		if (l->sheets[mid].valid_from_ms <= t) {
			r = mid;
			lo = mid + 1;
		} else {
			hi = mid - 1;
		}
	}
	return r;
}

/* Fold fields of l's sheets [0..i] into p (later sheets win). */
static void fold(struct vg_bill_prices *p, const struct vg_bill_rc_list *l, ptrdiff_t i)
{
	for (ptrdiff_t k = 0; k <= i; k++) {
		const struct vg_bill_rc_sheet *s = &l->sheets[k];
		if (s->has_vcpu_hour) {
			p->has_vcpu_hour = 1;
			p->vcpu_hour_micro = s->vcpu_hour_micro;
		}
		if (s->has_ram_gib_hour) {
			p->has_ram_gib_hour = 1;
			p->ram_gib_hour_micro = s->ram_gib_hour_micro;
		}
		if (s->has_storage) {
			p->has_storage = 1;
			p->storage_gib_month_micro = s->storage_gib_month_micro;
		}
		if (s->has_ingress) {
			p->has_ingress = 1;
			p->ingress_gb_micro = s->ingress_gb_micro;
		}
		if (s->has_egress) {
			p->has_egress = 1;
			p->ntiers = s->ntiers;
			p->tiers = s->tiers;
		}
	}
}

static const struct vg_bill_rc_list *project_list(const struct vg_bill_ratecard *rc,
						  const char *project)
{
	size_t lo = 0, hi = rc->nprojects;
	if (!project)
		return NULL;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(rc->projects[mid].project, project);
		if (!c) /* a project with a billing profile only has no sheets */
			return rc->projects[mid].list.n ? &rc->projects[mid].list : NULL;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void span(const struct vg_bill_rc_list *l, ptrdiff_t i, int64_t *from,
		 int64_t *until)
{
	if (i >= 0 && l->sheets[i].valid_from_ms > *from)
		*from = l->sheets[i].valid_from_ms;
	if ((size_t)(i + 1) < l->n && l->sheets[i + 1].valid_from_ms < *until)
		*until = l->sheets[i + 1].valid_from_ms;
}

void vg_bill_ratecard_prices(const struct vg_bill_ratecard *rc, const char *project,
			     int64_t t_ms, struct vg_bill_prices *p)
{
	memset(p, 0, sizeof(*p));
	p->rc = rc;
	p->from_ms = INT64_MIN;
	p->until_ms = INT64_MAX;
	p->gi = in_force(&rc->global, t_ms);
	fold(p, &rc->global, p->gi);
	span(&rc->global, p->gi, &p->from_ms, &p->until_ms);
	p->plist = project_list(rc, project);
	p->pi = -1;
	if (p->plist) {
		p->pi = in_force(p->plist, t_ms);
		fold(p, p->plist, p->pi);
		span(p->plist, p->pi, &p->from_ms, &p->until_ms);
	}
}

static int find_flavor(const struct vg_bill_rc_list *l, ptrdiff_t i,
		       const char *flavor, int64_t *out)
{
	for (; i >= 0; i--) {
		const struct vg_bill_rc_sheet *s = &l->sheets[i];
		for (size_t f = 0; f < s->nflavors; f++)
			if (!strcmp(s->flavors[f].name, flavor)) {
				*out = s->flavors[f].hour_micro;
				return 0;
			}
	}
	return -ENOENT;
}

int vg_bill_prices_flavor(const struct vg_bill_prices *p, const char *flavor,
			  int64_t *hour_micro)
{
	if (!flavor || !*flavor)
		return -ENOENT;
	if (p->plist && !find_flavor(p->plist, p->pi, flavor, hour_micro))
		return 0;
	return find_flavor(&p->rc->global, p->gi, flavor, hour_micro);
}
