/*
 * spool_test.c — the agent's on-disk spool: write, reopen (resume, same
 * stream), strict order, the bound drops the oldest, temporary files are
 * ignored and cleaned, rejected batches move aside, a lost state file is
 * recovered from the batch files, one owner at a time (a second open of
 * a spool in use is -EBUSY, its holder named by vg_fs_flock_holder).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

#include "agent/spool.h"
#include "vigie/fsutil.h"

static char dir[64];

static int rm_one(const char *p, const struct stat *s, int f, struct FTW *w)
{
	return remove(p);
}

static int setup(void **state)
{
	strcpy(dir, "/tmp/vigie-spool-test-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static int exists(const char *rel)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	return access(p, F_OK) == 0;
}

static void write_raw(const char *rel, const char *content)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
}

static void put(struct vg_spool *s, uint64_t seq, const char *text, unsigned *dropped)
{
	assert_int_equal(vg_spool_put(s, seq, text, strlen(text), dropped), 0);
}

static void expect_oldest(struct vg_spool *s, uint64_t seq, const char *text)
{
	uint64_t q = 0;
	void *buf = NULL;
	size_t len = 0;

	assert_int_equal(vg_spool_oldest(s, &q, &buf, &len), 0);
	assert_int_equal(q, seq);
	assert_int_equal(len, strlen(text));
	assert_memory_equal(buf, text, len);
	free(buf);
}

static void test_write_reopen_order(void **state)
{
	struct vg_spool *s;
	uint64_t seq;
	void *buf;
	size_t len;

	assert_int_equal(vg_spool_open(dir, 100, &s), 0);
	uint64_t stream = vg_spool_stream(s);
	assert_true(stream != 0);
	assert_int_equal(vg_spool_next_seq(s), 1);
	assert_int_equal(vg_spool_oldest(s, &seq, &buf, &len), -ENOENT);
	assert_true(exists("state"));
	assert_true(exists("rejected"));
	put(s, 1, "one", NULL);
	put(s, 2, "two", NULL);
	put(s, 3, "three", NULL);
	assert_int_equal(vg_spool_count(s), 3);
	assert_int_equal(vg_spool_next_seq(s), 4);
	assert_true(exists("00000000000000000001.vgb"));
	assert_true(exists("00000000000000000003.vgb"));
	expect_oldest(s, 1, "one");
	/* a seq below next_seq is refused */
	assert_int_equal(vg_spool_put(s, 3, "x", 1, NULL), -EINVAL);
	assert_int_equal(vg_spool_put(s, 4, "", 0, NULL), -EINVAL);
	vg_spool_close(s);

	/* restart: same stream, resume oldest first */
	assert_int_equal(vg_spool_open(dir, 100, &s), 0);
	assert_true(vg_spool_stream(s) == stream);
	assert_int_equal(vg_spool_next_seq(s), 4);
	assert_int_equal(vg_spool_count(s), 3);
	expect_oldest(s, 1, "one");
	assert_int_equal(vg_spool_remove(s, 1), 0);
	assert_false(exists("00000000000000000001.vgb"));
	assert_int_equal(vg_spool_remove(s, 1), -ENOENT);
	expect_oldest(s, 2, "two");
	/* removing out of order keeps the rest in order */
	assert_int_equal(vg_spool_remove(s, 3), 0);
	put(s, 4, "four", NULL);
	expect_oldest(s, 2, "two");
	assert_int_equal(vg_spool_remove(s, 2), 0);
	expect_oldest(s, 4, "four");
	assert_int_equal(vg_spool_remove(s, 4), 0);
	assert_int_equal(vg_spool_count(s), 0);
	vg_spool_close(s);

	/* empty spool: the sequence still continues after a restart */
	assert_int_equal(vg_spool_open(dir, 100, &s), 0);
	assert_int_equal(vg_spool_next_seq(s), 5);
	assert_true(vg_spool_stream(s) == stream);
	/* gaps are allowed (an encode failure does not consume a seq, but
	 * a caller may skip) */
	put(s, 9, "nine", NULL);
	assert_int_equal(vg_spool_next_seq(s), 10);
	vg_spool_close(s);
}

static void test_bound_drops_oldest(void **state)
{
	struct vg_spool *s;
	unsigned dropped = 99;

	assert_int_equal(vg_spool_open(dir, 3, &s), 0);
	put(s, 1, "a", &dropped);
	assert_int_equal(dropped, 0);
	put(s, 2, "b", &dropped);
	put(s, 3, "c", &dropped);
	assert_int_equal(dropped, 0);
	put(s, 4, "d", &dropped);
	assert_int_equal(dropped, 1);
	put(s, 5, "e", &dropped);
	assert_int_equal(dropped, 1);
	assert_int_equal(vg_spool_count(s), 3);
	assert_int_equal(vg_spool_dropped(s), 2);
	assert_false(exists("00000000000000000001.vgb"));
	assert_false(exists("00000000000000000002.vgb"));
	expect_oldest(s, 3, "c");
	vg_spool_close(s);

	/* reopening with a smaller bound keeps the files; the next put
	 * trims to the bound, oldest first */
	assert_int_equal(vg_spool_open(dir, 1, &s), 0);
	assert_int_equal(vg_spool_count(s), 3);
	put(s, 6, "f", &dropped);
	assert_int_equal(dropped, 3);
	assert_int_equal(vg_spool_count(s), 1);
	expect_oldest(s, 6, "f");
	vg_spool_close(s);
}

static void test_tmp_files_ignored(void **state)
{
	struct vg_spool *s;

	/* what a kill -9 in the middle of a write leaves behind, and junk */
	write_raw(".tmp-1234-7", "partial batch");
	write_raw("junk.vgb", "x");
	write_raw("0000000000000000001.vgb", "19 digits");
	write_raw("00000000000000000002.vgb.old", "x");
	write_raw("00000000000000000005.vgb", "five");
	assert_int_equal(vg_spool_open(dir, 10, &s), 0);
	assert_int_equal(vg_spool_count(s), 1);
	assert_false(exists(".tmp-1234-7"));
	assert_true(exists("junk.vgb")); /* not ours: left alone */
	expect_oldest(s, 5, "five");
	/* no state file: a new stream, next seq after the highest file */
	assert_int_equal(vg_spool_next_seq(s), 6);
	vg_spool_close(s);
}

static void test_state_lost_or_behind(void **state)
{
	struct vg_spool *s;

	assert_int_equal(vg_spool_open(dir, 10, &s), 0);
	uint64_t stream = vg_spool_stream(s);
	put(s, 1, "a", NULL);
	vg_spool_close(s);
	/* a crash between the batch rename and the state write: the state
	 * says next_seq 1 but batch 7 exists */
	char st[128];
	snprintf(st, sizeof(st), "stream %016llx\nnext_seq 1\n", (unsigned long long)stream);
	write_raw("state", st);
	write_raw("00000000000000000007.vgb", "seven");
	assert_int_equal(vg_spool_open(dir, 10, &s), 0);
	assert_true(vg_spool_stream(s) == stream);
	assert_int_equal(vg_spool_next_seq(s), 8);
	expect_oldest(s, 1, "a");
	vg_spool_close(s);
	/* a garbled state file: new stream, seq continues after the files */
	write_raw("state", "garbage");
	assert_int_equal(vg_spool_open(dir, 10, &s), 0);
	assert_true(vg_spool_stream(s) != stream);
	assert_int_equal(vg_spool_next_seq(s), 8);
	vg_spool_close(s);
}

static void test_reject_and_unreadable(void **state)
{
	struct vg_spool *s;
	uint64_t seq = 0;
	void *buf = NULL;
	size_t len;

	assert_int_equal(vg_spool_open(dir, 10, &s), 0);
	put(s, 1, "bad", NULL);
	put(s, 2, "good", NULL);
	assert_int_equal(vg_spool_reject(s, 1), 0);
	assert_false(exists("00000000000000000001.vgb"));
	assert_true(exists("rejected/00000000000000000001.vgb"));
	assert_int_equal(vg_spool_reject(s, 1), -ENOENT);
	expect_oldest(s, 2, "good");
	assert_int_equal(vg_spool_count(s), 1);
	vg_spool_close(s);
	/* rejected batches are never picked up again after a restart */
	assert_int_equal(vg_spool_open(dir, 10, &s), 0);
	assert_int_equal(vg_spool_count(s), 1);
	expect_oldest(s, 2, "good");
	assert_int_equal(vg_spool_remove(s, 2), 0);
	vg_spool_close(s);

	/* an empty file (impossible through put) is reported, not sent */
	write_raw("00000000000000000003.vgb", "");
	assert_int_equal(vg_spool_open(dir, 10, &s), 0);
	assert_int_equal(vg_spool_oldest(s, &seq, &buf, &len), -EIO);
	assert_int_equal(seq, 3);
	assert_int_equal(vg_spool_reject(s, 3), 0);
	assert_int_equal(vg_spool_oldest(s, &seq, &buf, &len), -ENOENT);
	vg_spool_close(s);
}

/* rejected/ keeps the newest VG_SPOOL_REJECTED_MAX batches: a refusal
 * that lasts moved one batch per poll there for ever, until the host's
 * disk was full. The bound holds across a reopen, the oldest go first,
 * and the deletions are counted. */
static void test_rejected_bounded(void **state)
{
	struct vg_spool *s;
	char rel[64];
	int n = VG_SPOOL_REJECTED_MAX + 5;

	(void)state;
	assert_int_equal(vg_spool_open(dir, 1000, &s), 0);
	for (int i = 1; i <= n; i++) {
		put(s, (uint64_t)i, "refused", NULL);
		assert_int_equal(vg_spool_reject(s, (uint64_t)i), 0);
	}
	assert_int_equal(vg_spool_rejected_deleted(s), 5);
	for (int i = 1; i <= n; i++) {
		snprintf(rel, sizeof(rel), "rejected/%020d.vgb", i);
		assert_int_equal(exists(rel), i > 5);
	}
	vg_spool_close(s);
	assert_int_equal(vg_spool_open(dir, 1000, &s), 0);
	put(s, (uint64_t)n + 1, "refused", NULL);
	assert_int_equal(vg_spool_reject(s, (uint64_t)n + 1), 0);
	assert_int_equal(vg_spool_rejected_deleted(s), 1);
	assert_false(exists("rejected/00000000000000000006.vgb"));
	assert_true(exists("rejected/00000000000000000007.vgb"));
	vg_spool_close(s);

	/* a directory that filled up before the bound existed: the next
	 * refusal deletes down to the bound at once */
	for (int i = 1000; i < 1300; i++) {
		snprintf(rel, sizeof(rel), "rejected/%020d.vgb", i);
		write_raw(rel, "old");
	}
	assert_int_equal(vg_spool_open(dir, 1000, &s), 0);
	put(s, 2000, "refused", NULL);
	assert_int_equal(vg_spool_reject(s, 2000), 0);
	assert_int_equal(vg_spool_rejected_deleted(s), 301);
	assert_true(exists("rejected/00000000000000002000.vgb"));
	assert_true(exists("rejected/00000000000000001201.vgb"));
	assert_false(exists("rejected/00000000000000001200.vgb"));
	vg_spool_close(s);
}

static void test_bad_dir(void **state)
{
	struct vg_spool *s;
	char p[256];

	assert_int_equal(vg_spool_open("", 10, &s), -EINVAL);
	assert_int_equal(vg_spool_open(dir, 0, &s), -EINVAL);
	write_raw("afile", "x");
	snprintf(p, sizeof(p), "%s/afile/sub", dir);
	assert_true(vg_spool_open(p, 10, &s) < 0);
	/* nested directories are created */
	snprintf(p, sizeof(p), "%s/a/b/c", dir);
	assert_int_equal(vg_spool_open(p, 10, &s), 0);
	vg_spool_close(s);
	vg_spool_close(NULL);
}

/* Two agents on one spool shared its stream and next_seq and overwrote
 * each other's batch files: the second open is refused while the first
 * holds the spool, and allowed once it is closed. */
static void test_one_owner(void **state)
{
	struct vg_spool *a, *b;
	char lock[128];

	assert_int_equal(vg_spool_open(dir, 10, &a), 0);
	assert_int_equal(vg_spool_put(a, vg_spool_next_seq(a), "x", 1, NULL), 0);
	assert_int_equal(vg_spool_open(dir, 10, &b), -EBUSY);
	snprintf(lock, sizeof(lock), "%s/" VG_SPOOL_LOCK, dir);
	assert_int_equal(vg_fs_flock_holder(lock), (long)getpid());
	assert_int_equal(vg_spool_count(a), 1);
	vg_spool_close(a);
	assert_int_equal(vg_fs_flock_holder(lock), 0);
	assert_int_equal(vg_spool_open(dir, 10, &b), 0);
	assert_int_equal(vg_spool_next_seq(b), 2);
	vg_spool_close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_reopen_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bound_drops_oldest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tmp_files_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_lost_or_behind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reject_and_unreadable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rejected_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_owner, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
