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
 * when every consumer returned 0 for it (from batch and, if it has one,
 * from end: see "Order of calls"). A consumer that cannot take the
 * batch now (disk full, queue full) returns -EAGAIN: the receiver answers
 * RETRY and the agent keeps the batch in its spool. Any other negative
 * return is logged and counted; the batch is still acknowledged if the
 * store took it, because resending would not help.
 *
 * Order of calls for one batch b (vg_dispatch_batch):
 *   1. begin(b) of every consumer that has one, in registration order;
 *   2. batch(b) of every consumer, in order, until one returns -EAGAIN
 *      (the later ones are not called);
 *   3. end(b, rc) of every consumer that has one, in order, whatever
 *      happened in 2 (also after an -EAGAIN, and for a consumer whose
 *      batch() was not called): rc is step 2's outcome (0, -EAGAIN or the
 *      first other error).
 * begin and end let a consumer overlap work it waits for (a database
 * server's) with the other consumers' own work: begin sends what it can
 * before the other consumers run (e.g. the billing meter's locks and
 * reads), batch sends the rest, and end waits for the result. A consumer
 * whose result is only known in end() returns it from end(), and the
 * acknowledgement rule applies to it as to batch()'s return: so the ack
 * still follows every consumer's durable work, end included. end must leave
 * nothing open (a transaction begun in begin is rolled back when batch()
 * was not called). Consumers without begin/end see only step 2.
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

/* Optional hooks of a consumer (see "Order of calls"), registered with
 * vg_dispatch_add_hooks. Kept beside struct vg_consumer rather than in
 * it so that consumers that have none keep their initializers. */
struct vg_consumer_hooks {
	/* Before any consumer's batch(b). Cannot fail: a consumer that could
	 * not start early does its work in batch() as if begin had not been
	 * called. NULL: none. */
	void (*begin)(void *ctx, const struct vg_batch *b);
	/* After every batch() call for b; rc is their outcome. Returns 0,
	 * -EAGAIN or another -errno, counted like batch()'s. NULL: none. */
	int (*end)(void *ctx, const struct vg_batch *b, int rc);
};

struct vg_dispatch {
	struct vg_consumer consumers[VG_DISPATCH_MAX];
	struct vg_consumer_hooks hooks[VG_DISPATCH_MAX];
	int n;
	uint64_t errors[VG_DISPATCH_MAX]; /* per consumer, self-metrics */
};

void vg_dispatch_init(struct vg_dispatch *d);
/* Register a consumer (copied). 0 or -ENOSPC. */
int vg_dispatch_add(struct vg_dispatch *d, const struct vg_consumer *c);
/* The same with its begin/end hooks (copied; h may be NULL). */
int vg_dispatch_add_hooks(struct vg_dispatch *d, const struct vg_consumer *c,
			  const struct vg_consumer_hooks *h);
/* Hand b to every consumer (begin, batch, end: see "Order of calls").
 * Returns 0 if all took it, -EAGAIN if any batch() or end() asked for a
 * retry (consumers after a batch() that did are not given the batch;
 * every end() is still called), otherwise the first other error (all
 * consumers are still called). */
int vg_dispatch_batch(struct vg_dispatch *d, const struct vg_batch *b);
void vg_dispatch_tick(struct vg_dispatch *d, int64_t now_ms);

#endif
