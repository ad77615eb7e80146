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

#include "agent/domxml.h"
#include "agent/events.h"
#include "vigie/batch.h"
#include "vigie/hmap.h"

/* Domains started since the last pass of the loop, whose live XML is read
 * after the dispatch returns (never from inside libvirt's callback). A
 * full list drops the start (counted): polling then sees the resize. */
#define MAX_STARTS 1024
/* Flavors remembered (entries survive UNDEFINED: a resize may undefine and
 * define again); past this many, all are forgotten and re-learnt. */
#define MAX_FLAVORS 65536

struct flavor {
	char name[128];
	long vcpus, memory_mb, disk_gb;
};

struct start {
	char uuid[VIR_UUID_STRING_BUFLEN];
	int id; /* the incarnation that started (libvirt's domain id) */
	int64_t t;
	char detail[128];
};

struct vg_events {
	char *uri;
	const struct vg_clock *clock;
	vg_events_fn fn;
	void *ctx;
	pthread_t thread;
	pthread_mutex_t lock;
	int stop;           /* under lock */
	int timer;          /* libvirt timeout id */
	virConnectPtr conn; /* event thread only */
	int cb_id;
	int dead; /* set by the close callback */
	int64_t next_try_ms, backoff_ms;
	struct vg_events_stats st; /* under lock */
	/* resize detection, event thread only */
	struct vg_hmap flavors; /* uuid -> struct flavor: last one seen */
	struct start starts[MAX_STARTS];
	size_t nstarts;
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
	if (type == VG_EV_STARTED && ev == VIR_DOMAIN_EVENT_STARTED) {
		/* Delivered by check_starts with the flavor it runs with, as
		 * soon as this dispatch returns. */
		pthread_mutex_lock(&e->lock);
		if (e->nstarts < MAX_STARTS) {
			struct start *s = &e->starts[e->nstarts++];
			unsigned int id = virDomainGetID(dom);
			memcpy(s->uuid, uuid, sizeof(uuid));
			s->id = id == (unsigned int)-1 ? -1 : (int)id;
			s->t = t;
			snprintf(s->detail, sizeof(s->detail), "%s", detail);
			pthread_mutex_unlock(&e->lock);
			return 0;
		}
		e->st.resize_dropped++;
		pthread_mutex_unlock(&e->lock);
	}
	e->fn(e->ctx, uuid, type, t, detail);
	pthread_mutex_lock(&e->lock);
	e->st.delivered++;
	pthread_mutex_unlock(&e->lock);
	return 0;
}

/* ---- resizes --------------------------------------------------------------- */

/* The flavor in dom's XML (live if running). id >= 0: the XML must be of
 * that running incarnation, else -ESTALE (the domain stopped, was
 * redefined or started again since: its XML says nothing of that run). */
static int flavor_of(virDomainPtr dom, int id, struct flavor *f)
{
	char *xml = virDomainGetXMLDesc(dom, 0);
	struct vg_domxml m;
	int rc = -EIO;

	if (!xml)
		return rc;
	if (vg_domxml_parse(xml, &m) != 0) {
		free(xml);
		return rc;
	}
	if (id >= 0 && m.id != id) {
		rc = -ESTALE;
	} else {
		memset(f, 0, sizeof(*f));
		snprintf(f->name, sizeof(f->name), "%s", m.flavor ? m.flavor : "");
		f->vcpus = m.flavor_vcpus;
		f->memory_mb = m.flavor_memory_mb;
		f->disk_gb = m.flavor_disk_gb;
		rc = 0;
	}
	vg_domxml_clear(&m);
	free(xml);
	return rc;
}

/* The known parts of f as JSON members ("flavor":"m1.large","vcpus":4,...)
 * without braces; "" when nothing is known (a domain without Nova or
 * vigie metadata), so no consumer mistakes "" for a flavor. */
static void flavor_json(const struct flavor *f, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	if (f->name[0]) {
		n = (size_t)snprintf(out, len, "\"flavor\":\"");
		for (const char *c = f->name; *c && n + 2 < len && n < 300; c++)
			if ((unsigned char)*c >= 0x20 && *c != '"' && *c != '\\')
				out[n++] = *c;
		out[n++] = '"';
		out[n] = '\0';
	}
	const struct {
		const char *k;
		long v;
	} num[] = {
		{"vcpus", f->vcpus}, {"memory_mb", f->memory_mb}, {"disk_gb", f->disk_gb}};
	for (size_t i = 0; i < 3 && n < len; i++)
		if (num[i].v >= 0)
			n += (size_t)snprintf(out + n, len - n, "%s\"%s\":%ld",
					      n ? "," : "", num[i].k, num[i].v);
}

static void flavors_clear(struct vg_events *e)
{
	size_t pos = 0;
	const struct vg_hmap_entry *it;

	while ((it = vg_hmap_next(&e->flavors, &pos)))
		free(it->value);
	vg_hmap_release(&e->flavors);
	vg_hmap_init(&e->flavors);
}

/* Remember f for uuid; 1 if a different flavor was known before. */
static int flavor_update(struct vg_events *e, const char *uuid,
			 const struct flavor *f, struct flavor *old)
{
	struct flavor *k = vg_hmap_gets(&e->flavors, uuid);

	if (k) {
		int changed = strcmp(k->name, f->name) ||
			      (k->vcpus >= 0 && f->vcpus >= 0 && k->vcpus != f->vcpus) ||
			      (k->memory_mb >= 0 && f->memory_mb >= 0 &&
			       k->memory_mb != f->memory_mb) ||
			      (k->disk_gb >= 0 && f->disk_gb >= 0 && k->disk_gb != f->disk_gb);
		*old = *k;
		*k = *f;
		return changed && (f->name[0] || f->vcpus >= 0);
	}
	if (vg_hmap_count(&e->flavors) >= MAX_FLAVORS)
		flavors_clear(e); /* bound: forget all, re-learn at next starts */
	if (!(k = malloc(sizeof(*k))))
		return 0;
	*k = *f;
	if (vg_hmap_puts(&e->flavors, uuid, k))
		free(k);
	return 0;
}

/* The flavor of every domain at connection time: what a later start is
 * compared with. One XML read per domain, once per connection. */
static void prime_flavors(struct vg_events *e)
{
	virDomainPtr *doms = NULL;
	int n = virConnectListAllDomains(e->conn, &doms, 0);

	for (int i = 0; i < n; i++) {
		char uuid[VIR_UUID_STRING_BUFLEN];
		struct flavor f, old;

		if (virDomainGetUUIDString(doms[i], uuid) == 0 &&
		    flavor_of(doms[i], -1, &f) == 0)
			flavor_update(e, uuid, &f, &old);
		virDomainFree(doms[i]);
	}
	free(doms);
}

/* After a dispatch: for each domain that started, compare the flavor it
 * runs with to the one known before; a different one took effect at the
 * start (a Nova resize stops, redefines and starts the domain, and a
 * redefinition of a running domain waits for the next start), so RESIZED
 * carries the STARTED event's own instant. */
static void check_starts(struct vg_events *e)
{
	struct start st[MAX_STARTS];
	size_t n;

	pthread_mutex_lock(&e->lock);
	n = e->nstarts;
	memcpy(st, e->starts, n * sizeof(st[0]));
	e->nstarts = 0;
	pthread_mutex_unlock(&e->lock);
	for (size_t i = 0; i < n; i++) {
		virDomainPtr dom = e->conn ? virDomainLookupByUUIDString(e->conn, st[i].uuid) : NULL;
		struct flavor f, old;
		char fl[400], detail[600];
		int rc = -1, changed = 0;

		if (dom) {
			rc = flavor_of(dom, st[i].id, &f);
			virDomainFree(dom);
		}
		if (rc == -ESTALE) { /* polling then sees the flavor it runs */
			pthread_mutex_lock(&e->lock);
			e->st.start_other++;
			pthread_mutex_unlock(&e->lock);
		}
		if (rc == 0) {
			changed = flavor_update(e, st[i].uuid, &f, &old);
			flavor_json(&f, fl, sizeof(fl));
			/* STARTED carries the flavor it runs with, so billing's
			 * start at this instant has it (a RESIZED at the same
			 * instant would sort before the start). */
			size_t dl = strlen(st[i].detail);
			if (!fl[0])
				snprintf(detail, sizeof(detail), "%s", st[i].detail);
			else if (dl > 1 && st[i].detail[dl - 1] == '}')
				snprintf(detail, sizeof(detail), "%.*s,%s}", (int)(dl - 1),
					 st[i].detail, fl);
			else
				snprintf(detail, sizeof(detail), "{%s}", fl);
		} else {
			snprintf(detail, sizeof(detail), "%s", st[i].detail);
		}
		e->fn(e->ctx, st[i].uuid, VG_EV_STARTED, st[i].t, detail);
		if (changed && fl[0]) {
			snprintf(detail, sizeof(detail),
				 "{%s,\"libvirt\":\"started\",\"previous_vcpus\":%ld,"
				 "\"previous_memory_mb\":%ld}",
				 fl, old.vcpus, old.memory_mb);
			e->fn(e->ctx, st[i].uuid, VG_EV_RESIZED, st[i].t, detail);
		}
		pthread_mutex_lock(&e->lock);
		e->st.delivered += 1 + (changed != 0);
		e->st.resized += changed != 0;
		pthread_mutex_unlock(&e->lock);
	}
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
	prime_flavors(e);
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
		check_starts(e);
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
	vg_hmap_init(&e->flavors);
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
	flavors_clear(e);
	vg_hmap_release(&e->flavors);
	free(e->uri);
	free(e);
}

void vg_events_get_stats(struct vg_events *e, struct vg_events_stats *out)
{
	pthread_mutex_lock(&e->lock);
	*out = e->st;
	pthread_mutex_unlock(&e->lock);
}
