/*
 * poll.c — one agent poll: sources -> derivations -> batch
 * (agent/poll.h): the poller, its queued lifecycle events and the
 * domains. The host's resources are in poll_host.c, the writers into the
 * batch in poll_emit.c, the state they share in poll_state.h.
 *
 * Design: a poll reads /proc, takes a libvirt snapshot, then walks the
 * snapshot once. For each domain it looks up the previous poll's raw
 * counters (hash map by UUID), emits the instance, its disks and NICs
 * with raw and derived samples and any lifecycle event, and overwrites
 * the previous counters. Domains whose entry was not touched by this poll
 * are emitted once as ENDED and forgotten. Host, host disks and host NICs
 * follow, then the agent's self-metrics on the host resource.
 *
 * Invariants:
 *  - derived values are only computed between two polls in which the same
 *    incarnation (same libvirt id) of a domain was active, and only from
 *    counters that did not go backwards (agent/derive.h);
 *  - a failed libvirt poll leaves every domain's state untouched;
 *  - every string a batch gets is copied by the batch (vg_batch_*), so
 *    the previous-state tables own their strings independently.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent/derive.h"
#include "vigie/hmap.h"
#include "agent/poll.h"
#include "agent/poll_state.h"
#include "agent/procfs.h"
#include "vigie/clock.h"
#include "vigie/log.h"
#include "vigie/name.h"
#include "vigie/wire.h"

/* virDomainState values (libvirt-domain.h), kept here so the lifecycle
 * logic does not depend on libvirt headers. */
enum {
	ST_RUNNING = 1,
	ST_BLOCKED = 2,
	ST_PAUSED = 3,
	ST_PMSUSPENDED = 7,
};

/* ---- helpers ------------------------------------------------------------- */

/* Append a JSON string literal of s to buf (bounded). */
static void json_str(char *buf, size_t len, const char *s)
{
	size_t n = strlen(buf);

	if (n + 2 >= len)
		return;
	buf[n++] = '"';
	for (; s && *s && n + 8 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)c;
		} else if (c < 0x20) {
			n += (size_t)snprintf(buf + n, len - n, "\\u%04x", c);
		} else {
			buf[n++] = (char)c;
		}
	}
	buf[n++] = '"';
	buf[n] = '\0';
}

static int sdup(char **dst, const char *src)
{
	char *c = NULL;

	if (src && !(c = strdup(src)))
		return -ENOMEM;
	free(*dst);
	*dst = c;
	return 0;
}

static int str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* ---- events ------------------------------------------------------------- */

static int taken_has(const struct vg_poller *p, const char *res, int type)
{
	for (size_t i = 0; i < p->ntaken; i++)
		if (p->taken[i].type == type && !strcmp(p->taken[i].resource, res))
			return 1;
	return 0;
}

static void event(struct vg_poll_emit *e, struct vg_poller *p, const char *res,
		  int type, int64_t t, const char *detail)
{
	if (e->err || taken_has(p, res, type))
		return;
	e->err = vg_batch_event(e->b, res, (uint8_t)type, t, detail);
}

int vg_poller_push_event(struct vg_poller *p, const char *resource, int type,
			 int64_t time_ms, const char *detail)
{
	struct pending_event ev = {0};
	int rc = 0;

	if (!p || !resource || type < VG_EV_STARTED || type > VG_EV_GAP)
		return -EINVAL;
	ev.resource = strdup(resource);
	ev.detail = detail ? strdup(detail) : NULL;
	ev.type = type;
	ev.time_ms = time_ms;
	if (!ev.resource || (detail && !ev.detail)) {
		free(ev.resource);
		free(ev.detail);
		return -ENOMEM;
	}
	pthread_mutex_lock(&p->lock);
	if (p->npending == p->cap_pending) {
		size_t ncap = p->cap_pending ? p->cap_pending * 2 : 16;
		struct pending_event *n = realloc(p->pending, ncap * sizeof(*n));
		if (!n) {
			rc = -ENOMEM;
		} else {
			p->pending = n;
			p->cap_pending = ncap;
		}
	}
	if (!rc)
		p->pending[p->npending++] = ev;
	pthread_mutex_unlock(&p->lock);
	if (rc) {
		free(ev.resource);
		free(ev.detail);
	}
	return rc;
}

static void free_taken(struct vg_poller *p)
{
	for (size_t i = 0; i < p->ntaken; i++) {
		free(p->taken[i].resource);
		free(p->taken[i].detail);
	}
	free(p->taken);
	p->taken = NULL;
	p->ntaken = 0;
}

/* ---- lifecycle of the poller ------------------------------------------ */

static void dom_prev_free(struct dom_prev *d)
{
	if (!d)
		return;
	free(d->uuid);
	free(d->name);
	free(d->project);
	free(d->user);
	free(d->flavor);
	for (size_t i = 0; i < d->ndisks; i++) {
		free(d->disks[i].dev);
		free(d->disks[i].source);
	}
	free(d->disks);
	for (size_t i = 0; i < d->nnics; i++)
		free(d->nics[i].dev);
	free(d->nics);
	free(d);
}

int vg_poller_new(const struct vg_poller_opts *o, struct vg_poller **out)
{
	struct vg_poller *p;
	int rc;

	if (!o || !o->host || !*o->host)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	p->first_poll = 1;
	p->host = strdup(o->host);
	p->proc_root = strdup(o->proc_root && *o->proc_root ? o->proc_root : "/proc");
	p->fs_include = strdup(o->fs_include ? o->fs_include : "");
	p->fs_exclude = strdup(o->fs_exclude ? o->fs_exclude : "");
	p->no_host_fs = o->no_host_fs;
	vg_hmap_init_borrow(&p->doms);
	p->clk_tck = sysconf(_SC_CLK_TCK);
	p->page_size = sysconf(_SC_PAGESIZE);
	if (p->clk_tck <= 0)
		p->clk_tck = 100;
	if (p->page_size <= 0)
		p->page_size = 4096;
	if (!p->host || !p->proc_root || !p->fs_include || !p->fs_exclude) {
		vg_poller_free(p);
		return -ENOMEM;
	}
	if (o->libvirt_uri && *o->libvirt_uri) {
		struct vg_lv_opts lo = {
			.uri = o->libvirt_uri,
			.qemu_run_dir = o->qemu_run_dir ? o->qemu_run_dir : "/run/libvirt/qemu",
			.xml_refresh_polls = o->xml_refresh_polls,
			.guest_fs_polls = o->guest_fs_polls,
			.guest_agent_retry_polls = o->guest_agent_retry_polls,
		};
		if ((rc = vg_lv_new(&lo, &p->lv))) {
			vg_poller_free(p);
			return rc;
		}
	}
	*out = p;
	return 0;
}

void vg_poller_free(struct vg_poller *p)
{
	if (!p)
		return;
	vg_lv_free(p->lv);
	size_t pos = 0;
	const struct vg_hmap_entry *it;
	while ((it = vg_hmap_next(&p->doms, &pos)))
		dom_prev_free(it->value);
	vg_hmap_release(&p->doms);
	for (size_t i = 0; i < p->npending; i++) {
		free(p->pending[i].resource);
		free(p->pending[i].detail);
	}
	free(p->pending);
	free_taken(p);
	free(p->hdisks);
	free(p->cur_hdisks);
	vg_procfs_buf_free(&p->buf);
	free(p->host);
	free(p->proc_root);
	free(p->fs_include);
	free(p->fs_exclude);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void vg_poller_reconnect(struct vg_poller *p)
{
	if (p && p->lv)
		vg_lv_disconnect(p->lv);
}

struct vg_lv *vg_poller_libvirt(struct vg_poller *p)
{
	return p ? p->lv : NULL;
}

/* ---- domains ------------------------------------------------------------- */

static int is_running(int st)
{
	return st == ST_RUNNING || st == ST_BLOCKED;
}

static int is_suspended(int st)
{
	return st == ST_PAUSED || st == ST_PMSUSPENDED;
}

const struct vg_diskstat *vg_poll_find_hdisk(const struct vg_diskstat *d,
					     size_t n, unsigned maj, unsigned min)
{
	for (size_t i = 0; i < n; i++)
		if (d[i].major == maj && d[i].minor == min)
			return &d[i];
	return NULL;
}

static struct disk_prev *find_disk(struct dom_prev *P, const char *dev)
{
	for (size_t i = 0; P && i < P->ndisks; i++)
		if (!strcmp(P->disks[i].dev, dev))
			return &P->disks[i];
	return NULL;
}

static struct nic_prev *find_nic(struct dom_prev *P, const char *dev)
{
	for (size_t i = 0; P && i < P->nnics; i++)
		if (!strcmp(P->nics[i].dev, dev))
			return &P->nics[i];
	return NULL;
}

/* Resolve a disk's host block device once per source path. */
static void resolve_backing(struct disk_prev *dp, const char *source)
{
	struct stat st;

	if (str_eq(dp->source, source) && dp->source)
		return;
	sdup(&dp->source, source);
	dp->blk = 0;
	if (source && !strncmp(source, "/dev/", 5) && stat(source, &st) == 0 &&
	    S_ISBLK(st.st_mode)) {
		dp->blk = 1;
		dp->maj = major(st.st_rdev);
		dp->min = minor(st.st_rdev);
	}
}

static void emit_disk(struct vg_poll_emit *e, struct vg_poller *p,
		      const struct vg_lv_domain *d, const struct vg_lv_disk *k,
		      struct disk_prev *dp, int derive, double dt, int64_t t)
{
	char id[512];

	snprintf(id, sizeof(id), "%s-%s", d->uuid, k->dev);
	if (!vg_poll_resource(e, VG_RT_DISK, id, k->dev, d->uuid, t))
		return;
	vg_poll_identity(e, d->meta->project, d->meta->user, NULL);
	vg_poll_attr(e, "source", k->source);
	const struct vg_domxml_disk *x = vg_domxml_disk(d->meta, k->dev);
	if (x)
		vg_poll_attr(e, "bus", x->bus);
	vg_poll_sample(e, "disk.read.requests", VG_KIND_COUNTER, k->rd_reqs);
	vg_poll_sample(e, "disk.read.bytes", VG_KIND_COUNTER, k->rd_bytes);
	vg_poll_sample(e, "disk.read.time", VG_KIND_COUNTER, k->rd_time_s);
	vg_poll_sample(e, "disk.write.requests", VG_KIND_COUNTER, k->wr_reqs);
	vg_poll_sample(e, "disk.write.bytes", VG_KIND_COUNTER, k->wr_bytes);
	vg_poll_sample(e, "disk.write.time", VG_KIND_COUNTER, k->wr_time_s);
	vg_poll_sample(e, "disk.flush.requests", VG_KIND_COUNTER, k->fl_reqs);
	vg_poll_sample(e, "disk.flush.time", VG_KIND_COUNTER, k->fl_time_s);
	vg_poll_sample(e, "disk.errors", VG_KIND_COUNTER, k->errors);
	vg_poll_sample(e, "disk.capacity", VG_KIND_GAUGE, k->capacity);
	vg_poll_sample(e, "disk.allocation", VG_KIND_GAUGE, k->allocation);
	vg_poll_sample(e, "disk.physical", VG_KIND_GAUGE, k->physical);

	resolve_backing(dp, k->source);
	const struct vg_diskstat *hc = NULL, *hp = NULL;
	if (dp->blk) {
		hc = vg_poll_find_hdisk(p->cur_hdisks, p->ncur_hdisks, dp->maj, dp->min);
		hp = vg_poll_find_hdisk(p->hdisks, p->nhdisks, dp->maj, dp->min);
		if (hc)
			vg_poll_sample(e, "disk.inflight", VG_KIND_GAUGE, (double)hc->in_flight);
	}
	double v;
	if (derive) {
		if (!vg_derive_latency(dp->rd_time, k->rd_time_s, dp->rd_reqs, k->rd_reqs, &v))
			vg_poll_sample(e, "disk.read.latency", VG_KIND_GAUGE, v);
		if (!vg_derive_latency(dp->wr_time, k->wr_time_s, dp->wr_reqs, k->wr_reqs, &v))
			vg_poll_sample(e, "disk.write.latency", VG_KIND_GAUGE, v);
		if (!vg_derive_latency(dp->fl_time, k->fl_time_s, dp->fl_reqs, k->fl_reqs, &v))
			vg_poll_sample(e, "disk.flush.latency", VG_KIND_GAUGE, v);
	}
	if (hc && hp) {
		/* The host device's own counters: exact busy time and queue.
		 * dt is the domain's; host and domains are polled together. */
		if (!vg_derive_queue_length(hp->weighted_ms / 1e3, hc->weighted_ms / 1e3, dt, &v))
			vg_poll_sample(e, "disk.queue.length", VG_KIND_GAUGE, v);
		if (!vg_derive_idle_time(hp->io_ms / 1e3, hc->io_ms / 1e3, dt, &v))
			vg_poll_sample(e, "disk.idle.time", VG_KIND_GAUGE, v);
	} else if (derive) {
		/* Guest-side times: fl time is optional (older QEMU). */
		double pb = dp->rd_time + dp->wr_time;
		double cb = k->rd_time_s + k->wr_time_s;
		if (isfinite(dp->fl_time) && isfinite(k->fl_time_s)) {
			pb += dp->fl_time;
			cb += k->fl_time_s;
		}
		if (!vg_derive_queue_length(pb, cb, dt, &v))
			vg_poll_sample(e, "disk.queue.length", VG_KIND_GAUGE, v);
		if (!vg_derive_idle_time(pb, cb, dt, &v))
			vg_poll_sample(e, "disk.idle.time", VG_KIND_GAUGE, v);
	}
	dp->rd_reqs = k->rd_reqs;
	dp->rd_time = k->rd_time_s;
	dp->wr_reqs = k->wr_reqs;
	dp->wr_time = k->wr_time_s;
	dp->fl_reqs = k->fl_reqs;
	dp->fl_time = k->fl_time_s;
}

static void emit_nic(struct vg_poll_emit *e, const struct vg_lv_domain *d,
		     const struct vg_lv_nic *n, int64_t t)
{
	char id[512];

	snprintf(id, sizeof(id), "%s-%s", d->uuid, n->dev);
	if (!vg_poll_resource(e, VG_RT_NIC, id, n->dev, d->uuid, t))
		return;
	vg_poll_identity(e, d->meta->project, d->meta->user, NULL);
	vg_poll_attr(e, "mac", n->mac);
	vg_poll_sample(e, "net.rx.bytes", VG_KIND_COUNTER, n->rx_bytes);
	vg_poll_sample(e, "net.rx.packets", VG_KIND_COUNTER, n->rx_packets);
	vg_poll_sample(e, "net.rx.errors", VG_KIND_COUNTER, n->rx_errs);
	vg_poll_sample(e, "net.rx.drops", VG_KIND_COUNTER, n->rx_drop);
	vg_poll_sample(e, "net.tx.bytes", VG_KIND_COUNTER, n->tx_bytes);
	vg_poll_sample(e, "net.tx.packets", VG_KIND_COUNTER, n->tx_packets);
	vg_poll_sample(e, "net.tx.errors", VG_KIND_COUNTER, n->tx_errs);
	vg_poll_sample(e, "net.tx.drops", VG_KIND_COUNTER, n->tx_drop);
}

/* Sum of a per-vCPU array; NAN if absent or any entry is unknown. */
static double sum_of(const double *a, size_t n)
{
	double s = 0;

	if (!a || !n)
		return NAN;
	for (size_t i = 0; i < n; i++)
		s += a[i]; /* NAN propagates: unknown sum */
	return s;
}

static double vcpu_sum(const struct vg_lv_domain *d)
{
	return sum_of(d->vcpu_time_s, d->nvcpu_times);
}

/* QEMU process overhead from /proc/<pid>/{stat,io}. */
static void emit_qemu(struct vg_poll_emit *e, struct vg_poller *p,
		      const struct vg_lv_domain *d, struct dom_prev *P,
		      int derive, double dt, double *qcpu)
{
	char rel[64];
	struct vg_pidstat ps;
	struct vg_pidio pio;
	double v;

	*qcpu = NAN;
	if (d->pid <= 0)
		return;
	snprintf(rel, sizeof(rel), "%d/stat", d->pid);
	if (vg_procfs_read(p->proc_root, rel, &p->buf) == 0 &&
	    vg_procfs_parse_pidstat(p->buf.data, &ps) == 0) {
		*qcpu = (double)(ps.utime_ticks + ps.stime_ticks) / (double)p->clk_tck;
		vg_poll_sample(e, "qemu.cpu.time", VG_KIND_COUNTER, *qcpu);
		vg_poll_sample(e, "qemu.memory.rss", VG_KIND_GAUGE,
			       (double)ps.rss_pages * (double)p->page_size);
		vg_poll_sample(e, "qemu.threads", VG_KIND_GAUGE, (double)ps.threads);
		if (derive) {
			if (!vg_derive_proc_util(P->qemu_cpu, *qcpu, dt, &v))
				vg_poll_sample(e, "qemu.cpu.util", VG_KIND_GAUGE, v);
			if (!vg_derive_overhead(P->qemu_cpu, *qcpu, P->vcpu_sum,
						vcpu_sum(d), dt, &v))
				vg_poll_sample(e, "qemu.cpu.overhead", VG_KIND_GAUGE, v);
		}
	}
	snprintf(rel, sizeof(rel), "%d/io", d->pid);
	if (vg_procfs_read(p->proc_root, rel, &p->buf) == 0 &&
	    vg_procfs_parse_pidio(p->buf.data, &pio) == 0) {
		vg_poll_sample(e, "qemu.io.read.bytes", VG_KIND_COUNTER, (double)pio.read_bytes);
		vg_poll_sample(e, "qemu.io.write.bytes", VG_KIND_COUNTER, (double)pio.write_bytes);
		vg_poll_sample(e, "qemu.io.read.calls", VG_KIND_COUNTER, (double)pio.syscr);
		vg_poll_sample(e, "qemu.io.write.calls", VG_KIND_COUNTER, (double)pio.syscw);
	}
}

/* Guest file systems (only in polls that asked the guest agent), as
 * fs.N.* on the instance, N the position in mount-point order, with the
 * mount point, guest device, type and backing disk as attributes.
 * The guest says how many it has, so only those whose attributes fit the
 * wire's VG_WIRE_MAX_ATTRS_PER_RES are sent (the first in mount-point
 * order): one more attribute and the whole batch, every instance of the
 * host, would fail to encode. */
static void emit_guest_fs(struct vg_poll_emit *e, const struct vg_lv_domain *d)
{
	static uint64_t n_left_out; /* log lines, one per 1000 */

	for (size_t i = 0; i < d->nfs; i++) {
		const struct vg_lv_fs *f = &d->fs[i];
		size_t need = 1 + !!f->device + !!f->fstype + !!f->disk;
		char k[48];

		if (e->err || e->skip || !e->b->nres)
			return;
		if (e->b->res[e->b->nres - 1].nattrs + need > VG_WIRE_MAX_ATTRS_PER_RES) {
			char shown[VG_NAME_MAX + 1];
			vg_text_clean(d->uuid, shown, VG_NAME_MAX);
			vg_log_limited(VG_LOG_WARN, &n_left_out,
				       "instance %s: %zu of its %zu guest file systems left out "
				       "(the first %zu in mount-point order fit its %u attributes)",
				       shown, d->nfs - i, d->nfs, i, VG_WIRE_MAX_ATTRS_PER_RES);
			return;
		}

		snprintf(k, sizeof(k), "fs.%zu.mountpoint", i);
		vg_poll_attr(e, k, f->mountpoint);
		snprintf(k, sizeof(k), "fs.%zu.device", i);
		vg_poll_attr(e, k, f->device);
		snprintf(k, sizeof(k), "fs.%zu.type", i);
		vg_poll_attr(e, k, f->fstype);
		snprintf(k, sizeof(k), "fs.%zu.disk", i);
		vg_poll_attr(e, k, f->disk);
		snprintf(k, sizeof(k), "fs.%zu.total", i);
		vg_poll_sample(e, k, VG_KIND_GAUGE, f->total);
		snprintf(k, sizeof(k), "fs.%zu.used", i);
		vg_poll_sample(e, k, VG_KIND_GAUGE, f->used);
		if (isfinite(f->total) && isfinite(f->used) && f->total > 0) {
			snprintf(k, sizeof(k), "fs.%zu.usage", i);
			vg_poll_sample(e, k, VG_KIND_GAUGE, f->used / f->total * 100);
		}
	}
}

static void lifecycle(struct vg_poll_emit *e, struct vg_poller *p,
		      const struct vg_lv_domain *d, const struct dom_prev *P,
		      int64_t t)
{
	const struct vg_domxml *m = d->meta;

	if (!P) {
		const char *detail = p->first_poll ? "{\"initial\":true,\"derived\":true}" : "{\"derived\":true}";
		event(e, p, d->uuid, d->active ? VG_EV_STARTED : VG_EV_DEFINED,
		      t, detail);
		return;
	}
	if (P->active && d->active && P->id != d->id) {
		event(e, p, d->uuid, VG_EV_STOPPED, t, "{\"restarted\":true,\"derived\":true}");
		event(e, p, d->uuid, VG_EV_STARTED, t, "{\"restarted\":true,\"derived\":true}");
	} else if (!P->active && d->active) {
		event(e, p, d->uuid, VG_EV_STARTED, t, "{\"derived\":true}");
	} else if (P->active && !d->active) {
		event(e, p, d->uuid, VG_EV_STOPPED, t, "{\"derived\":true}");
	} else if (is_running(P->state) && is_suspended(d->state)) {
		event(e, p, d->uuid, VG_EV_SUSPENDED, t, "{\"derived\":true}");
	} else if (is_suspended(P->state) && is_running(d->state)) {
		event(e, p, d->uuid, VG_EV_RESUMED, t, "{\"derived\":true}");
	}
	if ((P->flavor && m->flavor && strcmp(P->flavor, m->flavor)) ||
	    (P->flavor_vcpus >= 0 && m->flavor_vcpus >= 0 &&
	     P->flavor_vcpus != m->flavor_vcpus)) {
		char detail[512] = "{\"flavor\":";
		json_str(detail, sizeof(detail), m->flavor ? m->flavor : "");
		size_t n = strlen(detail);
		snprintf(detail + n, sizeof(detail) - n,
			 ",\"vcpus\":%ld,\"memory_mb\":%ld,\"disk_gb\":%ld,\"derived\":true}",
			 m->flavor_vcpus, m->flavor_memory_mb, m->flavor_disk_gb);
		event(e, p, d->uuid, VG_EV_RESIZED, t, detail);
	}
}

/* Room for element n of *arr (elements of elem bytes), zeroed; the caller
 * counts it once it is filled. NULL on out of memory (*arr unchanged). */
static void *one_more(void **arr, size_t n, size_t elem)
{
	char *a = realloc(*arr, (n + 1) * elem);

	if (!a)
		return NULL;
	*arr = a;
	memset(a + n * elem, 0, elem);
	return a + n * elem;
}

/* The last word on a device of domain uuid that went away: its resource
 * "<uuid>-<dev>", ended, with the domain's owner. */
static void device_ended(struct vg_poll_emit *e, int type, const char *uuid,
			 const char *dev, const struct vg_domxml *m, int64_t t)
{
	char id[512];

	snprintf(id, sizeof(id), "%s-%s", uuid, dev);
	struct vg_resource *r = vg_poll_resource(e, type, id, dev, uuid, t);
	if (r)
		r->state = VG_RSTATE_ENDED;
	vg_poll_identity(e, m->project, m->user, NULL);
}

static int one_domain(struct vg_poller *p, const struct vg_lv_domain *d,
		      int64_t t, struct vg_batch *b)
{
	struct vg_poll_emit e = {.b = b};
	struct dom_prev *P = vg_hmap_gets(&p->doms, d->uuid);
	const struct vg_domxml *m = d->meta;
	double dt = P ? (double)(t - P->time_ms) / 1e3 : 0;
	int restarted = P && P->active && d->active && P->id != d->id;
	int derive = P && !restarted && P->active && d->active && dt > 0;
	double v;

	lifecycle(&e, p, d, P, t);

	if (!vg_poll_resource(&e, VG_RT_INSTANCE, d->uuid, d->name, NULL, t))
		return e.err;
	vg_poll_identity(&e, m->project, m->user, m->flavor);
	vg_poll_attr(&e, "display_name", m->display_name);
	vg_poll_attr(&e, "project_name", m->project_name);
	vg_poll_attr(&e, "user_name", m->user_name);
	vg_poll_attr_long(&e, "flavor.vcpus", m->flavor_vcpus);
	vg_poll_attr_long(&e, "flavor.memory_mb", m->flavor_memory_mb);
	vg_poll_attr_long(&e, "flavor.disk_gb", m->flavor_disk_gb);
	vg_poll_attr(&e, "identity", m->ident == VG_IDENT_NOVA ? "nova" : m->ident == VG_IDENT_VIGIE ? "vigie"
												     : "none");

	vg_poll_sample(&e, "power.state", VG_KIND_GAUGE, d->state);
	vg_poll_sample(&e, "vcpus", VG_KIND_GAUGE, d->vcpus);
	vg_poll_sample(&e, "memory.size", VG_KIND_GAUGE, d->mem_current);
	vg_poll_sample(&e, "memory.max", VG_KIND_GAUGE, d->mem_max);
	double qcpu = NAN;
	if (d->active) {
		vg_poll_sample(&e, "cpu.time", VG_KIND_COUNTER, d->cpu_time_s);
		vg_poll_sample(&e, "cpu.user.time", VG_KIND_COUNTER, d->cpu_user_s);
		vg_poll_sample(&e, "cpu.system.time", VG_KIND_COUNTER, d->cpu_system_s);
		if (derive && !vg_derive_cpu_util(P->cpu_time, d->cpu_time_s, dt,
						  d->vcpus, &v))
			vg_poll_sample(&e, "cpu.util", VG_KIND_GAUGE, v);
		for (size_t i = 0; i < d->nvcpu_times; i++) {
			char name[32];
			snprintf(name, sizeof(name), "vcpu.%zu.time", i);
			vg_poll_sample(&e, name, VG_KIND_COUNTER, d->vcpu_time_s[i]);
			if (d->vcpu_wait_s) {
				snprintf(name, sizeof(name), "vcpu.%zu.wait", i);
				vg_poll_sample(&e, name, VG_KIND_COUNTER, d->vcpu_wait_s[i]);
			}
			if (d->vcpu_delay_s) {
				snprintf(name, sizeof(name), "vcpu.%zu.delay", i);
				vg_poll_sample(&e, name, VG_KIND_COUNTER, d->vcpu_delay_s[i]);
			}
		}
		/* Contention in percent of the instance's vCPU capacity, the
		 * same normalisation as cpu.util: a vCPU that wanted a host
		 * CPU for the whole interval and never got it counts 100. */
		if (derive && !vg_derive_cpu_util(P->wait_sum,
						  sum_of(d->vcpu_wait_s, d->nvcpu_times),
						  dt, d->vcpus, &v))
			vg_poll_sample(&e, "cpu.wait", VG_KIND_GAUGE, v);
		if (derive && !vg_derive_cpu_util(P->delay_sum,
						  sum_of(d->vcpu_delay_s, d->nvcpu_times),
						  dt, d->vcpus, &v))
			vg_poll_sample(&e, "cpu.steal", VG_KIND_GAUGE, v);
		if (isfinite(d->mem_available) && isfinite(d->mem_unused) &&
		    d->mem_available >= d->mem_unused)
			vg_poll_sample(&e, "memory.used", VG_KIND_GAUGE,
				       d->mem_available - d->mem_unused);
		vg_poll_sample(&e, "memory.available", VG_KIND_GAUGE, d->mem_available);
		vg_poll_sample(&e, "memory.unused", VG_KIND_GAUGE, d->mem_unused);
		vg_poll_sample(&e, "memory.usable", VG_KIND_GAUGE, d->mem_usable);
		vg_poll_sample(&e, "memory.cache", VG_KIND_GAUGE, d->mem_disk_caches);
		vg_poll_sample(&e, "memory.rss", VG_KIND_GAUGE, d->mem_rss);
		vg_poll_sample(&e, "memory.swap.in", VG_KIND_COUNTER, d->mem_swap_in);
		vg_poll_sample(&e, "memory.swap.out", VG_KIND_COUNTER, d->mem_swap_out);
		vg_poll_sample(&e, "memory.faults.major", VG_KIND_COUNTER, d->mem_major_faults);
		vg_poll_sample(&e, "memory.faults.minor", VG_KIND_COUNTER, d->mem_minor_faults);
		emit_qemu(&e, p, d, P, derive, dt, &qcpu);
		emit_guest_fs(&e, d);
	}
	if (e.err)
		return e.err;

	/* Update (or create) the previous state before the devices so the
	 * per-device tables can be merged in place. */
	if (!P) {
		P = calloc(1, sizeof(*P));
		if (!P || sdup(&P->uuid, d->uuid) ||
		    vg_hmap_puts(&p->doms, P->uuid, P)) {
			dom_prev_free(P);
			return -ENOMEM;
		}
	}
	if (sdup(&P->name, d->name) || sdup(&P->project, m->project) ||
	    sdup(&P->user, m->user) || sdup(&P->flavor, m->flavor))
		return -ENOMEM;

	for (size_t i = 0; i < d->ndisks; i++) {
		const struct vg_lv_disk *k = &d->disks[i];
		struct disk_prev *dp = find_disk(P, k->dev);
		int dderive = derive && dp;

		if (!dp) {
			dp = one_more((void **)&P->disks, P->ndisks, sizeof(*dp));
			if (!dp || !(dp->dev = strdup(k->dev)))
				return -ENOMEM;
			P->ndisks++;
		}
		dp->gen = p->gen;
		emit_disk(&e, p, d, k, dp, dderive, dt, t);
	}
	for (size_t i = 0; i < d->nnics; i++) {
		const struct vg_lv_nic *n = &d->nics[i];
		struct nic_prev *np = find_nic(P, n->dev);

		if (!np) {
			np = one_more((void **)&P->nics, P->nnics, sizeof(*np));
			if (!np || !(np->dev = strdup(n->dev)))
				return -ENOMEM;
			P->nnics++;
		}
		np->gen = p->gen;
		emit_nic(&e, d, n, t);
	}
	if (e.err)
		return e.err;

	/* Devices that vanished (hot-unplug, or the domain stopped). */
	for (size_t i = 0; i < P->ndisks;) {
		struct disk_prev *dp = &P->disks[i];
		if (dp->gen == p->gen) {
			i++;
			continue;
		}
		device_ended(&e, VG_RT_DISK, d->uuid, dp->dev, m, t);
		free(dp->dev);
		free(dp->source);
		P->disks[i] = P->disks[--P->ndisks];
	}
	for (size_t i = 0; i < P->nnics;) {
		struct nic_prev *np = &P->nics[i];
		if (np->gen == p->gen) {
			i++;
			continue;
		}
		device_ended(&e, VG_RT_NIC, d->uuid, np->dev, m, t);
		free(np->dev);
		P->nics[i] = P->nics[--P->nnics];
	}

	P->id = d->id;
	P->state = d->state;
	P->active = d->active;
	P->time_ms = t;
	P->cpu_time = d->cpu_time_s;
	P->vcpus = d->vcpus;
	P->vcpu_sum = vcpu_sum(d);
	P->wait_sum = sum_of(d->vcpu_wait_s, d->nvcpu_times);
	P->delay_sum = sum_of(d->vcpu_delay_s, d->nvcpu_times);
	P->qemu_cpu = qcpu;
	P->flavor_vcpus = m->flavor_vcpus;
	P->gen = p->gen;
	return e.err;
}

static int ended_domain(struct vg_poller *p, struct dom_prev *P, int64_t t,
			struct vg_batch *b)
{
	struct vg_poll_emit e = {.b = b};
	struct vg_resource *r;

	event(&e, p, P->uuid, P->active ? VG_EV_STOPPED : VG_EV_UNDEFINED, t,
	      "{\"vanished\":true,\"derived\":true}");
	r = vg_poll_resource(&e, VG_RT_INSTANCE, P->uuid, P->name, NULL, t);
	if (r)
		r->state = VG_RSTATE_ENDED;
	vg_poll_identity(&e, P->project, P->user, P->flavor);
	for (size_t i = 0; i < P->ndisks; i++) {
		char id[512];
		snprintf(id, sizeof(id), "%s-%s", P->uuid, P->disks[i].dev);
		r = vg_poll_resource(&e, VG_RT_DISK, id, P->disks[i].dev, P->uuid, t);
		if (r)
			r->state = VG_RSTATE_ENDED;
		vg_poll_identity(&e, P->project, P->user, NULL);
	}
	for (size_t i = 0; i < P->nnics; i++) {
		char id[512];
		snprintf(id, sizeof(id), "%s-%s", P->uuid, P->nics[i].dev);
		r = vg_poll_resource(&e, VG_RT_NIC, id, P->nics[i].dev, P->uuid, t);
		if (r)
			r->state = VG_RSTATE_ENDED;
		vg_poll_identity(&e, P->project, P->user, NULL);
	}
	return e.err;
}

int vg_poller_apply_domains(struct vg_poller *p,
			    const struct vg_lv_snapshot *snap, int64_t time_ms,
			    struct vg_batch *b)
{
	int rc = 0;

	p->gen++;
	for (size_t i = 0; i < snap->ndomains && !rc; i++)
		rc = one_domain(p, &snap->domains[i], time_ms, b);
	if (rc)
		return rc;

	size_t pos = 0;
	const struct vg_hmap_entry *it;
	while ((it = vg_hmap_next(&p->doms, &pos))) {
		struct dom_prev *P = it->value;
		if (P->gen == p->gen)
			continue;
		if ((rc = ended_domain(p, P, time_ms, b)))
			return rc;
		vg_hmap_del(&p->doms, it->key, it->klen);
		dom_prev_free(P);
	}
	p->first_poll = 0;
	return 0;
}

int vg_poller_poll(struct vg_poller *p, int64_t time_ms,
		   const struct vg_poll_extra *extra, size_t nextra,
		   struct vg_batch *b, struct vg_poll_status *st)
{
	struct vg_poll_status dummy;
	struct vg_lv_snapshot snap = {0};
	int64_t start = vg_monotonic_ms();
	int rc = 0, lv_ok = 0;

	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));

	/* Take queued lifecycle events (the hook) first. */
	pthread_mutex_lock(&p->lock);
	p->taken = p->pending;
	p->ntaken = p->npending;
	p->pending = NULL;
	p->npending = p->cap_pending = 0;
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < p->ntaken && !rc; i++)
		rc = vg_batch_event(b, p->taken[i].resource, (uint8_t)p->taken[i].type,
				    p->taken[i].time_ms, p->taken[i].detail);

	/* diskstats first: host-backed instance disks use it. */
	free(p->cur_hdisks);
	p->cur_hdisks = NULL;
	p->ncur_hdisks = 0;
	if (vg_procfs_read(p->proc_root, "diskstats", &p->buf) != 0 ||
	    vg_procfs_parse_diskstats(p->buf.data, &p->cur_hdisks, &p->ncur_hdisks) != 0)
		st->proc_failed |= 8;

	if (!rc && p->lv) {
		int lrc = vg_lv_poll(p->lv, &snap);
		st->libvirt_rc = lrc;
		if (lrc == 0) {
			lv_ok = 1;
			if (p->in_gap)
				st->libvirt_recovered = 1;
			p->in_gap = 0;
			st->ndomains = snap.ndomains;
			for (size_t i = 0; i < snap.ndomains; i++)
				st->nactive += snap.domains[i].active != 0;
			rc = vg_poller_apply_domains(p, &snap, time_ms, b);
		} else if (lrc == -ENOMEM) {
			rc = lrc;
		} else {
			st->libvirt_err = vg_lv_error(p->lv);
			if (lrc != -ENOTCONN)
				p->lv_errors++;
			if (!p->in_gap) {
				char detail[700] = "{\"source\":\"libvirt\",\"error\":";
				json_str(detail, sizeof(detail), vg_lv_error(p->lv));
				strncat(detail, "}", sizeof(detail) - strlen(detail) - 1);
				rc = vg_batch_event(b, p->host, VG_EV_GAP, time_ms, detail);
				p->in_gap = 1;
			}
		}
		vg_lv_snapshot_clear(&snap);
	}
	free_taken(p);
	if (!rc)
		rc = vg_poll_host(p, time_ms, extra, nextra, b, st, start,
				  st->ndomains, st->nactive, lv_ok);
	/* The current diskstats become the previous ones. */
	free(p->hdisks);
	p->hdisks = p->cur_hdisks;
	p->nhdisks = p->ncur_hdisks;
	p->cur_hdisks = NULL;
	p->ncur_hdisks = 0;
	p->host_time_ms = time_ms;
	return rc;
}
