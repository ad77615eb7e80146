/*
 * cli_token.c — `vigie token create|list|revoke`: manage API tokens over
 * the API (POST /v1/tokens, GET /v1/tokens, DELETE /v1/tokens/{id}), with
 * an admin token. The very first admin token is made offline on the
 * collector's machine: `vigie-collector --data-dir D token create --admin`.
 *
 * Design: like the other commands; `create` prints the new token alone on
 * stdout (so TOKEN=$(vigie token create ...) works) and a note on stderr
 * that it is shown only once.
 *
 * Invariants: the token is printed once and never written anywhere else.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "query/cli/cli.h"

static const char usage_text[] =
	"usage: %s token create (--admin | --project P) [--name N] [--json]\n"
	"       %s token list [--json]\n"
	"       %s token revoke ID [--json]\n\n"
	"Manage API tokens (needs an admin token). 'create' prints the new "
	"token on\nstdout, once: only its HMAC is stored. A project token sees "
	"only its\nproject's data. The first admin token comes from the "
	"collector's machine:\n  vigie-collector --data-dir DIR token create "
	"--admin\n";

static void print_tokens(struct vg_cli *c, json_t *arr)
{
	static const char *const hdr[] = {"ID", "SCOPE", "PROJECT", "NAME",
					  "CREATED", "REVOKED"};
	struct vg_table *t = vg_table_new(6, hdr, NULL);
	size_t i;
	json_t *tk;

	json_array_foreach(arr, i, tk) {
		const char *row[6] = {
			json_string_value(json_object_get(tk, "id")),
			json_string_value(json_object_get(tk, "scope")),
			json_string_value(json_object_get(tk, "project")),
			json_string_value(json_object_get(tk, "name")),
			json_string_value(json_object_get(tk, "created")),
			json_string_value(json_object_get(tk, "revoked"))};
		if (t)
			vg_table_add(t, row);
	}
	vg_table_print_free(t, c->out);
}

int vg_cli_cmd_token(struct vg_cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		VG_CLI_GLOBAL_OPTS,
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{"admin", no_argument, NULL, 'a'},
		{"project", required_argument, NULL, 'p'},
		{"name", required_argument, NULL, 'n'},
		{"output", required_argument, NULL, VG_CLI_OPT_OUTPUT},
		{NULL, 0, NULL, 0},
	};
	const char *sub, *project = NULL, *name = NULL;
	int o, json = 0, admin = 0, rc;
	json_t *j = NULL;

	if (argc < 2) {
		fprintf(c->err, "%s token: expected create, list or revoke (see "
				"'%s token --help')\n",
			c->prog, c->prog);
		return VG_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		fprintf(c->out, usage_text, c->prog, c->prog, c->prog);
		return VG_EXIT_OK;
	}
	sub = argv[1];
	argc--;
	argv++;
	optind = 0;
	opterr = 0;
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (o) {
		case 'j': json = 1; break;
		case 'a': admin = 1; break;
		case 'p': project = optarg; break;
		case 'n': name = optarg; break;
		case 'h':
			fprintf(c->out, usage_text, c->prog, c->prog, c->prog);
			return VG_EXIT_OK;
		default: /* the global options, getopt's errors */
			if ((rc = vg_cli_common_opt(c, "token", o, argv)) >= 0)
				return rc;
			break;
		}
	}
	if (vg_cli_output() == VG_OUT_JSON)
		json = 1;
	if (!strcmp(sub, "create")) {
		if (admin == !!project || optind != argc) {
			fprintf(c->err, "%s token create: give exactly one of "
					"--admin or --project P\n",
				c->prog);
			return VG_EXIT_USAGE;
		}
		char pbuf[256];
		if ((rc = vg_cli_resolve_project(c, "token create", project, pbuf,
						 sizeof(pbuf), &project)))
			return rc;
		json_t *body = json_object();
		if (admin)
			json_object_set_new(body, "admin", json_true());
		else
			json_object_set_new(body, "project", json_string(project));
		if (name)
			json_object_set_new(body, "name", json_string(name));
		rc = vg_cli_send(c, "POST", "/v1/tokens", body, &j);
		json_decref(body);
		if (rc)
			return rc;
		if (json) {
			vg_cli_print_json(c, j);
		} else {
			fprintf(c->out, "%s\n",
				json_string_value(json_object_get(j, "token")));
			fprintf(c->err, "created %s token %s; it is shown only "
					"once\n",
				admin ? "admin" : "project",
				json_string_value(json_object_get(j, "id")));
		}
	} else if (!strcmp(sub, "list")) {
		if (optind != argc || admin || project || name) {
			fprintf(c->err, "%s token list: takes only --json\n",
				c->prog);
			return VG_EXIT_USAGE;
		}
		rc = vg_cli_get(c, "/v1/tokens", &j);
		if (rc)
			return rc;
		if (json) {
			vg_cli_print_json(c, j);
		} else {
			print_tokens(c, json_object_get(j, "tokens"));
		}
	} else if (!strcmp(sub, "revoke")) {
		if (optind != argc - 1 || admin || project || name) {
			fprintf(c->err, "%s token revoke: expected one token ID "
					"(see '%s token list')\n",
				c->prog, c->prog);
			return VG_EXIT_USAGE;
		}
		char *esc = vg_cli_escape(argv[optind]), *path;
		if (!esc)
			return VG_EXIT_API;
		path = malloc(strlen(esc) + 16);
		if (!path) {
			free(esc);
			return VG_EXIT_API;
		}
		sprintf(path, "/v1/tokens/%s", esc);
		free(esc);
		rc = vg_cli_send(c, "DELETE", path, NULL, &j);
		free(path);
		if (rc)
			return rc;
		if (json) {
			vg_cli_print_json(c, j);
		} else {
			fprintf(c->out, "revoked %s\n", argv[optind]);
		}
	} else {
		fprintf(c->err, "%s token: unknown command '%s' (create, list, "
				"revoke)\n",
			c->prog, sub);
		return VG_EXIT_USAGE;
	}
	json_decref(j);
	return VG_EXIT_OK;
}
