/*
 * api_alarms.c — the /v1/alarms endpoints: CRUD, enable/disable, history
 * and the Server-Sent Events stream (query/api/api_alarms.h).
 *
 * Design: thin handlers. Parameters are checked here with a precise
 * message each; everything else is the engine's (vigie/alarm_engine.h),
 * which validates definitions field by field and enforces the project
 * scope. The SSE stream is a streaming reply of the HTTP layer fed by a
 * subscription to the alarm hub (vigie/alarm_stream.h): the hub wakes the
 * parked connection when a notification arrives.
 *
 * Invariants: a handler never holds the engine lock itself; every reply
 * is JSON except the event stream; the engine pointer is set before the
 * server starts and cleared after it stopped, so handlers read it without
 * a lock.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "query/api/api_alarms.h"
#include "query/api/api_handlers.h"
#include "query/api/api_tokens.h"
#include "query/api/http.h"
#include "vigie/alarm_silence.h"
#include "vigie/clock.h"
#include "vigie/name.h"
#include "vigie/token.h"

const char *const vg_api_alarms_list_params[] = {
	"state", "enabled", "type", "name", "project", "limit", "cursor", NULL};
const char *const vg_api_alarms_history_params[] = {
	"start", "end", "type", "limit", "cursor", NULL};
const char *const vg_api_alarms_stream_params[] = {"last_event_id", NULL};

/* The alarm subsystem the API was started with (req->ctx is the API). */
static struct vg_alarm_engine *engine(const struct vg_http_req *req)
{
	return vg_api_alarm_engine(req->ctx);
}

static struct vg_alarm_hub *hub_of(const struct vg_http_req *req)
{
	return vg_api_alarm_hub(req->ctx);
}

int vg_api_alarms_stats(struct vg_api *a, struct vg_api_alarm_stats *out)
{
	struct vg_alarm_engine *e = vg_api_alarm_engine(a);
	struct vg_alarm_hub *hub = vg_api_alarm_hub(a);
	struct vg_alarm_pub *pub = vg_api_alarm_pub(a);

	if (!e)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	vg_alarm_engine_get_stats(e, &out->engine);
	vg_alarm_outbox_get_stats(vg_alarm_engine_outbox(e), &out->outbox);
	if (hub) {
		vg_alarm_hub_get_stats(hub, &out->sse);
		out->have_sse = 1;
	}
	if (pub) {
		vg_alarm_pub_get_stats(pub, &out->pub);
		out->have_pub = 1;
	}
	return 0;
}

static int no_engine(struct vg_http_resp *resp)
{
	return vg_http_reply_error(resp, 503, "alarms are not enabled on this "
					      "collector");
}

/* 400 with the field list; takes errors. */
static int reply_fields(struct vg_http_resp *resp, int status,
			const char *what, json_t *errors)
{
	size_t n = json_array_size(errors);
	char msg[256 + 4];
	json_t *doc;

	if (n == 1) {
		const char *fl = json_string_value(
			json_object_get(json_array_get(errors, 0), "field"));
		snprintf(msg, sizeof(msg), "%s: %s%s%s", what, fl ? fl : "",
			 fl && *fl ? ": " : "",
			 json_string_value(json_object_get(json_array_get(errors, 0), "message")));
		/* at most 255 bytes, cut between characters (json_pack
		 * refuses a string cut inside one; the 4 bytes more show
		 * whether a character goes on past the cut) */
		msg[vg_utf8_prefix(msg, sizeof(msg) - 5)] = '\0';
	} else
		snprintf(msg, sizeof(msg), "%s (%zu problems)", what, n);
	doc = json_pack("{s:{s:i,s:s,s:o}}", "error", "code", status, "message",
			msg, "fields", errors ? errors : json_array());
	return vg_http_reply_json(resp, status, doc);
}

/* Candidates listed in an ambiguous name's answer, at most, and ids of
 * them in its message. */
#define AMBIGUOUS_LISTED 100
#define AMBIGUOUS_SHOWN 8

/* 409 for a bare name that alarms of several projects share (an
 * administrator's request): the message names them as the CLI does for
 * its own ambiguous names, and "candidates" lists {"id", "project"} so a
 * client can pick the id. Answering 404 would say no such alarm exists. */
static int reply_ambiguous(const struct vg_http_req *req, struct vg_http_resp *resp,
			   const char *ref)
{
	struct vg_alarm_list_filter f = {.state = -1, .enabled = -1, .kind = -1, .name = ref, .limit = AMBIGUOUS_LISTED};
	json_t *list = NULL, *cands = json_array(), *doc;
	char msg[1024];
	size_t i, n, o;

	if (vg_alarm_engine_list(engine(req), req->scope_project, &f, &list)) {
		json_decref(cands);
		return vg_http_reply_error(resp, 409, "alarm name '%.200s' names several "
						      "projects' alarms; give the id",
					   ref);
	}
	n = json_array_size(json_object_get(list, "alarms"));
	o = (size_t)snprintf(msg, sizeof(msg), "alarm name '%.200s' names %zu%s alarms: ",
			     ref, n, json_is_null(json_object_get(list, "next")) ? "" : "+");
	for (i = 0; i < n; i++) {
		json_t *x = json_array_get(json_object_get(list, "alarms"), i);
		const char *id = json_string_value(json_object_get(x, "id"));
		const char *pr = json_string_value(json_object_get(x, "project"));
		json_array_append_new(cands, json_pack("{s:s?,s:s?}", "id", id, "project", pr));
		if (i < AMBIGUOUS_SHOWN && o < sizeof(msg))
			o += (size_t)snprintf(msg + o, sizeof(msg) - o, "%s%s (project %.200s)",
					      i ? ", " : "", id ? id : "?", pr ? pr : "?");
	}
	if (n > AMBIGUOUS_SHOWN && o < sizeof(msg))
		o += (size_t)snprintf(msg + o, sizeof(msg) - o, ", ...");
	if (o < sizeof(msg))
		snprintf(msg + o, sizeof(msg) - o, "; give the id");
	json_decref(list);
	doc = json_pack("{s:{s:i,s:s,s:o}}", "error", "code", 409, "message", msg,
			"candidates", cands);
	return vg_http_reply_json(resp, 409, doc);
}

static int reply_rc(const struct vg_http_req *req, struct vg_http_resp *resp, int rc,
		    const char *ref, json_t *errors)
{
	switch (rc) {
	case -ENOENT:
		json_decref(errors);
		return vg_http_reply_error(resp, 404, "no alarm '%.200s'", ref);
	case -ENOTUNIQ:
		json_decref(errors);
		return reply_ambiguous(req, resp, ref);
	case -EINVAL:
		return reply_fields(resp, 400, "invalid alarm", errors);
	case -EEXIST:
		return reply_fields(resp, 409, "conflict", errors);
	case -EBUSY:
		return reply_fields(resp, 409, "in use", errors);
	case -ENOSPC:
	case -EDQUOT:
		return reply_fields(resp, 403, "limit reached", errors);
	case -EAGAIN:
		json_decref(errors);
		vg_http_reply_error(resp, 503, "alarm database busy, retry shortly");
		vg_http_resp_header(resp, "Retry-After", "1");
		return 0;
	default:
		json_decref(errors);
		return vg_http_reply_error(resp, 500, "alarm operation failed: %s",
					   strerror(rc < 0 ? -rc : rc));
	}
}

static int read_body(struct vg_http_req *req, struct vg_http_resp *resp,
		     json_t **out)
{
	json_error_t err;

	*out = NULL;
	if (!req->body || !req->body_len) {
		vg_http_reply_error(resp, 400, "a JSON object is required in the "
					       "request body");
		return -EINVAL;
	}
	*out = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &err);
	if (!*out) {
		vg_http_reply_error(resp, 400, "request body is not valid JSON "
					       "(line %d, column %d): %s",
				    err.line,
				    err.column, err.text);
		return -EINVAL;
	}
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		vg_http_reply_error(resp, 400, "the request body must be a JSON "
					       "object");
		return -EINVAL;
	}
	return 0;
}

/* The JSON object in the body of a request to the alarm engine. 0 with
 * *out, or -1 with the reply in resp (503 when alarms are off, 400 for a
 * missing or bad body). */
static int engine_body(struct vg_http_req *req, struct vg_http_resp *resp,
		       json_t **out)
{
	*out = NULL;
	if (!engine(req)) {
		no_engine(resp);
		return -1;
	}
	return read_body(req, resp, out);
}

/* "limit", when given: an integer from 1 to 1000 into *limit. 0, or
 * -EINVAL with a 400 in resp. */
static int param_limit(struct vg_http_req *req, struct vg_http_resp *resp,
		       int *limit)
{
	const char *v = vg_http_param(req, "limit");
	char *end;
	long l;

	if (!v)
		return 0;
	/* digits only: strtol alone takes " 5", "+5" and "-0" */
	errno = 0;
	l = strtol(v, &end, 10);
	if (*end || !isdigit((unsigned char)v[0]) || errno || l < 1 || l > 1000) {
		vg_http_reply_error(resp, 400, "limit: must be an "
					       "integer from 1 to 1000");
		return -EINVAL;
	}
	*limit = (int)l;
	return 0;
}

/* ---- list / create ------------------------------------------------------------- */

int vg_api_h_alarms_list(struct vg_http_req *req, struct vg_http_resp *resp)
{
	struct vg_alarm_list_filter f = {.state = -1, .enabled = -1, .kind = -1};
	const char *v;
	json_t *out;
	int rc;

	if (!engine(req))
		return no_engine(resp);
	if ((v = vg_http_param(req, "state")) &&
	    (f.state = vg_alarm_state_parse(v)) < 0)
		return vg_http_reply_error(resp, 400, "state: must be alarm, ok or "
						      "insufficient_data");
	if ((v = vg_http_param(req, "enabled"))) {
		if (!strcmp(v, "true"))
			f.enabled = 1;
		else if (!strcmp(v, "false"))
			f.enabled = 0;
		else
			return vg_http_reply_error(resp, 400, "enabled: must be "
							      "true or false");
	}
	if ((v = vg_http_param(req, "type"))) {
		if (!strcmp(v, "threshold"))
			f.kind = VG_ALARM_THRESHOLD;
		else if (!strcmp(v, "composite"))
			f.kind = VG_ALARM_COMPOSITE;
		else if (!strcmp(v, "event"))
			f.kind = VG_ALARM_EVENT;
		else
			return vg_http_reply_error(resp, 400, "type: must be "
							      "threshold, composite or event");
	}
	f.name = vg_http_param(req, "name");
	f.after = vg_http_param(req, "cursor");
	f.project = vg_http_param(req, "project");
	f.limit = 100;
	if (param_limit(req, resp, &f.limit))
		return 0;
	/* another project, to a project token, is a project without alarms
	 * (docs/api.md, Authentication): a 403 said it was someone else's,
	 * as /v1/resources?project= does not */
	if (f.project && req->scope_project && strcmp(f.project, req->scope_project))
		return vg_http_reply_json(resp, 200,
					  json_pack("{s:[],s:n}", "alarms", "next"));
	rc = vg_alarm_engine_list(engine(req), req->scope_project, &f, &out);
	if (rc)
		return reply_rc(req, resp, rc, "", NULL);
	return vg_http_reply_json(resp, 200, out);
}

/* An alarm definition's body (engine_body), refused when its name is
 * also a path under /v1/alarms (the stream, the groups): GET
 * /v1/alarms/stream would answer the stream, never the alarm, while PUT
 * and DELETE reached the alarm. Refused for new names only; an alarm
 * already named so keeps its id. 0 with the body in *out (the caller's),
 * or nonzero with the answer in resp and *out NULL. */
static int alarm_body(struct vg_http_req *req, struct vg_http_resp *resp, json_t **out)
{
	const char *n;
	json_t *errors;

	if (engine_body(req, resp, out))
		return -1;
	n = json_string_value(json_object_get(*out, "name"));
	if (!n || (strcmp(n, "stream") && strcmp(n, "groups")))
		return 0;
	errors = json_pack("[{s:s,s:s}]", "field", "name", "message",
			   "is a path of the API (/v1/alarms/stream, /v1/alarms/groups): "
			   "choose another name");
	reply_fields(resp, 400, "invalid alarm", errors);
	json_decref(*out);
	*out = NULL;
	return 1;
}

int vg_api_h_alarms_create(struct vg_http_req *req, struct vg_http_resp *resp)
{
	json_t *body, *out = NULL, *errors = NULL;
	int rc;

	if (alarm_body(req, resp, &body))
		return 0;
	rc = vg_alarm_engine_create(engine(req), body, req->scope_project, &out, &errors);
	json_decref(body);
	if (rc)
		return reply_rc(req, resp, rc, "", errors);
	vg_http_resp_header(resp, "Location", "/v1/alarms/%s",
			    json_string_value(json_object_get(out, "id")));
	rc = vg_http_reply_json(resp, 201, out);
	return rc;
}

/* ---- one alarm ------------------------------------------------------------------- */

int vg_api_h_alarm_get(struct vg_http_req *req, struct vg_http_resp *resp)
{
	json_t *out = NULL;
	int rc;

	if (!engine(req))
		return no_engine(resp);
	rc = vg_alarm_engine_get(engine(req), req->vars[0], req->scope_project, &out);
	if (rc)
		return reply_rc(req, resp, rc, req->vars[0], NULL);
	return vg_http_reply_json(resp, 200, out);
}

int vg_api_h_alarm_update(struct vg_http_req *req, struct vg_http_resp *resp)
{
	json_t *body, *out = NULL, *errors = NULL;
	int rc;

	if (alarm_body(req, resp, &body))
		return 0;
	rc = vg_alarm_engine_update(engine(req), req->vars[0], body,
				    req->method == VG_HTTP_PATCH,
				    req->scope_project, &out, &errors);
	json_decref(body);
	if (rc)
		return reply_rc(req, resp, rc, req->vars[0], errors);
	return vg_http_reply_json(resp, 200, out);
}

int vg_api_h_alarm_delete(struct vg_http_req *req, struct vg_http_resp *resp)
{
	json_t *errors = NULL;
	int rc;

	if (!engine(req))
		return no_engine(resp);
	rc = vg_alarm_engine_delete(engine(req), req->vars[0], req->scope_project,
				    &errors);
	if (rc)
		return reply_rc(req, resp, rc, req->vars[0], errors);
	return vg_http_reply_raw(resp, 204, "application/json", NULL, 0);
}

static int set_enabled(struct vg_http_req *req, struct vg_http_resp *resp,
		       int enabled)
{
	json_t *out = NULL;
	int rc;

	if (!engine(req))
		return no_engine(resp);
	rc = vg_alarm_engine_set_enabled(engine(req), req->vars[0],
					 req->scope_project, enabled, &out);
	if (rc)
		return reply_rc(req, resp, rc, req->vars[0], NULL);
	return vg_http_reply_json(resp, 200, out);
}

int vg_api_h_alarm_enable(struct vg_http_req *req, struct vg_http_resp *resp)
{
	return set_enabled(req, resp, 1);
}

int vg_api_h_alarm_disable(struct vg_http_req *req, struct vg_http_resp *resp)
{
	return set_enabled(req, resp, 0);
}

/* POST /v1/alarms/{id}/test [{"state": "ok"}]: a test notification now.
 * Over the project's notification rate it is a 429 naming the limit,
 * with Retry-After: the request would notify at once, and nothing else
 * tells the caller that it did not. */
int vg_api_h_alarm_test(struct vg_http_req *req, struct vg_http_resp *resp)
{
	json_t *body = NULL, *out = NULL;
	const char *state = NULL;
	int64_t wait_ms = 0;
	char ra[24];
	int rc;

	if (!engine(req))
		return no_engine(resp);
	if (req->body_len && read_body(req, resp, &body))
		return 0;
	if (body) {
		json_t *s = json_object_get(body, "state");
		if (s && !json_is_string(s)) {
			json_decref(body);
			return vg_http_reply_error(resp, 400, "state: must be alarm, ok or "
							      "insufficient_data");
		}
		state = json_string_value(s);
	}
	rc = vg_alarm_engine_test_notification(engine(req), req->vars[0], req->scope_project,
					       state, &out, &wait_ms);
	json_decref(body);
	switch (rc) {
	case 0:
		return vg_http_reply_json(resp, 202, out);
	case -EINVAL:
		return vg_http_reply_error(resp, 400, "state: must be alarm, ok or "
						      "insufficient_data");
	case -ENOMSG:
		return vg_http_reply_error(resp, 400, "the alarm has no action for "
						      "that state: nothing to test");
	case -EDQUOT:
		snprintf(ra, sizeof(ra), "%lld", (long long)((wait_ms + 999) / 1000));
		vg_http_resp_header(resp, "Retry-After", "%s", ra);
		return vg_http_reply_error(resp, 429,
					   "rate limit: the project has sent [alarms] "
					   "max_notifications_per_minute notifications in the last "
					   "minute; retry in %s s",
					   ra);
	default:
		return reply_rc(req, resp, rc, req->vars[0], NULL);
	}
}

int vg_api_h_alarm_history(struct vg_http_req *req, struct vg_http_resp *resp)
{
	struct vg_alarm_history_query q = {0};
	const char *v;
	json_t *rows = NULL, *doc;
	int64_t next = 0;
	int rc;

	if (!engine(req))
		return no_engine(resp);
	q.start_ms = INT64_MIN;
	q.end_ms = INT64_MAX;
	q.limit = 100;
	if ((v = vg_http_param(req, "start")) &&
	    vg_time_parse(v, req->now_ms, &q.start_ms))
		return vg_http_reply_error(resp, 400, "start: not a time (ISO 8601 "
						      "such as 2026-11-26T06:49:14Z, epoch "
						      "seconds, or relative such as -3h)");
	if ((v = vg_http_param(req, "end")) && vg_time_parse(v, req->now_ms, &q.end_ms))
		return vg_http_reply_error(resp, 400, "end: not a time (ISO 8601 "
						      "such as 2026-11-26T06:49:14Z, epoch "
						      "seconds, or relative such as -3h)");
	if (q.start_ms > q.end_ms)
		return vg_http_reply_error(resp, 400, "start must not be after end");
	if ((v = vg_http_param(req, "type"))) {
		static const char *const types[] = {
			"creation", "update", "deletion", "enabled", "disabled",
			"transition", "repeat", "notification", "resource_joined",
			"resource_left", "cooldown", "test", NULL};
		size_t i;
		for (i = 0; types[i] && strcmp(types[i], v); i++)
			;
		if (!types[i])
			return vg_http_reply_error(resp, 400, "type: must be one of "
							      "creation, update, enabled, "
							      "disabled, transition, repeat, "
							      "notification, resource_joined, "
							      "resource_left, cooldown, test");
		q.type = v;
	}
	if (param_limit(req, resp, &q.limit))
		return 0;
	if ((v = vg_http_param(req, "cursor"))) {
		char *end;
		long long c;
		/* digits only, within 64 bits: strtoll saturates past them */
		errno = 0;
		c = strtoll(v, &end, 10);
		if (*end || !isdigit((unsigned char)v[0]) || errno || c < 0)
			return vg_http_reply_error(resp, 400, "cursor: use the "
							      "\"next\" value of the previous "
							      "page");
		q.after_seq = c;
	}
	rc = vg_alarm_engine_history(engine(req), req->vars[0], req->scope_project,
				     &q, &rows, &next);
	if (rc)
		return reply_rc(req, resp, rc, req->vars[0], NULL);
	doc = json_object();
	json_object_set_new(doc, "history", rows);
	if (next) {
		char c[32];
		snprintf(c, sizeof(c), "%lld", (long long)next);
		json_object_set_new(doc, "next", json_string(c));
	} else
		json_object_set_new(doc, "next", json_null());
	return vg_http_reply_json(resp, 200, doc);
}

/* ---- the event stream ----------------------------------------------------------------- */

#ifdef VG_HTTP_HAVE_STREAM

/* A stream outlives the request that opened it: its token is kept and
 * checked again before each read, so revoking it (DELETE /v1/tokens/{id},
 * or `token revoke` on the data directory) ends the stream at its next
 * event instead of feeding it the project's notifications for ever. */
struct sse {
	struct vg_alarm_sub *sub;
	int hello;
	struct vg_token_store *ts; /* NULL: the API has no tokens to check */
	char token[VG_TOKEN_LEN + 1];
};

static ssize_t sse_read(void *ctx, char *buf, size_t max)
{
	struct sse *s = ctx;
	static const char hello[] = ": vigie alarm notifications\nretry: 3000\n\n";

	if (!s->hello) {
		s->hello = 1;
		if (max >= sizeof(hello) - 1) {
			memcpy(buf, hello, sizeof(hello) - 1);
			return (ssize_t)(sizeof(hello) - 1);
		}
	}
	if (!s->sub)
		return -1;
	if (s->ts) {
		struct vg_token_scope scope;
		if (vg_token_verify(s->ts, s->token, &scope) == -EACCES)
			return -1; /* revoked: the stream ends */
	}
	return vg_alarm_hub_read(s->sub, buf, max, vg_now_ms());
}

static void sse_release(void *ctx)
{
	struct sse *s = ctx;

	vg_alarm_hub_unsubscribe(s->sub);
	OPENSSL_cleanse(s->token, sizeof(s->token));
	free(s);
}

static void sse_wake(void *arg)
{
	vg_http_stream_wake(arg);
}

int vg_api_h_alarms_stream(struct vg_http_req *req, struct vg_http_resp *resp)
{
	struct vg_http_stream *stream = NULL;
	const char *v = vg_http_param(req, "last_event_id");
	unsigned long long last = 0;
	struct sse *s;
	int rc;

	if (!engine(req) || !hub_of(req))
		return no_engine(resp);
	if (!v)
		v = req->last_event_id;
	if (v && *v) {
		char *end;
		/* digits only: strtoull alone takes "-1" (as 2^64 - 1), blanks
		 * and a sign, and saturates past 2^64 */
		errno = 0;
		last = strtoull(v, &end, 10);
		if (*end || !isdigit((unsigned char)v[0]) || errno == ERANGE)
			return vg_http_reply_error(resp, 400, "last_event_id: must "
							      "be the id of an event");
	}
	if (!(s = calloc(1, sizeof(*s))))
		return vg_http_reply_error(resp, 503, "out of memory");
	/* the request was authorised with this token (else no check: an API
	 * without tokens) */
	if (vg_api_tokens(req->ctx) &&
	    vg_api_bearer_token(req->authorization, s->token) == 0)
		s->ts = vg_api_tokens(req->ctx);
	/* vg_http_reply_stream owns s from here, even when it fails (it
	 * runs sse_release then): nothing to free on this path */
	rc = vg_http_reply_stream(resp, 200, "text/event-stream", sse_read,
				  sse_release, s, &stream);
	if (rc)
		return vg_http_reply_error(resp, 503, "out of memory");
	/* the stream handle stays valid until sse_release runs */
	rc = vg_alarm_hub_subscribe(hub_of(req), req->scope_project, last, sse_wake,
				    stream, vg_now_ms(), &s->sub);
	if (rc == -EUSERS) {
		/* replacing the reply releases the stream and s (as below) */
		rc = vg_http_reply_error(resp, 429, "this project already follows %d "
						    "alarm streams; close one first",
					 VG_ALARM_HUB_PER_PROJECT);
		vg_http_resp_header(resp, "Retry-After", "60");
		return rc;
	}
	if (rc)
		/* replacing the reply releases the stream, and s with it
		 * (sse_release); a stream without a subscription answered 200,
		 * its greeting, and ended at once, and EventSource reconnects
		 * every 3 s to the same */
		return vg_http_reply_error(resp, 503, "%s",
					   rc == -ESHUTDOWN ? "the collector is stopping"
							    : "out of memory");
	vg_http_resp_header(resp, "X-Accel-Buffering", "no");
	return 0;
}

#else

int vg_api_h_alarms_stream(struct vg_http_req *req, struct vg_http_resp *resp)
{
	(void)req;
	return vg_http_reply_error(resp, 501, "this build's HTTP layer cannot "
					      "stream (Server-Sent Events); subscribe to "
					      "the PUB socket instead");
}

#endif

/* ---- notification groups ------------------------------------------------------------ */

int vg_api_h_alarm_groups(struct vg_http_req *req, struct vg_http_resp *resp)
{
	json_t *out = NULL;

	if (!engine(req))
		return no_engine(resp);
	if (vg_alarm_engine_groups(engine(req), req->scope_project, &out))
		return vg_http_reply_error(resp, 500, "cannot list notification groups");
	return vg_http_reply_json(resp, 200, out);
}

/* ---- silences ----------------------------------------------------------------------- */

const char *const vg_api_silences_list_params[] = {"state", NULL};

int vg_api_h_silences_list(struct vg_http_req *req, struct vg_http_resp *resp)
{
	const char *st = vg_http_param(req, "state");
	json_t *out = NULL;
	int rc;

	if (!engine(req))
		return no_engine(resp);
	if (st && strcmp(st, "active") && strcmp(st, "pending") &&
	    strcmp(st, "expired") && strcmp(st, "all"))
		return vg_http_reply_error(resp, 400, "state: must be active, "
						      "pending, expired or all");
	rc = vg_alarm_engine_silences_list(engine(req), req->scope_project, st,
					   req->now_ms, &out);
	if (rc)
		return vg_http_reply_error(resp, 500, "cannot list silences");
	return vg_http_reply_json(resp, 200, out);
}

int vg_api_h_silences_create(struct vg_http_req *req, struct vg_http_resp *resp)
{
	json_t *body, *out = NULL, *errors = NULL;
	int rc;

	if (engine_body(req, resp, &body))
		return 0;
	rc = vg_alarm_silences_create(vg_alarm_engine_silences(engine(req)), body,
				      req->scope_project, req->now_ms, &out, &errors);
	json_decref(body);
	switch (rc) {
	case 0:
		break;
	case -EINVAL:
		return reply_fields(resp, 400, "invalid silence", errors);
	case -EDQUOT:
	case -ENOSPC:
		return reply_fields(resp, 403, "limit reached", errors);
	default:
		json_decref(errors);
		return vg_http_reply_error(resp, 500, "cannot store the silence");
	}
	vg_http_resp_header(resp, "Location", "/v1/silences/%s",
			    json_string_value(json_object_get(out, "id")));
	return vg_http_reply_json(resp, 201, out);
}

int vg_api_h_silence_get(struct vg_http_req *req, struct vg_http_resp *resp)
{
	json_t *out = NULL;

	if (!engine(req))
		return no_engine(resp);
	if (vg_alarm_engine_silence_get(engine(req), req->vars[0], req->scope_project,
					req->now_ms, &out))
		return vg_http_reply_error(resp, 404, "no silence '%.200s'", req->vars[0]);
	return vg_http_reply_json(resp, 200, out);
}

int vg_api_h_silence_expire(struct vg_http_req *req, struct vg_http_resp *resp)
{
	int rc;

	if (!engine(req))
		return no_engine(resp);
	rc = vg_alarm_engine_silence_expire(engine(req), req->vars[0], req->scope_project,
					    req->now_ms);
	if (rc == -ENOENT)
		return vg_http_reply_error(resp, 404, "no silence '%.200s'", req->vars[0]);
	if (rc == -EPERM)
		return vg_http_reply_error(resp, 403, "silence '%.200s' is global: only "
						      "an administrator may expire it",
					   req->vars[0]);
	if (rc)
		return vg_http_reply_error(resp, 500, "cannot expire the silence");
	return vg_http_reply_raw(resp, 204, "application/json", NULL, 0);
}
