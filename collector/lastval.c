/*
 * lastval.c — the registry's in-memory state (see lastval.h).
 *
 * Design. Resources in the common hash map (vigie/hmap.h) keyed by id,
 * the key borrowed from the resource itself; each resource owns an
 * array of its metrics in first-seen order, so the lookup of a batch's
 * sample is one string compare at the hinted index. A dirty stack of
 * resources lets a flush visit only what changed, never the whole table;
 * dirty_rows counts the values waiting (a resource's last_seen and each
 * dirty metric), so the flush can size its snapshot before taking it.
 * Caches are shared per key through a small global list with its own
 * mutex; a cache's mutex guards everything in it.
 *
 * Invariants:
 *  - a resource is on the dirty stack iff r->dirty, and r->dirty iff
 *    r->seen_dirty or one of its metrics is dirty (between calls);
 *  - dirty_rows = sum of seen_dirty + dirty metrics;
 *  - the value held is the one with the newest time (ties: the first
 *    call, as the store keeps the first value at a time and skips the
 *    next as a duplicate, and as the registry's upsert does);
 *  - nothing is freed before the cache (snapshots point into entries);
 *  - a forgotten resource is marked gone (atomically, then the cache's
 *    forget count moves) and never made dirty again.
 * Memory: about 60 bytes plus the name per metric, 80 plus the id per
 * resource, plus the map's slots (32 bytes, at most 70 % full) and the
 * metric pointer arrays.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/hmap.h"
#include "collector/lastval.h"

struct vg_lastval {
	struct vg_lastval *next; /* in the global list */
	char *name;
	int refs;
	pthread_mutex_t mu;
	struct vg_hmap res; /* id -> resource (key: r->id, borrowed) */
	size_t nres, nmetrics;
	struct vg_lastval_resource **dirty;
	size_t ndirty, capdirty;
	size_t dirty_rows;
	struct vg_lastval_resource **gone; /* forgotten, freed at close */
	size_t ngone, capgone;
	uint64_t forgets; /* atomic: vg_lastval_forgets */
};

static pthread_mutex_t caches_mu = PTHREAD_MUTEX_INITIALIZER;
static struct vg_lastval *caches;

struct vg_lastval *vg_lastval_open(const char *key)
{
	struct vg_lastval *t;

	pthread_mutex_lock(&caches_mu);
	for (t = caches; t; t = t->next)
		if (!strcmp(t->name, key)) {
			t->refs++;
			pthread_mutex_unlock(&caches_mu);
			return t;
		}
	t = calloc(1, sizeof(*t));
	if (t && (t->name = strdup(key))) {
		vg_hmap_init_borrow(&t->res);
		t->refs = 1;
		pthread_mutex_init(&t->mu, NULL);
		t->next = caches;
		caches = t;
	} else if (t) {
		free(t->name);
		free(t);
		t = NULL;
	}
	pthread_mutex_unlock(&caches_mu);
	return t;
}

void vg_lastval_close(struct vg_lastval *t)
{
	struct vg_lastval **pp;

	if (!t)
		return;
	pthread_mutex_lock(&caches_mu);
	if (--t->refs > 0) {
		pthread_mutex_unlock(&caches_mu);
		return;
	}
	for (pp = &caches; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	pthread_mutex_unlock(&caches_mu);
	size_t pos = 0;
	for (const struct vg_hmap_entry *e; (e = vg_hmap_next(&t->res, &pos));) {
		struct vg_lastval_resource *r = e->value;
		for (uint32_t j = 0; j < r->nm; j++)
			free(r->m[j]);
		free(r->m);
		free(r);
	}
	vg_hmap_release(&t->res);
	for (size_t i = 0; i < t->ngone; i++) {
		struct vg_lastval_resource *r = t->gone[i];
		for (uint32_t j = 0; j < r->nm; j++)
			free(r->m[j]);
		free(r->m);
		free(r);
	}
	free(t->gone);
	pthread_mutex_destroy(&t->mu);
	free(t->dirty);
	free(t->name);
	free(t);
}

void vg_lastval_lock(struct vg_lastval *t)
{
	pthread_mutex_lock(&t->mu);
}

void vg_lastval_unlock(struct vg_lastval *t)
{
	pthread_mutex_unlock(&t->mu);
}

struct vg_lastval_resource *vg_lastval_res(struct vg_lastval *t, const char *id,
					   int create)
{
	struct vg_lastval_resource *r = vg_hmap_gets(&t->res, id);
	size_t len;

	if (r || !create)
		return r;
	len = strlen(id);
	if (!(r = calloc(1, sizeof(*r) + len + 1)))
		return NULL;
	memcpy(r->id, id, len + 1);
	r->first_seen = INT64_MAX;
	r->last_seen = INT64_MIN;
	if (vg_hmap_put(&t->res, r->id, len, r, NULL)) {
		free(r);
		return NULL;
	}
	t->nres++;
	return r;
}

struct vg_lastval_series *vg_lastval_metric(struct vg_lastval *t,
					    struct vg_lastval_resource *r, const char *name,
					    int hint, int create)
{
	struct vg_lastval_series *m;
	size_t len;

	if (hint >= 0 && (uint32_t)hint < r->nm && !strcmp(r->m[hint]->name, name))
		return r->m[hint];
	for (uint32_t i = 0; i < r->nm; i++)
		if (!strcmp(r->m[i]->name, name))
			return r->m[i];
	if (!create)
		return NULL;
	if (r->nm == r->capm) {
		uint32_t cap = r->capm ? r->capm * 2 : 8;
		struct vg_lastval_series **a = realloc(r->m, cap * sizeof(*a));
		if (!a)
			return NULL;
		r->m = a;
		r->capm = cap;
	}
	len = strlen(name);
	if (!(m = calloc(1, sizeof(*m) + len + 1)))
		return NULL;
	memcpy(m->name, name, len + 1);
	m->res = r;
	m->kind = -1;
	m->unit = "";
	m->value = NAN;
	m->time_ms = INT64_MIN;
	r->m[r->nm++] = m;
	t->nmetrics++;
	return m;
}

static int push_res(struct vg_lastval *t, struct vg_lastval_resource *r)
{
	if (r->dirty)
		return 0;
	if (t->ndirty == t->capdirty) {
		size_t cap = t->capdirty ? t->capdirty * 2 : 1024;
		struct vg_lastval_resource **d = realloc(t->dirty, cap * sizeof(*d));
		if (!d)
			return -ENOMEM;
		t->dirty = d;
		t->capdirty = cap;
	}
	t->dirty[t->ndirty++] = r;
	r->dirty = 1;
	return 0;
}

int vg_lastval_seen(struct vg_lastval *t, struct vg_lastval_resource *r, int64_t time_ms)
{
	if (time_ms < r->last_seen)
		return 0;
	r->last_seen = time_ms;
	if (r->seen_dirty)
		return 0;
	if (push_res(t, r))
		return -ENOMEM;
	r->seen_dirty = 1;
	t->dirty_rows++;
	return 0;
}

int vg_lastval_value(struct vg_lastval *t, struct vg_lastval_series *m,
		     double value, int64_t time_ms)
{
	if (time_ms <= m->time_ms)
		return 0;
	m->value = isfinite(value) ? value : NAN;
	m->time_ms = time_ms;
	if (m->dirty)
		return 0;
	if (push_res(t, m->res))
		return -ENOMEM;
	m->dirty = 1;
	t->dirty_rows++;
	return 0;
}

size_t vg_lastval_dirty_rows(struct vg_lastval *t)
{
	return t->dirty_rows;
}

size_t vg_lastval_take_dirty(struct vg_lastval *t, struct vg_lastval_row *out)
{
	size_t n = 0;

	while (t->ndirty) {
		struct vg_lastval_resource *r = t->dirty[--t->ndirty];

		r->dirty = 0;
		if (r->seen_dirty) {
			r->seen_dirty = 0;
			out[n++] = (struct vg_lastval_row){
				.res = r, .time_ms = r->last_seen};
		}
		for (uint32_t i = 0; i < r->nm; i++) {
			struct vg_lastval_series *m = r->m[i];
			if (!m->dirty)
				continue;
			m->dirty = 0;
			out[n++] = (struct vg_lastval_row){.res = r,
							   .m = m,
							   .value = m->value,
							   .time_ms = m->time_ms,
							   .kind = m->kind,
							   .unit = m->unit};
		}
	}
	t->dirty_rows = 0;
	return n;
}

int vg_lastval_redirty(struct vg_lastval *t, const struct vg_lastval_row *rows,
		       size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t *flag = rows[i].m ? &rows[i].m->dirty
					  : &rows[i].res->seen_dirty;
		if (*flag || rows[i].res->gone)
			continue;
		if (push_res(t, rows[i].res))
			return -ENOMEM;
		*flag = 1;
		t->dirty_rows++;
	}
	return 0;
}

size_t vg_lastval_count(struct vg_lastval *t)
{
	return t->nmetrics;
}

uint64_t vg_lastval_forgets(struct vg_lastval *t)
{
	return __atomic_load_n(&t->forgets, __ATOMIC_SEQ_CST);
}

int vg_lastval_is_gone(const struct vg_lastval_resource *r)
{
	return __atomic_load_n(&r->gone, __ATOMIC_SEQ_CST);
}

void vg_lastval_forget(struct vg_lastval *t, const char *id)
{
	struct vg_lastval_resource *r = vg_hmap_gets(&t->res, id);

	if (!r)
		return;
	if (t->ngone == t->capgone) {
		size_t cap = t->capgone ? t->capgone * 2 : 64;
		struct vg_lastval_resource **g = realloc(t->gone, cap * sizeof(*g));
		if (!g) {
			/* keep it mapped, but make every row be written again */
			r->ident = 0;
			for (uint32_t i = 0; i < r->nm; i++)
				r->m[i]->kind = -1;
			return;
		}
		t->gone = g;
		t->capgone = cap;
	}
	vg_hmap_dels(&t->res, id);
	t->nres--;
	t->nmetrics -= r->nm;
	if (r->seen_dirty) {
		r->seen_dirty = 0;
		t->dirty_rows--;
	}
	for (uint32_t i = 0; i < r->nm; i++)
		if (r->m[i]->dirty) {
			r->m[i]->dirty = 0;
			t->dirty_rows--;
		}
	/* still on the dirty stack if it was: take_dirty finds no mark */
	t->gone[t->ngone++] = r;
	/* gone before the counter moves: a flush that sees the new count
	 * sees the flag */
	__atomic_store_n(&r->gone, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&t->forgets, 1, __ATOMIC_SEQ_CST);
}
