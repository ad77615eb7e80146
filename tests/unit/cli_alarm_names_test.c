/*
 * cli_alarm_names_test.c — the names people know in `vigie alarms` and in
 * the CLI's filters and operands: where the agent sent Nova's display_name
 * and project_name, alarms list, show, history, silences and groups name the
 * watched resource and its project (--ids: the ids); --project takes a
 * project's name (a name two projects share is refused, listing their
 * ids); RESOURCE operands take a display name that names one resource (an
 * id always wins; several: refused, listing them).
 *
 * Runs in-process (vg_cli_run) against the real API over a real data dir
 * (registry and store written as the collector writes them) and the real
 * alarm engine (temporary alarms.db).
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "vigie/alarm_engine.h"
#include "vigie/alarm_stream.h"
#include "vigie/clock.h"

#include "../support/alarm_api_fixture.h"

#define MIN 60000LL
#define PID "9f1c0b7e5d2a4c6e8b1d3f5a7c9e0b2d"

static struct {
	struct fx_alarm_api a; /* engine, hub, API (over the data), token */
	uint64_t seq;
	int64_t t0;
} g;

/* One batch of every resource at t: vm-n (web-1 of acme), vm-x and vm-y
 * (both "db", of two projects both called "shared"), vm-o (no names). */
static struct vg_batch *batch(int64_t t, double v)
{
	static const struct {
		const char *id, *dom, *project, *dn, *pn;
	} res[] = {
		{"vm-n", "instance-0000002a", PID, "web-1", "acme"},
		{"vm-x", "instance-0000002c", "p-x1", "db", "shared"},
		{"vm-y", "instance-0000002d", "p-x2", "db", "shared"},
		{"vm-o", "instance-0000002b", "p-other", NULL, NULL},
	};
	struct vg_batch *b = vg_batch_new("h1", 1, ++g.seq, t);

	for (size_t i = 0; i < sizeof(res) / sizeof(res[0]); i++) {
		vg_batch_resource(b, VG_RT_INSTANCE, res[i].id, res[i].dom, NULL, t);
		vg_batch_identity(b, res[i].project, "u1", "small");
		if (res[i].dn) {
			vg_batch_attr(b, "display_name", res[i].dn);
			vg_batch_attr(b, "project_name", res[i].pn);
		}
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, v);
	}
	return b;
}

static int setup(void **state)
{
	struct fx_data d;

	unsetenv("VIGIE_API");
	unsetenv("VIGIE_TOKEN");
	setenv("VIGIE_CONFIG", "/nonexistent/cli.conf", 1);
	g.t0 = (vg_now_ms() - 3600 * 1000) / MIN * MIN;
	if (fx_tmpdir(g.a.srv.dir, sizeof(g.a.srv.dir), "cli-alarm-names") ||
	    fx_data_open(g.a.srv.dir, &d))
		return -1;
	g.a.srv.store = d.store;
	for (int k = 0; k < 2; k++)
		if (fx_data_write(&d, batch(g.t0 + k * MIN, 10)))
			return -1;
	fx_data_done(&d);
	return fx_alarm_api_start(&g.a);
}

static int teardown(void **state)
{
	vg_cli_set_output("table");
	return fx_alarm_api_stop(&g.a);
}

static struct fx_run vigie(const char *first, ...)
{
	va_list ap;
	struct fx_run r;

	va_start(ap, first);
	r = fx_vcli(g.a.srv.url, g.a.tok, first, ap);
	va_end(ap);
	return r;
}

static char *write_file(const char *name, const char *text)
{
	char *path = fx_write_file(g.a.srv.dir, name, text);

	assert_non_null(path);
	return path;
}

static void create(const char *name, const char *project, const char *resource)
{
	char def[512], file[64];
	struct fx_run r;

	snprintf(def, sizeof(def),
		 "{\"name\":\"%s\",\"project\":\"%s\",\"metric\":\"cpu.util\","
		 "\"resource\":\"%s\",\"period\":60,\"evaluation_periods\":1,"
		 "\"comparison\":\"gt\",\"threshold\":90}",
		 name, project, resource);
	snprintf(file, sizeof(file), "%s.json", name);
	r = vigie("alarms", "create", "--file", write_file(file, def), NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	fx_run_free(&r);
}

/* Alarms on vm-n (acme) and vm-o (no names); vm-n goes to alarm. */
static void test_alarms_list_names(void **state)
{
	struct fx_run r;
	char l[512];

	create("web-hot", PID, "vm-n");
	create("other-hot", "p-other", "vm-o");
	for (int k = 2; k < 4; k++) {
		struct vg_batch *b = batch(g.t0 + k * MIN, 99);
		assert_int_equal(vg_alarm_engine_batch(g.a.e, b), 0);
		vg_batch_free(b);
	}

	r = vigie("alarms", "list", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(fx_line_of(r.out, "web-hot", l, sizeof(l)));
	assert_non_null(strstr(l, " acme "));
	assert_non_null(strstr(l, " web-1 "));
	assert_null(strstr(l, PID));
	/* no names sent: the ids */
	assert_non_null(fx_line_of(r.out, "other-hot", l, sizeof(l)));
	assert_non_null(strstr(l, " p-other "));
	assert_non_null(strstr(l, " vm-o "));
	fx_run_free(&r);

	r = vigie("alarms", "list", "--ids", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(fx_line_of(r.out, "web-hot", l, sizeof(l)));
	assert_non_null(strstr(l, PID));
	assert_non_null(strstr(l, " vm-n "));
	assert_null(strstr(l, "web-1"));
	fx_run_free(&r);

	/* --project by name */
	r = vigie("alarms", "list", "--project", "acme", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.out, "web-hot"));
	assert_null(strstr(r.out, "other-hot"));
	fx_run_free(&r);
}

static void test_alarms_show_history_names(void **state)
{
	struct fx_run r;
	char l[512];

	r = vigie("alarms", "show", "web-hot", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.out, "\nProject          acme (" PID ")\n"));
	assert_non_null(strstr(r.out, "\nResource         web-1 (vm-n)\n"));
	assert_non_null(strstr(r.out, "RESOURCE  NAME   STATE"));
	assert_non_null(fx_line_of(r.out, "vm-n  ", l, sizeof(l)));
	assert_memory_equal(l, "vm-n      web-1  alarm", 21);
	fx_run_free(&r);
	r = vigie("alarms", "show", "web-hot", "--ids", NULL);
	assert_non_null(strstr(r.out, "\nProject          " PID "\n"));
	assert_non_null(strstr(r.out, "\nResource         vm-n\n"));
	assert_null(strstr(r.out, "web-1"));
	fx_run_free(&r);

	r = vigie("alarms", "history", "web-hot", "--type", "transition", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.out, "TYPE        RESOURCE  NAME   DETAIL"));
	assert_non_null(fx_line_of(r.out, "transition", l, sizeof(l)));
	assert_non_null(strstr(l, "  vm-n      web-1  "));
	fx_run_free(&r);
	r = vigie("alarms", "history", "web-hot", "--type", "transition", "--ids", NULL);
	assert_null(strstr(r.out, "web-1"));
	fx_run_free(&r);
}

static struct fx_run watch_cmd(void)
{
	return vigie("alarms", "watch", "--project", "acme", "--count", "1", NULL);
}

/* watch prints the names the notification carries; --project by name */
static void test_watch_names(void **state)
{
	struct vg_alarm_hub_stats hs;
	struct fx_watch w;

	assert_int_equal(fx_watch_start(&w, watch_cmd, g.a.hub, &hs), 0);
	assert_int_equal(hs.subscribers, 1);
	/* both alarms back to ok: only acme's is printed */
	for (int k = 4; k < 6; k++) {
		struct vg_batch *b = batch(g.t0 + k * MIN, 10);
		assert_int_equal(vg_alarm_engine_batch(g.a.e, b), 0);
		vg_batch_free(b);
	}
	fx_watch_end(&w);
	assert_int_equal(w.r.rc, VG_EXIT_OK);
	assert_non_null(strstr(w.r.out, " acme/web-hot moderate alarm -> ok on web-1 (vm-n): "));
	fx_run_free(&w.r);
}

static void test_silences_names(void **state)
{
	struct fx_run r;
	char l[512];

	r = vigie("alarms", "silence", "--file",
		  write_file("s.json", "{\"matchers\":{\"resource\":\"vm-n\",\"project\":\"" PID "\"},"
				       "\"duration\":\"2h\",\"created_by\":\"ops\",\"comment\":\"reboot\"}"),
		  NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	fx_run_free(&r);
	r = vigie("alarms", "silences", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(fx_line_of(r.out, "vm-n", l, sizeof(l)));
	assert_non_null(strstr(l, "} [resource web-1, project acme]  by ops: reboot"));
	fx_run_free(&r);
	r = vigie("alarms", "silences", "--ids", NULL);
	assert_null(strstr(r.out, "web-1"));
	fx_run_free(&r);
}

/* A notification group waiting to be sent names its project (vm-x's:
 * vm-n is silenced by the test before). */
static void test_groups_names(void **state)
{
	struct fx_run r;
	char l[512];

	r = vigie("alarms", "create", "--file",
		  write_file("g.json", "{\"name\":\"db-grouped\",\"project\":\"p-x1\","
				       "\"metric\":\"cpu.util\",\"resource\":\"vm-x\",\"period\":60,"
				       "\"evaluation_periods\":1,\"comparison\":\"gt\",\"threshold\":90,"
				       "\"notify_group\":{\"by\":[\"alarm\"],\"wait\":\"1h\"},"
				       "\"actions\":{\"alarm\":[\"log://\"]}}"),
		  NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	fx_run_free(&r);
	for (int k = 10; k < 12; k++) {
		struct vg_batch *b = batch(g.t0 + k * MIN, 99);
		assert_int_equal(vg_alarm_engine_batch(g.a.e, b), 0);
		vg_batch_free(b);
	}
	r = vigie("alarms", "groups", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(fx_line_of(r.out, "db-grouped", l, sizeof(l)));
	assert_non_null(strstr(l, "  1 members  shared (p-x1)  "));
	fx_run_free(&r);
	r = vigie("alarms", "groups", "--ids", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(fx_line_of(r.out, "db-grouped", l, sizeof(l)));
	assert_non_null(strstr(l, "  1 members  p-x1  "));
	assert_null(strstr(l, "shared"));
	fx_run_free(&r);
}

/* A project name two projects share: refused, naming both. */
static void test_ambiguous_project(void **state)
{
	static const char *const cmds[][4] = {
		{"resources", NULL},
		{"top", "--once", NULL},
		{"alarms", "list", NULL},
	};

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *a[8] = {0};
		size_t n = 0;
		while (cmds[i][n]) {
			a[n] = cmds[i][n];
			n++;
		}
		a[n] = "--project";
		a[n + 1] = "shared";
		struct fx_run r = vigie(a[0], a[1], a[2], a[3], a[4], NULL);
		assert_int_equal(r.rc, VG_EXIT_USAGE);
		assert_string_equal(r.out, "");
		assert_non_null(strstr(r.err, "project name 'shared' names 2 projects: p-x1, p-x2; give "
					      "the id\n"));
		fx_run_free(&r);
	}
	/* one of them by id */
	struct fx_run r = vigie("resources", "--project", "p-x1", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.out, "vm-x"));
	assert_null(strstr(r.out, "vm-y"));
	fx_run_free(&r);
}

/* A RESOURCE operand by display name. */
static void test_resource_by_name(void **state)
{
	char s[32], e[32];
	struct fx_run r = vigie("show", "web-1", NULL);

	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_memory_equal(r.out, "ID          vm-n\n", 17);
	fx_run_free(&r);
	r = vigie("latest", "web-1", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.out, "cpu.util"));
	fx_run_free(&r);
	snprintf(s, sizeof(s), "%lld", (long long)(g.t0 / 1000 - 60));
	snprintf(e, sizeof(e), "%lld", (long long)(g.t0 / 1000 + 120));
	r = vigie("measures", "web-1", "cpu.util", "--start", s, "--end", e, "--granularity", "60",
		  NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	assert_non_null(strstr(r.out, "10"));
	fx_run_free(&r);
	/* several resources of that name: refused, naming them */
	r = vigie("show", "db", NULL);
	assert_int_equal(r.rc, VG_EXIT_USAGE);
	assert_string_equal(r.out, "");
	assert_string_equal(r.err, "vigie show: display name 'db' names 2 resources: vm-x (active), "
				   "vm-y (active); give the id\n");
	fx_run_free(&r);
	/* an id wins; an unknown name is the API's 404 */
	r = vigie("show", "vm-x", NULL);
	assert_int_equal(r.rc, VG_EXIT_OK);
	fx_run_free(&r);
	r = vigie("show", "ghost", NULL);
	assert_int_equal(r.rc, VG_EXIT_API);
	assert_string_equal(r.err, "vigie: no resource 'ghost' (HTTP 404)\n");
	fx_run_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alarms_list_names),
		cmocka_unit_test(test_alarms_show_history_names),
		cmocka_unit_test(test_watch_names),
		cmocka_unit_test(test_silences_names),
		cmocka_unit_test(test_groups_names),
		cmocka_unit_test(test_ambiguous_project),
		cmocka_unit_test(test_resource_by_name),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
