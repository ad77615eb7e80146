/*
 * row_lock.h — another session that holds rows of a PostgreSQL database
 * (SELECT ... FOR UPDATE in an open transaction) for a test of what
 * waits for them: until row_lock_release, or max_ms at most, when its
 * thread rolls back, so that code waiting for the rows without a bound
 * returns then (the test fails on what it returned, never hangs).
 * Header-only, no cmocka.
 */
#ifndef VIGIE_TEST_ROW_LOCK_H
#define VIGIE_TEST_ROW_LOCK_H

#include <pthread.h>

#include "vigie/clock.h"
#include "vigie/db.h"

struct row_lock {
	struct vg_db *db; /* owned from row_lock_hold on */
	pthread_t thread;
	int64_t max_ms;
	int release;
};

static inline void *row_lock_run(void *arg)
{
	struct row_lock *l = arg;
	int64_t end = vg_monotonic_ms() + l->max_ms;

	while (!__atomic_load_n(&l->release, __ATOMIC_SEQ_CST) && vg_monotonic_ms() < end)
		vg_sleep_ms(5);
	vg_db_rollback(l->db);
	return NULL;
}

/* rc 0 (the lock taken in db's open transaction): a thread keeps it
 * until row_lock_release or max_ms; otherwise db is closed. 0 or -1. */
static inline int row_lock_keep(struct row_lock *l, struct vg_db *db, int rc)
{
	if (!rc && pthread_create(&l->thread, NULL, row_lock_run, l))
		rc = -1;
	if (rc) {
		vg_db_close(db);
		l->db = NULL;
	}
	return rc;
}

/* On db (a connection of its own, closed by row_lock_release), lock the
 * rows select_for_update returns (at least one) for max_ms at most: 0,
 * or -1 (nothing held, db closed). */
static inline int row_lock_hold(struct row_lock *l, struct vg_db *db,
				const char *select_for_update, int64_t max_ms)
{
	struct vg_db_stmt *s;
	int rc = -1;

	l->db = db;
	l->max_ms = max_ms;
	l->release = 0;
	if (!vg_db_begin(db) && !vg_db_prepare(db, select_for_update, &s)) {
		rc = vg_db_step(s) == 1 ? 0 : -1;
		vg_db_reset(s);
	}
	return row_lock_keep(l, db, rc);
}

/* The same with a table lock (lock_table: "LOCK TABLE t IN ... MODE"),
 * which holds even plain reads (ACCESS EXCLUSIVE) or every write (SHARE):
 * 0 or -1 (nothing held, db closed). Released by row_lock_release. */
static inline int table_lock_hold(struct row_lock *l, struct vg_db *db,
				  const char *lock_table, int64_t max_ms)
{
	int rc = -1;

	l->db = db;
	l->max_ms = max_ms;
	l->release = 0;
	if (!vg_db_begin(db) && !vg_db_exec(db, lock_table))
		rc = 0;
	return row_lock_keep(l, db, rc);
}

/* Release the rows (at once, or already at max_ms) and close. */
static inline void row_lock_release(struct row_lock *l)
{
	if (!l->db)
		return;
	__atomic_store_n(&l->release, 1, __ATOMIC_SEQ_CST);
	pthread_join(l->thread, NULL);
	vg_db_close(l->db);
	l->db = NULL;
}

#endif
