/*
 * proc_stall.h — SIGSTOP a daemon and wait until every thread of it is
 * stopped, for tests that stall a real rrdcached (a stall, not a
 * restart). Header-only, no cmocka.
 *
 * The signal stops the threads one after the other, and on a loaded
 * machine a thread woken by a command could still answer it meanwhile,
 * so the wait reads each thread's state in /proc/PID/task/TID/stat
 * until all are 'T' (stopped) or 't' (traced), for up to ~5 s.
 */
#ifndef VIGIE_TEST_PROC_STALL_H
#define VIGIE_TEST_PROC_STALL_H

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

/* 0 once every thread of pid is stopped, -1 if the signal failed or they
 * did not all stop in time. */
static inline int vg_test_stall(pid_t pid)
{
	char dir[64], path[400], buf[512];

	if (kill(pid, SIGSTOP))
		return -1;
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	for (int i = 0; i < 1000; i++) {
		DIR *d = opendir(dir);
		struct dirent *e;
		int all = d != NULL;
		while (d && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s/stat", dir, e->d_name);
			FILE *fp = fopen(path, "r");
			size_t n = fp ? fread(buf, 1, sizeof(buf) - 1, fp) : 0;
			if (fp)
				fclose(fp);
			buf[n] = '\0';
			char *st = strrchr(buf, ')'); /* "pid (comm) S ..." */
			if (!st || st[1] != ' ' || (st[2] != 'T' && st[2] != 't'))
				all = 0;
		}
		if (d)
			closedir(d);
		if (all)
			return 0;
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return -1;
}

#endif
