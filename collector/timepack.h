/*
 * vigie — a list of times (ms) packed as varints, for the start replay's
 * check (store.c replay_spans, backend_rrdcached.c replay_times).
 *
 * The check keeps every journaled time of every series until the file's
 * check is done: 8 bytes each as int64, 16 to 24 per value with the
 * store's arrays grown by doubling and the backend's copy (measured 338 MB
 * at 20 M values, docs/benchmarks.md "The start replay's memory"). Packed,
 * each time is the varint of its step from the one before: 2 bytes at
 * 10 s polls (a step under 16.4 s), 3 under 35 minutes.
 *
 * Encoding: from prev = 0, a token u (LEB128). u > 0: the time is prev + u.
 * u = 0: a step back (or none), the next varint being the zigzag of
 * time - prev. Steps are taken modulo 2^64, so any int64 is kept exactly.
 */
#ifndef VIGIE_TIMEPACK_H
#define VIGIE_TIMEPACK_H

#include <stddef.h>
#include <stdint.h>

/* Times appended in any order (vg_tpack_add). Zero-initialised: empty. */
struct vg_tpack {
	uint8_t *b;
	size_t len, cap;
	size_t n;     /* times appended */
	int64_t last; /* the last appended (0: none) */
	int unsorted; /* some time was appended after a newer one */
};

/* Append t (the same as the last appended: nothing). 0 or -ENOMEM. */
int vg_tpack_add(struct vg_tpack *p, int64_t t);
/* Free p's bytes; p is empty again. */
void vg_tpack_free(struct vg_tpack *p);
/* Decode the times of b[0..len) into out (room for every one of them,
 * vg_tpack.n), in their order. How many. */
size_t vg_tpack_unpack(const uint8_t *b, size_t len, int64_t *out);
/* The bytes t[0..n) take packed. */
size_t vg_tpack_size(const int64_t *t, size_t n);
/* Pack t[0..n) into out (vg_tpack_size bytes). */
void vg_tpack_write(const int64_t *t, size_t n, uint8_t *out);
/* The first time of b[0..len), in its order, greater than after;
 * INT64_MAX: none. */
int64_t vg_tpack_first_after(const uint8_t *b, size_t len, int64_t after);

#endif
