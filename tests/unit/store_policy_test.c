/*
 * store_policy_test.c — archive policies: [archives] rules are parsed in
 * file order with errors naming file:line:key, and a new series gets the
 * archives of the first rule matching its metric name (else [storage]
 * archives), seen in the archives its file really has.
 *
 * Time is driven through sample timestamps, never slept.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/store.h"

#define T0 1699999980LL
#define MS(s) ((int64_t)(s) * 1000)

static const char conf[] =
	"[storage]\n"
	"archives = 1m:1d,5m:7d,1h:30d\n"
	"[archives]\n"
	"cpu.* = 1m:1d,1h:30d\n"
	"net.*.errors = 5m:7d\n"
	"cpu.time = 5m:2d\n"; /* shadowed by cpu.*: first match wins */

static void rm_rf(const char *dir)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static void test_config_rules(void **state)
{
	struct vg_config c;
	char err[256] = "";

	(void)state;
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, conf, "t.conf", err, sizeof(err)), 0);
	assert_int_equal(c.npolicies, 3);
	assert_string_equal(c.policies[0].pattern, "cpu.*");
	assert_int_equal(c.policies[0].narchives, 2);
	assert_int_equal(c.policies[0].archives[1].resolution_s, 3600);
	assert_string_equal(c.policies[1].pattern, "net.*.errors");
	assert_int_equal(c.policies[1].archives[0].retention_s, 7 * 86400);
	/* keep_ended: 90 days unless set; 0 keeps forever */
	assert_true(c.storage_keep_ended_s == 90 * 86400.0);
	assert_int_equal(vg_config_load_string(&c, "[storage]\nkeep_ended = 0\n",
					       "t.conf", err, sizeof(err)), 0);
	assert_true(c.storage_keep_ended_s == 0);

	/* errors name the file, the line and the key */
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, "[archives]\n\ncpu.* = 1m\n",
					       "bad.conf", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad.conf:3: [archives] cpu.*: '1m'"));
	assert_int_equal(vg_config_load_string(&c, "[storage]\nkeep_ended = soon\n",
					       "bad.conf", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad.conf:2: [storage] keep_ended"));
}

/* Whether the series has an archive of resolution res_s. */
static int has_archive(struct vg_store *s, const char *metric, uint32_t res_s)
{
	struct vg_series out;
	int rc = vg_store_fetch(s, VG_RT_INSTANCE, "vm-1", metric, VG_CF_AVERAGE,
				MS(T0), MS(T0 + 600), res_s, 1, &out);

	vg_series_free(&out);
	assert_true(rc == 0 || rc == -EINVAL);
	return rc == 0;
}

static void test_first_match(void **state)
{
	struct vg_config c;
	struct vg_store *s;
	struct vg_batch *b;
	char dir[64], err[256] = "";

	(void)state;
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, conf, "t.conf", err, sizeof(err)), 0);
	snprintf(dir, sizeof(dir), "/tmp/vigie-policy-test.XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(vg_store_open(dir, &c, &s, err, sizeof(err)), 0);

	assert_string_equal(vg_store_policy_name(s, "cpu.time"), "cpu.*");
	assert_string_equal(vg_store_policy_name(s, "net.0.rx.errors"), "net.*.errors");
	assert_string_equal(vg_store_policy_name(s, "net.0.rx.bytes"), "default");
	assert_string_equal(vg_store_policy_name(s, "memory.used"), "default");

	for (int i = 0; i < 3; i++) {
		b = vg_batch_new("h1", 1, (uint64_t)i + 1, MS(T0 + 60 * i));
		vg_batch_resource(b, VG_RT_INSTANCE, "vm-1", NULL, NULL, MS(T0 + 60 * i));
		vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, 10.0 * i);
		vg_batch_sample(b, "net.0.rx.errors", VG_KIND_COUNTER, i);
		vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 100);
		assert_int_equal(vg_store_write_batch(s, b), 0);
		vg_batch_free(b);
	}
	/* cpu.*: 1m and 1h, not the 5m of the default nor of cpu.time */
	assert_true(has_archive(s, "cpu.time", 60));
	assert_false(has_archive(s, "cpu.time", 300));
	assert_true(has_archive(s, "cpu.time", 3600));
	/* net.*.errors: 5m only */
	assert_false(has_archive(s, "net.0.rx.errors", 60));
	assert_true(has_archive(s, "net.0.rx.errors", 300));
	assert_false(has_archive(s, "net.0.rx.errors", 3600));
	/* no rule: [storage] archives */
	assert_true(has_archive(s, "memory.used", 60));
	assert_true(has_archive(s, "memory.used", 300));
	assert_true(has_archive(s, "memory.used", 3600));
	vg_store_close(s);
	rm_rf(dir);
}

static void test_bad_rule_refused(void **state)
{
	struct vg_config c;
	struct vg_store *s = NULL;
	char dir[64], err[256] = "";

	(void)state;
	vg_config_defaults(&c);
	/* 90 s is not a multiple of the 60 s step */
	assert_int_equal(vg_config_load_string(&c, "[archives]\ndisk.* = 90s:1d\n",
					       "t.conf", err, sizeof(err)), 0);
	snprintf(dir, sizeof(dir), "/tmp/vigie-policy-test.XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(vg_store_open(dir, &c, &s, err, sizeof(err)), -EINVAL);
	assert_null(s);
	assert_non_null(strstr(err, "[archives] disk.*"));
	rm_rf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_rules),
		cmocka_unit_test(test_first_match),
		cmocka_unit_test(test_bad_rule_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
