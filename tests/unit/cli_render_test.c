/*
 * cli_render_test.c — what agents and tenants put in names never reaches
 * the terminal raw (no escape sequences): `vigie resources`, show, latest,
 * top and the error line run in-process (vg_cli_run) against the real API
 * (vg_api_start on a loopback port) over a registry whose names, hosts,
 * projects and attributes hold newlines, tabs, terminal escapes
 * ("ESC ] 0 ; x BEL ESC [ 31 m"), C1 controls and bytes that are not
 * UTF-8. The printed text must hold no control byte but the line ends,
 * one line per resource, the escapes shown visibly; --json stays exact.
 * Plus the renderer and the display width, alone.
 *
 * The hostile values are written into registry.db with sqlite directly,
 * after the resources were registered through vg_registry_update with
 * clean ones: what the decoder accepts may change (it is meant to refuse
 * such names), the CLI must stay safe for rows an older collector wrote.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "vigie/api.h"
#include "query/api/api_handlers.h"
#include "vigie/batch.h"
#include "query/cli/cli.h"
#include "vigie/config.h"
#include "vigie/registry.h"
#include "vigie/store.h"
#include "vigie/token.h"

#define T0 1794999600LL

static char data_dir[256], api_url[64];
static struct vg_api *api;
static struct vg_store *store;
static char tok_admin[VG_TOKEN_LEN + 1];

/* The resources, in id order, with the values written over the clean ones. */
static const struct {
	const char *id, *name, *host, *project, *attr;
} res[] = {
	{"r-1", "two\nlines", "h1", "p1", "{\"az\":\"zone\\na\"}"},
	{"r-2", "tab\there", "h\t1", "p1", "{\"k\\u001b[2J\":\"v\"}"},
	{"r-3", "\x1b]0;x\x07\x1b[31mred", "h1", "p\x1b[0m", "{\"az\":\"z\\u0007\"}"},
	{"r-4", "c1 \xc2\x9b"
		"31m and del \x7f",
	 "h1", "p1", "{}"},
	{"r-5", "bad utf8 \xff\xfe end", "h1", "p1", "{}"},
	{"r-6", "\xe6\x97\xa5\xe6\x9c\xac caf\xc3\xa9", "h1", "p1", "{}"},
};
#define NRES (sizeof(res) / sizeof(res[0]))

static int write_data(void)
{
	struct vg_config cfg;
	struct vg_registry *reg = NULL;
	char err[256], path[512];
	sqlite3 *db;
	sqlite3_stmt *s;

	vg_config_defaults(&cfg);
	if (vg_store_open(data_dir, &cfg, &store, err, sizeof(err)) ||
	    vg_registry_open(data_dir, &reg, err, sizeof(err)))
		return -1;
	for (int k = 0; k < 3; k++) {
		int64_t t = (T0 + 60 * k) * 1000;
		struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)k + 1, t);

		for (size_t i = 0; i < NRES; i++) {
			vg_batch_resource(b, VG_RT_INSTANCE, res[i].id, "clean",
					  NULL, t);
			vg_batch_identity(b, "p1", "u1", "small");
			vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE,
					10.0 * (double)i + k);
		}
		if (vg_registry_update(reg, b) || vg_store_write_batch(store, b))
			return -1;
		vg_batch_free(b);
	}
	if (vg_registry_flush(reg))
		return -1;
	vg_registry_close(reg);

	snprintf(path, sizeof(path), "%s/registry.db", data_dir);
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "UPDATE resources SET name = ?2, host = ?3, "
			       "project = ?4, attributes = ?5 WHERE id = ?1",
			       -1, &s, NULL) != SQLITE_OK)
		return -1;
	for (size_t i = 0; i < NRES; i++) {
		sqlite3_reset(s);
		sqlite3_bind_text(s, 1, res[i].id, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, res[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, res[i].host, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 4, res[i].project, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 5, res[i].attr, -1, SQLITE_STATIC);
		if (sqlite3_step(s) != SQLITE_DONE || sqlite3_changes(db) != 1)
			return -1;
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
	return 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	struct vg_api_options o = {0};
	struct vg_token_store *ts;
	char err[256];

	(void)state;
	unsetenv("VIGIE_API");
	unsetenv("VIGIE_TOKEN");
	snprintf(data_dir, sizeof(data_dir), "/tmp/vigie-clirender-test.XXXXXX");
	if (!mkdtemp(data_dir) || write_data())
		return -1;
	if (vg_token_store_open(data_dir, &ts, err, sizeof(err)) ||
	    vg_token_create(ts, NULL, "admin", 0, tok_admin, NULL))
		return -1;
	vg_token_store_close(ts);
	o.listen = "127.0.0.1:0";
	o.data_dir = data_dir;
	o.threads = 2;
	o.store = store;
	if (vg_api_start(&o, &api, err, sizeof(err)))
		return -1;
	snprintf(api_url, sizeof(api_url), "http://127.0.0.1:%u", vg_api_port(api));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vg_api_stop(api);
	vg_store_close(store);
	nftw(data_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

struct run {
	int rc;
	char *out, *err;
	size_t outlen;
};

static char *slurp(FILE *f, size_t *len)
{
	long n;
	char *s;

	fflush(f);
	n = ftell(f);
	rewind(f);
	s = calloc(1, (size_t)n + 1);
	if (s && n > 0 && fread(s, 1, (size_t)n, f) != (size_t)n)
		s[0] = '\0';
	fclose(f);
	if (len)
		*len = n > 0 ? (size_t)n : 0;
	return s;
}

/* `vigie --api URL --token ADMIN ARGS...` */
static struct run vigie(const char *first, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	struct run r;
	FILE *out = tmpfile(), *err = tmpfile();

	argv[argc++] = "vigie";
	argv[argc++] = "--api";
	argv[argc++] = api_url;
	argv[argc++] = "--token";
	argv[argc++] = tok_admin;
	argv[argc++] = (char *)first;
	va_start(ap, first);
	for (char *a; (a = va_arg(ap, char *)) && argc < 31;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	r.rc = vg_cli_run(argc, argv, out, err);
	r.out = slurp(out, &r.outlen);
	r.err = slurp(err, NULL);
	return r;
}

static void release(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* No byte a terminal could obey: nothing below 0x20 but the line end, no
 * DEL, no C1 control (raw or UTF-8 encoded), only valid UTF-8. */
static void assert_terminal_safe(const char *what, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\n') || c == 0x7f || c == 0xff || c == 0xfe ||
		    (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
		     (unsigned char)s[i + 1] <= 0x9f))
			fail_msg("%s: byte 0x%02x at %zu in:\n%s", what, c, i, s);
	}
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_resources_table(void **state)
{
	struct run r;

	(void)state;
	r = vigie("resources", NULL);
	assert_int_equal(r.rc, 0);
	assert_terminal_safe("resources", r.out, r.outlen);
	assert_int_equal(count_lines(r.out), 1 + NRES); /* header + one each */
	/* each row starts with its id, in order */
	const char *line = strchr(r.out, '\n') + 1;
	for (size_t i = 0; i < NRES; i++) {
		assert_memory_equal(line, res[i].id, strlen(res[i].id));
		line = strchr(line, '\n') + 1;
	}
	/* the controls are shown, visibly */
	assert_non_null(strstr(r.out, "two\\nlines"));
	assert_non_null(strstr(r.out, "tab\\there"));
	assert_non_null(strstr(r.out, "\\x1b]0;x\\x07\\x1b[31mred"));
	assert_non_null(strstr(r.out, "c1 \\u009b31m and del \\x7f"));
	/* (a name that is not UTF-8 does not survive the API's JSON: "-") */
	assert_non_null(strstr(r.out, "h\\t1"));
	assert_non_null(strstr(r.out, "p\\x1b[0m"));
	/* valid UTF-8 is kept */
	assert_non_null(strstr(r.out, "\xe6\x97\xa5\xe6\x9c\xac caf\xc3\xa9"));
	release(&r);

	/* --json: the exact values */
	r = vigie("resources", "--json", NULL);
	assert_int_equal(r.rc, 0);
	json_t *j = json_loads(r.out, 0, NULL), *o;
	size_t i;
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(j, "resources")), NRES);
	json_array_foreach(json_object_get(j, "resources"), i, o) {
		const char *name = json_string_value(json_object_get(o, "name"));
		if (i == 4) /* not UTF-8: the API cannot hand it on as is */
			continue;
		assert_string_equal(name, res[i].name);
		assert_string_equal(json_string_value(json_object_get(o, "host")),
				    res[i].host);
	}
	json_decref(j);
	release(&r);
}

/* The terminal columns up to the start of the column headed hdr, in
 * the header line and in the line of id: equal when the table lines up. */
static void assert_aligned(const char *out, const char *id, const char *hdr)
{
	const char *h = strstr(out, hdr), *l = strstr(out, id);
	char *a = strndup(out, (size_t)(h - out));
	const char *e = strstr(l, "  h1  ");

	assert_non_null(e);
	char *b = strndup(l, (size_t)(e + 2 - l));
	assert_int_equal(vg_cli_width(a), vg_cli_width(b));
	free(a);
	free(b);
}

static void test_alignment(void **state)
{
	struct run r;

	(void)state;
	r = vigie("resources", NULL);
	assert_int_equal(r.rc, 0);
	/* HOST starts at the same column in every row (wide CJK included) */
	for (size_t i = 0; i < NRES; i++)
		if (strcmp(res[i].host, "h1") == 0)
			assert_aligned(r.out, res[i].id, "HOST");
	release(&r);
}

static void test_show_latest_top(void **state)
{
	struct run r;

	(void)state;
	for (size_t i = 0; i < NRES; i++) {
		r = vigie("show", res[i].id, NULL);
		assert_int_equal(r.rc, 0);
		assert_terminal_safe("show", r.out, r.outlen);
		/* 12 identity lines, then attributes and metrics */
		assert_non_null(strstr(r.out, "Name        "));
		release(&r);
		r = vigie("latest", res[i].id, NULL);
		assert_int_equal(r.rc, 0);
		assert_terminal_safe("latest", r.out, r.outlen);
		release(&r);
	}
	r = vigie("show", "r-1", NULL);
	assert_non_null(strstr(r.out, "Name        two\\nlines\n"));
	assert_non_null(strstr(r.out, "  az = zone\\na\n"));
	release(&r);
	r = vigie("show", "r-2", NULL);
	assert_non_null(strstr(r.out, "  k\\x1b[2J = v\n"));
	release(&r);
	r = vigie("show", "r-3", NULL);
	assert_non_null(strstr(r.out, "Project     p\\x1b[0m\n"));
	assert_non_null(strstr(r.out, "  az = z\\x07\n"));
	release(&r);

	r = vigie("top", "--once", "--limit", "20", NULL);
	assert_int_equal(r.rc, 0);
	assert_terminal_safe("top", r.out, r.outlen);
	/* the title line, the header, one line per resource */
	size_t shown = 0;
	assert_int_equal(sscanf(r.out, "vigie top: cpu.util, %zu of", &shown), 1);
	assert_true(shown >= NRES - 1);
	if (count_lines(r.out) != 2 + shown)
		fail_msg("%s", r.out);
	release(&r);
}

/* The API's error message echoes what the client sent: one safe line. */
static void test_error_line(void **state)
{
	struct run r;

	(void)state;
	r = vigie("show", "ghost\x1b]0;owned\x07", NULL);
	assert_int_equal(r.rc, 1);
	assert_string_equal(r.out, "");
	assert_terminal_safe("error", r.err, strlen(r.err));
	assert_int_equal(count_lines(r.err), 1);
	release(&r);
}

static void test_renderer(void **state)
{
	char *s;

	(void)state;
	s = vg_cli_safe("a\nb\tc\rd\x1b[31m\x07\x7f");
	assert_string_equal(s, "a\\nb\\tc\\rd\\x1b[31m\\x07\\x7f");
	free(s);
	/* C1 (U+009B CSI), line separator, a bidi override: escaped */
	s = vg_cli_safe("x\xc2\x9by\xe2\x80\xa8z\xe2\x80\xae!");
	assert_string_equal(s, "x\\u009by\\u2028z\\u202e!");
	free(s);
	/* not UTF-8: overlong, lone continuation, truncated, surrogate */
	s = vg_cli_safe("\xc0\xaf|\x80|\xe6\x97|\xed\xa0\x80");
	assert_string_equal(s, "\\xc0\\xaf|\\x80|\\xe6\\x97|\\xed\\xa0\\x80");
	free(s);
	/* valid UTF-8 and backslashes stay */
	s = vg_cli_safe("caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80 a\\b");
	assert_string_equal(s, "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80 a\\b");
	free(s);
	assert_null(vg_cli_safe(NULL));

	assert_int_equal(vg_cli_width("abc"), 3);
	assert_int_equal(vg_cli_width("caf\xc3\xa9"), 4);
	assert_int_equal(vg_cli_width("e\xcc\x81"), 1); /* e + combining acute */
	assert_int_equal(vg_cli_width("\xe6\x97\xa5\xe6\x9c\xac"), 4);
	assert_int_equal(vg_cli_width("\xf0\x9f\x98\x80"), 2);
	assert_int_equal(vg_cli_width(""), 0);
}

static void test_table_cells(void **state)
{
	static const char *const hdr[] = {"NAME", "X"};
	const char *r1[] = {"\xe6\x97\xa5\xe6\x9c\xac", "1"};
	const char *r2[] = {"a\nb", "2"};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct vg_table *t = vg_table_new(2, hdr, NULL);

	(void)state;
	vg_table_add(t, r1);
	vg_table_add(t, r2);
	vg_table_print_free(t, f);
	fclose(f);
	/* 日本 is 4 columns wide like "NAME"; "a\nb" is shown as 4 */
	assert_string_equal(buf, "NAME  X\n"
				 "\xe6\x97\xa5\xe6\x9c\xac  1\n"
				 "a\\nb  2\n");
	free(buf);
}

/* --output csv: ids and names are the tenants' own; a cell a spreadsheet
 * would run as a formula stays text (a leading '), numbers, times and the
 * empty cell's "-" stay as they are */
static void test_csv_formulas(void **state)
{
	static const char *const hdr[] = {"ID", "V"};
	const char *rows[][2] = {
		{"=HYPERLINK(\"http://x.example/\",\"y\")", "-1.5"},
		{"@SUM(1)", "-2e-05"},
		{"+1+1", "+3"},
		{"-1+cmd|' /C calc'!A0", NULL},
		{"-inf", "2026-12-05T21:00:00Z"},
		{"-0x10", "-"},
	};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct vg_table *t = vg_table_new(2, hdr, NULL);

	(void)state;
	assert_int_equal(vg_cli_set_output("csv"), 0);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		vg_table_add(t, rows[i]);
	vg_table_print_free(t, f);
	fclose(f);
	vg_cli_set_output("table");
	assert_string_equal(buf, "ID,V\r\n"
				 "\"'=HYPERLINK(\"\"http://x.example/\"\",\"\"y\"\")\",-1.5\r\n"
				 "'@SUM(1),-2e-05\r\n"
				 "'+1+1,+3\r\n"
				 "'-1+cmd|' /C calc'!A0,-\r\n"
				 "'-inf,2026-12-05T21:00:00Z\r\n"
				 "'-0x10,-\r\n");
	free(buf);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_renderer),
		cmocka_unit_test(test_table_cells),
		cmocka_unit_test(test_csv_formulas),
	};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resources_table),
		cmocka_unit_test(test_alignment),
		cmocka_unit_test(test_show_latest_top),
		cmocka_unit_test(test_error_line),
	};
	int rc = cmocka_run_group_tests(pure, NULL, NULL);

	return rc | cmocka_run_group_tests(tests, setup, teardown);
}
