/*
 * fleet.c — the fleet simulator: H compute hosts x I instances speaking
 * the real wire protocol to a vigie-collector, then checking that every
 * acknowledged value was stored.
 *
 * Design. Every simulated host builds one batch per poll with vg_batch_*
 * (its host resource with a host disk and NIC, then each instance with its
 * vCPUs, disks and NICs, every metric of the catalogue, common/catalog.c)
 * and encodes it with vg_wire_encode, exactly as vigie-agent does. Each host
 * has its own NN_REQ socket and an in-memory spool; it sends the oldest
 * spooled batch, waits for the acknowledgement, and on RETRY or no answer
 * within --ack-timeout-ms backs off (100 ms doubling to 5 s) and re-sends
 * the same batch, like agent/sender.c. Hosts are spread over --threads
 * threads that multiplex their sockets with nn_poll.
 *
 * Time is simulated: poll k of every host is at start + (k+1) * interval,
 * so a simulated hour takes seconds. Two ways to offer load:
 *  - closed loop (--speed 0): a host makes its next poll as soon as the
 *    previous one is acknowledged: the collector's sustained ingest rate.
 *  - paced (--speed X): X simulated seconds per wall second, whatever the
 *    acks do; what the collector cannot take waits in the spool (bounded by
 *    --spool-max, oldest dropped and counted) — the backpressure test.
 * A run is: warm-up (--warmup-polls per host, closed loop: creates the
 * files), the measured phase (--seconds or --polls), then a drain until
 * every spooled batch is acknowledged.
 *
 * Values are a pure function of (series, time), so the check can recompute
 * them: a gauge is constant within each 60 s RRD step, a counter grows at a
 * rate constant within each step; the expected 1-minute AVERAGE of a step
 * is therefore exact. After the collector stopped (--stop sends it SIGTERM
 * and waits), --verify DIR checks on every file that rrd_lastupdate_r gives
 * the host's last acknowledged time and value, fetches --sample series with
 * rrd_fetch_r and compares every complete step, and compares the collector's
 * "values written" count (its exit log line, --collector-log) with the
 * number of values acknowledged: lost must be 0.
 *
 * Measurements of the collector (--collector-pid): CPU seconds from
 * /proc/<pid>/stat over the measured phase (including the final flush at
 * stop; collector_cpu_phase_s without it), peak RSS from VmHWM in
 * /proc/<pid>/status before the stop. --server-pid PID (a database server
 * the collector uses, e.g. PostgreSQL's postmaster): that process's CPU
 * with its children's (bench_tree_cpu_s), sampled at the same instants:
 * server_cpu_s over the measured phase and the stop, server_cpu_phase_s
 * over the measured phase alone.
 *
 * Output: "RESULT fleet key=value ..." on standard output; progress and
 * problems on standard error. Exit status 0 only if nothing was lost, no
 * check failed and no batch was rejected.
 *
 * Why one file (~1,250 lines): it is one program (each file of bench/ is a
 * binary), and its parts share the simulated model: the value functions
 * that write the batches are the ones the verification recomputes.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <rrd.h>

#include "vigie/batch.h"
#include "vigie/catalog.h"
#include "vigie/clock.h"
#include "vigie/config.h"
#include "vigie/store.h"
#include "vigie/wire.h"
#include "bench/bench_cpu.h"

#define STEP_S 60 /* the values' shape assumes the store's 60 s step */
#define MAX_METRICS 256

/* ---- options --------------------------------------------------------------- */

struct opts {
	const char *url, *label, *verify_dir, *config, *collector_log, *pid_file;
	int hosts, instances, vcpus, disks, nics, host_disks, host_nics;
	long series;
	int interval_s;
	int64_t start_s;
	int warmup_polls;
	double seconds;
	long polls;
	double speed;
	int threads;
	int ack_timeout_ms, backoff_min_ms, backoff_max_ms;
	int spool_max;
	double drain_timeout_s, stop_timeout_s;
	int collector_pid;
	long server_pid;
	int stop;
	int sample;
	int verbose;
};

static struct opts O;

/* ---- the model: which series a host reports -------------------------------- */

struct metric {
	char name[64];
	uint8_t kind;
};

struct mlist {
	struct metric m[MAX_METRICS];
	int n;
};

/* Metrics per resource type, from the catalogue. */
static struct mlist M[VG_RT_MAX + 1];

static int series_per_instance(void)
{
	return M[VG_RT_INSTANCE].n + O.disks * M[VG_RT_DISK].n +
	       O.nics * M[VG_RT_NIC].n;
}

static int series_per_host(void)
{
	return M[VG_RT_HOST].n + O.host_disks * M[VG_RT_HOST_DISK].n +
	       O.host_nics * M[VG_RT_HOST_NIC].n +
	       O.instances * series_per_instance();
}

static int add_metric(int rtype, const char *name, int kind)
{
	struct mlist *l = &M[rtype];

	if (l->n >= MAX_METRICS || strlen(name) >= sizeof(l->m[0].name))
		return -E2BIG;
	snprintf(l->m[l->n].name, sizeof(l->m[0].name), "%s", name);
	l->m[l->n].kind = (uint8_t)kind;
	l->n++;
	return 0;
}

/* Fill M from the catalogue; "vcpu.N.time" becomes one metric per vCPU. */
static int build_model(void)
{
	for (const struct vg_metric_def *d = vg_catalog; d->name; d++) {
		const char *n = strstr(d->name, ".N.");
		if (d->rtype < 1 || d->rtype > VG_RT_MAX)
			continue;
		if (n) {
			for (int k = 0; k < (d->rtype == VG_RT_INSTANCE ? O.vcpus : 1); k++) {
				char name[64];
				snprintf(name, sizeof(name), "%.*s.%d%s",
					 (int)(n - d->name), d->name, k, n + 2);
				if (add_metric(d->rtype, name, d->kind))
					return -E2BIG;
			}
		} else if (add_metric(d->rtype, d->name, d->kind)) {
			return -E2BIG;
		}
	}
	/* the agent's types (a custom resource has no catalogue metrics) */
	for (int t = 1; t <= VG_RT_WIRE_MAX; t++)
		if (!M[t].n)
			return -ENOENT;
	return 0;
}

/* ---- deterministic values ---------------------------------------------------- */

/* End of the RRD step that contains t, i.e. the step t's update falls in:
 * updates at (E-60, E] consolidate into the point ending at E. */
static int64_t step_end(int64_t t)
{
	return (t + STEP_S - 1) / STEP_S * STEP_S;
}

static double gauge_at(uint64_t sid, int64_t t)
{
	uint64_t e = (uint64_t)(step_end(t) / STEP_S);

	return (double)((sid * 2654435761u + e * 40503u) % 100000u) / 8.0;
}

/* A counter's rate (per second) during the step ending at E. */
static double rate_in(uint64_t sid, int64_t e_s)
{
	return (double)(1 + (sid * 31u + (uint64_t)(e_s / STEP_S)) % 97u);
}

static double counter_base(uint64_t sid)
{
	return (double)(sid % 1000003u) * 1000.0;
}

/* Time of poll k (0-based). */
static int64_t poll_time(long k)
{
	return O.start_s + (int64_t)(k + 1) * O.interval_s;
}

/* Counter value at poll k (pure function; generation keeps it running). */
static double counter_at(uint64_t sid, long k)
{
	double c = counter_base(sid);

	for (long j = 1; j <= k; j++)
		c += rate_in(sid, step_end(poll_time(j))) * O.interval_s;
	return c;
}

/* ---- hosts ------------------------------------------------------------------- */

struct pending {
	uint8_t *buf;
	size_t len;
	uint64_t seq;
	uint32_t nsamples;
	long poll;
};

struct host {
	int idx;
	char name[64];
	int sock;
	uint64_t stream;
	uint64_t sid0;   /* global id of this host's first series */
	char (*ids)[80]; /* resource ids, in batch order */
	double *counter; /* running counter value per series (or 0) */
	long polls_made; /* polls generated (next poll index) */
	long last_acked; /* poll index of the last acknowledged, -1 */
	/* spool: ring of pending batches, oldest at head */
	struct pending *q;
	int qhead, qlen;
	int inflight;
	int64_t deadline_ms, next_try_ms, backoff_ms;
	/* counters */
	uint64_t values_acked, batches_acked, batches_dup, sends, timeouts,
		retries, rejected, bad_acks, dropped_batches, dropped_values,
		spool_peak;
};

static struct host *H;
static long g_series_per_host;

static int host_init(struct host *h, int idx)
{
	int nres = 1 + O.host_disks + O.host_nics +
		   O.instances * (1 + O.disks + O.nics);
	int r = 0, ivl = 3600 * 1000, maxsz = -1;

	h->idx = idx;
	snprintf(h->name, sizeof(h->name), "sim-compute-%04d", idx);
	h->stream = ((uint64_t)getpid() << 32) ^ ((uint64_t)idx * 0x9e3779b97f4a7c15ull) ^
		    (uint64_t)time(NULL);
	h->sid0 = (uint64_t)idx * (uint64_t)g_series_per_host;
	h->last_acked = -1;
	h->backoff_ms = O.backoff_min_ms;
	if (!(h->ids = calloc((size_t)nres, sizeof(*h->ids))) ||
	    !(h->counter = calloc((size_t)g_series_per_host, sizeof(double))) ||
	    !(h->q = calloc((size_t)O.spool_max, sizeof(*h->q))))
		return -ENOMEM;
	snprintf(h->ids[r++], sizeof(h->ids[0]), "%s", h->name);
	for (int d = 0; d < O.host_disks; d++)
		snprintf(h->ids[r++], sizeof(h->ids[0]), "%s-sd%c", h->name, 'a' + d % 26);
	for (int n = 0; n < O.host_nics; n++)
		snprintf(h->ids[r++], sizeof(h->ids[0]), "%s-eth%d", h->name, n);
	for (int i = 0; i < O.instances; i++) {
		char uuid[40];
		snprintf(uuid, sizeof(uuid), "5a4e0000-%04x-4000-8000-%012x",
			 idx & 0xffff, i);
		snprintf(h->ids[r++], sizeof(h->ids[0]), "%s", uuid);
		for (int d = 0; d < O.disks; d++)
			snprintf(h->ids[r++], sizeof(h->ids[0]), "%s-vd%c", uuid, 'a' + d % 26);
		for (int n = 0; n < O.nics; n++)
			snprintf(h->ids[r++], sizeof(h->ids[0]), "%s-tap%d", uuid, n);
	}
	for (long s = 0; s < g_series_per_host; s++)
		h->counter[s] = counter_base(h->sid0 + (uint64_t)s);

	h->sock = nn_socket(AF_SP, NN_REQ);
	if (h->sock < 0)
		return -errno;
	nn_setsockopt(h->sock, NN_REQ, NN_REQ_RESEND_IVL, &ivl, sizeof(ivl));
	nn_setsockopt(h->sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, &maxsz, sizeof(maxsz));
	if (nn_connect(h->sock, O.url) < 0)
		return -errno;
	return 0;
}

/* Walk the series of a host in batch order: calls fn for every resource
 * (sample index -1) and every series. Used by generation and by the check,
 * so both agree on what series s of host h is. */
struct walk {
	int rtype;
	const char *id, *parent;
	const struct metric *m; /* NULL for the resource itself */
	long s;                 /* series index within the host */
};

typedef int (*walk_fn)(void *ctx, const struct walk *w);

static int walk_host(const struct host *h, walk_fn fn, void *ctx)
{
	struct walk w = {0};
	int r = 0, rc;

#define RES(type, parent_)                            \
	do {                                          \
		w.rtype = (type);                     \
		w.id = h->ids[r++];                   \
		w.parent = (parent_);                 \
		w.m = NULL;                           \
		if ((rc = fn(ctx, &w)))               \
			return rc;                    \
		for (int k = 0; k < M[type].n; k++) { \
			w.m = &M[type].m[k];          \
			if ((rc = fn(ctx, &w)))       \
				return rc;            \
			w.s++;                        \
		}                                     \
	} while (0)

	RES(VG_RT_HOST, NULL);
	for (int d = 0; d < O.host_disks; d++)
		RES(VG_RT_HOST_DISK, h->ids[0]);
	for (int n = 0; n < O.host_nics; n++)
		RES(VG_RT_HOST_NIC, h->ids[0]);
	for (int i = 0; i < O.instances; i++) {
		const char *inst = h->ids[r];
		RES(VG_RT_INSTANCE, NULL);
		for (int d = 0; d < O.disks; d++)
			RES(VG_RT_DISK, inst);
		for (int n = 0; n < O.nics; n++)
			RES(VG_RT_NIC, inst);
	}
#undef RES
	return 0;
}

struct gen_ctx {
	struct host *h;
	struct vg_batch *b;
	int64_t t_s;
	long k;
};

static int gen_one(void *ctx, const struct walk *w)
{
	struct gen_ctx *g = ctx;
	int64_t t_ms = g->t_s * 1000;

	if (!w->m) {
		char name[16];
		const char *sl = strrchr(w->id, '-');
		snprintf(name, sizeof(name), "%s", sl && w->parent ? sl + 1 : "vm");
		if (!vg_batch_resource(g->b, (uint8_t)w->rtype, w->id,
				       w->rtype == VG_RT_HOST ? w->id : name,
				       w->parent, t_ms))
			return -ENOMEM;
		if (w->rtype == VG_RT_INSTANCE &&
		    vg_batch_identity(g->b, "bench-project", "bench-user", "m1.small"))
			return -ENOMEM;
		return 0;
	}
	uint64_t sid = g->h->sid0 + (uint64_t)w->s;
	double v;
	if (w->m->kind == VG_KIND_COUNTER) {
		if (g->k > 0)
			g->h->counter[w->s] += rate_in(sid, step_end(g->t_s)) * O.interval_s;
		v = g->h->counter[w->s];
	} else {
		v = gauge_at(sid, g->t_s);
	}
	return vg_batch_sample(g->b, w->m->name, w->m->kind, v);
}

/* Make poll h->polls_made and append it to the spool. */
static int generate(struct host *h)
{
	struct gen_ctx g = {.h = h, .k = h->polls_made};
	struct pending *p;
	int rc;

	g.t_s = poll_time(g.k);
	g.b = vg_batch_new(h->name, h->stream, (uint64_t)g.k + 1, g.t_s * 1000);
	if (!g.b)
		return -ENOMEM;
	if ((rc = walk_host(h, gen_one, &g))) {
		vg_batch_free(g.b);
		return rc;
	}
	if (h->qlen == O.spool_max) {
		/* Spool full: drop the oldest batch not in flight, as the
		 * agent does. Counted; these values are never acknowledged. */
		int at = h->inflight ? 1 : 0;
		if (at >= h->qlen) {
			vg_batch_free(g.b);
			return -ENOSPC;
		}
		struct pending *d = &h->q[(h->qhead + at) % O.spool_max];
		h->dropped_batches++;
		h->dropped_values += d->nsamples;
		free(d->buf);
		for (int i = at; i + 1 < h->qlen; i++)
			h->q[(h->qhead + i) % O.spool_max] =
				h->q[(h->qhead + i + 1) % O.spool_max];
		h->qlen--;
	}
	p = &h->q[(h->qhead + h->qlen) % O.spool_max];
	rc = vg_wire_encode(g.b, &p->buf, &p->len);
	p->seq = (uint64_t)g.k + 1;
	p->nsamples = (uint32_t)g.b->nsamples;
	p->poll = g.k;
	vg_batch_free(g.b);
	if (rc)
		return rc;
	h->qlen++;
	if ((uint64_t)h->qlen > h->spool_peak)
		h->spool_peak = (uint64_t)h->qlen;
	h->polls_made++;
	return 0;
}

static void send_oldest(struct host *h, int64_t now)
{
	struct pending *p = &h->q[h->qhead];

	h->sends++;
	if (nn_send(h->sock, p->buf, p->len, NN_DONTWAIT) < 0) {
		/* Not connected yet or pipe full: try again shortly. */
		h->next_try_ms = now + 10;
		return;
	}
	h->inflight = 1;
	h->deadline_ms = now + O.ack_timeout_ms;
}

static void backoff(struct host *h, int64_t now)
{
	h->inflight = 0;
	h->next_try_ms = now + h->backoff_ms;
	h->backoff_ms *= 2;
	if (h->backoff_ms > O.backoff_max_ms)
		h->backoff_ms = O.backoff_max_ms;
}

static void on_reply(struct host *h, int64_t now)
{
	void *msg = NULL;
	struct vg_ack ack;
	struct pending *p = &h->q[h->qhead];
	int n = nn_recv(h->sock, &msg, NN_MSG, NN_DONTWAIT);

	if (n < 0)
		return;
	if (vg_wire_ack_decode(msg, (size_t)n, &ack) || !h->inflight ||
	    ack.stream != h->stream || ack.seq != p->seq) {
		nn_freemsg(msg);
		h->bad_acks++;
		return;
	}
	nn_freemsg(msg);
	switch (ack.status) {
	case VG_ACK_OK:
	case VG_ACK_DUPLICATE:
		if (ack.status == VG_ACK_DUPLICATE)
			h->batches_dup++;
		h->batches_acked++;
		h->values_acked += p->nsamples;
		h->last_acked = p->poll;
		free(p->buf);
		h->qhead = (h->qhead + 1) % O.spool_max;
		h->qlen--;
		h->inflight = 0;
		h->backoff_ms = O.backoff_min_ms;
		h->next_try_ms = 0;
		break;
	case VG_ACK_RETRY:
		h->retries++;
		backoff(h, now);
		break;
	case VG_ACK_REJECTED:
	default:
		/* Never resend as is: drop it (an agent keeps it aside). */
		h->rejected++;
		free(p->buf);
		h->qhead = (h->qhead + 1) % O.spool_max;
		h->qlen--;
		h->inflight = 0;
		break;
	}
}

/* ---- threads and phases -------------------------------------------------------- */

enum { PH_WARMUP,
       PH_MEASURE };

struct worker {
	pthread_t th;
	int first, step; /* hosts first, first+step, ... */
	int err;
};

static pthread_barrier_t g_bar;
static volatile int g_stop_gen; /* measured phase: stop making polls */
static double g_gen_t0;         /* wall start of the measured phase */
static volatile int g_abort;

/* Run one phase for this worker's hosts. Warm-up: closed loop up to
 * warmup_polls. Measure: closed loop or paced until g_stop_gen or
 * warmup+polls. Both end with every spool empty (or the drain deadline). */
static int run_phase(struct worker *w, int phase)
{
	int nh = 0;
	struct nn_pollfd *pfd;
	struct host **ph;
	long limit = phase == PH_WARMUP ? O.warmup_polls
		     : O.polls > 0      ? O.warmup_polls + O.polls
					: LONG_MAX;
	long base_polls = O.warmup_polls;
	int64_t drain_deadline = 0;

	for (int i = w->first; i < O.hosts; i += w->step)
		nh++;
	pfd = calloc((size_t)nh, sizeof(*pfd));
	ph = calloc((size_t)nh, sizeof(*ph));
	if (!pfd || !ph)
		return -ENOMEM;
	for (;;) {
		int64_t now = vg_monotonic_ms(), wake = now + 50;
		int busy = 0, np = 0, gen_open;

		gen_open = phase == PH_WARMUP || !g_stop_gen;
		if (g_abort)
			break;
		if (!gen_open && !drain_deadline)
			drain_deadline = now + (int64_t)(O.drain_timeout_s * 1000);
		for (int i = w->first; i < O.hosts; i += w->step) {
			struct host *h = &H[i];
			int rc;

			/* Generation. */
			if (gen_open && h->polls_made < limit) {
				if (phase == PH_MEASURE && O.speed > 0) {
					double due = g_gen_t0 +
						     (double)(h->polls_made - base_polls) *
							     O.interval_s / O.speed;
					double t = (vg_monotonic_ns() / 1e9);
					while (h->polls_made < limit && t >= due) {
						if ((rc = generate(h)) && rc != -ENOSPC)
							return rc;
						due += O.interval_s / O.speed;
					}
					int64_t dm = now + (int64_t)((due - t) * 1000) + 1;
					if (dm < wake)
						wake = dm;
				} else if (!h->qlen) {
					if ((rc = generate(h)))
						return rc;
				}
			}
			/* Sending. */
			if (h->inflight && now >= h->deadline_ms) {
				h->timeouts++;
				backoff(h, now);
			}
			if (!h->inflight && h->qlen && now >= h->next_try_ms)
				send_oldest(h, now);
			if (h->inflight) {
				if (h->deadline_ms < wake)
					wake = h->deadline_ms;
				pfd[np].fd = h->sock;
				pfd[np].events = NN_POLLIN;
				pfd[np].revents = 0;
				ph[np++] = h;
			} else if (h->qlen && h->next_try_ms < wake) {
				wake = h->next_try_ms;
			}
			if (h->qlen || (gen_open && h->polls_made < limit))
				busy = 1;
		}
		if (!busy)
			break;
		if (drain_deadline && now >= drain_deadline) {
			fprintf(stderr, "fleet: drain timed out with batches unacknowledged\n");
			break;
		}
		int timeout = (int)(wake - now);
		if (timeout < 0)
			timeout = 0;
		if (!np) {
			if (timeout)
				usleep((useconds_t)timeout * 1000);
			continue;
		}
		int r = nn_poll(pfd, np, timeout);
		if (r <= 0)
			continue;
		now = vg_monotonic_ms();
		for (int k = 0; k < np; k++)
			if (pfd[k].revents & NN_POLLIN)
				on_reply(ph[k], now);
	}
	free(pfd);
	free(ph);
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	w->err = run_phase(w, PH_WARMUP);
	if (w->err)
		g_abort = 1;
	pthread_barrier_wait(&g_bar); /* warm-up done */
	pthread_barrier_wait(&g_bar); /* main took the start figures */
	if (!g_abort && (w->err = run_phase(w, PH_MEASURE)))
		g_abort = 1;
	pthread_barrier_wait(&g_bar); /* measured phase done */
	return NULL;
}

/* ---- the collector process ------------------------------------------------------- */

/* The collector's pid now: --pid-file if given (re-read), else --collector-pid. */
static int collector_pid(void)
{
	FILE *f;
	int pid = 0;

	if (!O.pid_file)
		return O.collector_pid;
	if ((f = fopen(O.pid_file, "r"))) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return pid > 0 ? pid : O.collector_pid;
}

/* A "Key:   123 kB" line of /proc/<pid>/status, in kB; -1 if absent. */
static long proc_status_kb(int pid, const char *key)
{
	char path[64], line[256];
	size_t kl = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* SIGTERM the collector and wait until it exited (gone or zombie). Returns
 * the seconds it took, -1 on timeout; *cpu gets its final CPU time. */
static double stop_collector(int pid, double *cpu)
{
	double t0 = (vg_monotonic_ns() / 1e9);
	char st = 0;

	if (kill(pid, SIGTERM))
		return -1;
	while ((vg_monotonic_ns() / 1e9) - t0 < O.stop_timeout_s) {
		double c = bench_proc_cpu_s(pid, &st);
		if (c < 0 || st == 'Z' || st == 'X') {
			if (c >= 0)
				*cpu = c;
			return (vg_monotonic_ns() / 1e9) - t0;
		}
		*cpu = c;
		usleep(5000);
	}
	return -1;
}

/* A number after "key " in the collector's log (its exit lines), the
 * last occurrence; -1 if absent. */
static long long logged(const char *path, const char *key)
{
	char line[4096];
	long long v = -1;
	size_t kl = strlen(key);
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, key);
		if (p && p[kl] == ' ')
			v = strtoll(p + kl + 1, NULL, 10);
	}
	fclose(f);
	return v;
}

/* ---- verification -------------------------------------------------------------------- */

struct check {
	struct vg_store *store;
	const struct host *h;
	int64_t last_t;
	long last_k;
	uint64_t files, files_bad, values, values_bad, fetch_series;
	long sample_every;
	int printed;
};

static void bad(struct check *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void bad(struct check *c, const char *fmt, ...)
{
	va_list ap;

	if (c->printed++ >= 10)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "fleet: check: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static int same(double a, double b)
{
	return fabs(a - b) <= 1e-9 * fmax(1.0, fabs(b));
}

static int check_fetch(struct check *c, const char *path, uint64_t sid,
		       const struct metric *m)
{
	time_t start, end = (time_t)c->last_t;
	unsigned long step = STEP_S, ds_cnt = 0;
	char **names = NULL;
	rrd_value_t *data = NULL;
	int64_t first_e = step_end(poll_time(0)) + STEP_S; /* skip the first step */

	/* Stay inside the finest archive (at least 6 hours in any layout
	 * we bench; rrd_fetch would switch archives otherwise). */
	start = (time_t)(first_e - STEP_S);
	if ((int64_t)start < c->last_t - 6 * 3600)
		start = (time_t)(c->last_t - 6 * 3600) / STEP_S * STEP_S;
	rrd_clear_error();
	if (rrd_fetch_r(path, "AVERAGE", &start, &end, &step, &ds_cnt, &names,
			&data)) {
		bad(c, "%s: fetch: %s", path, rrd_get_error());
		c->values_bad++;
		return 0;
	}
	c->fetch_series++;
	if (step != STEP_S || ds_cnt != 1) {
		bad(c, "%s: fetch gave step %lu, %lu DS", path, step, ds_cnt);
		c->values_bad++;
	} else {
		size_t rows = (size_t)((end - start) / (time_t)step);
		for (size_t i = 0; i < rows; i++) {
			int64_t e = (int64_t)start + (int64_t)(i + 1) * STEP_S;
			double want, got = data[i];
			if (e < first_e || e > c->last_t)
				continue;
			want = m->kind == VG_KIND_COUNTER ? rate_in(sid, e) : gauge_at(sid, e);
			c->values++;
			if (!same(got, want)) {
				c->values_bad++;
				bad(c, "%s: step ending %lld: got %.17g, want %.17g",
				    path, (long long)e, got, want);
			}
		}
	}
	for (unsigned long k = 0; names && k < ds_cnt; k++)
		free(names[k]);
	free(names);
	free(data);
	return 0;
}

static int check_one(void *ctx, const struct walk *w)
{
	struct check *c = ctx;
	char path[PATH_MAX];
	time_t last = 0;
	unsigned long ds_cnt = 0;
	char **names = NULL, **vals = NULL;
	uint64_t sid;
	double want;

	if (!w->m)
		return 0;
	sid = c->h->sid0 + (uint64_t)w->s;
	c->files++;
	if (vg_store_path(c->store, w->rtype, w->id, w->m->name, path, sizeof(path))) {
		c->files_bad++;
		bad(c, "no path for %s %s", w->id, w->m->name);
		return 0;
	}
	rrd_clear_error();
	if (rrd_lastupdate_r(path, &last, &ds_cnt, &names, &vals)) {
		c->files_bad++;
		bad(c, "%s: %s", path, rrd_get_error());
		return 0;
	}
	want = w->m->kind == VG_KIND_COUNTER ? counter_at(sid, c->last_k)
					     : gauge_at(sid, c->last_t);
	if ((int64_t)last != c->last_t || ds_cnt != 1 || !vals || !vals[0] ||
	    !same(strtod(vals[0], NULL), want)) {
		c->files_bad++;
		bad(c, "%s: last update %lld value %s, want %lld value %.17g", path,
		    (long long)last, vals && ds_cnt ? vals[0] : "?",
		    (long long)c->last_t, want);
	}
	for (unsigned long k = 0; k < ds_cnt; k++) {
		free(names[k]);
		free(vals[k]);
	}
	free(names);
	free(vals);
	if (c->sample_every && (long)(sid % (uint64_t)c->sample_every) == 0)
		check_fetch(c, path, sid, w->m);
	return 0;
}

static int verify(struct check *c)
{
	struct vg_config cfg;
	char err[512];

	vg_config_defaults(&cfg);
	if (O.config && vg_config_load(&cfg, O.config, err, sizeof(err))) {
		fprintf(stderr, "fleet: %s\n", err);
		return -EINVAL;
	}
	if (vg_store_open(O.verify_dir, &cfg, &c->store, err, sizeof(err))) {
		fprintf(stderr, "fleet: %s\n", err);
		return -EIO;
	}
	long total = (long)O.hosts * g_series_per_host;
	c->sample_every = O.sample > 0 ? (total + O.sample - 1) / O.sample : 0;
	for (int i = 0; i < O.hosts; i++) {
		c->h = &H[i];
		c->last_k = H[i].last_acked;
		if (c->last_k < 0) {
			bad(c, "host %s: nothing acknowledged", H[i].name);
			c->files_bad++;
			continue;
		}
		c->last_t = poll_time(c->last_k);
		walk_host(&H[i], check_one, c);
	}
	vg_store_close(c->store);
	return 0;
}

/* ---- main -------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: fleet --collector URL [options]\n"
		"fleet shape\n"
		"  --hosts H            simulated compute hosts (default 2)\n"
		"  --instances I        instances per host (default 10)\n"
		"  --series N           choose --instances to get about N series\n"
		"  --vcpus V --disks D --nics N --host-disks D --host-nics N\n"
		"                       per instance 2/1/1, per host 1/1\n"
		"time and load\n"
		"  --interval S         simulated seconds between polls (default 10)\n"
		"  --start EPOCH        simulated start (default 1699999200)\n"
		"  --warmup-polls W     closed-loop polls before measuring (default 1)\n"
		"  --seconds S          measured phase, wall seconds (default 10)\n"
		"  --polls P            measured phase, polls per host (overrides --seconds)\n"
		"  --speed X            simulated s per wall s; 0 = as fast as acks (default)\n"
		"  --threads T          sender threads (default min(hosts, 4))\n"
		"agent behaviour\n"
		"  --ack-timeout-ms MS  (5000)  --backoff-min-ms MS (100)  --backoff-max-ms MS (5000)\n"
		"  --spool-max N        batches per host kept while unacknowledged (64)\n"
		"  --drain-timeout S    wait for the spools to empty (300)\n"
		"collector and checks\n"
		"  --collector-pid PID  measure its CPU and peak RSS\n"
		"  --server-pid PID     measure this server's CPU and its children's\n"
		"                       (a PostgreSQL postmaster) over the same spans\n"
		"  --pid-file F         read the collector's pid from F each time it is\n"
		"                       needed (a test that restarts it rewrites F)\n"
		"  --stop               SIGTERM it after the drain and wait for its exit\n"
		"  --collector-log F    its log, for the \"values written\" count\n"
		"  --verify DIR         check the RRD files under DIR (after --stop)\n"
		"  --config F           the collector's config (archive layout)\n"
		"  --sample K           series whose points are fetched and compared (100)\n"
		"  --label TEXT         copied to the RESULT line\n");
}

static int parse(int argc, char **argv)
{
	enum {
		o_url = 256,
		o_hosts,
		o_inst,
		o_series,
		o_vcpus,
		o_disks,
		o_nics,
		o_hdisks,
		o_hnics,
		o_interval,
		o_start,
		o_warm,
		o_seconds,
		o_polls,
		o_speed,
		o_threads,
		o_ackto,
		o_bmin,
		o_bmax,
		o_spool,
		o_drain,
		o_pid,
		o_stop,
		o_log,
		o_verify,
		o_config,
		o_sample,
		o_label,
		o_verbose,
		o_pidfile,
		o_spid,
		o_help,
	};
	static const struct option lo[] = {
		{"collector", 1, NULL, o_url},
		{"hosts", 1, NULL, o_hosts},
		{"instances", 1, NULL, o_inst},
		{"series", 1, NULL, o_series},
		{"vcpus", 1, NULL, o_vcpus},
		{"disks", 1, NULL, o_disks},
		{"nics", 1, NULL, o_nics},
		{"host-disks", 1, NULL, o_hdisks},
		{"host-nics", 1, NULL, o_hnics},
		{"interval", 1, NULL, o_interval},
		{"start", 1, NULL, o_start},
		{"warmup-polls", 1, NULL, o_warm},
		{"seconds", 1, NULL, o_seconds},
		{"polls", 1, NULL, o_polls},
		{"speed", 1, NULL, o_speed},
		{"threads", 1, NULL, o_threads},
		{"ack-timeout-ms", 1, NULL, o_ackto},
		{"backoff-min-ms", 1, NULL, o_bmin},
		{"backoff-max-ms", 1, NULL, o_bmax},
		{"spool-max", 1, NULL, o_spool},
		{"drain-timeout", 1, NULL, o_drain},
		{"collector-pid", 1, NULL, o_pid},
		{"stop", 0, NULL, o_stop},
		{"collector-log", 1, NULL, o_log},
		{"verify", 1, NULL, o_verify},
		{"config", 1, NULL, o_config},
		{"sample", 1, NULL, o_sample},
		{"label", 1, NULL, o_label},
		{"verbose", 0, NULL, o_verbose},
		{"pid-file", 1, NULL, o_pidfile},
		{"server-pid", 1, NULL, o_spid},
		{"help", 0, NULL, o_help},
		{NULL, 0, NULL, 0},
	};
	int c;

	O = (struct opts){
		.label = "-",
		.hosts = 2,
		.instances = 10,
		.vcpus = 2,
		.disks = 1,
		.nics = 1,
		.host_disks = 1,
		.host_nics = 1,
		.interval_s = 10,
		.start_s = 1699999200,
		.warmup_polls = 1,
		.seconds = 10,
		.ack_timeout_ms = 5000,
		.backoff_min_ms = 100,
		.backoff_max_ms = 5000,
		.spool_max = 64,
		.drain_timeout_s = 300,
		.stop_timeout_s = 300,
		.sample = 100,
	};
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case o_url: O.url = optarg; break;
		case o_hosts: O.hosts = atoi(optarg); break;
		case o_inst: O.instances = atoi(optarg); break;
		case o_series: O.series = atol(optarg); break;
		case o_vcpus: O.vcpus = atoi(optarg); break;
		case o_disks: O.disks = atoi(optarg); break;
		case o_nics: O.nics = atoi(optarg); break;
		case o_hdisks: O.host_disks = atoi(optarg); break;
		case o_hnics: O.host_nics = atoi(optarg); break;
		case o_interval: O.interval_s = atoi(optarg); break;
		case o_start: O.start_s = atoll(optarg); break;
		case o_warm: O.warmup_polls = atoi(optarg); break;
		case o_seconds: O.seconds = atof(optarg); break;
		case o_polls: O.polls = atol(optarg); break;
		case o_speed: O.speed = atof(optarg); break;
		case o_threads: O.threads = atoi(optarg); break;
		case o_ackto: O.ack_timeout_ms = atoi(optarg); break;
		case o_bmin: O.backoff_min_ms = atoi(optarg); break;
		case o_bmax: O.backoff_max_ms = atoi(optarg); break;
		case o_spool: O.spool_max = atoi(optarg); break;
		case o_drain: O.drain_timeout_s = atof(optarg); break;
		case o_pid: O.collector_pid = atoi(optarg); break;
		case o_stop: O.stop = 1; break;
		case o_log: O.collector_log = optarg; break;
		case o_verify: O.verify_dir = optarg; break;
		case o_config: O.config = optarg; break;
		case o_sample: O.sample = atoi(optarg); break;
		case o_label: O.label = optarg; break;
		case o_verbose: O.verbose = 1; break;
		case o_pidfile: O.pid_file = optarg; break;
		case o_spid: O.server_pid = atol(optarg); break;
		case o_help: usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (!O.url || O.hosts < 1 || O.instances < 0 || O.vcpus < 1 ||
	    O.disks < 0 || O.nics < 0 || O.host_disks < 0 || O.host_nics < 0 ||
	    O.interval_s < 1 || STEP_S % O.interval_s || O.warmup_polls < 1 ||
	    O.speed < 0 || O.ack_timeout_ms < 1 || O.backoff_min_ms < 1 ||
	    O.backoff_max_ms < O.backoff_min_ms || O.spool_max < 2 ||
	    O.start_s % STEP_S || (O.stop && !O.collector_pid && !O.pid_file)) {
		usage(stderr);
		return -EINVAL;
	}
	if (!O.threads)
		O.threads = O.hosts < 4 ? O.hosts : 4;
	if (O.threads > O.hosts)
		O.threads = O.hosts;
	return 0;
}

int main(int argc, char **argv)
{
	struct worker *w;
	double t_start, t_end, cpu0 = 0, cpu1 = 0, cpu_phase = 0, stop_s = 0,
			       warm_s, fcpu0 = 0, fcpu1 = 0, scpu0 = 0,
			       scpu1 = 0, scpu2 = 0;
	struct rusage ru;
	long hwm = -1, rss_end = -1;
	long long written = -1, flushed = -1, calls = -1, cache_peak = -1,
		  cache_bytes = -1;
	uint64_t v_warm = 0, v_total = 0, sends = 0, timeouts = 0, retries = 0,
		 rejected = 0, dups = 0, dropped_b = 0, dropped_v = 0,
		 spool_peak = 0, bad_acks = 0, batches = 0;
	struct check chk = {0};
	int failed = 0;

	if (parse(argc, argv))
		return 2;
	if (build_model()) {
		fprintf(stderr, "fleet: the metric catalogue lacks a resource type\n");
		return 1;
	}
	if (O.series > 0) {
		long per_host = O.series / O.hosts;
		long fixed = M[VG_RT_HOST].n + O.host_disks * M[VG_RT_HOST_DISK].n +
			     O.host_nics * M[VG_RT_HOST_NIC].n;
		long i = (per_host - fixed + series_per_instance() / 2) /
			 series_per_instance();
		O.instances = i < 1 ? 1 : (int)i;
	}
	g_series_per_host = series_per_host();
	if (!(H = calloc((size_t)O.hosts, sizeof(*H))) ||
	    !(w = calloc((size_t)O.threads, sizeof(*w))))
		return 1;
	for (int i = 0; i < O.hosts; i++) {
		int rc = host_init(&H[i], i);
		if (rc) {
			fprintf(stderr, "fleet: host %d: %s\n", i, strerror(-rc));
			return 1;
		}
	}
	fprintf(stderr,
		"fleet: %d hosts x %d instances, %ld series (%d per instance, "
		"%ld per host), interval %d s, %s\n",
		O.hosts, O.instances, (long)O.hosts * g_series_per_host,
		series_per_instance(), g_series_per_host, O.interval_s,
		O.speed > 0 ? "paced" : "closed loop");

	pthread_barrier_init(&g_bar, NULL, (unsigned)O.threads + 1);
	t_start = (vg_monotonic_ns() / 1e9);
	for (int i = 0; i < O.threads; i++) {
		w[i].first = i;
		w[i].step = O.threads;
		pthread_create(&w[i].th, NULL, worker_main, &w[i]);
	}
	pthread_barrier_wait(&g_bar); /* warm-up done */
	warm_s = (vg_monotonic_ns() / 1e9) - t_start;
	for (int i = 0; i < O.hosts; i++)
		v_warm += H[i].values_acked;
	if (collector_pid())
		cpu0 = bench_proc_cpu_s(collector_pid(), NULL);
	if (O.server_pid)
		scpu0 = bench_tree_cpu_s(O.server_pid);
	fprintf(stderr, "fleet: warm-up: %llu values in %.1f s\n",
		(unsigned long long)v_warm, warm_s);
	getrusage(RUSAGE_SELF, &ru);
	fcpu0 = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		(double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	t_start = (vg_monotonic_ns() / 1e9);
	g_gen_t0 = t_start;
	pthread_barrier_wait(&g_bar); /* go */
	if (O.polls <= 0) {
		while ((vg_monotonic_ns() / 1e9) - t_start < O.seconds && !g_abort)
			usleep(10000);
		g_stop_gen = 1;
	}
	double t_gen_end = (vg_monotonic_ns() / 1e9);
	pthread_barrier_wait(&g_bar); /* measured phase and drain done */
	t_end = (vg_monotonic_ns() / 1e9);
	getrusage(RUSAGE_SELF, &ru);
	fcpu1 = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		(double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	if (O.polls > 0)
		t_gen_end = t_end;
	for (int i = 0; i < O.threads; i++) {
		pthread_join(w[i].th, NULL);
		if (w[i].err) {
			fprintf(stderr, "fleet: worker %d: %s\n", i, strerror(-w[i].err));
			failed = 1;
		}
	}
	for (int i = 0; i < O.hosts; i++) {
		struct host *h = &H[i];
		v_total += h->values_acked;
		sends += h->sends;
		timeouts += h->timeouts;
		retries += h->retries;
		rejected += h->rejected;
		dups += h->batches_dup;
		batches += h->batches_acked;
		dropped_b += h->dropped_batches;
		dropped_v += h->dropped_values;
		bad_acks += h->bad_acks;
		if (h->spool_peak > spool_peak)
			spool_peak = h->spool_peak;
		if (h->qlen) {
			fprintf(stderr, "fleet: host %s: %d batches never acknowledged\n",
				h->name, h->qlen);
			failed = 1;
		}
		nn_close(h->sock);
	}
	if (collector_pid()) {
		cpu1 = bench_proc_cpu_s(collector_pid(), NULL);
		hwm = proc_status_kb(collector_pid(), "VmHWM");
		rss_end = proc_status_kb(collector_pid(), "VmRSS");
		cpu_phase = cpu1 - cpu0;
	}
	if (O.server_pid)
		scpu1 = bench_tree_cpu_s(O.server_pid);
	if (O.stop) {
		stop_s = stop_collector(collector_pid(), &cpu1);
		if (stop_s < 0) {
			fprintf(stderr, "fleet: the collector did not exit\n");
			failed = 1;
		}
	}
	if (O.server_pid) {
		scpu2 = bench_tree_cpu_s(O.server_pid);
		if (scpu0 < 0 || scpu1 < 0 || scpu2 < 0) {
			fprintf(stderr, "fleet: server %ld gone\n", O.server_pid);
			failed = 1;
			scpu0 = scpu1 = scpu2 = 0;
		}
	}
	if (O.collector_log) {
		written = logged(O.collector_log, "values written");
		flushed = logged(O.collector_log, "values flushed");
		cache_peak = logged(O.collector_log, "cache peak");
		{
			/* "values flushed N in M librrd calls" */
			char line[4096];
			FILE *lf = fopen(O.collector_log, "r");
			while (lf && fgets(line, sizeof(line), lf)) {
				char *p = strstr(line, "values flushed ");
				if (p && (p = strstr(p, " in ")))
					calls = strtoll(p + 4, NULL, 10);
				if ((p = strstr(line, "cache peak ")) &&
				    (p = strstr(p, " values in ")))
					cache_bytes = strtoll(p + 11, NULL, 10);
			}
			if (lf)
				fclose(lf);
		}
		if (written < 0) {
			fprintf(stderr, "fleet: no \"values written\" in %s\n",
				O.collector_log);
			failed = 1;
		}
	}
	if (O.verify_dir) {
		if (verify(&chk))
			failed = 1;
		if (chk.files_bad || chk.values_bad)
			failed = 1;
	}
	long long lost = written >= 0 ? (long long)v_total - written : -1;
	if (lost != 0 && written >= 0) {
		fprintf(stderr, "fleet: acknowledged %llu values, the collector wrote %lld\n",
			(unsigned long long)v_total, written);
		failed = 1;
	}
	if (rejected)
		failed = 1;

	double mwall = t_end - t_start;
	uint64_t v_meas = v_total - v_warm;
	double mcpu = cpu1 - cpu0;
	printf("RESULT fleet label=%s hosts=%d instances=%d series=%ld "
	       "values_acked=%llu values_measured=%llu warmup_s=%.2f "
	       "measure_s=%.3f gen_s=%.3f stop_s=%.3f values_per_s=%.0f "
	       "stored_values_per_s=%.0f offered_values_per_s=%.0f "
	       "collector_cpu_s=%.3f us_cpu_per_value=%.3f fleet_cpu_s=%.3f "
	       "cores=%.2f peak_rss_kb=%ld rss_kb=%ld bytes_per_series=%.0f "
	       "flushed=%lld rrd_calls=%lld depth=%.1f cache_peak=%lld "
	       "bytes_per_series_beyond_cache=%.0f "
	       "written=%lld lost=%lld batches=%llu duplicates=%llu sends=%llu "
	       "timeouts=%llu retries=%llu rejected=%llu bad_acks=%llu "
	       "spool_peak=%llu dropped_batches=%llu dropped_values=%llu "
	       "files_checked=%llu files_bad=%llu points_checked=%llu "
	       "points_bad=%llu fetch_series=%llu collector_cpu_phase_s=%.3f "
	       "server_cpu_phase_s=%.3f server_cpu_s=%.3f status=%s\n",
	       O.label, O.hosts, O.instances, (long)O.hosts * g_series_per_host,
	       (unsigned long long)v_total, (unsigned long long)v_meas, warm_s,
	       mwall, t_gen_end - t_start, stop_s, v_meas / mwall,
	       v_meas / (mwall + stop_s),
	       O.speed > 0 ? (double)O.hosts * g_series_per_host * O.speed / O.interval_s
			   : 0.0,
	       mcpu, v_meas ? mcpu * 1e6 / (double)v_meas : 0.0, fcpu1 - fcpu0,
	       mcpu / (mwall + stop_s), hwm, rss_end,
	       hwm > 0 ? hwm * 1024.0 / ((double)O.hosts * g_series_per_host) : 0.0,
	       flushed, calls, calls > 0 ? (double)flushed / (double)calls : 0.0,
	       cache_peak,
	       hwm > 0 ? (hwm * 1024.0 - (cache_bytes > 0 ? (double)cache_bytes : 0)) /
				 ((double)O.hosts * g_series_per_host)
		       : 0.0,
	       written, lost, (unsigned long long)batches,
	       (unsigned long long)dups, (unsigned long long)sends,
	       (unsigned long long)timeouts, (unsigned long long)retries,
	       (unsigned long long)rejected, (unsigned long long)bad_acks,
	       (unsigned long long)spool_peak, (unsigned long long)dropped_b,
	       (unsigned long long)dropped_v, (unsigned long long)chk.files,
	       (unsigned long long)chk.files_bad, (unsigned long long)chk.values,
	       (unsigned long long)chk.values_bad,
	       (unsigned long long)chk.fetch_series, cpu_phase, scpu1 - scpu0,
	       scpu2 - scpu0, failed ? "FAIL" : "ok");
	return failed ? 1 : 0;
}
