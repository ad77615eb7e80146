/*
 * model.c — alarm definitions: JSON in and out, validation, names
 * (vigie/alarm.h).
 *
 * Design: vg_alarm_def_from_json walks a fixed table of known fields; each
 * field's reader validates its value and records a precise error against
 * that field, so one request reports every problem at once (the API turns
 * the list into a 400). Cross-field rules (M <= N, period * N, one of
 * resource/selector, composite vs threshold fields) run after the fields.
 *
 * Invariants: a definition that passed validation has name and project
 * set, 1 <= M <= N <= VG_ALARM_MAX_N, period_s >= 1, exactly one of
 * resource / selector for a threshold alarm and a syntactically valid rule
 * for a composite one; every action is an accepted URL form.
 *
 * Why one file (~1,400 lines): it is one table of the definition's fields,
 * read in both directions. Each field's reader (parsing), its cross-field
 * rules and its writer (output) must change together when a field is added,
 * and most of the length is the 27 fields' readers, each checking its
 * value and recording a precise error; the rule language, time windows, guard and quota
 * are already files of their own (rule.c, timewin.c, guard.c, quota.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "alarms/timewin.h"
#include "vigie/alarm.h"
#include "alarms/rule.h"
#include "vigie/batch.h"
#include "vigie/catalog.h"
#include "vigie/clock.h"
#include "vigie/config.h"
#include "vigie/name.h"

/* ---- names ------------------------------------------------------------------ */

static const char *const state_names[] = {"insufficient_data", "ok", "alarm"};
static const char *const sev_names[] = {"low", "moderate", "critical"};
static const char *const stat_names[] = {"average", "minimum", "maximum",
					 "sum", "sample_count"};
static const char *const cmp_names[] = {"gt", "ge", "lt", "le", "eq", "ne"};
static const char *const cmp_words[] = {
	"greater than", "greater than or equal to", "less than",
	"less than or equal to", "equal to", "not equal to"};
static const char *const missing_names[] = {"missing", "ignore", "breaching",
					    "not_breaching"};

static const char *const group_stat_names[] = {
	"average", "minimum", "maximum", "sum", "count", "pNN", "count_above"};

static const char *const event_kind_names[] = {
	NULL, "started", "stopped", "suspended", "resumed", "defined",
	"undefined", "resized", "gap", "crashed", "agent_silent"};

#define NAMES(a) (sizeof(a) / sizeof((a)[0]))

const char *vg_alarm_event_kind_name(int k)
{
	return k > 0 && (size_t)k < NAMES(event_kind_names) ? event_kind_names[k]
							    : NULL;
}

static int lookup(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; s && i < n; i++)
		if (!strcmp(names[i], s))
			return (int)i;
	return -EINVAL;
}

const char *vg_alarm_state_name(int s)
{
	return s >= 0 && (size_t)s < NAMES(state_names) ? state_names[s] : NULL;
}

int vg_alarm_state_parse(const char *s)
{
	return lookup(state_names, NAMES(state_names), s);
}

const char *vg_alarm_severity_name(int s)
{
	return s >= 0 && (size_t)s < NAMES(sev_names) ? sev_names[s] : NULL;
}

/* "p<pct>" in the fewest digits that read back as the same double, so a
 * definition converted to JSON and parsed again is the same definition
 * (p99.9 stays "p99.9"; a percentile given with 40 digits keeps 17). */
static const char *pct_name(double pct, char *buf, size_t len)
{
	for (int prec = 6; prec <= 17; prec++) {
		snprintf(buf, len, "p%.*g", prec, pct);
		if (strtod(buf + 1, NULL) == pct)
			break;
	}
	return buf;
}

const char *vg_alarm_stat_name(int s, double pct, char *buf, size_t len)
{
	if (s == VG_STAT_PERCENTILE)
		return pct_name(pct, buf, len);
	return s >= 0 && (size_t)s < NAMES(stat_names) ? stat_names[s] : NULL;
}

const char *vg_alarm_group_stat_name(int s, double pct, char *buf, size_t len)
{
	if (s == VG_GROUP_PERCENTILE)
		return pct_name(pct, buf, len);
	return s >= 0 && (size_t)s < NAMES(group_stat_names) ? group_stat_names[s]
							     : NULL;
}

const char *vg_alarm_cmp_name(int c)
{
	return c >= 0 && (size_t)c < NAMES(cmp_names) ? cmp_names[c] : NULL;
}

const char *vg_alarm_cmp_words(int c)
{
	return c >= 0 && (size_t)c < NAMES(cmp_words) ? cmp_words[c] : "?";
}

const char *vg_alarm_missing_name(int m)
{
	return m >= 0 && (size_t)m < NAMES(missing_names) ? missing_names[m] : NULL;
}

int vg_alarm_compare(int cmp, double v, double t)
{
	if (isnan(v))
		return 0;
	switch (cmp) {
	case VG_CMP_GT: return v > t;
	case VG_CMP_GE: return v >= t;
	case VG_CMP_LT: return v < t;
	case VG_CMP_LE: return v <= t;
	case VG_CMP_EQ: return v == t;
	case VG_CMP_NE: return v != t;
	}
	return 0;
}

int vg_alarm_name_valid(const char *s)
{
	size_t n;

	if (!s || !(n = strlen(s)) || n > VG_ALARM_NAME_MAX)
		return 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == ':' || c == '@' || c == '-'))
			return 0;
	}
	return 1;
}

char *vg_alarm_format_value(double v, char *buf, size_t len)
{
	double a = fabs(v);

	if (!isfinite(v)) {
		snprintf(buf, len, "%s", isnan(v) ? "missing" : v > 0 ? "inf"
								      : "-inf");
		return buf;
	}
	if (a != 0 && (a >= 1e12 || a < 1e-3)) {
		snprintf(buf, len, "%.4g", v);
		return buf;
	}
	snprintf(buf, len, "%.3f", v);
	char *dot = strchr(buf, '.');
	if (dot) {
		char *end = buf + strlen(buf) - 1;
		while (end > dot + 1 && *end == '0')
			*end-- = '\0';
	}
	if (!strcmp(buf, "-0.0"))
		snprintf(buf, len, "0.0");
	return buf;
}

int vg_alarm_uuid(char *buf, size_t len)
{
	unsigned char b[16];
	size_t got = 0;

	if (len < 37)
		return -ENOSPC;
	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(buf, len,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

/* ---- memory ---------------------------------------------------------------------- */

static void free_sel(struct vg_alarm_selector *s)
{
	free(s->project);
	free(s->host);
	free(s->flavor);
	for (size_t i = 0; i < s->nmeta; i++) {
		free(s->meta[i].key);
		free(s->meta[i].value);
	}
	free(s->meta);
	memset(s, 0, sizeof(*s));
}

void vg_alarm_def_release(struct vg_alarm_def *d)
{
	if (!d)
		return;
	free(d->project);
	free(d->name);
	free(d->description);
	free(d->metric);
	free(d->resource);
	free(d->rule);
	free(d->event_project);
	free(d->event_resource);
	free(d->event_host);
	free(d->event_detail);
	json_decref(d->time_constraints);
	for (size_t i = 0; i < d->ninhibits; i++)
		free(d->inhibits[i]);
	free(d->inhibits);
	free_sel(&d->sel);
	for (int s = 0; s < VG_ALARM_NSTATES; s++) {
		for (size_t i = 0; i < d->nactions[s]; i++)
			free(d->actions[s][i]);
		free(d->actions[s]);
	}
	memset(d, 0, sizeof(*d));
}

/* ---- parsing ------------------------------------------------------------------------- */

struct pctx {
	const struct vg_alarm_policy *pol;
	struct vg_alarm_def *d;
	json_t *errors;
	int oom;
	/* which fields were present */
	int has_metric, has_resource, has_selector, has_stat, has_period, has_n,
		has_m, has_cmp, has_threshold, has_missing, has_repeat, has_keep,
		has_rule, has_type, has_allow_unknown, has_group, has_cooldown, has_event,
		has_fence;
};

static void add_err(struct pctx *c, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void add_err(struct pctx *c, const char *field, const char *fmt, ...)
{
	char msg[512 + 4], cfield[256], cmsg[512];
	json_t *e;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* at most 511 bytes, cut between characters (the 4 bytes more show
	 * whether a character goes on past the cut) */
	msg[vg_utf8_prefix(msg, sizeof(msg) - 5)] = '\0';
	e = json_pack("{s:s,s:s}", "field", field, "message", msg);
	if (!e) {
		/* not UTF-8 (a quoted client string cut inside a character
		 * where a reader forgot vg_utf8_prefix): keep the error, each
		 * bad byte a '?', rather than lose it and answer a 500 */
		vg_text_clean(field, cfield, sizeof(cfield) - 1);
		vg_text_clean(msg, cmsg, sizeof(cmsg) - 1);
		e = json_pack("{s:s,s:s}", "field", cfield, "message", cmsg);
	}
	if (json_array_append_new(c->errors, e))
		c->oom = 1;
}

static int set_str(struct pctx *c, char **dst, const char *s)
{
	free(*dst);
	*dst = strdup(s);
	if (!*dst)
		c->oom = 1;
	return *dst ? 0 : -ENOMEM;
}

/* A string of 1..max bytes without control characters. */
static const char *get_text(struct pctx *c, const char *field, const json_t *v,
			    size_t max, int allow_empty)
{
	const char *s;
	size_t n;

	if (!json_is_string(v)) {
		add_err(c, field, "must be a string");
		return NULL;
	}
	s = json_string_value(v);
	n = json_string_length(v);
	if (strlen(s) != n) {
		add_err(c, field, "must not contain NUL bytes");
		return NULL;
	}
	if (!n && !allow_empty) {
		add_err(c, field, "must not be empty");
		return NULL;
	}
	if (n > max) {
		add_err(c, field, "must be at most %zu bytes (got %zu)", max, n);
		return NULL;
	}
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\n' && *p != '\t') {
			add_err(c, field, "must not contain control characters");
			return NULL;
		}
	return s;
}

static int get_enum(struct pctx *c, const char *field, const json_t *v,
		    const char *const *names, size_t n, int *out)
{
	char list[256] = "";
	int i;

	if (json_is_string(v) && (i = lookup(names, n, json_string_value(v))) >= 0) {
		*out = i;
		return 0;
	}
	for (size_t k = 0; k < n; k++) {
		size_t l = strlen(list);
		snprintf(list + l, sizeof(list) - l, "%s%s", k ? ", " : "", names[k]);
	}
	add_err(c, field, "must be one of %s", list);
	return -EINVAL;
}

/* An integer in [lo, hi]; with durations, also "90s", "5m", "1h". */
static int get_uint(struct pctx *c, const char *field, const json_t *v,
		    uint64_t lo, uint64_t hi, int duration, uint32_t *out)
{
	double x;

	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		if (i < (json_int_t)lo || (uint64_t)i > hi)
			goto range;
		*out = (uint32_t)i;
		return 0;
	}
	if (json_is_real(v)) {
		x = json_real_value(v);
		if (x != floor(x))
			goto range;
		if (x < (double)lo || x > (double)hi)
			goto range;
		*out = (uint32_t)x;
		return 0;
	}
	/* the API's duration syntax (vg_duration_parse: a plain decimal and
	 * a unit), as a silence's duration: the configuration's strtod read
	 * "0x3c" as 60, "6e1" and " 60" too, and the alarm was stored with a
	 * period the client never wrote */
	int64_t ms;
	if (duration && json_is_string(v) &&
	    !vg_duration_parse(json_string_value(v), &ms) && ms % 1000 == 0) {
		if (ms / 1000 < (int64_t)lo || (uint64_t)(ms / 1000) > hi)
			goto range;
		*out = (uint32_t)(ms / 1000);
		return 0;
	}
	if (duration)
		add_err(c, field, "must be a whole number of seconds from %llu to "
				  "%llu (or a duration such as \"5m\")",
			(unsigned long long)lo, (unsigned long long)hi);
	else
		add_err(c, field, "must be an integer from %llu to %llu",
			(unsigned long long)lo, (unsigned long long)hi);
	return -EINVAL;
range:
	add_err(c, field, "must be %s from %llu to %llu",
		duration ? "a whole number of seconds" : "an integer",
		(unsigned long long)lo, (unsigned long long)hi);
	return -EINVAL;
}

/* A string naming a project, resource, metric or host: get_text, and the
 * character rule of every name (vg_text_valid: UTF-8 without control or
 * hidden characters, so a name cannot display as another's). */
static const char *get_name(struct pctx *c, const char *field, const json_t *v,
			    size_t max)
{
	const char *s = get_text(c, field, v, max, 0);

	if (s && !vg_text_valid(s, 0)) {
		add_err(c, field, "must not contain control characters, Unicode "
				  "bidirectional controls or invisible format "
				  "characters");
		return NULL;
	}
	return s;
}

/* A field of a nested object that is there and not null: null is the
 * field left out, as for the alarm's own fields (see
 * vg_alarm_def_from_json). */
static json_t *given(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_null(v) ? NULL : v;
}

static void rd_name(struct pctx *c, const json_t *v)
{
	const char *s = get_text(c, "name", v, VG_ALARM_NAME_MAX, 0);

	if (!s)
		return;
	if (!vg_alarm_name_valid(s)) {
		add_err(c, "name", "may only contain letters, digits and _ . : @ - "
				   "(no spaces: names appear in notification topics)");
		return;
	}
	set_str(c, &c->d->name, s);
}

static void rd_description(struct pctx *c, const json_t *v)
{
	const char *s = get_text(c, "description", v, VG_ALARM_DESC_MAX, 1);

	if (s)
		set_str(c, &c->d->description, s);
}

static void rd_enabled(struct pctx *c, const json_t *v)
{
	if (!json_is_boolean(v)) {
		add_err(c, "enabled", "must be true or false");
		return;
	}
	c->d->enabled = json_is_true(v);
}

static void rd_fence(struct pctx *c, const json_t *v)
{
	c->has_fence = 1;
	if (!json_is_boolean(v)) {
		add_err(c, "webhook_fence", "must be true or false");
		return;
	}
	c->d->webhook_fence = json_is_true(v);
	if (!c->d->webhook_fence && c->pol && c->pol->scope_project)
		add_err(c, "webhook_fence", "only an administrator may turn the "
					    "webhook fence off");
}

static void rd_inhibits(struct pctx *c, const json_t *v)
{
	size_t i;
	json_t *x;

	if (!json_is_array(v) || json_array_size(v) > 16) {
		add_err(c, "inhibits", "must be an array of at most 16 alarm names");
		return;
	}
	if (c->d->ninhibits)
		return;
	if (json_array_size(v) &&
	    !(c->d->inhibits = calloc(json_array_size(v), sizeof(char *)))) {
		c->oom = 1;
		return;
	}
	json_array_foreach(v, i, x) {
		const char *s = json_string_value(x);
		if (!s || !vg_alarm_name_valid(s)) {
			add_err(c, "inhibits", "[%zu]: must be an alarm name", i);
			continue;
		}
		if (!(c->d->inhibits[c->d->ninhibits] = strdup(s)))
			c->oom = 1;
		else
			c->d->ninhibits++;
	}
}

static const char *const group_labels[VG_GL_COUNT] = {
	"alarm", "severity", "state", "resource", "host", "metric"};

const char *vg_alarm_group_label_name(int l)
{
	return l >= 0 && l < VG_GL_COUNT ? group_labels[l] : NULL;
}

/* "notify_group": {"by": [labels], "wait": s, "interval": s}; null or
 * false turns grouping off. */
static void rd_notify_group(struct pctx *c, const json_t *v)
{
	const json_t *by, *x;
	const char *k;
	size_t i;

	c->d->notify_group = 0;
	c->d->group_by = 0;
	if (json_is_null(v) || json_is_false(v))
		return;
	if (!json_is_object(v)) {
		add_err(c, "notify_group", "must be an object {\"by\": [...], "
					   "\"wait\": seconds, \"interval\": seconds}");
		return;
	}
	json_object_foreach((json_t *)v, k, x)
		if (strcmp(k, "by") && strcmp(k, "wait") && strcmp(k, "interval"))
			add_err(c, "notify_group", "unknown field '%.*s' (by, wait, "
						   "interval)",
				(int)vg_utf8_prefix(k, 40), k);
	c->d->notify_group = 1;
	c->d->group_wait_s = 30;
	c->d->group_interval_s = 300;
	by = given(v, "by");
	if (by && !json_is_array(by))
		add_err(c, "notify_group.by", "must be an array of labels");
	json_array_foreach(by, i, x) {
		const char *s = json_string_value(x);
		int l;
		for (l = 0; l < VG_GL_COUNT; l++)
			if (s && !strcmp(s, group_labels[l]))
				break;
		if (l == VG_GL_COUNT)
			add_err(c, "notify_group.by", "[%zu]: must be one of alarm, "
						      "severity, state, resource, host, metric",
				i);
		else if (c->d->group_by & (1u << l))
			/* a set of labels: a repeat is a mistake, not a no-op */
			add_err(c, "notify_group.by", "[%zu]: '%s' is given twice", i,
				group_labels[l]);
		else
			c->d->group_by |= 1u << l;
	}
	if ((x = given(v, "wait")))
		get_uint(c, "notify_group.wait", x, 0, VG_ALARM_GROUP_WAIT_MAX_S, 1,
			 &c->d->group_wait_s);
	if ((x = given(v, "interval")))
		get_uint(c, "notify_group.interval", x, 1, VG_ALARM_GROUP_INTERVAL_MAX_S,
			 1, &c->d->group_interval_s);
}

static void rd_time_constraints(struct pctx *c, const json_t *v)
{
	char err[256];
	int rc;

	json_decref(c->d->time_constraints);
	c->d->time_constraints = NULL;
	if (json_is_array(v) && !json_array_size(v))
		return;
	rc = vg_alarm_timewin_parse(v, &c->d->time_constraints, err, sizeof(err));
	if (rc == -ENOMEM)
		c->oom = 1;
	else if (rc)
		add_err(c, "time_constraints", "%s", err);
}

static void rd_severity(struct pctx *c, const json_t *v)
{
	get_enum(c, "severity", v, sev_names, NAMES(sev_names), &c->d->severity);
}

static void rd_type(struct pctx *c, const json_t *v)
{
	static const char *const kinds[] = {"threshold", "composite", "event"};

	c->has_type = 1;
	get_enum(c, "type", v, kinds, 3, &c->d->kind);
}

/* The rule of a token's project for a project an alarm names (its own,
 * its selector's, its event's): "acme" + U+00A0 is another tenant that
 * reads as acme. A stored alarm loads as it was. 0 if s may be taken. */
static int project_blank_refused(struct pctx *c, const char *field, const char *s)
{
	if ((c->pol && c->pol->stored) || vg_project_name_valid(s))
		return 0;
	add_err(c, field, "must not begin or end with white space (\" acme\" "
			  "would read as \"acme\" but be another project)");
	return -1;
}

static void rd_project(struct pctx *c, const json_t *v)
{
	const char *s = get_name(c, "project", v, 255);

	if (!s || project_blank_refused(c, "project", s))
		return;
	if (c->pol && c->pol->scope_project &&
	    strcmp(s, c->pol->scope_project)) {
		add_err(c, "project", "must be your own project '%s'",
			c->pol->scope_project);
		return;
	}
	set_str(c, &c->d->project, s);
}

static void rd_metric(struct pctx *c, const json_t *v)
{
	const char *s = get_name(c, "metric", v, 200);

	c->has_metric = 1;
	if (!s)
		return;
	for (const char *p = s; *p; p++)
		if (*p == ' ') {
			add_err(c, "metric", "must not contain spaces");
			return;
		}
	set_str(c, &c->d->metric, s);
}

static void rd_resource(struct pctx *c, const json_t *v)
{
	const char *s = get_name(c, "resource", v, 200);

	c->has_resource = 1;
	if (s)
		set_str(c, &c->d->resource, s);
}

static void rd_selector(struct pctx *c, const json_t *v)
{
	struct vg_alarm_selector *sel = &c->d->sel;
	const char *key, *s;
	json_t *f;

	c->has_selector = 1;
	if (!json_is_object(v)) {
		add_err(c, "selector", "must be an object with type, and optionally "
				       "project, host, flavor and metadata");
		return;
	}
	json_object_foreach((json_t *)v, key, f) {
		if (json_is_null(f)) /* left out */
			continue;
		if (!strcmp(key, "type")) {
			int t = json_is_string(f) ? vg_rtype_parse(json_string_value(f))
						  : -EINVAL;
			if (t < 0)
				add_err(c, "selector.type", "must be one of instance, "
							    "disk, nic, host, host_disk, host_nic");
			else
				sel->rtype = t;
		} else if (!strcmp(key, "project")) {
			if (!(s = get_name(c, "selector.project", f, 255)) ||
			    project_blank_refused(c, "selector.project", s))
				continue;
			if (c->pol && c->pol->scope_project &&
			    strcmp(s, c->pol->scope_project)) {
				add_err(c, "selector.project",
					"must be your own project '%s'",
					c->pol->scope_project);
				continue;
			}
			set_str(c, &sel->project, s);
		} else if (!strcmp(key, "host")) {
			if ((s = get_name(c, "selector.host", f, 255)))
				set_str(c, &sel->host, s);
		} else if (!strcmp(key, "flavor")) {
			if ((s = get_name(c, "selector.flavor", f, 255)))
				set_str(c, &sel->flavor, s);
		} else if (!strcmp(key, "metadata")) {
			const char *mk;
			json_t *mv;
			if (!json_is_object(f)) {
				add_err(c, "selector.metadata",
					"must be an object of string values");
				continue;
			}
			if (json_object_size(f) > VG_ALARM_MAX_META) {
				add_err(c, "selector.metadata", "at most %d pairs",
					VG_ALARM_MAX_META);
				continue;
			}
			sel->meta = calloc(json_object_size(f) + 1, sizeof(*sel->meta));
			if (!sel->meta) {
				c->oom = 1;
				continue;
			}
			json_object_foreach(f, mk, mv) {
				char fld[96];
				snprintf(fld, sizeof(fld), "selector.metadata.%.*s",
					 (int)vg_utf8_prefix(mk, 60), mk);
				if (!*mk || strlen(mk) > 64) {
					add_err(c, fld, "keys must be 1 to 64 bytes");
					continue;
				}
				if (!(s = get_text(c, fld, mv, 255, 1)))
					continue;
				struct vg_alarm_kv *kv = &sel->meta[sel->nmeta];
				if (!(kv->key = strdup(mk)) || !(kv->value = strdup(s))) {
					c->oom = 1;
					free(kv->key);
					kv->key = NULL;
					continue;
				}
				sel->nmeta++;
			}
		} else {
			char fld[96];
			snprintf(fld, sizeof(fld), "selector.%.*s",
				 (int)vg_utf8_prefix(key, 60), key);
			add_err(c, fld, "unknown field (known: type, project, host, "
					"flavor, metadata)");
		}
	}
	if (!sel->rtype && !given(v, "type"))
		add_err(c, "selector.type", "is required");
}

/* The number of a percentile statistic, "99.9" of "p99.9": a plain
 * decimal from 0 to 100. strtod alone also read "p0x10" as p16 and
 * "p1e1" as p10, stored under a name the client never wrote. */
static int pct_parse(const char *s, double *out)
{
	const char *end;

	if (vg_decimal_parse(s, out, &end) || *end)
		return -EINVAL;
	return *out <= 100 ? 0 : -EINVAL;
}

static void rd_statistic(struct pctx *c, const json_t *v)
{
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;
	int i;

	c->has_stat = 1;
	if (s && s[0] == 'p' && s[1]) {
		double pct;
		if (pct_parse(s + 1, &pct)) {
			add_err(c, "statistic", "a percentile is p0 to p100, e.g. "
						"p50, p99, p99.9");
			return;
		}
		c->d->statistic = VG_STAT_PERCENTILE;
		c->d->percentile = pct;
		return;
	}
	if (!get_enum(c, "statistic", v, stat_names, NAMES(stat_names), &i))
		c->d->statistic = i;
	else {
		/* get_enum's message lacks pNN: replace it */
		json_array_remove(c->errors, json_array_size(c->errors) - 1);
		add_err(c, "statistic", "must be one of average, minimum, maximum, "
					"sum, sample_count or pNN (e.g. p99)");
	}
}

static void rd_period(struct pctx *c, const json_t *v)
{
	c->has_period = 1;
	get_uint(c, "period", v, 1, VG_ALARM_MAX_WINDOW_S, 1, &c->d->period_s);
}

static void rd_n(struct pctx *c, const json_t *v)
{
	c->has_n = 1;
	get_uint(c, "evaluation_periods", v, 1, VG_ALARM_MAX_N, 0,
		 &c->d->evaluation_periods);
}

static void rd_m(struct pctx *c, const json_t *v)
{
	c->has_m = 1;
	get_uint(c, "datapoints_to_alarm", v, 1, VG_ALARM_MAX_N, 0,
		 &c->d->datapoints_to_alarm);
}

static void rd_cmp(struct pctx *c, const json_t *v)
{
	c->has_cmp = 1;
	get_enum(c, "comparison", v, cmp_names, NAMES(cmp_names), &c->d->comparison);
}

static void rd_threshold(struct pctx *c, const json_t *v)
{
	c->has_threshold = 1;
	if (!json_is_number(v) || !isfinite(json_number_value(v))) {
		add_err(c, "threshold", "must be a finite number");
		return;
	}
	c->d->threshold = json_number_value(v);
}

static void rd_missing(struct pctx *c, const json_t *v)
{
	c->has_missing = 1;
	get_enum(c, "missing_data", v, missing_names, NAMES(missing_names),
		 &c->d->missing);
}

static void rd_repeat(struct pctx *c, const json_t *v)
{
	c->has_repeat = 1;
	get_uint(c, "repeat_every", v, 0, 100000, 0, &c->d->repeat_periods);
}

static void rd_keep(struct pctx *c, const json_t *v)
{
	c->has_keep = 1;
	get_uint(c, "keep_firing_for", v, 0, VG_ALARM_MAX_KEEP_S, 1,
		 &c->d->keep_firing_for_s);
}

static void rd_allow_unknown(struct pctx *c, const json_t *v)
{
	c->has_allow_unknown = 1;
	if (!json_is_boolean(v)) {
		add_err(c, "allow_unknown_metric", "must be true or false");
		return;
	}
	c->d->allow_unknown_metric = json_is_true(v);
}

static void rd_group(struct pctx *c, const json_t *v)
{
	const char *key, *st;
	json_t *f;
	int has_mt = 0;

	c->has_group = 1;
	if (!json_is_object(v)) {
		add_err(c, "group", "must be an object: {\"statistic\": \"average\"} "
				    "(average, minimum, maximum, sum, count, pNN, count_above "
				    "with member_threshold)");
		return;
	}
	c->d->group = 1;
	c->d->group_stat = VG_GROUP_AVERAGE;
	json_object_foreach((json_t *)v, key, f) {
		if (json_is_null(f)) /* left out */
			continue;
		if (!strcmp(key, "statistic")) {
			st = json_is_string(f) ? json_string_value(f) : "";
			int i = lookup(group_stat_names, NAMES(group_stat_names), st);
			if (st[0] == 'p' && st[1] >= '0' && st[1] <= '9') {
				double pct;
				if (pct_parse(st + 1, &pct)) {
					add_err(c, "group.statistic", "a percentile is "
								      "p0 to p100, e.g. p90");
					continue;
				}
				c->d->group_stat = VG_GROUP_PERCENTILE;
				c->d->group_percentile = pct;
			} else if (i < 0 || i == VG_GROUP_PERCENTILE)
				add_err(c, "group.statistic", "must be one of average, "
							      "minimum, maximum, sum, count, pNN (e.g. p90) "
							      "or count_above");
			else
				c->d->group_stat = i;
		} else if (!strcmp(key, "member_threshold")) {
			has_mt = 1;
			if (!json_is_number(f) || !isfinite(json_number_value(f)))
				add_err(c, "group.member_threshold",
					"must be a finite number");
			else
				c->d->group_member_threshold = json_number_value(f);
		} else {
			char fld[96];
			snprintf(fld, sizeof(fld), "group.%.*s", (int)vg_utf8_prefix(key, 60),
				 key);
			add_err(c, fld, "unknown field (known: statistic, "
					"member_threshold)");
		}
	}
	if (c->d->group_stat == VG_GROUP_COUNT_ABOVE && !has_mt)
		add_err(c, "group.member_threshold", "is required with count_above");
	else if (c->d->group_stat != VG_GROUP_COUNT_ABOVE && has_mt)
		add_err(c, "group.member_threshold", "only with count_above");
}

static int event_kind_parse(const char *s)
{
	for (size_t i = 1; s && i < NAMES(event_kind_names); i++)
		if (!strcmp(event_kind_names[i], s))
			return (int)i;
	return -EINVAL;
}

static void rd_event(struct pctx *c, const json_t *v)
{
	struct vg_alarm_def *d = c->d;
	const char *key, *s;
	json_t *f, *item;
	size_t i;

	c->has_event = 1;
	if (!json_is_object(v)) {
		add_err(c, "event", "must be an object: {\"kind\": [\"crashed\"], "
				    "\"resource\": ..., \"host\": ..., \"detail\": ..., "
				    "\"project\": ...}");
		return;
	}
	json_object_foreach((json_t *)v, key, f) {
		if (json_is_null(f)) /* left out */
			continue;
		if (!strcmp(key, "kind")) {
			json_t *list = json_is_string(f) ? json_pack("[O]", f)
							 : json_incref(f);
			if (!json_is_array(list) || !json_array_size(list))
				add_err(c, "event.kind", "must be a kind or a "
							 "non-empty array of kinds");
			json_array_foreach(list, i, item) {
				int k = event_kind_parse(json_string_value(item));
				if (k < 0)
					add_err(c, "event.kind", "unknown kind (started, "
								 "stopped, suspended, resumed, defined, "
								 "undefined, resized, gap, crashed, "
								 "agent_silent)");
				else
					d->event_kinds |= 1u << k;
			}
			json_decref(list);
		} else if (!strcmp(key, "project")) {
			if (!(s = get_name(c, "event.project", f, 255)) ||
			    project_blank_refused(c, "event.project", s))
				continue;
			if (c->pol && c->pol->scope_project &&
			    strcmp(s, c->pol->scope_project)) {
				add_err(c, "event.project", "must be your own "
							    "project '%s'",
					c->pol->scope_project);
				continue;
			}
			set_str(c, &d->event_project, s);
		} else if (!strcmp(key, "resource")) {
			if ((s = get_name(c, "event.resource", f, 200)))
				set_str(c, &d->event_resource, s);
		} else if (!strcmp(key, "host")) {
			if ((s = get_name(c, "event.host", f, 255)))
				set_str(c, &d->event_host, s);
		} else if (!strcmp(key, "detail")) {
			if ((s = get_text(c, "event.detail", f, 255, 0)))
				set_str(c, &d->event_detail, s);
		} else if (!strcmp(key, "silent_for")) {
			get_uint(c, "event.silent_for", f, 1, 86400, 1,
				 &d->silent_for_s);
		} else {
			char fld[96];
			snprintf(fld, sizeof(fld), "event.%.*s", (int)vg_utf8_prefix(key, 60),
				 key);
			add_err(c, fld, "unknown field (known: kind, project, "
					"resource, host, detail, silent_for)");
		}
	}
	if (!d->event_kinds && !given(v, "kind"))
		add_err(c, "event.kind", "is required");
}

static void rd_cooldown(struct pctx *c, const json_t *v)
{
	c->has_cooldown = 1;
	get_uint(c, "cooldown", v, 0, VG_ALARM_MAX_WINDOW_S, 1, &c->d->cooldown_s);
}

static int catalog_has(const char *metric)
{
	for (const struct vg_metric_def *m = vg_catalog; m->name; m++)
		if (!strcmp(m->name, metric))
			return 1;
	return 0;
}

/* An alarm on a metric nobody produces never fires: refuse it unless
 * the caller says the metric will come (allow_unknown_metric). */
static void check_metric_known(struct pctx *c)
{
	const struct vg_alarm_def *d = c->d;
	const char *proj;

	if (!c->pol || !c->pol->check_metric || !d->metric ||
	    d->allow_unknown_metric || catalog_has(d->metric))
		return;
	/* a selector over every project: any project's report will do */
	proj = d->sel.project && !strcmp(d->sel.project, "*") ? NULL : d->project;
	if (c->pol->metric_seen &&
	    c->pol->metric_seen(c->pol->metric_ctx, proj, d->metric) == 1)
		return;
	add_err(c, "metric", "'%.*s' is not in the metric catalogue "
			     "(docs/metrics.md) and no resource of project '%s' has reported "
			     "it: such an alarm could never fire; check the name, or set "
			     "\"allow_unknown_metric\": true for a metric that will come",
		(int)vg_utf8_prefix(d->metric, 100), d->metric, proj ? proj : "*");
}

static void rd_rule(struct pctx *c, const json_t *v)
{
	const char *s = get_text(c, "rule", v, VG_ALARM_RULE_MAX, 0);
	struct vg_alarm_rule *r;
	char err[256];
	int rc;

	c->has_rule = 1;
	if (!s)
		return;
	rc = vg_alarm_rule_parse(s, &r, err, sizeof(err));
	if (rc == -ENOMEM) {
		c->oom = 1;
		return;
	}
	if (rc) {
		add_err(c, "rule", "%s", err);
		return;
	}
	vg_alarm_rule_free(r);
	set_str(c, &c->d->rule, s);
}

/* One action URL; 0 if accepted. */
static int check_action(struct pctx *c, const char *field, const char *u)
{
	if (!strncmp(u, "http://", 7) || !strncmp(u, "https://", 8)) {
		const char *host = u + (u[4] == 's' ? 8 : 7);
		if (!*host || *host == '/' || *host == ':') {
			add_err(c, field, "webhook URL has no host");
			return -EINVAL;
		}
		for (const char *p = u; *p; p++)
			if (*p == ' ' || (unsigned char)*p < 0x21 ||
			    (unsigned char)*p == 0x7f) {
				add_err(c, field, "webhook URL must not contain "
						  "spaces or control characters");
				return -EINVAL;
			}
		return 0;
	}
	if (!strncmp(u, "log://", 6))
		return 0;
	if (!strncmp(u, "exec://", 7)) {
		const char *name = u + 7;
		char known[256] = "";
		for (size_t i = 0; c->pol && i < c->pol->nexec; i++) {
			size_t l = strlen(known);
			if (!strcmp(c->pol->exec_names[i], name))
				return 0;
			snprintf(known + l, sizeof(known) - l, "%s%s", i ? ", " : "",
				 c->pol->exec_names[i]);
		}
		add_err(c, field, "no exec command named '%.*s' is configured by "
				  "the operator ([alarms] exec in the collector's "
				  "configuration%s%s)",
			(int)vg_utf8_prefix(name, 64), name, *known ? "; configured: " : "",
			known);
		return -EINVAL;
	}
	if (!strcmp(u, "alertmanager://")) {
		if (c->pol && c->pol->alertmanager)
			return 0;
		add_err(c, field, "no Alertmanager is configured ([alarms] "
				  "alertmanager)");
		return -EINVAL;
	}
	add_err(c, field, "unsupported action '%.*s' (use http://, https://, "
			  "log://, exec://NAME or alertmanager://)",
		(int)vg_utf8_prefix(u, 64), u);
	return -EINVAL;
}

static void rd_actions(struct pctx *c, const json_t *v)
{
	const char *key, *s;
	json_t *list, *item;
	size_t i;

	if (!json_is_object(v)) {
		add_err(c, "actions", "must be an object with arrays alarm, ok, "
				      "insufficient_data");
		return;
	}
	json_object_foreach((json_t *)v, key, list) {
		int st = vg_alarm_state_parse(key);
		char fld[96];
		if (st < 0) {
			snprintf(fld, sizeof(fld), "actions.%.*s",
				 (int)vg_utf8_prefix(key, 60), key);
			add_err(c, fld, "unknown state (alarm, ok, insufficient_data)");
			continue;
		}
		snprintf(fld, sizeof(fld), "actions.%s", key);
		if (json_is_string(list)) { /* one action: accept the bare string */
			json_t *a = json_array();
			json_array_append(a, list);
			list = a;
		} else if (json_is_array(list))
			json_incref(list);
		else {
			add_err(c, fld, "must be an array of action URLs");
			continue;
		}
		if (json_array_size(list) > VG_ALARM_MAX_ACTIONS) {
			add_err(c, fld, "at most %d actions", VG_ALARM_MAX_ACTIONS);
			json_decref(list);
			continue;
		}
		c->d->actions[st] = calloc(json_array_size(list) + 1, sizeof(char *));
		if (!c->d->actions[st]) {
			c->oom = 1;
			json_decref(list);
			continue;
		}
		json_array_foreach(list, i, item) {
			char ifld[128];
			snprintf(ifld, sizeof(ifld), "%s[%zu]", fld, i);
			if (!(s = get_text(c, ifld, item, VG_ALARM_ACTION_MAX, 0)))
				continue;
			if (check_action(c, ifld, s))
				continue;
			if (!(c->d->actions[st][c->d->nactions[st]] = strdup(s)))
				c->oom = 1;
			else
				c->d->nactions[st]++;
		}
		json_decref(list);
	}
}

struct field {
	const char *name;
	void (*read)(struct pctx *c, const json_t *v);
};

static const struct field fields[] = {
	{"name", rd_name},
	{"description", rd_description},
	{"enabled", rd_enabled},
	{"webhook_fence", rd_fence},
	{"time_constraints", rd_time_constraints},
	{"inhibits", rd_inhibits},
	{"notify_group", rd_notify_group},
	{"severity", rd_severity},
	{"type", rd_type},
	{"project", rd_project},
	{"metric", rd_metric},
	{"resource", rd_resource},
	{"selector", rd_selector},
	{"statistic", rd_statistic},
	{"period", rd_period},
	{"evaluation_periods", rd_n},
	{"datapoints_to_alarm", rd_m},
	{"comparison", rd_cmp},
	{"threshold", rd_threshold},
	{"missing_data", rd_missing},
	{"repeat_every", rd_repeat},
	{"keep_firing_for", rd_keep},
	{"allow_unknown_metric", rd_allow_unknown},
	{"group", rd_group},
	{"cooldown", rd_cooldown},
	{"event", rd_event},
	{"rule", rd_rule},
	{"actions", rd_actions},
};

/* Fields the API returns that a client may send back unchanged. */
static const char *const readonly[] = {
	"id", "state", "state_reason", "state_since", "state_data", "instances",
	"created_at", "updated_at", "references", NULL};

static void cross_checks(struct pctx *c)
{
	struct vg_alarm_def *d = c->d;
	double iv = c->pol && c->pol->agent_interval_s > 0
			    ? c->pol->agent_interval_s
			    : 10;

	if (!d->name && !json_array_size(c->errors))
		add_err(c, "name", "is required");
	else if (!d->name) {
		size_t i;
		json_t *e;
		int named = 0;
		json_array_foreach(c->errors, i, e)
			if (!strcmp(json_string_value(json_object_get(e, "field")),
				    "name"))
				named = 1;
		if (!named)
			add_err(c, "name", "is required");
	}
	if (d->kind != VG_ALARM_EVENT && c->has_event)
		add_err(c, "event", "only for an event alarm (\"type\": \"event\")");
	if (d->kind == VG_ALARM_EVENT) {
		static const char *const not_event[] = {
			"metric", "resource", "selector", "statistic", "period",
			"evaluation_periods", "datapoints_to_alarm", "comparison",
			"threshold", "missing_data", "repeat_every",
			"allow_unknown_metric", "group", "rule", NULL};
		int has[] = {c->has_metric, c->has_resource, c->has_selector,
			     c->has_stat, c->has_period, c->has_n, c->has_m,
			     c->has_cmp, c->has_threshold, c->has_missing,
			     c->has_repeat, c->has_allow_unknown, c->has_group,
			     c->has_rule};
		for (int i = 0; not_event[i]; i++)
			if (has[i])
				add_err(c, not_event[i], "not allowed for an event "
							 "alarm (match events with \"event\")");
		if (!c->has_event)
			add_err(c, "event", "is required for an event alarm");
		if (d->silent_for_s &&
		    !(d->event_kinds & (1u << VG_ALARM_EV_AGENT_SILENT)))
			add_err(c, "event.silent_for", "only with the kind "
						       "agent_silent");
		if (!d->event_project && d->project && strcmp(d->project, "*"))
			set_str(c, &d->event_project, d->project);
		return;
	}
	if (d->kind == VG_ALARM_COMPOSITE) {
		static const char *const only_threshold[] = {
			"metric", "resource", "selector", "statistic", "period",
			"evaluation_periods", "datapoints_to_alarm", "comparison",
			"threshold", "missing_data", "repeat_every",
			"allow_unknown_metric", "group", NULL};
		int has[] = {c->has_metric, c->has_resource, c->has_selector,
			     c->has_stat, c->has_period, c->has_n, c->has_m,
			     c->has_cmp, c->has_threshold, c->has_missing,
			     c->has_repeat, c->has_allow_unknown, c->has_group};
		for (int i = 0; only_threshold[i]; i++)
			if (has[i])
				add_err(c, only_threshold[i],
					"not allowed for a composite alarm");
		if (!c->has_rule)
			add_err(c, "rule", "is required for a composite alarm");
		return;
	}
	if (c->has_rule && c->has_type)
		add_err(c, "rule", "only for a composite alarm (\"type\": "
				   "\"composite\")");
	else if (c->has_rule)
		add_err(c, "type", "must be \"composite\" when a rule is given");
	if (!c->has_metric)
		add_err(c, "metric", "is required");
	if (!c->has_threshold)
		add_err(c, "threshold", "is required");
	if (!c->has_cmp)
		add_err(c, "comparison", "is required (gt, ge, lt, le, eq or ne)");
	if (c->has_resource && c->has_selector)
		add_err(c, "selector", "give either resource or selector, not both");
	else if (!c->has_resource && !c->has_selector)
		add_err(c, "resource", "is required (or a selector)");
	if (c->has_group && c->has_resource)
		add_err(c, "group", "needs a selector naming the group, not one "
				    "resource");
	if (!c->has_period)
		d->period_s = 60;
	if (!c->has_n)
		d->evaluation_periods = 1;
	if (!c->has_m)
		d->datapoints_to_alarm = d->evaluation_periods;
	if (d->datapoints_to_alarm > d->evaluation_periods &&
	    d->evaluation_periods)
		add_err(c, "datapoints_to_alarm", "must be at most "
						  "evaluation_periods (%u)",
			d->evaluation_periods);
	if (d->period_s) {
		int64_t p_ms = (int64_t)d->period_s * 1000;
		int64_t i_ms = (int64_t)llround(iv * 1000);
		if (d->period_s != 60 && d->period_s != 300 && d->period_s != 3600 &&
		    (i_ms <= 0 || p_ms % i_ms))
			add_err(c, "period", "must be 60, 300, 3600 or a multiple "
					     "of the agent interval (%g s)",
				iv);
		if ((uint64_t)d->period_s * d->evaluation_periods >
		    VG_ALARM_MAX_WINDOW_S)
			add_err(c, "evaluation_periods", "period x "
							 "evaluation_periods must be at most %d s (7 days)",
				VG_ALARM_MAX_WINDOW_S);
	}
	if (c->has_selector && !d->sel.project && d->project &&
	    strcmp(d->project, "*"))
		set_str(c, &d->sel.project, d->project);
	check_metric_known(c);
}

/* An alarm of project P is P's tokens' to read (its state, reasons and
 * history name resources and values): it watches P alone. Watching
 * another project, or every one ("*"), is an alarm of no project
 * ("project": "*"), an administrator's only. A definition stored before
 * this rule loads as it was. */
static void cross_projects(struct pctx *c)
{
	const struct vg_alarm_def *d = c->d;
	const char *sel[] = {d->sel.project, d->event_project};
	const char *field[] = {"selector.project", "event.project"};

	if ((c->pol && c->pol->stored) || !d->project || !strcmp(d->project, "*"))
		return;
	for (int i = 0; i < 2; i++)
		if (sel[i] && strcmp(sel[i], d->project))
			add_err(c, field[i],
				"must be the alarm's project '%s': its tokens read the "
				"alarm's state and history, so an alarm over another "
				"project or every one (\"%s\") is an alarm of no project "
				"(\"project\": \"*\", administrators)",
				d->project, sel[i]);
}

int vg_alarm_def_from_json(const json_t *in, const struct vg_alarm_policy *pol,
			   struct vg_alarm_def *out, json_t **errors)
{
	struct pctx c;
	const char *key;
	json_t *v;

	memset(out, 0, sizeof(*out));
	*errors = NULL;
	memset(&c, 0, sizeof(c));
	c.pol = pol;
	c.d = out;
	if (!(c.errors = json_array()))
		return -ENOMEM;
	out->enabled = 1;
	out->severity = VG_SEV_MODERATE;
	out->kind = VG_ALARM_THRESHOLD;
	out->missing = VG_MISSING_MISSING;
	out->statistic = VG_STAT_AVERAGE;
	if (!json_is_object(in)) {
		add_err(&c, "", "the alarm must be a JSON object");
		goto out;
	}
	/* type first: other readers do not depend on it, but cross checks do */
	json_object_foreach((json_t *)in, key, v) {
		size_t i;
		for (i = 0; i < NAMES(fields); i++)
			if (!strcmp(fields[i].name, key)) {
				/* null is the field left out, for every field (and
				 * those of its objects): its default on a create or
				 * a PUT, cleared to it by a PATCH, which merges onto
				 * the stored form (where notify_group is null); a
				 * required field stays required */
				if (!json_is_null(v))
					fields[i].read(&c, v);
				break;
			}
		if (i < NAMES(fields))
			continue;
		for (i = 0; readonly[i]; i++)
			if (!strcmp(readonly[i], key))
				break;
		if (!readonly[i])
			add_err(&c, key, "unknown field");
	}
	if (!out->project)
		set_str(&c, &out->project,
			pol && pol->scope_project ? pol->scope_project : "default");
	if (!out->description)
		set_str(&c, &out->description, "");
	if (pol && pol->scope_project)
		out->webhook_fence = 1;
	else if (!c.has_fence)
		out->webhook_fence = pol ? pol->webhook_fence_default : 0;
	cross_projects(&c);
	cross_checks(&c);
out:
	if (c.oom) {
		json_decref(c.errors);
		vg_alarm_def_release(out);
		return -ENOMEM;
	}
	if (json_array_size(c.errors)) {
		*errors = c.errors;
		vg_alarm_def_release(out);
		return -EINVAL;
	}
	json_decref(c.errors);
	return 0;
}

/* ---- output ------------------------------------------------------------------------------ */

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

json_t *vg_alarm_def_to_json(const struct vg_alarm_def *d)
{
	json_t *o = json_object(), *acts = json_object();
	char stat[VG_ALARM_STAT_NAME_MAX], ts[32];

	if (!o || !acts) {
		json_decref(o);
		json_decref(acts);
		return NULL;
	}
	json_object_set_new(o, "id", json_string(d->id));
	json_object_set_new(o, "name", str_or_null(d->name));
	json_object_set_new(o, "project", str_or_null(d->project));
	json_object_set_new(o, "description", json_string(d->description ? d->description : ""));
	json_object_set_new(o, "type", json_string(d->kind == VG_ALARM_COMPOSITE ? "composite" : d->kind == VG_ALARM_EVENT ? "event"
															   : "threshold"));
	json_object_set_new(o, "enabled", json_boolean(d->enabled));
	json_object_set_new(o, "severity", json_string(vg_alarm_severity_name(d->severity)));
	if (d->kind == VG_ALARM_COMPOSITE) {
		json_object_set_new(o, "rule", str_or_null(d->rule));
	} else if (d->kind == VG_ALARM_EVENT) {
		json_t *ev = json_object(), *kinds = json_array();
		for (int k = 1; k <= VG_ALARM_EV_MAX; k++)
			if (d->event_kinds & (1u << k))
				json_array_append_new(kinds, json_string(
								     vg_alarm_event_kind_name(k)));
		json_object_set_new(ev, "kind", kinds);
		if (d->event_project)
			json_object_set_new(ev, "project", json_string(d->event_project));
		if (d->event_resource)
			json_object_set_new(ev, "resource", json_string(d->event_resource));
		if (d->event_host)
			json_object_set_new(ev, "host", json_string(d->event_host));
		if (d->event_detail)
			json_object_set_new(ev, "detail", json_string(d->event_detail));
		if (d->silent_for_s)
			json_object_set_new(ev, "silent_for", json_integer(d->silent_for_s));
		json_object_set_new(o, "event", ev);
	} else {
		json_object_set_new(o, "metric", str_or_null(d->metric));
		if (d->resource)
			json_object_set_new(o, "resource", json_string(d->resource));
		else {
			json_t *s = json_object(), *m = json_object();
			json_object_set_new(s, "type", json_string(d->sel.rtype ? vg_rtype_name(d->sel.rtype) : "any"));
			if (d->sel.project)
				json_object_set_new(s, "project", json_string(d->sel.project));
			if (d->sel.host)
				json_object_set_new(s, "host", json_string(d->sel.host));
			if (d->sel.flavor)
				json_object_set_new(s, "flavor", json_string(d->sel.flavor));
			for (size_t i = 0; i < d->sel.nmeta; i++)
				json_object_set_new(m, d->sel.meta[i].key,
						    json_string(d->sel.meta[i].value));
			json_object_set_new(s, "metadata", m);
			json_object_set_new(o, "selector", s);
		}
		json_object_set_new(o, "statistic", json_string(vg_alarm_stat_name(d->statistic, d->percentile, stat, sizeof(stat))));
		json_object_set_new(o, "period", json_integer(d->period_s));
		json_object_set_new(o, "evaluation_periods", json_integer(d->evaluation_periods));
		json_object_set_new(o, "datapoints_to_alarm", json_integer(d->datapoints_to_alarm));
		json_object_set_new(o, "comparison", json_string(vg_alarm_cmp_name(d->comparison)));
		json_object_set_new(o, "threshold", json_real(d->threshold));
		json_object_set_new(o, "missing_data", json_string(vg_alarm_missing_name(d->missing)));
		json_object_set_new(o, "repeat_every", json_integer(d->repeat_periods));
		if (d->allow_unknown_metric)
			json_object_set_new(o, "allow_unknown_metric", json_true());
		if (d->group) {
			char gs[VG_ALARM_STAT_NAME_MAX];
			json_t *g = json_pack("{s:s}", "statistic",
					      vg_alarm_group_stat_name(d->group_stat,
								       d->group_percentile, gs, sizeof(gs)));
			if (g && d->group_stat == VG_GROUP_COUNT_ABOVE)
				json_object_set_new(g, "member_threshold",
						    json_real(d->group_member_threshold));
			json_object_set_new(o, "group", g);
		}
	}
	json_object_set_new(o, "keep_firing_for", json_integer(d->keep_firing_for_s));
	if (d->cooldown_s)
		json_object_set_new(o, "cooldown", json_integer(d->cooldown_s));
	for (int s = 0; s < VG_ALARM_NSTATES; s++) {
		json_t *a = json_array();
		for (size_t i = 0; i < d->nactions[s]; i++)
			json_array_append_new(a, json_string(d->actions[s][i]));
		json_object_set_new(acts, vg_alarm_state_name(s), a);
	}
	json_object_set_new(o, "actions", acts);
	json_object_set_new(o, "webhook_fence", json_boolean(d->webhook_fence));
	json_t *inh = json_array();
	for (size_t i = 0; i < d->ninhibits; i++)
		json_array_append_new(inh, json_string(d->inhibits[i]));
	json_object_set_new(o, "inhibits", inh);
	if (d->notify_group) {
		json_t *g = json_object(), *by = json_array();
		for (int l = 0; l < VG_GL_COUNT; l++)
			if (d->group_by & (1u << l))
				json_array_append_new(by, json_string(group_labels[l]));
		json_object_set_new(g, "by", by);
		json_object_set_new(g, "wait", json_integer(d->group_wait_s));
		json_object_set_new(g, "interval", json_integer(d->group_interval_s));
		json_object_set_new(o, "notify_group", g);
	} else {
		json_object_set_new(o, "notify_group", json_null());
	}
	json_object_set_new(o, "time_constraints", d->time_constraints ? json_deep_copy(d->time_constraints) : json_array());
	if (d->created_ms) {
		json_object_set_new(o, "created_at",
				    json_string(vg_time_format(d->created_ms, ts, sizeof(ts))));
		json_object_set_new(o, "updated_at",
				    json_string(vg_time_format(d->updated_ms, ts, sizeof(ts))));
	}
	return o;
}

static int str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

int vg_alarm_def_eval_changed(const struct vg_alarm_def *a,
			      const struct vg_alarm_def *b)
{
	if (a->kind != b->kind || !str_eq(a->metric, b->metric) ||
	    !str_eq(a->resource, b->resource) || a->statistic != b->statistic ||
	    a->percentile != b->percentile || a->period_s != b->period_s ||
	    a->evaluation_periods != b->evaluation_periods ||
	    a->datapoints_to_alarm != b->datapoints_to_alarm ||
	    a->comparison != b->comparison || a->threshold != b->threshold ||
	    a->missing != b->missing || !str_eq(a->rule, b->rule) ||
	    a->sel.rtype != b->sel.rtype || !str_eq(a->sel.project, b->sel.project) ||
	    !str_eq(a->sel.host, b->sel.host) || !str_eq(a->sel.flavor, b->sel.flavor) ||
	    a->sel.nmeta != b->sel.nmeta || a->group != b->group ||
	    a->group_stat != b->group_stat ||
	    a->group_percentile != b->group_percentile ||
	    a->group_member_threshold != b->group_member_threshold ||
	    a->event_kinds != b->event_kinds ||
	    !str_eq(a->event_project, b->event_project) ||
	    !str_eq(a->event_resource, b->event_resource) ||
	    !str_eq(a->event_host, b->event_host) ||
	    !str_eq(a->event_detail, b->event_detail) ||
	    a->silent_for_s != b->silent_for_s)
		return 1;
	for (size_t i = 0; i < a->sel.nmeta; i++)
		if (!str_eq(a->sel.meta[i].key, b->sel.meta[i].key) ||
		    !str_eq(a->sel.meta[i].value, b->sel.meta[i].value))
			return 1;
	return 0;
}
