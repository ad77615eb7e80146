/*
 * rrd_placement_test.c — where the rrdcached backend puts series
 * (collector/backend_rrdcached.c): rendezvous hashing spreads 10,000
 * series evenly over 2 and 3 daemons, a new daemon takes series only for
 * itself, and the owner recorded at create keeps every existing series on
 * its daemon when a daemon is added (real daemons, real files).
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "collector/backend.h"
#include "rrdcached_harness.h"

#define N 10000

/* Each daemon's share of 10,000 series is within 3 % of an even split
 * (three standard deviations of a fair draw), for 2 and 3 daemons. */
static void test_spread(void **state)
{
	const char *addrs[] = {"unix:/run/rrdcached-a.sock", "storage2:42217",
			       "storage3:42217"};
	(void)state;
	for (size_t k = 2; k <= 3; k++) {
		size_t cnt[3] = {0};
		for (int i = 0; i < N; i++) {
			char name[128];
			snprintf(name, sizeof(name), "instance/vm-%05d/%s.rrd", i / 20,
				 (const char *[]){"cpu.time", "mem.used", "net.rx", "net.tx",
						  "disk.read"}[i % 5]);
			/* i / 20 repeats ids with different metrics: not 10,000 */
			snprintf(name + strlen(name), sizeof(name) - strlen(name), ".%d", i);
			cnt[vg_rrd_rendezvous(name, addrs, k)]++;
		}
		for (size_t d = 0; d < k; d++) {
			double share = (double)cnt[d] / N, even = 1.0 / (double)k;
			fprintf(stderr, "# %zu daemons: daemon %zu has %zu\n", k, d, cnt[d]);
			assert_true(share > even * 0.97 && share < even * 1.03);
		}
	}
}

/* A third daemon takes names from the other two, never moves a name
 * between them: every name keeps its owner or goes to the new one. */
static void test_new_daemon_takes_only_for_itself(void **state)
{
	const char *addrs[] = {"10.0.0.1:42217", "10.0.0.2:42217", "10.0.0.3:42217"};
	size_t moved = 0;

	(void)state;
	for (int i = 0; i < N; i++) {
		char name[64];
		snprintf(name, sizeof(name), "host/node%d/load.1.rrd", i);
		size_t before = vg_rrd_rendezvous(name, addrs, 2),
		       after = vg_rrd_rendezvous(name, addrs, 3);
		assert_true(after == before || after == 2);
		moved += after == 2;
	}
	assert_true(moved > N / 3 * 0.9 && moved < N / 3 * 1.1);
}

/* Series created on two daemons stay where they are after a third is
 * added (the owners record), and new series reach the third. */
static void test_adding_a_daemon_moves_nothing(void **state)
{
	static const char *const extra[] = {"-O", "-R", NULL};
	struct hrd_daemon d[3];
	struct vg_archive archives[VG_MAX_ARCHIVES];
	struct vg_rrd_layout lay = {.step_s = 60, .heartbeat_s = 600, .archives = archives};
	char dir[] = "/tmp/vigie-placement-test.XXXXXX", owners[128], list[3 * PATH_MAX + 64], err[256];
	struct vg_rrd_backend *be;
	uint32_t owner_of[200];
	size_t on_new = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(owners, sizeof(owners), "%s/owners", dir);
	assert_int_equal(vg_config_parse_archives("1m:1h", archives, VG_MAX_ARCHIVES,
						  &lay.narchives),
			 0);
	for (int k = 0; k < 3; k++)
		assert_int_equal(hrd_start(&d[k], NULL, extra), 0);

	snprintf(list, sizeof(list), "%s, %s", d[0].unix_addr, d[1].tcp_addr);
	assert_int_equal(vg_rrd_rrdcached_open(list, NULL, owners, &be, err, sizeof(err)), 0);
	for (int i = 0; i < 200; i++) {
		struct vg_rrd_loc loc;
		char id[32], msg[256];
		snprintf(id, sizeof(id), "node%d", i);
		assert_int_equal(be->ops->locate(be, VG_RT_HOST, id, "load.1", &loc), 0);
		assert_int_equal(be->ops->create(be, &loc, VG_KIND_GAUGE, 1700000000000LL, &lay,
						 msg, sizeof(msg), 0),
				 0);
		owner_of[i] = loc.owner;
	}
	assert_int_equal(be->ops->sync(be), 0);
	be->ops->close(be);

	/* the third daemon first in the list: indexes shift, owners must not */
	snprintf(list, sizeof(list), "%s,%s, %s", d[2].unix_addr, d[0].unix_addr, d[1].tcp_addr);
	assert_int_equal(vg_rrd_rrdcached_open(list, NULL, owners, &be, err, sizeof(err)), 0);
	for (int i = 0; i < 200; i++) {
		struct vg_rrd_loc loc;
		char id[32], path[PATH_MAX * 2];
		struct stat st;
		int64_t last;
		snprintf(id, sizeof(id), "node%d", i);
		assert_int_equal(be->ops->locate(be, VG_RT_HOST, id, "load.1", &loc), 0);
		assert_int_equal(loc.owner, owner_of[i] + 1);
		assert_int_equal(be->ops->last_ms(be, &loc, &last, 0), 0);
		snprintf(path, sizeof(path), "%s/%s", d[owner_of[i]].base, loc.path);
		assert_int_equal(stat(path, &st), 0);
	}
	for (int i = 0; i < 300; i++) {
		struct vg_rrd_loc loc;
		char id[32];
		snprintf(id, sizeof(id), "new%d", i);
		assert_int_equal(be->ops->locate(be, VG_RT_HOST, id, "load.1", &loc), 0);
		on_new += loc.owner == 0;
	}
	assert_true(on_new > 50 && on_new < 150); /* about a third */
	be->ops->close(be);
	for (int k = 0; k < 3; k++)
		hrd_cleanup(&d[k]);
	unlink(owners);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spread),
		cmocka_unit_test(test_new_daemon_takes_only_for_itself),
		cmocka_unit_test(test_adding_a_daemon_moves_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
