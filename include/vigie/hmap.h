/*
 * vigie — the one string-keyed hash map of every in-memory table
 * (common/hmap.c): the agent's per-domain state and domain cache, the alarm
 * engine's alarms, series, resources, instances and hosts, the registry's
 * last-value cache (collector/lastval.c). Not the store's series table,
 * whose private table is measurably faster (collector/store.c says why).
 *
 * Keys are byte strings with a length (they may contain NUL, so a composite
 * key such as "type\0id\0metric" works); the *s helpers take C strings.
 * Values are opaque non-NULL pointers that the caller owns: the map never
 * frees a value, and NULL is what a lookup returns for "absent".
 *
 * Key ownership is chosen once, at init:
 *   vg_hmap_init         the map copies every key and frees its copies;
 *   vg_hmap_init_borrow  the map keeps the caller's key pointer, which must
 *                        stay valid and unchanged until the entry is deleted
 *                        or the map released (the key usually lives inside
 *                        the value: no second copy per entry).
 *
 * Growth is bounded: the table is a power of two of at least 16 slots, is
 * rebuilt when live + deleted slots pass 70% of it, and is then sized for
 * the live entries only (at most 50% full), so it also shrinks after many
 * deletions. Deleting leaves a tombstone, so deleting the entry just
 * returned by vg_hmap_next during iteration is allowed; inserting during
 * iteration is not (a rebuild would reorder the table).
 *
 * Not thread-safe: the owner serialises use. The struct is public so a map
 * can be embedded; touch it only through these functions.
 */
#ifndef VIGIE_HMAP_H
#define VIGIE_HMAP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vigie/hash.h"

/* One entry as vg_hmap_next returns it. key is NUL-terminated when the map
 * copies keys; borrowed keys are exactly what the caller gave. */
struct vg_hmap_entry {
	const char *key; /* NULL = empty slot; the map's tombstone = deleted */
	size_t klen;
	uint64_t hash; /* FNV-1a of the key (include/vigie/hash.h) */
	void *value;
};

struct vg_hmap {
	struct vg_hmap_entry *slots;
	size_t cap;  /* 0 (nothing allocated yet) or a power of two >= 16 */
	size_t live; /* entries */
	size_t tomb; /* deleted slots not yet reclaimed */
	int borrow;  /* keys are the caller's (vg_hmap_init_borrow) */
};

/* Start an empty map that copies keys. Cannot fail (the table is allocated
 * by the first put). */
void vg_hmap_init(struct vg_hmap *m);
/* Start an empty map that keeps the caller's key pointers (see above). */
void vg_hmap_init_borrow(struct vg_hmap *m);
/* Free the table and the key copies (never the values); the map is left
 * empty and usable, with the same key ownership. Accepts NULL and a zeroed
 * map. */
void vg_hmap_release(struct vg_hmap *m);

/* Remove every entry (freeing the key copies, never the values) and keep
 * the table for the next fill when at least a quarter of it was in use, so
 * a map refilled to about the same size each time (a set rebuilt per
 * round) allocates nothing after its first round; a table used less than
 * that is freed, as by vg_hmap_release, so a map that once grew large does
 * not keep a large table for a few entries. Costs one pass over the table.
 * Accepts NULL. */
void vg_hmap_clear(struct vg_hmap *m);

/* Value for key (klen bytes) or NULL when absent. */
void *vg_hmap_get(const struct vg_hmap *m, const char *key, size_t klen);
/* Insert or replace. *old (old may be NULL) gets the replaced value or NULL.
 * 0, -EINVAL (NULL map, key or value), or -ENOMEM with the map unchanged. */
int vg_hmap_put(struct vg_hmap *m, const char *key, size_t klen, void *value,
		void **old);
/* The hash a map keeps for key: FNV-1a over its klen bytes, the same for
 * every map. A caller that looks one key up more than once (in one map or
 * several, or a lookup then a put) computes it once and passes it to the
 * *_hashed calls below, which are otherwise vg_hmap_get and vg_hmap_put.
 * h must be vg_hmap_hash(key, klen): another value finds nothing, and a
 * put with it makes an entry the other calls never find. */
static inline uint64_t vg_hmap_hash(const char *key, size_t klen)
{
	return vg_fnv1a_n(VG_FNV_OFFSET, key, klen);
}
void *vg_hmap_get_hashed(const struct vg_hmap *m, const char *key, size_t klen,
			 uint64_t h);
int vg_hmap_put_hashed(struct vg_hmap *m, const char *key, size_t klen,
		       uint64_t h, void *value, void **old);
/* Remove key; returns its value, or NULL when absent. */
void *vg_hmap_del(struct vg_hmap *m, const char *key, size_t klen);

static inline size_t vg_hmap_count(const struct vg_hmap *m)
{
	return m ? m->live : 0;
}

/* Iterate: start with *pos = 0; returns the next entry, or NULL at the end.
 * The order is unspecified. The entry stays valid until the next put,
 * delete or release. */
const struct vg_hmap_entry *vg_hmap_next(const struct vg_hmap *m, size_t *pos);

/* The same for NUL-terminated keys (a NULL key: absent, or -EINVAL). */
static inline void *vg_hmap_gets(const struct vg_hmap *m, const char *key)
{
	return vg_hmap_get(m, key, key ? strlen(key) : 0);
}

static inline int vg_hmap_puts(struct vg_hmap *m, const char *key, void *value)
{
	return vg_hmap_put(m, key, key ? strlen(key) : 0, value, NULL);
}

static inline void *vg_hmap_dels(struct vg_hmap *m, const char *key)
{
	return vg_hmap_del(m, key, key ? strlen(key) : 0);
}

#endif
