/*
 * alarm_engine_test.c — the alarm engine end to end in one process:
 * batches in (synthetic sample time), states, reasons, history, SSE hub
 * events, selectors (resources joining and leaving), composites, missing
 * data from the timer, counters as rates, restart persistence and replay,
 * API validation errors, and the webhook outbox against a real HTTP
 * receiver on loopback (libmicrohttpd), including a "crash" between
 * enqueue and delivery and retries with back-off.
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <microhttpd.h>
#include <sqlite3.h>

#include "vigie/alarm_engine.h"
#include "alarms/notice.h"
#include "vigie/alarm_outbox.h"
#include "vigie/alarm_store.h"
#include "vigie/alarm_stream.h"
#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/log.h"

#define T0 1795000020000LL /* 2026-11-18T..., not on a minute: aligned below */
#define MIN 60000LL

static int64_t g_now;
/* While set, every read of the clock calls g_on_clock, which says 1 once
 * it is done (then it is cleared): a test stalls the thread there. */
static int (*g_on_clock)(void);
static int64_t fake_now(void)
{
	if (g_on_clock && g_on_clock())
		g_on_clock = NULL;
	return g_now;
}

struct fixture {
	char dir[64];
	struct vg_alarm_hub *hub;
	struct vg_alarm_engine *e;
	uint64_t seq;
};

/* alarm_engine_pg_test.c runs every case again with the store in a fresh
 * PostgreSQL database: g_fresh_url makes one per case into g_url. */
static int (*g_fresh_url)(char *url, size_t len);
static char g_url[700];

/* Where the engine keeps its state: this case's directory or database. */
static const char *store_where(const struct fixture *f)
{
	return g_fresh_url ? g_url : f->dir;
}

static int g_deliver; /* start the delivery thread */
/* Generous: a loopback receiver that answers is never timed out, however
 * loaded the machine; the cases that want a timeout set their own. */
static int64_t g_hook_timeout_ms = 30000;
static const char *g_allow;            /* [alarms] webhook_allow */
static double g_agent_interval_s = 10; /* [agent] interval */

static void open_engine(struct fixture *f)
{
	struct vg_alarm_engine_options o = {0};
	char err[256];

	o.deliver = g_deliver;
	o.data_dir = store_where(f);
	o.agent_interval_s = g_agent_interval_s;
	o.hub = f->hub;
	o.now_ms = fake_now;
	o.retry_initial_ms = 1000;
	o.retry_max_ms = 8000;
	o.webhook_timeout_ms = g_hook_timeout_ms;
	o.webhook_allow = g_allow;
	if (vg_alarm_engine_open(&o, &f->e, err, sizeof(err)))
		fail_msg("engine open: %s", err);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/vigie-alarm-test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	if (g_fresh_url && g_fresh_url(g_url, sizeof(g_url)))
		return -1;
	assert_int_equal(vg_alarm_hub_new(64, 0, &f->hub), 0);
	g_now = T0 / MIN * MIN;
	g_deliver = 0;
	g_on_clock = NULL;
	g_hook_timeout_ms = 30000;
	g_allow = NULL;
	g_agent_interval_s = 10;
	open_engine(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	vg_alarm_engine_close(f->e);
	vg_alarm_hub_free(f->hub);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* ---- helpers ----------------------------------------------------------------- */

static json_t *create(struct fixture *f, const char *json)
{
	json_t *body = json_loads(json, 0, NULL), *out = NULL, *errors = NULL;
	int rc;

	assert_non_null(body);
	rc = vg_alarm_engine_create(f->e, body, NULL, &out, &errors);
	if (rc) {
		char *t = errors ? json_dumps(errors, 0) : NULL;
		fail_msg("create failed %d: %s", rc, t ? t : "");
	}
	json_decref(body);
	return out;
}

/* One batch from host "h1" with one resource and one sample. */
static void send1(struct fixture *f, const char *host, int rtype,
		  const char *id, const char *flavor, int64_t t,
		  const char *metric, int kind, double v)
{
	struct vg_batch *b = vg_batch_new(host, 1, ++f->seq, t);

	assert_non_null(vg_batch_resource(b, (uint8_t)rtype, id, id, NULL, t));
	vg_batch_identity(b, "default", NULL, flavor);
	if (metric)
		vg_batch_sample(b, metric, (uint8_t)kind, v);
	g_now = t + 500; /* arrives half a second later */
	assert_int_equal(vg_alarm_engine_batch(f->e, b), 0);
	vg_batch_free(b);
}

static void ended(struct fixture *f, const char *id, int64_t t)
{
	struct vg_batch *b = vg_batch_new("h1", 1, ++f->seq, t);
	struct vg_resource *r = vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, t);

	r->state = VG_RSTATE_ENDED;
	vg_batch_identity(b, "default", NULL, NULL);
	assert_int_equal(vg_alarm_engine_batch(f->e, b), 0);
	vg_batch_free(b);
}

static const char *state_of(struct fixture *f, const char *ref, char *buf)
{
	json_t *o = NULL;

	assert_int_equal(vg_alarm_engine_get(f->e, ref, NULL, &o), 0);
	snprintf(buf, 32, "%s", json_string_value(json_object_get(o, "state")));
	json_decref(o);
	return buf;
}

static json_t *history(struct fixture *f, const char *ref, const char *type)
{
	struct vg_alarm_history_query q = {0};
	json_t *out = NULL;
	int64_t next;

	q.start_ms = 0;
	q.end_ms = INT64_MAX;
	q.type = type;
	q.limit = 1000;
	assert_int_equal(vg_alarm_engine_history(f->e, ref, NULL, &q, &out, &next), 0);
	return out;
}

/* Whether the JSON text of j contains needle. */
static int json_has(const json_t *j, const char *needle)
{
	char *t = json_dumps(j, 0);
	int found = t && strstr(t, needle);

	free(t);
	return found;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_threshold_transition_reason_history_sse(void **state)
{
	struct fixture *f = *state;
	struct vg_alarm_sub *sub;
	char buf[8192], st[32];
	int64_t t = g_now;
	ssize_t n;

	json_decref(create(f, "{\"name\":\"cpu-high\",\"metric\":\"cpu.util\","
			      "\"resource\":\"vm1\",\"comparison\":\"gt\","
			      "\"threshold\":90,\"evaluation_periods\":3,"
			      "\"actions\":{\"alarm\":[\"log://\"]}}"));
	assert_int_equal(vg_alarm_hub_subscribe(f->hub, "default", 0, NULL, NULL,
						g_now, &sub),
			 0);
	/* one sample a minute (interval = period: each closes on arrival) */
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t, "cpu.util", VG_KIND_GAUGE, 50);
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + MIN, "cpu.util", VG_KIND_GAUGE, 91.2);
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + 2 * MIN, "cpu.util", VG_KIND_GAUGE, 94.0);
	assert_string_equal(state_of(f, "cpu-high", st), "ok");
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + 3 * MIN, "cpu.util", VG_KIND_GAUGE, 97.5);
	/* the sample that completes the third breaching period decides */
	assert_string_equal(state_of(f, "cpu-high", st), "alarm");

	json_t *o = NULL;
	vg_alarm_engine_get(f->e, "cpu-high", NULL, &o);
	assert_string_equal(json_string_value(json_object_get(o, "state_reason")),
			    "3 out of the last 3 datapoints [91.2, 94.0, 97.5] were "
			    "greater than the threshold (90.0)");
	json_decref(o);

	json_t *h = history(f, "cpu-high", "transition");
	assert_int_equal(json_array_size(h), 2); /* insufficient->ok, ok->alarm */
	json_t *last = json_array_get(h, 1);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(last, "detail"), "current")),
			    "alarm");
	assert_int_equal(json_integer_value(json_object_get(last, "time_ms")),
			 t + 4 * MIN); /* end of the deciding period */
	json_decref(h);
	h = history(f, "cpu-high", "creation");
	assert_int_equal(json_array_size(h), 1);
	json_decref(h);

	n = vg_alarm_hub_read(sub, buf, sizeof(buf) - 1, g_now);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "event: alarm"));
	assert_non_null(strstr(buf, "\"alarm_name\":\"cpu-high\""));
	assert_non_null(strstr(buf, "\"current\":\"alarm\""));
	assert_non_null(strstr(buf, "\"previous\":\"ok\""));
	assert_non_null(strstr(buf, "\"datapoints\":[{"));
	assert_non_null(strstr(buf, "\"idempotency_id\":"));
	vg_alarm_hub_unsubscribe(sub);

	/* a re-sent batch (same time) changes nothing */
	struct vg_alarm_engine_stats s1, s2;
	vg_alarm_engine_get_stats(f->e, &s1);
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + 3 * MIN, "cpu.util", VG_KIND_GAUGE, 10);
	vg_alarm_engine_get_stats(f->e, &s2);
	assert_int_equal(s2.samples_duplicate, s1.samples_duplicate + 1);
	assert_int_equal(s2.transitions, s1.transitions);
	assert_string_equal(state_of(f, "cpu-high", st), "alarm");
}

static void test_selector_join_leave(void **state)
{
	struct fixture *f = *state;
	int64_t t = g_now;
	json_t *o;

	json_decref(create(f, "{\"name\":\"small-busy\",\"metric\":\"cpu.util\","
			      "\"selector\":{\"type\":\"instance\",\"flavor\":\"m1.small\"},"
			      "\"comparison\":\"ge\",\"threshold\":80}"));
	send1(f, "h1", VG_RT_INSTANCE, "vm1", "m1.small", t, "cpu.util", VG_KIND_GAUGE, 85);
	send1(f, "h1", VG_RT_INSTANCE, "vm2", "m1.small", t, "cpu.util", VG_KIND_GAUGE, 10);
	send1(f, "h1", VG_RT_INSTANCE, "vm3", "m1.large", t, "cpu.util", VG_KIND_GAUGE, 99);
	send1(f, "h1", VG_RT_INSTANCE, "vm1", "m1.small", t + MIN, "cpu.util", VG_KIND_GAUGE, 85);
	send1(f, "h1", VG_RT_INSTANCE, "vm2", "m1.small", t + MIN, "cpu.util", VG_KIND_GAUGE, 10);
	send1(f, "h1", VG_RT_INSTANCE, "vm3", "m1.large", t + MIN, "cpu.util", VG_KIND_GAUGE, 99);
	assert_int_equal(vg_alarm_engine_get(f->e, "small-busy", NULL, &o), 0);
	json_t *insts = json_object_get(o, "instances");
	assert_int_equal(json_array_size(insts), 2); /* vm3 is not m1.small */
	assert_string_equal(json_string_value(json_object_get(o, "state")), "alarm");
	json_decref(o);
	/* vm1 (the one in alarm) ends: it leaves, the alarm turns ok */
	ended(f, "vm1", t + 2 * MIN);
	assert_int_equal(vg_alarm_engine_get(f->e, "small-busy", NULL, &o), 0);
	insts = json_object_get(o, "instances");
	assert_int_equal(json_array_size(insts), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(insts, 0),
							      "resource")),
			    "vm2");
	assert_string_equal(json_string_value(json_object_get(o, "state")), "ok");
	json_decref(o);
	json_t *h = history(f, "small-busy", "resource_left");
	assert_int_equal(json_array_size(h), 1);
	json_decref(h);
	h = history(f, "small-busy", "resource_joined");
	assert_int_equal(json_array_size(h), 2);
	json_decref(h);
	/* a new resource joins by itself */
	send1(f, "h1", VG_RT_INSTANCE, "vm4", "m1.small", t + 3 * MIN, "cpu.util", VG_KIND_GAUGE, 90);
	assert_int_equal(vg_alarm_engine_get(f->e, "small-busy", NULL, &o), 0);
	assert_int_equal(json_array_size(json_object_get(o, "instances")), 2);
	json_decref(o);
}

static void test_composite(void **state)
{
	struct fixture *f = *state;
	int64_t t = g_now;
	char st[32];

	json_decref(create(f, "{\"name\":\"cpu\",\"metric\":\"cpu.util\","
			      "\"resource\":\"vm1\",\"comparison\":\"gt\",\"threshold\":90}"));
	json_decref(create(f, "{\"name\":\"mem\",\"metric\":\"memory.free\","
			      "\"resource\":\"vm1\",\"comparison\":\"lt\",\"threshold\":100}"));
	json_decref(create(f, "{\"name\":\"both\",\"type\":\"composite\","
			      "\"rule\":\"ALARM(cpu) AND mem\"}"));
	assert_string_equal(state_of(f, "both", st), "insufficient_data");
	struct vg_batch *b;
	for (int i = 0; i < 3; i++) {
		int64_t ti = t + i * MIN;
		b = vg_batch_new("h1", 1, ++f->seq, ti);
		vg_batch_resource(b, VG_RT_INSTANCE, "vm1", "vm1", NULL, ti);
		vg_batch_identity(b, "default", NULL, NULL);
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 95);
		vg_batch_sample(b, "memory.free", VG_KIND_GAUGE, i < 2 ? 500 : 50);
		g_now = ti + 100;
		vg_alarm_engine_batch(f->e, b);
		vg_batch_free(b);
		/* each sample completes its own period (one a minute) */
		if (i == 0)
			assert_string_equal(state_of(f, "both", st), "insufficient_data");
		if (i == 1)
			assert_string_equal(state_of(f, "both", st), "ok");
	}
	assert_string_equal(state_of(f, "both", st), "alarm");
	json_t *h = history(f, "both", "transition");
	assert_int_equal(json_array_size(h), 2);
	json_decref(h);
	json_t *o = NULL;
	vg_alarm_engine_get(f->e, "both", NULL, &o);
	assert_non_null(strstr(json_string_value(json_object_get(o, "state_reason")),
			       "is true: cpu is alarm, mem is alarm"));
	json_decref(o);

	/* referential integrity */
	json_t *errors = NULL;
	assert_int_equal(vg_alarm_engine_delete(f->e, "cpu", NULL, &errors), -EBUSY);
	assert_true(json_has(errors, "both"));
	json_decref(errors);
	json_t *body = json_loads("{\"name\":\"loop\",\"type\":\"composite\","
				  "\"rule\":\"both OR nothere\"}",
				  0, NULL);
	assert_int_equal(vg_alarm_engine_create(f->e, body, NULL, &o, &errors), -EINVAL);
	assert_true(json_has(errors, "no alarm named 'nothere'"));
	json_decref(errors);
	json_decref(body);
	/* a cycle through an update is refused */
	json_decref(create(f, "{\"name\":\"c2\",\"type\":\"composite\",\"rule\":\"both\"}"));
	body = json_loads("{\"rule\":\"c2 OR cpu\"}", 0, NULL);
	assert_int_equal(vg_alarm_engine_update(f->e, "both", body, 1, NULL, &o, &errors),
			 -EINVAL);
	assert_true(json_has(errors, "cycle"));
	json_decref(errors);
	json_decref(body);
}

/* The alarm "gone": vm1's cpu.util above 90, its missing data breaching
 * (it alarms once vm1's last point leaves its range while the host's data
 * clock moves on). */
static void create_gone(struct fixture *f)
{
	json_decref(create(f, "{\"name\":\"gone\",\"metric\":\"cpu.util\","
			      "\"resource\":\"vm1\",\"comparison\":\"gt\",\"threshold\":90,"
			      "\"missing_data\":\"breaching\"}"));
}

static void test_missing_data_timer(void **state)
{
	struct fixture *f = *state;
	int64_t t = g_now;
	char st[32];

	create_gone(f);
	/* vm1 and the host report every minute, then vm1 goes silent while
	 * the host keeps reporting: its data clock moves on */
	for (int i = 0; i < 3; i++) {
		send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + i * MIN, "cpu.util",
		      VG_KIND_GAUGE, 10);
		send1(f, "h1", VG_RT_HOST, "h1", NULL, t + i * MIN, "host.load", VG_KIND_GAUGE, 1);
	}
	assert_string_equal(state_of(f, "gone", st), "ok");
	for (int i = 3; i < 8; i++) {
		send1(f, "h1", VG_RT_HOST, "h1", NULL, t + i * MIN, "host.load", VG_KIND_GAUGE, 1);
		vg_alarm_engine_tick(f->e, g_now);
	}
	/* range R = 3: once the last real point leaves it, breaching */
	assert_string_equal(state_of(f, "gone", st), "alarm");
	json_t *o = NULL;
	vg_alarm_engine_get(f->e, "gone", NULL, &o);
	assert_non_null(strstr(json_string_value(json_object_get(o, "state_reason")),
			       "missing data is treated as breaching"));
	json_decref(o);
}

static void test_counter_rate_and_percentile(void **state)
{
	struct fixture *f = *state;
	int64_t t = g_now;
	char st[32];

	/* cpu.time grows 0.5 s per 10 s = 0.05 s/s; alarm above 0.04 */
	json_decref(create(f, "{\"name\":\"rate\",\"metric\":\"cpu.time\","
			      "\"resource\":\"vm1\",\"comparison\":\"gt\",\"threshold\":0.04}"));
	json_decref(create(f, "{\"name\":\"p90\",\"metric\":\"lat\",\"statistic\":\"p90\","
			      "\"resource\":\"vm1\",\"comparison\":\"ge\",\"threshold\":9}"));
	for (int i = 0; i <= 12; i++) {
		struct vg_batch *b = vg_batch_new("h1", 1, ++f->seq, t + i * 10000);
		vg_batch_resource(b, VG_RT_INSTANCE, "vm1", "vm1", NULL, t + i * 10000);
		vg_batch_identity(b, "default", NULL, NULL);
		vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, 100 + 0.5 * i);
		vg_batch_sample(b, "lat", VG_KIND_GAUGE, i % 6 == 5 ? 10 : 1);
		g_now = t + i * 10000 + 10;
		vg_alarm_engine_batch(f->e, b);
		vg_batch_free(b);
	}
	assert_string_equal(state_of(f, "rate", st), "alarm");
	json_t *o = NULL;
	vg_alarm_engine_get(f->e, "rate", NULL, &o);
	assert_non_null(strstr(json_string_value(json_object_get(o, "state_reason")),
			       "[0.05]"));
	json_decref(o);
	/* per minute: five 1s and one 10: p90 interpolates to 5.5 -> ok */
	assert_string_equal(state_of(f, "p90", st), "ok");
}

static void test_restart_keeps_state_and_ignores_replay(void **state)
{
	struct fixture *f = *state;
	int64_t t = g_now;
	char st[32];
	struct vg_alarm_engine_stats s;

	json_decref(create(f, "{\"name\":\"r\",\"metric\":\"cpu.util\","
			      "\"resource\":\"vm1\",\"comparison\":\"gt\",\"threshold\":90,"
			      "\"evaluation_periods\":2}"));
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t, "cpu.util", VG_KIND_GAUGE, 95);
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + MIN, "cpu.util", VG_KIND_GAUGE, 95);
	assert_string_equal(state_of(f, "r", st), "alarm");
	vg_alarm_engine_close(f->e);
	open_engine(f);
	assert_string_equal(state_of(f, "r", st), "alarm");
	/* the agent re-sends what the old process saw: nothing is re-evaluated */
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + MIN, "cpu.util", VG_KIND_GAUGE, 10);
	vg_alarm_engine_get_stats(f->e, &s);
	assert_int_equal(s.transitions, 0);
	assert_string_equal(state_of(f, "r", st), "alarm");
	/* and the datapoints survived: one good period is not enough for 2 of 2
	 * to stop alarming... it is (only 1 of 2 breaching) -> ok */
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + 2 * MIN, "cpu.util", VG_KIND_GAUGE, 10);
	assert_string_equal(state_of(f, "r", st), "ok");
	json_t *o = NULL;
	vg_alarm_engine_get(f->e, "r", NULL, &o);
	assert_non_null(strstr(json_string_value(json_object_get(o, "state_reason")),
			       "[95.0, 10.0]"));
	json_decref(o);
}

/* One sample a minute with jitter: the second comes earlier in its minute
 * than the first (…:00.900, then …:01:00.100), so the measured interval
 * (59.2 s) predicts the next sample 0.7 s before the period ends. The
 * period must still close at its sample: it was left open, in memory only,
 * so a kill lost its decision and the transition came a minute late. */
static void test_jittered_sample_closes_its_period(void **state)
{
	struct fixture *f = *state;
	int64_t t = g_now;
	char st[32];

	json_decref(create(f, "{\"name\":\"j\",\"metric\":\"cpu.util\","
			      "\"resource\":\"vm1\",\"comparison\":\"gt\",\"threshold\":90}"));
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + 900, "cpu.util", VG_KIND_GAUGE, 10);
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + MIN + 100, "cpu.util",
	      VG_KIND_GAUGE, 95);
	assert_string_equal(state_of(f, "j", st), "alarm");
	/* decided and written: a restart (a kill) keeps it, at its time */
	vg_alarm_engine_close(f->e);
	open_engine(f);
	assert_string_equal(state_of(f, "j", st), "alarm");
	json_t *h = history(f, "j", "transition");
	assert_int_equal(json_array_size(h), 2); /* insufficient->ok, ok->alarm */
	assert_int_equal(json_integer_value(json_object_get(json_array_get(h, 1),
							    "time_ms")),
			 t + 2 * MIN);
	json_decref(h);
}

/* One sample a minute ([agent] interval 60), a restart, then one batch
 * only, the one whose sample flips the data, acknowledged, and a kill
 * before the next: the restarted series had no rhythm yet, so its first
 * sample left the period open, in memory only, and the kill lost the
 * acknowledged flip (crash_test: the transition a period late). The
 * configured interval stands for the rhythm until it is measured. */
static void test_first_sample_after_restart_closes_its_period(void **state)
{
	struct fixture *f = *state;
	int64_t t = g_now;
	char st[32];

	vg_alarm_engine_close(f->e);
	g_agent_interval_s = 60;
	open_engine(f);
	json_decref(create(f, "{\"name\":\"k\",\"metric\":\"cpu.util\","
			      "\"resource\":\"vm1\",\"comparison\":\"gt\",\"threshold\":50}"));
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + 620, "cpu.util", VG_KIND_GAUGE, 100);
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + MIN + 300, "cpu.util",
	      VG_KIND_GAUGE, 100);
	assert_string_equal(state_of(f, "k", st), "alarm");
	vg_alarm_engine_close(f->e); /* kill -9 after the acknowledgement */
	open_engine(f);
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + 2 * MIN + 18, "cpu.util",
	      VG_KIND_GAUGE, 0);
	assert_string_equal(state_of(f, "k", st), "ok");
	vg_alarm_engine_close(f->e); /* kill -9 before the next batch */
	open_engine(f);
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + 3 * MIN + 415, "cpu.util",
	      VG_KIND_GAUGE, 0);
	json_t *h = history(f, "k", "transition");
	/* insufficient->alarm at minute 0's end, alarm->ok at minute 2's */
	assert_int_equal(json_array_size(h), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(h, 1),
							    "time_ms")),
			 t + 3 * MIN);
	json_decref(h);
}

/* An evaluation that notifies nobody stores no reason text (the hot path
 * skips it); the text is rebuilt from the datapoints when read, also after
 * a restart. */
static void test_reason_rebuilt_after_restart(void **state)
{
	struct fixture *f = *state;
	int64_t t = g_now;
	char before[600], st[32];
	json_t *o = NULL;

	json_decref(create(f, "{\"name\":\"q\",\"metric\":\"cpu.util\","
			      "\"resource\":\"vm1\",\"comparison\":\"gt\",\"threshold\":90,"
			      "\"evaluation_periods\":3}"));
	/* breaching datapoints are not quiet steps: each of these
	 * evaluations writes its row (without text) */
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t, "cpu.util", VG_KIND_GAUGE, 10);
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + MIN, "cpu.util", VG_KIND_GAUGE, 95);
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + 2 * MIN, "cpu.util", VG_KIND_GAUGE, 96);
	assert_string_equal(state_of(f, "q", st), "ok"); /* one transition, then none */
	vg_alarm_engine_close(f->e);
	open_engine(f);
	assert_int_equal(vg_alarm_engine_get(f->e, "q", NULL, &o), 0);
	snprintf(before, sizeof(before), "%s",
		 json_string_value(json_object_get(o, "state_reason")));
	json_decref(o);
	assert_string_equal(before, "only 2 out of the last 3 datapoints [10.0, 95.0, "
				    "96.0] were greater than the threshold (90.0), 3 "
				    "needed for alarm");
}

/* A sample of a watched metric on a resource no alarm can bind (no
 * selector alarm on the metric, no single-resource alarm on the resource)
 * leaves nothing behind: neither its resource nor its series is made. */
static void test_unbindable_sample_skipped(void **state)
{
	struct fixture *f = *state;
	struct vg_alarm_engine_stats s;
	char st[32];

	json_decref(create(f, "{\"name\":\"one\",\"metric\":\"cpu.util\","
			      "\"resource\":\"vm1\",\"comparison\":\"gt\",\"threshold\":90}"));
	for (int i = 0; i < 3; i++)
		send1(f, "h1", VG_RT_INSTANCE, "vm2", NULL, g_now + MIN, "cpu.util",
		      VG_KIND_GAUGE, 95);
	vg_alarm_engine_get_stats(f->e, &s);
	assert_int_equal(s.series, 0);
	assert_int_equal(s.resources, 0);
	assert_int_equal(s.samples, 0);
	/* the alarm's own resource is still evaluated */
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, g_now + MIN, "cpu.util", VG_KIND_GAUGE, 95);
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, g_now + MIN, "cpu.util", VG_KIND_GAUGE, 95);
	vg_alarm_engine_get_stats(f->e, &s);
	assert_int_equal(s.series, 1);
	assert_string_equal(state_of(f, "one", st), "alarm");
}

/* ---- quiet states: not rewritten, restored exactly ---------------------------- */

/* One value per minute for the quiet-step cases: a long ok run, a
 * breaching datapoint that leaves M of N pending, an alarm held by
 * keep-firing-for, ok again and quiet for a long time, alarm, ok, and a
 * breaching datapoint followed by good ones (quiet steps after it). */
static const double quiet_vals[] = {
	10, 10, 10, 10, 10, 10, 10, 10, /* 0-7: ok from minute 0, quiet */
	95, 10,                         /* 8-9: 1 of the last 3 breaching */
	95, 95, 10,                     /* 10-12: 2 of 3: alarm */
	10, 10,                         /* 13-14: clear, held by keep-firing */
	10,                             /* 15: held 120 s: ok */
	10, 10, 10, 10, 10, 10, 10, 10, /* 16-23: ok, quiet from 16 on */
	95, 95,                         /* 24-25: alarm */
	10, 10, 10, 10, 10, 10,         /* 26-31: ok (29), quiet again */
	95, 10, 10, 10,                 /* 32-35: 1 of 3 breaching, then good */
};
#define QUIET_N (sizeof(quiet_vals) / sizeof(quiet_vals[0]))
#define QUIET_DEF                                                          \
	"{\"name\":\"qs\",\"metric\":\"cpu.util\",\"resource\":\"vm1\","   \
	"\"comparison\":\"gt\",\"threshold\":90,\"evaluation_periods\":3," \
	"\"datapoints_to_alarm\":2,\"keep_firing_for\":120}"

/* Where run k of a case keeps its state: a directory of its own, or a
 * fresh PostgreSQL database. g_log_max: the engine's log_max_entries. */
static unsigned g_log_max;
static void open_engine_run(struct fixture *f, char *where, size_t len, int k)
{
	struct vg_alarm_engine_options o = {0};
	char err[256];

	o.log_max_entries = g_log_max;
	if (k >= 0) {
		if (g_fresh_url) {
			assert_int_equal(g_fresh_url(where, len), 0);
		} else {
			snprintf(where, len, "%s/run%d", f->dir, k);
			assert_int_equal(mkdir(where, 0700), 0);
		}
	}
	o.data_dir = where;
	o.agent_interval_s = 10;
	o.hub = f->hub;
	o.now_ms = fake_now;
	if (vg_alarm_engine_open(&o, &f->e, err, sizeof(err)))
		fail_msg("engine open: %s", err);
}

/* The decisions alarm "qs" recorded: one line per transition or repeat,
 * "type time previous->current", in order. */
static void decisions(struct fixture *f, char *out, size_t len)
{
	json_t *h = history(f, "qs", NULL), *row;
	size_t i, n = 0;

	out[0] = '\0';
	json_array_foreach(h, i, row) {
		const char *type = json_string_value(json_object_get(row, "type"));
		json_t *d = json_object_get(row, "detail");
		if (strcmp(type, "transition") && strcmp(type, "repeat"))
			continue;
		n += (size_t)snprintf(out + n, len - n, "%s %lld %s->%s\n", type,
				      (long long)((json_integer_value(json_object_get(row, "time_ms")) - T0 / MIN * MIN) / MIN),
				      json_string_value(json_object_get(d, "previous")),
				      json_string_value(json_object_get(d, "current")));
		assert_true(n < len);
	}
	json_decref(h);
}

/* Feed minutes from..to-1 of quiet_vals; restart (close, open the same
 * store: what a kill -9 after the batch's acknowledgement leaves, the
 * queue being empty then) before every minute in restart_every > 0
 * steps, and, with resend, re-send the previous minute's batch after
 * each restart (an agent re-sends what it has no acknowledgement for). */
static void quiet_feed(struct fixture *f, char *where, size_t len, size_t from,
		       size_t to, int restart_every, int resend)
{
	int64_t t0 = T0 / MIN * MIN;

	for (size_t m = from; m < to; m++) {
		if (restart_every > 0 && m > 0 && m % (size_t)restart_every == 0) {
			vg_alarm_engine_close(f->e);
			open_engine_run(f, where, len, -1);
			if (resend)
				send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL,
				      t0 + (int64_t)(m - 1) * MIN, "cpu.util",
				      VG_KIND_GAUGE, quiet_vals[m - 1]);
		}
		send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t0 + (int64_t)m * MIN,
		      "cpu.util", VG_KIND_GAUGE, quiet_vals[m]);
	}
}

/* A restored engine decides as the uninterrupted one: restarts (with the
 * last batch re-sent) in the middle of a quiet run, with M of N pending,
 * with keep-firing holding the alarm, after a long quiet run, and before
 * every single minute. The quiet periods wrote no state row. */
static void test_quiet_states_restore_exactly(void **state)
{
	struct fixture *f = *state;
	char where[700], want[2048], got[2048];
	struct vg_alarm_engine_stats s0, s1;
	const size_t at[] = {3, 9, 10, 14, 15, 20, 24, 27, 34};

	/* the uninterrupted run, in this fixture's own engine */
	json_decref(create(f, QUIET_DEF));
	quiet_feed(f, NULL, 0, 0, 8, 0, 0);
	/* minute 8 breaches, 1 of the 2 needed: in alarms.db (a node's own
	 * file) a logged step, not a rewritten row (engine_queue.c); on a
	 * shared PostgreSQL store a row */
	vg_alarm_engine_get_stats(f->e, &s0);
	quiet_feed(f, NULL, 0, 8, 9, 0, 0);
	vg_alarm_engine_get_stats(f->e, &s1);
	assert_int_equal(s1.evaluations - s0.evaluations, 1);
	assert_int_equal(s1.state_writes - s0.state_writes, g_fresh_url ? 1 : 0);
	assert_int_equal(s1.logged_steps - s0.logged_steps, g_fresh_url ? 0 : 1);
	assert_int_equal(s1.log_entries, g_fresh_url ? 0 : 1);
	quiet_feed(f, NULL, 0, 9, 20, 0, 0);
	/* minutes 17-23 are quiet: nothing written for them */
	vg_alarm_engine_get_stats(f->e, &s0);
	quiet_feed(f, NULL, 0, 20, 24, 0, 0);
	vg_alarm_engine_get_stats(f->e, &s1);
	assert_int_equal(s1.evaluations - s0.evaluations, 4);
	assert_int_equal(s1.state_writes - s0.state_writes, 0);
	assert_int_equal(s1.quiet_evaluations - s0.quiet_evaluations, 4);
	quiet_feed(f, NULL, 0, 24, QUIET_N, 0, 0);
	decisions(f, want, sizeof(want));
	assert_string_equal(want, "transition 1 insufficient_data->ok\n"
				  "transition 11 ok->alarm\n"
				  "transition 16 alarm->ok\n"
				  "transition 26 ok->alarm\n"
				  "transition 30 alarm->ok\n");
	vg_alarm_engine_close(f->e);
	f->e = NULL;

	/* one restart at each of the chosen minutes, with and without the
	 * last batch re-sent */
	for (size_t i = 0; i < 2 * sizeof(at) / sizeof(at[0]); i++) {
		size_t k = at[i / 2];
		int resend = (int)(i % 2);
		open_engine_run(f, where, sizeof(where), (int)i);
		json_decref(create(f, QUIET_DEF));
		quiet_feed(f, where, sizeof(where), 0, k, 0, 0);
		quiet_feed(f, where, sizeof(where), k, k + 1, (int)k, resend);
		/* the log replayed at the open (before minute 9: minute
		 * 8's breach), then compacted at the first commit: at most
		 * the entry of minute k itself is left */
		vg_alarm_engine_get_stats(f->e, &s1);
		assert_true(s1.log_entries <= 1);
		if (k == 9 && !g_fresh_url)
			assert_int_equal(s1.log_replayed, 1);
		quiet_feed(f, where, sizeof(where), k + 1, QUIET_N, 0, 0);
		decisions(f, got, sizeof(got));
		if (strcmp(want, got))
			fail_msg("restart at minute %zu%s:\n%swanted\n%s", k,
				 resend ? " (re-sent)" : "", got, want);
		vg_alarm_engine_close(f->e);
		f->e = NULL;
	}
	/* a restart before every minute, each re-sending the minute before
	 * (without it no period would close: a restarted series closes its
	 * first period at its second sample, the interval unknown before) */
	open_engine_run(f, where, sizeof(where), 100);
	json_decref(create(f, QUIET_DEF));
	quiet_feed(f, where, sizeof(where), 0, QUIET_N, 1, 1);
	decisions(f, got, sizeof(got));
	assert_string_equal(got, want);
	vg_alarm_engine_close(f->e);
	f->e = NULL;
	/* a step log compacted whenever it holds one entry (its rows
	 * rewritten, the log cleared), with a restart every 3 minutes: the
	 * same decisions */
	g_log_max = 1;
	open_engine_run(f, where, sizeof(where), 101);
	json_decref(create(f, QUIET_DEF));
	quiet_feed(f, where, sizeof(where), 0, QUIET_N, 3, 1);
	g_log_max = 0;
	decisions(f, got, sizeof(got));
	assert_string_equal(got, want);
	vg_alarm_engine_get_stats(f->e, &s1);
	assert_true(s1.log_entries <= 1);
	/* teardown closes f->e */
}

/* A state row from before the step log (log_base 0, as alarms schema
 * step 6 leaves the rows it finds): no entry can follow it, so the next
 * breaching datapoint rewrites it, and a restart still counts it. */
static void test_step_log_after_upgrade(void **state)
{
	struct fixture *f = *state;
	char where[700], path[800], st[32];
	struct vg_alarm_engine_stats s0, s1;
	int64_t t0 = T0 / MIN * MIN;
	sqlite3 *db;

	if (g_fresh_url) {
		printf("# SKIP postgresql: a shared store has no step log\n");
		skip();
	}
	vg_alarm_engine_close(f->e);
	open_engine_run(f, where, sizeof(where), 0);
	json_decref(create(f, QUIET_DEF));
	quiet_feed(f, where, sizeof(where), 0, 8, 0, 0);
	vg_alarm_engine_close(f->e);
	snprintf(path, sizeof(path), "%s/alarms.db", where);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "UPDATE states SET log_base = 0", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	open_engine_run(f, where, sizeof(where), -1);
	vg_alarm_engine_get_stats(f->e, &s0);
	/* minute 7 re-sent (the series' rhythm), minute 8 breaches: 1 of
	 * the 2 needed */
	for (int m = 7; m <= 8; m++)
		send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t0 + m * MIN, "cpu.util",
		      VG_KIND_GAUGE, quiet_vals[m]);
	vg_alarm_engine_get_stats(f->e, &s1);
	assert_int_equal(s1.logged_steps - s0.logged_steps, 0);
	assert_int_equal(s1.state_writes - s0.state_writes, 1);
	vg_alarm_engine_close(f->e);
	open_engine_run(f, where, sizeof(where), -1);
	/* 9 good, 10 breaching: 2 of the last 3 with minute 8, which was
	 * acknowledged and is not re-sent (a restarted series closes its
	 * first period at its second sample: 9 at 10, then 10 at once) */
	for (int m = 9; m <= 10; m++)
		send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t0 + m * MIN, "cpu.util",
		      VG_KIND_GAUGE, quiet_vals[m]);
	assert_string_equal(state_of(f, "qs", st), "alarm");
}

/* A step log compacted at its bound: rows rewritten, the log cleared
 * (restarts across compactions: test_quiet_states_restore_exactly). */
static void test_step_log_compaction(void **state)
{
	struct fixture *f = *state;
	char where[700], st[32];
	struct vg_alarm_engine_stats s0, s1;
	int64_t t0 = T0 / MIN * MIN;

	if (g_fresh_url) {
		printf("# SKIP postgresql: a shared store has no step log\n");
		skip();
	}
	vg_alarm_engine_close(f->e);
	g_log_max = 2;
	open_engine_run(f, where, sizeof(where), 0);
	g_log_max = 0;
	json_decref(create(f, QUIET_DEF));
	/* ok, then a breach every third minute (1 of the 2 needed each
	 * time): a logged step each */
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t0, "cpu.util", VG_KIND_GAUGE, 10);
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t0 + MIN, "cpu.util", VG_KIND_GAUGE, 10);
	vg_alarm_engine_get_stats(f->e, &s0);
	for (int m = 2; m < 11; m++)
		send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t0 + m * MIN, "cpu.util",
		      VG_KIND_GAUGE, m % 3 == 2 ? 95 : 10);
	vg_alarm_engine_get_stats(f->e, &s1);
	assert_int_equal(s1.logged_steps - s0.logged_steps, 3);
	assert_int_equal(s1.log_compactions - s0.log_compactions, 1);
	assert_true(s1.log_entries < 2);
	assert_string_equal(state_of(f, "qs", st), "ok");
}

static void test_validation(void **state)
{
	struct fixture *f = *state;
	json_t *body, *out = NULL, *errors = NULL;
	char *t;

	body = json_loads("{\"name\":\"bad name\",\"metric\":\"m\",\"resource\":\"r\","
			  "\"comparison\":\"bigger\",\"threshold\":\"x\",\"period\":7,"
			  "\"evaluation_periods\":2,\"datapoints_to_alarm\":3,"
			  "\"statistic\":\"p101\",\"missing_data\":\"sometimes\","
			  "\"actions\":{\"alarm\":[\"ftp://x\",\"exec://rm\"]},"
			  "\"colour\":\"red\"}",
			  0, NULL);
	assert_int_equal(vg_alarm_engine_create(f->e, body, NULL, &out, &errors), -EINVAL);
	t = json_dumps(errors, 0);
	static const char *const fields[] = {
		"\"name\"", "\"comparison\"", "\"threshold\"", "\"period\"",
		"\"datapoints_to_alarm\"", "\"statistic\"", "\"missing_data\"",
		"\"actions.alarm[0]\"", "\"actions.alarm[1]\"", "\"colour\""};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (!strstr(t, fields[i]))
			fail_msg("no error for %s in %s", fields[i], t);
	assert_non_null(strstr(t, "multiple of the agent interval (10 s)"));
	assert_non_null(strstr(t, "no exec command named 'rm'"));
	free(t);
	json_decref(errors);
	json_decref(body);
	/* a tenant cannot create in another project */
	body = json_loads("{\"name\":\"x\",\"project\":\"other\",\"metric\":\"m\","
			  "\"resource\":\"r\",\"comparison\":\"gt\",\"threshold\":1}",
			  0, NULL);
	assert_int_equal(vg_alarm_engine_create(f->e, body, "mine", &out, &errors), -EINVAL);
	t = json_dumps(errors, 0);
	assert_non_null(strstr(t, "must be your own project 'mine'"));
	free(t);
	json_decref(errors);
	json_decref(body);
	/* duplicates by name within a project */
	json_decref(create(f, "{\"name\":\"dup\",\"metric\":\"m\",\"resource\":\"r\","
			      "\"comparison\":\"gt\",\"threshold\":1}"));
	body = json_loads("{\"name\":\"dup\",\"metric\":\"m\",\"resource\":\"r\","
			  "\"comparison\":\"gt\",\"threshold\":1}",
			  0, NULL);
	assert_int_equal(vg_alarm_engine_create(f->e, body, NULL, &out, &errors), -EEXIST);
	json_decref(errors);
	json_decref(body);
	/* tenants see only their project */
	assert_int_equal(vg_alarm_engine_get(f->e, "dup", "other", &out), -ENOENT);
}

/* An administrator pages through every project's alarms one at a time
 * and meets each exactly once, in order. The cursor "project/name" was
 * compared as one string: "shop-eu/x" < "shop/x" ('-' < '/'), so the
 * page after shop's skipped shop-eu's alarms, and with a project "a/b"
 * the next cursor named an alarm before the page and the pages looped. */
static void test_list_pages_across_projects(void **state)
{
	static const char *const projects[] = {"shop", "shop-eu", "shop.x", "a",
					       "a/b", "a/c", "b"};
	struct fixture *f = *state;
	struct vg_alarm_list_filter lf = {NULL, -1, -1, -1, NULL, NULL, 1};
	json_t *all, *page;
	char cursor[600] = "";
	size_t seen = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(projects) / sizeof(projects[0]); i++)
		for (int k = 1; k <= 2; k++) {
			char body[256];
			snprintf(body, sizeof(body),
				 "{\"name\":\"x%d\",\"project\":\"%s\",\"metric\":"
				 "\"cpu.util\",\"resource\":\"r\",\"comparison\":"
				 "\"gt\",\"threshold\":1}",
				 k, projects[i]);
			json_decref(create(f, body));
		}
	lf.limit = 1000;
	assert_int_equal(vg_alarm_engine_list(f->e, NULL, &lf, &all), 0);
	assert_int_equal(json_array_size(json_object_get(all, "alarms")), 14);
	lf.limit = 1;
	for (int guard = 0; guard < 30; guard++) {
		json_t *a, *next;
		lf.after = *cursor ? cursor : NULL;
		assert_int_equal(vg_alarm_engine_list(f->e, NULL, &lf, &page), 0);
		a = json_array_get(json_object_get(page, "alarms"), 0);
		if (!a) {
			json_decref(page);
			break;
		}
		json_t *want = json_array_get(json_object_get(all, "alarms"), seen);
		if (!want || strcmp(json_string_value(json_object_get(a, "id")),
				    json_string_value(json_object_get(want, "id"))))
			fail_msg("page %zu: %s/%s, want %s", seen,
				 json_string_value(json_object_get(a, "project")),
				 json_string_value(json_object_get(a, "name")),
				 want ? json_string_value(json_object_get(want, "project"))
				      : "(the end)");
		seen++;
		next = json_object_get(page, "next");
		if (json_is_string(next))
			snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
		else
			*cursor = '\0';
		json_decref(page);
		if (!*cursor)
			break;
	}
	assert_int_equal(seen, 14);
	json_decref(all);
}

/* The outbox has nothing pending: run_once said so (INT64_MAX). On a
 * shared PostgreSQL outbox it says "look again within a second" instead
 * (other collectors add rows, workers die: vigie/alarm_store.h), so ask
 * the store itself whether any row is still pending. */
static void assert_nothing_pending(struct fixture *f, int64_t next)
{
	struct vg_alarm_outbox_item it[1];
	struct vg_alarm_store *st;
	int64_t nx;
	size_t n;
	char err[256];

	if (!g_fresh_url) {
		assert_int_equal(next, INT64_MAX);
		return;
	}
	assert_true(next <= g_now + 1000);
	assert_int_equal(vg_alarm_store_open(store_where(f), &st, err, sizeof(err)), 0);
	assert_int_equal(vg_alarm_store_outbox_due(st, INT64_MAX / 2, 0, it, 1, &n, &nx), 0);
	assert_int_equal(n, 0);
	vg_alarm_store_close(st);
}

/* ---- a webhook receiver on loopback --------------------------------------------- */

#define MAX_KEYS 2048

struct receiver {
	struct MHD_Daemon *d;
	uint16_t port;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int hold;    /* keep every request unanswered until released */
	int holding; /* requests waiting for the release now */
	int status;  /* what to answer */
	int requests, ok;
	char keys[MAX_KEYS][40]; /* Idempotency-Key of each 2xx, in order */
	int nkeys;
	char last_key[64], first_key[64];
	char last_body[8192];
};

struct req {
	char body[8192];
	size_t len;
};

static enum MHD_Result on_req(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version,
			      const char *upload, size_t *upload_size, void **con)
{
	struct receiver *r = cls;
	struct req *q = *con;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	const char *key;
	int status;

	if (!q) {
		*con = calloc(1, sizeof(struct req));
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;
		if (q->len + n < sizeof(q->body)) {
			memcpy(q->body + q->len, upload, n);
			q->len += n;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
	pthread_mutex_lock(&r->lock);
	r->holding++;
	while (r->hold)
		pthread_cond_wait(&r->cond, &r->lock);
	r->holding--;
	r->requests++;
	status = r->status;
	if (status / 100 == 2) {
		r->ok++;
		if (r->nkeys < MAX_KEYS)
			snprintf(r->keys[r->nkeys++], sizeof(r->keys[0]), "%s",
				 key ? key : "");
	}
	snprintf(r->last_key, sizeof(r->last_key), "%s", key ? key : "");
	if (!r->first_key[0])
		snprintf(r->first_key, sizeof(r->first_key), "%s", key ? key : "");
	snprintf(r->last_body, sizeof(r->last_body), "%.*s", (int)q->len, q->body);
	pthread_mutex_unlock(&r->lock);
	resp = MHD_create_response_from_buffer(2, (void *)"ok", MHD_RESPMEM_PERSISTENT);
	ret = MHD_queue_response(c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con,
		    enum MHD_RequestTerminationCode t)
{
	free(*con);
	*con = NULL;
}

/* hold: answer nothing until receiver_release (a thread per connection,
 * so a held request never stops the daemon accepting others). */
static void receiver_start_mode(struct receiver *r, int status, int hold)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->status = status;
	r->hold = hold;
	r->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
					(hold ? MHD_USE_THREAD_PER_CONNECTION : MHD_USE_AUTO),
				0, NULL, NULL, on_req, r, MHD_OPTION_NOTIFY_COMPLETED,
				on_done, NULL, MHD_OPTION_SOCK_ADDR, NULL, MHD_OPTION_END);
	assert_non_null(r->d);
	r->port = MHD_get_daemon_info(r->d, MHD_DAEMON_INFO_BIND_PORT)->port;
}

static void receiver_start(struct receiver *r, int status)
{
	receiver_start_mode(r, status, 0);
}

static void receiver_release(struct receiver *r)
{
	pthread_mutex_lock(&r->lock);
	r->hold = 0;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void receiver_get(struct receiver *r, int *ok, int *holding)
{
	pthread_mutex_lock(&r->lock);
	*ok = r->ok;
	*holding = r->holding;
	pthread_mutex_unlock(&r->lock);
}

/* How often key is among r's answered requests. */
static int receiver_count(struct receiver *r, const char *key)
{
	int n = 0;

	for (int i = 0; i < r->nkeys; i++)
		n += !strcmp(r->keys[i], key);
	return n;
}

static void test_outbox_exactly_once_across_restart(void **state)
{
	struct fixture *f = *state;
	struct receiver rx;
	struct vg_alarm_outbox_stats os;
	int64_t t = g_now, next;
	char def[512];

	receiver_start(&rx, 503);
	snprintf(def, sizeof(def),
		 "{\"name\":\"hook\",\"metric\":\"cpu.util\",\"resource\":\"vm1\","
		 "\"comparison\":\"gt\",\"threshold\":90,\"severity\":\"critical\","
		 "\"actions\":{\"alarm\":[\"http://127.0.0.1:%u/hook\"]}}",
		 rx.port);
	json_decref(create(f, def));
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t, "cpu.util", VG_KIND_GAUGE, 95);
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + MIN, "cpu.util", VG_KIND_GAUGE, 95);

	/* crash between enqueue and delivery: the row is committed, no
	 * delivery ran; a new process finds it */
	vg_alarm_engine_close(f->e);
	open_engine(f);
	/* first attempt: the receiver is down (503): retried later */
	assert_int_equal(vg_alarm_outbox_run_once(vg_alarm_engine_outbox(f->e), &next), 1);
	assert_int_equal(rx.requests, 1);
	assert_true(next > g_now && next <= g_now + 1200); /* 1 s +-20% */
	/* not due yet: nothing happens */
	assert_int_equal(vg_alarm_outbox_run_once(vg_alarm_engine_outbox(f->e), &next), 0);
	assert_int_equal(rx.requests, 1);
	/* crash again while it waits for its retry */
	vg_alarm_engine_close(f->e);
	open_engine(f);
	rx.status = 200;
	g_now += 1300;
	assert_int_equal(vg_alarm_outbox_run_once(vg_alarm_engine_outbox(f->e), &next), 1);
	assert_int_equal(rx.requests, 2);
	assert_int_equal(rx.ok, 1);
	assert_string_equal(rx.first_key, rx.last_key); /* same idempotency id */
	assert_non_null(strstr(rx.last_body, "\"alarm_name\":\"hook\""));
	assert_non_null(strstr(rx.last_body, "\"severity\":\"critical\""));
	assert_non_null(strstr(rx.last_body, rx.last_key));
	vg_alarm_outbox_get_stats(vg_alarm_engine_outbox(f->e), &os);
	assert_int_equal(os.delivered, 1);
	/* delivered is final: later passes and restarts never resend */
	g_now += 3600000;
	assert_int_equal(vg_alarm_outbox_run_once(vg_alarm_engine_outbox(f->e), &next), 0);
	vg_alarm_engine_close(f->e);
	open_engine(f);
	assert_int_equal(vg_alarm_outbox_run_once(vg_alarm_engine_outbox(f->e), &next), 0);
	assert_int_equal(rx.requests, 2);
	assert_nothing_pending(f, next);

	/* each attempt is in the history */
	json_t *h = history(f, "hook", "notification");
	assert_int_equal(json_array_size(h), 2);
	assert_string_equal(json_string_value(json_object_get(json_object_get(
								      json_array_get(h, 0), "detail"),
							      "status")),
			    "retry");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(
								    json_array_get(h, 0), "detail"),
							    "http_status")),
			 503);
	assert_string_equal(json_string_value(json_object_get(json_object_get(
								      json_array_get(h, 1), "detail"),
							      "status")),
			    "delivered");
	json_decref(h);
	MHD_stop_daemon(rx.d);
}

static void test_outbox_gives_up_on_4xx_and_backoff(void **state)
{
	struct fixture *f = *state;
	struct receiver rx;
	int64_t t = g_now, next;
	char def[512];

	assert_int_equal(vg_alarm_outbox_backoff(1000, 8000, 1), 1000);
	assert_int_equal(vg_alarm_outbox_backoff(1000, 8000, 3), 4000);
	assert_int_equal(vg_alarm_outbox_backoff(1000, 8000, 10), 8000);
	receiver_start(&rx, 404);
	snprintf(def, sizeof(def),
		 "{\"name\":\"h404\",\"metric\":\"cpu.util\",\"resource\":\"vm1\","
		 "\"comparison\":\"gt\",\"threshold\":90,"
		 "\"actions\":{\"ok\":\"http://127.0.0.1:%u/x\"}}",
		 rx.port);
	json_decref(create(f, def));
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t, "cpu.util", VG_KIND_GAUGE, 5);
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + MIN, "cpu.util", VG_KIND_GAUGE, 5);
	assert_int_equal(vg_alarm_outbox_run_once(vg_alarm_engine_outbox(f->e), &next), 1);
	assert_nothing_pending(f, next); /* failed for good */
	json_t *h = history(f, "h404", "notification");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
								      json_array_get(h, 0), "detail"),
							      "status")),
			    "failed");
	json_decref(h);
	MHD_stop_daemon(rx.d);
}

/* A slow destination must not hold the others back: three destinations,
 * one of which holds every request unanswered. The two others must get
 * every notification while the slow one still holds its first request
 * (single-file delivery never gets past that request), and once it
 * answers, each receiver has every notification exactly once. A guard bounds the waits (a deadlock guard,
 * not a timing assertion). */
static void test_outbox_slow_receiver_does_not_hold_up_others(void **state)
{
	enum { N = 12 };
	struct fixture *f = *state;
	struct receiver slow, fast1, fast2;
	struct vg_alarm_outbox_stats os;
	int64_t t = g_now, next;
	int ok1 = 0, ok2 = 0, oks = 0, held = 0, hold2;
	char def[768];

	receiver_start_mode(&slow, 200, 1);
	receiver_start(&fast1, 200);
	receiver_start(&fast2, 200);
	/* the delivery thread, with a timeout far beyond the guard below so
	 * that only concurrency can get past the held request */
	vg_alarm_engine_close(f->e);
	g_deliver = 1;
	g_hook_timeout_ms = 120000;
	open_engine(f);
	for (int i = 0; i < N; i++) {
		snprintf(def, sizeof(def),
			 "{\"name\":\"s%d\",\"metric\":\"cpu.util\",\"resource\":\"vm%d\","
			 "\"comparison\":\"gt\",\"threshold\":90,\"actions\":{\"alarm\":"
			 "[\"http://127.0.0.1:%u/slow\",\"http://127.0.0.1:%u/a\","
			 "\"http://127.0.0.1:%u/b\"]}}",
			 i, i, slow.port, fast1.port,
			 fast2.port);
		json_decref(create(f, def));
	}
	/* one batch flips all N (the second closes the first period) */
	for (int k = 0; k < 2; k++) {
		int64_t bt = t + k * MIN;
		struct vg_batch *b = vg_batch_new("h1", 1, ++f->seq, bt);
		for (int i = 0; i < N; i++) {
			char id[16];
			snprintf(id, sizeof(id), "vm%d", i);
			vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, bt);
			vg_batch_identity(b, "default", NULL, NULL);
			vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 95);
		}
		g_now = bt + 500;
		assert_int_equal(vg_alarm_engine_batch(f->e, b), 0);
		vg_batch_free(b);
	}
	/* wait for the three things the assertions below read, not for the
	 * fast ones alone: the attempts to the three destinations start in
	 * one pass, but the slow receiver's request reaches its handler (a
	 * new thread in that daemon) when the scheduler says, which on a
	 * loaded machine can be after the fast ones answered all N */
	for (int w = 0; w < 3000 && (ok1 < N || ok2 < N || held < 1); w++) {
		vg_sleep_ms(10);
		receiver_get(&fast1, &ok1, &hold2);
		receiver_get(&fast2, &ok2, &hold2);
		receiver_get(&slow, &oks, &held);
	}
	receiver_release(&slow);  /* before any assertion: teardown must not hang */
	assert_int_equal(oks, 0); /* the slow receiver answered nothing yet */
	assert_true(held >= 1);   /* and holds its first request(s) */
	assert_true(held <= VG_OUTBOX_PER_DESTINATION);
	assert_int_equal(ok1, N); /* while the others got everything */
	assert_int_equal(ok2, N);

	for (int w = 0; w < 3000 && oks < N; w++) {
		vg_sleep_ms(10);
		receiver_get(&slow, &oks, &held);
	}
	assert_int_equal(oks, N);
	/* exactly once: the same N notifications at every receiver, once each */
	vg_alarm_engine_close(f->e); /* stops the thread: nothing more is sent */
	f->e = NULL;
	assert_int_equal(slow.nkeys, N);
	assert_int_equal(fast1.nkeys, N);
	assert_int_equal(fast2.nkeys, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(receiver_count(&slow, fast1.keys[i]), 1);
		assert_int_equal(receiver_count(&fast1, fast1.keys[i]), 1);
		assert_int_equal(receiver_count(&fast2, fast1.keys[i]), 1);
	}
	/* and nothing is pending after a restart */
	g_deliver = 0;
	open_engine(f);
	assert_int_equal(vg_alarm_outbox_run_once(vg_alarm_engine_outbox(f->e), &next), 0);
	assert_nothing_pending(f, next);
	vg_alarm_outbox_get_stats(vg_alarm_engine_outbox(f->e), &os);
	assert_int_equal(os.attempts, 0);
	assert_int_equal(slow.requests + fast1.requests + fast2.requests, 3 * N);
	json_t *h = history(f, "s0", "notification");
	assert_int_equal(json_array_size(h), 3); /* one delivered attempt each */
	json_decref(h);
	MHD_stop_daemon(slow.d);
	MHD_stop_daemon(fast1.d);
	MHD_stop_daemon(fast2.d);
}

/* One project's receivers must not take every place: project "evil" has
 * five receivers that hold every request unanswered (16 places each would
 * be 80, past the 64 in all), and project "good" one that answers at once.
 * Before, evil's attempts held all 64 places until their timeouts and
 * good's notifications waited for them; now evil holds at most
 * VG_OUTBOX_PER_PROJECT and good gets everything meanwhile. A guard bounds
 * the waits (a deadlock guard, not a timing assertion). */
static void test_outbox_one_project_does_not_take_every_place(void **state)
{
	enum { NS = 5,
	       NE = 20,
	       NG = 8 };
	struct fixture *f = *state;
	struct receiver slow[NS], fast;
	int64_t t = g_now;
	int ok = 0, held = 0, h, o;
	char def[1024], acts[512];

	for (int i = 0; i < NS; i++)
		receiver_start_mode(&slow[i], 200, 1);
	receiver_start(&fast, 200);
	vg_alarm_engine_close(f->e);
	g_deliver = 1;
	g_hook_timeout_ms = 120000; /* far past the guard below */
	open_engine(f);
	acts[0] = 0;
	for (int i = 0; i < NS; i++)
		snprintf(acts + strlen(acts), sizeof(acts) - strlen(acts),
			 "%s\"http://127.0.0.1:%u/evil\"", i ? "," : "", slow[i].port);
	for (int i = 0; i < NE; i++) {
		snprintf(def, sizeof(def),
			 "{\"name\":\"e%d\",\"project\":\"evil\",\"metric\":\"cpu.util\","
			 "\"resource\":\"ev%d\",\"comparison\":\"gt\",\"threshold\":90,"
			 "\"actions\":{\"alarm\":[%s]}}",
			 i, i, acts);
		json_decref(create(f, def));
	}
	for (int i = 0; i < NG; i++) {
		snprintf(def, sizeof(def),
			 "{\"name\":\"g%d\",\"project\":\"good\",\"metric\":\"cpu.util\","
			 "\"resource\":\"gv%d\",\"comparison\":\"gt\",\"threshold\":90,"
			 "\"actions\":{\"alarm\":[\"http://127.0.0.1:%u/good\"]}}",
			 i, i, fast.port);
		json_decref(create(f, def));
	}
	/* evil's alarms flip first, and its attempts take their places */
	for (int k = 0; k < 2; k++) {
		int64_t bt = t + k * MIN;
		struct vg_batch *b = vg_batch_new("h1", 1, ++f->seq, bt);
		for (int i = 0; i < NE; i++) {
			char id[16];
			snprintf(id, sizeof(id), "ev%d", i);
			vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, bt);
			vg_batch_identity(b, "evil", NULL, NULL);
			vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 95);
		}
		g_now = bt + 500;
		assert_int_equal(vg_alarm_engine_batch(f->e, b), 0);
		vg_batch_free(b);
	}
	for (int w = 0; w < 3000 && held < VG_OUTBOX_PER_PROJECT; w++) {
		vg_sleep_ms(10);
		held = 0;
		for (int i = 0; i < NS; i++) {
			receiver_get(&slow[i], &o, &h);
			held += h;
		}
	}
	vg_sleep_ms(300); /* room for more than the bound to show up */
	/* then good's */
	for (int k = 2; k < 4; k++) {
		int64_t bt = t + k * MIN;
		struct vg_batch *b = vg_batch_new("h2", 1, ++f->seq, bt);
		for (int i = 0; i < NG; i++) {
			char id[16];
			snprintf(id, sizeof(id), "gv%d", i);
			vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, bt);
			vg_batch_identity(b, "good", NULL, NULL);
			vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 95);
		}
		g_now = bt + 500;
		assert_int_equal(vg_alarm_engine_batch(f->e, b), 0);
		vg_batch_free(b);
	}
	for (int w = 0; w < 2000 && ok < NG; w++) {
		vg_sleep_ms(10);
		receiver_get(&fast, &ok, &h);
	}
	held = 0;
	for (int i = 0; i < NS; i++) {
		receiver_get(&slow[i], &o, &h);
		held += h;
	}
	for (int i = 0; i < NS; i++) /* before any assertion: teardown must not hang */
		receiver_release(&slow[i]);
	assert_true(held <= VG_OUTBOX_PER_PROJECT); /* evil kept to its share */
	assert_int_equal(ok, NG);                   /* while good got everything */
	vg_alarm_engine_close(f->e);                /* stops the thread */
	f->e = NULL;
	g_deliver = 0;
	open_engine(f);
	for (int i = 0; i < NS; i++)
		MHD_stop_daemon(slow[i].d);
	MHD_stop_daemon(fast.d);
}

/* More rows for one receiver than the outbox holds per destination (1,024):
 * the rest wait in alarms.db and are read once the first ones are done;
 * every row is delivered exactly once. */
static void test_outbox_backlog_beyond_memory_bound(void **state)
{
	enum { N = 1500 };
	struct fixture *f = *state;
	struct vg_alarm_store *st;
	struct receiver rx;
	char err[256], url[128], nid[40];
	int64_t next;

	/* rows of an alarm that does not exist are fenced (whoever wrote it
	 * is unknown): this receiver is allowed, as an operator would */
	g_allow = "127.0.0.1/32";
	vg_alarm_engine_close(f->e);
	open_engine(f);
	receiver_start(&rx, 200);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/backlog", rx.port);
	assert_int_equal(vg_alarm_store_open(store_where(f), &st, err, sizeof(err)), 0);
	assert_int_equal(vg_alarm_store_begin(st), 0);
	for (int i = 0; i < N; i++) {
		snprintf(nid, sizeof(nid), "backlog-%04d", i);
		assert_int_equal(vg_alarm_store_outbox_add(st, nid, "a1", "default", url,
							   "{}", g_now),
				 0);
	}
	assert_int_equal(vg_alarm_store_commit(st), 0);
	vg_alarm_store_close(st);
	assert_int_equal(vg_alarm_outbox_run_once(vg_alarm_engine_outbox(f->e), &next), N);
	assert_nothing_pending(f, next);
	assert_int_equal(rx.nkeys, N);
	for (int i = 0; i < N; i++) {
		snprintf(nid, sizeof(nid), "backlog-%04d", i);
		assert_int_equal(receiver_count(&rx, nid), 1);
	}
	assert_int_equal(vg_alarm_outbox_run_once(vg_alarm_engine_outbox(f->e), &next), 0);
	assert_int_equal(rx.requests, N);
	MHD_stop_daemon(rx.d);
}

/* The delivery thread stalls (descheduled on a loaded machine, a slow
 * commit) while its attempts are in flight, for longer than the webhook
 * timeout, and the receiver answers all of them meanwhile: the answers
 * wait unread in the sockets. The time the thread did not run is not the
 * receiver's: every attempt is delivered at its first try, none is timed
 * out and sent again. The receiver holds the requests until all have
 * arrived; the outbox's next read of the clock (run_once runs the
 * delivery on this thread) then lets it answer and stalls. */
static struct receiver *g_stall_rx;
static int g_stall_want;

static int stall_once_all_arrived(void)
{
	int ok = 0, holding;

	receiver_get(g_stall_rx, &ok, &holding);
	if (holding < g_stall_want)
		return 0; /* not yet: at a later read */
	receiver_release(g_stall_rx);
	/* a guard, not a timing assertion: the stall is what is tested */
	for (int w = 0; w < 3000 && ok < g_stall_want; w++) {
		vg_sleep_ms(10);
		receiver_get(g_stall_rx, &ok, &holding);
	}
	vg_sleep_ms(g_hook_timeout_ms + 500);
	return 1;
}

static void test_outbox_stalled_thread_keeps_answers(void **state)
{
	enum { N = VG_OUTBOX_PER_DESTINATION };
	struct fixture *f = *state;
	struct vg_alarm_outbox_stats os;
	struct vg_alarm_store *st;
	struct receiver rx;
	char err[256], url[128], nid[40];
	int64_t next;
	int rc;

	g_allow = "127.0.0.1/32"; /* rows of an unknown alarm are fenced */
	g_hook_timeout_ms = 5000; /* the stall is longer */
	vg_alarm_engine_close(f->e);
	open_engine(f);
	receiver_start_mode(&rx, 200, 1);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/stall", rx.port);
	assert_int_equal(vg_alarm_store_open(store_where(f), &st, err, sizeof(err)), 0);
	assert_int_equal(vg_alarm_store_begin(st), 0);
	for (int i = 0; i < N; i++) {
		snprintf(nid, sizeof(nid), "stall-%02d", i);
		assert_int_equal(vg_alarm_store_outbox_add(st, nid, "a1", "default", url,
							   "{}", g_now),
				 0);
	}
	assert_int_equal(vg_alarm_store_commit(st), 0);
	vg_alarm_store_close(st);
	g_stall_rx = &rx;
	g_stall_want = N;
	g_on_clock = stall_once_all_arrived;
	rc = vg_alarm_outbox_run_once(vg_alarm_engine_outbox(f->e), &next);
	receiver_release(&rx);   /* before any assertion: teardown must not hang */
	assert_null(g_on_clock); /* the stall happened */
	assert_int_equal(rc, N);
	vg_alarm_outbox_get_stats(vg_alarm_engine_outbox(f->e), &os);
	assert_int_equal(os.retried, 0);
	assert_int_equal(os.delivered, N);
	assert_nothing_pending(f, next);
	assert_int_equal(rx.requests, N);
	for (int i = 0; i < N; i++) {
		snprintf(nid, sizeof(nid), "stall-%02d", i);
		assert_int_equal(receiver_count(&rx, nid), 1);
	}
	MHD_stop_daemon(rx.d);
}

/* A receiver that does not answer within the webhook timeout: the
 * attempt ends (the outbox keeps the time itself) and is retried. */
static void test_outbox_unanswered_attempt_times_out(void **state)
{
	struct fixture *f = *state;
	struct vg_alarm_outbox_stats os;
	struct vg_alarm_store *st;
	struct receiver rx;
	char err[256], url[128];
	int64_t next;
	int rc;

	g_allow = "127.0.0.1/32";
	g_hook_timeout_ms = 300;
	vg_alarm_engine_close(f->e);
	open_engine(f);
	receiver_start_mode(&rx, 200, 1);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/never", rx.port);
	assert_int_equal(vg_alarm_store_open(store_where(f), &st, err, sizeof(err)), 0);
	assert_int_equal(vg_alarm_store_outbox_add(st, "never-1", "a1", "default", url, "{}",
						   g_now),
			 0);
	vg_alarm_store_close(st);
	rc = vg_alarm_outbox_run_once(vg_alarm_engine_outbox(f->e), &next);
	receiver_release(&rx); /* before any assertion: teardown must not hang */
	assert_int_equal(rc, 1);
	vg_alarm_outbox_get_stats(vg_alarm_engine_outbox(f->e), &os);
	assert_int_equal(os.retried, 1);
	assert_int_equal(os.delivered, 0);
	assert_true(next > g_now && next <= g_now + 1200); /* 1 s +-20% */
	MHD_stop_daemon(rx.d);
}

/* One batch of instance id (project "default") with Nova's names when
 * display is set. */
static void send_named(struct fixture *f, const char *id, const char *display,
		       const char *project_name, int64_t t, double v)
{
	struct vg_batch *b = vg_batch_new("h1", 1, ++f->seq, t);

	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, id, "instance-0000002a", NULL, t));
	vg_batch_identity(b, "default", NULL, "m1.small");
	if (display) {
		assert_int_equal(vg_batch_attr(b, "display_name", display), 0);
		assert_int_equal(vg_batch_attr(b, "project_name", project_name), 0);
	}
	vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, v);
	g_now = t + 500;
	assert_int_equal(vg_alarm_engine_batch(f->e, b), 0);
	vg_batch_free(b);
}

/* A notification names the resource and the project as people know them
 * (the agent's display_name and project_name), beside the ids; null when
 * no agent sent them; Alertmanager gets them as annotations. */
static void test_notice_names(void **state)
{
	struct fixture *f = *state;
	struct vg_alarm_sub *sub;
	char buf[16384];
	int64_t t = g_now;
	ssize_t n;

	json_decref(create(f, "{\"name\":\"named\",\"metric\":\"cpu.util\",\"resource\":\"vm-n\","
			      "\"comparison\":\"gt\",\"threshold\":90,\"evaluation_periods\":1,"
			      "\"actions\":{\"alarm\":[\"log://\"]}}"));
	json_decref(create(f, "{\"name\":\"bare\",\"metric\":\"cpu.util\",\"resource\":\"vm-o\","
			      "\"comparison\":\"gt\",\"threshold\":90,\"evaluation_periods\":1,"
			      "\"actions\":{\"alarm\":[\"log://\"]}}"));
	assert_int_equal(vg_alarm_hub_subscribe(f->hub, "default", 0, NULL, NULL, g_now, &sub), 0);
	for (int k = 0; k < 2; k++) {
		send_named(f, "vm-n", "web-frontend-1", "webshop", t + k * MIN, 95);
		send_named(f, "vm-o", NULL, NULL, t + k * MIN, 95);
	}
	n = vg_alarm_hub_read(sub, buf, sizeof(buf) - 1, g_now);
	assert_true(n > 0);
	buf[n] = '\0';
	vg_alarm_hub_unsubscribe(sub);

	char *named = NULL, *bare = NULL;
	for (char *p = buf; (p = strstr(p, "data: ")); p++) {
		char *e = strchr(p, '\n');
		if (e)
			*e = '\0';
		if (strstr(p, "\"alarm_name\":\"named\"") && strstr(p, "\"current\":\"alarm\""))
			named = p + 6;
		if (strstr(p, "\"alarm_name\":\"bare\"") && strstr(p, "\"current\":\"alarm\""))
			bare = p + 6;
		if (!e)
			break;
		p = e;
	}
	assert_non_null(named);
	assert_non_null(bare);
	assert_non_null(strstr(named, "\"resource\":\"vm-n\",\"resource_name\":\"web-frontend-1\","
				      "\"project_name\":\"webshop\""));
	assert_non_null(strstr(named, "\"project\":\"default\""));
	assert_non_null(strstr(bare, "\"resource\":\"vm-o\",\"resource_name\":null,"
				     "\"project_name\":null"));

	size_t len;
	char *body = vg_alarm_alertmanager_body(named, &len);
	json_t *a = json_loads(body, 0, NULL);
	json_t *ann = json_object_get(json_array_get(a, 0), "annotations");
	assert_string_equal(json_string_value(json_object_get(ann, "resource_name")), "web-frontend-1");
	assert_string_equal(json_string_value(json_object_get(ann, "project_name")), "webshop");
	assert_null(json_object_get(json_object_get(json_array_get(a, 0), "labels"), "resource_name"));
	json_decref(a);
	free(body);
}

static void test_alertmanager_body(void **state)
{
	const char *n = "{\"alarm_name\":\"cpu-high\",\"alarm_id\":\"a1\","
			"\"project\":\"acme\",\"severity\":\"critical\","
			"\"resource\":\"vm1\",\"metric\":\"cpu.util\","
			"\"current\":\"%s\",\"reason\":\"r\",\"description\":\"\","
			"\"timestamp\":\"2026-11-26T12:04:00Z\","
			"\"evaluated_at\":\"2026-11-26T12:03:01Z\"}";
	char text[512];
	size_t len;
	json_t *a;

	snprintf(text, sizeof(text), n, "alarm");
	char *body = vg_alarm_alertmanager_body(text, &len);
	a = json_loads(body, 0, NULL);
	assert_int_equal(json_array_size(a), 1);
	json_t *al = json_array_get(a, 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(al, "labels"),
							      "alertname")),
			    "cpu-high");
	assert_string_equal(json_string_value(json_object_get(json_object_get(al, "labels"),
							      "severity")),
			    "critical");
	assert_string_equal(json_string_value(json_object_get(al, "startsAt")),
			    "2026-11-26T12:04:00Z");
	assert_null(json_object_get(al, "endsAt")); /* firing */
	json_decref(a);
	free(body);
	snprintf(text, sizeof(text), n, "ok");
	body = vg_alarm_alertmanager_body(text, &len);
	a = json_loads(body, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "endsAt")),
			    "2026-11-26T12:03:01Z"); /* resolved */
	json_decref(a);
	free(body);
	assert_null(vg_alarm_alertmanager_body("not json", &len));
}

/* ---- group alarms: the autoscaling example of docs/alarms.md ------------------------ */

/* One batch per member per minute: cpu.util of instance id in server group
 * grp (metadata metering.server_group), five seconds into minute m. */
static void member(struct fixture *f, const char *id, const char *grp, int m,
		   double v)
{
	int64_t t = T0 / MIN * MIN + 1000 * MIN + m * MIN + 5000;
	struct vg_batch *b = vg_batch_new("h1", 1, ++f->seq, t);

	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, t));
	vg_batch_identity(b, "default", NULL, "m1.small");
	assert_int_equal(vg_batch_attr(b, "metering.server_group", grp), 0);
	vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, v);
	g_now = t + 500;
	assert_int_equal(vg_alarm_engine_batch(f->e, b), 0);
	vg_batch_free(b);
}

static void member_ended(struct fixture *f, const char *id, int m)
{
	int64_t t = T0 / MIN * MIN + 1000 * MIN + m * MIN + 6000;

	g_now = t + 500;
	ended(f, id, t);
}

/* The scaling script's two commands, and an engine opened with them on
 * the case's store (again after a restart). */
struct scaling {
	struct vg_alarm_exec_cmd cmds[2];
	char logf[300];
};

static void scaling_open(struct fixture *f, struct scaling *sc)
{
	struct vg_alarm_engine_options o = {0};
	char err[256];

	o.data_dir = store_where(f);
	o.agent_interval_s = 10;
	o.hub = f->hub;
	o.now_ms = fake_now;
	o.exec = sc->cmds;
	o.nexec = 2;
	if (vg_alarm_engine_open(&o, &f->e, err, sizeof(err)))
		fail_msg("engine open: %s", err);
}

/* The autoscaling example, uninterrupted or (restart) with the engine
 * closed and opened again on the same store twice: in the middle of
 * minute 6, when two of the three members reported a period that decides
 * the first scale-out, and in the middle of minute 10, inside the
 * scale-out's cooldown. The script must be called exactly as without the
 * restarts: a group period decided after a restart uses the values its
 * members reported before it (they are acknowledged and never sent
 * again), and the cooldown's clock survives. */
static void autoscaling(struct fixture *f, int restart)
{
	struct scaling sc;
	char err[256], spec[600], script[300], line[8192];
	int64_t next;
	int64_t base = T0 / MIN * MIN + 1000 * MIN;
	FILE *fp;

	/* the operator's scaling script: one line per call, direction first,
	 * then the alarm and the notification on stdin */
	snprintf(script, sizeof(script), "%s/scale.sh", f->dir);
	snprintf(sc.logf, sizeof(sc.logf), "%s/scale.log", f->dir);
	fp = fopen(script, "w");
	assert_non_null(fp);
	fprintf(fp, "#!/bin/sh\n{ printf '%%s %%s ' \"$1\" \"$VIGIE_ALARM_NAME\"; "
		    "tr -d '\\n'; echo; } >> %s\n",
		sc.logf);
	fclose(fp);
	assert_int_equal(chmod(script, 0755), 0);
	snprintf(spec, sizeof(spec), "scale-out: %s out", script);
	assert_int_equal(vg_alarm_exec_parse(spec, &sc.cmds[0], err, sizeof(err)), 0);
	snprintf(spec, sizeof(spec), "scale-in: %s in", script);
	assert_int_equal(vg_alarm_exec_parse(spec, &sc.cmds[1], err, sizeof(err)), 0);
	vg_alarm_engine_close(f->e);
	scaling_open(f, &sc);

	json_decref(create(f, "{\"name\":\"web-scale-out\",\"metric\":\"cpu.util\","
			      "\"selector\":{\"type\":\"instance\",\"metadata\":"
			      "{\"metering.server_group\":\"web\"}},\"group\":{\"statistic\":\"average\"},"
			      "\"period\":60,\"evaluation_periods\":3,\"datapoints_to_alarm\":3,"
			      "\"comparison\":\"gt\",\"threshold\":70,\"repeat_every\":1,"
			      "\"cooldown\":300,\"actions\":{\"alarm\":[\"exec://scale-out\"]}}"));
	json_decref(create(f, "{\"name\":\"web-scale-in\",\"metric\":\"cpu.util\","
			      "\"selector\":{\"type\":\"instance\",\"metadata\":"
			      "{\"metering.server_group\":\"web\"}},\"group\":{\"statistic\":\"average\"},"
			      "\"period\":60,\"evaluation_periods\":10,\"datapoints_to_alarm\":10,"
			      "\"comparison\":\"lt\",\"threshold\":20,\"repeat_every\":1,"
			      "\"cooldown\":600,\"actions\":{\"alarm\":[\"exec://scale-in\"]}}"));

	for (int m = 0; m < 25; m++) {
		double v1 = 50, v2 = 50, v3 = 50;
		if (m >= 5 && m <= 12) {
			v1 = 90;
			v2 = 80;
			v3 = 70;
		} else if (m > 12) {
			v1 = v2 = v3 = 10;
		}
		member(f, "vm1", "web", m, v1);
		if (restart && m == 10) {
			vg_alarm_engine_close(f->e);
			scaling_open(f, &sc);
		}
		member(f, "vm2", "web", m, v2);
		if (restart && m == 6) {
			vg_alarm_engine_close(f->e);
			scaling_open(f, &sc);
		}
		if (m < 18)
			member(f, "vm3", "web", m, v3);
		else if (m == 18)
			member_ended(f, "vm3", m); /* scaled in: leaves the group */
		/* another group's busy instance is not a member */
		member(f, "db1", "db", m, 99);
		assert_true(vg_alarm_outbox_run_once(vg_alarm_engine_outbox(f->e),
						     &next) >= 0);
	}

	/* exactly three calls, in this order: out when the third minute above
	 * 70 % closed, out again when the five-minute cooldown ended (the
	 * repeats in between were held back), in after ten minutes below
	 * 20 % (the repeats after it are within its cooldown) */
	fp = fopen(sc.logf, "r");
	assert_non_null(fp);
	const char *want_dir[] = {"out", "out", "in"};
	const char *want_name[] = {"web-scale-out", "web-scale-out", "web-scale-in"};
	const int want_period[] = {7, 12, 22};
	const double want_value[] = {80, 80, 10};
	int n = 0;
	while (fgets(line, sizeof(line), fp)) {
		char dir[16], name[64];
		int off = 0;
		assert_true(n < 3);
		assert_int_equal(sscanf(line, "%15s %63s %n", dir, name, &off), 2);
		assert_string_equal(dir, want_dir[n]);
		assert_string_equal(name, want_name[n]);
		json_t *body = json_loads(line + off, 0, NULL);
		assert_non_null(body);
		json_t *grp = json_object_get(json_object_get(body, "reason_data"), "group");
		assert_non_null(grp);
		assert_string_equal(json_string_value(json_object_get(grp, "statistic")),
				    "average");
		assert_true(fabs(json_number_value(json_object_get(grp, "value")) -
				 want_value[n]) < 1e-9);
		assert_int_equal(json_integer_value(json_object_get(grp, "members")),
				 n < 2 ? 3 : 2);
		char ts[32];
		assert_string_equal(json_string_value(json_object_get(body, "timestamp")),
				    vg_time_format(base + (want_period[n] + 1) * MIN, ts,
						   sizeof(ts)));
		json_decref(body);
		n++;
	}
	fclose(fp);
	assert_int_equal(n, 3);
	/* the held-back repeats are in the history, marked so */
	json_t *h = history(f, "web-scale-out", "cooldown");
	assert_int_equal(json_array_size(h), 4); /* periods 8, 9, 10, 11 */
	json_decref(h);
	h = history(f, "web-scale-in", "resource_left");
	assert_int_equal(json_array_size(h), 1);
	json_decref(h);
	/* the members are the same three across the restarts */
	h = history(f, "web-scale-out", "resource_joined");
	assert_int_equal(json_array_size(h), 3);
	json_decref(h);
}

static void test_group_autoscaling(void **state)
{
	autoscaling(*state, 0);
}

static void test_group_autoscaling_across_restarts(void **state)
{
	autoscaling(*state, 1);
}

/* ---- event alarms ---------------------------------------------------------------------- */

static void event_batch(struct fixture *f, const char *host, const char *id,
			const char *project, int type, int64_t t, const char *detail)
{
	struct vg_batch *b = vg_batch_new(host, 1, ++f->seq, t);

	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, t));
	vg_batch_identity(b, project, NULL, "m1.small");
	assert_int_equal(vg_batch_event(b, id, (uint8_t)type, t, detail), 0);
	g_now = t + 500;
	assert_int_equal(vg_alarm_engine_batch(f->e, b), 0);
	vg_batch_free(b);
}

static void test_event_alarms(void **state)
{
	struct fixture *f = *state;
	int64_t t = T0 / MIN * MIN + 2000 * MIN;
	char st[32];
	json_t *h;

	json_decref(create(f, "{\"name\":\"vm-crashed\",\"type\":\"event\","
			      "\"event\":{\"kind\":\"crashed\"},\"keep_firing_for\":60,"
			      "\"actions\":{\"alarm\":[\"log://\"]}}"));
	json_decref(create(f, "{\"name\":\"vm2-destroyed\",\"type\":\"event\","
			      "\"event\":{\"kind\":[\"stopped\"],\"resource\":\"vm2\","
			      "\"detail\":\"\\\"reason\\\":\\\"destroyed\\\"\"}}"));
	json_decref(create(f, "{\"name\":\"agent-silent\",\"type\":\"event\","
			      "\"event\":{\"kind\":\"agent_silent\",\"silent_for\":120}}"));
	assert_string_equal(state_of(f, "vm-crashed", st), "insufficient_data");

	/* a guest shut down from inside, and one of another project that
	 * crashed: neither is this project's crash */
	event_batch(f, "h1", "vm2", "default", VG_EV_STOPPED, t,
		    "{\"libvirt\":\"stopped\",\"reason\":\"shutdown\"}");
	event_batch(f, "h1", "vmX", "other", VG_EV_STOPPED, t + 1000,
		    "{\"libvirt\":\"stopped\",\"reason\":\"crashed\"}");
	assert_string_equal(state_of(f, "vm-crashed", st), "insufficient_data");
	assert_string_equal(state_of(f, "vm2-destroyed", st), "insufficient_data");
	/* vm1 crashes */
	event_batch(f, "h1", "vm1", "default", VG_EV_STOPPED, t + 2000,
		    "{\"libvirt\":\"stopped\",\"reason\":\"crashed\"}");
	assert_string_equal(state_of(f, "vm-crashed", st), "alarm");
	h = history(f, "vm-crashed", "transition");
	assert_int_equal(json_array_size(h), 1);
	assert_true(json_has(h, "event crashed on vm1"));
	json_decref(h);
	/* vm2 destroyed through the API: its own alarm, detail matched */
	event_batch(f, "h1", "vm2", "default", VG_EV_STOPPED, t + 3000,
		    "{\"libvirt\":\"stopped\",\"reason\":\"destroyed\"}");
	assert_string_equal(state_of(f, "vm2-destroyed", st), "alarm");
	assert_string_equal(state_of(f, "vm-crashed", st), "alarm");
	/* keep_firing_for (60 s) runs out: back to ok, once */
	g_now = t + 2000 + 61000;
	vg_alarm_engine_tick(f->e, g_now);
	assert_string_equal(state_of(f, "vm-crashed", st), "ok");
	h = history(f, "vm-crashed", "transition");
	assert_int_equal(json_array_size(h), 2);
	json_decref(h);
	/* the agent of h1 goes silent: one alarm after 120 s, not one per tick */
	h = history(f, "agent-silent", "transition");
	assert_int_equal(json_array_size(h), 0);
	json_decref(h);
	g_now = t + 3500 + 121000;
	vg_alarm_engine_tick(f->e, g_now);
	g_now += 1000;
	vg_alarm_engine_tick(f->e, g_now);
	assert_string_equal(state_of(f, "agent-silent", st), "alarm");
	h = history(f, "agent-silent", "transition");
	assert_int_equal(json_array_size(h), 1);
	assert_true(json_has(h, "event agent_silent on h1"));
	json_decref(h);
	/* ... and ok when it sends again */
	event_batch(f, "h1", "vm3", "default", VG_EV_STARTED, g_now, NULL);
	assert_string_equal(state_of(f, "agent-silent", st), "ok");
}

/* A project's published measures (POST /v1/measures: the batch carries
 * its instance's compute host, points up to max_future ahead) neither move
 * that host's data clock, which closes every series' periods on it (a
 * point 10 minutes ahead made another instance's data "missing", and its
 * alarm fired), nor count as its agent sending (a dead agent was never
 * seen silent while a tenant published). */
static void published(struct fixture *f, const char *id, int64_t t)
{
	struct vg_batch *b = vg_batch_new("h1", 0, 0, g_now);

	b->published = 1;
	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, t));
	vg_batch_identity(b, "tenant", NULL, NULL);
	vg_batch_sample(b, "app.queue", VG_KIND_GAUGE, 1);
	assert_int_equal(vg_alarm_engine_batch(f->e, b), 0);
	vg_batch_free(b);
}

static void test_published_moves_no_clock(void **state)
{
	struct fixture *f = *state;
	int64_t t = g_now;
	char st[32];

	create_gone(f);
	json_decref(create(f, "{\"name\":\"agent-silent\",\"type\":\"event\","
			      "\"event\":{\"kind\":\"agent_silent\",\"silent_for\":120}}"));
	for (int i = 0; i < 3; i++)
		send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, t + i * MIN, "cpu.util",
		      VG_KIND_GAUGE, 10);
	assert_string_equal(state_of(f, "gone", st), "ok");
	/* ten minutes ahead, on the same host */
	published(f, "vm9", t + 12 * MIN);
	vg_alarm_engine_tick(f->e, g_now);
	assert_string_equal(state_of(f, "gone", st), "ok");
	/* the agent stops; the tenant goes on publishing every 30 s */
	for (int i = 0; i < 8; i++) {
		g_now += 30000;
		published(f, "vm9", g_now);
		vg_alarm_engine_tick(f->e, g_now);
	}
	assert_string_equal(state_of(f, "agent-silent", st), "alarm");
	/* ... and publishing does not end it; the agent sending does */
	g_now += 1000;
	published(f, "vm9", g_now);
	assert_string_equal(state_of(f, "agent-silent", st), "alarm");
	send1(f, "h1", VG_RT_INSTANCE, "vm1", NULL, g_now, "cpu.util", VG_KIND_GAUGE, 10);
	assert_string_equal(state_of(f, "agent-silent", st), "ok");
}

/* The group statistics over the members that reported, and a member with
 * no sample in a period left out of it (not a zero, not waited for). */
static double group_value_of(json_t *row)
{
	json_t *g = json_object_get(json_object_get(json_object_get(row, "detail"),
						    "reason_data"),
				    "group");
	json_t *v = json_object_get(g, "value");

	assert_non_null(g);
	return json_is_null(v) ? NAN : json_number_value(v);
}

static void test_group_statistics_and_missing_member(void **state)
{
	struct fixture *f = *state;
	static const char *const stats[] = {
		"{\"statistic\":\"average\"}", "{\"statistic\":\"minimum\"}",
		"{\"statistic\":\"maximum\"}", "{\"statistic\":\"sum\"}",
		"{\"statistic\":\"count\"}", "{\"statistic\":\"p75\"}",
		"{\"statistic\":\"count_above\",\"member_threshold\":50}"};
	/* members a, b, c, d report 10, 20, 60, 90; d has no sample in
	 * minute 4 */
	static const double want4[] = {45, 10, 90, 180, 4, 60, 2};
	static const double want_missing[] = {30, 10, 60, 90, 3, 60, 1};
	char def[512], name[16];
	const char *ids[] = {"ga", "gb", "gc", "gd"};
	const double vals[] = {10, 20, 60, 90};

	for (int i = 0; i < 7; i++) {
		snprintf(def, sizeof(def), "{\"name\":\"s%d\",\"metric\":\"cpu.util\","
					   "\"selector\":{\"type\":\"instance\",\"metadata\":"
					   "{\"metering.server_group\":\"g\"}},\"group\":%s,"
					   "\"comparison\":\"gt\",\"threshold\":-1,\"repeat_every\":1}",
			 i, stats[i]);
		json_decref(create(f, def));
	}
	for (int m = 0; m < 7; m++)
		for (int k = 0; k < 4; k++)
			if (!(k == 3 && m == 4))
				member(f, ids[k], "g", m, vals[k]);
	for (int i = 0; i < 7; i++) {
		json_t *tr, *rep, *row;
		size_t n, j;
		double got[8];
		snprintf(name, sizeof(name), "s%d", i);
		tr = history(f, name, "transition");
		rep = history(f, name, "repeat");
		/* one value per period 0..6: each closes when its last member
		 * reported (period 4: when the others' period 5 began) */
		assert_int_equal(json_array_size(tr), 1);
		n = 0;
		got[n++] = group_value_of(json_array_get(tr, 0));
		json_array_foreach(rep, j, row)
			if (n < 8)
				got[n++] = group_value_of(row);
		assert_int_equal(n, 7);
		/* history rows come oldest first */
		const double *t = got;
		for (size_t k = 0; k < 7; k++) {
			double w = k == 4 ? want_missing[i] : want4[i];
			if (fabs(t[k] - w) > 1e-9)
				fail_msg("%s (%s) period %zu: %g, want %g", name, stats[i],
					 k, t[k], w);
		}
		json_decref(tr);
		json_decref(rep);
	}
}

static void test_group_validation(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[][2] = {
		{"\"resource\":\"vm1\",\"group\":{\"statistic\":\"average\"}",
		 "needs a selector naming the group"},
		{"\"selector\":{\"type\":\"instance\"},\"group\":{\"statistic\":\"median\"}",
		 "must be one of average, minimum, maximum, sum, count, pNN"},
		{"\"selector\":{\"type\":\"instance\"},\"group\":{\"statistic\":\"count_above\"}",
		 "is required with count_above"},
		{"\"selector\":{\"type\":\"instance\"},\"group\":{\"statistic\":\"sum\","
		 "\"member_threshold\":3}",
		 "only with count_above"},
		{"\"selector\":{\"type\":\"instance\"},\"group\":{\"by\":\"host\"}",
		 "unknown field (known: statistic, member_threshold)"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char def[512];
		json_t *body, *out = NULL, *errors = NULL;
		char *t;
		snprintf(def, sizeof(def), "{\"name\":\"bad\",\"metric\":\"cpu.util\","
					   "\"comparison\":\"gt\",\"threshold\":1,%s}",
			 bad[i][0]);
		body = json_loads(def, 0, NULL);
		assert_non_null(body);
		assert_int_equal(vg_alarm_engine_create(f->e, body, NULL, &out, &errors),
				 -EINVAL);
		t = json_dumps(errors, 0);
		if (!strstr(t, bad[i][1]))
			fail_msg("case %zu: %s lacks '%s'", i, t, bad[i][1]);
		free(t);
		json_decref(errors);
		json_decref(body);
	}
}

/* A PATCH merges onto the stored form: null clears a field to its
 * default, "group" as "notify_group" (null was a 400 for group only). */
static void test_patch_null_clears(void **state)
{
	struct fixture *f = *state;
	json_t *o = NULL, *errors = NULL, *body;

	json_decref(create(f, "{\"name\":\"grp\",\"metric\":\"cpu.util\","
			      "\"selector\":{\"type\":\"instance\"},\"comparison\":\"gt\","
			      "\"threshold\":90,\"group\":{\"statistic\":\"maximum\"},"
			      "\"notify_group\":{\"by\":[\"alarm\"]},\"cooldown\":300,"
			      "\"description\":\"d\",\"severity\":\"critical\"}"));
	body = json_loads("{\"group\":null,\"notify_group\":null,\"cooldown\":null,"
			  "\"description\":null,\"severity\":null}",
			  0, NULL);
	if (vg_alarm_engine_update(f->e, "grp", body, 1, NULL, &o, &errors)) {
		char *t = errors ? json_dumps(errors, 0) : NULL;
		fail_msg("PATCH with nulls refused: %s", t ? t : "");
	}
	json_decref(body);
	json_decref(o);
	o = NULL;
	assert_int_equal(vg_alarm_engine_get(f->e, "grp", NULL, &o), 0);
	assert_null(json_object_get(o, "group"));
	assert_true(json_is_null(json_object_get(o, "notify_group")));
	assert_null(json_object_get(o, "cooldown"));
	assert_string_equal(json_string_value(json_object_get(o, "description")), "");
	assert_string_equal(json_string_value(json_object_get(o, "severity")), "moderate");
	json_decref(o);
	/* a required field stays required */
	body = json_loads("{\"threshold\":null}", 0, NULL);
	assert_int_equal(vg_alarm_engine_update(f->e, "grp", body, 1, NULL, &o, &errors),
			 -EINVAL);
	assert_true(json_has(errors, "threshold"));
	json_decref(errors);
	json_decref(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_threshold_transition_reason_history_sse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notice_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_selector_join_leave, setup, teardown),
		cmocka_unit_test_setup_teardown(test_patch_null_clears, setup, teardown),
		cmocka_unit_test_setup_teardown(test_composite, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jittered_sample_closes_its_period, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_sample_after_restart_closes_its_period,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_reason_rebuilt_after_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quiet_states_restore_exactly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_step_log_compaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_step_log_after_upgrade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unbindable_sample_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_data_timer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_rate_and_percentile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_keeps_state_and_ignores_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_pages_across_projects, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_group_autoscaling, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_autoscaling_across_restarts, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_event_alarms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_published_moves_no_clock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_statistics_and_missing_member, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_exactly_once_across_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_gives_up_on_4xx_and_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_slow_receiver_does_not_hold_up_others, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_one_project_does_not_take_every_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_backlog_beyond_memory_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_stalled_thread_keeps_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_unanswered_attempt_times_out, setup,
						teardown),
		cmocka_unit_test(test_alertmanager_body),
	};
	vg_log_init("alarm_engine_test", VG_LOG_ERROR);
	if (getenv("ALARM_ENGINE_TEST_FILTER")) /* e.g. "*outbox*" */
		cmocka_set_test_filter(getenv("ALARM_ENGINE_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
