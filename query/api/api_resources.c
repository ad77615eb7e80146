/*
 * api_resources.c — GET /v1/resources and GET /v1/resources/{id}.
 *
 * Design: both are thin shells over the registry (vg_registry_list and
 * vg_registry_get) on this worker thread's handle. The list is paged by
 * id: `cursor` is the last id of the previous page and `next` is null on
 * the last page, so a client follows `next` until it is null and sees each
 * resource once even while new ones arrive.
 *
 * `metadata=KEY=VALUE` (or `metadata=KEY`: the key is set) filters on the
 * resource's attributes, which the registry keeps as JSON text: pages are
 * read from the cursor and filtered here until `limit` matches or the end,
 * reading at most VG_API_META_SCAN resources a request; `next` is then the
 * id of the last resource read, so following it never skips or repeats.
 *
 * The page without a metadata filter (the common one) is written
 * as JSON text straight from the registry's rows (vg_registry_list_visit):
 * building a jansson value per field and serialising them was most of a
 * page's CPU. The text is what jansson wrote before, byte for byte: the
 * same members in the same order, strings escaped and reals written as
 * jansson does (query/jsonbuf.c), a string jansson refused (not UTF-8)
 * left out as json_object_set_new left it out; api_test pins it.
 *
 * Invariants: every filter value is validated before the registry sees
 * it (unknown type or state is a 400, never an empty list); a request
 * scoped to a project (req->scope_project, set by the authorisation hook)
 * never sees, nor learns of, another project's resource: it gets a 404.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "query/api/api_handlers.h"
#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/name.h"

static int nonempty(struct vg_http_req *req, struct vg_http_resp *resp,
		    const char *key, const char **out)
{
	const char *v = vg_http_param(req, key);

	*out = NULL;
	if (!v)
		return 0;
	if (!*v) {
		vg_http_reply_error(resp, 400, "parameter '%s' is empty", key);
		return -EINVAL;
	}
	if (!vg_name_valid(v)) {
		vg_http_reply_error(resp, 400,
				    "parameter '%s' is not a valid name (1..%d "
				    "bytes of UTF-8, no control or hidden characters)",
				    key, VG_NAME_MAX);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* Whether a registry resource object's attributes match KEY[=VALUE]. */
static int meta_match(json_t *r, const char *key, size_t klen,
		      const char *value)
{
	json_t *attrs = json_object_get(r, "attributes");
	const char *k;
	json_t *v;

	json_object_foreach(attrs, k, v) {
		if (strlen(k) != klen || memcmp(k, key, klen))
			continue;
		return !value || (json_is_string(v) &&
				  !strcmp(json_string_value(v), value));
	}
	return 0;
}

/* The list with a metadata filter: scan pages from the cursor. */
static int list_by_metadata(struct vg_registry *reg,
			    struct vg_resource_filter *f, const char *meta,
			    struct vg_http_resp *resp)
{
	const char *eq = strchr(meta, '=');
	size_t klen = eq ? (size_t)(eq - meta) : strlen(meta);
	int want = f->limit, rc;
	size_t scanned = 0;
	char next[VG_NAME_MAX * 4 + 1], after[VG_NAME_MAX * 4 + 1];
	json_t *out = json_array(), *page = NULL, *r;

	after[0] = '\0';
	if (f->after)
		snprintf(after, sizeof(after), "%s", f->after);
	f->limit = VG_API_LIST_MAX;
	for (;;) {
		size_t i;
		f->after = after[0] ? after : NULL;
		next[0] = '\0';
		rc = vg_registry_list(reg, f, &page, next, sizeof(next));
		if (rc) {
			json_decref(out);
			return vg_api_reply_errno(resp, rc, "resource list");
		}
		json_array_foreach(page, i, r) {
			snprintf(after, sizeof(after), "%s",
				 json_string_value(json_object_get(r, "id")));
			scanned++;
			if (meta_match(r, meta, klen, eq ? eq + 1 : NULL))
				json_array_append(out, r);
			if ((int)json_array_size(out) == want ||
			    scanned == VG_API_META_SCAN)
				break;
		}
		/* more to read: this page was cut short, or another page */
		int more = i + 1 < json_array_size(page) || next[0];
		json_decref(page);
		if (!more) {
			after[0] = '\0';
			break;
		}
		if ((int)json_array_size(out) == want || scanned == VG_API_META_SCAN)
			break;
	}
	return vg_http_reply_json(
		resp, 200,
		json_pack("{s:o,s:o}", "resources", out, "next",
			  after[0] ? json_string(after) : json_null()));
}

/* ---- a page as text ------------------------------------------------------ */

struct page_text {
	struct vg_buf *b;
	int nres; /* resources written */
	int nmet; /* metrics written of the current resource */
};

/* Drop what was appended since mark (a member jansson would leave out). */
static void cut(struct vg_buf *b, size_t mark)
{
	if (!b->oom && b->p) {
		b->len = mark;
		b->p[mark] = '\0';
	}
}

/* The member ,"key": (member is that text; its comma is left out when
 * the member is the object's first, *n members so far) then v as a string
 * (NULL: null). A string jansson's json_string refuses (not UTF-8) left
 * the member out; so does this. */
static void member_text(struct vg_buf *b, int *n, const char *member,
			size_t len, const char *v)
{
	size_t mark = b->len;

	vg_buf_append(b, member + !*n, len - !*n);
	if (!v)
		vg_buf_append(b, "null", 4);
	else if (vg_buf_json_str(b, v, strlen(v))) {
		cut(b, mark);
		return;
	}
	(*n)++;
}
#define MEMBER(key) ",\"" key "\":", sizeof(",\"" key "\":") - 1
#define MEMBER_TEXT(b, n, key, v) member_text(b, n, MEMBER(key), v)

/* A time member as vg_time_format writes it ("2026-..Z"), or null. */
static void member_time(struct vg_buf *b, int *n, const char *member,
			size_t len, int has, int64_t ms)
{
	char t[40];
	size_t tlen;

	if (!has) {
		member_text(b, n, member, len, NULL);
		return;
	}
	/* vg_iso_time is vg_time_format without gmtime for 1970..9999 */
	if (ms >= 0 && ms < 253402300800000LL)
		vg_iso_time(ms, t + 1);
	else
		vg_time_format(ms, t + 1, sizeof(t) - 2);
	t[0] = '"';
	tlen = strlen(t);
	t[tlen++] = '"';
	vg_buf_append(b, member + !*n, len - !*n);
	vg_buf_append(b, t, tlen);
	(*n)++;
}
#define MEMBER_TIME(b, n, key, has, ms) member_time(b, n, MEMBER(key), has, ms)

/* The members of registry.c's resource_base, in its order. */
static int pt_resource(void *ctx, const struct vg_registry_res *r)
{
	struct page_text *pt = ctx;
	struct vg_buf *b = pt->b;
	int n = 0;

	if (pt->nres++)
		vg_buf_append(b, ",", 1);
	vg_buf_append(b, "{", 1);
	MEMBER_TEXT(b, &n, "id", r->id);
	MEMBER_TEXT(b, &n, "type", vg_rtype_name(r->type));
	MEMBER_TEXT(b, &n, "host", r->host);
	MEMBER_TEXT(b, &n, "name", r->name);
	MEMBER_TEXT(b, &n, "parent", r->parent);
	MEMBER_TEXT(b, &n, "project", r->project);
	MEMBER_TEXT(b, &n, "user", r->user);
	MEMBER_TEXT(b, &n, "flavor", r->flavor);
	MEMBER_TEXT(b, &n, "state", r->ended ? "ended" : "active");
	MEMBER_TIME(b, &n, "first_seen", r->has_first_seen, r->first_seen_ms);
	MEMBER_TIME(b, &n, "last_seen", 1, r->last_seen_ms);
	MEMBER_TIME(b, &n, "ended_at", r->ended, r->ended_at_ms);
	vg_buf_append(b, ",\"attributes\":", 14);
	vg_buf_json_object_text(b, r->attributes);
	vg_buf_append(b, ",\"metrics\":{", 12);
	pt->nmet = 0;
	return b->oom ? -ENOMEM : 0;
}

/* "name":{"unit","kind","last_value","last_time"} as metric_json. */
static int pt_metric(void *ctx, const struct vg_registry_metric *m)
{
	struct page_text *pt = ctx;
	struct vg_buf *b = pt->b;
	size_t mark = b->len;
	int n = 0;

	if (pt->nmet)
		vg_buf_append(b, ",", 1);
	if (!m->name || vg_buf_json_str(b, m->name, strlen(m->name))) {
		cut(b, mark); /* json_object_set_new refused the key */
		return 0;
	}
	vg_buf_append(b, ":{", 2);
	MEMBER_TEXT(b, &n, "unit", m->unit);
	MEMBER_TEXT(b, &n, "kind", vg_kind_name(m->kind));
	vg_buf_append(b, n ? ",\"last_value\":" : "\"last_value\":", n ? 14 : 13);
	vg_buf_json_real(b, m->last_value);
	n++;
	MEMBER_TIME(b, &n, "last_time", 1, m->last_time_ms);
	vg_buf_append(b, "}", 1);
	pt->nmet++;
	return b->oom ? -ENOMEM : 0;
}

static int pt_end(void *ctx)
{
	struct page_text *pt = ctx;

	vg_buf_append(pt->b, "}}", 2);
	return pt->b->oom ? -ENOMEM : 0;
}

/* {"resources":[...],"next":"id"|null}: the page written as text. */
static int reply_page(struct vg_registry *reg, const struct vg_resource_filter *f,
		      struct vg_http_resp *resp)
{
	struct vg_buf b = {0};
	struct page_text pt = {&b, 0, 0};
	const struct vg_registry_visitor v = {pt_resource, pt_metric, pt_end,
					      &pt};
	char next[VG_NAME_MAX * 3 + 1];
	size_t len;
	char *body;
	int rc;

	/* one allocation for a page of resources with a few metrics */
	b.cap = (size_t)f->limit * 768 + 64;
	if (!(b.p = malloc(b.cap)))
		b.cap = 0;
	vg_buf_append(&b, "{\"resources\":[", 14);
	next[0] = '\0';
	rc = vg_registry_list_visit(reg, f, &v, next, sizeof(next));
	if (rc) {
		vg_buf_release(&b);
		return vg_api_reply_errno(resp, rc, "resource list");
	}
	vg_buf_append(&b, "],\"next\":", 9);
	if (!next[0])
		vg_buf_append(&b, "null", 4);
	else if (vg_buf_json_str(&b, next, strlen(next)))
		b.oom = 1; /* json_pack failed on it: out of memory, as before */
	vg_buf_append(&b, "}", 1);
	if (!(body = vg_buf_take(&b, &len)))
		return vg_http_reply_json(resp, 200, NULL); /* a 500 */
	return vg_http_reply_raw(resp, 200, "application/json", body, len);
}

int vg_api_h_resources(struct vg_http_req *req, struct vg_http_resp *resp)
{
	struct vg_api *api = req->ctx;
	struct vg_resource_filter f = {0};
	struct vg_registry *reg;
	const char *v, *meta;
	int rc;

	if (nonempty(req, resp, "type", &f.type) ||
	    nonempty(req, resp, "host", &f.host) ||
	    nonempty(req, resp, "project", &f.project) ||
	    nonempty(req, resp, "name", &f.name) ||
	    nonempty(req, resp, "state", &f.state) ||
	    nonempty(req, resp, "parent", &f.parent) ||
	    nonempty(req, resp, "cursor", &f.after) ||
	    nonempty(req, resp, "metadata", &meta))
		return 0;
	if (meta && (meta[0] == '=' || strchr(meta, '=') == meta + strlen(meta) - 1))
		return vg_http_reply_error(resp, 400,
					   "bad metadata '%s' (KEY=VALUE, or KEY "
					   "for any value)",
					   meta);
	if (f.type && vg_rtype_parse(f.type) < 0)
		return vg_http_reply_error(resp, 400,
					   "bad type '%s' (one of: instance, "
					   "disk, nic, host, host_disk, "
					   "host_nic)",
					   f.type);
	if (f.state && strcmp(f.state, "active") && strcmp(f.state, "ended"))
		return vg_http_reply_error(resp, 400,
					   "bad state '%s' (one of: active, "
					   "ended)",
					   f.state);
	v = vg_http_param(req, "limit");
	if (vg_api_parse_limit(v, VG_API_LIST_DEFAULT, VG_API_LIST_MAX,
			       &f.limit))
		return vg_http_reply_error(resp, 400,
					   "bad limit '%.32s' (an integer "
					   "1..%d)",
					   v, VG_API_LIST_MAX);
	if (req->scope_project) {
		if (f.project && strcmp(f.project, req->scope_project))
			return vg_http_reply_json(
				resp, 200,
				json_pack("{s:[],s:n}", "resources", "next"));
		f.project = req->scope_project;
	}
	rc = vg_api_registry(api, &reg);
	if (rc)
		return vg_http_reply_error(resp, 503,
					   "registry unavailable (%s)",
					   strerror(-rc));
	if (meta)
		return list_by_metadata(reg, &f, meta, resp);
	return reply_page(reg, &f, resp);
}

int vg_api_h_resource(struct vg_http_req *req, struct vg_http_resp *resp)
{
	struct vg_api *api = req->ctx;
	const char *id = req->vars[0];
	struct vg_registry *reg;
	json_t *obj = NULL;
	int rc;

	if (!id || !vg_name_valid(id))
		return vg_http_reply_error(resp, 404, "no resource '%.200s'",
					   id ? id : "");
	rc = vg_api_registry(api, &reg);
	if (rc)
		return vg_http_reply_error(resp, 503,
					   "registry unavailable (%s)",
					   strerror(-rc));
	rc = vg_registry_get(reg, id, &obj);
	if (rc == -ENOENT)
		return vg_http_reply_error(resp, 404, "no resource '%s'", id);
	if (rc)
		return vg_api_reply_errno(resp, rc, "resource");
	if (req->scope_project) {
		const char *p = json_string_value(json_object_get(obj, "project"));
		if (!p || strcmp(p, req->scope_project)) {
			json_decref(obj);
			return vg_http_reply_error(resp, 404,
						   "no resource '%s'", id);
		}
	}
	{ /* each series' archive rule ([archives], docs/operations.md) */
		struct vg_store *store = vg_api_store(api);
		const char *name;
		json_t *m;
		json_object_foreach(json_object_get(obj, "metrics"), name, m)
			if (store)
				json_object_set_new(m, "archive_policy",
						    json_string(vg_store_policy_name(store, name)));
	}
	return vg_http_reply_json(resp, 200, obj);
}
