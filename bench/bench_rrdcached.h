/*
 * bench_rrdcached.h — what the benchmarks that talk to rrdcached itself
 * (rrdcached_bench.c, arrival_flush_bench.c, readback_info.c) share: a
 * private daemon (tests/unit/rrdcached_harness.h) with a connection to
 * its unix socket, and the files' layout of bench/run.sh. Header-only:
 * every C file of bench/ is a program of its own.
 */
#ifndef VIGIE_BENCH_RRDCACHED_H
#define VIGIE_BENCH_RRDCACHED_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/rrdcached_harness.h"
#include "vigie/rrdcached.h"

/* bench/run.sh's layout at a 60 s step (1m:1d, 5m:7d, 1h:30d; AVERAGE,
 * MIN, MAX), as vg_rrdcd_create takes it: BENCH_RRD_NDEFS strings. */
#define BENCH_RRD_NDEFS 10
static const char *const bench_rrd_defs[BENCH_RRD_NDEFS] = {
	"DS:value:GAUGE:600:U:U", "RRA:AVERAGE:0.5:1:1440", "RRA:MIN:0.5:1:1440",
	"RRA:MAX:0.5:1:1440", "RRA:AVERAGE:0.5:5:2016", "RRA:MIN:0.5:5:2016",
	"RRA:MAX:0.5:5:2016", "RRA:AVERAGE:0.5:60:720", "RRA:MIN:0.5:60:720",
	"RRA:MAX:0.5:60:720"};

/* A private rrdcached started in *D under PARENT (NULL: $TMPDIR or /tmp)
 * with EXTRA options, and *C connected to its unix socket, each wait
 * bounded by TIMEOUT_MS. When either fails the benchmark PROG says so and
 * exits 1 (the harness kills the daemon at exit). */
static inline void bench_rrdcached_start(const char *prog, struct hrd_daemon *d,
					 const char *parent, const char *const *extra,
					 int timeout_ms, struct vg_rrdcd **c)
{
	int rc;

	if ((rc = hrd_start(d, parent, extra))) {
		fprintf(stderr, "%s: start rrdcached: %s\n", prog, strerror(-rc));
		exit(1);
	}
	if ((rc = vg_rrdcd_connect(d->unix_addr, timeout_ms, c))) {
		fprintf(stderr, "%s: connect to %s: %s\n", prog, d->unix_addr, strerror(-rc));
		exit(1);
	}
}

#endif
