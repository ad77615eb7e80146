/*
 * vigie — one webhook delivery attempt over HTTP(S) with libcurl
 * (alarms/webhook.c). The outbox (vigie/alarm_outbox.h) decides when to
 * call it and what to do with the outcome.
 *
 * The request: POST <url>, body the notification JSON, headers
 * Content-Type: application/json, Idempotency-Key: <notification id>,
 * X-Vigie-Notification: <notification id>, User-Agent: vigie/<version>.
 * No redirects are followed; only http and https are allowed; the whole
 * attempt (connect included) is bounded by timeout_ms.
 *
 * Thread-safe once vg_alarm_webhook_global_init ran (libcurl's rule).
 */
#ifndef VIGIE_ALARM_WEBHOOK_H
#define VIGIE_ALARM_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

/* curl_global_init exactly once per process (idempotent, thread-safe). */
void vg_alarm_webhook_global_init(void);

/* Prepare easy handle c (curl_easy_reset first, so its connection is
 * kept) for the POST above. body, url and cerr (CURL_ERROR_SIZE bytes)
 * must outlive the transfer; *hdr gets the header list the caller frees
 * with curl_slist_free_all after the transfer. 0 or -ENOMEM. */
int vg_alarm_webhook_setup(CURL *c, const char *url, const char *body,
			   size_t len, const char *idempotency_key,
			   const char *extra_header, int64_t timeout_ms,
			   struct curl_slist **hdr, char *cerr);
/* Classify a finished transfer of c (cc its CURLcode) exactly as
 * vg_alarm_webhook_post returns. */
int vg_alarm_webhook_outcome(CURL *c, CURLcode cc, const char *cerr,
			     long *http_status, char *err, size_t errlen);
/* "scheme://host:port" of url (the default port filled in): the
 * destination that concurrency is bounded per. 0, -EINVAL (not a URL) or
 * -ENOSPC. */
int vg_alarm_webhook_origin(const char *url, char *buf, size_t len);

struct vg_alarm_guard;

/* The check of a project's webhook on handle c (after setup): every
 * address libcurl is about to connect to passes vg_alarm_guard_check in
 * its open-socket callback, so a name is judged by what it resolves to at
 * connect time (every address of a happy-eyeballs race included);
 * proxies from the environment are not used (the proxy would be the
 * address connected to). Whoever reuses a connection opened without the
 * fence must not reuse it fenced: callers set CURLOPT_FRESH_CONNECT then
 * (the outbox does). f must outlive the transfer; f->refused gets the
 * reason of the last refused address ("" when none was). */
struct vg_alarm_webhook_fence {
	const struct vg_alarm_guard *guard;
	char refused[320];
};
void vg_alarm_webhook_fence(CURL *c, struct vg_alarm_webhook_fence *f);

/* One blocking attempt on a handle of its own.
 * 0 on a 2xx answer. -EAGAIN: worth retrying (network error, timeout,
 * 5xx, 408, 425, 429). -EPERM: the receiver refused for good (other 4xx,
 * 3xx). *http_status gets the status (0 when none came back); err a one
 * line description. extra_header may be NULL ("Name: value"). */
int vg_alarm_webhook_post(const char *url, const char *body, size_t len,
			  const char *idempotency_key, const char *extra_header,
			  int64_t timeout_ms, long *http_status, char *err,
			  size_t errlen);
/* The same, fenced by guard (not NULL): a refused address fails with
 * -EACCES and err names the address and the rule. */
int vg_alarm_webhook_post_guarded(const struct vg_alarm_guard *guard,
				  const char *url, const char *body, size_t len,
				  const char *idempotency_key, int64_t timeout_ms,
				  long *http_status, char *err, size_t errlen);

#endif
