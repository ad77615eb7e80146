/*
 * vigie — FNV-1a, the one string hash of every in-memory table (the
 * agent's map, the wire encoder's string table, the store's series table,
 * the registry's cache and identity hashes, the alarm engine's map).
 * FNV-1a is never persisted: tables may change it without a migration.
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

/* A 64-bit checksum of n bytes, stored on disk by the store's journal
 * records and the files backend's header undo slots (unlike the FNV-1a
 * above it is persisted: changing it needs a record version bump). Mixes a
 * word at a time, so a torn or garbled record is caught cheaply. */
static inline uint64_t vg_checksum64(const void *data, size_t n)
{
	const unsigned char *p = data;
	uint64_t h = 0x243f6a8885a308d3ull ^ (uint64_t)n, w;

	for (; n >= 8; p += 8, n -= 8) {
		__builtin_memcpy(&w, p, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ull;
		h ^= h >> 32;
	}
	w = 0;
	__builtin_memcpy(&w, p, n);
	h = (h ^ w ^ ((uint64_t)n << 56)) * 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 29);
}

#endif
