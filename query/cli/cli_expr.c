/*
 * cli_expr.c — `vigie query EXPR`: evaluate an expression across series
 * (GET /v1/query, docs/api.md "Expressions") and draw each resulting
 * series as one sparkline line with its labels and min/mean/max/last, or
 * print the answer as JSON.
 *
 * Design: the expression goes as the `expr` parameter (percent-encoded by
 * vg_cli_path); each series' points are placed by time on the answer's
 * grid (a missing point is a space) and resampled to the terminal's width
 * by vg_cli_sparkline. Server errors (with the position in the
 * expression) are printed by vg_cli_fetch; this adds nothing to them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/cli/cli.h"
#include "vigie/clock.h"

static const struct vg_cli_spec query_spec = {
	"query",
	"one EXPR",
	1,
	"query EXPR [--start T] [--end T] [--granularity 60|300|3600|auto] [--json]\n",
	"Evaluate an expression across series (docs/api.md, \"Expressions\"),\n"
	"e.g. 'mean(cpu.util{type=\"instance\"}, by=project)' or\n"
	"'top(cpu.util, 5, max)'; each resulting series is drawn as one line of\n"
	"Unicode blocks over the range (gaps as spaces) with min, mean, max, last.\n",
};

/* One series as "KEY {labels}" then a sparkline and its summary. */
static void draw(struct vg_cli *c, json_t *s, int64_t t0, size_t n, long g,
		 size_t width)
{
	json_t *pts = json_object_get(s, "points"), *p;
	double *v = malloc((n ? n : 1) * sizeof(*v));
	char *line = malloc(3 * width + 1), *labels;
	double lo = NAN, hi = NAN, sum = 0, last = NAN;
	size_t i;

	if (!v || !line) {
		free(v);
		free(line);
		return;
	}
	for (i = 0; i < n; i++)
		v[i] = NAN;
	json_array_foreach(pts, i, p) {
		double x = json_number_value(json_array_get(p, 1));
		int64_t t;
		if (vg_time_parse(json_string_value(json_array_get(p, 0)), 0, &t) ||
		    t < t0)
			continue;
		size_t k = (size_t)((t - t0) / (g * 1000));
		if (k < n)
			v[k] = x;
		lo = isnan(lo) || x < lo ? x : lo;
		hi = isnan(hi) || x > hi ? x : hi;
		sum += x;
		last = x;
	}
	labels = json_dumps(json_object_get(s, "labels"), JSON_COMPACT | JSON_SORT_KEYS);
	vg_cli_line(c->out, "%s %s", *vg_cli_str(s, "key") ? vg_cli_str(s, "key") : "(all)",
		    labels ? labels : "{}");
	free(labels);
	vg_cli_sparkline(v, n, width, line, 3 * width + 1);
	fprintf(c->out, "%s\n", line);
	if (json_array_size(pts))
		vg_cli_summary_line(c->out, lo, sum, hi, last, json_array_size(pts));
	else
		fprintf(c->out, "(no points)\n");
	free(v);
	free(line);
}

int vg_cli_cmd_query(struct vg_cli *c, int argc, char **argv)
{
	const char *start = NULL, *end = NULL, *gran = NULL;
	const struct vg_cli_opt opts[] = {
		VG_CLI_VAL("start", &start),
		VG_CLI_VAL("end", &end),
		VG_CLI_VAL("granularity", &gran),
	};
	const char *cols = getenv("COLUMNS");
	size_t width = cols && atoi(cols) > 10 ? (size_t)atoi(cols) : 80, n, i;
	int64_t t0 = 0, t1 = 0;
	int json, rc;
	long g;
	json_t *j, *s;

	if ((rc = vg_cli_parse(c, &query_spec, opts, 3, argc, argv, &json)) >= 0)
		return rc;
	const char *kv[] = {"expr", argv[optind], "start", start, "end", end,
			    "granularity", gran, NULL};
	rc = vg_cli_fetch(c, vg_cli_path("/v1/query", kv), json, &j);
	if (rc || !j)
		return rc;
	if (json_object_get(j, "scalar")) {
		char b[32];
		const char *v = vg_cli_num(json_object_get(j, "scalar"), b,
					   sizeof(b));
		fprintf(c->out, "%s\n", v ? v : "null");
		json_decref(j);
		return VG_EXIT_OK;
	}
	g = (long)json_integer_value(json_object_get(j, "granularity"));
	if (g < 1)
		g = 60;
	vg_time_parse(vg_cli_str(j, "start"), 0, &t0);
	vg_time_parse(vg_cli_str(j, "end"), 0, &t1);
	t0 = t0 / (g * 1000) * (g * 1000);
	n = t1 >= t0 ? (size_t)((t1 - t0) / (g * 1000)) + 1 : 1;
	if (n > 20000)
		n = 20000;
	vg_cli_line(c->out, "%s, %s .. %s, every %ld s", argv[optind],
		    vg_cli_str(j, "start"), vg_cli_str(j, "end"), g);
	json_array_foreach(json_object_get(j, "series"), i, s)
		draw(c, s, t0, n, g, width);
	if (!json_array_size(json_object_get(j, "series")))
		vg_cli_line(c->err, "%s: no series matched", c->prog);
	json_decref(j);
	return VG_EXIT_OK;
}
