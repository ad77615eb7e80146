/*
 * vigie — small file-system helpers every component needs
 * (common/fsutil.c): creating a data directory and its parents, making a
 * rename or link durable, asking for free space.
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

#endif
