/*
 * backend_files.c — the files backend: one local librrd file per series
 * (collector/backend.h), the default engine and what `make demo` uses.
 *
 * Why. The store decides what to write and when; this file is everything
 * that knows librrd and the file layout, so another engine (rrdcached)
 * can stand beside it behind the same table of operations.
 *
 * Design. Layout <rrd_dir>/<type>/<escaped resource id>/<escaped
 * metric>.rrd (vigie/name.h: no name from the wire leaves rrd_dir). A file
 * is created as <path>.tmp and renamed, so a crash never leaves half a
 * file under the real name. librrd pays ~20 us per rrd_update_r call and
 * ~0.4 us per value in it, so update() gives it up to MAX_ARGS values per
 * call, formatted without printf for the common values.
 *
 * Header undo (kill -9 inside librrd). librrd maps the file and updates
 * it in place, one timestamp at a time: the data sources' and archives'
 * scratch state (pdp_prep, cdp_prep), the archives' rows and row pointers
 * (rra_ptr), and last_up last. A process killed in between leaves a file
 * whose rows and pointers have moved while last_up has not; replaying the
 * journal then adds that timestamp's row a second time and every older
 * row reads one step early (and a consolidated archive's scratch holds
 * the value twice). So before each rrd_update_r the backend copies the
 * file's header (everything before the rows: a few KiB) into a slot of
 * the undo file (<data_dir>/journal/undo) and clears the slot once librrd
 * returned. At open, before the store replays its journal, a slot still
 * set means an update that may not have finished: its header is written
 * back, which puts the file exactly where it was before that update (the
 * rows it may have written are the oldest of their ring, overwritten by
 * the replay with the same values), and the replay redoes the update. A
 * slot is set only while its values' journal segment is alive (the store
 * retires segments after the flush that emptied them and a sync). kill -9
 * keeps page cache writes, so no fsync is needed for this; a power cut is
 * the journal's business (fdatasync) and the file system's.
 *
 * Invariants:
 *  - the last update of a file is read from its header (live_head, in
 *    microseconds) and rounded to the nearest millisecond: librrd parses
 *    "...229" with strtod and truncates, keeping 228999 us, so truncating
 *    again would make a value already in the file (...229) look newer
 *    than the file (...228) after a restart;
 *  - a refused librrd call never takes other values with it: values at
 *    or before the file's last update are dropped as already stored, the
 *    rest is retried in one call and, if refused again, one per call;
 *  - undo slots (UNDO_SLOTS) bound concurrent protected updates; a
 *    caller waits for a free slot (own mutex, never held across librrd);
 *  - counters are __atomic: readable from any thread.
 *
 * Why one file (~1,000 lines): it is one implementation of the backend
 * table (collector/backend.h), and the header undo cannot be cut from the
 * update that it protects: both read librrd's header layout (live_head_t,
 * rrd_header_len), and update takes and gives back an undo slot around
 * each librrd call.
 */
#define RRD_EXPORT_DEPRECATED /* only for the header structs (live_head) */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <ftw.h>
#include <unistd.h>

#include <rrd.h>

#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/fsutil.h"
#include "vigie/hash.h"
#include "vigie/name.h"
#include "collector/backend.h"
#include "collector/rrd_file.h"
#include "collector/rrd_format.h"

/* Longest escaped component we accept: a file is created as
 * "<metric>.rrd.tmp" + librrd's own 6-character mkstemp suffix, and all of
 * it must fit in NAME_MAX. */
#define COMPONENT_MAX (NAME_MAX - 16)
#define ESC_MAX (3 * VG_NAME_MAX + 1)
_Static_assert(VG_NAME_COMPONENT_MAX <= COMPONENT_MAX,
	       "vg_name_component must fit the backend's components");

#define MAX_ARGS 256                /* timestamps per librrd call */
#define UNDO_SLOTS 16               /* concurrent rrd_update_r calls */
#define UNDO_SLOT_BYTES (64u << 10) /* one header + its path */
#define UNDO_MAGIC 0x64756776u      /* "vgud" */

struct files {
	struct vg_rrd_backend be; /* first: the handle */
	char rrd_dir[PATH_MAX];
	char undo_path[PATH_MAX];
	int dir_fd; /* rrd_dir, for syncfs */
	/* the devices rrd_dir and each <type> directory were first seen on
	 * (at open, or at the create that made the directory): a directory
	 * found elsewhere later is another file system mounted over the
	 * store's (dev_moved); dev_seen: a bit per type, bit 0 rrd_dir
	 * (__atomic: creates run on several threads) */
	uint64_t dev[VG_RT_MAX + 1];
	uint32_t dev_seen;
	int undo_fd;                       /* -1: updates unprotected */
	pthread_mutex_t mu;                /* undo_busy */
	pthread_cond_t free_cv;            /* a slot was given back */
	uint32_t undo_busy;                /* slots in use, a bit each */
	struct vg_rrd_backend_stats stats; /* __atomic */
};

static void count(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static void note(char *msg, size_t msglen, const char *path, const char *what)
{
	size_t len = strlen(path);

	/* The tail of a long path is the part that names the series. */
	if (msg && msglen)
		snprintf(msg, msglen, "%.300s: %.200s",
			 len > 300 ? path + len - 300 : path, what);
}

/* ---- paths ---------------------------------------------------------------- */

/* A name's path component (vigie/name.h): its escaped form, or a readable
 * prefix and a hash when that is too long for the file system, so every
 * valid name is storable. */
static int escape_component(const char *name, char *out, size_t outlen)
{
	int n = vg_name_component(name, out, outlen);

	if (n < 0)
		return n;
	if (n > COMPONENT_MAX)
		return -ENAMETOOLONG;
	return 0;
}

static int files_locate(struct vg_rrd_backend *be, int rtype, const char *id,
			const char *metric, struct vg_rrd_loc *loc)
{
	struct files *f = (struct files *)be;
	const char *tname = vg_rtype_name(rtype);
	char eid[ESC_MAX], em[ESC_MAX];
	int rc;

	loc->owner = 0;
	loc->address = NULL;
	loc->recorded = NULL;
	loc->arrived_ms = INT64_MIN;
	loc->flush_first = 0;
	loc->path[0] = '\0';
	if (!tname)
		return -EINVAL;
	if ((rc = escape_component(id, eid, sizeof(eid))) ||
	    (rc = escape_component(metric, em, sizeof(em))))
		return rc;
	if ((size_t)snprintf(loc->path, sizeof(loc->path), "%s/%s/%s/%s.rrd",
			     f->rrd_dir, tname, eid, em) >= sizeof(loc->path))
		return -ENAMETOOLONG;
	return 0;
}

/* ---- devices -------------------------------------------------------------- */

/* Record the device of DIR as the one of slot i (0: rrd_dir, else the
 * type i's directory) if none is recorded yet. */
static void dev_note(struct files *f, int i, const char *dir)
{
	struct stat st;

	if (__atomic_load_n(&f->dev_seen, __ATOMIC_ACQUIRE) & (1u << i) || stat(dir, &st))
		return;
	__atomic_store_n(&f->dev[i], (uint64_t)st.st_dev, __ATOMIC_RELAXED);
	__atomic_fetch_or(&f->dev_seen, 1u << i, __ATOMIC_RELEASE);
}

/* The type slot of PATH's type directory (<rrd_dir>/<type>/...), 0 if none. */
static int dev_slot(const struct files *f, const char *path)
{
	size_t rl = strlen(f->rrd_dir);

	if (strncmp(path, f->rrd_dir, rl) || path[rl] != '/')
		return 0;
	for (int t = 1; t <= VG_RT_MAX; t++) {
		const char *name = vg_rtype_name(t);
		size_t n = name ? strlen(name) : 0;
		if (n && !strncmp(path + rl + 1, name, n) && path[rl + 1 + n] == '/')
			return t;
	}
	return 0;
}

/* ---- create ----------------------------------------------------------------- */

static int file_gone(const char *path);
static int dir_gone(const struct files *f, const char *path);
static int dev_moved(struct files *f, const char *path);

static int is_nospace(int err, const char *msg)
{
	return err == ENOSPC || err == EDQUOT ||
	       (msg && (strstr(msg, "No space left") || strstr(msg, "quota exceeded")));
}

/* Whether a call failed for want of a file descriptor or memory
 * (vg_fs_short_of_fds), from its errno or librrd's message (librrd keeps
 * only strerror's text): a shortage that passes, never a file's fault. */
static int is_scarce(int err, const char *msg)
{
	return vg_fs_short_of_fds(err) ||
	       (msg && (strstr(msg, "Too many open files") ||
			strstr(msg, "Cannot allocate memory")));
}

/* Whether this process cannot open two descriptors now (librrd 1.7
 * loses the errno of a create that failed for want of one: "Cannot create
 * temporary file"). */
static int fds_short_now(void)
{
	int a = open("/dev/null", O_RDONLY | O_CLOEXEC), b, e;

	if (a < 0)
		return is_scarce(errno, NULL);
	b = open("/dev/null", O_RDONLY | O_CLOEXEC);
	e = errno;
	close(a);
	if (b < 0)
		return is_scarce(e, NULL);
	close(b);
	return 0;
}

/* Size of a new file: 3 consolidation functions per tier, 8 bytes a row,
 * plus a generous header. */
static uint64_t file_bytes(const struct vg_rrd_layout *lay)
{
	uint64_t rows = 0;

	for (size_t i = 0; i < lay->narchives; i++)
		rows += lay->archives[i].retention_s / lay->archives[i].resolution_s;
	return 3 * rows * sizeof(double) + 4096;
}

/* The DS and RRA arguments of a layout for rrd_create_r2. Returns argc. */
static int layout_args(int kind, const struct vg_rrd_layout *lay, char ds[64],
		       char rra[3 * VG_MAX_ARCHIVES][64],
		       const char *argv[1 + 3 * VG_MAX_ARCHIVES])
{
	static const char *cfs[] = {"AVERAGE", "MIN", "MAX"};
	int argc = 0;

	snprintf(ds, 64, "DS:value:%s:%u:%s:U",
		 kind == VG_KIND_COUNTER ? "DDERIVE" : "GAUGE", lay->heartbeat_s,
		 kind == VG_KIND_COUNTER ? "0" : "U");
	argv[argc++] = ds;
	for (size_t i = 0; i < lay->narchives; i++) {
		uint32_t pdp = lay->archives[i].resolution_s / lay->step_s;
		uint32_t rows = lay->archives[i].retention_s / lay->archives[i].resolution_s;
		for (int c = 0; c < 3; c++) {
			snprintf(rra[argc - 1], 64, "RRA:%s:0.5:%u:%u",
				 cfs[c], pdp, rows ? rows : 1);
			argv[argc] = rra[argc - 1];
			argc++;
		}
	}
	return argc;
}

static int files_create(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc,
			int kind, int64_t t_ms, const struct vg_rrd_layout *lay,
			char *msg, size_t msglen, int flags)
{
	struct files *f = (struct files *)be;
	const char *path = loc->path;

	char tmp[PATH_MAX], ds[64], rra[3 * VG_MAX_ARCHIVES][64];
	const char *argv[1 + 3 * VG_MAX_ARCHIVES];
	int argc = 0, rc, e;
	char *slash;

	if (lay->narchives > VG_MAX_ARCHIVES || !lay->step_s)
		return -EINVAL;
	if ((flags & VG_RRD_KNOWN) && file_gone(path) && (dir_gone(f, path) || dev_moved(f, path))) {
		/* not a new series: out of reach, not deleted (backend.h) */
		note(msg, msglen, path, "its type directory is missing");
		return -ENOTDIR;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	if (!(slash = strrchr(tmp, '/')))
		return -EINVAL;
	*slash = '\0';
	if ((rc = vg_fs_mkdir_p(tmp, 0755))) {
		note(msg, msglen, tmp, strerror(-rc));
		return is_nospace(-rc, NULL) || is_scarce(-rc, NULL) ? -EAGAIN : -EIO;
	}
	if ((slash = strrchr(tmp, '/')) && dev_slot(f, path)) {
		*slash = '\0'; /* its type directory, if made now: its device */
		dev_note(f, dev_slot(f, path), tmp);
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;

	argc = layout_args(kind, lay, ds, rra, argv);
	unlink(tmp); /* leftover of a crash mid-create */
	rrd_clear_error();
	errno = 0;
	/* last_up one second before the first sample, so it is accepted. */
	rc = rrd_create_r2(tmp, lay->step_s, (time_t)(t_ms / 1000) - 1, 0, NULL,
			   NULL, argc, argv);
	e = errno;
	if (rc) {
		/* librrd 1.7 loses the errno of a failed write (it unlinks
		 * its temporary file and reports nothing): ask the file system
		 * whether the file could have fitted. */
		int full = is_nospace(e, rrd_get_error()) || is_scarce(e, rrd_get_error()) ||
			   fds_short_now() ||
			   vg_fs_short_of(tmp, file_bytes(lay) + (64u << 10));
		note(msg, msglen, path, *rrd_get_error() ? rrd_get_error() : "librrd could not create the file");
		rrd_clear_error();
		unlink(tmp);
		return full ? -EAGAIN : -EIO;
	}
	/* librrd makes its files 0644 whatever the umask; the collector's
	 * are its user's and its group's only (perms_test). */
	(void)chmod(tmp, 0640);
	if (rename(tmp, path)) {
		e = errno;
		note(msg, msglen, path, strerror(e));
		unlink(tmp);
		return is_nospace(e, NULL) ? -EAGAIN : -EIO;
	}
	count(&f->stats.files_created, 1);
	return 0;
}

/* ---- last update ------------------------------------------------------------------- */

static int files_last_ms(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc,
			 int64_t *out, int flags)
{
	(void)be;
	(void)flags;
	return vg_rrd_file_last_ms(loc->path, out);
}

/* ---- formatting for librrd ------------------------------------------------------------ */

/* "seconds.millis:value" (collector/rrd_format.h: no printf for the
 * common values). */
#define ARG_LEN (2 * VG_RRD_FMT_LEN)
static void format_arg(char *out, int64_t t_ms, double v)
{
	char *p = vg_rrd_fmt_time_ms(out, t_ms);

	*p++ = ':';
	vg_rrd_fmt_value(p, v);
}

/* ---- header undo (see the top) ------------------------------------------------------------- */

/* A slot: this header, then the path, then the RRD header. */
struct undo_rec {
	uint32_t magic; /* UNDO_MAGIC while set, 0 when clear */
	uint32_t hlen;  /* header bytes */
	uint32_t plen;  /* path bytes (relative to rrd_dir) */
	uint32_t pad;
	uint64_t sum; /* vg_checksum64 of path and header */
};

/* Length of the header of an RRD file (everything before the rows) from
 * its first n bytes (at least a stat_head), or 0 if the layout is not one
 * we know. May be more than n: the caller reads the rest. */
static size_t rrd_header_len(const unsigned char *buf, size_t n, size_t *defs)
{
	stat_head_t sh;
	size_t off, len;

	if (n < sizeof(sh))
		return 0;
	memcpy(&sh, buf, sizeof(sh));
	if (memcmp(sh.cookie, RRD_COOKIE, 4) || sh.float_cookie != FLOAT_COOKIE ||
	    strncmp(sh.version, RRD_VERSION3, 4) < 0 || sh.ds_cnt == 0 ||
	    sh.ds_cnt > 64 || sh.rra_cnt == 0 || sh.rra_cnt > 256)
		return 0;
	off = sizeof(stat_head_t) + sh.ds_cnt * sizeof(ds_def_t) +
	      sh.rra_cnt * sizeof(rra_def_t);
	len = off + sizeof(live_head_t) + sh.ds_cnt * sizeof(pdp_prep_t) +
	      sh.rra_cnt * sh.ds_cnt * sizeof(cdp_prep_t) +
	      sh.rra_cnt * sizeof(rra_ptr_t);
	if (defs)
		*defs = off;
	return len;
}

/* A free slot (waits for one), or -1 without an undo file. */
static int undo_take(struct files *f)
{
	int slot = -1;

	if (f->undo_fd < 0)
		return -1;
	pthread_mutex_lock(&f->mu);
	while (f->undo_busy == (1u << UNDO_SLOTS) - 1)
		pthread_cond_wait(&f->free_cv, &f->mu);
	for (slot = 0; f->undo_busy & (1u << slot); slot++)
		;
	f->undo_busy |= 1u << slot;
	pthread_mutex_unlock(&f->mu);
	return slot;
}

static void undo_give(struct files *f, int slot)
{
	if (slot < 0)
		return;
	pthread_mutex_lock(&f->mu);
	f->undo_busy &= ~(1u << slot);
	pthread_cond_broadcast(&f->free_cv);
	pthread_mutex_unlock(&f->mu);
}

/* Copy path's header into the slot. 0, or -errno: then the update runs
 * unprotected (as without an undo file). */
static int undo_save(struct files *f, int slot, const char *path, uint8_t *rec)
{
	size_t rl = strlen(f->rrd_dir), plen, hlen;
	struct undo_rec h = {0};
	const char *rel = path + rl + 1;
	ssize_t n;
	int fd;

	if (strncmp(path, f->rrd_dir, rl) || path[rl] != '/')
		return -EINVAL;
	plen = strlen(rel);
	if (sizeof(h) + plen >= UNDO_SLOT_BYTES / 2)
		return -ENAMETOOLONG;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	/* 4 KiB holds the header of the default layout (2.2 KiB) */
	n = pread(fd, rec + sizeof(h) + plen, 4096, 0);
	hlen = n > 0 ? rrd_header_len(rec + sizeof(h) + plen, (size_t)n, NULL) : 0;
	if (hlen > (size_t)n && hlen <= UNDO_SLOT_BYTES / 4 &&
	    pread(fd, rec + sizeof(h) + plen + n, hlen - (size_t)n, n) !=
		    (ssize_t)(hlen - (size_t)n))
		hlen = 0;
	close(fd);
	if (!hlen || hlen > UNDO_SLOT_BYTES / 4)
		return -EIO;
	memcpy(rec + sizeof(h), rel, plen);
	h.magic = UNDO_MAGIC;
	h.hlen = (uint32_t)hlen;
	h.plen = (uint32_t)plen;
	h.sum = vg_checksum64(rec + sizeof(h), plen + hlen);
	memcpy(rec, &h, sizeof(h));
	n = pwrite(f->undo_fd, rec, sizeof(h) + plen + hlen,
		   (off_t)slot * UNDO_SLOT_BYTES);
	return n == (ssize_t)(sizeof(h) + plen + hlen) ? 0 : -EIO;
}

static void undo_clear(struct files *f, int slot)
{
	uint32_t zero = 0;

	/* If this fails, the next open restores a header whose update the
	 * journal still holds and redoes: harmless. */
	if (pwrite(f->undo_fd, &zero, sizeof(zero), (off_t)slot * UNDO_SLOT_BYTES) < 0)
		return;
}

/* At open: write back every header whose update may not have finished,
 * and clear the slots. Returns how many. */
static int undo_restore(struct files *f)
{
	uint8_t *rec = malloc(UNDO_SLOT_BYTES), cur[UNDO_SLOT_BYTES / 4];
	int restored = 0;

	if (!rec)
		return 0;
	for (int slot = 0; slot < UNDO_SLOTS; slot++) {
		struct undo_rec h;
		char path[PATH_MAX];
		size_t defs = 0, hlen;
		ssize_t n = pread(f->undo_fd, rec, UNDO_SLOT_BYTES,
				  (off_t)slot * UNDO_SLOT_BYTES);
		int fd;

		if (n < (ssize_t)sizeof(h))
			continue;
		memcpy(&h, rec, sizeof(h));
		if (h.magic != UNDO_MAGIC)
			continue;
		/* Cleared after the restore: a kill in between restores the
		 * same header again at the next start, harmlessly. */
		if (h.plen > (size_t)n - sizeof(h) ||
		    h.hlen > (size_t)n - sizeof(h) - h.plen || h.hlen > sizeof(cur) ||
		    vg_checksum64(rec + sizeof(h), h.plen + h.hlen) != h.sum) {
			undo_clear(f, slot); /* torn while saving: librrd had not started */
			continue;
		}
		hlen = h.hlen >= sizeof(stat_head_t)
			       ? rrd_header_len(rec + sizeof(h) + h.plen, h.hlen, &defs)
			       : 0;
		if (!hlen || hlen != h.hlen ||
		    (size_t)snprintf(path, sizeof(path), "%s/%.*s", f->rrd_dir,
				     (int)h.plen, (const char *)rec + sizeof(h)) >=
			    sizeof(path) ||
		    memchr(rec + sizeof(h), '\0', h.plen)) {
			undo_clear(f, slot);
			continue;
		}
		if ((fd = open(path, O_RDWR | O_CLOEXEC)) >= 0) { /* or gone since */
			/* The same file (definitions never change on update)? */
			if (pread(fd, cur, hlen, 0) == (ssize_t)hlen &&
			    !memcmp(cur, rec + sizeof(h) + h.plen, defs) &&
			    pwrite(fd, rec + sizeof(h) + h.plen, hlen, 0) == (ssize_t)hlen)
				restored++;
			close(fd);
		}
		undo_clear(f, slot);
	}
	free(rec);
	return restored;
}

/* ---- update ---------------------------------------------------------------------------- */

/* Why librrd refused a call, from its message. */
static int refusal_reason(const char *msg)
{
	static const char *const file_words[] = {
		"opening", "open ", "lock", "mmap", "read", "header", "EOF",
		"not an RRD", "cookie", "version", "No such file",
		"Permission denied", "another architecture"};

	if (!msg || !*msg)
		return VG_STORE_ERR_OTHER;
	if (strstr(msg, "illegal attempt to update using time"))
		return VG_STORE_ERR_TIME;
	for (size_t i = 0; i < sizeof(file_words) / sizeof(file_words[0]); i++)
		if (strstr(msg, file_words[i]))
			return VG_STORE_ERR_FILE;
	return VG_STORE_ERR_OTHER;
}

/* One rrd_update_r call with v[0..k) (k <= MAX_ARGS), the file's header
 * saved in the undo slot around it (slot < 0: unprotected). 0, or -1 with
 * librrd's message in msg. */
static int update_call(struct files *f, const char *path, const struct vg_rrd_value *v,
		       size_t k, int slot, uint8_t *rec, char *msg, size_t msglen)
{
	char args[MAX_ARGS][ARG_LEN];
	const char *argv[MAX_ARGS];
	int64_t t0;
	int rc, saved;

	for (size_t j = 0; j < k; j++) {
		format_arg(args[j], v[j].t_ms, v[j].v);
		argv[j] = args[j];
	}
	t0 = vg_monotonic_ns();
	saved = slot >= 0 && !undo_save(f, slot, path, rec);
	rrd_clear_error();
	rc = rrd_update_r(path, NULL, (int)k, argv);
	if (saved) {
		if (vg_store_test_after_update)
			vg_store_test_after_update(path);
		undo_clear(f, slot);
	}
	count(&f->stats.write_ns_total, (uint64_t)(vg_monotonic_ns() - t0));
	count(&f->stats.calls, 1);
	if (rc) {
		snprintf(msg, msglen, "%s", *rrd_get_error() ? rrd_get_error() : "librrd refused the update");
		rrd_clear_error();
		return -1;
	}
	return 0;
}

/* librrd refused the call with v[0..k): no value may go down with another.
 * Values at or before the file's last update are in the file already
 * (a replay or a re-send of what was written before a kill; librrd also
 * keeps the values of a refused call that came before the refused one):
 * skipped, counted as duplicates. The rest is tried in one call, and if
 * that is refused too, one value per call. */
static int write_refused(struct files *f, const char *path,
			 const struct vg_rrd_value *v, size_t k, int slot,
			 uint8_t *rec, const char *first_msg, struct vg_rrd_result *res)
{
	char msg[512];
	size_t skip = 0;
	int64_t last;

	res->retries++;
	snprintf(msg, sizeof(msg), "%s", first_msg);
	for (int pass = 0; pass < 2 && k; pass++) {
		/* A file we cannot read: librrd will say why, value by value. */
		if (vg_rrd_file_last_ms(path, &last))
			last = INT64_MIN;
		for (skip = 0; skip < k && v[skip].t_ms <= last; skip++)
			;
		res->duplicate += skip;
		v += skip;
		k -= skip;
		if (!k)
			return 0;
		if (pass == 0 && !update_call(f, path, v, k, slot, rec, msg, sizeof(msg))) {
			res->written += k;
			return 0;
		}
	}
	for (size_t j = 0; j < k; j++) {
		if (!update_call(f, path, &v[j], 1, slot, rec, msg, sizeof(msg))) {
			res->written++;
			continue;
		}
		if (is_scarce(0, msg)) { /* this one and the rest wait */
			res->unavailable += k - j;
			note(res->msg, sizeof(res->msg), path, msg);
			return 1;
		}
		res->failed_by[refusal_reason(msg)]++;
		res->failed++;
		note(res->msg, sizeof(res->msg), path, msg);
	}
	return 0;
}

/* Whether PATH is not there (ENOENT: the file, or a directory above it,
 * deleted). Any other error is librrd's to report. */
static int file_gone(const char *path)
{
	struct stat st;

	return stat(path, &st) && errno == ENOENT;
}

/* Whether PATH (a file that is gone) is out of reach rather than deleted:
 * its type directory (<rrd_dir>/<type>) or one above it is missing
 * (ENOENT, ENOTDIR): a data volume not mounted, a type directory renamed
 * away. The series' own directory missing while its type directory is
 * there is an operator's deletion (rm -r of one resource): not gone, the
 * file is created again, so that one deleted resource cannot hold every
 * series' values back (the cache bound is the store's). */
static int dir_gone(const struct files *f, const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t rl = strlen(f->rrd_dir);
	char dir[PATH_MAX];
	struct stat st;

	if (!slash || slash == path)
		return 0;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (!stat(dir, &st) || (errno != ENOENT && errno != ENOTDIR))
		return 0;
	/* the series' directory is missing: is its type directory there? */
	if (!(slash = strrchr(dir, '/')) || (size_t)(slash - dir) <= rl ||
	    strncmp(dir, f->rrd_dir, rl) || dir[rl] != '/')
		return 1; /* not below a type directory: out of reach */
	*(char *)slash = '\0';
	return stat(dir, &st) && (errno == ENOENT || errno == ENOTDIR);
}

/* Whether the directory of PATH (a file that is gone, its type directory
 * there) is not the store's: another file system mounted over rrd_dir,
 * its type directory or the series' own directory (a volume replaced
 * rather than removed: a tmpfs, an NFS remount, the empty mount point an
 * `umount -l` leaves). rrd_dir and the type directory must be on the
 * device they were first seen on, the series' directory (when there) on
 * its type directory's (the layout has no mount point below a type
 * directory). */
static int dev_moved(struct files *f, const char *path)
{
	char dir[PATH_MAX], type[PATH_MAX];
	struct stat st, up;
	uint32_t seen = __atomic_load_n(&f->dev_seen, __ATOMIC_ACQUIRE);
	int t = dev_slot(f, path);
	char *slash;

	if ((seen & 1) && !stat(f->rrd_dir, &st) &&
	    (uint64_t)st.st_dev != __atomic_load_n(&f->dev[0], __ATOMIC_RELAXED))
		return 1;
	if (!t || (size_t)snprintf(dir, sizeof(dir), "%s", path) >= sizeof(dir) ||
	    !(slash = strrchr(dir, '/')))
		return 0;
	*slash = '\0'; /* the series' directory */
	snprintf(type, sizeof(type), "%s", dir);
	if (!(slash = strrchr(type, '/')))
		return 0;
	*slash = '\0'; /* its type directory */
	if (stat(type, &up))
		return 0;
	if ((seen & (1u << t)) &&
	    (uint64_t)up.st_dev != __atomic_load_n(&f->dev[t], __ATOMIC_RELAXED))
		return 1;
	return !stat(dir, &st) && st.st_dev != up.st_dev;
}

static void files_update(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc,
			 const struct vg_rrd_value *v, size_t n,
			 struct vg_rrd_result *res)
{
	struct files *f = (struct files *)be;
	char msg[512];
	uint8_t *rec = NULL;
	int slot;

	if ((slot = undo_take(f)) >= 0 && !(rec = malloc(UNDO_SLOT_BYTES))) {
		undo_give(f, slot);
		slot = -1;
	}
	for (size_t i = 0; i < n;) {
		size_t k = n - i < MAX_ARGS ? n - i : MAX_ARGS;

		if (!update_call(f, loc->path, v + i, k, slot, rec, msg, sizeof(msg))) {
			res->written += k;
		} else if (is_scarce(0, msg)) {
			/* no file descriptor (or memory) to open or map the
			 * file: librrd wrote nothing of the call (it opens
			 * the file first); the values wait in the cache and
			 * the journal and are tried again (backend.h), never
			 * a file's error that would keep their segment */
			res->unavailable += n - i;
			note(res->msg, sizeof(res->msg), loc->path, msg);
			break;
		} else if (file_gone(loc->path) && (dir_gone(f, loc->path) || dev_moved(f, loc->path))) {
			/* its type directory is out of reach, or another
			 * file system stands in its place (librrd wrote nothing:
			 * it opens the file first): the values wait for it
			 * (backend.h) */
			res->unavailable += n - i;
			res->dir_missing += n - i;
			break;
		} else if (file_gone(loc->path)) {
			/* deleted while the store runs: librrd wrote
			 * nothing of the call (it opens the file first);
			 * the store creates it again (backend.h) */
			res->missing += n - i;
			break;
		} else if (write_refused(f, loc->path, v + i, k, slot, rec, msg, res)) {
			res->unavailable += n - i - k; /* the calls after it wait too */
			break;
		}
		i += k;
	}
	undo_give(f, slot);
	free(rec);
}

/* ---- reading ------------------------------------------------------------------------------ */

static const char *const cfnames[] = {"AVERAGE", "MIN", "MAX"};

/* files_info from the file's header, read in one pread: what rrd_info_r
 * gives, without its second open of the file, its list of a hundred
 * allocated fields and the sscanf of each name (most of a query's time
 * over many series went there). 1 when the layout is not one we know (the
 * caller asks librrd), else 0 or -errno. */
static int info_from_header(const char *path, int cf, struct vg_rrd_info *d)
{
	unsigned char buf[16384];
	long cf_of[32], pdp[32], rows[32];
	stat_head_t sh;
	live_head_t lh;
	ssize_t n;
	size_t off, nrra;
	int fd = open(path, O_RDONLY | O_CLOEXEC), value = -1;

	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -EIO;
	n = pread(fd, buf, sizeof(buf), 0);
	close(fd);
	if (n < (ssize_t)sizeof(sh))
		return 1;
	memcpy(&sh, buf, sizeof(sh));
	off = sizeof(stat_head_t) + sh.ds_cnt * sizeof(ds_def_t) +
	      sh.rra_cnt * sizeof(rra_def_t);
	if (memcmp(sh.cookie, RRD_COOKIE, 4) || sh.float_cookie != FLOAT_COOKIE ||
	    strncmp(sh.version, RRD_VERSION3, 4) < 0 || sh.ds_cnt == 0 ||
	    sh.ds_cnt > 64 || sh.rra_cnt == 0 || sh.rra_cnt > 256 ||
	    off + sizeof(lh) > (size_t)n)
		return 1;
	for (size_t k = 0; k < sh.ds_cnt; k++) {
		ds_def_t ds;
		memcpy(&ds, buf + sizeof(sh) + k * sizeof(ds), sizeof(ds));
		if (!strncmp(ds.ds_nam, "value", sizeof(ds.ds_nam)))
			value = strncmp(ds.dst, "GAUGE", sizeof(ds.dst)) ? VG_KIND_COUNTER
									 : VG_KIND_GAUGE;
	}
	memcpy(&lh, buf + off, sizeof(lh));
	d->step = sh.pdp_step;
	d->last_update = lh.last_up;
	d->kind = value < 0 ? 0 : value;
	nrra = sh.rra_cnt < 32 ? sh.rra_cnt : 32;
	for (size_t k = 0; k < nrra; k++) {
		rra_def_t ra;
		memcpy(&ra, buf + sizeof(sh) + sh.ds_cnt * sizeof(ds_def_t) + k * sizeof(ra),
		       sizeof(ra));
		cf_of[k] = !strncmp(ra.cf_nam, cfnames[cf], sizeof(ra.cf_nam));
		pdp[k] = (long)ra.pdp_cnt;
		rows[k] = (long)ra.row_cnt;
	}
	return vg_rrd_info_archives(d, nrra, cf_of, pdp, rows);
}

static int files_info(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc,
		      int cf, struct vg_rrd_info *d)
{
	rrd_info_t *info, *i;
	long cf_of[32], pdp[32], rows[32];
	size_t maxidx = 0;
	struct stat st;
	int rc;

	(void)be;
	memset(d, 0, sizeof(*d));
	if (cf < VG_CF_AVERAGE || cf > VG_CF_MAX)
		return -EINVAL;
	if ((rc = info_from_header(loc->path, cf, d)) <= 0)
		return rc;
	memset(d, 0, sizeof(*d));
	if (stat(loc->path, &st))
		return errno == ENOENT ? -ENOENT : -EIO;
	for (int k = 0; k < 32; k++)
		cf_of[k] = pdp[k] = rows[k] = -1;
	info = rrd_info_r(loc->path);
	if (!info) {
		rrd_clear_error();
		return -EIO;
	}
	for (i = info; i; i = i->next) {
		unsigned idx;
		char field[32];

		if (!strcmp(i->key, "step") && i->type == RD_I_CNT)
			d->step = i->value.u_cnt;
		else if (!strcmp(i->key, "last_update") && i->type == RD_I_CNT)
			d->last_update = (time_t)i->value.u_cnt;
		else if (!strcmp(i->key, "ds[value].type") && i->type == RD_I_STR)
			d->kind = !strcmp(i->value.u_str, "GAUGE") ? VG_KIND_GAUGE : VG_KIND_COUNTER;
		else if (sscanf(i->key, "rra[%u].%31s", &idx, field) == 2 && idx < 32) {
			if (!strcmp(field, "cf") && i->type == RD_I_STR)
				cf_of[idx] = !strcmp(i->value.u_str, cfnames[cf]);
			else if (!strcmp(field, "pdp_per_row") && i->type == RD_I_CNT)
				pdp[idx] = (long)i->value.u_cnt;
			else if (!strcmp(field, "rows") && i->type == RD_I_CNT)
				rows[idx] = (long)i->value.u_cnt;
			if (idx + 1 > maxidx)
				maxidx = idx + 1;
		}
	}
	rrd_info_free(info);
	return vg_rrd_info_archives(d, maxidx, cf_of, pdp, rows);
}

static int files_fetch(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc,
		       int cf, time_t start, time_t end, unsigned long step_s,
		       struct vg_rrd_rows *out)
{
	unsigned long step = step_s, ds_cnt = 0;
	char **ds_namv = NULL;
	rrd_value_t *data = NULL;
	int rc = 0;

	(void)be;
	memset(out, 0, sizeof(*out));
	if (cf < VG_CF_AVERAGE || cf > VG_CF_MAX)
		return -EINVAL;
	rrd_clear_error();
	if (rrd_fetch_r(loc->path, cfnames[cf], &start, &end, &step, &ds_cnt,
			&ds_namv, &data)) {
		rrd_clear_error();
		return -EIO;
	}
	if (ds_cnt != 1 || step != step_s) {
		rc = -EIO;
		free(data);
	} else {
		out->start = start;
		out->end = end;
		out->step = step;
		out->n = (size_t)((end - start) / (time_t)step);
		out->v = data;
	}
	for (unsigned long k = 0; ds_namv && k < ds_cnt; k++)
		free(ds_namv[k]);
	free(ds_namv);
	return rc;
}

/* ---- conversion (storage convert) ----------------------------------------------- */

/* The librrd code is shared with the rrdcached backend (collector/rrd_file.c):
 * what a killed run left beside the file first (the file itself holds
 * every value: see vg_rrd_file_convert_safe), then the conversion under
 * a side name renamed over the file. */
static int files_convert(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc,
			 const struct vg_rrd_layout *lay, char *msg, size_t msglen)
{
	char left[512];
	int n, rc;

	(void)be;
	if ((n = vg_rrd_file_conv_cleanup(loc->path, left, sizeof(left))) == -EEXIST) {
		snprintf(msg, msglen, "%s", left);
		return -EIO;
	}
	if (lay && (rc = vg_rrd_file_convert_safe(loc->path, lay, NULL, NULL, msg, msglen)))
		return rc;
	if (n > 0)
		snprintf(msg, msglen, "leftovers of a conversion killed before its end: %s", left);
	return 0;
}

/* ---- usage (storage stats, the lifecycle thread) ------------------------------------ */

/* nftw has no context argument: one walk at a time. */
static pthread_mutex_t walk_mu = PTHREAD_MUTEX_INITIALIZER;
static struct vg_store_holder *walk_h;
static int64_t walk_since_s;

static int walk_one(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	struct statx sx;
	size_t len = strlen(path);

	(void)f;
	if (flag != FTW_F || len < 4 || strcmp(path + len - 4, ".rrd"))
		return 0;
	walk_h->series++;
	walk_h->bytes += (uint64_t)sb->st_blocks * 512;
	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BTIME, &sx) ||
	    !(sx.stx_mask & STATX_BTIME))
		walk_h->no_birth++;
	else if (sx.stx_btime.tv_sec >= walk_since_s)
		walk_h->bytes_recent += (uint64_t)sb->st_blocks * 512;
	return 0;
}

static int files_usage(struct vg_rrd_backend *be, int64_t since_s,
		       struct vg_store_usage *out)
{
	struct files *f = (struct files *)be;
	struct vg_store_holder *h = &out->h[0];
	struct statvfs v;
	int rc;

	memset(out, 0, sizeof(*out));
	out->n = 1;
	{ /* the tail names it best when too long */
		size_t len = strlen(f->rrd_dir);
		const char *w = len >= sizeof(h->where) ? f->rrd_dir + len - 255 : f->rrd_dir;
		memcpy(h->where, w, strlen(w) + 1);
	}
	h->bytes_free = statvfs(f->rrd_dir, &v) ? UINT64_MAX
						: (uint64_t)v.f_bavail * v.f_frsize;
	pthread_mutex_lock(&walk_mu);
	walk_h = h;
	walk_since_s = since_s;
	rc = nftw(f->rrd_dir, walk_one, 16, FTW_PHYS) ? -EIO : 0;
	pthread_mutex_unlock(&walk_mu);
	return rc;
}

/* ---- the rest --------------------------------------------------------------------------- */

static int files_remove(struct vg_rrd_backend *be, const struct vg_rrd_loc *loc)
{
	(void)be;
	if (unlink(loc->path))
		return errno == ENOENT ? -ENOENT : -EIO;
	return 0;
}

/* The files live in the page cache once librrd returned: syncfs makes
 * them durable (the file system of rrd_dir, which holds the journal too in
 * the usual layout). */
static int files_sync(struct vg_rrd_backend *be)
{
	struct files *f = (struct files *)be;

	return syncfs(f->dir_fd) ? -errno : 0;
}

static void files_get_stats(struct vg_rrd_backend *be, struct vg_rrd_backend_stats *out)
{
	struct files *f = (struct files *)be;

	out->files_created = __atomic_load_n(&f->stats.files_created, __ATOMIC_RELAXED);
	out->calls = __atomic_load_n(&f->stats.calls, __ATOMIC_RELAXED);
	out->write_ns_total = __atomic_load_n(&f->stats.write_ns_total, __ATOMIC_RELAXED);
	out->headers_restored = __atomic_load_n(&f->stats.headers_restored, __ATOMIC_RELAXED);
}

static void files_close(struct vg_rrd_backend *be)
{
	struct files *f = (struct files *)be;

	if (!f)
		return;
	if (f->undo_fd >= 0) {
		/* Every update finished: a clean close leaves no undo file. */
		unlink(f->undo_path);
		close(f->undo_fd);
	}
	if (f->dir_fd >= 0)
		close(f->dir_fd);
	pthread_cond_destroy(&f->free_cv);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

static const struct vg_rrd_backend_ops files_ops = {
	.name = "files",
	.locate = files_locate,
	.last_ms = files_last_ms,
	.create = files_create,
	.update = files_update,
	.update_many = NULL,
	.info = files_info,
	.fetch = files_fetch,
	.convert = files_convert,
	.usage = files_usage,
	.remove = files_remove,
	.sync = files_sync,
	.get_stats = files_get_stats,
	.close = files_close,
};

int vg_rrd_files_open(const char *rrd_dir, const char *undo_path,
		      struct vg_rrd_backend **out, char *err, size_t errlen)
{
	struct files *f;
	int rc;

	*out = NULL;
	if (!(f = calloc(1, sizeof(*f)))) {
		snprintf(err, errlen, "store: out of memory");
		return -ENOMEM;
	}
	f->be.ops = &files_ops;
	f->dir_fd = f->undo_fd = -1;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->free_cv, NULL);
	if ((size_t)snprintf(f->rrd_dir, sizeof(f->rrd_dir), "%s", rrd_dir) >=
		    sizeof(f->rrd_dir) - 2 * NAME_MAX - 64 ||
	    (undo_path && (size_t)snprintf(f->undo_path, sizeof(f->undo_path), "%s",
					   undo_path) >= sizeof(f->undo_path))) {
		snprintf(err, errlen, "store: data directory path too long");
		files_close(&f->be);
		return -ENAMETOOLONG;
	}
	if ((rc = vg_fs_mkdir_p(f->rrd_dir, 0755))) {
		snprintf(err, errlen, "store: %s: %s", f->rrd_dir, strerror(-rc));
		files_close(&f->be);
		return rc;
	}
	dev_note(f, 0, f->rrd_dir);
	for (int t = 1; t <= VG_RT_MAX; t++) {
		char dir[PATH_MAX + NAME_MAX];
		if (vg_rtype_name(t)) {
			snprintf(dir, sizeof(dir), "%s/%s", f->rrd_dir, vg_rtype_name(t));
			dev_note(f, t, dir);
		}
	}
	if ((f->dir_fd = open(f->rrd_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		rc = -errno;
		snprintf(err, errlen, "store: %s: %s", f->rrd_dir, strerror(-rc));
		files_close(&f->be);
		return rc;
	}
	if (undo_path && (f->undo_fd = open(undo_path, O_RDWR | O_CREAT | O_CLOEXEC,
					    0600)) >= 0) {
		/* Blocks allocated now: saving a header never needs space (a
		 * full disk must not stop the flushes). */
		if (posix_fallocate(f->undo_fd, 0, (off_t)UNDO_SLOTS * UNDO_SLOT_BYTES) == 0) {
			count(&f->stats.headers_restored, (uint64_t)undo_restore(f));
		} else {
			close(f->undo_fd);
			f->undo_fd = -1;
		}
	}
	*out = &f->be;
	return 0;
}
