/*
 * alarms_bench.c — how fast alarms are (docs/alarms.md, "Speed").
 *
 *   alarms_bench engine [--alarms 10000] [--series 10000] [--batches 20]
 *                       [--group-members 1000] [--step-s 60] [--warmup 2]
 *   alarms_bench e2e --collector-bin build/bin/vigie-collector
 *                    [--alarms 10000] [--series 10000] [--batches 10]
 *                    [--rounds 100] [--step-s 60] [--warmup 2] [--dir /dev/shm]
 *   alarms_bench burst --collector-bin build/bin/vigie-collector
 *                      [--alarms 1000] [--rounds 10] [--dir /dev/shm]
 *                      [--silences 100] [--group-members 1000]
 *
 * engine: in process, the cost the alarm engine adds to the receiver
 * thread. S single-resource alarms (3 of 3, gt 90) over S series, fed
 * batches of one sample per series and simulated minute (every batch
 * closes a period of every series: S evaluations per batch, some
 * transitions), against the same batches with no alarm defined. Prints the
 * time per batch (p50, p99) and samples per second for both. With
 * --group-members G (> 0), a third run: the same S alarms of which two are
 * group alarms (average > 70 for 3 of 3, and count of members above 90)
 * over the first G series (metadata metering.server_group=web), the rest
 * single-resource alarms: what one evaluation across G members per period
 * adds.
 *
 * e2e: the real collector (started here on loopback with a temporary data
 * directory and small RRD archives), for 0 alarms and then for --alarms:
 *  - ingestion: --batches closed-loop batches of --series samples over the
 *    wire, after two warm-up batches (RRD file creation): samples/s;
 *  - latency: with those alarms loaded, --rounds small batches that each
 *    flip a probe alarm (1 of 1, with a webhook to a receiver in this
 *    process and the PUB socket subscribed here); from just before the
 *    deciding batch is sent to the webhook request and to the PUB message:
 *    p50 and p99 (one monotonic clock).
 * burst: the real collector with --alarms threshold alarms (1 of 1, a
 * webhook to this process on alarm and ok) over as many series; every
 * batch carries one sample of each series, and --rounds batches in which
 * 60 alarms change state at once, then --rounds in which all of them do
 * (each sent once the previous burst was delivered). For every
 * notification, the time from just before its deciding batch is sent to
 * its webhook request and to its PUB message: p50, p99, and the last of
 * the burst (max), against the burst latency targets (p99 <= 10 ms for 60,
 * <= 100 ms for 1,000): verdict=ok or MISSED (never a failure). The second
 * shape changes all alarms, at most 1,000. --silences S adds S silences in
 * force that match none of the notifications (each is compared with all);
 * --group-members G puts the first G resources in server group web, with a
 * group alarm (average above 50, webhook) evaluated across them each
 * period beside the measured ones: the load the alarms' latency target
 * names (10,000 alarms, 1,000 group members, 100 silences).
 *
 * --step-s S (engine, e2e): S seconds of sample time between two batches
 * (default 60: every batch closes a one-minute period of every series,
 * the worst case; 10 is an agent's usual interval, one batch in six
 * closing periods). --warmup N: batches sent first and not measured
 * (default 2: the series' rhythm). e2e also reports the collector's CPU
 * (user + system, all threads, /proc) per ingested value over the
 * measured batches: the whole ingest path (decode, registry, store,
 * meter, alarms).
 *
 * ALARMS_BENCH_PROFILE (e2e): a shell command run over the measured
 * ingestion batches only, with $COLLECTOR_PID and $ALARMS (0 or --alarms)
 * set, stopped with SIGINT after the last one: e.g.
 *   ALARMS_BENCH_PROFILE='exec perf record -g -p $COLLECTOR_PID -o /tmp/p.$ALARMS'
 * profiles the collector with and without alarms on the same load.
 *
 * Output: "RESULT alarms_<what> key=value ..." lines on standard output.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <microhttpd.h>
#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>
#include <nanomsg/reqrep.h>

#include "vigie/alarm_engine.h"
#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/log.h"
#include "vigie/wire.h"

#define MIN_MS 60000LL

struct opts {
	int alarms, series, batches, rounds, group_members;
	const char *collector_bin, *dir;
	int silences; /* burst: active silences that match nothing (all scanned) */
	int step_s;   /* engine, e2e: seconds between two samples of a series */
	int warmup;   /* engine, e2e: batches sent before the measured ones */
};

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int64_t pct(int64_t *v, size_t n, double p)
{
	if (!n)
		return -1;
	qsort(v, n, sizeof(*v), cmp_i64);
	size_t i = (size_t)ceil(p / 100.0 * (double)n) - 1;
	return v[i < n ? i : n - 1];
}

/* CPU time (user + system, every thread) of process pid so far, in µs;
 * 0 if it cannot be read. */
static int64_t proc_cpu_us(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* after the command's closing parenthesis: state is field 3,
	 * utime and stime fields 14 and 15 */
	if (!(p = strrchr(buf, ')')) ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
		   &st) != 2)
		return 0;
	return (int64_t)((ut + st) * 1000000ULL / (unsigned long long)sysconf(_SC_CLK_TCK));
}

static int64_t cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A batch of one sample per series at time t; value pattern makes a few
 * percent of the series cross 90 each minute. */
static int g_group_members; /* the first G series are in server group web */

static struct vg_batch *make_batch(int series, int64_t t, uint64_t seq, int k,
				   const char *probe, double probe_value)
{
	struct vg_batch *b = vg_batch_new("bench-host", 1, seq, t);
	char id[32];

	for (int i = 0; i < series; i++) {
		snprintf(id, sizeof(id), "vm%d", i);
		vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, t);
		vg_batch_identity(b, "bench", NULL, "m1.small");
		if (i < g_group_members)
			vg_batch_attr(b, "metering.server_group", "web");
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE,
				(double)((i * 7 + k * 13) % 100));
	}
	if (probe) {
		vg_batch_resource(b, VG_RT_INSTANCE, probe, probe, NULL, t);
		vg_batch_identity(b, "bench", NULL, NULL);
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, probe_value);
	}
	return b;
}

/* ---- engine mode ------------------------------------------------------------ */

static int64_t g_fake_now;
static int64_t fake_now(void)
{
	return g_fake_now;
}

static void engine_run(const struct opts *o, int alarms, int groups, char *tmpl)
{
	struct vg_alarm_engine_options eo = {0};
	struct vg_alarm_engine *e;
	struct vg_alarm_engine_stats st;
	char dir[256], err[256], def[512], cmd[300];
	int64_t *us = calloc((size_t)o->batches, sizeof(int64_t)), total = 0, cpu = 0;
	int64_t t0 = (vg_now_ms() / MIN_MS - 1000) * MIN_MS;

	snprintf(dir, sizeof(dir), "%s", tmpl);
	if (!mkdtemp(dir)) {
		perror(dir);
		exit(1);
	}
	eo.data_dir = dir;
	eo.now_ms = fake_now;
	g_fake_now = t0;
	if (vg_alarm_engine_open(&eo, &e, err, sizeof(err))) {
		fprintf(stderr, "engine: %s\n", err);
		exit(1);
	}
	g_group_members = groups ? o->group_members : 0;
	for (int i = 0; i < alarms; i++) {
		json_t *body, *out = NULL, *errors = NULL;
		if (groups && i < 2)
			snprintf(def, sizeof(def),
				 "{\"name\":\"g%d\",\"project\":\"bench\",\"metric\":\"cpu.util\","
				 "\"selector\":{\"type\":\"instance\",\"metadata\":"
				 "{\"metering.server_group\":\"web\"}},\"group\":%s,"
				 "\"comparison\":\"gt\",\"threshold\":%s,"
				 "\"evaluation_periods\":3,\"datapoints_to_alarm\":3}",
				 i,
				 i ? "{\"statistic\":\"count_above\",\"member_threshold\":90}"
				   : "{\"statistic\":\"average\"}",
				 i ? "10" : "70");
		else
			snprintf(def, sizeof(def),
				 "{\"name\":\"a%d\",\"project\":\"bench\",\"metric\":\"cpu.util\","
				 "\"resource\":\"vm%d\",\"comparison\":\"gt\",\"threshold\":90,"
				 "\"evaluation_periods\":3,\"datapoints_to_alarm\":3}",
				 i,
				 i % o->series);
		body = json_loads(def, 0, NULL);
		if (vg_alarm_engine_create(e, body, NULL, &out, &errors)) {
			fprintf(stderr, "engine: cannot create alarm %d\n", i);
			exit(1);
		}
		json_decref(out);
		json_decref(body);
	}
	for (int k = -o->warmup; k < o->batches; k++) {
		int64_t t = t0 + 3 * MIN_MS + (int64_t)(k + o->warmup) * o->step_s * 1000;
		struct vg_batch *b = make_batch(o->series, t, (uint64_t)(k + o->warmup + 1), k,
						NULL, 0);
		g_fake_now = t + 100;
		int64_t a = (vg_monotonic_ns() / 1000), c0 = cpu_us();
		vg_alarm_engine_batch(e, b);
		int64_t d = (vg_monotonic_ns() / 1000) - a;
		if (k >= 0) { /* warm-up batches learn the rhythm, fill the rings */
			us[k] = d;
			total += d;
			cpu += cpu_us() - c0;
		}
		vg_batch_free(b);
	}
	vg_alarm_engine_get_stats(e, &st);
	printf("RESULT alarms_engine alarms=%d group_members=%d series=%d batches=%d "
	       "batch_us_p50=%" PRId64 " batch_us_p99=%" PRId64
	       " samples_per_s=%.0f evaluations=%" PRIu64 " transitions=%" PRIu64
	       " ns_per_sample=%.0f cpu_ns_per_sample=%.0f step_s=%d warmup=%d"
	       " state_writes=%" PRIu64 " quiet_evaluations=%" PRIu64
	       " logged_steps=%" PRIu64 "\n",
	       alarms, g_group_members, o->series, o->batches,
	       pct(us, (size_t)o->batches, 50),
	       pct(us, (size_t)o->batches, 99),
	       total ? (double)o->series * o->batches / ((double)total / 1e6) : 0,
	       st.evaluations, st.transitions,
	       (double)total * 1000.0 / ((double)o->series * o->batches),
	       (double)cpu * 1000.0 / ((double)o->series * o->batches), o->step_s,
	       o->warmup, st.state_writes, st.quiet_evaluations, st.logged_steps);
	fflush(stdout);
	vg_alarm_engine_close(e);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "engine: could not remove %s\n", dir);
	free(us);
}

/* ---- e2e mode ------------------------------------------------------------------ */

struct seen {
	pthread_mutex_t lock;
	int64_t *hook_us, *pub_us; /* per round, 0 until seen */
	int64_t t0;
	int rounds;
};
static struct seen g_seen;

/* Round of a notification from its "timestamp_ms" (end of the deciding
 * period of the probe): round k decides the period starting at
 * t0 + k minutes. -1 if not a probe notification. */
static int round_of(const char *body, size_t len)
{
	const char *p = memmem(body, len, "\"timestamp_ms\":", 15);
	const char *name = memmem(body, len, "\"alarm_name\":\"probe\"", 20);

	if (!p || !name)
		return -1;
	long long ts = strtoll(p + 15, NULL, 10);
	long long k = (ts - g_seen.t0) / MIN_MS - 1;
	return k >= 0 && k < g_seen.rounds ? (int)k : -1;
}

/* ---- burst mode: many alarms changing state in one batch ---------------------- */

struct burst {
	int active;
	int alarms, batches;
	int64_t t0;
	int64_t *hook_us, *pub_us;         /* [batch * alarms + alarm index], 0 = not seen */
	int64_t *hook_dec_us, *pub_dec_us; /* the same from the decision (wall clock) */
	int64_t *sent_us;                  /* per batch */
	int hook_dup, pub_dup;
};
static struct burst g_burst;

/* Batch and alarm index of a burst notification ("alarm_name":"b<i>",
 * period starting at t0 + k minutes). 0, or -1 if not one. */
static int burst_of(const char *body, size_t len, int *k, int *idx)
{
	const char *p = memmem(body, len, "\"timestamp_ms\":", 15);
	const char *n = memmem(body, len, "\"alarm_name\":\"b", 15);

	if (!p || !n || !g_burst.active)
		return -1;
	long long ts = strtoll(p + 15, NULL, 10);
	long long kk = (ts - g_burst.t0) / MIN_MS - 1;
	long i = strtol(n + 15, NULL, 10);
	if (kk < 0 || kk >= g_burst.batches || i < 0 || i >= g_burst.alarms)
		return -1;
	*k = (int)kk;
	*idx = (int)i;
	return 0;
}

/* Record the arrival of a notification on one channel (under g_seen.lock). */
static void burst_seen(int64_t *arr, int64_t *dec, int *dup, const char *body,
		       size_t len, int64_t t)
{
	const char *e = memmem(body, len, "\"evaluated_at_ms\":", 18);
	struct timespec ts;
	int k, i;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (burst_of(body, len, &k, &i))
		return;
	size_t at = (size_t)k * (size_t)g_burst.alarms + (size_t)i;
	if (arr[at]) {
		(*dup)++;
		return;
	}
	arr[at] = t;
	/* decision -> arrival on the wall clock (the decision is known to the
	 * millisecond: +-0.5 ms) */
	if (e)
		dec[at] = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 -
			  strtoll(e + 18, NULL, 10) * 1000 + 500;
}

struct hreq {
	char *body;
	size_t len;
};

static enum MHD_Result on_hook(void *cls, struct MHD_Connection *c, const char *url,
			       const char *method, const char *version,
			       const char *upload, size_t *size, void **con)
{
	struct hreq *q = *con;
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!q) {
		*con = calloc(1, sizeof(*q));
		return MHD_YES;
	}
	if (*size) {
		q->body = realloc(q->body, q->len + *size);
		memcpy(q->body + q->len, upload, *size);
		q->len += *size;
		*size = 0;
		return MHD_YES;
	}
	int64_t t = (vg_monotonic_ns() / 1000);
	int k = q->body ? round_of(q->body, q->len) : -1;
	pthread_mutex_lock(&g_seen.lock);
	if (k >= 0 && !g_seen.hook_us[k])
		g_seen.hook_us[k] = t;
	if (q->body && g_burst.active)
		burst_seen(g_burst.hook_us, g_burst.hook_dec_us, &g_burst.hook_dup, q->body, q->len, t);
	pthread_mutex_unlock(&g_seen.lock);
	r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static void on_hook_done(void *cls, struct MHD_Connection *c, void **con,
			 enum MHD_RequestTerminationCode t)
{
	struct hreq *q = *con;

	if (q) {
		free(q->body);
		free(q);
	}
	*con = NULL;
}

static volatile int g_sub_stop;

static void *subscriber(void *arg)
{
	int s = *(int *)arg;

	while (!g_sub_stop) {
		char *m = NULL;
		int n = nn_recv(s, &m, NN_MSG, 0);
		if (n < 0)
			continue; /* timeout */
		int64_t t = (vg_monotonic_ns() / 1000);
		int k = round_of(m, (size_t)n);
		pthread_mutex_lock(&g_seen.lock);
		if (k >= 0 && !g_seen.pub_us[k])
			g_seen.pub_us[k] = t;
		if (g_burst.active)
			burst_seen(g_burst.pub_us, g_burst.pub_dec_us, &g_burst.pub_dup, m, (size_t)n, t);
		pthread_mutex_unlock(&g_seen.lock);
		nn_freemsg(m);
	}
	return NULL;
}

static size_t sink(char *p, size_t s, size_t n, void *u)
{
	return s * n;
}

static struct curl_slist *g_auth; /* Authorization: Bearer <admin token> */

static long http(CURL *c, const char *method, const char *url, const char *body)
{
	long code = 0;

	curl_easy_setopt(c, CURLOPT_HTTPHEADER, g_auth);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	return code;
}

static int send_batch(int sock, struct vg_batch *b)
{
	uint8_t *buf;
	size_t len;
	char *reply = NULL;
	int n;

	if (vg_wire_encode(b, &buf, &len))
		return -1;
	n = nn_send(sock, buf, len, 0);
	free(buf);
	if (n < 0)
		return -1;
	n = nn_recv(sock, &reply, NN_MSG, 0);
	if (n < 0)
		return -1;
	nn_freemsg(reply);
	return 0;
}

/* Start a collector on loopback (data in a new directory under o->dir,
 * RRD archives 1m:1d, an admin token in g_auth). Its pid; dir, listen,
 * api and notify (64 bytes each) get its directory and addresses. */
static pid_t collector_up(const struct opts *o, char *dir, size_t dirlen,
			  char *listen, char *api, char *notify)
{
	char conf[600];
	int port = 20000 + (int)(vg_monotonic_ms() % 20000);
	pid_t pid;
	FILE *f;

	snprintf(dir, dirlen, "%s/vigie-alarms-bench.XXXXXX", o->dir);
	if (!mkdtemp(dir)) {
		perror(dir);
		exit(1);
	}
	snprintf(conf, sizeof(conf), "%s/vigie.conf", dir);
	f = fopen(conf, "w");
	fprintf(f, "[storage]\narchives = 1m:1d\n");
	fclose(f);
	snprintf(listen, 64, "tcp://127.0.0.1:%d", port);
	snprintf(api, 64, "127.0.0.1:%d", port + 1);
	snprintf(notify, 64, "tcp://127.0.0.1:%d", port + 2);
	/* an administrator token for the API, made offline */
	{
		char cmd[1400], line[256] = "", last[256] = "";
		FILE *p;
		snprintf(cmd, sizeof(cmd), "'%s' --data-dir '%s/data' token create --admin "
					   "2>/dev/null",
			 o->collector_bin, dir);
		if ((p = popen(cmd, "r"))) {
			while (fgets(line, sizeof(line), p))
				snprintf(last, sizeof(last), "%s", line);
			pclose(p);
		}
		last[strcspn(last, "\n")] = '\0';
		curl_slist_free_all(g_auth);
		g_auth = NULL;
		if (!strncmp(last, "vgt_", 4)) {
			char h[300];
			snprintf(h, sizeof(h), "Authorization: Bearer %s", last);
			g_auth = curl_slist_append(NULL, h);
		}
	}
	/* unsigned batches (this bench has no agent keys), when the
	 * collector knows the flag */
	int unsigned_ok = 0;
	{
		char cmd[700], line[256];
		FILE *p;
		snprintf(cmd, sizeof(cmd), "'%s' --help 2>&1", o->collector_bin);
		if ((p = popen(cmd, "r"))) {
			while (fgets(line, sizeof(line), p))
				if (strstr(line, "--allow-unsigned"))
					unsigned_ok = 1;
			pclose(p);
		}
	}
	pid = fork();
	if (pid == 0) {
		char data[600], log[600];
		snprintf(data, sizeof(data), "%s/data", dir);
		snprintf(log, sizeof(log), "%s/collector.log", dir);
		if (!freopen(log, "w", stderr))
			_exit(127);
		execl(o->collector_bin, o->collector_bin, "--listen", listen, "--http", api,
		      "--notify", notify, "--data-dir", data, "--config", conf,
		      "--log-level", "warn",
		      unsigned_ok ? "--allow-unsigned" : (char *)NULL, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* ALARMS_BENCH_PROFILE: a shell command run over the measured ingestion
 * batches of e2e only, with $COLLECTOR_PID and $ALARMS set (e.g.
 * 'perf record -g -p $COLLECTOR_PID -o /tmp/p.$ALARMS'), stopped with
 * SIGINT after the last batch. Its pid, or 0 when not set. */
static int g_alarms_now;
static pid_t profile_start(pid_t collector)
{
	const char *cmd = getenv("ALARMS_BENCH_PROFILE");
	char v[32];
	pid_t p;

	if (!cmd || !*cmd)
		return 0;
	snprintf(v, sizeof(v), "%d", (int)collector);
	setenv("COLLECTOR_PID", v, 1);
	snprintf(v, sizeof(v), "%d", g_alarms_now);
	setenv("ALARMS", v, 1);
	if ((p = fork()) == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	vg_sleep_ms(1000); /* let it attach */
	return p > 0 ? p : 0;
}

static void profile_stop(pid_t p)
{
	if (p <= 0)
		return;
	kill(p, SIGINT);
	waitpid(p, NULL, 0);
}

static void e2e_run(const struct opts *o, int alarms, const char *hook_url)
{
	char dir[512], api[64], listen[64], notify[64], url[128], def[512];
	int64_t *lat_hook = calloc((size_t)o->rounds, sizeof(int64_t));
	int64_t *lat_pub = calloc((size_t)o->rounds, sizeof(int64_t));
	int64_t *sent = calloc((size_t)o->rounds, sizeof(int64_t));
	size_t nh = 0, np = 0;
	int64_t t0 = (vg_now_ms() / MIN_MS - 10000) * MIN_MS;
	pid_t pid;
	CURL *c;
	int sock, sub, tmo = 1000;
	pthread_t th;

	g_alarms_now = alarms;
	pid = collector_up(o, dir, sizeof(dir), listen, api, notify);
	c = curl_easy_init();
	snprintf(url, sizeof(url), "http://%s/v1/health", api);
	for (int i = 0; i < 100 && http(c, "GET", url, NULL) != 200; i++)
		vg_sleep_ms(100);

	/* alarms: the load (3 of 3 on every series) and the probe (1 of 1) */
	snprintf(url, sizeof(url), "http://%s/v1/alarms", api);
	int64_t tc = vg_monotonic_ms();
	for (int i = 0; i < alarms; i++) {
		snprintf(def, sizeof(def),
			 "{\"name\":\"a%d\",\"project\":\"bench\",\"metric\":\"cpu.util\","
			 "\"resource\":\"vm%d\",\"comparison\":\"gt\",\"threshold\":90,"
			 "\"evaluation_periods\":3}",
			 i, i % o->series);
		if (http(c, "POST", url, def) != 201) {
			fprintf(stderr, "e2e: cannot create alarm %d\n", i);
			break;
		}
	}
	tc = vg_monotonic_ms() - tc;
	snprintf(def, sizeof(def),
		 "{\"name\":\"probe\",\"project\":\"bench\",\"metric\":\"cpu.util\","
		 "\"resource\":\"probe\",\"comparison\":\"gt\",\"threshold\":50,"
		 "\"actions\":{\"alarm\":[\"%s\"],\"ok\":[\"%s\"]}}",
		 hook_url, hook_url);
	if (http(c, "POST", url, def) != 201)
		fprintf(stderr, "e2e: cannot create the probe alarm (token %s)\n", g_auth ? "yes" : "no");

	sub = nn_socket(AF_SP, NN_SUB);
	nn_setsockopt(sub, NN_SUB, NN_SUB_SUBSCRIBE, "alarm.bench.probe", 17);
	nn_setsockopt(sub, NN_SOL_SOCKET, NN_RCVTIMEO, &tmo, sizeof(tmo));
	nn_connect(sub, notify);
	sock = nn_socket(AF_SP, NN_REQ);
	nn_connect(sock, listen);
	tmo = 30000;
	nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &tmo, sizeof(tmo));
	g_seen.t0 = t0;
	g_seen.rounds = o->rounds;
	g_seen.hook_us = calloc((size_t)o->rounds, sizeof(int64_t));
	g_seen.pub_us = calloc((size_t)o->rounds, sizeof(int64_t));
	g_sub_stop = 0;
	pthread_create(&th, NULL, subscriber, &sub);
	vg_sleep_ms(300);

	/* ingestion: warm-up (file creation), then closed loop */
	uint64_t seq = 1;
	int k = 0;
	for (int w = 0; w < o->warmup; w++, k++) {
		struct vg_batch *b = make_batch(o->series,
						t0 - 1000 * MIN_MS + (int64_t)k * o->step_s * 1000,
						seq++, k,
						NULL, 0);
		send_batch(sock, b);
		vg_batch_free(b);
	}
	pid_t prof = profile_start(pid);
	int64_t ti = (vg_monotonic_ns() / 1000), ci = proc_cpu_us(pid);
	for (int i = 0; i < o->batches; i++, k++) {
		struct vg_batch *b = make_batch(o->series,
						t0 - 1000 * MIN_MS + (int64_t)k * o->step_s * 1000,
						seq++, k,
						NULL, 0);
		send_batch(sock, b);
		vg_batch_free(b);
	}
	ti = (vg_monotonic_ns() / 1000) - ti;
	ci = proc_cpu_us(pid) - ci;
	profile_stop(prof);

	/* latency: each round flips the probe */
	for (int r = 0; r < o->rounds; r++, k++) {
		/* the deciding batch is a host's ordinary small batch; the
		 * loaded alarms are in memory and were evaluated above */
		struct vg_batch *b = make_batch(0, t0 + r * MIN_MS, seq++, k,
						"probe", r % 2 ? 10 : 90);
		sent[r] = (vg_monotonic_ns() / 1000);
		send_batch(sock, b);
		vg_batch_free(b);
		/* wait for both channels (bounded) so rounds do not overlap */
		for (int w = 0; w < 500; w++) {
			pthread_mutex_lock(&g_seen.lock);
			int done = r < 2 || (g_seen.hook_us[r] && g_seen.pub_us[r]);
			pthread_mutex_unlock(&g_seen.lock);
			if (done)
				break;
			vg_sleep_ms(1);
		}
	}
	vg_sleep_ms(200);
	g_sub_stop = 1;
	pthread_join(th, NULL);
	for (int r = 2; r < o->rounds; r++) { /* rounds 0-1 learn the rhythm */
		if (g_seen.hook_us[r])
			lat_hook[nh++] = g_seen.hook_us[r] - sent[r];
		if (g_seen.pub_us[r])
			lat_pub[np++] = g_seen.pub_us[r] - sent[r];
	}
	printf("RESULT alarms_e2e alarms=%d series=%d ingest_batches=%d "
	       "ingest_samples_per_s=%.0f create_alarms_ms=%" PRId64 " rounds=%d "
	       "hook_seen=%zu pub_seen=%zu hook_p50_ms=%.2f hook_p99_ms=%.2f "
	       "pub_p50_ms=%.2f pub_p99_ms=%.2f collector_cpu_us_per_value=%.3f "
	       "step_s=%d warmup=%d\n",
	       alarms, o->series, o->batches,
	       ti ? (double)o->series * o->batches / ((double)ti / 1e6) : 0, tc,
	       o->rounds - 2, nh, np, pct(lat_hook, nh, 50) / 1000.0,
	       pct(lat_hook, nh, 99) / 1000.0, pct(lat_pub, np, 50) / 1000.0,
	       pct(lat_pub, np, 99) / 1000.0,
	       (double)ci / ((double)o->series * o->batches), o->step_s, o->warmup);
	fflush(stdout);
	nn_close(sock);
	nn_close(sub);
	curl_easy_cleanup(c);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "e2e: could not remove %s\n", dir);
	free(g_seen.hook_us);
	free(g_seen.pub_us);
	free(lat_hook);
	free(lat_pub);
	free(sent);
}

/* One burst batch: resource vm<i> of n at time t, value v for i < flip,
 * 10 (below the threshold) for the others. */
static struct vg_batch *burst_batch(int n, int flip, double v, int64_t t, uint64_t seq)
{
	struct vg_batch *b = vg_batch_new("burst-host", 1, seq, t);
	char id[32];

	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "vm%d", i);
		vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, t);
		vg_batch_identity(b, "bench", NULL, "m1.small");
		if (i < g_group_members)
			vg_batch_attr(b, "metering.server_group", "web");
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, i < flip ? v : 10.0);
	}
	return b;
}

/* Wait (bounded) until `want` notifications of batch k arrived on both
 * channels. */
static void burst_wait(int k, int want, int bound_ms)
{
	for (int w = 0; w < bound_ms; w++) {
		int h = 0, p = 0;
		pthread_mutex_lock(&g_seen.lock);
		for (int i = 0; i < g_burst.alarms; i++) {
			size_t at = (size_t)k * (size_t)g_burst.alarms + (size_t)i;
			h += g_burst.hook_us[at] != 0;
			p += g_burst.pub_us[at] != 0;
		}
		pthread_mutex_unlock(&g_seen.lock);
		if (h >= want && p >= want)
			return;
		vg_sleep_ms(1);
	}
}

/* burst: o->alarms threshold alarms (1 of 1, webhook on alarm and ok) over
 * as many series, every batch carries one sample of each; batches in which
 * `changed` of them change state at once, --rounds times per shape, each
 * after the previous burst was fully delivered. Latency of every
 * notification from just before its deciding batch is sent. */
static void burst_run(const struct opts *o, const char *hook_url)
{
	int shapes[2] = {60, o->alarms < 1000 ? o->alarms : 1000};
	int rounds = o->rounds & ~1; /* even: ends in ok */
	double targets[2] = {10, 100};
	char dir[512], api[64], listen[64], notify[64], url[128], def[768];
	int64_t t0 = (vg_now_ms() / MIN_MS - 10000) * MIN_MS;
	int nb = 2 + 2 * rounds, sock, sub, tmo = 1000;
	uint64_t seq = 1;
	pthread_t th;
	pid_t pid;
	CURL *c;

	if (shapes[0] > o->alarms)
		shapes[0] = o->alarms;
	pid = collector_up(o, dir, sizeof(dir), listen, api, notify);
	c = curl_easy_init();
	snprintf(url, sizeof(url), "http://%s/v1/health", api);
	for (int i = 0; i < 100 && http(c, "GET", url, NULL) != 200; i++)
		vg_sleep_ms(100);
	snprintf(url, sizeof(url), "http://%s/v1/alarms", api);
	for (int i = 0; i < o->alarms; i++) {
		snprintf(def, sizeof(def),
			 "{\"name\":\"b%d\",\"project\":\"bench\",\"metric\":\"cpu.util\","
			 "\"resource\":\"vm%d\",\"comparison\":\"gt\",\"threshold\":50,"
			 "\"actions\":{\"alarm\":[\"%s\"],\"ok\":[\"%s\"]}}",
			 i, i,
			 hook_url, hook_url);
		if (http(c, "POST", url, def) != 201) {
			fprintf(stderr, "burst: cannot create alarm %d\n", i);
			break;
		}
	}
	/* a group alarm across the first G resources, notified like the others
	 * (its notifications are not among the measured ones) */
	g_group_members = o->group_members;
	if (o->group_members > 0) {
		snprintf(def, sizeof(def),
			 "{\"name\":\"group-web\",\"project\":\"bench\",\"metric\":\"cpu.util\","
			 "\"selector\":{\"type\":\"instance\",\"metadata\":"
			 "{\"metering.server_group\":\"web\"}},\"group\":{\"statistic\":\"average\"},"
			 "\"comparison\":\"gt\",\"threshold\":50,"
			 "\"actions\":{\"alarm\":[\"%s\"],\"ok\":[\"%s\"]}}",
			 hook_url, hook_url);
		if (http(c, "POST", url, def) != 201)
			fprintf(stderr, "burst: cannot create the group alarm\n");
	}
	/* silences in force that match none of the burst's notifications: the
	 * worst case, every notification is compared with every silence */
	snprintf(url, sizeof(url), "http://%s/v1/silences", api);
	for (int i = 0; i < o->silences; i++) {
		snprintf(def, sizeof(def),
			 "{\"matchers\":{\"project\":\"bench\",\"resource\":\"vm-none-%d\","
			 "\"severity\":\"critical\"},\"duration\":\"24h\","
			 "\"created_by\":\"bench\",\"comment\":\"latency with silences\"}",
			 i);
		if (http(c, "POST", url, def) != 201) {
			fprintf(stderr, "burst: cannot create silence %d\n", i);
			break;
		}
	}
	memset(&g_burst, 0, sizeof(g_burst));
	g_burst.alarms = o->alarms;
	g_burst.batches = nb;
	g_burst.t0 = t0;
	g_burst.hook_us = calloc((size_t)nb * (size_t)o->alarms, sizeof(int64_t));
	g_burst.pub_us = calloc((size_t)nb * (size_t)o->alarms, sizeof(int64_t));
	g_burst.hook_dec_us = calloc((size_t)nb * (size_t)o->alarms, sizeof(int64_t));
	g_burst.pub_dec_us = calloc((size_t)nb * (size_t)o->alarms, sizeof(int64_t));
	g_burst.sent_us = calloc((size_t)nb, sizeof(int64_t));
	g_burst.active = 1;
	sub = nn_socket(AF_SP, NN_SUB);
	nn_setsockopt(sub, NN_SUB, NN_SUB_SUBSCRIBE, "alarm.bench.b", 13);
	nn_setsockopt(sub, NN_SOL_SOCKET, NN_RCVTIMEO, &tmo, sizeof(tmo));
	nn_connect(sub, notify);
	sock = nn_socket(AF_SP, NN_REQ);
	nn_connect(sock, listen);
	tmo = 30000;
	nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &tmo, sizeof(tmo));
	g_sub_stop = 0;
	pthread_create(&th, NULL, subscriber, &sub);
	vg_sleep_ms(300);

	/* batches 0 and 1: every alarm leaves insufficient data for ok (a
	 * start-up burst, not measured); then the shapes */
	int k = 0;
	for (; k < 2; k++) {
		struct vg_batch *b = burst_batch(o->alarms, 0, 10, t0 + k * MIN_MS, seq++);
		g_burst.sent_us[k] = (vg_monotonic_ns() / 1000);
		send_batch(sock, b);
		vg_batch_free(b);
	}
	burst_wait(0, o->alarms, 30000);
	for (int sh = 0; sh < 2; sh++) {
		int first = k;
		for (int r = 0; r < rounds; r++, k++) {
			struct vg_batch *b = burst_batch(o->alarms, shapes[sh], r % 2 ? 10 : 90,
							 t0 + k * MIN_MS, seq++);
			g_burst.sent_us[k] = (vg_monotonic_ns() / 1000);
			send_batch(sock, b);
			vg_batch_free(b);
			burst_wait(k, shapes[sh], 10000);
		}
		/* every notification of this shape's batches: from the batch
		 * sent (b*) and from the decision (d*) */
		size_t cap = (size_t)rounds * (size_t)shapes[sh], nh = 0, np = 0, ndh = 0, ndp = 0;
		int64_t *lh = calloc(cap, sizeof(int64_t)), *lp = calloc(cap, sizeof(int64_t));
		int64_t *dh = calloc(cap, sizeof(int64_t)), *dp = calloc(cap, sizeof(int64_t));
		pthread_mutex_lock(&g_seen.lock);
		for (int kk = first; kk < k; kk++)
			for (int i = 0; i < shapes[sh]; i++) {
				size_t at = (size_t)kk * (size_t)o->alarms + (size_t)i;
				if (g_burst.hook_us[at] && nh < cap) {
					lh[nh++] = g_burst.hook_us[at] - g_burst.sent_us[kk];
					if (g_burst.hook_dec_us[at]) /* a collector older than evaluated_at_ms: none */
						dh[ndh++] = g_burst.hook_dec_us[at];
				}
				if (g_burst.pub_us[at] && np < cap) {
					lp[np++] = g_burst.pub_us[at] - g_burst.sent_us[kk];
					if (g_burst.pub_dec_us[at])
						dp[ndp++] = g_burst.pub_dec_us[at];
				}
			}
		int dup = g_burst.hook_dup;
		pthread_mutex_unlock(&g_seen.lock);
		double p99 = pct(dh, ndh, 99) / 1000.0;
		printf("RESULT alarms_burst alarms=%d silences=%d group_members=%d changed=%d "
		       "rounds=%d notifications=%zu "
		       "hook_seen=%zu hook_dup=%d pub_seen=%zu "
		       "decision_hook_p50_ms=%.2f decision_hook_p99_ms=%.2f "
		       "decision_pub_p50_ms=%.2f decision_pub_p99_ms=%.2f "
		       "batch_hook_p50_ms=%.2f batch_hook_p99_ms=%.2f batch_hook_max_ms=%.2f "
		       "batch_pub_p50_ms=%.2f batch_pub_p99_ms=%.2f "
		       "target_p99_ms=%.0f verdict=%s\n",
		       o->alarms, o->silences, o->group_members, shapes[sh], rounds, cap, nh,
		       dup, np,
		       pct(dh, ndh, 50) / 1000.0, p99, pct(dp, ndp, 50) / 1000.0,
		       pct(dp, ndp, 99) / 1000.0,
		       pct(lh, nh, 50) / 1000.0, pct(lh, nh, 99) / 1000.0,
		       pct(lh, nh, 100) / 1000.0,
		       pct(lp, np, 50) / 1000.0, pct(lp, np, 99) / 1000.0, targets[sh],
		       !ndh ? "n/a" : nh == cap && p99 <= targets[sh] ? "ok"
								      : "MISSED");
		fflush(stdout);
		free(dh);
		free(dp);
		free(lh);
		free(lp);
	}
	g_burst.active = 0;
	g_sub_stop = 1;
	pthread_join(th, NULL);
	nn_close(sock);
	nn_close(sub);
	curl_easy_cleanup(c);
	kill(pid, SIGTERM);
	struct rusage ru;
	int wst;
	if (wait4(pid, &wst, 0, &ru) == pid)
		printf("RESULT alarms_burst_cpu collector_cpu_s=%.2f (the whole run: "
		       "alarm creation, warm-up and every burst)\n",
		       (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
			       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "burst: could not remove %s\n", dir);
	free(g_burst.hook_us);
	free(g_burst.pub_us);
	free(g_burst.sent_us);
	free(g_burst.hook_dec_us);
	free(g_burst.pub_dec_us);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"alarms", required_argument, NULL, 'a'},
		{"series", required_argument, NULL, 's'},
		{"batches", required_argument, NULL, 'b'},
		{"rounds", required_argument, NULL, 'r'},
		{"collector-bin", required_argument, NULL, 'c'},
		{"dir", required_argument, NULL, 'd'},
		{"group-members", required_argument, NULL, 'g'},
		{"silences", required_argument, NULL, 'S'},
		{"step-s", required_argument, NULL, 't'},
		{"warmup", required_argument, NULL, 'w'},
		{NULL, 0, NULL, 0},
	};
	struct opts o = {10000, 10000, 20, 100, 0, NULL, "/dev/shm", 0, 60, 2};
	const char *mode = argc > 1 ? argv[1] : "";
	int ch;

	optind = 2;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'a': o.alarms = atoi(optarg); break;
		case 's': o.series = atoi(optarg); break;
		case 'b': o.batches = atoi(optarg); break;
		case 'r': o.rounds = atoi(optarg); break;
		case 'c': o.collector_bin = optarg; break;
		case 'd': o.dir = optarg; break;
		case 'g': o.group_members = atoi(optarg); break;
		case 'S': o.silences = atoi(optarg); break;
		case 't': o.step_s = atoi(optarg); break;
		case 'w': o.warmup = atoi(optarg); break;
		default: return 2;
		}
	}
	if (o.series < 1 || o.batches < 1 || o.rounds < 3 || o.alarms < 0 ||
	    o.step_s < 1 || o.step_s > 60 || o.warmup < 2) {
		fprintf(stderr, "alarms_bench: bad sizes\n");
		return 2;
	}
	vg_log_init("alarms_bench", VG_LOG_ERROR);
	pthread_mutex_init(&g_seen.lock, NULL);
	if (!strcmp(mode, "engine")) {
		char tmpl[512];
		snprintf(tmpl, sizeof(tmpl), "%s/vigie-alarms-engine.XXXXXX", o.dir);
		engine_run(&o, 0, 0, tmpl);
		engine_run(&o, o.alarms, 0, tmpl);
		if (o.group_members > 0 && o.alarms >= 2)
			engine_run(&o, o.alarms, 1, tmpl);
		return 0;
	}
	if ((!strcmp(mode, "e2e") || !strcmp(mode, "burst")) && o.collector_bin) {
		struct MHD_Daemon *d;
		char hook[128];
		curl_global_init(CURL_GLOBAL_DEFAULT);
		d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL,
				     NULL, on_hook, NULL, MHD_OPTION_NOTIFY_COMPLETED,
				     on_hook_done, NULL, MHD_OPTION_END);
		if (!d) {
			fprintf(stderr, "alarms_bench: cannot start the webhook receiver\n");
			return 1;
		}
		snprintf(hook, sizeof(hook), "http://127.0.0.1:%u/hook",
			 MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port);
		if (!strcmp(mode, "burst")) {
			burst_run(&o, hook);
		} else {
			e2e_run(&o, 0, hook);
			e2e_run(&o, o.alarms, hook);
		}
		MHD_stop_daemon(d);
		return 0;
	}
	fprintf(stderr, "usage: alarms_bench engine [--alarms N] [--series N] "
			"[--batches N] [--group-members N] [--step-s S] [--warmup N] [--dir D]\n"
			"       alarms_bench e2e --collector-bin PATH [--alarms N] [--series N] "
			"[--batches N] [--rounds N] [--step-s S] [--warmup N] [--dir D]\n"
			"       alarms_bench burst --collector-bin PATH [--alarms 1000] "
			"[--rounds 10] [--dir D] [--silences N] [--group-members N]\n");
	return 2;
}
