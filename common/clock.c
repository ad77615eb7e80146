/*
 * clock.c — wall and monotonic time, the injectable poll clock, and
 * ISO 8601 formatting/parsing.
 *
 * All stored and transmitted times are UTC milliseconds since the epoch.
 * Parsing accepts what an operator types: ISO 8601 with Z or an offset, a
 * bare date (midnight UTC), epoch seconds, or a time relative to now
 * ("-3h", "-90s", "-2d", "now"), so API users never have to compute epochs.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vigie/clock.h"

int64_t vg_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t vg_monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t vg_monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t vg_thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void vg_cond_init_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

void vg_sleep_ms(int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

void vg_clock_real(struct vg_clock *c)
{
	memset(c, 0, sizeof(*c));
}

void vg_clock_synthetic(struct vg_clock *c, int64_t start_ms, int64_t step_ms)
{
	c->synthetic = 1;
	c->now_ms = start_ms;
	c->step_ms = step_ms;
}

int64_t vg_clock_now(const struct vg_clock *c)
{
	return c->synthetic ? c->now_ms : vg_now_ms();
}

void vg_clock_tick(struct vg_clock *c)
{
	if (c->synthetic)
		c->now_ms += c->step_ms;
}

char *vg_time_format(int64_t ms, char *buf, size_t len)
{
	/* floor(ms / 1000) without overflowing at INT64_MIN */
	time_t t = (time_t)(ms / 1000 - (ms % 1000 < 0));
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "invalid");
	return buf;
}

/* Howard Hinnant's days_from_civil / civil_from_days: 400-year eras of
 * 146097 days, years starting in March so the leap day is last. */
int64_t vg_time_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

void vg_time_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;

	*m = mp < 10 ? mp + 3 : mp - 9;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* s holds n decimal digits: sscanf's %2d alone also takes "+1" and " 1" */
static int digits(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

static int days_in_month(int y, int mo)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return mo == 2 && leap ? 29 : days[mo - 1];
}

static int parse_iso(const char *s, int64_t *out)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0, off = 0, frac_ms = 0;
	const char *p;

	if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
	    !digits(s + 8, 2))
		return -EINVAL;
	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
		return -EINVAL;
	p = s + n;
	if (*p == 'T' || *p == ' ') {
		if (!digits(p + 1, 2) || p[3] != ':' || !digits(p + 4, 2) ||
		    sscanf(p + 1, "%2d:%2d%n", &h, &mi, &n) != 2 || n != 5)
			return -EINVAL;
		p += 1 + n;
		if (*p == ':') {
			if (!digits(p + 1, 2) || sscanf(p + 1, "%2d%n", &sec, &n) != 1 || n != 2)
				return -EINVAL;
			p += 1 + n;
		}
		if (*p == '.') { /* fractional seconds: to the millisecond, truncated */
			int digits = 0;
			for (p++; isdigit((unsigned char)*p); p++, digits++)
				if (digits < 3)
					frac_ms = frac_ms * 10 + (*p - '0');
			if (!digits)
				return -EINVAL;
			for (; digits < 3; digits++)
				frac_ms *= 10;
		}
		if (*p == 'Z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int oh, om;
			if (!digits(p + 1, 2) || p[3] != ':' || !digits(p + 4, 2) ||
			    sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5 ||
			    oh < 0 || oh > 23 || om < 0 || om > 59)
				return -EINVAL;
			off = (oh * 60 + om) * 60 * (*p == '+' ? 1 : -1);
			p += 1 + n;
		}
	}
	if (*p || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h < 0 ||
	    h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60 || y < 1970 || y > 9999)
		return -EINVAL; /* 2026-02-30 is no day, not 2026-03-02 */
	int64_t t = vg_time_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 +
		    mi * 60 + sec - off;
	*out = t * 1000 + frac_ms;
	return 0;
}

int vg_decimal_parse(const char *s, double *v, const char **end)
{
	const char *p = s;

	while (isdigit((unsigned char)*p))
		p++;
	if (p == s)
		return -EINVAL;
	if (*p == '.') {
		const char *f = ++p;
		while (isdigit((unsigned char)*p))
			p++;
		if (p == f)
			return -EINVAL;
	}
	*v = strtod(s, NULL);
	*end = p;
	return 0;
}

int vg_duration_parse(const char *s, int64_t *out_ms)
{
	const char *end;
	double v, mul;

	if (!s || vg_decimal_parse(s, &v, &end) || !(v <= 1e10))
		return -EINVAL;
	if (!strcmp(end, "s") || !*end)
		mul = 1;
	else if (!strcmp(end, "m") || !strcmp(end, "min"))
		mul = 60;
	else if (!strcmp(end, "h"))
		mul = 3600;
	else if (!strcmp(end, "d"))
		mul = 86400;
	else if (!strcmp(end, "w"))
		mul = 7 * 86400;
	else
		return -EINVAL;
	*out_ms = (int64_t)(v * mul * 1000);
	return 0;
}

int vg_time_parse(const char *s, int64_t now_ms, int64_t *out_ms)
{
	const char *end;
	int64_t t;
	double v;

	if (!s || !*s)
		return -EINVAL;
	if (!strcmp(s, "now")) {
		t = now_ms;
	} else if (s[0] == '-' || s[0] == '+') { /* relative */
		int64_t delta;
		if (vg_duration_parse(s + 1, &delta))
			return -EINVAL;
		t = s[0] == '-' ? now_ms - delta : now_ms + delta;
	} else if (strchr(s, '-')) {
		if (parse_iso(s, &t))
			return -EINVAL;
	} else {
		if (vg_decimal_parse(s, &v, &end) || *end || !(v <= VG_TIME_MAX_MS / 1000.0))
			return -EINVAL;
		t = (int64_t)(v * 1000);
	}
	/* every form names a moment of 1970..9999 (what vg_time_format
	 * writes as ISO 8601): "-99999999d" is no time, not the year -271764 */
	if (t < 0 || t > VG_TIME_MAX_MS)
		return -EINVAL;
	*out_ms = t;
	return 0;
}
