/*
 * storage_cmd.c — `vigie-collector storage stats` and `vigie-collector
 * storage convert [--metric PATTERN]` (docs/operations.md, "Storage").
 *
 * stats: what the store holds and how fast it grows, so an operator sees
 * the disk coming: resources and series (registry rows), ended resources
 * and their series waiting for keep_ended, the files' bytes on the data
 * directory's disk and what is free there, and the growth rate: the bytes
 * of series files created in the last 7 days (their birth time, statx
 * btime) divided by 7 — the gross rate; the lifecycle takes back what
 * ended resources held keep_ended after they ended. Beside a running
 * collector it only reads (its store opens write-through, without the
 * journal); with none running, opening the store replays a journal a
 * crash left, as the collector's start would. The walk is the backend's
 * (vg_store_usage); an engine that cannot walk (rrdcached: the files are
 * the daemons') is said so on standard output, and any other failure of
 * the walk makes the exit status 1.
 *
 * convert: give every series whose metric matches PATTERN (all without
 * it) the archives its [archives] rule names now (vg_store_convert_series;
 * every stored row of the archives both layouts have is kept bit for bit).
 * It needs the journal lock: stop vigie-collector first (a running one
 * writes the files being converted). With the rrdcached backend the files
 * are the daemons': --daemon ADDR --dir DIR converts the series of the
 * daemon ADDR in DIR, its -b directory as mounted here (as `storage move`
 * reaches them), each one verified through the daemon
 * (collector/backend_rrdcached.c, "conversion"); the other daemons'
 * series are counted and left alone, for a run of their own.
 *
 * marks: the holding marks of the shared state (docs/scaling.md "Holding
 * marks"): which collector holds values of which host that a storage
 * daemon has not taken, until when; `marks release NODE` deletes a
 * node's marks, for a collector that will never come back (its disk is
 * lost: the values its marks protected are gone with it, and its hosts
 * would otherwise wait [cluster] hold_max). The same release moves the
 * node's verified row to now ([cluster] wait_verified: its hosts wait
 * for that row, docs/scaling.md "Closing the second"), and the list
 * names the nodes whose row is behind their commits. A running
 * collector is never asked: the marks are rows of the database.
 *
 * move and flush have their own files (storage_move.c, storage_flush.c).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vigie/storage_cmd.h"
#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/lifecycle.h"
#include "vigie/name.h"
#include "vigie/registry.h"
#include "vigie/store.h"
#include "collector/series_list.h"

#define GROWTH_DAYS 7 /* the growth rate's window */

/* ---- stats ------------------------------------------------------------------- */

struct counts {
	uint64_t resources, series;
};

static int c_res(void *ctx, const struct vg_registry_res *r)
{
	(void)r;
	((struct counts *)ctx)->resources++;
	return 0;
}

static int c_met(void *ctx, const struct vg_registry_metric *m)
{
	(void)m;
	((struct counts *)ctx)->series++;
	return 0;
}

static int c_end(void *ctx)
{
	(void)ctx;
	return 0;
}

static int stats(const struct vg_config *cfg, FILE *out, FILE *errf)
{
	struct vg_store *s = NULL;
	struct vg_registry *reg = NULL;
	struct vg_lifecycle_result lr;
	struct counts c = {0};
	struct vg_registry_visitor v = {c_res, c_met, c_end, &c};
	struct vg_resource_filter f = {0};
	char err[512], after[VG_NAME_MAX * 4 + 1] = "", next[VG_NAME_MAX * 4 + 1];
	int rc;

	if ((rc = vg_registry_open_state(cfg->collector_data_dir, cfg->state_url, &reg, err,
					 sizeof(err))) ||
	    (rc = vg_store_open_beside(cfg->collector_data_dir, cfg, &s, err, sizeof(err)))) {
		fprintf(errf, "vigie-collector storage stats: %s\n", err);
		vg_registry_close(reg);
		return 1;
	}
	f.limit = 1000;
	do {
		f.after = after[0] ? after : NULL;
		if ((rc = vg_registry_list_visit(reg, &f, &v, next, sizeof(next))))
			break;
		snprintf(after, sizeof(after), "%s", next);
	} while (next[0]);
	if (!rc)
		rc = vg_lifecycle_sweep(reg, s, vg_now_ms(), 0, &lr, err, sizeof(err));
	if (rc) {
		fprintf(errf, "vigie-collector storage stats: registry: %s\n", strerror(-rc));
		vg_store_close(s);
		vg_registry_close(reg);
		return 1;
	}
	int64_t since = vg_now_ms() / 1000 - GROWTH_DAYS * 86400;
	struct vg_store_usage u = {0};
	int urc = vg_store_usage(s, since, &u);
	if (urc && urc != -ENOTSUP)
		fprintf(errf, "vigie-collector storage stats: bytes on disk: %s\n",
			strerror(-urc));
	fprintf(out, "resources: %llu\n", (unsigned long long)c.resources);
	fprintf(out, "series: %llu (registry)\n", (unsigned long long)c.series);
	fprintf(out, "ended: %llu resources with %llu series (deleted %g days "
		     "after they ended: [storage] keep_ended%s)\n",
		(unsigned long long)lr.resources_waiting,
		(unsigned long long)lr.series_waiting, cfg->storage_keep_ended_s / 86400,
		cfg->storage_keep_ended_s > 0 ? "" : " = 0, never");
	for (size_t i = 0; i < u.n; i++) {
		const struct vg_store_holder *h = &u.h[i];
		double per_day = (double)h->bytes_recent / GROWTH_DAYS;
		fprintf(out, "%s: %llu series files, %llu bytes", h->where,
			(unsigned long long)h->series, (unsigned long long)h->bytes);
		if (h->bytes_free != UINT64_MAX)
			fprintf(out, ", %llu bytes free", (unsigned long long)h->bytes_free);
		fprintf(out, "\n  growth: %.0f bytes/day (series created in the last "
			     "%d days, by birth time, divided by %d)%s\n",
			per_day,
			GROWTH_DAYS, GROWTH_DAYS,
			h->no_birth ? "; some files have no birth time" : "");
		if (per_day > 0 && h->bytes_free != UINT64_MAX)
			fprintf(out, "  full in: %.1f days at that rate\n",
				(double)h->bytes_free / per_day);
	}
	/* An engine that cannot tell its bytes (rrdcached: the files are the
	 * daemons', maybe on other hosts) is a fact to state, not an error. */
	if (urc == -ENOTSUP)
		fprintf(out, "%s: bytes on disk, free space and growth not known to the "
			     "collector ([storage] backend = %s): look at the daemons' "
			     "-b directories\n",
			cfg->storage_daemons[0] ? cfg->storage_daemons : cfg->storage_backend,
			cfg->storage_backend);
	{ /* placements on a daemon removed from the list: unreadable */
		struct vg_store_unlisted ul[64];
		size_t nu = vg_store_unlisted(s, ul, sizeof(ul) / sizeof(ul[0]), 1);
		for (size_t i = 0; i < nu; i++)
			fprintf(out, "%s: %llu series recorded on it, not in [storage] daemons: "
				     "their reads answer 503; list it again and move them "
				     "(vigie-collector storage move) before removing it\n",
				ul[i].address, (unsigned long long)ul[i].series);
	}
	vg_store_close(s);
	vg_registry_close(reg);
	return urc && urc != -ENOTSUP ? 1 : 0;
}

/* ---- convert ------------------------------------------------------------------ */

static int convert(const struct vg_config *cfg, const char *pattern, const char *daemon,
		   const char *dir, FILE *out, FILE *errf)
{
	struct vg_store *s = NULL;
	struct vg_registry *reg = NULL;
	struct vg_series_list p = {.metric_glob = pattern};
	struct vg_registry_visitor v = vg_series_list_visitor(&p);
	struct vg_resource_filter f = {0};
	char err[512], after[VG_NAME_MAX * 4 + 1] = "", next[VG_NAME_MAX * 4 + 1];
	uint64_t done = 0, same = 0, gone = 0, failed = 0, elsewhere = 0;
	int rc, unable = 0;

	if ((rc = vg_registry_open_state(cfg->collector_data_dir, cfg->state_url, &reg, err,
					 sizeof(err))) ||
	    (rc = vg_store_open_beside(cfg->collector_data_dir, cfg, &s, err, sizeof(err)))) {
		fprintf(errf, "vigie-collector storage convert: %s\n", err);
		vg_registry_close(reg);
		return 1;
	}
	if (!vg_store_owns_journal(s)) {
		fprintf(errf, "vigie-collector storage convert: %s is in use by a "
			      "running vigie-collector: stop it first\n",
			cfg->collector_data_dir);
		vg_store_close(s);
		vg_registry_close(reg);
		return 1;
	}
	{
		/* values replayed for a daemon that does not answer, or whose
		 * files' check was cut short at [storage] check_max: written
		 * after a convert, they would meet files it changed */
		struct vg_store_stats st;
		int hrc = vg_store_pending_hold(s, &st); /* decided once: see store.h */
		if (hrc) {
			fprintf(errf, "vigie-collector storage convert: the storage thread: %s\n",
				strerror(-hrc));
			vg_store_close(s);
			vg_registry_close(reg);
			return 1;
		}
		if (st.values_pending) {
			char why[1200];
			int cause = vg_store_pending_cause(s, 1, why, sizeof(why));
			fprintf(errf,
				"vigie-collector storage convert: %llu values of the "
				"journal a crash left wait for %s (%s): "
				"start the collector or this command again once it "
				"answers and its files are checked (%s)\n",
				(unsigned long long)st.values_pending,
				cause & VG_STORE_PENDING_DAEMON ? "a storage daemon"
								: vg_store_pending_what(cause),
				why, vg_store_last_error(s));
			vg_store_close_held(s); /* as said: no new try at close */
			vg_registry_close(reg);
			return 1;
		}
	}
	if (daemon && (rc = vg_store_convert_at(s, daemon, dir, err, sizeof(err)))) {
		fprintf(errf, "vigie-collector storage convert: %s%s\n", err,
			rc == -ENOTSUP ? ": --daemon and --dir are for [storage] backend = "
					 "rrdcached"
				       : "");
		vg_store_close(s);
		vg_registry_close(reg);
		return 2;
	}
	f.limit = 200;
	do {
		f.after = after[0] ? after : NULL;
		if ((rc = vg_registry_list_visit(reg, &f, &v, next, sizeof(next))))
			break;
		for (size_t i = 0; i < p.n && !unable; i++) {
			int changed = 0;
			char msg[512] = "";
			int r = vg_store_convert_series(s, p.rtype[i], p.id[i], p.metric[i],
							&changed, msg, sizeof(msg));
			if (!r && *msg) /* leftovers of a killed run, removed */
				fprintf(out, "vigie-collector storage convert: %s %s: %s\n",
					p.id[i], p.metric[i], msg);
			if (!r && changed)
				done++;
			else if (!r)
				same++;
			else if (r == -ENOENT)
				gone++;
			else if (r == -EXDEV)
				elsewhere++;
			else if (r == -ENOTSUP) {
				/* the engine's files are its daemons': say once
				 * how to reach them, convert nothing */
				unable = 1;
				fprintf(errf,
					"vigie-collector storage convert: the series files are "
					"the storage daemons' ([storage] backend = %s): give "
					"--daemon ADDR --dir DIR, DIR that daemon's -b directory "
					"as mounted here, once per daemon (docs/operations.md)\n",
					cfg->storage_backend);
			} else {
				failed++;
				fprintf(errf, "vigie-collector storage convert: %s %s: %s\n",
					p.id[i], p.metric[i], *msg ? msg : strerror(-r));
			}
		}
		vg_series_list_clear(&p);
		snprintf(after, sizeof(after), "%s", next);
	} while (next[0] && !unable);
	vg_series_list_free(&p);
	fprintf(out, "converted %llu series, %llu had their rule's archives already, "
		     "%llu have no file, %llu failed",
		(unsigned long long)done,
		(unsigned long long)same, (unsigned long long)gone,
		(unsigned long long)failed);
	if (daemon)
		fprintf(out, "; %llu on other daemons (left as they are); each series "
			     "converted was verified through %s: every archive both layouts "
			     "have, its state and every row both hold, bit for bit",
			(unsigned long long)elsewhere, daemon);
	fputc('\n', out);
	vg_store_close(s);
	vg_registry_close(reg);
	return rc || failed || unable ? 1 : 0;
}

/* ---- marks ------------------------------------------------------------------- */

struct marks_ctx {
	FILE *out;
	uint64_t n;
	int64_t now;
};

static int mark_line(void *ctx, const char *host, const char *node, int64_t until_ms)
{
	struct marks_ctx *m = ctx;
	int64_t left = (until_ms - m->now) / 1000;

	fprintf(m->out, "%s\t%s\t%s %llds\n", host, node,
		left > 0 ? "lapses in" : "lapsed", (long long)(left > 0 ? left : -left));
	m->n++;
	return 0;
}

static int verified_line(void *ctx, const char *node, int64_t upto_ms, uint64_t behind)
{
	struct marks_ctx *m = ctx;

	if (upto_ms > 0)
		fprintf(m->out, "%s\tverified %llds ago\t%llu stream(s) behind\n", node,
			(long long)((m->now - upto_ms) / 1000), (unsigned long long)behind);
	else
		fprintf(m->out, "%s\tnever verified\t%llu stream(s) behind\n", node,
			(unsigned long long)behind);
	m->n++;
	return 0;
}

static int marks(const struct vg_config *cfg, const char *release, FILE *out, FILE *errf)
{
	struct vg_registry *reg = NULL;
	struct marks_ctx m = {out, 0, vg_now_ms()};
	uint64_t n = 0;
	char err[512];
	int rc;

	/* marks are rows of the shared state: a collector on its own sqlite
	 * state has none, and an empty list would look like "nothing held" */
	if (!cfg->state_url[0]) {
		fprintf(errf, "vigie-collector storage marks: holding marks exist only in a "
			      "PostgreSQL [state] url (collectors sharing rrdcached daemons); "
			      "this collector's state is sqlite in %s, which has none\n",
			cfg->collector_data_dir);
		return 1;
	}
	if ((rc = vg_registry_open_state(cfg->collector_data_dir, cfg->state_url, &reg, err,
					 sizeof(err)))) {
		fprintf(errf, "vigie-collector storage marks: %s\n", err);
		return 1;
	}
	if (release) {
		uint64_t nv = 0;
		if (!(rc = vg_registry_marks_release(reg, release, &n)) &&
		    !(rc = vg_registry_verified_release(reg, release, &nv))) {
			fprintf(out, "released %llu holding mark(s) of %s\n",
				(unsigned long long)n, release);
			if (nv)
				fprintf(out, "released %s's unverified commits: no host "
					     "waits for its verified row any more\n",
					release);
			/* a typo'd node name must not pass for a release; a
			 * second release of one node stays a success */
			if (!n && !nv)
				fprintf(errf, "vigie-collector storage marks: no holding mark "
					      "of '%s' (node names are case-sensitive; "
					      "'storage marks' lists the holders)\n",
					release);
		}
	} else {
		fprintf(out, "host\tholder\ttime limit\n");
		if (!(rc = vg_registry_marks(reg, mark_line, &m)))
			fprintf(out, "%llu holding mark(s)\n", (unsigned long long)m.n);
		/* nodes whose commits their verified row does not cover yet
		 * ([cluster] wait_verified keeps their hosts from the others) */
		m.n = 0;
		if (!rc && !(rc = vg_registry_verified(reg, verified_line, &m)))
			fprintf(out, "%llu node(s) behind their verified row\n",
				(unsigned long long)m.n);
	}
	if (rc)
		fprintf(errf, "vigie-collector storage marks: %s\n",
			*vg_registry_last_error(reg) ? vg_registry_last_error(reg)
						     : strerror(-rc));
	vg_registry_close(reg);
	return rc ? 1 : 0;
}

/* Whether dir, which exists, is a vigie data directory: one a collector
 * or a command of its own ran in has its journal/, registry.db (sqlite
 * state), rrd/ (files backend) or tokens.db. An offline command given
 * another directory (a typo in --data-dir naming /tmp or a home) made
 * journal/, registry.db and rrd/ in it and answered as if it were empty:
 * 0 (go on: also when dir does not exist, which each command says), or 2
 * after saying so. */
static int data_dir_known(const struct vg_config *cfg, const char *cmd, FILE *errf)
{
	static const char *const marks[] = {"journal", "registry.db", "rrd", "tokens.db"};
	const char *dir = cfg->collector_data_dir;
	char path[4096];
	struct stat st;

	if (stat(dir, &st) || !S_ISDIR(st.st_mode))
		return 0;
	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, marks[i]);
		if (!access(path, F_OK))
			return 0;
	}
	fprintf(errf,
		"vigie-collector storage %s: %s is not a vigie data directory (no journal/, "
		"registry.db, rrd/ or tokens.db in it): check --data-dir or [collector] "
		"data_dir\n",
		cmd, dir);
	return 2;
}

int vg_storage_command(const struct vg_config *cfg, int argc, char **argv,
		       FILE *out, FILE *err)
{
	static const char usage[] =
		"usage: vigie-collector [--config FILE] [--data-dir DIR] storage stats\n"
		"       vigie-collector [--config FILE] [--data-dir DIR] storage convert "
		"[--metric PATTERN]\n"
		"         [--daemon ADDR --dir DIR]\n"
		"       vigie-collector [--config FILE] storage move --from ADDR --to ADDR\n"
		"         --from-dir DIR --to-dir DIR (--series PATTERN | --all) [--dry-run]\n"
		"       vigie-collector [--config FILE] [--data-dir DIR] storage flush "
		"[--timeout SECONDS]\n"
		"       vigie-collector [--config FILE] storage marks [release NODE]\n"
		"  stats    series, bytes on disk, free space, ended series waiting\n"
		"           for deletion, growth in bytes per day\n"
		"  convert  give existing series their [archives] rule's archives\n"
		"           (stop vigie-collector first); --metric: only metrics\n"
		"           matching the glob PATTERN; rrdcached: --daemon ADDR\n"
		"           --dir DIR converts that daemon's series in DIR, its -b\n"
		"           directory as mounted here, verified through it\n"
		"  move     move series from one rrdcached daemon to another, verify\n"
		"           them, record the new owner, delete the source (stop\n"
		"           vigie-collector first; 'storage move --help')\n"
		"  flush    make the running collector write its cache to the\n"
		"           files (SIGUSR1) and wait until it did\n"
		"  marks    list the holding marks (a collector holds values of a\n"
		"           host that a storage daemon has not taken); release\n"
		"           NODE: delete NODE's, for a collector that will never\n"
		"           come back (its journal is lost), and release its\n"
		"           unverified commits ([cluster] wait_verified)\n";

	/* `storage --help`, `storage stats --help`, `storage convert --help`,
	 * `storage marks --help` (move and flush answer their own) */
	if ((argc == 2 && !strcmp(argv[1], "--help")) ||
	    (argc == 3 &&
	     (!strcmp(argv[1], "stats") || !strcmp(argv[1], "convert") ||
	      !strcmp(argv[1], "marks")) &&
	     !strcmp(argv[2], "--help"))) {
		fputs(usage, out);
		return 0;
	}
	/* the commands on the data directory: only on one (flush --help
	 * answers first) */
	if (argc >= 2 &&
	    (!strcmp(argv[1], "stats") || !strcmp(argv[1], "convert") ||
	     (!strcmp(argv[1], "flush") && !(argc == 3 && !strcmp(argv[2], "--help"))))) {
		int rc = data_dir_known(cfg, argv[1], err);
		if (rc)
			return rc;
	}
	if (argc >= 2 && !strcmp(argv[1], "stats") && argc == 2)
		return stats(cfg, out, err);
	if (argc >= 2 && !strcmp(argv[1], "convert")) {
		const char *metric = NULL, *daemon = NULL, *dir = NULL;
		int i, bad = 0;
		for (i = 2; i < argc && !bad; i += 2) {
			const char **slot = !strcmp(argv[i], "--metric")   ? &metric
					    : !strcmp(argv[i], "--daemon") ? &daemon
					    : !strcmp(argv[i], "--dir")    ? &dir
									   : NULL;
			if (!slot || *slot || i + 1 == argc)
				bad = 1;
			else
				*slot = argv[i + 1];
		}
		if (!bad && !daemon == !dir)
			return convert(cfg, metric, daemon, dir, out, err);
	}
	if (argc >= 2 && !strcmp(argv[1], "move"))
		return vg_storage_move_command(cfg, argc, argv, out, err);
	if (argc == 2 && !strcmp(argv[1], "marks"))
		return marks(cfg, NULL, out, err);
	if (argc == 4 && !strcmp(argv[1], "marks") && !strcmp(argv[2], "release"))
		return marks(cfg, argv[3], out, err);
	if (argc >= 2 && !strcmp(argv[1], "flush"))
		return vg_storage_flush_command(cfg, argc, argv, out, err);
	fputs(usage, err);
	return 2;
}
