/*
 * rrd_format.h — the text of one RRD update value ("seconds.millis" and
 * ":value"), shared by the files backend (librrd's argv) and the
 * rrdcached client (UPDATE lines).
 *
 * Why. Both engines take values as text and parse them back with strtod,
 * so the text only has to read back as the same double. printf's %.17g
 * costs more than the rest of an UPDATE's formatting and writes
 * "0.10000000000000001" for 0.1, which the daemon then copies, journals
 * and parses again. Integral values (counters, bytes) and values with at
 * most three decimals that read back exactly (percentages, ratios) are
 * written by hand; anything else with %.17g (exact round trip).
 *
 * Thread-safe (no state). Each function writes at most VG_RRD_FMT_LEN
 * bytes including the terminating NUL, and returns the end of what it
 * wrote (pointing at that NUL).
 */
#ifndef VIGIE_COLLECTOR_RRD_FORMAT_H
#define VIGIE_COLLECTOR_RRD_FORMAT_H

#include <stdint.h>

#define VG_RRD_FMT_LEN 32

/* "seconds.millis" of t_ms (negative times through snprintf). */
char *vg_rrd_fmt_time_ms(char *out, int64_t t_ms);

/* A text of v that strtod reads back as v: the short forms above when
 * they do, %.17g otherwise (also for a value that is not finite: the
 * rrdcached client writes "U" for those itself). */
char *vg_rrd_fmt_value(char *out, double v);

#endif
