/*
 * fsutil.c — file-system helpers (include/vigie/fsutil.h).
 *
 * vg_fs_mkdir_p walks the path once, creating each prefix that ends at a
 * '/', then the path itself; EEXIST on any component is success, as with
 * `mkdir -p`, so two processes creating the same tree do not race.
 * vg_fs_flock_holder finds who holds a directory's lock (the collector's
 * journal, the agent's spool) by the file's device and inode in
 * /proc/locks, so neither keeps a pid file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "vigie/fsutil.h"
#include "vigie/log.h"

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

int vg_fs_fsync_parent(const char *path)
{
	char dir[PATH_MAX * 2];
	char *sl;
	int fd, rc = 0;

	snprintf(dir, sizeof(dir), "%s", path);
	if (!(sl = strrchr(dir, '/')))
		return 0;
	*sl = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if (fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

int vg_fs_short_of(const char *path, uint64_t need)
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

int vg_fs_short_of_fds(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOMEM || err == ENOBUFS;
}

int vg_fs_raise_nofile(uint64_t *soft, uint64_t *hard)
{
	struct rlimit rl;
	int rc = 0;

	*soft = *hard = 0;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = {rl.rlim_max, rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &up))
			rc = -errno;
		else
			rl = up;
	}
	*soft = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
	*hard = rl.rlim_max == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_max;
	return rc;
}

void vg_fs_raise_nofile_logged(uint64_t low)
{
	uint64_t soft, hard;
	int rc = vg_fs_raise_nofile(&soft, &hard);

	if (rc)
		vg_warn("open files: cannot raise the limit to %llu (%s): %llu; "
			"set LimitNOFILE in the unit (docs/operations.md)",
			(unsigned long long)hard, strerror(-rc), (unsigned long long)soft);
	else
		vg_log(soft < low ? VG_LOG_WARN : VG_LOG_INFO, "open files: limit %llu%s",
		       (unsigned long long)soft,
		       soft < low ? " (low: set LimitNOFILE=65536 in the unit, "
				    "docs/operations.md)"
				  : "");
}

int vg_fs_lock_dir(const char *dir, const char *name, int *fd)
{
	char path[PATH_MAX];
	int rc;

	if (!name) {
		*fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
			*fd = -1;
			return -ENAMETOOLONG;
		}
		*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	}
	if (*fd < 0)
		return -errno;
	if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	rc = errno;
	return rc == EWOULDBLOCK ? -EBUSY : -rc;
}

long vg_fs_flock_holder(const char *path)
{
	struct stat st;
	char line[512], want[96];
	FILE *fp;
	long pid = 0;

	if (stat(path, &st))
		return -errno;
	snprintf(want, sizeof(want), "%02x:%02x:%llu", major(st.st_dev), minor(st.st_dev),
		 (unsigned long long)st.st_ino);
	if (!(fp = fopen("/proc/locks", "re")))
		return -errno;
	while (fgets(line, sizeof(line), fp)) {
		char kind[16], adv[16], mode[16], dev[96];
		long p;
		/* "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF" */
		if (sscanf(line, "%*[^:]: %15s %15s %15s %ld %95s", kind, adv, mode, &p, dev) == 5 &&
		    !strcmp(kind, "FLOCK") && !strcmp(dev, want)) {
			pid = p;
			break;
		}
	}
	fclose(fp);
	return pid;
}

void vg_fs_pid_comm(long pid, char *comm, size_t len)
{
	char path[64];
	FILE *fp;

	if (!len)
		return;
	comm[0] = '\0';
	if (pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	if ((fp = fopen(path, "re"))) {
		if (!fgets(comm, (int)len, fp))
			comm[0] = '\0';
		comm[strcspn(comm, "\n")] = '\0';
		fclose(fp);
	}
}
