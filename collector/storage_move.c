/*
 * storage_move.c — `vigie-collector storage move`: move series from one
 * rrdcached daemon to another, verify, then record the new owner and only
 * then delete the source copy (docs/operations.md, "Moving series").
 *
 * Why. Placement records each series' daemon when it is created, so adding
 * a daemon moves nothing; taking series off a full or retiring daemon is an
 * explicit operator step, and it must prove that nothing changed on the
 * way.
 *
 * How a series moves (the collector stopped: the command takes the data
 * directory's journal lock, as `storage convert` does, and refuses beside a
 * running collector; opening the store first replays a journal a crash
 * left, so every acknowledged value is on its daemon before anything
 * moves):
 *   1. FLUSH the file on the source daemon, then take its "before" view
 *      through the source daemon: INFO (every header field: last update,
 *      the data source's state, each archive's consolidation state and
 *      current row) and, for every consolidation function and every
 *      archive, a FETCH that the daemon answers from that archive;
 *   2. copy the file's bytes from the source daemon's -b directory to the
 *      destination's (both as mounted where the command runs:
 *      --from-dir, --to-dir), through a temporary file, fsync, link() so an
 *      existing file is never overwritten, fsync the directory; read the
 *      copy back and compare it byte for byte;
 *   3. take the "after" view through the destination daemon and compare
 *      it with the before view: INFO key by key (all but "filename") and
 *      every FETCH answer — start, end, step, row count, timestamps and
 *      every value bit for bit (rrdcached prints FETCH values with 17
 *      digits after the point, %0.17e, which round-trips a double
 *      exactly, so the parsed doubles are the stored bits);
 *   4. only when all of this holds: record the new owner — first in the
 *      shared placement record when [state] url is PostgreSQL
 *      (collector/placement.c: one transaction per batch of series), then
 *      "<to> <name>" appended to <data_dir>/journal/owners (later lines
 *      win, see collector/backend_rrdcached.c) and fdatasync'd — then
 *      FORGET the file on the source daemon and unlink it there. A series
 *      that fails any step keeps its source file and its record; a copy
 *      this run made is removed. (Recorded in the shared record but not
 *      in the owners file: both copies stay, the shared record wins at
 *      the next start, the source is reported as stale.)
 * A crash between 2 and 4 leaves an unrecorded copy on the destination:
 * the next run finds it identical and takes it. A crash after the record
 * and before the delete leaves a stale source copy, which a later run
 * reports (it is no series of the collector's any more).
 *
 * Why a byte copy. rrdcached's protocol has no way to read or write a
 * file's archives (UPDATE goes through consolidation again; CREATE -r
 * reads a file on the daemon's own host). `rrdtool dump`/`restore` would
 * be portable across architectures but the XML carries values with ten
 * significant digits (%1.10e): values would change. librrd's
 * `create --source` re-averages what it copies. A byte copy keeps
 * everything, and the verification through the destination daemon proves
 * that daemon reads it as the source did (an RRD file is not portable
 * between architectures of different byte order or alignment: such a move
 * fails verification and keeps the source).
 *
 * Which series. Those of the registry (as `storage convert`) whose owner
 * is --from: the recorded owner (the shared record's, else the owners
 * file's), else the rendezvous owner among the configured daemons, as the
 * backend locates them; --series PATTERN
 * narrows to "TYPE/ID/METRIC" names matching the glob. --to must be one of
 * [storage] daemons, written exactly as there; --from may be an address no
 * longer configured.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vigie/batch.h"
#include "vigie/db.h"
#include "vigie/fsutil.h"
#include "vigie/hmap.h"
#include "vigie/name.h"
#include "vigie/registry.h"
#include "vigie/rrdcached.h"
#include "vigie/storage_cmd.h"
#include "vigie/store.h"
#include "collector/backend.h"
#include "collector/placement.h"
#include "collector/rrd_view.h"
#include "collector/series_list.h"

#define PROG "vigie-collector storage move"
#define IO_TIMEOUT_MS 60000          /* a FLUSH or FETCH of a big file */
#define FILE_MAX (4ull << 30)        /* a series file larger is refused */
#define MAX_DAEMONS 64               /* as the backend */
#define MAX_ADDRS 1024               /* distinct addresses in the record */
#define RECORD_EVERY 256             /* series verified per record sync */
#define TMP_SUFFIX ".vigie-move.tmp" /* the copy before its link() */

struct move_opts {
	const char *from, *to, *from_dir, *to_dir, *pattern;
	int all, dry_run;
};

/* ---- the placement record ------------------------------------------------------ */

struct owners {
	struct vg_hmap map; /* name -> (void *)(address index + 1) */
	char *addr[MAX_ADDRS];
	size_t naddr;
};

static size_t addr_intern(struct owners *o, const char *a)
{
	for (size_t i = 0; i < o->naddr; i++)
		if (!strcmp(o->addr[i], a))
			return i;
	if (o->naddr == MAX_ADDRS || !(o->addr[o->naddr] = strdup(a)))
		return SIZE_MAX;
	return o->naddr++;
}

/* Read the record as the backend does: "<address> <name>\n", later lines
 * win, a torn last line is ignored. 0 or -errno. */
static int owners_load(struct owners *o, const char *path)
{
	FILE *fp = fopen(path, "re");
	char line[VG_RRDCD_NAME_MAX + 300];

	vg_hmap_init(&o->map);
	if (!fp)
		return errno == ENOENT ? 0 : -errno;
	while (fgets(line, sizeof(line), fp)) {
		char *sp = strchr(line, ' '), *nl = strchr(line, '\n');
		size_t idx;
		if (!sp || !nl)
			continue;
		*sp = *nl = '\0';
		if ((idx = addr_intern(o, line)) == SIZE_MAX ||
		    vg_hmap_puts(&o->map, sp + 1, (void *)(uintptr_t)(idx + 1))) {
			fclose(fp);
			return -ENOMEM;
		}
	}
	fclose(fp);
	return 0;
}

static void owners_free(struct owners *o)
{
	vg_hmap_release(&o->map);
	for (size_t i = 0; i < o->naddr; i++)
		free(o->addr[i]);
}

/* The configured daemons, split as vg_rrd_rrdcached_open does. */
static size_t daemons_split(const char *list, char *buf, size_t buflen, const char **out)
{
	char *save = NULL, *tok;
	size_t n = 0;

	if ((size_t)snprintf(buf, buflen, "%s", list) >= buflen)
		return 0;
	for (tok = strtok_r(buf, ",", &save); tok && n < MAX_DAEMONS;
	     tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		size_t len = strlen(tok);
		while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
			tok[--len] = '\0';
		if (len)
			out[n++] = tok;
	}
	return n;
}

/* ---- the file copy ------------------------------------------------------------- */

static int read_all(const char *path, unsigned char **buf, size_t *len, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	size_t off = 0;

	*buf = NULL;
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) || !S_ISREG(st->st_mode) || (uint64_t)st->st_size > FILE_MAX) {
		close(fd);
		return -EINVAL;
	}
	if (!(*buf = malloc(st->st_size ? (size_t)st->st_size : 1))) {
		close(fd);
		return -ENOMEM;
	}
	while (off < (size_t)st->st_size) {
		ssize_t r = read(fd, *buf + off, (size_t)st->st_size - off);
		if (r <= 0) {
			int e = r < 0 ? -errno : -EIO;
			close(fd);
			free(*buf);
			*buf = NULL;
			return e;
		}
		off += (size_t)r;
	}
	close(fd);
	*len = off;
	return 0;
}

/* Make the directories of NAME under BASE (owned like BASE when root). */
static int mkdirs(const char *base, const char *name)
{
	char p[PATH_MAX * 2];
	struct stat bst;
	size_t bl = strlen(base);

	if (stat(base, &bst) || !S_ISDIR(bst.st_mode))
		return -ENOTDIR;
	if ((size_t)snprintf(p, sizeof(p), "%s/%s", base, name) >= sizeof(p))
		return -ENAMETOOLONG;
	for (char *s = p + bl + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		if (mkdir(p, 0755) == 0) {
			if (geteuid() == 0 && chown(p, bst.st_uid, bst.st_gid))
				return -errno;
		} else if (errno != EEXIST) {
			return -errno;
		}
		*s = '/';
	}
	return 0;
}

/* Copy SRC's bytes to DST (never over an existing file). *made: 1 if DST
 * is a copy this call made or found identical (the caller removes it if
 * the move fails). 0, -EEXIST (DST exists and differs), -errno. */
static int copy_file(const char *to_dir, const char *name, const unsigned char *buf, size_t len,
		     const struct stat *sst, int *made, char *why, size_t whylen)
{
	char dst[PATH_MAX * 2], tmp[PATH_MAX * 2 + 32];
	unsigned char *back = NULL;
	size_t blen = 0;
	struct stat dst_st, bst;
	int fd, rc;

	*made = 0;
	snprintf(dst, sizeof(dst), "%s/%s", to_dir, name);
	snprintf(tmp, sizeof(tmp), "%s" TMP_SUFFIX, dst);
	if ((rc = read_all(dst, &back, &blen, &dst_st)) == 0) {
		int same = blen == len && !memcmp(back, buf, len);
		free(back);
		if (dst_st.st_dev == sst->st_dev && dst_st.st_ino == sst->st_ino) {
			/* one file seen through two paths: deleting the
			 * "source" would delete the only copy */
			snprintf(why, whylen, "%.600s is the source file itself", dst);
			return -EEXIST;
		}
		if (!same) {
			snprintf(why, whylen, "%.600s exists and differs from the source: left alone",
				 dst);
			return -EEXIST;
		}
		*made = 1; /* a copy a stopped run left */
		return 0;
	}
	if (rc != -ENOENT) {
		snprintf(why, whylen, "%.600s: %s", dst, strerror(-rc));
		return rc;
	}
	if ((rc = mkdirs(to_dir, name))) {
		snprintf(why, whylen, "%.600s: cannot make its directory: %s", dst, strerror(-rc));
		return rc;
	}
	(void)unlink(tmp); /* a stopped run's */
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		       sst->st_mode & 07777)) < 0) {
		rc = -errno;
		snprintf(why, whylen, "%.600s: %s", tmp, strerror(-rc));
		return rc;
	}
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, buf + off, len - off);
		if (w <= 0) {
			rc = w < 0 ? -errno : -EIO;
			break;
		}
		off += (size_t)w;
	}
	if (!rc && geteuid() == 0 && !stat(to_dir, &bst) && fchown(fd, bst.st_uid, bst.st_gid))
		rc = -errno;
	if (!rc && fsync(fd))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && link(tmp, dst))
		rc = -errno;
	(void)unlink(tmp);
	if (rc) {
		snprintf(why, whylen, "%.600s: %s", dst, strerror(-rc));
		return rc;
	}
	*made = 1;
	if ((rc = vg_fs_fsync_parent(dst))) {
		snprintf(why, whylen, "%.600s: fsync of its directory: %s", dst, strerror(-rc));
		return rc;
	}
	/* what the file system holds now, byte for byte */
	if ((rc = read_all(dst, &back, &blen, &dst_st))) {
		snprintf(why, whylen, "%.600s: read back: %s", dst, strerror(-rc));
		return rc;
	}
	rc = blen == len && !memcmp(back, buf, len) ? 0 : -EIO;
	free(back);
	if (rc)
		snprintf(why, whylen, "%.600s: read back differs from the source", dst);
	return rc;
}

static void remove_copy(const char *to_dir, const char *name)
{
	char dst[PATH_MAX * 2];

	snprintf(dst, sizeof(dst), "%s/%s", to_dir, name);
	if (!unlink(dst))
		(void)vg_fs_fsync_parent(dst);
}

/* ---- one series ---------------------------------------------------------------- */

/* Before the copy: with no file of NAME in --to-dir, --to must not know
 * NAME. If it does, it reads files from somewhere else than --to-dir: a
 * wrong --to-dir, or --to is --from's own daemon under another address
 * (unix:SOCK and HOST:PORT of one daemon both in [storage] daemons). The
 * "after" view would then read the source file again, equal to the
 * before view, and the source would be deleted while its only copy sits
 * where no daemon reads it. 0, or -EEXIST with why filled. */
static int dst_reads_elsewhere(const struct move_opts *o, struct vg_rrdcd *dst,
			       const char *name, char *why, size_t whylen)
{
	struct vg_rrdcd_info info;
	char path[PATH_MAX * 2];
	struct stat st;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", o->to_dir, name);
	if (lstat(path, &st) == 0 || errno != ENOENT)
		return 0; /* copy_file decides (a stopped run's copy, or a conflict) */
	rc = vg_rrdcd_info(dst, name, &info);
	vg_rrdcd_info_free(&info);
	if (rc)
		return 0; /* unknown there (or unreadable: the after view tells) */
	snprintf(why, whylen,
		 "%.200s answers for %.200s although --to-dir %.200s has no such file: "
		 "--to-dir is not %.200s's -b directory, or --to and --from are one daemon "
		 "under two addresses",
		 o->to, name, o->to_dir, o->to);
	return -EEXIST;
}

enum outcome { MOVED,
	       NO_FILE,
	       FAILED };

static enum outcome move_one(const struct move_opts *o, struct vg_rrdcd *src,
			     struct vg_rrdcd *dst, const char *name, char *why, size_t whylen)
{
	struct vg_rrd_view before, after;
	char path[PATH_MAX * 2];
	unsigned char *buf = NULL;
	size_t len = 0;
	struct stat st;
	int made = 0, rc;

	why[0] = '\0';
	rc = vg_rrdcd_flush(src, name);
	if (rc && rc != -ENOENT) { /* -EREMOTEIO too: not FLUSHed */
		snprintf(why, whylen, "FLUSH of %.300s on %s failed (nothing copied): %s", name,
			 o->from, vg_rrdcd_error(src));
		return FAILED;
	}
	if ((rc = vg_rrd_view_take(src, name, &before, why, whylen))) {
		vg_rrd_view_free(&before);
		return rc == -ENOENT ? NO_FILE : FAILED;
	}
	snprintf(path, sizeof(path), "%s/%s", o->from_dir, name);
	if ((rc = read_all(path, &buf, &len, &st))) {
		snprintf(why, whylen, "%.600s: %s (is --from-dir %s's -b directory?)", path,
			 strerror(-rc), o->from);
		vg_rrd_view_free(&before);
		return FAILED;
	}
	if ((rc = dst_reads_elsewhere(o, dst, name, why, whylen))) {
		free(buf);
		vg_rrd_view_free(&before);
		return FAILED;
	}
	rc = copy_file(o->to_dir, name, buf, len, &st, &made, why, whylen);
	free(buf);
	if (!rc) {
		rc = vg_rrd_view_take(dst, name, &after, why, whylen);
		if (rc == -ENOENT)
			snprintf(why + strlen(why), whylen - strlen(why),
				 " (is --to-dir %s's -b directory?)", o->to);
		if (!rc && !vg_rrd_view_equal(&before, &after, why, whylen))
			rc = -EIO;
		vg_rrd_view_free(&after);
	}
	vg_rrd_view_free(&before);
	if (rc) {
		if (made)
			remove_copy(o->to_dir, name);
		return FAILED;
	}
	return MOVED;
}

/* Record the moved names on TO (durable), then delete their sources. */
/* With a PostgreSQL state, what else may write the daemons while series
 * move: a collector seen within [cluster] lease (running, or killed less
 * than a lease ago: a clean stop marks its row gone), and a holding mark
 * (a collector holds acknowledged values a daemon has not taken, in its
 * journal; its start replays them to the daemon it knows then). The
 * journal lock keeps only this data directory's collector out: another
 * collector started during a move writes a series the move has copied
 * and not yet recorded to the source, whose FORGET and unlink then
 * drop those values. 0: none (or no shared state); 1: printed what, on
 * errf; -errno (printed): the state cannot be read. */
struct mark_count {
	uint64_t n;
	char first[200];
};

static int count_mark(void *ctx, const char *host, const char *node, int64_t until_ms)
{
	struct mark_count *m = ctx;

	(void)until_ms;
	if (!m->n++)
		snprintf(m->first, sizeof(m->first), "%.80s holds %.80s", node, host);
	return 0;
}

static int cluster_busy(const struct vg_config *cfg, struct vg_registry *reg, FILE *errf)
{
	struct mark_count m = {0, ""};
	struct vg_db *db = NULL;
	struct vg_db_stmt *st;
	char err[512], nodes[400] = "";
	uint64_t live = 0;
	int rc;

	if (!vg_placement_wanted(cfg->state_url))
		return 0;
	if ((rc = vg_db_open(cfg->state_url, NULL, &db, err, sizeof(err)))) {
		fprintf(errf, PROG ": %s\n", err);
		return rc;
	}
	/* no table: no collector ever joined this state */
	if (!(rc = vg_db_prepare(db, "SELECT to_regclass('vigie_cluster.nodes') IS NOT NULL",
				 &st))) {
		if ((rc = vg_db_step(st)) == 1)
			rc = vg_db_column_int64(st, 0) ? 1 : 0;
		vg_db_reset(st);
	}
	if (rc == 1 &&
	    !(rc = vg_db_prepare(db, "SELECT node FROM vigie_cluster.nodes WHERE last_seen > "
				     "now() - CAST(?1 AS BIGINT) * interval '1 millisecond' "
				     "ORDER BY node",
				 &st))) {
		vg_db_bind_int64(st, 1, (int64_t)(cfg->cluster_lease_s * 1000));
		while ((rc = vg_db_step(st)) == 1)
			if (live++ < 3)
				snprintf(nodes + strlen(nodes), sizeof(nodes) - strlen(nodes),
					 "%s%.120s", live > 1 ? ", " : "",
					 vg_db_column_text(st, 0) ?: "");
		vg_db_reset(st);
	}
	if (rc < 0)
		fprintf(errf, PROG ": reading the collectors of the shared state: %s\n",
			vg_db_errmsg(db));
	vg_db_close(db);
	if (rc < 0)
		return rc;
	if ((rc = vg_registry_marks(reg, count_mark, &m))) {
		fprintf(errf, PROG ": reading the holding marks: %s\n", strerror(-rc));
		return rc;
	}
	if (live)
		fprintf(errf,
			PROG ": %llu collector(s) of the shared state are running or were "
			     "killed less than [cluster] lease ago (%s%s): stop every "
			     "collector sharing the daemons first; a series one of them "
			     "writes while it moves loses those values\n",
			(unsigned long long)live, nodes, live > 3 ? ", ..." : "");
	if (m.n)
		fprintf(errf,
			PROG ": %llu holding mark(s) (%s): a collector holds acknowledged "
			     "values a daemon has not taken; start it so its journal is "
			     "written (or `storage marks release NODE` if it never "
			     "returns), then move\n",
			(unsigned long long)m.n, m.first);
	return live || m.n ? 1 : 0;
}

static int commit(const struct move_opts *o, const char *owners_path,
		  struct vg_placement *shared, struct vg_rrdcd *src, char **names, size_t n,
		  uint64_t *deleted, FILE *errf, const struct vg_config *cfg,
		  struct vg_registry *reg)
{
	int fd, rc = 0;

	/* a collector that started since the last look (cluster_busy) may
	 * have written these series to the source after their copy: record
	 * nothing, delete nothing */
	if (cfg && (rc = cluster_busy(cfg, reg, errf))) {
		fprintf(errf, PROG ": %zu series copied and not recorded: their copies are "
				   "removed, the sources kept\n",
			n);
		for (size_t i = 0; i < n; i++)
			remove_copy(o->to_dir, names[i]);
		return rc < 0 ? rc : -EBUSY;
	}

	/* The shared record first: every collector reads it (the owners
	 * file is this collector's cache of it). */
	if (shared && (rc = vg_placement_set(shared, (const char *const *)names, n, o->to))) {
		struct vg_store_placement st;
		vg_placement_get_stats(shared, &st);
		fprintf(errf, PROG ": recording the new owners in the shared state: %s; the "
				   "sources are kept\n",
			st.error);
		for (size_t i = 0; i < n; i++)
			remove_copy(o->to_dir, names[i]);
		return rc;
	}
	if ((fd = open(owners_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		rc = -errno;
		fprintf(errf, PROG ": %s: %s%s\n", owners_path, strerror(-rc),
			shared ? " (the shared record has the new owners: the copies and the "
				 "sources are both kept; the shared record wins)"
			       : "");
		return rc;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		char line[VG_RRDCD_NAME_MAX + 300];
		int len = snprintf(line, sizeof(line), "%s %s\n", o->to, names[i]);
		if (len <= 0 || (size_t)len >= sizeof(line) || write(fd, line, (size_t)len) != len)
			rc = -EIO;
	}
	if (!rc && fdatasync(fd))
		rc = -errno;
	close(fd);
	if (rc) {
		/* Not recorded for sure: every source stays (a copy on the
		 * destination is harmless; the next run takes it). */
		fprintf(errf, PROG ": recording the new owners in %s: %s; the sources are kept\n",
			owners_path, strerror(-rc));
		if (!shared) /* else it names the copies: they stay */
			for (size_t i = 0; i < n; i++)
				remove_copy(o->to_dir, names[i]);
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX * 2];
		int f = vg_rrdcd_forget(src, names[i]);
		if (f && f != -ENOENT)
			fprintf(errf, PROG ": FORGET %s on %s: %s\n", names[i], o->from,
				vg_rrdcd_error(src));
		snprintf(path, sizeof(path), "%s/%s", o->from_dir, names[i]);
		if (unlink(path)) {
			fprintf(errf, PROG ": moved %s, but cannot delete the source %s: %s\n",
				names[i], path, strerror(errno));
			continue;
		}
		(*deleted)++;
		/* the per-resource directory, when it is now empty */
		char *sl = strrchr(path, '/');
		if (sl) {
			*sl = '\0';
			(void)rmdir(path);
		}
	}
	return 0;
}

/* ---- the command --------------------------------------------------------------- */

static int usage(FILE *f)
{
	fputs("usage: vigie-collector [--config FILE] storage move --from ADDR --to ADDR\n"
	      "         --from-dir DIR --to-dir DIR (--series PATTERN | --all) [--dry-run]\n"
	      "  Move the series the daemon ADDR holds to the daemon --to (one of\n"
	      "  [storage] daemons), with vigie-collector stopped. --from-dir and\n"
	      "  --to-dir: the two daemons' -b directories as mounted here.\n"
	      "  --series: only TYPE/ID/METRIC names matching the glob PATTERN.\n"
	      "  Each series is verified (bytes, INFO and every archive read\n"
	      "  through both daemons) before its new owner is recorded and the\n"
	      "  source file deleted; a series that fails keeps its source.\n",
	      f);
	return 2;
}

static int parse(int argc, char **argv, struct move_opts *o, FILE *err)
{
	memset(o, 0, sizeof(*o));
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		const char **slot = !strcmp(a, "--from")       ? &o->from
				    : !strcmp(a, "--to")       ? &o->to
				    : !strcmp(a, "--from-dir") ? &o->from_dir
				    : !strcmp(a, "--to-dir")   ? &o->to_dir
				    : !strcmp(a, "--series")   ? &o->pattern
							       : NULL;
		if (slot) {
			if (!v)
				return usage(err);
			*slot = v;
			i++;
		} else if (!strcmp(a, "--all")) {
			o->all = 1;
		} else if (!strcmp(a, "--dry-run")) {
			o->dry_run = 1;
		} else if (!strcmp(a, "--help")) {
			usage(stdout);
			return 1;
		} else {
			return usage(err);
		}
	}
	if (!o->from || !o->to || !o->from_dir || !o->to_dir || (!o->all == !o->pattern))
		return usage(err);
	return 0;
}

int vg_storage_move_command(const struct vg_config *cfg, int argc, char **argv, FILE *out,
			    FILE *errf)
{
	struct move_opts o;
	struct vg_store *s = NULL;
	struct vg_registry *reg = NULL;
	struct owners own = {0};
	struct vg_placement *shared = NULL;
	struct vg_series_list l = {0};
	struct vg_registry_visitor v = vg_series_list_visitor(&l);
	struct vg_resource_filter f = {0};
	struct vg_rrdcd *src = NULL, *dst = NULL;
	const char *daemons[MAX_DAEMONS];
	char dbuf[sizeof(cfg->storage_daemons)], err[512], owners_path[PATH_MAX];
	char after[VG_NAME_MAX * 4 + 1] = "", next[VG_NAME_MAX * 4 + 1];
	char **batch = NULL;
	size_t nd, nbatch = 0;
	uint64_t moved = 0, deleted = 0, no_file = 0, failed = 0, elsewhere = 0, stale = 0;
	int rc, status = 1, to_ok = 0, held = 0;

	if ((rc = parse(argc, argv, &o, errf)))
		return rc == 1 ? 0 : rc;
	if (strcmp(cfg->storage_backend, "rrdcached")) {
		fprintf(errf, PROG ": [storage] backend is '%s': moving series is for the "
				   "rrdcached backend\n",
			cfg->storage_backend[0] ? cfg->storage_backend : "files");
		return 2;
	}
	nd = daemons_split(cfg->storage_daemons, dbuf, sizeof(dbuf), daemons);
	for (size_t i = 0; i < nd; i++)
		to_ok |= !strcmp(daemons[i], o.to);
	if (!to_ok || !strcmp(o.from, o.to)) {
		fprintf(errf, PROG ": --to %s must be one of [storage] daemons (%s), written "
				   "as there, and differ from --from\n",
			o.to, cfg->storage_daemons);
		return 2;
	}
	{
		struct stat fs, ts;
		if (stat(o.from_dir, &fs) || !S_ISDIR(fs.st_mode) || stat(o.to_dir, &ts) ||
		    !S_ISDIR(ts.st_mode)) {
			fprintf(errf, PROG ": --from-dir %s and --to-dir %s must be directories\n",
				o.from_dir, o.to_dir);
			return 2;
		}
		if (fs.st_dev == ts.st_dev && fs.st_ino == ts.st_ino) {
			fprintf(errf, PROG ": --from-dir and --to-dir are the same directory: "
					   "nothing would move, and deleting a source would "
					   "delete the only copy\n");
			return 2;
		}
	}
	if ((rc = vg_registry_open_state(cfg->collector_data_dir, cfg->state_url, &reg, err,
					 sizeof(err))) ||
	    (rc = vg_store_open_beside(cfg->collector_data_dir, cfg, &s, err, sizeof(err)))) {
		fprintf(errf, PROG ": %s\n", err);
		vg_registry_close(reg);
		return 1;
	}
	if (!vg_store_owns_journal(s)) {
		fprintf(errf, PROG ": %s is in use by a running vigie-collector: stop it first\n",
			cfg->collector_data_dir);
		goto out;
	}
	{
		/* the journal a crash left holds values for a daemon that does
		 * not answer (the store's open keeps them for it): a series
		 * moved now would get them on its old daemon after the move */
		struct vg_store_stats st;
		int hrc = vg_store_pending_hold(s, &st); /* decided once: see store.h */
		if (hrc) {
			fprintf(errf, PROG ": the storage thread: %s\n", strerror(-hrc));
			goto out;
		}
		if (st.values_pending) {
			char why[1200];
			int cause = vg_store_pending_cause(s, 1, why, sizeof(why));
			fprintf(errf,
				PROG ": %llu values of the journal a crash left wait for "
				     "%s (%s): start the collector or this command "
				     "again once it answers and its files are checked (%s)\n",
				(unsigned long long)st.values_pending,
				cause & VG_STORE_PENDING_DAEMON ? "a storage daemon"
								: vg_store_pending_what(cause),
				why, vg_store_last_error(s));
			held = 1; /* as said: no new try at close */
			goto out;
		}
	}
	if (!o.dry_run && cluster_busy(cfg, reg, errf))
		goto out;
	snprintf(owners_path, sizeof(owners_path), "%s/journal/owners", cfg->collector_data_dir);
	if ((rc = owners_load(&own, owners_path))) {
		fprintf(errf, PROG ": %s: %s\n", owners_path, strerror(-rc));
		goto out;
	}
	if (vg_placement_wanted(cfg->state_url) &&
	    (rc = vg_placement_open(cfg->state_url, &shared, err, sizeof(err)))) {
		fprintf(errf, PROG ": %s\n", err);
		goto out;
	}
	if (!o.dry_run) {
		if ((rc = vg_rrdcd_connect(o.from, IO_TIMEOUT_MS, &src)) ||
		    (rc = vg_rrdcd_connect(o.to, IO_TIMEOUT_MS, &dst))) {
			fprintf(errf, PROG ": cannot connect to %s: %s\n", src ? o.to : o.from,
				strerror(-rc));
			goto out;
		}
		if (!(batch = calloc(RECORD_EVERY, sizeof(*batch)))) {
			fprintf(errf, PROG ": out of memory\n");
			goto out;
		}
	}
	f.limit = 200;
	do {
		f.after = after[0] ? after : NULL;
		if ((rc = vg_registry_list_visit(reg, &f, &v, next, sizeof(next)))) {
			fprintf(errf, PROG ": registry: %s\n", strerror(-rc));
			goto out;
		}
		for (size_t i = 0; i < l.n; i++) {
			char name[PATH_MAX], full[3 * VG_NAME_MAX + 64], why[1024];
			const char *owner;
			void *rec;

			if (vg_store_path(s, l.rtype[i], l.id[i], l.metric[i], name, sizeof(name)))
				continue;
			snprintf(full, sizeof(full), "%s/%s/%s", vg_rtype_name(l.rtype[i]),
				 l.id[i], l.metric[i]);
			if (o.pattern && fnmatch(o.pattern, full, 0))
				continue;
			char recorded[256];
			int found = 0;
			if (shared &&
			    (found = vg_placement_lookup(shared, name, recorded, sizeof(recorded))) < 0) {
				struct vg_store_placement st;
				vg_placement_get_stats(shared, &st);
				fprintf(errf, PROG ": the shared placement record: %s\n", st.error);
				goto out;
			}
			rec = vg_hmap_gets(&own.map, name);
			owner = found ? recorded
				: rec ? own.addr[(uintptr_t)rec - 1]
				: nd  ? daemons[vg_rrd_rendezvous(name, daemons, nd)]
				      : "";
			if (strcmp(owner, o.from)) {
				elsewhere++;
				if (!strcmp(owner, o.to)) { /* a delete a stopped run missed? */
					/* only beside its copy on --to: without
					 * one, the file in --from-dir may be the
					 * one --to reads (one daemon under two
					 * addresses), not a stale one */
					char p[PATH_MAX * 2], q[PATH_MAX * 2];
					snprintf(p, sizeof(p), "%s/%s", o.from_dir, name);
					snprintf(q, sizeof(q), "%s/%s", o.to_dir, name);
					stale += access(p, F_OK) == 0 && access(q, F_OK) == 0;
				}
				continue;
			}
			if (o.dry_run) {
				fprintf(out, "would move %s (%s)\n", full, name);
				moved++;
				continue;
			}
			switch (move_one(&o, src, dst, name, why, sizeof(why))) {
			case MOVED:
				if (!(batch[nbatch] = strdup(name))) {
					remove_copy(o.to_dir, name);
					failed++;
					break;
				}
				nbatch++;
				moved++;
				break;
			case NO_FILE:
				no_file++;
				break;
			case FAILED:
				failed++;
				fprintf(errf, PROG ": %s: %s; the source is kept\n", full, why);
				break;
			}
			if (!vg_rrdcd_connected(src))
				(void)vg_rrdcd_reconnect(src);
			if (!vg_rrdcd_connected(dst))
				(void)vg_rrdcd_reconnect(dst);
			if (nbatch == RECORD_EVERY) {
				if (commit(&o, owners_path, shared, src, batch, nbatch, &deleted, errf, cfg, reg)) {
					failed += nbatch;
					moved -= nbatch;
				}
				for (size_t k = 0; k < nbatch; k++)
					free(batch[k]);
				nbatch = 0;
			}
		}
		vg_series_list_clear(&l);
		snprintf(after, sizeof(after), "%s", next);
	} while (next[0]);
	if (nbatch && commit(&o, owners_path, shared, src, batch, nbatch, &deleted, errf, cfg, reg)) {
		failed += nbatch;
		moved -= nbatch;
	}
	if (o.dry_run)
		fprintf(out, "would move %llu series from %s to %s\n", (unsigned long long)moved,
			o.from, o.to);
	else
		fprintf(out, "moved %llu series from %s to %s (verified: file bytes, INFO and "
			     "every archive of every consolidation function read through both "
			     "daemons, bit for bit), %llu source files deleted; %llu failed "
			     "(sources kept); %llu had no file on %s; %llu on other daemons\n",
			(unsigned long long)moved, o.from, o.to, (unsigned long long)deleted,
			(unsigned long long)failed, (unsigned long long)no_file, o.from,
			(unsigned long long)elsewhere);
	if (stale)
		fprintf(out, "note: %llu series recorded on %s still have a file in %s (a move "
			     "stopped before deleting it): no series reads it; delete it by hand\n",
			(unsigned long long)stale, o.to, o.from_dir);
	status = failed ? 1 : 0;
out:
	for (size_t k = 0; k < nbatch; k++)
		free(batch[k]);
	free(batch);
	vg_rrdcd_close(src);
	vg_rrdcd_close(dst);
	vg_series_list_free(&l);
	owners_free(&own);
	vg_placement_close(shared);
	if (held)
		vg_store_close_held(s);
	else
		vg_store_close(s);
	vg_registry_close(reg);
	return status;
}
