/*
 * rrdcached_refused_flush_test.c — a storage daemon that answers a FLUSH
 * with an error the client does not recognise (-EREMOTEIO: the FLUSH did
 * not happen) stops every path that would go on as if the file held what
 * the daemon took (issue 14):
 *   - `storage move` fails for that series, naming the daemon and the
 *     file, exit 1, the source file and its record kept, nothing on the
 *     destination; once the daemon FLUSHes again the same move passes
 *     and every value is read back from the destination;
 *   - `storage convert` fails for it the same way, the file byte for byte
 *     as it was; then converts it, every value kept;
 *   - the stale-entry repair (backend_rrdcached.c update_refused) does not
 *     FORGET a cache entry it could not FLUSH: the values the daemon held
 *     for that file are still written when it FLUSHes again;
 *   - a read (/v1/measures, /v1/statistics, /v1/graph, and the reads of
 *     many series /v1/aggregates, /v1/query, POST /api/v1/read) answers
 *     503 naming the daemon and the file, not the 200 of a view that may
 *     lack what the daemon holds; and a file the daemon cannot read as an
 *     RRD (its INFO refused, a real fault: the file's bytes replaced)
 *     answers the same 503, where it was a 404 "no metric" that hid the
 *     fault; a daemon killed, remote read answers 503 naming it;
 *   - those 503s name the daemon and the file to admin tokens only: a
 *     project token's reads of its own series (every read above) get the
 *     same 503 and Retry-After without them (a tenant must not learn a
 *     storage daemon's address or a path on a storage host);
 *   - a read that faults sends its daemon one FLUSH + INFO (its own),
 *     not a second one to build the 503's message.
 *
 * The refused FLUSH is the one fake part: rrdcached 1.7.2 answers a FLUSH
 * of a valid name with an error it does not also give for "nothing to
 * write" only when it is out of memory, which a test cannot cause; a file
 * it cannot write (permissions, a directory in its place, a full disk)
 * makes its writer thread fail after the FLUSH answered "Successfully
 * flushed" (store_sync_refused_test covers what the store does then). So
 * a relay in front of the real daemon strips FLUSH's file name while
 * asked to, and the daemon's own answer ("Usage: FLUSH <filename>") comes
 * back (tests/support/rrdcd_strip.h). Everything else is real: the
 * daemons, the registry, the commands as vigie-collector runs them.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "vigie/api.h"
#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/rrdcached.h"
#include "vigie/registry.h"
#include "vigie/storage_cmd.h"
#include "vigie/store.h"
#include "../support/api_fixture.h"
#include "rrdcached_harness.h"
#include "../support/remote_read.h"
#include "../support/rrdcd_strip.h"
#include "../support/store_series.h"

#define NS 2 /* series node0, node1 (host load.1), one file each */
#define FILE0 "host/node0/load.1.rrd"

/* Minutes [from, to) of node0..node(NS-1) into the registry and the store,
 * as the collector writes a batch (fxs_write_minute's values). */
static void put_minutes(struct vg_registry *reg, struct vg_store *s, int from, int to)
{
	for (int m = from; m < to; m++) {
		int64_t t = FXS_MS(FXS_T0 + 60 * m);
		struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)m + 1, t);
		assert_non_null(b);
		for (int i = 0; i < NS; i++) {
			char id[16];
			snprintf(id, sizeof(id), "node%d", i);
			assert_non_null(vg_batch_resource(b, VG_RT_HOST, id, id, NULL, t));
			assert_int_equal(vg_batch_sample(b, "load.1", VG_KIND_GAUGE, 1000.0 * i + m),
					 0);
		}
		assert_int_equal(vg_registry_update(reg, b), 0);
		assert_int_equal(vg_store_write_batch(s, b), 0);
		vg_batch_free(b);
	}
}

/* The data dir DIR written with minutes [0, n) through DAEMONS, store and
 * registry closed again (as a stopped collector leaves them). */
static void fill(const char *dir, const char *daemons, const char *archives, int n)
{
	struct vg_config cfg;
	struct vg_store *s;
	struct vg_registry *reg;
	char err[256];

	fxs_config(&cfg, archives, daemons, NULL);
	if (vg_store_open(dir, &cfg, &s, err, sizeof(err)) ||
	    vg_registry_open(dir, &reg, err, sizeof(err)))
		fail_msg("%s", err);
	put_minutes(reg, s, 0, n);
	assert_int_equal(vg_store_flush(s), 0);
	vg_registry_close(reg);
	vg_store_close(s);
}

struct run {
	int status;
	char *out, *err;
};

/* `vigie-collector storage ARGV...` on DIR with CFG, as compose.c runs it. */
static struct run storage(struct vg_config *cfg, const char *dir, char **argv)
{
	struct run r = {0};
	size_t ol = 0, el = 0, argc = 0;
	FILE *of = open_memstream(&r.out, &ol), *ef = open_memstream(&r.err, &el);

	assert_non_null(of);
	assert_non_null(ef);
	assert_true(strlen(dir) < sizeof(cfg->collector_data_dir));
	memcpy(cfg->collector_data_dir, dir, strlen(dir) + 1);
	while (argv[argc])
		argc++;
	r.status = vg_storage_command(cfg, (int)argc, argv, of, ef);
	fclose(of);
	fclose(ef);
	printf("# storage %s -> %d\n#  out: %s#  err: %s%s", argv[1], r.status, r.out, r.err,
	       *r.err && r.err[strlen(r.err) - 1] == '\n' ? "" : "\n");
	return r;
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* The bytes of PATH (malloc'd into *buf, NUL-terminated so that a text
 * file can be searched with strstr), or -1. */
static long slurp(const char *path, char **buf)
{
	FILE *f = fopen(path, "rb");
	long n;

	*buf = NULL;
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	*buf = malloc((size_t)n + 1);
	assert_non_null(*buf);
	assert_int_equal(fread(*buf, 1, (size_t)n, f), (size_t)n);
	(*buf)[n] = '\0';
	fclose(f);
	return n;
}

static int same_bytes(const char *a, const char *b)
{
	char *x, *y;
	long nx = slurp(a, &x), ny = slurp(b, &y);
	int same = nx >= 0 && nx == ny && !memcmp(x, y, (size_t)nx);

	free(x);
	free(y);
	return same;
}

static void copy_file(const char *from, const char *to)
{
	char *x;
	long n = slurp(from, &x);
	FILE *f = fopen(to, "wb");

	assert_true(n >= 0);
	assert_non_null(f);
	assert_int_equal(fwrite(x, 1, (size_t)n, f), (size_t)n);
	assert_int_equal(fclose(f), 0);
	free(x);
}

/* The daemon at ADDR, relayed at <dir>/relay.sock: addr gets its
 * "unix:" address. */
static void relay_start(struct rcs_relay *r, const char *dir, const struct hrd_daemon *d,
			char *addr, size_t len)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/relay.sock", dir);
	assert_int_equal(rcs_start(r, path, d->sock), 0);
	snprintf(addr, len, "unix:%s", path);
}

/* ---- storage move ------------------------------------------------------------ */

static void test_move_refused(void **state)
{
	static const char *const extra[] = {"-O", "-R", NULL};
	char dir[200], addr[PATH_MAX + 8], daemons[2 * PATH_MAX], a0[PATH_MAX * 2],
		b0[PATH_MAX * 2], saved[PATH_MAX * 2], owners[PATH_MAX * 2], err[256];
	struct hrd_daemon a, b;
	struct rcs_relay r;
	struct vg_config cfg;
	struct vg_store *s;
	struct stat st;
	(void)state;

	assert_int_equal(fx_tmpdir(dir, sizeof(dir), "move-refused"), 0);
	assert_int_equal(hrd_start(&a, NULL, extra), 0);
	assert_int_equal(hrd_start(&b, NULL, extra), 0);
	relay_start(&r, dir, &a, addr, sizeof(addr));
	fill(dir, addr, "1m:1d", 6);
	snprintf(a0, sizeof(a0), "%s/" FILE0, a.base);
	snprintf(b0, sizeof(b0), "%s/" FILE0, b.base);
	snprintf(saved, sizeof(saved), "%s/saved.rrd", dir);
	snprintf(owners, sizeof(owners), "%s/journal/owners", dir);
	copy_file(a0, saved);

	/* A (through the relay) refuses every FLUSH: no series moves */
	snprintf(daemons, sizeof(daemons), "%s,%s", addr, b.tcp_addr);
	fxs_config(&cfg, "1m:1d", daemons, NULL);
	char *argv[] = {"storage", "move", "--from", addr, "--to", b.tcp_addr, "--from-dir",
			a.base, "--to-dir", b.base, "--all", NULL};
	rcs_strip(&r, 1);
	struct run m = storage(&cfg, dir, argv);
	assert_int_equal(m.status, 1);
	assert_non_null(strstr(m.err, "FLUSH of " FILE0 " on"));
	assert_non_null(strstr(m.err, addr));
	assert_non_null(strstr(m.err, FILE0));
	assert_non_null(strstr(m.err, "Usage: FLUSH")); /* the daemon's own answer */
	assert_non_null(strstr(m.err, "the source is kept"));
	run_free(&m);
	/* nothing changed: A's file as it was, nothing on B, no new owner */
	assert_true(same_bytes(a0, saved));
	assert_int_equal(stat(b0, &st), -1);
	{
		char *o;
		long n = slurp(owners, &o);
		if (n > 0 && strstr(o, b.tcp_addr))
			fail_msg("owners names %s: %s", b.tcp_addr, o);
		free(o);
	}

	/* FLUSHes pass again: the same move passes, every value on B */
	rcs_strip(&r, 0);
	m = storage(&cfg, dir, argv);
	assert_int_equal(m.status, 0);
	run_free(&m);
	assert_int_equal(stat(a0, &st), -1);
	assert_int_equal(stat(b0, &st), 0);
	assert_int_equal(vg_store_open(dir, &cfg, &s, err, sizeof(err)), 0);
	for (int i = 0; i < NS; i++)
		fxs_check_series(s, i, 6);
	vg_store_close(s);

	rcs_stop(&r);
	hrd_cleanup(&a);
	hrd_cleanup(&b);
	assert_int_equal(fx_rm_tree(dir), 0);
}

/* ---- storage convert --------------------------------------------------------- */

static void test_convert_refused(void **state)
{
	static const char *const extra[] = {"-O", "-R", NULL};
	char dir[200], addr[PATH_MAX + 8], a0[PATH_MAX * 2], saved[PATH_MAX * 2], err[256];
	struct hrd_daemon a;
	struct rcs_relay r;
	struct vg_config cfg;
	struct vg_store *s;
	(void)state;

	assert_int_equal(fx_tmpdir(dir, sizeof(dir), "convert-refused"), 0);
	assert_int_equal(hrd_start(&a, NULL, extra), 0);
	relay_start(&r, dir, &a, addr, sizeof(addr));
	fill(dir, addr, "1m:1d", 6);
	snprintf(a0, sizeof(a0), "%s/" FILE0, a.base);
	snprintf(saved, sizeof(saved), "%s/saved.rrd", dir);
	copy_file(a0, saved);

	/* a new rule for the series; the daemon refuses every FLUSH */
	fxs_config(&cfg, "1m:1d,5m:7d", addr, NULL);
	char *argv[] = {"storage", "convert", "--daemon", addr, "--dir", a.base, NULL};
	rcs_strip(&r, 1);
	struct run c = storage(&cfg, dir, argv);
	assert_int_equal(c.status, 1);
	assert_non_null(strstr(c.err, "refused to FLUSH"));
	assert_non_null(strstr(c.err, addr));
	assert_non_null(strstr(c.err, FILE0));
	assert_non_null(strstr(c.err, "the file is as it was"));
	assert_non_null(strstr(c.out, "converted 0 series"));
	assert_non_null(strstr(c.out, "0 have no file")); /* never "no file" */
	run_free(&c);
	assert_true(same_bytes(a0, saved));

	/* FLUSHes pass again: converted, every value kept */
	rcs_strip(&r, 0);
	c = storage(&cfg, dir, argv);
	assert_int_equal(c.status, 0);
	assert_non_null(strstr(c.out, "converted 2 series"));
	run_free(&c);
	assert_false(same_bytes(a0, saved));
	assert_int_equal(vg_store_open(dir, &cfg, &s, err, sizeof(err)), 0);
	for (int i = 0; i < NS; i++)
		fxs_check_series(s, i, 6);
	vg_store_close(s);

	rcs_stop(&r);
	hrd_cleanup(&a);
	assert_int_equal(fx_rm_tree(dir), 0);
}

/* ---- the stale-entry repair -------------------------------------------------- */

/* The repair's premise, made for real: the daemon's cache entry of node0
 * is ahead of its file (here: another client's value of minute 20, taken
 * and not yet written: -w 3600), so the store's minute 8, newer than the
 * file, is refused for its time. The repair would FLUSH, then FORGET the
 * entry; with its FLUSH refused, a FORGET would drop minute 20 unwritten.
 * It must stop instead: minute 8 is counted as a write error, minute 20
 * reaches the file once FLUSHes pass again. */
static void test_repair_refused(void **state)
{
	static const char *const extra[] = {"-O", "-R", NULL};
	char dir[200], addr[PATH_MAX + 8], err[256];
	struct hrd_daemon a;
	struct rcs_relay r;
	struct vg_config cfg;
	struct vg_store *s;
	struct vg_store_stats st;
	struct vg_rrdcd *c;
	struct vg_rrdcd_info info;
	(void)state;

	assert_int_equal(fx_tmpdir(dir, sizeof(dir), "repair-refused"), 0);
	assert_int_equal(hrd_start(&a, NULL, extra), 0);
	relay_start(&r, dir, &a, addr, sizeof(addr));
	fxs_config(&cfg, "1m:1d", addr, NULL);
	snprintf(cfg.storage_write_through, sizeof(cfg.storage_write_through), "yes");
	assert_int_equal(vg_store_open(dir, &cfg, &s, err, sizeof(err)), 0);
	for (int m = 0; m < 3; m++)
		assert_int_equal(fxs_write_minute(s, "node", 0, NS, m), 0);
	assert_int_equal(vg_store_flush(s), 0);

	/* another client's minute 20 of node0, cached by the daemon */
	assert_int_equal(vg_rrdcd_connect(a.unix_addr, 5000, &c), 0);
	{
		int64_t ts = FXS_MS(FXS_T0 + 60 * 20);
		double v = 777.0;
		struct vg_rrdcd_update u = {
			.file = FILE0, .n = 1, .nds = 1, .ts = &ts, .ts_ms = 1, .values = &v};
		assert_int_equal(vg_rrdcd_update(c, &u), 0);
	}

	rcs_strip(&r, 1);
	vg_store_get_stats(s, &st);
	uint64_t errors = st.write_errors;
	int wrc = fxs_write_minute(s, "node", 0, NS, 8);
	vg_store_get_stats(s, &st);
	printf("# write -> %d, write errors %llu -> %llu\n", wrc, (unsigned long long)errors,
	       (unsigned long long)st.write_errors);
	assert_true(st.write_errors > errors); /* minute 8 of node0: refused */

	/* FLUSHes pass again: the file holds minute 20, the daemon's value
	 * the repair did not FORGET */
	rcs_strip(&r, 0);
	assert_int_equal(vg_rrdcd_flush(c, FILE0), 0);
	assert_int_equal(vg_rrdcd_info(c, FILE0, &info), 0);
	const char *lu = vg_rrdcd_info_get(&info, "last_update");
	assert_non_null(lu);
	printf("# node0 last_update %s (minute 20: %lld)\n", lu, FXS_T0 + 60 * 20);
	assert_int_equal(strtoll(lu, NULL, 10), FXS_T0 + 60 * 20);
	vg_rrdcd_info_free(&info);
	vg_rrdcd_close(c);
	vg_store_close(s);

	rcs_stop(&r);
	hrd_cleanup(&a);
	assert_int_equal(fx_rm_tree(dir), 0);
}

/* ---- reads ------------------------------------------------------------------- */

static long get(const struct fx_api *srv, const char *auth, const char *what, int minutes,
		struct fx_answer *a)
{
	char path[256];

	snprintf(path, sizeof(path), "/v1/%s?resource=node0&metric=load.1&start=%lld&end=%lld",
		 what, FXS_T0, FXS_T0 + 60LL * minutes);
	return fx_http(srv->url, "GET", path, auth, NULL, a);
}

/* POST /api/v1/read of node0's load.1 answers 503 with the JSON error
 * of the other reads, naming the daemon ADDR and, unless NULL, the file
 * (was 500 "Remote I/O error": remote read is a read of many series). */
static void remote_read(const struct fx_api *srv, const char *auth, const char *addr,
			const char *file)
{
	static const char *const mt[] = {"__name__=vigie_load_1", "resource=node0"};
	Prometheus__ReadResponse *r;
	struct fx_answer a;
	long code = fxr_read(srv->url, auth + strlen("Bearer "), FXS_MS(FXS_T0),
			     FXS_MS(FXS_T0 + 60 * 6), NULL, mt, 2, 1, &a, &r);
	const char *msg =
		json_string_value(json_object_get(json_object_get(a.json, "error"), "message"));

	printf("# remote read -> %ld %s\n", code, msg ? msg : "(no JSON error)");
	assert_int_equal(code, 503);
	assert_null(r);
	assert_non_null(msg);
	assert_non_null(strstr(msg, addr));
	if (file) {
		assert_non_null(strstr(msg, file));
		assert_non_null(strstr(msg, "refused"));
	} else {
		assert_non_null(strstr(msg, "does not answer"));
	}
	fx_answer_free(&a);
}

/* 503 for each read, naming the daemon and the file (/v1/graph too when
 * GRAPH). */
static void refused_reads(const struct fx_api *srv, const char *auth, const char *addr, int graph)
{
	static const char *const what[] = {"measures", "statistics"};
	struct fx_answer a;

	for (size_t i = 0; i < 2; i++) {
		long code = get(srv, auth, what[i], 6, &a);
		printf("# %s -> %ld %s\n", what[i], code, a.body);
		assert_int_equal(code, 503);
		assert_non_null(strstr(a.body, addr));
		assert_non_null(strstr(a.body, FILE0));
		assert_non_null(strstr(a.body, "refused"));
		fx_answer_free(&a);
	}
	/* reads of many series: the first that faults answers for the
	 * request (were 500 "Remote I/O error") */
	static const char *const many[] = {
		"/v1/aggregates?metric=load.1&type=host&granularity=60&start=%lld&end=%lld",
		"/v1/query?expr=load.1%%7Bid%%3D%%22node0%%22%%7D&granularity=60&start=%lld&end=%lld",
	};
	for (size_t i = 0; i < 2; i++) {
		char path[256];
		long code;

		snprintf(path, sizeof(path), many[i], FXS_T0, FXS_T0 + 60LL * 6);
		code = fx_http(srv->url, "GET", path, auth, NULL, &a);
		printf("# %.40s -> %ld %s\n", path, code, a.body);
		assert_int_equal(code, 503);
		assert_non_null(strstr(a.body, addr));
		assert_non_null(strstr(a.body, FILE0));
		assert_non_null(strstr(a.body, "refused"));
		fx_answer_free(&a);
	}
	remote_read(srv, auth, addr, FILE0);
	if (!graph)
		return;
	/* the graph checks the series first (vg_store_locate) */
	long code = fx_http(srv->url, "GET", "/v1/graph?resource=node0&metric=load.1", auth,
			    NULL, &a);
	printf("# graph -> %ld %s\n", code, a.body ? a.body : "");
	assert_int_equal(code, 503);
	assert_non_null(strstr(a.body, addr));
	assert_non_null(strstr(a.body, FILE0));
	fx_answer_free(&a);
}

/* Minutes [0, n) of instance vm0 of project p1 (load.1), as put_minutes. */
static void put_tenant(struct vg_registry *reg, struct vg_store *s, int n)
{
	for (int m = 0; m < n; m++) {
		int64_t t = FXS_MS(FXS_T0 + 60 * m);
		struct vg_batch *b = vg_batch_new("h7", 1, (uint64_t)m + 1, t);
		assert_non_null(b);
		assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, "vm0", "vm0", NULL, t));
		assert_int_equal(vg_batch_identity(b, "p1", "u1", "f1"), 0);
		assert_int_equal(vg_batch_sample(b, "load.1", VG_KIND_GAUGE, 7.0 + m), 0);
		assert_int_equal(vg_registry_update(reg, b), 0);
		assert_int_equal(vg_store_write_batch(s, b), 0);
		vg_batch_free(b);
	}
}

#define TENANT_FILE "instance/vm0/load.1.rrd"

/* Every read of vm0's load.1 (on a daemon refusing its FLUSH) answers 503;
 * with the admin token AAUTH naming the daemon ADDR and the file, with
 * the project token TAUTH (p1's, vm0's project) neither, nor the data
 * directory (a tenant must not learn where the storage is), with
 * Retry-After: 5 (also /v1/query and remote read, which sent none). */
static void tenant_reads(const struct fx_api *srv, const char *tauth, const char *aauth,
			 const char *addr)
{
	static const char *const paths[] = {
		"/v1/measures?resource=vm0&metric=load.1&start=%lld&end=%lld",
		"/v1/statistics?resource=vm0&metric=load.1&start=%lld&end=%lld",
		"/v1/aggregates?metric=load.1&type=instance&granularity=60&start=%lld&end=%lld",
		"/v1/graph?resource=vm0&metric=load.1&start=%lld&end=%lld",
		"/v1/query?expr=load.1%%7Bid%%3D%%22vm0%%22%%7D&granularity=60&start=%lld&end=%lld",
		NULL, /* POST /api/v1/read */
	};
	static const char *const mt[] = {"__name__=vigie_load_1", "resource=vm0"};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		char retry[2][32];

		for (int admin = 0; admin < 2; admin++) {
			const char *auth = admin ? aauth : tauth;
			const char *msg;
			struct fx_answer a;
			char path[256];
			long code;

			if (paths[i]) {
				snprintf(path, sizeof(path), paths[i], FXS_T0, FXS_T0 + 60LL * 6);
				code = fx_http(srv->url, "GET", path, auth, NULL, &a);
			} else {
				Prometheus__ReadResponse *r;
				snprintf(path, sizeof(path), "/api/v1/read");
				code = fxr_read(srv->url, auth + strlen("Bearer "), FXS_MS(FXS_T0),
						FXS_MS(FXS_T0 + 60 * 6), NULL, mt, 2, 1, &a, &r);
				assert_null(r);
			}
			msg = json_string_value(
				json_object_get(json_object_get(a.json, "error"), "message"));
			printf("# %s %.30s -> %ld %s (Retry-After '%s')\n",
			       admin ? "admin" : "tenant", path, code, msg ? msg : "(no JSON error)",
			       a.retry_after);
			assert_int_equal(code, 503);
			assert_non_null(msg);
			snprintf(retry[admin], sizeof(retry[admin]), "%s", a.retry_after);
			if (admin) {
				assert_non_null(strstr(msg, addr));
				assert_non_null(strstr(msg, TENANT_FILE));
			} else {
				assert_null(strstr(a.body, addr));
				assert_null(strstr(a.body, "noflush.sock"));
				assert_null(strstr(a.body, "load.1.rrd"));
				assert_null(strstr(a.body, srv->dir));
				assert_non_null(strstr(msg, "storage unavailable"));
			}
			fx_answer_free(&a);
		}
		assert_string_equal(retry[0], "5");
		assert_string_equal(retry[1], "5");
	}
}

/* The FLUSH + INFO reads the store sent to its one daemon so far. */
static uint64_t reads_sent(struct vg_store *s)
{
	struct vg_store_daemon dm[2];

	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	return dm[0].flushes_by[VG_STORE_FLUSH_READ];
}

/* A read that faults costs one FLUSH + INFO of its daemon, its own: the
 * 503's message is built from the placement only (vg_store_where), where
 * vg_store_locate sent a second one to the daemon that had just failed
 * (two of its timeouts for a stopped one). */
static void one_round_trip(const struct fx_api *srv, const char *auth)
{
	static const char *const what[] = {"measures", "statistics", "graph"};

	for (size_t i = 0; i < 3; i++) {
		struct fx_answer a;
		uint64_t before = reads_sent(srv->store), after;
		long code = get(srv, auth, what[i], 6, &a);

		after = reads_sent(srv->store);
		printf("# %s -> %ld, FLUSH + INFO reads sent %llu\n", what[i], code,
		       (unsigned long long)(after - before));
		assert_int_equal(code, 503);
		assert_int_equal(after - before, 1);
		fx_answer_free(&a);
	}
}

/* 200 with minutes 1..5 (within the back-off of a daemon that failed). */
static void good_read(const struct fx_api *srv, const char *auth)
{
	struct fx_answer a;
	long code = 0;

	for (int i = 0; i < 40 && code != 200; i++) {
		if ((code = get(srv, auth, "measures", 5, &a)) != 200)
			usleep(100 * 1000);
		if (code == 200)
			assert_int_equal(json_array_size(json_object_get(a.json, "points")), 5);
		fx_answer_free(&a);
	}
	assert_int_equal(code, 200);
}

static void test_read_refused(void **state)
{
	static const char *const extra[] = {"-O", "-R", NULL};
	struct fx_api srv = {0};
	struct hrd_daemon a;
	struct rcs_relay r;
	struct vg_config cfg;
	struct vg_registry *reg;
	char addr[PATH_MAX + 8], err[256], tok[VG_TOKEN_LEN + 1], auth[VG_TOKEN_LEN + 16];
	char a0[PATH_MAX * 2], saved[PATH_MAX * 2];
	(void)state;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	assert_int_equal(fx_tmpdir(srv.dir, sizeof(srv.dir), "read-refused"), 0);
	assert_int_equal(hrd_start(&a, NULL, extra), 0);
	relay_start(&r, srv.dir, &a, addr, sizeof(addr));
	fxs_config(&cfg, "1m:1d", addr, NULL);
	if (vg_store_open(srv.dir, &cfg, &srv.store, err, sizeof(err)) ||
	    vg_registry_open(srv.dir, &reg, err, sizeof(err)))
		fail_msg("%s", err);
	put_minutes(reg, srv.store, 0, 6);
	assert_int_equal(vg_store_flush(srv.store), 0);
	vg_registry_close(reg);
	assert_int_equal(fx_token(srv.dir, NULL, "rcd_refused", tok), 0);
	snprintf(auth, sizeof(auth), "Bearer %s", tok);
	assert_int_equal(fx_api_start(&srv, NULL), 0);
	good_read(&srv, auth);

	/* a FLUSH refused: the file may lack what the daemon holds */
	rcs_strip(&r, 1);
	refused_reads(&srv, auth, addr, 1);
	rcs_strip(&r, 0);
	good_read(&srv, auth);

	/* a real fault: the file's bytes replaced, the daemon's INFO
	 * refuses it (was a 404 "no metric") */
	snprintf(a0, sizeof(a0), "%s/" FILE0, a.base);
	snprintf(saved, sizeof(saved), "%s/saved.rrd", srv.dir);
	assert_int_equal(rename(a0, saved), 0);
	{
		FILE *f = fopen(a0, "w");
		assert_non_null(f);
		for (int i = 0; i < 64; i++)
			fputs("this is no round robin database\n", f);
		assert_int_equal(fclose(f), 0);
	}
	refused_reads(&srv, auth, addr, 1);
	{ /* the store's own look-up (rrd_graph's, a new series' open):
	   * a fault, not "no such series" (which would create it anew) */
		char p[PATH_MAX], ad[PATH_MAX + 8];
		assert_int_equal(vg_store_locate(srv.store, VG_RT_HOST, "node0", "load.1", p,
						 sizeof(p), ad, sizeof(ad)),
				 -EIO);
		assert_string_equal(ad, addr);
	}
	/* the file back: every value read again */
	assert_int_equal(rename(saved, a0), 0);
	good_read(&srv, auth);

	fx_api_stop(&srv);
	rcs_stop(&r);
	hrd_cleanup(&a);
	assert_int_equal(fx_rm_tree(srv.dir), 0);
	curl_global_cleanup();
}

/* The same, for real: a socket started with -P without FLUSH answers
 * every FLUSH "Permission denied" (-EACCES), which the reads took for "no
 * such file" (404). /v1/graph too: its look-up (vg_store_locate) was the
 * new series' open, which takes -EACCES for "no file" so that a daemon
 * refusing FLUSH still gets new series created; it reads the series'
 * info now, as the measures do, and answers 503. New series are still
 * created on that daemon (checked below; store_sync_refused_test too). */
static void test_read_flush_not_permitted(void **state)
{
	struct fx_api srv = {0};
	struct hrd_daemon a;
	struct vg_config cfg;
	struct vg_registry *reg;
	char addr[PATH_MAX + 8], err[256], tok[VG_TOKEN_LEN + 1], auth[VG_TOKEN_LEN + 16];
	char tauth[VG_TOKEN_LEN + 16];
	(void)state;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	assert_int_equal(fx_tmpdir(srv.dir, sizeof(srv.dir), "read-noflush"), 0);
	snprintf(addr, sizeof(addr), "unix:%s/noflush.sock", srv.dir);
	/* -P applies to the sockets listed after it: one of its own */
	const char *extra[] = {"-O", "-R", "-P",
			       "PING,UPDATE,BATCH,CREATE,INFO,LAST,FIRST,FORGET,STATS,FETCH,LIST,"
			       "PENDING,WROTE,QUIT,HELP",
			       "-l", addr, NULL};
	assert_int_equal(hrd_start(&a, NULL, extra), 0);
	fxs_config(&cfg, "1m:1d", addr, NULL);
	if (vg_store_open(srv.dir, &cfg, &srv.store, err, sizeof(err)) ||
	    vg_registry_open(srv.dir, &reg, err, sizeof(err)))
		fail_msg("%s", err);
	put_minutes(reg, srv.store, 0, 6);
	put_tenant(reg, srv.store, 6);
	(void)vg_store_flush(srv.store); /* its FLUSHes refused: values wait */
	vg_registry_close(reg);
	assert_int_equal(fx_token(srv.dir, NULL, "rcd_noflush", tok), 0);
	snprintf(auth, sizeof(auth), "Bearer %s", tok);
	assert_int_equal(fx_token(srv.dir, "p1", "rcd_noflush_p1", tok), 0);
	snprintf(tauth, sizeof(tauth), "Bearer %s", tok);
	assert_int_equal(fx_api_start(&srv, NULL), 0);
	refused_reads(&srv, auth, addr, 1);
	/* a tenant's reads: 503, the daemon and the file named to admins
	 * only */
	tenant_reads(&srv, tauth, auth, addr);
	one_round_trip(&srv, auth);
	{ /* a new series is still created there (its open's look-up) */
		char p[PATH_MAX * 2];
		struct stat st;
		reg = NULL;
		if (vg_registry_open(srv.dir, &reg, err, sizeof(err)))
			fail_msg("%s", err);
		int64_t t = FXS_MS(FXS_T0 + 60 * 6);
		struct vg_batch *b = vg_batch_new("h9", 1, 1, t);
		assert_non_null(b);
		assert_non_null(vg_batch_resource(b, VG_RT_HOST, "node9", "node9", NULL, t));
		assert_int_equal(vg_batch_sample(b, "load.1", VG_KIND_GAUGE, 1.5), 0);
		assert_int_equal(vg_registry_update(reg, b), 0);
		assert_int_equal(vg_store_write_batch(srv.store, b), 0);
		vg_batch_free(b);
		vg_registry_close(reg);
		snprintf(p, sizeof(p), "%s/host/node9/load.1.rrd", a.base);
		assert_int_equal(stat(p, &st), 0);
	}
	{ /* a long id of two-byte characters: /v1/query's error (which
	   * quotes the file twice) was cut inside one at 320 bytes, and the
	   * unbuildable JSON answered 500 "out of memory" */
		char id[VG_NAME_MAX + 1] = "", path[2048], *o;
		struct fx_answer ans;
		long code;
		for (int i = 0; i < 99; i++)
			strcat(id, "\xc3\xa9");
		reg = NULL;
		if (vg_registry_open(srv.dir, &reg, err, sizeof(err)))
			fail_msg("%s", err);
		int64_t t = FXS_MS(FXS_T0 + 60 * 6);
		struct vg_batch *b = vg_batch_new("h8", 1, 1, t);
		assert_non_null(b);
		assert_non_null(vg_batch_resource(b, VG_RT_HOST, id, "h8", NULL, t));
		assert_int_equal(vg_batch_sample(b, "load.1", VG_KIND_GAUGE, 2.5), 0);
		assert_int_equal(vg_registry_update(reg, b), 0);
		assert_int_equal(vg_store_write_batch(srv.store, b), 0);
		vg_batch_free(b);
		vg_registry_close(reg);
		o = path + snprintf(path, sizeof(path),
				    "/v1/query?granularity=60&start=%lld&end=%lld&expr=load.1%%7Bid%%3D%%22",
				    FXS_T0, FXS_T0 + 60LL * 8);
		for (int i = 0; i < 99; i++)
			o += sprintf(o, "%%C3%%A9");
		strcpy(o, "%22%7D");
		code = fx_http(srv.url, "GET", path, auth, NULL, &ans);
		printf("# long id query -> %ld %.120s\n", code, ans.body ? ans.body : "");
		assert_int_equal(code, 503);
		assert_non_null(ans.json);
		assert_non_null(strstr(ans.body, addr));
		fx_answer_free(&ans);
	}
	/* the daemon gone (a real fault): remote read answers 503 naming
	 * it too (was 500) */
	assert_int_equal(hrd_kill(&a, SIGKILL), 0);
	remote_read(&srv, auth, addr, NULL);
	/* and a tenant's reads of it name no daemon (the graph's own
	 * "storage host ADDR does not answer" did) */
	for (int i = 0; i < 2; i++) {
		struct fx_answer ans;
		char path[256];
		long code;

		snprintf(path, sizeof(path), "/v1/%s?resource=vm0&metric=load.1&start=%lld&end=%lld",
			 i ? "graph" : "measures", FXS_T0, FXS_T0 + 60LL * 6);
		code = fx_http(srv.url, "GET", path, tauth, NULL, &ans);
		printf("# tenant, daemon killed: %.12s -> %ld %s\n", path, code,
		       ans.body ? ans.body : "");
		assert_int_equal(code, 503);
		assert_string_equal(ans.retry_after, "5");
		assert_null(strstr(ans.body, addr));
		assert_null(strstr(ans.body, "noflush.sock"));
		assert_non_null(strstr(ans.body, "storage unavailable"));
		fx_answer_free(&ans);
	}
	fx_api_stop(&srv);
	hrd_cleanup(&a);
	assert_int_equal(fx_rm_tree(srv.dir), 0);
	curl_global_cleanup();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_move_refused),
		cmocka_unit_test(test_convert_refused),
		cmocka_unit_test(test_repair_refused),
		cmocka_unit_test(test_read_refused),
		cmocka_unit_test(test_read_flush_not_permitted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
