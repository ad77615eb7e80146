/*
 * rrd_format.c — update values as text for librrd and rrdcached without
 * printf in the common cases (why: collector/rrd_format.h).
 *
 * The three-decimals form is exact by construction: k / 1000.0 is the
 * double nearest to the decimal k/1000 (division is correctly rounded),
 * which is what strtod makes of that decimal, so k / 1000.0 == v proves
 * the short text reads back as v.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "collector/rrd_format.h"

static char *put_u64(char *p, uint64_t v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	*p = '\0';
	return p;
}

char *vg_rrd_fmt_time_ms(char *out, int64_t t_ms)
{
	char *p;
	int ms;

	if (t_ms < 0) {
		int n = snprintf(out, VG_RRD_FMT_LEN, "-%" PRId64 ".%03d", -(t_ms / 1000),
				 (int)-(t_ms % 1000));
		return out + (n > 0 && n < VG_RRD_FMT_LEN ? n : 0);
	}
	p = put_u64(out, (uint64_t)(t_ms / 1000));
	ms = (int)(t_ms % 1000);
	*p++ = '.';
	*p++ = (char)('0' + ms / 100);
	*p++ = (char)('0' + ms / 10 % 10);
	*p++ = (char)('0' + ms % 10);
	*p = '\0';
	return p;
}

char *vg_rrd_fmt_value(char *out, double v)
{
	char *p = out;
	double k;
	int n;

	if (fabs(v) < 1e15 && v == (double)(int64_t)v) {
		int64_t i = (int64_t)v;
		if (i < 0) {
			*p++ = '-';
			i = -i;
		}
		return put_u64(p, (uint64_t)i);
	}
	k = nearbyint(v * 1000);
	if (isfinite(v) && fabs(k) < 1e15 && k / 1000.0 == v) {
		int64_t i = (int64_t)k, frac;
		if (i < 0) {
			*p++ = '-';
			i = -i;
		}
		p = put_u64(p, (uint64_t)(i / 1000));
		frac = i % 1000;
		*p++ = '.';
		*p++ = (char)('0' + frac / 100);
		if (frac % 100) {
			*p++ = (char)('0' + frac / 10 % 10);
			if (frac % 10)
				*p++ = (char)('0' + frac % 10);
		}
		*p = '\0';
		return p;
	}
	n = snprintf(out, VG_RRD_FMT_LEN, "%.17g", v);
	return out + (n > 0 && n < VG_RRD_FMT_LEN ? n : 0);
}
