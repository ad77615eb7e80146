/*
 * db_engines.h — run a test's cases on every state-database engine
 * (header-only, for unit tests of components behind vigie/db.h: billing,
 * the alarm store; tests/unit/db_test.c is the layer's own test).
 *
 * The group setup starts one real PostgreSQL server for the test binary
 * (tests/unit/pg_harness.h: initdb into a temporary directory, its own
 * port and unix socket) and makes a temporary directory for sqlite files.
 * Each case asks dbe_fresh() for a fresh database on its engine: a new
 * sqlite file, or a new PostgreSQL database (CREATE DATABASE) on the
 * shared server. Register cases with DBE_BOTH(fn, setup, teardown); the
 * case's setup gets its struct dbe in *state and calls dbe_fresh.
 *
 * When the server cannot run, the PostgreSQL cases SKIP with the reason
 * (dbe_need), except when the binaries are there and it still failed to
 * start: that is a failure, never a silent pass.
 */
#ifndef VIGIE_TEST_DB_ENGINES_H
#define VIGIE_TEST_DB_ENGINES_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/unit/pg_harness.h"
#include "vigie/db.h"

struct dbe {
	const char *name;
	enum vg_db_engine kind;
	int ready;
	int broken; /* should run here and does not: a failure, not a skip */
	char why[600];
};

static struct dbe DBE_SQLITE = {.name = "sqlite", .kind = VG_DB_SQLITE};
static struct dbe DBE_PG = {.name = "postgresql", .kind = VG_DB_POSTGRESQL};
static struct hpg_server dbe_pg;
static char dbe_tmp[64];
static int dbe_ncase;

static inline int dbe_group_setup(void **state)
{
	int rc;

	(void)state;
	snprintf(dbe_tmp, sizeof(dbe_tmp), "/tmp/vigie-dbe.XXXXXX");
	if (!mkdtemp(dbe_tmp))
		return -1;
	DBE_SQLITE.ready = 1;
	if (getenv("VIGIE_NO_PG")) { /* run the sqlite half only */
		snprintf(DBE_PG.why, sizeof(DBE_PG.why), "VIGIE_NO_PG is set");
		return 0;
	}
	rc = hpg_start(&dbe_pg, "-c fsync=off -c full_page_writes=off -c synchronous_commit=off");
	if (rc) {
		snprintf(DBE_PG.why, sizeof(DBE_PG.why), "no PostgreSQL server: %s", dbe_pg.why);
		printf("# %s\n", DBE_PG.why);
		DBE_PG.broken = rc != -ENOENT && rc != -EPERM;
		hpg_cleanup(&dbe_pg);
	} else {
		DBE_PG.ready = 1;
	}
	return 0;
}

static inline int dbe_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

static inline int dbe_group_teardown(void **state)
{
	(void)state;
	hpg_cleanup(&dbe_pg);
	if (!getenv("KEEP_TMP"))
		nftw(dbe_tmp, dbe_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* A fresh, empty database on e's engine: its URL into url. 1 if e cannot
 * run here (the case then calls dbe_need, which skips or fails), 0, or -1
 * on error. */
static inline int dbe_fresh(const struct dbe *e, char *url, size_t len)
{
	char name[32];

	snprintf(name, sizeof(name), "case%d", ++dbe_ncase);
	if (!e->ready)
		return 1;
	if (e->kind == VG_DB_SQLITE) {
		snprintf(url, len, "%s/%s.db", dbe_tmp, name);
		return 0;
	}
	if (!dbe_pg.running && hpg_start_again(&dbe_pg))
		return -1;
	return hpg_createdb(&dbe_pg, name, url, len) ? -1 : 0;
}

/* In a case whose engine is not ready: fail if it should have run, else
 * print the reason and skip. */
static inline void dbe_need(const struct dbe *e)
{
	if (e->broken)
		fail_msg("%s", e->why);
	if (!e->ready) {
		printf("# SKIP %s: %s\n", e->name, e->why);
		skip();
	}
}

/* The main() of a PostgreSQL variant: runs a sqlite test file's cases
 * (run, an int (*)(void)) again with that file's fresh-database hook
 * (hook, an int (*)(char *url, size_t len)) pointing at a fresh database
 * on the server started here; skipped with the reason when it cannot
 * run (a failure when it should have). */
static inline int dbe_fresh_pg_url(char *url, size_t len)
{
	return dbe_fresh(&DBE_PG, url, len) ? -1 : 0;
}

#define DBE_PG_RERUN_MAIN(run, hook)                                        \
	int main(void)                                                      \
	{                                                                   \
		int rc_;                                                    \
		if (dbe_group_setup(NULL))                                  \
			return 1;                                           \
		if (!DBE_PG.ready) {                                        \
			printf("# SKIP %s: %s\n", DBE_PG.name, DBE_PG.why); \
			dbe_group_teardown(NULL);                           \
			return DBE_PG.broken ? 1 : 0;                       \
		}                                                           \
		hook = dbe_fresh_pg_url;                                    \
		rc_ = run();                                                \
		dbe_group_teardown(NULL);                                   \
		return rc_;                                                 \
	}

#define DBE_BOTH(f, su, td)                          \
	{"sqlite " #f, f, su, td, &DBE_SQLITE},      \
	{                                            \
		"postgresql " #f, f, su, td, &DBE_PG \
	}

#endif
