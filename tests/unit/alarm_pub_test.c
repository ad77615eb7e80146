/*
 * alarm_pub_test.c — the PUB socket's topics (alarms/pub.c,
 * alarms/notice.c; the format is vigie/alarm_pub.h's): a nanomsg SUB
 * filter is a byte prefix, so "metric.a." must not match project "a.b"
 * nor "metric.p.vm1." resource "vm1.x", and "alarm.a." must not match
 * project "a.b": the project and the resource id escape '.' (%2E), the
 * last part (metric, alarm name) keeps its dots.
 *
 * A real PUB socket (vg_alarm_pub_open on inproc://) and a real SUB
 * socket. PUB/SUB loses what is sent before the subscription reaches
 * the publisher, so the test first sends a probe until one arrives;
 * then it sends the message that must be filtered out followed by one
 * that must arrive: the pipe keeps their order, so the first message
 * received after the probes says whether the filter let the wrong one
 * through, without any timing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>

#include "alarms/notice.h"
#include "vigie/alarm_pub.h"
#include "vigie/batch.h"

#define URL "inproc://vigie-alarm-pub-test"
#define T0 1794999600000LL

static void test_topic_parts(void **state)
{
	char buf[128];
	int n;

	(void)state;
	n = vg_alarm_topic_append_part(buf, sizeof(buf), 0, "a.b c%");
	assert_int_equal(n, (int)strlen("a%2Eb%20c%25"));
	assert_string_equal(buf, "a%2Eb%20c%25");
	/* the last part keeps its dots */
	n = vg_alarm_topic_append(buf, sizeof(buf), 0, "cpu.util");
	assert_string_equal(buf, "cpu.util");
	assert_int_equal(vg_alarm_notice_topic("a.b", "cpu.high", buf, sizeof(buf)) > 0, 1);
	assert_string_equal(buf, "alarm.a%2Eb.cpu.high");
	assert_int_equal(vg_alarm_notice_topic("a", "x", buf, 8), -ENOSPC);
}

/* One sample of resource id of project on the metric stream. */
static void sample(struct vg_consumer *c, const char *project, const char *id,
		   double v)
{
	struct vg_batch *b = vg_batch_new("h1", 1, 1, T0);

	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, T0));
	assert_int_equal(vg_batch_identity(b, project, NULL, NULL), 0);
	assert_int_equal(vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, v), 0);
	assert_int_equal(c->batch(c->ctx, b), 0);
	vg_batch_free(b);
}

/* Receive one message (the 10 s timeout only bounds a broken run). */
static int recv_msg(int sub, char *out, size_t len)
{
	char *m = NULL;
	int n = nn_recv(sub, &m, NN_MSG, 0);

	if (n < 0)
		return -1;
	snprintf(out, len, "%.*s", n, m);
	nn_freemsg(m);
	return n;
}

/* Send probes (via send) until sub receives one starting with probe. */
static void wait_subscribed(int sub, void (*send)(void *), void *ctx,
			    const char *probe)
{
	int to = 50;
	char got[2048];

	nn_setsockopt(sub, NN_SOL_SOCKET, NN_RCVTIMEO, &to, sizeof(to));
	for (int i = 0; i < 400; i++) {
		send(ctx);
		if (recv_msg(sub, got, sizeof(got)) > 0) {
			assert_int_equal(strncmp(got, probe, strlen(probe)), 0);
			break;
		}
		if (i == 399)
			fail_msg("the subscription never reached the PUB socket");
	}
	/* the probes still in flight */
	while (recv_msg(sub, got, sizeof(got)) > 0)
		assert_int_equal(strncmp(got, probe, strlen(probe)), 0);
	to = 10000;
	nn_setsockopt(sub, NN_SOL_SOCKET, NN_RCVTIMEO, &to, sizeof(to));
}

struct probe {
	struct vg_consumer c;
	struct vg_alarm_pub *p;
};

static void metric_probe(void *ctx)
{
	struct probe *pr = ctx;
	sample(&pr->c, "a", "probe", 0);
}

static void alarm_probe(void *ctx)
{
	struct probe *pr = ctx;
	assert_int_equal(vg_alarm_pub_send(pr->p, "alarm.a.probe", "{}", 2, 1), 0);
}

static void test_prefix_is_one_project(void **state)
{
	struct probe pr;
	char err[256], got[2048], topic[256];
	int sub;

	(void)state;
	assert_int_equal(vg_alarm_pub_open(URL, 0, &pr.p, err, sizeof(err)), 0);
	pr.c = vg_alarm_pub_consumer(pr.p);

	/* metrics: project "a" only, then one resource of it only */
	sub = nn_socket(AF_SP, NN_SUB);
	assert_true(sub >= 0);
	assert_int_equal(nn_setsockopt(sub, NN_SUB, NN_SUB_SUBSCRIBE, "metric.a.", 9), 0);
	assert_true(nn_connect(sub, URL) >= 0);
	wait_subscribed(sub, metric_probe, &pr, "metric.a.probe.cpu.util ");
	sample(&pr.c, "a.b", "vm-ab", 1); /* must not arrive */
	sample(&pr.c, "a", "vm-a", 2);
	assert_true(recv_msg(sub, got, sizeof(got)) > 0);
	if (strncmp(got, "metric.a.vm-a.cpu.util ", 23))
		fail_msg("subscribed to metric.a., got: %s", got);
	/* a project with a dot is still reachable, escaped */
	nn_setsockopt(sub, NN_SUB, NN_SUB_SUBSCRIBE, "metric.a%2Eb.", 13);
	sample(&pr.c, "a.b", "vm-ab", 3);
	assert_true(recv_msg(sub, got, sizeof(got)) > 0);
	assert_int_equal(strncmp(got, "metric.a%2Eb.vm-ab.cpu.util ", 28), 0);
	nn_close(sub);

	/* one resource: "vm1." must not take "vm1.x" */
	sub = nn_socket(AF_SP, NN_SUB);
	assert_int_equal(nn_setsockopt(sub, NN_SUB, NN_SUB_SUBSCRIBE, "metric.a.vm1.", 13), 0);
	nn_setsockopt(sub, NN_SUB, NN_SUB_SUBSCRIBE, "metric.a.probe.", 15);
	assert_true(nn_connect(sub, URL) >= 0);
	wait_subscribed(sub, metric_probe, &pr, "metric.a.probe.");
	sample(&pr.c, "a", "vm1.x", 4); /* must not arrive */
	sample(&pr.c, "a", "vm1", 5);
	assert_true(recv_msg(sub, got, sizeof(got)) > 0);
	if (strncmp(got, "metric.a.vm1.cpu.util ", 22))
		fail_msg("subscribed to metric.a.vm1., got: %s", got);
	nn_close(sub);

	/* alarms: project "a" only */
	sub = nn_socket(AF_SP, NN_SUB);
	assert_int_equal(nn_setsockopt(sub, NN_SUB, NN_SUB_SUBSCRIBE, "alarm.a.", 8), 0);
	assert_true(nn_connect(sub, URL) >= 0);
	wait_subscribed(sub, alarm_probe, &pr, "alarm.a.probe ");
	assert_true(vg_alarm_notice_topic("a.b", "high", topic, sizeof(topic)) > 0);
	assert_int_equal(vg_alarm_pub_send(pr.p, topic, "{\"n\":1}", 7, 1), 0);
	assert_true(vg_alarm_notice_topic("a", "high", topic, sizeof(topic)) > 0);
	assert_int_equal(vg_alarm_pub_send(pr.p, topic, "{\"n\":2}", 7, 1), 0);
	assert_true(recv_msg(sub, got, sizeof(got)) > 0);
	if (strcmp(got, "alarm.a.high {\"n\":2}"))
		fail_msg("subscribed to alarm.a., got: %s", got);
	nn_close(sub);

	vg_alarm_pub_close(pr.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_topic_parts),
		cmocka_unit_test(test_prefix_is_one_project),
	};
	return cmocka_run_group_tests_name("alarm_pub", tests, NULL, NULL);
}
