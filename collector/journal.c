/*
 * journal.c — the store's write-ahead journal (collector/journal.h).
 *
 * Why. An agent's batch is acknowledged once its values are durable, but
 * the store writes RRD files later, many timestamps per call (write-
 * behind). The journal is what makes the acknowledgement true in between:
 * one append + fdatasync per batch, replayed after a crash.
 *
 * Design. A directory of segments (<id>.vgj, rotated at
 * VG_JOURNAL_SEG_MAX_BYTES), each a sequence of records [u32 length]
 * [u32 version][u64 checksum][payload: the batch's accepted samples]. The
 * caller decides when a segment may go (the store: once no cached value
 * of it is left and the backend synced); a segment with a value that
 * could not be written is kept as <id>.kept for the operator instead.
 * One process owns a journal: flock on its directory (vg_fs_lock_dir).
 * Who holds it is read from /proc/locks (vg_fs_flock_holder): no pid
 * file to go stale.
 *
 * Invariants:
 *  - a record is appended whole or cut back off (ftruncate); when it
 *    cannot be cut, nothing is appended after it (the caller rotates), so
 *    a replay stops only at the torn tail of a segment;
 *  - a new segment's name is durable (fsync of the directory) before its
 *    first record is acknowledged;
 *  - new segments are numbered after every kept one, so a segment kept
 *    later never replaces an older kept one;
 *  - the payload is native byte order: a journal never leaves its host.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vigie/fsutil.h"
#include "vigie/hash.h"
#include "vigie/name.h"
#include "collector/journal.h"

#define JOURNAL_VERSION 1

struct jhdr {
	uint32_t len; /* payload bytes */
	uint32_t version;
	uint64_t sum; /* vg_checksum64(payload) */
};

static void count(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static void note(char *msg, size_t msglen, const char *path, const char *what)
{
	size_t len = strlen(path);

	if (msg && msglen) /* the tail of a long path names the series */
		snprintf(msg, msglen, "%.300s: %.200s",
			 len > 300 ? path + len - 300 : path, what);
}

int vg_journal_open(struct vg_journal *j, const char *dir, char *err,
		    size_t errlen)
{
	int rc;

	memset(j, 0, sizeof(*j));
	j->lock_fd = -1;
	j->seg_fd = -1;
	if ((size_t)snprintf(j->dir, sizeof(j->dir), "%s", dir) >= sizeof(j->dir) - 32) {
		snprintf(err, errlen, "store: data directory path too long");
		return -ENAMETOOLONG;
	}
	if ((rc = vg_fs_mkdir_p(j->dir, 0755))) {
		snprintf(err, errlen, "store: %s: %s", j->dir, strerror(-rc));
		return rc;
	}
	/* held by another store: this one reads only (owner 0) */
	rc = vg_fs_lock_dir(j->dir, NULL, &j->lock_fd);
	if (!rc) {
		j->owner = 1;
	} else if (rc != -EBUSY) {
		snprintf(err, errlen, j->lock_fd < 0 ? "store: %s: %s" : "store: lock %s: %s",
			 j->dir, strerror(-rc));
		return rc;
	}
	return 0;
}

void vg_journal_close(struct vg_journal *j)
{
	if (!j)
		return;
	if (j->seg_fd >= 0)
		close(j->seg_fd);
	if (j->lock_fd >= 0)
		close(j->lock_fd); /* releases the flock */
	j->seg_fd = j->lock_fd = -1;
	free(j->buf);
	j->buf = NULL;
	j->cap = 0;
}

void vg_journal_seg_path(const struct vg_journal *j, uint64_t id, char *out,
			 size_t len)
{
	/* dir is at most PATH_MAX - 32 bytes (vg_journal_open) */
	if ((size_t)snprintf(out, len, "%s/%016llx.vgj", j->dir,
			     (unsigned long long)id) >= len)
		out[0] = '\0';
}

static int reserve(struct vg_journal *j, size_t need)
{
	if (need <= j->cap)
		return 0;
	size_t ncap = j->cap ? j->cap : 65536;
	while (ncap < need)
		ncap *= 2;
	uint8_t *n = realloc(j->buf, ncap);
	if (!n)
		return -ENOMEM;
	j->buf = n;
	j->cap = ncap;
	return 0;
}

/* Payload: u32 nres, then per resource u8 type, u16 id length, id,
 * i64 time_ms, u32 nsamples, and per sample u8 kind, u8 metric length,
 * metric, f64 value.
 *
 * The arrival marker (vg_batch.arrived: the batch's host came from
 * another collector). A resource entry with no samples, which no
 * record held before (a resource without selected samples is left
 * out), first in the record: the first selected resource's type, id and
 * time with nsamples 0. The record's version stays 1, so a journal
 * without markers is what it was, and an older collector reading a
 * marked record takes the marker for a resource without samples, which
 * it skips: a downgrade replays every value, without the marker. */
#define PUT(p, v)                             \
	do {                                  \
		__typeof__(v) v_ = (v);       \
		memcpy((p), &v_, sizeof(v_)); \
		(p) += sizeof(v_);            \
	} while (0)

int vg_journal_encode(struct vg_journal *j, const struct vg_batch *b,
		      void *const *sel, size_t *len)
{
	size_t need = sizeof(struct jhdr) + 4;
	uint32_t nres = 0;
	int mark = b->arrived; /* the arrival marker still to write */

	for (size_t i = 0; i < b->nres; i++) {
		const struct vg_resource *r = &b->res[i];
		need += (b->arrived ? 2 : 1) * (15 + strlen(r->id)); /* the marker's too */
		for (uint32_t k = 0; k < r->nsamples; k++)
			if (sel[r->first_sample + k])
				need += 10 + strlen(b->samples[r->first_sample + k].metric);
	}
	if (reserve(j, need))
		return -ENOMEM;
	uint8_t *p = j->buf + sizeof(struct jhdr), *pn = p;
	p += 4;
	for (size_t i = 0; i < b->nres; i++) {
		const struct vg_resource *r = &b->res[i];
		uint32_t n = 0;
		for (uint32_t k = 0; k < r->nsamples; k++)
			n += sel[r->first_sample + k] != NULL;
		if (!n)
			continue;
		uint16_t idl = (uint16_t)strlen(r->id);
		if (mark) { /* the arrival marker: r's entry, no samples */
			PUT(p, (uint8_t)r->type);
			PUT(p, idl);
			memcpy(p, r->id, idl);
			p += idl;
			PUT(p, (int64_t)r->time_ms);
			PUT(p, (uint32_t)0);
			nres++;
			mark = 0;
		}
		nres++;
		PUT(p, (uint8_t)r->type);
		PUT(p, idl);
		memcpy(p, r->id, idl);
		p += idl;
		PUT(p, (int64_t)r->time_ms);
		PUT(p, n);
		for (uint32_t k = 0; k < r->nsamples; k++) {
			const struct vg_sample *smp = &b->samples[r->first_sample + k];
			if (!sel[r->first_sample + k])
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
		.sum = vg_checksum64(pn, (size_t)(p - pn)),
	};
	memcpy(j->buf, &h, sizeof(h));
	*len = (size_t)(p - j->buf);
	return 0;
}

int vg_journal_append(struct vg_journal *j, uint64_t seg, size_t len,
		      int *rotate, char *msg, size_t msglen)
{
	char path[PATH_MAX];
	size_t done = 0;
	int e;

	*rotate = 0;
	if (j->seg_fd < 0) {
		vg_journal_seg_path(j, seg, path, sizeof(path));
		j->seg_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
		if (j->seg_fd < 0) {
			e = errno;
			note(msg, msglen, path, strerror(e));
			return -EAGAIN; /* nothing appended: the batch waits */
		}
		j->seg_bytes = 0;
		fsync(j->lock_fd); /* the new name is durable */
	}
	while (done < len) {
		ssize_t n = write(j->seg_fd, j->buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			e = n < 0 ? errno : EIO;
			goto fail;
		}
		done += (size_t)n;
	}
	if (fdatasync(j->seg_fd)) {
		e = errno;
		goto fail;
	}
	j->seg_bytes += len;
	count(&j->stats.bytes, len);
	count(&j->stats.syncs, 1);
	return 0;
fail:
	vg_journal_seg_path(j, seg, path, sizeof(path));
	note(msg, msglen, path, strerror(e));
	if (ftruncate(j->seg_fd, (off_t)j->seg_bytes)) {
		/* Cannot cut the torn record off: never append after it. A
		 * new segment is started; replay stops at the torn record of
		 * this one, whose later part is empty. */
		close(j->seg_fd);
		j->seg_fd = -1;
		*rotate = 1;
	}
	return -EAGAIN;
}

void vg_journal_rotate(struct vg_journal *j)
{
	if (j->seg_fd >= 0)
		close(j->seg_fd);
	j->seg_fd = -1;
	j->seg_active++;
}

void vg_journal_retire(struct vg_journal *j, uint64_t id, int keep)
{
	char path[PATH_MAX], kept[PATH_MAX];

	vg_journal_seg_path(j, id, path, sizeof(path));
	if (keep && j->kept_on_disk >= VG_JOURNAL_KEPT_MAX) {
		/* Bounded: a file that stays unwritable must not fill the disk
		 * with kept segments (the counter and the log say so). */
		count(&j->stats.kept_dropped, 1);
		keep = 0;
	}
	if (keep && (size_t)snprintf(kept, sizeof(kept), "%s/%016llx.kept", j->dir, (unsigned long long)id) < sizeof(kept) &&
	    rename(path, kept) == 0) {
		count(&j->stats.kept, 1);
		j->kept_on_disk++;
		return;
	}
	unlink(path);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The segment ids in dir: its *.vgj files, oldest first, in *ids_out
 * (malloc'd, the caller frees) and *n_out. With kept: its *.kept files
 * counted in *kept, and *next_kept = the id after the highest of them (left
 * alone when there is none). 0, or -errno with a message in err (if not
 * NULL). */
static int read_segments(const char *dir, uint64_t **ids_out, size_t *n_out, uint32_t *kept,
			 uint64_t *next_kept, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t *ids = NULL;
	size_t n = 0, cap = 0;

	*ids_out = NULL;
	*n_out = 0;
	if (!d) {
		int rc = -errno;
		if (err)
			snprintf(err, errlen, "store: %s: %s", dir, strerror(-rc));
		return rc;
	}
	while ((e = readdir(d))) {
		char *end;
		unsigned long long id = strtoull(e->d_name, &end, 16);
		if (kept && strlen(e->d_name) == 21 && !strcmp(end, ".kept")) {
			if (id + 1 > *next_kept)
				*next_kept = id + 1;
			(*kept)++;
			continue;
		}
		if (strlen(e->d_name) != 20 || strcmp(end, ".vgj"))
			continue;
		if (n == cap) {
			uint64_t *x = realloc(ids, (cap = cap ? cap * 2 : 16) * sizeof(*x));
			if (!x) {
				closedir(d);
				free(ids);
				if (err)
					snprintf(err, errlen, "store: out of memory");
				return -ENOMEM;
			}
			ids = x;
		}
		ids[n++] = id;
	}
	closedir(d);
	if (n)
		qsort(ids, n, sizeof(*ids), cmp_u64);
	*ids_out = ids;
	*n_out = n;
	return 0;
}

int vg_journal_scan(struct vg_journal *j, uint64_t **ids_out, size_t *n_out,
		    char *err, size_t errlen)
{
	uint64_t next_id = 0;
	int rc = read_segments(j->dir, ids_out, n_out, &j->kept_on_disk, &next_id, err, errlen);

	if (!rc)
		j->seg_active = j->seg_oldest = next_id;
	return rc;
}

int vg_journal_list(const struct vg_journal *j, uint64_t **ids_out, size_t *n_out)
{
	return read_segments(j->dir, ids_out, n_out, NULL, NULL, NULL, 0);
}

#define GET(p, end, v)                                 \
	do {                                           \
		if ((size_t)((end) - (p)) < sizeof(v)) \
			goto bad;                      \
		memcpy(&(v), (p), sizeof(v));          \
		(p) += sizeof(v);                      \
	} while (0)

/* Rebuild the batch of one record. NULL if malformed. */
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
		if (!n) { /* the arrival marker (vg_journal_encode) */
			b->arrived = 1;
			continue;
		}
		if (!vg_batch_resource(b, type, id, NULL, NULL, t))
			goto bad;
		for (uint32_t k = 0; k < n; k++) {
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

int vg_journal_replay(struct vg_journal *j, uint64_t id,
		      int (*take)(void *ctx, const struct vg_batch *b), void *ctx,
		      uint64_t *nrec)
{
	char path[PATH_MAX];
	struct stat st;
	uint8_t *buf = NULL;
	size_t off = 0, got = 0;
	int fd, rc = 0;

	vg_journal_seg_path(j, id, path, sizeof(path));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
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
		    vg_checksum64(buf + off + sizeof(h), h.len) != h.sum)
			break;
		b = decode_record(buf + off + sizeof(h), buf + off + sizeof(h) + h.len);
		if (!b)
			break;
		rc = take(ctx, b);
		vg_batch_free(b);
		if (rc)
			break;
		(*nrec)++;
		off += sizeof(h) + h.len;
	}
	free(buf);
	return rc;
}
