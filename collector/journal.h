/*
 * journal.h — the store's write-ahead journal (private to the collector
 * core): a directory of segments <id>.vgj of checksummed batch records,
 * appended and fdatasync'ed before a batch is acknowledged.
 *
 * The journal knows nothing of the store: it encodes the samples a caller
 * selects, appends, lists, replays records to a callback and retires
 * segments. Which segment may go when is the caller's policy (the store
 * counts the cached values of each segment). The struct is public so the
 * store embeds it; its fields are the caller's to read under its own lock.
 *
 * Thread-safety: none inside; the caller serialises (the store appends
 * from the receiver thread and retires from one thread at a time).
 */
#ifndef VIGIE_COLLECTOR_JOURNAL_H
#define VIGIE_COLLECTOR_JOURNAL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "vigie/batch.h"

#define VG_JOURNAL_SEG_MAX_BYTES (64u << 20) /* segment rotation */
#define VG_JOURNAL_KEPT_MAX 16               /* *.kept segments on disk at most */

struct vg_journal {
	char dir[PATH_MAX];
	int lock_fd;           /* the directory, flock'ed when owner */
	int owner;             /* holds the lock: may append and replay */
	int seg_fd;            /* active segment, -1 if none */
	uint64_t seg_active;   /* id of the active (or next) segment */
	uint64_t seg_oldest;   /* oldest segment not yet retired */
	uint64_t seg_bytes;    /* size of the active segment */
	uint32_t kept_on_disk; /* *.kept files (found at open + kept since) */
	uint8_t *buf;          /* the record being built */
	size_t cap;
	struct { /* __atomic */
		uint64_t bytes, syncs, kept, kept_dropped;
	} stats;
};

/* Create dir if needed and try to lock it: j->owner = 1 if this process
 * now owns the journal, 0 if another does (nothing else may then be
 * called but close; the caller decides whether that is an error: the
 * store refuses it unless opened beside a running collector,
 * vg_store_open_beside). dir is at most PATH_MAX - 32 bytes. 0 or -errno
 * with a message in err. */
int vg_journal_open(struct vg_journal *j, const char *dir, char *err,
		    size_t errlen);
/* Close the active segment and the lock, free the buffer. Accepts a
 * journal whose open failed (or one with both fds set to -1). */
void vg_journal_close(struct vg_journal *j);

/* Path of segment id. */
void vg_journal_seg_path(const struct vg_journal *j, uint64_t id, char *out,
			 size_t len);

/* Build in j->buf the record of b's samples k with sel[k] != NULL; *len
 * gets its size. 0 or -ENOMEM. */
int vg_journal_encode(struct vg_journal *j, const struct vg_batch *b,
		      void *const *sel, size_t *len);
/* Append the record j->buf[0..len) to segment seg (opened if needed) and
 * fdatasync. On failure the segment is cut back to its last whole record;
 * if that fails too, *rotate = 1: the segment is closed and the caller
 * must move seg_active past it (never append after a torn record).
 * 0, or -EAGAIN whatever the cause (no space, no file descriptor
 * left, no memory, an I/O error): the record is not in the journal, so
 * its batch must not be acknowledged but asked again (RETRY, the agent
 * keeps it). msg gets "<path>: why". */
int vg_journal_append(struct vg_journal *j, uint64_t seg, size_t len,
		      int *rotate, char *msg, size_t msglen);

/* Close the active segment (it stays on disk until retired) and move
 * seg_active to the next one. */
void vg_journal_rotate(struct vg_journal *j);

/* A segment no longer needed: deleted, or, if keep (a value of it could
 * not be written), renamed <id>.kept, which no replay reads (at most
 * VG_JOURNAL_KEPT_MAX of them; more are deleted and counted). */
void vg_journal_retire(struct vg_journal *j, uint64_t id, int keep);

/* The segments left in the directory, oldest first (*ids malloc'd, the
 * caller frees), and seg_active = seg_oldest = the id after every kept
 * one. 0 or -errno with a message in err. */
int vg_journal_scan(struct vg_journal *j, uint64_t **ids, size_t *n,
		    char *err, size_t errlen);
/* The *.vgj segments in the directory, oldest first (*ids malloc'd, the
 * caller frees), changing nothing (the store's re-send of values a
 * storage daemon lost reads them while the receiver appends). 0 or
 * -errno. */
int vg_journal_list(const struct vg_journal *j, uint64_t **ids, size_t *n);
/* Replay segment id: every whole record, in order, as a batch given to
 * take (which must not keep it); a torn or garbled record (a crash
 * mid-append) ends the segment. Stops at take's first error and returns
 * it. *nrec counts the records taken. 0 or -errno. */
int vg_journal_replay(struct vg_journal *j, uint64_t id,
		      int (*take)(void *ctx, const struct vg_batch *b), void *ctx,
		      uint64_t *nrec);

#endif
