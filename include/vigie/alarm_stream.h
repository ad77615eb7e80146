/*
 * vigie — the fan-out of alarm notifications to Server-Sent Events
 * clients (alarms/stream.c), behind GET /v1/alarms/stream.
 *
 * The hub keeps, for each project, the last `capacity` events of that
 * project in a ring of its own, each with an id and its SSE text. A
 * subscriber follows one project (a project token) or every project (an
 * administrator, project NULL) and has a cursor; reading copies the SSE
 * text of the next events into the caller's buffer, each with its "id:".
 *
 * Projects do not see each other: a project's events are numbered in a
 * sequence of the project's own (consecutive, whatever other projects
 * publish), "event: lost" counts only the project's events, and a
 * project's burst pushes out its own oldest events, never another
 * project's (a memory bound `total` over every ring: past it the project
 * holding the most events loses its oldest, the publishing one on a tie).
 * An administrator's stream numbers every project's events in one
 * sequence of the hub's (the order they were published).
 *
 * A subscriber that fell behind its ring gets an "event: lost" with the
 * number missed and continues with the oldest event kept (a slow client
 * never holds memory). A client that reconnects with Last-Event-ID
 * resumes after that id if it is still kept. Every ~15 s without an event
 * a subscriber gets a ": keepalive" comment so proxies and idle timeouts
 * keep the connection.
 *
 * Ids increase strictly, also across collector restarts: every sequence
 * of a hub starts at the wall clock in microseconds
 * (vg_alarm_hub_seed_id), so a Last-Event-ID from before a restart is
 * below every id of the new run and is answered with an "event: restart"
 * and every event the new run kept (alarms/stream.c explains the choice
 * and its limits).
 *
 * Wake-ups: a subscriber registers a wake callback (the HTTP layer resumes
 * its suspended connection); the hub calls it, under the hub lock, when an
 * event of its project (any, for an administrator's) arrives, when a
 * keepalive is due (vg_alarm_hub_tick) and at shutdown. After
 * vg_alarm_hub_unsubscribe returns the callback is never called again.
 *
 * Thread-safe; the hub lock is a leaf (wake callbacks must not call back
 * into the hub).
 */
#ifndef VIGIE_ALARM_STREAM_H
#define VIGIE_ALARM_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VG_HUB_KEEPALIVE_MS 15000

struct vg_alarm_hub;
struct vg_alarm_sub;

/* The id a hub created now would give its first event: the wall clock in
 * microseconds since 1970, or more if a freed hub of this process issued
 * higher ids. Thread-safe. */
uint64_t vg_alarm_hub_seed_id(void);

/* Events a project's ring keeps by default, and the bound over every
 * project's by default (that many times the capacity). */
#define VG_ALARM_HUB_CAPACITY 1024
#define VG_ALARM_HUB_TOTAL_FACTOR 8

/* capacity: events kept per project (0 = VG_ALARM_HUB_CAPACITY); total:
 * events kept over all projects (0 = capacity * VG_ALARM_HUB_TOTAL_FACTOR;
 * at least capacity). 0 or -ENOMEM. The caller owns *out
 * (vg_alarm_hub_free). */
int vg_alarm_hub_new(size_t capacity, size_t total, struct vg_alarm_hub **out);
/* Free. Every subscriber must have unsubscribed. Accepts NULL. */
void vg_alarm_hub_free(struct vg_alarm_hub *h);

/* Append one event ("event: <name>\ndata: <json>\n\n", given its id in
 * the project's sequence and in the hub's) to the project's ring (NULL:
 * the project ""). The json must be one line. 0 or -ENOMEM. */
int vg_alarm_hub_publish(struct vg_alarm_hub *h, const char *project,
			 const char *name, const char *json);

/* Streams one project may hold at once (an administrator's, project
 * NULL, are not counted): an SSE stream's keepalives keep its connection
 * past the server's idle timeout, so without this one tenant from a few
 * addresses could hold every connection of the API for as long as it
 * liked. */
#define VG_ALARM_HUB_PER_PROJECT 64

/* Subscribe: project NULL = every project (ids of the hub's sequence),
 * else that project's events only (ids of its sequence). last_id: resume
 * after that event id of the same sequence (from Last-Event-ID); 0 or an
 * id never issued = only events
 * published from now on; an id of an earlier run (below this hub's first
 * id) = "event: restart" (data {"last_event_id":N,"first_id":F}) then
 * every event this hub still holds. 0 or -ENOMEM / -ESHUTDOWN, or
 * -EUSERS when the project already has VG_ALARM_HUB_PER_PROJECT
 * subscriptions (counted in the stats' refused). */
int vg_alarm_hub_subscribe(struct vg_alarm_hub *h, const char *project,
			   uint64_t last_id, void (*wake)(void *arg),
			   void *wake_arg, int64_t now_ms,
			   struct vg_alarm_sub **out);
void vg_alarm_hub_unsubscribe(struct vg_alarm_sub *s); /* accepts NULL */

/* Copy pending SSE text (whole or partial events) into buf. Returns the
 * byte count (> 0), 0 when nothing is pending now (the caller waits for a
 * wake-up), or -1 once the hub shut down. */
ssize_t vg_alarm_hub_read(struct vg_alarm_sub *s, char *buf, size_t max,
			  int64_t now_ms);

/* Wake subscribers whose keepalive is due. Call about every second. */
void vg_alarm_hub_tick(struct vg_alarm_hub *h, int64_t now_ms);
/* End every stream: reads return -1 after their pending text. */
void vg_alarm_hub_shutdown(struct vg_alarm_hub *h);

struct vg_alarm_hub_stats {
	uint64_t published, subscribers;
	uint64_t lost;    /* events subscribers skipped ("event: lost") */
	uint64_t evicted; /* events that left a ring (its bound or the total) */
	uint64_t held;    /* events kept now over every project */
	uint64_t refused; /* subscriptions over VG_ALARM_HUB_PER_PROJECT */
	/* projects looked at to choose which one loses an event past the
	 * bound over every ring: one per such eviction, however many
	 * projects the hub has seen (the work of a publish, for tests) */
	uint64_t evict_looked;
};
void vg_alarm_hub_get_stats(struct vg_alarm_hub *h, struct vg_alarm_hub_stats *out);

#endif
