/*
 * cli_put.c — `vigie put`: publish measures (POST /v1/measures,
 * docs/api.md "POST /v1/measures").
 *
 * Design: one point from the operands (RESOURCE METRIC VALUE), or many
 * from --file (FILE or - for stdin): either a JSON body as the API takes
 * it, or lines "RESOURCE METRIC VALUE [TIME]" ('#' starts a comment), all
 * sent as one request with --kind, --unit and --type applying to each.
 * The server checks everything; this only builds the body, and prints
 * what it stored and how many points were duplicates.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/cli/cli.h"
#include "vigie/clock.h"

static const struct vg_cli_spec put_spec = {
	"put",
	"RESOURCE METRIC VALUE",
	VG_CLI_OPERANDS_ANY,
	"put RESOURCE METRIC VALUE [--time T] [--kind gauge|counter] [--unit U]\n"
	"       [--type custom|instance] [--project P] [--json]\n"
	"   or: put --file FILE|- [--kind K] [--unit U] [--type T] [--project P]\n",
	"Publish measures: to an instance of the token's project, or to a custom\n"
	"resource (created by its first measure). --file reads a JSON body as\n"
	"POST /v1/measures takes it, or lines \"RESOURCE METRIC VALUE [TIME]\".\n"
	"TIME as elsewhere (RFC 3339, -5m, now); default now.\n",
};

/* One point with the shared fields. */
static json_t *point(const char *res, const char *metric, const char *value,
		     const char *t, const char *kind, const char *unit,
		     const char *type)
{
	char *end;
	double v;
	json_t *o;

	/* a decimal as JSON writes it (a sign, digits, a fraction, an
	 * exponent): strtod alone also takes " 5", "0x10" (16) and "infinity" */
	if (!*value || !strchr("+-0123456789.", value[0]) ||
	    strpbrk(value, "xXpP \t\n"))
		return NULL;
	v = strtod(value, &end);
	if (end == value || *end || !isfinite(v))
		return NULL;
	o = json_pack("{s:s,s:s,s:f}", "resource", res, "metric", metric,
		      "value", v);
	/* seconds since 1970 go as a JSON number: the API takes a string
	 * only for RFC 3339 and relative times (docs/api.md) */
	if (o && t) {
		double secs;
		const char *tend;

		if (!vg_decimal_parse(t, &secs, &tend) && !*tend)
			json_object_set_new(o, "time", json_real(secs));
		else
			json_object_set_new(o, "time", json_string(t));
	}
	if (o && kind)
		json_object_set_new(o, "kind", json_string(kind));
	if (o && unit)
		json_object_set_new(o, "unit", json_string(unit));
	if (o && type)
		json_object_set_new(o, "type", json_string(type));
	return o;
}

/* The lines of f as points into arr. 0, or the line number that is bad
 * with *why saying how. Lines are read whole (getline): a fixed buffer cut
 * a line longer than itself in two, and the tail of a long comment was
 * read as a point of its own and published. */
static long read_lines(FILE *f, json_t *arr, const char *kind, const char *unit,
		       const char *type, const char **why)
{
	char *line = NULL;
	size_t cap = 0;
	long n = 0;

	while (getline(&line, &cap, f) >= 0) {
		char *w[5] = {0}, *save = NULL, *p;
		int k = 0;
		json_t *o;

		n++;
		if ((p = strchr(line, '#')))
			*p = '\0';
		for (p = strtok_r(line, " \t\r\n", &save); p && k < 5;
		     p = strtok_r(NULL, " \t\r\n", &save))
			w[k++] = p;
		if (!k)
			continue;
		if (k < 3 || k > 4) {
			*why = "expected RESOURCE METRIC VALUE [TIME]";
			free(line);
			return n;
		}
		if (!(o = point(w[0], w[1], w[2], w[3], kind, unit, type))) {
			*why = "VALUE is not a finite decimal number";
			free(line);
			return n;
		}
		json_array_append_new(arr, o);
	}
	free(line);
	return 0;
}

int vg_cli_cmd_put(struct vg_cli *c, int argc, char **argv)
{
	const char *t = NULL, *kind = NULL, *unit = NULL, *type = NULL,
		   *project = NULL, *file = NULL;
	const struct vg_cli_opt opts[] = {
		VG_CLI_VAL("time", &t),
		VG_CLI_VAL("kind", &kind),
		VG_CLI_VAL("unit", &unit),
		VG_CLI_VAL("type", &type),
		VG_CLI_VAL("project", &project),
		VG_CLI_VAL("file", &file),
	};
	json_t *body = NULL, *arr, *ans = NULL;
	int json, rc;

	if ((rc = vg_cli_parse(c, &put_spec, opts, 6, argc, argv, &json)) >= 0)
		return rc;
	if (file ? argc - optind != 0 : argc - optind != 3) {
		vg_cli_line(c->err, "%s put: expected RESOURCE METRIC VALUE, or "
				    "--file FILE (see 'put --help')",
			    c->prog);
		return VG_EXIT_USAGE;
	}
	if (file) {
		FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
		json_error_t je;
		int ch;

		if (!f) {
			vg_cli_line(c->err, "%s put: %s: %s", c->prog, file,
				    strerror(errno));
			return VG_EXIT_USAGE;
		}
		ch = getc(f);
		if (ch != EOF)
			ungetc(ch, f);
		if (ch == '{') { /* a JSON body, sent as it is */
			body = json_loadf(f, 0, &je);
			if (!body)
				vg_cli_line(c->err, "%s put: %s: line %d: %s",
					    c->prog, file, je.line, je.text);
			/* flags the body would silently override, or that
			 * would silently override it */
			if (body && (kind || unit || type)) {
				vg_cli_line(c->err, "%s put: --kind, --unit and --type "
						    "apply to lines; a JSON body says them "
						    "in each point",
					    c->prog);
				json_decref(body);
				body = NULL;
			} else if (body && project && json_object_get(body, "project")) {
				vg_cli_line(c->err, "%s put: %s names its project: "
						    "leave out --project",
					    c->prog, file);
				json_decref(body);
				body = NULL;
			}
		} else {
			const char *why = "";
			long bad;
			body = json_pack("{s:[]}", "measures");
			arr = json_object_get(body, "measures");
			if ((bad = read_lines(f, arr, kind, unit, type, &why))) {
				vg_cli_line(c->err, "%s put: %s: line %ld: %s", c->prog,
					    file, bad, why);
				json_decref(body);
				body = NULL;
			}
		}
		if (f != stdin)
			fclose(f);
		if (!body)
			return VG_EXIT_USAGE;
	} else {
		json_t *o = point(argv[optind], argv[optind + 1], argv[optind + 2],
				  t, kind, unit, type);
		if (!o) {
			vg_cli_line(c->err, "%s put: VALUE '%s' is not a number",
				    c->prog, argv[optind + 2]);
			return VG_EXIT_USAGE;
		}
		body = json_pack("{s:[o]}", "measures", o);
	}
	char pbuf[256];
	if ((rc = vg_cli_resolve_project(c, "put", project, pbuf, sizeof(pbuf),
					 &project))) {
		json_decref(body);
		return rc;
	}
	if (project)
		json_object_set_new(body, "project", json_string(project));
	rc = vg_cli_send(c, "POST", "/v1/measures", body, &ans);
	json_decref(body);
	if (rc)
		return rc;
	if (json) {
		char *s = json_dumps(ans, JSON_COMPACT);
		fprintf(c->out, "%s\n", s ? s : "{}");
		free(s);
	} else {
		fprintf(c->out, "stored %lld, duplicates %lld, resources created %lld "
				"(project %s)\n",
			(long long)json_integer_value(json_object_get(ans, "stored")),
			(long long)json_integer_value(json_object_get(ans, "duplicates")),
			(long long)json_integer_value(json_object_get(ans, "resources_created")),
			vg_cli_str(ans, "project"));
	}
	json_decref(ans);
	return VG_EXIT_OK;
}
