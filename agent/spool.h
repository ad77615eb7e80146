/*
 * vigie — the agent's on-disk spool of encoded batches awaiting an ack.
 *
 * Layout of the spool directory:
 *   state                      "stream <16 hex digits>\nnext_seq <n>\n"
 *   lock                       empty; flock'ed by the process that owns
 *                              the spool (one agent per directory)
 *   00000000000000000042.vgb   one encoded batch (vg_wire_encode), named
 *                              by its sequence number, 20 digits
 *   .tmp-*                     a write in progress (ignored, removed at open)
 *   rejected/<seq>.vgb         batches the collector rejected: kept for the
 *                              operator (the newest VG_SPOOL_REJECTED_MAX),
 *                              never resent
 * Every file is written to a temporary name, fsync'd, then renamed, and
 * the directory is fsync'd: after a crash or kill -9 a batch file is
 * either complete or absent, never partial.
 *
 * The stream id is random (64 bits) and created with the spool; the
 * sequence continues across restarts (next_seq in state, or one past the
 * highest spooled file if that is higher). The spool holds at most
 * max_batches files: putting one more drops the OLDEST, and the drop is
 * counted (the caller logs it).
 *
 * Thread-safe: one writer (the poll loop) and one reader (the sender) may
 * use a spool concurrently; an internal mutex guards the index.
 */
#ifndef VIGIE_AGENT_SPOOL_H
#define VIGIE_AGENT_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct vg_spool;

#define VG_SPOOL_LOCK "lock"

/* Open (creating if needed) the spool at dir, lock it (an exclusive
 * flock on dir/VG_SPOOL_LOCK, held until vg_spool_close), scan it (oldest
 * first) and clean temporary files. max_batches >= 1. 0, -EINVAL,
 * -ENOMEM, -EBUSY when another open spool (this process's or another's)
 * holds the lock: vg_fs_flock_holder on dir/VG_SPOOL_LOCK names its pid;
 * or a negative errno from the file system (-EACCES, -ENOTDIR...). */
int vg_spool_open(const char *dir, uint32_t max_batches, struct vg_spool **out);

/* Close and free. Files stay on disk. Accepts NULL. */
void vg_spool_close(struct vg_spool *s);

uint64_t vg_spool_stream(const struct vg_spool *s);

/* The sequence number the next put must use (1 for a new spool). */
uint64_t vg_spool_next_seq(struct vg_spool *s);

/* Store one encoded batch with sequence seq (>= vg_spool_next_seq();
 * next_seq becomes seq + 1). If the spool is full the oldest batches are
 * deleted first; *dropped (may be NULL) receives how many. 0, -EINVAL
 * (seq too small, empty buffer), or a file-system error (-ENOSPC...), in
 * which case nothing was stored and next_seq is unchanged. */
int vg_spool_put(struct vg_spool *s, uint64_t seq, const void *buf, size_t len,
		 unsigned *dropped);

/* Read the oldest batch: *seq, and a malloc'd copy in *buf of *len bytes
 * (caller frees). -ENOENT if the spool is empty; -EIO if the file cannot
 * be read (it stays, *seq names it, and the caller may vg_spool_reject
 * it); -ENOMEM. */
int vg_spool_oldest(struct vg_spool *s, uint64_t *seq, void **buf,
		    size_t *len);

/* Delete batch seq (acknowledged). 0, or -ENOENT if it is not spooled
 * (e.g. it was dropped meanwhile). */
int vg_spool_remove(struct vg_spool *s, uint64_t seq);

/* rejected/ keeps the newest this many batches: a refusal that lasts
 * (a collector refusing every batch as stale, or too big) moved one batch
 * per poll there, for ever, until the compute host's disk was full. */
#define VG_SPOOL_REJECTED_MAX 100

/* Move batch seq to rejected/, then delete the oldest there beyond
 * VG_SPOOL_REJECTED_MAX (counted: vg_spool_rejected_deleted). 0 or
 * -ENOENT / file-system error. */
int vg_spool_reject(struct vg_spool *s, uint64_t seq);
/* Batches deleted from rejected/ by that bound since open. */
uint64_t vg_spool_rejected_deleted(struct vg_spool *s);

/* Batches currently spooled; batches dropped since open. */
size_t vg_spool_count(struct vg_spool *s);
uint64_t vg_spool_dropped(struct vg_spool *s);

/* File name of batch seq ("%020llu.vgb") into buf (>= 25 bytes). */
void vg_spool_name(uint64_t seq, char *buf, size_t len);

#endif
