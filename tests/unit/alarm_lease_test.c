/*
 * alarm_lease_test.c — alarm ownership by leases (alarms/lease.c,
 * alarms/engine_own.c): rendezvous hashing spreads alarms evenly and moves
 * only a leaving node's alarms; on a PostgreSQL server this test starts,
 * two engines fed the same batches (as the metric stream does) decide for
 * an alarm only while they hold its lease, the new owner reloads the
 * state and replays what it kept without doubling a transition, and the
 * stale owner's decision is fenced out at its commit. Skipped with the
 * reason when the server cannot run here.
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

#include "vigie/alarm_engine.h"
#include "vigie/alarm_lease.h"
#include "vigie/batch.h"
#include "vigie/db.h"

#include "../support/db_engines.h"

#define T0 (1795000020000LL / 60000 * 60000)
#define MIN 60000LL

static int64_t g_now;
static int64_t fake_now(void)
{
	return g_now;
}

/* ---- rendezvous ------------------------------------------------------------ */

static void test_pick_spreads_and_moves_only_the_leavers(void **state)
{
	const char *three[] = {"node1", "node2", "node3"};
	const char *two[] = {"node1", "node3"};
	size_t count[3] = {0};
	char id[40];
	(void)state;

	for (int i = 0; i < 3000; i++) {
		size_t p, q;
		snprintf(id, sizeof(id), "alarm-%d", i);
		p = vg_alarm_lease_pick(id, three, 3);
		count[p]++;
		q = vg_alarm_lease_pick(id, two, 2);
		/* node2 leaves: only its alarms move */
		if (p != 1)
			assert_string_equal(two[q], three[p]);
		/* the same answer every time */
		assert_int_equal(vg_alarm_lease_pick(id, three, 3), p);
	}
	/* within 5 standard deviations of 1000 (sd ~ 26) */
	for (int k = 0; k < 3; k++)
		assert_true(count[k] > 870 && count[k] < 1130);
}

/* ---- two engines, one database ------------------------------------------------- */

struct node {
	struct vg_alarm_engine *e;
	struct vg_alarm_lease *l;
};

static void open_node(struct node *n, const char *url, const char *name)
{
	struct vg_alarm_engine_options o = {0};
	char err[256];

	o.data_dir = url;
	o.agent_interval_s = 10;
	o.now_ms = fake_now;
	if (vg_alarm_engine_open(&o, &n->e, err, sizeof(err)))
		fail_msg("engine open: %s", err);
	if (vg_alarm_lease_open(url, name, 60000, &n->l, err, sizeof(err)))
		fail_msg("lease open: %s", err);
	vg_alarm_engine_cluster(n->e, name);
}

static void round_(struct node *n, const char *const *live, size_t nlive)
{
	struct vg_alarm_lease_item *items = NULL;
	size_t ni = 0;

	assert_int_equal(vg_alarm_lease_round(n->l, live, nlive, &items, &ni), 0);
	vg_alarm_engine_own(n->e, items, ni);
	free(items);
}

static void feed(struct node *n, uint64_t seq, int64_t t, double v)
{
	struct vg_batch *b = vg_batch_new("h1", 1, seq, t);

	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, "vm1", "vm1", NULL, t));
	vg_batch_identity(b, "default", NULL, NULL);
	vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, v);
	g_now = t + 500;
	assert_int_equal(vg_alarm_engine_batch(n->e, b), 0);
	vg_batch_free(b);
}

/* minute m with value v to every engine in ns (the stream's effect) */
static void feed_all(struct node *ns, size_t n, int m, double v)
{
	for (size_t i = 0; i < n; i++)
		feed(&ns[i], (uint64_t)m + 1, T0 + m * MIN, v);
}

/* The alarm "cpu"'s state as this engine's API shows it. */
static const char *state_of(struct vg_alarm_engine *e)
{
	static char buf[32];
	json_t *o = NULL;

	assert_int_equal(vg_alarm_engine_get(e, "cpu", NULL, &o), 0);
	snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(o, "state")));
	json_decref(o);
	return buf;
}

static int64_t count(struct vg_db *db, const char *sql)
{
	struct vg_db_stmt *st;
	int64_t n = -1;

	assert_int_equal(vg_db_prepare(db, sql, &st), 0);
	if (vg_db_step(st) == 1)
		n = vg_db_column_int64(st, 0);
	vg_db_reset(st);
	return n;
}

#define TRANSITIONS "SELECT count(*) FROM vigie_alarms.history WHERE type = 'transition'"

static void test_takeover_replays_and_fences(void **state)
{
	struct node ns[2];
	const char *a_only[] = {"a"}, *b_only[] = {"b"};
	struct vg_alarm_engine_stats st;
	json_t *body, *out = NULL, *errors = NULL;
	struct vg_db *db;
	char url[700], err[256];
	(void)state;

	if (dbe_fresh(&DBE_PG, url, sizeof(url)) == 1)
		dbe_need(&DBE_PG);
	g_now = T0;
	open_node(&ns[0], url, "a");
	open_node(&ns[1], url, "b");
	assert_int_equal(vg_db_open(url, NULL, &db, err, sizeof(err)), 0);

	body = json_loads("{\"name\":\"cpu\",\"metric\":\"cpu.util\",\"resource\":"
			  "\"vm1\",\"period\":60,\"evaluation_periods\":1,"
			  "\"datapoints_to_alarm\":1,\"comparison\":\"gt\",\"threshold\":90}",
			  0, NULL);
	assert_int_equal(vg_alarm_engine_create(ns[0].e, body, NULL, &out, &errors), 0);
	json_decref(body);
	json_decref(out);

	/* a is the only live node: a holds the lease; b loads the
	 * definition it did not create and holds nothing */
	round_(&ns[0], a_only, 1);
	round_(&ns[1], a_only, 1);
	vg_alarm_engine_get_stats(ns[0].e, &st);
	assert_int_equal(st.owned, 1);
	vg_alarm_engine_get_stats(ns[1].e, &st);
	assert_int_equal(st.alarms, 1);
	assert_int_equal(st.owned, 0);

	/* both see every sample; only a decides: ok, then alarm */
	feed_all(ns, 2, 0, 50);
	feed_all(ns, 2, 1, 95);
	assert_int_equal(count(db, TRANSITIONS), 2);

	/* a stalls past its lease; b, seeing only itself, takes over: the
	 * stored state (alarm, the last datapoints) and b's kept periods,
	 * both already decided by a: nothing is decided twice */
	assert_int_equal(vg_db_exec(db, "UPDATE vigie_alarms.alarm_leases SET "
					"expires_at = now() - interval '1 second'"),
			 0);
	round_(&ns[1], b_only, 1);
	vg_alarm_engine_get_stats(ns[1].e, &st);
	assert_int_equal(st.owned, 1);
	assert_int_equal(st.takeovers, 1);
	assert_int_equal(count(db, TRANSITIONS), 2);

	/* the next period: a still believes it owns the alarm (no round
	 * since), decides alarm -> ok, and is fenced at its commit; b decides
	 * it once */
	feed_all(ns, 2, 2, 50);
	assert_int_equal(count(db, TRANSITIONS), 3);
	vg_alarm_engine_get_stats(ns[0].e, &st);
	assert_int_equal(st.fenced, 1);
	assert_int_equal(st.owned, 0);
	vg_alarm_engine_get_stats(ns[1].e, &st);
	assert_int_equal(st.transitions, 1);

	/* a, disowned by the fence, decides nothing more */
	feed(&ns[0], 4, T0 + 3 * MIN, 95);
	assert_int_equal(count(db, TRANSITIONS), 3);
	/* b decides it; a's API shows what b decided from a's next round on */
	feed(&ns[1], 4, T0 + 3 * MIN, 95);
	assert_int_equal(count(db, TRANSITIONS), 4);
	assert_string_equal(state_of(ns[0].e), "ok");
	round_(&ns[0], b_only, 1);
	assert_string_equal(state_of(ns[0].e), "alarm");

	vg_db_close(db);
	for (int i = 0; i < 2; i++) {
		vg_alarm_lease_close(ns[i].l);
		vg_alarm_engine_close(ns[i].e);
	}
}

/* b keeps the periods it does not decide; when a dies before deciding
 * one, b decides it at the takeover (none missed). */
static void test_kept_period_decided_at_takeover(void **state)
{
	struct node ns[2];
	const char *a_only[] = {"a"}, *b_only[] = {"b"};
	json_t *body, *out = NULL, *errors = NULL;
	struct vg_db *db;
	char url[700], err[256];
	(void)state;

	if (dbe_fresh(&DBE_PG, url, sizeof(url)) == 1)
		dbe_need(&DBE_PG);
	g_now = T0;
	open_node(&ns[0], url, "a");
	open_node(&ns[1], url, "b");
	assert_int_equal(vg_db_open(url, NULL, &db, err, sizeof(err)), 0);
	body = json_loads("{\"name\":\"cpu\",\"metric\":\"cpu.util\",\"resource\":"
			  "\"vm1\",\"period\":60,\"evaluation_periods\":1,"
			  "\"datapoints_to_alarm\":1,\"comparison\":\"gt\",\"threshold\":90}",
			  0, NULL);
	assert_int_equal(vg_alarm_engine_create(ns[0].e, body, NULL, &out, &errors), 0);
	json_decref(body);
	json_decref(out);
	round_(&ns[0], a_only, 1);
	round_(&ns[1], a_only, 1);
	feed_all(ns, 2, 0, 50);
	feed_all(ns, 2, 1, 50);
	assert_int_equal(count(db, TRANSITIONS), 1); /* insufficient -> ok */
	/* a dies (kill -9: no release) just before the breaching period
	 * reaches it; b got it through the stream */
	vg_alarm_engine_close(ns[0].e);
	feed(&ns[1], 3, T0 + 2 * MIN, 95);
	assert_int_equal(count(db, TRANSITIONS), 1);
	assert_int_equal(vg_db_exec(db, "UPDATE vigie_alarms.alarm_leases SET "
					"expires_at = now() - interval '1 second'"),
			 0);
	round_(&ns[1], b_only, 1);
	assert_int_equal(count(db, TRANSITIONS), 2); /* ok -> alarm, once */
	vg_db_close(db);
	vg_alarm_lease_close(ns[0].l);
	vg_alarm_lease_close(ns[1].l);
	vg_alarm_engine_close(ns[1].e);
}

/* A quiet state is not rewritten while it stays quiet (the owner writes
 * nothing for those periods), yet the new owner decides as the old one
 * would have: 20 of the 21 quiet minutes the owner skipped are past what
 * b kept (16 periods), and with missing data treated as breaching, taking
 * them as missing would fire at the takeover. */
static void test_takeover_after_quiet_run(void **state)
{
	struct node ns[2];
	const char *a_only[] = {"a"}, *b_only[] = {"b"};
	struct vg_alarm_engine_stats s0, s1;
	json_t *body, *out = NULL, *errors = NULL;
	struct vg_db *db;
	char url[700], err[256];
	(void)state;

	if (dbe_fresh(&DBE_PG, url, sizeof(url)) == 1)
		dbe_need(&DBE_PG);
	g_now = T0;
	open_node(&ns[0], url, "a");
	open_node(&ns[1], url, "b");
	assert_int_equal(vg_db_open(url, NULL, &db, err, sizeof(err)), 0);
	body = json_loads("{\"name\":\"cpu\",\"metric\":\"cpu.util\",\"resource\":"
			  "\"vm1\",\"period\":60,\"evaluation_periods\":20,"
			  "\"datapoints_to_alarm\":2,\"comparison\":\"gt\",\"threshold\":90,"
			  "\"missing_data\":\"breaching\"}",
			  0, NULL);
	if (vg_alarm_engine_create(ns[0].e, body, NULL, &out, &errors)) {
		char *t = errors ? json_dumps(errors, 0) : NULL;
		fail_msg("create: %s", t ? t : "");
	}
	json_decref(body);
	json_decref(out);
	round_(&ns[0], a_only, 1);
	round_(&ns[1], a_only, 1);
	/* 20 good minutes: alarm while the missing ones (counted as
	 * breaching) are 2 or more, ok from the 19th, quiet from the 20th */
	for (int m = 0; m < 20; m++)
		feed_all(ns, 2, m, 10);
	vg_alarm_engine_get_stats(ns[0].e, &s0);
	for (int m = 20; m < 40; m++)
		feed_all(ns, 2, m, 10);
	vg_alarm_engine_get_stats(ns[0].e, &s1);
	assert_int_equal(s1.evaluations - s0.evaluations, 20);
	assert_int_equal(s1.state_writes - s0.state_writes, 0);
	int64_t before = count(db, TRANSITIONS);
	assert_string_equal(state_of(ns[0].e), "ok");

	/* a dies (kill -9: no release); b takes over, replays what it kept */
	vg_alarm_engine_close(ns[0].e);
	assert_int_equal(vg_db_exec(db, "UPDATE vigie_alarms.alarm_leases SET "
					"expires_at = now() - interval '1 second'"),
			 0);
	round_(&ns[1], b_only, 1);
	assert_int_equal(count(db, TRANSITIONS), before);
	assert_string_equal(state_of(ns[1].e), "ok");
	/* one breaching minute is 1 of 20: ok; the second is 2: alarm, once */
	feed(&ns[1], 41, T0 + 40 * MIN, 95);
	assert_int_equal(count(db, TRANSITIONS), before);
	feed(&ns[1], 42, T0 + 41 * MIN, 95);
	assert_int_equal(count(db, TRANSITIONS), before + 1);
	assert_string_equal(state_of(ns[1].e), "alarm");
	vg_db_close(db);
	vg_alarm_lease_close(ns[0].l);
	vg_alarm_lease_close(ns[1].l);
	vg_alarm_engine_close(ns[1].e);
}

/* A definition changed or deleted on one collector reaches the others at
 * their next round. */
static void test_changes_elsewhere_reach_every_node(void **state)
{
	struct node ns[2];
	const char *a_only[] = {"a"};
	json_t *body, *out = NULL, *errors = NULL;
	char url[700];
	(void)state;

	if (dbe_fresh(&DBE_PG, url, sizeof(url)) == 1)
		dbe_need(&DBE_PG);
	g_now = T0;
	open_node(&ns[0], url, "a");
	open_node(&ns[1], url, "b");
	body = json_loads("{\"name\":\"cpu\",\"metric\":\"cpu.util\",\"resource\":"
			  "\"vm1\",\"comparison\":\"gt\",\"threshold\":90}",
			  0, NULL);
	assert_int_equal(vg_alarm_engine_create(ns[0].e, body, NULL, &out, &errors), 0);
	json_decref(body);
	json_decref(out);
	round_(&ns[1], a_only, 1);
	assert_int_equal(vg_alarm_engine_get(ns[1].e, "cpu", NULL, &out), 0);
	assert_true(json_number_value(json_object_get(out, "threshold")) == 90);
	json_decref(out);

	g_now = T0 + 5 * MIN;
	body = json_loads("{\"threshold\":95}", 0, NULL);
	assert_int_equal(vg_alarm_engine_update(ns[0].e, "cpu", body, 1, NULL, &out, &errors), 0);
	json_decref(body);
	json_decref(out);
	round_(&ns[1], a_only, 1);
	assert_int_equal(vg_alarm_engine_get(ns[1].e, "cpu", NULL, &out), 0);
	assert_true(json_number_value(json_object_get(out, "threshold")) == 95);
	json_decref(out);

	assert_int_equal(vg_alarm_engine_delete(ns[0].e, "cpu", NULL, &errors), 0);
	round_(&ns[1], a_only, 1);
	assert_int_equal(vg_alarm_engine_get(ns[1].e, "cpu", NULL, &out), -ENOENT);
	for (int i = 0; i < 2; i++) {
		vg_alarm_lease_close(ns[i].l);
		vg_alarm_engine_close(ns[i].e);
	}
}

/* A composite alarm owned by one node, naming an alarm another node
 * owns: the owner of the composite learns the other's transition at its
 * round and decides the composite once. */
static void test_composite_over_another_owner(void **state)
{
	struct node ns[2];
	const char *a_only[] = {"a"}, *b_only[] = {"b"};
	json_t *body, *out = NULL, *errors = NULL;
	struct vg_db *db;
	char url[700], err[256], sql[256];
	const char *comp_id;
	(void)state;

	if (dbe_fresh(&DBE_PG, url, sizeof(url)) == 1)
		dbe_need(&DBE_PG);
	g_now = T0;
	open_node(&ns[0], url, "a");
	open_node(&ns[1], url, "b");
	assert_int_equal(vg_db_open(url, NULL, &db, err, sizeof(err)), 0);
	body = json_loads("{\"name\":\"cpu\",\"metric\":\"cpu.util\",\"resource\":"
			  "\"vm1\",\"period\":60,\"evaluation_periods\":1,"
			  "\"datapoints_to_alarm\":1,\"comparison\":\"gt\",\"threshold\":90}",
			  0, NULL);
	assert_int_equal(vg_alarm_engine_create(ns[0].e, body, NULL, &out, &errors), 0);
	json_decref(body);
	json_decref(out);
	body = json_loads("{\"name\":\"comp\",\"type\":\"composite\",\"rule\":\"cpu\"}",
			  0, NULL);
	assert_int_equal(vg_alarm_engine_create(ns[0].e, body, NULL, &out, &errors), 0);
	json_decref(body);
	comp_id = json_string_value(json_object_get(out, "id"));
	/* a owns cpu, b owns comp */
	round_(&ns[0], a_only, 1);
	snprintf(sql, sizeof(sql), "UPDATE vigie_alarms.alarm_leases SET owner = 'b' "
				   "WHERE alarm_id = '%s'",
		 comp_id);
	assert_int_equal(vg_db_exec(db, sql), 0);
	json_decref(out);
	round_(&ns[1], b_only, 1);
	round_(&ns[0], a_only, 1);

	feed_all(ns, 2, 0, 50);
	feed_all(ns, 2, 1, 95); /* cpu: ok, then alarm, decided by a */
	assert_int_equal(count(db, "SELECT count(*) FROM vigie_alarms.history h JOIN "
				   "vigie_alarms.alarms a ON a.id = h.alarm_id WHERE "
				   "a.name = 'cpu' AND h.type = 'transition'"),
			 2);
	round_(&ns[1], b_only, 1);
	round_(&ns[0], a_only, 1);
	/* comp followed cpu once, on b only */
	assert_int_equal(count(db, "SELECT count(*) FROM vigie_alarms.history h JOIN "
				   "vigie_alarms.alarms a ON a.id = h.alarm_id WHERE "
				   "a.name = 'comp' AND h.type = 'transition' AND "
				   "h.detail LIKE '%\"current\":\"alarm\"%'"),
			 1);
	vg_db_close(db);
	for (int i = 0; i < 2; i++) {
		vg_alarm_lease_close(ns[i].l);
		vg_alarm_engine_close(ns[i].e);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pick_spreads_and_moves_only_the_leavers),
		cmocka_unit_test(test_takeover_replays_and_fences),
		cmocka_unit_test(test_kept_period_decided_at_takeover),
		cmocka_unit_test(test_takeover_after_quiet_run),
		cmocka_unit_test(test_changes_elsewhere_reach_every_node),
		cmocka_unit_test(test_composite_over_another_owner),
	};
	int rc;

	if (dbe_group_setup(NULL))
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	dbe_group_teardown(NULL);
	return rc;
}
