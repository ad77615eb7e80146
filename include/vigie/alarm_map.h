/*
 * vigie — a string-keyed hash map for the alarm engine (alarms/map.c).
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones), FNV-1a hashing, load factor kept under 0.7. The map owns a
 * copy of every key; values are opaque pointers the caller owns. Used for
 * alarms by id, series by (resource, metric), instances by resource and
 * hosts by name.
 *
 * Not thread-safe: the owner (the engine, under its lock) serialises use.
 * Iteration order is unspecified; inserting or deleting while iterating
 * with vg_amap_next is not allowed (collect keys first).
 */
#ifndef VIGIE_ALARM_MAP_H
#define VIGIE_ALARM_MAP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct vg_amap_slot {
	char *key;   /* NULL = empty */
	size_t klen;
	uint64_t hash;
	void *value;
};

struct vg_amap {
	struct vg_amap_slot *slots;
	size_t cap; /* power of two, or 0 */
	size_t n;
};

void vg_amap_init(struct vg_amap *m);
/* Free the slots and keys (not the values). Accepts a zeroed map. */
void vg_amap_release(struct vg_amap *m);

/* Value for key (klen bytes, may contain NUL) or NULL. */
void *vg_amap_get(const struct vg_amap *m, const char *key, size_t klen);
/* Insert or replace. *old (may be NULL) gets the replaced value or NULL.
 * 0 or -ENOMEM (the map is unchanged). */
int vg_amap_put(struct vg_amap *m, const char *key, size_t klen, void *value,
		void **old);
/* Remove key; returns its value or NULL if absent. */
void *vg_amap_del(struct vg_amap *m, const char *key, size_t klen);

/* Iterate: start with *pos = 0; returns the next occupied slot or NULL. */
struct vg_amap_slot *vg_amap_next(const struct vg_amap *m, size_t *pos);

/* Convenience for NUL-terminated keys. */
static inline void *vg_amap_gets(const struct vg_amap *m, const char *key)
{
	return vg_amap_get(m, key, strlen(key));
}

#endif
