/*
 * agent_events_test.c — lifecycle events from libvirt's test driver.
 *
 * Connections to test:///default inside one process share one in-memory
 * hypervisor, so actions made here through a second connection produce
 * events on the module's own connection (a virsh in another process would
 * not: it has its own copy). Asserts each action's event type, the
 * domain's UUID, and that the timestamp lies between before and after the
 * action; and the pure mapping of every libvirt (event, detail).
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
#include "vigie/batch.h"
#include "vigie/clock.h"

#define UUID "6695eb01-f6a4-8304-79aa-97f2502e193f"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct { int type; int64_t t; char uuid[40]; char detail[128]; } g_ev[64];
static int g_n;

static void collect(void *ctx, const char *uuid, int type, int64_t t, const char *detail)
{
	(void)ctx;
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

/* Wait up to 5 s for event number i; returns its type or -1. */
static int wait_event(int i)
{
	for (int k = 0; k < 500; k++) {
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
	for (int k = 0; k < 500; k++) { /* until subscribed */
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
	struct { int (*act)(virDomainPtr); int want; } steps[] = {
		{virDomainSuspend, VG_EV_SUSPENDED},
		{virDomainResume, VG_EV_RESUMED},
		{virDomainDestroy, VG_EV_STOPPED},
		{virDomainCreate, VG_EV_STARTED},
	};
	for (int i = 0; i < 4; i++) {
		int64_t before = vg_now_ms();
		assert_int_equal(steps[i].act(d), 0);
		int64_t after = vg_now_ms();
		assert_int_equal(wait_event(i), steps[i].want);
		assert_string_equal(g_ev[i].uuid, UUID);
		assert_true(g_ev[i].t >= before && g_ev[i].t <= after + 1000);
	}
	assert_string_equal(g_ev[2].detail, "{\"libvirt\":\"stopped\",\"reason\":\"destroyed\"}");
	virDomainFree(d);
	virConnectClose(c);

	int64_t t0 = vg_monotonic_ms();
	vg_events_stop(e);
	assert_true(vg_monotonic_ms() - t0 < 1500);
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
