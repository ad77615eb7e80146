/*
 * store_rrdcached_sync_test.c — when the store syncs its rrdcached
 * backend, and what it FLUSHes (vg_store_stats.backend_syncs_by,
 * vg_store_daemon.flushes_by; docs/benchmarks.md "Where the FLUSHes come
 * from"), against one real rrdcached.
 *
 *  - a batch that takes long to open its new series (a daemon slow to
 *    CREATE: stalled here in the create hook) is no idle time: the
 *    storage thread does not write the cache and sync meanwhile (it did,
 *    once per such batch: the bench's creating round of 100,000 series
 *    synced up to 79 times);
 *  - vg_store_flush that meets the storage thread's sync in progress
 *    waits for it and syncs what it wrote itself: every file it sent is
 *    FLUSHed when it returns (it returned with them pending, and the
 *    bench's measured rounds paid for the creating round's writes);
 *  - each FLUSH is counted at its call site;
 *  - vg_store_flush fails while values are owed (their daemon down), and
 *    passes again once they are written, also with a batch cached during
 *    the flush, however long ago the daemon was down;
 *  - vg_store_flush waiting for the storage thread's write in flight
 *    answers -EIO when that write fails (the daemon killed -9 under it).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/config.h"
#include "vigie/store.h"
#include "collector/backend.h"
#include "rrdcached_harness.h"
#include "../support/store_series.h"
#include "../support/tmpdir.h"

struct fx {
	char dir[256];
	struct hrd_daemon d;
	struct vg_config cfg;
	struct vg_store *s;
};

static pthread_t main_thread;
static const char *stall_create; /* the create hook stalls this file's */
static int hold_sync;            /* __atomic: the sync hook holds the
				  * storage thread's next sync */
static int sync_held;            /* __atomic: ... and it is held now */
/* __atomic: the held sync, once the main thread's flush has sent its
 * values (main_sent), writes minute 2 of node<write_in_hold> and returns
 * (-1: it sleeps 1.5 s); into held_store, its answer in held_write_rc */
static int write_in_hold = -1;
static int main_sent;
static struct vg_store *held_store;
static int held_write_rc;

/* __atomic: the storage thread's next send waits in the hook (hold_send)
 * until send_release, send_held set meanwhile, send_done once it goes */
static int hold_send, send_held, send_release, send_done;

void vg_rrd_rrdcached_test_before_send(const char *path)
{
	if (pthread_equal(pthread_self(), main_thread)) {
		__atomic_store_n(&main_sent, 1, __ATOMIC_SEQ_CST);
		return;
	}
	if (!__atomic_exchange_n(&hold_send, 0, __ATOMIC_SEQ_CST))
		return;
	__atomic_store_n(&send_held, 1, __ATOMIC_SEQ_CST);
	int64_t until = vg_monotonic_ms() + 20000;
	while (!__atomic_load_n(&send_release, __ATOMIC_SEQ_CST) && vg_monotonic_ms() < until)
		usleep(5 * 1000);
	__atomic_store_n(&send_done, 1, __ATOMIC_SEQ_CST);
}

void vg_rrd_rrdcached_test_before_create(const char *path)
{
	if (stall_create && !strcmp(path, stall_create)) {
		stall_create = NULL;
		usleep(2500 * 1000); /* past the store's idle time (1 s) */
	}
}

void vg_store_test_before_sync(void)
{
	if (pthread_equal(pthread_self(), main_thread) ||
	    !__atomic_exchange_n(&hold_sync, 0, __ATOMIC_SEQ_CST))
		return;
	__atomic_store_n(&sync_held, 1, __ATOMIC_SEQ_CST);
	int node = __atomic_exchange_n(&write_in_hold, -1, __ATOMIC_SEQ_CST);
	if (node >= 0) {
		/* a batch that comes while vg_store_flush waits for this
		 * sync: after the flush sent its values and settled them */
		int64_t until = vg_monotonic_ms() + 20000;
		while (!__atomic_load_n(&main_sent, __ATOMIC_SEQ_CST) && vg_monotonic_ms() < until)
			usleep(10 * 1000);
		usleep(200 * 1000);
		held_write_rc = fxs_write_minute(held_store, "node", node, 1, 2);
	} else {
		usleep(1500 * 1000);
	}
	__atomic_store_n(&sync_held, 0, __ATOMIC_SEQ_CST);
}

static int setup(void **state)
{
	static const char *const extra[] = {"-O", "-R", NULL};
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];

	main_thread = pthread_self();
	if (!f || fx_tmpdir(f->dir, sizeof(f->dir), "store-rcd-sync") ||
	    hrd_start(&f->d, NULL, extra))
		return -1;
	fxs_config(&f->cfg, "1m:1d", f->d.unix_addr, NULL);
	if (vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	vg_store_close(f->s);
	hrd_cleanup(&f->d);
	if (fx_rm_tree(f->dir))
		fprintf(stderr, "cannot remove %s\n", f->dir);
	free(f);
	return 0;
}

static struct vg_store_daemon daemon_state(struct fx *f)
{
	struct vg_store_daemon dm;

	assert_int_equal(vg_store_daemons(f->s, &dm, 1), 1);
	return dm;
}

/* node0's minute written, and the storage thread's next sync (of it)
 * held in the hook (1.5 s): returns once it is held */
static void write_node0_sync_held(struct fx *f)
{
	__atomic_store_n(&hold_sync, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(fxs_write_minute(f->s, "node", 0, 1, 0), 0);
	int64_t until = vg_monotonic_ms() + 20000;
	while (!__atomic_load_n(&sync_held, __ATOMIC_SEQ_CST) && vg_monotonic_ms() < until)
		usleep(10 * 1000);
	assert_true(__atomic_load_n(&sync_held, __ATOMIC_SEQ_CST));
}

static void test_slow_batch_is_not_idle(void **state)
{
	struct fx *f = *state;
	struct vg_store_stats st;

	assert_int_equal(fxs_write_minute(f->s, "node", 0, 2, 0), 0);
	/* node5's CREATE stalls 2.5 s inside the next batch: the receiver is
	 * busy all along, with node0's and node1's values cached */
	stall_create = "host/node5/load.1.rrd";
	assert_int_equal(fxs_write_minute(f->s, "node", 5, 1, 0), 0);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.backend_syncs_by[VG_STORE_SYNC_IDLE], 0);
	assert_int_equal(st.backend_syncs, 0);
	assert_int_equal(st.values_pending, 3);

	assert_int_equal(vg_store_flush(f->s), 0);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.backend_syncs_by[VG_STORE_SYNC_FLUSH], 1);
	assert_int_equal(st.backend_syncs, 1);
	struct vg_store_daemon dm = daemon_state(f);
	assert_int_equal(dm.pending, 0);
	/* one FLUSH per file by the sync; the opens read each new file's
	 * last update (FLUSH + INFO) */
	assert_int_equal(dm.flushes_by[VG_STORE_FLUSH_SYNC], 3);
	assert_int_equal(dm.flushes_by[VG_STORE_FLUSH_READ], 3);
	assert_int_equal(dm.flushes_by[VG_STORE_FLUSH_CHECK], 0);
	assert_int_equal(dm.flushes_by[VG_STORE_FLUSH_ARRIVAL], 0);
}

static void test_flush_waits_for_the_storage_threads_sync(void **state)
{
	struct fx *f = *state;
	struct vg_store_stats st;

	/* node0 cached; after 1 s with no batch the storage thread writes it
	 * and syncs, held 1.5 s in the hook before its FLUSHes */
	write_node0_sync_held(f);

	/* node1 written by vg_store_flush while that sync is held */
	assert_int_equal(fxs_write_minute(f->s, "node", 1, 1, 0), 0);
	assert_int_equal(vg_store_flush(f->s), 0);
	struct vg_store_daemon dm = daemon_state(f);
	assert_int_equal(dm.pending, 0); /* node1's file FLUSHed too */
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.backend_syncs_by[VG_STORE_SYNC_IDLE], 1);
	assert_true(st.backend_syncs_by[VG_STORE_SYNC_FLUSH] >= 1);
	assert_int_equal(dm.flushes_by[VG_STORE_FLUSH_SYNC], 2);
}

/* vg_store_flush fails exactly while values are owed: while the daemon
 * is down and its values wait for it; once they are written, flushes
 * pass, also when a batch comes during the flush (cached, not owed: no
 * daemon refused it). Once any daemon had been down, every flush that
 * left a value cached failed, for as long as the store ran. */
static void test_flush_after_outage(void **state)
{
	struct fx *f = *state;
	struct vg_store_stats st;
	int rc = -1;

	assert_int_equal(fxs_write_minute(f->s, "node", 0, 3, 0), 0);
	assert_int_equal(vg_store_flush(f->s), 0);

	assert_int_equal(hrd_kill(&f->d, SIGKILL), 0);
	assert_int_equal(fxs_write_minute(f->s, "node", 0, 3, 1), 0);
	assert_int_equal(vg_store_flush(f->s), -EIO); /* owed */
	assert_int_equal(vg_store_flush(f->s), -EIO); /* still */

	/* back: written (a series waits 1 s after its daemon failed, the
	 * daemon up to 2 s: flushes for up to 30 s) */
	assert_int_equal(hrd_restart(&f->d), 0);
	for (int i = 0; i < 120; i++) {
		rc = vg_store_flush(f->s);
		assert_true(rc == 0 || rc == -EIO);
		vg_store_get_stats(f->s, &st);
		if (!rc && !st.values_pending)
			break;
		usleep(250 * 1000);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(vg_store_flush(f->s), 0);

	/* node0's minute 2 in the storage thread's sync, held until node1's,
	 * written by vg_store_flush, was sent; then node2's minute 2 comes,
	 * while the flush waits for that sync */
	held_store = f->s;
	__atomic_store_n(&main_sent, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&write_in_hold, 2, __ATOMIC_SEQ_CST);
	__atomic_store_n(&hold_sync, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(fxs_write_minute(f->s, "node", 0, 1, 2), 0);
	int64_t until = vg_monotonic_ms() + 20000;
	while (!__atomic_load_n(&sync_held, __ATOMIC_SEQ_CST) && vg_monotonic_ms() < until)
		usleep(10 * 1000);
	assert_true(__atomic_load_n(&sync_held, __ATOMIC_SEQ_CST));
	assert_int_equal(fxs_write_minute(f->s, "node", 1, 1, 2), 0);
	assert_int_equal(vg_store_flush(f->s), 0);
	assert_int_equal(held_write_rc, 0);
	assert_int_equal(__atomic_load_n(&write_in_hold, __ATOMIC_SEQ_CST), -1);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_pending, 1); /* node2's, cached meanwhile */

	assert_int_equal(vg_store_flush(f->s), 0);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.write_errors, 0);
}

struct flusher {
	struct vg_store *s;
	int rc, returned, done_at_return;
};

static void *flush_thread(void *arg)
{
	struct flusher *fl = arg;

	fl->rc = vg_store_flush(fl->s);
	fl->done_at_return = __atomic_load_n(&send_done, __ATOMIC_SEQ_CST);
	__atomic_store_n(&fl->returned, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* vg_store_flush meets a group the storage thread took (values out of
 * the cache, on their way to the daemon) and waits for it
 * (store.c group_in_flight); that write fails (the daemon killed -9
 * while the storage thread holds its connection, before the send): the
 * flush answers -EIO, never 0, and only after the write gave up. The
 * files backend's version is store_flush_wait_test; this is the
 * daemon's. Once the daemon is back the values are written. */
static void test_flush_waiting_for_a_write_that_fails(void **state)
{
	struct fx *f = *state;
	struct vg_store_stats st;
	pthread_t t;
	int rc = -1;

	assert_int_equal(fxs_write_minute(f->s, "node", 0, 1, 0), 0);
	assert_int_equal(vg_store_flush(f->s), 0);
	/* minute 1 cached; after 1 s with no batch the storage thread
	 * writes it, held before its send */
	__atomic_store_n(&hold_send, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(fxs_write_minute(f->s, "node", 0, 1, 1), 0);
	int64_t until = vg_monotonic_ms() + 20000;
	while (!__atomic_load_n(&send_held, __ATOMIC_SEQ_CST) && vg_monotonic_ms() < until)
		usleep(10 * 1000);
	assert_true(__atomic_load_n(&send_held, __ATOMIC_SEQ_CST));
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.values_pending, 0); /* taken, on their way */

	struct flusher fl = {.s = f->s};
	assert_int_equal(pthread_create(&t, NULL, flush_thread, &fl), 0);
	until = vg_monotonic_ms() + 500;
	while (!__atomic_load_n(&fl.returned, __ATOMIC_SEQ_CST) && vg_monotonic_ms() < until)
		usleep(10 * 1000);
	assert_int_equal(hrd_kill(&f->d, SIGKILL), 0);
	__atomic_store_n(&send_release, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_join(t, NULL), 0);
	__atomic_store_n(&send_release, 0, __ATOMIC_SEQ_CST);
	assert_int_equal(fl.done_at_return, 1); /* it waited for the write */
	assert_int_equal(fl.rc, -EIO);
	vg_store_get_stats(f->s, &st);
	assert_int_equal(st.write_errors, 0);

	/* back: minute 1 written (bounded: the back-off, then a flush) */
	assert_int_equal(hrd_restart(&f->d), 0);
	for (int i = 0; i < 120; i++) {
		rc = vg_store_flush(f->s);
		vg_store_get_stats(f->s, &st);
		if (!rc && !st.values_pending)
			break;
		usleep(250 * 1000);
	}
	assert_int_equal(rc, 0);
	fxs_check_series(f->s, 0, 2);
}

static int setup_wt(void **state)
{
	struct fx *f;
	char err[256];

	if (setup(state))
		return -1;
	f = *state;
	vg_store_close(f->s);
	snprintf(f->cfg.storage_write_through, sizeof(f->cfg.storage_write_through), "yes");
	if (vg_store_open(f->dir, &f->cfg, &f->s, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		f->s = NULL;
		return -1;
	}
	return 0;
}

/* With write-through each batch asks the storage thread for a sync
 * (reclaim_due). A batch written while that thread's sync runs asks
 * again, and gets a sync of its own: its segment is retired and the
 * store's verified time passes it with no later batch. The ask was
 * cleared after the running sync, so a collector whose agents then went
 * quiet left that batch unverified until traffic resumed. */
static void test_batch_during_a_sync_gets_its_own(void **state)
{
	struct fx *f = *state;

	write_node0_sync_held(f);

	/* written through while that sync is held */
	assert_int_equal(fxs_write_minute(f->s, "node", 1, 1, 0), 0);
	int64_t written = vg_now_ms(), until = vg_monotonic_ms() + 20000;
	while (vg_store_verified_ms(f->s) < written && vg_monotonic_ms() < until)
		usleep(50 * 1000);
	assert_true(vg_store_verified_ms(f->s) >= written);
	struct vg_store_daemon dm = daemon_state(f);
	assert_int_equal(dm.pending, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_slow_batch_is_not_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_waits_for_the_storage_threads_sync,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_during_a_sync_gets_its_own, setup_wt,
						teardown),
		cmocka_unit_test_setup_teardown(test_flush_after_outage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_waiting_for_a_write_that_fails, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
