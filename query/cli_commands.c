/*
 * cli_commands.c — the `vigie` commands: health, resources, show, measures
 * (a table, --sparkline or --json).
 *
 * Design: each command parses its own options (getopt_long, arguments may
 * come in any order), calls the API through vg_cli_get and prints either a
 * table for people or the API's JSON (--json) for scripts. `resources`
 * follows the pagination cursor so the output is complete; --json then
 * prints one document of the same shape as a single API page.
 *
 * Invariants: a command prints nothing to c->out when it fails; its exit
 * code is the one vg_cli_get returned, or VG_EXIT_USAGE for bad arguments.
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/cli.h"
#include "vigie/clock.h"

/* A JSON field as text for a table cell (NULL for null/missing). */
static const char *field(json_t *obj, const char *key, char *buf, size_t len)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return NULL;
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_number(v))
		return vg_cli_format_value(json_number_value(v), buf, len);
	if (json_is_boolean(v))
		return json_is_true(v) ? "true" : "false";
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	snprintf(buf, len, "%s", s ? s : "");
	free(s);
	return buf;
}

/* ---- health ------------------------------------------------------------- */

int vg_cli_cmd_health(struct vg_cli *c, int argc, char **argv)
{
	static const struct option opts[] = {VG_CLI_COMMON_OPTS, {NULL, 0, NULL, 0}};
	int o, json = 0, rc;
	json_t *j;
	char b1[64], b2[64], b3[64];

	vg_cli_begin_opts();
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (o == VG_CLI_OPT_JSON) {
			json = 1;
		} else if (o == VG_CLI_OPT_HELP) {
			fprintf(c->out,
				"usage: %s health [--json]\n\n"
				"Ask the API whether it is up (GET /v1/health).\n",
				c->prog);
			return VG_EXIT_OK;
		} else if ((rc = vg_cli_common_opt(c, "health", o, argv)) >= 0) {
			return rc;
		}
	}
	if (optind < argc) {
		fprintf(c->err, "%s health: unexpected argument '%s'\n",
			c->prog, argv[optind]);
		return VG_EXIT_USAGE;
	}
	rc = vg_cli_get(c, "/v1/health", &j);
	if (rc)
		return rc;
	if (json) {
		vg_cli_print_json(c, j);
	} else {
		const char *st = field(j, "status", b1, sizeof(b1));
		const char *ver = field(j, "version", b2, sizeof(b2));
		const char *t = field(j, "time", b3, sizeof(b3));
		fprintf(c->out, "%s (vigie %s at %s, %s)\n", st ? st : "?",
			ver ? ver : "?", c->api, t ? t : "?");
	}
	json_decref(j);
	return VG_EXIT_OK;
}

/* ---- resources ------------------------------------------------------------- */

#define PAGE_MAX 1000
#define PAGES_MAX 100000

int vg_cli_cmd_resources(struct vg_cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		VG_CLI_COMMON_OPTS,
		{"type", required_argument, NULL, 't'},
		{"host", required_argument, NULL, 'H'},
		{"project", required_argument, NULL, 'p'},
		{"name", required_argument, NULL, 'n'},
		{"state", required_argument, NULL, 's'},
		{"parent", required_argument, NULL, 'P'},
		{"limit", required_argument, NULL, 'l'},
		{"metadata", required_argument, NULL, 'M'},
		{NULL, 0, NULL, 0},
	};
	const char *type = NULL, *host = NULL, *project = NULL, *name = NULL,
		   *state = NULL, *parent = NULL, *meta = NULL;
	long limit = 0; /* 0 = all */
	int o, json = 0, rc = VG_EXIT_OK;
	char *end, cursor[1024] = "", pagebuf[24];
	json_t *all;

	vg_cli_begin_opts();
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (o) {
		case 't': type = optarg; break;
		case 'H': host = optarg; break;
		case 'p': project = optarg; break;
		case 'n': name = optarg; break;
		case 's': state = optarg; break;
		case 'P': parent = optarg; break;
		case 'M': meta = optarg; break;
		case 'l':
			limit = strtol(optarg, &end, 10);
			if (*end || limit < 1) {
				fprintf(c->err, "%s resources: --limit wants a "
					"number >= 1\n", c->prog);
				return VG_EXIT_USAGE;
			}
			break;
		case VG_CLI_OPT_JSON: json = 1; break;
		case VG_CLI_OPT_HELP:
			fprintf(c->out,
				"usage: %s resources [--type T] [--host H] "
				"[--project P] [--name N]\n"
				"       [--state active|ended] [--parent ID] "
				"[--metadata KEY[=VALUE]]\n"
				"       [--limit N] [--json]\n\n"
				"List resources (all pages). Types: instance, "
				"disk, nic, host, host_disk, host_nic.\n"
				"--limit stops after N resources; --json prints "
				"{\"resources\":[...],\"next\":null}.\n",
				c->prog);
			return VG_EXIT_OK;
		default:
			if ((rc = vg_cli_common_opt(c, "resources", o, argv)) >= 0)
				return rc;
			rc = VG_EXIT_OK;
		}
	}
	if (optind < argc) {
		fprintf(c->err, "%s resources: unexpected argument '%s'\n",
			c->prog, argv[optind]);
		return VG_EXIT_USAGE;
	}
	all = json_array();
	for (int page = 0; page < PAGES_MAX; page++) {
		long want = PAGE_MAX;
		if (limit && limit - (long)json_array_size(all) < want)
			want = limit - (long)json_array_size(all);
		snprintf(pagebuf, sizeof(pagebuf), "%ld", want);
		const char *kv[] = {"type", type, "host", host, "project",
				    project, "name", name, "state", state,
				    "parent", parent, "metadata", meta,
				    "limit", pagebuf,
				    "cursor", cursor[0] ? cursor : NULL, NULL};
		char *path = vg_cli_path("/v1/resources", kv);
		json_t *j;
		if (!path) {
			rc = VG_EXIT_API;
			break;
		}
		rc = vg_cli_get(c, path, &j);
		free(path);
		if (rc)
			break;
		json_array_extend(all, json_object_get(j, "resources"));
		const char *next = json_string_value(json_object_get(j, "next"));
		int more = next && *next && strcmp(next, cursor) &&
			   strlen(next) < sizeof(cursor);
		if (more)
			snprintf(cursor, sizeof(cursor), "%s", next);
		json_decref(j);
		if (!more || (limit && (long)json_array_size(all) >= limit))
			break;
	}
	if (rc) {
		json_decref(all);
		return rc;
	}
	if (json) {
		json_t *doc = json_pack("{s:o,s:n}", "resources", all, "next");
		vg_cli_print_json(c, doc);
		json_decref(doc);
		return VG_EXIT_OK;
	}
	static const char *const hdr[] = {"ID",      "TYPE",  "NAME",
					  "HOST",    "PROJECT", "STATE",
					  "LAST SEEN"};
	struct vg_table *t = vg_table_new(7, hdr, NULL);
	size_t i;
	json_t *r;
	json_array_foreach(all, i, r) {
		char b[7][64];
		const char *row[7] = {
			field(r, "id", b[0], 64),      field(r, "type", b[1], 64),
			field(r, "name", b[2], 64),    field(r, "host", b[3], 64),
			field(r, "project", b[4], 64), field(r, "state", b[5], 64),
			field(r, "last_seen", b[6], 64),
		};
		if (t)
			vg_table_add(t, row);
	}
	vg_table_print(t, c->out);
	vg_table_free(t);
	json_decref(all);
	return VG_EXIT_OK;
}

/* ---- show ------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int vg_cli_cmd_show(struct vg_cli *c, int argc, char **argv)
{
	static const struct option opts[] = {VG_CLI_COMMON_OPTS, {NULL, 0, NULL, 0}};
	static const struct {
		const char *key, *label;
	} fields[] = {
		{"id", "ID"},		  {"type", "Type"},
		{"name", "Name"},	  {"host", "Host"},
		{"parent", "Parent"},	  {"project", "Project"},
		{"user", "User"},	  {"flavor", "Flavor"},
		{"state", "State"},	  {"first_seen", "First seen"},
		{"last_seen", "Last seen"}, {"ended_at", "Ended at"},
	};
	int o, json = 0, rc;
	json_t *j, *kids = NULL;
	char buf[128], *esc, *path;

	vg_cli_begin_opts();
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (o == VG_CLI_OPT_JSON) {
			json = 1;
		} else if (o == VG_CLI_OPT_HELP) {
			fprintf(c->out,
				"usage: %s show RESOURCE [--json]\n\n"
				"One resource: identity, attributes, its metrics "
				"with their last raw values,\nand its children "
				"(disks, NICs).\n", c->prog);
			return VG_EXIT_OK;
		} else if ((rc = vg_cli_common_opt(c, "show", o, argv)) >= 0) {
			return rc;
		}
	}
	if (argc - optind != 1) {
		fprintf(c->err, "%s show: expected one RESOURCE id (see '%s "
			"show --help')\n", c->prog, c->prog);
		return VG_EXIT_USAGE;
	}
	esc = vg_cli_escape(argv[optind]);
	if (!esc)
		return VG_EXIT_API;
	path = malloc(strlen(esc) + 32);
	if (!path) {
		free(esc);
		return VG_EXIT_API;
	}
	sprintf(path, "/v1/resources/%s", esc);
	rc = vg_cli_get(c, path, &j);
	free(path);
	if (rc) {
		free(esc);
		return rc;
	}
	if (json) {
		free(esc);
		vg_cli_print_json(c, j);
		json_decref(j);
		return VG_EXIT_OK;
	}
	/* children: the resources whose parent is this one */
	path = malloc(strlen(esc) + 64);
	if (path) {
		sprintf(path, "/v1/resources?parent=%s&limit=1000", esc);
		rc = vg_cli_get(c, path, &kids);
		free(path);
	}
	free(esc);
	if (rc) {
		json_decref(j);
		return rc;
	}

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *v = field(j, fields[i].key, buf, sizeof(buf));
		fprintf(c->out, "%-12s%s\n", fields[i].label, v ? v : "-");
	}
	json_t *attrs = json_object_get(j, "attributes");
	if (json_object_size(attrs)) {
		const char *k;
		json_t *v;
		fprintf(c->out, "Attributes\n");
		json_object_foreach(attrs, k, v) {
			const char *s = json_is_string(v) ? json_string_value(v)
							  : NULL;
			fprintf(c->out, "  %s = %s\n", k, s ? s : "-");
		}
	}

	json_t *metrics = json_object_get(j, "metrics");
	size_t nm = json_object_size(metrics), n = 0;
	const char **keys = nm ? calloc(nm, sizeof(*keys)) : NULL;
	const char *k;
	json_t *m;
	json_object_foreach(metrics, k, m) {
		if (keys && n < nm)
			keys[n++] = k;
	}
	if (keys)
		qsort(keys, n, sizeof(*keys), cmp_str);
	static const char *const mh[] = {"METRIC", "UNIT", "KIND",
					 "LAST VALUE", "LAST TIME"};
	static const int ma[] = {VG_ALIGN_LEFT, VG_ALIGN_LEFT, VG_ALIGN_LEFT,
				 VG_ALIGN_RIGHT, VG_ALIGN_LEFT};
	struct vg_table *t = vg_table_new(5, mh, ma);
	for (size_t i = 0; i < n; i++) {
		char b[4][64];
		m = json_object_get(metrics, keys[i]);
		const char *row[5] = {keys[i], field(m, "unit", b[0], 64),
				      field(m, "kind", b[1], 64),
				      field(m, "last_value", b[2], 64),
				      field(m, "last_time", b[3], 64)};
		if (t)
			vg_table_add(t, row);
	}
	fprintf(c->out, "\nMetrics (%zu)\n", n);
	if (n)
		vg_table_print(t, c->out);
	vg_table_free(t);
	free(keys);

	json_t *kl = json_object_get(kids, "resources");
	if (json_array_size(kl)) {
		static const char *const kh[] = {"ID", "TYPE", "NAME", "STATE"};
		struct vg_table *kt = vg_table_new(4, kh, NULL);
		size_t i;
		json_t *r;
		json_array_foreach(kl, i, r) {
			char b[4][64];
			const char *row[4] = {field(r, "id", b[0], 64),
					      field(r, "type", b[1], 64),
					      field(r, "name", b[2], 64),
					      field(r, "state", b[3], 64)};
			if (kt)
				vg_table_add(kt, row);
		}
		fprintf(c->out, "\nChildren (%zu)\n", json_array_size(kl));
		vg_table_print(kt, c->out);
		vg_table_free(kt);
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
	const char *unit = json_string_value(json_object_get(j, "unit"));
	const char *cols = getenv("COLUMNS");
	long g = (long)json_integer_value(json_object_get(j, "granularity"));
	int64_t t0 = 0, t1 = 0, t;
	size_t n, i, width = cols && atoi(cols) > 10 ? (size_t)atoi(cols) : 80;
	double lo = NAN, hi = NAN, sum = 0, last = NAN, *v;
	char b1[32], b2[32], b3[32], b4[32], *line;

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
	fprintf(c->out, "%s %s%s%s%s, %s .. %s\n%s\n", res, metric,
		unit && *unit ? " (" : "", unit ? unit : "",
		unit && *unit ? ")" : "",
		json_string_value(json_object_get(j, "start")),
		json_string_value(json_object_get(j, "end")), line);
	if (json_array_size(pts))
		fprintf(c->out, "min %s  mean %s  max %s  last %s  (%zu points)\n",
			vg_cli_format_value(lo, b1, sizeof(b1)),
			vg_cli_format_value(sum / (double)json_array_size(pts), b2,
					    sizeof(b2)),
			vg_cli_format_value(hi, b3, sizeof(b3)),
			vg_cli_format_value(last, b4, sizeof(b4)),
			json_array_size(pts));
	else
		fprintf(c->err, "%s: no points between %s and %s\n", c->prog,
			json_string_value(json_object_get(j, "start")),
			json_string_value(json_object_get(j, "end")));
	free(v);
	free(line);
	return VG_EXIT_OK;
}

int vg_cli_cmd_measures(struct vg_cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		VG_CLI_COMMON_OPTS,
		{"start", required_argument, NULL, 's'},
		{"end", required_argument, NULL, 'e'},
		{"granularity", required_argument, NULL, 'g'},
		{"aggregation", required_argument, NULL, 'a'},
		{"sparkline", no_argument, NULL, 'S'},
		{NULL, 0, NULL, 0},
	};
	const char *start = NULL, *end = NULL, *gran = NULL, *agg = NULL;
	int o, json = 0, rc, spark = 0;
	json_t *j;

	vg_cli_begin_opts();
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (o) {
		case 's': start = optarg; break;
		case 'e': end = optarg; break;
		case 'g': gran = optarg; break;
		case 'a': agg = optarg; break;
		case 'S': spark = 1; break;
		case VG_CLI_OPT_JSON: json = 1; break;
		case VG_CLI_OPT_HELP:
			fprintf(c->out,
				"usage: %s measures RESOURCE METRIC [--start T] "
				"[--end T]\n"
				"       [--granularity 60|300|3600|auto] "
				"[--aggregation mean|min|max]\n"
				"       [--sparkline | --json]\n\n"
				"Points of one metric. Times: ISO 8601 "
				"(2026-11-26T06:00:00Z), epoch seconds,\n"
				"or relative (-3h, -15m, now); default the hour "
				"before --end (now).\nCounters come out as rates "
				"per second. --sparkline draws one line of\n"
				"Unicode blocks over the range (gaps as spaces) "
				"with min, mean, max, last.\n",
				c->prog);
			return VG_EXIT_OK;
		default:
			if ((rc = vg_cli_common_opt(c, "measures", o, argv)) >= 0)
				return rc;
		}
	}
	if (argc - optind != 2) {
		fprintf(c->err, "%s measures: expected RESOURCE and METRIC "
			"(see '%s measures --help')\n", c->prog, c->prog);
		return VG_EXIT_USAGE;
	}
	if (spark && json) {
		fprintf(c->err, "%s measures: --sparkline and --json exclude each "
			"other\n", c->prog);
		return VG_EXIT_USAGE;
	}
	if (gran && strcmp(gran, "60") && strcmp(gran, "300") &&
	    strcmp(gran, "3600") && strcmp(gran, "auto")) {
		fprintf(c->err, "%s measures: --granularity is one of 60, 300, "
			"3600, auto\n", c->prog);
		return VG_EXIT_USAGE;
	}
	if (agg && strcmp(agg, "mean") && strcmp(agg, "min") &&
	    strcmp(agg, "max")) {
		fprintf(c->err, "%s measures: --aggregation is one of mean, "
			"min, max\n", c->prog);
		return VG_EXIT_USAGE;
	}
	const char *kv[] = {"resource", argv[optind], "metric",
			    argv[optind + 1], "start", start, "end", end,
			    "granularity", gran, "aggregation", agg, NULL};
	char *path = vg_cli_path("/v1/measures", kv);
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
	if (spark) {
		rc = print_sparkline(c, j, argv[optind], argv[optind + 1]);
		json_decref(j);
		return rc;
	}
	const char *unit = json_string_value(json_object_get(j, "unit"));
	char vh[96];
	if (unit && *unit)
		snprintf(vh, sizeof(vh), "VALUE (%s)", unit);
	else
		snprintf(vh, sizeof(vh), "VALUE");
	const char *hdr[] = {"TIME", vh};
	static const int al[] = {VG_ALIGN_LEFT, VG_ALIGN_RIGHT};
	struct vg_table *t = vg_table_new(2, hdr, al);
	json_t *pts = json_object_get(j, "points"), *p;
	size_t i;
	json_array_foreach(pts, i, p) {
		char vb[64];
		json_t *v = json_array_get(p, 1);
		const char *row[2] = {
			json_string_value(json_array_get(p, 0)),
			json_is_number(v)
				? vg_cli_format_value(json_number_value(v), vb,
						      sizeof(vb))
				: NULL};
		if (t)
			vg_table_add(t, row);
	}
	vg_table_print(t, c->out);
	if (!json_array_size(pts))
		fprintf(c->err, "%s: no points between %s and %s\n", c->prog,
			json_string_value(json_object_get(j, "start")),
			json_string_value(json_object_get(j, "end")));
	vg_table_free(t);
	json_decref(j);
	return VG_EXIT_OK;
}
