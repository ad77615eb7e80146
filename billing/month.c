/*
 * month.c — UTC calendar months, the billing period.
 *
 * Design: a month is (year, month); its bounds are computed with the
 * days-from-civil algorithm (proleptic Gregorian, no time zones, no libc
 * calendar state), so February has 28 or 29 days and every month starts
 * at exactly 00:00:00.000 UTC. A usage interval that crosses a month's end
 * is split at vg_bill_month_end_ms, never rounded.
 */
#include <errno.h>
#include <stdio.h>

#include "vigie/bill.h"

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

int vg_bill_month_parse(const char *s, struct vg_bill_month *out)
{
	int y, m, n = 0;

	if (!s || sscanf(s, "%4d-%2d%n", &y, &m, &n) != 2 || n != 7 || s[n] ||
	    s[4] != '-' || y < 1970 || y > 9999 || m < 1 || m > 12)
		return -EINVAL;
	out->year = y;
	out->month = m;
	return 0;
}

char *vg_bill_month_format(struct vg_bill_month m, char *buf, size_t len)
{
	snprintf(buf, len, "%04d-%02d", m.year, m.month);
	return buf;
}

int64_t vg_bill_month_start_ms(struct vg_bill_month m)
{
	return days_from_civil(m.year, (unsigned)m.month, 1) * 86400000LL;
}

struct vg_bill_month vg_bill_month_next(struct vg_bill_month m)
{
	if (++m.month > 12) {
		m.month = 1;
		m.year++;
	}
	return m;
}

struct vg_bill_month vg_bill_month_prev(struct vg_bill_month m)
{
	if (--m.month < 1) {
		m.month = 12;
		m.year--;
	}
	return m;
}

int64_t vg_bill_month_end_ms(struct vg_bill_month m)
{
	return vg_bill_month_start_ms(vg_bill_month_next(m));
}

int64_t vg_bill_month_len_ms(struct vg_bill_month m)
{
	return vg_bill_month_end_ms(m) - vg_bill_month_start_ms(m);
}

struct vg_bill_month vg_bill_month_of(int64_t t_ms)
{
	/* civil_from_days */
	int64_t z = (t_ms >= 0 ? t_ms : t_ms - 86399999) / 86400000 + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	struct vg_bill_month r = {(int)(y + (m <= 2)), (int)m};
	return r;
}

int vg_bill_month_cmp(struct vg_bill_month a, struct vg_bill_month b)
{
	if (a.year != b.year)
		return a.year < b.year ? -1 : 1;
	return a.month < b.month ? -1 : a.month > b.month;
}
