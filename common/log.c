/*
 * log.c — leveled logging to stderr.
 *
 * Each line is formatted into a local buffer and written with a single
 * fputs under a mutex, so lines from different threads never interleave.
 * vg_log_limited() is how hostile or repeating input is logged: the first
 * occurrence, then every 1000th, each with the running count.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vigie/clock.h"
#include "vigie/log.h"

static const char *log_prog = "vigie";
static _Atomic int log_level = VG_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void vg_log_init(const char *progname, int level)
{
	log_prog = progname;
	log_level = level;
}

void vg_log_set_level(int level)
{
	log_level = level;
}

int vg_log_enabled(int level)
{
	return level >= 0 && level <= log_level;
}

int vg_log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, level_names[i]))
			return i;
	if (!strcmp(s, "warning"))
		return VG_LOG_WARN;
	return -EINVAL;
}

static void vlog(int level, const char *suffix, const char *fmt, va_list ap)
{
	char line[2048], ts[32];
	int n;

	if (level > log_level || level < 0)
		return;
	n = snprintf(line, sizeof(line), "%s %s %s: ",
		     vg_time_format(vg_now_ms(), ts, sizeof(ts)), log_prog,
		     level_names[level]);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		return;
	size_t len = strlen(line);
	/* Neutralise control characters (names from the wire end up here). */
	for (size_t i = (size_t)n; i < len; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	snprintf(line + len, sizeof(line) - len, "%s\n", suffix ? suffix : "");
	pthread_mutex_lock(&log_lock);
	fputs(line, stderr);
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
}

void vg_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(level, NULL, fmt, ap);
	va_end(ap);
}

void vg_log_limited(int level, uint64_t *counter, const char *fmt, ...)
{
	uint64_t n = __atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
	char suffix[64];
	va_list ap;

	if (n != 1 && n % 1000 != 0)
		return;
	snprintf(suffix, sizeof(suffix), " (occurrence %llu; logged 1st and every 1000th)",
		 (unsigned long long)n);
	va_start(ap, fmt);
	vlog(level, suffix, fmt, ap);
	va_end(ap);
}
