/*
 * lock_waiters.h — wait until sessions of a PostgreSQL database wait on a
 * lock, for a test that makes an interleaving of two writers certain: a
 * third session holds what both need, the test starts both and waits
 * here until the server shows them waiting (pg_stat_activity), then
 * releases it (tests/unit/registry_test.c, tests/unit/bill_meter_test.c).
 * Header-only, no cmocka.
 */
#ifndef VIGIE_TEST_LOCK_WAITERS_H
#define VIGIE_TEST_LOCK_WAITERS_H

#include <stdint.h>
#include <time.h>

#include "vigie/clock.h"
#include "vigie/db.h"

/* Wait until at least n sessions of obs's database (obs itself not
 * waiting) wait on a lock: 0, or -1 after 30 s (a bound for a loaded
 * machine, not a timing assertion: the caller fails on it). */
static inline int lock_waiters(struct vg_db *obs, int n)
{
	int64_t end = vg_monotonic_ms() + 30000;
	struct timespec ms = {0, 1000000};

	do {
		struct vg_db_stmt *s;
		int64_t v = -1;

		if (vg_db_prepare(obs, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
				       "current_database() AND wait_event_type = 'Lock'",
				  &s))
			return -1;
		if (vg_db_step(s) == 1)
			v = vg_db_column_int64(s, 0);
		vg_db_reset(s);
		if (v >= n)
			return 0;
		nanosleep(&ms, NULL);
	} while (vg_monotonic_ms() < end);
	return -1;
}

#endif
