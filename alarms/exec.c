/*
 * exec.c — run an operator-configured command for an alarm notification
 * (vigie/alarm_exec.h).
 *
 * Design: posix_spawn (safe in a multi-threaded daemon, unlike a fork
 * that runs code) with the child in a new process group, stdin and
 * stdout/stderr on pipes. The parent feeds stdin and drains output with
 * poll() until the child exits or the deadline passes, then kills the
 * whole group so a command's own children cannot outlive the limit.
 *
 * Invariants: every spawned child is reaped before returning; pipes are
 * close-on-exec in the parent, so concurrent spawns never leak each
 * other's descriptors.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vigie/alarm_exec.h"
#include "vigie/clock.h"

int vg_alarm_exec_parse(const char *spec, struct vg_alarm_exec_cmd *out,
			char *err, size_t errlen)
{
	const char *colon = strchr(spec, ':');
	const char *cmd;
	size_t nl;

	memset(out, 0, sizeof(*out));
	if (!colon) {
		snprintf(err, errlen, "must be NAME: /path/to/program [args]");
		return -EINVAL;
	}
	nl = (size_t)(colon - spec);
	while (nl && (spec[nl - 1] == ' ' || spec[nl - 1] == '\t'))
		nl--;
	if (!nl || nl >= VG_EXEC_NAME_MAX) {
		snprintf(err, errlen, "the name before ':' must be 1 to %d "
				      "characters",
			 VG_EXEC_NAME_MAX - 1);
		return -EINVAL;
	}
	for (size_t i = 0; i < nl; i++) {
		char c = spec[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
			snprintf(err, errlen, "the name may only contain letters, "
					      "digits, '_', '.' and '-'");
			return -EINVAL;
		}
	}
	cmd = colon + 1;
	while (*cmd == ' ' || *cmd == '\t')
		cmd++;
	if (*cmd != '/') {
		snprintf(err, errlen, "the program must be an absolute path");
		return -EINVAL;
	}
	if (strlen(cmd) >= VG_EXEC_CMD_MAX) {
		snprintf(err, errlen, "the command is longer than %d bytes",
			 VG_EXEC_CMD_MAX - 1);
		return -EINVAL;
	}
	memcpy(out->name, spec, nl);
	snprintf(out->command, sizeof(out->command), "%s", cmd);
	return 0;
}

static int set_cloexec_nb(int fd, int nonblock)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return -errno;
	if (nonblock) {
		fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
			return -errno;
	}
	return 0;
}

int vg_alarm_exec_run(const struct vg_alarm_exec_cmd *cmd, const char *input,
		      size_t input_len, const struct vg_alarm_exec_env *env,
		      int64_t timeout_ms, int *status, char *output,
		      size_t outlen)
{
	char line[VG_EXEC_CMD_MAX], *argv[VG_EXEC_MAX_ARGS + 1], *save = NULL;
	char envbuf[8][320], *envp[9];
	int in[2] = {-1, -1}, out[2] = {-1, -1}, argc = 0, rc = 0, ws = 0;
	size_t written = 0, got = 0;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int64_t deadline;
	pid_t pid;
	sigset_t pipeset, oldmask;
	int nenv = 0, reaped = 0;

	if (status)
		*status = 0;
	if (output && outlen)
		output[0] = '\0';
	snprintf(line, sizeof(line), "%s", cmd->command);
	for (char *t = strtok_r(line, " \t", &save); t && argc < VG_EXEC_MAX_ARGS;
	     t = strtok_r(NULL, " \t", &save))
		argv[argc++] = t;
	argv[argc] = NULL;
	if (!argc)
		return -EINVAL;
#define ENV(k, v)                                                        \
	do {                                                             \
		snprintf(envbuf[nenv], sizeof(envbuf[nenv]), "%s=%s", k, \
			 (v) ? (v) : "");                                \
		envp[nenv] = envbuf[nenv];                               \
		nenv++;                                                  \
	} while (0)
	ENV("PATH", "/usr/local/bin:/usr/bin:/bin");
	if (env) {
		ENV("VIGIE_ALARM_ID", env->alarm_id);
		ENV("VIGIE_ALARM_NAME", env->alarm_name);
		ENV("VIGIE_PROJECT", env->project);
		ENV("VIGIE_STATE", env->state);
		ENV("VIGIE_PREVIOUS_STATE", env->previous);
		ENV("VIGIE_RESOURCE", env->resource);
		ENV("VIGIE_NOTIFICATION_ID", env->notification_id);
	}
#undef ENV
	envp[nenv] = NULL;

	if (pipe(in) || pipe(out)) {
		rc = -errno;
		goto close_pipes;
	}
	if ((rc = set_cloexec_nb(in[1], 1)) || (rc = set_cloexec_nb(out[0], 1)) ||
	    (rc = set_cloexec_nb(in[0], 0)) || (rc = set_cloexec_nb(out[1], 0)))
		goto close_pipes;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, out[1], 2);
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&at, 0);
	{
		sigset_t none, all;
		sigemptyset(&none);
		sigfillset(&all);
		posix_spawnattr_setsigmask(&at, &none);
		posix_spawnattr_setsigdefault(&at, &all);
	}
	rc = posix_spawn(&pid, argv[0], &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc) {
		rc = -rc;
		goto close_pipes;
	}
	close(in[0]);
	close(out[1]);
	in[0] = out[1] = -1;
	if (!input_len) {
		close(in[1]);
		in[1] = -1;
	}

	/* A child that exits without reading its stdin must not kill us
	 * with SIGPIPE: block it on this thread, discard it afterwards. */
	sigemptyset(&pipeset);
	sigaddset(&pipeset, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipeset, &oldmask);
	deadline = vg_monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 10000);
	for (;;) {
		struct pollfd pf[2];
		int np = 0;
		int64_t left = deadline - vg_monotonic_ms();
		if (left <= 0) {
			rc = -ETIMEDOUT;
			break;
		}
		if (in[1] >= 0)
			pf[np++] = (struct pollfd){in[1], POLLOUT, 0};
		if (out[0] >= 0)
			pf[np++] = (struct pollfd){out[0], POLLIN, 0};
		if (!np) {
			/* both pipes done: wait for the exit, still bounded */
			pid_t w = waitpid(pid, &ws, WNOHANG);
			if (w == pid) {
				pid = -1;
				reaped = 1;
				break;
			}
			vg_sleep_ms(left < 10 ? left : 10);
			continue;
		}
		if (poll(pf, (nfds_t)np, (int)(left < 100 ? left : 100)) < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		for (int i = 0; i < np; i++) {
			if (pf[i].fd == in[1] && pf[i].revents) {
				ssize_t n = write(in[1], input + written,
						  input_len - written);
				if (n > 0)
					written += (size_t)n;
				if (n < 0 && errno != EAGAIN && errno != EINTR)
					written = input_len; /* EPIPE: it stopped reading */
				if (written >= input_len) {
					close(in[1]);
					in[1] = -1;
				}
			} else if (pf[i].fd == out[0] && pf[i].revents) {
				char tmp[512];
				ssize_t n = read(out[0], tmp, sizeof(tmp));
				if (n > 0) {
					if (output && got + 1 < outlen) {
						size_t k = (size_t)n;
						if (k > outlen - 1 - got)
							k = outlen - 1 - got;
						memcpy(output + got, tmp, k);
						got += k;
						output[got] = '\0';
					}
				} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
					close(out[0]);
					out[0] = -1;
				}
			}
		}
	}
	if (pid > 0) {
		if (rc == -ETIMEDOUT || rc)
			kill(-pid, SIGKILL);
		while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
			;
		reaped = 1;
	}
	{
		struct timespec zero = {0, 0};
		sigset_t pending;
		if (!sigpending(&pending) && sigismember(&pending, SIGPIPE))
			sigtimedwait(&pipeset, NULL, &zero);
		pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
	}
	if (status && reaped) /* how it ended (SIGKILL at the timeout) */
		*status = ws;
	if (!rc && (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0))
		rc = -ECHILD;
close_pipes:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	return rc;
}
