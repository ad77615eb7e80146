/*
 * cli_names_test.c — the names people know: where the agent
 * sent Nova's display_name and project_name, `vigie resources` and
 * `vigie top` show them instead of libvirt's domain name and the project
 * id (the resource id stays in its column; --ids brings the raw values
 * back), --project and --name accept them, --output csv writes the same
 * table as CSV (top: the table alone) and --output json is the API's
 * document, untouched; `vigie show` puts the names beside the ids and
 * `vigie aggregate --group-by project` names its columns by project name.
 * Runs
 * in-process (vg_cli_run) against the real API over a real data dir.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../support/api_fixture.h"

#define T0 1794999600LL
#define PID "9f1c0b7e5d2a4c6e8b1d3f5a7c9e0b2d"

static struct fx_api srv;
static char tok[VG_TOKEN_LEN + 1];

static int write_data(void)
{
	struct fx_data d;

	if (fx_data_open(srv.dir, &d))
		return -1;
	srv.store = d.store;
	for (int k = 0; k < 3; k++) {
		int64_t t = (T0 + 60 * k) * 1000;
		struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)k + 1, t);

		vg_batch_resource(b, VG_RT_INSTANCE, "vm-n", "instance-0000002a", NULL, t);
		vg_batch_identity(b, PID, "u1", "small");
		vg_batch_attr(b, "display_name", "web-1");
		vg_batch_attr(b, "project_name", "acme");
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 50 + k);
		vg_batch_resource(b, VG_RT_INSTANCE, "vm-o", "instance-0000002b", NULL, t);
		vg_batch_identity(b, "p-other", "u2", "small");
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 10 + k);
		if (fx_data_write(&d, b))
			return -1;
	}
	fx_data_done(&d);
	return 0;
}

static int setup(void **state)
{
	unsetenv("VIGIE_API");
	unsetenv("VIGIE_TOKEN");
	setenv("VIGIE_CONFIG", "/nonexistent/cli.conf", 1);
	if (fx_tmpdir(srv.dir, sizeof(srv.dir), "clinames-test") || write_data() ||
	    fx_token(srv.dir, NULL, "admin", tok))
		return -1;
	return fx_api_start(&srv, NULL);
}

static int teardown(void **state)
{
	fx_api_stop(&srv);
	vg_cli_set_output("table");
	return 0;
}

static struct fx_run vigie(const char *first, ...)
{
	va_list ap;
	struct fx_run r;

	va_start(ap, first);
	r = fx_vcli(srv.url, tok, first, ap);
	va_end(ap);
	return r;
}

static void test_resources_show_names(void **state)
{
	struct fx_run r = vigie("resources", "--type", "instance", NULL);
	char l[512];

	assert_int_equal(r.rc, 0);
	assert_non_null(fx_line_of(r.out, "vm-n", l, sizeof(l)));
	assert_non_null(strstr(l, "web-1"));
	assert_non_null(strstr(l, "acme"));
	assert_null(strstr(l, "instance-0000002a"));
	assert_null(strstr(l, PID));
	/* a resource without names keeps libvirt's and the id */
	assert_non_null(fx_line_of(r.out, "vm-o", l, sizeof(l)));
	assert_non_null(strstr(l, "instance-0000002b"));
	assert_non_null(strstr(l, "p-other"));
	fx_run_free(&r);

	r = vigie("resources", "--type", "instance", "--ids", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(fx_line_of(r.out, "vm-n", l, sizeof(l)));
	assert_non_null(strstr(l, "instance-0000002a"));
	assert_non_null(strstr(l, PID));
	fx_run_free(&r);
}

static void test_filters_take_names(void **state)
{
	struct fx_run r = vigie("resources", "--project", "acme", NULL);

	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "vm-n"));
	assert_null(strstr(r.out, "vm-o"));
	fx_run_free(&r);
	r = vigie("resources", "--project", PID, NULL);
	assert_non_null(strstr(r.out, "vm-n"));
	assert_null(strstr(r.out, "vm-o"));
	fx_run_free(&r);
	r = vigie("resources", "--name", "web-1", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "vm-n"));
	assert_null(strstr(r.out, "vm-o"));
	fx_run_free(&r);
	r = vigie("top", "--once", "--project", "acme", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "vm-n"));
	assert_null(strstr(r.out, "vm-o"));
	fx_run_free(&r);
}

static void test_top_shows_names(void **state)
{
	struct fx_run r = vigie("top", "--once", "--type", "instance", NULL);
	char l[512];

	assert_int_equal(r.rc, 0);
	assert_non_null(fx_line_of(r.out, "vm-n", l, sizeof(l)));
	assert_non_null(strstr(l, "web-1"));
	assert_non_null(strstr(l, "acme"));
	assert_null(strstr(l, "instance-0000002a"));
	fx_run_free(&r);
	r = vigie("top", "--once", "--ids", NULL);
	assert_non_null(fx_line_of(r.out, "vm-n", l, sizeof(l)));
	assert_non_null(strstr(l, "instance-0000002a"));
	fx_run_free(&r);
}

static void test_output_formats(void **state)
{
	struct fx_run r = vigie("resources", "--type", "instance", "--output", "csv", NULL);
	char l[512];

	assert_int_equal(r.rc, 0);
	assert_memory_equal(r.out, "ID,TYPE,NAME,HOST,PROJECT,STATE,LAST SEEN\r\n", 43);
	assert_non_null(fx_line_of(r.out, "vm-n", l, sizeof(l)));
	assert_memory_equal(l, "vm-n,instance,web-1,h1,acme,active,", 35);
	fx_run_free(&r);
	vg_cli_set_output("table");
	r = vigie("resources", "--type", "instance", "--output", "json", NULL);
	json_t *j = json_loads(r.out, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(j, "resources")), 2);
	assert_non_null(strstr(r.out, "instance-0000002a")); /* the API's, untouched */
	json_decref(j);
	fx_run_free(&r);
	vg_cli_set_output("table");
	/* top in csv: the table alone, never refreshed in place */
	r = vigie("top", "--output", "csv", "--count", "1", NULL);
	assert_int_equal(r.rc, 0);
	assert_memory_equal(r.out, "ID,NAME,HOST,PROJECT,", 21);
	assert_null(strstr(r.out, "vigie top:"));
	assert_null(strchr(r.out, '\033'));
	fx_run_free(&r);
	vg_cli_set_output("table");
	r = vigie("resources", "--output", "xml", NULL);
	assert_int_equal(r.rc, VG_EXIT_USAGE);
	assert_non_null(strstr(r.err, "table, json or csv"));
	fx_run_free(&r);
	vg_cli_set_output("table");
}

static void test_show_names(void **state)
{
	struct fx_run r = vigie("show", "vm-n", NULL);
	char l[512];

	assert_int_equal(r.rc, 0);
	assert_non_null(fx_line_of(r.out, "Name", l, sizeof(l)));
	assert_string_equal(l, "Name        web-1 (instance-0000002a)");
	assert_non_null(fx_line_of(r.out, "Project", l, sizeof(l)));
	assert_string_equal(l, "Project     acme (" PID ")");
	fx_run_free(&r);
	r = vigie("show", "vm-n", "--ids", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(fx_line_of(r.out, "Name", l, sizeof(l)));
	assert_string_equal(l, "Name        instance-0000002a");
	assert_non_null(fx_line_of(r.out, "Project", l, sizeof(l)));
	assert_string_equal(l, "Project     " PID);
	fx_run_free(&r);
	/* no names sent: the raw values alone */
	r = vigie("show", "vm-o", NULL);
	assert_non_null(fx_line_of(r.out, "Name", l, sizeof(l)));
	assert_string_equal(l, "Name        instance-0000002b");
	assert_non_null(fx_line_of(r.out, "Project", l, sizeof(l)));
	assert_string_equal(l, "Project     p-other");
	fx_run_free(&r);
}

static void test_aggregate_names(void **state)
{
	char s[32], e[32];
	struct fx_run r;

	snprintf(s, sizeof(s), "%lld", T0 - 60);
	snprintf(e, sizeof(e), "%lld", T0 + 240);
	r = vigie("aggregate", "cpu.util", "--group-by", "project", "--start", s, "--end", e,
		  "--granularity", "60", NULL);
	assert_int_equal(r.rc, 0);
	/* one column per project, named as people know it where known */
	assert_non_null(strstr(r.out, "acme"));
	assert_non_null(strstr(r.out, "p-other"));
	assert_null(strstr(r.out, PID));
	fx_run_free(&r);
	r = vigie("aggregate", "cpu.util", "--group-by", "project", "--start", s, "--end", e,
		  "--granularity", "60", "--ids", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, PID));
	assert_null(strstr(r.out, "acme"));
	fx_run_free(&r);
	/* --project takes the name: only acme's column (the mean of vm-n) */
	r = vigie("aggregate", "cpu.util", "--project", "acme", "--group-by", "project", "--start",
		  s, "--end", e, "--granularity", "60", NULL);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "acme"));
	assert_null(strstr(r.out, "p-other"));
	assert_non_null(strstr(r.out, "51"));
	fx_run_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resources_show_names),
		cmocka_unit_test(test_filters_take_names),
		cmocka_unit_test(test_top_shows_names),
		cmocka_unit_test(test_output_formats),
		cmocka_unit_test(test_show_names),
		cmocka_unit_test(test_aggregate_names),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
