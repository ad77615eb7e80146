/*
 * outbox.c — the delivery thread over the sqlite outbox
 * (vigie/alarm_outbox.h).
 *
 * Design: one thread drives every attempt at once through one libcurl
 * multi handle. Due rows are read from alarms.db into per-destination
 * FIFOs in memory (a destination is a webhook's scheme://host:port, the
 * Alertmanager's, or one exec command); each pass starts, destination by
 * destination in turn, as many attempts as the bounds allow: at most
 * per_destination (exec: 1) in flight to one destination and max_in_flight
 * in all, so a slow receiver occupies its own slots and never the others'.
 * Easy handles are pooled and the multi handle's connection cache keeps a
 * connection open to each receiver, so a burst to one receiver reuses its
 * connections instead of opening one per notification. An exec command
 * runs on a thread of its own that wakes the multi handle when it ends.
 * The outcomes of the attempts that finished in one pass are recorded in
 * one transaction (mark + one history row each): a burst of notifications
 * costs a few commits, not one each.
 *
 * Record: an outcome is decided once, when its attempt ends, and kept in
 * memory (the row stays held) until the transaction that records it
 * commits. A record that fails (PostgreSQL restarted, a deadlock, a busy
 * sqlite) is tried again, after RECORD_RETRY_MS doubling up to
 * RECORD_RETRY_MAX_MS, and only the record: a held row is never read or
 * attempted again, so a receiver that answered is not sent the same
 * notification again by this process. After RECORD_SPLIT failures in a
 * row each outcome is recorded in a transaction of its own: one the
 * database refuses for good holds no other. Only a crash before the record
 * commits sends it again (the Idempotency-Key window).
 *
 * Timeout: the webhook timeout is kept here, not by libcurl. An attempt
 * is charged the time between two reads of the sockets only up to what
 * the thread meant to wait (plus STALL_SLACK_MS), and it times out only
 * after the sockets were read: a thread that did not run for a while
 * (descheduled on a loaded machine, a slow commit) never throws away an
 * answer waiting unread in a socket and sends the notification again.
 *
 * Reading: rows are read with an id cursor (new rows always have higher
 * ids); a row scheduled for a retry, or left in the database because a
 * destination's FIFO or the memory bound was full, is found by a rescan
 * from id 0 that skips the rows already held. Held rows are a cache: the
 * database stays the only truth, a crash loses nothing.
 *
 * Actions: "http://", "https://" -> webhook; "exec://NAME" -> the
 * configured command; "alertmanager://" -> POST <alertmanager>/api/v2/alerts.
 * An action this collector cannot perform any more (exec command removed
 * from the configuration) fails permanently with a reason.
 *
 * Fence: a project's webhook (options.webhook_fenced says which) is
 * attempted through the fence of alarms/guard.h (checked in libcurl's
 * open-socket callback, on the address connected to). A connection in
 * the multi handle's cache that an unfenced attempt opened would let a
 * fenced attempt to the same origin skip that check, so fenced attempts
 * to an origin an unfenced attempt ever used (remembered in `unfenced`,
 * bounded) open a fresh connection.
 *
 * Invariants: a row is attempted only while pending and held at most once
 * in memory (so never twice at a time); the attempt counter in the row
 * grows by one per attempt; the lock is never held while attempting (wake
 * never blocks behind a slow receiver); memory is bounded by MAX_HELD rows
 * (DEST_HELD_MAX per destination).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "alarms/guard.h"
#include "alarms/notice.h"
#include "vigie/alarm_outbox.h"
#include "vigie/alarm_store.h"
#include "alarms/webhook.h"
#include "vigie/clock.h"
#include "vigie/hmap.h"
#include "vigie/log.h"
#include "vigie/name.h"

#define FETCH 256          /* rows per read */
#define MAX_HELD 4096      /* rows held in memory (queued or in flight) */
#define DEST_HELD_MAX 1024 /* rows held per destination */
#define IDLE_WAIT_MS 1000  /* longest sleep without a wake-up */
#define UNFENCED_MAX 4096  /* origins remembered as used unfenced */
#define STALL_SLACK_MS 100 /* longer gaps between two reads: the thread's own */

/* a record that failed is tried again after RECORD_RETRY_MS, doubling up
 * to RECORD_RETRY_MAX_MS */
#define RECORD_RETRY_MS 100
#define RECORD_RETRY_MAX_MS 5000
#define RECORD_SPLIT 3 /* failures in a row: then one outcome at a time */

/* What an attempt that ended does to its row (decided once). */
enum outcome {
	OUT_DELIVERED = 1,
	OUT_RETRY,
	OUT_FAILED,
	OUT_REFUSED,
};

struct vg_alarm_outbox;

/* One pending row held in memory, queued or in flight. */
struct job {
	struct vg_alarm_outbox_item it;
	struct vg_alarm_outbox *ob;
	struct dest *d;
	struct job *next; /* destination FIFO, or the finished list */
	size_t slot;      /* index in ob->held */
	/* in flight */
	CURL *easy;
	struct curl_slist *hdr;
	char *am_body; /* the Alertmanager body, owned */
	char cerr[CURL_ERROR_SIZE];
	struct vg_alarm_webhook_fence fence;
	int fenced;
	pthread_t th;
	int th_started;
	int64_t started_ms; /* monotonic, when the request was started */
	int64_t waited_ms;  /* time the receiver had to answer (see perform) */
	int ended;          /* on the finished list */
	/* outcome */
	int arc;
	long http;
	char err[512];
	int outcome;     /* OUT_*, once settled */
	int64_t at;      /* wall clock, when it was settled */
	int64_t next_at; /* OUT_RETRY: when to try again */
};

struct dest {
	char key[300];           /* scheme://host:port, or the exec action */
	struct job *head, *tail; /* queued, oldest first */
	size_t held, inflight, limit;
	int overflow; /* rows left in the database */
	struct dest *next;
};

/* A project with attempts in flight, and how many. */
struct proj {
	char name[256];
	size_t inflight;
};

struct vg_alarm_outbox {
	struct vg_alarm_outbox_options o;
	struct vg_alarm_exec_cmd exec[VG_EXEC_MAX];
	char am_url[1024];
	struct vg_alarm_store *store;
	pthread_t thread;
	int started;
	pthread_mutex_t lock; /* stopping, woken, st, exec_done */
	int stopping, woken;
	struct job *exec_done; /* exec attempts that ended */
	struct vg_alarm_outbox_stats st;
	uint64_t log_limit;
	/* delivery state: only the delivering thread touches it */
	CURLM *multi;
	CURL **pool; /* idle easy handles, kept with their state */
	size_t npool;
	struct dest *dests, *rr; /* rr: where the next pass starts */
	struct proj *projs;      /* max_in_flight places; inflight 0 = free */
	struct job **held;
	size_t nheld, inflight;
	int64_t cursor;       /* highest id read */
	int64_t max_held_id;  /* highest id ever held (rows above: not held) */
	int rescan;           /* read again from id 0 */
	int mem_overflow;     /* rows left in the database: memory full */
	int64_t retry_due;    /* earliest next_ms of a row not held */
	struct job *finished; /* attempts that ended, to record */
	struct job *unrec;    /* outcomes settled, not recorded yet (held) */
	int64_t record_due;   /* monotonic, when to try recording them */
	uint32_t rec_fails;   /* in a row, for the back-off */
	int64_t perform_ms;   /* monotonic, the last read of the sockets */
	struct vg_alarm_guard *guard;
	struct vg_hmap unfenced; /* origins an unfenced attempt used */
	int unfenced_full;       /* more than UNFENCED_MAX: always fresh */
};

static int64_t now(struct vg_alarm_outbox *ob)
{
	return ob->o.now_ms ? ob->o.now_ms() : vg_now_ms();
}

int64_t vg_alarm_outbox_backoff(int64_t initial_ms, int64_t max_ms, uint32_t n)
{
	int64_t d = initial_ms > 0 ? initial_ms : 1000;

	for (uint32_t i = 1; i < n && d < max_ms; i++)
		d *= 2;
	return d > max_ms ? max_ms : d;
}

int vg_alarm_outbox_open(const struct vg_alarm_outbox_options *o,
			 struct vg_alarm_outbox **out, char *err, size_t errlen)
{
	struct vg_alarm_outbox *ob;
	int rc;

	*out = NULL;
	if (!(ob = calloc(1, sizeof(*ob)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ob->o = *o;
	if (!ob->o.webhook_timeout_ms)
		ob->o.webhook_timeout_ms = 5000;
	if (!ob->o.retry_initial_ms)
		ob->o.retry_initial_ms = 1000;
	if (!ob->o.retry_max_ms)
		ob->o.retry_max_ms = 300000;
	if (!ob->o.retry_for_ms)
		ob->o.retry_for_ms = 86400000;
	if (!ob->o.exec_timeout_ms)
		ob->o.exec_timeout_ms = 10000;
	if (!ob->o.max_in_flight)
		ob->o.max_in_flight = VG_OUTBOX_MAX_IN_FLIGHT;
	if (!ob->o.per_destination)
		ob->o.per_destination = VG_OUTBOX_PER_DESTINATION;
	if (ob->o.per_destination > ob->o.max_in_flight)
		ob->o.per_destination = ob->o.max_in_flight;
	if (!ob->o.per_project)
		ob->o.per_project = VG_OUTBOX_PER_PROJECT;
	if (o->nexec > VG_EXEC_MAX)
		ob->o.nexec = VG_EXEC_MAX;
	for (size_t i = 0; i < ob->o.nexec; i++)
		ob->exec[i] = o->exec[i];
	ob->o.exec = ob->exec;
	if (o->alertmanager_url && *o->alertmanager_url) {
		size_t l = strlen(o->alertmanager_url);
		while (l && o->alertmanager_url[l - 1] == '/')
			l--;
		snprintf(ob->am_url, sizeof(ob->am_url), "%.*s/api/v2/alerts",
			 (int)l, o->alertmanager_url);
	}
	ob->o.alertmanager_url = NULL;
	ob->o.data_dir = NULL;
	ob->o.webhook_allow = NULL;
	vg_hmap_init(&ob->unfenced);
	if ((rc = vg_alarm_guard_create(o->webhook_allow, &ob->guard, err, errlen))) {
		if (rc == -EINVAL) {
			char m[256];
			snprintf(m, sizeof(m), "[alarms] webhook_allow: %s", err);
			snprintf(err, errlen, "%s", m);
		}
		free(ob);
		return rc;
	}
	ob->retry_due = INT64_MAX;
	ob->rescan = 1;
	vg_alarm_webhook_global_init();
	ob->held = calloc(MAX_HELD, sizeof(*ob->held));
	ob->pool = calloc(ob->o.max_in_flight, sizeof(*ob->pool));
	ob->projs = calloc(ob->o.max_in_flight, sizeof(*ob->projs));
	ob->multi = curl_multi_init();
	if (!ob->held || !ob->pool || !ob->projs || !ob->multi) {
		snprintf(err, errlen, "out of memory");
		curl_multi_cleanup(ob->multi);
		free(ob->projs);
		free(ob->pool);
		free(ob->held);
		vg_alarm_guard_free(ob->guard);
		free(ob);
		return -ENOMEM;
	}
	/* keep an idle connection per possible transfer; never more than
	 * per_destination connections to one host */
	curl_multi_setopt(ob->multi, CURLMOPT_MAXCONNECTS, (long)ob->o.max_in_flight);
	curl_multi_setopt(ob->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			  (long)ob->o.per_destination);
	rc = vg_alarm_store_open(o->data_dir, &ob->store, err, errlen);
	if (rc) {
		curl_multi_cleanup(ob->multi);
		free(ob->projs);
		free(ob->pool);
		free(ob->held);
		vg_alarm_guard_free(ob->guard);
		free(ob);
		return rc;
	}
	pthread_mutex_init(&ob->lock, NULL);
	*out = ob;
	return 0;
}

/* Record one history row for an attempt (best effort: the outcome mark
 * is what matters). */
static void history(struct vg_alarm_outbox *ob, const struct vg_alarm_outbox_item *it,
		    const char *status, long http, const char *error,
		    int64_t next_ms, int64_t t)
{
	json_t *d = json_pack("{s:s,s:s,s:s,s:i}", "notification_id", it->notice_id,
			      "action", it->action, "status", status, "attempt",
			      (int)it->attempts + 1);
	char *text;

	if (!d)
		return;
	if (http)
		json_object_set_new(d, "http_status", json_integer(http));
	if (error && *error)
		json_object_set_new(d, "error", json_string(error));
	if (next_ms) {
		char ts[32];
		json_object_set_new(d, "next_attempt",
				    json_string(vg_time_format(next_ms, ts, sizeof(ts))));
	}
	text = json_dumps(d, JSON_COMPACT);
	json_decref(d);
	if (text)
		vg_alarm_store_history_add(ob->store, it->alarm_id, it->project,
					   "notification", NULL, t, t, text);
	free(text);
}

static const struct vg_alarm_exec_cmd *find_exec(struct vg_alarm_outbox *ob,
						 const char *name)
{
	for (size_t i = 0; i < ob->o.nexec; i++)
		if (!strcmp(ob->exec[i].name, name))
			return &ob->exec[i];
	return NULL;
}

/* One exec attempt (blocking). 0 done, -EAGAIN retry, other: give up. */
static int exec_attempt(struct vg_alarm_outbox *ob, const struct vg_alarm_outbox_item *it,
			char *err, size_t errlen)
{
	const struct vg_alarm_exec_cmd *c = find_exec(ob, it->action + 7);
	json_t *n;
	struct vg_alarm_exec_env env;
	char out[512];
	int st = 0, rc;

	if (!c) {
		snprintf(err, errlen, "exec command '%s' is no longer configured",
			 it->action + 7);
		return -ENOENT;
	}
	n = json_loads(it->body, 0, NULL);
	memset(&env, 0, sizeof(env));
	env.alarm_id = it->alarm_id;
	env.notification_id = it->notice_id;
	env.project = it->project;
	if (n) {
		env.alarm_name = json_string_value(json_object_get(n, "alarm_name"));
		env.state = json_string_value(json_object_get(n, "current"));
		env.previous = json_string_value(json_object_get(n, "previous"));
		env.resource = json_string_value(json_object_get(n, "resource"));
	}
	rc = vg_alarm_exec_run(c, it->body, strlen(it->body), &env,
			       ob->o.exec_timeout_ms, &st, out, sizeof(out));
	json_decref(n);
	if (rc == 0)
		snprintf(err, errlen, "exit 0");
	else if (rc == -ETIMEDOUT)
		snprintf(err, errlen, "killed after %lld ms",
			 (long long)ob->o.exec_timeout_ms);
	else if (rc == -ECHILD)
		snprintf(err, errlen, "exit status %d: %.200s",
			 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), out);
	else
		snprintf(err, errlen, "cannot run %.200s: %s", c->command,
			 strerror(-rc));
	if (rc == -ENOENT || rc == -EACCES)
		return -EPERM; /* will not get better by itself */
	return rc ? -EAGAIN : 0;
}

static void *exec_main(void *arg)
{
	struct job *j = arg;
	struct vg_alarm_outbox *ob = j->ob;

	j->arc = exec_attempt(ob, &j->it, j->err, sizeof(j->err));
	pthread_mutex_lock(&ob->lock);
	j->next = ob->exec_done;
	ob->exec_done = j;
	pthread_mutex_unlock(&ob->lock);
	curl_multi_wakeup(ob->multi);
	return NULL;
}

static int64_t jitter(int64_t d)
{
	uint32_t r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)vg_monotonic_ms();
	/* +-20% */
	return d + (int64_t)((double)d * 0.4 * ((double)r / 4294967295.0 - 0.5));
}

/* ---- destinations and held rows ---------------------------------------------- */

static void dest_key(struct vg_alarm_outbox *ob, const char *action, char *key,
		     size_t len, size_t *limit)
{
	*limit = ob->o.per_destination;
	if (!strncmp(action, "exec://", 7)) {
		snprintf(key, len, "%s", action);
		*limit = 1; /* one run of a command at a time, as an operator expects */
		return;
	}
	if (!strcmp(action, "alertmanager://"))
		action = ob->am_url;
	if (vg_alarm_webhook_origin(action, key, len))
		snprintf(key, len, "%.*s", (int)(len - 1), action);
}

static struct dest *dest_get(struct vg_alarm_outbox *ob, const char *action)
{
	char key[300];
	size_t limit;
	struct dest *d;

	dest_key(ob, action, key, sizeof(key), &limit);
	for (d = ob->dests; d; d = d->next)
		if (!strcmp(d->key, key))
			return d;
	if (!(d = calloc(1, sizeof(*d))))
		return NULL;
	snprintf(d->key, sizeof(d->key), "%s", key);
	d->limit = limit;
	d->next = ob->dests;
	ob->dests = d;
	return d;
}

/* Free destinations that hold nothing (the list stays as short as the
 * set of receivers with work). */
static void dests_gc(struct vg_alarm_outbox *ob)
{
	struct dest **pp = &ob->dests;

	while (*pp) {
		struct dest *d = *pp;
		if (!d->held && !d->overflow) {
			*pp = d->next;
			if (ob->rr == d)
				ob->rr = NULL;
			free(d);
		} else {
			pp = &d->next;
		}
	}
}

static int is_held(struct vg_alarm_outbox *ob, int64_t id)
{
	for (size_t i = 0; i < ob->nheld; i++)
		if (ob->held[i]->it.id == id)
			return 1;
	return 0;
}

static void job_free(struct vg_alarm_outbox *ob, struct job *j)
{
	size_t s = j->slot;

	ob->held[s] = ob->held[--ob->nheld];
	ob->held[s]->slot = s;
	j->d->held--;
	if (j->d->overflow && j->d->held < DEST_HELD_MAX / 2) {
		j->d->overflow = 0;
		ob->rescan = 1; /* rows of this destination wait in the database */
	}
	if (ob->mem_overflow && ob->nheld < MAX_HELD / 2) {
		ob->mem_overflow = 0;
		ob->rescan = 1;
	}
	vg_alarm_outbox_item_release(&j->it);
	free(j);
}

/* Hold a row read from the database (takes ownership of it). */
static void hold(struct vg_alarm_outbox *ob, struct vg_alarm_outbox_item *it)
{
	struct dest *d;
	struct job *j;

	if (ob->nheld >= MAX_HELD || !(d = dest_get(ob, it->action)) ||
	    d->held >= DEST_HELD_MAX || !(j = calloc(1, sizeof(*j)))) {
		/* read again once this destination (or memory) has room */
		if (ob->nheld < MAX_HELD && (d = dest_get(ob, it->action)) && d->held)
			d->overflow = 1; /* read again when it drains */
		else if (ob->nheld)
			ob->mem_overflow = 1; /* read again when memory frees up */
		else if (now(ob) + 1000 < ob->retry_due)
			ob->retry_due = now(ob) + 1000; /* out of memory: later */
		vg_alarm_outbox_item_release(it);
		return;
	}
	j->it = *it;
	if (it->id > ob->max_held_id)
		ob->max_held_id = it->id;
	j->ob = ob;
	j->d = d;
	j->slot = ob->nheld;
	ob->held[ob->nheld++] = j;
	d->held++;
	if (d->tail)
		d->tail->next = j;
	else
		d->head = j;
	d->tail = j;
}

/* Read due rows: after the cursor, or everything again on a rescan. */
static int fetch(struct vg_alarm_outbox *ob, int64_t t)
{
	struct vg_alarm_outbox_item items[FETCH];
	int rc;

	if (ob->rescan || t >= ob->retry_due) {
		ob->cursor = 0;
		ob->rescan = 0;
		ob->retry_due = INT64_MAX;
	}
	for (;;) {
		size_t n = 0;
		int64_t next = INT64_MAX;
		rc = vg_alarm_store_outbox_due(ob->store, t, ob->cursor, items, FETCH,
					       &n, &next);
		if (rc)
			return rc;
		if (next < ob->retry_due)
			ob->retry_due = next;
		for (size_t i = 0; i < n; i++) {
			if (items[i].id > ob->cursor)
				ob->cursor = items[i].id;
			if (items[i].id <= ob->max_held_id && is_held(ob, items[i].id))
				vg_alarm_outbox_item_release(&items[i]);
			else
				hold(ob, &items[i]);
		}
		if (n < FETCH || ob->nheld >= MAX_HELD)
			return 0;
	}
}

/* ---- attempts ------------------------------------------------------------------- */

static void finish(struct vg_alarm_outbox *ob, struct job *j)
{
	j->ended = 1;
	j->next = ob->finished;
	ob->finished = j;
}

/* Fence j's handle when its alarm asks for it, and remember the origins
 * unfenced attempts use (their cached connections were never checked).
 * 0, or -ENOMEM. */
static int fence(struct vg_alarm_outbox *ob, struct job *j)
{
	const char *key = j->d->key;
	size_t klen = strlen(key);

	if (!j->fenced) {
		if (!ob->unfenced_full && !vg_hmap_get(&ob->unfenced, key, klen)) {
			if (vg_hmap_count(&ob->unfenced) >= UNFENCED_MAX ||
			    vg_hmap_put(&ob->unfenced, key, klen, (void *)1, NULL))
				ob->unfenced_full = 1;
		}
		return 0;
	}
	j->fence.guard = ob->guard;
	vg_alarm_webhook_fence(j->easy, &j->fence);
	if (ob->unfenced_full || vg_hmap_get(&ob->unfenced, key, klen))
		curl_easy_setopt(j->easy, CURLOPT_FRESH_CONNECT, 1L);
	return 0;
}

/* The place of project p among those in flight, or NULL; with add, a
 * free place is taken for it (there is one: at most max_in_flight
 * projects have attempts in flight). */
static struct proj *proj_of(struct vg_alarm_outbox *ob, const char *p, int add)
{
	struct proj *free_place = NULL;

	for (size_t i = 0; i < ob->o.max_in_flight; i++) {
		struct proj *x = &ob->projs[i];
		if (x->inflight && !strcmp(x->name, p))
			return x;
		if (!x->inflight && !free_place)
			free_place = x;
	}
	if (!add || !free_place)
		return NULL;
	snprintf(free_place->name, sizeof(free_place->name), "%s", p);
	return free_place;
}

/* Whether project p may start one more attempt now. */
static int proj_room(struct vg_alarm_outbox *ob, const char *p)
{
	struct proj *x = proj_of(ob, p, 0);

	return !x || x->inflight < ob->o.per_project;
}

/* Start the attempt of j (taken off its FIFO); an attempt that cannot
 * start finishes at once with its reason. */
static void start(struct vg_alarm_outbox *ob, struct job *j)
{
	const char *url = j->it.action, *body = j->it.body;
	size_t len = strlen(body);
	struct proj *pj = proj_of(ob, j->it.project, 1);

	j->d->inflight++;
	ob->inflight++;
	if (pj)
		pj->inflight++;
	if (!strncmp(j->it.action, "exec://", 7)) {
		if (!find_exec(ob, j->it.action + 7)) {
			j->arc = exec_attempt(ob, &j->it, j->err, sizeof(j->err));
			finish(ob, j);
		} else if (pthread_create(&j->th, NULL, exec_main, j)) {
			j->arc = -EAGAIN;
			snprintf(j->err, sizeof(j->err), "cannot start a thread");
			finish(ob, j);
		} else {
			j->th_started = 1;
		}
		return;
	}
	if (!strcmp(j->it.action, "alertmanager://")) {
		if (!ob->am_url[0]) {
			j->arc = -ENOENT;
			snprintf(j->err, sizeof(j->err), "no Alertmanager is configured any more");
			finish(ob, j);
			return;
		}
		if (!(j->am_body = vg_alarm_alertmanager_body(j->it.body, &len))) {
			j->arc = -EAGAIN;
			snprintf(j->err, sizeof(j->err), "cannot build the Alertmanager body");
			finish(ob, j);
			return;
		}
		url = ob->am_url;
		body = j->am_body;
	} else if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
		j->arc = -EINVAL;
		snprintf(j->err, sizeof(j->err), "unknown action");
		finish(ob, j);
		return;
	}
	j->easy = ob->npool ? ob->pool[--ob->npool] : curl_easy_init();
	j->started_ms = vg_monotonic_ms();
	j->fenced = url == j->it.action &&
		    (!ob->o.webhook_fenced ||
		     ob->o.webhook_fenced(ob->o.fenced_ctx, j->it.alarm_id));
	if (!j->easy ||
	    vg_alarm_webhook_setup(j->easy, url, body, len, j->it.notice_id, NULL,
				   ob->o.webhook_timeout_ms, &j->hdr, j->cerr) ||
	    fence(ob, j) ||
	    /* the timeout is ours (expire): libcurl's would count the
	     * time this thread did not run */
	    curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, 0L) != CURLE_OK ||
	    (curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j),
	     curl_multi_add_handle(ob->multi, j->easy) != CURLM_OK)) {
		j->arc = -EAGAIN;
		snprintf(j->err, sizeof(j->err), "cannot start the request");
		finish(ob, j);
	}
}

/* Start what the bounds allow, one destination after the other. */
static void dispatch(struct vg_alarm_outbox *ob)
{
	int progress = 1;

	while (progress && ob->inflight < ob->o.max_in_flight) {
		struct dest *d = ob->rr ? ob->rr : ob->dests;
		progress = 0;
		for (struct dest *first = d; d;) {
			if (d->head && d->inflight < d->limit &&
			    ob->inflight < ob->o.max_in_flight &&
			    proj_room(ob, d->head->it.project)) {
				struct job *j = d->head;
				if (!(d->head = j->next))
					d->tail = NULL;
				j->next = NULL;
				start(ob, j);
				progress = 1;
			}
			d = d->next ? d->next : ob->dests;
			if (d == first)
				break;
		}
		ob->rr = d;
	}
}

/* Collect ended HTTP transfers and exec runs into ob->finished. */
static void collect(struct vg_alarm_outbox *ob)
{
	CURLMsg *m;
	int left;
	struct job *e;

	while ((m = curl_multi_info_read(ob->multi, &left))) {
		struct job *j = NULL;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
		if (j->fenced && m->data.result != CURLE_OK && j->fence.refused[0]) {
			/* every address was refused: not worth retrying */
			j->arc = -EACCES;
			snprintf(j->err, sizeof(j->err), "%s", j->fence.refused);
		} else {
			j->arc = vg_alarm_webhook_outcome(j->easy, m->data.result,
							  j->cerr, &j->http, j->err,
							  sizeof(j->err));
		}
		finish(ob, j);
	}
	pthread_mutex_lock(&ob->lock);
	e = ob->exec_done;
	ob->exec_done = NULL;
	pthread_mutex_unlock(&ob->lock);
	while (e) {
		struct job *n = e->next;
		pthread_join(e->th, NULL);
		e->th_started = 0;
		finish(ob, e);
		e = n;
	}
}

/* Read the sockets (curl_multi_perform), first charging the HTTP
 * attempts in flight with the time since the last read: in full up to
 * what this thread meant to wait (planned_ms) plus STALL_SLACK_MS, and
 * no more. A longer gap is this thread's own (descheduled on a loaded
 * machine, a slow commit), when an answer could already be waiting in
 * its socket unread: counting it would time out an attempt the receiver
 * answered in time, and send it again. */
static void perform(struct vg_alarm_outbox *ob, int64_t planned_ms)
{
	int64_t t = vg_monotonic_ms(), gap = t - ob->perform_ms;
	int running = 0;

	if (gap > planned_ms + STALL_SLACK_MS)
		gap = planned_ms + STALL_SLACK_MS;
	for (size_t i = 0; gap > 0 && i < ob->nheld; i++) {
		struct job *j = ob->held[i];
		if (j->easy && !j->ended)
			j->waited_ms += gap < t - j->started_ms ? gap : t - j->started_ms;
	}
	ob->perform_ms = t;
	curl_multi_perform(ob->multi, &running);
}

/* The longest this thread may wait before an HTTP attempt in flight is
 * due to time out: at most wait_ms. */
static int64_t until_expiry(struct vg_alarm_outbox *ob, int64_t wait_ms)
{
	for (size_t i = 0; i < ob->nheld; i++) {
		struct job *j = ob->held[i];
		int64_t left = ob->o.webhook_timeout_ms - j->waited_ms;
		if (j->easy && !j->ended && left < wait_ms)
			wait_ms = left > 0 ? left : 0;
	}
	return wait_ms;
}

/* Finish the HTTP attempts that have waited webhook_timeout_ms for an
 * answer (called after the sockets were read, so an answer that arrived
 * is never thrown away). */
static void expire(struct vg_alarm_outbox *ob)
{
	for (size_t i = 0; i < ob->nheld; i++) {
		struct job *j = ob->held[i];
		if (!j->easy || j->ended || j->waited_ms < ob->o.webhook_timeout_ms)
			continue;
		j->arc = -EAGAIN;
		snprintf(j->err, sizeof(j->err), "no answer within %lld ms",
			 (long long)ob->o.webhook_timeout_ms);
		finish(ob, j);
	}
}

/* Give the easy handle back to the pool (its connection stays cached). */
static void release_attempt(struct vg_alarm_outbox *ob, struct job *j)
{
	if (j->easy) {
		curl_multi_remove_handle(ob->multi, j->easy);
		if (ob->npool < ob->o.max_in_flight)
			ob->pool[ob->npool++] = j->easy;
		else
			curl_easy_cleanup(j->easy);
		j->easy = NULL;
	}
	curl_slist_free_all(j->hdr);
	j->hdr = NULL;
	free(j->am_body);
	j->am_body = NULL;
	j->d->inflight--;
	ob->inflight--;
	struct proj *pj = proj_of(ob, j->it.project, 0);
	if (pj)
		pj->inflight--;
}

/* Decide what the attempt of j (ended) does to its row, once: the same
 * outcome is recorded however many times the record must be tried. */
static void settle(struct vg_alarm_outbox *ob, struct job *j, int64_t at)
{
	const struct vg_alarm_outbox_item *it = &j->it;
	char clean[sizeof(j->err)];

	release_attempt(ob, j);
	/* the error quotes what an exec command printed or a curl error
	 * and may not be UTF-8: jansson would drop it from the history
	 * row, and PostgreSQL refuse the outcome, so that the record
	 * failed forever; a '?' for each bad byte */
	vg_text_clean(j->err, clean, sizeof(clean) - 1);
	memcpy(j->err, clean, strlen(clean) + 1);
	j->at = at;
	if (j->arc == 0) {
		j->outcome = OUT_DELIVERED;
	} else if (j->arc == -EAGAIN && at - it->created_ms < ob->o.retry_for_ms) {
		j->outcome = OUT_RETRY;
		j->next_at = at + jitter(vg_alarm_outbox_backoff(ob->o.retry_initial_ms,
								 ob->o.retry_max_ms,
								 it->attempts + 1));
	} else {
		if (j->arc == -EAGAIN) {
			size_t l = strlen(j->err);
			snprintf(j->err + l, sizeof(j->err) - l, "; gave up after %lld s",
				 (long long)(ob->o.retry_for_ms / 1000));
		}
		j->outcome = j->arc == -EACCES ? OUT_REFUSED : OUT_FAILED;
	}
}

/* Write the outcomes of list (only its first with one) in one
 * transaction. 0, or -errno with the database's message in why. */
static int write_outcomes(struct vg_alarm_outbox *ob, struct job *list, int one,
			  char *why, size_t whylen)
{
	int rc = vg_alarm_store_begin(ob->store);

	for (struct job *j = list; !rc && j; j = one ? NULL : j->next) {
		struct vg_alarm_outbox_item *it = &j->it;
		const char *status = "delivered";
		if (j->outcome == OUT_DELIVERED) {
			rc = vg_alarm_store_outbox_delivered(ob->store, it->id,
							     it->attempts + 1, j->at);
		} else if (j->outcome == OUT_RETRY) {
			status = "retry";
			rc = vg_alarm_store_outbox_retry(ob->store, it->id, it->attempts + 1,
							 j->next_at, j->err);
		} else {
			status = j->outcome == OUT_REFUSED ? "refused" : "failed";
			rc = vg_alarm_store_outbox_failed(ob->store, it->id,
							  it->attempts + 1, j->err);
		}
		/* not after a failed mark: a lost connection has ended the
		 * transaction, and the history row would be written alone,
		 * once more at each try (and the error message lost) */
		if (!rc)
			history(ob, it, status, j->http, j->err,
				j->outcome == OUT_RETRY ? j->next_at : 0, j->at);
	}
	if (!rc)
		rc = vg_alarm_store_commit(ob->store);
	if (rc) {
		snprintf(why, whylen, "%s", vg_alarm_store_errmsg(ob->store));
		vg_alarm_store_rollback(ob->store);
	}
	return rc > 0 ? -EIO : rc;
}

/* Record every settled outcome (the attempts that just ended, and those
 * a failed record left) in one transaction; after RECORD_SPLIT failures
 * in a row, each in one of its own, so that an outcome the database
 * refuses for good does not hold the others. Number recorded, 0 when the
 * record must wait, or -errno when it failed (the outcomes not recorded
 * are kept and recorded again after a back-off). */
static int record(struct vg_alarm_outbox *ob)
{
	struct job *list, *j, *done = NULL;
	int64_t at = now(ob);
	int rc = 0, n = 0, several;
	char why[256] = "";

	while ((j = ob->finished)) {
		ob->finished = j->next;
		settle(ob, j, at);
		j->next = ob->unrec;
		ob->unrec = j;
	}
	if (!(list = ob->unrec) || vg_monotonic_ms() < ob->record_due)
		return 0;
	several = list->next != NULL;
	if (ob->rec_fails < RECORD_SPLIT || !several) {
		if (!(rc = write_outcomes(ob, list, 0, why, sizeof(why)))) {
			done = list;
			ob->unrec = NULL;
		}
	} else {
		for (struct job **pp = &ob->unrec; (j = *pp);) {
			int r = write_outcomes(ob, j, 1, why, sizeof(why));
			if (r) {
				rc = r;
				pp = &j->next;
			} else {
				*pp = j->next;
				j->next = done;
				done = j;
			}
		}
	}
	if (rc) {
		/* the rows stay held, with their outcomes: recorded again
		 * later, never attempted again by this process */
		int64_t wait = vg_alarm_outbox_backoff(RECORD_RETRY_MS, RECORD_RETRY_MAX_MS,
						       ++ob->rec_fails);
		ob->record_due = vg_monotonic_ms() + wait;
		vg_log_limited(VG_LOG_WARN, &ob->log_limit,
			       "alarms: cannot record %s: %s; trying again in %lld ms",
			       several ? "several deliveries" : "a delivery", why,
			       (long long)wait);
		pthread_mutex_lock(&ob->lock);
		ob->st.store_errors++;
		pthread_mutex_unlock(&ob->lock);
	} else {
		ob->rec_fails = 0;
		ob->record_due = 0;
	}
	pthread_mutex_lock(&ob->lock);
	for (j = done; j; j = j->next) {
		ob->st.attempts++;
		if (j->outcome == OUT_DELIVERED)
			ob->st.delivered++;
		else if (j->outcome == OUT_RETRY)
			ob->st.retried++;
		else
			ob->st.failed++;
		if (j->outcome == OUT_REFUSED)
			ob->st.refused++;
	}
	pthread_mutex_unlock(&ob->lock);
	while (done) {
		j = done;
		done = j->next;
		if (j->outcome == OUT_RETRY && j->next_at < ob->retry_due)
			ob->retry_due = j->next_at;
		if (j->arc == 0)
			vg_debug("alarms: notification %s delivered to %s (%s)",
				 j->it.notice_id, j->it.action, j->err);
		else
			vg_log_limited(VG_LOG_WARN, &ob->log_limit,
				       "alarms: notification %s to %s: %s",
				       j->it.notice_id, j->it.action, j->err);
		job_free(ob, j);
		n++;
	}
	return rc ? rc : n;
}

/* One turn: read (when asked to), start, wait up to wait_ms for an
 * answer or a wake-up, record what ended. Number of attempts recorded,
 * or -errno when alarms.db could not be read. */
static int pump(struct vg_alarm_outbox *ob, int do_fetch, int stopping,
		int wait_ms)
{
	int rc = 0, n;

	if (do_fetch && !stopping && (rc = fetch(ob, now(ob)))) {
		pthread_mutex_lock(&ob->lock);
		ob->st.store_errors++;
		pthread_mutex_unlock(&ob->lock);
		vg_log_limited(VG_LOG_WARN, &ob->log_limit,
			       "alarms: outbox read failed: %s",
			       vg_alarm_store_errmsg(ob->store));
		ob->retry_due = now(ob) + 1000; /* read again in a second */
	}
	if (!stopping)
		dispatch(ob);
	perform(ob, 0);
	collect(ob);
	if (!ob->finished && wait_ms > 0) {
		int64_t w = until_expiry(ob, wait_ms);
		curl_multi_poll(ob->multi, NULL, 0, (int)w, NULL);
		perform(ob, w);
		collect(ob);
	}
	expire(ob);
	n = record(ob); /* < 0: the record failed, the outcomes are kept */
	dests_gc(ob);
	return rc ? rc : n;
}

static int queued(struct vg_alarm_outbox *ob)
{
	return ob->nheld > ob->inflight;
}

int vg_alarm_outbox_run_once(struct vg_alarm_outbox *ob, int64_t *next_due_ms)
{
	int done = 0, rc;

	ob->rescan = 1;
	rc = pump(ob, 1, 0, 0);
	if (rc < 0) {
		if (next_due_ms)
			*next_due_ms = now(ob) + 1000;
		return rc;
	}
	done += rc;
	while (ob->nheld || ob->rescan) {
		rc = pump(ob, ob->rescan, 0, 100);
		if (rc < 0)
			break;
		done += rc;
	}
	if (ob->unrec) { /* the record failed: the outcomes wait for it */
		if (next_due_ms)
			*next_due_ms = now(ob) + (ob->record_due - vg_monotonic_ms());
		return rc < 0 ? rc : -EAGAIN;
	}
	if (next_due_ms)
		*next_due_ms = ob->retry_due;
	return done;
}

static void *loop(void *arg)
{
	struct vg_alarm_outbox *ob = arg;

	for (;;) {
		pthread_mutex_lock(&ob->lock);
		int woken = ob->woken, stopping = ob->stopping;
		ob->woken = 0;
		pthread_mutex_unlock(&ob->lock);
		if (stopping && !ob->inflight)
			break;
		int64_t t = now(ob), wait = IDLE_WAIT_MS;
		if (ob->retry_due != INT64_MAX && ob->retry_due - t < wait)
			wait = ob->retry_due - t;
		if (ob->rescan && queued(ob) == 0)
			wait = 0;
		if (ob->unrec && ob->record_due - vg_monotonic_ms() < wait)
			wait = ob->record_due - vg_monotonic_ms();
		if (wait < 0)
			wait = 0;
		pump(ob, woken || ob->rescan || t >= ob->retry_due, stopping, (int)wait);
	}
	return NULL;
}

int vg_alarm_outbox_start(struct vg_alarm_outbox *ob)
{
	int rc = pthread_create(&ob->thread, NULL, loop, ob);

	if (rc)
		return -rc;
	ob->started = 1;
	return 0;
}

void vg_alarm_outbox_wake(struct vg_alarm_outbox *ob)
{
	if (!ob)
		return;
	pthread_mutex_lock(&ob->lock);
	ob->woken = 1;
	pthread_mutex_unlock(&ob->lock);
	curl_multi_wakeup(ob->multi);
}

void vg_alarm_outbox_close(struct vg_alarm_outbox *ob)
{
	if (!ob)
		return;
	pthread_mutex_lock(&ob->lock);
	ob->stopping = 1;
	pthread_mutex_unlock(&ob->lock);
	curl_multi_wakeup(ob->multi);
	if (ob->started)
		pthread_join(ob->thread, NULL);
	/* attempts still running (run_once interrupted): their rows stay
	 * pending and are attempted again by the next process */
	while (ob->inflight)
		pump(ob, 0, 1, 100);
	if (ob->unrec) { /* a last try; what stays unrecorded is sent again */
		ob->record_due = 0;
		record(ob);
	}
	while (ob->nheld) {
		struct job *j = ob->held[0];
		j->d->overflow = 0;
		job_free(ob, j);
	}
	dests_gc(ob);
	for (size_t i = 0; i < ob->npool; i++)
		curl_easy_cleanup(ob->pool[i]);
	curl_multi_cleanup(ob->multi);
	free(ob->projs);
	free(ob->pool);
	free(ob->held);
	vg_alarm_guard_free(ob->guard);
	vg_hmap_release(&ob->unfenced);
	vg_alarm_store_close(ob->store);
	pthread_mutex_destroy(&ob->lock);
	free(ob);
}

void vg_alarm_outbox_get_stats(struct vg_alarm_outbox *ob,
			       struct vg_alarm_outbox_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!ob)
		return;
	pthread_mutex_lock(&ob->lock);
	*out = ob->st;
	pthread_mutex_unlock(&ob->lock);
}
