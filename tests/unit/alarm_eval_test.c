/*
 * alarm_eval_test.c — the threshold state machine on replayed datapoints.
 *
 * The first table is CloudWatch's published "How alarm state is evaluated
 * when data is missing" (3 of 3 and 2 of 3, five most recent datapoints),
 * every row under every treatment. Then replays: M of N not consecutive,
 * repeat, keep-firing-for, flapping input, reasons in words and data.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "alarms/eval.h"

#define P_MS 60000
#define KEEP -1

static void setup_params(struct vg_alarm_params *p, uint32_t m, uint32_t n,
			 int missing)
{
	memset(p, 0, sizeof(*p));
	p->m = m;
	p->n = n;
	p->cmp = VG_CMP_GT;
	p->threshold = 50;
	p->missing = missing;
	p->period_ms = P_MS;
}

/* Push "0-X-X"-style datapoints: 0 = 10 (fine), X = 90 (breaching),
 * - = missing. Returns the end of the last period. */
static int64_t push(struct vg_alarm_eval *e, const char *pts, int64_t *t)
{
	for (const char *c = pts; *c; c++) {
		if (*c == ' ')
			continue;
		double v = *c == '0' ? 10 : *c == 'X' ? 90
						      : NAN;
		assert_int_equal(vg_alarm_eval_push(e, *t, v), 0);
		*t += P_MS;
	}
	return *t;
}

struct row {
	uint32_t m, n;
	const char *pts;
	int want[4]; /* missing, ignore, breaching, not_breaching */
};

#define I VG_ALARM_INSUFFICIENT_DATA
#define O VG_ALARM_OK
#define A VG_ALARM_ALARM

static const struct row cloudwatch[] = {
	/* 3 out of 3 */
	{3, 3, "0-X-X", {O, O, O, O}},
	{3, 3, "0----", {O, O, O, O}},
	{3, 3, "-----", {I, KEEP, A, O}},
	{3, 3, "0XX-X", {A, A, A, A}},
	{3, 3, "----X", {I, KEEP, A, O}},
	{3, 3, "X----", {A, KEEP, A, O}},
	/* 2 out of 3 */
	{2, 3, "0-X-X", {A, A, A, A}},
	{2, 3, "00X0X", {A, A, A, A}},
	{2, 3, "0-X--", {O, O, A, O}},
	{2, 3, "----0", {O, O, A, O}},
	{2, 3, "----X", {I, KEEP, A, O}},
};

static void test_cloudwatch_tables(void **state)
{
	static const int treatments[] = {VG_MISSING_MISSING, VG_MISSING_IGNORE,
					 VG_MISSING_BREACHING,
					 VG_MISSING_NOT_BREACHING};
	static const int priors[] = {VG_ALARM_OK, VG_ALARM_ALARM,
				     VG_ALARM_INSUFFICIENT_DATA};

	for (size_t r = 0; r < sizeof(cloudwatch) / sizeof(cloudwatch[0]); r++) {
		for (int t = 0; t < 4; t++) {
			for (int pr = 0; pr < 3; pr++) {
				struct vg_alarm_params p;
				struct vg_alarm_eval e;
				struct vg_alarm_decision d;
				int64_t time = 0, end;
				int want = cloudwatch[r].want[t];

				setup_params(&p, cloudwatch[r].m, cloudwatch[r].n,
					     treatments[t]);
				assert_int_equal(vg_alarm_eval_init(&e, &p), 0);
				assert_int_equal(e.cap, 5);
				e.state = priors[pr];
				end = push(&e, cloudwatch[r].pts, &time);
				vg_alarm_eval_step(&p, &e, end, &d);
				if (want == KEEP)
					want = priors[pr];
				if (d.current != want)
					fail_msg("row %zu '%s' %u/%u treatment %s prior %s: "
						 "got %s want %s (%s)",
						 r,
						 cloudwatch[r].pts, cloudwatch[r].m,
						 cloudwatch[r].n,
						 vg_alarm_missing_name(treatments[t]),
						 vg_alarm_state_name(priors[pr]),
						 vg_alarm_state_name(d.current),
						 vg_alarm_state_name(want), d.reason);
				assert_int_equal(d.notify, want != priors[pr]
								   ? VG_NOTIFY_TRANSITION
								   : VG_NOTIFY_NONE);
				json_decref(d.reason_data);
				vg_alarm_eval_release(&e);
			}
		}
	}
}

/* Replay one datapoint per period; record the state after each and the
 * notifications as a string: 'T' transition, 'R' repeat, '.' none. */
static void replay(const struct vg_alarm_params *p, const char *pts,
		   char *states, char *notes)
{
	struct vg_alarm_eval e;
	int64_t t = 0;
	size_t k = 0;

	assert_int_equal(vg_alarm_eval_init(&e, p), 0);
	for (const char *c = pts; *c; c++) {
		struct vg_alarm_decision d;
		char one[2] = {*c, 0};
		int64_t end = push(&e, one, &t);
		vg_alarm_eval_step(p, &e, end, &d);
		states[k] = d.current == A ? 'A' : d.current == O ? 'O'
								  : 'I';
		notes[k] = d.notify == VG_NOTIFY_TRANSITION ? 'T'
			   : d.notify == VG_NOTIFY_REPEAT   ? 'R'
							    : '.';
		k++;
		json_decref(d.reason_data);
	}
	states[k] = notes[k] = '\0';
	vg_alarm_eval_release(&e);
}

struct scenario {
	const char *what;
	uint32_t m, n;
	int missing;
	uint32_t repeat, keep_s;
	const char *pts, *states, *notes;
};

static const struct scenario scenarios[] = {
	{"3 of 3 needs three in a row", 3, 3, VG_MISSING_MISSING, 0, 0,
	 "0XXX0", "OOOAO", "T..TT"},
	{"2 of 3, not consecutive", 2, 3, VG_MISSING_MISSING, 0, 0,
	 "X0X00", "IOAOO", ".TTT."},
	{"1 of 1 follows every datapoint", 1, 1, VG_MISSING_MISSING, 0, 0,
	 "0X0X", "OAOA", "TTTT"},
	{"flapping never reaches 3 of 3", 3, 3, VG_MISSING_MISSING, 0, 0,
	 "X0X0X0X0", "IOOOOOOO", ".T......"},
	{"flapping 1 of 1 held by keep_firing_for 120 s", 1, 1,
	 VG_MISSING_MISSING, 0, 120, "X0X0X000", "AAAAAAAO", "T......T"},
	{"keep_firing_for 120 s: two more periods, then ok", 1, 1,
	 VG_MISSING_MISSING, 0, 120, "X000", "AAAO", "T..T"},
	{"repeat every 2 periods while in alarm", 1, 1, VG_MISSING_MISSING, 2,
	 0, "XXXXX0", "AAAAAO", "T.R.RT"},
	{"missing: data stops, insufficient after the range empties", 1, 1,
	 VG_MISSING_MISSING, 0, 0, "0---", "OOOI", "T..T"},
	{"breaching: silence alarms once the good point leaves the range", 1, 1,
	 VG_MISSING_BREACHING, 0, 0, "0---", "OOOA", "T..T"},
	{"not_breaching: fills count as fine once real points run short", 2, 2,
	 VG_MISSING_NOT_BREACHING, 0, 0, "XX----", "OAAAOO", "TT..T."},
	{"ignore: silence keeps alarm", 1, 1, VG_MISSING_IGNORE, 0, 0,
	 "X-----", "AAAAAA", "T....."},
};

static void test_scenarios(void **state)
{
	char st[64], no[64];

	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		const struct scenario *s = &scenarios[i];
		struct vg_alarm_params p;
		setup_params(&p, s->m, s->n, s->missing);
		p.repeat = s->repeat;
		p.keep_firing_ms = (int64_t)s->keep_s * 1000;
		replay(&p, s->pts, st, no);
		if (strcmp(st, s->states) || strcmp(no, s->notes))
			fail_msg("%s: '%s' gave states %s notes %s, want %s %s",
				 s->what, s->pts, st, no, s->states, s->notes);
	}
}

/* The engine's hot path decides without the reason text and rebuilds it
 * from the ring when read: for every scenario (keep-firing held states,
 * every missing-data treatment, repeats), after every step the rebuilt
 * text is the one vg_alarm_eval_step writes, and the decisions agree. */
static void test_reason_on_demand_matches_step(void **state)
{
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		const struct scenario *s = &scenarios[i];
		struct vg_alarm_params p;
		struct vg_alarm_eval full, lazy;
		int64_t tf = 0, tl = 0;

		setup_params(&p, s->m, s->n, s->missing);
		p.repeat = s->repeat;
		p.keep_firing_ms = (int64_t)s->keep_s * 1000;
		assert_int_equal(vg_alarm_eval_init(&full, &p), 0);
		assert_int_equal(vg_alarm_eval_init(&lazy, &p), 0);
		for (const char *c = s->pts; *c; c++) {
			struct vg_alarm_decision df, dl;
			char one[2] = {*c, 0}, text[VG_ALARM_REASON_MAX];
			int64_t end = push(&full, one, &tf);
			push(&lazy, one, &tl);
			vg_alarm_eval_step(&p, &full, end, &df);
			vg_alarm_eval_decide(&p, &lazy, end, &dl, 0);
			assert_int_equal(dl.current, df.current);
			assert_int_equal(dl.notify, df.notify);
			if (dl.notify)
				assert_string_equal(dl.reason, df.reason);
			else
				assert_string_equal(dl.reason, "");
			vg_alarm_eval_reason(&p, &lazy, text, sizeof(text));
			if (strcmp(text, df.reason))
				fail_msg("%s, at '%c': rebuilt '%s', step said '%s'",
					 s->what, *c, text, df.reason);
			json_decref(df.reason_data);
			json_decref(dl.reason_data);
		}
		vg_alarm_eval_release(&full);
		vg_alarm_eval_release(&lazy);
	}
}

static void test_reason_words_and_data(void **state)
{
	struct vg_alarm_params p;
	struct vg_alarm_eval e;
	struct vg_alarm_decision d;
	int64_t t = 0;

	setup_params(&p, 3, 3, VG_MISSING_MISSING);
	p.threshold = 90;
	assert_int_equal(vg_alarm_eval_init(&e, &p), 0);
	vg_alarm_eval_push(&e, t, 91.2);
	vg_alarm_eval_push(&e, t += P_MS, 94.0);
	vg_alarm_eval_push(&e, t += P_MS, 97.5);
	assert_int_equal(vg_alarm_eval_step(&p, &e, t + P_MS, &d),
			 VG_NOTIFY_TRANSITION);
	assert_string_equal(d.reason, "3 out of the last 3 datapoints [91.2, "
				      "94.0, 97.5] were greater than the "
				      "threshold (90.0)");
	assert_int_equal(d.previous, I);
	assert_int_equal(d.current, A);
	assert_int_equal(d.time_ms, 3 * P_MS);
	json_t *pts = json_object_get(d.reason_data, "datapoints");
	assert_int_equal(json_array_size(pts), 3);
	assert_true(json_real_value(json_object_get(json_array_get(pts, 2),
						    "value")) == 97.5);
	assert_int_equal(json_integer_value(json_object_get(d.reason_data,
							    "breaching")),
			 3);
	json_decref(d.reason_data);

	vg_alarm_eval_push(&e, t += P_MS, 20);
	vg_alarm_eval_step(&p, &e, t + P_MS, &d);
	assert_int_equal(d.current, O);
	assert_string_equal(d.reason, "only 2 out of the last 3 datapoints "
				      "[94.0, 97.5, 20.0] were greater than "
				      "the threshold (90.0), 3 needed for alarm");
	json_decref(d.reason_data);

	/* the ring survives a restart in the packed form alarms.db keeps */
	unsigned char packed[16 * 5];
	struct vg_alarm_eval g;
	size_t plen = vg_alarm_eval_ring_pack(&e, packed, sizeof(packed));
	assert_int_equal(plen, 16 * e.n);
	assert_int_equal(vg_alarm_eval_init(&g, &p), 0);
	vg_alarm_eval_ring_unpack(&g, packed, plen);
	assert_int_equal(g.n, e.n);
	assert_int_equal(g.last_start_ms, e.last_start_ms);
	assert_true(g.ring[(g.head + g.n - 1) % g.cap].value == 20);
	assert_int_equal(vg_alarm_eval_push(&g, e.last_start_ms, 1), -EALREADY);
	vg_alarm_eval_release(&g);
	vg_alarm_eval_release(&e);
}

static void test_value_format(void **state)
{
	char b[48];

	assert_string_equal(vg_alarm_format_value(94, b, sizeof(b)), "94.0");
	assert_string_equal(vg_alarm_format_value(91.25, b, sizeof(b)), "91.25");
	assert_string_equal(vg_alarm_format_value(0.001, b, sizeof(b)), "0.001");
	assert_string_equal(vg_alarm_format_value(0, b, sizeof(b)), "0.0");
	assert_string_equal(vg_alarm_format_value(-2.5, b, sizeof(b)), "-2.5");
	assert_string_equal(vg_alarm_format_value(1.5e-5, b, sizeof(b)), "1.5e-05");
	assert_string_equal(vg_alarm_format_value(NAN, b, sizeof(b)), "missing");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cloudwatch_tables),
		cmocka_unit_test(test_scenarios),
		cmocka_unit_test(test_reason_on_demand_matches_step),
		cmocka_unit_test(test_reason_words_and_data),
		cmocka_unit_test(test_value_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
