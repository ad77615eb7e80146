/*
 * auth_test.c — signed agents against the real vigie-collector:
 * with require_signatures on and keys for hosts "auth-a" and "auth-b",
 * unsigned, forged, tampered, wrong-host, unknown-host and stale batches
 * are answered REJECTED (with an unsigned ack), counted per reason and
 * never stored; a good batch is acknowledged with an ack signed over that
 * very batch, and its replay is a DUPLICATE; SIGHUP loads a new host's
 * key. A node signing with its own key cannot write another host's
 * host-level series (host, host disks, NICs, file systems): those
 * resources are dropped from its batch, its own are stored. Start-up refuses a missing keys directory (when signatures are
 * required) and a key file others can read, naming it; --allow-unsigned
 * starts without keys. Also the configuration keys of the feature.
 */
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/sign.h"
#include "vigie/wire.h"

#include "harness.h"

static struct vg_harness H;
static char keys[200];
static const char CONF[] = "[collector]\nrequire_signatures = true\n"
			   "max_clock_skew = 1h\n"
			   "[storage]\nstep = 60\nheartbeat = 600\narchives = 1m:1d\n";

static struct vg_key key_of(uint8_t seed)
{
	struct vg_key k = {.len = 32};
	for (int i = 0; i < 32; i++)
		k.bytes[i] = (uint8_t)(seed * 7 + i);
	return k;
}

static void write_key(const char *dir, const char *host, const struct vg_key *k,
		      mode_t mode)
{
	char path[512], hex[2 * VG_SIGN_KEY_MAX + 2];
	for (size_t i = 0; i < k->len; i++)
		sprintf(hex + 2 * i, "%02x", k->bytes[i]);
	strcat(hex, "\n");
	snprintf(path, sizeof(path), "%s/%s.key", dir, host);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, hex, strlen(hex)), (ssize_t)strlen(hex));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static int64_t now_ms(void)
{
	return (int64_t)time(NULL) * 1000;
}

static uint8_t *batch(const char *host, uint64_t seq, int64_t t, size_t *len)
{
	struct vg_batch *b = vg_batch_new(host, 42, seq, t);
	uint8_t *m;

	/* the agent's host resource: its id is the host name */
	assert_non_null(vg_batch_resource(b, VG_RT_HOST, host, NULL, NULL, t));
	assert_int_equal(vg_batch_sample(b, "host.cpu.idle", VG_KIND_GAUGE, 42), 0);
	assert_int_equal(vg_wire_encode(b, &m, len), 0);
	vg_batch_free(b);
	return m;
}

static uint8_t *signed_batch(const struct vg_key *k, const char *host,
			     uint64_t seq, int64_t t, size_t *len)
{
	uint8_t *m = batch(host, seq, t, len);
	assert_int_equal(vg_sign_batch(k, &m, len), 0);
	return m;
}

/* Send; the ack's status, and whether it verifies as signed by k for m. */
static int send_msg(const uint8_t *m, size_t len, const struct vg_key *k,
		    int *verified, size_t *acklen)
{
	uint8_t ack[VG_WIRE_ACK_LEN + VG_WIRE_MAC_LEN];
	struct vg_ack a;
	int rc = h_exchange_raw(&H, m, len, 5000, &a, ack, sizeof(ack), acklen);

	if (rc)
		fail_msg("no ack: %s", strerror(-rc));
	*verified = k && vg_sign_mac(m, len) &&
		    vg_sign_ack_verify(k, vg_sign_mac(m, len), ack, *acklen) == 0;
	return a.status;
}

/* Run the collector with args until it exits (<= 10 s): its status. */
static int run_to_exit(const char *const *extra)
{
	int rc = h_start(&H, extra);
	if (rc == 0) {
		h_stop(&H);
		return 0;
	}
	/* h_start reaped it; run it again to get the status */
	pid_t p = fork();
	if (p == 0) {
		const char *argv[32];
		int n = 0;
		argv[n++] = H.bin;
		argv[n++] = "--config";
		argv[n++] = H.conf;
		argv[n++] = "--listen";
		argv[n++] = H.listen;
		argv[n++] = "--http";
		argv[n++] = H.hlisten;
		argv[n++] = "--data-dir";
		argv[n++] = H.data;
		for (int i = 0; extra && extra[i] && n < 31; i++)
			argv[n++] = extra[i];
		argv[n] = NULL;
		int fd = open(H.log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(H.bin, (char *const *)argv);
		_exit(127);
	}
	int st;
	waitpid(p, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int log_has(const char *needle)
{
	char buf[1 << 16];
	FILE *f = fopen(H.log, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

static int setup(void **state)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return 0;
}

static int teardown(void **state)
{
	curl_global_cleanup();
	return 0;
}

static int fresh(void **state)
{
	int rc = h_init(&H, CONF);
	if (rc == -ENOENT) {
		fprintf(stderr, "no %s: build it first (make all)\n", H.bin);
		return -1;
	}
	if (rc)
		return -1;
	snprintf(keys, sizeof(keys), "%s/keys", H.dir);
	mkdir(keys, 0700);
	return 0;
}

static int cleanup(void **state)
{
	h_cleanup(&H);
	return 0;
}

/* ---- start-up ----------------------------------------------------------- */

static void test_startup_refusals(void **state)
{
	char missing[256];
	struct vg_key ka = key_of(1);

	snprintf(missing, sizeof(missing), "%s/nokeys", H.dir);
	/* required, but no keys directory: exit 2, naming it */
	assert_int_equal(run_to_exit((const char *const[]){"--keys-dir", missing, NULL}), 2);
	assert_true(log_has("nokeys"));
	assert_true(log_has("require_signatures"));
	/* not required: starts without keys */
	assert_int_equal(h_start(&H, (const char *const[]){"--keys-dir", missing,
							   "--allow-unsigned", NULL}),
			 0);
	assert_int_equal(h_stop(&H), 0);
	/* a key others can read: exit 2, naming the file */
	write_key(keys, "auth-a", &ka, 0644);
	assert_int_equal(run_to_exit((const char *const[]){"--keys-dir", keys, NULL}), 2);
	assert_true(log_has("auth-a.key"));
	assert_true(log_has("chmod 600"));
	/* even when signatures are optional: a bad key is a bad config */
	assert_int_equal(run_to_exit((const char *const[]){"--keys-dir", keys,
							   "--allow-unsigned", NULL}),
			 2);
	/* a keys directory anyone may write to */
	chmod(keys, 0600 | 0777);
	write_key(keys, "auth-a", &ka, 0600);
	assert_int_equal(run_to_exit((const char *const[]){"--keys-dir", keys, NULL}), 2);
	assert_true(log_has("anyone may"));
	chmod(keys, 0700);
	assert_int_equal(h_start(&H, (const char *const[]){"--keys-dir", keys, NULL}), 0);
	assert_int_equal(h_stop(&H), 0);
	assert_true(log_has("1 agent key(s)"));
}

/* ---- the decisions -------------------------------------------------------- */

static void test_signed_agents(void **state)
{
	struct vg_key ka = key_of(1), kb = key_of(2), kc = key_of(3), kx = key_of(99);
	int64_t t = now_ms() / 60000 * 60000;
	int ver;
	size_t len, al;
	uint8_t *m;

	write_key(keys, "auth-a", &ka, 0600);
	write_key(keys, "auth-b", &kb, 0640);
	assert_int_equal(h_start(&H, (const char *const[]){"--keys-dir", keys, NULL}), 0);

	/* good: OK, with an ack signed for this batch */
	m = signed_batch(&ka, "auth-a", 1, t, &len);
	assert_int_equal(send_msg(m, len, &ka, &ver, &al), VG_ACK_OK);
	assert_int_equal(al, VG_WIRE_ACK_LEN + VG_WIRE_MAC_LEN);
	assert_true(ver);
	/* not under another key */
	assert_int_equal(send_msg(m, len, &kb, &ver, &al), VG_ACK_DUPLICATE);
	assert_false(ver);
	/* replayed: DUPLICATE, still signed */
	assert_int_equal(send_msg(m, len, &ka, &ver, &al), VG_ACK_DUPLICATE);
	assert_true(ver);
	/* tampered: one bit of the sample value */
	m[len - VG_WIRE_MAC_LEN - 1] ^= 0x01;
	assert_int_equal(send_msg(m, len, &ka, &ver, &al), VG_ACK_REJECTED);
	assert_int_equal(al, VG_WIRE_ACK_LEN);
	free(m);

	/* unsigned from a host with a key */
	m = batch("auth-a", 2, t + 60000, &len);
	assert_int_equal(send_msg(m, len, NULL, &ver, &al), VG_ACK_REJECTED);
	assert_int_equal(al, VG_WIRE_ACK_LEN);
	free(m);
	/* unsigned from an unknown host (required) */
	m = batch("auth-z", 1, t, &len);
	assert_int_equal(send_msg(m, len, NULL, &ver, &al), VG_ACK_REJECTED);
	free(m);
	/* forged: a key nobody has */
	m = signed_batch(&kx, "auth-a", 2, t + 60000, &len);
	assert_int_equal(send_msg(m, len, &kx, &ver, &al), VG_ACK_REJECTED);
	assert_false(ver);
	free(m);
	/* wrong host: b's key, claiming to be a */
	m = signed_batch(&kb, "auth-a", 2, t + 60000, &len);
	assert_int_equal(send_msg(m, len, &kb, &ver, &al), VG_ACK_REJECTED);
	assert_false(ver);
	free(m);
	/* no key: a host the collector does not know */
	m = signed_batch(&kx, "auth-z", 1, t, &len);
	assert_int_equal(send_msg(m, len, &kx, &ver, &al), VG_ACK_REJECTED);
	free(m);
	/* stale: two hours old, beyond max_clock_skew = 1h */
	m = signed_batch(&ka, "auth-a", 2, t - 2 * 3600 * 1000, &len);
	assert_int_equal(send_msg(m, len, &ka, &ver, &al), VG_ACK_REJECTED);
	free(m);
	/* nothing of that was stored: auth-a goes on at seq 2 */
	m = signed_batch(&ka, "auth-a", 2, t + 60000, &len);
	assert_int_equal(send_msg(m, len, &ka, &ver, &al), VG_ACK_OK);
	assert_true(ver);
	free(m);
	char path[512];
	snprintf(path, sizeof(path), "%s/rrd/host/auth-z", H.data);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/rrd/host/auth-a/host.cpu.idle.rrd", H.data);
	assert_int_equal(access(path, F_OK), 0);

	/* SIGHUP: a new host's key, then its batches are accepted */
	m = signed_batch(&kc, "auth-c", 1, t, &len);
	assert_int_equal(send_msg(m, len, &kc, &ver, &al), VG_ACK_REJECTED);
	write_key(keys, "auth-c", &kc, 0600);
	kill(H.pid, SIGHUP);
	int st = VG_ACK_REJECTED;
	for (int i = 0; i < 50 && st != VG_ACK_OK; i++) {
		usleep(100 * 1000);
		st = send_msg(m, len, &kc, &ver, &al);
	}
	assert_int_equal(st, VG_ACK_OK);
	assert_true(ver);
	free(m);
	assert_true(log_has("SIGHUP: 3 agent key(s) loaded"));

	assert_int_equal(h_stop(&H), 0);
	/* counted per reason (unknown-host unsigned + unsigned = 2; forged +
	 * tampered = 2; auth-c before its key = no key) */
	assert_true(log_has("batches refused: unsigned 2, forged 2, wrong host 1, "
			    "no key 2, stale 1, future 0"));
	assert_true(log_has("refused batch host=auth-a"));
}

/* The newest value of resource id's metric through GET /latest; NAN if
 * the resource or metric is unknown. */
static double latest(const char *id, const char *metric)
{
	char path[256], *body = NULL;
	double v = NAN;

	size_t n = (size_t)snprintf(path, sizeof(path), "/v1/resources/");
	for (; *id && n < sizeof(path) - 16; id++) /* '/' escaped */
		n += (size_t)(*id == '/' ? snprintf(path + n, 4, "%%2F")
					 : snprintf(path + n, 2, "%c", *id));
	snprintf(path + n, sizeof(path) - n, "/latest");
	if (h_get(&H, path, &body) == 200) {
		json_t *o = json_loads(body, 0, NULL);
		json_t *m = json_object_get(json_object_get(json_object_get(o, "metrics"),
							    metric),
					    "value");
		if (json_is_number(m))
			v = json_number_value(m);
		json_decref(o);
	}
	free(body);
	return v;
}

static int has_file(const char *type, const char *id)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/rrd/%s/%s", H.data, type, id);
	return access(path, F_OK) == 0;
}

/* One resource with one gauge, in a batch being built. */
static void add(struct vg_batch *b, int type, const char *id, const char *parent,
		const char *metric, double v, int64_t t)
{
	assert_non_null(vg_batch_resource(b, (uint8_t)type, id, NULL, parent, t));
	assert_int_equal(vg_batch_sample(b, metric, VG_KIND_GAUGE, v), 0);
}

static int send_built(struct vg_batch *b, const struct vg_key *k)
{
	uint8_t *m;
	size_t len, al;
	int ver, st;

	assert_int_equal(vg_wire_encode(b, &m, &len), 0);
	assert_int_equal(vg_sign_batch(k, &m, &len), 0);
	st = send_msg(m, len, k, &ver, &al);
	assert_true(ver);
	free(m);
	vg_batch_free(b);
	return st;
}

/* A rogue node, with its own valid key, reports another host's host-level
 * resources (ahead in time, which would also block the true values):
 * they are dropped, the rest of its batch is stored, the other host's
 * series keep their true values and take the next ones. */
static void test_host_bound(void **state)
{
	struct vg_key ka = key_of(1), kb = key_of(2), k2 = key_of(4);
	int64_t t = now_ms() / 60000 * 60000 - 10 * 60000;
	struct vg_batch *b;

	write_key(keys, "auth-a", &ka, 0600);
	write_key(keys, "auth-b", &kb, 0600);
	write_key(keys, "auth-a-2", &k2, 0600);
	assert_int_equal(h_start(&H, (const char *const[]){"--keys-dir", keys, NULL}), 0);

	/* auth-b's true values */
	b = vg_batch_new("auth-b", 7, 1, t);
	add(b, VG_RT_HOST, "auth-b", NULL, "host.cpu.idle", 42, t);
	add(b, VG_RT_HOST_DISK, "auth-b-sda", "auth-b", "hdisk.inflight", 4, t);
	assert_int_equal(send_built(b, &kb), VG_ACK_OK);

	/* auth-a speaks for auth-b (and for auth-a-2, whose name extends
	 * its own), two minutes ahead, beside its own resources */
	b = vg_batch_new("auth-a", 8, 1, t);
	add(b, VG_RT_HOST, "auth-b", NULL, "host.cpu.idle", 666, t + 120000);
	add(b, VG_RT_HOST, "auth-a", NULL, "host.cpu.idle", 7, t);
	add(b, VG_RT_HOST_DISK, "auth-b-sda", "auth-b", "hdisk.inflight", 666,
	    t + 120000);
	add(b, VG_RT_HOST_DISK, "auth-b-sdb", "auth-a", "hdisk.inflight", 666, t);
	add(b, VG_RT_HOST_NIC, "auth-a-eth9", "auth-b", "hnic.rx.bytes", 666, t);
	add(b, VG_RT_HOST_DISK, "auth-a-2-sda", "auth-a", "hdisk.inflight", 666, t);
	add(b, VG_RT_HOST_DISK, "auth-a-sda", "auth-a", "hdisk.inflight", 8, t);
	add(b, VG_RT_HOST_DISK, "auth-a-fs:/var", "auth-a", "hfs.used", 9, t);
	add(b, VG_RT_INSTANCE, "auth-vm-1", NULL, "cpu.util", 10, t);
	/* its project with a space at the end: taken as "acme", counted */
	assert_int_equal(vg_batch_identity(b, "acme ", NULL, NULL), 0);
	/* the rest of the batch is the node's own: acknowledged */
	assert_int_equal(send_built(b, &ka), VG_ACK_OK);

	/* its own resources are stored */
	assert_true(latest("auth-a", "host.cpu.idle") == 7);
	assert_true(latest("auth-a-sda", "hdisk.inflight") == 8);
	assert_true(latest("auth-a-fs:/var", "hfs.used") == 9);
	assert_true(latest("auth-vm-1", "cpu.util") == 10);
	/* nothing of the other hosts' */
	assert_true(latest("auth-b", "host.cpu.idle") == 42);
	assert_true(latest("auth-b-sda", "hdisk.inflight") == 4);
	assert_true(isnan(latest("auth-b-sdb", "hdisk.inflight")));
	assert_true(isnan(latest("auth-a-eth9", "hnic.rx.bytes")));
	assert_true(isnan(latest("auth-a-2-sda", "hdisk.inflight")));
	assert_false(has_file("host_disk", "auth-b-sdb"));
	assert_false(has_file("host_nic", "auth-a-eth9"));
	assert_false(has_file("host_disk", "auth-a-2-sda"));

	/* auth-b's next true values, a minute on, are taken */
	b = vg_batch_new("auth-b", 7, 2, t + 60000);
	add(b, VG_RT_HOST, "auth-b", NULL, "host.cpu.idle", 43, t + 60000);
	add(b, VG_RT_HOST_DISK, "auth-b-sda", "auth-b", "hdisk.inflight", 5,
	    t + 60000);
	assert_int_equal(send_built(b, &kb), VG_ACK_OK);
	assert_true(latest("auth-b", "host.cpu.idle") == 43);
	assert_true(latest("auth-b-sda", "hdisk.inflight") == 5);
	/* and auth-a-2 owns its disk */
	b = vg_batch_new("auth-a-2", 9, 1, t);
	add(b, VG_RT_HOST_DISK, "auth-a-2-sda", "auth-a-2", "hdisk.inflight", 3, t);
	assert_int_equal(send_built(b, &k2), VG_ACK_OK);
	assert_true(latest("auth-a-2-sda", "hdisk.inflight") == 3);

	assert_int_equal(h_stop(&H), 0);
	assert_true(log_has("another host's resources dropped 5; projects trimmed 1"));
	assert_true(log_has("dropped host resource id=auth-b parent=(none)"));
}

/* ---- configuration ---------------------------------------------------------- */

static void test_config_keys(void **state)
{
	struct vg_config c;
	char err[512];

	vg_config_defaults(&c);
	assert_string_equal(c.collector_keys_dir, "/etc/vigie/keys");
	assert_int_equal(c.collector_require_signatures, 1);
	assert_true(c.collector_max_clock_skew_s == 0);
	assert_true(c.collector_max_future_s == 600);
	assert_string_equal(c.agent_key_file, "");
	assert_int_equal(vg_config_load_string(&c,
					       "[agent]\nkey_file = /etc/vigie/agent.key\n"
					       "[collector]\nkeys_dir = /srv/keys\nrequire_signatures = no\n"
					       "max_clock_skew = 2h\nmax_future = 0\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_string_equal(c.agent_key_file, "/etc/vigie/agent.key");
	assert_string_equal(c.collector_keys_dir, "/srv/keys");
	assert_int_equal(c.collector_require_signatures, 0);
	assert_true(c.collector_max_clock_skew_s == 7200);
	assert_true(c.collector_max_future_s == 0);
	assert_int_equal(vg_config_set(&c, "collector", "require_signatures", "maybe",
				       err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "true or false"));
	assert_int_equal(vg_config_load_string(&c, "[collector]\nmax_clock_skew = -1\n",
					       "t.conf", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "t.conf:2: [collector] max_clock_skew"));
	assert_int_equal(vg_config_set(&c, "collector", "max_future", "400d", err,
				       sizeof(err)),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_keys),
		cmocka_unit_test_setup_teardown(test_startup_refusals, fresh, cleanup),
		cmocka_unit_test_setup_teardown(test_signed_agents, fresh, cleanup),
		cmocka_unit_test_setup_teardown(test_host_bound, fresh, cleanup),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
