/*
 * alarm_store_test.c — the alarm store (alarms/store.c) on every state
 * database engine: definitions and the unique name, states with their
 * packed datapoints (the M-of-N window) round-tripping byte for byte,
 * history pages and the type filter, pruning, the outbox's moves; an
 * alarms.db from before the state database layer adopted with its rows;
 * and two delivery workers (two collectors' outbox threads) over one
 * PostgreSQL outbox delivering every notification exactly once to a real
 * HTTP receiver on loopback (libmicrohttpd).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <microhttpd.h>
#include <sqlite3.h>

#include "vigie/alarm_outbox.h"
#include "vigie/alarm_store.h"
#include "vigie/clock.h"

#include "../support/db_engines.h"

struct fx {
	const struct dbe *e;
	char where[700]; /* a directory (sqlite) or a PostgreSQL conninfo */
	struct vg_alarm_store *s;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[512];
	int rc;

	f->e = *state;
	*state = f;
	if ((rc = dbe_fresh(f->e, f->where, sizeof(f->where))))
		return rc < 0 ? -1 : 0;
	if (f->e->kind == VG_DB_SQLITE) { /* the store takes the directory */
		char *slash = strrchr(f->where, '/');
		*slash = '\0';
		strcat(f->where, "/");
		snprintf(slash + 1, sizeof(f->where) - (size_t)(slash + 1 - f->where), "d%d",
			 dbe_ncase);
		assert_int_equal(mkdir(f->where, 0700), 0);
	}
	if (vg_alarm_store_open(f->where, &f->s, err, sizeof(err)))
		fail_msg("%s", err);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	vg_alarm_store_close(f->s);
	free(f);
	return 0;
}

static struct fx *fx_get(void **state)
{
	struct fx *f = *state;
	if (!f->s)
		dbe_need(f->e);
	return f;
}

/* ---- definitions and states ---- */

static int count_def(void *ctx, const char *id, const char *json, int64_t c, int64_t u)
{
	int *n = ctx;
	assert_string_equal(json, "{\"x\":1}");
	(*n)++;
	return 0;
}

struct seen_state {
	int n;
	unsigned char ring[64];
	size_t ring_len;
	int state;
	uint32_t periods;
	int64_t cooldown_ms, log_base;
};

static int got_state(void *ctx, const struct vg_alarm_state_row *r)
{
	struct seen_state *s = ctx;
	s->n++;
	s->state = r->state;
	s->periods = r->alarm_periods;
	s->cooldown_ms = r->cooldown_ms;
	s->log_base = r->log_base;
	s->ring_len = r->ring_len;
	memcpy(s->ring, r->ring, r->ring_len < 64 ? r->ring_len : 64);
	return 0;
}

static void test_defs_and_states(void **state)
{
	struct fx *f = fx_get(state);
	const unsigned char ring[] = {0, 1, 2, 0xff, 0, 0x80, 7}; /* NULs and high bytes */
	struct vg_alarm_state_row r = {.alarm_id = "a1", .resource = "inst-1", .state = 2, .since_ms = 1000, .clear_since_ms = 0, .alarm_periods = 3, .reason = "3 of 5", .ring = ring, .ring_len = sizeof(ring), .updated_ms = 2000, .cooldown_ms = 1500, .log_base = 77};
	struct seen_state seen = {0};
	int n = 0;

	assert_int_equal(vg_alarm_store_put_def(f->s, "a1", "acme", "cpu", "{\"x\":1}", 1, 1), 0);
	assert_int_equal(vg_alarm_store_put_def(f->s, "a2", "acme", "cpu", "{\"x\":1}", 2, 2),
			 -EEXIST);
	assert_int_equal(vg_alarm_store_put_def(f->s, "a2", "beta", "cpu", "{\"x\":1}", 2, 2), 0);
	assert_int_equal(vg_alarm_store_put_def(f->s, "a1", "acme", "cpu", "{\"x\":1}", 1, 5), 0);
	assert_int_equal(vg_alarm_store_load_defs(f->s, count_def, &n), 0);
	assert_int_equal(n, 2);

	assert_int_equal(vg_alarm_store_begin(f->s), 0);
	assert_int_equal(vg_alarm_store_put_state(f->s, &r), 0);
	r.alarm_periods = 4;
	assert_int_equal(vg_alarm_store_put_state(f->s, &r), 0); /* upsert */
	assert_int_equal(vg_alarm_store_commit(f->s), 0);
	assert_int_equal(vg_alarm_store_load_states(f->s, got_state, &seen), 0);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.state, 2);
	assert_int_equal(seen.periods, 4);
	assert_int_equal(seen.cooldown_ms, 1500);
	assert_int_equal(seen.log_base, 77);
	assert_int_equal(seen.ring_len, sizeof(ring));
	assert_memory_equal(seen.ring, ring, sizeof(ring));

	/* a rolled-back transaction leaves nothing */
	assert_int_equal(vg_alarm_store_begin(f->s), 0);
	assert_int_equal(vg_alarm_store_delete_state(f->s, "a1", "inst-1"), 0);
	vg_alarm_store_rollback(f->s);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(vg_alarm_store_load_states(f->s, got_state, &seen), 0);
	assert_int_equal(seen.n, 1);

	assert_int_equal(vg_alarm_store_delete_def(f->s, "a1"), 0);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(vg_alarm_store_load_states(f->s, got_state, &seen), 0);
	assert_int_equal(seen.n, 0);
	n = 0;
	assert_int_equal(vg_alarm_store_load_defs(f->s, count_def, &n), 0);
	assert_int_equal(n, 1);
}

/* ---- the step log: rows of packed entries, oldest first, cleared ---- */

struct seen_log {
	int n;
	char text[256];
};

static int got_log(void *ctx, const void *entries, size_t len)
{
	struct seen_log *s = ctx;
	size_t at = strlen(s->text);

	s->n++;
	snprintf(s->text + at, sizeof(s->text) - at, "%.*s|", (int)len, (const char *)entries);
	return 0;
}

static void test_step_log(void **state)
{
	struct fx *f = fx_get(state);
	struct seen_log seen = {0};

	assert_int_equal(vg_alarm_store_local(f->s), f->e->kind == VG_DB_SQLITE);
	assert_int_equal(vg_alarm_store_begin(f->s), 0);
	assert_int_equal(vg_alarm_store_log_add(f->s, "one", 3), 0);
	assert_int_equal(vg_alarm_store_log_add(f->s, "two\0x", 5), 0);
	assert_int_equal(vg_alarm_store_commit(f->s), 0);
	/* a rolled-back row is not there */
	assert_int_equal(vg_alarm_store_begin(f->s), 0);
	assert_int_equal(vg_alarm_store_log_add(f->s, "three", 5), 0);
	vg_alarm_store_rollback(f->s);
	assert_int_equal(vg_alarm_store_log_load(f->s, got_log, &seen), 0);
	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.text, "one|two|");
	assert_int_equal(vg_alarm_store_begin(f->s), 0);
	assert_int_equal(vg_alarm_store_log_clear(f->s), 0);
	assert_int_equal(vg_alarm_store_commit(f->s), 0);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(vg_alarm_store_log_load(f->s, got_log, &seen), 0);
	assert_int_equal(seen.n, 0);
}

/* ---- group alarms' members and open periods ---- */

struct seen_open {
	char text[512];
};

static int got_member(void *ctx, const char *alarm_id, const char *resource)
{
	struct seen_open *o = ctx;
	size_t n = strlen(o->text);
	snprintf(o->text + n, sizeof(o->text) - n, "m %s %s;", alarm_id, resource);
	return 0;
}

static int got_value(void *ctx, const char *alarm_id, int64_t start_ms,
		     const char *resource, double v)
{
	struct seen_open *o = ctx;
	size_t n = strlen(o->text);
	snprintf(o->text + n, sizeof(o->text) - n, "v %s %lld %s %g;", alarm_id,
		 (long long)start_ms, resource, v);
	return 0;
}

static void test_group_members_and_open_values(void **state)
{
	struct fx *f = fx_get(state);
	struct seen_open o = {{0}};

	assert_int_equal(vg_alarm_store_put_def(f->s, "g1", "acme", "web", "{}", 1, 1), 0);
	assert_int_equal(vg_alarm_store_begin(f->s), 0);
	assert_int_equal(vg_alarm_store_gmember_put(f->s, "g1", "vm1"), 0);
	assert_int_equal(vg_alarm_store_gmember_put(f->s, "g1", "vm2"), 0);
	assert_int_equal(vg_alarm_store_gmember_put(f->s, "g1", "vm2"), 0); /* again */
	assert_int_equal(vg_alarm_store_gmember_put(f->s, "g2", "vm9"), 0);
	assert_int_equal(vg_alarm_store_gmember_del(f->s, "g1", "vm1"), 0);
	assert_int_equal(vg_alarm_store_gvalue_put(f->s, "g1", 60000, "vm2", 80), 0);
	assert_int_equal(vg_alarm_store_gvalue_put(f->s, "g1", 60000, "vm2", 81), 0); /* upsert */
	assert_int_equal(vg_alarm_store_gvalue_put(f->s, "g1", 0, "vm1", NAN), 0);
	assert_int_equal(vg_alarm_store_gvalue_put(f->s, "g1", 120000, "vm1", 7), 0);
	assert_int_equal(vg_alarm_store_commit(f->s), 0);
	assert_int_equal(vg_alarm_store_gopen_load(f->s, "g1", got_member, got_value, &o), 0);
	assert_string_equal(o.text, "m g1 vm2;v g1 0 vm1 nan;v g1 60000 vm2 81;"
				    "v g1 120000 vm1 7;");
	/* a decided period's rows go */
	assert_int_equal(vg_alarm_store_gvalues_drop(f->s, "g1", 60000), 0);
	memset(&o, 0, sizeof(o));
	assert_int_equal(vg_alarm_store_gopen_load(f->s, NULL, got_member, got_value, &o), 0);
	assert_non_null(strstr(o.text, "m g2 vm9;"));
	assert_non_null(strstr(o.text, "v g1 120000 vm1 7;"));
	assert_null(strstr(o.text, "60000 vm2"));
	/* the "" state's deletion (a reset) and the definition's take them */
	assert_int_equal(vg_alarm_store_delete_state(f->s, "g2", ""), 0);
	assert_int_equal(vg_alarm_store_delete_def(f->s, "g1"), 0);
	memset(&o, 0, sizeof(o));
	assert_int_equal(vg_alarm_store_gopen_load(f->s, NULL, got_member, got_value, &o), 0);
	assert_string_equal(o.text, "");
}

/* ---- history ---- */

static void test_history_pages_and_prune(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_alarm_history_query q = {.alarm_id = "a1", .start_ms = 0, .end_ms = 1000000, .limit = 2};
	json_t *page;
	int64_t next;
	uint64_t deleted;

	for (int i = 0; i < 5; i++)
		assert_int_equal(vg_alarm_store_history_add(f->s, "a1", "acme",
							    i % 2 ? "transition" : "delivered",
							    i == 0 ? "" : "inst-1", 1000 + i,
							    5000 + i, "{\"n\":1}"),
				 0);
	assert_int_equal(vg_alarm_store_history(f->s, &q, &page, &next), 0);
	assert_int_equal(json_array_size(page), 2);
	assert_true(json_is_null(json_object_get(json_array_get(page, 0), "resource")));
	assert_true(next > 0);
	json_decref(page);
	q.after_seq = next;
	q.limit = 10;
	assert_int_equal(vg_alarm_store_history(f->s, &q, &page, &next), 0);
	assert_int_equal(json_array_size(page), 3);
	assert_int_equal(next, 0);
	json_decref(page);
	q.after_seq = 0;
	q.type = "transition";
	assert_int_equal(vg_alarm_store_history(f->s, &q, &page, &next), 0);
	assert_int_equal(json_array_size(page), 2);
	json_decref(page);
	assert_int_equal(vg_alarm_store_prune(f->s, 5002, &deleted), 0);
	assert_int_equal(deleted, 2);
}

/* A history row's "seq" numbers its alarm's rows only: tenant B's rows
 * read 1, 2, 3 whatever tenant A's alarms wrote between them (the seq
 * was one counter for every project, telling B how busy A was), and
 * pages follow on with that seq. */
static void test_history_seq_per_alarm(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_alarm_history_query q = {.alarm_id = "b1", .start_ms = 0, .end_ms = 1000000, .limit = 2};
	json_t *page;
	int64_t next;

	for (int i = 0; i < 3; i++) {
		for (int k = 0; k < 5 * (i + 1); k++) /* A's alarms, busier each time */
			assert_int_equal(vg_alarm_store_history_add(f->s, k % 2 ? "a1" : "a2",
								    "tenant-a", "transition",
								    "vm-a", 1000 + i, 5000 + i,
								    "{}"),
					 0);
		assert_int_equal(vg_alarm_store_history_add(f->s, "b1", "tenant-b", "transition",
							    "vm-b", 1000 + i, 5000 + i, "{}"),
				 0);
	}
	assert_int_equal(vg_alarm_store_history(f->s, &q, &page, &next), 0);
	assert_int_equal(json_array_size(page), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(page, 0), "seq")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(page, 1), "seq")), 2);
	assert_int_equal(next, 2);
	json_decref(page);
	q.after_seq = next;
	assert_int_equal(vg_alarm_store_history(f->s, &q, &page, &next), 0);
	assert_int_equal(json_array_size(page), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(page, 0), "seq")), 3);
	assert_int_equal(next, 0);
	json_decref(page);
	/* A's own alarms count their own rows too */
	q.alarm_id = "a1";
	q.after_seq = 0;
	q.limit = 1000;
	assert_int_equal(vg_alarm_store_history(f->s, &q, &page, &next), 0);
	assert_int_equal(json_array_size(page), 14);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(page, 13), "seq")), 14);
	json_decref(page);
}

/* The seq of alarm id's newest history row (0: none). */
static int64_t last_seq(struct fx *f, const char *id)
{
	struct vg_alarm_history_query q = {.alarm_id = id, .start_ms = 0, .end_ms = 1000000, .limit = 1000};
	json_t *page;
	int64_t next, seq = 0;
	size_t n;

	assert_int_equal(vg_alarm_store_history(f->s, &q, &page, &next), 0);
	if ((n = json_array_size(page)))
		seq = json_integer_value(json_object_get(json_array_get(page, n - 1), "seq"));
	json_decref(page);
	return seq;
}

static void hist(struct fx *f, const char *id, const char *type, int64_t recorded_ms)
{
	assert_int_equal(vg_alarm_store_history_add(f->s, id, "acme", type, NULL, recorded_ms,
						    recorded_ms, "{}"),
			 0);
}

/* A deleted alarm's seq counter (history_seq) goes with its last history
 * row, at the prune: not at the deletion, since the deletion's own row
 * and later notification attempts go on numbering after the rows kept.
 * An alarm that still exists keeps counting past its pruned rows; an id
 * created again after its counter went starts at 1. */
static void test_history_seq_pruned(void **state)
{
	struct fx *f = fx_get(state);

	assert_int_equal(vg_alarm_store_put_def(f->s, "d1", "acme", "one", "{}", 1, 1), 0);
	assert_int_equal(vg_alarm_store_put_def(f->s, "d2", "acme", "two", "{}", 1, 1), 0);
	for (int i = 0; i < 2; i++) {
		hist(f, "d1", "transition", 1000 + i);
		hist(f, "d2", "transition", 1000 + i);
	}
	assert_int_equal(vg_alarm_store_delete_def(f->s, "d1"), 0);
	hist(f, "d1", "deletion", 3000);
	assert_int_equal(last_seq(f, "d1"), 3);
	assert_int_equal(vg_alarm_store_prune(f->s, 2000, NULL), 0);
	hist(f, "d1", "notification", 3001); /* one still due */
	assert_int_equal(last_seq(f, "d1"), 4);
	assert_int_equal(vg_alarm_store_prune(f->s, 5000, NULL), 0);
	assert_int_equal(last_seq(f, "d1"), 0);
	hist(f, "d2", "transition", 6000);
	assert_int_equal(last_seq(f, "d2"), 3);
	assert_int_equal(vg_alarm_store_put_def(f->s, "d1", "acme", "one", "{}", 7, 7), 0);
	hist(f, "d1", "creation", 7000);
	assert_int_equal(last_seq(f, "d1"), 1);
}

/* Two writers (two collectors' transactions: an engine's flush, a
 * delivery thread's record) each writing history rows of alarms a1 and
 * a2, in opposite orders, at the same time. Each row's number locks its
 * alarm's counter until the commit; taken in the order of the adds, the
 * second writer's first add waited for the first's and the first's
 * second for the second's: PostgreSQL aborted one of them as a deadlock
 * (a delivery thread's record lost that way sent its notifications
 * again). Both commit, and each alarm's rows are numbered 1..n without a
 * gap or a repeat. */
struct hist_writer {
	struct vg_alarm_store *s;
	pthread_barrier_t *both;
	const char *first, *second;
	int rc;
};

static void *hist_write_two(void *arg)
{
	struct hist_writer *w = arg;
	int rc = vg_alarm_store_begin(w->s);

	if (!rc)
		rc = vg_alarm_store_history_add(w->s, w->first, "acme", "transition", "vm",
						1000, 5000, "{}");
	/* both hold their first row before either adds its second */
	pthread_barrier_wait(w->both);
	if (!rc)
		rc = vg_alarm_store_history_add(w->s, w->second, "acme", "transition", "vm",
						1001, 5001, "{}");
	if (!rc)
		rc = vg_alarm_store_commit(w->s);
	if (rc)
		vg_alarm_store_rollback(w->s);
	w->rc = rc;
	return NULL;
}

static void test_history_two_writers(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_alarm_store *s2;
	struct hist_writer w[2];
	pthread_barrier_t both;
	pthread_t th[2];
	char err[512];

	if (f->e->kind != VG_DB_POSTGRESQL) {
		printf("# SKIP sqlite: one writer at a time per file\n");
		skip();
	}
	if (vg_alarm_store_open(f->where, &s2, err, sizeof(err)))
		fail_msg("%s", err);
	/* both counters exist: the adds below update their rows */
	assert_int_equal(vg_alarm_store_history_add(f->s, "a1", "acme", "update", NULL, 900, 4900, "{}"), 0);
	assert_int_equal(vg_alarm_store_history_add(f->s, "a2", "acme", "update", NULL, 900, 4900, "{}"), 0);
	pthread_barrier_init(&both, NULL, 2);
	w[0] = (struct hist_writer){f->s, &both, "a1", "a2", 0};
	w[1] = (struct hist_writer){s2, &both, "a2", "a1", 0};
	for (int k = 0; k < 2; k++)
		assert_int_equal(pthread_create(&th[k], NULL, hist_write_two, &w[k]), 0);
	for (int k = 0; k < 2; k++)
		assert_int_equal(pthread_join(th[k], NULL), 0);
	pthread_barrier_destroy(&both);
	for (int k = 0; k < 2; k++)
		if (w[k].rc)
			fail_msg("writer %d: %d (%s)", k, w[k].rc,
				 vg_alarm_store_errmsg(w[k].s));
	for (int a = 0; a < 2; a++) {
		struct vg_alarm_history_query q = {.alarm_id = a ? "a2" : "a1", .start_ms = 0, .end_ms = 1000000, .limit = 100};
		json_t *page;
		int64_t next;
		assert_int_equal(vg_alarm_store_history(f->s, &q, &page, &next), 0);
		assert_int_equal(json_array_size(page), 3);
		for (size_t i = 0; i < 3; i++)
			assert_int_equal(json_integer_value(json_object_get(json_array_get(page, i), "seq")),
					 (json_int_t)i + 1);
		json_decref(page);
	}
	vg_alarm_store_close(s2);
}

/* ---- the outbox's moves ---- */

static void test_outbox_moves(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_alarm_outbox_item it[8];
	size_t n;
	int64_t next, now = 1800000000000LL;

	assert_int_equal(vg_alarm_store_outbox_add(f->s, "n1", "a1", "acme", "http://x/", "{}", now), 0);
	assert_int_equal(vg_alarm_store_outbox_add(f->s, "n2", "a1", "acme", "http://x/", "{}", now), 0);
	assert_int_equal(vg_alarm_store_outbox_add(f->s, "n3", "a1", "acme", "http://x/", "{}", now), 0);
	assert_int_equal(vg_alarm_store_outbox_due(f->s, now, 0, it, 8, &n, &next), 0);
	assert_int_equal(n, 3);
	assert_string_equal(it[0].notice_id, "n1"); /* oldest first */
	assert_string_equal(it[2].notice_id, "n3");
	assert_true(it[0].id < it[1].id && it[1].id < it[2].id);
	int64_t id1 = it[0].id, id2 = it[1].id, id3 = it[2].id;
	for (size_t i = 0; i < n; i++)
		vg_alarm_outbox_item_release(&it[i]);
	/* the cursor */
	assert_int_equal(vg_alarm_store_outbox_due(f->s, now, id2, it, 8, &n, &next), 0);
	assert_int_equal(n, 1);
	vg_alarm_outbox_item_release(&it[0]);

	assert_int_equal(vg_alarm_store_begin(f->s), 0);
	assert_int_equal(vg_alarm_store_outbox_delivered(f->s, id1, 1, now), 0);
	assert_int_equal(vg_alarm_store_outbox_retry(f->s, id2, 1, now + 5000, "503"), 0);
	assert_int_equal(vg_alarm_store_outbox_failed(f->s, id3, 1, "404"), 0);
	assert_int_equal(vg_alarm_store_commit(f->s), 0);
	/* delivered and failed never come back; the retry when due */
	assert_int_equal(vg_alarm_store_outbox_due(f->s, now + 1000, 0, it, 8, &n, &next), 0);
	assert_int_equal(n, 0);
	/* PostgreSQL: at most a second away (other collectors' rows) */
	assert_int_equal(next, f->e->kind == VG_DB_POSTGRESQL ? now + 2000 : now + 5000);
	assert_int_equal(vg_alarm_store_outbox_due(f->s, now + 5000, 0, it, 8, &n, &next), 0);
	assert_int_equal(n, 1);
	assert_string_equal(it[0].notice_id, "n2");
	assert_int_equal(it[0].attempts, 1);
	vg_alarm_outbox_item_release(&it[0]);
	/* a delivered mark is final: a late retry of the same row is a no-op */
	assert_int_equal(vg_alarm_store_outbox_retry(f->s, id1, 2, now, "late"), 0);
	assert_int_equal(vg_alarm_store_outbox_due(f->s, now + 5000, id2, it, 8, &n, &next), 0);
	assert_int_equal(n, 0);
}

/* Two handles (two collectors' delivery threads) on one PostgreSQL: a row
 * one has claimed is not handed to the other while the claim lasts, and
 * is after the lease ends (the first collector died). */
static void test_outbox_claims(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_alarm_store *s2;
	struct vg_alarm_outbox_item it[8];
	size_t n;
	int64_t next, now = 1800000000000LL;
	char err[512];

	if (f->e->kind != VG_DB_POSTGRESQL) {
		printf("# SKIP sqlite: one collector owns alarms.db, rows are not claimed\n");
		skip();
	}
	if (vg_alarm_store_open(f->where, &s2, err, sizeof(err)))
		fail_msg("%s", err);
	for (int i = 0; i < 4; i++) {
		char nid[16];
		snprintf(nid, sizeof(nid), "n%d", i);
		assert_int_equal(vg_alarm_store_outbox_add(f->s, nid, "a1", "acme", "http://x/",
							   "{}", now),
				 0);
	}
	assert_int_equal(vg_alarm_store_outbox_due(f->s, now, 0, it, 2, &n, &next), 0);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++)
		vg_alarm_outbox_item_release(&it[i]);
	assert_true(next <= now + 1000); /* read again soon */
	/* the other worker gets the two left */
	assert_int_equal(vg_alarm_store_outbox_due(s2, now, 0, it, 8, &n, &next), 0);
	assert_int_equal(n, 2);
	assert_string_equal(it[0].notice_id, "n2");
	assert_string_equal(it[1].notice_id, "n3");
	for (size_t i = 0; i < n; i++)
		vg_alarm_outbox_item_release(&it[i]);
	/* the first one's are still its own (renewed), and come back to it */
	assert_int_equal(vg_alarm_store_outbox_due(s2, now + 1000, 0, it, 8, &n, &next), 0);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++)
		vg_alarm_outbox_item_release(&it[i]);
	assert_int_equal(vg_alarm_store_outbox_due(f->s, now + 1000, 0, it, 8, &n, &next), 0);
	assert_int_equal(n, 2);
	assert_string_equal(it[0].notice_id, "n0");
	for (size_t i = 0; i < n; i++)
		vg_alarm_outbox_item_release(&it[i]);
	/* the first worker dies: after its lease, the second takes its rows */
	assert_int_equal(vg_alarm_store_outbox_due(s2, now + 1001 + VG_ALARM_OUTBOX_LEASE_MS, 0,
						   it, 8, &n, &next),
			 0);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++)
		vg_alarm_outbox_item_release(&it[i]);
	vg_alarm_store_close(s2);
}

/* ---- the notification feed between cluster nodes ---- */

struct feed_seen {
	int n;
	char bodies[8][32];
};

static int got_notice(void *ctx, int64_t seq, uint64_t xid, const char *project,
		      const char *body)
{
	struct feed_seen *fs = ctx;
	assert_true(xid > 0);
	assert_string_equal(project, "acme");
	if (fs->n < 8)
		snprintf(fs->bodies[fs->n], sizeof(fs->bodies[0]), "%s", body);
	fs->n++;
	return 0;
}

/* A row whose transaction commits after a later row's (its seq lower) is
 * still read by a reader that moved on from the xmin it asked before: the
 * feed's cursor is by transaction, not by seq (alarms/engine_own.c). */
static void test_notice_feed_by_transaction(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_alarm_store *b, *r;
	struct feed_seen fs = {0};
	uint64_t x0, x1;
	int64_t now = 1800000000000LL;
	char err[512];

	if (f->e->kind != VG_DB_POSTGRESQL) {
		printf("# SKIP sqlite: one collector, no feed between nodes\n");
		assert_int_equal(vg_alarm_store_notice_add(f->s, "n1", "acme", "{}", now), 0);
		skip();
	}
	if (vg_alarm_store_open(f->where, &b, err, sizeof(err)) ||
	    vg_alarm_store_open(f->where, &r, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(vg_alarm_store_notices_xmin(r, &x0), 0);
	/* node a's transaction takes the first seq and stays open */
	assert_int_equal(vg_alarm_store_begin(f->s), 0);
	assert_int_equal(vg_alarm_store_notice_add(f->s, "a", "acme", "{\"a\":1}", now), 0);
	/* node b's commits with the second */
	assert_int_equal(vg_alarm_store_notice_add(b, "b", "acme", "{\"b\":1}", now), 0);
	/* the reader's round: b's row; a's not committed, so xmin stays at
	 * or below a's transaction */
	assert_int_equal(vg_alarm_store_notices_xmin(r, &x1), 0);
	assert_int_equal(vg_alarm_store_notices_since(r, "r", x0, 0, 100, got_notice, &fs), 0);
	assert_int_equal(fs.n, 1);
	assert_string_equal(fs.bodies[0], "{\"b\":1}");
	/* a commits: the next round, from x1, reads it (and b's again,
	 * which the engine skips as published) */
	assert_int_equal(vg_alarm_store_commit(f->s), 0);
	fs.n = 0;
	assert_int_equal(vg_alarm_store_notices_since(r, "r", x1, 0, 100, got_notice, &fs), 0);
	assert_int_equal(fs.n, 2);
	assert_string_equal(fs.bodies[0], "{\"a\":1}");
	/* a node never reads its own rows */
	fs.n = 0;
	assert_int_equal(vg_alarm_store_notices_since(r, "a", x1, 0, 100, got_notice, &fs), 0);
	assert_int_equal(fs.n, 1);
	/* paging by seq */
	fs.n = 0;
	assert_int_equal(vg_alarm_store_notices_since(r, "r", x1, 0, 1, got_notice, &fs), 0);
	assert_int_equal(fs.n, 1);
	/* once both transactions ended, xmin passed them: nothing left */
	assert_int_equal(vg_alarm_store_notices_xmin(r, &x1), 0);
	fs.n = 0;
	assert_int_equal(vg_alarm_store_notices_since(r, "r", x1, 0, 100, got_notice, &fs), 0);
	assert_int_equal(fs.n, 0);
	/* pruning by the writer's time */
	assert_int_equal(vg_alarm_store_notices_prune(r, now + 1), 0);
	fs.n = 0;
	assert_int_equal(vg_alarm_store_notices_since(r, "r", x0, 0, 100, got_notice, &fs), 0);
	assert_int_equal(fs.n, 0);
	vg_alarm_store_close(b);
	vg_alarm_store_close(r);
}

/* ---- an alarms.db from before the state database layer ---- */

static void test_adopts_old_alarms_db(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_alarm_outbox_item it[4];
	char path[800], err[512];
	sqlite3 *db;
	size_t n;
	int64_t next;
	int nd = 0;

	if (f->e->kind != VG_DB_SQLITE) {
		printf("# SKIP postgresql: no file from before to adopt\n");
		skip();
	}
	vg_alarm_store_close(f->s);
	f->s = NULL;
	snprintf(path, sizeof(path), "%s/alarms.db", f->where);
	unlink(path);
	/* the old schema as the old code wrote it, with rows */
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "CREATE TABLE alarms (id TEXT PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL,"
				      " definition TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
				      "CREATE UNIQUE INDEX alarms_name ON alarms(project, name);"
				      "CREATE TABLE states (alarm_id TEXT NOT NULL, resource TEXT NOT NULL, state INTEGER NOT NULL,"
				      " since_ms INTEGER NOT NULL, clear_since_ms INTEGER NOT NULL DEFAULT 0,"
				      " alarm_periods INTEGER NOT NULL DEFAULT 0, reason TEXT, ring BLOB,"
				      " updated_ms INTEGER NOT NULL, PRIMARY KEY (alarm_id, resource));"
				      "CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT, alarm_id TEXT NOT NULL,"
				      " project TEXT NOT NULL, type TEXT NOT NULL, resource TEXT,"
				      " time_ms INTEGER NOT NULL, recorded_ms INTEGER NOT NULL, detail TEXT);"
				      "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, notice_id TEXT NOT NULL,"
				      " alarm_id TEXT NOT NULL, project TEXT NOT NULL, action TEXT NOT NULL,"
				      " body TEXT NOT NULL, created_ms INTEGER NOT NULL,"
				      " next_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
				      " state INTEGER NOT NULL DEFAULT 0, last_error TEXT, done_ms INTEGER);"
				      "INSERT INTO alarms VALUES('a1','acme','cpu','{\"x\":1}',1,1);"
				      "INSERT INTO history(alarm_id,project,type,time_ms,recorded_ms)"
				      " VALUES('a1','acme','creation',1,1),('a2','beta','creation',1,1),"
				      "('a1','acme','update',2,2);"
				      "INSERT INTO outbox(notice_id,alarm_id,project,action,body,created_ms,next_ms)"
				      " VALUES('old-1','a1','acme','http://x/','{}',10,10);"
				      "PRAGMA user_version = 1;",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	if (vg_alarm_store_open(f->where, &f->s, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(vg_alarm_store_load_defs(f->s, count_def, &nd), 0);
	assert_int_equal(nd, 1);
	assert_int_equal(vg_alarm_store_outbox_due(f->s, 100, 0, it, 4, &n, &next), 0);
	assert_int_equal(n, 1);
	assert_string_equal(it[0].notice_id, "old-1");
	vg_alarm_outbox_item_release(&it[0]);
	assert_int_equal(vg_alarm_store_outbox_retry(f->s, 1, 1, 200, "x"), 0); /* step 2's column */
	/* step 7: the rows before numbered per alarm, the next one after them */
	{
		struct vg_alarm_history_query hq = {.alarm_id = "a1", .start_ms = 0, .end_ms = 1000, .limit = 10};
		json_t *page;
		int64_t hn;
		assert_int_equal(vg_alarm_store_history_add(f->s, "a1", "acme", "update", NULL,
							    3, 3, "{}"),
				 0);
		assert_int_equal(vg_alarm_store_history(f->s, &hq, &page, &hn), 0);
		assert_int_equal(json_array_size(page), 3);
		for (int i = 0; i < 3; i++)
			assert_int_equal(json_integer_value(json_object_get(
						 json_array_get(page, (size_t)i), "seq")),
					 i + 1);
		json_decref(page);
	}
	/* and the old program still refuses the file: user_version moved on */
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 7); /* the latest step */
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* ---- two delivery workers, one outbox ---- */

#define NOTES 120

struct receiver {
	struct MHD_Daemon *d;
	uint16_t port;
	pthread_mutex_t lock;
	int count[NOTES];
	int other;
};

static enum MHD_Result on_req(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version,
			      const char *upload, size_t *upload_size, void **con)
{
	struct receiver *r = cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	const char *key;
	int k;

	if (!*con) {
		*con = (void *)1;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}
	key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
	pthread_mutex_lock(&r->lock);
	if (key && sscanf(key, "note-%d", &k) == 1 && k >= 0 && k < NOTES)
		r->count[k]++;
	else
		r->other++;
	pthread_mutex_unlock(&r->lock);
	resp = MHD_create_response_from_buffer(2, (void *)"ok", MHD_RESPMEM_PERSISTENT);
	ret = MHD_queue_response(c, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}

struct worker {
	struct vg_alarm_outbox *ob;
	int rounds, attempted, rc;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < w->rounds && !w->rc; i++) {
		int n = vg_alarm_outbox_run_once(w->ob, NULL);
		if (n < 0)
			w->rc = n;
		else
			w->attempted += n;
	}
	return NULL;
}

/* Two collectors' delivery threads over one PostgreSQL outbox, both
 * running while notifications arrive: every notification reaches the
 * receiver exactly once (same Idempotency-Key never twice), and both
 * workers took a share. */
static void test_two_workers_deliver_exactly_once(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_alarm_outbox_options o = {0};
	struct worker w[2] = {{0}};
	struct receiver rx = {0};
	pthread_t th[2];
	char err[512], action[64];
	int64_t now = vg_now_ms();

	if (f->e->kind != VG_DB_POSTGRESQL) {
		printf("# SKIP sqlite: one collector owns alarms.db (one delivery thread)\n");
		skip();
	}
	pthread_mutex_init(&rx.lock, NULL);
	rx.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
				on_req, &rx, MHD_OPTION_END);
	assert_non_null(rx.d);
	rx.port = MHD_get_daemon_info(rx.d, MHD_DAEMON_INFO_BIND_PORT)->port;
	snprintf(action, sizeof(action), "http://127.0.0.1:%u/hook", (unsigned)rx.port);
	o.data_dir = f->where;
	o.webhook_timeout_ms = 10000;
	/* these rows have no alarm definition, so their webhooks are fenced:
	 * the receiver on loopback is allowed by the operator's list */
	o.webhook_allow = "127.0.0.0/8";
	for (int k = 0; k < 2; k++)
		if (vg_alarm_outbox_open(&o, &w[k].ob, err, sizeof(err)))
			fail_msg("%s", err);
	/* notifications arrive in waves while both workers run */
	for (int wave = 0; wave < 6; wave++) {
		assert_int_equal(vg_alarm_store_begin(f->s), 0);
		for (int i = wave * NOTES / 6; i < (wave + 1) * NOTES / 6; i++) {
			char nid[32];
			snprintf(nid, sizeof(nid), "note-%d", i);
			assert_int_equal(vg_alarm_store_outbox_add(f->s, nid, "a1", "acme", action,
								   "{\"n\":1}", now),
					 0);
		}
		assert_int_equal(vg_alarm_store_commit(f->s), 0);
		for (int k = 0; k < 2; k++) {
			w[k].rounds = 3;
			assert_int_equal(pthread_create(&th[k], NULL, work, &w[k]), 0);
		}
		for (int k = 0; k < 2; k++)
			assert_int_equal(pthread_join(th[k], NULL), 0);
		for (int k = 0; k < 2; k++)
			if (w[k].rc)
				fail_msg("worker %d: %d", k, w[k].rc);
	}
	for (int k = 0; k < 2; k++)
		vg_alarm_outbox_close(w[k].ob);
	MHD_stop_daemon(rx.d);
	for (int i = 0; i < NOTES; i++)
		if (rx.count[i] != 1)
			fail_msg("note-%d delivered %d times", i, rx.count[i]);
	assert_int_equal(rx.other, 0);
	assert_int_equal(w[0].attempted + w[1].attempted, NOTES);
	printf("# worker shares: %d + %d\n", w[0].attempted, w[1].attempted);
	/* and the outbox says so */
	struct vg_alarm_outbox_item it[4];
	size_t n;
	int64_t next;
	assert_int_equal(vg_alarm_store_outbox_due(f->s, now + 86400000, 0, it, 4, &n, &next), 0);
	assert_int_equal(n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		DBE_BOTH(test_defs_and_states, setup, teardown),
		DBE_BOTH(test_step_log, setup, teardown),
		DBE_BOTH(test_group_members_and_open_values, setup, teardown),
		DBE_BOTH(test_history_pages_and_prune, setup, teardown),
		DBE_BOTH(test_history_seq_per_alarm, setup, teardown),
		DBE_BOTH(test_history_seq_pruned, setup, teardown),
		DBE_BOTH(test_history_two_writers, setup, teardown),
		DBE_BOTH(test_outbox_moves, setup, teardown),
		DBE_BOTH(test_outbox_claims, setup, teardown),
		DBE_BOTH(test_notice_feed_by_transaction, setup, teardown),
		DBE_BOTH(test_adopts_old_alarms_db, setup, teardown),
		DBE_BOTH(test_two_workers_deliver_exactly_once, setup, teardown),
	};
	return cmocka_run_group_tests(tests, dbe_group_setup, dbe_group_teardown);
}
