/*
 * vigie — the alarm model: what an alarm definition is, how it reads from
 * and writes to JSON, and how it is validated (alarms/model.c).
 * docs/alarms.md is the prose form with worked examples.
 *
 * Two kinds of alarm:
 *  - threshold: a metric of one resource (or of every resource a selector
 *    matches, each evaluated on its own), a statistic over a period, M out
 *    of N datapoints compared with a threshold, a missing-data treatment;
 *  - composite: a rule over other alarms' states (alarms/rule.h).
 * Both have a name unique per project, a severity, per-state actions, an
 * enabled flag; state is insufficient_data, ok or alarm.
 *
 * Ownership: a struct vg_alarm_def owns every string it points to; free
 * with vg_alarm_def_release. Pure functions, thread-safe.
 */
#ifndef VIGIE_ALARM_H
#define VIGIE_ALARM_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Alarm states; values are stored in alarms.db: never renumber. */
enum vg_alarm_state {
	VG_ALARM_INSUFFICIENT_DATA = 0,
	VG_ALARM_OK = 1,
	VG_ALARM_ALARM = 2,
};
#define VG_ALARM_NSTATES 3

enum vg_alarm_kind {
	VG_ALARM_THRESHOLD = 0,
	VG_ALARM_COMPOSITE = 1,
	VG_ALARM_EVENT = 2, /* lifecycle events, not series */
};

/* Event kinds an event alarm matches (bits of def->event_kinds): the
 * batch's lifecycle events (enum vg_event_type, bit 1 << type), and two
 * the collector derives: a stop whose libvirt reason is crashed or failed,
 * and an agent that stopped sending. */
#define VG_ALARM_EV_CRASHED 9
#define VG_ALARM_EV_AGENT_SILENT 10
#define VG_ALARM_EV_MAX 10
enum vg_alarm_severity { VG_SEV_LOW = 0,
			 VG_SEV_MODERATE = 1,
			 VG_SEV_CRITICAL = 2 };
enum vg_alarm_stat {
	VG_STAT_AVERAGE = 0,
	VG_STAT_MINIMUM,
	VG_STAT_MAXIMUM,
	VG_STAT_SUM,
	VG_STAT_SAMPLE_COUNT,
	VG_STAT_PERCENTILE, /* with def->percentile in [0, 100] */
};
/* How a group alarm combines its members' per-period values. */
enum vg_alarm_group_stat {
	VG_GROUP_AVERAGE = 0,
	VG_GROUP_MINIMUM,
	VG_GROUP_MAXIMUM,
	VG_GROUP_SUM,
	VG_GROUP_COUNT,       /* members that reported in the period */
	VG_GROUP_PERCENTILE,  /* with def->group_percentile */
	VG_GROUP_COUNT_ABOVE, /* members whose value > group_member_threshold */
};
enum vg_alarm_cmp { VG_CMP_GT = 0,
		    VG_CMP_GE,
		    VG_CMP_LT,
		    VG_CMP_LE,
		    VG_CMP_EQ,
		    VG_CMP_NE };
enum vg_alarm_missing {
	VG_MISSING_MISSING = 0,
	VG_MISSING_IGNORE,
	VG_MISSING_BREACHING,
	VG_MISSING_NOT_BREACHING,
};

/* Limits (documented in docs/alarms.md). */
#define VG_ALARM_NAME_MAX 128 /* bytes of a name */
#define VG_ALARM_DESC_MAX 1024
#define VG_ALARM_MAX_N 100                /* evaluation_periods */
#define VG_ALARM_MAX_WINDOW_S (7 * 86400) /* period * evaluation_periods */
#define VG_ALARM_MAX_ACTIONS 8            /* per state */
#define VG_ALARM_ACTION_MAX 1024          /* bytes of one action URL */
#define VG_ALARM_MAX_META 8               /* selector metadata pairs */
#define VG_ALARM_RULE_MAX 1024            /* bytes of a composite rule */
#define VG_ALARM_MAX_KEEP_S (7 * 86400)

struct vg_alarm_kv {
	char *key, *value;
};

/* Which resources a threshold alarm watches: `resource` (one id), or
 * every resource of `rtype` whose project, host, flavor and attributes
 * match the non-NULL fields here. */
struct vg_alarm_selector {
	int rtype;     /* enum vg_rtype; 0 = any type */
	char *project; /* NULL = the alarm's project; "*" = any (admin) */
	char *host;    /* NULL = any */
	char *flavor;  /* NULL = any */
	size_t nmeta;
	struct vg_alarm_kv *meta; /* every pair must equal a resource attribute */
};

struct vg_alarm_def {
	char id[40];   /* UUID, set by the engine */
	char *project; /* owner */
	char *name;
	char *description; /* "" when absent */
	int enabled;
	int severity; /* enum vg_alarm_severity */
	int kind;     /* enum vg_alarm_kind */

	/* threshold */
	char *metric;
	char *resource; /* one resource id, or NULL with a selector */
	struct vg_alarm_selector sel;
	int statistic;     /* enum vg_alarm_stat */
	double percentile; /* for VG_STAT_PERCENTILE */
	uint32_t period_s;
	uint32_t evaluation_periods;  /* N */
	uint32_t datapoints_to_alarm; /* M <= N */
	int comparison;               /* enum vg_alarm_cmp */
	double threshold;
	int missing;             /* enum vg_alarm_missing */
	uint32_t repeat_periods; /* re-notify every K periods in alarm; 0 off */
	uint32_t keep_firing_for_s;
	int allow_unknown_metric; /* created before its metric exists */
	/* a group alarm: one evaluation across every resource the selector
	 * matches (group != 0), members combined per period by group_stat */
	int group;
	int group_stat; /* enum vg_alarm_group_stat */
	double group_percentile, group_member_threshold;
	uint32_t cooldown_s; /* no alarm notification sooner after one; 0 off */

	/* composite */
	char *rule;

	/* event: kinds (bit 1 << kind), and optional matchers; the project is
	 * the alarm's unless event_project ("*": any, administrators) */
	uint32_t event_kinds;
	char *event_project, *event_resource, *event_host, *event_detail;
	uint32_t silent_for_s; /* agent_silent: seconds without a batch */
	/* 1: webhooks go through the fence of alarms/guard.h (alarms a
	 * project token created or changed); 0: an administrator's alarm */
	int webhook_fence;
	/* windows outside of which the alarm does not notify
	 * (alarms/timewin.h), normalised; NULL = always. Owned. */
	json_t *time_constraints;
	/* names of alarms of the same project this one suppresses while it
	 * fires (alarms/inhibit.h) */
	size_t ninhibits;
	char **inhibits;
	/* grouped notifications (alarms/group.c): notify_group = 1 gathers
	 * this alarm's webhook and log notifications into one per group of
	 * equal group_by labels, sent group_wait_s after the first member
	 * and then at most every group_interval_s; 0 = each alone */
	int notify_group;
	uint32_t group_by; /* bits 1 << enum vg_alarm_group_label */
	uint32_t group_wait_s, group_interval_s;

	/* actions per state (index enum vg_alarm_state) */
	size_t nactions[VG_ALARM_NSTATES];
	char **actions[VG_ALARM_NSTATES];

	int64_t created_ms, updated_ms;
};

/* The labels a notification group may be keyed by ("notify_group":
 * {"by": [...]}); the project and the action are always part of it. */
enum vg_alarm_group_label { VG_GL_ALARM = 0,
			    VG_GL_SEVERITY,
			    VG_GL_STATE,
			    VG_GL_RESOURCE,
			    VG_GL_HOST,
			    VG_GL_METRIC,
			    VG_GL_COUNT };
/* "alarm", "severity", "state", "resource", "host", "metric"; NULL
 * beyond VG_GL_COUNT. */
const char *vg_alarm_group_label_name(int l);
#define VG_ALARM_GROUP_WAIT_MAX_S 3600      /* notify_group.wait */
#define VG_ALARM_GROUP_INTERVAL_MAX_S 86400 /* notify_group.interval */

/* What validation needs to know about the deployment. */
struct vg_alarm_policy {
	const char *const *exec_names; /* operator-configured exec commands */
	size_t nexec;
	int alertmanager;          /* 1 if an Alertmanager URL is configured */
	double agent_interval_s;   /* periods may be any multiple of it; 0 = 10 */
	const char *scope_project; /* NULL: admin (may set "project") */
	/* Refuse a metric that is neither in the catalogue (catalog.h) nor
	 * seen: metric_seen(metric_ctx, project, metric) returns 1 when the
	 * project's resources reported it (a custom metric), 0 or -errno
	 * otherwise; NULL = catalogue only. Off (0) when loading stored
	 * definitions: a definition accepted once stays loadable. */
	int check_metric;
	int (*metric_seen)(void *ctx, const char *project, const char *metric);
	void *metric_ctx;
	/* webhook_fence when the JSON has none and the caller is an admin:
	 * 0 for an admin's new alarm, 1 for a stored definition written
	 * before the field existed (who wrote it is unknown). A project
	 * caller always gets 1. */
	int webhook_fence_default;
	/* 1 when loading a stored definition: the rules added since it was
	 * accepted (a project's white space) do not drop it */
	int stored;
};

/* Release every string of d and zero it. Accepts NULL. */
void vg_alarm_def_release(struct vg_alarm_def *d);

/* Read a definition from the API's JSON object into *out (zeroed first).
 * Every problem is reported, one per field, in *errors: a new JSON array
 * of {"field": "evaluation_periods", "message": "..."} (caller decrefs),
 * and the return is -EINVAL; on success *errors is NULL and 0 returned.
 * Unknown fields are errors too. The project is policy->scope_project
 * when set (a "project" field naming another project is an error), else
 * the "project" field, else "default". Composite rules are only parsed
 * here; references are resolved by the engine. -ENOMEM on out of memory. */
int vg_alarm_def_from_json(const json_t *in, const struct vg_alarm_policy *policy,
			   struct vg_alarm_def *out, json_t **errors);

/* The definition as the API shows it (no state): a new object, NULL on
 * out of memory. */
json_t *vg_alarm_def_to_json(const struct vg_alarm_def *d);

/* Whether an evaluation-relevant field differs (metric, selector,
 * statistic, period, N, M, comparison, threshold, missing, rule): such a
 * change resets the alarm's datapoints. */
int vg_alarm_def_eval_changed(const struct vg_alarm_def *a,
			      const struct vg_alarm_def *b);

/* Names. Unknown values give NULL / -EINVAL. */
const char *vg_alarm_state_name(int s); /* "insufficient_data","ok","alarm" */
int vg_alarm_state_parse(const char *s);
const char *vg_alarm_severity_name(int s);
/* buf of VG_ALARM_STAT_NAME_MAX bytes holds any percentile ("p99", or up
 * to 17 significant digits where fewer would not read back the same). */
#define VG_ALARM_STAT_NAME_MAX 32
const char *vg_alarm_stat_name(int s, double pct, char *buf, size_t len); /* "p99" */
const char *vg_alarm_cmp_name(int c);                                     /* "gt" */
const char *vg_alarm_cmp_words(int c);                                    /* "greater than" */
const char *vg_alarm_missing_name(int m);                                 /* "not_breaching" */
const char *vg_alarm_group_stat_name(int s, double pct, char *buf, size_t len);
/* "stopped", "crashed", "agent_silent"...; NULL if unknown. */
const char *vg_alarm_event_kind_name(int k);

/* Whether value compared with threshold breaches. NaN never breaches. */
int vg_alarm_compare(int cmp, double value, double threshold);

/* A valid alarm or composite reference name: 1..VG_ALARM_NAME_MAX bytes of
 * [A-Za-z0-9_.:@-] (no spaces: names appear in PUB topics). 1 or 0. */
int vg_alarm_name_valid(const char *s);

/* Format a value for reasons: at most 3 decimals, trailing zeros dropped
 * but one kept ("94.0", "91.25", "0.001"), %.4g beyond that range. */
char *vg_alarm_format_value(double v, char *buf, size_t len);

/* A new random UUID (version 4) into buf (>= 37 bytes). 0 or -errno. */
int vg_alarm_uuid(char *buf, size_t len);

#endif
