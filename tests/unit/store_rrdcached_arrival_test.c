/*
 * store_rrdcached_arrival_test.c — a host that moves between two
 * collectors sharing one real rrdcached keeps every value through a kill
 * -9 of the daemon (docs/scaling.md "Still open", form 3).
 *
 * Two stores are the two collectors N and P, each with its own journal,
 * both with write-through and a sync_interval of an hour (so neither
 * FLUSHes by its sync during the test), on one daemon started without
 * its -j journal (a kill -9 loses every value it holds cached: the
 * losses a restart with -j can also leave, "A replay that skips a
 * value", made certain). The daemon writes nothing on its own (-w 3600).
 *
 *  1. N stores minute 1 of host h1's series (N creates them).
 *  2. The host moves to P: P opens the series (its read of the last
 *     update FLUSHes minute 1 into the files) and stores minutes 2-4:
 *     the daemon takes them into its cache; P's sync has not FLUSHed
 *     them (unproven).
 *  3. The host comes back to N (vg_batch.arrived, as the receiver sets
 *     it when the host's previous batch was acknowledged elsewhere),
 *     which still knows the series and reads no last update, and
 *     stores minute 5.
 *  4. The daemon is killed -9 and restarted: whatever it held cached is
 *     gone.
 *  5. N stores minute 6: its new connection's check finds its minute 5
 *     lost and re-sends it, then 6.
 *  6. P writes another host's series on the daemon (h2, which it has
 *     written since step 2): its new connection's check verifies
 *     minutes 2-4.
 * Every series must hold minutes 2-6. Without the FLUSH on arrival the
 * daemon lost P's 2-4 at the kill and N's 5-6 reached the files first,
 * so P's re-send was refused as older: minutes 2-4 are missing (checked:
 * the test fails with the backend's arrival_flush turned into a no-op).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
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
#include "vigie/config.h"
#include "vigie/store.h"
#include "rrdcached_harness.h"

#define T0 1699999980LL
#define MS(s) ((int64_t)(s)*1000)
#define NS 6          /* series of host h1 */
#define SUBSEC_MS 229 /* each minute's sample time past the minute */

struct fx {
	char dir[2][64];
	struct hrd_daemon d;
	struct vg_config cfg;
	struct vg_store *n, *p; /* the two collectors */
};

static struct vg_store *store_open(struct fx *f, int k)
{
	struct vg_store *s;
	char err[256];

	snprintf(f->dir[k], sizeof(f->dir[k]), "/tmp/vigie-arrival.XXXXXX");
	assert_non_null(mkdtemp(f->dir[k]));
	if (vg_store_open(f->dir[k], &f->cfg, &s, err, sizeof(err)))
		fail_msg("%s", err);
	return s;
}

static struct fx *fx_new(void)
{
	static const char *const extra[] = {"-O", "-R", NULL};
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(hrd_start_nojournal(&f->d, NULL, extra), 0);
	vg_config_defaults(&f->cfg);
	assert_int_equal(vg_config_parse_archives("1m:1d", f->cfg.archives, VG_MAX_ARCHIVES,
						  &f->cfg.narchives),
			 0);
	snprintf(f->cfg.storage_backend, sizeof(f->cfg.storage_backend), "rrdcached");
	snprintf(f->cfg.storage_daemons, sizeof(f->cfg.storage_daemons), "%s", f->d.tcp_addr);
	snprintf(f->cfg.storage_write_through, sizeof(f->cfg.storage_write_through), "yes");
	f->cfg.storage_sync_interval_s = 3600;
	f->n = store_open(f, 0);
	f->p = store_open(f, 1);
	return f;
}

static void fx_free(struct fx *f)
{
	char cmd[256];

	vg_store_close(f->n);
	vg_store_close(f->p);
	hrd_cleanup(&f->d);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", f->dir[0], f->dir[1]);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", f->dir[0]);
	free(f);
}

/* Minute m of host HOST's NS series (value 1000 * series + minute); the
 * batch arrived from another collector when arrived is set. The store's
 * answer (0: acknowledged). */
static int write_minute(struct vg_store *s, const char *host, int m, int arrived)
{
	struct vg_batch *b = vg_batch_new(host, 1, (uint64_t)m, MS(T0 + 60 * m) + SUBSEC_MS);
	int rc;

	assert_non_null(b);
	b->arrived = arrived;
	for (int i = 0; i < NS; i++) {
		char id[32];
		snprintf(id, sizeof(id), "%s-node%d", host, i);
		assert_non_null(vg_batch_resource(b, VG_RT_HOST, id, NULL, NULL,
						  MS(T0 + 60 * m) + SUBSEC_MS));
		assert_int_equal(vg_batch_sample(b, "load.1", VG_KIND_GAUGE, 1000.0 * i + m), 0);
	}
	rc = vg_store_write_batch(s, b);
	if (rc)
		fprintf(stderr, "# %s minute %d: %s\n", host, m, vg_store_last_error(s));
	vg_batch_free(b);
	return rc;
}

/* Write until nothing waits and no file is held lost (a restarted
 * daemon's series are retried after its back-off). Nothing waits only
 * when no value is in flight either (vg_store_holding: the cache and
 * what the storage thread took): values_pending alone is 0 while the
 * storage thread's write of the last values waits for its new
 * connection's check, which then finds a file lost and puts its values
 * back; the fetches after an early return read the file before the
 * re-send ("no minute 5", 2 runs in 258 under load; or the daemon in its
 * back-off, -EHOSTUNREACH). */
static void drain(struct vg_store *s)
{
	struct vg_store_stats st;

	for (int i = 0; i < 120; i++) {
		vg_store_flush(s);
		vg_store_get_stats(s, &st);
		if (!st.values_pending && !vg_store_holding(s))
			return;
		usleep(250 * 1000);
	}
	fail_msg("%llu values still pending", (unsigned long long)st.values_pending);
}

/* Wait until the storage thread wrote what the receiver left to it
 * (vg_store_flush would also sync: FLUSH every file, proving the other
 * collector's values too). */
static void settle(struct vg_store *s)
{
	struct vg_store_stats st;

	for (int i = 0; i < 200; i++) {
		vg_store_get_stats(s, &st);
		if (!st.values_pending && !vg_store_holding(s))
			return;
		usleep(50 * 1000);
	}
	fail_msg("%llu values still pending", (unsigned long long)st.values_pending);
}

/* Series i of h1 holds minutes from+1..last at their values. */
static void check_series(struct vg_store *s, int i, int from, int last)
{
	struct vg_series r;
	char id[32];
	int seen = 0;

	snprintf(id, sizeof(id), "h1-node%d", i);
	assert_int_equal(vg_store_fetch(s, VG_RT_HOST, id, "load.1", VG_CF_AVERAGE, MS(T0),
					MS(T0 + 60 * last), 60, 1, &r),
			 0);
	for (size_t k = 0; k < r.n; k++) {
		int minute = (int)((r.points[k].time_ms / 1000 - T0) / 60) + 1;
		if (minute <= from || minute > last)
			continue;
		if (isnan(r.points[k].value))
			fail_msg("%s: no minute %d", id, minute);
		/* the row of minute m: minute m's value but for its first
		 * SUBSEC_MS, which are minute m-1's */
		double want = 1000.0 * i + minute - SUBSEC_MS / 60000.0;
		if (fabs(r.points[k].value - want) > 1e-6)
			fail_msg("%s minute %d: %g, not %g (lost, the row filled from the next value)",
				 id, minute, r.points[k].value, want);
		seen++;
	}
	if (seen != last - from)
		fail_msg("%s: %d of minutes %d..%d", id, seen, from + 1, last);
	vg_series_free(&r);
}

static void test_previous_collectors_values_survive_a_kill(void **state)
{
	struct fx *f = fx_new();

	(void)state;
	assert_int_equal(write_minute(f->n, "h1", 1, 1), 0); /* 1 */
	drain(f->n);
	for (int m = 2; m <= 4; m++) { /* 2: P's, unproven; and h2, P's own */
		assert_int_equal(write_minute(f->p, "h1", m, m == 2), 0);
		assert_int_equal(write_minute(f->p, "h2", m, m == 2), 0);
	}
	settle(f->p);
	assert_int_equal(write_minute(f->n, "h1", 5, 1), 0); /* 3: back on N */
	/* the storage thread's write, if the receiver left it */
	settle(f->n);
	assert_int_equal(hrd_kill(&f->d, SIGKILL), 0); /* 4 */
	assert_int_equal(hrd_restart(&f->d), 0);
	assert_int_equal(write_minute(f->n, "h1", 6, 0), 0); /* 5 */
	drain(f->n);
	assert_int_equal(write_minute(f->p, "h2", 6, 0), 0); /* 6 */
	drain(f->p);
	for (int i = 0; i < NS; i++)
		check_series(f->n, i, 1, 6);
	fx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_previous_collectors_values_survive_a_kill),
	};
	if (system("command -v rrdcached >/dev/null")) {
		printf("# skipped: rrdcached not installed\n");
		return 0;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
