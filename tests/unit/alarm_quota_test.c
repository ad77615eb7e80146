/*
 * alarm_quota_test.c — per-project limits (alarms/quota.h) through the
 * engine: alarms and webhook destinations per project for project
 * tokens (an administrator is not limited), each refusal naming its
 * configuration key; and the notification rate per project, whose
 * excess is recorded in the history and never written to the outbox.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vigie/alarm_engine.h"
#include "vigie/alarm_outbox.h"
#include "vigie/batch.h"
#include "vigie/log.h"

#define T0 (1795000020000LL / 60000 * 60000)

static int64_t g_now;
static int64_t fake_now(void)
{
	return g_now;
}

static int create(struct vg_alarm_engine *e, const char *scope, const char *name,
		  const char *res, const char *actions, char *msg)
{
	char def[1024];
	json_t *in, *out = NULL, *errors = NULL;
	int rc;

	snprintf(def, sizeof(def),
		 "{\"name\":\"%s\",\"metric\":\"cpu.util\",\"resource\":\"%s\","
		 "\"comparison\":\"gt\",\"threshold\":90,\"actions\":{\"alarm\":%s}}",
		 name, res, actions);
	in = json_loads(def, 0, NULL);
	assert_non_null(in);
	rc = vg_alarm_engine_create(e, in, scope, &out, &errors);
	msg[0] = '\0';
	if (errors) {
		char *t = json_dumps(errors, 0);
		snprintf(msg, 512, "%s", t);
		free(t);
	}
	json_decref(in);
	json_decref(out);
	json_decref(errors);
	return rc;
}

static void send1(struct vg_alarm_engine *e, const char *res, uint64_t seq, int64_t t,
		  double v)
{
	struct vg_batch *b = vg_batch_new("h1", 1, seq, t);

	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, res, res, NULL, t));
	vg_batch_identity(b, "p1", NULL, NULL);
	vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, v);
	g_now = t + 500;
	assert_int_equal(vg_alarm_engine_batch(e, b), 0);
	vg_batch_free(b);
}

static void test_limits(void **state)
{
	struct vg_alarm_engine_options o = {0};
	struct vg_alarm_engine *e;
	struct vg_alarm_engine_stats st;
	char dir[64] = "/tmp/vigie-quota-test.XXXXXX", err[256], msg[512], cmd[128];
	int64_t next;

	(void)state;
	assert_non_null(mkdtemp(dir));
	g_now = T0;
	o.data_dir = dir;
	o.agent_interval_s = 10;
	o.now_ms = fake_now;
	o.max_alarms_per_project = 2;
	o.max_webhooks_per_project = 1;
	o.max_notifications_per_minute = 2;
	assert_int_equal(vg_alarm_engine_open(&o, &e, err, sizeof(err)), 0);

	/* webhook destinations: one origin (any path) */
	assert_int_equal(create(e, "p1", "a1", "vm1", "[\"exec://none\"]", msg), -EINVAL);
	assert_int_equal(create(e, "p1", "a1", "vm1",
				"[\"http://hooks.example.com/a\",\"http://hooks.example.com/b\"]",
				msg),
			 0);
	assert_int_equal(create(e, "p1", "a2", "vm2", "[\"https://other.example.com/\"]",
				msg),
			 -EDQUOT);
	assert_non_null(strstr(msg, "max_webhooks_per_project"));
	assert_non_null(strstr(msg, "at most 1"));
	assert_int_equal(create(e, "p1", "a2", "vm2", "[\"log://\"]", msg), 0);
	/* alarms */
	assert_int_equal(create(e, "p1", "a3", "vm3", "[\"log://\"]", msg), -EDQUOT);
	assert_non_null(strstr(msg, "max_alarms_per_project"));
	assert_non_null(strstr(msg, "has 2 alarms, at most 2"));
	assert_int_equal(create(e, "p2", "a3", "vm3", "[\"log://\"]", msg), 0); /* another project */
	/* an administrator decides for itself */
	assert_int_equal(create(e, NULL, "a3", "vm3",
				"[\"http://hooks.example.com/c\"]", msg),
			 0);
	char def[256];
	snprintf(def, sizeof(def), "{\"name\":\"a4\",\"project\":\"p1\",\"metric\":"
				   "\"cpu.util\",\"resource\":\"vm4\",\"comparison\":\"gt\",\"threshold\":90,"
				   "\"actions\":{\"alarm\":[\"http://hooks.example.com/d\"]}}");
	json_t *in = json_loads(def, 0, NULL), *out = NULL, *errors = NULL;
	assert_int_equal(vg_alarm_engine_create(e, in, NULL, &out, &errors), 0);
	json_decref(in);
	json_decref(out);

	/* notification rate: 2 a minute for p1; its three alarms (a1, a2,
	 * a4: the others are other projects' and do not see p1's vm3) fire
	 * in the same minute */
	for (int i = 1; i <= 4; i++) {
		char r[8];
		snprintf(r, sizeof(r), "vm%d", i);
		send1(e, r, (uint64_t)i, T0, 95);
	}
	for (int i = 1; i <= 4; i++) {
		char r[8];
		snprintf(r, sizeof(r), "vm%d", i);
		send1(e, r, (uint64_t)(10 + i), T0 + 60000, 95);
	}
	vg_alarm_engine_get_stats(e, &st);
	assert_int_equal(st.transitions, 3);
	assert_int_equal(st.rate_limited, 1);
	assert_int_equal(st.notifications, 2);
	/* the one held back is in the history, and not in the outbox:
	 * only a1's and a4's webhook rows are there, or a1's alone */
	struct vg_alarm_history_query q = {0};
	json_t *h = NULL;
	int64_t nx;
	int suppressed = 0;
	q.end_ms = INT64_MAX;
	q.type = "transition";
	q.limit = 10;
	for (int i = 0; i < 3; i++) {
		const char *nm[] = {"a1", "a2", "a4"};
		char ref[16];
		snprintf(ref, sizeof(ref), "%s", nm[i]);
		if (i == 2) {
			/* a4 is p1's but was created by the administrator */
			assert_int_equal(vg_alarm_engine_history(e, "a4", "p1", &q, &h, &nx), 0);
		} else {
			assert_int_equal(vg_alarm_engine_history(e, ref, "p1", &q, &h, &nx), 0);
		}
		assert_int_equal(json_array_size(h), 1);
		json_t *d = json_object_get(json_array_get(h, 0), "detail");
		if (json_object_get(d, "suppressed")) {
			suppressed++;
			assert_non_null(strstr(json_string_value(json_object_get(d, "suppressed")),
					       "max_notifications_per_minute"));
			assert_true(json_is_false(json_object_get(d, "notified")));
		}
		json_decref(h);
	}
	assert_int_equal(suppressed, 1);
	vg_alarm_engine_close(e);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	(void)next;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limits),
	};
	vg_log_init("alarm_quota_test", VG_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
