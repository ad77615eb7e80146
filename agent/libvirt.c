/*
 * libvirt.c — the agent's libvirt source (agent/libvirt.h).
 *
 * Design: per poll, one virConnectGetAllDomainStats call; per record the
 * typed parameters are scanned once and dispatched by prefix into the
 * snapshot; groups missing for an active domain are filled by the
 * per-domain fallback calls. Per-domain state that is costly to obtain
 * (parsed XML, pid) lives in a cache keyed by UUID; an entry not seen in
 * a poll is evicted at the end of that poll.
 *
 * Invariants:
 *  - at most one virConnectPtr exists; conn == NULL means disconnected and
 *    next_connect_ms says when the next attempt may happen;
 *  - every snapshot value is NAN unless a libvirt call produced it in this
 *    poll, so a caller can never mistake a stale value for a fresh one;
 *  - a group is marked NO only after an active domain's record lacked it,
 *    and is then no longer requested from the bulk call;
 *  - a domain's identity and flavor (its XML) are of the incarnation its
 *    statistics describe, or the ones read before (refresh_xml).
 *
 * Why one file (~1,200 lines): one source with one connection, one snapshot
 * arena and one per-domain cache. The bulk stats dispatch, the per-domain
 * fallbacks and the guest agent's file systems all fill the same snapshot
 * under the NAN-unless-read-this-poll rule, and the fallbacks exist only for
 * what the dispatch left empty. The domain XML parsing is already its own
 * file (domxml.c).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "vigie/hmap.h"
#include "agent/libvirt.h"
#include "vigie/clock.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define MAX_CPUSTATS 16
#define MAX_BLOCKSTATS 16
#define UNKNOWN_REFRESH 10

struct vg_lv_chunk {
	struct vg_lv_chunk *next;
	size_t used, cap;
	max_align_t data[];
};

struct cache_entry {
	char uuid[VIR_UUID_STRING_BUFLEN];
	int id;
	unsigned age;         /* polls since the XML was read */
	unsigned unknown_age; /* polls since an unknown device forced a read */
	uint64_t gen;         /* last poll that saw the domain */
	unsigned gfs_wait;    /* polls until the guest agent is asked again */
	int gfs_noagent;      /* the last guest-agent call failed */
	int pid;
	struct vg_domxml meta;
};

struct vg_lv {
	char *uri;
	char *run_dir;
	unsigned refresh;
	virConnectPtr conn;
	int64_t next_connect_ms;
	int64_t backoff_ms;
	uint64_t connects;
	uint64_t xml_other; /* XML reads of another incarnation (refresh_xml) */
	void (*after_bulk)(void *ctx);
	void *after_bulk_ctx;
	uint64_t gen;
	int support[VG_LV_NGROUPS];
	int cpustats;   /* enum vg_lv_support for virDomainGetCPUStats */
	int cpustats_n; /* its parameter count */
	int blkflags;   /* ... virDomainBlockStatsFlags */
	int blkinfo;    /* ... virDomainGetBlockInfo */
	int getvcpus;   /* ... virDomainGetVcpus */
	int memstats;   /* ... virDomainMemoryStats */
	int guestinfo;  /* ... virDomainGetGuestInfo */
	unsigned gfs_polls, gfs_retry;
	virConnectPtr gconn; /* read-write, only if the read-only one is
				refused virDomainGetGuestInfo */
	struct vg_lv_guest_stats gst;
	struct vg_hmap cache; /* uuid -> struct cache_entry */
	char err[512];
};

static void silent_error(void *opaque, virErrorPtr e)
{
	(void)opaque;
	(void)e;
}

/* ---- snapshot arena -------------------------------------------------- */

static void *arena_alloc(struct vg_lv_snapshot *s, size_t n)
{
	struct vg_lv_chunk *c = s->arena;

	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	if (!c || c->cap - c->used < n) {
		size_t cap = n > 65536 ? n : 65536;

		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->next = s->arena;
		c->used = 0;
		c->cap = cap;
		s->arena = c;
	}
	void *p = (char *)c->data + c->used;
	c->used += n;
	return p;
}

static const char *arena_strdup(struct vg_lv_snapshot *s, const char *str)
{
	if (!str)
		return NULL;
	size_t l = strlen(str) + 1;
	char *p = arena_alloc(s, l);
	if (p)
		memcpy(p, str, l);
	return p;
}

void vg_lv_snapshot_clear(struct vg_lv_snapshot *snap)
{
	if (!snap)
		return;
	for (struct vg_lv_chunk *c = snap->arena, *n; c; c = n) {
		n = c->next;
		free(c);
	}
	free(snap->domains);
	memset(snap, 0, sizeof(*snap));
}

/* ---- lifecycle --------------------------------------------------------- */

int vg_lv_new(const struct vg_lv_opts *o, struct vg_lv **out)
{
	static int inited;
	struct vg_lv *lv;

	if (!o || !o->uri || !*o->uri)
		return -EINVAL;
	if (!inited) {
		/* libvirt prints every error to stderr by default; the
		 * agent's top level logs what matters, once. */
		virInitialize();
		virSetErrorFunc(NULL, silent_error);
		inited = 1;
	}
	lv = calloc(1, sizeof(*lv));
	if (!lv)
		return -ENOMEM;
	lv->uri = strdup(o->uri);
	lv->run_dir = o->qemu_run_dir ? strdup(o->qemu_run_dir) : NULL;
	vg_hmap_init(&lv->cache);
	if (!lv->uri || (o->qemu_run_dir && !lv->run_dir)) {
		vg_lv_free(lv);
		return -ENOMEM;
	}
	lv->refresh = o->xml_refresh_polls ? o->xml_refresh_polls : 60;
	lv->after_bulk = o->after_bulk;
	lv->after_bulk_ctx = o->after_bulk_ctx;
	lv->gfs_polls = o->guest_fs_polls;
	lv->gfs_retry = o->guest_agent_retry_polls ? o->guest_agent_retry_polls : 60;
	lv->backoff_ms = BACKOFF_MIN_MS;
	*out = lv;
	return 0;
}

static void cache_free(struct cache_entry *e)
{
	if (!e)
		return;
	vg_domxml_clear(&e->meta);
	free(e);
}

void vg_lv_free(struct vg_lv *lv)
{
	if (!lv)
		return;
	vg_lv_disconnect(lv);
	size_t pos = 0;
	const struct vg_hmap_entry *it;
	while ((it = vg_hmap_next(&lv->cache, &pos)))
		cache_free(it->value);
	vg_hmap_release(&lv->cache);
	free(lv->uri);
	free(lv->run_dir);
	free(lv);
}

void vg_lv_disconnect(struct vg_lv *lv)
{
	if (lv && lv->gconn) {
		virConnectClose(lv->gconn);
		lv->gconn = NULL;
	}
	if (!lv || !lv->conn)
		return;
	virConnectClose(lv->conn);
	lv->conn = NULL;
	lv->next_connect_ms = 0;
	lv->backoff_ms = BACKOFF_MIN_MS;
}

int vg_lv_connected(const struct vg_lv *lv)
{
	return lv && lv->conn != NULL;
}

uint64_t vg_lv_connects(const struct vg_lv *lv)
{
	return lv ? lv->connects : 0;
}

uint64_t vg_lv_xml_other(const struct vg_lv *lv)
{
	return lv ? lv->xml_other : 0;
}

const char *vg_lv_error(const struct vg_lv *lv)
{
	return lv ? lv->err : "";
}

int vg_lv_group_support(const struct vg_lv *lv, int group)
{
	if (!lv || group < 0 || group >= VG_LV_NGROUPS)
		return VG_LV_UNKNOWN;
	return lv->support[group];
}

static void set_err(struct vg_lv *lv, const char *what)
{
	const char *m = virGetLastErrorMessage();

	snprintf(lv->err, sizeof(lv->err), "%s: %s", what, m ? m : "unknown error");
}

/* 1 if the last libvirt error says "this driver cannot do that". */
static int last_unsupported(void)
{
	virErrorPtr e = virGetLastError();

	return e && (e->code == VIR_ERR_NO_SUPPORT ||
		     e->code == VIR_ERR_ARGUMENT_UNSUPPORTED);
}

static int do_connect(struct vg_lv *lv)
{
	int64_t now = vg_monotonic_ms();

	if (now < lv->next_connect_ms)
		return -ENOTCONN;
	lv->conn = virConnectOpenReadOnly(lv->uri);
	if (!lv->conn) {
		set_err(lv, "cannot connect to libvirt");
		lv->next_connect_ms = now + lv->backoff_ms;
		lv->backoff_ms *= 2;
		if (lv->backoff_ms > BACKOFF_MAX_MS)
			lv->backoff_ms = BACKOFF_MAX_MS;
		return -ECONNREFUSED;
	}
	lv->backoff_ms = BACKOFF_MIN_MS;
	lv->connects++;
	return 0;
}

/* ---- XML cache ---------------------------------------------------------- */

static int read_pid(const char *dir, const char *name)
{
	char path[1024], buf[32];
	FILE *f;
	int pid = 0;

	if (!dir || !name)
		return 0;
	if (snprintf(path, sizeof(path), "%s/%s.pid", dir, name) >= (int)sizeof(path))
		return 0;
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f)) {
		char *end;
		long v = strtol(buf, &end, 10);
		if (end != buf && v > 0 && v < (1L << 30))
			pid = (int)v;
	}
	fclose(f);
	return pid;
}

/* Re-read a domain's XML into e for the incarnation the poll's statistics
 * describe (id, -1 for a domain that is not running). On failure the old
 * data stays (stale identity is better than none) and the next poll tries
 * again. The XML is read after the bulk call: a domain stopped, redefined
 * or started in between gives the XML of another incarnation (a resize's
 * new flavor on the run that is still the old one, tests/unit/
 * libvirt_test.c, test_xml_of_another_incarnation): its id tells, and the
 * old data stays for this poll, unless there is none yet. */
static void refresh_xml(struct vg_lv *lv, virDomainPtr dom,
			struct cache_entry *e, int active, int id, int fresh)
{
	char *xml = virDomainGetXMLDesc(dom, 0);
	struct vg_domxml m;

	if (!xml) {
		e->age = lv->refresh; /* retry next poll */
		return;
	}
	if (vg_domxml_parse(xml, &m) == 0) {
		int other = m.id != (id < 0 ? -1 : id);
		if (other && !fresh) {
			vg_domxml_clear(&m);
			lv->xml_other++;
		} else {
			vg_domxml_clear(&e->meta);
			e->meta = m;
		}
		e->age = other ? lv->refresh : 0;
	} else {
		e->age = lv->refresh;
	}
	free(xml);
	e->pid = active ? read_pid(lv->run_dir, virDomainGetName(dom)) : 0;
}

/* ---- typed-parameter dispatch ----------------------------------------- */

static double tp_num(const virTypedParameter *p)
{
	switch (p->type) {
	case VIR_TYPED_PARAM_INT: return p->value.i;
	case VIR_TYPED_PARAM_UINT: return p->value.ui;
	case VIR_TYPED_PARAM_LLONG: return (double)p->value.l;
	case VIR_TYPED_PARAM_ULLONG: return (double)p->value.ul;
	case VIR_TYPED_PARAM_DOUBLE: return p->value.d;
	case VIR_TYPED_PARAM_BOOLEAN: return p->value.b;
	default: return NAN;
	}
}

static int is_active_state(int st)
{
	return st == VIR_DOMAIN_RUNNING || st == VIR_DOMAIN_BLOCKED ||
	       st == VIR_DOMAIN_PAUSED || st == VIR_DOMAIN_SHUTDOWN ||
	       st == VIR_DOMAIN_PMSUSPENDED;
}

static void init_domain(struct vg_lv_domain *d)
{
	memset(d, 0, sizeof(*d));
	d->id = -1;
	d->cpu_time_s = d->cpu_user_s = d->cpu_system_s = NAN;
	d->vcpus = NAN;
	d->mem_current = d->mem_max = d->mem_available = d->mem_unused = NAN;
	d->mem_usable = d->mem_rss = d->mem_swap_in = d->mem_swap_out = NAN;
	d->mem_major_faults = d->mem_minor_faults = d->mem_disk_caches = NAN;
}

static void init_disk(struct vg_lv_disk *k)
{
	k->rd_reqs = k->rd_bytes = k->rd_time_s = NAN;
	k->wr_reqs = k->wr_bytes = k->wr_time_s = NAN;
	k->fl_reqs = k->fl_time_s = k->errors = NAN;
	k->capacity = k->allocation = k->physical = NAN;
}

static void init_nic(struct vg_lv_nic *n)
{
	n->rx_bytes = n->rx_packets = n->rx_errs = n->rx_drop = NAN;
	n->tx_bytes = n->tx_packets = n->tx_errs = n->tx_drop = NAN;
}

/* Parse "<N>.<rest>" after a group prefix; returns rest or NULL. */
static const char *index_field(const char *s, size_t *idx)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (end == s || *end != '.' || v > 4096)
		return NULL;
	*idx = v;
	return end + 1;
}

struct bulk {
	int have[VG_LV_NGROUPS];
	size_t nblock, nnet, nvcpu;
	/* Indexed by the bulk call's own numbering. */
	struct vg_lv_disk *blocks;
	struct vg_lv_nic *nets;
	double *vcpu_time, *vcpu_wait, *vcpu_delay;
	int have_wait, have_delay;
};

/* Count arrays first so a record is scanned twice at most. */
static int bulk_sizes(const virTypedParameter *params, int nparams,
		      struct bulk *b)
{
	for (int i = 0; i < nparams; i++) {
		const virTypedParameter *p = &params[i];
		double v = tp_num(p);

		if (!strcmp(p->field, "block.count") && v >= 0 && v <= 4096)
			b->nblock = (size_t)v;
		else if (!strcmp(p->field, "net.count") && v >= 0 && v <= 4096)
			b->nnet = (size_t)v;
		else if (!strcmp(p->field, "vcpu.maximum") && v >= 0 && v <= 4096)
			b->nvcpu = (size_t)v;
		else if (!strcmp(p->field, "vcpu.current") && v >= 0 && v <= 4096 &&
			 (size_t)v > b->nvcpu)
			b->nvcpu = (size_t)v;
	}
	return 0;
}

static void bulk_block(struct vg_lv_snapshot *s, struct vg_lv_disk *k,
		       const char *f, const virTypedParameter *p)
{
	double v = tp_num(p);

	if (!strcmp(f, "name")) {
		if (p->type == VIR_TYPED_PARAM_STRING)
			k->dev = arena_strdup(s, p->value.s);
	} else if (!strcmp(f, "rd.reqs")) k->rd_reqs = v;
	else if (!strcmp(f, "rd.bytes")) k->rd_bytes = v;
	else if (!strcmp(f, "rd.times")) k->rd_time_s = v / 1e9;
	else if (!strcmp(f, "wr.reqs")) k->wr_reqs = v;
	else if (!strcmp(f, "wr.bytes")) k->wr_bytes = v;
	else if (!strcmp(f, "wr.times")) k->wr_time_s = v / 1e9;
	else if (!strcmp(f, "fl.reqs")) k->fl_reqs = v;
	else if (!strcmp(f, "fl.times")) k->fl_time_s = v / 1e9;
	else if (!strcmp(f, "errors")) k->errors = v;
	else if (!strcmp(f, "capacity")) k->capacity = v;
	else if (!strcmp(f, "allocation")) k->allocation = v;
	else if (!strcmp(f, "physical")) k->physical = v;
}

static void bulk_net(struct vg_lv_snapshot *s, struct vg_lv_nic *n,
		     const char *f, const virTypedParameter *p)
{
	double v = tp_num(p);

	if (!strcmp(f, "name")) {
		if (p->type == VIR_TYPED_PARAM_STRING)
			n->dev = arena_strdup(s, p->value.s);
	} else if (!strcmp(f, "rx.bytes")) n->rx_bytes = v;
	else if (!strcmp(f, "rx.pkts")) n->rx_packets = v;
	else if (!strcmp(f, "rx.errs")) n->rx_errs = v;
	else if (!strcmp(f, "rx.drop")) n->rx_drop = v;
	else if (!strcmp(f, "tx.bytes")) n->tx_bytes = v;
	else if (!strcmp(f, "tx.pkts")) n->tx_packets = v;
	else if (!strcmp(f, "tx.errs")) n->tx_errs = v;
	else if (!strcmp(f, "tx.drop")) n->tx_drop = v;
}

static int parse_record(struct vg_lv_snapshot *s, const virTypedParameter *params,
			int nparams, struct vg_lv_domain *d, struct bulk *b)
{
	memset(b, 0, sizeof(*b));
	bulk_sizes(params, nparams, b);
	if (b->nblock && !(b->blocks = arena_alloc(s, b->nblock * sizeof(*b->blocks))))
		return -ENOMEM;
	if (b->nnet && !(b->nets = arena_alloc(s, b->nnet * sizeof(*b->nets))))
		return -ENOMEM;
	if (b->nvcpu && (!(b->vcpu_time = arena_alloc(s, b->nvcpu * sizeof(double))) ||
			 !(b->vcpu_wait = arena_alloc(s, b->nvcpu * sizeof(double))) ||
			 !(b->vcpu_delay = arena_alloc(s, b->nvcpu * sizeof(double)))))
		return -ENOMEM;
	for (size_t i = 0; i < b->nblock; i++) {
		memset(&b->blocks[i], 0, sizeof(b->blocks[i]));
		init_disk(&b->blocks[i]);
	}
	for (size_t i = 0; i < b->nnet; i++) {
		memset(&b->nets[i], 0, sizeof(b->nets[i]));
		init_nic(&b->nets[i]);
	}
	for (size_t i = 0; i < b->nvcpu; i++)
		b->vcpu_time[i] = b->vcpu_wait[i] = b->vcpu_delay[i] = NAN;

	for (int i = 0; i < nparams; i++) {
		const virTypedParameter *p = &params[i];
		const char *f = p->field, *rest;
		double v = tp_num(p);
		size_t idx;

		switch (f[0]) {
		case 's':
			if (!strcmp(f, "state.state"))
				d->state = (int)v;
			else if (!strcmp(f, "state.reason"))
				d->reason = (int)v;
			break;
		case 'c':
			if (strncmp(f, "cpu.", 4))
				break;
			b->have[VG_LV_G_CPU] = 1;
			if (!strcmp(f + 4, "time"))
				d->cpu_time_s = v / 1e9;
			else if (!strcmp(f + 4, "user"))
				d->cpu_user_s = v / 1e9;
			else if (!strcmp(f + 4, "system"))
				d->cpu_system_s = v / 1e9;
			break;
		case 'b':
			if (!strncmp(f, "balloon.", 8)) {
				f += 8;
				b->have[VG_LV_G_BALLOON] = 1;
				if (!strcmp(f, "current")) d->mem_current = v * 1024;
				else if (!strcmp(f, "maximum")) d->mem_max = v * 1024;
				else if (!strcmp(f, "swap_in")) d->mem_swap_in = v * 1024;
				else if (!strcmp(f, "swap_out")) d->mem_swap_out = v * 1024;
				else if (!strcmp(f, "major_fault")) d->mem_major_faults = v;
				else if (!strcmp(f, "minor_fault")) d->mem_minor_faults = v;
				else if (!strcmp(f, "unused")) d->mem_unused = v * 1024;
				else if (!strcmp(f, "available")) d->mem_available = v * 1024;
				else if (!strcmp(f, "usable")) d->mem_usable = v * 1024;
				else if (!strcmp(f, "rss")) d->mem_rss = v * 1024;
				else if (!strcmp(f, "disk_caches")) d->mem_disk_caches = v * 1024;
			} else if (!strncmp(f, "block.", 6)) {
				b->have[VG_LV_G_BLOCK] = 1;
				if ((rest = index_field(f + 6, &idx)) && idx < b->nblock)
					bulk_block(s, &b->blocks[idx], rest, p);
			}
			break;
		case 'v':
			if (strncmp(f, "vcpu.", 5))
				break;
			b->have[VG_LV_G_VCPU] = 1;
			if (!strcmp(f + 5, "current"))
				d->vcpus = v;
			else if ((rest = index_field(f + 5, &idx)) && idx < b->nvcpu) {
				if (!strcmp(rest, "time")) {
					b->vcpu_time[idx] = v / 1e9;
				} else if (!strcmp(rest, "wait")) {
					b->vcpu_wait[idx] = v / 1e9;
					b->have_wait = 1;
				} else if (!strcmp(rest, "delay")) {
					b->vcpu_delay[idx] = v / 1e9;
					b->have_delay = 1;
				}
			}
			break;
		case 'n':
			if (strncmp(f, "net.", 4))
				break;
			b->have[VG_LV_G_IFACE] = 1;
			if ((rest = index_field(f + 4, &idx)) && idx < b->nnet)
				bulk_net(s, &b->nets[idx], rest, p);
			break;
		default:
			break;
		}
	}
	return 0;
}

/* The per-vCPU arrays of a record, cut to the current vCPU count (the
 * bulk call sizes them by the maximum). */
static void set_vcpu_arrays(struct vg_lv_domain *d, const struct bulk *b)
{
	d->vcpu_time_s = b->vcpu_time;
	d->vcpu_wait_s = b->have_wait ? b->vcpu_wait : NULL;
	d->vcpu_delay_s = b->have_delay ? b->vcpu_delay : NULL;
	d->nvcpu_times = b->nvcpu;
	if (isfinite(d->vcpus) && (size_t)d->vcpus < b->nvcpu)
		d->nvcpu_times = (size_t)d->vcpus;
}

int vg_lv_parse_bulk(struct vg_lv_snapshot *snap, const virTypedParameter *params,
		     int nparams, struct vg_lv_domain *d, unsigned *groups)
{
	struct bulk b;
	int rc;

	init_domain(d);
	if ((rc = parse_record(snap, params, nparams, d, &b)))
		return rc;
	d->active = is_active_state(d->state);
	d->disks = b.blocks;
	d->ndisks = b.nblock;
	d->nics = b.nets;
	d->nnics = b.nnet;
	set_vcpu_arrays(d, &b);
	*groups = 0;
	for (int g = 0; g < VG_LV_NGROUPS; g++)
		if (b.have[g])
			*groups |= 1u << g;
	return 0;
}

/* ---- fallbacks ----------------------------------------------------------- */

static void fb_info(virDomainPtr dom, struct vg_lv_domain *d, int need_cpu,
		    int need_mem, int need_vcpu)
{
	virDomainInfo info;

	if (virDomainGetInfo(dom, &info) < 0)
		return;
	if (need_cpu && d->active)
		d->cpu_time_s = (double)info.cpuTime / 1e9;
	if (need_mem) {
		d->mem_current = (double)info.memory * 1024;
		d->mem_max = (double)info.maxMem * 1024;
	}
	if (need_vcpu)
		d->vcpus = info.nrVirtCpu;
}

static void fb_cpustats(struct vg_lv *lv, virDomainPtr dom,
			struct vg_lv_domain *d)
{
	virTypedParameter p[MAX_CPUSTATS];
	int n;

	if (lv->cpustats == VG_LV_NO)
		return;
	if (lv->cpustats == VG_LV_UNKNOWN) {
		n = virDomainGetCPUStats(dom, NULL, 0, -1, 1, 0);
		if (n < 0) {
			if (last_unsupported())
				lv->cpustats = VG_LV_NO;
			return;
		}
		lv->cpustats = VG_LV_YES;
		lv->cpustats_n = n > MAX_CPUSTATS ? MAX_CPUSTATS : n;
	}
	if (lv->cpustats_n <= 0)
		return;
	memset(p, 0, sizeof(p));
	n = virDomainGetCPUStats(dom, p, (unsigned)lv->cpustats_n, -1, 1, 0);
	for (int i = 0; i < n && i < MAX_CPUSTATS; i++) {
		if (!strcmp(p[i].field, VIR_DOMAIN_CPU_STATS_USERTIME))
			d->cpu_user_s = tp_num(&p[i]) / 1e9;
		else if (!strcmp(p[i].field, VIR_DOMAIN_CPU_STATS_SYSTEMTIME))
			d->cpu_system_s = tp_num(&p[i]) / 1e9;
	}
	if (n > 0)
		virTypedParamsClear(p, n);
}

static void fb_memstats(struct vg_lv *lv, virDomainPtr dom,
			struct vg_lv_domain *d)
{
	virDomainMemoryStatStruct st[VIR_DOMAIN_MEMORY_STAT_NR];
	int n;

	if (lv->memstats == VG_LV_NO)
		return;
	n = virDomainMemoryStats(dom, st, VIR_DOMAIN_MEMORY_STAT_NR, 0);
	if (n < 0) {
		if (last_unsupported())
			lv->memstats = VG_LV_NO;
		return;
	}
	lv->memstats = VG_LV_YES;
	for (int i = 0; i < n; i++) {
		double v = (double)st[i].val;

		switch (st[i].tag) {
		case VIR_DOMAIN_MEMORY_STAT_SWAP_IN: d->mem_swap_in = v * 1024; break;
		case VIR_DOMAIN_MEMORY_STAT_SWAP_OUT: d->mem_swap_out = v * 1024; break;
		case VIR_DOMAIN_MEMORY_STAT_MAJOR_FAULT: d->mem_major_faults = v; break;
		case VIR_DOMAIN_MEMORY_STAT_MINOR_FAULT: d->mem_minor_faults = v; break;
		case VIR_DOMAIN_MEMORY_STAT_UNUSED: d->mem_unused = v * 1024; break;
		case VIR_DOMAIN_MEMORY_STAT_AVAILABLE: d->mem_available = v * 1024; break;
		case VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON: d->mem_current = v * 1024; break;
		case VIR_DOMAIN_MEMORY_STAT_RSS: d->mem_rss = v * 1024; break;
		case VIR_DOMAIN_MEMORY_STAT_USABLE: d->mem_usable = v * 1024; break;
		case VIR_DOMAIN_MEMORY_STAT_DISK_CACHES: d->mem_disk_caches = v * 1024; break;
		default: break;
		}
	}
}

static int fb_vcpus(struct vg_lv *lv, struct vg_lv_snapshot *s,
		    virDomainPtr dom, struct vg_lv_domain *d)
{
	if (lv->getvcpus == VG_LV_NO || !isfinite(d->vcpus) || d->vcpus < 1 ||
	    d->vcpus > 4096)
		return 0;
	int max = (int)d->vcpus;
	virVcpuInfoPtr info = calloc((size_t)max, sizeof(*info));
	if (!info)
		return -ENOMEM;
	int n = virDomainGetVcpus(dom, info, max, NULL, 0);
	if (n < 0) {
		if (last_unsupported())
			lv->getvcpus = VG_LV_NO;
		free(info);
		return 0;
	}
	lv->getvcpus = VG_LV_YES;
	double *t = arena_alloc(s, (size_t)max * sizeof(double));
	if (!t) {
		free(info);
		return -ENOMEM;
	}
	for (int i = 0; i < max; i++)
		t[i] = NAN;
	for (int i = 0; i < n; i++)
		if (info[i].number < (unsigned)max)
			t[info[i].number] = (double)info[i].cpuTime / 1e9;
	d->vcpu_time_s = t;
	d->nvcpu_times = (size_t)max;
	free(info);
	return 0;
}

static void fb_block(struct vg_lv *lv, virDomainPtr dom, struct vg_lv_disk *k)
{
	if (lv->blkflags != VG_LV_NO) {
		virTypedParameter p[MAX_BLOCKSTATS];
		int n = MAX_BLOCKSTATS;

		memset(p, 0, sizeof(p));
		if (virDomainBlockStatsFlags(dom, k->dev, p, &n, 0) < 0) {
			if (last_unsupported())
				lv->blkflags = VG_LV_NO;
			else
				return; /* e.g. the domain stopped meanwhile */
		} else {
			lv->blkflags = VG_LV_YES;
			for (int i = 0; i < n && i < MAX_BLOCKSTATS; i++) {
				const char *f = p[i].field;
				double v = tp_num(&p[i]);

				if (v < 0)
					continue; /* -1: not supported */
				if (!strcmp(f, VIR_DOMAIN_BLOCK_STATS_READ_REQ)) k->rd_reqs = v;
				else if (!strcmp(f, VIR_DOMAIN_BLOCK_STATS_READ_BYTES)) k->rd_bytes = v;
				else if (!strcmp(f, VIR_DOMAIN_BLOCK_STATS_READ_TOTAL_TIMES)) k->rd_time_s = v / 1e9;
				else if (!strcmp(f, VIR_DOMAIN_BLOCK_STATS_WRITE_REQ)) k->wr_reqs = v;
				else if (!strcmp(f, VIR_DOMAIN_BLOCK_STATS_WRITE_BYTES)) k->wr_bytes = v;
				else if (!strcmp(f, VIR_DOMAIN_BLOCK_STATS_WRITE_TOTAL_TIMES)) k->wr_time_s = v / 1e9;
				else if (!strcmp(f, VIR_DOMAIN_BLOCK_STATS_FLUSH_REQ)) k->fl_reqs = v;
				else if (!strcmp(f, VIR_DOMAIN_BLOCK_STATS_FLUSH_TOTAL_TIMES)) k->fl_time_s = v / 1e9;
				else if (!strcmp(f, VIR_DOMAIN_BLOCK_STATS_ERRS)) k->errors = v;
			}
			if (n > 0)
				virTypedParamsClear(p, n);
		}
	}
	if (lv->blkflags == VG_LV_NO) {
		virDomainBlockStatsStruct st;

		if (virDomainBlockStats(dom, k->dev, &st, sizeof(st)) == 0) {
			if (st.rd_req >= 0) k->rd_reqs = (double)st.rd_req;
			if (st.rd_bytes >= 0) k->rd_bytes = (double)st.rd_bytes;
			if (st.wr_req >= 0) k->wr_reqs = (double)st.wr_req;
			if (st.wr_bytes >= 0) k->wr_bytes = (double)st.wr_bytes;
			if (st.errs >= 0) k->errors = (double)st.errs;
		}
	}
	if (lv->blkinfo != VG_LV_NO) {
		virDomainBlockInfo bi;

		if (virDomainGetBlockInfo(dom, k->dev, &bi, 0) == 0) {
			lv->blkinfo = VG_LV_YES;
			k->capacity = (double)bi.capacity;
			k->allocation = (double)bi.allocation;
			k->physical = (double)bi.physical;
		} else if (last_unsupported()) {
			lv->blkinfo = VG_LV_NO;
		}
	}
}

static void fb_nic(virDomainPtr dom, struct vg_lv_nic *n)
{
	virDomainInterfaceStatsStruct st;

	if (virDomainInterfaceStats(dom, n->dev, &st, sizeof(st)) < 0)
		return;
	if (st.rx_bytes >= 0) n->rx_bytes = (double)st.rx_bytes;
	if (st.rx_packets >= 0) n->rx_packets = (double)st.rx_packets;
	if (st.rx_errs >= 0) n->rx_errs = (double)st.rx_errs;
	if (st.rx_drop >= 0) n->rx_drop = (double)st.rx_drop;
	if (st.tx_bytes >= 0) n->tx_bytes = (double)st.tx_bytes;
	if (st.tx_packets >= 0) n->tx_packets = (double)st.tx_packets;
	if (st.tx_errs >= 0) n->tx_errs = (double)st.tx_errs;
	if (st.tx_drop >= 0) n->tx_drop = (double)st.tx_drop;
}

/* ---- guest file systems (QEMU guest agent) ------------------------------ */

static int cmp_fs(const void *a, const void *b)
{
	return strcmp(((const struct vg_lv_fs *)a)->mountpoint,
		      ((const struct vg_lv_fs *)b)->mountpoint);
}

int vg_lv_parse_guest_fs(struct vg_lv_snapshot *s, const virTypedParameter *params,
			 int nparams, struct vg_lv_domain *d)
{
	size_t n = 0;

	d->nfs = 0;
	d->fs = NULL;
	for (int i = 0; i < nparams; i++)
		if (!strcmp(params[i].field, "fs.count")) {
			double v = tp_num(&params[i]);
			if (v >= 0 && v <= 4096)
				n = (size_t)v;
		}
	if (!n)
		return 0;
	struct vg_lv_fs *fs = arena_alloc(s, n * sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		memset(&fs[i], 0, sizeof(fs[i]));
		fs[i].total = fs[i].used = NAN;
	}
	for (int i = 0; i < nparams; i++) {
		const virTypedParameter *p = &params[i];
		const char *rest;
		size_t idx, didx;

		if (strncmp(p->field, "fs.", 3) ||
		    !(rest = index_field(p->field + 3, &idx)) || idx >= n)
			continue;
		struct vg_lv_fs *f = &fs[idx];
		const char *str = p->type == VIR_TYPED_PARAM_STRING ? p->value.s : NULL;
		if (!strcmp(rest, "mountpoint")) {
			if (str && *str && !(f->mountpoint = arena_strdup(s, str)))
				return -ENOMEM;
		} else if (!strcmp(rest, "name")) {
			if (str && !(f->device = arena_strdup(s, str)))
				return -ENOMEM;
		} else if (!strcmp(rest, "fstype")) {
			if (str && !(f->fstype = arena_strdup(s, str)))
				return -ENOMEM;
		} else if (!strcmp(rest, "total-bytes")) {
			f->total = tp_num(p);
		} else if (!strcmp(rest, "used-bytes")) {
			f->used = tp_num(p);
		} else if (!strncmp(rest, "disk.", 5) &&
			   (rest = index_field(rest + 5, &didx)) && didx == 0 &&
			   !strcmp(rest, "alias")) {
			if (str && !(f->disk = arena_strdup(s, str)))
				return -ENOMEM;
		}
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (fs[i].mountpoint)
			fs[k++] = fs[i];
	qsort(fs, k, sizeof(*fs), cmp_fs);
	d->fs = k ? fs : NULL;
	d->nfs = k;
	return 0;
}

static int last_denied(void)
{
	virErrorPtr e = virGetLastError();

	return e && (e->code == VIR_ERR_OPERATION_DENIED ||
		     e->code == VIR_ERR_AUTH_FAILED);
}

/* Ask one running domain's guest agent for its file systems. A failure
 * (no agent in the guest, agent not answering) is counted and puts the
 * domain on the slow retry schedule; nothing is logged per poll. */
static int guest_fs(struct vg_lv *lv, struct vg_lv_snapshot *s,
		    virDomainPtr dom, struct cache_entry *e,
		    struct vg_lv_domain *d)
{
	virTypedParameterPtr params = NULL;
	int n = 0, r, rc = 0, code = 0;

	if (lv->guestinfo == VG_LV_UNKNOWN) {
		/* Only QEMU domains have a guest agent; asking another driver
		 * (the test driver refuses the call on a read-only connection,
		 * and a read-write one re-reads its whole node file) costs
		 * without ever answering. */
		const char *type = virConnectGetType(lv->conn);
		if (!type || strcasecmp(type, "QEMU")) {
			lv->guestinfo = VG_LV_NO;
			lv->gst.supported = VG_LV_NO;
			return 0;
		}
	}
	lv->gst.queries++;
	r = virDomainGetGuestInfo(dom, VIR_DOMAIN_GUEST_INFO_FILESYSTEM,
				  &params, &n, 0);
	if (r < 0 && last_denied()) {
		/* Guest-agent calls are refused on read-only connections by
		 * some libvirt versions: ask through a read-write one. */
		if (!lv->gconn)
			lv->gconn = virConnectOpen(lv->uri);
		virDomainPtr gd = lv->gconn ? virDomainLookupByUUIDString(lv->gconn, e->uuid) : NULL;
		if (!lv->gconn) {
			lv->guestinfo = VG_LV_NO;
			lv->gst.supported = VG_LV_NO;
			return 0;
		}
		r = gd ? virDomainGetGuestInfo(gd, VIR_DOMAIN_GUEST_INFO_FILESYSTEM,
					       &params, &n, 0)
		       : -1;
		code = r < 0 && virGetLastError() ? virGetLastError()->code : 0;
		if (gd)
			virDomainFree(gd); /* resets the last error */
	} else if (r < 0) {
		code = virGetLastError() ? virGetLastError()->code : 0;
	}
	if (r < 0) {
		/* Only "the driver has no such call" stops asking for good: a
		 * guest without an agent channel says ARGUMENT_UNSUPPORTED
		 * ("QEMU guest agent is not configured"), a per-domain fact. */
		if (code == VIR_ERR_NO_SUPPORT && lv->guestinfo != VG_LV_YES) {
			lv->guestinfo = VG_LV_NO; /* the driver cannot: never again */
			lv->gst.supported = VG_LV_NO;
			return 0;
		}
		lv->gst.failures++;
		e->gfs_noagent = 1;
		e->gfs_wait = lv->gfs_retry - 1;
		return 0;
	}
	lv->guestinfo = VG_LV_YES;
	lv->gst.supported = VG_LV_YES;
	e->gfs_noagent = 0;
	e->gfs_wait = lv->gfs_polls - 1;
	rc = vg_lv_parse_guest_fs(s, params, n, d);
	virTypedParamsFree(params, n);
	return rc;
}

void vg_lv_guest_stats(const struct vg_lv *lv, struct vg_lv_guest_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!lv)
		return;
	*out = lv->gst;
	out->supported = lv->guestinfo;
	size_t pos = 0;
	const struct vg_hmap_entry *it;
	while ((it = vg_hmap_next(&lv->cache, &pos)))
		out->no_agent += ((const struct cache_entry *)it->value)->gfs_noagent != 0;
}

/* ---- one domain ------------------------------------------------------- */

/* Does the bulk call name a device the cached XML does not know? */
static int unknown_devices(const struct bulk *b, const struct vg_domxml *m)
{
	for (size_t i = 0; i < b->nblock; i++)
		if (b->blocks[i].dev && !vg_domxml_has_disk(m, b->blocks[i].dev))
			return 1;
	for (size_t i = 0; i < b->nnet; i++)
		if (b->nets[i].dev && !vg_domxml_has_nic(m, b->nets[i].dev))
			return 1;
	return 0;
}

static int one_domain(struct vg_lv *lv, struct vg_lv_snapshot *s,
		      const virDomainStatsRecord *r, struct vg_lv_domain *d)
{
	virDomainPtr dom = r->dom;
	char uuid[VIR_UUID_STRING_BUFLEN];
	struct bulk b;
	int rc;

	init_domain(d);
	if (virDomainGetUUIDString(dom, uuid) < 0)
		return -ENOENT;
	unsigned int id = virDomainGetID(dom);
	d->id = id == (unsigned int)-1 ? -1 : (int)id;
	if ((rc = parse_record(s, r->params, r->nparams, d, &b)))
		return rc;
	d->active = is_active_state(d->state);

	struct cache_entry *e = vg_hmap_gets(&lv->cache, uuid);
	int fresh = 0;
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		memcpy(e->uuid, uuid, sizeof(uuid));
		vg_domxml_clear(&e->meta);
		e->id = -2;
		if ((rc = vg_hmap_puts(&lv->cache, uuid, e))) {
			free(e);
			return rc;
		}
		fresh = 1;
	}
	/* A device the XML does not list is probably hot-plugged: re-read,
	 * but at most every UNKNOWN_REFRESH polls, so a device libvirt lists
	 * and the XML never will cannot force a read on every poll. */
	e->unknown_age++;
	int unknown = e->unknown_age >= UNKNOWN_REFRESH && unknown_devices(&b, &e->meta);
	if (fresh || e->id != d->id || ++e->age >= lv->refresh || unknown) {
		refresh_xml(lv, dom, e, d->active, d->id, fresh);
		if (unknown)
			e->unknown_age = 0;
	}
	e->id = d->id;
	e->gen = lv->gen;
	d->meta = &e->meta;
	d->pid = d->active ? e->pid : 0;
	d->uuid = arena_strdup(s, uuid);
	d->name = arena_strdup(s, e->meta.name ? e->meta.name : virDomainGetName(dom));
	if (!d->uuid || !d->name)
		return -ENOMEM;

	/* Learn group support from active domains only: an inactive
	 * domain's record is legitimately empty. */
	if (d->active) {
		for (int g = 0; g < VG_LV_NGROUPS; g++) {
			if (b.have[g])
				lv->support[g] = VG_LV_YES;
			else if (lv->support[g] != VG_LV_YES)
				lv->support[g] = VG_LV_NO;
		}
	}

	int need_cpu = !b.have[VG_LV_G_CPU], need_mem = !b.have[VG_LV_G_BALLOON];
	int need_vcpu = !b.have[VG_LV_G_VCPU];
	if (need_cpu || need_mem || need_vcpu)
		fb_info(dom, d, need_cpu, need_mem, need_vcpu);
	if (!d->active)
		return 0; /* no live statistics for a domain without a process */
	if (need_cpu)
		fb_cpustats(lv, dom, d);
	if (need_mem)
		fb_memstats(lv, dom, d);
	if (need_vcpu) {
		if ((rc = fb_vcpus(lv, s, dom, d)))
			return rc;
	} else if (b.nvcpu) {
		set_vcpu_arrays(d, &b);
	}

	if (lv->gfs_polls && lv->guestinfo != VG_LV_NO &&
	    (d->state == VIR_DOMAIN_RUNNING || d->state == VIR_DOMAIN_BLOCKED)) {
		if (e->gfs_wait > 0)
			e->gfs_wait--;
		else if ((rc = guest_fs(lv, s, dom, e, d)))
			return rc;
	} else {
		e->gfs_noagent = 0; /* not running: nothing to wait for */
	}

	const struct vg_domxml *m = &e->meta;
	if (!b.have[VG_LV_G_BLOCK]) {
		if (m->ndisks && !(d->disks = arena_alloc(s, m->ndisks * sizeof(*d->disks))))
			return -ENOMEM;
		for (size_t i = 0; i < m->ndisks; i++) {
			if (!m->disks[i].reported)
				continue;
			struct vg_lv_disk *k = &d->disks[d->ndisks++];
			memset(k, 0, sizeof(*k));
			init_disk(k);
			k->dev = m->disks[i].dev;
			k->source = m->disks[i].source;
			fb_block(lv, dom, k);
		}
	} else {
		/* Skip what the XML says is a cdrom/floppy; a device the XML
		 * does not know yet (hot-plug) is reported. */
		d->disks = b.blocks;
		for (size_t i = 0; i < b.nblock; i++) {
			struct vg_lv_disk *k = &b.blocks[i];
			const struct vg_domxml_disk *x = vg_domxml_disk(m, k->dev);
			if (!k->dev || (x && !x->reported))
				continue;
			if (x)
				k->source = x->source;
			d->disks[d->ndisks++] = *k;
		}
	}
	if (!b.have[VG_LV_G_IFACE]) {
		if (m->nnics && !(d->nics = arena_alloc(s, m->nnics * sizeof(*d->nics))))
			return -ENOMEM;
		for (size_t i = 0; i < m->nnics; i++) {
			struct vg_lv_nic *n = &d->nics[d->nnics++];
			memset(n, 0, sizeof(*n));
			init_nic(n);
			n->dev = m->nics[i].dev;
			n->mac = m->nics[i].mac;
			fb_nic(dom, n);
		}
	} else {
		d->nics = b.nets;
		for (size_t i = 0; i < b.nnet; i++) {
			struct vg_lv_nic *n = &b.nets[i];
			if (!n->dev)
				continue;
			for (size_t j = 0; j < m->nnics; j++)
				if (!strcmp(m->nics[j].dev, n->dev))
					n->mac = m->nics[j].mac;
			d->nics[d->nnics++] = *n;
		}
	}
	return 0;
}

/* ---- poll ------------------------------------------------------------- */

static unsigned stats_mask(const struct vg_lv *lv)
{
	static const unsigned bits[VG_LV_NGROUPS] = {
		VIR_DOMAIN_STATS_CPU_TOTAL,
		VIR_DOMAIN_STATS_BALLOON,
		VIR_DOMAIN_STATS_VCPU,
		VIR_DOMAIN_STATS_INTERFACE,
		VIR_DOMAIN_STATS_BLOCK,
	};
	unsigned m = VIR_DOMAIN_STATS_STATE;

	for (int g = 0; g < VG_LV_NGROUPS; g++)
		if (lv->support[g] != VG_LV_NO)
			m |= bits[g];
	return m;
}

int vg_lv_poll(struct vg_lv *lv, struct vg_lv_snapshot *snap)
{
	virDomainStatsRecordPtr *recs = NULL;
	int n, rc = 0;

	memset(snap, 0, sizeof(*snap));
	lv->err[0] = '\0';
	if (!lv->conn && (rc = do_connect(lv)))
		return rc;
	n = virConnectGetAllDomainStats(lv->conn, stats_mask(lv), &recs, 0);
	if (n < 0) {
		set_err(lv, "virConnectGetAllDomainStats");
		if (virConnectIsAlive(lv->conn) != 1) {
			virConnectClose(lv->conn);
			lv->conn = NULL;
			lv->next_connect_ms = 0; /* first retry at once */
		}
		return -EIO;
	}
	lv->gen++;
	if (lv->after_bulk)
		lv->after_bulk(lv->after_bulk_ctx);
	if (n > 0) {
		snap->domains = calloc((size_t)n, sizeof(*snap->domains));
		if (!snap->domains) {
			virDomainStatsRecordListFree(recs);
			return -ENOMEM;
		}
	}
	for (int i = 0; i < n; i++) {
		struct vg_lv_domain *d = &snap->domains[snap->ndomains];

		rc = one_domain(lv, snap, recs[i], d);
		if (rc == -ENOMEM)
			break;
		if (rc == 0)
			snap->ndomains++;
		rc = 0;
	}
	virDomainStatsRecordListFree(recs);
	if (rc) {
		vg_lv_snapshot_clear(snap);
		return rc;
	}
	/* Evict cache entries of domains this poll did not see. */
	size_t pos = 0;
	const struct vg_hmap_entry *it;
	while ((it = vg_hmap_next(&lv->cache, &pos))) {
		struct cache_entry *e = it->value;
		if (e->gen != lv->gen) {
			vg_hmap_del(&lv->cache, it->key, it->klen);
			cache_free(e);
		}
	}
	return 0;
}
