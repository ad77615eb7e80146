/*
 * api_tokens.c — tenants: the server's authorisation hook (bearer tokens)
 * and the token endpoints GET|POST /v1/tokens, GET|DELETE /v1/tokens/{id}.
 *
 * Design: the hook runs before every handler of a non-public route (the
 * HTTP layer skips it for VG_ROUTE_PUBLIC, i.e. /v1/health). It reads
 * "Authorization: Bearer <token>", checks it with vg_token_verify and
 * either answers 401 (with WWW-Authenticate, RFC 6750) or lets the request
 * through with req->scope_project set for a project token (NULL for an
 * admin token). Handlers enforce the scope: another project's data is a
 * 404, exactly as if it did not exist. The token endpoints themselves are
 * for admin tokens only (403 for a project token: managing tokens is not
 * project data, so saying so leaks nothing).
 *
 * Invariants: no request reaches a non-public handler without a valid,
 * unrevoked token; a missing, malformed, unknown and revoked token all get
 * the same 401 body; the plain token appears only in the answer to the POST
 * that created it, never in logs.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "query/api/api_handlers.h"
#include "vigie/log.h"
#include "vigie/name.h"
#include "vigie/token.h"

static uint64_t g_store_errors;

static int unauthorized(struct vg_http_resp *resp, const char *error,
			const char *msg)
{
	vg_http_reply_error(resp, 401, "%s", msg);
	if (error)
		vg_http_resp_header(resp, "WWW-Authenticate",
				    "Bearer realm=\"vigie\", error=\"%s\"", error);
	else
		vg_http_resp_header(resp, "WWW-Authenticate",
				    "Bearer realm=\"vigie\"");
	return 1;
}

/* The credentials of an Authorization header H of the Bearer scheme, its
 * blanks around them cut: *t and its length *n; -EINVAL for another
 * scheme. */
static int bearer_credentials(const char *h, const char **t, size_t *n)
{
	const char *p;
	size_t len;

	if (strncasecmp(h, "Bearer", 6) || (h[6] != ' ' && h[6] != '\t'))
		return -EINVAL;
	for (p = h + 6; *p == ' ' || *p == '\t'; p++)
		;
	len = strlen(p);
	while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	*t = p;
	*n = len;
	return 0;
}

int vg_api_bearer_token(const char *h, char *out)
{
	const char *t;
	size_t n;

	if (!h || bearer_credentials(h, &t, &n) || n != VG_TOKEN_LEN)
		return -EINVAL;
	memcpy(out, t, n);
	out[n] = '\0';
	return 0;
}

/* The bearer token of req checked into *scope: 0; -EINVAL (no header,
 * another scheme, a malformed token: *why says which), -EACCES (unknown or
 * revoked), or the token store's error. */
static int bearer_scope(void *ctx, const struct vg_http_req *req,
			struct vg_token_scope *scope, const char **why)
{
	struct vg_token_store *ts = vg_api_tokens(ctx);
	const char *h = req->authorization, *t;
	char token[VG_TOKEN_LEN + 1];
	size_t n;
	int rc;

	*why = NULL;
	if (!h || !*h) {
		*why = "missing bearer token (send 'Authorization: Bearer TOKEN')";
		return -EINVAL;
	}
	if (bearer_credentials(h, &t, &n)) {
		*why = "unsupported authorization scheme (use 'Authorization: Bearer TOKEN')";
		return -EINVAL;
	}
	if (n != VG_TOKEN_LEN)
		return -EACCES;
	memcpy(token, t, n);
	token[n] = '\0';
	rc = vg_token_verify(ts, token, scope);
	OPENSSL_cleanse(token, sizeof(token));
	return rc;
}

int vg_api_authorize(void *ctx, struct vg_http_req *req,
		     struct vg_http_resp *resp)
{
	struct vg_token_scope scope;
	const char *why;
	int rc = bearer_scope(ctx, req, &scope, &why);

	if (rc == -EINVAL)
		return unauthorized(resp,
				    req->authorization && *req->authorization
					    ? "invalid_request"
					    : NULL,
				    why);
	if (rc == -EACCES)
		return unauthorized(resp, "invalid_token",
				    "invalid or revoked token");
	if (rc) {
		vg_log_limited(VG_LOG_WARN, &g_store_errors,
			       "api: cannot read the tokens: %s", strerror(-rc));
		vg_http_reply_error(resp, 503,
				    "cannot check the token now, retry shortly");
		vg_http_resp_header(resp, "Retry-After", "1");
		return 1;
	}
	if (!scope.admin) {
		snprintf(req->scope_buf, sizeof(req->scope_buf), "%s",
			 scope.project);
		req->scope_project = req->scope_buf;
	} else {
		req->scope_project = NULL;
	}
	return 0;
}

int vg_api_request_is_admin(void *ctx, const struct vg_http_req *req)
{
	struct vg_token_scope scope;
	const char *why;

	return req->authorization && *req->authorization &&
	       !bearer_scope(ctx, req, &scope, &why) && scope.admin;
}

/* 403 unless the request carries an admin token. */
static int admin_only(struct vg_http_req *req, struct vg_http_resp *resp)
{
	if (!req->scope_project)
		return 0;
	vg_http_reply_error(resp, 403, "managing tokens needs an admin token");
	return -1;
}

/* ---- GET /v1/tokens ------------------------------------------------------ */

int vg_api_h_tokens_list(struct vg_http_req *req, struct vg_http_resp *resp)
{
	json_t *arr;
	int rc;

	if (admin_only(req, resp))
		return 0;
	rc = vg_token_list(vg_api_tokens(req->ctx), &arr);
	if (rc)
		return vg_api_reply_errno(resp, rc, "tokens");
	return vg_http_reply_json(resp, 200, json_pack("{s:o}", "tokens", arr));
}

/* ---- POST /v1/tokens ----------------------------------------------------- */

int vg_api_token_request_parse(const char *body, size_t len, json_t **doc,
			       const char **project, const char **name,
			       char *err, size_t errlen)
{
	const char *key;
	json_t *j, *v;
	json_error_t je;
	int admin = 0;

	*doc = NULL;
	*project = *name = NULL;
	if (!body || !len) {
		snprintf(err, errlen, "missing JSON body, e.g. "
				      "{\"project\":\"p1\",\"name\":\"ci\"} or "
				      "{\"admin\":true}");
		return -EINVAL;
	}
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(j)) {
		snprintf(err, errlen, "body is not a JSON object (%s)",
			 j ? "wrong type" : je.text);
		json_decref(j);
		return -EINVAL;
	}
	json_object_foreach(j, key, v) {
		if (!strcmp(key, "admin")) {
			if (!json_is_boolean(v)) {
				snprintf(err, errlen, "'admin' must be true or "
						      "false");
				goto bad;
			}
			admin = json_is_true(v);
		} else if (!strcmp(key, "project")) {
			if (!json_is_string(v) ||
			    !(*project = json_string_value(v)) || !**project) {
				snprintf(err, errlen, "'project' must be a "
						      "non-empty string");
				goto bad;
			}
		} else if (!strcmp(key, "name")) {
			if (!json_is_string(v)) {
				snprintf(err, errlen, "'name' must be a string");
				goto bad;
			}
			*name = json_string_value(v);
		} else {
			snprintf(err, errlen, "unknown field '%.64s' (accepted: "
					      "admin, project, name)",
				 key);
			goto bad;
		}
	}
	if (admin == !!*project) {
		snprintf(err, errlen, "give exactly one of \"admin\":true or "
				      "\"project\":\"P\"");
		goto bad;
	}
	*doc = j;
	return 0;
bad:
	json_decref(j);
	*project = *name = NULL;
	return -EINVAL;
}

int vg_api_h_tokens_create(struct vg_http_req *req, struct vg_http_resp *resp)
{
	char token[VG_TOKEN_LEN + 1], err[256];
	const char *project, *name;
	json_t *body, *info = NULL;
	int rc;

	if (admin_only(req, resp))
		return 0;
	if (vg_api_token_request_parse(req->body, req->body_len, &body,
				       &project, &name, err, sizeof(err)))
		return vg_http_reply_error(resp, 400, "%s", err);
	rc = vg_token_create(vg_api_tokens(req->ctx), project, name, req->now_ms,
			     token, &info);
	if (rc == -EINVAL) {
		int bad_project = project && !vg_token_project_ok(project);
		if (project && !strcmp(project, "*")) {
			json_decref(body);
			return vg_http_reply_error(resp, 400,
						   "bad project '*': to silences and "
						   "alarm selectors it is every "
						   "project (an admin token sees "
						   "them all)");
		}
		if (bad_project && vg_name_blank_end(project)) {
			json_decref(body);
			return vg_http_reply_error(resp, 400,
						   "bad project: it begins or ends with "
						   "white space (\" acme\" or \"acme\" + "
						   "U+00A0 would read as \"acme\" but be "
						   "another project)");
		}
		json_decref(body);
		return vg_http_reply_error(resp, 400,
					   "bad %s (1..%d bytes of UTF-8, no "
					   "control characters)",
					   bad_project ? "project" : "name",
					   bad_project ? VG_TOKEN_PROJECT_MAX
						       : VG_TOKEN_NAME_MAX);
	}
	json_decref(body);
	if (rc)
		return vg_api_reply_errno(resp, rc, "tokens");
	if (!info)
		info = json_object();
	json_object_set_new(info, "token", json_string(token));
	OPENSSL_cleanse(token, sizeof(token));
	vg_http_resp_header(resp, "Location", "/v1/tokens/%s",
			    json_string_value(json_object_get(info, "id")));
	vg_info("api: created %s token %s", project ? "project" : "admin",
		json_string_value(json_object_get(info, "id")));
	return vg_http_reply_json(resp, 201, info);
}

/* ---- GET /v1/tokens/{id} ------------------------------------------------- */

int vg_api_h_token_get(struct vg_http_req *req, struct vg_http_resp *resp)
{
	json_t *arr = NULL, *t;
	size_t i;
	int rc;

	if (admin_only(req, resp))
		return 0;
	rc = vg_token_list(vg_api_tokens(req->ctx), &arr);
	if (rc)
		return vg_api_reply_errno(resp, rc, "tokens");
	json_array_foreach(arr, i, t) {
		if (!strcmp(json_string_value(json_object_get(t, "id")),
			    req->vars[0])) {
			json_incref(t);
			json_decref(arr);
			return vg_http_reply_json(resp, 200, t);
		}
	}
	json_decref(arr);
	return vg_http_reply_error(resp, 404, "no token '%.64s'", req->vars[0]);
}

/* ---- DELETE /v1/tokens/{id} ---------------------------------------------- */

int vg_api_h_token_revoke(struct vg_http_req *req, struct vg_http_resp *resp)
{
	const char *id = req->vars[0];
	json_t *info = NULL;
	int rc;

	if (admin_only(req, resp))
		return 0;
	rc = vg_token_revoke(vg_api_tokens(req->ctx), id, req->now_ms, &info);
	if (rc == -ENOENT)
		return vg_http_reply_error(resp, 404, "no token '%.64s'", id);
	if (rc == -EALREADY) {
		json_decref(info);
		return vg_http_reply_error(resp, 409,
					   "token '%.64s' is already revoked", id);
	}
	if (rc) {
		json_decref(info);
		return vg_api_reply_errno(resp, rc, "tokens");
	}
	vg_info("api: revoked token %s", id);
	return vg_http_reply_json(resp, 200, info ? info : json_object());
}
