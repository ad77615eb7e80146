/*
 * api_query_fuzz.c — libFuzzer target for the API's request-target and
 * query-string parsing: vg_http_req_parse (percent-decoding, segments,
 * parameters, limits), route matching and parameter checks
 * (vg_http_dispatch with the real route table), the bearer token check,
 * and every GET handler's own parameter parsing (times, granularity,
 * aggregation, statistics, period, filters, metadata, limits, cursors,
 * graph sizes/titles/legends, months, formats, alarm filters) on a real
 * collector API (api_fixture.h). The pure parameter parsers are also
 * called directly on every decoded value, so each sees every string.
 *
 * Input: byte 0 picks the token (admin, project p1, none, garbage) and
 * HEAD instead of GET; the rest is the raw request-target.
 *
 * Invariants checked on every input: nothing crashes, leaks or reads out
 * of bounds; a parsed request always gets a reply with a status from 200
 * to 599 and never a 500 (bad input is the client's error); a JSON reply
 * is valid JSON; a p1 token's successful reply never contains p2's
 * resource id or name unless the request itself spelled them.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api_fixture.h"
#include "vigie/alarm.h"
#include "vigie/batch.h"
#include "vigie/bill.h"
#include "vigie/bill_invoice.h"
#include "vigie/clock.h"

/* Every pure parser of a query parameter, on one decoded value. */
static void parse_value(const char *v, const char *w)
{
	struct vg_api_stat st[VG_API_STATS_MAX];
	char err[256], out[4 * VG_API_GRAPH_TITLE_MAX + 8];
	int64_t a, b;
	uint32_t u;
	size_t n;
	int i, cf;
	const char *name;
	struct vg_bill_month m;

	if (vg_api_parse_limit(v, 100, 1000, &i) == 0)
		assert(i >= 1 && i <= 1000);
	if (vg_api_parse_granularity(v, &u) == 0)
		assert(u == 0 || u == 60 || u == 300 || u == 3600);
	if (vg_api_parse_aggregation(v, &cf, &name) == 0)
		assert(name);
	if (vg_api_parse_period(v, &u) == 0)
		assert(u >= 60 && u <= VG_API_STATS_MAX_PERIOD);
	if (vg_api_parse_statistics(v, st, VG_API_STATS_MAX, &n, err,
				    sizeof(err)) == 0)
		assert(n >= 1 && n <= VG_API_STATS_MAX);
	if (vg_api_parse_window(v, w, FX_NOW, &a, &b, err, sizeof(err)) == 0) {
		assert(a <= b);
		uint32_t g;
		(void)vg_api_pick_granularity(a, b, 0, VG_API_MAX_POINTS, &g, &n);
	}
	(void)vg_time_parse(v, FX_NOW, &a);
	for (int legend = 0; legend < 2; legend++)
		for (int strict = 0; strict < 2; strict++)
			if (vg_api_graph_text(v, legend, strict, out, sizeof(out)) == 0)
				assert(strlen(out) < sizeof(out));
	(void)vg_bill_month_parse(v, &m);
	(void)vg_bill_invoice_format_parse(v);
	(void)vg_alarm_state_parse(v);
	(void)vg_rtype_parse(v);
	(void)vg_cf_parse(v);
}

static int contains(const char *hay, size_t len, const char *needle)
{
	return hay && memmem(hay, len, needle, strlen(needle)) != NULL;
}

/* Whether the decoded request spells s anywhere. */
static int request_names(const struct vg_http_req *req, const char *s)
{
	for (size_t i = 0; i < req->nseg; i++)
		if (strstr(req->seg[i], s))
			return 1;
	for (size_t i = 0; i < req->nparams; i++)
		if (strstr(req->params[i].key, s) || strstr(req->params[i].value, s))
			return 1;
	return req->rest && strstr(req->rest, s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const auth[] = {fx.auth_admin, fx.auth_p1, NULL,
					   "Bearer vg_0000000000000000"};
	struct vg_http_req req;
	struct vg_http_resp resp;
	char *uri;
	size_t len;
	int sel;

	if (!(uri = fx_body(data, size, &len)))
		return 0;
	sel = data[0];
	if (fx_request(sel & 0x10 ? "HEAD" : "GET", uri, auth[sel & 3], NULL, 0,
		       &req, &resp)) {
		vg_http_req_release(&req);
		free(uri);
		return 0;
	}
	if (getenv("FUZZ_API_DEBUG")) /* see what an input gets */
		fprintf(stderr, "%s -> %d %.*s\n", uri, resp.status,
			(int)(resp.len < 300 ? resp.len : 300),
			resp.body ? resp.body : "");
	assert(resp.status >= 200 && resp.status <= 599);
	assert(resp.status != 500);
	if (resp.content_type && !strncmp(resp.content_type, "application/json", 16) &&
	    resp.body && resp.len) {
		json_error_t je;
		json_t *j = json_loadb(resp.body, resp.len, 0, &je);
		assert(j);
		json_decref(j);
	}
	if ((sel & 3) == 1 && resp.status < 300) {
		if (!request_names(&req, FX_SECRET_ID))
			assert(!contains(resp.body, resp.len, FX_SECRET_ID));
		if (!request_names(&req, FX_SECRET_NAME))
			assert(!contains(resp.body, resp.len, FX_SECRET_NAME));
	}
	for (size_t i = 0; i < req.nparams; i++)
		parse_value(req.params[i].value,
			    req.params[(i + 1) % req.nparams].value);
	vg_http_resp_release(&resp);
	vg_http_req_release(&req);
	free(uri);
	return 0;
}
