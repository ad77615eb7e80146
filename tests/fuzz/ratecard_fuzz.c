/*
 * ratecard_fuzz.c — libFuzzer target for the rate card parser
 * (billing/ratecard.c: vg_bill_ratecard_parse) and the price queries a loaded
 * card answers (vg_bill_ratecard_prices, vg_bill_prices_flavor).
 *
 * Invariants checked on every input: parsing never crashes, leaks or
 * reads past the text; a refused card sets no card and leaves a message
 * that names the source; an accepted card keeps the header's promises
 * (3-letter upper-case currency, 0..6 digits, sheets in strictly
 * increasing valid_from, at most VG_BILL_RC_MAX_TIERS tiers with increasing
 * bounds and only the last unbounded, prices >= 0, projects sorted and
 * unique); and for every project (and none) at every sheet boundary the
 * prices in force hold over a span that contains the time asked about,
 * and every flavor lookup answers 0 or -ENOENT.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/bill_ratecard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_list(const struct vg_bill_rc_list *l)
{
	assert(l->n >= 1 && l->n <= VG_BILL_RC_MAX_SHEETS);
	for (size_t i = 0; i < l->n; i++) {
		const struct vg_bill_rc_sheet *s = &l->sheets[i];
		if (i)
			assert(s->valid_from_ms > l->sheets[i - 1].valid_from_ms);
		assert(s->vcpu_hour_micro >= 0 && s->ram_gib_hour_micro >= 0 &&
		       s->storage_gib_month_micro >= 0 &&
		       s->ingress_gb_micro >= 0);
		assert(s->ntiers <= VG_BILL_RC_MAX_TIERS);
		assert(!s->has_egress || s->ntiers >= 1);
		for (size_t t = 0; t < s->ntiers; t++) {
			assert(s->tiers[t].price_micro >= 0);
			if (t + 1 == s->ntiers)
				assert(s->tiers[t].up_to_bytes == -1);
			else
				assert(s->tiers[t].up_to_bytes > 0 &&
				       (t == 0 || s->tiers[t].up_to_bytes >
							  s->tiers[t - 1].up_to_bytes));
		}
		for (size_t f = 0; f < s->nflavors; f++)
			assert(s->flavors[f].name && s->flavors[f].name[0] &&
			       s->flavors[f].hour_micro >= 0);
	}
}

/* Ask for prices at t for project; check the span and every flavor
 * named anywhere in the card. */
static void query(const struct vg_bill_ratecard *rc, const char *project, int64_t t)
{
	struct vg_bill_prices p;
	int64_t h;

	vg_bill_ratecard_prices(rc, project, t, &p);
	assert(p.from_ms <= t && t < p.until_ms);
	assert(p.gi >= -1 && p.gi < (ptrdiff_t)rc->global.n);
	assert(!p.has_egress || (p.ntiers >= 1 && p.tiers));
	for (size_t i = 0; i < rc->global.n; i++)
		for (size_t f = 0; f < rc->global.sheets[i].nflavors; f++) {
			int r = vg_bill_prices_flavor(&p, rc->global.sheets[i].flavors[f].name, &h);
			assert(r == 0 || r == -ENOENT);
			assert(r || h >= 0);
		}
	assert(vg_bill_prices_flavor(&p, "", &h) == -ENOENT);
	assert(vg_bill_prices_flavor(&p, NULL, &h) == -ENOENT);
}

static void query_list(const struct vg_bill_ratecard *rc, const char *project,
		       const struct vg_bill_rc_list *l)
{
	for (size_t i = 0; i < l->n && i < 8; i++) {
		int64_t t = l->sheets[i].valid_from_ms;
		query(rc, project, t);
		if (t > INT64_MIN)
			query(rc, project, t - 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vg_bill_ratecard *rc = (struct vg_bill_ratecard *)1;
	char err[512] = "";
	int r;

	/* the text need not be NUL-terminated: parse an exact-size copy so
	 * ASan catches any read past its end */
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	r = vg_bill_ratecard_parse(text, size, "fuzz.json", &rc, err, sizeof(err));
	free(text);
	if (r) {
		assert(r == -EINVAL || r == -ENOMEM);
		assert(rc == NULL);
		assert(strncmp(err, "fuzz.json", 9) == 0);
		return 0;
	}
	assert(rc && strlen(rc->currency) == 3);
	for (int i = 0; i < 3; i++)
		assert(rc->currency[i] >= 'A' && rc->currency[i] <= 'Z');
	assert(rc->digits >= 0 && rc->digits <= 6);
	assert(rc->min_run_ms >= 0 && rc->min_run_ms <= 86400000);
	check_list(&rc->global);
	for (size_t i = 0; i < rc->nprojects; i++) {
		assert(rc->projects[i].project && rc->projects[i].project[0]);
		if (i)
			assert(strcmp(rc->projects[i - 1].project,
				      rc->projects[i].project) < 0);
		check_list(&rc->projects[i].list);
	}

	query(rc, NULL, INT64_MIN);
	query(rc, NULL, 0);
	query(rc, "no such project", INT64_MAX - 1);
	query_list(rc, NULL, &rc->global);
	for (size_t i = 0; i < rc->nprojects && i < 4; i++) {
		query(rc, rc->projects[i].project, INT64_MIN);
		query_list(rc, rc->projects[i].project, &rc->global);
		query_list(rc, rc->projects[i].project, &rc->projects[i].list);
	}
	vg_bill_ratecard_free(rc);
	return 0;
}
