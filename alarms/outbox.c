/*
 * outbox.c — the delivery thread over the sqlite outbox
 * (vigie/alarm_outbox.h).
 *
 * Design: a loop of "take due rows, attempt each, record the outcome",
 * sleeping on a condition variable until the next due time or a wake-up
 * from the engine. Each outcome is its own small transaction (mark + one
 * history row), committed before the next attempt, so at most the attempt
 * in flight can be repeated after a crash.
 *
 * Actions: "http://", "https://" -> webhook; "exec://NAME" -> the
 * configured command; "alertmanager://" -> POST <alertmanager>/api/v2/alerts.
 * An action this collector cannot perform any more (exec command removed
 * from the configuration) fails permanently with a reason.
 *
 * Invariants: a row is attempted only while pending; the attempt counter
 * in the row grows by one per attempt; the thread never holds the lock
 * while attempting (wake never blocks behind a slow receiver).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>

#include <jansson.h>

#include "alarms/notice.h"
#include "vigie/alarm_outbox.h"
#include "vigie/alarm_store.h"
#include "alarms/webhook.h"
#include "vigie/clock.h"
#include "vigie/log.h"

#define BATCH 32

struct vg_alarm_outbox {
	struct vg_alarm_outbox_options o;
	struct vg_alarm_exec_cmd exec[VG_EXEC_MAX];
	char am_url[1024];
	struct vg_alarm_store *store;
	pthread_t thread;
	int started, stopping, woken;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct vg_alarm_outbox_stats st;
	uint64_t log_limit;
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
	rc = vg_alarm_store_open(o->data_dir, &ob->store, err, errlen);
	if (rc) {
		free(ob);
		return rc;
	}
	vg_alarm_webhook_global_init();
	pthread_mutex_init(&ob->lock, NULL);
	pthread_cond_init(&ob->cond, NULL);
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

/* One attempt. 0 delivered, -EAGAIN retry, other negative: give up. */
static int attempt(struct vg_alarm_outbox *ob, const struct vg_alarm_outbox_item *it,
		   long *http, char *err, size_t errlen)
{
	*http = 0;
	err[0] = '\0';
	if (!strncmp(it->action, "http://", 7) || !strncmp(it->action, "https://", 8))
		return vg_alarm_webhook_post(it->action, it->body, strlen(it->body),
					     it->notice_id, NULL,
					     ob->o.webhook_timeout_ms, http, err,
					     errlen);
	if (!strncmp(it->action, "exec://", 7)) {
		const struct vg_alarm_exec_cmd *c = find_exec(ob, it->action + 7);
		json_t *n;
		struct vg_alarm_exec_env env;
		char out[512];
		int st = 0, rc;
		if (!c) {
			snprintf(err, errlen, "exec command '%s' is no longer "
				 "configured", it->action + 7);
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
	if (!strcmp(it->action, "alertmanager://")) {
		size_t len;
		char *body;
		int rc;
		if (!ob->am_url[0]) {
			snprintf(err, errlen, "no Alertmanager is configured any more");
			return -ENOENT;
		}
		if (!(body = vg_alarm_alertmanager_body(it->body, &len))) {
			snprintf(err, errlen, "cannot build the Alertmanager body");
			return -EAGAIN;
		}
		rc = vg_alarm_webhook_post(ob->am_url, body, len, it->notice_id,
					   NULL, ob->o.webhook_timeout_ms, http,
					   err, errlen);
		free(body);
		return rc;
	}
	snprintf(err, errlen, "unknown action");
	return -EINVAL;
}

static int64_t jitter(int64_t d)
{
	uint32_t r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)vg_monotonic_ms();
	/* +-20% */
	return d + (int64_t)((double)d * 0.4 * ((double)r / 4294967295.0 - 0.5));
}

int vg_alarm_outbox_run_once(struct vg_alarm_outbox *ob, int64_t *next_due_ms)
{
	struct vg_alarm_outbox_item items[BATCH];
	size_t n = 0;
	int64_t next = INT64_MAX, t = now(ob);
	int rc, done = 0;

	rc = vg_alarm_store_outbox_due(ob->store, t, items, BATCH, &n, &next);
	if (rc) {
		pthread_mutex_lock(&ob->lock);
		ob->st.store_errors++;
		pthread_mutex_unlock(&ob->lock);
		vg_log_limited(VG_LOG_WARN, &ob->log_limit,
			       "alarms: outbox read failed: %s",
			       vg_alarm_store_errmsg(ob->store));
		if (next_due_ms)
			*next_due_ms = t + 1000;
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		struct vg_alarm_outbox_item *it = &items[i];
		char err[512];
		long http = 0;
		int64_t at;
		int arc;

		pthread_mutex_lock(&ob->lock);
		int stopping = ob->stopping;
		pthread_mutex_unlock(&ob->lock);
		if (stopping) {
			next = t; /* the rest stays due */
			break;
		}
		arc = attempt(ob, it, &http, err, sizeof(err));
		at = now(ob);
		rc = vg_alarm_store_begin(ob->store);
		if (!rc) {
			if (arc == 0) {
				rc = vg_alarm_store_outbox_delivered(ob->store, it->id,
								     it->attempts + 1, at);
				history(ob, it, "delivered", http, err, 0, at);
			} else if (arc == -EAGAIN &&
				   at - it->created_ms < ob->o.retry_for_ms) {
				int64_t nx = at + jitter(vg_alarm_outbox_backoff(
					ob->o.retry_initial_ms, ob->o.retry_max_ms,
					it->attempts + 1));
				rc = vg_alarm_store_outbox_retry(ob->store, it->id,
								 it->attempts + 1, nx, err);
				history(ob, it, "retry", http, err, nx, at);
				if (nx < next)
					next = nx;
			} else {
				if (arc == -EAGAIN) {
					size_t l = strlen(err);
					snprintf(err + l, sizeof(err) - l,
						 "; gave up after %lld s",
						 (long long)(ob->o.retry_for_ms / 1000));
				}
				rc = vg_alarm_store_outbox_failed(ob->store, it->id,
								  it->attempts + 1, err);
				history(ob, it, "failed", http, err, 0, at);
			}
			if (!rc)
				rc = vg_alarm_store_commit(ob->store);
			if (rc)
				vg_alarm_store_rollback(ob->store);
		}
		pthread_mutex_lock(&ob->lock);
		ob->st.attempts++;
		if (rc)
			ob->st.store_errors++;
		else if (arc == 0)
			ob->st.delivered++;
		else if (arc == -EAGAIN && at - it->created_ms < ob->o.retry_for_ms)
			ob->st.retried++;
		else
			ob->st.failed++;
		pthread_mutex_unlock(&ob->lock);
		if (arc == 0)
			vg_debug("alarms: notification %s delivered to %s (%s)",
				 it->notice_id, it->action, err);
		else
			vg_log_limited(VG_LOG_WARN, &ob->log_limit,
				       "alarms: notification %s to %s: %s",
				       it->notice_id, it->action, err);
		if (rc)
			vg_log_limited(VG_LOG_WARN, &ob->log_limit,
				       "alarms: cannot record the delivery of %s: %s",
				       it->notice_id, vg_alarm_store_errmsg(ob->store));
		done++;
	}
	for (size_t i = 0; i < n; i++)
		vg_alarm_outbox_item_release(&items[i]);
	if (n == BATCH)
		next = t; /* more may be due right now */
	if (next_due_ms)
		*next_due_ms = next;
	return done;
}

static void *loop(void *arg)
{
	struct vg_alarm_outbox *ob = arg;

	for (;;) {
		int64_t next = INT64_MAX;
		pthread_mutex_lock(&ob->lock);
		ob->woken = 0;
		int stop = ob->stopping;
		pthread_mutex_unlock(&ob->lock);
		if (stop)
			break;
		vg_alarm_outbox_run_once(ob, &next);
		pthread_mutex_lock(&ob->lock);
		while (!ob->woken && !ob->stopping) {
			int64_t t = now(ob), wait = next == INT64_MAX ? 60000 : next - t;
			if (wait <= 0)
				break;
			if (wait > 60000)
				wait = 60000;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			if (pthread_cond_timedwait(&ob->cond, &ob->lock, &ts))
				break; /* timeout: something is due */
		}
		pthread_mutex_unlock(&ob->lock);
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
	pthread_cond_signal(&ob->cond);
	pthread_mutex_unlock(&ob->lock);
}

void vg_alarm_outbox_close(struct vg_alarm_outbox *ob)
{
	if (!ob)
		return;
	pthread_mutex_lock(&ob->lock);
	ob->stopping = 1;
	pthread_cond_signal(&ob->cond);
	pthread_mutex_unlock(&ob->lock);
	if (ob->started)
		pthread_join(ob->thread, NULL);
	vg_alarm_store_close(ob->store);
	pthread_cond_destroy(&ob->cond);
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
