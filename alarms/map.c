/*
 * map.c — the alarm engine's string-keyed hash map (vigie/alarm_map.h).
 *
 * Design: one array of slots, open addressing with linear probing. The
 * full 64-bit FNV-1a hash is kept in each slot so growing never rehashes
 * keys and most mismatches are rejected without a memcmp. Deletion shifts
 * the following cluster back (Knuth's algorithm R), so there are no
 * tombstones and lookups never degrade after many deletions.
 *
 * Invariants: cap is 0 or a power of two; n < 0.7 * cap; every occupied
 * slot is reachable from its home slot without crossing an empty slot.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/alarm_map.h"
#include "vigie/hash.h"

static uint64_t fnv1a(const char *k, size_t n)
{
	uint64_t h = vg_fnv1a_n(VG_FNV_OFFSET, k, n);

	return h ? h : 1;
}

void vg_amap_init(struct vg_amap *m)
{
	memset(m, 0, sizeof(*m));
}

void vg_amap_release(struct vg_amap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

static struct vg_amap_slot *find(const struct vg_amap *m, const char *key,
				 size_t klen, uint64_t h)
{
	if (!m->cap)
		return NULL;
	for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		struct vg_amap_slot *s = &m->slots[i];
		if (!s->key)
			return NULL;
		if (s->hash == h && s->klen == klen && !memcmp(s->key, key, klen))
			return s;
	}
}

void *vg_amap_get(const struct vg_amap *m, const char *key, size_t klen)
{
	struct vg_amap_slot *s = find(m, key, klen, fnv1a(key, klen));

	return s ? s->value : NULL;
}

static int grow(struct vg_amap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 16;
	struct vg_amap_slot *ns = calloc(cap, sizeof(*ns));

	if (!ns)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		struct vg_amap_slot *s = &m->slots[i];
		if (!s->key)
			continue;
		size_t j = s->hash & (cap - 1);
		while (ns[j].key)
			j = (j + 1) & (cap - 1);
		ns[j] = *s;
	}
	free(m->slots);
	m->slots = ns;
	m->cap = cap;
	return 0;
}

int vg_amap_put(struct vg_amap *m, const char *key, size_t klen, void *value,
		void **old)
{
	uint64_t h = fnv1a(key, klen);
	struct vg_amap_slot *s = find(m, key, klen, h);
	char *k;

	if (old)
		*old = NULL;
	if (s) {
		if (old)
			*old = s->value;
		s->value = value;
		return 0;
	}
	if ((m->n + 1) * 10 >= m->cap * 7 && grow(m))
		return -ENOMEM;
	k = malloc(klen + 1);
	if (!k)
		return -ENOMEM;
	memcpy(k, key, klen);
	k[klen] = '\0';
	size_t i = h & (m->cap - 1);
	while (m->slots[i].key)
		i = (i + 1) & (m->cap - 1);
	m->slots[i] = (struct vg_amap_slot){k, klen, h, value};
	m->n++;
	return 0;
}

void *vg_amap_del(struct vg_amap *m, const char *key, size_t klen)
{
	uint64_t h = fnv1a(key, klen);
	struct vg_amap_slot *s = find(m, key, klen, h);
	void *v;
	size_t i, j, mask;

	if (!s)
		return NULL;
	v = s->value;
	free(s->key);
	mask = m->cap - 1;
	i = (size_t)(s - m->slots);
	m->slots[i].key = NULL;
	/* Backward-shift: move later members of the cluster into the hole
	 * when their home slot does not lie cyclically in (i, j]. */
	for (j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
		size_t home = m->slots[j].hash & mask;
		int between = i <= j ? (i < home && home <= j)
				     : (i < home || home <= j);
		if (between)
			continue;
		m->slots[i] = m->slots[j];
		m->slots[j].key = NULL;
		i = j;
	}
	m->n--;
	return v;
}

struct vg_amap_slot *vg_amap_next(const struct vg_amap *m, size_t *pos)
{
	while (*pos < m->cap) {
		struct vg_amap_slot *s = &m->slots[(*pos)++];
		if (s->key)
			return s;
	}
	return NULL;
}
