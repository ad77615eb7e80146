/*
 * vigie — the nanomsg PUB socket for live alarms and metrics
 * (alarms/pub.c), e.g. `vigie-collector --notify tcp://0.0.0.0:7471`.
 *
 * Every message is "<topic> <json>": topics are
 *   alarm.<project>.<alarm name>                 one per transition/repeat
 *   metric.<project>.<resource id>.<metric>      one per accepted sample
 * so a subscriber filters by prefix:
 *   nanocat --sub --connect tcp://127.0.0.1:7471 --subscribe alarm. -A
 * Topic parts are percent-escaped for ' ', '%' and control bytes, so the
 * first space always ends the topic; the project and the resource id
 * also for '.' (%2E), so the dots between parts are the only ones before
 * the last part: "metric.a." never matches project "a.b" (a SUB filter is
 * a byte prefix). The last part (the metric, the alarm name) keeps its
 * dots ("metric.p.r.cpu." follows cpu.*); the space after it ends it
 * ("alarm.acme.cpu-high " is that alarm only).
 *
 * Publishing never slows ingestion: callers append to a bounded in-memory
 * queue (a copy of the message) and a thread of the publisher sends with
 * NN_DONTWAIT. When the queue holds more than max_queue_bytes a metric
 * message is dropped and counted; alarm messages are always queued (they
 * are few), ahead of the metric messages waiting, so a notification
 * leaves as soon as the alarm engine decides it. nanomsg itself drops messages for a subscriber whose pipe is
 * full: a slow subscriber loses messages, never blocks the collector.
 * Those drops cannot be counted (nanomsg's PUB send succeeds whatever the
 * pipes do and keeps no statistic); dropped_queue and send_errors are the
 * drops vigie sees, exposed on GET /metrics as vigie_alarms_pub_*.
 *
 * Thread-safe: any thread may publish; open/close from one thread.
 */
#ifndef VIGIE_ALARM_PUB_H
#define VIGIE_ALARM_PUB_H

#include <stddef.h>
#include <stdint.h>

#include "vigie/dispatch.h"

struct vg_alarm_pub;

struct vg_alarm_pub_stats {
	uint64_t alarm_sent, metric_sent;
	uint64_t dropped_queue; /* metric messages refused: queue full */
	uint64_t send_errors;   /* nn_send failures (the message is lost) */
	uint64_t queued_bytes;
};

/* Bind a NN_PUB socket to url and start the sending thread.
 * max_queue_bytes 0 = 64 MiB. 0 or -errno with a message in err. */
int vg_alarm_pub_open(const char *url, size_t max_queue_bytes,
		      struct vg_alarm_pub **out, char *err, size_t errlen);
/* Send what is queued (up to 1 s), stop the thread, close. Accepts NULL. */
void vg_alarm_pub_close(struct vg_alarm_pub *p);

/* Queue "<topic> <json>". is_alarm: never dropped. 0, -ENOBUFS (dropped,
 * counted) or -ENOMEM. */
int vg_alarm_pub_send(struct vg_alarm_pub *p, const char *topic,
		      const char *json, size_t json_len, int is_alarm);

/* The metric stream as a dispatch consumer: every sample of every batch
 * becomes one metric.* message. Never fails a batch. */
struct vg_consumer vg_alarm_pub_consumer(struct vg_alarm_pub *p);

void vg_alarm_pub_get_stats(struct vg_alarm_pub *p, struct vg_alarm_pub_stats *out);

/* Append s to topic buffer dst (len bytes) escaping ' ', '%' and bytes
 * below 0x21 as %XX. Returns the new length or -ENOSPC. Pure. */
int vg_alarm_topic_append(char *dst, size_t len, size_t pos, const char *s);
/* The same, escaping '.' too (%2E): for a part that other parts follow
 * (a project, a resource id). Pure. */
int vg_alarm_topic_append_part(char *dst, size_t len, size_t pos, const char *s);

#endif
