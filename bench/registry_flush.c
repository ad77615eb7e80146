/*
 * registry_flush.c — the server's CPU per value of the registry's 10 s
 * flush (last values and last-seen times) on PostgreSQL, alone, without
 * the rest of the collector (the fleet's state section mixes it with the
 * meter's statements, whose plans at 10,000 series differ from run to run).
 *
 * A PostgreSQL server this program starts (pg_harness.h; its defaults:
 * fsync and synchronous_commit on), one registry handle (the real
 * vg_registry code, so linking another build's collector/registry.o
 * measures that build's flush). HOSTS hosts of RES resources of METRICS
 * gauges each are reported once (the rows are written), then each round
 * reports every series again with a newer time and value (memory only)
 * and flushes: every value and every resource's last-seen time is written.
 * Reported over the measured rounds: values flushed, the server's CPU per
 * value (every backend of the server: /proc/<pid>/stat of the
 * postmaster's children, the registry's connection among them; over the
 * whole rounds, whose reports alone cost the server nothing) and this
 * process's during the flushes, and the wall time per flush.
 *
 * Usage: registry_flush [--hosts N] [--res N] [--metrics N] [--rounds N]
 *        (default 8 hosts x 125 resources x 10 metrics = 10,000 series,
 *        10 rounds, the first 2 not measured)
 * Prints "RESULT registry_flush series=... values=... flushes=...
 * server_us_per_value=... client_us_per_value=... ms_per_flush=...".
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../tests/unit/pg_harness.h"
#include "bench/bench_cpu.h"
#include "vigie/batch.h"
#include "vigie/registry.h"
#include "bench_cpu.h"

#define WARM_ROUNDS 2

/* CPU seconds of the postmaster's live children (the backends). */
static double server_cpu_s(pid_t pm)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	double t = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[64], buf[512], *p;
		long pid = strtol(e->d_name, &p, 10), ppid = 0;
		FILE *f;

		if (*p || pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		if (!(f = fopen(path, "r")))
			continue;
		buf[fread(buf, 1, sizeof(buf) - 1, f)] = '\0';
		fclose(f);
		if ((p = strrchr(buf, ')')) && sscanf(p + 2, "%*c %ld", &ppid) == 1 && ppid == pm)
			t += bench_proc_cpu_s(pid, NULL);
	}
	closedir(d);
	return t;
}

static int report(struct vg_registry *r, int hosts, int res, int metrics, int64_t t, double v)
{
	char host[32], id[64], name[32];
	int rc = 0;

	for (int h = 0; h < hosts && !rc; h++) {
		struct vg_batch *b;
		snprintf(host, sizeof(host), "host-%03d", h);
		if (!(b = vg_batch_new(host, 1, 1, t)))
			return -ENOMEM;
		for (int i = 0; i < res; i++) {
			snprintf(id, sizeof(id), "%s-instance-%04d", host, i);
			vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, t);
			for (int m = 0; m < metrics; m++) {
				snprintf(name, sizeof(name), "bench.gauge%d", m);
				vg_batch_sample(b, name, VG_KIND_GAUGE, v + i + m);
			}
		}
		rc = vg_registry_update(r, b);
		vg_batch_free(b);
	}
	return rc;
}

int main(int argc, char **argv)
{
	int hosts = 8, res = 125, metrics = 10, rounds = 10, rc;
	struct hpg_server pg;
	struct vg_registry *r = NULL;
	struct vg_registry_stats st0, st1;
	char err[512], dir[] = "/tmp/vigie-registry-flush.XXXXXX";
	double c0 = 0, s0 = 0, w = 0;
	int64_t t = 1700000000000LL;

	for (int i = 1; i + 1 < argc; i += 2) {
		int v = atoi(argv[i + 1]);
		if (!strcmp(argv[i], "--hosts"))
			hosts = v;
		else if (!strcmp(argv[i], "--res"))
			res = v;
		else if (!strcmp(argv[i], "--metrics"))
			metrics = v;
		else if (!strcmp(argv[i], "--rounds"))
			rounds = v;
	}
	if (hosts < 1 || res < 1 || metrics < 1 || rounds <= WARM_ROUNDS) {
		fprintf(stderr, "usage: registry_flush [--hosts N] [--res N] [--metrics N] "
				"[--rounds N > %d]\n",
			WARM_ROUNDS);
		return 2;
	}
	if ((rc = hpg_start(&pg, ""))) {
		fprintf(stderr, "registry_flush: no PostgreSQL server: %s\n", pg.why);
		hpg_cleanup(&pg);
		return rc == -ENOENT || rc == -EPERM ? 0 : 1;
	}
	if (!mkdtemp(dir) ||
	    vg_registry_open_state(dir, pg.conninfo, &r, err, sizeof(err))) {
		fprintf(stderr, "registry_flush: %s\n", err);
		hpg_cleanup(&pg);
		return 1;
	}
	/* the flushes measured are this loop's (not the periodic flusher's) */
	vg_registry_flush_every(r, 24 * 3600 * 1000LL);
	rc = report(r, hosts, res, metrics, t, 0); /* the rows */
	rc = rc ? rc : vg_registry_flush(r);
	for (int k = 1; k <= rounds && !rc; k++) {
		double w0, cf;
		if (k == WARM_ROUNDS + 1) {
			vg_registry_stats(r, &st0);
			s0 = server_cpu_s(pg.pm_pid);
		}
		t += 10000;
		rc = report(r, hosts, res, metrics, t, k * 1000.0);
		w0 = bench_now_s();
		cf = bench_self_cpu_s();
		rc = rc ? rc : vg_registry_flush(r);
		if (k > WARM_ROUNDS) {
			w += bench_now_s() - w0;
			c0 += bench_self_cpu_s() - cf;
		}
	}
	if (!rc) {
		double c = c0, s = server_cpu_s(pg.pm_pid) - s0;
		int n = rounds - WARM_ROUNDS;
		uint64_t vals;
		vg_registry_stats(r, &st1);
		vals = st1.flushed_values - st0.flushed_values;
		printf("RESULT registry_flush series=%d values=%llu flushes=%d "
		       "server_us_per_value=%.3f client_us_per_value=%.3f ms_per_flush=%.1f\n",
		       hosts * res * metrics, (unsigned long long)vals, n, s * 1e6 / (double)vals,
		       c * 1e6 / (double)vals, w * 1e3 / n);
	} else {
		fprintf(stderr, "registry_flush: %d %s\n", rc, vg_registry_last_error(r));
	}
	vg_registry_close(r);
	hpg_cleanup(&pg);
	rmdir(dir);
	return rc ? 1 : 0;
}
