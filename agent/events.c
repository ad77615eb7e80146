/*
 * events.c — libvirt domain lifecycle events on a thread of their own
 * (agent/events.h).
 *
 * Design: libvirt delivers events only through an event loop the
 * application runs. The default implementation is registered once per
 * process (pthread_once) before this module's connection opens; the
 * thread alternates virEventRunDefaultImpl with connection upkeep. A
 * 1-second libvirt timer guarantees the loop returns at least once a
 * second, so the thread notices a stop request or a dead connection
 * quickly; vg_events_stop fires that timer at once to wake it.
 *
 * Invariants: only the event thread touches the connection and the
 * callback registration; counters are read under the mutex.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "agent/events.h"
#include "vigie/batch.h"

struct vg_events {
	char *uri;
	const struct vg_clock *clock;
	vg_events_fn fn;
	void *ctx;
	pthread_t thread;
	pthread_mutex_t lock;
	int stop;             /* under lock */
	int timer;            /* libvirt timeout id */
	virConnectPtr conn;   /* event thread only */
	int cb_id;
	int dead;             /* set by the close callback */
	int64_t next_try_ms, backoff_ms;
	struct vg_events_stats st; /* under lock */
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_impl_rc;

static void register_impl(void)
{
	g_impl_rc = virEventRegisterDefaultImpl();
}

static void quiet(void *ud, virErrorPtr err)
{
	(void)ud;
	(void)err;
}

int vg_events_map(int ev, int det, char *buf, size_t len)
{
	static const char *const evn[] = {"defined", "undefined", "started",
		"suspended", "resumed", "stopped", "shutdown", "pmsuspended",
		"crashed"};
	const char *reason = NULL;
	int type = 0;

	switch (ev) {
	case VIR_DOMAIN_EVENT_DEFINED:
		if (det == VIR_DOMAIN_EVENT_DEFINED_ADDED ||
		    det == VIR_DOMAIN_EVENT_DEFINED_FROM_SNAPSHOT)
			type = VG_EV_DEFINED;
		reason = det == VIR_DOMAIN_EVENT_DEFINED_ADDED ? "added" : "snapshot";
		break;
	case VIR_DOMAIN_EVENT_UNDEFINED:
		if (det == VIR_DOMAIN_EVENT_UNDEFINED_REMOVED)
			type = VG_EV_UNDEFINED;
		reason = "removed";
		break;
	case VIR_DOMAIN_EVENT_STARTED: {
		static const char *const r[] = {"booted", "migrated", "restored",
						"snapshot", "wakeup"};
		type = det == VIR_DOMAIN_EVENT_STARTED_WAKEUP ? VG_EV_RESUMED
							      : VG_EV_STARTED;
		reason = det >= 0 && det < 5 ? r[det] : NULL;
		break;
	}
	case VIR_DOMAIN_EVENT_SUSPENDED:
	case VIR_DOMAIN_EVENT_PMSUSPENDED:
		type = VG_EV_SUSPENDED;
		break;
	case VIR_DOMAIN_EVENT_RESUMED:
		type = VG_EV_RESUMED;
		break;
	case VIR_DOMAIN_EVENT_STOPPED: {
		static const char *const r[] = {"shutdown", "destroyed", "crashed",
						"migrated", "saved", "failed",
						"snapshot"};
		type = VG_EV_STOPPED;
		reason = det >= 0 && det < 7 ? r[det] : NULL;
		break;
	}
	default: /* SHUTDOWN (STOPPED follows), CRASHED, newer ones */
		break;
	}
	if (buf && len) {
		if (ev >= 0 && ev < 9 && reason)
			snprintf(buf, len, "{\"libvirt\":\"%s\",\"reason\":\"%s\"}",
				 evn[ev], reason);
		else if (ev >= 0 && ev < 9)
			snprintf(buf, len, "{\"libvirt\":\"%s\",\"detail\":%d}", evn[ev], det);
		else
			snprintf(buf, len, "{\"libvirt\":%d,\"detail\":%d}", ev, det);
	}
	return type;
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int ev, int det,
			void *opaque)
{
	struct vg_events *e = opaque;
	char uuid[VIR_UUID_STRING_BUFLEN], detail[128];
	int64_t t = e->clock ? vg_clock_now(e->clock) : vg_now_ms();
	int type;

	(void)conn;
	pthread_mutex_lock(&e->lock);
	e->st.received++;
	pthread_mutex_unlock(&e->lock);
	type = vg_events_map(ev, det, detail, sizeof(detail));
	if (!type || virDomainGetUUIDString(dom, uuid) < 0)
		return 0;
	e->fn(e->ctx, uuid, type, t, detail);
	pthread_mutex_lock(&e->lock);
	e->st.delivered++;
	pthread_mutex_unlock(&e->lock);
	return 0;
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
	struct vg_events *e = opaque;
	(void)conn;
	(void)reason;
	e->dead = 1;
}

static void on_tick(int timer, void *opaque)
{
	(void)timer;
	(void)opaque;
}

static void disconnect(struct vg_events *e)
{
	if (!e->conn)
		return;
	if (e->cb_id >= 0)
		virConnectDomainEventDeregisterAny(e->conn, e->cb_id);
	virConnectUnregisterCloseCallback(e->conn, on_close);
	virConnectClose(e->conn);
	e->conn = NULL;
	e->cb_id = -1;
	pthread_mutex_lock(&e->lock);
	e->st.connected = 0;
	pthread_mutex_unlock(&e->lock);
}

static void try_connect(struct vg_events *e)
{
	int64_t now = vg_monotonic_ms();

	if (now < e->next_try_ms)
		return;
	e->dead = 0;
	e->conn = virConnectOpenReadOnly(e->uri);
	if (e->conn) {
		virConnectRegisterCloseCallback(e->conn, on_close, e, NULL);
		e->cb_id = virConnectDomainEventRegisterAny(
			e->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
			VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), e, NULL);
	}
	if (!e->conn || e->cb_id < 0) {
		disconnect(e);
		e->next_try_ms = now + e->backoff_ms;
		e->backoff_ms = e->backoff_ms * 2 > 60000 ? 60000 : e->backoff_ms * 2;
		return;
	}
	e->backoff_ms = 1000;
	pthread_mutex_lock(&e->lock);
	e->st.connects++;
	e->st.connected = 1;
	pthread_mutex_unlock(&e->lock);
}

static void *run(void *arg)
{
	struct vg_events *e = arg;

	for (;;) {
		pthread_mutex_lock(&e->lock);
		int stop = e->stop;
		pthread_mutex_unlock(&e->lock);
		if (stop)
			break;
		if (e->conn && (e->dead || virConnectIsAlive(e->conn) != 1)) {
			disconnect(e);
			e->next_try_ms = vg_monotonic_ms() + e->backoff_ms;
		}
		if (!e->conn)
			try_connect(e);
		virEventRunDefaultImpl();
	}
	disconnect(e);
	return NULL;
}

int vg_events_start(const struct vg_events_opts *o, struct vg_events **out,
		    char *err, size_t errlen)
{
	struct vg_events *e;

	*out = NULL;
	if (!o->uri || !*o->uri || !o->fn) {
		snprintf(err, errlen, "events: no libvirt URI or callback");
		return -EINVAL;
	}
	pthread_once(&g_once, register_impl);
	if (g_impl_rc < 0) {
		snprintf(err, errlen, "events: cannot register libvirt's event loop");
		return -EIO;
	}
	virSetErrorFunc(NULL, quiet);
	e = calloc(1, sizeof(*e));
	if (!e || !(e->uri = strdup(o->uri))) {
		free(e);
		snprintf(err, errlen, "events: out of memory");
		return -ENOMEM;
	}
	e->clock = o->clock;
	e->fn = o->fn;
	e->ctx = o->ctx;
	e->cb_id = -1;
	e->backoff_ms = 1000;
	pthread_mutex_init(&e->lock, NULL);
	e->timer = virEventAddTimeout(1000, on_tick, NULL, NULL);
	/* The first connection on the caller's thread, before the poller's:
	 * events are subscribed before the first poll, and the two threads
	 * never make their first libvirt calls together (libxml2 2.9 sets up
	 * its globals without a lock, and leaked a mutex when they did). */
	if (e->timer >= 0)
		try_connect(e);
	if (e->timer < 0 || pthread_create(&e->thread, NULL, run, e)) {
		if (e->timer >= 0)
			virEventRemoveTimeout(e->timer);
		pthread_mutex_destroy(&e->lock);
		free(e->uri);
		free(e);
		snprintf(err, errlen, "events: cannot start the event thread");
		return -EAGAIN;
	}
	*out = e;
	return 0;
}

void vg_events_stop(struct vg_events *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	e->stop = 1;
	pthread_mutex_unlock(&e->lock);
	virEventUpdateTimeout(e->timer, 0); /* wake the loop now */
	pthread_join(e->thread, NULL);
	virEventRemoveTimeout(e->timer);
	pthread_mutex_destroy(&e->lock);
	free(e->uri);
	free(e);
}

void vg_events_get_stats(struct vg_events *e, struct vg_events_stats *out)
{
	pthread_mutex_lock(&e->lock);
	*out = e->st;
	pthread_mutex_unlock(&e->lock);
}
