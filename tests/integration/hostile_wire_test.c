/*
 * hostile_wire_test.c — what a hostile network or a rogue compute node can
 * send to the real vigie-collector, and what must happen.
 *
 * The test starts $VIGIE_BUILD/bin/vigie-collector (VIGIE_BUILD defaults to
 * "build"; every test fails when the binary is missing) on a private temp
 * dir and two free loopback ports, with small RRD archives so that a
 * thousand series cost little disk, and talks to it over nanomsg exactly
 * as agents do. It checks:
 *  - garbage, truncated, unknown-version and unknown-flag messages, empty
 *    messages and NaN/infinite values are answered REJECTED;
 *  - a message over max_message_bytes is REJECTED, one over the transport
 *    limit is dropped, and the collector keeps serving either way;
 *  - negative counter values never become negative rates;
 *  - poll times far in the future are REJECTED (max_future, default 10
 *    min: one would set an RRD file's last update and make every later
 *    true sample a "duplicate"); far in the past they are harmless; either
 *    way later, correct samples are still stored;
 *  - resource ids, metric and host names built to escape the data
 *    directory or to inject into rrdtool arguments stay inside the tree,
 *    as file names without ':' or control bytes, and come back unchanged
 *    through the API;
 *  - 1,000 agents connecting and sending at once (five processes of 200
 *    REQ sockets each: nanomsg allows 512 sockets per process) are all
 *    acknowledged OK;
 * and after all that the collector still answers /v1/health and stops
 * cleanly with exit status 0 on SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/store.h"
#include "vigie/name.h"
#include "vigie/wire.h"

#include "harness.h"

#define MAX_MESSAGE (64u << 10) /* the collector's max_message_bytes here */
#define SWARM_PROCS 5
#define SWARM_PER_PROC 200

static struct vg_harness C;
static int64_t T0; /* a recent minute boundary, ms */

static long http_get(const char *path, char **body)
{
	return h_get(&C, path, body);
}

static int healthy(void)
{
	return h_healthy(&C);
}

static int exchange(const void *msg, size_t len, int timeout_ms, struct vg_ack *ack)
{
	return h_exchange(&C, msg, len, timeout_ms, ack);
}

/* Status of the ack to msg (asserts an ack came). */
static int status_of(const void *msg, size_t len)
{
	struct vg_ack a;
	int rc = exchange(msg, len, 10000, &a);
	if (rc)
		fail_msg("no ack from the collector: %s", strerror(-rc));
	return a.status;
}

/* Sent as a hostile peer would: without the encoder's name rules. */
static int send_batch(struct vg_batch *b)
{
	uint8_t *m;
	size_t len;
	assert_int_equal(vg_wire_encode_unchecked(b, &m, &len), 0);
	int st = status_of(m, len);
	free(m);
	return st;
}

/* A one-resource, one-sample batch. */
static struct vg_batch *one(const char *host, uint64_t stream, uint64_t seq,
			    int type, const char *id, const char *metric,
			    int kind, double v, int64_t t)
{
	struct vg_batch *b = vg_batch_new(host, stream, seq, t);
	assert_non_null(b);
	assert_non_null(vg_batch_resource(b, (uint8_t)type, id, NULL, NULL, t));
	assert_int_equal(vg_batch_sample(b, metric, (uint8_t)kind, v), 0);
	return b;
}

static int setup(void **state)
{
	char conf[256];
	int rc;

	T0 = ((int64_t)time(NULL) - 7200) / 60 * 60 * 1000;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	snprintf(conf, sizeof(conf),
		 "[collector]\nmax_message_bytes = %u\n"
		 "[storage]\nstep = 60\nheartbeat = 600\narchives = 1m:1d\n",
		 MAX_MESSAGE);
	rc = h_init(&C, conf);
	if (rc == 0) /* unsigned agents here: auth_test.c signs */
		rc = h_start(&C, (const char *const[]){"--allow-unsigned", NULL});
	if (rc == -ENOENT) {
		*state = NULL;
		return 0;
	}
	if (rc) {
		fprintf(stderr, "cannot start %s: %s (log in %s)\n", C.bin,
			strerror(-rc), C.log);
		return -1;
	}
	*state = &C;
	return 0;
}

static int teardown(void **state)
{
	h_stop(&C);
	h_cleanup(&C);
	curl_global_cleanup();
	return 0;
}

#define NEED_COLLECTOR()                                                     \
	do {                                                                 \
		if (!*state)                                                 \
			fail_msg("no %s: build it first (make all)", C.bin); \
	} while (0)

/* ---- the tests -------------------------------------------------------- */

static void test_good_then_duplicate(void **state)
{
	NEED_COLLECTOR();
	struct vg_batch *b = one("good-host", 1, 1, VG_RT_HOST, "good-host",
				 "host.cpu.idle", VG_KIND_GAUGE, 50, T0);
	assert_int_equal(send_batch(b), VG_ACK_OK);
	assert_int_equal(send_batch(b), VG_ACK_DUPLICATE);
	vg_batch_free(b);
}

static void test_garbage_rejected(void **state)
{
	NEED_COLLECTOR();
	uint8_t junk[4096];
	uint8_t *m;
	size_t len;

	srand(1234);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)rand();
	assert_int_equal(status_of(junk, sizeof(junk)), VG_ACK_REJECTED);
	assert_int_equal(status_of(junk, 1), VG_ACK_REJECTED);
	assert_int_equal(status_of("", 0), VG_ACK_REJECTED);
	memcpy(junk, "VGB1\x01\x01", 6); /* a header, then noise */
	assert_int_equal(status_of(junk, sizeof(junk)), VG_ACK_REJECTED);

	struct vg_batch *b = one("g-host", 2, 1, VG_RT_HOST, "g-host",
				 "host.cpu.idle", VG_KIND_GAUGE, 1, T0);
	assert_int_equal(vg_wire_encode(b, &m, &len), 0);
	for (size_t l = 0; l < len; l += 7) /* every 7th truncation */
		assert_int_equal(status_of(m, l), VG_ACK_REJECTED);
	m[4] = 9; /* version */
	assert_int_equal(status_of(m, len), VG_ACK_REJECTED);
	m[4] = VG_WIRE_VERSION;
	m[VG_WIRE_FLAGS_OFFSET] = 0x80; /* unknown flag */
	assert_int_equal(status_of(m, len), VG_ACK_REJECTED);
	m[VG_WIRE_FLAGS_OFFSET] = 0;
	/* the intact message still goes through: nothing was stored before */
	assert_int_equal(status_of(m, len), VG_ACK_OK);
	free(m);
	vg_batch_free(b);
	assert_true(healthy());
}

static void test_non_finite_rejected(void **state)
{
	NEED_COLLECTOR();
	double bad[] = {NAN, INFINITY, -INFINITY};
	for (int i = 0; i < 3; i++) {
		struct vg_batch *b = one("nf-host", 3, (uint64_t)i + 1, VG_RT_HOST,
					 "nf-host", "host.cpu.idle", VG_KIND_GAUGE,
					 bad[i], T0 + i * 60000);
		assert_int_equal(send_batch(b), VG_ACK_REJECTED);
		vg_batch_free(b);
	}
}

static void test_oversize(void **state)
{
	NEED_COLLECTOR();
	struct vg_batch *b = vg_batch_new("big-host", 4, 1, T0);
	char id[64];

	/* a well-formed batch just over max_message_bytes */
	for (int i = 0; i < 2000; i++) {
		snprintf(id, sizeof(id), "big-resource-%05d", i);
		vg_batch_resource(b, VG_RT_HOST_NIC, id, NULL, "big-host", T0);
		vg_batch_sample(b, "host.net.rx.bytes", VG_KIND_COUNTER, i);
	}
	uint8_t *m;
	size_t len;
	assert_int_equal(vg_wire_encode(b, &m, &len), 0);
	assert_true(len > MAX_MESSAGE);
	assert_int_equal(status_of(m, len), VG_ACK_REJECTED);
	free(m);
	vg_batch_free(b);

	/* over the transport limit (16 MiB + slack): nanomsg drops the
	 * connection without an answer; the collector keeps serving */
	size_t huge = VG_WIRE_MAX_MESSAGE + (1u << 20);
	uint8_t *h = calloc(1, huge);
	struct vg_ack a;
	assert_non_null(h);
	memcpy(h, "VGB1\x01\x01", 6);
	int rc = exchange(h, huge, 2000, &a);
	assert_true(rc == -ETIMEDOUT || (rc == 0 && a.status == VG_ACK_REJECTED));
	free(h);
	assert_true(healthy());
	struct vg_batch *g = one("big-host", 4, 2, VG_RT_HOST, "big-host",
				 "host.cpu.idle", VG_KIND_GAUGE, 3, T0);
	assert_int_equal(send_batch(g), VG_ACK_OK);
	vg_batch_free(g);
}

static struct vg_store *open_store(void)
{
	struct vg_config cfg;
	struct vg_store *s = NULL;
	char err[256];

	vg_config_defaults(&cfg);
	assert_int_equal(vg_config_parse_archives("1m:1d", cfg.archives,
						  VG_MAX_ARCHIVES, &cfg.narchives),
			 0);
	/* beside the running collector: vg_store_open refuses its
	 * directory */
	if (vg_store_open_beside(C.data, &cfg, &s, err, sizeof(err)))
		fail_msg("store: %s", err);
	return s;
}

/* Fetch known points of a series, waiting (<= 10 s) until at least
 * min_points are in the files: the store may write behind its journal,
 * and a second store on the same directory reads the files only. */
static int fetch_known(const char *id, const char *metric, int cf, int64_t start,
		       int64_t end, size_t min_points, struct vg_series *ser)
{
	int rc = -ENOENT;

	for (int i = 0; i < 50; i++) {
		struct vg_store *s = open_store();
		memset(ser, 0, sizeof(*ser));
		rc = vg_store_fetch(s, VG_RT_INSTANCE, id, metric, cf, start, end, 60, 0, ser);
		vg_store_close(s);
		if (rc == 0 && ser->n >= min_points)
			return 0;
		vg_series_free(ser);
		usleep(200 * 1000);
	}
	return rc ? rc : -ENODATA;
}

static void test_negative_counter(void **state)
{
	NEED_COLLECTOR();
	double v[] = {100, -5, 200, 260, -1e300, 300};
	const char *id = "neg-counter-instance";

	for (int i = 0; i < 6; i++) {
		struct vg_batch *b = one("neg-host", 5, (uint64_t)i + 1, VG_RT_INSTANCE,
					 id, "cpu.time", VG_KIND_COUNTER, v[i],
					 T0 + i * 60000);
		int st = send_batch(b);
		assert_true(st == VG_ACK_OK || st == VG_ACK_REJECTED);
		vg_batch_free(b);
	}
	struct vg_series ser = {0};
	/* 200 - (-5) and 260 - 200 give rates; the drops give unknowns */
	assert_int_equal(fetch_known(id, "cpu.time", VG_CF_MIN, T0 - 60000,
				     T0 + 6 * 60000, 2, &ser),
			 0);
	for (size_t i = 0; i < ser.n; i++)
		if (ser.points[i].value < 0)
			fail_msg("negative rate %g at %lld", ser.points[i].value,
				 (long long)ser.points[i].time_ms);
	vg_series_free(&ser);
}

/* A project cannot bring its deleted instance back: the registry takes a
 * report after the end for the resource returning, and a published point
 * is stamped by the tenant. One after the end is a 409 and the instance
 * stays ended; one before the end is stored like any value. */
static void test_published_after_end(void **state)
{
	NEED_COLLECTOR();
	const char *id = "ended-by-agent";
	char body[512], *resp = NULL;
	struct vg_batch *b;

	b = one("end-host", 9, 1, VG_RT_INSTANCE, id, "cpu.util", VG_KIND_GAUGE, 5, T0);
	assert_int_equal(vg_batch_identity(b, "tenant-e", NULL, NULL), 0);
	assert_int_equal(send_batch(b), VG_ACK_OK);
	vg_batch_free(b);
	b = vg_batch_new("end-host", 9, 2, T0 + 60000);
	assert_non_null(b);
	vg_batch_resource(b, VG_RT_INSTANCE, id, NULL, NULL, T0 + 60000)->state =
		VG_RSTATE_ENDED;
	assert_int_equal(vg_batch_identity(b, "tenant-e", NULL, NULL), 0);
	assert_int_equal(send_batch(b), VG_ACK_OK);
	vg_batch_free(b);

	snprintf(body, sizeof(body),
		 "{\"project\":\"tenant-e\",\"measures\":[{\"resource\":\"%s\","
		 "\"metric\":\"app.alive\",\"value\":1,\"time\":%lld}]}",
		 id, (long long)(T0 + 120000) / 1000);
	assert_int_equal(h_post(&C, "/v1/measures", body, &resp), 409);
	assert_non_null(resp);
	assert_non_null(strstr(resp, "ended"));
	free(resp);
	resp = NULL;
	assert_int_equal(http_get("/v1/resources/ended-by-agent", &resp), 200);
	assert_non_null(strstr(resp, "\"state\":\"ended\""));
	free(resp);
	resp = NULL;
	snprintf(body, sizeof(body),
		 "{\"project\":\"tenant-e\",\"measures\":[{\"resource\":\"%s\","
		 "\"metric\":\"app.alive\",\"value\":1,\"time\":%lld}]}",
		 id, (long long)(T0 + 30000) / 1000);
	assert_int_equal(h_post(&C, "/v1/measures", body, NULL), 200);
	assert_int_equal(http_get("/v1/resources/ended-by-agent", &resp), 200);
	assert_non_null(strstr(resp, "\"state\":\"ended\""));
	free(resp);
}

static void test_far_timestamps(void **state)
{
	NEED_COLLECTOR();
	const int64_t future = 7258118400000LL; /* 2200-01-01 */
	const int64_t times[] = {future, INT64_MAX, INT64_MIN, -1, 0, 1000,
				 86400000LL * 365 * 30 /* 2000 */};
	const char *id = "time-traveller";
	uint64_t seq = 1;

	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		struct vg_batch *b = one("tt-host", 6, seq++, VG_RT_INSTANCE, id,
					 "memory.size", VG_KIND_GAUGE, 1e9, times[i]);
		int st = send_batch(b);
		if (i < 2) /* the future ones */
			assert_int_equal(st, VG_ACK_REJECTED);
		else
			assert_true(st == VG_ACK_OK || st == VG_ACK_REJECTED);
		vg_batch_free(b);
		assert_true(healthy());
	}
	/* A true poll time with one resource, or one event, in the future. */
	struct vg_batch *fb = vg_batch_new("tt-host", 6, seq++, T0);
	vg_batch_resource(fb, VG_RT_INSTANCE, id, NULL, NULL, T0);
	vg_batch_sample(fb, "memory.size", VG_KIND_GAUGE, 1e9);
	vg_batch_resource(fb, VG_RT_INSTANCE, "other", NULL, NULL, future);
	vg_batch_sample(fb, "memory.size", VG_KIND_GAUGE, 1e9);
	assert_int_equal(send_batch(fb), VG_ACK_REJECTED);
	vg_batch_free(fb);
	fb = one("tt-host", 6, seq++, VG_RT_INSTANCE, id, "memory.size", VG_KIND_GAUGE,
		 1e9, T0);
	assert_int_equal(vg_batch_event(fb, id, VG_EV_STARTED, future, NULL), 0);
	assert_int_equal(send_batch(fb), VG_ACK_REJECTED);
	vg_batch_free(fb);
	/* Now the true time: these samples must be stored, whatever came
	 * before (a far-future sample must not block the series). */
	for (int i = 0; i < 3; i++) {
		struct vg_batch *b = one("tt-host", 6, seq++, VG_RT_INSTANCE, id,
					 "memory.size", VG_KIND_GAUGE, 2e9,
					 T0 + i * 60000);
		assert_int_equal(send_batch(b), VG_ACK_OK);
		vg_batch_free(b);
	}
	struct vg_series ser = {0};
	/* the first true sample follows a 26-year gap (unknown); then two */
	int rc = fetch_known(id, "memory.size", VG_CF_AVERAGE, T0 - 60000,
			     T0 + 3 * 60000, 2, &ser);
	size_t good = 0;
	for (size_t i = 0; rc == 0 && i < ser.n; i++)
		good += ser.points[i].value == 2e9;
	vg_series_free(&ser);
	if (rc || good < 2)
		fail_msg("samples at the true time were not stored after a far-"
			 "future one (fetch: %s, %zu points of 2e9)",
			 rc ? strerror(-rc) : "ok", good);
}

struct walk {
	size_t files, bad;
	char first_bad[PATH_MAX];
};
static struct walk W;

static int walk_one(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	const char *base = path + ftw->base;
	char real[PATH_MAX];

	if (flag == FTW_F)
		W.files++;
	int bad = flag == FTW_SL || !realpath(path, real) ||
		  strncmp(real, C.dir, strlen(C.dir)) != 0 ||
		  strchr(base, ':') || strchr(base, '\\');
	for (const char *p = base; *p; p++)
		bad |= (unsigned char)*p < 0x20 || *p == 0x7f;
	if (bad && !W.bad++)
		snprintf(W.first_bad, sizeof(W.first_bad), "%s", path);
	return 0;
}

static void test_hostile_names(void **state)
{
	NEED_COLLECTOR();
	char escape[128], longid[VG_WIRE_MAX_STRING + 1], id201[202];
	snprintf(escape, sizeof(escape), "../../../../../tmp/vigie-escape-%d", (int)getpid());
	memset(longid, 'L', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	memset(id201, 'M', sizeof(id201) - 1);
	id201[sizeof(id201) - 1] = '\0';
	const char *ids[] = {
		escape,
		"/etc/passwd",
		"..",
		".",
		".hidden",
		"a/b/c",
		"x:y",
		"DEF:v=/etc/passwd:value:AVERAGE",
		"LINE1:v#ff0000:pwned",
		"with\nnewline",
		"tab\there",
		"%2e%2e%2f",
		"\xff\xfe",
		"\\..\\..",
		"' OR 1=1 --",
		"$(touch /tmp/vigie-pwned)",
		longid,
		id201,
	};
	const char *metrics[] = {"cpu.time", "../../../x", "m:AVERAGE:1", "CDEF:z=1"};
	uint64_t seq = 1;
	size_t n = sizeof(ids) / sizeof(ids[0]);

	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < 4; k++) {
			struct vg_batch *b = one("name-host", 7, seq++, VG_RT_INSTANCE, ids[i],
						 metrics[k], VG_KIND_GAUGE, 42,
						 T0 + (int64_t)k * 60000);
			int st = send_batch(b);
			/* exactly the names the rules refuse are refused */
			if (st != (vg_name_valid(ids[i]) ? VG_ACK_OK : VG_ACK_REJECTED))
				fail_msg("id %zu metric %zu: ack %d", i, k, st);
			vg_batch_free(b);
		}
	}
	/* a hostile host name too */
	struct vg_batch *b = one("../../evil:host", 8, 1, VG_RT_HOST, "../../evil:host",
				 "host.cpu.idle", VG_KIND_GAUGE, 1, T0);
	int st = send_batch(b);
	assert_int_equal(st, VG_ACK_OK);
	vg_batch_free(b);
	assert_true(healthy());

	/* nothing outside the temp dir, nothing odd inside it */
	char path[256];
	snprintf(path, sizeof(path), "/tmp/vigie-escape-%d", (int)getpid());
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "/tmp/vigie-escape-%d.rrd", (int)getpid());
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(access("/tmp/vigie-pwned", F_OK), -1);
	memset(&W, 0, sizeof(W));
	assert_int_equal(nftw(C.dir, walk_one, 32, FTW_PHYS), 0);
	if (W.bad)
		fail_msg("%zu suspicious paths, first: %s", W.bad, W.first_bad);
	assert_true(W.files > 10);

	/* Ids the collector stored come back unchanged through the API. */
	CURL *c = curl_easy_init();
	size_t found = 0;
	for (size_t i = 0; i < n; i++) {
		char *esc = curl_easy_escape(c, ids[i], 0), *body = NULL;
		char p[4096];
		snprintf(p, sizeof(p), "/v1/resources/%s", esc);
		curl_free(esc);
		long code = http_get(p, &body);
		if (code == 200) {
			json_t *j = json_loads(body, 0, NULL);
			assert_non_null(j);
			assert_string_equal(json_string_value(json_object_get(j, "id")), ids[i]);
			json_decref(j);
			found++;
		} else {
			/* refused names: a JSON error, never a server error */
			assert_true(code >= 400 && code < 500);
			json_t *j = json_loads(body ? body : "", 0, NULL);
			assert_non_null(j);
			json_decref(j);
		}
		free(body);
	}
	curl_easy_cleanup(c);
	assert_true(found >= 10); /* the printable ones at least */
}

/* The longest and widest names (200 bytes of ':', 66 three-byte CJK
 * characters, a disk target "vd" + 80 colons) as resource id, metric and
 * host: acknowledged OK, stored, listed, and readable back through
 * GET /v1/measures (the store once refused every value of them while the
 * agent was told OK). */
static void test_widest_names(void **state)
{
	NEED_COLLECTOR();
	char colons[VG_NAME_MAX + 1], cjk[VG_NAME_MAX + 1], vd[90];
	CURL *c = curl_easy_init();

	memset(colons, ':', sizeof(colons) - 1);
	colons[sizeof(colons) - 1] = '\0';
	for (size_t i = 0; i + 3 <= VG_NAME_MAX; i += 3)
		memcpy(cjk + i, "\xe9\x9b\xb2", 3);
	cjk[VG_NAME_MAX / 3 * 3] = '\0';
	snprintf(vd, sizeof(vd), "vd%.80s", colons);
	const char *names[] = {colons, cjk, vd};

	for (size_t i = 0; i < 3; i++) {
		/* one poll a minute, 5 polls: the 60 s archive has 4 rows */
		for (int k = 0; k < 5; k++) {
			int64_t t = T0 + 3600000 + (int64_t)k * 60000;
			struct vg_batch *b = vg_batch_new(names[i], 40 + i,
							  (uint64_t)k + 1, t);
			assert_non_null(vg_batch_resource(b, VG_RT_DISK, names[i],
							  names[i], NULL, t));
			assert_int_equal(vg_batch_identity(b, cjk, cjk, colons), 0);
			assert_int_equal(vg_batch_sample(b, names[i], VG_KIND_GAUGE,
							 10.0 * (double)i + k),
					 0);
			assert_int_equal(send_batch(b), VG_ACK_OK);
			vg_batch_free(b);
		}
		char *ei = curl_easy_escape(c, names[i], 0), *body = NULL;
		char p[4096];
		snprintf(p, sizeof(p),
			 "/v1/measures?resource=%s&metric=%s&granularity=60"
			 "&start=%lld&end=%lld",
			 ei, ei,
			 (long long)(T0 / 1000 + 3600), (long long)(T0 / 1000 + 3900));
		long code = http_get(p, &body);
		if (code != 200)
			fail_msg("measures of name %zu: HTTP %ld %s", i, code, body);
		json_t *j = json_loads(body, 0, NULL);
		assert_non_null(j);
		assert_string_equal(json_string_value(json_object_get(j, "resource")),
				    names[i]);
		json_t *pts = json_object_get(j, "points");
		size_t n = 0;
		for (size_t k = 0; k < json_array_size(pts); k++) {
			json_t *v = json_array_get(json_array_get(pts, k), 1);
			if (json_is_number(v)) {
				/* row T0+60(k-1) holds the value sent at T0+60k */
				assert_true(json_number_value(v) >= 10.0 * (double)i + 1 &&
					    json_number_value(v) <= 10.0 * (double)i + 4);
				n++;
			}
		}
		if (n < 4)
			fail_msg("name %zu: %zu values read back, 4 sent: %s", i, n, body);
		json_decref(j);
		free(body);
		/* and listed with its identity */
		snprintf(p, sizeof(p), "/v1/resources/%s", ei);
		curl_free(ei);
		assert_int_equal(http_get(p, &body), 200);
		j = json_loads(body, 0, NULL);
		assert_string_equal(json_string_value(json_object_get(j, "project")), cjk);
		assert_string_equal(json_string_value(json_object_get(j, "flavor")), colons);
		json_decref(j);
		free(body);
	}
	curl_easy_cleanup(c);
	/* nothing outside the data dir, no component over the limit */
	memset(&W, 0, sizeof(W));
	assert_int_equal(nftw(C.dir, walk_one, 32, FTW_PHYS), 0);
	if (W.bad)
		fail_msg("%zu suspicious paths, first: %s", W.bad, W.first_bad);
}

/* ---- 1,000 agents at once ----------------------------------------------- */

/* Child mode: open n REQ sockets, connect and send on all, then collect
 * the acks, sending a batch answered RETRY again as an agent does (a
 * batch that waited in the collector's queue past its deadline is
 * answered RETRY: docs/operations.md "One deadline per batch"; under
 * valgrind 1,000 at once do); prints "ok <count of OK acks>". */
static int swarm(const char *url, int idx, int n, int64_t t)
{
	int *s = calloc((size_t)n, sizeof(int)), got = 0, ok = 0;
	struct nn_pollfd *pf = calloc((size_t)n, sizeof(*pf));
	uint8_t **msg = calloc((size_t)n, sizeof(*msg));
	size_t *mlen = calloc((size_t)n, sizeof(*mlen));
	char host[64];

	for (int i = 0; i < n; i++) {
		int to = 5000;
		s[i] = nn_socket(AF_SP, NN_REQ);
		if (s[i] < 0)
			return 2;
		nn_setsockopt(s[i], NN_SOL_SOCKET, NN_SNDTIMEO, &to, sizeof(to));
		if (nn_connect(s[i], url) < 0)
			return 3;
	}
	for (int i = 0; i < n; i++) {
		snprintf(host, sizeof(host), "swarm-%d-%03d", idx, i);
		struct vg_batch *b = vg_batch_new(host, 100 + (uint64_t)idx, 1, t);
		uint8_t *m;
		size_t len;
		vg_batch_resource(b, VG_RT_HOST, host, NULL, NULL, t);
		vg_batch_sample(b, "host.cpu.idle", VG_KIND_GAUGE, i);
		if (vg_wire_encode(b, &m, &len) || nn_send(s[i], m, len, 0) < 0)
			return 4;
		msg[i] = m;
		mlen[i] = len;
		vg_batch_free(b);
		pf[i].fd = s[i];
		pf[i].events = NN_POLLIN;
	}
	time_t end = time(NULL) + 90;
	while (got < n && time(NULL) < end) {
		if (nn_poll(pf, n, 1000) < 0 && nn_errno() != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			if (!pf[i].events || !(pf[i].revents & NN_POLLIN))
				continue;
			void *buf = NULL;
			struct vg_ack a;
			int r = nn_recv(s[i], &buf, NN_MSG, NN_DONTWAIT);
			if (r < 0)
				continue;
			if (vg_wire_ack_decode(buf, (size_t)r, &a) == 0 && a.status == VG_ACK_RETRY &&
			    nn_send(s[i], msg[i], mlen[i], 0) >= 0) {
				nn_freemsg(buf);
				continue; /* sent again: its next answer counts */
			}
			if (vg_wire_ack_decode(buf, (size_t)r, &a) == 0 && a.status == VG_ACK_OK)
				ok++;
			nn_freemsg(buf);
			pf[i].events = 0;
			got++;
		}
	}
	for (int i = 0; i < n; i++) {
		nn_close(s[i]);
		free(msg[i]);
	}
	printf("ok %d\n", ok);
	free(s);
	free(pf);
	free(msg);
	free(mlen);
	return 0;
}

static void test_thousand_agents(void **state)
{
	NEED_COLLECTOR();
	char self[PATH_MAX], cmd[PATH_MAX + 256];
	FILE *p[SWARM_PROCS];
	ssize_t l = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int total = 0;
	time_t t0 = time(NULL);

	assert_true(l > 0);
	self[l] = '\0';
	for (int i = 0; i < SWARM_PROCS; i++) {
		snprintf(cmd, sizeof(cmd), "'%s' --swarm %s %d %d %lld", self, C.url, i,
			 SWARM_PER_PROC, (long long)T0);
		p[i] = popen(cmd, "r");
		assert_non_null(p[i]);
	}
	for (int i = 0; i < SWARM_PROCS; i++) {
		int n = 0;
		if (fscanf(p[i], "ok %d", &n) != 1)
			n = 0;
		int st = pclose(p[i]);
		assert_int_equal(st, 0);
		total += n;
	}
	print_message("# %d of %d agents acknowledged OK in %lld s\n", total,
		      SWARM_PROCS * SWARM_PER_PROC, (long long)(time(NULL) - t0));
	assert_int_equal(total, SWARM_PROCS * SWARM_PER_PROC);
	assert_true(healthy());
	/* each agent's host resource is registered */
	char *body = NULL;
	assert_int_equal(http_get("/v1/resources/swarm-4-199", &body), 200);
	free(body);
}

/* Runs last: everything above must leave a collector that stops cleanly. */
static void test_clean_stop(void **state)
{
	NEED_COLLECTOR();
	assert_true(healthy());
	assert_int_equal(h_stop(&C), 0);
}

int main(int argc, char **argv)
{
	if (argc == 6 && !strcmp(argv[1], "--swarm"))
		return swarm(argv[2], atoi(argv[3]), atoi(argv[4]), atoll(argv[5]));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_then_duplicate),
		cmocka_unit_test(test_garbage_rejected),
		cmocka_unit_test(test_non_finite_rejected),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_negative_counter),
		cmocka_unit_test(test_published_after_end),
		cmocka_unit_test(test_far_timestamps),
		cmocka_unit_test(test_hostile_names),
		cmocka_unit_test(test_widest_names),
		cmocka_unit_test(test_thousand_agents),
		cmocka_unit_test(test_clean_stop),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
