/*
 * arrival_flush_bench.c — how long the FLUSH of a host's files takes when
 * the host arrives at a collector from another one (the rrdcached
 * backend's arrival_flush: one FLUSH BATCH per daemon and group of up
 * to 512 files, before that daemon's UPDATE BATCH), to decide whether the
 * receiver can afford it within its ack bound (a quarter of the agents'
 * ack timeout, 1.25 s by default) or leaves it to the storage thread
 * (it does: docs/scaling.md "Still open", form 3).
 *
 * Starts a private rrdcached (tests/unit/rrdcached_harness.h; its -w 3600
 * holds values in its cache, as the previous collector's unproven values
 * are), creates --files files in the collector's default layout (step
 * 10 s here, 1m:15d,5m:63d,1h:455d rows; AVERAGE, MIN, MAX), sends
 * --values values to each (what the previous collector left unproven:
 * 1 with [storage] sync_interval = 0, 30 with 300 s at 10 s polls), then
 * times FLUSH BATCHes of --group files over one connection, and once
 * more with nothing cached. One RESULT line.
 *
 *   build/bench/arrival_flush_bench [--files 2550] [--values 30]
 *       [--group 512] [--dir /tmp]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_rrdcached.h"
#include "bench_cpu.h"

#define STEP 10
#define T0 1700000000LL

static void die(const char *what, struct vg_rrdcd *c, int rc)
{
	fprintf(stderr, "arrival_flush_bench: %s: %s (%s)\n", what, strerror(-rc),
		c ? vg_rrdcd_error(c) : "");
	exit(1);
}

/* FLUSH BATCHes of files[0..n), group at a time: the total in s, the
 * longest one in *worst. */
static double flush_all(struct vg_rrdcd *c, const char **files, size_t n, size_t group,
			int *errs, double *worst)
{
	struct vg_rrdcd_batch_result br;
	double t0 = bench_now_s();
	int rc;

	*worst = 0;
	for (size_t o = 0; o < n; o += group) {
		size_t k = n - o < group ? n - o : group;
		double a = bench_now_s();
		if ((rc = vg_rrdcd_flush_many(c, files + o, k, errs, &br)))
			die("FLUSH BATCH", c, rc);
		if (bench_now_s() - a > *worst)
			*worst = bench_now_s() - a;
	}
	return bench_now_s() - t0;
}

int main(int argc, char **argv)
{
	size_t nfiles = 2550, nvalues = 30, group = 512;
	const char *parent = "/tmp";
	static const char *extra[] = {"-O", NULL};
	/* 1m:15d, 5m:63d, 1h:455d at a 10 s step */
	static const char *defs[] = {
		"DS:value:GAUGE:600:U:U", "RRA:AVERAGE:0.5:6:21600", "RRA:MIN:0.5:6:21600",
		"RRA:MAX:0.5:6:21600", "RRA:AVERAGE:0.5:30:18144", "RRA:MIN:0.5:30:18144",
		"RRA:MAX:0.5:30:18144", "RRA:AVERAGE:0.5:360:10920", "RRA:MIN:0.5:360:10920",
		"RRA:MAX:0.5:360:10920"};
	struct hrd_daemon d;
	struct vg_rrdcd *c = NULL;
	int rc;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--files"))
			nfiles = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--values"))
			nvalues = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--group"))
			group = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--dir"))
			parent = argv[i + 1];
		else {
			fprintf(stderr, "usage: %s [--files N] [--values V] [--group G] [--dir D]\n",
				argv[0]);
			return 2;
		}
	}
	if (!nfiles || !nvalues || nvalues > 256 || !group)
		return 2;
	bench_rrdcached_start("arrival_flush_bench", &d, parent, extra, 60000, &c);

	char(*names)[24] = calloc(nfiles, sizeof(*names));
	const char **files = calloc(nfiles, sizeof(*files));
	int64_t ts[256];
	double vals[256];
	int *errs = calloc(nfiles, sizeof(int));
	if (!names || !files || !errs)
		return 1;
	for (size_t i = 0; i < nfiles; i++) {
		snprintf(names[i], sizeof(names[i]), "s%06zu.rrd", i);
		files[i] = names[i];
		if ((rc = vg_rrdcd_create(c, names[i], STEP, T0 - STEP, defs, 10, 1)))
			die("create", c, rc);
	}
	double worst;
	flush_all(c, files, nfiles, group, errs, &worst); /* created: on disk */
	for (size_t i = 0; i < nfiles; i++) {
		for (size_t k = 0; k < nvalues; k++) {
			ts[k] = T0 + STEP * (int64_t)k;
			vals[k] = (double)(i + k);
		}
		struct vg_rrdcd_update u = {
			.file = names[i], .n = nvalues, .nds = 1, .ts = ts, .values = vals};
		if ((rc = vg_rrdcd_update(c, &u)))
			die("update", c, rc);
	}
	double full = flush_all(c, files, nfiles, group, errs, &worst), worst_full = worst;
	double empty = flush_all(c, files, nfiles, group, errs, &worst);
	printf("RESULT kind=arrival_flush files=%zu values=%zu group=%zu flush_s=%.3f "
	       "us_per_file=%.0f worst_group_s=%.3f nothing_cached_s=%.3f\n",
	       nfiles, nvalues, group, full, full / (double)nfiles * 1e6, worst_full, empty);
	vg_rrdcd_close(c);
	hrd_cleanup(&d);
	free(names);
	free(files);
	free(errs);
	return 0;
}
