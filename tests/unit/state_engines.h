/*
 * state_engines.h — run a module's test cases on every state engine
 * (header-only; registry_test, registry_list_test, receiver_test,
 * token_test). The engines are a table: sqlite (the default state: the
 * module's file in the test's data dir, opened with no [state] url) and
 * PostgreSQL (a real server started once per test binary by pg_harness.h,
 * a fresh database per case, passed as the state URL).
 *
 * A case gets its engine as cmocka's initial state; st_fresh gives the
 * case's state URL ("" for sqlite: the data-dir default). When the server
 * cannot be started because PostgreSQL is not installed (or root has no
 * postgres user), the PostgreSQL cases print "# SKIP postgresql: <why>"
 * and are skipped; any other failure to start it fails them.
 */
#ifndef VIGIE_TEST_STATE_ENGINES_H
#define VIGIE_TEST_STATE_ENGINES_H

#include <stdio.h>
#include <string.h>

#include "pg_harness.h"
#include "vigie/db.h"

struct st_engine {
	const char *name;
	enum vg_db_engine kind;
	int tried, ready, broken;
	char why[600];
};

static struct st_engine ST_SQLITE = {.name = "sqlite", .kind = VG_DB_SQLITE, .tried = 1, .ready = 1};
static struct st_engine ST_PG = {.name = "postgresql", .kind = VG_DB_POSTGRESQL};
static struct hpg_server st_pg;
static int st_ncase;

/* Start the server on first use (so a binary whose filter runs only
 * sqlite cases never starts one). */
static inline void st_start(struct st_engine *e)
{
	int rc;

	if (e->tried)
		return;
	e->tried = 1;
	/* no fsync: the server's crash is not what these tests are about */
	rc = hpg_start(&st_pg, "-c fsync=off -c full_page_writes=off -c synchronous_commit=off");
	if (rc) {
		snprintf(e->why, sizeof(e->why), "no PostgreSQL server: %s", st_pg.why);
		e->broken = rc != -ENOENT && rc != -EPERM;
		hpg_cleanup(&st_pg);
		return;
	}
	e->ready = 1;
}

/* The engine of this case, or skip (or fail: broken) it. */
static inline struct st_engine *st_need(struct st_engine *e)
{
	st_start(e);
	if (e->broken)
		fail_msg("%s", e->why);
	if (!e->ready) {
		printf("# SKIP %s: %s\n", e->name, e->why);
		skip();
	}
	return e;
}

/* This case's state URL: "" on sqlite (the data dir's files), a fresh
 * database on PostgreSQL. 0 or -1. */
static inline int st_fresh(struct st_engine *e, char *url, size_t len)
{
	char name[32];

	url[0] = '\0';
	if (e->kind == VG_DB_SQLITE)
		return 0;
	st_start(e);
	if (!e->ready)
		return 0; /* the case skips */
	if (!st_pg.running && hpg_start_again(&st_pg))
		return -1;
	snprintf(name, sizeof(name), "case%d_%d", (int)getpid(), ++st_ncase);
	return hpg_createdb(&st_pg, name, url, len) ? -1 : 0;
}

/* A direct connection to the state a case uses (to look at or break its
 * tables): the URL, or the sqlite file <dir>/<file>. */
static inline struct vg_db *st_db(const char *url, const char *dir, const char *file)
{
	char u[900], err[256];
	struct vg_db *db = NULL;

	if (url && *url)
		snprintf(u, sizeof(u), "%s", url);
	else
		snprintf(u, sizeof(u), "sqlite:%s/%s", dir, file);
	if (vg_db_open(u, NULL, &db, err, sizeof(err)))
		fail_msg("%s", err);
	/* on PostgreSQL each component's tables are in its own schema
	 * (vg_db_schema.pg_schema): see the registry's and the tokens' */
	if (url && *url &&
	    vg_db_exec(db, "SET search_path TO vigie_registry, vigie_tokens"))
		fail_msg("search_path: %s", vg_db_errmsg(db));
	return db;
}

/* One SELECT of an integer (or -1 without a row). */
static inline int64_t st_int(struct vg_db *db, const char *sql)
{
	struct vg_db_stmt *s;
	int64_t v = -1;

	if (vg_db_prepare(db, sql, &s))
		fail_msg("%s: %s", sql, vg_db_errmsg(db));
	if (vg_db_step(s) == 1)
		v = vg_db_column_int64(s, 0);
	vg_db_reset(s);
	return v;
}

static inline int st_group_teardown(void **state)
{
	hpg_cleanup(&st_pg);
	return 0;
}

/* A case on both engines, with the module's setup and teardown. */
#define ST_BOTH(f, su, td)                          \
	{"sqlite " #f, f, su, td, &ST_SQLITE},      \
	{                                           \
		"postgresql " #f, f, su, td, &ST_PG \
	}

#endif
