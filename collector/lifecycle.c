/*
 * lifecycle.c — deleting the series and rows of resources ended long ago
 * (include/vigie/lifecycle.h).
 *
 * Why. Nothing else ever deletes a series: at ~1.2 MB a series and ~55
 * series an instance, a cloud that creates and deletes 1,000 instances a
 * day would grow by ~65 GB a day, forever.
 *
 * Design. A sweep pages through the registry's ended resources
 * (vg_registry_list_visit, state "ended", VG_SWEEP_PAGE at a time, by id:
 * deleting rows behind the cursor never skips one). The page's due
 * resources (ended at or before now - keep) are copied out with their
 * metric names, since the visitor runs under the last-value cache's lock
 * and must not call the registry; then, per resource, each series goes
 * through vg_store_remove_series (the store waits for flushes, reads and
 * creates of it) and only then the rows (vg_registry_remove_ended, which
 * deletes nothing if the resource came back meanwhile; it has the
 * last-value cache forget the resource before it deletes, so a registry
 * flush holding values of it, on PostgreSQL's flusher thread or in
 * sqlite's next batch, does not write its metrics rows back).
 *
 * Invariants: series before rows (a crash in between is finished by the
 * next sweep); a resource whose series could not all be deleted keeps its
 * rows, so it is tried again; the thread never runs on the receiver's path
 * and holds no store lock between two series.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/lifecycle.h"
#include "vigie/log.h"
#include "vigie/name.h"

#define VG_SWEEP_PAGE 200

struct due {
	char *id;
	int rtype;
	char **metric;
	size_t n, cap;
};

struct page {
	int64_t cutoff_ms;
	int keep; /* keep_ms > 0 */
	struct due *d;
	size_t n, cap;
	int cur_due; /* the resource being visited is due */
	struct vg_lifecycle_result *res;
};

static int v_resource(void *ctx, const struct vg_registry_res *r)
{
	struct page *p = ctx;

	p->cur_due = 0;
	if (!r->ended || !r->id)
		return 0;
	if (!p->keep || r->ended_at_ms > p->cutoff_ms) {
		p->res->resources_waiting++;
		return 0;
	}
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		struct due *d = realloc(p->d, cap * sizeof(*d));
		if (!d)
			return -ENOMEM;
		p->d = d;
		p->cap = cap;
	}
	memset(&p->d[p->n], 0, sizeof(p->d[0]));
	if (!(p->d[p->n].id = strdup(r->id)))
		return -ENOMEM;
	p->d[p->n].rtype = r->type;
	p->n++;
	p->cur_due = 1;
	return 0;
}

static int v_metric(void *ctx, const struct vg_registry_metric *m)
{
	struct page *p = ctx;
	struct due *d;

	if (!p->cur_due) {
		p->res->series_waiting++;
		return 0;
	}
	d = &p->d[p->n - 1];
	if (!m->name)
		return 0;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		char **a = realloc(d->metric, cap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		d->metric = a;
		d->cap = cap;
	}
	if (!(d->metric[d->n] = strdup(m->name)))
		return -ENOMEM;
	d->n++;
	return 0;
}

static int v_end(void *ctx)
{
	(void)ctx;
	return 0;
}

static void page_clear(struct page *p)
{
	for (size_t i = 0; i < p->n; i++) {
		for (size_t k = 0; k < p->d[i].n; k++)
			free(p->d[i].metric[k]);
		free(p->d[i].metric);
		free(p->d[i].id);
	}
	p->n = 0;
}

/* Delete one due resource: its series, then (all gone) its rows. */
static void remove_one(struct vg_registry *reg, struct vg_store *s,
		       const struct due *d, int64_t cutoff_ms,
		       struct vg_lifecycle_result *res)
{
	int failed = 0, rc;

	for (size_t k = 0; k < d->n; k++) {
		rc = vg_store_remove_series(s, d->rtype, d->id, d->metric[k]);
		if (!rc) {
			res->series_removed++;
		} else if (rc == -ENOENT || rc == -EINVAL) {
			res->series_missing++; /* gone already, or never storable */
		} else {
			res->errors++;
			failed = 1;
		}
	}
	if (failed)
		return; /* rows stay: the next sweep tries again */
	rc = vg_registry_remove_ended(reg, d->id, cutoff_ms);
	if (!rc)
		res->resources_removed++;
	else if (rc != -ENOENT)
		res->errors++;
}

int vg_lifecycle_sweep(struct vg_registry *reg, struct vg_store *s, int64_t now_ms,
		       int64_t keep_ms, struct vg_lifecycle_result *res,
		       char *err, size_t errlen)
{
	struct page p = {0};
	struct vg_registry_visitor v = {v_resource, v_metric, v_end, &p};
	struct vg_resource_filter f = {0};
	char after[VG_NAME_MAX * 4 + 1] = "", next[VG_NAME_MAX * 4 + 1];
	int rc = 0;

	memset(res, 0, sizeof(*res));
	if (!reg || !s)
		return -EINVAL;
	p.keep = keep_ms > 0;
	p.cutoff_ms = now_ms - keep_ms;
	p.res = res;
	f.state = "ended";
	f.limit = VG_SWEEP_PAGE;
	for (;;) {
		f.after = after[0] ? after : NULL;
		next[0] = '\0';
		rc = vg_registry_list_visit(reg, &f, &v, next, sizeof(next));
		if (rc) {
			snprintf(err, errlen, "lifecycle: reading the ended "
					      "resources: %s",
				 strerror(-rc));
			break;
		}
		for (size_t i = 0; i < p.n; i++)
			remove_one(reg, s, &p.d[i], p.cutoff_ms, res);
		page_clear(&p);
		if (!next[0])
			break;
		snprintf(after, sizeof(after), "%s", next);
	}
	page_clear(&p);
	free(p.d);
	return rc;
}

/* ---- the sweeping thread -------------------------------------------------------- */

struct vg_lifecycle {
	struct vg_registry *reg;
	struct vg_store *s;
	int64_t keep_ms, interval_ms;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	struct vg_lifecycle_result total; /* mu */
	struct vg_store_usage usage;      /* mu */
	int usage_rc;                     /* mu */
	int64_t usage_ms;                 /* mu; 0: none yet */
};

static void *sweeper(void *arg)
{
	struct vg_lifecycle *lc = arg;

	pthread_mutex_lock(&lc->mu);
	while (!lc->stop) {
		struct vg_lifecycle_result r;
		char err[256] = "";
		int rc;

		pthread_mutex_unlock(&lc->mu);
		rc = vg_lifecycle_sweep(lc->reg, lc->s, vg_now_ms(), lc->keep_ms,
					&r, err, sizeof(err));
		if (rc)
			vg_error("%s", err);
		if (r.resources_removed || r.errors)
			vg_log(r.errors ? VG_LOG_WARN : VG_LOG_INFO,
			       "lifecycle: %llu ended resource(s) deleted with %llu "
			       "series (%llu already gone), %llu error(s); %llu "
			       "resource(s) with %llu series wait for keep_ended",
			       (unsigned long long)r.resources_removed,
			       (unsigned long long)r.series_removed,
			       (unsigned long long)r.series_missing,
			       (unsigned long long)r.errors,
			       (unsigned long long)r.resources_waiting,
			       (unsigned long long)r.series_waiting);
		/* what is left on the disks, a week of creations beside it */
		struct vg_store_usage u;
		int64_t now = vg_now_ms();
		int urc = vg_store_usage(lc->s, now / 1000 - 7 * 86400, &u);
		pthread_mutex_lock(&lc->mu);
		lc->usage = u;
		lc->usage_rc = urc;
		lc->usage_ms = now;
		lc->total.resources_removed += r.resources_removed;
		lc->total.series_removed += r.series_removed;
		lc->total.series_missing += r.series_missing;
		lc->total.errors += r.errors + (rc != 0);
		lc->total.resources_waiting = r.resources_waiting;
		lc->total.series_waiting = r.series_waiting;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += lc->interval_ms / 1000;
		ts.tv_nsec += (lc->interval_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		while (!lc->stop &&
		       pthread_cond_timedwait(&lc->cv, &lc->mu, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&lc->mu);
	return NULL;
}

int vg_lifecycle_start(const char *data_dir, const char *state_url,
		       struct vg_store *s, int64_t keep_ms,
		       int64_t interval_ms, struct vg_lifecycle **out, char *err,
		       size_t errlen)
{
	struct vg_lifecycle *lc;
	int rc;

	*out = NULL;
	if (keep_ms <= 0)
		return 0;
	if (!(lc = calloc(1, sizeof(*lc)))) {
		snprintf(err, errlen, "lifecycle: out of memory");
		return -ENOMEM;
	}
	if ((rc = vg_registry_open_state(data_dir, state_url, &lc->reg, err, errlen))) {
		free(lc);
		return rc;
	}
	lc->s = s;
	lc->keep_ms = keep_ms;
	lc->interval_ms = interval_ms > 0 ? interval_ms : 3600 * 1000;
	pthread_mutex_init(&lc->mu, NULL);
	pthread_cond_init(&lc->cv, NULL);
	if ((rc = pthread_create(&lc->th, NULL, sweeper, lc))) {
		snprintf(err, errlen, "lifecycle: cannot start its thread: %s",
			 strerror(rc));
		vg_registry_close(lc->reg);
		free(lc);
		return -rc;
	}
	*out = lc;
	return 0;
}

void vg_lifecycle_get_stats(struct vg_lifecycle *lc, struct vg_lifecycle_result *out)
{
	memset(out, 0, sizeof(*out));
	if (!lc)
		return;
	pthread_mutex_lock(&lc->mu);
	*out = lc->total;
	pthread_mutex_unlock(&lc->mu);
}

int vg_lifecycle_get_usage(struct vg_lifecycle *lc, struct vg_store_usage *out,
			   int64_t *at_ms)
{
	int rc;

	memset(out, 0, sizeof(*out));
	*at_ms = 0;
	if (!lc)
		return -ENOENT;
	pthread_mutex_lock(&lc->mu);
	*out = lc->usage;
	*at_ms = lc->usage_ms;
	rc = lc->usage_ms ? lc->usage_rc : -ENOENT;
	pthread_mutex_unlock(&lc->mu);
	return rc;
}

void vg_lifecycle_stop(struct vg_lifecycle *lc)
{
	if (!lc)
		return;
	pthread_mutex_lock(&lc->mu);
	lc->stop = 1;
	pthread_cond_signal(&lc->cv);
	pthread_mutex_unlock(&lc->mu);
	pthread_join(lc->th, NULL);
	vg_registry_close(lc->reg);
	pthread_cond_destroy(&lc->cv);
	pthread_mutex_destroy(&lc->mu);
	free(lc);
}
