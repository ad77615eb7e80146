/*
 * vigie — the agent's /proc source: host CPU, memory, load, disks, NICs
 * and the QEMU processes' own CPU and I/O.
 *
 * Parsers take the text of one file and fill plain structs with raw
 * counters (no derivation: see agent/derive.h). Readers read one file
 * below a configurable proc root ("/proc" in production, a fixture tree in
 * tests) into a caller-owned growable buffer so a poll allocates nothing
 * once warmed up. All functions are thread-safe (no shared state); they
 * return 0 or a negative errno and never print.
 */
#ifndef VIGIE_AGENT_PROCFS_H
#define VIGIE_AGENT_PROCFS_H

#include <stddef.h>
#include <stdint.h>

/* Aggregate CPU times from the first line of /proc/stat, in USER_HZ ticks.
 * guest/guest_nice are already included in user/nice and are not kept. */
struct vg_cpu_times {
	uint64_t user, nice, system, idle, iowait, irq, softirq, steal;
	unsigned ncpus; /* number of "cpuN" lines */
};

/* /proc/meminfo, converted to bytes. has_available is 0 on kernels
 * without MemAvailable (then available is estimated as free + cached +
 * buffers). */
struct vg_meminfo {
	uint64_t total, free, available, buffers, cached, swap_total, swap_free;
	int has_available;
};

/* One line of /proc/diskstats. Times are milliseconds, sizes sectors of
 * 512 bytes (always 512 in diskstats, whatever the device's block size).
 * Fields after weighted_ms exist only on newer kernels (nfields tells how
 * many numeric fields the line had: 11, 15 or 17). */
struct vg_diskstat {
	char name[32];
	unsigned major, minor;
	uint64_t rd_ios, rd_merges, rd_sectors, rd_ms;
	uint64_t wr_ios, wr_merges, wr_sectors, wr_ms;
	uint64_t in_flight, io_ms, weighted_ms;
	uint64_t dc_ios, dc_merges, dc_sectors, dc_ms;
	uint64_t fl_ios, fl_ms;
	unsigned nfields;
	unsigned ignored : 1;   /* loop or ram device: never reported */
	unsigned partition : 1; /* a partition of a disk listed before it */
};

/* One interface of /proc/net/dev. */
struct vg_netdev {
	char name[32];
	uint64_t rx_bytes, rx_packets, rx_errs, rx_drop;
	uint64_t tx_bytes, tx_packets, tx_errs, tx_drop;
};

/* /proc/<pid>/stat: what the agent uses of it. */
struct vg_pidstat {
	char comm[32];
	char state;
	uint64_t utime_ticks, stime_ticks; /* USER_HZ ticks */
	uint64_t threads;
	uint64_t rss_pages;
};

/* /proc/<pid>/io (readable by root or the process owner). */
struct vg_pidio {
	uint64_t rchar, wchar, syscr, syscw;
	uint64_t read_bytes, write_bytes, cancelled_write_bytes;
};

/* A growable read buffer; zero-initialise, free with vg_procfs_buf_free. */
struct vg_procfs_buf {
	char *data;
	size_t len, cap;
};

void vg_procfs_buf_free(struct vg_procfs_buf *b);

/* Read root/rel (e.g. "/proc", "stat") into b->data (NUL-terminated,
 * b->len bytes). 0, -ENOENT, -EACCES, -ENOMEM, -EIO... */
int vg_procfs_read(const char *root, const char *rel, struct vg_procfs_buf *b);

/* Parsers. Each returns 0, or -EBADMSG when a required field is missing
 * or not a number. Unknown lines/keys are ignored (forward compatible). */
int vg_procfs_parse_stat(const char *text, struct vg_cpu_times *out);
int vg_procfs_parse_meminfo(const char *text, struct vg_meminfo *out);
int vg_procfs_parse_loadavg(const char *text, double out[3]);
int vg_procfs_parse_pidstat(const char *text, struct vg_pidstat *out);
int vg_procfs_parse_pidio(const char *text, struct vg_pidio *out);

/* Parse every well-formed line into *out (malloc'd array of *n entries,
 * caller frees; *out may be NULL when *n == 0). Malformed lines are
 * skipped. Sets ignored/partition (a partition is a name equal to an
 * earlier whole-disk name plus digits, with a 'p' in between when the
 * disk name ends in a digit: sda1, nvme0n1p2, mmcblk0p1; dm-10 is not a
 * partition of dm-1). -ENOMEM on allocation failure. */
int vg_procfs_parse_diskstats(const char *text, struct vg_diskstat **out,
			      size_t *n);
/* Parse /proc/net/dev (every interface, including lo; the caller filters).
 * Returns -EBADMSG only if the header is missing. */
int vg_procfs_parse_netdev(const char *text, struct vg_netdev **out, size_t *n);

/* One line of /proc/self/mounts (octal escapes such as \040 decoded).
 * pseudo is 1 for a file system without storage of its own (proc, sysfs,
 * cgroup, tmpfs, devtmpfs, overlay...): see vg_procfs_pseudo_fs.
 * container is 1 for a mount point a container runtime makes per container
 * or pod: see vg_procfs_container_dir. */
struct vg_mount {
	char dev[128];
	char dir[256];
	char type[32];
	unsigned pseudo : 1;
	unsigned container : 1;
};

/* 1 if type names a pseudo file system (no blocks of its own on a device
 * the operator manages): proc, sysfs, cgroup, cgroup2, devtmpfs, devpts,
 * tmpfs, ramfs, securityfs, debugfs, tracefs, pstore, bpf, mqueue,
 * hugetlbfs, configfs, fusectl, autofs, binfmt_misc, rpc_pipefs, nsfs,
 * efivarfs, selinuxfs, squashfs (read-only images), nfsd, fuse.lxcfs,
 * fuse.gvfsd-fuse; and network file systems, whose statvfs blocks while
 * the server is away (nfs, nfs4, cifs, smb3, ceph, glusterfs,
 * fuse.glusterfs, fuse.sshfs, 9p, virtiofs); the union file systems of
 * container images (overlay, overlayfs, aufs, shiftfs: their blocks are
 * the underlying file system's); every FUSE file system. Pure. */
int vg_procfs_pseudo_fs(const char *type);

/* 1 if dir lies strictly below a directory where a container runtime
 * mounts per container or per pod, whatever the type (an overlay root, a
 * devicemapper or btrfs layer, a bind mount of the host's disk into a
 * pod's volume, a CSI volume): /var/lib/docker/, /var/lib/containers/storage/,
 * /var/lib/containerd/, /run/containerd/, /run/docker/, /run/k3s/,
 * /var/lib/kubelet/ (the directory itself, a disk of its own, is not
 * below it). Each container, pod or restart mounts a new path there,
 * which would be a new series every time. Pure. */
int vg_procfs_container_dir(const char *dir);

/* Parse /proc/self/mounts into *out (malloc'd, caller frees; NULL when
 * *n == 0). Lines with a field too long for its buffer or fewer than three
 * fields are skipped; a mount point listed twice (stacked mounts) is kept
 * once, the last (the visible one), where it was first listed. Linear in
 * the lines (a hash of the mount points): a node with thousands of mounts
 * costs no more per mount than one with ten. 0 or -ENOMEM. */
int vg_procfs_parse_mounts(const char *text, struct vg_mount **out, size_t *n);

/* The host-filesystem filter: a comma-separated list of fnmatch(3)
 * patterns, each matched against the mount point and against the type
 * ("/var/lib/ *" without the space, "xfs"). Include empty or NULL: every
 * mount neither pseudo nor container; otherwise only matching ones (a
 * pseudo file system included by name is reported), a container mount
 * only when a pattern matches its mount point ("xfs" does not bring back
 * every container's xfs layer, "/var/lib/kubelet/pods/ *" does). Exclude
 * wins over include. Returns 1 to report. Pure. */
int vg_procfs_fs_selected(const struct vg_mount *m, const char *include,
			  const char *exclude);

/* Blocks (or inodes) in use from statvfs's total and free counts: total -
 * free, or 0 when a file system reports more free than total (a FUSE or
 * network file system's server may; the unsigned difference would be
 * reported as ~1.8e19 blocks). Pure. */
uint64_t vg_procfs_fs_used(uint64_t total, uint64_t avail);

#endif
