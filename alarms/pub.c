/*
 * pub.c — the live PUB socket: alarm notifications and the metric stream
 * (vigie/alarm_pub.h).
 *
 * Design: producers (the receiver thread through the dispatch consumer and
 * the alarm engine) format a message, copy it into a singly linked FIFO
 * under a mutex and signal; one sender thread pops and calls nn_send with
 * NN_DONTWAIT. Alarm messages are queued ahead of metric messages (in
 * their own order), so a notification never waits behind the metric
 * stream of the batch that decided it. The queue is bounded in bytes; beyond the bound metric
 * messages are dropped and counted, alarm messages are still queued. A
 * failed nn_send (EAGAIN, ETERM...) loses that message and is counted in
 * send_errors; nanomsg's own per-subscriber drops (a full pipe) happen
 * inside a successful send and cannot be counted here.
 *
 * Invariants: queued_bytes equals the sum of the queued message lengths;
 * after vg_alarm_pub_close returns no thread touches the socket.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>

#include "vigie/alarm_pub.h"
#include "vigie/batch.h"
#include "vigie/clock.h"

#define DEFAULT_MAX_QUEUE (64u << 20)

struct msg {
	struct msg *next;
	size_t len;
	int is_alarm;
	char data[];
};

struct vg_alarm_pub {
	int sock;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct msg *head, *tail;
	struct msg *alast; /* last alarm message queued (they go first) */
	size_t max_bytes;
	int stopping;
	struct vg_alarm_pub_stats st;
};

static int topic_append(char *dst, size_t len, size_t pos, const char *s,
			int dot)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= 0x20 || c == '%' || c == 0x7f || (dot && c == '.')) {
			if (pos + 3 >= len)
				return -ENOSPC;
			dst[pos++] = '%';
			dst[pos++] = hex[c >> 4];
			dst[pos++] = hex[c & 15];
		} else {
			if (pos + 1 >= len)
				return -ENOSPC;
			dst[pos++] = (char)c;
		}
	}
	if (pos >= len)
		return -ENOSPC;
	dst[pos] = '\0';
	return (int)pos;
}

int vg_alarm_topic_append(char *dst, size_t len, size_t pos, const char *s)
{
	return topic_append(dst, len, pos, s, 0);
}

int vg_alarm_topic_append_part(char *dst, size_t len, size_t pos, const char *s)
{
	return topic_append(dst, len, pos, s, 1);
}

static void *sender(void *arg)
{
	struct vg_alarm_pub *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->head && !p->stopping)
			pthread_cond_wait(&p->cond, &p->lock);
		if (!p->head && p->stopping)
			break;
		struct msg *m = p->head;
		p->head = m->next;
		if (!p->head)
			p->tail = NULL;
		if (p->alast == m)
			p->alast = NULL;
		p->st.queued_bytes -= m->len;
		pthread_mutex_unlock(&p->lock);
		int rc = nn_send(p->sock, m->data, m->len, NN_DONTWAIT);
		pthread_mutex_lock(&p->lock);
		if (rc < 0)
			p->st.send_errors++;
		else if (m->is_alarm)
			p->st.alarm_sent++;
		else
			p->st.metric_sent++;
		free(m);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int vg_alarm_pub_open(const char *url, size_t max_queue_bytes,
		      struct vg_alarm_pub **out, char *err, size_t errlen)
{
	struct vg_alarm_pub *p;
	int rc, linger = 1000;

	*out = NULL;
	if (!(p = calloc(1, sizeof(*p)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	p->max_bytes = max_queue_bytes ? max_queue_bytes : DEFAULT_MAX_QUEUE;
	p->sock = nn_socket(AF_SP, NN_PUB);
	if (p->sock < 0) {
		rc = -nn_errno();
		snprintf(err, errlen, "notify: nn_socket: %s", nn_strerror(-rc));
		free(p);
		return rc;
	}
	nn_setsockopt(p->sock, NN_SOL_SOCKET, NN_LINGER, &linger, sizeof(linger));
	if (nn_bind(p->sock, url) < 0) {
		rc = -nn_errno();
		snprintf(err, errlen, "notify: cannot bind %s: %s", url,
			 nn_strerror(-rc));
		nn_close(p->sock);
		free(p);
		return rc;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	rc = pthread_create(&p->thread, NULL, sender, p);
	if (rc) {
		snprintf(err, errlen, "notify: pthread_create: %s", strerror(rc));
		nn_close(p->sock);
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return -rc;
	}
	p->started = 1;
	*out = p;
	return 0;
}

void vg_alarm_pub_close(struct vg_alarm_pub *p)
{
	int64_t deadline;

	if (!p)
		return;
	/* give the sender up to a second to drain */
	deadline = vg_monotonic_ms() + 1000;
	pthread_mutex_lock(&p->lock);
	while (p->head && vg_monotonic_ms() < deadline) {
		pthread_mutex_unlock(&p->lock);
		vg_sleep_ms(10);
		pthread_mutex_lock(&p->lock);
	}
	p->stopping = 1;
	/* whatever is left is dropped */
	while (p->head) {
		struct msg *m = p->head;
		p->head = m->next;
		free(m);
	}
	p->tail = p->alast = NULL;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (p->started)
		pthread_join(p->thread, NULL);
	nn_close(p->sock);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

int vg_alarm_pub_send(struct vg_alarm_pub *p, const char *topic,
		      const char *json, size_t json_len, int is_alarm)
{
	size_t tl = strlen(topic), len = tl + 1 + json_len;
	struct msg *m;

	if (!p)
		return 0;
	pthread_mutex_lock(&p->lock);
	if (!is_alarm && p->st.queued_bytes + len > p->max_bytes) {
		p->st.dropped_queue++;
		pthread_mutex_unlock(&p->lock);
		return -ENOBUFS;
	}
	pthread_mutex_unlock(&p->lock);
	if (!(m = malloc(sizeof(*m) + len)))
		return -ENOMEM;
	m->next = NULL;
	m->len = len;
	m->is_alarm = is_alarm;
	memcpy(m->data, topic, tl);
	m->data[tl] = ' ';
	memcpy(m->data + tl + 1, json, json_len);
	pthread_mutex_lock(&p->lock);
	if (p->stopping) {
		pthread_mutex_unlock(&p->lock);
		free(m);
		return 0;
	}
	if (is_alarm) { /* ahead of queued metric messages */
		struct msg **at = p->alast ? &p->alast->next : &p->head;
		m->next = *at;
		*at = m;
		if (!m->next)
			p->tail = m;
		p->alast = m;
	} else {
		if (p->tail)
			p->tail->next = m;
		else
			p->head = m;
		p->tail = m;
	}
	p->st.queued_bytes += len;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

void vg_alarm_pub_get_stats(struct vg_alarm_pub *p, struct vg_alarm_pub_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	*out = p->st;
	pthread_mutex_unlock(&p->lock);
}

/* ---- the metric stream ---------------------------------------------------- */

/* Minimal JSON string escaping into buf; returns new position or -1. */
static int json_str(char *buf, size_t len, size_t pos, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	if (pos + 2 >= len)
		return -1;
	buf[pos++] = '"';
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (pos + 7 >= len)
			return -1;
		if (c == '"' || c == '\\') {
			buf[pos++] = '\\';
			buf[pos++] = (char)c;
		} else if (c < 0x20) {
			memcpy(buf + pos, "\\u00", 4);
			buf[pos + 4] = hex[c >> 4];
			buf[pos + 5] = hex[c & 15];
			pos += 6;
		} else
			buf[pos++] = (char)c;
	}
	buf[pos++] = '"';
	buf[pos] = '\0';
	return (int)pos;
}

static int metric_batch(void *ctx, const struct vg_batch *b)
{
	struct vg_alarm_pub *p = ctx;
	char topic[1024], body[2048], ts[32];

	for (size_t i = 0; i < b->nres; i++) {
		const struct vg_resource *r = &b->res[i];
		const struct vg_sample *s = vg_resource_samples(b, r);
		const char *project = r->project ? r->project : "default";
		int tp;

		vg_time_format(r->time_ms, ts, sizeof(ts));
		tp = vg_alarm_topic_append(topic, sizeof(topic), 0, "metric.");
		if (tp >= 0)
			tp = vg_alarm_topic_append_part(topic, sizeof(topic),
							(size_t)tp, project);
		if (tp >= 0)
			tp = vg_alarm_topic_append(topic, sizeof(topic), (size_t)tp, ".");
		if (tp >= 0)
			tp = vg_alarm_topic_append_part(topic, sizeof(topic),
							(size_t)tp, r->id);
		if (tp >= 0)
			tp = vg_alarm_topic_append(topic, sizeof(topic), (size_t)tp, ".");
		if (tp < 0)
			continue;
		for (uint32_t k = 0; k < r->nsamples; k++) {
			int t2 = vg_alarm_topic_append(topic, sizeof(topic),
						       (size_t)tp, s[k].metric);
			int n;
			if (t2 < 0)
				continue;
			n = snprintf(body, sizeof(body), "{\"project\":");
			n = json_str(body, sizeof(body), (size_t)n, project);
			if (n > 0)
				n += snprintf(body + n, sizeof(body) - (size_t)n,
					      ",\"resource\":");
			if (n > 0)
				n = json_str(body, sizeof(body), (size_t)n, r->id);
			if (n > 0)
				n += snprintf(body + n, sizeof(body) - (size_t)n,
					      ",\"type\":\"%s\",\"host\":",
					      vg_rtype_name(r->type)
						      ? vg_rtype_name(r->type)
						      : "?");
			if (n > 0)
				n = json_str(body, sizeof(body), (size_t)n, b->host);
			if (n > 0)
				n += snprintf(body + n, sizeof(body) - (size_t)n,
					      ",\"metric\":");
			if (n > 0)
				n = json_str(body, sizeof(body), (size_t)n, s[k].metric);
			if (n > 0 && (size_t)n < sizeof(body))
				n += snprintf(body + n, sizeof(body) - (size_t)n,
					      ",\"kind\":\"%s\",\"value\":%.17g,"
					      "\"time\":\"%s\",\"time_ms\":%lld}",
					      vg_kind_name(s[k].kind)
						      ? vg_kind_name(s[k].kind)
						      : "?",
					      s[k].value, ts, (long long)r->time_ms);
			if (n <= 0 || (size_t)n >= sizeof(body))
				continue;
			vg_alarm_pub_send(p, topic, body, (size_t)n, 0);
			topic[tp] = '\0';
		}
	}
	return 0;
}

struct vg_consumer vg_alarm_pub_consumer(struct vg_alarm_pub *p)
{
	struct vg_consumer c = {"metric-stream", p, metric_batch, NULL};

	return c;
}
