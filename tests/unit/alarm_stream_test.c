/*
 * alarm_stream_test.c — the SSE hub (alarms/stream.c): event ids that keep
 * increasing across a restart, Last-Event-ID within a run, from an earlier
 * run and from nowhere, projects that do not see each other (ids, "lost"
 * counts, rings and wake-ups of their own; an administrator's merged
 * view, also under churn against what the projects' own streams hold),
 * the bound over every ring and the "lost" notice of a subscriber that
 * fell behind its ring.
 *
 * A collector restart is a hub freed and a new one made: the new hub's
 * first id must be above every id the old one issued. The cross-process
 * case rests on the wall clock, checked here by the first id falling
 * between two clock readings taken around vg_alarm_hub_new (and, end to
 * end, by tests/integration/alarms_test.sh, which restarts the collector).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "vigie/alarm_stream.h"

static uint64_t wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Read everything pending into buf (NUL-terminated); returns its length. */
static size_t drain(struct vg_alarm_sub *s, char *buf, size_t max)
{
	size_t len = 0;
	ssize_t n;

	while (len + 1 < max &&
	       (n = vg_alarm_hub_read(s, buf + len, max - 1 - len, 0)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	return len;
}

/* The ids ("id: N" lines) in text, in order; returns how many. */
static size_t ids_of(const char *text, uint64_t *ids, size_t max)
{
	size_t n = 0;

	for (const char *p = strstr(text, "id: "); p && n < max;
	     p = strstr(p + 1, "\nid: "))
		ids[n++] = strtoull(p[0] == '\n' ? p + 5 : p + 4, NULL, 10);
	return n;
}

static uint64_t publish_ids(struct vg_alarm_hub *h, const char *project,
			    int n, uint64_t *last)
{
	struct vg_alarm_sub *s;
	char buf[8192];
	uint64_t ids[64], first;
	size_t k;

	assert_int_equal(vg_alarm_hub_subscribe(h, NULL, 0, NULL, NULL, 0, &s), 0);
	for (int i = 0; i < n; i++)
		assert_int_equal(vg_alarm_hub_publish(h, project, "alarm",
						      "{\"n\":1}"),
				 0);
	drain(s, buf, sizeof(buf));
	vg_alarm_hub_unsubscribe(s);
	k = ids_of(buf, ids, 64);
	assert_int_equal(k, (size_t)n);
	for (size_t i = 1; i < k; i++)
		assert_true(ids[i] == ids[i - 1] + 1);
	first = ids[0];
	*last = ids[k - 1];
	return first;
}

/* Runs first: no freed hub has raised the in-process floor yet. */
static void test_first_id_is_the_wall_clock(void **state)
{
	struct vg_alarm_hub *h;
	uint64_t before, after, first, last;

	(void)state;
	before = wall_us();
	assert_int_equal(vg_alarm_hub_new(16, 0, &h), 0);
	after = wall_us();
	first = publish_ids(h, "p", 3, &last);
	assert_true(first >= before && first <= after);
	assert_true(first < (1ull << 53)); /* exact as a JavaScript number */
	assert_true(last == first + 2);
	vg_alarm_hub_free(h);
}

static void test_ids_increase_across_restart(void **state)
{
	struct vg_alarm_hub *h;
	uint64_t last1, first2, last2;

	(void)state;
	for (int run = 0; run < 5; run++) {
		assert_int_equal(vg_alarm_hub_new(64, 0, &h), 0);
		/* 40 events in a few microseconds: faster than the clock */
		publish_ids(h, "p", 40, &last1);
		vg_alarm_hub_free(h);
		assert_int_equal(vg_alarm_hub_new(16, 0, &h), 0);
		first2 = publish_ids(h, "p", 1, &last2);
		if (first2 <= last1)
			fail_msg("run %d: first id after the restart %llu <= last "
				 "before %llu",
				 run, (unsigned long long)first2,
				 (unsigned long long)last1);
		vg_alarm_hub_free(h);
	}
}

static void test_last_event_id(void **state)
{
	struct vg_alarm_hub *old, *h;
	struct vg_alarm_sub *s;
	char buf[8192], want[128];
	uint64_t ids[16], last_old, first, last;
	size_t n;

	(void)state;
	/* the previous run: ids up to last_old, never seen by the new hub */
	assert_int_equal(vg_alarm_hub_new(16, 0, &old), 0);
	publish_ids(old, "p", 2, &last_old);
	vg_alarm_hub_free(old);

	assert_int_equal(vg_alarm_hub_new(16, 0, &h), 0);
	first = publish_ids(h, "p", 3, &last); /* first, first+1, first+2 */

	/* within this run: resume after first */
	assert_int_equal(vg_alarm_hub_subscribe(h, NULL, first, NULL, NULL, 0, &s), 0);
	drain(s, buf, sizeof(buf));
	n = ids_of(buf, ids, 16);
	assert_int_equal(n, 2);
	assert_true(ids[0] == first + 1 && ids[1] == last);
	assert_null(strstr(buf, "event: restart"));
	vg_alarm_hub_unsubscribe(s);

	/* from the previous run: told so, then every event of this run */
	assert_int_equal(vg_alarm_hub_subscribe(h, NULL, last_old, NULL, NULL, 0,
						&s),
			 0);
	drain(s, buf, sizeof(buf));
	snprintf(want, sizeof(want),
		 "event: restart\ndata: {\"last_event_id\":%llu,\"first_id\":%llu}\n\n",
		 (unsigned long long)last_old, (unsigned long long)first);
	assert_true(strncmp(buf, want, strlen(want)) == 0);
	n = ids_of(buf, ids, 16);
	assert_int_equal(n, 3);
	assert_true(ids[0] == first && ids[2] == last);
	vg_alarm_hub_unsubscribe(s);

	/* an old-style small id (ids restarted at 1 before): the same */
	assert_int_equal(vg_alarm_hub_subscribe(h, NULL, 7, NULL, NULL, 0, &s), 0);
	drain(s, buf, sizeof(buf));
	assert_non_null(strstr(buf, "event: restart\ndata: {\"last_event_id\":7,"));
	assert_int_equal(ids_of(buf, ids, 16), 3);
	vg_alarm_hub_unsubscribe(s);

	/* an id never issued (ahead of this run): only new events */
	assert_int_equal(vg_alarm_hub_subscribe(h, NULL, last + 1000, NULL, NULL,
						0, &s),
			 0);
	assert_int_equal(drain(s, buf, sizeof(buf)), 0);
	assert_int_equal(vg_alarm_hub_publish(h, "p", "alarm", "{}"), 0);
	drain(s, buf, sizeof(buf));
	assert_int_equal(ids_of(buf, ids, 16), 1);
	assert_true(ids[0] == last + 1);
	vg_alarm_hub_unsubscribe(s);
	vg_alarm_hub_free(h);
}

static void test_restart_notice_with_project_and_lost(void **state)
{
	struct vg_alarm_hub *h;
	struct vg_alarm_sub *s;
	struct vg_alarm_hub_stats st;
	char buf[16384];
	uint64_t ids[16];

	(void)state;
	assert_int_equal(vg_alarm_hub_new(4, 0, &h), 0);
	/* 6 events of each project into rings of 4: each project's first
	 * two of this run are gone */
	for (int i = 0; i < 12; i++)
		assert_int_equal(vg_alarm_hub_publish(h, i % 2 ? "a" : "b", "alarm",
						      "{}"),
				 0);
	/* a tenant of project a, resuming with an id of an earlier run */
	assert_int_equal(vg_alarm_hub_subscribe(h, "a", 1, NULL, NULL, 0, &s), 0);
	drain(s, buf, sizeof(buf));
	assert_non_null(strstr(buf, "event: restart\n"));
	assert_non_null(strstr(buf, "event: lost\ndata: {\"missed\":2}\n"));
	assert_true(strstr(buf, "event: restart") < strstr(buf, "event: lost"));
	/* kept: project a's 3rd..6th, numbered in a's own sequence */
	assert_int_equal(ids_of(buf, ids, 16), 4);
	for (int i = 1; i < 4; i++)
		assert_true(ids[i] == ids[i - 1] + 1);
	vg_alarm_hub_get_stats(h, &st);
	assert_int_equal(st.lost, 2);
	assert_int_equal(st.published, 12);
	assert_int_equal(st.evicted, 4);
	assert_int_equal(st.held, 8);
	vg_alarm_hub_unsubscribe(s);
	vg_alarm_hub_free(h);
}

/* Counts wake-ups. */
static void count_wake(void *arg)
{
	(*(int *)arg)++;
}

/* A project token's stream says nothing of other projects: its ids are
 * consecutive whatever the others publish, another project's burst
 * neither pushes its events out nor shows as "lost", Last-Event-ID
 * resumes in its own sequence, and it is not woken for others' events.
 * (A shared ring numbered every project's events together: a tenant
 * counted the others' transitions from the gaps, and 50 of project b's
 * pushed project a's out of a ring of 16.) */
static void test_projects_do_not_see_each_other(void **state)
{
	struct vg_alarm_hub *h;
	struct vg_alarm_sub *a, *b, *adm, *again;
	char buf[65536];
	uint64_t ids[64], aid[2];
	int wa = 0, wb = 0, wadm = 0;

	(void)state;
	assert_int_equal(vg_alarm_hub_new(16, 0, &h), 0);
	assert_int_equal(vg_alarm_hub_subscribe(h, "a", 0, count_wake, &wa, 0, &a), 0);
	assert_int_equal(vg_alarm_hub_subscribe(h, "b", 0, count_wake, &wb, 0, &b), 0);
	assert_int_equal(vg_alarm_hub_subscribe(h, NULL, 0, count_wake, &wadm, 0, &adm), 0);
	assert_int_equal(vg_alarm_hub_publish(h, "a", "alarm", "{\"p\":\"a\"}"), 0);
	for (int i = 0; i < 50; i++)
		assert_int_equal(vg_alarm_hub_publish(h, "b", "alarm", "{\"p\":\"b\"}"), 0);
	assert_int_equal(vg_alarm_hub_publish(h, "a", "alarm", "{\"p\":\"a\"}"), 0);
	assert_int_equal(wa, 2);
	assert_int_equal(wb, 50);
	assert_int_equal(wadm, 52);

	drain(a, buf, sizeof(buf));
	assert_null(strstr(buf, "event: lost"));
	assert_null(strstr(buf, "\"b\""));
	assert_int_equal(ids_of(buf, aid, 2), 2);
	assert_true(aid[1] == aid[0] + 1);

	/* b fell behind its own ring of 16: it lost 34 of its own */
	drain(b, buf, sizeof(buf));
	assert_non_null(strstr(buf, "event: lost\ndata: {\"missed\":34}\n"));
	assert_int_equal(ids_of(buf, ids, 64), 16);
	assert_true(ids[0] == aid[0] + 34 && ids[15] == aid[0] + 49);

	/* the administrator: every project in the hub's order; the first
	 * event was a's (both sequences start at the hub's first id), what
	 * left b's ring is lost, a's second is the hub's 52nd */
	drain(adm, buf, sizeof(buf));
	assert_non_null(strstr(buf, "event: lost\ndata: {\"missed\":34}\n"));
	assert_int_equal(ids_of(buf, ids, 64), 18);
	assert_true(ids[0] == aid[0]);
	assert_true(ids[1] == aid[0] + 35);
	assert_true(ids[17] == aid[0] + 51);

	/* Last-Event-ID in a's sequence: a's second event only */
	assert_int_equal(vg_alarm_hub_subscribe(h, "a", aid[0], NULL, NULL, 0, &again), 0);
	drain(again, buf, sizeof(buf));
	assert_int_equal(ids_of(buf, ids, 64), 1);
	assert_true(ids[0] == aid[1]);
	assert_non_null(strstr(buf, "{\"p\":\"a\"}"));
	vg_alarm_hub_unsubscribe(again);
	vg_alarm_hub_unsubscribe(a);
	vg_alarm_hub_unsubscribe(b);
	vg_alarm_hub_unsubscribe(adm);
	vg_alarm_hub_free(h);
}

/* The burst of the total bound on hub H (4 rings, 8 events over every
 * ring): a publishes 2, b 4, then c 100; b (the most) gives one to c, then
 * c evicts its own. Checks what each project's subscriber reads, leaves
 * the hub's stats after the burst in *ST, and frees H. */
static void burst_evicts_the_biggest(struct vg_alarm_hub *h, struct vg_alarm_hub_stats *st)
{
	struct vg_alarm_sub *a, *b, *c;
	char buf[16384];
	uint64_t ids[16];

	assert_int_equal(vg_alarm_hub_subscribe(h, "a", 0, NULL, NULL, 0, &a), 0);
	assert_int_equal(vg_alarm_hub_subscribe(h, "b", 0, NULL, NULL, 0, &b), 0);
	assert_int_equal(vg_alarm_hub_subscribe(h, "c", 0, NULL, NULL, 0, &c), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(vg_alarm_hub_publish(h, "a", "alarm", "{}"), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(vg_alarm_hub_publish(h, "b", "alarm", "{}"), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(vg_alarm_hub_publish(h, "c", "alarm", "{}"), 0);
	vg_alarm_hub_get_stats(h, st);
	assert_int_equal(st->held, 8);

	drain(a, buf, sizeof(buf));
	assert_null(strstr(buf, "event: lost"));
	assert_int_equal(ids_of(buf, ids, 16), 2);
	drain(b, buf, sizeof(buf));
	assert_non_null(strstr(buf, "event: lost\ndata: {\"missed\":1}\n"));
	assert_int_equal(ids_of(buf, ids, 16), 3);
	drain(c, buf, sizeof(buf));
	assert_non_null(strstr(buf, "event: lost\ndata: {\"missed\":97}\n"));
	assert_int_equal(ids_of(buf, ids, 16), 3);
	vg_alarm_hub_unsubscribe(a);
	vg_alarm_hub_unsubscribe(b);
	vg_alarm_hub_unsubscribe(c);
	vg_alarm_hub_free(h);
}

/* Every ring together holds at most `total` events: past it the project
 * holding the most loses its oldest, the publisher on a tie, so a burst
 * evicts its own first and never a project holding fewer. */
static void test_total_bound_evicts_the_biggest(void **state)
{
	struct vg_alarm_hub *h;
	struct vg_alarm_hub_stats st;

	(void)state;
	assert_int_equal(vg_alarm_hub_new(4, 8, &h), 0);
	burst_evicts_the_biggest(h, &st);
}

/* Past the bound over every ring, choosing the project that loses an
 * event is one look, however many projects the hub has seen: it used to
 * compare every project ever seen (their entries are never freed) at
 * every event published while the rings were full, so a collector that
 * had seen 10,000 projects did 10,000 comparisons per alarm transition.
 * The same burst as test_total_bound_evicts_the_biggest, among 10,000
 * idle projects. */
static void test_total_bound_choice_is_one_look(void **state)
{
	struct vg_alarm_hub *h;
	struct vg_alarm_sub *idle;
	struct vg_alarm_hub_stats st;
	char name[32];

	(void)state;
	assert_int_equal(vg_alarm_hub_new(4, 8, &h), 0);
	for (int i = 0; i < 10000; i++) { /* each leaves its project entry */
		snprintf(name, sizeof(name), "idle-%d", i);
		assert_int_equal(vg_alarm_hub_subscribe(h, name, 0, NULL, NULL, 0, &idle), 0);
		vg_alarm_hub_unsubscribe(idle);
	}
	burst_evicts_the_biggest(h, &st);
	assert_int_equal(st.evicted, 98); /* all past the bound over the rings */
	assert_int_equal(st.evict_looked, 98);
}

/* The "g" of each event in text (data {"g":N}) into gs, its id into ids,
 * and the sum of the "missed" counts into *missed; returns the count. */
static size_t events_of(const char *text, uint64_t *ids, uint64_t *gs,
			size_t max, uint64_t *missed)
{
	size_t n = 0;

	*missed = 0;
	for (const char *p = strstr(text, "\"missed\":"); p;
	     p = strstr(p + 1, "\"missed\":"))
		*missed += strtoull(p + 9, NULL, 10);
	for (const char *p = strstr(text, "id: "); p && n < max;
	     p = strstr(p + 1, "\nid: ")) {
		const char *d = strstr(p, "{\"g\":");
		ids[n] = strtoull(p[0] == '\n' ? p + 5 : p + 4, NULL, 10);
		gs[n++] = strtoull(d + 5, NULL, 10);
	}
	return n;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* An administrator's stream under churn: many projects, rings of 8, 48
 * events over all, 3000 events published (most leave their ring, and the
 * administrators' index of every event drops those entries as it fills).
 * An administrator reading now and then with a small buffer gets ids that
 * increase, each the hub's id of that event, and every event published is
 * either received or counted in a "lost"; one that read nothing until the
 * end gets exactly the events the projects still hold, in the hub's
 * order, as the projects' own streams (another code path: their rings)
 * tell them, and so does a new one replaying the run (Last-Event-ID of
 * an earlier run). */
static void test_admin_stream_under_churn(void **state)
{
	enum { NPROJ = 40,
	       NPUB = 3000,
	       MAXE = 4096 };
	struct vg_alarm_hub *h;
	struct vg_alarm_sub *busy, *idle, *fresh, *ps;
	static char text[1 << 20], chunk[200];
	static uint64_t ids[MAXE], gs[MAXE], want[MAXE];
	size_t len = 0, n, nwant = 0;
	uint64_t missed, x = 12345, id0;
	char proj[16], json[32];

	(void)state;
	assert_int_equal(vg_alarm_hub_new(8, 48, &h), 0);
	assert_int_equal(vg_alarm_hub_subscribe(h, NULL, 0, NULL, NULL, 0, &busy), 0);
	assert_int_equal(vg_alarm_hub_subscribe(h, NULL, 0, NULL, NULL, 0, &idle), 0);
	for (int k = 0; k < NPUB; k++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		/* p0..p3 publish once, early, and keep their event a while */
		snprintf(proj, sizeof(proj), "p%d",
			 k < 4 ? k : 4 + (int)((x >> 33) % (NPROJ - 4)));
		snprintf(json, sizeof(json), "{\"g\":%d}", k);
		assert_int_equal(vg_alarm_hub_publish(h, proj, "alarm", json), 0);
		if ((x >> 20) % 7 == 0) { /* read a little, a small buffer */
			ssize_t r = vg_alarm_hub_read(busy, chunk, sizeof(chunk), 0);
			assert_true(r >= 0);
			memcpy(text + len, chunk, (size_t)r);
			len += (size_t)r;
		}
	}
	len += drain(busy, text + len, sizeof(text) - len);
	text[len] = '\0';
	n = events_of(text, ids, gs, MAXE, &missed);
	assert_true(n > 0 && n < NPUB);
	assert_int_equal(n + missed, NPUB);
	id0 = ids[0] - gs[0];
	for (size_t i = 0; i < n; i++) {
		assert_true(ids[i] - gs[i] == id0); /* the hub's id of event g */
		assert_true(i == 0 || ids[i] > ids[i - 1]);
	}

	/* what the projects hold, from their own streams */
	for (int p = 0; p < NPROJ; p++) {
		uint64_t m;
		snprintf(proj, sizeof(proj), "p%d", p);
		assert_int_equal(vg_alarm_hub_subscribe(h, proj, 1, NULL, NULL, 0, &ps), 0);
		drain(ps, text, sizeof(text));
		nwant += events_of(text, ids, want + nwant, MAXE - nwant, &m);
		vg_alarm_hub_unsubscribe(ps);
	}
	qsort(want, nwant, sizeof(*want), cmp_u64);
	assert_int_equal(nwant, 48);

	drain(idle, text, sizeof(text));
	n = events_of(text, ids, gs, MAXE, &missed);
	assert_int_equal(n, nwant);
	assert_int_equal(n + missed, NPUB);
	for (size_t i = 0; i < n; i++)
		assert_true(gs[i] == want[i] && ids[i] == id0 + gs[i]);

	assert_int_equal(vg_alarm_hub_subscribe(h, NULL, 1, NULL, NULL, 0, &fresh), 0);
	drain(fresh, text, sizeof(text));
	assert_non_null(strstr(text, "event: restart"));
	n = events_of(text, ids, gs, MAXE, &missed);
	assert_int_equal(n, nwant);
	for (size_t i = 0; i < n; i++)
		assert_true(gs[i] == want[i]);
	vg_alarm_hub_unsubscribe(fresh);
	vg_alarm_hub_unsubscribe(idle);
	vg_alarm_hub_unsubscribe(busy);
	vg_alarm_hub_free(h);
}

/* A read buffer too small for the notice: it waits, nothing is lost. */
static void test_restart_notice_small_buffer(void **state)
{
	struct vg_alarm_hub *h;
	struct vg_alarm_sub *s;
	char buf[8192], small[16];
	ssize_t n;

	(void)state;
	assert_int_equal(vg_alarm_hub_new(8, 0, &h), 0);
	assert_int_equal(vg_alarm_hub_publish(h, "p", "alarm", "{}"), 0);
	assert_int_equal(vg_alarm_hub_subscribe(h, NULL, 3, NULL, NULL, 0, &s), 0);
	n = vg_alarm_hub_read(s, small, sizeof(small), 0);
	assert_int_equal(n, 0);
	drain(s, buf, sizeof(buf));
	assert_true(strncmp(buf, "event: restart\n", 15) == 0);
	assert_non_null(strstr(buf, "event: alarm\n"));
	vg_alarm_hub_unsubscribe(s);
	vg_alarm_hub_free(h);
}

/* One project holds at most VG_ALARM_HUB_PER_PROJECT streams: an SSE
 * stream's keepalives keep its connection past the server's idle timeout,
 * and one tenant from four addresses held all 1,024 of the API's. Other
 * projects and the administrator still subscribe; a stream closed frees
 * its place. */
static void test_streams_per_project(void **state)
{
	struct vg_alarm_hub *h;
	struct vg_alarm_sub *s[VG_ALARM_HUB_PER_PROJECT], *x = NULL, *o, *a;
	struct vg_alarm_hub_stats st;

	(void)state;
	assert_int_equal(vg_alarm_hub_new(8, 0, &h), 0);
	for (int i = 0; i < VG_ALARM_HUB_PER_PROJECT; i++)
		assert_int_equal(vg_alarm_hub_subscribe(h, "p1", 0, NULL, NULL, 0, &s[i]), 0);
	assert_int_equal(vg_alarm_hub_subscribe(h, "p1", 0, NULL, NULL, 0, &x), -EUSERS);
	assert_null(x);
	assert_int_equal(vg_alarm_hub_subscribe(h, "p2", 0, NULL, NULL, 0, &o), 0);
	assert_int_equal(vg_alarm_hub_subscribe(h, NULL, 0, NULL, NULL, 0, &a), 0);
	vg_alarm_hub_get_stats(h, &st);
	assert_int_equal(st.refused, 1);
	assert_int_equal(st.subscribers, VG_ALARM_HUB_PER_PROJECT + 2);
	vg_alarm_hub_unsubscribe(s[0]);
	assert_int_equal(vg_alarm_hub_subscribe(h, "p1", 0, NULL, NULL, 0, &s[0]), 0);
	for (int i = 0; i < VG_ALARM_HUB_PER_PROJECT; i++)
		vg_alarm_hub_unsubscribe(s[i]);
	vg_alarm_hub_unsubscribe(o);
	vg_alarm_hub_unsubscribe(a);
	vg_alarm_hub_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_id_is_the_wall_clock),
		cmocka_unit_test(test_ids_increase_across_restart),
		cmocka_unit_test(test_last_event_id),
		cmocka_unit_test(test_restart_notice_with_project_and_lost),
		cmocka_unit_test(test_restart_notice_small_buffer),
		cmocka_unit_test(test_projects_do_not_see_each_other),
		cmocka_unit_test(test_total_bound_evicts_the_biggest),
		cmocka_unit_test(test_total_bound_choice_is_one_look),
		cmocka_unit_test(test_admin_stream_under_churn),
		cmocka_unit_test(test_streams_per_project),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
