/*
 * vigie — logging to stderr with levels.
 *
 * One line per message: "2026-11-26T06:49:14Z vigie-collector warn: text".
 * Only a component's top level logs; library code returns error codes.
 * vg_log_limited() logs the first occurrence of a recurring condition and
 * then every 1000th, so hostile input can never flood the log.
 * Thread-safe (each line is written with one fputs under a lock).
 */
#ifndef VIGIE_LOG_H
#define VIGIE_LOG_H

#include <stdint.h>

enum vg_log_level {
	VG_LOG_ERROR = 0,
	VG_LOG_WARN = 1,
	VG_LOG_INFO = 2,
	VG_LOG_DEBUG = 3,
};

/* Set the program name shown in each line and the most verbose level that
 * is printed (default info). Call once at start-up. */
void vg_log_init(const char *progname, int level);
void vg_log_set_level(int level);

/* 1 when a line of this level would be printed: for a debug line whose
 * arguments cost something to gather, on a hot path. */
int vg_log_enabled(int level);

/* Parse "error", "warn", "info", "debug"; -EINVAL if unknown. */
int vg_log_level_parse(const char *s);

void vg_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A rate-limited log site: *counter counts occurrences (and is the
 * self-metric for it); the line is printed for the 1st, 1000th, 2000th...
 * occurrence with the running count appended. */
void vg_log_limited(int level, uint64_t *counter, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define vg_error(...) vg_log(VG_LOG_ERROR, __VA_ARGS__)
#define vg_warn(...) vg_log(VG_LOG_WARN, __VA_ARGS__)
#define vg_info(...) vg_log(VG_LOG_INFO, __VA_ARGS__)
#define vg_debug(...) vg_log(VG_LOG_DEBUG, __VA_ARGS__)

#endif
