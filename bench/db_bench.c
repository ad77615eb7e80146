/*
 * db_bench.c — single-row upserts through the state database layer
 * (vigie/db.h) on both engines, for the capacity model of docs/scaling.md.
 *
 * The load is the registry's hottest write: one upsert per (resource,
 * metric) carrying the last value and its time, committed in
 * transactions of 100 (what a receiver does per batch). KEYS distinct
 * rows are written twice: the first pass inserts, the second updates
 * (ON CONFLICT DO UPDATE), reported separately. Engines:
 *   sqlite      a file on local disk, WAL, synchronous=FULL (the layer's
 *               default: every commit is fsynced)
 *   sqlite-normal  the same with synchronous=NORMAL (what registry.db
 *               uses today)
 *   postgresql  a server this program starts (pg_harness.h) with its
 *               defaults (fsync on, synchronous_commit on), over its unix
 *               socket, one connection
 * Reported per engine and pass: rows/s (wall clock), and CPU per row in
 * microseconds of this process and, for PostgreSQL, of its backend
 * (/proc/<pg_backend_pid()>/stat), so the server's own CPU is counted.
 *
 * Usage: db_bench [--keys N] [--dir DIR]   (default 20000 keys, /var/tmp)
 * Prints "RESULT db_upsert engine=... pass=... rows=... rows_per_s=...
 * client_us_per_row=... server_us_per_row=..." lines. Everything it
 * starts is stopped and every file removed at exit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../tests/unit/pg_harness.h"
#include "vigie/db.h"
#include "bench/bench_cpu.h"
#include "bench_cpu.h"

#define TXN_ROWS 100

static const struct vg_db_step steps[] = {
	{.version = 1,
	 .sql = "CREATE TABLE metrics(resource_id TEXT NOT NULL, name TEXT NOT NULL, "
		"last_value DOUBLE PRECISION, last_time_ms BIGINT NOT NULL, "
		"PRIMARY KEY(resource_id, name))"},
};
static const struct vg_db_schema sch = {.component = "bench", .steps = steps, .nsteps = 1};

static const char *UPSERT =
	"INSERT INTO metrics(resource_id, name, last_value, last_time_ms) VALUES(?1, ?2, ?3, ?4) "
	"ON CONFLICT(resource_id, name) DO UPDATE SET last_value = excluded.last_value, "
	"last_time_ms = excluded.last_time_ms WHERE excluded.last_time_ms > metrics.last_time_ms";

static int pass(struct vg_db *db, int keys, int64_t t_ms)
{
	struct vg_db_stmt *st;
	char res[32], name[32];
	int rc = 0;

	for (int k = 0; k < keys && !rc; k += TXN_ROWS) {
		if ((rc = vg_db_begin(db)))
			break;
		for (int j = k; j < k + TXN_ROWS && j < keys && !rc; j++) {
			snprintf(res, sizeof(res), "instance-%06d", j / 10);
			snprintf(name, sizeof(name), "metric.%d", j % 10);
			if ((rc = vg_db_prepare(db, UPSERT, &st)))
				break;
			vg_db_bind_text(st, 1, res);
			vg_db_bind_text(st, 2, name);
			vg_db_bind_double(st, 3, j * 0.5);
			vg_db_bind_int64(st, 4, t_ms);
			rc = vg_db_step(st);
		}
		rc = rc ? rc : vg_db_commit(db);
	}
	if (rc && vg_db_in_transaction(db))
		vg_db_rollback(db);
	return rc;
}

static int run(const char *engine, const char *url, int keys)
{
	struct vg_db *db;
	char err[512];
	long backend = 0;
	int rc = vg_db_open(url, &sch, &db, err, sizeof(err));

	if (rc) {
		fprintf(stderr, "db_bench: %s: %s\n", engine, err);
		return rc;
	}
	if (vg_db_engine(db) == VG_DB_POSTGRESQL) {
		struct vg_db_stmt *st;
		if (!vg_db_prepare(db, "SELECT pg_backend_pid()", &st) && vg_db_step(st) == 1)
			backend = (long)vg_db_column_int64(st, 0);
		vg_db_reset(st);
	}
	for (int p = 0; p < 2 && !rc; p++) {
		double t0 = bench_now_s(), c0 = bench_self_cpu_s(), s0 = bench_proc_cpu_or0(backend);
		rc = pass(db, keys, 1700000000000LL + p);
		double t = bench_now_s() - t0, c = bench_self_cpu_s() - c0, s = bench_proc_cpu_or0(backend) - s0;
		if (rc) {
			fprintf(stderr, "db_bench: %s: %s\n", engine, vg_db_errmsg(db));
			break;
		}
		printf("RESULT db_upsert engine=%s pass=%s rows=%d txn_rows=%d seconds=%.3f "
		       "rows_per_s=%.0f client_us_per_row=%.1f server_us_per_row=%.1f\n",
		       engine, p ? "update" : "insert", keys, TXN_ROWS, t, keys / t, c * 1e6 / keys,
		       s * 1e6 / keys); /* sqlite: no server, 0 */
		fflush(stdout);
	}
	vg_db_close(db);
	return rc;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

int main(int argc, char **argv)
{
	const char *parent = "/var/tmp";
	int keys = 20000, rc = 0;
	char dir[256], url[600];
	struct hpg_server pg;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--keys"))
			keys = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--dir"))
			parent = argv[i + 1];
	}
	if (keys < TXN_ROWS)
		keys = TXN_ROWS;
	snprintf(dir, sizeof(dir), "%s/vigie-dbbench.XXXXXX", parent);
	if (!mkdtemp(dir)) {
		perror(dir);
		return 1;
	}
	snprintf(url, sizeof(url), "sqlite:%s/full.db", dir);
	rc |= run("sqlite", url, keys);
	snprintf(url, sizeof(url), "sqlite:%s/normal.db?synchronous=normal", dir);
	rc |= run("sqlite-normal", url, keys);

	/* the server's data under parent (on disk), passed to the harness:
	 * setting TMPDIR instead also moved the port claims out of the
	 * vigie-ports the tests share (docs/testing.md) */
	int prc = hpg_start_in(&pg, parent, NULL); /* PostgreSQL's durable defaults */
	if (prc) {
		printf("RESULT db_upsert engine=postgresql status=SKIP reason=\"%s\"\n", pg.why);
		rc |= prc != -ENOENT && prc != -EPERM;
	} else if (!hpg_createdb(&pg, "bench", url, sizeof(url))) {
		rc |= run("postgresql", url, keys);
	} else {
		fprintf(stderr, "db_bench: %s\n", pg.why);
		rc = 1;
	}
	hpg_cleanup(&pg);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc ? 1 : 0;
}
