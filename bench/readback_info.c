/*
 * readback_info.c — the CPU of the sync's read-back alone (issue 14;
 * docs/operations.md "A file the daemon cannot write"): the client's and
 * the daemon's CPU per file read back with vg_rrdcd_info_last_many, the
 * call unwritten_check makes (INFO pipelined VG_RRDCD_LAST_MANY_MAX files
 * per round trip, each file's whole answer read for its last_update).
 *
 * Starts a private rrdcached (tests/unit/rrdcached_harness.h) in a dir on
 * tmpfs (--dir, default /dev/shm), creates --files files in the bench
 * layout of bench/run.sh (step 60, 1m:1d,5m:7d,1h:30d, AVERAGE/MIN/MAX:
 * an INFO answer of ~90 lines), then reads every file back --loops times
 * and prints one RESULT line: client and daemon CPU per file read back,
 * the wall time per file, and this process's context switches per file
 * (getrusage: voluntary, i.e. waits for the daemon's next answer).
 *
 *   build/bench/readback_info [--files 1024] [--loops 20] [--dir /dev/shm]
 */
#include <errno.h>
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
#define T0 1700000040LL

static long self_vcsw(void)
{
	struct rusage u;

	getrusage(RUSAGE_SELF, &u);
	return u.ru_nvcsw;
}

int main(int argc, char **argv)
{
	static const char *const extra[] = {"-O", "-R", NULL};
	const char *dir = "/dev/shm";
	int nfiles = 1024, loops = 20, rc = 1;
	struct hrd_daemon d;
	struct vg_rrdcd *c = NULL;
	char **names = NULL;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--files"))
			nfiles = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--loops"))
			loops = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--dir"))
			dir = argv[i + 1];
		else {
			fprintf(stderr, "usage: readback_info [--files N] [--loops N] [--dir D]\n");
			return 2;
		}
	}
	if (nfiles < 1 || loops < 1) {
		fprintf(stderr, "readback_info: --files and --loops must be positive\n");
		return 2;
	}
	bench_rrdcached_start("readback_info", &d, dir, extra, 30000, &c);
	if (!(names = calloc((size_t)nfiles, sizeof(*names))))
		goto out;
	for (int i = 0; i < nfiles; i++) {
		char name[64];
		snprintf(name, sizeof(name), "r%d.rrd", i);
		if (!(names[i] = strdup(name)) ||
		    vg_rrdcd_create(c, names[i], STEP, T0, bench_rrd_defs, BENCH_RRD_NDEFS, 1)) {
			fprintf(stderr, "readback_info: create %s: %s\n", name, vg_rrdcd_error(c));
			goto out;
		}
	}

	long n = 0, v0 = self_vcsw();
	double c0 = bench_self_cpu_s(), d0 = bench_proc_cpu_or0(d.pid), w0 = bench_now_s();
	for (int l = 0; l < loops; l++)
		for (int i = 0; i < nfiles; i += VG_RRDCD_LAST_MANY_MAX) {
			int64_t last[VG_RRDCD_LAST_MANY_MAX];
			int err[VG_RRDCD_LAST_MANY_MAX];
			size_t k = (size_t)(nfiles - i) < VG_RRDCD_LAST_MANY_MAX
					   ? (size_t)(nfiles - i)
					   : VG_RRDCD_LAST_MANY_MAX;
			if (vg_rrdcd_info_last_many(c, (const char *const *)names + i, k, last, err)) {
				fprintf(stderr, "readback_info: %s\n", vg_rrdcd_error(c));
				goto out;
			}
			for (size_t j = 0; j < k; j++)
				if (err[j] || last[j] != T0) {
					fprintf(stderr, "readback_info: %s: last %lld, error %d\n",
						names[i + j], (long long)last[j], err[j]);
					goto out;
				}
			n += (long)k;
		}
	double w1 = bench_now_s(), c1 = bench_self_cpu_s(), d1 = bench_proc_cpu_or0(d.pid);
	long v1 = self_vcsw();
	printf("RESULT readback_info files=%d loops=%d infos=%ld client_us_cpu_per_file=%.2f "
	       "daemon_us_cpu_per_file=%.2f wall_us_per_file=%.2f client_vcsw_per_file=%.2f\n",
	       nfiles, loops, n, (c1 - c0) * 1e6 / (double)n, (d1 - d0) * 1e6 / (double)n,
	       (w1 - w0) * 1e6 / (double)n, (double)(v1 - v0) / (double)n);
	rc = 0;
out:
	vg_rrdcd_close(c);
	if (names)
		for (int i = 0; i < nfiles; i++)
			free(names[i]);
	free(names);
	hrd_cleanup(&d);
	return rc;
}
