/*
 * cli_invoice.c — `vigie invoice`: print one project's invoice as the API
 * renders it (JSON, CSV or HTML, byte for byte), list a month's invoices,
 * or finalize a month.
 *
 * Design: invoices are documents, not JSON to re-format, so this command
 * takes the raw body from vg_cli_request (query/cli_http.c, which also
 * POSTs for finalize) and prints it as it came; errors are the CLI's exit
 * codes as for every command: 3 cannot connect, 1 the API said no (its
 * message on stderr), 2 usage.
 *
 * --pdf FILE prints the HTML document to a PDF with headless Chromium
 * (its --print-to-pdf, A4 from the page's print CSS): the HTML goes to a
 * private temporary directory that also holds Chromium's profile, and
 * Chromium gets at most 120 s. The browser is $VIGIE_CHROMIUM, else
 * chromium or chromium-browser on PATH.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ftw.h>

#include <jansson.h>

#include "query/cli/cli_invoice.h"

extern char **environ;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	remove(p);
	return 0;
}

/* Remove the temporary directory and everything Chromium left in it. */
static void rm_tree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Is name an executable on PATH (or a path)? The found path into buf. */
static int find_exe(const char *name, char *buf, size_t len)
{
	if (strchr(name, '/')) {
		snprintf(buf, len, "%s", name);
		return access(buf, X_OK) == 0;
	}
	const char *path = getenv("PATH");
	while (path && *path) {
		const char *e = strchr(path, ':');
		size_t n = e ? (size_t)(e - path) : strlen(path);
		snprintf(buf, len, "%.*s/%s", (int)n, path, name);
		if (n && access(buf, X_OK) == 0)
			return 1;
		path = e ? e + 1 : NULL;
	}
	return 0;
}

/* Print html (len bytes) to the PDF file out with headless Chromium.
 * VG_EXIT_OK, or VG_EXIT_API with the reason on stderr. */
static int print_pdf(struct vg_cli *c, const char *html, size_t len, const char *out)
{
	char dir[] = "/tmp/vigie-pdf.XXXXXX", page[64], prof[96], url[96];
	char exe[1024], pdfarg[4200], profarg[128], outabs[4096];
	const char *env = getenv("VIGIE_CHROMIUM");
	int rc = VG_EXIT_API, fd;

	if (!(env && *env ? find_exe(env, exe, sizeof(exe))
			  : find_exe("chromium", exe, sizeof(exe)) ||
				    find_exe("chromium-browser", exe, sizeof(exe)))) {
		fprintf(c->err, "%s invoice --pdf: Chromium not found (install the "
				"chromium package, or set VIGIE_CHROMIUM)\n",
			c->prog);
		return VG_EXIT_API;
	}
	if (out[0] == '/')
		snprintf(outabs, sizeof(outabs), "%s", out);
	else if (getcwd(outabs, sizeof(outabs) - strlen(out) - 2))
		snprintf(outabs + strlen(outabs), sizeof(outabs) - strlen(outabs), "/%s", out);
	else
		snprintf(outabs, sizeof(outabs), "%s", out);
	if (!mkdtemp(dir)) {
		fprintf(c->err, "%s invoice --pdf: cannot make a temporary directory: %s\n",
			c->prog, strerror(errno));
		return VG_EXIT_API;
	}
	snprintf(page, sizeof(page), "%s/invoice.html", dir);
	snprintf(prof, sizeof(prof), "%s/profile", dir);
	snprintf(url, sizeof(url), "file://%s", page);
	fd = open(page, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || write(fd, html, len) != (ssize_t)len) {
		fprintf(c->err, "%s invoice --pdf: cannot write %s\n", c->prog, page);
		if (fd >= 0)
			close(fd);
		goto out;
	}
	close(fd);
	unlink(outabs); /* so success is the file's presence */
	snprintf(pdfarg, sizeof(pdfarg), "--print-to-pdf=%s", outabs);
	snprintf(profarg, sizeof(profarg), "--user-data-dir=%s", prof);
	char *argv[] = {exe, "--headless", "--disable-gpu", "--no-first-run",
			"--disable-extensions", "--no-pdf-header-footer", profarg, pdfarg,
			geteuid() == 0 ? "--no-sandbox" : url, geteuid() == 0 ? url : NULL, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int e = posix_spawn(&pid, exe, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (e) {
		fprintf(c->err, "%s invoice --pdf: cannot run %s: %s\n", c->prog, exe, strerror(e));
		goto out;
	}
	int st = 0, done = 0;
	for (int i = 0; i < 1200 && !done; i++) { /* 120 s */
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			done = 1;
		else
			nanosleep(&(struct timespec){0, 100000000}, NULL);
	}
	if (!done) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		fprintf(c->err, "%s invoice --pdf: Chromium did not finish in 120 s\n", c->prog);
		goto out;
	}
	struct stat sb;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || stat(outabs, &sb) || sb.st_size == 0) {
		fprintf(c->err, "%s invoice --pdf: Chromium did not write %s (exit %d)\n",
			c->prog, out, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		goto out;
	}
	fprintf(c->out, "wrote %s (%lld bytes)\n", out, (long long)sb.st_size);
	rc = VG_EXIT_OK;
out:
	rm_tree(dir);
	return rc;
}

static void usage(struct vg_cli *c, FILE *f)
{
	fprintf(f,
		"usage: %s invoice --month YYYY-MM --project P [--format json|csv|html]\n"
		"       %s invoice --month YYYY-MM --project P --pdf FILE\n"
		"       %s invoice --month YYYY-MM          (every project's total)\n"
		"       %s invoice finalize --month YYYY-MM\n\n"
		"A finalized month's invoices never change; usage that arrives\n"
		"later is billed on the next month as an adjustment line.\n"
		"The global options (--api, --token, --timeout, ...: see\n'%s --help') may come after the command too.\n",
		c->prog, c->prog, c->prog, c->prog, c->prog);
}

/* The month list's entries whose invoice could not be computed (an
 * "error" instead of a total): each message on c->err. VG_EXIT_API when
 * there is one (the others are printed: one broken project does not hide
 * them), else VG_EXIT_OK. An invoice with warnings (usage without a
 * price, an adjustment withheld) gets one line on c->err too, without
 * changing the exit status. */
static int list_errors(struct vg_cli *c, const char *text, size_t len)
{
	json_t *j = json_loadb(text, len, 0, NULL), *v;
	size_t i;
	int rc = VG_EXIT_OK;

	const char *month = json_string_value(json_object_get(j, "month"));

	json_array_foreach(json_object_get(j, "invoices"), i, v) {
		json_t *e = json_object_get(v, "error");
		json_int_t nw = json_integer_value(json_object_get(v, "warnings"));
		if (!e && nw > 0) { /* not an error: said, the exit stays 0 */
			const char *p = json_string_value(json_object_get(v, "project"));
			fprintf(c->err,
				"%s invoice: project %s: %lld warning%s on its invoice "
				"(usage not priced, or an adjustment withheld): see '%s "
				"invoice --project %s --month %s'\n",
				c->prog, p ? p : "?", (long long)nw, nw == 1 ? "" : "s", c->prog,
				p ? p : "?", month ? month : "?");
			continue;
		}
		if (!e)
			continue;
		const char *p = json_string_value(json_object_get(v, "project"));
		const char *m = json_string_value(json_object_get(e, "message"));
		fprintf(c->err, "%s invoice: project %s: %s\n", c->prog, p ? p : "?",
			m ? m : "its invoice cannot be computed");
		rc = VG_EXIT_API;
	}
	json_decref(j);
	return rc;
}

static int print_list(struct vg_cli *c, const char *text, size_t len)
{
	/* NAME: the project's name where the agents report one */
	static const char *const hdr[] = {"PROJECT", "NAME", "INVOICE", "LINES", "TOTAL",
					  "CURRENCY"};
	static const int align[] = {VG_ALIGN_LEFT, VG_ALIGN_LEFT, VG_ALIGN_LEFT,
				    VG_ALIGN_RIGHT, VG_ALIGN_RIGHT, VG_ALIGN_LEFT};
	json_t *j = json_loadb(text, len, 0, NULL), *v;
	struct vg_table *t = vg_table_new(6, hdr, align);
	size_t i;
	char lines[32];

	if (!j || !t) {
		fprintf(c->err, "%s: the API did not answer an invoice list\n", c->prog);
		json_decref(j);
		vg_table_free(t);
		return VG_EXIT_API;
	}
	json_array_foreach(json_object_get(j, "invoices"), i, v) {
		if (json_object_get(v, "error"))
			continue; /* said on c->err (list_errors) */
		snprintf(lines, sizeof(lines), "%lld",
			 (long long)json_integer_value(json_object_get(v, "lines")));
		const char *pn = json_string_value(json_object_get(v, "project_name"));
		const char *row[6] = {json_string_value(json_object_get(v, "project")),
				      pn ? pn : "-",
				      json_string_value(json_object_get(v, "invoice")),
				      lines,
				      json_string_value(json_object_get(v, "total")),
				      json_string_value(json_object_get(v, "currency"))};
		vg_table_add(t, row);
	}
	if (vg_cli_output() != VG_OUT_CSV) /* csv: the table alone */
		vg_cli_line(c->out, "%s (%s)",
			    json_string_value(json_object_get(j, "month")) ? json_string_value(json_object_get(j, "month")) : "",
			    json_string_value(json_object_get(j, "status")) ? json_string_value(json_object_get(j, "status")) : "");
	vg_table_print_free(t, c->out);
	json_decref(j);
	return list_errors(c, text, len);
}

int vg_cli_cmd_invoice(struct vg_cli *c, int argc, char **argv)
{
	enum { O_MONTH = 256,
	       O_PROJECT,
	       O_FORMAT,
	       O_HELP,
	       O_PDF };
	static const struct option opts[] = {
		{"month", required_argument, NULL, O_MONTH},
		{"project", required_argument, NULL, O_PROJECT},
		{"format", required_argument, NULL, O_FORMAT},
		{"pdf", required_argument, NULL, O_PDF},
		VG_CLI_GLOBAL_OPTS,
		{"output", required_argument, NULL, VG_CLI_OPT_OUTPUT},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	const char *month = NULL, *project = NULL, *format = NULL, *pdf = NULL;
	int finalize = 0, o, rc;
	char *path, *body = NULL;
	size_t len = 0;

	if (argc > 1 && !strcmp(argv[1], "finalize")) {
		finalize = 1;
		argc--;
		argv++;
	}
	optind = 0;
	opterr = 0;
	while ((o = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (o) {
		case O_MONTH: month = optarg; break;
		case O_PROJECT: project = optarg; break;
		case O_FORMAT: format = optarg; break;
		case O_PDF: pdf = optarg; break;
		case O_HELP:
			usage(c, c->out);
			return VG_EXIT_OK;
		default: /* the global options, getopt's errors */
			if ((rc = vg_cli_common_opt(c, "invoice", o, argv)) >= 0)
				return rc;
			break;
		}
	}
	if (optind < argc) {
		fprintf(c->err, "%s invoice: unexpected argument '%s'\n", c->prog,
			argv[optind]);
		return VG_EXIT_USAGE;
	}
	if (!month) {
		fprintf(c->err, "%s invoice: --month YYYY-MM is required\n", c->prog);
		return VG_EXIT_USAGE;
	}
	if (pdf) {
		if (!project || finalize || (format && strcmp(format, "html"))) {
			fprintf(c->err, "%s invoice: --pdf FILE needs --project and no "
					"other --format\n",
				c->prog);
			return VG_EXIT_USAGE;
		}
		format = "html";
	}
	/* --output json|csv is --format json|csv (table: the default). */
	if (!format && !finalize && vg_cli_output() == VG_OUT_JSON)
		format = "json";
	if (!format && !finalize && project && vg_cli_output() == VG_OUT_CSV)
		format = "csv";
	if (format && strcmp(format, "json") && strcmp(format, "csv") &&
	    strcmp(format, "html")) {
		fprintf(c->err, "%s invoice: --format is json, csv or html\n", c->prog);
		return VG_EXIT_USAGE;
	}
	if (finalize && (project || format)) {
		fprintf(c->err, "%s invoice finalize: takes only --month (it "
				"freezes every project's invoice)\n",
			c->prog);
		return VG_EXIT_USAGE;
	}
	if (!project && format && strcmp(format, "json")) {
		fprintf(c->err, "%s invoice: --format %s needs --project\n", c->prog,
			format);
		return VG_EXIT_USAGE;
	}
	char pbuf[256];
	if ((rc = vg_cli_resolve_project(c, "invoice", project, pbuf, sizeof(pbuf),
					 &project)))
		return rc;
	const char *kv[] = {"month", month, "project", project, "format", format, NULL};
	path = vg_cli_path(finalize ? "/v1/invoices/finalize" : "/v1/invoices", kv);
	if (!path) {
		fprintf(c->err, "%s: out of memory\n", c->prog);
		return VG_EXIT_API;
	}
	rc = vg_cli_request(c, finalize ? "POST" : "GET", path, finalize ? "" : NULL,
			    &body, &len);
	free(path);
	if (rc)
		return rc;
	if (finalize) {
		json_t *j = json_loadb(body, len, 0, NULL);
		fprintf(c->out, "finalized %s: %lld invoice(s)\n", month,
			(long long)json_integer_value(json_object_get(j, "invoices")));
		json_decref(j);
	} else if (!project && !format) {
		rc = print_list(c, body, len);
	} else if (pdf) {
		rc = print_pdf(c, body, len, pdf);
	} else {
		/* the document as the API rendered it; on a terminal, safe */
		vg_cli_put_document(c->out, body, len);
		if (!project) /* the month's list, as JSON */
			rc = list_errors(c, body, len);
	}
	free(body);
	return rc;
}
