/*
 * rrd_view.c — what an rrdcached daemon shows of one series file, taken
 * before and after an operation on the file and compared (why and the
 * contract: collector/rrd_view.h). Written for `storage move` and shared
 * with the rrdcached backend's conversion, so both prove their work with
 * one reading of a file through its daemon.
 *
 * Invariant: a FETCH answer is compared only by the rows' timestamps and
 * the bits of their values; INFO only as the daemon's text (its values
 * carry ten significant digits: a check of the state, not of the bits,
 * which FETCH gives).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/rrd_view.h"

void vg_rrd_view_free(struct vg_rrd_view *v)
{
	vg_rrdcd_info_free(&v->info);
	for (size_t i = 0; i < v->nf; i++)
		vg_rrdcd_fetch_free(&v->f[i]);
	memset(v, 0, sizeof(*v));
}

int vg_rrd_view_take(struct vg_rrdcd *c, const char *name, struct vg_rrd_view *v, char *why,
		     size_t whylen)
{
	long pdp[32], rows[32];
	const char *cf[32];
	size_t nrra = 0;
	int rc;

	memset(v, 0, sizeof(*v));
	if ((rc = vg_rrdcd_info(c, name, &v->info))) {
		snprintf(why, whylen, "INFO on %s: %s", vg_rrdcd_address(c), vg_rrdcd_error(c));
		return rc == -ENOENT || rc == -EACCES ? -ENOENT : rc;
	}
	for (int k = 0; k < 32; k++) {
		pdp[k] = rows[k] = 0;
		cf[k] = NULL;
	}
	for (size_t i = 0; i < v->info.n; i++) {
		const char *key = v->info.items[i].key, *val = v->info.items[i].value;
		unsigned idx;
		char field[32];

		if (!strcmp(key, "step"))
			v->step = strtol(val, NULL, 10);
		else if (!strcmp(key, "last_update"))
			v->last_update = strtoll(val, NULL, 10);
		else if (sscanf(key, "rra[%u].%31s", &idx, field) == 2 && idx < 32) {
			if (!strcmp(field, "cf"))
				cf[idx] = val;
			else if (!strcmp(field, "pdp_per_row"))
				pdp[idx] = strtol(val, NULL, 10);
			else if (!strcmp(field, "rows"))
				rows[idx] = strtol(val, NULL, 10);
			if (idx + 1 > nrra)
				nrra = idx + 1;
		}
	}
	if (v->step <= 0 || !nrra) {
		snprintf(why, whylen, "INFO on %s: no step or archives", vg_rrdcd_address(c));
		return -EIO;
	}
	int64_t step = v->step, last = v->last_update;
	for (size_t k = 0; k < nrra; k++) {
		if (!cf[k] || pdp[k] <= 0 || rows[k] <= 0)
			continue;
		int64_t res = pdp[k] * step, cal_start = last - last % res - res * rows[k];
		/* From its own start, it is the finest archive covering the
		 * range unless a finer one reaches as far back (a tier keeping
		 * as long as a finer one): then from before that one's start,
		 * where it is the one covering the most, if any is */
		int64_t from = cal_start, partial = cal_start;
		int shadowed = 0;
		for (size_t j = 0; j < nrra; j++) {
			if (j == k || !cf[j] || strcmp(cf[j], cf[k]) || pdp[j] <= 0 ||
			    pdp[j] * step >= res)
				continue;
			int64_t rj = pdp[j] * step, sj = last - last % rj - rj * rows[j];
			shadowed |= sj <= cal_start;
			if (sj - res < partial)
				partial = sj - res;
		}
		if (shadowed)
			from = partial;
		if (v->nf == VG_RRD_VIEW_MAX)
			break;
		struct vg_rrd_view_rra *a = &v->rra[v->nf];
		a->index = k;
		snprintf(a->cf, sizeof(a->cf), "%s", cf[k]);
		a->pdp = pdp[k];
		a->rows = rows[k];
		a->res_s = res;
		a->cal_start = cal_start;
		if ((rc = vg_rrdcd_fetch(c, name, cf[k], from, last, &v->f[v->nf]))) {
			snprintf(why, whylen, "FETCH %s of archive %zu on %s: %s", cf[k], k,
				 vg_rrdcd_address(c), vg_rrdcd_error(c));
			return rc;
		}
		v->nf++;
	}
	return 0;
}

int vg_rrd_view_equal(const struct vg_rrd_view *a, const struct vg_rrd_view *b, char *why,
		      size_t whylen)
{
	size_t ia = 0, ib = 0;

	for (;;) {
		while (ia < a->info.n && !strcmp(a->info.items[ia].key, "filename"))
			ia++;
		while (ib < b->info.n && !strcmp(b->info.items[ib].key, "filename"))
			ib++;
		if (ia == a->info.n || ib == b->info.n)
			break;
		if (strcmp(a->info.items[ia].key, b->info.items[ib].key) ||
		    strcmp(a->info.items[ia].value, b->info.items[ib].value)) {
			snprintf(why, whylen, "INFO %s: '%s' before, %s '%s' after",
				 a->info.items[ia].key, a->info.items[ia].value,
				 b->info.items[ib].key, b->info.items[ib].value);
			return 0;
		}
		ia++;
		ib++;
	}
	if (ia != a->info.n || ib != b->info.n) {
		snprintf(why, whylen, "INFO: %zu fields before, %zu after", a->info.n, b->info.n);
		return 0;
	}
	if (a->nf != b->nf) {
		snprintf(why, whylen, "%zu archives before, %zu after", a->nf, b->nf);
		return 0;
	}
	for (size_t i = 0; i < a->nf; i++) {
		const struct vg_rrdcd_fetch *x = &a->f[i], *y = &b->f[i];
		if (x->start != y->start || x->end != y->end || x->step != y->step ||
		    x->nds != y->nds || x->nrows != y->nrows ||
		    memcmp(x->ts, y->ts, x->nrows * sizeof(*x->ts)) ||
		    memcmp(x->values, y->values, x->nrows * x->nds * sizeof(*x->values))) {
			snprintf(why, whylen, "archive %zu (step %lld s) differs after the copy", i,
				 (long long)x->step);
			return 0;
		}
	}
	return 1;
}

/* ---- after a conversion --------------------------------------------------------- */

/* Whether KEY is an archive's field "rra[K]." of archive K; *field gets
 * what follows "rra[K].". */
static int rra_field(const char *key, size_t k, const char **field)
{
	char pre[32];
	int n = snprintf(pre, sizeof(pre), "rra[%zu].", k);

	if (strncmp(key, pre, (size_t)n))
		return 0;
	*field = key + n;
	return 1;
}

/* INFO's fields of archive K of V, one by one: the next one from *i on
 * (0 when none is left); rows and cur_row are left out (a conversion
 * resizes and rewrites the ring). */
static const struct vg_rrdcd_kv *rra_next(const struct vg_rrd_view *v, size_t k, size_t *i,
					  const char **field)
{
	for (; *i < v->info.n; (*i)++) {
		const struct vg_rrdcd_kv *kv = &v->info.items[*i];
		if (rra_field(kv->key, k, field) && strcmp(*field, "rows") &&
		    strcmp(*field, "cur_row")) {
			(*i)++;
			return kv;
		}
	}
	return NULL;
}

/* The rows of X and Y at the same times after LO, bit for bit; each row of
 * one within (lo, end] must be in the other. 1 or 0 with why. */
static int rows_kept(const struct vg_rrdcd_fetch *x, const struct vg_rrdcd_fetch *y, int64_t lo,
		     const char *what, char *why, size_t whylen)
{
	if (x->nds != 1 || y->nds != 1 || x->step != y->step || x->end != y->end) {
		snprintf(why, whylen, "%s: the daemon answers end %lld step %lld before, end %lld "
				      "step %lld after",
			 what, (long long)x->end, (long long)x->step, (long long)y->end,
			 (long long)y->step);
		return 0;
	}
	for (size_t i = 0; i < x->nrows; i++) {
		int64_t t = x->ts[i];
		if (t <= lo)
			continue;
		if (t < y->start + y->step || (t - y->start) % y->step) {
			snprintf(why, whylen, "%s: row %lld read before, not after", what,
				 (long long)t);
			return 0;
		}
		size_t j = (size_t)((t - y->start) / y->step) - 1;
		if (j >= y->nrows || y->ts[j] != t) {
			snprintf(why, whylen, "%s: row %lld read before, not after", what,
				 (long long)t);
			return 0;
		}
		if (memcmp(&x->values[i], &y->values[j], sizeof(double))) {
			snprintf(why, whylen, "%s: row %lld is %.17g before, %.17g after", what,
				 (long long)t, x->values[i], y->values[j]);
			return 0;
		}
	}
	for (size_t j = 0; j < y->nrows; j++)
		if (y->ts[j] > lo && (y->ts[j] < x->start + x->step || y->ts[j] > x->end)) {
			snprintf(why, whylen, "%s: row %lld read after, not before", what,
				 (long long)y->ts[j]);
			return 0;
		}
	return 1;
}

int vg_rrd_view_kept(const struct vg_rrd_view *before, const struct vg_rrd_view *after,
		     const struct vg_archive *archives, size_t n, uint32_t step_s, char *why,
		     size_t whylen)
{
	static const char *const cfs[3] = {"AVERAGE", "MIN", "MAX"};
	int used[VG_RRD_VIEW_MAX] = {0};

	/* 1. the daemon reads the new layout */
	if (after->nf != 3 * n) {
		snprintf(why, whylen, "the daemon reads %zu archives after the conversion, not "
				      "the rule's %zu",
			 after->nf, 3 * n);
		return 0;
	}
	for (size_t a = 0; a < n; a++) {
		long p = (long)(archives[a].resolution_s / step_s);
		long want = (long)(archives[a].retention_s / archives[a].resolution_s);
		for (int c = 0; c < 3; c++) {
			size_t j;
			for (j = 0; j < after->nf && (strcmp(after->rra[j].cf, cfs[c]) ||
						      after->rra[j].pdp != p ||
						      after->rra[j].rows != (want > 0 ? want : 1));
			     j++)
				;
			if (j == after->nf) {
				snprintf(why, whylen, "the daemon reads no %s archive of %u s x %ld "
						      "rows after the conversion",
					 cfs[c], archives[a].resolution_s, want);
				return 0;
			}
		}
	}
	/* 2. the header outside the archives */
	for (size_t i = 0; i < before->info.n; i++) {
		const struct vg_rrdcd_kv *kv = &before->info.items[i];
		if (!strncmp(kv->key, "rra[", 4) || !strcmp(kv->key, "filename") ||
		    !strcmp(kv->key, "header_size"))
			continue;
		const char *v2 = vg_rrdcd_info_get(&after->info, kv->key);
		if (!v2 || strcmp(v2, kv->value)) {
			snprintf(why, whylen, "INFO %s: '%s' before, '%s' after", kv->key, kv->value,
				 v2 ? v2 : "(none)");
			return 0;
		}
	}
	/* 3. every archive both have: its definition, its state, its rows */
	for (size_t k = 0; k < before->nf; k++) {
		const struct vg_rrd_view_rra *x = &before->rra[k];
		size_t j;
		for (j = 0; j < after->nf && (used[j] || strcmp(after->rra[j].cf, x->cf) ||
					      after->rra[j].pdp != x->pdp);
		     j++)
			;
		if (j == after->nf)
			continue; /* dropped by the rule */
		used[j] = 1;
		const struct vg_rrd_view_rra *y = &after->rra[j];
		char what[96];
		snprintf(what, sizeof(what), "%s archive of %lld s", x->cf, (long long)x->res_s);
		size_t ib = 0, ia = 0;
		const char *fb, *fa;
		const struct vg_rrdcd_kv *kb, *ka;
		for (;;) {
			kb = rra_next(before, x->index, &ib, &fb);
			ka = rra_next(after, y->index, &ia, &fa);
			if (!kb || !ka)
				break;
			if (strcmp(fb, fa) || strcmp(kb->value, ka->value)) {
				snprintf(why, whylen, "%s: INFO %s '%s' before, %s '%s' after", what,
					 kb->key, kb->value, ka->key, ka->value);
				return 0;
			}
		}
		if (kb || ka) {
			snprintf(why, whylen, "%s: INFO has other fields after the conversion", what);
			return 0;
		}
		/* the daemon must answer from this very archive, before and
		 * after, or its rows are not what is compared */
		if (before->f[k].step != x->res_s || after->f[j].step != y->res_s) {
			snprintf(why, whylen, "%s: the daemon's FETCH answers from another archive "
					      "(step %lld s before, %lld s after): its rows cannot "
					      "be read alone through the daemon",
				 what, (long long)before->f[k].step, (long long)after->f[j].step);
			return 0;
		}
		int64_t lo = x->cal_start > y->cal_start ? x->cal_start : y->cal_start;
		if (!rows_kept(&before->f[k], &after->f[j], lo, what, why, whylen))
			return 0;
	}
	return 1;
}
