/*
 * api_aggregates.c — GET /v1/aggregates: one metric combined across many
 * resources (e.g. the mean CPU utilisation of every instance of a project,
 * or the sum of disk reads per host), optionally grouped by project, host
 * or flavor.
 *
 * Design: the resources come from the registry scan (filters type, host,
 * project, flavor; a project token only ever scans its own project),
 * keeping those that have the metric. Without a type, a catalogue metric
 * is aggregated over the one type the catalogue defines it for (host.* over
 * hosts, cpu.util over instances: a project's custom resources publishing
 * a catalogue name never join in), any other metric over every type that
 * has it, as /v1/top ranks them. They are
 * sorted by group key and each group is folded in turn into one
 * accumulator of the query's points (sum/min/max and a count per time
 * slot), so memory is one group's worth whatever the number of groups.
 * Every series is read at the same granularity so slots line up: an
 * explicit one, or for `auto` the finest that fits VG_API_MAX_POINTS and
 * whose archive still holds `start` (learnt from the first series).
 *
 * At each time slot the aggregation runs over the resources that have a
 * known point there: mean = sum / count, sum, min, max. A slot where none
 * has data is left out. Counters are rates per second, as in /v1/measures.
 *
 * Invariants: at most VG_API_AGG_MAX_RESOURCES series per request (400
 * beyond: narrow the filter); groups are ordered by key (resources without
 * a flavor group under null, first).
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

enum { AGG_MEAN,
       AGG_SUM,
       AGG_MIN,
       AGG_MAX };

struct agg_res {
	char *id;
	char *key; /* group key, NULL for none (no flavor) */
	int rtype;
};

struct agg_ctx {
	const char *metric, *flavor, *group_by;
	struct agg_res *r;
	size_t n, cap;
	int kind;
	char raw_unit[32]; /* the first series' unit, for a non-catalogue metric */
};

static int collect(void *vctx, json_t *r)
{
	struct agg_ctx *c = vctx;
	json_t *m = json_object_get(json_object_get(r, "metrics"), c->metric);
	const char *id = json_string_value(json_object_get(r, "id"));
	const char *type = json_string_value(json_object_get(r, "type"));
	const char *fl = json_string_value(json_object_get(r, "flavor"));
	const char *key = NULL;

	if (!m || !id || !type)
		return 0;
	if (c->flavor && (!fl || strcmp(fl, c->flavor)))
		return 0;
	if (c->n == VG_API_AGG_MAX_RESOURCES)
		return -E2BIG;
	if (c->n == c->cap) {
		size_t nc = c->cap ? 2 * c->cap : 64;
		struct agg_res *nr = realloc(c->r, nc * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		c->r = nr;
		c->cap = nc;
	}
	if (c->group_by)
		key = json_string_value(json_object_get(r, c->group_by));
	if (!c->kind) {
		const char *ks = json_string_value(json_object_get(m, "kind"));
		const char *u = json_string_value(json_object_get(m, "unit"));
		c->kind = ks && !strcmp(ks, "counter") ? VG_KIND_COUNTER
						       : VG_KIND_GAUGE;
		snprintf(c->raw_unit, sizeof(c->raw_unit), "%s", u ? u : "");
	}
	c->r[c->n].id = strdup(id);
	c->r[c->n].key = key ? strdup(key) : NULL;
	c->r[c->n].rtype = vg_rtype_parse(type);
	if (!c->r[c->n].id || (key && !c->r[c->n].key)) {
		free(c->r[c->n].id);
		free(c->r[c->n].key);
		return -ENOMEM;
	}
	c->n++;
	return 0;
}

static int cmp_res(const void *a, const void *b)
{
	const struct agg_res *x = a, *y = b;
	int k;

	if (!x->key || !y->key)
		k = !!x->key - !!y->key;
	else
		k = strcmp(x->key, y->key);
	return k ? k : strcmp(x->id, y->id);
}

static void free_ctx(struct agg_ctx *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->r[i].id);
		free(c->r[i].key);
	}
	free(c->r);
}

static int same_key(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static const char *const agg_names[] = {"mean", "sum", "min", "max"};

int vg_api_h_aggregates(struct vg_http_req *req, struct vg_http_resp *resp)
{
	struct vg_api *api = req->ctx;
	struct vg_store *store = vg_api_store(api);
	const char *metric = vg_http_param(req, "metric");
	const char *as = vg_http_param(req, "aggregation");
	const char *gb = vg_http_param(req, "group_by");
	const char *gs = vg_http_param(req, "granularity");
	struct vg_resource_filter f;
	struct agg_ctx c = {0};
	struct vg_series s = {0};
	char ts[32], te[32], unit[64];
	int64_t start_ms, end_ms, base, gm;
	uint32_t g, gran = 0;
	size_t npoints = 0;
	int agg = -1, empty, rc;
	double *acc = NULL;
	uint32_t *cnt = NULL;
	json_t *groups;

	if (!metric || !*metric)
		return vg_http_reply_error(resp, 400, "missing parameter 'metric'");
	if (!vg_name_valid(metric))
		return vg_http_reply_error(resp, 400, "bad metric name");
	for (int i = 0; i < 4; i++)
		if (!as || !strcmp(as, agg_names[i]))
			agg = as ? i : AGG_MEAN;
	if (as && !strcmp(as, "average"))
		agg = AGG_MEAN;
	if (agg < 0)
		return vg_http_reply_error(resp, 400,
					   "bad aggregation '%.32s' (one of: mean, "
					   "sum, min, max)",
					   as);
	if (gb && strcmp(gb, "project") && strcmp(gb, "host") &&
	    strcmp(gb, "flavor"))
		return vg_http_reply_error(resp, 400,
					   "bad group_by '%.32s' (one of: project, "
					   "host, flavor)",
					   gb);
	if (vg_api_granularity_param(resp, gs, &g))
		return 0;
	if (vg_api_window_param(req, resp, &start_ms, &end_ms))
		return 0;
	vg_time_format(start_ms, ts, sizeof(ts));
	vg_time_format(end_ms, te, sizeof(te));
	if (vg_api_pick_granularity(start_ms, end_ms, g, VG_API_MAX_POINTS,
				    &gran, &npoints))
		return vg_http_reply_error(resp, 400,
					   "too many points: %zu at %u s "
					   "granularity between %s and %s; the "
					   "limit is %d per request",
					   npoints,
					   gran, ts, te, VG_API_MAX_POINTS);
	if (vg_api_scan_params(req, resp, &f, &c.flavor, &empty))
		return 0;
	if (!f.type) {
		unsigned types = vg_catalog_rtypes(metric);
		for (int t = 1; t <= VG_RT_MAX; t++)
			if (types == 1u << t)
				f.type = vg_rtype_name(t);
	}
	c.metric = metric;
	c.group_by = gb;
	if (!empty) {
		rc = vg_api_scan(api, &f, VG_API_SCAN_MAX, collect, &c);
		if (rc == -E2BIG) {
			free_ctx(&c);
			return vg_http_reply_error(resp, 400,
						   "more than %d resources match: "
						   "narrow with host, project or "
						   "flavor",
						   VG_API_AGG_MAX_RESOURCES);
		}
		if (rc) {
			free_ctx(&c);
			return vg_api_reply_errno(resp, rc, "resources");
		}
	}
	if (c.n && !store) {
		free_ctx(&c);
		return vg_http_reply_error(resp, 503, "no store configured");
	}
	if (c.n)
		qsort(c.r, c.n, sizeof(*c.r), cmp_res);

	/* auto: no finer than the archive that holds start (first series) */
	if (!g) {
		for (size_t i = 0; i < c.n; i++) {
			rc = vg_store_fetch(store, c.r[i].rtype, c.r[i].id, metric,
					    VG_CF_AVERAGE, start_ms, end_ms, 0, 0,
					    &s);
			if (rc == 0 && s.resolution_s > gran)
				gran = s.resolution_s;
			vg_series_free(&s);
			if (rc == 0)
				break;
		}
	}
	gm = (int64_t)gran * 1000;
	base = start_ms / gm * gm;
	npoints = vg_api_points_in(start_ms, end_ms, gran);
	acc = malloc(npoints * sizeof(*acc));
	cnt = malloc(npoints * sizeof(*cnt));
	groups = json_array();
	if (!acc || !cnt || !groups) {
		free(acc);
		free(cnt);
		json_decref(groups);
		free_ctx(&c);
		return vg_http_reply_error(resp, 503, "out of memory");
	}
	for (size_t i = 0; i < c.n;) {
		size_t j = i, nres = 0;
		struct vg_buf b = {0};
		json_t *grp;

		memset(cnt, 0, npoints * sizeof(*cnt));
		for (; j < c.n && same_key(c.r[j].key, c.r[i].key); j++) {
			rc = vg_store_fetch(store, c.r[j].rtype, c.r[j].id, metric,
					    VG_CF_AVERAGE, start_ms, end_ms, gran,
					    0, &s);
			if (rc == -ENOENT || rc == -EINVAL)
				continue; /* no file yet / other archive layout */
			if (rc) {
				/* a daemon down or refusing: 503 naming it */
				if (rc == -EHOSTUNREACH)
					rc = vg_api_reply_unreachable(resp, store, c.r[j].rtype,
								      c.r[j].id, metric,
								      !req->scope_project);
				else if (rc == -EREMOTEIO)
					rc = vg_api_reply_refused(resp, store, c.r[j].rtype,
								  c.r[j].id, metric,
								  !req->scope_project);
				else
					rc = vg_api_reply_errno(resp, rc, "measures");
				free(acc);
				free(cnt);
				json_decref(groups);
				free_ctx(&c);
				return rc;
			}
			nres++;
			for (size_t k = 0; k < s.n; k++) {
				int64_t slot = (s.points[k].time_ms - base) / gm;
				double v = s.points[k].value;
				if (slot < 0 || (size_t)slot >= npoints)
					continue;
				if (!cnt[slot]++) {
					acc[slot] = v;
					continue;
				}
				switch (agg) {
				case AGG_MIN:
					if (v < acc[slot])
						acc[slot] = v;
					break;
				case AGG_MAX:
					if (v > acc[slot])
						acc[slot] = v;
					break;
				default:
					acc[slot] += v;
				}
			}
			vg_series_free(&s);
		}
		vg_buf_append(&b, "[", 1);
		for (size_t k = 0, first = 1; k < npoints; k++) {
			char t[32];
			if (!cnt[k])
				continue;
			vg_iso_time(base + (int64_t)k * gm, t);
			vg_buf_printf(&b, "%s[\"%s\",", first ? "" : ",", t);
			vg_buf_json_number(&b, agg == AGG_MEAN ? acc[k] / cnt[k]
							       : acc[k]);
			vg_buf_append(&b, "]", 1);
			first = 0;
		}
		vg_buf_append(&b, "]", 1);
		{
			char *txt = vg_buf_take(&b, NULL);
			json_t *pts = txt ? json_loads(txt, 0, NULL) : NULL;
			free(txt);
			grp = json_pack("{s:i,s:o}", "resources", (int)nres,
					"points", pts ? pts : json_array());
		}
		if (gb)
			json_object_set_new(grp, gb,
					    c.r[i].key ? json_string(c.r[i].key)
						       : json_null());
		json_array_append_new(groups, grp);
		i = j;
	}
	free(acc);
	free(cnt);
	unit[0] = '\0';
	{
		const struct vg_metric_def *def =
			f.type ? vg_catalog_find(vg_rtype_parse(f.type), metric)
			       : NULL;
		if (def)
			vg_catalog_query_unit(def, unit, sizeof(unit));
		else if (c.kind == VG_KIND_COUNTER && c.raw_unit[0])
			snprintf(unit, sizeof(unit), "%s/s", c.raw_unit);
		else
			snprintf(unit, sizeof(unit), "%s", c.raw_unit);
		if (!c.kind && def)
			c.kind = def->kind;
	}
	free_ctx(&c);
	return vg_http_reply_json(
		resp, 200,
		json_pack("{s:s,s:o,s:s,s:o,s:s,s:s,s:i,s:s,s:o,s:o}", "metric",
			  metric, "type", f.type ? json_string(f.type) : json_null(),
			  "aggregation", agg_names[agg],
			  "group_by", gb ? json_string(gb) : json_null(), "start",
			  ts, "end", te, "granularity", (int)gran, "unit", unit,
			  "kind",
			  c.kind ? json_string(vg_kind_name(c.kind)) : json_null(),
			  "groups", groups));
}

const char *const vg_api_aggregates_params[] = {
	"metric", "aggregation", "type", "host", "project", "flavor",
	"group_by", "start", "end", "granularity", NULL};
