/*
 * store_cache_test.c — the store's write-behind cache (collector/store.c):
 * accepted values wait in memory (and the journal) and are written to
 * their RRD file many timestamps per librrd call; a read sees every value
 * accepted before it (read-your-writes); duplicates are recognised against
 * cached values too; a second store on the same directory (it does not own
 * the journal) writes through.
 *
 * Time is driven through sample timestamps; the only waits are bounded
 * polls for the storage thread (at most a few seconds).
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <rrd.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/store.h"

#include "../support/rrd_last.h"

#define T0 1699999980LL
#define MS(s) ((int64_t)(s)*1000)

struct fixture {
	char dir[64];
	struct vg_config cfg;
	struct vg_store *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	snprintf(f->dir, sizeof(f->dir), "/tmp/vigie-cache-test.XXXXXX");
	if (!f || !mkdtemp(f->dir))
		return -1;
	vg_config_defaults(&f->cfg);
	if (vg_config_parse_archives("1m:1d,5m:7d", f->cfg.archives, VG_MAX_ARCHIVES,
				     &f->cfg.narchives) ||
	    vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err)))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	vg_store_close(f->s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", f->dir);
	free(f);
	return 0;
}

static void put(struct vg_store *s, const char *id, int64_t t_ms, double v)
{
	struct vg_batch *b = vg_batch_new("h1", 1, 1, t_ms);

	assert_non_null(vg_batch_resource(b, VG_RT_HOST, id, NULL, NULL, t_ms));
	assert_int_equal(vg_batch_sample(b, "load.1", VG_KIND_GAUGE, v), 0);
	assert_int_equal(vg_store_write_batch(s, b), 0);
	vg_batch_free(b);
}

static time_t file_last(struct fixture *f, const char *id)
{
	char path[PATH_MAX];

	assert_int_equal(vg_store_path(f->s, VG_RT_HOST, id, "load.1", path,
				       sizeof(path)),
			 0);
	return fx_rrd_last_s(path);
}

static void test_read_your_writes(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	struct vg_series g;

	for (int i = 0; i < 5; i++)
		put(f->s, "node1", MS(T0 + 60 * i), i + 1);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_written, 5);
	assert_int_equal(st.values_pending, 5);          /* cached ... */
	assert_int_equal(file_last(f, "node1"), T0 - 1); /* ... not in the file */

	/* a read right away sees all of them */
	assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, "node1", "load.1",
					VG_CF_AVERAGE, MS(T0), MS(T0 + 240), 60, 0, &g),
			 0);
	assert_int_equal(g.n, 4);
	for (size_t k = 0; k < g.n; k++)
		assert_true(g.points[k].value == (double)(k + 2));
	vg_series_free(&g);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.values_flushed, 5);
	assert_int_equal(st.flushes, 1); /* five values, one librrd call */
	assert_int_equal(file_last(f, "node1"), T0 + 240);

	/* and again after more writes */
	put(f->s, "node1", MS(T0 + 300), 6);
	assert_int_equal(vg_store_fetch(f->s, VG_RT_HOST, "node1", "load.1",
					VG_CF_AVERAGE, MS(T0), MS(T0 + 300), 60, 0, &g),
			 0);
	assert_int_equal(g.n, 5);
	assert_true(g.points[4].value == 6);
	vg_series_free(&g);
}

static void test_duplicates_against_cache(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	struct vg_batch *b;

	put(f->s, "node1", MS(T0), 1);
	put(f->s, "node1", MS(T0 + 60), 2);
	put(f->s, "node1", MS(T0 + 60), 2); /* re-sent: only in the cache yet */
	put(f->s, "node1", MS(T0 + 30), 9); /* older */
	/* the same series twice in one batch: the second, older, is a duplicate */
	b = vg_batch_new("h1", 1, 1, MS(T0 + 120));
	vg_batch_resource(b, VG_RT_HOST, "node1", NULL, NULL, MS(T0 + 120));
	vg_batch_sample(b, "load.1", VG_KIND_GAUGE, 3);
	vg_batch_resource(b, VG_RT_HOST, "node1", NULL, NULL, MS(T0 + 90));
	vg_batch_sample(b, "load.1", VG_KIND_GAUGE, 8);
	assert_int_equal(vg_store_write_batch(f->s, b), 0);
	vg_batch_free(b);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_written, 3);
	assert_int_equal(st.values_duplicate, 3);
	assert_int_equal(st.values_pending, 3);
	assert_int_equal(vg_store_flush(f->s), 0);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_flushed, 3);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(file_last(f, "node1"), T0 + 120);
}

/* Enough values for the flush depth: the storage thread writes them by
 * itself, many per librrd call. */
static void test_flush_depth(void **state)
{
	struct fixture *f = *state;
	struct vg_store_stats st;
	const int n = 200;

	for (int i = 0; i < n; i++)
		put(f->s, "node2", MS(T0 + 10 * i), i);
	for (int w = 0; w < 300; w++) { /* <= 3 s */
		vg_store_get_stats(f->s, &st);
		if (st.values_flushed >= 150)
			break;
		usleep(10000);
	}
	vg_store_get_stats(f->s, &st);
	assert_true(st.values_flushed >= 150);
	assert_true(st.flushes * 16 <= st.values_flushed); /* >= 16 per call */
	assert_int_equal(st.write_errors, 0);
}

/* A second store on the same data directory does not own the journal:
 * vg_store_open refuses it (a second collector would journal nothing);
 * opened beside (storage stats) it writes through, and reads what the
 * first one wrote. */
static void test_second_store_writes_through(void **state)
{
	struct fixture *f = *state;
	struct vg_store *s2;
	struct vg_store_stats st;
	char err[256];

	/* vg_store_open refuses it, naming the directory */
	assert_int_equal(vg_store_open(f->dir, &f->cfg, &s2, err, sizeof(err)), -EBUSY);
	assert_null(s2);
	assert_non_null(strstr(err, f->dir));
	assert_non_null(strstr(err, "in use by another process"));
	assert_int_equal(vg_store_open_beside(f->dir, &f->cfg, &s2, err, sizeof(err)), 0);
	assert_int_equal(vg_store_owns_journal(s2), 0);
	put(s2, "node3", MS(T0), 1);
	put(s2, "node3", MS(T0 + 60), 2);
	vg_store_get_stats(s2, &st);
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.values_flushed, 2);
	assert_int_equal(file_last(f, "node3"), T0 + 60);
	vg_store_close(s2);
}

/* A full cache refuses a batch whole (-EAGAIN: the receiver answers RETRY
 * and the agent keeps it), journals nothing of it, and takes it once the
 * storage thread caught up. */
static void test_cache_full(void **state)
{
	struct fixture *f = *state;
	struct vg_store *s;
	struct vg_store_stats st;
	struct vg_batch *b;
	char err[256], id[16];

	vg_store_close(f->s);             /* reopen with a 20-value cache */
	f->cfg.storage_cache_values = 20; /* [storage] cache_values */
	assert_int_equal(vg_store_open(f->dir, &f->cfg, &s, err, sizeof(err)), 0);
	f->s = s;
	/* 9 cached values: under half the cache, so the storage thread
	 * leaves them there (no flush depth, no age, not idle yet) */
	for (int i = 0; i < 9; i++)
		put(s, "node1", MS(T0 + 60 * i), i);
	b = vg_batch_new("h1", 1, 2, MS(T0));
	for (int i = 0; i < 12; i++) {
		snprintf(id, sizeof(id), "node-%d", i);
		vg_batch_resource(b, VG_RT_HOST, id, NULL, NULL, MS(T0));
		vg_batch_sample(b, "load.1", VG_KIND_GAUGE, i);
	}
	assert_int_equal(vg_store_write_batch(s, b), -EAGAIN);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.values_written, 9);
	assert_int_equal(st.values_pending, 9);
	assert_int_equal(st.cache_full, 1);
	assert_non_null(strstr(vg_store_last_error(s), "storage full"));
	/* the storage thread catches up; the same batch goes in */
	assert_int_equal(vg_store_flush(s), 0);
	assert_int_equal(vg_store_write_batch(s, b), 0);
	vg_batch_free(b);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.values_written, 21);
	assert_int_equal(st.values_duplicate, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_your_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates_against_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_depth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_store_writes_through, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cache_full, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
