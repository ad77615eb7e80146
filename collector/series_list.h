/*
 * vigie — the series of one page of the registry, gathered by a registry
 * visitor (collector/series_list.c) for the storage commands (convert,
 * move): they walk the registry a page at a time and work on each series'
 * file after the page is read, never while its statement is open.
 *
 * Not thread-safe: one list per walk.
 */
#ifndef VIGIE_COLLECTOR_SERIES_LIST_H
#define VIGIE_COLLECTOR_SERIES_LIST_H

#include <stddef.h>

#include "vigie/registry.h"

struct vg_series_list {
	const char *metric_glob; /* only metrics it matches (fnmatch), NULL: all */
	int *rtype;              /* [0, n): each series' resource type, */
	char **id, **metric;     /* resource id and metric name (malloc'd) */
	size_t n, cap;
	/* the resource being visited */
	int cur_type;
	const char *cur_id;
};

/* A visitor for vg_registry_list_visit that appends every series of the
 * resources it visits (with a metric metric_glob matches) to l. Its calls
 * return 0 or -ENOMEM (the walk stops; what was gathered stays in l). */
struct vg_registry_visitor vg_series_list_visitor(struct vg_series_list *l);

/* Free the names gathered and empty l (n = 0), keeping its arrays for the
 * next page. */
void vg_series_list_clear(struct vg_series_list *l);

/* Free everything l holds; l is then empty and reusable. Accepts NULL. */
void vg_series_list_free(struct vg_series_list *l);

#endif
