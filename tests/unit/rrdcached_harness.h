/*
 * rrdcached_harness.h — run a real rrdcached from a C test or benchmark
 * (header-only; tests/unit/rrdcached_test.c, bench/rrdcached_bench.c).
 *
 * hrd_start makes a private dir (under PARENT, or $TMPDIR, or /tmp) with
 * base/ (the daemon's -b, confined with -B), journal/ (-j), a unix socket
 * and a pid file, picks a free loopback TCP port, and fork/execs
 * `rrdcached -g` (the foreground: it stays our child) listening on both,
 * its output in <dir>/rrdcached.log; it returns when the daemon answers
 * PING on both sockets. Writes are held in the daemon's cache for an hour
 * (-w 3600 -f 7200), so a test sees the cache and the journal at work and
 * only FLUSH, FETCH or a stop writes the files. $RRDCACHED names another
 * binary.
 *
 * The daemon never outlives the test: the child asks the kernel for
 * SIGKILL when its parent dies (PR_SET_PDEATHSIG), and an atexit handler
 * kills every daemon still running, so a failing or crashing test leaves
 * nothing behind (the dirs not cleaned up are removed at exit by
 * tests/support/tmpdir.h's handler, which runs after this one). hrd_kill sends a signal and reaps (SIGKILL for a crash,
 * SIGSTOP/SIGCONT for a stall: those do not reap); hrd_restart starts the
 * same daemon again on the same dir, sockets and port (the journal is
 * replayed); hrd_start_nojournal starts one without -j, which loses what
 * it had not written when killed; hrd_cleanup stops it and removes the dir (fx_rm_tree: kept
 * as KEEP_TMP says, named as "# kept DIR" at exit). Functions return 0 or -errno. Not thread-safe; one struct per
 * daemon.
 */
#ifndef VIGIE_TEST_RRDCACHED_HARNESS_H
#define VIGIE_TEST_RRDCACHED_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/free_port.h"
#include "tests/support/tmpdir.h"

#include "vigie/rrdcached.h"

#define HRD_MAX_EXTRA 8
#define HRD_MAX_DAEMONS 16

struct hrd_daemon {
	pid_t pid;
	int port;
	char dir[PATH_MAX / 4];
	char base[PATH_MAX / 2];
	char journal[PATH_MAX / 2];
	char sock[PATH_MAX / 2];
	char log[PATH_MAX / 2];
	char pidfile[PATH_MAX / 2];
	char unix_addr[PATH_MAX]; /* "unix:<dir>/sock" */
	char tcp_addr[32];        /* "127.0.0.1:<port>" */
	const char *extra[HRD_MAX_EXTRA + 1];
	int no_journal; /* started without -j */
};

static pid_t hrd_pids[HRD_MAX_DAEMONS];

static inline void hrd_atexit(void)
{
	for (int i = 0; i < HRD_MAX_DAEMONS; i++)
		if (hrd_pids[i] > 0) {
			kill(hrd_pids[i], SIGKILL);
			waitpid(hrd_pids[i], NULL, 0);
			hrd_pids[i] = 0;
		}
}

static inline void hrd_track(pid_t old, pid_t pid)
{
	static int registered;

	if (!registered) {
		atexit(hrd_atexit);
		registered = 1;
	}
	for (int i = 0; i < HRD_MAX_DAEMONS; i++)
		if (hrd_pids[i] == old) {
			hrd_pids[i] = pid;
			return;
		}
}

/* A loopback port nobody listens on, below the ephemeral range (so no
 * outgoing connection takes it while a test restarts the daemon). */
static inline int hrd_free_port(void)
{
	static uint32_t seed;

	return vg_test_free_port(&seed, 1u);
}

static inline const char *hrd_binary(void)
{
	const char *b = getenv("RRDCACHED");
	return b && *b ? b : "rrdcached";
}

/* 0 when the daemon answers PING at ADDR. */
static inline int hrd_ping(const char *addr)
{
	struct vg_rrdcd *c;
	int rc = vg_rrdcd_connect(addr, 1000, &c);

	if (rc)
		return rc;
	rc = vg_rrdcd_ping(c);
	vg_rrdcd_close(c);
	return rc;
}

static inline int hrd_spawn(struct hrd_daemon *d)
{
	char lsock[PATH_MAX], ltcp[48];
	const char *argv[32];
	int argc = 0;
	pid_t pid;

	unlink(d->sock);
	unlink(d->pidfile);
	snprintf(lsock, sizeof(lsock), "unix:%s", d->sock);
	snprintf(ltcp, sizeof(ltcp), "127.0.0.1:%d", d->port);
	argv[argc++] = hrd_binary();
	argv[argc++] = "-g";
	argv[argc++] = "-l";
	argv[argc++] = lsock;
	argv[argc++] = "-l";
	argv[argc++] = ltcp;
	argv[argc++] = "-b";
	argv[argc++] = d->base;
	argv[argc++] = "-B";
	if (!d->no_journal) {
		argv[argc++] = "-j";
		argv[argc++] = d->journal;
	}
	argv[argc++] = "-p";
	argv[argc++] = d->pidfile;
	argv[argc++] = "-w";
	argv[argc++] = "3600";
	argv[argc++] = "-f";
	argv[argc++] = "7200";
	for (int i = 0; d->extra[i]; i++)
		argv[argc++] = d->extra[i];
	argv[argc] = NULL;

	fflush(NULL);
	if ((pid = fork()) < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(127);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	hrd_track(0, pid);
	d->pid = pid;
	/* up to 10 s for both sockets to answer */
	for (int i = 0; i < 500; i++) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			hrd_track(pid, 0);
			d->pid = 0;
			return -ECHILD;
		}
		if (!hrd_ping(d->unix_addr) && !hrd_ping(d->tcp_addr))
			return 0;
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return -ETIMEDOUT;
}

/* Start a daemon; EXTRA: NULL or a NULL-ended list of more options
 * (e.g. {"-O", NULL}). PARENT: where its dir goes (NULL: $TMPDIR or
 * /tmp). -ENOENT if rrdcached is not installed, -ECHILD if it exited. */
static inline int hrd_start(struct hrd_daemon *d, const char *parent, const char *const *extra)
{
	const char *tmp = parent ? parent : getenv("TMPDIR");
	int n = 0;

	memset(d, 0, sizeof(*d));
	if (!tmp || !*tmp)
		tmp = "/tmp";
	if (extra)
		for (; extra[n] && n < HRD_MAX_EXTRA; n++)
			d->extra[n] = extra[n];
	snprintf(d->dir, sizeof(d->dir), "%s/vigie-rrdcd.XXXXXX", tmp);
	if (!mkdtemp(d->dir))
		return -errno;
	fx_tmp_track(d->dir); /* before hrd_spawn registers hrd_atexit */
	snprintf(d->base, sizeof(d->base), "%s/base", d->dir);
	snprintf(d->journal, sizeof(d->journal), "%s/journal", d->dir);
	snprintf(d->sock, sizeof(d->sock), "%s/sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/rrdcached.log", d->dir);
	snprintf(d->pidfile, sizeof(d->pidfile), "%s/rrdcached.pid", d->dir);
	snprintf(d->unix_addr, sizeof(d->unix_addr), "unix:%s", d->sock);
	if (mkdir(d->base, 0755) || mkdir(d->journal, 0755))
		return -errno;
	if ((d->port = hrd_free_port()) < 0)
		return d->port;
	snprintf(d->tcp_addr, sizeof(d->tcp_addr), "127.0.0.1:%d", d->port);
	return hrd_spawn(d);
}

/* hrd_start without the daemon's -j journal. */
static inline int hrd_start_nojournal(struct hrd_daemon *d, const char *parent,
				      const char *const *extra)
{
	int rc = hrd_start(d, parent, extra);

	if (rc || !d->pid)
		return rc;
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
	hrd_track(d->pid, 0);
	d->pid = 0;
	d->no_journal = 1;
	return hrd_spawn(d);
}

/* Send SIG; for a signal that ends the daemon, wait for it; for SIGSTOP,
 * wait (up to 10 s) until every thread of it is stopped: kill() only
 * queues the stop, and a thread already running could still answer a
 * request sent right after it (seen once under load: a read expected to
 * time out on the stopped daemon was answered). */
static inline int hrd_kill(struct hrd_daemon *d, int sig)
{
	if (d->pid <= 0)
		return -ESRCH;
	if (kill(d->pid, sig))
		return -errno;
	if (sig == SIGSTOP) {
		for (int i = 0; i < 1000; i++) {
			int st;
			pid_t w = waitpid(d->pid, &st, WNOHANG | WUNTRACED);
			if (w == d->pid && WIFSTOPPED(st))
				return 0;
			if (w < 0)
				return -errno;
			if (w == d->pid) { /* it ended instead */
				hrd_track(d->pid, 0);
				d->pid = 0;
				return -ECHILD;
			}
			struct timespec ts = {0, 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		return -ETIMEDOUT;
	}
	if (sig == SIGCONT)
		return 0;
	waitpid(d->pid, NULL, 0);
	hrd_track(d->pid, 0);
	d->pid = 0;
	return 0;
}

static inline int hrd_restart(struct hrd_daemon *d)
{
	if (d->pid > 0)
		hrd_kill(d, SIGKILL);
	return hrd_spawn(d);
}

/* SIGTERM (the daemon writes its journal's values out), 10 s, SIGKILL. */
static inline void hrd_stop(struct hrd_daemon *d)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGCONT);
	kill(d->pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
			hrd_track(d->pid, 0);
			d->pid = 0;
			return;
		}
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	hrd_kill(d, SIGKILL);
}

static inline void hrd_cleanup(struct hrd_daemon *d)
{
	hrd_stop(d);
	if (!d->dir[0])
		return;
	fx_rm_tree(d->dir);
	d->dir[0] = '\0';
}

#endif
