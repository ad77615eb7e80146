/*
 * cli_run.c — the `vigie` command line: global options and the command
 * table.
 *
 * Design: `vigie [--api URL] [--token T] [--timeout S] [--retry-wait S]
 * COMMAND [ARGS]`.
 * Global options are read up to the first non-option (the command); each
 * command then parses its own arguments, the global options among them
 * (VG_CLI_GLOBAL_OPTS, one handler: vg_cli_common_opt), so every one may
 * come after the command as well, as vigie(1) says. Adding a command (as
 * stats, top, graph, token were added) is one line in `commands` and one
 * vg_cli_cmd_* function.
 *
 * Invariants: usage errors exit 2 with one line naming the fix; --help
 * prints to c->out and exits 0.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "query/cli/cli_invoice.h"
#include "query/cli/cli.h"

static const struct {
	const char *name;
	int (*fn)(struct vg_cli *c, int argc, char **argv);
	const char *summary;
} commands[] = {
	{"resources", vg_cli_cmd_resources, "list resources (filters, pagination)"},
	{"show", vg_cli_cmd_show, "one resource with its metrics and last values"},
	{"measures", vg_cli_cmd_measures, "the points of one metric of a resource"},
	{"health", vg_cli_cmd_health, "is the API up"},
	{"stats", vg_cli_cmd_stats, "statistics per period (count, sum, mean, min, max, pNN)"},
	{"latest", vg_cli_cmd_latest, "the newest value of every metric of a resource"},
	{"top", vg_cli_cmd_top, "the busiest resources now, refreshed in place"},
	{"aggregate", vg_cli_cmd_aggregate, "one metric across resources, by project/host/flavor"},
	{"graph", vg_cli_cmd_graph, "draw series into a PNG file"},
	{"query", vg_cli_cmd_query, "an expression across series, drawn as sparklines"},
	{"put", vg_cli_cmd_put, "publish measures (custom metrics) for the token's project"},
	{"token", vg_cli_cmd_token, "create, list and revoke API tokens (admin)"},
	{"invoice", vg_cli_cmd_invoice, "a project's invoice for a month; finalize a month"},
	{"alarms", vg_cli_cmd_alarms, "alarm definitions, states, history; watch notifications"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(struct vg_cli *c, FILE *f)
{
	fprintf(f,
		"usage: %s [--api URL] [--token TOKEN] [--timeout SECONDS] "
		"[--retry-wait SECONDS]\n             [--output FORMAT] COMMAND "
		"[ARGS]\n\n"
		"Query a vigie collector's HTTP API.\n\n"
		"Commands:\n",
		c->prog);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f,
		"\nOptions:\n"
		"  --api URL        API base URL (default $VIGIE_API or %s)\n"
		"  --token TOKEN    bearer token (default $VIGIE_TOKEN)\n"
		"  --timeout S      give up on a request after S seconds "
		"(default 60)\n"
		"  --retry-wait S   wait at most S seconds in all to ask again "
		"after a 429 or\n"
		"                   503 with Retry-After (default %d; 0: never "
		"retry)\n"
		"  --cacert FILE    CA certificate(s) for an https API (default "
		"$VIGIE_CACERT,\n"
		"                   else the system's)\n"
		"  --output FORMAT  table (default), json or csv, for every "
		"command\n"
		"                   (graph's --output is its PNG)\n"
		"  --help           this help; '%s COMMAND --help' for a "
		"command\n"
		"These options may also come after the command.\n\n"
		"The API, token, CA file, timeout and retry wait may also be set in "
		"~/.config/vigie/cli.conf\n"
		"($VIGIE_CONFIG; api = URL, token = T, cacert = FILE, timeout = S, "
		"retry_wait = S;\nmode 0600 when it holds a token). Flags win over "
		"the environment, which wins\nover the file.\n\n"
		"Exit codes: 0 ok, 1 API error, 2 usage error, 3 cannot "
		"connect.\n",
		VG_CLI_DEFAULT_API, VG_CLI_RETRY_WAIT_S, c->prog);
}

int vg_cli_run(int argc, char **argv, FILE *out, FILE *err)
{
	static const struct option opts[] = {
		VG_CLI_GLOBAL_OPTS,
		{"output", required_argument, NULL, VG_CLI_OPT_OUTPUT},
		{"help", no_argument, NULL, VG_CLI_OPT_HELP},
		{NULL, 0, NULL, 0},
	};
	struct vg_cli c = {
		.prog = "vigie",
		.api = getenv("VIGIE_API"),
		.token = getenv("VIGIE_TOKEN"),
		.timeout_s = 60,
		.retry_wait_s = VG_CLI_RETRY_WAIT_S,
		.cacert = getenv("VIGIE_CACERT"),
		.out = out,
		.err = err,
	};
	static struct vg_cli_conf cf; /* strings c points into */
	char path[1024], msg[1200];
	int o, rc;

	/* flag > environment > the user's file > default */
	vg_cli_set_output("table");
	if (vg_cli_conf_path(path, sizeof(path)) == 0 &&
	    vg_cli_conf_load(path, &cf, msg, sizeof(msg)) < 0) {
		fprintf(err, "%s: %s\n", c.prog, msg);
		return VG_EXIT_USAGE;
	}
	if ((!c.api || !*c.api) && cf.api[0])
		c.api = cf.api;
	if ((!c.token || !*c.token) && cf.token[0])
		c.token = cf.token;
	if ((!c.cacert || !*c.cacert) && cf.cacert[0])
		c.cacert = cf.cacert;
	if (cf.timeout_s)
		c.timeout_s = cf.timeout_s;
	if (cf.retry_wait_set)
		c.retry_wait_s = cf.retry_wait_s;
	if (!c.api || !*c.api)
		c.api = VG_CLI_DEFAULT_API;
	optind = 0; /* GNU: full re-initialisation (tests call us again) */
	opterr = 0;
	while ((o = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		if (o == VG_CLI_OPT_HELP) {
			usage(&c, out);
			return VG_EXIT_OK;
		}
		if ((rc = vg_cli_common_opt(&c, NULL, o, argv)) >= 0)
			return rc;
	}
	if (optind >= argc) {
		usage(&c, err);
		return VG_EXIT_USAGE;
	}
	if (!strcmp(argv[optind], "help")) {
		usage(&c, out);
		return VG_EXIT_OK;
	}
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (strcmp(argv[optind], commands[i].name))
			continue;
		curl_global_init(CURL_GLOBAL_DEFAULT);
		rc = commands[i].fn(&c, argc - optind, argv + optind);
		curl_global_cleanup();
		return rc;
	}
	fprintf(err, "%s: unknown command '%s' (see '%s --help')\n", c.prog,
		argv[optind], c.prog);
	return VG_EXIT_USAGE;
}
