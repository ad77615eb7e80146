/*
 * store_test.c — the RRD store: values written come back (gauges exact,
 * counters as hand-computed rates), a counter reset gives an unknown point,
 * duplicates are skipped and counted (also across a reopen), hostile ids
 * stay inside the data dir and never collide, `rrdtool info` and `rrdtool
 * fetch` read the files and agree with vg_store_fetch, archives are picked
 * by resolution and coverage, a full disk answers -EAGAIN, and a
 * write-through store has every batch in the backend when it returns
 * and syncs the backend (retiring its journal) on [storage]
 * sync_interval, not after every batch; a series file deleted while the
 * store runs is created again by the next write, with its archive
 * policy, and that write's values are in it.
 *
 * Every case runs twice: on the files backend, then on the rrdcached
 * backend with a real daemon (-b -B -O -R, unix socket) started per case,
 * where hostile ids stay inside the daemon's base dir and `rrdtool
 * info/fetch --daemon ADDR` agree with vg_store_fetch.
 *
 * Time is driven through sample timestamps (T0 + 60 s steps), never slept.
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
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/name.h"
#include "vigie/rrdcached.h"
#include "vigie/store.h"
#include "rrdcached_harness.h"
#include "../support/journal_segments.h"
#include "../support/store_series.h"

/* 0: files backend; 1: rrdcached (the daemon of the current case). */
static int g_rrdcached;
static struct hrd_daemon g_daemon;

#define T0 1699999980LL /* a multiple of the 60 s step */
#define MS(s) ((int64_t)(s)*1000)

struct fixture {
	char dir[64];
	struct vg_config cfg;
	struct vg_store *s;
};

static void rm_rf(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static int setup_archives(void **state, const char *archives)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	snprintf(f->dir, sizeof(f->dir), "/tmp/vigie-store-test.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	vg_config_defaults(&f->cfg);
	if (archives && vg_config_parse_archives(archives, f->cfg.archives,
						 VG_MAX_ARCHIVES, &f->cfg.narchives))
		return -1;
	if (g_rrdcached) {
		static const char *const extra[] = {"-O", "-R", NULL};
		if (hrd_start(&g_daemon, NULL, extra))
			return -1;
		snprintf(f->cfg.storage_backend, sizeof(f->cfg.storage_backend), "rrdcached");
		snprintf(f->cfg.storage_daemons, sizeof(f->cfg.storage_daemons), "%.1000s",
			 g_daemon.unix_addr);
		snprintf(f->cfg.storage_daemon_base, sizeof(f->cfg.storage_daemon_base), "%.500s",
			 g_daemon.base);
	}
	if (vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

/* Small archives: fast to create, same logic as the defaults. */
static int setup(void **state)
{
	return setup_archives(state, "1m:1d,5m:7d,1h:30d");
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vg_store_close(f->s);
	rm_rf(f->dir);
	free(f);
	if (g_rrdcached)
		hrd_cleanup(&g_daemon);
	return 0;
}

/* Where a series is for rrdtool, and the --daemon option it needs. */
static void locate(struct vg_store *s, int rtype, const char *id, const char *metric,
		   char *path, size_t pathlen, char *opt, size_t optlen)
{
	char addr[256];

	assert_int_equal(vg_store_locate(s, rtype, id, metric, path, pathlen, addr,
					 sizeof(addr)),
			 0);
	assert_true(!g_rrdcached == !addr[0]);
	snprintf(opt, optlen, addr[0] ? "--daemon '%s'" : "%s", addr);
}

/* A batch with one resource and one sample. */
static struct vg_batch *one(int rtype, const char *id, int64_t t_ms,
			    const char *metric, int kind, double v)
{
	struct vg_batch *b = vg_batch_new("h1", 1, 1, t_ms);

	assert_non_null(b);
	assert_non_null(vg_batch_resource(b, (uint8_t)rtype, id, NULL, NULL, t_ms));
	assert_int_equal(vg_batch_sample(b, metric, (uint8_t)kind, v), 0);
	return b;
}

static void write_one(struct vg_store *s, int rtype, const char *id,
		      int64_t t_ms, const char *metric, int kind, double v)
{
	struct vg_batch *b = one(rtype, id, t_ms, metric, kind, v);

	assert_int_equal(vg_store_write_batch(s, b), 0);
	vg_batch_free(b);
}

/* node1's and node2's load1 at minutes [from, to): 1 + m and 11 + m. */
static void write_nodes(struct fixture *f, int from, int to)
{
	for (int m = from; m < to; m++) {
		write_one(f->s, VG_RT_HOST, "node1", MS(T0 + 60 * m), "load1", VG_KIND_GAUGE, 1 + m);
		write_one(f->s, VG_RT_HOST, "node2", MS(T0 + 60 * m), "load1", VG_KIND_GAUGE,
			  11 + m);
	}
}

/* Minutes 0-2 of node1's and node2's load1 written and flushed. */
static void nodes_flushed(struct fixture *f)
{
	write_nodes(f, 0, 3);
	assert_int_equal(vg_store_flush(f->s), 0);
}

static void test_gauge_and_counter(void **state)
{
	struct fixture *f = *state;
	struct vg_series g, c;
	struct vg_store_stats st;
	double total = 0;

	/* 11 polls, one minute apart: gauge 100, 110, ...; counter grows by
	 * 30*i per minute, so its rate over minute i is 30*i/60 = 0.5*i. */
	for (int i = 0; i <= 10; i++) {
		struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)i + 1, MS(T0 + 60 * i));
		total += 30.0 * i;
		vg_batch_resource(b, VG_RT_INSTANCE, "inst-1", "vm", NULL, MS(T0 + 60 * i));
		vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 100 + 10 * i);
		vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, total);
		assert_int_equal(vg_store_write_batch(f->s, b), 0);
		vg_batch_free(b);
	}
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.files_created, 2);
	assert_int_equal(st.values_written, 22);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(st.values_duplicate, 0);

	assert_int_equal(vg_store_fetch(f->s, VG_RT_INSTANCE, "inst-1", "memory.used",
					VG_CF_AVERAGE, MS(T0), MS(T0 + 600), 60, 0, &g),
			 0);
	assert_int_equal(g.resolution_s, 60);
	assert_int_equal(g.kind, VG_KIND_GAUGE);
	assert_int_equal(g.n, 10);
	for (size_t k = 0; k < g.n; k++) {
		/* the point named T0+60k covers (T0+60k, T0+60(k+1)] */
		assert_int_equal(g.points[k].time_ms, MS(T0 + 60 * (int64_t)k));
		assert_true(g.points[k].value == 100 + 10 * (double)(k + 1));
	}

	assert_int_equal(vg_store_fetch(f->s, VG_RT_INSTANCE, "inst-1", "cpu.time",
					VG_CF_AVERAGE, MS(T0), MS(T0 + 600), 60, 0, &c),
			 0);
	assert_int_equal(c.kind, VG_KIND_COUNTER);
	assert_int_equal(c.n, 10);
	for (size_t k = 0; k < c.n; k++) {
		double want = 30.0 * (double)(k + 1) / 60.0;
		assert_int_equal(c.points[k].time_ms, MS(T0 + 60 * (int64_t)k));
		assert_true(fabs(c.points[k].value - want) < 1e-9);
	}
	vg_series_free(&g);
	vg_series_free(&c);
	vg_series_free(NULL);

	/* A range that ends in the far future (remote read accepts any
	 * int64 ms) is cut a bounded number of rows after the last update,
	 * not handed to librrd, which would allocate a row for every
	 * minute until then (found by expr_fuzz). */
	assert_int_equal(vg_store_fetch(f->s, VG_RT_INSTANCE, "inst-1", "memory.used",
					VG_CF_AVERAGE, MS(T0), INT64_MAX / 4, 60, 1, &g),
			 0);
	assert_true(g.n >= 10 && g.n <= 100000 + 20);
	assert_true(g.points[0].value == 110);
	vg_series_free(&g);
	/* The very end of int64 too: rounding it up to a second must not
	 * overflow (undefined behaviour; the sanitizer build traps it). */
	assert_int_equal(vg_store_fetch(f->s, VG_RT_INSTANCE, "inst-1", "memory.used",
					VG_CF_AVERAGE, MS(T0), INT64_MAX, 60, 1, &g),
			 0);
	assert_true(g.n >= 10 && g.n <= 100000 + 20);
	assert_true(g.points[0].value == 110);
	vg_series_free(&g);

	/* MIN and MAX of a one-minute point are the point itself. */
	assert_int_equal(vg_store_fetch(f->s, VG_RT_INSTANCE, "inst-1", "memory.used",
					VG_CF_MAX, MS(T0 + 60), MS(T0 + 120), 60, 0, &g),
			 0);
	assert_true(g.n >= 1);
	assert_true(g.points[0].value == 120);
	vg_series_free(&g);
}

static void test_counter_reset(void **state)
{
	struct fixture *f = *state;
	static const double v[] = {1000, 2000, 3000, 100, 1100, 2100};
	struct vg_series s;
	int unknown = 0;

	for (int i = 0; i < 6; i++)
		write_one(f->s, VG_RT_NIC, "inst-1-tap0", MS(T0 + 60 * i),
			  "rx.bytes", VG_KIND_COUNTER, v[i]);
	assert_int_equal(vg_store_fetch(f->s, VG_RT_NIC, "inst-1-tap0", "rx.bytes",
					VG_CF_AVERAGE, MS(T0), MS(T0 + 240), 60, 1, &s),
			 0);
	assert_int_equal(s.n, 5);
	for (size_t k = 0; k < s.n; k++) {
		if (isnan(s.points[k].value)) {
			unknown++;
			/* the minute of the reset: (T0+120, T0+180] */
			assert_int_equal(s.points[k].time_ms, MS(T0 + 120));
		} else {
			assert_true(fabs(s.points[k].value - 1000.0 / 60) < 1e-9);
		}
	}
	assert_int_equal(unknown, 1);
	vg_series_free(&s);
	/* Without keep_unknown the unknown point is dropped; none negative. */
	assert_int_equal(vg_store_fetch(f->s, VG_RT_NIC, "inst-1-tap0", "rx.bytes",
					VG_CF_MIN, MS(T0), MS(T0 + 300), 60, 0, &s),
			 0);
	assert_int_equal(s.n, 4);
	for (size_t k = 0; k < s.n; k++)
		assert_true(s.points[k].value >= 0);
	vg_series_free(&s);
}

static void test_duplicates(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	char err[256];

	write_one(f->s, VG_RT_HOST, "node1", MS(T0), "load1", VG_KIND_GAUGE, 1);
	write_one(f->s, VG_RT_HOST, "node1", MS(T0 + 60), "load1", VG_KIND_GAUGE, 2);
	/* the same batch again, and an older one */
	write_one(f->s, VG_RT_HOST, "node1", MS(T0 + 60), "load1", VG_KIND_GAUGE, 2);
	write_one(f->s, VG_RT_HOST, "node1", MS(T0), "load1", VG_KIND_GAUGE, 1);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_written, 2);
	assert_int_equal(st.values_duplicate, 2);
	assert_int_equal(st.write_errors, 0);

	/* Sub-second times are kept: .500 then .700 in the same second. */
	write_one(f->s, VG_RT_HOST, "node1", MS(T0 + 120) + 500, "load1", VG_KIND_GAUGE, 3);
	write_one(f->s, VG_RT_HOST, "node1", MS(T0 + 120) + 700, "load1", VG_KIND_GAUGE, 4);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_written, 4);

	/* After a reopen the store learns last updates from the files. */
	vg_store_close(f->s);
	assert_int_equal(vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)), 0);
	write_one(f->s, VG_RT_HOST, "node1", MS(T0 + 60), "load1", VG_KIND_GAUGE, 2);
	write_one(f->s, VG_RT_HOST, "node1", MS(T0 + 120) + 700, "load1", VG_KIND_GAUGE, 4);
	write_one(f->s, VG_RT_HOST, "node1", MS(T0 + 120) + 600, "load1", VG_KIND_GAUGE, 4);
	write_one(f->s, VG_RT_HOST, "node1", MS(T0 + 180), "load1", VG_KIND_GAUGE, 5);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_duplicate, 3);
	assert_int_equal(st.values_written, 1);
	assert_int_equal(st.write_errors, 0);
}

static void test_rejects(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	struct vg_batch *b;
	char longid[VG_NAME_MAX + 1];

	b = one(VG_RT_INSTANCE, "i1", MS(T0), "x", VG_KIND_GAUGE, 1);
	b->samples[0].value = NAN;
	assert_int_equal(vg_store_write_batch(f->s, b), 0);
	b->samples[0].value = INFINITY;
	assert_int_equal(vg_store_write_batch(f->s, b), 0);
	b->samples[0].value = 1;
	b->samples[0].kind = 9; /* unknown kind */
	assert_int_equal(vg_store_write_batch(f->s, b), 0);
	vg_batch_free(b);
	write_one(f->s, VG_RT_INSTANCE, "bad\x01id", MS(T0), "x", VG_KIND_GAUGE, 1);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_rejected, 4);
	assert_int_equal(st.values_written, 0);
	assert_int_equal(st.files_created, 0);

	/* every valid name is storable: 79 bytes that all need escaping make
	 * a 237-byte file name (kept as is), 200 make 600 bytes, over
	 * NAME_MAX (a prefix and a hash: vg_name_component) */
	memset(longid, '/', 79);
	longid[79] = '\0';
	write_one(f->s, VG_RT_INSTANCE, longid, MS(T0), longid, VG_KIND_GAUGE, 1);
	memset(longid, '/', VG_NAME_MAX);
	longid[VG_NAME_MAX] = '\0';
	write_one(f->s, VG_RT_INSTANCE, longid, MS(T0), longid, VG_KIND_GAUGE, 1);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_written, 2);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(st.values_rejected, 4);
}

static int prefix(const char *p, const char *pre)
{
	return strncmp(p, pre, strlen(pre)) == 0;
}

static void test_hostile_ids(void **state)
{
	struct fixture *f = *state;
	static const char *ids[] = {"../../etc/passwd", "a/b", "a%2Fb", ".hidden",
				    "%2e%2e", "..", ".", "..%2F..", "a\\b", "sp ace"};
	const size_t n = sizeof(ids) / sizeof(ids[0]);
	char root[PATH_MAX], rrd[PATH_MAX + 8], path[PATH_MAX], real[PATH_MAX];
	struct vg_store_stats st;
	FILE *p;
	char cmd[PATH_MAX + 64], line[2 * PATH_MAX];
	size_t files = 0;

	char opt[300], base[PATH_MAX];

	assert_non_null(realpath(f->dir, root));
	snprintf(rrd, sizeof(rrd), "%s/rrd/", root);
	if (g_rrdcached) {
		assert_non_null(realpath(g_daemon.base, base));
		snprintf(rrd, sizeof(rrd), "%s/", base);
	}
	for (size_t i = 0; i < n; i++)
		write_one(f->s, VG_RT_INSTANCE, ids[i], MS(T0), "m/../../x",
			  VG_KIND_GAUGE, (double)i);
	for (size_t i = 0; i < n; i++)
		write_one(f->s, VG_RT_INSTANCE, ids[i], MS(T0 + 60), "m/../../x",
			  VG_KIND_GAUGE, (double)i);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.files_created, n);
	assert_int_equal(st.values_rejected, 0);

	for (size_t i = 0; i < n; i++) {
		struct vg_series s;
		locate(f->s, VG_RT_INSTANCE, ids[i], "m/../../x", path, sizeof(path), opt,
		       sizeof(opt));
		assert_non_null(realpath(path, real));
		assert_true(prefix(real, rrd));
		/* no "..", "." or symlink was resolved inside the store */
		if (!g_rrdcached) {
			snprintf(line, sizeof(line), "%s%s", root, path + strlen(f->dir));
			assert_string_equal(real, line);
		}
		/* each id reads back its own value: no two collided */
		assert_int_equal(vg_store_fetch(f->s, VG_RT_INSTANCE, ids[i], "m/../../x",
						VG_CF_AVERAGE, MS(T0), MS(T0 + 60), 60, 0, &s),
				 0);
		assert_int_equal(s.n, 1);
		assert_true(s.points[0].value == (double)i);
		vg_series_free(&s);
	}
	/* nothing anywhere but the n files under rrd/instance (and the
	 * store's header undo file, journal/undo, and its known set,
	 * journal/known) */
	snprintf(cmd, sizeof(cmd), g_rrdcached ? "find '%s' -type f" : "find '%s' -type f ! -path '*/journal/undo' ! -path '*/journal/known'", g_rrdcached ? rrd : root);
	assert_non_null(p = popen(cmd, "r"));
	while (fgets(line, sizeof(line), p)) {
		char want[PATH_MAX + 16];
		snprintf(want, sizeof(want), "%sinstance/", rrd);
		assert_true(prefix(line, want));
		files++;
	}
	pclose(p);
	assert_int_equal(files, n);
	assert_int_equal(access("/tmp/etc/passwd.rrd", F_OK), -1);
	if (g_rrdcached) { /* and no series file in the data dir */
		snprintf(cmd, sizeof(cmd), "find '%s' -name '*.rrd*' | grep -c .", root);
		assert_non_null(p = popen(cmd, "r"));
		assert_non_null(fgets(line, sizeof(line), p));
		pclose(p);
		assert_int_equal(atoi(line), 0);
	}
}

/* Run `rrdtool fetch` and compare every printed row with vg_store_fetch. */
static void test_rrdtool_agrees(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX], cmd[PATH_MAX + 512], line[512];
	struct vg_series s;
	FILE *p;
	int ds = 0, rra = 0, matched = 0;
	double total = 0;

	for (int i = 0; i <= 10; i++) {
		total += 1000.0 * (i % 3 + 1);
		write_one(f->s, VG_RT_DISK, "inst-1-vda", MS(T0 + 60 * i), "rd.bytes",
			  VG_KIND_COUNTER, total);
	}
	char opt[300];

	locate(f->s, VG_RT_DISK, "inst-1-vda", "rd.bytes", path, sizeof(path), opt, sizeof(opt));
	snprintf(cmd, sizeof(cmd), "rrdtool info %s '%s' 2>&1", opt, path);
	assert_non_null(p = popen(cmd, "r"));
	while (fgets(line, sizeof(line), p)) {
		if (!strcmp(line, "ds[value].type = \"DDERIVE\"\n"))
			ds = 1;
		if (!strcmp(line, "ds[value].min = 0.0000000000e+00\n"))
			ds++;
		if (strstr(line, "].cf = "))
			rra++;
	}
	assert_int_equal(pclose(p), 0);
	assert_int_equal(ds, 2);
	assert_int_equal(rra, 9); /* 3 tiers x AVERAGE, MIN, MAX */

	assert_int_equal(vg_store_fetch(f->s, VG_RT_DISK, "inst-1-vda", "rd.bytes",
					VG_CF_AVERAGE, MS(T0), MS(T0 + 600), 60, 0, &s),
			 0);
	assert_int_equal(s.n, 10);
	snprintf(cmd, sizeof(cmd), "rrdtool fetch %s '%s' AVERAGE -r 60 -s %lld -e %lld 2>&1",
		 opt, path, T0, T0 + 600);
	assert_non_null(p = popen(cmd, "r"));
	while (fgets(line, sizeof(line), p)) {
		long long t;
		char val[64];
		if (sscanf(line, "%lld: %63s", &t, val) != 2)
			continue;
		double v = strtod(val, NULL); /* "-nan" for unknown */
		for (size_t k = 0; k < s.n; k++) {
			/* rrdtool names a row by its end, vigie by its start */
			if (s.points[k].time_ms != MS(t - 60))
				continue;
			assert_true(fabs(s.points[k].value - v) <= 1e-9 * fabs(v));
			matched++;
		}
	}
	assert_int_equal(pclose(p), 0);
	assert_int_equal(matched, 10);
	vg_series_free(&s);
}

static void test_archive_selection(void **state)
{
	struct fixture *f = *state;
	struct vg_series s, fine, lo, hi;
	const int64_t start = 1700006400; /* a multiple of 3600 */
	const int n = 300;                /* five hours of minutes */
	const int64_t last = start + 60 * (n - 1);

	for (int i = 0; i < n; i++)
		write_one(f->s, VG_RT_HOST, "node1", MS(start + 60 * i), "mem.used",
			  VG_KIND_GAUGE, (double)(i % 17));

	/* auto: finest archive whose retention covers start */
	assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, "node1", "mem.used", VG_CF_AVERAGE,
					MS(last - 7200), MS(last), 0, 0, &s),
			 0);
	assert_int_equal(s.resolution_s, 60);
	vg_series_free(&s);
	assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, "node1", "mem.used", VG_CF_AVERAGE,
					MS(last - 3 * 86400), MS(last), 0, 0, &s),
			 0);
	assert_int_equal(s.resolution_s, 300);
	vg_series_free(&s);
	assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, "node1", "mem.used", VG_CF_AVERAGE,
					MS(last - 20 * 86400), MS(last), 0, 0, &s),
			 0);
	assert_int_equal(s.resolution_s, 3600);
	vg_series_free(&s);
	/* nothing covers 60 days back: the longest-reaching archive */
	assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, "node1", "mem.used", VG_CF_AVERAGE,
					MS(last - 60 * 86400), MS(last), 0, 0, &s),
			 0);
	assert_int_equal(s.resolution_s, 3600);
	vg_series_free(&s);

	/* explicit 300 s: each point is the mean (min, max) of its five
	 * one-minute points */
	assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, "node1", "mem.used", VG_CF_AVERAGE,
					MS(start), MS(last), 60, 0, &fine),
			 0);
	assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, "node1", "mem.used", VG_CF_AVERAGE,
					MS(start), MS(last), 300, 0, &s),
			 0);
	assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, "node1", "mem.used", VG_CF_MIN,
					MS(start), MS(last), 300, 0, &lo),
			 0);
	assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, "node1", "mem.used", VG_CF_MAX,
					MS(start), MS(last), 300, 0, &hi),
			 0);
	assert_int_equal(s.resolution_s, 300);
	assert_true(s.n >= 55);
	assert_int_equal(lo.n, s.n);
	assert_int_equal(hi.n, s.n);
	for (size_t k = 0; k < s.n; k++) {
		double sum = 0, mn = INFINITY, mx = -INFINITY;
		int cnt = 0;
		for (size_t j = 0; j < fine.n; j++) {
			int64_t t = fine.points[j].time_ms;
			if (t < s.points[k].time_ms || t >= s.points[k].time_ms + 300000)
				continue;
			sum += fine.points[j].value;
			mn = fmin(mn, fine.points[j].value);
			mx = fmax(mx, fine.points[j].value);
			cnt++;
		}
		assert_int_equal(cnt, 5);
		assert_true(fabs(s.points[k].value - sum / 5) < 1e-9);
		assert_true(lo.points[k].value == mn);
		assert_true(hi.points[k].value == mx);
		assert_true(mn < mx); /* i % 17 varies inside every 5 minutes */
	}
	vg_series_free(&s);
	vg_series_free(&fine);
	vg_series_free(&lo);
	vg_series_free(&hi);

	/* explicit 60 s reaching back past its 1-day retention: still 60 s,
	 * clamped to what that archive holds */
	assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, "node1", "mem.used", VG_CF_AVERAGE,
					MS(last - 3 * 86400), MS(last), 60, 1, &s),
			 0);
	assert_int_equal(s.resolution_s, 60);
	assert_true(s.n > 0 && s.n <= 1441);
	assert_true(s.points[0].time_ms >= MS(last - 86400 - 60));
	assert_true(s.points[s.n - 1].value == (double)((n - 1) % 17) ||
		    s.points[s.n - 2].value == (double)((n - 1) % 17));
	vg_series_free(&s);

	/* no such archive, series, or bad arguments */
	assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, "node1", "mem.used", VG_CF_AVERAGE,
					MS(start), MS(last), 120, 0, &s),
			 -EINVAL);
	assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, "node1", "nope", VG_CF_AVERAGE,
					MS(start), MS(last), 0, 0, &s),
			 -ENOENT);
	assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, "node1", "mem.used", 7,
					MS(start), MS(last), 0, 0, &s),
			 -EINVAL);
	assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, "node1", "mem.used", VG_CF_AVERAGE,
					MS(last), MS(start), 0, 0, &s),
			 -EINVAL);
	assert_int_equal(vg_store_fetch(f->s, 42, "node1", "mem.used", VG_CF_AVERAGE,
					MS(start), MS(last), 0, 0, &s),
			 -EINVAL);
}

/* The default tiers (1m:15d, 5m:63d, 1h:455d) as `rrdtool info` sees them. */
static void test_default_layout(void **state)
{
	struct fixture *f;
	char path[PATH_MAX], cmd[PATH_MAX + 400], line[512], opt[300];
	FILE *p;
	int rows21600 = 0, rows18144 = 0, rows10920 = 0, step = 0, hb = 0, gauge = 0;

	assert_int_equal(setup_archives((void **)&f, NULL), 0);
	write_one(f->s, VG_RT_INSTANCE, "6695eb01-f6a4-8304-79aa-97f2502e193f", MS(T0),
		  "memory.used", VG_KIND_GAUGE, 5);
	locate(f->s, VG_RT_INSTANCE, "6695eb01-f6a4-8304-79aa-97f2502e193f", "memory.used",
	       path, sizeof(path), opt, sizeof(opt));
	assert_non_null(strstr(path, g_rrdcached ? "/base/instance/6695eb01-f6a4-8304-79aa-97f2502e193f/memory.used.rrd" : "/rrd/instance/6695eb01-f6a4-8304-79aa-97f2502e193f/memory.used.rrd"));
	snprintf(cmd, sizeof(cmd), "rrdtool info %s '%s'", opt, path);
	assert_non_null(p = popen(cmd, "r"));
	while (fgets(line, sizeof(line), p)) {
		rows21600 += !!strstr(line, ".rows = 21600\n");
		rows18144 += !!strstr(line, ".rows = 18144\n");
		rows10920 += !!strstr(line, ".rows = 10920\n");
		step += !strcmp(line, "step = 60\n");
		hb += !strcmp(line, "ds[value].minimal_heartbeat = 600\n");
		gauge += !strcmp(line, "ds[value].type = \"GAUGE\"\n");
	}
	assert_int_equal(pclose(p), 0);
	assert_int_equal(rows21600, 3);
	assert_int_equal(rows18144, 3);
	assert_int_equal(rows10920, 3);
	assert_int_equal(step + hb + gauge, 3);
	teardown((void **)&f);
}

/* A disk that fills up: the store asks for a retry, nothing is lost. */
static void test_disk_full(void **state)
{
	struct vg_batch *b;
	struct vg_store_stats st;
	char dir[] = "/tmp/vigie-store-full.XXXXXX", err[256];
	struct vg_config cfg;
	struct vg_store *s;
	int rc = 0;

	if (g_rrdcached) { /* the collector's own disk: files only */
		print_message("# files backend only\n");
		skip();
	}
	if (!mkdtemp(dir)) {
		print_message("# skipped: cannot create %s\n", dir);
		skip();
	}
	if (mount("tmpfs", dir, "tmpfs", 0, "size=256k")) {
		rmdir(dir);
		print_message("# skipped: cannot mount a tmpfs (needs root and "
			      "CAP_SYS_ADMIN)\n");
		skip();
	}
	vg_config_defaults(&cfg); /* default tiers: 1.2 MB per file */
	assert_int_equal(vg_store_open(dir, &cfg, &s, err, sizeof(err)), 0);
	b = one(VG_RT_INSTANCE, "i1", MS(T0), "memory.used", VG_KIND_GAUGE, 1);
	rc = vg_store_write_batch(s, b);
	vg_store_get_stats(s, &st);
	vg_batch_free(b);
	vg_store_close(s);
	umount(dir);
	rm_rf(dir);
	assert_int_equal(rc, -EAGAIN);
	assert_int_equal(st.files_created, 0);
	assert_int_equal(st.write_errors, 0);
}

static void test_cf_parse(void **state)
{
	assert_int_equal(vg_cf_parse("mean"), VG_CF_AVERAGE);
	assert_int_equal(vg_cf_parse("average"), VG_CF_AVERAGE);
	assert_int_equal(vg_cf_parse("min"), VG_CF_MIN);
	assert_int_equal(vg_cf_parse("max"), VG_CF_MAX);
	assert_int_equal(vg_cf_parse("MAX"), -EINVAL);
	assert_int_equal(vg_cf_parse(""), -EINVAL);
	assert_int_equal(vg_cf_parse(NULL), -EINVAL);
}

static void test_open_errors(void **state)
{
	struct vg_config cfg;
	struct vg_store *s = (void *)1;
	char err[256] = "";

	vg_config_defaults(&cfg);
	cfg.storage_step_s = 7; /* 60 s tier is not a multiple of 7 */
	assert_int_equal(vg_store_open("/tmp", &cfg, &s, err, sizeof(err)), -EINVAL);
	assert_null(s);
	assert_true(strlen(err) > 0);
	vg_config_defaults(&cfg);
	assert_true(vg_store_open("/proc/nonexistent/dir", &cfg, &s, err, sizeof(err)) < 0);
	vg_store_close(NULL);

	/* a publish_heartbeat shorter than the step: refused, named (every
	 * published point would fill nothing) */
	vg_config_defaults(&cfg);
	cfg.storage_publish_heartbeat_s = 30;
	err[0] = '\0';
	s = (void *)1;
	assert_int_equal(vg_store_open("/tmp", &cfg, &s, err, sizeof(err)), -EINVAL);
	assert_null(s);
	assert_non_null(strstr(err, "publish_heartbeat"));

	/* [storage] write_through other than auto, yes, no: refused, named */
	char dir[] = "/tmp/vigie-store-wt.XXXXXX", cmd[64];
	assert_non_null(mkdtemp(dir));
	vg_config_defaults(&cfg);
	snprintf(cfg.storage_write_through, sizeof(cfg.storage_write_through), "maybe");
	err[0] = '\0';
	s = (void *)1;
	assert_int_equal(vg_store_open(dir, &cfg, &s, err, sizeof(err)), -EINVAL);
	assert_null(s);
	assert_non_null(strstr(err, "write_through"));
	assert_non_null(strstr(err, "maybe"));
	snprintf(cfg.storage_write_through, sizeof(cfg.storage_write_through), "yes");
	assert_int_equal(vg_store_open(dir, &cfg, &s, err, sizeof(err)), 0);
	vg_store_close(s);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* Write-through ([storage] write_through = yes): every batch is in the
 * backend when vg_store_write_batch returns, batch after batch, with more
 * series per batch than one backend call takes (256): the store reuses
 * one group of buffers for these flushes, which must start empty each
 * time. */
static void test_write_through_batches(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	char err[256];
	enum { NSERIES = 300,
	       NMIN = 6 };

	vg_store_close(f->s);
	snprintf(f->cfg.storage_write_through, sizeof(f->cfg.storage_write_through), "yes");
	/* The receiver's bound on a daemon is a quarter of the agents' ack
	 * timeout (1.25 s by default); 300 series on a loaded machine can
	 * take longer, and this case is about the buffers, not that bound:
	 * the longest bound (the daemon's 10 s I/O timeout). */
	f->cfg.agent_ack_timeout_ms = 40000;
	assert_int_equal(vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)), 0);
	for (int i = 0; i < NMIN; i++) {
		struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)i + 1, MS(T0 + 60 * i));
		assert_non_null(b);
		for (int r = 0; r < NSERIES; r++) {
			char id[16];
			snprintf(id, sizeof(id), "node%03d", r);
			assert_non_null(vg_batch_resource(b, VG_RT_HOST, id, NULL, NULL,
							  MS(T0 + 60 * i)));
			assert_int_equal(vg_batch_sample(b, "load.1", VG_KIND_GAUGE,
							 1000.0 * i + r),
					 0);
		}
		assert_int_equal(vg_store_write_batch(f->s, b), 0);
		vg_batch_free(b);
		vg_store_get_stats(f->s, &st);
		assert_int_equal(st.values_pending, 0);
	}
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_written, NSERIES * NMIN);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(st.values_duplicate, 0);
	for (int r = 0; r < NSERIES; r += 37) {
		struct vg_series g;
		char id[16];
		snprintf(id, sizeof(id), "node%03d", r);
		assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, id, "load.1", VG_CF_AVERAGE,
						MS(T0), MS(T0 + 60 * (NMIN - 1)), 60, 0, &g),
				 0);
		assert_int_equal(g.n, NMIN - 1);
		for (size_t k = 0; k < g.n; k++)
			assert_true(g.points[k].value == 1000.0 * (double)(k + 1) + r);
		vg_series_free(&g);
	}
}

/* One write-through batch of NSERIES series at minute i. */
static void write_minute(struct vg_store *s, int nseries, int i)
{
	struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)i + 1, MS(T0 + 60 * i));

	assert_non_null(b);
	for (int r = 0; r < nseries; r++) {
		char id[16];
		snprintf(id, sizeof(id), "node%03d", r);
		assert_non_null(vg_batch_resource(b, VG_RT_HOST, id, NULL, NULL, MS(T0 + 60 * i)));
		assert_int_equal(vg_batch_sample(b, "load.1", VG_KIND_GAUGE, 1000.0 * i + r), 0);
	}
	assert_int_equal(vg_store_write_batch(s, b), 0);
	vg_batch_free(b);
}

/* Write-through syncs on [storage] sync_interval, not per batch: every
 * batch leaves the cache empty, and retiring the journal then synced the
 * backend after each one (rrdcached: a FLUSH of every file, one value
 * per file write, none of the daemon's write coalescing). Now N batches
 * within the interval cause no sync: the journal keeps its segment (the
 * values not yet proven durable), the daemon keeps the files unFLUSHed,
 * the values are readable; vg_store_flush syncs once and retires it;
 * with a short interval the storage thread syncs by itself. */
static void test_write_through_sync_interval(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	struct vg_store_daemon dm[1];
	char err[256];
	enum { NSERIES = 10,
	       NB = 20 };

	vg_store_close(f->s);
	snprintf(f->cfg.storage_write_through, sizeof(f->cfg.storage_write_through), "yes");
	f->cfg.agent_ack_timeout_ms = 40000; /* as above: not about that bound */
	f->cfg.storage_sync_interval_s = 3600;
	assert_int_equal(vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)), 0);
	vg_store_get_stats(f->s, &st);
	uint64_t syncs0 = st.backend_syncs;
	for (int i = 0; i < NB; i++)
		write_minute(f->s, NSERIES, i);
	/* the storage thread had time to sync (it did, per batch, before) */
	usleep(500 * 1000);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.values_written, NSERIES * NB);
	assert_int_equal(st.backend_syncs - syncs0, 0);
	assert_int_equal(journal_segments(f->dir), 1);
	if (g_rrdcached) {
		assert_int_equal(vg_store_daemons(f->s, dm, 1), 1);
		assert_int_equal(dm[0].pending, NSERIES); /* sent, not FLUSHed */
	}
	struct vg_series g;
	assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, "node003", "load.1", VG_CF_AVERAGE,
					MS(T0), MS(T0 + 60 * (NB - 1)), 60, 0, &g),
			 0);
	assert_int_equal(g.n, NB - 1);
	assert_true(g.points[g.n - 1].value == 1000.0 * (NB - 1) + 3);
	vg_series_free(&g);

	/* a flush syncs once and retires the journal */
	assert_int_equal(vg_store_flush(f->s), 0);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.backend_syncs - syncs0, 1);
	assert_int_equal(journal_segments(f->dir), 0);
	if (g_rrdcached) {
		assert_int_equal(vg_store_daemons(f->s, dm, 1), 1);
		assert_int_equal(dm[0].pending, 0);
	}

	/* a short interval: the storage thread syncs by itself */
	vg_store_close(f->s);
	f->cfg.storage_sync_interval_s = 0.3;
	assert_int_equal(vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)), 0);
	vg_store_get_stats(f->s, &st);
	syncs0 = st.backend_syncs;
	write_minute(f->s, NSERIES, NB);
	for (int k = 0; k < 200 && journal_segments(f->dir); k++)
		usleep(50 * 1000);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(journal_segments(f->dir), 0);
	assert_true(st.backend_syncs - syncs0 >= 1);
	if (g_rrdcached) {
		assert_int_equal(vg_store_daemons(f->s, dm, 1), 1);
		assert_int_equal(dm[0].pending, 0);
	}
}

/* A series file deleted while the store runs (an operator, a disk fault)
 * is created again by the first write that finds it missing, with the
 * archives of the series' [archives] rule, and that write's values are in
 * it: none counted as a write error, none lost. The other series are
 * untouched. On rrdcached the file is FORGOTten on the daemon before it
 * is removed (what the daemon's -f timer does to an idle file, and what
 * the sync does when it finds a file gone: store_sync_refused_test), so
 * the daemon answers the next UPDATE "No such file" rather than take
 * values it cannot write. Fails without the re-create: the values after
 * the deletion are write errors and the series keeps no file. */
static void test_deleted_file(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	struct vg_series r;
	char path[PATH_MAX], full[PATH_MAX * 2], opt[PATH_MAX], err[256];
	struct stat sb;

	/* node1's load1 gets its rule's archives, not [storage] archives */
	vg_store_close(f->s);
	snprintf(f->cfg.policies[0].pattern, sizeof(f->cfg.policies[0].pattern), "load*");
	assert_int_equal(vg_config_parse_archives("1m:2d,1h:30d", f->cfg.policies[0].archives,
						  VG_MAX_ARCHIVES, &f->cfg.policies[0].narchives),
			 0);
	f->cfg.npolicies = 1;
	assert_int_equal(vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)), 0);

	nodes_flushed(f);

	locate(f->s, VG_RT_HOST, "node1", "load1", path, sizeof(path), opt, sizeof(opt));
	if (g_rrdcached) {
		struct vg_rrdcd *c;
		assert_int_equal(vg_rrdcd_connect(g_daemon.unix_addr, 5000, &c), 0);
		assert_int_equal(vg_rrdcd_forget(c, path), 0);
		vg_rrdcd_close(c);
	}
	/* absolute, also on rrdcached: [storage] daemon_base is its -b */
	snprintf(full, sizeof(full), "%s", path);
	assert_int_equal(unlink(full), 0);

	/* the next two minutes: the first finds the file missing */
	for (int m = 3; m < 5; m++) {
		write_nodes(f, m, m + 1);
		assert_int_equal(vg_store_flush(f->s), 0);
	}
	vg_store_get_stats(f->s, &st);
	printf("# recreated %llu, write errors %llu\n", (unsigned long long)st.series_recreated,
	       (unsigned long long)st.write_errors);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(st.series_recreated, 1);
	assert_int_equal(stat(full, &sb), 0);

	/* minutes 3 and 4 in the new file (minute 3 fills the step before
	 * it: the file starts one step before the value that found it
	 * missing), with the rule's archives; minutes 1, 2 went with the old
	 * file */
	assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, "node1", "load1", VG_CF_AVERAGE, MS(T0),
					MS(T0 + 240), 60, 0, &r),
			 0);
	assert_int_equal(r.narchives, 2);
	assert_int_equal(r.archives_s[0], 60);
	assert_int_equal(r.archives_s[1], 3600);
	assert_int_equal(r.n, 2);
	assert_true(r.points[0].time_ms == MS(T0 + 120) && r.points[0].value == 4);
	assert_true(r.points[1].time_ms == MS(T0 + 180) && r.points[1].value == 5);
	vg_series_free(&r);
	/* node2 untouched: minutes 1..4 */
	assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, "node2", "load1", VG_CF_AVERAGE, MS(T0),
					MS(T0 + 240), 60, 0, &r),
			 0);
	assert_int_equal(r.n, 4);
	for (size_t k = 0; k < r.n; k++)
		assert_true(r.points[k].value == 12 + (double)k);
	vg_series_free(&r);

	/* and a reopen finds the new file as any other */
	vg_store_close(f->s);
	assert_int_equal(vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)), 0);
	write_one(f->s, VG_RT_HOST, "node1", MS(T0 + 300), "load1", VG_KIND_GAUGE, 6);
	assert_int_equal(vg_store_flush(f->s), 0);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(st.series_recreated, 0);
	assert_int_equal(st.values_flushed, 1);
}

/* On rrdcached, FORGET node1's and node2's load1 on the daemon (as a
 * daemon restarted, or vanished_check, would): its next UPDATE of them is
 * answered "No such file" once they are gone from its disk. */
static void forget_both(struct fixture *f)
{
	char path[PATH_MAX], opt[PATH_MAX];
	struct vg_rrdcd *c;

	if (!g_rrdcached)
		return;
	assert_int_equal(vg_rrdcd_connect(g_daemon.unix_addr, 5000, &c), 0);
	for (int k = 0; k < 2; k++) {
		locate(f->s, VG_RT_HOST, k ? "node2" : "node1", "load1", path, sizeof(path), opt,
		       sizeof(opt));
		assert_int_equal(vg_rrdcd_forget(c, path), 0);
	}
	vg_rrdcd_close(c);
}

/* The type directory of the file at path (<rrd>/host/node1/load1.rrd:
 * <rrd>/host) renamed away: dir (PATH_MAX) the type directory, away
 * (PATH_MAX + 8) where it went. */
static void dir_away(const char *path, char *dir, char *away)
{
	snprintf(dir, PATH_MAX, "%s", path);
	*strrchr(dir, '/') = '\0';
	*strrchr(dir, '/') = '\0';
	snprintf(away, PATH_MAX + 8, "%s.away", dir);
	assert_int_equal(rename(dir, away), 0);
}

/* The type directory (rrd/host) of node1's and node2's load1 renamed
 * away, their files FORGOTten on the daemon first: path (PATH_MAX) the
 * file of node1's, dir and away as dir_away's. */
static void type_dir_away(struct fixture *f, char *path, char *dir, char *away)
{
	char opt[PATH_MAX];

	locate(f->s, VG_RT_HOST, "node1", "load1", path, PATH_MAX, opt, sizeof(opt));
	forget_both(f);
	dir_away(path, dir, away);
}

/* The store closed (held: as by a kill -9, its journal left to replay;
 * else cleanly) and opened again with the fixture's configuration. */
static void reopen(struct fixture *f, int held)
{
	char err[256];

	if (held)
		vg_store_close_held(f->s);
	else
		vg_store_close(f->s);
	f->s = NULL;
	if (vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)))
		fail_msg("open: %s", err);
}

/* Minutes 3 and 4 of node1 and node2 written while their type directory
 * is away, each flushed (a flush may fail: values wait). */
static void write_while_away(struct fixture *f)
{
	for (int m = 3; m < 5; m++) {
		write_nodes(f, m, m + 1);
		int rc = vg_store_flush(f->s);
		printf("# flush with the directory away: %d\n", rc);
	}
}

/* The store's stats in st, printed after what. */
static void stats_print(struct fixture *f, struct vg_store_stats *st, const char *what)
{
	vg_store_get_stats(f->s, st);
	printf("# %s: created %llu, recreated %llu, dir missing %llu, pending %llu, write errors "
	       "%llu: %s\n",
	       what, (unsigned long long)st->files_created, (unsigned long long)st->series_recreated,
	       (unsigned long long)st->series_dir_missing, (unsigned long long)st->values_pending,
	       (unsigned long long)st->write_errors, vg_store_last_error(f->s));
}

/* Nothing fresh at the old path (path, dir as type_dir_away's), nothing
 * lost: node1's and node2's minutes 3 and 4 wait for their directory. */
static void expect_waiting(const struct vg_store_stats *st, const char *path, const char *dir)
{
	struct stat sb;

	assert_int_equal(stat(path, &sb), -1);
	assert_int_equal(stat(dir, &sb), -1);
	assert_int_equal(st->write_errors, 0);
	assert_int_equal(st->values_pending, 4);
	assert_int_equal(st->series_dir_missing, 2);
	assert_int_equal(st->series_dir_waiting, 2);
}

/* The values that waited for a series' directory (renamed away, a volume
 * mounted over it) once it is back (AWAY renamed to DIR here, when not
 * NULL): the storage thread's next try (each second; 60 s only bounds a
 * hang) writes them to the real file, nothing created again or failed,
 * the journal retired, and minutes 1..4 of node1 (2..5) and node2
 * (12..15) read back (minute 0 starts the file). */
static void expect_waiting_written(struct fixture *f, const char *away, const char *dir)
{
	struct vg_store_stats st;
	struct vg_series r;

	if (away)
		assert_int_equal(rename(away, dir), 0);
	for (int k = 0; k < 1200; k++) {
		vg_store_get_stats(f->s, &st);
		if (!st.values_pending)
			break;
		usleep(50 * 1000);
	}
	assert_int_equal(fxs_flush_passes(f->s), 0); /* see test_dir_away_cache_full */
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(st.series_recreated, 0);
	assert_int_equal(st.series_dir_waiting, 0); /* the episode is over */
	assert_int_equal(journal_segments(f->dir), 0);
	for (int k = 0; k < 2; k++) {
		assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, k ? "node2" : "node1", "load1",
						VG_CF_AVERAGE, MS(T0), MS(T0 + 240), 60, 0, &r),
				 0);
		assert_int_equal(r.n, 4);
		for (size_t i = 0; i < r.n; i++)
			assert_true(r.points[i].time_ms == MS(T0 + 60 * (int64_t)i) &&
				    r.points[i].value == (k ? 12 : 2) + (double)i);
		vg_series_free(&r);
	}
}

/* A type directory (rrd/host here) renamed away while the store runs
 * (what an unmounted data volume looks like) is not a deleted file:
 * nothing is created at the old path, the values wait (cached,
 * journaled, counted in values_pending and series_dir_waiting, neither
 * written nor write errors), and once the directory is back every one of
 * them is in the real file. On rrdcached (the daemon has -R, so a create
 * would make the directories) the files are FORGOTten first as in
 * test_deleted_file. Fails without the fix: a fresh file is created at
 * the old path (series_recreated 1) and the values go to it, not to the
 * real file. (A series' own directory removed, its type directory there,
 * is an operator's deletion: test_resource_dir_removed.) */
static void test_dir_renamed(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	char path[PATH_MAX], dir[PATH_MAX], away[PATH_MAX + 8];

	nodes_flushed(f);

	type_dir_away(f, path, dir, away);

	write_while_away(f);
	stats_print(f, &st, "directory away");
	/* nothing fresh at the old path, nothing lost, both series' two wait */
	expect_waiting(&st, path, dir);
	assert_int_equal(st.series_recreated, 0);
	assert_true(journal_segments(f->dir) >= 1); /* their segment is held */

	/* back: the storage thread's next try (each second) writes them to
	 * the real file (60 s is only a bound against a hang) */
	expect_waiting_written(f, away, dir);
}

/* The same, the collector restarted (as after a kill -9) while the
 * directory is away: the series' values left in its journal are not of a
 * new series, so the start replay does not create its file either (a
 * fresh one at the old path would split the series and shadow the real
 * one once it is back): they wait, cached, and once the directory is back
 * every one is in the real file. Fails without the fix (issue 14): the
 * replay created the file and its directories at the old path, where
 * minutes 3 and 4 went. */
static void test_dir_renamed_restart(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	char path[PATH_MAX], dir[PATH_MAX], away[PATH_MAX + 8];

	nodes_flushed(f);
	type_dir_away(f, path, dir, away);
	write_while_away(f);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_pending, 4);

	/* gone as by a kill -9: minutes 3 and 4 left in the journal */
	reopen(f, 1);
	(void)vg_store_flush(f->s);
	stats_print(f, &st, "after the restart");
	expect_waiting(&st, path, dir); /* nothing fresh at the old path */

	expect_waiting_written(f, away, dir);
}

/* The same with nothing left to replay: the store closed cleanly
 * (everything synced, the journal empty), its type directory renamed
 * away, the store opened again. Its series are not new to it (they are
 * in its known set, <journal>/known), so their next values do not create
 * a fresh file at the old path: they wait as above (series_dir_waiting)
 * and go to the real file once the directory is back. A series the store
 * never had still gets its file. Fails without the fix (issue 14): the
 * values of minute 3 created the file again at the old path
 * (files_created 2), where minutes 3 and 4 went. */
static void test_dir_renamed_restart_synced(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	char path[PATH_MAX], dir[PATH_MAX], away[PATH_MAX + 8], err[256], opt[PATH_MAX];
	struct stat sb;

	nodes_flushed(f);
	vg_store_close(f->s); /* a clean stop: nothing to replay */
	f->s = NULL;
	assert_int_equal(journal_segments(f->dir), 0);
	if (vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)))
		fail_msg("open: %s", err);
	type_dir_away(f, path, dir, away);
	reopen(f, 0); /* opened only to locate the files */
	write_while_away(f);
	stats_print(f, &st, "after the restart");
	expect_waiting(&st, path, dir); /* nothing fresh at the old path */
	assert_int_equal(st.files_created, 0);

	/* a series the store never had is created as always (of another
	 * type: one of host would make rrd/host again, see docs) */
	write_one(f->s, VG_RT_INSTANCE, "inst-9", MS(T0 + 60 * 4), "cpu.time", VG_KIND_COUNTER,
		  1);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.files_created, 1);
	locate(f->s, VG_RT_INSTANCE, "inst-9", "cpu.time", opt, sizeof(opt), err, sizeof(err));
	assert_int_equal(stat(opt, &sb), 0);

	expect_waiting_written(f, away, dir);
}

/* A series deleted (the ended-series sweep's vg_store_remove_series)
 * leaves the store's known set: after a restart with its type directory
 * missing it is a new series again, and its file is created as any new
 * one's (the set stays the size of the series kept). */
static void test_removed_series_forgotten(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	char path[PATH_MAX], dir[PATH_MAX], away[PATH_MAX + 8], err[256], opt[PATH_MAX];
	struct stat sb;

	nodes_flushed(f);
	locate(f->s, VG_RT_HOST, "node1", "load1", path, sizeof(path), opt, sizeof(opt));
	assert_int_equal(vg_store_remove_series(f->s, VG_RT_HOST, "node1", "load1"), 0);
	locate(f->s, VG_RT_HOST, "node2", "load1", dir, sizeof(dir), opt, sizeof(opt));
	snprintf(opt, sizeof(opt), "%s", dir); /* node2's file: its type directory goes */
	if (g_rrdcached) {
		struct vg_rrdcd *c;
		assert_int_equal(vg_rrdcd_connect(g_daemon.unix_addr, 5000, &c), 0);
		assert_int_equal(vg_rrdcd_forget(c, dir), 0);
		vg_rrdcd_close(c);
	}
	vg_store_close(f->s);
	f->s = NULL;
	dir_away(opt, dir, away);
	if (vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)))
		fail_msg("open: %s", err);
	write_one(f->s, VG_RT_HOST, "node1", MS(T0 + 60 * 3), "load1", VG_KIND_GAUGE, 4);
	assert_int_equal(vg_store_flush(f->s), 0);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.files_created, 1);
	assert_int_equal(st.series_dir_missing, 0);
	assert_int_equal(stat(path, &sb), 0);
}

/* The known set's file (<journal>/known) compacted: written again with
 * the keys kept only, at the open that finds it holding more than twice
 * its keys + 4096 records (mostly removals: a create appends a key, a
 * removal a 0 and the key). NREMOVED series created and removed, keep1
 * kept; the next open compacts the file to keep1's key; the one after
 * reads the compacted file: with the host type directory away keep1's
 * values wait (known: not created again), a removed series is created as
 * a new one, and its key is appended to the compacted file. */
#define NREMOVED 1500
static off_t known_size(const struct fixture *f)
{
	char path[PATH_MAX];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/journal/known", f->dir);
	assert_int_equal(stat(path, &sb), 0);
	return sb.st_size;
}

static void test_known_compacted(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	struct vg_batch *b;
	char path[PATH_MAX], dir[PATH_MAX], away[PATH_MAX + 8], err[256], opt[PATH_MAX];
	struct stat sb;

	if (g_rrdcached) { /* the set is the store's: the files run covers it */
		printf("# SKIP the known set's compaction: run with the files backend\n");
		skip();
	}
	b = vg_batch_new("h1", 1, 1, MS(T0));
	assert_non_null(b);
	for (int i = 0; i < NREMOVED; i++) {
		char id[32];
		snprintf(id, sizeof(id), "gone%d", i);
		assert_non_null(vg_batch_resource(b, VG_RT_HOST, id, NULL, NULL, MS(T0)));
		assert_int_equal(vg_batch_sample(b, "load1", VG_KIND_GAUGE, 1), 0);
	}
	assert_int_equal(vg_store_write_batch(f->s, b), 0);
	vg_batch_free(b);
	write_one(f->s, VG_RT_HOST, "keep1", MS(T0), "load1", VG_KIND_GAUGE, 1);
	assert_int_equal(vg_store_flush(f->s), 0);
	for (int i = 0; i < NREMOVED; i++) {
		char id[32];
		snprintf(id, sizeof(id), "gone%d", i);
		assert_int_equal(vg_store_remove_series(f->s, VG_RT_HOST, id, "load1"), 0);
	}
	locate(f->s, VG_RT_HOST, "keep1", "load1", path, sizeof(path), opt, sizeof(opt));
	vg_store_close(f->s);
	f->s = NULL;
	/* NREMOVED + 1 keys, NREMOVED removals of two records each */
	assert_int_equal(known_size(f), (off_t)(3 * NREMOVED + 1) * 8);

	/* compacted at this open: keep1's key only */
	if (vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)))
		fail_msg("open: %s", err);
	vg_store_close(f->s);
	f->s = NULL;
	assert_int_equal(known_size(f), 8);

	/* rrd/host away; opened on the compacted file (not compacted again) */
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	*strrchr(dir, '/') = '\0';
	snprintf(away, sizeof(away), "%s.away", dir);
	assert_int_equal(rename(dir, away), 0);
	if (vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)))
		fail_msg("open: %s", err);
	assert_int_equal(known_size(f), 8);
	/* keep1 is known: its value waits for the directory */
	write_one(f->s, VG_RT_HOST, "keep1", MS(T0 + 60), "load1", VG_KIND_GAUGE, 2);
	(void)vg_store_flush(f->s);
	vg_store_get_stats(f->s, &st);
	printf("# compacted: created %llu, pending %llu, dir waiting %llu\n",
	       (unsigned long long)st.files_created, (unsigned long long)st.values_pending,
	       (unsigned long long)st.series_dir_waiting);
	assert_int_equal(st.files_created, 0);
	assert_int_equal(st.values_pending, 1);
	assert_int_equal(st.series_dir_waiting, 1);
	assert_int_equal(stat(path, &sb), -1);
	/* a removed series is not: created as a new one, its key appended */
	write_one(f->s, VG_RT_HOST, "gone7", MS(T0 + 60), "load1", VG_KIND_GAUGE, 2);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.files_created, 1);
	locate(f->s, VG_RT_HOST, "gone7", "load1", path, sizeof(path), opt, sizeof(opt));
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(known_size(f), 16);
}

/* One resource's directory removed by an operator (rm -r
 * rrd/host/node1) while the store runs, its type directory there: a
 * deletion, not a volume gone. The file is created again (counted in
 * series_recreated), the values from then on are written to it, nothing
 * waits, and with a small cache ([storage] cache_values = 4) every batch
 * of every series is still taken. Fails without the fix (issue 14): node1's
 * values waited for the directory (series_dir_missing 1), and once 4
 * waited every batch, node2's too, was answered -EAGAIN (RETRY). */
static void test_resource_dir_removed(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	struct vg_series r;
	struct vg_batch *b;
	char path[PATH_MAX], dir[PATH_MAX], opt[PATH_MAX], err[256];
	struct stat sb;

	vg_store_close(f->s);
	f->cfg.storage_cache_values = 4;
	assert_int_equal(vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)), 0);
	nodes_flushed(f);
	locate(f->s, VG_RT_HOST, "node1", "load1", path, sizeof(path), opt, sizeof(opt));
	if (g_rrdcached) {
		struct vg_rrdcd *c;
		assert_int_equal(vg_rrdcd_connect(g_daemon.unix_addr, 5000, &c), 0);
		assert_int_equal(vg_rrdcd_forget(c, path), 0);
		vg_rrdcd_close(c);
	}
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	rm_rf(dir);
	assert_int_equal(stat(dir, &sb), -1);

	/* twelve minutes of both, each batch taken (not RETRY) */
	for (int m = 3; m < 15; m++) {
		for (int k = 0; k < 2; k++) {
			b = one(VG_RT_HOST, k ? "node2" : "node1", MS(T0 + 60 * m), "load1",
				VG_KIND_GAUGE, (k ? 11 : 1) + m);
			int rc = vg_store_write_batch(f->s, b);
			vg_batch_free(b);
			if (rc)
				fail_msg("minute %d of node%d: %d (%s)", m, k + 1, rc,
					 vg_store_last_error(f->s));
		}
		(void)vg_store_flush(f->s);
	}
	assert_int_equal(vg_store_flush(f->s), 0);
	vg_store_get_stats(f->s, &st);
	printf("# recreated %llu, dir missing %llu, waiting %llu, pending %llu, cache full %llu\n",
	       (unsigned long long)st.series_recreated, (unsigned long long)st.series_dir_missing,
	       (unsigned long long)st.series_dir_waiting, (unsigned long long)st.values_pending,
	       (unsigned long long)st.cache_full);
	assert_int_equal(st.series_recreated, 1);
	assert_int_equal(st.series_dir_missing, 0);
	assert_int_equal(st.series_dir_waiting, 0);
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(st.cache_full, 0);
	assert_int_equal(st.cache_refusing, 0);
	assert_int_equal(stat(path, &sb), 0); /* the file made again */

	/* node1: minutes 3..14 in the new file (a point at the start of
	 * its step: minute 3 fills the step before it); node2 untouched:
	 * 1..14 */
	for (int k = 0; k < 2; k++) {
		assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, k ? "node2" : "node1", "load1",
						VG_CF_AVERAGE, MS(T0), MS(T0 + 60 * 14), 60, 0, &r),
				 0);
		size_t known = 0;
		for (size_t i = 0; i < r.n; i++) {
			int64_t m = (r.points[i].time_ms - MS(T0)) / 60000 + 1;
			if (isnan(r.points[i].value))
				continue;
			known++;
			assert_true(r.points[i].value == (k ? 11 : 1) + (double)m);
		}
		assert_int_equal(known, k ? 14 : 12);
		vg_series_free(&r);
	}
}

/* A type directory away with a small cache ([storage] cache_values = 4):
 * once 4 values wait, batches are refused (-EAGAIN: RETRY) and the
 * receiver's error, the RETRY log line, names the missing directory, not
 * a storage daemon; cache_refusing and series_dir_waiting say so (the
 * gauges /v1/health reads), and vg_store_pending_cause (`storage flush`)
 * names the directories. Fails without the fix: the error said "some
 * waiting for a storage daemon that is down" on the files backend too. */
static void test_dir_away_cache_full(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	struct vg_batch *b;
	char path[PATH_MAX], dir[PATH_MAX], away[PATH_MAX + 8], err[256];
	char why[1200];
	int rc = 0, m;

	vg_store_close(f->s);
	f->cfg.storage_cache_values = 4;
	assert_int_equal(vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)), 0);
	for (m = 0; m < 3; m++) {
		write_one(f->s, VG_RT_HOST, "node1", MS(T0 + 60 * m), "load1", VG_KIND_GAUGE, 1 + m);
		write_one(f->s, VG_RT_HOST, "node2", MS(T0 + 60 * m), "load1", VG_KIND_GAUGE,
			  11 + m);
	}
	assert_int_equal(vg_store_flush(f->s), 0);
	type_dir_away(f, path, dir, away);
	for (m = 3; m < 20 && !rc; m++) {
		b = one(VG_RT_HOST, "node1", MS(T0 + 60 * m), "load1", VG_KIND_GAUGE, 1 + m);
		rc = vg_store_write_batch(f->s, b);
		vg_batch_free(b);
		(void)vg_store_flush(f->s);
	}
	vg_store_get_stats(f->s, &st);
	printf("# refused at minute %d: %d: %s\n", m - 1, rc, vg_store_last_error(f->s));
	assert_int_equal(rc, -EAGAIN);
	assert_non_null(strstr(vg_store_last_error(f->s), "type directory is missing"));
	assert_null(strstr(vg_store_last_error(f->s), "storage daemon"));
	assert_int_equal(st.cache_refusing, 1);
	assert_int_equal(st.series_dir_waiting, 1);
	int cause = vg_store_pending_cause(f->s, 0, why, sizeof(why));
	printf("# cause %d: %s\n", cause, why);
	assert_int_equal(cause, VG_STORE_PENDING_DIRS);
	assert_non_null(strstr(why, "1 series whose type directory is missing"));
	assert_string_equal(vg_store_pending_what(cause), "their series' directories");

	/* back: the values are written, the gauge falls to 0. On rrdcached
	 * a flush may then answer -EIO while the daemon is in its back-off
	 * (a wait past its bound on a loaded machine: seen at load 9 and 15,
	 * the values all written): tried again, up to 10 s */
	assert_int_equal(rename(away, dir), 0);
	for (int k = 0; k < 1200; k++) {
		vg_store_get_stats(f->s, &st);
		if (!st.values_pending)
			break;
		usleep(50 * 1000);
	}
	assert_int_equal(fxs_flush_passes(f->s), 0);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.series_dir_waiting, 0);
	assert_int_equal(st.write_errors, 0);
}

/* A storage volume replaced rather than removed: another file system (a
 * tmpfs here; an NFS remount, the empty mount point an `umount -l`
 * leaves) mounted over a type directory while the store runs, a series'
 * directory made on it: that directory is there but not on the device
 * its type directory was first seen on. Nothing is created on the new
 * file system, the values wait (as for a directory gone), and
 * once it is unmounted every one of them is in the real file. Files
 * backend only (a real mount(2): SKIPped when not allowed). Fails without
 * the fix: the file is created again on the tmpfs (series_recreated 1)
 * and minutes 3, 4 go there, not to the real file. */
static void test_volume_replaced(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	char path[PATH_MAX], dir[PATH_MAX], sub[PATH_MAX + 8], opt[PATH_MAX];
	struct stat sb;
	int rc;

	if (g_rrdcached) { /* the collector's own disk: files only */
		print_message("# files backend only\n");
		skip();
	}
	nodes_flushed(f);
	locate(f->s, VG_RT_HOST, "node1", "load1", path, sizeof(path), opt, sizeof(opt));
	snprintf(dir, sizeof(dir), "%s", path); /* <rrd>/host/node1/load1.rrd */
	*strrchr(dir, '/') = '\0';
	*strrchr(dir, '/') = '\0'; /* <rrd>/host */
	if (mount("none", dir, "tmpfs", 0, "size=4m")) {
		print_message("# skipped: cannot mount a tmpfs on %s: %s\n", dir,
			      strerror(errno));
		skip();
	}
	/* node1's directory on it (as a new series of node1 would make it):
	 * the file is gone, its directory there */
	snprintf(sub, sizeof(sub), "%s/node1", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	for (int m = 3; m < 5; m++) {
		write_nodes(f, m, m + 1);
		rc = vg_store_flush(f->s);
		printf("# flush with the volume replaced: %d\n", rc);
	}
	vg_store_get_stats(f->s, &st);
	int created = stat(path, &sb) == 0;
	assert_int_equal(umount2(dir, MNT_DETACH), 0);
	printf("# recreated %llu, dir missing %llu, pending %llu, write errors %llu, created %d\n",
	       (unsigned long long)st.series_recreated, (unsigned long long)st.series_dir_missing,
	       (unsigned long long)st.values_pending, (unsigned long long)st.write_errors, created);
	assert_int_equal(created, 0);
	assert_int_equal(st.series_recreated, 0);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(st.series_dir_missing, 2);
	assert_int_equal(st.values_pending, 4);
	assert_true(journal_segments(f->dir) >= 1);

	expect_waiting_written(f, NULL, NULL);
}

/* A series of published measures (vg_batch.published: POST /v1/measures,
 * hourly here) whose file is deleted while the store runs is created
 * again with [storage] publish_heartbeat, as its first create was: the
 * points after the deletion read back, each filling the hour since the
 * previous one (docs/api.md "How published points read back"). Fails
 * without the fix: the file is created again with the agents' 600 s
 * heartbeat and the hourly points after the first read back unknown. */
static void test_deleted_published(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	struct vg_series r;
	char path[PATH_MAX], opt[PATH_MAX];
	const int64_t H = 3600;
	size_t nv[3] = {0, 0, 0};

	for (int k = 0; k < 6; k++) {
		if (k == 3) { /* the file deleted before the fourth point */
			assert_int_equal(vg_store_flush(f->s), 0);
			locate(f->s, VG_RT_CUSTOM, "backup1", "size", path, sizeof(path), opt,
			       sizeof(opt));
			if (g_rrdcached) {
				struct vg_rrdcd *c;
				assert_int_equal(vg_rrdcd_connect(g_daemon.unix_addr, 5000, &c), 0);
				assert_int_equal(vg_rrdcd_forget(c, path), 0);
				vg_rrdcd_close(c);
			}
			assert_int_equal(unlink(path), 0);
		}
		struct vg_batch *b = one(VG_RT_CUSTOM, "backup1", MS(T0 + H * k), "size",
					 VG_KIND_GAUGE, 100 + k);
		b->published = 1;
		assert_int_equal(vg_store_write_batch(f->s, b), 0);
		vg_batch_free(b);
		assert_int_equal(vg_store_flush(f->s), 0);
	}
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.series_recreated, 1);
	assert_int_equal(st.write_errors, 0);
	/* at 60 s: the fourth point in the step before it (the new file's
	 * first), the fifth and sixth each in the 60 rows of their hour */
	assert_int_equal(vg_store_fetch(f->s, VG_RT_CUSTOM, "backup1", "size", VG_CF_AVERAGE,
					MS(T0 + 3 * H - 60), MS(T0 + 5 * H), 60, 0, &r),
			 0);
	for (size_t i = 0; i < r.n; i++)
		for (int k = 0; k < 3; k++)
			nv[k] += r.points[i].value == 103 + k;
	printf("# published, created again: %zu known rows: %zu of 103, %zu of 104, %zu of 105\n",
	       r.n, nv[0], nv[1], nv[2]);
	vg_series_free(&r);
	assert_int_equal(nv[0], 1);
	assert_int_equal(nv[1], 60);
	assert_int_equal(nv[2], 60);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_gauge_and_counter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rejects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rrdtool_agrees, setup, teardown),
		cmocka_unit_test_setup_teardown(test_archive_selection, setup, teardown),
		cmocka_unit_test(test_default_layout),
		cmocka_unit_test(test_disk_full),
		cmocka_unit_test(test_cf_parse),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test_setup_teardown(test_write_through_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_through_sync_interval, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_renamed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_renamed_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_renamed_restart_synced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_removed_series_forgotten, setup, teardown),
		cmocka_unit_test_setup_teardown(test_known_compacted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resource_dir_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_away_cache_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_volume_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_published, setup, teardown),
	};
	int failed = cmocka_run_group_tests_name("files", tests, NULL, NULL);

	g_rrdcached = 1;
	return failed + cmocka_run_group_tests_name("rrdcached", tests, NULL, NULL);
}
