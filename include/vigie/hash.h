/*
 * vigie — FNV-1a, the one string hash of every in-memory table (the
 * agent's map, the wire encoder's string table, the store's series table,
 * the registry's cache and identity hashes, the alarm engine's map).
 * Never persisted: tables may change the function without a migration.
 */
#ifndef VIGIE_HASH_H
#define VIGIE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define VG_FNV_OFFSET 14695981039346656037ull
#define VG_FNV_PRIME 1099511628211ull

/* Continue hash h (start with VG_FNV_OFFSET) over the string s. */
static inline uint64_t vg_fnv1a(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * VG_FNV_PRIME;
	return h;
}

/* The same over n bytes. */
static inline uint64_t vg_fnv1a_n(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * VG_FNV_PRIME;
	return h;
}

#endif
