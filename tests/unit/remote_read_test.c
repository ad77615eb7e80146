/*
 * remote_read_test.c — POST /api/v1/read (Prometheus remote read)
 * on the real API server, with requests encoded by protobuf-c and
 * snappy exactly as Prometheus sends them: labels and samples, matchers
 * (=, !=, =~, !~ and the absent label), tenant scoping, label injection
 * through a resource name, and hostile requests (bad regular expressions,
 * too many queries or matchers, a snappy header announcing a huge body,
 * snappy that is not protobuf). The whole path with the real Prometheus
 * binary is tests/integration/prom_read_test.sh.
 *
 * Data: one poll a minute, k = 0..10 at T0 + 60k:
 *   vm-a  instance p1  cpu.util = 10 ; vm-a-vda disk of vm-a  disk.read.bytes 600k
 *   vm-x  instance p1, named  x",project="p2",y="  cpu.util = 1
 *   vm-c  instance p2  cpu.util = 50, and its project's cpu_util = 99
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <snappy-c.h>

#include "prompb/remote.pb-c.h"
#include "query/api/api_handlers.h"
#include "vigie/batch.h"
#include "vigie/registry.h"
#include "vigie/token.h"

#include "../support/api_fixture.h"
#include "../support/remote_read.h"

#define T0 1794999600LL
#define EVIL "x\",project=\"p2\",y=\""
#define BULK 26000 /* series of project bulk (x4 > VG_RR_MAX_ANSWER_SERIES) */

static struct fx_api srv;
static int64_t q_start = T0 * 1000;       /* the queries' start */
static int64_t q_end = (T0 + 600) * 1000; /* and end */
static const char *q_func;                /* the queries' hints.func, or none */
static char tok_admin[VG_TOKEN_LEN + 1], tok_p1[VG_TOKEN_LEN + 1];

static int setup(void **state)
{
	struct fx_data d;

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (fx_tmpdir(srv.dir, sizeof(srv.dir), "rread-test") ||
	    fx_data_open(srv.dir, &d))
		return -1;
	srv.store = d.store;
	for (int k = 0; k <= 10; k++) {
		int64_t t = (T0 + 60 * k) * 1000;
		struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)k + 1, t);
		vg_batch_resource(b, VG_RT_INSTANCE, "vm-a", "alpha", NULL, t);
		vg_batch_identity(b, "p1", "u", "small");
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 10);
		vg_batch_resource(b, VG_RT_DISK, "vm-a-vda", "vda", "vm-a", t);
		vg_batch_identity(b, "p1", "u", NULL);
		vg_batch_sample(b, "disk.read.bytes", VG_KIND_COUNTER, 600.0 * k);
		vg_batch_resource(b, VG_RT_INSTANCE, "vm-x", EVIL, NULL, t);
		vg_batch_identity(b, "p1", "u", NULL);
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 1);
		vg_batch_resource(b, VG_RT_INSTANCE, "vm-c", "gamma", NULL, t);
		vg_batch_identity(b, "p2", "u", "large");
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 50);
		/* the project's own metric (POST /v1/measures), whose
		 * Prometheus name and labels are cpu.util's */
		vg_batch_sample(b, "cpu_util", VG_KIND_GAUGE, 99);
		if (fx_data_write(&d, b))
			return -1;
	}
	fx_data_done(&d);
	if (fx_token(srv.dir, NULL, "admin", tok_admin) ||
	    fx_token(srv.dir, "p1", "p1", tok_p1))
		return -1;
	return fx_api_start(&srv, NULL);
}

static int teardown(void **state)
{
	(void)state;
	fx_api_stop(&srv);
	curl_global_cleanup();
	return 0;
}

/* POST raw bytes to /api/v1/read (tests/support/remote_read.h). */
static long post_raw(const char *token, const void *body, size_t len, struct fx_answer *a)
{
	return fxr_post(srv.url, token, body, len, a);
}

/* One query of matchers "name<op>value" over the data's range (q_start,
 * q_end, q_func); nq copies of it. */
static long read_query(const char *token, const char *const *mt, size_t nm, size_t nq,
		       struct fx_answer *a, Prometheus__ReadResponse **out)
{
	return fxr_read(srv.url, token, q_start, q_end, q_func, mt, nm, nq, a, out);
}

static const char *label(const Prometheus__TimeSeries *ts, const char *name)
{
	for (size_t i = 0; i < ts->n_labels; i++)
		if (!strcmp(ts->labels[i]->name, name))
			return ts->labels[i]->value;
	return NULL;
}

static size_t nseries(const Prometheus__ReadResponse *r)
{
	return r->n_results ? r->results[0]->n_timeseries : 0;
}

static void done(struct fx_answer *a, Prometheus__ReadResponse *r)
{
	if (r)
		prometheus__read_response__free_unpacked(r, NULL);
	fx_answer_free(a);
}

static void test_read(void **state)
{
	const char *m1[] = {"__name__=vigie_cpu_util", "resource=vm-a"};
	const char *m2[] = {"__name__=vigie_disk_read_bytes_total"};
	const char *m3[] = {"__name__=~vigie_cpu_.*", "project!=p2",
			    "resource!~vm-x|vm-q"};
	const char *m4[] = {"__name__=vigie_cpu_util", "nosuch="};
	const char *m5[] = {"__name__=vigie_cpu_util", "nosuch=x"};
	Prometheus__ReadResponse *r;
	Prometheus__TimeSeries *ts;
	struct fx_answer a;

	(void)state;
	assert_int_equal(read_query(tok_admin, m1, 2, 1, &a, &r), 200);
	assert_int_equal(r->n_results, 1);
	assert_int_equal(nseries(r), 1);
	ts = r->results[0]->timeseries[0];
	/* labels sorted by name; empty ones (parent, device) left out */
	assert_int_equal(ts->n_labels, 7);
	for (size_t i = 1; i < ts->n_labels; i++)
		assert_true(strcmp(ts->labels[i - 1]->name, ts->labels[i]->name) < 0);
	assert_string_equal(label(ts, "__name__"), "vigie_cpu_util");
	assert_string_equal(label(ts, "name"), "alpha");
	assert_string_equal(label(ts, "flavor"), "small");
	assert_null(label(ts, "parent"));
	assert_int_equal(ts->n_samples, 10); /* rows T0 .. T0+540 */
	assert_int_equal(ts->samples[0]->timestamp, T0 * 1000);
	assert_true(ts->samples[3]->value == 10);
	done(&a, r);
	/* an end of INT64_MAX (Prometheus may send any int64) reads up to
	 * the last data, not nothing */
	q_end = INT64_MAX;
	assert_int_equal(read_query(tok_admin, m1, 2, 1, &a, &r), 200);
	q_end = (T0 + 600) * 1000;
	assert_int_equal(nseries(r), 1);
	assert_true(r->results[0]->timeseries[0]->n_samples >= 10);
	assert_int_equal(r->results[0]->timeseries[0]->samples[0]->timestamp,
			 T0 * 1000);
	done(&a, r);

	/* a counter: a running total rebuilt from the rate (10 B/s) */
	assert_int_equal(read_query(tok_admin, m2, 1, 1, &a, &r), 200);
	assert_int_equal(nseries(r), 1);
	ts = r->results[0]->timeseries[0];
	assert_string_equal(label(ts, "device"), "vda");
	assert_string_equal(label(ts, "parent"), "vm-a");
	assert_true(ts->n_samples >= 9);
	for (size_t i = 1; i < ts->n_samples; i++) {
		assert_true(fabs(ts->samples[i]->value - ts->samples[i - 1]->value -
				 600) < 1e-6);
		assert_int_equal(ts->samples[i]->timestamp -
					 ts->samples[i - 1]->timestamp,
				 60000);
	}
	done(&a, r);

	assert_int_equal(read_query(tok_admin, m3, 3, 2, &a, &r), 200);
	assert_int_equal(r->n_results, 2); /* one result per query */
	assert_int_equal(nseries(r), 1);
	assert_string_equal(label(r->results[0]->timeseries[0], "resource"), "vm-a");
	done(&a, r);
	/* an absent label equals "" */
	assert_int_equal(read_query(tok_admin, m4, 2, 1, &a, &r), 200);
	assert_int_equal(nseries(r), 3);
	done(&a, r);
	assert_int_equal(read_query(tok_admin, m5, 2, 1, &a, &r), 200);
	assert_int_equal(nseries(r), 0);
	done(&a, r);
	/* a series lookup over "all time", as Prometheus's /api/v1/series
	 * asks: the labels, no samples */
	q_start = INT64_MIN / 2;
	q_func = "series";
	assert_int_equal(read_query(tok_admin, m1, 2, 1, &a, &r), 200);
	q_start = T0 * 1000;
	q_func = NULL;
	assert_int_equal(nseries(r), 1);
	assert_int_equal(r->results[0]->timeseries[0]->n_samples, 0);
	assert_string_equal(label(r->results[0]->timeseries[0], "name"), "alpha");
	done(&a, r);
}

static void test_scope_injection(void **state)
{
	const char *all[] = {"__name__=~.+"};
	const char *p2[] = {"project=p2"};
	const char *evil[] = {"name=" EVIL};
	Prometheus__ReadResponse *r;
	Prometheus__TimeSeries *ts;
	struct fx_answer a;

	(void)state;
	assert_int_equal(read_query(tok_p1, all, 1, 1, &a, &r), 200);
	assert_int_equal(nseries(r), 3); /* vm-a cpu, its disk, vm-x */
	for (size_t i = 0; i < nseries(r); i++)
		assert_string_equal(label(r->results[0]->timeseries[i], "project"),
				    "p1");
	done(&a, r);
	assert_int_equal(read_query(tok_p1, p2, 1, 1, &a, &r), 200);
	assert_int_equal(nseries(r), 0);
	done(&a, r);
	assert_int_equal(read_query(tok_admin, p2, 1, 1, &a, &r), 200);
	assert_int_equal(nseries(r), 1);
	done(&a, r);

	/* the hostile name is one value: project stays p1, no label y */
	assert_int_equal(read_query(tok_p1, evil, 1, 1, &a, &r), 200);
	assert_int_equal(nseries(r), 1);
	ts = r->results[0]->timeseries[0];
	assert_string_equal(label(ts, "name"), EVIL);
	assert_string_equal(label(ts, "project"), "p1");
	assert_null(label(ts, "y"));
	assert_int_equal(ts->n_labels, 6); /* __name__ host name project resource type */
	done(&a, r);
}

/* Two metrics of one resource whose Prometheus name is the same (the
 * agent's cpu.util and a project's cpu_util on its instance) have one
 * label set: answered as two series, Prometheus sees one series twice (a
 * project's value passing for the agent's in the operator's queries, or
 * PromQL's "same labelset" errors). One series, the catalogue's. */
static void test_one_series_per_label_set(void **state)
{
	const char *mt[] = {"__name__=vigie_cpu_util", "resource=vm-c"};
	const char *all[] = {"resource=vm-c"};
	Prometheus__ReadResponse *r;
	struct fx_answer a;

	(void)state;
	assert_int_equal(read_query(tok_admin, mt, 2, 1, &a, &r), 200);
	assert_int_equal(nseries(r), 1);
	assert_true(r->results[0]->timeseries[0]->n_samples > 0);
	assert_true(r->results[0]->timeseries[0]->samples[0]->value == 50);
	done(&a, r);
	assert_int_equal(read_query(tok_admin, all, 1, 1, &a, &r), 200);
	assert_int_equal(nseries(r), 1);
	done(&a, r);
}

static void test_hostile(void **state)
{
	const char *bad_re[] = {"__name__=~(?i)vigie.*"};
	const char *unclosed[] = {"name=~(abc"};
	static char long_re[1100];
	const char *lre[] = {long_re};
	const char *many[33];
	Prometheus__ReadResponse *r;
	struct fx_answer a;

	(void)state;
	assert_int_equal(read_query(tok_admin, bad_re, 1, 1, &a, &r), 400);
	assert_non_null(strstr(fx_errmsg(&a), "POSIX"));
	done(&a, r);
	assert_int_equal(read_query(tok_admin, unclosed, 1, 1, &a, &r), 400);
	done(&a, r);
	/* quoted at 100 bytes with an 'é' at bytes 99-100: the quote stops
	 * before it (it ended in half of it, shown as '?') */
	{
		static char cut_re[128];
		const char *cut[] = {cut_re};
		char want[160];
		memcpy(cut_re, "name=~", 6);
		memset(cut_re + 6, 'a', 99);
		strcpy(cut_re + 105, "\xc3\xa9(");
		snprintf(want, sizeof(want), "bad regular expression '%.99s' for label 'name'",
			 cut_re + 6);
		assert_int_equal(read_query(tok_admin, cut, 1, 1, &a, &r), 400);
		assert_non_null(strstr(fx_errmsg(&a), want));
		done(&a, r);
	}
	memcpy(long_re, "name=~", 6);
	memset(long_re + 6, 'a', sizeof(long_re) - 7);
	assert_int_equal(read_query(tok_admin, lre, 1, 1, &a, &r), 400);
	assert_non_null(strstr(fx_errmsg(&a), "longer than"));
	done(&a, r);
	/* what RE2 refuses and glibc would pay minutes for: a 400 at once */
	{
		const char *backref[] = {"name=~((.*)(.*)\\2\\3c)"};
		const char *nested[] = {"name=~(a{1,100}){1,100}"};
		const char *hidden[] = {"name=~((a{1,20}){1,20}){3}|x{99999}"};
		const char *ok_re[] = {"name=~[0-9]{1,3}(\\.[0-9]{1,3}){3}|a{2,1000}|[]{]{9}"};
		assert_int_equal(read_query(tok_admin, backref, 1, 1, &a, &r), 400);
		assert_non_null(strstr(fx_errmsg(&a), "back-reference"));
		done(&a, r);
		assert_int_equal(read_query(tok_admin, nested, 1, 1, &a, &r), 400);
		assert_non_null(strstr(fx_errmsg(&a), "repetitions"));
		done(&a, r);
		assert_int_equal(read_query(tok_admin, hidden, 1, 1, &a, &r), 400);
		done(&a, r);
		assert_int_equal(read_query(tok_admin, ok_re, 1, 1, &a, &r), 200);
		done(&a, r);
	}
	/* loops over groups that match nothing: glibc's compile time doubles
	 * with each (twenty: a second; thirty: twenty minutes) */
	{
		static char loops[200], counted[] = "name=~((.*)*){20}";
		static char fine[200];
		const char *l1[] = {loops}, *l2[] = {counted}, *l3[] = {fine};
		strcpy(loops, "name=~");
		strcpy(fine, "name=~((.*)*){5}|(foo|bar)+|(a+)*");
		for (int i = 0; i < 20; i++) {
			strcat(loops, "(a*)*");
			strcat(fine, "(.*)?");
		}
		assert_int_equal(read_query(tok_admin, l1, 1, 1, &a, &r), 400);
		assert_non_null(strstr(fx_errmsg(&a), "loops"));
		done(&a, r);
		assert_int_equal(read_query(tok_admin, l2, 1, 1, &a, &r), 400);
		done(&a, r);
		assert_int_equal(read_query(tok_admin, l3, 1, 1, &a, &r), 200);
		done(&a, r);
	}
	/* counted repetitions side by side: each within RE2's 1000, but
	 * glibc's automaton grows a state per unrolled atom and an epsilon
	 * closure per state (ten: seconds to compile; ninety: the thread's
	 * stack overflows and the collector dies) */
	{
		static char wide[200];
		const char *w1[] = {wide}, *w2[] = {"name=~(.?){999}(.?){999}"};
		strcpy(wide, "name=~");
		for (int i = 0; i < 10; i++)
			strcat(wide, "(.?){999}");
		assert_int_equal(read_query(tok_admin, w1, 1, 1, &a, &r), 400);
		assert_non_null(strstr(fx_errmsg(&a), "atoms"));
		done(&a, r);
		/* within the atoms (2000), but a second of glibc's time to
		 * compile: answered, or (on a machine where it takes longer
		 * than VG_RR_MAX_REGEX_MS) refused for its cost, never for
		 * its size */
		long st = read_query(tok_admin, w2, 1, 1, &a, &r);
		if (st != 200) {
			assert_int_equal(st, 400);
			assert_non_null(strstr(fx_errmsg(&a), "cost more than"));
		}
		done(&a, r);
	}
	/* each within every limit above, together what one request may not
	 * cost: 32 such matchers in a query, or one in each of 64 queries,
	 * compiled (a second each) and matched held a core for the
	 * request's 30 s (503); refused once their time passes
	 * VG_RR_MAX_REGEX_MS, compiling or matching */
	{
		const char *w[32];
		for (int i = 0; i < 32; i++)
			w[i] = "name=~(.?){999}(.?){999}";
		assert_int_equal(read_query(tok_admin, w, 32, 1, &a, &r), 400);
		assert_non_null(strstr(fx_errmsg(&a), "regular expressions cost more than"));
		done(&a, r);
		assert_int_equal(read_query(tok_admin, w, 1, 64, &a, &r), 400);
		assert_non_null(strstr(fx_errmsg(&a), "regular expressions cost more than"));
		done(&a, r);
	}
	/* what PromQL writes stays far within it, 64 queries of them */
	{
		const char *w[] = {"__name__=~.*", "type=~instance|disk",
				   "resource=~vm-[a-z]+(-vda)?", "project=~(p|q)1"};
		assert_int_equal(read_query(tok_admin, w, 4, 64, &a, &r), 200);
		assert_int_equal(r->n_results, 64);
		assert_true(nseries(r) >= 1);
		done(&a, r);
	}
	for (int i = 0; i < 33; i++)
		many[i] = "name!=z";
	assert_int_equal(read_query(tok_admin, many, 33, 1, &a, &r), 400);
	assert_non_null(strstr(fx_errmsg(&a), "matchers"));
	done(&a, r);
	assert_int_equal(read_query(tok_admin, many, 1, 65, &a, &r), 400);
	assert_non_null(strstr(fx_errmsg(&a), "queries"));
	done(&a, r);

	/* a snappy header announcing 100 MB: refused before any allocation */
	{
		unsigned char bomb[8] = {0x80, 0x80, 0x80, 0x30, 0, 0, 0, 0};
		assert_int_equal(post_raw(tok_admin, bomb, sizeof(bomb), &a), 413);
		fx_answer_free(&a);
	}
	/* 4 MiB of empty queries, then of unknown fields: refused before
	 * protobuf-c allocates a structure for each (250 MB) */
	{
		size_t n = 4 << 20, clen = snappy_max_compressed_length(n);
		char *raw = malloc(n), *comp = malloc(clen);
		struct rusage before, after;
		assert_non_null(raw);
		assert_non_null(comp);
		for (size_t i = 0; i < n; i += 2)
			raw[i] = 0x0a, raw[i + 1] = 0; /* field 1 (a query), empty */
		assert_int_equal(snappy_compress(raw, n, comp, &clen), SNAPPY_OK);
		getrusage(RUSAGE_SELF, &before);
		assert_int_equal(post_raw(tok_admin, comp, clen, &a), 400);
		assert_non_null(strstr(fx_errmsg(&a), "queries"));
		fx_answer_free(&a);
		for (size_t i = 0; i < n; i += 2)
			raw[i] = 0x78, raw[i + 1] = 0; /* field 15, varint 0 */
		clen = snappy_max_compressed_length(n);
		assert_int_equal(snappy_compress(raw, n, comp, &clen), SNAPPY_OK);
		assert_int_equal(post_raw(tok_admin, comp, clen, &a), 400);
		assert_non_null(strstr(fx_errmsg(&a), "fields"));
		fx_answer_free(&a);
		getrusage(RUSAGE_SELF, &after);
		/* the server runs in this process: its peak grew by less than
		 * the request's own buffers and a margin */
		assert_true(after.ru_maxrss - before.ru_maxrss < 64 * 1024);
		free(raw);
		free(comp);
	}
	/* valid snappy, not a ReadRequest */
	{
		const char junk[] = "\xff\xff\xff\xff\xff\xff\xff";
		char comp[64];
		size_t clen = sizeof(comp);
		assert_int_equal(snappy_compress(junk, 7, comp, &clen), SNAPPY_OK);
		assert_int_equal(post_raw(tok_admin, comp, clen, &a), 400);
		assert_non_null(strstr(fx_errmsg(&a), "protobuf"));
		fx_answer_free(&a);
	}
	/* a NUL inside a matcher's value: protobuf-c's strings end there,
	 * so resource="vm-a\0x" matched vm-a (Prometheus matches the whole
	 * value, and no vigie label holds a NUL): a 400 instead. The same
	 * request without the NUL reads vm-a. */
	for (int nul = 0; nul < 2; nul++) {
		uint8_t mt[32], qy[64], rq[80];
		char comp[128];
		size_t nmt = 0, nqy = 0, nrq = 0, clen = sizeof(comp);
		Prometheus__ReadResponse *rr;
		const char *v = nul ? "vm-a\0x" : "vm-a";
		size_t vlen = nul ? 6 : 4;

		mt[nmt++] = 0x12, mt[nmt++] = 8; /* name */
		memcpy(mt + nmt, "resource", 8), nmt += 8;
		mt[nmt++] = 0x1a, mt[nmt++] = (uint8_t)vlen; /* value */
		memcpy(mt + nmt, v, vlen), nmt += vlen;
		qy[nqy++] = 0x08; /* start_timestamp_ms */
		for (uint64_t t = (uint64_t)q_start; t; t >>= 7)
			qy[nqy++] = (uint8_t)((t & 0x7f) | (t > 0x7f ? 0x80 : 0));
		qy[nqy++] = 0x10; /* end_timestamp_ms */
		for (uint64_t t = (uint64_t)q_end; t; t >>= 7)
			qy[nqy++] = (uint8_t)((t & 0x7f) | (t > 0x7f ? 0x80 : 0));
		qy[nqy++] = 0x1a, qy[nqy++] = (uint8_t)nmt; /* a matcher */
		memcpy(qy + nqy, mt, nmt), nqy += nmt;
		rq[nrq++] = 0x0a, rq[nrq++] = (uint8_t)nqy; /* a query */
		memcpy(rq + nrq, qy, nqy), nrq += nqy;
		assert_int_equal(snappy_compress((char *)rq, nrq, comp, &clen), SNAPPY_OK);
		if (nul) {
			assert_int_equal(post_raw(tok_admin, comp, clen, &a), 400);
			assert_non_null(strstr(fx_errmsg(&a), "NUL"));
			fx_answer_free(&a);
			continue;
		}
		assert_int_equal(post_raw(tok_admin, comp, clen, &a), 200);
		size_t raw_len;
		assert_int_equal(snappy_uncompressed_length(a.body, a.len, &raw_len), SNAPPY_OK);
		char *raw = malloc(raw_len + 1);
		assert_int_equal(snappy_uncompress(a.body, a.len, raw, &raw_len), SNAPPY_OK);
		rr = prometheus__read_response__unpack(NULL, raw_len, (uint8_t *)raw);
		free(raw);
		assert_non_null(rr);
		assert_true(nseries(rr) >= 1);
		assert_string_equal(label(rr->results[0]->timeseries[0], "resource"), "vm-a");
		done(&a, rr);
	}
	assert_int_equal(post_raw(tok_admin, "hello", 5, &a), 400);
	fx_answer_free(&a);
	assert_int_equal(post_raw("vgt_0000000000000000_00", "x", 1, &a), 401);
	fx_answer_free(&a);
}

/* Series lookups cost their labels: four queries of 26,000 series pass
 * the answer's bound (100,000) and are refused, not answered with 100 MB */
static void test_answer_series(void **state)
{
	const char *bulk[] = {"project=bulk"};
	Prometheus__ReadResponse *r;
	struct fx_answer a;

	(void)state;
#ifdef __SANITIZE_ADDRESS__
	/* 100,000 series lookups take the sanitizer build past the server's
	 * 30 s deadline on a loaded 2-core machine; the plain build (make
	 * check) runs this test */
	printf("# SKIP the answer's series bound: too slow under AddressSanitizer "
	       "(the plain build runs it)\n");
	skip();
#endif
	/* BULK series in the registry only (a series lookup reads no RRD
	 * file), written here and not in setup: an admin query without a
	 * project matcher scans every resource, and under AddressSanitizer
	 * 26,000 more made each of the other tests' queries take 10-20 s
	 * (two minutes in all, and the 30 s client timeout under load) */
	{
		struct vg_registry *reg;
		struct vg_batch *b = vg_batch_new("h2", 1, 1, T0 * 1000);
		char id[32], err[256];
		assert_non_null(b);
		for (int i = 0; i < BULK; i++) {
			snprintf(id, sizeof(id), "bulk-%05d", i);
			vg_batch_resource(b, VG_RT_CUSTOM, id, NULL, NULL, T0 * 1000);
			vg_batch_identity(b, "bulk", NULL, NULL);
			vg_batch_sample(b, "bulk.m", VG_KIND_GAUGE, 1);
		}
		assert_int_equal(vg_registry_open(srv.dir, &reg, err, sizeof(err)), 0);
		assert_int_equal(vg_registry_update(reg, b), 0);
		vg_registry_close(reg);
		vg_batch_free(b);
	}
	q_func = "series";
	assert_int_equal(read_query(tok_admin, bulk, 1, 1, &a, &r), 200);
	assert_int_equal(nseries(r), BULK);
	done(&a, r);
	assert_int_equal(read_query(tok_admin, bulk, 1, 4, &a, &r), 400);
	assert_non_null(strstr(fx_errmsg(&a), "series in one answer"));
	done(&a, r);
	q_func = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read),
		cmocka_unit_test(test_scope_injection),
		cmocka_unit_test(test_one_series_per_label_set),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_answer_series),
	};
	return cmocka_run_group_tests_name("remote_read", tests, setup, teardown);
}
