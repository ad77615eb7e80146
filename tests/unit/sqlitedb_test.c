/*
 * sqlitedb_test.c — the common sqlite opener: creates the schema and sets
 * user_version, reopens without running the schema again, upgrades an older
 * file, refuses a newer one (-EPROTONOSUPPORT, message naming the file,
 * file untouched), sets WAL and the synchronous level, maps a locked
 * database to -EAGAIN and a missing directory to -ENOENT.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "vigie/sqlitedb.h"

struct fixture {
	char dir[64];
	char path[128];
};

/* Not idempotent on purpose: running it twice fails (the table exists),
 * so a reopen that ran it again would be seen. */
static const struct vg_sqlitedb_schema sch = {
	.version = 3,
	.sql = "CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (42);",
	.synchronous = "FULL",
	.busy_timeout_ms = 100,
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/vigie-sqlitedb-test.XXXXXX");
	*state = f;
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/x.db", f->dir);
	return 0;
}

/* The database and its WAL files, then the directory. */
static int teardown(void **state)
{
	struct fixture *f = *state;
	static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
	char p[160];

	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
		unlink(p);
	}
	int rc = rmdir(f->dir);
	free(f);
	return rc;
}

static int first_int(void *ud, int ncols, char **vals, char **names)
{
	(void)names;
	*(int *)ud = ncols && vals[0] ? atoi(vals[0]) : -1;
	return 1; /* the first row is enough */
}

/* The first column of the first row of sql on path (a fresh handle), or
 * -1 when there is no row. */
static int int_query(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	int v = -1;

	if (sqlite3_open(path, &db) == SQLITE_OK)
		sqlite3_exec(db, sql, first_int, &v, NULL);
	sqlite3_close(db);
	return v;
}

static void set_version(const char *path, int v)
{
	char sql[64];

	snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", v);
	assert_int_equal(int_query(path, sql), -1); /* no row, but run */
	assert_int_equal(int_query(path, "PRAGMA user_version"), v);
}

/* Opening path with sch succeeds; the handle is closed again. */
static void expect_open(const char *path, const struct vg_sqlitedb_schema *s)
{
	char err[256] = "";
	sqlite3 *db = NULL;
	int rc = vg_sqlitedb_open(path, s, &db, err, sizeof(err));

	if (rc)
		fprintf(stderr, "%s\n", err);
	assert_int_equal(rc, 0);
	assert_non_null(db);
	sqlite3_close(db);
}

/* Opening path with sch fails with rc, *out NULL, and a message that names
 * the file and contains needle. */
static void expect_refused(const char *path, const struct vg_sqlitedb_schema *s,
			   int rc, const char *needle)
{
	char err[256] = "";
	sqlite3 *db = (sqlite3 *)1;

	assert_int_equal(vg_sqlitedb_open(path, s, &db, err, sizeof(err)), rc);
	assert_null(db);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, needle));
}

static void test_create_then_reopen(void **state)
{
	struct fixture *f = *state;

	expect_open(f->path, &sch);
	assert_int_equal(int_query(f->path, "PRAGMA user_version"), 3);
	assert_int_equal(int_query(f->path, "SELECT count(*) FROM t"), 1);
	/* WAL is a property of the file; synchronous of the handle */
	assert_int_equal(int_query(f->path, "SELECT journal_mode = 'wal' FROM "
					    "pragma_journal_mode"),
			 1);
	sqlite3 *db = NULL;
	char err[256];
	assert_int_equal(vg_sqlitedb_open(f->path, &sch, &db, err, sizeof(err)), 0);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA synchronous", -1, &st,
					    NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 2); /* FULL */
	sqlite3_finalize(st);
	sqlite3_close(db);

	/* opened twice more, same version: the schema ran only once */
	expect_open(f->path, &sch);
	assert_int_equal(int_query(f->path, "SELECT count(*) FROM t"), 1);
}

static void test_older_is_upgraded(void **state)
{
	struct fixture *f = *state;

	set_version(f->path, 2);
	expect_open(f->path, &sch);
	assert_int_equal(int_query(f->path, "PRAGMA user_version"), 3);
	assert_int_equal(int_query(f->path, "SELECT x FROM t"), 42);
}

static void test_newer_refused(void **state)
{
	struct fixture *f = *state;

	set_version(f->path, 99);
	expect_refused(f->path, &sch, -EPROTONOSUPPORT, "99");
	/* untouched: no table created, version kept */
	assert_int_equal(int_query(f->path, "PRAGMA user_version"), 99);
	assert_int_equal(int_query(f->path, "SELECT count(*) FROM sqlite_master "
					    "WHERE name = 't'"),
			 0);
}

static void test_schema_error(void **state)
{
	struct fixture *f = *state;
	static const struct vg_sqlitedb_schema bad = {
		.version = 1,
		.sql = "CREATE TABLE oops(;",
		.busy_timeout_ms = 100,
	};

	expect_refused(f->path, &bad, -EIO, "syntax error");
	/* rolled back: still version 0 */
	assert_int_equal(int_query(f->path, "PRAGMA user_version"), 0);
}

static void test_locked_is_eagain(void **state)
{
	struct fixture *f = *state;
	sqlite3 *holder;

	assert_int_equal(sqlite3_open(f->path, &holder), SQLITE_OK);
	assert_int_equal(sqlite3_exec(holder, "PRAGMA journal_mode=WAL; "
					      "BEGIN IMMEDIATE",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	expect_refused(f->path, &sch, -EAGAIN, "locked");
	sqlite3_exec(holder, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(holder);
}

static void test_cannot_open(void **state)
{
	struct fixture *f = *state;
	char path[160];

	snprintf(path, sizeof(path), "%s/no/such/dir/x.db", f->dir);
	expect_refused(path, &sch, -ENOENT, "unable to open");
}

static void test_errno(void **state)
{
	static const int map[][2] = {
		{SQLITE_OK, 0},
		{SQLITE_DONE, 0},
		{SQLITE_ROW, 0},
		{SQLITE_BUSY, -EAGAIN},
		{SQLITE_BUSY_SNAPSHOT, -EAGAIN},
		{SQLITE_LOCKED, -EAGAIN},
		{SQLITE_FULL, -EAGAIN},
		{SQLITE_NOMEM, -ENOMEM},
		{SQLITE_CORRUPT, -EIO},
		{SQLITE_CONSTRAINT_UNIQUE, -EIO},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		assert_int_equal(vg_sqlitedb_errno(map[i][0]), map[i][1]);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_create_then_reopen),
		T(test_older_is_upgraded),
		T(test_newer_refused),
		T(test_schema_error),
		T(test_locked_is_eagain),
		T(test_cannot_open),
		cmocka_unit_test(test_errno),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
