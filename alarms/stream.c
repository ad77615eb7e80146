/*
 * stream.c — the SSE fan-out hub (vigie/alarm_stream.h).
 *
 * Design: one ring per project of that project's last `capacity` events
 * (its id, the hub's id, the SSE text without the id line); subscribers in
 * a doubly linked list, each following one project (a project token) or
 * every project (an administrator), with the id of the last event it
 * consumed and, when an event did not fit the caller's buffer, a copy of
 * the rest of it. Publishing wakes the subscribers of that project and the
 * administrators' (cheap: the wake callback only resumes a connection).
 *
 * Tenants do not see each other. A project's stream numbers its project's
 * events only (ids consecutive within the project), its "lost" counts only
 * its project's events, and its events leave its own ring only: a gap in
 * ids, a "missed" count or a replay after Last-Event-ID says nothing about
 * how many transitions other projects had, and one project's burst of
 * transitions pushes out its own oldest events, never another project's
 * (the rings share one bound, `total`, for memory: past it the project
 * holding the most events loses its oldest, the publishing project on a
 * tie, so a project is never evicted for a project holding fewer; the
 * hub keeps its projects in lists by how many events each holds, so that
 * choice is one look, not a scan of every project the collector has
 * seen, which it used to be at every event past the bound). An
 * administrator's stream sees every project and numbers events in the
 * hub's order (its own id sequence, one per event of any project); its
 * "lost" counts events of any project that left their ring. It finds its
 * next event in an index of every event in hub-id order (hub id, project,
 * project id): a binary search, then past the entries whose event left
 * its ring (the administrator lost those, and its cursor moves past
 * them). It used to look into every project's ring for each event, and
 * project entries are never freed, so that cost grew with every project
 * the collector had seen. The index drops the entries of events gone
 * when it fills, growing only if that freed less than half: at most about
 * twice the events held, each entry moved O(1) times on average.
 *
 * Event ids across restarts. The rings live in memory, so a restarted
 * collector starts empty ones; a browser's EventSource (or `vigie alarms
 * watch`) then reconnects with the Last-Event-ID of the previous run. Ids
 * that restarted at 1 would make that id look like one of the new run's (a
 * client at id 40 would silently skip the new run's events 1..40). So the
 * first id of a hub is the wall clock in microseconds since 1970 (about
 * 1.8e15: still exact in a JavaScript number and in JSON), and ids go up by
 * one per event: every project's sequence and the administrators' start
 * there (a project's ids are therefore never above the hub's). A later
 * run starts above every id of an earlier one as long as (a) the earlier
 * run published fewer events than the microseconds it lived (each event
 * follows an alarms.db write, which alone takes far longer than a
 * microsecond) and (b) the wall clock did not step back by more than the
 * earlier run's lifetime. Persisting the last id instead would cost a
 * write per event on the notification path and a file the hub does not
 * own; the clock gives the same order for free. Within one process a new
 * hub also starts above every id a freed hub issued.
 *
 * Last-Event-ID N on subscribe, against the sequence the subscriber
 * follows (its project's, or the hub's for an administrator):
 *   0 or absent                   only events from now on;
 *   first_seq <= N < next         resume after N (an "event: lost" with
 *                                 the count first if events after N left
 *                                 the ring);
 *   N < first_seq (an earlier run) an "event: restart" naming N and this
 *                                 run's first id, then every event of this
 *                                 run still kept (all newer than N);
 *                                 events the earlier run published after N
 *                                 are not in this stream (alarm history
 *                                 and webhooks keep them);
 *   N >= next (never issued)      only events from now on.
 *
 * Invariants: a project's ring holds consecutive project ids
 * [next_seq - count, next_seq), all >= first_seq, in increasing hub ids;
 * every hub id below next_gseq was published and is either held by
 * exactly one ring or gone; count <= capacity per project and the sum of
 * counts <= total; a project holding n > 0 events is in by_count[n], one
 * holding none in no list, and max_count is the highest n whose list is
 * not empty (0: none); the index holds, in increasing hub ids, an entry for
 * every event held (and some of events gone); a project entry lives
 * until the hub is freed (its sequence must not restart within a run); a
 * subscriber's cursor is below the next id of its sequence; wake
 * callbacks run under the hub lock and never after unsubscribe.
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

#define NBUCKETS 256

struct event {
	uint64_t seq;  /* the project's id */
	uint64_t gseq; /* the hub's id (an administrator's stream) */
	char *text;    /* "event: ...\ndata: ...\n\n", no id line */
	size_t len;
};

/* One project's events: a ring grown on demand up to the hub's capacity
 * and freed when it empties. */
struct project {
	char *name;
	struct project *bucket_next, *all_next;
	struct event *ring;
	size_t alloc, count, head; /* head = index of the oldest */
	uint64_t next_seq;         /* the project's id of its next event */
	size_t subs;               /* its streams (VG_ALARM_HUB_PER_PROJECT) */
	/* its place in by_count[count] (in no list while count is 0) */
	struct project *cnt_prev, *cnt_next;
};

struct vg_alarm_sub {
	struct vg_alarm_hub *h;
	struct vg_alarm_sub *prev, *next;
	struct project *p; /* NULL: every project (an administrator) */
	uint64_t cursor;   /* last consumed id of the sequence it follows */
	char *partial;     /* rest of an event that did not fit */
	size_t partial_len, partial_off;
	int64_t last_write_ms;
	void (*wake)(void *arg);
	void *wake_arg;
	int keepalive_due;
	uint64_t restart_from; /* pending "event: restart" for this id (0: none) */
};

/* An administrator's index entry: the hub id of an event, its project
 * and its id there (held while seq >= its project's oldest). */
struct gentry {
	uint64_t gseq, seq;
	struct project *p;
};

struct vg_alarm_hub {
	pthread_mutex_t lock;
	size_t cap;         /* events kept per project */
	size_t total_cap;   /* events kept over all projects */
	size_t total;       /* events held now */
	uint64_t first_seq; /* this hub's first id (see the top) */
	uint64_t next_gseq; /* the hub's id of the next event */
	struct project *buckets[NBUCKETS];
	struct project *all;
	/* by_count[n] (n = 1..cap): the projects holding n events; the one
	 * to lose an event past total_cap is in by_count[max_count] */
	struct project **by_count;
	size_t max_count;
	struct vg_alarm_sub *subs;
	/* every event in hub-id order (an administrator's next event is a
	 * binary search, not a look into every project's ring); entries of
	 * events that left their ring go when the index fills up */
	struct gentry *gidx;
	size_t gcount, galloc;
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

int vg_alarm_hub_new(size_t capacity, size_t total, struct vg_alarm_hub **out)
{
	struct vg_alarm_hub *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (!h)
		return -ENOMEM;
	h->cap = capacity ? capacity : VG_ALARM_HUB_CAPACITY;
	h->total_cap = total ? total : h->cap * VG_ALARM_HUB_TOTAL_FACTOR;
	if (h->total_cap < h->cap)
		h->total_cap = h->cap;
	if (!(h->by_count = calloc(h->cap + 1, sizeof(*h->by_count)))) {
		free(h);
		return -ENOMEM;
	}
	h->first_seq = vg_alarm_hub_seed_id();
	h->next_gseq = h->first_seq;
	pthread_mutex_init(&h->lock, NULL);
	*out = h;
	return 0;
}

static void ring_free(struct project *p)
{
	for (size_t i = 0; i < p->count; i++)
		free(p->ring[(p->head + i) % p->alloc].text);
	free(p->ring);
	p->ring = NULL;
	p->alloc = p->count = p->head = 0;
}

void vg_alarm_hub_free(struct vg_alarm_hub *h)
{
	if (!h)
		return;
	/* a later hub of this process starts above every id issued here (the
	 * hub's sequence is ahead of every project's) */
	uint64_t f = __atomic_load_n(&g_floor_seq, __ATOMIC_RELAXED);
	while (f < h->next_gseq &&
	       !__atomic_compare_exchange_n(&g_floor_seq, &f, h->next_gseq, 0,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	for (struct project *p = h->all, *n; p; p = n) {
		n = p->all_next;
		ring_free(p);
		free(p->name);
		free(p);
	}
	free(h->gidx);
	free(h->by_count);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static size_t bucket_of(const char *name)
{
	uint32_t x = 2166136261u; /* FNV-1a */

	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		x = (x ^ *c) * 16777619u;
	return x % NBUCKETS;
}

/* The project's entry, made (with an empty ring) if create. NULL: none,
 * or out of memory. Under the lock. */
static struct project *project_get(struct vg_alarm_hub *h, const char *name,
				   int create)
{
	size_t b = bucket_of(name);
	struct project *p;

	for (p = h->buckets[b]; p; p = p->bucket_next)
		if (!strcmp(p->name, name))
			return p;
	if (!create || !(p = calloc(1, sizeof(*p))))
		return NULL;
	if (!(p->name = strdup(name))) {
		free(p);
		return NULL;
	}
	p->next_seq = h->first_seq;
	p->bucket_next = h->buckets[b];
	h->buckets[b] = p;
	p->all_next = h->all;
	h->all = p;
	return p;
}

/* p now holds n events: move it to by_count[n] and keep max_count. A
 * count moves by one, so max_count moves at most one step. Under the lock. */
static void count_set(struct vg_alarm_hub *h, struct project *p, size_t n)
{
	if (p->count) {
		if (p->cnt_prev)
			p->cnt_prev->cnt_next = p->cnt_next;
		else
			h->by_count[p->count] = p->cnt_next;
		if (p->cnt_next)
			p->cnt_next->cnt_prev = p->cnt_prev;
	}
	p->cnt_prev = p->cnt_next = NULL;
	if (n) {
		p->cnt_next = h->by_count[n];
		if (p->cnt_next)
			p->cnt_next->cnt_prev = p;
		h->by_count[n] = p;
	}
	p->count = n;
	if (n > h->max_count)
		h->max_count = n;
	while (h->max_count && !h->by_count[h->max_count])
		h->max_count--;
}

/* Drop the project's oldest event. */
static void evict_oldest(struct vg_alarm_hub *h, struct project *p)
{
	free(p->ring[p->head].text);
	p->head = (p->head + 1) % p->alloc;
	count_set(h, p, p->count - 1);
	h->total--;
	h->st.evicted++;
	if (!p->count)
		ring_free(p); /* an idle project holds no memory */
}

/* Room for one more event in p's ring: 0 or -ENOMEM. */
static int ring_room(struct vg_alarm_hub *h, struct project *p)
{
	struct event *r;
	size_t n;

	if (p->count == h->cap)
		evict_oldest(h, p);
	else if (h->total >= h->total_cap) {
		/* the project holding the most loses its oldest; the
		 * publisher on a tie, so a burst evicts its own first */
		struct project *v =
			p->count == h->max_count ? p : h->by_count[h->max_count];
		h->st.evict_looked++;
		evict_oldest(h, v);
	}
	if (p->count < p->alloc)
		return 0;
	n = p->alloc ? p->alloc * 2 : 8;
	if (n > h->cap)
		n = h->cap;
	if (!(r = malloc(n * sizeof(*r))))
		return -ENOMEM;
	for (size_t i = 0; i < p->count; i++) /* oldest first again */
		r[i] = p->ring[(p->head + i) % p->alloc];
	free(p->ring);
	p->ring = r;
	p->alloc = n;
	p->head = 0;
	return 0;
}

/* Whether an index entry's event is still in its project's ring. */
static int gentry_held(const struct gentry *g)
{
	return g->seq >= g->p->next_seq - g->p->count;
}

/* Room for one more index entry: drop the entries of events that left
 * their ring, and grow only if that freed less than half (so each entry
 * is moved O(1) times on average and the index holds at most about
 * twice the events held). 0 or -ENOMEM. */
static int gidx_room(struct vg_alarm_hub *h)
{
	struct gentry *g;
	size_t n = 0;

	if (h->gcount < h->galloc)
		return 0;
	for (size_t i = 0; i < h->gcount; i++)
		if (gentry_held(&h->gidx[i]))
			h->gidx[n++] = h->gidx[i];
	h->gcount = n;
	if (h->galloc && n <= h->galloc / 2)
		return 0;
	n = h->galloc ? h->galloc * 2 : 64;
	if (!(g = realloc(h->gidx, n * sizeof(*g))))
		return h->gcount < h->galloc ? 0 : -ENOMEM;
	h->gidx = g;
	h->galloc = n;
	return 0;
}

int vg_alarm_hub_publish(struct vg_alarm_hub *h, const char *project,
			 const char *name, const char *json)
{
	struct project *p;
	struct event ev;
	int n;

	if (!h)
		return 0;
	n = snprintf(NULL, 0, "event: %s\ndata: %s\n\n", name, json);
	if (n < 0 || !(ev.text = malloc((size_t)n + 1)))
		return -ENOMEM;
	ev.len = (size_t)snprintf(ev.text, (size_t)n + 1, "event: %s\ndata: %s\n\n",
				  name, json);
	pthread_mutex_lock(&h->lock);
	if (!(p = project_get(h, project ? project : "", 1)) || ring_room(h, p) ||
	    gidx_room(h)) {
		pthread_mutex_unlock(&h->lock);
		free(ev.text);
		return -ENOMEM;
	}
	ev.seq = p->next_seq++;
	ev.gseq = h->next_gseq++;
	p->ring[(p->head + p->count) % p->alloc] = ev;
	count_set(h, p, p->count + 1);
	h->gidx[h->gcount++] = (struct gentry){.gseq = ev.gseq, .seq = ev.seq, .p = p};
	h->total++;
	h->st.published++;
	for (struct vg_alarm_sub *s = h->subs; s; s = s->next)
		if (s->wake && (!s->p || s->p == p))
			s->wake(s->wake_arg);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

int vg_alarm_hub_subscribe(struct vg_alarm_hub *h, const char *project,
			   uint64_t last_id, void (*wake)(void *arg),
			   void *wake_arg, int64_t now_ms,
			   struct vg_alarm_sub **out)
{
	struct vg_alarm_sub *s = calloc(1, sizeof(*s));
	uint64_t next;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->h = h;
	s->wake = wake;
	s->wake_arg = wake_arg;
	s->last_write_ms = now_ms;
	pthread_mutex_lock(&h->lock);
	if (h->shutdown) {
		pthread_mutex_unlock(&h->lock);
		free(s);
		return -ESHUTDOWN;
	}
	if (project) {
		if (!(s->p = project_get(h, project, 1))) {
			pthread_mutex_unlock(&h->lock);
			free(s);
			return -ENOMEM;
		}
		if (s->p->subs >= VG_ALARM_HUB_PER_PROJECT) {
			h->st.refused++;
			pthread_mutex_unlock(&h->lock);
			free(s);
			return -EUSERS;
		}
		s->p->subs++;
	}
	/* resume after last_id when it is this run's, from this run's start
	 * when it is an earlier run's, else from now on (see the top) */
	next = s->p ? s->p->next_seq : h->next_gseq;
	if (last_id && last_id < h->first_seq) {
		s->cursor = h->first_seq - 1;
		s->restart_from = last_id;
	} else
		s->cursor = last_id && last_id < next ? last_id : next - 1;
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
	if (s->p)
		s->p->subs--;
	h->st.subscribers--;
	pthread_mutex_unlock(&h->lock);
	free(s->partial);
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

/* The next event the subscriber is to get after its cursor (NULL: none
 * held), its id in the subscriber's sequence in *id, and in *missed how
 * many ids between the cursor and it (or the sequence's next id) left
 * the rings. Under the lock. */
static struct event *next_event(struct vg_alarm_sub *s, uint64_t *id,
				uint64_t *missed)
{
	struct vg_alarm_hub *h = s->h;
	struct event *e = NULL;
	uint64_t at;

	if (s->p) {
		struct project *p = s->p;
		uint64_t oldest = p->next_seq - p->count;
		if (s->cursor + 1 < oldest) {
			*missed = oldest - s->cursor - 1;
			at = oldest;
		} else {
			*missed = 0;
			at = s->cursor + 1;
		}
		if (at < p->next_seq)
			e = &p->ring[(p->head + (at - oldest)) % p->alloc];
		*id = e ? e->seq : 0;
		return e;
	}
	/* an administrator's: the first event of the index above the cursor
	 * still held in its ring (the ones skipped left theirs: lost) */
	size_t lo = 0, hi = h->gcount;
	while (lo < hi) { /* hub ids increase along the index */
		size_t mid = lo + (hi - lo) / 2;
		if (h->gidx[mid].gseq > s->cursor)
			hi = mid;
		else
			lo = mid + 1;
	}
	for (; lo < h->gcount && !e; lo++) {
		const struct gentry *g = &h->gidx[lo];
		if (gentry_held(g)) {
			struct project *p = g->p;
			e = &p->ring[(p->head + (g->seq - (p->next_seq - p->count))) %
				     p->alloc];
		}
	}
	at = e ? e->gseq : h->next_gseq;
	*missed = at - s->cursor - 1;
	*id = e ? e->gseq : 0;
	return e;
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
	while (!s->partial && !s->restart_from && out < max) {
		uint64_t id, missed;
		struct event *e = next_event(s, &id, &missed);
		char idl[32];
		int il;

		if (missed) {
			/* fell behind its ring: say so, skip ahead */
			int n = snprintf(buf + out, max - out,
					 "event: lost\ndata: {\"missed\":%llu}\n\n",
					 (unsigned long long)missed);
			if (n <= 0 || (size_t)n >= max - out)
				break; /* on the next read */
			out += (size_t)n;
			s->cursor += missed;
			h->st.lost += missed;
			continue;
		}
		if (!e)
			break;
		s->cursor = id;
		il = snprintf(idl, sizeof(idl), "id: %llu\n", (unsigned long long)id);
		if ((size_t)il + e->len <= max - out) {
			memcpy(buf + out, idl, (size_t)il);
			memcpy(buf + out + il, e->text, e->len);
			out += (size_t)il + e->len;
		} else {
			/* keep the rest for the next read */
			s->partial = malloc((size_t)il + e->len);
			if (!s->partial) {
				h->st.lost++; /* dropped under memory pressure */
				continue;
			}
			memcpy(s->partial, idl, (size_t)il);
			memcpy(s->partial + il, e->text, e->len);
			s->partial_len = (size_t)il + e->len;
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
	for (struct vg_alarm_sub *s = h->subs; s; s = s->next)
		if (s->wake)
			s->wake(s->wake_arg);
	pthread_mutex_unlock(&h->lock);
}

void vg_alarm_hub_get_stats(struct vg_alarm_hub *h, struct vg_alarm_hub_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	*out = h->st;
	out->held = h->total;
	pthread_mutex_unlock(&h->lock);
}
