/*
 * vigie — the configuration shared by both daemons (docs/operations.md).
 *
 * One INI file (parsed by common/config.c) with sections [agent], [collector],
 * [storage] and [log]; each daemon reads the sections it uses and validates
 * all of them, so one file can serve a whole deployment. An unknown section
 * or key, or a bad value, is an error that names the file, the line and the
 * key. Command-line flags are applied after the file (they override it).
 */
#ifndef VIGIE_CONFIG_H
#define VIGIE_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#define VG_MAX_ARCHIVES 8
#define VG_MAX_EXEC 16       /* [alarms] exec commands */
#define VG_MAX_COLLECTORS 16 /* [agent] collectors */
#define VG_MAX_POLICIES 32   /* [archives] rules */
/* rrdcached's TCP port when [storage] daemons names none */
#define VG_RRDCACHED_DEFAULT_PORT 42217
#define VG_POLICY_PATTERN_MAX 128

/* One RRD archive tier: points of resolution_s seconds kept for
 * retention_s seconds (e.g. 60 s for 15 days). */
struct vg_archive {
	uint32_t resolution_s;
	uint32_t retention_s;
};

/* One [archives] rule: series whose metric name matches pattern (fnmatch(3)
 * glob, '*' also crossing dots: "cpu.*", "net.*.errors") get these
 * archives when they are created. Rules are tried in file order; the first
 * match wins; no match: [storage] archives. */
struct vg_archive_policy {
	char pattern[VG_POLICY_PATTERN_MAX];
	struct vg_archive archives[VG_MAX_ARCHIVES];
	size_t narchives;
};

struct vg_config {
	/* [agent] */
	char agent_collector[256]; /* collector = tcp://127.0.0.1:7470 (the
				     * first of agent_collectors) */
	/* collectors = URL, URL, ... (or collector = URL: a list of one);
	 * whichever key comes last sets the list */
	char agent_collectors[VG_MAX_COLLECTORS][256];
	size_t agent_ncollectors;
	uint32_t agent_probe_interval_ms; /* probe_interval_ms = 10000 */
	char agent_libvirt[256];          /* libvirt = qemu:///system */
	double agent_interval_s;          /* interval = 10 */
	char agent_host[256];             /* host = (hostname) */
	char agent_spool_dir[512];        /* spool_dir = /var/lib/vigie/spool */
	uint32_t agent_spool_max_batches; /* spool_max_batches = 10000 */
	uint32_t agent_max_batch_bytes;   /* max_batch_bytes = 16777216: a poll
					   * that encodes larger is sent as
					   * several batches */
	uint32_t agent_ack_timeout_ms;    /* ack_timeout_ms = 5000 */
	/* ack_timeout_ms was given (file or flag), not the default: the
	 * collector, which reads it too (its receiver's bound on a storage
	 * daemon is a quarter of it), warns when it is not */
	int agent_ack_timeout_set;
	uint32_t agent_drain_ms;                /* drain_ms = 2000: on stop, how long
						 * the spool may take to deliver */
	char agent_proc_root[512];              /* proc = /proc (tests point it elsewhere) */
	char agent_key_file[512];               /* key_file = (none: batches go unsigned) */
	int agent_host_fs;                      /* host_fs = true */
	char agent_host_fs_include[512];        /* host_fs_include = (every local fs) */
	char agent_host_fs_exclude[512];        /* host_fs_exclude = (none) */
	uint32_t agent_guest_fs_polls;          /* guest_fs_polls = 6 (0: off) */
	uint32_t agent_guest_agent_retry_polls; /* guest_agent_retry_polls = 60 */

	/* [collector] */
	char collector_listen[256];      /* listen = tcp://(star):7470 */
	char collector_http[256];        /* http = 127.0.0.1:7480 */
	char collector_data_dir[512];    /* data_dir = /var/lib/vigie */
	uint32_t collector_max_message;  /* max_message_bytes = 16777216 */
	uint32_t collector_http_threads; /* http_threads = 4 */
	char collector_tls_cert[512];    /* tls_cert = (none: plain HTTP); PEM */
	char collector_tls_key[512];     /* tls_key = (none); PEM, unencrypted */
	char collector_www_dir[512];     /* www_dir = (auto: PREFIX/share/vigie/www, else ./query/www) */
	/* http_max_concurrent_per_project = 0: requests one project (one
	 * token scope; admin tokens together are one more) may have in
	 * flight at once, over it 429; 0 is http_threads - 1, at least 1 */
	uint32_t collector_http_max_per_project;
	/* http_queue_per_project = 64: a project's requests over its cap
	 * that wait in turn for a place (0: none, 429 at once); http_queue_wait
	 * = 5s: the longest one waits before its 429 */
	uint32_t collector_http_queue_per_project;
	double collector_http_queue_wait_s;
	/* Signed agents (docs/security.md, vigie/sign.h). */
	char collector_keys_dir[512];      /* keys_dir = /etc/vigie/keys */
	int collector_require_signatures;  /* require_signatures = true */
	double collector_max_clock_skew_s; /* max_clock_skew = 0 (no check) */
	double collector_max_future_s;     /* max_future = 10m (0: no check) */
	/* Measures projects publish (POST /v1/measures, docs/api.md). */
	uint32_t collector_publish_points_per_s; /* = 1000000 per project */
	uint32_t collector_publish_series_max;   /* = 10000 per project */

	/* [storage] */
	uint32_t storage_step_s;      /* step = 60 */
	uint32_t storage_heartbeat_s; /* heartbeat = 600 */
	/* publish_heartbeat = 2d: the heartbeat of series created by
	 * published measures (POST /v1/measures), sparse by nature */
	double storage_publish_heartbeat_s;
	struct vg_archive archives[VG_MAX_ARCHIVES]; /* archives = 1m:15d,... */
	size_t narchives;
	uint32_t storage_cache_values; /* cache_values = 8388608 (16 B each) */
	uint32_t storage_flush_depth;  /* flush_depth = 64 values per librrd call */
	double storage_keep_ended_s;   /* keep_ended = 90d: the series and rows
					* of a resource ended longer ago are
					* deleted (0: kept forever) */

	/* [archives] PATTERN = RES:RETENTION,...: per-metric archive rules */
	struct vg_archive_policy policies[VG_MAX_POLICIES];
	size_t npolicies;

	/* [state]: where the collector's state lives (registry, tokens, ...).
	 * url: a vg_db URL (vigie/db.h), e.g. postgresql://vigie@db/vigie or
	 * "host=db1,db2 dbname=vigie target_session_attrs=read-write"; empty:
	 * sqlite files in data_dir. token_key: the API tokens' HMAC key file
	 * (empty: <data_dir>/tokens.key); the same file on every collector
	 * that shares the state. */
	char state_url[1024];
	char state_token_key[512];
	/* PostgreSQL: a migration at start-up waits at most
	 * migrate_lock_timeout_ms = 2000 for each lock, then rolls back and
	 * tries again, for migrate_wait = 5m in all (vigie/db.h "Schema
	 * migrations") */
	uint32_t state_migrate_lock_timeout_ms;
	double state_migrate_wait_s;
	/* [cluster]: several collectors on one [state] url (PostgreSQL
	 * only; docs/alarms.md "Clustered alarms"). node: this collector's
	 * name in the node registry (empty: derived from the host name and
	 * [collector] listen, so stable across restarts); stream: the
	 * nanomsg PUB address peers subscribe to for the metric stream
	 * (empty: no stream); lease: how long an alarm lease lasts without
	 * renewal (renewed every third of it). stream_key_file: the
	 * stream's shared HMAC key file (empty: none, and a stream is then
	 * refused at start unless stream_insecure = yes); stream_window (60s):
	 * how far a stream message's send time may be from this collector's
	 * clock, either way. */
	char cluster_node[128];
	char cluster_stream[256];
	char cluster_stream_key_file[512];
	char cluster_stream_accept_key_file[512]; /* also taken, never signs with */
	int cluster_stream_insecure;
	double cluster_stream_window_s;
	double cluster_lease_s;        /* lease = 10s */
	double cluster_hold_max_s;     /* hold_max = 6h: a holding mark's
					* life past its holder's last renewal */
	int cluster_wait_verified;     /* wait_verified = yes: a host new to this
					* collector waits until its previous one
					* verified its values durable (RETRY),
					* at most hold_max (docs/scaling.md);
					* applied with backend = rrdcached only */
	char storage_backend[16];      /* backend = files | rrdcached */
	char storage_daemons[1024];    /* daemons = unix:/run/rrdcached.sock, h:42217 */
	char storage_daemon_base[512]; /* daemon_base = (the daemons' -b, when shared) */
	char storage_write_through[8]; /* write_through = auto | yes | no */
	double storage_check_max_s;    /* check_max = 30s: with rrdcached, a
					* new connection's check of the files
					* sent before starts no group of files
					* after this long (the rest: the next
					* connection's); 0.001-3600 */
	/* sync_interval = 0: with write-through, how often the store syncs
	 * the backend and retires the journal (0: after every batch) */
	double storage_sync_interval_s;
	/* sync_interval_single_writer = no: with a PostgreSQL [state] url
	 * and backend = rrdcached, a sync_interval above 0 is refused at
	 * start (and by `config check`) unless this says that only this
	 * collector writes its series (docs/scaling.md "sync_interval in a
	 * cluster") */
	int storage_sync_interval_single_writer;
	/* [cluster] proof_timeout_ms = (0: half of [agent] ack_timeout_ms):
	 * the bound of a host's proof (wait_verified) as a whole, then
	 * RETRY */
	uint32_t cluster_proof_timeout_ms;
	/* verify_writes = yes | no: with rrdcached, each sync reads back
	 * (INFO) every file it FLUSHed, to find a write the daemon
	 * acknowledged but failed; no skips that read (docs/operations.md) */
	char storage_verify_writes[8];

	/* [billing] */
	char billing_ratecard[512]; /* ratecard = (none: invoices answer 503) */
	/* lock_timeout_ms = (0: a quarter of [agent] ack_timeout_ms, 100 ms to
	 * 10 s): with PostgreSQL state, how long a batch waits for billing
	 * locks another collector holds before it is answered RETRY */
	uint32_t billing_lock_timeout_ms;

	/* [alarms] (docs/alarms.md) */
	char alarms_notify[256];                      /* notify = (off); flag --notify */
	double alarms_webhook_timeout_s;              /* webhook_timeout = 5 */
	double alarms_retry_initial_s;                /* retry_initial = 1 */
	double alarms_retry_max_s;                    /* retry_max = 5m */
	double alarms_retry_for_s;                    /* retry_for = 1d */
	double alarms_exec_timeout_s;                 /* exec_timeout = 10 */
	char alarms_alertmanager[512];                /* alertmanager = (off) */
	char alarms_webhook_allow[1024];              /* webhook_allow = (none) CIDR,... */
	int alarms_notify_after_silence;              /* = true */
	uint32_t alarms_max_alarms_per_project;       /* = 1000 */
	uint32_t alarms_max_webhooks_per_project;     /* = 20 */
	uint32_t alarms_max_silences_per_project;     /* = 100 */
	uint32_t alarms_max_notifications_per_minute; /* = 0 (off), per project */
	double alarms_history_retention_s;            /* history_retention = 30d */
	char alarms_exec[VG_MAX_EXEC][576];           /* exec = NAME: /abs/program args */
	size_t alarms_nexec;                          /* (exec may be given several times) */

	/* [log] */
	int log_level; /* level = info */
};

/* Fill *c with the documented defaults (host = this machine's hostname). */
void vg_config_defaults(struct vg_config *c);

/* Read the INI file at path into *c (on top of what is there).
 * Returns 0, or a negative errno with a one-line message in err
 * ("vigie.conf:12: [agent] interval: must be a number > 0"). */
int vg_config_load(struct vg_config *c, const char *path, char *err,
		   size_t errlen);

/* Same, from a string; `name` is used in messages in place of a path. */
int vg_config_load_string(struct vg_config *c, const char *text,
			  const char *name, char *err, size_t errlen);

/* The INI syntax both daemons' files and the CLI's cli.conf use:
 * "[section]" lines and "key = value" (or "key: value") lines; a line
 * starting with ';' or '#' is a comment, and so is the rest of a line from
 * a ';' after a space; leading and trailing blanks are dropped, a UTF-8 BOM
 * and CRLF ends are accepted, and an indented line is a line like any
 * other (no continuation lines). A line holds at most VG_INI_LINE_MAX - 1
 * bytes and no NUL byte.
 *
 * vg_ini_parse reads the FILE f, or the text when f is NULL, and calls
 * on(ud, section, key, value, line) for each key in order (section "" before
 * any header); on returns 0 to go on, anything else stops the parse and is
 * returned. Returns 0 at the end of the input; -EINVAL for a syntax error,
 * a line too long or a NUL byte, with *line set to its line and the
 * problem in why; -EIO for a read error; -ENOMEM. *line is always the
 * number of the last line read. Thread-safe; does not close f. */
#define VG_INI_LINE_MAX 4096
typedef int (*vg_ini_fn)(void *ud, const char *section, const char *key,
			 const char *value, int line);
int vg_ini_parse(FILE *f, const char *text, vg_ini_fn on, void *ud, int *line,
		 char *why, size_t whylen);

/* Set one key as the file would ("agent", "interval", "2"); used for
 * command-line overrides. Returns 0 or -EINVAL with a message in err. */
int vg_config_set(struct vg_config *c, const char *section, const char *key,
		  const char *value, char *err, size_t errlen);

/* What one key cannot check alone, once the file and the overrides are
 * in: every tier of [storage] archives and of each [archives] rule a
 * multiple of [storage] step, and [collector]
 * http_max_concurrent_per_project at most http_threads (the keys may
 * come in any order), and a cluster's [cluster] stream with a
 * stream_key_file or stream_insecure = yes (the files themselves:
 * vg_config_stream_keys). 0, or
 * -EINVAL with "[section] key: problem" in err. Thread-safe. */
int vg_config_check(const struct vg_config *c, char *err, size_t errlen);

struct vg_key;
/* The metric stream's keys as the collector loads them, at start and on
 * SIGHUP (one place, so `vigie-collector config check` and the daemon
 * refuse the same configurations with the same words): none (both len 0)
 * when there is no cluster stream ([cluster] stream or [state] url unset)
 * or it runs with stream_insecure = yes and no stream_key_file; else
 * *sign from stream_key_file (what this node signs with and takes) and
 * *accept from stream_accept_key_file (taken too, never signed with;
 * len 0 when unset or the file does not exist: the rotation's first
 * and last steps). 0, or -EINVAL/-errno with "[cluster] key: problem" in
 * err, the keys then wiped. Reads files; thread-safe. */
int vg_config_stream_keys(const struct vg_config *c, struct vg_key *sign,
			  struct vg_key *accept, char *err, size_t errlen);

/* Parse "1m:15d,5m:63d,1h:455d" into at most max archives (the step is
 * checked by vg_config_check): tiers separated by commas (blanks around a
 * tier allowed), each RES:RETENTION where both are a decimal integer with
 * one unit s, m, h, d or w (none: seconds) -- no sign, fraction,
 * exponent or hex --, the resolution at least 1 s, the retention at least
 * the resolution and at most 100 years; tiers strictly coarser from left
 * to right, each keeping at least as long as the one before (a coarser
 * tier keeping less would never be read). The one parser of [storage]
 * archives and of every [archives] rule. 0 with out and *n set, or
 * -EINVAL with out and *n untouched and, when why is not NULL, the
 * reason naming the bad token or tiers in why (whylen bytes).
 * Thread-safe. */
int vg_config_archives_parse(const char *s, struct vg_archive *out,
			     size_t max, size_t *n, char *why, size_t whylen);

/* vg_config_archives_parse without the reason. */
int vg_config_parse_archives(const char *s, struct vg_archive *out,
			     size_t max, size_t *n);

/* Parse a duration like "90", "1.5", "2s", "5m", "3h", "15d" into seconds.
 * 0 or -EINVAL. The number is strtod's, so configuration files may hold
 * "1e3", "0x10", ".5", "5." or "+5", which vigie/clock.h's
 * vg_duration_parse (the API's times and durations, an alarm's too:
 * plain decimals only, also "min", to 1e10 units, whole milliseconds)
 * refuses; it takes "10min", which this refuses. The two are kept apart
 * so that no configuration file starts being refused. (An alarm's
 * durations moved to the API's parser: alarms.db stores them as
 * integers, so no stored alarm is refused; only a request that spelt
 * "0x3c" for 60 is, as "p0x10" was for a percentile. Archive tiers
 * moved to vg_config_archives_parse's decimal integers: a tier written
 * "0x3cs" or "1e1m" now stops start-up, naming it.) */
int vg_parse_duration(const char *s, double *seconds);

#endif
