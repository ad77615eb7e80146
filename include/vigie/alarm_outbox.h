/*
 * vigie — delivery of notifications from the persistent outbox
 * (alarms/outbox.c): webhooks, exec commands and Alertmanager.
 *
 * The engine inserts one outbox row per (notification, action) in the same
 * sqlite transaction as the transition, before the agent's batch is
 * acknowledged. This module's thread takes due rows oldest first and makes
 * the attempts concurrently (libcurl multi): at most per_destination at a
 * time to one destination (a webhook's scheme://host:port, the
 * Alertmanager; an exec command: 1) and max_in_flight in all, so a slow
 * receiver never delays the others; connections to a receiver are kept
 * open and reused. The outcomes of attempts that end together are recorded
 * in one transaction:
 *   success (2xx, exit 0)      -> delivered, never sent again
 *   retryable failure          -> due again after min(initial * 2^(n-1),
 *                                 max) with +-20% jitter
 *   permanent failure, or the row is older than retry_for
 *                              -> failed
 *   a fenced webhook whose every address is refused
 *                              -> failed, the reason in the history row
 *                                 ("refused to connect: 127.0.0.1 is
 *                                 loopback ...") and counted (refused)
 * and one history row per attempt. A crash after a receiver answered 2xx
 * but before the delivered mark is committed (a window of one sqlite
 * commit, covering at most the max_in_flight attempts that ended together)
 * sends those notifications again after restart with the same
 * Idempotency-Key; otherwise a notification accepted before a crash is
 * delivered after the restart exactly once. A record that fails without
 * a crash (a database restart, a deadlock, a busy sqlite) keeps the
 * outcomes in memory and is tried again (100 ms doubling to 5 s; one
 * outcome at a time after three failures in a row): a row whose outcome
 * is known is never attempted again by the same process. Rows are held
 * in memory up to 4096 (1024 per destination); the rest wait in
 * alarms.db and are read as room frees up.
 *
 * Threading: vg_alarm_outbox_run_once is for one thread at a time (the
 * delivery thread, or a test driving it); wake and stats are thread-safe.
 */
#ifndef VIGIE_ALARM_OUTBOX_H
#define VIGIE_ALARM_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "vigie/alarm_exec.h"

struct vg_alarm_outbox;

#define VG_OUTBOX_MAX_IN_FLIGHT 64   /* attempts at once, in all */
#define VG_OUTBOX_PER_DESTINATION 16 /* attempts at once to one receiver */
/* Attempts at once for one project's alarms, whatever their receivers: a
 * tenant's receivers that never answer (up to max_webhooks_per_project
 * of them, 16 attempts each) held every one of the 64 places until their
 * timeouts, and every other project's notifications waited. */
#define VG_OUTBOX_PER_PROJECT 16

struct vg_alarm_outbox_options {
	const char *data_dir;                 /* alarms.db lives here */
	int64_t webhook_timeout_ms;           /* per attempt; 0 = 5000 */
	int64_t retry_initial_ms;             /* 0 = 1000 */
	int64_t retry_max_ms;                 /* 0 = 300000 */
	int64_t retry_for_ms;                 /* give up after; 0 = 86400000 */
	const struct vg_alarm_exec_cmd *exec; /* copied */
	size_t nexec;
	int64_t exec_timeout_ms;      /* 0 = 10000 */
	const char *alertmanager_url; /* base URL or NULL */
	int64_t (*now_ms)(void);      /* wall clock; NULL = vg_now_ms */
	unsigned max_in_flight;       /* 0 = VG_OUTBOX_MAX_IN_FLIGHT */
	unsigned per_destination;     /* 0 = VG_OUTBOX_PER_DESTINATION */
	unsigned per_project;         /* 0 = VG_OUTBOX_PER_PROJECT */
	/* Project webhooks: "CIDR,..." the fence lets through
	 * (alarms/guard.h lists what it refuses otherwise); NULL = none. */
	const char *webhook_allow;
	/* Whether alarm_id's webhooks are fenced (1: created or last changed
	 * by a project token; also when the alarm is gone) or free (0: an
	 * administrator's). Called on the delivery thread; NULL = fence every
	 * webhook. Alertmanager and exec actions are the operator's: never
	 * fenced. */
	int (*webhook_fenced)(void *ctx, const char *alarm_id);
	void *fenced_ctx;
};

struct vg_alarm_outbox_stats {
	uint64_t attempts, delivered, retried, failed, store_errors;
	uint64_t refused; /* fenced webhooks refused (failed for good) */
	uint64_t pending; /* last known */
};

/* Open (own alarms.db handle) without starting the thread. 0 or -errno
 * with a message in err (-EINVAL: webhook_allow is not a CIDR list). */
int vg_alarm_outbox_open(const struct vg_alarm_outbox_options *o,
			 struct vg_alarm_outbox **out, char *err, size_t errlen);
/* Start the delivery thread. 0 or -errno. */
int vg_alarm_outbox_start(struct vg_alarm_outbox *ob);
/* Stop the thread (attempts in flight finish, bounded by their timeout;
 * nothing new starts) and close. Accepts NULL. */
void vg_alarm_outbox_close(struct vg_alarm_outbox *ob);

/* Something was committed: look again now. */
void vg_alarm_outbox_wake(struct vg_alarm_outbox *ob);

/* Attempt every row due now (concurrently, within the bounds) and wait
 * for every outcome; not with the thread started. Returns the number
 * attempted, or -errno when the store failed: a failed record keeps its
 * outcomes, recorded by a later call (never attempted again), and
 * *next_due_ms then says when it is tried again. *next_due_ms (may be
 * NULL) gets when the next pending row is due (INT64_MAX if none). */
int vg_alarm_outbox_run_once(struct vg_alarm_outbox *ob, int64_t *next_due_ms);

void vg_alarm_outbox_get_stats(struct vg_alarm_outbox *ob,
			       struct vg_alarm_outbox_stats *out);

/* The back-off before attempt n+1 after n failed attempts (no jitter). */
int64_t vg_alarm_outbox_backoff(int64_t initial_ms, int64_t max_ms, uint32_t n);

#endif
