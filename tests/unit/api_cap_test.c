/*
 * api_cap_test.c — the per-project cap on requests in flight
 * ([collector] http_max_concurrent_per_project, docs/api.md "Requests in
 * flight per project") on the real API: vg_api_start on a loopback port
 * with 4 worker threads (the default cap: 3), a real receiver, and the
 * tokens of an administrator and of projects pa and pb.
 *
 * What keeps a worker busy is real: POST /v1/measures hands its points to
 * the receiver thread (the collector's one writer) and waits for it; the
 * receiver here is open but not yet running, as a writer that is behind
 * (a slow disk, a large group of agent batches), so each of pa's three
 * publishes holds a worker until the test starts the receiver. No hook in
 * the server: the handlers are the API's own.
 *
 *   - pa holds 3 workers; its next request waits in pa's queue (of 1
 *     here: [collector] http_queue_per_project), GET /metrics counting it
 *     in vigie_api_requests_queued; the one after is a 429 at once with
 *     Retry-After and the API's JSON error, while pb's is served (200) on
 *     the worker left;
 *   - GET /metrics (admin) shows the requests in flight and the refusal
 *     under reason="project_concurrency", none under "admin_concurrency";
 *   - once the receiver runs, pa's publishes are answered (200), then
 *     pa's waiting request (200), and pa is served again.
 * Without the cap pa's fourth request is served (200) at once; without
 * the queue it is a 429: the test fails either way.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "vigie/dispatch.h"
#include "vigie/receiver.h"

#include "../support/api_fixture.h"

static struct {
	struct fx_api srv;
	struct fx_data d;
	struct vg_dispatch disp;
	struct vg_receiver *rx;
	pthread_t rx_thread;
	int rx_running;
	char admin[VG_TOKEN_LEN + 16], pa[VG_TOKEN_LEN + 16], pb[VG_TOKEN_LEN + 16];
} g;

static void *rx_run(void *arg)
{
	(void)arg;
	vg_receiver_run(g.rx);
	return NULL;
}

static int setup(void **state)
{
	struct vg_receiver_options ro = {0};
	struct vg_api_options ao = {0};
	char tok[VG_TOKEN_LEN + 1], err[256];

	(void)state;
	/* pa's publishes wait for the receiver, started only after the
	 * checks below: on a loaded machine those took past fx_http's 30 s
	 * (the publishes then came back without an answer); tests/run.sh's
	 * TEST_TIMEOUT bounds a real hang */
	*fx_http_timeout_s() = 600;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (fx_tmpdir(g.srv.dir, sizeof(g.srv.dir), "api-cap") ||
	    fx_data_open(g.srv.dir, &g.d))
		return -1;
	g.srv.store = g.d.store;
	vg_dispatch_init(&g.disp);
	ro.listen = "inproc://api-cap-test";
	ro.max_message = 1u << 20;
	ro.registry = g.d.registry;
	ro.dispatch = &g.disp;
	ro.store = g.d.store;
	if (vg_receiver_open(&ro, &g.rx, err, sizeof(err))) {
		fprintf(stderr, "receiver: %s\n", err);
		return -1;
	}
	ao.threads = 4;            /* the default cap: 3 */
	ao.queue_per_project = 1;  /* pa's fourth waits, its fifth is refused */
	ao.queue_wait_ms = 600000; /* a hang guard: the receiver ends the wait */
	ao.receiver = g.rx;
	if (fx_api_start(&g.srv, &ao))
		return -1;
	if (fx_token(g.srv.dir, NULL, "admin", tok))
		return -1;
	snprintf(g.admin, sizeof(g.admin), "Bearer %s", tok);
	if (fx_token(g.srv.dir, "pa", "pa", tok))
		return -1;
	snprintf(g.pa, sizeof(g.pa), "Bearer %s", tok);
	if (fx_token(g.srv.dir, "pb", "pb", tok))
		return -1;
	snprintf(g.pb, sizeof(g.pb), "Bearer %s", tok);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	/* a failed test may leave publishes waiting for the receiver: run
	 * it, so that the API's stop (which waits for its handlers) ends */
	if (!g.rx_running && !pthread_create(&g.rx_thread, NULL, rx_run, NULL))
		g.rx_running = 1;
	vg_api_stop(g.srv.api); /* no handler runs after this */
	if (g.rx_running) {
		vg_receiver_stop(g.rx);
		pthread_join(g.rx_thread, NULL);
	}
	vg_receiver_close(g.rx);
	fx_data_done(&g.d); /* the registry */
	vg_store_close(g.d.store);
	fx_rm_tree(g.srv.dir);
	curl_global_cleanup();
	return 0;
}

/* A request of the test's own (not one of pa's publishes, which wait on
 * purpose), given up after 5 s and sent again on a new connection. Before
 * the worker pool (December 2026) the libmicrohttpd thread that accepted
 * a connection ran its handler, and one could accept it just before it
 * took a publish that then waited for the receiver; that no longer
 * happens, and the retry is kept as a guard (every request here is a
 * read or is refused before any work). */
static long ask(const char *method, const char *path, const char *authorization,
		struct fx_answer *a)
{
	long st = -1;

	for (int i = 0; i < 24 && st < 0; i++) {
		if (i)
			fx_answer_free(a);
		st = fx_http_within(g.srv.url, method, path, authorization, NULL, a, 5);
	}
	return st;
}

/* The value of the sample line that starts with name (a full series
 * name, labels included) on the administrator's /metrics, or -1. */
static long metric(const char *name)
{
	struct fx_answer a;
	long v = -1;
	size_t n = strlen(name);

	if (ask("GET", "/metrics", g.admin, &a) == 200 && a.body)
		for (const char *l = a.body; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l)
			if (!strncmp(l, name, n) && l[n] == ' ') {
				v = strtol(l + n + 1, NULL, 10);
				break;
			}
	fx_answer_free(&a);
	return v;
}

/* Requests in flight on the administrator's /metrics, less the scrape
 * itself (it holds a place of the admin bucket while it runs). */
static long in_flight(void)
{
	long v = metric("vigie_api_requests_in_flight");

	return v < 0 ? v : v - 1;
}

/* Wait until want of pa's requests are in flight: 1, or 0 after 60 s (a
 * guard against a hang, no timing bound: the requests wait for the
 * receiver, which does not run). */
static int in_flight_is(long want)
{
	for (int i = 0; i < 6000; i++) {
		if (in_flight() == want)
			return 1;
		nanosleep(&(struct timespec){0, 10000000L}, NULL);
	}
	return 0;
}

struct publish {
	pthread_t th;
	int i;
	long status;
};

static void *publish(void *arg)
{
	struct publish *p = arg;
	struct fx_answer a;
	char body[256];

	snprintf(body, sizeof(body),
		 "{\"measures\":[{\"resource\":\"queue-%d\",\"metric\":\"queue.depth\","
		 "\"value\":%d,\"time\":\"-1m\"}]}",
		 p->i, p->i);
	p->status = fx_http(g.srv.url, "POST", "/v1/measures", g.pa, body, &a);
	if (p->status != 200)
		fprintf(stderr, "publish %d: %ld %s\n", p->i, p->status, a.body ? a.body : "");
	fx_answer_free(&a);
	return NULL;
}

/* pa's request that waits in pa's queue */
static void *list_resources(void *arg)
{
	struct publish *p = arg;
	struct fx_answer a;

	p->status = fx_http(g.srv.url, "GET", "/v1/resources", g.pa, NULL, &a);
	fx_answer_free(&a);
	return NULL;
}

/* Wait until the administrator's /metrics shows name at want: 1, or 0
 * after 60 s (a guard against a hang, no timing bound). */
static int metric_is(const char *name, long want)
{
	for (int i = 0; i < 6000; i++) {
		if (metric(name) == want)
			return 1;
		nanosleep(&(struct timespec){0, 10000000L}, NULL);
	}
	return 0;
}

static void test_project_cap(void **state)
{
	struct publish p[3], waiting = {.i = 3};
	struct fx_answer a;

	(void)state;
	assert_int_equal(metric("vigie_api_requests_refused_total{reason=\"project_concurrency\"}"),
			 0);
	/* pa's three publishes, one after the other: each once the one
	 * before holds its worker (a busy worker accepts no connection) */
	for (int i = 0; i < 3; i++) {
		p[i].i = i;
		assert_int_equal(pthread_create(&p[i].th, NULL, publish, &p[i]), 0);
		assert_true(in_flight_is(i + 1));
	}

	/* pa's fourth waits in pa's queue, its connection suspended */
	assert_int_equal(pthread_create(&waiting.th, NULL, list_resources, &waiting), 0);
	assert_true(metric_is("vigie_api_requests_queued", 1));
	assert_int_equal(metric("vigie_api_requests_queued_total"), 1);
	/* pa's fifth: over the cap and the queue, refused at once, nothing
	 * done */
	assert_int_equal(ask("GET", "/v1/resources", g.pa, &a), 429);
	assert_string_equal(a.retry_after, "1");
	assert_non_null(a.json);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(a.json, "error"),
							    "code")),
			 429);
	assert_non_null(strstr(json_string_value(json_object_get(
				       json_object_get(a.json, "error"), "message")),
			       "too many requests in flight for this project (at most 3 at once, "
			       "and 1 waiting)"));
	/* the reason names the cap as the refusals' metric labels it */
	assert_non_null(json_string_value(
		json_object_get(json_object_get(a.json, "error"), "reason")));
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(a.json, "error"), "reason")),
			    "project_concurrency");
	fx_answer_free(&a);
	/* pb is served meanwhile */
	assert_int_equal(ask("GET", "/v1/resources", g.pb, &a), 200);
	fx_answer_free(&a);
	/* a request without a token is a 401, before any place */
	assert_int_equal(ask("GET", "/v1/resources", NULL, &a), 401);
	fx_answer_free(&a);
	assert_int_equal(metric("vigie_api_requests_refused_total{reason=\"project_concurrency\"}"),
			 1);
	assert_int_equal(metric("vigie_api_requests_refused_total{reason=\"admin_concurrency\"}"),
			 0);
	assert_int_equal(in_flight(), 3);

	/* the writer catches up: pa's publishes are answered */
	assert_int_equal(pthread_create(&g.rx_thread, NULL, rx_run, NULL), 0);
	g.rx_running = 1;
	for (int i = 0; i < 3; i++) {
		pthread_join(p[i].th, NULL);
		assert_int_equal(p[i].status, 200);
	}
	/* then pa's waiting request, in its turn */
	pthread_join(waiting.th, NULL);
	assert_int_equal(waiting.status, 200);
	assert_int_equal(metric("vigie_api_requests_queued"), 0);
	/* a request given up by ask() is served once its worker is free,
	 * and holds a place while it is: wait for those too */
	assert_true(in_flight_is(0));
	/* and pa is served again */
	assert_int_equal(ask("GET", "/v1/resources", g.pa, &a), 200);
	fx_answer_free(&a);
	assert_int_equal(metric("vigie_api_requests_refused_total{reason=\"project_concurrency\"}"),
			 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_project_cap),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
