/*
 * libvirt_test.c — the libvirt source and the poller against libvirt's
 * test driver: test:///default (bulk stats give only "state", so every
 * value comes from the per-domain fallback calls), a custom node with
 * three domains and Nova / vigie / no metadata
 * (tests/fixtures/node-nova.xml), and an unreachable URI (back-off, one
 * GAP event). /proc comes from tests/fixtures/proc/t0 and t1.
 * Run from the repository root.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>
#include <libvirt/libvirt.h>

#include "agent/libvirt.h"
#include "agent/poll.h"
#include "vigie/batch.h"
#include "vigie/catalog.h"

#include "../support/tmpdir.h"

#define TEST_UUID "6695eb01-f6a4-8304-79aa-97f2502e193f"
#define WEB1 "11111111-2222-3333-4444-555555555501"
#define DB1 "11111111-2222-3333-4444-555555555502"
#define IDLE1 "11111111-2222-3333-4444-555555555503"
#define T0_MS 1795000000000LL

static char tmp[64], proc_link[128], fixtures[PATH_MAX];

/* tmp/proc is a symlink to a fixture tree, so a test can switch it. */
static void point_proc(const char *which)
{
	char target[PATH_MAX + 32];

	snprintf(target, sizeof(target), "%s/proc/%s", fixtures, which);
	unlink(proc_link);
	assert_int_equal(symlink(target, proc_link), 0);
}

static int setup(void **state)
{
	assert_non_null(realpath("tests/fixtures", fixtures));
	strcpy(tmp, "/tmp/vigie-libvirt-test-XXXXXX");
	assert_non_null(mkdtemp(tmp));
	snprintf(proc_link, sizeof(proc_link), "%s/proc", tmp);
	point_proc("t0");
	return 0;
}

static int teardown(void **state)
{
	fx_rm_tree(tmp);
	return 0;
}

static const struct vg_resource *find_res(const struct vg_batch *b, const char *id)
{
	for (size_t i = 0; i < b->nres; i++)
		if (!strcmp(b->res[i].id, id))
			return &b->res[i];
	return NULL;
}

static int sample_of(const struct vg_batch *b, const struct vg_resource *r,
		     const char *metric, double *v)
{
	const struct vg_sample *s = vg_resource_samples(b, r);

	for (uint32_t i = 0; i < r->nsamples; i++)
		if (!strcmp(s[i].metric, metric)) {
			if (v)
				*v = s[i].value;
			return 1;
		}
	return 0;
}

static double must(const struct vg_batch *b, const struct vg_resource *r,
		   const char *metric)
{
	double v = NAN;

	if (!sample_of(b, r, metric, &v))
		fail_msg("%s has no %s", r->id, metric);
	return v;
}

static const char *attr_of(const struct vg_batch *b, const struct vg_resource *r,
			   const char *key)
{
	const struct vg_attr *a = vg_resource_attrs(b, r);

	for (uint32_t i = 0; i < r->nattrs; i++)
		if (!strcmp(a[i].key, key))
			return a[i].value;
	return NULL;
}

static size_t count_events(const struct vg_batch *b, const char *res, int type)
{
	size_t n = 0;

	for (size_t i = 0; i < b->nevents; i++)
		if (b->events[i].type == type && (!res || !strcmp(b->events[i].resource, res)))
			n++;
	return n;
}

/* Every sample's metric is in the catalogue with the same kind. */
static void check_catalogue(const struct vg_batch *b)
{
	for (size_t i = 0; i < b->nres; i++) {
		const struct vg_resource *r = &b->res[i];
		const struct vg_sample *s = vg_resource_samples(b, r);

		for (uint32_t k = 0; k < r->nsamples; k++) {
			const struct vg_metric_def *d = vg_catalog_find(r->type, s[k].metric);
			if (!d)
				fail_msg("%s (%s) not in the catalogue", s[k].metric,
					 vg_rtype_name(r->type));
			assert_int_equal(d->kind, s[k].kind);
			assert_true(isfinite(s[k].value));
		}
	}
}

static void test_default_fallback(void **state)
{
	struct vg_lv_opts o = {.uri = "test:///default"};
	struct vg_lv *lv;
	struct vg_lv_snapshot snap = {0};

	assert_int_equal(vg_lv_new(&o, &lv), 0);
	assert_false(vg_lv_connected(lv));
	assert_int_equal(vg_lv_poll(lv, &snap), 0);
	assert_true(vg_lv_connected(lv));
	assert_int_equal(snap.ndomains, 1);
	const struct vg_lv_domain *d = &snap.domains[0];
	assert_string_equal(d->uuid, TEST_UUID);
	assert_string_equal(d->name, "test");
	assert_int_equal(d->id, 1);
	assert_int_equal(d->state, 1);
	assert_true(d->active);
	/* the bulk call gave only "state": everything else fell back */
	for (int g = 0; g < VG_LV_NGROUPS; g++)
		assert_int_equal(vg_lv_group_support(lv, g), VG_LV_NO);
	assert_true(isfinite(d->cpu_time_s) && d->cpu_time_s > 0);
	assert_true(d->vcpus == 2);
	assert_true(d->mem_current == 2147483648.0); /* 2097152 KiB */
	assert_true(d->mem_max == 8589934592.0);
	assert_int_equal(d->nvcpu_times, 2);
	assert_true(isfinite(d->vcpu_time_s[0]));
	/* memory stats (virsh dommemstat test): available - unused = 1 GiB */
	assert_true(d->mem_available - d->mem_unused == 1073741824.0);
	assert_true(d->mem_rss == 1073741824.0);
	assert_int_equal(d->ndisks, 1);
	assert_string_equal(d->disks[0].dev, "vda");
	assert_string_equal(d->disks[0].source, "/guest/diskimage1");
	assert_true(isfinite(d->disks[0].rd_reqs) && d->disks[0].rd_reqs > 0);
	assert_true(isfinite(d->disks[0].wr_bytes));
	assert_true(isfinite(d->disks[0].capacity));
	assert_int_equal(d->nnics, 1);
	assert_string_equal(d->nics[0].dev, "testnet0");
	assert_string_equal(d->nics[0].mac, "aa:bb:cc:dd:ee:ff");
	assert_true(isfinite(d->nics[0].rx_bytes) && d->nics[0].rx_bytes > 0);
	assert_true(isfinite(d->nics[0].tx_drop));
	assert_null(d->meta->project);
	double cpu1 = d->cpu_time_s;
	vg_lv_snapshot_clear(&snap);

	/* one connection kept across polls; the test driver's CPU time
	 * follows the wall clock */
	assert_int_equal(vg_lv_poll(lv, &snap), 0);
	assert_true(snap.domains[0].cpu_time_s >= cpu1);
	assert_int_equal(vg_lv_connects(lv), 1);
	vg_lv_snapshot_clear(&snap);
	vg_lv_free(lv);
}

static void test_default_batch(void **state)
{
	struct vg_poller_opts o = {.host = "h1", .libvirt_uri = "test:///default", .proc_root = proc_link};
	struct vg_poller *p;
	struct vg_poll_status st;
	struct vg_batch *b = vg_batch_new("h1", 1, 1, T0_MS);
	double v;

	assert_int_equal(vg_poller_new(&o, &p), 0);
	assert_int_equal(vg_poller_poll(p, T0_MS, NULL, 0, b, &st), 0);
	assert_int_equal(st.libvirt_rc, 0);
	assert_int_equal(st.ndomains, 1);
	assert_int_equal(st.nactive, 1);
	assert_int_equal(st.proc_failed, 0);
	check_catalogue(b);

	const struct vg_resource *r = find_res(b, TEST_UUID);
	assert_non_null(r);
	assert_int_equal(r->type, VG_RT_INSTANCE);
	assert_int_equal(r->state, VG_RSTATE_ACTIVE);
	assert_string_equal(r->name, "test");
	assert_string_equal(r->project, "default");
	assert_true(must(b, r, "cpu.time") > 0);
	assert_true(must(b, r, "memory.size") == 2147483648.0);
	assert_true(must(b, r, "memory.used") == 1073741824.0);
	assert_true(must(b, r, "memory.rss") == 1073741824.0);
	assert_true(must(b, r, "vcpus") == 2);
	assert_true(must(b, r, "power.state") == 1);
	assert_true(sample_of(b, r, "vcpu.1.time", NULL));
	assert_false(sample_of(b, r, "cpu.util", NULL)); /* needs two polls */
	assert_int_equal(count_events(b, TEST_UUID, VG_EV_STARTED), 1);
	assert_string_equal(b->events[0].detail, "{\"initial\":true,\"derived\":true}");

	r = find_res(b, TEST_UUID "-vda");
	assert_non_null(r);
	assert_int_equal(r->type, VG_RT_DISK);
	assert_string_equal(r->parent, TEST_UUID);
	assert_string_equal(r->name, "vda");
	assert_true(must(b, r, "disk.read.requests") > 0);
	assert_true(must(b, r, "disk.read.bytes") > 0);
	assert_true(must(b, r, "disk.write.requests") > 0);
	assert_true(must(b, r, "disk.write.bytes") > 0);
	assert_true(sample_of(b, r, "disk.capacity", NULL));

	r = find_res(b, TEST_UUID "-testnet0");
	assert_non_null(r);
	assert_int_equal(r->type, VG_RT_NIC);
	assert_string_equal(r->parent, TEST_UUID);
	static const char *const net[] = {"net.rx.bytes", "net.rx.packets", "net.tx.bytes",
					  "net.tx.packets", "net.rx.errors", "net.rx.drops", "net.tx.errors", "net.tx.drops"};
	for (size_t i = 0; i < 8; i++)
		assert_true(sample_of(b, r, net[i], NULL));

	r = find_res(b, "h1");
	assert_non_null(r);
	assert_int_equal(r->type, VG_RT_HOST);
	assert_true(must(b, r, "host.memory.total") == 8192000000.0);
	assert_true(must(b, r, "host.memory.used") == 3072000000.0);
	assert_true(must(b, r, "host.memory.cached") == 3072000000.0);
	assert_true(must(b, r, "host.load.5") == 1.25);
	assert_true(must(b, r, "host.instances") == 1);
	assert_false(sample_of(b, r, "host.cpu.user", NULL)); /* needs two polls */
	assert_non_null(find_res(b, "h1-sda"));
	assert_null(find_res(b, "h1-sda1"));
	assert_null(find_res(b, "h1-loop0"));
	assert_non_null(find_res(b, "h1-eth0"));
	assert_null(find_res(b, "h1-lo"));
	vg_batch_free(b);

	/* second poll, 10 s later by the sample clock, /proc at t1 */
	point_proc("t1");
	b = vg_batch_new("h1", 1, 2, T0_MS + 10000);
	assert_int_equal(vg_poller_poll(p, T0_MS + 10000, NULL, 0, b, &st), 0);
	check_catalogue(b);
	r = find_res(b, TEST_UUID);
	v = must(b, r, "cpu.util");
	assert_true(v >= 0 && v <= 100);
	assert_int_equal(b->nevents, 0);
	r = find_res(b, "h1");
	assert_true(fabs(must(b, r, "host.cpu.user") - 30.0) < 1e-9);
	assert_true(fabs(must(b, r, "host.cpu.steal") - 2.5) < 1e-9);
	r = find_res(b, "h1-sda");
	assert_true(fabs(must(b, r, "hdisk.queue.length") - 2.0) < 1e-9);
	assert_true(fabs(must(b, r, "hdisk.idle.time") - 5.0) < 1e-9);
	assert_true(fabs(must(b, r, "hdisk.busy") - 50.0) < 1e-9);
	assert_true(fabs(must(b, r, "hdisk.read.latency") - 0.003) < 1e-12);
	assert_true(fabs(must(b, r, "hdisk.write.latency") - 0.005) < 1e-12);
	assert_true(must(b, r, "hdisk.read.bytes") == 88000.0 * 512);
	assert_true(must(b, r, "hdisk.inflight") == 3);
	vg_batch_free(b);
	vg_poller_free(p);
}

static void test_nova_node(void **state)
{
	char uri[PATH_MAX + 64], run[PATH_MAX + 32];
	struct vg_poller *p;
	struct vg_poll_status st;
	const struct vg_resource *r;
	double tck = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);

	snprintf(uri, sizeof(uri), "test://%s/node-nova.xml", fixtures);
	snprintf(run, sizeof(run), "%s/proc/run", fixtures);
	struct vg_poller_opts o = {.host = "h1", .libvirt_uri = uri, .proc_root = proc_link, .qemu_run_dir = run};
	assert_int_equal(vg_poller_new(&o, &p), 0);
	struct vg_batch *b = vg_batch_new("h1", 1, 1, T0_MS);
	assert_int_equal(vg_poller_poll(p, T0_MS, NULL, 0, b, &st), 0);
	assert_int_equal(st.libvirt_rc, 0);
	assert_int_equal(st.ndomains, 3);
	assert_int_equal(st.nactive, 2);
	check_catalogue(b);

	/* web1: Nova metadata */
	r = find_res(b, WEB1);
	assert_non_null(r);
	assert_string_equal(r->name, "web1");
	assert_string_equal(r->project, "bbbbbbbb0000000000000000000000b1");
	assert_string_equal(r->user, "aaaaaaaa0000000000000000000000a1");
	assert_string_equal(r->flavor, "m1.small");
	assert_string_equal(attr_of(b, r, "project_name"), "webshop");
	assert_string_equal(attr_of(b, r, "user_name"), "alice");
	assert_string_equal(attr_of(b, r, "display_name"), "web-frontend-1");
	assert_string_equal(attr_of(b, r, "flavor.vcpus"), "2");
	assert_string_equal(attr_of(b, r, "flavor.memory_mb"), "2048");
	assert_string_equal(attr_of(b, r, "identity"), "nova");
	assert_true(must(b, r, "memory.size") == 2147483648.0);
	/* QEMU overhead from the pid file + /proc/<pid> fixtures */
	assert_true(fabs(must(b, r, "qemu.cpu.time") - 750.0 / tck) < 1e-9);
	assert_true(must(b, r, "qemu.memory.rss") == 2560 * page);
	assert_true(must(b, r, "qemu.threads") == 5);
	assert_true(must(b, r, "qemu.io.read.bytes") == 4096);
	assert_true(must(b, r, "qemu.io.write.bytes") == 8192);
	/* disks: vda and vdb, not the cdrom; they carry the instance's
	 * project */
	r = find_res(b, WEB1 "-vda");
	assert_non_null(r);
	assert_string_equal(r->project, "bbbbbbbb0000000000000000000000b1");
	assert_string_equal(attr_of(b, r, "source"), "/var/lib/nova/instances/web1/disk");
	assert_non_null(find_res(b, WEB1 "-vdb"));
	assert_null(find_res(b, WEB1 "-hdc"));
	assert_non_null(find_res(b, WEB1 "-tap1"));

	/* db1: vigie's namespace */
	r = find_res(b, DB1);
	assert_non_null(r);
	assert_string_equal(r->project, "analytics");
	assert_string_equal(r->user, "bob");
	assert_string_equal(r->flavor, "db.large");
	assert_string_equal(attr_of(b, r, "identity"), "vigie");
	assert_true(must(b, r, "memory.size") == 3221225472.0);
	assert_true(must(b, r, "vcpus") == 4);
	assert_false(sample_of(b, r, "qemu.cpu.time", NULL)); /* no pid file */
	assert_non_null(find_res(b, DB1 "-tap2"));
	assert_non_null(find_res(b, DB1 "-tap3"));
	assert_non_null(find_res(b, DB1 "-vda"));

	/* idle1: shut off, no metadata */
	r = find_res(b, IDLE1);
	assert_non_null(r);
	assert_string_equal(r->project, "default");
	assert_null(r->user);
	assert_null(r->flavor);
	assert_true(must(b, r, "power.state") == 5);
	assert_true(must(b, r, "memory.size") == 1073741824.0);
	assert_false(sample_of(b, r, "cpu.time", NULL));
	assert_null(find_res(b, IDLE1 "-vda"));
	assert_int_equal(count_events(b, IDLE1, VG_EV_DEFINED), 1);
	assert_int_equal(count_events(b, WEB1, VG_EV_STARTED), 1);
	assert_int_equal(count_events(b, DB1, VG_EV_STARTED), 1);

	/* host NICs: eth0 only (lo, and tap1 belongs to web1) */
	assert_non_null(find_res(b, "h1-eth0"));
	assert_null(find_res(b, "h1-tap1"));
	assert_null(find_res(b, "h1-lo"));
	vg_batch_free(b);

	/* second poll: /proc at t1, 10 s later */
	point_proc("t1");
	b = vg_batch_new("h1", 1, 2, T0_MS + 10000);
	assert_int_equal(vg_poller_poll(p, T0_MS + 10000, NULL, 0, b, &st), 0);
	check_catalogue(b);
	r = find_res(b, WEB1);
	/* 750 -> 1000 ticks in 10 s */
	assert_true(fabs(must(b, r, "qemu.cpu.util") - 250.0 / tck / 10.0 * 100.0) < 1e-9);
	assert_true(must(b, r, "qemu.io.read.bytes") == 8192);
	assert_int_equal(b->nevents, 0);
	vg_batch_free(b);
	vg_poller_free(p);
}

static void test_unreachable(void **state)
{
	struct vg_lv_opts lo = {.uri = "test:///nonexistent/vigie-node.xml"};
	struct vg_lv *lv;
	struct vg_lv_snapshot snap = {0};

	assert_int_equal(vg_lv_new(&lo, &lv), 0);
	assert_int_equal(vg_lv_poll(lv, &snap), -ECONNREFUSED);
	assert_true(strlen(vg_lv_error(lv)) > 0);
	assert_int_equal(snap.ndomains, 0);
	/* back-off: the next attempt is not made at once */
	assert_int_equal(vg_lv_poll(lv, &snap), -ENOTCONN);
	vg_lv_free(lv);

	struct vg_poller_opts o = {.host = "h1", .libvirt_uri = lo.uri, .proc_root = proc_link};
	struct vg_poller *p;
	struct vg_poll_status st;
	assert_int_equal(vg_poller_new(&o, &p), 0);
	size_t gaps = 0;
	for (int i = 0; i < 3; i++) {
		struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)i + 1, T0_MS + i * 1000);
		assert_int_equal(vg_poller_poll(p, T0_MS + i * 1000, NULL, 0, b, &st), 0);
		assert_true(st.libvirt_rc != 0);
		gaps += count_events(b, "h1", VG_EV_GAP);
		/* the host is still reported */
		const struct vg_resource *r = find_res(b, "h1");
		assert_non_null(r);
		assert_true(sample_of(b, r, "host.memory.total", NULL));
		assert_false(sample_of(b, r, "host.instances", NULL));
		assert_true(must(b, r, "agent.libvirt.errors") >= 1);
		if (i == 0)
			assert_non_null(strstr(b->events[0].detail, "libvirt"));
		vg_batch_free(b);
	}
	assert_int_equal(gaps, 1); /* once per outage */
	vg_poller_free(p);
}

static void test_hook_dedup(void **state)
{
	struct vg_poller_opts o = {.host = "h1", .libvirt_uri = "test:///default", .proc_root = proc_link};
	struct vg_poller *p;
	struct vg_batch *b = vg_batch_new("h1", 1, 1, T0_MS);

	assert_int_equal(vg_poller_new(&o, &p), 0);
	/* the hook reports the start with its own time; the poll, which
	 * would derive a STARTED too, adds no second one */
	assert_int_equal(vg_poller_push_event(p, TEST_UUID, VG_EV_STARTED, T0_MS - 500,
					      "{\"src\":\"event\"}"),
			 0);
	assert_int_equal(vg_poller_poll(p, T0_MS, NULL, 0, b, NULL), 0);
	assert_int_equal(count_events(b, TEST_UUID, VG_EV_STARTED), 1);
	assert_true(b->events[0].time_ms == T0_MS - 500);
	assert_string_equal(b->events[0].detail, "{\"src\":\"event\"}");
	vg_batch_free(b);
	vg_poller_free(p);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A guest disk backed by a host block device gets its queue length,
 * idle time and in-flight count from that device's /proc/diskstats line
 * (found by the device's major:minor). */
static void test_host_backed_disk(void **state)
{
	static const char *const cand[] = {"/dev/vda", "/dev/sda", "/dev/nvme0n1",
					   "/dev/xvda", "/dev/loop0", "/dev/zram0", "/dev/ram0"};
	const char *dev = NULL;
	struct stat st;
	char path[256], text[4096], uri[300];

	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]) && !dev; i++)
		if (stat(cand[i], &st) == 0 && S_ISBLK(st.st_mode))
			dev = cand[i];
	if (!dev) {
		print_message("# skipped: no block device to stand for a disk\n");
		skip();
	}
	unsigned maj = major(st.st_rdev), min = minor(st.st_rdev);
	snprintf(path, sizeof(path), "%s/node.xml", tmp);
	snprintf(text, sizeof(text),
		 "<node><domain type='test'><name>lv1</name>"
		 "<uuid>22222222-0000-0000-0000-000000000001</uuid>"
		 "<memory unit='KiB'>1048576</memory><vcpu>1</vcpu>"
		 "<os><type arch='x86_64'>hvm</type></os><devices>"
		 "<disk type='block' device='disk'><source dev='%s'/><target dev='vda'/></disk>"
		 "</devices></domain></node>\n",
		 dev);
	write_file(path, text);
	snprintf(uri, sizeof(uri), "test://%s", path);
	for (int k = 0; k < 2; k++) {
		snprintf(path, sizeof(path), "%s/p%d", tmp, k);
		assert_int_equal(mkdir(path, 0700), 0);
		snprintf(path, sizeof(path), "%s/p%d/diskstats", tmp, k);
		snprintf(text, sizeof(text), k == 0 ? "%u %u backing 1000 0 8000 2000 500 0 4000 3000 2 4000 6000\n" : "%u %u backing 1100 0 8800 2300 600 0 4800 3500 3 9000 26000\n", maj, min);
		write_file(path, text);
	}
	snprintf(path, sizeof(path), "%s/p0", tmp);
	unlink(proc_link);
	assert_int_equal(symlink(path, proc_link), 0);

	struct vg_poller_opts o = {.host = "h1", .libvirt_uri = uri, .proc_root = proc_link};
	struct vg_poller *p;
	assert_int_equal(vg_poller_new(&o, &p), 0);
	struct vg_batch *b = vg_batch_new("h1", 1, 1, T0_MS);
	assert_int_equal(vg_poller_poll(p, T0_MS, NULL, 0, b, NULL), 0);
	const struct vg_resource *r = find_res(b, "22222222-0000-0000-0000-000000000001-vda");
	assert_non_null(r);
	assert_string_equal(attr_of(b, r, "source"), dev);
	assert_true(must(b, r, "disk.inflight") == 2);
	vg_batch_free(b);

	snprintf(path, sizeof(path), "%s/p1", tmp);
	unlink(proc_link);
	assert_int_equal(symlink(path, proc_link), 0);
	b = vg_batch_new("h1", 1, 2, T0_MS + 10000);
	assert_int_equal(vg_poller_poll(p, T0_MS + 10000, NULL, 0, b, NULL), 0);
	check_catalogue(b);
	r = find_res(b, "22222222-0000-0000-0000-000000000001-vda");
	assert_true(must(b, r, "disk.inflight") == 3);
	/* weighted 6000 -> 26000 ms over 10 s; io_ticks 4000 -> 9000 ms */
	assert_true(fabs(must(b, r, "disk.queue.length") - 2.0) < 1e-9);
	assert_true(fabs(must(b, r, "disk.idle.time") - 5.0) < 1e-9);
	vg_batch_free(b);
	vg_poller_free(p);
}

/* A record shaped like `virsh domstats` on a real QEMU guest. */
static void set_ull(virTypedParameter *p, const char *f, unsigned long long v)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->field, sizeof(p->field), "%s", f);
	p->type = VIR_TYPED_PARAM_ULLONG;
	p->value.ul = v;
}

static void set_int(virTypedParameter *p, const char *f, int v)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->field, sizeof(p->field), "%s", f);
	p->type = VIR_TYPED_PARAM_INT;
	p->value.i = v;
}

static void set_str(virTypedParameter *p, const char *f, char *v)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->field, sizeof(p->field), "%s", f);
	p->type = VIR_TYPED_PARAM_STRING;
	p->value.s = v;
}

static void test_bulk_record(void **state)
{
	virTypedParameter p[64];
	int n = 0;
	char vda[] = "vda", hdc[] = "hdc", vnet0[] = "vnet0", path[] = "/img/a.qcow2";

	set_int(&p[n++], "state.state", 1);
	set_int(&p[n++], "state.reason", 1);
	set_ull(&p[n++], "cpu.time", 12500000000ULL);
	set_ull(&p[n++], "cpu.user", 2000000000ULL);
	set_ull(&p[n++], "cpu.system", 3000000000ULL);
	set_ull(&p[n++], "balloon.current", 1048576);
	set_ull(&p[n++], "balloon.maximum", 2097152);
	set_ull(&p[n++], "balloon.available", 1000000);
	set_ull(&p[n++], "balloon.unused", 400000);
	set_ull(&p[n++], "balloon.rss", 300000);
	set_ull(&p[n++], "balloon.swap_in", 10);
	set_ull(&p[n++], "balloon.major_fault", 7);
	set_int(&p[n++], "vcpu.current", 2);
	set_int(&p[n++], "vcpu.maximum", 4);
	set_int(&p[n++], "vcpu.0.state", 1);
	set_ull(&p[n++], "vcpu.0.time", 5000000000ULL);
	set_ull(&p[n++], "vcpu.1.time", 6000000000ULL);
	set_ull(&p[n++], "vcpu.0.wait", 250000000ULL);
	set_ull(&p[n++], "vcpu.1.wait", 0);
	set_ull(&p[n++], "vcpu.0.delay", 1500000000ULL);
	set_ull(&p[n++], "vcpu.1.delay", 500000000ULL);
	set_ull(&p[n++], "balloon.swap_out", 20);
	set_int(&p[n++], "net.count", 1);
	set_str(&p[n++], "net.0.name", vnet0);
	set_ull(&p[n++], "net.0.rx.bytes", 1000);
	set_ull(&p[n++], "net.0.rx.pkts", 10);
	set_ull(&p[n++], "net.0.tx.bytes", 2000);
	set_ull(&p[n++], "net.0.tx.pkts", 20);
	set_ull(&p[n++], "net.0.tx.drop", 3);
	set_int(&p[n++], "block.count", 2);
	set_str(&p[n++], "block.0.name", vda);
	set_str(&p[n++], "block.0.path", path);
	set_ull(&p[n++], "block.0.rd.reqs", 100);
	set_ull(&p[n++], "block.0.rd.bytes", 409600);
	set_ull(&p[n++], "block.0.rd.times", 300000000ULL);
	set_ull(&p[n++], "block.0.wr.reqs", 50);
	set_ull(&p[n++], "block.0.wr.times", 250000000ULL);
	set_ull(&p[n++], "block.0.fl.reqs", 5);
	set_ull(&p[n++], "block.0.fl.times", 50000000ULL);
	set_ull(&p[n++], "block.0.capacity", 1048576);
	set_ull(&p[n++], "block.0.allocation", 65536);
	set_ull(&p[n++], "block.0.physical", 200704);
	set_str(&p[n++], "block.1.name", hdc);
	set_ull(&p[n++], "block.7.rd.reqs", 1); /* index past block.count: ignored */

	struct vg_lv_snapshot snap = {0};
	struct vg_lv_domain d;
	unsigned groups = 0;
	assert_int_equal(vg_lv_parse_bulk(&snap, p, n, &d, &groups), 0);
	assert_int_equal(groups, (1u << VG_LV_NGROUPS) - 1);
	assert_int_equal(d.state, 1);
	assert_true(d.active);
	assert_true(d.cpu_time_s == 12.5);
	assert_true(d.cpu_user_s == 2.0);
	assert_true(d.cpu_system_s == 3.0);
	assert_true(d.mem_current == 1073741824.0);
	assert_true(d.mem_max == 2147483648.0);
	assert_true(d.mem_available - d.mem_unused == 600000.0 * 1024);
	assert_true(d.mem_rss == 300000.0 * 1024);
	assert_true(d.mem_swap_in == 10240.0);
	assert_true(d.mem_major_faults == 7);
	assert_true(isnan(d.mem_usable));
	assert_true(d.vcpus == 2);
	assert_int_equal(d.nvcpu_times, 2); /* current, not maximum */
	assert_true(d.vcpu_time_s[0] == 5.0);
	assert_true(d.vcpu_time_s[1] == 6.0);
	assert_non_null(d.vcpu_wait_s);
	assert_non_null(d.vcpu_delay_s);
	assert_true(d.vcpu_wait_s[0] == 0.25);
	assert_true(d.vcpu_wait_s[1] == 0);
	assert_true(d.vcpu_delay_s[0] == 1.5);
	assert_true(d.vcpu_delay_s[1] == 0.5);
	assert_true(d.mem_swap_out == 20480.0);
	assert_int_equal(d.nnics, 1);
	assert_string_equal(d.nics[0].dev, "vnet0");
	assert_true(d.nics[0].rx_bytes == 1000);
	assert_true(d.nics[0].tx_packets == 20);
	assert_true(d.nics[0].tx_drop == 3);
	assert_true(isnan(d.nics[0].rx_errs));
	assert_int_equal(d.ndisks, 2);
	assert_string_equal(d.disks[0].dev, "vda");
	assert_true(d.disks[0].rd_reqs == 100);
	assert_true(d.disks[0].rd_bytes == 409600);
	assert_true(fabs(d.disks[0].rd_time_s - 0.3) < 1e-12);
	assert_true(fabs(d.disks[0].wr_time_s - 0.25) < 1e-12);
	assert_true(d.disks[0].fl_reqs == 5);
	assert_true(fabs(d.disks[0].fl_time_s - 0.05) < 1e-12);
	assert_true(d.disks[0].capacity == 1048576);
	assert_true(d.disks[0].allocation == 65536);
	assert_true(d.disks[0].physical == 200704);
	assert_true(isnan(d.disks[0].wr_bytes));
	assert_string_equal(d.disks[1].dev, "hdc");
	assert_true(isnan(d.disks[1].rd_reqs));
	vg_lv_snapshot_clear(&snap);

	/* a shut-off domain: state only */
	n = 0;
	set_int(&p[n++], "state.state", 5);
	set_int(&p[n++], "state.reason", 2);
	assert_int_equal(vg_lv_parse_bulk(&snap, p, n, &d, &groups), 0);
	assert_int_equal(groups, 0);
	assert_false(d.active);
	assert_true(isnan(d.cpu_time_s));
	assert_int_equal(d.ndisks, 0);
	vg_lv_snapshot_clear(&snap);
}

/* Guest file systems as virDomainGetGuestInfo's filesystem group gives
 * them (a QEMU guest agent's answer, copied from `virsh guestinfo
 * --filesystem` on a Debian guest): sorted by mount point, units kept. */
static void test_guest_fs_params(void **state)
{
	virTypedParameter p[32];
	int n = 0;
	char root[] = "/", boot[] = "/boot", nomp[] = "", d1[] = "/dev/vda1",
	     d15[] = "/dev/vda15", ext4[] = "ext4", vfat[] = "vfat", vda[] = "vda";

	(void)state;
	set_int(&p[n++], "fs.count", 3);
	set_str(&p[n++], "fs.0.name", d15);
	set_str(&p[n++], "fs.0.mountpoint", boot);
	set_str(&p[n++], "fs.0.fstype", vfat);
	set_ull(&p[n++], "fs.0.total-bytes", 129718272ULL);
	set_ull(&p[n++], "fs.0.used-bytes", 6039552ULL);
	set_int(&p[n++], "fs.0.disk.count", 1);
	set_str(&p[n++], "fs.0.disk.0.alias", vda);
	set_str(&p[n++], "fs.1.name", d1);
	set_str(&p[n++], "fs.1.mountpoint", root);
	set_str(&p[n++], "fs.1.fstype", ext4);
	set_ull(&p[n++], "fs.1.total-bytes", 21003583488ULL);
	set_ull(&p[n++], "fs.1.used-bytes", 1862299648ULL);
	set_str(&p[n++], "fs.2.mountpoint", nomp); /* no mount point: dropped */
	set_ull(&p[n++], "fs.9.used-bytes", 1);    /* past fs.count: ignored */

	struct vg_lv_snapshot snap = {0};
	struct vg_lv_domain d;
	memset(&d, 0, sizeof(d));
	assert_int_equal(vg_lv_parse_guest_fs(&snap, p, n, &d), 0);
	assert_int_equal(d.nfs, 2);
	assert_string_equal(d.fs[0].mountpoint, "/");
	assert_string_equal(d.fs[0].device, "/dev/vda1");
	assert_string_equal(d.fs[0].fstype, "ext4");
	assert_null(d.fs[0].disk);
	assert_true(d.fs[0].total == 21003583488.0);
	assert_true(d.fs[0].used == 1862299648.0);
	assert_string_equal(d.fs[1].mountpoint, "/boot");
	assert_string_equal(d.fs[1].disk, "vda");
	assert_true(d.fs[1].used == 6039552.0);
	vg_lv_snapshot_clear(&snap);

	/* no fs.count: nothing */
	assert_int_equal(vg_lv_parse_guest_fs(&snap, p + 1, n - 1, &d), 0);
	assert_int_equal(d.nfs, 0);
	assert_null(d.fs);
	vg_lv_snapshot_clear(&snap);
}

/* A driver without a guest agent (the test driver: not QEMU) is found out
 * once in the source's life without a call, not once per poll and domain,
 * and that is not a failure: no error, no count, no value. */
static void test_guest_fs_unsupported_once(void **state)
{
	struct vg_lv_opts o = {.uri = "test:///default", .guest_fs_polls = 1, .guest_agent_retry_polls = 2};
	struct vg_lv *lv;
	struct vg_lv_guest_stats gs;

	(void)state;
	assert_int_equal(vg_lv_new(&o, &lv), 0);
	for (int i = 0; i < 3; i++) {
		struct vg_lv_snapshot snap = {0};
		assert_int_equal(vg_lv_poll(lv, &snap), 0);
		assert_int_equal(snap.ndomains, 1);
		assert_int_equal(snap.domains[0].nfs, 0);
		vg_lv_snapshot_clear(&snap);
	}
	vg_lv_guest_stats(lv, &gs);
	assert_int_equal(gs.queries, 0);
	assert_int_equal(gs.failures, 0);
	assert_int_equal(gs.no_agent, 0);
	assert_int_equal(gs.supported, VG_LV_NO);
	vg_lv_free(lv);

	/* off: never asked */
	o.guest_fs_polls = 0;
	assert_int_equal(vg_lv_new(&o, &lv), 0);
	struct vg_lv_snapshot snap = {0};
	assert_int_equal(vg_lv_poll(lv, &snap), 0);
	vg_lv_snapshot_clear(&snap);
	vg_lv_guest_stats(lv, &gs);
	assert_int_equal(gs.queries, 0);
	assert_int_equal(gs.supported, VG_LV_UNKNOWN);
	vg_lv_free(lv);
}

static void test_extras_and_no_libvirt(void **state)
{
	struct vg_poller_opts o = {.host = "h1", .proc_root = proc_link};
	struct vg_poller *p;
	struct vg_poll_extra ex[] = {{"agent.spool.depth", VG_KIND_GAUGE, 7}};
	struct vg_batch *b = vg_batch_new("h1", 1, 1, T0_MS);

	assert_int_equal(vg_poller_new(&o, &p), 0);
	assert_null(vg_poller_libvirt(p));
	assert_int_equal(vg_poller_poll(p, T0_MS, ex, 1, b, NULL), 0);
	const struct vg_resource *r = find_res(b, "h1");
	assert_true(must(b, r, "agent.spool.depth") == 7);
	assert_true(sample_of(b, r, "agent.poll.duration", NULL));
	assert_int_equal(b->nevents, 0);
	vg_batch_free(b);
	vg_poller_free(p);
	o.host = NULL;
	assert_int_equal(vg_poller_new(&o, &p), -EINVAL);
}

/* ---- the XML read after the statistics --------------------------------- */

/* A guest with Nova metadata naming flavor fl (vCPUs vc), for the test
 * driver's define (same UUID each time: a redefinition). */
#define RS_UUID "11111111-2222-3333-4444-5555555555aa"
static char *rs_xml(const char *fl, int vc)
{
	static char x[2048];

	snprintf(x, sizeof(x),
		 "<domain type='test'><name>rs</name><uuid>" RS_UUID "</uuid>"
		 "<metadata><nova:instance xmlns:nova="
		 "'http://openstack.org/xmlns/libvirt/nova/1.1'>"
		 "<nova:flavor name='%s'><nova:memory>512</nova:memory>"
		 "<nova:vcpus>%d</nova:vcpus></nova:flavor>"
		 "<nova:owner><nova:user uuid='u1'>u</nova:user>"
		 "<nova:project uuid='p1'>p</nova:project></nova:owner>"
		 "</nova:instance></metadata>"
		 "<memory unit='MiB'>512</memory><vcpu>%d</vcpu>"
		 "<os><type>hvm</type></os></domain>",
		 fl, vc, vc);
	return x;
}

/* After the bulk call of the poll it is armed for: stop the guest and
 * redefine it with the bigger flavor (a resize's first two steps). */
struct rs_hook {
	virConnectPtr c;
	int armed;
};

static void rs_resize(void *ctx)
{
	struct rs_hook *h = ctx;
	virDomainPtr d;

	if (!h->armed)
		return;
	h->armed = 0;
	assert_non_null(d = virDomainLookupByUUIDString(h->c, RS_UUID));
	assert_int_equal(virDomainDestroy(d), 0);
	virDomainFree(d);
	assert_non_null(d = virDomainDefineXML(h->c, rs_xml("big", 2)));
	virDomainFree(d);
}

static const struct vg_lv_domain *rs_find(const struct vg_lv_snapshot *s)
{
	for (size_t i = 0; i < s->ndomains; i++)
		if (!strcmp(s->domains[i].uuid, RS_UUID))
			return &s->domains[i];
	fail_msg("no domain %s in the snapshot", RS_UUID);
	return NULL;
}

/* The domain XML is read after the bulk call: a guest stopped and
 * redefined with a new flavor in between (on a loaded host, a Nova resize
 * right after a start) gave the running incarnation the next one's
 * flavor, which billing charged from that poll on. The XML's <domain
 * id=..> names the incarnation it describes: another one's is not used. */
static void test_xml_of_another_incarnation(void **state)
{
	(void)state;
	struct rs_hook h = {.c = virConnectOpen("test:///default")};
	struct vg_lv_opts o = {.uri = "test:///default", .after_bulk = rs_resize, .after_bulk_ctx = &h};
	struct vg_lv *lv;
	struct vg_lv_snapshot snap = {0};
	virDomainPtr d;
	const struct vg_lv_domain *x;

	assert_non_null(h.c);
	assert_non_null(d = virDomainDefineXML(h.c, rs_xml("tiny", 1)));
	assert_int_equal(vg_lv_new(&o, &lv), 0);

	/* defined, not running: the tiny definition */
	assert_int_equal(vg_lv_poll(lv, &snap), 0);
	x = rs_find(&snap);
	assert_false(x->active);
	assert_string_equal(x->meta->flavor, "tiny");
	vg_lv_snapshot_clear(&snap);

	/* started; the poll's statistics show it running, then it is
	 * stopped and redefined before its (new id's) XML is read */
	assert_int_equal(virDomainCreate(d), 0);
	h.armed = 1;
	assert_int_equal(vg_lv_poll(lv, &snap), 0);
	assert_int_equal(h.armed, 0);
	x = rs_find(&snap);
	assert_true(x->active);
	assert_true(x->id >= 0);
	assert_string_equal(x->meta->flavor, "tiny");
	assert_int_equal(x->meta->flavor_vcpus, 1);
	assert_string_equal(x->meta->project, "p1");
	assert_int_equal(vg_lv_xml_other(lv), 1);
	vg_lv_snapshot_clear(&snap);

	/* the next poll sees it stopped, with the new definition */
	assert_int_equal(vg_lv_poll(lv, &snap), 0);
	x = rs_find(&snap);
	assert_false(x->active);
	assert_string_equal(x->meta->flavor, "big");
	assert_int_equal(x->meta->flavor_vcpus, 2);
	assert_int_equal(vg_lv_xml_other(lv), 1);
	vg_lv_snapshot_clear(&snap);

	/* started again: running with the new flavor, its own XML */
	assert_int_equal(virDomainCreate(d), 0);
	assert_int_equal(vg_lv_poll(lv, &snap), 0);
	x = rs_find(&snap);
	assert_true(x->active);
	assert_string_equal(x->meta->flavor, "big");
	assert_int_equal(vg_lv_xml_other(lv), 1);
	vg_lv_snapshot_clear(&snap);

	vg_lv_free(lv);
	assert_int_equal(virDomainDestroy(d), 0);
	assert_int_equal(virDomainUndefine(d), 0);
	virDomainFree(d);
	virConnectClose(h.c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_default_fallback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nova_node, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreachable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hook_dedup, setup, teardown),
		cmocka_unit_test(test_bulk_record),
		cmocka_unit_test(test_guest_fs_params),
		cmocka_unit_test(test_guest_fs_unsupported_once),
		cmocka_unit_test_setup_teardown(test_host_backed_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extras_and_no_libvirt, setup, teardown),
		cmocka_unit_test(test_xml_of_another_incarnation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
