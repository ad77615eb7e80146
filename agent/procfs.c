/*
 * procfs.c — parsers for the /proc files the agent reads
 * (agent/procfs.h).
 *
 * Design: each parser walks the text once with strtoull-style scanning,
 * never trusting field counts: a short or garbled line is skipped (lists)
 * or rejected (single-record files) rather than read past its end. Files
 * under /proc report size 0, so the reader loops on read() into a buffer
 * that grows by doubling and is reused across polls.
 *
 * Invariant: a parser never writes outside its output struct and never
 * reads past the terminating NUL of its input.
 */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/procfs.h"
#include "vigie/array.h"

void vg_procfs_buf_free(struct vg_procfs_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int vg_procfs_read(const char *root, const char *rel, struct vg_procfs_buf *b)
{
	char path[1024];
	int n = snprintf(path, sizeof(path), "%s/%s", root, rel);

	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	b->len = 0;
	for (;;) {
		if (b->cap - b->len < 4096) {
			size_t ncap = b->cap ? b->cap * 2 : 8192;
			char *p = realloc(b->data, ncap);

			if (!p) {
				close(fd);
				return -ENOMEM;
			}
			b->data = p;
			b->cap = ncap;
		}
		ssize_t r = read(fd, b->data + b->len, b->cap - b->len - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			close(fd);
			return e;
		}
		if (r == 0)
			break;
		b->len += (size_t)r;
	}
	close(fd);
	b->data[b->len] = '\0';
	return 0;
}

/* Skip blanks (not newlines). */
static const char *skip_blank(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Parse an unsigned decimal at *pp (after blanks); advances *pp.
 * 0 or -EBADMSG if there is no number before the end of the line. */
static int next_u64(const char **pp, uint64_t *out)
{
	const char *p = skip_blank(*pp);
	uint64_t v = 0;

	if (!isdigit((unsigned char)*p))
		return -EBADMSG;
	while (isdigit((unsigned char)*p)) {
		v = v * 10 + (uint64_t)(*p - '0');
		p++;
	}
	*out = v;
	*pp = p;
	return 0;
}

static const char *next_line(const char *p)
{
	const char *nl = strchr(p, '\n');
	return nl ? nl + 1 : p + strlen(p);
}

int vg_procfs_parse_stat(const char *text, struct vg_cpu_times *out)
{
	int have = 0;

	memset(out, 0, sizeof(*out));
	for (const char *p = text; *p; p = next_line(p)) {
		if (strncmp(p, "cpu", 3) != 0)
			continue;
		if (p[3] == ' ') {
			const char *q = p + 3;
			uint64_t v[8] = {0};
			int i;

			/* user nice system idle are mandatory; iowait, irq,
			 * softirq, steal appeared in 2.5/2.6 kernels. */
			for (i = 0; i < 8; i++)
				if (next_u64(&q, &v[i]))
					break;
			if (i < 4)
				return -EBADMSG;
			out->user = v[0];
			out->nice = v[1];
			out->system = v[2];
			out->idle = v[3];
			out->iowait = v[4];
			out->irq = v[5];
			out->softirq = v[6];
			out->steal = v[7];
			have = 1;
		} else if (isdigit((unsigned char)p[3])) {
			out->ncpus++;
		}
	}
	return have ? 0 : -EBADMSG;
}

/* A key of a "Key: value [kB]" file and the offset of its uint64_t field. */
struct proc_key {
	const char *key;
	size_t off;
};

/* Each line of TEXT that starts with one of the N KEYS: its value into
 * OUT's field (times 1024 when "kB" follows it: KiB), bit k of *seen set
 * for keys[k]. 0, or -EBADMSG for a key with no number. */
static int parse_keyed(const char *text, const struct proc_key *keys, size_t n, void *out,
		       unsigned *seen)
{
	*seen = 0;
	for (const char *p = text; *p; p = next_line(p)) {
		for (size_t k = 0; k < n; k++) {
			size_t kl = strlen(keys[k].key);
			uint64_t v;

			if (strncmp(p, keys[k].key, kl) != 0)
				continue;
			const char *q = p + kl;
			if (next_u64(&q, &v))
				return -EBADMSG;
			q = skip_blank(q);
			/* Values are in kB ("kB" means KiB here) unless the
			 * line has no unit (HugePages_* counts, /proc/PID/io). */
			if (strncmp(q, "kB", 2) == 0)
				v *= 1024;
			*(uint64_t *)((char *)out + keys[k].off) = v;
			*seen |= 1u << k;
			break;
		}
	}
	return 0;
}

int vg_procfs_parse_meminfo(const char *text, struct vg_meminfo *out)
{
	static const struct proc_key keys[] = {
		{"MemTotal:", offsetof(struct vg_meminfo, total)},
		{"MemFree:", offsetof(struct vg_meminfo, free)},
		{"MemAvailable:", offsetof(struct vg_meminfo, available)},
		{"Buffers:", offsetof(struct vg_meminfo, buffers)},
		{"Cached:", offsetof(struct vg_meminfo, cached)},
		{"SwapTotal:", offsetof(struct vg_meminfo, swap_total)},
		{"SwapFree:", offsetof(struct vg_meminfo, swap_free)},
	};
	unsigned seen;

	memset(out, 0, sizeof(*out));
	if (parse_keyed(text, keys, sizeof(keys) / sizeof(keys[0]), out, &seen))
		return -EBADMSG;
	if ((seen & 3) != 3) /* MemTotal and MemFree */
		return -EBADMSG;
	out->has_available = (seen & 4) != 0;
	if (!out->has_available)
		out->available = out->free + out->cached + out->buffers;
	return 0;
}

/* Parse a non-negative decimal with optional fraction ("0.52"). */
static int next_double(const char **pp, double *out)
{
	const char *p = skip_blank(*pp);
	char *end;

	if (!isdigit((unsigned char)*p))
		return -EBADMSG;
	*out = strtod(p, &end);
	if (end == p)
		return -EBADMSG;
	*pp = end;
	return 0;
}

int vg_procfs_parse_loadavg(const char *text, double out[3])
{
	const char *p = text;

	for (int i = 0; i < 3; i++)
		if (next_double(&p, &out[i]))
			return -EBADMSG;
	return 0;
}

int vg_procfs_parse_pidstat(const char *text, struct vg_pidstat *out)
{
	/* "pid (comm) S ppid ...": comm may hold spaces and ')', so the
	 * fields start after the LAST ')'. Field numbers below are the
	 * 1-based ones of proc(5). */
	const char *open = strchr(text, '(');
	const char *close = strrchr(text, ')');
	uint64_t v;

	memset(out, 0, sizeof(*out));
	if (!open || !close || close < open)
		return -EBADMSG;
	size_t cl = (size_t)(close - open - 1);
	if (cl >= sizeof(out->comm))
		cl = sizeof(out->comm) - 1;
	memcpy(out->comm, open + 1, cl);
	out->comm[cl] = '\0';
	const char *p = skip_blank(close + 1);
	if (!*p || *p == '\n')
		return -EBADMSG;
	out->state = *p++;
	/* fields 4 .. 24 */
	for (int f = 4; f <= 24; f++) {
		p = skip_blank(p);
		if (*p == '-') /* signed fields (priority, nice...) */
			p++;
		if (next_u64(&p, &v))
			return -EBADMSG;
		switch (f) {
		case 14: out->utime_ticks = v; break;
		case 15: out->stime_ticks = v; break;
		case 20: out->threads = v; break;
		case 24: out->rss_pages = v; break;
		default: break;
		}
	}
	return 0;
}

int vg_procfs_parse_pidio(const char *text, struct vg_pidio *out)
{
	static const struct proc_key keys[] = {
		{"rchar:", offsetof(struct vg_pidio, rchar)},
		{"wchar:", offsetof(struct vg_pidio, wchar)},
		{"syscr:", offsetof(struct vg_pidio, syscr)},
		{"syscw:", offsetof(struct vg_pidio, syscw)},
		{"read_bytes:", offsetof(struct vg_pidio, read_bytes)},
		{"write_bytes:", offsetof(struct vg_pidio, write_bytes)},
		{"cancelled_write_bytes:", offsetof(struct vg_pidio, cancelled_write_bytes)},
	};
	unsigned seen;

	memset(out, 0, sizeof(*out));
	if (parse_keyed(text, keys, sizeof(keys) / sizeof(keys[0]), out, &seen))
		return -EBADMSG;
	/* read_bytes and write_bytes are what the catalogue needs. */
	return (seen & 0x30) == 0x30 ? 0 : -EBADMSG;
}

/* Copy the next whitespace-delimited word (max cap-1 bytes) into dst.
 * 0, or -EBADMSG if there is none or it is too long. */
static int next_word(const char **pp, char *dst, size_t cap)
{
	const char *p = skip_blank(*pp);
	size_t n = 0;

	while (p[n] && !isspace((unsigned char)p[n]))
		n++;
	if (n == 0 || n >= cap)
		return -EBADMSG;
	memcpy(dst, p, n);
	dst[n] = '\0';
	*pp = p + n;
	return 0;
}

/* name == disk + [p] + digits for some earlier whole disk in d[0..n). */
static int is_partition_of_earlier(const struct vg_diskstat *d, size_t n,
				   const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (d[i].partition || d[i].ignored)
			continue;
		size_t l = strlen(d[i].name);
		if (strncmp(name, d[i].name, l) != 0)
			continue;
		const char *r = name + l;
		/* The kernel puts a 'p' between a disk name ending in a
		 * digit and the partition number (nvme0n1p1); without it
		 * dm-1 / dm-10 would look like disk and partition. */
		if (isdigit((unsigned char)d[i].name[l - 1])) {
			if (*r != 'p')
				continue;
			r++;
		}
		if (!isdigit((unsigned char)*r))
			continue;
		while (isdigit((unsigned char)*r))
			r++;
		if (!*r)
			return 1;
	}
	return 0;
}

int vg_procfs_parse_diskstats(const char *text, struct vg_diskstat **out,
			      size_t *n)
{
	struct vg_diskstat *d = NULL;
	size_t cnt = 0, cap = 0;

	for (const char *p = text; *p; p = next_line(p)) {
		struct vg_diskstat s;
		uint64_t v[17], maj, min;
		const char *q = p;
		unsigned k;

		memset(&s, 0, sizeof(s));
		if (next_u64(&q, &maj) || next_u64(&q, &min) ||
		    next_word(&q, s.name, sizeof(s.name)))
			continue;
		for (k = 0; k < 17; k++)
			if (next_u64(&q, &v[k]))
				break;
		if (k < 11)
			continue;
		s.major = (unsigned)maj;
		s.minor = (unsigned)min;
		s.nfields = k;
		s.rd_ios = v[0];
		s.rd_merges = v[1];
		s.rd_sectors = v[2];
		s.rd_ms = v[3];
		s.wr_ios = v[4];
		s.wr_merges = v[5];
		s.wr_sectors = v[6];
		s.wr_ms = v[7];
		s.in_flight = v[8];
		s.io_ms = v[9];
		s.weighted_ms = v[10];
		if (k >= 15) {
			s.dc_ios = v[11];
			s.dc_merges = v[12];
			s.dc_sectors = v[13];
			s.dc_ms = v[14];
		}
		if (k >= 17) {
			s.fl_ios = v[15];
			s.fl_ms = v[16];
		}
		s.ignored = strncmp(s.name, "loop", 4) == 0 ||
			    strncmp(s.name, "ram", 3) == 0;
		if (!s.ignored)
			s.partition = is_partition_of_earlier(d, cnt, s.name);
		if (vg_array_grow((void **)&d, &cap, cnt + 1, sizeof(*d))) {
			free(d);
			return -ENOMEM;
		}
		d[cnt++] = s;
	}
	*out = d;
	*n = cnt;
	return 0;
}

int vg_procfs_parse_netdev(const char *text, struct vg_netdev **out, size_t *n)
{
	struct vg_netdev *d = NULL;
	size_t cnt = 0, cap = 0;

	*out = NULL;
	*n = 0;
	if (!strstr(text, "Receive") || !strstr(text, "Transmit"))
		return -EBADMSG;
	for (const char *p = text; *p; p = next_line(p)) {
		const char *colon = strchr(p, ':');
		const char *nl = strchr(p, '\n');
		struct vg_netdev s;
		uint64_t v[16];
		int k;

		if (!colon || (nl && colon > nl))
			continue; /* header lines */
		const char *b = skip_blank(p);
		size_t l = (size_t)(colon - b);
		if (l == 0 || l >= sizeof(s.name))
			continue;
		memset(&s, 0, sizeof(s));
		memcpy(s.name, b, l);
		const char *q = colon + 1;
		for (k = 0; k < 16; k++)
			if (next_u64(&q, &v[k]))
				break;
		if (k < 16)
			continue;
		s.rx_bytes = v[0];
		s.rx_packets = v[1];
		s.rx_errs = v[2];
		s.rx_drop = v[3];
		s.tx_bytes = v[8];
		s.tx_packets = v[9];
		s.tx_errs = v[10];
		s.tx_drop = v[11];
		if (vg_array_grow((void **)&d, &cap, cnt + 1, sizeof(*d))) {
			free(d);
			return -ENOMEM;
		}
		d[cnt++] = s;
	}
	*out = d;
	*n = cnt;
	return 0;
}

/* ---- mounts --------------------------------------------------------------- */

int vg_procfs_pseudo_fs(const char *type)
{
	static const char *const pseudo[] = {
		"proc",
		"sysfs",
		"cgroup",
		"cgroup2",
		"devtmpfs",
		"devpts",
		"tmpfs",
		"ramfs",
		"securityfs",
		"debugfs",
		"tracefs",
		"pstore",
		"bpf",
		"mqueue",
		"hugetlbfs",
		"configfs",
		"fusectl",
		"autofs",
		"binfmt_misc",
		"rpc_pipefs",
		"nsfs",
		"efivarfs",
		"selinuxfs",
		"squashfs",
		"nfsd",
		"fuse.lxcfs",
		"fuse.gvfsd-fuse",
		/* network file systems: statvfs blocks while the server is
		 * away, which would stall the poll; include them by name */
		"nfs",
		"nfs4",
		"cifs",
		"smb3",
		"ceph",
		"glusterfs",
		"fuse.glusterfs",
		"fuse.sshfs",
		"9p",
		"virtiofs",
	};
	for (size_t i = 0; i < sizeof(pseudo) / sizeof(pseudo[0]); i++)
		if (!strcmp(type, pseudo[i]))
			return 1;
	/* Every FUSE file system ("fuse", "fuse.NAME"): its statvfs is
	 * answered by a user-space daemon, and a network one (ceph-fuse,
	 * s3fs, rclone, gcsfuse...) blocks while its server is away, which
	 * stalled the whole host poll as nfs would; the list above had only
	 * some of them by name. fuseblk (a local block device) stays. */
	if (!strcmp(type, "fuse") || !strncmp(type, "fuse.", 5))
		return 1;
	return 0;
}

/* Copy one space-separated field of a mounts line, decoding \ooo escapes.
 * Returns the position after the field, or NULL if it does not fit. */
static const char *mount_field(const char *p, char *out, size_t cap)
{
	size_t n = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p || *p == '\n')
		return NULL;
	while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
		char c = *p;
		if (c == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' &&
		    p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
			c = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		}
		if (n + 1 >= cap)
			return NULL;
		out[n++] = c;
		p++;
	}
	out[n] = '\0';
	return p;
}

int vg_procfs_parse_mounts(const char *text, struct vg_mount **out, size_t *n)
{
	struct vg_mount *d = NULL;
	size_t cnt = 0, cap = 0;

	*out = NULL;
	*n = 0;
	for (const char *p = text; *p; p = next_line(p)) {
		struct vg_mount m;
		const char *q = p;

		memset(&m, 0, sizeof(m));
		if (!(q = mount_field(q, m.dev, sizeof(m.dev))) ||
		    !(q = mount_field(q, m.dir, sizeof(m.dir))) ||
		    !(q = mount_field(q, m.type, sizeof(m.type))))
			continue;
		m.pseudo = vg_procfs_pseudo_fs(m.type) != 0;
		size_t i;
		for (i = 0; i < cnt && strcmp(d[i].dir, m.dir); i++)
			;
		if (i < cnt) {
			d[i] = m; /* stacked: the last mount is the visible one */
			continue;
		}
		if (vg_array_grow((void **)&d, &cap, cnt + 1, sizeof(*d))) {
			free(d);
			return -ENOMEM;
		}
		d[cnt++] = m;
	}
	*out = d;
	*n = cnt;
	return 0;
}

/* 1 if one pattern of the comma list matches dir or type. */
static int fs_list_match(const char *list, const struct vg_mount *m)
{
	char pat[256];

	for (const char *p = list; p && *p;) {
		const char *c = strchr(p, ',');
		size_t l = c ? (size_t)(c - p) : strlen(p);
		while (l && (*p == ' ' || *p == '\t')) {
			p++;
			l--;
		}
		while (l && (p[l - 1] == ' ' || p[l - 1] == '\t'))
			l--;
		if (l && l < sizeof(pat)) {
			memcpy(pat, p, l);
			pat[l] = '\0';
			if (!fnmatch(pat, m->dir, 0) || !fnmatch(pat, m->type, 0))
				return 1;
		}
		if (!c)
			break;
		p = c + 1;
	}
	return 0;
}

uint64_t vg_procfs_fs_used(uint64_t total, uint64_t avail)
{
	return total > avail ? total - avail : 0;
}

int vg_procfs_fs_selected(const struct vg_mount *m, const char *include,
			  const char *exclude)
{
	if (exclude && *exclude && fs_list_match(exclude, m))
		return 0;
	if (include && *include)
		return fs_list_match(include, m);
	return !m->pseudo;
}
