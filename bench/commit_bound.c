/*
 * commit_bound.c — the cost of bounding the receiver's commit by the
 * batch deadline (collector/registry.c "Commits bounded by the
 * deadline") on PostgreSQL: the same commits with no deadline (one
 * autocommit statement) and with one (BEGIN, SET LOCAL
 * statement_timeout, the statement and COMMIT, sent together), in
 * alternated rounds (B A B A ...), so that the machine's load falls on
 * both alike.
 *
 * Per round, HOSTS hosts of one stream each, ROUNDS_N commits per host:
 *   group  vg_registry_commit_group of the HOSTS batches at once (one
 *          multi-row statement: the receiver's group commit)
 *   single each host's batch alone after its duplicate check (the ACK
 *          alone: a receiver turn of one batch)
 * Reported per mode: commits/s (wall clock), and CPU per commit in
 * microseconds of this process and of the registry's PostgreSQL
 * backends (application_name vigie, /proc/<pid>/stat).
 *
 * Usage: commit_bound [--commits N] [--rounds R] [--dir DIR]
 * (default 2000 per host and mode and round, 6 rounds, /var/tmp).
 * Prints "RESULT commit_bound path=... bounded=0|1 round=... commits=...
 * commits_per_s=... client_us=... server_us=..." lines. The server runs
 * with PostgreSQL's durable defaults.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tests/unit/pg_harness.h"
#include "bench_cpu.h"
#include "vigie/clock.h"
#include "vigie/db.h"
#include "vigie/registry.h"

#define HOSTS 16

static char hosts[HOSTS][16];

/* utime + stime of the registry's backends, in seconds */
static double backends_cpu(struct vg_db *obs)
{
	struct vg_db_stmt *s;
	double sum = 0;

	if (vg_db_prepare(obs, "SELECT pid FROM pg_stat_activity WHERE application_name = "
			       "'vigie' AND pid <> pg_backend_pid()",
			  &s))
		return 0;
	while (vg_db_step(s) == 1)
		sum += bench_proc_cpu_or0(vg_db_column_int64(s, 0));
	vg_db_reset(s);
	return sum;
}

static int run_mode(struct vg_registry *r, struct vg_db *obs, int group, int bounded,
		    int round, int n, uint64_t *seq)
{
	struct vg_registry_mark mk[HOSTS];
	int rcs[HOSTS], commits = 0;
	double t0 = bench_now_s(), c0 = bench_self_cpu_s(), s0 = backends_cpu(obs);

	for (int i = 0; i < n; i++) {
		++*seq;
		int64_t dl = bounded ? vg_monotonic_ms() + 3750 : 0;
		for (int h = 0; h < HOSTS; h++)
			mk[h] = (struct vg_registry_mark){hosts[h], 7, *seq,
							  1700000000000LL + (int64_t)*seq * 10000, 0, dl};
		if (group) {
			if (vg_registry_commit_group(r, mk, HOSTS, rcs))
				return -1;
			for (int h = 0; h < HOSTS; h++)
				if (rcs[h])
					return -1;
			commits += HOSTS;
			continue;
		}
		for (int h = 0; h < HOSTS; h++) {
			if (vg_registry_seen(r, hosts[h], 7, *seq, mk[h].time_ms) ||
			    vg_registry_commit_group(r, &mk[h], 1, rcs) || rcs[0])
				return -1;
			commits++;
		}
	}
	double t = bench_now_s() - t0, c = bench_self_cpu_s() - c0, sv = backends_cpu(obs) - s0;
	printf("RESULT commit_bound path=%s bounded=%d round=%d commits=%d seconds=%.3f "
	       "commits_per_s=%.0f client_us=%.1f server_us=%.1f\n",
	       group ? "group16" : "single", bounded, round, commits, t, commits / t,
	       c * 1e6 / commits, sv * 1e6 / commits);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	const char *parent = "/var/tmp";
	int n = 2000, rounds = 6, rc = 0;
	char url[600], err[256];
	struct hpg_server pg;
	struct vg_registry *r = NULL;
	struct vg_db *obs = NULL;
	uint64_t seq = 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--commits"))
			n = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--rounds"))
			rounds = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--dir"))
			parent = argv[i + 1];
	}
	for (int h = 0; h < HOSTS; h++)
		snprintf(hosts[h], sizeof(hosts[h]), "host%02d", h);
	if ((rc = hpg_start_in(&pg, parent, NULL))) {
		printf("RESULT commit_bound status=SKIP reason=\"%s\"\n", pg.why);
		return rc != -ENOENT && rc != -EPERM;
	}
	if (hpg_createdb(&pg, "bench", url, sizeof(url)) ||
	    vg_registry_open_state(parent, url, &r, err, sizeof(err)) ||
	    vg_db_open(url, NULL, &obs, err, sizeof(err))) {
		fprintf(stderr, "commit_bound: %s %s\n", pg.why, err);
		rc = 1;
	}
	for (int k = 0; !rc && k < rounds; k++)
		for (int group = 0; !rc && group < 2; group++)
			rc = run_mode(r, obs, group, !(k % 2), k, n, &seq);
	if (rc && r)
		fprintf(stderr, "commit_bound: %s\n", vg_registry_last_error(r));
	vg_db_close(obs);
	vg_registry_close(r);
	hpg_cleanup(&pg);
	return rc ? 1 : 0;
}
