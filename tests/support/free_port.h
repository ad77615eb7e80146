/*
 * free_port.h — a loopback TCP port nobody uses, claimed for this test
 * process until it exits, for a test or benchmark that starts a daemon on
 * it (tests/unit/pg_harness.h, tests/unit/rrdcached_harness.h,
 * receiver_test.c, cluster_stream_test.c, the bench programs).
 * Header-only, no cmocka.
 *
 * Tests run side by side (C and shell, several helpers' at once) pick a
 * port before their daemon binds it, and a test that kills a daemon
 * starts it again on its old port; a port merely found free could be
 * taken meanwhile. So each port is claimed with the protocol of
 * tests/integration/lib.sh's free_port, in the same directory, so that
 * shell and C tests respect each other's claims:
 *
 *   - the claim is the directory ${TMPDIR:-/tmp}/vigie-ports/PORT, made
 *     with mkdir (atomic: one claimer wins), then the claimer writes its
 *     pid, in decimal and a newline, to PORT/pid;
 *   - a claim whose pid file names a live process is never taken; one
 *     with no pid yet is being made, and is skipped too;
 *   - a claim whose process is gone (a test killed or crashed) is taken
 *     over: under flock(2) on vigie-ports/.takeover (released by the
 *     kernel if the taker dies), the taker reads the pid again, removes
 *     the directory only if that process is still gone, and claims the
 *     port with mkdir as above (losing it to a plain claimer is fine);
 *   - the claim is the test process's (getpid() when it claimed), not its
 *     daemon's: the daemon a test restarts has another pid each time, the
 *     port stays the test's. An atexit handler removes the claims holding
 *     the exiting process's pid (a forked child that exits removes only
 *     its own); a test killed by a signal leaves its claims to be taken
 *     over.
 *
 * A port is also refused when anything is in a TCP state on it (listening,
 * connected, TIME_WAIT..., on any local address: what lib.sh asks
 * `ss -Htan "sport = :PORT"`): bind() without SO_REUSEADDR on 127.0.0.1
 * first, then /proc/net/tcp and tcp6 once the port is claimed.
 *
 * The ports are drawn below the ephemeral range (VG_TEST_PORT_MIN..MAX),
 * so no outgoing connection takes one while a test restarts its daemon:
 * a pseudo-random walk through the whole range, seeded by the process id,
 * the time and the caller's salt, so parallel tests seldom try the same
 * ports first, and every port is tried before giving up.
 */
#ifndef VIGIE_TEST_FREE_PORT_H
#define VIGIE_TEST_FREE_PORT_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The range (tests/unit/free_port_test.c narrows it, to fill it with
 * claims quickly; its size must not be a multiple of 7919, see below). */
#ifndef VG_TEST_PORT_MIN
#define VG_TEST_PORT_MIN 12000
#endif
#ifndef VG_TEST_PORT_MAX
#define VG_TEST_PORT_MAX 31999
#endif

/* The claims' directory, ${TMPDIR:-/tmp}/vigie-ports, into buf. */
static inline void vg_test_ports_dir(char *buf, size_t len)
{
	const char *t = getenv("TMPDIR");

	snprintf(buf, len, "%s/vigie-ports", t && *t ? t : "/tmp");
}

/* The pid in claim PORT's pid file, 0 when it has none (yet). */
static inline long vg_test_port_owner(const char *dir, int port)
{
	char p[4200], b[32];
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "%s/%d/pid", dir, port);
	if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, b, sizeof(b) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	b[n] = '\0';
	long pid = strtol(b, NULL, 10);
	return pid > 0 ? pid : 0;
}

/* 1 when process PID exists (EPERM: it does, as another user's). */
static inline int vg_test_pid_alive(long pid)
{
	return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

static inline int vg_test_port_rm(const char *p, const struct stat *sb, int flag,
				  struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	remove(p);
	return 0;
}

/* Remove claim PORT (its pid file and whatever else is in it). */
static inline void vg_test_port_unclaim(const char *dir, int port)
{
	char p[4200];

	snprintf(p, sizeof(p), "%s/%d", dir, port);
	nftw(p, vg_test_port_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* The atexit handler: remove every claim holding this process's pid. */
static inline void vg_test_ports_release(void)
{
	char dir[4096];
	struct dirent *e;
	DIR *d;

	vg_test_ports_dir(dir, sizeof(dir));
	if (!(d = opendir(dir)))
		return;
	while ((e = readdir(d))) {
		char *end;
		long port = strtol(e->d_name, &end, 10);
		if (*end || port <= 0 || port > 65535)
			continue;
		if (vg_test_port_owner(dir, (int)port) == (long)getpid())
			vg_test_port_unclaim(dir, (int)port);
	}
	closedir(d);
}

/* Claim PORT for this process: 1 claimed, 0 someone else holds it. */
static inline int vg_test_port_claim(const char *dir, int port)
{
	char p[4200], b[32];
	int fd, n;

	snprintf(p, sizeof(p), "%s/%d", dir, port);
	if (mkdir(p, 0777)) {
		if (errno != EEXIST)
			return 0;
		long o = vg_test_port_owner(dir, port);
		if (!o || vg_test_pid_alive(o))
			return 0; /* held, or being made */
		/* Its test is gone: take it over, one taker at a time. */
		snprintf(p, sizeof(p), "%s/.takeover", dir);
		if ((fd = open(p, O_RDONLY | O_CREAT | O_CLOEXEC, 0666)) < 0)
			return 0;
		int gone = !flock(fd, LOCK_EX) && vg_test_port_owner(dir, port) == o &&
			   !vg_test_pid_alive(o);
		if (gone)
			vg_test_port_unclaim(dir, port);
		close(fd); /* unlocks */
		snprintf(p, sizeof(p), "%s/%d", dir, port);
		if (!gone || mkdir(p, 0777))
			return 0;
	}
	snprintf(p, sizeof(p), "%s/%d/pid", dir, port);
	n = snprintf(b, sizeof(b), "%ld\n", (long)getpid());
	if ((fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)) < 0 ||
	    write(fd, b, (size_t)n) != n) {
		if (fd >= 0)
			close(fd);
		vg_test_port_unclaim(dir, port);
		return 0;
	}
	close(fd);
	return 1;
}

/* 1 when a socket in /proc/net/FILE (tcp, tcp6) has local port PORT. */
static inline int vg_test_port_in_proc(const char *file, int port)
{
	char p[64], line[512];
	FILE *f;
	int found = 0;

	snprintf(p, sizeof(p), "/proc/net/%s", file);
	if (!(f = fopen(p, "re")))
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		/* "  sl  local_address ..." then "0: 0100007F:2EE0 ..." */
		char *c = strchr(line, ':');
		if (c && (c = strchr(c + 1, ':')) && strtol(c + 1, NULL, 16) == port)
			found = 1;
	}
	fclose(f);
	return found;
}

/* 1 when nothing on this machine is bound to 127.0.0.1:PORT, nor in any
 * TCP state on PORT (without SO_REUSEADDR, TIME_WAIT also fails bind). */
static inline int vg_test_port_unused(int port, int check_proc)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return 0;
	int ok = !bind(fd, (struct sockaddr *)&a, sizeof(a));
	close(fd);
	if (ok && check_proc)
		ok = !vg_test_port_in_proc("tcp", port) && !vg_test_port_in_proc("tcp6", port);
	return ok;
}

/* A free port (see above), claimed for this process until it exits, or
 * -errno: -EADDRINUSE when every port of the range is claimed or in use,
 * or the claims' directory's error. salt tells the callers of one process
 * apart (each has its own sequence). Not thread-safe: *seed is the
 * caller's. */
static inline int vg_test_free_port(uint32_t *seed, uint32_t salt)
{
	static int registered;
	const uint32_t range = VG_TEST_PORT_MAX - VG_TEST_PORT_MIN + 1;
	char dir[4096];
	struct stat st;

	vg_test_ports_dir(dir, sizeof(dir));
	if (mkdir(dir, 0777) && errno != EEXIST)
		return -errno;
	if (stat(dir, &st) || !S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (!registered) {
		atexit(vg_test_ports_release);
		registered = 1;
	}
	if (!*seed)
		*seed = ((uint32_t)getpid() * 2654435761u) ^ (uint32_t)time(NULL) ^ salt;
	*seed = *seed * 1103515245u + 12345u;
	/* start + i * step visits every port once: step is prime to range
	 * (7919 is a prime; the range, 20000, is 2^5 * 5^4) */
	uint32_t start = (*seed >> 8) % range, step = 7919;
	for (uint32_t i = 0; i < range; i++) {
		int port = VG_TEST_PORT_MIN + (int)((start + i * step) % range);
		if (!vg_test_port_unused(port, 0) || !vg_test_port_claim(dir, port))
			continue;
		if (vg_test_port_unused(port, 1))
			return port;
		vg_test_port_unclaim(dir, port);
	}
	return -EADDRINUSE;
}

#endif
