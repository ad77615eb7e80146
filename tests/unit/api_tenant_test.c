/*
 * api_tenant_test.c — what a second tenant sees of the alarm API: the
 * real API on a loopback port over the real alarm engine and SSE hub,
 * with an administrator's token and the tokens of projects p1 and p2.
 *
 *   - GET /v1/alarms?project=<another project> is an empty list, as for a
 *     project without alarms (docs/api.md, Authentication), not a 403
 *     that told the project was someone else's;
 *   - /v1/alarms/stream is a path of its own: its 405 says
 *     Allow: GET, HEAD (it listed /v1/alarms/{id}'s PUT, DELETE, PATCH);
 *   - an administrator's global silence that stops a tenant's
 *     notifications is shown to that tenant, read-only (DELETE is a 403),
 *     and only to tenants whose alarms it matches (by alarm name here, by
 *     an instance's resource below); one matching nothing of the tenant
 *     stays a 404;
 *   - a tenant's alarm stream numbers its own project's events: ids
 *     consecutive although another project notified in between; the
 *     hub's counts (held, evicted) are on the administrator's /metrics
 *     only;
 *   - /metrics counts the stream prober's rounds while a stream is open,
 *     and the looks past the bound over every ring.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <jansson.h>

#include "vigie/alarm_engine.h"
#include "vigie/alarm_stream.h"
#include "vigie/clock.h"

#include "../support/alarm_api_fixture.h"

#define MIN 60000LL

static struct {
	struct fx_alarm_api a; /* engine, hub, API, the administrator's token */
	char auth_admin[VG_TOKEN_LEN + 16];
	char auth_p1[VG_TOKEN_LEN + 16], auth_p2[VG_TOKEN_LEN + 16];
	uint64_t seq;
	int64_t t0;
} g;

/* One batch at t: vm1 of p1 on host h1, vm2 of p2 on host h2. */
static struct vg_batch *batch(int64_t t, double v)
{
	struct vg_batch *b = vg_batch_new("h1", 1, ++g.seq, t);

	vg_batch_resource(b, VG_RT_INSTANCE, "vm1", "instance-00000001", NULL, t);
	vg_batch_identity(b, "p1", "u1", "small");
	vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, v);
	vg_batch_resource(b, VG_RT_INSTANCE, "vm2", "instance-00000002", NULL, t);
	vg_batch_identity(b, "p2", "u2", "small");
	vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, v);
	return b;
}

static int setup(void **state)
{
	char tok[VG_TOKEN_LEN + 1];
	struct fx_data d;

	(void)state;
	g.t0 = (vg_now_ms() - 3600 * 1000) / MIN * MIN;
	if (fx_tmpdir(g.a.srv.dir, sizeof(g.a.srv.dir), "api-tenant") ||
	    fx_data_open(g.a.srv.dir, &d))
		return -1;
	g.a.srv.store = d.store;
	if (fx_data_write(&d, batch(g.t0, 10)))
		return -1;
	fx_data_done(&d);
	if (fx_alarm_api_start(&g.a))
		return -1;
	snprintf(g.auth_admin, sizeof(g.auth_admin), "Bearer %s", g.a.tok);
	if (fx_token(g.a.srv.dir, "p1", "p1", tok))
		return -1;
	snprintf(g.auth_p1, sizeof(g.auth_p1), "Bearer %s", tok);
	if (fx_token(g.a.srv.dir, "p2", "p2", tok))
		return -1;
	snprintf(g.auth_p2, sizeof(g.auth_p2), "Bearer %s", tok);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return fx_alarm_api_stop(&g.a);
}

static long req(const char *auth, const char *method, const char *path,
		const char *body, struct fx_answer *a)
{
	return fx_http(g.a.srv.url, method, path, auth, body, a);
}

/* POST as auth, expecting 201; returns the new object's id (static). */
static const char *create(const char *auth, const char *path, const char *body)
{
	static char id[64];
	struct fx_answer a;

	if (req(auth, "POST", path, body, &a) != 201)
		fail_msg("POST %s: %ld %s", path, a.status, a.body ? a.body : "");
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(a.json, "id")));
	fx_answer_free(&a);
	return id;
}

static size_t list_size(const struct fx_answer *a, const char *key)
{
	return json_array_size(json_object_get(a->json, key));
}

static void test_alarms_of_another_project_is_an_empty_list(void **state)
{
	struct fx_answer a;

	(void)state;
	create(g.auth_p1, "/v1/alarms",
	       "{\"name\":\"cpu\",\"metric\":\"cpu.util\",\"resource\":\"vm1\","
	       "\"period\":60,\"comparison\":\"gt\",\"threshold\":90,"
	       "\"actions\":{\"alarm\":[\"log://\"]}}");
	create(g.auth_p2, "/v1/alarms",
	       "{\"name\":\"disk\",\"metric\":\"cpu.util\",\"resource\":\"vm2\","
	       "\"period\":60,\"comparison\":\"gt\",\"threshold\":90,"
	       "\"actions\":{\"alarm\":[\"log://\"]}}");

	/* p1 naming p2: what a project without alarms answers */
	assert_int_equal(req(g.auth_p1, "GET", "/v1/alarms?project=p2", NULL, &a), 200);
	assert_int_equal(list_size(&a, "alarms"), 0);
	assert_true(json_is_null(json_object_get(a.json, "next")));
	fx_answer_free(&a);
	assert_int_equal(req(g.auth_p1, "GET", "/v1/alarms?project=nobody", NULL, &a), 200);
	assert_int_equal(list_size(&a, "alarms"), 0);
	fx_answer_free(&a);
	/* its own project, and the administrator naming p2 */
	assert_int_equal(req(g.auth_p1, "GET", "/v1/alarms?project=p1", NULL, &a), 200);
	assert_int_equal(list_size(&a, "alarms"), 1);
	fx_answer_free(&a);
	assert_int_equal(req(g.auth_admin, "GET", "/v1/alarms?project=p2", NULL, &a), 200);
	assert_int_equal(list_size(&a, "alarms"), 1);
	fx_answer_free(&a);
	/* parameters are still checked */
	assert_int_equal(req(g.auth_p1, "GET", "/v1/alarms?project=p2&limit=0", NULL, &a), 400);
	fx_answer_free(&a);
}

static void test_stream_405_allow(void **state)
{
	struct fx_answer a;

	(void)state;
	assert_int_equal(req(g.auth_p1, "POST", "/v1/alarms/stream", "{}", &a), 405);
	assert_string_equal(a.allow, "GET, HEAD");
	fx_answer_free(&a);
	assert_int_equal(req(g.auth_admin, "DELETE", "/v1/alarms/stream", NULL, &a), 405);
	assert_string_equal(a.allow, "GET, HEAD");
	fx_answer_free(&a);
}

/* Whether the list as auth holds the silence id. */
static int lists(const char *auth, const char *id)
{
	struct fx_answer a;
	json_t *v;
	size_t i;
	int found = 0;

	assert_int_equal(req(auth, "GET", "/v1/silences?state=all", NULL, &a), 200);
	json_array_foreach(json_object_get(a.json, "silences"), i, v)
		found |= !strcmp(json_string_value(json_object_get(v, "id")), id);
	fx_answer_free(&a);
	return found;
}

static void test_global_silences_a_tenant_sees(void **state)
{
	char by_name[64], by_res[64], by_host[64], other[64], path[128];
	struct fx_answer a;

	(void)state;
	/* the administrator's global silences: one on p1's alarm name, one
	 * on p1's vm1, one on a host nobody has, one on p2's alarm name */
	snprintf(by_name, sizeof(by_name), "%s",
		 create(g.auth_admin, "/v1/silences",
			"{\"matchers\":{\"alarm\":\"cpu\"},\"duration\":\"1h\","
			"\"created_by\":\"ops\",\"comment\":\"kernel update\"}"));
	snprintf(by_res, sizeof(by_res), "%s",
		 create(g.auth_admin, "/v1/silences",
			"{\"matchers\":{\"resource\":\"vm1\"},\"duration\":\"1h\","
			"\"created_by\":\"ops\",\"comment\":\"migration\"}"));
	snprintf(by_host, sizeof(by_host), "%s",
		 create(g.auth_admin, "/v1/silences",
			"{\"matchers\":{\"host\":\"compute-99\"},\"duration\":\"1h\","
			"\"created_by\":\"ops\",\"comment\":\"rack 9\"}"));
	snprintf(other, sizeof(other), "%s",
		 create(g.auth_admin, "/v1/silences",
			"{\"matchers\":{\"alarm\":\"disk\"},\"duration\":\"1h\","
			"\"created_by\":\"ops\",\"comment\":\"p2 only\"}"));

	/* p1's alarm on vm1 has no instance yet: the name matches it */
	assert_true(lists(g.auth_p1, by_name));
	assert_false(lists(g.auth_p1, by_res));
	assert_false(lists(g.auth_p1, by_host));
	assert_false(lists(g.auth_p1, other));
	assert_false(lists(g.auth_p2, by_name));
	assert_true(lists(g.auth_p2, other));

	/* vm1 reports: the instance's resource matches too */
	for (int k = 1; k < 3; k++) {
		struct vg_batch *b = batch(g.t0 + k * MIN, 10);
		assert_int_equal(vg_alarm_engine_batch(g.a.e, b), 0);
		vg_batch_free(b);
	}
	assert_true(lists(g.auth_p1, by_res));
	assert_false(lists(g.auth_p2, by_res));

	/* one: as the administrator shows it, read-only */
	snprintf(path, sizeof(path), "/v1/silences/%s", by_name);
	assert_int_equal(req(g.auth_p1, "GET", path, NULL, &a), 200);
	assert_string_equal(json_string_value(json_object_get(a.json, "project")), "*");
	assert_string_equal(json_string_value(json_object_get(a.json, "comment")),
			    "kernel update");
	fx_answer_free(&a);
	assert_int_equal(req(g.auth_p1, "DELETE", path, NULL, &a), 403);
	assert_non_null(strstr(fx_errmsg(&a), "global"));
	fx_answer_free(&a);
	assert_int_equal(req(g.auth_p2, "GET", path, NULL, &a), 404);
	fx_answer_free(&a);
	assert_int_equal(req(g.auth_p2, "DELETE", path, NULL, &a), 404);
	fx_answer_free(&a);
	snprintf(path, sizeof(path), "/v1/silences/%s", by_host);
	assert_int_equal(req(g.auth_p1, "GET", path, NULL, &a), 404);
	fx_answer_free(&a);
	/* still in force: the tenant's DELETE changed nothing */
	snprintf(path, sizeof(path), "/v1/silences/%s", by_name);
	assert_int_equal(req(g.auth_admin, "GET", path, NULL, &a), 200);
	assert_string_equal(json_string_value(json_object_get(a.json, "state")), "active");
	fx_answer_free(&a);
	/* the administrator still sees all four and expires one */
	assert_true(lists(g.auth_admin, by_host) && lists(g.auth_admin, other));
	assert_int_equal(req(g.auth_admin, "DELETE", path, NULL, &a), 204);
	fx_answer_free(&a);
}

/* The ids in an SSE text, in order; returns how many. */
static size_t ids_of(const char *text, uint64_t *ids, size_t max)
{
	size_t n = 0;

	for (const char *p = strstr(text, "\nid: "); p && n < max; p = strstr(p + 1, "\nid: "))
		ids[n++] = strtoull(p + 5, NULL, 10);
	return n;
}

static void test_stream_ids_are_the_projects(void **state)
{
	struct fx_answer a;
	uint64_t ids[16];
	const char *body;

	(void)state;
	/* p1, then three of p2, then p1 again */
	assert_int_equal(req(g.auth_p1, "POST", "/v1/alarms/cpu/test", NULL, &a), 202);
	fx_answer_free(&a);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(req(g.auth_p2, "POST", "/v1/alarms/disk/test", NULL, &a), 202);
		fx_answer_free(&a);
	}
	assert_int_equal(req(g.auth_p1, "POST", "/v1/alarms/cpu/test", NULL, &a), 202);
	fx_answer_free(&a);
	/* an id of an earlier run: every event of this run kept, then the
	 * stream stays open (curl's timeout ends it: the body is kept) */
	{
		char full[256];
		CURL *h = curl_easy_init();
		struct curl_slist *hd = NULL;
		char auth[VG_TOKEN_LEN + 64];

		memset(&a, 0, sizeof(a));
		snprintf(full, sizeof(full), "%s/v1/alarms/stream?last_event_id=1", g.a.srv.url);
		snprintf(auth, sizeof(auth), "Authorization: %s", g.auth_p1);
		hd = curl_slist_append(hd, auth);
		curl_easy_setopt(h, CURLOPT_URL, full);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fx_on_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1500L);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_perform(h);
		curl_easy_cleanup(h);
		curl_slist_free_all(hd);
	}
	body = a.body ? a.body : "";
	assert_non_null(strstr(body, "event: restart"));
	assert_null(strstr(body, "\"project\":\"p2\""));
	assert_int_equal(ids_of(body, ids, 16), 2);
	/* consecutive: p2's three in between left no gap */
	assert_true(ids[1] == ids[0] + 1);
	assert_null(strstr(body, "event: lost"));
	fx_answer_free(&a);

	/* the hub's counts are the administrator's: the five events kept,
	 * none evicted; a tenant's /metrics has none of them */
	assert_int_equal(req(g.auth_admin, "GET", "/metrics", NULL, &a), 200);
	assert_non_null(strstr(a.body, "\nvigie_alarms_sse_held_events 5\n"));
	assert_non_null(strstr(a.body, "\nvigie_alarms_sse_evicted_total 0\n"));
	fx_answer_free(&a);
	assert_int_equal(req(g.auth_p1, "GET", "/metrics", NULL, &a), 200);
	assert_null(strstr(a.body ? a.body : "", "vigie_alarms_sse"));
	fx_answer_free(&a);
}

/* The value of the sample name (no labels) on the administrator's
 * /metrics; fails the test when it is absent. */
static double metric(const char *name)
{
	struct fx_answer a;
	char key[128];
	const char *p;
	double v;

	assert_int_equal(req(g.auth_admin, "GET", "/metrics", NULL, &a), 200);
	snprintf(key, sizeof(key), "\n%s ", name);
	p = strstr(a.body ? a.body : "", key);
	if (!p)
		fail_msg("%s is not on /metrics", name);
	v = strtod(p + strlen(key), NULL);
	fx_answer_free(&a);
	return v;
}

/* The stream prober's rounds (vigie_api_stream_probes_total) move while
 * an alarm stream is open: a raw connection holds one, the hub shows its
 * subscriber, and the counter grows (about once a second; the wait is for
 * the growth, bounded only as a hang guard). */
static void test_metrics_stream_probes(void **state)
{
	struct vg_alarm_hub_stats hs;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char rq[512];
	int fd, n;
	double before;

	(void)state;
	before = metric("vigie_api_stream_probes_total");
	vg_alarm_hub_get_stats(g.a.hub, &hs);
	uint64_t subs = hs.subscribers;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	sa.sin_port = htons(g.a.srv.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	n = snprintf(rq, sizeof(rq),
		     "GET /v1/alarms/stream HTTP/1.1\r\nHost: x\r\n"
		     "Authorization: %s\r\n\r\n",
		     g.auth_p1);
	assert_int_equal(write(fd, rq, (size_t)n), n);
	for (int64_t t0 = vg_monotonic_ms(); vg_monotonic_ms() - t0 < 60000; vg_sleep_ms(20)) {
		vg_alarm_hub_get_stats(g.a.hub, &hs);
		if (hs.subscribers > subs)
			break;
	}
	assert_true(hs.subscribers > subs);
	double now = before;
	for (int64_t t0 = vg_monotonic_ms(); vg_monotonic_ms() - t0 < 60000 && now <= before;
	     vg_sleep_ms(100))
		now = metric("vigie_api_stream_probes_total");
	if (now <= before)
		fail_msg("vigie_api_stream_probes_total stayed %.0f for 60 s with a stream open",
			 before);
	close(fd);
}

/* Past the bound over every ring (64 per project, 512 in all here), each
 * eviction looks at one project to choose the loser:
 * vigie_alarms_sse_evict_looked_total counts those looks. Nine projects
 * of 64 events: the ninth's first publish finds 512 held. */
static void test_metrics_sse_evict_looked(void **state)
{
	struct vg_alarm_hub_stats hs;
	double before, after;
	char project[32];

	(void)state;
	before = metric("vigie_alarms_sse_evict_looked_total");
	vg_alarm_hub_get_stats(g.a.hub, &hs);
	uint64_t looked = hs.evict_looked;
	for (int p = 0; p < 9; p++) {
		snprintf(project, sizeof(project), "evict-%d", p);
		for (int i = 0; i < 64; i++)
			assert_int_equal(vg_alarm_hub_publish(g.a.hub, project, "test",
							      "{\"x\":1}"),
					 0);
	}
	vg_alarm_hub_get_stats(g.a.hub, &hs);
	assert_true(hs.evict_looked > looked);
	after = metric("vigie_alarms_sse_evict_looked_total");
	assert_true(after > before);
	assert_true(after == (double)hs.evict_looked);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alarms_of_another_project_is_an_empty_list),
		cmocka_unit_test(test_stream_405_allow),
		cmocka_unit_test(test_global_silences_a_tenant_sees),
		cmocka_unit_test(test_stream_ids_are_the_projects),
		cmocka_unit_test(test_metrics_stream_probes),
		cmocka_unit_test(test_metrics_sse_evict_looked),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
