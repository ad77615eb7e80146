/*
 * spool.c — the agent's on-disk spool (agent/spool.h).
 *
 * Design: the directory is the truth; an in-memory index (a ring of
 * sequence numbers, ascending) mirrors it so the sender finds the oldest
 * batch without listing the directory. Writes go tmp -> fsync -> rename
 * -> fsync(dir) outside the lock (they are the slow part); only the index
 * update takes the lock, so the sender is never blocked behind an fsync.
 *
 * Invariants:
 *  - the index holds exactly the seqs of the *.vgb files this process
 *    knows of, strictly ascending, at most max entries;
 *  - next_seq > every seq ever stored; the state file is rewritten after
 *    each put, and at open next_seq = max(state, highest file + 1), so a
 *    crash between the batch rename and the state write loses nothing;
 *  - no file whose name does not parse as 20 digits + ".vgb" is ever read;
 *  - one process at a time owns a spool: an exclusive flock on its "lock"
 *    file, taken before anything is read or cleaned, held until close.
 *    Two agents on one directory would share the stream id and next_seq
 *    and overwrite each other's batch files (and one would remove the
 *    other's writes in progress); the second is refused instead, and the
 *    holder's pid is read from /proc/locks (vg_fs_flock_holder).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/spool.h"
#include "vigie/fsutil.h"

struct vg_spool {
	char *dir;
	int dirfd;
	int lockfd; /* the "lock" file, flock'ed (LOCK_EX) while open */
	uint32_t max;
	uint64_t stream;
	uint64_t next_seq;
	uint64_t dropped;
	uint64_t tmp_counter;
	size_t nrejected;          /* files in rejected/ (bounded) */
	uint64_t rejected_deleted; /* deleted by that bound */
	pthread_mutex_t lock;
	/* ring of seqs, ascending from head */
	uint64_t *ring;
	size_t cap, head, n;
};

void vg_spool_name(uint64_t seq, char *buf, size_t len)
{
	snprintf(buf, len, "%020" PRIu64 ".vgb", seq);
}

static int rejected_scan(struct vg_spool *s, size_t *n, uint64_t **out);

/* Parse "<20 digits>.vgb"; 0 and *seq, or -1. */
static int parse_name(const char *name, uint64_t *seq)
{
	uint64_t v = 0;

	if (strlen(name) != 24 || strcmp(name + 20, ".vgb") != 0)
		return -1;
	for (int i = 0; i < 20; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -1;
		uint64_t d = (uint64_t)(name[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*seq = v;
	return 0;
}

static int fsync_dir(int dirfd)
{
	return fsync(dirfd) == 0 ? 0 : -errno;
}

/* Write buf to dir/name atomically (tmp + fsync + rename + dir fsync). */
static int write_atomic(struct vg_spool *s, int dirfd, const char *name,
			const void *buf, size_t len)
{
	char tmp[64];
	int fd, rc = 0;

	pthread_mutex_lock(&s->lock);
	uint64_t k = ++s->tmp_counter;
	pthread_mutex_unlock(&s->lock);
	snprintf(tmp, sizeof(tmp), ".tmp-%d-%" PRIu64, (int)getpid(), k);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	const char *p = buf;
	size_t left = len;
	while (left) {
		ssize_t w = write(fd, p, left);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		p += w;
		left -= (size_t)w;
	}
	if (!rc && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && !rc)
		rc = -errno;
	if (!rc && renameat(dirfd, tmp, dirfd, name) != 0)
		rc = -errno;
	if (rc) {
		unlinkat(dirfd, tmp, 0);
		return rc;
	}
	return fsync_dir(dirfd);
}

static int write_state(struct vg_spool *s, uint64_t next_seq)
{
	char buf[128];
	int n = snprintf(buf, sizeof(buf), "stream %016" PRIx64 "\nnext_seq %" PRIu64 "\n",
			 s->stream, next_seq);

	return write_atomic(s, s->dirfd, "state", buf, (size_t)n);
}

static int read_state(struct vg_spool *s)
{
	char buf[256];
	int fd = openat(s->dirfd, "state", O_RDONLY | O_CLOEXEC);
	ssize_t r;

	if (fd < 0)
		return -errno;
	r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r <= 0)
		return -EBADMSG;
	buf[r] = '\0';
	uint64_t stream, next;
	if (sscanf(buf, "stream %" SCNx64 " next_seq %" SCNu64, &stream, &next) != 2 ||
	    next == 0)
		return -EBADMSG;
	s->stream = stream;
	s->next_seq = next;
	return 0;
}

/* ---- index (ring) ------------------------------------------------------ */

static uint64_t ring_at(const struct vg_spool *s, size_t i)
{
	return s->ring[(s->head + i) % s->cap];
}

static int ring_push(struct vg_spool *s, uint64_t seq)
{
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 64;
		uint64_t *r = malloc(ncap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		for (size_t i = 0; i < s->n; i++)
			r[i] = ring_at(s, i);
		free(s->ring);
		s->ring = r;
		s->cap = ncap;
		s->head = 0;
	}
	s->ring[(s->head + s->n) % s->cap] = seq;
	s->n++;
	return 0;
}

static uint64_t ring_pop(struct vg_spool *s)
{
	uint64_t v = s->ring[s->head];

	s->head = (s->head + 1) % s->cap;
	s->n--;
	return v;
}

/* Remove seq from anywhere in the ring; 0 or -ENOENT. */
static int ring_remove(struct vg_spool *s, uint64_t seq)
{
	for (size_t i = 0; i < s->n; i++) {
		if (ring_at(s, i) != seq)
			continue;
		for (size_t j = i; j + 1 < s->n; j++)
			s->ring[(s->head + j) % s->cap] = ring_at(s, j + 1);
		s->n--;
		return 0;
	}
	return -ENOENT;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* ---- open / close ------------------------------------------------------ */

static int scan(struct vg_spool *s)
{
	DIR *d = fdopendir(dup(s->dirfd));
	struct dirent *de;
	uint64_t *seqs = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		uint64_t seq;

		if (!strncmp(de->d_name, ".tmp-", 5)) {
			unlinkat(s->dirfd, de->d_name, 0); /* interrupted write */
			continue;
		}
		if (parse_name(de->d_name, &seq))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			uint64_t *p = realloc(seqs, ncap * sizeof(*p));
			if (!p) {
				rc = -ENOMEM;
				break;
			}
			seqs = p;
			cap = ncap;
		}
		seqs[n++] = seq;
	}
	closedir(d);
	if (!rc) {
		if (n)
			qsort(seqs, n, sizeof(*seqs), cmp_u64);
		for (size_t i = 0; i < n && !rc; i++)
			rc = ring_push(s, seqs[i]);
		if (n && seqs[n - 1] >= s->next_seq)
			s->next_seq = seqs[n - 1] + 1;
	}
	free(seqs);
	return rc;
}

int vg_spool_open(const char *dir, uint32_t max_batches, struct vg_spool **out)
{
	struct vg_spool *s;
	int rc;

	if (!dir || !*dir || max_batches == 0)
		return -EINVAL;
	if ((rc = vg_fs_mkdir_p(dir, 0750)))
		return rc;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->dirfd = -1;
	s->lockfd = -1;
	s->max = max_batches;
	s->dir = strdup(dir);
	if (!s->dir) {
		vg_spool_close(s);
		return -ENOMEM;
	}
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		rc = -errno;
		vg_spool_close(s);
		return rc;
	}
	if ((rc = vg_fs_lock_dir(dir, VG_SPOOL_LOCK, &s->lockfd))) {
		vg_spool_close(s);
		return rc;
	}
	if (mkdirat(s->dirfd, "rejected", 0750) != 0 && errno != EEXIST) {
		rc = -errno;
		vg_spool_close(s);
		return rc;
	}
	rc = read_state(s);
	if (rc == -ENOENT || rc == -EBADMSG) {
		/* A new spool (or a state file lost): new stream, so the
		 * collector never confuses these seqs with older ones. */
		if (getrandom(&s->stream, sizeof(s->stream), 0) != sizeof(s->stream)) {
			rc = -EIO;
			vg_spool_close(s);
			return rc;
		}
		s->next_seq = 1;
		rc = 0;
	}
	if (!rc)
		rc = scan(s);
	if (!rc)
		rc = rejected_scan(s, &s->nrejected, NULL);
	if (!rc)
		rc = write_state(s, s->next_seq);
	if (rc) {
		vg_spool_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void vg_spool_close(struct vg_spool *s)
{
	if (!s)
		return;
	if (s->lockfd >= 0)
		close(s->lockfd); /* releases the flock */
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->ring);
	free(s->dir);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

uint64_t vg_spool_stream(const struct vg_spool *s)
{
	return s->stream;
}

uint64_t vg_spool_next_seq(struct vg_spool *s)
{
	pthread_mutex_lock(&s->lock);
	uint64_t v = s->next_seq;
	pthread_mutex_unlock(&s->lock);
	return v;
}

/* ---- put / read / remove ------------------------------------------------ */

int vg_spool_put(struct vg_spool *s, uint64_t seq, const void *buf, size_t len,
		 unsigned *dropped)
{
	char name[32];
	unsigned nd = 0;
	int rc;

	if (dropped)
		*dropped = 0;
	if (!buf || !len || seq < vg_spool_next_seq(s))
		return -EINVAL;
	vg_spool_name(seq, name, sizeof(name));
	if ((rc = write_atomic(s, s->dirfd, name, buf, len)))
		return rc;

	pthread_mutex_lock(&s->lock);
	rc = ring_push(s, seq);
	if (!rc) {
		s->next_seq = seq + 1;
		while (s->n > s->max) {
			char old[32];
			vg_spool_name(ring_pop(s), old, sizeof(old));
			unlinkat(s->dirfd, old, 0);
			nd++;
		}
		s->dropped += nd;
	}
	uint64_t next = s->next_seq;
	pthread_mutex_unlock(&s->lock);
	if (rc) {
		unlinkat(s->dirfd, name, 0);
		return rc;
	}
	if (dropped)
		*dropped = nd;
	/* A failed state write is not fatal: open recomputes next_seq from
	 * the files. */
	write_state(s, next);
	return 0;
}

static int read_file(int dirfd, const char *name, void **buf, size_t *len)
{
	struct stat st;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	char *p;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || st.st_size <= 0 || st.st_size > (64 << 20)) {
		close(fd);
		return -EIO;
	}
	p = malloc((size_t)st.st_size);
	if (!p) {
		close(fd);
		return -ENOMEM;
	}
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, p + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(p);
			close(fd);
			return -EIO;
		}
		got += (size_t)r;
	}
	close(fd);
	*buf = p;
	*len = got;
	return 0;
}

int vg_spool_oldest(struct vg_spool *s, uint64_t *seq, void **buf,
		    size_t *len)
{
	for (;;) {
		char name[32];
		uint64_t q;
		int rc;

		pthread_mutex_lock(&s->lock);
		if (!s->n) {
			pthread_mutex_unlock(&s->lock);
			return -ENOENT;
		}
		q = ring_at(s, 0);
		pthread_mutex_unlock(&s->lock);
		vg_spool_name(q, name, sizeof(name));
		rc = read_file(s->dirfd, name, buf, len);
		if (rc == -ENOENT) {
			/* Dropped by a concurrent put: forget it, retry. */
			pthread_mutex_lock(&s->lock);
			ring_remove(s, q);
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		*seq = q;
		if (rc)
			return rc == -ENOMEM ? rc : -EIO;
		return 0;
	}
}

int vg_spool_remove(struct vg_spool *s, uint64_t seq)
{
	char name[32];
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = ring_remove(s, seq);
	pthread_mutex_unlock(&s->lock);
	if (rc)
		return rc;
	vg_spool_name(seq, name, sizeof(name));
	if (unlinkat(s->dirfd, name, 0) != 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* The seqs of the batch files in rejected/ (ascending, malloc'd into
 * *out, NULL when none) and their count. 0 or -errno. */
static int rejected_scan(struct vg_spool *s, size_t *n, uint64_t **out)
{
	int fd = openat(s->dirfd, "rejected", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	uint64_t *v = NULL, seq;
	size_t cap = 0;
	struct dirent *de;
	DIR *d;

	*n = 0;
	if (out)
		*out = NULL;
	if (fd < 0)
		return -errno;
	if (!(d = fdopendir(fd))) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	while ((de = readdir(d)))
		if (parse_name(de->d_name, &seq) == 0) {
			if (out && *n == cap) {
				uint64_t *g = realloc(v, (cap ? cap * 2 : 128) * sizeof(*v));
				if (!g) {
					free(v);
					closedir(d);
					return -ENOMEM;
				}
				v = g;
				cap = cap ? cap * 2 : 128;
			}
			if (out)
				v[*n] = seq;
			++*n;
		}
	closedir(d);
	if (out) {
		if (v)
			qsort(v, *n, sizeof(*v), cmp_u64);
		*out = v;
	}
	return 0;
}

int vg_spool_reject(struct vg_spool *s, uint64_t seq)
{
	char name[32], dst[64];
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = ring_remove(s, seq);
	pthread_mutex_unlock(&s->lock);
	if (rc)
		return rc;
	vg_spool_name(seq, name, sizeof(name));
	snprintf(dst, sizeof(dst), "rejected/%s", name);
	if (renameat(s->dirfd, name, s->dirfd, dst) != 0)
		return -errno;
	/* only the sender thread rejects: the count needs no lock; one
	 * listing deletes every file past the bound, oldest first */
	uint64_t *seqs = NULL;
	size_t n;
	if (++s->nrejected > VG_SPOOL_REJECTED_MAX &&
	    rejected_scan(s, &n, &seqs) == 0) {
		s->nrejected = n;
		for (size_t i = 0; n - i > VG_SPOOL_REJECTED_MAX; i++) {
			char old[64];
			vg_spool_name(seqs[i], name, sizeof(name));
			snprintf(old, sizeof(old), "rejected/%s", name);
			if (unlinkat(s->dirfd, old, 0) == 0 || errno == ENOENT) {
				s->nrejected--;
				__atomic_add_fetch(&s->rejected_deleted, 1, __ATOMIC_RELAXED);
			}
		}
		free(seqs);
	}
	return fsync_dir(s->dirfd);
}

uint64_t vg_spool_rejected_deleted(struct vg_spool *s)
{
	return __atomic_load_n(&s->rejected_deleted, __ATOMIC_RELAXED);
}

size_t vg_spool_count(struct vg_spool *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->n;
	pthread_mutex_unlock(&s->lock);
	return n;
}

uint64_t vg_spool_dropped(struct vg_spool *s)
{
	pthread_mutex_lock(&s->lock);
	uint64_t n = s->dropped;
	pthread_mutex_unlock(&s->lock);
	return n;
}
