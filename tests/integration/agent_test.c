/*
 * agent_test.c — the vigie-agent binary ($VIGIE_BUILD/bin/vigie-agent,
 * default build/): --once prints a valid JSON batch with the test
 * driver's instance; bad usage exits 2 with one line naming the problem;
 * batches are spooled while no collector answers, the sequence continues
 * across restarts, and a (fake) collector then receives every batch once,
 * in order; the synthetic clock stamps polls start + k * step; SIGTERM
 * stops it cleanly. Run from the repository root.
 */
#include <errno.h>
#include <pthread.h>
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
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "agent/spool.h"
#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/wire.h"

#include "../support/tmpdir.h"

#define TEST_UUID "6695eb01-f6a4-8304-79aa-97f2502e193f"

static char agent[512], tmp[64], spool[128], out[128], err[128];

static int setup(void **state)
{
	const char *b = getenv("VIGIE_BUILD");

	snprintf(agent, sizeof(agent), "%s/bin/vigie-agent", b && *b ? b : "build");
	if (access(agent, X_OK) != 0)
		fail_msg("%s not built", agent);
	strcpy(tmp, "/tmp/vigie-agent-test-XXXXXX");
	assert_non_null(mkdtemp(tmp));
	snprintf(spool, sizeof(spool), "%s/spool", tmp);
	snprintf(out, sizeof(out), "%s/out", tmp);
	snprintf(err, sizeof(err), "%s/err", tmp);
	return 0;
}

static int teardown(void **state)
{
	fx_rm_tree(tmp);
	return 0;
}

/* Run the agent with args through the shell; exit status. */
static int run(const char *args)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd), "%s %s >%s 2>%s </dev/null", agent, args, out, err);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* run(), under timeout(1): 124 when the agent was still running after
 * limit_s seconds and ended on SIGTERM, 137 when it had to be killed 5 s
 * later. */
static int run_within(const char *args, int limit_s)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd), "timeout -k 5 %d %s %s >%s 2>%s </dev/null", limit_s, agent,
		 args, out, err);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *slurp(const char *path)
{
	static char buf[1 << 20];
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

static void expect_usage_error(const char *args, const char *needle)
{
	int rc = run(args);
	char *e = slurp(err);

	if (rc != 2)
		fail_msg("'%s': exit %d, want 2 (stderr: %s)", args, rc, e);
	if (!strstr(e, needle))
		fail_msg("'%s': stderr '%s' does not name '%s'", args, e, needle);
	/* one line */
	char *nl = strchr(e, '\n');
	assert_non_null(nl);
	assert_true(nl[1] == '\0');
}

static json_t *resource(json_t *batch, const char *id)
{
	size_t i;
	json_t *r;

	json_array_foreach(json_object_get(batch, "resources"), i, r)
		if (!strcmp(json_string_value(json_object_get(r, "id")), id))
			return r;
	return NULL;
}

static double sample(json_t *r, const char *metric)
{
	json_t *s = json_object_get(json_object_get(r, "samples"), metric);

	if (!s)
		fail_msg("no sample %s", metric);
	return json_number_value(json_object_get(s, "value"));
}

static void test_once_json(void **state)
{
	json_error_t je;

	assert_int_equal(run("--once --libvirt test:///default --host h1 "
			     "--proc tests/fixtures/proc/t0 --clock-start 1795000000"),
			 0);
	json_t *j = json_loads(slurp(out), 0, &je);
	if (!j)
		fail_msg("not JSON: %s (line %d)", je.text, je.line);
	assert_string_equal(json_string_value(json_object_get(j, "host")), "h1");
	assert_true(json_integer_value(json_object_get(j, "time_ms")) == 1795000000000LL);
	json_t *r = resource(j, TEST_UUID);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "type")), "instance");
	assert_string_equal(json_string_value(json_object_get(r, "name")), "test");
	assert_true(sample(r, "memory.size") == 2147483648.0);
	assert_true(sample(r, "cpu.time") > 0);
	assert_non_null(resource(j, TEST_UUID "-vda"));
	assert_non_null(resource(j, TEST_UUID "-testnet0"));
	r = resource(j, "h1");
	assert_non_null(r);
	assert_true(sample(r, "host.memory.total") == 8192000000.0);
	json_decref(j);

	/* the same through a config file, a flag overriding it */
	char conf[256], text[512];
	snprintf(conf, sizeof(conf), "%s/agent.conf", tmp);
	FILE *f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f, "[agent]\nlibvirt = test:///default\nhost = from-file\nproc = tests/fixtures/proc/t0\n");
	fclose(f);
	snprintf(text, sizeof(text), "--config %s --host from-flag --once", conf);
	assert_int_equal(run(text), 0);
	j = json_loads(slurp(out), 0, &je);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "host")), "from-flag");
	assert_non_null(resource(j, TEST_UUID));
	json_decref(j);
}

static void test_usage_errors(void **state)
{
	char args[512];

	expect_usage_error("--interval abc --once", "interval");
	expect_usage_error("--interval 0 --once", "interval");
	expect_usage_error("--bogus", "--bogus");
	expect_usage_error("extra-argument", "extra-argument");
	expect_usage_error("--config /nonexistent/vigie.conf --once", "/nonexistent/vigie.conf");
	expect_usage_error("--clock-step 5 --once", "--clock-start");
	expect_usage_error("--clock-start yesterday --once", "--clock-start");
	expect_usage_error("--log-level loud --once", "level");
	expect_usage_error("--count -3", "--count");
	expect_usage_error("--host", "--host");
	snprintf(args, sizeof(args), "--spool %s/spool --collector nonsense --libvirt test:///default", tmp);
	expect_usage_error(args, "nonsense");
	char conf[256];
	snprintf(conf, sizeof(conf), "%s/bad.conf", tmp);
	FILE *f = fopen(conf, "w");
	fprintf(f, "[agent]\n\ninterval = soon\n");
	fclose(f);
	snprintf(args, sizeof(args), "--config %s --once", conf);
	expect_usage_error(args, "bad.conf:3");
	assert_int_equal(run("--help"), 0);
	assert_non_null(strstr(slurp(out), "--collector"));
}

/* ---- a fake collector -------------------------------------------------- */

struct fake {
	int sock, port;
	pthread_t th;
	volatile int stop;
	pthread_mutex_t lock;
	uint64_t seqs[64], streams[64];
	int64_t times[64];
	size_t n;
};

static void *fake_run(void *arg)
{
	struct fake *f = arg;

	while (!f->stop) {
		void *msg = NULL;
		int n = nn_recv(f->sock, &msg, NN_MSG, 0);
		struct vg_batch *b = NULL;

		if (n < 0)
			continue;
		if (vg_wire_decode(msg, (size_t)n, &b) == 0) {
			pthread_mutex_lock(&f->lock);
			if (f->n < 64) {
				f->seqs[f->n] = b->seq;
				f->streams[f->n] = b->stream;
				f->times[f->n] = b->time_ms;
				f->n++;
			}
			pthread_mutex_unlock(&f->lock);
			struct vg_ack a = {VG_ACK_OK, b->stream, b->seq};
			uint8_t buf[VG_WIRE_ACK_LEN];
			nn_send(f->sock, buf, vg_wire_ack_encode(&a, buf), 0);
			vg_batch_free(b);
		}
		nn_freemsg(msg);
	}
	return NULL;
}

static void fake_start(struct fake *f)
{
	int to = 50;
	char url[64];

	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	f->sock = nn_socket(AF_SP, NN_REP);
	assert_true(f->sock >= 0);
	nn_setsockopt(f->sock, NN_SOL_SOCKET, NN_RCVTIMEO, &to, sizeof(to));
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	for (int i = 0; i < 50; i++) {
		f->port = 20000 + rand() % 40000;
		snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", f->port);
		if (nn_bind(f->sock, url) >= 0)
			break;
		f->port = 0;
	}
	assert_true(f->port != 0);
	assert_int_equal(pthread_create(&f->th, NULL, fake_run, f), 0);
}

static void fake_stop(struct fake *f)
{
	f->stop = 1;
	pthread_join(f->th, NULL);
	nn_close(f->sock);
}

static size_t spooled(void)
{
	struct vg_spool *s;
	size_t n;

	assert_int_equal(vg_spool_open(spool, 1000, &s), 0);
	n = vg_spool_count(s);
	vg_spool_close(s);
	return n;
}

static void test_spool_resume_and_deliver(void **state)
{
	char args[1024];
	struct fake f;
	int dead_port;

	/* a port nobody listens on: every batch stays spooled */
	fake_start(&f);
	dead_port = f.port;
	fake_stop(&f);
	snprintf(args, sizeof(args),
		 "--libvirt test:///default --host h1 --proc tests/fixtures/proc/t0 "
		 "--interval 0.05 --count 3 --spool %s --collector tcp://127.0.0.1:%d "
		 "--clock-start 1795000000 --clock-step 60",
		 spool, dead_port);
	/* the drain gives up at drain_ms (2 s) and says what it left; an
	 * agent still running after 60 s is a hang (timeout's 124, or 137
	 * when its SIGTERM did not end it either), not slowness */
	int rc = run_within(args, 60);
	if (rc == 124 || rc == 137)
		fail_msg("the agent did not exit within 60 s: its drain did not give up");
	assert_int_equal(rc, 0);
	assert_int_equal(spooled(), 3);
	assert_non_null(strstr(slurp(err), "left in"));

	/* restart: the sequence continues */
	assert_int_equal(run(args), 0);
	assert_int_equal(spooled(), 6);
	struct vg_spool *s;
	assert_int_equal(vg_spool_open(spool, 1000, &s), 0);
	assert_int_equal(vg_spool_next_seq(s), 7);
	uint64_t stream = vg_spool_stream(s);
	vg_spool_close(s);

	/* a collector comes up: all six arrive, in order, then the new one */
	fake_start(&f);
	snprintf(args, sizeof(args),
		 "--libvirt test:///default --host h1 --proc tests/fixtures/proc/t0 "
		 "--interval 0.05 --count 1 --spool %s --collector tcp://127.0.0.1:%d "
		 "--clock-start 1795000000 --clock-step 60",
		 spool, f.port);
	assert_int_equal(run(args), 0);
	fake_stop(&f);
	assert_int_equal(spooled(), 0);
	pthread_mutex_lock(&f.lock);
	assert_int_equal(f.n, 7);
	for (size_t i = 0; i < 7; i++) {
		assert_int_equal(f.seqs[i], i + 1);
		assert_true(f.streams[i] == stream);
	}
	/* synthetic clock: start + k * step within each run */
	assert_true(f.times[0] == 1795000000000LL);
	assert_true(f.times[1] == 1795000060000LL);
	assert_true(f.times[2] == 1795000120000LL);
	assert_true(f.times[3] == 1795000000000LL);
	pthread_mutex_unlock(&f.lock);
}

static void test_sigterm(void **state)
{
	char args[1024];
	struct fake f;

	fake_start(&f);
	snprintf(args, sizeof(args),
		 "exec %s --libvirt test:///default --host h1 --proc tests/fixtures/proc/t0 "
		 "--interval 0.1 --spool %s --collector tcp://127.0.0.1:%d >%s 2>%s",
		 agent, spool, f.port, out, err);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", args, (char *)NULL);
		_exit(127);
	}
	/* let it deliver a few polls (a busy machine or a sanitizer build
	 * may take seconds where an idle one takes 300 ms) */
	for (int64_t w0 = vg_monotonic_ms(); vg_monotonic_ms() - w0 < 30000;) {
		size_t n;
		pthread_mutex_lock(&f.lock);
		n = f.n;
		pthread_mutex_unlock(&f.lock);
		if (n >= 3)
			break;
		vg_sleep_ms(50);
	}
	assert_int_equal(kill(pid, SIGTERM), 0);
	int st = 0;
	/* a hang guard, no timing bound: the wait ends at the exit */
	int64_t t0 = vg_monotonic_ms();
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (vg_monotonic_ms() - t0 > 60000) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			fail_msg("agent did not stop within 60 s of SIGTERM");
		}
		vg_sleep_ms(20);
	}
	fake_stop(&f);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	/* it polled a few times, everything was delivered */
	pthread_mutex_lock(&f.lock);
	assert_true(f.n >= 3);
	for (size_t i = 0; i < f.n; i++)
		assert_int_equal(f.seqs[i], i + 1);
	pthread_mutex_unlock(&f.lock);
	assert_int_equal(spooled(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_once_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_usage_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_resume_and_deliver, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigterm, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
