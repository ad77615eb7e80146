/*
 * bench_cpu.h — the CPU and wall time the benchmarks report: this process's own
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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Wall-clock seconds on CLOCK_MONOTONIC, for the elapsed times that go
 * with the CPU times below. */
static inline double bench_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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
/* /proc/<pid>/stat read into buf: a pointer to the fields after the
 * command name's ")" (state, the third field, first), or NULL if pid <= 0
 * or the process is gone. */
static inline const char *bench_proc_stat(long pid, char *buf, size_t len)
{
	char path[64], *p;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return NULL;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if (!(f = fopen(path, "r")))
		return NULL;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	return (p = strrchr(buf, ')')) && p[1] == ' ' ? p + 2 : NULL;
}

static inline double bench_proc_cpu_s(long pid, char *state)
{
	char buf[1024], s;
	const char *p;
	unsigned long ut, st;

	/* state(3) ... utime(14) stime(15) */
	if (!(p = bench_proc_stat(pid, buf, sizeof(buf))) ||
	    sscanf(p, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
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

/* A server's whole CPU so far, in seconds: process pid's utime + stime +
 * cutime + cstime (its own, and its exited children's once it reaped
 * them) plus the utime + stime of its live children, as
 * /proc/<pid>/task/<pid>/children lists them. For a PostgreSQL
 * postmaster that is every backend and auxiliary process; a child that
 * exits between the two reads is missed (its microseconds), never
 * counted twice. -1 if pid <= 0 or the process is gone. */
static inline double bench_tree_cpu_s(long pid)
{
	char path[96], buf[1024];
	const char *p;
	unsigned long ut, st;
	long cut, cst;
	double t;
	FILE *f;

	if (!(p = bench_proc_stat(pid, buf, sizeof(buf))) ||
	    sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %ld %ld",
		   &ut, &st, &cut, &cst) != 4)
		return -1;
	t = (double)(ut + st + (unsigned long)cut + (unsigned long)cst) /
	    (double)sysconf(_SC_CLK_TCK);
	snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children", pid, pid);
	if ((f = fopen(path, "r"))) {
		long c;
		while (fscanf(f, "%ld", &c) == 1)
			t += bench_proc_cpu_or0(c);
		fclose(f);
	}
	return t;
}

/* Context switches of a daemon's threads over a window, voluntary (a
 * thread went to sleep: waiting for a lock, a condition variable, I/O)
 * and involuntary (preempted), from /proc/<pid>/task/<tid>/status. A
 * thread's counts vanish when it ends (a connection's thread when the
 * client closes it), so a sampler thread reads them every 100 ms from
 * bench_csw_start to bench_csw_stop and keeps each thread's last reading:
 * a thread that ends inside the window loses at most its last 100 ms. A
 * thread born inside the window counts from 0. */
#define BENCH_CSW_THREADS 512
struct bench_csw {
	long pid[4];
	int npid, stop;
	size_t n;
	struct {
		long tid;
		unsigned long long base_v, base_iv, v, iv;
	} t[BENCH_CSW_THREADS];
	pthread_t th;
	pthread_mutex_t mu;
};

static inline void bench_csw_scan(struct bench_csw *c, int first)
{
	char path[96], line[256];
	struct dirent *de;

	for (int p = 0; p < c->npid; p++) {
		DIR *dir;
		snprintf(path, sizeof(path), "/proc/%ld/task", c->pid[p]);
		if (!(dir = opendir(path)))
			continue;
		while ((de = readdir(dir))) {
			unsigned long long v = 0, iv = 0, x;
			long tid = atol(de->d_name);
			size_t i;
			FILE *f;
			if (tid <= 0)
				continue;
			snprintf(path, sizeof(path), "/proc/%ld/task/%ld/status", c->pid[p], tid);
			if (!(f = fopen(path, "r")))
				continue;
			while (fgets(line, sizeof(line), f)) {
				if (sscanf(line, "voluntary_ctxt_switches: %llu", &x) == 1)
					v = x;
				else if (sscanf(line, "nonvoluntary_ctxt_switches: %llu", &x) == 1)
					iv = x;
			}
			fclose(f);
			pthread_mutex_lock(&c->mu);
			for (i = 0; i < c->n && c->t[i].tid != tid; i++)
				;
			if (i == c->n && c->n < BENCH_CSW_THREADS) {
				c->t[i].tid = tid;
				c->t[i].base_v = first ? v : 0;
				c->t[i].base_iv = first ? iv : 0;
				c->n++;
			}
			if (i < c->n) {
				c->t[i].v = v;
				c->t[i].iv = iv;
			}
			pthread_mutex_unlock(&c->mu);
		}
		closedir(dir);
	}
}

static inline void *bench_csw_main(void *arg)
{
	struct bench_csw *c = arg;
	struct timespec ts = {0, 100 * 1000 * 1000};

	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		nanosleep(&ts, NULL);
		bench_csw_scan(c, 0);
	}
	return NULL;
}

/* Start counting the switches of the processes pids[0..npid) (at most 4;
 * npid 0: nothing counted). */
static inline void bench_csw_start(struct bench_csw *c, const long *pids, int npid)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	for (int i = 0; i < npid && i < 4; i++)
		c->pid[c->npid++] = pids[i];
	if (!c->npid)
		return;
	bench_csw_scan(c, 1);
	if (pthread_create(&c->th, NULL, bench_csw_main, c))
		c->npid = 0;
}

/* Stop, and the switches counted since the start. */
static inline void bench_csw_stop(struct bench_csw *c, unsigned long long *vol,
				  unsigned long long *invol)
{
	*vol = *invol = 0;
	if (!c->npid)
		return;
	__atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
	pthread_join(c->th, NULL);
	bench_csw_scan(c, 0);
	for (size_t i = 0; i < c->n; i++) {
		*vol += c->t[i].v - c->t[i].base_v;
		*invol += c->t[i].iv - c->t[i].base_iv;
	}
	pthread_mutex_destroy(&c->mu);
}

#endif
