/*
 * vigie — growing a dynamic array (common/array.c), the one helper behind
 * every "append one more" in the batch builder, the agent's /proc parsers
 * and the billing usage tables.
 */
#ifndef VIGIE_ARRAY_H
#define VIGIE_ARRAY_H

#include <stddef.h>

/* Make *arr (elements of elem bytes, *cap of them allocated) hold at least
 * need elements: doubles the capacity (from 16) until it does, so appending
 * one at a time is amortised O(1). 0, or -ENOMEM with *arr and *cap
 * unchanged (also when the size would overflow). Call as
 * vg_array_grow((void **)&v, &cap, n + 1, sizeof(*v)). */
int vg_array_grow(void **arr, size_t *cap, size_t need, size_t elem);

#endif
