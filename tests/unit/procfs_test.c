/*
 * procfs_test.c — the /proc parsers on fixture files
 * (tests/fixtures/proc/t0) and on hostile or truncated text.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/procfs.h"

#define T0 "tests/fixtures/proc/t0"

static struct vg_procfs_buf buf;

static const char *slurp(const char *root, const char *rel)
{
	assert_int_equal(vg_procfs_read(root, rel, &buf), 0);
	return buf.data;
}

static void test_read_missing(void **state)
{
	assert_int_equal(vg_procfs_read(T0, "no-such-file", &buf), -ENOENT);
	assert_int_equal(vg_procfs_read("/nonexistent-root", "stat", &buf), -ENOENT);
}

static void test_stat(void **state)
{
	struct vg_cpu_times c;

	assert_int_equal(vg_procfs_parse_stat(slurp(T0, "stat"), &c), 0);
	assert_int_equal(c.user, 1000);
	assert_int_equal(c.nice, 100);
	assert_int_equal(c.system, 500);
	assert_int_equal(c.idle, 8000);
	assert_int_equal(c.iowait, 200);
	assert_int_equal(c.irq, 50);
	assert_int_equal(c.softirq, 50);
	assert_int_equal(c.steal, 100);
	assert_int_equal(c.ncpus, 2);
	/* old kernel: only 4 fields */
	assert_int_equal(vg_procfs_parse_stat("cpu  1 2 3 4\ncpu0 1 2 3 4\n", &c), 0);
	assert_int_equal(c.idle, 4);
	assert_int_equal(c.steal, 0);
	assert_int_equal(vg_procfs_parse_stat("cpu  1 2 3\n", &c), -EBADMSG);
	assert_int_equal(vg_procfs_parse_stat("intr 5\n", &c), -EBADMSG);
	assert_int_equal(vg_procfs_parse_stat("", &c), -EBADMSG);
	assert_int_equal(vg_procfs_parse_stat("cpu  x y z w\n", &c), -EBADMSG);
}

static void test_meminfo(void **state)
{
	struct vg_meminfo m;

	assert_int_equal(vg_procfs_parse_meminfo(slurp(T0, "meminfo"), &m), 0);
	assert_true(m.total == 8000000ull * 1024);
	assert_true(m.free == 1000000ull * 1024);
	assert_true(m.available == 5000000ull * 1024);
	assert_true(m.buffers == 200000ull * 1024);
	assert_true(m.cached == 3000000ull * 1024); /* not SwapCached */
	assert_true(m.swap_total == 2000000ull * 1024);
	assert_true(m.swap_free == 1500000ull * 1024);
	assert_int_equal(m.has_available, 1);
	/* no MemAvailable (old kernel): estimated */
	assert_int_equal(vg_procfs_parse_meminfo("MemTotal: 100 kB\nMemFree: 10 kB\n"
						 "Buffers: 5 kB\nCached: 20 kB\n",
						 &m),
			 0);
	assert_int_equal(m.has_available, 0);
	assert_true(m.available == 35 * 1024);
	assert_int_equal(vg_procfs_parse_meminfo("MemFree: 10 kB\n", &m), -EBADMSG);
	assert_int_equal(vg_procfs_parse_meminfo("MemTotal: lots\nMemFree: 1 kB\n", &m),
			 -EBADMSG);
}

static void test_loadavg(void **state)
{
	double l[3];

	assert_int_equal(vg_procfs_parse_loadavg(slurp(T0, "loadavg"), l), 0);
	assert_true(fabs(l[0] - 0.5) < 1e-12);
	assert_true(fabs(l[1] - 1.25) < 1e-12);
	assert_true(fabs(l[2] - 2.0) < 1e-12);
	assert_int_equal(vg_procfs_parse_loadavg("0.1 0.2\n", l), -EBADMSG);
	assert_int_equal(vg_procfs_parse_loadavg("-1 0.2 0.3\n", l), -EBADMSG);
}

static const struct vg_diskstat *find(const struct vg_diskstat *d, size_t n,
				      const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(d[i].name, name))
			return &d[i];
	return NULL;
}

static void test_diskstats(void **state)
{
	struct vg_diskstat *d = NULL;
	size_t n = 0;

	assert_int_equal(vg_procfs_parse_diskstats(slurp(T0, "diskstats"), &d, &n), 0);
	assert_int_equal(n, 8);
	const struct vg_diskstat *sda = find(d, n, "sda");
	assert_non_null(sda);
	assert_int_equal(sda->major, 8);
	assert_int_equal(sda->minor, 0);
	assert_int_equal(sda->rd_ios, 1000);
	assert_int_equal(sda->rd_sectors, 80000);
	assert_int_equal(sda->rd_ms, 2000);
	assert_int_equal(sda->wr_ios, 500);
	assert_int_equal(sda->wr_ms, 3000);
	assert_int_equal(sda->in_flight, 2);
	assert_int_equal(sda->io_ms, 4000);
	assert_int_equal(sda->weighted_ms, 6000);
	assert_int_equal(sda->fl_ios, 100);
	assert_int_equal(sda->fl_ms, 50);
	assert_int_equal(sda->nfields, 17);
	assert_false(sda->partition);
	assert_false(sda->ignored);
	/* partitions and ignored devices */
	assert_true(find(d, n, "sda1")->partition);
	assert_true(find(d, n, "nvme0n1p1")->partition);
	assert_false(find(d, n, "nvme0n1")->partition);
	assert_true(find(d, n, "loop0")->ignored);
	assert_true(find(d, n, "ram0")->ignored);
	/* dm-10 is not a partition of dm-0... nor of a "dm-1" */
	assert_false(find(d, n, "dm-10")->partition);
	/* an old kernel's 11-field line */
	const struct vg_diskstat *dm = find(d, n, "dm-0");
	assert_int_equal(dm->nfields, 11);
	assert_int_equal(dm->weighted_ms, 1000);
	assert_int_equal(dm->fl_ios, 0);
	free(d);

	/* malformed lines are skipped, not read past */
	assert_int_equal(vg_procfs_parse_diskstats("8 0 sda 1 2 3\n"
						   "garbage\n"
						   "8 16 sdb 1 2 3 4 5 6 7 8 9 10 11\n",
						   &d, &n),
			 0);
	assert_int_equal(n, 1);
	assert_string_equal(d[0].name, "sdb");
	free(d);
	assert_int_equal(vg_procfs_parse_diskstats("", &d, &n), 0);
	assert_int_equal(n, 0);
	free(d);
	/* dm-1 then dm-10: both whole devices; vda then vda1: partition */
	assert_int_equal(vg_procfs_parse_diskstats(
				 "253 1 dm-1 1 2 3 4 5 6 7 8 9 10 11\n"
				 "253 10 dm-10 1 2 3 4 5 6 7 8 9 10 11\n"
				 "252 0 vda 1 2 3 4 5 6 7 8 9 10 11\n"
				 "252 1 vda1 1 2 3 4 5 6 7 8 9 10 11\n"
				 "252 16 vdab 1 2 3 4 5 6 7 8 9 10 11\n",
				 &d, &n),
			 0);
	assert_int_equal(n, 5);
	assert_false(d[1].partition);
	assert_true(d[3].partition);
	assert_false(d[4].partition);
	free(d);
}

static void test_netdev(void **state)
{
	struct vg_netdev *d = NULL;
	size_t n = 0;

	assert_int_equal(vg_procfs_parse_netdev(slurp(T0, "net/dev"), &d, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(d[0].name, "lo");
	assert_string_equal(d[1].name, "eth0");
	assert_int_equal(d[1].rx_bytes, 123456789);
	assert_int_equal(d[1].rx_packets, 100000);
	assert_int_equal(d[1].rx_errs, 1);
	assert_int_equal(d[1].rx_drop, 2);
	assert_int_equal(d[1].tx_bytes, 987654321);
	assert_int_equal(d[1].tx_packets, 90000);
	assert_int_equal(d[1].tx_errs, 3);
	assert_int_equal(d[1].tx_drop, 4);
	assert_string_equal(d[2].name, "tap1");
	free(d);
	assert_int_equal(vg_procfs_parse_netdev("eth0: 1 2 3\n", &d, &n), -EBADMSG);
	/* a truncated line is skipped */
	assert_int_equal(vg_procfs_parse_netdev("Inter-| Receive | Transmit\n x\n"
						"eth0: 1 2 3\n",
						&d, &n),
			 0);
	assert_int_equal(n, 0);
	free(d);
}

static void test_pid(void **state)
{
	struct vg_pidstat s;
	struct vg_pidio io;

	assert_int_equal(vg_procfs_parse_pidstat(slurp(T0, "4242/stat"), &s), 0);
	assert_string_equal(s.comm, "qemu-system-x86");
	assert_int_equal(s.state, 'S');
	assert_int_equal(s.utime_ticks, 500);
	assert_int_equal(s.stime_ticks, 250);
	assert_int_equal(s.threads, 5);
	assert_int_equal(s.rss_pages, 2560);
	/* a comm with spaces and parentheses */
	assert_int_equal(vg_procfs_parse_pidstat(
				 "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 11 22 0 0 20 0 3 0 9 100 44\n", &s),
			 0);
	assert_string_equal(s.comm, "a) b (c)");
	assert_int_equal(s.utime_ticks, 11);
	assert_int_equal(s.stime_ticks, 22);
	assert_int_equal(s.threads, 3);
	assert_int_equal(s.rss_pages, 44);
	assert_int_equal(vg_procfs_parse_pidstat("7 (x) R 1 2 3\n", &s), -EBADMSG);
	assert_int_equal(vg_procfs_parse_pidstat("no parens", &s), -EBADMSG);

	assert_int_equal(vg_procfs_parse_pidio(slurp(T0, "4242/io"), &io), 0);
	assert_int_equal(io.rchar, 1000);
	assert_int_equal(io.wchar, 2000);
	assert_int_equal(io.syscr, 30);
	assert_int_equal(io.syscw, 40);
	assert_int_equal(io.read_bytes, 4096);
	assert_int_equal(io.write_bytes, 8192);
	assert_int_equal(vg_procfs_parse_pidio("rchar: 5\n", &io), -EBADMSG);
}

static int teardown(void **state)
{
	vg_procfs_buf_free(&buf);
	return 0;
}

static void test_mounts(void **state)
{
	const char *text =
		"proc /proc proc rw 0 0\n"
		"/dev/sda1 / ext4 rw 0 0\n"
		"/dev/sdb1 /srv/with\\040space xfs rw 0 0\n"
		"tmpfs /run tmpfs rw 0 0\n"
		"short-line\n"
		"/dev/sdc1 /data ext4 rw 0 0\n"
		"/dev/sdd1 /data xfs rw 0 0\n"
		"srv:/x /mnt/n nfs4 rw 0 0\n";
	struct vg_mount *m;
	size_t n;

	(void)state;
	assert_int_equal(vg_procfs_parse_mounts(text, &m, &n), 0);
	assert_int_equal(n, 6); /* short line dropped, /data once */
	assert_string_equal(m[0].dir, "/proc");
	assert_true(m[0].pseudo);
	assert_string_equal(m[1].dev, "/dev/sda1");
	assert_false(m[1].pseudo);
	assert_string_equal(m[2].dir, "/srv/with space");
	assert_string_equal(m[4].dir, "/data");
	assert_string_equal(m[4].type, "xfs"); /* the visible (last) mount */
	assert_true(m[5].pseudo);              /* network: skipped by default */

	/* defaults: real local file systems only */
	assert_false(vg_procfs_fs_selected(&m[0], NULL, NULL));
	assert_true(vg_procfs_fs_selected(&m[1], NULL, NULL));
	assert_false(vg_procfs_fs_selected(&m[3], "", ""));
	assert_false(vg_procfs_fs_selected(&m[5], NULL, NULL));
	/* exclude by mount pattern or type; it wins over include */
	assert_false(vg_procfs_fs_selected(&m[2], NULL, "/srv/*"));
	assert_false(vg_procfs_fs_selected(&m[4], NULL, "ext4, xfs"));
	assert_true(vg_procfs_fs_selected(&m[1], NULL, "xfs"));
	assert_false(vg_procfs_fs_selected(&m[1], "/", "/"));
	/* include: only what matches, pseudo or network ones too */
	assert_false(vg_procfs_fs_selected(&m[1], "/data,tmpfs", NULL));
	assert_true(vg_procfs_fs_selected(&m[4], "/data,tmpfs", NULL));
	assert_true(vg_procfs_fs_selected(&m[3], "/data, tmpfs", NULL));
	assert_true(vg_procfs_fs_selected(&m[5], "nfs4", NULL));
	free(m);

	/* every FUSE file system is skipped by default (a user-space daemon
	 * answers statvfs; ceph-fuse, s3fs or rclone block while their
	 * server is away and stalled the host poll), unless named;
	 * fuseblk (a local block device) is polled */
	text = "ceph-fuse /var/lib/nova/instances fuse.ceph-fuse rw 0 0\n"
	       "s3fs /mnt/s3 fuse.s3fs rw 0 0\n"
	       "rclone: /mnt/r fuse.rclone rw 0 0\n"
	       "x /mnt/f fuse rw 0 0\n"
	       "/dev/sde1 /mnt/ntfs fuseblk rw 0 0\n";
	assert_int_equal(vg_procfs_parse_mounts(text, &m, &n), 0);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < 4; i++) {
		assert_true(m[i].pseudo);
		assert_false(vg_procfs_fs_selected(&m[i], NULL, NULL));
	}
	assert_true(vg_procfs_fs_selected(&m[0], "fuse.ceph-fuse", NULL));
	assert_true(vg_procfs_fs_selected(&m[1], "/mnt/s3", NULL));
	assert_false(m[4].pseudo);
	assert_true(vg_procfs_fs_selected(&m[4], NULL, NULL));
	free(m);
}

/* A compute node running containers (tests/fixtures/proc/containers):
 * every container, pod and restart mounts a new overlay root, shm, netns,
 * layer or volume, and each one reported was a new host disk resource
 * with six series (~7 MB of RRD files) that filled the collector's disk.
 * Only the host's own disks are reported by default; an include brings a
 * container mount back by its mount point, not by its type. */
static void test_mounts_containers(void **state)
{
	static const char *const host[] = {"/", "/boot", "/var/lib/docker",
					   "/var/lib/kubelet"};
	struct vg_mount *m;
	size_t n, k = 0;

	(void)state;
	assert_int_equal(vg_procfs_parse_mounts(slurp("tests/fixtures/proc/containers",
						      "self/mounts"),
						&m, &n),
			 0);
	assert_int_equal(n, 18);
	for (size_t i = 0; i < n; i++) {
		if (!vg_procfs_fs_selected(&m[i], NULL, NULL))
			continue;
		assert_true(k < 4);
		assert_string_equal(m[i].dir, host[k]);
		k++;
	}
	assert_int_equal(k, 4);
	/* the runtimes' directories themselves are the host's disks */
	assert_false(vg_procfs_container_dir("/var/lib/docker"));
	assert_false(vg_procfs_container_dir("/var/lib/kubelet"));
	assert_false(vg_procfs_container_dir("/var/lib/dockerd/x"));
	assert_true(vg_procfs_container_dir("/var/lib/docker/overlay2/x/merged"));
	assert_true(m[4].container && m[4].pseudo);    /* overlay under docker */
	assert_true(m[12].container && !m[12].pseudo); /* ext4 bind into a pod */
	assert_false(m[17].container);                 /* /srv/live */
	assert_true(m[17].pseudo);                     /* overlay */

	/* include by type: the host's xfs and ext4 disks, no container's
	 * devicemapper layer, pod volume or CSI mount of that type */
	for (size_t i = 0; i < n; i++)
		if (m[i].container)
			assert_false(vg_procfs_fs_selected(&m[i], "xfs,ext4", NULL));
	assert_true(vg_procfs_fs_selected(&m[2], "xfs,ext4", NULL));
	assert_true(vg_procfs_fs_selected(&m[1], "xfs,ext4", NULL));
	/* "overlay" brings back an overlay outside the runtimes only */
	assert_true(vg_procfs_fs_selected(&m[17], "overlay", NULL));
	assert_false(vg_procfs_fs_selected(&m[4], "overlay", NULL));
	/* by mount point: the operator asked for them */
	assert_true(vg_procfs_fs_selected(&m[13], "/var/lib/kubelet/pods/*", NULL));
	assert_true(vg_procfs_fs_selected(&m[4], "/var/lib/docker/*", NULL));
	assert_false(vg_procfs_fs_selected(&m[4], "/var/lib/docker/*",
					   "/var/lib/docker/overlay2/*"));
	free(m);
}

/* A Kubernetes node's thousands of mounts (a generated mounts file in a
 * temporary proc root), many listed again: each mount point is kept once,
 * where it was first listed, with its last line (the visible mount), as
 * the reference below computes the slow way. The de-duplication was a
 * comparison with every earlier mount point (O(n^2) a poll); this checks
 * that the hashed one keeps its result. */
static void test_mounts_many(void **state)
{
	enum { LINES = 6000 };
	char root[] = "/tmp/vigie-procfs-XXXXXX", path[128];
	static char dev[LINES][32], dir[LINES][96];
	static size_t first[LINES], last[LINES];
	size_t ndirs = 0, k = 0;
	struct vg_mount *m;
	size_t n;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(root));
	snprintf(path, sizeof(path), "%s/self", root);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/self/mounts", root);
	assert_non_null(f = fopen(path, "w"));
	for (size_t i = 0; i < LINES; i++) {
		/* every 5th line mounts again on a mount point listed earlier
		 * (the one 3·i/5 lines back, itself maybe listed twice) */
		size_t d = i % 5 == 4 ? (i * 3 / 5) % ndirs : ndirs;
		if (d == ndirs) {
			snprintf(dir[d], sizeof(dir[d]),
				 "/var/lib/kubelet/pods/%05zu/volumes/kubernetes.io~csi/pv/mount", d);
			first[d] = i;
			ndirs++;
		}
		snprintf(dev[i], sizeof(dev[i]), "/dev/rbd%zu", i);
		last[d] = i;
		fprintf(f, "%s %s ext4 rw,relatime 0 0\n", dev[i], dir[d]);
	}
	fprintf(f, "short-line\n");
	assert_int_equal(fclose(f), 0);

	assert_int_equal(vg_procfs_parse_mounts(slurp(root, "self/mounts"), &m, &n), 0);
	/* removed before any check can fail */
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/self", root);
	assert_int_equal(rmdir(path), 0);
	assert_int_equal(rmdir(root), 0);
	assert_true(ndirs > 4000 && ndirs < LINES);
	assert_int_equal(n, ndirs);
	/* in first-listed order (mount point d was first listed before
	 * d + 1), each with its last line's device */
	for (size_t d = 0; d < n; d++) {
		assert_string_equal(m[d].dir, dir[d]);
		assert_string_equal(m[d].dev, dev[last[d]]);
		assert_true(m[d].container);
		if (last[d] != first[d])
			k++;
	}
	assert_true(k > 1000); /* that many were listed again */
	free(m);
}

/* Used blocks never wrap: a file system reporting more free than total
 * (a FUSE or network server may) is 0 used, not ~1.8e19 blocks. */
static void test_fs_used(void **state)
{
	(void)state;
	assert_true(vg_procfs_fs_used(1000, 250) == 750);
	assert_true(vg_procfs_fs_used(1000, 1000) == 0);
	assert_true(vg_procfs_fs_used(1000, 1001) == 0);
	assert_true(vg_procfs_fs_used(0, UINT64_MAX) == 0);
	assert_true(vg_procfs_fs_used(UINT64_MAX, 0) == UINT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_missing),
		cmocka_unit_test(test_stat),
		cmocka_unit_test(test_meminfo),
		cmocka_unit_test(test_loadavg),
		cmocka_unit_test(test_diskstats),
		cmocka_unit_test(test_netdev),
		cmocka_unit_test(test_pid),
		cmocka_unit_test(test_mounts),
		cmocka_unit_test(test_mounts_containers),
		cmocka_unit_test(test_mounts_many),
		cmocka_unit_test(test_fs_used),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
