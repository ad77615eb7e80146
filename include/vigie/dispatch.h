/*
 * vigie — the collector's one internal interface from receiver to consumers.
 *
 * Every batch the receiver accepts (decoded, valid, not a duplicate) is
 * handed to each registered consumer in registration order: the registry,
 * the RRD store, the billing meter, the alarm engine, (when [alarms]
 * notify is set) the publisher of the live metric stream and (with several
 * collectors) the cluster's metric stream (vigie/cluster.h);
 * collector/compose.c registers them. Adding a consumer never touches the receiver.
 *
 * Acknowledgement rule: the receiver acknowledges a batch to the agent only
 * when every consumer returned 0 for it. A consumer that cannot take the
 * batch now (disk full, queue full) returns -EAGAIN: the receiver answers
 * RETRY and the agent keeps the batch in its spool. Any other negative
 * return is logged and counted; the batch is still acknowledged if the
 * store took it, because resending would not help.
 *
 * Threading: vg_dispatch_batch is called from the receiver thread only;
 * consumers must be quick or queue internally.
 */
#ifndef VIGIE_DISPATCH_H
#define VIGIE_DISPATCH_H

#include "vigie/batch.h"

#define VG_DISPATCH_MAX 16

struct vg_consumer {
	const char *name; /* for logs and self-metrics */
	void *ctx;
	/* Take one batch. 0, -EAGAIN (retry later) or another -errno. */
	int (*batch)(void *ctx, const struct vg_batch *b);
	/* Optional: called periodically (timers) with the current time. */
	void (*tick)(void *ctx, int64_t now_ms);
};

struct vg_dispatch {
	struct vg_consumer consumers[VG_DISPATCH_MAX];
	int n;
	uint64_t errors[VG_DISPATCH_MAX]; /* per consumer, self-metrics */
};

void vg_dispatch_init(struct vg_dispatch *d);
/* Register a consumer (copied). 0 or -ENOSPC. */
int vg_dispatch_add(struct vg_dispatch *d, const struct vg_consumer *c);
/* Hand b to every consumer. Returns 0 if all took it, -EAGAIN if any
 * asked for a retry (later consumers are not called), otherwise the first
 * other error (all consumers are still called). */
int vg_dispatch_batch(struct vg_dispatch *d, const struct vg_batch *b);
void vg_dispatch_tick(struct vg_dispatch *d, int64_t now_ms);

#endif
