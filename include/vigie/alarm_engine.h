/*
 * vigie — the alarm engine (alarms/engine*.c: evaluation, persistence
 * queue, definitions; map in alarms/engine_state.h): the dispatch consumer that
 * evaluates alarms as samples arrive, and the operations the JSON API
 * performs on definitions, states and history.
 *
 * Data flow. Every accepted batch reaches vg_alarm_engine_batch (after the
 * registry and the RRD store). Samples of metrics some enabled alarm
 * watches feed per-series period windows (alarms/series.h; counters
 * as rates); a closed period becomes one datapoint per watching alarm
 * instance (one per matching resource) and runs the state machine
 * (alarms/eval.h). Transitions update the alarm's aggregate state and
 * re-evaluate composite alarms that refer to it. Before the consumer
 * returns, the batch's new states, history rows and outbox rows are
 * committed in sqlite (vigie/alarm_store.h): as soon as a notification is
 * decided, in a transaction with whole decisions only, and the rest at the
 * end of the batch; after each commit the notifications go to the SSE hub
 * and the log, and the delivery thread (vigie/alarm_outbox.h) is woken for
 * webhooks, exec and Alertmanager.
 * The PUB socket (live, lossy) gets each notification as soon as it is
 * decided, before that commit: after a crash in between, a subscriber may
 * see a transition that the restarted collector decides again under a new
 * notification id. vg_alarm_engine_tick closes periods that received no data
 * (missing data) against each host's data clock: the newest sample time
 * seen from that host, advanced by the wall time elapsed since.
 *
 * Aggregate state of an alarm: alarm if any instance is in alarm, else ok
 * if any is ok, else insufficient_data. Composite alarms use it.
 *
 * If alarms.db cannot be written, transitions are kept in memory (at most
 * VG_ALARM_MAX_PENDING notifications; beyond, the oldest are dropped and
 * counted) and written on the next batch or tick.
 *
 * Threading: one mutex guards everything; batch/tick run on the receiver
 * thread, the API functions on HTTP worker threads. Lock order: engine
 * lock, then the leaf locks of the PUB queue, the SSE hub and the outbox.
 */
#ifndef VIGIE_ALARM_ENGINE_H
#define VIGIE_ALARM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "vigie/alarm.h"
#include "vigie/alarm_exec.h"
#include "vigie/alarm_lease.h"
#include "vigie/alarm_pub.h"
#include "vigie/alarm_store.h"
#include "vigie/alarm_stream.h"
#include "vigie/batch.h"
#include "vigie/dispatch.h"

#define VG_ALARM_MAX_PENDING 10000
#define VG_ALARM_MAX_ALARMS 100000 /* definitions per collector */

struct vg_alarm_engine;
struct vg_alarm_outbox;

struct vg_alarm_engine_options {
	const char *data_dir;                 /* alarms.db */
	double agent_interval_s;              /* period validation, a new series' rhythm; 0 = 10 */
	struct vg_alarm_pub *pub;             /* may be NULL; not owned */
	struct vg_alarm_hub *hub;             /* may be NULL; not owned */
	const struct vg_alarm_exec_cmd *exec; /* copied */
	size_t nexec;
	const char *alertmanager_url; /* NULL = none */
	const char *webhook_allow;    /* fence exceptions, "CIDR,..." */
	/* silences (vigie/alarm_silence.h): database URL (vigie/db.h; NULL =
	 * sqlite <data_dir>/alarms.db) and [alarms] max_silences_per_project */
	const char *silence_db;
	unsigned max_silences_per_project;
	/* 1: an alarm still in alarm when a silence matching it ends is not
	 * notified ([alarms] notify_after_silence = false) */
	int silence_end_quiet;
	/* per-project limits (alarms/quota.h; 0 = the default there) */
	unsigned max_alarms_per_project, max_webhooks_per_project;
	unsigned max_notifications_per_minute;
	int64_t webhook_timeout_ms, retry_initial_ms, retry_max_ms,
		retry_for_ms, exec_timeout_ms; /* 0 = defaults (outbox.h) */
	int64_t history_retention_ms;          /* 0 = 30 days */
	/* the step log is compacted when it holds this many entries (0 =
	 * 100,000; alarms/engine_queue.c, logged steps) */
	unsigned log_max_entries;
	int deliver;             /* start the delivery thread */
	int64_t (*now_ms)(void); /* wall clock; NULL = vg_now_ms */
	/* Refuse alarms on metrics neither in the catalogue nor seen
	 * (vg_alarm_policy.check_metric); metric_seen may be NULL
	 * (catalogue only). Called with the engine's lock held. */
	int check_metrics;
	int (*metric_seen)(void *ctx, const char *project, const char *metric);
	void *metric_ctx;
};

/* Check [alarms] webhook_allow ("CIDR,..." or empty) before anything is
 * opened, so a bad list is a configuration error. 0 or -EINVAL with the
 * reason in err. */
int vg_alarm_webhook_allow_check(const char *allow, char *err, size_t errlen);

/* Open alarms.db, load definitions and states, open the outbox (and start
 * its thread when o->deliver). 0 or -errno with a message in err. */
int vg_alarm_engine_open(const struct vg_alarm_engine_options *o,
			 struct vg_alarm_engine **out, char *err, size_t errlen);
/* Flush what is pending, stop delivery, free. Accepts NULL. */
void vg_alarm_engine_close(struct vg_alarm_engine *e);

/* The dispatch consumer ("alarms"): batch -> vg_alarm_engine_batch,
 * tick -> vg_alarm_engine_tick. */
struct vg_consumer vg_alarm_engine_consumer(struct vg_alarm_engine *e);
/* Evaluate one batch. Always 0 (alarm trouble never refuses data). */
int vg_alarm_engine_batch(struct vg_alarm_engine *e, const struct vg_batch *b);
/* Missing data, pending writes, SSE keepalives, history retention. */
void vg_alarm_engine_tick(struct vg_alarm_engine *e, int64_t now_ms);

/* The outbox (tests drive deliveries with vg_alarm_outbox_run_once when
 * the engine was opened without `deliver`). */
struct vg_alarm_outbox *vg_alarm_engine_outbox(struct vg_alarm_engine *e);

/* ---- API operations (thread-safe) --------------------------------------------
 * scope: NULL for an administrator, else the only project visible; an
 * alarm of another project is -ENOENT. `ref` is an alarm id, or a name
 * (within scope; for an administrator the name must be unique: a name
 * that alarms of several projects share is -ENOTUNIQ, and
 * vg_alarm_engine_list with that name lists them).
 * Results are new JSON values the caller decrefs. Validation failures are
 * -EINVAL with *errors a JSON array of {"field","message"}; -EEXIST: the
 * name is taken in the project; -EBUSY: the change would break a
 * composite alarm (*errors explains); -ENOSPC: too many alarms. */

int vg_alarm_engine_create(struct vg_alarm_engine *e, const json_t *body,
			   const char *scope, json_t **out, json_t **errors);
/* Replace (patch = 0) or merge into (patch = 1) a definition. */
int vg_alarm_engine_update(struct vg_alarm_engine *e, const char *ref,
			   const json_t *body, int patch, const char *scope,
			   json_t **out, json_t **errors);
int vg_alarm_engine_delete(struct vg_alarm_engine *e, const char *ref,
			   const char *scope, json_t **errors);
int vg_alarm_engine_set_enabled(struct vg_alarm_engine *e, const char *ref,
				const char *scope, int enabled, json_t **out);
/* Definition, state and per-resource instances. */
int vg_alarm_engine_get(struct vg_alarm_engine *e, const char *ref,
			const char *scope, json_t **out);

struct vg_alarm_list_filter {
	const char *project; /* admin only; NULL = all */
	int state;           /* -1 = any */
	int enabled;         /* -1 = any */
	int kind;            /* -1 = any */
	const char *name;    /* exact, NULL = any */
	const char *after;   /* cursor: names greater than this */
	int limit;           /* 1..1000 */
};
/* {"alarms":[...], "next": "<name>" | null} sorted by project, name. */
int vg_alarm_engine_list(struct vg_alarm_engine *e, const char *scope,
			 const struct vg_alarm_list_filter *f, json_t **out);

/* History of one alarm (q->alarm_id is filled from ref). */
int vg_alarm_engine_history(struct vg_alarm_engine *e, const char *ref,
			    const char *scope, struct vg_alarm_history_query *q,
			    json_t **out, int64_t *next_seq);

/* Send a test notification of alarm ref now, to its actions for state
 * (NULL: "alarm"), "type": "test", alone (not grouped, not silenced),
 * recorded in its history as type "test". It counts against the
 * project's max_notifications_per_minute: over it, -EDQUOT and
 * *retry_after_ms says when the budget has one again. *out: a new
 * {"notification_id", "state", "actions"} the caller frees. -ENOENT no
 * such alarm in scope, -EINVAL a bad state, -ENOMSG no action for that
 * state, or -errno of the store. Thread-safe. */
int vg_alarm_engine_test_notification(struct vg_alarm_engine *e, const char *ref,
				      const char *scope, const char *state, json_t **out,
				      int64_t *retry_after_ms);

/* The notification groups with members waiting for their flush
 * (docs/alarms.md, Grouped notifications), of project scope (NULL: all):
 * a new {"groups": [{"project", "action", "group", "flush_at",
 * "flush_at_ms", "members"}]} (at most 1000, earliest flush first) the
 * caller frees. 0 or -errno. Thread-safe. */
int vg_alarm_engine_groups(struct vg_alarm_engine *e, const char *scope, json_t **out);

/* The engine's silences (vigie/alarm_silence.h; thread-safe on their
 * own). Never NULL for an open engine. */
struct vg_alarm_silences *vg_alarm_engine_silences(struct vg_alarm_engine *e);

/* GET /v1/silences, GET and DELETE /v1/silences/{id} for scope (NULL: an
 * administrator, every silence). A project token sees its project's
 * silences and, read-only, the global ones whose matchers hold for one of
 * its project's alarms now (an instance's resource and host, or the
 * alarm's name, severity and labels): what stopped its notifications,
 * with nothing of another project in it. As vg_alarm_silences_list,
 * _get and _expire (vigie/alarm_silence.h): expire answers -EPERM for a
 * global silence the project sees. Take the engine lock, then the
 * silences' (the order the engine's matching takes them). Thread-safe. */
int vg_alarm_engine_silences_list(struct vg_alarm_engine *e, const char *scope,
				  const char *state, int64_t now_ms, json_t **out);
int vg_alarm_engine_silence_get(struct vg_alarm_engine *e, const char *id,
				const char *scope, int64_t now_ms, json_t **out);
int vg_alarm_engine_silence_expire(struct vg_alarm_engine *e, const char *id,
				   const char *scope, int64_t now_ms);

/* ---- clustered alarms (alarms/engine_own.c, vigie/alarm_lease.h) -------------
 * Several collectors on one PostgreSQL: after vg_alarm_engine_cluster the
 * engine decides only for the alarms vg_alarm_engine_own says this node
 * holds the lease of (none until the first call); for the others it keeps
 * the last closed periods' values, replayed over the stored state when it
 * takes one over, and it records nothing. Every write of a decision is
 * fenced by the lease row in the same transaction. Thread-safe. */

/* Switch to clustered mode as node (its lease owner name). Call once,
 * before the first batch. */
void vg_alarm_engine_cluster(struct vg_alarm_engine *e, const char *node);
/* A lease round's outcome: every alarm id with whether this node holds
 * it. Alarms not known here are loaded (created on another collector);
 * alarms newly held are taken over (stored state, then the kept
 * periods); alarms no longer held stop being evaluated. */
void vg_alarm_engine_own(struct vg_alarm_engine *e,
			 const struct vg_alarm_lease_item *items, size_t n);
/* Call fn(ctx) after each alarm created through this engine, without
 * the engine's lock, before vg_alarm_engine_create returns (the cluster
 * runs a lease round and waits for it, so the node that holds the new
 * alarm evaluates, and stores, every batch acknowledged after the
 * create: vg_cluster_round_wait). */
void vg_alarm_engine_on_create(struct vg_alarm_engine *e, void (*fn)(void *ctx),
			       void *ctx);
/* Stop evaluating everything (the lease round failed: the leases will
 * expire and others take over). */
void vg_alarm_engine_disown_all(struct vg_alarm_engine *e);

struct vg_alarm_engine_stats {
	uint64_t alarms, instances, series, resources;
	uint64_t batches, samples, samples_late, samples_duplicate;
	uint64_t cooldowns; /* alarm notifications held back by a cooldown */
	uint64_t datapoints, evaluations, transitions, notifications;
	uint64_t store_errors, pending, pending_dropped;
	uint64_t batch_ns_total;
	uint64_t silenced;     /* notifications not sent: a silence matched */
	uint64_t rate_limited; /* not sent: max_notifications_per_minute */
	uint64_t outside_time; /* not sent: outside the alarm's time_constraints */
	uint64_t inhibited;    /* not sent: an alarm inhibiting it fires */
	uint64_t silences_active;
	/* clustered alarms (vg_alarm_engine_cluster) */
	uint64_t owned;          /* alarms this node holds the lease of */
	uint64_t takeovers;      /* leases gained (state reloaded) */
	uint64_t leases_taken;   /* of those, taken from another node (its lease expired) */
	uint64_t fenced;         /* leases found lost at a commit */
	uint64_t shadow_dropped; /* kept datapoints of others' alarms dropped */
	uint64_t peer_notices;   /* other nodes' notifications put on SSE */
	/* periods left out, not missing: their host's batches for them
	 * reached another collector and not this one (a gap in the agent's
	 * sequence numbers: lost on the metric stream) */
	uint64_t unseen_periods;
	/* alarms.db state rows: written, and evaluations that left a quiet
	 * state quiet and wrote nothing (docs/alarms.md, Durability) */
	uint64_t state_writes, quiet_evaluations;
	/* evaluations that changed only an instance's datapoints, appended
	 * to the step log instead of rewriting its row; entries in the log
	 * (committed, since its last compaction) */
	uint64_t logged_steps, log_entries;
	uint64_t log_replayed;    /* entries replayed at the last open */
	uint64_t log_compactions; /* rows rewritten and the log cleared */
};
void vg_alarm_engine_get_stats(struct vg_alarm_engine *e,
			       struct vg_alarm_engine_stats *out);

#endif
