/*
 * vigie — the agent's libvirt source: one snapshot of every domain's raw
 * counters per poll.
 *
 * Design: ONE read-only connection is kept open across polls (the test
 * driver re-reads its node file on every connection, and connecting costs
 * far more than polling). Each poll makes one virConnectGetAllDomainStats
 * call for the groups state, cpu-total, balloon, vcpu, interface and
 * block. A group the driver does not fill for a running domain (the test
 * driver fills only "state") is marked unsupported the first time and is
 * then read per domain with the classic calls: virDomainGetInfo,
 * virDomainGetCPUStats, virDomainMemoryStats, virDomainGetVcpus,
 * virDomainBlockStatsFlags / virDomainBlockStats, virDomainGetBlockInfo,
 * virDomainInterfaceStats (each one's own support is detected once too).
 * Identity and device lists come from the domain XML (agent/domxml.h),
 * cached per domain and re-read when the domain id changes (restart),
 * when the bulk call names a device the cache does not know, or every
 * xml_refresh_polls polls.
 *
 * Faults: a failed call that leaves the connection dead closes it; the
 * next polls reconnect with exponential back-off (1 s doubling to 60 s).
 * Nothing here prints: libvirt's default error printer is replaced by a
 * silent one, and the last error text is kept for the caller to log.
 *
 * Values: every number is a double in SI units (seconds, bytes, counts);
 * NAN means "not available this poll" and must not be reported.
 * Not thread-safe: one thread polls a vg_lv.
 */
#ifndef VIGIE_AGENT_LIBVIRT_H
#define VIGIE_AGENT_LIBVIRT_H

#include <stddef.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#include "agent/domxml.h"

struct vg_lv_opts {
	const char *uri;            /* "qemu:///system", "test:///default" */
	const char *qemu_run_dir;   /* where <name>.pid files live; NULL: none */
	unsigned xml_refresh_polls; /* re-read the XML every N polls (0: 60) */
	/* Guest file systems (virDomainGetGuestInfo, filesystem group; needs
	 * the QEMU guest agent in the guest): asked every guest_fs_polls
	 * polls per running domain (0: never). A domain whose agent does not
	 * answer is asked again after guest_agent_retry_polls polls (0: 60);
	 * a driver other than QEMU is never asked. */
	unsigned guest_fs_polls;
	unsigned guest_agent_retry_polls;
	/* Tests only (NULL in the agent): called in every poll after the
	 * bulk statistics call returns and before any per-domain call, so a
	 * test can change the hypervisor at the one instant a real libvirtd
	 * gives no handle on (tests/unit/libvirt_test.c,
	 * test_xml_of_another_incarnation). */
	void (*after_bulk)(void *ctx);
	void *after_bulk_ctx;
};

/* Stats groups (bit numbers) and what is known of their support. */
enum vg_lv_group {
	VG_LV_G_CPU = 0,
	VG_LV_G_BALLOON,
	VG_LV_G_VCPU,
	VG_LV_G_IFACE,
	VG_LV_G_BLOCK,
	VG_LV_NGROUPS,
};
enum vg_lv_support {
	VG_LV_UNKNOWN = 0,
	VG_LV_YES = 1, /* the bulk call fills it */
	VG_LV_NO = 2,  /* read per domain with the fallback calls */
};

struct vg_lv_disk {
	const char *dev;    /* "vda" */
	const char *source; /* from the XML; NULL if unknown */
	double rd_reqs, rd_bytes, rd_time_s;
	double wr_reqs, wr_bytes, wr_time_s;
	double fl_reqs, fl_time_s;
	double errors;
	double capacity, allocation, physical; /* bytes */
};

struct vg_lv_nic {
	const char *dev; /* "tap1" */
	const char *mac; /* may be NULL */
	double rx_bytes, rx_packets, rx_errs, rx_drop;
	double tx_bytes, tx_packets, tx_errs, tx_drop;
};

/* A guest file system as the guest agent reports it (bytes). */
struct vg_lv_fs {
	const char *mountpoint; /* "/", "C:\\" */
	const char *device;     /* guest device name: "/dev/vda1", may be NULL */
	const char *fstype;     /* "ext4", may be NULL */
	const char *disk;       /* the domain's disk target backing it: "vda",
				   NULL if unknown (first disk only) */
	double total, used;     /* NAN where not reported */
};

struct vg_lv_domain {
	const char *uuid; /* "6695eb01-f6a4-8304-79aa-97f2502e193f" */
	const char *name;
	int id;    /* -1 when not running */
	int state; /* virDomainState */
	int reason;
	int active;                   /* state is running, blocked, paused, shutdown or
			     pmsuspended (a QEMU process exists) */
	int pid;                      /* QEMU pid from the pid file, 0 if unknown */
	const struct vg_domxml *meta; /* identity + devices, never NULL */

	double cpu_time_s, cpu_user_s, cpu_system_s;
	double vcpus; /* current vCPU count */
	size_t nvcpu_times;
	const double *vcpu_time_s; /* per vCPU, NAN where unknown */
	/* vCPU contention, per vCPU, seconds, nvcpu_times entries or NULL
	 * (bulk vcpu group only; no fallback call reports them):
	 * wait  = vcpu.N.wait, time runnable but behind another task on the
	 *         host CPU (sched wait_sum; 0 unless kernel.sched_schedstats=1);
	 * delay = vcpu.N.delay, time spent in the run queue instead of
	 *         running (schedstat run_delay; what the guest sees as steal). */
	const double *vcpu_wait_s, *vcpu_delay_s;
	/* balloon / memory stats, bytes (faults are counts) */
	double mem_current, mem_max;
	double mem_available, mem_unused, mem_usable, mem_rss;
	double mem_swap_in, mem_swap_out, mem_major_faults, mem_minor_faults;
	double mem_disk_caches;

	size_t ndisks, nnics;
	struct vg_lv_disk *disks;
	struct vg_lv_nic *nics;
	/* Guest file systems, sorted by mount point; nfs == 0 and fs NULL in
	 * polls that did not ask (or got no answer). */
	size_t nfs;
	struct vg_lv_fs *fs;
};

/* The guest-agent side of the source (counters since vg_lv_new). */
struct vg_lv_guest_stats {
	uint64_t queries;  /* virDomainGetGuestInfo calls */
	uint64_t failures; /* calls that failed (no agent, agent timeout) */
	uint64_t no_agent; /* running domains now waiting for a retry */
	int supported;     /* enum vg_lv_support of the call itself */
};

/* One poll's result. Owns its arrays and most strings, but meta and the
 * disk/nic strings taken from it (dev, source, mac) point into the vg_lv's
 * XML cache: the whole snapshot is valid until vg_lv_snapshot_clear() or
 * the next vg_lv_poll()/vg_lv_free(), whichever comes first. */
struct vg_lv_snapshot {
	size_t ndomains;
	struct vg_lv_domain *domains;
	/* private */
	struct vg_lv_chunk *arena;
};

struct vg_lv;

/* Create a source (does not connect yet; the first poll does). Copies the
 * options. 0, -EINVAL (no uri), -ENOMEM. */
int vg_lv_new(const struct vg_lv_opts *o, struct vg_lv **out);

/* Close the connection and free everything. Accepts NULL. */
void vg_lv_free(struct vg_lv *lv);

/* Take one snapshot into *snap (which must be zeroed or cleared).
 * Returns 0; -ENOTCONN (not connected and the back-off delay has not
 * passed: nothing tried), -ECONNREFUSED (a connection attempt failed),
 * -EIO (the bulk call failed; the connection was closed if dead),
 * -ENOMEM. On error *snap is empty. The error text is vg_lv_error(). */
int vg_lv_poll(struct vg_lv *lv, struct vg_lv_snapshot *snap);

/* Free what a snapshot owns and zero it. Accepts NULL. */
void vg_lv_snapshot_clear(struct vg_lv_snapshot *snap);

/* Close the connection now; the next poll reconnects at once (SIGHUP). */
void vg_lv_disconnect(struct vg_lv *lv);

/* 1 while a connection is open. */
int vg_lv_connected(const struct vg_lv *lv);

/* Number of successful (re)connections so far. */
uint64_t vg_lv_connects(const struct vg_lv *lv);

/* Domain XML reads that described another incarnation than the poll's
 * statistics (the domain stopped, was redefined or started between the
 * bulk call and the read): their identity and flavor were not used, the
 * previous ones were kept for that poll and the XML is read again at the
 * next one. */
uint64_t vg_lv_xml_other(const struct vg_lv *lv);

/* Last error text ("" if none); valid until the next call on lv. */
const char *vg_lv_error(const struct vg_lv *lv);

/* What is known of a group's support (enum vg_lv_support). */
int vg_lv_group_support(const struct vg_lv *lv, int group);

void vg_lv_guest_stats(const struct vg_lv *lv, struct vg_lv_guest_stats *out);

/* Parse virDomainGetGuestInfo's filesystem parameters (fs.count,
 * fs.N.mountpoint, fs.N.name, fs.N.fstype, fs.N.total-bytes,
 * fs.N.used-bytes, fs.N.disk.M.alias) into d->fs / d->nfs, sorted by
 * mount point; entries without a mount point are dropped. Strings and the
 * array live in snap's arena. 0 or -ENOMEM. Pure, for tests. */
int vg_lv_parse_guest_fs(struct vg_lv_snapshot *snap,
			 const virTypedParameter *params, int nparams,
			 struct vg_lv_domain *d);

/* Parse one bulk-stats record's typed parameters (as vg_lv_poll does for
 * each virDomainStatsRecord) into *d: units converted (ns -> s, KiB -> B),
 * every block.N / net.N / vcpu.N entry in the bulk call's own order
 * (unfiltered: vg_lv_poll then drops cdroms and fills gaps with the
 * fallback calls). uuid, name, meta and pid are left unset. Arrays and
 * strings are allocated in snap's arena. *groups gets bit (1 << group)
 * for each enum vg_lv_group present. 0 or -ENOMEM. Pure, for tests. */
int vg_lv_parse_bulk(struct vg_lv_snapshot *snap, const virTypedParameter *params,
		     int nparams, struct vg_lv_domain *d, unsigned *groups);

#endif
