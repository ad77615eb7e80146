/*
 * registry_test.c — the registry on every state engine (sqlite's
 * registry.db, and a PostgreSQL server the test starts): upsert and get
 * (identity, times, metrics with unit/kind/last value), the ended state
 * and its clearing, list filters and cursor pagination, the duplicate
 * filter across a reopen, lookup, refusing a newer schema, the
 * migration of a version 2 state (fillfactor on PostgreSQL, the holding
 * marks table on both), and two
 * handles committing the same (host, stream, seq) at once: exactly one
 * wins, and two handles committing groups of the same hosts in opposite
 * orders (PostgreSQL) without a deadlock, and the holding marks of
 * collectors that hold values a storage daemon has not taken.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>

#include "state_engines.h"
#include "../support/lock_waiters.h"
#include "../support/row_lock.h"

#include "vigie/batch.h"
#include "vigie/catalog.h"
#include "vigie/clock.h"
#include "vigie/registry.h"

#define T0 1700000000000LL

struct fixture {
	struct st_engine *e;
	char dir[64];
	char url[700]; /* "" on sqlite: registry.db in dir */
	struct vg_registry *r;
};

/* Another handle on the case's state (another thread, or a restart). */
static int reg_open(struct fixture *f, struct vg_registry **r, char *err, size_t errlen)
{
	return vg_registry_open_state(f->dir, f->url, r, err, errlen);
}

static struct vg_db *raw_db(struct fixture *f)
{
	return st_db(f->url, f->dir, "registry.db");
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	f->e = *state;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vigie-registry-test.XXXXXX");
	if (!mkdtemp(f->dir) || st_fresh(f->e, f->url, sizeof(f->url)))
		return -1;
	*state = f;
	if (!f->e->ready)
		return 0; /* the case skips */
	if (reg_open(f, &f->r, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

/* The case's fixture, or skip it when its engine cannot run here. */
static struct fixture *fx(void **state)
{
	struct fixture *f = *state;

	st_need(f->e);
	return f;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	vg_registry_close(f->r);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd))
		return -1;
	free(f);
	return 0;
}

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static const char *iso(int64_t ms, char *buf)
{
	return vg_time_format(ms, buf, 32);
}

/* An instance with a disk, at time t. */
static struct vg_batch *instance_batch(int64_t t, double cpu, const char *project,
				       uint8_t state)
{
	struct vg_batch *b = vg_batch_new("node1", 7, 1, t);
	struct vg_resource *r;

	r = vg_batch_resource(b, VG_RT_INSTANCE, "inst-1", "web-1", NULL, t);
	assert_non_null(r);
	r->state = state;
	assert_int_equal(vg_batch_identity(b, project, "alice", "m1.small"), 0);
	assert_int_equal(vg_batch_attr(b, "vcpus", "2"), 0);
	assert_int_equal(vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, cpu), 0);
	assert_int_equal(vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 512e6), 0);
	r = vg_batch_resource(b, VG_RT_DISK, "inst-1-vda", "vda", "inst-1", t);
	r->state = state;
	assert_int_equal(vg_batch_sample(b, "rd.bytes", VG_KIND_COUNTER, 4096), 0);
	return b;
}

static void update(struct vg_registry *r, struct vg_batch *b)
{
	int rc = vg_registry_update(r, b);

	if (rc)
		fail_msg("vg_registry_update: %d %s", rc, vg_registry_last_error(r));
	vg_batch_free(b);
}

static void test_upsert_get(void **state)
{
	struct fixture *f = fx(state);
	const struct vg_metric_def *def = vg_catalog_find(VG_RT_INSTANCE, "cpu.time");
	json_t *o, *m;
	char buf[32];

	update(f->r, instance_batch(T0, 10.5, NULL, VG_RSTATE_ACTIVE));
	assert_int_equal(vg_registry_get(f->r, "inst-1", &o), 0);
	assert_string_equal(str(o, "id"), "inst-1");
	assert_string_equal(str(o, "type"), "instance");
	assert_string_equal(str(o, "host"), "node1");
	assert_string_equal(str(o, "name"), "web-1");
	assert_true(json_is_null(json_object_get(o, "parent")));
	assert_string_equal(str(o, "project"), "default");
	assert_string_equal(str(o, "user"), "alice");
	assert_string_equal(str(o, "flavor"), "m1.small");
	assert_string_equal(str(o, "state"), "active");
	assert_string_equal(str(o, "first_seen"), iso(T0, buf));
	assert_string_equal(str(o, "last_seen"), iso(T0, buf));
	assert_true(json_is_null(json_object_get(o, "ended_at")));
	assert_string_equal(str(json_object_get(o, "attributes"), "vcpus"), "2");
	m = json_object_get(json_object_get(o, "metrics"), "cpu.time");
	assert_non_null(m);
	assert_string_equal(str(m, "kind"), "counter");
	assert_string_equal(str(m, "unit"), def ? def->unit : "");
	assert_true(json_real_value(json_object_get(m, "last_value")) == 10.5);
	assert_string_equal(str(m, "last_time"), iso(T0, buf));
	m = json_object_get(json_object_get(o, "metrics"), "memory.used");
	assert_string_equal(str(m, "kind"), "gauge");
	assert_int_equal(json_object_size(json_object_get(o, "metrics")), 2);
	json_decref(o);

	/* The disk knows its parent. */
	assert_int_equal(vg_registry_get(f->r, "inst-1-vda", &o), 0);
	assert_string_equal(str(o, "parent"), "inst-1");
	assert_string_equal(str(o, "type"), "disk");
	json_decref(o);

	/* A newer batch moves last_seen and last_value, and sets the project;
	 * an older one (re-sent) changes neither. */
	update(f->r, instance_batch(T0 + 60000, 20.5, "acme", VG_RSTATE_ACTIVE));
	update(f->r, instance_batch(T0 + 30000, 15, NULL, VG_RSTATE_ACTIVE));
	assert_int_equal(vg_registry_get(f->r, "inst-1", &o), 0);
	assert_string_equal(str(o, "first_seen"), iso(T0, buf));
	assert_string_equal(str(o, "last_seen"), iso(T0 + 60000, buf));
	assert_string_equal(str(o, "project"), "acme"); /* NULL keeps it */
	m = json_object_get(json_object_get(o, "metrics"), "cpu.time");
	assert_true(json_real_value(json_object_get(m, "last_value")) == 20.5);
	assert_string_equal(str(m, "last_time"), iso(T0 + 60000, buf));
	json_decref(o);

	assert_int_equal(vg_registry_get(f->r, "nope", &o), -ENOENT);
	assert_null(o);
}

static void test_ended(void **state)
{
	struct fixture *f = fx(state);
	struct vg_resource_filter flt = {.state = "ended", .limit = 10};
	json_t *o, *arr;
	char cur[256], buf[32];

	update(f->r, instance_batch(T0, 1, "p", VG_RSTATE_ACTIVE));
	update(f->r, instance_batch(T0 + 10000, 2, "p", VG_RSTATE_ENDED));
	/* a second ENDED report keeps the first end time */
	update(f->r, instance_batch(T0 + 20000, 2, "p", VG_RSTATE_ENDED));
	assert_int_equal(vg_registry_get(f->r, "inst-1", &o), 0);
	assert_string_equal(str(o, "state"), "ended");
	assert_string_equal(str(o, "ended_at"), iso(T0 + 10000, buf));
	assert_string_equal(str(o, "last_seen"), iso(T0, buf));
	json_decref(o);
	assert_int_equal(vg_registry_list(f->r, &flt, &arr, cur, sizeof(cur)), 0);
	assert_int_equal(json_array_size(arr), 2); /* instance and disk */
	json_decref(arr);

	/* a stale ACTIVE report (older than the end) does not revive it */
	update(f->r, instance_batch(T0 + 5000, 1, "p", VG_RSTATE_ACTIVE));
	assert_int_equal(vg_registry_get(f->r, "inst-1", &o), 0);
	assert_string_equal(str(o, "state"), "ended");
	json_decref(o);
	/* seen active again later: ended_at cleared */
	update(f->r, instance_batch(T0 + 30000, 3, "p", VG_RSTATE_ACTIVE));
	assert_int_equal(vg_registry_get(f->r, "inst-1", &o), 0);
	assert_string_equal(str(o, "state"), "active");
	assert_true(json_is_null(json_object_get(o, "ended_at")));
	json_decref(o);
	assert_int_equal(vg_registry_list(f->r, &flt, &arr, cur, sizeof(cur)), 0);
	assert_int_equal(json_array_size(arr), 0);
	json_decref(arr);
}

/* 30 resources: ids r00..r29; type instance for even, host_nic for odd;
 * host node<i%3>; project p<i%2> (i<20) or NULL -> default. */
static void populate(struct vg_registry *r)
{
	struct vg_batch *b = vg_batch_new("x", 1, 1, T0);

	for (int i = 0; i < 30; i++) {
		char id[8], name[8];
		snprintf(id, sizeof(id), "r%02d", 29 - i); /* insert out of order */
		snprintf(name, sizeof(name), "n%d", (29 - i) % 5);
		assert_non_null(vg_batch_resource(b, (29 - i) % 2 ? VG_RT_HOST_NIC : VG_RT_INSTANCE,
						  id, name, (29 - i) < 3 ? "r29" : NULL, T0));
		if (29 - i < 20)
			vg_batch_identity(b, (29 - i) % 2 ? "p1" : "p0", NULL, NULL);
		vg_batch_sample(b, "m", VG_KIND_GAUGE, i);
	}
	assert_int_equal(vg_registry_update(r, b), 0);
	vg_batch_free(b);
	/* hosts differ per resource: use one batch per host for node1/node2 */
	for (int h = 1; h < 3; h++) {
		char host[8];
		snprintf(host, sizeof(host), "node%d", h);
		b = vg_batch_new(host, 1, 1, T0 + 1000);
		for (int i = h; i < 30; i += 3) {
			char id[8];
			snprintf(id, sizeof(id), "r%02d", i);
			vg_batch_resource(b, i % 2 ? VG_RT_HOST_NIC : VG_RT_INSTANCE, id,
					  NULL, NULL, T0 + 1000);
		}
		assert_int_equal(vg_registry_update(r, b), 0);
		vg_batch_free(b);
	}
}

static size_t count_list(struct vg_registry *r, struct vg_resource_filter flt)
{
	json_t *arr;
	char cur[64];
	size_t n;

	flt.limit = 1000;
	assert_int_equal(vg_registry_list(r, &flt, &arr, cur, sizeof(cur)), 0);
	assert_string_equal(cur, "");
	n = json_array_size(arr);
	json_decref(arr);
	return n;
}

static void test_list(void **state)
{
	struct fixture *f = fx(state);
	struct vg_resource_filter flt = {.limit = 7};
	char seen[30] = {0}, cur[64], after[64], prev[16] = "";
	int pages = 0, total = 0;
	json_t *arr;

	populate(f->r);
	/* every page is ordered, the next starts after the cursor */
	for (;;) {
		{
			int rc_ = vg_registry_list(f->r, &flt, &arr, cur, sizeof(cur));
			if (rc_) fail_msg("%d %s", rc_, vg_registry_last_error(f->r));
		}
		pages++;
		for (size_t i = 0; i < json_array_size(arr); i++) {
			const char *id = str(json_array_get(arr, i), "id");
			assert_true(strcmp(id, prev) > 0);
			snprintf(prev, sizeof(prev), "%s", id);
			seen[atoi(id + 1)]++;
			total++;
		}
		assert_true(json_array_size(arr) == 7 || !cur[0]);
		json_decref(arr);
		if (!cur[0])
			break;
		snprintf(after, sizeof(after), "%s", cur);
		flt.after = after;
	}
	assert_int_equal(total, 30);
	assert_int_equal(pages, 5); /* 7+7+7+7+2 */
	for (int i = 0; i < 30; i++)
		assert_int_equal(seen[i], 1);

	assert_int_equal(count_list(f->r, (struct vg_resource_filter){.type = "instance"}), 15);
	assert_int_equal(count_list(f->r, (struct vg_resource_filter){.type = "host_nic"}), 15);
	assert_int_equal(count_list(f->r, (struct vg_resource_filter){.host = "node1"}), 10);
	assert_int_equal(count_list(f->r, (struct vg_resource_filter){.host = "x"}), 10);
	assert_int_equal(count_list(f->r, (struct vg_resource_filter){.project = "p0"}), 10);
	assert_int_equal(count_list(f->r, (struct vg_resource_filter){.project = "default"}), 10);
	assert_int_equal(count_list(f->r, (struct vg_resource_filter){.name = "n3"}), 6);
	assert_int_equal(count_list(f->r, (struct vg_resource_filter){.parent = "r29"}), 3);
	assert_int_equal(count_list(f->r, (struct vg_resource_filter){.state = "active"}), 30);
	assert_int_equal(count_list(f->r, (struct vg_resource_filter){.state = "ended"}), 0);
	assert_int_equal(count_list(f->r, (struct vg_resource_filter){
						  .type = "instance", .host = "node2", .project = "p0"}),
			 3);
	assert_int_equal(count_list(f->r, (struct vg_resource_filter){.after = "r25"}), 4);

	/* list entries are full resource objects */
	flt = (struct vg_resource_filter){.name = "n0", .limit = 1};
	assert_int_equal(vg_registry_list(f->r, &flt, &arr, cur, sizeof(cur)), 0);
	assert_string_equal(str(json_array_get(arr, 0), "id"), "r00");
	assert_string_equal(cur, "r00");
	assert_non_null(json_object_get(json_object_get(json_array_get(arr, 0), "metrics"), "m"));
	json_decref(arr);

	flt = (struct vg_resource_filter){.type = "vm", .limit = 5};
	assert_int_equal(vg_registry_list(f->r, &flt, &arr, cur, sizeof(cur)), -EINVAL);
	flt = (struct vg_resource_filter){.state = "dead", .limit = 5};
	assert_int_equal(vg_registry_list(f->r, &flt, &arr, cur, sizeof(cur)), -EINVAL);
	flt = (struct vg_resource_filter){.limit = 0};
	assert_int_equal(vg_registry_list(f->r, &flt, &arr, cur, sizeof(cur)), -EINVAL);
	flt = (struct vg_resource_filter){.limit = 1001};
	assert_int_equal(vg_registry_list(f->r, &flt, &arr, cur, sizeof(cur)), -EINVAL);
}

static void test_seen_commit_persist(void **state)
{
	struct fixture *f = fx(state);
	char err[256], project[32];
	int rtype = 0;

	assert_int_equal(vg_registry_seen(f->r, "node1", 0xabcdef0123456789ull, 1, T0), 0);
	assert_int_equal(vg_registry_seen_local(f->r), 0); /* asked the database */
	assert_int_equal(vg_registry_commit(f->r, "node1", 0xabcdef0123456789ull, 5, T0), 0);
	assert_int_equal(vg_registry_seen(f->r, "node1", 0xabcdef0123456789ull, 5, T0), 1);
	assert_int_equal(vg_registry_seen(f->r, "node1", 0xabcdef0123456789ull, 4, T0), 1);
	assert_int_equal(vg_registry_seen(f->r, "node1", 0xabcdef0123456789ull, 6, T0), 0);
	/* the next seq after its own commit: the host did not come from
	 * elsewhere (the store's arrival mark stays off) */
	assert_int_equal(vg_registry_seen_local(f->r), 1);
	assert_int_equal(vg_registry_seen(f->r, "node1", 0xabcdef0123456789ull, 8, T0), 0);
	assert_int_equal(vg_registry_seen_local(f->r), 0); /* a gap: asked */
	assert_int_equal(vg_registry_seen(f->r, "node2", 0xabcdef0123456789ull, 1, T0), 0);
	assert_int_equal(vg_registry_seen_local(f->r), 0);
	/* committing an older or the same seq never moves last_seq back,
	 * and says it was a duplicate */
	assert_int_equal(vg_registry_commit(f->r, "node1", 0xabcdef0123456789ull, 3, T0), 1);
	assert_int_equal(vg_registry_commit(f->r, "node1", 0xabcdef0123456789ull, 5, T0), 1);
	assert_int_equal(vg_registry_seen(f->r, "node1", 0xabcdef0123456789ull, 5, T0), 1);
	update(f->r, instance_batch(T0, 1, "acme", VG_RSTATE_ACTIVE));

	/* persisted across a reopen */
	vg_registry_close(f->r);
	assert_int_equal(reg_open(f, &f->r, err, sizeof(err)), 0);
	assert_int_equal(vg_registry_seen(f->r, "node1", 0xabcdef0123456789ull, 5, T0), 1);
	assert_int_equal(vg_registry_seen(f->r, "node1", 0xabcdef0123456789ull, 6, T0), 0);
	assert_int_equal(vg_registry_lookup(f->r, "inst-1", &rtype, project, sizeof(project)), 0);
	assert_int_equal(rtype, VG_RT_INSTANCE);
	assert_string_equal(project, "acme");
	assert_int_equal(vg_registry_lookup(f->r, "nope", &rtype, project, sizeof(project)), -ENOENT);

	/* a new stream (new agent spool) restarts the sequence */
	assert_int_equal(vg_registry_seen(f->r, "node1", 42, 1, T0), 0);
	assert_int_equal(vg_registry_commit(f->r, "node1", 42, 1, T0), 0);
	assert_int_equal(vg_registry_seen(f->r, "node1", 42, 1, T0), 1);
	/* and the old stream's acknowledged batches stay duplicates (a replay
	 * after a new stream), while its later ones are new */
	assert_int_equal(vg_registry_seen(f->r, "node1", 0xabcdef0123456789ull, 5, T0), 1);
	assert_int_equal(vg_registry_seen(f->r, "node1", 0xabcdef0123456789ull, 6, T0), 0);
}

/* The replay after a new stream: (H, S1, seq 1, R in P1), then (H, S2, seq 1, R
 * in P2), then the first batch again: a duplicate, and R stays in P2 even
 * if an old batch does get through (identity follows time). */
static void test_replay_after_new_stream(void **state)
{
	struct fixture *f = fx(state);
	json_t *o;
	char project[32];

	assert_int_equal(vg_registry_seen(f->r, "node1", 1, 1, T0), 0);
	update(f->r, instance_batch(T0, 1, "p1", VG_RSTATE_ACTIVE));
	assert_int_equal(vg_registry_commit(f->r, "node1", 1, 1, T0), 0);
	assert_int_equal(vg_registry_seen(f->r, "node1", 2, 1, T0 + 60000), 0);
	update(f->r, instance_batch(T0 + 60000, 2, "p2", VG_RSTATE_ACTIVE));
	assert_int_equal(vg_registry_commit(f->r, "node1", 2, 1, T0 + 60000), 0);
	/* the first batch again, byte for byte */
	assert_int_equal(vg_registry_seen(f->r, "node1", 1, 1, T0), 1);
	/* an old report registered anyway never rewinds the identity */
	update(f->r, instance_batch(T0, 1, "p1", VG_RSTATE_ACTIVE));
	assert_int_equal(vg_registry_lookup(f->r, "inst-1", NULL, project,
					    sizeof(project)),
			 0);
	assert_string_equal(project, "p2");
	/* through a fresh handle too (the database, not only the cache) */
	vg_registry_close(f->r);
	assert_int_equal(reg_open(f, &f->r, project, sizeof(project)), 0);
	assert_int_equal(vg_registry_get(f->r, "inst-1", &o), 0);
	assert_string_equal(str(o, "project"), "p2");
	json_decref(o);
	update(f->r, instance_batch(T0 + 30000, 1, "p1", VG_RSTATE_ACTIVE));
	assert_int_equal(vg_registry_get(f->r, "inst-1", &o), 0);
	assert_string_equal(str(o, "project"), "p2");
	json_decref(o);
	/* a newer report moves it, the fast path included */
	update(f->r, instance_batch(T0 + 120000, 3, "p3", VG_RSTATE_ACTIVE));
	update(f->r, instance_batch(T0 + 90000, 3, "p1", VG_RSTATE_ACTIVE));
	update(f->r, instance_batch(T0 + 180000, 3, "p3", VG_RSTATE_ACTIVE));
	assert_int_equal(vg_registry_get(f->r, "inst-1", &o), 0);
	assert_string_equal(str(o, "project"), "p3");
	json_decref(o);
	assert_int_equal(vg_registry_visible(f->r, "inst-1", "p3", NULL), 0);
	assert_int_equal(vg_registry_visible(f->r, "inst-1", "p1", NULL), -ENOENT);
	assert_int_equal(vg_registry_visible(f->r, "nope", NULL, NULL), -ENOENT);
}

/* A host keeps its last VG_REGISTRY_STREAMS streams; a batch of a stream
 * dropped beyond them is a duplicate by its time, a new stream is not. */
static void test_streams_bounded(void **state)
{
	struct fixture *f = fx(state);
	char err[256];
	int64_t t;

	for (uint64_t s = 1; s <= VG_REGISTRY_STREAMS + 4; s++) {
		t = T0 + (int64_t)s * 60000;
		assert_int_equal(vg_registry_seen(f->r, "node1", s, 1, t), 0);
		assert_int_equal(vg_registry_commit(f->r, "node1", s, 3, t), 0);
	}
	/* every stream, kept or dropped: its acknowledged batches are
	 * duplicates, persisted */
	vg_registry_close(f->r);
	assert_int_equal(reg_open(f, &f->r, err, sizeof(err)), 0);
	for (uint64_t s = 1; s <= VG_REGISTRY_STREAMS + 4; s++) {
		t = T0 + (int64_t)s * 60000;
		for (uint64_t q = 1; q <= 3; q++)
			assert_int_equal(vg_registry_seen(f->r, "node1", s, q, t), 1);
	}
	/* a kept stream goes on; a new stream after the floor is new; another
	 * host is unaffected */
	t = T0 + (VG_REGISTRY_STREAMS + 4) * 60000LL;
	assert_int_equal(vg_registry_seen(f->r, "node1", VG_REGISTRY_STREAMS + 4,
					  4, t + 1),
			 0);
	assert_int_equal(vg_registry_seen(f->r, "node1", 999, 1, t + 1), 0);
	assert_int_equal(vg_registry_seen(f->r, "node2", 1, 1, T0), 0);
	/* a stream dropped: anything at or before its newest time is stale */
	assert_int_equal(vg_registry_seen(f->r, "node1", 1, 4, T0 + 4 * 60000), 1);
	/* and the table is bounded: 16 rows for the host */
	{
		struct vg_db *db = raw_db(f);

		assert_int_equal(st_int(db, "SELECT count(*) FROM streams WHERE "
					    "host = 'node1'"),
				 VG_REGISTRY_STREAMS);
		assert_int_equal(st_int(db, "SELECT min(stream) FROM streams WHERE "
					    "host = 'node1'"),
				 5);
		vg_db_close(db);
	}
}

/* A registry.db of schema 1 (one stream per host, no identity time) is
 * upgraded in place: its stream stays a duplicate filter, its resources
 * keep their identity, and new reports follow the new rules. */
static void test_upgrade_from_v1(void **state)
{
	struct fixture *f = fx(state);
	char path[128], err[256];
	sqlite3 *db;
	json_t *o;

	if (f->e->kind != VG_DB_SQLITE) {
		printf("# SKIP %s: registry.db files of version 1 are sqlite's; "
		       "PostgreSQL starts at version 2\n",
		       f->e->name);
		skip();
	}
	vg_registry_close(f->r);
	snprintf(path, sizeof(path), "%s/registry.db", f->dir);
	remove(path);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "CREATE TABLE resources (id TEXT PRIMARY KEY NOT NULL,"
				      " type INTEGER NOT NULL, host TEXT NOT NULL, name TEXT, parent TEXT,"
				      " project TEXT NOT NULL DEFAULT 'default', user TEXT, flavor TEXT,"
				      " attributes TEXT NOT NULL DEFAULT '{}',"
				      " first_seen_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL,"
				      " ended_at_ms INTEGER);"
				      "CREATE TABLE metrics (resource_id TEXT NOT NULL, name TEXT NOT NULL,"
				      " kind INTEGER NOT NULL, unit TEXT NOT NULL DEFAULT '',"
				      " last_value REAL, last_time_ms INTEGER NOT NULL,"
				      " PRIMARY KEY (resource_id, name)) WITHOUT ROWID;"
				      "CREATE TABLE streams (host TEXT PRIMARY KEY NOT NULL,"
				      " stream INTEGER NOT NULL, last_seq INTEGER NOT NULL);"
				      "INSERT INTO resources VALUES('inst-1', 1, 'node1', 'web-1', NULL,"
				      " 'p2', 'alice', 'm1.small', '{}', 1700000000000, 1700000060000, NULL);"
				      "INSERT INTO streams VALUES('node1', 7, 5);"
				      "PRAGMA user_version = 1;",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(reg_open(f, &f->r, err, sizeof(err)), 0);
	assert_int_equal(vg_registry_seen(f->r, "node1", 7, 5, T0 + 60000), 1);
	assert_int_equal(vg_registry_seen(f->r, "node1", 7, 6, T0 + 120000), 0);
	/* older than the identity it has: does not move it */
	update(f->r, instance_batch(T0, 1, "p1", VG_RSTATE_ACTIVE));
	assert_int_equal(vg_registry_get(f->r, "inst-1", &o), 0);
	assert_string_equal(str(o, "project"), "p2");
	json_decref(o);
	update(f->r, instance_batch(T0 + 120000, 1, "p3", VG_RSTATE_ACTIVE));
	assert_int_equal(vg_registry_get(f->r, "inst-1", &o), 0);
	assert_string_equal(str(o, "project"), "p3");
	json_decref(o);
	assert_int_equal(vg_registry_commit(f->r, "node1", 8, 1, T0 + 120000), 0);
	assert_int_equal(vg_registry_seen(f->r, "node1", 7, 5, T0 + 60000), 1);
	/* and the file says version 2 now: a second open runs nothing */
	vg_registry_close(f->r);
	assert_int_equal(reg_open(f, &f->r, err, sizeof(err)), 0);
	assert_int_equal(vg_registry_seen(f->r, "node1", 8, 1, T0 + 120000), 1);
}

static void test_two_handles(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry *reader;
	struct vg_resource_filter flt = {.limit = 10};
	char err[256], cur[64];
	json_t *arr;

	assert_int_equal(reg_open(f, &reader, err, sizeof(err)), 0);
	assert_int_equal(vg_registry_list(reader, &flt, &arr, cur, sizeof(cur)), 0);
	assert_int_equal(json_array_size(arr), 0);
	json_decref(arr);
	update(f->r, instance_batch(T0, 1, NULL, VG_RSTATE_ACTIVE));
	assert_int_equal(vg_registry_list(reader, &flt, &arr, cur, sizeof(cur)), 0);
	assert_int_equal(json_array_size(arr), 2);
	json_decref(arr);
	vg_registry_close(reader);
	vg_registry_close(NULL);
}

/* The value of cpu.time of inst-1 as stored in registry.db's row (what a
 * restarted collector would start from), or -1 when there is no row. */
static double row_value(struct fixture *f)
{
	struct vg_db *db = raw_db(f);
	struct vg_db_stmt *s;
	double v = -1;

	assert_int_equal(vg_db_prepare(db,
				       "SELECT last_value FROM metrics WHERE resource_id = 'inst-1' "
				       "AND name = 'cpu.time'",
				       &s),
			 0);
	if (vg_db_step(s) == 1)
		v = vg_db_column_double(s, 0);
	vg_db_reset(s);
	vg_db_close(db);
	return v;
}

static double api_value(struct vg_registry *r)
{
	json_t *o, *m;
	double v;

	assert_int_equal(vg_registry_get(r, "inst-1", &o), 0);
	m = json_object_get(json_object_get(o, "metrics"), "cpu.time");
	v = json_real_value(json_object_get(m, "last_value"));
	json_decref(o);
	return v;
}

/* Newer values of known series wait in memory: another handle (an API
 * worker) sees them at once, the database gets them on flush and on
 * close, and a reopened registry starts from them. */
static void test_last_values_in_memory(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry *reader;
	char err[256];

	struct vg_registry_stats st0, st1;

	assert_int_equal(reg_open(f, &reader, err, sizeof(err)), 0);
	update(f->r, instance_batch(T0, 1, NULL, VG_RSTATE_ACTIVE));
	assert_true(row_value(f) == 1); /* a new series: row written */
	vg_registry_stats(f->r, &st0);
	assert_int_equal(st0.resource_rows, 2);
	assert_int_equal(st0.metric_rows, 3);
	update(f->r, instance_batch(T0 + 1000, 2, NULL, VG_RSTATE_ACTIVE));
	update(f->r, instance_batch(T0 + 2000, 3, NULL, VG_RSTATE_ACTIVE));
	vg_registry_stats(f->r, &st1); /* the fast path wrote no row */
	assert_int_equal(st1.resource_rows, st0.resource_rows);
	assert_int_equal(st1.metric_rows, st0.metric_rows);
	assert_true(row_value(f) == 1);      /* not yet in the database */
	assert_true(api_value(reader) == 3); /* but every reader sees it */
	{
		json_t *o;
		char buf[32];
		assert_int_equal(vg_registry_get(reader, "inst-1", &o), 0);
		assert_string_equal(str(o, "last_seen"), iso(T0 + 2000, buf));
		json_decref(o);
	}
	assert_true(api_value(f->r) == 3);
	assert_int_equal(vg_registry_flush(f->r), 0);
	assert_true(row_value(f) == 3);
	/* an older re-sent sample changes nothing, in memory or on flush */
	update(f->r, instance_batch(T0 + 1500, 9, NULL, VG_RSTATE_ACTIVE));
	assert_true(api_value(reader) == 3);
	update(f->r, instance_batch(T0 + 3000, 4, NULL, VG_RSTATE_ACTIVE));
	vg_registry_close(reader); /* a reader's close writes nothing */
	assert_true(row_value(f) == 3);
	vg_registry_close(f->r); /* the writer's close flushes */
	assert_true(row_value(f) == 4);
	assert_int_equal(reg_open(f, &f->r, err, sizeof(err)), 0);
	assert_true(api_value(f->r) == 4);
	/* a reopened process records the pair anew (a row write): the older
	 * sample must not overwrite the newer row */
	update(f->r, instance_batch(T0 + 2500, 7, NULL, VG_RSTATE_ACTIVE));
	assert_true(row_value(f) == 4);
	assert_true(api_value(f->r) == 4);
}

/* inst-1 at t with two cpu.time samples, first then second (a request
 * of published measures repeating a point) */
static struct vg_batch *twice_batch(int64_t t, double first, double second)
{
	struct vg_batch *b = vg_batch_new("node1", 7, 1, t);
	struct vg_resource *r = vg_batch_resource(b, VG_RT_INSTANCE, "inst-1",
						  "web-1", NULL, t);

	assert_non_null(r);
	r->state = VG_RSTATE_ACTIVE;
	assert_int_equal(vg_batch_identity(b, NULL, "alice", "m1.small"), 0);
	assert_int_equal(vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, first), 0);
	assert_int_equal(vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, second), 0);
	return b;
}

/* A second value of a series at the time of its last one is what the
 * store skips as a duplicate (t <= last): the last value stays the first
 * one, in memory, in the row and in the row a restarted process writes,
 * never the skipped one (a counter's /metrics total would jump to a
 * total the file never had, then back). */
static void test_same_time_keeps_first(void **state)
{
	struct fixture *f = fx(state);
	char err[256];

	update(f->r, twice_batch(T0, 1, 9)); /* a new series, then memory */
	assert_true(api_value(f->r) == 1);
	assert_int_equal(vg_registry_flush(f->r), 0);
	assert_true(row_value(f) == 1);
	update(f->r, instance_batch(T0, 7, NULL, VG_RSTATE_ACTIVE));
	assert_true(api_value(f->r) == 1);
	assert_int_equal(vg_registry_flush(f->r), 0);
	assert_true(row_value(f) == 1);
	vg_registry_close(f->r);
	assert_int_equal(reg_open(f, &f->r, err, sizeof(err)), 0);
	/* a reopened process writes the pair's row anew (the upsert) */
	update(f->r, instance_batch(T0, 8, NULL, VG_RSTATE_ACTIVE));
	assert_true(row_value(f) == 1);
	assert_true(api_value(f->r) == 1);
	/* a later time takes the new value, as always */
	update(f->r, instance_batch(T0 + 1000, 2, NULL, VG_RSTATE_ACTIVE));
	assert_true(api_value(f->r) == 2);
}

/* A batch whose transaction fails half-way (here a trigger refuses its
 * second resource, the way a full disk fails a write) leaves nothing
 * half-known: the series it recorded are written by the retried batch. */
static void test_rollback_rewrites_rows(void **state)
{
	struct fixture *f = fx(state);
	struct vg_db *db = raw_db(f);
	struct vg_batch *b;
	json_t *o;

	/* the one engine-specific text: each engine's trigger syntax */
	assert_int_equal(vg_db_exec(db, vg_db_engine(db) == VG_DB_SQLITE ? "CREATE TRIGGER refuse BEFORE INSERT ON resources "
									   "WHEN NEW.id = 'inst-1-vda' BEGIN SELECT RAISE(ABORT, 'no'); END"
									 : "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
									   "'BEGIN IF NEW.id = ''inst-1-vda'' THEN RAISE EXCEPTION ''no''; "
									   "END IF; RETURN NEW; END';"
									   "CREATE TRIGGER refuse BEFORE INSERT ON resources FOR EACH ROW "
									   "EXECUTE FUNCTION refuse()"),
			 0);
	b = instance_batch(T0, 5, NULL, VG_RSTATE_ACTIVE);
	assert_true(vg_registry_update(f->r, b) < 0);
	assert_int_equal(vg_registry_get(f->r, "inst-1", &o), -ENOENT);
	assert_int_equal(vg_db_exec(db, vg_db_engine(db) == VG_DB_SQLITE ? "DROP TRIGGER refuse" : "DROP TRIGGER refuse ON resources"), 0);
	vg_db_close(db);
	/* the agent is told RETRY and sends the batch again: its series are
	 * known in memory now, yet their rows must still be written */
	update(f->r, b);
	assert_true(api_value(f->r) == 5);
	assert_true(row_value(f) == 5);
}

static void test_invalid_names_skipped(void **state)
{
	struct fixture *f = fx(state);
	struct vg_batch *b = vg_batch_new("node1", 1, 1, T0);
	json_t *o;

	vg_batch_resource(b, VG_RT_INSTANCE, "bad\x01id", NULL, NULL, T0);
	vg_batch_sample(b, "m", VG_KIND_GAUGE, 1);
	vg_batch_resource(b, VG_RT_INSTANCE, "good", NULL, NULL, T0);
	vg_batch_sample(b, "ok", VG_KIND_GAUGE, 1);
	vg_batch_sample(b, "bad\nmetric", VG_KIND_GAUGE, 1);
	update(f->r, b);
	assert_int_equal(vg_registry_get(f->r, "bad\x01id", &o), -ENOENT);
	assert_int_equal(vg_registry_get(f->r, "good", &o), 0);
	assert_int_equal(json_object_size(json_object_get(o, "metrics")), 1);
	json_decref(o);
}

static void test_newer_schema_refused(void **state)
{
	struct fixture *f = fx(state);
	char err[256] = "";
	struct vg_registry *r = NULL;
	struct vg_db *db = raw_db(f);

	/* what a newer vigie writes: its version in vg_schema (and, on
	 * sqlite, in user_version, for vigie from before vg_schema) */
	assert_int_equal(vg_db_exec(db, "UPDATE vg_schema SET version = 99 "
					"WHERE component = 'registry'"),
			 0);
	if (vg_db_engine(db) == VG_DB_SQLITE)
		assert_int_equal(vg_db_exec(db, "PRAGMA user_version = 99"), 0);
	vg_db_close(db);
	assert_int_equal(reg_open(f, &r, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_null(r);
	assert_non_null(strstr(err, "99"));
}

/* An int64 read by one statement on a raw handle, or -1 without a row. */
static int64_t raw_int(struct fixture *f, const char *sql)
{
	struct vg_db *db = raw_db(f);
	struct vg_db_stmt *s;
	int64_t v = -1;

	assert_int_equal(vg_db_prepare(db, sql, &s), 0);
	if (vg_db_step(s) == 1)
		v = vg_db_column_int64(s, 0);
	vg_db_reset(s);
	vg_db_close(db);
	return v;
}

/* Schema step 3: on PostgreSQL, metrics and resources keep half of each
 * page free (fillfactor 50) so that the flush's updates are HOT; sqlite
 * has nothing to change. A state of version 2 (what vigie wrote before
 * this step) is migrated on open, with its rows kept. */
static void test_step3_fillfactor(void **state)
{
	static const char ff_sql[] =
		"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
		"c.relnamespace WHERE n.nspname = 'vigie_registry' AND c.relname IN "
		"('metrics', 'resources') AND 'fillfactor=50' = ANY(c.reloptions)";
	struct fixture *f = fx(state);
	int pg = f->e->kind == VG_DB_POSTGRESQL;
	char err[256];
	struct vg_db *db;

	update(f->r, instance_batch(T0, 1, "p1", VG_RSTATE_ACTIVE));
	assert_int_equal(raw_int(f, "SELECT version FROM vg_schema WHERE "
				    "component = 'registry'"),
			 7);
	if (pg)
		assert_int_equal(raw_int(f, ff_sql), 2);
	/* back to version 2's schema, as an older vigie left it */
	vg_registry_close(f->r);
	f->r = NULL;
	db = raw_db(f);
	assert_int_equal(vg_db_exec(db, "UPDATE vg_schema SET version = 2 "
					"WHERE component = 'registry'"),
			 0);
	if (pg) /* and, version 7's key gone, a row an older flush wrote back */
		assert_int_equal(vg_db_exec(db, "ALTER TABLE metrics RESET (fillfactor);"
						"ALTER TABLE resources RESET (fillfactor);"
						"ALTER TABLE metrics DROP CONSTRAINT metrics_resource;"
						"INSERT INTO metrics VALUES('swept', 'probe', 1, '', 1, 1);"),
				 0);
	else
		assert_int_equal(vg_db_exec(db, "PRAGMA user_version = 2"), 0);
	vg_db_close(db);
	if (pg)
		assert_int_equal(raw_int(f, ff_sql), 0);
	db = raw_db(f); /* version 2 had no holding marks, no custom_drops,
			 * no verified rows */
	assert_int_equal(vg_db_exec(db, "DROP TABLE held"), 0);
	assert_int_equal(vg_db_exec(db, "DROP TABLE custom_drops"), 0);
	assert_int_equal(vg_db_exec(db, "DROP TABLE verified"), 0);
	assert_int_equal(vg_db_exec(db, "ALTER TABLE streams DROP COLUMN node"), 0);
	assert_int_equal(vg_db_exec(db, "ALTER TABLE streams DROP COLUMN commit_ms"), 0);
	vg_db_close(db);
	assert_int_equal(reg_open(f, &f->r, err, sizeof(err)), 0);
	assert_int_equal(raw_int(f, "SELECT version FROM vg_schema WHERE "
				    "component = 'registry'"),
			 7);
	/* steps 4 to 7 ran on the way: their tables are back */
	assert_int_equal(raw_int(f, "SELECT count(*) FROM held"), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM custom_drops"), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM verified"), 0);
	if (pg) {
		assert_int_equal(raw_int(f, ff_sql), 2);
		/* step 7: the row without a resource is gone, the key is back */
		assert_int_equal(raw_int(f, "SELECT count(*) FROM metrics WHERE "
					    "resource_id = 'swept'"),
				 0);
		assert_int_equal(raw_int(f, "SELECT count(*) FROM pg_constraint WHERE "
					    "conname = 'metrics_resource'"),
				 1);
	}
	assert_true(row_value(f) == 1); /* the rows are still there */
	update(f->r, instance_batch(T0 + 60000, 2, "p1", VG_RSTATE_ACTIVE));
	vg_registry_close(f->r);
	f->r = NULL;
	assert_true(row_value(f) == 2);
	assert_int_equal(reg_open(f, &f->r, err, sizeof(err)), 0);
}

/* Holding marks: a collector that acknowledged a host's batches while a
 * storage daemon could not take their values marks the host in the
 * commit; another collector's duplicate check then answers 2 (RETRY)
 * for the host's new batches, while a duplicate stays a duplicate and
 * the holder itself is never blocked. A mark of another live holder is
 * not taken over; a mark past its ttl (a holder that died) blocks
 * nothing; renew extends it, clear drops it; a handle with no holder
 * writes none. */
static void test_holding_marks(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry *a = f->r, *b, *c;
	struct vg_registry_mark mk[2] = {{"h1", 7, 1, T0, 1, 0}, {"h2", 7, 1, T0, 0, 0}};
	int rcs[2];
	char err[256];

	assert_int_equal(reg_open(f, &b, err, sizeof(err)), 0);
	assert_int_equal(reg_open(f, &c, err, sizeof(err)), 0);
	assert_int_equal(vg_registry_set_holder(a, "node-a", 60000), 0);
	assert_int_equal(vg_registry_set_holder(b, "node-b", 60000), 0);
	/* a group: the marked batch alone, in a transaction with its mark */
	assert_int_equal(vg_registry_commit_group(a, mk, 2, rcs), 0);
	assert_int_equal(rcs[0], 0);
	assert_int_equal(rcs[1], 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM held WHERE host = 'h1' "
				    "AND node = 'node-a'"),
			 1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM held"), 1);
	/* the other collector: h1's next batch waits, its old one is a
	 * duplicate, h2 and a new stream of h2 go on */
	assert_int_equal(vg_registry_seen(b, "h1", 7, 2, T0 + 60000), 2);
	assert_int_equal(vg_registry_seen(b, "h1", 8, 1, T0 + 60000), 2);
	assert_int_equal(vg_registry_seen(b, "h1", 7, 1, T0), 1);
	assert_int_equal(vg_registry_seen(b, "h2", 7, 2, T0 + 60000), 0);
	/* a handle with no holder name sees every mark as another's */
	assert_int_equal(vg_registry_seen(c, "h1", 7, 2, T0 + 60000), 2);
	/* the holder is never blocked (a stream it has not committed: the
	 * database answers) */
	assert_int_equal(vg_registry_seen(a, "h1", 9, 1, T0 + 60000), 0);
	/* b acknowledged the same batch meanwhile, holding too: a's live
	 * mark stays a's (its values are the older ones); counted */
	struct vg_registry_stats st;
	mk[0] = (struct vg_registry_mark){"h1", 7, 1, T0, 1, 0};
	assert_int_equal(vg_registry_commit_group(b, mk, 1, rcs), 0);
	assert_int_equal(rcs[0], 1); /* committed by a */
	assert_int_equal(raw_int(f, "SELECT count(*) FROM held WHERE host = 'h1' "
				    "AND node = 'node-a'"),
			 1);
	vg_registry_stats(b, &st);
	assert_int_equal(st.hold_refused, 1);
	/* b's duplicate check of a new batch ran before a's mark, and b
	 * stored it holding: its mark is refused, so the batch is not
	 * recorded (-EBUSY: the receiver answers RETRY, the agent keeps
	 * it), on the stream of its last commit (one statement) as on a new
	 * one (a transaction) */
	assert_int_equal(vg_registry_commit(b, "h6", 7, 1, T0), 0);
	assert_int_equal(vg_registry_seen(b, "h6", 7, 2, T0 + 60000), 0);
	mk[0] = (struct vg_registry_mark){"h6", 8, 1, T0, 1, 0};
	assert_int_equal(vg_registry_commit_group(a, mk, 1, rcs), 0);
	assert_int_equal(rcs[0], 0); /* a marks h6 */
	mk[0] = (struct vg_registry_mark){"h6", 7, 2, T0 + 60000, 1, 0};
	assert_int_equal(vg_registry_commit_group(b, mk, 1, rcs), 0);
	assert_int_equal(rcs[0], -EBUSY);
	mk[0] = (struct vg_registry_mark){"h6", 9, 1, T0 + 60000, 1, 0};
	assert_int_equal(vg_registry_commit_group(b, mk, 1, rcs), 0);
	assert_int_equal(rcs[0], -EBUSY);
	vg_registry_stats(b, &st);
	assert_int_equal(st.hold_refused, 3);
	assert_int_equal(st.hold_failed, 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM held WHERE host = 'h6' "
				    "AND node = 'node-a'"),
			 1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM streams WHERE host = 'h6' "
				    "AND ((stream = 7 AND last_seq = 2) OR stream = 9)"),
			 0);
	assert_int_equal(vg_registry_seen(a, "h6", 7, 2, T0 + 60000), 0);
	assert_int_equal(vg_registry_seen(a, "h6", 9, 1, T0 + 60000), 0);
	/* without holding (no values wait) b's commit is not refused */
	mk[0] = (struct vg_registry_mark){"h6", 7, 2, T0 + 60000, 0, 0};
	assert_int_equal(vg_registry_commit_group(b, mk, 1, rcs), 0);
	assert_int_equal(rcs[0], 0);
	/* no holder: no mark written */
	mk[0] = (struct vg_registry_mark){"h5", 7, 1, T0, 1, 0};
	assert_int_equal(vg_registry_commit_group(c, mk, 1, rcs), 0);
	assert_int_equal(rcs[0], 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM held WHERE host = 'h5'"), 0);
	/* a's store drained: its marks go, b stores h1 again */
	assert_int_equal(vg_registry_hold_clear(a), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM held"), 0);
	assert_int_equal(vg_registry_seen(b, "h1", 7, 2, T0 + 60000), 0);
	assert_int_equal(vg_registry_commit(b, "h1", 7, 2, T0 + 60000), 0);
	assert_int_equal(vg_registry_seen(b, "h1", 12, 1, T0 + 60000), 0);
	assert_int_equal(vg_registry_commit(b, "h1", 12, 1, T0 + 60000), 0);
	/* a mark past its ttl blocks nothing (a holder that died); a renewal
	 * makes it live again */
	assert_int_equal(vg_registry_set_holder(a, "node-a", 0), 0);
	mk[0] = (struct vg_registry_mark){"h3", 7, 1, T0, 1, 0};
	assert_int_equal(vg_registry_commit_group(a, mk, 1, rcs), 0);
	assert_int_equal(rcs[0], 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM held WHERE host = 'h3'"), 1);
	assert_int_equal(vg_registry_seen(b, "h3", 7, 2, T0 + 60000), 0);
	/* b, holding too, takes the expired mark over */
	mk[0] = (struct vg_registry_mark){"h3", 7, 2, T0 + 60000, 1, 0};
	assert_int_equal(vg_registry_commit_group(b, mk, 1, rcs), 0);
	assert_int_equal(rcs[0], 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM held WHERE host = 'h3' "
				    "AND node = 'node-b'"),
			 1);
	assert_int_equal(vg_registry_seen(a, "h3", 8, 1, T0 + 120000), 2);
	/* a's expired marks come back to life when renewed */
	mk[0] = (struct vg_registry_mark){"h4", 7, 1, T0, 1, 0};
	assert_int_equal(vg_registry_commit_group(a, mk, 1, rcs), 0);
	assert_int_equal(vg_registry_seen(b, "h4", 7, 2, T0 + 60000), 0);
	assert_int_equal(vg_registry_set_holder(a, "node-a", 60000), 0);
	assert_int_equal(vg_registry_hold_renew(a), 0);
	assert_int_equal(vg_registry_seen(b, "h4", 7, 2, T0 + 60000), 2);
	assert_int_equal(vg_registry_hold_clear(b), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM held"), 1);
	assert_int_equal(vg_registry_set_holder(a, "", 0), 0);
	assert_int_equal(vg_registry_hold_clear(a), 0); /* no name: nothing */
	assert_int_equal(raw_int(f, "SELECT count(*) FROM held"), 1);
	vg_registry_close(b);
	vg_registry_close(c);
}

/* The operator's view of the holding marks and the release of a node
 * that will never come back (`vigie-collector storage marks`): a mark
 * lasts its holder's ttl past its last renewal whatever the holder's
 * fate (a dead holder's journal may hold the values), so only a release
 * frees its hosts sooner. */
struct mark_row {
	char host[64], node[64];
	int64_t until_ms;
};
struct mark_rows {
	struct mark_row row[8];
	int n;
};
static int collect_mark(void *ctx, const char *host, const char *node, int64_t until_ms)
{
	struct mark_rows *m = ctx;

	if (m->n == 8)
		return 7; /* stops the walk, returned */
	snprintf(m->row[m->n].host, sizeof(m->row[m->n].host), "%s", host);
	snprintf(m->row[m->n].node, sizeof(m->row[m->n].node), "%s", node);
	m->row[m->n++].until_ms = until_ms;
	return 0;
}

static void test_marks_release(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry *a = f->r, *b;
	struct vg_registry_mark mk = {"h1", 7, 1, T0, 1, 0};
	struct mark_rows m = {0};
	int64_t before = vg_now_ms();
	uint64_t n = 99;
	int rcs[1];
	char err[256];

	assert_int_equal(reg_open(f, &b, err, sizeof(err)), 0);
	assert_int_equal(vg_registry_set_holder(a, "node-a", 6 * 3600 * 1000LL), 0);
	assert_int_equal(vg_registry_set_holder(b, "node-b", 6 * 3600 * 1000LL), 0);
	assert_int_equal(vg_registry_commit_group(a, &mk, 1, rcs), 0);
	mk = (struct vg_registry_mark){"h2", 7, 1, T0, 1, 0};
	assert_int_equal(vg_registry_commit_group(a, &mk, 1, rcs), 0);
	mk = (struct vg_registry_mark){"h3", 7, 1, T0, 1, 0};
	assert_int_equal(vg_registry_commit_group(b, &mk, 1, rcs), 0);
	/* listed by node, then host, with the holder's time limit */
	assert_int_equal(vg_registry_marks(b, collect_mark, &m), 0);
	assert_int_equal(m.n, 3);
	assert_string_equal(m.row[0].host, "h1");
	assert_string_equal(m.row[0].node, "node-a");
	assert_string_equal(m.row[1].host, "h2");
	assert_string_equal(m.row[2].node, "node-b");
	assert_true(m.row[0].until_ms >= before + 6 * 3600 * 1000LL);
	/* the other collector answers node-a's hosts RETRY and says whose */
	assert_string_equal(vg_registry_held_by(b), "");
	assert_int_equal(vg_registry_seen(b, "h1", 7, 2, T0 + 60000), 2);
	assert_string_equal(vg_registry_held_by(b), "node-a");
	/* node-a's disk is lost: released, node-b's mark stays */
	assert_int_equal(vg_registry_marks_release(b, "node-a", &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(vg_registry_seen(b, "h1", 7, 2, T0 + 60000), 0);
	assert_int_equal(vg_registry_seen(a, "h3", 7, 2, T0 + 60000), 2);
	assert_int_equal(vg_registry_marks_release(b, "node-a", &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(vg_registry_marks_release(b, "", &n), -EINVAL);
	m.n = 0;
	assert_int_equal(vg_registry_marks(a, collect_mark, &m), 0);
	assert_int_equal(m.n, 1);
	assert_string_equal(m.row[0].node, "node-b");
	vg_registry_close(b);
}

/* Step 6 on a state of version 5 (either engine): the streams rows the
 * commit writes gain the committing node and its commit time, and the
 * verified table appears; rows written before keep their seq and carry
 * no node, so nothing waits for them. A commit with a holder set writes
 * its name and a time not behind the handle's previous commit; one
 * without writes no name. */
static void test_step6_commit_node(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry *b;
	struct vg_db *db;
	char err[256];
	int64_t t0 = vg_now_ms();

	/* a state as version 5 left it: one stream committed */
	assert_int_equal(vg_registry_commit(f->r, "h-old", 7, 3, T0), 0);
	vg_registry_close(f->r);
	f->r = NULL;
	db = raw_db(f);
	assert_int_equal(vg_db_exec(db, "DROP TABLE verified"), 0);
	assert_int_equal(vg_db_exec(db, "ALTER TABLE streams DROP COLUMN node"), 0);
	assert_int_equal(vg_db_exec(db, "ALTER TABLE streams DROP COLUMN commit_ms"), 0);
	assert_int_equal(vg_db_exec(db, "UPDATE vg_schema SET version = 5 "
					"WHERE component = 'registry'"),
			 0);
	if (f->e->kind == VG_DB_SQLITE)
		assert_int_equal(vg_db_exec(db, "PRAGMA user_version = 5"), 0);
	vg_db_close(db);
	assert_int_equal(reg_open(f, &f->r, err, sizeof(err)), 0);
	assert_int_equal(raw_int(f, "SELECT version FROM vg_schema WHERE "
				    "component = 'registry'"),
			 7);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM verified"), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM streams WHERE host = 'h-old' "
				    "AND last_seq = 3 AND node IS NULL AND commit_ms = 0"),
			 1);
	/* another collector waiting for verified rows: nothing waits for
	 * the old row (no node), the duplicate stays a duplicate */
	assert_int_equal(reg_open(f, &b, err, sizeof(err)), 0);
	assert_int_equal(vg_registry_set_holder(b, "node-b", 600000), 0);
	vg_registry_set_wait_verified(b, 1);
	assert_int_equal(vg_registry_seen(b, "h-old", 7, 3, T0), 1);
	assert_int_equal(vg_registry_seen(b, "h-old", 7, 4, T0 + 1), 0);
	/* with a holder: the node and a commit time in the row the commit
	 * writes, alone and in a group */
	assert_int_equal(vg_registry_set_holder(f->r, "node-a", 600000), 0);
	assert_int_equal(vg_registry_commit(f->r, "h-old", 7, 4, T0 + 1), 0);
	assert_true(vg_registry_committed_ms(f->r) >= t0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM streams WHERE host = 'h-old' "
				    "AND last_seq = 4 AND node = 'node-a'"),
			 1);
	assert_true(raw_int(f, "SELECT commit_ms FROM streams WHERE host = 'h-old'") ==
		    vg_registry_committed_ms(f->r));
	{
		struct vg_registry_mark mk[2] = {{"h-old", 7, 5, T0 + 2, 0, 0},
						 {"h-new", 7, 1, T0 + 2, 0, 0}};
		int rcs[2];
		assert_int_equal(vg_registry_commit_group(f->r, mk, 2, rcs), 0);
		assert_int_equal(rcs[0], 0);
		assert_int_equal(rcs[1], 0);
	}
	assert_int_equal(raw_int(f, "SELECT count(*) FROM streams WHERE node = 'node-a' "
				    "AND commit_ms >= 1700000000000"),
			 2);
	/* no holder: no name (a single collector; nobody waits for it) */
	assert_int_equal(vg_registry_commit(b, "h-b", 7, 1, T0), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM streams WHERE host = 'h-b' "
				    "AND node = 'node-b'"),
			 1);
	assert_int_equal(vg_registry_set_holder(b, "", 0), 0);
	assert_int_equal(vg_registry_commit(b, "h-c", 7, 1, T0), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM streams WHERE host = 'h-c' "
				    "AND node IS NULL AND commit_ms = 0"),
			 1);
	vg_registry_close(b);
}

struct verified_rows {
	size_t n;
	char node[4][32];
	int64_t upto[4];
	uint64_t behind[4];
};

static int collect_verified(void *ctx, const char *node, int64_t upto_ms, uint64_t behind)
{
	struct verified_rows *v = ctx;

	if (v->n < 4) {
		snprintf(v->node[v->n], sizeof(v->node[0]), "%s", node);
		v->upto[v->n] = upto_ms;
		v->behind[v->n] = behind;
	}
	v->n++;
	return 0;
}

/* Part 3 of "Closing the second" (docs/scaling.md) in the shared state:
 * a collector (b) waiting for verified rows answers a host new to it 3
 * (RETRY) while the host's last commit, by another node (a), is past
 * a's verified row, and 0 once a's row reaches that commit; never for
 * its own commits, nor with the wait off. The wait is bounded as
 * holding marks are: a commit older than the waiter's ttl ([cluster]
 * hold_max) is not waited for, and the operator's release of a node
 * moves its row to now. The list names the nodes behind. */
static void test_wait_verified(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry *a = f->r, *b;
	struct verified_rows v = {0};
	uint64_t n = 9;
	int64_t c1;
	char err[256];

	assert_int_equal(reg_open(f, &b, err, sizeof(err)), 0);
	assert_int_equal(vg_registry_set_holder(a, "node-a", 600000), 0);
	assert_int_equal(vg_registry_set_holder(b, "node-b", 600000), 0);
	vg_registry_set_wait_verified(b, 1);
	assert_int_equal(vg_registry_commit(a, "h1", 7, 1, T0), 0);
	c1 = vg_registry_committed_ms(a);
	/* a's commit not verified (no row yet): the host waits at b */
	assert_int_equal(vg_registry_seen(b, "h1", 7, 2, T0 + 60000), 3);
	assert_string_equal(vg_registry_held_by(b), "node-a");
	/* a duplicate stays a duplicate; another stream of the host waits */
	assert_int_equal(vg_registry_seen(b, "h1", 7, 1, T0), 1);
	assert_int_equal(vg_registry_seen(b, "h1", 8, 1, T0 + 60000), 3);
	/* a itself is never kept waiting by its own commit */
	assert_int_equal(vg_registry_seen(a, "h1", 7, 3, T0 + 120000), 0);
	assert_int_equal(vg_registry_verified(b, collect_verified, &v), 0);
	assert_int_equal(v.n, 1);
	assert_string_equal(v.node[0], "node-a");
	assert_int_equal(v.upto[0], 0);
	assert_int_equal(v.behind[0], 1);
	/* a's row short of the commit: still waiting; at it: accepted */
	assert_int_equal(vg_registry_set_verified(a, c1 - 1), 0);
	assert_int_equal(vg_registry_seen(b, "h1", 7, 2, T0 + 60000), 3);
	assert_int_equal(vg_registry_set_verified(a, c1), 0);
	assert_int_equal(vg_registry_seen(b, "h1", 7, 2, T0 + 60000), 0);
	/* the row only moves forward */
	assert_int_equal(vg_registry_set_verified(a, c1 - 1000), 0);
	assert_int_equal(raw_int(f, "SELECT upto_ms FROM verified WHERE node = 'node-a'"), c1);
	v.n = 0;
	assert_int_equal(vg_registry_verified(b, collect_verified, &v), 0);
	assert_int_equal(v.n, 0);

	/* b took the host (seq 2): a, waiting too, waits for b's row */
	assert_int_equal(vg_registry_commit(b, "h1", 7, 2, T0 + 60000), 0);
	vg_registry_set_wait_verified(a, 1);
	assert_int_equal(vg_registry_seen(a, "h1", 7, 3, T0 + 120000), 3);
	assert_string_equal(vg_registry_held_by(a), "node-b");
	/* with the wait off, nothing is waited for */
	vg_registry_set_wait_verified(a, 0);
	assert_int_equal(vg_registry_seen(a, "h1", 7, 3, T0 + 120000), 0);
	vg_registry_set_wait_verified(a, 1);

	/* the bound: a commit older than the waiter's ttl is not waited for
	 * (a node that never came back: hold_max) */
	assert_int_equal(vg_registry_set_holder(a, "node-a", 0), 0);
	assert_int_equal(vg_registry_seen(a, "h1", 7, 3, T0 + 120000), 0);
	assert_int_equal(vg_registry_set_holder(a, "node-a", 600000), 0);
	assert_int_equal(vg_registry_seen(a, "h1", 7, 3, T0 + 120000), 3);

	/* the operator's release of node-b: no host waits for it; a second
	 * release finds nothing waited for */
	assert_int_equal(vg_registry_verified_release(a, "node-b", &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(vg_registry_seen(a, "h1", 7, 3, T0 + 120000), 0);
	assert_int_equal(vg_registry_verified_release(a, "node-b", &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(vg_registry_verified_release(a, "", &n), -EINVAL);
	/* a handle with no holder writes no row */
	assert_int_equal(vg_registry_set_holder(b, "", 0), 0);
	assert_int_equal(vg_registry_set_verified(b, vg_now_ms() + 3600000), 0);
	assert_true(raw_int(f, "SELECT upto_ms FROM verified WHERE node = 'node-b'") <
		    vg_now_ms() + 60000);
	vg_registry_close(b);
}

/* Issue 15 window (b): one batch taken by two collectors while a daemon
 * is down (the agent re-sent it to the second after the first's ack came
 * late, and both duplicate checks ran before either commit). Exactly one
 * commit applies; whichever order they come in, the mark is the first
 * committer's alone and the other's commit answers DUPLICATE, its own
 * mark refused. The loser's store then holds the batch's values: the
 * same series, times and values as the holder's (docs/scaling.md, what
 * this costs). */
static void test_same_batch_two_holders(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry *a = f->r, *b;
	struct vg_registry_mark mk = {"h1", 7, 5, T0, 1, 0};
	int rcs[1];
	char err[256];

	assert_int_equal(reg_open(f, &b, err, sizeof(err)), 0);
	assert_int_equal(vg_registry_set_holder(a, "node-a", 60000), 0);
	assert_int_equal(vg_registry_set_holder(b, "node-b", 60000), 0);
	assert_int_equal(vg_registry_commit(a, "h1", 7, 4, T0 - 60000), 0);
	/* both checks before either commit: new to both */
	assert_int_equal(vg_registry_seen(a, "h1", 7, 5, T0), 0);
	assert_int_equal(vg_registry_seen(b, "h1", 7, 5, T0), 0);
	assert_int_equal(vg_registry_commit_group(b, &mk, 1, rcs), 0);
	assert_int_equal(rcs[0], 0); /* b first, this time */
	assert_int_equal(vg_registry_commit_group(a, &mk, 1, rcs), 0);
	assert_int_equal(rcs[0], 1); /* a: committed elsewhere */
	assert_int_equal(raw_int(f, "SELECT count(*) FROM held WHERE host = 'h1' "
				    "AND node = 'node-b'"),
			 1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM held"), 1);
	/* the host's next batch: the holder stores it, the other waits —
	 * also the loser, which had taken seq 5 itself (before the fix it
	 * answered seq 6 from memory as new, past b's mark) */
	assert_int_equal(vg_registry_seen(b, "h1", 7, 6, T0 + 60000), 0);
	assert_int_equal(vg_registry_seen(a, "h1", 7, 6, T0 + 60000), 2);
	assert_string_equal(vg_registry_held_by(a), "node-b");
	/* the other order, on h2: a first, b's commit loses */
	assert_int_equal(vg_registry_commit(b, "h2", 7, 4, T0 - 60000), 0);
	assert_int_equal(vg_registry_seen(a, "h2", 7, 5, T0), 0);
	assert_int_equal(vg_registry_seen(b, "h2", 7, 5, T0), 0);
	mk = (struct vg_registry_mark){"h2", 7, 5, T0, 1, 0};
	assert_int_equal(vg_registry_commit_group(a, &mk, 1, rcs), 0);
	assert_int_equal(rcs[0], 0);
	assert_int_equal(vg_registry_commit_group(b, &mk, 1, rcs), 0);
	assert_int_equal(rcs[0], 1);
	assert_int_equal(vg_registry_seen(b, "h2", 7, 6, T0 + 60000), 2);
	assert_int_equal(vg_registry_seen(a, "h2", 7, 6, T0 + 60000), 0);
	/* without a daemon down (no mark), a lost commit costs the loser
	 * one database read for the next batch, which it then takes */
	assert_int_equal(vg_registry_seen(a, "h3", 7, 1, T0), 0);
	assert_int_equal(vg_registry_seen(b, "h3", 7, 1, T0), 0);
	assert_int_equal(vg_registry_commit(a, "h3", 7, 1, T0), 0);
	assert_int_equal(vg_registry_commit(b, "h3", 7, 1, T0), 1);
	assert_int_equal(vg_registry_seen(b, "h3", 7, 1, T0), 1);
	assert_int_equal(vg_registry_seen(b, "h3", 7, 2, T0 + 60000), 0);
	vg_registry_close(b);
}

/* Two collectors report the same resource at once with different
 * identities, one going back in time and one forward: whatever the
 * interleaving, the resource ends with the identity of the newest report
 * (ident_ms only moves forward, in one statement). On PostgreSQL the second
 * handle opens the state under another URL text, so it has its own
 * last-value cache, as another process would; on sqlite (one file, one
 * process) the two handles share one cache and each keeps to its own
 * thread's writes. */
struct ident_racer {
	struct vg_registry *r;
	const char *project;
	int down; /* times descending */
	int rc;
};

static void *ident_race(void *arg)
{
	struct ident_racer *x = arg;

	/* a: 300 s down to 1 s; b: 1 s up to 299 s. The newest report is
	 * a's first, named "pa-300". */
	for (int i = 1; i <= (x->down ? 300 : 299) && !x->rc; i++) {
		int k = x->down ? 301 - i : i;
		int64_t t = T0 + k * 1000LL;
		char name[32];
		struct vg_batch *b = vg_batch_new(x->down ? "node-a" : "node-b", 1, 1, t);
		snprintf(name, sizeof(name), "%s-%03d", x->project, k);
		vg_batch_resource(b, VG_RT_INSTANCE, "ident-1", name, NULL, t);
		vg_batch_identity(b, x->project, "u", "m1");
		x->rc = vg_registry_update(x->r, b);
		vg_batch_free(b);
	}
	return NULL;
}

static void test_identity_race(void **state)
{
	struct fixture *f = fx(state);
	struct ident_racer a = {.project = "pa", .down = 1}, b = {.project = "pb"};
	char err[256], url2[800];
	pthread_t ta, tb;
	json_t *o;

	if (f->url[0]) {
		snprintf(url2, sizeof(url2), "%s application_name=vigie-other", f->url);
		assert_int_equal(vg_registry_open_state(f->dir, url2, &b.r, err, sizeof(err)), 0);
	} else {
		assert_int_equal(reg_open(f, &b.r, err, sizeof(err)), 0);
	}
	a.r = f->r;
	assert_int_equal(pthread_create(&ta, NULL, ident_race, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, ident_race, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	vg_registry_close(b.r);
	/* a busy database may refuse a write (RETRY): never a wrong one */
	assert_true(a.rc == 0 || a.rc == -EAGAIN);
	assert_true(b.rc == 0 || b.rc == -EAGAIN);
	assert_int_equal(vg_registry_flush(f->r), 0);
	assert_int_equal(vg_registry_get(f->r, "ident-1", &o), 0);
	/* the newest report's identity, whichever wrote last */
	assert_string_equal(str(o, "name"), "pa-300");
	assert_string_equal(str(o, "project"), "pa");
	assert_string_equal(str(o, "host"), "node-a");
	json_decref(o);
	{
		struct vg_db *db = raw_db(f);
		assert_int_equal(st_int(db, "SELECT ident_ms FROM resources WHERE id = 'ident-1'"),
				 T0 + 300000);
		assert_int_equal(st_int(db, "SELECT first_seen_ms FROM resources WHERE id = 'ident-1'"),
				 T0 + 1000);
		vg_db_close(db);
	}
}

/* A flush writes many values in multi-row statements (64, 16, 4, 1 rows):
 * every value and last-seen time lands, the newest wins, and an older
 * batch after it moves nothing back. 70 resources x 3 metrics = 210
 * metric rows and 70 last-seen rows: every statement size is used. */
static struct vg_batch *wide_batch(int64_t t, double base)
{
	struct vg_batch *b = vg_batch_new("node5", 5, 1, t);
	char id[32];

	for (int i = 0; i < 70; i++) {
		snprintf(id, sizeof(id), "flush-%02d", i);
		assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, t));
		vg_batch_sample(b, "a", VG_KIND_GAUGE, base + i);
		vg_batch_sample(b, "b", VG_KIND_GAUGE, base + i);
		vg_batch_sample(b, "c", VG_KIND_GAUGE, base + i);
	}
	return b;
}

/* On PostgreSQL the periodic flush is not on the receiver's path
 * (issue 15): it runs on a thread and a connection of its own, so a batch
 * is registered and its sequence number committed (what its ack waits
 * for) while a flush is in progress. Here the flush is held by a lock the
 * test takes on the metrics rows it must write: the server shows it
 * waiting, and the receiver's update and commit still return; the values
 * land once the lock goes. When the flush was the batch's transaction's,
 * the update that found it due waited for that lock. sqlite keeps the
 * flush in the batch's transaction (one writer at a time). */
struct receive_job {
	struct vg_registry *r;
	int update_rc, commit_rc;
	int done; /* atomic */
};

static void *receive_one(void *arg)
{
	struct receive_job *j = arg;
	struct vg_batch *b = wide_batch(T0 + 2000, 2000);

	j->update_rc = vg_registry_update(j->r, b);
	j->commit_rc = vg_registry_commit(j->r, b->host, b->stream, 3, T0 + 2000);
	vg_batch_free(b);
	__atomic_store_n(&j->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void test_flush_off_receiver(void **state)
{
	struct fixture *f = fx(state);
	struct receive_job j = {.r = f->r};
	struct vg_registry_stats st;
	struct vg_db *hold, *obs;
	pthread_t th;
	int done = 0;

	if (f->e->kind != VG_DB_POSTGRESQL) {
		printf("# SKIP sqlite: the flush stays in the batch's transaction\n");
		return;
	}
	/* no periodic flush while the rows and the lock are made */
	assert_int_equal(vg_registry_flush_every(f->r, 3600 * 1000), 0);
	update(f->r, wide_batch(T0, 0)); /* rows */
	assert_int_equal(vg_registry_commit(f->r, "node5", 5, 1, T0), 0);
	update(f->r, wide_batch(T0 + 1000, 1000)); /* values in memory */
	assert_int_equal(vg_registry_commit(f->r, "node5", 5, 2, T0 + 1000), 0);
	hold = raw_db(f);
	obs = raw_db(f);
	assert_int_equal(vg_db_exec(hold, "BEGIN; SELECT count(*) FROM (SELECT 1 FROM "
					  "metrics WHERE resource_id LIKE 'flush-%' "
					  "FOR UPDATE) AS x"),
			 0);
	/* the flush falls due: it waits for the test's lock */
	assert_int_equal(vg_registry_flush_every(f->r, 20), 0);
	assert_int_equal(lock_waiters(obs, 1), 0);
	/* the receiver's next batch, meanwhile (bounded: not a timing
	 * assertion, a hang's end) */
	assert_int_equal(pthread_create(&th, NULL, receive_one, &j), 0);
	for (int i = 0; i < 3000 && !(done = __atomic_load_n(&j.done, __ATOMIC_SEQ_CST)); i++)
		vg_sleep_ms(10);
	if (!done) {
		vg_db_exec(hold, "ROLLBACK");
		pthread_join(th, NULL);
		fail_msg("the receiver's update waited for the flush in progress");
	}
	pthread_join(th, NULL);
	assert_int_equal(j.update_rc, 0);
	assert_int_equal(j.commit_rc, 0);
	/* the flush was still in progress, waiting */
	assert_true(st_int(obs, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
				"current_database() AND wait_event_type = 'Lock'") >= 1);
	assert_int_equal(vg_db_exec(hold, "ROLLBACK"), 0);
	/* then the values land, the batch's too */
	assert_int_equal(vg_registry_flush(f->r), 0);
	assert_int_equal(st_int(obs, "SELECT count(*) FROM metrics WHERE resource_id "
				     "LIKE 'flush-%' AND last_time_ms = 1700000002000"),
			 210);
	assert_int_equal(st_int(obs, "SELECT last_seq FROM streams WHERE host = 'node5' "
				     "AND stream = 5"),
			 3);
	/* the flusher's own flush, which waited for the lock, counts once it
	 * ends: it may still be committing when ours returned (seen with two
	 * tests at a time); bounded, a hang's end, not a timing assertion */
	for (int i = 0; i < 3000; i++) {
		vg_registry_stats(f->r, &st);
		if (st.flushes + st.flush_failures >= 1)
			break;
		vg_sleep_ms(10);
	}
	assert_true(st.flushes + st.flush_failures >= 1);
	vg_db_close(hold);
	vg_db_close(obs);
}

static void test_flush_many(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry_stats st;
	struct vg_db *db;

	update(f->r, wide_batch(T0, 0));           /* new series: rows */
	update(f->r, wide_batch(T0 + 1000, 1000)); /* memory only */
	assert_int_equal(vg_registry_flush(f->r), 0);
	vg_registry_stats(f->r, &st);
	assert_int_equal(st.flushed_values, 210 + 70);
	update(f->r, wide_batch(T0 + 500, 500)); /* older: changes nothing */
	assert_int_equal(vg_registry_flush(f->r), 0);
	db = raw_db(f);
	assert_int_equal(st_int(db, "SELECT count(*) FROM metrics WHERE resource_id "
				    "LIKE 'flush-%' AND last_value >= 1000 AND last_time_ms = "
				    "1700000001000"),
			 210);
	assert_int_equal(st_int(db, "SELECT count(*) FROM resources WHERE id LIKE "
				    "'flush-%' AND last_seen_ms = 1700000001000"),
			 70);
	assert_int_equal(st_int(db, "SELECT CAST(sum(last_value) AS BIGINT) FROM metrics "
				    "WHERE resource_id LIKE 'flush-%'"),
			 3 * (70 * 1000 + 69 * 70 / 2));
	vg_db_close(db);
}

/* The flush's last-seen update finds its rows by the primary key, not by
 * a sequential scan of resources (at 100,000 series, ~4,500 rows, that
 * scan at every flush statement was a server cost of its own). Checked
 * on PostgreSQL from the server's own counters for the table: 5,000 other
 * rows with 100 bytes of attributes, analyzed, are a size at which the
 * planner (PostgreSQL 15) hashed the VALUES and scanned the table when
 * the statement was a join alone (at 8,000 rows it fetched them by key
 * either way, at a few hundred it scans with or without the IN list,
 * which is then cheaper); the counters of the
 * registry's connection reach pg_stat_user_tables when it ends, so the
 * test closes the handle and waits for its 140 updates to be counted
 * (70 upserts, then the flush's 70 last-seen times). */
static void test_flush_seen_keyed(void **state)
{
	static const char tab[] = "FROM pg_stat_user_tables WHERE schemaname = "
				  "'vigie_registry' AND relname = 'resources'";
	struct fixture *f = fx(state);
	char sql[256], err[256];
	struct vg_db *db;
	int64_t upd = 0;

	update(f->r, wide_batch(T0, 0)); /* the rows, written at once */
	if (f->e->kind == VG_DB_POSTGRESQL) {
		db = raw_db(f);
		assert_int_equal(vg_db_exec(db, "INSERT INTO resources(id, type, host, "
						"project, attributes, first_seen_ms, last_seen_ms) "
						"SELECT 'fill-' || lpad(CAST(i AS TEXT), 6, '0'), 1, "
						"'fill', 'p', repeat('x', 100), 1, 1 "
						"FROM generate_series(1, 5000) i; ANALYZE resources"),
				 0);
		vg_db_close(db);
		vg_registry_close(f->r); /* counts from here on only */
		f->r = NULL;
		db = raw_db(f);
		/* the closed handles' backends flush their counters as they
		 * exit, which may be after the reset: wait until they are gone */
		for (int i = 0; i < 400 && st_int(db, "SELECT count(*) FROM pg_stat_activity "
						      "WHERE datname = current_database() AND "
						      "backend_type = 'client backend' AND "
						      "pid <> pg_backend_pid()") > 0;
		     i++)
			vg_sleep_ms(50);
		assert_int_equal(vg_db_exec(db, "SELECT pg_stat_reset()"), 0);
		vg_db_close(db);
		assert_int_equal(reg_open(f, &f->r, err, sizeof(err)), 0);
	}
	/* a new handle knows no row: the first report rewrites each (70
	 * upserts), the next one's last-seen times wait in memory */
	update(f->r, wide_batch(T0 + 500, 500));
	update(f->r, wide_batch(T0 + 1000, 1000));
	assert_int_equal(vg_registry_flush(f->r), 0);
	vg_registry_close(f->r);
	f->r = NULL;
	db = raw_db(f);
	if (f->e->kind == VG_DB_POSTGRESQL) {
		/* the ended connection's counters arrive: bounded wait */
		snprintf(sql, sizeof(sql), "SELECT n_tup_upd %s", tab);
		for (int i = 0; i < 400 && upd < 140; i++) {
			if (i)
				vg_sleep_ms(50);
			upd = st_int(db, sql);
		}
		assert_int_equal(upd, 140);
		snprintf(sql, sizeof(sql), "SELECT seq_scan %s", tab);
		assert_int_equal(st_int(db, sql), 0);
		snprintf(sql, sizeof(sql), "SELECT idx_scan %s", tab);
		assert_true(st_int(db, sql) > 0);
	}
	/* (after the counters: this count scans the table) */
	assert_int_equal(st_int(db, "SELECT count(*) FROM resources WHERE id LIKE "
				    "'flush-%' AND last_seen_ms = 1700000001000"),
			 70);
	vg_db_close(db);
	assert_int_equal(reg_open(f, &f->r, err, sizeof(err)), 0);
}

/* The flush writes a value exactly and a name as it is, whatever bytes
 * it holds: on PostgreSQL the flush's rows go in array literals, where
 * '"', '\', ',', '{', "NULL" and "" mean something. */
static void test_flush_odd_names(void **state)
{
	static const char *const ids[] = {"q\"uote", "back\\slash", "c,o{m}m a", "NULL"};
	struct fixture *f = fx(state);
	struct vg_db *db;
	struct vg_db_stmt *s;
	struct vg_batch *b;
	double v[] = {0.1, -1.5e-300, 1e300, 12345.678901234567};
	int n = 0;

	for (int round = 0; round < 2; round++) {
		b = vg_batch_new("node6", 6, 1, T0 + round * 1000);
		for (int i = 0; i < 4; i++) {
			assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, ids[i], ids[i], NULL,
							  T0 + round * 1000));
			vg_batch_sample(b, ids[i], VG_KIND_GAUGE, round ? v[i] : 7);
		}
		update(f->r, b);
	}
	assert_int_equal(vg_registry_flush(f->r), 0);
	db = raw_db(f);
	assert_int_equal(vg_db_prepare(db, "SELECT resource_id, name, last_value, last_time_ms, unit "
					   "FROM metrics ORDER BY resource_id",
				       &s),
			 0);
	while (vg_db_step(s) == 1) {
		int i = 0;
		while (i < 4 && strcmp(ids[i], vg_db_column_text(s, 0)))
			i++;
		assert_true(i < 4);
		assert_string_equal(vg_db_column_text(s, 1), ids[i]);
		assert_true(vg_db_column_double(s, 2) == v[i]); /* exact */
		assert_int_equal(vg_db_column_int64(s, 3), T0 + 1000);
		assert_string_equal(vg_db_column_text(s, 4), "");
		n++;
	}
	vg_db_reset(s);
	assert_int_equal(n, 4);
	assert_int_equal(st_int(db, "SELECT count(*) FROM resources WHERE last_seen_ms = "
				    "1700000001000"),
			 4);
	vg_db_close(db);
}

/* The kept (generic) plan of the prepared statement of r's connection
 * whose text starts with head, for arguments args, in out ("" if the
 * server keeps none); custom: how many custom plans it made. */
static void kept_plan(struct vg_registry *r, const char *head, const char *args, char *out,
		      size_t len, int64_t *custom)
{
	struct vg_db *db = vg_registry_db(r);
	struct vg_db_stmt *s;
	char sql[512], name[64] = "";
	size_t k = 0;

	snprintf(sql, sizeof(sql),
		 "SELECT name, custom_plans FROM pg_prepared_statements WHERE "
		 "starts_with(statement, '%s')",
		 head);
	assert_int_equal(vg_db_prepare(db, sql, &s), 0);
	assert_int_equal(vg_db_step(s), 1);
	snprintf(name, sizeof(name), "%s", vg_db_column_text(s, 0));
	*custom = vg_db_column_int64(s, 1);
	vg_db_reset(s);
	/* the plan kept, not one made for these arguments */
	assert_int_equal(vg_db_exec(db, "SET plan_cache_mode = force_generic_plan"), 0);
	snprintf(sql, sizeof(sql), "EXPLAIN EXECUTE %s(%s)", name, args);
	assert_int_equal(vg_db_prepare(db, sql, &s), 0);
	out[0] = '\0';
	while (vg_db_step(s) == 1 && k < len)
		k += (size_t)snprintf(out + k, len - k, "%s\n", vg_db_column_text(s, 0));
	vg_db_reset(s);
	assert_int_equal(vg_db_exec(db, "RESET plan_cache_mode"), 0);
}

/* One host's report of 10 instances at t, flushed at once. */
static void seen_round(struct fixture *f, int64_t t)
{
	struct vg_batch *b = vg_batch_new("node7", 7, 1, t);
	char id[32];

	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "seen-%d", i);
		assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, t));
		vg_batch_sample(b, "a", VG_KIND_GAUGE, (double)t);
	}
	update(f->r, b);
	assert_int_equal(vg_registry_flush(f->r), 0);
}

/* PostgreSQL plans the flush's last-seen update once and keeps that plan
 * (its ids are one array parameter), where it planned the IN list anew
 * at every flush. Made on the nearly empty table of a cloud's first
 * reports, the plan kept scans the registry's resources; as this handle
 * writes more rows it has the table analyzed (at 64, 128, ... rows), so
 * the server plans it again and fetches the flushed rows by the primary
 * key (plans_refresh). Without that ANALYZE the first plan stays (a scan
 * of the whole table at every flush). */
static void test_flush_plans_follow_growth(void **state)
{
	static const char head[] = "UPDATE resources SET last_seen_ms = v.t";
	static const char args[] = "'{seen-0,seen-1}','{1,2}'";
	struct fixture *f = fx(state);
	char plan[8192], id[32], attrs[64];
	int64_t custom, c2, t = T0;

	if (f->e->kind != VG_DB_POSTGRESQL) {
		printf("# SKIP sqlite: no plan kept between statements\n");
		return;
	}
	/* the plans are this connection's flushes' (not the flusher's) */
	assert_int_equal(vg_registry_flush_every(f->r, 3600 * 1000), 0);
	/* ten rows, flushed until the server keeps a plan: made on a table
	 * of a page */
	for (int i = 0; i < 8; i++)
		seen_round(f, t += 1000);
	kept_plan(f->r, head, args, plan, sizeof(plan), &custom);
	print_message("# the last-seen update's plan on 10 rows:\n%s", plan);
	assert_non_null(strstr(plan, "Seq Scan on resources"));
	assert_true(custom <= 5); /* planned once after the first calls */
	/* 40 more hosts of 50 instances each: 2,010 rows */
	for (int h = 0; h < 40; h++) {
		struct vg_batch *b;
		char host[16];
		snprintf(host, sizeof(host), "grow%d", h);
		b = vg_batch_new(host, 100 + (uint64_t)h, 1, t);
		for (int i = 0; i < 50; i++) {
			snprintf(id, sizeof(id), "grow%d-m%02d", h, i);
			snprintf(attrs, sizeof(attrs), "%0*d", 40, i);
			assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, t));
			vg_batch_attr(b, "pad", attrs);
			vg_batch_sample(b, "a", VG_KIND_GAUGE, 1);
		}
		update(f->r, b);
	}
	/* after the ANALYZE the server compares its new generic plan with
	 * the custom plans' mean cost again, and makes custom plans until
	 * that mean (the first ones made on the small table) rises above
	 * the generic plan's: ~20 flushes of ten ids here, fewer when a
	 * flush names more rows than the ten a generic plan assumes */
	for (int i = 0; i < 35; i++)
		seen_round(f, t += 1000);
	kept_plan(f->r, head, args, plan, sizeof(plan), &custom);
	print_message("# the last-seen update's plan on 2,010 rows (%lld custom plans):\n%s",
		      (long long)custom, plan);
	assert_non_null(strstr(plan, "resources_pkey"));
	assert_null(strstr(plan, "Seq Scan on resources"));
	/* and then it is not planned again */
	for (int i = 0; i < 5; i++)
		seen_round(f, t += 1000);
	kept_plan(f->r, head, args, plan, sizeof(plan), &c2);
	assert_int_equal(c2, custom);
	/* and the rows are the flushes' */
	{
		struct vg_db *db = raw_db(f);
		char sql[160];
		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM resources WHERE id LIKE 'seen-%%' AND "
			 "last_seen_ms = %lld",
			 (long long)t);
		assert_int_equal(st_int(db, sql), 10);
		vg_db_close(db);
	}
}

/* Two collectors sharing the state commit the same re-sent batch at the
 * same moment: for every (host, stream, seq) exactly one commit applies
 * (0) and the other learns it is a duplicate (1). Each round starts both
 * threads together on a barrier; the rounds cover a new stream (an
 * INSERT race, in a transaction) and a known one (an UPDATE race, the
 * ACK alone). */
#define RACE_ROUNDS 200

struct racer {
	struct vg_registry *r;
	pthread_barrier_t *go;
	int rc[RACE_ROUNDS];
};

static void *race(void *arg)
{
	struct racer *x = arg;

	for (int i = 0; i < RACE_ROUNDS; i++) {
		/* rounds of 4: a new stream, then 3 seqs on it */
		uint64_t stream = 100 + (uint64_t)i / 4, seq = 1 + (uint64_t)i % 4;

		pthread_barrier_wait(x->go);
		/* as the receiver does: the check, then the commit (on a
		 * known stream that is the ACK alone, outside a transaction) */
		if (vg_registry_seen(x->r, "node9", stream, seq, T0 + i * 1000LL) < 0) {
			x->rc[i] = -99;
			continue;
		}
		x->rc[i] = vg_registry_commit(x->r, "node9", stream, seq,
					      T0 + i * 1000LL);
	}
	return NULL;
}

static void test_commit_race(void **state)
{
	struct fixture *f = fx(state);
	struct racer a = {0}, b = {0};
	pthread_barrier_t go;
	pthread_t ta, tb;
	char err[256];

	assert_int_equal(reg_open(f, &a.r, err, sizeof(err)), 0);
	assert_int_equal(reg_open(f, &b.r, err, sizeof(err)), 0);
	pthread_barrier_init(&go, NULL, 2);
	a.go = b.go = &go;
	assert_int_equal(pthread_create(&ta, NULL, race, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, race, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	pthread_barrier_destroy(&go);
	for (int i = 0; i < RACE_ROUNDS; i++) {
		if (!((a.rc[i] == 0 && b.rc[i] == 1) || (a.rc[i] == 1 && b.rc[i] == 0)))
			fail_msg("round %d: commits returned %d and %d", i, a.rc[i], b.rc[i]);
	}
	/* and the winner's commit is what the filter holds */
	assert_int_equal(vg_registry_seen(f->r, "node9", 100 + (RACE_ROUNDS - 1) / 4,
					  4, T0),
			 1);
	assert_int_equal(vg_registry_seen(f->r, "node9", 100 + (RACE_ROUNDS - 1) / 4,
					  5, T0),
			 0);
	vg_registry_close(a.r);
	vg_registry_close(b.r);
}

/* vg_registry_commit_group gives each mark vg_registry_commit's answer:
 * two handles (two collectors of a shared state) committing the same
 * group get 0 and 1 for each, a stale seq in a group is a duplicate, and
 * a new stream or a second stream of a host in the group (recorded one
 * by one) is recorded too. */
static void test_commit_group(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry *a, *b;
	struct vg_registry_mark mk[5];
	const char *hosts[] = {"g0", "g1", "g2", "g3"};
	int rcs[5];
	char err[256];

	assert_int_equal(reg_open(f, &a, err, sizeof(err)), 0);
	assert_int_equal(reg_open(f, &b, err, sizeof(err)), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(vg_registry_commit(a, hosts[i], 7, 1, T0), 0);
		assert_int_equal(vg_registry_commit(b, hosts[i], 7, 1, T0), 1);
		mk[i] = (struct vg_registry_mark){hosts[i], 7, 2, T0 + 60000, 0, 0};
	}
	assert_int_equal(vg_registry_commit_group(a, mk, 4, rcs), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(rcs[i], 0);
	assert_int_equal(vg_registry_commit_group(b, mk, 4, rcs), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(rcs[i], 1); /* the other collector's */
	/* seq 3 of g0 and g1, seq 2 of g2 again (stale), a new stream of
	 * g3 and a second one of g0 */
	mk[0].seq = mk[1].seq = 3;
	mk[3] = (struct vg_registry_mark){"g3", 8, 1, T0 + 120000, 0, 0};
	mk[4] = (struct vg_registry_mark){"g0", 9, 1, T0 + 120000, 0, 0};
	assert_int_equal(vg_registry_commit_group(a, mk, 5, rcs), 0);
	assert_int_equal(rcs[0], 0);
	assert_int_equal(rcs[1], 0);
	assert_int_equal(rcs[2], 1);
	assert_int_equal(rcs[3], 0);
	assert_int_equal(rcs[4], 0);
	/* what a third handle's duplicate filter finds */
	assert_int_equal(vg_registry_seen(f->r, "g0", 7, 3, T0), 1);
	assert_int_equal(vg_registry_seen(f->r, "g0", 7, 4, T0), 0);
	assert_int_equal(vg_registry_seen(f->r, "g1", 7, 3, T0), 1);
	assert_int_equal(vg_registry_seen(f->r, "g2", 7, 3, T0), 0);
	assert_int_equal(vg_registry_seen(f->r, "g3", 8, 1, T0), 1);
	assert_int_equal(vg_registry_seen(f->r, "g0", 9, 1, T0), 1);
	assert_int_equal(vg_registry_commit_group(a, NULL, 0, NULL), 0);
	vg_registry_close(a);
	vg_registry_close(b);
}

/* The commit bounded by the batch's deadline (vg_registry_mark.
 * deadline_ms, registry.c "Commits bounded by the deadline"). PostgreSQL: while
 * another session holds the streams rows, each commit path (the group's
 * multi-row statement, a known stream's lone ACK, the transaction of a
 * stream this handle did not just check) is cut at the deadline:
 * -ETIMEDOUT, nothing recorded (another handle still finds the seq new),
 * the handle usable; a deadline already passed sends nothing; once the
 * rows are free each seq is recorded once (a second commit is a
 * duplicate), and the group's statement bounded records too. Without
 * the bound each commit waits for the rows (3 s) and records them.
 * sqlite: the deadline does not change a commit. */
static void marks_deadline(struct vg_registry_mark *mk, size_t n, int64_t deadline_ms)
{
	for (size_t i = 0; i < n; i++)
		mk[i].deadline_ms = deadline_ms;
}

static void test_commit_deadline(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry *w;
	struct vg_registry_mark mk[2] = {{"d0", 7, 2, T0 + 60000, 0, 0}, {"d1", 7, 2, T0 + 60000, 0, 0}};
	struct row_lock l;
	int pg = f->e->kind == VG_DB_POSTGRESQL, rcs[2];
	char err[256];

	assert_int_equal(reg_open(f, &w, err, sizeof(err)), 0);
	assert_int_equal(vg_registry_commit(f->r, "d0", 7, 1, T0), 0);
	assert_int_equal(vg_registry_commit(f->r, "d1", 7, 1, T0), 0);
	if (pg) {
		/* held 3 s at most: without the bound each commit waits
		 * that long, then records */
		assert_int_equal(row_lock_hold(&l, raw_db(f),
					       "SELECT last_seq FROM streams WHERE host "
					       "IN ('d0', 'd1') FOR UPDATE",
					       3000),
				 0);
		/* the group's one statement */
		marks_deadline(mk, 2, vg_monotonic_ms() + 300);
		assert_int_equal(vg_registry_commit_group(f->r, mk, 2, rcs), 0);
		assert_int_equal(rcs[0], -ETIMEDOUT);
		assert_int_equal(rcs[1], -ETIMEDOUT);
		assert_true(strstr(vg_registry_last_error(f->r), "statement timeout") != NULL);
		/* a known stream's ACK alone */
		assert_int_equal(vg_registry_seen(f->r, "d0", 7, 2, T0 + 60000), 0);
		marks_deadline(mk, 2, vg_monotonic_ms() + 300);
		assert_int_equal(vg_registry_commit_group(f->r, mk, 1, rcs), 0);
		assert_int_equal(rcs[0], -ETIMEDOUT);
		/* the transaction (ACK, floor, prune) */
		marks_deadline(mk, 2, vg_monotonic_ms() + 300);
		assert_int_equal(vg_registry_commit_group(f->r, &mk[1], 1, rcs), 0);
		assert_int_equal(rcs[0], -ETIMEDOUT);
		/* no time left: nothing sent */
		marks_deadline(mk, 2, vg_monotonic_ms() - 1);
		assert_int_equal(vg_registry_commit_group(f->r, mk, 2, rcs), 0);
		assert_int_equal(rcs[0], -ETIMEDOUT);
		assert_int_equal(rcs[1], -ETIMEDOUT);
		assert_true(strstr(vg_registry_last_error(f->r), "deadline passed") != NULL);
		/* nothing recorded, while the rows are still held */
		assert_int_equal(vg_registry_seen(w, "d0", 7, 2, T0 + 60000), 0);
		assert_int_equal(vg_registry_seen(w, "d1", 7, 2, T0 + 60000), 0);
		row_lock_release(&l);
		/* the deadline is the call's own: a check past it sends
		 * nothing, the next one without a deadline is not cut */
		assert_int_equal(vg_registry_seen_by(w, "d0", 7, 2, T0 + 60000,
						     vg_monotonic_ms() - 1),
				 -ETIMEDOUT);
		assert_int_equal(vg_registry_seen(w, "d0", 7, 2, T0 + 60000), 0);
		assert_int_equal(vg_registry_seen(w, "d1", 7, 2, T0 + 60000), 0);
	} else {
		/* sqlite: a deadline passed changes nothing */
		marks_deadline(mk, 2, vg_monotonic_ms() - 1);
	}
	/* the re-sent batches: recorded once */
	if (pg)
		marks_deadline(mk, 2, vg_monotonic_ms() + 60000);
	assert_int_equal(vg_registry_commit_group(f->r, mk, 2, rcs), 0);
	assert_int_equal(rcs[0], 0);
	assert_int_equal(rcs[1], 0);
	assert_int_equal(vg_registry_commit_group(f->r, mk, 2, rcs), 0);
	assert_int_equal(rcs[0], 1);
	assert_int_equal(rcs[1], 1);
	/* the next ones, by the group's one statement */
	mk[0].seq = mk[1].seq = 3;
	assert_int_equal(vg_registry_commit_group(f->r, mk, 2, rcs), 0);
	assert_int_equal(rcs[0], 0);
	assert_int_equal(rcs[1], 0);
	assert_int_equal(vg_registry_seen(w, "d0", 7, 2, T0 + 60000), 1);
	assert_int_equal(vg_registry_seen(w, "d1", 7, 3, T0 + 120000), 1);
	assert_int_equal(vg_registry_seen(w, "d0", 7, 4, T0 + 180000), 0);
	vg_registry_close(w);
}

/* Another session that cancels (pg_cancel_backend) the statement of
 * backend pid as soon as it waits for a lock, within 5 s. */
struct canceller {
	struct vg_db *db;
	int64_t pid;
	int done;
	pthread_t th;
};

static void *cancel_run(void *arg)
{
	struct canceller *c = arg;
	struct vg_db_stmt *s;

	for (int64_t end = vg_monotonic_ms() + 5000; !c->done && vg_monotonic_ms() < end;
	     vg_sleep_ms(10)) {
		if (vg_db_prepare(c->db, "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
					 "WHERE pid = ?1 AND wait_event_type = 'Lock'",
				  &s))
			break;
		vg_db_bind_int64(s, 1, c->pid);
		if (vg_db_step(s) == 1 && vg_db_column_int64(s, 0) == 1)
			c->done = 1;
		vg_db_reset(s);
	}
	return NULL;
}

/* An operator's pg_cancel_backend (SQLSTATE 57014, as the deadline's
 * statement_timeout) well before the deadline is told apart: the commit
 * gives -ECANCELED, not -ETIMEDOUT (the receiver counts it as a cancel,
 * not a deadline cut), nothing recorded; the next commit records. */
static void test_cancel_not_deadline(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry_mark mk = {"d0", 7, 2, T0 + 60000, 0, 0};
	struct canceller c = {0};
	struct vg_db_stmt *s;
	struct row_lock l;
	int rcs[1];

	if (f->e->kind != VG_DB_POSTGRESQL)
		skip(); /* no statement to cancel in sqlite */
	assert_int_equal(vg_registry_commit(f->r, "d0", 7, 1, T0), 0);
	assert_int_equal(vg_db_prepare(vg_registry_db(f->r), "SELECT pg_backend_pid()", &s), 0);
	assert_int_equal(vg_db_step(s), 1);
	c.pid = vg_db_column_int64(s, 0);
	vg_db_reset(s);
	assert_int_equal(row_lock_hold(&l, raw_db(f),
				       "SELECT last_seq FROM streams WHERE host = 'd0' FOR UPDATE",
				       6000),
			 0);
	c.db = raw_db(f);
	assert_int_equal(pthread_create(&c.th, NULL, cancel_run, &c), 0);
	mk.deadline_ms = vg_monotonic_ms() + 20000;
	assert_int_equal(vg_registry_commit_group(f->r, &mk, 1, rcs), 0);
	pthread_join(c.th, NULL);
	vg_db_close(c.db);
	row_lock_release(&l);
	assert_int_equal(c.done, 1);
	assert_int_equal(rcs[0], -ECANCELED);
	assert_int_equal(vg_registry_commit_group(f->r, &mk, 1, rcs), 0);
	assert_int_equal(rcs[0], 0);
}

/* Two collectors commit groups of the same two hosts, arrived in
 * opposite orders, at once. Each group's multi-row statement locks its
 * rows one after the other; taken in the groups' own orders, each
 * statement would hold one host's row and wait for the other's, and
 * PostgreSQL would abort one (deadlock detected: a whole group answered
 * RETRY). The interleaving is made certain: a third connection holds
 * d1's row, A's group (d1, d2) waits on it, then B's group (d2, d1) runs
 * until it waits too, and only then is the holder committed. In one
 * order B queues behind A on d1 and both apply: A seq 3, then B seq 4. */
struct grouper {
	struct vg_registry *r;
	struct vg_registry_mark mk[2];
	int rcs[2], rc;
};

static void *group_commit(void *arg)
{
	struct grouper *g = arg;

	g->rc = vg_registry_commit_group(g->r, g->mk, 2, g->rcs);
	return NULL;
}

static void test_commit_group_lock_order(void **state)
{
	struct fixture *f = fx(state);
	struct grouper a = {0}, b = {0};
	struct vg_db *hold, *obs;
	struct vg_db_stmt *s;
	pthread_t ta, tb;
	int started_b = 0, waited;
	char err[256];

	if (f->e->kind != VG_DB_POSTGRESQL) {
		printf("# SKIP sqlite: one writer at a time, no row locks to take "
		       "in two orders\n");
		skip();
	}
	assert_int_equal(reg_open(f, &a.r, err, sizeof(err)), 0);
	assert_int_equal(reg_open(f, &b.r, err, sizeof(err)), 0);
	/* both handles committed both streams (each applied its own: a
	 * commit another handle had applied first is not noted): the
	 * groups go to one multi-row statement each */
	assert_int_equal(vg_registry_commit(a.r, "d1", 7, 1, T0), 0);
	assert_int_equal(vg_registry_commit(a.r, "d2", 7, 1, T0), 0);
	assert_int_equal(vg_registry_commit(b.r, "d1", 7, 2, T0 + 30000), 0);
	assert_int_equal(vg_registry_commit(b.r, "d2", 7, 2, T0 + 30000), 0);
	a.mk[0] = (struct vg_registry_mark){"d1", 7, 3, T0 + 60000, 0, 0};
	a.mk[1] = (struct vg_registry_mark){"d2", 7, 3, T0 + 60000, 0, 0};
	b.mk[0] = (struct vg_registry_mark){"d2", 7, 4, T0 + 120000, 0, 0};
	b.mk[1] = (struct vg_registry_mark){"d1", 7, 4, T0 + 120000, 0, 0};
	hold = raw_db(f);
	obs = raw_db(f);
	assert_int_equal(vg_db_begin(hold), 0);
	assert_int_equal(vg_db_prepare(hold, "SELECT last_seq FROM streams WHERE "
					     "host = 'd1' AND stream = 7 FOR UPDATE",
				       &s),
			 0);
	assert_int_equal(vg_db_step(s), 1);
	vg_db_reset(s);
	assert_int_equal(pthread_create(&ta, NULL, group_commit, &a), 0);
	waited = lock_waiters(obs, 1);
	if (!waited) {
		assert_int_equal(pthread_create(&tb, NULL, group_commit, &b), 0);
		started_b = 1;
		waited = lock_waiters(obs, 2);
	}
	/* release d1 whatever happened, so the threads end */
	assert_int_equal(vg_db_commit(hold), 0);
	pthread_join(ta, NULL);
	if (started_b)
		pthread_join(tb, NULL);
	if (waited)
		fail_msg("the group commits never waited on the held row");
	if (a.rc || b.rc || a.rcs[0] || a.rcs[1] || b.rcs[0] || b.rcs[1])
		fail_msg("A: %d (%d, %d) B: %d (%d, %d): %s / %s", a.rc, a.rcs[0],
			 a.rcs[1], b.rc, b.rcs[0], b.rcs[1], vg_registry_last_error(a.r),
			 vg_registry_last_error(b.r));
	assert_int_equal(st_int(obs, "SELECT count(*) FROM streams WHERE host IN "
				     "('d1', 'd2') AND stream = 7 AND last_seq = 4"),
			 2);
	vg_db_close(hold);
	vg_db_close(obs);
	vg_registry_close(a.r);
	vg_registry_close(b.r);
}

/* A custom series' unit (published: vg_registry_set_unit) survives what
 * writes the series' row again with the batch's unit "" (a batch names no
 * unit outside the catalogue): the flush of newer values, and a restarted
 * process that records the series anew. A catalogue metric keeps the
 * catalogue's unit. */
static struct vg_batch *custom_batch(int64_t t, double v)
{
	struct vg_batch *b = vg_batch_new("api", 0, 0, t);
	struct vg_resource *r = vg_batch_resource(b, VG_RT_CUSTOM, "app-q", "app-q", NULL, t);

	assert_non_null(r);
	r->state = VG_RSTATE_ACTIVE;
	assert_int_equal(vg_batch_identity(b, "p", NULL, NULL), 0);
	assert_int_equal(vg_batch_sample(b, "queue.depth", VG_KIND_GAUGE, v), 0);
	return b;
}

static const char *unit_of(struct vg_registry *r, const char *id, const char *metric,
			   char *buf, size_t len)
{
	json_t *o;
	int rc = vg_registry_metric_unit(r, id, metric, buf, len);

	if (rc)
		fail_msg("vg_registry_metric_unit(%s, %s): %d", id, metric, rc);
	/* the same unit in the resource's JSON */
	assert_int_equal(vg_registry_get(r, id, &o), 0);
	assert_string_equal(str(json_object_get(json_object_get(o, "metrics"), metric), "unit"),
			    buf);
	json_decref(o);
	return buf;
}

static void test_published_unit(void **state)
{
	struct fixture *f = fx(state);
	const struct vg_metric_def *def = vg_catalog_find(VG_RT_INSTANCE, "cpu.time");
	char u[40], err[256];

	update(f->r, custom_batch(T0, 1));
	assert_string_equal(unit_of(f->r, "app-q", "queue.depth", u, sizeof(u)), "");
	assert_int_equal(vg_registry_set_unit(f->r, "app-q", "queue.depth", "jobs"), 0);
	assert_string_equal(unit_of(f->r, "app-q", "queue.depth", u, sizeof(u)), "jobs");
	assert_int_equal(vg_registry_set_unit(f->r, "app-q", "nope", "jobs"), -ENOENT);
	assert_int_equal(vg_registry_metric_unit(f->r, "app-q", "nope", u, sizeof(u)), -ENOENT);
	assert_int_equal(vg_registry_metric_unit(f->r, "app-q", "queue.depth", u, 3),
			 -ENAMETOOLONG);
	/* newer values, written by a flush */
	update(f->r, custom_batch(T0 + 1000, 2));
	assert_int_equal(vg_registry_flush(f->r), 0);
	assert_string_equal(unit_of(f->r, "app-q", "queue.depth", u, sizeof(u)), "jobs");
	/* a restart: the first sample writes the row again */
	vg_registry_close(f->r);
	assert_int_equal(reg_open(f, &f->r, err, sizeof(err)), 0);
	update(f->r, custom_batch(T0 + 2000, 3));
	assert_string_equal(unit_of(f->r, "app-q", "queue.depth", u, sizeof(u)), "jobs");
	vg_registry_close(f->r); /* and its flush at close */
	assert_int_equal(reg_open(f, &f->r, err, sizeof(err)), 0);
	assert_string_equal(unit_of(f->r, "app-q", "queue.depth", u, sizeof(u)), "jobs");
	/* the agent's metrics: the catalogue's unit */
	update(f->r, instance_batch(T0, 1, NULL, VG_RSTATE_ACTIVE));
	assert_string_equal(unit_of(f->r, "inst-1", "cpu.time", u, sizeof(u)),
			    def ? def->unit : "");
}

/* A project's points on its instance (POST /v1/measures: host and
 * identity copied from the registry, no attributes, vg_batch.published)
 * are values, never an observation of the instance: one stamped nine
 * minutes ahead moved the instance's last_seen there (and its identity's
 * time, so the agent's next reports could not change its identity until
 * then); one stamped before its first sighting moved first_seen back. */
static struct vg_batch *published_batch(int64_t t, double v)
{
	struct vg_batch *b = vg_batch_new("node1", 0, 0, t);
	struct vg_resource *r = vg_batch_resource(b, VG_RT_INSTANCE, "inst-1", "web-1", NULL, t);

	assert_non_null(r);
	b->published = 1;
	r->state = VG_RSTATE_ACTIVE;
	assert_int_equal(vg_batch_identity(b, "default", "alice", "m1.small"), 0);
	assert_int_equal(vg_batch_sample(b, "app.queue", VG_KIND_GAUGE, v), 0);
	return b;
}

static void test_published_not_seen(void **state)
{
	struct fixture *f = fx(state);
	char buf[32], err[256];
	json_t *o, *m;

	update(f->r, instance_batch(T0, 1, NULL, VG_RSTATE_ACTIVE));
	update(f->r, published_batch(T0 + 9 * 60000, 7));
	update(f->r, published_batch(T0 - 5 * 60000, 6));
	for (int round = 0; round < 3; round++) {
		if (round == 1)
			assert_int_equal(vg_registry_flush(f->r), 0);
		if (round == 2) { /* the rows, not this process's cache */
			vg_registry_close(f->r);
			assert_int_equal(reg_open(f, &f->r, err, sizeof(err)), 0);
		}
		assert_int_equal(vg_registry_get(f->r, "inst-1", &o), 0);
		assert_string_equal(str(o, "first_seen"), iso(T0, buf));
		assert_string_equal(str(o, "last_seen"), iso(T0, buf));
		assert_string_equal(str(json_object_get(o, "attributes"), "vcpus"), "2");
		m = json_object_get(json_object_get(o, "metrics"), "app.queue");
		assert_non_null(m); /* the values are kept */
		assert_true(json_real_value(json_object_get(m, "last_value")) == 7);
		assert_string_equal(str(m, "last_time"), iso(T0 + 9 * 60000, buf));
		json_decref(o);
	}
	/* the agent's next report moves last_seen and changes the identity */
	update(f->r, instance_batch(T0 + 60000, 2, "acme", VG_RSTATE_ACTIVE));
	assert_int_equal(vg_registry_get(f->r, "inst-1", &o), 0);
	assert_string_equal(str(o, "last_seen"), iso(T0 + 60000, buf));
	assert_string_equal(str(o, "project"), "acme");
	json_decref(o);
}

/* A project token may create a custom resource under any id nobody uses
 * yet, including the name of a compute host before its agent reports (or
 * a host's disk, a file system's id): the agent's report then landed on
 * the tenant's row, the host's metrics read by the tenant as its own (the
 * project kept by coalesce, the type and host kept too when the custom
 * point was stamped later than the agent's). A resource an agent reports
 * takes over a custom row of its id whatever the times: its type, host,
 * project (default when the agent sends none) and names. */
static void test_agent_takes_custom_id(void **state)
{
	struct fixture *f = fx(state);
	struct vg_batch *b;
	struct vg_resource *r;
	json_t *o;

	/* the squat: "node9" and "node9-vda", custom, project p, stamped 10
	 * minutes after the agent's first report */
	b = vg_batch_new("api", 0, 0, T0 + 600000);
	r = vg_batch_resource(b, VG_RT_CUSTOM, "node9", "squat", NULL, T0 + 600000);
	r->state = VG_RSTATE_ACTIVE;
	assert_int_equal(vg_batch_identity(b, "p", "mallory", "f"), 0);
	assert_int_equal(vg_batch_sample(b, "probe", VG_KIND_GAUGE, 1), 0);
	r = vg_batch_resource(b, VG_RT_CUSTOM, "node9-vda", "squat", NULL, T0 + 600000);
	r->state = VG_RSTATE_ACTIVE;
	assert_int_equal(vg_batch_identity(b, "p", NULL, NULL), 0);
	assert_int_equal(vg_batch_sample(b, "probe", VG_KIND_GAUGE, 1), 0);
	update(f->r, b);
	/* the agent of host node9: the host and its disk, no project */
	b = vg_batch_new("node9", 7, 1, T0);
	r = vg_batch_resource(b, VG_RT_HOST, "node9", "node9", NULL, T0);
	r->state = VG_RSTATE_ACTIVE;
	assert_int_equal(vg_batch_sample(b, "host.load.1", VG_KIND_GAUGE, 0.5), 0);
	r = vg_batch_resource(b, VG_RT_HOST_DISK, "node9-vda", "vda", "node9", T0);
	r->state = VG_RSTATE_ACTIVE;
	assert_int_equal(vg_batch_sample(b, "hdisk.busy", VG_KIND_GAUGE, 3), 0);
	update(f->r, b);
	assert_int_equal(vg_registry_flush(f->r), 0);
	assert_int_equal(vg_registry_get(f->r, "node9", &o), 0);
	assert_string_equal(str(o, "type"), "host");
	assert_string_equal(str(o, "project"), "default");
	assert_string_equal(str(o, "host"), "node9");
	assert_null(str(o, "user"));
	assert_null(str(o, "flavor"));
	json_decref(o);
	assert_int_equal(vg_registry_get(f->r, "node9-vda", &o), 0);
	assert_string_equal(str(o, "type"), "host_disk");
	assert_string_equal(str(o, "project"), "default");
	assert_string_equal(str(o, "parent"), "node9");
	json_decref(o);
	/* and the tenant's list no longer has them */
	struct vg_resource_filter flt = {.project = "p"};
	assert_int_equal(count_list(f->r, flt), 0);
}

/* The names of the metric rows registry.db holds for id (what a
 * restarted collector would list), comma-separated, into out. */
static const char *stored_metrics(struct fixture *f, const char *id, char *out,
				  size_t len)
{
	struct vg_db *db = raw_db(f);
	struct vg_db_stmt *s;
	size_t k = 0;

	out[0] = '\0';
	assert_int_equal(vg_db_prepare(db,
				       "SELECT name FROM metrics WHERE resource_id = ?1 "
				       "ORDER BY name",
				       &s),
			 0);
	vg_db_bind_text(s, 1, id);
	while (vg_db_step(s) == 1)
		k += (size_t)snprintf(out + k, len - k, "%s%s", k ? "," : "",
				      vg_db_column_text(s, 0));
	vg_db_reset(s);
	vg_db_close(db);
	return out;
}

/* Register one report of resource "node9" from host: one active resource
 * of type named name (project when not NULL) with one sample. */
static void report(struct vg_registry *reg, const char *host, uint64_t seq,
		   int type, const char *name, const char *project, int64_t t,
		   const char *metric, double value)
{
	struct vg_batch *b = vg_batch_new(host, seq ? 7 : 0, seq, t);
	struct vg_resource *r = vg_batch_resource(b, type, "node9", name, NULL, t);

	r->state = VG_RSTATE_ACTIVE;
	if (project)
		assert_int_equal(vg_batch_identity(b, project, NULL, NULL), 0);
	assert_int_equal(vg_batch_sample(b, metric, VG_KIND_GAUGE, value), 0);
	update(reg, b);
}

/* The metrics a tenant had published to a custom resource go when an
 * agent's report takes the resource over (docs/api.md, POST /v1/measures):
 * otherwise they stay listed among the agent's, with the tenant's last
 * values, on a resource the tenant no longer owns, and a catalogue name
 * it published keeps a value dated ahead of the agent's. Values the
 * tenant sent that were still in memory are not written back by a later
 * flush; the agent's own metrics stay through its later reports. */
/* A custom resource "other" of the tenant's, its probe value in memory. */
static void other_report(struct fixture *f, int64_t t, double v)
{
	struct vg_batch *b = vg_batch_new("api", 0, 0, t);
	struct vg_resource *r = vg_batch_resource(b, VG_RT_CUSTOM, "other", "other", NULL, t);

	r->state = VG_RSTATE_ACTIVE;
	assert_int_equal(vg_batch_identity(b, "p", NULL, NULL), 0);
	assert_int_equal(vg_batch_sample(b, "probe", VG_KIND_GAUGE, v), 0);
	update(f->r, b);
}

/* Flushes of the handle's flusher that ended (committed or not). */
static uint64_t flusher_rounds(struct vg_registry *r)
{
	struct vg_registry_stats st;

	vg_registry_stats(r, &st);
	return st.flushes + st.flush_failures;
}

/* The takeover above while the flusher (PostgreSQL: its own connection)
 * writes the squat's values it took before: its statement reaches the
 * squat's metric row after the agent's transaction deleted it and
 * committed, and would insert it again (the tenant's probe back on the
 * agent's host). Made certain by a lock on the other custom resource's
 * row, which the flush writes first: the flush waits there, the agent's
 * report is registered meanwhile, then the lock goes. The flush must see
 * the resource forgotten and roll back; its other rows are written
 * later. */
static void test_takeover_during_flush(void **state)
{
	struct fixture *f = fx(state);
	char names[256];
	struct vg_db *hold, *obs;
	uint64_t rounds;

	if (f->e->kind != VG_DB_POSTGRESQL) {
		printf("# SKIP sqlite: the flush is in the batch's transaction\n");
		return;
	}
	assert_int_equal(vg_registry_flush_every(f->r, 3600 * 1000), 0);
	report(f->r, "api", 0, VG_RT_CUSTOM, "squat", "p", T0, "probe", 1);
	other_report(f, T0, 1);
	/* in memory: the squat's, then other's (the flush takes the last
	 * made dirty first: other's row comes first in its statement) */
	report(f->r, "api", 0, VG_RT_CUSTOM, "squat", "p", T0 + 1000, "probe", 2);
	other_report(f, T0 + 1000, 2);
	hold = raw_db(f);
	obs = raw_db(f);
	assert_int_equal(vg_db_exec(hold, "BEGIN; SELECT count(*) FROM (SELECT 1 FROM "
					  "metrics WHERE resource_id = 'other' FOR UPDATE) AS x"),
			 0);
	rounds = flusher_rounds(f->r);
	assert_int_equal(vg_registry_flush_every(f->r, 20), 0);
	assert_int_equal(lock_waiters(obs, 1), 0); /* the flush, at other's row */
	/* the agent of host node9 takes the squat over, meanwhile */
	report(f->r, "node9", 1, VG_RT_HOST, "node9", NULL, T0 + 2000, "host.load.1", 0.5);
	assert_string_equal(stored_metrics(f, "node9", names, sizeof(names)),
			    "host.load.1");
	/* the flush goes on (and is not tried again soon) */
	assert_int_equal(vg_registry_flush_every(f->r, 3600 * 1000), 0);
	assert_int_equal(vg_db_exec(hold, "ROLLBACK"), 0);
	for (int i = 0; i < 3000 && flusher_rounds(f->r) == rounds; i++)
		vg_sleep_ms(10);
	assert_true(flusher_rounds(f->r) > rounds);
	assert_string_equal(stored_metrics(f, "node9", names, sizeof(names)),
			    "host.load.1");
	/* other's value is written by the next flush, the squat's never */
	assert_int_equal(vg_registry_flush(f->r), 0);
	assert_string_equal(stored_metrics(f, "node9", names, sizeof(names)),
			    "host.load.1");
	assert_int_equal(st_int(obs, "SELECT CAST(last_value AS BIGINT) FROM metrics "
				     "WHERE resource_id = 'other' AND name = 'probe'"),
			 2);
	vg_db_close(hold);
	vg_db_close(obs);
}

/* The sweep of ended resources ([storage] keep_ended) deletes a
 * resource's rows on its own handle (collector/lifecycle.c) while a flush
 * may hold values of it taken before: on PostgreSQL the flusher's own
 * connection, on sqlite the receiver's batch transaction. The flush must
 * not bring the swept metrics rows back, and must not lose what it took
 * of the live resources. Made certain with vg_registry_test_point: the
 * flush stops once it took its values, the sweep's delete runs and
 * commits, and the flush goes on from there, before the sweep returns
 * (its forget after the commit would otherwise come first). */
static pthread_mutex_t tp_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tp_cv = PTHREAD_COND_INITIALIZER;
static int tp_armed, tp_taken, tp_go;
static int (*tp_flush_done)(void);

void vg_registry_test_point(const char *where)
{
	struct timespec ts;

	pthread_mutex_lock(&tp_mu);
	if (tp_armed && !tp_taken && !strcmp(where, "flush-taken")) {
		tp_taken = 1;
		pthread_cond_broadcast(&tp_cv);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 30;
		while (!tp_go && pthread_cond_timedwait(&tp_cv, &tp_mu, &ts) == 0)
			;
	} else if (tp_armed && !strcmp(where, "ended-removed")) {
		tp_go = 1;
		pthread_cond_broadcast(&tp_cv);
		pthread_mutex_unlock(&tp_mu);
		for (int i = 0; i < 3000 && !tp_flush_done(); i++)
			vg_sleep_ms(10);
		return;
	}
	pthread_mutex_unlock(&tp_mu);
}

static struct fixture *tp_f;
static uint64_t tp_rounds0;
static volatile int tp_update_done;
static int tp_update_rc;

static int tp_flusher_ended(void)
{
	return flusher_rounds(tp_f->r) > tp_rounds0;
}

static int tp_update_ended(void)
{
	return __atomic_load_n(&tp_update_done, __ATOMIC_SEQ_CST);
}

/* A batch of host HOST with one report of instance ID (ended or not) at
 * t, with its probe at v; the caller may add samples. */
static struct vg_batch *probe_batch(const char *host, const char *id, int64_t t, int ended,
				    double v)
{
	struct vg_batch *b = vg_batch_new(host, 0, 0, t);
	struct vg_resource *r = vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, t);

	r->state = ended ? VG_RSTATE_ENDED : VG_RSTATE_ACTIVE;
	assert_int_equal(vg_batch_identity(b, "p", NULL, NULL), 0);
	assert_int_equal(vg_batch_sample(b, "probe", VG_KIND_GAUGE, v), 0);
	return b;
}

/* One report of instance vmx from host h1, with its probe. */
static void vm_report(struct vg_registry *reg, int64_t t, int ended, double v)
{
	update(reg, probe_batch("h1", "vmx", t, ended, v));
}

/* sqlite: the receiver's next batch (other's value 3), whose flush is due */
static void *tp_receiver(void *arg)
{
	struct fixture *f = arg;
	struct vg_batch *b = vg_batch_new("api", 0, 0, T0 + 2000);
	struct vg_resource *r = vg_batch_resource(b, VG_RT_CUSTOM, "other", "other", NULL,
						  T0 + 2000);

	r->state = VG_RSTATE_ACTIVE;
	if (vg_batch_identity(b, "p", NULL, NULL) ||
	    vg_batch_sample(b, "probe", VG_KIND_GAUGE, 3))
		tp_update_rc = -ENOMEM;
	else
		tp_update_rc = vg_registry_update(f->r, b);
	vg_batch_free(b);
	__atomic_store_n(&tp_update_done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void test_sweep_during_flush(void **state)
{
	struct fixture *f = fx(state);
	int pg = f->e->kind == VG_DB_POSTGRESQL;
	struct vg_registry *sweep;
	struct vg_db *obs;
	pthread_t th;
	char names[256], err[256];
	struct timespec ts;

	assert_int_equal(vg_registry_flush_every(f->r, 3600 * 1000), 0);
	vm_report(f->r, T0, 0, 1);
	other_report(f, T0, 1);
	assert_int_equal(vg_registry_flush(f->r), 0);
	/* vmx ends with a last value in memory, then other gets one */
	vm_report(f->r, T0 + 1000, 1, 2);
	other_report(f, T0 + 1000, 2);
	assert_string_equal(stored_metrics(f, "vmx", names, sizeof(names)), "probe");
	/* the lifecycle's own handle, as collector/lifecycle.c opens it */
	assert_int_equal(reg_open(f, &sweep, err, sizeof(err)), 0);

	tp_f = f;
	tp_rounds0 = flusher_rounds(f->r);
	tp_update_done = 0;
	tp_update_rc = 0;
	tp_taken = tp_go = 0;
	tp_flush_done = pg ? tp_flusher_ended : tp_update_ended;
	pthread_mutex_lock(&tp_mu);
	tp_armed = 1;
	pthread_mutex_unlock(&tp_mu);
	if (pg) { /* the flusher thread flushes now */
		assert_int_equal(vg_registry_flush_every(f->r, 20), 0);
	} else { /* the receiver's batch flushes in its transaction */
		assert_int_equal(vg_registry_flush_every(f->r, 1), 0);
		vg_sleep_ms(2);
		assert_int_equal(pthread_create(&th, NULL, tp_receiver, f), 0);
	}
	pthread_mutex_lock(&tp_mu);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	while (!tp_taken && pthread_cond_timedwait(&tp_cv, &tp_mu, &ts) == 0)
		;
	pthread_mutex_unlock(&tp_mu);
	assert_true(tp_taken); /* the flush holds vmx's value 2 */
	assert_int_equal(vg_registry_remove_ended(sweep, "vmx", T0 + 1000), 0);
	assert_true(tp_flush_done());
	pthread_mutex_lock(&tp_mu);
	tp_armed = 0;
	pthread_mutex_unlock(&tp_mu);
	assert_int_equal(vg_registry_flush_every(f->r, 3600 * 1000), 0);
	if (!pg) {
		pthread_join(th, NULL);
		assert_int_equal(tp_update_rc, 0);
	}
	/* nothing of vmx is left */
	assert_string_equal(stored_metrics(f, "vmx", names, sizeof(names)), "");
	obs = raw_db(f);
	assert_int_equal(st_int(obs, "SELECT count(*) FROM resources WHERE id = 'vmx'"), 0);
	/* and other's newest value is written by the next flush, if not yet */
	assert_int_equal(vg_registry_flush(f->r), 0);
	assert_int_equal(st_int(obs, "SELECT CAST(last_value AS BIGINT) FROM metrics "
				     "WHERE resource_id = 'other' AND name = 'probe'"),
			 pg ? 2 : 3);
	assert_string_equal(stored_metrics(f, "vmx", names, sizeof(names)), "");
	vg_db_close(obs);
	vg_registry_close(sweep);
}

/* Another collector on the same state: a handle with a last-value cache
 * of its own (the cache is per state URL: the same database under
 * another URL). */
static int other_collector(struct fixture *f, struct vg_registry **r)
{
	char url[900], err[256];
	int rc;

	if (f->url[0])
		snprintf(url, sizeof(url), "%s application_name=collector_b", f->url);
	else
		snprintf(url, sizeof(url),
			 "sqlite:%s/registry.db?synchronous=normal&busy_timeout_ms=2000", f->dir);
	if ((rc = vg_registry_open_state(f->dir, url, r, err, sizeof(err))))
		fprintf(stderr, "%s\n", err);
	else
		rc = vg_registry_flush_every(*r, 3600 * 1000); /* flushes: the test's */
	return rc;
}

/* An active resource "keep" of host h2 with one sample, on handle reg. */
static void keep_report(struct vg_registry *reg, int64_t t, double v)
{
	update(reg, probe_batch("h2", "keep", t, 0, v));
}

/* A report of vmx with two metrics (probe 4, probe2 6) at t. */
static struct vg_batch *vmx_two_metrics(int64_t t)
{
	struct vg_batch *bt = probe_batch("h1", "vmx", t, 0, 4);

	assert_int_equal(vg_batch_sample(bt, "probe2", VG_KIND_GAUGE, 6), 0);
	return bt;
}

/* Another collector B (other_collector) whose flushed state has vmx,
 * ended at T0, and keep, and whose cache then holds vmx's value 2 and
 * keep's 5, not flushed. */
static void other_holds_ended_vmx(struct fixture *f, struct vg_registry **b)
{
	assert_int_equal(other_collector(f, b), 0);
	vm_report(*b, T0, 1, 1); /* vmx ended at T0, through B */
	keep_report(*b, T0, 1);
	assert_int_equal(vg_registry_flush(*b), 0);
	vm_report(*b, T0 + 1000, 1, 2); /* B's cache holds value 2 */
	keep_report(*b, T0 + 1000, 5);
}

static int64_t metric_value(struct vg_db *db, const char *id)
{
	char sql[160];

	snprintf(sql, sizeof(sql),
		 "SELECT CAST(last_value AS BIGINT) FROM metrics WHERE "
		 "resource_id = '%s' AND name = 'probe'",
		 id);
	return st_int(db, sql);
}

/* Issue 15: collector A sweeps ended resource vmx while collector B (its
 * own cache) holds a value of vmx it received; B's next flush must not
 * write vmx's metrics row back. B then forgets vmx, and vmx reporting
 * again through B registers it anew, as through A. */
static void test_sweep_other_collector(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry *b;
	struct vg_registry_stats st;
	struct vg_db *obs;
	char names[256];
	int rc;

	assert_int_equal(vg_registry_flush_every(f->r, 3600 * 1000), 0);
	other_holds_ended_vmx(f, &b);
	assert_string_equal(stored_metrics(f, "vmx", names, sizeof(names)), "probe");

	assert_int_equal(vg_registry_remove_ended(f->r, "vmx", T0 + 1000), 0); /* A */
	/* PostgreSQL: the foreign key fails B's flush, which then forgets
	 * vmx; sqlite: the flush's statement skips vmx's row */
	rc = vg_registry_flush(b);
	obs = raw_db(f);
	assert_string_equal(stored_metrics(f, "vmx", names, sizeof(names)), "");
	assert_int_equal(rc, f->e->kind == VG_DB_POSTGRESQL ? -EAGAIN : 0);
	if (rc)
		assert_int_equal(vg_registry_flush(b), 0); /* the retry */
	assert_string_equal(stored_metrics(f, "vmx", names, sizeof(names)), "");
	assert_int_equal(st_int(obs, "SELECT count(*) FROM resources WHERE id = 'vmx'"), 0);
	assert_int_equal(metric_value(obs, "keep"), 5); /* B's other values: written */
	vg_registry_stats(b, &st);
	assert_int_equal(st.gone_resources, 1);
	/* nothing of vmx is written by B's later flushes */
	assert_int_equal(vg_registry_flush(b), 0);
	assert_string_equal(stored_metrics(f, "vmx", names, sizeof(names)), "");

	/* vmx reports again through B: registered anew, from this report */
	vm_report(b, T0 + 5000, 0, 3);
	assert_int_equal(vg_registry_flush(b), 0);
	assert_int_equal(st_int(obs, "SELECT first_seen_ms FROM resources WHERE id = 'vmx'"),
			 T0 + 5000);
	assert_int_equal(metric_value(obs, "vmx"), 3);
	vg_db_close(obs);
	vg_registry_close(b);
}

/* The same through B's receiver: B knows vmx active, vmx ends through A
 * and A sweeps it, then a report of vmx to B with a metric B has no row
 * of (written at once, not cached): the row is not written alone, vmx is
 * registered anew with both metrics. */
static void test_sweep_other_collector_new_metric(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry *b;
	struct vg_db *obs;
	char names[256];

	assert_int_equal(vg_registry_flush_every(f->r, 3600 * 1000), 0);
	assert_int_equal(other_collector(f, &b), 0);
	vm_report(b, T0, 0, 1);
	assert_int_equal(vg_registry_flush(b), 0);
	/* vmx ends through A, and A sweeps it */
	vm_report(f->r, T0 + 1000, 1, 2);
	assert_int_equal(vg_registry_remove_ended(f->r, "vmx", T0 + 1000), 0);

	update(b, vmx_two_metrics(T0 + 5000));
	assert_int_equal(vg_registry_flush(b), 0);

	obs = raw_db(f);
	assert_int_equal(st_int(obs, "SELECT first_seen_ms FROM resources WHERE id = 'vmx'"),
			 T0 + 5000);
	assert_string_equal(stored_metrics(f, "vmx", names, sizeof(names)), "probe,probe2");
	assert_int_equal(metric_value(obs, "vmx"), 4);
	vg_db_close(obs);
	vg_registry_close(b);
}

/* PostgreSQL: a sweep of vmx in its own session, begun with BEGIN_SQL, and
 * FN(ARG) in a thread that waits at a row the sweep holds (one lock waiter
 * seen through obs); the sweep then ends with END_SQL (which commits).
 * Returns FN's result, an int, once it ended. */
static int during_sweep(struct fixture *f, struct vg_db *obs, const char *begin_sql,
			const char *end_sql, void *(*fn)(void *), void *arg)
{
	struct vg_db *sweep = raw_db(f);
	pthread_t th;
	void *ret;

	assert_int_equal(vg_db_exec(sweep, begin_sql), 0);
	assert_int_equal(pthread_create(&th, NULL, fn, arg), 0);
	assert_int_equal(lock_waiters(obs, 1), 0);
	assert_int_equal(vg_db_exec(sweep, end_sql), 0);
	pthread_join(th, &ret);
	vg_db_close(sweep);
	return *(int *)ret;
}

/* PostgreSQL: B's receiver writes a new metric of vmx while a sweep of
 * vmx is in flight: its statement sees vmx (its snapshot), the foreign
 * key's check waits for the sweep and fails once it committed: the batch
 * is answered RETRY (-EAGAIN), and its re-send registers vmx anew. */
static struct vg_registry *upd_reg;
static struct vg_batch *upd_batch;

static void *update_thread(void *arg)
{
	static int rc;

	(void)arg;
	rc = vg_registry_update(upd_reg, upd_batch);
	return &rc;
}

static void test_sweep_commits_during_new_metric(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry *b;
	struct vg_db *obs;
	char names[256];
	int rc;

	if (f->e->kind != VG_DB_POSTGRESQL)
		skip(); /* sqlite: one writer, whose check and write are one statement */
	assert_int_equal(vg_registry_flush_every(f->r, 3600 * 1000), 0);
	assert_int_equal(other_collector(f, &b), 0);
	vm_report(b, T0, 0, 1);
	assert_int_equal(vg_registry_flush(b), 0);
	vm_report(f->r, T0 + 1000, 1, 2); /* vmx ends, through A */

	obs = raw_db(f);
	upd_reg = b;
	upd_batch = vmx_two_metrics(T0 + 5000);
	/* the update waits in the key's check, at vmx's row */
	rc = during_sweep(f, obs,
			  "BEGIN; DELETE FROM metrics WHERE resource_id = 'vmx';"
			  "DELETE FROM resources WHERE id = 'vmx'",
			  "COMMIT", update_thread, NULL);
	assert_string_equal(stored_metrics(f, "vmx", names, sizeof(names)), "");
	assert_int_equal(rc, -EAGAIN);

	assert_int_equal(vg_registry_update(b, upd_batch), 0); /* the re-send */
	vg_batch_free(upd_batch);
	assert_int_equal(vg_registry_flush(b), 0);
	assert_int_equal(st_int(obs, "SELECT first_seen_ms FROM resources WHERE id = 'vmx'"),
			 T0 + 5000);
	assert_string_equal(stored_metrics(f, "vmx", names, sizeof(names)), "probe,probe2");
	vg_db_close(obs);
	vg_registry_close(b);
}

/* PostgreSQL: the same with B's flusher thread (as in the daemon): it
 * fails once on the foreign key, forgets vmx, and its retry writes B's
 * other values; the stats count the resource found gone. */
static void test_sweep_other_collector_flusher(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry *b;
	struct vg_registry_stats st = {0};
	struct vg_db *obs;
	char names[256];

	if (f->e->kind != VG_DB_POSTGRESQL)
		skip(); /* sqlite flushes in the receiver's batches: above */
	assert_int_equal(vg_registry_flush_every(f->r, 3600 * 1000), 0);
	other_holds_ended_vmx(f, &b);
	assert_int_equal(vg_registry_remove_ended(f->r, "vmx", T0 + 1000), 0); /* A */
	obs = raw_db(f);
	assert_int_equal(vg_registry_flush_every(b, 20), 0);
	for (int i = 0; i < 3000 && (metric_value(obs, "keep") != 5 || !st.gone_resources);
	     i++) {
		vg_sleep_ms(10);
		vg_registry_stats(b, &st);
	}
	assert_int_equal(vg_registry_flush_every(b, 3600 * 1000), 0);
	assert_int_equal(metric_value(obs, "keep"), 5);
	assert_int_equal(st.gone_resources, 1);
	assert_true(st.flush_failures >= 1);
	assert_string_equal(stored_metrics(f, "vmx", names, sizeof(names)), "");
	assert_int_equal(st_int(obs, "SELECT count(*) FROM resources WHERE id = 'vmx'"), 0);
	vg_db_close(obs);
	vg_registry_close(b);
}

/* PostgreSQL: the sweep commits while B's flush statement runs. A third
 * session deletes vmx's metrics row and holds it; B's flush waits at that
 * row; the session deletes vmx and commits: the flush would insert the
 * row again (a filter in its SQL would have read vmx in the statement's
 * snapshot) but for the foreign key (step 7), which fails the flush; the
 * next flush skips vmx. */
static void *flush_thread(void *arg)
{
	static int rc;

	rc = vg_registry_flush(arg);
	return &rc;
}

static void test_sweep_commits_during_flush(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry *b;
	struct vg_db *obs;
	char names[256];
	int rc;

	if (f->e->kind != VG_DB_POSTGRESQL)
		skip(); /* sqlite: one writer, whose check and write are one statement */
	other_holds_ended_vmx(f, &b);

	obs = raw_db(f);
	/* the flush waits at vmx's row */
	rc = during_sweep(f, obs, "BEGIN; DELETE FROM metrics WHERE resource_id = 'vmx'",
			  "DELETE FROM resources WHERE id = 'vmx'; COMMIT", flush_thread, b);
	assert_string_equal(stored_metrics(f, "vmx", names, sizeof(names)), "");
	assert_int_equal(rc, -EAGAIN); /* the foreign key refused it */

	assert_int_equal(vg_registry_flush(b), 0); /* the retry */
	assert_string_equal(stored_metrics(f, "vmx", names, sizeof(names)), "");
	assert_int_equal(st_int(obs, "SELECT count(*) FROM resources WHERE id = 'vmx'"), 0);
	assert_int_equal(metric_value(obs, "keep"), 5);
	vg_db_close(obs);
	vg_registry_close(b);
}

static void test_takeover_drops_custom_metrics(void **state)
{
	struct fixture *f = fx(state);
	struct vg_registry_stats st;
	struct vg_registry *other;
	json_t *o, *m, *v;
	char names[256], err[256];
	uint64_t drops = 99;

	/* another collector's handle on the same state: the sum of every
	 * handle's drops is shared (its publish quota recounts on it) */
	assert_int_equal(reg_open(f, &other, err, sizeof(err)), 0);
	assert_int_equal(vg_registry_custom_drops(other, &drops), 0);
	assert_int_equal(drops, 0);

	/* the squat, dated 10 minutes ahead: its own metric and a catalogue
	 * name of hosts; then a newer value of probe, only in memory */
	report(f->r, "api", 0, VG_RT_CUSTOM, "squat", "p", T0 + 600000, "probe", 1);
	report(f->r, "api", 0, VG_RT_CUSTOM, "squat", "p", T0 + 600000,
	       "host.load.1", 99);
	assert_int_equal(vg_registry_flush(f->r), 0);
	report(f->r, "api", 0, VG_RT_CUSTOM, "squat", "p", T0 + 660000, "probe", 2);
	assert_string_equal(stored_metrics(f, "node9", names, sizeof(names)),
			    "host.load.1,probe");

	/* the agent of host node9 */
	report(f->r, "node9", 1, VG_RT_HOST, "node9", NULL, T0, "host.load.1", 0.5);
	assert_int_equal(vg_registry_flush(f->r), 0);

	assert_int_equal(vg_registry_get(f->r, "node9", &o), 0);
	assert_string_equal(str(o, "type"), "host");
	m = json_object_get(o, "metrics");
	assert_null(json_object_get(m, "probe"));
	v = json_object_get(json_object_get(m, "host.load.1"), "last_value");
	if (!v || json_real_value(v) != 0.5)
		fail_msg("host.load.1 is not the agent's 0.5: %s",
			 v ? json_dumps(v, JSON_ENCODE_ANY) : "(none)");
	assert_int_equal(json_object_size(m), 1);
	json_decref(o);
	assert_string_equal(stored_metrics(f, "node9", names, sizeof(names)),
			    "host.load.1");
	vg_registry_stats(f->r, &st);
	assert_int_equal(st.custom_metrics_dropped, 2);
	assert_int_equal(vg_registry_custom_drops(other, &drops), 0);
	assert_int_equal(drops, 2);
	vg_registry_stats(other, &st);
	assert_int_equal(st.custom_metrics_dropped, 0); /* its own: none */

	/* the agent's next report changes the host's name (its identity is
	 * written again): its metric stays */
	report(f->r, "node9", 2, VG_RT_HOST, "node9.example", NULL, T0 + 60000,
	       "host.load.1", 0.7);
	assert_int_equal(vg_registry_flush(f->r), 0);
	assert_string_equal(stored_metrics(f, "node9", names, sizeof(names)),
			    "host.load.1");
	vg_registry_stats(f->r, &st);
	assert_int_equal(st.custom_metrics_dropped, 2);
	assert_int_equal(vg_registry_custom_drops(other, &drops), 0);
	assert_int_equal(drops, 2);
	/* another squat taken over, through the other handle */
	for (int agent = 0; agent < 2; agent++) {
		struct vg_batch *b = vg_batch_new(agent ? "node8" : "api", agent ? 7 : 0,
						  agent, T0);
		struct vg_resource *r = vg_batch_resource(
			b, agent ? VG_RT_HOST : VG_RT_CUSTOM, "node8", "node8", NULL, T0);
		r->state = VG_RSTATE_ACTIVE;
		if (!agent)
			assert_int_equal(vg_batch_identity(b, "p", NULL, NULL), 0);
		assert_int_equal(vg_batch_sample(b, agent ? "host.load.1" : "probe",
						 VG_KIND_GAUGE, 1),
				 0);
		update(other, b);
		assert_int_equal(vg_registry_flush(other), 0);
	}
	assert_int_equal(vg_registry_custom_drops(f->r, &drops), 0);
	assert_int_equal(drops, 3);
	assert_int_equal(vg_registry_custom_drops(NULL, &drops), -EINVAL);
	vg_registry_close(other);
}

/* A row's type is the first reporter's: only an agent's report over a
 * custom row may change it. A batch naming a host's id as its instance
 * (a rogue node: instance ids cannot be tied to a host) must neither
 * re-label the host into its project nor end it, nor hang its metrics
 * on the host's row. */
static void test_type_never_changes(void **state)
{
	struct fixture *f = fx(state);
	struct vg_batch *b;
	struct vg_resource *r;
	json_t *o;
	struct vg_registry_stats st;
	uint64_t before;

	b = vg_batch_new("node9", 7, 1, T0);
	r = vg_batch_resource(b, VG_RT_HOST, "node9", "node9", NULL, T0);
	r->state = VG_RSTATE_ACTIVE;
	assert_int_equal(vg_batch_sample(b, "host.load.1", VG_KIND_GAUGE, 0.5), 0);
	update(f->r, b);
	assert_int_equal(vg_registry_flush(f->r), 0);
	vg_registry_stats(f->r, &st);
	before = st.resources_conflicting;
	/* later, from another host: an ended instance "node9" of project p */
	b = vg_batch_new("evil", 7, 1, T0 + 60000);
	r = vg_batch_resource(b, VG_RT_INSTANCE, "node9", "mine", NULL, T0 + 60000);
	r->state = VG_RSTATE_ENDED;
	assert_int_equal(vg_batch_identity(b, "p", "mallory", "f"), 0);
	assert_int_equal(vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 666), 0);
	update(f->r, b);
	assert_int_equal(vg_registry_flush(f->r), 0);
	vg_registry_stats(f->r, &st);
	assert_int_equal(st.resources_conflicting, before + 1);
	assert_int_equal(vg_registry_get(f->r, "node9", &o), 0);
	assert_string_equal(str(o, "type"), "host");
	assert_string_equal(str(o, "project"), "default");
	assert_string_equal(str(o, "host"), "node9");
	assert_string_equal(str(o, "name"), "node9");
	assert_true(json_is_null(json_object_get(o, "ended_at")));
	assert_null(json_object_get(json_object_get(o, "metrics"), "memory.used"));
	assert_non_null(json_object_get(json_object_get(o, "metrics"), "host.load.1"));
	json_decref(o);
	struct vg_resource_filter flt = {.project = "p"};
	assert_int_equal(count_list(f->r, flt), 0);
}

/* The state database's reachability (vg_registry_ping, /v1/health): 0
 * while it answers; on PostgreSQL, an error with its reason while the
 * server is down, and 0 again at the first ping after it is back, whether
 * the handle already saw the loss or not (a restart while nobody used
 * the connection: the ping's first call finds it lost, the second
 * reconnects). */
static void test_ping(void **state)
{
	struct fixture *f = fx(state);
	char err[256];

	assert_int_equal(vg_registry_ping(f->r, err, sizeof(err)), 0);
	if (f->e->kind != VG_DB_POSTGRESQL)
		return;
	hpg_stop(&st_pg);
	err[0] = '\0';
	assert_true(vg_registry_ping(f->r, err, sizeof(err)) < 0);
	assert_true(err[0] != '\0');
	assert_int_equal(vg_registry_ping(f->r, err, sizeof(err)), -ENOTCONN);
	assert_int_equal(hpg_start_again(&st_pg), 0);
	assert_int_equal(vg_registry_ping(f->r, err, sizeof(err)), 0);
	assert_int_equal(hpg_restart(&st_pg), 0);
	assert_int_equal(vg_registry_ping(f->r, err, sizeof(err)), 0);
	assert_int_equal(vg_registry_ping(f->r, err, sizeof(err)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		ST_BOTH(test_upsert_get, setup, teardown),
		ST_BOTH(test_ended, setup, teardown),
		ST_BOTH(test_list, setup, teardown),
		ST_BOTH(test_seen_commit_persist, setup, teardown),
		ST_BOTH(test_replay_after_new_stream, setup, teardown),
		ST_BOTH(test_streams_bounded, setup, teardown),
		ST_BOTH(test_upgrade_from_v1, setup, teardown),
		ST_BOTH(test_two_handles, setup, teardown),
		ST_BOTH(test_last_values_in_memory, setup, teardown),
		ST_BOTH(test_rollback_rewrites_rows, setup, teardown),
		ST_BOTH(test_invalid_names_skipped, setup, teardown),
		ST_BOTH(test_same_time_keeps_first, setup, teardown),
		ST_BOTH(test_newer_schema_refused, setup, teardown),
		ST_BOTH(test_step3_fillfactor, setup, teardown),
		ST_BOTH(test_commit_race, setup, teardown),
		ST_BOTH(test_commit_group, setup, teardown),
		ST_BOTH(test_commit_group_lock_order, setup, teardown),
		ST_BOTH(test_commit_deadline, setup, teardown),
		ST_BOTH(test_cancel_not_deadline, setup, teardown),
		ST_BOTH(test_holding_marks, setup, teardown),
		ST_BOTH(test_marks_release, setup, teardown),
		ST_BOTH(test_step6_commit_node, setup, teardown),
		ST_BOTH(test_wait_verified, setup, teardown),
		ST_BOTH(test_same_batch_two_holders, setup, teardown),
		ST_BOTH(test_flush_many, setup, teardown),
		ST_BOTH(test_flush_off_receiver, setup, teardown),
		ST_BOTH(test_flush_seen_keyed, setup, teardown),
		ST_BOTH(test_flush_odd_names, setup, teardown),
		ST_BOTH(test_flush_plans_follow_growth, setup, teardown),
		ST_BOTH(test_identity_race, setup, teardown),
		ST_BOTH(test_published_unit, setup, teardown),
		ST_BOTH(test_published_not_seen, setup, teardown),
		ST_BOTH(test_agent_takes_custom_id, setup, teardown),
		ST_BOTH(test_type_never_changes, setup, teardown),
		ST_BOTH(test_takeover_drops_custom_metrics, setup, teardown),
		ST_BOTH(test_takeover_during_flush, setup, teardown),
		ST_BOTH(test_sweep_during_flush, setup, teardown),
		ST_BOTH(test_sweep_other_collector, setup, teardown),
		ST_BOTH(test_sweep_other_collector_new_metric, setup, teardown),
		ST_BOTH(test_sweep_other_collector_flusher, setup, teardown),
		ST_BOTH(test_sweep_commits_during_flush, setup, teardown),
		ST_BOTH(test_sweep_commits_during_new_metric, setup, teardown),
		ST_BOTH(test_ping, setup, teardown),
	};
	if (getenv("REGISTRY_TEST_FILTER")) /* e.g. "postgresql*" */
		cmocka_set_test_filter(getenv("REGISTRY_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, st_group_teardown);
}
