/*
 * silence_body_fuzz.c — libFuzzer target for the body of POST
 * /v1/silences: the handler's body reading and the silences' validation
 * (alarms/silence.c from_json and read_matchers), on the real API of
 * api_fixture.h with its alarm engine.
 *
 * Input: byte 0 picks the token (bit 0: administrator or project p1) and
 * whether the created silence is listed by a p1 token before it is
 * expired (bit 1: the matching of a global silence against p1's alarms);
 * the rest is the body, NUL-terminated past its length as the server
 * hands it over.
 *
 * Invariants checked on every input: nothing crashes, leaks or reads out
 * of bounds; every request gets a status from 200 to 599 and never a 500;
 * every reply is valid JSON; a 400 lists the offending fields (at least
 * one). A silence is created (201) only from a body that the rules of
 * docs/alarms.md allow, checked here on their own: every top-level field
 * and every matcher known, every matcher value and label a valid text,
 * created_by and comment present; a p1 token's silence is p1's. What is
 * created can be read back (200) and is expired again (204), so inputs
 * do not depend on each other.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api_fixture.h"
#include "vigie/alarm.h"
#include "vigie/name.h"

static void check_reply(const struct vg_http_resp *resp)
{
	json_t *j, *f;

	if (!(j = fx_reply_json(resp)))
		return;
	f = json_object_get(json_object_get(j, "error"), "fields");
	if (resp->status == 400 && f)
		assert(json_array_size(f) >= 1);
	json_decref(j);
}

/* Send one request that must answer want; the reply's body is returned
 * (the caller's) when body_out is given. */
static void must(const char *method, const char *uri, const char *auth, int want,
		 json_t **body_out)
{
	struct vg_http_req req;
	struct vg_http_resp resp;

	assert(fx_request(method, uri, auth, NULL, 0, &req, &resp) == 0);
	if (resp.status != want)
		fprintf(stderr, "%s %s -> %d, not %d: %.*s\n", method, uri,
			resp.status, want, (int)resp.len, resp.body);
	assert(resp.status == want);
	check_reply(&resp);
	if (body_out) {
		*body_out = json_loadb(resp.body, resp.len, 0, NULL);
		assert(*body_out);
	}
	vg_http_resp_release(&resp);
	vg_http_req_release(&req);
}

static int known(const char *k, const char *const *names)
{
	for (; *names; names++)
		if (!strcmp(*names, k))
			return 1;
	return 0;
}

/* The rules a body the API accepted must satisfy (docs/alarms.md,
 * Silences), checked on the body as sent, not on what came back. */
static void accepted_body_valid(const char *body, size_t len)
{
	static const char *const fields[] = {"matchers", "starts_at", "ends_at",
					     "duration", "created_by", "comment",
					     "id", "state", "created_at", "project",
					     "created_with", NULL};
	static const char *const matchers[] = {"project", "resource", "host", "alarm",
					       "severity", "labels", NULL};
	json_t *in = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL), *m, *v, *lv;
	const char *k, *lk;

	assert(json_is_object(in));
	json_object_foreach(in, k, v)
		assert(known(k, fields));
	assert(vg_text_valid(json_string_value(json_object_get(in, "created_by")), 255));
	assert(json_string_value(json_object_get(in, "comment")));
	m = json_object_get(in, "matchers");
	assert(!m || json_is_object(m));
	json_object_foreach(m, k, v) {
		if (!known(k, matchers))
			fprintf(stderr, "accepted an unknown matcher '%s'\n", k);
		assert(known(k, matchers));
		if (strcmp(k, "labels")) {
			assert(vg_text_valid(json_string_value(v), 255));
			continue;
		}
		assert(json_object_size(v) <= VG_ALARM_MAX_META);
		json_object_foreach(v, lk, lv) {
			assert(vg_text_valid(lk, 64));
			assert(vg_text_valid(json_string_value(lv), 255));
		}
	}
	json_decref(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vg_http_req req;
	struct vg_http_resp resp;
	const char *auth;
	char uri[128], *body;
	json_t *out, *got;
	size_t len;
	int sel;

	if (!(body = fx_body(data, size, &len)))
		return 0;
	sel = data[0];
	auth = sel & 1 ? fx.auth_p1 : fx.auth_admin;

	assert(fx_request("POST", "/v1/silences", auth, body, len, &req, &resp) == 0);
	if (getenv("FUZZ_API_DEBUG"))
		fprintf(stderr, "POST %.*s -> %d %.*s\n", (int)len, body, resp.status,
			(int)resp.len, resp.body);
	check_reply(&resp);
	if (resp.status == 201) {
		const char *id, *project;

		accepted_body_valid(body, len);
		out = json_loadb(resp.body, resp.len, 0, NULL);
		id = json_string_value(json_object_get(out, "id"));
		project = json_string_value(json_object_get(out, "project"));
		assert(id && project);
		assert(!(sel & 1) || !strcmp(project, "p1"));
		snprintf(uri, sizeof(uri), "/v1/silences/%s", id);
		must("GET", uri, auth, 200, &got);
		assert(json_equal(json_object_get(got, "matchers"),
				  json_object_get(out, "matchers")));
		json_decref(got);
		if (sel & 2)
			must("GET", "/v1/silences?state=all", fx.auth_p1, 200, NULL);
		must("DELETE", uri, fx.auth_admin, 204, NULL);
		json_decref(out);
	}
	vg_http_resp_release(&resp);
	vg_http_req_release(&req);
	free(body);
	return 0;
}
