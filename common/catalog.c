/*
 * catalog.c — the metric catalogue (include/vigie/catalog.h;
 * docs/metrics.md is its prose form and lists sources and formulas).
 *
 * Design: one static table, grouped by resource type. Names are dotted,
 * lower case; a segment written "N" in the table stands for a number
 * (vcpu.N.time matches vcpu.0.time, vcpu.17.time), so per-index metrics
 * need one entry. Units are SI base units of the stored value's source:
 * a counter's stored value is its rate, hence vg_catalog_query_unit().
 *
 * Invariants: (rtype, name) is unique; every entry has a unit, a kind and
 * a description (tests/unit/catalog_test.c checks all three).
 */
#include <stdio.h>
#include <string.h>

#include "vigie/batch.h"
#include "vigie/catalog.h"

#define G VG_KIND_GAUGE
#define C VG_KIND_COUNTER
#define I VG_RT_INSTANCE
#define D VG_RT_DISK
#define N VG_RT_NIC
#define H VG_RT_HOST
#define HD VG_RT_HOST_DISK
#define HN VG_RT_HOST_NIC

const struct vg_metric_def vg_catalog[] = {
	/* ---- instance: CPU ---- */
	{"cpu.time", I, "s", C, "CPU time consumed by the domain (all vCPUs and emulator threads)"},
	{"cpu.user.time", I, "s", C, "CPU time of the domain in user mode (host view)"},
	{"cpu.system.time", I, "s", C, "CPU time of the domain in kernel mode (host view)"},
	{"cpu.util", I, "%", G, "CPU utilisation normalised to the vCPU count: dcpu.time / (dt * vcpus) * 100"},
	{"vcpus", I, "count", G, "number of vCPUs"},
	{"vcpu.N.time", I, "s", C, "CPU time of vCPU N"},
	{"vcpu.N.wait", I, "s", C, "time vCPU N was runnable but waited behind another task on its host CPU (libvirt vcpu.N.wait, sched wait_sum; stays 0 unless the host sets kernel.sched_schedstats=1)"},
	{"vcpu.N.delay", I, "s", C, "time vCPU N spent in the host run queue instead of running (libvirt vcpu.N.delay, schedstat run_delay; the guest sees it as steal)"},
	{"cpu.wait", I, "%", G, "vCPU wait in percent of the instance's vCPU capacity: dsum vcpu.N.wait / (dt * vcpus) * 100"},
	{"cpu.steal", I, "%", G, "vCPU contention (steal-like) in percent of the instance's vCPU capacity: dsum vcpu.N.delay / (dt * vcpus) * 100; sustained values above a few percent mean the host CPUs are oversubscribed (noisy neighbours)"},
	/* ---- instance: guest file systems (QEMU guest agent) ---- */
	{"fs.N.total", I, "B", G, "size of guest file system N (mount points in order; attributes fs.N.mountpoint, fs.N.device, fs.N.type, fs.N.disk)"},
	{"fs.N.used", I, "B", G, "bytes used on guest file system N, as the guest agent reports them"},
	{"fs.N.usage", I, "%", G, "fs.N.used / fs.N.total * 100"},
	/* ---- instance: memory ---- */
	{"memory.size", I, "B", G, "memory assigned to the guest now (balloon current)"},
	{"memory.max", I, "B", G, "maximum memory the guest may be given (balloon maximum)"},
	{"memory.used", I, "B", G, "memory used inside the guest: available - unused (guest balloon driver)"},
	{"memory.available", I, "B", G, "memory the guest OS sees as its total (guest balloon driver)"},
	{"memory.unused", I, "B", G, "memory left completely unused by the guest"},
	{"memory.usable", I, "B", G, "memory the guest could use without swapping (includes reclaimable cache)"},
	{"memory.cache", I, "B", G, "guest page cache that can be reclaimed at once (disk_caches)"},
	{"memory.rss", I, "B", G, "resident set size of the domain's QEMU process on the host"},
	{"memory.swap.in", I, "B", C, "bytes the guest swapped in"},
	{"memory.swap.out", I, "B", C, "bytes the guest swapped out"},
	{"memory.faults.major", I, "count", C, "major page faults in the guest"},
	{"memory.faults.minor", I, "count", C, "minor page faults in the guest"},
	{"power.state", I, "state", G, "libvirt domain state: 0 nostate, 1 running, 2 blocked, 3 paused, 4 shutdown, 5 shutoff, 6 crashed, 7 pmsuspended"},
	/* ---- instance: hypervisor overhead (QEMU process) ---- */
	{"qemu.cpu.time", I, "s", C, "CPU time of the QEMU process (/proc/<pid>/stat utime + stime)"},
	{"qemu.cpu.util", I, "%", G, "CPU of the QEMU process in percent of one host CPU"},
	{"qemu.cpu.overhead", I, "%", G, "QEMU CPU not spent running vCPUs, percent of one host CPU: (dqemu.cpu.time - dsum vcpu.N.time) / dt * 100"},
	{"qemu.memory.rss", I, "B", G, "resident set of the QEMU process (/proc/<pid>/stat rss * page size)"},
	{"qemu.threads", I, "count", G, "threads of the QEMU process"},
	{"qemu.io.read.bytes", I, "B", C, "bytes the QEMU process caused to be read from storage (/proc/<pid>/io read_bytes)"},
	{"qemu.io.write.bytes", I, "B", C, "bytes the QEMU process caused to be written to storage (/proc/<pid>/io write_bytes)"},
	{"qemu.io.read.calls", I, "count", C, "read system calls of the QEMU process (syscr)"},
	{"qemu.io.write.calls", I, "count", C, "write system calls of the QEMU process (syscw)"},

	/* ---- disk (per instance block device) ---- */
	{"disk.read.requests", D, "count", C, "read requests completed"},
	{"disk.read.bytes", D, "B", C, "bytes read"},
	{"disk.read.time", D, "s", C, "total time spent by read requests"},
	{"disk.write.requests", D, "count", C, "write requests completed"},
	{"disk.write.bytes", D, "B", C, "bytes written"},
	{"disk.write.time", D, "s", C, "total time spent by write requests"},
	{"disk.flush.requests", D, "count", C, "flush requests completed"},
	{"disk.flush.time", D, "s", C, "total time spent by flush requests"},
	{"disk.errors", D, "count", C, "I/O errors (driver-specific)"},
	{"disk.read.latency", D, "s", G, "average read latency in the interval: dread.time / dread.requests"},
	{"disk.write.latency", D, "s", G, "average write latency in the interval: dwrite.time / dwrite.requests"},
	{"disk.flush.latency", D, "s", G, "average flush latency in the interval: dflush.time / dflush.requests"},
	{"disk.queue.length", D, "count", G, "average outstanding requests in the interval (Little's law): d(read+write+flush time) / dt, or dweighted_ms / dt from the backing host device"},
	{"disk.idle.time", D, "s", G, "seconds the device was idle in the last interval: dt - dbusy (host device io_ticks, else a lower bound from request times)"},
	{"disk.inflight", D, "count", G, "requests in flight on the backing host block device (/proc/diskstats)"},
	{"disk.capacity", D, "B", G, "logical size of the device as the guest sees it"},
	{"disk.allocation", D, "B", G, "bytes allocated on the host for the image (highest written extent)"},
	{"disk.physical", D, "B", G, "physical size of the image file or device on the host"},

	/* ---- nic (per instance vNIC, host-side tap counters) ---- */
	{"net.rx.bytes", N, "B", C, "bytes received by the guest"},
	{"net.rx.packets", N, "count", C, "packets received by the guest"},
	{"net.rx.errors", N, "count", C, "receive errors"},
	{"net.rx.drops", N, "count", C, "received packets dropped"},
	{"net.tx.bytes", N, "B", C, "bytes sent by the guest"},
	{"net.tx.packets", N, "count", C, "packets sent by the guest"},
	{"net.tx.errors", N, "count", C, "transmit errors"},
	{"net.tx.drops", N, "count", C, "transmitted packets dropped"},

	/* ---- host file system (a host disk resource "<host>-fs:<mount>") ---- */
	{"hfs.size", HD, "B", G, "size of the host file system (statvfs f_blocks * f_frsize)"},
	{"hfs.used", HD, "B", G, "bytes in use (f_blocks - f_bfree) * f_frsize"},
	{"hfs.free", HD, "B", G, "bytes free for unprivileged users (f_bavail * f_frsize; excludes the root reserve)"},
	{"hfs.inodes.total", HD, "count", G, "inodes of the file system (f_files; absent when it has no fixed count)"},
	{"hfs.inodes.used", HD, "count", G, "inodes in use (f_files - f_ffree)"},
	{"hfs.inodes.free", HD, "count", G, "inodes free for unprivileged users (f_favail)"},

	/* ---- host ---- */
	{"host.cpu.user", H, "%", G, "CPU time in user mode (excluding nice), percent of all CPUs"},
	{"host.cpu.nice", H, "%", G, "CPU time in niced user mode"},
	{"host.cpu.system", H, "%", G, "CPU time in kernel mode"},
	{"host.cpu.idle", H, "%", G, "CPU time idle"},
	{"host.cpu.iowait", H, "%", G, "CPU time idle while I/O was outstanding"},
	{"host.cpu.irq", H, "%", G, "CPU time servicing hard and soft interrupts"},
	{"host.cpu.steal", H, "%", G, "CPU time stolen by a hypervisor below this host"},
	{"host.cpu.count", H, "count", G, "online CPUs"},
	{"host.load.1", H, "count", G, "load average over 1 minute"},
	{"host.load.5", H, "count", G, "load average over 5 minutes"},
	{"host.load.15", H, "count", G, "load average over 15 minutes"},
	{"host.memory.total", H, "B", G, "physical memory (MemTotal)"},
	{"host.memory.available", H, "B", G, "memory available for new work without swapping (MemAvailable)"},
	{"host.memory.used", H, "B", G, "total - available"},
	{"host.memory.free", H, "B", G, "memory not used at all (MemFree)"},
	{"host.memory.cached", H, "B", G, "page cache (Cached)"},
	{"host.memory.buffers", H, "B", G, "block device buffers (Buffers)"},
	{"host.swap.total", H, "B", G, "swap space"},
	{"host.swap.used", H, "B", G, "swap space in use (SwapTotal - SwapFree)"},
	{"host.instances", H, "count", G, "domains defined on the host"},
	{"host.instances.active", H, "count", G, "domains with a running (or paused) process"},
	{"agent.guestfs.queries", H, "count", C, "guest-agent file-system queries (virDomainGetGuestInfo)"},
	{"agent.guestfs.failures", H, "count", C, "guest-agent queries that failed (no agent in the guest, agent not answering); the guest is asked again after guest_agent_retry_polls"},
	{"agent.guestfs.no_agent", H, "count", G, "running domains whose guest agent did not answer the last query"},
	{"agent.poll.duration", H, "s", G, "wall time of the agent's last poll (libvirt, /proc, derivations)"},
	{"agent.spool.depth", H, "count", G, "batches waiting in the agent's spool for an acknowledgement"},
	{"agent.spool.dropped", H, "count", C, "batches dropped because the spool was full (oldest first)"},
	{"agent.send.timeouts", H, "count", C, "batches not acknowledged within ack_timeout_ms (resent)"},
	{"agent.send.retries", H, "count", C, "batches the collector asked to resend (RETRY)"},
	{"agent.send.rejected", H, "count", C, "batches the collector rejected (kept in spool/rejected/)"},
	{"agent.send.collector", H, "count", G, "index in [agent] collectors (0: the first listed) of the collector batches go to now"},
	{"agent.send.on_primary", H, "count", G, "1 while batches go to the host's primary collector (rendezvous hashing), 0 after a failover"},
	{"agent.send.failovers", H, "count", C, "switches to another collector after an ack timeout"},
	{"agent.send.failbacks", H, "count", C, "returns to the primary collector after it answered a probe"},
	{"agent.events.received", H, "count", C, "libvirt lifecycle events received (0 while events are unavailable)"},
	{"agent.events.used", H, "count", C, "lifecycle events sent to the collector (started, stopped, suspended, ...)"},
	{"agent.batch.split", H, "count", C, "polls too big for one batch (max_batch_bytes or a protocol limit), sent as several"},
	{"agent.batch.left_out", H, "count", C, "values (samples, attributes, events) of polls that fit no batch alone or broke the name rules, left out"},
	{"agent.libvirt.errors", H, "count", C, "failed libvirt polls or connection attempts"},
	{"agent.libvirt.xml_other", H, "count", C, "domain XML reads that described another incarnation than the poll's statistics, not used"},

	/* ---- host disk (/proc/diskstats, whole devices) ---- */
	{"hdisk.read.requests", HD, "count", C, "reads completed"},
	{"hdisk.read.bytes", HD, "B", C, "bytes read (sectors * 512)"},
	{"hdisk.read.time", HD, "s", C, "time spent by reads"},
	{"hdisk.write.requests", HD, "count", C, "writes completed"},
	{"hdisk.write.bytes", HD, "B", C, "bytes written (sectors * 512)"},
	{"hdisk.write.time", HD, "s", C, "time spent by writes"},
	{"hdisk.flush.requests", HD, "count", C, "flushes completed (kernel 5.5+)"},
	{"hdisk.flush.time", HD, "s", C, "time spent by flushes (kernel 5.5+)"},
	{"hdisk.io.time", HD, "s", C, "time the device had at least one request in flight (io_ticks)"},
	{"hdisk.inflight", HD, "count", G, "requests in flight at poll time"},
	{"hdisk.queue.length", HD, "count", G, "average outstanding requests: dweighted_ms / dt"},
	{"hdisk.idle.time", HD, "s", G, "seconds idle in the last interval: dt - dio.time"},
	{"hdisk.busy", HD, "%", G, "percent of the interval the device was busy: dio.time / dt * 100 (iostat %util)"},
	{"hdisk.read.latency", HD, "s", G, "average read latency in the interval"},
	{"hdisk.write.latency", HD, "s", G, "average write latency in the interval"},

	/* ---- host nic (/proc/net/dev, excluding lo and instance vNICs) ---- */
	{"hnic.rx.bytes", HN, "B", C, "bytes received"},
	{"hnic.rx.packets", HN, "count", C, "packets received"},
	{"hnic.rx.errors", HN, "count", C, "receive errors"},
	{"hnic.rx.drops", HN, "count", C, "received packets dropped"},
	{"hnic.tx.bytes", HN, "B", C, "bytes sent"},
	{"hnic.tx.packets", HN, "count", C, "packets sent"},
	{"hnic.tx.errors", HN, "count", C, "transmit errors"},
	{"hnic.tx.drops", HN, "count", C, "transmitted packets dropped"},

	{NULL, 0, NULL, 0, NULL},
};

/* Match name against a table pattern where a whole segment "N" stands
 * for one or more digits. */
static int name_matches(const char *pat, const char *name)
{
	int seg_start = 1;

	while (*pat && *name) {
		if (seg_start && pat[0] == 'N' && (pat[1] == '.' || !pat[1])) {
			if (*name < '0' || *name > '9')
				return 0;
			while (*name >= '0' && *name <= '9')
				name++;
			pat++;
			seg_start = 0;
			continue;
		}
		if (*pat != *name)
			return 0;
		seg_start = *pat == '.';
		pat++;
		name++;
	}
	return !*pat && !*name;
}

const struct vg_metric_def *vg_catalog_find(int rtype, const char *name)
{
	if (!name)
		return NULL;
	for (const struct vg_metric_def *d = vg_catalog; d->name; d++)
		if (d->rtype == rtype && name_matches(d->name, name))
			return d;
	return NULL;
}

unsigned vg_catalog_rtypes(const char *name)
{
	unsigned mask = 0;

	if (!name)
		return 0;
	for (const struct vg_metric_def *d = vg_catalog; d->name; d++)
		if (name_matches(d->name, name))
			mask |= 1u << d->rtype;
	return mask;
}

const char *vg_catalog_query_unit(const struct vg_metric_def *d, char *buf,
				  size_t len)
{
	if (!buf || !len)
		return NULL;
	if (!d) {
		buf[0] = '\0';
		return buf;
	}
	if (d->kind == VG_KIND_COUNTER)
		snprintf(buf, len, "%s/s", d->unit);
	else
		snprintf(buf, len, "%s", d->unit);
	return buf;
}
