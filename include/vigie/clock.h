/*
 * vigie — time. Everything is UTC milliseconds since the epoch (int64).
 *
 * The agent stamps samples with a vg_clock so tests can replay a day in
 * seconds: a "real" clock reads CLOCK_REALTIME; a "synthetic" clock starts
 * at a given time and advances by a fixed step on every tick (one tick per
 * poll). Thread-safe for reading; tick from one thread.
 */
#ifndef VIGIE_CLOCK_H
#define VIGIE_CLOCK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

int64_t vg_now_ms(void);       /* CLOCK_REALTIME in ms */
int64_t vg_monotonic_ms(void); /* CLOCK_MONOTONIC in ms */
int64_t vg_monotonic_ns(void); /* CLOCK_MONOTONIC in ns (durations) */
/* CPU time of the calling thread in ns: a budget of work that a loaded
 * machine's waits do not use up (a syscall, not the vDSO: ~0.2 us). */
int64_t vg_thread_cpu_ns(void);
/* ms -> whole seconds, rounded up (an end of range); defined for every
 * int64, where (ms + 999) / 1000 overflows near INT64_MAX. */
static inline int64_t vg_ms_to_s_ceil(int64_t ms)
{
	return ms / 1000 + (ms % 1000 > 0);
}
/* The end of one phase of a batch (docs/operations.md "One deadline per
 * batch"): bound_ms from now_ms (<= 0: no bound of its own) or the
 * batch's deadline_ms (vg_monotonic_ms; 0: none), whichever comes first;
 * 0 when neither bounds it. *by_deadline (may be NULL) is set to 1 when
 * the batch's deadline is the one, so a cut there is the batch's. The
 * one place where a phase's bound meets the batch's deadline: every phase
 * takes its end from here, and its time left is the end less now. */
static inline int64_t vg_phase_end(int64_t now_ms, int64_t bound_ms, int64_t deadline_ms,
				   int *by_deadline)
{
	int64_t end = bound_ms > 0 ? now_ms + bound_ms : 0;
	int by = deadline_ms && (!end || deadline_ms < end);

	if (by_deadline)
		*by_deadline = by;
	return by ? deadline_ms : end;
}
void vg_sleep_ms(int64_t ms); /* interrupted early by signals */
/* Initialise cv so that pthread_cond_timedwait takes CLOCK_MONOTONIC
 * deadlines (a wall clock step then neither ends a wait early nor holds
 * it for the step). */
void vg_cond_init_monotonic(pthread_cond_t *cv);

struct vg_clock {
	int synthetic;
	int64_t now_ms;  /* synthetic: current time */
	int64_t step_ms; /* synthetic: advance per tick */
};

/* Real clock. */
void vg_clock_real(struct vg_clock *c);
/* Synthetic clock starting at start_ms, advancing step_ms per tick. */
void vg_clock_synthetic(struct vg_clock *c, int64_t start_ms, int64_t step_ms);
/* Time of the current poll. */
int64_t vg_clock_now(const struct vg_clock *c);
/* Advance (synthetic only). */
void vg_clock_tick(struct vg_clock *c);

/* Civil-date arithmetic, proleptic Gregorian, UTC (no libc calendar
 * state, so thread-safe and valid far outside time_t's comfort zone):
 * days since 1970-01-01 of year y, month m (1-12), day d (1-31), and back. */
int64_t vg_time_days_from_civil(int64_t y, unsigned m, unsigned d);
void vg_time_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

/* Format as ISO 8601 UTC "2026-11-26T06:49:14Z" (buf >= 21 bytes). */
char *vg_time_format(int64_t ms, char *buf, size_t len);
/* Parse ISO 8601 ("2026-11-26T06:49:14Z", "2026-11-26T06:49:14.250Z" —
 * fractions kept to the millisecond, further digits truncated —
 * "2026-11-26T06:49:14+01:00", "2026-11-26"), epoch seconds
 * ("1795000000", "1795000000.25"), or relative to now_ms ("-3h", "-15m",
 * "now"). Numbers are plain decimals (no sign, space, exponent or hex).
 * The result must lie in 1970-01-01 .. 9999-12-31T23:59:59.999Z
 * (0 .. VG_TIME_MAX_MS), relative ones included. 0 or -EINVAL (*out_ms
 * untouched). */
#define VG_TIME_MAX_MS 253402300799999LL
int vg_time_parse(const char *s, int64_t now_ms, int64_t *out_ms);
/* Parse a duration: a plain decimal number of seconds, optionally with a
 * unit s, m (or min), h, d or w ("90m", "2h", "1.5d"), at most 1e10 units.
 * Into *out_ms (>= 0). 0 or -EINVAL. Thread-safe. Stricter than the
 * configuration's vg_parse_duration (vigie/config.h says how). */
int vg_duration_parse(const char *s, int64_t *out_ms);
/* A plain decimal number at s: digits, then optionally '.' and digits,
 * into *v, with *end after it. strtod alone also takes " 1", "0x10",
 * "1e3", "inf", which no time, duration or percentile is. 0 or -EINVAL. */
int vg_decimal_parse(const char *s, double *v, const char **end);

#endif
