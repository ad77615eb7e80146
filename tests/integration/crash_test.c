/*
 * crash_test.c — kill -9 the real collector at random moments while a
 * sender streams batches, again and again; nothing acknowledged may be
 * lost, nothing notified twice, nothing billed wrong, and nothing may be
 * left corrupt (crash safety).
 *
 * The sender behaves like an agent: one batch at a time, the same batch
 * again until it is answered OK or DUPLICATE, then the next; it remembers
 * which sequence numbers were acknowledged. Each batch (one simulated
 * minute) has 20 instances with 3 gauges and a power state each, a flavor
 * that changes now and then (resize) and a power state that stops and
 * starts them (billing), and instance 0 has a gauge "crash.flip" that
 * jumps above and below 50 every FLIP_EVERY minutes, watched by a 1-of-1
 * alarm whose "alarm" and "ok" actions POST to a webhook receiver in this
 * process (a thread). So the collector is almost always in the middle of
 * writing RRD files, billing.db or alarms.db, or delivering a webhook,
 * when the SIGKILL comes (50..1500 ms after it answered its first health
 * check). The sender never pauses, so the store never idles, and batch
 * times have sub-second parts (off_of: 1..999 ms past the minute), and
 * the storage thread writes every 16 batches ([storage] flush_depth): a
 * kill finds values both in the files and in the live journal segment,
 * which the restart replays (librrd keeps .229 s as 228999 us,
 * and a replayed value at the file's last update used to take its whole
 * librrd call down). After CRASH_CYCLES kills (default 10; bench/crash_soak.sh runs
 * more), and two kills at a chosen moment (a run stopped just before a
 * flip of the data, then a run whose first and only acknowledged batch
 * is the flip: each series' first sample after a restart must close its
 * period before the ack), on the crashed data directory as the last
 * kill left it:
 *  - every value of every acknowledged batch is in its RRD file, at its
 *    own time (each minute's point is the time-weighted mean of the two
 *    values that cover it; also after a kill inside librrd's update: the
 *    store's header undo, collector/store.c), and no restart's replay
 *    counted a write error (the log says "write errors 0");
 *  - `rrdtool info` reads every .rrd file;
 *  - PRAGMA integrity_check says "ok" for every sqlite database;
 * then a restarted collector takes more batches (every batch sent is then
 * acknowledged), delivers its outbox and stops cleanly, and:
 *  - its registry's last acknowledged sequence is the sender's;
 *  - alarms: the transitions in alarms.db's history are exactly the flips
 *    of the data (none missing, none twice, each previous state the one
 *    before), and the webhook receiver answered 2xx for every transition's
 *    notification id and for no other id. "Doubled" means a transition
 *    notified under two ids, an id the history does not know, or one id
 *    acknowledged twice by the receiver without a kill in between. The
 *    design is at-least-once with an idempotency key (docs/alarms.md): a
 *    kill after the receiver's 2xx and before the outbox row is marked
 *    delivered re-sends the same id after the restart; those re-sends are
 *    counted, must straddle a kill and are at most one per kill;
 *  - billing: the compute usage in billing.db (vg_bill_usage_load, what an
 *    invoice prices) is, per instance and flavor, to the millisecond what
 *    the acknowledged batches say: polling semantics (docs/billing.md), a
 *    run starts at the first sample that shows it running, stops at the
 *    last one, and a resize seen at sample n splits the usage at n.
 */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "vigie/batch.h"
#include "vigie/bill_meter.h"
#include "vigie/bill_usage.h"
#include "vigie/config.h"
#include "vigie/store.h"
#include "vigie/wire.h"

#include "harness.h"

#define NRES 20
#define NMET 3
#define HOST "crash-host"
#define STREAM 0xc0ffee
#define MAX_SEQ 100000
#define FLIP_EVERY 7 /* minutes between two flips of the alarm's input */
#define NFLAVOR 2

static const char *const metric[NMET] = {"crash.g0", "crash.g1", "crash.g2"};
static const char *const flavors[NFLAVOR] = {"m1.small", "m1.large"};
static struct vg_harness H;
static int64_t T0;
static uint8_t acked[MAX_SEQ + 1];
/* which collector run acknowledged each batch (run + 1; 0: none) and how
 * many that run had acknowledged before it: a failure names the kill */
static int acked_run[MAX_SEQ + 1], acked_nth[MAX_SEQ + 1];
static int cur_run = -1, cur_run_acks;
static const char *const unsigned_ok[] = {"--allow-unsigned", NULL};

static double value_of(uint64_t seq, int r, int k)
{
	return (double)seq * 1000 + r * 10 + k;
}

/* Instance r runs at seq unless in one block of four (blocks of 5..8
 * minutes, shifted per instance): stops and starts all the time. */
static int running_at(uint64_t seq, int r)
{
	return (seq + 3 * (uint64_t)r) / (5 + (uint64_t)r % 4) % 4 != 0;
}

/* Resized every 40 minutes (shifted per instance). */
static int flavor_at(uint64_t seq, int r)
{
	return (int)((seq + 11 * (uint64_t)r) / 40 % NFLAVOR);
}

/* The alarm's input: above 50 for FLIP_EVERY minutes, then below. */
static double flip_at(uint64_t seq)
{
	return seq / FLIP_EVERY % 2 ? 100 : 0;
}

/* Sub-second times, as an agent polling every 0.2 s has: batch seq is
 * stamped off(seq) ms after its minute (1..999 ms, a different fraction
 * each time: about half of them librrd keeps one microsecond early, the
 * case that lost values after a restart). The fraction also jumps back
 * (…:00.998 then …:01:00.001): the alarm engine must still close each
 * minute at its own sample, or a kill loses that minute's decision
 * (alarm_engine_test's jittered sample). */
static int64_t off_of(uint64_t seq)
{
	return 1 + (int64_t)(seq * 397 % 999);
}

static int64_t time_of(uint64_t seq)
{
	return T0 + (int64_t)seq * 60000 + off_of(seq);
}

/* The start of batch seq's minute: the alarms' periods and the archive's
 * rows are aligned on minutes. */
static int64_t minute_of(uint64_t seq)
{
	return T0 + (int64_t)seq * 60000;
}

static void res_id(int r, char *buf, size_t len)
{
	snprintf(buf, len, "crash-res-%02d", r);
}

static uint8_t *encode(uint64_t seq, size_t *len)
{
	struct vg_batch *b = vg_batch_new(HOST, STREAM, seq, time_of(seq));
	uint8_t *m;
	char id[32];

	assert_non_null(b);
	for (int r = 0; r < NRES; r++) {
		res_id(r, id, sizeof(id));
		assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, id, NULL, NULL,
						  time_of(seq)));
		assert_int_equal(vg_batch_identity(b, NULL, NULL,
						   flavors[flavor_at(seq, r)]),
				 0);
		for (int k = 0; k < NMET; k++)
			assert_int_equal(vg_batch_sample(b, metric[k], VG_KIND_GAUGE,
							 value_of(seq, r, k)),
					 0);
		/* libvirt's virDomainState: 1 running, 5 shut off */
		assert_int_equal(vg_batch_sample(b, "power.state", VG_KIND_GAUGE,
						 running_at(seq, r) ? 1 : 5),
				 0);
		if (r == 0)
			assert_int_equal(vg_batch_sample(b, "crash.flip", VG_KIND_GAUGE,
							 flip_at(seq)),
					 0);
	}
	assert_int_equal(vg_wire_encode(b, &m, len), 0);
	vg_batch_free(b);
	return m;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Send batches from *seq on until the collector dies (or the deadline).
 * Returns how many were acknowledged. */
static int stream_until_dead(uint64_t *seq, int64_t deadline)
{
	uint8_t *m = NULL;
	size_t len = 0;
	uint64_t m_seq = 0;
	int n = 0;

	while (now_ms() < deadline && *seq < MAX_SEQ) {
		struct vg_ack a;
		if (m_seq != *seq) {
			free(m);
			m = encode(*seq, &len);
			m_seq = *seq;
		}
		int rc = h_exchange(&H, m, len, 500, &a);
		if (rc == 0 && (a.status == VG_ACK_OK || a.status == VG_ACK_DUPLICATE)) {
			assert_int_equal(a.seq, *seq);
			acked[*seq] = 1;
			acked_run[*seq] = cur_run + 1;
			acked_nth[*seq] = cur_run_acks++;
			(*seq)++;
			n++;
			continue;
		}
		if (rc == 0 && a.status == VG_ACK_REJECTED)
			fail_msg("batch %llu rejected", (unsigned long long)*seq);
		if (rc == 0) /* RETRY: again */
			continue;
		if (H.pid > 0 && waitpid(H.pid, NULL, WNOHANG) == H.pid) {
			H.pid = 0;
			break;
		}
	}
	free(m);
	return n;
}

/* Send batch seq to the running collector until it is acknowledged. */
static void send_acked(uint64_t seq)
{
	size_t len;
	uint8_t *m = encode(seq, &len);
	int64_t deadline = now_ms() + 10000;
	struct vg_ack a;
	int rc;

	while ((rc = h_exchange(&H, m, len, 1000, &a)) != 0 ||
	       (a.status != VG_ACK_OK && a.status != VG_ACK_DUPLICATE))
		if (now_ms() > deadline)
			fail_msg("batch %llu not acknowledged in 10 s", (unsigned long long)seq);
	assert_int_equal(a.seq, seq);
	acked[seq] = 1;
	acked_run[seq] = cur_run + 1;
	acked_nth[seq] = cur_run_acks++;
	free(m);
}

static size_t n_rrd, n_rrd_bad, n_tmp, n_db, n_db_bad;
static char first_bad[PATH_MAX + 64];

static int check_file(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	size_t l = strlen(path);
	char cmd[PATH_MAX + 64];

	if (flag != FTW_F)
		return 0;
	if (l > 4 && !strcmp(path + l - 4, ".rrd")) {
		n_rrd++;
		snprintf(cmd, sizeof(cmd), "rrdtool info '%s' >/dev/null 2>&1", path);
		if (system(cmd) != 0 && !n_rrd_bad++)
			snprintf(first_bad, sizeof(first_bad), "rrdtool info %s", path);
	} else if (l > 8 && !strcmp(path + l - 8, ".rrd.tmp")) {
		n_tmp++;
	} else if (l > 3 && !strcmp(path + l - 3, ".db")) {
		sqlite3 *db = NULL;
		sqlite3_stmt *st_ = NULL;
		int good = 0;
		n_db++;
		if (sqlite3_open(path, &db) == SQLITE_OK &&
		    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st_, NULL) == SQLITE_OK &&
		    sqlite3_step(st_) == SQLITE_ROW)
			good = !strcmp((const char *)sqlite3_column_text(st_, 0), "ok");
		sqlite3_finalize(st_);
		sqlite3_close(db);
		if (!good && !n_db_bad++)
			snprintf(first_bad, sizeof(first_bad), "integrity_check %s", path);
	}
	return 0;
}

/* The value of the point of ser that starts at t, or NAN. */
static double at(const struct vg_series *ser, int64_t t)
{
	if (!ser->n || t < ser->points[0].time_ms)
		return NAN;
	size_t i = (size_t)((t - ser->points[0].time_ms) / 60000);
	return i < ser->n && ser->points[i].time_ms == t ? ser->points[i].value : NAN;
}

/* Every value of every acknowledged batch (but the first of a series, which
 * only sets the file's start) is in the RRD files, at its own time.
 * Returns how many were checked; fails on the first one missing or
 * mislabelled. A value found one step early is the signature of a kill
 * between librrd's row and last_up writes replayed without the store's
 * header undo (collector/store.c; tests/unit/journal_test.c makes that
 * state on purpose): it is named as such. */
static size_t check_acked(uint64_t last)
{
	struct vg_config cfg;
	struct vg_store *s = NULL;
	char err[256], id[32];
	size_t checked = 0;

	vg_config_defaults(&cfg);
	assert_int_equal(vg_config_parse_archives("1m:30d", cfg.archives, VG_MAX_ARCHIVES,
						  &cfg.narchives),
			 0);
	if (vg_store_open(H.data, &cfg, &s, err, sizeof(err)))
		fail_msg("store: %s", err);
	struct vg_store_stats sst;
	vg_store_get_stats(s, &sst);
	if (sst.write_errors)
		fail_msg("store opened on the crashed directory: %llu value(s) of "
			 "the journal could not be written: %s",
			 (unsigned long long)sst.write_errors, vg_store_last_error(s));
	if (sst.headers_restored || sst.values_replayed)
		print_message("# store opened on the crashed directory: %llu values "
			      "replayed, %llu RRD headers restored (kill inside librrd)\n",
			      (unsigned long long)sst.values_replayed,
			      (unsigned long long)sst.headers_restored);
	for (int r = 0; r < NRES; r++) {
		res_id(r, id, sizeof(id));
		for (int k = 0; k < NMET; k++) {
			struct vg_series ser = {0};
			int rc = vg_store_fetch(s, VG_RT_INSTANCE, id, metric[k], VG_CF_AVERAGE,
						minute_of(0) - 60000, minute_of(last + 1), 60, 1, &ser);
			if (rc)
				fail_msg("%s/%s: %s", id, metric[k], strerror(-rc));
			/* The point named t covers (t, t + 60 s]: seq n's value holds
			 * over (time_of(n - 1), time_of(n)], so the point at
			 * minute_of(n - 1) is seq n - 1's value for off(n - 1) ms
			 * and seq n's for the rest of the minute. */
			for (uint64_t n = 2; n <= last; n++) {
				if (!acked[n] || !acked[n - 1])
					continue;
				double o = (double)off_of(n - 1);
				double want = (o * value_of(n - 1, r, k) +
					       (60000 - o) * value_of(n, r, k)) /
					      60000;
				double got = at(&ser, minute_of(n - 1));
				checked++;
				/* librrd keeps times to the microsecond: 1e-5 */
				if (fabs(got - want) < 1e-3)
					continue;
				if (n >= 3 && fabs(at(&ser, minute_of(n - 2)) - want) < 1e-3)
					fail_msg("acknowledged seq %llu: %s/%s one step early "
						 "(a kill inside librrd's update, not undone)",
						 (unsigned long long)n, id, metric[k]);
				fail_msg("acknowledged seq %llu: %s/%s is %.6f, want %.6f",
					 (unsigned long long)n, id, metric[k], got, want);
			}
			vg_series_free(&ser);
		}
	}
	vg_store_close(s);
	return checked;
}

/* ---- the webhook receiver: a thread answering 200 to every POST ---- */

struct hook_rcv {
	char id[80];      /* Idempotency-Key */
	char current[24]; /* the body's "current" */
	int cycle;        /* collector run that sent it (accepted during) */
};

static struct {
	int fd, port;
	pthread_t thread;
	pthread_mutex_t lock;
	struct hook_rcv *v;
	size_t n, cap;
	size_t bad; /* requests it could not understand */
} HK = {.fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};
static int cur_cycle; /* __atomic: which collector run is up */

/* A header's value (case-insensitive name) into out, or -1. */
static int header(const char *hdrs, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);

	for (const char *p = hdrs; p && *p; p = strstr(p, "\r\n")) {
		if (p[0] == '\r')
			p += 2;
		if (!strncasecmp(p, name, nl) && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ')
				v++;
			size_t l = strcspn(v, "\r\n");
			if (l >= len)
				return -1;
			memcpy(out, v, l);
			out[l] = '\0';
			return 0;
		}
	}
	return -1;
}

/* One request on c: read it whole, answer 200, record it. A request cut
 * short (the collector died while sending) is not answered: not
 * delivered. */
static void hook_serve(int c, int cycle)
{
	char buf[65536], id[80], cl[24];
	size_t got = 0, need = 0;
	char *end = NULL;
	struct timeval tv = {5, 0};

	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (;;) {
		ssize_t r = recv(c, buf + got, sizeof(buf) - 1 - got, 0);
		if (r <= 0)
			return;
		got += (size_t)r;
		buf[got] = '\0';
		if (!end && (end = strstr(buf, "\r\n\r\n"))) {
			*end = '\0';
			if (header(buf, "Content-Length", cl, sizeof(cl)))
				goto bad;
			need = (size_t)(end - buf) + 4 + strtoul(cl, NULL, 10);
			if (need >= sizeof(buf))
				goto bad;
		}
		if (end && got >= need)
			break;
		if (got >= sizeof(buf) - 1)
			goto bad;
	}
	if (header(buf, "Idempotency-Key", id, sizeof(id)))
		goto bad;
	json_t *j = json_loadb(end + 4, need - (size_t)(end - buf) - 4, 0, NULL);
	const char *cur = json_string_value(json_object_get(j, "current"));
	const char *nid = json_string_value(json_object_get(j, "notification_id"));
	if (!cur || !nid || strcmp(nid, id)) {
		json_decref(j);
		goto bad;
	}
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
				 "Connection: close\r\n\r\n";
	if (send(c, ok, sizeof(ok) - 1, MSG_NOSIGNAL) == (ssize_t)sizeof(ok) - 1) {
		pthread_mutex_lock(&HK.lock);
		if (HK.n == HK.cap) {
			HK.cap = HK.cap ? 2 * HK.cap : 1024;
			HK.v = realloc(HK.v, HK.cap * sizeof(*HK.v));
			assert_non_null(HK.v);
		}
		struct hook_rcv *h = &HK.v[HK.n++];
		snprintf(h->id, sizeof(h->id), "%s", id);
		snprintf(h->current, sizeof(h->current), "%s", cur);
		h->cycle = cycle;
		pthread_mutex_unlock(&HK.lock);
	}
	json_decref(j);
	return;
bad:
	pthread_mutex_lock(&HK.lock);
	HK.bad++;
	pthread_mutex_unlock(&HK.lock);
	static const char no[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
				 "Connection: close\r\n\r\n";
	if (send(c, no, sizeof(no) - 1, MSG_NOSIGNAL) < 0)
		return;
}

static void *hook_loop(void *arg)
{
	for (;;) {
		int c = accept(HK.fd, NULL, NULL);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL; /* shut down */
		}
		/* The run that connected: read before the request, so a
		 * collector killed after sending is not taken for the next. */
		hook_serve(c, __atomic_load_n(&cur_cycle, __ATOMIC_SEQ_CST));
		close(c);
	}
}

static void hook_start(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);

	HK.fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(HK.fd >= 0);
	assert_int_equal(bind(HK.fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(HK.fd, (struct sockaddr *)&a, &l), 0);
	assert_int_equal(listen(HK.fd, 64), 0);
	HK.port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&HK.thread, NULL, hook_loop, NULL), 0);
}

static void hook_stop(void)
{
	if (HK.fd < 0)
		return;
	shutdown(HK.fd, SHUT_RDWR);
	pthread_join(HK.thread, NULL);
	close(HK.fd);
	HK.fd = -1;
	free(HK.v);
	HK.v = NULL;
	HK.n = HK.cap = 0;
}

static void create_alarm(void)
{
	char body[1024], *resp = NULL;
	long code;

	snprintf(body, sizeof(body),
		 "{\"name\":\"crash-flip\",\"metric\":\"crash.flip\",\"allow_unknown_metric\":true,"
		 "\"resource\":\"crash-res-00\",\"period\":60,"
		 "\"evaluation_periods\":1,\"comparison\":\"gt\",\"threshold\":50,"
		 "\"actions\":{\"alarm\":[\"http://127.0.0.1:%d/hook\"],"
		 "\"ok\":[\"http://127.0.0.1:%d/hook\"]}}",
		 HK.port, HK.port);
	code = h_post(&H, "/v1/alarms", body, &resp);
	if (code != 201)
		fail_msg("creating the alarm: HTTP %ld %s", code, resp ? resp : "");
	free(resp);
}

/* One statement's first column as an integer. */
static int64_t sql_int(const char *dbfile, const char *sql)
{
	sqlite3 *d = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (sqlite3_open_v2(dbfile, &d, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(d, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(d);
	return v;
}

/* Wait until the running collector's outbox has nothing pending. */
static int outbox_drained(int timeout_ms)
{
	char db[256];
	int64_t end = now_ms() + timeout_ms;

	snprintf(db, sizeof(db), "%s/alarms.db", H.data);
	while (now_ms() < end) {
		if (sql_int(db, "SELECT count(*) FROM outbox WHERE state = 0") == 0)
			return 1;
		usleep(50 * 1000);
	}
	return 0;
}

static void *alarm_rows; /* check_alarms's, freed by the teardown if it fails */

static int alarm_state_at(uint64_t n)
{
	return flip_at(n) > 50;
}

/* The alarm's history against the data and the receiver; see the top. */
static void check_alarms(uint64_t last, int kills)
{
	char db[256];
	sqlite3 *d = NULL;
	sqlite3_stmt *st = NULL;
	size_t ntr = 0, cap = 0, redelivered = 0, missing = 0;
	struct tr {
		int64_t time_ms;
		char id[80], prev[24], cur[24];
		int got;
	} *tr = NULL;

	free(alarm_rows); /* a failure below leaves them to the teardown */
	alarm_rows = NULL;

	snprintf(db, sizeof(db), "%s/alarms.db", H.data);
	assert_int_equal(sqlite3_open_v2(db, &d, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(d,
					    "SELECT time_ms, json_extract(detail, '$.notification_id'), "
					    "json_extract(detail, '$.previous'), json_extract(detail, '$.current') "
					    "FROM history WHERE type = 'transition' ORDER BY seq",
					    -1, &st, NULL),
			 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (ntr == cap) {
			cap = cap ? 2 * cap : 256;
			tr = realloc(tr, cap * sizeof(*tr));
			alarm_rows = tr;
			assert_non_null(tr);
		}
		struct tr *t = &tr[ntr++];
		memset(t, 0, sizeof(*t));
		t->time_ms = sqlite3_column_int64(st, 0);
		for (int c = 1; c <= 3; c++) {
			const char *v = (const char *)sqlite3_column_text(st, c);
			char *dst = c == 1 ? t->id : c == 2 ? t->prev
							    : t->cur;
			snprintf(dst, c == 1 ? sizeof(t->id) : sizeof(t->cur), "%s", v ? v : "");
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(d);
	assert_true(ntr >= 1);

	/* The history is the data's flips, each once, in order. A transition
	 * is stamped with the end of its deciding period: seq n's sample
	 * decides the period [minute_of(n), minute_of(n) + 60 s). */
	assert_string_equal(tr[0].prev, "insufficient_data");
	uint64_t first = 0, prev_n = 0;
	for (size_t i = 0; i < ntr; i++) {
		int64_t dt = tr[i].time_ms - 60000 - T0;
		if (dt <= 0 || dt % 60000)
			fail_msg("transition %zu at %lld: not the end of a period of "
				 "the data",
				 i, (long long)tr[i].time_ms);
		uint64_t n = (uint64_t)(dt / 60000);
		const char *want = alarm_state_at(n) ? "alarm" : "ok";
		if (strcmp(tr[i].cur, want))
			fail_msg("transition %zu (seq %llu): %s, the data says %s", i,
				 (unsigned long long)n, tr[i].cur, want);
		if (i == 0) {
			first = n;
		} else {
			if (n <= prev_n)
				fail_msg("transition %zu (seq %llu) after seq %llu: twice "
					 "or out of order",
					 i, (unsigned long long)n,
					 (unsigned long long)prev_n);
			if (strcmp(tr[i].prev, tr[i - 1].cur))
				fail_msg("transition %zu: from %s, but the state was %s",
					 i, tr[i].prev, tr[i - 1].cur);
			if (alarm_state_at(n) == alarm_state_at(n - 1))
				fail_msg("transition %zu at seq %llu: the data did not "
					 "flip there (its batch: run %d's ack %d; the "
					 "previous batch: run %d's ack %d)",
					 i, (unsigned long long)n, acked_run[n] - 1,
					 acked_nth[n], acked_run[n - 1] - 1, acked_nth[n - 1]);
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(tr[j].id, tr[i].id))
				fail_msg("notification id %s on two transitions", tr[i].id);
		prev_n = n;
	}
	/* Every flip of the acknowledged data after the first decision is
	 * a transition (the last period may still be open). */
	size_t k = 1;
	for (uint64_t n = first + 1; n < last; n++) {
		if (alarm_state_at(n) == alarm_state_at(n - 1))
			continue;
		while (k < ntr && tr[k].time_ms < minute_of(n) + 60000)
			k++;
		if (k >= ntr || tr[k].time_ms != minute_of(n) + 60000) {
			if (!missing++)
				print_message("# no transition for the flip at seq %llu "
					      "(its batch: run %d's ack %d)\n",
					      (unsigned long long)n, acked_run[n] - 1,
					      acked_nth[n]);
		}
	}

	/* The receiver: every transition's id answered 2xx, no other id,
	 * one id twice only across a kill (at-least-once, same key). */
	pthread_mutex_lock(&HK.lock);
	for (size_t i = 0; i < HK.n; i++) {
		struct hook_rcv *h = &HK.v[i];
		size_t j;
		for (j = 0; j < ntr && strcmp(tr[j].id, h->id); j++)
			;
		if (j == ntr)
			fail_msg("the receiver got notification %s (%s) that no "
				 "transition in the history has",
				 h->id, h->current);
		if (strcmp(tr[j].cur, h->current))
			fail_msg("notification %s says %s, its transition %s", h->id,
				 h->current, tr[j].cur);
		for (size_t p = 0; p < i; p++)
			if (!strcmp(HK.v[p].id, h->id)) {
				if (HK.v[p].cycle == h->cycle)
					fail_msg("notification %s acknowledged twice by "
						 "the receiver in one collector run (%d)",
						 h->id, h->cycle);
			}
		if (tr[j].got++)
			redelivered++;
	}
	size_t received = HK.n, bad = HK.bad;
	pthread_mutex_unlock(&HK.lock);
	for (size_t j = 0; j < ntr; j++)
		if (!tr[j].got)
			fail_msg("transition %zu (%s -> %s, notification %s) never "
				 "reached the webhook",
				 j, tr[j].prev, tr[j].cur, tr[j].id);
	print_message("# alarms: %zu transitions from seq %llu, %zu webhook deliveries "
		      "(%zu re-sent with the same id after a kill), %zu bad requests\n",
		      ntr, (unsigned long long)first, received, redelivered, bad);
	assert_int_equal(bad, 0);
	if (missing)
		fail_msg("%zu flips of the acknowledged data have no transition", missing);
	if (redelivered > (size_t)kills)
		fail_msg("%zu notifications re-sent, more than the %d kills", redelivered,
			 kills);
	free(tr);
	alarm_rows = NULL;
}

/* Compute usage in billing.db against what the batches 1..last said;
 * see the top. */
static void check_billing(uint64_t last)
{
	int64_t want[NRES][NFLAVOR] = {{0}}, got[NRES][NFLAVOR] = {{0}};
	int64_t want_total[NFLAVOR] = {0}, got_total[NFLAVOR] = {0};
	struct vg_bill_usage u = {0};
	char db[256], id[32], err[512];
	struct vg_db *d = NULL;
	int runs = 0, resizes = 0;

	for (int r = 0; r < NRES; r++)
		for (uint64_t n = 1; n < last; n++) {
			if (running_at(n, r) && running_at(n + 1, r))
				want[r][flavor_at(n, r)] += time_of(n + 1) - time_of(n);
			if (running_at(n + 1, r) && !running_at(n, r))
				runs++;
			if (flavor_at(n + 1, r) != flavor_at(n, r))
				resizes++;
		}
	snprintf(db, sizeof(db), "%s/billing.db", H.data);
	if (vg_bill_db_open(db, &d, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(vg_bill_usage_load(d, minute_of(0), minute_of(last) + 120000, NULL,
					    &u),
			 0);
	for (size_t i = 0; i < u.nsegs; i++) {
		const struct vg_bill_usage_seg *g = &u.segs[i];
		int r = -1, f;
		if (g->kind != VG_BILL_U_COMPUTE)
			continue;
		if (sscanf(u.res[g->res].id, "crash-res-%d", &r) != 1 || r < 0 || r >= NRES)
			fail_msg("compute usage for unknown resource %s", u.res[g->res].id);
		for (f = 0; f < NFLAVOR && (!g->flavor || strcmp(g->flavor, flavors[f])); f++)
			;
		if (f == NFLAVOR)
			fail_msg("%s: compute usage with flavor %s", u.res[g->res].id,
				 g->flavor ? g->flavor : "(none)");
		got[r][f] += g->end_ms - g->start_ms;
	}
	vg_bill_usage_clear(&u);
	vg_db_close(d);
	for (int r = 0; r < NRES; r++)
		for (int f = 0; f < NFLAVOR; f++) {
			res_id(r, id, sizeof(id));
			want_total[f] += want[r][f];
			got_total[f] += got[r][f];
			if (want[r][f] != got[r][f])
				fail_msg("%s %s: %lld ms of compute metered, the batches "
					 "say %lld",
					 id, flavors[f], (long long)got[r][f],
					 (long long)want[r][f]);
		}
	print_message("# billing: %lld s of %s and %lld s of %s over %llu minutes, "
		      "%d restarts and %d resizes, exact\n",
		      (long long)got_total[0] / 1000, flavors[0],
		      (long long)got_total[1] / 1000, flavors[1],
		      (unsigned long long)last, runs, resizes);
}

static void test_kill9_at_random(void **state)
{
	const char *cyc = getenv("CRASH_CYCLES");
	int cycles = cyc ? atoi(cyc) : 10, total = 0;
	uint64_t seq = 1;
	int rc;

	/* One simulated minute per batch, from 20 days back: a fast collector
	 * acknowledges thousands of batches per cycle (write-behind store), and
	 * none may pass now + max_future; the 30-day archive keeps them all. */
	T0 = ((int64_t)time(NULL) - 20 * 86400) / 60 * 60 * 1000;
	/* [agent] interval 60: the sender is an agent polling each minute;
	 * a restarted collector takes that as a series' rhythm until it has
	 * measured it, so the first batch after a restart closes its period
	 * (a kill right after its acknowledgement lost the flip it carried,
	 * and the transition came a period late). flush_depth 16: the storage thread writes every series every 16
	 * batches while the sender never pauses, so each kill finds series
	 * written to their files whose values the live journal segment
	 * still holds (the store never idles: the segment is never cut). */
	rc = h_init(&H, "[storage]\nstep = 60\nheartbeat = 600\narchives = 1m:30d\n"
			"flush_depth = 16\n"
			"[alarms]\nretry_initial = 0.2\nretry_max = 1\n"
			"[agent]\ninterval = 60\n");
	if (rc == -ENOENT)
		fail_msg("no %s: build it first (make all)", H.bin);
	assert_int_equal(rc, 0);
	srand((unsigned)time(NULL) ^ (unsigned)getpid());

	hook_start();

	for (int c = 0; c < cycles; c++) {
		__atomic_store_n(&cur_cycle, c, __ATOMIC_SEQ_CST);
		cur_run = c;
		cur_run_acks = 0;
		if ((rc = h_start(&H, unsigned_ok))) {
			char tail[512] = "";
			FILE *lf = fopen(H.log, "r");
			if (lf) {
				fseek(lf, -(long)sizeof(tail) + 1, SEEK_END);
				size_t got = fread(tail, 1, sizeof(tail) - 1, lf);
				tail[got] = '\0';
				fclose(lf);
			}
			fail_msg("restart %d failed: %s; the log ends:\n%s", c, strerror(-rc),
				 tail);
		}
		if (c == 0)
			create_alarm();
		const char *fixed = getenv("CRASH_DELAY_MS"); /* to reproduce */
		int delay_ms = fixed ? atoi(fixed) : 50 + rand() % 1450;
		pid_t killer = fork(), victim = H.pid;
		assert_true(killer >= 0);
		if (killer == 0) {
			usleep((useconds_t)delay_ms * 1000);
			kill(victim, SIGKILL);
			_exit(0);
		}
		int n = stream_until_dead(&seq, now_ms() + 20000);
		waitpid(killer, NULL, 0);
		if (H.pid > 0) { /* the deadline came first: should not happen */
			h_kill9(&H);
			fail_msg("cycle %d: the collector outlived its kill", c);
		}
		total += n;
		print_message("# cycle %d: killed after %d ms, %d batches acknowledged\n",
			      c, delay_ms, n);
	}
	/* Then two kills at a chosen moment: a run that stops just before a
	 * flip of the data, and a run that acknowledges the flip as its first
	 * and only batch. That batch's sample is each series' first after a
	 * restart (no rhythm measured yet): it must still close its period
	 * before it is acknowledged, or the kill loses the flip and the
	 * transition comes a period late (check_alarms). */
	for (int c = cycles; c < cycles + 2; c++) {
		__atomic_store_n(&cur_cycle, c, __ATOMIC_SEQ_CST);
		cur_run = c;
		cur_run_acks = 0;
		assert_int_equal(h_start(&H, unsigned_ok), 0);
		if (c == cycles)
			while (alarm_state_at(seq) == alarm_state_at(seq - 1))
				send_acked(seq++);
		else
			send_acked(seq++);
		h_kill9(&H);
		total += cur_run_acks;
		print_message("# cycle %d: killed after %d batches acknowledged (the "
			      "flip at seq %llu %s)\n",
			      c, cur_run_acks, (unsigned long long)seq - (c > cycles),
			      c > cycles ? "alone" : "next");
	}
	cycles += 2;
	uint64_t last = seq - 1;
	assert_true(last >= 2);

	/* The crashed state, as the last kill left it. */
	size_t checked = check_acked(last);
	n_rrd = n_rrd_bad = n_tmp = n_db = n_db_bad = 0;
	assert_int_equal(nftw(H.data, check_file, 16, FTW_PHYS), 0);
	print_message("# %d kills, %d batches acknowledged, %zu values checked, "
		      "%zu rrd files, %zu leftover .rrd.tmp, %zu databases\n",
		      cycles, total, checked, n_rrd, n_tmp, n_db);
	if (n_rrd_bad || n_db_bad)
		fail_msg("%zu rrd and %zu sqlite files unreadable; first: %s", n_rrd_bad,
			 n_db_bad, first_bad);
	assert_int_equal(n_rrd, NRES * (NMET + 1) + 1); /* + power.state, crash.flip */
	assert_true(n_db >= 1);

	/* A restarted collector takes the rest and agrees on the sequence;
	 * the last batch sent is acknowledged (so billing knows exactly what
	 * was sent), and the outbox is delivered before it stops. */
	__atomic_store_n(&cur_cycle, cycles, __ATOMIC_SEQ_CST);
	cur_run = cycles;
	cur_run_acks = 0;
	assert_int_equal(h_start(&H, unsigned_ok), 0);
	uint64_t before = seq;
	stream_until_dead(&seq, now_ms() + 1500);
	send_acked(seq++); /* the last one may have been sent unanswered */
	assert_true(seq > before);
	if (!outbox_drained(15000))
		fail_msg("the outbox still has notifications pending after 15 s");
	assert_int_equal(h_stop(&H), 0);
	{ /* every restart after a kill with values in the journal says so */
		FILE *lf = fopen(H.log, "r");
		char line[512];
		int recovered = 0;
		assert_non_null(lf);
		while (fgets(line, sizeof(line), lf))
			recovered += !!strstr(line, "recovered from an unclean stop");
		fclose(lf);
		print_message("# %d restarts logged a recovery\n", recovered);
		assert_true(recovered >= 1 && recovered <= cycles);
		/* no value was dropped by a restart's replay or a re-send */
		lf = fopen(H.log, "r");
		assert_non_null(lf);
		while (fgets(line, sizeof(line), lf)) {
			const char *w = strstr(line, "write errors ");
			if (strstr(line, "could not be written") ||
			    (w && strtoull(w + 13, NULL, 10) != 0))
				fail_msg("the collector lost values: %s", line);
		}
		fclose(lf);
	}
	char db[256], sql[128];
	sqlite3 *d = NULL;
	sqlite3_stmt *st = NULL;
	snprintf(db, sizeof(db), "%s/registry.db", H.data);
	snprintf(sql, sizeof(sql), "SELECT last_seq FROM streams WHERE host = '%s'", HOST);
	assert_int_equal(sqlite3_open(db, &d), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(d, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int64(st, 0), (int64_t)(seq - 1));
	sqlite3_finalize(st);
	sqlite3_close(d);
	check_alarms(seq - 1, cycles);
	check_billing(seq - 1);
	check_acked(seq - 1);
}

static int teardown(void **state)
{
	h_cleanup(&H);
	hook_stop();
	free(alarm_rows);
	alarm_rows = NULL;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_kill9_at_random, teardown),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
