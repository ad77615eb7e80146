/*
 * derive.c — values computed from two consecutive polls
 * (agent/derive.h).
 *
 * Design: every function checks its inputs (finite, dt > 0) and the
 * direction of every counter before dividing, so the callers can feed it
 * raw values without pre-checks and simply skip the sample on error.
 *
 * Invariant: no function ever produces a negative, NaN or infinite value,
 * and none produces a value from a counter that went backwards.
 */
#include <errno.h>
#include <math.h>

#include "agent/derive.h"

static int ok(double v)
{
	return isfinite(v);
}

int vg_derive_delta(double prev, double cur, double *out)
{
	if (!ok(prev) || !ok(cur) || prev < 0 || cur < 0)
		return -EINVAL;
	if (cur < prev)
		return -ERANGE;
	*out = cur - prev;
	return 0;
}

int vg_derive_rate(double prev, double cur, double dt_s, double *out)
{
	double d;
	int rc;

	if (!ok(dt_s) || dt_s <= 0)
		return -EINVAL;
	if ((rc = vg_derive_delta(prev, cur, &d)))
		return rc;
	*out = d / dt_s;
	return 0;
}

int vg_derive_cpu_util(double prev_cpu_s, double cur_cpu_s, double dt_s,
		       double vcpus, double *pct)
{
	double r;
	int rc;

	if (!ok(vcpus) || vcpus <= 0)
		return -EINVAL;
	if ((rc = vg_derive_rate(prev_cpu_s, cur_cpu_s, dt_s, &r)))
		return rc;
	r = r / vcpus * 100.0;
	*pct = r > 100.0 ? 100.0 : r;
	return 0;
}

int vg_derive_proc_util(double prev_cpu_s, double cur_cpu_s, double dt_s,
			double *pct)
{
	double r;
	int rc;

	if ((rc = vg_derive_rate(prev_cpu_s, cur_cpu_s, dt_s, &r)))
		return rc;
	*pct = r * 100.0;
	return 0;
}

int vg_derive_latency(double prev_time_s, double cur_time_s,
		      double prev_ops, double cur_ops, double *lat_s)
{
	double dtime, dops;
	int rc;

	if ((rc = vg_derive_delta(prev_time_s, cur_time_s, &dtime)) ||
	    (rc = vg_derive_delta(prev_ops, cur_ops, &dops)))
		return rc;
	if (dops <= 0)
		return -ENODATA;
	*lat_s = dtime / dops;
	return 0;
}

int vg_derive_queue_length(double prev_busy_s, double cur_busy_s, double dt_s,
			   double *q)
{
	return vg_derive_rate(prev_busy_s, cur_busy_s, dt_s, q);
}

int vg_derive_idle_time(double prev_busy_s, double cur_busy_s, double dt_s,
			double *idle_s)
{
	double d;
	int rc;

	if (!ok(dt_s) || dt_s <= 0)
		return -EINVAL;
	if ((rc = vg_derive_delta(prev_busy_s, cur_busy_s, &d)))
		return rc;
	double idle = dt_s - d;
	*idle_s = idle < 0 ? 0 : idle;
	return 0;
}

int vg_derive_host_cpu(const struct vg_cpu_times *prev,
		       const struct vg_cpu_times *cur, struct vg_cpu_pct *out)
{
	const uint64_t p[8] = {prev->user, prev->nice, prev->system, prev->idle,
			       prev->iowait, prev->irq, prev->softirq, prev->steal};
	const uint64_t c[8] = {cur->user, cur->nice, cur->system, cur->idle,
			       cur->iowait, cur->irq, cur->softirq, cur->steal};
	double d[8], total = 0;

	for (int i = 0; i < 8; i++) {
		/* iowait may decrease on some kernels (it is an estimate
		 * that can be corrected downwards): treat as 0, not reset. */
		if (c[i] < p[i]) {
			if (i == 4) {
				d[i] = 0;
				continue;
			}
			return -ERANGE;
		}
		d[i] = (double)(c[i] - p[i]);
		total += d[i];
	}
	if (total <= 0)
		return -EINVAL;
	out->user = d[0] / total * 100.0;
	out->nice = d[1] / total * 100.0;
	out->system = d[2] / total * 100.0;
	out->idle = d[3] / total * 100.0;
	out->iowait = d[4] / total * 100.0;
	out->irq = (d[5] + d[6]) / total * 100.0;
	out->steal = d[7] / total * 100.0;
	return 0;
}

int vg_derive_overhead(double prev_proc_s, double cur_proc_s,
		       double prev_vcpu_sum_s, double cur_vcpu_sum_s,
		       double dt_s, double *pct)
{
	double dp, dv;
	int rc;

	if (!ok(dt_s) || dt_s <= 0)
		return -EINVAL;
	if ((rc = vg_derive_delta(prev_proc_s, cur_proc_s, &dp)) ||
	    (rc = vg_derive_delta(prev_vcpu_sum_s, cur_vcpu_sum_s, &dv)))
		return rc;
	double o = (dp - dv) / dt_s * 100.0;
	*pct = o < 0 ? 0 : o;
	return 0;
}
