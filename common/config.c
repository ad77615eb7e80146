/*
 * config.c — the INI configuration shared by vigie-agent and
 * vigie-collector.
 *
 * Design: one table lists every key with its section, type, bounds and
 * where it lands in struct vg_config; the file parser, the command-line
 * override path (vg_config_set) and the documentation (docs/operations.md)
 * all follow that table. The file is read by a small parser of our own,
 * line by line, so every error says "file:line: [section] key: problem";
 * the first error stops the parse and nothing after it applies.
 *
 * Why not libinih (which it once used): Debian's build
 * reads lines into a 200-byte buffer and hands the rest of a longer line
 * back as the next line, and it continues an indented line into the key
 * before it. A [state] url of 250 bytes (a libpq conninfo with certificate
 * paths) was refused as a syntax error on a line the file did not have, and
 * a long data_dir whose byte 200 was a space silently became its tail.
 * vg_ini_parse reads a line whole up to VG_INI_LINE_MAX bytes (more than any
 * key holds), or refused on its own line; an indented line is a line like
 * any other. The syntax is otherwise inih's: [section], key = value (or
 * key: value), comments from ';' or '#' at the start of a line and from
 * ';' after a space, a UTF-8 BOM, CRLF line ends. The CLI's cli.conf is
 * read by the same vg_ini_parse.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vigie/config.h"
#include "vigie/log.h"
#include "vigie/name.h"
#include "vigie/sign.h"

enum key_type { K_STR,
		K_U32,
		K_SECONDS,
		K_LOGLEVEL,
		K_ARCHIVES,
		K_BOOL,
		K_DURATION,
		K_EXEC,
		K_URLS /* [agent] collector(s): max = how many */ };

struct key {
	const char *section, *name;
	enum key_type type;
	size_t off, size; /* size: buffer size for K_STR; for K_DURATION, 1 if
			   * 0 turns it off (min is then the least other value) */
	double min, max;
};

static const char *check_nn_url(const char *v);
static const char *check_backend(const char *v);
static const char *check_write_through(const char *v);
static const char *check_yes_no(const char *v);
static const char *check_http_url(const char *v);
static const char *check_state_url(const char *v);
static const char *check_daemons(const char *v);

#define S(sec, nm, field)                                            \
	{                                                            \
		sec, nm, K_STR, offsetof(struct vg_config, field),   \
			sizeof(((struct vg_config *)0)->field), 0, 0 \
	}
#define U(sec, nm, field, lo, hi)                                            \
	{                                                                    \
		sec, nm, K_U32, offsetof(struct vg_config, field), 0, lo, hi \
	}

static const struct key keys[] = {
	{"agent", "collector", K_URLS, offsetof(struct vg_config, agent_collectors), 0, 1, 1},
	{"agent", "collectors", K_URLS, offsetof(struct vg_config, agent_collectors), 0, 1, VG_MAX_COLLECTORS},
	U("agent", "probe_interval_ms", agent_probe_interval_ms, 100, 3600000),
	S("agent", "libvirt", agent_libvirt),
	{"agent", "interval", K_SECONDS, offsetof(struct vg_config, agent_interval_s), 0, 0.01, 86400},
	S("agent", "host", agent_host),
	S("agent", "spool_dir", agent_spool_dir),
	U("agent", "spool_max_batches", agent_spool_max_batches, 1, 100000000),
	U("agent", "max_batch_bytes", agent_max_batch_bytes, 1024, 16u << 20),
	U("agent", "ack_timeout_ms", agent_ack_timeout_ms, 10, 3600000),
	U("agent", "drain_ms", agent_drain_ms, 0, 3600000),
	S("agent", "proc", agent_proc_root),
	S("agent", "key_file", agent_key_file),
	{"agent", "host_fs", K_BOOL, offsetof(struct vg_config, agent_host_fs), 0, 0, 1},
	S("agent", "host_fs_include", agent_host_fs_include),
	S("agent", "host_fs_exclude", agent_host_fs_exclude),
	U("agent", "guest_fs_polls", agent_guest_fs_polls, 0, 1000000),
	U("agent", "guest_agent_retry_polls", agent_guest_agent_retry_polls, 1, 1000000),
	S("collector", "listen", collector_listen),
	S("collector", "http", collector_http),
	S("collector", "data_dir", collector_data_dir),
	U("collector", "max_message_bytes", collector_max_message, 1024, 16u << 20),
	U("collector", "http_threads", collector_http_threads, 1, 64),
	/* 0: http_threads - 1 (at least 1); above http_threads: vg_config_check */
	U("collector", "http_max_concurrent_per_project", collector_http_max_per_project, 0, 64),
	U("collector", "http_queue_per_project", collector_http_queue_per_project, 0, 4096),
	{"collector", "http_queue_wait", K_DURATION, offsetof(struct vg_config, collector_http_queue_wait_s), 0, 0.01, 86400},
	S("collector", "tls_cert", collector_tls_cert),
	S("collector", "tls_key", collector_tls_key),
	S("collector", "www_dir", collector_www_dir),
	S("collector", "keys_dir", collector_keys_dir),
	{"collector", "require_signatures", K_BOOL, offsetof(struct vg_config, collector_require_signatures), 0, 0, 1},
	{"collector", "max_clock_skew", K_DURATION, offsetof(struct vg_config, collector_max_clock_skew_s), 1, 0, 366 * 86400.0},
	{"collector", "max_future", K_DURATION, offsetof(struct vg_config, collector_max_future_s), 1, 0, 366 * 86400.0},
	U("collector", "publish_points_per_s", collector_publish_points_per_s, 1, 100000000),
	U("collector", "publish_series_max", collector_publish_series_max, 1, 100000000),
	U("storage", "step", storage_step_s, 1, 86400),
	U("storage", "heartbeat", storage_heartbeat_s, 2, 7 * 86400),
	{"storage", "publish_heartbeat", K_DURATION, offsetof(struct vg_config, storage_publish_heartbeat_s), 0, 2, 366 * 86400.0},
	{"storage", "archives", K_ARCHIVES, offsetof(struct vg_config, archives), 0, 0, 0},
	U("storage", "cache_values", storage_cache_values, 1024, 1u << 30),
	U("storage", "flush_depth", storage_flush_depth, 1, 256),
	S("state", "url", state_url),
	S("state", "token_key", state_token_key),
	U("state", "migrate_lock_timeout_ms", state_migrate_lock_timeout_ms, 10, 3600000),
	{"state", "migrate_wait", K_DURATION, offsetof(struct vg_config, state_migrate_wait_s), 0, 0, 86400},
	S("cluster", "node", cluster_node),
	S("cluster", "stream", cluster_stream),
	S("cluster", "stream_key_file", cluster_stream_key_file),
	S("cluster", "stream_accept_key_file", cluster_stream_accept_key_file),
	{"cluster", "stream_insecure", K_BOOL, offsetof(struct vg_config, cluster_stream_insecure), 0, 0, 1},
	{"cluster", "stream_window", K_DURATION, offsetof(struct vg_config, cluster_stream_window_s), 0, 1, 86400},
	{"cluster", "lease", K_SECONDS, offsetof(struct vg_config, cluster_lease_s), 0, 1, 300},
	{"cluster", "hold_max", K_DURATION, offsetof(struct vg_config, cluster_hold_max_s), 0, 1, 30 * 86400.0},
	{"cluster", "wait_verified", K_BOOL, offsetof(struct vg_config, cluster_wait_verified), 0, 0, 1},
	/* 0 (unset): half of [agent] ack_timeout_ms (collector/compose.c) */
	U("cluster", "proof_timeout_ms", cluster_proof_timeout_ms, 10, 3600000),
	/* at least an hour (the sweep's period): "keep_ended = 90" meant for
	 * days was 90 seconds, and the next sweep deleted every ended
	 * resource's series */
	{"storage", "keep_ended", K_DURATION, offsetof(struct vg_config, storage_keep_ended_s), 1, 3600, 100 * 366 * 86400.0},
	S("storage", "backend", storage_backend),
	S("storage", "write_through", storage_write_through),
	S("storage", "verify_writes", storage_verify_writes),
	{"storage", "check_max", K_SECONDS, offsetof(struct vg_config, storage_check_max_s), 0, 0.001, 3600},
	{"storage", "sync_interval", K_DURATION, offsetof(struct vg_config, storage_sync_interval_s), 0, 0, 86400},
	{"storage", "sync_interval_single_writer", K_BOOL, offsetof(struct vg_config, storage_sync_interval_single_writer), 0, 0, 1},
	S("storage", "daemons", storage_daemons),
	S("storage", "daemon_base", storage_daemon_base),
	S("billing", "ratecard", billing_ratecard),
	/* 0 (unset): a quarter of [agent] ack_timeout_ms (collector/compose.c) */
	U("billing", "lock_timeout_ms", billing_lock_timeout_ms, 10, 3600000),
	S("alarms", "notify", alarms_notify),
	{"alarms", "webhook_timeout", K_SECONDS, offsetof(struct vg_config, alarms_webhook_timeout_s), 0, 0.1, 300},
	{"alarms", "retry_initial", K_SECONDS, offsetof(struct vg_config, alarms_retry_initial_s), 0, 0.1, 86400},
	{"alarms", "retry_max", K_SECONDS, offsetof(struct vg_config, alarms_retry_max_s), 0, 0.1, 86400},
	{"alarms", "retry_for", K_SECONDS, offsetof(struct vg_config, alarms_retry_for_s), 0, 1, 30 * 86400.0},
	{"alarms", "exec_timeout", K_SECONDS, offsetof(struct vg_config, alarms_exec_timeout_s), 0, 0.1, 3600},
	S("alarms", "alertmanager", alarms_alertmanager),
	S("alarms", "webhook_allow", alarms_webhook_allow),
	{"alarms", "notify_after_silence", K_BOOL, offsetof(struct vg_config, alarms_notify_after_silence), 0, 0, 1},
	U("alarms", "max_alarms_per_project", alarms_max_alarms_per_project, 1, 100000),
	U("alarms", "max_webhooks_per_project", alarms_max_webhooks_per_project, 1, 10000),
	U("alarms", "max_silences_per_project", alarms_max_silences_per_project, 1, 10000),
	U("alarms", "max_notifications_per_minute", alarms_max_notifications_per_minute, 0, 1000000),
	{"alarms", "history_retention", K_SECONDS, offsetof(struct vg_config, alarms_history_retention_s), 0, 3600, 3650 * 86400.0},
	{"alarms", "exec", K_EXEC, offsetof(struct vg_config, alarms_exec), 0, 0, 0},
	{"log", "level", K_LOGLEVEL, offsetof(struct vg_config, log_level), 0, 0, 0},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

void vg_config_defaults(struct vg_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->agent_collector, sizeof(c->agent_collector), "tcp://127.0.0.1:7470");
	snprintf(c->agent_collectors[0], sizeof(c->agent_collectors[0]), "%s", c->agent_collector);
	c->agent_ncollectors = 1;
	c->agent_probe_interval_ms = 10000;
	snprintf(c->agent_libvirt, sizeof(c->agent_libvirt), "qemu:///system");
	c->agent_interval_s = 10;
	if (gethostname(c->agent_host, sizeof(c->agent_host)) != 0 || !c->agent_host[0])
		snprintf(c->agent_host, sizeof(c->agent_host), "localhost");
	c->agent_host[sizeof(c->agent_host) - 1] = '\0';
	snprintf(c->agent_spool_dir, sizeof(c->agent_spool_dir), "/var/lib/vigie/spool");
	c->agent_spool_max_batches = 10000;
	c->agent_max_batch_bytes = 16u << 20;
	c->agent_ack_timeout_ms = 5000;
	c->agent_drain_ms = 2000;
	snprintf(c->agent_proc_root, sizeof(c->agent_proc_root), "/proc");
	c->agent_host_fs = 1;
	c->agent_guest_fs_polls = 6;
	c->agent_guest_agent_retry_polls = 60;
	snprintf(c->collector_listen, sizeof(c->collector_listen), "tcp://*:7470");
	snprintf(c->collector_http, sizeof(c->collector_http), "127.0.0.1:7480");
	snprintf(c->collector_data_dir, sizeof(c->collector_data_dir), "/var/lib/vigie");
	c->collector_max_message = 16u << 20;
	c->collector_http_threads = 4;
	snprintf(c->collector_keys_dir, sizeof(c->collector_keys_dir), "/etc/vigie/keys");
	c->collector_require_signatures = 1;
	c->state_migrate_lock_timeout_ms = 2000;
	c->state_migrate_wait_s = 300;
	c->cluster_lease_s = 10;
	c->cluster_hold_max_s = 6 * 3600;
	c->cluster_wait_verified = 1;
	c->cluster_stream_window_s = 60;
	c->collector_max_clock_skew_s = 0;
	c->collector_max_future_s = 600;
	c->collector_http_queue_per_project = 64;
	c->collector_http_queue_wait_s = 5;
	c->collector_publish_points_per_s = 1000000;
	c->collector_publish_series_max = 10000;
	c->storage_step_s = 60;
	c->storage_heartbeat_s = 600;
	c->storage_publish_heartbeat_s = 2 * 86400.0;
	c->storage_cache_values = 8u << 20;
	c->storage_flush_depth = 64;
	c->storage_keep_ended_s = 90 * 86400.0;
	snprintf(c->storage_backend, sizeof(c->storage_backend), "files");
	snprintf(c->storage_write_through, sizeof(c->storage_write_through), "auto");
	snprintf(c->storage_verify_writes, sizeof(c->storage_verify_writes), "yes");
	c->storage_check_max_s = 30;
	c->storage_sync_interval_s = 0;
	vg_config_parse_archives("1m:15d,5m:63d,1h:455d", c->archives,
				 VG_MAX_ARCHIVES, &c->narchives);
	c->alarms_webhook_timeout_s = 5;
	c->alarms_max_alarms_per_project = 1000;
	c->alarms_notify_after_silence = 1;
	c->alarms_max_webhooks_per_project = 20;
	c->alarms_max_silences_per_project = 100;
	c->alarms_retry_initial_s = 1;
	c->alarms_retry_max_s = 300;
	c->alarms_retry_for_s = 86400;
	c->alarms_exec_timeout_s = 10;
	c->alarms_history_retention_s = 30 * 86400.0;
	c->log_level = VG_LOG_INFO;
}

/* [alarms] exec: "NAME: /absolute/program [args]", NAME of [A-Za-z0-9_.-]. */
static int exec_valid(const char *v)
{
	const char *colon = strchr(v, ':'), *p;

	if (!colon || colon == v || colon - v >= 64)
		return 0;
	for (p = v; p < colon; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-'))
			return 0;
	for (p = colon + 1; *p == ' ' || *p == '\t'; p++)
		;
	return *p == '/';
}

/* A nanomsg address as nn_bind/nn_connect take it: tcp://HOST:PORT and
 * ws://HOST:PORT[/path] with a port 1..65535 (HOST may be '*', a name, an
 * address, [IPv6] or "iface;address"), ipc://PATH, inproc://NAME. Only
 * the shape: whether the host resolves is the daemon's business. */
static const char *check_nn_url(const char *v)
{
	static const char bad[] = "must be a nanomsg address: tcp://HOST:PORT "
				  "(port 1-65535), ws://HOST:PORT, ipc://PATH or inproc://NAME";
	const char *rest, *colon, *end;
	unsigned long port;
	char *e;

	if (!strncmp(v, "ipc://", 6))
		return v[6] ? NULL : bad;
	if (!strncmp(v, "inproc://", 9))
		return v[9] ? NULL : bad;
	if (!strncmp(v, "tcp://", 6))
		rest = v + 6;
	else if (!strncmp(v, "ws://", 5))
		rest = v + 5;
	else
		return bad;
	end = v[0] == 'w' ? rest + strcspn(rest, "/") : rest + strlen(rest);
	colon = NULL;
	for (const char *q = rest; q < end; q++)
		if (*q == ':')
			colon = q;
	if (!colon || colon == rest || colon + 1 == end ||
	    !isdigit((unsigned char)colon[1]))
		return bad;
	errno = 0;
	port = strtoul(colon + 1, &e, 10);
	if (errno || e != end || port < 1 || port > 65535)
		return bad;
	return NULL;
}

static const char *check_backend(const char *v)
{
	return !strcmp(v, "files") || !strcmp(v, "rrdcached") ? NULL
							      : "must be files or rrdcached";
}

static const char *check_write_through(const char *v)
{
	return !strcmp(v, "auto") || !strcmp(v, "yes") || !strcmp(v, "no")
		       ? NULL
		       : "must be auto, yes or no";
}

static const char *check_yes_no(const char *v)
{
	return !strcmp(v, "yes") || !strcmp(v, "no") ? NULL : "must be yes or no";
}

/* http(s)://HOST[...]: the Alertmanager's base URL */
static const char *check_http_url(const char *v)
{
	const char *h = !strncmp(v, "http://", 7) ? v + 7 : !strncmp(v, "https://", 8) ? v + 8
										       : NULL;

	return h && *h && *h != '/' ? NULL : "must be an http:// or https:// URL with a host";
}

/* [state] url: the shared database is PostgreSQL only, as the modules
 * that open it tell (common/db.c): a postgresql:// or postgres:// URL, or
 * a conninfo (an '=' before any '/'). Anything else was taken as an sqlite
 * file's path, each module its own way (the registry and billing in that
 * one file, whose schemas clash; alarms in a directory of that name): a
 * typo (postgresq://..., host:db1) left stray files wherever the
 * collector ran and stopped it with an error about billing's columns. */
static const char *check_state_url(const char *v)
{
	const char *eq = strchr(v, '='), *slash = strchr(v, '/');

	if (!strncmp(v, "postgresql://", 13) || !strncmp(v, "postgres://", 11) ||
	    (eq && eq != v && (!slash || slash > eq)))
		return NULL;
	return "must be a PostgreSQL URL (postgresql://USER@HOST:PORT/DB) or a libpq "
	       "conninfo (host=HOST dbname=DB ...); leave it unset for sqlite files in data_dir";
}

/* One rrdcached address as collector/rrdcached.c connects to it:
 * unix:/ABSOLUTE/PATH or /ABSOLUTE/PATH (a relative path would name
 * another socket for the operator's storage commands than for the
 * service), [V6][:PORT], or HOST[:PORT] (a bare IPv6 address has no port),
 * a port 1-65535. Only the shape: whether it answers is the daemon's
 * business (a daemon down at start is allowed). */
static int daemon_addr_ok(const char *a, size_t len)
{
	const char *end = a + len, *colon = NULL;

	if (len >= 256)
		return 0;
	for (const char *q = a; q < end; q++)
		if (isspace((unsigned char)*q) || iscntrl((unsigned char)*q))
			return 0;
	if (!strncmp(a, "unix:", 5) || a[0] == '/') {
		const char *path = a[0] == '/' ? a : a + 5;
		return path < end && path[0] == '/' && end - path < 108;
	}
	if (a[0] == '[') {
		const char *rb = memchr(a, ']', len);
		if (!rb || rb == a + 1)
			return 0;
		if (rb + 1 == end)
			return 1;
		if (rb[1] != ':')
			return 0;
		colon = rb + 1;
	} else {
		for (const char *q = a; q < end; q++)
			if (*q == ':') {
				if (colon)
					return 1; /* a bare IPv6 address */
				colon = q;
			}
		if (!colon)
			return 1;
		if (colon == a)
			return 0;
	}
	unsigned long port = 0;
	const char *q = colon + 1;
	if (q == end)
		return 0;
	for (; q < end; q++) {
		if (!isdigit((unsigned char)*q) || (port = port * 10 + (unsigned long)(*q - '0')) > 65535)
			return 0;
	}
	return port >= 1;
}

/* The comma-separated item that starts at p, blanks (space, tab) trimmed
 * at both ends: its start in *item, its length in *len (0: empty). Returns
 * the ',' that ends it, NULL for the last item. */
static const char *list_item(const char *p, const char **item, size_t *len)
{
	const char *end = strchr(p, ',');
	size_t l = end ? (size_t)(end - p) : strlen(p);

	while (l && (*p == ' ' || *p == '\t'))
		p++, l--;
	while (l && (p[l - 1] == ' ' || p[l - 1] == '\t'))
		l--;
	*item = p;
	*len = l;
	return end;
}

/* The daemon a checked [storage] daemons entry names, written to key
 * (size bytes) so that two spellings of one daemon give one key: a socket
 * path ("unix:" or not) with its directory resolved (realpath: symlinks,
 * "..") when it exists, else with its repeated '/' and "." dropped and
 * each ".." folded into the component before it; a host name without
 * case or a trailing dot, an IP literal in its one inet_ntop form, the
 * port as a number, 42217 when left out. Only for the duplicate check:
 * placement hashes the address as written. */
static void daemon_key(const char *a, size_t len, char *key, size_t size)
{
	char h[256], ip[INET6_ADDRSTRLEN];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *end = a + len, *colon = NULL, *host = a, *hend;
	unsigned long port = VG_RRDCACHED_DEFAULT_PORT;
	size_t k = 0;

	if (!strncmp(a, "unix:", 5) || a[0] == '/') {
		const char *q = a[0] == '/' ? a : a + 5, *path = q;
		char raw[256], dir[PATH_MAX], *slash, *base;
		size_t n = (size_t)(end - path) < sizeof(raw) ? (size_t)(end - path) : sizeof(raw) - 1;

		k = (size_t)snprintf(key, size, "unix:");
		while (q < end && k + 2 < size) {
			const char *c = q;
			while (c < end && *c == '/')
				c++;
			const char *ce = c;
			while (ce < end && *ce != '/')
				ce++;
			q = ce;
			if (ce == c || (ce - c == 1 && *c == '.')) /* "//", "/./", "/" at the end */
				continue;
			if (ce - c == 2 && c[0] == '.' && c[1] == '.') { /* "/x/.." is "" */
				while (k > 5 && key[k - 1] != '/')
					k--;
				if (k > 5)
					k--;
				continue;
			}
			key[k++] = '/';
			for (; c < ce && k + 1 < size; c++)
				key[k++] = *c;
		}
		if (k == 5 && k + 1 < size)
			key[k++] = '/';
		key[k] = '\0';
		/* the directory as the kernel resolves it, when it exists */
		memcpy(raw, path, n);
		raw[n] = '\0';
		while (n > 1 && raw[n - 1] == '/')
			raw[--n] = '\0';
		slash = strrchr(raw, '/');
		base = slash + 1;
		if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
			return;
		*slash = '\0';
		if (!realpath(slash == raw ? "/" : raw, dir))
			return;
		size_t dl = strcmp(dir, "/") ? strlen(dir) : 0, bl = strlen(base);
		if (5 + dl + 1 + bl + 1 <= size) { /* "unix:" is there */
			memcpy(key + 5, dir, dl);
			key[5 + dl] = '/';
			memcpy(key + 6 + dl, base, bl + 1);
		}
		return;
	}
	if (a[0] == '[') {
		const char *rb = memchr(a, ']', len);
		host = a + 1;
		hend = rb;
		colon = rb + 1 < end ? rb + 1 : NULL;
	} else {
		for (const char *q = a; q < end; q++)
			if (*q == ':')
				colon = colon ? end : q; /* two: a bare IPv6 address */
		if (colon == end)
			colon = NULL;
		hend = colon ? colon : end;
	}
	if (colon)
		port = strtoul(colon + 1, NULL, 10);
	k = (size_t)(hend - host) < sizeof(h) ? (size_t)(hend - host) : sizeof(h) - 1;
	for (size_t i = 0; i < k; i++)
		h[i] = (char)tolower((unsigned char)host[i]);
	h[k] = '\0';
	if (a[0] != '[' && k > 1 && h[k - 1] == '.') /* "h1." is the name h1 */
		h[k - 1] = '\0';
	if (inet_pton(AF_INET, h, bin) == 1 && inet_ntop(AF_INET, bin, ip, sizeof(ip)))
		snprintf(key, size, "%s:%lu", ip, port);
	else if (inet_pton(AF_INET6, h, bin) == 1 && inet_ntop(AF_INET6, bin, ip, sizeof(ip)))
		snprintf(key, size, "[%s]:%lu", ip, port);
	else
		snprintf(key, size, "%s:%lu", h, port);
}

/* [storage] daemons: 1-64 addresses separated by commas, each once (a
 * daemon listed twice would take series under both names; daemon_key:
 * unix:/P and /P, h and H.:42217, /D/../P and /P, a symlink's /L/P and
 * its target's /T/P are one address). */
static const char *check_daemons(const char *v)
{
	static __thread char msg[256];
	static __thread char dkeys[64][264];
	const char *item[64];
	size_t len[64], n = 0;

	for (const char *p = v;; p++) {
		size_t l;
		const char *end = list_item(p, &p, &l);
		if (!l)
			return "has an empty entry (addresses separated by commas)";
		if (n == 64)
			return "names more than 64 daemons";
		if (!daemon_addr_ok(p, l)) {
			snprintf(msg, sizeof(msg), "has '%.*s', which must be unix:/ABSOLUTE/PATH, "
						   "HOST[:PORT] or [V6][:PORT] (port 1-65535)",
				 (int)(l > 80 ? 80 : l), p);
			return msg;
		}
		item[n] = p;
		len[n] = l;
		daemon_key(p, l, dkeys[n], sizeof(dkeys[n]));
		for (size_t i = 0; i < n; i++)
			if (!strcmp(dkeys[i], dkeys[n])) {
				if (len[i] == l && !memcmp(item[i], p, l))
					snprintf(msg, sizeof(msg),
						 "lists '%.*s' twice (each daemon once)",
						 (int)(l > 80 ? 80 : l), p);
				else
					snprintf(msg, sizeof(msg),
						 "lists one daemon twice: '%.*s' is '%.*s' (each "
						 "daemon once)",
						 (int)(len[i] > 80 ? 80 : len[i]), item[i],
						 (int)(l > 80 ? 80 : l), p);
				return msg;
			}
		n++;
		if (!end)
			break;
		p = end;
	}
	return NULL;
}

/* The strings the collector could only refuse once half started (exit 1,
 * after log lines, naming neither file nor line), checked here instead. */
static const struct {
	const char *section, *name;
	const char *(*check)(const char *v); /* NULL, or why v is bad */
} checks[] = {
	{"collector", "listen", check_nn_url},
	{"alarms", "notify", check_nn_url},
	{"cluster", "stream", check_nn_url},
	{"alarms", "alertmanager", check_http_url},
	{"storage", "backend", check_backend},
	{"storage", "write_through", check_write_through},
	{"storage", "verify_writes", check_yes_no},
	{"storage", "daemons", check_daemons},
	{"state", "url", check_state_url},
};

static const char *check_value(const struct key *k, const char *v)
{
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		if (!strcmp(checks[i].section, k->section) && !strcmp(checks[i].name, k->name))
			return checks[i].check(v);
	return NULL;
}

/* The collector a checked nanomsg address names, written to key (size
 * bytes) so that two spellings of one collector give one key: the host
 * name without case (DNS names have none), an IP literal in its one
 * inet_ntop form ("[0:0::1]" is "[::1]"), the port as a number ("01" is
 * "1"). The local interface of "tcp://iface;host:port" and everything of
 * ipc:// and inproc:// (file paths, names) are compared as written. */
static void url_key(const char *v, char *key, size_t size)
{
	const char *rest, *host, *colon, *end, *semi;
	char h[256], a[INET6_ADDRSTRLEN];
	unsigned char bin[sizeof(struct in6_addr)];
	size_t hl;

	if (strncmp(v, "tcp://", 6) && strncmp(v, "ws://", 5)) {
		snprintf(key, size, "%.255s", v);
		return;
	}
	rest = strstr(v, "://") + 3;
	end = v[0] == 'w' ? rest + strcspn(rest, "/") : rest + strlen(rest);
	colon = NULL;
	for (const char *q = rest; q < end; q++)
		if (*q == ':')
			colon = q;
	semi = memchr(rest, ';', (size_t)(colon - rest));
	host = semi ? semi + 1 : rest;
	hl = (size_t)(colon - host);
	if (hl >= sizeof(h))
		hl = sizeof(h) - 1;
	for (size_t i = 0; i < hl; i++)
		h[i] = (char)tolower((unsigned char)host[i]);
	h[hl] = '\0';
	if (inet_pton(AF_INET, h, bin) == 1 && inet_ntop(AF_INET, bin, a, sizeof(a)))
		snprintf(h, sizeof(h), "%s", a);
	else if (hl > 2 && h[0] == '[' && h[hl - 1] == ']') {
		h[hl - 1] = '\0';
		if (inet_pton(AF_INET6, h + 1, bin) == 1 &&
		    inet_ntop(AF_INET6, bin, a, sizeof(a)))
			snprintf(h, sizeof(h), "[%s]", a);
		else
			h[hl - 1] = ']';
	}
	snprintf(key, size, "%.*s%s:%lu%s", (int)(host - v), v, h,
		 strtoul(colon + 1, NULL, 10), end);
}

/* Why the last parse_urls refused a list naming one collector twice (the
 * two spellings); configuration is read by one thread, but each its own. */
static _Thread_local char g_dup_why[2 * 256 + 128];

/* [agent] collector(s): "URL[, URL...]", at most max addresses, each
 * once (url_key: "tcp://A:01" is "tcp://a:1"); *c is changed only if the
 * whole list is good. -EEXIST (g_dup_why says which) for a collector
 * named twice, -EINVAL for another fault. */
static int parse_urls(struct vg_config *c, const char *v, size_t max)
{
	char list[VG_MAX_COLLECTORS][sizeof(c->agent_collectors[0])];
	char ukeys[VG_MAX_COLLECTORS][sizeof(c->agent_collectors[0]) + 64];
	size_t n = 0;

	for (const char *p = v;; p++) {
		size_t len;
		const char *end = list_item(p, &p, &len);
		if (!len || len >= sizeof(list[0]) || n >= max)
			return -EINVAL;
		memcpy(list[n], p, len);
		list[n][len] = '\0';
		if (check_nn_url(list[n]))
			return -EINVAL;
		url_key(list[n], ukeys[n], sizeof(ukeys[n]));
		for (size_t i = 0; i < n; i++)
			if (!strcmp(ukeys[i], ukeys[n])) {
				snprintf(g_dup_why, sizeof(g_dup_why),
					 "names one collector twice: '%.255s' is '%.255s' (host "
					 "names compare without case, ports as numbers)",
					 list[i], list[n]);
				return -EEXIST;
			}
		n++;
		if (!end)
			break;
		p = end;
	}
	memcpy(c->agent_collectors, list, n * sizeof(list[0]));
	c->agent_ncollectors = n;
	memcpy(c->agent_collector, list[0], sizeof(c->agent_collector));
	return 0;
}

/* The seconds in one unit of a configured duration (s, m, h, d, w), 0
 * for any other character. The API's durations (vg_duration_parse) also
 * take "min"; configuration and archive tiers do not. */
static unsigned unit_seconds(char u)
{
	switch (u) {
	case 's': return 1;
	case 'm': return 60;
	case 'h': return 3600;
	case 'd': return 86400;
	case 'w': return 7 * 86400;
	default: return 0;
	}
}

int vg_parse_duration(const char *s, double *seconds)
{
	char *end;
	double v, mul = 1;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		return -EINVAL;
	if (*end && (end[1] || !(mul = unit_seconds(*end))))
		return -EINVAL;
	*seconds = v * mul;
	return 0;
}

/* One duration of an archive tier, len bytes at s: a decimal integer and
 * one unit (s, m, h, d, w; none is seconds), into *sec. Nothing else:
 * vg_parse_duration's strtod also read "0x3cs" as 60 s and "1e1m" as
 * 10 min, tiers the operator never wrote. 0 or -EINVAL. */
static int tier_duration(const char *s, size_t len, uint64_t *sec)
{
	uint64_t v = 0, mul = 1;
	size_t i = 0;

	while (i < len && s[i] >= '0' && s[i] <= '9') {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > 100ull * 366 * 86400) /* above any bound: stop before it wraps */
			return -EINVAL;
		i++;
	}
	if (!i || len - i > 1)
		return -EINVAL;
	if (i < len && !(mul = unit_seconds(s[i])))
		return -EINVAL;
	*sec = v * mul;
	return 0;
}

int vg_config_archives_parse(const char *s, struct vg_archive *out, size_t max,
			     size_t *n, char *why, size_t whylen)
{
	struct vg_archive a[VG_MAX_ARCHIVES];
	char dummy[1];
	const char *prev = NULL;
	size_t k = 0, prevlen = 0;

	if (!why || !whylen)
		why = dummy, whylen = sizeof(dummy);
	if (max > VG_MAX_ARCHIVES)
		max = VG_MAX_ARCHIVES;
	if (!s || !*s) {
		snprintf(why, whylen, "has no tier");
		return -EINVAL;
	}
	if (strlen(s) > 255) {
		snprintf(why, whylen, "is longer than 255 bytes");
		return -EINVAL;
	}
	for (const char *p = s;; p++) {
		const char *end = strchr(p, ','), *colon;
		size_t len = end ? (size_t)(end - p) : strlen(p);
		uint64_t res, ret;

		while (len && *p == ' ')
			p++, len--;
		while (len && p[len - 1] == ' ')
			len--;
		/* an empty tier (",,", a trailing ',') is a tier lost in an
		 * edit, not one to skip */
		if (!len) {
			snprintf(why, whylen, "has an empty tier (tier %zu)", k + 1);
			return -EINVAL;
		}
		if (k == max) {
			snprintf(why, whylen, "has more than %zu tiers", max);
			return -EINVAL;
		}
		colon = memchr(p, ':', len);
		if (!colon) {
			snprintf(why, whylen, "has '%.*s', which is not RES:RETENTION", (int)len, p);
			return -EINVAL;
		}
		int bad_res = tier_duration(p, (size_t)(colon - p), &res) != 0;
		if (bad_res || tier_duration(colon + 1, len - (size_t)(colon - p) - 1, &ret)) {
			const char *t = bad_res ? p : colon + 1;
			size_t tl = bad_res ? (size_t)(colon - p) : len - (size_t)(colon - p) - 1;
			snprintf(why, whylen, "has '%.*s' in tier '%.*s', which is not a whole "
					      "number with a unit s, m, h, d or w (e.g. 1m, 15d)",
				 (int)tl, t, (int)len, p);
			return -EINVAL;
		}
		if (res < 1 || ret < res || ret > 100ull * 366 * 86400) {
			snprintf(why, whylen, "has tier '%.*s', %s", (int)len, p,
				 res < 1     ? "whose resolution is 0"
				 : ret < res ? "whose retention is shorter than its resolution"
					     : "whose retention is over 100 years");
			return -EINVAL;
		}
		a[k].resolution_s = (uint32_t)res;
		a[k].retention_s = (uint32_t)ret;
		if (k && a[k].resolution_s <= a[k - 1].resolution_s) {
			snprintf(why, whylen, "has tier '%.*s' after '%.*s': tiers go from "
					      "fine to coarse",
				 (int)len, p, (int)prevlen, prev);
			return -EINVAL;
		}
		/* a coarser tier keeping less than a finer one would never be
		 * read: the finer one answers every range it covers */
		if (k && a[k].retention_s < a[k - 1].retention_s) {
			snprintf(why, whylen, "has tier '%.*s' after '%.*s': a coarser tier "
					      "keeping less than a finer one would never be read",
				 (int)len, p, (int)prevlen, prev);
			return -EINVAL;
		}
		prev = p, prevlen = len;
		k++;
		if (!end)
			break;
		p = end;
	}
	memcpy(out, a, k * sizeof(a[0]));
	*n = k;
	return 0;
}

int vg_config_parse_archives(const char *s, struct vg_archive *out, size_t max,
			     size_t *n)
{
	return vg_config_archives_parse(s, out, max, n, NULL, 0);
}

/* Why the last archives_why refused a value; configuration is read by
 * one thread, but each its own. */
static _Thread_local char g_archives_why[512];

/* [storage] archives and every [archives] rule: one parser, one message
 * ("has '0x3cs' in tier ..., which is not ...; tiers are RES:RETENTION,
 * ..."). 0, or -EINVAL with *why set. */
static int archives_why(const char *value, struct vg_archive *out, size_t *n,
			const char **why)
{
	char w[384];

	if (!vg_config_archives_parse(value, out, VG_MAX_ARCHIVES, n, w, sizeof(w)))
		return 0;
	snprintf(g_archives_why, sizeof(g_archives_why),
		 "%s; must be RES:RETENTION[,RES:RETENTION...] from fine to coarse, "
		 "e.g. 1m:15d,5m:63d,1h:455d",
		 w);
	*why = g_archives_why;
	return -EINVAL;
}

/* [archives] PATTERN = RES:RETENTION,...: one rule, in file order. A
 * pattern given twice replaces its rule in place (so a later file or an
 * override changes it, never shadows it). */
static int apply_policy(struct vg_config *c, const char *pattern,
			const char *value, const char **why)
{
	struct vg_archive_policy p;
	size_t i;

	memset(&p, 0, sizeof(p));
	if (!*pattern || strlen(pattern) >= sizeof(p.pattern)) {
		*why = "pattern must be 1 to 127 bytes";
		return -EINVAL;
	}
	/* a pattern matches metric names, which hold no control or hidden
	 * character and are valid UTF-8 (vigie/name.h): a pattern with one
	 * (a tab or an escape pasted in) could never match anything */
	if (!vg_text_valid(pattern, sizeof(p.pattern) - 1)) {
		*why = "pattern must be UTF-8 without control characters, Unicode "
		       "bidirectional controls or invisible format characters (metric "
		       "names hold none)";
		return -EINVAL;
	}
	if (archives_why(value, p.archives, &p.narchives, why))
		return -EINVAL;
	memcpy(p.pattern, pattern, strlen(pattern) + 1);
	for (i = 0; i < c->npolicies; i++)
		if (!strcmp(c->policies[i].pattern, pattern))
			break;
	if (i == c->npolicies && c->npolicies == VG_MAX_POLICIES) {
		*why = "too many [archives] rules (32 at most)";
		return -EINVAL;
	}
	c->policies[i] = p;
	if (i == c->npolicies)
		c->npolicies++;
	return 0;
}

/* Apply one key=value. Returns 0, or -ENOENT for an unknown key, -EINVAL
 * for a bad value (with why filled). */
static int apply(struct vg_config *c, const char *section, const char *name,
		 const char *value, const char **why)
{
	const struct key *k = NULL;

	if (!strcmp(section, "archives"))
		return apply_policy(c, name, value, why);
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name))
			k = &keys[i];
	if (!k)
		return -ENOENT;
	void *dst = (char *)c + k->off;
	switch (k->type) {
	case K_STR:
		if (!*value) {
			*why = "must not be empty";
			return -EINVAL;
		}
		if (strlen(value) >= k->size) {
			*why = "is too long";
			return -EINVAL;
		}
		if ((*why = check_value(k, value)))
			return -EINVAL;
		memcpy(dst, value, strlen(value) + 1);
		return 0;
	case K_U32: {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(value, &end, 10);
		if (errno || end == value || *end || value[0] == '-' || v < k->min || v > k->max) {
			*why = "must be an integer in range";
			return -EINVAL;
		}
		*(uint32_t *)dst = (uint32_t)v;
		if (k->off == offsetof(struct vg_config, agent_ack_timeout_ms))
			c->agent_ack_timeout_set = 1;
		return 0;
	}
	case K_SECONDS: {
		double v;
		if (vg_parse_duration(value, &v) || v < k->min || v > k->max) {
			static __thread char msg[160];
			snprintf(msg, sizeof(msg), "must be a duration in seconds "
						   "(e.g. 10, 0.5, 1m) between %g and %g",
				 k->min, k->max);
			*why = msg;
			return -EINVAL;
		}
		*(double *)dst = v;
		return 0;
	}
	case K_LOGLEVEL: {
		int l = vg_log_level_parse(value);
		if (l < 0) {
			*why = "must be error, warn, info or debug";
			return -EINVAL;
		}
		*(int *)dst = l;
		return 0;
	}
	case K_BOOL:
		if (!strcmp(value, "true") || !strcmp(value, "yes") ||
		    !strcmp(value, "on") || !strcmp(value, "1")) {
			*(int *)dst = 1;
		} else if (!strcmp(value, "false") || !strcmp(value, "no") ||
			   !strcmp(value, "off") || !strcmp(value, "0")) {
			*(int *)dst = 0;
		} else {
			*why = "must be true or false";
			return -EINVAL;
		}
		return 0;
	case K_DURATION: {
		double v;
		if (vg_parse_duration(value, &v) || (v < k->min && !(v == 0 && k->size)) ||
		    v > k->max) {
			static __thread char msg[200];
			if (k->size && k->min > 0) /* keep_ended */
				snprintf(msg, sizeof(msg), "must be 0 (off) or a duration of %gh to "
							   "%.0f days, e.g. 90d (a plain number is seconds)",
					 k->min / 3600, k->max / 86400);
			else if (k->min > 0) /* no "off" (hold_max) */
				snprintf(msg, sizeof(msg), "must be a duration (e.g. 90, 10m, "
							   "1h, 7d) of %g s to %.0f days",
					 k->min, k->max / 86400);
			else
				snprintf(msg, sizeof(msg), "must be a duration (e.g. 0, 90, 10m, "
							   "1h, 7d) of at most %.0f days; 0 turns it off",
					 k->max / 86400);
			*why = msg;
			return -EINVAL;
		}
		*(double *)dst = v;
		return 0;
	}
	case K_EXEC: {
		size_t n = strlen(value);
		if (!exec_valid(value)) {
			*why = "must be NAME: /absolute/program [args] (NAME of letters, digits, _ . -)";
			return -EINVAL;
		}
		if (n >= sizeof(c->alarms_exec[0])) {
			*why = "is too long";
			return -EINVAL;
		}
		for (size_t i = 0; i < c->alarms_nexec; i++)
			if (!strncmp(c->alarms_exec[i], value,
				     (size_t)(strchr(value, ':') - value) + 1)) {
				*why = "names a command already configured";
				return -EINVAL;
			}
		if (c->alarms_nexec >= VG_MAX_EXEC) {
			*why = "too many exec commands (16 at most)";
			return -EINVAL;
		}
		memcpy(c->alarms_exec[c->alarms_nexec++], value, n + 1);
		return 0;
	}
	case K_URLS: {
		int rc = parse_urls(c, value, (size_t)k->max);
		if (rc == -EEXIST) {
			*why = g_dup_why;
			return -EINVAL;
		}
		if (rc) {
			*why = k->max == 1 ? "must be one nanomsg address, tcp://HOST:PORT "
					     "(several: use collectors)"
					   : "must be 1 to 16 nanomsg addresses (tcp://HOST:PORT) "
					     "separated by commas, each once";
			return -EINVAL;
		}
		return 0;
	}
	case K_ARCHIVES:
		return archives_why(value, c->archives, &c->narchives, why) ? -EINVAL : 0;
	}
	return -EINVAL;
}

struct parse_ctx {
	struct vg_config *c;
	const char *name;
	char *err;
	size_t errlen;
};

/* s with its control characters (C0, DEL) as \xNN, into buf (size
 * bytes, truncated): an error message echoes what the file holds, and a
 * raw escape sequence would reach the terminal. Returns buf. */
static const char *printable(const char *s, char *buf, size_t size)
{
	size_t o = 0;

	for (; *s && o + 5 <= size; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < 0x20 || ch == 0x7f)
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", ch);
		else
			buf[o++] = (char)ch;
	}
	buf[o] = '\0';
	return buf;
}

/* One key = value: 0 to go on, -EINVAL to stop (p->err set). */
static int handler(void *ud, const char *section, const char *name,
		   const char *value, int line)
{
	struct parse_ctx *p = ud;
	const char *why = NULL;
	int rc = apply(p->c, section, name, value, &why);

	/* the key and value as the message shows them: a control
	 * character (a tab, an escape sequence) written \xNN */
	char sname[4 * VG_POLICY_PATTERN_MAX], svalue[1024];
	name = printable(name, sname, sizeof(sname));
	value = printable(value, svalue, sizeof(svalue));
	if (rc == -ENOENT) {
		int known_section = 0;
		for (size_t i = 0; i < NKEYS; i++)
			if (!strcmp(keys[i].section, section))
				known_section = 1;
		if (!section[0])
			snprintf(p->err, p->errlen, "%s:%d: key '%s' outside any section",
				 p->name, line, name);
		else if (!known_section)
			snprintf(p->err, p->errlen, "%s:%d: unknown section [%s] (key '%s')",
				 p->name, line, section, name);
		else
			snprintf(p->err, p->errlen, "%s:%d: [%s] %s: unknown key",
				 p->name, line, section, name);
		return -EINVAL;
	}
	if (rc) {
		/* a refused [state] url may hold a password: not echoed */
		int secret = !strcmp(section, "state") && !strcmp(name, "url");
		snprintf(p->err, p->errlen, "%s:%d: [%s] %s: '%s' %s", p->name, line,
			 section, name, secret ? "(not shown)" : value, why);
		return -EINVAL;
	}
	return 0;
}

struct ini_reader {
	FILE *f;
	const char *text;
	int line;
};

/* The next line without its '\n' into buf (size bytes): 1, 0 at the end,
 * -E2BIG for a line of size bytes or more (read to its end, so the count
 * of lines stays true), -EILSEQ for a NUL byte, -EIO for a read error. */
static int next_line(struct ini_reader *r, char *buf, size_t size)
{
	size_t n = 0;
	int ch, any = 0, over = 0, nul = 0;

	for (;;) {
		if (r->f)
			ch = getc(r->f);
		else
			ch = *r->text ? (unsigned char)*r->text++ : EOF;
		if (ch == EOF)
			break;
		any = 1;
		if (ch == '\n')
			break;
		if (ch == '\0')
			nul = 1;
		if (n + 1 < size)
			buf[n++] = (char)ch;
		else
			over = 1;
	}
	buf[n] = '\0';
	if (r->f && ferror(r->f))
		return -EIO;
	if (!any)
		return 0;
	r->line++;
	return over ? -E2BIG : nul ? -EILSEQ
				   : 1;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int vg_ini_parse(FILE *f, const char *text, vg_ini_fn on, void *ud, int *line,
		 char *why, size_t whylen)
{
	struct ini_reader r = {.f = f, .text = text ? text : ""};
	char *buf = malloc(VG_INI_LINE_MAX), section[128] = "";
	int rc;

	*line = 0;
	if (whylen)
		why[0] = '\0'; /* stays empty when on() stops the parse */
	if (!buf)
		return -ENOMEM;
	while ((rc = next_line(&r, buf, VG_INI_LINE_MAX)) != 0) {
		char *s = buf, *eq, *key;

		*line = r.line;
		if (rc == -E2BIG) {
			snprintf(why, whylen, "line longer than %d bytes", VG_INI_LINE_MAX - 1);
			rc = -EINVAL;
			break;
		}
		if (rc == -EILSEQ) {
			snprintf(why, whylen, "NUL byte in the line");
			rc = -EINVAL;
			break;
		}
		if (rc == -EIO) {
			snprintf(why, whylen, "cannot read: %s", strerror(EIO));
			break;
		}
		if (r.line == 1 && !strncmp(s, "\xef\xbb\xbf", 3))
			s += 3;
		s = trim(s);
		if (!*s || *s == ';' || *s == '#')
			continue;
		for (char *q = s + 1; *q; q++) /* an inline comment: ';' after a blank */
			if (*q == ';' && isspace((unsigned char)q[-1])) {
				*q = '\0';
				s = trim(s);
				break;
			}
		rc = -EINVAL; /* unless a section or a key follows */
		if (*s == '[') {
			char *end = strchr(s, ']');
			if (!end || (size_t)(end - s - 1) >= sizeof(section))
				goto syntax;
			*end = '\0';
			memcpy(section, s + 1, (size_t)(end - s));
			continue;
		}
		eq = strpbrk(s, "=:");
		if (!eq || eq == s)
			goto syntax;
		*eq = '\0';
		key = trim(s);
		if ((rc = on(ud, section, key, trim(eq + 1), r.line)) != 0)
			break;
	}
	free(buf);
	return rc;
syntax:
	snprintf(why, whylen, "syntax error (expected [section] or key = value)");
	free(buf);
	return -EINVAL;
}

static int parse(struct parse_ctx *p, FILE *f, const char *text)
{
	char why[128];
	int line, rc = vg_ini_parse(f, text, handler, p, &line, why, sizeof(why));

	if (rc == -ENOMEM)
		snprintf(p->err, p->errlen, "%s: cannot parse (out of memory)", p->name);
	else if (rc == -EIO)
		snprintf(p->err, p->errlen, "%s: %s", p->name, why);
	else if (rc && why[0]) /* not the handler's: it wrote p->err */
		snprintf(p->err, p->errlen, "%s:%d: %s", p->name, line, why);
	return rc;
}

int vg_config_load(struct vg_config *c, const char *path, char *err, size_t errlen)
{
	struct parse_ctx p = {.c = c, .name = path, .err = err, .errlen = errlen};

	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
		return -e;
	}
	int rc = parse(&p, f, NULL);
	fclose(f);
	return rc;
}

int vg_config_load_string(struct vg_config *c, const char *text, const char *name,
			  char *err, size_t errlen)
{
	struct parse_ctx p = {.c = c, .name = name, .err = err, .errlen = errlen};
	return parse(&p, NULL, text);
}

static int tiers_fit_step(const struct vg_archive *a, size_t n, uint32_t step_s,
			  const char *what, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++)
		if (a[i].resolution_s % step_s) {
			snprintf(err, errlen,
				 "%s: tier %us:%us: its resolution is not a multiple of "
				 "[storage] step (%u s)",
				 what, a[i].resolution_s, a[i].retention_s, step_s);
			return -EINVAL;
		}
	return 0;
}

/* What the stream's keys need besides their files: a stream (in a
 * cluster: [state] url set, which check_state_url makes PostgreSQL) runs
 * signed unless stream_insecure says otherwise, and a key accepted
 * besides the signing one needs a signing one. */
static int stream_keys_present(const struct vg_config *c, char *err, size_t errlen)
{
	if (!c->cluster_stream[0] || !c->state_url[0])
		return 0;
	if (!c->cluster_stream_key_file[0] && c->cluster_stream_accept_key_file[0]) {
		snprintf(err, errlen,
			 "[cluster] stream_accept_key_file is set without [cluster] "
			 "stream_key_file: a key is accepted besides the one this "
			 "collector signs with, which is missing");
		return -EINVAL;
	}
	if (!c->cluster_stream_key_file[0] && !c->cluster_stream_insecure) {
		snprintf(err, errlen,
			 "[cluster] stream %s is set without [cluster] "
			 "stream_key_file: the metric stream would be unsigned (anyone "
			 "on the collectors' network could feed the alarms); give every "
			 "collector the same key (openssl rand -hex 32 > "
			 "/etc/vigie/cluster.key; chmod 600), or set stream_insecure = "
			 "yes to run it unsigned",
			 c->cluster_stream);
		return -EINVAL;
	}
	return 0;
}

int vg_config_stream_keys(const struct vg_config *c, struct vg_key *sign,
			  struct vg_key *accept, char *err, size_t errlen)
{
	char why[512];
	int rc;

	memset(sign, 0, sizeof(*sign));
	memset(accept, 0, sizeof(*accept));
	if ((rc = stream_keys_present(c, err, errlen)))
		return rc;
	if (!c->cluster_stream[0] || !c->state_url[0] || !c->cluster_stream_key_file[0])
		return 0;
	if ((rc = vg_sign_key_load(c->cluster_stream_key_file, sign, why, sizeof(why)))) {
		snprintf(err, errlen, "[cluster] stream_key_file: %s", why);
		return rc;
	}
	if (!c->cluster_stream_accept_key_file[0] ||
	    (access(c->cluster_stream_accept_key_file, F_OK) == -1 && errno == ENOENT))
		return 0;
	if ((rc = vg_sign_key_load(c->cluster_stream_accept_key_file, accept, why,
				   sizeof(why)))) {
		snprintf(err, errlen, "[cluster] stream_accept_key_file: %s", why);
		vg_sign_key_wipe(sign);
		return rc;
	}
	return 0;
}

/* [storage] key (a heartbeat of hb seconds) against the step: -EINVAL,
 * why in err, when it is shorter (why: what that does, "" or ending in
 * "; "; it: how the advice names the key; dflt: its default). */
static int heartbeat_fits_step(const char *key, double hb, unsigned step, const char *why,
			       const char *it, const char *dflt, char *err, size_t errlen)
{
	if (hb >= step)
		return 0;
	snprintf(err, errlen,
		 "[storage] %s (%.0f s) is shorter than [storage] step (%u s): %sset %s to "
		 "at least the step (%s by default)",
		 key, hb, step, why, it, dflt);
	return -EINVAL;
}

int vg_config_check(const struct vg_config *c, char *err, size_t errlen)
{
	char what[VG_POLICY_PATTERN_MAX + 16];

	/* more than the workers is no cap at all (the keys in any order) */
	if (c->collector_http_max_per_project > c->collector_http_threads) {
		snprintf(err, errlen,
			 "[collector] http_max_concurrent_per_project: %u is more than "
			 "[collector] http_threads (%u): one project could take every "
			 "worker; use at most %u, or 0 for http_threads - 1",
			 c->collector_http_max_per_project, c->collector_http_threads,
			 c->collector_http_threads);
		return -EINVAL;
	}
	if (stream_keys_present(c, err, errlen))
		return -EINVAL;
	if (!c->storage_step_s) /* the key's bounds refuse 0 */
		return 0;
	/* the store refused these only once the data directory existed
	 * (exit 1, "bad step, heartbeat or archives", no key named) */
	if (heartbeat_fits_step("heartbeat", c->storage_heartbeat_s, c->storage_step_s,
				"every point would be unknown; ", "heartbeat", "600 s", err, errlen) ||
	    heartbeat_fits_step("publish_heartbeat", c->storage_publish_heartbeat_s,
				c->storage_step_s, "", "it", "2d", err, errlen))
		return -EINVAL;
	if (tiers_fit_step(c->archives, c->narchives, c->storage_step_s,
			   "[storage] archives", err, errlen))
		return -EINVAL;
	for (size_t i = 0; i < c->npolicies; i++) {
		snprintf(what, sizeof(what), "[archives] %s", c->policies[i].pattern);
		if (tiers_fit_step(c->policies[i].archives, c->policies[i].narchives,
				   c->storage_step_s, what, err, errlen))
			return -EINVAL;
	}
	return 0;
}

int vg_config_set(struct vg_config *c, const char *section, const char *key,
		  const char *value, char *err, size_t errlen)
{
	const char *why = NULL;
	int rc = apply(c, section, key, value, &why);
	char skey[4 * VG_POLICY_PATTERN_MAX], svalue[1024];

	key = printable(key, skey, sizeof(skey));
	value = printable(value, svalue, sizeof(svalue));
	if (rc == -ENOENT) {
		snprintf(err, errlen, "[%s] %s: unknown key", section, key);
		return -EINVAL;
	}
	if (rc)
		snprintf(err, errlen, "[%s] %s: '%s' %s", section, key, value, why);
	return rc;
}
