/*
 * free_port_test.c — vg_test_free_port (tests/support/free_port.h), the
 * port C tests and benchmarks start their daemons on: it claims the port
 * with tests/integration/lib.sh's protocol (a directory
 * ${TMPDIR:-/tmp}/vigie-ports/PORT holding the claimer's pid), so that
 * tests run side by side, C or shell, never get the same port, and a test
 * restarting its daemon finds its port still its own.
 *
 * Each case works in a private $TMPDIR, so the claims it fills the whole
 * range with never reach the other tests running on this machine, and in
 * a narrower range than the tests' (filling 20,000 ports with claims
 * takes a minute on a loaded disk); the code under test is the same.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define VG_TEST_PORT_MIN 30500
#define VG_TEST_PORT_MAX 30799
#include "tests/support/free_port.h"
#include "tests/support/tmpdir.h"

#define RANGE (VG_TEST_PORT_MAX - VG_TEST_PORT_MIN + 1)

struct fix {
	char tmp[256];
	char ports[300];
	char *old_tmpdir;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	const char *t = getenv("TMPDIR");

	if (!f || fx_tmpdir(f->tmp, sizeof(f->tmp), "free-port"))
		return -1;
	f->old_tmpdir = t ? strdup(t) : NULL;
	setenv("TMPDIR", f->tmp, 1);
	snprintf(f->ports, sizeof(f->ports), "%s/vigie-ports", f->tmp);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	if (f->old_tmpdir)
		setenv("TMPDIR", f->old_tmpdir, 1);
	else
		unsetenv("TMPDIR");
	fx_rm_tree(f->tmp);
	free(f->old_tmpdir);
	free(f);
	return 0;
}

/* A claim as lib.sh's free_port writes it: PORT/ and PORT/pid holding
 * "PID\n" (no pid file when pid is 0: a claim being made). */
static void shell_claim(const char *ports, int port, long pid)
{
	char p[512];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/%d", ports, port);
	assert_int_equal(mkdir(p, 0777), 0);
	if (!pid)
		return;
	snprintf(p, sizeof(p), "%s/%d/pid", ports, port);
	assert_non_null(fp = fopen(p, "w"));
	fprintf(fp, "%ld\n", pid);
	fclose(fp);
}

static int claims_left(const char *ports)
{
	DIR *d = opendir(ports);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		n += e->d_name[0] >= '0' && e->d_name[0] <= '9';
	closedir(d);
	return n;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

#define CHILDREN 6
#define PER_CHILD 20

/* Processes drawing from the same seed at the same time (the worst case
 * of tests started side by side) all get distinct ports, held until each
 * exits; each one's exit removes its own claims and nobody else's. */
static void test_concurrent_claims_distinct(void **state)
{
	struct fix *f = *state;
	int out[2], go[2], got[CHILDREN * PER_CHILD], n = 0;
	pid_t kids[CHILDREN];
	uint32_t pseed = 0;

	int mine = vg_test_free_port(&pseed, 1);
	assert_true(mine >= VG_TEST_PORT_MIN && mine <= VG_TEST_PORT_MAX);
	assert_int_equal(pipe(out), 0);
	assert_int_equal(pipe(go), 0);
	for (int c = 0; c < CHILDREN; c++) {
		assert_true((kids[c] = fork()) >= 0);
		if (kids[c] == 0) {
			uint32_t seed = 424242u; /* the same in every child */
			char b;
			close(out[0]);
			close(go[1]);
			for (int i = 0; i < PER_CHILD; i++) {
				int p = vg_test_free_port(&seed, 0);
				if (write(out[1], &p, sizeof(p)) != sizeof(p))
					_exit(2);
			}
			close(out[1]);
			/* hold the claims until every child has its ports */
			while (read(go[0], &b, 1) > 0)
				;
			exit(0); /* not _exit: the atexit handler releases */
		}
	}
	close(out[1]);
	close(go[0]);
	while (n < CHILDREN * PER_CHILD && read(out[0], &got[n], sizeof(int)) == sizeof(int))
		n++;
	close(out[0]);
	assert_int_equal(n, CHILDREN * PER_CHILD);
	qsort(got, (size_t)n, sizeof(int), cmp_int);
	for (int i = 0; i < n; i++) {
		assert_true(got[i] >= VG_TEST_PORT_MIN && got[i] <= VG_TEST_PORT_MAX);
		assert_int_not_equal(got[i], mine);
		if (i)
			assert_int_not_equal(got[i], got[i - 1]);
	}
	assert_int_equal(claims_left(f->ports), CHILDREN * PER_CHILD + 1);
	close(go[1]); /* the children exit */
	for (int c = 0; c < CHILDREN; c++) {
		int st;
		assert_int_equal(waitpid(kids[c], &st, 0), kids[c]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	/* the children's claims went with them; this process's stays */
	assert_int_equal(claims_left(f->ports), 1);
	assert_int_equal(vg_test_port_owner(f->ports, mine), (long)getpid());
}

#define DEAD 5

/* A claim by a live process (shell format) is never returned, nor one
 * still being made (no pid yet); a claim whose process is gone is taken
 * over, with this process's pid. */
static void test_live_claims_kept_dead_taken_over(void **state)
{
	struct fix *f = *state;
	int dead[DEAD], nd = 0, empty = -1, got[DEAD + 1], ng = 0;
	pid_t live, gone;
	uint32_t seed = 0;

	assert_true((live = fork()) >= 0);
	if (live == 0) {
		pause();
		_exit(0);
	}
	assert_true((gone = fork()) >= 0);
	if (gone == 0)
		_exit(0);
	assert_int_equal(waitpid(gone, NULL, 0), gone);
	assert_int_equal(kill(gone, 0), -1);

	assert_int_equal(mkdir(f->ports, 0777), 0);
	/* DEAD ports nothing on this machine uses, claimed by the gone
	 * process; one port claimed without a pid; the rest by the live one */
	for (int p = VG_TEST_PORT_MIN + (int)(getpid() % RANGE), i = 0; i < RANGE; i++) {
		int port = VG_TEST_PORT_MIN + (p - VG_TEST_PORT_MIN + i) % RANGE;
		if (nd < DEAD && vg_test_port_unused(port, 1)) {
			shell_claim(f->ports, port, gone);
			dead[nd++] = port;
		} else if (empty < 0 && nd == DEAD) {
			shell_claim(f->ports, port, 0);
			empty = port;
		} else {
			shell_claim(f->ports, port, live);
		}
	}
	assert_int_equal(nd, DEAD);

	for (int p; ng <= DEAD && (p = vg_test_free_port(&seed, 2)) > 0;)
		got[ng++] = p;
	kill(live, SIGKILL);
	waitpid(live, NULL, 0);

	assert_true(ng <= DEAD);
	for (int i = 0; i < ng; i++) {
		int known = 0;
		for (int j = 0; j < DEAD; j++)
			known |= got[i] == dead[j];
		assert_true(known);
		assert_int_equal(vg_test_port_owner(f->ports, got[i]), (long)getpid());
		for (int j = 0; j < i; j++)
			assert_int_not_equal(got[i], got[j]);
	}
	/* a dead claim not returned is one something on the machine took
	 * since (another test's daemon): nothing else may explain it */
	for (int j = 0; j < DEAD; j++) {
		int returned = 0;
		for (int i = 0; i < ng; i++)
			returned |= got[i] == dead[j];
		assert_true(returned || !vg_test_port_unused(dead[j], 1));
	}
	assert_int_equal(vg_test_port_owner(f->ports, empty), 0);
}

/* A port with a connection in TIME_WAIT on it (a daemon's, just stopped)
 * is not free, though bind with SO_REUSEADDR would succeed. */
static void test_tcp_state_refused(void **state)
{
	struct fix *f = *state;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int busy = -1, other = -1, lfd, cfd, sfd, one = 1;
	uint32_t seed = 0;

	for (int i = 0; other < 0 && i < RANGE; i++) {
		int port = VG_TEST_PORT_MIN + (int)((getpid() + (unsigned)i * 7919u) % RANGE);
		if (!vg_test_port_unused(port, 1))
			continue;
		if (busy < 0)
			busy = port;
		else
			other = port;
	}
	assert_true(other > 0);

	/* the client closes first, so its end, 127.0.0.1:busy, is left in
	 * TIME_WAIT */
	assert_true((lfd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
	assert_true((cfd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	setsockopt(cfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in c = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)busy),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(cfd, (struct sockaddr *)&c, sizeof(c)), 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_true((sfd = accept(lfd, NULL, NULL)) >= 0);
	close(cfd);
	char b;
	assert_int_equal(read(sfd, &b, 1), 0); /* the client's FIN */
	close(sfd);
	close(lfd);
	assert_true(vg_test_port_in_proc("tcp", busy));

	/* every other port is held by this (live) process */
	assert_int_equal(mkdir(f->ports, 0777), 0);
	for (int port = VG_TEST_PORT_MIN; port <= VG_TEST_PORT_MAX; port++)
		if (port != busy && port != other)
			shell_claim(f->ports, port, (long)getpid());

	int p = vg_test_free_port(&seed, 3);
	/* unless another process took "other" since: then none is free */
	if (p != -EADDRINUSE || vg_test_port_unused(other, 1))
		assert_int_equal(p, other);
	assert_int_equal(vg_test_free_port(&seed, 3), -EADDRINUSE);
	/* refusing "busy" left no claim on it */
	assert_int_equal(claims_left(f->ports), RANGE - 2 + (p == other));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_concurrent_claims_distinct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_claims_kept_dead_taken_over, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tcp_state_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
