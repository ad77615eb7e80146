/*
 * rrd_ceiling.c — the physical reference: how fast librrd alone stores
 * values on this machine, with the RRD layout vigie's store uses.
 *
 * Design. N files laid out like vigie's store (about 40 series per
 * directory, one data source "value", GAUGE or DDERIVE with minimum 0,
 * AVERAGE/MIN/MAX for every archive tier, step and heartbeat as in
 * collector/store.c) are created once, then updated round by round: every
 * round calls rrd_update_r once per file with --depth timestamps (each
 * --interval seconds apart) of --ds values each, so one call stores
 * depth x ds values. The loop runs whole rounds until --seconds of wall
 * time have passed. Formatting the "time:value" strings is counted, as
 * any caller of librrd must produce them.
 *
 * With --daemon ADDR the same updates go to rrdcached (rrdc_update), and
 * the run ends with FLUSHALL and a wait until the daemon reports every
 * data set written, so the figure is what rrdcached can write, end to end.
 *
 * Invariants: every file receives the same timestamps; a later run on the
 * same directory continues after the files' last update (rrd_last_r of the
 * first file), so several modes can share the files. Values are
 * deterministic; nothing here is random.
 *
 * Output: one line "RESULT ceiling key=value ..." on standard output
 * (bench/run.sh parses it); progress and errors on standard error.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <rrd.h>
#include <rrd_client.h>

#include "vigie/clock.h"
#include "vigie/config.h"
#include "vigie/fsutil.h"
#include "bench/bench_cpu.h"

#define FILES_PER_DIR 40
#define ARG_MAX_LEN 32

struct opts {
	const char *dir;
	const char *tree;
	const char *label;
	const char *daemon;
	const char *archives;
	long files;
	int depth, ds;
	uint32_t step_s, heartbeat_s, interval_s;
	double seconds;
	long max_rounds;
	int counters_pct;
	long start;
	int daemon_pid;
};

static int is_counter(const struct opts *o, long f)
{
	return (f % 100) < o->counters_pct;
}

/* --tree: collect every *.rrd path under a directory. */
static char **g_tree;
static long g_ntree, g_captree;

static int tree_add(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	size_t len = strlen(path);

	(void)st;
	(void)ftw;
	if (type != FTW_F || len < 4 || strcmp(path + len - 4, ".rrd"))
		return 0;
	if (g_ntree == g_captree) {
		long cap = g_captree ? g_captree * 2 : 4096;
		char **n = realloc(g_tree, (size_t)cap * sizeof(*n));
		if (!n)
			return -1;
		g_tree = n;
		g_captree = cap;
	}
	if (!(g_tree[g_ntree] = strdup(path)))
		return -1;
	g_ntree++;
	return 0;
}

/* Create file f (as collector/store.c does), last update = start. */
static int create_one(const struct opts *o, const struct vg_archive *arch,
		      size_t narch, const char *path, long f)
{
	static const char *cfs[] = {"AVERAGE", "MIN", "MAX"};
	char dsdef[64][64], rra[3 * VG_MAX_ARCHIVES][64];
	const char *argv[64 + 3 * VG_MAX_ARCHIVES];
	int argc = 0, counter = is_counter(o, f);

	for (int k = 0; k < o->ds && k < 64; k++) {
		snprintf(dsdef[k], sizeof(dsdef[k]), "DS:v%d:%s:%u:%s:U", k,
			 counter ? "DDERIVE" : "GAUGE", o->heartbeat_s,
			 counter ? "0" : "U");
		argv[argc++] = dsdef[k];
	}
	for (size_t i = 0, n = 0; i < narch; i++) {
		uint32_t pdp = arch[i].resolution_s / o->step_s;
		uint32_t rows = arch[i].retention_s / arch[i].resolution_s;
		for (int c = 0; c < 3; c++, n++) {
			snprintf(rra[n], sizeof(rra[n]), "RRA:%s:0.5:%u:%u", cfs[c],
				 pdp, rows ? rows : 1);
			argv[argc++] = rra[n];
		}
	}
	rrd_clear_error();
	if (rrd_create_r2(path, o->step_s, (time_t)o->start, 0, NULL, NULL,
			  argc, argv)) {
		fprintf(stderr, "rrd_ceiling: create %s: %s\n", path, rrd_get_error());
		return -EIO;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rrd_ceiling --dir DIR [options]\n"
		"       rrd_ceiling --tree DIR [options]\n"
		"  --dir DIR          create (if missing) and update --files files in DIR\n"
		"  --tree DIR         update every *.rrd file under DIR instead (e.g. the\n"
		"                     files vigie just wrote: same layout, same count),\n"
		"                     each continuing after its own last update\n"
		"  --files N          number of RRD files (default 1000)\n"
		"  --depth D          timestamps per update call (default 1)\n"
		"  --ds K             data sources per file (default 1, as vigie)\n"
		"  --seconds S        run whole rounds for at least S s (default 10)\n"
		"  --max-rounds R     stop after R rounds (default unlimited)\n"
		"  --archives LIST    archive tiers (default 1m:1d,5m:7d,1h:30d)\n"
		"  --step S --heartbeat S --interval S   (60, 600, 10)\n"
		"  --counters-pct P   share of DDERIVE files (default 60)\n"
		"  --start EPOCH      last update at creation (default 1699999200)\n"
		"  --daemon ADDR      go through rrdcached (unix:/path)\n"
		"  --daemon-pid PID   rrdcached's pid, to count its CPU\n"
		"  --label TEXT       copied to the RESULT line\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"dir", 1, NULL, 'd'},
		{"files", 1, NULL, 'n'},
		{"depth", 1, NULL, 'D'},
		{"ds", 1, NULL, 'k'},
		{"seconds", 1, NULL, 's'},
		{"max-rounds", 1, NULL, 'r'},
		{"archives", 1, NULL, 'a'},
		{"step", 1, NULL, 'S'},
		{"heartbeat", 1, NULL, 'H'},
		{"interval", 1, NULL, 'i'},
		{"counters-pct", 1, NULL, 'c'},
		{"start", 1, NULL, 't'},
		{"daemon", 1, NULL, 'x'},
		{"daemon-pid", 1, NULL, 'p'},
		{"label", 1, NULL, 'l'},
		{"help", 0, NULL, 'h'},
		{"tree", 1, NULL, 'T'},
		{NULL, 0, NULL, 0},
	};
	int c;

	*o = (struct opts){
		.label = "-",
		.archives = "1m:1d,5m:7d,1h:30d",
		.files = 1000,
		.depth = 1,
		.ds = 1,
		.step_s = 60,
		.heartbeat_s = 600,
		.interval_s = 10,
		.seconds = 10,
		.max_rounds = LONG_MAX,
		.counters_pct = 60,
		.start = 1699999200,
	};
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd': o->dir = optarg; break;
		case 'n': o->files = atol(optarg); break;
		case 'D': o->depth = atoi(optarg); break;
		case 'k': o->ds = atoi(optarg); break;
		case 's': o->seconds = atof(optarg); break;
		case 'r': o->max_rounds = atol(optarg); break;
		case 'a': o->archives = optarg; break;
		case 'S': o->step_s = (uint32_t)atol(optarg); break;
		case 'H': o->heartbeat_s = (uint32_t)atol(optarg); break;
		case 'i': o->interval_s = (uint32_t)atol(optarg); break;
		case 'c': o->counters_pct = atoi(optarg); break;
		case 't': o->start = atol(optarg); break;
		case 'x': o->daemon = optarg; break;
		case 'p': o->daemon_pid = atoi(optarg); break;
		case 'l': o->label = optarg; break;
		case 'T': o->tree = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if ((!o->dir == !o->tree) || (o->tree && o->ds != 1) || o->files < 1 || o->depth < 1 || o->depth > 4096 ||
	    o->ds < 1 || o->ds > 64 || !o->step_s || !o->interval_s ||
	    o->max_rounds < 1) {
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

/* Send one command to rrdcached on its own connection and return the
 * status number of the answer (lines of text follow when > 0); the whole
 * answer goes to out. -errno on failure. librrd 1.7 does not export
 * rrdc_flushall, so FLUSHALL and STATS are spoken here directly. */
static int daemon_cmd(const char *addr, const char *cmd, char *out, size_t outlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t used = 0;
	int fd, status = -EIO;
	long want = -1;

	if (strncmp(addr, "unix:", 5) || strlen(addr + 5) >= sizeof(sa.sun_path))
		return -EINVAL;
	strcpy(sa.sun_path, addr + 5);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd)) {
		status = -errno;
		close(fd);
		return status;
	}
	for (;;) {
		ssize_t n = read(fd, out + used, outlen - 1 - used);
		long lines = 0;
		if (n <= 0)
			break;
		used += (size_t)n;
		out[used] = '\0';
		if (want < 0 && strchr(out, '\n'))
			want = strtol(out, NULL, 10);
		for (char *p = out; (p = strchr(p, '\n')); p++)
			lines++;
		if (want >= 0 && lines >= (want > 0 ? want + 1 : 1)) {
			status = (int)want;
			break;
		}
		if (used + 1 >= outlen)
			break;
	}
	close(fd);
	return status;
}

/* rrdcached's DataSetsWritten counter, or -1. */
static long long daemon_written(const char *addr)
{
	char buf[8192], *p;

	if (daemon_cmd(addr, "STATS\n", buf, sizeof(buf)) <= 0)
		return -1;
	if (!(p = strstr(buf, "DataSetsWritten: ")))
		return -1;
	return strtoll(p + 17, NULL, 10);
}

int main(int argc, char **argv)
{
	struct opts o;
	struct vg_archive arch[VG_MAX_ARCHIVES];
	size_t narch;
	char **paths, **args, *argbuf;
	double *counter, t0, c0, create_s = 0, dc0 = 0, wall, cpu, dcpu = 0;
	double send_s = 0;
	long created = 0, rounds = 0;
	long long written0 = 0;
	time_t last, *lastv;
	int rc;

	if (parse(argc, argv, &o))
		return 2;
	if (o.tree) {
		if (nftw(o.tree, tree_add, 32, FTW_PHYS) || !g_ntree) {
			fprintf(stderr, "rrd_ceiling: no .rrd files under %s\n", o.tree);
			return 1;
		}
		o.files = g_ntree;
	}
	if (vg_config_parse_archives(o.archives, arch, VG_MAX_ARCHIVES, &narch)) {
		fprintf(stderr, "rrd_ceiling: bad --archives '%s'\n", o.archives);
		return 2;
	}
	paths = o.tree ? g_tree : calloc((size_t)o.files, sizeof(*paths));
	lastv = calloc((size_t)o.files, sizeof(*lastv));
	counter = calloc((size_t)o.files * (size_t)o.ds, sizeof(*counter));
	args = calloc((size_t)o.depth, sizeof(*args));
	argbuf = malloc((size_t)o.depth * (size_t)(ARG_MAX_LEN * (o.ds + 1)));
	if (!paths || !lastv || !counter || !args || !argbuf)
		return 1;
	for (int d = 0; d < o.depth; d++)
		args[d] = argbuf + (size_t)d * (size_t)(ARG_MAX_LEN * (o.ds + 1));

	/* Create what is missing (timed apart from the updates). */
	t0 = (vg_monotonic_ns() / 1e9);
	for (long f = 0; f < o.files && !o.tree; f++) {
		char p[PATH_MAX];
		struct stat st;

		snprintf(p, sizeof(p), "%s/r%06ld", o.dir, f / FILES_PER_DIR);
		if (f % FILES_PER_DIR == 0 && (rc = vg_fs_mkdir_p(p, 0755))) {
			fprintf(stderr, "rrd_ceiling: mkdir %s: %s\n", p, strerror(-rc));
			return 1;
		}
		snprintf(p, sizeof(p), "%s/r%06ld/f%02ld.rrd", o.dir,
			 f / FILES_PER_DIR, f % FILES_PER_DIR);
		if (!(paths[f] = strdup(p)))
			return 1;
		if (stat(p, &st) == 0)
			continue;
		if (create_one(&o, arch, narch, p, f))
			return 1;
		created++;
	}
	create_s = (vg_monotonic_ns() / 1e9) - t0;

	/* Continue after each file's last update (in --dir mode they are all
	 * the same: read the first only). */
	last = 0;
	for (long f = 0; f < o.files; f++) {
		if (f && !o.tree) {
			lastv[f] = lastv[0];
			continue;
		}
		rrd_clear_error();
		lastv[f] = rrd_last_r(paths[f]);
		if (lastv[f] <= 0) {
			fprintf(stderr, "rrd_ceiling: %s: %s\n", paths[f], rrd_get_error());
			return 1;
		}
	}
	/* Counters continue from a value that keeps the rate positive (in
	 * --tree mode every file is fed a growing value: a rate for DDERIVE,
	 * a level for GAUGE; the cost is the same). */
	for (long f = 0; f < o.files; f++)
		for (int k = 0; k < o.ds; k++)
			counter[(size_t)f * (size_t)o.ds + (size_t)k] =
				(o.tree ? 1e12 : 0) + (double)lastv[f] * (double)(1 + (f + k) % 50);

	if (o.daemon) {
		rrd_clear_error();
		if (rrdc_connect(o.daemon)) {
			fprintf(stderr, "rrd_ceiling: cannot connect to %s: %s\n",
				o.daemon, rrd_get_error());
			return 1;
		}
		written0 = daemon_written(o.daemon);
		if (o.daemon_pid)
			dc0 = bench_proc_cpu_s(o.daemon_pid, NULL);
	}

	t0 = (vg_monotonic_ns() / 1e9);
	c0 = bench_self_cpu_s();
	while (rounds < o.max_rounds) {
		for (long f = 0; f < o.files; f++) {
			int counter_file = o.tree || is_counter(&o, f);
			double *cv = &counter[(size_t)f * (size_t)o.ds];

			for (int d = 0; d < o.depth; d++) {
				long t = (long)lastv[f] + (long)o.interval_s * (d + 1);
				char *p = args[d];
				int n = snprintf(p, ARG_MAX_LEN, "%ld", t);
				for (int k = 0; k < o.ds; k++) {
					double v;
					if (counter_file) {
						cv[k] += (double)o.interval_s *
							 (double)(1 + (f + k) % 50);
						v = cv[k];
					} else {
						v = (double)((f * 7 + k + t / 60) % 1000);
					}
					n += snprintf(p + n, ARG_MAX_LEN, ":%.17g", v);
				}
			}
			rrd_clear_error();
			if (o.daemon)
				rc = rrdc_update(paths[f], o.depth, (const char *const *)args);
			else
				rc = rrd_update_r(paths[f], NULL, o.depth,
						  (const char **)args);
			if (rc) {
				fprintf(stderr, "rrd_ceiling: update %s: %s\n",
					paths[f], rrd_get_error());
				return 1;
			}
			lastv[f] += (time_t)o.interval_s * o.depth;
		}
		rounds++;
		if ((vg_monotonic_ns() / 1e9) - t0 >= o.seconds)
			break;
	}
	send_s = (vg_monotonic_ns() / 1e9) - t0;
	if (o.daemon) {
		long long want = written0 + (long long)rounds * o.files * o.depth, got;
		double deadline = (vg_monotonic_ns() / 1e9) + 600;

		char ans[256];

		if (daemon_cmd(o.daemon, "FLUSHALL\n", ans, sizeof(ans)) < 0) {
			fprintf(stderr, "rrd_ceiling: FLUSHALL failed\n");
			return 1;
		}
		while ((got = daemon_written(o.daemon)) < want && (vg_monotonic_ns() / 1e9) < deadline)
			usleep(20000);
		if (got < want) {
			fprintf(stderr, "rrd_ceiling: rrdcached wrote %lld of %lld\n",
				got - written0, want - written0);
			return 1;
		}
		if (o.daemon_pid)
			dcpu = bench_proc_cpu_s(o.daemon_pid, NULL) - dc0;
		rrdc_disconnect();
	}
	wall = (vg_monotonic_ns() / 1e9) - t0;
	cpu = bench_self_cpu_s() - c0;
	last = lastv[0];

	double values = (double)rounds * (double)o.files * o.depth * o.ds;
	printf("RESULT ceiling label=%s files=%ld ds=%d depth=%d rounds=%ld "
	       "values=%.0f created=%ld create_s=%.2f wall_s=%.3f send_s=%.3f "
	       "values_per_s=%.0f flush_values_per_s=%.0f cpu_s=%.3f "
	       "daemon_cpu_s=%.3f us_cpu_per_value=%.3f last=%ld\n",
	       o.label, o.files, o.ds, o.depth, rounds, values, created, create_s,
	       wall, send_s, values / wall,
	       o.daemon && wall > send_s ? values / (wall - send_s) : 0.0, cpu, dcpu,
	       (cpu + dcpu) * 1e6 / values, (long)last);
	for (long f = 0; f < o.files; f++)
		free(paths[f]);
	free(paths);
	free(lastv);
	free(counter);
	free(args);
	free(argbuf);
	return 0;
}
