/*
 * rrdcached_replay_test.c — a value a restarted rrdcached refuses although
 * its file lacks it still reaches the file (collector/backend_rrdcached.c,
 * update_refused), with a real rrdcached and its -j journal.
 *
 * How the daemon gets there. rrdcached 1.7.2 journals "wrote FILE" after
 * its writer thread has written the values it took from FILE's cache; an
 * UPDATE taken while that write runs is journaled before the "wrote". Its
 * journal replay after a kill -9 then takes the UPDATE (the cache entry's
 * last update time moves to it) and the "wrote" throws the value away: the
 * restarted daemon refuses that time ("illegal attempt to update using
 * time T when last update time is T") while its file stops before T. Seen
 * in the cluster test (FAULTS=rrdcached): the collector re-sent T from its
 * journal (the file was behind), the daemon refused it, the one-by-one
 * retry sent the values after T, and T was lost for good.
 *
 * The test leaves the journal as that race does (the "wrote" appended
 * after the UPDATE, with the daemon killed -9 before writing the value),
 * then plays the store's part: the backend finds the file lost on its
 * first connection to the restarted daemon, the store sends the lost
 * value again with newer ones, and the file must hold every value, none
 * counted as failed.
 *
 * The second test: the same race followed by a newer UPDATE of the file,
 * which the replay keeps, so a FLUSH would write it over the dropped value
 * and hide the loss (seen in the cluster test run 2 and 3 at a time).
 *
 * Then two backends on one daemon as two collectors, a host moving from
 * the first to the second around a failure (a kill -9, a stall): the
 * check after the failure must not FORGET what the daemon holds of the
 * second's, and must count (overtaken) what the daemon lost of the first's
 * when the second's newer values make it unrepairable (docs/scaling.md
 * "What holds now, and what does not").
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <rrd.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/log.h"
#include "vigie/registry.h"
#include "vigie/store.h"
#include "collector/backend.h"
#include "collector/journal.h"
#include "vigie/rrdcached.h"
#include "rrdcached_backend_fixture.h"
#include "../support/proc_stall.h"

#define T0 1699999980LL /* a minute boundary */
#define MS(s) ((int64_t)(s)*1000)

struct fx {
	struct hbf h; /* dir, daemon, layout, backend */
	struct vg_rrd_loc loc;
	struct vg_store *store_p; /* lost_while_moving's P */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char msg[256] = "";

	if (!f || hbf_open(&f->h, "replay-test", 1, 90))
		return -1;
	if (f->h.be->ops->locate(f->h.be, VG_RT_HOST, "node1", "load.1", &f->loc) ||
	    f->h.be->ops->create(f->h.be, &f->loc, VG_KIND_GAUGE, MS(T0), &f->h.lay, msg,
				 sizeof(msg), 0)) {
		fprintf(stderr, "# create: %s\n", msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	hbf_close(&f->h);
	free(f);
	return 0;
}

static double val(int minute)
{
	return 100.0 + minute;
}

/* Minutes from..to of the series in one update (BATCH: as one item of
 * update_many, which the store uses for many series); its result. */
/* Minutes FROM..TO of LOC sent to BE, through update_many when BATCH
 * (as the store's storage thread), else update. */
static struct vg_rrd_result update_on(struct vg_rrd_backend *be, struct vg_rrd_loc *loc, int from,
				      int to, int batch)
{
	struct vg_rrd_value v[16];
	struct vg_rrd_item it;
	size_t n = 0;

	for (int m = from; m <= to; m++, n++)
		v[n] = (struct vg_rrd_value){MS(T0 + 60 * m), val(m)};
	memset(&it, 0, sizeof(it));
	it.loc = loc;
	it.v = v;
	it.n = n;
	if (batch)
		be->ops->update_many(be, &it, 1);
	else
		be->ops->update(be, loc, v, n, &it.res);
	return it.res;
}

static struct vg_rrd_result update(struct fx *f, int from, int to, int batch)
{
	return update_on(f->h.be, &f->loc, from, to, batch);
}

/* Minutes 1..4 of f's file taken and written (the sync FLUSHes them). */
static void file_holds_1_to_4(struct fx *f)
{
	struct vg_rrd_result res = update(f, 1, 4, 0);

	assert_int_equal(res.written, 4);
	assert_int_equal(f->h.be->ops->sync(f->h.be), 0);
}

/* The daemon's count of repaired cache entries. */
static uint64_t repairs(struct fx *f)
{
	struct vg_store_daemon dm[1];

	assert_int_equal(vg_rrd_rrdcached_state(f->h.be, dm, 1), 1);
	return dm[0].repairs;
}

/* BE's files (one daemon) whose re-send is watched (resend_watch). */
static uint64_t resend_watch(struct vg_rrd_backend *be)
{
	struct vg_store_daemon dm[1];

	assert_int_equal(vg_rrd_rrdcached_state(be, dm, 1), 1);
	return dm[0].resend_watch;
}

/* The newest journal file of the daemon, into out. */
static void newest_journal(struct fx *f, char *out, size_t outlen)
{
	DIR *dp = opendir(f->h.d.journal);
	struct dirent *e;
	char best[256] = "";

	assert_non_null(dp);
	while ((e = readdir(dp)))
		if (!strncmp(e->d_name, "rrd.journal.", 12) && strcmp(e->d_name, best) > 0)
			snprintf(best, sizeof(best), "%s", e->d_name);
	closedir(dp);
	assert_true(best[0]);
	snprintf(out, outlen, "%s/%s", f->h.d.journal, best);
}

/* The file REL under the daemon's base dir (read with librrd, not through
 * the daemon) holds minutes 1..last, each its own value. */
static void check_path(struct fx *f, const char *rel, int last)
{
	char path[PATH_MAX * 2], **names = NULL;
	time_t start = T0, end = T0 + 60 * last;
	unsigned long step = 60, nds = 0;
	rrd_value_t *data = NULL;

	snprintf(path, sizeof(path), "%s/%s", f->h.d.base, rel);
	rrd_clear_error();
	if (rrd_fetch_r(path, "AVERAGE", &start, &end, &step, &nds, &names, &data))
		fail_msg("fetch %s: %s", path, rrd_get_error());
	assert_int_equal(nds, 1);
	assert_int_equal(start, T0);
	for (int m = 1; m <= last; m++)
		if (data[m - 1] != val(m))
			fail_msg("minute %d: %g, want %g", m, data[m - 1], val(m));
	rrd_freemem(names[0]);
	rrd_freemem(names);
	rrd_freemem(data);
}

/* f's file holds minutes 1..last (check_path). */
static void check_file(struct fx *f, int last)
{
	check_path(f, f->loc.path, last);
}

/* The log (stderr) goes to PATH from log_begin to log_end (its returned
 * descriptor), for the words of a line the backend logs. */
static int log_begin(const char *path)
{
	int saved, fd;

	fflush(stderr);
	saved = dup(2);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	assert_true(dup2(fd, 2) == 2);
	close(fd);
	return saved;
}

static void log_end(int saved)
{
	fflush(stderr);
	assert_true(dup2(saved, 2) == 2);
	close(saved);
}

/* 1 when the file PATH holds TEXT (its copy on the test's stderr). */
static int log_has(const char *path, const char *text)
{
	char buf[16384];
	size_t n;
	FILE *fp = fopen(path, "r");

	assert_non_null(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return strstr(buf, text) != NULL;
}

/* A collector's backend on the fixture's daemon with the owners file
 * <dir>/OWNERS, and LOC located on it (the fixture's series, node1
 * load.1). */
static struct vg_rrd_backend *collector_on(struct fx *f, const char *owners,
					   struct vg_rrd_loc *loc)
{
	struct vg_rrd_backend *be = NULL;
	char path[PATH_MAX], err[256] = "";

	snprintf(path, sizeof(path), "%s/%s", f->h.dir, owners);
	if (vg_rrd_rrdcached_open(f->h.d.tcp_addr, f->h.d.base, path, &be, err, sizeof(err)))
		fail_msg("backend on %s: %s", owners, err);
	assert_int_equal(be->ops->locate(be, VG_RT_HOST, "node1", "load.1", loc), 0);
	return be;
}

/* The collector started again (A2): a new backend on A's owners file. */
static struct vg_rrd_backend *restarted_collector(struct fx *f, struct vg_rrd_loc *loc)
{
	return collector_on(f, "owners", loc);
}

/* The first connection to the restarted daemon finds f's file (holding
 * 1..4) behind what the daemon accepted: minutes FROM..TO wait (nothing
 * written) and the file is listed lost, in LOST[0] (LOST: 4 entries). */
static void found_behind(struct fx *f, int from, int to, struct vg_rrd_lost *lost)
{
	struct vg_rrd_result res;

	for (int i = 0; i < 50; i++) {
		res = update(f, from, to, 0);
		if (!res.unavailable || f->h.be->ops->lost(f->h.be, NULL, 0))
			break;
		usleep(100 * 1000);
	}
	assert_int_equal(res.written, 0);
	assert_int_equal(f->h.be->ops->lost(f->h.be, lost, 4), 1);
	assert_true(lost[0].have_ms >= MS(T0 + 240) && lost[0].have_ms < MS(T0 + 300));
}

/* The store puts the lost minute back in front of 6 and 7 (LOST: what
 * found_behind listed), in a BATCH with other series as the cluster did:
 * minutes 5..7 written, none failed. */
static void resent_5_to_7(struct fx *f, struct vg_rrd_lost *lost)
{
	struct vg_rrd_result res;

	f->h.be->ops->resent(f->h.be, lost);
	res = update(f, 5, 7, 1);
	if (res.failed)
		fail_msg("%llu value(s) failed: %s", (unsigned long long)res.failed, res.msg);
	assert_int_equal(res.written, 3);
}

static void test_replayed_update_dropped_by_wrote(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_result res;
	struct vg_rrd_lost lost[4];
	char journal[PATH_MAX];
	FILE *fp;

	file_holds_1_to_4(f);
	/* minute 5 accepted (in the daemon's cache and journal), not written */
	res = update(f, 5, 5, 0);
	assert_int_equal(res.written, 1);
	/* Killed -9. Its journal is buffered (stdio): what it holds of the
	 * last moments is what its buffer had written when the kill came.
	 * Left as the race leaves it: the UPDATE of minute 5, then the
	 * "wrote" of the write of minutes 1..4, which ended after it. */
	assert_int_equal(hrd_kill(&f->h.d, SIGKILL), 0);
	newest_journal(f, journal, sizeof(journal));
	assert_non_null(fp = fopen(journal, "a"));
	fprintf(fp, "update %s %lld.000:%.0f\nwrote %s/%s\n", f->loc.path, (long long)(T0 + 300),
		val(5), f->h.d.base, f->loc.path);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(hrd_restart(&f->h.d), 0);
	usleep(300 * 1000); /* the back-off after the broken connection */

	/* The first connection to the restarted daemon finds the file behind
	 * what it accepted: the values wait ... */
	found_behind(f, 6, 7, lost);
	assert_int_equal(repairs(f), 0);
	/* ... until the store has put the lost minute back in front (and
	 * sends the series in a BATCH with others, as the cluster did) */
	resent_5_to_7(f, &lost[0]);
	/* no refusal to repair: the first verification after the failure
	 * FORGOT the file (check_sent, "A replay that skips a value"),
	 * which also dropped the cache entry ahead of the file. The repair
	 * in update_refused stays for a restart no call of ours saw fail
	 * (not reached here); before that FORGET this counted 1. */
	assert_int_equal(repairs(f), 0);
	assert_int_equal(f->h.be->ops->sync(f->h.be), 0);
	assert_int_equal(f->h.be->ops->lost(f->h.be, NULL, 0), 0);
	check_file(f, 7);
}

/* The journal without the lines of f's file that update the minutes
 * from..to (what the daemon's buffer had written of them at its kill -9,
 * which varies), so that what the test appends is all it replays of them. */
static void journal_drop_minutes_of(const char *journal, const char *path, int from, int to)
{
	char tmp[PATH_MAX + 8], line[4096], prefix[PATH_MAX + 16], at[32];
	FILE *in, *out;

	snprintf(tmp, sizeof(tmp), "%s.new", journal);
	snprintf(prefix, sizeof(prefix), "update %s ", path);
	assert_non_null(in = fopen(journal, "r"));
	assert_non_null(out = fopen(tmp, "w"));
	while (fgets(line, sizeof(line), in)) {
		int drop = 0;
		if (!strncmp(line, prefix, strlen(prefix)))
			for (int m = from; m <= to && !drop; m++) {
				snprintf(at, sizeof(at), " %lld.", (long long)(T0 + 60 * m));
				drop = strstr(line, at) != NULL;
			}
		if (!drop)
			fputs(line, out);
	}
	fclose(in);
	assert_int_equal(fclose(out), 0);
	assert_int_equal(rename(tmp, journal), 0);
}

static void journal_drop_minutes(struct fx *f, const char *journal, int from, int to)
{
	journal_drop_minutes_of(journal, f->loc.path, from, to);
}

/* The killed daemon's newest journal made to hold, of f's file's minutes
 * FROM..TO, exactly one UPDATE each when KEEP (appended in order), none
 * otherwise: its buffered journal may have lost the last lines at the
 * kill, where the cluster test's held them all. */
static void journal_replays(struct fx *f, int from, int to, int keep)
{
	char journal[PATH_MAX];
	FILE *fp;

	newest_journal(f, journal, sizeof(journal));
	journal_drop_minutes(f, journal, from, to);
	if (!keep)
		return;
	assert_non_null(fp = fopen(journal, "a"));
	for (int m = from; m <= to; m++)
		fprintf(fp, "update %s %lld.000:%.0f\n", f->loc.path, (long long)(T0 + 60 * m),
			val(m));
	assert_int_equal(fclose(fp), 0);
}

/* Every journal file of a killed daemon removed (DIR: its -j dir), as for
 * a daemon run without one or that lost it. */
static void journal_clear(const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	char path[PATH_MAX * 2];

	assert_non_null(dp);
	while ((e = readdir(dp)))
		if (!strncmp(e->d_name, "rrd.journal.", 12)) {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			assert_int_equal(unlink(path), 0);
		}
	closedir(dp);
}

/* The daemon killed -9 with every UPDATE of f's minutes 5..8 in its
 * journal, restarted (it replays them), and the back-off after the broken
 * connection past. */
static void killed_replaying_5_to_8(struct fx *f)
{
	assert_int_equal(hrd_kill(&f->h.d, SIGKILL), 0);
	journal_replays(f, 5, 8, 1);
	assert_int_equal(hrd_restart(&f->h.d), 0);
	usleep(300 * 1000);
}

/* The daemon as the race leaves it, f's file holding minutes 1..4: minutes
 * 5 and 6 accepted, not written, and the daemon killed -9 with its journal
 * holding the UPDATE of minute 5, the "wrote" of the write that was
 * running, the UPDATE of minute 6; restarted (it replays 6, not 5). */
static void race_drops_minute_5(struct fx *f)
{
	struct vg_rrd_result res;
	char journal[PATH_MAX];
	FILE *fp;

	file_holds_1_to_4(f);
	/* minutes 5 and 6 accepted, not written */
	res = update(f, 5, 5, 0);
	assert_int_equal(res.written, 1);
	res = update(f, 6, 6, 0);
	assert_int_equal(res.written, 1);
	assert_int_equal(hrd_kill(&f->h.d, SIGKILL), 0);
	newest_journal(f, journal, sizeof(journal));
	journal_drop_minutes(f, journal, 5, 6);
	assert_non_null(fp = fopen(journal, "a"));
	fprintf(fp, "update %s %lld.000:%.0f\nwrote %s/%s\nupdate %s %lld.000:%.0f\n", f->loc.path,
		(long long)(T0 + 300), val(5), f->h.d.base, f->loc.path, f->loc.path,
		(long long)(T0 + 360), val(6));
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(hrd_restart(&f->h.d), 0);
}

/* The same race followed by a newer UPDATE of the file: the replay drops
 * minute 5 and keeps minute 6, so the restarted daemon accepts minute 7
 * and a FLUSH writes 6 over the gap; the file's last update then covers
 * everything the daemon accepted and minute 5 is gone for good unless the
 * first verification after the failure reads what the file itself holds
 * (FORGET, then INFO) and finds it lost. Seen in the cluster test with
 * FAULTS=rrdcached, 2 and 3 scenarios at a time: one series without poll
 * 37, 38 in the file (two unknown minutes of a gauge, heartbeat 90 s). */
static void test_replay_keeps_a_value_after_one_it_dropped(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_lost lost[4];

	race_drops_minute_5(f);
	usleep(300 * 1000); /* the back-off after the broken connection */

	/* the first verification after the failure finds the file behind:
	 * minute 7 waits ... */
	found_behind(f, 7, 7, lost);
	/* ... until the store re-sent minutes 5 and 6 from its journal */
	resent_5_to_7(f, &lost[0]);
	assert_int_equal(f->h.be->ops->sync(f->h.be), 0);
	assert_int_equal(f->h.be->ops->lost(f->h.be, NULL, 0), 0);
	check_file(f, 7);
}

/* The same race met by a collector started again after the daemon came
 * back (the held host case: the holder killed while the daemon is down):
 * a new backend on the same owners file, with no list of files to check,
 * reads the file's last update as the store's start replay does (its
 * journal holds minutes 5 and 6: replay_note, then last_ms with
 * VG_RRD_REPLAY). A FLUSH there wrote minute 6 over the gap and the
 * file's last update (6) made the replay skip minute 5 as already stored:
 * lost for good. The file holds 4, and that is what the replay must read
 * (the check FORGETs the file first); the replay then sends 5 and 6 and
 * nothing waits for a re-send. Its re-send is watched (a refusal would be
 * counted) until the replay wrote 5 and 6, and no longer: a watch left
 * behind cost every later update of the daemon a look-up, for good. */
static void test_replay_after_restart_reads_what_the_file_holds(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_backend *b = NULL;
	struct vg_rrd_loc bloc;
	struct vg_rrd_result res;
	int64_t last = INT64_MIN;

	race_drops_minute_5(f);
	/* the collector started again: its journal holds minutes 5 and 6 */
	b = restarted_collector(f, &bloc);
	assert_string_equal(bloc.path, f->loc.path);
	b->ops->replay_note(b, &bloc, MS(T0 + 300), MS(T0 + 360), INT64_MIN,
			    (const int64_t[]){MS(T0 + 300), MS(T0 + 360)}, 2);
	for (int i = 0; i < 50; i++) { /* the back-off after the restart */
		if (b->ops->last_ms(b, &bloc, &last, VG_RRD_REPLAY) != -EHOSTUNREACH)
			break;
		usleep(100 * 1000);
	}
	if (last < MS(T0 + 240) || last >= MS(T0 + 300))
		fail_msg("last update read at %lld s past T0, the file holds minute 4 (240 s)",
			 (long long)(last / 1000 - T0));
	assert_int_equal(b->ops->lost(b, NULL, 0), 0);
	assert_int_equal(resend_watch(b), 1); /* found lost: its re-send watched */
	res = update_on(b, &bloc, 5, 6, 1);
	if (res.failed)
		fail_msg("%llu value(s) failed: %s", (unsigned long long)res.failed, res.msg);
	assert_int_equal(res.written, 2);
	assert_int_equal(resend_watch(b), 0); /* re-sent and written: decided */
	assert_int_equal(b->ops->sync(b), 0);
	check_file(f, 6);
	b->ops->close(b);
}

/* The same race met by a restarted collector that already holds an idle
 * connection to the daemon when its start replay names the file (made
 * after the daemon's restart, as the store's warm or an open makes one,
 * and checked then, with nothing to check). The replay_note makes the
 * daemon suspect; the replay's read must not take that connection, whose
 * check predates the note: read on it (FLUSH, then INFO), minute 6 was
 * written over the gap and the file read at 6, minute 5 skipped as stored.
 * The pool is dropped and a new connection checks the file first: the
 * file holds 4, and the replay writes 5 and 6. */
static void test_replay_note_drops_an_idle_connection_checked_before(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_backend *b = NULL;
	struct vg_rrd_loc bloc;
	struct vg_rrd_result res;
	int64_t last = INT64_MIN;

	race_drops_minute_5(f);
	b = restarted_collector(f, &bloc);
	/* an idle connection, checked with nothing noted yet */
	b->ops->warm(b);
	b->ops->replay_note(b, &bloc, MS(T0 + 300), MS(T0 + 360), INT64_MIN,
			    (const int64_t[]){MS(T0 + 300), MS(T0 + 360)}, 2);
	for (int i = 0; i < 50; i++) {
		if (b->ops->last_ms(b, &bloc, &last, VG_RRD_REPLAY) != -EHOSTUNREACH)
			break;
		usleep(100 * 1000);
	}
	if (last < MS(T0 + 240) || last >= MS(T0 + 300))
		fail_msg("last update read at %lld s past T0 on the connection made before "
			 "the replay's note; the file holds minute 4 (240 s)",
			 (long long)(last / 1000 - T0));
	res = update_on(b, &bloc, 5, 6, 1);
	if (res.failed)
		fail_msg("%llu value(s) failed: %s", (unsigned long long)res.failed, res.msg);
	assert_int_equal(res.written, 2);
	assert_int_equal(b->ops->sync(b), 0);
	check_file(f, 6);
	b->ops->close(b);
}

/* The start replay reads the files it named in groups
 * (backend_rrdcached.c replay_read: a FLUSH BATCH, then the INFOs
 * pipelined): more files than one group (VG_RRDCD_LAST_MANY_MAX), each
 * with its own last update, read in an order the groups do not follow,
 * one of them gone after the check (removed from the disk): each answer
 * must be its own file's, the gone one's -ENOENT, as read one by one. */
#define NPRE 40
#define GONE 7

static void test_start_replay_reads_each_file_its_own_last_update(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_loc loc[NPRE], bloc[NPRE];
	struct vg_rrd_backend *b = NULL;
	char owners[PATH_MAX], err[256] = "", msg[256] = "", id[32];
	char gone[PATH_MAX * 2];
	int64_t last;

	assert_true(NPRE > VG_RRDCD_LAST_MANY_MAX);
	for (int i = 0; i < NPRE; i++) {
		snprintf(id, sizeof(id), "pre%02d", i);
		assert_int_equal(f->h.be->ops->locate(f->h.be, VG_RT_HOST, id, "load.1", &loc[i]),
				 0);
		if (f->h.be->ops->create(f->h.be, &loc[i], VG_KIND_GAUGE, MS(T0), &f->h.lay, msg,
					 sizeof(msg), 0))
			fail_msg("create %s: %s", id, msg);
		/* file i holds minutes 1..i+1: its own last update */
		for (int m = 1; m <= i + 1; m += 16) {
			int to = m + 15 < i + 1 ? m + 15 : i + 1;
			assert_int_equal(update_on(f->h.be, &loc[i], m, to, 0).written,
					 (uint64_t)(to - m + 1));
		}
	}
	assert_int_equal(f->h.be->ops->sync(f->h.be), 0);

	/* the collector started again: its journal holds each file's newest
	 * value, which the file holds (the check finds it durable) */
	snprintf(owners, sizeof(owners), "%s/owners", f->h.dir);
	if (vg_rrd_rrdcached_open(f->h.d.tcp_addr, f->h.d.base, owners, &b, err, sizeof(err)))
		fail_msg("backend: %s", err);
	for (int i = 0; i < NPRE; i++) {
		int64_t t = MS(T0 + 60 * (i + 1));
		snprintf(id, sizeof(id), "pre%02d", i);
		assert_int_equal(b->ops->locate(b, VG_RT_HOST, id, "load.1", &bloc[i]), 0);
		b->ops->replay_note(b, &bloc[i], t, t, INT64_MIN, &t, 1);
	}
	/* the connection, its check run (a file not named, read as a running
	 * collector reads it), then one file gone */
	assert_int_equal(b->ops->last_ms(b, &f->loc, &last, 0), 0);
	assert_int_equal(b->ops->lost(b, NULL, 0), 0);
	snprintf(gone, sizeof(gone), "%s/%s", f->h.d.base, loc[GONE].path);
	assert_int_equal(unlink(gone), 0);
	for (int i = NPRE - 1; i >= 0; i--) {
		int rc;
		last = INT64_MIN;
		rc = b->ops->last_ms(b, &bloc[i], &last, VG_RRD_REPLAY);
		if (i == GONE) {
			assert_int_equal(rc, -ENOENT);
			continue;
		}
		if (rc || last != MS(T0 + 60 * (i + 1)) + 999)
			fail_msg("file %d: %d, last update %lld s past T0, want %d s", i, rc,
				 (long long)(last / 1000 - T0), 60 * (i + 1));
	}
	b->ops->close(b);
}

/* Minute m of node9 load.1 to the store (value val(m)). */
static int store_minute(struct vg_store *s, int m)
{
	struct vg_batch *b = vg_batch_new("h9", 1, (uint64_t)m, MS(T0 + 60 * m));
	int rc;

	if (!b || !vg_batch_resource(b, VG_RT_HOST, "node9", NULL, NULL, MS(T0 + 60 * m)) ||
	    vg_batch_sample(b, "load.1", VG_KIND_GAUGE, val(m))) {
		vg_batch_free(b);
		return -ENOMEM;
	}
	rc = vg_store_write_batch(s, b);
	vg_batch_free(b);
	return rc;
}

/* Write and sync S until nothing waits (100 tries, 0.1 s apart). */
static void store_settle(struct vg_store *s)
{
	struct vg_store_stats st;

	for (int i = 0; i < 100; i++) {
		int rc = vg_store_flush(s);
		assert_true(rc == 0 || rc == -EIO); /* -EIO: not synced yet */
		vg_store_get_stats(s, &st);
		if (!rc && !st.values_pending)
			break;
		usleep(100 * 1000);
	}
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.write_errors, 0);
}

/* The collector (a child process, PID) killed -9 as it meant to be (WHO
 * names it in the failure). */
static void collector_killed(pid_t pid, const char *who)
{
	int status = 0;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fail_msg("%s: status %#x", who, status);
}

/* The name of node9 load.1's file (store_minute's series) under the
 * daemon's base dir, as every backend on the daemon names it, into REL. */
static void node9_path(struct fx *f, char *rel, size_t len)
{
	struct vg_rrd_loc loc;

	assert_int_equal(f->h.be->ops->locate(f->h.be, VG_RT_HOST, "node9", "load.1", &loc), 0);
	snprintf(rel, len, "%s", loc.path);
}

/* A collector's store on the fixture's daemon, written through, syncing
 * every 300 s (so the tests' kills find values sent and not synced). */
static void store_cfg(struct fx *f, struct vg_config *cfg)
{
	vg_config_defaults(cfg);
	assert_int_equal(
		vg_config_parse_archives("1m:1d", cfg->archives, VG_MAX_ARCHIVES, &cfg->narchives),
		0);
	snprintf(cfg->storage_backend, sizeof(cfg->storage_backend), "rrdcached");
	snprintf(cfg->storage_daemons, sizeof(cfg->storage_daemons), "%s", f->h.d.tcp_addr);
	snprintf(cfg->storage_write_through, sizeof(cfg->storage_write_through), "yes");
	cfg->storage_sync_interval_s = 300;
}

/* The same end to end, with the store: a collector writes minutes 1..4
 * (synced; from minute 0) and 5 and 6 (sent through, its sync every 300 s not yet due)
 * and is killed -9; the daemon, killed -9 too, replays 6 and not 5; the
 * collector started again opens its store on the same data dir, whose
 * start replay must send minute 5 again (before: its last update read
 * by a FLUSH, which wrote 6 over the gap, and 5 skipped as stored). */
static void test_store_replay_after_restart_resends_the_skipped_value(void **state)
{
	struct fx *f = *state;
	struct vg_config cfg;
	struct vg_store *s = NULL;
	struct vg_store_stats st;
	char data[PATH_MAX], rel[PATH_MAX], journal[PATH_MAX], err[256] = "";
	pid_t pid;
	FILE *fp;

	snprintf(data, sizeof(data), "%s/store", f->h.dir);
	store_cfg(f, &cfg);

	/* the first collector, killed -9 once minutes 5 and 6 are sent */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (vg_store_open(data, &cfg, &s, err, sizeof(err)))
			_exit(2);
		for (int m = 0; m <= 4; m++) /* from 0: the row of 1 whole */
			if (store_minute(s, m))
				_exit(3);
		if (vg_store_flush(s)) /* written and synced: the file holds 1..4 */
			_exit(4);
		for (int m = 5; m <= 6; m++)
			if (store_minute(s, m))
				_exit(5);
		for (int i = 0; i < 100; i++) { /* the daemon took them */
			vg_store_get_stats(s, &st);
			if (!st.values_pending && st.values_flushed >= 7)
				raise(SIGKILL);
			usleep(50 * 1000);
		}
		_exit(6);
	}
	collector_killed(pid, "the first collector");

	/* the daemon as the race leaves it (see race_drops_minute_5) */
	assert_int_equal(hrd_kill(&f->h.d, SIGKILL), 0);
	node9_path(f, rel, sizeof(rel));
	newest_journal(f, journal, sizeof(journal));
	journal_drop_minutes_of(journal, rel, 5, 6);
	assert_non_null(fp = fopen(journal, "a"));
	fprintf(fp, "update %s %lld.000:%.0f\nwrote %s/%s\nupdate %s %lld.000:%.0f\n", rel,
		(long long)(T0 + 300), val(5), f->h.d.base, rel, rel, (long long)(T0 + 360), val(6));
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(hrd_restart(&f->h.d), 0);

	/* started again: the replay, then everything written and synced */
	if (vg_store_open(data, &cfg, &s, err, sizeof(err)))
		fail_msg("store: %s", err);
	store_settle(s);
	vg_store_close(s);
	check_path(f, rel, 6);
}

/* Minutes from..to of the series loc written by backend be (one update). */
static struct vg_rrd_result update_be(struct vg_rrd_backend *be, struct vg_rrd_loc *loc, int from,
				      int to)
{
	return update_on(be, loc, from, to, 0);
}

/* The host's other collector (B): a second backend on the same daemon,
 * with its own owners file. */
static struct vg_rrd_backend *second_collector(struct fx *f, struct vg_rrd_loc *loc)
{
	return collector_on(f, "owners-b", loc);
}

/* Minutes from..to of LOC sent by BE until the daemon takes them (50
 * tries, 0.1 s apart: the back-off and the check after a failure); the
 * last try's result. */
static struct vg_rrd_result update_be_taken(struct vg_rrd_backend *be, struct vg_rrd_loc *loc,
					    int from, int to)
{
	struct vg_rrd_result res;

	for (int i = 0; i < 50; i++) {
		res = update_be(be, loc, from, to);
		if (res.written)
			break;
		usleep(100 * 1000);
	}
	return res;
}

/* BE synced until it succeeds (50 tries, 0.1 s apart), then nothing of
 * its found lost. */
static void synced(struct vg_rrd_backend *be)
{
	for (int i = 0; i < 50 && be->ops->sync(be); i++)
		usleep(100 * 1000);
	assert_int_equal(be->ops->sync(be), 0);
	assert_int_equal(be->ops->lost(be, NULL, 0), 0);
}

/* Sync BE until it succeeds (50 tries, 0.1 s apart); a file its check
 * finds lost gets minutes RESEND[k][0]..RESEND[k][1] (k < N) of LOC
 * again, from the journal, as the store does (BATCH: see update_on).
 * Then the sync succeeds and nothing is lost. */
static void sync_resending(struct vg_rrd_backend *be, struct vg_rrd_loc *loc, int batch,
			   const int (*resend)[2], size_t n)
{
	for (int i = 0; i < 50 && be->ops->sync(be); i++) {
		struct vg_rrd_lost lost[2];
		if (be->ops->lost(be, lost, 2) == 1) {
			be->ops->resent(be, &lost[0]);
			for (size_t k = 0; k < n; k++)
				(void)update_on(be, loc, resend[k][0], resend[k][1], batch);
		}
		usleep(100 * 1000);
	}
	assert_int_equal(be->ops->sync(be), 0);
	assert_int_equal(be->ops->lost(be, NULL, 0), 0);
}

/* Two collectors on one daemon, a host moving from the first (A) to the
 * second (B) as the daemon is killed -9 (seen in the cluster test: polls
 * 37-39 of 19 series lost, docs/scaling.md). A's minute 5 is taken by the
 * daemon (cached, journaled), not written; B's first send of minute 6
 * breaks on the kill, so the daemon took nothing of B's for the file but
 * B's list of files to verify keeps it (claimed before the send, taken
 * back to nothing). The restarted daemon replays A's minute 5. B's first
 * check after its failed call FORGOT every file of its list, this one
 * too, dropping A's replayed value; B then wrote minute 6, and A's own
 * check found the file past its minute 5 and counted it durable: minute 5
 * lost for good. A file of which the daemon took nothing of B's needs no
 * check by B: it is neither FORGOTten nor read, and the file holds 1..6. */
static void test_no_forget_of_a_file_the_daemon_took_nothing_of(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_backend *b = NULL;
	struct vg_rrd_loc bloc, bother;
	struct vg_rrd_result res;
	char msg[256] = "";

	b = second_collector(f, &bloc);
	assert_string_equal(bloc.path, f->loc.path);
	/* B holds a verified connection (a series of its own) */
	assert_int_equal(b->ops->locate(b, VG_RT_HOST, "node2", "load.1", &bother), 0);
	if (b->ops->create(b, &bother, VG_KIND_GAUGE, MS(T0), &f->h.lay, msg, sizeof(msg), 0))
		fail_msg("create: %s", msg);
	res = update_be(b, &bother, 1, 1);
	assert_int_equal(res.written, 1);
	assert_int_equal(b->ops->sync(b), 0);

	/* A: minutes 1..4 durable, 5 taken by the daemon only */
	file_holds_1_to_4(f);
	res = update(f, 5, 5, 0);
	assert_int_equal(res.written, 1);

	assert_int_equal(hrd_kill(&f->h.d, SIGKILL), 0);
	/* its journal (buffered: it may lack the last lines) holds the
	 * UPDATE of minute 5, as the cluster test's did */
	journal_replays(f, 5, 5, 1);
	/* B's send of minute 6 breaks: nothing of it taken */
	res = update_be(b, &bloc, 6, 6);
	assert_int_equal(res.written, 0);
	assert_int_equal(hrd_restart(&f->h.d), 0);
	usleep(300 * 1000); /* the back-off after the broken connection */

	/* B goes on with the host: minute 6 written, made durable */
	res = update_be_taken(b, &bloc, 6, 6);
	assert_int_equal(res.written, 1);
	assert_int_equal(b->ops->sync(b), 0);
	assert_int_equal(b->ops->lost(b, NULL, 0), 0);
	/* A's check after its own failure: the file is durable up to 6 */
	synced(f->h.be);
	check_file(f, 6);
	b->ops->close(b);
}

/* The host's previous collector (A) checks late. A's minute 5 is in the
 * file (B's sync wrote it with B's minute 6) but A never verified it, so
 * after the kill -9 A's first check looks at the file again; meanwhile B,
 * now the host's collector, sent minutes 7 and 8 to the restarted daemon
 * (cached, not written). A's check FORGOT the file before reading it,
 * dropping B's 7 and 8; B's sync then found nothing to FLUSH and counted
 * them written: lost for good (seen in the cluster test: polls 32-46 of 28
 * series). A file that already holds A's newest value is durable for A
 * and is not FORGOTten: the file holds 1..8. */
static void test_no_forget_of_a_file_already_past_our_values(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_backend *b = NULL;
	struct vg_rrd_loc bloc;
	struct vg_rrd_result res;

	b = second_collector(f, &bloc);

	file_holds_1_to_4(f);
	res = update(f, 5, 5, 0); /* A's last value, not verified by A */
	assert_int_equal(res.written, 1);
	res = update_be(b, &bloc, 6, 6); /* the host moved to B */
	assert_int_equal(res.written, 1);
	assert_int_equal(b->ops->sync(b), 0); /* the file holds 1..6 */

	assert_int_equal(hrd_kill(&f->h.d, SIGKILL), 0);
	assert_int_equal(hrd_restart(&f->h.d), 0);
	/* B goes on: its old connection breaks, the next one is checked
	 * (nothing of B's to verify), minutes 7 and 8 taken, not written */
	res = update_be_taken(b, &bloc, 7, 8);
	assert_int_equal(res.written, 2);
	/* A's first check after the restart (its sync connects) */
	for (int i = 0; i < 50 && f->h.be->ops->sync(f->h.be); i++)
		usleep(100 * 1000);
	assert_int_equal(f->h.be->ops->lost(f->h.be, NULL, 0), 0);
	assert_int_equal(b->ops->sync(b), 0);
	assert_int_equal(b->ops->lost(b, NULL, 0), 0);
	check_file(f, 8);
	b->ops->close(b);
}

/* The last update of the file REL under the daemon's base dir, read
 * with librrd. */
static int64_t last_update_s_of(struct fx *f, const char *rel)
{
	char path[PATH_MAX * 2];

	snprintf(path, sizeof(path), "%s/%s", f->h.d.base, rel);
	return (int64_t)rrd_last_r(path);
}

/* f's file's last update (last_update_s_of). */
static int64_t last_update_s(struct fx *f)
{
	return last_update_s_of(f, f->loc.path);
}

/* The daemon's count of files overtaken (overtaken_check). */
static uint64_t overtaken(struct fx *f)
{
	struct vg_store_daemon dm[1];

	assert_int_equal(vg_rrd_rrdcached_state(f->h.be, dm, 1), 1);
	return dm[0].overtaken;
}

/* The file holds minutes 1..last, each its own value, but minutes
 * gap..gap_to, which are unknown. */
static void check_file_gap(struct fx *f, int last, int gap, int gap_to)
{
	char path[PATH_MAX * 2], **names = NULL;
	time_t start = T0, end = T0 + 60 * last;
	unsigned long step = 60, nds = 0;
	rrd_value_t *data = NULL;

	snprintf(path, sizeof(path), "%s/%s", f->h.d.base, f->loc.path);
	rrd_clear_error();
	if (rrd_fetch_r(path, "AVERAGE", &start, &end, &step, &nds, &names, &data))
		fail_msg("fetch %s: %s", path, rrd_get_error());
	assert_int_equal(nds, 1);
	for (int m = 1; m <= last; m++) {
		int unknown = m >= gap && m <= gap_to;
		if (unknown ? !isnan(data[m - 1]) : data[m - 1] != val(m))
			fail_msg("minute %d: %g, want %g", m, data[m - 1], unknown ? NAN : val(m));
	}
	rrd_freemem(names[0]);
	rrd_freemem(names);
	rrd_freemem(data);
}

/* A (the host's previous collector) and B (its next one) on one daemon
 * that is killed -9 and restarted: A's minute 5 was taken (cached,
 * journaled unless keep5 is 0), not written; after the restart B sends
 * minute 6 (cached, not written); then A's first check after its failure
 * runs. Returns B (to close). */
static struct vg_rrd_backend *moved_across_restart(struct fx *f, int keep5, int b_syncs)
{
	struct vg_rrd_backend *b = NULL;
	struct vg_rrd_loc bloc;
	struct vg_rrd_result res;

	b = second_collector(f, &bloc);

	file_holds_1_to_4(f);
	res = update(f, 5, 5, 0); /* A's last value: taken, not written */
	assert_int_equal(res.written, 1);

	assert_int_equal(hrd_kill(&f->h.d, SIGKILL), 0);
	/* what the daemon's buffered journal kept of minute 5 */
	journal_replays(f, 5, 5, keep5);
	assert_int_equal(hrd_restart(&f->h.d), 0);
	/* the host is on B now: minute 6 taken by the restarted daemon */
	res = update_be_taken(b, &bloc, 6, 6);
	assert_int_equal(res.written, 1);
	if (b_syncs) /* B's minute 6 written to the file before A's check */
		assert_int_equal(b->ops->sync(b), 0);
	/* A's first check after the restart (its sync connects); a file it
	 * finds lost gets minute 5 again from A's journal, as the store does
	 * (before the fix: the FORGET of B's 6, then this re-send) */
	sync_resending(f->h.be, &f->loc, 1, (const int[][2]){{5, 5}}, 1);
	return b;
}

/* The host's next collector (B) wrote the file after the restart, before
 * the check of the previous one (A), whose minute 5 the daemon replayed
 * from its journal: the file lacks A's newest value, so A's check
 * FORGOT the file, dropping A's replayed 5 and B's 6 from the daemon's
 * cache; A re-sent 5, B's sync found nothing to FLUSH and counted 6
 * written: minute 6 lost for good (the first half of the window
 * docs/scaling.md left open). The daemon holding a newer value than A's
 * (PENDING) says another collector wrote the file since: A FLUSHes it
 * instead, which writes A's 5 and B's 6. */
static void test_no_forget_of_a_file_another_collector_wrote_since(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_backend *b = moved_across_restart(f, 1, 0);

	assert_int_equal(f->h.be->ops->lost(f->h.be, NULL, 0), 0);
	assert_int_equal(overtaken(f), 0);
	assert_int_equal(b->ops->sync(b), 0);
	assert_int_equal(b->ops->lost(b, NULL, 0), 0);
	check_file(f, 6);
	b->ops->close(b);
}

/* The same with A's minute 5 missing from the daemon's journal (its
 * stdio buffer lost it at the kill -9): no re-send can put 5 before B's
 * 6. Before, A's FORGET dropped B's 6 and A re-sent its 5 (6 lost,
 * silently); now B's 6 is written, A's 5 is lost and counted (overtaken,
 * logged): the window that remains (docs/scaling.md) made visible, and
 * the newer value kept (a gauge: 6's minute is unknown too, 4 to 6 being
 * past the heartbeat, but the file's last update is 6). */
static void test_values_lost_by_the_daemon_before_another_collectors(void **state)
{
	struct fx *f = *state;
	char log[PATH_MAX];
	int saved;

	snprintf(log, sizeof(log), "%s/test.log", f->h.dir);
	saved = log_begin(log);
	struct vg_rrd_backend *b = moved_across_restart(f, 0, 0);
	log_end(saved);

	assert_int_equal(f->h.be->ops->lost(f->h.be, NULL, 0), 0);
	assert_int_equal(overtaken(f), 1);
	/* a value the daemon acknowledged: it lost it */
	assert_true(log_has(log, "the daemon lost this collector's values up to"));
	assert_false(log_has(log, "journaled"));
	assert_int_equal(b->ops->sync(b), 0);
	assert_int_equal(b->ops->lost(b, NULL, 0), 0);
	/* the file's last update is B's 6 (written, not dropped); 5 and 6
	 * unknown, since 4 to 6 spans more than the 90 s heartbeat */
	assert_int_equal(last_update_s(f), T0 + 360);
	check_file_gap(f, 6, 5, 6);
	b->ops->close(b);
}

/* The window that stays open (docs/scaling.md "What holds now"): A's
 * minute 5 missing from the daemon's journal, and B's minute 6 written to
 * the file before A's check. The file's last update (6) is past A's
 * newest, so A's check took the file for durable and never knew 5 was
 * lost. It still cannot be repaired, but it is no longer silent: the
 * file's row of minute 5 is unknown, so A counts it (overtaken) and logs
 * it, and leaves the file as it is (B's 6 kept, nothing FORGOTten). */
static void test_values_lost_by_the_daemon_found_after_another_wrote(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_backend *b = moved_across_restart(f, 0, 1);

	assert_int_equal(f->h.be->ops->lost(f->h.be, NULL, 0), 0);
	assert_int_equal(overtaken(f), 1);
	assert_int_equal(b->ops->sync(b), 0);
	assert_int_equal(last_update_s(f), T0 + 360);
	check_file_gap(f, 6, 5, 6);
	b->ops->close(b);
}

/* The same with A's minute 5 in the journal (replayed) and written with
 * B's 6 by B's sync: the file holds A's 5, nothing is counted. */
static void test_values_found_written_after_another_wrote(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_backend *b = moved_across_restart(f, 1, 1);

	assert_int_equal(f->h.be->ops->lost(f->h.be, NULL, 0), 0);
	assert_int_equal(overtaken(f), 0);
	check_file(f, 6);
	b->ops->close(b);
}

/* A2's start replay reads LOC's file (last_ms, VG_RRD_REPLAY) into
 * *LAST, again while the daemon cannot be reached (50 tries, 0.1 s
 * apart: the back-off after a restart); its last answer. */
static int replay_read(struct vg_rrd_backend *a2, struct vg_rrd_loc *loc, int64_t *last)
{
	int rc = -EHOSTUNREACH;

	for (int i = 0; i < 50 && rc == -EHOSTUNREACH; i++)
		if ((rc = a2->ops->last_ms(a2, loc, last, VG_RRD_REPLAY)) == -EHOSTUNREACH)
			usleep(100 * 1000);
	return rc;
}

/* A (the fixture's backend), its file holding 1..4, sends minutes 5 and 6
 * and is killed before its sync: the daemon holds them cached, not
 * written. The collector started again (A2, with LOC); to close. */
static struct vg_rrd_backend *killed_with_5_and_6_cached(struct fx *f, struct vg_rrd_loc *loc)
{
	struct vg_rrd_result res;

	file_holds_1_to_4(f);
	res = update(f, 5, 6, 0);
	assert_int_equal(res.written, 2);
	return restarted_collector(f, loc);
}

/* After A2's start replay read its file (LAST, its last update): B, the
 * host's collector now, sends its minute 7 and syncs; A2's replay sends
 * what the file lacked of its journal (up to 6) and syncs. The file holds
 * 1..7, nothing of A2's lost or counted. Closes A2. */
static void b_writes_7_then_a2_replays(struct fx *f, struct vg_rrd_backend *a2,
				       struct vg_rrd_loc *aloc, int64_t last)
{
	struct vg_rrd_backend *b;
	struct vg_rrd_loc bloc;
	struct vg_rrd_result res;
	struct vg_store_daemon dm[1];
	int sync_rc;

	b = second_collector(f, &bloc);
	res = update_be(b, &bloc, 7, 7);
	assert_int_equal(res.written, 1);
	assert_int_equal(b->ops->sync(b), 0);

	for (int m = (int)((last / 1000 - T0) / 60) + 1; m <= 6; m++)
		(void)update_on(a2, aloc, m, m, 1);
	sync_rc = a2->ops->sync(a2);
	check_file(f, 7);
	assert_int_equal(sync_rc, 0);
	assert_int_equal(a2->ops->lost(a2, NULL, 0), 0);
	assert_int_equal(vg_rrd_rrdcached_state(a2, dm, 1), 1);
	assert_int_equal(dm[0].overtaken, 0);
	a2->ops->close(a2);
	b->ops->close(b);
}

/* A collector killed with minute 5 journaled and never sent (or sent and
 * lost by the daemon: the start replay cannot tell), the host moving to
 * another collector (B), which writes minute 6 (to the file when
 * B_SYNCS, else held cached by the daemon). The collector started again
 * (a backend A2 on A's owners file) names the file to its backend
 * (replay_note) and reads it for the replay (last_ms, VG_RRD_REPLAY): the
 * check finds the file behind minute 5 with B's newer value cached
 * (overtaken_check: FLUSHed) or the file past 5 with 5's row unknown
 * (overtaken_find). Minute 5 cannot be written: counted (overtaken) and
 * logged, in words that do not say the daemon lost it (it may never have
 * had it). LOG gets the path of what was logged meanwhile. */
static void journaled_overtaken(struct fx *f, int b_syncs, char *log, size_t loglen)
{
	struct vg_rrd_backend *a2 = NULL, *b;
	struct vg_rrd_loc aloc, bloc;
	struct vg_rrd_result res;
	struct vg_store_daemon dm[1];
	int64_t last = INT64_MIN;
	int saved, rc;

	file_holds_1_to_4(f);
	/* A is killed with minute 5 in its journal; the host moves to B */
	b = second_collector(f, &bloc);
	res = update_be(b, &bloc, 6, 6);
	assert_int_equal(res.written, 1);
	if (b_syncs)
		assert_int_equal(b->ops->sync(b), 0);

	a2 = restarted_collector(f, &aloc);
	snprintf(log, loglen, "%s/test.log", f->h.dir);
	saved = log_begin(log);
	a2->ops->replay_note(a2, &aloc, MS(T0 + 300), MS(T0 + 300), INT64_MIN,
			     (const int64_t[]){MS(T0 + 300)}, 1);
	rc = replay_read(a2, &aloc, &last);
	log_end(saved);
	assert_int_equal(rc, 0);
	/* B's 6 is written, and the replay skips A's 5 as stored */
	assert_true(last >= MS(T0 + 360));
	assert_int_equal(a2->ops->lost(a2, NULL, 0), 0);
	assert_int_equal(vg_rrd_rrdcached_state(a2, dm, 1), 1);
	assert_int_equal(dm[0].overtaken, 1);
	assert_int_equal(b->ops->sync(b), 0);
	check_file_gap(f, 6, 5, 6);
	a2->ops->close(a2);
	b->ops->close(b);
}

/* A collector (A) killed with no daemon restart, the host moving to
 * another collector (B) meanwhile (seen in the cluster test: 3,589 values
 * of 672 files lost). The daemon still holds A's minutes 5 and 6, cached,
 * not written; B holds minute 7 in its own cache, not sent yet. A started
 * again (A2, on A's owners file) names the file with its journaled
 * minutes (TIMES[0..N): minutes, 5 and 6 at least) and reads it for the
 * replay. Its check once FORGOT the file (nothing cached newer than A's
 * claim, nothing older than its oldest journaled value), dropping A's 5
 * and 6 for a re-send that B's 7, written first, made refused. The daemon
 * holds A's oldest value after the file's last update (it lost no prefix
 * of ours): the check FLUSHes the file, and it holds 1..7, none lost. */
static void killed_collector_values_held(struct fx *f, const int *minutes, size_t n)
{
	struct vg_rrd_backend *a2;
	struct vg_rrd_loc aloc;
	int64_t last = INT64_MIN, times[8];

	a2 = killed_with_5_and_6_cached(f, &aloc);
	for (size_t i = 0; i < n; i++)
		times[i] = MS(T0 + 60 * minutes[i]);
	a2->ops->replay_note(a2, &aloc, times[0], times[n - 1], INT64_MIN, times, n);
	assert_int_equal(replay_read(a2, &aloc, &last), 0);
	/* B writes 7; A2's replay sends what the file lacked of its journal */
	b_writes_7_then_a2_replays(f, a2, &aloc, last);
}

/* A's journal holds minutes 5 and 6 only */
static void test_start_replay_flushes_what_the_daemon_holds_of_ours(void **state)
{
	killed_collector_values_held(*state, (const int[]){5, 6}, 2);
}

/* A's journal holds minutes 3 to 6: its oldest (3) is before the file's
 * last update (4), so only its oldest after that update (5) tells */
static void test_start_replay_flushes_ours_journal_older_than_the_file(void **state)
{
	killed_collector_values_held(*state, (const int[]){3, 4, 5, 6}, 4);
}

/* The fixture whose daemon vg_rrd_rrdcached_test_before_check_flush kills
 * -9, once (NULL: the hook does nothing). */
static struct fx *kill_at_check_flush;

void vg_rrd_rrdcached_test_before_check_flush(void)
{
	struct fx *f = kill_at_check_flush;

	kill_at_check_flush = NULL;
	if (f)
		assert_int_equal(hrd_kill(&f->h.d, SIGKILL), 0);
}

/* killed_collector_values_held with the start replay's FLUSH failing: the
 * check decided to FLUSH the file (the daemon holds A's 5 and 6 cached,
 * A's oldest journaled value after the file's last update), and the
 * daemon is killed -9 before that FLUSH BATCH reaches it (the hook places
 * the kill; the fault is real), then restarted with its journal, cached 5
 * and 6 replayed. Why not a stall (SIGSTOP) timing the FLUSH out, as on a
 * loaded machine: the daemon carries the FLUSH out once it runs again,
 * and the next check would find the file durable whatever it does. The
 * file goes back to d->sent; the next connection's check once found its
 * journaled times dropped with the first decision, took A's oldest value
 * for unknown and FORGOT the file (5 and 6 dropped for the replay's
 * re-send, which B's 7, written first, made refused: lost). Kept until a
 * decision is carried out, the times make that check FLUSH again. */
static void test_start_replay_flush_failed_flushed_by_the_next_check(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_backend *a2;
	struct vg_rrd_loc aloc;
	const int64_t times[] = {MS(T0 + 300), MS(T0 + 360)};
	int64_t last = INT64_MIN;
	int rc;

	a2 = killed_with_5_and_6_cached(f, &aloc);
	a2->ops->replay_note(a2, &aloc, times[0], times[1], INT64_MIN, times, 2);
	/* the first check decides to FLUSH; the daemon dies before it */
	kill_at_check_flush = f;
	rc = a2->ops->last_ms(a2, &aloc, &last, VG_RRD_REPLAY);
	assert_null(kill_at_check_flush); /* the check reached its FLUSH */
	kill_at_check_flush = NULL;
	assert_int_equal(rc, -EHOSTUNREACH);
	journal_replays(f, 5, 6, 1);
	assert_int_equal(hrd_restart(&f->h.d), 0);

	/* the next connection's check: FLUSHed, 5 and 6 in the file */
	assert_int_equal(replay_read(a2, &aloc, &last), 0);
	assert_true(last >= MS(T0 + 360)); /* not FORGOTten: the file holds 6 */

	/* B writes 7; A2's replay sends what the file lacked of its journal
	 * (nothing) */
	b_writes_7_then_a2_replays(f, a2, &aloc, last);
}

/* B's 6 cached, the file behind A's 5 (overtaken_check) */
static void test_journaled_value_overtaken_while_cached(void **state)
{
	char log[PATH_MAX];

	journaled_overtaken(*state, 0, log, sizeof(log));
	assert_true(log_has(log, "the start replay's check: the file lacks this collector's "
				 "journaled values up to"));
	assert_false(log_has(log, "the daemon lost this collector's"));
}

/* B's 6 written, the file past A's 5 (overtaken_find) */
static void test_journaled_value_overtaken_in_the_file(void **state)
{
	char log[PATH_MAX];

	journaled_overtaken(*state, 1, log, sizeof(log));
	assert_true(log_has(log, "the start replay's check: the file lacks this collector's "
				 "journaled value at"));
	assert_false(log_has(log, "the daemon lost this collector's"));
}

/* A's file holding 1..4 and its minute 5 taken, not written; then the
 * daemon stalls (SIGSTOP) under A's write-through of another series
 * (node1 load.5), which times out (100 ms per wait) and breaks A's
 * connection; the daemon runs again (SIGCONT). */
static void stall_breaks_a(struct fx *f)
{
	struct vg_rrd_loc other;
	struct vg_rrd_result res;
	struct vg_rrd_value v[1];
	struct vg_rrd_item it;
	char msg[256] = "";

	assert_int_equal(f->h.be->ops->locate(f->h.be, VG_RT_HOST, "node1", "load.5", &other), 0);
	if (f->h.be->ops->create(f->h.be, &other, VG_KIND_GAUGE, MS(T0), &f->h.lay, msg,
				 sizeof(msg), 0))
		fail_msg("create: %s", msg);
	vg_rrd_rrdcached_write_through_timeout(f->h.be, 400); /* 100 ms per wait */

	file_holds_1_to_4(f);
	res = update(f, 5, 5, 0); /* taken, not written */
	assert_int_equal(res.written, 1);

	/* A's write-through of the other series waits on a stopped daemon */
	assert_int_equal(vg_test_stall(f->h.d.pid), 0); /* every thread stopped */
	v[0] = (struct vg_rrd_value){MS(T0 + 60), val(1)};
	memset(&it, 0, sizeof(it));
	it.loc = &other;
	it.v = v;
	it.n = 1;
	it.no_connect = 1;
	f->h.be->ops->update_many(f->h.be, &it, 1);
	assert_int_equal(it.res.written, 0);
	assert_int_equal(hrd_kill(&f->h.d, SIGCONT), 0);
}

/* A failure that was no restart: the daemon stalls (SIGSTOP) under A's
 * write-through of another series, which times out and breaks A's
 * connection; A's minute 5 of the file stays in the daemon's cache. The
 * host moves to B, which sends minute 6 once the daemon runs again. A's
 * first check after its failure found the file without its minute 5
 * and FORGOT it, dropping 5 and B's 6 from the cache; A re-sent 5 from
 * its journal, and 6 was lost. The daemon holding B's newer value
 * (PENDING), the file is FLUSHed: 5 and 6 written, nothing lost or
 * counted. */
static void test_stall_then_another_collector_nothing_lost(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_backend *b = NULL;
	struct vg_rrd_loc bloc;
	struct vg_rrd_result res;

	b = second_collector(f, &bloc);
	stall_breaks_a(f);

	/* the host is on B now: minute 6 taken, not written */
	res = update_be(b, &bloc, 6, 6);
	assert_int_equal(res.written, 1);
	/* A's first check after its failure (its sync connects); a file it
	 * finds lost gets minute 5 again, as the store does */
	usleep(300 * 1000); /* the back-off after the broken connection */
	sync_resending(f->h.be, &f->loc, 1, (const int[][2]){{5, 5}}, 1);
	assert_int_equal(overtaken(f), 0);
	assert_int_equal(b->ops->sync(b), 0);
	check_file(f, 6);
	b->ops->close(b);
}

/* The same failure that was no restart, the host moving to B only after
 * A's check (the cluster test: the daemon's journal read `73 W 74 F 75 …
 * 83 74 75` for 324 values; no restart of the daemon, no overtaken file).
 * A's check found the file without its minute 5 and the daemon holding
 * nothing newer of B's yet: it FORGOT the file, dropping the 5 the live
 * daemon still held, and marked it lost; B then wrote 6, and A's re-send
 * of 5 was refused as older, lost without being counted. The daemon
 * holding A's oldest value since its last verified sync (no prefix of
 * A's lost), the check FLUSHes the file: 5 written, then B's 6. */
static void test_stall_then_host_moves_after_the_check_nothing_lost(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_backend *b = NULL;
	struct vg_rrd_loc bloc;
	struct vg_rrd_result res;
	int i;

	b = second_collector(f, &bloc);
	stall_breaks_a(f);

	/* A's first check after its failure (its sync connects, once the
	 * back-off has passed), before the host moves */
	for (i = 0; i < 50 && f->h.be->ops->sync(f->h.be) && !f->h.be->ops->lost(f->h.be, NULL, 0);
	     i++)
		usleep(100 * 1000);
	assert_true(i < 50);
	/* the host is on B now: minute 6 taken and written */
	res = update_be(b, &bloc, 6, 6);
	assert_int_equal(res.written, 1);
	assert_int_equal(b->ops->sync(b), 0);
	/* a file A's check found lost gets minute 5 again, as the store does */
	sync_resending(f->h.be, &f->loc, 1, (const int[][2]){{5, 5}}, 1);
	check_file(f, 6);
	assert_int_equal(overtaken(f), 0);
	b->ops->close(b);
}

/* The previous collector's older values still cached when the host's next
 * collector checks (the cluster test with [storage] sync_interval = 300s,
 * docs/scaling.md "Still open"). A's minutes 5 and 6 are taken by the
 * daemon, not written: A syncs every 300 s, so nothing FLUSHed them. The
 * host moves to B, which sends 7 and 8 (taken, not written). The daemon is
 * killed -9 and replays 5..8 from its journal. B's first check after its
 * failure finds the file at 4, behind its newest (8), and the daemon
 * holding nothing newer than B's claim, so it FORGOT the file: A's
 * replayed 5 and 6 dropped with B's own 7 and 8, of which B re-sent only
 * its own; A's check then found the file past its 6 (overtaken, logged):
 * minutes 5 and 6 lost for good (seen: polls 38-50 of 3,262 series, A the
 * host's interim collector after a collector's kill -9, B the restarted
 * one it returned to, then the daemon's kill). A value cached older than
 * the oldest B sent since its last verified sync is another collector's:
 * B FLUSHes the file instead, which writes 5..8. */
static void test_no_forget_of_a_previous_collectors_older_values(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_backend *b = NULL;
	struct vg_rrd_loc bloc;
	struct vg_rrd_result res;

	b = second_collector(f, &bloc);

	file_holds_1_to_4(f);
	res = update(f, 5, 6, 0); /* A's, taken, not written (no sync yet) */
	assert_int_equal(res.written, 2);
	res = update_be(b, &bloc, 7, 8); /* the host moved to B: B's, taken */
	assert_int_equal(res.written, 2);

	killed_replaying_5_to_8(f);

	/* B's first check after its failure (its sync connects); a file it
	 * finds lost gets B's 7 and 8 again from B's journal, as the store
	 * does (all B has: 5 and 6 were A's) */
	sync_resending(b, &bloc, 0, (const int[][2]){{7, 8}}, 1);
	/* then A's, the same way with A's 5 and 6 */
	sync_resending(f->h.be, &f->loc, 1, (const int[][2]){{5, 6}}, 1);
	assert_int_equal(overtaken(f), 0);
	check_file(f, 8);
	b->ops->close(b);
}

/* The same with the host leaving A and coming back (seen in the cluster
 * test at 300 s: h2's poll 3 acknowledged by another collector, 1-2 and
 * 4-46 by the same one, which never synced meanwhile): A's minute 5,
 * B's 6, A's 7 and 8, none written when the daemon is killed -9 and
 * replays them. B's 6 is newer than A's oldest unverified value (5), so
 * by times alone it looks like A's own; A's FORGET dropped it and A
 * re-sent 5, 7 and 8: minute 6 lost for good. The store tells the
 * backend when a host arrives from elsewhere (vg_rrd_loc.arrived_ms,
 * from the receiver's duplicate check): a value cached before that is
 * not taken for A's, so A FLUSHes the file and it holds 1..8. */
static void test_no_forget_of_another_collectors_values_between_ours(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_backend *b = NULL;
	struct vg_rrd_loc bloc;
	struct vg_rrd_result res;
	struct vg_store_daemon dm[1];

	b = second_collector(f, &bloc);

	file_holds_1_to_4(f);
	res = update(f, 5, 5, 0); /* A's, taken, not written */
	assert_int_equal(res.written, 1);
	res = update_be(b, &bloc, 6, 6); /* the host on B for one poll */
	assert_int_equal(res.written, 1);
	f->loc.arrived_ms = MS(T0 + 420); /* back on A (the store's mark) */
	res = update(f, 7, 8, 0);
	assert_int_equal(res.written, 2);

	killed_replaying_5_to_8(f);

	/* A's first check after its failure; a file it finds lost gets A's
	 * 5, 7 and 8 again, as the store does */
	sync_resending(f->h.be, &f->loc, 1, (const int[][2]){{5, 5}, {7, 8}}, 2);
	/* then B's */
	synced(b);
	assert_int_equal(vg_rrd_rrdcached_state(b, dm, 1), 1);
	assert_int_equal(dm[0].overtaken, 0);
	assert_int_equal(overtaken(f), 0);
	check_file(f, 8);
	b->ops->close(b);
}

/* The check after a restart within its overall bound: 100 files whose
 * values the daemon took and had not written when it was killed -9 (its
 * journal replays them), checked by the first connections to the
 * restarted daemon with a bound so short that each checks one group of
 * files (a FORGET BATCH of 32 and their INFOs) and stops: the files left
 * wait for the next connection, which goes on from there (no failure
 * counted, no back-off), and in the end every file is found behind what
 * it accepted (the replayed values FORGOTten: lost, re-sent by the
 * store), each once. With the default bound one connection checks them
 * all (the other tests: no check cut). */
#define NBOUND 100
static void test_check_bound_spreads_the_check(void **state)
{
	struct hbf h;
	struct vg_rrd_loc loc[NBOUND];
	struct vg_rrd_lost lost[NBOUND + 1];
	struct vg_store_daemon dm[1];
	char msg[256] = "", metric[32];
	int64_t have;

	(void)state;
	assert_int_equal(hbf_open(&h, "bound-test", 1, 90), 0);
	for (int i = 0; i < NBOUND; i++) {
		snprintf(metric, sizeof(metric), "m%d", i);
		assert_int_equal(h.be->ops->locate(h.be, VG_RT_HOST, "node1", metric, &loc[i]), 0);
		if (h.be->ops->create(h.be, &loc[i], VG_KIND_GAUGE, MS(T0), &h.lay, msg,
				      sizeof(msg), 0))
			fail_msg("create: %s", msg);
	}
	/* minute 1 of each: taken by the daemon (cached, journaled), not
	 * written; every file waits for a verification */
	struct vg_rrd_item it[NBOUND];
	struct vg_rrd_value v[NBOUND];
	memset(it, 0, sizeof(it));
	for (int i = 0; i < NBOUND; i++) {
		v[i] = (struct vg_rrd_value){MS(T0 + 60), val(1)};
		it[i] = (struct vg_rrd_item){.loc = &loc[i], .v = &v[i], .n = 1};
	}
	h.be->ops->update_many(h.be, it, NBOUND);
	for (int i = 0; i < NBOUND; i++)
		assert_int_equal(it[i].res.written, 1);
	assert_int_equal(vg_rrd_rrdcached_check_bound(h.be, 1), 1);
	/* killed -9 and started again without its -j journal: it lost minute
	 * 1 of every file (with the journal replayed it would hold them, and
	 * the check FLUSH them: nothing lost, nothing to spread) */
	assert_int_equal(hrd_kill(&h.d, SIGKILL), 0);
	journal_clear(h.d.journal);
	assert_int_equal(hrd_restart(&h.d), 0);
	usleep(300 * 1000); /* the back-off after the broken connection */

	/* the first call finds the old connection broken (back-off); then
	 * each call makes a connection whose check takes one group */
	size_t first = 0;
	for (int calls = 0; calls < 100 && h.be->ops->lost(h.be, NULL, 0) < NBOUND; calls++) {
		struct vg_rrd_value nv = {MS(T0 + 120), val(2)};
		struct vg_rrd_result res;
		memset(&res, 0, sizeof(res));
		h.be->ops->update(h.be, &loc[0], &nv, 1, &res);
		assert_int_equal(res.written, 0); /* waits: unchecked, then lost */
		if (!first)                       /* the first check stopped after one group */
			first = h.be->ops->lost(h.be, NULL, 0);
		usleep(50 * 1000);
	}
	assert_true(first > 0 && first <= VG_RRDCD_LAST_MANY_MAX);
	assert_int_equal(h.be->ops->lost(h.be, lost, NBOUND + 1), NBOUND);
	for (int i = 0; i < NBOUND; i++) {
		have = lost[i].have_ms; /* as created (T0 - 1): minute 1 dropped */
		assert_true(have >= MS(T0 - 1) && have < MS(T0 + 60));
	}
	assert_int_equal(vg_rrd_rrdcached_state(h.be, dm, 1), 1);
	/* 100 files, 32 per group: cut after the first three */
	assert_int_equal(dm[0].checks_cut, (NBOUND - 1) / VG_RRDCD_LAST_MANY_MAX);
	assert_int_equal(dm[0].errors, 1); /* the kill's broken call only */
	assert_true(dm[0].up);
	hbf_close(&h);
}

/* Minute m of the series node0..node(n-1) load.1 in one batch to the
 * store (value val(m)). */
static int store_minute_of(struct vg_store *s, int m, int n)
{
	struct vg_batch *b = vg_batch_new("hc", 1, (uint64_t)m + 1, MS(T0 + 60 * m));
	char id[32];
	int rc = b ? 0 : -ENOMEM;

	for (int i = 0; i < n && !rc; i++) {
		snprintf(id, sizeof(id), "node%d", i);
		if (!vg_batch_resource(b, VG_RT_HOST, id, NULL, NULL, MS(T0 + 60 * m)) ||
		    vg_batch_sample(b, "load.1", VG_KIND_GAUGE, val(m)))
			rc = -ENOMEM;
	}
	if (!rc)
		rc = vg_store_write_batch(s, b);
	vg_batch_free(b);
	return rc;
}

/* The start replay's check cut short at [storage] check_max: a store
 * killed -9 with minute 1 of NCUT series sent and not synced, opened
 * again with check_max = 0.001 s. Its first connection checks one group
 * of 32 of the files the journal holds values of and stops; the series
 * it was opened for waits cached (its values written once a later
 * connection has checked it). The store's message said the daemon "does
 * not answer", which it did; now it says the check was cut short and
 * goes on later. In the end every value is in its file. */
#define NCUT 40
static void test_store_replay_check_cut_says_so(void **state)
{
	struct fx *f = *state;
	struct vg_config cfg;
	struct vg_store *s = NULL;
	struct vg_store_stats st;
	struct vg_store_daemon dm[1];
	char data[PATH_MAX], err[256] = "";
	pid_t pid;

	snprintf(data, sizeof(data), "%s/store", f->h.dir);
	store_cfg(f, &cfg);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) { /* the first collector, killed -9 once minute 1 is sent */
		if (vg_store_open(data, &cfg, &s, err, sizeof(err)))
			_exit(2);
		if (store_minute_of(s, 1, NCUT))
			_exit(3);
		for (int i = 0; i < 100; i++) {
			vg_store_get_stats(s, &st);
			if (!st.values_pending && st.values_flushed >= NCUT)
				raise(SIGKILL);
			usleep(50 * 1000);
		}
		_exit(4);
	}
	collector_killed(pid, "the first collector");

	cfg.storage_check_max_s = 0.001;
	if (vg_store_open(data, &cfg, &s, err, sizeof(err)))
		fail_msg("store: %s", err);
	assert_int_equal(vg_store_daemons(s, dm, 1), 1);
	assert_true(dm[0].checks_cut >= 1);
	if (!strstr(vg_store_last_error(s), "was cut short at [storage] check_max") ||
	    strstr(vg_store_last_error(s), "does not answer"))
		fail_msg("the store's message: %s", vg_store_last_error(s));
	for (int i = 0; i < 300; i++) {
		int rc = vg_store_flush(s);
		assert_true(rc == 0 || rc == -EIO); /* -EIO: not synced yet */
		vg_store_get_stats(s, &st);
		assert_int_equal(vg_store_daemons(s, dm, 1), 1);
		if (!rc && !st.values_pending && !dm[0].pending)
			break;
		usleep(100 * 1000);
	}
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.write_errors, 0);
	vg_store_close(s);
	for (int i = 0; i < NCUT; i++) {
		struct vg_rrd_loc loc;
		char id[32];
		snprintf(id, sizeof(id), "node%d", i);
		assert_int_equal(f->h.be->ops->locate(f->h.be, VG_RT_HOST, id, "load.1", &loc), 0);
		assert_true(last_update_s_of(f, loc.path) == T0 + 60);
	}
}

/* Minute m of node9 load.1 as a batch whose host arrived from another
 * collector (vg_batch.arrived, set by the receiver's duplicate check);
 * NULL on out of memory. */
static struct vg_batch *minute_arrived(int m)
{
	struct vg_batch *b = vg_batch_new("h9", 1, (uint64_t)m, MS(T0 + 60 * m));

	if (!b || !vg_batch_resource(b, VG_RT_HOST, "node9", NULL, NULL, MS(T0 + 60 * m)) ||
	    vg_batch_sample(b, "load.1", VG_KIND_GAUGE, val(m))) {
		vg_batch_free(b);
		return NULL;
	}
	b->arrived = 1;
	return b;
}

/* What the receiver of the store in DATA (not running) journals of
 * minute m when the host arrives, and nothing more: the record
 * vg_store_write_batch appends, in a segment after the others, as a
 * collector killed before its storage thread took the value leaves it. */
static void journal_minute_arrived(const char *data, int m)
{
	struct vg_journal j;
	struct vg_batch *b = minute_arrived(m);
	char dir[PATH_MAX + 16], err[256] = "";
	uint64_t *ids = NULL;
	void *sel[1] = {&j};
	size_t n = 0, len = 0;
	int rotate = 0;

	assert_non_null(b);
	snprintf(dir, sizeof(dir), "%s/journal", data);
	if (vg_journal_open(&j, dir, err, sizeof(err)))
		fail_msg("journal: %s", err);
	assert_true(j.owner);
	assert_int_equal(vg_journal_list(&j, &ids, &n), 0);
	assert_true(n >= 1); /* minute 5's, not synced */
	assert_int_equal(vg_journal_encode(&j, b, sel, &len), 0);
	assert_int_equal(vg_journal_append(&j, ids[n - 1] + 1, len, &rotate, err, sizeof(err)), 0);
	free(ids);
	vg_journal_close(&j);
	vg_batch_free(b);
}

/* A host that leaves a collector and comes back, the collector killed
 * -9 on its return (docs/scaling.md, "A collector started again after
 * its host came back"). A (a child process) writes minutes 1..4
 * (synced) and 5 (sent through, its sync every 300 s not yet due: the
 * journal keeps it); the host moves to B, which writes 6 (its first
 * read of the file FLUSHes A's 5 there; 6 is sent, held cached by the
 * daemon); the host comes back to A, whose receiver journals 7 and
 * acknowledges it, and A is killed before its storage thread took 7
 * (whose arrival FLUSH would have written B's 6 first). The kill at that
 * point is made exact by writing A's journal record of 7 after the kill
 * of A at 5, with the journal's own code. With KILL_DAEMON the daemon is
 * killed -9 too and restarted, its -j journal holding B's 6 (as the
 * kill leaves it when the journal had it). A started again replays 5
 * and 7: its check found the file behind 7 and the daemon holding 6,
 * between A's oldest (5) and newest (7), took it for A's and FORGOT it;
 * A re-sent 7, and B's next sync or check found nothing amiss (the
 * file's row of 6 holds 7's value): minute 6 lost for good. The journal
 * now marks 7's record as an arrival, so the check knows a cached value
 * older than 7 may be another collector's and FLUSHes the file instead:
 * it holds 1..7. */
static void host_came_back(struct fx *f, int kill_daemon)
{
	struct vg_config cfg;
	struct vg_store *a = NULL, *b = NULL;
	struct vg_store_stats st;
	struct vg_store_daemon dm[1];
	struct vg_batch *bt;
	char adata[PATH_MAX], bdata[PATH_MAX], rel[PATH_MAX], err[256] = "";
	pid_t pid;

	snprintf(adata, sizeof(adata), "%s/store-a", f->h.dir);
	snprintf(bdata, sizeof(bdata), "%s/store-b", f->h.dir);
	store_cfg(f, &cfg);
	node9_path(f, rel, sizeof(rel));

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) { /* A, killed -9 once minute 5 is sent */
		if (vg_store_open(adata, &cfg, &a, err, sizeof(err)))
			_exit(2);
		for (int m = 0; m <= 4; m++)
			if (store_minute(a, m))
				_exit(3);
		if (vg_store_flush(a)) /* written and synced: the file holds 1..4 */
			_exit(4);
		if (store_minute(a, 5))
			_exit(5);
		for (int i = 0; i < 100; i++) {
			vg_store_get_stats(a, &st);
			if (!st.values_pending && st.values_flushed >= 6)
				raise(SIGKILL);
			usleep(50 * 1000);
		}
		_exit(6);
	}
	collector_killed(pid, "collector A");

	/* B: the host's minute 6, sent through */
	if (vg_store_open(bdata, &cfg, &b, err, sizeof(err)))
		fail_msg("store B: %s", err);
	assert_non_null(bt = minute_arrived(6));
	assert_int_equal(vg_store_write_batch(b, bt), 0);
	vg_batch_free(bt);
	for (int i = 0; i < 100; i++) {
		vg_store_get_stats(b, &st);
		if (!st.values_pending && st.values_flushed >= 1)
			break;
		usleep(50 * 1000);
	}
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.values_flushed, 1);

	/* back on A: 7 journaled, never sent */
	journal_minute_arrived(adata, 7);
	/* the file holds up to A's 5 (B's first read FLUSHed it), the
	 * daemon holds B's 6 cached */
	assert_int_equal(last_update_s_of(f, rel), T0 + 300);
	if (kill_daemon) {
		char journal[PATH_MAX];
		FILE *fp;
		assert_int_equal(hrd_kill(&f->h.d, SIGKILL), 0);
		/* its journal with B's UPDATE of 6 (its stdio buffer may have
		 * lost the last line at the kill) */
		newest_journal(f, journal, sizeof(journal));
		journal_drop_minutes_of(journal, rel, 6, 6);
		assert_non_null(fp = fopen(journal, "a"));
		fprintf(fp, "update %s %lld.000:%.0f\n", rel, (long long)(T0 + 360), val(6));
		assert_int_equal(fclose(fp), 0);
		assert_int_equal(hrd_restart(&f->h.d), 0);
	}

	/* A started again: its replay, then everything written and synced;
	 * then B's sync */
	if (vg_store_open(adata, &cfg, &a, err, sizeof(err)))
		fail_msg("store A: %s", err);
	store_settle(a);
	assert_int_equal(vg_store_daemons(a, dm, 1), 1);
	assert_int_equal(dm[0].overtaken, 0);
	vg_store_close(a);
	store_settle(b);
	assert_int_equal(vg_store_daemons(b, dm, 1), 1);
	assert_int_equal(dm[0].overtaken, 0);
	vg_store_close(b);
	check_path(f, rel, 7);
}

static void test_store_replay_after_host_came_back(void **state)
{
	host_came_back(*state, 0);
}

/* The same with the daemon killed -9 and restarted before A's start,
 * its journal holding B's 6 (the case as docs/scaling.md first stated
 * it: the daemon's kill is not needed, as the test above shows, and
 * changes nothing) */
static void test_store_replay_after_host_came_back_daemon_killed(void **state)
{
	host_came_back(*state, 1);
}

/* The same start replay, the file found lost (its daemon's replay kept
 * minute 6 without 5: FORGOTten, the file holds 4), and the host's next
 * collector (B) writing minute 7 to the file before the replay's re-send
 * of 5 and 6: refused as older than the file, lost for good, counted
 * (overtaken) and logged as for the running collector's re-send; the
 * watch ends there, and the same values tried again count nothing more
 * (docs/operations.md "A replay that skips a value"). */
static void test_start_replay_resend_overtaken_counted(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_backend *a2 = NULL, *b;
	struct vg_rrd_loc aloc, bloc;
	struct vg_rrd_result res;
	struct vg_store_daemon dm[1];
	char owners[PATH_MAX], log[PATH_MAX], err[256] = "";
	int64_t last = INT64_MIN;
	int rc = -EHOSTUNREACH, saved;

	race_drops_minute_5(f);
	snprintf(owners, sizeof(owners), "%s/owners", f->h.dir);
	if (vg_rrd_rrdcached_open(f->h.d.tcp_addr, f->h.d.base, owners, &a2, err, sizeof(err)))
		fail_msg("backend: %s", err);
	assert_int_equal(a2->ops->locate(a2, VG_RT_HOST, "node1", "load.1", &aloc), 0);
	a2->ops->replay_note(a2, &aloc, MS(T0 + 300), MS(T0 + 360), INT64_MIN,
			     (const int64_t[]){MS(T0 + 300), MS(T0 + 360)}, 2);
	for (int i = 0; i < 50 && rc == -EHOSTUNREACH; i++)
		if ((rc = a2->ops->last_ms(a2, &aloc, &last, VG_RRD_REPLAY)) == -EHOSTUNREACH)
			usleep(100 * 1000);
	assert_int_equal(rc, 0);
	assert_true(last >= MS(T0 + 240) && last < MS(T0 + 300));
	assert_int_equal(resend_watch(a2), 1);

	/* the host on B meanwhile: minute 7 written to the file */
	b = second_collector(f, &bloc);
	res = update_be(b, &bloc, 7, 7);
	assert_int_equal(res.written, 1);
	assert_int_equal(b->ops->sync(b), 0);
	assert_int_equal(last_update_s(f), T0 + 420);

	/* the replay's re-send of what the file lacked: refused */
	snprintf(log, sizeof(log), "%s/test.log", f->h.dir);
	saved = log_begin(log);
	res = update_on(a2, &aloc, 5, 6, 1);
	log_end(saved);
	assert_int_equal(res.written, 0);
	assert_int_equal(res.duplicate, 2);
	assert_int_equal(vg_rrd_rrdcached_state(a2, dm, 1), 1);
	assert_int_equal(dm[0].overtaken, 1);
	assert_int_equal(dm[0].resend_watch, 0);
	assert_true(log_has(log, "lost by the daemon (a restart) and re-sent"));
	res = update_on(a2, &aloc, 5, 6, 1); /* tried again: counted already */
	assert_int_equal(res.written, 0);
	assert_int_equal(vg_rrd_rrdcached_state(a2, dm, 1), 1);
	assert_int_equal(dm[0].overtaken, 1);
	assert_int_equal(a2->ops->sync(a2), 0);
	assert_int_equal(a2->ops->lost(a2, NULL, 0), 0);
	/* the file's last update is B's 7; A's 5 and 6 are missing, so 5 to
	 * 7 are unknown (4 to 7 spans more than the 90 s heartbeat) */
	assert_int_equal(last_update_s(f), T0 + 420);
	check_file_gap(f, 7, 5, 7);
	a2->ops->close(a2);
	b->ops->close(b);
}

/* The loss docs/scaling.md ("What holds now") left open after a real
 * restart: A's minute 5 taken by the daemon, not written; the daemon
 * killed -9 and started again without its -j journal (A's unwritten
 * values lost: a prefix of them, here all). A's first check after the
 * failure FORGETs the file and finds it lost (it holds 1..4). Before A's
 * store re-sends 5 from its journal, the host moves to B, which writes 6
 * to the file. A's re-send of 5 is then refused as older than the file:
 * lost for good, and before counted as a duplicate, silently. Now it is
 * counted (overtaken) and logged, once per loss found: the store's next
 * try of the same value counts nothing more. */
static void test_resend_overtaken_after_restart_counted(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_backend *b;
	struct vg_rrd_loc bloc;
	struct vg_rrd_result res;
	struct vg_rrd_lost lost[2];
	char log[PATH_MAX];
	int saved, found = 0;

	b = second_collector(f, &bloc);
	file_holds_1_to_4(f);
	res = update(f, 5, 5, 0); /* A's last value: taken, not written */
	assert_int_equal(res.written, 1);
	assert_int_equal(hrd_kill(&f->h.d, SIGKILL), 0);
	journal_clear(f->h.d.journal);
	assert_int_equal(hrd_restart(&f->h.d), 0);
	usleep(300 * 1000); /* the back-off after the broken connection */

	/* A's first check after the restart (its sync connects): lost */
	for (int i = 0; i < 50 && !found; i++) {
		(void)f->h.be->ops->sync(f->h.be);
		if (!(found = f->h.be->ops->lost(f->h.be, lost, 2) == 1))
			usleep(100 * 1000);
	}
	assert_true(found);
	assert_int_equal(lost[0].have_ms, MS(T0 + 240) + 999);

	/* the host on B meanwhile: minute 6 written to the file */
	res = update_be_taken(b, &bloc, 6, 6);
	assert_int_equal(res.written, 1);
	assert_int_equal(b->ops->sync(b), 0);
	assert_int_equal(last_update_s(f), T0 + 360);

	/* A's store re-sends minute 5 from its journal, as resend_lost does */
	snprintf(log, sizeof(log), "%s/test.log", f->h.dir);
	saved = log_begin(log);
	f->h.be->ops->resent(f->h.be, &lost[0]);
	res = update(f, 5, 5, 1);
	log_end(saved);
	assert_int_equal(res.written, 0);
	assert_int_equal(res.duplicate, 1); /* as the store counts it */
	assert_int_equal(overtaken(f), 1);
	assert_true(log_has(log, "lost by the daemon (a restart) and re-sent"));
	/* the same value tried again: the loss was counted already */
	res = update(f, 5, 5, 1);
	assert_int_equal(res.written, 0);
	assert_int_equal(overtaken(f), 1);
	synced(f->h.be);
	/* B's 6 kept; A's 5 is the gap (4 to 6 spans the 90 s heartbeat) */
	check_file_gap(f, 6, 5, 6);
	b->ops->close(b);
}

/* A's minute 5 taken by the daemon, not written; the daemon killed -9
 * and started again without its journal; A's first check after the
 * restart (its sync connects) finds the file lost, holding 1..4, into
 * *L: its re-send is watched from then on. */
static void found_lost_after_restart(struct fx *f, struct vg_rrd_lost *l)
{
	struct vg_rrd_result res;
	int found = 0;

	file_holds_1_to_4(f);
	res = update(f, 5, 5, 0);
	assert_int_equal(res.written, 1);
	assert_int_equal(hrd_kill(&f->h.d, SIGKILL), 0);
	journal_clear(f->h.d.journal);
	assert_int_equal(hrd_restart(&f->h.d), 0);
	usleep(300 * 1000); /* the back-off after the broken connection */
	for (int i = 0; i < 50 && !found; i++) {
		(void)f->h.be->ops->sync(f->h.be);
		if (!(found = f->h.be->ops->lost(f->h.be, l, 1) == 1))
			usleep(100 * 1000);
	}
	assert_true(found);
	assert_int_equal(l->have_ms, MS(T0 + 240) + 999);
	assert_int_equal(resend_watch(f->h.be), 1);
}

/* The store's re-send of a lost file that starts before what the file
 * holds (minutes 3 to 5, the file holding 4): the daemon refuses 3, the
 * backend skips 3 and 4 as stored (duplicates, values the file held when
 * found lost: no loss) and writes 5. The re-send is decided: its watch
 * ends there, not at the series' next value (which may never come). */
static void test_resend_partly_stored_ends_the_watch(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_lost l;
	struct vg_rrd_result res;

	found_lost_after_restart(f, &l);
	f->h.be->ops->resent(f->h.be, &l);
	res = update(f, 3, 5, 1);
	assert_int_equal(res.written, 1);
	assert_int_equal(res.duplicate, 2);
	assert_int_equal(res.failed + res.unavailable, 0);
	assert_int_equal(resend_watch(f->h.be), 0);
	assert_int_equal(overtaken(f), 0);
	assert_int_equal(f->h.be->ops->sync(f->h.be), 0);
	check_file(f, 5);
}

/* A lost file removed before its re-send (the series deleted): no re-send
 * comes for it, and its watch ends with it. */
static void test_lost_file_removed_ends_the_watch(void **state)
{
	struct fx *f = *state;
	struct vg_rrd_lost l;

	found_lost_after_restart(f, &l);
	(void)f->h.be->ops->remove(f->h.be, &f->loc);
	assert_int_equal(f->h.be->ops->lost(f->h.be, NULL, 0), 0);
	assert_int_equal(resend_watch(f->h.be), 0);
}

/* ---- holding marks for files the daemon lost --------------------------------
 * P (the host's collector) wrote minutes 1..4 (synced) and 5 (taken by
 * the daemon, not written); the daemon is killed -9 and restarted without
 * its journal; P's check finds the file lost and its store re-sends 5
 * from the journal. Meanwhile the host moves to N, whose duplicate check
 * (the registry both share) decides whether N may write minute 6. The
 * store's callback (vg_store_on_lost) runs between the check and the
 * re-send: there the test marks the host as the receiver does
 * (vg_receiver_hold_lost: vg_registry_hold_resources), or not, as before,
 * and then plays N. */
struct lost_fx {
	struct fx *f;
	struct vg_registry *preg, *nreg; /* P's (holder "p-node"), N's */
	struct vg_store *n;              /* N's store */
	int mark;                        /* mark the hosts (the change) */
	int calls, series, holding, seen, n_wrote;
	char id[64];
};

/* Minute m of node9 load.1 as a batch of host h9 (ARRIVED: new to the
 * collector), registered in REG first as the receiver's registry
 * consumer does, then written to S (sent again while it answers
 * -EAGAIN, 50 tries 0.1 s apart); 0 or -1. */
static int write_minute(struct vg_registry *reg, struct vg_store *s, int m, int arrived)
{
	struct vg_batch *b = minute_arrived(m);
	int rc;

	if (!b)
		return -1;
	b->arrived = arrived;
	int u = vg_registry_update(reg, b), w = u;

	/* -EAGAIN: the store's connection in its back-off after the
	 * daemon's restart; the agent sends the batch again */
	for (int i = 0; !u && i < 50 && (w = vg_store_write_batch(s, b)) == -EAGAIN; i++)
		usleep(100 * 1000);
	rc = u || w ? -1 : 0;
	if (rc)
		fprintf(stderr, "# write_minute %d: registry %d store %d\n", m, u, w);
	vg_batch_free(b);
	return rc;
}

/* N's part, on P's thread that re-sends: N's duplicate check of the
 * host's batch of minute 6, and when it finds no mark, minute 6 written
 * through and synced to the file (the host's first batch on N). */
static int lost_cb(void *ctx, const struct vg_store_series *ser, size_t n)
{
	struct lost_fx *lf = ctx;
	const char *ids[8];
	uint64_t marked = 0;
	int rc = 0;

	lf->calls++;
	lf->series += (int)n;
	if (n)
		snprintf(lf->id, sizeof(lf->id), "%s", ser[0].id);
	lf->holding = vg_store_holding(lf->f->store_p);
	if (lf->mark) {
		for (size_t i = 0; i < n && i < 8; i++)
			ids[i] = ser[i].id;
		rc = vg_registry_hold_resources(lf->preg, ids, n < 8 ? n : 8, &marked);
		if (!rc && marked < n)
			rc = -EBUSY;
	}
	lf->seen = vg_registry_seen(lf->nreg, "h9", 2, 1, MS(T0 + 360));
	if (lf->seen == 0 && !write_minute(lf->nreg, lf->n, 6, 1) && !vg_store_flush(lf->n))
		lf->n_wrote = 1;
	return rc;
}

/* The file REL holds minutes 1..last, each its own value, but minute
 * gap (0: none), which does not (unknown, or 6's value spread over it
 * within the series' heartbeat). */
static void check_path_gap(struct fx *f, const char *rel, int last, int gap)
{
	char path[PATH_MAX * 2], **names = NULL;
	time_t start = T0, end = T0 + 60 * last;
	unsigned long step = 60, nds = 0;
	rrd_value_t *data = NULL;

	snprintf(path, sizeof(path), "%s/%s", f->h.d.base, rel);
	rrd_clear_error();
	if (rrd_fetch_r(path, "AVERAGE", &start, &end, &step, &nds, &names, &data))
		fail_msg("fetch %s: %s", path, rrd_get_error());
	assert_int_equal(nds, 1);
	for (int m = 1; m <= last; m++) {
		int lost = m == gap;
		if (lost ? data[m - 1] == val(m) : data[m - 1] != val(m))
			fail_msg("minute %d: %g, want %s%g", m, data[m - 1], lost ? "not " : "",
				 val(m));
	}
	rrd_freemem(names[0]);
	rrd_freemem(names);
	rrd_freemem(data);
}

static void lost_while_moving(struct fx *f, int mark)
{
	struct lost_fx lf = {.f = f, .mark = mark};
	struct vg_config cfg;
	struct vg_store *p = NULL;
	struct vg_store_stats st;
	struct vg_store_daemon dm[1];
	char pdata[PATH_MAX], ndata[PATH_MAX], rel[PATH_MAX], err[256] = "";

	snprintf(pdata, sizeof(pdata), "%s/store-p", f->h.dir);
	snprintf(ndata, sizeof(ndata), "%s/store-n", f->h.dir);
	store_cfg(f, &cfg);
	node9_path(f, rel, sizeof(rel));
	if (vg_registry_open_state(f->h.dir, NULL, &lf.preg, err, sizeof(err)) ||
	    vg_registry_open_state(f->h.dir, NULL, &lf.nreg, err, sizeof(err)))
		fail_msg("registry: %s", err);
	assert_int_equal(vg_registry_set_holder(lf.preg, "p-node", 600000), 0);
	assert_int_equal(vg_registry_set_holder(lf.nreg, "n-node", 600000), 0);
	if (vg_store_open(pdata, &cfg, &p, err, sizeof(err)) ||
	    vg_store_open(ndata, &cfg, &lf.n, err, sizeof(err)))
		fail_msg("store: %s", err);
	f->store_p = p;

	for (int m = 0; m <= 4; m++)
		assert_int_equal(write_minute(lf.preg, p, m, 0), 0);
	assert_int_equal(vg_store_flush(p), 0); /* the file holds 1..4 */
	assert_int_equal(write_minute(lf.preg, p, 5, 0), 0);
	for (int i = 0; i < 100; i++) { /* the daemon took 5, its sync not due */
		vg_store_get_stats(p, &st);
		if (!st.values_pending && st.values_flushed >= 6)
			break;
		usleep(50 * 1000);
	}
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(last_update_s_of(f, rel), T0 + 240);

	vg_store_on_lost(p, lost_cb, &lf);
	assert_int_equal(hrd_kill(&f->h.d, SIGKILL), 0);
	journal_clear(f->h.d.journal);
	assert_int_equal(hrd_restart(&f->h.d), 0);
	store_settle(p); /* P's check finds 5 lost; its re-send */
	assert_int_equal(lf.calls, 1);
	assert_int_equal(lf.series, 1);
	assert_string_equal(lf.id, "node9");
	assert_int_equal(lf.holding, 1); /* no mark cleared meanwhile */
	assert_int_equal(vg_store_daemons(p, dm, 1), 1);
	if (!mark) { /* as before: N writes 6 first, P's 5 refused and lost */
		assert_int_equal(lf.seen, 0);
		assert_int_equal(lf.n_wrote, 1);
		assert_int_equal(dm[0].overtaken, 1);
		check_path_gap(f, rel, 6, 5);
	} else { /* N answers RETRY until P re-sent 5 */
		assert_int_equal(lf.seen, 2);
		assert_string_equal(vg_registry_held_by(lf.nreg), "p-node");
		assert_int_equal(lf.n_wrote, 0);
		assert_int_equal(dm[0].overtaken, 0);
		/* written: the receiver's tick clears P's marks */
		assert_int_equal(vg_store_holding(p), 0);
		assert_int_equal(vg_registry_hold_clear(lf.preg), 0);
		assert_int_equal(vg_registry_seen(lf.nreg, "h9", 2, 1, MS(T0 + 360)), 0);
		assert_int_equal(write_minute(lf.nreg, lf.n, 6, 1), 0);
		store_settle(lf.n);
		check_path_gap(f, rel, 6, 0); /* 1..6, each once */
	}
	vg_store_on_lost(p, NULL, NULL);
	vg_store_close(p);
	vg_store_close(lf.n);
	vg_registry_close(lf.preg);
	vg_registry_close(lf.nreg);
}

/* Without a mark (as before the change): N's newer minute 6 reaches the
 * file before P's re-send of 5, refused as older: a counted loss. */
static void test_lost_resend_overtaken_without_marks(void **state)
{
	lost_while_moving(*state, 0);
}

/* With the hosts of the lost files marked before the re-send: N's
 * duplicate check answers RETRY (held by P) until P's re-send is
 * written; then N writes 6, and the file holds every minute once. */
static void test_lost_resend_marks_hold_the_host(void **state)
{
	lost_while_moving(*state, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_replayed_update_dropped_by_wrote, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_replay_keeps_a_value_after_one_it_dropped,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_after_restart_reads_what_the_file_holds,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_note_drops_an_idle_connection_checked_before,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_replay_resend_overtaken_counted, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_store_replay_after_restart_resends_the_skipped_value, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_start_replay_reads_each_file_its_own_last_update, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_forget_of_a_file_the_daemon_took_nothing_of,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_forget_of_a_file_already_past_our_values,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_forget_of_a_file_another_collector_wrote_since,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_values_lost_by_the_daemon_before_another_collectors,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_values_lost_by_the_daemon_found_after_another_wrote,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_values_found_written_after_another_wrote,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_start_replay_flushes_what_the_daemon_holds_of_ours, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_start_replay_flushes_ours_journal_older_than_the_file, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_start_replay_flush_failed_flushed_by_the_next_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journaled_value_overtaken_while_cached, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_journaled_value_overtaken_in_the_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stall_then_another_collector_nothing_lost, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stall_then_host_moves_after_the_check_nothing_lost,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_forget_of_a_previous_collectors_older_values,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_no_forget_of_another_collectors_values_between_ours, setup, teardown),
		cmocka_unit_test(test_check_bound_spreads_the_check),
		cmocka_unit_test_setup_teardown(test_store_replay_check_cut_says_so, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_store_replay_after_host_came_back, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_store_replay_after_host_came_back_daemon_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resend_overtaken_after_restart_counted, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_resend_partly_stored_ends_the_watch, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lost_file_removed_ends_the_watch, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lost_resend_overtaken_without_marks, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lost_resend_marks_hold_the_host, setup,
						teardown),
	};
	if (system("command -v rrdcached >/dev/null && command -v rrdtool >/dev/null")) {
		printf("# skipped: rrdcached or rrdtool not installed\n");
		return 0;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
