/*
 * jsonbuf.c — a growing text buffer for writing JSON by hand (vg_buf in
 * query/api/http.h), used where building jansson values per element would
 * cost more than the request itself (a day of 1-minute points).
 *
 * Design: append-only, doubling capacity; the first failed allocation sets
 * `oom`, later appends do nothing and vg_buf_take returns NULL, so callers
 * check once at the end. Numbers are written in the shortest form (of 15,
 * 16 or 17 significant digits) that reads back to the same double; strings
 * are escaped by jansson.
 *
 * Speed (a day of 1-minute points is 1440 numbers and times per request):
 * printf's "%.15g" plus a strtod check cost ~1.5 us a number, so the common
 * case is done with integer and x87 extended arithmetic (x86-64): for
 * 1e-4 <= |v| < 1e15, m17 = round(|v| * 10^k) holds 17 digits, m15 and m16
 * are it rounded to 15 and 16, and each candidate m/10^k is checked to read
 * back as v by one extended division (10^k is exact in a 64-bit mantissa
 * for k <= 27). That division rounds twice (to 64, then
 * to 53 bits), which differs from strtod's single rounding only when the
 * extended result is exactly halfway between two doubles: that case, and
 * everything outside the range, goes to snprintf/strtod. Times are
 * formatted from the civil-from-days algorithm, without gmtime/strftime.
 *
 * Invariants: p is NUL-terminated whenever it is non-NULL; non-finite
 * numbers are written as null (JSON has no NaN).
 */
#include <float.h>
#include <stdint.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "query/api/http.h"

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

/* The fast path: 0 with the text in out, or -1 to use printf. */
static int fast_number(double v, char *out, size_t *len)
{
#if LDBL_MANT_DIG == 64 && defined(__x86_64__)
	static const long double p10[] = {
		1e0L, 1e1L, 1e2L, 1e3L, 1e4L, 1e5L, 1e6L, 1e7L, 1e8L, 1e9L,
		1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L,
		1e19L, 1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L};
	static const double p10d[] = { /* 10^-5 .. 10^16 */
		1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6,
		1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16};
	union {
		long double ld;
		struct {
			unsigned long long mant;
			unsigned short se;
		} p;
	} u;
	double a = fabs(v);
	unsigned long long m17, m;
	int e, bexp, o = 0;

	if (v == 0) {
		out[0] = '0';
		*len = 1;
		return 0;
	}
	if (!(a >= 1e-4 && a < 1e15))
		return -1;
	/* decimal exponent of the first digit: log10(2) * binary exponent,
	 * then corrected against a table */
	frexp(a, &bexp);
	e = (int)floor((bexp - 1) * 0.30102999566398120);
	if (e + 1 <= 16 && a >= p10d[e + 1 + 5])
		e++;
	if (e >= -5 && a < p10d[e + 5])
		e--;
	if (16 - e < 0 || 16 - e > 27)
		return -1;
	/* 17 significant digits, then 15 and 16 by rounding them */
	m17 = (unsigned long long)((long double)a * p10[16 - e] + 0.5L);
	for (int digits = 15; digits <= 17; digits++) {
		int k = digits - 1 - e; /* m / 10^k */
		m = digits == 17 ? m17 : digits == 16 ? (m17 + 5) / 10
						      : (m17 + 50) / 100;
		u.ld = (long double)m / p10[k];
		if ((double)u.ld != a)
			continue;
		/* exactly halfway between two doubles in 64 bits: the second
		 * rounding may differ from strtod's one; let printf decide */
		if ((u.p.mant & 0x7ff) == 0x400)
			return -1;
		/* m * 10^-k, trailing zeros of the fraction dropped */
		static const char pairs[] =
			"00010203040506070809101112131415161718192021222324"
			"25262728293031323334353637383940414243444546474849"
			"50515253545556575859606162636465666768697071727374"
			"75767778798081828384858687888990919293949596979899";
		char dig[24];
		int nd = 0, low = 0;
		while (m >= 10) { /* two digits a division */
			unsigned r = (unsigned)(m % 100);
			dig[nd++] = pairs[2 * r + 1];
			dig[nd++] = pairs[2 * r];
			m /= 100;
		}
		if (m)
			dig[nd++] = (char)('0' + m);
		while (low < k && low < nd && dig[low] == '0')
			low++;
		if (v < 0)
			out[o++] = '-';
		int intd = nd - k; /* digits before the point */
		if (intd <= 0) {
			out[o++] = '0';
			out[o++] = '.';
			for (int i = 0; i < -intd; i++)
				out[o++] = '0';
			for (int i = nd - 1; i >= low; i--)
				out[o++] = dig[i];
		} else {
			for (int i = nd - 1; i >= nd - intd; i--)
				out[o++] = dig[i];
			if (k > low) {
				out[o++] = '.';
				for (int i = k - 1; i >= low; i--)
					out[o++] = dig[i];
			}
		}
		*len = (size_t)o;
		return 0;
	}
#endif
	(void)v;
	(void)out;
	(void)len;
	return -1;
}

void vg_buf_json_number(struct vg_buf *b, double v)
{
	char tmp[40];
	size_t len;

	if (!isfinite(v)) {
		vg_buf_append(b, "null", 4);
		return;
	}
	if (fast_number(v, tmp, &len) == 0) {
		vg_buf_append(b, tmp, len);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%.15g", v);
	if (strtod(tmp, NULL) != v)
		snprintf(tmp, sizeof(tmp), "%.16g", v);
	if (strtod(tmp, NULL) != v)
		snprintf(tmp, sizeof(tmp), "%.17g", v);
	vg_buf_append(b, tmp, strlen(tmp));
}

char *vg_iso_time(int64_t ms, char *out)
{
	/* the date of the previous call on this thread: points of one
	 * request share it */
	static __thread int64_t cached_day = INT64_MIN;
	static __thread char cached_date[11];
	int64_t t = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
	int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
	int64_t sod = t - days * 86400;
	unsigned hh = (unsigned)(sod / 3600), mi = (unsigned)(sod / 60 % 60),
		 ss = (unsigned)(sod % 60);

	if (days == cached_day) {
		memcpy(out, cached_date, 10);
		goto clock;
	}
	/* civil from days (proleptic Gregorian) */
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;

	y += m <= 2;
	if (y < 0 || y > 9999) {
		snprintf(out, 21, "invalid");
		return out;
	}
	out[0] = (char)('0' + y / 1000);
	out[1] = (char)('0' + y / 100 % 10);
	out[2] = (char)('0' + y / 10 % 10);
	out[3] = (char)('0' + y % 10);
	out[4] = '-';
	out[5] = (char)('0' + m / 10);
	out[6] = (char)('0' + m % 10);
	out[7] = '-';
	out[8] = (char)('0' + d / 10);
	out[9] = (char)('0' + d % 10);
	memcpy(cached_date, out, 10);
	cached_day = days;
clock:
	out[10] = 'T';
	out[11] = (char)('0' + hh / 10);
	out[12] = (char)('0' + hh % 10);
	out[13] = ':';
	out[14] = (char)('0' + mi / 10);
	out[15] = (char)('0' + mi % 10);
	out[16] = ':';
	out[17] = (char)('0' + ss / 10);
	out[18] = (char)('0' + ss % 10);
	out[19] = 'Z';
	out[20] = '\0';
	return out;
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

