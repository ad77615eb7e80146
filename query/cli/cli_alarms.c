/*
 * cli_alarms.c — `vigie alarms`: alarm definitions, states, history and
 * the live notification stream over the /v1/alarms API (docs/alarms.md,
 * docs/api.md "Alarms").
 *
 *   list     GET  /v1/alarms (every page)      show     GET /v1/alarms/{id}
 *   create   POST /v1/alarms                   update   PUT|PATCH /v1/alarms/{id}
 *   delete   DELETE /v1/alarms/{id}            enable, disable  POST .../enable
 *   history  GET  /v1/alarms/{id}/history (every page)
 *   watch    GET  /v1/alarms/stream (Server-Sent Events, until Ctrl-C)
 *
 * Design: one parser for every subcommand (each declares the options it
 * takes and how many positional arguments), then a thin function per
 * subcommand that calls the API through query/cli/cli_http.c and prints a
 * table or text for people, or the API's JSON with --json. Definitions
 * are sent as the user wrote them (the file's bytes), after a local check
 * that the file is one JSON object so a typo is reported with the file's
 * name and line; the API's per-field validation errors come back on one
 * line (cli_http.c). `watch` parses the SSE stream itself: one line per
 * notification, reconnecting with Last-Event-ID when the stream drops
 * (so nothing the API still holds is missed), until Ctrl-C (exit 0).
 *
 * Invariants: a failing subcommand prints nothing on c->out and one line
 * on c->err; exit codes as query/cli/cli.h (2 for usage, before any request).
 *
 * Why one file (~1,100 lines): one command of the CLI with one option
 * parser for its subcommands; each subcommand is a thin function over the
 * API, the longest being `watch` (the SSE reader with its reconnection)
 * and `show` (a definition printed for people). They share the argument
 * table and the printing helpers above them.
 */
#include <errno.h>
#include <getopt.h> /* optind */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "query/cli/cli.h"

#define DEF_MAX_BYTES (1u << 20) /* a definition file; the API takes 64 KiB */
#define SSE_EVENT_MAX (1u << 20)
#define RECONNECT_MS 3000
#define RECENT_IDS 256

/* options a subcommand may take */
enum {
	O_JSON = 1 << 0,
	O_PROJECT = 1 << 1,
	O_STATE = 1 << 2,
	O_FILE = 1 << 3,
	O_RANGE = 1 << 4, /* --start, --end */
	O_TYPE = 1 << 5,
	O_LIMIT = 1 << 6,
	O_PATCH = 1 << 7,
	O_COUNT = 1 << 8,
	O_IDS = 1 << 9, /* --ids: raw ids instead of the names people know */
};

struct args {
	const char *sub;
	const char *project, *state, *file, *start, *end, *type;
	long limit, count;
	int json, patch, ids;
	const char *ref; /* the one positional argument, if any */
};

struct sub {
	const char *name;
	int (*fn)(struct vg_cli *c, struct args *a);
	unsigned opts;
	int nargs; /* positional: 0 or 1 (ID|NAME) */
	const char *synopsis, *help;
};

static int sub_list(struct vg_cli *c, struct args *a);
static int sub_show(struct vg_cli *c, struct args *a);
static int sub_put(struct vg_cli *c, struct args *a);
static int sub_delete(struct vg_cli *c, struct args *a);
static int sub_enable(struct vg_cli *c, struct args *a);
static int sub_history(struct vg_cli *c, struct args *a);
static int sub_watch(struct vg_cli *c, struct args *a);
static int sub_groups(struct vg_cli *c, struct args *a);
static int sub_test(struct vg_cli *c, struct args *a);
static int sub_silences(struct vg_cli *c, struct args *a);
static int sub_silence(struct vg_cli *c, struct args *a);
static int sub_unsilence(struct vg_cli *c, struct args *a);

static const struct sub subs[] = {
	{"list", sub_list, O_JSON | O_PROJECT | O_STATE | O_IDS, 0,
	 "list [--project P] [--state alarm|ok|insufficient_data] [--ids] [--json]",
	 "Every alarm (all pages): name, project, the resource it watches, state,\n"
	 "severity, metric, condition, enabled. PROJECT and RESOURCE are the names\n"
	 "the agents sent (project_name, display_name) where known (--ids: the ids).\n"
	 "--project (an id or a name) is for an administrator (a project token\n"
	 "sees its own project only).\n"},
	{"show", sub_show, O_JSON | O_IDS, 1, "show ID|NAME [--ids] [--json]",
	 "One alarm: its definition, its state with the reason, and the state "
	 "of\neach resource it watches. The project and the resources are named "
	 "as\nthe agents sent them, the ids beside (--ids: the ids alone).\n"},
	{"create", sub_put, O_JSON | O_FILE, 0, "create --file DEF.json [--json]",
	 "Create an alarm from a JSON definition (docs/alarms.md); '--file -' "
	 "reads\nstandard input. Every invalid field is reported on one line "
	 "(exit 1).\n"},
	{"update", sub_put, O_JSON | O_FILE | O_PATCH, 1,
	 "update ID|NAME --file DEF.json [--patch] [--json]",
	 "Replace an alarm's definition (PUT; its state is kept), or with "
	 "--patch\nchange only the fields the file gives (PATCH). '--file -' "
	 "reads standard\ninput.\n"},
	{"delete", sub_delete, O_JSON, 1, "delete ID|NAME",
	 "Delete an alarm (refused while a composite alarm uses it).\n"},
	{"enable", sub_enable, O_JSON, 1, "enable ID|NAME [--json]",
	 "Evaluate the alarm again from its next datapoint.\n"},
	{"disable", sub_enable, O_JSON, 1, "disable ID|NAME [--json]",
	 "Stop evaluating the alarm; its state is frozen until enabled.\n"},
	{"history", sub_history, O_JSON | O_RANGE | O_TYPE | O_LIMIT | O_IDS, 1,
	 "history ID|NAME [--start T] [--end T] [--type TYPE] [--limit N] "
	 "[--ids] [--json]",
	 "Definition changes, transitions, resources joining and leaving, "
	 "and every\nnotification attempt, oldest first (all pages; --limit "
	 "stops after N).\nTimes: ISO 8601, epoch seconds or relative (-3h). "
	 "Types: creation, update,\nenabled, disabled, transition, repeat, "
	 "notification, resource_joined,\nresource_left, cooldown, test. "
	 "NAME (when some resource has one) is its\ndisplay name (not with --ids).\n"},
	{"watch", sub_watch, O_JSON | O_PROJECT | O_COUNT | O_IDS, 0,
	 "watch [--project P] [--count N] [--ids] [--json]",
	 "Follow the notification stream (GET /v1/alarms/stream): one line per "
	 "state\ntransition or repeat, as it happens, until Ctrl-C (exit 0) or "
	 "--count\nnotifications. A dropped stream is resumed where it stopped. "
	 "--json prints\neach notification's JSON on one line; --project (an id "
	 "or a name) keeps one\nproject's. Projects and resources by the names "
	 "the agents sent (--ids: ids).\n"},
	{"test", sub_test, O_JSON | O_STATE, 1,
	 "test ID|NAME [--state alarm|ok|insufficient_data] [--json]",
	 "Send a test notification now to the alarm's actions for the state "
	 "(default\nalarm), marked \"type\": \"test\". It counts against the "
	 "project's\nmax_notifications_per_minute (over it: HTTP 429, "
	 "exit 1).\n"},
	{"groups", sub_groups, O_JSON | O_IDS, 0, "groups [--ids] [--json]",
	 "Notification groups waiting to be sent (GET /v1/alarms/groups): when,\n"
	 "how many members, the project (its name where the agents sent one,\n"
	 "not with --ids), the group's labels and the action.\n"},
	{"silences", sub_silences, O_JSON | O_IDS, 0, "silences [--ids] [--json]",
	 "Silences not yet ended (GET /v1/silences): id, state, until, "
	 "matchers,\nwho and why; a resource or project matcher is followed "
	 "by its name in\nbrackets where the agents sent one (not with --ids).\n"},
	{"silence", sub_silence, O_JSON | O_FILE, 0, "silence --file S.json [--json]",
	 "Create a silence (POST /v1/silences; docs/alarms.md, Silences), "
	 "e.g.\n{\"matchers\": {\"host\": \"compute-7\"}, \"duration\": "
	 "\"2h\",\n \"created_by\": \"ops\", \"comment\": \"kernel "
	 "update\"}. '--file -' reads standard input.\n"},
	{"unsilence", sub_unsilence, O_JSON, 1, "unsilence SILENCE-ID",
	 "Expire a silence now (DELETE /v1/silences/ID).\n"},
};
#define NSUBS (sizeof(subs) / sizeof(subs[0]))

static void usage(struct vg_cli *c, FILE *f)
{
	fprintf(f, "usage:");
	for (size_t i = 0; i < NSUBS; i++)
		fprintf(f, "%s %s alarms %s\n", i ? "      " : "", c->prog,
			subs[i].synopsis);
	fprintf(f,
		"\nAlarm definitions, states, history and live notifications "
		"(docs/alarms.md).\nID|NAME is an alarm id or its name. '%s "
		"alarms SUBCOMMAND --help' for more.\nExit codes: 0 ok, 1 API "
		"error, 2 usage error, 3 cannot connect.\n",
		c->prog);
}

/* ---- arguments ----------------------------------------------------------------- */

/* A number >= 1 for --limit or --count, or a usage error (exit code). */
static int positive(struct vg_cli *c, const struct sub *s, const char *opt,
		    const char *v, long *out)
{
	char *end;
	long n;

	if (!v)
		return -1;
	n = strtol(v, &end, 10);
	if (*end || end == v || n < 1) {
		fprintf(c->err, "%s alarms %s: --%s wants a number >= 1\n",
			c->prog, s->name, opt);
		return VG_EXIT_USAGE;
	}
	*out = n;
	return -1;
}

/* vg_cli_parse with every option of `alarms`; one that s does not take is
 * "does not apply here". Returns -1 to go on, else an exit code. */
static int parse(struct vg_cli *c, const struct sub *s, int argc, char **argv,
		 struct args *a)
{
	const char *limit = NULL, *count = NULL;
	const struct vg_cli_opt opts[] = {
		VG_CLI_VAL("project", &a->project),
		VG_CLI_VAL("state", &a->state),
		VG_CLI_VAL("file", &a->file),
		VG_CLI_VAL("start", &a->start),
		VG_CLI_VAL("end", &a->end),
		VG_CLI_VAL("type", &a->type),
		VG_CLI_VAL("limit", &limit),
		VG_CLI_FLAG("patch", &a->patch),
		VG_CLI_VAL("count", &count),
		VG_CLI_FLAG("ids", &a->ids),
	};
	static const unsigned bit[] = {O_PROJECT, O_STATE, O_FILE, O_RANGE,
				       O_RANGE, O_TYPE, O_LIMIT, O_PATCH,
				       O_COUNT, O_IDS};
	char name[32], usage_line[160], about[1024];
	const struct vg_cli_spec spec = {name, NULL, VG_CLI_OPERANDS_ANY,
					 usage_line, about};
	int rc;

	snprintf(name, sizeof(name), "alarms %s", s->name);
	snprintf(usage_line, sizeof(usage_line), "alarms %s", s->synopsis);
	snprintf(about, sizeof(about), "\n%s", s->help);
	rc = vg_cli_parse(c, &spec, opts, sizeof(opts) / sizeof(opts[0]), argc,
			  argv, &a->json);
	if (rc >= 0)
		return rc;
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (!(s->opts & bit[i]) &&
		    (opts[i].value ? *opts[i].value != NULL : *opts[i].flag)) {
			fprintf(c->err, "%s alarms %s: option '--%s' does not "
					"apply here (see '%s alarms %s --help')\n",
				c->prog, s->name, opts[i].name, c->prog, s->name);
			return VG_EXIT_USAGE;
		}
	if ((rc = positive(c, s, "limit", limit, &a->limit)) >= 0 ||
	    (rc = positive(c, s, "count", count, &a->count)) >= 0)
		return rc;
	if (optind < argc && s->nargs)
		a->ref = argv[optind++];
	if (optind < argc) {
		fprintf(c->err, "%s alarms %s: unexpected argument '%s' (see "
				"'%s alarms %s --help')\n",
			c->prog, s->name, argv[optind],
			c->prog, s->name);
		return VG_EXIT_USAGE;
	}
	if (s->nargs && !a->ref) {
		fprintf(c->err, "%s alarms %s: expected an %s (see "
				"'%s alarms %s')\n",
			c->prog, s->name,
			strcmp(s->name, "unsilence") ? "alarm ID or NAME" : "silence id",
			c->prog, strcmp(s->name, "unsilence") ? "list" : "silences");
		return VG_EXIT_USAGE;
	}
	if ((s->opts & O_FILE) && !a->file) {
		fprintf(c->err, "%s alarms %s: --file DEF.json is required "
				"('--file -' reads standard input)\n",
			c->prog, s->name);
		return VG_EXIT_USAGE;
	}
	if (a->state && strcmp(a->state, "alarm") && strcmp(a->state, "ok") &&
	    strcmp(a->state, "insufficient_data")) {
		fprintf(c->err, "%s alarms %s: --state is one of alarm, ok, "
				"insufficient_data\n",
			c->prog, s->name);
		return VG_EXIT_USAGE;
	}
	return -1;
}

int vg_cli_cmd_alarms(struct vg_cli *c, int argc, char **argv)
{
	struct args a = {0};
	const char *name = argc > 1 ? argv[1] : NULL;
	int rc;

	if (!name) {
		fprintf(c->err, "%s alarms: expected a subcommand: list, show, "
				"create, update, delete, enable, disable, history, watch, "
				"test, groups, silences, silence, unsilence (see '%s alarms --help')\n",
			c->prog, c->prog);
		return VG_EXIT_USAGE;
	}
	if (!strcmp(name, "--help") || !strcmp(name, "-h") ||
	    !strcmp(name, "help")) {
		usage(c, c->out);
		return VG_EXIT_OK;
	}
	for (size_t i = 0; i < NSUBS; i++) {
		if (strcmp(name, subs[i].name))
			continue;
		a.sub = name;
		rc = parse(c, &subs[i], argc - 1, argv + 1, &a);
		if (rc >= 0)
			return rc;
		return subs[i].fn(c, &a);
	}
	fprintf(c->err, "%s alarms: unknown subcommand '%s' (list, show, create, "
			"update, delete, enable, disable, history, watch, test, groups, "
			"silences, silence, unsilence)\n",
		c->prog, name);
	return VG_EXIT_USAGE;
}

/* ---- helpers ------------------------------------------------------------------- */

/* "/v1/alarms/<escaped ref><suffix>", malloc'd or NULL. */
static char *alarm_path(const char *ref, const char *suffix)
{
	char *esc = vg_cli_escape(ref), *p;

	if (!esc)
		return NULL;
	p = malloc(strlen(esc) + strlen(suffix) + 16);
	if (p)
		sprintf(p, "/v1/alarms/%s%s", esc, suffix);
	free(esc);
	return p;
}

static int oom(struct vg_cli *c)
{
	fprintf(c->err, "%s: out of memory\n", c->prog);
	return VG_EXIT_API;
}

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* "gt 90" for a threshold alarm, NULL for a composite. */
static const char *condition(json_t *al, char *buf, size_t len)
{
	const char *cmp = str(al, "comparison");
	json_t *th = json_object_get(al, "threshold");
	char v[48];

	if (!cmp || !json_is_number(th))
		return NULL;
	snprintf(buf, len, "%s %s", cmp,
		 vg_cli_format_value(json_number_value(th), v, sizeof(v)));
	return buf;
}

/* Read a definition file ("-": stdin) and check it is one JSON object.
 * *text is malloc'd. Usage errors name the file. */
static int read_definition(struct vg_cli *c, const char *sub,
			   const char *file, char **text)
{
	FILE *f = strcmp(file, "-") ? fopen(file, "rb") : stdin;
	const char *shown = strcmp(file, "-") ? file : "standard input";
	size_t len = 0, n;
	char *buf;
	json_error_t je;
	json_t *j;

	*text = NULL;
	if (!f) {
		fprintf(c->err, "%s alarms %s: cannot read %s: %s\n", c->prog,
			sub, file, strerror(errno));
		return VG_EXIT_USAGE;
	}
	buf = malloc(DEF_MAX_BYTES + 1);
	if (!buf) {
		if (f != stdin)
			fclose(f);
		return oom(c);
	}
	while ((n = fread(buf + len, 1, DEF_MAX_BYTES + 1 - len, f)) > 0 &&
	       len + n <= DEF_MAX_BYTES)
		len += n;
	if (n > 0 || ferror(f)) {
		fprintf(c->err, "%s alarms %s: %s: %s\n", c->prog, sub, shown,
			ferror(f) ? strerror(errno) : "larger than 1 MiB");
		if (f != stdin)
			fclose(f);
		free(buf);
		return VG_EXIT_USAGE;
	}
	if (f != stdin)
		fclose(f);
	buf[len] = '\0';
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!j || !json_is_object(j)) {
		if (j)
			fprintf(c->err, "%s alarms %s: %s: the definition must be "
					"a JSON object\n",
				c->prog, sub, shown);
		else
			fprintf(c->err, "%s alarms %s: %s: not valid JSON (line %d, "
					"column %d): %s\n",
				c->prog, sub, shown, je.line,
				je.column, je.text);
		json_decref(j);
		free(buf);
		return VG_EXIT_USAGE;
	}
	json_decref(j);
	*text = buf;
	return VG_EXIT_OK;
}

/* Send text and parse the JSON answer (an empty answer gives {}). */
static int send_text(struct vg_cli *c, const char *method, const char *path,
		     const char *text, json_t **out)
{
	char *raw;
	size_t len;
	int rc = vg_cli_request(c, method, path, text, &raw, &len);

	*out = NULL;
	if (rc)
		return rc;
	*out = len ? json_loadb(raw, len, 0, NULL) : json_object();
	free(raw);
	if (!*out) {
		fprintf(c->err, "%s: the API at %s did not answer JSON\n", c->prog,
			c->api);
		return VG_EXIT_API;
	}
	return VG_EXIT_OK;
}

/* ---- the names people know -------------------------------------------------------- */

/* Watched resources and projects looked up by name, at most (one request
 * each; the console bounds its alarms page the same way). */
#define NAMES_MAX 50

/* Display names of resources and names of projects, looked up once each
 * through the API (the resource's attributes display_name and
 * project_name). off: --ids, no look-up. */
struct names {
	struct vg_cli *c;
	json_t *res, *proj; /* id -> name, or null when it has none */
	int off;
};

static void names_init(struct names *n, struct vg_cli *c, int off)
{
	n->c = c;
	n->off = off;
	n->res = json_object();
	n->proj = json_object();
}

static void names_free(struct names *n)
{
	json_decref(n->res);
	json_decref(n->proj);
}

static const char *attr(json_t *r, const char *key)
{
	const char *v = str(json_object_get(r, "attributes"), key);

	return v && *v ? v : NULL;
}

/* The display name of resource id (NULL: none, unknown or past the
 * bound). A missing resource is no error: it may have been purged. */
static const char *res_name(struct names *n, const char *id)
{
	json_t *have, *r = NULL;
	char *esc, *path = NULL;

	if (n->off || !id || !*id || !n->res)
		return NULL;
	if ((have = json_object_get(n->res, id)))
		return json_string_value(have);
	if (json_object_size(n->res) >= NAMES_MAX)
		return NULL;
	if ((esc = vg_cli_escape(id)) && asprintf(&path, "/v1/resources/%s", esc) < 0)
		path = NULL;
	free(esc);
	if (path && vg_cli_get_if(n->c, path, &r) == VG_EXIT_OK && r) {
		const char *pid = str(r, "project"), *pn = attr(r, "project_name");
		if (pid && pn && n->proj && !json_object_get(n->proj, pid))
			json_object_set_new(n->proj, pid, json_string(pn));
	}
	free(path);
	json_object_set_new(n->res, id, attr(r, "display_name") ? json_string(attr(r, "display_name")) : json_null());
	json_decref(r);
	return json_string_value(json_object_get(n->res, id));
}

/* The name of project id, as res_name. */
static const char *proj_name(struct names *n, const char *id)
{
	json_t *have;
	char buf[256];

	if (n->off || !id || !*id || !n->proj)
		return NULL;
	if ((have = json_object_get(n->proj, id)))
		return json_string_value(have);
	if (json_object_size(n->proj) >= NAMES_MAX)
		return NULL;
	const char *pn = vg_cli_project_name(n->c, id, buf, sizeof(buf));
	json_object_set_new(n->proj, id, pn ? json_string(pn) : json_null());
	return json_string_value(json_object_get(n->proj, id));
}

/* "name (id)" in buf where id has a name other than itself, else id. */
static const char *named(const char *name, const char *id, char *buf, size_t len)
{
	if (!name || !id || !strcmp(name, id))
		return id;
	snprintf(buf, len, "%s (%s)", name, id);
	return buf;
}

/* ---- list ------------------------------------------------------------------------- */

static int sub_list(struct vg_cli *c, struct args *a)
{
	static const char *const hdr[] = {"NAME", "PROJECT", "RESOURCE", "STATE",
					  "SEVERITY", "METRIC", "THRESHOLD",
					  "ENABLED"};
	const char *project;
	char pbuf[256];
	json_t *all, *al;
	struct vg_table *t;
	struct names nm;
	int rc;
	size_t i;

	if ((rc = vg_cli_resolve_project(c, "alarms list", a->project, pbuf,
					 sizeof(pbuf), &project)))
		return rc;
	const char *kv[] = {"project", project, "state", a->state, NULL};
	rc = vg_cli_fetch_all(c, "/v1/alarms", kv, "alarms", 0, a->json, &all);
	if (rc || !all)
		return rc;
	names_init(&nm, c, a->ids);
	t = vg_table_new(8, hdr, NULL);
	json_array_foreach(all, i, al) {
		char cb[96], mb[300];
		const char *type = str(al, "type");
		int composite = type && !strcmp(type, "composite");
		int event = type && !strcmp(type, "event");
		const char *metric = str(al, "metric");
		json_t *grp = json_object_get(al, "group");
		if (event) {
			json_t *k = json_object_get(json_object_get(al, "event"), "kind");
			size_t ki, o = (size_t)snprintf(mb, sizeof(mb), "(event");
			json_t *kx;
			json_array_foreach(k, ki, kx)
				if (o < sizeof(mb))
					o += (size_t)snprintf(mb + o, sizeof(mb) - o,
							      "%s%s", ki ? "," : " ",
							      json_string_value(kx) ? json_string_value(kx) : "?");
			if (o < sizeof(mb))
				snprintf(mb + o, sizeof(mb) - o, ")");
			metric = mb;
		} else if (json_is_object(grp)) {
			/* a group alarm: "average(cpu.util) of group" */
			snprintf(mb, sizeof(mb), "%s(%s) of group",
				 str(grp, "statistic") ? str(grp, "statistic") : "?",
				 metric ? metric : "?");
			metric = mb;
		}
		/* the watched resource: one, or those a selector matches */
		const char *res = str(al, "resource"), *rn = res_name(&nm, res);
		const char *pn = proj_name(&nm, str(al, "project"));
		if (!res && json_is_object(json_object_get(al, "selector")))
			res = "(selector)";
		const char *row[8] = {
			str(al, "name"),
			pn ? pn : str(al, "project"),
			rn ? rn : res,
			str(al, "state"),
			str(al, "severity"),
			composite ? "(composite)" : metric,
			condition(al, cb, sizeof(cb)),
			json_is_true(json_object_get(al, "enabled")) ? "true"
								     : "false",
		};
		if (t)
			vg_table_add(t, row);
	}
	vg_table_print_free(t, c->out);
	names_free(&nm);
	json_decref(all);
	return VG_EXIT_OK;
}

/* ---- show --------------------------------------------------------------------------- */

static void kv_line(struct vg_cli *c, const char *label, const char *v)
{
	vg_cli_line(c->out, "%-17s%s", label, v && *v ? v : "-");
}

static const char *seconds(json_t *v, const char *unit, char *buf, size_t len)
{
	if (!json_is_integer(v))
		return NULL;
	snprintf(buf, len, "%lld %s", (long long)json_integer_value(v), unit);
	return buf;
}

static void show_selector(struct vg_cli *c, const char *label, json_t *sel)
{
	char buf[1024] = "";
	size_t o = 0;
	const char *k;
	json_t *v;

	json_object_foreach(sel, k, v) {
		if (json_is_string(v)) {
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s=%s",
					      o ? " " : "", k, json_string_value(v));
		} else if (json_is_integer(v)) {
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s=%lld",
					      o ? " " : "", k,
					      (long long)json_integer_value(v));
		} else if (json_is_array(v)) {
			size_t ai;
			json_t *av;
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s=",
					      o ? " " : "", k);
			json_array_foreach(v, ai, av)
				if (o < sizeof(buf))
					o += (size_t)snprintf(buf + o, sizeof(buf) - o,
							      "%s%s", ai ? "," : "",
							      json_string_value(av) ? json_string_value(av) : "?");
		} else if (json_is_object(v)) {
			const char *mk;
			json_t *mv;
			json_object_foreach(v, mk, mv)
				o += (size_t)snprintf(buf + o, sizeof(buf) - o,
						      "%s%s.%s=%s", o ? " " : "", k,
						      mk, json_string_value(mv) ? json_string_value(mv) : "?");
		}
		if (o >= sizeof(buf))
			break;
	}
	kv_line(c, label, buf);
}

static void show_actions(struct vg_cli *c, json_t *acts)
{
	static const char *const states[] = {"alarm", "ok", "insufficient_data"};
	int any = 0;

	for (size_t s = 0; s < 3; s++) {
		json_t *l = json_object_get(acts, states[s]), *x;
		size_t i;
		if (!json_array_size(l))
			continue;
		fprintf(c->out, "%-17s%s:", any ? "" : "Actions", states[s]);
		json_array_foreach(l, i, x) {
			fputs(i ? ", " : " ", c->out);
			vg_cli_put_safe(c->out, json_string_value(x)
							? json_string_value(x)
							: "?");
		}
		fputc('\n', c->out);
		any = 1;
	}
	if (!any)
		kv_line(c, "Actions", NULL);
}

static int sub_show(struct vg_cli *c, struct args *a)
{
	char *path = alarm_path(a->ref, "");
	char b1[128], b2[128], nb[600];
	json_t *j, *insts;
	struct names nm;
	int rc;

	if (!path)
		return oom(c);
	rc = vg_cli_fetch(c, path, a->json, &j);
	if (rc || !j)
		return rc;
	names_init(&nm, c, a->ids);
	int composite = str(j, "type") && !strcmp(str(j, "type"), "composite");
	kv_line(c, "ID", str(j, "id"));
	kv_line(c, "Name", str(j, "name"));
	/* the resource first: its look-up also names its project */
	const char *rn = res_name(&nm, str(j, "resource"));
	kv_line(c, "Project", named(proj_name(&nm, str(j, "project")), str(j, "project"), nb, sizeof(nb)));
	kv_line(c, "Type", str(j, "type"));
	kv_line(c, "Description", str(j, "description"));
	kv_line(c, "Enabled", json_is_true(json_object_get(j, "enabled")) ? "true" : "false");
	kv_line(c, "Severity", str(j, "severity"));
	if (str(j, "state_since"))
		snprintf(b1, sizeof(b1), "%s (since %s)", str(j, "state"),
			 str(j, "state_since"));
	else
		snprintf(b1, sizeof(b1), "%s", str(j, "state") ? str(j, "state") : "?");
	kv_line(c, "State", b1);
	kv_line(c, "Reason", str(j, "state_reason"));
	int event = str(j, "type") && !strcmp(str(j, "type"), "event");
	if (composite) {
		kv_line(c, "Rule", str(j, "rule"));
	} else if (event) {
		show_selector(c, "Event", json_object_get(j, "event"));
	} else {
		json_t *grp = json_object_get(j, "group");
		kv_line(c, "Metric", str(j, "metric"));
		if (json_is_object(json_object_get(j, "selector")))
			show_selector(c, "Selector", json_object_get(j, "selector"));
		else
			kv_line(c, "Resource", named(rn, str(j, "resource"), nb, sizeof(nb)));
		if (json_is_object(grp)) {
			json_t *mt = json_object_get(grp, "member_threshold");
			char v[48];
			if (json_is_number(mt))
				snprintf(b2, sizeof(b2), "%s across the members "
							 "(member threshold %s)",
					 str(grp, "statistic"),
					 vg_cli_format_value(json_number_value(mt), v,
							     sizeof(v)));
			else
				snprintf(b2, sizeof(b2), "%s across the members",
					 str(grp, "statistic") ? str(grp, "statistic") : "?");
			kv_line(c, "Group", b2);
		}
		kv_line(c, "Statistic", str(j, "statistic"));
		kv_line(c, "Period", seconds(json_object_get(j, "period"), "s", b1, sizeof(b1)));
		snprintf(b1, sizeof(b1), "%lld of %lld",
			 (long long)json_integer_value(json_object_get(j, "datapoints_to_alarm")),
			 (long long)json_integer_value(json_object_get(j, "evaluation_periods")));
		kv_line(c, "Datapoints", b1);
		kv_line(c, "Condition", condition(j, b1, sizeof(b1)));
		kv_line(c, "Missing data", str(j, "missing_data"));
		json_t *rep = json_object_get(j, "repeat_every");
		kv_line(c, "Repeat every",
			json_integer_value(rep) > 0
				? seconds(rep, "periods", b2, sizeof(b2))
				: "off");
	}
	kv_line(c, "Keep firing for", seconds(json_object_get(j, "keep_firing_for"), "s", b1, sizeof(b1)));
	if (json_object_get(j, "cooldown"))
		kv_line(c, "Cooldown", seconds(json_object_get(j, "cooldown"), "s", b1, sizeof(b1)));
	if (json_is_object(json_object_get(j, "notify_group"))) {
		json_t *ng = json_object_get(j, "notify_group"), *l;
		char by[200] = "";
		size_t i, o = 0;
		json_array_foreach(json_object_get(ng, "by"), i, l)
			o += (size_t)snprintf(by + o, o < sizeof(by) ? sizeof(by) - o : 0,
					      "%s%s", i ? "," : "", json_string_value(l));
		snprintf(b1, sizeof(b1), "by %s, wait %lld s, interval %lld s",
			 by[0] ? by : "(project and action only)",
			 (long long)json_integer_value(json_object_get(ng, "wait")),
			 (long long)json_integer_value(json_object_get(ng, "interval")));
		kv_line(c, "Notify group", b1);
	}
	show_actions(c, json_object_get(j, "actions"));
	kv_line(c, "Created", str(j, "created_at"));
	kv_line(c, "Updated", str(j, "updated_at"));

	insts = json_object_get(j, "instances");
	if (json_array_size(insts)) {
		static const struct vg_cli_col cols[] = {
			{"RESOURCE", "resource", VG_ALIGN_LEFT},
			{"NAME", "display_name", VG_ALIGN_LEFT},
			{"STATE", "state", VG_ALIGN_LEFT},
			{"SINCE", "since", VG_ALIGN_LEFT},
			{"REASON", "reason", VG_ALIGN_LEFT},
		};
		static const struct vg_cli_col raw[] = {
			{"RESOURCE", "resource", VG_ALIGN_LEFT},
			{"STATE", "state", VG_ALIGN_LEFT},
			{"SINCE", "since", VG_ALIGN_LEFT},
			{"REASON", "reason", VG_ALIGN_LEFT},
		};
		size_t i;
		json_t *in;
		int any = 0; /* a NAME column when some resource has one */
		json_array_foreach(insts, i, in) {
			const char *dn = res_name(&nm, str(in, "resource"));
			if (dn)
				json_object_set_new(in, "display_name", json_string(dn));
			any |= dn != NULL;
		}
		struct vg_table *t = any ? vg_cli_rows_table(insts, cols, 5)
					 : vg_cli_rows_table(insts, raw, 4);
		fprintf(c->out, "\nInstances (%zu)\n", json_array_size(insts));
		vg_table_print_free(t, c->out);
	}
	names_free(&nm);
	json_decref(j);
	return VG_EXIT_OK;
}

/* ---- create, update, delete, enable/disable --------------------------------------------- */

/* method path (malloc'd, freed here; NULL: out of memory) with text (may
 * be NULL). With --json the answer is printed and *out set to NULL; else
 * *out is the answer for the caller's line (caller decrefs). */
static int call(struct vg_cli *c, struct args *a, const char *method,
		char *path, const char *text, json_t **out)
{
	int rc;

	*out = NULL;
	if (!path)
		return oom(c);
	rc = send_text(c, method, path, text, out);
	free(path);
	if (rc || !a->json)
		return rc;
	vg_cli_print_json(c, *out);
	json_decref(*out);
	*out = NULL;
	return VG_EXIT_OK;
}

/* "?" for a missing string member. */
static const char *str_or(json_t *o, const char *key, const char *dflt)
{
	return str(o, key) ? str(o, key) : dflt;
}

/* create and update: send the definition file. */
static int sub_put(struct vg_cli *c, struct args *a)
{
	int create = !strcmp(a->sub, "create");
	const char *method = create ? "POST" : a->patch ? "PATCH"
							: "PUT";
	char *text, *path;
	json_t *j;
	int rc = read_definition(c, a->sub, a->file, &text);

	if (rc)
		return rc;
	path = create ? strdup("/v1/alarms") : alarm_path(a->ref, "");
	rc = call(c, a, method, path, text, &j);
	free(text);
	if (rc || !j)
		return rc;
	if (create)
		vg_cli_line(c->out, "created alarm %s (id %s) in project %s",
			    str_or(j, "name", "?"), str_or(j, "id", "?"),
			    str_or(j, "project", "?"));
	else
		vg_cli_line(c->out, "updated alarm %s (id %s)",
			    str_or(j, "name", "?"), str_or(j, "id", "?"));
	json_decref(j);
	return VG_EXIT_OK;
}

static int sub_delete(struct vg_cli *c, struct args *a)
{
	json_t *j;
	int rc = call(c, a, "DELETE", alarm_path(a->ref, ""), NULL, &j);

	if (rc || !j)
		return rc;
	vg_cli_line(c->out, "deleted alarm %s", a->ref);
	json_decref(j);
	return VG_EXIT_OK;
}

static int sub_enable(struct vg_cli *c, struct args *a)
{
	int enable = !strcmp(a->sub, "enable");
	json_t *j;
	int rc = call(c, a, "POST",
		      alarm_path(a->ref, enable ? "/enable" : "/disable"), NULL,
		      &j);

	if (rc || !j)
		return rc;
	vg_cli_line(c->out, "%s alarm %s", enable ? "enabled" : "disabled",
		    str_or(j, "name", a->ref));
	json_decref(j);
	return VG_EXIT_OK;
}

/* ---- history ----------------------------------------------------------------------------- */

/* One history row's detail in words. */
static const char *history_detail(json_t *row, char *buf, size_t len)
{
	const char *type = str(row, "type");
	json_t *d = json_object_get(row, "detail"), *def;
	char v[48];

	buf[0] = '\0';
	if (!type || !json_is_object(d))
		return NULL;
	if (!strcmp(type, "transition") || !strcmp(type, "repeat")) {
		snprintf(buf, len, "%s -> %s: %s",
			 str(d, "previous") ? str(d, "previous") : "?",
			 str(d, "current") ? str(d, "current") : "?",
			 str(d, "reason") ? str(d, "reason") : "");
	} else if (!strcmp(type, "notification")) {
		json_t *http = json_object_get(d, "http_status");
		size_t o = (size_t)snprintf(buf, len, "%s %s (attempt %lld)",
					    str(d, "status") ? str(d, "status") : "?",
					    str(d, "action") ? str(d, "action") : "?",
					    (long long)json_integer_value(
						    json_object_get(d, "attempt")));
		if (o < len && json_is_integer(http))
			o += (size_t)snprintf(buf + o, len - o, ", HTTP %lld",
					      (long long)json_integer_value(http));
		if (o < len && str(d, "error"))
			o += (size_t)snprintf(buf + o, len - o, ", %s",
					      str(d, "error"));
		if (o < len && str(d, "next_attempt"))
			snprintf(buf + o, len - o, ", next attempt %s",
				 str(d, "next_attempt"));
	} else if ((def = json_object_get(d, "definition")) &&
		   json_is_object(def)) {
		if (str(def, "rule"))
			snprintf(buf, len, "rule %s", str(def, "rule"));
		else
			snprintf(buf, len, "%s %s %s, %lld of %lld x %lld s",
				 str(def, "statistic") ? str(def, "statistic") : "?",
				 str(def, "metric") ? str(def, "metric") : "?",
				 condition(def, v, sizeof(v)) ? v : "?",
				 (long long)json_integer_value(json_object_get(def, "datapoints_to_alarm")),
				 (long long)json_integer_value(json_object_get(def, "evaluation_periods")),
				 (long long)json_integer_value(json_object_get(def, "period")));
	} else if (str(d, "state")) { /* resource_left */
		snprintf(buf, len, "was %s", str(d, "state"));
	} else if (str(d, "type")) { /* resource_joined */
		snprintf(buf, len, "%s", str(d, "type"));
	}
	/* one line per row whatever the detail holds: the table renders
	 * each cell with vg_cli_safe */
	return buf[0] ? buf : NULL;
}

static int sub_history(struct vg_cli *c, struct args *a)
{
	static const char *const hdr[] = {"TIME", "TYPE", "RESOURCE", "NAME", "DETAIL"};
	static const char *const raw[] = {"TIME", "TYPE", "RESOURCE", "DETAIL"};
	const char *kv[] = {"start", a->start, "end", a->end, "type", a->type,
			    NULL};
	char *base = alarm_path(a->ref, "/history");
	json_t *all, *row;
	struct vg_table *t;
	struct names nm;
	int rc;
	size_t i;

	if (!base)
		return oom(c);
	rc = vg_cli_fetch_all(c, base, kv, "history", a->limit, a->json, &all);
	free(base);
	if (rc || !all)
		return rc;
	names_init(&nm, c, a->ids);
	/* a NAME column when some resource has a display name */
	int any = 0;
	json_array_foreach(all, i, row)
		any |= res_name(&nm, str(row, "resource")) != NULL;
	t = any ? vg_table_new(5, hdr, NULL) : vg_table_new(4, raw, NULL);
	json_array_foreach(all, i, row) {
		char buf[1024];
		const char *res = str(row, "resource");
		const char *cells[5] = {str(row, "time"), str(row, "type"), res,
					res_name(&nm, res),
					history_detail(row, buf, sizeof(buf))};
		if (!any)
			cells[3] = cells[4];
		if (t)
			vg_table_add(t, cells);
	}
	vg_table_print_free(t, c->out);
	names_free(&nm);
	json_decref(all);
	return VG_EXIT_OK;
}

/* ---- watch ---------------------------------------------------------------------------------- */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

struct sse {
	struct vg_cli *c;
	struct args *a;
	char *line; /* the current line being received */
	size_t len, cap;
	char *data; /* the current event's data lines, joined */
	size_t dlen, dcap;
	char event[64];
	char last_id[32]; /* of the last event received (for a resume) */
	long seen;        /* notifications printed */
	/* ids of the last notifications printed: a resumed stream may
	 * replay some (event ids restart with the collector) */
	char recent[RECENT_IDS][48];
	unsigned nrecent;
	int connected; /* a byte of a 2xx stream arrived */
	int overflow;  /* the current event is beyond SSE_EVENT_MAX */
};

static int grow(char **p, size_t *cap, size_t need)
{
	size_t nc = *cap ? *cap : 256;
	char *np;

	if (need <= *cap)
		return 0;
	if (need > SSE_EVENT_MAX + 1)
		return -ENOSPC;
	while (nc < need)
		nc *= 2;
	if (!(np = realloc(*p, nc)))
		return -ENOMEM;
	*p = np;
	*cap = nc;
	return 0;
}

/* One notification as a line:
 * TIME PROJECT/NAME SEVERITY PREVIOUS -> CURRENT [on RESOURCE]: REASON */
static void print_notice(struct sse *s, json_t *n)
{
	FILE *o = s->c->out;
	const char *res = str(n, "resource"), *reason = str(n, "reason");
	const char *rn = s->a->ids ? NULL : str(n, "resource_name");
	const char *pn = s->a->ids ? NULL : str(n, "project_name");
	char rb[600];

	/* the names people know, sent with the notification */
	res = named(rn && *rn ? rn : NULL, res, rb, sizeof(rb));
	if (!pn || !*pn)
		pn = str(n, "project");
	vg_cli_line(o, "%s %s/%s %s %s -> %s%s%s%s: %s",
		    str(n, "timestamp") ? str(n, "timestamp") : "?",
		    pn ? pn : "?",
		    str(n, "alarm_name") ? str(n, "alarm_name") : "?",
		    str(n, "severity") ? str(n, "severity") : "?",
		    str(n, "previous") ? str(n, "previous") : "?",
		    str(n, "current") ? str(n, "current") : "?",
		    str(n, "type") && !strcmp(str(n, "type"), "repeat") ? " (repeat)" : "",
		    res ? " on " : "", res ? res : "", reason ? reason : "");
}

/* A complete event: print it. Returns non-zero to stop the stream. */
static int dispatch(struct sse *s)
{
	const char *ev = s->event[0] ? s->event : "message";
	json_t *n;

	if (s->overflow || !s->data)
		return 0;
	s->data[s->dlen] = '\0';
	if (!strcmp(ev, "lost")) {
		n = json_loads(s->data, 0, NULL);
		fprintf(s->c->err, "%s alarms watch: %lld notification(s) lost: "
				   "this client fell behind the stream\n",
			s->c->prog,
			(long long)json_integer_value(json_object_get(n, "missed")));
		json_decref(n);
		return 0;
	}
	if (strcmp(ev, "alarm"))
		return 0;
	n = json_loads(s->data, 0, NULL);
	if (!n)
		return 0;
	if (s->a->project &&
	    strcmp(str(n, "project") ? str(n, "project") : "", s->a->project)) {
		json_decref(n);
		return 0;
	}
	if (str(n, "notification_id")) {
		const char *id = str(n, "notification_id");
		unsigned k = s->nrecent < RECENT_IDS ? s->nrecent : RECENT_IDS;
		for (unsigned i = 0; i < k; i++)
			if (!strcmp(s->recent[i], id)) {
				json_decref(n);
				return 0; /* printed before the stream resumed */
			}
		snprintf(s->recent[s->nrecent++ % RECENT_IDS], sizeof(s->recent[0]),
			 "%s", id);
	}
	if (s->a->json)
		fprintf(s->c->out, "%s\n", s->data);
	else
		print_notice(s, n);
	fflush(s->c->out);
	json_decref(n);
	s->seen++;
	return s->a->count && s->seen >= s->a->count;
}

/* One line of the stream (without its end of line). */
static int on_line(struct sse *s, char *l, size_t len)
{
	char *v;
	size_t vl;

	if (!len) { /* blank line: the event is complete */
		int stop = dispatch(s);
		s->dlen = 0;
		s->event[0] = '\0';
		s->overflow = 0;
		return stop;
	}
	if (l[0] == ':')
		return 0; /* comment (keepalive) */
	v = memchr(l, ':', len);
	if (v) {
		*v++ = '\0';
		if (*v == ' ')
			v++;
		vl = len - (size_t)(v - l);
	} else {
		v = l + len;
		vl = 0;
	}
	if (!strcmp(l, "data")) {
		if (s->overflow || grow(&s->data, &s->dcap, s->dlen + vl + 2)) {
			s->overflow = 1;
			return 0;
		}
		if (s->dlen)
			s->data[s->dlen++] = '\n';
		memcpy(s->data + s->dlen, v, vl);
		s->dlen += vl;
	} else if (!strcmp(l, "event")) {
		snprintf(s->event, sizeof(s->event), "%.*s", (int)vl, v);
	} else if (!strcmp(l, "id") && vl < sizeof(s->last_id)) {
		snprintf(s->last_id, sizeof(s->last_id), "%.*s", (int)vl, v);
	}
	return 0;
}

static int on_bytes(void *ud, const char *data, size_t len)
{
	struct sse *s = ud;

	s->connected = 1;
	for (size_t i = 0; i < len; i++) {
		char ch = data[i];
		if (ch == '\n') {
			size_t n = s->len;
			if (n && s->line[n - 1] == '\r')
				n--;
			if (s->line)
				s->line[n] = '\0';
			s->len = 0;
			if (on_line(s, s->line ? s->line : (char *)"", n))
				return 1;
			continue;
		}
		if (grow(&s->line, &s->cap, s->len + 2)) {
			s->overflow = 1; /* an absurd line: dropped */
			continue;
		}
		s->line[s->len++] = ch;
	}
	return 0;
}

static void pause_ms(long ms)
{
	struct timespec ts = {0, 100 * 1000000L};

	for (long t = 0; t < ms && !g_stop; t += 100)
		nanosleep(&ts, NULL);
}

static int sub_watch(struct vg_cli *c, struct args *a)
{
	struct sse s = {.c = c, .a = a};
	struct sigaction sa = {0}, old_int, old_term;
	char hdr[64], pbuf[256];
	const char *headers[2] = {NULL, NULL};
	int rc, ever = 0;

	if ((rc = vg_cli_resolve_project(c, "alarms watch", a->project, pbuf,
					 sizeof(pbuf), &a->project)))
		return rc;

	g_stop = 0;
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	for (;;) {
		s.connected = 0;
		s.len = s.dlen = 0;
		s.event[0] = '\0';
		s.overflow = 0;
		if (s.last_id[0]) {
			snprintf(hdr, sizeof(hdr), "Last-Event-ID: %s", s.last_id);
			headers[0] = hdr;
		}
		rc = vg_cli_stream(c, "/v1/alarms/stream", headers, on_bytes, &s,
				   &g_stop);
		ever |= s.connected;
		if (g_stop || (a->count && s.seen >= a->count)) {
			rc = VG_EXIT_OK;
			break;
		}
		/* A stream that was flowing and stopped (the collector
		 * restarted, the network dropped) is resumed. One that never
		 * started is given up with its exit code: the API refused
		 * (token, 501 without streaming), or nothing to resume. */
		if (!s.connected && (rc == VG_EXIT_API || rc == VG_EXIT_USAGE ||
				     !ever)) {
			if (!rc) {
				fprintf(c->err, "%s alarms watch: the API closed "
						"the stream at once\n",
					c->prog);
				rc = VG_EXIT_API;
			}
			break;
		}
		fprintf(c->err, "%s alarms watch: the stream %s; resuming in %d "
				"s\n",
			c->prog, s.connected ? "stopped" : "is still down",
			RECONNECT_MS / 1000);
		pause_ms(RECONNECT_MS);
		if (g_stop) {
			rc = VG_EXIT_OK;
			break;
		}
	}
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	free(s.line);
	free(s.data);
	return rc;
}

/* ---- test notification ------------------------------------------------------------ */

static int sub_test(struct vg_cli *c, struct args *a)
{
	json_t *j, *body = json_object(), *x;
	char *text;
	size_t i;
	int rc;

	if (a->state)
		json_object_set_new(body, "state", json_string(a->state));
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!text)
		return oom(c);
	rc = call(c, a, "POST", alarm_path(a->ref, "/test"), text, &j);
	free(text);
	if (rc || !j)
		return rc;
	vg_cli_line(c->out, "sent test notification %s (%s) to:", str_or(j, "notification_id", "?"),
		    str_or(j, "state", "?"));
	json_array_foreach(json_object_get(j, "actions"), i, x)
		vg_cli_line(c->out, "  %s", json_string_value(x));
	json_decref(j);
	return VG_EXIT_OK;
}

/* ---- notification groups --------------------------------------------------------- */

static int sub_groups(struct vg_cli *c, struct args *a)
{
	json_t *j, *g;
	size_t i;
	int rc = call(c, a, "GET", strdup("/v1/alarms/groups"), NULL, &j);

	if (rc || !j)
		return rc;
	struct names nm;
	names_init(&nm, c, a->ids);
	json_array_foreach(json_object_get(j, "groups"), i, g) {
		char *l = json_dumps(json_object_get(g, "group"), JSON_COMPACT | JSON_SORT_KEYS);
		char pb[600];
		const char *pid = str_or(g, "project", "?");
		vg_cli_line(c->out, "%s  %lld members  %s  %s  %s", str_or(g, "flush_at", "?"),
			    (long long)json_integer_value(json_object_get(g, "members")),
			    named(proj_name(&nm, pid), pid, pb, sizeof(pb)), l ? l : "{}",
			    str_or(g, "action", "?"));
		free(l);
	}
	names_free(&nm);
	json_decref(j);
	return VG_EXIT_OK;
}

/* ---- silences ---------------------------------------------------------------------- */

static int sub_silences(struct vg_cli *c, struct args *a)
{
	json_t *j, *s;
	size_t i;
	int rc = call(c, a, "GET", strdup("/v1/silences"), NULL, &j);

	if (rc || !j)
		return rc;
	struct names nm;
	names_init(&nm, c, a->ids);
	json_array_foreach(json_object_get(j, "silences"), i, s) {
		json_t *mt = json_object_get(s, "matchers");
		char *m = json_dumps(mt, JSON_COMPACT);
		/* a resource or project matcher: its name beside */
		const char *rn = res_name(&nm, str(mt, "resource"));
		const char *pn = proj_name(&nm, str(mt, "project"));
		char known[600] = "";
		if (rn || pn)
			snprintf(known, sizeof(known), " [%s%s%s%s%s]", rn ? "resource " : "",
				 rn ? rn : "", rn && pn ? ", " : "", pn ? "project " : "",
				 pn ? pn : "");
		vg_cli_line(c->out, "%s  %-7s until %s  %s%s  by %s: %s",
			    str_or(s, "id", "?"), str_or(s, "state", "?"),
			    str_or(s, "ends_at", "?"), m ? m : "{}", known,
			    str_or(s, "created_by", "?"), str_or(s, "comment", ""));
		free(m);
	}
	names_free(&nm);
	json_decref(j);
	return VG_EXIT_OK;
}

static int sub_silence(struct vg_cli *c, struct args *a)
{
	char *text;
	json_t *j;
	int rc = read_definition(c, a->sub, a->file, &text);

	if (rc)
		return rc;
	rc = call(c, a, "POST", strdup("/v1/silences"), text, &j);
	free(text);
	if (rc || !j)
		return rc;
	vg_cli_line(c->out, "created silence %s (%s until %s)", str_or(j, "id", "?"),
		    str_or(j, "state", "?"), str_or(j, "ends_at", "?"));
	json_decref(j);
	return VG_EXIT_OK;
}

static int sub_unsilence(struct vg_cli *c, struct args *a)
{
	char *esc = vg_cli_escape(a->ref), *path = NULL;
	json_t *j;
	int rc;

	if (esc && (path = malloc(strlen(esc) + 16)))
		sprintf(path, "/v1/silences/%s", esc);
	free(esc);
	rc = call(c, a, "DELETE", path, NULL, &j);
	if (rc || !j)
		return rc;
	vg_cli_line(c->out, "expired silence %s", a->ref);
	json_decref(j);
	return VG_EXIT_OK;
}
