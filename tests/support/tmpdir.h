/*
 * tmpdir.h — a test's temporary directory: made fresh, removed whole
 * (every unit test that writes files, tests/support/api_fixture.h, the
 * API fuzz targets). Header-only, no cmocka.
 */
#ifndef VIGIE_TEST_TMPDIR_H
#define VIGIE_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* A fresh directory "<base>/vigie-<name>.XXXXXX" into dir (base: $TMPDIR,
 * else /tmp). 0 or -1. */
static inline int fx_tmpdir(char *dir, size_t len, const char *name)
{
	const char *base = getenv("TMPDIR");

	if (!base || !*base)
		base = "/tmp";
	if ((size_t)snprintf(dir, len, "%s/vigie-%s.XXXXXX", base, name) >= len)
		return -1;
	return mkdtemp(dir) ? 0 : -1;
}

static inline int fx_rm_entry(const char *p, const struct stat *sb, int flag,
			      struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* rm -r dir (links not followed). 0 or -1. Accepts "" (nothing to do). */
static inline int fx_rm_tree(const char *dir)
{
	if (!dir || !*dir)
		return 0;
	return nftw(dir, fx_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
