/*
 * rrdcached_bench.c — values per second through one rrdcached on a unix
 * socket with vigie's own client (collector/rrdcached.c): BATCH against
 * one UPDATE per round trip.
 *
 * Starts a private rrdcached (tests/unit/rrdcached_harness.h) in a dir on
 * tmpfs (--dir, default /dev/shm), journal included, creates --files
 * files in the bench layout of bench/run.sh (step 60, 1m:1d,5m:7d,1h:30d,
 * AVERAGE/MIN/MAX), then runs each mode over every file:
 *
 *   single d=1    one UPDATE of one value per round trip (what collectd's
 *                 rrdcached plugin and librrd's rrdc_update do)
 *   single d=60   one UPDATE of 60 timestamps per round trip
 *   batch d=1     one BATCH of one UPDATE per file per round trip
 *   batch d=60    one BATCH of one 60-timestamp UPDATE per file
 *
 * For each mode: "sent" is values acknowledged by the daemon per second
 * (in its cache, not yet in the files; -w 3600 holds them), with the CPU
 * of this process and of the daemon per value; "written" is FLUSHALL up
 * to an empty queue (STATS QueueLength 0 and UpdatesWritten caught up),
 * values per second into the files. One RESULT line per mode.
 *
 *   build/bench/rrdcached_bench [--files 10000] [--dir /dev/shm]
 *       [--rounds-single 2] [--rounds-batch 10] [--modes s1,s60,b1,b60]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_cpu.h"
#include "bench/bench_rrdcached.h"
#include "bench_cpu.h"

#define STEP 60
#define T0 1700000040LL /* a multiple of STEP: LAST answers t - t % step */

static uint64_t stat_u64(struct vg_rrdcd *c, const char *key)
{
	struct vg_rrdcd_info st;
	uint64_t v = UINT64_MAX;

	if (vg_rrdcd_stats(c, &st))
		return UINT64_MAX;
	const char *s = vg_rrdcd_info_get(&st, key);
	if (s)
		v = strtoull(s, NULL, 10);
	vg_rrdcd_info_free(&st);
	return v;
}

static void die(const char *what, struct vg_rrdcd *c, int rc)
{
	fprintf(stderr, "rrdcached_bench: %s: %s (%s)\n", what, strerror(-rc),
		c ? vg_rrdcd_error(c) : "");
	exit(1);
}

int main(int argc, char **argv)
{
	size_t nfiles = 10000, rounds_single = 2, rounds_batch = 10;
	const char *parent = "/dev/shm", *modes = "s1,s60,b1,b60";
	static const char *extra[] = {"-t", "2", "-z", "1", NULL};
	struct hrd_daemon d;
	struct vg_rrdcd *c = NULL;
	int rc;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--files"))
			nfiles = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--dir"))
			parent = argv[i + 1];
		else if (!strcmp(argv[i], "--rounds-single"))
			rounds_single = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--rounds-batch"))
			rounds_batch = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--modes"))
			modes = argv[i + 1];
		else {
			fprintf(stderr, "usage: %s [--files N] [--dir D] [--rounds-single R] "
					"[--rounds-batch R] [--modes s1,s60,b1,b60]\n",
				argv[0]);
			return 2;
		}
	}
	if (!nfiles)
		return 2;
	bench_rrdcached_start("rrdcached_bench", &d, parent, extra, 60000, &c);

	char(*names)[24] = calloc(nfiles, sizeof(*names));
	struct vg_rrdcd_update *items = calloc(nfiles, sizeof(*items));
	int64_t *ts = calloc(60, sizeof(int64_t));
	double *vals = calloc(60, sizeof(double));
	int *errs = calloc(nfiles, sizeof(int));
	if (!names || !items || !ts || !vals || !errs)
		return 1;
	double t = bench_now_s();
	for (size_t i = 0; i < nfiles; i++) {
		snprintf(names[i], sizeof(names[i]), "s%06zu.rrd", i);
		if ((rc = vg_rrdcd_create(c, names[i], STEP, T0, bench_rrd_defs, BENCH_RRD_NDEFS, 1)))
			die("create", c, rc);
	}
	printf("# %zu files created through the daemon in %.2f s (%.0f/s), dir %s\n", nfiles,
	       bench_now_s() - t, (double)nfiles / (bench_now_s() - t), d.dir);

	int64_t next = T0 + STEP; /* the next timestamp of every file */
	char mode[8];
	const char *m = modes;
	while (*m) {
		size_t ml = strcspn(m, ",");
		snprintf(mode, sizeof(mode), "%.*s", (int)ml, m);
		m += ml + (m[ml] == ',');
		int batch = mode[0] == 'b';
		size_t depth = strtoul(mode + 1, NULL, 10);
		size_t rounds = batch ? rounds_batch : rounds_single;
		if ((mode[0] != 'b' && mode[0] != 's') || depth < 1 || depth > 60) {
			fprintf(stderr, "rrdcached_bench: unknown mode %s\n", mode);
			return 2;
		}
		uint64_t written0 = stat_u64(c, "DataSetsWritten");
		double c0 = bench_self_cpu_s(), d0 = bench_proc_cpu_or0(d.pid), w0 = bench_now_s();
		for (size_t r = 0; r < rounds; r++) {
			for (size_t k = 0; k < depth; k++) {
				ts[k] = next + (int64_t)k * STEP;
				vals[k] = (double)(r * depth + k) * 0.5;
			}
			for (size_t i = 0; i < nfiles; i++)
				items[i] = (struct vg_rrdcd_update){
					.file = names[i], .n = depth, .nds = 1, .ts = ts, .values = vals};
			if (batch) {
				struct vg_rrdcd_batch_result res;
				if ((rc = vg_rrdcd_batch(c, items, nfiles, errs, &res)))
					die("batch", c, rc);
				if (res.nfailed)
					die("batch item", c, -EREMOTEIO);
			} else {
				for (size_t i = 0; i < nfiles; i++)
					if ((rc = vg_rrdcd_update(c, &items[i])))
						die("update", c, rc);
			}
			next += (int64_t)depth * STEP;
		}
		double w1 = bench_now_s(), c1 = bench_self_cpu_s(), d1 = bench_proc_cpu_or0(d.pid);
		double values = (double)(nfiles * depth * rounds);

		/* write phase: FLUSHALL, until the daemon has written them */
		uint64_t want = written0 + nfiles * depth * rounds;
		if ((rc = vg_rrdcd_flushall(c)))
			die("flushall", c, rc);
		for (;;) {
			uint64_t q = stat_u64(c, "QueueLength"), w = stat_u64(c, "DataSetsWritten");
			if (q == UINT64_MAX || w == UINT64_MAX)
				die("stats", c, -EPROTO);
			if (q == 0 && w >= want)
				break;
			usleep(20000);
		}
		double w2 = bench_now_s(), d2 = bench_proc_cpu_or0(d.pid);
		printf("RESULT rrdcd_client mode=%s depth=%zu files=%zu rounds=%zu values=%.0f "
		       "send_s=%.3f values_per_s=%.0f client_us_cpu_per_value=%.3f "
		       "daemon_us_cpu_per_value=%.3f write_s=%.3f written_per_s=%.0f "
		       "daemon_write_us_cpu_per_value=%.3f\n",
		       batch ? "batch" : "single", depth, nfiles, rounds, values, w1 - w0,
		       values / (w1 - w0), (c1 - c0) * 1e6 / values, (d1 - d0) * 1e6 / values,
		       w2 - w1, values / (w2 - w1), (d2 - d1) * 1e6 / values);
		fflush(stdout);
	}

	/* check: the last value of a few files is the one sent last */
	for (size_t i = 0; i < nfiles; i += nfiles / 7 + 1) {
		int64_t last;
		if ((rc = vg_rrdcd_last(c, names[i], &last)))
			die("last", c, rc);
		if (last != next - STEP) {
			fprintf(stderr, "rrdcached_bench: %s last %" PRId64 ", want %" PRId64 "\n",
				names[i], last, next - STEP);
			return 1;
		}
	}
	vg_rrdcd_close(c);
	hrd_cleanup(&d);
	free(names);
	free(items);
	free(ts);
	free(vals);
	free(errs);
	return 0;
}
