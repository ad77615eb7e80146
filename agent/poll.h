/*
 * vigie — one agent poll: libvirt + /proc -> derivations -> a batch.
 *
 * The poller owns the libvirt source and the previous poll's raw counters
 * per series (domain, disk, vCPU, QEMU process, host CPU, host disk), so
 * it can add derived values (cpu.util, latencies, queue lengths, idle
 * time, host CPU %) and lifecycle events:
 *   - a domain seen for the first time: STARTED if it is active, DEFINED
 *     if not (on the agent's very first poll the detail is
 *     {"initial":true}: the agent does not know when it really started);
 *   - active <-> inactive: STARTED / STOPPED; running <-> paused:
 *     SUSPENDED / RESUMED; an active domain whose id changed between two
 *     polls restarted: STOPPED then STARTED, and no derived values;
 *   - the flavor (name or vCPU count) changed: RESIZED with a JSON detail
 *     (derived; the exact one comes from agent/events.c at the restart);
 *   - a domain (or one of its disks/NICs) present last poll and absent now
 *     is emitted once more with state VG_RSTATE_ENDED and no samples, with
 *     STOPPED (it was active) or UNDEFINED (it was not) for the domain.
 * If libvirt cannot be polled, the poll still reports the host, emits one
 * VG_EV_GAP event (host resource) when the outage starts, and keeps every
 * domain's previous state: an outage never ends domains.
 *
 * Hook for libvirt lifecycle events (agent/events.c delivers them, billing
 * reads them): vg_poller_push_event queues an event from any thread; the
 * next poll adds it to its batch and suppresses the same event type it
 * would have derived for that resource.
 *
 * Derived values use the poll timestamps (time_ms) for dt, so with a
 * synthetic clock they agree with the rates the collector computes from
 * the counters. Not thread-safe except vg_poller_push_event.
 */
#ifndef VIGIE_AGENT_POLL_H
#define VIGIE_AGENT_POLL_H

#include <stddef.h>
#include <stdint.h>

#include "agent/libvirt.h"
#include "vigie/batch.h"

struct vg_poller_opts {
	const char *host;           /* host resource id and name (required) */
	const char *libvirt_uri;    /* NULL or "": no libvirt source */
	const char *proc_root;      /* NULL: "/proc" */
	const char *qemu_run_dir;   /* NULL: "/run/libvirt/qemu" */
	unsigned xml_refresh_polls; /* 0: default (60) */
	/* Host file systems (statvfs of <proc_root>/self/mounts entries):
	 * comma lists of fnmatch patterns on mount point or type, see
	 * vg_procfs_fs_selected. NULL/"": every non-pseudo mount. */
	const char *fs_include, *fs_exclude;
	int no_host_fs; /* 1: do not report host file systems */
	/* Guest file systems through the QEMU guest agent (vg_lv_opts). */
	unsigned guest_fs_polls; /* 0: off */
	unsigned guest_agent_retry_polls;
};

/* Extra samples for the host resource (the agent's self-metrics). */
struct vg_poll_extra {
	const char *metric;
	uint8_t kind;
	double value;
};

/* What happened in a poll, for the caller to log. */
struct vg_poll_status {
	int libvirt_rc;          /* 0 or the vg_lv_poll error */
	const char *libvirt_err; /* text if libvirt_rc != 0; valid until the
				    next poll */
	int libvirt_recovered;   /* 1: polled OK after one or more failures */
	size_t ndomains, nactive;
	unsigned proc_failed; /* bit per /proc file that could not be read
				    or parsed: 1 stat, 2 meminfo, 4 loadavg,
				    8 diskstats, 16 net/dev */
	double duration_s;    /* wall time of this poll */
};

struct vg_poller;

/* 0, -EINVAL (no host), -ENOMEM. Does not connect to libvirt yet. */
int vg_poller_new(const struct vg_poller_opts *o, struct vg_poller **out);
void vg_poller_free(struct vg_poller *p); /* accepts NULL */

/* Poll everything and append resources and events to b, stamped time_ms
 * (extra samples, if any, are added to the host resource). st may be
 * NULL. Returns 0 (also when a source failed: see st) or -ENOMEM. */
int vg_poller_poll(struct vg_poller *p, int64_t time_ms,
		   const struct vg_poll_extra *extra, size_t nextra,
		   struct vg_batch *b, struct vg_poll_status *st);

/* Close the libvirt connection; the next poll reconnects (SIGHUP). */
void vg_poller_reconnect(struct vg_poller *p);

/* Queue a lifecycle event for the next poll's batch (thread-safe).
 * resource is a domain UUID (or any resource id); detail may be NULL.
 * 0, -EINVAL, -ENOMEM. */
int vg_poller_push_event(struct vg_poller *p, const char *resource, int type,
			 int64_t time_ms, const char *detail);

/* The domain half of a poll, on a given snapshot (used by
 * vg_poller_poll; public so tests can drive lifecycle and counter resets
 * with hand-made snapshots). 0 or -ENOMEM. */
int vg_poller_apply_domains(struct vg_poller *p,
			    const struct vg_lv_snapshot *snap, int64_t time_ms,
			    struct vg_batch *b);

/* The libvirt source, for tests (may be NULL). */
struct vg_lv *vg_poller_libvirt(struct vg_poller *p);

#endif
