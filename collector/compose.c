/*
 * compose.c — vigie-collector's main and its composition root: flags and
 * config, then the receiver loop.
 *
 * This is the one file that sees every part: the collector core (receiver,
 * registry, store), the consumers (alarms, billing) and the HTTP API. It
 * creates each, hands them to each other through their public headers and
 * tears them down in reverse. Nothing else in collector/ includes a
 * consumer or the API (tests/layers_test.sh checks it).
 *
 * Design. Read the defaults, the config file (--config) and the flags (which
 * override the file through vg_config_set, so they are validated the same
 * way); create the data directory; open the RRD store and the receiver's
 * registry handle; register the consumers (the store first, then the
 * registry: a batch the store refuses, answered RETRY or 503, reaches no
 * other consumer, so it leaves no resource, metric row, last value or
 * last-seen time behind; one the registry then refuses is in the journal,
 * and its resend finds its values duplicates and registers them); start
 * the HTTP API on its own threads; run the receiver on this thread until SIGTERM or SIGINT.
 *
 * Signed agents: the keys of [collector] keys_dir are loaded at start-up
 * (a bad or world-readable key file, or a missing directory while
 * require_signatures is on, is a configuration error: exit 2) and handed
 * to the receiver with the signature policy.
 *
 * Signals only set flags: SIGTERM/SIGINT stop the receiver, which finishes
 * and answers the batch in hand; SIGHUP reloads the keys from the receiver
 * loop (between two batches; a keys directory that no longer loads keeps
 * the old keys and logs why), the metric stream's two key files too (the
 * same rule, vg_cluster_set_keys); other configuration needs a restart;
 * SIGUSR1 writes the store's cache to the files from the receiver loop
 * (collector/storage_flush.c, `vigie-collector storage flush`). SIGUSR1 is
 * ignored from the first line of main until its handler is set, so an
 * early one never kills the process. Signals are blocked while the API
 * threads start so that only this thread handles them.
 *
 * Exit status: 0 after a clean stop, 2 on bad usage or configuration (one
 * line naming the file, line and key), 1 when start-up fails otherwise
 * (data directory not writable, address in use).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vigie/alarm_engine.h"
#include "vigie/alarm_exec.h"
#include "vigie/alarm_lease.h"
#include "vigie/alarm_pub.h"
#include "vigie/alarm_stream.h"
#include "vigie/api.h"
#include "vigie/token.h"
#include "vigie/cluster.h"
#include "vigie/config.h"
#include "vigie/db.h"
#include "vigie/dispatch.h"
#include "vigie/fsutil.h"
#include "vigie/lifecycle.h"
#include "vigie/log.h"
#include "vigie/receiver.h"
#include "vigie/registry.h"
#include "vigie/sign.h"
#include "vigie/store.h"
#include "vigie/bill_meter.h"
#include "vigie/bill_service.h"
#include "vigie/api_static.h"
#include "vigie/storage_cmd.h"

#define PROG "vigie-collector"

static struct vg_receiver *g_rx;
static volatile sig_atomic_t g_hup;
static volatile sig_atomic_t g_usr1;
static struct vg_store *g_store; /* for SIGUSR1's flush */
static const char *g_data_dir;
static int g_token_argi;          /* argv index of "token", 0 if none */
static int g_storage_argi;        /* argv index of "storage", 0 if none */
static struct vg_keyring *g_keys; /* owned; replaced on SIGHUP */
static const char *g_keys_dir;
static int g_require;
static const struct vg_config *g_cfg; /* for SIGHUP's stream keys */
static struct vg_cluster *g_cluster;  /* NULL: not in a cluster */
static int g_config_argi;             /* argv index of "config", 0 if none */
static const char *g_config_path;     /* --config FILE, NULL if none */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [options]\n"
		"Receives batches from vigie agents, stores them in RRD files and\n"
		"serves the HTTP JSON API.\n"
		"\n"
		"  --listen URL       nanomsg address for agents (default tcp://*:7470)\n"
		"  --http HOST:PORT   HTTP API address (default 127.0.0.1:7480)\n"
		"  --data-dir DIR     RRD files and registry.db (default /var/lib/vigie)\n"
		"  --notify URL       nanomsg PUB address for live alarms and metrics\n"
		"                     (e.g. tcp://*:7471; default off)\n"
		"  --config FILE      INI configuration (see docs/operations.md)\n"
		"  --log-level LEVEL  error, warn, info or debug (default info)\n"
		"  --keys-dir DIR     per-host agent keys, <host>.key (default\n"
		"                     /etc/vigie/keys; see docs/security.md)\n"
		"  --allow-unsigned   accept unsigned batches from hosts without a\n"
		"                     key (require_signatures = false; demos, tests)\n"
		"  --help             this text\n"
		"  token ...          manage API tokens offline and exit (see\n"
		"                     'token --help'; e.g. token create --admin)\n"
		"  storage stats      series, bytes, free space, ended series and\n"
		"                     growth per day, then exit\n"
		"  storage convert [--metric PATTERN]\n"
		"                     give existing series their [archives] rule\n"
		"                     (collector stopped; 'storage --help')\n"
		"\n"
		"  storage move --from ADDR --to ADDR --from-dir DIR --to-dir DIR\n"
		"               (--series PATTERN | --all) [--dry-run]\n"
		"                     move series between rrdcached daemons and\n"
		"                     verify them (collector stopped)\n"
		"  storage flush [--timeout SECONDS]\n"
		"                     make the running collector write its cache\n"
		"                     to the files (SIGUSR1) and wait until it did\n"
		"  config check       check the configuration as start-up would\n"
		"                     (key, TLS and rate card files read), then\n"
		"                     exit: 0, or 2 and why\n"
		"\n"
		"Flags override the configuration file. SIGTERM or SIGINT stops\n"
		"cleanly; SIGHUP reloads the agent keys and the metric stream's\n"
		"key files (restart for the rest);\n"
		"SIGUSR1 writes the cached values to the files.\n");
}

static void on_stop(int sig)
{
	(void)sig;
	vg_receiver_stop(g_rx);
}

static void on_hup(int sig)
{
	(void)sig;
	g_hup = 1;
}

static void on_usr1(int sig)
{
	(void)sig;
	g_usr1 = 1;
}

/* Load the keyring. A missing directory is no keys unless signatures are
 * required. 0, or -errno with the reason in err. */
static int load_keys(const char *dir, int require, struct vg_keyring **out,
		     char *err, size_t errlen)
{
	struct stat st;
	int rc;

	if (!require && stat(dir, &st) && errno == ENOENT) {
		*out = vg_keyring_new();
		return *out ? 0 : -ENOMEM;
	}
	rc = vg_keyring_load(dir, out, err, errlen);
	if (rc == -ENOENT && require)
		snprintf(err + strlen(err), errlen - strlen(err),
			 " (require_signatures is on: create it with one "
			 "<host>.key per agent, or set require_signatures = "
			 "false / --allow-unsigned)");
	return rc;
}

/* What the start reads or refuses besides the keys one at a time, in one
 * place that `config check` and the start both run before anything is
 * opened or created: the API's address, the storage keys that go
 * together, the webhook fence's exceptions, the TLS files, the agents'
 * keys directory, the metric stream's key files and the rate card. 0 with
 * the agents' keyring, the metric stream's keys (loaded once: the start
 * joins the cluster with them) and the billing service (its rate card)
 * in *ck, or -errno with one line naming the key (and the file) in err:
 * exit 2. */
struct checked {
	struct vg_keyring *keys;
	struct vg_key stream_key, accept_key; /* vg_config_stream_keys */
	struct vg_bill_service *billing;
};

static void checked_free(struct checked *ck)
{
	vg_keyring_free(ck->keys);
	vg_sign_key_wipe(&ck->stream_key);
	vg_sign_key_wipe(&ck->accept_key);
	vg_bill_service_close(ck->billing);
	memset(ck, 0, sizeof(*ck));
}

static int is_postgres(const char *url);

/* [storage] sync_interval with several collectors sharing rrdcached
 * daemons (a PostgreSQL [state] url, write-through): refused. A host
 * that moves to another collector leaves up to the interval of this
 * collector's acknowledged values taken by a daemon but not FLUSHed,
 * whose only other copy is this collector's journal; a daemon that
 * loses them (a kill -9 before its -j journal had them, its replay
 * race, a restart without -j) loses them for good once the host's next
 * collector wrote newer values (an RRD refuses the re-send as older),
 * or at once when this collector never comes back (docs/scaling.md
 * "sync_interval in a cluster"). With 0 that window is one batch's
 * sync. 0, or -EINVAL with the line in err. */
static int check_sync_interval(const struct vg_config *cfg, char *err, size_t errlen)
{
	int wt = !cfg->storage_write_through[0] ||
		 !strcmp(cfg->storage_write_through, "auto") ||
		 !strcmp(cfg->storage_write_through, "yes");

	if (cfg->storage_sync_interval_s <= 0 || cfg->storage_sync_interval_single_writer ||
	    strcmp(cfg->storage_backend, "rrdcached") || !wt || !cfg->state_url[0] ||
	    !is_postgres(cfg->state_url))
		return 0;
	snprintf(err, errlen,
		 "[storage] sync_interval = %gs with a PostgreSQL [state] url and "
		 "backend = rrdcached: several collectors writing one host's series "
		 "can lose acknowledged values (docs/scaling.md \"sync_interval in a "
		 "cluster\"); set sync_interval = 0, or sync_interval_single_writer = "
		 "yes if no other collector writes these series",
		 cfg->storage_sync_interval_s);
	return -EINVAL;
}

static int check_start(const struct vg_config *cfg, struct checked *ck, char *err,
		       size_t errlen)
{
	char why[480]; /* err is 512: room for the key before it */
	int rc;

	memset(ck, 0, sizeof(*ck));
	if ((rc = vg_api_listen_check(cfg->collector_http, why, sizeof(why)))) {
		snprintf(err, errlen, "[collector] http: %s", why);
		return rc;
	}
	if (strcmp(cfg->storage_backend, "rrdcached") &&
	    (cfg->storage_daemons[0] || cfg->storage_daemon_base[0])) {
		/* the series would be files under data_dir, unreachable once
		 * backend = rrdcached is added */
		snprintf(err, errlen,
			 "[storage] %s is set but backend is %s: set backend = "
			 "rrdcached to store on the daemons, or remove it",
			 cfg->storage_daemons[0] ? "daemons" : "daemon_base",
			 cfg->storage_backend[0] ? cfg->storage_backend : "files");
		return -EINVAL;
	}
	if (!strcmp(cfg->storage_backend, "rrdcached") && !cfg->storage_daemons[0]) {
		snprintf(err, errlen, "[storage] backend = rrdcached needs [storage] daemons");
		return -EINVAL;
	}
	if ((rc = check_sync_interval(cfg, err, errlen)))
		return rc;
	if ((rc = vg_alarm_webhook_allow_check(cfg->alarms_webhook_allow, why, sizeof(why)))) {
		snprintf(err, errlen, "[alarms] webhook_allow: %s", why);
		return rc;
	}
	if ((rc = vg_api_tls_read(cfg->collector_tls_cert, cfg->collector_tls_key, NULL,
				  NULL, err, errlen)))
		return rc;
	if ((rc = load_keys(cfg->collector_keys_dir, cfg->collector_require_signatures,
			    &ck->keys, err, errlen))) {
		checked_free(ck);
		return rc;
	}
	if ((rc = vg_config_stream_keys(cfg, &ck->stream_key, &ck->accept_key, err, errlen))) {
		checked_free(ck);
		return rc;
	}
	/* the rate card: read and checked whole (prices, tiers, currency) */
	if ((rc = vg_bill_service_open(cfg->collector_data_dir, cfg->state_url,
				       cfg->billing_ratecard, &ck->billing, why,
				       sizeof(why)))) {
		snprintf(err, errlen, "[billing] ratecard: %s", why);
		checked_free(ck);
		return rc;
	}
	return 0;
}

/* SIGHUP: the metric stream's key files again (docs/operations.md,
 * "Rotating the stream key"). Either file bad: the keys in use stay,
 * logged once here and counted. */
static void reload_stream_keys(void)
{
	struct vg_key sign, accept;
	char err[512];

	if (!g_cluster || !vg_cluster_keyed(g_cluster))
		return; /* unsigned or no stream: nothing to re-read */
	if (vg_config_stream_keys(g_cfg, &sign, &accept, err, sizeof(err))) {
		vg_cluster_key_reload_failed(g_cluster);
		vg_error("SIGHUP: keeping the metric stream's keys loaded before: %s "
			 "(vigie_cluster_stream_key_reloads_total{result=\"error\"})",
			 err);
		return;
	}
	vg_cluster_set_keys(g_cluster, &sign, &accept);
	vg_info("SIGHUP: the metric stream's key reloaded from %s%s%s",
		g_cfg->cluster_stream_key_file,
		accept.len ? ", also taking the key of " : "",
		accept.len ? g_cfg->cluster_stream_accept_key_file : "");
	vg_sign_key_wipe(&sign);
	vg_sign_key_wipe(&accept);
}

static void idle(void *ctx)
{
	struct vg_keyring *kr = NULL;
	char err[512] = "";

	(void)ctx;
	if (g_usr1 && g_store) {
		char msg[256];
		int rc;
		g_usr1 = 0;
		rc = vg_storage_flush_serve(g_store, g_data_dir, msg, sizeof(msg));
		if (rc)
			vg_error("SIGUSR1: %s (%s)", msg, strerror(-rc));
		else
			vg_info("SIGUSR1: %s", msg);
	}
	if (!g_hup)
		return;
	g_hup = 0;
	reload_stream_keys();
	if (load_keys(g_keys_dir, g_require, &kr, err, sizeof(err))) {
		vg_error("SIGHUP: keeping the %zu agent key(s) loaded before: %s",
			 vg_keyring_count(g_keys), err);
		return;
	}
	vg_receiver_set_keys(g_rx, kr);
	vg_keyring_free(g_keys);
	g_keys = kr;
	vg_info("SIGHUP: %zu agent key(s) loaded from %s; restart to apply "
		"other configuration changes",
		vg_keyring_count(kr), g_keys_dir);
}

/* Alarms: the PUB socket (when [alarms] notify is set), the SSE
 * hub and the engine, registered after the store so a sample is stored
 * before an alarm acts on it. Threads start here, with signals blocked.
 * 0, or 1 after logging why. */
/* An alarm's metric is known when some resource of the project reported
 * it (a custom metric not in the catalogue). */
static int metric_seen(void *ctx, const char *project, const char *metric)
{
	return vg_registry_metric_seen(ctx, project, metric);
}

static int start_alarms(const struct vg_config *cfg, struct vg_dispatch *d,
			struct vg_registry *reg, struct vg_alarm_pub **pub,
			struct vg_alarm_hub **hub, struct vg_alarm_engine **eng)
{
	struct vg_alarm_exec_cmd exec[VG_MAX_EXEC];
	struct vg_alarm_engine_options o;
	struct vg_consumer cons;
	char err[512];

	memset(&o, 0, sizeof(o));
	for (size_t i = 0; i < cfg->alarms_nexec; i++)
		if (vg_alarm_exec_parse(cfg->alarms_exec[i], &exec[i], err, sizeof(err))) {
			vg_error("[alarms] exec '%s': %s", cfg->alarms_exec[i], err);
			return 1;
		}
	if (cfg->alarms_notify[0] && strcmp(cfg->alarms_notify, "off") &&
	    vg_alarm_pub_open(cfg->alarms_notify, 0, pub, err, sizeof(err))) {
		vg_error("%s", err);
		return 1;
	}
	if (vg_alarm_hub_new(0, 0, hub)) {
		vg_error("alarms: out of memory");
		return 1;
	}
	/* the alarm store: alarms.db in data_dir, or the shared state
	 * database when [state] url is set (vigie/alarm_store.h) */
	o.data_dir = cfg->state_url[0] ? cfg->state_url : cfg->collector_data_dir;
	o.agent_interval_s = cfg->agent_interval_s;
	o.pub = *pub;
	o.hub = *hub;
	o.exec = exec;
	o.nexec = cfg->alarms_nexec;
	o.alertmanager_url = cfg->alarms_alertmanager[0] &&
					     strcmp(cfg->alarms_alertmanager, "off")
				     ? cfg->alarms_alertmanager
				     : NULL;
	o.webhook_timeout_ms = (int64_t)(cfg->alarms_webhook_timeout_s * 1000);
	o.webhook_allow = cfg->alarms_webhook_allow;
	o.max_alarms_per_project = cfg->alarms_max_alarms_per_project;
	o.silence_end_quiet = !cfg->alarms_notify_after_silence;
	o.max_webhooks_per_project = cfg->alarms_max_webhooks_per_project;
	o.max_silences_per_project = cfg->alarms_max_silences_per_project;
	o.max_notifications_per_minute = cfg->alarms_max_notifications_per_minute;
	o.retry_initial_ms = (int64_t)(cfg->alarms_retry_initial_s * 1000);
	o.retry_max_ms = (int64_t)(cfg->alarms_retry_max_s * 1000);
	o.retry_for_ms = (int64_t)(cfg->alarms_retry_for_s * 1000);
	o.exec_timeout_ms = (int64_t)(cfg->alarms_exec_timeout_s * 1000);
	o.history_retention_ms = (int64_t)(cfg->alarms_history_retention_s * 1000);
	o.deliver = 1;
	o.check_metrics = 1;
	o.metric_seen = reg ? metric_seen : NULL;
	o.metric_ctx = reg;
	if (vg_alarm_engine_open(&o, eng, err, sizeof(err))) {
		vg_error("%s", err);
		return 1;
	}
	cons = vg_alarm_engine_consumer(*eng);
	vg_dispatch_add(d, &cons);
	if (*pub) {
		cons = vg_alarm_pub_consumer(*pub);
		vg_dispatch_add(d, &cons);
	}
	if (*pub)
		vg_info("alarms and metrics published on %s", cfg->alarms_notify);
	return 0;
}

/* ---- clustered alarms ---------------------------------------------------------
 * With a PostgreSQL [state] url the collector is one node of a cluster
 * (vigie/cluster.h): the registry thread's rounds run the alarm leases
 * (vigie/alarm_lease.h) and tell the engine what it owns; the peers'
 * batches from the metric stream go to the engine only. */
struct cluster_ctx {
	struct vg_alarm_engine *alarms;
	struct vg_alarm_lease *lease;
	uint64_t log_lease;
	struct vg_alarm_lease_stats last; /* at the previous round, for the log */
};

/* What an operator sees move: the hold after an outage (why a dead
 * peer's alarms wait a lease more) and the leases taken from others. */
static void log_lease_round(struct cluster_ctx *cc)
{
	struct vg_alarm_lease_stats now;

	vg_alarm_lease_get_stats(cc->lease, &now);
	if (now.hold_left_ms && !cc->last.hold_left_ms)
		vg_info("cluster: rounds answer again after failing; for %lld ms "
			"this node takes no alarm lease another collector held "
			"(the live ones renew theirs meanwhile)",
			(long long)now.hold_left_ms);
	if (now.taken > cc->last.taken)
		vg_info("cluster: took %llu alarm leases other collectors let expire",
			(unsigned long long)(now.taken - cc->last.taken));
	cc->last = now;
}

static void cluster_round(void *ctx, const char *const *live, size_t n, int ok)
{
	struct cluster_ctx *cc = ctx;
	struct vg_alarm_lease_item *items = NULL;
	size_t ni = 0;

	if (!ok) /* the leases hold back once it answers again */
		vg_alarm_lease_unreachable(cc->lease);
	if (!ok || vg_alarm_lease_round(cc->lease, live, n, &items, &ni)) {
		if (ok)
			vg_log_limited(VG_LOG_ERROR, &cc->log_lease,
				       "cluster: alarm leases: %s; this node "
				       "evaluates no alarm until they can be renewed",
				       vg_alarm_lease_errmsg(cc->lease));
		vg_alarm_engine_disown_all(cc->alarms);
		return;
	}
	log_lease_round(cc);
	vg_alarm_engine_own(cc->alarms, items, ni);
	free(items);
}

static void cluster_peer_batch(void *ctx, const struct vg_batch *b)
{
	struct cluster_ctx *cc = ctx;

	vg_alarm_engine_batch(cc->alarms, b);
}

/* An alarm was created through this node's API: lease it before the API
 * answers. Until a round leases it, the periods of the batches this node
 * acknowledges are kept for it in memory only (its shadow, replayed at
 * the takeover): a kill -9 in that window lost them, and with them a
 * transition they would have made with the data after the restart (an M
 * of N pending across the kill). Waiting here closes the window for an
 * alarm this node owns; a round that does not end within a lease is logged and the API
 * answers anyway (the alarm is stored; the round still leases it). */
static void cluster_lease_new(void *ctx)
{
	int rc = vg_cluster_round_wait(ctx);

	if (rc == -ETIMEDOUT)
		vg_warn("cluster: the lease round after an alarm's creation did "
			"not end within a lease; until it does, the batches of "
			"the new alarm are kept in memory only");
}

/* vigie/db.h's rule for a PostgreSQL URL. */
static int is_postgres(const char *url)
{
	const char *eq = strchr(url, '='), *sl = strchr(url, '/');

	return !strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11) ||
	       (eq && (!sl || sl > eq));
}

/* Join the cluster: leases, then the registry and stream (whose first
 * round hands the engine its alarms), the stream signed with the keys
 * check_start loaded (none: stream_insecure; a stream without a key was
 * refused there). 0, or 1 after logging why. */
static int start_cluster(const struct vg_config *cfg, struct vg_dispatch *d,
			 struct cluster_ctx *cc, const struct vg_key *stream_key,
			 const struct vg_key *accept_key, struct vg_cluster **out)
{
	struct vg_cluster_options co;
	struct vg_consumer cons;
	char node[256], err[512], instance[128 + PATH_MAX + 2];
	int64_t lease_ms = (int64_t)(cfg->cluster_lease_s * 1000);
	int rc;

	if (cfg->cluster_node[0])
		snprintf(node, sizeof(node), "%s", cfg->cluster_node);
	else
		vg_cluster_node_id(cfg->collector_listen, node, sizeof(node));
	if (vg_alarm_lease_open(cfg->state_url, node, lease_ms, &cc->lease, err,
				sizeof(err))) {
		vg_error("cluster: %s", err);
		return 1;
	}
	vg_alarm_engine_cluster(cc->alarms, node);
	memset(&co, 0, sizeof(co));
	co.url = cfg->state_url;
	co.node = node;
	co.stream = cfg->cluster_stream;
	co.stream_key = stream_key->len ? stream_key : NULL;
	co.stream_accept_key = accept_key->len ? accept_key : NULL;
	co.stream_window_ms = (int64_t)(cfg->cluster_stream_window_s * 1000);
	co.api = cfg->collector_http;
	{ /* one process at a time owns data_dir (its journal's lock) */
		char host[128] = "", real[PATH_MAX];
		if (gethostname(host, sizeof(host) - 1) || !host[0])
			snprintf(host, sizeof(host), "localhost");
		if (!realpath(cfg->collector_data_dir, real))
			snprintf(real, sizeof(real), "%s", cfg->collector_data_dir);
		snprintf(instance, sizeof(instance), "%s:%s", host, real);
		co.instance = instance;
	}
	co.lease_ms = lease_ms;
	co.round = cluster_round;
	co.peer_batch = cluster_peer_batch;
	co.ctx = cc;
	rc = vg_cluster_start(&co, out, err, sizeof(err));
	if (rc) {
		vg_error("%s", err);
		return 1;
	}
	vg_alarm_engine_on_create(cc->alarms, cluster_lease_new, *out);
	cons = vg_cluster_consumer(*out);
	vg_dispatch_add(d, &cons);
	return 0;
}

struct override {
	const char *section, *key, *value;
};
#define MAX_OVERRIDES 32

/* Parse flags and config into *cfg. Returns 0, 1 for --help, or 2 (the
 * exit status) after printing one line. */
static int configure(int argc, char **argv, struct vg_config *cfg)
{
	enum { O_LISTEN = 256,
	       O_HTTP,
	       O_DATA,
	       O_CONFIG,
	       O_LOGLEVEL,
	       O_HELP,
	       O_NOTIFY,
	       O_KEYS,
	       O_UNSIGNED };
	static const struct option opts[] = {
		{"listen", required_argument, NULL, O_LISTEN},
		{"http", required_argument, NULL, O_HTTP},
		{"data-dir", required_argument, NULL, O_DATA},
		{"config", required_argument, NULL, O_CONFIG},
		{"log-level", required_argument, NULL, O_LOGLEVEL},
		{"help", no_argument, NULL, O_HELP},
		{"notify", required_argument, NULL, O_NOTIFY},
		{"keys-dir", required_argument, NULL, O_KEYS},
		{"allow-unsigned", no_argument, NULL, O_UNSIGNED},
		{NULL, 0, NULL, 0},
	};
	/* the flags that set one configuration key: to their value, or fixed */
	static const struct {
		int opt;
		const char *section, *key, *fixed;
	} keys[] = {
		{O_LISTEN, "collector", "listen", NULL},
		{O_HTTP, "collector", "http", NULL},
		{O_DATA, "collector", "data_dir", NULL},
		{O_LOGLEVEL, "log", "level", NULL},
		{O_KEYS, "collector", "keys_dir", NULL},
		{O_UNSIGNED, "collector", "require_signatures", "false"},
		{O_NOTIFY, "alarms", "notify", NULL},
	};
	struct override set[MAX_OVERRIDES];
	int nset = 0, c;
	const char *config = NULL;
	char err[512];

	vg_config_defaults(cfg);
	opterr = 0;
	/* '+': stop at the first non-option (the "token" command) */
	while ((c = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
		size_t k = 0;

		while (k < sizeof(keys) / sizeof(keys[0]) && keys[k].opt != c)
			k++;
		if (k < sizeof(keys) / sizeof(keys[0])) {
			if (nset < MAX_OVERRIDES)
				set[nset] = (struct override){
					keys[k].section, keys[k].key,
					keys[k].fixed ? keys[k].fixed : optarg};
			nset++;
			continue;
		}
		switch (c) {
		case O_CONFIG:
			config = optarg;
			break;
		case O_HELP:
			usage(stdout);
			return 1;
		case ':':
			fprintf(stderr, PROG ": %s needs a value (see --help)\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, PROG ": unknown option '%s' (see --help)\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc && !strcmp(argv[optind], "token")) {
		g_token_argi = optind; /* the offline API token command */
	} else if (optind < argc && !strcmp(argv[optind], "storage")) {
		g_storage_argi = optind; /* storage stats / convert */
	} else if (optind + 2 == argc && !strcmp(argv[optind], "config") &&
		   !strcmp(argv[optind + 1], "check")) {
		g_config_argi = optind; /* check the configuration, then exit */
	} else if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s' (see --help)\n",
			argv[optind]);
		return 2;
	}
	if (nset > MAX_OVERRIDES) {
		fprintf(stderr, PROG ": too many options\n");
		return 2;
	}
	g_config_path = config;
	if (config && vg_config_load(cfg, config, err, sizeof(err))) {
		fprintf(stderr, PROG ": %s\n", err);
		return 2;
	}
	for (int i = 0; i < nset; i++) {
		if (vg_config_set(cfg, set[i].section, set[i].key, set[i].value,
				  err, sizeof(err))) {
			fprintf(stderr, PROG ": %s\n", err);
			return 2;
		}
	}
	/* keys checked together: before anything is opened or created (the
	 * store refused them only once the data directory existed, exit 1) */
	if (vg_config_check(cfg, err, sizeof(err))) {
		fprintf(stderr, PROG ": %s%s%s\n", config ? config : "", config ? ": " : "", err);
		return 2;
	}
	return 0;
}

/* One line of the stop summary: each count after its own words, which
 * carry the separator before them (", rejected ", "; samples "), then
 * tail. */
struct count {
	const char *words;
	uint64_t n;
};

static void log_counts(const struct count *c, size_t n, const char *tail)
{
	char line[1024];
	size_t off = 0;

	line[0] = '\0';
	for (size_t i = 0; i < n && off < sizeof(line); i++) {
		int k = snprintf(line + off, sizeof(line) - off, "%s%llu",
				 c[i].words, (unsigned long long)c[i].n);
		if (k < 0)
			break;
		off += (size_t)k;
	}
	vg_info("%s%s", line, tail);
}

int main(int argc, char **argv)
{
	struct vg_config cfg;
	struct vg_store *store = NULL;
	struct vg_registry *reg = NULL;
	struct vg_registry *lost_reg = NULL; /* vg_receiver_hold_lost's */
	struct vg_api *api = NULL;
	struct vg_alarm_pub *pub = NULL;
	struct vg_alarm_hub *hub = NULL;
	struct vg_alarm_engine *alarms = NULL;
	struct vg_bill_meter *meter = NULL;
	struct vg_bill_service *billing = NULL;
	struct vg_lifecycle *lifecycle = NULL;
	struct vg_cluster *cluster = NULL;
	struct cluster_ctx cctx = {0};
	struct vg_dispatch dispatch;
	struct vg_consumer cons;
	struct vg_consumer_hooks hooks;
	struct vg_receiver_options ro;
	struct vg_api_options ao;
	struct checked ck;
	struct vg_receiver_stats cs;
	struct vg_store_stats ss;
	struct sigaction sa;
	sigset_t block, old;
	char err[512];
	int rc, status = 1;

	/* Files this process creates (databases, RRD files, the journal) are
	 * its user's and its group's at most, whoever started it;
	 * tokens and keys are created 0600 at their open. */
	umask(umask(0) | 027);
	signal(SIGUSR1, SIG_IGN); /* until the receiver loop flushes on it */
	rc = configure(argc, argv, &cfg);
	if (rc)
		return rc == 1 ? 0 : rc;
	/* every state database this process migrates, its commands' too */
	vg_db_set_migrate_wait(cfg.state_migrate_lock_timeout_ms,
			       (uint32_t)(cfg.state_migrate_wait_s * 1000));
	if (g_token_argi && geteuid() == 0) {
		/* root making tokens.db in vigie's data dir leaves a file the
		 * service cannot open */
		struct stat dst;
		if (stat(cfg.collector_data_dir, &dst) == 0 && dst.st_uid != 0)
			fprintf(stderr, PROG ": warning: running as root in %s, "
					     "which uid %u owns; files made now are root's: run "
					     "as its owner (runuser -u vigie -- ...)\n",
				cfg.collector_data_dir, (unsigned)dst.st_uid);
	}
	if (g_token_argi) /* `vigie-collector [...] token ...`, then exit */
		return vg_token_command_state(cfg.collector_data_dir, cfg.state_url,
					      cfg.state_token_key,
					      argc - g_token_argi, argv + g_token_argi,
					      stdout, stderr);
	if (g_storage_argi) /* `vigie-collector [...] storage ...`, then exit */
		return vg_storage_command(&cfg, argc - g_storage_argi,
					  argv + g_storage_argi, stdout, stderr);
	/* what the start refuses, before anything is opened or created: a
	 * configuration error (exit 2), not a half-started collector */
	if (check_start(&cfg, &ck, err, sizeof(err))) {
		fprintf(stderr, PROG ": %s%s%s\n", g_config_path ? g_config_path : "",
			g_config_path ? ": " : "", err);
		return 2;
	}
	if (g_config_argi) { /* `vigie-collector [...] config check` */
		checked_free(&ck);
		printf("configuration OK\n");
		return 0;
	}
	g_keys = ck.keys;
	billing = ck.billing;
	vg_log_init(PROG, cfg.log_level);
	if (geteuid() == 0)
		vg_log(VG_LOG_WARN, "running as root: vigie-collector needs no "
				    "privilege; run it as the vigie user (vigie-collector(8))");
	/* every agent connection, API connection, journal segment
	 * and RRD file being written holds a file descriptor: the
	 * soft limit (1024 by default) is raised to the hard one, and
	 * the API's connections are bounded below it (http.c) */
	vg_fs_raise_nofile_logged(4096);

	/* Agent keys: loaded by check_start (SIGHUP loads them again) */
	g_keys_dir = cfg.collector_keys_dir;
	g_require = cfg.collector_require_signatures;
	if (g_require && !vg_keyring_count(g_keys))
		vg_warn("no agent keys in %s and require_signatures is on: every "
			"batch will be refused until keys are added (then SIGHUP)",
			g_keys_dir);
	else
		vg_info("%zu agent key(s) from %s; signatures %s",
			vg_keyring_count(g_keys), g_keys_dir,
			g_require ? "required" : "checked for hosts that have a key");

	if ((rc = vg_fs_mkdir_p(cfg.collector_data_dir, 0755))) {
		vg_error("cannot create data directory %s: %s",
			 cfg.collector_data_dir, strerror(-rc));
		vg_keyring_free(g_keys);
		vg_bill_service_close(billing);
		return 1;
	}
	if ((rc = vg_store_open(cfg.collector_data_dir, &cfg, &store, err, sizeof(err)))) {
		vg_error("%s", err);
		if (rc == -EBUSY) /* another process owns the data directory */
			status = 2;
		goto out;
	}
	if (vg_store_daemon_wait_ms(store)) {
		/* The agents' ack timeout is theirs; the collector learns it
		 * only from its own configuration (the wire format has no room
		 * an older collector would accept). A longer one here than the
		 * agents' makes a slow daemon cost more than their timeout:
		 * they fail over. Say the bound, and warn if it is a default. */
		if (cfg.agent_ack_timeout_set)
			vg_info("storage: the receiver waits at most %u ms on a "
				"storage daemon per batch (a quarter of [agent] "
				"ack_timeout_ms = %u: keep it the agents' value)",
				vg_store_daemon_wait_ms(store), cfg.agent_ack_timeout_ms);
		else
			vg_warn("storage: the receiver waits at most %u ms on a "
				"storage daemon per batch, a quarter of [agent] "
				"ack_timeout_ms = %u, the default: this collector's "
				"configuration does not set it. Set it to the agents' "
				"value, or agents with a shorter ack timeout fail over "
				"while a daemon is slow (docs/operations.md)",
				vg_store_daemon_wait_ms(store), cfg.agent_ack_timeout_ms);
	}
	{ /* what the last run left behind (a kill -9, a power cut) */
		struct vg_store_stats st;
		vg_store_get_stats(store, &st);
		if (st.write_errors)
			vg_error("store: %llu value(s) of the journal could not be "
				 "written to their RRD files at replay (kept in "
				 "%s/journal/*.kept): %s",
				 (unsigned long long)st.write_errors,
				 cfg.collector_data_dir, vg_store_last_error(store));
		if (st.values_replayed || st.headers_restored)
			vg_warn("store: recovered from an unclean stop: %llu "
				"values replayed from the journal, %llu "
				"half-written RRD updates undone",
				(unsigned long long)st.values_replayed,
				(unsigned long long)st.headers_restored);
		if (st.values_pending) {
			/* a daemon down at the replay, or the replay's check of
			 * a daemon's files cut short at [storage] check_max (the
			 * daemon up): the collector starts and holds them, as it
			 * does for a daemon that goes down while it runs
			 * (docs/operations.md). The line names which. */
			char why[1200];
			struct vg_store_daemon dm[64];
			size_t nd = vg_store_daemons(store, dm, sizeof(dm) / sizeof(dm[0]));
			int down = 0;
			for (size_t i = 0; i < nd; i++)
				down |= !dm[i].up;
			int cause = vg_store_pending_cause(store, 1, why, sizeof(why));
			vg_warn("store: %llu replayed values wait for %s "
				"(%s): held in the cache and the journal and written "
				"once it answers and its files are checked%s (%s)",
				(unsigned long long)st.values_pending,
				cause & VG_STORE_PENDING_DAEMON ? "a storage daemon"
								: vg_store_pending_what(cause),
				why,
				down ? "; reads of a daemon not answering answer "
				       "503 meanwhile"
				     : "",
				vg_store_last_error(store));
		}
	}
	/* the state: sqlite files in the data dir, or [state] url */
	if (vg_registry_open_state(cfg.collector_data_dir, cfg.state_url, &reg,
				   err, sizeof(err))) {
		vg_error("%s", err);
		goto out;
	}
	if (cfg.state_url[0])
		vg_info("state: the registry and API tokens are in the "
			"[state] url database (not named here: it may hold a "
			"password)");
	/* Ended resources' series and rows, deleted keep_ended after they
	 * ended, on the sweeper's own thread and registry handle (started
	 * with signals not yet handled here: it blocks none and takes none,
	 * as the other threads started before the receiver). */
	if (vg_lifecycle_start(cfg.collector_data_dir, cfg.state_url, store,
			       (int64_t)(cfg.storage_keep_ended_s * 1000), 3600 * 1000,
			       &lifecycle, err, sizeof(err))) {
		vg_error("%s", err);
		goto out;
	}
	vg_dispatch_init(&dispatch);
	/* the store before the registry: a batch the store refuses (RETRY,
	 * 503) must leave no trace in the registry, whose rows and last
	 * values the API shows (the registry commits in batch(); later
	 * consumers are not called after an -EAGAIN: vigie/dispatch.h) */
	cons = vg_store_consumer(store);
	vg_dispatch_add(&dispatch, &cons);
	cons = vg_registry_consumer(reg);
	vg_dispatch_add(&dispatch, &cons);
	/* billing: usage metering after the store (the rate card was
	 * read by check_start, so a bad one stopped start-up: exit 2) */
	if (vg_bill_meter_open(billing->db_url, &meter, err, sizeof(err))) {
		vg_error("billing: %s", err);
		goto out;
	}
	if (cfg.state_url[0] && is_postgres(cfg.state_url)) {
		/* a collector stopped inside a batch's billing transaction
		 * holds its locks: past this bound a batch naming them is
		 * answered RETRY (docs/billing.md "Several collectors") */
		uint32_t lock_ms = cfg.billing_lock_timeout_ms;
		int lrc;

		if (!lock_ms) { /* a quarter of the agents' ack timeout */
			lock_ms = cfg.agent_ack_timeout_ms / 4;
			lock_ms = lock_ms < 100 ? 100 : lock_ms > 10000 ? 10000
									: lock_ms;
		}
		lrc = vg_bill_meter_set_lock_timeout(meter, lock_ms);
		if (lrc && lrc != -ECONNRESET && lrc != -ENOTCONN) {
			vg_error("billing: lock_timeout: %s",
				 vg_db_errmsg(vg_bill_meter_db(meter)));
			goto out;
		}
		vg_info("billing: a batch waits at most %u ms for billing locks "
			"another collector holds, then is answered RETRY (%s)",
			lock_ms,
			cfg.billing_lock_timeout_ms ? "[billing] lock_timeout_ms"
						    : "a quarter of [agent] ack_timeout_ms");
	}
	cons = vg_bill_meter_consumer(meter);
	hooks = vg_bill_meter_hooks(); /* overlaps PostgreSQL's work */
	vg_dispatch_add_hooks(&dispatch, &cons, &hooks);

	memset(&ro, 0, sizeof(ro));
	ro.listen = cfg.collector_listen;
	ro.max_message = cfg.collector_max_message;
	ro.registry = reg;
	ro.dispatch = &dispatch;
	ro.store = store;
	ro.idle = idle;
	ro.data_dir = cfg.collector_data_dir;
	ro.keys = g_keys;
	ro.require_signatures = cfg.collector_require_signatures;
	ro.max_clock_skew_ms = (int64_t)(cfg.collector_max_clock_skew_s * 1000);
	/* a collector's commit follows its sends by less than the agents'
	 * ack timeout; 1 s more for the collectors' clocks */
	ro.proof_margin_ms = (int64_t)cfg.agent_ack_timeout_ms + 1000;
	/* the proof, then the write and the commit (a quarter of it each),
	 * within the agents' ack timeout */
	ro.proof_timeout_ms = cfg.cluster_proof_timeout_ms ? (int64_t)cfg.cluster_proof_timeout_ms
							   : (int64_t)cfg.agent_ack_timeout_ms / 2;
	/* one deadline per batch, from its arrival, that the proof, the
	 * opens and the write-through draw from (docs/operations.md "One
	 * deadline per batch") */
	ro.ack_timeout_ms = cfg.agent_ack_timeout_ms;
	ro.max_future_ms = (int64_t)(cfg.collector_max_future_s * 1000);
	if (cfg.state_url[0] && is_postgres(cfg.state_url)) {
		/* holding marks (docs/scaling.md): named as the cluster names
		 * this node, lasting [cluster] hold_max past their last
		 * renewal, not the lease: a holder killed while its journal
		 * holds the values keeps its hosts until it comes back and
		 * writes them; written only by a store that writes through
		 * and holds values a daemon has not taken */
		char node[256];

		if (cfg.cluster_node[0])
			snprintf(node, sizeof(node), "%s", cfg.cluster_node);
		else
			vg_cluster_node_id(cfg.collector_listen, node, sizeof(node));
		ro.hold_ttl_ms = (int64_t)(cfg.cluster_hold_max_s * 1000);
		if (vg_registry_set_holder(reg, node, ro.hold_ttl_ms))
			ro.hold_ttl_ms = 0;
		/* verified rows (docs/scaling.md "Closing the second"): this
		 * node's commits carry its name and time, and its row the time
		 * up to which its syncs verified them; with wait_verified a
		 * host new here waits for the previous node's row. Only on
		 * the daemons: with files each collector writes its own
		 * files, no other collector's values are in them to be lost
		 * or overtaken, and nothing of another host's disk can be
		 * proven from here (the wait would last until the previous
		 * collector verified, or hold_max if it is gone) */
		ro.verified_rows = ro.hold_ttl_ms > 0;
		vg_registry_set_wait_verified(reg, cfg.cluster_wait_verified &&
							   !strcmp(cfg.storage_backend, "rrdcached"));
	}
	if (ro.hold_ttl_ms > 0 && vg_store_daemon_wait_ms(store)) {
		/* the hosts of files a restarted daemon lost, marked before
		 * their re-send (docs/scaling.md "Holding marks"), on the
		 * store's thread: a handle of its own, the same holder */
		char node[256];

		if (cfg.cluster_node[0])
			snprintf(node, sizeof(node), "%s", cfg.cluster_node);
		else
			vg_cluster_node_id(cfg.collector_listen, node, sizeof(node));
		if (vg_registry_open_state(cfg.collector_data_dir, cfg.state_url, &lost_reg, err,
					   sizeof(err)) ||
		    vg_registry_set_holder(lost_reg, node, ro.hold_ttl_ms)) {
			vg_error("%s", err);
			goto out;
		}
		ro.lost_registry = lost_reg;
	}
	if (vg_receiver_open(&ro, &g_rx, err, sizeof(err))) {
		vg_error("%s", err);
		goto out;
	}
	if (lost_reg)
		vg_store_on_lost(store, vg_receiver_hold_lost, g_rx);

	/* Handlers before the API answers /v1/health: a SIGTERM from whoever
	 * waited for it then stops the receiver cleanly, never kills the
	 * process (threads started so far do not block signals). */
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	g_store = store;
	g_data_dir = cfg.collector_data_dir;
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	/* Only this thread takes signals: block them while API threads start. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	if (start_alarms(&cfg, &dispatch, reg, &pub, &hub, &alarms)) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		goto out;
	}
	cctx.alarms = alarms;
	if ((cfg.cluster_stream[0] || cfg.cluster_node[0]) &&
	    !(cfg.state_url[0] && is_postgres(cfg.state_url)))
		vg_warn("[cluster] is ignored: several collectors need a "
			"PostgreSQL [state] url (this one evaluates every alarm)");
	if (cfg.state_url[0] && is_postgres(cfg.state_url) &&
	    start_cluster(&cfg, &dispatch, &cctx, &ck.stream_key, &ck.accept_key, &cluster)) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		goto out;
	}
	vg_sign_key_wipe(&ck.stream_key); /* the cluster holds its copy */
	vg_sign_key_wipe(&ck.accept_key);
	g_cfg = &cfg;
	g_cluster = cluster; /* SIGHUP re-reads its stream keys */
	if (vg_api_static_set_dir(cfg.collector_www_dir, err, sizeof(err)))
		vg_warn("web console: %s", err); /* the API runs without it */
	else
		vg_info("web console: serving %s at /", vg_api_static_dir());
	memset(&ao, 0, sizeof(ao));
	ao.listen = cfg.collector_http;
	ao.data_dir = cfg.collector_data_dir;
	ao.state_url = cfg.state_url;
	ao.state_token_key = cfg.state_token_key;
	ao.threads = cfg.collector_http_threads;
	ao.max_per_project = cfg.collector_http_max_per_project;
	ao.queue_per_project = cfg.collector_http_queue_per_project
				       ? cfg.collector_http_queue_per_project
				       : VG_API_NO_QUEUE;
	ao.queue_wait_ms = (unsigned)(cfg.collector_http_queue_wait_s * 1000 + 0.5);
	ao.store = store;
	ao.stats = vg_receiver_stats_fn;
	ao.stats_ctx = g_rx;
	ao.tls_cert = cfg.collector_tls_cert;
	ao.tls_key = cfg.collector_tls_key;
	ao.alarms = alarms;
	ao.alarm_hub = hub;
	ao.alarm_pub = pub;
	ao.lifecycle = lifecycle;
	ao.cluster = cluster;
	/* published measures: the receiver runs them (vg_receiver_submit)
	 * with the agents' time bounds */
	ao.receiver = g_rx;
	ao.max_future_ms = (int64_t)(cfg.collector_max_future_s * 1000);
	for (size_t i = 0; i < cfg.narchives; i++)
		if ((int64_t)cfg.archives[i].retention_s * 1000 > ao.max_age_ms)
			ao.max_age_ms = (int64_t)cfg.archives[i].retention_s * 1000;
	ao.publish_points_per_s = cfg.collector_publish_points_per_s;
	ao.publish_series_max = cfg.collector_publish_series_max;
	rc = vg_api_start(&ao, &api, err, sizeof(err));
	if (rc) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		vg_error("HTTP API on %s: %s", cfg.collector_http, err);
		goto out;
	}
	vg_api_set_billing(api, billing);
	vg_api_set_meter(api, meter);
	sigdelset(&block, SIGPIPE);
	pthread_sigmask(SIG_UNBLOCK, &block, NULL);

	vg_info("listening for agents on %s, HTTP API on %s, data in %s",
		cfg.collector_listen, cfg.collector_http, cfg.collector_data_dir);
	rc = vg_receiver_run(g_rx);
	if (rc)
		vg_error("receiver stopped: %s", strerror(-rc));
	else
		vg_info("stopping");
	status = rc ? 1 : 0;

	vg_receiver_get_stats(g_rx, &cs);
	vg_store_get_stats(store, &ss);
	{
		const struct count traffic[] = {
			{"batches received ", cs.batches_received},
			{", rejected ", cs.batches_rejected},
			{", duplicate ", cs.batches_duplicate},
			{", retry ", cs.batches_retry},
			{"; samples ", cs.samples_received},
			{"; values written ", ss.values_written},
			{", duplicate ", ss.values_duplicate},
			{", refused ", ss.values_rejected},
			{", write errors ", ss.write_errors},
			{"; files created ", ss.files_created},
			{"; groups ", cs.groups},
			{" of batches ", cs.batches_grouped},
			{", deferred ", cs.batches_deferred}};
		const struct count refused[] = {
			{"batches refused: unsigned ", cs.batches_unsigned},
			{", forged ", cs.batches_forged},
			{", wrong host ", cs.batches_wrong_host},
			{", no key ", cs.batches_no_key},
			{", stale ", cs.batches_stale},
			{", future ", cs.batches_future},
			{"; malformed ", cs.batches_malformed},
			{", oversize ", cs.batches_oversize},
			{", clock unset ", cs.batches_clock_unset},
			{", bad name ", cs.batches_bad_name},
			{"; another host's resources dropped ",
			 cs.resources_foreign},
			{"; projects trimmed ", cs.projects_trimmed}};
		log_counts(traffic, sizeof(traffic) / sizeof(traffic[0]), "");
		log_counts(refused, sizeof(refused) / sizeof(refused[0]), "");
	}
	/* Write the store's cache now (vg_store_close would), so that the
	 * write-behind figures below are final (bench/fleet.c reads them). */
	vg_store_flush(store);
	vg_store_get_stats(store, &ss);
	{
		const struct count flushed[] = {
			{"store: values flushed ", ss.values_flushed},
			{" in ", ss.flushes},
			{" librrd calls, write errors ", ss.write_errors},
			{", cache peak ", ss.pending_peak},
			{" values in ", ss.cache_bytes_peak},
			{" bytes, cache full ", ss.cache_full},
			{", replayed ", ss.values_replayed},
			{", journal ", ss.journal_bytes},
			{" bytes in ", ss.journal_syncs}};
		log_counts(flushed, sizeof(flushed) / sizeof(flushed[0]),
			   " syncs");
	}
	if (ss.write_errors)
		vg_error("store: %llu value(s) could not be written to their RRD "
			 "files: %s %llu, %s %llu, %s %llu, %s %llu; %llu journal "
			 "segment(s) kept in %s/journal/*.kept, %llu deleted (16 "
			 "kept already; docs/operations.md)",
			 (unsigned long long)ss.write_errors,
			 vg_store_err_reason(VG_STORE_ERR_TIME),
			 (unsigned long long)ss.write_errors_by[VG_STORE_ERR_TIME],
			 vg_store_err_reason(VG_STORE_ERR_FILE),
			 (unsigned long long)ss.write_errors_by[VG_STORE_ERR_FILE],
			 vg_store_err_reason(VG_STORE_ERR_MEMORY),
			 (unsigned long long)ss.write_errors_by[VG_STORE_ERR_MEMORY],
			 vg_store_err_reason(VG_STORE_ERR_OTHER),
			 (unsigned long long)ss.write_errors_by[VG_STORE_ERR_OTHER],
			 (unsigned long long)ss.segments_kept, cfg.collector_data_dir,
			 (unsigned long long)ss.segments_kept_dropped);
out:
	vg_api_stop(api);
	g_cluster = NULL;
	vg_cluster_stop(cluster); /* no more rounds nor peer batches */
	vg_alarm_hub_shutdown(hub);
	vg_alarm_engine_close(alarms); /* after the receiver: no batch in flight */
	/* after the engine's last commit (fenced by these leases): hands
	 * this node's alarms over at once */
	vg_alarm_lease_close(cctx.lease);
	if (store)
		vg_store_on_lost(store, NULL, NULL); /* before the receiver goes */
	vg_receiver_close(g_rx);
	g_rx = NULL;
	vg_registry_close(lost_reg);
	vg_lifecycle_stop(lifecycle); /* before the store it deletes through */
	vg_registry_close(reg);
	vg_store_close(store);
	vg_alarm_pub_close(pub);
	vg_alarm_hub_free(hub);
	vg_bill_meter_close(meter);
	vg_bill_service_close(billing);
	vg_keyring_free(g_keys);
	vg_sign_key_wipe(&ck.stream_key); /* a start that stopped before the cluster */
	vg_sign_key_wipe(&ck.accept_key);
	return status;
}
