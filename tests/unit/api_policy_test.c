/*
 * api_policy_test.c — the API over series made by [archives] rules: a
 * series whose rule has no 5 min archive (cpu.* = 1m:15d,1h:455d) still
 * answers an "auto" request whose range needs 5 min points, from its own
 * next coarser archive (1 h), and the answer names its granularities and
 * rule. Real store, registry and HTTP server.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vigie/clock.h"
#include "../support/api_fixture.h"

static void test_auto_without_the_5min_archive(void **state)
{
	struct fx_api f = {0};
	struct vg_config cfg;
	struct vg_registry *reg;
	struct fx_answer a;
	char err[256], tok[VG_TOKEN_LEN + 1], auth[VG_TOKEN_LEN + 16], path[512];
	int64_t now = vg_now_ms() / 60000 * 60000;

	(void)state;
	assert_int_equal(fx_tmpdir(f.dir, sizeof(f.dir), "api-policy"), 0);
	vg_config_defaults(&cfg);
	assert_int_equal(vg_config_load_string(&cfg, "[archives]\ncpu.* = 1m:15d,1h:455d\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_int_equal(vg_store_open(f.dir, &cfg, &f.store, err, sizeof(err)), 0);
	assert_int_equal(vg_registry_open(f.dir, &reg, err, sizeof(err)), 0);
	for (int i = 10; i >= 0; i--) {
		int64_t t = now - 60000LL * i;
		struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)(11 - i), t);
		vg_batch_resource(b, VG_RT_INSTANCE, "vm-1", "vm", NULL, t);
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 50);
		assert_int_equal(vg_registry_update(reg, b), 0);
		assert_int_equal(vg_store_write_batch(f.store, b), 0);
		vg_batch_free(b);
	}
	vg_registry_close(reg);
	assert_int_equal(fx_token(f.dir, NULL, "admin", tok), 0);
	snprintf(auth, sizeof(auth), "Bearer %s", tok);
	assert_int_equal(fx_api_start(&f, NULL), 0);

	/* 8 days: too many 1 min points, so "auto" wants 5 min; the series
	 * has 1 min and 1 h only */
	snprintf(path, sizeof(path), "/v1/measures?resource=vm-1&metric=cpu.util&start=-8d");
	assert_int_equal(fx_http(f.url, "GET", path, auth, NULL, &a), 200);
	assert_int_equal(json_integer_value(json_object_get(a.json, "granularity")), 3600);
	assert_int_equal(json_array_size(json_object_get(a.json, "granularities")), 2);
	assert_string_equal(json_string_value(json_object_get(a.json, "archive_policy")),
			    "cpu.*");
	fx_answer_free(&a);
	/* an explicit 5 min: that archive does not exist */
	snprintf(path, sizeof(path),
		 "/v1/measures?resource=vm-1&metric=cpu.util&start=-1h&granularity=300");
	assert_int_equal(fx_http(f.url, "GET", path, auth, NULL, &a), 400);
	fx_answer_free(&a);
	/* the resource shows each metric's rule */
	assert_int_equal(fx_http(f.url, "GET", "/v1/resources/vm-1", auth, NULL, &a), 200);
	assert_string_equal(json_string_value(json_object_get(json_object_get(
								      json_object_get(a.json, "metrics"), "cpu.util"),
							      "archive_policy")),
			    "cpu.*");
	fx_answer_free(&a);
	fx_api_stop(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auto_without_the_5min_archive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
