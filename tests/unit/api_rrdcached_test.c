/*
 * api_rrdcached_test.c — the API over series stored on a real rrdcached:
 * while the daemon is down, a read of its series answers 503 naming the
 * daemon's address (measures and statistics), and /v1/health lists it
 * (its address and error to an admin token only); a daemon started
 * without -R makes it degraded, naming the cause
 * down; back up, the same read answers 200 with the values.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "vigie/api.h"

#include "../support/api_fixture.h"
#include "rrdcached_harness.h"
#include "vigie/config.h"
#include "vigie/registry.h"

#define T0 1699999980LL

/* srv->store opened in srv->dir on the rrdcached backend at daemons, the
 * defaults otherwise (write-through when write_through). */
static void open_rcd_store(struct fx_api *srv, const char *daemons, int write_through)
{
	struct vg_config cfg;
	char err[256];

	vg_config_defaults(&cfg);
	snprintf(cfg.storage_backend, sizeof(cfg.storage_backend), "rrdcached");
	snprintf(cfg.storage_daemons, sizeof(cfg.storage_daemons), "%s", daemons);
	if (write_through)
		snprintf(cfg.storage_write_through, sizeof(cfg.storage_write_through), "yes");
	if (vg_store_open(srv->dir, &cfg, &srv->store, err, sizeof(err)))
		fail_msg("%s", err);
}

/* A batch of host h1 (sequence seq, at t_ms): load.1 = v. */
static struct vg_batch *h1_batch(uint64_t seq, int64_t t_ms, double v)
{
	struct vg_batch *b = vg_batch_new("h1", 1, seq, t_ms);

	assert_non_null(vg_batch_resource(b, VG_RT_HOST, "h1", "h1", NULL, t_ms));
	assert_int_equal(vg_batch_sample(b, "load.1", VG_KIND_GAUGE, v), 0);
	return b;
}

/* An admin token as auth ("Bearer ..."), then the API started on srv. */
static void start_api_admin(struct fx_api *srv, char *auth, size_t authlen)
{
	char tok[VG_TOKEN_LEN + 1];

	assert_int_equal(fx_token(srv->dir, NULL, "api_rcd", tok), 0);
	snprintf(auth, authlen, "Bearer %s", tok);
	assert_int_equal(fx_api_start(srv, NULL), 0);
}

static void test_unreachable_daemon_named(void **state)
{
	static const char *const extra[] = {"-O", "-R", NULL};
	struct fx_api srv = {0};
	struct hrd_daemon dm;
	struct vg_registry *reg;
	struct fx_answer a;
	char err[256], auth[VG_TOKEN_LEN + 16], path[256];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	assert_int_equal(fx_tmpdir(srv.dir, sizeof(srv.dir), "api-rcd"), 0);
	assert_int_equal(hrd_start(&dm, NULL, extra), 0);
	open_rcd_store(&srv, dm.tcp_addr, 0);
	if (vg_registry_open(srv.dir, &reg, err, sizeof(err)))
		fail_msg("%s", err);
	for (int k = 0; k < 5; k++) {
		struct vg_batch *b = h1_batch((uint64_t)k + 1, (T0 + 60 * k) * 1000, 1.0 + k);
		assert_int_equal(vg_registry_update(reg, b), 0);
		assert_int_equal(vg_store_write_batch(srv.store, b), 0);
		vg_batch_free(b);
	}
	assert_int_equal(vg_store_flush(srv.store), 0);
	vg_registry_close(reg);
	start_api_admin(&srv, auth, sizeof(auth));
	snprintf(path, sizeof(path), "/v1/measures?resource=h1&metric=load.1&start=%lld&end=%lld",
		 T0, T0 + 300);

	assert_int_equal(fx_http(srv.url, "GET", path, auth, NULL, &a), 200);
	fx_answer_free(&a);

	assert_int_equal(hrd_kill(&dm, SIGKILL), 0);
	assert_int_equal(fx_http(srv.url, "GET", path, auth, NULL, &a), 503);
	if (!strstr(a.body, dm.tcp_addr))
		fail_msg("the 503 does not name %s: %s", dm.tcp_addr, a.body);
	fx_answer_free(&a);
	snprintf(path, sizeof(path),
		 "/v1/statistics?resource=h1&metric=load.1&start=%lld&end=%lld", T0, T0 + 300);
	assert_int_equal(fx_http(srv.url, "GET", path, auth, NULL, &a), 503);
	assert_non_null(strstr(a.body, dm.tcp_addr));
	fx_answer_free(&a);
	/* /v1/health is public (load balancers): without a token it says
	 * the daemon is down, but not its address nor the error naming it */
	assert_int_equal(fx_http(srv.url, "GET", "/v1/health", NULL, NULL, &a), 200);
	assert_non_null(strstr(a.body, "\"down\""));
	if (strstr(a.body, dm.tcp_addr) || strstr(a.body, "\"address\"") ||
	    strstr(a.body, "\"error\""))
		fail_msg("the tokenless health names the daemon: %s", a.body);
	fx_answer_free(&a);
	/* an admin token sees the address and the error */
	assert_int_equal(fx_http(srv.url, "GET", "/v1/health", auth, NULL, &a), 200);
	{
		json_t *d = json_array_get(json_object_get(a.json, "storage"), 0);
		assert_string_equal(json_string_value(json_object_get(d, "address")),
				    dm.tcp_addr);
		assert_string_equal(json_string_value(json_object_get(d, "state")), "down");
		const char *e = json_string_value(json_object_get(d, "error"));
		assert_non_null(e);
		assert_true(*e);
	}
	fx_answer_free(&a);

	/* back: the same read answers (after the back-off, at most 2 s) */
	assert_int_equal(hrd_restart(&dm), 0);
	snprintf(path, sizeof(path), "/v1/measures?resource=h1&metric=load.1&start=%lld&end=%lld",
		 T0, T0 + 300);
	long code = 0;
	for (int i = 0; i < 40 && code != 200; i++) {
		code = fx_http(srv.url, "GET", path, auth, NULL, &a);
		if (code != 200)
			usleep(100 * 1000);
		fx_answer_free(&a);
	}
	assert_int_equal(code, 200);
	fx_api_stop(&srv);
	hrd_cleanup(&dm);
	curl_global_cleanup();
}

/* A daemon without -R: /v1/health is degraded, the daemon's entry names
 * the cause (every token), the admin's error names the daemon, and the
 * metrics count the refused creates. */
static void test_daemon_without_R_in_health(void **state)
{
	static const char *const extra[] = {"-O", NULL};
	struct fx_api srv = {0};
	struct hrd_daemon dm;
	struct fx_answer a;
	char auth[VG_TOKEN_LEN + 16];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	assert_int_equal(fx_tmpdir(srv.dir, sizeof(srv.dir), "api-rcd-noR"), 0);
	assert_int_equal(hrd_start(&dm, NULL, extra), 0);
	open_rcd_store(&srv, dm.tcp_addr, 0);
	struct vg_batch *b = h1_batch(1, T0 * 1000, 1.0);
	assert_int_equal(vg_store_write_batch(srv.store, b), -EAGAIN);
	vg_batch_free(b);
	start_api_admin(&srv, auth, sizeof(auth));

	assert_int_equal(fx_http(srv.url, "GET", "/v1/health", NULL, NULL, &a), 200);
	{
		json_t *d = json_array_get(json_object_get(a.json, "storage"), 0);
		assert_string_equal(json_string_value(json_object_get(a.json, "status")),
				    "degraded");
		assert_non_null(strstr(json_string_value(json_object_get(a.json, "reason")),
				       "cannot create new series (start rrdcached with -R)"));
		assert_string_equal(json_string_value(json_object_get(d, "cause")),
				    "the daemon cannot create directories: start rrdcached "
				    "with -R");
		assert_int_equal(json_integer_value(json_object_get(d, "create_errors")), 1);
		assert_null(strstr(a.body, dm.tcp_addr));
	}
	fx_answer_free(&a);
	assert_int_equal(fx_http(srv.url, "GET", "/v1/health", auth, NULL, &a), 200);
	{
		json_t *d = json_array_get(json_object_get(a.json, "storage"), 0);
		const char *e = json_string_value(json_object_get(d, "error"));
		assert_non_null(e);
		assert_non_null(strstr(e, dm.tcp_addr));
		assert_non_null(strstr(e, "start rrdcached with -R"));
	}
	fx_answer_free(&a);
	assert_int_equal(fx_http(srv.url, "GET", "/metrics", auth, NULL, &a), 200);
	assert_non_null(strstr(a.body, "vigie_storage_daemon_create_errors_total{daemon="));
	{ /* the open read the file's last update (a FLUSH), nothing synced */
		char want[512];
		snprintf(want, sizeof(want),
			 "vigie_storage_daemon_flushes_total{daemon=\"%s\",site=\"read\"} 1\n",
			 dm.tcp_addr);
		assert_non_null(strstr(a.body, want));
		snprintf(want, sizeof(want),
			 "vigie_storage_daemon_flushes_total{daemon=\"%s\",site=\"sync\"} 0\n",
			 dm.tcp_addr);
		assert_non_null(strstr(a.body, want));
		assert_non_null(strstr(a.body, "vigie_store_backend_syncs_total{cause=\"idle\"} 0\n"));
		/* nothing synced: nothing read back, either way */
		snprintf(want, sizeof(want),
			 "vigie_storage_daemon_readback_files_total{daemon=\"%s\",how=\"local\"} "
			 "0\n",
			 dm.tcp_addr);
		assert_non_null(strstr(a.body, want));
		/* no batch's write-through: no round trip skipped */
		assert_non_null(strstr(
			a.body, "# TYPE vigie_storage_daemon_round_trips_skipped_total counter\n"));
		snprintf(want, sizeof(want),
			 "vigie_storage_daemon_round_trips_skipped_total{daemon=\"%s\"} 0\n",
			 dm.tcp_addr);
		assert_non_null(strstr(a.body, want));
		/* nothing found lost: no re-send watched */
		assert_non_null(strstr(a.body, "# TYPE vigie_storage_daemon_resend_watch_files gauge\n"));
		snprintf(want, sizeof(want),
			 "vigie_storage_daemon_resend_watch_files{daemon=\"%s\"} 0\n", dm.tcp_addr);
		assert_non_null(strstr(a.body, want));
	}
	fx_answer_free(&a);
	fx_api_stop(&srv);
	hrd_cleanup(&dm);
	curl_global_cleanup();
}

/* A daemon that refuses the sync's FLUSH (its socket started with -P
 * without FLUSH: "Permission denied."): /v1/health is degraded while the
 * refusals last, the daemon's entry too (flush_refusing; the refusal's
 * text, which names a file, to an admin token only), /metrics has its
 * flush_refusing gauge at 1; once the daemon FLUSHes again and a sync
 * passes, all is ok again. Before issue 14, health said ok throughout:
 * only the counter flush_refused moved. */
static void test_refusing_daemon_in_health(void **state)
{
	struct fx_api srv = {0};
	struct hrd_daemon dm;
	struct vg_store_daemon st[2];
	struct fx_answer a;
	char auth[VG_TOKEN_LEN + 16], want[800], addr[512];

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	assert_int_equal(fx_tmpdir(srv.dir, sizeof(srv.dir), "api-rcd-refusing"), 0);
	/* -P applies to the sockets listed after it: one of its own */
	snprintf(addr, sizeof(addr), "unix:%s/noflush.sock", srv.dir);
	const char *extra[] = {
		"-O", "-R", "-P",
		"PING,UPDATE,BATCH,CREATE,INFO,LAST,FIRST,FORGET,STATS,FETCH,LIST,PENDING,WROTE,QUIT,HELP",
		"-l", addr, NULL};
	assert_int_equal(hrd_start(&dm, NULL, extra), 0);
	/* write-through: a sync after the batch (a FLUSH of its file) */
	open_rcd_store(&srv, addr, 1);
	struct vg_batch *b = h1_batch(1, T0 * 1000, 1.0);
	assert_int_equal(vg_store_write_batch(srv.store, b), 0);
	vg_batch_free(b);
	vg_store_flush(srv.store); /* its sync's FLUSH refused */
	assert_int_equal(vg_store_daemons(srv.store, st, 2), 1);
	printf("# %llu refused, %llu pending, error: %s\n", (unsigned long long)st[0].flush_refused,
	       (unsigned long long)st[0].pending, st[0].error);
	fflush(stdout);
	assert_true(st[0].flush_refused > 0);
	start_api_admin(&srv, auth, sizeof(auth));

	assert_int_equal(fx_http(srv.url, "GET", "/v1/health", NULL, NULL, &a), 200);
	{
		json_t *d = json_array_get(json_object_get(a.json, "storage"), 0);
		assert_string_equal(json_string_value(json_object_get(a.json, "status")),
				    "degraded");
		assert_non_null(strstr(json_string_value(json_object_get(a.json, "reason")),
				       "refuses the sync's FLUSH"));
		assert_string_equal(json_string_value(json_object_get(d, "state")), "degraded");
		assert_true(json_is_true(json_object_get(d, "flush_refusing")));
		assert_null(json_object_get(d, "flush_refusal"));
		assert_null(strstr(a.body, "load.1"));
	}
	fx_answer_free(&a);
	assert_int_equal(fx_http(srv.url, "GET", "/v1/health", auth, NULL, &a), 200);
	{
		json_t *d = json_array_get(json_object_get(a.json, "storage"), 0);
		const char *r = json_string_value(json_object_get(d, "flush_refusal"));
		assert_non_null(r);
		assert_non_null(strstr(r, "load.1"));
		assert_non_null(strstr(r, "Permission denied"));
	}
	fx_answer_free(&a);
	assert_int_equal(fx_http(srv.url, "GET", "/metrics", auth, NULL, &a), 200);
	snprintf(want, sizeof(want), "vigie_storage_daemon_flush_refusing{daemon=\"%s\"} 1\n",
		 addr);
	assert_non_null(strstr(a.body, want));
	fx_answer_free(&a);

	/* FLUSH allowed again: once a sync passes, health is ok */
	dm.extra[3] = "PING,UPDATE,BATCH,CREATE,INFO,LAST,FIRST,FORGET,STATS,FETCH,LIST,"
		      "PENDING,WROTE,QUIT,HELP,FLUSH";
	assert_int_equal(hrd_restart(&dm), 0);
	for (int i = 0; i < 120; i++) { /* its restart: up to 30 s */
		vg_store_flush(srv.store);
		assert_int_equal(vg_store_daemons(srv.store, st, 2), 1);
		if (!st[0].pending && !st[0].lost && !st[0].flush_refusing)
			break;
		usleep(250 * 1000);
	}
	assert_int_equal(st[0].flush_refusing, 0);
	assert_int_equal(fx_http(srv.url, "GET", "/v1/health", auth, NULL, &a), 200);
	{
		json_t *d = json_array_get(json_object_get(a.json, "storage"), 0);
		assert_string_equal(json_string_value(json_object_get(a.json, "status")), "ok");
		assert_string_equal(json_string_value(json_object_get(d, "state")), "up");
		assert_true(json_is_false(json_object_get(d, "flush_refusing")));
		assert_null(json_object_get(d, "flush_refusal"));
	}
	fx_answer_free(&a);
	/* the daemon's socket and journal are in srv.dir: the tree goes
	 * again once the daemon has stopped (its exit writes the journal) */
	char dir[sizeof(srv.dir)];
	memcpy(dir, srv.dir, sizeof(dir));
	fx_api_stop(&srv);
	hrd_cleanup(&dm);
	fx_rm_tree(dir);
	curl_global_cleanup();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unreachable_daemon_named),
		cmocka_unit_test(test_daemon_without_R_in_health),
		cmocka_unit_test(test_refusing_daemon_in_health),
	};
	if (system("command -v rrdcached >/dev/null")) {
		printf("# skipped: rrdcached not installed\n");
		return 0;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
