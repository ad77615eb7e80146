/*
 * alarm_docs_test.c — every alarm definition shown in docs/alarms.md is
 * created through the real API (vg_api_start, an admin token, the alarm
 * engine with the catalogue check on, as the collector runs it), and must
 * be accepted: a worked example that the collector refuses, or that names a
 * metric nobody produces, fails here. Also the catalogue check itself: an
 * unknown metric is a 400 naming docs/metrics.md, a custom metric the
 * registry has seen for the project is accepted, and allow_unknown_metric
 * accepts a metric that will come.
 *
 * A definition is a ```json block of docs/alarms.md whose object has a
 * "name" (a block that starts with {"name" must parse); they are created in the order of the page, composites after the
 * others (they refer to alarms by name).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "vigie/alarm_engine.h"
#include "vigie/alarm_exec.h"
#include "vigie/api.h"
#include "vigie/batch.h"
#include "vigie/registry.h"

#include "../support/api_fixture.h"

static struct {
	struct fx_api api;
	struct fx_data data;
	struct vg_registry *reg;
	struct vg_alarm_engine *e;
	char token[VG_TOKEN_LEN + 1];
	char auth[VG_TOKEN_LEN + 16];
} g;

static int seen(void *ctx, const char *project, const char *metric)
{
	return vg_registry_metric_seen(ctx, project, metric);
}

static int setup(void **state)
{
	struct vg_alarm_engine_options eo = {0};
	struct vg_api_options ao = {0};
	struct vg_alarm_exec_cmd cmds[3];
	const char *specs[] = {"page-oncall: /bin/true", "scale-out: /bin/true out",
			       "scale-in: /bin/true in"};
	char err[256];
	struct vg_batch *b;

	(void)state;
	if (fx_tmpdir(g.api.dir, sizeof(g.api.dir), "alarm-docs") ||
	    fx_data_open(g.api.dir, &g.data))
		return -1;
	/* a custom metric reported by a resource of project "default" */
	b = vg_batch_new("h1", 1, 1, 1795000000000LL);
	vg_batch_resource(b, VG_RT_INSTANCE, "vm1", "vm1", NULL, 1795000000000LL);
	vg_batch_identity(b, "default", NULL, "m1.small");
	vg_batch_sample(b, "app.queue.depth", VG_KIND_GAUGE, 3);
	if (fx_data_write(&g.data, b))
		return -1;
	g.api.store = g.data.store;
	g.reg = g.data.registry;
	for (int i = 0; i < 3; i++)
		if (vg_alarm_exec_parse(specs[i], &cmds[i], err, sizeof(err)))
			return -1;
	eo.data_dir = g.api.dir;
	eo.agent_interval_s = 10;
	eo.exec = cmds;
	eo.nexec = 3;
	eo.check_metrics = 1;
	eo.metric_seen = seen;
	eo.metric_ctx = g.reg;
	if (vg_alarm_engine_open(&eo, &g.e, err, sizeof(err))) {
		fprintf(stderr, "engine: %s\n", err);
		return -1;
	}
	if (fx_token(g.api.dir, NULL, "admin", g.token))
		return -1;
	snprintf(g.auth, sizeof(g.auth), "Bearer %s", g.token);
	ao.alarms = g.e;
	return fx_api_start(&g.api, &ao);
}

static int teardown(void **state)
{
	(void)state;
	vg_api_stop(g.api.api);
	g.api.api = NULL;
	vg_alarm_engine_close(g.e);
	fx_data_done(&g.data);
	fx_api_stop(&g.api);
	return 0;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

static long post(const char *body, struct fx_answer *a)
{
	return fx_http(g.api.url, "POST", "/v1/alarms", g.auth, body, a);
}

static void test_every_documented_alarm_is_accepted(void **state)
{
	char *doc = slurp("docs/alarms.md"), *p;
	json_t *defs = json_array();
	int created = 0, groups = 0;

	(void)state;
	assert_non_null(doc);
	for (p = doc; (p = strstr(p, "```json\n"));) {
		char *start = p + 8, *end = strstr(start, "```");
		json_error_t je;
		json_t *j;
		assert_non_null(end);
		j = json_loadb(start, (size_t)(end - start), 0, &je);
		if (!j && strncmp(start, "{\"name\"", 8)) {
			p = end + 3; /* an abbreviated sample (notification, history) */
			continue;
		}
		if (!j)
			fail_msg("docs/alarms.md: a json block does not parse: %s "
				 "(line %d): %.80s",
				 je.text, je.line, start);
		if (json_is_object(j) && json_object_get(j, "name"))
			json_array_append(defs, j);
		json_decref(j);
		p = end + 3;
	}
	/* non-composites first: composites name them */
	for (int pass = 0; pass < 2; pass++) {
		size_t i;
		json_t *d;
		json_array_foreach(defs, i, d) {
			const char *type = json_string_value(json_object_get(d, "type"));
			int composite = type && !strcmp(type, "composite");
			struct fx_answer a;
			char *text;
			if (composite != pass)
				continue;
			text = json_dumps(d, 0);
			if (post(text, &a) != 201)
				fail_msg("docs/alarms.md example %s refused (%ld): %s",
					 json_string_value(json_object_get(d, "name")),
					 a.status, a.body ? a.body : "");
			groups += json_object_get(d, "group") != NULL;
			fx_answer_free(&a);
			free(text);
			created++;
		}
	}
	/* the page has worked examples of each kind */
	assert_true(created >= 8);
	assert_true(groups >= 2);
	json_decref(defs);
	free(doc);
}

static void test_unknown_metric_refused_unless_waited_for(void **state)
{
	struct fx_answer a;

	(void)state;
	/* not in the catalogue, never reported: 400 naming the catalogue */
	assert_int_equal(post("{\"name\":\"typo\",\"metric\":\"cpu.utl\","
			      "\"resource\":\"vm1\",\"comparison\":\"gt\","
			      "\"threshold\":1}",
			      &a),
			 400);
	assert_non_null(strstr(a.body, "docs/metrics.md"));
	assert_non_null(strstr(a.body, "allow_unknown_metric"));
	fx_answer_free(&a);
	/* the same, waiting for a metric that will come */
	assert_int_equal(post("{\"name\":\"typo\",\"metric\":\"cpu.utl\","
			      "\"resource\":\"vm1\",\"comparison\":\"gt\","
			      "\"threshold\":1,\"allow_unknown_metric\":true}",
			      &a),
			 201);
	assert_true(json_is_true(json_object_get(a.json, "allow_unknown_metric")));
	fx_answer_free(&a);
	/* a custom metric the project's resources reported is known */
	assert_int_equal(post("{\"name\":\"queue\",\"metric\":\"app.queue.depth\","
			      "\"resource\":\"vm1\",\"comparison\":\"gt\","
			      "\"threshold\":100}",
			      &a),
			 201);
	fx_answer_free(&a);
	/* ... for that project only */
	assert_int_equal(post("{\"name\":\"queue\",\"project\":\"other\","
			      "\"metric\":\"app.queue.depth\",\"resource\":\"vm9\","
			      "\"comparison\":\"gt\",\"threshold\":100}",
			      &a),
			 400);
	fx_answer_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_documented_alarm_is_accepted),
		cmocka_unit_test(test_unknown_metric_refused_unless_waited_for),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
