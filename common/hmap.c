/*
 * hmap.c — the one string-keyed hash map (include/vigie/hmap.h).
 *
 * Design: a power-of-two array of slots, open addressing with linear
 * probing. Each slot keeps the key's full 64-bit FNV-1a hash and length, so
 * most mismatches are rejected without touching the key, and a rebuild never
 * hashes a key again. A deleted slot becomes a tombstone (key == TOMB): it
 * keeps probe chains intact and nothing moves on delete, which is what lets
 * an iterator delete the entry it stands on. Tombstones count against the
 * load, and the rebuild that reclaims them sizes the table for the live
 * entries alone, so a map that grew and emptied also shrinks.
 *
 * Invariants: cap is 0 or a power of two >= 16; live + tomb < cap * 7/10
 * after every put; an empty slot (key NULL) ends every probe chain, and
 * there is always one (the load stays below 1).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/hash.h"
#include "vigie/hmap.h"

static const char tomb_marker;
#define TOMB (&tomb_marker)

#define MIN_CAP 16

static int live_slot(const struct vg_hmap_entry *s)
{
	return s->key && s->key != TOMB;
}

void vg_hmap_init(struct vg_hmap *m)
{
	memset(m, 0, sizeof(*m));
}

void vg_hmap_init_borrow(struct vg_hmap *m)
{
	memset(m, 0, sizeof(*m));
	m->borrow = 1;
}

void vg_hmap_release(struct vg_hmap *m)
{
	if (!m)
		return;
	int borrow = m->borrow;

	if (!borrow)
		for (size_t i = 0; i < m->cap; i++)
			if (live_slot(&m->slots[i]))
				free((char *)m->slots[i].key);
	free(m->slots);
	memset(m, 0, sizeof(*m));
	m->borrow = borrow;
}

void vg_hmap_clear(struct vg_hmap *m)
{
	if (!m || !m->cap)
		return; /* nothing allocated: empty already */
	if (m->live * 4 < m->cap) {
		vg_hmap_release(m);
		return;
	}
	if (!m->borrow)
		for (size_t i = 0; i < m->cap; i++)
			if (live_slot(&m->slots[i]))
				free((char *)m->slots[i].key);
	memset(m->slots, 0, m->cap * sizeof(*m->slots));
	m->live = 0;
	m->tomb = 0;
}

/* The live slot holding key, or NULL. */
static struct vg_hmap_entry *find(const struct vg_hmap *m, const char *key,
				  size_t klen, uint64_t h)
{
	if (!m->cap)
		return NULL;
	size_t mask = m->cap - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct vg_hmap_entry *s = &m->slots[i];

		if (!s->key)
			return NULL;
		if (s->key != TOMB && s->hash == h && s->klen == klen &&
		    !memcmp(s->key, key, klen))
			return s;
	}
}

void *vg_hmap_get_hashed(const struct vg_hmap *m, const char *key, size_t klen,
			 uint64_t h)
{
	if (!m || !key)
		return NULL;
	struct vg_hmap_entry *s = find(m, key, klen, h);

	return s ? s->value : NULL;
}

void *vg_hmap_get(const struct vg_hmap *m, const char *key, size_t klen)
{
	return key ? vg_hmap_get_hashed(m, key, klen, vg_hmap_hash(key, klen)) : NULL;
}

/* Rebuild into the smallest table that holds live + 1 entries at most half
 * full, dropping the tombstones. 0 or -ENOMEM (the map unchanged). */
static int rebuild(struct vg_hmap *m)
{
	size_t cap = MIN_CAP;

	while ((m->live + 1) * 10 >= cap * 5) {
		if (cap > SIZE_MAX / 2 / sizeof(struct vg_hmap_entry))
			return -ENOMEM;
		cap *= 2;
	}
	struct vg_hmap_entry *ns = calloc(cap, sizeof(*ns));

	if (!ns)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		struct vg_hmap_entry *s = &m->slots[i];

		if (!live_slot(s))
			continue;
		size_t j = s->hash & (cap - 1);
		while (ns[j].key)
			j = (j + 1) & (cap - 1);
		ns[j] = *s;
	}
	free(m->slots);
	m->slots = ns;
	m->cap = cap;
	m->tomb = 0;
	return 0;
}

int vg_hmap_put(struct vg_hmap *m, const char *key, size_t klen, void *value,
		void **old)
{
	return vg_hmap_put_hashed(m, key, klen, key ? vg_hmap_hash(key, klen) : 0, value, old);
}

int vg_hmap_put_hashed(struct vg_hmap *m, const char *key, size_t klen,
		       uint64_t h, void *value, void **old)
{
	if (old)
		*old = NULL;
	if (!m || !key || !value)
		return -EINVAL;
	struct vg_hmap_entry *s = find(m, key, klen, h);

	if (s) {
		if (old)
			*old = s->value;
		s->value = value;
		return 0;
	}
	if ((m->live + m->tomb + 1) * 10 >= m->cap * 7 && rebuild(m))
		return -ENOMEM;
	const char *k = key;

	if (!m->borrow) {
		char *copy = malloc(klen + 1);

		if (!copy)
			return -ENOMEM;
		memcpy(copy, key, klen);
		copy[klen] = '\0';
		k = copy;
	}
	/* The first tombstone or empty slot on the chain: key is not in it. */
	size_t mask = m->cap - 1, i = h & mask;

	while (live_slot(&m->slots[i]))
		i = (i + 1) & mask;
	if (m->slots[i].key == TOMB)
		m->tomb--;
	m->slots[i] = (struct vg_hmap_entry){k, klen, h, value};
	m->live++;
	return 0;
}

void *vg_hmap_del(struct vg_hmap *m, const char *key, size_t klen)
{
	if (!m || !key)
		return NULL;
	struct vg_hmap_entry *s = find(m, key, klen, vg_hmap_hash(key, klen));

	if (!s)
		return NULL;
	void *v = s->value;

	if (!m->borrow)
		free((char *)s->key);
	s->key = TOMB;
	s->value = NULL;
	m->live--;
	m->tomb++;
	return v;
}

const struct vg_hmap_entry *vg_hmap_next(const struct vg_hmap *m, size_t *pos)
{
	if (!m)
		return NULL;
	while (*pos < m->cap) {
		const struct vg_hmap_entry *s = &m->slots[(*pos)++];

		if (live_slot(s))
			return s;
	}
	return NULL;
}
