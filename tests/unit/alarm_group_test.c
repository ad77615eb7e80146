/*
 * alarm_group_test.c — grouped notifications (alarms/group.c) replayed
 * through the engine with an injected clock and a real webhook receiver
 * on loopback: a hundred instances crossing one threshold in the same
 * minute are one webhook listing the hundred, sent exactly group_wait
 * after the first; later members wait for group_interval; a group waiting
 * when the process is killed (SIGKILL) is sent once after the restart
 * with every member, and a group flushed but not delivered when killed is
 * delivered once, never rebuilt. alarm_group_pg_test.c runs every case
 * again with the store in a fresh PostgreSQL database.
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

#include "vigie/alarm_engine.h"
#include "vigie/alarm_outbox.h"
#include "vigie/alarm_store.h"
#include "vigie/batch.h"
#include "vigie/log.h"

#define T0 (1795000020000LL / 60000 * 60000)
#define MIN 60000
#define MAX_BODIES 64

static char g_dir[64];
static int64_t g_now;
static int64_t fake_now(void)
{
	return g_now;
}

/* alarm_group_pg_test.c: a fresh PostgreSQL database per case in g_url */
static int (*g_fresh_url)(char *url, size_t len);
static char g_url[700];

static const char *store_where(void)
{
	return g_fresh_url ? g_url : g_dir;
}

/* ---- a webhook receiver keeping every body -------------------------------------- */

struct receiver {
	struct MHD_Daemon *d;
	uint16_t port;
	int lfd; /* its bound socket, until the server takes it */
	pthread_mutex_t lock;
	int requests;
	char *bodies[MAX_BODIES];
};

struct req {
	char *buf;
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

	if (!q) {
		*con = calloc(1, sizeof(struct req));
		return MHD_YES;
	}
	if (*upload_size) {
		char *n = realloc(q->buf, q->len + *upload_size + 1);
		assert_non_null(n);
		q->buf = n;
		memcpy(q->buf + q->len, upload, *upload_size);
		q->len += *upload_size;
		q->buf[q->len] = '\0';
		*upload_size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&r->lock);
	if (r->requests < MAX_BODIES)
		r->bodies[r->requests] = q->buf ? strdup(q->buf) : strdup("");
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
	struct req *q = *con;

	if (q)
		free(q->buf);
	free(q);
	*con = NULL;
}

/* Bind the receiver's loopback port; no thread yet, so a test may fork
 * before receiver_serve: a fork while the server's thread holds an
 * allocator lock leaves the child's malloc waiting forever (seen in the
 * sanitizer build). */
static void receiver_bind(struct receiver *r)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t salen = sizeof(sa);

	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(r->lfd >= 0);
	assert_int_equal(bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(r->lfd, 16), 0);
	assert_int_equal(getsockname(r->lfd, (struct sockaddr *)&sa, &salen), 0);
	r->port = ntohs(sa.sin_port);
}

static void receiver_serve(struct receiver *r)
{
	r->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
				on_req, r, MHD_OPTION_LISTEN_SOCKET, r->lfd,
				MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_END);
	assert_non_null(r->d);
}

static void receiver_start(struct receiver *r)
{
	receiver_bind(r);
	receiver_serve(r);
}

static void receiver_stop(struct receiver *r)
{
	MHD_stop_daemon(r->d);
	for (int i = 0; i < r->requests && i < MAX_BODIES; i++)
		free(r->bodies[i]);
}

/* ---- the engine ------------------------------------------------------------------- */

static int setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/vigie-group-test.XXXXXX");
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

static void create(struct vg_alarm_engine *e, uint16_t port, const char *group)
{
	char def[1024];
	json_t *in, *out = NULL, *errors = NULL;

	snprintf(def, sizeof(def),
		 "{\"name\":\"cpu-high\",\"metric\":\"cpu.util\",\"selector\":{\"type\":"
		 "\"instance\"},\"comparison\":\"gt\",\"threshold\":90,\"severity\":"
		 "\"critical\",\"notify_group\":%s,"
		 "\"actions\":{\"alarm\":[\"http://127.0.0.1:%u/hook\",\"log://\"],"
		 "\"ok\":[\"http://127.0.0.1:%u/hook\"]}}",
		 group, port, port);
	in = json_loads(def, 0, NULL);
	assert_non_null(in);
	if (vg_alarm_engine_create(e, in, NULL, &out, &errors)) {
		char *t = json_dumps(errors, 0);
		fail_msg("create: %s", t);
	}
	json_decref(in);
	json_decref(out);
}

/* One batch at sample time t: vm<from>..vm<to-1> report v; the wall clock
 * is then t + 500 ms. */
static void send_range(struct vg_alarm_engine *e, uint64_t seq, int64_t t, int from, int to,
		       double v)
{
	struct vg_batch *b = vg_batch_new("compute-7", 1, seq, t);
	char id[16];

	for (int i = from; i < to; i++) {
		snprintf(id, sizeof(id), "vm%d", i);
		assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, t));
		vg_batch_identity(b, "default", NULL, NULL);
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, v);
	}
	g_now = t + 500;
	assert_int_equal(vg_alarm_engine_batch(e, b), 0);
	vg_batch_free(b);
}

/* Tick the engine at wall time now and run the deliveries due: the
 * number of webhook requests made. */
static int deliver_at(struct vg_alarm_engine *e, int64_t now)
{
	int64_t next;

	g_now = now;
	vg_alarm_engine_tick(e, now);
	int n = vg_alarm_outbox_run_once(vg_alarm_engine_outbox(e), &next);
	assert_true(n >= 0);
	return n;
}

/* The group notification rx got as request i: its type, group labels,
 * count, and the members' resources all distinct, each current == state. */
static void check_group(struct receiver *rx, int i, const char *state, size_t count)
{
	json_t *b = json_loads(rx->bodies[i], 0, NULL), *m, *seen = json_object();
	size_t k;

	assert_non_null(b);
	assert_string_equal(json_string_value(json_object_get(b, "type")), "group");
	assert_string_equal(json_string_value(json_object_get(b, "project")), "default");
	json_t *g = json_object_get(b, "group");
	assert_string_equal(json_string_value(json_object_get(g, "alarm")), "cpu-high");
	assert_string_equal(json_string_value(json_object_get(g, "state")), state);
	assert_int_equal(json_integer_value(json_object_get(b, "count")), count);
	assert_int_equal(json_array_size(json_object_get(b, "notifications")), count);
	json_array_foreach(json_object_get(b, "notifications"), k, m) {
		const char *res = json_string_value(json_object_get(m, "resource"));
		assert_non_null(res);
		assert_string_equal(json_string_value(json_object_get(m, "current")), state);
		assert_null(json_object_get(seen, res)); /* each member once */
		json_object_set_new(seen, res, json_true());
	}
	json_decref(seen);
	json_decref(b);
}

#define GROUP "{\"by\":[\"alarm\",\"state\"],\"wait\":\"30s\",\"interval\":\"5m\"}"

static void test_hundred_instances_one_notification(void **state)
{
	struct receiver rx;
	struct vg_alarm_engine *e;
	int64_t t_alarm;

	(void)state;
	receiver_start(&rx);
	open_engine(&e);
	create(e, rx.port, GROUP);
	send_range(e, 1, T0, 0, 100, 95);
	send_range(e, 2, T0 + MIN, 0, 100, 95); /* 100 transitions to alarm */
	t_alarm = g_now;
	assert_int_equal(deliver_at(e, t_alarm), 0); /* waiting: group_wait */
	assert_int_equal(deliver_at(e, t_alarm + 29999), 0);
	assert_int_equal(deliver_at(e, t_alarm + 30000), 1); /* exactly then */
	assert_int_equal(rx.requests, 1);
	check_group(&rx, 0, "alarm", 100);
	assert_int_equal(deliver_at(e, t_alarm + 59000), 0); /* once */

	/* three go back to ok: a group of their own (state is a label) */
	send_range(e, 3, T0 + 2 * MIN, 0, 3, 10); /* each period decides at once */
	int64_t t_ok = g_now;
	assert_int_equal(deliver_at(e, t_ok + 29999), 0);
	assert_int_equal(deliver_at(e, t_ok + 30000), 1);
	check_group(&rx, 1, "ok", 3);

	/* and fire again more than group_interval after the alarm group's
	 * flush: a new wave waits group_wait again */
	send_range(e, 5, T0 + 7 * MIN, 0, 3, 95);
	int64_t t_again = g_now;
	assert_true(t_again >= t_alarm + 30000 + 300000);
	assert_int_equal(deliver_at(e, t_again + 29999), 0);
	assert_int_equal(deliver_at(e, t_again + 30000), 1);
	check_group(&rx, 2, "alarm", 3);
	vg_alarm_engine_close(e);
	receiver_stop(&rx);
}

static void test_group_interval(void **state)
{
	struct receiver rx;
	struct vg_alarm_engine *e;

	(void)state;
	receiver_start(&rx);
	open_engine(&e);
	create(e, rx.port, GROUP);
	send_range(e, 1, T0, 0, 2, 95);
	send_range(e, 2, T0 + MIN, 0, 4, 95); /* vm0, vm1 -> alarm */
	int64_t t1 = g_now;
	assert_int_equal(deliver_at(e, t1 + 30000), 1);
	check_group(&rx, 0, "alarm", 2);
	/* vm2 and vm3 fire one minute later: within the 5 min interval */
	send_range(e, 3, T0 + 2 * MIN, 2, 4, 95);
	assert_int_equal(deliver_at(e, g_now + 30000), 0); /* not group_wait */
	assert_int_equal(deliver_at(e, t1 + 30000 + 299999), 0);
	assert_int_equal(deliver_at(e, t1 + 30000 + 300000), 1); /* the interval */
	check_group(&rx, 1, "alarm", 2);
	vg_alarm_engine_close(e);
	receiver_stop(&rx);
}

/* kill -9 while a group waits (between its first member and its flush),
 * then again after its flush committed and before delivery: after each
 * restart the receiver gets the group once, with every member. */
static void kill_case(int flush_before_kill)
{
	struct receiver rx;
	struct vg_alarm_engine *e;
	int pfd[2], st;
	int64_t t_alarm = T0 + MIN + 500;
	pid_t pid;

	receiver_bind(&rx);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(rx.lfd);
		open_engine(&e);
		create(e, rx.port, GROUP);
		send_range(e, 1, T0, 0, 10, 95);
		send_range(e, 2, T0 + MIN, 0, 10, 95); /* 10 members, committed */
		if (flush_before_kill) {
			/* the flush commits the group's outbox row; no delivery ran */
			g_now = t_alarm + 30000;
			vg_alarm_engine_tick(e, g_now);
		}
		if (write(pfd[1], "x", 1) != 1)
			_exit(2);
		raise(SIGKILL);
		_exit(3);
	}
	close(pfd[1]);
	receiver_serve(&rx);
	char c;
	assert_int_equal(read(pfd[0], &c, 1), 1);
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	assert_int_equal(rx.requests, 0);

	g_now = t_alarm + 10000;
	open_engine(&e);
	if (!flush_before_kill)
		assert_int_equal(deliver_at(e, t_alarm + 29999), 0); /* still waits */
	assert_int_equal(deliver_at(e, t_alarm + 30000), 1);
	assert_int_equal(rx.requests, 1);
	check_group(&rx, 0, "alarm", 10);
	vg_alarm_engine_close(e);
	/* and never again, across another restart */
	open_engine(&e);
	assert_int_equal(deliver_at(e, t_alarm + 7200000), 0);
	assert_int_equal(rx.requests, 1);
	vg_alarm_engine_close(e);
	receiver_stop(&rx);
}

static void test_waiting_group_across_sigkill(void **state)
{
	(void)state;
	kill_case(0);
}

static void test_flushed_group_across_sigkill(void **state)
{
	(void)state;
	kill_case(1);
}

/* Two collectors on one PostgreSQL database: a group one of them started
 * is sent by the other (which asks the database for due groups
 * whatever it knows), once, even when both tick at the moment it is due. */
static void test_two_collectors_share_groups(void **state)
{
	struct receiver rx;
	struct vg_alarm_engine *e1, *e2;

	(void)state;
	if (!g_fresh_url)
		skip(); /* sqlite: one process per alarms.db */
	receiver_start(&rx);
	open_engine(&e1);
	create(e1, rx.port, GROUP);
	open_engine(&e2);                        /* knows the alarm (its fence) */
	assert_int_equal(deliver_at(e2, T0), 0); /* and has looked once already */
	send_range(e1, 1, T0, 0, 5, 95);
	send_range(e1, 2, T0 + MIN, 0, 5, 95); /* e1 starts the group */
	int64_t t = g_now;
	assert_int_equal(deliver_at(e2, t + 30000), 1); /* e2 sends it */
	assert_int_equal(deliver_at(e1, t + 30000), 0); /* e1 finds it taken */
	assert_int_equal(deliver_at(e1, t + 90000), 0);
	assert_int_equal(rx.requests, 1);
	check_group(&rx, 0, "alarm", 5);
	vg_alarm_engine_close(e1);
	vg_alarm_engine_close(e2);
	receiver_stop(&rx);
}

static void test_validation_and_round_trip(void **state)
{
	struct vg_alarm_engine *e;
	json_t *in, *out = NULL, *errors = NULL;
	char *t;

	(void)state;
	open_engine(&e);
	in = json_loads("{\"name\":\"x\",\"metric\":\"cpu.util\",\"resource\":\"v\","
			"\"comparison\":\"gt\",\"threshold\":1,\"notify_group\":{\"by\":"
			"[\"colour\"],\"wait\":-1,\"every\":3}}",
			0, NULL);
	assert_int_equal(vg_alarm_engine_create(e, in, NULL, &out, &errors), -EINVAL);
	t = json_dumps(errors, 0);
	assert_non_null(strstr(t, "notify_group.by"));
	assert_non_null(strstr(t, "notify_group.wait"));
	assert_non_null(strstr(t, "unknown field 'every'"));
	free(t);
	json_decref(errors);
	json_decref(in);
	errors = NULL;
	/* a label given twice is refused, naming it and where */
	in = json_loads("{\"name\":\"x\",\"metric\":\"cpu.util\",\"resource\":\"v\","
			"\"comparison\":\"gt\",\"threshold\":1,\"notify_group\":{\"by\":"
			"[\"host\",\"state\",\"host\"]}}",
			0, NULL);
	assert_int_equal(vg_alarm_engine_create(e, in, NULL, &out, &errors), -EINVAL);
	assert_int_equal(json_array_size(errors), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 0), "field")),
			    "notify_group.by");
	assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 0), "message")),
			    "[2]: 'host' is given twice");
	json_decref(errors);
	json_decref(in);
	errors = NULL;
	in = json_loads("{\"name\":\"x\",\"metric\":\"cpu.util\",\"resource\":\"v\","
			"\"comparison\":\"gt\",\"threshold\":1,\"notify_group\":{\"by\":"
			"[\"severity\",\"host\"],\"wait\":\"1m\"}}",
			0, NULL);
	assert_int_equal(vg_alarm_engine_create(e, in, NULL, &out, &errors), 0);
	t = json_dumps(json_object_get(out, "notify_group"), JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(t, "{\"by\":[\"severity\",\"host\"],\"interval\":300,\"wait\":60}");
	free(t);
	json_decref(in);
	json_decref(out);
	vg_alarm_engine_close(e);
}

int alarm_group_cases(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hundred_instances_one_notification, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_group_interval, setup, teardown),
		cmocka_unit_test_setup_teardown(test_waiting_group_across_sigkill, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_flushed_group_across_sigkill, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_two_collectors_share_groups, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_validation_and_round_trip, setup,
						teardown),
	};
	vg_log_init("alarm_group_test", VG_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

#ifndef ALARM_GROUP_NO_MAIN
int main(void)
{
	return alarm_group_cases();
}
#endif
