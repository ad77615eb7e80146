/*
 * money.c — exact decimal money: parsing prices, rounding amounts,
 * formatting both, and 128-bit quantities.
 *
 * Design: prices are int64 micro-units parsed digit by digit from decimal
 * text (never through a double); an amount is the exact rational
 * num / den (num in micro-units x den) rounded once, half-up, to the
 * currency's minor unit. 128-bit arithmetic keeps every product exact:
 * the largest product an invoice forms (10 TB x 31 days in ms x a price
 * of 10^6 units in micro-units, doubled for rounding) is below 10^35,
 * well inside 2^128 (3.4 x 10^38).
 *
 * Invariants: no floating point; rounding happens only in vg_bill_round
 * (amounts) and vg_bill_u128_decimal (displayed quantities).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vigie/bill.h"

int vg_bill_money_parse(const char *s, int allow_negative, int64_t *micro)
{
	int neg = 0, ndec = -1, ndig = 0;
	int64_t v = 0;

	if (!s || !*s)
		return -EINVAL;
	if (*s == '-') {
		if (!allow_negative)
			return -EINVAL;
		neg = 1;
		s++;
	}
	for (; *s; s++) {
		if (*s == '.') {
			if (ndec >= 0 || ndig == 0)
				return -EINVAL;
			ndec = 0;
			continue;
		}
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (ndec >= 0 && ++ndec > 6)
			return -ERANGE;
		ndig++;
		if (v > VG_BILL_MONEY_MAX / 10)
			return -ERANGE;
		v = v * 10 + (*s - '0');
	}
	if (ndig == 0 || ndec == 0)
		return -EINVAL; /* "", "-", "1." */
	for (int i = ndec < 0 ? 0 : ndec; i < 6; i++) {
		if (v > VG_BILL_MONEY_MAX / 10)
			return -ERANGE;
		v *= 10;
	}
	if (v > VG_BILL_MONEY_MAX)
		return -ERANGE;
	*micro = neg ? -v : v;
	return 0;
}

static int64_t pow10i(int n)
{
	int64_t p = 1;
	while (n-- > 0)
		p *= 10;
	return p;
}

char *vg_bill_money_format(int64_t micro, int digits, char *buf, size_t len)
{
	uint64_t a = micro < 0 ? (uint64_t)0 - (uint64_t)micro : (uint64_t)micro;
	uint64_t units = a / VG_BILL_MICRO, frac = a % VG_BILL_MICRO;

	if (digits < 0)
		digits = 0;
	if (digits > 6)
		digits = 6;
	frac /= (uint64_t)pow10i(6 - digits);
	if (digits == 0)
		snprintf(buf, len, "%s%llu", micro < 0 ? "-" : "",
			 (unsigned long long)units);
	else
		snprintf(buf, len, "%s%llu.%0*llu", micro < 0 ? "-" : "",
			 (unsigned long long)units, digits,
			 (unsigned long long)frac);
	return buf;
}

char *vg_bill_rate_format(int64_t micro, int digits, char *buf, size_t len)
{
	int d = 6;
	int64_t a = micro < 0 ? -micro : micro;

	while (d > digits && d > 0 && a % pow10i(6 - d + 1) == 0)
		d--;
	return vg_bill_money_format(micro, d, buf, len);
}

int64_t vg_bill_round(vg_bill_u128 num, vg_bill_u128 den, int digits)
{
	vg_bill_u128 step, q;

	if (digits < 0)
		digits = 0;
	if (digits > 6)
		digits = 6;
	if (den == 0)
		return 0;
	step = (vg_bill_u128)pow10i(6 - digits); /* micro-units per minor unit */
	/* minor units = floor(num / (den * step) + 1/2) */
	q = (2 * num + den * step) / (2 * den * step);
	q *= step;
	if (q > (vg_bill_u128)INT64_MAX)
		return INT64_MAX;
	return (int64_t)q;
}

int64_t vg_bill_amount(vg_bill_u128 qty, int64_t rate_micro, vg_bill_u128 den,
		       int digits)
{
	vg_bill_u128 a, b, A, r, frac, step, q;

	if (den == 0 || rate_micro <= 0 || qty == 0)
		return 0;
	if (digits < 0)
		digits = 0;
	if (digits > 6)
		digits = 6;
	step = (vg_bill_u128)pow10i(6 - digits);
	/* qty = a*den + b: exact = a*rate + b*rate/den (micro-units) */
	a = qty / den;
	b = qty % den;
	A = a * (vg_bill_u128)rate_micro; /* whole micro-units */
	r = A % step;                     /* below one minor unit */
	/* what is left below a minor unit, over den: (r*den + b*rate)/den */
	frac = r * den + b * (vg_bill_u128)rate_micro;
	/* minor units in frac/den: round half-up */
	q = (2 * frac + den * step) / (2 * den * step);
	q = (A - r) + q * step;
	if (q > (vg_bill_u128)INT64_MAX)
		return INT64_MAX;
	return (int64_t)q;
}

char *vg_bill_u128_format(vg_bill_u128 v, char *buf, size_t len)
{
	char tmp[48];
	int i = (int)sizeof(tmp) - 1;

	tmp[i] = '\0';
	do {
		tmp[--i] = (char)('0' + (int)(v % 10));
		v /= 10;
	} while (v && i > 0);
	snprintf(buf, len, "%s", tmp + i);
	return buf;
}

int vg_bill_u128_parse(const char *s, vg_bill_u128 *out)
{
	vg_bill_u128 v = 0, max = ~(vg_bill_u128)0;

	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (max - 9) / 10)
			return -ERANGE;
		v = v * 10 + (vg_bill_u128)(*s - '0');
	}
	*out = v;
	return 0;
}

char *vg_bill_u128_decimal(vg_bill_u128 num, vg_bill_u128 den, int decimals, char *buf,
			   size_t len)
{
	char ip[48];
	vg_bill_u128 scale = 1, q, frac;

	if (den == 0)
		den = 1;
	if (decimals < 0)
		decimals = 0;
	if (decimals > 9)
		decimals = 9;
	for (int i = 0; i < decimals; i++)
		scale *= 10;
	q = (2 * num * scale + den) / (2 * den); /* scaled, half-up */
	frac = q % scale;
	vg_bill_u128_format(q / scale, ip, sizeof(ip));
	if (decimals == 0)
		snprintf(buf, len, "%s", ip);
	else
		snprintf(buf, len, "%s.%0*llu", ip, decimals,
			 (unsigned long long)frac);
	return buf;
}
