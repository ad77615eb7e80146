/*
 * poll_host.c — the host's part of a poll (agent/poll_state.h): the host
 * resource (CPU, load, memory, swap, instance counts and the agent's
 * self-metrics), its block devices from /proc/diskstats, its NICs from
 * /proc/net/dev (without the instances' vNICs) and its file systems.
 *
 * Design: /proc is read through the poller's one buffer; CPU percentages,
 * queue lengths, idle and busy time and latencies are derived from the
 * previous poll's host counters, which vg_poller_poll keeps (agent/poll.c).
 *
 * Invariants: a /proc file that cannot be read or parsed leaves its
 * samples out and sets its bit in st->proc_failed, never fails the poll;
 * nothing is derived without a previous poll (dt > 0).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "agent/derive.h"
#include "agent/poll_state.h"
#include "vigie/clock.h"

/* ---- host ----------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted names of every known instance vNIC (host NICs skip them). */
static const char **vnic_names(struct vg_poller *p, size_t *n)
{
	size_t cnt = 0, pos = 0;
	const struct vg_hmap_entry *it;
	const char **names;

	while ((it = vg_hmap_next(&p->doms, &pos)))
		cnt += ((struct dom_prev *)it->value)->nnics;
	*n = 0;
	if (!cnt)
		return NULL;
	names = malloc(cnt * sizeof(*names));
	if (!names)
		return NULL;
	pos = 0;
	while ((it = vg_hmap_next(&p->doms, &pos))) {
		struct dom_prev *P = it->value;
		for (size_t i = 0; i < P->nnics; i++)
			names[(*n)++] = P->nics[i].dev;
	}
	qsort(names, *n, sizeof(*names), cmp_str);
	return names;
}

/* Host file systems: statvfs of each selected mount point, as host disk
 * resources "<host>-fs:<mount point>". A mount point that cannot be
 * statted (gone, permission) is skipped this poll. */
static void emit_host_fs(struct vg_poll_emit *e, struct vg_poller *p, int64_t t)
{
	struct vg_mount *m = NULL;
	size_t n = 0;

	if (vg_procfs_read(p->proc_root, "self/mounts", &p->buf) != 0 ||
	    vg_procfs_parse_mounts(p->buf.data, &m, &n) != 0)
		return;
	for (size_t i = 0; i < n && !e->err; i++) {
		struct statvfs sv;
		char id[512];

		if (!vg_procfs_fs_selected(&m[i], p->fs_include, p->fs_exclude) ||
		    statvfs(m[i].dir, &sv) != 0 || sv.f_blocks == 0)
			continue;
		double bs = (double)sv.f_frsize;
		snprintf(id, sizeof(id), "%s-fs:%s", p->host, m[i].dir);
		if (!vg_poll_resource(e, VG_RT_HOST_DISK, id, m[i].dir, p->host, t)) {
			e->skip = 0;
			continue;
		}
		vg_poll_attr(e, "device", m[i].dev);
		vg_poll_attr(e, "fstype", m[i].type);
		vg_poll_sample(e, "hfs.size", VG_KIND_GAUGE, (double)sv.f_blocks * bs);
		vg_poll_sample(e, "hfs.used", VG_KIND_GAUGE,
			       (double)vg_procfs_fs_used(sv.f_blocks, sv.f_bfree) * bs);
		vg_poll_sample(e, "hfs.free", VG_KIND_GAUGE, (double)sv.f_bavail * bs);
		if (sv.f_files > 0) {
			vg_poll_sample(e, "hfs.inodes.total", VG_KIND_GAUGE, (double)sv.f_files);
			vg_poll_sample(e, "hfs.inodes.used", VG_KIND_GAUGE,
				       (double)vg_procfs_fs_used(sv.f_files, sv.f_ffree));
			vg_poll_sample(e, "hfs.inodes.free", VG_KIND_GAUGE, (double)sv.f_favail);
		}
	}
	free(m);
}

int vg_poll_host(struct vg_poller *p, int64_t t,
		 const struct vg_poll_extra *extra, size_t nextra,
		 struct vg_batch *b, struct vg_poll_status *st,
		 int64_t start_mono, size_t ndom, size_t nactive, int lv_ok)
{
	struct vg_poll_emit e = {.b = b};
	struct vg_cpu_times cpu;
	struct vg_meminfo mem;
	double load[3];
	double dt = p->host_time_ms > 0 ? (double)(t - p->host_time_ms) / 1e3 : 0;
	struct vg_netdev *nics = NULL;
	size_t nnics = 0;
	int have_cpu = 0, have_mem = 0, have_load = 0, have_net = 0;

	if (vg_procfs_read(p->proc_root, "stat", &p->buf) == 0 &&
	    vg_procfs_parse_stat(p->buf.data, &cpu) == 0)
		have_cpu = 1;
	else
		st->proc_failed |= 1;
	if (vg_procfs_read(p->proc_root, "meminfo", &p->buf) == 0 &&
	    vg_procfs_parse_meminfo(p->buf.data, &mem) == 0)
		have_mem = 1;
	else
		st->proc_failed |= 2;
	if (vg_procfs_read(p->proc_root, "loadavg", &p->buf) == 0 &&
	    vg_procfs_parse_loadavg(p->buf.data, load) == 0)
		have_load = 1;
	else
		st->proc_failed |= 4;
	if (vg_procfs_read(p->proc_root, "net/dev", &p->buf) == 0 &&
	    vg_procfs_parse_netdev(p->buf.data, &nics, &nnics) == 0)
		have_net = 1;
	else
		st->proc_failed |= 16;

	if (!vg_poll_resource(&e, VG_RT_HOST, p->host, p->host, NULL, t))
		goto out;
	if (have_cpu) {
		struct vg_cpu_pct pct;
		if (p->have_cpu && !vg_derive_host_cpu(&p->cpu, &cpu, &pct)) {
			vg_poll_sample(&e, "host.cpu.user", VG_KIND_GAUGE, pct.user);
			vg_poll_sample(&e, "host.cpu.nice", VG_KIND_GAUGE, pct.nice);
			vg_poll_sample(&e, "host.cpu.system", VG_KIND_GAUGE, pct.system);
			vg_poll_sample(&e, "host.cpu.idle", VG_KIND_GAUGE, pct.idle);
			vg_poll_sample(&e, "host.cpu.iowait", VG_KIND_GAUGE, pct.iowait);
			vg_poll_sample(&e, "host.cpu.irq", VG_KIND_GAUGE, pct.irq);
			vg_poll_sample(&e, "host.cpu.steal", VG_KIND_GAUGE, pct.steal);
		}
		vg_poll_sample(&e, "host.cpu.count", VG_KIND_GAUGE, cpu.ncpus);
		p->cpu = cpu;
		p->have_cpu = 1;
	}
	if (have_load) {
		vg_poll_sample(&e, "host.load.1", VG_KIND_GAUGE, load[0]);
		vg_poll_sample(&e, "host.load.5", VG_KIND_GAUGE, load[1]);
		vg_poll_sample(&e, "host.load.15", VG_KIND_GAUGE, load[2]);
	}
	if (have_mem) {
		vg_poll_sample(&e, "host.memory.total", VG_KIND_GAUGE, (double)mem.total);
		vg_poll_sample(&e, "host.memory.available", VG_KIND_GAUGE, (double)mem.available);
		vg_poll_sample(&e, "host.memory.used", VG_KIND_GAUGE,
			       mem.total > mem.available ? (double)(mem.total - mem.available) : 0);
		vg_poll_sample(&e, "host.memory.free", VG_KIND_GAUGE, (double)mem.free);
		vg_poll_sample(&e, "host.memory.cached", VG_KIND_GAUGE, (double)mem.cached);
		vg_poll_sample(&e, "host.memory.buffers", VG_KIND_GAUGE, (double)mem.buffers);
		vg_poll_sample(&e, "host.swap.total", VG_KIND_GAUGE, (double)mem.swap_total);
		vg_poll_sample(&e, "host.swap.used", VG_KIND_GAUGE,
			       mem.swap_total > mem.swap_free ? (double)(mem.swap_total - mem.swap_free) : 0);
	}
	if (lv_ok) {
		vg_poll_sample(&e, "host.instances", VG_KIND_GAUGE, (double)ndom);
		vg_poll_sample(&e, "host.instances.active", VG_KIND_GAUGE, (double)nactive);
	}
	if (p->lv) {
		struct vg_lv_guest_stats gs;

		vg_poll_sample(&e, "agent.libvirt.errors", VG_KIND_COUNTER, (double)p->lv_errors);
		vg_lv_guest_stats(p->lv, &gs);
		vg_poll_sample(&e, "agent.guestfs.queries", VG_KIND_COUNTER, (double)gs.queries);
		vg_poll_sample(&e, "agent.guestfs.failures", VG_KIND_COUNTER, (double)gs.failures);
		vg_poll_sample(&e, "agent.guestfs.no_agent", VG_KIND_GAUGE, (double)gs.no_agent);
	}
	for (size_t i = 0; i < nextra; i++)
		vg_poll_sample(&e, extra[i].metric, extra[i].kind, extra[i].value);
	st->duration_s = (double)(vg_monotonic_ms() - start_mono) / 1e3;
	vg_poll_sample(&e, "agent.poll.duration", VG_KIND_GAUGE, st->duration_s);

	/* host disks */
	for (size_t i = 0; i < p->ncur_hdisks; i++) {
		const struct vg_diskstat *c = &p->cur_hdisks[i];
		char id[512];
		double v;

		if (c->ignored || c->partition)
			continue;
		snprintf(id, sizeof(id), "%s-%s", p->host, c->name);
		if (!vg_poll_resource(&e, VG_RT_HOST_DISK, id, c->name, p->host, t))
			break;
		vg_poll_sample(&e, "hdisk.read.requests", VG_KIND_COUNTER, (double)c->rd_ios);
		vg_poll_sample(&e, "hdisk.read.bytes", VG_KIND_COUNTER, (double)c->rd_sectors * 512);
		vg_poll_sample(&e, "hdisk.read.time", VG_KIND_COUNTER, (double)c->rd_ms / 1e3);
		vg_poll_sample(&e, "hdisk.write.requests", VG_KIND_COUNTER, (double)c->wr_ios);
		vg_poll_sample(&e, "hdisk.write.bytes", VG_KIND_COUNTER, (double)c->wr_sectors * 512);
		vg_poll_sample(&e, "hdisk.write.time", VG_KIND_COUNTER, (double)c->wr_ms / 1e3);
		if (c->nfields >= 17) {
			vg_poll_sample(&e, "hdisk.flush.requests", VG_KIND_COUNTER, (double)c->fl_ios);
			vg_poll_sample(&e, "hdisk.flush.time", VG_KIND_COUNTER, (double)c->fl_ms / 1e3);
		}
		vg_poll_sample(&e, "hdisk.io.time", VG_KIND_COUNTER, (double)c->io_ms / 1e3);
		vg_poll_sample(&e, "hdisk.inflight", VG_KIND_GAUGE, (double)c->in_flight);
		const struct vg_diskstat *o = vg_poll_find_hdisk(p->hdisks, p->nhdisks,
								 c->major, c->minor);
		if (!o || dt <= 0)
			continue;
		if (!vg_derive_queue_length(o->weighted_ms / 1e3, c->weighted_ms / 1e3, dt, &v))
			vg_poll_sample(&e, "hdisk.queue.length", VG_KIND_GAUGE, v);
		if (!vg_derive_idle_time(o->io_ms / 1e3, c->io_ms / 1e3, dt, &v))
			vg_poll_sample(&e, "hdisk.idle.time", VG_KIND_GAUGE, v);
		if (!vg_derive_rate(o->io_ms / 1e3, c->io_ms / 1e3, dt, &v))
			vg_poll_sample(&e, "hdisk.busy", VG_KIND_GAUGE, v > 1 ? 100 : v * 100);
		if (!vg_derive_latency(o->rd_ms / 1e3, c->rd_ms / 1e3, o->rd_ios, c->rd_ios, &v))
			vg_poll_sample(&e, "hdisk.read.latency", VG_KIND_GAUGE, v);
		if (!vg_derive_latency(o->wr_ms / 1e3, c->wr_ms / 1e3, o->wr_ios, c->wr_ios, &v))
			vg_poll_sample(&e, "hdisk.write.latency", VG_KIND_GAUGE, v);
	}

	/* host NICs */
	if (have_net) {
		size_t nv = 0;
		const char **vn = vnic_names(p, &nv);

		for (size_t i = 0; i < nnics && !e.err; i++) {
			const struct vg_netdev *n = &nics[i];
			const char *key = n->name;
			char id[512];

			if (!strcmp(n->name, "lo") ||
			    (vn && bsearch(&key, vn, nv, sizeof(*vn), cmp_str)))
				continue;
			snprintf(id, sizeof(id), "%s-%s", p->host, n->name);
			if (!vg_poll_resource(&e, VG_RT_HOST_NIC, id, n->name, p->host, t))
				break;
			vg_poll_sample(&e, "hnic.rx.bytes", VG_KIND_COUNTER, (double)n->rx_bytes);
			vg_poll_sample(&e, "hnic.rx.packets", VG_KIND_COUNTER, (double)n->rx_packets);
			vg_poll_sample(&e, "hnic.rx.errors", VG_KIND_COUNTER, (double)n->rx_errs);
			vg_poll_sample(&e, "hnic.rx.drops", VG_KIND_COUNTER, (double)n->rx_drop);
			vg_poll_sample(&e, "hnic.tx.bytes", VG_KIND_COUNTER, (double)n->tx_bytes);
			vg_poll_sample(&e, "hnic.tx.packets", VG_KIND_COUNTER, (double)n->tx_packets);
			vg_poll_sample(&e, "hnic.tx.errors", VG_KIND_COUNTER, (double)n->tx_errs);
			vg_poll_sample(&e, "hnic.tx.drops", VG_KIND_COUNTER, (double)n->tx_drop);
		}
		free(vn);
	}
	if (!p->no_host_fs)
		emit_host_fs(&e, p, t);
out:
	free(nics);
	return e.err;
}
