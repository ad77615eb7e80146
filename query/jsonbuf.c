/*
 * jsonbuf.c — a growing text buffer for writing JSON by hand (vg_buf in
 * vigie/http.h), used where building jansson values per element would
 * cost more than the request itself (a day of 1-minute points).
 *
 * Design: append-only, doubling capacity; the first failed allocation sets
 * `oom`, later appends do nothing and vg_buf_take returns NULL, so callers
 * check once at the end. Numbers are written in the shortest form that
 * reads back to the same double; strings are escaped by jansson.
 *
 * Invariants: p is NUL-terminated whenever it is non-NULL; non-finite
 * numbers are written as null (JSON has no NaN).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "vigie/http.h"

static int buf_reserve(struct vg_buf *b, size_t more)
{
	if (b->oom)
		return -1;
	if (b->len + more + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void vg_buf_append(struct vg_buf *b, const char *s, size_t n)
{
	if (buf_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void vg_buf_printf(struct vg_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void vg_buf_json_string(struct vg_buf *b, const char *s)
{
	json_t *j = json_string(s ? s : "");
	char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;

	json_decref(j);
	if (!t) {
		b->oom = 1;
		return;
	}
	vg_buf_append(b, t, strlen(t));
	free(t);
}

void vg_buf_json_number(struct vg_buf *b, double v)
{
	char tmp[40];

	if (!isfinite(v)) {
		vg_buf_append(b, "null", 4);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%.15g", v);
	if (strtod(tmp, NULL) != v)
		snprintf(tmp, sizeof(tmp), "%.17g", v);
	vg_buf_append(b, tmp, strlen(tmp));
}

char *vg_buf_take(struct vg_buf *b, size_t *len)
{
	char *p;

	if (b->oom || buf_reserve(b, 0)) {
		vg_buf_release(b);
		return NULL;
	}
	p = b->p;
	if (len)
		*len = b->len;
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}

void vg_buf_release(struct vg_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

