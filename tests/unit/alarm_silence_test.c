/*
 * alarm_silence_test.c — silences (vigie/alarm_silence.h) on their own
 * (matchers, scope, validation, the per-project limit, persistence) and
 * in the engine: a silenced transition is recorded in the history with
 * the silence's id and never reaches the webhook receiver, also when the
 * process is killed (SIGKILL) right after the transition committed; once
 * the silence is expired, the next transition is delivered.
 * alarm_silence_pg_test.c runs every case again with the silences and the
 * alarm store in a fresh PostgreSQL database.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "alarms/timewin.h"
#include "vigie/alarm_engine.h"
#include "vigie/alarm_outbox.h"
#include "vigie/alarm_silence.h"
#include "vigie/alarm_store.h"
#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/db.h"
#include "vigie/log.h"

#define T0 (1795000020000LL / 60000 * 60000)

static char g_dir[64];
static int64_t g_now;

/* alarm_silence_pg_test.c runs every case again with the store in a fresh
 * PostgreSQL database: g_fresh_url makes one per case into g_url. */
static int (*g_fresh_url)(char *url, size_t len);
static char g_url[700];

/* Where the engine keeps its state: this case's directory or database. */
static const char *store_where(void)
{
	return g_fresh_url ? g_url : g_dir;
}

static int64_t fake_now(void)
{
	return g_now;
}

static int setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/vigie-silence-test.XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	if (g_fresh_url && g_fresh_url(g_url, sizeof(g_url)))
		return -1;
	g_now = T0;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static json_t *mk(struct vg_alarm_silences *s, const char *scope, const char *text,
		  int *rc)
{
	json_t *in = json_loads(text, 0, NULL), *out = NULL, *errors = NULL;

	assert_non_null(in);
	*rc = vg_alarm_silences_create(s, in, scope, T0, &out, &errors);
	json_decref(in);
	if (*rc) {
		assert_null(out);
		return errors;
	}
	assert_null(errors);
	return out;
}

/* SQL run on the silences' database as it is (rows as a collector of
 * an older rule wrote them). */
static void store_row(const char *url, const char *sql)
{
	struct vg_db *db;
	char err[256] = "";

	if (vg_db_open(url, NULL, &db, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(vg_db_exec(db, sql), 0);
	vg_db_close(db);
}

/* This case's silences: their store's URL (this case's database, or
 * alarms.db in its directory) into url, of sizeof(g_url) bytes, to open
 * it again, and the store opened on it with per_project silences at most
 * per project. */
static struct vg_alarm_silences *open_silences(char *url, unsigned per_project)
{
	struct vg_alarm_silences *s;
	char err[256];

	if (g_fresh_url)
		snprintf(url, sizeof(g_url), "%s", g_url);
	else
		snprintf(url, sizeof(g_url), "sqlite:%s/alarms.db", g_dir);
	assert_int_equal(vg_alarm_silences_open(url, per_project, T0, &s, err, sizeof(err)), 0);
	return s;
}

static void test_matchers_scope_limits_persistence(void **state)
{
	struct vg_alarm_silences *s;
	struct vg_alarm_def def = {0};
	struct vg_alarm_kv meta = {"metering.server_group", "web"};
	char url[sizeof(g_url)], err[256], id[40], sid[40], p3[40];
	json_t *j;
	int rc;

	(void)state;
	s = open_silences(url, 2);

	/* validation: one entry per problem */
	j = mk(s, NULL, "{\"matchers\":{\"hots\":\"x\",\"severity\":\"huge\"}}", &rc);
	assert_int_equal(rc, -EINVAL);
	char *t = json_dumps(j, 0);
	assert_non_null(strstr(t, "matchers.hots"));
	assert_non_null(strstr(t, "matchers.severity"));
	assert_non_null(strstr(t, "ends_at"));
	assert_non_null(strstr(t, "created_by"));
	assert_non_null(strstr(t, "comment"));
	free(t);
	json_decref(j);
	/* a resource named with U+202E (displays as another) */
	j = mk(s, NULL, "{\"matchers\":{\"resource\":\"shop\\u202ebew\"},"
			"\"duration\":\"1h\",\"created_by\":\"ops\",\"comment\":\"x\"}",
	       &rc);
	assert_int_equal(rc, -EINVAL);
	t = json_dumps(j, 0);
	assert_non_null(strstr(t, "matchers.resource"));
	free(t);
	json_decref(j);
	/* labels follow the same rule: a bidi override or a control
	 * character in a key or a value, a value past 255 bytes */
	{
		static const char *const labels[] = {
			"{\"a\\u202eb\":\"x\"}",
			"{\"k\":\"x\\u001b[31m\"}",
			"{\"k\":\"a\\nb\"}",
			"{\"\":\"x\"}",
			"{\"k\":\"\"}",
		};
		char in[600];
		for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]) + 1; i++) {
			if (i < sizeof(labels) / sizeof(labels[0]))
				snprintf(in, sizeof(in),
					 "{\"matchers\":{\"labels\":%s},\"duration\":\"1h\","
					 "\"created_by\":\"ops\",\"comment\":\"x\"}",
					 labels[i]);
			else
				snprintf(in, sizeof(in),
					 "{\"matchers\":{\"labels\":{\"k\":\"%0256d\"}},"
					 "\"duration\":\"1h\",\"created_by\":\"ops\","
					 "\"comment\":\"x\"}",
					 0);
			j = mk(s, "p1", in, &rc);
			assert_int_equal(rc, -EINVAL);
			t = json_dumps(j, 0);
			assert_non_null(strstr(t, "matchers.labels"));
			free(t);
			json_decref(j);
		}
	}
	/* times that are no time: strtod's hex and exponents and spaces
	 * (" 1h" was an hour, "0x10h" sixteen), a start 99999999 days ago
	 * (stored as the year -271764) and an end past 9999 (written as the
	 * year 10000, no ISO 8601 a client can read back) */
	{
		static const char *const hostile[][2] = {
			{"\"duration\":\"0x10h\"", "duration"},
			{"\"duration\":\"1e2h\"", "duration"},
			{"\"duration\":\" 1h\"", "duration"},
			{"\"duration\":\"infh\"", "duration"},
			/* a plain decimal and a unit: no unit was seconds */
			{"\"duration\":\"90\"", "duration"},
			{"\"duration\":\"90min\"", "duration"},
			{"\"duration\":\"s\"", "duration"},
			/* ended before it silenced anything: was active,
			 * its ends_at reading as its starts_at */
			{"\"duration\":\"0.001s\"", "duration"},
			{"\"duration\":\"0.999s\"", "duration"},
			{"\"ends_at\":\"+0.5s\"", "ends_at"},
			{"\"starts_at\":\"-99999999d\",\"duration\":\"1h\"", "starts_at"},
			{"\"starts_at\":\"9999-12-31T23:00:00Z\",\"duration\":\"2h\"",
			 "ends_at"},
			{"\"ends_at\":\"+99999999d\"", "ends_at"},
		};
		for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
			char in[256];
			snprintf(in, sizeof(in),
				 "{\"matchers\":{\"host\":\"h\"},%s,"
				 "\"created_by\":\"ops\",\"comment\":\"x\"}",
				 hostile[i][0]);
			j = mk(s, "p1", in, &rc);
			assert_int_equal(rc, -EINVAL);
			t = json_dumps(j, 0);
			assert_non_null(strstr(t, hostile[i][1]));
			free(t);
			json_decref(j);
		}
	}
	/* the end given twice (ends_at and duration: one was dropped without
	 * a word, the silence ending where the caller did not say), or in a
	 * JSON type it does not take (a number: answered as if absent): the
	 * error names the field that is wrong */
	{
		static const char *const twice[][2] = {
			{"\"ends_at\":\"+2h\",\"duration\":\"1h\"", "duration"},
			{"\"duration\":3600", "duration"},
			{"\"duration\":[\"1h\"]", "duration"},
			{"\"ends_at\":1795676400", "ends_at"},
		};
		for (size_t i = 0; i < sizeof(twice) / sizeof(twice[0]); i++) {
			char in[256];
			size_t k;
			json_t *e;
			int named = 0;
			snprintf(in, sizeof(in),
				 "{\"matchers\":{\"host\":\"h\"},%s,"
				 "\"created_by\":\"ops\",\"comment\":\"x\"}",
				 twice[i][0]);
			j = mk(s, "p1", in, &rc);
			assert_int_equal(rc, -EINVAL);
			assert_int_equal(json_array_size(j), 1);
			json_array_foreach(j, k, e)
				named |= !strcmp(
					json_string_value(json_object_get(e, "field")), twice[i][1]);
			assert_true(named);
			json_decref(j);
		}
	}
	j = mk(s, "p1", "{\"matchers\":{\"project\":\"p2\"},\"duration\":\"1h\","
			"\"created_by\":\"eve\",\"comment\":\"x\"}",
	       &rc);
	assert_int_equal(rc, -EINVAL); /* not another project's */
	json_decref(j);
	/* a tenant whose project is named "*" (every project, to a silence)
	 * silenced every tenant */
	j = mk(s, "*", "{\"duration\":\"1h\",\"created_by\":\"eve\",\"comment\":\"x\"}",
	       &rc);
	assert_int_equal(rc, -EINVAL);
	json_decref(j);
	/* ... nor through a top-level "project", as an alarm names it */
	j = mk(s, "p1", "{\"project\":\"p2\",\"duration\":\"1h\","
			"\"created_by\":\"eve\",\"comment\":\"x\"}",
	       &rc);
	assert_int_equal(rc, -EINVAL);
	json_decref(j);
	/* an administrator's top-level "project" scopes the silence to
	 * it, never to every project; one contradicting matchers.project
	 * is refused */
	j = mk(s, NULL, "{\"project\":\"p3\",\"duration\":\"1h\","
			"\"created_by\":\"ops\",\"comment\":\"x\"}",
	       &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(json_string_value(json_object_get(j, "project")), "p3");
	snprintf(p3, sizeof(p3), "%s", json_string_value(json_object_get(j, "id")));
	json_decref(j);
	assert_int_equal(vg_alarm_silences_expire(s, p3, NULL, T0), 0);
	j = mk(s, NULL, "{\"project\":\"p3\",\"matchers\":{\"project\":\"p4\"},"
			"\"duration\":\"1h\",\"created_by\":\"ops\",\"comment\":\"x\"}",
	       &rc);
	assert_int_equal(rc, -EINVAL);
	json_decref(j);

	/* a host in maintenance, for two hours, by an administrator */
	j = mk(s, NULL, "{\"matchers\":{\"host\":\"compute-7\",\"severity\":\"critical\"},"
			"\"duration\":\"2h\",\"created_by\":\"ops\",\"comment\":\"kernel update\"}",
	       &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(json_string_value(json_object_get(j, "project")), "*");
	assert_string_equal(json_string_value(json_object_get(j, "state")), "active");
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j, "id")));
	json_decref(j);
	/* a project's silence on a label of its group, starting in an hour */
	j = mk(s, "p1", "{\"matchers\":{\"labels\":{\"metering.server_group\":\"web\"}},"
			"\"starts_at\":\"2026-11-18T18:00:00Z\",\"ends_at\":\"2026-11-18T19:00:00Z\","
			"\"created_by\":\"alice\",\"comment\":\"deploy\"}",
	       &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(json_string_value(json_object_get(j, "project")), "p1");
	json_decref(j);

	struct vg_alarm_silence_subject sj = {.project = "p9", .resource = "vm1", .host = "compute-7", .alarm = "cpu", .severity = VG_SEV_CRITICAL};
	assert_int_equal(vg_alarm_silences_match(s, &sj, T0 + 1000, sid), 1);
	assert_string_equal(sid, id);
	sj.severity = VG_SEV_LOW;
	assert_int_equal(vg_alarm_silences_match(s, &sj, T0 + 1000, sid), 0);
	sj.severity = VG_SEV_CRITICAL;
	sj.host = "compute-8";
	assert_int_equal(vg_alarm_silences_match(s, &sj, T0 + 1000, sid), 0);
	sj.host = "compute-7";
	assert_int_equal(vg_alarm_silences_match(s, &sj, T0 + 2 * 3600000, sid), 0); /* ended */

	def.sel.nmeta = 1;
	def.sel.meta = &meta;
	struct vg_alarm_silence_subject sg = {.project = "p1", .resource = "vm2", .alarm = "cpu", .severity = 0, .def = &def};
	int64_t six = 0;
	assert_int_equal(vg_time_parse("2026-11-18T18:30:00Z", 0, &six), 0);
	assert_int_equal(vg_alarm_silences_match(s, &sg, six, sid), 1);
	assert_int_equal(vg_alarm_silences_match(s, &sg, six - 3600000, sid), 0); /* pending */
	sg.project = "p2";
	assert_int_equal(vg_alarm_silences_match(s, &sg, six, sid), 0);

	/* scope: p1 sees its own only, cannot expire the global one */
	assert_int_equal(vg_alarm_silences_list(s, "p1", "all", T0, &j), 0);
	assert_int_equal(json_array_size(json_object_get(j, "silences")), 1);
	json_decref(j);
	assert_int_equal(vg_alarm_silences_expire(s, id, "p1", T0), -ENOENT);
	assert_int_equal(vg_alarm_silences_get(s, id, "p1", T0, &j), -ENOENT);

	/* the per-project limit (2 here) names itself */
	j = mk(s, "p1", "{\"duration\":\"1h\",\"created_by\":\"a\",\"comment\":\"b\"}", &rc);
	assert_int_equal(rc, 0);
	json_decref(j);
	j = mk(s, "p1", "{\"duration\":\"1h\",\"created_by\":\"a\",\"comment\":\"b\"}", &rc);
	assert_int_equal(rc, -EDQUOT);
	t = json_dumps(j, 0);
	assert_non_null(strstr(t, "max_silences_per_project"));
	free(t);
	json_decref(j);
	vg_alarm_silences_close(s);

	/* persisted: reopened, the same silences; expire writes through */
	assert_int_equal(vg_alarm_silences_open(url, 2, T0, &s, err, sizeof(err)), 0);
	assert_int_equal(vg_alarm_silences_list(s, NULL, "all", T0, &j), 0);
	assert_int_equal(json_array_size(json_object_get(j, "silences")), 4); /* p3's expired one too */
	json_decref(j);
	assert_int_equal(vg_alarm_silences_expire(s, id, NULL, T0 + 60000), 0);
	vg_alarm_silences_close(s);
	assert_int_equal(vg_alarm_silences_open(url, 2, T0, &s, err, sizeof(err)), 0);
	assert_int_equal(vg_alarm_silences_get(s, id, NULL, T0 + 120000, &j), 0);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "expired");
	json_decref(j);
	sj.host = "compute-7";
	assert_int_equal(vg_alarm_silences_match(s, &sj, T0 + 120000, sid), 0);
	vg_alarm_silences_close(s);

	/* a silence of every project made by a token for the project "*"
	 * (before such tokens were refused) is not loaded: it silenced
	 * every tenant (the row as such a collector wrote it; sqlite) */
	if (!g_fresh_url) {
		char sql[512];
		snprintf(sql, sizeof(sql),
			 "INSERT INTO alarm_silences (id, project, matchers, starts_ms,"
			 " ends_ms, created_by, created_with, comment, created_ms) VALUES"
			 " ('star', '*', '{}', %lld, %lld, 'eve', 'project token (*)',"
			 " 'x', %lld)",
			 (long long)T0, (long long)(T0 + 3600000), (long long)T0);
		store_row(url, sql);
		assert_int_equal(vg_alarm_silences_open(url, 2, T0, &s, err, sizeof(err)), 0);
		sj.project = "p9";
		sj.host = "elsewhere";
		assert_int_equal(vg_alarm_silences_match(s, &sj, T0 + 120000, sid), 0);
		assert_int_equal(vg_alarm_silences_get(s, "star", NULL, T0, &j), -ENOENT);
		vg_alarm_silences_close(s);

		/* silences stored before the character rule, with a host and
		 * a label it now refuses, load with those matchers: dropped,
		 * they would silence every alarm of the project */
		snprintf(sql, sizeof(sql),
			 "INSERT INTO alarm_silences (id, project, matchers, starts_ms,"
			 " ends_ms, created_by, created_with, comment, created_ms) VALUES"
			 " ('old1', 'p5', '{\"host\":\"compute\u200b7\"}', %lld, %lld,"
			 " 'ops', 'administrator', 'x', %lld),"
			 " ('old2', 'p6', '{\"labels\":{\"k\":\"a\\nb\"}}', %lld, %lld,"
			 " 'ops', 'administrator', 'x', %lld)",
			 (long long)T0, (long long)(T0 + 3600000), (long long)T0,
			 (long long)T0, (long long)(T0 + 3600000), (long long)T0);
		store_row(url, sql);
		assert_int_equal(vg_alarm_silences_open(url, 2, T0, &s, err, sizeof(err)), 0);
		sj.project = "p5";
		sj.host = "compute-1";
		assert_int_equal(vg_alarm_silences_match(s, &sj, T0 + 120000, sid), 0);
		sj.host = "compute\u200b7";
		assert_int_equal(vg_alarm_silences_match(s, &sj, T0 + 120000, sid), 1);
		sj.project = "p6";
		sj.def = NULL; /* no labels: a label matcher cannot hold */
		assert_int_equal(vg_alarm_silences_match(s, &sj, T0 + 120000, sid), 0);
		vg_alarm_silences_close(s);
	}
}

/* ---- in the engine, across SIGKILL ----------------------------------------------- */

struct receiver {
	struct MHD_Daemon *d;
	uint16_t port;
	pthread_mutex_t lock;
	int requests;
};

static enum MHD_Result on_req(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version,
			      const char *upload, size_t *upload_size, void **con)
{
	struct receiver *r = cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (!*con) {
		*con = (void *)1;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&r->lock);
	r->requests++;
	pthread_mutex_unlock(&r->lock);
	resp = MHD_create_response_from_buffer(2, (void *)"ok", MHD_RESPMEM_PERSISTENT);
	ret = MHD_queue_response(c, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con,
		    enum MHD_RequestTerminationCode t)
{
	*con = NULL;
}

static void open_engine(struct vg_alarm_engine **e)
{
	struct vg_alarm_engine_options o = {0};
	char err[256];

	o.data_dir = store_where();
	o.agent_interval_s = 10;
	o.now_ms = fake_now;
	o.webhook_timeout_ms = 30000; /* generous: no case here waits for a timeout */
	if (vg_alarm_engine_open(&o, e, err, sizeof(err)))
		fail_msg("engine open: %s", err);
}

static void send1(struct vg_alarm_engine *e, uint64_t seq, int64_t t, double v)
{
	struct vg_batch *b = vg_batch_new("compute-7", 1, seq, t);

	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, "vm1", "vm1", NULL, t));
	vg_batch_identity(b, "default", NULL, NULL);
	vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, v);
	g_now = t + 500;
	assert_int_equal(vg_alarm_engine_batch(e, b), 0);
	vg_batch_free(b);
}

static json_t *transitions(struct vg_alarm_engine *e)
{
	struct vg_alarm_history_query q = {0};
	json_t *out = NULL;
	int64_t next;

	q.end_ms = INT64_MAX;
	q.type = "transition";
	q.limit = 100;
	assert_int_equal(vg_alarm_engine_history(e, "cpu", NULL, &q, &out, &next), 0);
	return out;
}

/* No outbox row at all: run_once said so (INT64_MAX). A shared
 * PostgreSQL outbox answers "look again within a second" instead (other
 * collectors add rows: vigie/alarm_store.h), so ask the store itself
 * whether any row was ever written. */
static void assert_no_outbox_row(int64_t next)
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
	assert_int_equal(vg_alarm_store_open(store_where(), &st, err, sizeof(err)), 0);
	assert_int_equal(vg_alarm_store_outbox_due(st, INT64_MAX / 2, 0, it, 1, &n, &nx), 0);
	assert_int_equal(n, 0);
	vg_alarm_store_close(st);
}

static void test_silenced_not_delivered_across_sigkill(void **state)
{
	struct receiver rx = {0};
	struct vg_alarm_engine *e;
	char def[512], sid[64] = "";
	int pfd[2], st;
	int64_t next;
	pid_t pid;

	(void)state;
	pthread_mutex_init(&rx.lock, NULL);
	/* The receiver's socket is bound here and its server started only
	 * after the fork: a fork while another thread (the server's) holds
	 * an allocator lock leaves the child's malloc waiting forever, as
	 * the sanitizer build's allocator showed (the child hung in sqlite's
	 * first allocation). */
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t salen = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 16), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &salen), 0);
	rx.port = ntohs(sa.sin_port);
	snprintf(def, sizeof(def),
		 "{\"name\":\"cpu\",\"metric\":\"cpu.util\",\"resource\":\"vm1\","
		 "\"comparison\":\"gt\",\"threshold\":90,\"severity\":\"critical\","
		 "\"actions\":{\"alarm\":[\"http://127.0.0.1:%u/hook\"],"
		 "\"ok\":[\"http://127.0.0.1:%u/hook\"]}}",
		 rx.port, rx.port);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		json_t *in, *out = NULL, *errors = NULL;
		close(lfd);
		open_engine(&e);
		in = json_loads(def, 0, NULL);
		if (vg_alarm_engine_create(e, in, NULL, &out, &errors))
			_exit(2);
		in = json_loads("{\"matchers\":{\"host\":\"compute-7\"},\"duration\":\"1h\","
				"\"created_by\":\"ops\",\"comment\":\"maintenance\"}",
				0, NULL);
		if (vg_alarm_silences_create(vg_alarm_engine_silences(e), in, NULL, g_now,
					     &out, &errors))
			_exit(3);
		dprintf(pfd[1], "%s", json_string_value(json_object_get(out, "id")));
		send1(e, 1, T0, 95);
		send1(e, 2, T0 + 60000, 95); /* -> alarm, committed at the batch end */
		raise(SIGKILL);
		_exit(4);
	}
	close(pfd[1]);
	rx.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL,
				NULL, on_req, &rx, MHD_OPTION_LISTEN_SOCKET, lfd,
				MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_END);
	assert_non_null(rx.d);
	assert_true(read(pfd[0], sid, sizeof(sid) - 1) > 0);
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

	g_now = T0 + 120000;
	open_engine(&e);
	assert_int_equal(vg_alarm_outbox_run_once(vg_alarm_engine_outbox(e), &next), 0);
	assert_no_outbox_row(next);
	assert_int_equal(rx.requests, 0);
	json_t *h = transitions(e);
	assert_int_equal(json_array_size(h), 1);
	json_t *d = json_object_get(json_array_get(h, 0), "detail");
	assert_string_equal(json_string_value(json_object_get(d, "current")), "alarm");
	assert_string_equal(json_string_value(json_object_get(d, "silenced_by")), sid);
	assert_true(json_is_false(json_object_get(d, "notified")));
	json_decref(h);
	/* the silence survived too: the next transition (ok) is silenced */
	send1(e, 3, T0 + 120000, 5);
	send1(e, 4, T0 + 180000, 5);
	assert_int_equal(vg_alarm_outbox_run_once(vg_alarm_engine_outbox(e), &next), 0);
	h = transitions(e);
	assert_int_equal(json_array_size(h), 2);
	d = json_object_get(json_array_get(h, 1), "detail");
	assert_string_equal(json_string_value(json_object_get(d, "current")), "ok");
	assert_string_equal(json_string_value(json_object_get(d, "silenced_by")), sid);
	json_decref(h);
	/* expired: the next one is delivered, once */
	assert_int_equal(vg_alarm_silences_expire(vg_alarm_engine_silences(e), sid, NULL,
						  g_now),
			 0);
	send1(e, 5, T0 + 240000, 95);
	send1(e, 6, T0 + 300000, 95);
	assert_int_equal(vg_alarm_outbox_run_once(vg_alarm_engine_outbox(e), &next), 1);
	assert_int_equal(rx.requests, 1);
	h = transitions(e);
	assert_int_equal(json_array_size(h), 3);
	d = json_object_get(json_array_get(h, 2), "detail");
	assert_string_equal(json_string_value(json_object_get(d, "current")), "alarm");
	assert_null(json_object_get(d, "silenced_by"));
	json_decref(h);
	struct vg_alarm_engine_stats es;
	vg_alarm_engine_get_stats(e, &es);
	assert_int_equal(es.silenced, 1); /* this process's (the ok) */
	vg_alarm_engine_close(e);
	MHD_stop_daemon(rx.d);
}

/* ---- time constraints ----------------------------------------------------------- */

static void send_at(struct vg_alarm_engine *e, const char *res, uint64_t seq,
		    const char *iso, double v)
{
	struct vg_batch *b;
	int64_t t;

	assert_int_equal(vg_time_parse(iso, 0, &t), 0);
	b = vg_batch_new("compute-1", 1, seq, t);
	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, res, res, NULL, t));
	vg_batch_identity(b, "default", NULL, NULL);
	vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, v);
	g_now = t + 500;
	assert_int_equal(vg_alarm_engine_batch(e, b), 0);
	vg_batch_free(b);
}

static json_t *last_transition(struct vg_alarm_engine *e, const char *ref)
{
	struct vg_alarm_history_query q = {0};
	json_t *out = NULL, *d;
	int64_t next;

	q.end_ms = INT64_MAX;
	q.type = "transition";
	q.limit = 100;
	assert_int_equal(vg_alarm_engine_history(e, ref, NULL, &q, &out, &next), 0);
	assert_true(json_array_size(out) > 0);
	d = json_incref(json_object_get(json_array_get(out, json_array_size(out) - 1),
					"detail"));
	json_decref(out);
	return d;
}

/* A list of every value of a field is a cron field: "0,1,...,59" (169
 * bytes) was refused as "not a cron expression" by a 64-byte buffer. A
 * longer field is refused with the limit named. */
static void test_cron_lists(void **state)
{
	char start[1200], err[256];
	json_t *tc, *out = NULL;
	size_t o = 0;
	int64_t t;

	(void)state;
	for (int m = 0; m < 60; m++)
		o += (size_t)snprintf(start + o, sizeof(start) - o, "%s%02d", m ? "," : "", m);
	snprintf(start + o, sizeof(start) - o, " 9 * * *");
	tc = json_pack("[{s:s,s:i}]", "start", start, "duration", 60);
	err[0] = '\0';
	if (vg_alarm_timewin_parse(tc, &out, err, sizeof(err)))
		fail_msg("%s", err);
	/* 09:37Z is inside (minute 37 listed), 10:37Z is not */
	assert_int_equal(vg_time_parse("2026-11-18T09:37:30Z", 0, &t), 0);
	assert_int_equal(vg_alarm_timewin_inside(out, t), 1);
	assert_int_equal(vg_time_parse("2026-11-18T10:37:30Z", 0, &t), 0);
	assert_int_equal(vg_alarm_timewin_inside(out, t), 0);
	json_decref(out);
	json_decref(tc);
	/* a field past the limit: the message names it */
	o = 0;
	for (int m = 0; m < 300; m++)
		o += (size_t)snprintf(start + o, sizeof(start) - o, "%s1", m ? "," : "");
	snprintf(start + o, sizeof(start) - o, " 9 * * *");
	tc = json_pack("[{s:s,s:i}]", "start", start, "duration", 60);
	out = NULL;
	assert_int_equal(vg_alarm_timewin_parse(tc, &out, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "longer than 512 bytes"));
	assert_null(out);
	json_decref(tc);
}

static void test_time_constraints(void **state)
{
	struct vg_alarm_engine *e;
	json_t *in, *out = NULL, *errors = NULL, *d;
	char def[700];
	int64_t next;
	static const char *const bad[] = {
		"[{\"start\":\"0 9 * *\",\"duration\":3600}]",
		"[{\"start\":\"0 25 * * *\",\"duration\":3600}]",
		"[{\"start\":\"0 9 * * 1-5\",\"duration\":10}]",
		/* strtod's hex: sixteen hours */
		"[{\"start\":\"0 9 * * 1-5\",\"duration\":\"0x10h\"}]",
		"[{\"start\":\"0 9 * * 1-5\",\"duration\":3600,\"timezone\":\"Mars/Olympus\"}]",
		"[{\"start\":\"0 9 * * 1-5\",\"duration\":3600,\"timezone\":\"../../etc/passwd\"}]",
		"{\"start\":\"0 9 * * 1-5\"}", NULL};

	(void)state;
	open_engine(&e);
	for (int i = 0; bad[i]; i++) {
		snprintf(def, sizeof(def), "{\"name\":\"bad\",\"metric\":\"cpu.util\","
					   "\"resource\":\"vm5\",\"comparison\":\"gt\",\"threshold\":90,"
					   "\"time_constraints\":%s}",
			 bad[i]);
		in = json_loads(def, 0, NULL);
		assert_non_null(in);
		assert_int_equal(vg_alarm_engine_create(e, in, NULL, &out, &errors), -EINVAL);
		char *t = json_dumps(errors, 0);
		if (!strstr(t, "time_constraints"))
			fail_msg("%s: %s", bad[i], t);
		free(t);
		json_decref(errors);
		json_decref(in);
	}
	/* business hours in Paris and in New York, the same alarm otherwise */
	const char *zones[] = {"Europe/Paris", "America/New_York"};
	const char *names[] = {"paris", "newyork"};
	for (int i = 0; i < 2; i++) {
		snprintf(def, sizeof(def), "{\"name\":\"%s\",\"metric\":\"cpu.util\","
					   "\"resource\":\"vm5\",\"comparison\":\"gt\",\"threshold\":90,"
					   "\"actions\":{\"alarm\":[\"exec://none\"]},"
					   "\"time_constraints\":[{\"name\":\"office\","
					   "\"start\":\"0 9 * * 1-5\",\"duration\":\"9h\","
					   "\"timezone\":\"%s\"}]}",
			 names[i], zones[i]);
		in = json_loads(def, 0, NULL);
		errors = NULL;
		int rc = vg_alarm_engine_create(e, in, NULL, &out, &errors);
		if (rc) /* no exec configured: use log:// */
		{
			json_decref(errors);
			json_object_set_new(json_object_get(in, "actions"), "alarm",
					    json_pack("[s]", "log://"));
			assert_int_equal(vg_alarm_engine_create(e, in, NULL, &out, &errors), 0);
		}
		assert_int_equal(json_integer_value(json_object_get(json_array_get(
									    json_object_get(out, "time_constraints"), 0),
								    "duration")),
				 32400);
		json_decref(out);
		json_decref(in);
	}
	/* Wednesday 2026-11-18, 06:00Z = 07:00 in Paris: outside */
	send_at(e, "vm5", 1, "2026-11-18T05:58:00Z", 95);
	send_at(e, "vm5", 2, "2026-11-18T05:59:00Z", 95);
	d = last_transition(e, "paris");
	assert_string_equal(json_string_value(json_object_get(d, "current")), "alarm");
	assert_non_null(strstr(json_string_value(json_object_get(d, "suppressed")),
			       "time_constraints"));
	json_decref(d);
	send_at(e, "vm5", 3, "2026-11-18T06:00:00Z", 5);
	send_at(e, "vm5", 4, "2026-11-18T06:01:00Z", 5);
	/* 08:31Z = 09:31 in Paris (inside), 03:31 in New York (outside) */
	send_at(e, "vm5", 5, "2026-11-18T08:30:00Z", 95);
	send_at(e, "vm5", 6, "2026-11-18T08:31:00Z", 95);
	d = last_transition(e, "paris");
	assert_string_equal(json_string_value(json_object_get(d, "current")), "alarm");
	assert_null(json_object_get(d, "suppressed"));
	assert_null(json_object_get(d, "notified"));
	json_decref(d);
	d = last_transition(e, "newyork");
	assert_string_equal(json_string_value(json_object_get(d, "current")), "alarm");
	assert_non_null(json_object_get(d, "suppressed"));
	json_decref(d);
	/* Saturday 2026-11-21 09:31 in Paris: outside (1-5) */
	send_at(e, "vm5", 7, "2026-11-21T08:00:00Z", 5);
	send_at(e, "vm5", 8, "2026-11-21T08:01:00Z", 5);
	send_at(e, "vm5", 9, "2026-11-21T08:30:00Z", 95);
	send_at(e, "vm5", 10, "2026-11-21T08:31:00Z", 95);
	d = last_transition(e, "paris");
	assert_string_equal(json_string_value(json_object_get(d, "current")), "alarm");
	assert_non_null(json_object_get(d, "suppressed"));
	json_decref(d);
	struct vg_alarm_engine_stats st;
	vg_alarm_engine_get_stats(e, &st);
	/* every event of a transition outside counts (SSE included), not only
	 * those with actions: paris 5 here, newyork 9 */
	assert_int_equal(st.outside_time, 14);
	(void)next;
	vg_alarm_engine_close(e);
}

/* ---- inhibition -------------------------------------------------------------------- */

static void send_on(struct vg_alarm_engine *e, const char *host, const char *res,
		    const char *metric, uint64_t seq, int64_t t, double v)
{
	struct vg_batch *b = vg_batch_new(host, 1, seq, t);

	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, res, res, NULL, t));
	vg_batch_identity(b, "default", NULL, NULL);
	vg_batch_sample(b, metric, VG_KIND_GAUGE, v);
	g_now = t + 500;
	assert_int_equal(vg_alarm_engine_batch(e, b), 0);
	vg_batch_free(b);
}

static void test_inhibition(void **state)
{
	struct vg_alarm_engine *e;
	struct vg_alarm_engine_stats st;
	json_t *in, *out = NULL, *errors = NULL, *d;
	static const char *const defs[] = {
		"{\"name\":\"hostcheck\",\"metric\":\"mem.util\",\"resource\":\"hv7\","
		"\"comparison\":\"gt\",\"threshold\":90,\"inhibits\":[\"vmcpu\"],"
		"\"actions\":{\"alarm\":[\"log://\"]}}",
		"{\"name\":\"vmcpu\",\"metric\":\"cpu.util\",\"selector\":{\"type\":"
		"\"instance\"},\"comparison\":\"gt\",\"threshold\":90,"
		"\"actions\":{\"alarm\":[\"log://\"]}}",
		NULL};
	int64_t t = T0;

	(void)state;
	open_engine(&e);
	in = json_loads("{\"name\":\"x\",\"metric\":\"cpu.util\",\"resource\":\"v\","
			"\"comparison\":\"gt\",\"threshold\":1,\"inhibits\":[\"no spaces\"]}",
			0, NULL);
	assert_int_equal(vg_alarm_engine_create(e, in, NULL, &out, &errors), -EINVAL);
	json_decref(errors);
	json_decref(in);
	for (int i = 0; defs[i]; i++) {
		in = json_loads(defs[i], 0, NULL);
		assert_non_null(in);
		assert_int_equal(vg_alarm_engine_create(e, in, NULL, &out, &errors), 0);
		json_decref(out);
		json_decref(in);
	}
	/* compute-7's check fires (hv7 runs there) */
	send_on(e, "compute-7", "hv7", "mem.util", 1, t, 95);
	send_on(e, "compute-7", "hv7", "mem.util", 2, t + 60000, 95);
	/* then vm1 (compute-7) and vm2 (compute-8) both go above 90 */
	send_on(e, "compute-7", "vm1", "cpu.util", 3, t + 120000, 95);
	send_on(e, "compute-8", "vm2", "cpu.util", 4, t + 120000, 95);
	send_on(e, "compute-7", "vm1", "cpu.util", 5, t + 180000, 95);
	send_on(e, "compute-8", "vm2", "cpu.util", 6, t + 180000, 95);

	struct vg_alarm_history_query q = {0};
	json_t *h = NULL;
	int64_t nx;
	size_t i;
	int vm1 = 0, vm2 = 0;
	q.end_ms = INT64_MAX;
	q.type = "transition";
	q.limit = 100;
	assert_int_equal(vg_alarm_engine_history(e, "vmcpu", NULL, &q, &h, &nx), 0);
	json_array_foreach(h, i, d) {
		const char *res = json_string_value(json_object_get(d, "resource"));
		json_t *det = json_object_get(d, "detail");
		if (strcmp(json_string_value(json_object_get(det, "current")), "alarm"))
			continue;
		if (!strcmp(res, "vm1")) {
			vm1++;
			assert_string_equal(json_string_value(json_object_get(det, "suppressed")),
					    "inhibited by alarm 'hostcheck', which is in alarm");
		} else if (!strcmp(res, "vm2")) {
			vm2++;
			assert_null(json_object_get(det, "suppressed"));
		}
	}
	assert_int_equal(vm1, 1);
	assert_int_equal(vm2, 1);
	json_decref(h);
	vg_alarm_engine_get_stats(e, &st);
	assert_int_equal(st.inhibited, 1);
	vg_alarm_engine_close(e);
}

/* ---- the end of a silence ----------------------------------------------------------- */

static size_t repeats(struct vg_alarm_engine *e, char *reason, size_t len)
{
	struct vg_alarm_history_query q = {0};
	json_t *out = NULL;
	int64_t next;
	size_t n;

	q.end_ms = INT64_MAX;
	q.type = "repeat";
	q.limit = 100;
	assert_int_equal(vg_alarm_engine_history(e, "cpu", NULL, &q, &out, &next), 0);
	n = json_array_size(out);
	if (n && reason)
		snprintf(reason, len, "%s", json_string_value(json_object_get(json_object_get(json_array_get(out, n - 1), "detail"), "reason")));
	json_decref(out);
	return n;
}

static void test_end_of_silence_notifies_once(void **state)
{
	struct vg_alarm_engine *e;
	json_t *in, *out = NULL, *errors = NULL;
	char sid[40], reason[200];

	(void)state;
	open_engine(&e);
	in = json_loads("{\"name\":\"cpu\",\"metric\":\"cpu.util\",\"resource\":\"vm1\","
			"\"comparison\":\"gt\",\"threshold\":90,"
			"\"actions\":{\"alarm\":[\"log://\"]}}",
			0, NULL);
	assert_int_equal(vg_alarm_engine_create(e, in, NULL, &out, &errors), 0);
	json_decref(in);
	json_decref(out);
	in = json_loads("{\"matchers\":{\"alarm\":\"cpu\"},\"duration\":\"10m\","
			"\"created_by\":\"ops\",\"comment\":\"window\"}",
			0, NULL);
	assert_int_equal(vg_alarm_silences_create(vg_alarm_engine_silences(e), in, NULL,
						  g_now, &out, &errors),
			 0);
	snprintf(sid, sizeof(sid), "%s", json_string_value(json_object_get(out, "id")));
	json_decref(in);
	json_decref(out);
	send1(e, 1, T0, 95);
	send1(e, 2, T0 + 60000, 95); /* alarm, silenced */
	vg_alarm_engine_tick(e, g_now);
	assert_int_equal(repeats(e, NULL, 0), 0); /* not ended yet */
	for (int i = 2; i <= 11; i++)             /* still above, minute after minute */
		send1(e, (uint64_t)(i + 1), T0 + i * 60000, 95);
	assert_int_equal(repeats(e, NULL, 0), 0); /* silenced: nothing yet */
	vg_alarm_engine_tick(e, g_now);           /* T0 + 11 min: the silence is over */
	assert_int_equal(repeats(e, reason, sizeof(reason)), 1);
	assert_non_null(strstr(reason, sid));
	send1(e, 13, T0 + 12 * 60000, 95);
	vg_alarm_engine_tick(e, g_now);
	assert_int_equal(repeats(e, NULL, 0), 1); /* once */
	vg_alarm_engine_close(e);
	open_engine(&e); /* the end stays handled across a restart */
	send1(e, 14, T0 + 13 * 60000, 95);
	vg_alarm_engine_tick(e, g_now);
	assert_int_equal(repeats(e, NULL, 0), 1);
	vg_alarm_engine_close(e);
}

/* A tenant cannot take the collector's silence places from the others:
 * a silence that has already ended is refused (it would silence nothing
 * and hold a place for a week outside any project's limit); a pending
 * silence expired (DELETE) ends at once, so it no longer counts in its
 * project's limit nor stays "pending"; and silences one project creates
 * and expires again and again (each within its limit) make room for
 * another project's, however many (the ended ones are forgotten from
 * memory first, earliest ended first). */
static void test_ended_silences_take_no_place(void **state)
{
	struct vg_alarm_silences *s;
	char url[sizeof(g_url)], err[256], id[40], pend[2][40], shm[64] = "";
	const char *one = "{\"duration\":\"1h\",\"created_by\":\"eve\",\"comment\":\"x\"}";
	json_t *in, *out, *errors, *j;
	int rc;

	(void)state;
	/* 20,000 commits: on tmpfs when there is one (sqlite syncs each) */
	if (g_fresh_url) {
		snprintf(url, sizeof(url), "%s", g_url);
	} else {
		snprintf(shm, sizeof(shm), "/dev/shm/vigie-silence-test.XXXXXX");
		if (!mkdtemp(shm))
			shm[0] = 0;
		snprintf(url, sizeof(url), "sqlite:%s/alarms.db", shm[0] ? shm : g_dir);
	}
	assert_int_equal(vg_alarm_silences_open(url, 2, T0, &s, err, sizeof(err)), 0);

	j = mk(s, "p1", "{\"starts_at\":\"-2h\",\"ends_at\":\"-1h\",\"created_by\":\"eve\","
			"\"comment\":\"x\"}",
	       &rc);
	assert_int_equal(rc, -EINVAL);
	char *t = json_dumps(j, 0);
	assert_non_null(strstr(t, "ends_at"));
	free(t);
	json_decref(j);

	/* two pending silences (the limit), expired: the project may
	 * create again, and they list as expired */
	for (int i = 0; i < 2; i++) {
		j = mk(s, "p1", "{\"starts_at\":\"+1d\",\"duration\":\"1h\",\"created_by\":\"eve\","
				"\"comment\":\"x\"}",
		       &rc);
		assert_int_equal(rc, 0);
		snprintf(pend[i], sizeof(pend[i]), "%s",
			 json_string_value(json_object_get(j, "id")));
		json_decref(j);
		assert_int_equal(vg_alarm_silences_expire(s, pend[i], "p1", T0), 0);
	}
	assert_int_equal(vg_alarm_silences_get(s, pend[0], "p1", T0 + 1, &j), 0);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "expired");
	json_decref(j);
	assert_int_equal(vg_alarm_silences_list(s, "p1", NULL, T0 + 1, &j), 0);
	assert_int_equal(json_array_size(json_object_get(j, "silences")), 0);
	json_decref(j);

	/* p1 fills every place with silences it expires one by one */
	in = json_loads(one, 0, NULL);
	assert_non_null(in);
	for (int i = 0; i < VG_SILENCE_MAX; i++) {
		assert_int_equal(vg_alarm_silences_create(s, in, "p1", T0 + i, &out, &errors), 0);
		snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(out, "id")));
		json_decref(out);
		assert_int_equal(vg_alarm_silences_expire(s, id, "p1", T0 + i), 0);
	}
	/* p2 still silences, and so does the administrator */
	assert_int_equal(vg_alarm_silences_create(s, in, "p2", T0 + VG_SILENCE_MAX, &out,
						  &errors),
			 0);
	assert_string_equal(json_string_value(json_object_get(out, "state")), "active");
	json_decref(out);
	assert_int_equal(vg_alarm_silences_create(s, in, NULL, T0 + VG_SILENCE_MAX, &out,
						  &errors),
			 0);
	json_decref(out);
	json_decref(in);
	vg_alarm_silences_close(s);
	if (shm[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", shm);
		assert_int_equal(system(cmd), 0);
	}
}

/* The table does not keep every silence ever made: a tenant that creates
 * and expires silences in a loop (each within its limit) wrote a row each,
 * never deleted (alarms.db grew about 1.7 KiB a silence over HTTP). The
 * engine's hourly prune deletes the rows of silences ended more than
 * [alarms] history_retention ago (default 30 days, at least the 7 days
 * they are listed), with the history rows that name them; a silence still
 * in force, or ended within that time, keeps its row. Checked by opening
 * the table again at T0, where every row not deleted is listed. */
static void test_ended_silences_rows_pruned(void **state)
{
	struct vg_alarm_engine *e;
	struct vg_alarm_silences *s;
	char url[1100], err[256], ids[3][40];
	const char *defs[3] = {
		"{\"duration\":\"1h\",\"created_by\":\"eve\",\"comment\":\"x\"}",
		"{\"duration\":\"300d\",\"created_by\":\"ops\",\"comment\":\"long\"}",
		"{\"duration\":\"1h\",\"created_by\":\"eve\",\"comment\":\"y\"}",
	};
	json_t *in, *out = NULL, *errors = NULL, *j;

	(void)state;
	open_engine(&e);
	for (int i = 0; i < 3; i++) {
		in = json_loads(defs[i], 0, NULL);
		assert_int_equal(vg_alarm_silences_create(vg_alarm_engine_silences(e), in, "p1",
							  g_now, &out, &errors),
				 0);
		snprintf(ids[i], sizeof(ids[i]), "%s",
			 json_string_value(json_object_get(out, "id")));
		json_decref(in);
		json_decref(out);
	}
	assert_int_equal(vg_alarm_silences_expire(vg_alarm_engine_silences(e), ids[2], "p1",
						  g_now),
			 0);
	g_now = T0 + 20LL * 86400000; /* ended 20 days ago: kept (30 days) */
	vg_alarm_engine_tick(e, g_now);
	g_now = T0 + 31LL * 86400000; /* past the retention: two rows go */
	vg_alarm_engine_tick(e, g_now);
	vg_alarm_engine_close(e);

	assert_int_equal(vg_alarm_store_url(store_where(), url, sizeof(url)), 0);
	assert_int_equal(vg_alarm_silences_open(url, 0, T0, &s, err, sizeof(err)), 0);
	assert_int_equal(vg_alarm_silences_list(s, NULL, "all", T0 + 1, &j), 0);
	json_t *v = json_object_get(j, "silences");
	assert_int_equal(json_array_size(v), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(v, 0), "id")),
			    ids[1]);
	json_decref(j);
	vg_alarm_silences_close(s);
}

/* created_by, comment and a top-level project are shown as written (to an
 * administrator, and a global silence's to tenants): they follow the
 * character rule, as the matchers do; they took any string (a created_by
 * with U+202E displays as another person, an ESC sequence drives a
 * terminal, a top-level project "p\u0001x" was refused as
 * matchers.project and taken here). A comment may span lines. A row
 * stored before the rule still loads and silences. */
static void test_text_fields_rule(void **state)
{
	static const char *const bad[][3] = {
		/* scope, body fields, field named */
		{NULL, "\"project\":\"p\\u0001x\",\"created_by\":\"ops\",\"comment\":\"x\"",
		 "\"project\""},
		{NULL, "\"project\":\"p\\u202ex\",\"created_by\":\"ops\",\"comment\":\"x\"",
		 "\"project\""},
		{"p1", "\"created_by\":\"ecila\\u202e\",\"comment\":\"x\"", "created_by"},
		{"p1", "\"created_by\":\"a\\u001b[31m\",\"comment\":\"x\"", "created_by"},
		{"p1", "\"created_by\":\"a\\nb\",\"comment\":\"x\"", "created_by"},
		{"p1", "\"created_by\":\"ops\",\"comment\":\"x\\u001b]0;pwned\\u0007\"",
		 "comment"},
		{"p1", "\"created_by\":\"ops\",\"comment\":\"x\\u200by\"", "comment"},
		{"p1", "\"created_by\":\"ops\",\"comment\":\"x\\u0085y\"", "comment"},
	};
	struct vg_alarm_silences *s;
	char url[sizeof(g_url)], err[256], in[512], sid[40];
	json_t *j;
	int rc;

	(void)state;
	s = open_silences(url, 100);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(in, sizeof(in), "{\"matchers\":{\"host\":\"h\"},\"duration\":\"1h\",%s}",
			 bad[i][1]);
		j = mk(s, bad[i][0], in, &rc);
		if (rc != -EINVAL)
			fail_msg("accepted: %s", in);
		char *t = json_dumps(j, 0);
		if (!strstr(t, bad[i][2]))
			fail_msg("%s: no error naming %s: %s", in, bad[i][2], t);
		free(t);
		json_decref(j);
	}
	j = mk(s, "p1",
	       "{\"matchers\":{\"host\":\"h\"},\"duration\":\"1h\",\"created_by\":"
	       "\"ops-alice\",\"comment\":\"kernel update\\n\\tCHG-1234 \\u00e9t\\u00e9\"}",
	       &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(json_string_value(json_object_get(j, "comment")),
			    "kernel update\n\tCHG-1234 \xc3\xa9t\xc3\xa9");
	json_decref(j);
	vg_alarm_silences_close(s);

	if (!g_fresh_url) {
		char sql[512];
		struct vg_alarm_silence_subject sj = {.project = "p7", .resource = "vm1", .host = "h7", .alarm = "cpu", .severity = VG_SEV_CRITICAL};
		snprintf(sql, sizeof(sql),
			 "INSERT INTO alarm_silences (id, project, matchers, starts_ms,"
			 " ends_ms, created_by, created_with, comment, created_ms) VALUES"
			 " ('old3', 'p7', '{\"host\":\"h7\"}', %lld, %lld,"
			 " 'a\x1b[31m', 'administrator', 'x\x07', %lld)",
			 (long long)T0, (long long)(T0 + 3600000), (long long)T0);
		store_row(url, sql);
		assert_int_equal(vg_alarm_silences_open(url, 100, T0, &s, err, sizeof(err)), 0);
		assert_int_equal(vg_alarm_silences_match(s, &sj, T0 + 120000, sid), 1);
		vg_alarm_silences_close(s);
	}
}

/* An unknown matcher whose key is over 100 bytes with a character
 * across byte 100 (found by tests/fuzz/silence_body_fuzz.c): its error's
 * field, the key cut at 100 bytes, was no UTF-8, json_pack refused it and
 * the error was lost, so the silence was created with a matcher it
 * ignores. Refused, the field naming the key cut between characters. */
static void test_unknown_long_matcher_refused(void **state)
{
	struct vg_alarm_silences *s;
	char url[sizeof(g_url)], in[512], key[128];
	json_t *j;
	int rc;

	(void)state;
	s = open_silences(url, 100);
	memset(key, 'x', 99);
	snprintf(key + 99, sizeof(key) - 99, "\xc3\xa9"); /* U+00E9 at bytes 99-100 */
	snprintf(in, sizeof(in),
		 "{\"matchers\":{\"host\":\"h\",\"%s\":\"y\"},\"duration\":\"1h\","
		 "\"created_by\":\"ops\",\"comment\":\"c\"}",
		 key);
	j = mk(s, NULL, in, &rc);
	assert_int_equal(rc, -EINVAL);
	assert_int_equal(json_array_size(j), 1);
	key[99] = '\0';
	snprintf(in, sizeof(in), "matchers.%s", key);
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0),
							      "field")),
			    in);
	json_decref(j);
	vg_alarm_silences_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_matchers_scope_limits_persistence,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_silenced_not_delivered_across_sigkill,
						setup, teardown),
		cmocka_unit_test(test_cron_lists),
		cmocka_unit_test_setup_teardown(test_time_constraints, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inhibition, setup, teardown),
		cmocka_unit_test_setup_teardown(test_end_of_silence_notifies_once, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ended_silences_take_no_place, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ended_silences_rows_pruned, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_text_fields_rule, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_long_matcher_refused, setup,
						teardown),
	};
	vg_log_init("alarm_silence_test", VG_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
