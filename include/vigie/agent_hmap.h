/*
 * vigie — a small string-keyed hash map for the agent's per-series state.
 *
 * The agent keeps one entry per domain (keyed by UUID) and per host
 * device across polls; at 1000 domains a linear search per lookup would
 * dominate the per-poll cost, so lookups are O(1) on average.
 *
 * Open addressing with linear probing and tombstones; grows at 70% load.
 * The map copies keys; values are opaque pointers owned by the caller
 * (the map never frees them). Not thread-safe.
 */
#ifndef VIGIE_AGENT_HMAP_H
#define VIGIE_AGENT_HMAP_H

#include <stddef.h>

struct vg_hmap;

/* Create an empty map. Returns NULL on out of memory. */
struct vg_hmap *vg_hmap_new(void);

/* Free the map and its key copies (not the values). Accepts NULL. */
void vg_hmap_free(struct vg_hmap *m);

/* Value for key, or NULL if absent. */
void *vg_hmap_get(const struct vg_hmap *m, const char *key);

/* Insert or replace. 0 or -ENOMEM. value must not be NULL (-EINVAL). */
int vg_hmap_put(struct vg_hmap *m, const char *key, void *value);

/* Remove key; returns its value or NULL if absent. */
void *vg_hmap_del(struct vg_hmap *m, const char *key);

size_t vg_hmap_count(const struct vg_hmap *m);

/* Iterate: start with *pos = 0; returns 1 and fills key/value for the next
 * live entry, 0 at the end. Deleting the entry just returned is allowed
 * during iteration; inserting is not. */
int vg_hmap_next(const struct vg_hmap *m, size_t *pos, const char **key,
		 void **value);

#endif
