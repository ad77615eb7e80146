/*
 * fsutil.c — file-system helpers (include/vigie/fsutil.h).
 *
 * vg_fs_mkdir_p walks the path once, creating each prefix that ends at a
 * '/', then the path itself; EEXIST on any component is success, as with
 * `mkdir -p`, so two processes creating the same tree do not race.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "vigie/fsutil.h"

int vg_fs_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = path ? strlen(path) : 0;

	if (len == 0)
		return -EINVAL;
	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) && errno != EEXIST)
		return -errno;
	return 0;
}
