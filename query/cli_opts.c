/*
 * cli_opts.c — the option handling and output every `vigie` subcommand
 * shares, so each command file holds only what is its own.
 */
#include <getopt.h>
#include <stdio.h>

#include <jansson.h>

#include "vigie/cli.h"

int vg_cli_common_opt(struct vg_cli *c, const char *cmd, int o, char **argv)
{
	switch (o) {
	case VG_CLI_OPT_API:
		c->api = optarg;
		return -1;
	case VG_CLI_OPT_TOKEN:
		c->token = optarg;
		return -1;
	case ':':
		fprintf(c->err, "%s %s: option '%s' needs a value\n", c->prog,
			cmd, argv[optind - 1]);
		return VG_EXIT_USAGE;
	default:
		fprintf(c->err, "%s %s: unknown option '%s' (see '%s %s --help')\n",
			c->prog, cmd, argv[optind - 1], c->prog, cmd);
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
