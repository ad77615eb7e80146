/*
 * config_test.c — the shared INI config: defaults, every key type, and
 * errors that name the file, line and key.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cmocka.h>

#include "vigie/config.h"
#include "vigie/sign.h"
#include "vigie/log.h"

static void test_defaults(void **state)
{
	struct vg_config c;
	vg_config_defaults(&c);
	assert_string_equal(c.agent_libvirt, "qemu:///system");
	assert_string_equal(c.collector_listen, "tcp://*:7470");
	assert_string_equal(c.collector_http, "127.0.0.1:7480");
	assert_int_equal(c.storage_step_s, 60);
	assert_int_equal(c.narchives, 3);
	assert_int_equal(c.archives[0].resolution_s, 60);
	assert_int_equal(c.archives[0].retention_s, 15 * 86400);
	assert_int_equal(c.archives[1].resolution_s, 300);
	assert_int_equal(c.archives[1].retention_s, 63 * 86400);
	assert_int_equal(c.archives[2].resolution_s, 3600);
	assert_int_equal(c.archives[2].retention_s, 455 * 86400);
	assert_true(c.agent_host[0] != '\0');
	assert_int_equal(c.storage_cache_values, 8u << 20);
	assert_int_equal(c.storage_flush_depth, 64);
	assert_int_equal(c.agent_host_fs, 1);
	assert_string_equal(c.agent_host_fs_include, "");
	assert_int_equal(c.agent_guest_fs_polls, 6);
	assert_int_equal(c.agent_guest_agent_retry_polls, 60);
	/* the ack timeout is a default, and says so (the collector warns) */
	assert_int_equal(c.agent_ack_timeout_ms, 5000);
	assert_int_equal(c.agent_ack_timeout_set, 0);
	char err[256] = "";
	assert_int_equal(vg_config_load_string(&c, "[agent]\ninterval = 5\n", "t.conf",
					       err, sizeof(err)),
			 0);
	assert_int_equal(c.agent_ack_timeout_set, 0);
	assert_int_equal(vg_config_set(&c, "agent", "ack_timeout_ms", "2000", err,
				       sizeof(err)),
			 0);
	assert_int_equal(c.agent_ack_timeout_ms, 2000);
	assert_int_equal(c.agent_ack_timeout_set, 1);
}

/* [storage] publish_heartbeat: 2 days by default, a duration, at least 2 s
 * (the store then checks it against the step) */
static void test_publish_heartbeat(void **state)
{
	(void)state;
	struct vg_config c;
	char err[256] = "";
	vg_config_defaults(&c);
	assert_true(c.storage_publish_heartbeat_s == 2 * 86400.0);
	assert_int_equal(c.storage_heartbeat_s, 600);
	assert_int_equal(vg_config_load_string(&c, "[storage]\npublish_heartbeat = 1d\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_true(c.storage_publish_heartbeat_s == 86400.0);
	assert_int_equal(vg_config_load_string(&c, "[storage]\npublish_heartbeat = 1\n",
					       "t.conf", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "publish_heartbeat"));
}

/* the agent's keys for file systems and the guest agent's schedule */
static void test_fs_keys(void **state)
{
	struct vg_config c;
	char err[256] = "";

	(void)state;
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c,
					       "[agent]\nhost_fs = false\nhost_fs_include = /,/var/lib/nova/*\n"
					       "host_fs_exclude = vfat\nguest_fs_polls = 0\nguest_agent_retry_polls = 600\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_int_equal(c.agent_host_fs, 0);
	assert_string_equal(c.agent_host_fs_include, "/,/var/lib/nova/*");
	assert_string_equal(c.agent_host_fs_exclude, "vfat");
	assert_int_equal(c.agent_guest_fs_polls, 0);
	assert_int_equal(c.agent_guest_agent_retry_polls, 600);
	/* a retry schedule of 0 polls would ask a guest without an agent on
	 * every poll: refused, naming the key */
	assert_int_equal(vg_config_load_string(&c, "[agent]\nguest_agent_retry_polls = 0\n",
					       "t.conf", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "guest_agent_retry_polls"));
}

/* [state]: unset by default (sqlite files); both forms of a libpq
 * string survive the INI parser whole (a conninfo holds '=' and ' '). */
static void test_state(void **state)
{
	struct vg_config c;
	char err[256] = "";

	vg_config_defaults(&c);
	assert_string_equal(c.state_url, "");
	assert_string_equal(c.state_token_key, "");
	assert_int_equal(vg_config_load_string(&c,
					       "[state]\n"
					       "url = host=db1,db2 port=5432 dbname=vigie target_session_attrs=read-write\n"
					       "token_key = /etc/vigie/tokens.key\n",
					       "s.conf", err, sizeof(err)),
			 0);
	assert_string_equal(c.state_url,
			    "host=db1,db2 port=5432 dbname=vigie target_session_attrs=read-write");
	assert_string_equal(c.state_token_key, "/etc/vigie/tokens.key");
	assert_int_equal(vg_config_load_string(&c,
					       "[state]\nurl = postgresql://vigie@db:5432/vigie?sslmode=require\n",
					       "s.conf", err, sizeof(err)),
			 0);
	assert_string_equal(c.state_url, "postgresql://vigie@db:5432/vigie?sslmode=require");
	assert_int_equal(vg_config_load_string(&c, "[state]\nuri = x\n", "s.conf", err,
					       sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "uri"));
}

static void test_full_file(void **state)
{
	struct vg_config c;
	char err[256] = "";
	const char *text =
		"; comment\n"
		"[agent]\n"
		"collector = tcp://10.0.0.1:7470\n"
		"interval = 0.5\n"
		"spool_max_batches = 50\n"
		"\n[collector]\n"
		"data_dir = /srv/vigie\n"
		"http_threads = 8\n"
		"[storage]\n"
		"archives = 1m:1d,1h:30d\n"
		"cache_values = 100000\n"
		"flush_depth = 16\n"
		"[log]\n"
		"level = debug\n";
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, text, "t.conf", err, sizeof(err)), 0);
	assert_string_equal(c.agent_collector, "tcp://10.0.0.1:7470");
	assert_true(c.agent_interval_s == 0.5);
	assert_int_equal(c.agent_spool_max_batches, 50);
	assert_string_equal(c.collector_data_dir, "/srv/vigie");
	assert_int_equal(c.collector_http_threads, 8);
	assert_int_equal(c.narchives, 2);
	assert_int_equal(c.archives[1].retention_s, 30 * 86400);
	assert_int_equal(c.storage_cache_values, 100000);
	assert_int_equal(c.storage_flush_depth, 16);
	assert_int_equal(c.log_level, VG_LOG_DEBUG);
}

static void expect_error(const char *text, const char *msg)
{
	struct vg_config c;
	char err[256] = "";
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, text, "x.conf", err, sizeof(err)), -EINVAL);
	if (!strstr(err, msg))
		fail_msg("error '%s' does not contain '%s'", err, msg);
}

/* [storage] daemons: a host's trailing dot and a socket path's "..",
 * symlinks or both are spellings of one daemon too. The socket's
 * directory is resolved when it exists (the kernel's ".." after a
 * symlink), folded lexically when not. */
static void test_daemons_same_spelled_otherwise(void **state)
{
	char d[] = "/tmp/vgcfg.XXXXXX", p[512], t[1024];
	struct vg_config c;
	char err[256];

	expect_error("[storage]\ndaemons = h1.,h1\n", "'h1.' is 'h1'");
	expect_error("[storage]\ndaemons = H1.:42217,h1\n", "one daemon twice");
	expect_error("[storage]\ndaemons = unix:/nonexistent-vg/x/../a.sock,/nonexistent-vg/a.sock\n",
		     "one daemon twice");
	expect_error("[storage]\ndaemons = /nonexistent-vg/x/y/../../a.sock,/nonexistent-vg/./a.sock\n",
		     "one daemon twice");
	expect_error("[storage]\ndaemons = /../a.sock,/a.sock\n", "one daemon twice");

	assert_non_null(mkdtemp(d));
	snprintf(p, sizeof(p), "%s/real", d);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/real/sub", d);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/link", d);
	assert_int_equal(symlink("real", p), 0);
	snprintf(p, sizeof(p), "%s/deep", d);
	assert_int_equal(symlink("real/sub", p), 0);
	snprintf(t, sizeof(t), "[storage]\ndaemons = %s/link/r.sock,unix:%s/real/r.sock\n", d, d);
	expect_error(t, "one daemon twice");
	/* deep/.. is real/sub/.. = real, not d */
	snprintf(t, sizeof(t), "[storage]\ndaemons = %s/deep/../r.sock,%s/real/r.sock\n", d, d);
	expect_error(t, "one daemon twice");
	snprintf(t, sizeof(t), "[storage]\ndaemons = %s/deep/../r.sock,%s/r.sock\n", d, d);
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, t, "t.conf", err, sizeof(err)), 0);
	/* other hosts and sockets stay other daemons */
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, "[storage]\ndaemons = h1.,h2,/run/a/../b.sock,/run/a.sock\n",
					       "t.conf", err, sizeof(err)),
			 0);
	snprintf(p, sizeof(p), "%s/deep", d);
	unlink(p);
	snprintf(p, sizeof(p), "%s/link", d);
	unlink(p);
	snprintf(p, sizeof(p), "%s/real/sub", d);
	rmdir(p);
	snprintf(p, sizeof(p), "%s/real", d);
	rmdir(p);
	rmdir(d);
}

static void test_errors_name_file_line_key(void **state)
{
	expect_error("[agent]\ninterval = 1\nintervall = 2\n", "x.conf:3: [agent] intervall: unknown key");
	expect_error("[agent]\n\ninterval = fast\n", "x.conf:3: [agent] interval: 'fast'");
	expect_error("[agent]\ninterval = 0\n", "x.conf:2: [agent] interval");
	expect_error("[agent]\ninterval = -1\n", "x.conf:2:");
	expect_error("[collector]\nhttp_threads = 99999\n", "x.conf:2: [collector] http_threads");
	expect_error("[collector]\nhttp_threads = 4x\n", "x.conf:2: [collector] http_threads");
	expect_error("[bogus]\na = 1\n", "x.conf:2: unknown section [bogus]");
	expect_error("a = 1\n", "x.conf:1: key 'a' outside any section");
	expect_error("[agent\n", "x.conf:1: syntax error");
	expect_error("[storage]\narchives = 5m:1d,1m:1d\n", "[storage] archives");
	expect_error("[log]\nlevel = loud\n", "[log] level");
	expect_error("[storage]\nflush_depth = 257\n", "x.conf:2: [storage] flush_depth");
	expect_error("[storage]\ncache_values = 10\n", "x.conf:2: [storage] cache_values");
}

/* [agent] collectors: a list; collector: a list of one; the last wins. */
static void test_collectors(void **state)
{
	struct vg_config c;
	char err[256] = "";

	vg_config_defaults(&c);
	assert_int_equal(c.agent_ncollectors, 1);
	assert_string_equal(c.agent_collectors[0], "tcp://127.0.0.1:7470");
	assert_int_equal(c.agent_probe_interval_ms, 10000);
	assert_int_equal(vg_config_load_string(&c,
					       "[agent]\ncollectors = tcp://c1:7470,tcp://c2:7470 ,\ttcp://c3:7470\n"
					       "probe_interval_ms = 2500\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_int_equal(c.agent_ncollectors, 3);
	assert_string_equal(c.agent_collectors[0], "tcp://c1:7470");
	assert_string_equal(c.agent_collectors[1], "tcp://c2:7470");
	assert_string_equal(c.agent_collectors[2], "tcp://c3:7470");
	assert_string_equal(c.agent_collector, "tcp://c1:7470");
	assert_int_equal(c.agent_probe_interval_ms, 2500);
	/* the single key (and so --collector) replaces the list */
	assert_int_equal(vg_config_set(&c, "agent", "collector", "tcp://c9:7470",
				       err, sizeof(err)),
			 0);
	assert_int_equal(c.agent_ncollectors, 1);
	assert_string_equal(c.agent_collectors[0], "tcp://c9:7470");
	/* a bad list leaves the configuration as it was */
	assert_int_equal(vg_config_set(&c, "agent", "collectors", "tcp://a:1,,tcp://b:1",
				       err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(c.agent_ncollectors, 1);
	assert_string_equal(c.agent_collectors[0], "tcp://c9:7470");
	expect_error("[agent]\ncollectors = tcp://a:1, tcp://a:1\n", "x.conf:2: [agent] collectors");
	/* one collector spelt twice is refused, saying which: two sockets
	 * to it would make it primary and secondary of the same hosts */
	expect_error("[agent]\ncollectors = tcp://a:01, tcp://a:1\n",
		     "x.conf:2: [agent] collectors: 'tcp://a:01, tcp://a:1' names one collector "
		     "twice: 'tcp://a:01' is 'tcp://a:1'");
	expect_error("[agent]\ncollectors = tcp://Coll-A.Example:7470,tcp://b:1,tcp://coll-a.example:7470\n",
		     "'tcp://Coll-A.Example:7470' is 'tcp://coll-a.example:7470'");
	expect_error("[agent]\ncollectors = tcp://[::1]:7470, tcp://[0:0::1]:07470\n",
		     "names one collector twice");
	expect_error("[agent]\ncollectors = ws://A:80/x, ws://a:80/x\n", "names one collector twice");
	expect_error("[agent]\ncollectors = tcp://eth0;A:1, tcp://eth0;a:1\n",
		     "names one collector twice");
	/* ... but different ports, paths, interfaces or sockets are not one */
	assert_int_equal(vg_config_load_string(&c,
					       "[agent]\ncollectors = tcp://a:1, tcp://a:2, ws://a:1/x, "
					       "ws://a:1/X, tcp://eth0;a:1, tcp://eth1;a:1, "
					       "ipc:///tmp/A, ipc:///tmp/a, tcp://[::1]:1, tcp://[::2]:1\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_int_equal(c.agent_ncollectors, 10);
	assert_string_equal(c.agent_collectors[1], "tcp://a:2"); /* as written */
	expect_error("[agent]\ncollector = tcp://a:1, tcp://b:1\n", "use collectors");
	expect_error("[agent]\ncollectors = 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17\n",
		     "1 to 16");
	expect_error("[agent]\nprobe_interval_ms = 5\n", "[agent] probe_interval_ms");
	/* how long a stop may take to deliver the spool */
	vg_config_defaults(&c);
	assert_int_equal(c.agent_drain_ms, 2000);
	assert_int_equal(vg_config_load_string(&c, "[agent]\ndrain_ms = 300000\n", "t.conf",
					       err, sizeof(err)),
			 0);
	assert_int_equal(c.agent_drain_ms, 300000);
	expect_error("[agent]\ndrain_ms = 3600001\n", "[agent] drain_ms");
}

static void test_file_missing(void **state)
{
	struct vg_config c;
	char err[256] = "";
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load(&c, "/nonexistent/vigie.conf", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/vigie.conf"));
}

static void test_file_on_disk_and_override(void **state)
{
	struct vg_config c;
	char err[256] = "", path[] = "/tmp/vigie-config-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fputs("[agent]\nlibvirt = test:///default\n", f);
	fclose(f);
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load(&c, path, err, sizeof(err)), 0);
	assert_string_equal(c.agent_libvirt, "test:///default");
	assert_int_equal(vg_config_set(&c, "agent", "libvirt", "qemu:///session", err, sizeof(err)), 0);
	assert_string_equal(c.agent_libvirt, "qemu:///session");
	assert_int_equal(vg_config_set(&c, "agent", "nope", "1", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "nope"));
	remove(path);
}

/* Lines of any length up to the parser's bound: a [state] url holds up to
 * 1023 bytes (a libpq conninfo with certificates' paths is often over 200),
 * so a long line is read whole, never cut into a second "line" that parses
 * as something else (once: the tail after 199 bytes, beginning with a space,
 * silently replaced the key's value); a line beyond the bound and a
 * section's syntax error are refused on their own line. */
static void test_long_lines(void **state)
{
	struct vg_config c;
	char err[256] = "", text[2048], url[1000], path[] = "/tmp/vigie-config-test-XXXXXX";
	int fd;
	FILE *f;

	(void)state;
	/* host=/run/postgresql dbname=vigie ... padded to 900 bytes with
	 * spaces and key=value pairs, the last one after byte 199 */
	snprintf(url, sizeof(url), "host=/run/postgresql port=5432 user=vigie dbname=vigie");
	while (strlen(url) < 880)
		strcat(url, " sslmode=disable");
	strcat(url, " application_name=x");
	snprintf(text, sizeof(text), "[state]\nurl = %s\n[collector]\nhttp_threads = 7\n", url);
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, text, "t.conf", err, sizeof(err)), 0);
	assert_string_equal(c.state_url, url);
	assert_int_equal(c.collector_http_threads, 7);
	/* the same from a file on disk */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load(&c, path, err, sizeof(err)), 0);
	assert_string_equal(c.state_url, url);
	assert_int_equal(c.collector_http_threads, 7);
	/* a 212-byte line whose byte 200 is a space: its tail is not a value */
	snprintf(text, sizeof(text), "[collector]\ndata_dir = /srv/%0188d /srv/elsewhere\n", 0);
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, text, "t.conf", err, sizeof(err)), 0);
	assert_non_null(strstr(c.collector_data_dir, "/srv/elsewhere"));
	assert_true(strlen(c.collector_data_dir) > 200);
	remove(path);
	/* too long for its key: named on its own line */
	snprintf(text, sizeof(text), "[collector]\nhttp_threads = 4\ndata_dir = /%0600d\nhttp_threads = 5\n", 0);
	expect_error(text, "x.conf:3: [collector] data_dir: '/0000");
	/* beyond what any key holds: refused on its line, not read on */
	char *huge = calloc(1, 6000);
	assert_non_null(huge);
	strcpy(huge, "[collector]\n\ndata_dir = /");
	memset(huge + strlen(huge), 'a', 5000);
	strcat(huge, "\n[nosuch]\n");
	expect_error(huge, "x.conf:3: line longer than 4095 bytes");
	free(huge);
	/* an unclosed section header is the error, not the key after it */
	expect_error("[collector\nhttp_threads = 4\n", "x.conf:1: syntax error");
	/* an indented line is a key of its own, never a continuation that
	 * replaces the previous key's value */
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, "[collector]\nhttp_threads = 4\n  data_dir = /srv/x\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_int_equal(c.collector_http_threads, 4);
	assert_string_equal(c.collector_data_dir, "/srv/x");
	expect_error("[collector]\nhttp_threads = 4\n  8\n", "x.conf:3: syntax error");
	/* comments, a BOM, inline ';' comments, and ':' as inih took it */
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, "\xef\xbb\xbf# c\n[collector]\n ; c\nhttp_threads = 6 ; six\n"
						   "data_dir: /srv/y\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_int_equal(c.collector_http_threads, 6);
	assert_string_equal(c.collector_data_dir, "/srv/y");
	/* a NUL byte in a file is refused with its line */
	strcpy(path, "/tmp/vigie-config-test-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "[collector]\nhttp_threads = 4\0 5\n", 32), 32);
	close(fd);
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load(&c, path, err, sizeof(err)), -EINVAL);
	if (!strstr(err, ":2: NUL byte"))
		fail_msg("error '%s'", err);
	remove(path);
}

/* Values the collector could only refuse once half started (exit 1,
 * after log lines, without the file or line) are refused by the parser,
 * naming file, line and key: addresses, the storage backend and its
 * write-through mode, the Alertmanager's URL. */
static void test_values_checked_at_parse(void **state)
{
	struct vg_config c;
	char err[256] = "";

	(void)state;
	expect_error("[collector]\nlisten = http://x:1\n", "x.conf:2: [collector] listen: 'http://x:1'");
	expect_error("[collector]\nlisten = tcp://127.0.0.1:99999\n", "x.conf:2: [collector] listen");
	expect_error("[collector]\nlisten = tcp://127.0.0.1\n", "x.conf:2: [collector] listen");
	expect_error("[collector]\nlisten = garbage\n", "x.conf:2: [collector] listen");
	expect_error("[collector]\nlisten = ipc://\n", "x.conf:2: [collector] listen");
	expect_error("[alarms]\nnotify = tcp://*:x\n", "x.conf:2: [alarms] notify");
	expect_error("[agent]\ncollectors = tcp://a:1, udp://b:2\n", "x.conf:2: [agent] collectors");
	expect_error("[agent]\ncollector = tcp://a:0\n", "x.conf:2: [agent] collector");
	expect_error("[storage]\nbackend = bogus\n", "x.conf:2: [storage] backend: 'bogus'");
	expect_error("[storage]\nwrite_through = maybe\n", "x.conf:2: [storage] write_through: 'maybe'");
	expect_error("[storage]\nverify_writes = maybe\n",
		     "x.conf:2: [storage] verify_writes: 'maybe' must be yes or no");
	expect_error("[storage]\nverify_writes = true\n", "x.conf:2: [storage] verify_writes: 'true'");
	expect_error("[alarms]\nalertmanager = ftp://am:9093\n", "x.conf:2: [alarms] alertmanager");
	expect_error("[alarms]\nalertmanager = http://\n", "x.conf:2: [alarms] alertmanager");
	/* a '#' after a value is not a comment: the stream address would be
	 * refused only by a half-started collector, naming no line */
	expect_error("[cluster]\nstream = tcp://*:7472   # peers subscribe here\n",
		     "x.conf:2: [cluster] stream");
	expect_error("[cluster]\nstream = tcp://*\n", "x.conf:2: [cluster] stream");
	/* [state] url: PostgreSQL only; anything else was an sqlite path
	 * each module read its own way. A refused one is not echoed (it may
	 * hold a password). */
	expect_error("[state]\nurl = postgresq://u:pw@db/vigie\n",
		     "x.conf:2: [state] url: '(not shown)' must be a PostgreSQL URL");
	expect_error("[state]\nurl = host:db1\n", "x.conf:2: [state] url");
	expect_error("[state]\nurl = /var/lib/vigie/state.db\n", "x.conf:2: [state] url");
	expect_error("[state]\nurl = sqlite:/var/lib/vigie/state.db\n", "x.conf:2: [state] url");
	/* [storage] daemons: each address well formed, none empty, each once */
	expect_error("[storage]\ndaemons = 127.0.0.1:99999\n",
		     "x.conf:2: [storage] daemons: '127.0.0.1:99999' has '127.0.0.1:99999', which must be");
	expect_error("[storage]\ndaemons = unix:\n", "x.conf:2: [storage] daemons");
	expect_error("[storage]\ndaemons = unix:run/rrdcached.sock\n", "x.conf:2: [storage] daemons");
	expect_error("[storage]\ndaemons = s1:42217,,s2:42217\n", "has an empty entry");
	expect_error("[storage]\ndaemons = s1:42217, \n", "has an empty entry");
	expect_error("[storage]\ndaemons = s1:, s2\n", "has 's1:', which");
	expect_error("[storage]\ndaemons = [::1:42217\n", "has '[::1:42217', which");
	expect_error("[storage]\ndaemons = s1:42217, s1:42217\n", "lists 's1:42217' twice");
	/* two spellings of one daemon: the default port, the host's case, a
	 * port with a leading zero, a path with "//" or "/./" */
	expect_error("[storage]\ndaemons = h1:42217,h1\n", "'h1:42217' is 'h1'");
	expect_error("[storage]\ndaemons = H1:42217,h1:42217\n", "'H1:42217' is 'h1:42217'");
	expect_error("[storage]\ndaemons = 127.0.0.1:42217,127.0.0.1:042217\n",
		     "'127.0.0.1:42217' is '127.0.0.1:042217'");
	expect_error("[storage]\ndaemons = [::1],[0:0::1]:42217\n", "one daemon twice");
	expect_error("[storage]\ndaemons = ::1,[::1]:42217\n", "one daemon twice");
	expect_error("[storage]\ndaemons = unix:/tmp/a.sock,unix:/tmp//a.sock\n",
		     "'unix:/tmp/a.sock' is 'unix:/tmp//a.sock'");
	expect_error("[storage]\ndaemons = /tmp/./a.sock,unix:/tmp/a.sock\n", "one daemon twice");
	expect_error("[storage]\ndaemons = unix:/tmp/a.sock,/tmp/a.sock\n", "one daemon twice");
	expect_error("[storage]\ndaemons = unix:/run/r.sock, /run/r.sock\n",
		     "lists one daemon twice: 'unix:/run/r.sock' is '/run/r.sock'");
	/* a duration key without "off" does not offer 0 */
	expect_error("[cluster]\nhold_max = 0\n", "x.conf:2: [cluster] hold_max: '0' must be a duration "
						  "(e.g. 90, 10m, 1h, 7d) of 1 s to 30 days");
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c,
					       "[storage]\ndaemons = unix:/run/r.sock, /run/s.sock, "
					       "storage1, s2:42217, [::1]:42217, [fe80::1], ::2, "
					       "[::1]:42218, /run/r2.sock, unix:/run/r/sock\n"
					       "[state]\nurl = postgresql:///vigie\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_string_equal(c.state_url, "postgresql:///vigie");
	/* an empty tier is no tier: refused, not skipped */
	expect_error("[storage]\narchives = 1m:15d,,1h:455d\n", "x.conf:2: [storage] archives");
	expect_error("[storage]\narchives = 1m:15d,\n", "x.conf:2: [storage] archives");
	expect_error("[storage]\narchives = ,1m:15d\n", "x.conf:2: [storage] archives");
	expect_error("[archives]\ncpu.* = 1m:15d, ,1h:455d\n", "x.conf:2: [archives] cpu.*");
	/* tiers against the step, whichever key came first */
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c,
					       "[archives]\ndisk.* = 90s:1d\n[storage]\nstep = 60\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_int_equal(vg_config_check(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "[archives] disk.*: tier 90s:86400s"));
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, "[storage]\nstep = 300\n", "t.conf", err,
					       sizeof(err)),
			 0);
	assert_int_equal(vg_config_check(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "[storage] archives: tier 60s:"));
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c,
					       "[storage]\nstep = 300\narchives = 5m:1d,1h:30d\n"
					       "[archives]\ncpu.* = 10m:1d\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_int_equal(vg_config_check(&c, err, sizeof(err)), 0);
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c,
					       "[collector]\nlisten = tcp://*:7470\n"
					       "[alarms]\nnotify = ipc:///run/vigie/notify.sock\n"
					       "alertmanager = https://am.example:9093/\n"
					       "[storage]\nbackend = rrdcached\nwrite_through = no\n"
					       "[cluster]\nstream = tcp://*:7472\n"
					       "[agent]\ncollectors = tcp://10.0.0.1:7470, tcp://[::1]:7470, ws://c:80/x\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_string_equal(c.storage_backend, "rrdcached");
	assert_int_equal(c.agent_ncollectors, 3);
	/* verify_writes: yes by default, no when set */
	assert_string_equal(c.storage_verify_writes, "yes");
	assert_int_equal(vg_config_set(&c, "storage", "verify_writes", "no", err, sizeof(err)), 0);
	assert_string_equal(c.storage_verify_writes, "no");
	/* the same checks for flags */
	assert_int_equal(vg_config_set(&c, "collector", "listen", "tcp://h", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "[collector] listen"));
}

static void test_durations(void **state)
{
	double s;
	assert_int_equal(vg_parse_duration("90", &s), 0);
	assert_true(s == 90);
	assert_int_equal(vg_parse_duration("5m", &s), 0);
	assert_true(s == 300);
	assert_int_equal(vg_parse_duration("1.5h", &s), 0);
	assert_true(s == 5400);
	assert_int_equal(vg_parse_duration("3x", &s), -EINVAL);
	assert_int_equal(vg_parse_duration("", &s), -EINVAL);
}

/* [cluster] stream_key_file, stream_insecure, stream_window: the signed
 * metric stream's keys (docs/operations.md); the window is 1 s to 1 day,
 * 60 s by default, insecure off by default. */
static void test_cluster_stream_keys(void **state)
{
	struct vg_config c;
	char err[256];

	(void)state;
	vg_config_defaults(&c);
	assert_string_equal(c.cluster_stream_key_file, "");
	assert_int_equal(c.cluster_stream_insecure, 0);
	assert_true(c.cluster_stream_window_s == 60);
	assert_int_equal(vg_config_load_string(&c,
					       "[cluster]\nstream = tcp://10.0.0.5:7472\n"
					       "stream_key_file = /etc/vigie/cluster.key\n"
					       "stream_insecure = yes\nstream_window = 2m\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_string_equal(c.cluster_stream_key_file, "/etc/vigie/cluster.key");
	assert_int_equal(c.cluster_stream_insecure, 1);
	assert_true(c.cluster_stream_window_s == 120);
	expect_error("[cluster]\nstream_window = 0\n", "x.conf:2: [cluster] stream_window");
	expect_error("[cluster]\nstream_window = 2d\n", "x.conf:2: [cluster] stream_window");
	expect_error("[cluster]\nstream_insecure = maybe\n", "x.conf:2: [cluster] stream_insecure");
}

/* One key file in a fresh directory: its path into path (PATH_MAX). */
static void key_file(char *dir, char *path, const char *name, const char *text,
		     mode_t mode)
{
	FILE *f;

	snprintf(path, 4096, "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

#define KEY64 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"

/* `vigie-collector config check` and the start refuse the same streams
 * with the same words: vg_config_check a stream without stream_key_file
 * nor stream_insecure (in a cluster: [state] url set), and
 * vg_config_stream_keys also a key file that is missing, too short or
 * readable by others, and an accept file without a key file; an accept
 * file that does not exist is no second key (a rotation's first and
 * last steps). */
static void test_cluster_stream_keys_checked(void **state)
{
	const char *pg = "[state]\nurl = postgresql://vigie@db/vigie\n";
	struct vg_config c;
	struct vg_key k1, k2;
	char err[512], dir[] = "/tmp/vigie-config-keys-XXXXXX", text[8192];
	char good[4096], other[4096], shortk[4096], open_k[4096];

	(void)state;
	assert_non_null(mkdtemp(dir));
	key_file(dir, good, "good.key", KEY64, 0600);
	key_file(dir, other, "other.key",
		 "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n", 0600);
	key_file(dir, shortk, "short.key", "0011223344\n", 0600);
	key_file(dir, open_k, "open.key", KEY64, 0644);

	/* no key, not insecure: refused by both, the start's words */
	vg_config_defaults(&c);
	snprintf(text, sizeof(text), "%s[cluster]\nstream = tcp://10.0.0.5:7472\n", pg);
	assert_int_equal(vg_config_load_string(&c, text, "t.conf", err, sizeof(err)), 0);
	assert_int_equal(vg_config_check(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "[cluster] stream tcp://10.0.0.5:7472 is set without "
				    "[cluster] stream_key_file: the metric stream would be "
				    "unsigned"));
	assert_non_null(strstr(err, "or set stream_insecure = yes to run it unsigned"));
	assert_int_equal(vg_config_stream_keys(&c, &k1, &k2, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "is set without [cluster] stream_key_file"));
	/* ... not in a single collector (no [state] url: [cluster] ignored) */
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, "[cluster]\nstream = tcp://10.0.0.5:7472\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_int_equal(vg_config_check(&c, err, sizeof(err)), 0);
	/* insecure: no key, accepted */
	vg_config_defaults(&c);
	snprintf(text, sizeof(text),
		 "%s[cluster]\nstream = tcp://10.0.0.5:7472\nstream_insecure = yes\n", pg);
	assert_int_equal(vg_config_load_string(&c, text, "t.conf", err, sizeof(err)), 0);
	assert_int_equal(vg_config_check(&c, err, sizeof(err)), 0);
	assert_int_equal(vg_config_stream_keys(&c, &k1, &k2, err, sizeof(err)), 0);
	assert_int_equal(k1.len, 0);
	assert_int_equal(k2.len, 0);

	/* key files: the good one, then each bad one named */
	const struct {
		const char *key, *accept, *want; /* want NULL: accepted */
		size_t len2;
	} cases[] = {
		{good, NULL, NULL, 0},
		{good, other, NULL, 32},
		{good, "/nonexistent/next.key", NULL, 0}, /* no second key yet */
		{"/nonexistent/cluster.key", NULL, "[cluster] stream_key_file: ", 0},
		{shortk, NULL, "[cluster] stream_key_file: ", 0},
		{open_k, NULL, "[cluster] stream_key_file: ", 0},
		{good, shortk, "[cluster] stream_accept_key_file: ", 0},
		{good, open_k, "[cluster] stream_accept_key_file: ", 0},
		{NULL, good, "[cluster] stream_accept_key_file is set without", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = snprintf(text, sizeof(text), "%s[cluster]\nstream = tcp://10.0.0.5:7472\n", pg);
		if (cases[i].key)
			n += snprintf(text + n, sizeof(text) - n, "stream_key_file = %s\n",
				      cases[i].key);
		if (cases[i].accept)
			snprintf(text + n, sizeof(text) - n, "stream_accept_key_file = %s\n",
				 cases[i].accept);
		vg_config_defaults(&c);
		assert_int_equal(vg_config_load_string(&c, text, "t.conf", err, sizeof(err)), 0);
		err[0] = '\0';
		if (!cases[i].want) {
			assert_int_equal(vg_config_check(&c, err, sizeof(err)), 0);
			assert_int_equal(vg_config_stream_keys(&c, &k1, &k2, err, sizeof(err)), 0);
			assert_int_equal(k1.len, 32);
			assert_int_equal(k2.len, cases[i].len2);
			continue;
		}
		assert_int_not_equal(vg_config_stream_keys(&c, &k1, &k2, err, sizeof(err)), 0);
		if (!strstr(err, cases[i].want))
			fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].want);
		assert_int_equal(k1.len, 0); /* wiped */
		assert_int_equal(k2.len, 0);
		if (cases[i].key && cases[i].key != good)
			assert_non_null(strstr(err, cases[i].key)); /* names the file */
	}
	unlink(good), unlink(other), unlink(shortk), unlink(open_k);
	rmdir(dir);
}

/* [billing] lock_timeout_ms: 0 (unset: the collector takes a quarter of
 * [agent] ack_timeout_ms) unless set; 10 to 3600000 ms. */
static void test_billing_lock_timeout(void **state)
{
	struct vg_config c;
	char err[256];

	(void)state;
	vg_config_defaults(&c);
	assert_int_equal(c.billing_lock_timeout_ms, 0);
	assert_int_equal(vg_config_load_string(&c, "[billing]\nlock_timeout_ms = 800\n", "t.conf",
					       err, sizeof(err)),
			 0);
	assert_int_equal(c.billing_lock_timeout_ms, 800);
	expect_error("[billing]\nlock_timeout_ms = 0\n", "x.conf:2: [billing] lock_timeout_ms");
	expect_error("[billing]\nlock_timeout_ms = 5\n", "x.conf:2: [billing] lock_timeout_ms");
	expect_error("[billing]\nlock_timeout_ms = 1s\n", "x.conf:2: [billing] lock_timeout_ms");
	expect_error("[billing]\nlock_timeout_ms = 3600001\n",
		     "x.conf:2: [billing] lock_timeout_ms");
}

/* [state] migrate_lock_timeout_ms (2000 unless set, 10..3600000) and
 * migrate_wait (5 min unless set, a duration up to a day, 0: no retry) */
static void test_migrate_wait(void **state)
{
	struct vg_config c;
	char err[256];

	(void)state;
	vg_config_defaults(&c);
	assert_int_equal(c.state_migrate_lock_timeout_ms, 2000);
	assert_true(c.state_migrate_wait_s == 300);
	assert_int_equal(vg_config_load_string(&c,
					       "[state]\nmigrate_lock_timeout_ms = 500\n"
					       "migrate_wait = 2m\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_int_equal(c.state_migrate_lock_timeout_ms, 500);
	assert_true(c.state_migrate_wait_s == 120);
	assert_int_equal(vg_config_load_string(&c, "[state]\nmigrate_wait = 0\n", "t.conf", err,
					       sizeof(err)),
			 0);
	assert_true(c.state_migrate_wait_s == 0);
	expect_error("[state]\nmigrate_lock_timeout_ms = 5\n",
		     "x.conf:2: [state] migrate_lock_timeout_ms");
	expect_error("[state]\nmigrate_wait = 2d\n", "x.conf:2: [state] migrate_wait");
}

/* [storage] check_max: 30 s unless set; a duration (fractions, units)
 * within 0.001..3600 s; anything else refused naming file, line and key,
 * in the file and as a flag */
static void test_check_max(void **state)
{
	struct vg_config c;
	char err[256] = "";

	(void)state;
	vg_config_defaults(&c);
	assert_true(c.storage_check_max_s == 30);
	assert_int_equal(vg_config_load_string(&c, "[storage]\ncheck_max = 0.25\n", "t.conf", err,
					       sizeof(err)),
			 0);
	assert_true(c.storage_check_max_s == 0.25);
	assert_int_equal(vg_config_load_string(&c, "[storage]\ncheck_max = 2m\n", "t.conf", err,
					       sizeof(err)),
			 0);
	assert_true(c.storage_check_max_s == 120);
	assert_int_equal(vg_config_load_string(&c, "[storage]\ncheck_max = 0.001\n", "t.conf",
					       err, sizeof(err)),
			 0);
	assert_true(c.storage_check_max_s == 0.001);
	expect_error("[storage]\ncheck_max = 0\n", "x.conf:2: [storage] check_max: '0'");
	expect_error("[storage]\n\ncheck_max = soon\n", "x.conf:3: [storage] check_max: 'soon'");
	expect_error("[storage]\ncheck_max = -5\n", "x.conf:2: [storage] check_max");
	expect_error("[storage]\ncheck_max = 2h\n", "x.conf:2: [storage] check_max");
	expect_error("[storage]\ncheck_max = 30ms\n", "x.conf:2: [storage] check_max");
	/* the message says what it takes */
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, "[storage]\ncheck_max = 0\n", "x.conf", err,
					       sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "between 0.001 and 3600"));
	assert_true(c.storage_check_max_s == 30); /* unchanged */
	assert_int_equal(vg_config_set(&c, "storage", "check_max", "5s", err, sizeof(err)), 0);
	assert_true(c.storage_check_max_s == 5);
	assert_int_equal(vg_config_set(&c, "storage", "check_max", "0", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "[storage] check_max"));
}

/* Archive tiers: decimal integers with a unit, nothing strtod also reads;
 * a coarser tier keeping less than a finer one; a pattern with a control
 * character. [storage] archives and [archives] rules share the parser,
 * so each refusal is checked on both. */
static void test_archive_tiers_strict(void **state)
{
	static const char *const bad[][2] = {
		{"0x3cs:1d", "has '0x3cs' in tier '0x3cs:1d', which is not a whole number"},
		{"1m:1e1d", "has '1e1d' in tier '1m:1e1d'"},
		{"1e1m:1d", "has '1e1m'"},
		{"1m:1.5d", "has '1.5d'"},
		{"+1m:1d", "has '+1m'"},
		{"1m:15d,5m:0x10d", "has '0x10d' in tier '5m:0x10d'"},
		{"1 m:1d", "has '1 m'"},
		{"1m:15dd", "has '15dd'"},
		{"1min:1d", "has '1min'"},
		{"1m:99999999999999999999d", "has '99999999999999999999d'"},
		{"1m:30d,5m:1d", "has tier '5m:1d' after '1m:30d': a coarser tier keeping less"},
		{"1m:15d,5m:63d,1h:30d", "has tier '1h:30d' after '5m:63d'"},
		{"5m:1d,1m:1d", "has tier '1m:1d' after '5m:1d': tiers go from fine to coarse"},
		{"0s:1d", "has tier '0s:1d', whose resolution is 0"},
		{"1h:1m", "has tier '1h:1m', whose retention is shorter than its resolution"},
		{"1m", "has '1m', which is not RES:RETENTION"},
	};
	char text[256], want[256], err[1024];
	struct vg_config c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (int rule = 0; rule < 2; rule++) {
			snprintf(text, sizeof(text), rule ? "[archives]\ncpu.* = %s\n" : "[storage]\narchives = %s\n",
				 bad[i][0]);
			snprintf(want, sizeof(want), rule ? "x.conf:2: [archives] cpu.*: '%s' %s" : "x.conf:2: [storage] archives: '%s' %s",
				 bad[i][0], bad[i][1]);
			vg_config_defaults(&c);
			err[0] = '\0';
			assert_int_equal(vg_config_load_string(&c, text, "x.conf", err,
							       sizeof(err)),
					 -EINVAL);
			if (!strstr(err, want))
				fail_msg("'%s': error '%s' does not contain '%s'", bad[i][0],
					 err, want);
		}
	}
	/* the parser itself: the reason, and nothing written on refusal */
	struct vg_archive a[VG_MAX_ARCHIVES] = {{7, 7}};
	size_t n = 99;
	assert_int_equal(vg_config_archives_parse("1m:30d,5m:1d", a, VG_MAX_ARCHIVES, &n,
						  err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(n, 99);
	assert_int_equal(a[0].resolution_s, 7);
	assert_non_null(strstr(err, "'5m:1d' after '1m:30d'"));

	/* what the docs show, and what stays allowed: equal retentions, a
	 * bare number (seconds), weeks, blanks around a tier */
	static const char *const good[] = {
		"1m:15d,5m:63d,1h:455d", "5m:63d,1h:455d", "1m:7d,1h:455d",
		"1m:1d,5m:7d,1h:30d", "1m:1d,5m:1d", "60:86400", "1m:2w",
		"1m:15d , 5m:63d", "1s:1h"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "[storage]\narchives = %s\n[archives]\ncpu.* = %s\n",
			 good[i], good[i]);
		vg_config_defaults(&c);
		if (vg_config_load_string(&c, text, "x.conf", err, sizeof(err)))
			fail_msg("'%s' refused: %s", good[i], err);
	}
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, "[storage]\narchives = 60:86400,1m:2w\n",
					       "x.conf", err, sizeof(err)),
			 -EINVAL); /* 60 s is 1m: not coarser */
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, "[storage]\narchives = 1m:2w,10m:1d\n",
					       "x.conf", err, sizeof(err)),
			 -EINVAL);
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, "[storage]\narchives = 1m:2w,10m:14d\n",
					       "x.conf", err, sizeof(err)),
			 0);
	assert_int_equal(c.archives[0].retention_s, 14 * 86400);

	/* a pattern with a control character could never match a metric
	 * name: refused, and the message shows it as \xNN, not raw */
	static const char *const badpat[] = {"cpu\t.*", "cpu\x1b[31m.*", "cpu\x7f*",
					     "cpu\xe2\x80\xae*", "cpu\xff*"};
	for (size_t i = 0; i < sizeof(badpat) / sizeof(badpat[0]); i++) {
		snprintf(text, sizeof(text), "[archives]\n%s = 1m:1d\n", badpat[i]);
		vg_config_defaults(&c);
		assert_int_equal(vg_config_load_string(&c, text, "x.conf", err, sizeof(err)),
				 -EINVAL);
		if (!strstr(err, "x.conf:2: [archives] cpu") ||
		    !strstr(err, "pattern must be UTF-8 without control characters"))
			fail_msg("pattern %zu: '%s'", i, err);
		for (const char *q = err; *q; q++)
			if ((unsigned char)*q < 0x20 || *q == 0x7f)
				fail_msg("pattern %zu: raw control character in '%s'", i, err);
	}
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, "[archives]\ncpu\t.* = 1m:1d\n", "x.conf",
					       err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "[archives] cpu\\x09.*:"));
	vg_config_defaults(&c);
	assert_int_equal(vg_config_set(&c, "archives", "net\x1b.*", "1m:1d", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "[archives] net\\x1b.*:"));
	/* globs and non-ASCII names stay allowed */
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c,
					       "[archives]\nnet.*.errors = 5m:63d,1h:455d\n"
					       "disk.[sv]d? = 1m:1d\nm\xc3\xa9moire.* = 1m:1d\n",
					       "x.conf", err, sizeof(err)),
			 0);
	assert_int_equal(c.npolicies, 3);
	(void)state;
}

/* [collector] http_max_concurrent_per_project: 0 (the default) is
 * http_threads - 1; bad text and out of range named at parse, more than
 * http_threads refused by vg_config_check whichever key came first. */
static void test_http_max_concurrent_per_project(void **state)
{
	struct vg_config c;
	char err[512] = "";

	(void)state;
	vg_config_defaults(&c);
	assert_int_equal(c.collector_http_max_per_project, 0);
	assert_int_equal(vg_config_check(&c, err, sizeof(err)), 0);
	assert_int_equal(vg_config_load_string(&c,
					       "[collector]\nhttp_max_concurrent_per_project = 3\n"
					       "http_threads = 3\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_int_equal(c.collector_http_max_per_project, 3);
	assert_int_equal(vg_config_check(&c, err, sizeof(err)), 0);
	expect_error("[collector]\nhttp_max_concurrent_per_project = -1\n",
		     "x.conf:2: [collector] http_max_concurrent_per_project: '-1' must be an integer");
	expect_error("[collector]\nhttp_max_concurrent_per_project = 65\n",
		     "x.conf:2: [collector] http_max_concurrent_per_project: '65'");
	expect_error("[collector]\nhttp_max_concurrent_per_project = two\n",
		     "x.conf:2: [collector] http_max_concurrent_per_project: 'two'");
	expect_error("[collector]\nhttp_max_concurrent_per_project =\n",
		     "x.conf:2: [collector] http_max_concurrent_per_project");
	/* more than the workers, in either order */
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c,
					       "[collector]\nhttp_max_concurrent_per_project = 5\n"
					       "http_threads = 4\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_int_equal(vg_config_check(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "[collector] http_max_concurrent_per_project: 5 is more "
				    "than [collector] http_threads (4)"));
	vg_config_defaults(&c);
	assert_int_equal(vg_config_set(&c, "collector", "http_threads", "2", err, sizeof(err)), 0);
	assert_int_equal(vg_config_set(&c, "collector", "http_max_concurrent_per_project", "3",
				       err, sizeof(err)),
			 0);
	assert_int_equal(vg_config_check(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "http_max_concurrent_per_project: 3 is more"));
}

/* [collector] http_queue_per_project and http_queue_wait: the queue in
 * front of the per-project cap, on by default (64, 5 s); 0 turns the
 * queue off; out of range or bad text named at parse. */
static void test_http_queue(void **state)
{
	struct vg_config c;
	char err[512] = "";

	(void)state;
	vg_config_defaults(&c);
	assert_int_equal(c.collector_http_queue_per_project, 64);
	assert_true(c.collector_http_queue_wait_s == 5);
	assert_int_equal(vg_config_load_string(&c,
					       "[collector]\nhttp_queue_per_project = 0\n"
					       "http_queue_wait = 250ms\n",
					       "t.conf", err, sizeof(err)),
			 -EINVAL); /* no "ms" in configuration durations */
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c,
					       "[collector]\nhttp_queue_per_project = 0\n"
					       "http_queue_wait = 0.25\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_int_equal(c.collector_http_queue_per_project, 0);
	assert_true(c.collector_http_queue_wait_s == 0.25);
	expect_error("[collector]\nhttp_queue_per_project = 4097\n",
		     "x.conf:2: [collector] http_queue_per_project: '4097'");
	expect_error("[collector]\nhttp_queue_wait = 0\n", "x.conf:2: [collector] http_queue_wait");
	expect_error("[collector]\nhttp_queue_wait = 2d\n", "x.conf:2: [collector] http_queue_wait");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_publish_heartbeat),
		cmocka_unit_test(test_fs_keys),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_errors_name_file_line_key),
		cmocka_unit_test(test_daemons_same_spelled_otherwise),
		cmocka_unit_test(test_archive_tiers_strict),
		cmocka_unit_test(test_collectors),
		cmocka_unit_test(test_file_missing),
		cmocka_unit_test(test_file_on_disk_and_override),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_state),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_values_checked_at_parse),
		cmocka_unit_test(test_check_max),
		cmocka_unit_test(test_billing_lock_timeout),
		cmocka_unit_test(test_migrate_wait),
		cmocka_unit_test(test_cluster_stream_keys),
		cmocka_unit_test(test_cluster_stream_keys_checked),
		cmocka_unit_test(test_http_max_concurrent_per_project),
		cmocka_unit_test(test_http_queue),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
