/*
 * webhook.c — one HTTP POST of a notification (alarms/webhook.h).
 *
 * Design: a fresh easy handle per attempt (notifications are rare, and a
 * fresh handle cannot carry state from one receiver to another); the
 * response body is discarded; classification of the outcome is the
 * caller's retry policy in one place.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

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

int vg_alarm_webhook_post(const char *url, const char *body, size_t len,
			  const char *idempotency_key, const char *extra_header,
			  int64_t timeout_ms, long *http_status, char *err,
			  size_t errlen)
{
	char h1[128], h2[128], cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdr = NULL;
	CURL *c;
	CURLcode cc;
	long status = 0;
	int rc;

	vg_alarm_webhook_global_init();
	*http_status = 0;
	if (!(c = curl_easy_init())) {
		snprintf(err, errlen, "curl_easy_init failed");
		return -EAGAIN;
	}
	snprintf(h1, sizeof(h1), "Idempotency-Key: %s", idempotency_key);
	snprintf(h2, sizeof(h2), "X-Vigie-Notification: %s", idempotency_key);
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	hdr = curl_slist_append(hdr, h1);
	hdr = curl_slist_append(hdr, h2);
	hdr = curl_slist_append(hdr, "Expect:");
	if (extra_header)
		hdr = curl_slist_append(hdr, extra_header);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
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
	cc = curl_easy_perform(c);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	*http_status = status;
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "%s", cerr[0] ? cerr : curl_easy_strerror(cc));
		rc = cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_URL_MALFORMAT
			     ? -EPERM : -EAGAIN;
	} else if (status >= 200 && status < 300) {
		snprintf(err, errlen, "HTTP %ld", status);
		rc = 0;
	} else if (status >= 500 || status == 408 || status == 425 || status == 429) {
		snprintf(err, errlen, "HTTP %ld", status);
		rc = -EAGAIN;
	} else {
		snprintf(err, errlen, "HTTP %ld (not retried)", status);
		rc = -EPERM;
	}
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	return rc;
}
