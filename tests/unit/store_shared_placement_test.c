/*
 * store_shared_placement_test.c — several collectors sharing rrdcached
 * daemons and one PostgreSQL state agree on which daemon holds each
 * series (collector/placement.c), on real daemons and a real server:
 *  - a collector that never wrote a series, with a daemon added to its
 *    list, writes and reads it on the daemon that created it: no second
 *    file on the new daemon, every value in the original file;
 *  - two collectors with different daemon lists creating the same new
 *    series at the same moment make one file;
 *  - with the database down nothing is created by guess (the batch is
 *    answered RETRY), known series are still written, and new series are
 *    placed again once it answers;
 *  - a collector's owners file is uploaded at start (the database wins a
 *    disagreement), and a deleted series' record goes for good.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/store.h"
#include "collector/backend.h"
#include "collector/placement.h"
#include "pg_harness.h"
#include "rrdcached_harness.h"
#include "../support/store_series.h"
#include "../support/tmpdir.h"

#define NS 60 /* series */

static struct hpg_server pg;
static struct hrd_daemon d[3];
static char tmp[256];
static char two[PATH_MAX * 2]; /* daemons A and B: d[0]'s socket, d[1]'s TCP port */
static int ncase;
static const char *why_skip;

static int group_setup(void **state)
{
	static const char *const extra[] = {"-O", "-R", NULL};

	(void)state;
	if (fx_tmpdir(tmp, sizeof(tmp), "shared-place"))
		return -1;
	/* synchronous_commit stays on: a case stops the server with -m immediate */
	int rc = hpg_start(&pg, "-c fsync=off -c full_page_writes=off");
	if (rc) {
		if (rc != -ENOENT && rc != -EPERM) {
			fprintf(stderr, "PostgreSQL did not start: %s\n", pg.why);
			return -1;
		}
		why_skip = pg.why;
		return 0;
	}
	for (int k = 0; k < 3; k++)
		if (hrd_start(&d[k], NULL, extra))
			return -1;
	snprintf(two, sizeof(two), "%s, %s", d[0].unix_addr, d[1].tcp_addr);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	for (int k = 0; k < 3; k++)
		if (d[k].pid > 0)
			hrd_cleanup(&d[k]);
	hpg_cleanup(&pg);
	if (!getenv("KEEP_TMP"))
		fx_rm_tree(tmp);
	return 0;
}

/* A fresh database for the case: its conninfo in url. */
static void fresh(char *url, size_t len)
{
	char name[32];

	if (why_skip) {
		printf("# SKIP: no PostgreSQL server: %s\n", why_skip);
		skip();
	}
	if (!pg.running)
		assert_int_equal(hpg_start_again(&pg), 0);
	snprintf(name, sizeof(name), "place%d", ++ncase);
	assert_int_equal(hpg_createdb(&pg, name, url, len), 0);
}

/* How many daemons hold a file NAME (relative to their -b). */
static int copies(const char *name)
{
	int n = 0;

	for (int k = 0; k < 3; k++) {
		char p[PATH_MAX * 2];
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", d[k].base, name);
		n += stat(p, &st) == 0;
	}
	return n;
}

static int nfiles_seen;
static int count_rrd(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)ftw;
	if (flag == FTW_F && strstr(p, "/host/"))
		nfiles_seen++;
	return 0;
}

/* .rrd files of host series under daemon k's base dir. */
static int host_files(int k)
{
	nfiles_seen = 0;
	nftw(d[k].base, count_rrd, 16, FTW_PHYS);
	return nfiles_seen;
}

/* The layout the backend-level cases create with: a minute's rows for
 * an hour. */
static const struct vg_rrd_layout *layout_1h(void)
{
	static struct vg_archive archives[VG_MAX_ARCHIVES];
	static struct vg_rrd_layout lay = {.step_s = 60, .heartbeat_s = 600, .archives = archives};

	assert_int_equal(vg_config_parse_archives("1m:1h", archives, VG_MAX_ARCHIVES,
						  &lay.narchives),
			 0);
	return &lay;
}

/* A backend of its own on DAEMONS (OWNERS: its owners file, or NULL)
 * sharing the placement record in the database at URL. */
static struct vg_rrd_backend *shared_backend(const char *daemons, const char *owners,
					     const char *url)
{
	struct vg_rrd_backend *be;
	char err[512];

	assert_int_equal(vg_rrd_rrdcached_open(daemons, NULL, owners, &be, err, sizeof(err)), 0);
	assert_int_equal(vg_rrd_rrdcached_share(be, url, err, sizeof(err)), 0);
	return be;
}

static struct vg_store *store_open(const char *sub, const struct vg_config *cfg)
{
	char dir[320], err[512];
	struct vg_store *s;

	snprintf(dir, sizeof(dir), "%s/%s", tmp, sub);
	mkdir(dir, 0700);
	if (vg_store_open(dir, cfg, &s, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		fail();
	}
	return s;
}

/* Collector A creates series on two daemons; a third daemon is added and
 * collector B, which never wrote them, receives their next batches (an
 * agent failed over): every value lands in A's files, none on the new
 * daemon, and B reads them all. */
static void test_failover_after_a_daemon_is_added(void **state)
{
	struct vg_config ca, cb;
	struct vg_store *a, *b;
	char url[512], three[PATH_MAX * 3];

	(void)state;
	fresh(url, sizeof(url));
	snprintf(three, sizeof(three), "%s, %s, %s", d[2].unix_addr, d[0].unix_addr,
		 d[1].tcp_addr);
	int before = host_files(2);

	struct vg_store_placement pl;
	fxs_config(&ca, "1m:1d", two, url);
	a = store_open("a1", &ca);
	for (int m = 0; m < 3; m++)
		assert_int_equal(fxs_write_minute(a, "node", 0, NS, m), 0);
	/* the batch's new series were claimed together, none one by one */
	vg_store_placement(a, &pl);
	assert_int_equal(pl.claims, NS);
	assert_int_equal(pl.lookups, 0);
	vg_store_close(a);

	fxs_config(&cb, "1m:1d", three, url);
	b = store_open("b1", &cb);
	for (int m = 3; m < 6; m++)
		assert_int_equal(fxs_write_minute(b, "node", 0, NS, m), 0);
	vg_store_placement(b, &pl);
	assert_int_equal(pl.lookups, 0); /* found by the batch's claim */
	for (int i = 0; i < NS; i++)
		fxs_check_series(b, i, 6);
	vg_store_close(b);
	assert_int_equal(host_files(2), before); /* nothing on the new daemon */
	for (int i = 0; i < NS; i++) {
		char name[64];
		snprintf(name, sizeof(name), "host/node%d/load.1.rrd", i);
		assert_int_equal(copies(name), 1);
	}
	/* and A, restarted with the new list too, reads what B wrote */
	fxs_config(&ca, "1m:1d", three, url);
	a = store_open("a1", &ca);
	for (int i = 0; i < NS; i++)
		fxs_check_series(a, i, 6);
	vg_store_close(a);
}

struct racer {
	struct vg_rrd_backend *be;
	const struct vg_rrd_layout *lay;
	pthread_barrier_t *go;
	int failures;
};

static void *race(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(r->go);
	for (int i = 0; i < NS; i++) {
		struct vg_rrd_loc loc;
		char id[32], msg[256];
		int64_t last;
		int rc;
		snprintf(id, sizeof(id), "race%d", i);
		if (r->be->ops->locate(r->be, VG_RT_HOST, id, "load.1", &loc)) {
			r->failures++;
			continue;
		}
		rc = r->be->ops->last_ms(r->be, &loc, &last, 0);
		if (rc == -ENOENT)
			rc = r->be->ops->create(r->be, &loc, VG_KIND_GAUGE, FXS_MS(FXS_T0), r->lay, msg,
						sizeof(msg), 0);
		/* -EHOSTUNREACH, -EAGAIN: the winner is on a daemon this
		 * collector does not list */
		if (rc && rc != -EAGAIN && rc != -EHOSTUNREACH)
			r->failures++;
	}
	return NULL;
}

/* Two collectors whose daemon lists differ (a rolling configuration
 * change) create the same new series at the same moment: one file each. */
static void test_concurrent_creates_make_one_file(void **state)
{
	const struct vg_rrd_layout *lay = layout_1h();
	struct vg_rrd_backend *x, *y;
	struct racer rx = {0}, ry = {0};
	pthread_barrier_t go;
	pthread_t tx, ty;
	char url[512], three[PATH_MAX * 3];

	(void)state;
	fresh(url, sizeof(url));
	snprintf(three, sizeof(three), "%s, %s, %s", d[2].tcp_addr, d[0].unix_addr,
		 d[1].tcp_addr);
	x = shared_backend(two, NULL, url);
	y = shared_backend(three, NULL, url);
	pthread_barrier_init(&go, NULL, 2);
	rx = (struct racer){x, lay, &go, 0};
	ry = (struct racer){y, lay, &go, 0};
	pthread_create(&tx, NULL, race, &rx);
	pthread_create(&ty, NULL, race, &ry);
	pthread_join(tx, NULL);
	pthread_join(ty, NULL);
	pthread_barrier_destroy(&go);
	assert_int_equal(rx.failures + ry.failures, 0);
	int on_new = 0;
	for (int i = 0; i < NS; i++) {
		struct vg_rrd_loc lx, ly;
		char id[32];
		snprintf(id, sizeof(id), "race%d", i);
		assert_int_equal(x->ops->locate(x, VG_RT_HOST, id, "load.1", &lx), 0);
		assert_int_equal(y->ops->locate(y, VG_RT_HOST, id, "load.1", &ly), 0);
		assert_int_equal(copies(lx.path), 1);
		if (lx.address && ly.address)
			assert_string_equal(lx.address, ly.address);
		else
			on_new++; /* the winner is the daemon x does not list */
	}
	fprintf(stderr, "# %d of %d series went to the daemon only one collector lists\n",
		on_new, NS);
	x->ops->close(x);
	y->ops->close(y);
}

/* The state database down: no series is created by guess (the store
 * answers RETRY for a batch of new series), known series are written;
 * once it answers again, new series are placed. */
static void test_database_down_places_nothing(void **state)
{
	struct vg_config cfg;
	struct vg_store *s;
	struct vg_store_placement pl;
	char url[512];

	(void)state;
	fresh(url, sizeof(url));
	fxs_config(&cfg, "1m:1d", two, url);
	s = store_open("c1", &cfg);
	assert_int_equal(fxs_write_minute(s, "known", 0, 4, 0), 0);

	hpg_stop(&pg);
	assert_int_equal(fxs_write_minute(s, "known", 0, 4, 1), 0); /* known: written */
	assert_int_equal(fxs_write_minute(s, "down", 0, 4, 1), -EAGAIN);
	for (int i = 0; i < 4; i++) {
		char name[64];
		snprintf(name, sizeof(name), "host/down%d/load.1.rrd", i);
		assert_int_equal(copies(name), 0);
	}
	vg_store_placement(s, &pl);
	assert_int_equal(pl.shared, 1);
	assert_int_equal(pl.up, 0);
	assert_true(pl.errors > 0);
	assert_true(pl.error[0] != '\0');

	/* the backend alone: a create whose locate came just before the
	 * database went away claims first, and without an answer creates
	 * nothing */
	{
		const struct vg_rrd_layout *lay = layout_1h();
		struct vg_rrd_backend *be = shared_backend(two, NULL, url);
		struct vg_rrd_loc loc;
		char msg[256];
		int64_t last;
		assert_int_equal(be->ops->locate(be, VG_RT_HOST, "down9", "load.1", &loc), 0);
		assert_null(loc.address);
		assert_int_equal(be->ops->last_ms(be, &loc, &last, 0), -EHOSTUNREACH);
		loc.owner = 0;
		assert_int_equal(be->ops->create(be, &loc, VG_KIND_GAUGE, FXS_MS(FXS_T0), lay, msg,
						 sizeof(msg), 0),
				 -EAGAIN);
		assert_non_null(strstr(msg, "state database"));
		assert_int_equal(copies(loc.path), 0);
		be->ops->close(be);
	}

	assert_int_equal(hpg_start_again(&pg), 0);
	/* resent every 200 ms, as an agent does: answered once the back-off
	 * after the last real attempt (1 s) has passed — the calls made
	 * within it must not extend it */
	int tries = 0;
	while (fxs_write_minute(s, "down", 0, 4, 2) && ++tries < 50) {
		struct timespec ts = {0, 200 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	vg_store_placement(s, &pl);
	if (tries == 50)
		fail_msg("placement: %s", pl.error);
	for (int i = 0; i < 4; i++) {
		char name[64];
		snprintf(name, sizeof(name), "host/down%d/load.1.rrd", i);
		assert_int_equal(copies(name), 1);
	}
	vg_store_placement(s, &pl);
	assert_int_equal(pl.up, 1);
	/* a restart of the server between two batches costs nothing: the
	 * lost connection is made again at once */
	assert_int_equal(hpg_restart(&pg), 0);
	assert_int_equal(fxs_write_minute(s, "restart", 0, 4, 3), 0);
	vg_store_close(s);
}

/* A collector's owners file goes to the shared record at start (the
 * record wins a disagreement); a deleted series' record goes, also from
 * the owners file, so the next start does not bring it back. */
static void test_owners_file_uploaded_and_deletions_kept(void **state)
{
	const struct vg_rrd_layout *lay = layout_1h();
	struct vg_placement *p;
	struct vg_rrd_backend *be;
	struct vg_rrd_loc loc;
	char url[512], owners[320], err[512], addr[256], msg[256];
	FILE *f;

	(void)state;
	fresh(url, sizeof(url));
	snprintf(owners, sizeof(owners), "%s/owners-up", tmp);
	assert_non_null(f = fopen(owners, "w"));
	fprintf(f, "%s host/up1/m.rrd\n%s host/up2/m.rrd\nstorage9:42217 host/up3/m.rrd\n",
		d[1].tcp_addr, d[0].unix_addr);
	fclose(f);
	assert_int_equal(vg_placement_open(url, &p, err, sizeof(err)), 0);
	assert_int_equal(vg_placement_claim(p, "host/up1/m.rrd", d[0].unix_addr, addr,
					    sizeof(addr)),
			 0);

	be = shared_backend(two, owners, url);
	/* uploaded, including an address not configured here */
	assert_int_equal(vg_placement_lookup(p, "host/up2/m.rrd", addr, sizeof(addr)), 1);
	assert_string_equal(addr, d[0].unix_addr);
	assert_int_equal(vg_placement_lookup(p, "host/up3/m.rrd", addr, sizeof(addr)), 1);
	assert_string_equal(addr, "storage9:42217");
	/* a series on an address not configured: its reads name it, and the
	 * address is reported with the series recorded on it (the map: what
	 * this backend knows; the whole record: one query) */
	{
		struct vg_store_unlisted ul[4];
		assert_int_equal(be->ops->locate(be, VG_RT_HOST, "up3", "m", &loc), 0);
		assert_int_equal(loc.owner, UINT32_MAX);
		assert_null(loc.address);
		assert_non_null(loc.recorded);
		assert_string_equal(loc.recorded, "storage9:42217");
		assert_int_equal(vg_placement_claim(p, "host/up4/m.rrd", "storage9:42217", addr,
						    sizeof(addr)),
				 0);
		assert_int_equal(vg_rrd_rrdcached_unlisted(be, ul, 4, 0), 1);
		assert_string_equal(ul[0].address, "storage9:42217");
		assert_int_equal(ul[0].series, 1);
		assert_int_equal(vg_rrd_rrdcached_unlisted(be, ul, 4, 1), 1);
		assert_string_equal(ul[0].address, "storage9:42217");
		assert_int_equal(ul[0].series, 2);
		/* looked up, it is known to the map too */
		assert_int_equal(be->ops->locate(be, VG_RT_HOST, "up4", "m", &loc), 0);
		assert_string_equal(loc.recorded, "storage9:42217");
		assert_int_equal(vg_rrd_rrdcached_unlisted(be, ul, 4, 0), 1);
		assert_int_equal(ul[0].series, 2);
	}
	/* the record won */
	assert_int_equal(be->ops->locate(be, VG_RT_HOST, "up1", "m", &loc), 0);
	assert_string_equal(loc.address, d[0].unix_addr);

	/* a series created, then deleted: its record goes */
	assert_int_equal(be->ops->locate(be, VG_RT_HOST, "gone1", "m", &loc), 0);
	assert_int_equal(be->ops->create(be, &loc, VG_KIND_GAUGE, FXS_MS(FXS_T0), lay, msg, sizeof(msg), 0),
			 0);
	assert_int_equal(vg_placement_lookup(p, loc.path, addr, sizeof(addr)), 1);
	assert_int_equal(be->ops->remove(be, &loc), -EOPNOTSUPP); /* FORGET; no base */
	assert_int_equal(vg_placement_lookup(p, loc.path, addr, sizeof(addr)), 0);
	assert_int_equal(be->ops->sync(be), 0);
	be->ops->close(be);

	/* restarted: the owners file does not bring it back */
	be = shared_backend(two, owners, url);
	assert_int_equal(vg_placement_lookup(p, "host/gone1/m.rrd", addr, sizeof(addr)), 0);
	assert_int_equal(vg_placement_lookup(p, "host/up1/m.rrd", addr, sizeof(addr)), 1);
	assert_string_equal(addr, d[0].unix_addr);
	be->ops->close(be);
	vg_placement_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failover_after_a_daemon_is_added),
		cmocka_unit_test(test_concurrent_creates_make_one_file),
		cmocka_unit_test(test_database_down_places_nothing),
		cmocka_unit_test(test_owners_file_uploaded_and_deletions_kept),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
