/*
 * agent_events_test.c — lifecycle events from libvirt's test driver.
 *
 * Connections to test:///default inside one process share one in-memory
 * hypervisor, so actions made here through a second connection produce
 * events on the module's own connection (a virsh in another process would
 * not: it has its own copy). Asserts each action's event type, the
 * domain's UUID, and that the timestamp lies between the action and the
 * test seeing the event; and the pure mapping of every libvirt (event,
 * detail).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <libvirt/libvirt.h>

#include "agent/events.h"
#include "agent/poll.h"
#include "vigie/batch.h"
#include "vigie/bill_meter.h"
#include "vigie/bill_usage.h"
#include "vigie/clock.h"

#include "../support/hang_guard.h"

#define UUID "6695eb01-f6a4-8304-79aa-97f2502e193f"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int type;
	int64_t t;
	char uuid[40];
	char detail[128];
} g_ev[64];
static int g_n;

/* A gate: the event thread, handed a SUSPENDED of g_gate_uuid, waits
 * inside the callback until the test opens it (so the test acts while
 * libvirt's next events can only queue). */
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static const char *g_gate_uuid;
static int g_gate_in, g_gate_open;

static void collect(void *ctx, const char *uuid, int type, int64_t t, const char *detail)
{
	pthread_mutex_lock(&g_lock);
	if (g_gate_uuid && type == VG_EV_SUSPENDED && !strcmp(uuid, g_gate_uuid)) {
		g_gate_in = 1;
		pthread_cond_broadcast(&g_cond);
		while (!g_gate_open)
			pthread_cond_wait(&g_cond, &g_lock);
	}
	pthread_mutex_unlock(&g_lock);
	if (ctx) /* a poller: the agent's own path to the batch */
		assert_int_equal(vg_poller_push_event(ctx, uuid, type, t, detail), 0);
	pthread_mutex_lock(&g_lock);
	if (g_n < 64) {
		g_ev[g_n].type = type;
		g_ev[g_n].t = t;
		snprintf(g_ev[g_n].uuid, sizeof(g_ev[g_n].uuid), "%s", uuid);
		snprintf(g_ev[g_n].detail, sizeof(g_ev[g_n].detail), "%s", detail ? detail : "");
		g_n++;
	}
	pthread_mutex_unlock(&g_lock);
}

/* Wait for event number i; returns its type, or -1 after 60 s (a hang
 * guard: the wait ends at the event). */
static int wait_event(int i)
{
	for (int k = 0; k < 6000; k++) {
		pthread_mutex_lock(&g_lock);
		int n = g_n;
		pthread_mutex_unlock(&g_lock);
		if (n > i)
			return g_ev[i].type;
		vg_sleep_ms(10);
	}
	return -1;
}

static void test_test_driver_events(void **state)
{
	struct vg_events_opts o = {"test:///default", NULL, collect, NULL};
	struct vg_events *e;
	struct vg_events_stats st;
	char err[256];
	(void)state;

	assert_int_equal(vg_events_start(&o, &e, err, sizeof(err)), 0);
	for (int k = 0; k < 6000; k++) { /* until subscribed */
		vg_events_get_stats(e, &st);
		if (st.connected)
			break;
		vg_sleep_ms(10);
	}
	assert_int_equal(st.connected, 1);

	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	virDomainPtr d = virDomainLookupByUUIDString(c, UUID);
	assert_non_null(d);
	struct {
		int (*act)(virDomainPtr);
		int want;
	} steps[] = {
		{virDomainSuspend, VG_EV_SUSPENDED},
		{virDomainResume, VG_EV_RESUMED},
		{virDomainDestroy, VG_EV_STOPPED},
		{virDomainCreate, VG_EV_STARTED},
	};
	for (int i = 0; i < 4; i++) {
		int64_t before = vg_now_ms();
		assert_int_equal(steps[i].act(d), 0);
		assert_int_equal(wait_event(i), steps[i].want);
		int64_t seen = vg_now_ms();
		assert_string_equal(g_ev[i].uuid, UUID);
		/* stamped between the action and our seeing it */
		assert_true(g_ev[i].t >= before && g_ev[i].t <= seen);
	}
	assert_string_equal(g_ev[2].detail, "{\"libvirt\":\"stopped\",\"reason\":\"destroyed\"}");
	virDomainFree(d);
	virConnectClose(c);

	/* stop wakes the loop (and its 1 s timer would anyway): it returns */
	hang_guard_arm("vg_events_stop");
	vg_events_stop(e);
	hang_guard_disarm();
}

#define RZ "5a1e0000-0000-4000-8000-00000000001a"
#define NOVA_XML(flavor, vcpus, mem)                                               \
	"<domain type='test'><name>rz</name><uuid>" RZ "</uuid>"                   \
	"<memory unit='MiB'>" mem "</memory><vcpu>" vcpus "</vcpu>"                \
	"<os><type>hvm</type></os><metadata>"                                      \
	"<nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>" \
	"<nova:name>rz</nova:name><nova:flavor name='" flavor "'>"                 \
	"<nova:memory>" mem "</nova:memory><nova:disk>10</nova:disk>"              \
	"<nova:vcpus>" vcpus "</nova:vcpus></nova:flavor>"                         \
	"<nova:owner><nova:user uuid='u1'>u</nova:user>"                           \
	"<nova:project uuid='p1'>p</nova:project></nova:owner>"                    \
	"</nova:instance></metadata></domain>"

/* The index of the first event of type for uuid from `from` on, waiting
 * for it; -1 if none came in 60 s (a hang guard). */
static int wait_for(int from, const char *uuid, int type)
{
	for (int k = 0; k < 6000; k++) {
		pthread_mutex_lock(&g_lock);
		for (int i = from; i < g_n; i++)
			if (g_ev[i].type == type && !strcmp(g_ev[i].uuid, uuid)) {
				pthread_mutex_unlock(&g_lock);
				return i;
			}
		pthread_mutex_unlock(&g_lock);
		vg_sleep_ms(10);
	}
	return -1;
}

static void poll_into(struct vg_poller *p, struct vg_bill_meter *m, int64_t t,
		      uint64_t seq)
{
	struct vg_batch *b = vg_batch_new("h1", 1, seq, t);
	assert_non_null(b);
	assert_int_equal(vg_poller_poll(p, t, NULL, 0, b, NULL), 0);
	assert_int_equal(vg_bill_meter_batch(m, b), 0);
	vg_batch_free(b);
}

/* A Nova-style resize on the test driver: the domain runs m1.small, is
 * destroyed, redefined with m1.large (same UUID) and started again. The
 * module sends RESIZED at the STARTED event's own instant (a synthetic
 * clock makes every instant exact), the poller carries the exact events
 * to its batches, and the billing meter splits the usage there to the
 * millisecond: m1.small from the first start to the stop, m1.large from
 * the restart. Polls happen seconds after each action on purpose: a
 * polled resize would land on the poll time. */
static void test_resize_exact(void **state)
{
	const int64_t T1 = 1782900000123LL; /* 2026-07-01T10:00:00.123Z */
	const int64_t T2 = T1 + 3600000 + 7, T3 = T2 + 20000 + 11,
		      T4 = T3 + 5000 + 13;
	struct vg_clock ck;
	struct vg_poller *p;
	struct vg_poller_opts po = {.host = "h1", .libvirt_uri = "test:///default", .proc_root = "tests/fixtures/proc/t0", .no_host_fs = 1};
	struct vg_bill_meter *m;
	struct vg_events *e;
	struct vg_events_stats st;
	char err[256];
	int i;

	(void)state;
	assert_int_equal(vg_poller_new(&po, &p), 0);
	assert_int_equal(vg_bill_meter_open(":memory:", &m, err, sizeof(err)), 0);
	vg_clock_synthetic(&ck, T1, 0);
	struct vg_events_opts o = {"test:///default", &ck, collect, p};
	pthread_mutex_lock(&g_lock);
	int base = g_n;
	pthread_mutex_unlock(&g_lock);
	assert_int_equal(vg_events_start(&o, &e, err, sizeof(err)), 0);
	for (int k = 0; k < 6000; k++) {
		vg_events_get_stats(e, &st);
		if (st.connected)
			break;
		vg_sleep_ms(10);
	}
	assert_int_equal(st.connected, 1);

	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	virDomainPtr d = virDomainDefineXML(c, NOVA_XML("m1.small", "1", "1024"));
	assert_non_null(d);
	assert_int_equal(virDomainCreate(d), 0);
	assert_true((i = wait_for(base, RZ, VG_EV_STARTED)) >= 0);
	assert_int_equal(g_ev[i].t, T1);
	poll_into(p, m, T1 + 4000, 1);

	vg_clock_synthetic(&ck, T2, 0);
	assert_int_equal(virDomainDestroy(d), 0);
	assert_true((i = wait_for(base, RZ, VG_EV_STOPPED)) >= 0);
	assert_int_equal(g_ev[i].t, T2);
	poll_into(p, m, T2 + 4000, 2);

	vg_clock_synthetic(&ck, T3, 0);
	virDomainFree(d);
	d = virDomainDefineXML(c, NOVA_XML("m1.large", "4", "8192"));
	assert_non_null(d);
	vg_clock_synthetic(&ck, T4, 0);
	assert_int_equal(virDomainCreate(d), 0);
	int started = wait_for(i + 1, RZ, VG_EV_STARTED);
	int resized = wait_for(base, RZ, VG_EV_RESIZED);
	assert_true(started >= 0 && resized >= 0);
	assert_int_equal(g_ev[started].t, T4);
	assert_int_equal(g_ev[resized].t, T4);
	assert_non_null(strstr(g_ev[resized].detail, "\"flavor\":\"m1.large\",\"vcpus\":4,\"memory_mb\":8192"));
	assert_null(strstr(g_ev[resized].detail, "derived"));
	poll_into(p, m, T4 + 9000, 3);
	vg_events_get_stats(e, &st);
	assert_int_equal(st.resized, 1);

	/* the billing split, to the millisecond */
	struct vg_bill_usage u;
	assert_int_equal(vg_bill_usage_load(vg_bill_meter_db(m), T1 - 3600000,
					    T4 + 86400000, NULL, &u),
			 0);
	size_t r = vg_bill_usage_find(&u, RZ);
	assert_true(r != VG_BILL_NO_INDEX);
	const struct vg_bill_usage_seg *sg[4];
	size_t ns = 0;
	for (size_t k = 0; k < u.nsegs && ns < 4; k++)
		if (u.segs[k].res == r && u.segs[k].kind == VG_BILL_U_COMPUTE)
			sg[ns++] = &u.segs[k];
	assert_int_equal(ns, 2);
	assert_string_equal(sg[0]->flavor, "m1.small");
	assert_int_equal(sg[0]->start_ms, T1);
	assert_int_equal(sg[0]->end_ms, T2);
	assert_string_equal(sg[1]->flavor, "m1.large");
	assert_int_equal(sg[1]->vcpus, 4);
	assert_int_equal(sg[1]->ram_mb, 8192);
	assert_int_equal(sg[1]->start_ms, T4);
	vg_bill_usage_clear(&u);

	virDomainDestroy(d);
	virDomainUndefine(d);
	virDomainFree(d);
	virConnectClose(c);
	vg_events_stop(e);
	vg_bill_meter_close(m);
	vg_poller_free(p);
}

/* The flavor a start runs with is read from the domain's XML after
 * libvirt's dispatch returns. A domain stopped and redefined with a new
 * flavor before that read (a resize right after a start, or a loaded
 * host) gave the run that started the next definition's flavor, and a
 * RESIZED at its start. Here the event thread is held inside the callback
 * while the domain starts, stops and is redefined, so the STARTED is read
 * after all of it: the XML's id is not the start's, so the STARTED goes
 * without a flavor and no RESIZED is made up. */
#define RX "5a1e0000-0000-4000-8000-00000000002b"
#define RX_XML(flavor, vcpus)                                                      \
	"<domain type='test'><name>rx</name><uuid>" RX "</uuid>"                   \
	"<memory unit='MiB'>512</memory><vcpu>" vcpus "</vcpu>"                    \
	"<os><type>hvm</type></os><metadata>"                                      \
	"<nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>" \
	"<nova:flavor name='" flavor "'><nova:memory>512</nova:memory>"            \
	"<nova:vcpus>" vcpus "</nova:vcpus></nova:flavor>"                         \
	"</nova:instance></metadata></domain>"

static void test_start_of_another_incarnation(void **state)
{
	struct vg_events_opts o = {"test:///default", NULL, collect, NULL};
	struct vg_events *e;
	struct vg_events_stats st;
	char err[256];
	int i, k;

	(void)state;
	pthread_mutex_lock(&g_lock);
	int base = g_n;
	pthread_mutex_unlock(&g_lock);
	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	virDomainPtr d = virDomainDefineXML(c, RX_XML("tiny", "1"));
	assert_non_null(d);
	assert_int_equal(vg_events_start(&o, &e, err, sizeof(err)), 0);
	for (k = 0; k < 6000; k++) {
		vg_events_get_stats(e, &st);
		if (st.connected)
			break;
		vg_sleep_ms(10);
	}
	assert_int_equal(st.connected, 1);
	assert_int_equal(virDomainCreate(d), 0);
	assert_true((i = wait_for(base, RX, VG_EV_STARTED)) >= 0);
	assert_non_null(strstr(g_ev[i].detail, "\"flavor\":\"tiny\""));

	/* hold the event thread, then start, stop and redefine */
	pthread_mutex_lock(&g_lock);
	g_gate_uuid = RX;
	g_gate_in = g_gate_open = 0;
	pthread_mutex_unlock(&g_lock);
	assert_int_equal(virDomainSuspend(d), 0);
	pthread_mutex_lock(&g_lock);
	while (!g_gate_in)
		pthread_cond_wait(&g_cond, &g_lock);
	pthread_mutex_unlock(&g_lock);
	assert_int_equal(virDomainDestroy(d), 0);
	assert_int_equal(virDomainCreate(d), 0);
	assert_int_equal(virDomainDestroy(d), 0);
	virDomainFree(d);
	assert_non_null(d = virDomainDefineXML(c, RX_XML("big", "2")));
	pthread_mutex_lock(&g_lock);
	g_gate_open = 1;
	g_gate_uuid = NULL;
	pthread_cond_broadcast(&g_cond);
	pthread_mutex_unlock(&g_lock);

	assert_true((i = wait_for(i + 1, RX, VG_EV_STARTED)) >= 0);
	printf("# STARTED: %s\n", g_ev[i].detail);
	assert_null(strstr(g_ev[i].detail, "flavor"));
	vg_events_get_stats(e, &st);
	assert_int_equal(st.resized, 0);
	assert_int_equal(st.start_other, 1);
	pthread_mutex_lock(&g_lock);
	for (k = base; k < g_n; k++)
		assert_false(g_ev[k].type == VG_EV_RESIZED && !strcmp(g_ev[k].uuid, RX));
	pthread_mutex_unlock(&g_lock);

	/* its next start runs the new flavor: a resize at that start */
	assert_int_equal(virDomainCreate(d), 0);
	assert_true((i = wait_for(i + 1, RX, VG_EV_RESIZED)) >= 0);
	assert_non_null(strstr(g_ev[i].detail, "\"flavor\":\"big\",\"vcpus\":2"));

	virDomainDestroy(d);
	virDomainUndefine(d);
	virDomainFree(d);
	virConnectClose(c);
	vg_events_stop(e);
}

static void test_map(void **state)
{
	char b[128];
	(void)state;
	assert_int_equal(vg_events_map(VIR_DOMAIN_EVENT_DEFINED, VIR_DOMAIN_EVENT_DEFINED_ADDED, b, sizeof(b)), VG_EV_DEFINED);
	assert_int_equal(vg_events_map(VIR_DOMAIN_EVENT_DEFINED, VIR_DOMAIN_EVENT_DEFINED_UPDATED, b, sizeof(b)), 0);
	assert_int_equal(vg_events_map(VIR_DOMAIN_EVENT_UNDEFINED, VIR_DOMAIN_EVENT_UNDEFINED_REMOVED, b, sizeof(b)), VG_EV_UNDEFINED);
	assert_int_equal(vg_events_map(VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_BOOTED, b, sizeof(b)), VG_EV_STARTED);
	assert_string_equal(b, "{\"libvirt\":\"started\",\"reason\":\"booted\"}");
	assert_int_equal(vg_events_map(VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_WAKEUP, b, sizeof(b)), VG_EV_RESUMED);
	assert_int_equal(vg_events_map(VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN, b, sizeof(b)), VG_EV_STOPPED);
	assert_int_equal(vg_events_map(VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_CRASHED, b, sizeof(b)), VG_EV_STOPPED);
	assert_int_equal(vg_events_map(VIR_DOMAIN_EVENT_SHUTDOWN, 0, b, sizeof(b)), 0);
	assert_int_equal(vg_events_map(VIR_DOMAIN_EVENT_CRASHED, 0, b, sizeof(b)), 0);
	assert_int_equal(vg_events_map(VIR_DOMAIN_EVENT_PMSUSPENDED, 0, b, sizeof(b)), VG_EV_SUSPENDED);
	assert_int_equal(vg_events_map(VIR_DOMAIN_EVENT_SUSPENDED, 0, b, sizeof(b)), VG_EV_SUSPENDED);
	assert_int_equal(vg_events_map(VIR_DOMAIN_EVENT_RESUMED, 0, b, sizeof(b)), VG_EV_RESUMED);
	assert_int_equal(vg_events_map(42, 0, b, sizeof(b)), 0);
	assert_string_equal(b, "{\"libvirt\":42,\"detail\":0}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map),
		cmocka_unit_test(test_test_driver_events),
		cmocka_unit_test(test_resize_exact),
		cmocka_unit_test(test_start_of_another_incarnation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
