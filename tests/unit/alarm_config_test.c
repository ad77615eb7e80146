/*
 * alarm_config_test.c — the [alarms] section of the shared configuration:
 * defaults, durations with their own ranges, repeatable exec commands and
 * errors that name the file, the line and the key; and the exec notifier
 * itself (stdin, environment, exit status, time limit).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "vigie/alarm_exec.h"
#include "vigie/config.h"

static void test_defaults(void **state)
{
	struct vg_config c;

	vg_config_defaults(&c);
	assert_string_equal(c.alarms_notify, "");
	assert_true(c.alarms_webhook_timeout_s == 5);
	assert_true(c.alarms_retry_initial_s == 1);
	assert_true(c.alarms_retry_max_s == 300);
	assert_true(c.alarms_retry_for_s == 86400);
	assert_true(c.alarms_history_retention_s == 30 * 86400.0);
	assert_int_equal(c.alarms_nexec, 0);
}

static void test_keys(void **state)
{
	struct vg_config c;
	char err[256];

	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c,
					       "[alarms]\n"
					       "notify = tcp://*:7471\n"
					       "retry_initial = 0.2\n"
					       "retry_max = 2m\n"
					       "history_retention = 90d\n"
					       "exec = scale-out: /usr/local/bin/scale --up\n"
					       "exec = page: /bin/true\n"
					       "alertmanager = http://127.0.0.1:9093\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_string_equal(c.alarms_notify, "tcp://*:7471");
	assert_true(c.alarms_retry_initial_s == 0.2);
	assert_true(c.alarms_retry_max_s == 120);
	assert_true(c.alarms_history_retention_s == 90 * 86400.0);
	assert_int_equal(c.alarms_nexec, 2);
	assert_string_equal(c.alarms_exec[1], "page: /bin/true");
	assert_string_equal(c.alarms_alertmanager, "http://127.0.0.1:9093");
	/* command-line override */
	assert_int_equal(vg_config_set(&c, "alarms", "notify", "tcp://127.0.0.1:1",
				       err, sizeof(err)),
			 0);
	assert_string_equal(c.alarms_notify, "tcp://127.0.0.1:1");
}

static void expect_error(const char *text, const char *msg)
{
	struct vg_config c;
	char err[256];

	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, text, "t.conf", err, sizeof(err)),
			 -EINVAL);
	if (!strstr(err, msg))
		fail_msg("error '%s' lacks '%s'", err, msg);
}

static void test_errors(void **state)
{
	expect_error("[alarms]\nexec = rm -rf /\n", "t.conf:2: [alarms] exec:");
	expect_error("[alarms]\nexec = x: relative/path\n", "NAME: /absolute/program");
	expect_error("[alarms]\nexec = a: /bin/true\nexec = a: /bin/false\n",
		     "t.conf:3: [alarms] exec: 'a: /bin/false' names a command already");
	expect_error("[alarms]\nhistory_retention = 10m\n",
		     "between 3600 and 3.1536e+08");
	expect_error("[alarms]\nwebhook_timeout = 1h\n", "between 0.1 and 300");
	expect_error("[alarms]\nnotifi = tcp://*:1\n", "t.conf:2: [alarms] notifi: unknown key");
}

static void test_exec_parse(void **state)
{
	struct vg_alarm_exec_cmd c;
	char err[128];

	assert_int_equal(vg_alarm_exec_parse("scale-out : /bin/x --up", &c, err,
					     sizeof(err)),
			 0);
	assert_string_equal(c.name, "scale-out");
	assert_string_equal(c.command, "/bin/x --up");
	assert_int_equal(vg_alarm_exec_parse("bad name: /bin/x", &c, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(vg_alarm_exec_parse("n: x", &c, err, sizeof(err)), -EINVAL);
}

static void test_exec_run(void **state)
{
	char dir[] = "/tmp/vigie-exec-test.XXXXXX", script[128], cmdline[256];
	struct vg_alarm_exec_cmd c;
	struct vg_alarm_exec_env env = {.alarm_name = "cpu-high", .state = "alarm"};
	char out[256], err[128];
	int st;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(script, sizeof(script), "%s/hook.sh", dir);
	f = fopen(script, "w");
	fprintf(f, "#!/bin/sh\nread line\necho \"got $line $VIGIE_ALARM_NAME $VIGIE_STATE $1\"\n"
		   "[ \"$1\" = fail ] && exit 3\n[ \"$1\" = slow ] && sleep 5\nexit 0\n");
	fclose(f);
	chmod(script, 0755);

	snprintf(cmdline, sizeof(cmdline), "t: %s ok", script);
	assert_int_equal(vg_alarm_exec_parse(cmdline, &c, err, sizeof(err)), 0);
	assert_int_equal(vg_alarm_exec_run(&c, "{\"a\":1}\n", 8, &env, 5000, &st, out,
					   sizeof(out)),
			 0);
	assert_string_equal(out, "got {\"a\":1} cpu-high alarm ok\n");

	snprintf(cmdline, sizeof(cmdline), "t: %s fail", script);
	vg_alarm_exec_parse(cmdline, &c, err, sizeof(err));
	assert_int_equal(vg_alarm_exec_run(&c, "x\n", 2, &env, 5000, &st, out,
					   sizeof(out)),
			 -ECHILD);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 3);

	snprintf(cmdline, sizeof(cmdline), "t: %s slow", script);
	vg_alarm_exec_parse(cmdline, &c, err, sizeof(err));
	assert_int_equal(vg_alarm_exec_run(&c, "x\n", 2, &env, 300, &st, out,
					   sizeof(out)),
			 -ETIMEDOUT);
	/* killed, not waited for: the wait ended on SIGKILL, not on the
	 * script's exit 0 after its sleep */
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGKILL);

	snprintf(cmdline, sizeof(cmdline), "t: %s/missing", dir);
	vg_alarm_exec_parse(cmdline, &c, err, sizeof(err));
	assert_int_equal(vg_alarm_exec_run(&c, "x", 1, &env, 300, &st, out,
					   sizeof(out)),
			 -ENOENT);
	unlink(script);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_exec_parse),
		cmocka_unit_test(test_exec_run),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
