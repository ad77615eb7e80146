/*
 * month.c — UTC calendar months, the billing period.
 *
 * Design: a month is (year, month); its bounds are computed with the
 * days-from-civil algorithm of common/clock.c (proleptic Gregorian, no time zones, no libc
 * calendar state), so February has 28 or 29 days and every month starts
 * at exactly 00:00:00.000 UTC. A usage interval that crosses a month's end
 * is split at vg_bill_month_end_ms, never rounded. Months run from 1970-01
 * to 9999-11: the last one whose end (the next month's first moment) is
 * still a time the API names (at most 9999-12-31T23:59:59.999Z).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>

#include "vigie/bill.h"
#include "vigie/clock.h"

int vg_bill_month_parse(const char *s, struct vg_bill_month *out)
{
	int y, m, n = 0;

	if (!s)
		return -EINVAL;
	for (int i = 0; i < 7; i++) /* digits only: %2d alone takes "+1" */
		if (!s[i] || (i != 4 && !isdigit((unsigned char)s[i])))
			return -EINVAL;
	if (sscanf(s, "%4d-%2d%n", &y, &m, &n) != 2 || n != 7 || s[n] ||
	    s[4] != '-' || m < 1 || m > 12)
		return -EINVAL;
	struct vg_bill_month r = {y, m};
	/* The period's end is shown and compared as a moment: it must be one
	 * the API takes (vg_time_parse), so 9999-12, which would end at
	 * 10000-01-01T00:00:00Z, is out of range like a year before 1970. */
	if (y < 1970 || vg_bill_month_end_ms(r) > VG_TIME_MAX_MS)
		return -ERANGE;
	*out = r;
	return 0;
}

char *vg_bill_month_format(struct vg_bill_month m, char *buf, size_t len)
{
	snprintf(buf, len, "%04d-%02d", m.year, m.month);
	return buf;
}

int64_t vg_bill_month_start_ms(struct vg_bill_month m)
{
	return vg_time_days_from_civil(m.year, (unsigned)m.month, 1) * 86400000LL;
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
	int64_t days = (t_ms >= 0 ? t_ms : t_ms - 86399999) / 86400000, y;
	unsigned m, d;

	vg_time_civil_from_days(days, &y, &m, &d);
	struct vg_bill_month r = {(int)y, (int)m};
	return r;
}

int vg_bill_month_cmp(struct vg_bill_month a, struct vg_bill_month b)
{
	if (a.year != b.year)
		return a.year < b.year ? -1 : 1;
	return a.month < b.month ? -1 : a.month > b.month;
}
