/*
 * proof_bench.c — what a host's proof costs ([cluster] wait_verified:
 * the receiver FLUSHes every file of a host that arrives from a collector
 * whose last commit is not verified yet, vg_store_prove_arrival;
 * docs/scaling.md "Closing the second", part 2): its time on the
 * receiver thread, this process's CPU (placement, the FLUSH BATCHes'
 * encoding and answers) and the daemon's (its file writes).
 *
 * Starts a private rrdcached (tests/unit/rrdcached_harness.h; -w 3600
 * keeps values cached, as the previous collector's unproven ones are),
 * opens a store on it with the collector's default archives and
 * write-through, writes one batch of a host with --files series (files
 * created; their connection made), then sends --values values to every
 * file over another connection (the previous collector's unverified
 * values, cached by the daemon only) and times the proof of the host's
 * next batch, as the receiver calls it (no overall bound), and once more
 * with nothing left cached. The first batch's cost is reported too (its
 * 2,600 creates, in attempts each bounded by the receiver's wait, a
 * quarter of the default 5 s ack timeout, sent again at once). One
 * RESULT line.
 *
 *   build/bench/proof_bench [--files 2600] [--values 1] [--dir /tmp]
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tests/unit/rrdcached_harness.h"
#include "bench_cpu.h"
#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/config.h"
#include "vigie/log.h"
#include "vigie/rrdcached.h"
#include "vigie/store.h"

#define T0 1700000000000LL /* ms */
#define PER_RESOURCE 100   /* metrics per resource */

static char dir[PATH_MAX]; /* the store's, removed on the way out */

static void die(const char *what, const char *why)
{
	char cmd[PATH_MAX + 16];

	fprintf(stderr, "proof_bench: %s: %s\n", what, why);
	if (dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd))
			fprintf(stderr, "proof_bench: cannot remove %s\n", dir);
	}
	exit(1); /* the daemon: the harness's exit handler */
}

/* The host's batch of minute m: nfiles gauges over resources of
 * PER_RESOURCE metrics each. */
static struct vg_batch *host_batch(size_t nfiles, int m)
{
	int64_t t = T0 + (int64_t)m * 60000;
	struct vg_batch *b = vg_batch_new("bench-host", 1, (uint64_t)m, t);

	for (size_t i = 0; b && i < nfiles; i++) {
		char id[32], metric[32];
		if (i % PER_RESOURCE == 0) {
			snprintf(id, sizeof(id), "inst-%zu", i / PER_RESOURCE);
			if (!vg_batch_resource(b, VG_RT_INSTANCE, id, "vm", NULL, t))
				die("batch", "resource");
		}
		snprintf(metric, sizeof(metric), "m.%zu", i % PER_RESOURCE);
		if (vg_batch_sample(b, metric, VG_KIND_GAUGE, (double)(i + (size_t)m)))
			die("batch", "sample");
	}
	return b;
}

/* The previous collector's values: nvalues per file, minutes 2.., over a
 * connection of its own. */
static void other_sends(struct vg_store *s, const char *addr, size_t nfiles, size_t nvalues)
{
	struct vg_rrdcd *c;
	int64_t ts[256];
	double v[256];
	char path[PATH_MAX];
	int rc;

	if ((rc = vg_rrdcd_connect(addr, 60000, &c)))
		die("connect", strerror(-rc));
	for (size_t i = 0; i < nfiles; i++) {
		char id[32], metric[32];
		snprintf(id, sizeof(id), "inst-%zu", i / PER_RESOURCE);
		snprintf(metric, sizeof(metric), "m.%zu", i % PER_RESOURCE);
		if (vg_store_path(s, VG_RT_INSTANCE, id, metric, path, sizeof(path)))
			die("path", metric);
		for (size_t k = 0; k < nvalues; k++) {
			ts[k] = T0 / 1000 + 60 * (int64_t)(2 + k);
			v[k] = (double)(i + k);
		}
		struct vg_rrdcd_update u = {path, nvalues, 1, ts, v, 0};
		if ((rc = vg_rrdcd_update(c, &u)))
			die("update", vg_rrdcd_error(c));
	}
	vg_rrdcd_close(c);
}

/* One proof of b, timed: wall s, this process's CPU s, the daemon's. */
static int prove(struct vg_store *s, const struct vg_batch *b, long pid, double *wall,
		 double *self, double *daemon, int *failed)
{
	int64_t t0 = vg_monotonic_ms();
	double c0 = bench_self_cpu_s(), d0 = bench_proc_cpu_s(pid, NULL);
	int rc;

	/* a connection made before now: the store's, idle once its write
	 * returned (the storage thread may hold it a moment: -ESTALE) */
	for (int i = 0; i < 3000; i++) {
		t0 = vg_monotonic_ms();
		c0 = bench_self_cpu_s();
		d0 = bench_proc_cpu_s(pid, NULL);
		rc = vg_store_prove_arrival(s, b, NULL, 0, vg_now_ms(), 0);
		/* a BATCH's wait past its bound (1.25 s) fails the proof, its
		 * connection closed: counted, and timed again on a new one (the
		 * receiver would answer RETRY, the host waiting) */
		if (rc == -EHOSTUNREACH)
			(*failed)++;
		else if (rc != -ESTALE)
			break;
		vg_sleep_ms(10);
	}
	*wall = (double)(vg_monotonic_ms() - t0) / 1000.0;
	*self = bench_self_cpu_s() - c0;
	*daemon = bench_proc_cpu_s(pid, NULL) - d0;
	return rc;
}

int main(int argc, char **argv)
{
	size_t nfiles = 2600, nvalues = 1;
	const char *parent = "/tmp";
	static const char *extra[] = {"-O", "-R", NULL};
	struct hrd_daemon d;
	struct vg_config cfg;
	struct vg_store *s;
	char err[256];
	int rc;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--files"))
			nfiles = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--values"))
			nvalues = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--dir"))
			parent = argv[i + 1];
		else {
			fprintf(stderr, "usage: %s [--files N] [--values V] [--dir D]\n", argv[0]);
			return 2;
		}
	}
	if (!nfiles || !nvalues || nvalues > 256)
		return 2;
	vg_log_init("proof_bench", VG_LOG_ERROR);
	if ((rc = hrd_start(&d, parent, extra)))
		die("start rrdcached", strerror(-rc));
	snprintf(dir, sizeof(dir), "%s/vigie-proof-bench.XXXXXX", parent);
	if (!mkdtemp(dir))
		die("mkdtemp", strerror(errno));
	vg_config_defaults(&cfg);
	snprintf(cfg.storage_backend, sizeof(cfg.storage_backend), "rrdcached");
	snprintf(cfg.storage_daemons, sizeof(cfg.storage_daemons), "%.1000s", d.unix_addr);
	snprintf(cfg.storage_daemon_base, sizeof(cfg.storage_daemon_base), "%.500s", d.base);
	snprintf(cfg.storage_write_through, sizeof(cfg.storage_write_through), "yes");
	cfg.storage_sync_interval_s = 3600; /* no sync FLUSHes meanwhile */
	if (vg_store_open(dir, &cfg, &s, err, sizeof(err)))
		die("store", err);

	struct vg_batch *b1 = host_batch(nfiles, 1), *b3 = host_batch(nfiles, 3);
	/* the host's first batch, every series new: its creates bounded per
	 * attempt (a quarter of the ack timeout), answered RETRY past it and
	 * sent again at once (an agent waits its back-off in between) */
	int64_t c0 = vg_monotonic_ms(), longest = 0;
	int attempts = 0;
	for (;;) {
		int64_t a0 = vg_monotonic_ms();
		rc = vg_store_write_batch(s, b1);
		attempts++;
		if (vg_monotonic_ms() - a0 > longest)
			longest = vg_monotonic_ms() - a0;
		if (rc != -EAGAIN || attempts >= 10000)
			break;
	}
	if (rc)
		die("first batch", vg_store_last_error(s));
	double create_s = (double)(vg_monotonic_ms() - c0) / 1000.0;
	other_sends(s, d.unix_addr, nfiles, nvalues);

	double wall, self, daemon, wall0, self0, daemon0;
	int failed = 0, failed0 = 0;
	if ((rc = prove(s, b3, d.pid, &wall, &self, &daemon, &failed)))
		die("proof", strerror(-rc));
	if ((rc = prove(s, b3, d.pid, &wall0, &self0, &daemon0, &failed0)))
		die("proof, nothing cached", strerror(-rc));
	printf("RESULT kind=proof files=%zu values=%zu proof_s=%.3f proof_cpu_s=%.3f "
	       "daemon_cpu_s=%.3f nothing_cached_s=%.3f nothing_cached_cpu_s=%.3f "
	       "nothing_cached_daemon_cpu_s=%.3f first_batch_s=%.3f first_batch_attempts=%d "
	       "first_batch_longest_s=%.3f proof_failed=%d\n",
	       nfiles, nvalues, wall, self, daemon, wall0, self0, daemon0, create_s, attempts,
	       (double)longest / 1000.0, failed + failed0);
	vg_batch_free(b1);
	vg_batch_free(b3);
	vg_store_close(s);
	hrd_cleanup(&d);
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "proof_bench: cannot remove %s\n", dir);
	return 0;
}
