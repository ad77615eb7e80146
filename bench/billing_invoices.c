/*
 * billing_invoices.c — `make bench`: how long generating every invoice of
 * a month takes for 10,000 instances (the goal: seconds, not minutes), and
 * how fast the meter takes batches.
 *
 *   billing_invoices [INSTANCES [PROJECTS]]     (default 10000 100)
 *
 * Everything runs twice, on sqlite (a billing.db in a temporary directory)
 * and on a PostgreSQL 15 server the benchmark starts itself
 * (tests/unit/pg_harness.h; skipped with the reason when it cannot run,
 * or with BENCH_NO_PG=1); the lines say which engine.
 * The month (2026-10, 31 days) is written straight into the database with
 * the meter's schema: every instance has a disk
 * and a vNIC with traffic in every hour of the month (744 rows each), a
 * tenth are resized mid-month, a fifth stop and start twice, one in twenty
 * is deleted. Then, timed separately: deriving usage and pricing all
 * invoices, rendering them in the three formats, finalizing the month
 * (compute + render + store), re-reading the frozen invoices; and the
 * meter's throughput on real batches (1000 instances per batch, each with
 * a disk and a vNIC). Prints "RESULT ..." lines.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "vigie/bill_invoice.h"
#include "vigie/bill_meter.h"
#include "vigie/clock.h"

#include "tests/unit/pg_harness.h"
#include "bench/bench_cpu.h"
#include "bench_cpu.h"

static const char card[] =
	"{\"currency\":\"EUR\",\"minor_unit_digits\":2,\"prices\":["
	"{\"valid_from\":\"2026-01-01\",\"compute\":{\"flavors\":{\"m1.small\":\"0.02\","
	"\"m1.medium\":\"0.04\"},\"vcpu_hour\":\"0.015\",\"ram_gib_hour\":\"0.005\"},"
	"\"storage\":{\"gib_month\":\"0.10\"},\"network\":{\"egress_gb\":["
	"{\"up_to_gb\":1,\"price\":\"0\"},{\"up_to_gb\":10240,\"price\":\"0.09\"},"
	"{\"price\":\"0.05\"}],\"ingress_gb\":\"0.01\"}},"
	"{\"valid_from\":\"2026-10-16T00:00:00Z\",\"compute\":{\"flavors\":{\"m1.small\":\"0.03\"}}}]}";

/* CPU seconds of this process and of db's PostgreSQL backend (0 on sqlite). */
static long g_backend;
static double cpu_s(void)
{
	return bench_self_cpu_s() + bench_proc_cpu_or0(g_backend);
}

static void die(const char *what, struct vg_db *db)
{
	fprintf(stderr, "billing_invoices: %s: %s\n", what, db ? vg_db_errmsg(db) : "");
	exit(1);
}

static void bind_opt(struct vg_db_stmt *s, int i, int64_t v)
{
	if (v >= 0)
		vg_db_bind_int64(s, i, v);
	else
		vg_db_bind_null(s, i);
}

static void res_row(struct vg_db_stmt *r, struct vg_db *db, const char *id, int type,
		    const char *parent, const char *proj, const char *name,
		    int64_t first, int64_t last, int hasd)
{
	vg_db_bind_text(r, 1, id);
	vg_db_bind_int64(r, 2, type);
	vg_db_bind_text(r, 3, parent);
	vg_db_bind_text(r, 4, proj);
	vg_db_bind_text(r, 5, name);
	vg_db_bind_int64(r, 6, first);
	vg_db_bind_int64(r, 7, last);
	vg_db_bind_int64(r, 8, hasd);
	if (vg_db_step(r) < 0)
		die("insert resource", db);
	vg_db_reset(r);
}

static void tr_row(struct vg_db_stmt *t, struct vg_db *db, const char *id, int64_t time,
		   int kind, const char *fl, int64_t vc, int64_t ram, int64_t dg,
		   int64_t cap)
{
	vg_db_bind_text(t, 1, id);
	vg_db_bind_int64(t, 2, time);
	vg_db_bind_int64(t, 3, kind);
	if (fl)
		vg_db_bind_text(t, 4, fl);
	else
		vg_db_bind_null(t, 4);
	bind_opt(t, 5, vc);
	bind_opt(t, 6, ram);
	bind_opt(t, 7, dg);
	bind_opt(t, 8, cap);
	if (vg_db_step(t) < 0)
		die("insert transition", db);
	vg_db_reset(t);
}

static void populate(struct vg_db *db, int ninst, int nproj, int64_t m0, int64_t m1)
{
	struct vg_db_stmt *r, *t, *n;
	const int64_t H = 3600000;

	if (vg_db_begin(db))
		die("begin", db);
	for (int i = 0; i < ninst; i++) {
		char id[64], disk[64], nic[64], proj[32], name[32];
		int64_t created = m0 - 5 * 86400000LL + (int64_t)(i % 97) * 60000;
		int64_t last = m1 + 10 * 60000;
		snprintf(id, sizeof(id), "inst-%06d", i);
		snprintf(disk, sizeof(disk), "inst-%06d-vda", i);
		snprintf(nic, sizeof(nic), "inst-%06d-tap0", i);
		snprintf(proj, sizeof(proj), "project-%03d", i % nproj);
		snprintf(name, sizeof(name), "vm%d", i);
		int deleted = i % 20 == 7;
		int64_t del_t = m0 + (int64_t)(i % 29 + 1) * 86400000LL + 1234;
		if (deleted)
			last = del_t + 60000;
		static const char *const rsql = "INSERT INTO resources(id,type,parent,project,name,"
						"first_ms,last_seen_ms,last_poll_ms,last_change_ms,state,"
						"has_disks) VALUES(?1,?2,?3,?4,?5,?6,?7,?7,?6,1,?8)";
		static const char *const tsql = "INSERT INTO transitions(resource,time_ms,kind,exact,"
						"lo_ms,hi_ms,flavor,vcpus,ram_mb,disk_gb,capacity) VALUES"
						"(?1,?2,?3,1,?2,?2,?4,?5,?6,?7,?8)";
		if (vg_db_prepare(db, rsql, &r) || vg_db_prepare(db, tsql, &t))
			die("prepare", db);
		res_row(r, db, id, 1, NULL, proj, name, created, last, 1);
		res_row(r, db, disk, 2, id, proj, "vda", created, last, 0);
		res_row(r, db, nic, 3, id, proj, "tap0", created, last, 0);
		tr_row(t, db, id, created, VG_BILL_T_CREATE, "m1.small", 1, 2048, 20, -1);
		tr_row(t, db, id, created + 1000, VG_BILL_T_START, "m1.small", 1, 2048, 20, -1);
		tr_row(t, db, disk, created, VG_BILL_T_CREATE, NULL, -1, -1, -1, 20LL << 30);
		if (i % 10 == 3) /* resized mid-month */
			tr_row(t, db, id, m0 + 12 * 86400000LL + i, VG_BILL_T_FLAVOR, "c1.custom", 4, 8192, 40, -1);
		if (i % 5 == 1) { /* stopped and started twice */
			for (int k = 0; k < 2; k++) {
				int64_t s = m0 + (int64_t)(5 + 10 * k) * 86400000LL + i * 10;
				tr_row(t, db, id, s, VG_BILL_T_STOP, NULL, -1, -1, -1, -1);
				tr_row(t, db, id, s + 3 * H + 17000, VG_BILL_T_START, NULL, -1, -1, -1, -1);
			}
		}
		if (deleted) {
			tr_row(t, db, id, del_t, VG_BILL_T_STOP, NULL, -1, -1, -1, -1);
			tr_row(t, db, id, del_t, VG_BILL_T_DELETE, NULL, -1, -1, -1, -1);
			tr_row(t, db, disk, del_t, VG_BILL_T_DELETE, NULL, -1, -1, -1, -1);
		}
	}
	/* network rows: 7.44 million, one statement each on sqlite; on
	 * PostgreSQL (a round trip a row would take many minutes) the server
	 * generates the same rows in one INSERT ... SELECT */
	if (vg_db_engine(db) == VG_DB_POSTGRESQL) {
		char sql[1024];
		snprintf(sql, sizeof(sql),
			 "INSERT INTO network(project,hour_ms,nic,tx,rx) "
			 "SELECT 'project-' || lpad((i %% %d)::text, 3, '0'), h, "
			 "'inst-' || lpad(i::text, 6, '0') || '-tap0', "
			 "20000000 + (h / %lld %% 13) * 1000000 + i, 5000000 + i "
			 "FROM generate_series(0, %d) i, "
			 "generate_series(%lld::bigint, %lld::bigint, %lld::bigint) h "
			 "WHERE NOT (i %% 20 = 7 AND h >= %lld + (i %% 29 + 1) * 86400000::bigint + 1234) "
			 "ORDER BY 1, 2, 3", /* primary-key order, as sqlite's are written */
			 nproj, (long long)H, ninst - 1, (long long)m0, (long long)(m1 - H),
			 (long long)H, (long long)m0);
		if (vg_db_exec(db, sql))
			die("insert network", db);
		if (vg_db_commit(db) || vg_db_exec(db, "ANALYZE"))
			die("commit", db);
		return;
	}
	/* network rows in primary-key order (project, hour, vNIC): appends */
	for (int p = 0; p < nproj; p++) {
		char proj[32], nic[64];
		snprintf(proj, sizeof(proj), "project-%03d", p);
		for (int64_t h = m0; h < m1; h += H) {
			for (int i = p; i < ninst; i += nproj) {
				int64_t del_t = m0 + (int64_t)(i % 29 + 1) * 86400000LL + 1234;
				if (i % 20 == 7 && h >= del_t)
					continue;
				snprintf(nic, sizeof(nic), "inst-%06d-tap0", i);
				if (vg_db_prepare(db, "INSERT INTO network(project,hour_ms,nic,tx,rx) "
						      "VALUES(?1,?2,?3,?4,?5)",
						  &n))
					die("prepare", db);
				vg_db_bind_text(n, 1, proj);
				vg_db_bind_int64(n, 2, h);
				vg_db_bind_text(n, 3, nic);
				vg_db_bind_int64(n, 4, 20000000 + (h / H % 13) * 1000000 + i);
				vg_db_bind_int64(n, 5, 5000000 + i);
				if (vg_db_step(n) < 0)
					die("insert network", db);
				vg_db_reset(n);
			}
		}
	}
	if (vg_db_commit(db))
		die("commit", db);
}

static void meter_throughput(const char *engine, const char *path)
{
	char err[512], id[32], sub[64];
	struct vg_bill_meter *m;
	const int per = 1000, polls = 20;
	int64_t t0 = 1790000000000LL;

	if (vg_bill_meter_open(path, &m, err, sizeof(err))) {
		fprintf(stderr, "billing_invoices: %s\n", err);
		exit(1);
	}
	double start = bench_now_s();
	for (int p = 0; p < polls; p++) {
		int64_t t = t0 + (int64_t)p * 60000;
		struct vg_batch *b = vg_batch_new("bench-host", 1, (uint64_t)p + 1, t);
		for (int i = 0; i < per; i++) {
			snprintf(id, sizeof(id), "inst-%06d", i);
			vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, t);
			vg_batch_identity(b, "bench", NULL, "m1.small");
			vg_batch_sample(b, "power.state", VG_KIND_GAUGE, 1);
			vg_batch_attr(b, "flavor_vcpus", "1");
			snprintf(sub, sizeof(sub), "%s-vda", id);
			vg_batch_resource(b, VG_RT_DISK, sub, "vda", id, t);
			vg_batch_sample(b, "disk.capacity", VG_KIND_GAUGE, 21474836480.0);
			snprintf(sub, sizeof(sub), "%s-tap0", id);
			vg_batch_resource(b, VG_RT_NIC, sub, "tap0", id, t);
			vg_batch_sample(b, "net.tx.bytes", VG_KIND_COUNTER, 1000.0 * p * (i + 1));
			vg_batch_sample(b, "net.rx.bytes", VG_KIND_COUNTER, 10.0 * p);
		}
		if (vg_bill_meter_batch(m, b)) {
			fprintf(stderr, "billing_invoices: meter refused a batch\n");
			exit(1);
		}
		vg_batch_free(b);
	}
	double el = bench_now_s() - start;
	printf("RESULT billing %s meter: %d batches x %d instances (+disk +vNIC): %.2f s, "
	       "%.0f resource observations/s, %.2f ms per 1000-instance batch\n",
	       engine, polls, per, el, polls * per * 3 / el, el * 1000 / polls);
	vg_bill_meter_close(m);
}

/* Every step on one engine: db is an empty billing database (url), meter
 * another one (meter_url). */
static void run(const char *engine, const char *url, const char *meter_url, int ninst,
		int nproj, const struct vg_bill_ratecard *rc)
{
	struct vg_bill_month oct = {2026, 10};
	int64_t m0 = vg_bill_month_start_ms(oct), m1 = vg_bill_month_end_ms(oct);
	struct vg_bill_invoice **inv;
	struct vg_bill_usage u;
	struct vg_db *db;
	char err[512];
	size_t n, lines = 0, bytes = 0;
	double t;

	if (vg_bill_db_open(url, &db, err, sizeof(err))) {
		fprintf(stderr, "billing_invoices: %s\n", err);
		exit(1);
	}
	g_backend = 0;
	if (vg_db_engine(db) == VG_DB_POSTGRESQL) {
		struct vg_db_stmt *st;
		if (!vg_db_prepare(db, "SELECT pg_backend_pid()", &st) && vg_db_step(st) == 1)
			g_backend = (long)vg_db_column_int64(st, 0);
		vg_db_reset(st);
	}
	t = bench_now_s();
	populate(db, ninst, nproj, m0, m1);
	printf("RESULT billing %s setup: %d instances, %d projects, %d hourly network "
	       "rows written in %.2f s\n",
	       engine, ninst, nproj, ninst * 744, bench_now_s() - t);

	double c = cpu_s();
	t = bench_now_s();
	if (vg_bill_usage_load(db, m0, m1, NULL, &u))
		die("usage", db);
	double t_load = bench_now_s() - t;
	if (vg_bill_invoice_compute_all(&u, rc, oct, &inv, &n))
		die("compute", db);
	double t_all = bench_now_s() - t;
	for (size_t i = 0; i < n; i++)
		lines += inv[i]->nlines;
	printf("RESULT billing %s invoices: %zu invoices, %zu lines for %d instances "
	       "in %.2f s (usage %.2f s, pricing %.2f s; CPU %.2f s with the server's)\n",
	       engine, n, lines, ninst, t_all, t_load, t_all - t_load, cpu_s() - c);
	t = bench_now_s();
	for (size_t i = 0; i < n; i++)
		for (int f = VG_BILL_FMT_JSON; f <= VG_BILL_FMT_HTML; f++) {
			char *text;
			size_t len;
			if (vg_bill_invoice_render(inv[i], f, &text, &len))
				die("render", NULL);
			bytes += len;
			free(text);
		}
	printf("RESULT billing %s render: %zu invoices x 3 formats (%.1f MB) in %.2f s\n",
	       engine, n, bytes / 1e6, bench_now_s() - t);
	for (size_t i = 0; i < n; i++)
		vg_bill_invoice_free(inv[i]);
	free(inv);
	vg_bill_usage_clear(&u);

	c = cpu_s();
	t = bench_now_s();
	if (vg_bill_finalize(db, rc, oct, m1 + 86400000LL, &n))
		die("finalize", db);
	printf("RESULT billing %s finalize: %zu invoices computed, rendered and stored "
	       "in %.2f s (CPU %.2f s with the server's)\n",
	       engine, n, bench_now_s() - t, cpu_s() - c);
	t = bench_now_s();
	if (vg_bill_invoices(db, rc, oct, NULL, &inv, &n))
		die("reread", db);
	printf("RESULT billing %s final: %zu frozen invoices read back in %.2f s\n", engine,
	       n, bench_now_s() - t);
	for (size_t i = 0; i < n; i++)
		vg_bill_invoice_free(inv[i]);
	free(inv);
	vg_db_close(db);
	meter_throughput(engine, meter_url);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	int ninst = argc > 1 ? atoi(argv[1]) : 10000;
	int nproj = argc > 2 ? atoi(argv[2]) : 100;
	char dir[] = "/tmp/vg-bill-bench.XXXXXX", path[512], mpath[512], err[512], cmd[600];
	char url[700], murl[700];
	struct vg_bill_ratecard *rc;
	struct hpg_server pg;
	int rc_pg, status = 0;

	if (ninst < 1 || nproj < 1 || nproj > 999 || ninst > 999999 || !mkdtemp(dir))
		return 2;
	if (vg_bill_ratecard_parse(card, sizeof(card) - 1, "bench", &rc, err, sizeof(err))) {
		fprintf(stderr, "billing_invoices: %s\n", err);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/billing.db", dir);
	snprintf(mpath, sizeof(mpath), "%s/meter.db", dir);
	run("sqlite", path, mpath, ninst, nproj, rc);

	if (getenv("BENCH_NO_PG")) {
		printf("# billing postgresql: skipped (BENCH_NO_PG)\n");
	} else if ((rc_pg = hpg_start(&pg, NULL))) { /* PostgreSQL's durable defaults */
		printf("# billing postgresql: skipped: %s\n", pg.why);
		status = rc_pg == -ENOENT || rc_pg == -EPERM ? 0 : 1;
	} else if (hpg_createdb(&pg, "billing", url, sizeof(url)) ||
		   hpg_createdb(&pg, "meter", murl, sizeof(murl))) {
		fprintf(stderr, "billing_invoices: createdb: %s\n", pg.why);
		status = 1;
	} else {
		run("postgresql", url, murl, ninst, nproj, rc);
	}
	hpg_cleanup(&pg);
	vg_bill_ratecard_free(rc);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) || status ? 1 : 0;
}
