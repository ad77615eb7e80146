/*
 * cli_commands.c — the `vigie` commands: health, resources, show, measures
 * (a table, --sparkline or --json).
 *
 * Design: each command declares its options and help (vg_cli_parse in
 * cli_opts.c; arguments may come in any order), calls the API through
 * vg_cli_fetch* and prints either a table for people (cli_table.c) or the
 * API's JSON (--json) for scripts. `resources` follows the pagination
 * cursor so the output is complete; --json then prints one document of
 * the same shape as a single API page.
 *
 * Invariants: a command prints nothing to c->out when it fails; its exit
 * code is the one vg_cli_get returned, or VG_EXIT_USAGE for bad arguments.
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "query/cli/cli.h"
#include "vigie/clock.h"

/* ---- health ------------------------------------------------------------- */

static const struct vg_cli_spec health_spec = {
	"health",
	NULL,
	0,
	"health [--json]\n",
	"Ask the API whether it is up (GET /v1/health).\n",
};

int vg_cli_cmd_health(struct vg_cli *c, int argc, char **argv)
{
	int json, rc;
	json_t *j;

	if ((rc = vg_cli_parse(c, &health_spec, NULL, 0, argc, argv,
			       &json)) >= 0)
		return rc;
	rc = vg_cli_fetch(c, strdup("/v1/health"), json, &j);
	if (rc || !j)
		return rc;
	char b1[64], b2[64], b3[64];
	const char *st = vg_cli_field(j, "status", b1, sizeof(b1)),
		   *ver = vg_cli_field(j, "version", b2, sizeof(b2)),
		   *t = vg_cli_field(j, "time", b3, sizeof(b3));
	vg_cli_line(c->out, "%s (vigie %s at %s, %s)", st ? st : "?",
		    ver ? ver : "?", c->api, t ? t : "?");
	json_decref(j);
	return VG_EXIT_OK;
}

/* ---- resources ------------------------------------------------------------- */

static const struct vg_cli_spec resources_spec = {
	"resources",
	NULL,
	0,
	"resources [--type T] [--host H] [--project P] [--name N]\n"
	"       [--state active|ended] [--parent ID] [--metadata KEY[=VALUE]]\n"
	"       [--limit N] [--ids] [--json]\n",
	"List resources (all pages). Types: instance, disk, nic, host, host_disk, host_nic.\n"
	"--limit stops after N resources; --json prints {\"resources\":[...],\"next\":null}.\n"
	"NAME and PROJECT show the instance's display name and its project's name\n"
	"where the agent sent them (--ids: libvirt's name and the project id);\n"
	"--project and --name accept either.\n",
};

int vg_cli_cmd_resources(struct vg_cli *c, int argc, char **argv)
{
	const char *type = NULL, *host = NULL, *project = NULL, *name = NULL,
		   *state = NULL, *parent = NULL, *meta = NULL, *lim = NULL;
	int ids = 0;
	const struct vg_cli_opt opts[] = {
		VG_CLI_VAL("type", &type),
		VG_CLI_VAL("host", &host),
		VG_CLI_VAL("project", &project),
		VG_CLI_VAL("name", &name),
		VG_CLI_VAL("state", &state),
		VG_CLI_VAL("parent", &parent),
		VG_CLI_VAL("limit", &lim),
		VG_CLI_VAL("metadata", &meta),
		VG_CLI_FLAG("ids", &ids),
	};
	char pbuf[256], mbuf[600], rbuf[1024];
	long limit = 0; /* 0 = all */
	int json, rc;
	char *end;
	json_t *all;

	if ((rc = vg_cli_parse(c, &resources_spec, opts, 9, argc, argv,
			       &json)) >= 0)
		return rc;
	if (lim && ((limit = strtol(lim, &end, 10)) < 1 || *end)) {
		fprintf(c->err, "%s resources: --limit wants a number >= 1\n",
			c->prog);
		return VG_EXIT_USAGE;
	}
	if ((rc = vg_cli_resolve_project(c, "resources", project, pbuf, sizeof(pbuf),
					 &project)))
		return rc;
	if ((rc = vg_cli_resolve_resource(c, "resources", parent, rbuf,
					  sizeof(rbuf), &parent)))
		return rc;
	const char *kv[] = {"type", type, "host", host, "project", project,
			    "name", name, "state", state, "parent", parent,
			    "metadata", meta, NULL};
	static const struct vg_cli_col cols[] = {
		{"ID", "id", VG_ALIGN_LEFT},
		{"TYPE", "type", VG_ALIGN_LEFT},
		{"NAME", "name", VG_ALIGN_LEFT},
		{"HOST", "host", VG_ALIGN_LEFT},
		{"PROJECT", "project", VG_ALIGN_LEFT},
		{"STATE", "state", VG_ALIGN_LEFT},
		{"LAST SEEN", "last_seen", VG_ALIGN_LEFT},
	};
	rc = vg_cli_fetch_all(c, "/v1/resources", kv, "resources", limit, 0,
			      &all);
	if (rc || !all)
		return rc;
	if (name && !meta && json_array_size(all) == 0) {
		/* no libvirt name N: a display name N? */
		snprintf(mbuf, sizeof(mbuf), "display_name=%s", name);
		kv[7] = NULL;
		kv[13] = mbuf;
		json_decref(all);
		rc = vg_cli_fetch_all(c, "/v1/resources", kv, "resources", limit,
				      0, &all);
		if (rc || !all)
			return rc;
	}
	if (json) {
		json_t *doc = json_pack("{s:o,s:n}", "resources", all, "next");
		vg_cli_print_json(c, doc);
		json_decref(doc);
		return VG_EXIT_OK;
	}
	if (!ids)
		vg_cli_known_names(all);
	struct vg_table *t = vg_cli_rows_table(all, cols, 7);
	vg_table_print_free(t, c->out);
	json_decref(all);
	return VG_EXIT_OK;
}

/* ---- show ------------------------------------------------------------------- */

static const struct vg_cli_spec show_spec = {
	"show",
	"one RESOURCE id",
	1,
	"show RESOURCE [--ids] [--json]\n",
	"One resource: identity, attributes, its metrics with their last raw values,\n"
	"and its children (disks, NICs). Name and Project show the display name and\n"
	"the project's name where the agent sent them, the ids beside them in\n"
	"parentheses (--ids: the raw values alone).\n",
};

int vg_cli_cmd_show(struct vg_cli *c, int argc, char **argv)
{
	static const struct {
		const char *key, *label;
	} fields[] = {
		{"id", "ID"},
		{"type", "Type"},
		{"name", "Name"},
		{"host", "Host"},
		{"parent", "Parent"},
		{"project", "Project"},
		{"user", "User"},
		{"flavor", "Flavor"},
		{"state", "State"},
		{"first_seen", "First seen"},
		{"last_seen", "Last seen"},
		{"ended_at", "Ended at"},
	};
	static const struct vg_cli_col mcols[] = {
		{"METRIC", NULL, VG_ALIGN_LEFT},
		{"UNIT", "unit", VG_ALIGN_LEFT},
		{"KIND", "kind", VG_ALIGN_LEFT},
		{"LAST VALUE", "last_value", VG_ALIGN_RIGHT},
		{"LAST TIME", "last_time", VG_ALIGN_LEFT},
	};
	static const struct vg_cli_col kcols[] = {
		{"ID", "id", VG_ALIGN_LEFT},
		{"TYPE", "type", VG_ALIGN_LEFT},
		{"NAME", "name", VG_ALIGN_LEFT},
		{"STATE", "state", VG_ALIGN_LEFT},
	};
	int json, rc, ids = 0;
	const struct vg_cli_opt opts[] = {
		VG_CLI_FLAG("ids", &ids),
	};
	json_t *j, *kids = NULL;
	char buf[128], known[600];

	if ((rc = vg_cli_parse(c, &show_spec, opts, 1, argc, argv, &json)) >= 0)
		return rc;
	const char *id;
	char rbuf[1024];
	if ((rc = vg_cli_resolve_resource(c, "show", argv[optind], rbuf,
					  sizeof(rbuf), &id)))
		return rc;
	rc = vg_cli_fetch_resource(c, id, "", json, &j);
	if (rc || !j)
		return rc;
	/* children: the resources whose parent is this one */
	const char *kv[] = {"parent", id, "limit", "1000", NULL};
	rc = vg_cli_fetch(c, vg_cli_path("/v1/resources", kv), 0, &kids);
	if (rc) {
		json_decref(j);
		return rc;
	}

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *v = vg_cli_field(j, fields[i].key, buf, sizeof(buf));
		/* the names people know, the raw value beside */
		const char *attr = !strcmp(fields[i].key, "name")      ? "display_name"
				   : !strcmp(fields[i].key, "project") ? "project_name"
								       : NULL;
		const char *nm = attr && !ids ? vg_cli_str(json_object_get(j, "attributes"), attr)
					      : NULL;
		if (nm && *nm && v && strcmp(nm, v)) {
			snprintf(known, sizeof(known), "%s (%s)", nm, v);
			v = known;
		}
		vg_cli_line(c->out, "%-12s%s", fields[i].label, v ? v : "-");
	}
	json_t *attrs = json_object_get(j, "attributes");
	if (json_object_size(attrs)) {
		const char *k;
		json_t *v;
		fprintf(c->out, "Attributes\n");
		json_object_foreach(attrs, k, v) {
			const char *s = json_string_value(v);
			vg_cli_line(c->out, "  %s = %s", k, s ? s : "-");
		}
	}

	json_t *metrics = json_object_get(j, "metrics");
	struct vg_table *t = vg_cli_members_table(metrics, mcols, 5);
	fprintf(c->out, "\nMetrics (%zu)\n", json_object_size(metrics));
	if (json_object_size(metrics))
		vg_table_print_free(t, c->out);

	json_t *kl = json_object_get(kids, "resources");
	if (json_array_size(kl)) {
		t = vg_cli_rows_table(kl, kcols, 4);
		fprintf(c->out, "\nChildren (%zu)\n", json_array_size(kl));
		vg_table_print_free(t, c->out);
	}
	json_decref(kids);
	json_decref(j);
	return VG_EXIT_OK;
}

/* ---- measures ------------------------------------------------------------------ */

/* `measures --sparkline`: the range as one line of blocks, placed by time
 * (a missing point is a space), resampled to the terminal's width. */
static int print_sparkline(struct vg_cli *c, json_t *j, const char *res,
			   const char *metric)
{
	json_t *pts = json_object_get(j, "points"), *p;
	const char *unit = vg_cli_str(j, "unit");
	const char *cols = getenv("COLUMNS");
	long g = (long)json_integer_value(json_object_get(j, "granularity"));
	int64_t t0 = 0, t1 = 0, t;
	size_t n, i, width = cols && atoi(cols) > 10 ? (size_t)atoi(cols) : 80;
	double lo = NAN, hi = NAN, sum = 0, last = NAN, *v;
	char lbl[256], *line;

	if (g < 1)
		g = 60;
	vg_time_parse(json_string_value(json_object_get(j, "start")), 0, &t0);
	vg_time_parse(json_string_value(json_object_get(j, "end")), 0, &t1);
	t0 = t0 / (g * 1000) * (g * 1000);
	n = t1 >= t0 ? (size_t)((t1 - t0) / (g * 1000)) + 1 : 1;
	if (n > 20000)
		n = 20000;
	v = malloc(n * sizeof(*v));
	line = malloc(3 * width + 1);
	if (!v || !line) {
		free(v);
		free(line);
		fprintf(c->err, "%s: out of memory\n", c->prog);
		return VG_EXIT_API;
	}
	for (i = 0; i < n; i++)
		v[i] = NAN;
	json_array_foreach(pts, i, p) {
		double x = json_number_value(json_array_get(p, 1));
		if (vg_time_parse(json_string_value(json_array_get(p, 0)), 0, &t) ||
		    !json_is_number(json_array_get(p, 1)) || t < t0)
			continue;
		size_t k = (size_t)((t - t0) / (g * 1000));
		if (k < n)
			v[k] = x;
		if (isnan(lo) || x < lo)
			lo = x;
		if (isnan(hi) || x > hi)
			hi = x;
		sum += x;
		last = x;
	}
	vg_cli_sparkline(v, n, width, line, 3 * width + 1);
	vg_cli_line(c->out, "%s %s, %s .. %s", res,
		    vg_cli_unit_label(metric, unit, lbl, sizeof(lbl)),
		    vg_cli_str(j, "start"), vg_cli_str(j, "end"));
	fprintf(c->out, "%s\n", line);
	if (json_array_size(pts))
		vg_cli_summary_line(c->out, lo, sum, hi, last, json_array_size(pts));
	else
		vg_cli_no_points(c, j);
	free(v);
	free(line);
	return VG_EXIT_OK;
}

static const struct vg_cli_spec measures_spec = {
	"measures",
	"RESOURCE and METRIC",
	2,
	"measures RESOURCE METRIC [--start T] [--end T]\n"
	"       [--granularity 60|300|3600|auto] [--aggregation mean|min|max]\n"
	"       [--sparkline | --json]\n",
	"Points of one metric. Times: ISO 8601 (2026-11-26T06:00:00Z), epoch seconds,\n"
	"or relative (-3h, -15m, now); default the hour before --end (now).\n"
	"Counters come out as rates per second. --sparkline draws one line of\n"
	"Unicode blocks over the range (gaps as spaces) with min, mean, max, last.\n",
};

int vg_cli_cmd_measures(struct vg_cli *c, int argc, char **argv)
{
	const char *start = NULL, *end = NULL, *gran = NULL, *agg = NULL;
	int json, rc, spark = 0;
	const struct vg_cli_opt opts[] = {
		VG_CLI_VAL("start", &start),
		VG_CLI_VAL("end", &end),
		VG_CLI_VAL("granularity", &gran),
		VG_CLI_VAL("aggregation", &agg),
		VG_CLI_FLAG("sparkline", &spark),
	};
	json_t *j;

	if ((rc = vg_cli_parse(c, &measures_spec, opts, 5, argc, argv,
			       &json)) >= 0)
		return rc;
	if (spark && json) {
		fprintf(c->err, "%s measures: --sparkline and --json exclude each "
				"other\n",
			c->prog);
		return VG_EXIT_USAGE;
	}
	if (gran && strcmp(gran, "60") && strcmp(gran, "300") &&
	    strcmp(gran, "3600") && strcmp(gran, "auto")) {
		fprintf(c->err, "%s measures: --granularity is one of 60, 300, "
				"3600, auto\n",
			c->prog);
		return VG_EXIT_USAGE;
	}
	if (agg && strcmp(agg, "mean") && strcmp(agg, "min") &&
	    strcmp(agg, "max")) {
		fprintf(c->err, "%s measures: --aggregation is one of mean, "
				"min, max\n",
			c->prog);
		return VG_EXIT_USAGE;
	}
	char rbuf[1024];
	const char *res;
	if ((rc = vg_cli_resolve_resource(c, "measures", argv[optind], rbuf,
					  sizeof(rbuf), &res)))
		return rc;
	const char *kv[] = {"resource", res, "metric",
			    argv[optind + 1], "start", start, "end", end,
			    "granularity", gran, "aggregation", agg, NULL};
	rc = vg_cli_fetch(c, vg_cli_path("/v1/measures", kv), json, &j);
	if (rc || !j)
		return rc;
	if (spark) {
		rc = print_sparkline(c, j, argv[optind], argv[optind + 1]);
		json_decref(j);
		return rc;
	}
	static const char *const value[] = {"VALUE"};
	struct vg_table *t = vg_cli_time_table(value, 1, vg_cli_str(j, "unit"),
					       NULL);
	json_t *pts = json_object_get(j, "points"), *p;
	size_t i;
	json_array_foreach(pts, i, p) {
		json_t *v = json_array_get(p, 1);
		if (t)
			vg_cli_time_row(t, json_string_value(json_array_get(p, 0)),
					&v, 1);
	}
	vg_table_print(t, c->out);
	if (!json_array_size(pts))
		vg_cli_no_points(c, j);
	vg_table_free(t);
	json_decref(j);
	return VG_EXIT_OK;
}
