/*
 * series_list.c — the series of one page of the registry, gathered by a
 * registry visitor (collector/series_list.h): `storage convert` and
 * `storage move` list the same thing, a page at a time, before they touch
 * any file.
 *
 * Design: three parallel arrays grown together (doubling from 256), the
 * resource's type and id remembered from its row for the metric rows that
 * follow it. Invariant: entries [0, n) hold two malloc'd names each; an
 * entry that could not be completed is never counted.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "collector/series_list.h"

static int on_resource(void *ctx, const struct vg_registry_res *r)
{
	struct vg_series_list *l = ctx;

	l->cur_type = r->type;
	l->cur_id = r->id;
	return 0;
}

static int on_metric(void *ctx, const struct vg_registry_metric *m)
{
	struct vg_series_list *l = ctx;

	if (!m->name || !l->cur_id || (l->metric_glob && fnmatch(l->metric_glob, m->name, 0)))
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		char **a = realloc(l->id, cap * sizeof(*a)), **b;
		int *t;
		if (!a)
			return -ENOMEM;
		l->id = a;
		if (!(b = realloc(l->metric, cap * sizeof(*b))))
			return -ENOMEM;
		l->metric = b;
		if (!(t = realloc(l->rtype, cap * sizeof(*t))))
			return -ENOMEM;
		l->rtype = t;
		l->cap = cap;
	}
	l->id[l->n] = strdup(l->cur_id);
	l->metric[l->n] = strdup(m->name);
	l->rtype[l->n] = l->cur_type;
	if (!l->id[l->n] || !l->metric[l->n]) {
		free(l->id[l->n]);
		free(l->metric[l->n]);
		return -ENOMEM;
	}
	l->n++;
	return 0;
}

static int on_resource_end(void *ctx)
{
	(void)ctx;
	return 0;
}

struct vg_registry_visitor vg_series_list_visitor(struct vg_series_list *l)
{
	return (struct vg_registry_visitor){on_resource, on_metric, on_resource_end, l};
}

void vg_series_list_clear(struct vg_series_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->id[i]);
		free(l->metric[i]);
	}
	l->n = 0;
}

void vg_series_list_free(struct vg_series_list *l)
{
	if (!l)
		return;
	vg_series_list_clear(l);
	free(l->id);
	free(l->metric);
	free(l->rtype);
	l->id = l->metric = NULL;
	l->rtype = NULL;
	l->cap = 0;
}
