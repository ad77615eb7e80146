/*
 * webhook.c — one HTTP POST of a notification (alarms/webhook.h).
 *
 * Design: the request is set up on an easy handle the caller owns (the
 * outbox keeps a pool of them in one curl multi handle, whose connection
 * cache keeps a connection to each receiver open between notifications;
 * curl_easy_reset clears the options of the previous request, never the
 * connection); the response body is discarded; classification of the
 * outcome is the caller's retry policy in one place. vg_alarm_webhook_post
 * is the same request done alone and blocking (tools, tests).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "alarms/guard.h"
#include "alarms/webhook.h"

#ifndef VG_VERSION
#define VG_VERSION "0.1.0"
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void vg_alarm_webhook_global_init(void)
{
	pthread_once(&once, init_once);
}

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
	(void)p;
	(void)ctx;
	return size * n;
}

int vg_alarm_webhook_setup(CURL *c, const char *url, const char *body,
			   size_t len, const char *idempotency_key,
			   const char *extra_header, int64_t timeout_ms,
			   struct curl_slist **hdr, char *cerr)
{
	char h1[128], h2[128];
	struct curl_slist *h = NULL, *t;

	*hdr = NULL;
	cerr[0] = '\0';
	curl_easy_reset(c); /* options only: the connection cache stays */
	snprintf(h1, sizeof(h1), "Idempotency-Key: %s", idempotency_key);
	snprintf(h2, sizeof(h2), "X-Vigie-Notification: %s", idempotency_key);
	const char *lines[] = {"Content-Type: application/json", h1, h2, "Expect:",
			       extra_header};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (!lines[i])
			continue;
		if (!(t = curl_slist_append(h, lines[i]))) {
			curl_slist_free_all(h);
			return -ENOMEM;
		}
		h = t;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "vigie/" VG_VERSION);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 5000));
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	*hdr = h;
	return 0;
}

int vg_alarm_webhook_outcome(CURL *c, CURLcode cc, const char *cerr,
			     long *http_status, char *err, size_t errlen)
{
	long status = 0;

	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	*http_status = status;
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "%s", cerr && cerr[0] ? cerr : curl_easy_strerror(cc));
		return cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_URL_MALFORMAT
			       ? -EPERM
			       : -EAGAIN;
	}
	if (status >= 200 && status < 300) {
		snprintf(err, errlen, "HTTP %ld", status);
		return 0;
	}
	if (status >= 500 || status == 408 || status == 425 || status == 429) {
		snprintf(err, errlen, "HTTP %ld", status);
		return -EAGAIN;
	}
	snprintf(err, errlen, "HTTP %ld (not retried)", status);
	return -EPERM;
}

int vg_alarm_webhook_origin(const char *url, char *buf, size_t len)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	int rc = -EINVAL;

	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
		rc = (size_t)snprintf(buf, len, "%s://%s:%s", scheme, host, port) < len
			     ? 0
			     : -ENOSPC;
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

static curl_socket_t open_fenced(void *ctx, curlsocktype purpose,
				 struct curl_sockaddr *a)
{
	struct vg_alarm_webhook_fence *f = ctx;
	char why[160];

	if (purpose != CURLSOCKTYPE_IPCXN)
		return CURL_SOCKET_BAD;
	if (vg_alarm_guard_check(f->guard, &a->addr, why, sizeof(why))) {
		snprintf(f->refused, sizeof(f->refused),
			 "refused to connect: %s (allow it with [alarms] "
			 "webhook_allow)",
			 why);
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype, a->protocol);
}

void vg_alarm_webhook_fence(CURL *c, struct vg_alarm_webhook_fence *f)
{
	f->refused[0] = '\0';
	curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_fenced);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, f);
	curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never $http_proxy */
}

static int post(const struct vg_alarm_guard *guard, const char *url,
		const char *body, size_t len, const char *idempotency_key,
		const char *extra_header, int64_t timeout_ms, long *http_status,
		char *err, size_t errlen);

int vg_alarm_webhook_post(const char *url, const char *body, size_t len,
			  const char *idempotency_key, const char *extra_header,
			  int64_t timeout_ms, long *http_status, char *err,
			  size_t errlen)
{
	return post(NULL, url, body, len, idempotency_key, extra_header,
		    timeout_ms, http_status, err, errlen);
}

int vg_alarm_webhook_post_guarded(const struct vg_alarm_guard *guard,
				  const char *url, const char *body, size_t len,
				  const char *idempotency_key, int64_t timeout_ms,
				  long *http_status, char *err, size_t errlen)
{
	return post(guard, url, body, len, idempotency_key, NULL, timeout_ms,
		    http_status, err, errlen);
}

static int post(const struct vg_alarm_guard *guard, const char *url,
		const char *body, size_t len, const char *idempotency_key,
		const char *extra_header, int64_t timeout_ms, long *http_status,
		char *err, size_t errlen)
{
	struct vg_alarm_webhook_fence f = {.guard = guard};
	CURLcode cc;
	char cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdr = NULL;
	CURL *c;
	int rc;

	vg_alarm_webhook_global_init();
	*http_status = 0;
	if (!(c = curl_easy_init())) {
		snprintf(err, errlen, "curl_easy_init failed");
		return -EAGAIN;
	}
	if (vg_alarm_webhook_setup(c, url, body, len, idempotency_key,
				   extra_header, timeout_ms, &hdr, cerr)) {
		snprintf(err, errlen, "out of memory");
		curl_easy_cleanup(c);
		return -EAGAIN;
	}
	if (guard) {
		vg_alarm_webhook_fence(c, &f);
		curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
	}
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK && f.refused[0]) {
		snprintf(err, errlen, "%s", f.refused);
		rc = -EACCES;
	} else {
		rc = vg_alarm_webhook_outcome(c, cc, cerr, http_status, err, errlen);
	}
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	return rc;
}
