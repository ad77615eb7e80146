/*
 * vigie — the API's tenants (query/api/api_tokens.c): the bearer-token
 * authorisation hook every non-public route passes, and GET/POST/DELETE
 * /v1/tokens. Tokens themselves are stored by vigie/token.h.
 */
#ifndef VIGIE_API_TOKENS_H
#define VIGIE_API_TOKENS_H

#include <stddef.h>

#include <jansson.h>

#include "query/api/http.h"

/* ---- authorisation -------------------------------------------------------- */

/* The server's authorisation hook (vg_http_authorize_fn; ctx is the
 * struct vg_api): 401 with WWW-Authenticate for a missing, malformed,
 * unknown or revoked bearer token; otherwise 0 with req->scope_project
 * set for a project token (NULL for an admin token). */
int vg_api_authorize(void *ctx, struct vg_http_req *req,
		     struct vg_http_resp *resp);

/* 1 when req carries a valid admin token (for a public route, which the
 * hook does not run for: /v1/health shows some details to admins only),
 * else 0. */
int vg_api_request_is_admin(void *ctx, const struct vg_http_req *req);

/* The token of an "Authorization: Bearer TOKEN" header into out (at least
 * VG_TOKEN_LEN + 1 bytes): 0, or -EINVAL for a missing or malformed one.
 * Pure; the caller clears out when done (OPENSSL_cleanse). A long-lived
 * answer (the alarm stream) keeps it to check again that the token was
 * not revoked since the request was authorised. */
int vg_api_bearer_token(const char *authorization, char *out);

/* ---- /v1/tokens ------------------------------------------------------------- */

int vg_api_h_tokens_list(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_tokens_create(struct vg_http_req *req, struct vg_http_resp *resp);
/* The body of POST /v1/tokens: {"admin":true} or {"project":"P"}, with an
 * optional "name" (no other field). 0 with *doc a new JSON object (caller
 * decrefs) and *project / *name pointing into it (NULL when absent; a NULL
 * project means an admin token); or -EINVAL with *doc NULL and the 400
 * message in err. Names and projects are checked by vg_token_create.
 * Pure (the handler's parsing, apart so the fuzzer can reach it). */
int vg_api_token_request_parse(const char *body, size_t len, json_t **doc,
			       const char **project, const char **name,
			       char *err, size_t errlen);
int vg_api_h_token_get(struct vg_http_req *req, struct vg_http_resp *resp);
int vg_api_h_token_revoke(struct vg_http_req *req, struct vg_http_resp *resp);

#endif
