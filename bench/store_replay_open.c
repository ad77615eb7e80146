/*
 * store_replay_open.c — how long a collector's start takes to replay its
 * journal to rrdcached after a kill -9, the daemon untouched
 * (docs/benchmarks.md "The start replay's check").
 *
 * A child process opens a store on a fresh rrdcached (the test harness's:
 * -j, -w 3600), writes NS series (one gauge each) for NM minutes through
 * (write_through = yes, sync_interval = 300s: the first minute synced,
 * the others sent to the daemon and not FLUSHed), waits until the daemon
 * took them all and kills itself (SIGKILL). The parent then times
 * vg_store_open on the same data dir: the journal's replay, as the
 * collector's start runs it. Prints one line: seconds, values replayed
 * (sent again), the journal's size and the peak resident memory of the
 * process that replayed it (VmHWM: only the parent opens a store), and
 * the load. Usage: store_replay_open [NS [NM]]
 * (defaults 10000 and 20). For an A/B pair, build this file against the
 * libraries of the other commit too (docs/benchmarks.md says how).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tests/unit/rrdcached_harness.h"
#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/store.h"
#include "bench_cpu.h"

#define T0 1699999980LL

static void writer(const struct vg_config *cfg, const char *data, int ns, int nm)
{
	struct vg_store *s;
	struct vg_store_stats st;
	char err[256];

	if (vg_store_open(data, cfg, &s, err, sizeof(err))) {
		fprintf(stderr, "store: %s\n", err);
		_exit(2);
	}
	for (int m = 0; m < nm; m++) {
		struct vg_batch *b = vg_batch_new("h", 1, (uint64_t)m + 1, (T0 + 60 * m) * 1000);
		int rc;
		for (int i = 0; b && i < ns; i++) {
			char id[32];
			snprintf(id, sizeof(id), "node%d", i);
			if (!vg_batch_resource(b, VG_RT_HOST, id, NULL, NULL, (T0 + 60 * m) * 1000) ||
			    vg_batch_sample(b, "load.1", VG_KIND_GAUGE, i + m))
				_exit(3);
		}
		while ((rc = vg_store_write_batch(s, b)) == -EAGAIN)
			usleep(10 * 1000);
		vg_batch_free(b);
		if (rc)
			_exit(4);
		if (m == 0 && vg_store_flush(s)) /* the files exist, minute 0 synced */
			_exit(5);
	}
	for (int i = 0; i < 6000; i++) { /* the daemon took every value */
		vg_store_get_stats(s, &st);
		if (!st.values_pending)
			raise(SIGKILL);
		usleep(100 * 1000);
	}
	_exit(6);
}

/* The kB of /proc/self/status's line NAME ("VmHWM:"), or -1. */
static long status_kb(const char *name)
{
	char line[256];
	long kb = -1;
	FILE *fp = fopen("/proc/self/status", "r");

	while (fp && fgets(line, sizeof(line), fp))
		if (!strncmp(line, name, strlen(name)))
			kb = atol(line + strlen(name));
	if (fp)
		fclose(fp);
	return kb;
}

/* The bytes of the journal segments in DATA/journal. */
static long long journal_bytes(const char *data)
{
	char cmd[256];
	long long b = 0;
	FILE *fp;

	snprintf(cmd, sizeof(cmd), "du -sb --apparent-size '%s/journal' 2>/dev/null", data);
	if ((fp = popen(cmd, "r"))) {
		if (fscanf(fp, "%lld", &b) != 1)
			b = 0;
		pclose(fp);
	}
	return b;
}

int main(int argc, char **argv)
{
	static const char *const extra[] = {"-O", "-R", NULL};
	int ns = argc > 1 ? atoi(argv[1]) : 10000, nm = argc > 2 ? atoi(argv[2]) : 20, status = 0;
	char dir[64], data[128], err[256], cmd[128];
	struct hrd_daemon d;
	struct vg_config cfg;
	struct vg_store *s;
	struct vg_store_stats st;
	double load = 0, t;
	pid_t pid;
	FILE *fp;

	snprintf(dir, sizeof(dir), "/tmp/vigie-replay-open.XXXXXX");
	if (ns < 1 || nm < 2 || !mkdtemp(dir) || hrd_start(&d, NULL, extra)) {
		fprintf(stderr, "usage: store_replay_open [NS [NM >= 2]] (needs rrdcached)\n");
		return 2;
	}
	snprintf(data, sizeof(data), "%s/data", dir);
	vg_config_defaults(&cfg);
	vg_config_parse_archives("1m:1d", cfg.archives, VG_MAX_ARCHIVES, &cfg.narchives);
	snprintf(cfg.storage_backend, sizeof(cfg.storage_backend), "rrdcached");
	snprintf(cfg.storage_daemons, sizeof(cfg.storage_daemons), "%.1000s", d.unix_addr);
	snprintf(cfg.storage_write_through, sizeof(cfg.storage_write_through), "yes");
	cfg.storage_sync_interval_s = 300;
	if ((pid = fork()) == 0)
		writer(&cfg, data, ns, nm);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFSIGNALED(status)) {
		fprintf(stderr, "the writer failed (status %#x)\n", status);
		hrd_cleanup(&d);
		return 1;
	}
	long long jb = journal_bytes(data);
	long hwm0 = status_kb("VmHWM:");
	t = bench_now_s();
	if (vg_store_open(data, &cfg, &s, err, sizeof(err))) {
		fprintf(stderr, "store: %s\n", err);
		hrd_cleanup(&d);
		return 1;
	}
	t = bench_now_s() - t;
	long hwm = status_kb("VmHWM:");
	vg_store_get_stats(s, &st);
	vg_store_close(s);
	if ((fp = fopen("/proc/loadavg", "r"))) {
		if (fscanf(fp, "%lf", &load) != 1)
			load = 0;
		fclose(fp);
	}
	printf("series %d minutes %d: open (replay) %.3f s, values replayed %llu, journal %lld "
	       "bytes, peak RSS %ld kB (%ld before the open), load %.2f\n",
	       ns, nm, t, (unsigned long long)st.values_replayed, jb, hwm, hwm0, load);
	hrd_cleanup(&d);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) ? 1 : 0;
}
