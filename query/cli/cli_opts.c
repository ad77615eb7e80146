/*
 * cli_opts.c — the option handling, usage errors and API calls every
 * `vigie` subcommand shares, so each command file holds only what is its
 * own.
 *
 * Design: a command declares its options (struct vg_cli_opt: where each
 * value or flag goes) and its help and operands (struct vg_cli_spec);
 * vg_cli_parse builds the getopt_long table from them, adds the common
 * options and checks the number of operands. vg_cli_fetch* are the GET
 * side: one answer, a resource, or every page of a listing, with --json
 * printing the API's document instead of handing it back.
 *
 * The names people know are resolved here, once for every command: a
 * --project value or a RESOURCE operand is first tried as an id (an id
 * always wins), then looked up by the attribute the agents send
 * (project_name, display_name). A name that means several projects or
 * resources is a usage error listing them, never a silent first pick: an
 * operator acting on "db" must not act on the wrong one.
 *
 * Invariants: a usage error is one line on c->err naming the command and
 * its --help; a failed fetch prints nothing on c->out.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "query/cli/cli.h"

int vg_cli_common_opt(struct vg_cli *c, const char *cmd, int o, char **argv)
{
	/* "vigie: " before the command, "vigie CMD: " after it */
	const char *sp = cmd ? " " : "", *cm = cmd ? cmd : "";
	char *end;
	long v;

	switch (o) {
	case VG_CLI_OPT_API:
		c->api = optarg;
		return -1;
	case VG_CLI_OPT_TOKEN:
		c->token = optarg;
		return -1;
	case VG_CLI_OPT_CACERT:
		c->cacert = optarg;
		return -1;
	case VG_CLI_OPT_TIMEOUT:
		v = strtol(optarg, &end, 10);
		if (*optarg && !*end && v >= 1) {
			c->timeout_s = v;
			return -1;
		}
		fprintf(c->err, "%s%s%s: --timeout wants a number of seconds >= 1\n",
			c->prog, sp, cm);
		return VG_EXIT_USAGE;
	case VG_CLI_OPT_RETRY_WAIT:
		v = strtol(optarg, &end, 10);
		if (*optarg && !*end && v >= 0 && v <= VG_CLI_RETRY_WAIT_MAX_S) {
			c->retry_wait_s = v;
			return -1;
		}
		fprintf(c->err, "%s%s%s: --retry-wait wants a number of seconds "
				"from 0 to %d\n",
			c->prog, sp, cm, VG_CLI_RETRY_WAIT_MAX_S);
		return VG_EXIT_USAGE;
	case VG_CLI_OPT_OUTPUT:
		if (vg_cli_set_output(optarg) == 0)
			return -1;
		fprintf(c->err, "%s%s%s: --output wants table, json or csv, not "
				"'%s'\n",
			c->prog, sp, cm, optarg);
		return VG_EXIT_USAGE;
	case ':':
		fprintf(c->err, "%s%s%s: option '%s' needs a value\n", c->prog,
			sp, cm, argv[optind - 1]);
		return VG_EXIT_USAGE;
	default:
		fprintf(c->err, "%s%s%s: unknown option '%s' (see '%s%s%s --help')\n",
			c->prog, sp, cm, argv[optind - 1], c->prog, sp, cm);
		return VG_EXIT_USAGE;
	}
}

void vg_cli_begin_opts(void)
{
	optind = 0;
	opterr = 0;
}

void vg_cli_print_json(struct vg_cli *c, json_t *j)
{
	json_dumpf(j, c->out, JSON_INDENT(2));
	fputc('\n', c->out);
}

/* The getopt_long table and short-option string for opts plus the common
 * options (an opts[i] comes back as 256 + i). NULL on out of memory. */
static struct option *option_table(const struct vg_cli_opt *opts, size_t n,
				   int json, char *shorts, size_t slen)
{
	static const struct option common[] = {VG_CLI_COMMON_OPTS};
	const size_t ncommon = sizeof(common) / sizeof(common[0]);
	struct option *t = calloc(n + ncommon + 1, sizeof(*t));
	size_t k = 0, o = 0;

	if (!t)
		return NULL;
	for (size_t i = 0; i < ncommon; i++)
		if (json || common[i].val != VG_CLI_OPT_JSON)
			t[k++] = common[i];
	o += (size_t)snprintf(shorts, slen, ":h");
	for (size_t i = 0; i < n; i++) {
		t[k].name = opts[i].name;
		t[k].has_arg = opts[i].value ? required_argument : no_argument;
		t[k++].val = 256 + (int)i;
		if (opts[i].short_name && o + 3 < slen)
			o += (size_t)snprintf(shorts + o, slen - o, "%c%s",
					      opts[i].short_name,
					      opts[i].value ? ":" : "");
	}
	return t;
}

/* "<prog> <cmd>: <what> '<arg>' (see '<prog> <cmd> --help')". */
static int usage_error(struct vg_cli *c, const char *cmd, const char *what,
		       const char *arg)
{
	fprintf(c->err, "%s %s: %s%s%s%s (see '%s %s --help')\n", c->prog, cmd,
		what, arg ? " '" : "", arg ? arg : "", arg ? "'" : "", c->prog,
		cmd);
	return VG_EXIT_USAGE;
}

int vg_cli_parse(struct vg_cli *c, const struct vg_cli_spec *spec,
		 const struct vg_cli_opt *opts, size_t nopts, int argc,
		 char **argv, int *json)
{
	char shorts[64];
	struct option *t = option_table(opts, nopts, json != NULL, shorts,
					sizeof(shorts));
	int o, rc = -1;

	if (!t) {
		fprintf(c->err, "%s: out of memory\n", c->prog);
		return VG_EXIT_API;
	}
	if (json)
		*json = 0;
	vg_cli_begin_opts();
	while (rc < 0 && (o = getopt_long(argc, argv, shorts, t, NULL)) != -1) {
		for (size_t i = 0; o < 256 && i < nopts; i++)
			if (o == opts[i].short_name)
				o = 256 + (int)i;
		if (o >= 256 && opts[o - 256].value) {
			*opts[o - 256].value = optarg;
		} else if (o >= 256) {
			*opts[o - 256].flag = 1;
		} else if (o == VG_CLI_OPT_JSON && json) {
			*json = 1;
		} else if (o == VG_CLI_OPT_HELP) {
			fprintf(c->out, "usage: %s %s\n%s", c->prog, spec->usage,
				spec->about);
			rc = VG_EXIT_OK;
		} else {
			rc = vg_cli_common_opt(c, spec->name, o, argv);
		}
	}
	free(t);
	if (json && vg_cli_output() == VG_OUT_JSON)
		*json = 1;
	if (rc >= 0 || spec->nargs == VG_CLI_OPERANDS_ANY)
		return rc;
	if (!spec->operands && optind < argc)
		return usage_error(c, spec->name, "unexpected argument",
				   argv[optind]);
	if (spec->operands && argc - optind != spec->nargs) {
		char what[128];
		snprintf(what, sizeof(what), "expected %s", spec->operands);
		return usage_error(c, spec->name, what, NULL);
	}
	return -1;
}

void vg_cli_no_points(struct vg_cli *c, json_t *j)
{
	vg_cli_line(c->err, "%s: no points between %s and %s", c->prog,
		    vg_cli_str(j, "start"), vg_cli_str(j, "end"));
}

/* ---- asking the API -------------------------------------------------------- */

int vg_cli_fetch(struct vg_cli *c, char *path, int json, json_t **out)
{
	int rc;

	*out = NULL;
	if (!path) {
		fprintf(c->err, "%s: out of memory\n", c->prog);
		return VG_EXIT_API;
	}
	rc = vg_cli_get(c, path, out);
	free(path);
	if (rc || !json)
		return rc;
	vg_cli_print_json(c, *out);
	json_decref(*out);
	*out = NULL;
	return VG_EXIT_OK;
}

int vg_cli_fetch_resource(struct vg_cli *c, const char *id,
			  const char *suffix, int json, json_t **out)
{
	char *esc = vg_cli_escape(id), *path = NULL;

	if (esc && (path = malloc(strlen(esc) + strlen(suffix) + 32)))
		sprintf(path, "/v1/resources/%s%s", esc, suffix);
	free(esc);
	return vg_cli_fetch(c, path, json, out);
}

#define PAGE_MAX 1000
#define PAGES_MAX 100000

/* One page of a listing into all; *more: another page follows (cursor
 * updated). Exit code. */
static int fetch_page(struct vg_cli *c, const char *path,
		      const char *const *kv, const char *member, long limit,
		      char *cursor, size_t curlen, json_t *all, int *more)
{
	const char *const tail[] = {"limit", NULL, "cursor",
				    cursor[0] ? cursor : NULL, NULL};
	size_t nkv = 0, have = json_array_size(all);
	char lim[24];
	long want = PAGE_MAX;
	json_t *j;
	int rc;

	while (kv && kv[nkv])
		nkv += 2;
	const char **q = calloc(nkv + 5, sizeof(*q));
	if (!q)
		return vg_cli_fetch(c, NULL, 0, &j); /* says out of memory */
	if (limit && limit - (long)have < want)
		want = limit - (long)have;
	snprintf(lim, sizeof(lim), "%ld", want);
	memcpy(q, kv, nkv * sizeof(*q));
	memcpy(q + nkv, tail, sizeof(tail));
	q[nkv + 1] = lim;
	rc = vg_cli_fetch(c, vg_cli_path(path, q), 0, &j);
	free(q);
	if (rc)
		return rc;
	json_array_extend(all, json_object_get(j, member));
	const char *next = vg_cli_str(j, "next");
	*more = next && *next && strcmp(next, cursor) && strlen(next) < curlen &&
		(!limit || (long)json_array_size(all) < limit);
	if (*more)
		snprintf(cursor, curlen, "%s", next);
	json_decref(j);
	return VG_EXIT_OK;
}

int vg_cli_fetch_all(struct vg_cli *c, const char *path,
		     const char *const *kv, const char *member, long limit,
		     int json, json_t **all)
{
	char cursor[1024] = "";
	int rc = VG_EXIT_OK, more = 1;

	*all = json_array();
	if (!*all)
		return vg_cli_fetch(c, NULL, 0, all); /* says out of memory */
	for (int page = 0; !rc && more && page < PAGES_MAX; page++)
		rc = fetch_page(c, path, kv, member, limit, cursor,
				sizeof(cursor), *all, &more);
	if (rc || json) {
		if (!rc) {
			json_t *doc = json_pack("{s:O,s:n}", member, *all, "next");
			vg_cli_print_json(c, doc);
			json_decref(doc);
		}
		json_decref(*all);
		*all = NULL;
	}
	return rc;
}

/* ---- the names people know (Nova's display and project names) ----------------- */

static const char *attr_or(json_t *r, const char *key)
{
	const char *v = vg_cli_str(r, key);

	if (!v)
		v = vg_cli_str(json_object_get(r, "attributes"), key);
	return v && *v ? v : NULL;
}

void vg_cli_known_names(json_t *rows)
{
	size_t i;
	json_t *r;

	json_array_foreach(rows, i, r) {
		const char *dn = attr_or(r, "display_name");
		const char *pn = attr_or(r, "project_name");
		if (dn)
			json_object_set_new(r, "name", json_string(dn));
		if (pn)
			json_object_set_new(r, "project", json_string(pn));
	}
}

const char *vg_cli_project_name(struct vg_cli *c, const char *id, char *buf, size_t len)
{
	const char *kv[] = {"project", id, "metadata", "project_name", "limit", "1", NULL};
	json_t *j = NULL;
	const char *name = NULL;

	if (!id || !*id)
		return NULL;
	if (vg_cli_fetch(c, vg_cli_path("/v1/resources", kv), 0, &j) == 0)
		name = attr_or(json_array_get(json_object_get(j, "resources"), 0), "project_name");
	if (name && strlen(name) < len) {
		snprintf(buf, len, "%s", name);
		name = buf;
	} else {
		name = NULL;
	}
	json_decref(j);
	return name;
}

/* Matches of a name looked at when resolving it, at most (one request of
 * the API's largest page; ambiguity beyond it goes unseen). */
#define RESOLVE_SCAN 1000
/* Ids listed in an "ambiguous" message, at most. */
#define RESOLVE_SHOWN 8

/* Resources whose attribute key is value (every page up to RESOLVE_SCAN
 * matches) into *all. Exit code. */
static int by_attribute(struct vg_cli *c, const char *key, const char *value,
			json_t **all)
{
	char *meta = NULL;
	int rc;

	if (asprintf(&meta, "%s=%s", key, value) < 0) {
		*all = NULL;
		return vg_cli_fetch(c, NULL, 0, all); /* says out of memory */
	}
	const char *kv[] = {"metadata", meta, NULL};
	rc = vg_cli_fetch_all(c, "/v1/resources", kv, "resources", RESOLVE_SCAN,
			      0, all);
	free(meta);
	return rc;
}

/* "<prog> <cmd>: <what> 'v' names N <things>: a, b (state), ...; give
 * the id" on c->err. ids: array of strings; states (may be NULL) beside. */
static int ambiguous(struct vg_cli *c, const char *cmd, const char *what,
		     const char *v, const char *things, json_t *ids,
		     json_t *states)
{
	char list[1024] = "";
	size_t o = 0, i, n = json_array_size(ids);

	for (i = 0; i < n && i < RESOLVE_SHOWN && o < sizeof(list); i++) {
		const char *st = json_string_value(json_array_get(states, i));
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s%s%s%s",
				      i ? ", " : "",
				      json_string_value(json_array_get(ids, i)),
				      st ? " (" : "", st ? st : "", st ? ")" : "");
	}
	if (n > RESOLVE_SHOWN && o < sizeof(list))
		snprintf(list + o, sizeof(list) - o, ", ...");
	vg_cli_line(c->err, "%s %s: %s '%s' names %zu %s: %s; give the id",
		    c->prog, cmd, what, v, n, things, list);
	return VG_EXIT_USAGE;
}

int vg_cli_resolve_project(struct vg_cli *c, const char *cmd, const char *p,
			   char *buf, size_t len, const char **out)
{
	const char *by_id[] = {"project", p, "limit", "1", NULL};
	json_t *j = NULL, *ids, *r;
	size_t i;
	int rc;

	*out = p;
	if (!p)
		return VG_EXIT_OK;
	/* an id wins: some resource has project p */
	if ((rc = vg_cli_fetch(c, vg_cli_path("/v1/resources", by_id), 0, &j)))
		return rc;
	size_t have = json_array_size(json_object_get(j, "resources"));
	json_decref(j);
	if (have)
		return VG_EXIT_OK;
	/* else the projects of the resources whose project_name is p */
	if ((rc = by_attribute(c, "project_name", p, &j)))
		return rc;
	if (!(ids = json_array())) {
		json_decref(j);
		return vg_cli_fetch(c, NULL, 0, &j); /* says out of memory */
	}
	json_array_foreach(j, i, r) {
		const char *id = vg_cli_str(r, "project");
		size_t k;
		json_t *x;
		int seen = 0;
		json_array_foreach(ids, k, x)
			seen |= id && !strcmp(json_string_value(x), id);
		if (id && !seen)
			json_array_append_new(ids, json_string(id));
	}
	rc = VG_EXIT_OK;
	if (json_array_size(ids) > 1)
		rc = ambiguous(c, cmd, "project name", p, "projects", ids, NULL);
	else if (json_array_size(ids) == 1 &&
		 strlen(json_string_value(json_array_get(ids, 0))) < len) {
		snprintf(buf, len, "%s", json_string_value(json_array_get(ids, 0)));
		*out = buf;
	}
	json_decref(ids);
	json_decref(j);
	return rc;
}

int vg_cli_resolve_resource(struct vg_cli *c, const char *cmd, const char *ref,
			    char *buf, size_t len, const char **out)
{
	char *esc, *path = NULL;
	json_t *j = NULL, *ids, *states, *r;
	size_t i;
	int rc;

	*out = ref;
	if (!ref)
		return VG_EXIT_OK;
	esc = vg_cli_escape(ref);
	if (esc && asprintf(&path, "/v1/resources/%s", esc) < 0)
		path = NULL;
	free(esc);
	if (!path)
		return vg_cli_fetch(c, NULL, 0, &j); /* says out of memory */
	/* an id wins */
	rc = vg_cli_get_if(c, path, &j);
	free(path);
	if (rc || j) {
		json_decref(j);
		return rc;
	}
	/* else the resources Nova calls ref */
	if ((rc = by_attribute(c, "display_name", ref, &j)))
		return rc;
	ids = json_array();
	states = json_array();
	json_array_foreach(j, i, r) {
		json_array_append_new(ids, json_string(vg_cli_str(r, "id") ? vg_cli_str(r, "id") : "?"));
		json_array_append_new(states, json_string(vg_cli_str(r, "state") ? vg_cli_str(r, "state") : "?"));
	}
	if (json_array_size(ids) > 1)
		rc = ambiguous(c, cmd, "display name", ref, "resources", ids, states);
	else if (json_array_size(ids) == 1 &&
		 strlen(json_string_value(json_array_get(ids, 0))) < len) {
		snprintf(buf, len, "%s", json_string_value(json_array_get(ids, 0)));
		*out = buf;
	} /* none: ref as given, for the API to say it has no such resource */
	json_decref(ids);
	json_decref(states);
	json_decref(j);
	return rc;
}
