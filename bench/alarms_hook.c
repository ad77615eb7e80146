/*
 * alarms_hook.c — a webhook receiver for alarm tests and benchmarks
 * (libmicrohttpd on loopback).
 *
 *   alarms_hook [--port N] [--status-file FILE] [--log FILE] [--port-file F]
 *
 * Every POST is answered with the HTTP status read from --status-file at
 * that moment (default 200; the test changes the file to make the receiver
 * fail or recover) and logged as one line:
 *   <monotonic ms> <status> <Idempotency-Key> <body>
 * to --log (default standard output), flushed at once, so a test counts
 * deliveries per idempotency id and the benchmark measures latency (the
 * monotonic clock is shared with alarms_send --report-ms). With --port 0
 * the chosen port is written to --port-file. SIGTERM or SIGINT stops it.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <microhttpd.h>

#include "vigie/clock.h"

static const char *g_status_file;
static FILE *g_log;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t g_stop;

struct req {
	char *body;
	size_t len;
};

static int current_status(void)
{
	FILE *f;
	int s = 200;

	if (!g_status_file || !(f = fopen(g_status_file, "r")))
		return 200;
	if (fscanf(f, "%d", &s) != 1 || s < 100 || s > 599)
		s = 200;
	fclose(f);
	return s;
}

static enum MHD_Result on_req(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version,
			      const char *upload, size_t *upload_size, void **con)
{
	struct req *q = *con;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	const char *key;
	int status;

	(void)cls;
	(void)url;
	(void)version;
	if (!q) {
		*con = calloc(1, sizeof(struct req));
		return *con ? MHD_YES : MHD_NO;
	}
	if (*upload_size) {
		char *n = realloc(q->body, q->len + *upload_size + 1);
		if (!n)
			return MHD_NO;
		memcpy(n + q->len, upload, *upload_size);
		q->body = n;
		q->len += *upload_size;
		q->body[q->len] = '\0';
		*upload_size = 0;
		return MHD_YES;
	}
	status = strcmp(method, "POST") ? 405 : current_status();
	key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
	pthread_mutex_lock(&g_lock);
	fprintf(g_log, "%" PRId64 " %d %s %.*s\n", vg_monotonic_ms(), status,
		key && *key ? key : "-", (int)q->len, q->body ? q->body : "");
	fflush(g_log);
	pthread_mutex_unlock(&g_lock);
	resp = MHD_create_response_from_buffer(3, (void *)"ok\n", MHD_RESPMEM_PERSISTENT);
	ret = MHD_queue_response(c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con,
		    enum MHD_RequestTerminationCode t)
{
	struct req *q = *con;

	(void)cls;
	(void)c;
	(void)t;
	if (q) {
		free(q->body);
		free(q);
	}
	*con = NULL;
}

static void on_sig(int s)
{
	(void)s;
	g_stop = 1;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"port", required_argument, NULL, 'p'},
		{"status-file", required_argument, NULL, 's'},
		{"log", required_argument, NULL, 'l'},
		{"port-file", required_argument, NULL, 'f'},
		{NULL, 0, NULL, 0},
	};
	const char *port_file = NULL, *log = NULL;
	struct MHD_Daemon *d;
	struct sockaddr_in sa;
	int port = 0, c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'p': port = atoi(optarg); break;
		case 's': g_status_file = optarg; break;
		case 'l': log = optarg; break;
		case 'f': port_file = optarg; break;
		default:
			fprintf(stderr, "usage: alarms_hook [--port N] [--status-file F] "
					"[--log F] [--port-file F]\n");
			return 2;
		}
	}
	g_log = log ? fopen(log, "a") : stdout;
	if (!g_log) {
		perror(log);
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL,
			     NULL, on_req, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_done,
			     NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
			     MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "alarms_hook: cannot listen on 127.0.0.1:%d\n", port);
		return 1;
	}
	port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
	if (port_file) {
		char tmp[4096];
		FILE *f;
		snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
		if ((f = fopen(tmp, "w"))) {
			fprintf(f, "%d\n", port);
			fclose(f);
			rename(tmp, port_file);
		}
	}
	signal(SIGTERM, on_sig);
	signal(SIGINT, on_sig);
	while (!g_stop)
		vg_sleep_ms(100);
	MHD_stop_daemon(d);
	if (g_log != stdout)
		fclose(g_log);
	return 0;
}
