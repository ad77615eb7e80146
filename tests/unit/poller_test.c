/*
 * poller_test.c — the domain half of a poll driven by hand-made libvirt
 * snapshots: derived values against hand-computed numbers, counter reset
 * and domain restart (no derived value), lifecycle events (initial,
 * started, defined, suspended, resumed, restarted, resized), vanished
 * domains and devices reported once as ENDED, and the lifecycle hook.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include <cmocka.h>

#include "agent/domxml.h"
#include "agent/poll.h"
#include "vigie/batch.h"
#include "vigie/catalog.h"
#include "vigie/name.h"
#include "vigie/wire.h"

#define A "aaaaaaaa-0000-0000-0000-00000000000a"
#define B "bbbbbbbb-0000-0000-0000-00000000000b"
#define T0 1795000000000LL
#define EPS 1e-9

static struct vg_domxml meta_a, meta_a_big, meta_b;

static int setup(void **state)
{
	assert_int_equal(vg_domxml_parse(
				 "<domain><name>a</name><metadata>"
				 "<vg:owner xmlns:vg='http://vigie.dev/xmlns/1' project='p1' user='u1' flavor='m1.small'/>"
				 "</metadata><devices>"
				 "<disk device='disk'><source dev='/dev/vigie-test-no-such-device'/><target dev='vda'/></disk>"
				 "<interface type='ethernet'><target dev='tap1'/></interface>"
				 "</devices></domain>",
				 &meta_a),
			 0);
	assert_int_equal(vg_domxml_parse(
				 "<domain><name>a</name><metadata>"
				 "<vg:owner xmlns:vg='http://vigie.dev/xmlns/1' project='p1' user='u1' flavor='m1.large'/>"
				 "</metadata></domain>",
				 &meta_a_big),
			 0);
	assert_int_equal(vg_domxml_parse("<domain><name>b</name></domain>", &meta_b), 0);
	return 0;
}

static int teardown(void **state)
{
	vg_domxml_clear(&meta_a);
	vg_domxml_clear(&meta_a_big);
	vg_domxml_clear(&meta_b);
	return 0;
}

static void init_dom(struct vg_lv_domain *d, const char *uuid, const char *name,
		     int id, int state, const struct vg_domxml *meta)
{
	memset(d, 0, sizeof(*d));
	d->uuid = uuid;
	d->name = name;
	d->id = id;
	d->state = state;
	d->active = state >= 1 && state <= 4;
	d->meta = meta;
	d->cpu_time_s = d->cpu_user_s = d->cpu_system_s = NAN;
	d->vcpus = 2;
	d->mem_current = 1073741824.0;
	d->mem_max = d->mem_available = d->mem_unused = d->mem_usable = NAN;
	d->mem_rss = d->mem_swap_in = d->mem_swap_out = NAN;
	d->mem_major_faults = d->mem_minor_faults = d->mem_disk_caches = NAN;
}

static void init_disk(struct vg_lv_disk *k, double rr, double rt, double wr,
		      double wt, double fr, double ft)
{
	memset(k, 0, sizeof(*k));
	k->dev = "vda";
	k->source = "/dev/vigie-test-no-such-device";
	k->rd_reqs = rr;
	k->rd_time_s = rt;
	k->wr_reqs = wr;
	k->wr_time_s = wt;
	k->fl_reqs = fr;
	k->fl_time_s = ft;
	k->rd_bytes = rr * 4096;
	k->wr_bytes = wr * 4096;
	k->errors = k->capacity = k->allocation = k->physical = NAN;
}

static void init_nic(struct vg_lv_nic *n)
{
	memset(n, 0, sizeof(*n));
	n->dev = "tap1";
	n->rx_bytes = 100;
	n->rx_packets = 1;
	n->rx_errs = n->rx_drop = n->tx_bytes = n->tx_packets = 0;
	n->tx_errs = n->tx_drop = 0;
}

static const struct vg_resource *find_res(const struct vg_batch *b, const char *id)
{
	for (size_t i = 0; i < b->nres; i++)
		if (!strcmp(b->res[i].id, id))
			return &b->res[i];
	return NULL;
}

static int sample_of(const struct vg_batch *b, const char *id, const char *metric,
		     double *v)
{
	const struct vg_resource *r = find_res(b, id);

	if (!r)
		fail_msg("no resource %s", id);
	const struct vg_sample *s = vg_resource_samples(b, r);
	for (uint32_t i = 0; i < r->nsamples; i++)
		if (!strcmp(s[i].metric, metric)) {
			if (v)
				*v = s[i].value;
			return 1;
		}
	return 0;
}

static const char *attr_of(const struct vg_batch *b, const char *id, const char *key)
{
	const struct vg_resource *r = find_res(b, id);

	if (!r)
		fail_msg("no resource %s", id);
	const struct vg_attr *a = vg_resource_attrs(b, r);
	for (uint32_t i = 0; i < r->nattrs; i++)
		if (!strcmp(a[i].key, key))
			return a[i].value;
	fail_msg("%s has no attribute %s", id, key);
	return NULL;
}

static double must(const struct vg_batch *b, const char *id, const char *metric)
{
	double v = NAN;

	if (!sample_of(b, id, metric, &v))
		fail_msg("%s has no %s", id, metric);
	return v;
}

static const struct vg_event *find_event(const struct vg_batch *b, const char *res,
					 int type, size_t *count)
{
	const struct vg_event *e = NULL;

	*count = 0;
	for (size_t i = 0; i < b->nevents; i++)
		if (b->events[i].type == type && !strcmp(b->events[i].resource, res)) {
			if (!e)
				e = &b->events[i];
			(*count)++;
		}
	return e;
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
				fail_msg("%s not in the catalogue", s[k].metric);
			assert_int_equal(d->kind, s[k].kind);
		}
	}
}

static struct vg_batch *apply(struct vg_poller *p, struct vg_lv_domain *doms, size_t n,
			      int64_t t)
{
	struct vg_lv_snapshot snap = {.ndomains = n, .domains = doms};
	struct vg_batch *b = vg_batch_new("h1", 1, 1, t);

	assert_non_null(b);
	assert_int_equal(vg_poller_apply_domains(p, &snap, t, b), 0);
	check_catalogue(b);
	return b;
}

static struct vg_poller *new_poller(void)
{
	struct vg_poller_opts o = {.host = "h1", .proc_root = "tests/fixtures/proc/t0"};
	struct vg_poller *p;

	assert_int_equal(vg_poller_new(&o, &p), 0);
	return p;
}

static void test_derived_values(void **state)
{
	struct vg_poller *p = new_poller();
	struct vg_lv_domain d;
	struct vg_lv_disk k;
	struct vg_lv_nic n;
	struct vg_batch *b;
	size_t cnt;
	double v;

	/* poll 1: raw values only, and the "initial" STARTED */
	init_dom(&d, A, "a", 1, 1, &meta_a);
	d.cpu_time_s = 100;
	d.mem_available = 1000;
	d.mem_unused = 400;
	init_disk(&k, 1000, 2.0, 500, 3.0, 100, 1.0);
	init_nic(&n);
	d.disks = &k;
	d.ndisks = 1;
	d.nics = &n;
	d.nnics = 1;
	b = apply(p, &d, 1, T0);
	const struct vg_event *e = find_event(b, A, VG_EV_STARTED, &cnt);
	assert_int_equal(cnt, 1);
	assert_string_equal(e->detail, "{\"initial\":true,\"derived\":true}");
	assert_true(must(b, A, "cpu.time") == 100);
	assert_true(must(b, A, "memory.used") == 600);
	assert_false(sample_of(b, A, "cpu.util", NULL));
	assert_false(sample_of(b, A "-vda", "disk.read.latency", NULL));
	assert_false(sample_of(b, A "-vda", "disk.queue.length", NULL));
	const struct vg_resource *r = find_res(b, A);
	assert_string_equal(r->project, "p1");
	assert_string_equal(r->user, "u1");
	assert_string_equal(r->flavor, "m1.small");
	r = find_res(b, A "-vda");
	assert_string_equal(r->parent, A);
	assert_string_equal(r->project, "p1");
	vg_batch_free(b);

	/* poll 2, 10 s later: 10 s of CPU on 2 vCPUs = 50 %;
	 * disk: +100 reads in 0.3 s, +100 writes in 0.5 s, +10 flushes in
	 * 0.1 s -> 3 ms, 5 ms, 10 ms; queue (0.3+0.5+0.1)/10 = 0.09;
	 * idle >= 10 - 0.9 = 9.1 s */
	d.cpu_time_s = 110;
	init_disk(&k, 1100, 2.3, 600, 3.5, 110, 1.1);
	b = apply(p, &d, 1, T0 + 10000);
	assert_true(fabs(must(b, A, "cpu.util") - 50.0) < EPS);
	assert_true(fabs(must(b, A "-vda", "disk.read.latency") - 0.003) < EPS);
	assert_true(fabs(must(b, A "-vda", "disk.write.latency") - 0.005) < EPS);
	assert_true(fabs(must(b, A "-vda", "disk.flush.latency") - 0.01) < EPS);
	assert_true(fabs(must(b, A "-vda", "disk.queue.length") - 0.09) < EPS);
	assert_true(fabs(must(b, A "-vda", "disk.idle.time") - 9.1) < EPS);
	assert_int_equal(b->nevents, 0);
	vg_batch_free(b);

	/* poll 3: no reads or writes in the interval: latency undefined
	 * (absent), queue 0, idle the whole interval */
	d.cpu_time_s = 110;
	b = apply(p, &d, 1, T0 + 20000);
	assert_true(must(b, A, "cpu.util") == 0);
	assert_false(sample_of(b, A "-vda", "disk.read.latency", NULL));
	assert_true(must(b, A "-vda", "disk.queue.length") == 0);
	assert_true(fabs(must(b, A "-vda", "disk.idle.time") - 10.0) < EPS);
	vg_batch_free(b);

	/* poll 4: counters went backwards with the same id (e.g. a QEMU
	 * counter reset): raw values reported, nothing derived */
	d.cpu_time_s = 50;
	init_disk(&k, 10, 0.1, 5, 0.1, 1, 0.01);
	b = apply(p, &d, 1, T0 + 30000);
	assert_true(must(b, A, "cpu.time") == 50);
	assert_false(sample_of(b, A, "cpu.util", NULL));
	assert_false(sample_of(b, A "-vda", "disk.read.latency", NULL));
	assert_false(sample_of(b, A "-vda", "disk.queue.length", NULL));
	vg_batch_free(b);

	/* poll 5: derivation resumes from the new baseline */
	d.cpu_time_s = 55;
	b = apply(p, &d, 1, T0 + 40000);
	assert_true(sample_of(b, A, "cpu.util", &v));
	assert_true(fabs(v - 25.0) < EPS);
	vg_batch_free(b);
	vg_poller_free(p);
}

/* vCPU contention: vcpu.N.wait / vcpu.N.delay counters as reported, and
 * cpu.wait / cpu.steal in percent of the instance's vCPU capacity. */
static void test_vcpu_contention(void **state)
{
	struct vg_poller *p = new_poller();
	struct vg_lv_domain d;
	struct vg_batch *b;
	double vt[2] = {10, 20}, vw[2] = {1, 0}, vd[2] = {2, 3};

	(void)state;
	init_dom(&d, A, "a", 1, 1, &meta_b);
	d.cpu_time_s = 100;
	d.nvcpu_times = 2;
	d.vcpu_time_s = vt;
	d.vcpu_wait_s = vw;
	d.vcpu_delay_s = vd;
	d.mem_swap_out = 8192;
	b = apply(p, &d, 1, T0);
	assert_true(must(b, A, "vcpu.0.wait") == 1);
	assert_true(must(b, A, "vcpu.1.delay") == 3);
	assert_true(must(b, A, "memory.swap.out") == 8192);
	assert_false(sample_of(b, A, "cpu.steal", NULL));
	vg_batch_free(b);

	/* 10 s later on 2 vCPUs (20 vCPU-seconds): delay +1 and +4 s = 25 %,
	 * wait +0.5 s = 2.5 % */
	vw[0] = 1.5;
	vd[0] = 3;
	vd[1] = 7;
	d.cpu_time_s = 110;
	d.mem_swap_out = 16384;
	b = apply(p, &d, 1, T0 + 10000);
	assert_true(fabs(must(b, A, "cpu.steal") - 25.0) < EPS);
	assert_true(fabs(must(b, A, "cpu.wait") - 2.5) < EPS);
	assert_true(must(b, A, "vcpu.1.delay") == 7);
	assert_true(must(b, A, "memory.swap.out") == 16384);
	vg_batch_free(b);

	/* guest file systems reported in this poll: fs.N on the instance */
	struct vg_lv_fs fs[2] = {
		{.mountpoint = "/", .device = "/dev/vda1", .fstype = "ext4", .total = 1000, .used = 250},
		{.mountpoint = "/data", .device = "/dev/vdb", .disk = "vdb", .total = 2000, .used = NAN},
	};
	d.fs = fs;
	d.nfs = 2;
	b = apply(p, &d, 1, T0 + 15000);
	assert_true(must(b, A, "fs.0.total") == 1000);
	assert_true(must(b, A, "fs.0.used") == 250);
	assert_true(must(b, A, "fs.0.usage") == 25);
	assert_string_equal(attr_of(b, A, "fs.0.mountpoint"), "/");
	assert_string_equal(attr_of(b, A, "fs.0.device"), "/dev/vda1");
	assert_string_equal(attr_of(b, A, "fs.1.disk"), "vdb");
	assert_true(must(b, A, "fs.1.total") == 2000);
	assert_false(sample_of(b, A, "fs.1.used", NULL));
	assert_false(sample_of(b, A, "fs.1.usage", NULL));
	vg_batch_free(b);
	d.fs = NULL;
	d.nfs = 0;

	/* a driver without the fields: no counter, no percentage */
	d.vcpu_wait_s = d.vcpu_delay_s = NULL;
	b = apply(p, &d, 1, T0 + 20000);
	assert_false(sample_of(b, A, "fs.0.total", NULL));
	assert_false(sample_of(b, A, "vcpu.0.wait", NULL));
	assert_false(sample_of(b, A, "cpu.steal", NULL));
	assert_false(sample_of(b, A, "cpu.wait", NULL));
	vg_batch_free(b);
	vg_poller_free(p);
}

/* The host half from the /proc fixture: swap and host NIC values exactly
 * as the fixture files say (lo and known vNICs are not host NICs). */
static void test_host_values(void **state)
{
	struct vg_poller *p = new_poller();
	struct vg_batch *b = vg_batch_new("h1", 1, 1, T0);
	struct vg_poll_status st;

	(void)state;
	assert_int_equal(vg_poller_poll(p, T0, NULL, 0, b, &st), 0);
	check_catalogue(b);
	assert_true(must(b, "h1", "host.swap.total") == 2000000.0 * 1024);
	assert_true(must(b, "h1", "host.swap.used") == 500000.0 * 1024);
	assert_true(must(b, "h1-eth0", "hnic.rx.bytes") == 123456789);
	assert_true(must(b, "h1-eth0", "hnic.rx.packets") == 100000);
	assert_true(must(b, "h1-eth0", "hnic.rx.errors") == 1);
	assert_true(must(b, "h1-eth0", "hnic.rx.drops") == 2);
	assert_true(must(b, "h1-eth0", "hnic.tx.bytes") == 987654321);
	assert_true(must(b, "h1-eth0", "hnic.tx.packets") == 90000);
	assert_true(must(b, "h1-eth0", "hnic.tx.errors") == 3);
	assert_true(must(b, "h1-eth0", "hnic.tx.drops") == 4);
	assert_null(find_res(b, "h1-lo"));

	/* host file systems: "/" only (the rest are pseudo, network, or
	 * cannot be statted), with the values statvfs gives */
	struct statvfs sv;
	assert_int_equal(statvfs("/", &sv), 0);
	assert_true(must(b, "h1-fs:/", "hfs.size") == (double)sv.f_blocks * sv.f_frsize);
	assert_true(must(b, "h1-fs:/", "hfs.used") <= must(b, "h1-fs:/", "hfs.size"));
	assert_true(must(b, "h1-fs:/", "hfs.used") > 0);
	assert_string_equal(attr_of(b, "h1-fs:/", "device"), "/dev/vda1");
	assert_string_equal(attr_of(b, "h1-fs:/", "fstype"), "ext4");
	if (sv.f_files > 0)
		assert_true(must(b, "h1-fs:/", "hfs.inodes.total") == (double)sv.f_files);
	assert_null(find_res(b, "h1-fs:/proc"));
	assert_null(find_res(b, "h1-fs:/run"));
	assert_null(find_res(b, "h1-fs:/mnt/nfs"));
	assert_null(find_res(b, "h1-fs:/vigie-no-such-mount"));
	vg_batch_free(b);
	vg_poller_free(p);

	/* include /run (tmpfs), exclude "/" by type: the list decides */
	struct vg_poller_opts o = {.host = "h1", .proc_root = "tests/fixtures/proc/t0", .fs_include = "/run,/", .fs_exclude = "ext4"};
	assert_int_equal(vg_poller_new(&o, &p), 0);
	b = vg_batch_new("h1", 1, 1, T0);
	assert_int_equal(vg_poller_poll(p, T0, NULL, 0, b, &st), 0);
	assert_null(find_res(b, "h1-fs:/"));
	assert_true(must(b, "h1-fs:/run", "hfs.size") > 0);
	vg_batch_free(b);
	vg_poller_free(p);

	/* off */
	o.no_host_fs = 1;
	o.fs_include = o.fs_exclude = NULL;
	assert_int_equal(vg_poller_new(&o, &p), 0);
	b = vg_batch_new("h1", 1, 1, T0);
	assert_int_equal(vg_poller_poll(p, T0, NULL, 0, b, &st), 0);
	assert_null(find_res(b, "h1-fs:/"));
	vg_batch_free(b);
	vg_poller_free(p);
}

static void test_lifecycle(void **state)
{
	struct vg_poller *p = new_poller();
	struct vg_lv_domain d[2];
	struct vg_lv_disk k;
	struct vg_lv_nic n;
	struct vg_batch *b;
	const struct vg_event *e;
	size_t cnt;

	init_dom(&d[0], A, "a", 1, 1, &meta_a);
	d[0].cpu_time_s = 100;
	init_disk(&k, 1, 1, 1, 1, 1, 1);
	init_nic(&n);
	d[0].disks = &k;
	d[0].ndisks = 1;
	d[0].nics = &n;
	d[0].nnics = 1;
	b = apply(p, d, 1, T0);
	vg_batch_free(b);

	/* a new domain, shut off: DEFINED, not "initial" */
	init_dom(&d[1], B, "b", -1, 5, &meta_b);
	b = apply(p, d, 2, T0 + 10000);
	e = find_event(b, B, VG_EV_DEFINED, &cnt);
	assert_int_equal(cnt, 1);
	assert_string_equal(e->detail, "{\"derived\":true}"); /* not "initial" */
	assert_string_equal(find_res(b, B)->project, "default");
	assert_true(must(b, B, "power.state") == 5);
	vg_batch_free(b);

	/* A paused -> SUSPENDED; B started -> STARTED */
	d[0].state = 3;
	d[0].cpu_time_s = 101;
	d[1].state = 1;
	d[1].active = 1;
	d[1].id = 5;
	d[1].cpu_time_s = 1;
	b = apply(p, d, 2, T0 + 20000);
	find_event(b, A, VG_EV_SUSPENDED, &cnt);
	assert_int_equal(cnt, 1);
	find_event(b, B, VG_EV_STARTED, &cnt);
	assert_int_equal(cnt, 1);
	vg_batch_free(b);

	/* A resumed -> RESUMED */
	d[0].state = 1;
	d[0].cpu_time_s = 102;
	b = apply(p, d, 2, T0 + 30000);
	find_event(b, A, VG_EV_RESUMED, &cnt);
	assert_int_equal(cnt, 1);
	assert_true(sample_of(b, A, "cpu.util", NULL));
	vg_batch_free(b);

	/* A restarted between polls (new id, CPU time starts over) and its
	 * disk was unplugged; B vanished while running */
	d[0].id = 2;
	d[0].cpu_time_s = 3;
	d[0].ndisks = 0;
	b = apply(p, d, 1, T0 + 40000);
	find_event(b, A, VG_EV_STOPPED, &cnt);
	assert_int_equal(cnt, 1);
	e = find_event(b, A, VG_EV_STARTED, &cnt);
	assert_int_equal(cnt, 1);
	assert_string_equal(e->detail, "{\"restarted\":true,\"derived\":true}");
	assert_false(sample_of(b, A, "cpu.util", NULL));
	const struct vg_resource *r = find_res(b, A "-vda");
	assert_non_null(r);
	assert_int_equal(r->state, VG_RSTATE_ENDED);
	assert_int_equal(r->nsamples, 0);
	assert_int_equal(find_res(b, A "-tap1")->state, VG_RSTATE_ACTIVE);
	r = find_res(b, B);
	assert_non_null(r);
	assert_int_equal(r->state, VG_RSTATE_ENDED);
	assert_string_equal(r->name, "b");
	find_event(b, B, VG_EV_STOPPED, &cnt);
	assert_int_equal(cnt, 1);
	vg_batch_free(b);

	/* B is not reported again; A's flavor changed: RESIZED */
	d[0].meta = &meta_a_big;
	d[0].cpu_time_s = 4;
	b = apply(p, d, 1, T0 + 50000);
	assert_null(find_res(b, B));
	assert_null(find_res(b, A "-vda"));
	e = find_event(b, A, VG_EV_RESIZED, &cnt);
	assert_int_equal(cnt, 1);
	assert_non_null(strstr(e->detail, "\"flavor\":\"m1.large\""));
	assert_string_equal(find_res(b, A)->flavor, "m1.large");
	vg_batch_free(b);

	/* A shut down (still defined): STOPPED, its NIC ends */
	d[0].state = 5;
	d[0].active = 0;
	d[0].id = -1;
	d[0].nnics = 0;
	b = apply(p, d, 1, T0 + 60000);
	find_event(b, A, VG_EV_STOPPED, &cnt);
	assert_int_equal(cnt, 1);
	assert_int_equal(find_res(b, A "-tap1")->state, VG_RSTATE_ENDED);
	assert_int_equal(find_res(b, A)->state, VG_RSTATE_ACTIVE);
	assert_false(sample_of(b, A, "cpu.time", NULL));
	vg_batch_free(b);

	/* A undefined while shut off: ENDED + UNDEFINED, once */
	b = apply(p, d, 0, T0 + 70000);
	r = find_res(b, A);
	assert_non_null(r);
	assert_int_equal(r->state, VG_RSTATE_ENDED);
	assert_string_equal(r->project, "p1");
	find_event(b, A, VG_EV_UNDEFINED, &cnt);
	assert_int_equal(cnt, 1);
	vg_batch_free(b);
	b = apply(p, d, 0, T0 + 80000);
	assert_int_equal(b->nres, 0);
	assert_int_equal(b->nevents, 0);
	vg_batch_free(b);
	vg_poller_free(p);
}

static void test_vanished_with_devices(void **state)
{
	struct vg_poller *p = new_poller();
	struct vg_lv_domain d;
	struct vg_lv_disk k;
	struct vg_lv_nic n;
	struct vg_batch *b;
	size_t cnt;

	init_dom(&d, A, "a", 1, 1, &meta_a);
	d.cpu_time_s = 1;
	init_disk(&k, 1, 1, 1, 1, 1, 1);
	init_nic(&n);
	d.disks = &k;
	d.ndisks = 1;
	d.nics = &n;
	d.nnics = 1;
	vg_batch_free(apply(p, &d, 1, T0));
	b = apply(p, &d, 0, T0 + 10000);
	assert_int_equal(b->nres, 3);
	for (size_t i = 0; i < b->nres; i++) {
		assert_int_equal(b->res[i].state, VG_RSTATE_ENDED);
		assert_string_equal(b->res[i].project, "p1");
	}
	assert_non_null(find_res(b, A "-vda"));
	assert_string_equal(find_res(b, A "-tap1")->parent, A);
	const struct vg_event *e = find_event(b, A, VG_EV_STOPPED, &cnt);
	assert_int_equal(cnt, 1);
	assert_string_equal(e->detail, "{\"vanished\":true,\"derived\":true}");
	vg_batch_free(b);
	vg_poller_free(p);
}

/* Names from libvirt that break the collector's rules (a domain name with
 * a newline and a terminal escape, a NIC target with a tab, a project
 * with a C1 character) never make the whole batch unsendable: names are
 * cleaned, a device whose id cannot be a name is left out, and the batch
 * encodes. */
static void test_hostile_libvirt_names(void **state)
{
	struct vg_poller *p = new_poller();
	struct vg_domxml meta;
	struct vg_lv_domain d;
	struct vg_lv_disk k;
	struct vg_lv_nic n;
	struct vg_batch *b;
	uint8_t *buf;
	size_t len;

	assert_int_equal(vg_domxml_parse(
				 "<domain><name>x</name><metadata>"
				 "<vg:owner xmlns:vg='http://vigie.dev/xmlns/1' project='p&#x85;1' "
				 "user='u1' flavor='m1&#9;small'/>"
				 "</metadata></domain>",
				 &meta),
			 0);
	init_dom(&d, A, "evil\n\x1b]0;title\x07name", 1, 1, &meta);
	d.cpu_time_s = 1;
	init_disk(&k, 1, 1, 1, 1, 1, 1);
	init_nic(&n);
	n.dev = "tap\t1";
	d.disks = &k;
	d.ndisks = 1;
	d.nics = &n;
	d.nnics = 1;
	b = apply(p, &d, 1, T0);
	assert_int_equal(vg_wire_encode(b, &buf, &len), 0);
	free(buf);
	const struct vg_resource *r = find_res(b, A);
	assert_non_null(r);
	assert_string_equal(r->name, "evil??]0;title?name");
	assert_string_equal(r->project, "p??1");
	assert_string_equal(r->flavor, "m1?small");
	assert_non_null(find_res(b, A "-vda"));
	assert_null(find_res(b, A "-tap\t1"));
	/* the left-out NIC took its samples with it */
	for (size_t i = 0; i < b->nres; i++)
		assert_true(vg_name_valid(b->res[i].id));
	vg_batch_free(b);
	vg_poller_free(p);
	vg_domxml_clear(&meta);
}

/* A project in the domain's metadata with white space at either end
 * ("acme" + U+00A0, U+3000 + "acme") reads as acme: it is reported as
 * acme, not as another project the API lets nobody name, query or be
 * billed as; white space inside stays; only white space is "default". */
static void test_project_blank_ends(void **state)
{
	static const char *const cases[][2] = {
		{"acme&#xa0;", "acme"},
		{"&#x3000;acme ", "acme"},
		{"ac&#xa0;me", "ac\xc2\xa0me"},
		{"&#x2003; ", "default"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vg_poller *p = new_poller();
		struct vg_domxml meta;
		struct vg_lv_domain d;
		struct vg_batch *b;
		char xml[512];

		snprintf(xml, sizeof(xml),
			 "<domain><name>x</name><metadata>"
			 "<vg:owner xmlns:vg='http://vigie.dev/xmlns/1' project='%s' "
			 "user='u1'/></metadata></domain>",
			 cases[i][0]);
		assert_int_equal(vg_domxml_parse(xml, &meta), 0);
		init_dom(&d, A, "x", 1, 1, &meta);
		d.cpu_time_s = 1;
		b = apply(p, &d, 1, T0);
		for (size_t j = 0; j < b->nres; j++)
			if (strcmp(b->res[j].project, cases[i][1]))
				fail_msg("project '%s' reported as '%s', not '%s'",
					 cases[i][0], b->res[j].project, cases[i][1]);
		assert_non_null(find_res(b, A));
		vg_batch_free(b);
		vg_poller_free(p);
		vg_domxml_clear(&meta);
	}
}

/* A guest's agent says what file systems it has: 40 of them (loop mounts
 * of snaps, or a tenant mounting on purpose) made 160 fs.N attributes on
 * the instance, past the wire's 64 per resource, and the whole batch,
 * every instance of the host with its lifecycle events, failed to encode
 * and was lost, poll after poll. The instance keeps the file systems that
 * fit (first in mount-point order) and the batch goes out with the other
 * instance's values. */
static void test_guest_fs_bounded(void **state)
{
	struct vg_poller *p = new_poller();
	struct vg_lv_domain d[2];
	struct vg_lv_fs fs[40];
	char mp[40][1100];
	struct vg_batch *b;
	uint8_t *buf;
	size_t len;

	(void)state;
	init_dom(&d[0], A, "a", 1, 1, &meta_a);
	init_dom(&d[1], B, "b", 2, 1, &meta_b);
	d[0].cpu_time_s = d[1].cpu_time_s = 1;
	for (int i = 0; i < 40; i++) {
		memset(mp[i], 'm', 1023);
		mp[i][1023] = 0;
		snprintf(mp[i], 8, "/m%02d", i);
		mp[i][4] = 'x';
		fs[i] = (struct vg_lv_fs){.mountpoint = mp[i], .device = "/dev/loop0", .fstype = "squashfs", .disk = "vda", .total = 1000, .used = 10};
	}
	d[0].fs = fs;
	d[0].nfs = 40;
	b = apply(p, d, 2, T0);
	assert_int_equal(vg_wire_encode(b, &buf, &len), 0);
	free(buf);
	const struct vg_resource *r = find_res(b, A);
	assert_non_null(r);
	assert_true(r->nattrs <= VG_WIRE_MAX_ATTRS_PER_RES);
	assert_non_null(attr_of(b, A, "fs.0.mountpoint"));
	assert_true(must(b, A, "fs.0.total") == 1000);
	const struct vg_attr *a = vg_resource_attrs(b, r);
	for (uint32_t i = 0; i < r->nattrs; i++)
		assert_string_not_equal(a[i].key, "fs.39.mountpoint");
	assert_false(sample_of(b, A, "fs.39.total", NULL));
	assert_true(must(b, B, "power.state") == 1);
	vg_batch_free(b);
	vg_poller_free(p);
}

static void test_hook(void **state)
{
	struct vg_poller *p = new_poller();
	struct vg_batch *b;
	struct vg_poll_status st;
	size_t cnt;

	/* a libvirt lifecycle callback (any thread) queues an event with
	 * its own time; the next poll carries it (de-duplication against
	 * derived events is tested in libvirt_test.c with a real poll) */
	assert_int_equal(vg_poller_push_event(p, A, VG_EV_SUSPENDED, T0 + 4321,
					      "{\"src\":\"event\"}"),
			 0);
	assert_int_equal(vg_poller_push_event(p, A, 99, T0, NULL), -EINVAL);
	assert_int_equal(vg_poller_push_event(p, NULL, VG_EV_STARTED, T0, NULL), -EINVAL);
	b = vg_batch_new("h1", 1, 1, T0 + 10000);
	assert_int_equal(vg_poller_poll(p, T0 + 10000, NULL, 0, b, &st), 0);
	const struct vg_event *e = find_event(b, A, VG_EV_SUSPENDED, &cnt);
	assert_int_equal(cnt, 1);
	assert_true(e->time_ms == T0 + 4321);
	assert_string_equal(e->detail, "{\"src\":\"event\"}");
	vg_batch_free(b);
	/* delivered once */
	b = vg_batch_new("h1", 1, 2, T0 + 20000);
	assert_int_equal(vg_poller_poll(p, T0 + 20000, NULL, 0, b, &st), 0);
	assert_int_equal(b->nevents, 0);
	vg_batch_free(b);
	vg_poller_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_derived_values),
		cmocka_unit_test(test_vcpu_contention),
		cmocka_unit_test(test_host_values),
		cmocka_unit_test(test_lifecycle),
		cmocka_unit_test(test_vanished_with_devices),
		cmocka_unit_test(test_hostile_libvirt_names),
		cmocka_unit_test(test_project_blank_ends),
		cmocka_unit_test(test_guest_fs_bounded),
		cmocka_unit_test(test_hook),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
