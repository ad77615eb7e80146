/*
 * rrdcached_test.c — the rrdcached client (collector/rrdcached.c) against
 * a real rrdcached started by the test (rrdcached_harness.h): create with
 * -O, many timestamps in one call, BATCH across 100 files with per-item
 * errors, fetch equal to what was written, info/first/last/stats, the
 * durable last update of many files in two round trips, flush
 * seen on the file itself, confinement to the daemon's base dir, a daemon
 * killed or stalled mid-session (an error, never a hang), and what a
 * kill -9 of the daemon loses (unflushed values, even with -j) and keeps
 * (flushed ones).
 *
 * Faults the real daemon cannot produce (a garbage status line, an
 * oversize line, a NUL byte, a short answer, a malformed FETCH or INFO, a
 * BATCH error for a command never sent, a peer that never reads) come
 * from a FAKE server in this file: a thread on a unix socket that sends
 * one canned answer. It stands in for a broken or hostile daemon only.
 *
 * Values are multiples of 0.25 on step boundaries of GAUGE data sources,
 * so the daemon's consolidation (value * seconds / step) is exact and a
 * fetch must give back exactly the doubles that were sent.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <rrd.h>

#include "rrdcached_harness.h"
#include "vigie/rrdcached.h"

#define T0 1700000000LL
#define STEP 10
#define TMO 5000 /* ms; generous, the machine is shared */

static struct hrd_daemon dmn; /* started with -O, for most tests */

static const char *defs1[] = {"DS:v:GAUGE:20:U:U", "RRA:AVERAGE:0.5:1:2000",
			      "RRA:MAX:0.5:6:400"};

static int group_setup(void **state)
{
	static const char *extra[] = {"-O", NULL};
	int rc = hrd_start(&dmn, NULL, extra);

	if (rc) {
		fprintf(stderr, "# rrdcached did not start (%s): see %s\n", strerror(-rc),
			dmn.log);
		hrd_cleanup(&dmn);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	hrd_cleanup(&dmn);
	return 0;
}

static struct vg_rrdcd *conn(const char *addr)
{
	struct vg_rrdcd *c = NULL;
	int rc = vg_rrdcd_connect(addr, TMO, &c);

	if (rc)
		fprintf(stderr, "# connect %s: %s\n", addr, strerror(-rc));
	assert_int_equal(rc, 0);
	return c;
}

static void create1(struct vg_rrdcd *c, const char *file)
{
	int rc = vg_rrdcd_create(c, file, STEP, T0, defs1, 3, 0);

	if (rc)
		fprintf(stderr, "# create %s: %s\n", file, vg_rrdcd_error(c));
	assert_int_equal(rc, 0);
}

static double val(size_t file, size_t i)
{
	return (double)file * 1000.0 + (double)i * 0.25 - 7.5;
}

/* Fetch FILE's AVERAGE rows T0+STEP..T0+n*STEP and compare with val(). */
static void expect_values(struct vg_rrdcd *c, const char *file, size_t fileno, size_t n)
{
	struct vg_rrdcd_fetch f;
	int rc = vg_rrdcd_fetch(c, file, "AVERAGE", T0, T0 + (int64_t)n * STEP, &f);

	if (rc)
		fprintf(stderr, "# fetch %s: %s\n", file, vg_rrdcd_error(c));
	assert_int_equal(rc, 0);
	assert_int_equal(f.nds, 1);
	assert_string_equal(f.ds_names[0], "v");
	assert_int_equal(f.step, STEP);
	/* rrd_fetch ends one row after END (that row is unknown) */
	assert_true(f.nrows >= n);
	for (size_t i = n; i < f.nrows; i++)
		assert_true(isnan(f.values[i]));
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(f.ts[i], T0 + (int64_t)(i + 1) * STEP);
		if (f.values[i] != val(fileno, i + 1))
			fail_msg("%s row %zu: %.17g, want %.17g", file, i, f.values[i],
				 val(fileno, i + 1));
	}
	vg_rrdcd_fetch_free(&f);
}

/* n values val(fileno, first..first+n-1) at T0 + i*STEP. */
struct upd {
	int64_t ts[2000];
	double v[2000];
	struct vg_rrdcd_update u;
};

static void make_upd(struct upd *p, const char *file, size_t fileno, size_t first, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		p->ts[i] = T0 + (int64_t)(first + i) * STEP;
		p->v[i] = val(fileno, first + i);
	}
	p->u = (struct vg_rrdcd_update){.file = file, .n = n, .nds = 1, .ts = p->ts, .values = p->v};
}

/* ---- addresses -------------------------------------------------------- */

static void test_addresses(void **state)
{
	struct vg_rrdcd *c;
	char a[PATH_MAX + 8];

	c = conn(dmn.unix_addr);
	assert_int_equal(vg_rrdcd_ping(c), 0);
	vg_rrdcd_close(c);
	c = conn(dmn.sock); /* a bare path is a unix socket */
	assert_int_equal(vg_rrdcd_ping(c), 0);
	vg_rrdcd_close(c);
	c = conn(dmn.tcp_addr);
	assert_int_equal(vg_rrdcd_ping(c), 0);
	assert_string_equal(vg_rrdcd_address(c), dmn.tcp_addr);
	vg_rrdcd_close(c);
	snprintf(a, sizeof(a), "localhost:%d", dmn.port);
	c = conn(a);
	assert_int_equal(vg_rrdcd_ping(c), 0);
	vg_rrdcd_close(c);

	assert_int_equal(vg_rrdcd_connect("127.0.0.1:0", TMO, &c), -EINVAL);
	assert_null(c);
	assert_int_equal(vg_rrdcd_connect("127.0.0.1:99999", TMO, &c), -EINVAL);
	assert_int_equal(vg_rrdcd_connect("[::1", TMO, &c), -EINVAL);
	assert_int_equal(vg_rrdcd_connect("[::1]x", TMO, &c), -EINVAL);
	assert_int_equal(vg_rrdcd_connect("unix:", TMO, &c), -EINVAL);
	assert_int_equal(vg_rrdcd_connect("", TMO, &c), -EINVAL);
	snprintf(a, sizeof(a), "unix:%s/nothing-here", dmn.dir);
	assert_int_equal(vg_rrdcd_connect(a, TMO, &c), -ENOENT);
	/* nobody listens on the IPv6 loopback at this port (or no IPv6) */
	snprintf(a, sizeof(a), "[::1]:%d", dmn.port);
	int rc = vg_rrdcd_connect(a, TMO, &c);
	assert_true(rc == -ECONNREFUSED || rc == -EADDRNOTAVAIL || rc == -ENETUNREACH ||
		    rc == -EAFNOSUPPORT);
	assert_string_equal(vg_rrdcd_error(NULL), "");
	vg_rrdcd_close(NULL);
}

/* ---- create ----------------------------------------------------------- */

static void test_create_no_overwrite(void **state)
{
	struct vg_rrdcd *c = conn(dmn.unix_addr);
	char path[PATH_MAX];
	struct stat st;

	create1(c, "once.rrd");
	snprintf(path, sizeof(path), "%s/once.rrd", dmn.base);
	assert_int_equal(stat(path, &st), 0);
	/* the daemon runs with -O: refused whatever the call says */
	assert_int_equal(vg_rrdcd_create(c, "once.rrd", STEP, T0, defs1, 3, 0), -EEXIST);
	assert_non_null(strstr(vg_rrdcd_error(c), "File exists"));
	assert_int_equal(vg_rrdcd_create(c, "once.rrd", STEP, T0, defs1, 3, 1), -EEXIST);
	assert_int_equal(vg_rrdcd_ping(c), 0); /* the connection is still in step */
	assert_true(vg_rrdcd_connected(c));
	/* a bad definition is the daemon's error, not ours */
	const char *bad[] = {"DS:v:NOPE:20:U:U", "RRA:AVERAGE:0.5:1:10"};
	assert_int_equal(vg_rrdcd_create(c, "bad.rrd", STEP, T0, bad, 2, 1), -EREMOTEIO);
	assert_true(strlen(vg_rrdcd_error(c)) > 0);
	assert_int_equal(vg_rrdcd_ping(c), 0);
	vg_rrdcd_close(c);

	/* a daemon without -O: the call's no_overwrite decides */
	struct hrd_daemon d2;
	assert_int_equal(hrd_start(&d2, NULL, NULL), 0);
	c = conn(d2.unix_addr);
	create1(c, "x.rrd");
	assert_int_equal(vg_rrdcd_create(c, "x.rrd", STEP, T0, defs1, 3, 1), -EEXIST);
	assert_int_equal(vg_rrdcd_create(c, "x.rrd", STEP, T0, defs1, 3, 0), 0);
	vg_rrdcd_close(c);
	hrd_cleanup(&d2);
}

/* ---- updates ---------------------------------------------------------- */

static void test_update_many_timestamps(void **state)
{
	struct vg_rrdcd *c = conn(dmn.tcp_addr);
	static struct upd p;
	int64_t last;

	create1(c, "many.rrd");
	/* 3 values: one UPDATE command */
	make_upd(&p, "many.rrd", 1, 1, 3);
	assert_int_equal(vg_rrdcd_update(c, &p.u), 0);
	/* 1500 values: more than one command holds, one BATCH round trip */
	make_upd(&p, "many.rrd", 1, 4, 1500);
	assert_int_equal(vg_rrdcd_update(c, &p.u), 0);
	assert_int_equal(vg_rrdcd_last(c, "many.rrd", &last), 0);
	assert_int_equal(last, T0 + 1503 * STEP);
	expect_values(c, "many.rrd", 1, 1503);

	/* the past is refused by the daemon, the connection stays in step */
	make_upd(&p, "many.rrd", 1, 10, 2);
	assert_int_equal(vg_rrdcd_update(c, &p.u), -EREMOTEIO);
	assert_non_null(strstr(vg_rrdcd_error(c), "illegal attempt to update"));
	make_upd(&p, "many.rrd", 1, 10, 1500); /* the same through BATCH */
	assert_int_equal(vg_rrdcd_update(c, &p.u), -EREMOTEIO);
	make_upd(&p, "nofile.rrd", 1, 1, 2);
	assert_int_equal(vg_rrdcd_update(c, &p.u), -ENOENT);
	assert_int_equal(vg_rrdcd_last(c, "many.rrd", &last), 0);
	assert_int_equal(last, T0 + 1503 * STEP);

	/* refused before sending: not increasing, no values, bad names */
	make_upd(&p, "many.rrd", 1, 2000, 3);
	p.ts[2] = p.ts[1];
	assert_int_equal(vg_rrdcd_update(c, &p.u), -EINVAL);
	make_upd(&p, "many two.rrd", 1, 2000, 3);
	assert_int_equal(vg_rrdcd_update(c, &p.u), -EINVAL);
	make_upd(&p, "many.rrd\nFLUSHALL", 1, 2000, 3);
	assert_int_equal(vg_rrdcd_update(c, &p.u), -EINVAL);
	make_upd(&p, "many.rrd", 1, 2000, 0);
	assert_int_equal(vg_rrdcd_update(c, &p.u), -EINVAL);
	make_upd(&p, "many.rrd", 1, 2000, 1);
	p.u.nds = 200; /* 200 values of one timestamp cannot fit one command */
	assert_int_equal(vg_rrdcd_update(c, &p.u), -EINVAL);
	assert_int_equal(vg_rrdcd_ping(c), 0);

	/* NaN is unknown */
	make_upd(&p, "many.rrd", 1, 1504, 1);
	p.v[0] = NAN;
	assert_int_equal(vg_rrdcd_update(c, &p.u), 0);
	struct vg_rrdcd_fetch f;
	assert_int_equal(vg_rrdcd_fetch(c, "many.rrd", "AVERAGE", T0 + 1503 * STEP,
					T0 + 1504 * STEP, &f),
			 0);
	assert_true(f.nrows >= 1);
	assert_int_equal(f.ts[0], T0 + 1504 * STEP);
	assert_true(isnan(f.values[0]));
	vg_rrdcd_fetch_free(&f);
	vg_rrdcd_close(c);
}

static void test_batch_100_files(void **state)
{
	enum { NF = 100,
	       NV = 30 };
	struct vg_rrdcd *c = conn(dmn.unix_addr);
	static struct upd p[NF];
	char names[NF][32];
	struct vg_rrdcd_update items[NF];
	int errs[NF];
	struct vg_rrdcd_batch_result res;

	for (size_t i = 0; i < NF; i++) {
		snprintf(names[i], sizeof(names[i]), "b%03zu.rrd", i);
		if (i != 37) /* b037.rrd is never created */
			create1(c, names[i]);
	}
	/* two rounds of NV/2 values per file, each one BATCH */
	for (size_t round = 0; round < 2; round++) {
		for (size_t i = 0; i < NF; i++) {
			make_upd(&p[i], names[i], i, 1 + round * NV / 2, NV / 2);
			items[i] = p[i].u;
		}
		if (round == 1) /* file 50 goes back in time in round 2 */
			make_upd(&p[50], names[50], 50, 1, NV / 2), items[50] = p[50].u;
		assert_int_equal(vg_rrdcd_batch(c, items, NF, errs, &res), 0);
		for (size_t i = 0; i < NF; i++) {
			if (i == 37)
				assert_int_equal(errs[i], -ENOENT);
			else if (i == 50 && round == 1)
				assert_int_equal(errs[i], -EREMOTEIO);
			else
				assert_int_equal(errs[i], 0);
		}
		assert_int_equal(res.nfailed, round ? 2 : 1);
		assert_int_equal(res.nerrors, round ? 2 : 1);
		assert_non_null(strstr(vg_rrdcd_error(c), "b037.rrd"));
	}
	for (size_t i = 0; i < NF; i++)
		if (i != 37 && i != 50)
			expect_values(c, names[i], i, NV);
	expect_values(c, names[50], 50, NV / 2);

	/* an item that takes several commands: errors still name the right
	 * item (the daemon numbers commands, not items) */
	static struct upd many;
	create1(c, "bm0.rrd");
	make_upd(&many, "bm0.rrd", 9, 1, 1500);
	make_upd(&p[1], "bm-missing.rrd", 0, 1, 2);
	make_upd(&p[2], "bm0.rrd", 9, 1, 1); /* in the past by then */
	struct vg_rrdcd_update three[3] = {many.u, p[1].u, p[2].u};
	assert_int_equal(vg_rrdcd_batch(c, three, 3, errs, &res), 0);
	assert_int_equal(errs[0], 0);
	assert_int_equal(errs[1], -ENOENT);
	assert_int_equal(errs[2], -EREMOTEIO);
	assert_int_equal(res.nfailed, 2);
	assert_non_null(strstr(vg_rrdcd_error(c), "bm-missing.rrd"));
	expect_values(c, "bm0.rrd", 9, 1500);

	/* an item refused before sending fails the whole call, nothing sent */
	int64_t before;
	assert_int_equal(vg_rrdcd_last(c, names[0], &before), 0);
	make_upd(&p[0], names[0], 0, NV + 1, 2);
	items[0] = p[0].u;
	items[1].file = "bad name.rrd";
	assert_int_equal(vg_rrdcd_batch(c, items, 2, errs, &res), -EINVAL);
	int64_t after;
	assert_int_equal(vg_rrdcd_last(c, names[0], &after), 0);
	assert_int_equal(before, after);
	/* an empty BATCH is one harmless round trip */
	assert_int_equal(vg_rrdcd_batch(c, items, 0, NULL, &res), 0);
	vg_rrdcd_close(c);
}

/* FLUSH of many files in one BATCH: each file with pending values is
 * written (INFO reads the file, so it shows them only after), a file with
 * nothing pending is fine, a missing one is refused by itself. */
static void test_flush_many(void **state)
{
	struct vg_rrdcd *c = conn(dmn.unix_addr);
	static struct upd p;
	const char *files[] = {"fm_a.rrd", "fm_b.rrd", "fm_missing.rrd", "fm_c.rrd"};
	struct vg_rrdcd_batch_result res;
	struct vg_rrdcd_info info;
	int errs[4];

	create1(c, "fm_a.rrd");
	create1(c, "fm_b.rrd");
	create1(c, "fm_c.rrd");
	make_upd(&p, "fm_a.rrd", 1, 1, 4);
	assert_int_equal(vg_rrdcd_update(c, &p.u), 0);
	make_upd(&p, "fm_c.rrd", 3, 1, 2);
	assert_int_equal(vg_rrdcd_update(c, &p.u), 0);
	/* the daemon holds them (-w 3600): not in the file yet */
	assert_int_equal(vg_rrdcd_info(c, "fm_a.rrd", &info), 0);
	assert_int_equal(strtoll(vg_rrdcd_info_get(&info, "last_update"), NULL, 10), T0);
	vg_rrdcd_info_free(&info);

	assert_int_equal(vg_rrdcd_flush_many(c, files, 4, errs, &res), 0);
	assert_int_equal(errs[0], 0);
	assert_int_equal(errs[1], 0); /* nothing pending */
	assert_int_equal(errs[2], -ENOENT);
	assert_int_equal(errs[3], 0);
	assert_int_equal(res.nfailed, 1);
	assert_non_null(strstr(vg_rrdcd_error(c), "fm_missing.rrd"));
	assert_int_equal(vg_rrdcd_info(c, "fm_a.rrd", &info), 0);
	assert_int_equal(strtoll(vg_rrdcd_info_get(&info, "last_update"), NULL, 10),
			 T0 + 4 * STEP);
	vg_rrdcd_info_free(&info);
	assert_int_equal(vg_rrdcd_info(c, "fm_c.rrd", &info), 0);
	assert_int_equal(strtoll(vg_rrdcd_info_get(&info, "last_update"), NULL, 10),
			 T0 + 2 * STEP);
	vg_rrdcd_info_free(&info);

	/* a name the protocol cannot carry: nothing sent, still in step */
	const char *bad[] = {"fm_a.rrd", "fm a.rrd"};
	assert_int_equal(vg_rrdcd_flush_many(c, bad, 2, errs, &res), -EINVAL);
	assert_int_equal(vg_rrdcd_flush_many(c, files, 0, NULL, NULL), 0);
	assert_int_equal(vg_rrdcd_ping(c), 0);
	vg_rrdcd_close(c);
}

/* The durable last update of many files in two round trips: pending
 * values are FLUSHed first (the answer is what the file holds after), a
 * file with nothing pending answers its file's time, a missing one
 * answers -ENOENT by itself, and the rest of the pipeline is still read
 * in order (the connection stays in step). Every answer agrees with a
 * FLUSH and an INFO of that file alone. More than the maximum, or a name
 * the protocol cannot carry: -EINVAL, nothing sent. */
static void test_last_update_many(void **state)
{
	struct vg_rrdcd *c = conn(dmn.unix_addr);
	static struct upd p;
	const char *files[] = {"lm_a.rrd", "lm_missing.rrd", "lm_b.rrd", "lm_c.rrd"};
	int64_t last[VG_RRDCD_LAST_MANY_MAX + 1];
	int errs[VG_RRDCD_LAST_MANY_MAX + 1];
	struct vg_rrdcd_info info;

	create1(c, "lm_a.rrd");
	create1(c, "lm_b.rrd");
	create1(c, "lm_c.rrd");
	make_upd(&p, "lm_a.rrd", 1, 1, 4);
	assert_int_equal(vg_rrdcd_update(c, &p.u), 0);
	make_upd(&p, "lm_c.rrd", 3, 1, 7);
	assert_int_equal(vg_rrdcd_update(c, &p.u), 0);

	assert_int_equal(vg_rrdcd_last_update_many(c, files, 4, last, errs), 0);
	assert_int_equal(errs[0], 0);
	assert_int_equal(last[0], T0 + 4 * STEP); /* flushed, then read */
	assert_int_equal(errs[1], -ENOENT);
	assert_int_equal(errs[2], 0);
	assert_int_equal(last[2], T0); /* nothing pending: as created */
	assert_int_equal(errs[3], 0);
	assert_int_equal(last[3], T0 + 7 * STEP);
	for (size_t i = 0; i < 4; i++) {
		if (i == 1)
			continue;
		assert_int_equal(vg_rrdcd_info(c, files[i], &info), 0);
		assert_int_equal(strtoll(vg_rrdcd_info_get(&info, "last_update"), NULL, 10),
				 last[i]);
		vg_rrdcd_info_free(&info);
	}

	/* the whole maximum at once, the same file repeated */
	const char *many[VG_RRDCD_LAST_MANY_MAX + 1];
	for (size_t i = 0; i <= VG_RRDCD_LAST_MANY_MAX; i++)
		many[i] = i % 2 ? "lm_a.rrd" : "lm_c.rrd";
	assert_int_equal(vg_rrdcd_last_update_many(c, many, VG_RRDCD_LAST_MANY_MAX, last, errs),
			 0);
	for (size_t i = 0; i < VG_RRDCD_LAST_MANY_MAX; i++) {
		assert_int_equal(errs[i], 0);
		assert_int_equal(last[i], i % 2 ? T0 + 4 * STEP : T0 + 7 * STEP);
	}
	assert_int_equal(
		vg_rrdcd_last_update_many(c, many, VG_RRDCD_LAST_MANY_MAX + 1, last, errs),
		-EINVAL);
	const char *bad[] = {"lm_a.rrd", "lm a.rrd"};
	assert_int_equal(vg_rrdcd_last_update_many(c, bad, 2, last, errs), -EINVAL);
	assert_int_equal(vg_rrdcd_last_update_many(c, files, 0, last, errs), 0);
	assert_int_equal(vg_rrdcd_ping(c), 0);
	vg_rrdcd_close(c);
}

/* The same with FORGET: pending values are dropped, not written (the
 * answer is what the file held before them, and a FLUSH afterwards writes
 * nothing), a file with nothing cached is no error (-ENOENT from its
 * FORGET), a missing one answers -ENOENT from its INFO, and the
 * connection stays in step. The daemon's next UPDATE of a forgotten file
 * starts from the file's own last update. */
static void test_forget_last_many(void **state)
{
	struct vg_rrdcd *c = conn(dmn.unix_addr);
	static struct upd p;
	const char *files[] = {"fl_a.rrd", "fl_missing.rrd", "fl_b.rrd", "fl_c.rrd"};
	int64_t last[VG_RRDCD_LAST_MANY_MAX + 1];
	int errs[VG_RRDCD_LAST_MANY_MAX + 1];
	struct vg_rrdcd_info info;

	create1(c, "fl_a.rrd");
	create1(c, "fl_b.rrd");
	create1(c, "fl_c.rrd");
	make_upd(&p, "fl_a.rrd", 1, 1, 4);
	assert_int_equal(vg_rrdcd_update(c, &p.u), 0);
	assert_int_equal(vg_rrdcd_flush(c, "fl_a.rrd"), 0); /* 1..4 in the file */
	make_upd(&p, "fl_a.rrd", 1, 5, 2);
	assert_int_equal(vg_rrdcd_update(c, &p.u), 0); /* 5..6 cached only */
	make_upd(&p, "fl_c.rrd", 3, 1, 7);
	assert_int_equal(vg_rrdcd_update(c, &p.u), 0);

	assert_int_equal(vg_rrdcd_forget_last_many(c, files, 4, last, errs), 0);
	assert_int_equal(errs[0], 0);
	assert_int_equal(last[0], T0 + 4 * STEP); /* 5..6 dropped */
	assert_int_equal(errs[1], -ENOENT);
	assert_int_equal(errs[2], 0);
	assert_int_equal(last[2], T0); /* nothing cached: as created */
	assert_int_equal(errs[3], 0);
	assert_int_equal(last[3], T0); /* 1..7 dropped */
	/* nothing left to write: the files stay as they were */
	assert_int_equal(vg_rrdcd_last_update_many(c, files, 4, last, errs), 0);
	assert_int_equal(last[0], T0 + 4 * STEP);
	assert_int_equal(last[3], T0);
	/* the next value after the file's own last update is taken */
	make_upd(&p, "fl_a.rrd", 1, 5, 1);
	assert_int_equal(vg_rrdcd_update(c, &p.u), 0);
	assert_int_equal(vg_rrdcd_flush(c, "fl_a.rrd"), 0);
	assert_int_equal(vg_rrdcd_info(c, "fl_a.rrd", &info), 0);
	assert_int_equal(strtoll(vg_rrdcd_info_get(&info, "last_update"), NULL, 10), T0 + 5 * STEP);
	vg_rrdcd_info_free(&info);

	/* the whole maximum in one BATCH; above it, -EINVAL, nothing sent */
	const char *many[VG_RRDCD_LAST_MANY_MAX + 1];
	for (size_t i = 0; i <= VG_RRDCD_LAST_MANY_MAX; i++)
		many[i] = i % 2 ? "fl_a.rrd" : "fl_c.rrd";
	assert_int_equal(vg_rrdcd_forget_last_many(c, many, VG_RRDCD_LAST_MANY_MAX, last, errs),
			 0);
	for (size_t i = 0; i < VG_RRDCD_LAST_MANY_MAX; i++) {
		assert_int_equal(errs[i], 0);
		assert_int_equal(last[i], i % 2 ? T0 + 5 * STEP : T0);
	}
	assert_int_equal(
		vg_rrdcd_forget_last_many(c, many, VG_RRDCD_LAST_MANY_MAX + 1, last, errs),
		-EINVAL);
	const char *bad[] = {"fl_a.rrd", "fl a.rrd"};
	assert_int_equal(vg_rrdcd_forget_last_many(c, bad, 2, last, errs), -EINVAL);
	assert_int_equal(vg_rrdcd_ping(c), 0);
	vg_rrdcd_close(c);
}

/* INFOs alone: what the files hold, values the daemon has cached left
 * there (neither FLUSHed nor FORGOTten); a missing file -ENOENT. */
static void test_info_last_many(void **state)
{
	struct vg_rrdcd *c = conn(dmn.unix_addr);
	static struct upd p;
	const char *files[] = {"il_a.rrd", "il_missing.rrd"};
	int64_t last[2];
	int errs[2];

	create1(c, "il_a.rrd");
	make_upd(&p, "il_a.rrd", 1, 1, 4);
	assert_int_equal(vg_rrdcd_update(c, &p.u), 0);
	assert_int_equal(vg_rrdcd_info_last_many(c, files, 2, last, errs), 0);
	assert_int_equal(errs[0], 0);
	assert_int_equal(last[0], T0); /* 1..4 cached, not in the file */
	assert_int_equal(errs[1], -ENOENT);
	assert_int_equal(vg_rrdcd_last_update_many(c, files, 1, last, errs), 0);
	assert_int_equal(last[0], T0 + 4 * STEP); /* still cached: now written */
	const char *bad[] = {"il a.rrd"};
	assert_int_equal(vg_rrdcd_info_last_many(c, bad, 1, last, errs), -EINVAL);
	assert_int_equal(vg_rrdcd_ping(c), 0);
	vg_rrdcd_close(c);
}

/* The FLUSH BATCH in two halves: BATCHes sent on two connections before
 * either answer is read; each answer read later says its files were
 * written. In between the connection takes no other command (-EBUSY,
 * still in step afterwards); reading without a send is refused. */
static void test_flush_many_split(void **state)
{
	struct vg_rrdcd *a = conn(dmn.unix_addr), *b = conn(dmn.unix_addr);
	static struct upd p;
	const char *fa[] = {"fs_a1.rrd", "fs_a2.rrd"}, *fb[] = {"fs_b1.rrd", "fs_missing.rrd"};
	struct vg_rrdcd_batch_result res;
	struct vg_rrdcd_info info;
	int errs[2];

	for (size_t i = 0; i < 2; i++) {
		create1(a, fa[i]);
		make_upd(&p, fa[i], i, 1, 3);
		assert_int_equal(vg_rrdcd_update(a, &p.u), 0);
	}
	create1(b, fb[0]);
	make_upd(&p, fb[0], 7, 1, 5);
	assert_int_equal(vg_rrdcd_update(b, &p.u), 0);

	assert_int_equal(vg_rrdcd_flush_many_recv(a, 2, errs, &res), -EINVAL);
	assert_int_equal(vg_rrdcd_flush_many_send(a, fa, 2), 0);
	assert_int_equal(vg_rrdcd_flush_many_send(b, fb, 2), 0);
	assert_int_equal(vg_rrdcd_ping(a), -EBUSY);
	assert_int_equal(vg_rrdcd_info(b, fb[0], &info), -EBUSY);
	assert_int_equal(vg_rrdcd_flush_many_recv(a, 1, errs, &res), -EINVAL); /* not that n */
	assert_int_equal(vg_rrdcd_flush_many_recv(b, 2, errs, &res), 0);
	assert_int_equal(errs[0], 0);
	assert_int_equal(errs[1], -ENOENT);
	assert_int_equal(res.nfailed, 1);
	assert_int_equal(vg_rrdcd_flush_many_recv(a, 2, errs, &res), 0);
	assert_int_equal(errs[0] | errs[1], 0);
	assert_int_equal(res.nfailed, 0);
	assert_int_equal(vg_rrdcd_flush_many_recv(a, 2, errs, &res), -EINVAL); /* read once */
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(vg_rrdcd_info(a, fa[i], &info), 0);
		assert_int_equal(strtoll(vg_rrdcd_info_get(&info, "last_update"), NULL, 10),
				 T0 + 3 * STEP);
		vg_rrdcd_info_free(&info);
	}
	assert_int_equal(vg_rrdcd_info(b, fb[0], &info), 0);
	assert_int_equal(strtoll(vg_rrdcd_info_get(&info, "last_update"), NULL, 10),
			 T0 + 5 * STEP);
	vg_rrdcd_info_free(&info);
	expect_values(b, fb[0], 7, 5);

	/* an empty BATCH, and a name refused before anything is sent */
	assert_int_equal(vg_rrdcd_flush_many_send(a, fa, 0), 0);
	assert_int_equal(vg_rrdcd_flush_many_recv(a, 0, NULL, NULL), 0);
	const char *bad[] = {"fs a.rrd"};
	assert_int_equal(vg_rrdcd_flush_many_send(a, bad, 1), -EINVAL);
	assert_int_equal(vg_rrdcd_ping(a), 0);
	vg_rrdcd_close(a);
	vg_rrdcd_close(b);
}

static void test_two_data_sources(void **state)
{
	struct vg_rrdcd *c = conn(dmn.unix_addr);
	const char *defs[] = {"DS:rx:GAUGE:20:U:U", "DS:tx:GAUGE:20:U:U", "RRA:LAST:0.5:1:100"};
	int64_t ts[3] = {T0 + 10, T0 + 20, T0 + 30};
	double v[6] = {1.25, -2.5, 3.75, NAN, 1099511627776.5, -0.0};
	struct vg_rrdcd_update u = {.file = "two.rrd", .n = 3, .nds = 2, .ts = ts, .values = v};
	struct vg_rrdcd_fetch f;

	assert_int_equal(vg_rrdcd_create(c, "two.rrd", STEP, T0, defs, 3, 1), 0);
	assert_int_equal(vg_rrdcd_update(c, &u), 0);
	assert_int_equal(vg_rrdcd_fetch(c, "two.rrd", "LAST", T0, T0 + 30, &f), 0);
	assert_int_equal(f.nds, 2);
	assert_string_equal(f.ds_names[0], "rx");
	assert_string_equal(f.ds_names[1], "tx");
	assert_true(f.nrows >= 3);
	for (size_t i = 0; i < 6; i++)
		if (isnan(v[i]) ? !isnan(f.values[i]) : f.values[i] != v[i])
			fail_msg("value %zu: %.17g, want %.17g", i, f.values[i], v[i]);
	vg_rrdcd_fetch_free(&f);
	vg_rrdcd_fetch_free(NULL);
	/* A wrong number of values per timestamp: rrdcached 1.7.2 takes the
	 * UPDATE (it checks values only when it writes the file), and the
	 * write fails later, in its log only. The caller must send the
	 * file's own DS count; this pins the daemon's behaviour down (the
	 * acknowledged value is lost, and LAST reports it anyway). */
	u.nds = 1;
	ts[0] = T0 + 40;
	u.n = 1;
	assert_int_equal(vg_rrdcd_update(c, &u), 0);
	assert_int_equal(vg_rrdcd_flush(c, "two.rrd"), 0);
	int64_t t;
	assert_int_equal(vg_rrdcd_last(c, "two.rrd", &t), 0);
	assert_int_equal(t, T0 + 40); /* the daemon's LAST believes it */
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/two.rrd", dmn.base);
	assert_int_equal((int64_t)rrd_last_r(path), T0 + 30); /* the file does not */
	assert_int_equal(vg_rrdcd_ping(c), 0);
	vg_rrdcd_close(c);
}

/* ---- reads, flush, stats ---------------------------------------------- */

static void test_info_first_last_flush_stats(void **state)
{
	struct vg_rrdcd *c = conn(dmn.unix_addr);
	static struct upd p;
	struct vg_rrdcd_info info;
	char path[PATH_MAX];
	int64_t t;

	create1(c, "info.rrd");
	make_upd(&p, "info.rrd", 3, 1, 100);
	assert_int_equal(vg_rrdcd_update(c, &p.u), 0);

	/* the values wait in the daemon (-w 3600): the file has not moved */
	snprintf(path, sizeof(path), "%s/info.rrd", dmn.base);
	assert_int_equal((int64_t)rrd_last_r(path), T0);
	assert_int_equal(vg_rrdcd_last(c, "info.rrd", &t), 0);
	assert_int_equal(t, T0 + 100 * STEP);
	assert_int_equal(vg_rrdcd_flush(c, "info.rrd"), 0);
	assert_int_equal((int64_t)rrd_last_r(path), T0 + 100 * STEP);

	assert_int_equal(vg_rrdcd_info(c, "info.rrd", &info), 0);
	assert_string_equal(vg_rrdcd_info_get(&info, "step"), "10");
	assert_string_equal(vg_rrdcd_info_get(&info, "ds[v].type"), "GAUGE");
	assert_string_equal(vg_rrdcd_info_get(&info, "rra[1].cf"), "MAX");
	assert_string_equal(vg_rrdcd_info_get(&info, "rra[0].rows"), "2000");
	assert_string_equal(vg_rrdcd_info_get(&info, "last_update"), "1700001000");
	assert_null(vg_rrdcd_info_get(&info, "no such key"));
	vg_rrdcd_info_free(&info);
	vg_rrdcd_info_free(NULL);

	/* FIRST: the oldest row of an archive, as librrd reads the file */
	assert_int_equal(vg_rrdcd_first(c, "info.rrd", 0, &t), 0);
	assert_int_equal(t, (int64_t)rrd_first_r(path, 0));
	assert_int_equal(vg_rrdcd_first(c, "info.rrd", 1, &t), 0);
	assert_int_equal(t, (int64_t)rrd_first_r(path, 1));
	assert_true(t < T0);
	assert_int_equal(vg_rrdcd_first(c, "info.rrd", 7, &t), -EREMOTEIO);

	/* a value after the flush, then FLUSHALL: accepted, and answered at
	 * once (the daemon only queues files for its writer threads). It
	 * does not promise this file: in two full make check runs a file
	 * FLUSHed moments before was still not written 60 s after FLUSHALL
	 * (rrdcached picks files by their last write's age), so nothing in
	 * vigie counts on FLUSHALL. Nor does a FLUSH right after it promise
	 * the file is written when it answers: rrdcached 1.7.2's FLUSH waits
	 * only while the file still has values queued, and a writer thread
	 * that FLUSHALL woke may already hold them (one make check in CI saw
	 * the old last update). The file is written once that write ends:
	 * FLUSH again until it is, within a bound. */
	make_upd(&p, "info.rrd", 3, 101, 1);
	assert_int_equal(vg_rrdcd_update(c, &p.u), 0);
	assert_int_equal(vg_rrdcd_flushall(c), 0);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(vg_rrdcd_flush(c, "info.rrd"), 0);
		if ((int64_t)rrd_last_r(path) == T0 + 101 * STEP)
			break;
		usleep(100 * 1000);
	}
	assert_int_equal((int64_t)rrd_last_r(path), T0 + 101 * STEP);

	assert_int_equal(vg_rrdcd_stats(c, &info), 0);
	const char *ur = vg_rrdcd_info_get(&info, "UpdatesReceived");
	assert_non_null(ur);
	assert_true(strtoull(ur, NULL, 10) >= 2);
	assert_non_null(vg_rrdcd_info_get(&info, "QueueLength"));
	assert_non_null(vg_rrdcd_info_get(&info, "JournalBytes"));
	vg_rrdcd_info_free(&info);

	/* FORGET drops the cached values; nothing cached: -ENOENT */
	make_upd(&p, "info.rrd", 3, 102, 1);
	assert_int_equal(vg_rrdcd_update(c, &p.u), 0);
	assert_int_equal(vg_rrdcd_forget(c, "info.rrd"), 0);
	assert_int_equal(vg_rrdcd_forget(c, "info.rrd"), -ENOENT);
	assert_int_equal(vg_rrdcd_flush(c, "info.rrd"), 0);
	assert_int_equal((int64_t)rrd_last_r(path), T0 + 101 * STEP);

	assert_int_equal(vg_rrdcd_info(c, "nothing.rrd", &info), -ENOENT);
	assert_int_equal(info.n, 0);
	struct vg_rrdcd_fetch f;
	assert_int_equal(vg_rrdcd_fetch(c, "nothing.rrd", "AVERAGE", T0, T0 + 100, &f), -ENOENT);
	assert_int_equal(vg_rrdcd_fetch(c, "info.rrd", "AVG RAGE", T0, T0 + 100, &f), -EINVAL);
	assert_int_equal(vg_rrdcd_ping(c), 0);
	vg_rrdcd_close(c);
}

/* ---- confinement ------------------------------------------------------ */

static void test_path_confinement(void **state)
{
	struct vg_rrdcd *c = conn(dmn.unix_addr);
	char path[PATH_MAX];
	struct stat st;
	int64_t t;

	assert_int_equal(vg_rrdcd_create(c, "../escape.rrd", STEP, T0, defs1, 3, 1), -EACCES);
	snprintf(path, sizeof(path), "%s/escape.rrd", dmn.dir);
	assert_int_equal(stat(path, &st), -1);
	snprintf(path, sizeof(path), "%s/escape.rrd", dmn.dir);
	assert_int_equal(vg_rrdcd_create(c, path, STEP, T0, defs1, 3, 1), -EACCES);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(vg_rrdcd_create(c, "a/../../escape.rrd", STEP, T0, defs1, 3, 1), -EACCES);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(vg_rrdcd_last(c, "../journal/x", &t), -EACCES);
	/* a subdirectory needs -R; the daemon's message holds a newline,
	 * and the client must still be in step afterwards */
	assert_int_equal(vg_rrdcd_create(c, "sub/x.rrd", STEP, T0, defs1, 3, 1), -EACCES);
	assert_non_null(strstr(vg_rrdcd_error(c), "-R"));
	create1(c, "conf.rrd");
	assert_int_equal(vg_rrdcd_last(c, "conf.rrd", &t), 0);
	assert_int_equal(t, T0);
	/* the same inside a BATCH: refused items, the others written */
	static struct upd p[3];
	struct vg_rrdcd_update items[3];
	int errs[3];
	struct vg_rrdcd_batch_result res;
	make_upd(&p[0], "../escape.rrd", 0, 1, 2);
	make_upd(&p[1], "conf.rrd", 4, 1, 2);
	make_upd(&p[2], "/etc/passwd", 0, 1, 2);
	for (int i = 0; i < 3; i++)
		items[i] = p[i].u;
	assert_int_equal(vg_rrdcd_batch(c, items, 3, errs, &res), 0);
	assert_int_equal(errs[0], -EACCES);
	assert_int_equal(errs[1], 0);
	assert_int_equal(errs[2], -EACCES);
	assert_int_equal(res.nfailed, 2);
	expect_values(c, "conf.rrd", 4, 2);
	vg_rrdcd_close(c);
}

/* ---- a daemon that dies or stalls --------------------------------------- */

static void test_daemon_killed_mid_session(void **state)
{
	struct hrd_daemon d;
	static struct upd p;
	struct vg_rrdcd *c;
	int rc;

	assert_int_equal(hrd_start(&d, NULL, NULL), 0);
	c = conn(d.unix_addr);
	create1(c, "k.rrd");
	make_upd(&p, "k.rrd", 5, 1, 50);
	assert_int_equal(vg_rrdcd_update(c, &p.u), 0);

	assert_int_equal(hrd_kill(&d, SIGKILL), 0);
	make_upd(&p, "k.rrd", 5, 51, 5);
	rc = vg_rrdcd_update(c, &p.u);
	assert_true(rc == -ECONNRESET || rc == -EPIPE);
	assert_false(vg_rrdcd_connected(c));
	assert_int_equal(vg_rrdcd_ping(c), -ENOTCONN);
	assert_int_equal(vg_rrdcd_reconnect(c), -ECONNREFUSED);

	/* A canary for the store's design (vigie keeps its own journal until FLUSH):
	 * rrdcached 1.7.2 answers an UPDATE before its journal line leaves
	 * its stdio buffer (the journal file stays empty for small updates),
	 * so a kill -9 loses values it acknowledged. If this starts failing,
	 * the daemon now writes its journal before the answer. */
	assert_int_equal(hrd_restart(&d), 0);
	assert_int_equal(vg_rrdcd_reconnect(c), 0);
	int64_t t;
	assert_int_equal(vg_rrdcd_last(c, "k.rrd", &t), 0);
	assert_int_equal(t, T0);

	/* After FLUSH the values are in the file: they survive a kill -9. */
	make_upd(&p, "k.rrd", 5, 1, 50);
	assert_int_equal(vg_rrdcd_update(c, &p.u), 0);
	assert_int_equal(vg_rrdcd_flush(c, "k.rrd"), 0);
	assert_int_equal(hrd_restart(&d), 0);
	assert_int_equal(vg_rrdcd_reconnect(c), 0);
	expect_values(c, "k.rrd", 5, 50);
	vg_rrdcd_close(c);

	/* killed in the middle of a long BATCH */
	static struct upd big[200];
	static struct vg_rrdcd_update items[200];
	c = conn(d.tcp_addr);
	for (size_t i = 0; i < 200; i++) {
		char *name = malloc(32);
		snprintf(name, 32, "big%03zu.rrd", i);
		create1(c, name);
		make_upd(&big[i], name, i, 1, 1000);
		items[i] = big[i].u;
	}
	pid_t pid = d.pid, killer = fork();
	if (killer == 0) { /* the killer, a moment after the batch starts */
		usleep(5000);
		kill(pid, SIGKILL);
		_exit(0);
	}
	rc = vg_rrdcd_batch(c, items, 200, NULL, NULL);
	fprintf(stderr, "# batch with the daemon killed during it: %s\n", strerror(-rc));
	waitpid(killer, NULL, 0);
	waitpid(pid, NULL, 0);
	hrd_track(pid, 0);
	d.pid = 0;
	if (rc == 0) /* the daemon took it all before dying: next call fails */
		rc = vg_rrdcd_ping(c);
	assert_true(rc == -ECONNRESET || rc == -EPIPE);
	for (size_t i = 0; i < 200; i++)
		free((char *)items[i].file);
	vg_rrdcd_close(c);
	hrd_cleanup(&d);
}

static void test_stalled_daemon_times_out(void **state)
{
	struct hrd_daemon d;
	struct vg_rrdcd *c;
	int64_t t;

	assert_int_equal(hrd_start(&d, NULL, NULL), 0);
	c = conn(d.tcp_addr);
	create1(c, "s.rrd");
	assert_int_equal(vg_rrdcd_set_timeout(c, 0), -EINVAL);
	assert_int_equal(vg_rrdcd_set_timeout(c, 300), 0);
	assert_int_equal(hrd_kill(&d, SIGSTOP), 0);
	assert_int_equal(vg_rrdcd_last(c, "s.rrd", &t), -ETIMEDOUT);
	assert_false(vg_rrdcd_connected(c));
	assert_non_null(strstr(vg_rrdcd_error(c), "Connection timed out"));
	assert_int_equal(hrd_kill(&d, SIGCONT), 0);
	assert_int_equal(vg_rrdcd_set_timeout(c, TMO), 0);
	/* a continued daemon answers again; on a loaded machine its first
	 * answer after SIGCONT once took longer than TMO: a few tries */
	int rc = -ETIMEDOUT;
	for (int i = 0; i < 3 && rc == -ETIMEDOUT; i++)
		rc = vg_rrdcd_reconnect(c);
	assert_int_equal(rc, 0);
	assert_int_equal(vg_rrdcd_last(c, "s.rrd", &t), 0);
	assert_int_equal(t, T0);
	vg_rrdcd_close(c);
	hrd_cleanup(&d);
}

/* ---- a FAKE server for faults the real daemon cannot produce ----------- */

struct fake {
	int lfd;
	char path[PATH_MAX / 2];
	char addr[PATH_MAX / 2 + 8];
	const char *answer;
	size_t answer_len;
	int never_read; /* accept, then neither read nor answer; else
			 * answer once and end the stream */
	pthread_t th;
};

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	char buf[4096];
	int fd = accept(f->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	if (!f->never_read) {
		(void)!recv(fd, buf, sizeof(buf), 0);
		size_t off = 0;
		while (off < f->answer_len) {
			ssize_t n = send(fd, f->answer + off, f->answer_len - off, MSG_NOSIGNAL);
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		shutdown(fd, SHUT_WR); /* the answer ends here */
	}
	/* hold the connection until the client closes it */
	while (recv(fd, buf, sizeof(buf), 0) > 0 && !f->never_read)
		;
	if (f->never_read) {
		struct pollfd p = {.fd = fd, .events = POLLRDHUP};
		poll(&p, 1, 20000);
	}
	close(fd);
	return NULL;
}

static void fake_start(struct fake *f, const char *answer, size_t len, int never_read)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};

	memset(f, 0, sizeof(*f));
	snprintf(f->path, sizeof(f->path), "%s/fake.sock", dmn.dir);
	snprintf(f->addr, sizeof(f->addr), "unix:%s", f->path);
	unlink(f->path);
	strcpy(un.sun_path, f->path);
	f->answer = answer;
	f->answer_len = len;
	f->never_read = never_read;
	assert_true((f->lfd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&un, sizeof(un)), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f, struct vg_rrdcd *c)
{
	vg_rrdcd_close(c);
	pthread_join(f->th, NULL);
	close(f->lfd);
	unlink(f->path);
}

enum op { OP_PING,
	  OP_LAST,
	  OP_FETCH,
	  OP_INFO,
	  OP_BATCH,
	  OP_STATS };

/* Run OP against a fake answering ANSWER; expect RC and a broken
 * connection (so a late byte can never be taken for a later answer). */
static void fake_case(const char *what, const char *answer, size_t len, enum op op, int want)
{
	struct fake f;
	struct vg_rrdcd *c = NULL;
	struct vg_rrdcd_fetch fe;
	struct vg_rrdcd_info info;
	int64_t t, ts[2] = {T0 + 10, T0 + 20};
	double v[2] = {1, 2};
	struct vg_rrdcd_update u = {.file = "f.rrd", .n = 2, .nds = 1, .ts = ts, .values = v};
	int rc = 0;

	fake_start(&f, answer, len, 0);
	assert_int_equal(vg_rrdcd_connect(f.addr, TMO, &c), 0);
	switch (op) {
	case OP_PING: rc = vg_rrdcd_ping(c); break;
	case OP_LAST: rc = vg_rrdcd_last(c, "f.rrd", &t); break;
	case OP_FETCH:
		rc = vg_rrdcd_fetch(c, "f.rrd", "AVERAGE", T0, T0 + 20, &fe);
		if (!rc)
			vg_rrdcd_fetch_free(&fe);
		break;
	case OP_INFO:
		rc = vg_rrdcd_info(c, "f.rrd", &info);
		if (!rc)
			vg_rrdcd_info_free(&info);
		break;
	case OP_STATS:
		rc = vg_rrdcd_stats(c, &info);
		if (!rc)
			vg_rrdcd_info_free(&info);
		break;
	case OP_BATCH: rc = vg_rrdcd_batch(c, &u, 1, NULL, NULL); break;
	}
	if (rc != want)
		fail_msg("%s: got %d (%s), want %d", what, rc, vg_rrdcd_error(c), want);
	assert_false(vg_rrdcd_connected(c));
	assert_int_equal(vg_rrdcd_ping(c), -ENOTCONN);
	fake_stop(&f, c);
}

#define FAKE(what, s, op, want) fake_case(what, s, sizeof(s) - 1, op, want)

static void test_fake_server_garbage(void **state)
{
	FAKE("no status number", "hello world\n", OP_PING, -EPROTO);
	FAKE("status then junk", "0x PONG\n", OP_PING, -EPROTO);
	FAKE("PING not PONG", "0 PANG\n", OP_PING, -EPROTO);
	FAKE("NUL byte", "0 PO\0NG\n", OP_PING, -EPROTO);
	FAKE("short answer then close", "3 Stats\nA: 1\n", OP_STATS, -ECONNRESET);
	FAKE("closed without a word", "", OP_PING, -ECONNRESET);
	FAKE("absurd line count", "99999999 lines follow\n", OP_INFO, -EMSGSIZE);
	FAKE("LAST not a number", "0 soon\n", OP_LAST, -EPROTO);
	FAKE("INFO line without type", "1 Info\nstep ten\n", OP_INFO, -EPROTO);
	FAKE("STATS line without colon", "1 Stats\nQueueLength 0\n", OP_STATS, -EPROTO);
	FAKE("FETCH row not a number",
	     "8 Success\nFlushVersion: 1\nStart: 1700000000\nEnd: 1700000020\nStep: 10\n"
	     "DSCount: 1\nDSName: v\n1700000010: abc\n1700000020: 1\n",
	     OP_FETCH, -EPROTO);
	FAKE("FETCH more rows announced than sent",
	     "7 Success\nFlushVersion: 1\nStart: 1700000000\nEnd: 1800000000\nStep: 10\n"
	     "DSCount: 1\nDSName: v\n",
	     OP_FETCH, -EPROTO);
	FAKE("FETCH rows before the header",
	     "3 Success\n1700000010: 1\nStep: 10\nDSCount: 1\n", OP_FETCH, -EPROTO);
	FAKE("FETCH names do not match count",
	     "8 Success\nStart: 1700000000\nEnd: 1700000020\nStep: 10\nDSCount: 2\n"
	     "DSName: v\n1700000010: 1 2\n1700000020: 1 2\n",
	     OP_FETCH, -EPROTO);
	FAKE("FETCH row out of step",
	     "7 Success\nStart: 1700000000\nEnd: 1700000020\nStep: 10\nDSCount: 1\n"
	     "DSName: v\n1700000020: 1\n1700000010: 1\n",
	     OP_FETCH, -EPROTO);
	FAKE("FETCH too few values in a row",
	     "7 Success\nStart: 1700000000\nEnd: 1700000020\nStep: 10\nDSCount: 2\n"
	     "DSName: v w\n1700000010: 1\n1700000020: 1 2\n",
	     OP_FETCH, -EPROTO);
	FAKE("BATCH refused", "-1 no batch today\n", OP_BATCH, -EPROTO);
	FAKE("BATCH error for a command not sent",
	     "0 Go ahead\n1 errors\n999 nope\n0 PONG\n", OP_BATCH, -EPROTO);
	FAKE("BATCH garbage before any error", "0 Go ahead\n0 errors\nzzz\n0 PONG\n", OP_BATCH,
	     -EPROTO);
	FAKE("BATCH answer cut", "0 Go ahead\n1 errors\n", OP_BATCH, -ECONNRESET);
	FAKE("error without PONG after it", "-1 bad\nx\n", OP_LAST, -ECONNRESET);

	/* an answer line longer than the bound */
	size_t n = VG_RRDCD_LINE_MAX + 100;
	char *big = malloc(n);
	assert_non_null(big);
	memset(big, 'x', n);
	big[0] = '0', big[1] = ' ';
	fake_case("line over the bound", big, n, OP_PING, -EMSGSIZE);
	free(big);
}

static void test_fake_server_timeouts(void **state)
{
	struct fake f;
	struct vg_rrdcd *c;

	/* answers nothing: the read times out */
	fake_start(&f, NULL, 0, 1);
	assert_int_equal(vg_rrdcd_connect(f.addr, 200, &c), 0);
	assert_int_equal(vg_rrdcd_ping(c), -ETIMEDOUT);
	assert_false(vg_rrdcd_connected(c));
	fake_stop(&f, c);

	/* never reads: a BATCH larger than the socket buffers times out
	 * on the write */
	enum { N = 20000 };
	static int64_t ts[N];
	static double v[N];
	for (size_t i = 0; i < N; i++)
		ts[i] = T0 + (int64_t)i * STEP, v[i] = (double)i;
	struct vg_rrdcd_update u = {.file = "w.rrd", .n = N, .nds = 1, .ts = ts, .values = v};
	fake_start(&f, NULL, 0, 1);
	assert_int_equal(vg_rrdcd_connect(f.addr, 200, &c), 0);
	assert_int_equal(vg_rrdcd_update(c, &u), -ETIMEDOUT);
	assert_false(vg_rrdcd_connected(c));
	fake_stop(&f, c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_create_no_overwrite),
		cmocka_unit_test(test_update_many_timestamps),
		cmocka_unit_test(test_batch_100_files),
		cmocka_unit_test(test_flush_many),
		cmocka_unit_test(test_flush_many_split),
		cmocka_unit_test(test_last_update_many),
		cmocka_unit_test(test_forget_last_many),
		cmocka_unit_test(test_info_last_many),
		cmocka_unit_test(test_two_data_sources),
		cmocka_unit_test(test_info_first_last_flush_stats),
		cmocka_unit_test(test_path_confinement),
		cmocka_unit_test(test_daemon_killed_mid_session),
		cmocka_unit_test(test_stalled_daemon_times_out),
		cmocka_unit_test(test_fake_server_garbage),
		cmocka_unit_test(test_fake_server_timeouts),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
