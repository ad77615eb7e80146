/*
 * main.c — vigie-agent: poll libvirt and /proc every interval, spool each
 * batch on disk, and let the sender thread deliver it to the collector.
 *
 * Design: the poll loop is deadline-based (poll k starts at start + k *
 * interval on the monotonic clock; an overrun skips the missed deadlines
 * instead of bunching polls). Each poll builds one batch (host, stream and
 * seq from the spool, time from the vg_clock, real or synthetic), encodes
 * it, writes it to the spool and wakes the sender (a poll too big for one
 * message is spooled as several batches of consecutive seqs:
 * spool_poll). Delivery runs on the
 * sender's own thread (agent/sender.h), so a slow or absent collector
 * never delays a poll; the spool is the only thing the two share.
 * With several collectors ([agent] collectors) the sender picks this
 * host's primary by rendezvous hashing and fails over on ack timeouts;
 * the poll loop logs each change of collector once and reports it in
 * the agent.send.* self-metrics.
 * Signals only set flags: SIGTERM/SIGINT stop polling, then the sender
 * gets up to [agent] drain_ms (2 s) to empty the spool (what is left is sent at the next
 * start); SIGHUP closes the libvirt connection so the next poll reopens
 * it. Signals are blocked in every thread but this one so they always
 * interrupt the poll loop's sleep.
 *
 * Exit codes: 0 after a clean stop (or --once), 1 on an unexpected
 * runtime failure, 2 on bad usage or configuration (one line on stderr
 * naming the problem).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/poll.h"
#include "agent/sender.h"
#include "agent/spool.h"
#include "agent/events.h"
#include "vigie/clock.h"
#include "vigie/config.h"
#include "vigie/fsutil.h"
#include "vigie/log.h"
#include "vigie/name.h"
#include "vigie/sign.h"
#include "vigie/wire.h"

#define PROG "vigie-agent"

static volatile sig_atomic_t g_stop, g_hup;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		g_hup = 1;
	else
		g_stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [options]\n"
		"Polls libvirt and /proc every interval and sends one batch per poll\n"
		"to vigie-collector (at-least-once, spooled on disk).\n\n"
		"  --collector URL      collector address (tcp://127.0.0.1:7470)\n"
		"  --collectors LIST    several collectors, comma-separated: each host\n"
		"                       sticks to one, fails over to the others\n"
		"  --libvirt URI        libvirt URI (qemu:///system; test:///default for a demo)\n"
		"  --interval SECONDS   poll interval, fractions allowed (10)\n"
		"  --host NAME          host name reported (this machine's hostname)\n"
		"  --spool DIR          spool directory (/var/lib/vigie/spool)\n"
		"  --config FILE        INI configuration ([agent] section); flags override it\n"
		"  --log-level LEVEL    error, warn, info or debug (info)\n"
		"  --proc DIR           proc root (/proc), for tests\n"
		"  --qemu-run-dir DIR   where libvirt keeps <domain>.pid (/run/libvirt/qemu)\n"
		"  --clock-start EPOCH  synthetic clock: first poll's time, epoch seconds\n"
		"  --clock-step SECONDS synthetic clock: advance per poll (default: interval)\n"
		"  --count N            stop after N polls (flush the spool, exit 0)\n"
		"  --key-file FILE      sign batches with this host's key (docs/security.md)\n"
		"  --once               poll once, print the batch as JSON on stdout, exit\n"
		"  --help               this text\n");
}

static int bad_usage(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, PROG ": ");
	fprintf(stderr, fmt, a, b);
	fputc('\n', stderr);
	return 2;
}

/* Another agent owns spool directory dir: say whose, exit 2. Two agents
 * on one spool would overwrite each other's batches. */
static int refuse_busy_spool(const char *dir)
{
	char lock[4096], comm[64], pid_s[96] = "";
	long pid;

	snprintf(lock, sizeof(lock), "%s/" VG_SPOOL_LOCK, dir);
	pid = vg_fs_flock_holder(lock);
	vg_fs_pid_comm(pid, comm, sizeof(comm));
	if (pid > 0)
		snprintf(pid_s, sizeof(pid_s), " (pid %ld%s%s)", pid, comm[0] ? ", " : "", comm);
	fprintf(stderr,
		PROG ": spool directory %s is in use by another agent%s: one agent at a time "
		     "owns a spool directory; stop it, or give this one its own (--spool or "
		     "[agent] spool_dir)\n",
		dir, pid_s);
	return 2;
}

struct args {
	const char *config, *loglevel, *run_dir;
	const char *clock_start, *clock_step, *count;
	int once;
	/* flag -> [agent] key overrides, in command-line order */
	struct {
		const char *section, *key, *value, *flag;
	} set[16];
	int nset;
};

static int parse_args(int argc, char **argv, struct args *a)
{
	enum { O_COLLECTOR = 256,
	       O_LIBVIRT,
	       O_INTERVAL,
	       O_HOST,
	       O_SPOOL,
	       O_CONFIG,
	       O_ONCE,
	       O_HELP,
	       O_LOGLEVEL,
	       O_PROC,
	       O_RUNDIR,
	       O_CSTART,
	       O_CSTEP,
	       O_COUNT,
	       O_KEYFILE,
	       O_COLLECTORS };
	static const struct option opts[] = {
		{"collector", required_argument, NULL, O_COLLECTOR},
		{"collectors", required_argument, NULL, O_COLLECTORS},
		{"libvirt", required_argument, NULL, O_LIBVIRT},
		{"interval", required_argument, NULL, O_INTERVAL},
		{"host", required_argument, NULL, O_HOST},
		{"spool", required_argument, NULL, O_SPOOL},
		{"config", required_argument, NULL, O_CONFIG},
		{"once", no_argument, NULL, O_ONCE},
		{"help", no_argument, NULL, O_HELP},
		{"log-level", required_argument, NULL, O_LOGLEVEL},
		{"proc", required_argument, NULL, O_PROC},
		{"qemu-run-dir", required_argument, NULL, O_RUNDIR},
		{"clock-start", required_argument, NULL, O_CSTART},
		{"clock-step", required_argument, NULL, O_CSTEP},
		{"count", required_argument, NULL, O_COUNT},
		{"key-file", required_argument, NULL, O_KEYFILE},
		{NULL, 0, NULL, 0},
	};
	static char flagnames[16][32];
	int c, li = -1;

	opterr = 0;
	memset(a, 0, sizeof(*a));
	while ((c = getopt_long(argc, argv, ":h", opts, &li)) != -1) {
		const char *key = NULL;

		if (c == '?' || c == ':')
			li = -1;
		switch (c) {
		case O_COLLECTOR: key = "collector"; break;
		case O_COLLECTORS: key = "collectors"; break;
		case O_LIBVIRT: key = "libvirt"; break;
		case O_INTERVAL: key = "interval"; break;
		case O_HOST: key = "host"; break;
		case O_SPOOL: key = "spool_dir"; break;
		case O_PROC: key = "proc"; break;
		case O_KEYFILE: key = "key_file"; break;
		case O_CONFIG: a->config = optarg; break;
		case O_ONCE: a->once = 1; break;
		case O_LOGLEVEL: a->loglevel = optarg; break;
		case O_RUNDIR: a->run_dir = optarg; break;
		case O_CSTART: a->clock_start = optarg; break;
		case O_CSTEP: a->clock_step = optarg; break;
		case O_COUNT: a->count = optarg; break;
		case 'h':
		case O_HELP:
			usage(stdout);
			exit(0);
		case ':':
			return bad_usage("option %s needs a value (see --help)",
					 argv[optind - 1], NULL);
		default:
			return bad_usage("unknown option '%s' (see --help)",
					 argv[optind - 1], NULL);
		}
		if (key && a->nset < (int)(sizeof(a->set) / sizeof(a->set[0]))) {
			a->set[a->nset].section = "agent";
			a->set[a->nset].key = key;
			a->set[a->nset].value = optarg;
			snprintf(flagnames[a->nset], sizeof(flagnames[0]), "--%s",
				 li >= 0 ? opts[li].name : key);
			a->set[a->nset].flag = flagnames[a->nset];
			a->nset++;
		}
	}
	if (optind < argc)
		return bad_usage("unexpected argument '%s' (see --help)", argv[optind], NULL);
	return 0;
}

static int parse_number(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return (end == s || *end || errno || !isfinite(*out)) ? -EINVAL : 0;
}

/* Log changes in the sender's and spool's state once per poll. */
struct watch {
	struct vg_sender_stats last;
	int lv_down;
	uint64_t drop_log, reject_log, encode_log, spool_log, proc_log, overrun_log;
	uint64_t unauth_log, split_log, left_out_log;
	uint64_t polls_split; /* polls sent as more than one batch */
	uint64_t left_out;    /* values (samples, attributes, events) of
				 * polls that no batch could carry */
	uint64_t xml_other;   /* the libvirt source's count, last logged */
	size_t max_bytes;     /* a batch's encoded size, trailer excluded */
};

/* Put encoded batch seq (buf, len) in the spool: 0 or the spool's
 * error, logged. */
static int spool_put(struct watch *w, struct vg_spool *spool,
		     const struct vg_config *cfg, uint64_t seq,
		     const uint8_t *buf, size_t len)
{
	unsigned dropped = 0;
	int rc = vg_spool_put(spool, seq, buf, len, &dropped);

	if (rc)
		vg_log_limited(VG_LOG_ERROR, &w->spool_log,
			       "cannot spool batch %llu in %s: %s; it is lost",
			       (unsigned long long)seq, cfg->agent_spool_dir, strerror(-rc));
	if (dropped)
		vg_log_limited(VG_LOG_WARN, &w->drop_log,
			       "spool full (%u batches): dropped the oldest (%llu dropped so far)",
			       cfg->agent_spool_max_batches,
			       (unsigned long long)vg_spool_dropped(spool));
	return rc;
}

/* Encode b (within w->max_bytes) and spool it: 0 or an error, logged. */
static int spool_batch(struct watch *w, struct vg_spool *spool,
		       const struct vg_config *cfg, const struct vg_batch *b)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = vg_wire_encode(b, &buf, &len);

	if (!rc && len > w->max_bytes)
		rc = -E2BIG;
	if (rc)
		vg_log_limited(VG_LOG_ERROR, &w->encode_log, "cannot encode batch %llu: %s",
			       (unsigned long long)b->seq, vg_wire_strerror(rc));
	else
		rc = spool_put(w, spool, cfg, b->seq, buf, len);
	free(buf);
	return rc;
}

/* Spool one poll's batch b. A poll that does not fit one message (over
 * [agent] max_batch_bytes or a protocol limit), or that holds a name the
 * collector would refuse, goes as several batches of consecutive seqs
 * (vg_wire_split): each the same host, stream and poll time, in order, so
 * the collector's (host, stream, seq) dedupe and per-host ordering hold
 * for each; only what fits no batch alone is left out, counted in
 * agent.batch.left_out and logged. (Before, the whole poll was lost.) */
static void spool_poll(struct watch *w, struct vg_spool *spool,
		       struct vg_sender *sender, const struct vg_config *cfg,
		       struct vg_batch *b)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = vg_wire_encode(b, &buf, &len);

	if (!rc && len <= w->max_bytes) {
		if (!spool_put(w, spool, cfg, b->seq, buf, len))
			vg_sender_wake(sender);
		free(buf);
		return;
	}
	free(buf);
	if (rc && rc != -E2BIG && rc != -EILSEQ && rc != -EINVAL) {
		/* splitting cannot help (out of memory) */
		vg_log_limited(VG_LOG_ERROR, &w->encode_log, "cannot encode batch %llu: %s",
			       (unsigned long long)b->seq, vg_wire_strerror(rc));
		return;
	}

	struct vg_batch **parts = NULL;
	size_t nparts = 0;
	struct vg_wire_split_stats st;

	rc = vg_wire_split(b, w->max_bytes, &parts, &nparts, &st);
	if (rc) {
		vg_log_limited(VG_LOG_ERROR, &w->encode_log, "cannot split batch %llu: %s; it is lost",
			       (unsigned long long)b->seq, vg_wire_strerror(rc));
		return;
	}
	size_t left = st.samples + st.attrs + st.events;
	if (nparts > 1) {
		w->polls_split++;
		vg_log_limited(VG_LOG_INFO, &w->split_log,
			       "poll %llu does not fit one batch of %zu bytes: sent as %zu batches (%llu..%llu)",
			       (unsigned long long)b->seq, w->max_bytes, nparts,
			       (unsigned long long)parts[0]->seq,
			       (unsigned long long)parts[nparts - 1]->seq);
	}
	if (left || st.resources) {
		w->left_out += left;
		vg_log_limited(VG_LOG_WARN, &w->left_out_log,
			       "poll %llu: left out %zu resource(s), %zu sample(s), %zu attribute(s), %zu event(s) "
			       "that fit no batch alone or break the collector's name rules (docs/protocol.md); "
			       "%llu value(s) so far (agent.batch.left_out)",
			       (unsigned long long)b->seq, st.resources, st.samples, st.attrs, st.events,
			       (unsigned long long)w->left_out);
	}
	for (size_t i = 0; i < nparts; i++) {
		if (!rc && spool_batch(w, spool, cfg, parts[i]))
			rc = -1; /* the later parts would leave a hole in seq */
		vg_batch_free(parts[i]);
	}
	free(parts);
	vg_sender_wake(sender);
}

static void watch_sender(struct watch *w, struct vg_sender *snd,
			 struct vg_spool *sp, const struct vg_config *cfg)
{
	struct vg_sender_stats st;

	vg_sender_get_stats(snd, &st);
	const char *url = cfg->agent_collectors[st.current];
	if (st.current != w->last.current && st.failing >= cfg->agent_ncollectors) {
		/* Every collector failed in a row: the sender goes round
		 * them; the "not acknowledging" warning says it once. */
		vg_debug("no collector acknowledges; now trying %s", url);
	} else if (st.current != w->last.current) {
		if (st.current == st.primary)
			vg_info("back on this host's primary collector %s (%llu failover(s), %llu return(s) so far)",
				url, (unsigned long long)st.failovers,
				(unsigned long long)st.failbacks);
		else
			vg_warn("collector %s did not acknowledge in time: batches now go to %s "
				"(primary %s is probed every %u ms; %llu failover(s) so far)",
				cfg->agent_collectors[w->last.current], url,
				cfg->agent_collectors[st.primary], cfg->agent_probe_interval_ms,
				(unsigned long long)st.failovers);
	}
	if (st.failing && !w->last.failing)
		vg_warn("collector %s is not acknowledging (%s); batches stay in the spool (%zu) and are resent",
			url, st.retries > w->last.retries ? "asked to retry" : "no ack in time",
			vg_spool_count(sp));
	else if (!st.failing && w->last.failing)
		vg_info("collector %s acknowledges again (last seq %llu)", url,
			(unsigned long long)st.last_seq);
	for (uint64_t i = w->last.rejected; i < st.rejected; i++)
		vg_log_limited(VG_LOG_WARN, &w->reject_log,
			       "collector rejected a batch; kept in the spool's rejected/ directory "
			       "(the newest %d; %llu older deleted so far)",
			       VG_SPOOL_REJECTED_MAX,
			       (unsigned long long)vg_spool_rejected_deleted(sp));
	for (uint64_t i = w->last.unauth_acks; i < st.unauth_acks; i++)
		vg_log_limited(VG_LOG_WARN, &w->unauth_log,
			       "collector %s answered without a valid signature "
			       "(ignored, the batch stays spooled): does it have "
			       "this host's key, and is it the real collector?",
			       url);
	w->last = st;
}

/* vg_sender_drain's tick: the same log of the sender's changes while the
 * agent drains its spool after its last poll (a stop, or --count): a
 * failover or a return to the primary then is logged too. */
struct drain_watch {
	struct watch *w;
	struct vg_sender *snd;
	struct vg_spool *sp;
	const struct vg_config *cfg;
};

static void drain_tick(void *arg)
{
	struct drain_watch *d = arg;

	watch_sender(d->w, d->snd, d->sp, d->cfg);
}

static int run_once(struct vg_poller *p, struct vg_config *cfg,
		    struct vg_clock *clk)
{
	struct vg_poll_status st;
	struct vg_batch *b = vg_batch_new(cfg->agent_host, 0, 1, vg_clock_now(clk));
	int rc;

	if (!b)
		return 1;
	rc = vg_poller_poll(p, vg_clock_now(clk), NULL, 0, b, &st);
	if (rc) {
		vg_error("poll failed: %s", strerror(-rc));
		vg_batch_free(b);
		return 1;
	}
	if (st.libvirt_rc)
		vg_warn("libvirt %s: %s", cfg->agent_libvirt,
			st.libvirt_err ? st.libvirt_err : strerror(-st.libvirt_rc));
	char *json = vg_batch_to_json(b);
	vg_batch_free(b);
	if (!json)
		return 1;
	puts(json);
	free(json);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* libvirt lifecycle events (billing): queued for the next poll's batch. */
static void on_lifecycle(void *ctx, const char *uuid, int type, int64_t time_ms,
			 const char *detail)
{
	vg_debug("lifecycle event %d of %s at %lld ms: %s", type, uuid,
		 (long long)time_ms, detail ? detail : "");
	vg_poller_push_event(ctx, uuid, type, time_ms, detail);
}

int main(int argc, char **argv)
{
	struct vg_config cfg;
	struct args a;
	struct vg_clock clk;
	char err[512];
	double cstart = 0, cstep = 0, count_d = 0;
	uint64_t count = 0;
	int rc;

	/* The spool's files and directories are its user's and its group's
	 * at most, whoever started it; the key file is checked
	 * where it is read. */
	umask(umask(0) | 027);
	vg_log_init(PROG, VG_LOG_INFO);
	if ((rc = parse_args(argc, argv, &a)))
		return rc;
	vg_config_defaults(&cfg);
	if (a.config && vg_config_load(&cfg, a.config, err, sizeof(err)) != 0)
		return bad_usage("%s", err, NULL);
	for (int i = 0; i < a.nset; i++)
		if (vg_config_set(&cfg, a.set[i].section, a.set[i].key, a.set[i].value,
				  err, sizeof(err)) != 0)
			return bad_usage("%s: %s", a.set[i].flag, err);
	if (a.loglevel && vg_config_set(&cfg, "log", "level", a.loglevel, err,
					sizeof(err)) != 0)
		return bad_usage("--log-level: %s", err, NULL);
	vg_log_set_level(cfg.log_level);
	if (a.clock_start && (parse_number(a.clock_start, &cstart) || cstart < 0))
		return bad_usage("--clock-start: '%s' is not epoch seconds >= 0", a.clock_start, NULL);
	if (a.clock_step && (parse_number(a.clock_step, &cstep) || cstep <= 0))
		return bad_usage("--clock-step: '%s' is not a number of seconds > 0", a.clock_step, NULL);
	if (a.clock_step && !a.clock_start)
		return bad_usage("--clock-step needs --clock-start", NULL, NULL);
	if (a.count && (parse_number(a.count, &count_d) || count_d < 1 ||
			count_d != floor(count_d)))
		return bad_usage("--count: '%s' is not a whole number >= 1", a.count, NULL);
	count = (uint64_t)count_d;
	if (!cfg.agent_host[0])
		return bad_usage("host name is empty (use --host)", NULL, NULL);
	/* The collector refuses every batch of a host that is not a name
	 * (docs/protocol.md "Names"): say so now, not at every poll. */
	if (!vg_name_valid(cfg.agent_host))
		return bad_usage("host name '%s' is not a valid name (1..200 bytes "
				 "of UTF-8 without control or hidden characters; use --host "
				 "or [agent] host)",
				 cfg.agent_host, NULL);
	/* Signing key: a bad or world-readable file stops start-up. */
	struct vg_key key;
	memset(&key, 0, sizeof(key));
	if (cfg.agent_key_file[0] && !a.once &&
	    vg_sign_key_load(cfg.agent_key_file, &key, err, sizeof(err)))
		return bad_usage("%s", err, NULL);

	int64_t interval_ms = llround(cfg.agent_interval_s * 1000.0);
	if (interval_ms < 1)
		interval_ms = 1;
	if (a.clock_start)
		vg_clock_synthetic(&clk, llround(cstart * 1000.0),
				   a.clock_step ? llround(cstep * 1000.0) : interval_ms);
	else
		vg_clock_real(&clk);

	struct vg_poller_opts po = {
		.host = cfg.agent_host,
		.libvirt_uri = cfg.agent_libvirt,
		.proc_root = cfg.agent_proc_root,
		.qemu_run_dir = a.run_dir,
		.fs_include = cfg.agent_host_fs_include,
		.fs_exclude = cfg.agent_host_fs_exclude,
		.no_host_fs = !cfg.agent_host_fs,
		.guest_fs_polls = cfg.agent_guest_fs_polls,
		.guest_agent_retry_polls = cfg.agent_guest_agent_retry_polls,
	};
	struct vg_poller *poller = NULL;
	if ((rc = vg_poller_new(&po, &poller))) {
		vg_error("cannot create the poller: %s", strerror(-rc));
		return 1;
	}
	if (a.once) {
		rc = run_once(poller, &cfg, &clk);
		vg_poller_free(poller);
		return rc;
	}

	struct vg_spool *spool = NULL;
	if ((rc = vg_spool_open(cfg.agent_spool_dir, cfg.agent_spool_max_batches, &spool))) {
		vg_poller_free(poller);
		if (rc == -EBUSY)
			return refuse_busy_spool(cfg.agent_spool_dir);
		return bad_usage("spool_dir %s: %s", cfg.agent_spool_dir, strerror(-rc));
	}

	/* Signals: handlers set flags; every other thread blocks them. */
	sigset_t sigs, old;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: interrupt the sleep */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, &old);

	const char *urls[VG_MAX_COLLECTORS];
	for (size_t i = 0; i < cfg.agent_ncollectors; i++)
		urls[i] = cfg.agent_collectors[i];
	struct vg_sender_opts so = {
		.urls = urls,
		.nurls = cfg.agent_ncollectors,
		.host = cfg.agent_host,
		.ack_timeout_ms = cfg.agent_ack_timeout_ms,
		.probe_interval_ms = cfg.agent_probe_interval_ms,
		.key = key.len ? &key : NULL,
	};
	struct vg_sender *sender = NULL;
	rc = vg_sender_start(spool, &so, &sender);
	vg_sign_key_wipe(&key); /* the sender keeps its own copy */
	struct vg_events *events = NULL;
	if (!rc && cfg.agent_libvirt[0]) {
		struct vg_events_opts eo = {cfg.agent_libvirt, &clk, on_lifecycle, poller};
		if (vg_events_start(&eo, &events, err, sizeof(err)))
			vg_warn("lifecycle events unavailable (polling only): %s", err);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		vg_spool_close(spool);
		vg_poller_free(poller);
		return bad_usage("collector(s) %s: %s", cfg.agent_ncollectors > 1 ? "in [agent] collectors" : cfg.agent_collector,
				 rc == -EINVAL ? "not a valid nanomsg address" : strerror(-rc));
	}

	/* said once the daemon runs (a usage error stays one line) */
	/* the libvirt connection, one socket per collector, spool
	 * segments and /proc reads hold descriptors: the soft limit
	 * (1024 by default, less under some supervisors) is raised to
	 * the hard one, as the collector does */
	vg_fs_raise_nofile_logged(0);
	if (geteuid() == 0)
		vg_log(VG_LOG_WARN, "running as root: vigie-agent needs no privilege "
				    "but libvirt's read-only socket; run it as the vigie user "
				    "(vigie-agent(8))");
	struct vg_sender_stats ss0;
	vg_sender_get_stats(sender, &ss0);
	vg_info("polling %s every %.3g s as host %s; sending to %s%s (%s); spool %s (%zu waiting, stream %016llx)",
		cfg.agent_libvirt, cfg.agent_interval_s, cfg.agent_host,
		cfg.agent_collectors[ss0.primary],
		cfg.agent_ncollectors > 1 ? ", this host's primary by rendezvous hashing" : "",
		cfg.agent_key_file[0] ? "signed" : "unsigned",
		cfg.agent_spool_dir, vg_spool_count(spool),
		(unsigned long long)vg_spool_stream(spool));

	struct watch w;
	memset(&w, 0, sizeof(w));
	w.last = ss0;
	/* a signed batch carries its trailer beyond this; the collector's
	 * max_message_bytes counts it */
	w.max_bytes = cfg.agent_max_batch_bytes -
		      (cfg.agent_key_file[0] ? VG_WIRE_MAC_LEN : 0);
	uint64_t polls = 0;
	int64_t next = vg_monotonic_ms();
	int exit_code = 0;

	while (!g_stop) {
		if (g_hup) {
			g_hup = 0;
			vg_info("SIGHUP: reopening the libvirt connection");
			vg_poller_reconnect(poller);
		}
		int64_t t = vg_clock_now(&clk);
		uint64_t seq = vg_spool_next_seq(spool);
		struct vg_sender_stats ss;
		vg_sender_get_stats(sender, &ss);
		struct vg_events_stats es = {0};
		if (events)
			vg_events_get_stats(events, &es);
		struct vg_poll_extra extra[] = {
			{"agent.spool.depth", VG_KIND_GAUGE, (double)vg_spool_count(spool)},
			{"agent.spool.dropped", VG_KIND_COUNTER, (double)vg_spool_dropped(spool)},
			{"agent.send.timeouts", VG_KIND_COUNTER, (double)ss.timeouts},
			{"agent.send.retries", VG_KIND_COUNTER, (double)ss.retries},
			{"agent.send.rejected", VG_KIND_COUNTER, (double)ss.rejected},
			{"agent.send.collector", VG_KIND_GAUGE, (double)ss.current},
			{"agent.send.on_primary", VG_KIND_GAUGE, ss.current == ss.primary ? 1.0 : 0.0},
			{"agent.send.failovers", VG_KIND_COUNTER, (double)ss.failovers},
			{"agent.send.failbacks", VG_KIND_COUNTER, (double)ss.failbacks},
			{"agent.events.received", VG_KIND_COUNTER, (double)es.received},
			{"agent.events.used", VG_KIND_COUNTER, (double)es.delivered},
			{"agent.batch.split", VG_KIND_COUNTER, (double)w.polls_split},
			{"agent.batch.left_out", VG_KIND_COUNTER, (double)w.left_out},
			{"agent.libvirt.xml_other", VG_KIND_COUNTER,
			 (double)vg_lv_xml_other(vg_poller_libvirt(poller))},
		};
		struct vg_poll_status st;
		struct vg_batch *b = vg_batch_new(cfg.agent_host, vg_spool_stream(spool), seq, t);
		if (!b || vg_poller_poll(poller, t, extra, sizeof(extra) / sizeof(extra[0]),
					 b, &st) != 0) {
			vg_error("out of memory while polling");
			vg_batch_free(b);
			exit_code = 1;
			break;
		}
		if (st.libvirt_rc && !w.lv_down) {
			vg_warn("libvirt %s unavailable: %s; reporting a gap and retrying with back-off",
				cfg.agent_libvirt, st.libvirt_err && *st.libvirt_err ? st.libvirt_err : strerror(-st.libvirt_rc));
			w.lv_down = 1;
		} else if (st.libvirt_recovered) {
			vg_info("libvirt %s is back (%zu domains)", cfg.agent_libvirt, st.ndomains);
			w.lv_down = 0;
		}
		if (st.proc_failed)
			vg_log_limited(VG_LOG_WARN, &w.proc_log,
				       "could not read some of %s (mask %#x: 1 stat, 2 meminfo, 4 loadavg, 8 diskstats, 16 net/dev)",
				       cfg.agent_proc_root, st.proc_failed);

		uint64_t xo = vg_lv_xml_other(vg_poller_libvirt(poller));
		if (xo != w.xml_other)
			vg_debug("poll %llu: %llu domain XML read(s) of another incarnation than "
				 "the statistics (stopped, redefined or started in between): "
				 "the previous identity and flavor kept (agent.libvirt.xml_other)",
				 (unsigned long long)seq, (unsigned long long)(xo - w.xml_other));
		w.xml_other = xo;
		spool_poll(&w, spool, sender, &cfg, b);
		vg_batch_free(b);
		watch_sender(&w, sender, spool, &cfg);
		vg_debug("poll %llu: %zu domains, %.3f ms", (unsigned long long)seq,
			 st.ndomains, st.duration_s * 1e3);

		vg_clock_tick(&clk);
		if (count && ++polls >= count)
			break;
		next += interval_ms;
		int64_t now = vg_monotonic_ms();
		if (next <= now) {
			int64_t missed = (now - next) / interval_ms + 1;
			next += missed * interval_ms;
			vg_log_limited(VG_LOG_WARN, &w.overrun_log,
				       "poll took longer than the interval (%.3g s): skipped %lld deadline(s)",
				       cfg.agent_interval_s, (long long)missed);
		}
		while (!g_stop && !g_hup && (now = vg_monotonic_ms()) < next)
			vg_sleep_ms(next - now > 200 ? 200 : next - now);
	}

	if (events) {
		struct vg_events_stats es;
		vg_events_get_stats(events, &es);
		vg_info("lifecycle events: %llu received from libvirt, %llu "
			"used; %llu connection(s)",
			(unsigned long long)es.received,
			(unsigned long long)es.delivered,
			(unsigned long long)es.connects);
	}
	vg_events_stop(events);
	vg_info("stopping: delivering what is spooled (up to %u ms)",
		(unsigned)cfg.agent_drain_ms);
	struct drain_watch dw = {&w, sender, spool, &cfg};
	if (vg_sender_drain(sender, cfg.agent_drain_ms, drain_tick, &dw) != 0)
		vg_warn("%zu batch(es) left in %s; they are sent at the next start",
			vg_spool_count(spool), cfg.agent_spool_dir);
	vg_sender_free(sender);
	vg_spool_close(spool);
	vg_poller_free(poller);
	return exit_code;
}
