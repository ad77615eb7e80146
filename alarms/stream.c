/*
 * stream.c — the SSE fan-out hub (vigie/alarm_stream.h).
 *
 * Design: a ring of the last `capacity` events (seq, project, SSE text);
 * subscribers in a doubly linked list, each with the seq of the last event
 * it consumed and, when an event did not fit the caller's buffer, a copy of
 * the rest of it. Reading walks forward from the cursor skipping other
 * projects' events. Publishing wakes every subscriber (cheap: the wake
 * callback only resumes a connection).
 *
 * Event ids across restarts. The ring lives in memory, so a restarted
 * collector starts an empty one; a browser's EventSource (or `vigie alarms
 * watch`) then reconnects with the Last-Event-ID of the previous run. Ids
 * that restarted at 1 would make that id look like one of the new run's (a
 * client at id 40 would silently skip the new run's events 1..40). So the
 * first id of a hub is the wall clock in microseconds since 1970 (about
 * 1.8e15: still exact in a JavaScript number and in JSON), and ids go up by
 * one per event. A later run starts above every id of an earlier one as
 * long as (a) the earlier run published fewer events than the microseconds
 * it lived (each event follows an alarms.db write, which alone takes far
 * longer than a microsecond) and (b) the wall clock did not step back by
 * more than the earlier run's lifetime. Persisting the last id instead
 * would cost a write per event on the notification path and a file the
 * hub does not own; the clock gives the same order for free. Within one
 * process a new hub also starts above every id a freed hub issued.
 *
 * Last-Event-ID N on subscribe:
 *   0 or absent                   only events from now on;
 *   first_seq <= N < next_seq     resume after N (an "event: lost" with
 *                                 the count first if N left the ring);
 *   N < first_seq (an earlier run) an "event: restart" naming N and this
 *                                 run's first id, then every event of this
 *                                 run still in the ring (all newer than
 *                                 N); events the earlier run published
 *                                 after N are not in this stream (alarm
 *                                 history and webhooks keep them);
 *   N >= next_seq (never issued)  only events from now on.
 *
 * Invariants: events in the ring have consecutive seq numbers
 * [next_seq - count, next_seq), all >= first_seq; a subscriber's cursor is
 * < next_seq; wake callbacks run under the hub lock and never after
 * unsubscribe.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vigie/alarm_stream.h"

/* The highest id a freed hub of this process issued (+1): a new hub starts
 * at least there, whatever the clock says. */
static uint64_t g_floor_seq; /* __atomic */

struct event {
	uint64_t seq;
	char *project;
	char *text;
	size_t len;
};

struct vg_alarm_sub {
	struct vg_alarm_hub *h;
	struct vg_alarm_sub *prev, *next;
	char *project;
	uint64_t cursor; /* last consumed seq */
	char *partial;   /* rest of an event that did not fit */
	size_t partial_len, partial_off;
	int64_t last_write_ms;
	void (*wake)(void *arg);
	void *wake_arg;
	int keepalive_due;
	uint64_t restart_from; /* pending "event: restart" for this id (0: none) */
};

struct vg_alarm_hub {
	pthread_mutex_t lock;
	struct event *ring;
	size_t cap, count, head; /* head = index of the oldest */
	uint64_t first_seq;      /* this hub's first id (see the top) */
	uint64_t next_seq;       /* seq of the next event */
	struct vg_alarm_sub *subs;
	int shutdown;
	struct vg_alarm_hub_stats st;
};

uint64_t vg_alarm_hub_seed_id(void)
{
	struct timespec ts;
	uint64_t us = 1, floor = __atomic_load_n(&g_floor_seq, __ATOMIC_RELAXED);

	if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && ts.tv_sec > 0)
		us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	return us > floor ? us : floor;
}

int vg_alarm_hub_new(size_t capacity, struct vg_alarm_hub **out)
{
	struct vg_alarm_hub *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (!h)
		return -ENOMEM;
	h->cap = capacity ? capacity : 1024;
	if (!(h->ring = calloc(h->cap, sizeof(*h->ring)))) {
		free(h);
		return -ENOMEM;
	}
	h->first_seq = vg_alarm_hub_seed_id();
	h->next_seq = h->first_seq;
	pthread_mutex_init(&h->lock, NULL);
	*out = h;
	return 0;
}

void vg_alarm_hub_free(struct vg_alarm_hub *h)
{
	if (!h)
		return;
	/* a later hub of this process starts above every id issued here */
	uint64_t f = __atomic_load_n(&g_floor_seq, __ATOMIC_RELAXED);
	while (f < h->next_seq &&
	       !__atomic_compare_exchange_n(&g_floor_seq, &f, h->next_seq, 0,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	for (size_t i = 0; i < h->count; i++) {
		struct event *e = &h->ring[(h->head + i) % h->cap];
		free(e->project);
		free(e->text);
	}
	free(h->ring);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static void wake_all(struct vg_alarm_hub *h)
{
	for (struct vg_alarm_sub *s = h->subs; s; s = s->next)
		if (s->wake)
			s->wake(s->wake_arg);
}

int vg_alarm_hub_publish(struct vg_alarm_hub *h, const char *project,
			 const char *name, const char *json)
{
	struct event ev;
	int n;

	if (!h)
		return 0;
	ev.project = strdup(project ? project : "");
	n = snprintf(NULL, 0, "id: %llu\nevent: %s\ndata: %s\n\n",
		     (unsigned long long)0, name, json) +
	    24;
	ev.text = malloc((size_t)n);
	if (!ev.project || !ev.text) {
		free(ev.project);
		free(ev.text);
		return -ENOMEM;
	}
	pthread_mutex_lock(&h->lock);
	ev.seq = h->next_seq++;
	ev.len = (size_t)snprintf(ev.text, (size_t)n,
				  "id: %llu\nevent: %s\ndata: %s\n\n",
				  (unsigned long long)ev.seq, name, json);
	if (h->count == h->cap) {
		struct event *old = &h->ring[h->head];
		free(old->project);
		free(old->text);
		h->head = (h->head + 1) % h->cap;
		h->count--;
	}
	h->ring[(h->head + h->count) % h->cap] = ev;
	h->count++;
	h->st.published++;
	wake_all(h);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

int vg_alarm_hub_subscribe(struct vg_alarm_hub *h, const char *project,
			   uint64_t last_id, void (*wake)(void *arg),
			   void *wake_arg, int64_t now_ms,
			   struct vg_alarm_sub **out)
{
	struct vg_alarm_sub *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return -ENOMEM;
	if (project && !(s->project = strdup(project))) {
		free(s);
		return -ENOMEM;
	}
	s->h = h;
	s->wake = wake;
	s->wake_arg = wake_arg;
	s->last_write_ms = now_ms;
	pthread_mutex_lock(&h->lock);
	if (h->shutdown) {
		pthread_mutex_unlock(&h->lock);
		free(s->project);
		free(s);
		return -ESHUTDOWN;
	}
	if (project) {
		size_t mine = 0;
		for (struct vg_alarm_sub *o = h->subs; o; o = o->next)
			mine += o->project && !strcmp(o->project, project);
		if (mine >= VG_ALARM_HUB_PER_PROJECT) {
			h->st.refused++;
			pthread_mutex_unlock(&h->lock);
			free(s->project);
			free(s);
			return -EUSERS;
		}
	}
	/* resume after last_id when it is this run's, from this run's start
	 * when it is an earlier run's, else from now on (see the top) */
	if (last_id && last_id < h->first_seq) {
		s->cursor = h->first_seq - 1;
		s->restart_from = last_id;
	} else
		s->cursor = last_id && last_id < h->next_seq ? last_id
							     : h->next_seq - 1;
	s->next = h->subs;
	if (h->subs)
		h->subs->prev = s;
	h->subs = s;
	h->st.subscribers++;
	pthread_mutex_unlock(&h->lock);
	*out = s;
	return 0;
}

void vg_alarm_hub_unsubscribe(struct vg_alarm_sub *s)
{
	struct vg_alarm_hub *h;

	if (!s)
		return;
	h = s->h;
	pthread_mutex_lock(&h->lock);
	if (s->prev)
		s->prev->next = s->next;
	else
		h->subs = s->next;
	if (s->next)
		s->next->prev = s->prev;
	h->st.subscribers--;
	pthread_mutex_unlock(&h->lock);
	free(s->partial);
	free(s->project);
	free(s);
}

/* Copy from the partial buffer; returns bytes copied. */
static size_t drain_partial(struct vg_alarm_sub *s, char *buf, size_t max)
{
	size_t n = s->partial_len - s->partial_off;

	if (n > max)
		n = max;
	memcpy(buf, s->partial + s->partial_off, n);
	s->partial_off += n;
	if (s->partial_off == s->partial_len) {
		free(s->partial);
		s->partial = NULL;
		s->partial_len = s->partial_off = 0;
	}
	return n;
}

ssize_t vg_alarm_hub_read(struct vg_alarm_sub *s, char *buf, size_t max,
			  int64_t now_ms)
{
	struct vg_alarm_hub *h = s->h;
	size_t out = 0;

	if (!max)
		return 0;
	pthread_mutex_lock(&h->lock);
	if (s->partial)
		out += drain_partial(s, buf, max);
	if (s->restart_from && !s->partial) {
		/* the client's last event is from before this run */
		int n = snprintf(buf + out, max - out,
				 "event: restart\ndata: {\"last_event_id\":%llu,"
				 "\"first_id\":%llu}\n\n",
				 (unsigned long long)s->restart_from,
				 (unsigned long long)h->first_seq);
		if (n > 0 && (size_t)n < max - out) {
			out += (size_t)n;
			s->restart_from = 0;
		}
	}
	if (!s->partial && !s->restart_from && h->count) {
		uint64_t oldest = h->ring[h->head].seq;
		if (s->cursor + 1 < oldest) {
			/* fell behind the ring: say so, skip ahead */
			uint64_t missed = oldest - s->cursor - 1;
			int n = snprintf(buf + out, max - out,
					 "event: lost\ndata: {\"missed\":%llu}\n\n",
					 (unsigned long long)missed);
			if (n > 0 && (size_t)n < max - out) {
				out += (size_t)n;
				s->cursor = oldest - 1;
				h->st.lost += missed;
			}
		}
	}
	while (!s->partial && !s->restart_from && out < max &&
	       s->cursor + 1 < h->next_seq &&
	       h->count) {
		uint64_t oldest = h->ring[h->head].seq;
		if (s->cursor + 1 < oldest)
			break; /* handled on the next read */
		struct event *e = &h->ring[(h->head + (s->cursor + 1 - oldest)) % h->cap];
		s->cursor = e->seq;
		if (s->project && strcmp(s->project, e->project))
			continue;
		if (e->len <= max - out) {
			memcpy(buf + out, e->text, e->len);
			out += e->len;
		} else {
			/* keep the rest for the next read */
			s->partial = malloc(e->len);
			if (!s->partial) {
				h->st.lost++; /* dropped under memory pressure */
				continue;
			}
			memcpy(s->partial, e->text, e->len);
			s->partial_len = e->len;
			s->partial_off = 0;
			out += drain_partial(s, buf + out, max - out);
		}
	}
	if (!out && h->shutdown) {
		pthread_mutex_unlock(&h->lock);
		return -1;
	}
	if (!out && (s->keepalive_due ||
		     now_ms - s->last_write_ms >= VG_HUB_KEEPALIVE_MS)) {
		static const char ka[] = ": keepalive\n\n";
		if (max >= sizeof(ka) - 1) {
			memcpy(buf, ka, sizeof(ka) - 1);
			out = sizeof(ka) - 1;
		}
	}
	if (out) {
		s->last_write_ms = now_ms;
		s->keepalive_due = 0;
	}
	pthread_mutex_unlock(&h->lock);
	return (ssize_t)out;
}

void vg_alarm_hub_tick(struct vg_alarm_hub *h, int64_t now_ms)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	for (struct vg_alarm_sub *s = h->subs; s; s = s->next)
		if (now_ms - s->last_write_ms >= VG_HUB_KEEPALIVE_MS) {
			s->keepalive_due = 1;
			if (s->wake)
				s->wake(s->wake_arg);
		}
	pthread_mutex_unlock(&h->lock);
}

void vg_alarm_hub_shutdown(struct vg_alarm_hub *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->shutdown = 1;
	wake_all(h);
	pthread_mutex_unlock(&h->lock);
}

void vg_alarm_hub_get_stats(struct vg_alarm_hub *h, struct vg_alarm_hub_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	*out = h->st;
	pthread_mutex_unlock(&h->lock);
}
