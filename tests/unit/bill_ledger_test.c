/*
 * bill_ledger_test.c — the hand-written ledger (tests/fixtures/billing/
 * ledger-2026-10.txt) fed as real vg_batch objects through the meter
 * consumer must give the invoices computed by hand in its comments, to the
 * cent; re-delivered batches must change nothing. Every case runs on
 * sqlite and on PostgreSQL, and two meters sharing one database (two
 * collectors, the same batches re-sent to both, late or at the same
 * time) must leave invoices byte-identical to one meter's, also when
 * batches are answered RETRY because another collector held their locks
 * past the meter's bound and are sent again (PostgreSQL).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vigie/bill_invoice.h"
#include "billing/ledger.h"
#include "vigie/bill_meter.h"
#include "vigie/dispatch.h"

#include "../support/db_engines.h"
#include "../support/hang_guard.h"
#include "../support/tmpdir.h"
#include "../support/ledger_fixture.h"

static int setup(void **state)
{
	return ledger_fx_setup(state, "/tmp/vg-bill-ledger.XXXXXX");
}

static int teardown(void **state)
{
	return ledger_fx_teardown(state);
}

/* Feed every batch through a dispatch with the meter registered, `times`
 * times each in a row (at-least-once delivery). */
static void feed(struct ledger_fx *f, int times)
{
	struct vg_dispatch d;
	struct vg_consumer c = vg_bill_meter_consumer(f->m);

	vg_dispatch_init(&d);
	assert_int_equal(vg_dispatch_add(&d, &c), 0);
	for (size_t i = 0; i < f->l->nbatches; i++)
		for (int k = 0; k < times; k++)
			assert_int_equal(vg_dispatch_batch(&d, f->l->batches[i]), 0);
}

/* Check every month with expectations; returns the mismatches. */
static int check_all(struct ledger_fx *f)
{
	struct vg_bill_month months[12];
	size_t nm = vg_bill_ledger_months(f->l, months, 12);
	int bad = 0;

	assert_true(nm >= 3);
	for (size_t i = 0; i < nm; i++) {
		struct vg_bill_usage u;
		struct vg_bill_invoice **inv;
		size_t n;
		assert_int_equal(vg_bill_usage_load(vg_bill_meter_db(f->m),
						    vg_bill_month_start_ms(months[i]),
						    vg_bill_month_end_ms(months[i]), NULL, &u),
				 0);
		assert_int_equal(vg_bill_invoice_compute_all(&u, f->rc, months[i], &inv, &n), 0);
		bad += vg_bill_ledger_check(f->l, months[i], inv, n, stderr);
		for (size_t k = 0; k < n; k++)
			vg_bill_invoice_free(inv[k]);
		free(inv);
		vg_bill_usage_clear(&u);
	}
	return bad;
}

static void test_ledger_matches_hand_computation(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	feed(f, 1);
	assert_int_equal(check_all(f), 0);
}

static void test_redelivery_changes_nothing(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	struct vg_bill_meter_stats st;

	feed(f, 3); /* each batch three times in a row */
	assert_int_equal(check_all(f), 0);
	feed(f, 1); /* and the whole month again */
	assert_int_equal(check_all(f), 0);
	vg_bill_meter_get_stats(f->m, &st);
	assert_true(st.stale > 0);
}

static void test_per_project_invoice_equals_all(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	struct vg_bill_month oct = {2026, 10};
	struct vg_bill_invoice *one, **all;
	struct vg_bill_usage u;
	char *a = NULL, *b = NULL, *c = NULL;
	size_t la, lb, lc, n;

	feed(f, 1);
	/* one project through the draft path (vg_bill_invoice_from_db) ... */
	assert_int_equal(vg_bill_invoice_from_db(vg_bill_meter_db(f->m), f->rc, oct, "beta", &one), 0);
	assert_int_equal(vg_bill_invoice_render(one, VG_BILL_FMT_JSON, &a, &la), 0);
	vg_bill_invoice_free(one);
	assert_int_equal(vg_bill_invoice_from_db(vg_bill_meter_db(f->m), f->rc, oct, "beta", &one), 0);
	assert_int_equal(vg_bill_invoice_render(one, VG_BILL_FMT_JSON, &b, &lb), 0);
	vg_bill_invoice_free(one);
	assert_int_equal(la, lb);
	assert_memory_equal(a, b, la);
	/* ... is the same document as beta's among all projects' invoices */
	assert_int_equal(vg_bill_usage_load(vg_bill_meter_db(f->m), vg_bill_month_start_ms(oct),
					    vg_bill_month_end_ms(oct), NULL, &u),
			 0);
	assert_int_equal(vg_bill_invoice_compute_all(&u, f->rc, oct, &all, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(all[1]->project, "beta");
	assert_int_equal(vg_bill_invoice_render(all[1], VG_BILL_FMT_JSON, &c, &lc), 0);
	assert_int_equal(la, lc);
	assert_memory_equal(a, c, la);
	for (size_t i = 0; i < n; i++)
		vg_bill_invoice_free(all[i]);
	free(all);
	vg_bill_usage_clear(&u);
	free(a);
	free(b);
	free(c);
}

/* ---- several meters on one database (collectors sharing PostgreSQL) ---- */

/* Every month's invoices of every project as JSON, one after another. */
static char *all_invoices(struct vg_db *db, struct ledger_fx *f, size_t *len)
{
	struct vg_bill_month months[12];
	size_t nm = vg_bill_ledger_months(f->l, months, 12), cap = 0;
	char *all = NULL;

	*len = 0;
	for (size_t i = 0; i < nm; i++) {
		struct vg_bill_invoice **inv;
		size_t n;
		assert_int_equal(vg_bill_invoices(db, f->rc, months[i], NULL, &inv, &n), 0);
		for (size_t k = 0; k < n; k++) {
			char *t;
			size_t l;
			assert_int_equal(vg_bill_invoice_render(inv[k], VG_BILL_FMT_JSON, &t, &l), 0);
			if (*len + l + 1 > cap) {
				cap = 2 * (*len + l + 1);
				assert_non_null(all = realloc(all, cap));
			}
			memcpy(all + *len, t, l);
			*len += l;
			all[*len] = '\0';
			free(t);
			vg_bill_invoice_free(inv[k]);
		}
		free(inv);
	}
	return all;
}

/* The invoices of a fresh database of the same engine fed each batch once
 * by one meter: what a single collector computes. */
static char *single_meter_invoices(struct ledger_fx *f, size_t *len)
{
	char url[700], err[512];
	struct vg_bill_meter *m;
	char *all;

	assert_int_equal(dbe_fresh(f->e, url, sizeof(url)), 0);
	if (vg_bill_meter_open(url, &m, err, sizeof(err)))
		fail_msg("%s", err);
	for (size_t i = 0; i < f->l->nbatches; i++)
		assert_int_equal(vg_bill_meter_batch(m, f->l->batches[i]), 0);
	all = all_invoices(vg_bill_meter_db(m), f, len);
	vg_bill_meter_close(m);
	return all;
}

static void assert_same_invoices(struct ledger_fx *f)
{
	size_t l1, l2;
	char *one = single_meter_invoices(f, &l1), *shared = all_invoices(vg_bill_meter_db(f->m), f, &l2);

	assert_true(l1 > 1000);
	if (l1 != l2 || memcmp(one, shared, l1))
		fail_msg("invoices of the shared database differ from one meter's:\n%s\n---\n%s",
			 shared, one);
	free(one);
	free(shared);
}

/* A second collector gets each batch again, late: batch k reaches it
 * after the first collector has already applied batch k+1 (the agent
 * re-sent k after a lost ack, then went on). */
static void test_two_meters_late_resend(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	struct vg_bill_meter *m2;
	struct vg_bill_meter_stats st;
	char err[512];

	if (vg_bill_meter_open(f->db, &m2, err, sizeof(err)))
		fail_msg("%s", err);
	for (size_t i = 0; i <= f->l->nbatches; i++) {
		if (i < f->l->nbatches)
			assert_int_equal(vg_bill_meter_batch(f->m, f->l->batches[i]), 0);
		if (i > 0)
			assert_int_equal(vg_bill_meter_batch(m2, f->l->batches[i - 1]), 0);
	}
	vg_bill_meter_get_stats(m2, &st);
	assert_int_equal(st.observations, 0); /* every one was applied already */
	assert_true(st.stale > 0);
	vg_bill_meter_close(m2);
	assert_int_equal(check_all(f), 0);
	assert_same_invoices(f);
}

struct feeder {
	struct vg_bill_meter *m;
	const struct vg_batch *b;
	int rc;
	volatile int done;
};

static void *feed_one(void *arg)
{
	struct feeder *fd = arg;
	fd->rc = vg_bill_meter_batch(fd->m, fd->b);
	__atomic_store_n(&fd->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static int64_t waiting_locks(struct vg_db *db)
{
	struct vg_db_stmt *st;
	int64_t n;
	assert_int_equal(vg_db_prepare(db, "SELECT count(*) FROM pg_locks WHERE NOT granted", &st), 0);
	assert_int_equal(vg_db_step(st), 1);
	n = vg_db_column_int64(st, 0);
	vg_db_reset(st);
	return n;
}

/* Two collectors' meters (f->m and m2) apply each of the batches at the
 * same time, each on its own connection, `reps` times over. On PostgreSQL
 * the test makes them overlap for sure: it holds an EXCLUSIVE lock on the
 * resources table (reads go on, writes wait) until both meters are inside
 * the batch and waiting, then lets them go. On sqlite BEGIN IMMEDIATE
 * serialises the two whole transactions. */
static void race(struct ledger_fx *f, struct vg_bill_meter *m2, struct vg_batch *const *b, size_t nb,
		 int reps)
{
	struct feeder fd[2] = {{f->m, NULL, 0, 0}, {m2, NULL, 0, 0}};
	struct vg_db *ctl = NULL;
	pthread_t th[2];
	char err[512];
	int pg = f->e->kind == VG_DB_POSTGRESQL;

	if (pg && vg_db_open(f->db, NULL, &ctl, err, sizeof(err)))
		fail_msg("%s", err);
	for (int rep = 0; rep < reps; rep++)
		for (size_t i = 0; i < nb; i++) {
			if (pg) {
				assert_int_equal(vg_db_begin(ctl), 0);
				assert_int_equal(vg_db_exec(ctl, "LOCK TABLE vigie_billing.resources IN EXCLUSIVE MODE"), 0);
			}
			for (int k = 0; k < 2; k++) {
				fd[k].b = b[i];
				fd[k].done = 0;
				assert_int_equal(pthread_create(&th[k], NULL, feed_one, &fd[k]), 0);
			}
			/* both waiting (or, for a batch that writes nothing, done) */
			for (int spins = 0; pg; spins++) {
				int done = __atomic_load_n(&fd[0].done, __ATOMIC_SEQ_CST) +
					   __atomic_load_n(&fd[1].done, __ATOMIC_SEQ_CST);
				if (done + waiting_locks(ctl) >= 2)
					break;
				if (spins > 60000)
					fail_msg("batch %zu: the meters never reached the lock", i);
				usleep(1000);
			}
			if (pg)
				assert_int_equal(vg_db_rollback(ctl), 0);
			for (int k = 0; k < 2; k++)
				assert_int_equal(pthread_join(th[k], NULL), 0);
			for (int k = 0; k < 2; k++)
				if (fd[k].rc)
					fail_msg("meter %d: batch %zu: %d: %s", k, i, fd[k].rc,
						 vg_db_errmsg(vg_bill_meter_db(fd[k].m)));
		}
	vg_db_close(ctl);
}

/* The whole ledger, each batch applied by two meters at once, then the
 * month re-sent: the shared timelines are those of one meter. */
static void test_two_meters_concurrent(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	struct vg_bill_meter *m2;
	char err[512];

	if (vg_bill_meter_open(f->db, &m2, err, sizeof(err)))
		fail_msg("%s", err);
	race(f, m2, f->l->batches, f->l->nbatches, 2);
	vg_bill_meter_close(m2);
	assert_int_equal(check_all(f), 0);
	assert_same_invoices(f);
}

/* ---- a collector stopped inside a batch's transaction (PostgreSQL) ---- */

static int64_t one_int(struct vg_db *db, const char *sql)
{
	struct vg_db_stmt *st;
	int64_t n;

	assert_int_equal(vg_db_prepare(db, sql, &st), 0);
	assert_int_equal(vg_db_step(st), 1);
	n = vg_db_column_int64(st, 0);
	vg_db_reset(st);
	return n;
}

/* Wait until session pid holds a granted advisory lock (a bound for a
 * loaded machine, not a timing assertion: the test fails past it). */
static void wait_advisory_held(struct vg_db *obs, int64_t pid)
{
	char sql[160];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
				   "AND granted AND pid = %lld",
		 (long long)pid);
	for (int spins = 0; !one_int(obs, sql); spins++) {
		if (spins > 30000)
			fail_msg("session %lld never took its advisory locks", (long long)pid);
		usleep(1000);
	}
}

/* The batch's first resource an advisory lock of the meter is keyed on
 * (billing/meter.c: hashtextextended(id, 0)), or NULL. */
static const char *metered_id(const struct vg_batch *b)
{
	for (size_t i = 0; i < b->nres; i++)
		if (!b->published && (b->res[i].type == VG_RT_INSTANCE ||
				      b->res[i].type == VG_RT_DISK || b->res[i].type == VG_RT_NIC))
			return b->res[i].id;
	return NULL;
}

/* Another collector holds the locks of some of the ledger's batches, and
 * the meter (the collector's path: the dispatch chain with its hooks,
 * and the synchronous vg_bill_meter_batch) has a bound on its lock waits
 * (vg_bill_meter_set_lock_timeout). The holder is real: either a second
 * session's pg_advisory_lock on the key the meter takes for the batch's
 * first resource, released afterwards; or a second meter paused inside
 * the batch's transaction (its begin hook sent BEGIN and took the
 * batch's locks, as a collector SIGSTOPped there), which then resumes
 * and commits it. Each such batch is answered -EAGAIN (RETRY) instead of
 * waiting (the hang guard fails the test if it waits: it would, until
 * the holder lets go, without the bound), counted once per answer, and
 * rolled back; sent again once the holder let go, it is metered once
 * (by this meter, or already by the resumed one: then it changes
 * nothing). The months' invoices are the hand-computed ones and
 * byte-identical to one meter's fed each batch once. */
static void test_held_locks_answer_retry(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	struct vg_bill_meter *m2;
	struct vg_dispatch d;
	struct vg_consumer c, c2;
	struct vg_consumer_hooks h = vg_bill_meter_hooks();
	struct vg_db *holder;
	char err[512], sql[512];
	int64_t pid2;
	uint64_t expect = 0;
	int held = 0, paused = 0;

	if (f->e->kind != VG_DB_POSTGRESQL)
		skip(); /* sqlite: one writer at a time, no lock of another collector */
	assert_int_equal(vg_bill_meter_set_lock_timeout(f->m, 100), 0);
	c = vg_bill_meter_consumer(f->m);
	vg_dispatch_init(&d);
	assert_int_equal(vg_dispatch_add_hooks(&d, &c, &h), 0);
	if (vg_bill_meter_open(f->db, &m2, err, sizeof(err)))
		fail_msg("%s", err);
	c2 = vg_bill_meter_consumer(m2);
	assert_int_equal(vg_db_open(f->db, NULL, &holder, err, sizeof(err)), 0);
	pid2 = one_int(vg_bill_meter_db(m2), "SELECT pg_backend_pid()");
	for (size_t i = 0; i < f->l->nbatches; i++) {
		const struct vg_batch *b = f->l->batches[i];
		const char *id = metered_id(b);
		int pause = i % 6 == 4;

		if (!id || (i % 6 != 1 && !pause)) {
			assert_int_equal(vg_dispatch_batch(&d, b), 0);
			continue;
		}
		if (pause) { /* the other collector stops inside the batch */
			h.begin(c2.ctx, b);
			wait_advisory_held(holder, pid2);
			paused++;
		} else {
			snprintf(sql, sizeof(sql),
				 "SELECT pg_advisory_lock(hashtextextended('%s', 0))", id);
			assert_int_equal(vg_db_exec(holder, sql), 0);
			held++;
		}
		hang_guard_arm("a batch whose locks another collector holds");
		assert_int_equal(vg_dispatch_batch(&d, b), -EAGAIN);
		assert_int_equal(vg_bill_meter_batch(f->m, b), -EAGAIN);
		hang_guard_disarm();
		expect += 2;
		assert_int_equal(vg_bill_meter_lock_timeouts(f->m), expect);
		assert_false(vg_db_in_transaction(vg_bill_meter_db(f->m)));
		if (pause) { /* it resumes and commits the batch */
			assert_int_equal(c2.batch(c2.ctx, b), 0);
			assert_int_equal(h.end(c2.ctx, b, 0), 0);
		} else {
			snprintf(sql, sizeof(sql),
				 "SELECT pg_advisory_unlock(hashtextextended('%s', 0))", id);
			assert_int_equal(vg_db_exec(holder, sql), 0);
		}
		/* the agent sends it again */
		assert_int_equal(vg_dispatch_batch(&d, b), 0);
	}
	assert_true(held >= 3 && paused >= 3);
	assert_int_equal(vg_bill_meter_lock_timeouts(f->m), expect);
	vg_db_close(holder);
	vg_bill_meter_close(m2);
	assert_int_equal(check_all(f), 0);
	assert_same_invoices(f);
}

/* The invoice side does not wait for a stopped collector's billing
 * transaction. A collector stopped inside one (SIGSTOP) holds its
 * batch's advisory locks, and, stopped between its writes and its
 * COMMIT, the row locks of what it wrote; the meter's bound
 * (test_held_locks_answer_retry) is for other meters, which take the
 * same locks. Invoices are read (drafts, adjustments) from a snapshot
 * and finalizing writes only tables no meter writes (months, invoices,
 * bill_number_seq, network_billed_months; network_billed's rows the
 * meter only inserts), so neither takes a lock a meter holds, and they
 * need no bound: this pins it. The holders are real: a second meter
 * paused inside a batch's transaction (its begin hook took the batch's
 * locks) and a second session with a row lock on every row of every
 * table the meter writes; the drafts and the finalization run on a
 * connection of their own, as the API's do, under the hang guard. */
static void test_invoices_ignore_held_locks(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	static const char *const writes[] = {
		"UPDATE resources SET last_seen_ms = last_seen_ms",
		"UPDATE transitions SET lo_ms = lo_ms",
		"UPDATE network SET tx = tx",
		"UPDATE sightings SET time_ms = time_ms",
		"UPDATE bill_project_names SET name = name",
		"INSERT INTO network_billed(project, hour_ms, nic, tx, rx) "
		"VALUES ('acme', 1791000000000, 'n-web', 0, 0) ON CONFLICT DO NOTHING",
	};
	struct vg_consumer_hooks h = vg_bill_meter_hooks();
	struct vg_bill_month oct = {2026, 10};
	struct vg_bill_invoice **inv;
	struct vg_bill_meter *m2;
	struct vg_consumer c2;
	struct vg_db *holder, *api;
	const struct vg_batch *last;
	char err[512];
	size_t n;

	if (f->e->kind != VG_DB_POSTGRESQL)
		skip(); /* sqlite: one writer at a time, behind its busy timeout */
	feed(f, 1);
	last = f->l->batches[f->l->nbatches - 1];
	if (vg_bill_meter_open(f->db, &m2, err, sizeof(err)))
		fail_msg("%s", err);
	c2 = vg_bill_meter_consumer(m2);
	h.begin(c2.ctx, last); /* stopped inside: the batch's locks held */
	assert_int_equal(vg_db_open(f->db, NULL, &holder, err, sizeof(err)), 0);
	wait_advisory_held(holder, one_int(vg_bill_meter_db(m2), "SELECT pg_backend_pid()"));
	assert_int_equal(vg_db_exec(holder, "SET search_path TO vigie_billing"), 0);
	assert_int_equal(vg_db_begin(holder), 0);
	for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++)
		assert_int_equal(vg_db_exec(holder, writes[i]), 0);
	if (vg_bill_db_open(f->db, &api, err, sizeof(err)))
		fail_msg("%s", err);
	hang_guard_arm("drafts and finalization beside held billing locks");
	assert_int_equal(vg_bill_invoices(api, f->rc, oct, NULL, &inv, &n), 0);
	assert_int_equal(n, 2);
	for (size_t k = 0; k < n; k++)
		vg_bill_invoice_free(inv[k]);
	free(inv);
	assert_int_equal(vg_bill_finalize(api, f->rc, oct, 1793491200000LL, &n), 0);
	hang_guard_disarm();
	assert_int_equal(n, 2);
	assert_int_equal(vg_bill_is_final(api, oct), 1);
	vg_db_close(api);
	assert_int_equal(vg_db_rollback(holder), 0);
	vg_db_close(holder);
	/* the stopped collector resumes: the batch, already applied, changes
	 * nothing */
	assert_int_equal(c2.batch(c2.ctx, last), 0);
	assert_int_equal(h.end(c2.ctx, last, 0), 0);
	vg_bill_meter_close(m2);
	assert_int_equal(check_all(f), 0);
}

/* A vNIC's counters reach two meters at once in every batch: the bytes
 * between two readings are counted once. Without a lock taken before the
 * row is read, both meters read the same baseline and add the same delta
 * to the hourly network row (an additive upsert) twice. */
static void test_two_meters_count_bytes_once(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	struct vg_batch *b[8];
	struct vg_bill_meter *m2;
	struct vg_db_stmt *st;
	char err[512];
	const int64_t t0 = 1791000000000LL; /* 2026-10-03, mid-hour */

	for (int i = 0; i < 8; i++) {
		struct vg_resource *r;
		assert_non_null(b[i] = vg_batch_new("h1", 1, (uint64_t)i + 1, t0 + i * 60000));
		assert_non_null(r = vg_batch_resource(b[i], VG_RT_NIC, "nic-1", "tap0", NULL,
						      t0 + i * 60000));
		r->state = VG_RSTATE_ACTIVE;
		assert_int_equal(vg_batch_identity(b[i], "acme", NULL, NULL), 0);
		assert_int_equal(vg_batch_sample(b[i], "net.tx.bytes", VG_KIND_COUNTER, 1000.0 * i), 0);
		assert_int_equal(vg_batch_sample(b[i], "net.rx.bytes", VG_KIND_COUNTER, 10.0 * i), 0);
	}
	if (vg_bill_meter_open(f->db, &m2, err, sizeof(err)))
		fail_msg("%s", err);
	race(f, m2, b, 8, 1);
	vg_bill_meter_close(m2);
	assert_int_equal(vg_db_prepare(vg_bill_meter_db(f->m),
				       "SELECT sum(tx), sum(rx) FROM network WHERE nic = 'nic-1'", &st),
			 0);
	assert_int_equal(vg_db_step(st), 1);
	assert_int_equal(vg_db_column_int64(st, 0), 7000);
	assert_int_equal(vg_db_column_int64(st, 1), 70);
	vg_db_reset(st);
	for (int i = 0; i < 8; i++)
		vg_batch_free(b[i]);
}

/* The hourly network rows come in pages (bounded memory on PostgreSQL):
 * with pages of a few rows, crossing every boundary, the invoices are the
 * same bytes as in one page. */
static void test_network_pages_same_invoices(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	struct vg_db_stmt *st;
	size_t l1, l2;
	char *one, *paged;

	feed(f, 1);
	assert_int_equal(vg_db_prepare(vg_bill_meter_db(f->m), "SELECT count(*) FROM network", &st), 0);
	assert_int_equal(vg_db_step(st), 1);
	assert_true(vg_db_column_int64(st, 0) > 6); /* several pages of 3 */
	vg_db_reset(st);
	one = all_invoices(vg_bill_meter_db(f->m), f, &l1);
	vg_bill_usage_set_page(3);
	paged = all_invoices(vg_bill_meter_db(f->m), f, &l2);
	vg_bill_usage_set_page(0);
	assert_int_equal(l1, l2);
	assert_memory_equal(one, paged, l1);
	assert_int_equal(check_all(f), 0);
	vg_bill_usage_set_page(1);
	assert_int_equal(check_all(f), 0);
	vg_bill_usage_set_page(0);
	free(one);
	free(paged);
}

/* The documents ledger: invoices with tax, a usage statement, a live
 * migration, summaries, a credit note (tests/fixtures/billing/
 * ledger-2026-07.txt, figures by hand in its comments). Months are
 * finalized where the file says, with the rate card in force there; the
 * checks read what the API serves (vg_bill_invoices: frozen documents of
 * finalized months, drafts with adjustments otherwise). */
static void test_documents_ledger(void **state)
{
	struct ledger_fx *f = ledger_fx_get(state);
	struct vg_bill_ledger *l;
	struct vg_bill_ratecard *rc;
	struct vg_db *db = vg_bill_meter_db(f->m);
	char err[512];
	size_t b = 0;
	int bad = 0;

	if (vg_bill_ledger_load("tests/fixtures/billing/ledger-2026-07.txt", &l, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(l->nfinal, 1);
	for (size_t k = 0; k <= l->nfinal; k++) {
		size_t upto = k < l->nfinal ? l->final[k].after : l->nbatches;
		for (; b < upto; b++)
			assert_int_equal(vg_bill_meter_batch(f->m, l->batches[b]), 0);
		if (k < l->nfinal) {
			size_t n;
			if (vg_bill_ratecard_load(l->final[k].ratecard, &rc, err, sizeof(err)))
				fail_msg("%s", err);
			assert_int_equal(vg_bill_finalize(db, rc, l->final[k].month, l->final[k].at_ms, &n), 0);
			assert_int_equal(n, 3);
			vg_bill_ratecard_free(rc);
		}
	}
	if (vg_bill_ratecard_load(l->ratecard, &rc, err, sizeof(err)))
		fail_msg("%s", err);
	struct vg_bill_month months[4];
	size_t nm = vg_bill_ledger_months(l, months, 4);
	assert_int_equal(nm, 2);
	for (size_t i = 0; i < nm; i++) {
		struct vg_bill_invoice **inv;
		size_t n;
		assert_int_equal(vg_bill_invoices(db, rc, months[i], NULL, &inv, &n), 0);
		bad += vg_bill_ledger_check(l, months[i], inv, n, stderr);
		for (size_t k = 0; k < n; k++)
			vg_bill_invoice_free(inv[k]);
		free(inv);
	}
	assert_int_equal(bad, 0);

	/* numbers: the issuer's sequence, no project id; dates and terms */
	struct vg_bill_invoice *inv;
	struct vg_bill_month jul = {2026, 7};
	assert_int_equal(vg_bill_invoice_from_db(db, rc, jul, "de-co", &inv), 0);
	assert_string_equal(inv->number, "VC-000001");
	assert_int_equal(inv->payment_terms_days, 15);
	assert_string_equal(inv->customer.name, "Brot GmbH");
	assert_string_equal(inv->issuer.tax_id, "FR00123456789");
	vg_bill_invoice_free(inv);
	assert_int_equal(vg_bill_invoice_from_db(db, rc, jul, "fr-co", &inv), 0);
	assert_string_equal(inv->number, "VC-000002");
	char *html = NULL, *js = NULL, *csv = NULL;
	size_t len;
	assert_int_equal(vg_bill_invoice_render(inv, VG_BILL_FMT_JSON, &js, &len), 0);
	assert_non_null(strstr(js, "\"issue_date\": \"2026-08-01\""));
	assert_non_null(strstr(js, "\"due_date\": \"2026-08-31\""));
	assert_non_null(strstr(js, "\"amount_due\": \"3.62\""));
	assert_int_equal(vg_bill_invoice_render(inv, VG_BILL_FMT_CSV, &csv, &len), 0);
	assert_non_null(strstr(csv, "tax-1,VC-000002,Final,"));
	assert_non_null(strstr(csv, ",Tax,,,vigie,tax,tax,,,3.02,EUR,0.20,0.60,EUR,"));
	assert_int_equal(vg_bill_invoice_render(inv, VG_BILL_FMT_HTML, &html, &len), 0);
	assert_non_null(strstr(html, "<h1>Invoice <span class=\"num\">VC-000002</span></h1>"));
	assert_non_null(strstr(html, "Fromagerie Dupont SARL"));
	assert_non_null(strstr(html, "Tax 20&nbsp;% on 3.02</td><td class=\"n\">0.60</td>"));
	assert_non_null(strstr(html, "Amount due EUR</td><td class=\"n\">3.62</td>"));
	free(html);
	free(js);
	free(csv);
	vg_bill_invoice_free(inv);
	assert_int_equal(vg_bill_invoice_from_db(db, rc, jul, "lab", &inv), 0);
	assert_int_equal(inv->doc, VG_BILL_DOC_STATEMENT);
	assert_int_equal(vg_bill_invoice_render(inv, VG_BILL_FMT_HTML, &html, &len), 0);
	assert_non_null(strstr(html, "This is a usage statement, not an invoice"));
	assert_null(strstr(html, "Amount due"));
	free(html);
	vg_bill_invoice_free(inv);
	struct vg_bill_month aug = {2026, 8};
	assert_int_equal(vg_bill_invoice_from_db(db, rc, aug, "fr-co", &inv), 0);
	assert_int_equal(vg_bill_invoice_render(inv, VG_BILL_FMT_HTML, &html, &len), 0);
	assert_non_null(strstr(html, "<h1>Credit note"));
	assert_non_null(strstr(html, "Amount credited EUR</td><td class=\"n\">1.81</td>"));
	free(html);
	vg_bill_invoice_free(inv);
	vg_bill_ratecard_free(rc);
	vg_bill_ledger_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		DBE_BOTH(test_ledger_matches_hand_computation, setup, teardown),
		DBE_BOTH(test_redelivery_changes_nothing, setup, teardown),
		DBE_BOTH(test_per_project_invoice_equals_all, setup, teardown),
		DBE_BOTH(test_network_pages_same_invoices, setup, teardown),
		DBE_BOTH(test_two_meters_late_resend, setup, teardown),
		DBE_BOTH(test_two_meters_concurrent, setup, teardown),
		DBE_BOTH(test_two_meters_count_bytes_once, setup, teardown),
		DBE_BOTH(test_held_locks_answer_retry, setup, teardown),
		DBE_BOTH(test_invoices_ignore_held_locks, setup, teardown),
		DBE_BOTH(test_documents_ledger, setup, teardown),
	};
	return cmocka_run_group_tests(tests, dbe_group_setup, dbe_group_teardown);
}
