/*
 * pg_harness.h — run a real PostgreSQL server from a C test or benchmark
 * (header-only; tests/unit/db_test.c, bench/db_bench.c). The shell twin
 * is start_postgres in tests/integration/lib.sh.
 *
 * hpg_start makes a private dir (under $TMPDIR or /tmp; hpg_start_in: under
 * a parent dir of the caller's), gives it to the
 * user the server runs as, runs `initdb -A trust -U vigie -E UTF8
 * --no-locale` into <dir>/data and `pg_ctl -w start` with the server on
 * its own free loopback port (listen_addresses=127.0.0.1) and its unix
 * socket in <dir>, and returns when the server accepts connections
 * (pg_ctl -w, then PQping). initdb refuses to run as root: when the test
 * is root, initdb, pg_ctl and the server run as the "postgres" user
 * (fork, setgid/setuid, exec; the effect of `runuser -u postgres`); any
 * other user runs them as itself. Binaries: $PG_BINDIR, else the newest
 * /usr/lib/postgresql/<N>/bin.
 *
 * When the harness cannot run, hpg_start returns -ENOENT (binaries not
 * installed) or -EPERM (root and no postgres user) or another -errno, with
 * the reason in s->why: the caller reports SKIP with that reason (a test
 * never passes without its server).
 *
 * pg_ctl starts the server detached from the test, so an atexit handler
 * stops every server still running (`pg_ctl stop -m immediate`) and
 * removes the dirs, also when a test fails; if the test process is killed
 * outright, the postmaster notices its data dir is gone within a minute
 * (its lock-file check) — or remove it by hand: <dir>/data/postmaster.pid.
 * hpg_stop / hpg_start_again stop (immediate: a crash as far as clients
 * are concerned) and start the same server on the same port, to test
 * reconnection; hpg_restart does both. hpg_createdb makes a fresh
 * database and gives its conninfo. Functions return 0 or -errno. Not
 * thread-safe; one struct per server.
 */
#ifndef VIGIE_TEST_PG_HARNESS_H
#define VIGIE_TEST_PG_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "tests/support/free_port.h"

#define HPG_MAX 4

struct hpg_server {
	char bindir[256];
	char dir[128]; /* the private dir; also the unix socket's dir */
	char data[192];
	char log[192];    /* the server's log */
	char cmdlog[192]; /* initdb's and pg_ctl's output */
	char opts[512];   /* pg_ctl -o */
	int port;
	int running;
	volatile pid_t pm_pid; /* the postmaster, for the signal handler */
	uid_t uid;             /* who runs initdb/pg_ctl/postgres */
	gid_t gid;
	int switch_user;
	char conninfo[512]; /* unix socket, user vigie, dbname=postgres */
	char why[512];      /* why hpg_start failed */
};

static struct hpg_server *hpg_all[HPG_MAX];

static inline int hpg_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

/* Run argv as the server's user, output appended to cmdlog; its exit
 * status, or -errno. */
static inline int hpg_run(struct hpg_server *s, const char *const *argv)
{
	pid_t pid;
	int st;

	fflush(NULL);
	if ((pid = fork()) < 0)
		return -errno;
	if (pid == 0) {
		if (chdir(s->dir))
			_exit(126);
		if (s->switch_user && (setgroups(0, NULL) || setgid(s->gid) || setuid(s->uid)))
			_exit(126);
		int fd = open(s->cmdlog, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static inline void hpg_stop(struct hpg_server *s)
{
	char pg_ctl[300];

	if (!s->running)
		return;
	snprintf(pg_ctl, sizeof(pg_ctl), "%s/pg_ctl", s->bindir);
	const char *argv[] = {pg_ctl, "-D", s->data, "-m", "immediate", "-w", "stop", NULL};
	hpg_run(s, argv);
	s->running = 0;
	s->pm_pid = 0;
}

static inline void hpg_cleanup(struct hpg_server *s)
{
	hpg_stop(s);
	for (int i = 0; i < HPG_MAX; i++)
		if (hpg_all[i] == s)
			hpg_all[i] = NULL;
	if (!s->dir[0])
		return;
	if (getenv("KEEP_TMP"))
		fprintf(stderr, "# kept %s\n", s->dir);
	else
		nftw(s->dir, hpg_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	s->dir[0] = '\0';
}

static inline void hpg_atexit(void)
{
	for (int i = 0; i < HPG_MAX; i++)
		if (hpg_all[i])
			hpg_cleanup(hpg_all[i]);
}

/* Killed by a signal (a runner's timeout, ^C): no atexit, so take the
 * servers down here (SIGQUIT to the postmaster is an immediate shutdown;
 * kill is async-signal-safe), then die of the same signal. */
static inline void hpg_on_signal(int sig)
{
	for (int i = 0; i < HPG_MAX; i++)
		if (hpg_all[i] && hpg_all[i]->pm_pid > 0)
			kill(hpg_all[i]->pm_pid, SIGQUIT);
	signal(sig, SIG_DFL);
	raise(sig);
}

static inline void hpg_track(struct hpg_server *s)
{
	static int registered;

	if (!registered) {
		atexit(hpg_atexit);
		signal(SIGTERM, hpg_on_signal);
		signal(SIGINT, hpg_on_signal);
		signal(SIGHUP, hpg_on_signal);
		registered = 1;
	}
	for (int i = 0; i < HPG_MAX; i++)
		if (!hpg_all[i] || hpg_all[i] == s) {
			hpg_all[i] = s;
			return;
		}
}

/* A loopback port nobody listens on, below the ephemeral range. */
static inline int hpg_free_port(void)
{
	static uint32_t seed;

	return vg_test_free_port(&seed, 7u);
}

static inline int hpg_find_bindir(struct hpg_server *s)
{
	const char *env = getenv("PG_BINDIR");
	char p[300];

	if (env && *env) {
		snprintf(s->bindir, sizeof(s->bindir), "%s", env);
	} else {
		s->bindir[0] = '\0';
		for (int v = 30; v >= 10 && !s->bindir[0]; v--) {
			snprintf(p, sizeof(p), "/usr/lib/postgresql/%d/bin/pg_ctl", v);
			if (!access(p, X_OK))
				snprintf(s->bindir, sizeof(s->bindir), "/usr/lib/postgresql/%d/bin", v);
		}
	}
	const char *need[] = {"initdb", "pg_ctl", "postgres"};
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", s->bindir, need[i]);
		if (!s->bindir[0] || access(p, X_OK)) {
			snprintf(s->why, sizeof(s->why),
				 "PostgreSQL server binaries not found (%.120s; install the postgresql "
				 "package or set PG_BINDIR)",
				 s->bindir[0] ? p : "/usr/lib/postgresql/*/bin");
			return -ENOENT;
		}
	}
	return 0;
}

/* The first line of cmdlog that mentions an error, for s->why. */
static inline void hpg_why(struct hpg_server *s, const char *what)
{
	char line[200] = "", l[200];
	FILE *f = fopen(s->cmdlog, "r");

	while (f && fgets(l, sizeof(l), f))
		if (!line[0] && (strstr(l, "FATAL") || strstr(l, "error") || strstr(l, "could not")))
			snprintf(line, sizeof(line), "%s", l);
	if (f)
		fclose(f);
	line[strcspn(line, "\n")] = '\0';
	snprintf(s->why, sizeof(s->why), "%s failed: %s (log: %s)", what, line, s->cmdlog);
}

/* pg_ctl start on the existing data dir; 0 when it accepts connections. */
static inline int hpg_start_again(struct hpg_server *s)
{
	char pg_ctl[300];
	const char *argv[] = {pg_ctl, "-D", s->data, "-l", s->log, "-w", "-t", "60", "-o", s->opts,
			      "start", NULL};
	int rc;

	snprintf(pg_ctl, sizeof(pg_ctl), "%s/pg_ctl", s->bindir);
	if ((rc = hpg_run(s, argv))) {
		hpg_why(s, "pg_ctl start");
		return rc < 0 ? rc : -ECHILD;
	}
	s->running = 1;
	char pidfile[256];
	snprintf(pidfile, sizeof(pidfile), "%s/postmaster.pid", s->data);
	FILE *f = fopen(pidfile, "r");
	long pm = 0;
	if (f && fscanf(f, "%ld", &pm) == 1)
		s->pm_pid = (pid_t)pm;
	if (f)
		fclose(f);
	for (int i = 0; i < 600; i++) { /* up to 30 s more */
		if (PQping(s->conninfo) == PQPING_OK)
			return 0;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	snprintf(s->why, sizeof(s->why), "server started but does not answer (log: %s)", s->log);
	return -ETIMEDOUT;
}

static inline int hpg_restart(struct hpg_server *s)
{
	hpg_stop(s);
	return hpg_start_again(s);
}

/* Start a server with its private dir under parent (NULL: $TMPDIR, else
 * /tmp). extra_opts: more postgres options ("-c fsync=off"...), or NULL.
 * A caller that wants the data elsewhere (bench/db_bench.c: on disk)
 * passes parent rather than changing TMPDIR, which would also move its
 * port claims out of the shared vigie-ports (docs/testing.md). */
static inline int hpg_start_in(struct hpg_server *s, const char *parent,
			       const char *extra_opts)
{
	const char *tmp = parent && *parent ? parent : getenv("TMPDIR");
	char initdb[300];
	int rc;

	memset(s, 0, sizeof(*s));
	if ((rc = hpg_find_bindir(s)))
		return rc;
	s->uid = getuid();
	s->gid = getgid();
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam("postgres");
		if (!pw) {
			snprintf(s->why, sizeof(s->why),
				 "running as root (initdb refuses) and there is no 'postgres' user");
			return -EPERM;
		}
		s->uid = pw->pw_uid;
		s->gid = pw->pw_gid;
		s->switch_user = 1;
	}
	snprintf(s->dir, sizeof(s->dir), "%s/vigie-pg.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(s->dir)) {
		snprintf(s->why, sizeof(s->why), "mkdtemp %s: %s", s->dir, strerror(errno));
		s->dir[0] = '\0';
		return -errno;
	}
	hpg_track(s);
	if (s->switch_user && chown(s->dir, s->uid, s->gid)) {
		snprintf(s->why, sizeof(s->why), "chown %s to postgres: %s", s->dir, strerror(errno));
		return -EPERM;
	}
	snprintf(s->data, sizeof(s->data), "%s/data", s->dir);
	snprintf(s->log, sizeof(s->log), "%s/server.log", s->dir);
	snprintf(s->cmdlog, sizeof(s->cmdlog), "%s/setup.log", s->dir);
	if ((s->port = hpg_free_port()) < 0)
		return s->port;
	snprintf(s->opts, sizeof(s->opts),
		 "-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=40 %s", s->port, s->dir,
		 extra_opts ? extra_opts : "");
	snprintf(s->conninfo, sizeof(s->conninfo), "host=%s port=%d user=vigie dbname=postgres",
		 s->dir, s->port);
	snprintf(initdb, sizeof(initdb), "%s/initdb", s->bindir);
	const char *argv[] = {initdb, "-D", s->data, "-A", "trust", "-U", "vigie", "-E", "UTF8",
			      "--no-locale", "--no-sync", NULL};
	if ((rc = hpg_run(s, argv))) {
		hpg_why(s, "initdb");
		return rc < 0 ? rc : -ECHILD;
	}
	return hpg_start_again(s);
}

/* hpg_start_in under $TMPDIR or /tmp. */
static inline int hpg_start(struct hpg_server *s, const char *extra_opts)
{
	return hpg_start_in(s, NULL, extra_opts);
}

/* CREATE DATABASE name; its conninfo (unix socket) into out. */
static inline int hpg_createdb(struct hpg_server *s, const char *name, char *out, size_t outlen)
{
	char sql[160];
	PGconn *c = PQconnectdb(s->conninfo);
	int rc = 0;

	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(s->why, sizeof(s->why), "%s", PQerrorMessage(c));
		rc = -ENOTCONN;
	} else {
		snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", name);
		PGresult *r = PQexec(c, sql);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			snprintf(s->why, sizeof(s->why), "%s", PQresultErrorMessage(r));
			rc = -EIO;
		}
		PQclear(r);
	}
	PQfinish(c);
	snprintf(out, outlen, "host=%s port=%d user=vigie dbname=%s", s->dir, s->port, name);
	return rc;
}

#endif
