/*
 * http_request.c — the request side of the HTTP layer, with no
 * libmicrohttpd in it (query/api/http.h): method names, the parsing of
 * the raw request-target into path segments and query parameters, route
 * matching and vg_http_dispatch (unknown or repeated parameters, the
 * authorisation hook, the handler).
 *
 * Design: a struct vg_http_req is plain data, so unit tests and the fuzz
 * targets build one with vg_http_req_parse and call vg_http_dispatch
 * without a server; http.c calls the same two functions for every real
 * request.
 *
 * Invariants: a parsed request never holds more than VG_HTTP_MAX_PARAMS
 * parameters or VG_HTTP_MAX_SEGMENTS segments, and no NUL byte (a "%00"
 * is refused); dispatch always leaves a status in resp (500 when the
 * handler set none).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/api/http.h"
#include "vigie/hex.h"

/* ---- methods ----------------------------------------------------------- */

static const struct {
	const char *name;
	int m;
} methods[] = {
	{"GET", VG_HTTP_GET},
	{"HEAD", VG_HTTP_HEAD},
	{"POST", VG_HTTP_POST},
	{"PUT", VG_HTTP_PUT},
	{"DELETE", VG_HTTP_DELETE},
	{"PATCH", VG_HTTP_PATCH},
	{"OPTIONS", VG_HTTP_OPTIONS},
};

int vg_http_method_parse(const char *name)
{
	for (size_t i = 0; name && i < sizeof(methods) / sizeof(methods[0]); i++)
		if (!strcmp(name, methods[i].name))
			return methods[i].m;
	return VG_HTTP_OTHER;
}

char *vg_http_methods_format(unsigned mask, char *buf, size_t len)
{
	size_t off = 0;

	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (!(mask & (unsigned)methods[i].m))
			continue;
		int n = snprintf(buf + off, len - off, "%s%s", off ? ", " : "",
				 methods[i].name);
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
	return buf;
}

/* ---- request parsing ----------------------------------------------------- */

int vg_http_unescape(const char *src, size_t len, char *dst, int plus_is_space)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char c = src[i];
		if (c == '%') {
			int h, l;
			if (i + 2 >= len)
				return -EINVAL;
			h = vg_hex_digit((unsigned char)src[i + 1]);
			l = vg_hex_digit((unsigned char)src[i + 2]);
			if (h < 0 || l < 0)
				return -EINVAL;
			c = (char)(h << 4 | l);
			if (!c)
				return -EINVAL;
			i += 2;
		} else if (c == '+' && plus_is_space) {
			c = ' ';
		} else if (!c) {
			return -EINVAL;
		}
		dst[o++] = c;
	}
	dst[o] = '\0';
	return (int)o;
}

int vg_http_req_parse(struct vg_http_req *req, const char *method,
		      const char *raw)
{
	size_t len;
	char *raw_copy, *dec, *q, *p;
	int n;

	memset(req, 0, sizeof(*req));
	req->method_name = method ? method : "";
	req->method = vg_http_method_parse(method);
	req->path = "";
	if (!raw)
		return -EINVAL;
	len = strlen(raw);
	if (len > VG_HTTP_MAX_URI)
		return -ENAMETOOLONG;
	if (raw[0] != '/')
		return -EINVAL;
	/* One allocation: the raw copy (path, for logs and {rest*}), then
	 * the decoded strings, which never need more than len + 2 bytes
	 * because every decoded piece was followed by a separator. */
	req->buf = malloc(2 * len + 4);
	if (!req->buf)
		return -ENOMEM;
	raw_copy = req->buf;
	memcpy(raw_copy, raw, len + 1);
	dec = raw_copy + len + 1;
	q = strchr(raw_copy, '?');
	if (q)
		*q++ = '\0';
	p = strchr(raw_copy, '#'); /* a fragment is never sent; ignore it */
	if (p)
		*p = '\0';
	req->path = raw_copy;
	req->path_buf = raw_copy;

	/* Path segments. */
	p = raw_copy;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		char *end = strchrnul(p, '/');
		if (req->nseg == VG_HTTP_MAX_SEGMENTS)
			return -ELOOP;
		n = vg_http_unescape(p, (size_t)(end - p), dec, 0);
		if (n < 0)
			return -EINVAL;
		req->seg[req->nseg++] = dec;
		dec += n + 1;
		p = end;
	}

	/* Query parameters. */
	while (q && *q) {
		char *amp = strchrnul(q, '&');
		char *eq = memchr(q, '=', (size_t)(amp - q));
		size_t klen = eq ? (size_t)(eq - q) : (size_t)(amp - q);

		if (amp == q) { /* "&&" */
			q = *amp ? amp + 1 : amp;
			continue;
		}
		if (klen == 0)
			return -EINVAL;
		if (req->nparams == VG_HTTP_MAX_PARAMS)
			return -E2BIG;
		struct vg_http_param *pp = &req->params[req->nparams++];
		n = vg_http_unescape(q, klen, dec, 1);
		if (n < 0)
			return -EINVAL;
		pp->key = dec;
		dec += n + 1;
		if (eq) {
			n = vg_http_unescape(eq + 1, (size_t)(amp - eq - 1), dec, 1);
			if (n < 0)
				return -EINVAL;
			pp->value = dec;
			dec += n + 1;
		} else {
			pp->value = "";
		}
		q = *amp ? amp + 1 : amp;
	}
	return 0;
}

void vg_http_req_release(struct vg_http_req *req)
{
	if (!req)
		return;
	free(req->buf);
	req->buf = NULL;
	req->path_buf = NULL;
}

const char *vg_http_param(const struct vg_http_req *req, const char *key)
{
	for (size_t i = 0; i < req->nparams; i++)
		if (!strcmp(req->params[i].key, key))
			return req->params[i].value;
	return NULL;
}

/* ---- routing ------------------------------------------------------------- */

/* Match one pattern against req's segments; fills vars/rest on success. */
static int pattern_match(const char *pat, struct vg_http_req *req,
			 const char **vars, const char **rest)
{
	size_t i = 0, nv = 0;
	const char *p = pat;

	*rest = NULL;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *end = strchrnul(p, '/');
		size_t plen = (size_t)(end - p);

		if (plen >= 3 && p[0] == '{' && p[plen - 1] == '}' &&
		    p[plen - 2] == '*') {
			/* "{name*}": the raw rest of the path. */
			const char *r = req->path;
			size_t k = 0;
			/* walk i segments into the raw path */
			while (*r && k < i) {
				while (*r == '/')
					r++;
				r = strchrnul(r, '/');
				k++;
			}
			while (*r == '/')
				r++;
			*rest = r;
			return 1;
		}
		if (i >= req->nseg)
			return 0;
		if (plen >= 2 && p[0] == '{' && p[plen - 1] == '}') {
			if (nv == VG_HTTP_MAX_VARS)
				return 0;
			vars[nv++] = req->seg[i];
		} else if (strlen(req->seg[i]) != plen ||
			   memcmp(req->seg[i], p, plen)) {
			return 0;
		}
		i++;
		p = end;
	}
	return i == req->nseg;
}

/* Literal segments of a pattern: "/v1/alarms/stream" 3, "/v1/alarms/{id}" 2. */
static size_t literal_segments(const char *pat)
{
	size_t k = 0;

	for (const char *p = pat; *p;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		k += *p != '{';
		p = strchrnul(p, '/');
	}
	return k;
}

int vg_http_route_find(const struct vg_route *routes, size_t n,
		       struct vg_http_req *req, unsigned *allowed)
{
	unsigned mask = 0;
	size_t best = 0;

	/* The path belongs to the routes that name most of it literally:
	 * "/v1/alarms/stream" owns that path, so "/v1/alarms/{id}" neither
	 * takes its other methods (DELETE reached an alarm named "stream")
	 * nor lists them in the 405's Allow. */
	for (size_t i = 0; i < n; i++) {
		const char *vars[VG_HTTP_MAX_VARS] = {0};
		const char *rest = NULL;
		size_t k;

		if (pattern_match(routes[i].pattern, req, vars, &rest) &&
		    (k = literal_segments(routes[i].pattern)) > best)
			best = k;
	}
	for (size_t i = 0; i < n; i++) {
		const char *vars[VG_HTTP_MAX_VARS] = {0};
		const char *rest = NULL;

		if (!pattern_match(routes[i].pattern, req, vars, &rest) ||
		    literal_segments(routes[i].pattern) < best)
			continue;
		unsigned m = routes[i].methods;
		if (m & VG_HTTP_GET)
			m |= VG_HTTP_HEAD;
		/* A wildcard route (the web console's catch-all) never takes
		 * a path an earlier route owns with other methods: GET on a
		 * POST-only endpoint is that endpoint's 405, not a 404. */
		if (rest && mask)
			break;
		if (m & (unsigned)req->method) {
			req->route = &routes[i];
			memcpy(req->vars, vars, sizeof(vars));
			req->rest = rest;
			return 0;
		}
		mask |= m;
	}
	if (allowed)
		*allowed = mask;
	return mask ? -EOPNOTSUPP : -ENOENT;
}

static int param_allowed(const struct vg_route *r, const char *key)
{
	if (r->flags & VG_ROUTE_ANY_PARAMS)
		return 1;
	for (const char *const *p = r->params; p && *p; p++)
		if (!strcmp(*p, key))
			return 1;
	return 0;
}

static void unknown_param(const struct vg_route *r, const char *key,
			  struct vg_http_resp *resp)
{
	char list[512] = "";
	size_t off = 0;

	for (const char *const *p = r->params; p && *p; p++) {
		int n = snprintf(list + off, sizeof(list) - off, "%s%s",
				 off ? ", " : "", *p);
		if (n < 0 || (size_t)n >= sizeof(list) - off)
			break;
		off += (size_t)n;
	}
	if (off)
		vg_http_reply_error(resp, 400,
				    "unknown parameter '%.64s' (accepted: %s)",
				    key, list);
	else
		vg_http_reply_error(resp, 400,
				    "unknown parameter '%.64s' (this endpoint "
				    "takes none)",
				    key);
}

int vg_http_check(const struct vg_route *routes, size_t n,
		  vg_http_authorize_fn authorize, struct vg_http_req *req,
		  struct vg_http_resp *resp)
{
	unsigned allowed = 0;
	int rc = vg_http_route_find(routes, n, req, &allowed);

	if (rc == -ENOENT) {
		vg_http_reply_error(resp, 404, "no such endpoint: %.200s",
				    req->path);
		return 0;
	}
	if (rc == -EOPNOTSUPP) {
		char list[128];
		vg_http_methods_format(allowed, list, sizeof(list));
		vg_http_reply_error(resp, 405,
				    "method %.16s not allowed on %.200s "
				    "(allowed: %s)",
				    req->method_name,
				    req->path, list);
		vg_http_resp_header(resp, "Allow", "%s", list);
		return 0;
	}
	for (size_t i = 0; i < req->nparams; i++) {
		const char *key = req->params[i].key;
		if (!param_allowed(req->route, key)) {
			unknown_param(req->route, key, resp);
			return 0;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(req->params[j].key, key)) {
				vg_http_reply_error(resp, 400,
						    "parameter '%.64s' given "
						    "more than once",
						    key);
				return 0;
			}
	}
	if (authorize && !(req->route->flags & VG_ROUTE_PUBLIC) &&
	    authorize(req->ctx, req, resp)) {
		if (!resp->status)
			vg_http_reply_error(resp, 401, "unauthorized");
		return 0;
	}
	return 1;
}

void vg_http_run(struct vg_http_req *req, struct vg_http_resp *resp)
{
	int rc = req->route->handler(req, resp);

	if (!resp->status)
		vg_http_reply_error(resp, 500, "internal error (%s)",
				    rc < 0 ? strerror(-rc) : "no reply");
}

void vg_http_dispatch(const struct vg_route *routes, size_t n,
		      vg_http_authorize_fn authorize, struct vg_http_req *req,
		      struct vg_http_resp *resp)
{
	if (vg_http_check(routes, n, authorize, req, resp))
		vg_http_run(req, resp);
}
