/*
 * silence.c — silences of alarm notifications (vigie/alarm_silence.h).
 *
 * Design: the table alarm_silences is the truth (vigie/db.h, so sqlite or
 * PostgreSQL); an array in memory mirrors the rows not ended for more
 * than VG_SILENCE_KEEP_EXPIRED_MS and is what matching scans. Matching
 * runs for every notification the engine commits, under the engine's
 * lock: a linear scan of the silences is a few string compares each, a
 * few microseconds for a hundred, far below the commit it rides on.
 * Writes go to the database first and to memory only after the commit,
 * so memory never holds what the database does not.
 *
 * Invariants: at most VG_SILENCE_MAX silences in memory; a project never
 * has more than per_project silences not yet ended; one mutex guards the
 * array and the connection (the connection is used by nobody else).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/alarm_silence.h"
#include "vigie/clock.h"
#include "vigie/db.h"
#include "vigie/name.h"

struct silence {
	char id[40];
	char *project;                 /* "*" = every project */
	char *resource, *host, *alarm; /* NULL = any */
	int severity;                  /* -1 = any */
	size_t nlabels;
	struct vg_alarm_kv *labels;
	int64_t starts_ms, ends_ms, created_ms;
	int end_handled; /* its end was acted on (alarms still firing told) */
	char *created_by, *comment, *created_with;
	json_t *matchers; /* as given, for the API */
};

struct vg_alarm_silences {
	pthread_mutex_t lock;
	struct vg_db *db;
	unsigned per_project;
	struct silence **v;
	size_t n;
	uint64_t silenced;
};

static const struct vg_db_step steps[] = {
	{1,
	 "CREATE TABLE IF NOT EXISTS alarm_silences ("
	 " id TEXT PRIMARY KEY, project TEXT NOT NULL, matchers TEXT NOT NULL,"
	 " starts_ms BIGINT NOT NULL, ends_ms BIGINT NOT NULL,"
	 " created_by TEXT NOT NULL, created_with TEXT NOT NULL,"
	 " comment TEXT NOT NULL, created_ms BIGINT NOT NULL);"
	 "CREATE INDEX IF NOT EXISTS alarm_silences_end ON alarm_silences(ends_ms);",
	 NULL, NULL, NULL},
	{2, "ALTER TABLE alarm_silences ADD COLUMN end_handled BIGINT NOT NULL DEFAULT 0;",
	 NULL, NULL, NULL},
};

static const struct vg_db_schema schema = {
	.component = "alarm_silences",
	.pg_schema = "vigie_alarms",
	.steps = steps,
	.nsteps = sizeof(steps) / sizeof(steps[0]),
};

static void silence_free(struct silence *x)
{
	if (!x)
		return;
	free(x->project);
	free(x->resource);
	free(x->host);
	free(x->alarm);
	for (size_t i = 0; i < x->nlabels; i++) {
		free(x->labels[i].key);
		free(x->labels[i].value);
	}
	free(x->labels);
	free(x->created_by);
	free(x->comment);
	free(x->created_with);
	json_decref(x->matchers);
	free(x);
}

static void add_err(json_t *errors, const char *field, const char *msg)
{
	json_t *e = json_pack("{s:s,s:s}", "field", field, "message", msg);

	/* never lost: a field json_pack refuses (not UTF-8) would leave the
	 * errors empty, and the silence be accepted with what it names */
	if (!e)
		e = json_pack("{s:s,s:s}", "field", "", "message", msg);
	json_array_append_new(errors, e);
}

/* "matchers." and at most 100 bytes of key k, cut between characters
 * (k is UTF-8, from jansson): cut inside one, the field is no string. */
static void matcher_field(char *f, size_t len, const char *k)
{
	snprintf(f, len, "matchers.%.*s", (int)vg_utf8_prefix(k, 100), k);
}

/* Fill x's matcher fields from m (an object), reporting into errors. */
static void read_matchers(struct silence *x, const json_t *m, json_t *errors)
{
	static const char *const names[] = {"project", "resource", "host", "alarm",
					    "severity", "labels", NULL};
	const char *k;
	json_t *v;

	x->severity = -1;
	if (!json_is_object(m)) {
		add_err(errors, "matchers", "must be an object of project, resource, "
					    "host, alarm, severity, labels");
		return;
	}
	json_object_foreach((json_t *)m, k, v) {
		int i;
		for (i = 0; names[i] && strcmp(names[i], k); i++)
			;
		if (!names[i]) {
			char f[160];
			matcher_field(f, sizeof(f), k);
			add_err(errors, f, "unknown matcher");
			continue;
		}
		if (!strcmp(k, "labels")) {
			const char *lk;
			json_t *lv;
			if (!json_is_object(v) || json_object_size(v) > VG_ALARM_MAX_META) {
				add_err(errors, "matchers.labels", "must be an object of "
								   "at most 8 string values");
				continue;
			}
			int bad = 0;
			x->labels = calloc(json_object_size(v) + 1, sizeof(*x->labels));
			json_object_foreach(v, lk, lv) {
				if (!json_is_string(lv)) {
					add_err(errors, "matchers.labels", "values must be strings");
					break;
				}
				/* the rule of the other matchers (and of an alarm's
				 * selector metadata): a label that displays as
				 * another, or drives a terminal, is no label. Kept
				 * all the same, so that a silence stored before the
				 * rule loads with every label it had (one dropped
				 * would widen what it silences) */
				if (!vg_text_valid(lk, 64) ||
				    !vg_text_valid(json_string_value(lv), 255))
					bad = 1;
				if (x->labels) {
					x->labels[x->nlabels].key = strdup(lk);
					x->labels[x->nlabels++].value = strdup(json_string_value(lv));
				}
			}
			if (bad)
				add_err(errors, "matchers.labels",
					"keys must be 1 to 64 bytes, values 1 to 255, without "
					"control characters, Unicode bidirectional controls "
					"or invisible format characters");
			continue;
		}
		if (!json_is_string(v) || !vg_text_valid(json_string_value(v), 255)) {
			char f[64];
			snprintf(f, sizeof(f), "matchers.%s", k);
			add_err(errors, f, "must be a non-empty string of at most 255 "
					   "bytes without control characters, Unicode "
					   "bidirectional controls or invisible format "
					   "characters");
			/* a string is kept all the same: a silence stored
			 * before the rule (a host with U+200B) loads with the
			 * matcher it had, never without it (which would
			 * silence every alarm of its project) */
			if (!json_is_string(v))
				continue;
		}
		const char *s = json_string_value(v);
		if (!strcmp(k, "severity")) {
			int sev = -1;
			for (int j = 0; j < 8; j++) {
				const char *nm = vg_alarm_severity_name(j);
				if (nm && !strcmp(nm, s))
					sev = j;
			}
			if (sev < 0)
				add_err(errors, "matchers.severity", "must be low, moderate "
								     "or critical");
			x->severity = sev;
		} else if (!strcmp(k, "project")) {
			if (!vg_project_name_valid(s) && vg_text_valid(s, 255))
				add_err(errors, "matchers.project",
					"must not begin or end with white space (\" acme\" "
					"would read as \"acme\" but be another project)");
			x->project = strdup(s);
		} else if (!strcmp(k, "resource")) {
			x->resource = strdup(s);
		} else if (!strcmp(k, "host")) {
			x->host = strdup(s);
		} else {
			x->alarm = strdup(s);
		}
	}
}

/* A comment: 1..1024 bytes of vg_text_valid text, where newlines and
 * tabs are allowed too (a comment may span lines). */
static int comment_valid(const char *s)
{
	size_t n = strlen(s);
	char *t;
	int ok;

	if (!n || n > 1024 || !(t = strdup(s)))
		return 0;
	for (char *p = t; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	ok = vg_text_valid(t, 1024);
	free(t);
	return ok;
}

/* Build a silence from stored or API JSON. scope as in create; for rows
 * read back, the project column is authoritative (scope = that). */
static struct silence *from_json(const json_t *in, const char *scope,
				 int64_t now_ms, json_t *errors)
{
	struct silence *x = calloc(1, sizeof(*x));
	static const char *const fields[] = {"matchers", "starts_at", "ends_at",
					     "duration", "created_by", "comment",
					     "id", "state", "created_at", "project",
					     "created_with", NULL};
	const char *k, *s;
	json_t *v, *je, *jd;

	if (!x)
		return NULL;
	if (!json_is_object(in)) {
		add_err(errors, "", "the silence must be a JSON object");
		return x;
	}
	json_object_foreach((json_t *)in, k, v) {
		int i;
		for (i = 0; fields[i] && strcmp(fields[i], k); i++)
			;
		if (!fields[i])
			add_err(errors, k, "unknown field");
	}
	x->matchers = json_object_get(in, "matchers")
			      ? json_deep_copy(json_object_get(in, "matchers"))
			      : json_object();
	if (!x->matchers)
		x->matchers = json_object();
	read_matchers(x, x->matchers, errors);
	/* A top-level "project" (as an alarm takes it) means the same as
	 * matchers.project: never ignored, or an administrator's silence
	 * meant for one project would silence every project. */
	if ((v = json_object_get(in, "project")) && !json_is_null(v)) {
		/* the rule of matchers.project, which it means: a name with a
		 * control or hidden character was refused there and taken
		 * here */
		if (!(s = json_string_value(v)) || !vg_text_valid(s, 255))
			add_err(errors, "project", "must be a project name: 1 to 255 "
						   "bytes without control characters, "
						   "Unicode bidirectional controls or "
						   "invisible format characters");
		else if (vg_name_blank_end(s))
			add_err(errors, "project", "must not begin or end with white "
						   "space (\" acme\" would read as "
						   "\"acme\" but be another project)");
		else if (x->project && strcmp(x->project, s))
			add_err(errors, "project", "differs from matchers.project");
		else if (!x->project && !(x->project = strdup(s)))
			add_err(errors, "project", "out of memory");
	}
	if (scope) {
		/* "*" is every project here: no tenant may hold it */
		if (!strcmp(scope, "*"))
			add_err(errors, "project", "a project token for '*' cannot "
						   "silence");
		if (x->project && strcmp(x->project, scope))
			add_err(errors, "matchers.project", "a project token may only "
							    "silence its own project");
		free(x->project);
		x->project = strdup(scope);
	} else if (!x->project) {
		x->project = strdup("*");
	}
	x->starts_ms = now_ms;
	if ((s = json_string_value(json_object_get(in, "starts_at"))) &&
	    vg_time_parse(s, now_ms, &x->starts_ms))
		add_err(errors, "starts_at", "must be a time (ISO 8601, epoch seconds, "
					     "\"now\")");
	else if (json_object_get(in, "starts_at") && !s)
		add_err(errors, "starts_at", "must be a string");
	/* ends_at or duration, never both: with both, one of them would be
	 * silently dropped and the silence end where the caller did not say */
	x->ends_ms = 0;
	je = json_object_get(in, "ends_at");
	jd = json_object_get(in, "duration");
	je = json_is_null(je) ? NULL : je;
	jd = json_is_null(jd) ? NULL : jd;
	if (je && jd) {
		add_err(errors, "duration", "give ends_at or duration, not both");
	} else if (je) {
		if (!(s = json_string_value(je)) ||
		    vg_time_parse(s, now_ms, &x->ends_ms))
			add_err(errors, "ends_at", "must be a time (ISO 8601, epoch "
						   "seconds, relative) as a string");
	} else if (jd) {
		int64_t d;
		size_t n;
		/* a plain decimal and its unit: "90" (no unit) was taken as
		 * 90 s; "90min" ends in no unit of the docs either */
		if (!(s = json_string_value(jd)) || !(n = strlen(s)) ||
		    !strchr("smhdw", s[n - 1]) ||
		    vg_duration_parse(s, &d))
			add_err(errors, "duration", "must be a plain decimal and a unit "
						    "s, m, h, d or w, like \"90m\" or \"2h\"");
		else if (d < VG_SILENCE_MIN_MS)
			add_err(errors, "duration", "a silence lasts at least 1s (a "
						    "shorter one would have ended "
						    "before it silenced anything)");
		else
			x->ends_ms = x->starts_ms + d;
	} else {
		add_err(errors, "ends_at", "ends_at or duration is required");
	}
	if (x->ends_ms > VG_TIME_MAX_MS)
		add_err(errors, "ends_at", "must be before the year 10000");
	else if (x->ends_ms && x->ends_ms <= x->starts_ms)
		add_err(errors, "ends_at", "must be after starts_at");
	else if (x->ends_ms && x->ends_ms - x->starts_ms < VG_SILENCE_MIN_MS)
		add_err(errors, "ends_at", "a silence lasts at least 1s (a shorter "
					   "one would have ended before it silenced "
					   "anything)");
	if (x->ends_ms - x->starts_ms > (int64_t)VG_SILENCE_MAX_DURATION_S * 1000)
		add_err(errors, "ends_at", "a silence lasts at most 366 days");
	/* Both are shown as written: to an administrator, and a global
	 * silence's to the tenants whose alarms it matches. created_by
	 * names someone, so it follows the character rule of names (with a
	 * U+202E "ecila-spo" displays as "ops-alice"); comment is free text
	 * that may span lines (newline and tab), with no other control or
	 * hidden character. A row stored before the rule loads all the same
	 * (load() ignores these errors): it still silences what it did. */
	s = json_string_value(json_object_get(in, "created_by"));
	if (!s || !vg_text_valid(s, 255))
		add_err(errors, "created_by", "is required (who silences): 1 to 255 "
					      "bytes without control characters, "
					      "Unicode bidirectional controls or "
					      "invisible format characters");
	x->created_by = strdup(s ? s : "");
	s = json_string_value(json_object_get(in, "comment"));
	if (!s || !comment_valid(s))
		add_err(errors, "comment", "is required (why): 1 to 1024 bytes without "
					   "control characters other than newline and "
					   "tab, Unicode bidirectional controls or "
					   "invisible format characters");
	x->comment = strdup(s ? s : "");
	x->created_ms = now_ms;
	return x;
}

static const char *state_of(const struct silence *x, int64_t now_ms)
{
	return now_ms < x->starts_ms ? "pending" : now_ms < x->ends_ms ? "active"
								       : "expired";
}

static json_t *to_json(const struct silence *x, int64_t now_ms)
{
	char a[32], b[32], c[32];

	return json_pack("{s:s,s:s,s:O,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "id", x->id,
			 "project", x->project, "matchers", x->matchers, "starts_at",
			 vg_time_format(x->starts_ms, a, sizeof(a)), "ends_at",
			 vg_time_format(x->ends_ms, b, sizeof(b)), "state",
			 state_of(x, now_ms), "created_by", x->created_by, "comment",
			 x->comment, "created_with", x->created_with, "created_at",
			 vg_time_format(x->created_ms, c, sizeof(c)));
}

/* The stored form: the API's JSON (matchers, times, who, why). */
static int db_put(struct vg_alarm_silences *s, const struct silence *x)
{
	struct vg_db_stmt *st;
	char *m = json_dumps(x->matchers, JSON_COMPACT);
	int rc;

	if (!m)
		return -ENOMEM;
	rc = vg_db_prepare(s->db,
			   "INSERT INTO alarm_silences (id, project, matchers, starts_ms,"
			   " ends_ms, created_by, created_with, comment, created_ms)"
			   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
			   " ON CONFLICT (id) DO UPDATE SET starts_ms = excluded.starts_ms,"
			   " ends_ms = excluded.ends_ms",
			   &st);
	if (!rc) {
		vg_db_bind_text(st, 1, x->id);
		vg_db_bind_text(st, 2, x->project);
		vg_db_bind_text(st, 3, m);
		vg_db_bind_int64(st, 4, x->starts_ms);
		vg_db_bind_int64(st, 5, x->ends_ms);
		vg_db_bind_text(st, 6, x->created_by);
		vg_db_bind_text(st, 7, x->created_with);
		vg_db_bind_text(st, 8, x->comment);
		vg_db_bind_int64(st, 9, x->created_ms);
		rc = vg_db_step(st);
		vg_db_reset(st);
		rc = rc < 0 ? rc : 0;
	}
	free(m);
	return rc;
}

static int load(struct vg_alarm_silences *s, int64_t now_ms, char *err, size_t errlen)
{
	struct vg_db_stmt *st;
	int rc;

	rc = vg_db_prepare(s->db,
			   "SELECT id, project, matchers, starts_ms, ends_ms, created_by,"
			   " created_with, comment, created_ms, end_handled FROM alarm_silences"
			   " WHERE ends_ms > ?1 ORDER BY created_ms LIMIT ?2",
			   &st);
	if (rc)
		goto fail;
	vg_db_bind_int64(st, 1, now_ms - VG_SILENCE_KEEP_EXPIRED_MS);
	vg_db_bind_int64(st, 2, VG_SILENCE_MAX);
	while ((rc = vg_db_step(st)) == 1) {
		json_t *m = json_loads(vg_db_column_text(st, 2), 0, NULL);
		json_t *errors = json_array();
		json_t *in = json_pack("{s:o,s:s,s:s}", "matchers", m ? m : json_object(),
				       "created_by", vg_db_column_text(st, 5), "comment",
				       vg_db_column_text(st, 7));
		const char *proj = vg_db_column_text(st, 1);
		struct silence *x;

		/* a silence of every project made with a project token:
		 * only a token for the project "*" could, before such tokens
		 * were refused; it would silence every tenant, so it is left
		 * out (kept in the table, never matched nor listed) */
		if (!strcmp(proj, "*") &&
		    !strncmp(vg_db_column_text(st, 6), "project token", 13)) {
			json_decref(in);
			json_decref(errors);
			continue;
		}
		x = from_json(in, strcmp(proj, "*") ? proj : NULL, now_ms, errors);
		json_decref(in);
		json_decref(errors);
		if (!x)
			continue;
		snprintf(x->id, sizeof(x->id), "%s", vg_db_column_text(st, 0));
		free(x->project);
		x->project = strdup(proj);
		x->starts_ms = vg_db_column_int64(st, 3);
		x->ends_ms = vg_db_column_int64(st, 4);
		x->created_with = strdup(vg_db_column_text(st, 6));
		x->created_ms = vg_db_column_int64(st, 8);
		x->end_handled = (int)vg_db_column_int64(st, 9);
		s->v[s->n++] = x;
	}
	vg_db_reset(st);
	if (rc < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "alarm silences: %s", vg_db_errmsg(s->db));
	return rc;
}

int vg_alarm_silences_open(const char *db_url, unsigned per_project, int64_t now_ms,
			   struct vg_alarm_silences **out, char *err, size_t errlen)
{
	struct vg_alarm_silences *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (!s || !(s->v = calloc(VG_SILENCE_MAX, sizeof(*s->v)))) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->per_project = per_project ? per_project : VG_SILENCE_PER_PROJECT;
	pthread_mutex_init(&s->lock, NULL);
	rc = vg_db_open(db_url, &schema, &s->db, err, errlen);
	if (!rc)
		rc = load(s, now_ms, err, errlen);
	if (rc) {
		vg_alarm_silences_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void vg_alarm_silences_close(struct vg_alarm_silences *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		silence_free(s->v[i]);
	free(s->v);
	vg_db_close(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Forget silences ended long ago (memory only; the rows stay for audit
 * until vg_alarm_silences_prune). */
static void prune(struct vg_alarm_silences *s, int64_t now_ms)
{
	size_t w = 0;

	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i]->ends_ms <= now_ms - VG_SILENCE_KEEP_EXPIRED_MS)
			silence_free(s->v[i]);
		else
			s->v[w++] = s->v[i];
	}
	s->n = w;
}

int vg_alarm_silences_prune(struct vg_alarm_silences *s, int64_t now_ms, int64_t keep_ms,
			    uint64_t *deleted)
{
	struct vg_db_stmt *st;
	int rc;

	if (deleted)
		*deleted = 0;
	if (keep_ms < VG_SILENCE_KEEP_EXPIRED_MS)
		keep_ms = VG_SILENCE_KEEP_EXPIRED_MS;
	pthread_mutex_lock(&s->lock);
	rc = vg_db_prepare(s->db, "DELETE FROM alarm_silences WHERE ends_ms < ?1", &st);
	if (!rc) {
		vg_db_bind_int64(st, 1, now_ms - keep_ms);
		rc = vg_db_step(st);
		vg_db_reset(st);
		if (rc >= 0) {
			if (deleted)
				*deleted = (uint64_t)vg_db_changes(s->db);
			rc = 0;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return rc < 0 ? -EIO : 0;
}

/* Full: forget (from memory; the row stays) the silence that ended
 * earliest. Ended silences are only listed, as expired, for the rest of
 * the week; without this, silences a tenant creates and expires again
 * and again (each within its project's limit while it lasts) would hold
 * every place for a week and refuse every other project's silence. */
static void evict_ended(struct vg_alarm_silences *s, int64_t now_ms)
{
	size_t old = s->n;

	for (size_t i = 0; i < s->n; i++)
		if (s->v[i]->ends_ms <= now_ms &&
		    (old == s->n || s->v[i]->ends_ms < s->v[old]->ends_ms))
			old = i;
	if (old == s->n)
		return;
	silence_free(s->v[old]);
	memmove(s->v + old, s->v + old + 1, (s->n - old - 1) * sizeof(*s->v));
	s->n--;
}

int vg_alarm_silences_create(struct vg_alarm_silences *s, const json_t *in,
			     const char *scope, int64_t now_ms, json_t **out,
			     json_t **errors)
{
	struct silence *x;
	size_t mine = 0;
	int rc;

	*out = NULL;
	if (!(*errors = json_array()))
		return -ENOMEM;
	if (!(x = from_json(in, scope, now_ms, *errors)) || json_array_size(*errors)) {
		silence_free(x);
		return x ? -EINVAL : -ENOMEM;
	}
	if ((rc = vg_alarm_uuid(x->id, sizeof(x->id)))) {
		silence_free(x);
		return rc;
	}
	if (scope) {
		char w[300];
		snprintf(w, sizeof(w), "project token (%.256s)", scope);
		x->created_with = strdup(w);
	} else {
		x->created_with = strdup("administrator");
	}
	/* A silence that has already ended silences nothing; accepted, it
	 * would only take one of the collector's VG_SILENCE_MAX places for
	 * a week, outside any project's limit (which counts those not yet
	 * ended): one tenant could fill them all. */
	if (x->ends_ms <= now_ms) {
		add_err(*errors, "ends_at", "is already past: a silence must end after now");
		silence_free(x);
		return -EINVAL;
	}
	pthread_mutex_lock(&s->lock);
	prune(s, now_ms);
	if (s->n >= VG_SILENCE_MAX)
		evict_ended(s, now_ms);
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i]->ends_ms > now_ms && !strcmp(s->v[i]->project, x->project))
			mine++;
	if (mine >= s->per_project) {
		char m[200];
		snprintf(m, sizeof(m), "at most %u silences not yet "
				       "ended per project ([alarms] max_silences_per_project)",
			 s->per_project);
		add_err(*errors, "", m);
		rc = -EDQUOT;
	} else if (s->n >= VG_SILENCE_MAX) {
		add_err(*errors, "", "this collector already holds 10000 silences");
		rc = -ENOSPC;
	} else if ((rc = db_put(s, x))) {
		add_err(*errors, "", vg_db_errmsg(s->db));
		rc = -EIO;
	} else {
		s->v[s->n++] = x;
		*out = to_json(x, now_ms);
		x = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	silence_free(x);
	if (!rc) {
		json_decref(*errors);
		*errors = NULL;
	}
	return rc;
}

static int matches(const struct silence *x, const struct vg_alarm_silence_subject *subj);

/* Whether the caller (scope NULL: an administrator) sees x: its
 * project's, or a global one whose matchers hold for one of subj (the
 * project's alarms and instances, given by the engine). Under the lock. */
static int visible(const struct silence *x, const char *scope,
		   const struct vg_alarm_silence_subject *subj, size_t nsubj)
{
	if (!scope || !strcmp(x->project, scope))
		return 1;
	if (strcmp(x->project, "*"))
		return 0;
	for (size_t i = 0; i < nsubj; i++)
		if (subj[i].project && !strcmp(subj[i].project, scope) &&
		    matches(x, &subj[i]))
			return 1;
	return 0;
}

int vg_alarm_silences_list_for(struct vg_alarm_silences *s, const char *scope,
			       const struct vg_alarm_silence_subject *subj, size_t nsubj,
			       const char *state, int64_t now_ms, json_t **out)
{
	json_t *a = json_array();

	if (!a)
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	for (size_t i = s->n; i-- > 0;) {
		const struct silence *x = s->v[i];
		const char *st = state_of(x, now_ms);
		if (state ? strcmp(state, "all") && strcmp(state, st)
			  : !strcmp(st, "expired"))
			continue;
		if (!visible(x, scope, subj, nsubj))
			continue;
		json_array_append_new(a, to_json(x, now_ms));
	}
	pthread_mutex_unlock(&s->lock);
	*out = json_pack("{s:o}", "silences", a);
	return *out ? 0 : -ENOMEM;
}

int vg_alarm_silences_list(struct vg_alarm_silences *s, const char *scope,
			   const char *state, int64_t now_ms, json_t **out)
{
	return vg_alarm_silences_list_for(s, scope, NULL, 0, state, now_ms, out);
}

static struct silence *find(struct vg_alarm_silences *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i]->id, id))
			return s->v[i];
	return NULL;
}

int vg_alarm_silences_get_for(struct vg_alarm_silences *s, const char *id,
			      const char *scope,
			      const struct vg_alarm_silence_subject *subj, size_t nsubj,
			      int64_t now_ms, json_t **out)
{
	struct silence *x;

	pthread_mutex_lock(&s->lock);
	x = find(s, id);
	*out = x && visible(x, scope, subj, nsubj) ? to_json(x, now_ms) : NULL;
	pthread_mutex_unlock(&s->lock);
	return *out ? 0 : -ENOENT;
}

int vg_alarm_silences_get(struct vg_alarm_silences *s, const char *id,
			  const char *scope, int64_t now_ms, json_t **out)
{
	return vg_alarm_silences_get_for(s, id, scope, NULL, 0, now_ms, out);
}

int vg_alarm_silences_expire_for(struct vg_alarm_silences *s, const char *id,
				 const char *scope,
				 const struct vg_alarm_silence_subject *subj, size_t nsubj,
				 int64_t now_ms)
{
	struct silence *x;
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	x = find(s, id);
	if (!x || !visible(x, scope, subj, nsubj))
		rc = -ENOENT;
	else if (scope && strcmp(x->project, scope))
		rc = -EPERM; /* a global silence it sees: the administrator's */
	else if (x->ends_ms > now_ms) {
		int64_t old_start = x->starts_ms, old_end = x->ends_ms;
		/* one not started yet never starts: an end after its start
		 * would leave it pending, counted in its project's limit
		 * until then, and in force for that last moment */
		if (now_ms <= x->starts_ms)
			x->starts_ms = now_ms;
		x->ends_ms = now_ms;
		if ((rc = db_put(s, x))) {
			x->starts_ms = old_start;
			x->ends_ms = old_end;
			rc = -EIO;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int vg_alarm_silences_expire(struct vg_alarm_silences *s, const char *id,
			     const char *scope, int64_t now_ms)
{
	return vg_alarm_silences_expire_for(s, id, scope, NULL, 0, now_ms);
}

static int str_match(const char *want, const char *have)
{
	return !want || (have && !strcmp(want, have));
}

static int labels_match(const struct silence *x, const struct vg_alarm_def *d);

/* Whether x's matchers (not its times) hold for subj. */
static int matches(const struct silence *x, const struct vg_alarm_silence_subject *subj)
{
	if (strcmp(x->project, "*") && !str_match(x->project, subj->project))
		return 0;
	return str_match(x->resource, subj->resource) && str_match(x->host, subj->host) &&
	       str_match(x->alarm, subj->alarm) &&
	       (x->severity < 0 || x->severity == subj->severity) &&
	       labels_match(x, subj->def);
}

int vg_alarm_silences_ended_next(struct vg_alarm_silences *s, int64_t now_ms, char *id)
{
	int found = 0;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n && !found; i++)
		if (!s->v[i]->end_handled && s->v[i]->ends_ms <= now_ms &&
		    s->v[i]->ends_ms > s->v[i]->starts_ms && now_ms > s->v[i]->starts_ms) {
			snprintf(id, 40, "%s", s->v[i]->id);
			found = 1;
		}
	pthread_mutex_unlock(&s->lock);
	return found;
}

int vg_alarm_silences_match_id(struct vg_alarm_silences *s, const char *id,
			       const struct vg_alarm_silence_subject *subj)
{
	struct silence *x;
	int m;

	pthread_mutex_lock(&s->lock);
	x = find(s, id);
	m = x && matches(x, subj);
	pthread_mutex_unlock(&s->lock);
	return m;
}

int vg_alarm_silences_set_handled(struct vg_alarm_silences *s, const char *id)
{
	struct silence *x;
	struct vg_db_stmt *st;
	int rc = -ENOENT;

	pthread_mutex_lock(&s->lock);
	if ((x = find(s, id))) {
		x->end_handled = 1; /* in memory even if the write fails: at most once */
		rc = vg_db_prepare(s->db, "UPDATE alarm_silences SET end_handled = 1"
					  " WHERE id = ?1",
				   &st);
		if (!rc) {
			vg_db_bind_text(st, 1, id);
			rc = vg_db_step(st);
			vg_db_reset(st);
			rc = rc < 0 ? rc : 0;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int labels_match(const struct silence *x, const struct vg_alarm_def *d)
{
	for (size_t i = 0; i < x->nlabels; i++) {
		size_t j;
		if (!d)
			return 0;
		for (j = 0; j < d->sel.nmeta; j++)
			if (!strcmp(d->sel.meta[j].key, x->labels[i].key) &&
			    !strcmp(d->sel.meta[j].value, x->labels[i].value))
				break;
		if (j == d->sel.nmeta)
			return 0;
	}
	return 1;
}

int vg_alarm_silences_match(struct vg_alarm_silences *s,
			    const struct vg_alarm_silence_subject *subj,
			    int64_t at_ms, char *id)
{
	int hit = 0;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n && !hit; i++) {
		const struct silence *x = s->v[i];
		if (at_ms < x->starts_ms || at_ms >= x->ends_ms || !matches(x, subj))
			continue;
		snprintf(id, 40, "%s", x->id);
		hit = 1;
		s->silenced++;
	}
	pthread_mutex_unlock(&s->lock);
	return hit;
}

size_t vg_alarm_silences_active(struct vg_alarm_silences *s, int64_t at_ms)
{
	size_t n = 0;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n; i++)
		n += at_ms >= s->v[i]->starts_ms && at_ms < s->v[i]->ends_ms;
	pthread_mutex_unlock(&s->lock);
	return n;
}

uint64_t vg_alarm_silences_silenced(struct vg_alarm_silences *s)
{
	uint64_t n;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->lock);
	n = s->silenced;
	pthread_mutex_unlock(&s->lock);
	return n;
}
