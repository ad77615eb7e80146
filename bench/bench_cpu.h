/*
 * bench_cpu.h — the CPU time the benchmarks report: this process's own
 * (getrusage) and another process's, a daemon the benchmark started
 * (utime + stime from /proc/<pid>/stat), and a daemon's context switches
 * (its threads' sleeps: the cost of hand-offs between them, which CPU
 * time under a shared machine's load shows only through noise).
 * Header-only: every C file of bench/ is
 * a program of its own.
 */
#ifndef VIGIE_BENCH_CPU_H
#define VIGIE_BENCH_CPU_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* User + system CPU seconds of this process so far. */
static inline double bench_self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of process pid in seconds, and its state letter into
 * *state when state is not NULL; -1 if pid <= 0 or the process is gone. */
static inline double bench_proc_cpu_s(long pid, char *state)
{
	char path[64], buf[1024], *p, s;
	unsigned long ut, st;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if (!(f = fopen(path, "r")))
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* fields after the command name's ")": state(3) ... utime(14) stime(15) */
	if (!(p = strrchr(buf, ')')) ||
	    sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		   &s, &ut, &st) != 3)
		return -1;
	if (state)
		*state = s;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The same, 0 when unknown (a sum of several processes' times). */
static inline double bench_proc_cpu_or0(long pid)
{
	double c = bench_proc_cpu_s(pid, NULL);

	return c < 0 ? 0 : c;
}

/* Context switches so far of the threads of process pid alive now, summed
 * from /proc/<pid>/task/<tid>/status: voluntary (a thread went to sleep:
 * waiting for a lock, a condition variable, I/O) into *vol, involuntary
 * (preempted) into *invol; both 0 when unknown. Threads that already
 * ended are not counted: read it while the threads of interest live. */
static inline void bench_proc_ctxsw(long pid, unsigned long long *vol,
				    unsigned long long *invol)
{
	char path[96], line[256];
	struct dirent *de;
	DIR *dir;

	*vol = *invol = 0;
	if (pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%ld/task", pid);
	if (!(dir = opendir(path)))
		return;
	while ((de = readdir(dir))) {
		FILE *f;
		unsigned long long v;
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/task/%.20s/status", pid, de->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1)
				*vol += v;
			else if (sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v) == 1)
				*invol += v;
		}
		fclose(f);
	}
	closedir(dir);
}

#endif
