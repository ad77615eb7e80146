/*
 * cli_query.c — the `vigie` commands of issue 4 over the query endpoints:
 * stats (GET /v1/statistics), latest (GET /v1/resources/{id}/latest), top
 * (GET /v1/top, a live view refreshed in place), aggregate
 * (GET /v1/aggregates) and graph (GET /v1/graph, written to a PNG file);
 * plus the sparkline that `measures --sparkline` prints.
 *
 * Design: as the other commands (cli_commands.c) — each parses its own
 * options with getopt_long, asks the API through vg_cli_get/vg_cli_request
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

#include "vigie/cli.h"

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static const char *num(json_t *v, char *buf, size_t len)
{
	if (!json_is_number(v))
		return NULL;
	return vg_cli_format_value(json_number_value(v), buf, len);
}

/* Escaped path "/v1/resources/<id>/latest". */
static char *resource_path(const char *id, const char *suffix)
{
	char *esc = vg_cli_escape(id), *p;

	if (!esc)
		return NULL;
	p = malloc(strlen(esc) + strlen(suffix) + 32);
	if (p)
		sprintf(p, "/v1/resources/%s%s", esc, suffix);
	free(esc);
	return p;
}

static int one_of(const char *v, const char *const *ok)
{
	for (; *ok; ok++)
		if (!strcmp(v, *ok))
			return 1;
	return 0;
}

static int unexpected(struct vg_cli *c, const char *cmd, const char *arg)
{
	fprintf(c->err, "%s %s: unexpected argument '%s' (see '%s %s --help')\n",
		c->prog, cmd, arg, c->prog, cmd);
	return VG_EXIT_USAGE;
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

/* ---- stats ------------------------------------------------------------------------ */

int vg_cli_cmd_stats(struct vg_cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		VG_CLI_COMMON_OPTS,
		{"start", required_argument, NULL, 's'},
		{"end", required_argument, NULL, 'e'},
		{"period", required_argument, NULL, 'p'},
		{"granularity", required_argument, NULL, 'g'},
		{"statistics", required_argument, NULL, 'S'},
		{NULL, 0, NULL, 0},
	};
	static const char *const grans[] = {"60", "300", "3600", "auto", NULL};
	const char *start = NULL, *end = NULL, *period = NULL, *gran = NULL,
		   *stats = NULL;
	int o, json = 0, rc;
	json_t *j;

	vg_cli_begin_opts();
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (o) {
		case 's': start = optarg; break;
		case 'e': end = optarg; break;
		case 'p': period = optarg; break;
		case 'g': gran = optarg; break;
		case 'S': stats = optarg; break;
		case VG_CLI_OPT_JSON: json = 1; break;
		case VG_CLI_OPT_HELP:
			fprintf(c->out,
				"usage: %s stats RESOURCE METRIC [--period SECONDS] "
				"[--start T] [--end T]\n"
				"       [--granularity 60|300|3600|auto] "
				"[--statistics LIST] [--json]\n\n"
				"CloudWatch-style statistics per period (default "
				"300 s, a multiple of the\ngranularity): "
				"SampleCount, Sum, Average, Minimum, Maximum and "
				"percentiles\n(p50, p99, p99.9) over the finer "
				"points of each period. LIST is comma-\nseparated "
				"(default the first five). Times as for 'measures'.\n",
				c->prog);
			return VG_EXIT_OK;
		default:
			if ((rc = vg_cli_common_opt(c, "stats", o, argv)) >= 0)
				return rc;
		}
	}
	if (argc - optind != 2) {
		fprintf(c->err, "%s stats: expected RESOURCE and METRIC (see '%s "
			"stats --help')\n", c->prog, c->prog);
		return VG_EXIT_USAGE;
	}
	if (gran && !one_of(gran, grans)) {
		fprintf(c->err, "%s stats: --granularity is one of 60, 300, 3600, "
			"auto\n", c->prog);
		return VG_EXIT_USAGE;
	}
	const char *kv[] = {"resource", argv[optind], "metric", argv[optind + 1],
			    "start", start, "end", end, "period", period,
			    "granularity", gran, "statistics", stats, NULL};
	char *path = vg_cli_path("/v1/statistics", kv);
	if (!path)
		return VG_EXIT_API;
	rc = vg_cli_get(c, path, &j);
	free(path);
	if (rc)
		return rc;
	if (json) {
		vg_cli_print_json(c, j);
		json_decref(j);
		return VG_EXIT_OK;
	}
	json_t *names = json_object_get(j, "statistics"), *dps, *dp, *nm;
	const char *unit = str(j, "unit");
	size_t ncols = json_array_size(names) + 1, i, k;
	const char **hdr = calloc(ncols, sizeof(*hdr));
	int *al = calloc(ncols, sizeof(*al));
	char (*hbuf)[64] = calloc(ncols, sizeof(*hbuf));
	struct vg_table *t = NULL;

	if (hdr && al && hbuf) {
		hdr[0] = "TIME";
		json_array_foreach(names, k, nm) {
			const char *n = json_string_value(nm);
			if (unit && *unit && strcmp(n, "SampleCount"))
				snprintf(hbuf[k + 1], sizeof(hbuf[k + 1]), "%s (%s)",
					 n, unit);
			else
				snprintf(hbuf[k + 1], sizeof(hbuf[k + 1]), "%s", n);
			hdr[k + 1] = hbuf[k + 1];
			al[k + 1] = VG_ALIGN_RIGHT;
		}
		t = vg_table_new(ncols, hdr, al);
	}
	dps = json_object_get(j, "datapoints");
	json_array_foreach(dps, i, dp) {
		const char **row = calloc(ncols, sizeof(*row));
		char (*vb)[64] = calloc(ncols, sizeof(*vb));
		if (row && vb && t) {
			row[0] = str(dp, "timestamp");
			json_array_foreach(names, k, nm)
				row[k + 1] = num(json_object_get(dp, json_string_value(nm)),
						 vb[k + 1], sizeof(vb[k + 1]));
			vg_table_add(t, row);
		}
		free(row);
		free(vb);
	}
	vg_table_print(t, c->out);
	if (!json_array_size(dps))
		fprintf(c->err, "%s: no points between %s and %s\n", c->prog,
			str(j, "start"), str(j, "end"));
	vg_table_free(t);
	free(hdr);
	free(al);
	free(hbuf);
	json_decref(j);
	return VG_EXIT_OK;
}

/* ---- latest ------------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int vg_cli_cmd_latest(struct vg_cli *c, int argc, char **argv)
{
	static const struct option opts[] = {VG_CLI_COMMON_OPTS, {NULL, 0, NULL, 0}};
	int o, json = 0, rc;
	json_t *j;

	vg_cli_begin_opts();
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (o == VG_CLI_OPT_JSON) {
			json = 1;
		} else if (o == VG_CLI_OPT_HELP) {
			fprintf(c->out,
				"usage: %s latest RESOURCE [--json]\n\n"
				"The newest value of every metric of a resource: a "
				"gauge's last sample, a\ncounter's current rate "
				"per second (its running total with --json).\n",
				c->prog);
			return VG_EXIT_OK;
		} else if ((rc = vg_cli_common_opt(c, "latest", o, argv)) >= 0) {
			return rc;
		}
	}
	if (argc - optind != 1) {
		fprintf(c->err, "%s latest: expected one RESOURCE id (see '%s "
			"latest --help')\n", c->prog, c->prog);
		return VG_EXIT_USAGE;
	}
	char *path = resource_path(argv[optind], "/latest");
	if (!path)
		return VG_EXIT_API;
	rc = vg_cli_get(c, path, &j);
	free(path);
	if (rc)
		return rc;
	if (json) {
		vg_cli_print_json(c, j);
		json_decref(j);
		return VG_EXIT_OK;
	}
	json_t *metrics = json_object_get(j, "metrics"), *m;
	size_t nm = json_object_size(metrics), n = 0;
	const char **keys = nm ? calloc(nm, sizeof(*keys)) : NULL, *k;
	json_object_foreach(metrics, k, m) {
		if (keys && n < nm)
			keys[n++] = k;
	}
	if (keys)
		qsort(keys, n, sizeof(*keys), cmp_str);
	static const char *const hdr[] = {"METRIC", "VALUE", "UNIT", "KIND",
					  "TIME"};
	static const int al[] = {VG_ALIGN_LEFT, VG_ALIGN_RIGHT, VG_ALIGN_LEFT,
				 VG_ALIGN_LEFT, VG_ALIGN_LEFT};
	struct vg_table *t = vg_table_new(5, hdr, al);
	for (size_t i = 0; i < n; i++) {
		char vb[64];
		m = json_object_get(metrics, keys[i]);
		const char *row[5] = {keys[i],
				      num(json_object_get(m, "value"), vb, sizeof(vb)),
				      str(m, "unit"), str(m, "kind"),
				      str(m, "time")};
		if (t)
			vg_table_add(t, row);
	}
	vg_table_print(t, c->out);
	vg_table_free(t);
	free(keys);
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
static void top_print(struct vg_cli *c, json_t *j, int live, const char *now)
{
	json_t *list = json_object_get(j, "resources"), *r;
	const char *unit = str(j, "unit");
	char vh[96];
	double max = 0;
	size_t i;

	json_array_foreach(list, i, r) {
		double v = json_number_value(json_object_get(r, "value"));
		if (v > max)
			max = v;
	}
	snprintf(vh, sizeof(vh), unit && *unit ? "%s (%s)" : "%s",
		 str(j, "metric") ? str(j, "metric") : "VALUE", unit);
	static const char *const h0[] = {"ID", "NAME", "HOST", "PROJECT"};
	const char *hdr[6] = {h0[0], h0[1], h0[2], h0[3], vh, "BAR"};
	static const int al[] = {VG_ALIGN_LEFT, VG_ALIGN_LEFT, VG_ALIGN_LEFT,
				 VG_ALIGN_LEFT, VG_ALIGN_RIGHT, VG_ALIGN_LEFT};
	struct vg_table *t = vg_table_new(6, hdr, al);
	json_array_foreach(list, i, r) {
		char vb[64], bb[128];
		bar(json_number_value(json_object_get(r, "value")), max, 20, bb,
		    sizeof(bb));
		const char *row[6] = {str(r, "id"), str(r, "name"), str(r, "host"),
				      str(r, "project"),
				      num(json_object_get(r, "value"), vb, sizeof(vb)),
				      bb[0] ? bb : " "};
		if (t)
			vg_table_add(t, row);
	}
	if (live)
		fputs("\033[H", c->out);
	fprintf(c->out, "vigie top: %s, %zu of %lld%s%s at %s%s\n",
		str(j, "metric"), json_array_size(list),
		(long long)json_integer_value(json_object_get(j, "matched")),
		str(j, "type") ? " " : "", str(j, "type") ? str(j, "type") : "",
		now, live ? " (Ctrl-C quits)\033[K" : "");
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

int vg_cli_cmd_top(struct vg_cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		VG_CLI_COMMON_OPTS,
		{"metric", required_argument, NULL, 'm'},
		{"type", required_argument, NULL, 't'},
		{"host", required_argument, NULL, 'H'},
		{"project", required_argument, NULL, 'p'},
		{"flavor", required_argument, NULL, 'f'},
		{"limit", required_argument, NULL, 'l'},
		{"asc", no_argument, NULL, 'a'},
		{"interval", required_argument, NULL, 'i'},
		{"once", no_argument, NULL, '1'},
		{"count", required_argument, NULL, 'n'},
		{NULL, 0, NULL, 0},
	};
	const char *metric = "cpu.util", *type = NULL, *host = NULL,
		   *project = NULL, *flavor = NULL, *limit = "10";
	double interval = 2;
	long count = 0;
	int o, json = 0, rc = VG_EXIT_OK, once = 0, asc = 0, live;
	char *end;
	struct sigaction sa, old_int, old_term;

	vg_cli_begin_opts();
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (o) {
		case 'm': metric = optarg; break;
		case 't': type = optarg; break;
		case 'H': host = optarg; break;
		case 'p': project = optarg; break;
		case 'f': flavor = optarg; break;
		case 'l': limit = optarg; break;
		case 'a': asc = 1; break;
		case '1': once = 1; break;
		case 'i':
			interval = strtod(optarg, &end);
			if (*end || !(interval >= 0.2) || interval > 3600) {
				fprintf(c->err, "%s top: --interval wants seconds "
					"between 0.2 and 3600\n", c->prog);
				return VG_EXIT_USAGE;
			}
			break;
		case 'n':
			count = strtol(optarg, &end, 10);
			if (*end || count < 1) {
				fprintf(c->err, "%s top: --count wants a number "
					">= 1\n", c->prog);
				return VG_EXIT_USAGE;
			}
			break;
		case VG_CLI_OPT_JSON: json = 1; break;
		case VG_CLI_OPT_HELP:
			fprintf(c->out,
				"usage: %s top [--metric M] [--type T] [--host H] "
				"[--project P] [--flavor F]\n"
				"       [--limit N] [--asc] [--interval S] "
				"[--once | --count N] [--json]\n\n"
				"The resources with the highest current value of a "
				"metric (default cpu.util;\ncounters by their rate "
				"per second), refreshed in place every --interval\n"
				"seconds (default 2) until Ctrl-C. --once prints one "
				"table and exits (also\nthe default when stdout is "
				"not a terminal); --count N refreshes N times.\n",
				c->prog);
			return VG_EXIT_OK;
		default:
			if ((rc = vg_cli_common_opt(c, "top", o, argv)) >= 0)
				return rc;
			rc = VG_EXIT_OK;
		}
	}
	if (optind < argc)
		return unexpected(c, "top", argv[optind]);
	if (once && count) {
		fprintf(c->err, "%s top: --once and --count exclude each other\n",
			c->prog);
		return VG_EXIT_USAGE;
	}
	live = !once && !json && (count > 1 || (!count && isatty(fileno(c->out))));
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
			top_print(c, j, live, now);
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

int vg_cli_cmd_aggregate(struct vg_cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		VG_CLI_COMMON_OPTS,
		{"aggregation", required_argument, NULL, 'a'},
		{"type", required_argument, NULL, 't'},
		{"host", required_argument, NULL, 'H'},
		{"project", required_argument, NULL, 'p'},
		{"flavor", required_argument, NULL, 'f'},
		{"group-by", required_argument, NULL, 'G'},
		{"start", required_argument, NULL, 's'},
		{"end", required_argument, NULL, 'e'},
		{"granularity", required_argument, NULL, 'g'},
		{NULL, 0, NULL, 0},
	};
	static const char *const aggs[] = {"mean", "sum", "min", "max", NULL};
	static const char *const gbs[] = {"project", "host", "flavor", NULL};
	const char *agg = NULL, *type = NULL, *host = NULL, *project = NULL,
		   *flavor = NULL, *gb = NULL, *start = NULL, *end = NULL,
		   *gran = NULL;
	int o, json = 0, rc;
	json_t *j;

	vg_cli_begin_opts();
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (o) {
		case 'a': agg = optarg; break;
		case 't': type = optarg; break;
		case 'H': host = optarg; break;
		case 'p': project = optarg; break;
		case 'f': flavor = optarg; break;
		case 'G': gb = optarg; break;
		case 's': start = optarg; break;
		case 'e': end = optarg; break;
		case 'g': gran = optarg; break;
		case VG_CLI_OPT_JSON: json = 1; break;
		case VG_CLI_OPT_HELP:
			fprintf(c->out,
				"usage: %s aggregate METRIC [--aggregation "
				"mean|sum|min|max] [--type T]\n"
				"       [--host H] [--project P] [--flavor F] "
				"[--group-by project|host|flavor]\n"
				"       [--start T] [--end T] [--granularity "
				"60|300|3600|auto] [--json]\n\n"
				"One metric combined across every matching "
				"resource (default: instances),\nper time slot; one "
				"column per group.\n", c->prog);
			return VG_EXIT_OK;
		default:
			if ((rc = vg_cli_common_opt(c, "aggregate", o, argv)) >= 0)
				return rc;
		}
	}
	if (argc - optind != 1) {
		fprintf(c->err, "%s aggregate: expected one METRIC (see '%s "
			"aggregate --help')\n", c->prog, c->prog);
		return VG_EXIT_USAGE;
	}
	if ((agg && !one_of(agg, aggs)) || (gb && !one_of(gb, gbs))) {
		fprintf(c->err, "%s aggregate: --aggregation is one of mean, sum, "
			"min, max; --group-by one of project, host, flavor\n",
			c->prog);
		return VG_EXIT_USAGE;
	}
	const char *kv[] = {"metric", argv[optind], "aggregation", agg, "type",
			    type, "host", host, "project", project, "flavor",
			    flavor, "group_by", gb, "start", start, "end", end,
			    "granularity", gran, NULL};
	char *path = vg_cli_path("/v1/aggregates", kv);
	if (!path)
		return VG_EXIT_API;
	rc = vg_cli_get(c, path, &j);
	free(path);
	if (rc)
		return rc;
	if (json) {
		vg_cli_print_json(c, j);
		json_decref(j);
		return VG_EXIT_OK;
	}
	/* rows: the union of the groups' times (ISO strings sort in time) */
	json_t *groups = json_object_get(j, "groups"), *g, *p;
	json_t *times = json_object(); /* time -> array of values by group */
	size_t ng = json_array_size(groups), gi, pi;
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
	size_t nt = json_object_size(times), n = 0;
	const char **keys = nt ? calloc(nt, sizeof(*keys)) : NULL, *k;
	json_t *v;
	json_object_foreach(times, k, v) {
		if (keys && n < nt)
			keys[n++] = k;
	}
	if (keys)
		qsort(keys, n, sizeof(*keys), cmp_str);
	const char **hdr = calloc(ng + 1, sizeof(*hdr));
	int *al = calloc(ng + 1, sizeof(*al));
	char (*hb)[128] = calloc(ng + 1, sizeof(*hb));
	struct vg_table *t = NULL;
	const char *unit = str(j, "unit");
	if (hdr && al && hb) {
		hdr[0] = "TIME";
		json_array_foreach(groups, gi, g) {
			const char *key = gb ? str(g, gb) : NULL;
			snprintf(hb[gi + 1], sizeof(hb[gi + 1]), "%s%s%s%s%s",
				 gb ? (key ? key : "(none)") : str(j, "aggregation"),
				 unit && *unit ? " (" : "", unit ? unit : "",
				 unit && *unit ? ")" : "", "");
			hdr[gi + 1] = hb[gi + 1];
			al[gi + 1] = VG_ALIGN_RIGHT;
		}
		t = vg_table_new(ng + 1, hdr, al);
	}
	for (size_t i = 0; i < n; i++) {
		json_t *row = json_object_get(times, keys[i]);
		const char **cells = calloc(ng + 1, sizeof(*cells));
		char (*vb)[64] = calloc(ng + 1, sizeof(*vb));
		if (cells && vb && t) {
			cells[0] = keys[i];
			for (size_t q = 0; q < ng; q++)
				cells[q + 1] = num(json_array_get(row, q), vb[q + 1],
						   sizeof(vb[q + 1]));
			vg_table_add(t, cells);
		}
		free(cells);
		free(vb);
	}
	if (ng)
		vg_table_print(t, c->out);
	else
		fprintf(c->err, "%s: no resource has %s\n", c->prog,
			argv[optind]);
	vg_table_free(t);
	free(keys);
	free(hdr);
	free(al);
	free(hb);
	json_decref(times);
	json_decref(j);
	return VG_EXIT_OK;
}

/* ---- graph -------------------------------------------------------------------------------- */

int vg_cli_cmd_graph(struct vg_cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"api", required_argument, NULL, VG_CLI_OPT_API},
		{"token", required_argument, NULL, VG_CLI_OPT_TOKEN},
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
			"(see '%s graph --help')\n", c->prog, c->prog);
		return VG_EXIT_USAGE;
	}
	if (!output) {
		fprintf(c->err, "%s graph: say where to write the PNG with -o "
			"FILE (or -o - for stdout)\n", c->prog);
		return VG_EXIT_USAGE;
	}
	if (nleg > npos / 2) {
		fprintf(c->err, "%s graph: more --legend than series\n", c->prog);
		return VG_EXIT_USAGE;
	}
	const char *kv[2 * (3 * 8 + 7) + 1] = {0};
	char names[8][3][16];
	size_t k = 0;
	for (size_t i = 0; i < npos / 2; i++) {
		const char *suffix[3] = {"resource", "metric", "legend"};
		const char *val[3] = {argv[optind + 2 * i], argv[optind + 2 * i + 1],
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
