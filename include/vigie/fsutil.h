/*
 * vigie — small file-system helpers every component needs
 * (common/fsutil.c): creating a data directory and its parents.
 */
#ifndef VIGIE_FSUTIL_H
#define VIGIE_FSUTIL_H

#include <sys/types.h>

/* Create path and every missing parent with the given mode (like
 * `mkdir -p`); existing components are fine. 0, -EINVAL (NULL or empty
 * path), -ENAMETOOLONG (PATH_MAX or longer), or the -errno of the mkdir
 * that failed. Thread-safe. */
int vg_fs_mkdir_p(const char *path, mode_t mode);

#endif
