/*
 * registry_list_test.c — the resource list reads a page and its metrics in
 * one statement (no query per resource): every resource of every page carries
 * exactly its own metrics (none, one, several; values newer in the
 * last-value cache than in the database), in id order, the cursor walking
 * each resource once, with and without filters whose matches interleave
 * with other resources, and each listed object equal to what
 * vg_registry_get (one resource, its own metrics query) answers. The
 * whole group runs on each state engine (sqlite's registry.db, then a
 * PostgreSQL server the test starts), and a resource with more metrics
 * than the page's bounded scan reads is carried whole, each metric once.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "state_engines.h"

#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/registry.h"

#define T0 1700000000000LL

static char dir[64];
static char url[700]; /* "" on sqlite */
static struct vg_registry *reg;
static struct st_engine *eng; /* the group's engine */

/* Resources in id order: project, and metrics "name=value" at T0 (the
 * second sample of a name at T0 + 60 s overrides it). */
static const struct {
	const char *id, *project;
	const char *metrics[4];
} res[] = {
	{"a-1", "p1", {"cpu.util=1.5", "cpu.time=10", "memory.used=100"}},
	{"a-2", "p2", {NULL}},
	{"a-3", "p1", {"vcpus=2"}},
	{"b-1", "p2", {"cpu.util=4", "cpu.util=5"}},
	{"b-2", "p1", {"custom.thing=7", "cpu.time=20"}},
	{"c-1", "p1", {NULL}},
	{"c-2", "p2", {"memory.used=300", "cpu.util=0.25", "vcpus=4"}},
};
#define NRES (sizeof(res) / sizeof(res[0]))

/* Whether the "name=value" m is of metric name. */
static int same_name(const char *m, const char *name)
{
	size_t n = strlen(name);

	return !strncmp(m, name, n) && m[n] == '=';
}

static int setup(void **state)
{
	char err[256];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/vigie-reglist-test.XXXXXX");
	if (!mkdtemp(dir) || st_fresh(eng, url, sizeof(url)))
		return -1;
	reg = NULL;
	if (!eng->ready)
		return 0; /* every case skips */
	if (vg_registry_open_state(dir, url, &reg, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	/* two polls: the first with every first sample, the second (60 s
	 * later) with the overriding ones */
	for (int poll = 0; poll < 2; poll++) {
		int64_t t = T0 + 60000LL * poll;
		struct vg_batch *b = vg_batch_new("node1", 1, (uint64_t)poll + 1, t);

		for (size_t i = 0; i < NRES; i++) {
			if (!vg_batch_resource(b, VG_RT_INSTANCE, res[i].id,
					       res[i].id, NULL, t) ||
			    vg_batch_identity(b, res[i].project, "u", "m1"))
				return -1;
			for (int k = 0; k < 4 && res[i].metrics[k]; k++) {
				char name[64];
				const char *eq = strchr(res[i].metrics[k], '=');
				int dup = 0;
				snprintf(name, sizeof(name), "%.*s",
					 (int)(eq - res[i].metrics[k]),
					 res[i].metrics[k]);
				for (int q = 0; q < k; q++)
					dup |= same_name(res[i].metrics[q], name);
				if (dup != poll)
					continue; /* the other poll's sample */
				if (vg_batch_sample(b, name,
						    strstr(name, ".time")
							    ? VG_KIND_COUNTER
							    : VG_KIND_GAUGE,
						    atof(eq + 1)))
					return -1;
			}
		}
		if (vg_registry_update(reg, b))
			return -1;
		vg_batch_free(b);
	}
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	vg_registry_close(reg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) ? -1 : 0;
}

/* Resource i's metrics as they must be listed: the last sample of each
 * name, with its time. */
static void check_metrics(size_t i, json_t *m)
{
	size_t want = 0;
	char iso[32];

	for (int k = 0; k < 4 && res[i].metrics[k]; k++) {
		const char *eq = strchr(res[i].metrics[k], '=');
		char name[64];
		int later = 0;
		snprintf(name, sizeof(name), "%.*s", (int)(eq - res[i].metrics[k]),
			 res[i].metrics[k]);
		for (int q = k + 1; q < 4 && res[i].metrics[q]; q++)
			later |= same_name(res[i].metrics[q], name);
		if (later)
			continue; /* overridden by a newer sample */
		int earlier = 0;
		for (int q = 0; q < k; q++)
			earlier |= same_name(res[i].metrics[q], name);
		json_t *e = json_object_get(m, name);
		assert_non_null(e);
		assert_true(json_is_real(json_object_get(e, "last_value")));
		assert_true(json_real_value(json_object_get(e, "last_value")) ==
			    atof(eq + 1));
		assert_string_equal(
			json_string_value(json_object_get(e, "last_time")),
			vg_time_format(T0 + (earlier ? 60000 : 0), iso, sizeof(iso)));
		assert_string_equal(json_string_value(json_object_get(e, "kind")),
				    strstr(name, ".time") ? "counter" : "gauge");
		want++;
	}
	assert_int_equal(json_object_size(m), want);
}

static size_t index_of(const char *id)
{
	for (size_t i = 0; i < NRES; i++)
		if (!strcmp(res[i].id, id))
			return i;
	fail_msg("unexpected resource %s", id);
	return 0;
}

/* Walk every page of the list (project NULL: all) with page size limit;
 * check ids, order, cursor and each resource's metrics. */
static void walk(const char *project, int limit)
{
	struct vg_resource_filter f = {0};
	char next[256] = "", after[256] = "";
	size_t want = 0, seen = 0;

	for (size_t i = 0; i < NRES; i++)
		want += !project || !strcmp(res[i].project, project);
	f.project = project;
	f.limit = limit;
	size_t expect_next = 0; /* index into res of the next expected id */
	do {
		json_t *page, *o;
		size_t k;

		f.after = after[0] ? after : NULL;
		assert_int_equal(vg_registry_list(reg, &f, &page, next,
						  sizeof(next)),
				 0);
		assert_true((int)json_array_size(page) <= limit);
		json_array_foreach(page, k, o) {
			const char *id = json_string_value(json_object_get(o, "id"));
			size_t i = index_of(id);
			json_t *one;

			while (project && strcmp(res[expect_next].project, project))
				expect_next++;
			assert_int_equal(i, expect_next); /* id order, none skipped */
			expect_next++;
			check_metrics(i, json_object_get(o, "metrics"));
			assert_int_equal(vg_registry_get(reg, id, &one), 0);
			assert_true(json_equal(one, o));
			json_decref(one);
			seen++;
		}
		/* a full page is followed by a cursor at its last id */
		if (next[0]) {
			assert_int_equal(json_array_size(page), (size_t)limit);
			assert_string_equal(
				next, json_string_value(json_object_get(
					      json_array_get(page, (size_t)limit - 1),
					      "id")));
		}
		json_decref(page);
		snprintf(after, sizeof(after), "%s", next);
	} while (next[0]);
	assert_int_equal(seen, want);
}

static void test_pages_carry_their_metrics(void **state)
{
	(void)state;
	st_need(eng);
	for (int limit = 1; limit <= (int)NRES + 1; limit++) {
		walk(NULL, limit);
		walk("p1", limit);
		walk("p2", limit);
	}
}

/* After the last-value cache is written to the database, the same. */
static void test_pages_after_flush(void **state)
{
	(void)state;
	st_need(eng);
	assert_int_equal(vg_registry_flush(reg), 0);
	walk(NULL, 2);
	walk("p1", 3);
}

/* A filter that matches nothing and a cursor past the end: empty. */
static void test_empty_page(void **state)
{
	struct vg_resource_filter f = {0};
	char next[64] = "x";
	json_t *page;

	(void)state;
	st_need(eng);
	f.limit = 10;
	f.project = "nobody";
	assert_int_equal(vg_registry_list(reg, &f, &page, next, sizeof(next)), 0);
	assert_int_equal(json_array_size(page), 0);
	assert_string_equal(next, "");
	json_decref(page);
	f.project = NULL;
	f.after = "zzz";
	assert_int_equal(vg_registry_list(reg, &f, &page, next, sizeof(next)), 0);
	assert_int_equal(json_array_size(page), 0);
	json_decref(page);
}

/* A visitor that stops the walk: the error comes back, nothing of the
 * walk is left half-done (the next list, from the same handle, is whole). */
struct stopper {
	int resources, metrics, stop_at;
};

static int stop_resource(void *ctx, const struct vg_registry_res *r)
{
	struct stopper *st = ctx;

	(void)r;
	return ++st->resources == st->stop_at ? -EIO : 0;
}

static int stop_metric(void *ctx, const struct vg_registry_metric *m)
{
	struct stopper *st = ctx;

	(void)m;
	st->metrics++;
	return 0;
}

static int stop_end(void *ctx)
{
	(void)ctx;
	return 0;
}

static void test_visitor_stops(void **state)
{
	struct vg_resource_filter f = {.limit = 100};
	char next[256];

	(void)state;
	st_need(eng);
	for (int stop = 1; stop <= 3; stop++) {
		struct stopper st = {0, 0, stop};
		struct vg_registry_visitor v = {stop_resource, stop_metric,
						stop_end, &st};
		assert_int_equal(vg_registry_list_visit(reg, &f, &v, next,
							sizeof(next)),
				 -EIO);
		assert_int_equal(st.resources, stop);
		assert_string_equal(next, "");
		walk(NULL, 3);
	}
	{ /* and a visitor that never stops sees every resource and metric */
		struct stopper st = {0, 0, -1};
		struct vg_registry_visitor v = {stop_resource, stop_metric,
						stop_end, &st};
		size_t nmetrics = 0;
		assert_int_equal(vg_registry_list_visit(reg, &f, &v, next,
							sizeof(next)),
				 0);
		for (size_t i = 0; i < NRES; i++)
			for (int k = 0; k < 4 && res[i].metrics[k]; k++) {
				int dup = 0;
				for (int q = 0; q < k; q++) {
					const char *eq = strchr(res[i].metrics[k], '=');
					char name[64];
					snprintf(name, sizeof(name), "%.*s",
						 (int)(eq - res[i].metrics[k]),
						 res[i].metrics[k]);
					dup |= same_name(res[i].metrics[q], name);
				}
				nmetrics += !dup;
			}
		assert_int_equal(st.resources, (int)NRES);
		assert_int_equal(st.metrics, (int)nmetrics);
	}
}

/* A filter whose matches are sparse among the ids: the page's id range
 * holds hundreds of other resources' metrics, so the range scan gives way
 * to per-resource reads; the metrics must be the same. Runs last: it adds
 * resources the walks above do not expect. */
static void test_sparse_filter(void **state)
{
	struct vg_batch *b = vg_batch_new("node2", 1, 1, T0);
	struct vg_resource_filter f = {0};
	char next[64], id[32], iso[32];
	json_t *page, *o;
	size_t k;

	(void)state;
	st_need(eng);
	for (int i = 0; i < 300; i++) {
		snprintf(id, sizeof(id), "m-%03d", i);
		assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, T0));
		assert_int_equal(vg_batch_identity(b, "many", "u", "m1"), 0);
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, i);
		vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 1000.0 + i);
		if (i % 50 == 25) { /* m-025x, m-075x, ...: project "few" */
			snprintf(id, sizeof(id), "m-%03dx", i);
			assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, id, id,
							  NULL, T0));
			assert_int_equal(vg_batch_identity(b, "few", "u", "m1"), 0);
			vg_batch_sample(b, "vcpus", VG_KIND_GAUGE, i);
		}
	}
	assert_int_equal(vg_registry_update(reg, b), 0);
	vg_batch_free(b);

	f.project = "few";
	f.limit = 10;
	assert_int_equal(vg_registry_list(reg, &f, &page, next, sizeof(next)), 0);
	assert_int_equal(json_array_size(page), 6);
	assert_string_equal(next, "");
	json_array_foreach(page, k, o) {
		json_t *m = json_object_get(o, "metrics"), *one;
		snprintf(id, sizeof(id), "m-%03zux", 25 + 50 * k);
		assert_string_equal(json_string_value(json_object_get(o, "id")), id);
		assert_int_equal(json_object_size(m), 1);
		assert_true(json_real_value(json_object_get(
				    json_object_get(m, "vcpus"), "last_value")) ==
			    (double)(25 + 50 * k));
		assert_string_equal(json_string_value(json_object_get(
					    json_object_get(m, "vcpus"), "last_time")),
				    vg_time_format(T0, iso, sizeof(iso)));
		assert_int_equal(vg_registry_get(reg, id, &one), 0);
		assert_true(json_equal(one, o));
		json_decref(one);
	}
	json_decref(page);
	/* and the dense neighbours, a page at a time, each with its two */
	f.project = "many";
	f.limit = 7;
	f.after = "m-100";
	assert_int_equal(vg_registry_list(reg, &f, &page, next, sizeof(next)), 0);
	assert_int_equal(json_array_size(page), 7);
	assert_string_equal(next, "m-107");
	json_array_foreach(page, k, o) {
		json_t *m = json_object_get(o, "metrics");
		assert_int_equal(json_object_size(m), 2);
		assert_true(json_real_value(json_object_get(
				    json_object_get(m, "memory.used"), "last_value")) ==
			    1101.0 + (double)k);
	}
	json_decref(page);
}

/* A resource with more metrics than a page's scan may read (its LIMIT:
 * PAGE_SCAN_PER_RES per resource plus the slack) is listed whole: the
 * scan stops at its bound inside the resource, and the rest of its
 * metrics follow, each once, in name order. */
static void test_wide_resource(void **state)
{
	struct vg_batch *b = vg_batch_new("node3", 1, 1, T0);
	struct vg_resource_filter f = {0};
	char next[64], name[32];
	json_t *page, *m, *one;
	const char *key;
	json_t *v;
	int k = 0;

	(void)state;
	st_need(eng);
	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, "w-1", "w-1", NULL, T0));
	assert_int_equal(vg_batch_identity(b, "wide", "u", "m1"), 0);
	for (int i = 0; i < 700; i++) {
		snprintf(name, sizeof(name), "x.m%04d", i);
		vg_batch_sample(b, name, VG_KIND_GAUGE, i);
	}
	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, "w-2", "w-2", NULL, T0));
	assert_int_equal(vg_batch_identity(b, "wide", "u", "m1"), 0);
	vg_batch_sample(b, "vcpus", VG_KIND_GAUGE, 2);
	assert_int_equal(vg_registry_update(reg, b), 0);
	vg_batch_free(b);

	f.project = "wide";
	f.limit = 1;
	assert_int_equal(vg_registry_list(reg, &f, &page, next, sizeof(next)), 0);
	assert_int_equal(json_array_size(page), 1);
	assert_string_equal(next, "w-1");
	m = json_object_get(json_array_get(page, 0), "metrics");
	assert_int_equal(json_object_size(m), 700);
	json_object_foreach(m, key, v) {
		snprintf(name, sizeof(name), "x.m%04d", k);
		assert_string_equal(key, name); /* in order, each once */
		assert_true(json_real_value(json_object_get(v, "last_value")) == k);
		k++;
	}
	assert_int_equal(vg_registry_get(reg, "w-1", &one), 0);
	assert_true(json_equal(one, json_array_get(page, 0)));
	json_decref(one);
	json_decref(page);
	/* two on a page: the second after the wide one keeps its own */
	f.limit = 2;
	assert_int_equal(vg_registry_list(reg, &f, &page, next, sizeof(next)), 0);
	assert_int_equal(json_array_size(page), 2);
	assert_int_equal(json_object_size(json_object_get(json_array_get(page, 0),
							  "metrics")),
			 700);
	m = json_object_get(json_array_get(page, 1), "metrics");
	assert_int_equal(json_object_size(m), 1);
	assert_non_null(json_object_get(m, "vcpus"));
	json_decref(page);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pages_carry_their_metrics),
		cmocka_unit_test(test_pages_after_flush),
		cmocka_unit_test(test_empty_page),
		cmocka_unit_test(test_visitor_stops),
		cmocka_unit_test(test_sparse_filter),
		cmocka_unit_test(test_wide_resource),
	};
	struct st_engine *engines[] = {&ST_SQLITE, &ST_PG};
	int failed = 0;

	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++) {
		eng = engines[i];
		failed += cmocka_run_group_tests_name(eng->name, tests, setup, teardown);
	}
	st_group_teardown(NULL);
	return failed;
}
