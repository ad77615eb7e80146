/*
 * timewin.c — time constraints of an alarm (alarms/timewin.h).
 *
 * Design: a cron expression is five fields, each a set of values kept as
 * a 64-bit mask ("*", "N", "A-B", "*\/S", "A-B/S" and lists of them;
 * day of week 0-7 with 7 = Sunday). To know whether now is inside a
 * window of duration D, walk back from now minute by minute over D and
 * ask whether one of those minutes matches: at most D/60 steps of
 * gmtime_r on the local time (now shifted by the timezone's offset,
 * found once with localtime_r under TZ), so a 9-hour window costs
 * microseconds and only alarms that have constraints pay it. Cron's
 * rule for day of month and day of week: when both are restricted,
 * either matches.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "alarms/timewin.h"
#include "vigie/clock.h"
#include "vigie/name.h"

struct cron {
	uint64_t f[5];
	int dom_star, dow_star;
};

static const int lo[5] = {0, 0, 1, 1, 0}, hi[5] = {59, 23, 31, 12, 7};

/* Bytes of one field: room for every minute listed with its leading
 * zero ("00,01,...,59" is 179) and for ranges with steps; a 64-byte
 * buffer refused a plain list of the 60 minutes. */
#define CRON_FIELD_MAX 512

static int field(const char *s, size_t len, int i, uint64_t *mask, int *star)
{
	char buf[CRON_FIELD_MAX + 1], *save = NULL, *part;

	if (!len)
		return -EINVAL;
	if (len > CRON_FIELD_MAX)
		return -E2BIG;
	memcpy(buf, s, len);
	buf[len] = '\0';
	*mask = 0;
	*star = !strcmp(buf, "*");
	for (part = strtok_r(buf, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
		long a = lo[i], b = hi[i], step = 1;
		char *p = part, *end;
		if (*p == '*') {
			p++;
		} else {
			a = strtol(p, &end, 10);
			if (end == p)
				return -EINVAL;
			b = a;
			p = end;
			if (*p == '-') {
				b = strtol(p + 1, &end, 10);
				if (end == p + 1)
					return -EINVAL;
				p = end;
			}
		}
		if (*p == '/') {
			step = strtol(p + 1, &end, 10);
			if (end == p + 1 || step < 1)
				return -EINVAL;
			if (step > 64)
				step = 64; /* one value: and v += step cannot overflow */
			p = end;
		}
		if (*p || a < lo[i] || b > hi[i] || a > b)
			return -EINVAL;
		for (long v = a; v <= b; v += step)
			*mask |= 1ULL << v;
	}
	if (i == 4 && (*mask & (1ULL << 7)))
		*mask |= 1ULL; /* 7 is Sunday too */
	return 0;
}

static int cron_parse(const char *s, struct cron *c)
{
	int star[5];

	for (int i = 0; i < 5; i++) {
		while (*s == ' ')
			s++;
		size_t len = strcspn(s, " ");
		int rc = field(s, len, i, &c->f[i], &star[i]);
		if (rc)
			return rc;
		s += len;
	}
	while (*s == ' ')
		s++;
	c->dom_star = star[2];
	c->dow_star = star[4];
	return *s ? -EINVAL : 0;
}

static int cron_match(const struct cron *c, const struct tm *t)
{
	int dom = (c->f[2] >> t->tm_mday) & 1, dow = (c->f[4] >> t->tm_wday) & 1;

	if (!((c->f[0] >> t->tm_min) & 1) || !((c->f[1] >> t->tm_hour) & 1) ||
	    !((c->f[3] >> (t->tm_mon + 1)) & 1))
		return 0;
	if (!c->dom_star && !c->dow_star)
		return dom || dow;
	return dom && dow;
}

static int tz_valid(const char *tz)
{
	char path[300];
	struct stat st;

	if (!strcmp(tz, "UTC"))
		return 1;
	if (!*tz || strlen(tz) > 200 || strstr(tz, "..") || tz[0] == '/' ||
	    strspn(tz, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		       "0123456789_+-/") != strlen(tz))
		return 0;
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", tz);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int vg_alarm_timewin_parse(const json_t *v, json_t **out, char *err, size_t errlen)
{
	json_t *a, *e;
	size_t i;

	*out = NULL;
	if (!json_is_array(v) || json_array_size(v) > VG_TIMEWIN_MAX) {
		snprintf(err, errlen, "must be an array of at most %d windows "
				      "{\"start\": cron, \"duration\": seconds, \"timezone\"}",
			 VG_TIMEWIN_MAX);
		return -EINVAL;
	}
	if (!(a = json_array()))
		return -ENOMEM;
	json_array_foreach(v, i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		const char *start = json_string_value(json_object_get(e, "start"));
		const char *tz = json_string_value(json_object_get(e, "timezone"));
		json_t *d = json_object_get(e, "duration");
		struct cron c;
		int64_t dur = -1;
		const char *k;
		json_t *x;

		json_object_foreach(e, k, x)
			if (strcmp(k, "name") && strcmp(k, "start") && strcmp(k, "duration") &&
			    strcmp(k, "timezone") && strcmp(k, "description")) {
				snprintf(err, errlen, "[%zu]: unknown field '%.*s'", i,
					 (int)vg_utf8_prefix(k, 60), k);
				goto bad;
			}
		int crc = start ? cron_parse(start, &c) : -EINVAL;
		if (crc == -E2BIG) {
			snprintf(err, errlen, "[%zu].start: a field of the cron expression "
					      "is longer than %d bytes",
				 i, CRON_FIELD_MAX);
			goto bad;
		}
		if (crc) {
			snprintf(err, errlen, "[%zu].start: must be a cron expression of "
					      "five fields, like \"0 9 * * 1-5\"",
				 i);
			goto bad;
		}
		if (json_is_integer(d)) {
			dur = json_integer_value(d);
		} else if (json_is_string(d)) {
			int64_t ms;
			if (!vg_duration_parse(json_string_value(d), &ms))
				dur = ms / 1000;
		}
		if (dur < 60 || dur > VG_TIMEWIN_MAX_DURATION_S) {
			snprintf(err, errlen, "[%zu].duration: seconds (or \"9h\") from "
					      "60 to 7 days",
				 i);
			goto bad;
		}
		if (!tz)
			tz = "UTC";
		if (!tz_valid(tz)) {
			snprintf(err, errlen, "[%zu].timezone: '%.*s' is not in the "
					      "tz database (like \"Europe/Paris\")",
				 i, (int)vg_utf8_prefix(tz, 100), tz);
			goto bad;
		}
		json_array_append_new(a, json_pack("{s:s,s:s,s:I,s:s}", "name",
						   name ? name : "", "start", start,
						   "duration", (json_int_t)dur,
						   "timezone", tz));
	}
	*out = a;
	return 0;
bad:
	json_decref(a);
	return -EINVAL;
}

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;

/* The offset of tz from UTC at t, in seconds. */
static long offset_of(const char *tz, time_t t)
{
	struct tm tm;
	char *old, saved[256] = "";
	long off = 0;
	int had;

	if (!strcmp(tz, "UTC"))
		return 0;
	pthread_mutex_lock(&tz_lock);
	old = getenv("TZ");
	had = old != NULL;
	if (had)
		snprintf(saved, sizeof(saved), "%s", old);
	setenv("TZ", tz, 1);
	tzset();
	if (localtime_r(&t, &tm))
		off = tm.tm_gmtoff;
	if (had)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	pthread_mutex_unlock(&tz_lock);
	return off;
}

int vg_alarm_timewin_inside(const json_t *tc, int64_t now_ms)
{
	size_t i;
	json_t *e;

	if (!tc || !json_array_size(tc))
		return 1;
	json_array_foreach(tc, i, e) {
		struct cron c;
		int64_t dur = json_integer_value(json_object_get(e, "duration"));
		const char *tz = json_string_value(json_object_get(e, "timezone"));
		time_t now = (time_t)(now_ms / 1000);
		time_t local = now - now % 60 + offset_of(tz ? tz : "UTC", now);

		if (cron_parse(json_string_value(json_object_get(e, "start")), &c))
			continue;
		/* a window opened at minute m covers [m, m + dur) */
		for (int64_t k = 0; k * 60 < dur; k++) {
			time_t m = local - (time_t)(k * 60);
			struct tm tm;
			if (gmtime_r(&m, &tm) && cron_match(&c, &tm) &&
			    (int64_t)(now - (now - now % 60 - k * 60)) < dur)
				return 1;
		}
	}
	return 0;
}
