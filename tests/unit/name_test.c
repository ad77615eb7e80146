/*
 * name_test.c — the sanitiser keeps hostile names inside the data dir and
 * never maps two names to one file.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

/* Every valid name has a path component that fits a file name: the
 * escaped form when it fits, else a readable prefix, '~' and a hash. */
static void test_component(void **state)
{
	char colons[VG_NAME_MAX + 1], colons2[VG_NAME_MAX + 1], cjk[VG_NAME_MAX + 1];
	char vd[83 + 1], a[VG_NAME_COMPONENT_MAX + 1], b[VG_NAME_COMPONENT_MAX + 1];
	char esc[3 * VG_NAME_MAX + 1];
	int n;

	/* ordinary names keep vg_name_escape's form (existing files stay) */
	assert_int_equal(vg_name_component("cpu.time", a, sizeof(a)), 8);
	assert_string_equal(a, "cpu.time");
	assert_int_equal(vg_name_component("x:y", a, sizeof(a)), 5);
	assert_string_equal(a, "x%3Ay");

	memset(colons, ':', sizeof(colons) - 1);
	colons[sizeof(colons) - 1] = '\0';
	memcpy(colons2, colons, sizeof(colons));
	colons2[VG_NAME_MAX - 1] = ';';
	for (size_t i = 0; i + 3 <= VG_NAME_MAX; i += 3)
		memcpy(cjk + i, "\xe9\x9b\xb2", 3);
	cjk[VG_NAME_MAX / 3 * 3] = '\0';
	snprintf(vd, sizeof(vd), "vd%s", colons + VG_NAME_MAX - 81);
	const char *longs[] = {colons, colons2, cjk, vd};
	for (size_t i = 0; i < 4; i++) {
		/* what the store could not hold before */
		assert_true(vg_name_escape(longs[i], esc, sizeof(esc)) >
			    VG_NAME_COMPONENT_MAX);
		n = vg_name_component(longs[i], a, sizeof(a));
		assert_true(n > 0 && n <= VG_NAME_COMPONENT_MAX);
		assert_int_equal((int)strlen(a), n);
		assert_non_null(strchr(a, '~'));
		assert_null(strchr(a, '/'));
		assert_true(a[0] != '.');
		/* the prefix is the escaped name's, cut between escapes */
		assert_memory_equal(a, esc, (size_t)(strchr(a, '~') - a));
		assert_true(strchr(a, '~')[-1] != '%' && strchr(a, '~')[-2] != '%');
		/* same name, same component */
		assert_int_equal(vg_name_component(longs[i], b, sizeof(b)), n);
		assert_string_equal(a, b);
	}
	/* injective: same prefix, different names, different components */
	vg_name_component(colons, a, sizeof(a));
	vg_name_component(colons2, b, sizeof(b));
	assert_string_not_equal(a, b);
	assert_int_equal(vg_name_component("a\nb", a, sizeof(a)), -EINVAL);
	assert_int_equal(vg_name_component(colons, a, 100), -ENAMETOOLONG);
}

/* Control characters of every kind, and broken UTF-8, are not names;
 * vg_text_clean makes text that is. */
static void test_characters(void **state)
{
	const char *bad[] = {"\x1b[31m", "a\x7f", "c1\xc2\x80", "c1\xc2\x9f",
			     "\xc0\x80", "\xe0\x80\x80", "\xed\xa0\x80",
			     "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "\xe9\x9b"};
	const char *good[] = {"\xc2\xa0nbsp", "\xe9\x9b\xb2", "\xf0\x9f\x98\x80",
			      "\xef\xbf\xbd", "\xed\x9f\xbf"};
	char out[16];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(vg_name_valid(bad[i]));
		assert_false(vg_text_valid(bad[i], 0));
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(vg_name_valid(good[i]));
	assert_int_equal(vg_text_clean("a\nb\xc2\x85"
				       "c",
				       out, 15),
			 6);
	assert_string_equal(out, "a?b??c");
	assert_true(vg_text_valid(out, 0));
	/* cut at a character boundary */
	assert_int_equal(vg_text_clean("ab\xe9\x9b\xb2", out, 4), 2);
	assert_string_equal(out, "ab");
	assert_false(vg_text_valid("abcdef", 5));
	assert_true(vg_text_valid("abcde", 5));
}

/* Hidden characters (bidirectional controls, invisible format
 * characters) are refused in names and text, so that no name displays as
 * another; their neighbours and right-to-left letters are not. */
static void test_hidden(void **state)
{
	/* each range's ends, as UTF-8 */
	const char *hidden[] = {
		"\xc2\xad",         /* U+00AD soft hyphen */
		"\xd8\x9c",         /* U+061C Arabic letter mark */
		"\xe1\xa0\x8e",     /* U+180E */
		"\xe2\x80\x8b",     /* U+200B zero width space */
		"\xe2\x80\x8d",     /* U+200D zero width joiner */
		"\xe2\x80\x8e",     /* U+200E LRM */
		"\xe2\x80\x8f",     /* U+200F RLM */
		"\xe2\x80\xaa",     /* U+202A LRE */
		"\xe2\x80\xae",     /* U+202E RLO */
		"\xe2\x81\xa0",     /* U+2060 word joiner */
		"\xe2\x81\xa4",     /* U+2064 */
		"\xe2\x81\xa6",     /* U+2066 LRI */
		"\xe2\x81\xa9",     /* U+2069 PDI */
		"\xe2\x81\xaf",     /* U+206F */
		"\xef\xbb\xbf",     /* U+FEFF */
		"\xef\xbf\xb9",     /* U+FFF9 */
		"\xef\xbf\xbb",     /* U+FFFB */
		"\xf3\xa0\x80\x80", /* U+E0000 */
		"\xf3\xa0\x81\xbf", /* U+E007F */
	};
	const char *shown[] = {
		"\xc2\xac",         /* U+00AC not sign */
		"\xe2\x80\x8a",     /* U+200A hair space */
		"\xe2\x80\x90",     /* U+2010 hyphen */
		"\xe2\x80\xaf",     /* U+202F narrow no-break space */
		"\xe2\x81\xb0",     /* U+2070 superscript zero */
		"\xd7\x90",         /* U+05D0 Hebrew alef */
		"\xd8\xa7",         /* U+0627 Arabic alef */
		"\xef\xbf\xbc",     /* U+FFFC object replacement */
		"\xf3\xa0\x84\x80", /* U+E0100 variation selector 17 */
	};
	char name[32], out[32];

	(void)state;
	for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++) {
		snprintf(name, sizeof(name), "shop%sweb", hidden[i]);
		if (vg_name_valid(name) || vg_text_valid(name, 0))
			fail_msg("hidden character %zu taken", i);
		/* the agent's cleaning turns it into one '?' */
		assert_int_equal(vg_text_clean(name, out, sizeof(out) - 1), 8);
		assert_string_equal(out, "shop?web");
	}
	for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]); i++) {
		snprintf(name, sizeof(name), "shop%sweb", shown[i]);
		if (!vg_name_valid(name))
			fail_msg("visible character %zu refused", i);
	}
	assert_true(vg_char_hidden(0x202e));
	assert_false(vg_char_hidden(0x202f));
	assert_false(vg_char_hidden('a'));
}

/* vg_utf8_prefix: never ends inside a character, never cuts what fits. */
static void test_utf8_prefix(void **state)
{
	const char *s = "ab\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80z"; /* a b é 日 😀 z */
	static const size_t want[] = {0, 1, 2, 2, 4, 4, 4, 7, 7, 7, 7, 11, 12, 12};

	(void)state;
	for (size_t max = 0; max < sizeof(want) / sizeof(want[0]); max++)
		assert_int_equal(vg_utf8_prefix(s, max), want[max]);
	assert_int_equal(vg_utf8_prefix(NULL, 10), 0);
	assert_int_equal(vg_utf8_prefix("", 10), 0);
	/* bytes that are no UTF-8 stay: only a lead byte's continuations
	 * are looked at */
	assert_int_equal(vg_utf8_prefix("\xff\xfe", 1), 1);
}

/* A project name with white space at either end lists and logs as
 * another tenant's: ASCII space, U+00A0, U+2003, U+3000, U+202F and the
 * blank U+3164 at the start or the end are refused, inside they are
 * not; a hidden U+200B is refused anywhere by the name rule itself. */
static void test_project_name_blank_ends(void **state)
{
	/* octal escapes: a hex one would take the "ac" of "acme" too */
	static const char *const bad[] = {
		" acme", "acme ", "acme\302\240", "\302\240acme", "\343\200\200acme",
		"acme\342\200\203", "acme\342\200\257", "\343\205\244acme", "\302\240",
		"acme\342\200\213", "\342\200\213acme"};
	static const char *const good[] = {"acme", "ac me", "ac\xc2\xa0me", "caf\xc3\xa9",
					   "a", "\xe6\x9d\xb1\xe4\xba\xac"};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (vg_project_name_valid(bad[i]))
			fail_msg("project name %zu accepted", i);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!vg_project_name_valid(good[i]))
			fail_msg("project name %zu refused", i);
	assert_true(vg_name_blank_end("acme\xc2\xa0"));
	assert_false(vg_name_blank_end("acme"));
	assert_false(vg_name_blank_end(""));
	/* what an agent's project is taken as: every blank off both ends,
	 * those inside kept; good names are their own part */
	{
		static const char *const in[][2] = {
			{" acme", "acme"}, {"acme \302\240", "acme"}, {"\343\200\200acme\342\200\203", "acme"}, {"\302\240ac\302\240me ", "ac\302\240me"}, {"\302\240 ", ""}, {"", ""}};
		const char *start;
		size_t n;

		for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
			n = vg_name_trim_blank(in[i][0], &start);
			if (n != strlen(in[i][1]) || memcmp(start, in[i][1], n))
				fail_msg("trim %zu: '%.*s'", i, (int)n, start);
		}
		for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
			n = vg_name_trim_blank(good[i], &start);
			assert_true(start == good[i] && n == strlen(good[i]));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_names_unchanged),
		cmocka_unit_test(test_project_name_blank_ends),
		cmocka_unit_test(test_hostile_names),
		cmocka_unit_test(test_no_collisions),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_component),
		cmocka_unit_test(test_characters),
		cmocka_unit_test(test_hidden),
		cmocka_unit_test(test_utf8_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
