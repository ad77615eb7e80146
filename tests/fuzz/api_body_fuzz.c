/*
 * api_body_fuzz.c — libFuzzer target for the API's JSON request bodies:
 * alarm definitions (POST /v1/alarms, PUT and PATCH /v1/alarms/{id}:
 * the handlers' body reading, the engine's merge for PATCH and
 * vg_alarm_def_from_json's validation, on the real API of api_fixture.h)
 * and token requests (vg_api_token_request_parse, the parsing half of
 * POST /v1/tokens; its other half writes the token store, which a
 * fuzzer would fill).
 *
 * Input: byte 0 picks the endpoint (bits 0-1: create, replace, patch,
 * token) and the token (bit 2: admin or project p1); the rest is the
 * body, NUL-terminated past its length as the server hands it over.
 *
 * Invariants checked on every input: nothing crashes, leaks or reads out
 * of bounds; every request gets a status from 200 to 599 and never a 500;
 * every reply is valid JSON; a 400 for an alarm lists the offending
 * fields; what is created is deleted again and what is replaced is put
 * back (both must succeed), so inputs do not depend on each other; a
 * definition vg_alarm_def_from_json accepts converts back to JSON that it
 * accepts again as the same definition; a token request is accepted only
 * with exactly one of "admin":true and a non-empty "project".
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api_fixture.h"
#include "vigie/alarm.h"

static void check_reply(const struct vg_http_resp *resp)
{
	json_t *j;

	if (!(j = fx_reply_json(resp)))
		return;
	if (resp->status == 400 && json_object_get(json_object_get(j, "error"),
						   "fields"))
		assert(json_array_size(json_object_get(
			       json_object_get(j, "error"), "fields")) >= 1);
	json_decref(j);
}

/* Send one request with the admin token that must answer want. */
static void must(const char *method, const char *uri, const char *body,
		 int want)
{
	struct vg_http_req req;
	struct vg_http_resp resp;

	assert(fx_request(method, uri, fx.auth_admin, body,
			  body ? strlen(body) : 0, &req, &resp) == 0);
	if (resp.status != want)
		fprintf(stderr, "%s %s -> %d, not %d: %.*s\n", method, uri,
			resp.status, want, (int)resp.len, resp.body);
	assert(resp.status == want);
	vg_http_resp_release(&resp);
	vg_http_req_release(&req);
}

/* The definition round trip through vg_alarm_def_to_json. */
static void def_roundtrip(const char *body, size_t len, const char *scope)
{
	struct vg_alarm_policy pol = {.agent_interval_s = 10,
				      .scope_project = scope};
	struct vg_alarm_def d, d2;
	json_t *in, *errors = NULL, *out;

	if (!(in = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL)))
		return;
	if (vg_alarm_def_from_json(in, &pol, &d, &errors)) {
		assert(errors == NULL || json_array_size(errors) >= 1);
		json_decref(errors);
		json_decref(in);
		return;
	}
	assert(errors == NULL && d.name && d.project);
	assert(!scope || !strcmp(d.project, scope));
	assert(d.kind == VG_ALARM_COMPOSITE ||
	       (d.datapoints_to_alarm >= 1 &&
		d.datapoints_to_alarm <= d.evaluation_periods &&
		d.period_s >= 1));
	out = vg_alarm_def_to_json(&d);
	assert(out);
	if (vg_alarm_def_from_json(out, &pol, &d2, &errors)) {
		char *t = json_dumps(out, 0), *e = json_dumps(errors, 0);
		fprintf(stderr, "round trip refused: %s\n  errors: %s\n", t, e);
		free(t);
		free(e);
		assert(0);
	}
	assert(!vg_alarm_def_eval_changed(&d, &d2));
	assert(!strcmp(d.name, d2.name) && !strcmp(d.project, d2.project));
	assert(d.enabled == d2.enabled && d.severity == d2.severity);
	for (int s = 0; s < VG_ALARM_NSTATES; s++)
		assert(d.nactions[s] == d2.nactions[s]);
	vg_alarm_def_release(&d2);
	json_decref(out);
	vg_alarm_def_release(&d);
	json_decref(in);
}

static void token_body(const char *body, size_t len)
{
	const char *project, *name;
	char err[256] = "";
	json_t *doc;

	if (vg_api_token_request_parse(body, len, &doc, &project, &name, err,
				       sizeof(err))) {
		assert(!doc && !project && !name && err[0]);
		return;
	}
	assert(json_is_object(doc));
	if (project)
		assert(*project && !json_is_true(json_object_get(doc, "admin")));
	else
		assert(json_is_true(json_object_get(doc, "admin")));
	json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const method[] = {"POST", "PUT", "PATCH"};
	struct vg_http_req req;
	struct vg_http_resp resp;
	char uri[128], *body;
	size_t len;
	int sel;

	if (!(body = fx_body(data, size, &len)))
		return 0;
	sel = data[0];

	if ((sel & 3) == 3) {
		token_body(body, len);
		free(body);
		return 0;
	}
	def_roundtrip(body, len, sel & 4 ? "p1" : NULL);
	if ((sel & 3) == 0)
		snprintf(uri, sizeof(uri), "/v1/alarms");
	else
		snprintf(uri, sizeof(uri), "/v1/alarms/%s", fx.cpu_high_id);
	assert(fx_request(method[sel & 3], uri, sel & 4 ? fx.auth_p1 : fx.auth_admin,
			  body, len, &req, &resp) == 0);
	if (getenv("FUZZ_API_DEBUG"))
		fprintf(stderr, "%s %s %.*s -> %d %.*s\n", method[sel & 3], uri,
			(int)len, body, resp.status, (int)resp.len, resp.body);
	check_reply(&resp);
	if (resp.status == 201) { /* created: delete it again */
		json_t *j = json_loadb(resp.body, resp.len, 0, NULL);
		const char *id = json_string_value(json_object_get(j, "id"));
		assert(id);
		snprintf(uri, sizeof(uri), "/v1/alarms/%s", id);
		json_decref(j);
		must("DELETE", uri, NULL, 204);
	} else if (resp.status == 200) { /* replaced: put the original back */
		must("PUT", uri, FX_CPU_HIGH, 200);
	}
	vg_http_resp_release(&resp);
	vg_http_req_release(&req);
	free(body);
	return 0;
}
