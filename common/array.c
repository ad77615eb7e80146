/*
 * array.c — growing dynamic arrays (include/vigie/array.h).
 *
 * Capacity doubles, starting at 16, so n appends cost O(n) copies in all;
 * the multiplication is checked, so a huge need fails with -ENOMEM instead
 * of wrapping to a small allocation.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "vigie/array.h"

int vg_array_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 16;

	while (n < need) {
		if (n > SIZE_MAX / 2)
			return -ENOMEM;
		n *= 2;
	}
	if (elem && n > SIZE_MAX / elem)
		return -ENOMEM;
	void *p = realloc(*arr, n * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = n;
	return 0;
}
