/*
 * expr_fuzz.c — libFuzzer target for the query languages: the
 * /v1/query expression parser (vg_expr_parse) and evaluator, and the
 * Prometheus remote read decoder (POST /api/v1/read), on the real API of
 * api_fixture.h (project p1: vm-a and its disk; p2: a secret instance).
 *
 * Input: byte 0 picks the token (bit 0: admin or p1) and the mode (bit 1:
 * an expression, or a protobuf ReadRequest); the rest is the expression
 * text, or the protobuf bytes (snappy-compressed here, as Prometheus
 * sends them).
 *
 * Invariants checked on every input: nothing crashes, leaks or reads out
 * of bounds; a parse error gives a message and a position inside the
 * text; a parsed expression is evaluated by GET /v1/query and answered
 * with a status from 200 to 599, never 500, as valid JSON; a remote read
 * is answered 200 or 4xx, never 500; a p1 token's successful answer never
 * holds p2's secret id or name unless the input spelled them.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>

#include "api_fixture.h"
#include "query/api/expr.h"

static int contains(const char *hay, size_t len, const char *needle)
{
	return hay && memmem(hay, len, needle, strlen(needle)) != NULL;
}

static void check_reply(const struct vg_http_resp *resp, int p1,
			const char *input, size_t input_len)
{
	assert(resp->status >= 200 && resp->status <= 599);
	assert(resp->status != 500);
	if (resp->content_type &&
	    !strncmp(resp->content_type, "application/json", 16) && resp->len) {
		json_t *j = json_loadb(resp->body, resp->len, 0, NULL);
		assert(j);
		json_decref(j);
	}
	if (p1 && resp->status < 300) {
		if (!contains(input, input_len, FX_SECRET_ID))
			assert(!contains(resp->body, resp->len, FX_SECRET_ID));
		if (!contains(input, input_len, FX_SECRET_NAME))
			assert(!contains(resp->body, resp->len, FX_SECRET_NAME));
	}
}

static void expression(const char *text, size_t len, const char *auth, int p1)
{
	struct vg_http_req req;
	struct vg_http_resp resp;
	struct vg_expr *e = NULL;
	char err[320], *uri, *o;
	int pos = -1, rc;

	rc = vg_expr_parse(text, &e, err, sizeof(err), &pos);
	if (rc) {
		assert(rc == -EINVAL || rc == -ENOMEM);
		if (rc == -EINVAL) {
			assert(err[0]);
			assert(pos >= 0 && (size_t)pos <= len);
		}
		vg_expr_free(e);
		return;
	}
	assert(e->root && e->nnodes <= VG_EXPR_MAX_NODES);
	vg_expr_free(e);
	/* evaluate it as the server would */
	uri = malloc(3 * len + 128);
	if (!uri)
		return;
	o = uri + sprintf(uri, "/v1/query?start=%lld&end=%lld&expr=",
			  (long long)(FX_T0 / 1000), (long long)(FX_NOW / 1000));
	for (size_t i = 0; i < len; i++)
		o += sprintf(o, "%%%02X", (unsigned char)text[i]);
	*o = '\0';
	if (fx_request("GET", uri, auth, NULL, 0, &req, &resp) == 0) {
		if (getenv("FUZZ_API_DEBUG"))
			fprintf(stderr, "%s -> %d %.*s\n", text, resp.status,
				(int)(resp.len < 300 ? resp.len : 300),
				resp.body ? resp.body : "");
		check_reply(&resp, p1, text, len);
	}
	vg_http_resp_release(&resp);
	vg_http_req_release(&req);
	free(uri);
}

static void remote_read(const uint8_t *raw, size_t len, const char *auth,
			int p1)
{
	struct vg_http_req req;
	struct vg_http_resp resp;
	size_t clen = snappy_max_compressed_length(len);
	char *comp = malloc(clen + 1);

	if (!comp)
		return;
	if (snappy_compress((const char *)raw, len, comp, &clen) == SNAPPY_OK &&
	    fx_request("POST", "/api/v1/read", auth, comp, clen, &req,
		       &resp) == 0) {
		assert(resp.status == 200 || (resp.status >= 400 &&
					      resp.status < 500));
		check_reply(&resp, p1, (const char *)raw, len);
	}
	vg_http_resp_release(&resp);
	vg_http_req_release(&req);
	free(comp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *auth;
	char *text;
	int p1;

	if (size < 1 || size > VG_EXPR_MAX_LEN + 16)
		return 0;
	p1 = data[0] & 1;
	auth = p1 ? fx.auth_p1 : fx.auth_admin;
	if (data[0] & 2) {
		remote_read(data + 1, size - 1, auth, p1);
		return 0;
	}
	text = malloc(size);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	expression(text, strlen(text), auth, p1);
	free(text);
	return 0;
}
