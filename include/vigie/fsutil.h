/*
 * vigie — small file-system helpers every component needs
 * (common/fsutil.c): creating a data directory and its parents, making a
 * rename or link durable, asking for free space, the open-file limit,
 * taking a directory's lock and naming its holder.
 */
#ifndef VIGIE_FSUTIL_H
#define VIGIE_FSUTIL_H

#include <stdint.h>
#include <sys/types.h>

/* Create path and every missing parent with the given mode (like
 * `mkdir -p`); existing components are fine. 0, -EINVAL (NULL or empty
 * path), -ENAMETOOLONG (PATH_MAX or longer), or the -errno of the mkdir
 * that failed. Thread-safe. */
int vg_fs_mkdir_p(const char *path, mode_t mode);

/* fsync the directory holding path (what makes a rename, link or unlink
 * in it durable). 0 (also for a path without '/': nothing to name) or
 * -errno. */
int vg_fs_fsync_parent(const char *path);

/* Whether the file system holding path has fewer than need bytes free
 * for an unprivileged writer (1), or enough, or cannot tell (0). */
int vg_fs_short_of(const char *path, uint64_t need);

/* Whether err (a positive errno) is a shortage that passes: no file
 * descriptor left in the process (EMFILE) or the system (ENFILE), no
 * memory (ENOMEM, ENOBUFS). A write that failed so is tried again later,
 * never counted as a value lost. */
int vg_fs_short_of_fds(int err);

/* Raise the soft limit of open files (RLIMIT_NOFILE) to the hard one.
 * *soft and *hard get the limits in force after it (0 when unknown).
 * 0, or the -errno of setrlimit (the soft limit is then unchanged: a
 * systemd unit that filters @resources refuses it, LimitNOFILE sets
 * it there). */
int vg_fs_raise_nofile(uint64_t *soft, uint64_t *hard);

/* vg_fs_raise_nofile, logged once: a warning when it cannot be raised,
 * or when the limit in force is below low (0: never); else the limit as
 * information. The daemons call it at start. */
void vg_fs_raise_nofile_logged(uint64_t low);

/* Take the lock of a directory that one process at a time owns: an
 * exclusive flock, not waited for, on the directory itself (name NULL)
 * or on the file name in it (created 0640 if missing). The lock lives
 * as long as *fd, which stays open once the open succeeded, whatever
 * the answer (the caller closes it): vg_fs_flock_holder names the
 * holder. 0: locked; -EBUSY: another process holds it; else the -errno
 * of the open (*fd -1) or of the flock. The agent's spool and the
 * collector's journal use it. */
int vg_fs_lock_dir(const char *dir, const char *name, int *fd);

/* The pid holding a flock on path (a file or a directory), read from
 * /proc/locks: no pid file to go stale. A pid of another pid namespace
 * is as the kernel shows it. 0 if none holds one, or -errno (-ENOENT: no
 * such path; /proc/locks unreadable). Thread-safe. */
long vg_fs_flock_holder(const char *path);

/* The name of process pid (/proc/<pid>/comm) in comm, or "" when it
 * cannot be read. Thread-safe. */
void vg_fs_pid_comm(long pid, char *comm, size_t len);

#endif
