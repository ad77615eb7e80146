/*
 * vigie — billing's arithmetic: money as integer micro-units, exact
 * decimals, half-up rounding to a currency's minor unit, 128-bit
 * quantities, and UTC calendar months (docs/billing.md).
 *
 * No floating point anywhere in the billing path: a price is an int64
 * count of micro-units (10^-6 of the currency unit), a quantity is an
 * unsigned 128-bit count of base units (milliseconds, byte-milliseconds,
 * bytes), and an amount is computed once per invoice line as the exact
 * rational  quantity x price / divisor,  rounded half-up to the currency's
 * minor unit (10^-digits). All functions here are pure and thread-safe.
 */
#ifndef VIGIE_BILL_H
#define VIGIE_BILL_H

#include <stddef.h>
#include <stdint.h>

typedef unsigned __int128 vg_bill_u128;

#define VG_BILL_MICRO 1000000LL                             /* micro-units per currency unit */
#define VG_BILL_MONEY_MAX_DIGITS 6                          /* minor unit digits, 0..6 */
#define VG_BILL_MONEY_MAX (1000000000000LL * VG_BILL_MICRO) /* 10^12 units */

/* Parse an exact decimal ("12", "0.0125", "-3.5") into micro-units: at
 * most 6 decimals, |value| <= 10^12 units, no exponent, no spaces, a
 * leading '-' only if allow_negative. 0 or -EINVAL (malformed), -ERANGE
 * (too large or too many decimals). */
int vg_bill_money_parse(const char *s, int allow_negative, int64_t *micro);

/* Format micro-units with exactly `digits` decimals ("11.96", "-0.50",
 * "7" for digits 0). The value is truncated toward zero to that many
 * decimals (callers pass values already rounded). Returns buf
 * (len >= 32 is always enough). */
char *vg_bill_money_format(int64_t micro, int digits, char *buf, size_t len);

/* Format a rate: at least `digits` decimals and up to 6, trailing zeros
 * beyond `digits` dropped ("0.0125", "0.10"). Returns buf. */
char *vg_bill_rate_format(int64_t micro, int digits, char *buf, size_t len);

/* round_half_up(num / den) to the minor unit of `digits`, returned in
 * micro-units: num is in micro-units x den. den > 0. For example num =
 * 5400000 ms x 23000 micro/h, den = 3600000 ms/h, digits 2 -> 34500 ->
 * 30000 (0.03). Saturates at INT64_MAX. */
int64_t vg_bill_round(vg_bill_u128 num, vg_bill_u128 den, int digits);

/* The amount of an invoice line: qty x rate_micro / den, rounded half-up
 * to the minor unit of `digits`, in micro-units. Exact for any qty, any
 * den below 2^64 and rate up to 10^18 (qty is split as a*den + b so that
 * no intermediate value overflows 128 bits). 0 for rate <= 0. An amount
 * past INT64_MAX saturates there: vg_bill_invoice_totals refuses it. */
int64_t vg_bill_amount(vg_bill_u128 qty, int64_t rate_micro, vg_bill_u128 den,
		       int digits);

/* num / den as a decimal with `decimals` decimals, rounded half-up (for
 * displaying quantities). Returns buf. */
char *vg_bill_u128_decimal(vg_bill_u128 num, vg_bill_u128 den, int decimals, char *buf,
			   size_t len);

/* Decimal text of v ("0", "27000000000000000000000"). Returns buf
 * (len >= 40). */
char *vg_bill_u128_format(vg_bill_u128 v, char *buf, size_t len);
/* Parse what vg_bill_u128_format wrote. 0 or -EINVAL/-ERANGE. */
int vg_bill_u128_parse(const char *s, vg_bill_u128 *out);

/* ---- UTC months --------------------------------------------------------- */

struct vg_bill_month {
	int year;  /* 1970..9999 */
	int month; /* 1..12; at most 11 in 9999 */
};

/* Parse "2026-11". 0, -EINVAL (not YYYY-MM with a month 01..12) or
 * -ERANGE (before 1970-01, or after 9999-11: a month's end, the first
 * moment of the next, must be a time vg_time_parse takes, at most
 * VG_TIME_MAX_MS). */
int vg_bill_month_parse(const char *s, struct vg_bill_month *out);
/* "2026-11" (buf >= 8). Returns buf. */
char *vg_bill_month_format(struct vg_bill_month m, char *buf, size_t len);
/* First millisecond of the month (00:00:00.000 UTC on the 1st). */
int64_t vg_bill_month_start_ms(struct vg_bill_month m);
/* First millisecond of the next month. */
int64_t vg_bill_month_end_ms(struct vg_bill_month m);
/* Its real length: 28, 29, 30 or 31 days, in ms. */
int64_t vg_bill_month_len_ms(struct vg_bill_month m);
struct vg_bill_month vg_bill_month_next(struct vg_bill_month m);
struct vg_bill_month vg_bill_month_prev(struct vg_bill_month m);
/* The month containing t_ms (t_ms >= 0). */
struct vg_bill_month vg_bill_month_of(int64_t t_ms);
/* <0, 0, >0 like strcmp. */
int vg_bill_month_cmp(struct vg_bill_month a, struct vg_bill_month b);

#endif
