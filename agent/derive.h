/*
 * vigie — derived values the agent computes from two consecutive polls.
 *
 * Pure functions on raw values (no state, no I/O, thread-safe). Every
 * function returns 0 and writes *out, or returns a negative errno and
 * leaves *out untouched, in which case the caller emits no sample for the
 * interval:
 *   -ERANGE  a counter went backwards (domain restarted, counter wrapped,
 *            device re-plugged): the interval has no meaningful value;
 *   -EINVAL  an input is missing (NaN), infinite, or dt <= 0;
 *   -ENODATA the value is undefined for the interval (latency with no
 *            completed operation).
 * So a derived value is never negative and never built from a reset.
 * Times are seconds unless a name says otherwise (dt_s, busy_ms).
 */
#ifndef VIGIE_AGENT_DERIVE_H
#define VIGIE_AGENT_DERIVE_H

#include "agent/procfs.h"

/* cur - prev of a monotonic counter. */
int vg_derive_delta(double prev, double cur, double *out);

/* (cur - prev) / dt_s: a per-second rate. */
int vg_derive_rate(double prev, double cur, double dt_s, double *out);

/* Instance CPU utilisation normalised to its vCPUs, in percent:
 * Δcpu_time / (dt_s * vcpus) * 100, clamped to at most 100 (sampling
 * jitter can push a fully busy guest a hair above). vcpus must be > 0. */
int vg_derive_cpu_util(double prev_cpu_s, double cur_cpu_s, double dt_s,
		       double vcpus, double *pct);

/* Process CPU in percent of ONE host CPU (not clamped at 100: a QEMU
 * process with several busy threads legitimately exceeds it). */
int vg_derive_proc_util(double prev_cpu_s, double cur_cpu_s, double dt_s,
			double *pct);

/* Average latency per operation: Δtime / Δops (seconds per op).
 * -ENODATA when no operation completed in the interval. */
int vg_derive_latency(double prev_time_s, double cur_time_s,
		      double prev_ops, double cur_ops, double *lat_s);

/* Average queue length (outstanding requests) by Little's law:
 * Δ(total time spent by all requests) / dt. For a guest disk busy is
 * rd+wr+fl time; for a host disk it is the weighted time of diskstats. */
int vg_derive_queue_length(double prev_busy_s, double cur_busy_s, double dt_s,
			   double *q);

/* Seconds the device was idle during the interval: dt - Δbusy, clamped to
 * [0, dt]. busy is time with at least one request outstanding (diskstats
 * io_ticks); for a guest disk the sum of request times is an upper bound
 * of busy, so the result is a lower bound of idle. */
int vg_derive_idle_time(double prev_busy_s, double cur_busy_s, double dt_s,
			double *idle_s);

/* Host CPU split in percent of all CPU time in the interval. The parts
 * sum to 100 (user excludes nice; irq includes softirq). */
struct vg_cpu_pct {
	double user, nice, system, idle, iowait, irq, steal;
};
int vg_derive_host_cpu(const struct vg_cpu_times *prev,
		       const struct vg_cpu_times *cur, struct vg_cpu_pct *out);

/* QEMU emulation overhead in percent of one host CPU: the process's CPU
 * time not spent running vCPUs, (Δproc_cpu - Δvcpu_sum) / dt * 100,
 * clamped to >= 0 (the two are read a few microseconds apart). */
int vg_derive_overhead(double prev_proc_s, double cur_proc_s,
		       double prev_vcpu_sum_s, double cur_vcpu_sum_s,
		       double dt_s, double *pct);

#endif
