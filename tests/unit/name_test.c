/*
 * name_test.c — the sanitiser keeps hostile names inside the data dir and
 * never maps two names to one file.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vigie/name.h"

static void test_plain_names_unchanged(void **state)
{
	const char *ok[] = {"6695eb01-f6a4-8304-79aa-97f2502e193f", "vda", "cpu.time",
			    "compute-1.example", "tap7", "host_disk"};
	char out[700];
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_true(vg_name_escape(ok[i], out, sizeof(out)) > 0);
		assert_string_equal(out, ok[i]);
	}
}

static void test_hostile_names(void **state)
{
	const char *bad[] = {"..", ".", "../../etc/passwd", "a/b", ".hidden", "/abs",
			     "x\ny", "a\\b", "%2e%2e", "..%2f", "a:b", "' OR 1=1"};
	char out[700], back[256];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int n = vg_name_escape(bad[i], out, sizeof(out));
		assert_true(n > 0);
		assert_null(strchr(out, '/'));
		assert_true(out[0] != '.');
		assert_true(strcmp(out, ".") && strcmp(out, ".."));
		for (const char *p = out; *p; p++)
			assert_true(*p > 0x20 && *p < 0x7f && *p != '\\' && *p != ':');
		assert_true(vg_name_unescape(out, back, sizeof(back)) >= 0);
		assert_string_equal(back, bad[i]); /* injective: the escape is reversible */
	}
	assert_string_equal((vg_name_escape("../x", out, sizeof(out)), out), "%2E.%2Fx");
}

static void test_no_collisions(void **state)
{
	char a[64], b[64];
	vg_name_escape("a/b", a, sizeof(a));
	vg_name_escape("a%2Fb", b, sizeof(b));
	assert_string_not_equal(a, b);
	vg_name_escape("%", a, sizeof(a));
	vg_name_escape("%25", b, sizeof(b));
	assert_string_not_equal(a, b);
}

static void test_limits(void **state)
{
	char name[VG_NAME_MAX + 2], out[3 * VG_NAME_MAX + 1];
	assert_int_equal(vg_name_escape("", out, sizeof(out)), -EINVAL);
	assert_int_equal(vg_name_escape(NULL, out, sizeof(out)), -EINVAL);
	memset(name, '/', VG_NAME_MAX);
	name[VG_NAME_MAX] = '\0';
	assert_int_equal(vg_name_escape(name, out, sizeof(out)), 3 * VG_NAME_MAX);
	name[VG_NAME_MAX] = 'x';
	name[VG_NAME_MAX + 1] = '\0';
	assert_int_equal(vg_name_escape(name, out, sizeof(out)), -EINVAL);
	assert_int_equal(vg_name_escape("abc", out, 3), -ENAMETOOLONG);
	assert_int_equal(vg_name_unescape("%4", out, sizeof(out)), -EINVAL);
}

static void test_valid(void **state)
{
	assert_true(vg_name_valid("instance-0001"));
	assert_true(vg_name_valid("caf\xc3\xa9"));
	assert_false(vg_name_valid("bad\x01"));
	assert_false(vg_name_valid("\xc3("));
	assert_false(vg_name_valid("\xff"));
	assert_false(vg_name_valid(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_names_unchanged),
		cmocka_unit_test(test_hostile_names),
		cmocka_unit_test(test_no_collisions),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
