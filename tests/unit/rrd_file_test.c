/*
 * rrd_file_test.c — the conversion that a kill leaves safe
 * (collector/rrd_file.h: vg_rrd_file_convert_safe, vg_rrd_file_conv_cleanup)
 * on real librrd files in a temporary directory: the file is replaced
 * only by a converted side file, never written in place; a failed check
 * leaves it byte for byte and no side file; a layout with nothing to
 * change leaves no side file either (rename(2) of two links to one inode
 * does nothing); and the cleanup removes what a killed run leaves — the
 * side file, librrd's temporary files, an older version's undo link that
 * is the file itself — while it leaves an undo link that is another file
 * and puts one back over a missing file. The kill itself, at each step, is
 * tests/integration/storage_convert_kill_test.sh.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "collector/rrd_file.h"

struct fx {
	char dir[64];
	char path[128];
};

static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static int exists(const char *fmt, const char *a)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), fmt, a);
	return !lstat(p, &st);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/vg-rrdfile-XXXXXX");
	if (!f || !mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/s.rrd", f->dir);
	/* one 1 min tier, as vigie creates it: AVERAGE, MIN, MAX */
	if (sh("rrdtool create '%s' --start 1699999920 --step 60 DS:v:GAUGE:600:U:U "
	       "RRA:AVERAGE:0.5:1:1440 RRA:MIN:0.5:1:1440 RRA:MAX:0.5:1:1440 && "
	       "rrdtool update '%s' 1699999980:1 1700000040:2 1700000100:3",
	       f->path, f->path))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	sh("rm -rf '%s'", f->dir);
	free(f);
	return 0;
}

static const struct vg_archive one[] = {{60, 86400}};
static const struct vg_archive two[] = {{60, 86400}, {300, 7 * 86400}};

static int refuse(void *ctx, const char *side, char *why, size_t whylen)
{
	int *called = ctx;

	*called = 1;
	assert_true(access(side, R_OK) == 0); /* the converted side file */
	snprintf(why, whylen, "refused");
	return -EIO;
}

static void test_convert_replaces_the_file(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_layout lay = {60, 600, two, 2};
	char msg[256] = "";
	struct stat a, b;

	assert_int_equal(stat(f->path, &a), 0);
	assert_int_equal(vg_rrd_file_convert_safe(f->path, &lay, NULL, NULL, msg, sizeof(msg)), 0);
	assert_int_equal(stat(f->path, &b), 0);
	assert_true(a.st_ino != b.st_ino); /* renamed over, not written in place */
	assert_int_equal(sh("test $(rrdtool info '%s' | grep -c '^rra\\[[0-9]*\\]\\.cf') = 6",
			    f->path),
			 0);
	assert_false(exists("%s.vigie-convert", f->path));
}

static void test_refused_check_leaves_the_file(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_layout lay = {60, 600, two, 2};
	char msg[256] = "";
	int called = 0;

	assert_int_equal(sh("cp '%s' '%s.saved'", f->path, f->path), 0);
	assert_int_equal(vg_rrd_file_convert_safe(f->path, &lay, refuse, &called, msg,
						  sizeof(msg)),
			 -EIO);
	assert_true(called);
	assert_string_equal(msg, "refused");
	assert_int_equal(sh("cmp -s '%s' '%s.saved'", f->path, f->path), 0);
	assert_false(exists("%s.vigie-convert", f->path));
}

static void test_nothing_to_change_leaves_no_side_file(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_layout lay = {60, 600, one, 1};
	char msg[256] = "";

	assert_int_equal(sh("cp '%s' '%s.saved'", f->path, f->path), 0);
	assert_int_equal(vg_rrd_file_convert_safe(f->path, &lay, NULL, NULL, msg, sizeof(msg)), 0);
	assert_int_equal(sh("cmp -s '%s' '%s.saved'", f->path, f->path), 0);
	assert_false(exists("%s.vigie-convert", f->path));
}

static void test_cleanup(void **state)
{
	struct fx *f = *state;
	char note[2048] = "";

	/* nothing to do */
	assert_int_equal(vg_rrd_file_conv_cleanup(f->path, note, sizeof(note)), 0);
	assert_string_equal(note, "");
	/* what a killed run leaves, and an older version's undo link that
	 * is the file itself; a neighbour that is not a leftover stays */
	assert_int_equal(sh("cd '%s' && ln s.rrd s.rrd.vigie-convert && "
			    "head -c 100 s.rrd >s.rrd.vigie-convertAb3dE9 && "
			    "head -c 100 s.rrd >s.rrdQw7rT2 && ln s.rrd s.rrd.vigie-convert.old && "
			    "cp s.rrd s2.rrd && cp s.rrd s.rrd.keep",
			    f->dir),
			 0);
	assert_int_equal(vg_rrd_file_conv_cleanup(f->path, note, sizeof(note)), 4);
	assert_non_null(strstr(note, "removed (a link to the file itself)"));
	assert_non_null(strstr(note, "s.rrd.vigie-convertAb3dE9"));
	assert_int_equal(sh("cd '%s' && test \"$(ls | sort | tr '\\n' ' ')\" = 's.rrd s.rrd.keep s2.rrd '",
			    f->dir),
			 0);
	/* an undo link that is another file: which copy is right is not
	 * known, so it stays */
	assert_int_equal(sh("cp '%s' '%s.vigie-convert.old'", f->path, f->path), 0);
	assert_int_equal(vg_rrd_file_conv_cleanup(f->path, note, sizeof(note)), -EEXIST);
	assert_non_null(strstr(note, "left alone"));
	assert_true(exists("%s.vigie-convert.old", f->path));
	/* the file missing: the undo link is put back */
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(vg_rrd_file_conv_cleanup(f->path, note, sizeof(note)), 1);
	assert_non_null(strstr(note, "put back over the missing file"));
	assert_true(exists("%s", f->path));
	assert_false(exists("%s.vigie-convert.old", f->path));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_convert_replaces_the_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_check_leaves_the_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_nothing_to_change_leaves_no_side_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cleanup, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
