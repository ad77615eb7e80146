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
 * Invariants: every filter value is validated before the registry sees
 * it (unknown type or state is a 400, never an empty list); a request
 * scoped to a project (req->scope_project, set by the authorisation hook)
 * never sees, nor learns of, another project's resource: it gets a 404.
 */
#include <errno.h>
#include <string.h>

#include "query/api/api_handlers.h"
#include "vigie/batch.h"
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
				    "bytes of UTF-8, no control characters)",
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

int vg_api_h_resources(struct vg_http_req *req, struct vg_http_resp *resp)
{
	struct vg_api *api = req->ctx;
	struct vg_resource_filter f = {0};
	struct vg_registry *reg;
	char next[VG_NAME_MAX * 3 + 1];
	json_t *arr = NULL;
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
					   "for any value)", meta);
	if (f.type && vg_rtype_parse(f.type) < 0)
		return vg_http_reply_error(resp, 400,
					   "bad type '%s' (one of: instance, "
					   "disk, nic, host, host_disk, "
					   "host_nic)", f.type);
	if (f.state && strcmp(f.state, "active") && strcmp(f.state, "ended"))
		return vg_http_reply_error(resp, 400,
					   "bad state '%s' (one of: active, "
					   "ended)", f.state);
	v = vg_http_param(req, "limit");
	if (vg_api_parse_limit(v, VG_API_LIST_DEFAULT, VG_API_LIST_MAX,
			       &f.limit))
		return vg_http_reply_error(resp, 400,
					   "bad limit '%.32s' (an integer "
					   "1..%d)", v, VG_API_LIST_MAX);
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
	next[0] = '\0';
	rc = vg_registry_list(reg, &f, &arr, next, sizeof(next));
	if (rc)
		return vg_api_reply_errno(resp, rc, "resource list");
	return vg_http_reply_json(
		resp, 200,
		json_pack("{s:o,s:o}", "resources", arr, "next",
			  next[0] ? json_string(next) : json_null()));
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
	return vg_http_reply_json(resp, 200, obj);
}
