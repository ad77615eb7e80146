/*
 * hang_guard.h — a call that should return, and would hang if the code
 * under test were broken, fails the test with a message instead of
 * holding it until tests/run.sh's TEST_TIMEOUT (900 s).
 *
 * It is no timing bound: HANG_GUARD_S is far beyond what the call takes
 * on the most loaded machine, and only a call that never returns reaches
 * it. The guard is SIGALRM: its handler prints the TAP diagnostic and
 * ends the process (the call cannot be interrupted safely), which
 * tests/run.sh counts as a failure and shows with the '#' line.
 *
 *     hang_guard_arm("vg_events_stop");
 *     vg_events_stop(e);
 *     hang_guard_disarm();
 */
#ifndef VIGIE_TEST_HANG_GUARD_H
#define VIGIE_TEST_HANG_GUARD_H

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define HANG_GUARD_S 60

static char hang_guard_msg[256];

static void hang_guard_fire(int sig)
{
	(void)sig;
	ssize_t w = write(STDOUT_FILENO, hang_guard_msg, strlen(hang_guard_msg));
	(void)w;
	_exit(1);
}

/* Arm the guard for one call named what (for the message). */
static inline void hang_guard_arm(const char *what)
{
	struct sigaction sa;

	snprintf(hang_guard_msg, sizeof(hang_guard_msg),
		 "not ok - hang guard\n# %s did not return within %d s (a hang, not "
		 "slowness)\n",
		 what, HANG_GUARD_S);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = hang_guard_fire;
	sigaction(SIGALRM, &sa, NULL);
	alarm(HANG_GUARD_S);
}

static inline void hang_guard_disarm(void)
{
	alarm(0);
}

#endif
