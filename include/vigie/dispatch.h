/*
 * vigie — the collector's one internal interface from receiver to consumers.
 *
 * Every batch the receiver accepts (decoded, valid, not a duplicate) is
 * handed to each registered consumer in registration order: the RRD
 * store, the registry (after the store, so that a batch the store refuses
 * leaves no resource, metric row or last value: nothing after a consumer
 * that returned -EAGAIN sees the batch), the billing meter, the alarm
 * engine, (when [alarms] notify is set) the publisher of the live metric
 * stream and (with several collectors) the cluster's metric stream
 * (vigie/cluster.h); collector/compose.c registers them. Adding a
 * consumer never touches the receiver.
 *
 * Acknowledgement rule: the receiver acknowledges a batch to the agent only
 * when every consumer returned 0 for it (from batch and, if it has one,
 * from end: see "Order of calls"). A consumer that cannot take the
 * batch now (disk full, queue full) returns -EAGAIN: the receiver answers
 * RETRY and the agent keeps the batch in its spool. Any other negative
 * return is logged and counted and the batch still acknowledged, because
 * resending would not help: so a consumer that makes the batch durable
 * (the store's journal) answers -EAGAIN for every failure that leaves
 * it not durable (a failed journal write, no file descriptor, no
 * memory), never another error.
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
 * Order of calls for a group b[0..n) (vg_dispatch_group: batches the
 * receiver found already waiting, never two of one (host, stream)):
 *   1. group_begin(b, n) of every consumer that has one, in order;
 *   2. for each b[i] in order, as in steps 1-3 above: begin(b[i]) and
 *      end(b[i], rc) only of consumers without group hooks, batch(b[i])
 *      of every consumer until one returns -EAGAIN; rcs[i] is b[i]'s
 *      outcome so far;
 *   3. group_end(b, n, rcs) of every consumer that has one, in order: it
 *      may make any rcs[i] worse (an error, -EAGAIN), never better.
 * A consumer with group hooks may make its work for the whole group
 * durable at once (the billing meter: one transaction for all of them,
 * committed in group_end); its batch() returns 0 when it only queued the
 * work, and group_end reports each batch's true outcome. So the
 * acknowledgement rule holds per batch: b[i] is acknowledged only when
 * rcs[i] after step 3 allows it. group_end must leave nothing open, and a
 * failure of the group's shared work must be resolved batch by batch
 * (e.g. each applied again alone) so that no batch is lost or applied
 * twice. A consumer without group hooks sees exactly the calls of n
 * single batches.
 *
 * Threading: vg_dispatch_batch is called from the receiver thread only;
 * consumers must be quick or queue internally.
 */
#ifndef VIGIE_DISPATCH_H
#define VIGIE_DISPATCH_H

#include "vigie/batch.h"

#define VG_DISPATCH_MAX 16
/* Batches in one vg_dispatch_group at most. */
#define VG_DISPATCH_GROUP_MAX 64

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
	/* Optional, together ("Order of calls for a group"): before and
	 * after the group's batch() calls. group_end sets rcs[i] (handed over
	 * as 0) to its outcome for b[i]: 0, -EAGAIN or another -errno,
	 * folded into the batch's outcome like end()'s. NULL: none. */
	void (*group_begin)(void *ctx, const struct vg_batch *const *b, size_t n);
	void (*group_end)(void *ctx, const struct vg_batch *const *b, size_t n,
			  int *rcs);
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
/* Hand the group b[0..n) to every consumer ("Order of calls for a
 * group"); rcs[i] (caller's array of n) receives b[i]'s outcome as
 * vg_dispatch_batch would return it. n == 1 is vg_dispatch_batch; n is at
 * most VG_DISPATCH_GROUP_MAX (larger: every rcs[i] is -EINVAL, no call). */
void vg_dispatch_group(struct vg_dispatch *d, const struct vg_batch *const *b,
		       size_t n, int *rcs);
void vg_dispatch_tick(struct vg_dispatch *d, int64_t now_ms);

#endif
