/*
 * alarm_lease_test.c — alarm ownership by leases (alarms/lease.c,
 * alarms/engine_own.c): rendezvous hashing spreads alarms evenly and moves
 * only a leaving node's alarms; on a PostgreSQL server this test starts,
 * two engines fed the same batches (as the metric stream does) decide for
 * an alarm only while they hold its lease, the new owner reloads the
 * state and replays what it kept without doubling a transition, and the
 * stale owner's decision is fenced out at its commit; a group alarm's
 * cooldown and open period carry over to the new owner. Skipped with the
 * reason when the server cannot run here.
 *
 * And an outage of the state database: the server is stopped and started
 * again, every lease and heartbeat expired as after two leases away, and
 * each node's first answered round lists it alone. No alarm changes
 * owner (a node used to take its peers' expired leases there, and they
 * came back a round later); a node that stays dead loses its alarms one
 * lease after the return (on the leases' hold clock, injected), within
 * 2 x lease with the registry round's third of a lease. And a takeover
 * whose read of the previous owner's pending window is the first call on
 * the new owner's engine connection after the server's restart (it went
 * on from its own window), or finds the server gone: it goes on from the
 * stored window, at once or at the next round.
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

/* The leases' own clock (the hold after an outage), moved by the tests. */
#define LEASE_MS 60000
static int64_t g_mono = 1000000;
static int64_t fake_mono(void)
{
	return g_mono;
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
	if (vg_alarm_lease_open(url, name, LEASE_MS, &n->l, err, sizeof(err)))
		fail_msg("lease open: %s", err);
	vg_alarm_lease_set_clock(n->l, fake_mono);
	vg_alarm_engine_cluster(n->e, name);
}

/* A round's live nodes: a alone, b alone. */
static const char *const a_only[] = {"a"}, *const b_only[] = {"b"};

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

/* A fresh database, nodes "a", "b"... opened on it, a connection to read
 * it, and (json not NULL) an alarm created on the first node. */
struct cluster {
	struct node ns[3];
	size_t n;
	struct vg_db *db;
	char url[700];
};

/* vm1's cpu above 90 % for one one-minute period */
#define CPU_VM1                                                                         \
	"{\"name\":\"cpu\",\"metric\":\"cpu.util\",\"resource\":\"vm1\",\"period\":60," \
	"\"evaluation_periods\":1,\"datapoints_to_alarm\":1,\"comparison\":\"gt\","     \
	"\"threshold\":90}"

static json_t *create_on(struct node *n, const char *json)
{
	json_t *body = json_loads(json, 0, NULL), *out = NULL, *errors = NULL;

	assert_non_null(body);
	assert_int_equal(vg_alarm_engine_create(n->e, body, NULL, &out, &errors), 0);
	json_decref(body);
	return out;
}

static void cluster_start(struct cluster *c, size_t n, const char *json)
{
	static const char *const names[] = {"a", "b", "c"};
	char err[256];

	memset(c, 0, sizeof(*c));
	if (dbe_fresh(&DBE_PG, c->url, sizeof(c->url)) == 1)
		dbe_need(&DBE_PG);
	g_now = T0;
	c->n = n;
	for (size_t i = 0; i < n; i++)
		open_node(&c->ns[i], c->url, names[i]);
	assert_int_equal(vg_db_open(c->url, NULL, &c->db, err, sizeof(err)), 0);
	if (json)
		json_decref(create_on(&c->ns[0], json));
}

/* cluster_start, then a round on every node that sees a alone: a owns
 * every alarm, the others know it. */
static void cluster_start_on_a(struct cluster *c, size_t n, const char *json)
{
	cluster_start(c, n, json);
	for (size_t i = 0; i < n; i++)
		round_(&c->ns[i], a_only, 1);
}

/* Node i dies (kill -9: no release), and every lease is expired, as one
 * lease later. */
static void cluster_kill(struct cluster *c, size_t i)
{
	vg_alarm_engine_close(c->ns[i].e);
	c->ns[i].e = NULL;
	assert_int_equal(vg_db_exec(c->db, "UPDATE vigie_alarms.alarm_leases SET "
					   "expires_at = now() - interval '1 second'"),
			 0);
}

static void cluster_stop(struct cluster *c)
{
	vg_db_close(c->db);
	for (size_t i = 0; i < c->n; i++) {
		vg_alarm_lease_close(c->ns[i].l);
		vg_alarm_engine_close(c->ns[i].e);
	}
}

static void test_takeover_replays_and_fences(void **state)
{
	struct cluster c;
	struct node *ns = c.ns;
	struct vg_alarm_engine_stats st;
	struct vg_db *db;
	(void)state;

	/* a is the only live node: a holds the lease; b loads the
	 * definition it did not create and holds nothing */
	cluster_start_on_a(&c, 2, CPU_VM1);
	db = c.db;
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
	cluster_stop(&c);
}

/* b keeps the periods it does not decide; when a dies before deciding
 * one, b decides it at the takeover (none missed). */
static void test_kept_period_decided_at_takeover(void **state)
{
	struct cluster c;
	struct node *ns = c.ns;
	struct vg_db *db;
	(void)state;

	cluster_start_on_a(&c, 2, CPU_VM1);
	db = c.db;
	feed_all(ns, 2, 0, 50);
	feed_all(ns, 2, 1, 50);
	assert_int_equal(count(db, TRANSITIONS), 1); /* insufficient -> ok */
	/* a dies (kill -9: no release) just before the breaching period
	 * reaches it; b got it through the stream */
	cluster_kill(&c, 0);
	feed(&ns[1], 3, T0 + 2 * MIN, 95);
	assert_int_equal(count(db, TRANSITIONS), 1);
	round_(&ns[1], b_only, 1);
	assert_int_equal(count(db, TRANSITIONS), 2); /* ok -> alarm, once */
	cluster_stop(&c);
}

/* A quiet state is not rewritten while it stays quiet (the owner writes
 * nothing for those periods), yet the new owner decides as the old one
 * would have: 20 of the 21 quiet minutes the owner skipped are past what
 * b kept (16 periods), and with missing data treated as breaching, taking
 * them as missing would fire at the takeover. */
static void test_takeover_after_quiet_run(void **state)
{
	struct cluster c;
	struct node *ns = c.ns;
	struct vg_alarm_engine_stats s0, s1;
	struct vg_db *db;
	(void)state;

	cluster_start_on_a(&c, 2,
			   "{\"name\":\"cpu\",\"metric\":\"cpu.util\",\"resource\":"
			   "\"vm1\",\"period\":60,\"evaluation_periods\":20,"
			   "\"datapoints_to_alarm\":2,\"comparison\":\"gt\",\"threshold\":90,"
			   "\"missing_data\":\"breaching\"}");
	db = c.db;
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
	cluster_kill(&c, 0);
	round_(&ns[1], b_only, 1);
	assert_int_equal(count(db, TRANSITIONS), before);
	assert_string_equal(state_of(ns[1].e), "ok");
	/* one breaching minute is 1 of 20: ok; the second is 2: alarm, once */
	feed(&ns[1], 41, T0 + 40 * MIN, 95);
	assert_int_equal(count(db, TRANSITIONS), before);
	feed(&ns[1], 42, T0 + 41 * MIN, 95);
	assert_int_equal(count(db, TRANSITIONS), before + 1);
	assert_string_equal(state_of(ns[1].e), "alarm");
	cluster_stop(&c);
}

/* The cluster run's sequence (tests/cluster/cluster_test.sh): a restarted
 * collector takes its host's batches back before the other collectors
 * are subscribed to its metric stream again, so the owner of the alarm
 * never gets three of the host's batches. The agent numbered them: the
 * owner sees its sequence skip and leaves those periods out instead of
 * deciding them as missing data (alarm -> insufficient_data -> alarm: two
 * transitions and a second notification the data does not make). A host
 * that really went silent sends on with the next number, and its silence
 * is still missing data. */
static void test_batches_lost_between_collectors_are_not_missing(void **state)
{
	struct cluster c;
	struct node *ns = c.ns;
	struct vg_alarm_engine_stats st;
	(void)state;

	cluster_start_on_a(&c, 2, CPU_VM1);
	feed_all(ns, 2, 0, 95);
	feed_all(ns, 2, 1, 95);
	assert_int_equal(count(c.db, TRANSITIONS), 1); /* insufficient -> alarm */
	/* a dies; b takes over; the batches of minutes 2-4 (seqs 3-5) went
	 * to a collector whose stream b did not get them from */
	cluster_kill(&c, 0);
	round_(&ns[1], b_only, 1);
	feed(&ns[1], 6, T0 + 5 * MIN, 95);
	assert_int_equal(count(c.db, TRANSITIONS), 1);
	assert_string_equal(state_of(ns[1].e), "alarm");
	vg_alarm_engine_get_stats(ns[1].e, &st);
	assert_int_equal(st.unseen_periods, 3);
	/* the host silent for minutes 6-8, then its next batch (seq 7):
	 * missing data, decided as such: alarm -> insufficient_data -> alarm */
	feed(&ns[1], 7, T0 + 9 * MIN, 95);
	assert_int_equal(count(c.db, TRANSITIONS), 3);
	assert_string_equal(state_of(ns[1].e), "alarm");
	vg_alarm_engine_get_stats(ns[1].e, &st);
	assert_int_equal(st.unseen_periods, 3);
	cluster_stop(&c);
}

/* A definition changed or deleted on one collector reaches the others at
 * their next round. */
static void test_changes_elsewhere_reach_every_node(void **state)
{
	struct cluster c;
	struct node *ns = c.ns;
	json_t *body, *out = NULL, *errors = NULL;
	(void)state;

	cluster_start(&c, 2, CPU_VM1);
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
	cluster_stop(&c);
}

/* A composite alarm owned by one node, naming an alarm another node
 * owns: the owner of the composite learns the other's transition at its
 * round and decides the composite once. */
static void test_composite_over_another_owner(void **state)
{
	struct cluster c;
	struct node *ns = c.ns;
	json_t *out;
	struct vg_db *db;
	char sql[256];
	const char *comp_id;
	(void)state;

	cluster_start(&c, 2, CPU_VM1);
	db = c.db;
	out = create_on(&ns[0], "{\"name\":\"comp\",\"type\":\"composite\",\"rule\":\"cpu\"}");
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
	cluster_stop(&c);
}

/* ---- group alarms across a takeover ------------------------------------------------ */

/* The web group's average cpu above 70 % for one one-minute period; the
 * action repeated every period while it lasts, at most every five
 * minutes (the autoscaling pattern of docs/alarms.md). */
#define WEB_GROUP                                                                        \
	"{\"name\":\"cpu\",\"metric\":\"cpu.util\",\"selector\":{\"type\":\"instance\"," \
	"\"metadata\":{\"metering.server_group\":\"web\"}},\"group\":{\"statistic\":"    \
	"\"average\"},\"period\":60,\"evaluation_periods\":1,\"datapoints_to_alarm\":1," \
	"\"comparison\":\"gt\",\"threshold\":70,\"repeat_every\":1,\"cooldown\":300,"    \
	"\"actions\":{\"alarm\":[\"http://127.0.0.1:9/scale\"]}}"

#define ACTIONS "SELECT count(*) FROM vigie_alarms.outbox"

/* Member vm of the web group reports v five seconds into minute m. */
static void gfeed(struct node *n, const char *vm, int m, double v)
{
	static uint64_t seq;
	int64_t t = T0 + m * MIN + 5000;
	struct vg_batch *b = vg_batch_new("h1", 1, ++seq, t);

	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, vm, vm, NULL, t));
	vg_batch_identity(b, "default", NULL, "m1.small");
	assert_int_equal(vg_batch_attr(b, "metering.server_group", "web"), 0);
	vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, v);
	g_now = t + 500;
	assert_int_equal(vg_alarm_engine_batch(n->e, b), 0);
	vg_batch_free(b);
}

/* Minute m of vm1..vm3 (values v[]; members from..to-1) to the live
 * nodes of c. */
static void gminute(struct cluster *c, int m, const double v[3], int from, int to)
{
	static const char *const vms[] = {"vm1", "vm2", "vm3"};

	for (int k = from; k < to; k++)
		for (size_t i = 0; i < c->n; i++)
			if (c->ns[i].e)
				gfeed(&c->ns[i], vms[k], m, v[k]);
}

/* The members' cpu in a calm minute (the group's average 50 %) and in a
 * hot one (80 %: above the threshold). */
static const double calm[3] = {50, 50, 50}, hot[3] = {90, 80, 70};

/* The web group's alarm on n fresh nodes (a, b), owned by a in every
 * node's view, after two calm minutes (0 and 1) of every member. */
static void group_start(struct cluster *c, size_t n)
{
	cluster_start_on_a(c, n, WEB_GROUP);
	gminute(c, 0, calm, 0, 3);
	gminute(c, 1, calm, 0, 3);
}

/* The k-th action's notification (oldest first), new reference. */
static json_t *action(struct vg_db *db, int k)
{
	struct vg_db_stmt *st;
	json_t *j = NULL;
	int i = 0;

	assert_int_equal(vg_db_prepare(db, "SELECT body FROM vigie_alarms.outbox ORDER BY id",
				       &st),
			 0);
	while (vg_db_step(st) == 1)
		if (i++ == k)
			j = json_loads(vg_db_column_text(st, 0), 0, NULL);
	vg_db_reset(st);
	assert_non_null(j);
	return j;
}

static double group_field(json_t *body, const char *key)
{
	return json_number_value(
		json_object_get(json_object_get(json_object_get(body, "reason_data"), "group"),
				key));
}

/* The k-th action (oldest first) is stamped minute m (the end of minute
 * m - 1) and says the group's average was 80 % over 3 of `members`
 * ("members", "reported"). */
static void assert_action(struct vg_db *db, int k, int m, const char *members)
{
	json_t *j = action(db, k);

	assert_int_equal(json_integer_value(json_object_get(j, "timestamp_ms")), T0 + m * MIN);
	assert_true(group_field(j, "value") == 80);
	assert_true(group_field(j, members) == 3);
	json_decref(j);
}

/* a acts at the end of minute 2 and dies in the middle of minute 4; b,
 * which saw every sample, takes over: the repeats inside the cooldown
 * stay held back (the decided period 4 included), and the next action is
 * at the end of minute 7, exactly five minutes after the first. */
static void test_group_cooldown_across_takeover(void **state)
{
	struct cluster c;
	(void)state;

	group_start(&c, 2);
	assert_int_equal(count(c.db, ACTIONS), 0);
	gminute(&c, 2, hot, 0, 3);
	assert_int_equal(count(c.db, ACTIONS), 1);
	gminute(&c, 3, hot, 0, 3);
	gminute(&c, 4, hot, 0, 2);
	cluster_kill(&c, 0);
	gminute(&c, 4, hot, 2, 3); /* b closes the period a never decided */
	round_(&c.ns[1], b_only, 1);
	for (int m = 5; m <= 6; m++)
		gminute(&c, m, hot, 0, 3);
	assert_int_equal(count(c.db, ACTIONS), 1);
	gminute(&c, 7, hot, 0, 3);
	assert_int_equal(count(c.db, ACTIONS), 2);
	gminute(&c, 8, hot, 0, 3);
	assert_int_equal(count(c.db, ACTIONS), 2);
	assert_action(c.db, 1, 8, "members");
	/* periods 3, 4, 5, 6 and 8 held back, each recorded once */
	assert_int_equal(count(c.db, "SELECT count(*) FROM vigie_alarms.history WHERE "
				     "type = 'cooldown'"),
			 5);
	cluster_stop(&c);
}

/* a dies when two of the three members reported minute 2; b starts
 * afterwards (it never saw them) and takes over: the period is decided
 * from the two stored values and the third member's, as a would have. */
static void test_group_open_period_across_takeover(void **state)
{
	struct cluster c;
	(void)state;

	group_start(&c, 1);
	gminute(&c, 2, hot, 0, 2);
	cluster_kill(&c, 0);
	open_node(&c.ns[1], c.url, "b");
	c.n = 2;
	round_(&c.ns[1], b_only, 1);
	gminute(&c, 2, hot, 2, 3);
	gminute(&c, 3, hot, 0, 3);
	assert_int_equal(count(c.db, ACTIONS), 1);
	assert_action(c.db, 0, 3, "reported");
	cluster_stop(&c);
}

/* ---- an outage of the state database ------------------------------------------ */

static const char *const both[] = {"a", "b"};

/* One of n's rounds as the composition root runs it: the engine owns what
 * the round says, or nothing when it failed. The round's rc. */
static int node_round(struct node *n, const char *const *live, size_t nlive)
{
	struct vg_alarm_lease_item *items = NULL;
	size_t ni = 0;
	int rc = vg_alarm_lease_round(n->l, live, nlive, &items, &ni);

	if (rc)
		vg_alarm_engine_disown_all(n->e);
	else
		vg_alarm_engine_own(n->e, items, ni);
	free(items);
	return rc;
}

/* "alarm=owner,..." of every lease row, into out. */
static void owners(struct vg_db *db, char *out, size_t len)
{
	struct vg_db_stmt *st;

	out[0] = '\0';
	assert_int_equal(vg_db_prepare(db, "SELECT alarm_id, owner FROM "
					   "vigie_alarms.alarm_leases ORDER BY alarm_id",
				       &st),
			 0);
	while (vg_db_step(st) == 1) {
		size_t k = strlen(out);
		snprintf(out + k, len - k, "%s=%s,", vg_db_column_text(st, 0),
			 vg_db_column_text(st, 1));
	}
	vg_db_reset(st);
}

static int64_t owned_by(struct vg_db *db, const char *node)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM vigie_alarms.alarm_leases "
				   "WHERE owner = '%s' AND expires_at > now()",
		 node);
	return count(db, sql);
}

#define NALARMS 16

/* Two nodes, NALARMS alarms spread over them by rounds that list both;
 * the spread into before. */
static void spread_start(struct cluster *c, char *before, size_t len)
{
	char json[256];

	cluster_start(c, 2, NULL);
	for (int i = 0; i < NALARMS; i++) {
		snprintf(json, sizeof(json),
			 "{\"name\":\"cpu%d\",\"metric\":\"cpu.util\",\"resource\":"
			 "\"vm1\",\"period\":60,\"comparison\":\"gt\",\"threshold\":90}",
			 i);
		json_decref(create_on(&c->ns[0], json));
	}
	for (int r = 0; r < 2; r++) /* a claims, b claims, a hands over */
		for (size_t i = 0; i < 2; i++)
			assert_int_equal(node_round(&c->ns[i], both, 2), 0);
	owners(c->db, before, len);
	/* both hold some (all 16 on one node: one chance in 32,768) */
	assert_true(owned_by(c->db, "a") > 0 && owned_by(c->db, "b") > 0);
	assert_int_equal(owned_by(c->db, "a") + owned_by(c->db, "b"), NALARMS);
}

/* The database goes away (a's round fails; b's registry round does, so
 * its lease round is not run), for two leases; it comes back with every
 * lease and heartbeat expired, as they are after that long. */
static void outage(struct cluster *c)
{
	const char *expire = "UPDATE vigie_alarms.alarm_leases SET expires_at = "
			     "now() - interval '1 second'";

	/* the server runs with synchronous_commit off: made durable first */
	assert_int_equal(vg_db_exec(c->db, "CHECKPOINT"), 0);
	hpg_stop(&dbe_pg);
	assert_true(node_round(&c->ns[0], both, 2) < 0);
	vg_alarm_lease_unreachable(c->ns[1].l);
	vg_alarm_engine_disown_all(c->ns[1].e);
	g_mono += 2 * LEASE_MS;
	assert_int_equal(hpg_start_again(&dbe_pg), 0);
	/* the test's own connection: its first call after the restart fails */
	if (vg_db_exec(c->db, expire))
		assert_int_equal(vg_db_exec(c->db, expire), 0);
}

static void test_outage_longer_than_lease_moves_nothing(void **state)
{
	struct cluster c;
	struct vg_alarm_engine_stats sa, sb;
	struct vg_alarm_lease_stats la, lb;
	char before[4096], after[4096];
	(void)state;

	spread_start(&c, before, sizeof(before));
	outage(&c);
	/* each node's first answered round lists it alone (the other's
	 * heartbeat not renewed yet): each keeps its own, takes nothing */
	assert_int_equal(node_round(&c.ns[0], a_only, 1), 0);
	owners(c.db, after, sizeof(after));
	assert_string_equal(after, before);
	assert_int_equal(node_round(&c.ns[1], b_only, 1), 0);
	owners(c.db, after, sizeof(after));
	assert_string_equal(after, before);
	/* the next rounds see both; past the hold too: the same spread */
	for (int r = 0; r < 4; r++) {
		g_mono += LEASE_MS / 3;
		assert_int_equal(node_round(&c.ns[0], both, 2), 0);
		assert_int_equal(node_round(&c.ns[1], both, 2), 0);
		owners(c.db, after, sizeof(after));
		assert_string_equal(after, before);
	}
	vg_alarm_lease_get_stats(c.ns[0].l, &la);
	vg_alarm_lease_get_stats(c.ns[1].l, &lb);
	assert_int_equal(la.taken + lb.taken, 0);
	assert_true(la.held_back > 0);
	vg_alarm_engine_get_stats(c.ns[0].e, &sa);
	vg_alarm_engine_get_stats(c.ns[1].e, &sb);
	assert_int_equal(sa.owned + sb.owned, NALARMS);
	assert_int_equal(sa.owned, owned_by(c.db, "a"));
	assert_int_equal(sa.leases_taken + sb.leases_taken, 0);
	cluster_stop(&c);
}

static void test_node_dead_across_outage_taken_within_two_leases(void **state)
{
	struct cluster c;
	struct vg_alarm_engine_stats sa;
	char before[4096], after[4096];
	int64_t of_b, back;
	(void)state;

	spread_start(&c, before, sizeof(before));
	of_b = owned_by(c.db, "b");
	outage(&c); /* b never comes back */
	back = g_mono;
	/* a's rounds list a alone; b's alarms stay b's through the hold */
	for (;;) {
		assert_int_equal(node_round(&c.ns[0], a_only, 1), 0);
		if (owned_by(c.db, "a") > NALARMS - of_b)
			break;
		owners(c.db, after, sizeof(after));
		assert_string_equal(after, before);
		assert_true(g_mono - back < LEASE_MS);
		g_mono += LEASE_MS / 3;
	}
	/* taken at the first round a lease after a's first answered one,
	 * all at once; with the third of a lease that round may come after
	 * the database is back, within 2 x lease */
	assert_true(g_mono - back >= LEASE_MS);
	assert_true(g_mono - back + LEASE_MS / 3 <= 2 * LEASE_MS);
	assert_int_equal(owned_by(c.db, "a"), NALARMS);
	vg_alarm_engine_get_stats(c.ns[0].e, &sa);
	assert_int_equal(sa.owned, NALARMS);
	assert_int_equal(sa.leases_taken, of_b);
	cluster_stop(&c);
}

/* ---- a takeover right after a restart of the state database --------------- */

/* vm1's cpu above 90 % for three one-minute periods of three */
#define CPU_3_OF_3                                                                      \
	"{\"name\":\"cpu\",\"metric\":\"cpu.util\",\"resource\":\"vm1\",\"period\":60," \
	"\"evaluation_periods\":3,\"datapoints_to_alarm\":3,\"comparison\":\"gt\","     \
	"\"threshold\":90}"

/* The server comes back after a stop; the test's own connection makes
 * its first call (which fails) now. */
static void pg_back(struct cluster *c)
{
	assert_int_equal(hpg_start_again(&dbe_pg), 0);
	if (vg_db_exec(c->db, "SELECT 1"))
		assert_int_equal(vg_db_exec(c->db, "SELECT 1"), 0);
}

/* b owns the 3-of-3 alarm and has stored a pending window: five calm
 * minutes both nodes saw, then two breaching ones that only b got (a's
 * subscription to b's stream was down), so a's own window is five calm
 * minutes. a's last round before what follows runs at the same clock as
 * the test's next round of a (nothing else of a's is due to call its
 * store then), more than a minute after the alarm's last transition (a's
 * view of b's alarm is not read again). Then b dies. The transitions
 * recorded so far are returned. */
static int64_t pending_on_b(struct cluster *c)
{
	struct node *ns = c->ns;

	cluster_start(c, 2, NULL);
	json_decref(create_on(&ns[1], CPU_3_OF_3));
	round_(&ns[1], b_only, 1);
	round_(&ns[0], b_only, 1);
	for (int m = 0; m < 5; m++)
		feed_all(ns, 2, m, 50);
	round_(&ns[0], b_only, 1);
	feed(&ns[1], 6, T0 + 5 * MIN, 95);
	feed(&ns[1], 7, T0 + 6 * MIN, 95);
	assert_string_equal(state_of(ns[1].e), "ok");
	round_(&ns[0], b_only, 1);
	assert_string_equal(state_of(ns[0].e), "ok");
	cluster_kill(c, 1);
	return count(c->db, TRANSITIONS);
}

/* The third breach to a, which now owns the alarm: with b's window, 3 of
 * 3, the alarm fires, once; a's own window (1 of 3) would not. */
static void third_breach_fires_once(struct cluster *c, int64_t before)
{
	feed(&c->ns[0], 8, T0 + 7 * MIN, 95);
	assert_string_equal(state_of(c->ns[0].e), "alarm");
	assert_int_equal(count(c->db, TRANSITIONS), before + 1);
	feed(&c->ns[0], 9, T0 + 8 * MIN, 95);
	assert_int_equal(count(c->db, TRANSITIONS), before + 1);
}

/* PostgreSQL restarts; a's next round takes b's lease, and reading b's
 * stored state is the first call on a's engine connection since the
 * restart: it fails as a restarted server's first call does, is made
 * again, and a goes on from b's window, not from its own. */
static void test_takeover_is_the_first_call_after_a_restart(void **state)
{
	struct cluster c;
	struct vg_alarm_engine_stats st;
	int64_t before;
	(void)state;

	before = pending_on_b(&c);
	assert_int_equal(vg_db_exec(c.db, "CHECKPOINT"), 0);
	hpg_stop(&dbe_pg);
	pg_back(&c);
	round_(&c.ns[0], a_only, 1);
	vg_alarm_engine_get_stats(c.ns[0].e, &st);
	assert_int_equal(st.owned, 1);
	assert_int_equal(st.takeovers, 1);
	assert_int_equal(count(c.db, TRANSITIONS), before);
	third_breach_fires_once(&c, before);
	cluster_stop(&c);
}

/* The server goes away between a's lease round and the takeover, so b's
 * stored state cannot be read even the second time: a holds the lease
 * but does not evaluate the alarm yet; the period it closes meanwhile is
 * kept, and decided from b's window at the next round, once. */
static void test_takeover_waits_for_the_stored_state(void **state)
{
	struct cluster c;
	struct vg_alarm_engine_stats st;
	struct vg_alarm_lease_item *items = NULL;
	size_t ni = 0;
	int64_t before;
	(void)state;

	before = pending_on_b(&c);
	assert_int_equal(vg_alarm_lease_round(c.ns[0].l, a_only, 1, &items, &ni), 0);
	assert_int_equal(vg_db_exec(c.db, "CHECKPOINT"), 0);
	hpg_stop(&dbe_pg);
	vg_alarm_engine_own(c.ns[0].e, items, ni);
	free(items);
	vg_alarm_engine_get_stats(c.ns[0].e, &st);
	assert_int_equal(st.owned, 0);
	assert_int_equal(st.takeovers, 0);
	pg_back(&c);
	feed(&c.ns[0], 8, T0 + 7 * MIN, 95);
	assert_int_equal(count(c.db, TRANSITIONS), before);
	round_(&c.ns[0], a_only, 1);
	vg_alarm_engine_get_stats(c.ns[0].e, &st);
	assert_int_equal(st.owned, 1);
	assert_int_equal(st.takeovers, 1);
	assert_string_equal(state_of(c.ns[0].e), "alarm");
	assert_int_equal(count(c.db, TRANSITIONS), before + 1);
	feed(&c.ns[0], 9, T0 + 8 * MIN, 95);
	assert_int_equal(count(c.db, TRANSITIONS), before + 1);
	cluster_stop(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pick_spreads_and_moves_only_the_leavers),
		cmocka_unit_test(test_takeover_replays_and_fences),
		cmocka_unit_test(test_kept_period_decided_at_takeover),
		cmocka_unit_test(test_takeover_after_quiet_run),
		cmocka_unit_test(test_batches_lost_between_collectors_are_not_missing),
		cmocka_unit_test(test_changes_elsewhere_reach_every_node),
		cmocka_unit_test(test_composite_over_another_owner),
		cmocka_unit_test(test_group_cooldown_across_takeover),
		cmocka_unit_test(test_group_open_period_across_takeover),
		cmocka_unit_test(test_outage_longer_than_lease_moves_nothing),
		cmocka_unit_test(test_node_dead_across_outage_taken_within_two_leases),
		cmocka_unit_test(test_takeover_is_the_first_call_after_a_restart),
		cmocka_unit_test(test_takeover_waits_for_the_stored_state),
	};
	int rc;

	if (dbe_group_setup(NULL))
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	dbe_group_teardown(NULL);
	return rc;
}
