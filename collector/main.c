/*
 * main.c — vigie-collector: flags and config, then the receiver loop.
 *
 * Design. Read the defaults, the config file (--config) and the flags (which
 * override the file through vg_config_set, so they are validated the same
 * way); create the data directory; open the RRD store and the receiver's
 * registry handle; register the consumers (registry first, so a resource
 * exists before its series, then the store); start the HTTP API on its own
 * threads; run the receiver on this thread until SIGTERM or SIGINT.
 *
 * Signals only set flags: SIGTERM/SIGINT stop the receiver, which finishes
 * and answers the batch in hand; SIGHUP is logged from the receiver loop
 * (nothing can be reloaded safely while running). Signals are blocked while
 * the API threads start so that only this thread handles them.
 *
 * Exit status: 0 after a clean stop, 2 on bad usage or configuration (one
 * line naming the file, line and key), 1 when start-up fails otherwise
 * (data directory not writable, address in use).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vigie/api.h"
#include "vigie/config.h"
#include "vigie/dispatch.h"
#include "vigie/log.h"
#include "vigie/receiver.h"
#include "vigie/registry.h"
#include "vigie/store.h"

#define PROG "vigie-collector"

static struct vg_receiver *g_rx;
static volatile sig_atomic_t g_hup;

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
		"  --config FILE      INI configuration (see docs/operations.md)\n"
		"  --log-level LEVEL  error, warn, info or debug (default info)\n"
		"  --help             this text\n"
		"\n"
		"Flags override the configuration file. SIGTERM or SIGINT stops\n"
		"cleanly; SIGHUP is logged (restart to apply configuration).\n");
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

static void idle(void *ctx)
{
	(void)ctx;
	if (g_hup) {
		g_hup = 0;
		vg_info("SIGHUP: reload not supported; restart to apply "
			"configuration changes");
	}
}

static int mkdir_p(const char *path)
{
	char buf[4096];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) && errno != EEXIST)
		return -errno;
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
	enum { O_LISTEN = 256, O_HTTP, O_DATA, O_CONFIG, O_LOGLEVEL, O_HELP };
	static const struct option opts[] = {
		{"listen", required_argument, NULL, O_LISTEN},
		{"http", required_argument, NULL, O_HTTP},
		{"data-dir", required_argument, NULL, O_DATA},
		{"config", required_argument, NULL, O_CONFIG},
		{"log-level", required_argument, NULL, O_LOGLEVEL},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	struct override set[MAX_OVERRIDES];
	int nset = 0, c;
	const char *config = NULL;
	char err[512];

	vg_config_defaults(cfg);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (c) {
		case O_LISTEN:
			if (nset < MAX_OVERRIDES)
				set[nset] = (struct override){"collector", "listen", optarg};
			nset++;
			break;
		case O_HTTP:
			if (nset < MAX_OVERRIDES)
				set[nset] = (struct override){"collector", "http", optarg};
			nset++;
			break;
		case O_DATA:
			if (nset < MAX_OVERRIDES)
				set[nset] = (struct override){"collector", "data_dir", optarg};
			nset++;
			break;
		case O_LOGLEVEL:
			if (nset < MAX_OVERRIDES)
				set[nset] = (struct override){"log", "level", optarg};
			nset++;
			break;
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
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s' (see --help)\n",
			argv[optind]);
		return 2;
	}
	if (nset > MAX_OVERRIDES) {
		fprintf(stderr, PROG ": too many options\n");
		return 2;
	}
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
	return 0;
}

int main(int argc, char **argv)
{
	struct vg_config cfg;
	struct vg_store *store = NULL;
	struct vg_registry *reg = NULL;
	struct vg_api *api = NULL;
	struct vg_dispatch dispatch;
	struct vg_consumer cons;
	struct vg_receiver_options ro;
	struct vg_api_options ao;
	struct vg_collector_stats cs;
	struct vg_store_stats ss;
	struct sigaction sa;
	sigset_t block, old;
	char err[512];
	int rc, status = 1;

	rc = configure(argc, argv, &cfg);
	if (rc)
		return rc == 1 ? 0 : rc;
	vg_log_init(PROG, cfg.log_level);

	if ((rc = mkdir_p(cfg.collector_data_dir))) {
		vg_error("cannot create data directory %s: %s",
			 cfg.collector_data_dir, strerror(-rc));
		return 1;
	}
	if (vg_store_open(cfg.collector_data_dir, &cfg, &store, err, sizeof(err))) {
		vg_error("%s", err);
		goto out;
	}
	if (vg_registry_open(cfg.collector_data_dir, &reg, err, sizeof(err))) {
		vg_error("%s", err);
		goto out;
	}
	vg_dispatch_init(&dispatch);
	cons = vg_registry_consumer(reg);
	vg_dispatch_add(&dispatch, &cons);
	cons = vg_store_consumer(store);
	vg_dispatch_add(&dispatch, &cons);

	memset(&ro, 0, sizeof(ro));
	ro.listen = cfg.collector_listen;
	ro.max_message = cfg.collector_max_message;
	ro.registry = reg;
	ro.dispatch = &dispatch;
	ro.store = store;
	ro.idle = idle;
	if (vg_receiver_open(&ro, &g_rx, err, sizeof(err))) {
		vg_error("%s", err);
		goto out;
	}

	/* Only this thread takes signals: block them while API threads start. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	memset(&ao, 0, sizeof(ao));
	ao.listen = cfg.collector_http;
	ao.data_dir = cfg.collector_data_dir;
	ao.threads = cfg.collector_http_threads;
	ao.store = store;
	ao.stats = vg_receiver_stats_fn;
	ao.stats_ctx = g_rx;
	rc = vg_api_start(&ao, &api, err, sizeof(err));
	if (rc) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		vg_error("HTTP API on %s: %s", cfg.collector_http, err);
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
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
	vg_info("batches received %llu, rejected %llu, duplicate %llu, retry "
		"%llu; samples %llu; values written %llu, duplicate %llu, "
		"refused %llu, write errors %llu; files created %llu",
		(unsigned long long)cs.batches_received,
		(unsigned long long)cs.batches_rejected,
		(unsigned long long)cs.batches_duplicate,
		(unsigned long long)cs.batches_retry,
		(unsigned long long)cs.samples_received,
		(unsigned long long)ss.values_written,
		(unsigned long long)ss.values_duplicate,
		(unsigned long long)ss.values_rejected,
		(unsigned long long)ss.write_errors,
		(unsigned long long)ss.files_created);
out:
	vg_api_stop(api);
	vg_receiver_close(g_rx);
	g_rx = NULL;
	vg_registry_close(reg);
	vg_store_close(store);
	return status;
}
