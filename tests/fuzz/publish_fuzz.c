/*
 * publish_fuzz.c — libFuzzer target for the body of POST /v1/measures
 * (query/api/api_publish.c): the JSON parsing, every point's checks, the
 * per-request checks (kinds, units, types), the rate bucket, and the job
 * on the receiver thread that looks the resources up in the registry,
 * refuses other projects' resources, counts series and writes.
 *
 * Design: the API of api_fixture.h, given a real receiver (its own
 * registry handle, a dispatch chain holding the registry only, serving on
 * a thread over an inproc socket no agent uses), so a request runs the
 * whole handler as in the collector; the store is left out of the chain,
 * so the fuzzer's series cost registry rows, not RRD files. Unlike the
 * other API targets, inputs change the state: resources and series they
 * create stay, so later inputs also meet existing series (kinds, units,
 * other projects' resources); the limits (series per project, points per
 * second) answer 429, which is a valid answer.
 *
 * Input: byte 0 picks the token (bit 0: project p1, else admin); the rest
 * is the body, NUL-terminated past its length as the server hands it over.
 *
 * Invariants checked on every input: nothing crashes, leaks or reads out
 * of bounds; the status is from 200 to 599 and never 500; the reply is
 * valid JSON; a 200 says stored + duplicates = the number of measures sent.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FX_OWN_INITIALIZE /* its receiver, fx.before_api, first */
#include "api_fixture.h"
#include "vigie/dispatch.h"
#include "vigie/receiver.h"

static struct {
	struct vg_registry *reg;
	struct vg_dispatch d;
	struct vg_receiver *rx;
	pthread_t thread;
} pub;

static void *run_receiver(void *arg)
{
	(void)arg;
	vg_receiver_run(pub.rx);
	return NULL;
}

static void stop_receiver(void)
{
	vg_receiver_stop(pub.rx);
	pthread_join(pub.thread, NULL);
	vg_receiver_close(pub.rx);
	vg_registry_close(pub.reg);
}

static void with_receiver(struct vg_api_options *o)
{
	struct vg_receiver_options ro = {0};
	struct vg_consumer c;
	char err[256];

	if (vg_registry_open(fx.srv.dir, &pub.reg, err, sizeof(err)))
		fx_die("receiver registry", err);
	vg_dispatch_init(&pub.d);
	c = vg_registry_consumer(pub.reg);
	vg_dispatch_add(&pub.d, &c);
	ro.listen = "inproc://vigie-publish-fuzz";
	ro.max_message = 1 << 20;
	ro.registry = pub.reg;
	ro.dispatch = &pub.d;
	if (vg_receiver_open(&ro, &pub.rx, err, sizeof(err)))
		fx_die("receiver", err);
	if (pthread_create(&pub.thread, NULL, run_receiver, NULL))
		fx_die("receiver", "no thread");
	atexit(stop_receiver); /* runs after fx_teardown stopped the API */
	o->receiver = pub.rx;
	o->max_future_ms = 600000;
	o->max_age_ms = 86400000LL * 455;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fx.before_api = with_receiver;
	fx_setup();
	return 0;
}

static void check_reply(const struct vg_http_resp *resp, const char *body, size_t len)
{
	json_t *j, *in;

	if (resp->status < 200 || resp->status > 599 || resp->status == 500)
		fprintf(stderr, "status %d: %.*s\n", resp->status, (int)resp->len, resp->body);
	if (!(j = fx_reply_json(resp)))
		return;
	if (resp->status == 200) {
		in = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
		assert(in);
		assert(json_integer_value(json_object_get(j, "stored")) +
			       json_integer_value(json_object_get(j, "duplicates")) ==
		       (json_int_t)json_array_size(json_object_get(in, "measures")));
		json_decref(in);
	}
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vg_http_req req;
	struct vg_http_resp resp;
	char *body;
	size_t len;

	if (!(body = fx_body(data, size, &len)))
		return 0;
	assert(fx_request("POST", "/v1/measures", data[0] & 1 ? fx.auth_p1 : fx.auth_admin,
			  body, len, &req, &resp) == 0);
	if (getenv("FUZZ_API_DEBUG"))
		fprintf(stderr, "%.*s -> %d %.*s\n", (int)len, body, resp.status,
			(int)resp.len, resp.body);
	check_reply(&resp, body, len);
	vg_http_resp_release(&resp);
	vg_http_req_release(&req);
	free(body);
	return 0;
}
