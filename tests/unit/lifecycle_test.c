/*
 * lifecycle_test.c — ended series are deleted keep_ended after their
 * resource ended, with a replayed clock (sample timestamps, and the sweep's
 * "now" passed in): an instance ended 91 days ago has no series files and
 * no registry rows (the API's reads get -ENOENT), one ended 89 days ago
 * keeps everything, a second sweep changes nothing, and the invoice of
 * the month the instance ended is byte-identical before and after.
 * Real librrd files, real sqlite, the real billing meter.
 */
#include <errno.h>
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
#include <sqlite3.h>

#include "vigie/batch.h"
#include "vigie/bill_invoice.h"
#include "vigie/bill_meter.h"
#include "vigie/bill_ratecard.h"
#include "vigie/clock.h"
#include "vigie/config.h"
#include "vigie/lifecycle.h"
#include "vigie/registry.h"
#include "vigie/store.h"

#define DAY_MS (86400LL * 1000)
#define RATECARD "tests/fixtures/billing/ratecard.json"

static int64_t T(const char *iso)
{
	int64_t ms;
	assert_int_equal(vg_time_parse(iso, 0, &ms), 0);
	return ms;
}

struct fx {
	char dir[64];
	struct vg_config cfg;
	struct vg_store *s;
	struct vg_registry *reg;
	struct vg_bill_meter *m;
	uint64_t seq;
};

static void feed(struct fx *f, struct vg_batch *b)
{
	assert_int_equal(vg_registry_update(f->reg, b), 0);
	assert_int_equal(vg_store_write_batch(f->s, b), 0);
	assert_int_equal(vg_bill_meter_batch(f->m, b), 0);
	vg_batch_free(b);
}

/* An instance polled every minute from start to end, then ended at end. */
static void life(struct fx *f, const char *id, int64_t start, int64_t end)
{
	for (int64_t t = start; t <= end; t += 60000) {
		struct vg_batch *b = vg_batch_new("h1", 1, ++f->seq, t);
		struct vg_resource *r = vg_batch_resource(b, VG_RT_INSTANCE, id, id,
							  NULL, t);
		int ended = t == end;
		r->state = ended ? VG_RSTATE_ENDED : VG_RSTATE_ACTIVE;
		assert_int_equal(vg_batch_identity(b, "p", NULL, "m1.small"), 0);
		if (!ended) {
			assert_int_equal(vg_batch_sample(b, "power.state", VG_KIND_GAUGE, 1), 0);
			assert_int_equal(vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER,
							 (double)(t - start) / 1000),
					 0);
			assert_int_equal(vg_batch_attr(b, "flavor_vcpus", "1"), 0);
			assert_int_equal(vg_batch_attr(b, "flavor_memory_mb", "1024"), 0);
		}
		feed(f, b);
	}
}

static int file_exists(struct fx *f, const char *id, const char *metric)
{
	char path[4096];
	struct stat st;

	assert_int_equal(vg_store_path(f->s, VG_RT_INSTANCE, id, metric, path,
				       sizeof(path)),
			 0);
	return stat(path, &st) == 0;
}

static char *invoice(struct fx *f, struct vg_bill_month m)
{
	struct vg_bill_ratecard *rc;
	struct vg_db *db;
	char err[256], path[256], *text = NULL;
	size_t len = 0;

	snprintf(path, sizeof(path), "%s/billing.db", f->dir);
	assert_int_equal(vg_bill_ratecard_load(RATECARD, &rc, err, sizeof(err)), 0);
	assert_int_equal(vg_bill_db_open(path, &db, err, sizeof(err)), 0);
	assert_int_equal(vg_bill_invoice_text(db, rc, m, "p",
					      vg_bill_invoice_format_parse("json"),
					      &text, &len),
			 0);
	assert_true(len > 0);
	vg_db_close(db);
	vg_bill_ratecard_free(rc);
	return text;
}

static void test_ended_91_and_89_days(void **state)
{
	struct fx f = {0};
	struct vg_lifecycle_result r;
	struct vg_series ser;
	json_t *o = NULL;
	char err[256], path[256];
	/* vm-old ran 2026-10-10 10:00..10:30, vm-new ended two days later */
	int64_t old_end = T("2026-10-10T10:30:00Z"), new_end = old_end + 2 * DAY_MS;
	int64_t now = old_end + 91 * DAY_MS; /* vm-new: 89 days ago */
	struct vg_bill_month oct = {2026, 10};
	char *before, *after;

	(void)state;
	strcpy(f.dir, "/tmp/vigie-lifecycle.XXXXXX");
	assert_non_null(mkdtemp(f.dir));
	vg_config_defaults(&f.cfg);
	assert_int_equal(vg_config_parse_archives("1m:1d,1h:30d", f.cfg.archives,
						  VG_MAX_ARCHIVES, &f.cfg.narchives),
			 0);
	snprintf(path, sizeof(path), "%s/billing.db", f.dir);
	if (vg_store_open(f.dir, &f.cfg, &f.s, err, sizeof(err)) ||
	    vg_registry_open(f.dir, &f.reg, err, sizeof(err)) ||
	    vg_bill_meter_open(path, &f.m, err, sizeof(err)))
		fail_msg("%s", err);

	life(&f, "vm-old", old_end - 30 * 60000, old_end);
	life(&f, "vm-new", new_end - 30 * 60000, new_end);
	assert_int_equal(vg_store_flush(f.s), 0);
	assert_int_equal(vg_registry_flush(f.reg), 0);
	assert_true(file_exists(&f, "vm-old", "cpu.time"));
	before = invoice(&f, oct);

	/* a day before vm-old is due: nothing goes */
	assert_int_equal(vg_lifecycle_sweep(f.reg, f.s, old_end + 89 * DAY_MS,
					    90 * DAY_MS, &r, err, sizeof(err)),
			 0);
	assert_int_equal(r.resources_removed, 0);
	assert_int_equal(r.resources_waiting, 2);
	assert_int_equal(r.series_waiting, 4);
	assert_true(file_exists(&f, "vm-old", "cpu.time"));

	/* keep_ended = 0 keeps forever */
	assert_int_equal(vg_lifecycle_sweep(f.reg, f.s, now, 0, &r, err, sizeof(err)), 0);
	assert_int_equal(r.resources_removed, 0);
	assert_true(file_exists(&f, "vm-old", "cpu.time"));

	/* 91 days after vm-old ended, 89 after vm-new */
	assert_int_equal(vg_lifecycle_sweep(f.reg, f.s, now, 90 * DAY_MS, &r, err,
					    sizeof(err)),
			 0);
	assert_int_equal(r.resources_removed, 1);
	assert_int_equal(r.series_removed, 2);
	assert_int_equal(r.errors, 0);
	assert_int_equal(r.resources_waiting, 1);
	assert_int_equal(r.series_waiting, 2);

	/* vm-old: no files, no rows, reads answer -ENOENT */
	assert_false(file_exists(&f, "vm-old", "cpu.time"));
	assert_false(file_exists(&f, "vm-old", "power.state"));
	assert_int_equal(vg_registry_get(f.reg, "vm-old", &o), -ENOENT);
	assert_int_equal(vg_registry_lookup(f.reg, "vm-old", NULL, NULL, 0), -ENOENT);
	assert_int_equal(vg_store_fetch(f.s, VG_RT_INSTANCE, "vm-old", "power.state",
					VG_CF_AVERAGE, old_end - DAY_MS, old_end, 0, 0,
					&ser),
			 -ENOENT);
	{ /* and its metrics rows are gone too */
		sqlite3 *db;
		sqlite3_stmt *st;
		snprintf(path, sizeof(path), "%s/registry.db", f.dir);
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM metrics "
							"WHERE resource_id = 'vm-old'",
						    -1,
						    &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(st, 0), 0);
		sqlite3_finalize(st);
		sqlite3_close(db);
	}

	/* vm-new keeps everything */
	assert_true(file_exists(&f, "vm-new", "cpu.time"));
	assert_true(file_exists(&f, "vm-new", "power.state"));
	assert_int_equal(vg_registry_get(f.reg, "vm-new", &o), 0);
	assert_non_null(json_object_get(json_object_get(o, "metrics"), "cpu.time"));
	json_decref(o);
	assert_int_equal(vg_store_fetch(f.s, VG_RT_INSTANCE, "vm-new", "power.state",
					VG_CF_AVERAGE, new_end - 3600000, new_end, 60, 0,
					&ser),
			 0);
	assert_true(ser.n >= 25);
	vg_series_free(&ser);

	/* billing keeps its own records: the month's invoice is unchanged */
	after = invoice(&f, oct);
	assert_string_equal(before, after);
	assert_non_null(strstr(after, "vm-old"));
	free(before);
	free(after);

	/* again: nothing more to do */
	assert_int_equal(vg_lifecycle_sweep(f.reg, f.s, now, 90 * DAY_MS, &r, err,
					    sizeof(err)),
			 0);
	assert_int_equal(r.resources_removed + r.series_removed, 0);

	vg_bill_meter_close(f.m);
	vg_registry_close(f.reg);
	vg_store_close(f.s);
	snprintf(path, sizeof(path), "rm -rf '%s'", f.dir);
	assert_int_equal(system(path), 0);
}

/* A series removed while values wait in the write-behind cache: they go
 * with it (nothing is written back), and a sample that comes later makes
 * a new series (the removed one left the store's table). Many series
 * around it, so the table's deletion moves neighbours. */
static void test_remove_cached_then_back(void **state)
{
	struct vg_config cfg;
	struct vg_store *s;
	struct vg_store_stats st;
	struct vg_series ser;
	char dir[64], err[256], path[4096], m[32];
	int64_t t0 = 1800000000LL * 1000;
	struct stat sb;

	(void)state;
	strcpy(dir, "/tmp/vigie-lifecycle.XXXXXX");
	assert_non_null(mkdtemp(dir));
	vg_config_defaults(&cfg);
	assert_int_equal(vg_config_parse_archives("1m:1d", cfg.archives, VG_MAX_ARCHIVES,
						  &cfg.narchives),
			 0);
	assert_int_equal(vg_store_open(dir, &cfg, &s, err, sizeof(err)), 0);
	for (int i = 0; i < 3; i++) {
		struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)i + 1, t0 + 60000 * i);
		vg_batch_resource(b, VG_RT_INSTANCE, "vm-x", NULL, NULL, t0 + 60000 * i);
		for (int k = 0; k < 200; k++) {
			snprintf(m, sizeof(m), "m.%d", k);
			vg_batch_sample(b, m, VG_KIND_GAUGE, k + i);
		}
		assert_int_equal(vg_store_write_batch(s, b), 0);
		vg_batch_free(b);
	}
	for (int k = 0; k < 200; k += 2) {
		snprintf(m, sizeof(m), "m.%d", k);
		assert_int_equal(vg_store_remove_series(s, VG_RT_INSTANCE, "vm-x", m), 0);
	}
	assert_int_equal(vg_store_remove_series(s, VG_RT_INSTANCE, "vm-x", "m.0"), -ENOENT);
	assert_int_equal(vg_store_flush(s), 0);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.series_removed, 100);
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(vg_store_path(s, VG_RT_INSTANCE, "vm-x", "m.0", path, sizeof(path)), 0);
	assert_int_equal(stat(path, &sb), -1); /* not written back by a flush */
	assert_int_equal(vg_store_fetch(s, VG_RT_INSTANCE, "vm-x", "m.0", VG_CF_AVERAGE,
					t0, t0 + 600000, 60, 0, &ser),
			 -ENOENT);
	/* the others keep every value */
	for (int k = 1; k < 200; k += 2) {
		snprintf(m, sizeof(m), "m.%d", k);
		assert_int_equal(vg_store_fetch(s, VG_RT_INSTANCE, "vm-x", m, VG_CF_AVERAGE,
						t0, t0 + 180000, 60, 0, &ser),
				 0);
		assert_true(ser.n >= 2);
		vg_series_free(&ser);
	}
	/* a later sample makes a new series */
	for (int i = 10; i < 12; i++) {
		struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)i + 1, t0 + 60000 * i);
		vg_batch_resource(b, VG_RT_INSTANCE, "vm-x", NULL, NULL, t0 + 60000 * i);
		vg_batch_sample(b, "m.0", VG_KIND_GAUGE, 42);
		vg_batch_sample(b, "m.1", VG_KIND_GAUGE, 43);
		assert_int_equal(vg_store_write_batch(s, b), 0);
		vg_batch_free(b);
	}
	assert_int_equal(vg_store_fetch(s, VG_RT_INSTANCE, "vm-x", "m.0", VG_CF_AVERAGE,
					t0, t0 + 720000, 60, 0, &ser),
			 0);
	assert_int_equal(ser.n, 1); /* only the new values: 11 min (10 min's is its start) */
	assert_true(ser.points[0].value == 42);
	vg_series_free(&ser);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.write_errors, 0);
	vg_store_close(s);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	assert_int_equal(system(path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ended_91_and_89_days),
		cmocka_unit_test(test_remove_cached_then_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
