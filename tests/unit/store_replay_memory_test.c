/*
 * store_replay_memory_test.c — what a collector's start holds in memory
 * while it replays a journal a kill -9 left (docs/benchmarks.md "The
 * start replay's memory"), with a real rrdcached (the backend whose check
 * keeps every journaled time, backend_rrdcached.c replay_times).
 *
 * Two journals of the same NS series, one NM_SHORT minutes long and one
 * NM_LONG minutes long, each written by a child that kills itself
 * (SIGKILL) once the daemon took every value (write-through, sync_interval
 * 300 s: nothing synced after minute 0, so everything is in the journal),
 * each replayed by a fresh child (vg_store_open) that reports its peak
 * resident memory (VmHWM) before and after the open. What the replay adds
 * beyond the journal's largest segment (read whole into one buffer, a
 * fixed part bounded by the segment size) must grow by less than
 * MAX_BYTES_PER_VALUE per journaled value from one journal to the other:
 * with the times held as int64 arrays (store and backend each a copy),
 * 11 to 16 bytes; packed (timepack.h), 3 to 4. An observable (the
 * kernel's peak of the process), not a timing.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/store.h"
#include "rrdcached_harness.h"

#define T0 1699999980LL
#define NS 1000
#define NM_SHORT 150
#define NM_LONG 750
#define MAX_BYTES_PER_VALUE 8

static void config(struct vg_config *cfg, const struct hrd_daemon *d)
{
	vg_config_defaults(cfg);
	vg_config_parse_archives("1m:1d", cfg->archives, VG_MAX_ARCHIVES, &cfg->narchives);
	snprintf(cfg->storage_backend, sizeof(cfg->storage_backend), "rrdcached");
	snprintf(cfg->storage_daemons, sizeof(cfg->storage_daemons), "%.1000s", d->unix_addr);
	snprintf(cfg->storage_write_through, sizeof(cfg->storage_write_through), "yes");
	cfg->storage_sync_interval_s = 300;
	cfg->storage_cache_values = 65536; /* the replay's cache: the same in both */
}

/* The child: NM minutes of NS series acknowledged, then a kill -9. */
static void writer(const struct vg_config *cfg, const char *data, int nm)
{
	struct vg_store *s;
	struct vg_store_stats st;
	char err[256];

	if (vg_store_open(data, cfg, &s, err, sizeof(err)))
		_exit(2);
	for (int m = 0; m < nm; m++) {
		struct vg_batch *b = vg_batch_new("h", 1, (uint64_t)m + 1, (T0 + 60 * m) * 1000);
		int rc;
		for (int i = 0; b && i < NS; i++) {
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

/* The bytes of DATA/journal's largest file. */
static long long largest_segment(const char *data)
{
	char dir[512], path[1024];
	struct dirent *de;
	struct stat st;
	long long max = 0;
	DIR *dp;

	snprintf(dir, sizeof(dir), "%s/journal", data);
	if (!(dp = opendir(dir)))
		return -1;
	while ((de = readdir(dp)))
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) < (int)sizeof(path) &&
		    !stat(path, &st) && S_ISREG(st.st_mode) && st.st_size > max)
			max = st.st_size;
	closedir(dp);
	return max;
}

/* One journal of NM minutes written and replayed: the bytes the replay's
 * open added to the replaying process's peak, less its largest segment. */
static long long replay_added(int nm)
{
	static const char *const extra[] = {"-O", "-R", NULL};
	struct hrd_daemon d;
	struct vg_config cfg;
	char data[300];
	long long r[2] = {0};
	int fd[2], status = 0;
	pid_t pid;

	assert_int_equal(hrd_start(&d, NULL, extra), 0);
	snprintf(data, sizeof(data), "%s/data", d.dir);
	config(&cfg, &d);
	if ((pid = fork()) == 0)
		writer(&cfg, data, nm);
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	long long seg = largest_segment(data);
	assert_true(seg > 0);
	assert_int_equal(pipe(fd), 0);
	if ((pid = fork()) == 0) { /* a fresh process replays, as a start does */
		struct vg_store *s;
		struct vg_store_stats st;
		char err[256];
		long long out[2];
		long before = status_kb("VmHWM:");
		if (vg_store_open(data, &cfg, &s, err, sizeof(err))) {
			fprintf(stderr, "store: %s\n", err);
			_exit(2);
		}
		out[0] = before;
		out[1] = status_kb("VmHWM:");
		vg_store_get_stats(s, &st);
		vg_store_close(s);
		if (st.values_pending) /* the replay's check left values behind */
			_exit(8);
		_exit(write(fd[1], out, sizeof(out)) == sizeof(out) ? 0 : 7);
	}
	assert_true(pid > 0);
	close(fd[1]);
	assert_int_equal(read(fd[0], r, sizeof(r)), (ssize_t)sizeof(r));
	close(fd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	hrd_cleanup(&d);
	long long added = (r[1] - r[0]) * 1024 - seg;
	printf("# %d minutes x %d series: peak %lld kB -> %lld kB, largest segment %lld "
	       "bytes, added beyond it %lld bytes\n",
	       nm, NS, r[0], r[1], seg, added);
	return added;
}

/* Five times the values in the journal: what the replay holds grows by
 * less than MAX_BYTES_PER_VALUE per value (the times packed), not by the
 * 11 to 16 of int64 arrays. */
static void test_replay_memory_per_value(void **state)
{
	(void)state;
#ifdef __SANITIZE_ADDRESS__
	/* AddressSanitizer's quarantine keeps freed blocks and its shadow
	 * memory grows with every allocation: VmHWM measures the sanitizer,
	 * not the store (406 B per value measured so); the plain build
	 * (make check) runs this test */
	printf("# SKIP peak memory per value: AddressSanitizer's quarantine and "
	       "shadow memory dominate VmHWM (the plain build runs it)\n");
	skip();
#endif
	long long a1 = replay_added(NM_SHORT);
	long long a2 = replay_added(NM_LONG);

	/* every value after minute 0 is journaled (sync_interval 300 s) */
	double per = (double)(a2 - a1) / ((double)NS * (NM_LONG - NM_SHORT));
	printf("# the replay's memory grows by %.2f bytes per journaled value (bound %d)\n", per,
	       MAX_BYTES_PER_VALUE);
	assert_true(per < MAX_BYTES_PER_VALUE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_memory_per_value),
	};
	if (system("command -v rrdcached >/dev/null")) {
		printf("# skipped: rrdcached not installed\n");
		return 0;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
