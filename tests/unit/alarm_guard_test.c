/*
 * alarm_guard_test.c — the fence on project webhooks (alarms/guard.h,
 * the fenced POST of alarms/webhook.h, the outbox's use of it): the
 * address rules, then real requests against libmicrohttpd receivers on
 * 127.0.0.1, on 127.0.0.2 (redirecting to 127.0.0.1), through the name
 * "localhost", and on a private address inside a network namespace this
 * test creates (skipped, saying why, when it cannot), and finally an
 * alarm created with a project token whose refused webhook is explained
 * in its history while an administrator's alarm to the same receiver is
 * delivered.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
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

#include "alarms/guard.h"
#include "alarms/webhook.h"
#include "vigie/alarm_engine.h"
#include "vigie/alarm_outbox.h"
#include "vigie/alarm_store.h"
#include "vigie/batch.h"
#include "vigie/log.h"

/* ---- address rules ---------------------------------------------------------------- */

static int check(const struct vg_alarm_guard *g, const char *addr, char *why)
{
	struct sockaddr_in a4 = {.sin_family = AF_INET};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};

	why[0] = '\0';
	if (inet_pton(AF_INET, addr, &a4.sin_addr) == 1)
		return vg_alarm_guard_check(g, (struct sockaddr *)&a4, why, 200);
	assert_int_equal(inet_pton(AF_INET6, addr, &a6.sin6_addr), 1);
	return vg_alarm_guard_check(g, (struct sockaddr *)&a6, why, 200);
}

static void test_rules(void **state)
{
	struct vg_alarm_guard *g, *ga;
	char why[200], err[200];
	static const char *const refused[] = {
		"127.0.0.1", "127.9.9.9", "169.254.169.254", "10.1.2.3",
		"172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1",
		"0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::",
		"fe80::1", "fd00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
		"64:ff9b::a9fe:a9fe", "ff02::1",
		/* IPv4-compatible, 6to4 and local-use NAT64 forms of loopback
		 * and of the metadata service */
		"::127.0.0.1", "::a9fe:a9fe", "2002:7f00:1::1", "2002:a9fe:a9fe::",
		"64:ff9b:1::a9fe:a9fe", "64:ff9b:1:a9fe:a9:fe00::", NULL};
	static const char *const allowed[] = {
		"8.8.8.8", "172.32.0.1", "172.15.255.255", "192.169.0.1",
		"2001:db8::1", "::ffff:8.8.8.8", "93.184.216.34", "2002:808:808::1", NULL};

	(void)state;
	assert_int_equal(vg_alarm_guard_create(NULL, &g, err, sizeof(err)), 0);
	for (int i = 0; refused[i]; i++) {
		if (check(g, refused[i], why) != -EACCES)
			fail_msg("%s was allowed", refused[i]);
		assert_non_null(strstr(why, "is "));
	}
	for (int i = 0; allowed[i]; i++)
		if (check(g, allowed[i], why))
			fail_msg("%s was refused: %s", allowed[i], why);
	assert_int_equal(check(g, "169.254.169.254", why), -EACCES);
	assert_non_null(strstr(why, "169.254.169.254 is link-local"));
	assert_int_equal(check(g, "127.0.0.1", why), -EACCES);
	assert_string_equal(why, "127.0.0.1 is loopback");
	assert_int_equal(check(g, "::ffff:127.0.0.1", why), -EACCES);
	assert_string_equal(why, "127.0.0.1 is loopback");

	/* the allow list wins, and only for what it names */
	assert_int_equal(vg_alarm_guard_create(" 10.20.0.0/16, fd00::/8,127.0.0.2",
					       &ga, err, sizeof(err)),
			 0);
	assert_int_equal(check(ga, "10.20.3.4", why), 0);
	assert_int_equal(check(ga, "::ffff:10.20.3.4", why), 0);
	assert_int_equal(check(ga, "10.21.0.1", why), -EACCES);
	assert_int_equal(check(ga, "fd12::1", why), 0);
	assert_int_equal(check(ga, "127.0.0.2", why), 0);
	assert_int_equal(check(ga, "127.0.0.1", why), -EACCES);
	vg_alarm_guard_free(ga);

	assert_int_equal(vg_alarm_guard_create("10.0.0.0/33", &ga, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "'10.0.0.0/33'"));
	assert_int_equal(vg_alarm_guard_create("example.com", &ga, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(vg_alarm_guard_create("10.0.0.0/", &ga, err, sizeof(err)),
			 -EINVAL);
	vg_alarm_guard_free(g);
	vg_alarm_guard_free(NULL);
}

/* ---- receivers ---------------------------------------------------------------------- */

struct receiver {
	struct MHD_Daemon *d;
	uint16_t port;
	pthread_mutex_t lock;
	int requests;
	int status;
	char location[256]; /* answered with status (a redirect) when set */
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
	if (r->location[0])
		MHD_add_response_header(resp, "Location", r->location);
	ret = MHD_queue_response(c, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con,
		    enum MHD_RequestTerminationCode t)
{
	*con = NULL;
}

/* A receiver on addr (IPv4), any free port. 0 or -1. */
static int receiver_start(struct receiver *r, const char *addr, int status)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};

	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->status = status;
	assert_int_equal(inet_pton(AF_INET, addr, &sa.sin_addr), 1);
	r->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0,
				NULL, NULL, on_req, r, MHD_OPTION_NOTIFY_COMPLETED,
				on_done, NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
	if (!r->d)
		return -1;
	r->port = MHD_get_daemon_info(r->d, MHD_DAEMON_INFO_BIND_PORT)->port;
	return 0;
}

static int receiver_requests(struct receiver *r)
{
	int n;

	pthread_mutex_lock(&r->lock);
	n = r->requests;
	pthread_mutex_unlock(&r->lock);
	return n;
}

static void receiver_stop(struct receiver *r)
{
	MHD_stop_daemon(r->d);
	pthread_mutex_destroy(&r->lock);
}

static int post(const struct vg_alarm_guard *g, const char *url, long *http,
		char *err)
{
	static const char body[] = "{\"alarm_name\":\"x\"}";
	/* generous: a refusal is immediate; a receiver that answers must
	 * never be timed out on a loaded machine */
	enum { TIMEOUT_MS = 30000 };

	if (!g)
		return vg_alarm_webhook_post(url, body, sizeof(body) - 1, "k1", NULL,
					     TIMEOUT_MS, http, err, 512);
	return vg_alarm_webhook_post_guarded(g, url, body, sizeof(body) - 1, "k1",
					     TIMEOUT_MS, http, err, 512);
}

/* ---- real requests -------------------------------------------------------------------- */

static void test_loopback_and_localhost(void **state)
{
	struct vg_alarm_guard *g, *ga;
	struct receiver rx;
	char url[128], err[512];
	long http;

	(void)state;
	assert_int_equal(vg_alarm_guard_create(NULL, &g, err, sizeof(err)), 0);
	assert_int_equal(receiver_start(&rx, "127.0.0.1", 200), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/hook", rx.port);
	assert_int_equal(post(g, url, &http, err), -EACCES);
	assert_non_null(strstr(err, "127.0.0.1 is loopback"));
	assert_non_null(strstr(err, "webhook_allow"));
	assert_int_equal(receiver_requests(&rx), 0);

	/* a name resolving to loopback is judged by what it resolves to */
	snprintf(url, sizeof(url), "http://localhost:%u/hook", rx.port);
	assert_int_equal(post(g, url, &http, err), -EACCES);
	assert_non_null(strstr(err, "is loopback"));
	assert_int_equal(receiver_requests(&rx), 0);

	/* IPv4 written as IPv6 */
	snprintf(url, sizeof(url), "http://[::ffff:127.0.0.1]:%u/hook", rx.port);
	assert_int_equal(post(g, url, &http, err), -EACCES);
	assert_int_equal(receiver_requests(&rx), 0);

	/* unfenced (an administrator's alarm): today's freedom */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/hook", rx.port);
	assert_int_equal(post(NULL, url, &http, err), 0);
	assert_int_equal(receiver_requests(&rx), 1);
	/* allowed by the operator */
	assert_int_equal(vg_alarm_guard_create("127.0.0.0/8", &ga, err, sizeof(err)), 0);
	assert_int_equal(post(ga, url, &http, err), 0);
	assert_int_equal(http, 200);
	assert_int_equal(receiver_requests(&rx), 2);
	vg_alarm_guard_free(ga);
	receiver_stop(&rx);
	vg_alarm_guard_free(g);
}

static void test_redirect_to_loopback_not_followed(void **state)
{
	struct vg_alarm_guard *g;
	struct receiver inner, outer;
	char url[128], err[512];
	long http;

	(void)state;
	/* the operator allows 127.0.0.2 (say, a relay); it redirects to
	 * 127.0.0.1, which is not allowed */
	assert_int_equal(vg_alarm_guard_create("127.0.0.2/32", &g, err, sizeof(err)), 0);
	assert_int_equal(receiver_start(&inner, "127.0.0.1", 200), 0);
	if (receiver_start(&outer, "127.0.0.2", 302)) {
		receiver_stop(&inner);
		vg_alarm_guard_free(g);
		skip(); /* 127.0.0.2 not bindable here */
	}
	snprintf(outer.location, sizeof(outer.location),
		 "http://127.0.0.1:%u/internal", inner.port);
	snprintf(url, sizeof(url), "http://127.0.0.2:%u/hook", outer.port);
	assert_int_equal(post(g, url, &http, err), -EPERM);
	assert_int_equal(http, 302);
	assert_non_null(strstr(err, "not retried"));
	assert_int_equal(receiver_requests(&outer), 1);
	assert_int_equal(receiver_requests(&inner), 0);
	receiver_stop(&outer);
	receiver_stop(&inner);
	vg_alarm_guard_free(g);
}

/* ---- a private address in a network namespace of our own ------------------------------ */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void test_private_address_in_a_namespace(void **state)
{
	struct vg_alarm_guard *g, *ga;
	struct receiver rx;
	char ns[32], path[64], url[128], err[512], why[200];
	int pid = (int)getpid() % 10000, self, nsfd, started;
	long http;

	(void)state;
	/* 10.250.N.0/30 exists only inside this sandbox: the veth pair's two
	 * ends; no packet goes anywhere else */
	snprintf(ns, sizeof(ns), "vgguard%d", pid);
	if (sh("ip netns add %s 2>/dev/null", ns)) {
		print_message("skipped: cannot create a network namespace "
			      "(needs CAP_SYS_ADMIN and iproute2)\n");
		skip();
	}
	if (sh("ip link add vgh%d type veth peer name vgn%d 2>/dev/null &&"
	       " ip link set vgn%d netns %s &&"
	       " ip addr add 10.250.%d.1/30 dev vgh%d && ip link set vgh%d up &&"
	       " ip addr add 192.0.2.%d/32 dev vgh%d &&"
	       " ip -n %s addr add 10.250.%d.2/30 dev vgn%d &&"
	       " ip -n %s link set vgn%d up && ip -n %s link set lo up",
	       pid, pid, pid, ns, pid % 250, pid, pid, pid % 250 + 1, pid, ns,
	       pid % 250, pid, ns, pid, ns)) {
		sh("ip link del vgh%d 2>/dev/null; ip netns del %s", pid, ns);
		print_message("skipped: cannot create a veth pair in the namespace\n");
		skip();
	}
	/* the receiver's socket is made inside the namespace */
	snprintf(path, sizeof(path), "/var/run/netns/%s", ns);
	self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(self >= 0 && nsfd >= 0);
	assert_int_equal(setns(nsfd, CLONE_NEWNET), 0);
	char addr[32];
	snprintf(addr, sizeof(addr), "10.250.%d.2", pid % 250);
	started = receiver_start(&rx, addr, 200);
	assert_int_equal(setns(self, CLONE_NEWNET), 0);
	close(self);
	close(nsfd);
	assert_int_equal(started, 0);

	assert_int_equal(vg_alarm_guard_create(NULL, &g, err, sizeof(err)), 0);
	snprintf(url, sizeof(url), "http://%s:%u/hook", addr, rx.port);
	assert_int_equal(post(g, url, &http, err), -EACCES);
	assert_non_null(strstr(err, "is a private address"));
	assert_int_equal(receiver_requests(&rx), 0);
	/* reachable (the same request unfenced arrives) */
	assert_int_equal(post(NULL, url, &http, err), 0);
	assert_int_equal(receiver_requests(&rx), 1);
	/* allowed by the operator */
	snprintf(why, sizeof(why), "10.250.%d.0/30", pid % 250);
	assert_int_equal(vg_alarm_guard_create(why, &ga, err, sizeof(err)), 0);
	assert_int_equal(post(ga, url, &http, err), 0);
	assert_int_equal(receiver_requests(&rx), 2);
	vg_alarm_guard_free(ga);
	/* an otherwise public address of this host is refused as ours
	 * (192.0.2.0/24 is documentation space, on our veth end only) */
	snprintf(addr, sizeof(addr), "192.0.2.%d", pid % 250 + 1);
	assert_int_equal(check(g, addr, why), -EACCES);
	assert_non_null(strstr(why, "is an address of this collector"));
	vg_alarm_guard_free(g);
	receiver_stop(&rx);
	sh("ip link del vgh%d 2>/dev/null; ip netns del %s", pid, ns);
}

/* ---- through the engine and the outbox ------------------------------------------------ */

static int64_t g_now;
static int64_t fake_now(void)
{
	return g_now;
}

static void send_res(struct vg_alarm_engine *e, const char *project, const char *res,
		     uint64_t seq, int64_t t, double v)
{
	struct vg_batch *b = vg_batch_new("h1", 1, seq, t);

	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, res, res, NULL, t));
	vg_batch_identity(b, project, NULL, NULL);
	vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, v);
	g_now = t + 500;
	assert_int_equal(vg_alarm_engine_batch(e, b), 0);
	vg_batch_free(b);
}

static void send1(struct vg_alarm_engine *e, const char *project, uint64_t seq,
		  int64_t t, double v)
{
	send_res(e, project, "vm1", seq, t, v);
}

static json_t *create(struct vg_alarm_engine *e, const char *scope, const char *def,
		      int *rc)
{
	json_t *body = json_loads(def, 0, NULL), *out = NULL, *errors = NULL;

	assert_non_null(body);
	*rc = vg_alarm_engine_create(e, body, scope, &out, &errors);
	json_decref(body);
	if (*rc) {
		json_decref(out);
		return errors;
	}
	json_decref(errors);
	return out;
}

static const char *last_status(struct vg_alarm_engine *e, const char *ref,
			       char *error, size_t len)
{
	static char status[32];
	struct vg_alarm_history_query q = {0};
	json_t *out = NULL, *d;
	int64_t next;

	q.end_ms = INT64_MAX;
	q.type = "notification";
	q.limit = 100;
	assert_int_equal(vg_alarm_engine_history(e, ref, NULL, &q, &out, &next), 0);
	assert_true(json_array_size(out) >= 1);
	d = json_object_get(json_array_get(out, json_array_size(out) - 1), "detail");
	snprintf(status, sizeof(status), "%s",
		 json_string_value(json_object_get(d, "status")));
	snprintf(error, len, "%s", json_string_value(json_object_get(d, "error")) ? json_string_value(json_object_get(d, "error")) : "");
	json_decref(out);
	return status;
}

static void test_project_alarm_refused_admin_alarm_delivered(void **state)
{
	struct vg_alarm_engine_options o = {0};
	struct vg_alarm_engine *e;
	struct vg_alarm_outbox_stats st;
	struct receiver rx;
	char dir[64] = "/tmp/vigie-guard-test.XXXXXX", def[512], err[256], cmd[128];
	int64_t t = 1795000020000LL / 60000 * 60000, next;
	json_t *j;
	int rc;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(receiver_start(&rx, "127.0.0.1", 200), 0);
	g_now = t;
	o.data_dir = dir;
	o.agent_interval_s = 10;
	o.now_ms = fake_now;
	o.webhook_timeout_ms = 30000; /* generous: no case here waits for a timeout */
	assert_int_equal(vg_alarm_engine_open(&o, &e, err, sizeof(err)), 0);
	snprintf(def, sizeof(def),
		 "{\"name\":\"%%s\",\"metric\":\"cpu.util\",\"resource\":\"vm1\","
		 "\"comparison\":\"gt\",\"threshold\":90,%%s"
		 "\"actions\":{\"alarm\":[\"http://127.0.0.1:%u/hook\"]}}",
		 rx.port);
	char d1[600], d2[600], d3[600];
	snprintf(d1, sizeof(d1), def, "tenant", "");
	snprintf(d2, sizeof(d2), def, "operator", "\"project\":\"p1\",");
	snprintf(d3, sizeof(d3), def, "sneaky", "\"webhook_fence\":false,");
	/* a project token cannot turn the fence off */
	j = create(e, "p1", d3, &rc);
	assert_int_equal(rc, -EINVAL);
	char *jt = json_dumps(j, 0);
	assert_non_null(strstr(jt, "only an administrator"));
	free(jt);
	json_decref(j);
	j = create(e, "p1", d1, &rc);
	assert_int_equal(rc, 0);
	assert_true(json_is_true(json_object_get(j, "webhook_fence")));
	json_decref(j);
	j = create(e, NULL, d2, &rc); /* the admin, in the same project */
	assert_int_equal(rc, 0);
	assert_true(json_is_false(json_object_get(j, "webhook_fence")));
	json_decref(j);

	send1(e, "p1", 1, t, 95);
	send1(e, "p1", 2, t + 60000, 95);
	assert_int_equal(vg_alarm_outbox_run_once(vg_alarm_engine_outbox(e), &next), 2);
	assert_int_equal(receiver_requests(&rx), 1); /* the admin's only */
	assert_string_equal(last_status(e, "operator", err, sizeof(err)), "delivered");
	assert_string_equal(last_status(e, "tenant", err, sizeof(err)), "refused");
	assert_non_null(strstr(err, "127.0.0.1 is loopback"));
	vg_alarm_outbox_get_stats(vg_alarm_engine_outbox(e), &st);
	assert_int_equal(st.refused, 1);
	assert_int_equal(st.delivered, 1);
	assert_int_equal(next, INT64_MAX); /* refused for good: not retried */

	/* the fence survives a restart (it is part of the definition) */
	vg_alarm_engine_close(e);
	assert_int_equal(vg_alarm_engine_open(&o, &e, err, sizeof(err)), 0);
	send1(e, "p1", 3, t + 120000, 5);
	send1(e, "p1", 4, t + 180000, 95);
	send1(e, "p1", 5, t + 240000, 95);
	vg_alarm_outbox_run_once(vg_alarm_engine_outbox(e), &next);
	assert_int_equal(receiver_requests(&rx), 2);
	assert_string_equal(last_status(e, "tenant", err, sizeof(err)), "refused");

	/* a connection the administrator's webhook left open to the same
	 * receiver is not a way around the fence */
	char d4[600], d5[600];
	snprintf(d4, sizeof(d4), "{\"name\":\"op2\",\"metric\":\"cpu.util\","
				 "\"resource\":\"vm2\",\"project\":\"p1\",\"comparison\":\"gt\","
				 "\"threshold\":90,\"actions\":{\"alarm\":"
				 "[\"http://127.0.0.1:%u/a\"]}}",
		 rx.port);
	snprintf(d5, sizeof(d5), "{\"name\":\"ten2\",\"metric\":\"cpu.util\","
				 "\"resource\":\"vm3\",\"comparison\":\"gt\","
				 "\"threshold\":90,\"actions\":{\"alarm\":"
				 "[\"http://127.0.0.1:%u/b\"]}}",
		 rx.port);
	json_decref(create(e, NULL, d4, &rc));
	assert_int_equal(rc, 0);
	json_decref(create(e, "p1", d5, &rc));
	assert_int_equal(rc, 0);
	send_res(e, "p1", "vm2", 6, t + 300000, 95);
	send_res(e, "p1", "vm2", 7, t + 360000, 95);
	assert_int_equal(vg_alarm_outbox_run_once(vg_alarm_engine_outbox(e), &next), 1);
	assert_int_equal(receiver_requests(&rx), 3);
	send_res(e, "p1", "vm3", 8, t + 420000, 95);
	send_res(e, "p1", "vm3", 9, t + 480000, 95);
	assert_int_equal(vg_alarm_outbox_run_once(vg_alarm_engine_outbox(e), &next), 1);
	assert_int_equal(receiver_requests(&rx), 3);
	assert_string_equal(last_status(e, "ten2", err, sizeof(err)), "refused");

	/* a project token's PATCH of an administrator's alarm in its
	 * project changes the given fields and fences it, as a PUT does
	 * (docs/alarms.md): it was a 400 "only an administrator may turn
	 * the webhook fence off" for a body that never named the fence */
	{
		json_t *patch = json_loads("{\"threshold\":5}", 0, NULL), *out = NULL,
		       *errs = NULL;
		assert_int_equal(vg_alarm_engine_update(e, "op2", patch, 1, "p1", &out, &errs), 0);
		assert_null(errs);
		assert_true(json_is_true(json_object_get(out, "webhook_fence")));
		assert_true(json_number_value(json_object_get(out, "threshold")) == 5);
		json_decref(out);
		json_decref(patch);
		/* naming it false is still the administrator's only */
		patch = json_loads("{\"webhook_fence\":false}", 0, NULL);
		out = NULL;
		assert_int_equal(vg_alarm_engine_update(e, "op2", patch, 1, "p1", &out, &errs),
				 -EINVAL);
		assert_non_null(errs);
		json_decref(errs);
		json_decref(out);
		json_decref(patch);
	}
	vg_alarm_engine_close(e);
	receiver_stop(&rx);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_loopback_and_localhost),
		cmocka_unit_test(test_redirect_to_loopback_not_followed),
		cmocka_unit_test(test_private_address_in_a_namespace),
		cmocka_unit_test(test_project_alarm_refused_admin_alarm_delivered),
	};
	vg_log_init("alarm_guard_test", VG_LOG_ERROR);
	vg_alarm_webhook_global_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
