/*
 * store_flush_wait_test.c — vg_store_flush waits for a flush group the
 * storage thread already took (collector/store.c group_in_flight): its
 * values are out of the cache (values_pending 0) but not yet in their
 * file, and a flush that returned 0 then left their journal segment
 * behind (store_test test_dir_renamed_restart_synced failed so under
 * load). The storage thread is held inside its write by the
 * vg_store_test_after_update hook (files backend) while another thread
 * flushes.
 *
 * The only waits are bounded polls for the storage thread.
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

#include "../support/journal_segments.h"
#include "../support/rrd_last.h"

#define T0 1699999980LL
#define MS(s) ((int64_t)(s)*1000)

static pthread_t main_thread;
static int hold_update; /* armed: the next update off the main thread waits */
static int update_held; /* the storage thread is waiting in the hook */
static int release;     /* let it go */
static int update_done; /* its update returned */

void vg_store_test_after_update(const char *path)
{
	(void)path;
	if (pthread_equal(pthread_self(), main_thread) ||
	    !__atomic_exchange_n(&hold_update, 0, __ATOMIC_SEQ_CST))
		return;
	__atomic_store_n(&update_held, 1, __ATOMIC_SEQ_CST);
	int64_t until = vg_monotonic_ms() + 20000;
	while (!__atomic_load_n(&release, __ATOMIC_SEQ_CST) && vg_monotonic_ms() < until)
		usleep(5 * 1000);
	__atomic_store_n(&update_done, 1, __ATOMIC_SEQ_CST);
}

struct flusher {
	struct vg_store *s;
	const char *dir;
	int rc;
	int done_at_return; /* update_done when vg_store_flush returned */
	int segments;       /* journal segments then */
	int returned;
};

static void *flush_thread(void *arg)
{
	struct flusher *fl = arg;

	fl->rc = vg_store_flush(fl->s);
	fl->done_at_return = __atomic_load_n(&update_done, __ATOMIC_SEQ_CST);
	fl->segments = journal_segments(fl->dir);
	__atomic_store_n(&fl->returned, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void put(struct vg_store *s, const char *id, int64_t t_ms, double v)
{
	struct vg_batch *b = vg_batch_new("h1", 1, 1, t_ms);

	assert_non_null(vg_batch_resource(b, VG_RT_HOST, id, NULL, NULL, t_ms));
	assert_int_equal(vg_batch_sample(b, "load.1", VG_KIND_GAUGE, v), 0);
	assert_int_equal(vg_store_write_batch(s, b), 0);
	vg_batch_free(b);
}

/* The storage thread took node1's values (idle store) and is inside its
 * write: a flush from another thread returns only once they are in the
 * file, synced and their journal segment retired. */
static void test_flush_waits_for_storage_thread_group(void **state)
{
	(void)state;
	char dir[64], err[256], path[PATH_MAX];
	struct vg_config cfg;
	struct vg_store *s;
	struct vg_store_stats st;

	snprintf(dir, sizeof(dir), "/tmp/vigie-flushwait.XXXXXX");
	assert_non_null(mkdtemp(dir));
	vg_config_defaults(&cfg);
	assert_int_equal(vg_config_parse_archives("1m:1d", cfg.archives, VG_MAX_ARCHIVES,
						  &cfg.narchives),
			 0);
	assert_int_equal(vg_store_open(dir, &cfg, &s, err, sizeof(err)), 0);
	for (int i = 0; i < 3; i++)
		put(s, "node1", MS(T0 + 60 * i), i + 1);
	__atomic_store_n(&hold_update, 1, __ATOMIC_SEQ_CST);

	/* no batch for a second: the storage thread writes the cache */
	int64_t until = vg_monotonic_ms() + 15000;
	while (!__atomic_load_n(&update_held, __ATOMIC_SEQ_CST) && vg_monotonic_ms() < until)
		usleep(10 * 1000);
	assert_true(__atomic_load_n(&update_held, __ATOMIC_SEQ_CST));
	vg_store_get_stats(s, &st);
	assert_int_equal(st.values_pending, 0); /* taken, on their way */

	struct flusher fl = {.s = s, .dir = dir};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, flush_thread, &fl), 0);
	/* a flush that does not wait returns now; one that waits is let go
	 * after a second (its answer is the same however long it waited) */
	until = vg_monotonic_ms() + 1000;
	while (!__atomic_load_n(&fl.returned, __ATOMIC_SEQ_CST) && vg_monotonic_ms() < until)
		usleep(10 * 1000);
	__atomic_store_n(&release, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_join(t, NULL), 0);

	assert_int_equal(fl.rc, 0);
	assert_int_equal(fl.done_at_return, 1); /* returned after the write */
	assert_int_equal(fl.segments, 0);       /* and the segment retired */
	assert_int_equal(vg_store_path(s, VG_RT_HOST, "node1", "load.1", path, sizeof(path)),
			 0);
	assert_int_equal(fx_rrd_last_s(path), T0 + 120);

	vg_store_close(s);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", dir);
}

int main(void)
{
	main_thread = pthread_self();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flush_waits_for_storage_thread_group),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
