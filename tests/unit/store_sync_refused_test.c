/*
 * store_sync_refused_test.c — a storage daemon that answers and refuses
 * the sync's FLUSH of a file (here: its socket started with -P without
 * FLUSH, so every FLUSH answers "Permission denied.") is not asked again
 * at every sync: the backend backs off (250 ms doubling to 2 s, the
 * connection's back-off of backend_rrdcached.c), so with write-through
 * (a sync per batch) thirty batches cost a handful of refused FLUSH
 * BATCHes, not thirty. The refusal is counted per file
 * (vg_store_daemon.flush_refused), shown as the daemon's error and logged
 * once for the episode; the files stay unverified and the journal keeps
 * its segments. When the daemon is started again with FLUSH allowed,
 * the sync passes, the end of the episode is logged once, and every value
 * is in its file once.
 *
 * Also (issue 14): a FLUSH answer the client does not recognise is a
 * refusal too (test_unrecognised_refusal), and a file deleted under the
 * daemon while it held values of ours is counted, logged and FORGOTten,
 * never counted durable, unless the store deleted it itself, and the
 * series' next values create it again (test_deleted_under_daemon, with
 * and without [storage] daemon_base). A file the daemon cannot write is
 * found by the sync's read-back (test_unwritable_file; read from the
 * daemon's disk with daemon_base: test_unwritable_file_local,
 * test_readback_local), and not with
 * [storage] verify_writes = no (test_unwritable_file_unverified); a file
 * another FLUSH is still writing is not counted unwritten
 * (test_concurrent_flush).
 *
 * No timing assertion: the count of refused FLUSHes is held against the
 * most the back-off allows in the time the test measured (each attempt
 * waits at least the back-off after the one before; a slow machine only
 * makes fewer).
 */
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
#include <unistd.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <linux/fs.h>

#include <cmocka.h>
#include <rrd.h>

#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/config.h"
#include "vigie/rrdcached.h"
#include "vigie/store.h"
#include "rrdcached_harness.h"
#include "../support/journal_segments.h"
#include "../support/rrdcd_strip.h"
#include "../support/rrd_last.h"
#include "../support/store_series.h"
#include "../support/tmpdir.h"

#define NS 4       /* series, one file each */
#define BATCHES 30 /* minutes written while the daemon refuses */

/* every command the store uses but FLUSH */
#define NO_FLUSH "PING,UPDATE,BATCH,CREATE,INFO,LAST,FIRST,FORGET,STATS,FETCH,LIST,PENDING,WROTE,QUIT,HELP"
#define WITH_FLUSH NO_FLUSH ",FLUSH"

/* The most sync attempts the back-off allows in ms milliseconds: the
 * first, then one after each wait of 250, 500, 1000, then 2000 ms. */
static uint64_t attempts_max(int64_t ms)
{
	uint64_t n = 1;
	int64_t wait = 250, at = 0;

	while ((at += wait) <= ms) {
		n++;
		if (wait < 2000)
			wait *= 2;
	}
	return n;
}

/* Lines of the file at PATH that contain NEEDLE. */
static int count_lines(const char *path, const char *needle)
{
	char line[2048];
	int n = 0;
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/* A store in dir writing through to the daemon at addr (fxs_config's
 * series), knowing the daemon's base directory when base is not NULL,
 * syncing every sync_interval_s (0: the default). */
static struct vg_store *write_through(const char *dir, const char *addr, const char *base,
				      int sync_interval_s)
{
	struct vg_config cfg;
	struct vg_store *s;
	char err[256];

	fxs_config(&cfg, "1m:1d", addr, NULL);
	snprintf(cfg.storage_write_through, sizeof(cfg.storage_write_through), "yes");
	if (base) {
		assert_true(strlen(base) < sizeof(cfg.storage_daemon_base));
		memcpy(cfg.storage_daemon_base, base, strlen(base) + 1);
	}
	if (sync_interval_s)
		cfg.storage_sync_interval_s = sync_interval_s;
	assert_int_equal(vg_store_open(dir, &cfg, &s, err, sizeof(err)), 0);
	return s;
}

/* Minute 0 of the NS series through a daemon that FLUSHes: the files
 * exist, nothing pending. */
static void minute0_flushed(struct vg_store *s)
{
	struct vg_store_daemon dm[2];

	assert_int_equal(fxs_write_minute(s, "node", 0, NS, 0), 0);
	assert_int_equal(fxs_flush_passes(s), 0);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	assert_int_equal(dm[0].pending, 0);
}

static void test_refused_flush_backs_off(void **state)
{
	char dir[200], addr[PATH_MAX], logp[PATH_MAX + 16];
	struct hrd_daemon d;
	struct vg_store *s;
	struct vg_store_daemon dm[2];
	struct vg_store_stats st;
	(void)state;

	assert_int_equal(fx_tmpdir(dir, sizeof(dir), "sync-refused"), 0);
	snprintf(addr, sizeof(addr), "unix:%s/noflush.sock", dir);
	snprintf(logp, sizeof(logp), "%s/stderr.log", dir);
	const char *extra[] = {"-O", "-R", "-P", NO_FLUSH, "-l", addr, NULL};
	assert_int_equal(hrd_start(&d, NULL, extra), 0);
	s = write_through(dir, addr, NULL, 0);

	/* the store's log (stderr) into a file, to count its lines */
	fflush(stderr);
	int saved = dup(2), lfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(saved >= 0 && lfd >= 0);
	assert_int_equal(dup2(lfd, 2), 2);
	close(lfd);

	int64_t t0 = vg_monotonic_ms();
	for (int m = 0; m < BATCHES; m++) {
		assert_int_equal(fxs_write_minute(s, "node", 0, NS, m), 0);
		usleep(100 * 1000);
	}
	/* on a loaded machine a call may time out first, the daemon then
	 * in its own back-off (seen once at load 20: 9 syncs, none reached
	 * the FLUSH): synced on until the FLUSH was refused, up to 20 s,
	 * the bound below taken over the whole time */
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	for (int i = 0; i < 200 && dm[0].flush_refused < NS; i++) {
		usleep(100 * 1000);
		(void)vg_store_flush(s);
		assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	}
	int64_t t1 = vg_monotonic_ms();
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	vg_store_get_stats(s, &st);

	/* refused, and asked again only as the back-off allows: without it,
	 * one FLUSH BATCH per sync, i.e. per batch (NS * BATCHES) */
	uint64_t bound = NS * attempts_max(t1 - t0);
	/* the syncs include one per vg_store_flush above (counted also when
	 * the daemon is in a back-off and nothing is sent); the daemon's
	 * failed calls and last error say why no FLUSH reached it */
	printf("# %llu refused FLUSHes in %lld ms (at most %llu), %llu syncs, %llu failed "
	       "calls, last error: %s\n",
	       (unsigned long long)dm[0].flush_refused, (long long)(t1 - t0),
	       (unsigned long long)bound, (unsigned long long)st.backend_syncs,
	       (unsigned long long)dm[0].errors, dm[0].error);
	assert_true(dm[0].flush_refused >= NS);
	assert_true(dm[0].flush_refused <= bound);
	assert_true(bound < NS * BATCHES / 2);
	/* the cause shown, the files unverified, the journal kept */
	assert_non_null(strstr(dm[0].error, "refused FLUSH"));
	assert_non_null(strstr(dm[0].error, "Permission denied"));
	assert_int_equal(dm[0].pending, NS);
	assert_true(journal_segments(dir) > 0);

	/* the daemon again, FLUSH allowed on that socket (its journal
	 * replayed): the sync passes, every value is in its file once */
	d.extra[3] = WITH_FLUSH;
	assert_int_equal(hrd_restart(&d), 0);
	/* the refusing daemon is gone (killed, reaped): every refusal came
	 * before this, the storage thread trying on since t1 */
	uint64_t bound_restart = NS * attempts_max(vg_monotonic_ms() - t0);
	for (int i = 0; i < 120; i++) { /* its restart: up to 30 s */
		int rc = vg_store_flush(s);
		assert_true(rc == 0 || rc == -EIO); /* -EIO: not synced yet */
		assert_int_equal(vg_store_daemons(s, dm, 2), 1);
		if (!dm[0].pending && !dm[0].lost)
			break;
		usleep(250 * 1000);
	}
	assert_int_equal(fxs_flush_passes(s), 0);
	assert_int_equal(dm[0].pending, 0);
	assert_int_equal(dm[0].lost, 0);
	for (int i = 0; i < NS; i++)
		fxs_check_series(s, i, BATCHES);
	uint64_t refused = dm[0].flush_refused;
	vg_store_close(s);

	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	/* one line for the episode's start, one for its end */
	assert_int_equal(count_lines(logp, "refused to FLUSH"), 1);
	assert_int_equal(count_lines(logp, "FLUSHes accepted again"), 1);
	/* the tries since t1 too, as the back-off allows (a loaded machine
	 * may take seconds from t1 to the restart) */
	assert_true(refused <= bound_restart);

	hrd_cleanup(&d);
	assert_int_equal(fx_rm_tree(dir), 0);
}

/* The last update of NAME's file as librrd reads it from the daemon's
 * base dir (the file itself, not the daemon's cache), in seconds. */
static time_t file_last_s(const struct hrd_daemon *d, int i)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/host/node%d/load.1.rrd", d->base, i);
	return fx_rrd_last_s(path);
}

/* vg_store_flush answers 0 only when its values are in their files: a
 * store whose sync's FLUSHes are refused (or skipped inside the refusal's
 * back-off, sending nothing: how the bench's rounds found every file
 * still owed a FLUSH after the flush, docs/benchmarks.md) answered 0
 * with nothing written; it now answers -EIO. Once the daemon FLUSHes,
 * the first 0 means every file, read by librrd itself, holds the newest
 * value. Without write-through (the bench's store), unlike the test
 * above. */
static void test_flush_answers_only_when_synced(void **state)
{
	char dir[200], addr[PATH_MAX], err[256];
	struct hrd_daemon d;
	struct vg_config cfg;
	struct vg_store *s;
	struct vg_store_daemon dm[2];
	int rc = -1;
	(void)state;

	assert_int_equal(fx_tmpdir(dir, sizeof(dir), "flush-synced"), 0);
	snprintf(addr, sizeof(addr), "unix:%s/noflush.sock", dir);
	const char *extra[] = {"-O", "-R", "-P", NO_FLUSH, "-l", addr, NULL};
	assert_int_equal(hrd_start(&d, NULL, extra), 0);
	fxs_config(&cfg, "1m:1d", addr, NULL);
	assert_int_equal(vg_store_open(dir, &cfg, &s, err, sizeof(err)), 0);

	for (int m = 0; m < 3; m++)
		assert_int_equal(fxs_write_minute(s, "node", 0, NS, m), 0);
	/* written to the daemon, its FLUSHes refused: not synced, and said */
	assert_int_equal(vg_store_flush(s), -EIO);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	assert_int_equal(dm[0].pending, NS);
	for (int i = 0; i < NS; i++)
		assert_true(file_last_s(&d, i) < FXS_T0 + 120);
	/* again at once: inside the back-off, no FLUSH sent, still -EIO */
	assert_int_equal(vg_store_flush(s), -EIO);

	/* FLUSH allowed again: the first 0 comes with every value in */
	d.extra[3] = WITH_FLUSH;
	assert_int_equal(hrd_restart(&d), 0);
	for (int i = 0; i < 120 && rc; i++) { /* its restart: up to 30 s */
		rc = vg_store_flush(s);
		assert_true(rc == 0 || rc == -EIO);
		if (rc)
			usleep(250 * 1000);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	assert_int_equal(dm[0].pending, 0);
	for (int i = 0; i < NS; i++)
		assert_int_equal(file_last_s(&d, i), FXS_T0 + 120);
	vg_store_close(s);
	hrd_cleanup(&d);
	assert_int_equal(fx_rm_tree(dir), 0);
}

/* A start replay against a daemon that refuses FLUSH, INFO or both (its
 * socket started with -P without them: real "Permission denied."
 * answers). The collector dies with values journaled and not synced;
 * the daemon is restarted so and the store opened on it. Refused FLUSH
 * (INFO allowed): the replay reads the files, sends the journaled
 * values, and its sync's FLUSH is refused: vg_store_flush says -EIO.
 * Refused INFO: the check of the replayed files (INFO) fails before any
 * is read, and the store holds their values cached as for a daemon that
 * does not answer. Either way nothing is lost or counted written: once
 * the daemon is started with both allowed, every value is in its file
 * once, no write error (docs/operations.md "A daemon that refuses a
 * FLUSH"). Behaviour shown, not a fix: replay_last_ms's mapping of a
 * refusal to "no such file" is not reached by these (the check before
 * it, or a FLUSH alone refused, see there). */
#define ALL_BUT "PING,UPDATE,BATCH,CREATE,LAST,FIRST,FORGET,STATS,FETCH,LIST,PENDING,WROTE,QUIT,HELP"

static void replay_refused(const char *perm, int info_refused)
{
	char dir[200], addr[PATH_MAX], err[256];
	struct hrd_daemon d;
	struct vg_config cfg;
	struct vg_store *s;
	struct vg_store_daemon dm[2];
	struct vg_store_stats st;
	int rc = -1;

	assert_int_equal(fx_tmpdir(dir, sizeof(dir), "replay-refused"), 0);
	snprintf(addr, sizeof(addr), "unix:%s/p.sock", dir);
	const char *extra[] = {"-O", "-R", "-P", ALL_BUT ",INFO,FLUSH", "-l", addr, NULL};
	assert_int_equal(hrd_start(&d, NULL, extra), 0);
	fxs_config(&cfg, "1m:1d", addr, NULL);
	assert_int_equal(vg_store_open(dir, &cfg, &s, err, sizeof(err)), 0);
	for (int m = 0; m < 6; m++)
		assert_int_equal(fxs_write_minute(s, "node", 0, NS, m), 0);
	assert_int_equal(fxs_flush_passes(s), 0);
	/* minutes 6-7 journaled; the daemon stopped before it takes them,
	 * the collector gone without writing them (as a kill -9) */
	for (int m = 6; m < 8; m++)
		assert_int_equal(fxs_write_minute(s, "node", 0, NS, m), 0);
	assert_int_equal(hrd_kill(&d, SIGSTOP), 0);
	vg_store_close_held(s);
	assert_int_equal(hrd_kill(&d, SIGKILL), 0);
	d.extra[3] = perm;
	assert_int_equal(hrd_restart(&d), 0);

	if (vg_store_open(dir, &cfg, &s, err, sizeof(err)))
		fail_msg("open: %s", err);
	rc = vg_store_flush(s);
	vg_store_get_stats(s, &st);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	printf("# %s: flush %d, pending %llu, write errors %llu: %s; %s\n", perm, rc,
	       (unsigned long long)st.values_pending, (unsigned long long)st.write_errors,
	       dm[0].error, vg_store_last_error(s));
	assert_int_equal(st.write_errors, 0);
	assert_non_null(strstr(dm[0].error, "Permission denied"));
	if (info_refused) {
		assert_true(st.values_pending > 0); /* held in the cache */
	} else {
		assert_int_equal(rc, -EIO); /* sent, its FLUSH refused */
		assert_int_equal(st.values_pending, 0);
		assert_true(dm[0].pending > 0);
	}

	/* both allowed again: every value in its file once */
	d.extra[3] = ALL_BUT ",INFO,FLUSH";
	assert_int_equal(hrd_restart(&d), 0);
	for (int i = 0; i < 120; i++) { /* up to 30 s */
		rc = vg_store_flush(s);
		assert_true(rc == 0 || rc == -EIO);
		vg_store_get_stats(s, &st);
		if (!rc && !st.values_pending)
			break;
		usleep(250 * 1000);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.write_errors, 0);
	for (int i = 0; i < NS; i++)
		fxs_check_series(s, i, 8);
	vg_store_close(s);
	hrd_cleanup(&d);
	assert_int_equal(fx_rm_tree(dir), 0);
}

static void test_replay_refused(void **state)
{
	(void)state;
	replay_refused(ALL_BUT ",INFO", 0);  /* FLUSH refused */
	replay_refused(ALL_BUT ",FLUSH", 1); /* INFO refused */
	replay_refused(ALL_BUT, 1);          /* both */
}

/* An answer the client does not recognise (-EREMOTEIO) is a refusal too:
 * rrdcached answers a FLUSH so only when it did not FLUSH (out of memory,
 * a command it could not parse), never for "nothing to write" ("0 Nothing
 * to flush", or "-1 No such file" for a file that is gone). Here the
 * daemon's own "Usage: FLUSH <filename>" (the relay strips the name: see
 * rrdcd_strip.h). Before issue 14 such a FLUSH counted as done: the
 * files were taken for durable with nothing written, and the journal
 * segments that held their values retired. */
static void test_unrecognised_refusal(void **state)
{
	char dir[200], addr[PATH_MAX + 8], relay[PATH_MAX];
	struct hrd_daemon d;
	struct rcs_relay r;
	struct vg_store *s;
	struct vg_store_daemon dm[2];
	(void)state;

	assert_int_equal(fx_tmpdir(dir, sizeof(dir), "sync-remoteio"), 0);
	const char *extra[] = {"-O", "-R", NULL};
	assert_int_equal(hrd_start(&d, NULL, extra), 0);
	snprintf(relay, sizeof(relay), "%s/relay.sock", dir);
	assert_int_equal(rcs_start(&r, relay, d.sock), 0);
	snprintf(addr, sizeof(addr), "unix:%s", relay);
	s = write_through(dir, addr, NULL, 0);

	minute0_flushed(s);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	assert_int_equal(dm[0].flush_refused, 0);

	/* then every FLUSH answered "Usage: ...": nothing is written, so
	 * nothing may count as durable */
	rcs_strip(&r, 1);
	for (int m = 1; m < 6; m++)
		assert_int_equal(fxs_write_minute(s, "node", 0, NS, m), 0);
	vg_store_flush(s);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	printf("# %llu refused, %llu pending: %s\n", (unsigned long long)dm[0].flush_refused,
	       (unsigned long long)dm[0].pending, dm[0].error);
	assert_true(dm[0].flush_refused >= NS);
	assert_int_equal(dm[0].pending, NS);
	assert_non_null(strstr(dm[0].error, "refused FLUSH"));
	assert_non_null(strstr(dm[0].error, "Usage: FLUSH"));
	assert_true(journal_segments(dir) > 0);

	/* FLUSHes pass again: the sync passes once the back-off is over,
	 * every value is in its file once */
	rcs_strip(&r, 0);
	for (int i = 0; i < 120; i++) {
		vg_store_flush(s);
		assert_int_equal(vg_store_daemons(s, dm, 2), 1);
		if (!dm[0].pending && !dm[0].lost)
			break;
		usleep(250 * 1000);
	}
	assert_int_equal(dm[0].pending, 0);
	for (int i = 0; i < NS; i++)
		fxs_check_series(s, i, 6);
	vg_store_close(s);
	rcs_stop(&r);
	hrd_cleanup(&d);
	assert_int_equal(fx_rm_tree(dir), 0);
}

/* A file deleted under the daemon while it holds values of ours (tried
 * with rrdcached 1.7.2): its FLUSH answers "Successfully flushed" (the
 * write fails in the daemon's writer thread, which only its log says),
 * and every later UPDATE is accepted and lost the same way. With
 * [storage] daemon_base the sync sees the file missing once FLUSHed;
 * FORGOTten by an operator before the rm, the FLUSH answers "No such
 * file" (any daemon_base). Either way the file is counted (vanished),
 * logged, and FORGOTten on the daemon, so that its next values are
 * refused and counted as write errors instead of silently lost; the
 * sync passes (the journal is not kept for values that are gone). A
 * series the store deletes itself (the lifecycle) never counts. Before
 * issue 14 all three were counted durable without a word. */
/* Files deleted under the daemon while it held values of ours: node0's
 * removed by hand, node1's FORGOTten then removed, node3 deleted by the
 * store itself (only with BASE: [storage] daemon_base, without which the
 * store cannot unlink). The sync counts node0 and node1 gone and FORGETs
 * them on the daemon (the minute it held of node0 is lost: the daemon
 * took it and could not write it), so their next values are refused "No
 * such file"; the store then creates their files again, with the series'
 * archives, and writes those values: none a write error, none lost
 * (before, they were write errors until the collector restarted). */
static void deleted_under_daemon(int base)
{
	char dir[200], path[PATH_MAX * 2];
	struct hrd_daemon d;
	struct vg_store *s;
	struct vg_store_daemon dm[2];
	struct vg_store_stats st;

	assert_int_equal(fx_tmpdir(dir, sizeof(dir), "sync-vanished"), 0);
	const char *extra[] = {"-O", "-R", NULL};
	assert_int_equal(hrd_start(&d, NULL, extra), 0);
	s = write_through(dir, d.unix_addr, base ? d.base : NULL, 3600); /* syncs when asked */

	minute0_flushed(s);

	/* minute 1 taken by the daemon (write-through), then node0's file
	 * removed by hand, node1's FORGOTten then removed */
	assert_int_equal(fxs_write_minute(s, "node", 0, NS, 1), 0);
	snprintf(path, sizeof(path), "%s/host/node0/load.1.rrd", d.base);
	assert_int_equal(unlink(path), 0);
	fxs_forget(d.unix_addr, "host/node1/load.1.rrd");
	snprintf(path, sizeof(path), "%s/host/node1/load.1.rrd", d.base);
	assert_int_equal(unlink(path), 0);
	/* node3 deleted by the store itself: intended */
	if (base)
		assert_int_equal(vg_store_remove_series(s, VG_RT_HOST, "node3", "load.1"), 0);

	assert_int_equal(fxs_flush_passes(s), 0);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	printf("# base %d: vanished %llu, pending %llu\n", base, (unsigned long long)dm[0].vanished,
	       (unsigned long long)dm[0].pending);
	assert_int_equal(dm[0].vanished, 2);
	assert_int_equal(dm[0].pending, 0);

	/* node0's and node1's next values: their files created again and
	 * the values in them, not write errors; node2 written as usual */
	vg_store_get_stats(s, &st);
	uint64_t errors = st.write_errors;
	assert_int_equal(st.series_recreated, 0);
	assert_int_equal(fxs_write_minute(s, "node", 0, 3, 2), 0);
	/* the receiver's write-through leaves a missing file to the storage
	 * thread (it does not create on an agent's ack): wait for it (no
	 * timing asserted: 60 s is only a bound against a hang) */
	for (int k = 0; k < 1200; k++) {
		vg_store_get_stats(s, &st);
		if (st.series_recreated >= 2)
			break;
		usleep(50 * 1000);
	}
	assert_int_equal(fxs_flush_passes(s), 0);
	vg_store_get_stats(s, &st);
	printf("# base %d: recreated %llu, write errors %llu -> %llu\n", base,
	       (unsigned long long)st.series_recreated, (unsigned long long)errors,
	       (unsigned long long)st.write_errors);
	assert_int_equal(st.write_errors, errors);
	assert_int_equal(st.series_recreated, 2);
	for (int i = 0; i < 2; i++) {
		struct vg_series r;
		char id[16];
		struct stat sb;
		snprintf(id, sizeof(id), "node%d", i);
		snprintf(path, sizeof(path), "%s/host/%s/load.1.rrd", d.base, id);
		assert_int_equal(stat(path, &sb), 0);
		/* minute 2 fills the step before it in the new file; minute
		 * 1 went with the old one */
		assert_int_equal(vg_store_fetch(s, VG_RT_HOST, id, "load.1", VG_CF_AVERAGE,
						FXS_MS(FXS_T0), FXS_MS(FXS_T0 + 120), 60, 0, &r),
				 0);
		assert_int_equal(r.n, 1);
		assert_true(r.points[0].time_ms == FXS_MS(FXS_T0 + 60));
		assert_true(fabs(r.points[0].value - (1000.0 * i + 2)) < 1e-9);
		vg_series_free(&r);
	}
	fxs_check_series(s, 2, 3);
	vg_store_close(s);
	hrd_cleanup(&d);
	assert_int_equal(fx_rm_tree(dir), 0);
}

static void test_deleted_under_daemon(void **state)
{
	(void)state;
	deleted_under_daemon(1);
}

/* The same without [storage] daemon_base: the sync's read-back (INFO
 * reads the file) finds node0's file gone although the daemon's FLUSH
 * passed, as the daemon's "No such file" FLUSH does node1's. */
static void test_deleted_under_daemon_no_base(void **state)
{
	(void)state;
	deleted_under_daemon(0);
}

/* FORGET every series' file on the daemon (as a daemon restarted would):
 * its next UPDATE of one is answered "No such file" once it is gone from
 * the daemon's disk. */
static void forget_all(struct vg_rrdcd *c)
{
	char name[64];

	for (int i = 0; i < NS; i++) {
		snprintf(name, sizeof(name), "host/node%d/load.1.rrd", i);
		assert_int_equal(vg_rrdcd_forget(c, name), 0);
	}
}

/* A type directory (host/) renamed away under the daemon (what a volume
 * not mounted under its -b looks like), the daemon holding no entry for
 * the files (FORGOTten, as its -f timer does to an idle file): their
 * UPDATEs answer "No such file" as a deleted file's do, but the daemon's
 * LIST of the series' directory and of the type directory answer "No
 * such file" too, so no file is created
 * again (the daemon has -R: a create would make the directories and a
 * fresh file that shadows the real one once it is back). Its values wait,
 * cached and journaled (values_pending, series_dir_waiting), neither
 * written nor write errors; once the directory is back they are all in
 * the real files, each
 * once. With and without [storage] daemon_base. Fails without the check:
 * the file is created again at the old path (series_recreated 1) and
 * minute 1 is missing from the real one. */
static void dir_renamed_under_daemon(int base)
{
	char dir[200], ndir[PATH_MAX * 2], away[PATH_MAX * 2 + 8];
	struct hrd_daemon d;
	struct vg_store *s;
	struct vg_store_daemon dm[2];
	struct vg_store_stats st;
	struct vg_rrdcd *c;
	struct stat sb;

	assert_int_equal(fx_tmpdir(dir, sizeof(dir), "sync-dir-gone"), 0);
	const char *extra[] = {"-O", "-R", NULL};
	assert_int_equal(hrd_start(&d, NULL, extra), 0);
	s = write_through(dir, d.unix_addr, base ? d.base : NULL, 3600);

	minute0_flushed(s);
	vg_store_get_stats(s, &st);
	uint64_t errors = st.write_errors;

	assert_int_equal(vg_rrdcd_connect(d.unix_addr, 5000, &c), 0);
	forget_all(c);
	vg_rrdcd_close(c);
	snprintf(ndir, sizeof(ndir), "%s/host", d.base); /* the type directory */
	snprintf(away, sizeof(away), "%s.away", ndir);
	assert_int_equal(rename(ndir, away), 0);

	assert_int_equal(fxs_write_minute(s, "node", 0, NS, 1), 0);
	assert_int_equal(fxs_write_minute(s, "node", 0, NS, 2), 0);
	/* the storage thread takes what the receiver left (no timing
	 * asserted: 60 s is only a bound against a hang) */
	for (int k = 0; k < 1200; k++) {
		vg_store_get_stats(s, &st);
		if (st.series_dir_missing == NS && st.values_pending == 2 * NS)
			break;
		usleep(50 * 1000);
	}
	int rc = vg_store_flush(s);
	vg_store_get_stats(s, &st);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	printf("# base %d: flush %d, dir missing %llu, pending %llu, recreated %llu, "
	       "vanished %llu\n",
	       base, rc, (unsigned long long)st.series_dir_missing,
	       (unsigned long long)st.values_pending, (unsigned long long)st.series_recreated,
	       (unsigned long long)dm[0].vanished);
	assert_int_equal(st.series_dir_missing, NS);
	assert_int_equal(st.series_dir_waiting, NS);
	assert_int_equal(st.values_pending, 2 * NS);
	assert_int_equal(st.series_recreated, 0);
	assert_int_equal(st.write_errors, errors);
	assert_int_equal(dm[0].vanished, 0);
	assert_int_equal(stat(ndir, &sb), -1); /* nothing fresh at the old path */

	/* back: written to the real file */
	assert_int_equal(rename(away, ndir), 0);
	for (int k = 0; k < 1200; k++) {
		vg_store_get_stats(s, &st);
		if (!st.values_pending)
			break;
		usleep(50 * 1000);
	}
	assert_int_equal(fxs_flush_passes(s), 0);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.write_errors, errors);
	assert_int_equal(st.series_recreated, 0);
	for (int i = 0; i < NS; i++)
		fxs_check_series(s, i, 3);
	vg_store_close(s);
	hrd_cleanup(&d);
	assert_int_equal(fx_rm_tree(dir), 0);
}

static void test_dir_renamed_under_daemon(void **state)
{
	(void)state;
	dir_renamed_under_daemon(1);
}

static void test_dir_renamed_under_daemon_no_base(void **state)
{
	(void)state;
	dir_renamed_under_daemon(0);
}

/* every command the store uses but LIST */
#define NO_LIST "PING,UPDATE,BATCH,CREATE,INFO,LAST,FIRST,FORGET,STATS,FETCH,FLUSH,PENDING,WROTE,QUIT,HELP"

/* As dir_renamed_under_daemon, the store's socket started with -P
 * without LIST: rrdcached 1.7.2 answers the LIST "-1 Permission
 * denied.", which cannot tell a file deleted from a directory out of
 * reach, so the file is not created again on a guess: its values wait
 * (counted in series_dir_missing, values_pending), the log names the
 * daemon and says to permit LIST, once; once the directory is back (LIST
 * still refused: the UPDATE needs none) every value is in the real file.
 * Fails without the fix: a refused LIST was taken for "the directory is
 * there", the file created again at the old path (series_recreated 1,
 * the daemon's -R making the directories) and minutes 1, 2 went there. */
static void test_list_refused(void **state)
{
	char dir[200], addr[PATH_MAX], logp[PATH_MAX + 16], ndir[PATH_MAX * 2];
	char away[PATH_MAX * 2 + 8];
	struct hrd_daemon d;
	struct vg_store *s;
	struct vg_store_stats st;
	struct vg_rrdcd *c;
	struct stat sb;
	(void)state;

	assert_int_equal(fx_tmpdir(dir, sizeof(dir), "list-refused"), 0);
	snprintf(addr, sizeof(addr), "unix:%s/nolist.sock", dir);
	snprintf(logp, sizeof(logp), "%s/stderr.log", dir);
	const char *extra[] = {"-O", "-R", "-P", NO_LIST, "-l", addr, NULL};
	assert_int_equal(hrd_start(&d, NULL, extra), 0);
	s = write_through(dir, addr, d.base, 3600);
	minute0_flushed(s);

	/* the daemon's unrestricted socket: the files FORGOTten, their
	 * type directory renamed away */
	assert_int_equal(vg_rrdcd_connect(d.unix_addr, 5000, &c), 0);
	forget_all(c);
	vg_rrdcd_close(c);
	snprintf(ndir, sizeof(ndir), "%s/host", d.base); /* the type directory */
	snprintf(away, sizeof(away), "%s.away", ndir);
	assert_int_equal(rename(ndir, away), 0);

	fflush(stderr);
	int saved = dup(2), lfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(saved >= 0 && lfd >= 0);
	assert_int_equal(dup2(lfd, 2), 2);
	close(lfd);
	assert_int_equal(fxs_write_minute(s, "node", 0, NS, 1), 0);
	assert_int_equal(fxs_write_minute(s, "node", 0, NS, 2), 0);
	for (int k = 0; k < 1200; k++) { /* 60 s: only a bound against a hang */
		vg_store_get_stats(s, &st);
		if (st.series_dir_missing == NS && st.values_pending == 2 * NS)
			break;
		usleep(50 * 1000);
	}
	(void)vg_store_flush(s);
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	vg_store_get_stats(s, &st);
	printf("# LIST refused: dir missing %llu, pending %llu, recreated %llu\n",
	       (unsigned long long)st.series_dir_missing, (unsigned long long)st.values_pending,
	       (unsigned long long)st.series_recreated);
	assert_int_equal(st.series_recreated, 0);
	assert_int_equal(stat(ndir, &sb), -1); /* nothing fresh at the old path */
	assert_int_equal(st.series_dir_missing, NS);
	assert_int_equal(st.values_pending, 2 * NS);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(count_lines(logp, "cannot tell whether its directory is there"), 1);
	assert_int_equal(count_lines(logp, "Permission denied"), 1);
	assert_int_equal(count_lines(logp, "permit LIST"), 1);
	assert_true(count_lines(logp, addr) >= 1);

	/* back: written to the real file */
	assert_int_equal(rename(away, ndir), 0);
	for (int k = 0; k < 1200; k++) {
		vg_store_get_stats(s, &st);
		if (!st.values_pending)
			break;
		usleep(50 * 1000);
	}
	assert_int_equal(fxs_flush_passes(s), 0);
	vg_store_get_stats(s, &st);
	assert_int_equal(st.values_pending, 0);
	assert_int_equal(st.write_errors, 0);
	assert_int_equal(st.series_recreated, 0);
	for (int i = 0; i < NS; i++)
		fxs_check_series(s, i, 3);
	vg_store_close(s);
	hrd_cleanup(&d);
	assert_int_equal(fx_rm_tree(dir), 0);
}

/* 1 when PATH is made immutable (on: 1) or writable again (on: 0): root,
 * which the daemon runs as here, cannot write an immutable file; 0 where
 * the file system or the test's capabilities do not allow it. */
static int set_immutable(const char *path, int on)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK), flags = 0, ok = 0;

	if (fd < 0)
		return 0;
	if (!ioctl(fd, FS_IOC_GETFLAGS, &flags)) {
		flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
		ok = !ioctl(fd, FS_IOC_SETFLAGS, &flags);
	}
	close(fd);
	return ok;
}

/* The file test_unwritable_file made immutable, "" once writable again:
 * its teardown (run on a failure too) makes it writable, or nothing could
 * remove the daemon's directory. */
static char immutable_path[PATH_MAX * 2];

static int immutable_teardown(void **state)
{
	(void)state;
	if (immutable_path[0])
		set_immutable(immutable_path, 0);
	immutable_path[0] = '\0';
	return 0;
}

/* A file the daemon cannot write (issue 14; tried with rrdcached 1.7.2,
 * which runs as root here, so the file is made immutable): the daemon
 * takes the UPDATE, and its FLUSH answers "Successfully flushed" although
 * its write failed (only its log says so). Before the read-back the sync
 * counted the values durable and retired the journal segments holding
 * them: minute 1 of node0 was gone without a count. Now the sync reads
 * each FLUSHed file's last update back, finds node0 behind, counts it
 * (unwritten), logs it once, shows the daemon degraded, keeps the journal
 * and sends the values again from it; the daemon then refuses them (the
 * file is still unwritable), so they count as write errors and their
 * segment is kept as *.kept, as with the files backend. Once the file is
 * writable again the next values are written and the episode ends. */
static void unwritable_file(int with_base)
{
	char dir[200], path[PATH_MAX * 2], logp[PATH_MAX + 16];
	struct hrd_daemon d;
	struct vg_store *s;
	struct vg_store_daemon dm[2];

	assert_int_equal(fx_tmpdir(dir, sizeof(dir), "sync-unwritable"), 0);
	snprintf(logp, sizeof(logp), "%s/stderr.log", dir);
	const char *extra[] = {"-O", "-R", NULL};
	assert_int_equal(hrd_start(&d, NULL, extra), 0);
	/* syncs when asked */
	s = write_through(dir, d.unix_addr, with_base ? d.base : NULL, 3600);

	minute0_flushed(s);

	snprintf(path, sizeof(path), "%s/host/node0/load.1.rrd", d.base);
	memcpy(immutable_path, path, sizeof(path));
	if (!set_immutable(path, 1)) {
		immutable_path[0] = '\0';
		hrd_cleanup(&d);
		vg_store_close(s);
		assert_int_equal(fx_rm_tree(dir), 0);
		skip(); /* no immutable files here (tmpfs, no CAP_LINUX_IMMUTABLE) */
	}
	fflush(stderr);
	int saved = dup(2), lfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(saved >= 0 && lfd >= 0);
	assert_int_equal(dup2(lfd, 2), 2);
	close(lfd);

	/* minutes 1 and 2 taken by the daemon, node0's write fails */
	for (int m = 1; m < 3; m++)
		assert_int_equal(fxs_write_minute(s, "node", 0, NS, m), 0);
	vg_store_flush(s);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	printf("# unwritten %llu, pending %llu, lost %llu, segments %d: %s\n",
	       (unsigned long long)dm[0].unwritten, (unsigned long long)dm[0].pending,
	       (unsigned long long)dm[0].lost, journal_segments(dir), dm[0].flush_refusal);
	assert_int_equal(dm[0].unwritten, 1);
	assert_true(dm[0].flush_refusing);
	assert_non_null(strstr(dm[0].flush_refusal, "host/node0/load.1.rrd"));
	assert_true(journal_segments(dir) > 0);
	/* with daemon_base the other files were read here, node0 (behind
	 * here too) and the probe by INFO; without it all by INFO */
	printf("# read back here %llu, by INFO %llu\n",
	       (unsigned long long)dm[0].readback_local, (unsigned long long)dm[0].readback_info);
	if (with_base)
		assert_true(dm[0].readback_local >= NS - 2);
	else
		assert_int_equal(dm[0].readback_local, 0);
	/* still unwritable: the values are sent again from the journal (the
	 * daemon's cache lost them), and the daemon refuses them now (its
	 * entry for the file is gone, and a new one checks the file is
	 * writable): counted as write errors, their segment kept as *.kept,
	 * as with the files backend (docs/operations.md "Values that cannot
	 * be written") */
	struct vg_store_stats st;
	for (int i = 0; i < 40; i++) {
		usleep(250 * 1000);
		vg_store_flush(s);
		vg_store_get_stats(s, &st);
		if (st.write_errors >= 2 && st.segments_kept)
			break;
	}
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	printf("# resent %llu, write errors %llu, kept %llu: %s\n",
	       (unsigned long long)st.values_resent, (unsigned long long)st.write_errors,
	       (unsigned long long)st.segments_kept, vg_store_last_error(s));
	assert_int_equal(st.values_resent, 2);
	assert_int_equal(st.write_errors, 2);
	assert_true(st.segments_kept >= 1);

	/* writable again: the next values are written, the episode over */
	assert_true(set_immutable(path, 0));
	immutable_path[0] = '\0';
	assert_int_equal(fxs_write_minute(s, "node", 0, NS, 3), 0);
	for (int i = 0; i < 120; i++) {
		vg_store_flush(s);
		assert_int_equal(vg_store_daemons(s, dm, 2), 1);
		if (!dm[0].pending && !dm[0].lost && !dm[0].flush_refusing)
			break;
		usleep(250 * 1000);
	}
	assert_int_equal(dm[0].pending, 0);
	assert_int_equal(dm[0].lost, 0);
	assert_false(dm[0].flush_refusing);
	assert_int_equal(dm[0].unwritten, 1);
	for (int i = 1; i < NS; i++)
		fxs_check_series(s, i, 4);
	struct vg_series r;
	assert_int_equal(vg_store_fetch(s, VG_RT_HOST, "node0", "load.1", VG_CF_AVERAGE,
					FXS_MS(FXS_T0), FXS_MS(FXS_T0 + 180), 60, 0, &r),
			 0);
	/* node0: minute 3 written over the gap (a gauge's value covers the
	 * time since the file's last update), minutes 1 and 2 not (counted
	 * above) */
	assert_int_equal(r.n, 3);
	for (size_t k = 0; k < r.n; k++)
		assert_true(fabs(r.points[k].value - 3.0) < 1e-9);
	vg_series_free(&r);
	vg_store_close(s);
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	assert_int_equal(count_lines(logp, "host/node0/load.1.rrd: the daemon did not write"), 1);
	hrd_cleanup(&d);
	assert_int_equal(fx_rm_tree(dir), 0);
}

static void test_unwritable_file(void **state)
{
	(void)state;
	unwritable_file(0);
}

/* The same where the collector sees the daemon's files ([storage]
 * daemon_base): the sync reads their last update here, not by INFO
 * (backend_rrdcached.c rb_local), and still finds node0 behind. */
static void test_unwritable_file_local(void **state)
{
	(void)state;
	unwritable_file(1);
}

/* The read-back from the daemon's disk ([storage] daemon_base): a sync's
 * FLUSHed files are read here (their header's last update), and only one
 * of them (the probe) by the daemon's INFO; without daemon_base all by
 * INFO. Then a daemon_base that is not the daemon's -b (a copy of it,
 * its files pushed ahead of the daemon's): the probe finds the daemon's
 * file behind what was read here, so the local read is turned off for
 * good and every file is read by INFO again. Fails without the local
 * read (readback_local stays 0, every file INFOed) and without the probe
 * (the copy's files pass). */
static void test_readback_local(void **state)
{
	char dir[200], decoy[PATH_MAX], cmd[3 * PATH_MAX];
	struct hrd_daemon d;
	struct vg_store *s;
	struct vg_store_daemon dm[2];
	(void)state;

	assert_int_equal(fx_tmpdir(dir, sizeof(dir), "sync-rblocal"), 0);
	const char *extra[] = {"-O", "-R", NULL};
	assert_int_equal(hrd_start(&d, NULL, extra), 0);
	s = write_through(dir, d.unix_addr, d.base, 3600);
	minute0_flushed(s);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	uint64_t local0 = dm[0].readback_local, info0 = dm[0].readback_info;
	assert_int_equal(fxs_write_minute(s, "node", 0, NS, 1), 0);
	assert_int_equal(fxs_flush_passes(s), 0);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	printf("# daemon_base = -b: here %llu, INFO %llu\n",
	       (unsigned long long)(dm[0].readback_local - local0),
	       (unsigned long long)(dm[0].readback_info - info0));
	assert_int_equal(dm[0].readback_local - local0, NS); /* the probe too */
	assert_int_equal(dm[0].readback_info - info0, 1);
	assert_int_equal(dm[0].unwritten, 0);
	for (int i = 0; i < NS; i++)
		fxs_check_series(s, i, 2);
	vg_store_close(s);

	/* a copy of the daemon's files, ten minutes ahead of them */
	snprintf(decoy, sizeof(decoy), "%s/decoy", dir);
	snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", d.base, decoy);
	assert_int_equal(system(cmd), 0);
	for (int i = 0; i < NS; i++) {
		char path[PATH_MAX * 2], arg[64];
		const char *argv[] = {arg};
		snprintf(path, sizeof(path), "%s/host/node%d/load.1.rrd", decoy, i);
		snprintf(arg, sizeof(arg), "%lld:1", FXS_T0 + 600);
		rrd_clear_error();
		assert_int_equal(rrd_update_r(path, NULL, 1, argv), 0);
	}
	s = write_through(dir, d.unix_addr, decoy, 3600);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	local0 = dm[0].readback_local;
	info0 = dm[0].readback_info;
	for (int m = 2; m < 4; m++) {
		assert_int_equal(fxs_write_minute(s, "node", 0, NS, m), 0);
		assert_int_equal(fxs_flush_passes(s), 0);
	}
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	printf("# daemon_base a copy: here %llu, INFO %llu\n",
	       (unsigned long long)(dm[0].readback_local - local0),
	       (unsigned long long)(dm[0].readback_info - info0));
	assert_int_equal(dm[0].readback_local - local0, 0);
	/* the probe, then every file of both syncs */
	assert_int_equal(dm[0].readback_info - info0, 1 + 2 * NS);
	assert_int_equal(dm[0].unwritten, 0);
	for (int i = 0; i < NS; i++)
		fxs_check_series(s, i, 4);
	vg_store_close(s);
	hrd_cleanup(&d);
	assert_int_equal(fx_rm_tree(dir), 0);
}

/* [storage] verify_writes = no (the operator's switch for the CPU the
 * read-back costs): the same unwritable file as test_unwritable_file,
 * and the sync reads nothing back, so the daemon's failed write is not
 * found: nothing counted as unwritten, the daemon not degraded, the
 * journal retired, node0's minutes 1 and 2 lost without a count (what
 * docs/operations.md says "no" can lose). With "yes" the same steps
 * count the file (test_unwritable_file); an unknown value is refused
 * when the store opens. */
static void test_unwritable_file_unverified(void **state)
{
	char dir[200], err[256], path[PATH_MAX * 2];
	struct hrd_daemon d;
	struct vg_config cfg;
	struct vg_store *s;
	struct vg_store_daemon dm[2];
	(void)state;

	assert_int_equal(fx_tmpdir(dir, sizeof(dir), "sync-unverified"), 0);
	const char *extra[] = {"-O", "-R", NULL};
	assert_int_equal(hrd_start(&d, NULL, extra), 0);
	fxs_config(&cfg, "1m:1d", d.unix_addr, NULL);
	snprintf(cfg.storage_write_through, sizeof(cfg.storage_write_through), "yes");
	cfg.storage_sync_interval_s = 3600; /* syncs only when the test asks */
	snprintf(cfg.storage_verify_writes, sizeof(cfg.storage_verify_writes), "maybe");
	assert_int_equal(vg_store_open(dir, &cfg, &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "[storage] verify_writes must be yes or no, not 'maybe'"));
	snprintf(cfg.storage_verify_writes, sizeof(cfg.storage_verify_writes), "no");
	assert_int_equal(vg_store_open(dir, &cfg, &s, err, sizeof(err)), 0);

	assert_int_equal(fxs_write_minute(s, "node", 0, NS, 0), 0);
	assert_int_equal(fxs_flush_passes(s), 0);
	snprintf(path, sizeof(path), "%s/host/node0/load.1.rrd", d.base);
	memcpy(immutable_path, path, sizeof(path));
	if (!set_immutable(path, 1)) {
		immutable_path[0] = '\0';
		hrd_cleanup(&d);
		vg_store_close(s);
		assert_int_equal(fx_rm_tree(dir), 0);
		skip(); /* no immutable files here (tmpfs, no CAP_LINUX_IMMUTABLE) */
	}
	for (int m = 1; m < 3; m++)
		assert_int_equal(fxs_write_minute(s, "node", 0, NS, m), 0);
	assert_int_equal(vg_store_flush(s), 0); /* once: its 0 is the point */
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	printf("# unwritten %llu, pending %llu, lost %llu, segments %d\n",
	       (unsigned long long)dm[0].unwritten, (unsigned long long)dm[0].pending,
	       (unsigned long long)dm[0].lost, journal_segments(dir));
	assert_int_equal(dm[0].unwritten, 0);
	assert_false(dm[0].flush_refusing);
	assert_int_equal(dm[0].pending, 0);
	assert_int_equal(dm[0].lost, 0);
	assert_true(set_immutable(path, 0));
	immutable_path[0] = '\0';
	/* the other files have minutes 1 and 2; node0 does not, and nothing
	 * said so (counted 0 above) */
	for (int i = 1; i < NS; i++)
		fxs_check_series(s, i, 3);
	struct vg_series r;
	assert_int_equal(vg_store_fetch(s, VG_RT_HOST, "node0", "load.1", VG_CF_AVERAGE,
					FXS_MS(FXS_T0), FXS_MS(FXS_T0 + 120), 60, 0, &r),
			 0);
	/* node0's last update is still minute 0's: no row after it (the
	 * fetch ends at the file's last update) */
	printf("# node0: %zu points\n", r.n);
	for (size_t k = 0; k < r.n; k++)
		assert_true(isnan(r.points[k].value));
	assert_int_equal(r.n, 0);
	vg_series_free(&r);
	vg_store_close(s);
	hrd_cleanup(&d);
	assert_int_equal(fx_rm_tree(dir), 0);
}

/* Values of node0 in test_concurrent_flush, sent by the test itself to
 * the daemon, in six tiers of three functions (18 archives): enough that
 * the daemon's write of them takes long (70 ms for 20,000 values in 19
 * archives here, unloaded) against the sync's FLUSH and INFO (a fraction
 * of a ms each) */
#define CF_MINUTES 60000

/* A file another FLUSH is writing is no unwritten file. rrdcached 1.7.2
 * answers a FLUSH "Successfully flushed" at once, without waiting, when a
 * writer thread already took the file's values for another FLUSH (an API
 * read, the receiver's proof FLUSH, another collector) and is still
 * writing them; the sync's INFO then reads the file before that write
 * lands. Here: CF_MINUTES - 2 values of node0 sent to the daemon by the
 * test, the store's own newest one after them, a FLUSH of the file on a
 * connection of the test's, and the store's sync started once INFO shows
 * the write going on (the file's last update past minute 0, not yet at
 * the store's value). Before behind_confirm the sync's read-back counted
 * the file unwritten, degraded the daemon, logged an error and marked the
 * file lost; now it reads the file again while it moves and finds it
 * written: nothing counted, logged or sent again. */
static void test_concurrent_flush(void **state)
{
	char dir[200], logp[PATH_MAX + 16], err[256];
	const char *name = "host/node0/load.1.rrd";
	const int64_t final = FXS_T0 + 60 * (CF_MINUTES - 1);
	struct hrd_daemon d;
	struct vg_config cfg;
	struct vg_store *s;
	struct vg_store_daemon dm[2];
	struct vg_store_stats st;
	struct vg_rrdcd *b, *p;
	int64_t last_s = 0;
	int ierr = 0, rc;
	(void)state;

	assert_int_equal(fx_tmpdir(dir, sizeof(dir), "sync-concurrent"), 0);
	snprintf(logp, sizeof(logp), "%s/stderr.log", dir);
	const char *extra[] = {"-R", NULL};
	assert_int_equal(hrd_start(&d, NULL, extra), 0);
	fxs_config(&cfg, "1m:15d,2m:30d,5m:63d,10m:100d,15m:200d,1h:455d", d.unix_addr, NULL);
	snprintf(cfg.storage_write_through, sizeof(cfg.storage_write_through), "yes");
	cfg.storage_sync_interval_s = 3600; /* syncs only when the test asks */
	assert_int_equal(vg_store_open(dir, &cfg, &s, err, sizeof(err)), 0);
	assert_int_equal(fxs_write_minute(s, "node", 0, 1, 0), 0);
	assert_int_equal(fxs_flush_passes(s), 0);

	/* minutes 1 .. CF_MINUTES - 2 cached by the daemon (the test's),
	 * then the store's last one */
	assert_int_equal(vg_rrdcd_connect(d.unix_addr, 30000, &b), 0);
	assert_int_equal(vg_rrdcd_connect(d.unix_addr, 30000, &p), 0);
	int64_t *ts = malloc(sizeof(*ts) * CF_MINUTES);
	double *v = malloc(sizeof(*v) * CF_MINUTES);
	assert_true(ts && v);
	for (int m = 1; m < CF_MINUTES - 1; m++) {
		ts[m - 1] = FXS_T0 + 60 * m;
		v[m - 1] = m;
	}
	struct vg_rrdcd_update u = {name, CF_MINUTES - 2, 1, ts, v, 0};
	assert_int_equal(vg_rrdcd_update(b, &u), 0);
	free(ts);
	free(v);
	assert_int_equal(fxs_write_minute(s, "node", 0, 1, CF_MINUTES - 1), 0);

	fflush(stderr);
	int saved = dup(2), lfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(saved >= 0 && lfd >= 0);
	assert_int_equal(dup2(lfd, 2), 2);
	close(lfd);

	/* another FLUSH of the file, its answer read later; the sync once
	 * that write is seen going on (no timing asserted: 60 s is only a
	 * bound against a hang) */
	assert_int_equal(vg_rrdcd_flush_many_send(b, &name, 1), 0);
	int64_t until = vg_monotonic_ms() + 60000;
	do
		assert_int_equal(vg_rrdcd_info_last_many(p, &name, 1, &last_s, &ierr), 0);
	while (!ierr && last_s <= FXS_T0 && vg_monotonic_ms() < until);
	assert_int_equal(ierr, 0);
	int64_t seen = last_s;
	rc = vg_store_flush(s);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	printf("# sync during the other FLUSH: %d (the file's last update at minute %lld of "
	       "%d when it began), unwritten %llu, lost %llu\n",
	       rc, (long long)(seen - FXS_T0) / 60, CF_MINUTES - 1,
	       (unsigned long long)dm[0].unwritten, (unsigned long long)dm[0].lost);
	/* the case this test is about was met: the write was going on */
	assert_true(seen > FXS_T0 && seen < final);
	assert_int_equal(dm[0].unwritten, 0);
	assert_int_equal(dm[0].lost, 0);
	assert_false(dm[0].flush_refusing);
	int ferr;
	assert_int_equal(vg_rrdcd_flush_many_recv(b, 1, &ferr, NULL), 0);
	vg_rrdcd_close(b);
	/* a write still going on after the confirmation's bound (a loaded
	 * machine) left the file for the next sync, uncounted */
	for (int i = 0; i < 40 && rc; i++) {
		usleep(250 * 1000);
		rc = vg_store_flush(s);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(vg_store_daemons(s, dm, 2), 1);
	vg_store_get_stats(s, &st);
	assert_int_equal(dm[0].unwritten, 0);
	assert_int_equal(dm[0].pending, 0);
	assert_int_equal(dm[0].lost, 0);
	assert_false(dm[0].flush_refusing);
	assert_int_equal(st.values_resent, 0);
	assert_int_equal(vg_rrdcd_info_last_many(p, &name, 1, &last_s, &ierr), 0);
	assert_int_equal(ierr, 0);
	assert_int_equal(last_s, final);
	vg_rrdcd_close(p);
	vg_store_close(s);
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	assert_int_equal(count_lines(logp, "the daemon did not write"), 0);
	hrd_cleanup(&d);
	assert_int_equal(fx_rm_tree(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused_flush_backs_off),
		cmocka_unit_test(test_flush_answers_only_when_synced),
		cmocka_unit_test(test_replay_refused),
		cmocka_unit_test(test_unrecognised_refusal),
		cmocka_unit_test(test_deleted_under_daemon),
		cmocka_unit_test(test_deleted_under_daemon_no_base),
		cmocka_unit_test(test_dir_renamed_under_daemon),
		cmocka_unit_test(test_dir_renamed_under_daemon_no_base),
		cmocka_unit_test(test_list_refused),
		cmocka_unit_test_teardown(test_unwritable_file, immutable_teardown),
		cmocka_unit_test_teardown(test_unwritable_file_local, immutable_teardown),
		cmocka_unit_test(test_readback_local),
		cmocka_unit_test_teardown(test_unwritable_file_unverified, immutable_teardown),
		cmocka_unit_test(test_concurrent_flush),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
