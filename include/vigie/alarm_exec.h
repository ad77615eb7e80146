/*
 * vigie — the exec notifier: operator-configured commands run with the
 * notification JSON on standard input (alarms/exec.c).
 *
 * Commands come only from the collector's configuration
 * ([alarms] exec = NAME: /path/to/program arg ...); an alarm's action
 * "exec://NAME" refers to one by name, so a tenant can trigger but never
 * choose what runs. The command line is split on blanks (no shell, no
 * quoting, no expansion: wrap anything fancier in a script) and run with
 * execv in its own process group, stdin a pipe carrying the JSON, stdout
 * and stderr captured (first 1 KiB kept for the history), environment
 * reduced to PATH plus VIGIE_ALARM_ID, VIGIE_ALARM_NAME, VIGIE_PROJECT,
 * VIGIE_STATE, VIGIE_PREVIOUS_STATE, VIGIE_RESOURCE, VIGIE_NOTIFICATION_ID.
 * A command still running at the time limit is killed (SIGKILL to its
 * process group).
 *
 * Thread-safe (posix_spawn; no global state).
 */
#ifndef VIGIE_ALARM_EXEC_H
#define VIGIE_ALARM_EXEC_H

#include <stddef.h>
#include <stdint.h>

#define VG_EXEC_MAX 16 /* configured commands */
#define VG_EXEC_NAME_MAX 64
#define VG_EXEC_CMD_MAX 512
#define VG_EXEC_MAX_ARGS 32

struct vg_alarm_exec_cmd {
	char name[VG_EXEC_NAME_MAX];
	char command[VG_EXEC_CMD_MAX];
};

/* Parse "NAME: /abs/program arg ...". The name is [A-Za-z0-9_.-]+, the
 * program an absolute path. 0 or -EINVAL with a reason in err. Pure. */
int vg_alarm_exec_parse(const char *spec, struct vg_alarm_exec_cmd *out,
			char *err, size_t errlen);

struct vg_alarm_exec_env {
	const char *alarm_id, *alarm_name, *project, *state, *previous,
		*resource, *notification_id;
};

/* Run cmd with input on stdin. 0 when it exited with status 0;
 * -ETIMEDOUT (its process group killed with SIGKILL at timeout_ms),
 * -ECHILD (non-zero exit or a signal), -ENOENT / -EACCES (cannot run),
 * -errno. *status (may be NULL) gets the wait status of a child that ran
 * and was reaped (after -ETIMEDOUT: killed by SIGKILL), else 0.
 * output (may be NULL) gets the first outlen-1 bytes of stdout+stderr. */
int vg_alarm_exec_run(const struct vg_alarm_exec_cmd *cmd, const char *input,
		      size_t input_len, const struct vg_alarm_exec_env *env,
		      int64_t timeout_ms, int *status, char *output,
		      size_t outlen);

#endif
