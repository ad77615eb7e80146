/*
 * vigie — times packed as varints (timepack.h).
 */
#include "collector/timepack.h"

#include <errno.h>
#include <stdlib.h>

static size_t put_varint(uint8_t *o, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		o[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	o[n++] = (uint8_t)v;
	return n;
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* The varint at b[*pos..len): its value, *pos moved past it; a varint cut
 * short ends the list (*pos = len). */
static uint64_t get_varint(const uint8_t *b, size_t len, size_t *pos)
{
	uint64_t v = 0;
	unsigned shift = 0;

	while (*pos < len && shift < 64) {
		uint8_t c = b[(*pos)++];
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return v;
		shift += 7;
	}
	*pos = len;
	return v;
}

/* The token(s) of t after prev into o (at most 11 bytes). */
static size_t put_time(uint8_t *o, int64_t prev, int64_t t)
{
	uint64_t d = (uint64_t)t - (uint64_t)prev;
	size_t n;

	if (t > prev)
		return put_varint(o, d);
	o[0] = 0;
	n = 1 + put_varint(o + 1, (d << 1) ^ (uint64_t)((int64_t)d >> 63));
	return n;
}

static size_t time_len(int64_t prev, int64_t t)
{
	uint64_t d = (uint64_t)t - (uint64_t)prev;

	if (t > prev)
		return varint_len(d);
	return 1 + varint_len((d << 1) ^ (uint64_t)((int64_t)d >> 63));
}

int vg_tpack_add(struct vg_tpack *p, int64_t t)
{
	if (p->n && t == p->last)
		return 0; /* the same time again (another metric's record) */
	if (p->len + 11 > p->cap) {
		size_t ncap = p->cap < 16 ? 32 : p->cap + p->cap / 2;
		uint8_t *nb = realloc(p->b, ncap);
		if (!nb)
			return -ENOMEM;
		p->b = nb;
		p->cap = ncap;
	}
	if (p->n && t < p->last)
		p->unsorted = 1;
	p->len += put_time(p->b + p->len, p->n ? p->last : 0, t);
	p->last = t;
	p->n++;
	return 0;
}

void vg_tpack_free(struct vg_tpack *p)
{
	free(p->b);
	*p = (struct vg_tpack){0};
}

/* One time's step from the one before: a varint, or 0 then the
 * zigzag of a step back (an out-of-order time). */
static uint64_t get_step(const uint8_t *b, size_t len, size_t *pos)
{
	uint64_t u = get_varint(b, len, pos);

	if (!u) {
		uint64_t z = get_varint(b, len, pos);
		u = (z >> 1) ^ (0 - (z & 1));
	}
	return u;
}

size_t vg_tpack_unpack(const uint8_t *b, size_t len, int64_t *out)
{
	size_t pos = 0, n = 0;
	uint64_t prev = 0;

	while (pos < len) {
		prev += get_step(b, len, &pos);
		out[n++] = (int64_t)prev;
	}
	return n;
}

size_t vg_tpack_size(const int64_t *t, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		len += time_len(i ? t[i - 1] : 0, t[i]);
	return len;
}

void vg_tpack_write(const int64_t *t, size_t n, uint8_t *out)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		len += put_time(out + len, i ? t[i - 1] : 0, t[i]);
}

int64_t vg_tpack_first_after(const uint8_t *b, size_t len, int64_t after)
{
	size_t pos = 0;
	uint64_t prev = 0;

	while (pos < len) {
		prev += get_step(b, len, &pos);
		if ((int64_t)prev > after)
			return (int64_t)prev;
	}
	return INT64_MAX;
}
