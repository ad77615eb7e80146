/*
 * tmpdir.h — a test's temporary directory: made fresh, removed whole
 * (every unit test that writes files, tests/support/api_fixture.h, the
 * API fuzz targets). Header-only, no cmocka.
 *
 * Also when a check fails: a failed cmocka assertion leaves its test
 * function at once, past the fx_rm_tree at its end. So fx_tmpdir
 * remembers each directory it made, fx_rm_tree forgets it, and an exit
 * handler (on_exit: it sees the exit status, which is cmocka's count of
 * failed tests) removes those still there. KEEP_TMP (tests/run.sh) keeps
 * them instead, named on stderr as "# kept DIR": KEEP_TMP=1 always,
 * KEEP_TMP=fail only when the program exits non-zero; with either set,
 * fx_rm_tree of such a directory leaves it to the exit handler, which
 * alone knows whether the run failed. Only the process that made a
 * directory removes it (a forked child's exit does not). Not
 * thread-safe: directories are made and removed by the test's thread.
 */
#ifndef VIGIE_TEST_TMPDIR_H
#define VIGIE_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fx_tmp_entry {
	struct fx_tmp_entry *next;
	pid_t pid;
	char dir[];
};

/* The directories fx_tmpdir made and fx_rm_tree has not removed. */
static inline struct fx_tmp_entry **fx_tmp_list(void)
{
	static struct fx_tmp_entry *head;
	return &head;
}

/* Whether KEEP_TMP keeps the directories of a run that failed or not. */
static inline int fx_keep_tmp(int failed)
{
	const char *k = getenv("KEEP_TMP");

	return k && (!strcmp(k, "1") || (failed && !strcmp(k, "fail")));
}

static inline int fx_rm_entry(const char *p, const struct stat *sb, int flag,
			      struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* The exit handler: remove (or keep and name) what is left. */
static inline void fx_tmp_at_exit(int status, void *arg)
{
	struct fx_tmp_entry **h = fx_tmp_list(), *e;

	(void)arg;
	while ((e = *h)) {
		*h = e->next;
		if (e->pid == getpid()) {
			if (fx_keep_tmp(status != 0))
				fprintf(stderr, "# kept %s\n", e->dir);
			else
				nftw(e->dir, fx_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		}
		free(e);
	}
}

/* Remember dir, a directory this process made, for the exit handler (as
 * fx_tmpdir does; for harnesses that make their own, such as
 * tests/unit/rrdcached_harness.h). Call it before registering an exit
 * handler that stops what writes into dir: handlers run in the reverse
 * order, so this one removes dir last. */
static inline void fx_tmp_track(const char *dir)
{
	static int registered;
	struct fx_tmp_entry *e;

	if (!registered && !on_exit(fx_tmp_at_exit, NULL))
		registered = 1;
	if ((e = malloc(sizeof(*e) + strlen(dir) + 1))) {
		e->pid = getpid();
		memcpy(e->dir, dir, strlen(dir) + 1);
		e->next = *fx_tmp_list();
		*fx_tmp_list() = e;
	}
}

/* A fresh directory "<base>/vigie-<name>.XXXXXX" into dir (base: $TMPDIR,
 * else /tmp), removed at exit if the test does not (see above). 0 or -1. */
static inline int fx_tmpdir(char *dir, size_t len, const char *name)
{
	const char *base = getenv("TMPDIR");

	if (!base || !*base)
		base = "/tmp";
	if ((size_t)snprintf(dir, len, "%s/vigie-%s.XXXXXX", base, name) >= len)
		return -1;
	if (!mkdtemp(dir))
		return -1;
	fx_tmp_track(dir);
	return 0;
}

/* rm -r dir (links not followed). 0 or -1. Accepts "" (nothing to do).
 * A directory fx_tmpdir made is forgotten, or, with KEEP_TMP set, left
 * to the exit handler (0). */
static inline int fx_rm_tree(const char *dir)
{
	struct fx_tmp_entry **h, *e;

	if (!dir || !*dir)
		return 0;
	for (h = fx_tmp_list(); (e = *h); h = &e->next)
		if (e->pid == getpid() && !strcmp(e->dir, dir)) {
			if (fx_keep_tmp(1))
				return 0;
			*h = e->next;
			free(e);
			break;
		}
	return nftw(dir, fx_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
