/*
 * store.c — the RRD store: one librrd file per (resource, metric).
 *
 * Design. vg_store_write_batch walks a batch resource by resource and
 * writes each sample to <data_dir>/rrd/<type>/<id>/<metric>.rrd with
 * rrd_update_r ("seconds.millis:value", the resource's read time). A file
 * is created on first use with rrd_create_r2 under a temporary name and
 * renamed into place, so a concurrent reader (the HTTP API) never opens a
 * half-written file. Counters use DDERIVE with minimum 0: librrd turns
 * them into rates and a reset (negative delta) into an unknown point.
 *
 * An in-memory open-addressing hash table maps each file path to the time
 * (ms) of its last update. It is filled lazily: the first time a path is
 * touched we ask librrd for the file's last update (whole seconds only, as
 * librrd does not expose the sub-second part), afterwards the table alone
 * decides. Only the writer thread touches the table.
 *
 * Invariants:
 *  - updates to one file are strictly increasing in time: a sample at or
 *    before the table's time is a duplicate (a re-sent batch), skipped and
 *    counted, never handed to librrd. After a restart the table knows the
 *    last update only to the second; librrd's own "illegal attempt to
 *    update" refusal inside that second is then counted as a duplicate too.
 *  - every path is built from vg_name_escape'd components, so no name from
 *    the wire leaves <data_dir>/rrd.
 *  - counters are updated with __atomic builtins: readable from any thread.
 *
 * librrd's error text lives in a per-thread context (rrd_get_context), so
 * rrd_get_error() after an _r call names this thread's failure only.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <rrd.h>

#include "vigie/batch.h"
#include "vigie/name.h"
#include "vigie/store.h"

/* Longest escaped component we accept: a file is created as
 * "<metric>.rrd.tmp" + librrd's own 6-character mkstemp suffix, and all of
 * it must fit in NAME_MAX. */
#define COMPONENT_MAX (NAME_MAX - 16)
#define ESC_MAX (3 * VG_NAME_MAX + 1)

struct slot {
	char *path;      /* NULL: empty slot */
	uint64_t hash;
	int64_t last_ms; /* last update written (or found) */
};

struct vg_store {
	char rrd_dir[PATH_MAX];
	uint32_t step_s;
	uint32_t heartbeat_s;
	struct vg_archive archives[VG_MAX_ARCHIVES];
	size_t narchives;

	struct slot *slots; /* writer thread only */
	size_t cap;         /* power of two */
	size_t used;

	struct vg_store_stats stats; /* __atomic */
	char last_error[512];        /* writer thread only */
};

static void count(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

/* ---- path -> last update table ---------------------------------------- */

static struct slot *table_find(struct vg_store *s, const char *path,
			       uint64_t h)
{
	size_t mask = s->cap - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct slot *sl = &s->slots[i];
		if (!sl->path || (sl->hash == h && !strcmp(sl->path, path)))
			return sl;
	}
}

static int table_grow(struct vg_store *s)
{
	size_t ncap = s->cap ? s->cap * 2 : 1024;
	struct slot *old = s->slots, *ns = calloc(ncap, sizeof(*ns));
	size_t ocap = s->cap;

	if (!ns)
		return -ENOMEM;
	s->slots = ns;
	s->cap = ncap;
	for (size_t i = 0; i < ocap; i++) {
		if (!old[i].path)
			continue;
		*table_find(s, old[i].path, old[i].hash) = old[i];
	}
	free(old);
	return 0;
}

/* Return the slot for path, inserting it (last_ms = INT64_MIN) if new. */
static struct slot *table_get(struct vg_store *s, const char *path)
{
	uint64_t h = fnv1a(path);
	struct slot *sl;

	if ((s->used + 1) * 10 > s->cap * 7 && table_grow(s))
		return NULL;
	sl = table_find(s, path, h);
	if (!sl->path) {
		if (!(sl->path = strdup(path)))
			return NULL;
		sl->hash = h;
		sl->last_ms = INT64_MIN;
		s->used++;
	}
	return sl;
}

/* ---- open / close -------------------------------------------------------- */

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

int vg_store_open(const char *data_dir, const struct vg_config *cfg,
		  struct vg_store **out, char *err, size_t errlen)
{
	struct vg_store *s;
	int rc;

	*out = NULL;
	if (!data_dir || !*data_dir || !cfg) {
		snprintf(err, errlen, "store: no data directory");
		return -EINVAL;
	}
	if (!cfg->storage_step_s || !cfg->narchives ||
	    cfg->narchives > VG_MAX_ARCHIVES ||
	    cfg->storage_heartbeat_s < cfg->storage_step_s) {
		snprintf(err, errlen, "store: bad step, heartbeat or archives");
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg->narchives; i++) {
		const struct vg_archive *a = &cfg->archives[i];
		if (!a->resolution_s || a->resolution_s % cfg->storage_step_s ||
		    a->retention_s < a->resolution_s) {
			snprintf(err, errlen,
				 "store: archive %us:%us is not a multiple of the %us step",
				 a->resolution_s, a->retention_s, cfg->storage_step_s);
			return -EINVAL;
		}
	}
	if (!(s = calloc(1, sizeof(*s)))) {
		snprintf(err, errlen, "store: out of memory");
		return -ENOMEM;
	}
	if ((size_t)snprintf(s->rrd_dir, sizeof(s->rrd_dir), "%s/rrd", data_dir) >=
	    sizeof(s->rrd_dir) - 2 * NAME_MAX - 64) {
		snprintf(err, errlen, "store: data directory path too long");
		free(s);
		return -ENAMETOOLONG;
	}
	s->step_s = cfg->storage_step_s;
	s->heartbeat_s = cfg->storage_heartbeat_s;
	memcpy(s->archives, cfg->archives, sizeof(s->archives));
	s->narchives = cfg->narchives;
	if ((rc = mkdir_p(s->rrd_dir)) || (rc = table_grow(s))) {
		snprintf(err, errlen, "store: %s: %s", s->rrd_dir, strerror(-rc));
		vg_store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void vg_store_close(struct vg_store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->cap; i++)
		free(s->slots[i].path);
	free(s->slots);
	free(s);
}

void vg_store_get_stats(struct vg_store *s, struct vg_store_stats *out)
{
	out->files_created = __atomic_load_n(&s->stats.files_created, __ATOMIC_RELAXED);
	out->values_written = __atomic_load_n(&s->stats.values_written, __ATOMIC_RELAXED);
	out->values_duplicate = __atomic_load_n(&s->stats.values_duplicate, __ATOMIC_RELAXED);
	out->values_rejected = __atomic_load_n(&s->stats.values_rejected, __ATOMIC_RELAXED);
	out->write_errors = __atomic_load_n(&s->stats.write_errors, __ATOMIC_RELAXED);
	out->write_ns_total = __atomic_load_n(&s->stats.write_ns_total, __ATOMIC_RELAXED);
}

const char *vg_store_last_error(const struct vg_store *s)
{
	return s ? s->last_error : "";
}

/* ---- paths ---------------------------------------------------------------- */

static int escape_component(const char *name, char *out, size_t outlen)
{
	int n;

	if (!vg_name_valid(name))
		return -EINVAL;
	n = vg_name_escape(name, out, outlen);
	if (n < 0)
		return n;
	if (n > COMPONENT_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* Directory of a resource: <rrd>/<type>/<escaped id>. */
static int resource_dir(const struct vg_store *s, int rtype, const char *id,
			char *out, size_t outlen)
{
	const char *tname = vg_rtype_name(rtype);
	char esc[ESC_MAX];
	int rc;

	if (!tname)
		return -EINVAL;
	if ((rc = escape_component(id, esc, sizeof(esc))))
		return rc;
	if ((size_t)snprintf(out, outlen, "%s/%s/%s", s->rrd_dir, tname, esc) >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

int vg_store_path(const struct vg_store *s, int rtype, const char *id,
		  const char *metric, char *out, size_t outlen)
{
	char esc[ESC_MAX];
	size_t len;
	int rc;

	if (!s || !out)
		return -EINVAL;
	if ((rc = resource_dir(s, rtype, id, out, outlen)))
		return rc;
	if ((rc = escape_component(metric, esc, sizeof(esc))))
		return rc;
	len = strlen(out);
	if ((size_t)snprintf(out + len, outlen - len, "/%s.rrd", esc) >= outlen - len)
		return -ENAMETOOLONG;
	return 0;
}

/* ---- writing -------------------------------------------------------------- */

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int is_nospace(int err, const char *msg)
{
	return err == ENOSPC || err == EDQUOT ||
	       (msg && (strstr(msg, "No space left") || strstr(msg, "quota exceeded")));
}

static void set_error(struct vg_store *s, const char *path, const char *what)
{
	size_t len = strlen(path);

	/* The tail of a long path is the part that names the series. */
	snprintf(s->last_error, sizeof(s->last_error), "%.300s: %.200s",
		 len > 300 ? path + len - 300 : path, what);
}

/* Size of a new file: 3 consolidation functions per tier, 8 bytes a row,
 * plus a generous header. */
static uint64_t file_bytes(const struct vg_store *s)
{
	uint64_t rows = 0;

	for (size_t i = 0; i < s->narchives; i++)
		rows += s->archives[i].retention_s / s->archives[i].resolution_s;
	return 3 * rows * sizeof(double) + 4096;
}

/* Whether the file system holding path has less than need bytes free. */
static int no_room(const char *path, uint64_t need)
{
	char dir[PATH_MAX];
	struct statvfs v;
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')))
		*slash = '\0';
	if (statvfs(dir, &v))
		return 0;
	return (uint64_t)v.f_bavail * v.f_frsize < need;
}

/* Create the file at path for a series whose first sample is at t_ms.
 * 0, -EAGAIN (disk full), -EIO. */
static int create_file(struct vg_store *s, const char *path, int kind,
		       int64_t t_ms)
{
	char tmp[PATH_MAX], ds[64], rra[3 * VG_MAX_ARCHIVES][64];
	const char *argv[1 + 3 * VG_MAX_ARCHIVES];
	static const char *cfs[] = {"AVERAGE", "MIN", "MAX"};
	int argc = 0, rc, e;
	char *slash;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	slash = strrchr(tmp, '/');
	*slash = '\0';
	if ((rc = mkdir_p(tmp))) {
		set_error(s, tmp, strerror(-rc));
		return is_nospace(-rc, NULL) ? -EAGAIN : -EIO;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;

	snprintf(ds, sizeof(ds), "DS:value:%s:%u:%s:U",
		 kind == VG_KIND_COUNTER ? "DDERIVE" : "GAUGE", s->heartbeat_s,
		 kind == VG_KIND_COUNTER ? "0" : "U");
	argv[argc++] = ds;
	for (size_t i = 0; i < s->narchives; i++) {
		uint32_t pdp = s->archives[i].resolution_s / s->step_s;
		uint32_t rows = s->archives[i].retention_s / s->archives[i].resolution_s;
		for (int c = 0; c < 3; c++) {
			snprintf(rra[argc - 1], sizeof(rra[0]), "RRA:%s:0.5:%u:%u",
				 cfs[c], pdp, rows ? rows : 1);
			argv[argc] = rra[argc - 1];
			argc++;
		}
	}
	unlink(tmp); /* leftover of a crash mid-create */
	rrd_clear_error();
	errno = 0;
	/* last_up one second before the first sample, so it is accepted. */
	rc = rrd_create_r2(tmp, s->step_s, (time_t)(t_ms / 1000) - 1, 0, NULL,
			   NULL, argc, argv);
	e = errno;
	if (rc) {
		/* librrd 1.7 loses the errno of a failed write (it unlinks
		 * its temporary file and reports nothing): ask the file system
		 * whether the file could have fitted. */
		int full = is_nospace(e, rrd_get_error()) ||
			   no_room(tmp, file_bytes(s) + (64u << 10));
		set_error(s, path, *rrd_get_error() ? rrd_get_error() :
				   "librrd could not create the file");
		rrd_clear_error();
		unlink(tmp);
		return full ? -EAGAIN : -EIO;
	}
	if (rename(tmp, path)) {
		e = errno;
		set_error(s, path, strerror(e));
		unlink(tmp);
		return is_nospace(e, NULL) ? -EAGAIN : -EIO;
	}
	count(&s->stats.files_created, 1);
	return 0;
}

/* Write one value. 0 (written or counted), -EAGAIN (disk full). */
static int write_value(struct vg_store *s, const struct vg_resource *r,
		       const struct vg_sample *smp)
{
	char path[PATH_MAX], arg[96];
	const char *argv[1];
	struct slot *sl;
	int rc, e;
	int64_t t = r->time_ms, t0;

	if (!isfinite(smp->value) || t < 1000 ||
	    (smp->kind != VG_KIND_GAUGE && smp->kind != VG_KIND_COUNTER) ||
	    vg_store_path(s, r->type, r->id, smp->metric, path, sizeof(path))) {
		count(&s->stats.values_rejected, 1);
		return 0;
	}
	if (!(sl = table_get(s, path))) {
		count(&s->stats.write_errors, 1);
		set_error(s, path, "out of memory");
		return 0;
	}
	if (sl->last_ms == INT64_MIN) {
		/* First touch (or after an error): ask the file, else create. */
		struct stat st;
		time_t last = rrd_last_r(path);

		rrd_clear_error();
		if (last > 0) {
			sl->last_ms = (int64_t)last * 1000;
		} else if (stat(path, &st) == 0) {
			count(&s->stats.write_errors, 1);
			set_error(s, path, "exists but librrd cannot read it");
			return 0;
		} else if ((rc = create_file(s, path, smp->kind, t))) {
			if (rc == -EAGAIN)
				return rc;
			count(&s->stats.write_errors, 1);
			return 0;
		}
	}
	if (t <= sl->last_ms) {
		count(&s->stats.values_duplicate, 1);
		return 0;
	}

	snprintf(arg, sizeof(arg), "%lld.%03d:%.17g", (long long)(t / 1000),
		 (int)(t % 1000), smp->value);
	argv[0] = arg;
	t0 = mono_ns();
	rrd_clear_error();
	errno = 0;
	rc = rrd_update_r(path, NULL, 1, argv);
	e = errno;
	count(&s->stats.write_ns_total, (uint64_t)(mono_ns() - t0));
	if (rc) {
		const char *msg = rrd_get_error();
		int full = is_nospace(e, msg);
		if (strstr(msg, "illegal attempt to update")) {
			/* At or before the last update, which we knew only to
			 * the second: a duplicate. */
			count(&s->stats.values_duplicate, 1);
			rrd_clear_error();
			return 0;
		}
		set_error(s, path, msg);
		rrd_clear_error();
		if (full)
			return -EAGAIN;
		count(&s->stats.write_errors, 1);
		/* Forget what we know: the next sample re-reads the file. */
		sl->last_ms = INT64_MIN;
		return 0;
	}
	sl->last_ms = t;
	count(&s->stats.values_written, 1);
	return 0;
}

int vg_store_write_batch(struct vg_store *s, const struct vg_batch *b)
{
	if (!s || !b)
		return -EINVAL;
	for (size_t i = 0; i < b->nres; i++) {
		const struct vg_resource *r = &b->res[i];
		const struct vg_sample *smp = vg_resource_samples(b, r);
		for (uint32_t j = 0; j < r->nsamples; j++) {
			int rc = write_value(s, r, &smp[j]);
			if (rc == -EAGAIN)
				return rc;
		}
	}
	return 0;
}

static int consumer_batch(void *ctx, const struct vg_batch *b)
{
	return vg_store_write_batch(ctx, b);
}

struct vg_consumer vg_store_consumer(struct vg_store *s)
{
	struct vg_consumer c = {
		.name = "store",
		.ctx = s,
		.batch = consumer_batch,
		.tick = NULL,
	};
	return c;
}

/* ---- reading -------------------------------------------------------------- */

int vg_cf_parse(const char *s)
{
	if (!s)
		return -EINVAL;
	if (!strcmp(s, "mean") || !strcmp(s, "average") || !strcmp(s, "avg"))
		return VG_CF_AVERAGE;
	if (!strcmp(s, "min"))
		return VG_CF_MIN;
	if (!strcmp(s, "max"))
		return VG_CF_MAX;
	return -EINVAL;
}

void vg_series_free(struct vg_series *s)
{
	if (!s)
		return;
	free(s->points);
	s->points = NULL;
	s->n = 0;
}

struct rra_desc {
	uint32_t res_s;
	time_t cal_start; /* oldest time the archive still covers */
};

/* What rrd_info_r tells about a file: DS kind, last update, and the
 * archives of one consolidation function. */
struct file_desc {
	int kind;
	unsigned long step;
	time_t last_update;
	struct rra_desc rra[32];
	size_t nrra;
};

static int describe(const char *path, const char *cfname, struct file_desc *d)
{
	rrd_info_t *info, *i;
	long cf_of[32], pdp[32], rows[32];
	size_t maxidx = 0;

	memset(d, 0, sizeof(*d));
	for (int k = 0; k < 32; k++)
		cf_of[k] = pdp[k] = rows[k] = -1;
	info = rrd_info_r(path);
	if (!info) {
		rrd_clear_error();
		return -EIO;
	}
	for (i = info; i; i = i->next) {
		unsigned idx;
		char field[32];

		if (!strcmp(i->key, "step") && i->type == RD_I_CNT)
			d->step = i->value.u_cnt;
		else if (!strcmp(i->key, "last_update") && i->type == RD_I_CNT)
			d->last_update = (time_t)i->value.u_cnt;
		else if (!strcmp(i->key, "ds[value].type") && i->type == RD_I_STR)
			d->kind = !strcmp(i->value.u_str, "GAUGE") ? VG_KIND_GAUGE :
				  VG_KIND_COUNTER;
		else if (sscanf(i->key, "rra[%u].%31s", &idx, field) == 2 && idx < 32) {
			if (!strcmp(field, "cf") && i->type == RD_I_STR)
				cf_of[idx] = !strcmp(i->value.u_str, cfname);
			else if (!strcmp(field, "pdp_per_row") && i->type == RD_I_CNT)
				pdp[idx] = (long)i->value.u_cnt;
			else if (!strcmp(field, "rows") && i->type == RD_I_CNT)
				rows[idx] = (long)i->value.u_cnt;
			if (idx + 1 > maxidx)
				maxidx = idx + 1;
		}
	}
	rrd_info_free(info);
	if (!d->step || !d->kind)
		return -EIO;
	for (size_t k = 0; k < maxidx; k++) {
		if (cf_of[k] != 1 || pdp[k] <= 0 || rows[k] <= 0)
			continue;
		struct rra_desc *r = &d->rra[d->nrra++];
		time_t res = (time_t)(pdp[k] * (long)d->step);
		time_t cal_end = d->last_update - d->last_update % res;
		r->res_s = (uint32_t)res;
		r->cal_start = cal_end - res * rows[k];
	}
	return d->nrra ? 0 : -EIO;
}

int vg_store_fetch(struct vg_store *s, int rtype, const char *id,
		   const char *metric, int cf, int64_t start_ms,
		   int64_t end_ms, uint32_t resolution_s, int keep_unknown,
		   struct vg_series *out)
{
	static const char *cfnames[] = {"AVERAGE", "MIN", "MAX"};
	char path[PATH_MAX];
	struct file_desc d;
	struct stat st;
	const struct rra_desc *pick = NULL;
	time_t start, end;
	unsigned long step, ds_cnt = 0;
	char **ds_namv = NULL;
	rrd_value_t *data = NULL;
	int rc;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!s || cf < VG_CF_AVERAGE || cf > VG_CF_MAX || start_ms > end_ms ||
	    start_ms < 0)
		return -EINVAL;
	if ((rc = vg_store_path(s, rtype, id, metric, path, sizeof(path))))
		return rc == -ENAMETOOLONG ? -EINVAL : rc;
	if (stat(path, &st))
		return errno == ENOENT ? -ENOENT : -EIO;
	if ((rc = describe(path, cfnames[cf], &d)))
		return rc;

	start = (time_t)(start_ms / 1000);
	end = (time_t)((end_ms + 999) / 1000);
	if (resolution_s) {
		for (size_t k = 0; k < d.nrra; k++)
			if (d.rra[k].res_s == resolution_s)
				pick = &d.rra[k];
		if (!pick)
			return -EINVAL;
	} else {
		/* Finest archive covering start, else the longest-reaching. */
		for (size_t k = 0; k < d.nrra; k++) {
			const struct rra_desc *r = &d.rra[k];
			if (r->cal_start <= start &&
			    (!pick || pick->cal_start > start || r->res_s < pick->res_s))
				pick = r;
			else if (!pick || (pick->cal_start > start &&
					   r->cal_start < pick->cal_start))
				pick = r;
		}
	}
	out->resolution_s = pick->res_s;
	out->kind = d.kind;
	/* Clamp to what the archive holds, so rrd_fetch_r (which would switch
	 * to another archive for a partial match) reads exactly this one. */
	if (start < pick->cal_start)
		start = pick->cal_start;
	if (start >= end)
		return 0;

	step = pick->res_s;
	rrd_clear_error();
	if (rrd_fetch_r(path, cfnames[cf], &start, &end, &step, &ds_cnt,
			&ds_namv, &data)) {
		rrd_clear_error();
		return -EIO;
	}
	rc = 0;
	if (ds_cnt != 1 || step != pick->res_s) {
		rc = -EIO;
		goto done;
	}
	size_t rows = (size_t)((end - start) / (time_t)step);
	out->points = malloc((rows ? rows : 1) * sizeof(*out->points));
	if (!out->points) {
		rc = -ENOMEM;
		goto done;
	}
	for (size_t k = 0; k < rows; k++) {
		/* Row k covers (start + k*step, start + (k+1)*step]; rrdtool
		 * prints it at the end, we name it by its start. */
		int64_t t = ((int64_t)start + (int64_t)(k * step)) * 1000;
		double v = data[k];
		if (t + (int64_t)step * 1000 <= start_ms || t > end_ms)
			continue;
		if (isnan(v) && !keep_unknown)
			continue;
		out->points[out->n].time_ms = t;
		out->points[out->n].value = v;
		out->n++;
	}
done:
	for (unsigned long k = 0; ds_namv && k < ds_cnt; k++)
		free(ds_namv[k]);
	free(ds_namv);
	free(data);
	if (rc)
		vg_series_free(out);
	return rc;
}
