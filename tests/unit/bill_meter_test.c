/*
 * bill_meter_test.c — the meter and usage intervals on hand-made batches:
 * exact split at 00:00:00 UTC (also for February and runs under the
 * minimum), polling fallback and refinement by late exact events, stopped
 * instances accruing storage only, deleted instances stopping at
 * deletion, counter resets, traffic spread across a month boundary, live
 * migration between two hosts (libvirt's events, or polls only, in both
 * arrival orders) continuing one run, a resize (stop, redefine, start)
 * inside one poll interval whatever each poll saw first, and a batch of
 * many instances (more rows than one of the meter's bulk statements),
 * and a host's sightings kept in one row per host (a resource that
 * vanishes keeps its last sighting, one that appears joins).
 *
 * Every case applies each batch twice: first through a dispatch chain
 * with the meter's consumer and hooks between two other consumers (the
 * collector's path: on PostgreSQL the overlapped one), then directly
 * (vg_bill_meter_batch, a re-delivery). The overlap cases check that the
 * two paths write the same rows on both engines, that the overlap is
 * really taken on PostgreSQL, and that a retry asked by an earlier
 * consumer leaves nothing written and no transaction open. The group
 * cases (the receiver's group commit: several hosts' batches in one
 * transaction) check the same rows as one batch at a time, and that a
 * group whose transaction the server breaks (its session ended in the
 * middle, or right before the COMMIT) loses nothing and counts nothing
 * twice, and that two meters' groups naming the same instances, the
 * same projects' names or the same disks' instances, in opposite orders,
 * cannot deadlock (PostgreSQL). With locks another collector holds past
 * the meter's bound, a group stores the batches it can and answers the
 * held one RETRY, which is metered once when sent again (PostgreSQL).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "vigie/bill_invoice.h"
#include "vigie/bill_meter.h"
#include "vigie/clock.h"
#include "vigie/db.h"
#include "vigie/dispatch.h"
#include "vigie/log.h"

#include "../support/db_engines.h"
#include "../support/hang_guard.h"
#include "../support/lock_waiters.h"

static int64_t T(const char *iso)
{
	int64_t ms;
	assert_int_equal(vg_time_parse(iso, 0, &ms), 0);
	return ms;
}

struct fx {
	const struct dbe *e;
	char db[700];
	struct vg_bill_meter *m;
	uint64_t seq;
	struct vg_batch *b;
	struct vg_dispatch d; /* before, the meter (hooks), after */
	int before_ret;       /* what the consumer before the meter returns */
	int between;          /* calls of the others while the meter's batch is open */
};

/* The consumers around the meter in fx.d (the store and the alarm engine
 * in the collector). */
static int other_batch(void *ctx, const struct vg_batch *b)
{
	struct fx *f = ctx;
	f->between++;
	return f->before_ret;
}

static int after_batch(void *ctx, const struct vg_batch *b)
{
	((struct fx *)ctx)->between++;
	return 0;
}

static void chain(struct fx *f)
{
	struct vg_consumer before = {"before", f, other_batch, NULL},
			   after = {"after", f, after_batch, NULL};
	struct vg_consumer mc = vg_bill_meter_consumer(f->m);
	struct vg_consumer_hooks h = vg_bill_meter_hooks();

	vg_dispatch_init(&f->d);
	assert_int_equal(vg_dispatch_add(&f->d, &before), 0);
	assert_int_equal(vg_dispatch_add_hooks(&f->d, &mc, &h), 0);
	assert_int_equal(vg_dispatch_add(&f->d, &after), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[512];
	int rc;

	f->e = *state;
	*state = f;
	if ((rc = dbe_fresh(f->e, f->db, sizeof(f->db))))
		return rc < 0 ? -1 : 0;
	if (vg_bill_meter_open(f->db, &f->m, err, sizeof(err)))
		fail_msg("%s", err);
	return 0;
}

/* The case's fixture; skips (or fails) when its engine cannot run. */
static struct fx *fx_get(void **state)
{
	struct fx *f = *state;
	if (!f->m)
		dbe_need(f->e);
	return f;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	vg_bill_meter_close(f->m);
	free(f);
	return 0;
}

static void begin_on(struct fx *f, const char *host, const char *t)
{
	f->b = vg_batch_new(host, 1, ++f->seq, T(t));
	assert_non_null(f->b);
}

static void begin(struct fx *f, const char *t)
{
	begin_on(f, "h1", t);
}

static void apply(struct fx *f)
{
	int rc = vg_bill_meter_batch(f->m, f->b);
	if (rc)
		fail_msg("batch: %d: %s", rc, vg_db_errmsg(vg_bill_meter_db(f->m)));
}

/* The collector's path: the dispatch chain with the meter's hooks. */
static void dispatch(struct fx *f)
{
	int rc;

	chain(f); /* a case may have opened its meter again */
	rc = vg_dispatch_batch(&f->d, f->b);
	if (rc)
		fail_msg("dispatch: %d: %s", rc, vg_db_errmsg(vg_bill_meter_db(f->m)));
	assert_false(vg_db_in_transaction(vg_bill_meter_db(f->m)));
}

static void commit(struct fx *f)
{
	dispatch(f);
	apply(f); /* re-delivered */
	vg_batch_free(f->b);
	f->b = NULL;
}

/* power: 1 running, 5 shut off, 0 no power sample, -1 ended */
static void inst(struct fx *f, const char *id, const char *t, int power)
{
	struct vg_resource *r = vg_batch_resource(f->b, VG_RT_INSTANCE, id, id, NULL, T(t));
	r->state = power < 0 ? VG_RSTATE_ENDED : VG_RSTATE_ACTIVE;
	assert_int_equal(vg_batch_identity(f->b, "p", NULL, "m1.small"), 0);
	if (power > 0)
		assert_int_equal(vg_batch_sample(f->b, "power.state", VG_KIND_GAUGE, power), 0);
	if (power >= 0) {
		assert_int_equal(vg_batch_attr(f->b, "flavor_vcpus", "1"), 0);
		assert_int_equal(vg_batch_attr(f->b, "flavor_memory_mb", "1024"), 0);
	}
}

static void disk(struct fx *f, const char *id, const char *parent, const char *t,
		 double bytes)
{
	struct vg_resource *r = vg_batch_resource(f->b, VG_RT_DISK, id, "vda", parent, T(t));
	r->state = bytes < 0 ? VG_RSTATE_ENDED : VG_RSTATE_ACTIVE;
	if (bytes >= 0)
		assert_int_equal(vg_batch_sample(f->b, "disk.capacity", VG_KIND_GAUGE, bytes), 0);
}

static void nic(struct fx *f, const char *id, const char *parent, const char *t,
		double tx, double rx)
{
	vg_batch_resource(f->b, VG_RT_NIC, id, "tap0", parent, T(t));
	assert_int_equal(vg_batch_sample(f->b, "net.tx.bytes", VG_KIND_COUNTER, tx), 0);
	assert_int_equal(vg_batch_sample(f->b, "net.rx.bytes", VG_KIND_COUNTER, rx), 0);
}

static void event(struct fx *f, const char *id, int type, const char *t)
{
	assert_int_equal(vg_batch_event(f->b, id, (uint8_t)type, T(t), NULL), 0);
}

static void event_d(struct fx *f, const char *id, int type, const char *t,
		    const char *detail)
{
	assert_int_equal(vg_batch_event(f->b, id, (uint8_t)type, T(t), detail), 0);
}

/* One poll of instance id at t, alone in its batch (power as inst). */
static void poll(struct fx *f, const char *id, const char *t, int power)
{
	begin(f, t);
	inst(f, id, t, power);
	commit(f);
}

static void load(struct fx *f, const char *month, struct vg_bill_usage *u)
{
	struct vg_bill_month m;
	assert_int_equal(vg_bill_month_parse(month, &m), 0);
	assert_int_equal(vg_bill_usage_load(vg_bill_meter_db(f->m), vg_bill_month_start_ms(m),
					    vg_bill_month_end_ms(m), NULL, u),
			 0);
}

/* The i-th segment of `kind` of resource id. */
static const struct vg_bill_usage_seg *seg(const struct vg_bill_usage *u, const char *id,
					   int kind, int i)
{
	size_t r = vg_bill_usage_find(u, id);
	for (size_t k = 0; r != VG_BILL_NO_INDEX && k < u->nsegs; k++)
		if (u->segs[k].res == r && u->segs[k].kind == kind && i-- == 0)
			return &u->segs[k];
	return NULL;
}

static size_t nseg(const struct vg_bill_usage *u, const char *id, int kind)
{
	size_t n = 0;
	while (seg(u, id, kind, (int)n))
		n++;
	return n;
}

static void test_month_boundary_split_exactly(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_usage u;

	begin(f, "2026-01-31T23:59:35Z");
	event(f, "i1", VG_EV_STARTED, "2026-01-31T23:59:30Z");
	inst(f, "i1", "2026-01-31T23:59:35Z", 1);
	commit(f);
	begin(f, "2026-02-01T00:01:00Z");
	event(f, "i1", VG_EV_STOPPED, "2026-02-01T00:00:45Z");
	inst(f, "i1", "2026-02-01T00:01:00Z", 5);
	commit(f);
	/* a 20 s run across the end of February (28 days in 2026) */
	begin(f, "2026-03-01T00:01:00Z");
	event(f, "i1", VG_EV_STARTED, "2026-02-28T23:59:50Z");
	event(f, "i1", VG_EV_STOPPED, "2026-03-01T00:00:10Z");
	inst(f, "i1", "2026-03-01T00:01:00Z", 5);
	commit(f);

	load(f, "2026-01", &u);
	const struct vg_bill_usage_seg *s = seg(&u, "i1", VG_BILL_U_COMPUTE, 0);
	assert_non_null(s);
	assert_int_equal(s->start_ms, T("2026-01-31T23:59:30Z"));
	assert_int_equal(s->end_ms, T("2026-02-01T00:00:00Z"));
	assert_int_equal(s->run_ms, 75000);
	assert_true(s->run_first);
	vg_bill_usage_clear(&u);

	load(f, "2026-02", &u);
	assert_int_equal(nseg(&u, "i1", VG_BILL_U_COMPUTE), 2);
	s = seg(&u, "i1", VG_BILL_U_COMPUTE, 0);
	assert_int_equal(s->start_ms, T("2026-02-01T00:00:00Z"));
	assert_int_equal(s->end_ms, T("2026-02-01T00:00:45Z"));
	assert_false(s->run_first);
	s = seg(&u, "i1", VG_BILL_U_COMPUTE, 1);
	assert_int_equal(s->start_ms, T("2026-02-28T23:59:50Z"));
	assert_int_equal(s->end_ms, T("2026-03-01T00:00:00Z"));
	assert_int_equal(s->run_ms, 20000);
	assert_true(s->run_first);

	/* priced: the short run's shortfall (40 s) is billed in February */
	static const char card[] =
		"{\"currency\":\"EUR\",\"minor_unit_digits\":2,\"prices\":[{"
		"\"valid_from\":\"2020-01-01\",\"compute\":{\"flavors\":{\"m1.small\":\"36\"}}}]}";
	struct vg_bill_ratecard *rc;
	struct vg_bill_invoice *inv;
	char err[256];
	assert_int_equal(vg_bill_ratecard_parse(card, sizeof(card) - 1, "c", &rc, err, sizeof(err)), 0);
	assert_int_equal(vg_bill_invoice_compute(&u, rc, (struct vg_bill_month){2026, 2}, "p", &inv), 0);
	assert_int_equal(inv->nlines, 1);
	/* 45 s + (10 s + 40 s shortfall) = 95 s at 0.01/s = 0.95 */
	assert_true(inv->lines[0].qty == 95000);
	assert_int_equal(inv->lines[0].amount_micro, 950000);
	assert_int_equal(inv->lines[0].minimum_runs, 1);
	vg_bill_invoice_free(inv);
	vg_bill_usage_clear(&u);
	load(f, "2026-03", &u);
	assert_int_equal(vg_bill_invoice_compute(&u, rc, (struct vg_bill_month){2026, 3}, "p", &inv), 0);
	assert_true(inv->lines[0].qty == 10000);
	vg_bill_invoice_free(inv);
	vg_bill_usage_clear(&u);
	vg_bill_ratecard_free(rc);
}

static void test_polling_fallback_and_refinement(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_usage u;
	const struct vg_bill_usage_seg *s;

	/* no events: running since the first sample, stopped at the last
	 * time seen running */
	const char *polls[] = {"2026-05-01T00:00:00Z", "2026-05-01T00:10:00Z",
			       "2026-05-01T00:20:00Z"};
	for (int i = 0; i < 3; i++) {
		begin(f, polls[i]);
		inst(f, "i2", polls[i], i < 2 ? 1 : 5);
		commit(f);
	}
	load(f, "2026-05", &u);
	s = seg(&u, "i2", VG_BILL_U_COMPUTE, 0);
	assert_int_equal(s->start_ms, T("2026-05-01T00:00:00Z"));
	assert_int_equal(s->end_ms, T("2026-05-01T00:10:00Z"));
	vg_bill_usage_clear(&u);

	/* the exact STOPPED event arrives late, inside the window: it wins */
	begin(f, "2026-05-01T00:30:00Z");
	event(f, "i2", VG_EV_STOPPED, "2026-05-01T00:14:30Z");
	inst(f, "i2", "2026-05-01T00:30:00Z", 5);
	commit(f);
	load(f, "2026-05", &u);
	assert_int_equal(nseg(&u, "i2", VG_BILL_U_COMPUTE), 1);
	s = seg(&u, "i2", VG_BILL_U_COMPUTE, 0);
	assert_int_equal(s->end_ms, T("2026-05-01T00:14:30Z"));
	vg_bill_usage_clear(&u);

	struct vg_bill_meter_stats st;
	vg_bill_meter_get_stats(f->m, &st);
	assert_int_equal(st.refined, 1);
	assert_true(st.stale >= 4); /* every batch was delivered twice */
}

static void test_storage_while_stopped_not_after_delete(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_usage u;
	const struct vg_bill_usage_seg *s;

	begin(f, "2026-06-01T00:00:00Z");
	event(f, "i3", VG_EV_DEFINED, "2026-06-01T00:00:00Z");
	inst(f, "i3", "2026-06-01T00:00:00Z", 5);
	disk(f, "d3", "i3", "2026-06-01T00:00:00Z", 10.0 * 1073741824);
	commit(f);
	begin(f, "2026-06-11T00:00:00Z");
	event(f, "i3", VG_EV_STARTED, "2026-06-10T00:00:00Z");
	inst(f, "i3", "2026-06-11T00:00:00Z", 1);
	disk(f, "d3", "i3", "2026-06-11T00:00:00Z", 10.0 * 1073741824);
	commit(f);
	begin(f, "2026-06-16T00:05:00Z");
	event(f, "i3", VG_EV_UNDEFINED, "2026-06-16T00:00:00Z");
	inst(f, "i3", "2026-06-16T00:05:00Z", -1);
	disk(f, "d3", "i3", "2026-06-16T00:05:00Z", -1);
	commit(f);
	/* later polls must not revive anything */
	begin(f, "2026-06-20T00:00:00Z");
	commit(f);

	load(f, "2026-06", &u);
	assert_int_equal(nseg(&u, "i3", VG_BILL_U_COMPUTE), 1);
	s = seg(&u, "i3", VG_BILL_U_COMPUTE, 0);
	assert_int_equal(s->start_ms, T("2026-06-10T00:00:00Z"));
	assert_int_equal(s->end_ms, T("2026-06-16T00:00:00Z")); /* deletion */
	assert_int_equal(nseg(&u, "d3", VG_BILL_U_STORAGE), 1);
	s = seg(&u, "d3", VG_BILL_U_STORAGE, 0);
	assert_int_equal(s->start_ms, T("2026-06-01T00:00:00Z")); /* also stopped */
	assert_int_equal(s->end_ms, T("2026-06-16T00:00:00Z"));
	assert_int_equal(s->bytes, 10LL * 1073741824);
	assert_int_equal(nseg(&u, "i3", VG_BILL_U_STORAGE), 0); /* it has a disk */
	vg_bill_usage_clear(&u);
}

static void test_counters_resets_and_spread(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_usage u;
	int64_t tx = 0, rx = 0;

	const struct {
		const char *t;
		double tx, rx;
	} p[] = {
		{"2026-10-31T23:00:00Z", 5000, 100}, /* baseline */
		{"2026-11-01T01:00:00Z", 7000, 100}, /* +2000 over 2 h, 1000 in Oct */
		{"2026-11-01T01:30:00Z", 300, 40},   /* reset: +300, +40 */
		{"2026-11-01T01:40:00Z", 1300, 40},  /* +1000 */
	};
	begin(f, p[0].t);
	inst(f, "i4", p[0].t, 1);
	commit(f);
	for (int i = 0; i < 4; i++) {
		begin(f, p[i].t);
		nic(f, "n4", "i4", p[i].t, p[i].tx, p[i].rx);
		commit(f);
	}
	load(f, "2026-10", &u);
	for (size_t i = 0; i < u.nnet; i++)
		tx += u.net[i].tx;
	assert_int_equal(tx, 1000);
	vg_bill_usage_clear(&u);
	load(f, "2026-11", &u);
	tx = 0;
	for (size_t i = 0; i < u.nnet; i++) {
		tx += u.net[i].tx;
		rx += u.net[i].rx;
		assert_true(u.net[i].tx >= 0 && u.net[i].rx >= 0);
	}
	assert_int_equal(tx, 1000 + 300 + 1000);
	assert_int_equal(rx, 40);
	vg_bill_usage_clear(&u);
	struct vg_bill_meter_stats st;
	vg_bill_meter_get_stats(f->m, &st);
	assert_int_equal(st.resets, 1);
}

/* libvirt announces a stop after a poll can already see the domain shut
 * off (0.4-1 s under real QEMU): an exact event shortly after the inferred
 * window's end is that stop, announced late, and replaces the inference;
 * so does a STARTED announced after a poll saw QEMU starting up. */
static void test_late_announced_event_refines(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_usage u;
	const struct vg_bill_usage_seg *s;

	poll(f, "i8", "2026-08-01T00:00:00Z", 5);
	poll(f, "i8", "2026-08-01T00:00:01Z", 3); /* paused: starting up */
	begin(f, "2026-08-01T00:00:03Z");
	event(f, "i8", VG_EV_STARTED, "2026-08-01T00:00:02.700Z");
	inst(f, "i8", "2026-08-01T00:00:03Z", 1);
	commit(f);
	poll(f, "i8", "2026-08-01T00:01:00Z", 1);
	poll(f, "i8", "2026-08-01T00:01:01Z", 5);
	begin(f, "2026-08-01T00:01:02Z");
	event(f, "i8", VG_EV_STOPPED, "2026-08-01T00:01:01.800Z");
	inst(f, "i8", "2026-08-01T00:01:02Z", 5);
	commit(f);
	load(f, "2026-08", &u);
	assert_int_equal(nseg(&u, "i8", VG_BILL_U_COMPUTE), 1);
	s = seg(&u, "i8", VG_BILL_U_COMPUTE, 0);
	assert_int_equal(s->start_ms, T("2026-08-01T00:00:02.700Z"));
	assert_int_equal(s->end_ms, T("2026-08-01T00:01:01.800Z"));
	vg_bill_usage_clear(&u);
}

static void test_resize_splits(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_usage u;

	begin(f, "2026-07-01T00:00:00Z");
	event(f, "i5", VG_EV_STARTED, "2026-07-01T00:00:00Z");
	inst(f, "i5", "2026-07-01T00:00:00Z", 1);
	commit(f);
	begin(f, "2026-07-02T00:05:00Z");
	assert_int_equal(vg_batch_event(f->b, "i5", VG_EV_RESIZED, T("2026-07-02T00:00:00Z"),
					"{\"flavor\":\"m1.large\",\"vcpus\":4,\"memory_mb\":8192}"),
			 0);
	vg_batch_resource(f->b, VG_RT_INSTANCE, "i5", "i5", NULL, T("2026-07-02T00:05:00Z"));
	assert_int_equal(vg_batch_identity(f->b, "p", NULL, "m1.large"), 0);
	assert_int_equal(vg_batch_attr(f->b, "flavor_vcpus", "4"), 0);
	commit(f);
	load(f, "2026-07", &u);
	assert_int_equal(nseg(&u, "i5", VG_BILL_U_COMPUTE), 2);
	const struct vg_bill_usage_seg *a = seg(&u, "i5", VG_BILL_U_COMPUTE, 0);
	const struct vg_bill_usage_seg *b = seg(&u, "i5", VG_BILL_U_COMPUTE, 1);
	assert_string_equal(a->flavor, "m1.small");
	assert_int_equal(a->end_ms, T("2026-07-02T00:00:00Z"));
	assert_string_equal(b->flavor, "m1.large");
	assert_int_equal(b->vcpus, 4);
	assert_int_equal(b->ram_mb, 8192);
	assert_int_equal(b->start_ms, T("2026-07-02T00:00:00Z"));
	assert_int_equal(b->end_ms, T("2026-07-02T00:05:00Z")); /* last seen */
	assert_false(b->run_first);
	assert_int_equal(b->run_ms, -1); /* still running */
	vg_bill_usage_clear(&u);
}

/* A silence that ends with a start: the agent sent nothing for three
 * hours, then a STARTED (exact, or the agent's first poll after it was
 * restarted). The instance was not running just before (or nobody
 * watched it): the run ends at its last sighting before the silence and
 * a new one begins at the start; the silence is not billed. A STOPPED
 * that arrives later, inside the silence, refines the end. A run seen by
 * one poll and then reported started has its start moved, not a run of
 * an instant billed the minimum. */
static void silence_case(struct fx *f, const char *id, const char *detail)
{
	struct vg_bill_usage u;
	const struct vg_bill_usage_seg *a, *b;

	poll(f, id, "2026-09-01T13:06:00Z", 1);
	poll(f, id, "2026-09-01T13:07:00Z", 1);
	begin(f, "2026-09-01T16:05:00Z");
	event_d(f, id, VG_EV_STARTED, "2026-09-01T16:05:00Z", detail);
	inst(f, id, "2026-09-01T16:05:00Z", 1);
	commit(f);
	poll(f, id, "2026-09-01T16:06:00Z", 1);
	load(f, "2026-09", &u);
	assert_int_equal(nseg(&u, id, VG_BILL_U_COMPUTE), 2);
	a = seg(&u, id, VG_BILL_U_COMPUTE, 0);
	b = seg(&u, id, VG_BILL_U_COMPUTE, 1);
	assert_int_equal(a->start_ms, T("2026-09-01T13:06:00Z"));
	assert_int_equal(a->end_ms, T("2026-09-01T13:07:00Z"));
	assert_int_equal(b->start_ms, T("2026-09-01T16:05:00Z"));
	assert_int_equal(b->end_ms, T("2026-09-01T16:06:00Z"));
	vg_bill_usage_clear(&u);

	/* the stop, announced late, inside the silence */
	begin(f, "2026-09-01T16:07:00Z");
	event(f, id, VG_EV_STOPPED, "2026-09-01T14:00:00Z");
	inst(f, id, "2026-09-01T16:07:00Z", 1);
	commit(f);
	load(f, "2026-09", &u);
	assert_int_equal(nseg(&u, id, VG_BILL_U_COMPUTE), 2);
	assert_int_equal(seg(&u, id, VG_BILL_U_COMPUTE, 0)->end_ms, T("2026-09-01T14:00:00Z"));
	assert_int_equal(seg(&u, id, VG_BILL_U_COMPUTE, 1)->start_ms, T("2026-09-01T16:05:00Z"));
	vg_bill_usage_clear(&u);
}

/* Polls at 13:06 and 13:07, then 16:06 and 16:07 of day, no event; an
 * exact STARTED at 16:05 arrives afterwards in a batch of its own (a
 * second stream of the host, delivered later). With stop, a STOPPED at
 * 14:00 arrives before it, late too. The bill is the one the events
 * give delivered in order: the run ends at 13:07 (or 14:00), another
 * begins at 16:05. */
static void silence_late_case(struct fx *f, const char *id, const char *day, int stop)
{
	struct vg_bill_usage u;
	char t[4][32], ev[32], st[32];
	const char *hm[4] = {"13:06", "13:07", "16:06", "16:07"};

	for (int i = 0; i < 4; i++) {
		snprintf(t[i], sizeof(t[i]), "%sT%s:00Z", day, hm[i]);
		begin(f, t[i]);
		inst(f, id, t[i], 1);
		commit(f);
	}
	snprintf(ev, sizeof(ev), "%sT16:05:00Z", day);
	snprintf(st, sizeof(st), "%sT14:00:00Z", day);
	if (stop) {
		begin(f, t[3]);
		event(f, id, VG_EV_STOPPED, st);
		commit(f);
	}
	begin(f, t[3]);
	event(f, id, VG_EV_STARTED, ev);
	commit(f);
	load(f, "2026-09", &u);
	assert_int_equal(nseg(&u, id, VG_BILL_U_COMPUTE), 2);
	assert_int_equal(seg(&u, id, VG_BILL_U_COMPUTE, 0)->start_ms, T(t[0]));
	assert_int_equal(seg(&u, id, VG_BILL_U_COMPUTE, 0)->end_ms, T(stop ? st : t[1]));
	assert_int_equal(seg(&u, id, VG_BILL_U_COMPUTE, 1)->start_ms, T(ev));
	assert_int_equal(seg(&u, id, VG_BILL_U_COMPUTE, 1)->end_ms, T(t[3]));
	vg_bill_usage_clear(&u);
}

static void test_silence_ended_by_start(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_usage u;

	silence_case(f, "vmH4", NULL);
	silence_case(f, "vmH5", "{\"initial\":true,\"derived\":true}");

	/* seen by one poll, then reported started 30 s later: one run */
	poll(f, "vmH6", "2026-09-02T00:00:00Z", 1);
	begin(f, "2026-09-02T00:00:40Z");
	event(f, "vmH6", VG_EV_STARTED, "2026-09-02T00:00:30Z");
	inst(f, "vmH6", "2026-09-02T00:00:40Z", 1);
	commit(f);
	poll(f, "vmH6", "2026-09-02T01:00:00Z", 5);
	load(f, "2026-09", &u);
	assert_int_equal(nseg(&u, "vmH6", VG_BILL_U_COMPUTE), 1);
	assert_int_equal(seg(&u, "vmH6", VG_BILL_U_COMPUTE, 0)->start_ms,
			 T("2026-09-02T00:00:30Z"));
	assert_int_equal(seg(&u, "vmH6", VG_BILL_U_COMPUTE, 0)->end_ms,
			 T("2026-09-02T00:00:40Z"));
	vg_bill_usage_clear(&u);

	/* the same start delivered late, after the polls that followed the
	 * silence (another stream's batch): the bill is the one in order,
	 * 13:06-13:07 and 16:05 on, not one run 13:06-16:06 */
	silence_late_case(f, "vmH7", "2026-09-03", 1);
	silence_late_case(f, "vmH8", "2026-09-04", 0);
	/* seen by one poll before the silence: the run starts at the start */
	begin(f, "2026-09-05T13:06:00Z");
	inst(f, "vmH9", "2026-09-05T13:06:00Z", 1);
	commit(f);
	begin(f, "2026-09-05T16:06:00Z");
	inst(f, "vmH9", "2026-09-05T16:06:00Z", 1);
	commit(f);
	begin(f, "2026-09-05T16:07:00Z");
	event(f, "vmH9", VG_EV_STARTED, "2026-09-05T16:05:00Z");
	commit(f);
	load(f, "2026-09", &u);
	assert_int_equal(nseg(&u, "vmH9", VG_BILL_U_COMPUTE), 1);
	assert_int_equal(seg(&u, "vmH9", VG_BILL_U_COMPUTE, 0)->start_ms,
			 T("2026-09-05T16:05:00Z"));
	assert_int_equal(seg(&u, "vmH9", VG_BILL_U_COMPUTE, 0)->end_ms,
			 T("2026-09-05T16:06:00Z"));
	vg_bill_usage_clear(&u);
}

/* The silences kept for late starts (sighting_gaps) go when no draft
 * can bill a change to their months any more: finalizing month M drops
 * those before M - 23 (the oldest month the draft of M + 1 looks back
 * to) that lie in the unbroken run of finalized months ending at M. Up
 * to then, a late start inside one still ends the run there; a silence
 * in a month not finalized stays. */
static int64_t db_int(struct fx *f, const char *sql);

static void test_silences_pruned(void **state)
{
	struct fx *f = fx_get(state);
	static const char card[] = "{\"currency\":\"EUR\",\"minor_unit_digits\":2,"
				   "\"prices\":[{\"valid_from\":\"2026-01-01\",\"compute\":"
				   "{\"flavors\":{\"m1.small\":\"1\"}}}]}";
	const char *hm[4] = {"13:06", "13:07", "16:06", "16:07"};
	struct vg_db *db = vg_bill_meter_db(f->m);
	struct vg_bill_ratecard *rc;
	struct vg_bill_month m;
	struct vg_bill_usage u;
	struct vg_db_stmt *s;
	char err[256], t[32];
	size_t n;

	assert_int_equal(vg_bill_ratecard_parse(card, sizeof(card) - 1, "c", &rc, err, sizeof(err)), 0);
	for (int i = 0; i < 3; i++) { /* vmQ: a silence in August, not finalized */
		snprintf(t, sizeof(t), "2026-08-10T%s:00Z", hm[i]);
		poll(f, "vmQ", t, 1);
	}
	for (int i = 0; i < 4; i++) { /* vmP: a silence in September */
		snprintf(t, sizeof(t), "2026-09-03T%s:00Z", hm[i]);
		poll(f, "vmP", t, 1);
	}
	assert_int_equal(db_int(f, "SELECT count(*) FROM sighting_gaps"), 2);

	/* September 2026 to July 2028 finalized, then August 2028: the
	 * draft of September 2028 still looks back to September 2026 */
	assert_int_equal(vg_bill_month_parse("2026-09", &m), 0);
	assert_int_equal(vg_db_prepare(db, "INSERT INTO months(month,finalized_ms) VALUES(?1,0)", &s), 0);
	for (int i = 0; i < 23; i++, m = vg_bill_month_next(m)) {
		char ms[16];
		vg_db_bind_text(s, 1, vg_bill_month_format(m, ms, sizeof(ms)));
		assert_int_equal(vg_db_step(s), 0);
		vg_db_reset(s);
	}
	assert_int_equal(vg_bill_finalize(db, rc, m, vg_bill_month_end_ms(m), &n), 0);
	assert_int_equal(db_int(f, "SELECT count(*) FROM sighting_gaps WHERE resource='vmP'"), 1);

	/* the start at 16:05, delivered late: the bill in order */
	begin(f, "2026-09-03T16:07:00Z");
	event(f, "vmP", VG_EV_STARTED, "2026-09-03T16:05:00Z");
	commit(f);
	load(f, "2026-09", &u);
	assert_int_equal(nseg(&u, "vmP", VG_BILL_U_COMPUTE), 2);
	assert_int_equal(seg(&u, "vmP", VG_BILL_U_COMPUTE, 0)->end_ms, T("2026-09-03T13:07:00Z"));
	assert_int_equal(seg(&u, "vmP", VG_BILL_U_COMPUTE, 1)->start_ms, T("2026-09-03T16:05:00Z"));
	vg_bill_usage_clear(&u);

	/* September 2028 finalized: no draft looks back to September 2026
	 * any more, its silence goes; August 2026's stays (its draft may
	 * still come) */
	m = vg_bill_month_next(m);
	assert_int_equal(vg_bill_finalize(db, rc, m, vg_bill_month_end_ms(m), &n), 0);
	assert_int_equal(db_int(f, "SELECT count(*) FROM sighting_gaps WHERE resource='vmP'"), 0);
	assert_int_equal(db_int(f, "SELECT count(*) FROM sighting_gaps WHERE resource='vmQ'"), 1);
	vg_bill_ratecard_free(rc);
}

/* A project's published measures (POST /v1/measures) on its instance
 * are no observation of the instance: one stamped max_future ahead (a
 * custom metric at poll time + 10 min) moved the meter's watermark, so
 * the agent's polls until then were ignored and the start they showed
 * was billed from the point's time: ten minutes free per start. */
static void test_published_not_observed(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_usage u;

	poll(f, "i7", "2026-06-01T00:00:00Z", 5); /* shut off */
	/* the tenant's point, as the API builds it: host and identity
	 * copied, active, no power sample, ten minutes ahead */
	begin(f, "2026-06-01T00:10:00Z");
	f->b->published = 1;
	vg_batch_resource(f->b, VG_RT_INSTANCE, "i7", "i7", NULL, T("2026-06-01T00:10:00Z"))
		->state = VG_RSTATE_ACTIVE;
	assert_int_equal(vg_batch_identity(f->b, "p", NULL, "m1.small"), 0);
	assert_int_equal(vg_batch_sample(f->b, "app.queue", VG_KIND_GAUGE, 1), 0);
	commit(f);
	/* started at 00:01 as the agent sees it, running at 00:20 */
	poll(f, "i7", "2026-06-01T00:01:00Z", 1);
	poll(f, "i7", "2026-06-01T00:20:00Z", 1);
	load(f, "2026-06", &u);
	assert_int_equal(nseg(&u, "i7", VG_BILL_U_COMPUTE), 1);
	assert_int_equal(seg(&u, "i7", VG_BILL_U_COMPUTE, 0)->start_ms, T("2026-06-01T00:01:00Z"));
	assert_int_equal(seg(&u, "i7", VG_BILL_U_COMPUTE, 0)->end_ms, T("2026-06-01T00:20:00Z"));
	vg_bill_usage_clear(&u);
}

/* An instance seen running by one poll only: started at its first
 * sighting and stopped at its last, the same instant (START and STOP at
 * one time_ms, sorted STOP first). The run is that instant, not "until
 * the next stop" (found by tests/unit/crash_test.c); a late event that
 * makes the meter replay the timeline sees it stopped too. */
static void test_single_poll_run(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_usage u;
	int64_t total = 0;
	const char *polls[] = {"2026-05-01T00:00:00Z", "2026-05-01T00:10:00Z",
			       "2026-05-01T00:20:00Z", "2026-05-01T00:30:00Z"};
	const int power[] = {1, 5, 1, 1};

	for (int i = 0; i < 4; i++) {
		begin(f, polls[i]);
		inst(f, "i9", polls[i], power[i]);
		commit(f);
	}
	/* a late exact STOPPED while it was stopped: changes nothing */
	begin(f, "2026-05-01T00:40:00Z");
	event(f, "i9", VG_EV_STOPPED, "2026-05-01T00:12:00Z");
	inst(f, "i9", "2026-05-01T00:40:00Z", 1);
	commit(f);
	load(f, "2026-05", &u);
	for (size_t n = nseg(&u, "i9", VG_BILL_U_COMPUTE), i = 0; i < n; i++) {
		const struct vg_bill_usage_seg *s = seg(&u, "i9", VG_BILL_U_COMPUTE, (int)i);
		total += s->end_ms - s->start_ms;
		if (s->end_ms > s->start_ms) {
			assert_int_equal(s->start_ms, T("2026-05-01T00:20:00Z"));
			assert_int_equal(s->end_ms, T("2026-05-01T00:40:00Z"));
		}
	}
	assert_int_equal(total, 20 * 60000);
	vg_bill_usage_clear(&u);

	struct vg_db_stmt *st;
	assert_int_equal(vg_db_prepare(vg_bill_meter_db(f->m),
				       "SELECT count(*) FROM transitions WHERE resource = 'i9' AND kind = 2",
				       &st),
			 0);
	assert_int_equal(vg_db_step(st), 1);
	assert_int_equal(vg_db_column_int64(st, 0), 1); /* no stop at 00:12 */
	vg_db_reset(st);
}

/* A billing.db written before the state database layer (PRAGMA
 * user_version 1, no vg_schema) is adopted as schema version 1 with its
 * rows and upgraded to version 2 (project names, invoice numbers): the
 * meter goes on from its watermarks (sqlite only). The file also holds
 * bill_project_names as a build that created it at open left it: step 2
 * keeps it and its rows. */
static void test_adopts_old_billing_db(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_db_stmt *st;
	struct vg_bill_usage u;
	sqlite3 *db;
	char err[512];
	int64_t v = -1;

	if (f->e->kind != VG_DB_SQLITE) {
		printf("# SKIP postgresql: no file from before to adopt\n");
		skip();
	}
	vg_bill_meter_close(f->m);
	f->m = NULL;
	unlink(f->db);
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "CREATE TABLE resources(id TEXT PRIMARY KEY, type INTEGER NOT NULL, parent TEXT,"
				      " project TEXT NOT NULL, user TEXT, name TEXT, host TEXT, first_ms INTEGER NOT NULL,"
				      " last_seen_ms INTEGER NOT NULL, last_poll_ms INTEGER NOT NULL,"
				      " last_change_ms INTEGER NOT NULL, state INTEGER NOT NULL, flavor TEXT, vcpus INTEGER,"
				      " ram_mb INTEGER, disk_gb INTEGER, capacity INTEGER,"
				      " has_disks INTEGER NOT NULL DEFAULT 0, ctr_ms INTEGER, ctr_tx INTEGER, ctr_rx INTEGER);"
				      "CREATE TABLE transitions(resource TEXT NOT NULL, time_ms INTEGER NOT NULL,"
				      " kind INTEGER NOT NULL, exact INTEGER NOT NULL, lo_ms INTEGER NOT NULL,"
				      " hi_ms INTEGER NOT NULL, flavor TEXT, vcpus INTEGER, ram_mb INTEGER, disk_gb INTEGER,"
				      " capacity INTEGER, PRIMARY KEY(resource, time_ms, kind)) WITHOUT ROWID;"
				      "CREATE TABLE network(project TEXT NOT NULL, hour_ms INTEGER NOT NULL, nic TEXT NOT NULL,"
				      " tx INTEGER NOT NULL, rx INTEGER NOT NULL, PRIMARY KEY(project, hour_ms, nic)) WITHOUT ROWID;"
				      "CREATE TABLE months(month TEXT PRIMARY KEY, finalized_ms INTEGER NOT NULL);"
				      "CREATE TABLE invoices(month TEXT NOT NULL, project TEXT NOT NULL,"
				      " number TEXT NOT NULL UNIQUE, document TEXT NOT NULL, PRIMARY KEY(month, project));"
				      /* i1 running since 2026-06-01 00:00, last polled 00:10 */
				      "INSERT INTO resources VALUES('i1',1,NULL,'p','u','i1','h1',1780272000000,"
				      " 1780272600000,1780272600000,1780272000000,7,'m1.small',1,1024,NULL,NULL,0,NULL,NULL,NULL);"
				      "INSERT INTO transitions VALUES('i1',1780272000000,1,0,0,1780272000000,'m1.small',1,1024,NULL,NULL);"
				      "INSERT INTO transitions VALUES('i1',1780272000000,4,0,0,1780272000000,'m1.small',1,1024,NULL,NULL);"
				      "CREATE TABLE bill_project_names(project TEXT PRIMARY KEY, name TEXT NOT NULL,"
				      " updated_ms BIGINT NOT NULL);"
				      "INSERT INTO bill_project_names VALUES('p','Project P',1780272000000);"
				      "PRAGMA user_version = 1;",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	if (vg_bill_meter_open(f->db, &f->m, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(vg_db_schema_version(vg_bill_meter_db(f->m), "billing", &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(vg_db_prepare(vg_bill_meter_db(f->m),
				       "SELECT name FROM bill_project_names WHERE project = 'p'", &st),
			 0);
	assert_int_equal(vg_db_step(st), 1);
	assert_string_equal(vg_db_column_text(st, 0), "Project P");
	vg_db_reset(st);
	int64_t seq = 0;
	assert_int_equal(vg_bill_numbers_next(vg_bill_meter_db(f->m), "VC", &seq), 0);
	assert_int_equal(seq, 1);
	/* the next poll (00:20) continues the run the old file recorded */
	poll(f, "i1", "2026-06-01T00:20:00Z", 1);
	load(f, "2026-06", &u);
	assert_int_equal(nseg(&u, "i1", VG_BILL_U_COMPUTE), 1);
	assert_int_equal(seg(&u, "i1", VG_BILL_U_COMPUTE, 0)->start_ms, T("2026-06-01T00:00:00Z"));
	assert_int_equal(seg(&u, "i1", VG_BILL_U_COMPUTE, 0)->end_ms, T("2026-06-01T00:20:00Z"));
	vg_bill_usage_clear(&u);
	assert_int_equal(vg_db_prepare(vg_bill_meter_db(f->m),
				       "SELECT count(*) FROM transitions WHERE resource = 'i1'", &st),
			 0);
	assert_int_equal(vg_db_step(st), 1);
	assert_int_equal(vg_db_column_int64(st, 0), 2); /* nothing re-inferred */
	vg_db_reset(st);
}

/* Compute time of id in May 2026 and its number of runs (segments that
 * start a run). */
static int64_t compute_ms(struct fx *f, const char *id, int *runs)
{
	struct vg_bill_usage u;
	int64_t total = 0;
	load(f, "2026-05", &u);
	*runs = 0;
	for (size_t n = nseg(&u, id, VG_BILL_U_COMPUTE), i = 0; i < n; i++) {
		const struct vg_bill_usage_seg *s = seg(&u, id, VG_BILL_U_COMPUTE, (int)i);
		total += s->end_ms - s->start_ms;
		*runs += s->run_first;
	}
	vg_bill_usage_clear(&u);
	return total;
}

#define MIG_OUT "{\"libvirt\":\"stopped\",\"reason\":\"migrated\"}"
#define MIG_IN "{\"libvirt\":\"started\",\"reason\":\"migrated\"}"
#define VANISHED "{\"vanished\":true,\"derived\":true}"

/* libvirt's own events: STOPPED/migrated on the source, STARTED/migrated
 * on the destination, then the source's poll sees the domain gone. The
 * run goes on across hosts, whichever host's batch arrives first. */
static void test_migration_exact_events(void **state)
{
	struct fx *f = fx_get(state);
	int runs;

	for (int order = 0; order < 2; order++) {
		const char *id = order ? "m8" : "m7";
		const char *src[2] = {"2026-05-01T00:00:00Z", "2026-05-01T00:10:00Z"};
		for (int i = 0; i < 2; i++) {
			begin_on(f, "h1", src[i]);
			inst(f, id, src[i], 1);
			commit(f);
		}
		for (int step = 0; step < 2; step++) {
			if ((step == 0) == (order == 0)) { /* the source */
				begin_on(f, "h1", "2026-05-01T00:20:00Z");
				event_d(f, id, VG_EV_STOPPED, "2026-05-01T00:11:30Z", MIG_OUT);
				event_d(f, id, VG_EV_STOPPED, "2026-05-01T00:20:00Z", VANISHED);
				inst(f, id, "2026-05-01T00:20:00Z", -1);
				commit(f);
			} else { /* the destination */
				begin_on(f, "h2", "2026-05-01T00:15:00Z");
				event_d(f, id, VG_EV_STARTED, "2026-05-01T00:11:31Z", MIG_IN);
				inst(f, id, "2026-05-01T00:15:00Z", 1);
				commit(f);
			}
		}
		begin_on(f, "h2", "2026-05-01T00:25:00Z");
		inst(f, id, "2026-05-01T00:25:00Z", 1);
		commit(f);
		begin_on(f, "h2", "2026-05-01T00:41:00Z");
		event_d(f, id, VG_EV_STOPPED, "2026-05-01T00:40:00Z",
			"{\"libvirt\":\"stopped\",\"reason\":\"shutdown\"}");
		inst(f, id, "2026-05-01T00:41:00Z", 5);
		commit(f);

		/* 00:00 to 00:40 in one run: no gap, one minimum */
		assert_int_equal(compute_ms(f, id, &runs), 40 * 60000);
		assert_int_equal(runs, 1);
	}
	struct vg_bill_meter_stats st;
	vg_bill_meter_get_stats(f->m, &st);
	assert_true(st.migrations >= 1);
	assert_true(st.elsewhere >= 1); /* the source's vanish after h2 took over */
}

/* No events: the source stops seeing the domain, the destination's poll
 * sees it within the same poll window. Disks and vNICs follow. */
static void test_migration_polls_only(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_usage u;
	int runs;
	const char *src[3] = {"2026-05-01T00:00:00Z", "2026-05-01T00:10:00Z",
			      "2026-05-01T00:20:00Z"};
	const double tx[3] = {0, 500, 1000};

	for (int i = 0; i < 3; i++) {
		begin_on(f, "h1", src[i]);
		inst(f, "m5", src[i], 1);
		disk(f, "m5-vda", "m5", src[i], 10737418240.0);
		nic(f, "m5-tap0", "m5", src[i], tx[i], 0);
		commit(f);
	}
	/* the source's report of the vanish arrives first */
	begin_on(f, "h1", "2026-05-01T00:30:00Z");
	event_d(f, "m5", VG_EV_STOPPED, "2026-05-01T00:30:00Z", VANISHED);
	inst(f, "m5", "2026-05-01T00:30:00Z", -1);
	disk(f, "m5-vda", "m5", "2026-05-01T00:30:00Z", -1);
	commit(f);
	/* the destination saw it at 00:25 (its own poll phase) */
	const char *dst[2] = {"2026-05-01T00:25:00Z", "2026-05-01T00:35:00Z"};
	const double tx2[2] = {300, 600};
	for (int i = 0; i < 2; i++) {
		begin_on(f, "h2", dst[i]);
		if (i == 0)
			event_d(f, "m5", VG_EV_STARTED, dst[i], "{\"derived\":true}");
		inst(f, "m5", dst[i], 1);
		disk(f, "m5-vda", "m5", dst[i], 10737418240.0);
		nic(f, "m5-tap0", "m5", dst[i], tx2[i], 0);
		commit(f);
	}
	begin_on(f, "h2", "2026-05-01T00:45:00Z");
	inst(f, "m5", "2026-05-01T00:45:00Z", 5);
	commit(f);

	/* running from 00:00 to the last time seen running, 00:35 */
	assert_int_equal(compute_ms(f, "m5", &runs), 35 * 60000);
	assert_int_equal(runs, 1);
	load(f, "2026-05", &u);
	assert_int_equal(nseg(&u, "m5-vda", VG_BILL_U_STORAGE), 1);
	const struct vg_bill_usage_seg *s = seg(&u, "m5-vda", VG_BILL_U_STORAGE, 0);
	assert_int_equal(s->start_ms, T("2026-05-01T00:00:00Z"));
	assert_int_equal(s->end_ms, T("2026-05-01T00:35:00Z")); /* last seen */
	int64_t sent = 0;
	for (size_t i = 0; i < u.nnet; i++)
		sent += u.net[i].tx;
	/* 1000 on h1, then h2's counter from zero: 300, +300 */
	assert_int_equal(sent, 1600);
	vg_bill_usage_clear(&u);
}

/* What is not a live migration stays two runs: a real shutdown, then a
 * boot elsewhere; or a domain seen elsewhere long after it vanished. A
 * host that no longer runs an instance cannot stop it. */
static void test_not_a_migration(void **state)
{
	struct fx *f = fx_get(state);
	int runs;

	begin_on(f, "h1", "2026-05-01T00:00:00Z");
	inst(f, "c1", "2026-05-01T00:00:00Z", 1);
	commit(f);
	begin_on(f, "h1", "2026-05-01T00:06:00Z");
	event_d(f, "c1", VG_EV_STOPPED, "2026-05-01T00:05:00Z",
		"{\"libvirt\":\"stopped\",\"reason\":\"shutdown\"}");
	event_d(f, "c1", VG_EV_UNDEFINED, "2026-05-01T00:05:10Z", NULL);
	commit(f);
	begin_on(f, "h2", "2026-05-01T00:08:00Z");
	event_d(f, "c1", VG_EV_STARTED, "2026-05-01T00:07:00Z",
		"{\"libvirt\":\"started\",\"reason\":\"booted\"}");
	inst(f, "c1", "2026-05-01T00:08:00Z", 1);
	commit(f);
	begin_on(f, "h2", "2026-05-01T00:10:00Z");
	event_d(f, "c1", VG_EV_STOPPED, "2026-05-01T00:09:00Z", NULL);
	inst(f, "c1", "2026-05-01T00:10:00Z", 5);
	commit(f);
	assert_int_equal(compute_ms(f, "c1", &runs), 7 * 60000);
	assert_int_equal(runs, 2);

	/* polls only, seen on h2 an hour after h1 lost it */
	const char *src[2] = {"2026-05-02T00:00:00Z", "2026-05-02T00:10:00Z"};
	for (int i = 0; i < 2; i++) {
		begin_on(f, "h1", src[i]);
		inst(f, "c2", src[i], 1);
		commit(f);
	}
	begin_on(f, "h1", "2026-05-02T00:20:00Z");
	inst(f, "c2", "2026-05-02T00:20:00Z", -1);
	commit(f);
	begin_on(f, "h2", "2026-05-02T01:20:00Z");
	inst(f, "c2", "2026-05-02T01:20:00Z", 1);
	commit(f);
	begin_on(f, "h2", "2026-05-02T01:30:00Z");
	inst(f, "c2", "2026-05-02T01:30:00Z", 1);
	commit(f);
	begin_on(f, "h2", "2026-05-02T01:40:00Z");
	inst(f, "c2", "2026-05-02T01:40:00Z", 5);
	commit(f);
	assert_int_equal(compute_ms(f, "c2", &runs), 20 * 60000);
	assert_int_equal(runs, 2);

	/* a shut-off definition left behind on h1 does not stop it on h2 */
	begin_on(f, "h2", "2026-05-03T00:00:00Z");
	inst(f, "c3", "2026-05-03T00:00:00Z", 1);
	commit(f);
	begin_on(f, "h1", "2026-05-03T00:05:00Z");
	inst(f, "c3", "2026-05-03T00:05:00Z", 5);
	event_d(f, "c3", VG_EV_UNDEFINED, "2026-05-03T00:05:00Z", NULL);
	commit(f);
	begin_on(f, "h2", "2026-05-03T00:10:00Z");
	inst(f, "c3", "2026-05-03T00:10:00Z", 1);
	commit(f);
	begin_on(f, "h2", "2026-05-03T00:20:00Z");
	inst(f, "c3", "2026-05-03T00:20:00Z", 5);
	commit(f);
	assert_int_equal(compute_ms(f, "c3", &runs), 10 * 60000);
	assert_int_equal(runs, 1);
}

/* ---- a resize inside one poll interval ---------------------------------- */

/* What the collector's meter receives around a Nova resize done back to
 * back (destroy, define with the new flavor, start) on an agent polling
 * every second: each batch is one poll's observation of the instance and
 * the lifecycle events the agent had received by then. libvirt delivers
 * its events in order (STOPPED, then STARTED with the RESIZED the agent
 * adds), each stamped when received, which can be after a poll already
 * saw its effect; a poll that sees an effect before its event carries the
 * agent's own derived event instead, and the exact one comes in a later
 * batch. The agent re-reads the XML when the domain id changes, so the
 * first poll after the stop already shows the new flavor. Times are
 * milliseconds after 2026-10-01T00:00:00Z (vg_time_parse drops fractions
 * of a second). */
#define RS_STOP "{\"libvirt\":\"stopped\",\"reason\":\"destroyed\"}"
#define RS_START_TINY                                                         \
	"{\"libvirt\":\"started\",\"reason\":\"booted\",\"flavor\":\"tiny\"," \
	"\"vcpus\":1,\"memory_mb\":512}"
#define RS_START_BIG                                                         \
	"{\"libvirt\":\"started\",\"reason\":\"booted\",\"flavor\":\"big\"," \
	"\"vcpus\":2,\"memory_mb\":512}"
#define RS_RESIZED                                                       \
	"{\"flavor\":\"big\",\"vcpus\":2,\"memory_mb\":512,\"libvirt\":" \
	"\"started\",\"previous_vcpus\":1,\"previous_memory_mb\":512}"
#define RS_DERIVED "{\"derived\":true}"
#define RS_RESTART "{\"restarted\":true,\"derived\":true}"
#define RS_D_RESIZED                                                        \
	"{\"flavor\":\"big\",\"vcpus\":2,\"memory_mb\":512,\"disk_gb\":-1," \
	"\"derived\":true}"
#define RS_END 60500

struct rs_ev {
	int type;
	int64_t t;
	const char *detail;
};

struct rs_poll {
	int64_t t;
	int power; /* 1 running, 3 paused (QEMU starting), 5 shut off */
	struct rs_ev ev[3];
};

static void rs_inst(struct fx *f, const char *id, int64_t t, int power, int big)
{
	vg_batch_resource(f->b, VG_RT_INSTANCE, id, id, NULL, t);
	assert_int_equal(vg_batch_identity(f->b, "p", NULL, big ? "big" : "tiny"), 0);
	assert_int_equal(vg_batch_sample(f->b, "power.state", VG_KIND_GAUGE, power), 0);
	assert_int_equal(vg_batch_attr(f->b, "flavor_vcpus", big ? "2" : "1"), 0);
	assert_int_equal(vg_batch_attr(f->b, "flavor_memory_mb", "512"), 0);
}

static void rs_poll(struct fx *f, const char *id, const struct rs_poll *p, int big)
{
	int64_t t0 = T("2026-10-01T00:00:00Z");

	f->b = vg_batch_new("h1", 1, ++f->seq, t0 + p->t);
	assert_non_null(f->b);
	for (int k = 0; k < 3 && p->ev[k].type; k++)
		assert_int_equal(vg_batch_event(f->b, id, (uint8_t)p->ev[k].type,
						t0 + p->ev[k].t, p->ev[k].detail),
				 0);
	rs_inst(f, id, t0 + p->t, p->power, big);
	commit(f);
}

/* Replay polls[] between a run of the old flavor (started at 0, polled
 * up to 9.5 s) and a poll at RS_END: the usage must be the old flavor
 * from 0 to the stop's event td, nothing while stopped, the new flavor
 * from the start's event ts on. */
static void rs_run(struct fx *f, const char *id, int64_t td, int64_t ts,
		   const struct rs_poll *polls, size_t n)
{
	const struct rs_poll first = {500, 1, {{VG_EV_STARTED, 0, RS_START_TINY}}};
	const struct rs_poll before = {9500, 1, {{0}}};
	const struct rs_poll last = {RS_END, 1, {{0}}};
	int64_t t0 = T("2026-10-01T00:00:00Z");
	struct vg_bill_usage u;

	rs_poll(f, id, &first, 0);
	rs_poll(f, id, &before, 0);
	for (size_t i = 0; i < n; i++)
		rs_poll(f, id, &polls[i], 1);
	rs_poll(f, id, &last, 1);

	load(f, "2026-10", &u);
	size_t ns = nseg(&u, id, VG_BILL_U_COMPUTE);
	for (size_t i = 0; i < ns; i++) {
		const struct vg_bill_usage_seg *s = seg(&u, id, VG_BILL_U_COMPUTE, (int)i);
		printf("# %s: %s %lld..%lld ms, run %lld ms%s\n", id, s->flavor,
		       (long long)(s->start_ms - t0), (long long)(s->end_ms - t0),
		       (long long)s->run_ms, s->run_first ? ", first" : "");
	}
	assert_int_equal(ns, 2);
	const struct vg_bill_usage_seg *a = seg(&u, id, VG_BILL_U_COMPUTE, 0);
	const struct vg_bill_usage_seg *b = seg(&u, id, VG_BILL_U_COMPUTE, 1);
	assert_string_equal(a->flavor, "tiny");
	assert_int_equal(a->vcpus, 1);
	assert_int_equal(a->start_ms, t0);
	assert_int_equal(a->end_ms, t0 + td);
	assert_true(a->run_first);
	assert_int_equal(a->run_ms, td);
	assert_string_equal(b->flavor, "big");
	assert_int_equal(b->vcpus, 2);
	assert_int_equal(b->start_ms, t0 + ts);
	assert_true(b->run_first);
	assert_int_equal(b->end_ms, t0 + RS_END);
	vg_bill_usage_clear(&u);
}

#define EV(ty, t, d)             \
	{                        \
		VG_EV_##ty, t, d \
	}

/* The first poll after the stop falls between the redefinition and the
 * start: shut off, with the new flavor (the agent derives a RESIZED). */
static void test_resize_seen_stopped(void **state)
{
	struct fx *f = fx_get(state);

	/* the stop received before that poll; the start before the next
	 * one, or after a poll saw QEMU starting up (paused) */
	const struct rs_poll a1[] = {
		{10500, 5, {EV(STOPPED, 10100, RS_STOP), EV(RESIZED, 10500, RS_D_RESIZED)}},
		{11500, 1, {EV(STARTED, 10900, RS_START_BIG), EV(RESIZED, 10900, RS_RESIZED)}},
	};
	rs_run(f, "rs-a1", 10100, 10900, a1, 2);
	const struct rs_poll a2[] = {
		{10500, 5, {EV(STOPPED, 10100, RS_STOP), EV(RESIZED, 10500, RS_D_RESIZED)}},
		{11500, 3, {EV(STARTED, 11500, RS_DERIVED)}},
		{12500, 1, {EV(STARTED, 11700, RS_START_BIG), EV(RESIZED, 11700, RS_RESIZED)}},
	};
	rs_run(f, "rs-a2", 10100, 11700, a2, 3);
	/* the stop received (and stamped) after that poll */
	const struct rs_poll a3[] = {
		{10500, 5, {EV(STOPPED, 10500, RS_DERIVED), EV(RESIZED, 10500, RS_D_RESIZED)}},
		{11500, 1, {EV(STOPPED, 10600, RS_STOP), EV(STARTED, 10900, RS_START_BIG), EV(RESIZED, 10900, RS_RESIZED)}},
	};
	rs_run(f, "rs-a3", 10600, 10900, a3, 2);
	const struct rs_poll a4[] = {
		{10500, 5, {EV(STOPPED, 10500, RS_DERIVED), EV(RESIZED, 10500, RS_D_RESIZED)}},
		{11500, 3, {EV(STOPPED, 10600, RS_STOP), EV(STARTED, 11500, RS_DERIVED)}},
		{12500, 1, {EV(STARTED, 11800, RS_START_BIG), EV(RESIZED, 11800, RS_RESIZED)}},
	};
	rs_run(f, "rs-a4", 10600, 11800, a4, 3);
}

/* The first poll after the stop comes after the start: running (or QEMU
 * still paused starting up) with a new domain id, which the agent reports
 * as a restart at that poll, with a RESIZED, for what it has not received
 * an exact event of yet. */
static void test_resize_seen_restarted(void **state)
{
	struct fx *f = fx_get(state);

	const struct rs_poll b1[] = {
		{11200, 3, {EV(STOPPED, 10100, RS_STOP), EV(STARTED, 10900, RS_START_BIG), EV(RESIZED, 10900, RS_RESIZED)}},
	};
	rs_run(f, "rs-b1", 10100, 10900, b1, 1);
	/* the start received after the poll: stamped before it, or after */
	const struct rs_poll b2[] = {
		{11200, 3, {EV(STOPPED, 10100, RS_STOP), EV(STARTED, 11200, RS_RESTART), EV(RESIZED, 11200, RS_D_RESIZED)}},
		{12200, 1, {EV(STARTED, 10900, RS_START_BIG), EV(RESIZED, 10900, RS_RESIZED)}},
	};
	rs_run(f, "rs-b2", 10100, 10900, b2, 2);
	const struct rs_poll b3[] = {
		{11200, 3, {EV(STOPPED, 10100, RS_STOP), EV(STARTED, 11200, RS_RESTART), EV(RESIZED, 11200, RS_D_RESIZED)}},
		{12200, 1, {EV(STARTED, 11600, RS_START_BIG), EV(RESIZED, 11600, RS_RESIZED)}},
	};
	rs_run(f, "rs-b3", 10100, 11600, b3, 2);
	/* neither received by that poll */
	const struct rs_poll b4[] = {
		{11200, 3, {EV(STOPPED, 11200, RS_RESTART), EV(STARTED, 11200, RS_RESTART), EV(RESIZED, 11200, RS_D_RESIZED)}},
		{12200, 1, {EV(STOPPED, 10100, RS_STOP), EV(STARTED, 10900, RS_START_BIG), EV(RESIZED, 10900, RS_RESIZED)}},
	};
	rs_run(f, "rs-b4", 10100, 10900, b4, 2);
	const struct rs_poll b5[] = {
		{11200, 3, {EV(STOPPED, 11200, RS_RESTART), EV(STARTED, 11200, RS_RESTART), EV(RESIZED, 11200, RS_D_RESIZED)}},
		{12200, 1, {EV(STOPPED, 11300, RS_STOP), EV(STARTED, 11900, RS_START_BIG), EV(RESIZED, 11900, RS_RESIZED)}},
	};
	rs_run(f, "rs-b5", 11300, 11900, b5, 2);
}

/* The same restart with no exact event ever received (the agent's event
 * connection was down): polling's accuracy, the old flavor until its last
 * sighting, the new one from the first; the start the agent derived at
 * that poll must not keep the flavor known before its RESIZED. */
static void test_resize_polls_only(void **state)
{
	struct fx *f = fx_get(state);

	const struct rs_poll c1[] = {
		{11200, 3, {EV(STOPPED, 11200, RS_RESTART), EV(STARTED, 11200, RS_RESTART), EV(RESIZED, 11200, RS_D_RESIZED)}},
	};
	rs_run(f, "rs-c1", 9500, 11200, c1, 1);
}

/* A batch of many instances, each with a disk and a vNIC: more rows than
 * one statement reads or writes (the meter reads the batch's rows 128 at a
 * time and writes them 64/16/4/1 at a time), an event and an observation
 * of the same instance in one batch, disks marking an instance of the same
 * batch as having disks. The result is the one each resource alone gives. */
#define MANY 150
static void test_many_in_one_batch(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_usage u;
	char id[32], did[32], nid[32];
	int64_t tx[2] = {0, 0};

	for (int poll = 0; poll < 2; poll++) {
		const char *t = poll ? "2026-06-01T01:10:00Z" : "2026-06-01T00:50:00Z";
		begin(f, t);
		if (poll)
			event(f, "m0", VG_EV_STOPPED, "2026-06-01T01:05:00Z");
		for (int i = 0; i < MANY; i++) {
			snprintf(id, sizeof(id), "m%d", i);
			snprintf(did, sizeof(did), "m%d-vda", i);
			snprintf(nid, sizeof(nid), "m%d-tap0", i);
			inst(f, id, t, poll && i == 0 ? 5 : 1);
			/* a root disk in the flavor, billed only while no disk
			 * of the instance is seen */
			assert_int_equal(vg_batch_attr(f->b, "flavor_disk_gb", "20"), 0);
			disk(f, did, id, t, 10737418240.0);
			nic(f, nid, id, t, poll ? 1000 : 0, poll ? 2000 + i : 0);
		}
		commit(f);
	}
	load(f, "2026-06", &u);
	for (int i = 0; i < MANY; i++) {
		snprintf(id, sizeof(id), "m%d", i);
		snprintf(did, sizeof(did), "m%d-vda", i);
		assert_int_equal(nseg(&u, id, VG_BILL_U_COMPUTE), 1);
		const struct vg_bill_usage_seg *s = seg(&u, id, VG_BILL_U_COMPUTE, 0);
		assert_int_equal(s->start_ms, T("2026-06-01T00:50:00Z"));
		assert_int_equal(s->run_ms, i == 0 ? 15 * 60000 : -1);
		/* its disk is seen: no root disk from the flavor */
		assert_int_equal(nseg(&u, id, VG_BILL_U_STORAGE), 0);
		assert_int_equal(nseg(&u, did, VG_BILL_U_STORAGE), 1);
		assert_int_equal(seg(&u, did, VG_BILL_U_STORAGE, 0)->bytes, 10737418240LL);
	}
	/* 1000 bytes sent by each vNIC over 00:50-01:10: half in each hour */
	int64_t rx = 0;
	assert_int_equal(u.nnet, 2 * MANY);
	for (size_t i = 0; i < u.nnet; i++) {
		int h = u.net[i].hour_ms == T("2026-06-01T01:00:00Z");
		assert_true(h || u.net[i].hour_ms == T("2026-06-01T00:00:00Z"));
		assert_int_equal(u.net[i].tx, 500);
		tx[h] += u.net[i].tx;
		rx += u.net[i].rx;
	}
	assert_int_equal(tx[0], 500 * MANY);
	assert_int_equal(tx[1], 500 * MANY);
	assert_int_equal(rx, 2000 * MANY + MANY * (MANY - 1) / 2);
	vg_bill_usage_clear(&u);
	struct vg_bill_meter_stats st;
	vg_bill_meter_get_stats(f->m, &st);
	assert_int_equal(st.observations, 2 * 3 * MANY);
	assert_int_equal(st.stale, 2 * 3 * MANY); /* each batch re-delivered */
}

/* Six polls ten minutes apart, of the sightings cases. */
static const char *const polls_10min[] = {
	"2026-07-01T00:00:00Z",
	"2026-07-01T00:10:00Z",
	"2026-07-01T00:20:00Z",
	"2026-07-01T00:30:00Z",
	"2026-07-01T00:40:00Z",
	"2026-07-01T00:50:00Z",
};

/* One integer from the meter's database (both engines). */
static int64_t db_int(struct fx *f, const char *sql)
{
	struct vg_db_stmt *s;
	int64_t v = INT64_MIN;
	assert_int_equal(vg_db_prepare(vg_bill_meter_db(f->m), sql, &s), 0);
	if (vg_db_step(s) == 1)
		v = vg_db_column_int64(s, 0);
	vg_db_reset(s);
	return v;
}

/* A poll that sees the same resources as the last one writes the host's
 * sightings row, not each resource's row; a resource the poll no longer
 * sees keeps its last sighting (its run is not extended), one that
 * appears joins, and usage reads each resource's sighting exactly. */
static void test_sightings_per_host(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_usage u;
	const char *const *t = polls_10min;

	for (int p = 0; p < 6; p++) {
		begin(f, t[p]);
		inst(f, "a", t[p], 1);
		disk(f, "a-vda", "a", t[p], 1073741824.0);
		nic(f, "a-tap0", "a", t[p], 1000.0 * p, 0);
		inst(f, "b", t[p], 1);
		if (p < 3) /* c vanishes after 00:20 (no event, no ended poll) */
			inst(f, "c", t[p], 1);
		if (p >= 4) /* d appears at 00:40 */
			inst(f, "d", t[p], 1);
		commit(f);
	}
	load(f, "2026-07", &u);
	const struct vg_bill_usage_seg *s = seg(&u, "a", VG_BILL_U_COMPUTE, 0);
	assert_non_null(s);
	assert_int_equal(s->start_ms, T(t[0]));
	assert_int_equal(s->end_ms, T(t[5]));
	s = seg(&u, "a-vda", VG_BILL_U_STORAGE, 0);
	assert_non_null(s);
	assert_int_equal(s->end_ms, T(t[5]));
	s = seg(&u, "c", VG_BILL_U_COMPUTE, 0);
	assert_non_null(s);
	assert_int_equal(s->start_ms, T(t[0]));
	assert_int_equal(s->end_ms, T(t[2]));
	assert_int_equal(nseg(&u, "c", VG_BILL_U_COMPUTE), 1);
	s = seg(&u, "d", VG_BILL_U_COMPUTE, 0);
	assert_non_null(s);
	assert_int_equal(s->start_ms, T(t[4]));
	assert_int_equal(s->end_ms, T(t[5]));
	int64_t tx = 0;
	for (size_t i = 0; i < u.nnet; i++)
		tx += u.net[i].tx;
	assert_int_equal(tx, 5000);
	vg_bill_usage_clear(&u);

	/* a's own row was last written at 00:30, when c's absence started a
	 * new generation; the polls at 00:40 and 00:50 moved only the host's
	 * sightings (its vNIC's row moves with its counters) */
	assert_int_equal(db_int(f, "SELECT last_seen_ms FROM resources WHERE id='a'"), T(t[3]));
	assert_int_equal(db_int(f, "SELECT last_seen_ms FROM resources WHERE id='a-vda'"),
			 T(t[3]));
	assert_int_equal(db_int(f, "SELECT last_seen_ms FROM resources WHERE id='a-tap0'"),
			 T(t[5]));
	assert_int_equal(db_int(f, "SELECT max(time_ms) FROM sightings WHERE host='h1'"), T(t[5]));
}

/* A resource that comes and goes starts a new generation at each
 * absence and joins the current one when it is seen again, leaving its
 * old generation named by no row: those are deleted, so a host keeps a
 * bounded number of sightings rows (without it: one per absence), and
 * no row ever names a generation that is gone. */
static void test_sightings_gc(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_usage u;
	char t[32];

	for (int p = 0; p < 24; p++) {
		snprintf(t, sizeof(t), "2026-07-01T%02d:%02d:00Z", p / 6, p % 6 * 10);
		begin(f, t);
		inst(f, "a", t, 1);
		if (p % 2 == 0) /* b is seen at every other poll */
			inst(f, "b", t, 1);
		commit(f);
		assert_true(db_int(f, "SELECT count(*) FROM sightings WHERE host='h1'") <= 3);
		assert_int_equal(db_int(f, "SELECT count(*) FROM resources r WHERE "
					   "r.sight_gen IS NOT NULL AND NOT EXISTS(SELECT 1 FROM "
					   "sightings s WHERE s.host=r.host AND s.gen=r.sight_gen)"),
				 0);
	}
	/* several generations were started, and the last sightings are exact */
	assert_true(db_int(f, "SELECT max(gen) FROM sightings WHERE host='h1'") >= 12);
	load(f, "2026-07", &u);
	const struct vg_bill_usage_seg *s = seg(&u, "a", VG_BILL_U_COMPUTE, 0);
	assert_non_null(s);
	assert_int_equal(s->end_ms, T("2026-07-01T03:50:00Z"));
	assert_int_equal(nseg(&u, "a", VG_BILL_U_COMPUTE), 1);
	assert_true(nseg(&u, "b", VG_BILL_U_COMPUTE) >= 1);
	int64_t last = 0;
	for (int i = 0; (s = seg(&u, "b", VG_BILL_U_COMPUTE, i)); i++)
		if (s->end_ms > last)
			last = s->end_ms;
	assert_int_equal(last, T("2026-07-01T03:40:00Z"));
	vg_bill_usage_clear(&u);
}

/* A resource seen again after an absence names the generation it was a
 * member of until it vanished, whose time moved past the resource's own
 * columns while it was a member: its last sighting is that generation's
 * time, not its own row's, on both engines (PostgreSQL's read looks such
 * a row's generation up itself; the batch host's current one comes with
 * the statement). Seen shut off when it comes back, it stopped at that
 * last sighting. */
static void test_sightings_old_generation(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_usage u;
	const char *const *t = polls_10min;

	for (int p = 0; p < 6; p++) {
		begin(f, t[p]);
		inst(f, "a", t[p], 1);
		if (p < 4) /* b runs until 00:30, is away at 00:40 */
			inst(f, "b", t[p], 1);
		else if (p == 5) /* and is back, shut off, at 00:50 */
			inst(f, "b", t[p], 5);
		commit(f);
	}
	/* b's own row was written at 00:00; its generation moved to 00:30 */
	load(f, "2026-07", &u);
	assert_int_equal(nseg(&u, "b", VG_BILL_U_COMPUTE), 1);
	const struct vg_bill_usage_seg *s = seg(&u, "b", VG_BILL_U_COMPUTE, 0);
	assert_non_null(s);
	assert_int_equal(s->start_ms, T(t[0]));
	assert_int_equal(s->end_ms, T(t[3]));
	vg_bill_usage_clear(&u);
}

/* Every row of table in m's database, one line per row, sorted (so the
 * dump of two databases of one engine compares whatever the row order). */
/* One poll of host h: n instances, each with a disk and a vNIC whose
 * counters move, so the vNICs' rows are written by the bulk update. */
static void plan_poll(struct fx *f, int h, int n, int poll)
{
	char host[16], id[32], did[40], nid[40], t[32];

	snprintf(host, sizeof(host), "ph%d", h);
	snprintf(t, sizeof(t), "2026-08-01T%02d:%02d:00Z", poll / 60, poll % 60);
	begin_on(f, host, t);
	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "ph%d-m%d", h, i);
		snprintf(did, sizeof(did), "%s-vda", id);
		snprintf(nid, sizeof(nid), "%s-tap0", id);
		inst(f, id, t, 1);
		disk(f, did, id, t, 10737418240.0);
		nic(f, nid, id, t, 1000.0 * poll, 2000.0 * poll);
	}
	dispatch(f);
	vg_batch_free(f->b);
	f->b = NULL;
}

/* The plan the meter's connection keeps for its prepared statement whose
 * text starts with head and that ran a generic plan (args: parameters
 * for EXPLAIN EXECUTE), in out: "" if there is none. */
static void cached_plan(struct fx *f, const char *head, const char *args, char *out,
			size_t len)
{
	struct vg_db *db = vg_bill_meter_db(f->m);
	struct vg_db_stmt *s;
	char sql[512], name[64] = "";
	size_t k = 0;

	snprintf(sql, sizeof(sql),
		 "SELECT name FROM pg_prepared_statements WHERE generic_plans > 0 AND "
		 "starts_with(statement, '%s')",
		 head);
	assert_int_equal(vg_db_prepare(db, sql, &s), 0);
	if (vg_db_step(s) == 1)
		snprintf(name, sizeof(name), "%s", vg_db_column_text(s, 0));
	vg_db_reset(s);
	out[0] = '\0';
	if (!*name)
		return;
	/* the kept plan, not one made for these arguments */
	assert_int_equal(vg_db_exec(db, "SET plan_cache_mode = force_generic_plan"), 0);
	snprintf(sql, sizeof(sql), "EXPLAIN EXECUTE %s(%s)", name, args);
	assert_int_equal(vg_db_prepare(db, sql, &s), 0);
	while (vg_db_step(s) == 1 && k < len)
		k += (size_t)snprintf(out + k, len - k, "%s\n", vg_db_column_text(s, 0));
	vg_db_reset(s);
	assert_int_equal(vg_db_exec(db, "RESET plan_cache_mode"), 0);
}

/* The plans the server keeps for the meter's read and bulk update fetch
 * each of the batch's rows by the primary key, at any size of billing's
 * resources and whatever its statistics say ("Keyed plans" in
 * billing/meter.c): checked on a table of 30 rows analyzed as such (where
 * the planner's costs chose a scan), and after 1,800 more rows analyzed
 * again. Neither plan scans the table or hashes it. */
static void assert_keyed(const char *what, const char *plan)
{
	print_message("# %s:\n%s", what, plan);
	assert_non_null(strstr(plan, "resources_pkey"));
	assert_null(strstr(plan, "Seq Scan on resources"));
	assert_null(strstr(plan, "Hash Join"));
	assert_null(strstr(plan, "Merge Join"));
}

static void test_plans_keyed(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_db *db = vg_bill_meter_db(f->m);
	char plan[8192], ids[1024], upd[2048], args[1100];
	size_t k = 0;
	int poll = 0;

	if (f->e->kind != VG_DB_POSTGRESQL) {
		printf("# SKIP sqlite: no plan kept between statements\n");
		return;
	}
	/* one host of 10 instances (30 rows, a page or two), analyzed, then
	 * polled until its statements run a generic plan */
	plan_poll(f, 0, 10, poll++);
	assert_int_equal(vg_db_exec(db, "ANALYZE resources"), 0);
	for (; poll < 9; poll++)
		plan_poll(f, 0, 10, poll);
	k += (size_t)snprintf(ids + k, sizeof(ids) - k, "'{");
	for (int i = 0; i < 10; i++)
		k += (size_t)snprintf(ids + k, sizeof(ids) - k, "%sph0-m%d,ph0-m%d-vda,ph0-m%d-tap0",
				      i ? "," : "", i, i, i);
	snprintf(ids + k, sizeof(ids) - k, "}'");
	snprintf(upd, sizeof(upd), "%s,'{1}','{1}','{1}','{1}','{1}','{x}','{1}','{1}',"
				   "'{1}','{1}','{1}','{1}','{1}','{1}','{1}'",
		 ids);
	snprintf(args, sizeof(args), "%s,'ph0'", ids);
	cached_plan(f, "SELECT r.id,", args, plan, sizeof(plan));
	assert_keyed("the read's plan on 30 rows", plan);
	cached_plan(f, "UPDATE resources SET first_ms=v.c2", upd, plan, sizeof(plan));
	assert_keyed("the bulk update's plan on 30 rows", plan);
	/* the network rows' statement still scans network_billed_months
	 * (no index on end_ms): priced out by the settings, which then priced
	 * it above jit_above_cost, and the server compiled it at each call */
	{
		struct vg_db_stmt *s;
		char name[64] = "", sql[128];
		size_t n = 0;
		assert_int_equal(vg_db_prepare(db,
					       "SELECT name FROM pg_prepared_statements WHERE "
					       "starts_with(statement, 'WITH v AS (VALUES (CAST($1 AS TEXT),"
					       "CAST($2 AS BIGINT),CAST($3 AS TEXT),CAST($4 AS BIGINT),"
					       "CAST($5 AS BIGINT))), pre')",
					       &s),
				 0);
		assert_int_equal(vg_db_step(s), 1);
		snprintf(name, sizeof(name), "%s", vg_db_column_text(s, 0));
		vg_db_reset(s);
		snprintf(sql, sizeof(sql), "EXPLAIN EXECUTE %s('p',1,'n',1,1)", name);
		assert_int_equal(vg_db_prepare(db, sql, &s), 0);
		plan[0] = '\0';
		while (vg_db_step(s) == 1 && n < sizeof(plan))
			n += (size_t)snprintf(plan + n, sizeof(plan) - n, "%s\n", vg_db_column_text(s, 0));
		vg_db_reset(s);
		print_message("# the network rows' plan:\n%s", plan);
		assert_non_null(strstr(plan, "network_billed_months"));
		assert_null(strstr(plan, "JIT"));
	}
	/* 40 more hosts of 15 instances: 1,830 rows, analyzed */
	for (int h = 1; h <= 40; h++)
		plan_poll(f, h, 15, poll);
	assert_int_equal(vg_db_exec(db, "ANALYZE resources"), 0);
	for (int i = 0; i < 8; i++, poll++)
		plan_poll(f, 0, 10, poll);
	cached_plan(f, "SELECT r.id,", args, plan, sizeof(plan));
	assert_keyed("the read's plan on 1,830 rows", plan);
	cached_plan(f, "UPDATE resources SET first_ms=v.c2", upd, plan, sizeof(plan));
	assert_keyed("the bulk update's plan on 1,830 rows", plan);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *dump(struct vg_bill_meter *m, const char *table)
{
	char sql[128], *rows[4096], *out;
	size_t n = 0, len = 1;
	struct vg_db_stmt *s;
	int rc;

	snprintf(sql, sizeof(sql), "SELECT * FROM %s", table);
	assert_int_equal(vg_db_prepare(vg_bill_meter_db(m), sql, &s), 0);
	while ((rc = vg_db_step(s)) == 1) {
		char line[2048];
		size_t l = 0;
		for (int c = 0; c < vg_db_column_count(s); c++) {
			const char *v = vg_db_column_text(s, c);
			l += (size_t)snprintf(line + l, sizeof(line) - l, "%s|",
					      vg_db_column_is_null(s, c) ? "NULL" : v);
		}
		assert_true(n < 4096);
		rows[n] = strdup(line);
		len += strlen(line) + 1;
		n++;
	}
	assert_int_equal(rc, 0);
	qsort(rows, n, sizeof(*rows), cmp_str);
	out = calloc(1, len);
	for (size_t i = 0; i < n; i++) {
		strcat(out, rows[i]);
		strcat(out, "\n");
		free(rows[i]);
	}
	return out;
}

/* The rows of every table of f->m and m2 are the same. */
static void same_tables(struct fx *f, struct vg_bill_meter *m2)
{
	static const char *const tables[] = {"resources", "transitions", "network",
					     "sightings", "bill_project_names"};

	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		char *a = dump(f->m, tables[i]), *b = dump(m2, tables[i]);
		if (!(strlen(a) > 0 || i >= 4))
			fail_msg("%s is empty", tables[i]);
		assert_string_equal(a, b);
		free(a);
		free(b);
	}
}

/* A day of polls of many instances (vNIC counters, a stop, a resize, an
 * instance that appears and one that ends) through the collector's path
 * and, on a second database of the same engine, through
 * vg_bill_meter_batch: the same rows in every table. On PostgreSQL each
 * batch of the first took the overlap. */
static void test_overlap_same_rows(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_meter *m2;
	char url[700], err[512], t[32], id[32], did[32], nid[32];
	int batches = 0;

	assert_int_equal(dbe_fresh(f->e, url, sizeof(url)), 0);
	if (vg_bill_meter_open(url, &m2, err, sizeof(err)))
		fail_msg("%s", err);
	for (int p = 0; p < 12; p++) {
		snprintf(t, sizeof(t), "2026-08-01T%02d:%02d:00Z", p / 6, p % 6 * 10);
		begin(f, t);
		if (p == 5)
			event(f, "i3", VG_EV_STOPPED, "2026-08-01T00:45:00Z");
		for (int i = 0; i < 12; i++) {
			if ((i == 11 && p < 4) || (i == 10 && p > 7))
				continue; /* appears at poll 4; ends after poll 7 */
			snprintf(id, sizeof(id), "i%d", i);
			snprintf(nid, sizeof(nid), "i%d-tap0", i);
			inst(f, id, t, i == 3 && p >= 5 ? 5 : 1);
			if (i == 7 && p >= 6) /* resized */
				assert_int_equal(vg_batch_attr(f->b, "flavor_vcpus", "4"), 0);
			snprintf(did, sizeof(did), "i%d-vda", i);
			disk(f, did, id, t, 10737418240.0 + i);
			nic(f, nid, id, t, 1000.0 * p * (i + 1), 500.0 * p);
		}
		dispatch(f);
		assert_int_equal(vg_bill_meter_batch(m2, f->b), 0);
		batches++;
		vg_batch_free(f->b);
		f->b = NULL;
	}
	same_tables(f, m2);
	assert_int_equal(vg_bill_meter_overlapped(f->m),
			 f->e->kind == VG_DB_POSTGRESQL ? batches : 0);
	assert_int_equal(vg_bill_meter_overlapped(m2), 0);
	vg_bill_meter_close(m2);
}

/* A consumer before the meter asks for a retry: the meter's batch() is
 * not called, its end() rolls back what begin() sent (PostgreSQL: the
 * transaction and its advisory locks), nothing is written, and the same
 * batch goes through when sent again. */
static void test_overlap_retry_rolls_back(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_db *db = vg_bill_meter_db(f->m);

	begin(f, "2026-08-01T00:00:00Z");
	inst(f, "a", "2026-08-01T00:00:00Z", 1);
	chain(f);
	f->before_ret = -EAGAIN;
	assert_int_equal(vg_dispatch_batch(&f->d, f->b), -EAGAIN);
	assert_false(vg_db_in_transaction(db));
	assert_int_equal(db_int(f, "SELECT count(*) FROM resources"), 0);
	if (f->e->kind == VG_DB_POSTGRESQL)
		assert_int_equal(db_int(f, "SELECT count(*) FROM pg_locks WHERE "
					   "locktype='advisory'"),
				 0);
	f->before_ret = 0;
	f->between = 0;
	assert_int_equal(vg_dispatch_batch(&f->d, f->b), 0);
	assert_int_equal(f->between, 2);
	assert_false(vg_db_in_transaction(db));
	assert_int_equal(db_int(f, "SELECT count(*) FROM resources"), 1);
	assert_int_equal(vg_bill_meter_overlapped(f->m),
			 f->e->kind == VG_DB_POSTGRESQL ? 1 : 0);
	vg_batch_free(f->b);
	f->b = NULL;
}

/* The batches of one poll of hosts h0..h<n-1> at t (three instances each,
 * with a disk and a vNIC whose counters grow with p). */
static void group_polls(struct fx *f, struct vg_batch **bs, int n, int p)
{
	char t[32], host[16], id[32], did[32], nid[32];

	snprintf(t, sizeof(t), "2026-08-01T%02d:%02d:00Z", p / 6, p % 6 * 10);
	for (int h = 0; h < n; h++) {
		snprintf(host, sizeof(host), "h%d", h);
		begin_on(f, host, t);
		for (int i = 0; i < 3; i++) {
			snprintf(id, sizeof(id), "h%d-i%d", h, i);
			snprintf(did, sizeof(did), "h%d-i%d-vda", h, i);
			snprintf(nid, sizeof(nid), "h%d-i%d-tap0", h, i);
			inst(f, id, t, h == 1 && i == 2 && p >= 3 ? 5 : 1);
			disk(f, did, id, t, 10737418240.0);
			nic(f, nid, id, t, 1000.0 * p * (i + 1), 700.0 * p);
		}
		bs[h] = f->b;
		f->b = NULL;
	}
}

static struct vg_bill_meter *second_meter(struct fx *f)
{
	struct vg_bill_meter *m2;
	char url[700], err[512];

	assert_int_equal(dbe_fresh(f->e, url, sizeof(url)), 0);
	if (vg_bill_meter_open(url, &m2, err, sizeof(err)))
		fail_msg("%s", err);
	return m2;
}

/* Polls of four hosts handed to the chain as groups (the receiver's group
 * commit): one transaction per group, the same rows as each batch applied
 * alone on a second database (on PostgreSQL with each batch's locks and
 * read sent ahead, behind the previous batch's writes), and nothing left
 * open. */
static void test_group_same_rows(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_meter *m2 = second_meter(f);
	struct vg_batch *bs[4];
	int rcs[4];

	chain(f);
	for (int p = 0; p < 8; p++) {
		group_polls(f, bs, 4, p);
		f->between = 0;
		vg_dispatch_group(&f->d, (const struct vg_batch *const *)bs, 4, rcs);
		assert_int_equal(f->between, 8); /* both others saw each batch */
		for (int h = 0; h < 4; h++) {
			assert_int_equal(rcs[h], 0);
			assert_int_equal(vg_bill_meter_batch(m2, bs[h]), 0);
		}
		assert_false(vg_db_in_transaction(vg_bill_meter_db(f->m)));
		for (int h = 0; h < 4; h++)
			vg_batch_free(bs[h]);
	}
	same_tables(f, m2);
	assert_int_equal(vg_bill_meter_groups(f->m), 8);
	assert_int_equal(vg_bill_meter_group_fallbacks(f->m), 0);
	/* on PostgreSQL every batch's read was sent ahead */
	assert_int_equal(vg_bill_meter_overlapped(f->m), f->e->kind == VG_DB_POSTGRESQL ? 32 : 0);
	{
		struct vg_bill_meter_stats st;
		vg_bill_meter_get_stats(f->m, &st);
		assert_int_equal(st.batches, 32);
	}
	vg_bill_meter_close(m2);
}

/* The meter's server connection, ended by another session (as a failover
 * or an administrator would): PostgreSQL only. */
static void kill_backend(struct fx *f, int64_t pid)
{
	struct vg_db *killer;
	char sql[96], err[256];

	assert_int_equal(vg_db_open(f->db, NULL, &killer, err, sizeof(err)), 0);
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%lld)", (long long)pid);
	assert_int_equal(vg_db_exec(killer, sql), 0);
	vg_db_close(killer);
	usleep(100 * 1000); /* the backend exits; the next call finds out */
}

/* A group whose transaction fails for real (the server ends the meter's
 * connection in the middle of the group, then right before its COMMIT):
 * nothing is lost and nothing counted twice. In the middle, the group is
 * rolled back and each batch applied again alone (all answered 0); at
 * the COMMIT, the outcome is unknown, every batch is answered -EAGAIN and
 * the re-sent group applies them once. The rows equal those of each
 * batch applied once on a second database (the vNIC bytes, added by an
 * additive upsert, included). */
static void test_group_failure_loses_nothing(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_meter *m2;
	struct vg_consumer mc;
	struct vg_consumer_hooks h = vg_bill_meter_hooks();
	struct vg_batch *bs[3];
	int rcs[3];

	if (f->e->kind != VG_DB_POSTGRESQL)
		skip(); /* ending a session needs a server */
	m2 = second_meter(f);
	mc = vg_bill_meter_consumer(f->m);
	for (int p = 0; p < 6; p++) {
		int64_t pid = db_int(f, "SELECT pg_backend_pid()");

		group_polls(f, bs, 3, p);
		memset(rcs, 0, sizeof(rcs));
		/* the dispatcher's calls, with the kill between them */
		h.group_begin(mc.ctx, (const struct vg_batch *const *)bs, 3);
		for (int k = 0; k < 3; k++) {
			if (p == 2 && k == 1)
				kill_backend(f, pid); /* in the middle */
			assert_int_equal(mc.batch(mc.ctx, bs[k]), 0);
		}
		if (p == 4)
			kill_backend(f, pid); /* before the COMMIT */
		h.group_end(mc.ctx, (const struct vg_batch *const *)bs, 3, rcs);
		assert_false(vg_db_in_transaction(vg_bill_meter_db(f->m)));
		for (int k = 0; k < 3; k++)
			assert_int_equal(rcs[k], p == 4 ? -EAGAIN : 0);
		if (p == 4) { /* the agents send them again */
			chain(f);
			vg_dispatch_group(&f->d, (const struct vg_batch *const *)bs, 3, rcs);
			for (int k = 0; k < 3; k++)
				assert_int_equal(rcs[k], 0);
		}
		for (int k = 0; k < 3; k++) {
			assert_int_equal(vg_bill_meter_batch(m2, bs[k]), 0);
			vg_batch_free(bs[k]);
		}
	}
	same_tables(f, m2);
	assert_int_equal(vg_bill_meter_group_fallbacks(f->m), 1); /* p == 2 */
	assert_int_equal(vg_bill_meter_groups(f->m), 5);          /* p 0,1,3,5 + resent */
	vg_bill_meter_close(m2);
}

/* Two collectors' meters apply groups of three batches at once, on one
 * database, each group locking the same things as the other in the
 * opposite order. The interleaving is made certain: a third session
 * holds what both groups' middle batches need, both groups run until
 * their server sessions wait on a lock (pg_stat_activity), and only then
 * is it released. Locked batch by batch, each group would then hold what
 * the other waits for: the server detects the deadlock after
 * deadlock_timeout and aborts one group, which is applied again batch by
 * batch (a group fallback). */
struct lock_grouper {
	struct vg_bill_meter *m;
	struct vg_batch *bs[3];
	int rcs[3];
};

static void *group_apply(void *arg)
{
	struct lock_grouper *g = arg;
	struct vg_consumer mc = vg_bill_meter_consumer(g->m);
	struct vg_consumer_hooks h = vg_bill_meter_hooks();
	const struct vg_batch *const *bs = (const struct vg_batch *const *)g->bs;

	h.group_begin(mc.ctx, bs, 3);
	for (int k = 0; k < 3; k++)
		g->rcs[k] = mc.batch(mc.ctx, g->bs[k]);
	h.group_end(mc.ctx, bs, 3, g->rcs);
	return NULL;
}

/* Run groups a and b at once while a third session holds what hold_sql
 * locks (in a transaction, until both wait), then check that both
 * groups committed as groups: no deadlock, no fallback. Frees their
 * batches and b's meter. */
static void race_groups(struct fx *f, struct lock_grouper *a, struct lock_grouper *b,
			const char *hold_sql)
{
	struct vg_db *hold, *obs;
	struct vg_db_stmt *s;
	pthread_t ta, tb;
	char err[512];
	uint64_t fallbacks;
	int waited;

	assert_int_equal(vg_db_open(f->db, NULL, &hold, err, sizeof(err)), 0);
	assert_int_equal(vg_db_open(f->db, NULL, &obs, err, sizeof(err)), 0);
	assert_int_equal(vg_db_begin(hold), 0);
	assert_int_equal(vg_db_prepare(hold, hold_sql, &s), 0);
	assert_int_equal(vg_db_step(s), 1);
	vg_db_reset(s);
	assert_int_equal(pthread_create(&ta, NULL, group_apply, a), 0);
	assert_int_equal(pthread_create(&tb, NULL, group_apply, b), 0);
	waited = lock_waiters(obs, 2);
	/* release it whatever happened, so the threads end */
	assert_int_equal(vg_db_commit(hold), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	if (waited)
		fail_msg("the groups never both waited on a lock");
	for (int k = 0; k < 3; k++) {
		assert_int_equal(a->rcs[k], 0);
		assert_int_equal(b->rcs[k], 0);
	}
	/* no deadlock: neither group was broken and applied again alone */
	fallbacks = vg_bill_meter_group_fallbacks(a->m) + vg_bill_meter_group_fallbacks(b->m);
	if (fallbacks)
		fail_msg("%llu group(s) broken (deadlock detected) and applied again "
			 "batch by batch",
			 (unsigned long long)fallbacks);
	assert_int_equal(vg_bill_meter_groups(a->m) + vg_bill_meter_groups(b->m), 2);
	for (int k = 0; k < 3; k++) {
		vg_batch_free(a->bs[k]);
		vg_batch_free(b->bs[k]);
	}
	vg_db_close(hold);
	vg_db_close(obs);
	vg_bill_meter_close(b->m);
}

/* Polls of instances (a's, then b's) for groups of three hosts each. */
static void race_batches(struct fx *f, struct lock_grouper *a, struct lock_grouper *b,
			 void (*add)(struct fx *f, const char *group, int k))
{
	const char *t = "2026-08-01T00:00:00Z";
	char host[8];

	for (int k = 0; k < 3; k++) {
		snprintf(host, sizeof(host), "ha%d", k);
		begin_on(f, host, t);
		add(f, "a", k);
		a->bs[k] = f->b;
		snprintf(host, sizeof(host), "hb%d", k);
		begin_on(f, host, t);
		add(f, "b", k);
		b->bs[k] = f->b;
		f->b = NULL;
	}
}

static int need_pg(struct fx *f)
{
	if (f->e->kind == VG_DB_POSTGRESQL)
		return 1;
	printf("# SKIP sqlite: one writer at a time, no locks to take in two "
	       "orders\n");
	return 0;
}

static struct vg_bill_meter *meter_on(struct fx *f)
{
	struct vg_bill_meter *m;
	char err[512];

	if (vg_bill_meter_open(f->db, &m, err, sizeof(err)))
		fail_msg("%s", err);
	return m;
}

/* Groups (Y, K, X) and (X, K, Y) of instances: the resources' own locks.
 * The holder has K's lock (the meter's advisory key for an id). */
static void add_shared_instance(struct fx *f, const char *group, int k)
{
	static const char *const a_ids[3] = {"Y", "K", "X"}, *const b_ids[3] = {"X", "K", "Y"};

	inst(f, *group == 'a' ? a_ids[k] : b_ids[k], "2026-08-01T00:00:00Z", 1);
}

static void test_group_lock_order(void **state)
{
	struct fx *f = fx_get(state);
	struct lock_grouper a = {0}, b = {0};

	if (!need_pg(f))
		skip();
	a.m = f->m;
	b.m = meter_on(f);
	race_batches(f, &a, &b, add_shared_instance);
	race_groups(f, &a, &b, "SELECT count(pg_advisory_xact_lock(hashtextextended('K', 0)))");
	assert_int_equal(db_int(f, "SELECT count(*) FROM resources WHERE id IN ('X','Y','K')"), 3);
}

/* Groups of instances of their own, whose projects' names (project_name)
 * are (P1, PX, P2) and (P2, PX, P1): the rows of bill_project_names,
 * which the meter writes with an upsert that locks the row. The holder
 * has PX's row (SELECT ... FOR UPDATE). */
static void add_named_project(struct fx *f, const char *group, int k)
{
	static const char *const a_pr[3] = {"P1", "PX", "P2"}, *const b_pr[3] = {"P2", "PX", "P1"};
	const char *pr = *group == 'a' ? a_pr[k] : b_pr[k];
	char id[16];

	snprintf(id, sizeof(id), "n%s%d", group, k);
	vg_batch_resource(f->b, VG_RT_INSTANCE, id, id, NULL, T("2026-08-01T00:00:00Z"));
	assert_int_equal(vg_batch_identity(f->b, pr, NULL, "m1.small"), 0);
	assert_int_equal(vg_batch_sample(f->b, "power.state", VG_KIND_GAUGE, 1), 0);
	assert_int_equal(vg_batch_attr(f->b, "project_name", pr + 1), 0);
}

static void test_group_names_lock_order(void **state)
{
	struct fx *f = fx_get(state);
	struct lock_grouper a = {0}, b = {0};

	if (!need_pg(f))
		skip();
	/* PX's row exists (the holder locks it); the groups' meters are new,
	 * so each writes every name it sees */
	begin_on(f, "h0", "2026-07-31T00:00:00Z");
	add_named_project(f, "a", 1);
	assert_int_equal(vg_bill_meter_batch(f->m, f->b), 0);
	vg_batch_free(f->b);
	f->b = NULL;
	a.m = meter_on(f);
	b.m = meter_on(f);
	race_batches(f, &a, &b, add_named_project);
	race_groups(f, &a, &b, "SELECT name FROM vigie_billing.bill_project_names WHERE project = 'PX' "
			       "FOR UPDATE");
	assert_int_equal(db_int(f, "SELECT count(*) FROM bill_project_names"), 3);
	vg_bill_meter_close(a.m);
}

/* Groups of disks of their own, whose instances (not in the batches)
 * are (Q1, QX, Q2) and (Q2, QX, Q1): a disk's first sighting marks its
 * instance's row as having disks (an UPDATE that locks that row). The
 * holder has QX's row (SELECT ... FOR UPDATE). */
static void add_disk_of(struct fx *f, const char *group, int k)
{
	static const char *const a_par[3] = {"Q1", "QX", "Q2"}, *const b_par[3] = {"Q2", "QX", "Q1"};
	char id[16];

	snprintf(id, sizeof(id), "d%s%d", group, k);
	disk(f, id, *group == 'a' ? a_par[k] : b_par[k], "2026-08-01T00:00:00Z", 10737418240.0);
}

static void test_group_parent_lock_order(void **state)
{
	struct fx *f = fx_get(state);
	struct lock_grouper a = {0}, b = {0};

	if (!need_pg(f))
		skip();
	/* the instances, without disks so far */
	begin_on(f, "h0", "2026-07-31T00:00:00Z");
	inst(f, "Q1", "2026-07-31T00:00:00Z", 1);
	inst(f, "Q2", "2026-07-31T00:00:00Z", 1);
	inst(f, "QX", "2026-07-31T00:00:00Z", 1);
	assert_int_equal(vg_bill_meter_batch(f->m, f->b), 0);
	vg_batch_free(f->b);
	f->b = NULL;
	a.m = f->m;
	b.m = meter_on(f);
	race_batches(f, &a, &b, add_disk_of);
	race_groups(f, &a, &b,
		    "SELECT has_disks FROM vigie_billing.resources WHERE id = 'QX' FOR "
		    "UPDATE");
	assert_int_equal(db_int(f, "SELECT count(*) FROM resources WHERE id IN ('Q1','Q2','QX') "
				   "AND has_disks = 1"),
			 3);
}

/* A broken agent reporting absurd usage (10^15 vCPUs, petabytes of RAM,
 * an exabyte disk, a vNIC moving 10^18 bytes in ten minutes) made its
 * project's invoice pass what money can hold, and the month could not be
 * finalized until the usage was corrected (by hand, in the database).
 * Such values are now ignored where they enter the meter (bill_meter.h,
 * VG_BILL_MAX_*), counted by kind and logged once per resource: the
 * instance keeps its plausible flavor, the disk its size, the vNIC bills
 * only its plausible deltas (its counter moves on). */
/* A second session holds the meter's advisory lock of one of h1's
 * instances (a collector stopped inside a batch's transaction) while the
 * polls of three hosts come as groups (the receiver's group commit) and
 * the meter's lock waits are bounded: the group's transaction is rolled
 * back, h0's and h2's batches are applied alone and answered 0, h1's is
 * answered -EAGAIN (RETRY) instead of waiting (the hang guard fails the
 * test if it waits, as it did before the bound), counted, and h1's rows
 * stay as the last batch applied left them. Once the lock is released
 * h1's batches are sent again (as its agent does, in order) and metered
 * once: every table equals a second database fed each batch once. */
static void test_group_held_lock_answers_retry(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_meter *m2;
	struct vg_batch *bs[3], *late[4];
	struct vg_db *holder;
	char err[512];
	int rcs[3], nlate = 0;
	int64_t seen;

	if (!need_pg(f))
		skip();
	m2 = second_meter(f);
	assert_int_equal(vg_bill_meter_set_lock_timeout(f->m, 100), 0);
	assert_int_equal(vg_db_open(f->db, NULL, &holder, err, sizeof(err)), 0);
	chain(f);
	for (int p = 0; p < 6; p++) {
		int hold = p >= 2 && p < 4;

		group_polls(f, bs, 3, p);
		if (p == 2)
			assert_int_equal(vg_db_exec(holder, "SELECT pg_advisory_lock("
							    "hashtextextended('h1-i0', 0))"),
					 0);
		if (p == 4) { /* released: h1's agent sends its batches again */
			assert_int_equal(vg_db_exec(holder, "SELECT pg_advisory_unlock("
							    "hashtextextended('h1-i0', 0))"),
					 0);
			for (int k = 0; k < nlate; k++) {
				assert_int_equal(vg_dispatch_batch(&f->d, late[k]), 0);
				vg_batch_free(late[k]);
			}
			nlate = 0;
		}
		hang_guard_arm("a group with a batch whose locks another collector holds");
		vg_dispatch_group(&f->d, (const struct vg_batch *const *)bs, 3, rcs);
		hang_guard_disarm();
		assert_false(vg_db_in_transaction(vg_bill_meter_db(f->m)));
		for (int h = 0; h < 3; h++)
			assert_int_equal(rcs[h], hold && h == 1 ? -EAGAIN : 0);
		if (hold) { /* h1's last applied poll is still poll 1's */
			seen = db_int(f, "SELECT max(time_ms) FROM sightings WHERE host = 'h1'");
			assert_true(seen == T("2026-08-01T00:10:00Z"));
			late[nlate++] = bs[1];
			bs[1] = NULL;
		}
		for (int h = 0; h < 3; h++) {
			if (bs[h])
				assert_int_equal(vg_bill_meter_batch(m2, bs[h]), 0);
			else
				assert_int_equal(vg_bill_meter_batch(m2, late[nlate - 1]), 0);
			vg_batch_free(bs[h]);
		}
	}
	assert_int_equal(vg_bill_meter_lock_timeouts(f->m), 2);
	assert_int_equal(vg_bill_meter_group_fallbacks(f->m), 2);
	assert_int_equal(vg_bill_meter_lock_timeouts(m2), 0);
	same_tables(f, m2);
	vg_db_close(holder);
	vg_bill_meter_close(m2);
}

static void test_implausible_usage_ignored(void **state)
{
	struct fx *f = fx_get(state);
	struct vg_bill_usage u;
	uint64_t imp[VG_BILL_IMPL_N];
	char logf[] = "/tmp/vg-bill-implausible.XXXXXX", line[1024];
	int fd = mkstemp(logf), saved = dup(2), logged = 0;
	int64_t tx = 0;
	static const char *const t[] = {"2026-07-01T00:00:00Z", "2026-07-01T00:10:00Z",
					"2026-07-01T00:20:00Z"};

	assert_true(fd >= 0 && saved >= 0);
	vg_log_init("bill_meter_test", VG_LOG_INFO);
	fflush(stderr);
	assert_true(dup2(fd, 2) >= 0);
	for (int i = 0; i < 3; i++) {
		struct vg_resource *r;
		begin(f, t[i]);
		r = vg_batch_resource(f->b, VG_RT_INSTANCE, "i9", "i9", NULL, T(t[i]));
		r->state = VG_RSTATE_ACTIVE;
		assert_int_equal(vg_batch_identity(f->b, "p", NULL, "m1.small"), 0);
		assert_int_equal(vg_batch_sample(f->b, "power.state", VG_KIND_GAUGE, 1), 0);
		/* the second poll: absurd flavor values, and a resize to them */
		assert_int_equal(vg_batch_attr(f->b, "flavor_vcpus", i == 1 ? "1000000000000000" : "2"), 0);
		assert_int_equal(vg_batch_attr(f->b, "flavor_memory_mb",
					       i == 1 ? "2000000000000" : "2048"),
				 0);
		assert_int_equal(vg_batch_attr(f->b, "flavor_disk_gb", i == 1 ? "4000000000000" : "20"),
				 0);
		if (i == 1)
			event_d(f, "i9", VG_EV_RESIZED, t[i],
				"{\"vcpus\":1000000000000000,\"memory_mb\":2000000000000}");
		disk(f, "d9", "i9", t[i], i == 1 ? 2305843009213693952.0 /* 2^61 */
						 : 10737418240.0);
		/* 10^18 bytes in 10 minutes, then 1,024 more (exact in a double) */
		nic(f, "n9", "i9", t[i], i == 0 ? 0 : i == 1 ? 1e18
							     : 1e18 + 1024,
		    0);
		commit(f);
	}
	fflush(stderr);
	dup2(saved, 2);
	close(saved);

	load(f, "2026-07", &u);
	assert_int_equal(nseg(&u, "i9", VG_BILL_U_COMPUTE), 1); /* no resize */
	const struct vg_bill_usage_seg *c = seg(&u, "i9", VG_BILL_U_COMPUTE, 0);
	assert_int_equal(c->vcpus, 2);
	assert_int_equal(c->ram_mb, 2048);
	assert_int_equal(c->end_ms, T(t[2]));
	assert_int_equal(nseg(&u, "d9", VG_BILL_U_STORAGE), 1);
	assert_int_equal(seg(&u, "d9", VG_BILL_U_STORAGE, 0)->bytes, 10737418240LL);
	for (size_t i = 0; i < u.nnet; i++)
		tx += u.net[i].tx;
	assert_int_equal(tx, 1024);
	vg_bill_usage_clear(&u);

	vg_bill_meter_implausible(f->m, imp);
	for (int k = 0; k < VG_BILL_IMPL_N; k++)
		if (!imp[k])
			fail_msg("no implausible %s counted", vg_bill_implausible_name(k));
	assert_int_equal(imp[VG_BILL_IMPL_NETWORK], 1);
	/* one line per resource, whatever it reported and how often */
	FILE *lf = fopen(logf, "r");
	assert_non_null(lf);
	int i9 = 0, d9 = 0, n9 = 0;
	while (fgets(line, sizeof(line), lf)) {
		if (!strstr(line, "implausible") && !strstr(line, "no guest uses"))
			continue;
		logged++;
		i9 += strstr(line, "resource i9:") != NULL;
		d9 += strstr(line, "resource d9:") != NULL;
		n9 += strstr(line, "resource n9:") != NULL;
	}
	fclose(lf);
	unlink(logf);
	close(fd);
	assert_int_equal(i9, 1);
	assert_int_equal(d9, 1);
	assert_int_equal(n9, 1);
	assert_int_equal(logged, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		DBE_BOTH(test_month_boundary_split_exactly, setup, teardown),
		DBE_BOTH(test_polling_fallback_and_refinement, setup, teardown),
		DBE_BOTH(test_late_announced_event_refines, setup, teardown),
		DBE_BOTH(test_storage_while_stopped_not_after_delete, setup, teardown),
		DBE_BOTH(test_counters_resets_and_spread, setup, teardown),
		DBE_BOTH(test_resize_splits, setup, teardown),
		DBE_BOTH(test_single_poll_run, setup, teardown),
		DBE_BOTH(test_published_not_observed, setup, teardown),
		DBE_BOTH(test_silence_ended_by_start, setup, teardown),
		DBE_BOTH(test_silences_pruned, setup, teardown),
		DBE_BOTH(test_adopts_old_billing_db, setup, teardown),
		DBE_BOTH(test_migration_exact_events, setup, teardown),
		DBE_BOTH(test_migration_polls_only, setup, teardown),
		DBE_BOTH(test_not_a_migration, setup, teardown),
		DBE_BOTH(test_resize_seen_stopped, setup, teardown),
		DBE_BOTH(test_resize_seen_restarted, setup, teardown),
		DBE_BOTH(test_resize_polls_only, setup, teardown),
		DBE_BOTH(test_many_in_one_batch, setup, teardown),
		DBE_BOTH(test_sightings_per_host, setup, teardown),
		DBE_BOTH(test_sightings_gc, setup, teardown),
		DBE_BOTH(test_sightings_old_generation, setup, teardown),
		DBE_BOTH(test_plans_keyed, setup, teardown),
		DBE_BOTH(test_overlap_same_rows, setup, teardown),
		DBE_BOTH(test_overlap_retry_rolls_back, setup, teardown),
		DBE_BOTH(test_group_same_rows, setup, teardown),
		DBE_BOTH(test_group_failure_loses_nothing, setup, teardown),
		DBE_BOTH(test_group_lock_order, setup, teardown),
		DBE_BOTH(test_group_names_lock_order, setup, teardown),
		DBE_BOTH(test_group_parent_lock_order, setup, teardown),
		DBE_BOTH(test_group_held_lock_answers_retry, setup, teardown),
		DBE_BOTH(test_implausible_usage_ignored, setup, teardown),
	};
	return cmocka_run_group_tests(tests, dbe_group_setup, dbe_group_teardown);
}
