/*
 * harness.h — run the real vigie-collector from a cmocka test (header-only,
 * shared by the C integration tests hostile_wire_test.c, auth_test.c and
 * crash_test.c).
 *
 * h_init makes a private temp dir with a config file and picks two free
 * loopback ports; h_start creates an admin API token offline (vigie-
 * collector token create --admin; h_get sends it) the first time, then
 * fork/execs $VIGIE_BUILD/bin/vigie-collector
 * (VIGIE_BUILD defaults to "build") with its output appended to
 * <dir>/collector.log and waits until /v1/health answers; h_exchange sends
 * one message on a fresh REQ socket like an agent and returns the ack
 * bytes; h_get / h_post call the HTTP API with the admin token; h_kill9
 * and h_stop end it; h_cleanup removes the temp dir (kept
 * when KEEP_TMP is set). h_init, h_start and h_exchange[_raw] return 0
 * or -errno; h_get and h_post the HTTP status (-1 when no answer came);
 * h_stop the collector's exit status (-1 when it had to be killed);
 * h_kill9 and h_cleanup cannot fail (h_cleanup only reports on stderr a
 * directory it could not remove). Each states its own contract below.
 *
 * Not thread-safe; one harness per collector.
 */
#ifndef VIGIE_TEST_HARNESS_H
#define VIGIE_TEST_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "vigie/wire.h"

struct vg_harness {
	pid_t pid;
	char dir[64]; /* temp dir: vigie.conf, collector.log, data/ */
	char data[128];
	char conf[160];
	char log[160];
	char url[64]; /* tcp://127.0.0.1:port, for agents */
	char listen[64];
	char hlisten[64];
	char http[64]; /* http://127.0.0.1:port, the API */
	char bin[PATH_MAX];
	char token[256]; /* an admin API token ("" if none could be made) */
};

/* A free loopback port; *fd keeps it bound (close it before use) so a
 * second call cannot return the same one. Taken below the kernel's
 * ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, 32768 up by
 * default): a port from that range can be taken, while the collector is
 * down between a kill and its restart, by any outgoing connection (a
 * webhook, an API call, or a REQ socket reconnecting to that very port,
 * which TCP turns into a self-connection), and the restart then fails
 * with "Address already in use". */
static inline int h_free_port(int *fd)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	unsigned lo = 32768;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");

	if (f) {
		if (fscanf(f, "%u", &lo) != 1 || lo < 12000)
			lo = 32768;
		fclose(f);
	}
	static uint32_t seed; /* not rand(): tests seed it for their own use */
	if (!seed) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = ((uint32_t)getpid() * 2654435761u) ^ (uint32_t)ts.tv_nsec ^ 1u;
	}
	*fd = -1;
	for (int i = 0; i < 200; i++) {
		seed = seed * 1103515245u + 12345u;
		int port = 10000 + (int)((seed >> 8) % (lo - 10000));
		a.sin_port = htons((uint16_t)port);
		if ((*fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
			return -1;
		if (!bind(*fd, (struct sockaddr *)&a, sizeof(a)))
			return port;
		close(*fd);
		*fd = -1;
	}
	return -1;
}

/* $VIGIE_BUILD, or "build" when unset or empty. */
static inline const char *h_build_dir(void)
{
	const char *b = getenv("VIGIE_BUILD");
	return b && *b ? b : "build";
}

/* Temp dir, ports, config file with conf_text. -ENOENT if the binary is
 * missing, -EADDRINUSE if no two free ports were found, other -errno. */
static inline int h_init(struct vg_harness *h, const char *conf_text)
{
	int fd1, fd2, port = h_free_port(&fd1), hport = h_free_port(&fd2);
	FILE *f;

	if (fd1 >= 0)
		close(fd1);
	if (fd2 >= 0)
		close(fd2);
	memset(h, 0, sizeof(*h));
	snprintf(h->bin, sizeof(h->bin), "%s/bin/vigie-collector", h_build_dir());
	if (access(h->bin, X_OK))
		return -ENOENT;
	if (port < 0 || hport < 0 || port == hport)
		return -EADDRINUSE;
	snprintf(h->dir, sizeof(h->dir), "/tmp/vigie-harness.XXXXXX");
	if (!mkdtemp(h->dir))
		return -errno;
	snprintf(h->data, sizeof(h->data), "%s/data", h->dir);
	snprintf(h->conf, sizeof(h->conf), "%s/vigie.conf", h->dir);
	snprintf(h->log, sizeof(h->log), "%s/collector.log", h->dir);
	snprintf(h->listen, sizeof(h->listen), "tcp://127.0.0.1:%d", port);
	snprintf(h->url, sizeof(h->url), "tcp://127.0.0.1:%d", port);
	snprintf(h->hlisten, sizeof(h->hlisten), "127.0.0.1:%d", hport);
	snprintf(h->http, sizeof(h->http), "http://127.0.0.1:%d", hport);
	if (!(f = fopen(h->conf, "w")))
		return -errno;
	fputs(conf_text ? conf_text : "", f);
	fclose(f);
	return 0;
}

struct h_buf {
	char *buf;
	size_t len;
};

static inline size_t h_sink(char *p, size_t sz, size_t n, void *ud)
{
	struct h_buf *b = ud;
	char *nb = realloc(b->buf, b->len + sz * n + 1);
	if (!nb)
		return 0;
	memcpy(nb + b->len, p, sz * n);
	b->buf = nb;
	b->len += sz * n;
	b->buf[b->len] = '\0';
	return sz * n;
}

/* GET path with the admin token when there is one: the HTTP status (-1
 * if none), the body in *body if asked (malloc'd, may be NULL). */
static inline long h_get(const struct vg_harness *h, const char *path, char **body)
{
	struct h_buf b = {NULL, 0};
	char url[8192];
	long code = -1;
	CURL *c;

	if ((size_t)snprintf(url, sizeof(url), "%s%s", h->http, path) >= sizeof(url))
		return -1;
	if (!(c = curl_easy_init()))
		return -1;
	struct curl_slist *hdr = NULL;
	if (h->token[0]) {
		char auth[300];
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", h->token);
		hdr = curl_slist_append(NULL, auth);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdr);
	if (body)
		*body = b.buf;
	else
		free(b.buf);
	return code;
}

/* POST body (JSON) to path with the admin token: the HTTP status (-1 if
 * none), the answer in *resp if asked (malloc'd, may be NULL). */
static inline long h_post(const struct vg_harness *h, const char *path,
			  const char *body, char **resp)
{
	struct h_buf b = {NULL, 0};
	struct curl_slist *hdr = NULL;
	char url[1024], auth[300];
	long code = -1;
	CURL *c;

	if ((size_t)snprintf(url, sizeof(url), "%s%s", h->http, path) >= sizeof(url))
		return -1;
	if (!(c = curl_easy_init()))
		return -1;
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	if (h->token[0]) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", h->token);
		hdr = curl_slist_append(hdr, auth);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdr);
	if (resp)
		*resp = b.buf;
	else
		free(b.buf);
	return code;
}

/* 1 when /v1/health answers 200, else 0. */
static inline int h_healthy(const struct vg_harness *h)
{
	return h_get(h, "/v1/health", NULL) == 200;
}

/* An admin token for h_get and h_post, made offline on the data dir
 * (h->token stays "" if the command fails). */
static inline void h_make_token(struct vg_harness *h)
{
	char cmd[PATH_MAX + 400], line[256];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "'%s' --data-dir '%s' token create --admin 2>/dev/null",
		 h->bin, h->data);
	if (!(p = popen(cmd, "r")))
		return;
	while (fgets(line, sizeof(line), p))
		if (!strncmp(line, "vgt_", 4)) {
			line[strcspn(line, "\r\n")] = '\0';
			snprintf(h->token, sizeof(h->token), "%s", line);
		}
	pclose(p);
}

/* Start the collector with --config, --listen, --http, --data-dir and
 * the extra arguments (NULL-terminated, may be NULL); wait up to 30 s for
 * /v1/health. 0 once it answers; -ECHILD if it exited (see h->log),
 * -ETIMEDOUT if it never answered (it is left running: h_cleanup kills it),
 * other -errno. */
static inline int h_start(struct vg_harness *h, const char *const *extra)
{
	const char *argv[32];
	int n = 0;

	if (!h->token[0])
		h_make_token(h);
	argv[n++] = h->bin;
	argv[n++] = "--config";
	argv[n++] = h->conf;
	argv[n++] = "--listen";
	argv[n++] = h->listen;
	argv[n++] = "--http";
	argv[n++] = h->hlisten;
	argv[n++] = "--data-dir";
	argv[n++] = h->data;
	for (int i = 0; extra && extra[i] && n < 31; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	h->pid = fork();
	if (h->pid < 0)
		return -errno;
	if (h->pid == 0) {
		int fd = open(h->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(h->bin, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 600; i++) { /* 30 s: SAN, valgrind, loaded CI */
		if (h_healthy(h))
			return 0;
		if (waitpid(h->pid, NULL, WNOHANG) == h->pid) {
			h->pid = 0;
			return -ECHILD;
		}
		usleep(50 * 1000);
	}
	return -ETIMEDOUT;
}

/* SIGTERM, wait up to 15 s: the exit status (128+signal if killed by
 * one), or -1 if it had to be SIGKILLed or was not running. */
static inline int h_stop(struct vg_harness *h)
{
	int st;

	if (h->pid <= 0)
		return -1;
	kill(h->pid, SIGTERM);
	for (int i = 0; i < 300; i++) {
		if (waitpid(h->pid, &st, WNOHANG) == h->pid) {
			h->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		usleep(50 * 1000);
	}
	kill(h->pid, SIGKILL);
	waitpid(h->pid, &st, 0);
	h->pid = 0;
	return -1;
}

/* SIGKILL and reap the collector, if running (the crash tests' kill -9). */
static inline void h_kill9(struct vg_harness *h)
{
	if (h->pid > 0) {
		kill(h->pid, SIGKILL);
		waitpid(h->pid, NULL, 0);
		h->pid = 0;
	}
}

/* Kill the collector if still running and remove the temp dir (kept, and
 * named on stderr, when KEEP_TMP is set). Safe on a harness h_init failed. */
static inline void h_cleanup(struct vg_harness *h)
{
	char cmd[128];

	if (h->pid > 0)
		h_kill9(h);
	if (!h->dir[0])
		return;
	if (getenv("KEEP_TMP")) {
		fprintf(stderr, "# kept %s\n", h->dir);
		return;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "# could not remove %s\n", h->dir);
}

/* Send msg on a fresh REQ socket and wait timeout_ms for the answer:
 * 0 with the raw answer in ackbuf (*acklen bytes, at most cap) and, if it
 * decodes, *ack; -ETIMEDOUT if none came, -EBADMSG if the answer is not an
 * ack, other -errno. */
static inline int h_exchange_raw(const struct vg_harness *h, const void *msg,
				 size_t len, int timeout_ms, struct vg_ack *ack,
				 uint8_t *ackbuf, size_t cap, size_t *acklen)
{
	int s = nn_socket(AF_SP, NN_REQ), rc = 0, n;
	void *buf = NULL;

	if (s < 0)
		return -nn_errno();
	nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
	nn_setsockopt(s, NN_SOL_SOCKET, NN_SNDTIMEO, &timeout_ms, sizeof(timeout_ms));
	if (nn_connect(s, h->url) < 0 || nn_send(s, msg, len, 0) < 0) {
		rc = -nn_errno();
		goto out;
	}
	n = nn_recv(s, &buf, NN_MSG, 0);
	if (n < 0) {
		rc = -nn_errno();
		goto out;
	}
	if (ackbuf) {
		size_t c = (size_t)n < cap ? (size_t)n : cap;
		memcpy(ackbuf, buf, c);
		*acklen = (size_t)n;
	}
	rc = vg_wire_ack_decode(buf, (size_t)n, ack) ? -EBADMSG : 0;
	nn_freemsg(buf);
out:
	nn_close(s);
	return rc;
}

/* h_exchange_raw without the raw answer. */
static inline int h_exchange(const struct vg_harness *h, const void *msg,
			     size_t len, int timeout_ms, struct vg_ack *ack)
{
	return h_exchange_raw(h, msg, len, timeout_ms, ack, NULL, 0, NULL);
}

#endif
