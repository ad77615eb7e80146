/*
 * vigie — libvirt domain lifecycle events for the agent (agent/events.c).
 *
 * Billing needs the exact moments a domain started, stopped, was defined
 * or undefined, not the poll that noticed it. This module registers
 * libvirt's default event loop (virEventRegisterDefaultImpl, once per
 * process, before its own connection opens), opens its own read-only
 * connection, subscribes to VIR_DOMAIN_EVENT_ID_LIFECYCLE and runs
 * virEventRunDefaultImpl on a thread of its own. Each libvirt event is
 * mapped to a VG_EV_* type (vg_events_map) and handed, with the time it
 * was received and the domain's UUID, to a callback — the agent queues it
 * with vg_poller_push_event so it travels in the next batch.
 *
 * A lost connection (libvirtd restarted) is noticed through the close
 * callback and reopened with back-off (1 s doubling to 60 s). Events that
 * happen while it is down are lost: the poller's comparison of two polls
 * is the fallback (docs/billing.md states the accuracy cost).
 *
 * The test driver: all connections to test:///default inside ONE process
 * share one in-memory hypervisor and each receives the events of actions
 * made through any of them; a virsh started as another process has its
 * own copy, so its start/destroy produce no event here. Unit tests act
 * through a second connection in the test process; the proof against a
 * real libvirtd with QEMU is in tests/e2e.
 *
 * Resizes: a Nova resize stops the domain, redefines it with the new
 * flavor (DEFINED/UPDATED, or UNDEFINED then DEFINED) and starts it again.
 * The module keeps the flavor each domain was last seen with (read from
 * every domain's XML when the connection opens, then from the live XML
 * after each STARTED) and, when a start runs a different flavor, hands a
 * RESIZED event with the STARTED event's own instant and the new flavor
 * ({"flavor":..,"vcpus":..,"memory_mb":..,"disk_gb":..}) — the instant
 * the new flavor took effect. The XML is read after libvirt's dispatch
 * returns, never inside its callback. A domain that arrives from another
 * host (resize to another host) has no previous flavor here: the billing
 * then takes the flavor from the resource's own fields at the first poll.
 * At most 65536 flavors are remembered (then all are forgotten and learnt
 * again); at most 1024 starts wait for their check per loop pass (more are
 * delivered without a flavor and counted in resize_dropped). The XML is of
 * the run that started only if its <domain id=..> is the STARTED event's
 * domain id: a domain stopped and redefined (or started again) before the
 * read would give that run the next definition's flavor; such a start is
 * delivered without a flavor, the flavor known before is kept, and it is
 * counted in start_other (tests/unit/agent_events_test.c,
 * test_start_of_another_incarnation).
 *
 * Threading: the callback runs on the event thread; vg_events_stop joins
 * it. Start/stop from one thread.
 */
#ifndef VIGIE_AGENT_EVENTS_H
#define VIGIE_AGENT_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "vigie/clock.h"

/* Called on the event thread for every mapped event. uuid and detail are
 * valid during the call only. */
typedef void (*vg_events_fn)(void *ctx, const char *uuid, int type,
			     int64_t time_ms, const char *detail);

struct vg_events_opts {
	const char *uri;              /* "qemu:///system", "test:///default" */
	const struct vg_clock *clock; /* NULL: real time; read, never ticked */
	vg_events_fn fn;
	void *ctx;
};

struct vg_events_stats {
	uint64_t received;       /* lifecycle events from libvirt */
	uint64_t delivered;      /* mapped and handed to fn */
	uint64_t connects;       /* successful (re)connections */
	uint64_t resized;        /* RESIZED events sent (included in delivered) */
	uint64_t resize_dropped; /* starts not checked for a resize (more
				    than 1024 in one loop pass) */
	uint64_t start_other;    /* starts not checked for a resize: by the time
				 the XML was read, the domain was no longer
				 that run (stopped, redefined, started again) */
	int connected;
};

struct vg_events;

/* Start the event thread (it connects, and reconnects, by itself; a
 * first connection failure is not an error). 0, -EINVAL (no uri/fn),
 * -ENOMEM, -EAGAIN (thread), with a message in err. */
int vg_events_start(const struct vg_events_opts *o, struct vg_events **out,
		    char *err, size_t errlen);

/* Stop the thread, deregister, close. Accepts NULL. */
void vg_events_stop(struct vg_events *e);

/* Counters (thread-safe). */
void vg_events_get_stats(struct vg_events *e, struct vg_events_stats *out);

/* Map a libvirt lifecycle (event, detail) to a VG_EV_* type and a short
 * JSON detail ({"libvirt":"stopped","reason":"destroyed"}) written to buf.
 * Returns the type, or 0 for events billing does not use (SHUTDOWN, which
 * a STOPPED follows; CRASHED; DEFINED/UPDATED; renames). Pure. */
int vg_events_map(int lv_event, int lv_detail, char *buf, size_t len);

#endif
