/*
 * jsonbuf.c — a growing text buffer for writing JSON by hand (vg_buf in
 * query/api/http.h), used where building jansson values per element would
 * cost more than the request itself (a day of 1-minute points).
 *
 * Design: append-only, doubling capacity; the first failed allocation sets
 * `oom`, later appends do nothing and vg_buf_take returns NULL, so callers
 * check once at the end. Numbers are written in the shortest form (of 15,
 * 16 or 17 significant digits) that reads back to the same double, or
 * (vg_buf_json_real) exactly as jansson writes a real, for answers that
 * were jansson's before (the resource list); strings are escaped exactly
 * as jansson escapes them, and refused where jansson refuses them (not
 * UTF-8), so a hand-written answer is byte for byte the jansson one.
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
#include <ctype.h>
#include <errno.h>
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
	if ((b->oom || b->len + n + 1 > b->cap) && buf_reserve(b, n))
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

/* The length of the UTF-8 sequence at p (at most n bytes) as jansson
 * accepts it (RFC 3629: no overlong forms, surrogates or code points past
 * U+10FFFF), 0 if it is not one. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char u = p[0];
	size_t len;
	uint32_t cp;

	if (u < 0x80)
		return 1;
	if (u >= 0xC2 && u <= 0xDF)
		len = 2, cp = u & 0x1F;
	else if (u >= 0xE0 && u <= 0xEF)
		len = 3, cp = u & 0x0F;
	else if (u >= 0xF0 && u <= 0xF4)
		len = 4, cp = u & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ||
	    (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
		return 0;
	return len;
}

int vg_buf_json_str(struct vg_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	char *o;
	size_t k;

	/* room for the worst case (every byte \u00XX), written in place */
	if (n > (SIZE_MAX - 3) / 6 || buf_reserve(b, n * 6 + 2))
		return 0;
	o = b->p + b->len;
	*o++ = '"';
	while (p < end) {
		unsigned char c = *p;

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			*o++ = (char)c;
			p++;
			continue;
		}
		if (c >= 0x80) {
			if (!(k = utf8_seq(p, (size_t)(end - p)))) {
				/* not UTF-8: jansson refuses the string */
				b->p[b->len] = '\0';
				return -EILSEQ;
			}
			memcpy(o, p, k);
			o += k;
			p += k;
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		default: /* another control character: \u00XX, upper case */
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
		p++;
	}
	*o++ = '"';
	*o = '\0';
	b->len = (size_t)(o - b->p);
	return 0;
}

void vg_buf_json_string(struct vg_buf *b, const char *s)
{
	if (!s)
		s = "";
	/* not UTF-8: jansson's json_string failed here, and so do we */
	if (vg_buf_json_str(b, s, strlen(s)))
		b->oom = 1;
}

/* The length of the string literal at p (its opening quote) if it is
 * exactly as jansson writes one (vg_buf_json_str), else 0. */
static size_t canonical_string(const unsigned char *p, const unsigned char *end)
{
	const unsigned char *q = p + 1;
	size_t k;

	if (p >= end || *p != '"')
		return 0;
	while (q < end) {
		unsigned c = *q;

		if (c == '"')
			return (size_t)(q + 1 - p);
		if (c == '\\') {
			if (q + 1 >= end)
				return 0;
			c = q[1];
			if (strchr("\"\\bfnrt", (int)c) && c) {
				q += 2;
				continue;
			}
			/* \u00XX for a control character without a short form */
			if (c != 'u' || end - q < 6 || q[2] != '0' || q[3] != '0' ||
			    !strchr("01", q[4]) || !q[4] || !isxdigit(q[5]) ||
			    (q[5] >= 'a' && q[5] <= 'f'))
				return 0;
			c = (unsigned)((q[4] - '0') << 4) |
			    (unsigned)(q[5] <= '9' ? q[5] - '0' : q[5] - 'A' + 10);
			if (c == 0 || c == '\b' || c == '\f' || c == '\n' ||
			    c == '\r' || c == '\t')
				return 0;
			q += 6;
			continue;
		}
		if (c < 0x20)
			return 0;
		if (c < 0x80) {
			q++;
			continue;
		}
		if (!(k = utf8_seq(q, (size_t)(end - q))))
			return 0;
		q += k;
	}
	return 0;
}

/* Whether text is an object of string values exactly as jansson writes it
 * compact, keys in strictly increasing byte order (so none repeats). */
static int canonical_object(const char *text)
{
	const unsigned char *p = (const unsigned char *)text;
	const unsigned char *end = p + strlen(text);
	const unsigned char *prev = NULL;
	size_t prevlen = 0, k, v;

	if (*p++ != '{')
		return 0;
	if (*p == '}')
		return p + 1 == end;
	for (;;) {
		if (!(k = canonical_string(p, end)))
			return 0;
		if (prev) { /* the contents, between the quotes */
			size_t n = prevlen < k ? prevlen - 2 : k - 2;
			int c = memcmp(prev + 1, p + 1, n);
			if (c > 0 || (c == 0 && prevlen >= k))
				return 0;
		}
		prev = p;
		prevlen = k;
		p += k;
		if (*p++ != ':' || !(v = canonical_string(p, end)))
			return 0;
		p += v;
		if (*p == '}')
			return p + 1 == end;
		if (*p++ != ',')
			return 0;
	}
}

void vg_buf_json_object_text(struct vg_buf *b, const char *text)
{
	json_t *o;
	char *t;

	if (!text) {
		vg_buf_append(b, "{}", 2);
		return;
	}
	if (canonical_object(text)) {
		vg_buf_append(b, text, strlen(text));
		return;
	}
	o = json_loads(text, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		vg_buf_append(b, "{}", 2);
		return;
	}
	t = json_dumps(o, JSON_COMPACT);
	json_decref(o);
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
	static const double p10d[] = {/* 10^-5 .. 10^16 */
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

/* v as jansson's json_dumps writes a real: printf's "%.17g", ".0" added
 * when that has neither a point nor an exponent, the exponent without '+'
 * and leading zeros. The fast path takes 1e-4 <= |v| < 1e16, where "%.17g"
 * is fixed-point: x = |v| * 10^k (10^k exact, one rounding to 64 bits, so
 * within 2^-8 of the exact product below 2^57) holds the 17 digits, and
 * its rounding to an integer is the correct one unless x is within 0.01
 * of a half, which is left to printf. Returns the length written to out
 * (>= 32 bytes). */
static size_t real_text(double v, char *out)
{
	size_t n;
	char *e;

#if LDBL_MANT_DIG == 64 && defined(__x86_64__)
	static const long double p10[] = {
		1e0L, 1e1L, 1e2L, 1e3L, 1e4L, 1e5L, 1e6L, 1e7L, 1e8L, 1e9L,
		1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L,
		1e19L, 1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L};
	double a = fabs(v);
	char *o = out;
	uint64_t bits;
	int bexp, dexp;

	if (v == 0) {
		if (signbit(v))
			*o++ = '-';
		memcpy(o, "0.0", 4);
		return (size_t)(o + 3 - out);
	}
	if (!(a >= 1e-4 && a < 1e16))
		goto slow;
	/* the decimal exponent of the first digit, maybe one low: the binary
	 * exponent (a is normal here) times log10(2) ~ 78913 / 2^18 */
	memcpy(&bits, &a, sizeof(bits));
	bexp = (int)((bits >> 52) & 0x7ff) - 1023;
	dexp = (bexp * 78913) >> 18;
	for (int tries = 0; tries < 3; tries++) {
		int k = 16 - dexp;
		if (k < 1 || k > 27)
			goto slow;
		long double x = (long double)a * p10[k];
		if (x >= 1e17L) {
			dexp++;
			continue;
		}
		if (x < 1e16L) {
			dexp--;
			continue;
		}
		unsigned long long m = (unsigned long long)x;
		long double frac = x - (long double)m;
		if (fabsl(frac - 0.5L) < 0.01L)
			goto slow;
		if (frac > 0.5L)
			m++;
		if (m >= 100000000000000000ULL)
			goto slow;
		static const char pairs2[] =
			"00010203040506070809101112131415161718192021222324"
			"25262728293031323334353637383940414243444546474849"
			"50515253545556575859606162636465666768697071727374"
			"75767778798081828384858687888990919293949596979899";
		char dig[18];
		for (int i = 15; i >= 1; i -= 2) { /* two digits a division */
			unsigned r = (unsigned)(m % 100);
			dig[i] = pairs2[2 * r];
			dig[i + 1] = pairs2[2 * r + 1];
			m /= 100;
		}
		dig[0] = (char)('0' + m);
		int intd = 17 - k; /* digits before the point, <= 16 */
		int last = 16;     /* the last fraction digit kept */
		while (last >= intd && last >= 0 && dig[last] == '0')
			last--;
		if (v < 0)
			*o++ = '-';
		if (intd <= 0) {
			*o++ = '0';
			*o++ = '.';
			for (int i = 0; i < -intd; i++)
				*o++ = '0';
			for (int i = 0; i <= last; i++)
				*o++ = dig[i];
		} else {
			memcpy(o, dig, (size_t)intd);
			o += intd;
			*o++ = '.';
			if (last < intd) {
				*o++ = '0';
			} else {
				memcpy(o, dig + intd, (size_t)(last + 1 - intd));
				o += last + 1 - intd;
			}
		}
		*o = '\0';
		return (size_t)(o - out);
	}
slow:
#endif
	snprintf(out, 32, "%.17g", v);
	if (!strchr(out, '.') && !strchr(out, 'e'))
		strcat(out, ".0");
	if ((e = strchr(out, 'e'))) {
		char *start = e + 1, *end = start + 1;
		if (*start == '-')
			start++;
		while (*end == '0')
			end++;
		if (end != start)
			memmove(start, end, strlen(end) + 1);
	}
	n = strlen(out);
	return n;
}

void vg_buf_json_real(struct vg_buf *b, double v)
{
	char tmp[40];

	if (!isfinite(v)) {
		vg_buf_append(b, "null", 4);
		return;
	}
	vg_buf_append(b, tmp, real_text(v, tmp));
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
