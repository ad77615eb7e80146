/*
 * api_latest.c — the newest values: GET /v1/resources/{id}/latest (every
 * metric of one resource) and GET /v1/top (the N resources with the highest
 * or lowest current value of a metric: the busiest instances now).
 *
 * Design: a gauge's current value is the registry's last_value (the last
 * sample received). A counter's last_value is a running total, which says
 * nothing about "now", so its current value is its rate: the newest known
 * point of the finest RRD archive within VG_API_LATEST_WINDOW_S before
 * the metric's last sample. The raw total is returned beside it.
 *
 * The resources are read through vg_api_scan (query/api/api_shared.c); a
 * project-scoped request always scans its own project only, so nothing
 * here can reach another project's data.
 *
 * Invariants: top never lists an ended resource or one without the metric;
 * ties are broken by id so the order is stable; a scoped request for
 * another project's resource is a 404 indistinguishable from "no such
 * resource".
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "query/api/api_handlers.h"
#include "vigie/batch.h"
#include "vigie/catalog.h"
#include "vigie/clock.h"
#include "vigie/name.h"

/* ---- a counter's current rate --------------------------------------------------- */

int vg_api_latest_rate(struct vg_store *store, int rtype, const char *id,
		       const char *metric, int64_t last_ms, double *value,
		       int64_t *time_ms)
{
	struct vg_series s;
	int rc;

	*value = NAN;
	*time_ms = 0;
	if (!store)
		return -ENOENT;
	rc = vg_store_fetch(store, rtype, id, metric, VG_CF_AVERAGE,
			    last_ms > VG_API_LATEST_WINDOW_S * 1000
				    ? last_ms - VG_API_LATEST_WINDOW_S * 1000
				    : 0,
			    last_ms, 0, 0, &s);
	if (rc)
		return rc;
	rc = s.n ? 0 : -ENODATA;
	if (s.n) {
		*value = s.points[s.n - 1].value;
		*time_ms = s.points[s.n - 1].time_ms;
	}
	vg_series_free(&s);
	return rc;
}

/* The value "now" of one metric entry of a registry resource object:
 * gauge -> last_value, counter -> rate. 0 with *v (NaN if unknown). */
static int current_value(struct vg_store *store, int rtype, const char *id,
			 const char *metric, json_t *m, double *v, int64_t *t,
			 int *kind)
{
	const char *ks = json_string_value(json_object_get(m, "kind"));
	const char *lt = json_string_value(json_object_get(m, "last_time"));
	json_t *lv = json_object_get(m, "last_value");
	int64_t last_ms = 0;

	*v = NAN;
	*t = 0;
	*kind = ks && !strcmp(ks, "counter") ? VG_KIND_COUNTER : VG_KIND_GAUGE;
	if (lt)
		vg_time_parse(lt, 0, &last_ms);
	if (*kind == VG_KIND_GAUGE) {
		if (json_is_number(lv))
			*v = json_number_value(lv);
		*t = last_ms;
		return 0;
	}
	vg_api_latest_rate(store, rtype, id, metric, last_ms, v, t);
	return 0;
}

static void unit_of(int rtype, const char *metric, const char *raw_unit,
		    int kind, char *out, size_t len)
{
	const struct vg_metric_def *def = vg_catalog_find(rtype, metric);

	if (def) {
		vg_catalog_query_unit(def, out, len);
	} else if (kind == VG_KIND_COUNTER && raw_unit && *raw_unit) {
		snprintf(out, len, "%s/s", raw_unit);
	} else {
		snprintf(out, len, "%s", raw_unit ? raw_unit : "");
	}
}

static json_t *time_json(int64_t ms)
{
	char b[32];

	return ms > 0 ? json_string(vg_time_format(ms, b, sizeof(b)))
		      : json_null();
}

static json_t *number_json(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

/* ---- GET /v1/resources/{id}/latest ---------------------------------------------- */

int vg_api_h_latest(struct vg_http_req *req, struct vg_http_resp *resp)
{
	struct vg_api *api = req->ctx;
	struct vg_store *store = vg_api_store(api);
	const char *id = req->vars[0], *key, *p, *type;
	struct vg_registry *reg;
	json_t *obj = NULL, *metrics, *m, *out_m;
	int rc, rtype;

	if (!id || !vg_name_valid(id))
		return vg_http_reply_error(resp, 404, "no resource '%.200s'",
					   id ? id : "");
	if ((rc = vg_api_registry(api, &reg)))
		return vg_http_reply_error(resp, 503, "registry unavailable (%s)",
					   strerror(-rc));
	rc = vg_registry_get(reg, id, &obj);
	if (rc == -ENOENT)
		return vg_http_reply_error(resp, 404, "no resource '%s'", id);
	if (rc)
		return vg_api_reply_errno(resp, rc, "resource");
	p = json_string_value(json_object_get(obj, "project"));
	if (req->scope_project && (!p || strcmp(p, req->scope_project))) {
		json_decref(obj);
		return vg_http_reply_error(resp, 404, "no resource '%s'", id);
	}
	type = json_string_value(json_object_get(obj, "type"));
	rtype = type ? vg_rtype_parse(type) : -1;
	metrics = json_object_get(obj, "metrics");
	out_m = json_object();
	json_object_foreach(metrics, key, m) {
		double v;
		int64_t t;
		int kind;
		char unit[64];
		json_t *e;

		current_value(store, rtype, id, key, m, &v, &t, &kind);
		unit_of(rtype, key, json_string_value(json_object_get(m, "unit")),
			kind, unit, sizeof(unit));
		e = json_pack("{s:o,s:s,s:s,s:o}", "value", number_json(v),
			      "unit", unit, "kind",
			      kind == VG_KIND_COUNTER ? "counter" : "gauge",
			      "time", time_json(t));
		if (kind == VG_KIND_COUNTER) {
			json_object_set(e, "total", json_object_get(m, "last_value"));
			json_object_set(e, "total_unit", json_object_get(m, "unit"));
		}
		json_object_set_new(out_m, key, e);
	}
	rc = vg_http_reply_json(
		resp, 200,
		json_pack("{s:O,s:O,s:O,s:O,s:O,s:o}", "resource",
			  json_object_get(obj, "id"), "type",
			  json_object_get(obj, "type"), "project",
			  json_object_get(obj, "project"), "state",
			  json_object_get(obj, "state"), "last_seen",
			  json_object_get(obj, "last_seen"), "metrics", out_m));
	json_decref(obj);
	return rc;
}

/* ---- GET /v1/top -------------------------------------------------------------------- */

struct top_row {
	json_t *res; /* borrowed reference kept alive by json_incref */
	double value;
	int64_t time_ms;
};

struct top_ctx {
	struct vg_store *store;
	const char *metric, *flavor;
	struct top_row *rows;
	size_t n, cap;
	int kind; /* of the first resource with the metric */
	char raw_unit[32];
	int rtype;
	unsigned types; /* mask of the types ranked, 0 for all */
	int oom;
};

static int top_collect(void *vctx, json_t *r)
{
	struct top_ctx *c = vctx;
	json_t *m = json_object_get(json_object_get(r, "metrics"), c->metric);
	const char *id = json_string_value(json_object_get(r, "id"));
	const char *type = json_string_value(json_object_get(r, "type"));
	const char *fl = json_string_value(json_object_get(r, "flavor"));
	double v;
	int64_t t;
	int kind;

	if (!m || !id || !type)
		return 0;
	if (c->types && (vg_rtype_parse(type) < 1 ||
			 !(c->types & (1u << vg_rtype_parse(type)))))
		return 0;
	if (c->flavor && (!fl || strcmp(fl, c->flavor)))
		return 0;
	current_value(c->store, vg_rtype_parse(type), id, c->metric, m, &v, &t,
		      &kind);
	if (isnan(v))
		return 0;
	if (c->n == 0) {
		c->kind = kind;
		c->rtype = vg_rtype_parse(type);
		snprintf(c->raw_unit, sizeof(c->raw_unit), "%s",
			 json_string_value(json_object_get(m, "unit"))
				 ? json_string_value(json_object_get(m, "unit"))
				 : "");
	}
	if (c->n == c->cap) {
		size_t nc = c->cap ? 2 * c->cap : 64;
		struct top_row *nr = realloc(c->rows, nc * sizeof(*nr));
		if (!nr) {
			c->oom = 1;
			return -ENOMEM;
		}
		c->rows = nr;
		c->cap = nc;
	}
	c->rows[c->n].res = json_incref(r);
	c->rows[c->n].value = v;
	c->rows[c->n].time_ms = t;
	c->n++;
	return 0;
}

static int top_desc(const void *a, const void *b)
{
	const struct top_row *x = a, *y = b;

	if (x->value != y->value)
		return x->value < y->value ? 1 : -1;
	return strcmp(json_string_value(json_object_get(x->res, "id")),
		      json_string_value(json_object_get(y->res, "id")));
}

static int top_asc(const void *a, const void *b)
{
	const struct top_row *x = a, *y = b;

	if (x->value != y->value)
		return x->value < y->value ? -1 : 1;
	return strcmp(json_string_value(json_object_get(x->res, "id")),
		      json_string_value(json_object_get(y->res, "id")));
}

int vg_api_h_top(struct vg_http_req *req, struct vg_http_resp *resp)
{
	struct vg_api *api = req->ctx;
	const char *metric = vg_http_param(req, "metric");
	const char *order = vg_http_param(req, "order");
	const char *ls = vg_http_param(req, "limit");
	struct top_ctx c = {0};
	struct vg_resource_filter f;
	char unit[64];
	json_t *arr;
	int limit, rc, empty;

	if (!metric || !*metric)
		return vg_http_reply_error(resp, 400, "missing parameter 'metric'");
	if (!vg_name_valid(metric))
		return vg_http_reply_error(resp, 400, "bad metric name");
	if (vg_api_parse_limit(ls, VG_API_TOP_DEFAULT, VG_API_TOP_MAX, &limit))
		return vg_http_reply_error(resp, 400,
					   "bad limit '%.32s' (an integer 1..%d)",
					   ls, VG_API_TOP_MAX);
	if (order && strcmp(order, "desc") && strcmp(order, "asc"))
		return vg_http_reply_error(resp, 400,
					   "bad order '%.32s' (desc or asc)", order);
	if (vg_api_scan_params(req, resp, &f, &c.flavor, &empty))
		return 0;
	f.state = "active";
	/* a catalogue name without a type ranks the types the catalogue
	 * defines it for: a project may publish cpu.util on its custom
	 * resources, which must not top the instances' ranking unless the
	 * request names their type */
	if (!f.type) {
		c.types = vg_catalog_rtypes(metric);
		for (int t = 1; t <= VG_RT_MAX; t++)
			if (c.types == 1u << t)
				f.type = vg_rtype_name(t);
	}
	c.store = vg_api_store(api);
	c.metric = metric;
	c.rtype = f.type ? vg_rtype_parse(f.type) : -1;
	if (!empty) {
		rc = vg_api_scan(api, &f, VG_API_SCAN_MAX, top_collect, &c);
		if (rc == -E2BIG)
			rc = vg_http_reply_error(resp, 400,
						 "more than %d resources match: "
						 "narrow with type, host, project "
						 "or flavor",
						 VG_API_SCAN_MAX);
		else if (rc)
			rc = vg_api_reply_errno(resp, rc, "resources");
		if (resp->status) {
			for (size_t i = 0; i < c.n; i++)
				json_decref(c.rows[i].res);
			free(c.rows);
			return 0;
		}
	}
	if (c.n)
		qsort(c.rows, c.n, sizeof(*c.rows),
		      order && !strcmp(order, "asc") ? top_asc : top_desc);
	arr = json_array();
	for (size_t i = 0; i < c.n; i++) {
		json_t *r = c.rows[i].res;
		if (i < (size_t)limit) {
			json_t *row = json_pack("{s:O,s:O,s:O,s:O,s:O,s:O,s:o,s:o}",
						"id", json_object_get(r, "id"),
						"type", json_object_get(r, "type"),
						"name", json_object_get(r, "name"),
						"host", json_object_get(r, "host"),
						"project", json_object_get(r, "project"),
						"flavor", json_object_get(r, "flavor"),
						"value", number_json(c.rows[i].value),
						"time", time_json(c.rows[i].time_ms));
			/* the names people know, when the agent sent them */
			json_t *at = json_object_get(r, "attributes");
			if (row && json_is_string(json_object_get(at, "display_name")))
				json_object_set(row, "display_name",
						json_object_get(at, "display_name"));
			if (row && json_is_string(json_object_get(at, "project_name")))
				json_object_set(row, "project_name",
						json_object_get(at, "project_name"));
			json_array_append_new(arr, row);
		}
		json_decref(r);
	}
	free(c.rows);
	unit[0] = '\0';
	if (c.rtype > 0 || c.n)
		unit_of(c.rtype, metric, c.raw_unit, c.kind ? c.kind : VG_KIND_GAUGE,
			unit, sizeof(unit));
	return vg_http_reply_json(
		resp, 200,
		json_pack("{s:s,s:o,s:s,s:o,s:s,s:i,s:o}", "metric", metric, "type",
			  f.type ? json_string(f.type) : json_null(), "order",
			  order ? order : "desc", "kind",
			  c.n ? json_string(c.kind == VG_KIND_COUNTER ? "counter"
								      : "gauge")
			      : json_null(),
			  "unit", unit, "matched", (int)c.n, "resources", arr));
}

const char *const vg_api_top_params[] = {
	"metric", "type", "host", "project", "flavor", "limit", "order", NULL};
