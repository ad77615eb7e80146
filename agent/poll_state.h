/*
 * vigie — what the files of one agent poll share (agent/poll.c, the
 * poller and its domains; agent/poll_emit.c, writing resources and samples
 * into the batch; agent/poll_host.c, the host's own resources). Internal
 * to the agent: the contract is agent/poll.h.
 *
 * The poller keeps the previous poll's raw counters here: per domain
 * (keyed by UUID, with its disks and NICs), and for the host (CPU times,
 * diskstats). A poll runs on one thread; only the pending lifecycle events
 * are shared, under the poller's lock.
 */
#ifndef VIGIE_AGENT_POLL_STATE_H
#define VIGIE_AGENT_POLL_STATE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/poll.h"
#include "agent/procfs.h"
#include "vigie/batch.h"
#include "vigie/hmap.h"

struct disk_prev {
	char *dev, *source;
	double rd_reqs, rd_time, wr_reqs, wr_time, fl_reqs, fl_time;
	int blk; /* 1: backed by host block device maj:min */
	unsigned maj, min;
	uint64_t gen;
};

struct nic_prev {
	char *dev;
	uint64_t gen;
};

struct dom_prev {
	char *uuid, *name, *project, *user, *flavor;
	int id, state, active;
	int64_t time_ms;
	double cpu_time, vcpus, vcpu_sum, qemu_cpu;
	double wait_sum, delay_sum; /* NAN: not reported */
	long flavor_vcpus;
	uint64_t gen;
	struct disk_prev *disks;
	size_t ndisks;
	struct nic_prev *nics;
	size_t nnics;
};

struct pending_event {
	char *resource, *detail;
	int type;
	int64_t time_ms;
};

struct vg_poller {
	char *host, *proc_root, *fs_include, *fs_exclude;
	int no_host_fs;
	struct vg_lv *lv;
	struct vg_hmap doms; /* uuid -> struct dom_prev, keyed by its own uuid */
	uint64_t gen;
	int first_poll; /* no libvirt poll has succeeded yet */
	int in_gap;
	uint64_t lv_errors;
	long clk_tck, page_size;
	/* host state */
	int have_cpu;
	struct vg_cpu_times cpu;
	struct vg_diskstat *hdisks; /* previous poll's diskstats */
	size_t nhdisks;
	int64_t host_time_ms;
	struct vg_procfs_buf buf;
	/* this poll's parsed diskstats (for host-backed instance disks) */
	struct vg_diskstat *cur_hdisks;
	size_t ncur_hdisks;
	/* lifecycle hook */
	pthread_mutex_t lock;
	struct pending_event *pending;
	size_t npending, cap_pending;
	/* events being applied in this poll (taken from pending) */
	struct pending_event *taken;
	size_t ntaken;
};
/* skip: the current resource was left out (its id or parent breaks the
 * name rules of vigie/wire.h, which the collector would refuse the whole
 * batch for), so its samples, attributes and identity go too. */
struct vg_poll_emit {
	struct vg_batch *b;
	int err;
	int skip;
};

/* ---- writing into the batch (agent/poll_emit.c) -------------------------- */

/* A sample of the current resource; nothing once e->err or e->skip is set,
 * nor for a value that is not finite. */
void vg_poll_sample(struct vg_poll_emit *e, const char *metric, int kind, double v);

/* An attribute of the current resource, its value cleaned to the name
 * rules; nothing for a NULL value or a key that breaks them. */
void vg_poll_attr(struct vg_poll_emit *e, const char *key, const char *value);

/* The same for a number; nothing when v < 0 (unknown). */
void vg_poll_attr_long(struct vg_poll_emit *e, const char *key, long v);

/* Start a resource in the batch (its name cleaned). NULL with e->skip set
 * (logged, rate-limited) when id or parent breaks the collector's name
 * rules: the resource's samples, attributes and identity are then left
 * out. NULL with e->err = -ENOMEM when the batch cannot grow. */
struct vg_resource *vg_poll_resource(struct vg_poll_emit *e, int type, const char *id,
				     const char *name, const char *parent, int64_t t);

/* Project ("default" when NULL), user and flavor of the current resource. */
void vg_poll_identity(struct vg_poll_emit *e, const char *project, const char *user,
		      const char *flavor);

/* ---- shared between the domains and the host ------------------------------ */

/* The diskstat of block device maj:min in d[0..n), or NULL. */
const struct vg_diskstat *vg_poll_find_hdisk(const struct vg_diskstat *d, size_t n,
					     unsigned maj, unsigned min);

/* The host, its disks, NICs and file systems, and the agent's
 * self-metrics (agent/poll_host.c), at time t into b. st gets the /proc
 * failures and the poll's duration (from start_mono); ndom, nactive and
 * lv_ok describe the libvirt snapshot of this poll. 0 or a batch -errno. */
int vg_poll_host(struct vg_poller *p, int64_t t, const struct vg_poll_extra *extra,
		 size_t nextra, struct vg_batch *b, struct vg_poll_status *st,
		 int64_t start_mono, size_t ndom, size_t nactive, int lv_ok);

#endif
