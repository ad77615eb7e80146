/*
 * hmap.c — string-keyed open-addressing hash map (include/vigie/agent_hmap.h).
 *
 * Design: power-of-two table of slots, FNV-1a hashes, linear probing.
 * A deleted slot becomes a tombstone (key == TOMB) so probe chains stay
 * intact; the table is rebuilt (dropping tombstones) when live + dead
 * entries exceed 70% of the slots.
 *
 * Invariants: cap is a power of two >= 16; live + tomb < cap * 7/10 after
 * every put; a slot with key NULL ends every probe chain.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/agent_hmap.h"
#include "vigie/hash.h"

static char tomb_marker;
#define TOMB (&tomb_marker)

struct slot {
	char *key; /* NULL = empty, TOMB = deleted */
	void *value;
	uint32_t hash;
};

struct vg_hmap {
	struct slot *slots;
	size_t cap, live, tomb;
};

static uint32_t hash_str(const char *s)
{
	uint64_t h = vg_fnv1a(VG_FNV_OFFSET, s);

	return (uint32_t)(h ^ (h >> 32));
}

struct vg_hmap *vg_hmap_new(void)
{
	struct vg_hmap *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->cap = 16;
	m->slots = calloc(m->cap, sizeof(*m->slots));
	if (!m->slots) {
		free(m);
		return NULL;
	}
	return m;
}

void vg_hmap_free(struct vg_hmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key && m->slots[i].key != TOMB)
			free(m->slots[i].key);
	free(m->slots);
	free(m);
}

/* Slot index holding key, or -1. */
static long find(const struct vg_hmap *m, const char *key, uint32_t h)
{
	size_t mask = m->cap - 1;

	for (size_t i = h & mask, n = 0; n < m->cap; i = (i + 1) & mask, n++) {
		const struct slot *s = &m->slots[i];

		if (!s->key)
			return -1;
		if (s->key != TOMB && s->hash == h && strcmp(s->key, key) == 0)
			return (long)i;
	}
	return -1;
}

void *vg_hmap_get(const struct vg_hmap *m, const char *key)
{
	if (!m || !key)
		return NULL;
	long i = find(m, key, hash_str(key));
	return i < 0 ? NULL : m->slots[i].value;
}

/* Place (key, value, h) into a table known not to contain key. */
static void place(struct slot *slots, size_t cap, char *key, void *value,
		  uint32_t h)
{
	size_t mask = cap - 1, i = h & mask;

	while (slots[i].key && slots[i].key != TOMB)
		i = (i + 1) & mask;
	slots[i].key = key;
	slots[i].value = value;
	slots[i].hash = h;
}

static int rehash(struct vg_hmap *m, size_t ncap)
{
	struct slot *ns = calloc(ncap, sizeof(*ns));

	if (!ns)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		struct slot *s = &m->slots[i];

		if (s->key && s->key != TOMB)
			place(ns, ncap, s->key, s->value, s->hash);
	}
	free(m->slots);
	m->slots = ns;
	m->cap = ncap;
	m->tomb = 0;
	return 0;
}

int vg_hmap_put(struct vg_hmap *m, const char *key, void *value)
{
	if (!m || !key || !value)
		return -EINVAL;
	uint32_t h = hash_str(key);
	long i = find(m, key, h);

	if (i >= 0) {
		m->slots[i].value = value;
		return 0;
	}
	if ((m->live + m->tomb + 1) * 10 >= m->cap * 7) {
		size_t ncap = m->cap;

		while ((m->live + 1) * 10 >= ncap * 5)
			ncap *= 2;
		int rc = rehash(m, ncap);
		if (rc)
			return rc;
	}
	char *k = strdup(key);
	if (!k)
		return -ENOMEM;
	/* Reuse the first tombstone or empty slot on the probe chain. */
	size_t mask = m->cap - 1, j = h & mask;
	while (m->slots[j].key && m->slots[j].key != TOMB)
		j = (j + 1) & mask;
	if (m->slots[j].key == TOMB)
		m->tomb--;
	m->slots[j].key = k;
	m->slots[j].value = value;
	m->slots[j].hash = h;
	m->live++;
	return 0;
}

void *vg_hmap_del(struct vg_hmap *m, const char *key)
{
	if (!m || !key)
		return NULL;
	long i = find(m, key, hash_str(key));
	if (i < 0)
		return NULL;
	void *v = m->slots[i].value;
	free(m->slots[i].key);
	m->slots[i].key = TOMB;
	m->slots[i].value = NULL;
	m->live--;
	m->tomb++;
	return v;
}

size_t vg_hmap_count(const struct vg_hmap *m)
{
	return m ? m->live : 0;
}

int vg_hmap_next(const struct vg_hmap *m, size_t *pos, const char **key,
		 void **value)
{
	if (!m)
		return 0;
	for (size_t i = *pos; i < m->cap; i++) {
		const struct slot *s = &m->slots[i];

		if (s->key && s->key != TOMB) {
			if (key)
				*key = s->key;
			if (value)
				*value = s->value;
			*pos = i + 1;
			return 1;
		}
	}
	*pos = m->cap;
	return 0;
}
