/*
 * store.c — the RRD store: one librrd file per (resource, metric), written
 * behind a journal (include/vigie/store.h; docs/architecture.md "Fast path").
 *
 * Design. librrd pays ~20 us per rrd_update_r call (open, lock, mmap, read
 * the header, munmap, close) and ~0.4 us per value in it, so the store
 * gives each call many timestamps of one series, as rrdcached does:
 *
 *   receiver thread                        storage thread (flusher)
 *   vg_store_write_batch(b)                loop: oldest dirty series with
 *     look up / create each series            >= FLUSH_MIN_DEPTH values, or
 *     skip duplicates (t <= last)             older than FLUSH_MAX_AGE_MS,
 *     journal append + fdatasync              or the cache over half full,
 *     append (t, v) to the series' cache      or the receiver idle:
 *     return 0  => the agent gets its ack     copy its values out, write
 *                                             them in one rrd_update_r
 *
 * The cache is bounded ([storage] cache_values, default CACHE_MAX_VALUES;
 * [storage] flush_depth sets the depth, default FLUSH_MIN_DEPTH; tests and
 * benchmarks set both small): a batch that would overflow it
 * gets -EAGAIN, so the receiver answers RETRY and the agents keep their
 * batches (backpressure), and nothing unacknowledged is journaled.
 * vg_store_fetch writes the series' cached values before reading the file.
 *
 * The journal is a directory of segments (<id>.vgj, rotated at
 * SEG_MAX_BYTES), each a sequence of records [u32 length][u32 version]
 * [u64 checksum][payload: the batch's accepted samples]. A segment is
 * deleted once no cached value from it is left (after a syncfs, so the RRD
 * pages that replaced it are on disk); when the cache is empty even the
 * active segment goes, so an idle store leaves only RRD files. On open,
 * segments left by a crash are replayed in order (a torn last record ends
 * the replay), written to the files and deleted. One store owns a journal:
 * flock on the journal directory; a second open gets a write-through store.
 *
 * Header undo (kill -9 inside librrd). librrd maps the file and updates
 * it in place, one timestamp at a time: the data sources' and archives'
 * scratch state (pdp_prep, cdp_prep), the archives' rows and row pointers
 * (rra_ptr), and last_up last. A process killed in between leaves a file
 * whose rows and pointers have moved while last_up has not; replaying the
 * journal then adds that timestamp's row a second time and every older
 * row reads one step early (and a consolidated archive's scratch holds
 * the value twice). So before each rrd_update_r the owner copies the
 * file's header (everything before the rows: a few KiB) into a slot of
 * <data_dir>/journal/undo and clears the slot once librrd returned. At
 * open, before the journal is replayed, a slot still set means an update
 * that may not have finished: its header is written back, which puts the
 * file exactly where it was before that update (the rows it may have
 * written are the oldest of their ring, overwritten by the replay with
 * the same values), and the replay redoes the update from the journal.
 * A slot is set only while its values' journal segment is alive
 * (segments go after the flush that emptied them). kill -9 keeps page
 * cache writes, so no fsync is needed for this; a power cut is the
 * journal's business (fdatasync) and the file system's.
 *
 * Invariants:
 *  - updates to one file are strictly increasing in time: a sample at or
 *    before the series' last accepted time is a duplicate, skipped and
 *    counted. The last time of a file is read from its header (librrd's
 *    live_head, in microseconds) and rounded to the nearest millisecond:
 *    librrd parses "...229" with strtod and truncates, keeping 228999 us,
 *    so truncating again would make a value already in the file (...229)
 *    look newer than the file (...228) after a restart.
 *  - a refused librrd call never takes other values with it: the fast
 *    path gives librrd up to MAX_ARGS values per call; when it refuses,
 *    the values at or before the file's last update are dropped as
 *    already stored, the rest is retried in one call and, if refused
 *    again, one value per call (write_refused). A value that still cannot
 *    be written is counted by reason and noted for the log, and the
 *    journal segments that may hold it are kept (renamed <id>.kept, not
 *    deleted, not replayed: the operator's copy of what the files lack).
 *  - a series is flushed by one thread at a time (flushing flag), and its
 *    values leave the cache in time order, so files see increasing times.
 *  - every path is built from vg_name_escape'd components, so no name from
 *    the wire leaves <data_dir>/rrd.
 *  - lock: one mutex (mu) guards the series table, every series' cache,
 *    the dirty list and the journal's segment counts. It is never held
 *    across librrd calls, file creation or fdatasync. Only the receiver
 *    thread inserts series, so it looks them up without the lock.
 *  - counters are updated with __atomic builtins: readable from any thread.
 */
#define RRD_EXPORT_DEPRECATED /* only for the header structs (live_head) */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <rrd.h>

#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/fsutil.h"
#include "vigie/hash.h"
#include "vigie/name.h"
#include "vigie/store.h"

/* Longest escaped component we accept: a file is created as
 * "<metric>.rrd.tmp" + librrd's own 6-character mkstemp suffix, and all of
 * it must fit in NAME_MAX. */
#define COMPONENT_MAX (NAME_MAX - 16)
#define ESC_MAX (3 * VG_NAME_MAX + 1)
_Static_assert(VG_NAME_COMPONENT_MAX <= COMPONENT_MAX,
	       "vg_name_component must fit the store's components");

/* Write-behind policy (figures in docs/benchmarks.md). */
#define FLUSH_MIN_DEPTH 64          /* default [storage] flush_depth */
#define FLUSH_MAX_AGE_MS 300000     /* oldest cached value waits at most */
#define IDLE_FLUSH_MS 1000          /* no batch for this long: write all */
#define CACHE_MAX_VALUES (8u << 20) /* default [storage] cache_values (128 MiB) */
#define MAX_ARGS 256                /* timestamps per librrd call */
#define SEG_MAX_BYTES (64u << 20)   /* journal segment rotation */
#define SEG_RING 64                 /* live segments tracked */
#define MAX_LIVE_SEGS 8             /* more: flush oldest first */
#define KEPT_MAX 16                 /* *.kept segments on disk at most: more
				     * are deleted (segments_kept_dropped) */
#define JOURNAL_VERSION 1
#define UNDO_SLOTS 16               /* concurrent rrd_update_r calls */
#define UNDO_SLOT_BYTES (64u << 10) /* one header + its path */
#define UNDO_MAGIC 0x64756776u      /* "vgud" */

struct pend {
	int64_t t_ms;
	double v;
};

struct series {
	uint64_t hash;
	char *id, *metric;     /* one allocation */
	uint8_t rtype, kind;
	int flushing;          /* a thread is writing its values (mu) */
	int in_dirty;          /* on the dirty list (mu) */
	int64_t last_ms;       /* newest value accepted (receiver; mu to write) */
	int64_t tent_ms;       /* receiver only: within the current batch */
	uint64_t gen;          /* receiver only: batch generation of tent_ms */
	struct pend *pend;     /* cached values, oldest first (mu) */
	uint32_t npend, cap;
	uint64_t seg;          /* journal segment of pend[0] (mu) */
	int64_t since_ms;      /* monotonic ms when pend[0] arrived (mu) */
	struct series *dprev, *dnext; /* dirty list, oldest first (mu) */
};

/* A table slot keeps the hash beside the pointer, so probing compares
 * hashes in the table itself and touches a series (another cache miss)
 * only on a match: the lookup was 6-8 % of the collector's CPU at 100,000
 * series. */
struct slot {
	uint64_t hash;
	struct series *se; /* NULL: empty */
};

struct vg_store {
	char rrd_dir[PATH_MAX];
	char journal_dir[PATH_MAX];
	uint32_t step_s;
	uint32_t heartbeat_s;
	struct vg_archive archives[VG_MAX_ARCHIVES];
	size_t narchives;

	pthread_mutex_t mu;
	pthread_cond_t work_cv;  /* flusher: something may be due */
	pthread_cond_t done_cv;  /* a flush completed */
	struct slot *tab;        /* open addressing; inserted by the receiver */
	size_t cap, used;
	struct series *dhead, *dtail;
	uint64_t cache_max;      /* [storage] cache_values */
	uint32_t flush_depth;    /* [storage] flush_depth */
	uint64_t pending;        /* values in all caches (mu) */
	uint64_t cache_bytes;    /* allocated for them (mu) */
	uint64_t gen;            /* receiver only */
	int64_t last_batch_ms;   /* monotonic ms of the last write_batch (mu) */

	/* journal */
	int owner;               /* holds the journal lock: write-behind on */
	int lock_fd;             /* the journal directory, flock'ed */
	int seg_fd;              /* active segment, -1 if none (receiver; mu) */
	uint64_t seg_active;     /* id of the active (or next) segment (mu) */
	uint64_t seg_oldest;     /* oldest segment not yet deleted (mu) */
	uint64_t seg_bytes;      /* size of the active segment */
	uint32_t segcnt[SEG_RING]; /* caches + flushes holding each segment */
	uint8_t segkeep[SEG_RING]; /* a value of it was not written: keep it
				    * as <id>.kept instead of deleting (mu) */
	uint32_t kept_on_disk;   /* *.kept files (found at open + kept since);
				  * the one thread retiring segments */
	int journal_busy;        /* the receiver is appending (mu) */
	int undo_fd;             /* journal/undo, -1 if none (owner only) */
	uint32_t undo_busy;      /* slots in use, a bit each (mu) */
	int reclaiming;          /* a thread is deleting segments (mu) */
	uint8_t *jbuf;           /* receiver only: record being built */
	size_t jcap;

	struct series **scratch; /* receiver only: series of each sample */
	size_t scap;

	pthread_t flusher;
	int running, stop;
	struct pend *fbuf;       /* flusher only */
	size_t fcap;

	struct vg_store_stats stats; /* __atomic */
	char last_error[512];        /* receiver thread only */
	char flush_error[512];       /* mu */
	int flush_error_new;         /* mu */
};

static void count(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static uint64_t key_hash(int rtype, uint64_t id_hash, const char *metric)
{
	uint64_t h = vg_fnv1a(id_hash ^ (uint64_t)rtype * 0x9e3779b97f4a7c15ull, metric);

	return h ^ (h >> 31);
}

/* ---- the series table --------------------------------------------------------
 * Inserted and grown by the receiver thread only, under mu; read by the
 * receiver without mu, by other threads with mu. */

static struct series *table_find(const struct vg_store *s, int rtype,
				 const char *id, const char *metric, uint64_t h)
{
	size_t mask = s->cap - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		const struct slot *sl = &s->tab[i];
		struct series *se = sl->se;
		if (!se)
			return NULL;
		if (sl->hash == h && se->rtype == rtype &&
		    !strcmp(se->metric, metric) && !strcmp(se->id, id))
			return se;
	}
}

/* Caller holds mu. */
static int table_insert(struct vg_store *s, struct series *se)
{
	if ((s->used + 1) * 10 > s->cap * 7) {
		size_t ncap = s->cap * 2;
		struct slot *nt = calloc(ncap, sizeof(*nt));
		if (!nt)
			return -ENOMEM;
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->tab[i].se)
				continue;
			size_t j = s->tab[i].hash & (ncap - 1);
			while (nt[j].se)
				j = (j + 1) & (ncap - 1);
			nt[j] = s->tab[i];
		}
		free(s->tab);
		s->tab = nt;
		s->cap = ncap;
	}
	size_t j = se->hash & (s->cap - 1);
	while (s->tab[j].se)
		j = (j + 1) & (s->cap - 1);
	s->tab[j] = (struct slot){se->hash, se};
	s->used++;
	return 0;
}

static struct series *series_new(int rtype, const char *id, const char *metric,
				 int kind, uint64_t h)
{
	size_t il = strlen(id), ml = strlen(metric);
	struct series *se = calloc(1, sizeof(*se) + il + ml + 2);

	if (!se)
		return NULL;
	se->id = (char *)(se + 1);
	se->metric = se->id + il + 1;
	memcpy(se->id, id, il + 1);
	memcpy(se->metric, metric, ml + 1);
	se->rtype = (uint8_t)rtype;
	se->kind = (uint8_t)kind;
	se->hash = h;
	se->last_ms = INT64_MIN;
	return se;
}

/* ---- dirty list (mu) ------------------------------------------------------------ */

static void dirty_unlink(struct vg_store *s, struct series *se)
{
	if (!se->in_dirty)
		return;
	if (se->dprev)
		se->dprev->dnext = se->dnext;
	else
		s->dhead = se->dnext;
	if (se->dnext)
		se->dnext->dprev = se->dprev;
	else
		s->dtail = se->dprev;
	se->dprev = se->dnext = NULL;
	se->in_dirty = 0;
}

static void dirty_append(struct vg_store *s, struct series *se)
{
	se->dnext = NULL;
	se->dprev = s->dtail;
	if (s->dtail)
		s->dtail->dnext = se;
	else
		s->dhead = se;
	s->dtail = se;
	se->in_dirty = 1;
}

/* ---- open / close helpers ------------------------------------------------------------ */

void vg_store_get_stats(struct vg_store *s, struct vg_store_stats *out)
{
#define LD(f) out->f = __atomic_load_n(&s->stats.f, __ATOMIC_RELAXED)
	LD(files_created);
	LD(values_written);
	LD(values_duplicate);
	LD(values_rejected);
	LD(write_errors);
	for (int i = 0; i < VG_STORE_ERR_N; i++)
		LD(write_errors_by[i]);
	LD(write_retries);
	LD(segments_kept);
	LD(segments_kept_dropped);
	LD(write_ns_total);
	LD(values_flushed);
	LD(flushes);
	LD(values_pending);
	LD(pending_peak);
	LD(cache_bytes_peak);
	LD(values_replayed);
	LD(headers_restored);
	LD(cache_full);
	LD(journal_bytes);
	LD(journal_syncs);
#undef LD
}

const char *vg_store_err_reason(int reason)
{
	static const char *const names[VG_STORE_ERR_N] = {"time", "file", "memory",
							   "librrd"};

	return reason >= 0 && reason < VG_STORE_ERR_N ? names[reason] : NULL;
}

/* n values that could not be written, for this reason. */
static void count_err(struct vg_store *s, int reason, uint64_t n)
{
	if (!n)
		return;
	count(&s->stats.write_errors_by[reason], n);
	count(&s->stats.write_errors, n);
}

const char *vg_store_last_error(const struct vg_store *s)
{
	return s ? s->last_error : "";
}

/* ---- paths ---------------------------------------------------------------- */

/* A name's path component (vigie/name.h): its escaped form, or a
 * readable prefix and a hash when that is too long for the file system,
 * so every valid name is storable. */
static int escape_component(const char *name, char *out, size_t outlen)
{
	int n = vg_name_component(name, out, outlen);

	if (n < 0)
		return n;
	if (n > COMPONENT_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* Directory of a resource: <rrd>/<type>/<escaped id>. */
static int resource_dir(const struct vg_store *s, int rtype, const char *id,
			char *out, size_t outlen)
{
	const char *tname = vg_rtype_name(rtype);
	char esc[ESC_MAX];
	int rc;

	if (!tname)
		return -EINVAL;
	if ((rc = escape_component(id, esc, sizeof(esc))))
		return rc;
	if ((size_t)snprintf(out, outlen, "%s/%s/%s", s->rrd_dir, tname, esc) >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

int vg_store_path(const struct vg_store *s, int rtype, const char *id,
		  const char *metric, char *out, size_t outlen)
{
	char esc[ESC_MAX];
	size_t len;
	int rc;

	if (!s || !out)
		return -EINVAL;
	if ((rc = resource_dir(s, rtype, id, out, outlen)))
		return rc;
	if ((rc = escape_component(metric, esc, sizeof(esc))))
		return rc;
	len = strlen(out);
	if ((size_t)snprintf(out + len, outlen - len, "/%s.rrd", esc) >= outlen - len)
		return -ENAMETOOLONG;
	return 0;
}

/* ---- files ---------------------------------------------------------------------- */

static int is_nospace(int err, const char *msg)
{
	return err == ENOSPC || err == EDQUOT ||
	       (msg && (strstr(msg, "No space left") || strstr(msg, "quota exceeded")));
}

static void set_error(struct vg_store *s, const char *path, const char *what)
{
	size_t len = strlen(path);

	/* The tail of a long path is the part that names the series. */
	snprintf(s->last_error, sizeof(s->last_error), "%.300s: %.200s",
		 len > 300 ? path + len - 300 : path, what);
}

/* Same, from the storage thread (mu held): copied into last_error by the
 * receiver thread at its next batch. */
static void set_flush_error(struct vg_store *s, const char *path, const char *what)
{
	size_t len = strlen(path);

	snprintf(s->flush_error, sizeof(s->flush_error), "%.300s: %.200s",
		 len > 300 ? path + len - 300 : path, what);
	s->flush_error_new = 1;
}

/* Size of a new file: 3 consolidation functions per tier, 8 bytes a row,
 * plus a generous header. */
static uint64_t file_bytes(const struct vg_store *s)
{
	uint64_t rows = 0;

	for (size_t i = 0; i < s->narchives; i++)
		rows += s->archives[i].retention_s / s->archives[i].resolution_s;
	return 3 * rows * sizeof(double) + 4096;
}

/* Whether the file system holding path has less than need bytes free. */
static int no_room(const char *path, uint64_t need)
{
	char dir[PATH_MAX];
	struct statvfs v;
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')))
		*slash = '\0';
	if (statvfs(dir, &v))
		return 0;
	return (uint64_t)v.f_bavail * v.f_frsize < need;
}

/* Create the file at path for a series whose first sample is at t_ms.
 * 0, -EAGAIN (disk full), -EIO. Receiver thread (or open). */
static int create_file(struct vg_store *s, const char *path, int kind,
		       int64_t t_ms)
{
	char tmp[PATH_MAX], ds[64], rra[3 * VG_MAX_ARCHIVES][64];
	const char *argv[1 + 3 * VG_MAX_ARCHIVES];
	static const char *cfs[] = {"AVERAGE", "MIN", "MAX"};
	int argc = 0, rc, e;
	char *slash;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	slash = strrchr(tmp, '/');
	*slash = '\0';
	if ((rc = vg_fs_mkdir_p(tmp, 0755))) {
		set_error(s, tmp, strerror(-rc));
		return is_nospace(-rc, NULL) ? -EAGAIN : -EIO;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;

	snprintf(ds, sizeof(ds), "DS:value:%s:%u:%s:U",
		 kind == VG_KIND_COUNTER ? "DDERIVE" : "GAUGE", s->heartbeat_s,
		 kind == VG_KIND_COUNTER ? "0" : "U");
	argv[argc++] = ds;
	for (size_t i = 0; i < s->narchives; i++) {
		uint32_t pdp = s->archives[i].resolution_s / s->step_s;
		uint32_t rows = s->archives[i].retention_s / s->archives[i].resolution_s;
		for (int c = 0; c < 3; c++) {
			snprintf(rra[argc - 1], sizeof(rra[0]), "RRA:%s:0.5:%u:%u",
				 cfs[c], pdp, rows ? rows : 1);
			argv[argc] = rra[argc - 1];
			argc++;
		}
	}
	unlink(tmp); /* leftover of a crash mid-create */
	rrd_clear_error();
	errno = 0;
	/* last_up one second before the first sample, so it is accepted. */
	rc = rrd_create_r2(tmp, s->step_s, (time_t)(t_ms / 1000) - 1, 0, NULL,
			   NULL, argc, argv);
	e = errno;
	if (rc) {
		/* librrd 1.7 loses the errno of a failed write (it unlinks
		 * its temporary file and reports nothing): ask the file system
		 * whether the file could have fitted. */
		int full = is_nospace(e, rrd_get_error()) ||
			   no_room(tmp, file_bytes(s) + (64u << 10));
		set_error(s, path, *rrd_get_error() ? rrd_get_error() :
				   "librrd could not create the file");
		rrd_clear_error();
		unlink(tmp);
		return full ? -EAGAIN : -EIO;
	}
	/* librrd makes its files 0644 whatever the umask; the collector's
	 * are its user's and its group's only (issue 20, perms_test). */
	(void)chmod(tmp, 0640);
	if (rename(tmp, path)) {
		e = errno;
		set_error(s, path, strerror(e));
		unlink(tmp);
		return is_nospace(e, NULL) ? -EAGAIN : -EIO;
	}
	count(&s->stats.files_created, 1);
	return 0;
}

/* The time of a file's last update in ms, read from its header (librrd's
 * live_head keeps microseconds; rrd_last_r gives whole seconds only).
 * 0, -ENOENT, -EIO. */
static int file_last_ms(const char *path, int64_t *out)
{
	unsigned char buf[16384];
	stat_head_t sh;
	live_head_t lh;
	ssize_t n;
	size_t off;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -EIO;
	n = pread(fd, buf, sizeof(buf), 0);
	close(fd);
	if (n < (ssize_t)sizeof(sh))
		return -EIO;
	memcpy(&sh, buf, sizeof(sh));
	off = sizeof(stat_head_t) + sh.ds_cnt * sizeof(ds_def_t) +
	      sh.rra_cnt * sizeof(rra_def_t);
	if (memcmp(sh.cookie, RRD_COOKIE, 4) || sh.float_cookie != FLOAT_COOKIE ||
	    strncmp(sh.version, RRD_VERSION3, 4) < 0 || sh.ds_cnt > 64 ||
	    sh.rra_cnt > 256 || off + sizeof(lh) > (size_t)n) {
		/* Not a layout we know: whole seconds from librrd. */
		time_t last;
		rrd_clear_error();
		last = rrd_last_r(path);
		rrd_clear_error();
		if (last <= 0)
			return -EIO;
		*out = (int64_t)last * 1000;
		return 0;
	}
	memcpy(&lh, buf + off, sizeof(lh));
	if (lh.last_up <= 0 || lh.last_up_usec < 0 || lh.last_up_usec >= 1000000)
		return -EIO;
	/* Nearest, not truncated: librrd keeps .229 as 228999 us (strtod's
	 * double of "seconds.229", truncated to microseconds). */
	*out = (int64_t)lh.last_up * 1000 + (lh.last_up_usec + 500) / 1000;
	return 0;
}

/* ---- formatting for librrd ------------------------------------------------------------ */

static char *put_u64(char *p, uint64_t v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* "seconds.millis:value" without printf for the common cases: integral
 * values (counters, bytes) and values with at most three decimals whose
 * decimal form reads back as the same double (percentages, ratios); %.17g
 * (exact round trip) otherwise. */
#define ARG_LEN 64
static void format_arg(char *out, int64_t t_ms, double v)
{
	char *p = put_u64(out, (uint64_t)(t_ms / 1000));
	int ms = (int)(t_ms % 1000);
	double k;

	*p++ = '.';
	*p++ = (char)('0' + ms / 100);
	*p++ = (char)('0' + ms / 10 % 10);
	*p++ = (char)('0' + ms % 10);
	*p++ = ':';
	if (fabs(v) < 1e15 && v == (double)(int64_t)v) {
		int64_t i = (int64_t)v;
		if (i < 0) {
			*p++ = '-';
			i = -i;
		}
		p = put_u64(p, (uint64_t)i);
		*p = '\0';
		return;
	}
	k = nearbyint(v * 1000);
	/* k / 1000.0 is the double nearest to the decimal k/1000 (division is
	 * correctly rounded), which is what strtod makes of "k/1000": so the
	 * equality proves the short form reads back exactly. */
	if (isfinite(v) && fabs(k) < 1e15 && k / 1000.0 == v) {
		int64_t i = (int64_t)k, frac;
		if (i < 0) {
			*p++ = '-';
			i = -i;
		}
		p = put_u64(p, (uint64_t)(i / 1000));
		frac = i % 1000;
		*p++ = '.';
		*p++ = (char)('0' + frac / 100);
		if (frac % 100) {
			*p++ = (char)('0' + frac / 10 % 10);
			if (frac % 10)
				*p++ = (char)('0' + frac % 10);
		}
		*p = '\0';
		return;
	}
	snprintf(p, (size_t)(ARG_LEN - (p - out)), "%.17g", v);
}

/* ---- the journal ------------------------------------------------------------------------ */

struct jhdr {
	uint32_t len;     /* payload bytes */
	uint32_t version;
	uint64_t sum;     /* jsum(payload) */
};

/* Checksum of a record's payload: a torn or garbled record at the end of a
 * segment (a crash mid-append) must not be replayed. */
static uint64_t jsum(const uint8_t *p, size_t n)
{
	uint64_t h = 0x243f6a8885a308d3ull ^ (uint64_t)n, w;

	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ull;
		h ^= h >> 32;
	}
	w = 0;
	memcpy(&w, p, n);
	h = (h ^ w ^ ((uint64_t)n << 56)) * 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 29);
}

static int jreserve(struct vg_store *s, size_t need)
{
	if (need <= s->jcap)
		return 0;
	size_t ncap = s->jcap ? s->jcap : 65536;
	while (ncap < need)
		ncap *= 2;
	uint8_t *n = realloc(s->jbuf, ncap);
	if (!n)
		return -ENOMEM;
	s->jbuf = n;
	s->jcap = ncap;
	return 0;
}

static void seg_path(const struct vg_store *s, uint64_t id, char *out, size_t len)
{
	/* journal_dir is at most PATH_MAX - 32 bytes (vg_store_open) */
	if ((size_t)snprintf(out, len, "%s/%016llx.vgj", s->journal_dir,
			     (unsigned long long)id) >= len)
		out[0] = '\0';
}

/* Write the record in jbuf[0..len) to the active segment (opening it if
 * needed) and fdatasync. Receiver thread, journal_busy set, mu not held.
 * On failure the segment is cut back to its last whole record. 0, -EAGAIN
 * (no space), -EIO. */
static int journal_append(struct vg_store *s, uint64_t seg, size_t len)
{
	char path[PATH_MAX];
	size_t done = 0;
	int e;

	if (s->seg_fd < 0) {
		seg_path(s, seg, path, sizeof(path));
		s->seg_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
		if (s->seg_fd < 0) {
			e = errno;
			set_error(s, path, strerror(e));
			return is_nospace(e, NULL) ? -EAGAIN : -EIO;
		}
		s->seg_bytes = 0;
		fsync(s->lock_fd); /* the new name is durable */
	}
	while (done < len) {
		ssize_t n = write(s->seg_fd, s->jbuf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			e = n < 0 ? errno : EIO;
			goto fail;
		}
		done += (size_t)n;
	}
	if (fdatasync(s->seg_fd)) {
		e = errno;
		goto fail;
	}
	s->seg_bytes += len;
	count(&s->stats.journal_bytes, len);
	count(&s->stats.journal_syncs, 1);
	return 0;
fail:
	seg_path(s, seg, path, sizeof(path));
	set_error(s, path, strerror(e));
	if (ftruncate(s->seg_fd, (off_t)s->seg_bytes)) {
		/* Cannot cut the torn record off: never append after it. A
		 * new segment is started; replay stops at the torn record of
		 * this one, whose later part is empty. */
		close(s->seg_fd);
		s->seg_fd = -1;
		pthread_mutex_lock(&s->mu);
		s->seg_active++;
		pthread_mutex_unlock(&s->mu);
	}
	return is_nospace(e, NULL) ? -EAGAIN : -EIO;
}

/* A segment whose values are all in the files (or never will be): delete
 * it, or, if keep (a value of it could not be written), rename it
 * <id>.kept, which no replay reads: the journal's copy of what the RRD
 * files lack, for the operator (docs/operations.md). */
static void seg_retire(struct vg_store *s, uint64_t id, int keep)
{
	char path[PATH_MAX], kept[PATH_MAX];

	seg_path(s, id, path, sizeof(path));
	if (keep && s->kept_on_disk >= KEPT_MAX) {
		/* Bounded: a file that stays unwritable must not fill the disk
		 * with kept segments (the counter and the log say so). */
		count(&s->stats.segments_kept_dropped, 1);
		keep = 0;
	}
	if (keep && (size_t)snprintf(kept, sizeof(kept), "%s/%016llx.kept",
				     s->journal_dir, (unsigned long long)id) <
			    sizeof(kept) &&
	    rename(path, kept) == 0) {
		count(&s->stats.segments_kept, 1);
		s->kept_on_disk++;
		return;
	}
	unlink(path);
}

/* Delete the segments no cached value needs any more; when the cache is
 * empty, the active one too. Called with mu held (drops it while syncing
 * and unlinking). The RRD files are synced first (syncfs), so what a
 * deleted segment held is on disk in the files. */
static void reclaim(struct vg_store *s)
{
	uint64_t from, upto, keep = 0;
	int fd = -1;

	if (!s->owner || s->reclaiming)
		return;
	from = s->seg_oldest;
	upto = from;
	while (upto < s->seg_active && !s->segcnt[upto % SEG_RING])
		upto++;
	if (upto == s->seg_active && !s->pending && !s->segcnt[upto % SEG_RING] &&
	    !s->journal_busy && s->seg_fd >= 0) {
		fd = s->seg_fd;
		s->seg_fd = -1;
		s->seg_active++;
		upto = s->seg_active;
	}
	if (upto == from)
		return;
	/* upto - from <= SEG_RING (take_batch bounds the live segments) */
	for (uint64_t id = from; id < upto && id - from < 64; id++) {
		keep |= (uint64_t)s->segkeep[id % SEG_RING] << (id - from);
		s->segkeep[id % SEG_RING] = 0;
	}
	s->reclaiming = 1;
	pthread_mutex_unlock(&s->mu);
	syncfs(s->lock_fd);
	if (fd >= 0)
		close(fd);
	for (uint64_t id = from; id < upto; id++)
		seg_retire(s, id, (keep >> (id - from)) & 1);
	pthread_mutex_lock(&s->mu);
	s->seg_oldest = upto;
	s->reclaiming = 0;
}

/* ---- header undo (see the top) ------------------------------------------------------------- */

struct undo_rec {
	uint32_t magic;  /* UNDO_MAGIC while set, 0 when clear */
	uint32_t hlen;   /* header bytes */
	uint32_t plen;   /* path bytes (relative to rrd_dir) */
	uint32_t pad;
	uint64_t sum;    /* jsum of path and header */
	/* then the path, then the header */
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

/* A free slot (waits for one), or -1 without an undo file. mu not held. */
static int undo_take(struct vg_store *s)
{
	int slot = -1;

	if (s->undo_fd < 0)
		return -1;
	pthread_mutex_lock(&s->mu);
	while (s->undo_busy == (1u << UNDO_SLOTS) - 1)
		pthread_cond_wait(&s->done_cv, &s->mu);
	for (slot = 0; s->undo_busy & (1u << slot); slot++)
		;
	s->undo_busy |= 1u << slot;
	pthread_mutex_unlock(&s->mu);
	return slot;
}

static void undo_give(struct vg_store *s, int slot)
{
	if (slot < 0)
		return;
	pthread_mutex_lock(&s->mu);
	s->undo_busy &= ~(1u << slot);
	pthread_cond_broadcast(&s->done_cv);
	pthread_mutex_unlock(&s->mu);
}

/* Copy path's header into the slot. 0, or -errno: then the update runs
 * unprotected (as without an undo file). */
static int undo_save(struct vg_store *s, int slot, const char *path, uint8_t *rec)
{
	size_t rl = strlen(s->rrd_dir), plen, hlen;
	struct undo_rec h = {0};
	const char *rel = path + rl + 1;
	ssize_t n;
	int fd;

	if (strncmp(path, s->rrd_dir, rl) || path[rl] != '/')
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
	h.sum = jsum(rec + sizeof(h), plen + hlen);
	memcpy(rec, &h, sizeof(h));
	n = pwrite(s->undo_fd, rec, sizeof(h) + plen + hlen,
		   (off_t)slot * UNDO_SLOT_BYTES);
	return n == (ssize_t)(sizeof(h) + plen + hlen) ? 0 : -EIO;
}

static void undo_clear(struct vg_store *s, int slot)
{
	uint32_t zero = 0;

	/* If this fails, the next open restores a header whose update the
	 * journal still holds and redoes: harmless. */
	if (pwrite(s->undo_fd, &zero, sizeof(zero), (off_t)slot * UNDO_SLOT_BYTES) < 0)
		return;
}

/* At open, before the replay: write back every header whose update may
 * not have finished, and clear the slots. Returns how many. */
static int undo_restore(struct vg_store *s)
{
	uint8_t *rec = malloc(UNDO_SLOT_BYTES), cur[UNDO_SLOT_BYTES / 4];
	int restored = 0;

	if (!rec)
		return 0;
	for (int slot = 0; slot < UNDO_SLOTS; slot++) {
		struct undo_rec h;
		char path[PATH_MAX];
		size_t defs = 0, hlen;
		ssize_t n = pread(s->undo_fd, rec, UNDO_SLOT_BYTES,
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
		    jsum(rec + sizeof(h), h.plen + h.hlen) != h.sum) {
			undo_clear(s, slot); /* torn while saving: librrd had not started */
			continue;
		}
		hlen = h.hlen >= sizeof(stat_head_t)
			       ? rrd_header_len(rec + sizeof(h) + h.plen, h.hlen, &defs)
			       : 0;
		if (!hlen || hlen != h.hlen ||
		    (size_t)snprintf(path, sizeof(path), "%s/%.*s", s->rrd_dir,
				     (int)h.plen, (const char *)rec + sizeof(h)) >=
			    sizeof(path) ||
		    memchr(rec + sizeof(h), '\0', h.plen)) {
			undo_clear(s, slot);
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
		undo_clear(s, slot);
	}
	free(rec);
	return restored;
}

/* ---- writing cached values to the files ---------------------------------------------------- */

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
 * librrd's message in msg. No lock held. */
static int update_call(struct vg_store *s, const char *path, const struct pend *v,
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
	saved = slot >= 0 && !undo_save(s, slot, path, rec);
	rrd_clear_error();
	rc = rrd_update_r(path, NULL, (int)k, argv);
	if (saved) {
		if (vg_store_test_after_update)
			vg_store_test_after_update(path);
		undo_clear(s, slot);
	}
	count(&s->stats.write_ns_total, (uint64_t)(vg_monotonic_ns() - t0));
	count(&s->stats.flushes, 1);
	if (rc) {
		snprintf(msg, msglen, "%s", *rrd_get_error() ? rrd_get_error() :
				      "librrd refused the update");
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
 * that is refused too, one value per call. Returns how many values could
 * not be written (counted by reason, the last message noted). */
static size_t write_refused(struct vg_store *s, const char *path,
			    const struct pend *v, size_t k, int slot, uint8_t *rec,
			    const char *first_msg)
{
	char msg[512];
	size_t failed = 0, skip = 0;
	int64_t last;

	count(&s->stats.write_retries, 1);
	snprintf(msg, sizeof(msg), "%s", first_msg);
	for (int pass = 0; pass < 2 && k; pass++) {
		/* A file we cannot read: librrd will say why, value by value. */
		if (file_last_ms(path, &last))
			last = INT64_MIN;
		for (skip = 0; skip < k && v[skip].t_ms <= last; skip++)
			;
		count(&s->stats.values_duplicate, skip);
		v += skip;
		k -= skip;
		if (!k)
			return 0;
		if (pass == 0 && !update_call(s, path, v, k, slot, rec, msg, sizeof(msg))) {
			count(&s->stats.values_flushed, k);
			return 0;
		}
	}
	for (size_t j = 0; j < k; j++) {
		if (!update_call(s, path, &v[j], 1, slot, rec, msg, sizeof(msg))) {
			count(&s->stats.values_flushed, 1);
			continue;
		}
		count_err(s, refusal_reason(msg), 1);
		failed++;
		pthread_mutex_lock(&s->mu);
		set_flush_error(s, path, msg);
		pthread_mutex_unlock(&s->mu);
	}
	return failed;
}

/* Write n values of a series to its file, MAX_ARGS per librrd call (the
 * fast path); a refused call goes to write_refused. No lock held. Returns
 * how many values could not be written (counted): the caller keeps their
 * journal segments. */
static size_t write_values(struct vg_store *s, const struct series *se,
			   const struct pend *v, size_t n)
{
	char path[PATH_MAX], msg[512];
	uint8_t *rec = NULL;
	size_t failed = 0;
	int slot;

	if (vg_store_path(s, se->rtype, se->id, se->metric, path, sizeof(path))) {
		count_err(s, VG_STORE_ERR_OTHER, n);
		return n;
	}
	if ((slot = undo_take(s)) >= 0 && !(rec = malloc(UNDO_SLOT_BYTES))) {
		undo_give(s, slot);
		slot = -1;
	}
	for (size_t i = 0; i < n;) {
		size_t k = n - i < MAX_ARGS ? n - i : MAX_ARGS;

		if (!update_call(s, path, v + i, k, slot, rec, msg, sizeof(msg)))
			count(&s->stats.values_flushed, k);
		else
			failed += write_refused(s, path, v + i, k, slot, rec, msg);
		i += k;
	}
	undo_give(s, slot);
	free(rec);
	return failed;
}

static int reserve_pend(struct pend **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap : 64;
	while (ncap < need)
		ncap *= 2;
	struct pend *n = realloc(*buf, ncap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	*buf = n;
	*cap = ncap;
	return 0;
}

/* Take a series' cached values and write them. mu held on entry and on
 * return (dropped while writing). se must have values and not be in a
 * flush. buf/cap: the caller's scratch buffer. */
static int flush_series(struct vg_store *s, struct series *se, struct pend **buf,
			size_t *cap)
{
	size_t n = se->npend;
	uint64_t seg = se->seg, seg_hi = s->seg_active;

	if (reserve_pend(buf, cap, n))
		return -ENOMEM;
	memcpy(*buf, se->pend, n * sizeof(**buf));
	se->npend = 0;
	if (se->cap > 4 * s->flush_depth && n < se->cap / 4) {
		/* A burst grew it: give the memory back. */
		s->cache_bytes -= se->cap * sizeof(*se->pend);
		free(se->pend);
		se->pend = NULL;
		se->cap = 0;
	}
	s->pending -= n;
	__atomic_store_n(&s->stats.values_pending, s->pending, __ATOMIC_RELAXED);
	dirty_unlink(s, se);
	se->flushing = 1;
	pthread_mutex_unlock(&s->mu);

	size_t failed = write_values(s, se, *buf, n);

	pthread_mutex_lock(&s->mu);
	if (failed) {
		/* Its values went into segments seg..seg_hi (appended before
		 * they were copied out): keep them all. */
		for (uint64_t id = seg; id <= seg_hi && id < seg + SEG_RING; id++)
			s->segkeep[id % SEG_RING] = 1;
	}
	se->flushing = 0;
	s->segcnt[seg % SEG_RING]--;
	pthread_cond_broadcast(&s->done_cv);
	reclaim(s);
	return 0;
}

/* Write every cached value. mu held. */
static int flush_all_locked(struct vg_store *s)
{
	struct pend *buf = NULL;
	size_t cap = 0;
	int rc = 0;

	for (;;) {
		struct series *se = s->dhead;
		while (se && se->flushing)
			se = se->dnext;
		if (se) {
			if ((rc = flush_series(s, se, &buf, &cap)))
				break;
			continue;
		}
		if (!s->dhead)
			break;
		/* Only series another thread is writing are left. */
		pthread_cond_wait(&s->done_cv, &s->mu);
	}
	free(buf);
	return rc;
}

int vg_store_flush(struct vg_store *s)
{
	int rc;

	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->mu);
	rc = flush_all_locked(s);
	reclaim(s);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* The storage thread: write the oldest series that is due; sleep when
 * none is. A series is due when it holds flush_depth values, when its
 * oldest value waited FLUSH_MAX_AGE_MS, when the cache is over half full
 * or the journal has too many segments (oldest first, to free them), or
 * when no batch came for IDLE_FLUSH_MS (an idle store writes everything). */
static void *flusher_main(void *arg)
{
	struct vg_store *s = arg;

	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		int64_t now = vg_monotonic_ms(), wait_ms = 100;
		int pressure = s->pending > s->cache_max / 2 ||
			       s->seg_active - s->seg_oldest >= MAX_LIVE_SEGS;
		int idle = now - s->last_batch_ms >= IDLE_FLUSH_MS;
		struct series *pick = NULL;
		int scanned = 0;

		for (struct series *se = s->dhead; se && scanned < 64;
		     se = se->dnext, scanned++) {
			if (se->flushing)
				continue;
			if (pressure || idle || se->npend >= s->flush_depth ||
			    now - se->since_ms >= FLUSH_MAX_AGE_MS) {
				pick = se;
				break;
			}
		}
		if (pick) {
			flush_series(s, pick, &s->fbuf, &s->fcap);
			continue;
		}
		if (s->dhead) {
			int64_t due = s->dhead->since_ms + FLUSH_MAX_AGE_MS - now;
			int64_t idle_due = s->last_batch_ms + IDLE_FLUSH_MS - now;
			if (due < wait_ms)
				wait_ms = due;
			if (idle_due < wait_ms)
				wait_ms = idle_due;
			if (wait_ms < 1)
				wait_ms = 1;
		}
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += wait_ms / 1000;
		ts.tv_nsec += (wait_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->work_cv, &s->mu, &ts);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* ---- taking a batch (receiver thread) ----------------------------------------------------- */

/* The series for (rtype, id, metric), opened on first use: its file's last
 * update is read from the header, or the file is created. Receiver thread
 * (or open); only this path inserts, so lookups need no lock here.
 * 0, -EINVAL (bad name: refused), -EAGAIN (disk full), -EIO, -ENOMEM. */
static int series_get(struct vg_store *s, int rtype, const char *id,
		      const char *metric, int kind, uint64_t h, int64_t t_ms,
		      struct series **out)
{
	char path[PATH_MAX];
	struct series *se = table_find(s, rtype, id, metric, h);
	int64_t last;
	int rc;

	if (se) {
		*out = se;
		return 0;
	}
	if ((rc = vg_store_path(s, rtype, id, metric, path, sizeof(path))))
		return -EINVAL;
	rc = file_last_ms(path, &last);
	if (rc == -ENOENT) {
		if ((rc = create_file(s, path, kind, t_ms)))
			return rc;
		last = (t_ms / 1000 - 1) * 1000;
	} else if (rc) {
		set_error(s, path, "exists but librrd cannot read it");
		return -EIO;
	}
	if (!(se = series_new(rtype, id, metric, kind, h)))
		return -ENOMEM;
	se->last_ms = last;
	pthread_mutex_lock(&s->mu);
	rc = table_insert(s, se);
	pthread_mutex_unlock(&s->mu);
	if (rc) {
		free(se);
		return rc;
	}
	*out = se;
	return 0;
}

/* Journal payload: u32 nres, then per resource u8 type, u16 id length, id,
 * i64 time_ms, u32 nsamples, and per sample u8 kind, u8 metric length,
 * metric, f64 value (native byte order: a journal never leaves its host). */
#define PUT(p, v)                              \
	do {                                   \
		__typeof__(v) v_ = (v);        \
		memcpy((p), &v_, sizeof(v_));  \
		(p) += sizeof(v_);             \
	} while (0)

/* take_batch's mark for a sample whose file exists but cannot be read:
 * journaled (its segment is then kept), not cached, counted. */
static struct series unreadable;

/* Take b: see vg_store_write_batch. journal=0 when replaying. */
static int take_batch(struct vg_store *s, const struct vg_batch *b, int journal,
		      struct series ***scratch, size_t *scap)
{
	uint64_t naccept = 0, ndup = 0, nrej = 0, nerr_file = 0, nerr_mem = 0,
		 seg = 0;
	size_t jlen = 0;
	struct series **sp;
	int rc;

	if (b->nsamples > *scap) {
		struct series **n = realloc(*scratch, b->nsamples * sizeof(*n));
		if (!n)
			return -ENOMEM;
		*scratch = n;
		*scap = b->nsamples;
	}
	sp = *scratch;
	s->gen++;

	/* 1. Resolve every sample to its series; drop refused and duplicate
	 * ones. Creating files happens here, before anything is journaled,
	 * so a full disk refuses the whole batch. */
	for (size_t i = 0; i < b->nres; i++) {
		const struct vg_resource *r = &b->res[i];
		uint64_t hid = vg_fnv1a(VG_FNV_OFFSET, r->id);

		for (uint32_t j = 0; j < r->nsamples; j++) {
			size_t k = r->first_sample + j;
			const struct vg_sample *smp = &b->samples[k];
			struct series *se = NULL;

			sp[k] = NULL;
			if (!isfinite(smp->value) || r->time_ms < 1000 ||
			    (smp->kind != VG_KIND_GAUGE && smp->kind != VG_KIND_COUNTER) ||
			    !smp->metric) {
				nrej++;
				continue;
			}
			rc = series_get(s, r->type, r->id, smp->metric, smp->kind,
					key_hash(r->type, hid, smp->metric), r->time_ms, &se);
			if (rc == -EAGAIN)
				return rc;
			if (rc == -EINVAL) {
				nrej++;
				continue;
			}
			if (rc == -ENOMEM) {
				nerr_mem++;
				continue;
			}
			if (rc) {
				nerr_file++;
				sp[k] = &unreadable;
				continue;
			}
			if (se->gen != s->gen) {
				se->gen = s->gen;
				se->tent_ms = se->last_ms;
			}
			if (r->time_ms <= se->tent_ms) {
				ndup++;
				continue;
			}
			se->tent_ms = r->time_ms;
			sp[k] = se;
			naccept++;
		}
	}

	/* 2. The journal record of the accepted samples (and of those whose
	 * file cannot be read: kept with their segment). */
	if ((naccept || nerr_file) && journal && s->owner) {
		size_t need = sizeof(struct jhdr) + 4;
		for (size_t i = 0; i < b->nres; i++) {
			const struct vg_resource *r = &b->res[i];
			need += 15 + strlen(r->id);
			for (uint32_t j = 0; j < r->nsamples; j++)
				if (sp[r->first_sample + j])
					need += 10 + strlen(b->samples[r->first_sample + j].metric);
		}
		if (jreserve(s, need))
			return -ENOMEM;
		uint8_t *p = s->jbuf + sizeof(struct jhdr), *pn = p;
		uint32_t nres = 0;
		p += 4;
		for (size_t i = 0; i < b->nres; i++) {
			const struct vg_resource *r = &b->res[i];
			uint32_t n = 0;
			for (uint32_t j = 0; j < r->nsamples; j++)
				n += sp[r->first_sample + j] != NULL;
			if (!n)
				continue;
			nres++;
			uint16_t idl = (uint16_t)strlen(r->id);
			PUT(p, (uint8_t)r->type);
			PUT(p, idl);
			memcpy(p, r->id, idl);
			p += idl;
			PUT(p, (int64_t)r->time_ms);
			PUT(p, n);
			for (uint32_t j = 0; j < r->nsamples; j++) {
				const struct vg_sample *smp = &b->samples[r->first_sample + j];
				if (!sp[r->first_sample + j])
					continue;
				uint8_t ml = (uint8_t)strlen(smp->metric);
				PUT(p, (uint8_t)smp->kind);
				PUT(p, ml);
				memcpy(p, smp->metric, ml);
				p += ml;
				PUT(p, smp->value);
			}
		}
		memcpy(pn, &nres, 4);
		struct jhdr h = {
			.len = (uint32_t)(p - pn),
			.version = JOURNAL_VERSION,
			.sum = jsum(pn, (size_t)(p - pn)),
		};
		memcpy(s->jbuf, &h, sizeof(h));
		jlen = (size_t)(p - s->jbuf);
	}

	/* 3. Room in the cache? Then claim the journal and append. */
	pthread_mutex_lock(&s->mu);
	if (s->flush_error_new) {
		snprintf(s->last_error, sizeof(s->last_error), "%s", s->flush_error);
		s->flush_error_new = 0;
	}
	if (naccept && journal && s->pending &&
	    s->pending + naccept > s->cache_max) {
		pthread_cond_signal(&s->work_cv);
		pthread_mutex_unlock(&s->mu);
		count(&s->stats.cache_full, 1);
		snprintf(s->last_error, sizeof(s->last_error),
			 "storage full: the write-behind cache holds %llu values, "
			 "the storage thread is behind", (unsigned long long)s->pending);
		return -EAGAIN;
	}
	if (jlen) {
		if (s->seg_fd >= 0 && s->seg_bytes + jlen > SEG_MAX_BYTES) {
			if (s->seg_active + 1 - s->seg_oldest >= SEG_RING) {
				pthread_cond_signal(&s->work_cv);
				pthread_mutex_unlock(&s->mu);
				snprintf(s->last_error, sizeof(s->last_error),
					 "storage full: %d journal segments wait for the "
					 "storage thread", SEG_RING - 1);
				return -EAGAIN;
			}
			close(s->seg_fd); /* stays until its values are written */
			s->seg_fd = -1;
			s->seg_active++;
		}
		s->journal_busy = 1;
		seg = s->seg_active;
		pthread_mutex_unlock(&s->mu);
		rc = journal_append(s, seg, jlen);
		pthread_mutex_lock(&s->mu);
		if (rc) {
			s->journal_busy = 0;
			pthread_mutex_unlock(&s->mu);
			return rc;
		}
	} else {
		seg = s->seg_active;
	}

	/* 4. Into the caches. */
	int64_t now = vg_monotonic_ms();
	if (nerr_file && jlen)
		s->segkeep[seg % SEG_RING] = 1;
	for (size_t i = 0; i < b->nres && naccept; i++) {
		const struct vg_resource *r = &b->res[i];
		for (uint32_t j = 0; j < r->nsamples; j++) {
			struct series *se = sp[r->first_sample + j];
			if (!se || se == &unreadable)
				continue;
			if (se->npend == se->cap) {
				uint32_t ncap = se->cap ? se->cap * 2 : s->flush_depth;
				struct pend *n = realloc(se->pend, ncap * sizeof(*n));
				if (!n) {
					/* journaled and not cached: counted,
					 * and its segment is kept */
					nerr_mem++;
					naccept--;
					s->segkeep[seg % SEG_RING] = 1;
					continue;
				}
				s->cache_bytes += (ncap - se->cap) * sizeof(*n);
				se->pend = n;
				se->cap = ncap;
			}
			if (!se->npend) {
				se->seg = seg;
				s->segcnt[seg % SEG_RING]++;
				se->since_ms = now;
				dirty_append(s, se);
			}
			se->pend[se->npend].t_ms = r->time_ms;
			se->pend[se->npend].v = b->samples[r->first_sample + j].value;
			se->npend++;
			se->last_ms = r->time_ms;
			s->pending++;
		}
	}
	s->journal_busy = 0;
	s->last_batch_ms = now;
	__atomic_store_n(&s->stats.values_pending, s->pending, __ATOMIC_RELAXED);
	if (s->pending > s->stats.pending_peak)
		__atomic_store_n(&s->stats.pending_peak, s->pending, __ATOMIC_RELAXED);
	if (s->cache_bytes > s->stats.cache_bytes_peak)
		__atomic_store_n(&s->stats.cache_bytes_peak, s->cache_bytes, __ATOMIC_RELAXED);
	if (s->dhead && (s->dhead->npend >= s->flush_depth ||
			 s->pending > s->cache_max / 2))
		pthread_cond_signal(&s->work_cv);
	pthread_mutex_unlock(&s->mu);

	count(&s->stats.values_rejected, nrej);
	count(&s->stats.values_duplicate, ndup);
	count_err(s, VG_STORE_ERR_FILE, nerr_file);
	count_err(s, VG_STORE_ERR_MEMORY, nerr_mem);
	count(journal ? &s->stats.values_written : &s->stats.values_replayed, naccept);
	return 0;
}

int vg_store_write_batch(struct vg_store *s, const struct vg_batch *b)
{
	int rc;

	if (!s || !b)
		return -EINVAL;
	rc = take_batch(s, b, 1, &s->scratch, &s->scap);
	if (!rc && !s->owner) {
		/* write-through: another store owns the journal */
		pthread_mutex_lock(&s->mu);
		rc = flush_all_locked(s);
		pthread_mutex_unlock(&s->mu);
	}
	return rc;
}

static int consumer_batch(void *ctx, const struct vg_batch *b)
{
	return vg_store_write_batch(ctx, b);
}

struct vg_consumer vg_store_consumer(struct vg_store *s)
{
	struct vg_consumer c = {
		.name = "store",
		.ctx = s,
		.batch = consumer_batch,
		.tick = NULL,
	};
	return c;
}

/* ---- replay ----------------------------------------------------------------------------- */

#define GET(p, end, v)                                  \
	do {                                            \
		if ((size_t)((end) - (p)) < sizeof(v))  \
			goto bad;                       \
		memcpy(&(v), (p), sizeof(v));           \
		(p) += sizeof(v);                       \
	} while (0)

/* Rebuild the batch of one journal record. NULL if malformed. */
static struct vg_batch *decode_record(const uint8_t *p, const uint8_t *end)
{
	struct vg_batch *b = vg_batch_new("journal", 0, 0, 0);
	char id[VG_NAME_MAX + 1], metric[256];
	uint32_t nres;

	if (!b)
		return NULL;
	GET(p, end, nres);
	for (uint32_t i = 0; i < nres; i++) {
		uint8_t type;
		uint16_t idl;
		int64_t t;
		uint32_t n;
		GET(p, end, type);
		GET(p, end, idl);
		if (idl > VG_NAME_MAX || (size_t)(end - p) < idl)
			goto bad;
		memcpy(id, p, idl);
		id[idl] = '\0';
		p += idl;
		GET(p, end, t);
		GET(p, end, n);
		if (!vg_batch_resource(b, type, id, NULL, NULL, t))
			goto bad;
		for (uint32_t j = 0; j < n; j++) {
			uint8_t kind, ml;
			double v;
			GET(p, end, kind);
			GET(p, end, ml);
			if ((size_t)(end - p) < ml)
				goto bad;
			memcpy(metric, p, ml);
			metric[ml] = '\0';
			p += ml;
			GET(p, end, v);
			if (vg_batch_sample(b, metric, kind, v))
				goto bad;
		}
	}
	if (p != end)
		goto bad;
	return b;
bad:
	vg_batch_free(b);
	return NULL;
}

/* Replay one segment: every whole record, in order; a torn or garbled
 * record (a crash mid-append) ends it. 0 or -errno. */
static int replay_segment(struct vg_store *s, const char *path, uint64_t *nrec)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t off = 0, got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !(buf = malloc((size_t)st.st_size + 1))) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	while (off + sizeof(struct jhdr) <= got) {
		struct jhdr h;
		struct vg_batch *b;
		memcpy(&h, buf + off, sizeof(h));
		if (h.version != JOURNAL_VERSION || h.len > got - off - sizeof(h) ||
		    jsum(buf + off + sizeof(h), h.len) != h.sum)
			break;
		b = decode_record(buf + off + sizeof(h), buf + off + sizeof(h) + h.len);
		if (!b)
			break;
		rc = take_batch(s, b, 0, &s->scratch, &s->scap);
		vg_batch_free(b);
		if (rc)
			break;
		(*nrec)++;
		off += sizeof(h) + h.len;
		if (s->pending > s->cache_max / 2) {
			pthread_mutex_lock(&s->mu);
			rc = flush_all_locked(s);
			pthread_mutex_unlock(&s->mu);
			if (rc)
				break;
		}
	}
	free(buf);
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Replay every segment left in the journal directory, write it all to the
 * files, sync, delete the segments. 0 or -errno (message in err). */
static int replay(struct vg_store *s, char *err, size_t errlen)
{
	DIR *d = opendir(s->journal_dir);
	struct dirent *e;
	uint64_t *ids = NULL, nrec = 0, next_id = 0;
	uint8_t *keep = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (!d) {
		snprintf(err, errlen, "store: %s: %s", s->journal_dir, strerror(errno));
		return -errno;
	}
	while ((e = readdir(d))) {
		char *end;
		unsigned long long id = strtoull(e->d_name, &end, 16);
		if (strlen(e->d_name) == 21 && !strcmp(end, ".kept")) {
			/* new segments are numbered after kept ones, so
			 * a segment kept later never replaces one */
			if (id + 1 > next_id)
				next_id = id + 1;
			s->kept_on_disk++;
			continue;
		}
		if (strlen(e->d_name) != 20 || strcmp(end, ".vgj"))
			continue;
		if (n == cap) {
			uint64_t *x = realloc(ids, (cap = cap ? cap * 2 : 16) * sizeof(*x));
			if (!x) {
				rc = -ENOMEM;
				break;
			}
			ids = x;
		}
		ids[n++] = id;
	}
	closedir(d);
	s->seg_active = s->seg_oldest = next_id;
	if (!rc && n) {
		qsort(ids, n, sizeof(*ids), cmp_u64);
		if (!(keep = calloc(n, 1)))
			rc = -ENOMEM;
		/* One segment at a time, written to the files before the next,
		 * so a value that cannot be written is known to be of this
		 * segment: it is kept (seg_retire), the others go. */
		for (size_t i = 0; i < n && !rc; i++) {
			char path[PATH_MAX];
			uint64_t errs = __atomic_load_n(&s->stats.write_errors,
							__ATOMIC_RELAXED);
			seg_path(s, ids[i], path, sizeof(path));
			rc = replay_segment(s, path, &nrec);
			if (!rc) {
				pthread_mutex_lock(&s->mu);
				rc = flush_all_locked(s);
				pthread_mutex_unlock(&s->mu);
			}
			keep[i] = __atomic_load_n(&s->stats.write_errors,
						  __ATOMIC_RELAXED) != errs;
		}
		if (!rc) {
			syncfs(s->lock_fd);
			for (size_t i = 0; i < n; i++)
				seg_retire(s, ids[i], keep[i]);
			if (ids[n - 1] + 1 > next_id)
				s->seg_active = s->seg_oldest = ids[n - 1] + 1;
			memset(s->segkeep, 0, sizeof(s->segkeep));
			if (s->flush_error_new) { /* for the log at open */
				snprintf(s->last_error, sizeof(s->last_error), "%s",
					 s->flush_error);
				s->flush_error_new = 0;
			}
		} else {
			snprintf(err, errlen, "store: replaying the journal in %s: %s "
				 "(%s)", s->journal_dir, strerror(-rc), s->last_error);
		}
	}
	free(ids);
	free(keep);
	return rc;
}

/* ---- open / close ----------------------------------------------------------------------- */

int vg_store_open(const char *data_dir, const struct vg_config *cfg,
		  struct vg_store **out, char *err, size_t errlen)
{
	struct vg_store *s;
	pthread_condattr_t ca;
	int rc;

	*out = NULL;
	if (!data_dir || !*data_dir || !cfg) {
		snprintf(err, errlen, "store: no data directory");
		return -EINVAL;
	}
	if (!cfg->storage_step_s || !cfg->narchives ||
	    cfg->narchives > VG_MAX_ARCHIVES ||
	    cfg->storage_heartbeat_s < cfg->storage_step_s) {
		snprintf(err, errlen, "store: bad step, heartbeat or archives");
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg->narchives; i++) {
		const struct vg_archive *a = &cfg->archives[i];
		if (!a->resolution_s || a->resolution_s % cfg->storage_step_s ||
		    a->retention_s < a->resolution_s) {
			snprintf(err, errlen,
				 "store: archive %us:%us is not a multiple of the %us step",
				 a->resolution_s, a->retention_s, cfg->storage_step_s);
			return -EINVAL;
		}
	}
	if (!(s = calloc(1, sizeof(*s)))) {
		snprintf(err, errlen, "store: out of memory");
		return -ENOMEM;
	}
	s->seg_fd = -1;
	s->lock_fd = -1;
	s->undo_fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->work_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&s->done_cv, NULL);
	s->last_batch_ms = vg_monotonic_ms();
	s->cache_max = cfg->storage_cache_values ? cfg->storage_cache_values
							 : CACHE_MAX_VALUES;
	s->flush_depth = cfg->storage_flush_depth ? cfg->storage_flush_depth
							 : FLUSH_MIN_DEPTH;
	if (s->cache_max < 16)
		s->cache_max = 16;
	if (s->flush_depth < 1 || s->flush_depth > MAX_ARGS)
		s->flush_depth = FLUSH_MIN_DEPTH;
	if ((size_t)snprintf(s->rrd_dir, sizeof(s->rrd_dir), "%s/rrd", data_dir) >=
		    sizeof(s->rrd_dir) - 2 * NAME_MAX - 64 ||
	    (size_t)snprintf(s->journal_dir, sizeof(s->journal_dir), "%s/journal",
			     data_dir) >= sizeof(s->journal_dir) - 32) {
		snprintf(err, errlen, "store: data directory path too long");
		vg_store_close(s);
		return -ENAMETOOLONG;
	}
	s->step_s = cfg->storage_step_s;
	s->heartbeat_s = cfg->storage_heartbeat_s;
	memcpy(s->archives, cfg->archives, sizeof(s->archives));
	s->narchives = cfg->narchives;
	s->cap = 1024;
	if (!(s->tab = calloc(s->cap, sizeof(*s->tab)))) {
		snprintf(err, errlen, "store: out of memory");
		vg_store_close(s);
		return -ENOMEM;
	}
	if ((rc = vg_fs_mkdir_p(s->rrd_dir, 0755)) || (rc = vg_fs_mkdir_p(s->journal_dir, 0755))) {
		snprintf(err, errlen, "store: %s: %s", data_dir, strerror(-rc));
		vg_store_close(s);
		return rc;
	}
	s->lock_fd = open(s->journal_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->lock_fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "store: %s: %s", s->journal_dir, strerror(-rc));
		vg_store_close(s);
		return rc;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) == 0) {
		s->owner = 1;
	} else if (errno != EWOULDBLOCK) {
		rc = -errno;
		snprintf(err, errlen, "store: lock %s: %s", s->journal_dir, strerror(-rc));
		vg_store_close(s);
		return rc;
	}
	if (s->owner) {
		char upath[PATH_MAX];
		if ((size_t)snprintf(upath, sizeof(upath), "%s/undo", s->journal_dir) <
		    sizeof(upath))
			s->undo_fd = open(upath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (s->undo_fd >= 0) {
			/* Blocks allocated now: saving a header never needs
			 * space (a full disk must not stop the flushes). */
			if (posix_fallocate(s->undo_fd, 0,
					    (off_t)UNDO_SLOTS * UNDO_SLOT_BYTES) == 0)
				count(&s->stats.headers_restored, (uint64_t)undo_restore(s));
			else {
				close(s->undo_fd);
				s->undo_fd = -1;
			}
		}
		if ((rc = replay(s, err, errlen))) {
			vg_store_close(s);
			return rc;
		}
		if ((rc = pthread_create(&s->flusher, NULL, flusher_main, s))) {
			snprintf(err, errlen, "store: cannot start the storage thread: %s",
				 strerror(rc));
			vg_store_close(s);
			return -rc;
		}
		s->running = 1;
	}
	*out = s;
	return 0;
}

void vg_store_close(struct vg_store *s)
{
	if (!s)
		return;
	if (s->running) {
		pthread_mutex_lock(&s->mu);
		s->stop = 1;
		pthread_cond_signal(&s->work_cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->flusher, NULL);
		s->running = 0;
	}
	if (s->tab) {
		pthread_mutex_lock(&s->mu);
		flush_all_locked(s);
		reclaim(s);
		pthread_mutex_unlock(&s->mu);
	}
	if (s->seg_fd >= 0)
		close(s->seg_fd);
	if (s->undo_fd >= 0) {
		/* Every update finished: a clean store leaves no undo file. */
		char upath[PATH_MAX];
		if ((size_t)snprintf(upath, sizeof(upath), "%s/undo", s->journal_dir) <
		    sizeof(upath))
			unlink(upath);
		close(s->undo_fd);
	}
	if (s->lock_fd >= 0)
		close(s->lock_fd); /* releases the flock */
	for (size_t i = 0; s->tab && i < s->cap; i++) {
		if (!s->tab[i].se)
			continue;
		free(s->tab[i].se->pend);
		free(s->tab[i].se);
	}
	free(s->tab);
	free(s->jbuf);
	free(s->fbuf);
	free(s->scratch);
	pthread_cond_destroy(&s->work_cv);
	pthread_cond_destroy(&s->done_cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* Write the cached values of one series (read-your-writes). Any thread. */
static void flush_one(struct vg_store *s, int rtype, const char *id,
		      const char *metric)
{
	struct series *se;
	struct pend *buf = NULL;
	size_t cap = 0;

	pthread_mutex_lock(&s->mu);
	se = table_find(s, rtype, id, metric,
			key_hash(rtype, vg_fnv1a(VG_FNV_OFFSET, id), metric));
	if (se) {
		while (se->flushing)
			pthread_cond_wait(&s->done_cv, &s->mu);
		if (se->npend)
			flush_series(s, se, &buf, &cap);
	}
	pthread_mutex_unlock(&s->mu);
	free(buf);
}

/* ---- reading -------------------------------------------------------------- */

int vg_cf_parse(const char *s)
{
	if (!s)
		return -EINVAL;
	if (!strcmp(s, "mean") || !strcmp(s, "average") || !strcmp(s, "avg"))
		return VG_CF_AVERAGE;
	if (!strcmp(s, "min"))
		return VG_CF_MIN;
	if (!strcmp(s, "max"))
		return VG_CF_MAX;
	return -EINVAL;
}

void vg_series_free(struct vg_series *s)
{
	if (!s)
		return;
	free(s->points);
	s->points = NULL;
	s->n = 0;
}

struct rra_desc {
	uint32_t res_s;
	time_t cal_start; /* oldest time the archive still covers */
};

/* What rrd_info_r tells about a file: DS kind, last update, and the
 * archives of one consolidation function. */
struct file_desc {
	int kind;
	unsigned long step;
	time_t last_update;
	struct rra_desc rra[32];
	size_t nrra;
};

static int describe(const char *path, const char *cfname, struct file_desc *d)
{
	rrd_info_t *info, *i;
	long cf_of[32], pdp[32], rows[32];
	size_t maxidx = 0;

	memset(d, 0, sizeof(*d));
	for (int k = 0; k < 32; k++)
		cf_of[k] = pdp[k] = rows[k] = -1;
	info = rrd_info_r(path);
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
			d->kind = !strcmp(i->value.u_str, "GAUGE") ? VG_KIND_GAUGE :
				  VG_KIND_COUNTER;
		else if (sscanf(i->key, "rra[%u].%31s", &idx, field) == 2 && idx < 32) {
			if (!strcmp(field, "cf") && i->type == RD_I_STR)
				cf_of[idx] = !strcmp(i->value.u_str, cfname);
			else if (!strcmp(field, "pdp_per_row") && i->type == RD_I_CNT)
				pdp[idx] = (long)i->value.u_cnt;
			else if (!strcmp(field, "rows") && i->type == RD_I_CNT)
				rows[idx] = (long)i->value.u_cnt;
			if (idx + 1 > maxidx)
				maxidx = idx + 1;
		}
	}
	rrd_info_free(info);
	if (!d->step || !d->kind)
		return -EIO;
	for (size_t k = 0; k < maxidx; k++) {
		if (cf_of[k] != 1 || pdp[k] <= 0 || rows[k] <= 0)
			continue;
		struct rra_desc *r = &d->rra[d->nrra++];
		time_t res = (time_t)(pdp[k] * (long)d->step);
		time_t cal_end = d->last_update - d->last_update % res;
		r->res_s = (uint32_t)res;
		r->cal_start = cal_end - res * rows[k];
	}
	return d->nrra ? 0 : -EIO;
}

int vg_store_fetch(struct vg_store *s, int rtype, const char *id,
		   const char *metric, int cf, int64_t start_ms,
		   int64_t end_ms, uint32_t resolution_s, int keep_unknown,
		   struct vg_series *out)
{
	static const char *cfnames[] = {"AVERAGE", "MIN", "MAX"};
	char path[PATH_MAX];
	struct file_desc d;
	struct stat st;
	const struct rra_desc *pick = NULL;
	time_t start, end;
	unsigned long step, ds_cnt = 0;
	char **ds_namv = NULL;
	rrd_value_t *data = NULL;
	int rc;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!s || cf < VG_CF_AVERAGE || cf > VG_CF_MAX || start_ms > end_ms ||
	    start_ms < 0)
		return -EINVAL;
	if ((rc = vg_store_path(s, rtype, id, metric, path, sizeof(path))))
		return rc == -ENAMETOOLONG ? -EINVAL : rc;
	flush_one(s, rtype, id, metric);
	if (stat(path, &st))
		return errno == ENOENT ? -ENOENT : -EIO;
	if ((rc = describe(path, cfnames[cf], &d)))
		return rc;

	start = (time_t)(start_ms / 1000);
	end = (time_t)((end_ms + 999) / 1000);
	if (resolution_s) {
		for (size_t k = 0; k < d.nrra; k++)
			if (d.rra[k].res_s == resolution_s)
				pick = &d.rra[k];
		if (!pick)
			return -EINVAL;
	} else {
		/* Finest archive covering start, else the longest-reaching. */
		for (size_t k = 0; k < d.nrra; k++) {
			const struct rra_desc *r = &d.rra[k];
			if (r->cal_start <= start &&
			    (!pick || pick->cal_start > start || r->res_s < pick->res_s))
				pick = r;
			else if (!pick || (pick->cal_start > start &&
					   r->cal_start < pick->cal_start))
				pick = r;
		}
	}
	out->resolution_s = pick->res_s;
	out->kind = d.kind;
	/* Clamp to what the archive holds, so rrd_fetch_r (which would switch
	 * to another archive for a partial match) reads exactly this one. */
	if (start < pick->cal_start)
		start = pick->cal_start;
	if (start >= end)
		return 0;

	step = pick->res_s;
	rrd_clear_error();
	if (rrd_fetch_r(path, cfnames[cf], &start, &end, &step, &ds_cnt,
			&ds_namv, &data)) {
		rrd_clear_error();
		return -EIO;
	}
	rc = 0;
	if (ds_cnt != 1 || step != pick->res_s) {
		rc = -EIO;
		goto done;
	}
	size_t rows = (size_t)((end - start) / (time_t)step);
	out->points = malloc((rows ? rows : 1) * sizeof(*out->points));
	if (!out->points) {
		rc = -ENOMEM;
		goto done;
	}
	for (size_t k = 0; k < rows; k++) {
		/* Row k covers (start + k*step, start + (k+1)*step]; rrdtool
		 * prints it at the end, we name it by its start. */
		int64_t t = ((int64_t)start + (int64_t)(k * step)) * 1000;
		double v = data[k];
		if (t + (int64_t)step * 1000 <= start_ms || t > end_ms)
			continue;
		if (isnan(v) && !keep_unknown)
			continue;
		out->points[out->n].time_ms = t;
		out->points[out->n].value = v;
		out->n++;
	}
done:
	for (unsigned long k = 0; ds_namv && k < ds_cnt; k++)
		free(ds_namv[k]);
	free(ds_namv);
	free(data);
	if (rc)
		vg_series_free(out);
	return rc;
}
