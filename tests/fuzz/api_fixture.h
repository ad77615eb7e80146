/*
 * api_fixture.h — the collector API the api_query, api_body, expr,
 * publish and silence_body fuzz targets send requests to (included by
 * each; not a fuzz target itself), with what they share: their
 * LLVMFuzzerInitialize and the checks of a JSON reply.
 *
 * Design: LLVMFuzzerInitialize builds, once per process, a data directory
 * (under $TMPDIR, /dev/shm when it exists: sqlite writes without a disk)
 * holding a small registry and RRD store (project p1: vm-a and its disk;
 * project p2: one resource whose id and name are secrets a p1 token must
 * never see), a token store with an admin and a p1 token, billing with
 * the test rate card and an alarm engine with two alarms, then starts the
 * real API (vg_api_start on 127.0.0.1:0). Inputs do not go through the
 * socket: a target parses the raw request with vg_http_req_parse and hands
 * it to vg_http_dispatch with the real route table and authorisation
 * hook, exactly as the server does once a request is in, so every input
 * runs the route matching, parameter checks, token check and handler.
 *
 * Invariants: what the targets do leaves this state as it was (they only
 * read, or undo what they created), so an input behaves the same whenever
 * it runs; the directory is removed at exit (left behind after a crash,
 * named in the log).
 */
#ifndef VIGIE_FUZZ_API_FIXTURE_H
#define VIGIE_FUZZ_API_FIXTURE_H

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "query/api/api_alarms.h"
#include "vigie/alarm_engine.h"
#include "vigie/alarm_stream.h"
#include "vigie/api.h"
#include "query/api/api_handlers.h"
#include "vigie/batch.h"
#include "vigie/bill_service.h"
#include "vigie/config.h"
#include "vigie/log.h"
#include "vigie/registry.h"
#include "vigie/store.h"
#include "vigie/token.h"

#include "../support/api_fixture.h"

#define FX_T0 1794999600000LL /* 2026-11-18T11:00:00Z */
#define FX_NOW (FX_T0 + 3600000LL)
#define FX_SECRET_ID "vm-secret-7f3a9c"
#define FX_SECRET_NAME "hidden-name-2e81"

static struct {
	struct fx_api srv; /* data dir, store, API */
	struct vg_bill_service *bill;
	struct vg_alarm_hub *hub;
	struct vg_alarm_engine *engine;
	char auth_admin[VG_TOKEN_LEN + 16], auth_p1[VG_TOKEN_LEN + 16];
	char cpu_high_id[40]; /* the alarm FX_CPU_HIGH */
	/* set by a target before fx_setup: called with the data directory
	 * ready, just before the API starts, to add options (publish_fuzz
	 * gives it a receiver) */
	void (*before_api)(struct vg_api_options *o);
} fx;

/* The threshold alarm a composite refers to. */
#define FX_CPU_HIGH                                                          \
	"{\"name\":\"cpu-high\",\"project\":\"p1\",\"metric\":\"cpu.util\"," \
	"\"resource\":\"vm-a\",\"comparison\":\"gt\",\"threshold\":90,"      \
	"\"evaluation_periods\":3,\"actions\":{\"alarm\":[\"log://\"]}}"

/* LeakSanitizer: librrd 1.7's rrd_graph_v (GET /v1/graph) loses ~20
 * bytes of its own per call and fontconfig keeps its caches; neither is
 * ours to free (the collector suppresses the same, collector/compose.c). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:librrd.so\nleak:libfontconfig.so\nleak:__vasprintf_internal\n";
}

static void fx_die(const char *what, const char *err)
{
	fprintf(stderr, "fuzz fixture: %s: %s (data in %s)\n", what, err,
		fx.srv.dir);
	abort();
}

static void fx_teardown(void)
{
	vg_api_stop(fx.srv.api);
	fx.srv.api = NULL;
	vg_alarm_engine_close(fx.engine);
	vg_alarm_hub_free(fx.hub);
	vg_bill_service_close(fx.bill);
	fx_api_stop(&fx.srv); /* closes the store, removes the directory */
}

static void fx_data(void)
{
	struct fx_data d;

	if (fx_data_open(fx.srv.dir, &d))
		fx_die("store/registry", "cannot open");
	fx.srv.store = d.store;
	for (int k = 0; k < 6; k++) {
		int64_t t = FX_T0 + 60000LL * k;
		struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)k + 1, t);

		vg_batch_resource(b, VG_RT_INSTANCE, "vm-a", "alpha", NULL, t);
		vg_batch_identity(b, "p1", "u1", "small");
		vg_batch_attr(b, "az", "zone-a");
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, k);
		vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, 30.0 * k);
		vg_batch_resource(b, VG_RT_DISK, "vm-a-vda", "vda", "vm-a", t);
		vg_batch_identity(b, "p1", "u1", NULL);
		vg_batch_sample(b, "disk.read.bytes", VG_KIND_COUNTER, 1000.0 * k);
		vg_batch_resource(b, VG_RT_INSTANCE, FX_SECRET_ID, FX_SECRET_NAME,
				  NULL, t);
		vg_batch_identity(b, "p2", "u2", "large");
		vg_batch_attr(b, "az", "zone-b");
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 100.0 - k);
		vg_batch_resource(b, VG_RT_HOST, "h1", "h1", NULL, t);
		vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 5e9);
		if (fx_data_write(&d, b))
			fx_die("write", "registry or store refused the data");
	}
	fx_data_done(&d);
}

static void fx_tokens(void)
{
	char a[VG_TOKEN_LEN + 1], p[VG_TOKEN_LEN + 1];

	if (fx_token(fx.srv.dir, NULL, "admin", a) ||
	    fx_token(fx.srv.dir, "p1", "p1", p))
		fx_die("tokens", "cannot create");
	snprintf(fx.auth_admin, sizeof(fx.auth_admin), "Bearer %s", a);
	snprintf(fx.auth_p1, sizeof(fx.auth_p1), "Bearer %s", p);
}

static void fx_alarm(const char *text, char *id, size_t idlen)
{
	json_t *body = json_loads(text, 0, NULL), *out = NULL, *errors = NULL;

	if (!body || vg_alarm_engine_create(fx.engine, body, NULL, &out, &errors))
		fx_die("alarm", text);
	if (id)
		snprintf(id, idlen, "%s",
			 json_string_value(json_object_get(out, "id")));
	json_decref(body);
	json_decref(out);
}

static void fx_alarms(void)
{
	struct vg_alarm_engine_options o = {0};
	char err[256];

	o.data_dir = fx.srv.dir;
	o.agent_interval_s = 10;
	if (vg_alarm_hub_new(64, 0, &fx.hub))
		fx_die("hub", "out of memory");
	o.hub = fx.hub;
	if (vg_alarm_engine_open(&o, &fx.engine, err, sizeof(err)))
		fx_die("alarm engine", err);
	fx_alarm(FX_CPU_HIGH, fx.cpu_high_id, sizeof(fx.cpu_high_id));
	fx_alarm("{\"name\":\"both\",\"project\":\"p1\",\"type\":\"composite\","
		 "\"rule\":\"ALARM(cpu-high) OR ok(cpu-high)\"}",
		 NULL, 0);
}

static void fx_setup(void)
{
	struct vg_api_options o = {.threads = 1};
	const char *tmp = getenv("TMPDIR");
	char err[256];

	if ((!tmp || !*tmp) && access("/dev/shm", W_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1); /* sqlite writes without a disk */
	if (fx_tmpdir(fx.srv.dir, sizeof(fx.srv.dir), "fuzz-api"))
		fx_die("mkdtemp", fx.srv.dir);
	vg_log_set_level(VG_LOG_ERROR);
	fx_data();
	fx_tokens();
	if (vg_bill_service_open(fx.srv.dir, NULL, "tests/fixtures/billing/ratecard.json",
				 &fx.bill, err, sizeof(err)))
		fx_die("billing", err);
	fx_alarms();
	o.alarms = fx.engine;
	o.alarm_hub = fx.hub;
	if (fx.before_api)
		fx.before_api(&o);
	if (fx_api_start(&fx.srv, &o))
		fx_die("api", "cannot start");
	vg_api_set_billing(fx.srv.api, fx.bill);
	atexit(fx_teardown);
}

/* Parse raw_uri as the server would and dispatch it with the given
 * Authorization header and body; resp gets the reply (release it). The
 * return is vg_http_req_parse's: non-zero means no request was made. */
static int fx_request(const char *method, const char *raw_uri,
		      const char *authorization, const char *body,
		      size_t body_len, struct vg_http_req *req,
		      struct vg_http_resp *resp)
{
	int rc = vg_http_req_parse(req, method, raw_uri);

	memset(resp, 0, sizeof(*resp));
	if (rc)
		return rc;
	req->ctx = fx.srv.api;
	req->authorization = authorization;
	req->body = body;
	req->body_len = body_len;
	req->now_ms = FX_NOW;
	vg_http_dispatch(vg_api_routes, vg_api_nroutes, vg_api_authorize, req,
			 resp);
	return 0;
}

/* The checks every target makes on a reply whose body is JSON: a status
 * from 200 to 599, never a 500, and a body that parses. Returns the body
 * parsed (the caller's to json_decref), NULL when there is none. */
static json_t *fx_reply_json(const struct vg_http_resp *resp)
{
	json_t *j;

	assert(resp->status >= 200 && resp->status <= 599);
	assert(resp->status != 500);
	if (!resp->len)
		return NULL;
	j = json_loadb(resp->body, resp->len, 0, NULL);
	assert(j);
	return j;
}

/* An input's body: what follows its selector byte data[0], copied and
 * NUL-terminated past its length (*len) as the server hands a body over;
 * the caller frees it. NULL, the input skipped, when there is no
 * selector byte or no memory. */
static char *fx_body(const uint8_t *data, size_t size, size_t *len)
{
	char *body;

	if (size < 1 || !(body = malloc(size)))
		return NULL;
	*len = size - 1;
	memcpy(body, data + 1, *len);
	body[*len] = '\0';
	return body;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer's start, once per process: the fixture. A target that adds
 * to it (publish_fuzz: fx.before_api) defines FX_OWN_INITIALIZE before
 * including this header and writes its own. */
#ifndef FX_OWN_INITIALIZE
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fx_setup();
	return 0;
}
#endif

#endif
