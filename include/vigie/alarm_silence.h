/*
 * vigie — silences of alarm notifications (alarms/silence.c).
 *
 * A silence says "do not notify what matches these matchers between
 * start and end", with who made it and why (Alertmanager's silences).
 * Matchers, all optional, all must hold: project, resource, host, alarm
 * (name), severity, labels (every pair must equal a pair of the alarm's
 * selector metadata). A project token's silence belongs to its project;
 * an administrator's may name a project or be global ("*": every project).
 *
 * Silences live in the state database through vigie/db.h (table
 * alarm_silences, component "alarm_silences"), so they work on sqlite and
 * PostgreSQL, and in memory for matching. The engine asks
 * vg_alarm_silences_match for every notification it is about to commit: a
 * silenced transition is still evaluated and recorded in the history
 * (with "silenced_by"), but no outbox row, log line or SSE event is
 * written for it; as this happens inside the transition's transaction, a
 * silenced notification is never delivered whatever the moment of a
 * kill -9.
 *
 * Thread-safety: every function locks the set; any thread may call them.
 */
#ifndef VIGIE_ALARM_SILENCE_H
#define VIGIE_ALARM_SILENCE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "vigie/alarm.h"

struct vg_alarm_silences;

#define VG_SILENCE_MAX 10000       /* silences held (active, pending, recent) */
#define VG_SILENCE_PER_PROJECT 100 /* default [alarms] max_silences_per_project */
#define VG_SILENCE_MAX_DURATION_S (366 * 86400)
/* and at least a second: "0.001s" was an active silence whose ends_at
 * read as its starts_at, ended before anyone saw it */
#define VG_SILENCE_MIN_MS 1000
#define VG_SILENCE_KEEP_EXPIRED_MS (7LL * 86400000) /* listed after the end */

/* Open (and migrate) the table in the database at db_url (vigie/db.h
 * URLs) and load the silences not ended before now_ms - 7 days.
 * per_project: most silences not yet ended per project (0 =
 * VG_SILENCE_PER_PROJECT). 0 or -errno with err set. */
int vg_alarm_silences_open(const char *db_url, unsigned per_project, int64_t now_ms,
			   struct vg_alarm_silences **out, char *err, size_t errlen);
void vg_alarm_silences_close(struct vg_alarm_silences *s); /* accepts NULL */

/* Create from the API's JSON:
 *   {"matchers": {"project", "resource", "host", "alarm", "severity",
 *                 "labels": {k: v}}, "starts_at" (default now),
 *    "ends_at" or "duration" ("2h"), "created_by", "comment"}
 * scope: the token's project (NULL: administrator). now_ms: the wall
 * clock. On success *out is the silence as the API shows it (caller
 * decrefs). -EINVAL with *errors (caller decrefs) like alarm validation;
 * -EDQUOT when the project already has per_project silences not ended
 * (*errors names the limit); -ENOSPC at VG_SILENCE_MAX; -EIO database. */
int vg_alarm_silences_create(struct vg_alarm_silences *s, const json_t *in,
			     const char *scope, int64_t now_ms, json_t **out,
			     json_t **errors);
/* What a notification is about. */
struct vg_alarm_silence_subject {
	const char *project, *resource, *host, *alarm;
	int severity;
	const struct vg_alarm_def *def; /* labels: def->sel.meta; may be NULL */
};

/* What a caller sees. scope NULL (an administrator): every silence. A
 * project token (scope its project): its project's silences, and the
 * global ones whose matchers hold for one of subj[0..nsubj) of that
 * project (the engine passes the project's alarms and their instances,
 * vg_alarm_engine_silences_list): a tenant whose notifications an
 * administrator's global silence stops can see it, and since every value
 * of its matchers then holds for the tenant's own alarm, it names nothing
 * of another project. The *_for functions read subj only during the call;
 * the others are the same with no subject (no global silence for a
 * project token). */

/* {"silences": [...]} newest first: state "all", "active", "pending",
 * "expired", or NULL for those not expired. *out: the caller decrefs. */
int vg_alarm_silences_list_for(struct vg_alarm_silences *s, const char *scope,
			       const struct vg_alarm_silence_subject *subj, size_t nsubj,
			       const char *state, int64_t now_ms, json_t **out);
int vg_alarm_silences_list(struct vg_alarm_silences *s, const char *scope,
			   const char *state, int64_t now_ms, json_t **out);
/* One silence the caller sees into *out (caller decrefs), or -ENOENT. */
int vg_alarm_silences_get_for(struct vg_alarm_silences *s, const char *id,
			      const char *scope,
			      const struct vg_alarm_silence_subject *subj, size_t nsubj,
			      int64_t now_ms, json_t **out);
int vg_alarm_silences_get(struct vg_alarm_silences *s, const char *id,
			  const char *scope, int64_t now_ms, json_t **out);
/* Expire now (ends_at = now; one already ended stays as it was).
 * -ENOENT when absent or not seen by the caller; -EPERM for a global
 * silence a project token sees (read-only: the administrator's); -EIO. */
int vg_alarm_silences_expire_for(struct vg_alarm_silences *s, const char *id,
				 const char *scope,
				 const struct vg_alarm_silence_subject *subj, size_t nsubj,
				 int64_t now_ms);
int vg_alarm_silences_expire(struct vg_alarm_silences *s, const char *id,
			     const char *scope, int64_t now_ms);
/* Whether a silence active at at_ms matches: 1 with its id in id (>= 40
 * bytes), else 0. */
int vg_alarm_silences_match(struct vg_alarm_silences *s,
			    const struct vg_alarm_silence_subject *subj,
			    int64_t at_ms, char *id);
/* The end of a silence: the engine tells, once, every alarm instance the
 * silence matched that is still in alarm when it ends. ended_next gives
 * (1, id) a silence ended at now_ms whose end was not handled yet;
 * match_id whether its matchers (not its times) hold for subj;
 * set_handled records that its end was handled (in memory at once, and
 * in the table). */
int vg_alarm_silences_ended_next(struct vg_alarm_silences *s, int64_t now_ms, char *id);
int vg_alarm_silences_match_id(struct vg_alarm_silences *s, const char *id,
			       const struct vg_alarm_silence_subject *subj);
int vg_alarm_silences_set_handled(struct vg_alarm_silences *s, const char *id);

/* Delete the rows of silences that ended before now_ms - keep_ms (never
 * fewer than VG_SILENCE_KEEP_EXPIRED_MS: those are still listed), so the
 * table does not grow with every silence ever made: a tenant creating and
 * expiring silences in a loop, each within its limit, wrote a row each
 * for ever. The engine calls it hourly with [alarms] history_retention,
 * when the history rows that name those silences (silenced_by) go too.
 * *deleted (may be NULL) gets the number of rows. 0 or -errno. */
int vg_alarm_silences_prune(struct vg_alarm_silences *s, int64_t now_ms, int64_t keep_ms,
			    uint64_t *deleted);

/* Silences active at at_ms; notifications they silenced so far. */
size_t vg_alarm_silences_active(struct vg_alarm_silences *s, int64_t at_ms);
uint64_t vg_alarm_silences_silenced(struct vg_alarm_silences *s);

#endif
