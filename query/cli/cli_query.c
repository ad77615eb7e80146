/*
 * cli_query.c — the `vigie` commands over the query endpoints:
 * stats (GET /v1/statistics), latest (GET /v1/resources/{id}/latest), top
 * (GET /v1/top, a live view refreshed in place), aggregate
 * (GET /v1/aggregates) and graph (GET /v1/graph, written to a PNG file);
 * plus the sparkline that `measures --sparkline` prints.
 *
 * Design: as the other commands (cli_commands.c) — each declares its
 * options for vg_cli_parse (`graph`, whose --legend repeats, still runs
 * getopt_long itself), asks the API through vg_cli_fetch/vg_cli_request
 * and prints a table for people or the API's JSON (--json). `top` redraws
 * in place with ANSI escapes (cursor home, clear to end of line/screen)
 * only when stdout is a terminal or --count asks for several rounds;
 * otherwise, and with --once, it prints one table and exits, so scripts
 * and tests see plain text. Ctrl-C ends the live view with exit 0.
 *
 * Invariants: a failing command prints nothing on stdout and one line on
 * stderr; `graph` writes its file only once the whole PNG is in hand
 * (through a temporary file renamed into place).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "query/cli/cli.h"

static int one_of(const char *v, const char *const *ok)
{
	for (; *ok; ok++)
		if (!strcmp(v, *ok))
			return 1;
	return 0;
}

/* ---- sparkline ---------------------------------------------------------------- */

size_t vg_cli_sparkline(const double *v, size_t n, size_t width, char *out,
			size_t outlen)
{
	static const char *const bars[8] = {"\u2581", "\u2582", "\u2583",
					    "\u2584", "\u2585", "\u2586",
					    "\u2587", "\u2588"};
	double lo = INFINITY, hi = -INFINITY;
	size_t cols = n < width ? n : width, o = 0;

	if (!outlen)
		return 0;
	out[0] = '\0';
	if (!n || !width)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (isfinite(v[i])) {
			if (v[i] < lo)
				lo = v[i];
			if (v[i] > hi)
				hi = v[i];
		}
	{
		/* a spread the summary line cannot show (min and max print
		 * the same, e.g. 49.9998 and 50.0002 both "50") is drawn flat:
		 * scaled to full height it would show noise as swings the
		 * numbers beside it deny */
		char bl[32], bh[32];
		if (isfinite(lo) && isfinite(hi) &&
		    !strcmp(vg_cli_format_value(lo, bl, sizeof(bl)),
			    vg_cli_format_value(hi, bh, sizeof(bh))))
			hi = lo;
	}
	for (size_t col = 0; col < cols; col++) {
		size_t a = col * n / cols, b = (col + 1) * n / cols, k = 0;
		double sum = 0;

		for (size_t i = a; i < b; i++)
			if (isfinite(v[i])) {
				sum += v[i];
				k++;
			}
		if (o + 4 > outlen)
			break;
		if (!k) {
			out[o++] = ' ';
			continue;
		}
		double m = sum / (double)k;
		int level = hi > lo ? (int)((m - lo) / (hi - lo) * 7.0 + 0.5) : 3;
		if (level < 0)
			level = 0;
		if (level > 7)
			level = 7;
		memcpy(out + o, bars[level], 3);
		o += 3;
	}
	out[o] = '\0';
	return cols;
}

void vg_cli_summary_line(FILE *out, double lo, double sum, double hi, double last,
			 size_t npoints)
{
	char b1[32], b2[32], b3[32], b4[32];

	fprintf(out, "min %s  mean %s  max %s  last %s  (%zu points)\n",
		vg_cli_format_value(lo, b1, sizeof(b1)),
		vg_cli_format_value(sum / (double)npoints, b2, sizeof(b2)),
		vg_cli_format_value(hi, b3, sizeof(b3)),
		vg_cli_format_value(last, b4, sizeof(b4)), npoints);
}

/* ---- stats ------------------------------------------------------------------------ */

static const struct vg_cli_spec stats_spec = {
	"stats",
	"RESOURCE and METRIC",
	2,
	"stats RESOURCE METRIC [--period SECONDS] [--start T] [--end T]\n"
	"       [--granularity 60|300|3600|auto] [--statistics LIST] [--json]\n",
	"CloudWatch-style statistics per period (default 300 s, a multiple of the\n"
	"granularity): SampleCount, Sum, Average, Minimum, Maximum and percentiles\n"
	"(p50, p99, p99.9) over the finer points of each period. LIST is comma-\n"
	"separated (default the first five). Times as for 'measures'.\n",
};

int vg_cli_cmd_stats(struct vg_cli *c, int argc, char **argv)
{
	static const char *const grans[] = {"60", "300", "3600", "auto", NULL};
	const char *start = NULL, *end = NULL, *period = NULL, *gran = NULL,
		   *stats = NULL;
	const struct vg_cli_opt opts[] = {
		VG_CLI_VAL("start", &start),
		VG_CLI_VAL("end", &end),
		VG_CLI_VAL("period", &period),
		VG_CLI_VAL("granularity", &gran),
		VG_CLI_VAL("statistics", &stats),
	};
	int json, rc;
	json_t *j;

	if ((rc = vg_cli_parse(c, &stats_spec, opts, 5, argc, argv,
			       &json)) >= 0)
		return rc;
	if (gran && !one_of(gran, grans)) {
		fprintf(c->err, "%s stats: --granularity is one of 60, 300, 3600, "
				"auto\n",
			c->prog);
		return VG_EXIT_USAGE;
	}
	char rbuf[1024];
	const char *res;
	if ((rc = vg_cli_resolve_resource(c, "stats", argv[optind], rbuf,
					  sizeof(rbuf), &res)))
		return rc;
	const char *kv[] = {"resource", res, "metric", argv[optind + 1],
			    "start", start, "end", end, "period", period,
			    "granularity", gran, "statistics", stats, NULL};
	rc = vg_cli_fetch(c, vg_cli_path("/v1/statistics", kv), json, &j);
	if (rc || !j)
		return rc;
	/* one column per statistic, the count without the metric's unit */
	json_t *names = json_object_get(j, "statistics"), *dps, *dp, *nm;
	size_t n = json_array_size(names), i, k;
	const char **name = calloc(n + 1, sizeof(*name));
	json_t **v = calloc(n + 1, sizeof(*v));
	struct vg_table *t = NULL;

	json_array_foreach(names, k, nm) {
		if (name)
			name[k] = json_string_value(nm) ? json_string_value(nm) : "";
	}
	if (name && v)
		t = vg_cli_time_table(name, n, vg_cli_str(j, "unit"),
				      "SampleCount");
	dps = json_object_get(j, "datapoints");
	json_array_foreach(dps, i, dp) {
		for (k = 0; t && k < n; k++)
			v[k] = json_object_get(dp, name[k]);
		if (t)
			vg_cli_time_row(t, vg_cli_str(dp, "timestamp"), v, n);
	}
	vg_table_print(t, c->out);
	if (!json_array_size(dps))
		vg_cli_no_points(c, j);
	vg_table_free(t);
	free(name);
	free(v);
	json_decref(j);
	return VG_EXIT_OK;
}

/* ---- latest ------------------------------------------------------------------------ */

static const struct vg_cli_spec latest_spec = {
	"latest",
	"one RESOURCE id",
	1,
	"latest RESOURCE [--json]\n",
	"The newest value of every metric of a resource: "
	"a gauge's last sample, a\ncounter's current rate per second "
	"(its running total with --json).\n",
};

int vg_cli_cmd_latest(struct vg_cli *c, int argc, char **argv)
{
	static const struct vg_cli_col cols[] = {
		{"METRIC", NULL, VG_ALIGN_LEFT},
		{"VALUE", "value", VG_ALIGN_RIGHT},
		{"UNIT", "unit", VG_ALIGN_LEFT},
		{"KIND", "kind", VG_ALIGN_LEFT},
		{"TIME", "time", VG_ALIGN_LEFT},
	};
	int json, rc;
	json_t *j;

	if ((rc = vg_cli_parse(c, &latest_spec, NULL, 0, argc, argv,
			       &json)) >= 0)
		return rc;
	char rbuf[1024];
	const char *res;
	if ((rc = vg_cli_resolve_resource(c, "latest", argv[optind], rbuf,
					  sizeof(rbuf), &res)))
		return rc;
	rc = vg_cli_fetch_resource(c, res, "/latest", json, &j);
	if (rc || !j)
		return rc;
	struct vg_table *t =
		vg_cli_members_table(json_object_get(j, "metrics"), cols, 5);
	vg_table_print_free(t, c->out);
	json_decref(j);
	return VG_EXIT_OK;
}

/* ---- top ------------------------------------------------------------------------------ */

static volatile sig_atomic_t g_top_stop;

static void on_sigint(int sig)
{
	(void)sig;
	g_top_stop = 1;
}

/* A bar of width cells for v in [0, max]. */
static void bar(double v, double max, int width, char *out, size_t len)
{
	int cells = max > 0 && v > 0 ? (int)(v / max * width + 0.5) : 0;
	size_t o = 0;

	if (cells > width)
		cells = width;
	for (int i = 0; i < cells && o + 4 < len; i++) {
		memcpy(out + o, "\u2588", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* Print one round of top into f; live: ANSI in-place redraw. */
static void top_print(struct vg_cli *c, json_t *j, int live, const char *now,
		      int ids)
{
	json_t *list = json_object_get(j, "resources"), *r;
	const char *unit = vg_cli_str(j, "unit"), *metric = vg_cli_str(j, "metric"),
		   *type = vg_cli_str(j, "type");
	char vh[96];
	double max = 0;
	size_t i;

	json_array_foreach(list, i, r) {
		double v = json_number_value(json_object_get(r, "value"));
		if (v > max)
			max = v;
	}
	if (!ids)
		vg_cli_known_names(list);
	vg_cli_unit_label(metric ? metric : "VALUE", unit, vh, sizeof(vh));
	static const char *const h0[] = {"ID", "NAME", "HOST", "PROJECT"};
	const char *hdr[6] = {h0[0], h0[1], h0[2], h0[3], vh, "BAR"};
	static const int al[] = {VG_ALIGN_LEFT, VG_ALIGN_LEFT, VG_ALIGN_LEFT,
				 VG_ALIGN_LEFT, VG_ALIGN_RIGHT, VG_ALIGN_LEFT};
	struct vg_table *t = vg_table_new(6, hdr, al);
	json_array_foreach(list, i, r) {
		char vb[64], bb[128];
		bar(json_number_value(json_object_get(r, "value")), max, 20, bb,
		    sizeof(bb));
		const char *row[6] = {
			vg_cli_str(r, "id"), vg_cli_str(r, "name"),
			vg_cli_str(r, "host"), vg_cli_str(r, "project"),
			vg_cli_num(json_object_get(r, "value"), vb, sizeof(vb)),
			bb[0] ? bb : " "};
		if (t)
			vg_table_add(t, row);
	}
	if (vg_cli_output() == VG_OUT_CSV) { /* the table alone */
		vg_table_print_free(t, c->out);
		return;
	}
	if (live)
		fputs("\033[H", c->out);
	/* the API's echo of metric and type: shown safe, like the cells */
	char *head = NULL;
	if (asprintf(&head, "vigie top: %s, %zu of %lld%s%s at %s", metric,
		     json_array_size(list),
		     (long long)json_integer_value(json_object_get(j, "matched")),
		     type ? " " : "", type ? type : "", now) < 0)
		head = NULL;
	vg_cli_put_safe(c->out, head ? head : "vigie top");
	free(head);
	fputs(live ? " (Ctrl-C quits)\033[K\n" : "\n", c->out);
	if (live) {
		/* print the table line by line, clearing each line's rest */
		char *buf = NULL;
		size_t blen = 0;
		FILE *mem = open_memstream(&buf, &blen);
		if (mem) {
			vg_table_print(t, mem);
			fclose(mem);
			for (char *line = strtok(buf, "\n"); line;
			     line = strtok(NULL, "\n"))
				fprintf(c->out, "%s\033[K\n", line);
			free(buf);
		}
		fputs("\033[J", c->out);
	} else {
		vg_table_print(t, c->out);
	}
	vg_table_free(t);
	fflush(c->out);
}

static const struct vg_cli_spec top_spec = {
	"top",
	NULL,
	0,
	"top [--metric M] [--type T] [--host H] [--project P] [--flavor F]\n"
	"       [--limit N] [--asc] [--interval S] [--once | --count N] [--ids] [--json]\n",
	"The resources with the highest current value of a metric (default cpu.util;\n"
	"counters by their rate per second), refreshed in place every --interval\n"
	"seconds (default 2) until Ctrl-C. --once prints one table and exits (also\n"
	"the default when stdout is not a terminal); --count N refreshes N times.\n"
	"NAME and PROJECT are the display and project names the agent sent, if any\n"
	"(--ids: libvirt's name and the project id); --project accepts either.\n",
};

int vg_cli_cmd_top(struct vg_cli *c, int argc, char **argv)
{
	const char *metric = "cpu.util", *type = NULL, *host = NULL,
		   *project = NULL, *flavor = NULL, *limit = "10", *ival = NULL,
		   *cnt = NULL;
	int json, rc, once = 0, asc = 0, live, ids = 0;
	char pbuf[256];
	const struct vg_cli_opt opts[] = {
		VG_CLI_VAL("metric", &metric),
		VG_CLI_VAL("type", &type),
		VG_CLI_VAL("host", &host),
		VG_CLI_VAL("project", &project),
		VG_CLI_VAL("flavor", &flavor),
		VG_CLI_VAL("limit", &limit),
		VG_CLI_FLAG("asc", &asc),
		VG_CLI_VAL("interval", &ival),
		VG_CLI_FLAG("once", &once),
		VG_CLI_VAL("count", &cnt),
		VG_CLI_FLAG("ids", &ids),
	};
	double interval = 2;
	long count = 0;
	char *end;
	struct sigaction sa, old_int, old_term;

	if ((rc = vg_cli_parse(c, &top_spec, opts, 11, argc, argv,
			       &json)) >= 0)
		return rc;
	rc = VG_EXIT_OK;
	if (ival && ((interval = strtod(ival, &end)), *end ||
							      !(interval >= 0.2) || interval > 3600)) {
		fprintf(c->err, "%s top: --interval wants seconds between 0.2 "
				"and 3600\n",
			c->prog);
		return VG_EXIT_USAGE;
	}
	if (cnt && ((count = strtol(cnt, &end, 10)) < 1 || *end)) {
		fprintf(c->err, "%s top: --count wants a number >= 1\n", c->prog);
		return VG_EXIT_USAGE;
	}
	if (once && count) {
		fprintf(c->err, "%s top: --once and --count exclude each other\n",
			c->prog);
		return VG_EXIT_USAGE;
	}
	if ((rc = vg_cli_resolve_project(c, "top", project, pbuf, sizeof(pbuf),
					 &project)))
		return rc;
	live = !once && !json && vg_cli_output() != VG_OUT_CSV && (count > 1 || (!count && isatty(fileno(c->out))));
	if (!live && !count)
		count = 1;
	const char *kv[] = {"metric", metric, "type", type, "host", host,
			    "project", project, "flavor", flavor, "limit", limit,
			    "order", asc ? "asc" : NULL, NULL};
	char *path = vg_cli_path("/v1/top", kv);
	if (!path)
		return VG_EXIT_API;
	g_top_stop = 0;
	if (live) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_sigint;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, &old_int);
		sigaction(SIGTERM, &sa, &old_term);
		fputs("\033[?25l\033[2J", c->out); /* hide cursor, clear */
	}
	for (long round = 0; !g_top_stop && (!count || round < count); round++) {
		json_t *j;
		char now[32];
		time_t tt = time(NULL);
		struct tm tm;

		if (round) {
			/* sleep in slices so Ctrl-C is prompt */
			for (double s = 0; s < interval && !g_top_stop; s += 0.1) {
				struct timespec ts = {0, 100 * 1000 * 1000};
				nanosleep(&ts, NULL);
			}
			if (g_top_stop)
				break;
		}
		rc = vg_cli_get(c, path, &j);
		if (rc)
			break;
		gmtime_r(&tt, &tm);
		strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (json)
			vg_cli_print_json(c, j);
		else
			top_print(c, j, live, now, ids);
		json_decref(j);
	}
	free(path);
	if (live) {
		fputs("\033[?25h", c->out); /* show the cursor again */
		fflush(c->out);
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
	}
	return rc;
}

/* ---- aggregate -------------------------------------------------------------------------- */

/* Project groups named by look-up, at most this many (one request each). */
#define AGG_NAMES_MAX 64

static const struct vg_cli_spec aggregate_spec = {
	"aggregate",
	"one METRIC",
	1,
	"aggregate METRIC [--aggregation mean|sum|min|max] [--type T]\n"
	"       [--host H] [--project P] [--flavor F] [--group-by project|host|flavor]\n"
	"       [--start T] [--end T] [--granularity 60|300|3600|auto] [--ids] [--json]\n",
	"One metric combined across every matching resource, per time slot; one\n"
	"column per group. Without --type: the type the catalogue defines METRIC\n"
	"for (hosts for host.*), every type for another metric. Grouped by\n"
	"project, a column is named by the project's name where the agent sent it\n"
	"(--ids: the project id); --project takes a project id or name.\n",
};

int vg_cli_cmd_aggregate(struct vg_cli *c, int argc, char **argv)
{
	static const char *const aggs[] = {"mean", "sum", "min", "max", NULL};
	static const char *const gbs[] = {"project", "host", "flavor", NULL};
	const char *agg = NULL, *type = NULL, *host = NULL, *project = NULL,
		   *flavor = NULL, *gb = NULL, *start = NULL, *end = NULL,
		   *gran = NULL;
	int json, rc, ids = 0;
	const struct vg_cli_opt opts[] = {
		VG_CLI_VAL("aggregation", &agg),
		VG_CLI_VAL("type", &type),
		VG_CLI_VAL("host", &host),
		VG_CLI_VAL("project", &project),
		VG_CLI_VAL("flavor", &flavor),
		VG_CLI_VAL("group-by", &gb),
		VG_CLI_VAL("start", &start),
		VG_CLI_VAL("end", &end),
		VG_CLI_VAL("granularity", &gran),
		VG_CLI_FLAG("ids", &ids),
	};
	json_t *j;
	char pbuf[256];

	if ((rc = vg_cli_parse(c, &aggregate_spec, opts, 10, argc, argv, &json)) >= 0)
		return rc;
	if ((agg && !one_of(agg, aggs)) || (gb && !one_of(gb, gbs))) {
		fprintf(c->err, "%s aggregate: --aggregation is one of mean, sum, "
				"min, max; --group-by one of project, host, flavor\n",
			c->prog);
		return VG_EXIT_USAGE;
	}
	if ((rc = vg_cli_resolve_project(c, "aggregate", project, pbuf, sizeof(pbuf),
					 &project)))
		return rc;
	const char *kv[] = {"metric", argv[optind], "aggregation", agg, "type",
			    type, "host", host, "project", project, "flavor",
			    flavor, "group_by", gb, "start", start, "end", end,
			    "granularity", gran, NULL};
	rc = vg_cli_fetch(c, vg_cli_path("/v1/aggregates", kv), json, &j);
	if (rc || !j)
		return rc;
	/* rows: the union of the groups' times (ISO strings sort in time) */
	json_t *groups = json_object_get(j, "groups"), *g, *p;
	json_t *times = json_object(); /* time -> array of values by group */
	size_t ng = json_array_size(groups), gi, pi, n;
	json_array_foreach(groups, gi, g) {
		json_array_foreach(json_object_get(g, "points"), pi, p) {
			const char *t = json_string_value(json_array_get(p, 0));
			json_t *row = json_object_get(times, t);
			if (!t)
				continue;
			if (!row) {
				row = json_array();
				for (size_t k = 0; k < ng; k++)
					json_array_append_new(row, json_null());
				json_object_set_new(times, t, row);
			}
			json_array_set(row, gi, json_array_get(p, 1));
		}
	}
	/* one column per group (or the aggregation's name) */
	const char **keys = vg_cli_sorted_keys(times, &n);
	const char **name = calloc(ng + 1, sizeof(*name));
	json_t **v = calloc(ng + 1, sizeof(*v));
	json_t *names = json_array(); /* owns the project names */
	struct vg_table *t = NULL;
	if (name && v) {
		json_array_foreach(groups, gi, g) {
			const char *key = gb ? vg_cli_str(g, gb) : NULL;
			name[gi] = gb ? (key ? key : "(none)")
				      : vg_cli_str(j, "aggregation");
			if (!name[gi])
				name[gi] = "";
		}
		/* projects by the names people know (a bounded number of
		 * look-ups; a name two projects share keeps the ids) */
		for (gi = 0; gb && !ids && names && !strcmp(gb, "project") && gi < ng &&
			     gi < AGG_NAMES_MAX;
		     gi++) {
			char nb[256];
			const char *pn = vg_cli_project_name(c, vg_cli_str(json_array_get(groups, gi), gb), nb, sizeof(nb));
			json_array_append_new(names, pn ? json_string(pn) : json_null());
		}
		for (gi = 0; gi < json_array_size(names); gi++) {
			const char *pn = json_string_value(json_array_get(names, gi));
			int dup = 0;
			for (size_t k = 0; pn && k < json_array_size(names) && !dup; k++)
				dup = k != gi && json_string_value(json_array_get(names, k)) &&
				      !strcmp(pn, json_string_value(json_array_get(names, k)));
			if (pn && !dup)
				name[gi] = pn;
		}
		t = vg_cli_time_table(name, ng, vg_cli_str(j, "unit"), NULL);
	}
	for (size_t i = 0; t && i < n; i++) {
		json_t *row = json_object_get(times, keys[i]);
		for (size_t q = 0; q < ng; q++)
			v[q] = json_array_get(row, q);
		vg_cli_time_row(t, keys[i], v, ng);
	}
	if (ng)
		vg_table_print(t, c->out);
	else
		vg_cli_line(c->err, "%s: no resource has %s", c->prog,
			    argv[optind]);
	vg_table_free(t);
	free(keys);
	free(name);
	free(v);
	json_decref(names);
	json_decref(times);
	json_decref(j);
	return VG_EXIT_OK;
}

/* ---- graph -------------------------------------------------------------------------------- */

int vg_cli_cmd_graph(struct vg_cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		VG_CLI_GLOBAL_OPTS,
		{"help", no_argument, NULL, VG_CLI_OPT_HELP},
		{"output", required_argument, NULL, 'o'},
		{"start", required_argument, NULL, 's'},
		{"end", required_argument, NULL, 'e'},
		{"title", required_argument, NULL, 'T' + 256},
		{"width", required_argument, NULL, 'W'},
		{"height", required_argument, NULL, 'H'},
		{"aggregation", required_argument, NULL, 'a'},
		{"legend", required_argument, NULL, 'L'},
		{NULL, 0, NULL, 0},
	};
	const char *output = NULL, *start = NULL, *end = NULL, *title = NULL,
		   *width = NULL, *height = NULL, *agg = NULL;
	const char *legends[8] = {0};
	size_t nleg = 0;
	int o, rc;

	vg_cli_begin_opts();
	while ((o = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1) {
		switch (o) {
		case 'o': output = optarg; break;
		case 's': start = optarg; break;
		case 'e': end = optarg; break;
		case 'T' + 256: title = optarg; break;
		case 'W': width = optarg; break;
		case 'H': height = optarg; break;
		case 'a': agg = optarg; break;
		case 'L':
			if (nleg == 8) {
				fprintf(c->err, "%s graph: at most 8 --legend\n",
					c->prog);
				return VG_EXIT_USAGE;
			}
			legends[nleg++] = optarg;
			break;
		case VG_CLI_OPT_HELP:
			fprintf(c->out,
				"usage: %s graph -o FILE.png RESOURCE METRIC "
				"[RESOURCE METRIC ...]\n"
				"       [--start T] [--end T] [--title TEXT] "
				"[--width PX] [--height PX]\n"
				"       [--aggregation mean|min|max] [--legend TEXT "
				"...]\n\n"
				"Draw up to 8 series (RESOURCE METRIC pairs) into a "
				"PNG (GET /v1/graph).\n-o - writes the PNG to "
				"stdout. Each --legend names the series in order.\n",
				c->prog);
			return VG_EXIT_OK;
		default:
			if ((rc = vg_cli_common_opt(c, "graph", o, argv)) >= 0)
				return rc;
		}
	}
	size_t npos = (size_t)(argc - optind);
	if (!npos || npos % 2 || npos / 2 > 8) {
		fprintf(c->err, "%s graph: expected 1 to 8 RESOURCE METRIC pairs "
				"(see '%s graph --help')\n",
			c->prog, c->prog);
		return VG_EXIT_USAGE;
	}
	if (!output) {
		fprintf(c->err, "%s graph: say where to write the PNG with -o "
				"FILE (or -o - for stdout)\n",
			c->prog);
		return VG_EXIT_USAGE;
	}
	if (nleg > npos / 2) {
		fprintf(c->err, "%s graph: more --legend than series\n", c->prog);
		return VG_EXIT_USAGE;
	}
	const char *kv[2 * (3 * 8 + 7) + 1] = {0};
	char names[8][3][16], rbuf[8][1024];
	const char *res[8];
	size_t k = 0;
	for (size_t i = 0; i < npos / 2; i++)
		if ((rc = vg_cli_resolve_resource(c, "graph", argv[optind + 2 * i],
						  rbuf[i], sizeof(rbuf[i]), &res[i])))
			return rc;
	for (size_t i = 0; i < npos / 2; i++) {
		const char *suffix[3] = {"resource", "metric", "legend"};
		const char *val[3] = {res[i], argv[optind + 2 * i + 1],
				      i < nleg ? legends[i] : NULL};
		for (int f = 0; f < 3; f++) {
			if (i)
				snprintf(names[i][f], sizeof(names[i][f]), "%s%zu",
					 suffix[f], i + 1);
			else
				snprintf(names[i][f], sizeof(names[i][f]), "%s",
					 suffix[f]);
			kv[k++] = names[i][f];
			kv[k++] = val[f];
		}
	}
	const char *rest[] = {"start", start, "end", end, "title", title,
			      "width", width, "height", height, "aggregation",
			      agg};
	for (size_t i = 0; i < sizeof(rest) / sizeof(rest[0]); i++)
		kv[k++] = rest[i];
	kv[k] = NULL;
	char *path = vg_cli_path("/v1/graph", kv), *png = NULL;
	size_t len = 0;
	if (!path)
		return VG_EXIT_API;
	rc = vg_cli_request(c, "GET", path, NULL, &png, &len);
	free(path);
	if (rc)
		return rc;
	if (len < 8 || memcmp(png, "\x89PNG\r\n\x1a\n", 8)) {
		fprintf(c->err, "%s graph: the API did not answer a PNG\n",
			c->prog);
		free(png);
		return VG_EXIT_API;
	}
	if (!strcmp(output, "-")) {
		fwrite(png, 1, len, c->out);
		fflush(c->out);
		free(png);
		return VG_EXIT_OK;
	}
	char *tmp = malloc(strlen(output) + 16);
	FILE *f = NULL;
	if (tmp) {
		sprintf(tmp, "%s.tmp%ld", output, (long)getpid());
		f = fopen(tmp, "wb");
	}
	int ok = f && fwrite(png, 1, len, f) == len;
	int e = errno;
	if (f && fclose(f) && ok) {
		ok = 0;
		e = errno;
	}
	if (ok && rename(tmp, output)) {
		ok = 0;
		e = errno;
	}
	if (!ok) {
		if (tmp)
			unlink(tmp);
		fprintf(c->err, "%s graph: cannot write %s: %s\n", c->prog,
			output, strerror(e));
		free(tmp);
		free(png);
		return VG_EXIT_API;
	}
	fprintf(c->out, "wrote %s (%zu bytes)\n", output, len);
	free(tmp);
	free(png);
	return VG_EXIT_OK;
}
