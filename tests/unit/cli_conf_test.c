/*
 * cli_conf_test.c — the `vigie` CLI's per-user configuration file
 * (~/.config/vigie): read from $VIGIE_CONFIG, flags over the environment over
 * the file, and a file holding a token refused unless it is 0600 (or
 * stricter). The precedence is seen through vg_cli_run against an
 * address nothing listens on: the error line names the API it tried.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "query/cli/cli.h"

static char g_dir[64];
static char g_path[128];

static void write_conf(const char *text, mode_t mode)
{
	FILE *f = fopen(g_path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(g_path, mode), 0);
}

static int setup(void **state)
{
	snprintf(g_dir, sizeof(g_dir), "/tmp/vigie-cliconf.XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	snprintf(g_path, sizeof(g_path), "%s/cli.conf", g_dir);
	setenv("VIGIE_CONFIG", g_path, 1);
	unsetenv("VIGIE_API");
	unsetenv("VIGIE_TOKEN");
	return 0;
}

static int teardown(void **state)
{
	unlink(g_path);
	rmdir(g_dir);
	return 0;
}

static void test_path(void **state)
{
	char buf[256];

	assert_int_equal(vg_cli_conf_path(buf, sizeof(buf)), 0);
	assert_string_equal(buf, g_path);
	unsetenv("VIGIE_CONFIG");
	setenv("XDG_CONFIG_HOME", "/x", 1);
	assert_int_equal(vg_cli_conf_path(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/x/vigie/cli.conf");
	unsetenv("XDG_CONFIG_HOME");
	setenv("HOME", "/home/u", 1);
	assert_int_equal(vg_cli_conf_path(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/home/u/.config/vigie/cli.conf");
	setenv("VIGIE_CONFIG", g_path, 1);
}

static void test_load(void **state)
{
	struct vg_cli_conf cf;
	char err[256];

	unlink(g_path);
	assert_int_equal(vg_cli_conf_load(g_path, &cf, err, sizeof(err)), 1);
	write_conf("# mine\napi = http://10.1.2.3:7480\ntoken = vgt_abc\n"
		   "timeout = 7\n",
		   0600);
	assert_int_equal(vg_cli_conf_load(g_path, &cf, err, sizeof(err)), 0);
	assert_string_equal(cf.api, "http://10.1.2.3:7480");
	assert_string_equal(cf.token, "vgt_abc");
	assert_int_equal(cf.timeout_s, 7);
	assert_int_equal(cf.retry_wait_set, 0); /* the default stays */
	/* retry_wait: 0 is a value (never retry), not "unset" */
	write_conf("retry_wait = 0\n", 0600);
	assert_int_equal(vg_cli_conf_load(g_path, &cf, err, sizeof(err)), 0);
	assert_int_equal(cf.retry_wait_set, 1);
	assert_int_equal(cf.retry_wait_s, 0);
	write_conf("retry_wait = -1\n", 0600);
	assert_int_equal(vg_cli_conf_load(g_path, &cf, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "retry_wait wants a number of seconds from 0 to 3600"));
	/* no token: any mode will do */
	write_conf("[cli]\napi = http://10.1.2.3:7480\n", 0644);
	assert_int_equal(vg_cli_conf_load(g_path, &cf, err, sizeof(err)), 0);
	write_conf("api = x\ntokn = y\n", 0600);
	assert_int_equal(vg_cli_conf_load(g_path, &cf, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":2: unknown key 'tokn'"));
}

/* Long and indented lines: a cacert path of 300 bytes is read whole (it
 * was refused on a line 3 of a 2-line file: libinih cut lines at 200
 * bytes), and an indented line is a key of its own, not a continuation
 * that replaced the token with "api = ..." */
static void test_long_and_indented_lines(void **state)
{
	struct vg_cli_conf cf;
	char err[256], text[1024], path[400];

	(void)state;
	memset(path, 'a', 300);
	path[0] = '/';
	path[300] = '\0';
	snprintf(text, sizeof(text), "api = http://10.1.2.3:7480\ncacert = %s\n", path);
	write_conf(text, 0600);
	assert_int_equal(vg_cli_conf_load(g_path, &cf, err, sizeof(err)), 0);
	assert_string_equal(cf.cacert, path);
	write_conf("token = vgt_abc\n  api = http://10.1.2.3:7480\n", 0600);
	assert_int_equal(vg_cli_conf_load(g_path, &cf, err, sizeof(err)), 0);
	assert_string_equal(cf.token, "vgt_abc");
	assert_string_equal(cf.api, "http://10.1.2.3:7480");
	write_conf("token = vgt_abc\n  stray words\n", 0600);
	assert_int_equal(vg_cli_conf_load(g_path, &cf, err, sizeof(err)), -EINVAL);
	if (!strstr(err, "cli.conf:2: not 'key = value'"))
		fail_msg("error '%s'", err);
}

static void test_token_mode(void **state)
{
	static const mode_t bad[] = {0640, 0604, 0620, 0644, 0660};
	struct vg_cli_conf cf;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_conf("token = vgt_secret\n", bad[i]);
		assert_int_equal(vg_cli_conf_load(g_path, &cf, err, sizeof(err)),
				 -EACCES);
		assert_non_null(strstr(err, "chmod 600"));
		assert_int_equal(cf.token[0], '\0');
	}
	write_conf("token = vgt_secret\n", 0400);
	assert_int_equal(vg_cli_conf_load(g_path, &cf, err, sizeof(err)), 0);
}

/* Runs `vigie ARGS...` in-process; its stderr in errbuf. */
static int run(char *errbuf, size_t len, int argc, char **argv)
{
	FILE *out = fopen("/dev/null", "w"), *err = fmemopen(errbuf, len, "w");
	int rc;

	memset(errbuf, 0, len);
	rc = vg_cli_run(argc, argv, out, err);
	fclose(out);
	fclose(err);
	return rc;
}

static void test_precedence(void **state)
{
	char e[1024];
	char *health[] = {"vigie", "health", NULL};
	char *flag[] = {"vigie", "--api", "http://127.0.0.1:3", "health", NULL};

	write_conf("api = http://127.0.0.1:2\ntimeout = 5\n", 0600);
	assert_int_equal(run(e, sizeof(e), 2, health), VG_EXIT_CONNECT);
	assert_non_null(strstr(e, "127.0.0.1:2"));
	setenv("VIGIE_API", "http://127.0.0.1:1", 1);
	assert_int_equal(run(e, sizeof(e), 2, health), VG_EXIT_CONNECT);
	assert_non_null(strstr(e, "127.0.0.1:1"));
	assert_int_equal(run(e, sizeof(e), 4, flag), VG_EXIT_CONNECT);
	assert_non_null(strstr(e, "127.0.0.1:3"));
	unsetenv("VIGIE_API");
	/* a readable file with a token stops the CLI before any request */
	write_conf("api = http://127.0.0.1:2\ntoken = vgt_x\n", 0644);
	assert_int_equal(run(e, sizeof(e), 2, health), VG_EXIT_USAGE);
	assert_non_null(strstr(e, "chmod 600"));
	write_conf("output = csv\n", 0600);
	assert_int_equal(run(e, sizeof(e), 2, health), VG_EXIT_USAGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_long_and_indented_lines),
		cmocka_unit_test(test_token_mode),
		cmocka_unit_test(test_precedence),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
