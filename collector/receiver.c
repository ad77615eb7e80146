/*
 * receiver.c — the collector's front door: nanomsg REP, decode, dedup,
 * dispatch, acknowledge.
 *
 * Design. One raw NN_REP socket, one thread: at each turn take the
 * messages already waiting (never waiting for more: a lone agent gets one
 * batch per turn), check each one's size, vg_wire_decode it, ask the
 * registry whether (host, stream, seq) was already acknowledged, hand the
 * new ones to the consumers as one group (vg_dispatch_group), record
 * their sequence numbers in one go (vg_registry_commit_group), answer
 * each. The socket is raw so that several requests can be held at once:
 * each comes with its routing header (nn_recvmsg's control data), which
 * its reply carries back (nn_sendmsg). A batch of a (host, stream)
 * already in the group is held, decoded, for the next turn: two of one
 * stream never share a group (a re-send after a lost ack behind its
 * original is then found a duplicate). The wait in poll(2) has a short
 * timeout so the loop notices vg_receiver_stop and drives the consumers'
 * timers even when no agent talks. Messages held for the next turn when
 * the loop stops are handled and answered before vg_receiver_run returns
 * (the reason is at the end of vg_receiver_run); messages nanomsg still
 * holds unreceived are not ours: their agents send them again.
 *
 * The transport limit (NN_RCVMAXSIZE) is set above the largest message any
 * vigie encoder can produce, and max_message is enforced here: a message
 * over the transport limit makes nanomsg drop the connection without a
 * reply (the peer would resend it forever), while one over max_message
 * gets a REJECTED answer the agent can act on.
 *
 * Before the duplicate check, a decoded batch must pass vg_sign_check
 * (signature of its host's key, poll time within max_clock_skew) and the
 * time bounds (no poll, sample or event time beyond now + max_future, nor
 * before 1970-01-02: one far-future sample would set an RRD file's last
 * update and make every later true sample a "duplicate"; a first sample
 * near 0 makes librrd start the file at "now", with the same effect on
 * every sample from the past). The ack to a batch whose
 * signature verified is signed with the same key and bound to its MAC.
 *
 * Host-scoped resources. A batch may describe only its own host's
 * host-scoped resources, as the agent builds them (agent/poll_host.c):
 * the host resource's id is the batch's host; a host disk's, NIC's or
 * file system's parent is the batch's host and its id starts with
 * "<host>-". Otherwise a node holding its own key could write another
 * host's host.* series (and, with a point stamped ahead, block its true
 * values for up to max_future). The ids are not unambiguous: "node" could
 * name "node-2-sda", the disk of a host "node-2"; such an id belongs to the
 * longest host name with a key that it starts with. A gap event (the
 * agent could not poll libvirt) is its own host's too. Instances, their
 * disks and NICs move between hosts (live migration), so they and their
 * lifecycle events are not bound. A resource (or gap) breaking the rule
 * is removed from the batch, with its samples, before the consumers see it (counted in resources_foreign,
 * logged rate-limited); the rest of the batch is stored and acknowledged:
 * an honest agent never sends such a resource, and refusing the whole
 * batch would lose the node's instances' usage with it. Unsigned batches
 * follow the same rule, so one shape is valid everywhere; their host is
 * only a claim, so it protects nothing there.
 *
 * Projects. A project that begins or ends with white space ("acme" +
 * U+00A0), which the API lets nobody name, is taken as the project without
 * it before the consumers see it (trim_projects): billed as acme, not as a
 * tenant nobody can query; the rest of the batch is untouched.
 *
 * Injected work (vg_receiver_submit). The dispatch chain and the store are
 * the receiver thread's alone, so a batch built elsewhere (the measures a
 * project publishes through POST /v1/measures) reaches them as a job on
 * a bounded queue (VG_RECEIVER_QUEUE_MAX; beyond it -EBUSY, the API's 503).
 * The loop waits in poll(2) on the REP socket's NN_RCVFD and an eventfd
 * the submitter writes, so a job runs as soon as the current batch is
 * answered instead of after the receive timeout: a short timeout instead
 * would cost every idle loop turn, and an inproc nanomsg pair would need a
 * copy of each job. The submitter sleeps on a condition variable until
 * the job ran; its result is the job's, and a batch the job dispatched is
 * as durable as an agent's acknowledged batch when it returns 0. Jobs
 * still queued when the loop stops are failed with -ESHUTDOWN.
 *
 * Invariants:
 *  - nothing from a batch that failed the signature or time checks
 *    reaches the registry, the duplicate filter or a consumer;
 *  - an OK or DUPLICATE ack is sent only after every consumer returned (so
 *    the batch is stored) and the sequence number is committed; anything
 *    else a consumer could not take now is answered RETRY. In a group this
 *    holds per batch: the group's consumers report each batch's outcome
 *    (group_end after the shared COMMIT), and only the batches they took
 *    have their sequence numbers recorded, after that COMMIT.
 *  - a batch whose host another live collector holds (values a storage
 *    daemon has not taken: vg_registry_seen's 2) is answered RETRY and
 *    reaches no consumer; while the store holds such values, the
 *    batches this collector acknowledges mark their hosts in the same
 *    commit (a batch whose mark cannot be written is answered RETRY,
 *    never acknowledged unmarked), and the marks are renewed until the
 *    store holds none, then cleared (tend_marks; also at a clean stop
 *    with none held). A collector that stops or dies holding values
 *    keeps its marks ([cluster] hold_max): its journal has the values,
 *    written at its next start;
 *  - with o.ack_timeout_ms, each message gets one deadline when taken
 *    from the socket (three quarters of it later): its proof, its opens,
 *    its write-through (each also within its own bound) and, on
 *    PostgreSQL, its commit end by then (a commit cut there is rolled
 *    back and answered RETRY: registry.c "Commits bounded by the
 *    deadline");
 *    one with too little left after its checks is answered RETRY before
 *    any consumer sees it (too_late); a write-through cut there leaves
 *    its values held for the storage thread, the batch acknowledged;
 *  - a group holds at most VG_RECEIVER_GROUP_MAX messages and about
 *    VG_RECEIVER_GROUP_BYTES; never two batches of one (host, stream).
 *  - hostile input costs one log line per 1000 occurrences (vg_log_limited)
 *    and never stops the loop.
 *  - every REJECTED answer adds 1 to batches_rejected and 1 to exactly one
 *    per-reason counter (malformed, oversize, unsigned, forged, wrong_host,
 *    no_key, stale, future, clock_unset, bad_name): the total is their
 *    sum.
 *  - counters are updated with __atomic builtins; the stop flag is a
 *    sig_atomic_t written by signal handlers.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "vigie/clock.h"
#include "vigie/log.h"
#include "vigie/name.h"
#include "vigie/receiver.h"
#include "vigie/sign.h"
#include "vigie/wire.h"

/* A group larger than vg_dispatch_group takes would have every batch's
 * outcome -EINVAL, a consumer error, which is acknowledged OK: stored
 * nothing, acknowledged all. The registry takes any n. */
_Static_assert(VG_RECEIVER_GROUP_MAX <= VG_DISPATCH_GROUP_MAX,
	       "a receiver group must fit in one vg_dispatch_group");

#define DEFAULT_TIMEOUT_MS 200
#define TICK_EVERY_MS 100
#define TRANSPORT_SLACK (64u << 10)

/* One submitted job: on the submitter's stack until done. */
struct job {
	vg_receiver_job_fn fn;
	void *ctx;
	int rc;
	int done;
	struct job *next;
};

struct vg_receiver_inject {
	struct vg_receiver *r;
};

/* One message of a group: the request, its routing header (raw REP:
 * the reply carries it back to the requester), and its answer. */
struct msg {
	void *buf;  /* nn_recvmsg's, freed once answered */
	void *ctrl; /* its control header, handed back to nn_sendmsg */
	size_t len;
	struct vg_batch *b; /* decoded and admitted, awaiting the group */
	struct vg_ack ack;
	/* the key that verified the batch, to sign its ack: a copy, since a
	 * message carried over outlives the keyring (SIGHUP replaces and
	 * frees it in the idle callback, between two turns) */
	struct vg_key key;
	int keyed;           /* key is set: the ack is signed */
	int64_t deadline_ms; /* monotonic: the batch's deadline (0: none) */
	int decided;         /* ack.status is final */
	int admitted;        /* admit_msg ran (a message carried over) */
};

struct vg_receiver {
	int sock;
	int efd;               /* eventfd: a job was queued */
	pthread_mutex_t qlock; /* guards head, tail, qlen, closed, job->done */
	pthread_cond_t qdone;
	struct job *head, *tail;
	size_t qlen;
	int closed; /* the loop ended: submissions fail */
	struct vg_receiver_options o;
	char listen[256];
	char data_dir[512];
	volatile sig_atomic_t stop;
	int64_t last_tick_ms;
	struct vg_receiver_stats stats; /* __atomic */
	/* vg_log_limited counters (log lines, not self-metrics) */
	uint64_t n_dispatch_err, n_commit_err, n_seen_err, n_store_err;
	uint64_t n_store_rejected, n_send_err, n_recv_err, n_retry;
	uint64_t n_retrying;                    /* consecutive RETRY answers (0: storing fine) */
	uint64_t n_held, n_hold_err;            /* vg_log_limited: held elsewhere, marks */
	uint64_t flush_failures, n_flush_err;   /* the registry flusher's, logged */
	uint64_t n_hold_set, n_hold_clear;      /* vg_log_limited: marks set, cleared */
	uint64_t n_hold_refused, n_hold_failed; /* a batch's mark not written */
	uint64_t n_verified_err;                /* vg_log_limited: verified row */
	/* verified rows (o.verified_rows): the time last written (-1: none
	 * this run, so the first tick with the store verified writes one
	 * even with no commit yet: the commits of a run before a restart
	 * are covered once its journal is replayed and synced); an episode
	 * of RETRY answers for another's verified row, logged once */
	int64_t verified_written_ms;
	int unverified_episode;
	int proof_late_logged;   /* a proof cut off by its bound: logged once */
	int64_t cur_deadline_ms; /* the deadline of the batch being checked */
	/* the last time the socket was seen empty (a receive found nothing,
	 * or the loop's poll timed out): every message taken after arrived
	 * after it, so its deadline counts from there (recv_msg) */
	int64_t quiet_ms;
	uint64_t n_deadline; /* vg_log_limited: deadline RETRY answers */
	uint64_t n_canceled; /* vg_log_limited: cancelled state work */
	/* this collector's holding marks may be in the registry (a batch
	 * was committed with one, or it just started: marks of its last
	 * run), and when they were last renewed (monotonic ms) */
	int holding;
	int marked; /* a batch was committed with a mark since the last clear */
	int64_t hold_renewed_ms;
	/* marks of lost files' hosts (vg_receiver_hold_lost, the store's
	 * thread): lost_mu orders them with tend_marks' clear, so a clear
	 * that found the store holding nothing never deletes marks written
	 * after; lost_noted (__atomic) tells the loop to tend them */
	pthread_mutex_t lost_mu;
	int lost_noted;
	uint64_t n_lost_marked, n_lost_err; /* vg_log_limited */
	/* the hosts answered RETRY for another's mark (vigie/receiver.h):
	 * allocated at the first, written by the loop's thread under qlock
	 * (the API reads them); nheld is read without it by that thread */
	struct vg_receiver_held *held;
	size_t nheld;
	int64_t held_capped_ms;     /* when a full table last replaced a host */
	uint64_t store_errors_seen; /* write_errors already logged */
	/* a group: its messages in arrival order; the ones held back to
	 * the next group (same (host, stream) as one in it) move to carry */
	struct msg grp[VG_RECEIVER_GROUP_MAX], carry[VG_RECEIVER_GROUP_MAX];
	size_t ncarry;
};

static void count(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

int vg_receiver_open(const struct vg_receiver_options *o,
		     struct vg_receiver **out, char *err, size_t errlen)
{
	struct vg_receiver *r;
	int maxsize, timeout;

	*out = NULL;
	if (!o || !o->listen || !*o->listen || !o->registry || !o->dispatch ||
	    !o->max_message) {
		snprintf(err, errlen, "receiver: incomplete options");
		return -EINVAL;
	}
	if (!(r = calloc(1, sizeof(*r)))) {
		snprintf(err, errlen, "receiver: out of memory");
		return -ENOMEM;
	}
	r->o = *o;
	snprintf(r->listen, sizeof(r->listen), "%s", o->listen);
	r->o.listen = r->listen;
	snprintf(r->data_dir, sizeof(r->data_dir), "%s", o->data_dir ? o->data_dir : "");
	r->o.data_dir = r->data_dir;
	if (r->o.recv_timeout_ms <= 0)
		r->o.recv_timeout_ms = DEFAULT_TIMEOUT_MS;
	if (r->o.held_age_ms <= 0)
		r->o.held_age_ms = VG_RECEIVER_HELD_AGE_MS;
	r->verified_written_ms = -1;
	if (r->o.store) {
		/* the replay's errors were logged at open (main.c) */
		struct vg_store_stats ss;
		vg_store_get_stats(r->o.store, &ss);
		r->store_errors_seen = ss.write_errors;
	}

	r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->efd < 0) {
		int e = errno;
		snprintf(err, errlen, "receiver: eventfd: %s", strerror(e));
		free(r);
		return -e;
	}
	pthread_mutex_init(&r->qlock, NULL);
	pthread_mutex_init(&r->lost_mu, NULL);
	pthread_cond_init(&r->qdone, NULL);
	r->sock = nn_socket(AF_SP_RAW, NN_REP);
	if (r->sock < 0) {
		int e = errno;
		snprintf(err, errlen, "receiver: nn_socket: %s", nn_strerror(e));
		close(r->efd);
		free(r);
		return -e;
	}
	maxsize = (int)((o->max_message > VG_WIRE_MAX_MESSAGE ? o->max_message
							      : VG_WIRE_MAX_MESSAGE) +
			TRANSPORT_SLACK);
	timeout = r->o.recv_timeout_ms;
	if (nn_setsockopt(r->sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, &maxsize,
			  sizeof(maxsize)) < 0 ||
	    nn_setsockopt(r->sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout,
			  sizeof(timeout)) < 0) {
		int e = errno;
		snprintf(err, errlen, "receiver: nn_setsockopt: %s", nn_strerror(e));
		nn_close(r->sock);
		close(r->efd);
		free(r);
		return -e;
	}
	if (nn_bind(r->sock, r->listen) < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot listen on %s: %s", r->listen,
			 nn_strerror(e));
		nn_close(r->sock);
		close(r->efd);
		free(r);
		return -e;
	}
	*out = r;
	return 0;
}

void vg_receiver_close(struct vg_receiver *r)
{
	if (!r)
		return;
	nn_close(r->sock);
	close(r->efd);
	pthread_cond_destroy(&r->qdone);
	pthread_mutex_destroy(&r->qlock);
	pthread_mutex_destroy(&r->lost_mu);
	free(r->held);
	free(r);
}

void vg_receiver_set_keys(struct vg_receiver *r, const struct vg_keyring *keys)
{
	if (r)
		r->o.keys = keys;
}

void vg_receiver_stop(struct vg_receiver *r)
{
	if (r)
		r->stop = 1;
}

void vg_receiver_get_stats(struct vg_receiver *r, struct vg_receiver_stats *out)
{
	out->batches_received = __atomic_load_n(&r->stats.batches_received, __ATOMIC_RELAXED);
	out->batches_rejected = __atomic_load_n(&r->stats.batches_rejected, __ATOMIC_RELAXED);
	out->batches_duplicate = __atomic_load_n(&r->stats.batches_duplicate, __ATOMIC_RELAXED);
	out->batches_retry = __atomic_load_n(&r->stats.batches_retry, __ATOMIC_RELAXED);
	out->samples_received = __atomic_load_n(&r->stats.samples_received, __ATOMIC_RELAXED);
	out->batches_unsigned = __atomic_load_n(&r->stats.batches_unsigned, __ATOMIC_RELAXED);
	out->batches_forged = __atomic_load_n(&r->stats.batches_forged, __ATOMIC_RELAXED);
	out->batches_wrong_host = __atomic_load_n(&r->stats.batches_wrong_host, __ATOMIC_RELAXED);
	out->batches_no_key = __atomic_load_n(&r->stats.batches_no_key, __ATOMIC_RELAXED);
	out->batches_stale = __atomic_load_n(&r->stats.batches_stale, __ATOMIC_RELAXED);
	out->batches_future = __atomic_load_n(&r->stats.batches_future, __ATOMIC_RELAXED);
	out->batches_malformed = __atomic_load_n(&r->stats.batches_malformed, __ATOMIC_RELAXED);
	out->batches_oversize = __atomic_load_n(&r->stats.batches_oversize, __ATOMIC_RELAXED);
	out->batches_clock_unset = __atomic_load_n(&r->stats.batches_clock_unset, __ATOMIC_RELAXED);
	out->batches_bad_name = __atomic_load_n(&r->stats.batches_bad_name, __ATOMIC_RELAXED);
	out->resources_foreign = __atomic_load_n(&r->stats.resources_foreign, __ATOMIC_RELAXED);
	out->projects_trimmed = __atomic_load_n(&r->stats.projects_trimmed, __ATOMIC_RELAXED);
	out->samples_published = __atomic_load_n(&r->stats.samples_published, __ATOMIC_RELAXED);
	out->jobs_refused = __atomic_load_n(&r->stats.jobs_refused, __ATOMIC_RELAXED);
	out->groups = __atomic_load_n(&r->stats.groups, __ATOMIC_RELAXED);
	out->batches_grouped = __atomic_load_n(&r->stats.batches_grouped, __ATOMIC_RELAXED);
	out->batches_deferred = __atomic_load_n(&r->stats.batches_deferred, __ATOMIC_RELAXED);
	out->batches_held_elsewhere =
		__atomic_load_n(&r->stats.batches_held_elsewhere, __ATOMIC_RELAXED);
	out->hold_marks_refused =
		__atomic_load_n(&r->stats.hold_marks_refused, __ATOMIC_RELAXED);
	out->hold_marks_failed =
		__atomic_load_n(&r->stats.hold_marks_failed, __ATOMIC_RELAXED);
	out->hold_marks_renew_failed =
		__atomic_load_n(&r->stats.hold_marks_renew_failed, __ATOMIC_RELAXED);
	out->hold_marks_clear_failed =
		__atomic_load_n(&r->stats.hold_marks_clear_failed, __ATOMIC_RELAXED);
	out->marks_holding = __atomic_load_n(&r->stats.marks_holding, __ATOMIC_RELAXED);
	out->batches_unverified =
		__atomic_load_n(&r->stats.batches_unverified, __ATOMIC_RELAXED);
	out->batches_proven = __atomic_load_n(&r->stats.batches_proven, __ATOMIC_RELAXED);
	out->proofs_timed_out = __atomic_load_n(&r->stats.proofs_timed_out, __ATOMIC_RELAXED);
	out->batch_deadline = __atomic_load_n(&r->stats.batch_deadline, __ATOMIC_RELAXED);
	out->commit_deadline = __atomic_load_n(&r->stats.commit_deadline, __ATOMIC_RELAXED);
	out->state_canceled = __atomic_load_n(&r->stats.state_canceled, __ATOMIC_RELAXED);
	out->verified_write_failed =
		__atomic_load_n(&r->stats.verified_write_failed, __ATOMIC_RELAXED);
	out->registry_flush_failures =
		__atomic_load_n(&r->stats.registry_flush_failures, __ATOMIC_RELAXED);
	out->registry_gone_resources =
		__atomic_load_n(&r->stats.registry_gone_resources, __ATOMIC_RELAXED);
}

/* The longest waiting first, then by host: a stable order for the API. */
static int held_cmp(const void *a, const void *b)
{
	const struct vg_receiver_held *x = *(const struct vg_receiver_held *const *)a;
	const struct vg_receiver_held *y = *(const struct vg_receiver_held *const *)b;

	if (x->since_ms != y->since_ms)
		return x->since_ms < y->since_ms ? -1 : 1;
	return strcmp(x->host, y->host);
}

size_t vg_receiver_held_elsewhere(struct vg_receiver *r, struct vg_receiver_held *out,
				  size_t max, int *capped)
{
	const struct vg_receiver_held *live[VG_RECEIVER_HELD_MAX];
	int64_t now = vg_now_ms();
	size_t n = 0;

	if (capped)
		*capped = 0;
	if (!r)
		return 0;
	pthread_mutex_lock(&r->qlock);
	for (size_t i = 0; i < r->nheld; i++)
		if (now - r->held[i].last_ms < r->o.held_age_ms)
			live[n++] = &r->held[i];
	qsort(live, n, sizeof(live[0]), held_cmp);
	for (size_t i = 0; i < n && i < max; i++)
		out[i] = *live[i];
	if (capped)
		*capped = r->held_capped_ms &&
			  now - r->held_capped_ms < r->o.held_age_ms;
	pthread_mutex_unlock(&r->qlock);
	return n;
}

/* Note a RETRY of host for holder's mark (the loop's thread). An entry
 * of the same host is renewed (a new holder starts a new wait); else a
 * free slot or one gone quiet for held_age_ms is taken, or,
 * the table full, the one answered least recently. Nothing is noted
 * when the table cannot be allocated: the counter still counts. */
static void held_note(struct vg_receiver *r, const char *host, const char *holder,
		      int unverified)
{
	int64_t now = vg_now_ms();
	struct vg_receiver_held *e = NULL, *quiet = NULL, *oldest = NULL;

	if (!r->held &&
	    !(r->held = calloc(VG_RECEIVER_HELD_MAX, sizeof(*r->held))))
		return;
	for (size_t i = 0; i < r->nheld && !e; i++) {
		struct vg_receiver_held *h = &r->held[i];
		if (!strcmp(h->host, host))
			e = h;
		else if (now - h->last_ms >= r->o.held_age_ms)
			quiet = quiet ? quiet : h;
		else if (!oldest || h->last_ms < oldest->last_ms)
			oldest = h;
	}
	pthread_mutex_lock(&r->qlock);
	if (e && strcmp(e->holder, holder)) {
		snprintf(e->holder, sizeof(e->holder), "%s", holder);
		e->since_ms = now;
		e->batches = 0;
	} else if (e && now - e->last_ms >= r->o.held_age_ms) {
		e->since_ms = now; /* it had dropped out: a new wait */
		e->batches = 0;
	} else if (!e) {
		if (quiet)
			e = quiet;
		else if (r->nheld < VG_RECEIVER_HELD_MAX)
			e = &r->held[r->nheld++];
		else {
			e = oldest;
			r->held_capped_ms = now;
		}
		snprintf(e->host, sizeof(e->host), "%s", host);
		snprintf(e->holder, sizeof(e->holder), "%s", holder);
		e->since_ms = now;
		e->batches = 0;
	}
	e->last_ms = now;
	e->batches++;
	e->unverified = unverified;
	pthread_mutex_unlock(&r->qlock);
}

/* host's batch passed the duplicate check: no mark holds it back now. */
static void held_forget(struct vg_receiver *r, const char *host)
{
	for (size_t i = 0; i < r->nheld; i++) {
		if (strcmp(r->held[i].host, host))
			continue;
		pthread_mutex_lock(&r->qlock);
		r->held[i] = r->held[--r->nheld];
		pthread_mutex_unlock(&r->qlock);
		if (r->unverified_episode) {
			int left = 0;
			for (size_t k = 0; k < r->nheld && !left; k++)
				left = r->held[k].unverified;
			if (!left) {
				r->unverified_episode = 0;
				vg_info("no host waits for another collector's verified "
					"row any more (the last one, %s, is accepted)",
					host);
			}
		}
		return;
	}
}

void vg_receiver_stats_fn(void *ctx, struct vg_receiver_stats *out)
{
	vg_receiver_get_stats(ctx, out);
}

/* Log what the store could not write (it only counts): values of this
 * batch, or cached values the storage thread failed to write since the
 * last batch. An acknowledged value that is not in its file is an error. */
static void log_store(struct vg_receiver *r, const struct vg_store_stats *before,
		      const struct vg_batch *b)
{
	struct vg_store_stats after;

	if (!r->o.store)
		return;
	vg_store_get_stats(r->o.store, &after);
	if (after.write_errors > r->store_errors_seen) {
		vg_log_limited(VG_LOG_ERROR, &r->n_store_err,
			       "store: %llu value(s) could not be written to their "
			       "RRD files (kept in the journal as *.kept; %llu in "
			       "all), noticed at batch %s/%llu: %s",
			       (unsigned long long)(after.write_errors -
						    r->store_errors_seen),
			       (unsigned long long)after.write_errors, b->host,
			       (unsigned long long)b->seq,
			       vg_store_last_error(r->o.store));
		r->store_errors_seen = after.write_errors;
	}
	if (after.values_rejected > before->values_rejected)
		vg_log_limited(VG_LOG_WARN, &r->n_store_rejected,
			       "store: refused %llu value(s) (bad name, time or "
			       "non-finite) in batch %s/%llu",
			       (unsigned long long)(after.values_rejected -
						    before->values_rejected),
			       b->host, (unsigned long long)b->seq);
}

/* Whether r, in a batch of host (hl bytes), names a host-scoped resource
 * of another host (the rule in the header block). */
static int foreign(const struct vg_keyring *keys, const char *host, size_t hl,
		   const struct vg_resource *r)
{
	if (r->type == VG_RT_HOST)
		return strcmp(r->id, host) != 0;
	if (r->type != VG_RT_HOST_DISK && r->type != VG_RT_HOST_NIC)
		return 0;
	if (!r->parent || strcmp(r->parent, host) || strncmp(r->id, host, hl) ||
	    r->id[hl] != '-')
		return 1;
	/* a longer host name with a key owns "<longer>-..." */
	for (const char *p = strchr(r->id + hl + 1, '-'); p && keys;
	     p = strchr(p + 1, '-')) {
		char other[VG_NAME_MAX + 1];
		size_t n = (size_t)(p - r->id);

		if (n >= sizeof(other))
			break;
		memcpy(other, r->id, n);
		other[n] = '\0';
		if (vg_keyring_find(keys, other))
			return 1;
	}
	return 0;
}

struct foreign_ctx {
	struct vg_receiver *r;
	const struct vg_batch *b;
	size_t hl;
};

/* vg_batch_remove_resources's test: a foreign resource, counted and logged. */
static int drop_foreign(void *ctx, const struct vg_resource *res)
{
	struct foreign_ctx *c = ctx;

	if (!foreign(c->r->o.keys, c->b->host, c->hl, res))
		return 0;
	vg_log_limited(VG_LOG_WARN, &c->r->stats.resources_foreign,
		       "batch host=%s stream=%016llx seq=%llu: dropped %s "
		       "resource id=%s parent=%s: a host may only report its "
		       "own host, host disks, NICs and file systems",
		       c->b->host, (unsigned long long)c->b->stream,
		       (unsigned long long)c->b->seq, vg_rtype_name(res->type),
		       res->id, res->parent ? res->parent : "(none)");
	return 1;
}

/* The same for events: a gap (the agent could not poll libvirt) is an
 * event of the agent's host, never of another. */
static int drop_foreign_event(void *ctx, const struct vg_event *ev)
{
	struct foreign_ctx *c = ctx;

	if (ev->type != VG_EV_GAP || !ev->resource ||
	    !strcmp(ev->resource, c->b->host))
		return 0;
	vg_log_limited(VG_LOG_WARN, &c->r->stats.resources_foreign,
		       "batch host=%s stream=%016llx seq=%llu: dropped a gap "
		       "event of resource %s: a host may only report its own "
		       "gaps",
		       c->b->host, (unsigned long long)c->b->stream,
		       (unsigned long long)c->b->seq, ev->resource);
	return 1;
}

/* A project with white space at either end ("acme" + U+00A0), which the
 * API refuses everywhere (vg_project_name_valid), taken as the project
 * without it: "acme " would be billed as a project no API user can name
 * or query, while it reads as acme. Only white space is no project
 * ("default"). The agent trims it at the source (agent/poll_emit.c); this
 * is for older agents and other encoders. Counted in projects_trimmed,
 * logged rate-limited. -ENOMEM if a copy failed (the batch is answered
 * RETRY), else 0. */
static int trim_projects(struct vg_receiver *r, struct vg_batch *b)
{
	for (size_t i = 0; i < b->nres; i++) {
		struct vg_resource *res = &b->res[i];
		const char *start, *p;
		size_t n;

		if (!res->project || !vg_name_blank_end(res->project))
			continue;
		n = vg_name_trim_blank(res->project, &start);
		p = n ? vg_batch_strdup(b, start, n) : NULL;
		if (n && !p)
			return -ENOMEM;
		vg_log_limited(VG_LOG_WARN, &r->stats.projects_trimmed,
			       "batch host=%s stream=%016llx seq=%llu: %s %s: "
			       "project '%s' begins or ends with white space, "
			       "taken as '%s'",
			       b->host, (unsigned long long)b->stream,
			       (unsigned long long)b->seq, vg_rtype_name(res->type),
			       res->id, res->project, p ? p : "default");
		res->project = p;
	}
	return 0;
}

/* The host's series the registry knows, gathered for a proof (the
 * strings copied: the registry's are valid during its call only). */
struct host_series {
	struct vg_store_series *v;
	size_t n, cap;
};

static int host_series_add(void *ctx, int rtype, const char *id, const char *metric)
{
	struct host_series *h = ctx;
	char *i, *m;

	if (h->n == h->cap) {
		size_t c = h->cap ? 2 * h->cap : 64;
		struct vg_store_series *nv = realloc(h->v, c * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		h->v = nv;
		h->cap = c;
	}
	if (!(i = strdup(id)) || !(m = strdup(metric))) {
		free(i);
		return -ENOMEM;
	}
	h->v[h->n++] = (struct vg_store_series){rtype, i, m};
	return 0;
}

static void host_series_free(struct host_series *h)
{
	for (size_t i = 0; i < h->n; i++) {
		free((char *)h->v[i].id);
		free((char *)h->v[i].metric);
	}
	free(h->v);
}

/* vg_registry_seen answered 3 for b: another collector P committed the
 * host after its verified row. 1 when this collector proves P's values
 * of the host's files durable itself (docs/scaling.md "Closing the
 * second", part 2): each daemon of the files has a connection of ours
 * made before P's oldest such commit less the margin, alive (the daemon
 * has not restarted since P sent those values, so it still holds what it
 * did not write), and the FLUSH of the files over it succeeded: P's
 * values are in the files before anything of b. The files are b's and
 * every other series the registry knows of the host: P's unverified
 * batches may have written one that b does not carry (a disk detached, a
 * metric not in every poll), whose values a daemon could lose under a
 * later batch of ours. 0 otherwise: the batch waits. */
static int proven(struct vg_receiver *r, const struct vg_batch *b)
{
	int64_t commit = vg_registry_held_commit_ms(r->o.registry);
	int64_t margin = r->o.proof_margin_ms ? r->o.proof_margin_ms : VG_RECEIVER_PROOF_MARGIN_MS;
	int64_t bound = r->o.proof_timeout_ms > 0 ? r->o.proof_timeout_ms
						  : VG_RECEIVER_PROOF_TIMEOUT_MS;
	int by_batch;
	/* and by the batch's own deadline, whichever comes first */
	int64_t deadline = vg_phase_end(vg_monotonic_ms(), bound, r->cur_deadline_ms, &by_batch);
	struct host_series h = {0};
	int rc;

	if (!r->o.store || margin < 0 || commit == INT64_MAX)
		return 0;
	rc = vg_registry_host_series(r->o.registry, b->host, host_series_add, &h);
	if (!rc)
		rc = vg_store_prove_arrival(r->o.store, b, h.v, h.n, commit - margin, deadline);
	host_series_free(&h);
	if (rc == -ETIMEDOUT) {
		/* the receiver serves every host: a slow daemon (or a host of
		 * many files) may not hold it past the agents' ack timeout.
		 * The batch is answered RETRY as any unproven one (the agent
		 * re-sends it; the host waits for the other collector's
		 * verified row, the connection that timed out being closed) */
		count(&r->stats.proofs_timed_out, 1);
		if (by_batch)
			count(&r->stats.batch_deadline, 1);
		if (!r->proof_late_logged && !by_batch) {
			r->proof_late_logged = 1;
			vg_warn("batch %s seq %llu answered RETRY: the proof of %s's "
				"values of this host took longer than its bound of "
				"%lld ms ([cluster] proof_timeout_ms) and was cut off; "
				"a storage daemon is slow (logged once; counted in "
				"vigie_receiver_proofs_timed_out_total)",
				b->host, (unsigned long long)b->seq,
				vg_registry_held_by(r->o.registry), (long long)bound);
		}
	}
	if (rc)
		vg_debug("batch %s seq %llu: no proof of %s's values by this "
			 "collector's connections: %s",
			 b->host, (unsigned long long)b->seq,
			 vg_registry_held_by(r->o.registry), strerror(-rc));
	return rc == 0;
}

/* b answered RETRY for its deadline (docs/operations.md "One deadline
 * per batch"): counted, in commit_deadline too when in_state (its work in
 * the state database was cut: rolled back, nothing recorded), and logged
 * (rate-limited) with why. RETRY now rather than an answer after the
 * agent's ack timeout. */
static uint8_t retry_deadline(struct vg_receiver *r, const struct vg_batch *b, int in_state,
			      const char *why)
{
	if (in_state)
		count(&r->stats.commit_deadline, 1);
	count(&r->stats.batch_deadline, 1);
	count(&r->stats.batches_retry, 1);
	vg_log_limited(VG_LOG_WARN, &r->n_deadline,
		       "batch %s seq %llu answered RETRY: %s (its deadline is three "
		       "quarters of [agent] ack_timeout_ms = %u from its arrival)",
		       b->host, (unsigned long long)b->seq, why, r->o.ack_timeout_ms);
	return VG_ACK_RETRY;
}

/* retry_deadline for b's work in a PostgreSQL state database (what: its
 * duplicate check, its commit) that its deadline cut (registry.c "Commits
 * bounded by the deadline") */
static uint8_t state_deadline(struct vg_receiver *r, const struct vg_batch *b,
			      const char *what)
{
	char why[512];

	snprintf(why, sizeof(why), "%s in the state database did not end by its "
				   "deadline and was rolled back: %s",
		 what, vg_registry_last_error(r->o.registry));
	return retry_deadline(r, b, 1, why);
}

/* b's work in the state database (what) cancelled well before its
 * deadline: an operator's pg_cancel_backend, not the bound (registry.c
 * cut_or_cancel). Rolled back: RETRY, counted apart. */
static uint8_t state_canceled(struct vg_receiver *r, const struct vg_batch *b,
			      const char *what)
{
	count(&r->stats.state_canceled, 1);
	count(&r->stats.batches_retry, 1);
	vg_log_limited(VG_LOG_WARN, &r->n_canceled,
		       "batch %s seq %llu answered RETRY: %s in the state database "
		       "was cancelled before its deadline (pg_cancel_backend?) "
		       "and rolled back: %s",
		       b->host, (unsigned long long)b->seq, what,
		       vg_registry_last_error(r->o.registry));
	return VG_ACK_RETRY;
}

/* The duplicate check of an admitted batch: 1 with *status set when it
 * is answered now (DUPLICATE, or RETRY when the check failed), else 0
 * after removing its foreign resources: it goes to the consumers. */
static int check_seen(struct vg_receiver *r, struct vg_batch *b, uint8_t *status)
{
	int rc;

	/* bounded by the batch's deadline too */
	rc = vg_registry_seen_by(r->o.registry, b->host, b->stream, b->seq, b->time_ms,
				 r->cur_deadline_ms);
	if (rc == 1) {
		count(&r->stats.batches_duplicate, 1);
		vg_debug("duplicate batch %s stream %016llx seq %llu", b->host,
			 (unsigned long long)b->stream, (unsigned long long)b->seq);
		*status = VG_ACK_DUPLICATE;
		return 1;
	}
	if (rc == -ETIMEDOUT) { /* a lock on the table, a stalled server */
		*status = state_deadline(r, b, "its duplicate check");
		return 1;
	}
	if (rc == -ECANCELED) {
		*status = state_canceled(r, b, "its duplicate check");
		return 1;
	}
	if (rc < 0) {
		vg_log_limited(VG_LOG_WARN, &r->n_seen_err,
			       "registry: duplicate check for %s failed: %s; "
			       "asking for a retry",
			       b->host, strerror(-rc));
		count(&r->stats.batches_retry, 1);
		*status = VG_ACK_RETRY;
		return 1;
	}
	if (rc == 2) {
		/* another live collector acknowledged this host's batches
		 * while a storage daemon could not take their values: newer
		 * ones written first would make the files refuse those (an
		 * RRD takes only values newer than its last update). The
		 * agent keeps the batch, and its probes take the host back
		 * to that collector, which stores it */
		vg_log_limited(VG_LOG_WARN, &r->n_held,
			       "batch %s seq %llu answered RETRY: another "
			       "collector holds values of this host that a "
			       "storage daemon has not taken yet",
			       b->host, (unsigned long long)b->seq);
		count(&r->stats.batches_held_elsewhere, 1);
		count(&r->stats.batches_retry, 1);
		held_note(r, b->host, vg_registry_held_by(r->o.registry), 0);
		*status = VG_ACK_RETRY;
		return 1;
	}
	if (rc == 3 && proven(r, b)) {
		count(&r->stats.batches_proven, 1);
		rc = 0;
	}
	if (rc == 3) {
		/* another collector committed the host's last batch after
		 * the time up to which its storage syncs verified what it
		 * acknowledged: a daemon may still lose those values (a kill
		 * -9 before its journal had them), and once this one wrote
		 * newer ones nothing could put them back (docs/scaling.md
		 * "Closing the second"). The agent keeps the batch; that
		 * collector's next sync, its restart, [cluster] hold_max or
		 * `storage marks release` ends the wait */
		if (!r->unverified_episode) {
			r->unverified_episode = 1;
			vg_warn("batch %s seq %llu answered RETRY: collector %s "
				"committed this host's last batch and has not yet "
				"verified its values durable on the storage "
				"daemons; its hosts wait here until it does "
				"(logged once until none waits)",
				b->host, (unsigned long long)b->seq,
				vg_registry_held_by(r->o.registry));
		}
		count(&r->stats.batches_unverified, 1);
		count(&r->stats.batches_retry, 1);
		held_note(r, b->host, vg_registry_held_by(r->o.registry), 1);
		*status = VG_ACK_RETRY;
		return 1;
	}
	/* the host's previous batch acknowledged elsewhere (or not known
	 * here): the store marks the batch's series (series.arrived_ms) */
	b->arrived = !vg_registry_seen_local(r->o.registry);
	if (r->nheld)
		held_forget(r, b->host); /* no mark holds it back now */
	{
		struct foreign_ctx fc = {.r = r, .b = b, .hl = strlen(b->host)};
		vg_batch_remove_resources(b, drop_foreign, &fc);
		vg_batch_remove_events(b, drop_foreign_event, &fc);
	}
	if (trim_projects(r, b)) {
		count(&r->stats.batches_retry, 1);
		*status = VG_ACK_RETRY;
		return 1;
	}
	return 0;
}

/* Whether m, through its checks, has too little of its deadline left for
 * the consumers (an eighth of the ack timeout, or less): then answered
 * RETRY now, before anything of it is written, rather than late. The
 * agent keeps it and sends it again (docs/operations.md "One deadline per
 * batch"). */
static int too_late(struct vg_receiver *r, struct msg *m)
{
	int64_t left;

	if (!m->deadline_ms)
		return 0;
	left = m->deadline_ms - vg_monotonic_ms();
	if (left >= (int64_t)r->o.ack_timeout_ms / 8)
		return 0;
	char why[160];
	snprintf(why, sizeof(why), "%lld ms of its deadline left after its checks, too "
				   "little to store and commit it before the agent's ack timeout",
		 (long long)left);
	m->ack.status = retry_deadline(r, m->b, 0, why);
	return 1;
}

/* The consumers' outcome rc for b: 1 with *status RETRY when it is
 * answered so, else 0 (its sequence number is to be committed). */
static int dispatched(struct vg_receiver *r, const struct vg_batch *b, int rc,
		      uint8_t *status)
{
	if (rc == -EAGAIN) {
		char space[640] = "";
		struct statvfs vfs;
		count(&r->stats.batches_retry, 1);
		r->n_retrying++;
		/* Say why: the agent only learns "retry". */
		if (r->data_dir[0] && statvfs(r->data_dir, &vfs) == 0) {
			unsigned long long avail =
				(unsigned long long)vfs.f_bavail * vfs.f_frsize;
			snprintf(space, sizeof(space), "; %s: %s, %llu KiB free",
				 r->data_dir,
				 avail < (4ull << 20) ? "disk full" : "space left",
				 avail >> 10);
		}
		vg_log_limited(VG_LOG_WARN, &r->n_retry,
			       "batch %s seq %llu not stored, answering RETRY "
			       "(the agent keeps it and resends): %s%s",
			       b->host,
			       (unsigned long long)b->seq,
			       r->o.store && *vg_store_last_error(r->o.store)
				       ? vg_store_last_error(r->o.store)
				       : "a consumer cannot take it now",
			       space);
		*status = VG_ACK_RETRY;
		return 1;
	}
	if (r->n_retrying) {
		vg_info("storing again after %llu RETRY answer(s)",
			(unsigned long long)r->n_retrying);
		r->n_retrying = 0;
	}
	if (rc < 0)
		vg_log_limited(VG_LOG_WARN, &r->n_dispatch_err,
			       "batch %s seq %llu: a consumer failed: %s "
			       "(acknowledged anyway)",
			       b->host,
			       (unsigned long long)b->seq, strerror(-rc));
	return 0;
}

/* The ack status of b after its sequence number's commit returned rc. */
static uint8_t committed(struct vg_receiver *r, const struct vg_batch *b, int rc)
{
	struct vg_store_stats ss = {0};

	if (rc == -EBUSY) {
		/* the holding mark was refused: another collector marked the
		 * host after this one's duplicate check (vg_registry_mark;
		 * logged by count_marks) */
		count(&r->stats.batches_retry, 1);
		return VG_ACK_RETRY;
	}
	if (rc == -ETIMEDOUT) {
		/* the batch's deadline cut its commit (PostgreSQL: a row lock
		 * another session holds, or a slow server): rolled back,
		 * nothing recorded; RETRY now rather than an ack after the
		 * agent's timeout (registry.c "Commits bounded by the
		 * deadline") */
		return state_deadline(r, b, "its commit");
	}
	if (rc == -ECANCELED)
		return state_canceled(r, b, "its commit");
	if (rc < 0) {
		vg_log_limited(VG_LOG_WARN, &r->n_commit_err,
			       "registry: cannot record %s seq %llu: %s; asking "
			       "for a retry",
			       b->host, (unsigned long long)b->seq,
			       strerror(-rc));
		count(&r->stats.batches_retry, 1);
		return VG_ACK_RETRY;
	}
	if (rc == 1) {
		/* another collector of the shared state committed it first
		 * (the agent re-sent it after a lost ack): one of us counts
		 * it; our writes of its values were the same values (an RRD
		 * refuses the second copy), and the registry reads the host's
		 * next batch's check in the database, with its holding mark
		 * (docs/scaling.md "Holding marks") */
		count(&r->stats.batches_duplicate, 1);
		vg_debug("duplicate batch %s stream %016llx seq %llu (committed "
			 "elsewhere first)",
			 b->host,
			 (unsigned long long)b->stream, (unsigned long long)b->seq);
		return VG_ACK_DUPLICATE;
	}
	count(&r->stats.samples_received, b->nsamples);
	if (r->o.store && vg_log_enabled(VG_LOG_DEBUG))
		vg_store_get_stats(r->o.store, &ss); /* for the line below */
	vg_debug("accepted batch host=%s stream=%016llx seq=%llu: %zu resources, "
		 "%zu samples stored (%llu values wait in the store's cache)",
		 b->host, (unsigned long long)b->stream,
		 (unsigned long long)b->seq, b->nres, b->nsamples,
		 (unsigned long long)ss.values_pending);
	return VG_ACK_OK;
}

/* Times before this are a clock that was never set: refused, because a
 * first sample near 0 would make librrd start the file at "now" and turn
 * every later sample from the past into a duplicate. */
#define MIN_TIME_MS (86400 * 1000LL) /* 1970-01-02 */

/* Whether t is outside [lo, hi]. */
static int out_of(int64_t t, int64_t lo, int64_t hi)
{
	return t < lo || t > hi;
}

/* The first time in b (poll, resource or event time) outside [lo, hi]
 * into *t: 1 if there is one, else 0. */
static int bad_time(const struct vg_batch *b, int64_t lo, int64_t hi, int64_t *t)
{
	*t = b->time_ms;
	if (out_of(*t, lo, hi))
		return 1;
	for (size_t i = 0; i < b->nres; i++)
		if (out_of(*t = b->res[i].time_ms, lo, hi))
			return 1;
	for (size_t i = 0; i < b->nevents; i++)
		if (out_of(*t = b->events[i].time_ms, lo, hi))
			return 1;
	return 0;
}

/* Signature and time checks. 0 to go on (with *key set when the ack must
 * be signed), or -EACCES after counting and logging the refusal. */
static int admit(struct vg_receiver *r, const struct vg_batch *b,
		 const void *buf, size_t len, const struct vg_key **key)
{
	struct vg_sign_policy p = {
		.keys = r->o.keys,
		.require = r->o.require_signatures,
		.window_ms = r->o.max_clock_skew_ms,
	};
	int64_t now = vg_now_ms();
	enum vg_sign_verdict v;
	uint64_t *counter = NULL;
	const char *why = NULL;
	int64_t shown = b->time_ms; /* the time the log line names */

	*key = NULL;
	v = vg_sign_check(&p, b->host, b->time_ms, now, buf, len);
	switch (v) {
	case VG_SIGN_OK:
		*key = vg_keyring_find(r->o.keys, b->host);
		break;
	case VG_SIGN_UNCHECKED:
		break;
	case VG_SIGN_UNSIGNED:
		counter = &r->stats.batches_unsigned;
		why = r->o.require_signatures
			      ? "not signed (require_signatures is on)"
			      : "not signed, but this host has a key";
		break;
	case VG_SIGN_NO_KEY:
		counter = &r->stats.batches_no_key;
		why = "signed, but there is no key for this host in keys_dir";
		break;
	case VG_SIGN_FORGED:
		counter = &r->stats.batches_forged;
		why = "forged: the signature matches no key";
		break;
	case VG_SIGN_WRONG_HOST:
		counter = &r->stats.batches_wrong_host;
		why = "signed with another host's key (a node speaking for "
		      "another)";
		break;
	case VG_SIGN_STALE:
		counter = &r->stats.batches_stale;
		why = "poll time outside max_clock_skew of the collector's clock";
		break;
	}
	if (!counter) {
		int64_t hi = r->o.max_future_ms > 0 ? now + r->o.max_future_ms
						    : INT64_MAX,
			t;
		if (bad_time(b, MIN_TIME_MS, hi, &t)) {
			shown = t;
			if (t > hi) {
				counter = &r->stats.batches_future;
				why = "a time further ahead of the collector's "
				      "clock than max_future";
			} else {
				counter = &r->stats.batches_clock_unset;
				why = "a time before 1970-01-02 (the agent's clock "
				      "is not set)";
			}
		}
	}
	if (!counter)
		return 0;
	*key = NULL;
	count(&r->stats.batches_rejected, 1);
	vg_log_limited(VG_LOG_WARN, counter,
		       "refused batch host=%s stream=%016llx seq=%llu time=%lld: %s",
		       b->host, (unsigned long long)b->stream,
		       (unsigned long long)b->seq, (long long)shown, why);
	return -EACCES;
}

/* Decode and admit one message: m->decided with its ack when it is
 * answered without the consumers (REJECTED), else m->b is the batch. */
static void admit_msg(struct vg_receiver *r, struct msg *m)
{
	const struct vg_key *key = NULL;
	int rc;

	m->keyed = 0;
	m->b = NULL;
	m->decided = 0;
	memset(&m->ack, 0, sizeof(m->ack));
	count(&r->stats.batches_received, 1);
	rc = m->len > r->o.max_message ? -E2BIG : vg_wire_decode(m->buf, m->len, &m->b);
	if (rc) {
		/* Name it if the header is readable, so the agent can match. */
		vg_wire_peek(m->buf, m->len, &m->ack.stream, &m->ack.seq);
		int oversize = rc == -E2BIG && m->len > r->o.max_message;
		m->ack.status = VG_ACK_REJECTED;
		m->decided = 1;
		m->b = NULL;
		count(&r->stats.batches_rejected, 1);
		vg_log_limited(VG_LOG_WARN,
			       oversize        ? &r->stats.batches_oversize
			       : rc == -EILSEQ ? &r->stats.batches_bad_name
					       : &r->stats.batches_malformed,
			       "rejected a %zu-byte message (stream %016llx seq "
			       "%llu): %s",
			       m->len, (unsigned long long)m->ack.stream,
			       (unsigned long long)m->ack.seq,
			       oversize ? "over max_message_bytes"
					: vg_wire_strerror(rc));
		return;
	}
	m->ack.stream = m->b->stream;
	m->ack.seq = m->b->seq;
	if (admit(r, m->b, m->buf, m->len, &key)) {
		m->ack.status = VG_ACK_REJECTED;
		m->decided = 1;
		vg_batch_free(m->b);
		m->b = NULL;
	} else if (key) {
		m->key = *key;
		m->keyed = 1;
	}
}

/* Keep this collector's holding marks true: cleared once the store holds
 * no value a daemon has not taken, renewed every third of their ttl until
 * then (a failure is retried at the next tick, logged rate-limited). */
static void tend_marks(struct vg_receiver *r, int64_t now)
{
	int rc = 0, holding;

	if (__atomic_exchange_n(&r->lost_noted, 0, __ATOMIC_ACQ_REL)) {
		if (!r->holding)
			r->hold_renewed_ms = now;
		r->holding = r->marked = 1;
		__atomic_store_n(&r->stats.marks_holding, 1, __ATOMIC_RELAXED);
	}
	if (!r->holding)
		return;
	pthread_mutex_lock(&r->lost_mu);
	if (!(holding = vg_store_holding(r->o.store)))
		rc = vg_registry_hold_clear(r->o.registry);
	pthread_mutex_unlock(&r->lost_mu);
	if (!holding && !rc) {
		/* rate-limited as the line setting them: a daemon that
		 * flaps sets and clears marks each time */
		if (r->marked)
			vg_log_limited(VG_LOG_INFO, &r->n_hold_clear,
				       "storage: every value held for a "
				       "storage daemon is written; this "
				       "collector's hosts may move again");
		r->holding = r->marked = 0;
		__atomic_store_n(&r->stats.marks_holding, 0, __ATOMIC_RELAXED);
		return;
	}
	if (holding) {
		if (now - r->hold_renewed_ms < r->o.hold_ttl_ms / 3)
			return;
		if (!(rc = vg_registry_hold_renew(r->o.registry))) {
			r->hold_renewed_ms = now;
			return;
		}
	}
	count(holding ? &r->stats.hold_marks_renew_failed : &r->stats.hold_marks_clear_failed,
	      1);
	vg_log_limited(VG_LOG_WARN, &r->n_hold_err,
		       "registry: cannot %s this collector's holding marks: %s",
		       holding ? "renew" : "clear", vg_registry_last_error(r->o.registry));
}

static int id_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int vg_receiver_hold_lost(void *ctx, const struct vg_store_series *ser, size_t n)
{
	struct vg_receiver *r = ctx;
	const char **ids;
	uint64_t marked = 0;
	size_t k = 0;
	int rc;

	if (!r || !r->o.lost_registry || r->o.hold_ttl_ms <= 0 || !n)
		return 0;
	if (!(ids = malloc(n * sizeof(*ids))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		ids[i] = ser[i].id;
	qsort(ids, n, sizeof(*ids), id_cmp); /* one statement per resource */
	for (size_t i = 0; i < n; i++)
		if (!k || strcmp(ids[k - 1], ids[i]))
			ids[k++] = ids[i];
	pthread_mutex_lock(&r->lost_mu);
	rc = vg_registry_hold_resources(r->o.lost_registry, ids, k, &marked);
	pthread_mutex_unlock(&r->lost_mu);
	free(ids);
	if (rc) {
		vg_log_limited(VG_LOG_WARN, &r->n_lost_err,
			       "registry: cannot mark the hosts of %zu series a storage "
			       "daemon lost (their re-send waits): %s",
			       n, vg_registry_last_error(r->o.lost_registry));
		return rc;
	}
	__atomic_store_n(&r->lost_noted, 1, __ATOMIC_RELEASE);
	vg_log_limited(VG_LOG_INFO, &r->n_lost_marked,
		       "storage: %zu series lost by a storage daemon (a restart): their "
		       "hosts held (%llu of %zu resources marked) until their "
		       "re-send is written",
		       n, (unsigned long long)marked, k);
	return marked < k ? -EBUSY : 0;
}

/* The registry's flusher (PostgreSQL) writes the last values on its own
 * thread, so its failures reach no batch: count them in the receiver's
 * stats (/metrics) and log them here (rate-limited). The resources the
 * registry found swept by another collector (its flusher's or this
 * thread's writes) are copied to the stats the same way. */
static void watch_flusher(struct vg_receiver *r)
{
	struct vg_registry_stats st;
	char msg[256];

	vg_registry_stats(r->o.registry, &st);
	__atomic_store_n(&r->stats.registry_gone_resources, st.gone_resources,
			 __ATOMIC_RELAXED);
	if (st.flush_failures == r->flush_failures)
		return;
	r->flush_failures = st.flush_failures;
	__atomic_store_n(&r->stats.registry_flush_failures, st.flush_failures,
			 __ATOMIC_RELAXED);
	vg_registry_flush_error(r->o.registry, msg, sizeof(msg));
	vg_log_limited(VG_LOG_WARN, &r->n_flush_err,
		       "registry: cannot write the last values and last-seen "
		       "times: %s; they stay in memory and are tried again",
		       msg);
}

/* Write this collector's verified row (o.verified_rows) when the store
 * verified past the last time written and something is not covered yet:
 * a commit of this run after it, or nothing written yet this run. */
static void tend_verified(struct vg_receiver *r)
{
	int64_t v;
	int rc;

	if (r->unverified_episode) {
		/* the episode also ends when every waiting host went quiet
		 * (its agent went back, or stopped): the next wait is logged */
		int64_t now = vg_now_ms();
		int live = 0;
		for (size_t k = 0; k < r->nheld && !live; k++)
			live = r->held[k].unverified && now - r->held[k].last_ms < r->o.held_age_ms;
		if (!live)
			r->unverified_episode = 0;
	}
	if (!r->o.verified_rows || !r->o.store)
		return;
	if (r->verified_written_ms >= 0 &&
	    r->verified_written_ms >= vg_registry_committed_ms(r->o.registry))
		return;
	v = vg_store_verified_ms(r->o.store);
	if (v <= 0 || v <= r->verified_written_ms)
		return;
	if ((rc = vg_registry_set_verified(r->o.registry, v))) {
		count(&r->stats.verified_write_failed, 1);
		vg_log_limited(VG_LOG_WARN, &r->n_verified_err,
			       "registry: cannot write this collector's verified "
			       "row: %s; other collectors keep its hosts waiting "
			       "until it is written",
			       vg_registry_last_error(r->o.registry));
		return;
	}
	r->verified_written_ms = v;
}

static void tick(struct vg_receiver *r)
{
	int64_t now = vg_monotonic_ms();

	if (r->o.idle)
		r->o.idle(r->o.idle_ctx);
	if (now - r->last_tick_ms < TICK_EVERY_MS)
		return;
	r->last_tick_ms = now;
	tend_marks(r, now);
	tend_verified(r);
	watch_flusher(r);
	vg_dispatch_tick(r->o.dispatch, vg_now_ms());
}

int vg_receiver_submit(struct vg_receiver *r, vg_receiver_job_fn fn, void *ctx)
{
	struct job j = {.fn = fn, .ctx = ctx};
	uint64_t one = 1;

	if (!r || !fn)
		return -EINVAL;
	pthread_mutex_lock(&r->qlock);
	if (r->closed || r->stop) {
		pthread_mutex_unlock(&r->qlock);
		return -ESHUTDOWN;
	}
	if (r->qlen >= VG_RECEIVER_QUEUE_MAX) {
		pthread_mutex_unlock(&r->qlock);
		count(&r->stats.jobs_refused, 1);
		return -EBUSY;
	}
	if (r->tail)
		r->tail->next = &j;
	else
		r->head = &j;
	r->tail = &j;
	r->qlen++;
	/* an eventfd write only fails when the counter would overflow */
	if (write(r->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		vg_debug("receiver: eventfd write: %s", strerror(errno));
	while (!j.done)
		pthread_cond_wait(&r->qdone, &r->qlock);
	pthread_mutex_unlock(&r->qlock);
	return j.rc;
}

struct vg_registry *vg_receiver_inject_registry(struct vg_receiver_inject *in)
{
	return in->r->o.registry;
}

int vg_receiver_inject_batch(struct vg_receiver_inject *in,
			     const struct vg_batch *b, uint64_t *duplicates)
{
	struct vg_receiver *r = in->r;
	struct vg_store_stats before = {0}, after = {0};
	int rc;

	if (r->o.store)
		vg_store_get_stats(r->o.store, &before);
	rc = vg_dispatch_batch(r->o.dispatch, b);
	log_store(r, &before, b);
	if (r->o.store)
		vg_store_get_stats(r->o.store, &after);
	if (duplicates)
		*duplicates = after.values_duplicate - before.values_duplicate;
	if (rc == -EAGAIN) {
		count(&r->stats.batches_retry, 1);
		vg_log_limited(VG_LOG_WARN, &r->n_retry,
			       "published measures of %s not stored (answered "
			       "503): %s",
			       b->host,
			       r->o.store && *vg_store_last_error(r->o.store)
				       ? vg_store_last_error(r->o.store)
				       : "a consumer cannot take them now");
		return -EAGAIN;
	}
	if (rc < 0)
		vg_log_limited(VG_LOG_WARN, &r->n_dispatch_err,
			       "published measures of %s: a consumer failed: "
			       "%s (stored anyway)",
			       b->host, strerror(-rc));
	count(&r->stats.samples_received, b->nsamples);
	count(&r->stats.samples_published, b->nsamples);
	return 0;
}

/* Run every queued job (receiver thread). */
static void run_jobs(struct vg_receiver *r)
{
	uint64_t v;

	if (read(r->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		vg_debug("receiver: eventfd read: %s", strerror(errno));
	for (;;) {
		struct vg_receiver_inject in = {.r = r};
		struct job *j;

		pthread_mutex_lock(&r->qlock);
		j = r->head;
		if (j) {
			r->head = j->next;
			if (!r->head)
				r->tail = NULL;
			r->qlen--;
		}
		pthread_mutex_unlock(&r->qlock);
		if (!j)
			return;
		j->rc = j->fn(j->ctx, &in);
		pthread_mutex_lock(&r->qlock);
		j->done = 1;
		pthread_cond_broadcast(&r->qdone);
		pthread_mutex_unlock(&r->qlock);
	}
}

/* The loop ended: refuse new jobs, fail the queued ones. */
static void close_jobs(struct vg_receiver *r)
{
	pthread_mutex_lock(&r->qlock);
	r->closed = 1;
	for (struct job *j = r->head; j; j = j->next) {
		j->rc = -ESHUTDOWN;
		j->done = 1;
	}
	r->head = r->tail = NULL;
	r->qlen = 0;
	pthread_cond_broadcast(&r->qdone);
	pthread_mutex_unlock(&r->qlock);
}

/* Take the next message waiting on the socket into m, without waiting:
 * 0 or -errno (-EAGAIN: none). */
static int recv_msg(struct vg_receiver *r, struct msg *m)
{
	struct nn_iovec iov = {.iov_base = &m->buf, .iov_len = NN_MSG};
	struct nn_msghdr h;
	int n;

	memset(&h, 0, sizeof(h));
	m->buf = m->ctrl = NULL;
	h.msg_iov = &iov;
	h.msg_iovlen = 1;
	h.msg_control = &m->ctrl;
	h.msg_controllen = NN_MSG;
	int64_t before = vg_monotonic_ms();
	n = nn_recvmsg(r->sock, &h, NN_DONTWAIT);
	if (n < 0) {
		int e = errno;
		if (e == EAGAIN)
			r->quiet_ms = before;
		return -e;
	}
	m->len = (size_t)n;
	m->admitted = 0;
	/* the batch's deadline (see vg_receiver_options), from its arrival:
	 * not from now, as it may have waited in the socket's queue while
	 * the previous group was handled (a daemon slow, a commit), and the
	 * agent's ack timeout runs from its send. nanomsg does not say when
	 * it came: its earliest possible arrival is when the socket was last
	 * seen empty (quiet_ms), never later than the real one (an idle
	 * receiver's is up to recv_timeout_ms earlier) */
	m->deadline_ms = r->o.ack_timeout_ms
				 ? r->quiet_ms + (int64_t)r->o.ack_timeout_ms * 3 / 4
				 : 0;
	return 0;
}

/* Send m's ack to its requester (its routing header) and free m. */
static void answer(struct vg_receiver *r, struct msg *m)
{
	uint8_t abuf[VG_WIRE_ACK_LEN + VG_WIRE_MAC_LEN];
	struct nn_iovec iov;
	struct nn_msghdr h;
	size_t alen;

	alen = vg_wire_ack_encode(&m->ack, abuf);
	if (m->keyed) /* bound to the batch's MAC, so before freeing it */
		alen = vg_sign_ack(&m->key, vg_sign_mac(m->buf, m->len), abuf);
	vg_sign_key_wipe(&m->key);
	m->keyed = 0;
	vg_batch_free(m->b);
	m->b = NULL;
	nn_freemsg(m->buf);
	m->buf = NULL;
	if (!m->ctrl) { /* raw REP always gives one; never route blindly */
		vg_log_limited(VG_LOG_WARN, &r->n_send_err,
			       "no routing header for the ack of seq %llu (the "
			       "agent will resend)",
			       (unsigned long long)m->ack.seq);
		return;
	}
	iov.iov_base = abuf;
	iov.iov_len = alen;
	memset(&h, 0, sizeof(h));
	h.msg_iov = &iov;
	h.msg_iovlen = 1;
	h.msg_control = &m->ctrl; /* nanomsg takes it, sent or not */
	h.msg_controllen = NN_MSG;
	if (nn_sendmsg(r->sock, &h, 0) < 0)
		vg_log_limited(VG_LOG_INFO, &r->n_send_err,
			       "cannot send ack for seq %llu: %s "
			       "(the agent will resend)",
			       (unsigned long long)m->ack.seq,
			       nn_strerror(errno));
	m->ctrl = NULL;
}

/* Drop a message never answered (the socket failed): its agent resends. */
static void drop_msg(struct msg *m)
{
	vg_batch_free(m->b);
	nn_freemsg(m->buf);
	nn_freemsg(m->ctrl);
	memset(m, 0, sizeof(*m));
}

static int same_stream(const struct vg_batch *a, const struct vg_batch *b)
{
	return a->stream == b->stream && !strcmp(a->host, b->host);
}

/* Count and log the holding marks the registry could not write in a
 * commit (its counters before and after): refused (another collector's
 * live mark on the host; the batch answered RETRY, or DUPLICATE when the
 * holder committed it first) or failed (the batch answered RETRY with
 * its commit). */
static void count_marks(struct vg_receiver *r, const struct vg_registry_stats *a,
			const struct vg_registry_stats *b)
{
	uint64_t refused = b->hold_refused - a->hold_refused;
	uint64_t failed = b->hold_failed - a->hold_failed;

	if (refused) {
		count(&r->stats.hold_marks_refused, refused);
		vg_log_limited(VG_LOG_WARN, &r->n_hold_refused,
			       "registry: holding mark refused: another collector "
			       "marked the host after this one's duplicate check "
			       "(its values are older; it keeps the host): %s; the "
			       "batch is answered RETRY, not recorded (DUPLICATE "
			       "if that collector recorded it first)",
			       vg_registry_last_error(r->o.registry));
	}
	if (failed) {
		count(&r->stats.hold_marks_failed, failed);
		vg_log_limited(VG_LOG_WARN, &r->n_hold_failed,
			       "registry: cannot write a holding mark: %s; the "
			       "batch is answered RETRY",
			       vg_registry_last_error(r->o.registry));
	}
}

/* One turn: take the messages carried over and (if take) those already
 * waiting (at most VG_RECEIVER_GROUP_MAX, VG_RECEIVER_GROUP_BYTES), answer
 * the ones refused or duplicate, hand the rest to the consumers as one
 * group (a batch of a (host, stream) already in it waits for the next
 * turn), commit their sequence numbers after every consumer's durable
 * work, and answer each. The first message taken is never carried over
 * (nothing is in the group yet), so a turn without new messages leaves
 * fewer carried. 0, or the receive's -errno when nothing was there. */
static int run_group(struct vg_receiver *r, int take)
{
	const struct vg_batch *gb[VG_RECEIVER_GROUP_MAX];
	struct vg_registry_mark mk[VG_RECEIVER_GROUP_MAX];
	int rcs[VG_RECEIVER_GROUP_MAX], crc[VG_RECEIVER_GROUP_MAX];
	size_t gi[VG_RECEIVER_GROUP_MAX], mi[VG_RECEIVER_GROUP_MAX];
	size_t n = 0, ng = 0, nm = 0, bytes = 0;
	struct vg_store_stats before = {0};
	int64_t gdl = 0; /* the earliest deadline of the group's batches */
	int rc = 0;

	for (size_t i = 0; i < r->ncarry; i++) {
		r->grp[n] = r->carry[i];
		bytes += r->grp[n++].len;
	}
	r->ncarry = 0;
	while (take && n < VG_RECEIVER_GROUP_MAX && bytes < VG_RECEIVER_GROUP_BYTES) {
		if ((rc = recv_msg(r, &r->grp[n])))
			break;
		bytes += r->grp[n++].len;
	}
	if (!n)
		return rc;
	for (size_t i = 0; i < n; i++) {
		struct msg *m = &r->grp[i];
		int later = 0;

		if (!m->admitted) {
			admit_msg(r, m);
			m->admitted = 1;
		}
		if (m->decided)
			continue;
		for (size_t k = 0; k < ng && !later; k++)
			later = same_stream(gb[k], m->b);
		if (later) { /* after the one in the group is answered */
			r->carry[r->ncarry++] = *m;
			memset(m, 0, sizeof(*m));
			count(&r->stats.batches_deferred, 1);
			continue;
		}
		r->cur_deadline_ms = m->deadline_ms;
		/* one whose deadline passed already (a copy the socket kept
		 * while the receiver waited) is not checked at all */
		if ((m->deadline_ms && m->deadline_ms <= vg_monotonic_ms() && too_late(r, m)) ||
		    check_seen(r, m->b, &m->ack.status) || too_late(r, m)) {
			m->decided = 1;
			continue;
		}
		gi[ng] = i;
		gb[ng++] = m->b;
		if (m->deadline_ms && (!gdl || m->deadline_ms < gdl))
			gdl = m->deadline_ms;
	}
	r->cur_deadline_ms = 0;
	/* the registry's transactions as a consumer and the commits below
	 * end by the group's deadline (registry.c "Commits bounded by the
	 * deadline"): cut there, a batch is answered RETRY, not recorded */
	for (size_t k = 0; k < ng; k++)
		r->grp[gi[k]].b->deadline_ms = gdl;
	if (ng) {
		struct vg_registry_stats cut0 = {0}, cut1 = {0};
		if (r->o.store)
			vg_store_get_stats(r->o.store, &before);
		if (r->o.registry)
			vg_registry_stats(r->o.registry, &cut0);
		vg_store_set_deadline(r->o.store, gdl);
		vg_dispatch_group(r->o.dispatch, gb, ng, rcs);
		vg_store_set_deadline(r->o.store, 0);
		count(&r->stats.batch_deadline, vg_store_deadline_cuts(r->o.store));
		if (r->o.registry)
			vg_registry_stats(r->o.registry, &cut1);
		count(&r->stats.state_canceled, cut1.consumer_canceled - cut0.consumer_canceled);
		if (cut1.consumer_deadline > cut0.consumer_deadline) {
			/* answered RETRY (-EAGAIN: dispatched) */
			uint64_t cuts = cut1.consumer_deadline - cut0.consumer_deadline;
			count(&r->stats.commit_deadline, cuts);
			count(&r->stats.batch_deadline, cuts);
			vg_log_limited(VG_LOG_WARN, &r->n_deadline,
				       "%llu batch(es) answered RETRY: the registry's "
				       "transaction in the state database did not end by "
				       "their deadline and was rolled back: %s",
				       (unsigned long long)cuts,
				       vg_registry_last_error(r->o.registry));
		}
		log_store(r, &before, gb[0]);
		if (ng > 1) {
			count(&r->stats.groups, 1);
			count(&r->stats.batches_grouped, ng);
		}
	}
	/* the store holds values a daemon did not take: whichever host they
	 * are of, the group's hosts get a mark (a host's series are spread
	 * over every daemon, so while one is down nearly every host has
	 * values waiting for it) */
	int hold = ng && r->o.hold_ttl_ms > 0 && vg_store_holding(r->o.store);
	for (size_t k = 0; k < ng; k++) {
		struct msg *m = &r->grp[gi[k]];

		if (dispatched(r, m->b, rcs[k], &m->ack.status)) {
			m->decided = 1;
			continue;
		}
		mk[nm] = (struct vg_registry_mark){m->b->host, m->b->stream, m->b->seq,
						   m->b->time_ms, hold, gdl};
		mi[nm++] = gi[k];
	}
	/* after every consumer's durable work (the meter's COMMIT included),
	 * so a batch whose work failed is never recorded as seen */
	struct vg_registry_stats rs0 = {0}, rs1 = {0};
	if (hold)
		vg_registry_stats(r->o.registry, &rs0);
	if (nm && vg_registry_commit_group(r->o.registry, mk, nm, crc))
		for (size_t j = 0; j < nm; j++)
			crc[j] = -EAGAIN;
	if (hold) {
		vg_registry_stats(r->o.registry, &rs1);
		count_marks(r, &rs0, &rs1);
	}
	for (size_t j = 0; j < nm; j++) {
		struct msg *m = &r->grp[mi[j]];
		m->ack.status = committed(r, m->b, crc[j]);
		m->decided = 1;
		if (hold && crc[j] >= 0 && !r->marked) {
			r->holding = r->marked = 1;
			__atomic_store_n(&r->stats.marks_holding, 1, __ATOMIC_RELAXED);
			r->hold_renewed_ms = vg_monotonic_ms();
			vg_log_limited(VG_LOG_INFO, &r->n_hold_set,
				       "storage: batches of %s acknowledged with "
				       "values a storage daemon has not taken; "
				       "other collectors answer this host RETRY "
				       "until they are written",
				       m->b->host);
		}
	}
	for (size_t i = 0; i < n; i++)
		if (r->grp[i].buf)
			answer(r, &r->grp[i]);
	return 0;
}

int vg_receiver_run(struct vg_receiver *r)
{
	int rcvfd = -1;
	size_t fdlen = sizeof(rcvfd);
	int rc = 0;

	if (nn_getsockopt(r->sock, NN_SOL_SOCKET, NN_RCVFD, &rcvfd, &fdlen) < 0) {
		close_jobs(r);
		return -errno;
	}
	/* the marks this collector left before a restart (same holder name):
	 * renewed while the values replayed from its journal wait for a
	 * daemon, else cleared at the first tick (one statement) */
	r->quiet_ms = vg_monotonic_ms();
	if (r->o.hold_ttl_ms > 0) {
		r->holding = 1;
		r->hold_renewed_ms = vg_monotonic_ms() - r->o.hold_ttl_ms;
		__atomic_store_n(&r->stats.marks_holding, 1, __ATOMIC_RELAXED);
	}
	while (!r->stop) {
		struct pollfd pfd[2] = {{.fd = rcvfd, .events = POLLIN},
					{.fd = r->efd, .events = POLLIN}};
		int e, pr;

		/* NN_RCVFD only says a message may be there: the receive
		 * below does not wait either way */
		pr = poll(pfd, 2, r->ncarry ? 0 : r->o.recv_timeout_ms);
		/* a poll that timed out saw the socket empty throughout (one
		 * woken by a message says only that it came since the last
		 * quiet time, at most recv_timeout_ms earlier when idle) */
		if (pr == 0)
			r->quiet_ms = vg_monotonic_ms();
		if (pr > 0 && (pfd[1].revents & POLLIN))
			run_jobs(r);
		e = -run_group(r, 1);
		tick(r);
		if (!e || e == ETIMEDOUT || e == EAGAIN || e == EINTR)
			continue;
		if (e == EBADF || e == ETERM) {
			rc = -e;
			break;
		}
		vg_log_limited(VG_LOG_WARN, &r->n_recv_err, "receive failed: %s",
			       nn_strerror(e));
	}
	/* A clean stop: the batches held back for the next turn are stored
	 * and answered now rather than dropped. Dropped, each would cost its
	 * agent an ack timeout; answered RETRY, it would not be better: RETRY
	 * says the collector is alive (agent/sender.h: no failover, back-off),
	 * so an agent with several collectors would send the batch to this
	 * one again and fail over only after that ack timeout. Storing them
	 * is bounded and cheap: fewer than VG_RECEIVER_GROUP_MAX batches,
	 * already decoded and admitted, each turn answering at least one (no
	 * new message is taken), the same work as the turn just finished, and
	 * the consumers are open until vg_receiver_run returns (compose.c).
	 * After a socket failure no answer can go out: they are dropped. */
	while (!rc && r->ncarry)
		run_group(r, 0);
	for (size_t i = 0; i < r->ncarry; i++)
		drop_msg(&r->carry[i]);
	r->ncarry = 0;
	/* A mark lasts [cluster] hold_max unless cleared: a collector
	 * stopping with nothing held clears its marks now rather than keep
	 * its hosts from the others until it starts again. One still
	 * holding keeps them: its journal has the values, written at its
	 * next start. */
	if (r->holding && !vg_store_holding(r->o.store))
		tend_marks(r, vg_monotonic_ms());
	close_jobs(r);
	return rc;
}
