/*
 * tmpdir_test.c — a test's temporary directory (tests/support/tmpdir.h)
 * does not outlive a failed check, unless KEEP_TMP keeps it.
 *
 * The test runs itself again (/proc/self/exe) as a child whose one
 * cmocka case makes a directory with fx_tmpdir, writes a file in it and
 * then fails an assertion before its fx_rm_tree ("fail"), fails after it
 * ("rm-fail", as a teardown's removal after a failed case), or removes it
 * and passes ("pass"). The child's output (its TAP lines, "# kept DIR")
 * is read through a pipe, so the runner never counts its failures. The
 * directory must be gone after the child exits, except with KEEP_TMP=1,
 * or KEEP_TMP=fail and a failed child: then it is kept and named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../support/tmpdir.h"

static const char *g_mode; /* the child's */

static void child_case(void **state)
{
	char dir[256], f[300];
	FILE *fp;

	(void)state;
	assert_int_equal(fx_tmpdir(dir, sizeof(dir), "tmpdir-child"), 0);
	printf("dir=%s\n", dir);
	fflush(stdout);
	snprintf(f, sizeof(f), "%s/data", dir);
	assert_non_null(fp = fopen(f, "w"));
	fclose(fp);
	if (!strcmp(g_mode, "rm-fail"))
		assert_int_equal(fx_rm_tree(dir), 0);
	assert_string_equal(g_mode, "pass"); /* the failed check */
	assert_int_equal(fx_rm_tree(dir), 0);
}

static int child(const char *mode)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(child_case)};

	g_mode = mode;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

struct run {
	int status;     /* the child's exit status */
	char dir[256];  /* the directory it made */
	char out[8192]; /* what it printed */
};

/* Run the child in mode with KEEP_TMP=keep (NULL: unset). */
static void run_child(const char *mode, const char *keep, struct run *r)
{
	int fd[2], st;
	size_t n = 0;
	ssize_t got;
	const char *d;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	assert_int_equal(pipe(fd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		dup2(fd[1], 1);
		dup2(fd[1], 2);
		close(fd[0]);
		close(fd[1]);
		if (keep)
			setenv("KEEP_TMP", keep, 1);
		else
			unsetenv("KEEP_TMP");
		execl("/proc/self/exe", "tmpdir_test", mode, (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	while (n < sizeof(r->out) - 1 &&
	       (got = read(fd[0], r->out + n, sizeof(r->out) - 1 - n)) > 0)
		n += (size_t)got;
	close(fd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	r->status = WEXITSTATUS(st);
	d = strstr(r->out, "dir=");
	assert_non_null(d);
	snprintf(r->dir, sizeof(r->dir), "%.*s", (int)strcspn(d + 4, "\n"), d + 4);
}

static int exists(const char *dir)
{
	return access(dir, F_OK) == 0;
}

static int named_kept(const struct run *r)
{
	char line[300];

	snprintf(line, sizeof(line), "# kept %s\n", r->dir);
	return strstr(r->out, line) != NULL;
}

/* A failed check: nothing left behind, nothing named. */
static void test_failed_case_leaves_nothing(void **state)
{
	struct run r;

	(void)state;
	run_child("fail", NULL, &r);
	assert_int_not_equal(r.status, 0);
	assert_false(exists(r.dir));
	assert_false(named_kept(&r));
	run_child("pass", NULL, &r);
	assert_int_equal(r.status, 0);
	assert_false(exists(r.dir));
}

/* KEEP_TMP=1 keeps every directory, named in the log. */
static void test_keep_always(void **state)
{
	struct run r;

	(void)state;
	run_child("pass", "1", &r);
	assert_int_equal(r.status, 0);
	assert_true(exists(r.dir));
	assert_true(named_kept(&r));
	assert_int_equal(fx_rm_tree(r.dir), 0);
}

/* KEEP_TMP=fail keeps those of a failed run only, even one its case
 * removed after the failure (a teardown does), and names them. */
static void test_keep_on_failure(void **state)
{
	static const char *const failing[] = {"fail", "rm-fail"};
	struct run r;

	(void)state;
	for (int i = 0; i < 2; i++) {
		run_child(failing[i], "fail", &r);
		assert_int_not_equal(r.status, 0);
		assert_true(exists(r.dir));
		assert_true(named_kept(&r));
		assert_int_equal(fx_rm_tree(r.dir), 0);
	}
	run_child("pass", "fail", &r);
	assert_int_equal(r.status, 0);
	assert_false(exists(r.dir));
	assert_false(named_kept(&r));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failed_case_leaves_nothing),
		cmocka_unit_test(test_keep_always),
		cmocka_unit_test(test_keep_on_failure),
	};

	if (argc > 1)
		return child(argv[1]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
