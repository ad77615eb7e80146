/*
 * rrd_backend_test.c — the store's RRD engine interface (collector/backend.h),
 * run against every engine in the table below (files; rrdcached, whose
 * entry starts a real daemon with -b -B -O on a unix socket and whose
 * second entry reaches it over loopback TCP), so every engine keeps the same
 * contract: locate confines names, create/last_ms/update/info/fetch agree,
 * last updates are exact to the millisecond, duplicates and refused values
 * never take other values with them, remove deletes, sync succeeds.
 *
 * Real librrd files in a temporary directory, real rrdcached; no mocks.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <rrd.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "collector/backend.h"
#include "rrdcached_harness.h"

#define T0 1699999980LL /* a minute boundary */
#define MS(s) ((int64_t)(s)*1000)

/* ---- the engines ------------------------------------------------------------- */

struct engine {
	const char *name;
	/* Open an engine storing under dir; 0 or -errno. */
	int (*open)(const char *dir, struct vg_rrd_backend **out);
	int ms_exact; /* last_ms exact to the ms (rrdcached: to the second) */
	int relative; /* paths relative to the daemon's base dir */
};

/* The daemons of the rrdcached engines (one each, per test). */
static struct hrd_daemon daemon1, daemon2;

static int open_rrdcached(struct hrd_daemon *d, int tcp, const char *dir,
			  struct vg_rrd_backend **out)
{
	static const char *const extra[] = {"-O", "-R", NULL};
	char owners[PATH_MAX], err[256];

	int rc;

	if ((size_t)snprintf(owners, sizeof(owners), "%s.owners", dir) >= sizeof(owners))
		return -ENAMETOOLONG;
	if ((rc = hrd_start(d, NULL, extra)))
		return rc;
	return vg_rrd_rrdcached_open(tcp ? d->tcp_addr : d->unix_addr, d->base, owners, out,
				     err, sizeof(err));
}

static int open_rrdcached_unix(const char *dir, struct vg_rrd_backend **out)
{
	return open_rrdcached(&daemon1, 0, dir, out);
}

static int open_rrdcached_tcp(const char *dir, struct vg_rrd_backend **out)
{
	return open_rrdcached(&daemon2, 1, dir, out);
}

static int open_files(const char *dir, struct vg_rrd_backend **out)
{
	char rrd[PATH_MAX], undo[PATH_MAX], err[256];

	if ((size_t)snprintf(rrd, sizeof(rrd), "%s/rrd", dir) >= sizeof(rrd) ||
	    (size_t)snprintf(undo, sizeof(undo), "%s/undo", dir) >= sizeof(undo))
		return -ENAMETOOLONG;
	return vg_rrd_files_open(rrd, undo, out, err, sizeof(err));
}

static const struct engine engines[] = {
	{"files", open_files, 1, 0},
	{"rrdcached", open_rrdcached_unix, 0, 1},
	{"rrdcached", open_rrdcached_tcp, 0, 1},
};
#define NENGINES (sizeof(engines) / sizeof(engines[0]))

/* ---- fixture ------------------------------------------------------------------- */

struct fixture {
	char dir[64];
	struct vg_archive archives[VG_MAX_ARCHIVES];
	struct vg_rrd_layout lay;
	struct vg_rrd_backend *be[NENGINES];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vigie-backend-test.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->lay.step_s = 60;
	f->lay.heartbeat_s = 600;
	f->lay.archives = f->archives;
	if (vg_config_parse_archives("1m:1d,5m:7d", f->archives, VG_MAX_ARCHIVES,
				     &f->lay.narchives))
		return -1;
	for (size_t e = 0; e < NENGINES; e++) {
		char sub[256];
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s%zu", f->dir, engines[e].name, e) >=
			    sizeof(sub) ||
		    engines[e].open(sub, &f->be[e]))
			return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	for (size_t e = 0; e < NENGINES; e++)
		if (f->be[e])
			f->be[e]->ops->close(f->be[e]);
	hrd_cleanup(&daemon1);
	hrd_cleanup(&daemon2);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", f->dir);
	free(f);
	return 0;
}

/* Create (rtype, id, metric) with its first sample at t_ms. */
static void create(struct vg_rrd_backend *be, const struct vg_rrd_layout *lay,
		   const char *id, const char *metric, int kind, int64_t t_ms,
		   struct vg_rrd_loc *loc)
{
	char msg[512] = "";

	assert_int_equal(be->ops->locate(be, VG_RT_HOST, id, metric, loc), 0);
	int rc = be->ops->create(be, loc, kind, t_ms, lay, msg, sizeof(msg), 0);
	if (rc)
		fprintf(stderr, "# create: %s\n", msg);
	assert_int_equal(rc, 0);
}

/* update_many when the engine has it, else update per item: the store's
 * own fallback, so both paths are held to the same results. */
static void update_items(struct vg_rrd_backend *be, struct vg_rrd_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		memset(&items[i].res, 0, sizeof(items[i].res));
	if (be->ops->update_many) {
		be->ops->update_many(be, items, n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		be->ops->update(be, items[i].loc, items[i].v, items[i].n, &items[i].res);
}

/* ---- cases ------------------------------------------------------------------------ */

/* Names are confined: the path of any valid name stays under the engine's
 * base; an invalid type or name is refused before any I/O. */
static void test_locate(void **state)
{
	struct fixture *f = *state;

	for (size_t e = 0; e < NENGINES; e++) {
		struct vg_rrd_backend *be = f->be[e];
		struct vg_rrd_loc loc;

		assert_int_equal(be->ops->locate(be, VG_RT_HOST, "../../etc", "passwd", &loc), 0);
		if (engines[e].relative) /* resolved in the daemon's -b */
			assert_true(loc.path[0] != '/' && strncmp(loc.path, "..", 2));
		else
			assert_non_null(strstr(loc.path, f->dir));
		assert_null(strstr(loc.path, "/../"));
		assert_int_equal(be->ops->locate(be, 99, "node1", "load.1", &loc), -EINVAL);
		assert_true(be->ops->locate(be, VG_RT_HOST, "", "load.1", &loc) < 0);
		assert_int_equal(be->ops->last_ms(be, &(struct vg_rrd_loc){0}, &(int64_t){0}, 0) < 0, 1);
	}
}

/* A new series reads as absent, then after create its last update is one
 * second before the first sample; many timestamps in one update are all
 * written and the last update is exact to the millisecond (.229 stays
 * .229, although librrd keeps it as 228999 us). */
static void test_create_update_last(void **state)
{
	struct fixture *f = *state;

	for (size_t e = 0; e < NENGINES; e++) {
		struct vg_rrd_backend *be = f->be[e];
		struct vg_rrd_loc loc;
		struct vg_rrd_value v[300];
		struct vg_rrd_item it = {.loc = &loc, .v = v, .n = 300};
		int64_t last;

		assert_int_equal(be->ops->locate(be, VG_RT_HOST, "node1", "load.1", &loc), 0);
		assert_int_equal(be->ops->last_ms(be, &loc, &last, 0), -ENOENT);
		create(be, &f->lay, "node1", "load.1", VG_KIND_GAUGE, MS(T0), &loc);
		assert_int_equal(be->ops->last_ms(be, &loc, &last, 0), 0);
		assert_int_equal(last, MS(T0 - 1) + (engines[e].ms_exact ? 0 : 999));
		/* more than one engine call's worth (MAX_ARGS is 256 for files) */
		for (int i = 0; i < 300; i++)
			v[i] = (struct vg_rrd_value){MS(T0 + 10 * i) + 229, (double)i};
		update_items(be, &it, 1);
		assert_int_equal(it.res.written, 300);
		assert_int_equal(it.res.failed, 0);
		assert_int_equal(it.res.duplicate, 0);
		assert_string_equal(it.res.msg, "");
		assert_int_equal(be->ops->last_ms(be, &loc, &last, 0), 0);
		/* rrdcached knows whole seconds: the end of the last one
		 * (backend_rrdcached.c) */
		assert_int_equal(last, MS(T0 + 2990) + (engines[e].ms_exact ? 229 : 999));
		assert_int_equal(be->ops->sync(be), 0);
	}
}

/* Values at or before the last update (a replay) are skipped as already
 * stored, the newer ones in the same call still written; a series that
 * does not exist answers its own values missing, never another item's. */
static void test_duplicates_and_errors_per_item(void **state)
{
	struct fixture *f = *state;

	for (size_t e = 0; e < NENGINES; e++) {
		struct vg_rrd_backend *be = f->be[e];
		struct vg_rrd_loc a, gone;
		struct vg_rrd_value first[3] = {{MS(T0 + 60), 1}, {MS(T0 + 120), 2}, {MS(T0 + 180), 3}};
		struct vg_rrd_value again[4] = {{MS(T0 + 120), 2}, {MS(T0 + 180), 3}, {MS(T0 + 240), 4}, {MS(T0 + 300), 5}};
		int64_t last;

		create(be, &f->lay, "node2", "load.1", VG_KIND_GAUGE, MS(T0), &a);
		assert_int_equal(be->ops->locate(be, VG_RT_HOST, "node2", "never.created",
						 &gone),
				 0);
		struct vg_rrd_item items[2] = {{.loc = &a, .v = first, .n = 3},
					       {.loc = &gone, .v = first, .n = 3}};
		update_items(be, items, 2);
		assert_int_equal(items[0].res.written, 3);
		assert_int_equal(items[0].res.failed, 0);
		/* no file: missing, for the store to create it again
		 * (backend.h), not failed */
		assert_int_equal(items[1].res.written, 0);
		assert_int_equal(items[1].res.missing, 3);
		assert_int_equal(items[1].res.failed, 0);

		struct vg_rrd_item it = {.loc = &a, .v = again, .n = 4};
		update_items(be, &it, 1);
		assert_int_equal(it.res.duplicate, 2);
		assert_int_equal(it.res.written, 2);
		assert_int_equal(it.res.failed, 0);
		assert_int_equal(be->ops->last_ms(be, &a, &last, 0), 0);
		assert_int_equal(last, MS(T0 + 300) + (engines[e].ms_exact ? 0 : 999));
	}
}

/* info describes the archives of one consolidation function and the kind;
 * fetch of the 1-minute archive gives back the values written (a gauge
 * holding a constant over each step reads back exactly). */
static void test_info_fetch(void **state)
{
	struct fixture *f = *state;

	for (size_t e = 0; e < NENGINES; e++) {
		struct vg_rrd_backend *be = f->be[e];
		struct vg_rrd_loc loc;
		struct vg_rrd_value v[10];
		struct vg_rrd_result res = {0};
		struct vg_rrd_info info;
		struct vg_rrd_rows rows;
		int found = 0;

		create(be, &f->lay, "node3", "cpu.time", VG_KIND_COUNTER, MS(T0), &loc);
		assert_int_equal(be->ops->info(be, &loc, VG_CF_MAX, &info), 0);
		assert_int_equal(info.kind, VG_KIND_COUNTER);
		create(be, &f->lay, "node3", "mem.used", VG_KIND_GAUGE, MS(T0), &loc);
		for (int i = 0; i < 10; i++)
			v[i] = (struct vg_rrd_value){MS(T0 + 60 * i), 42.5};
		be->ops->update(be, &loc, v, 10, &res);
		assert_int_equal(res.written, 10);
		assert_int_equal(be->ops->info(be, &loc, VG_CF_AVERAGE, &info), 0);
		assert_int_equal(info.kind, VG_KIND_GAUGE);
		assert_int_equal(info.step, 60);
		assert_int_equal(info.nrra, 2);
		assert_int_equal(info.last_update, T0 + 540);
		assert_int_equal(be->ops->fetch(be, &loc, VG_CF_AVERAGE, T0, T0 + 540, 60,
						&rows),
				 0);
		assert_int_equal(rows.step, 60);
		assert_true(rows.n >= 8);
		for (size_t k = 0; k < rows.n; k++)
			if (!isnan(rows.v[k])) {
				assert_true(fabs(rows.v[k] - 42.5) < 1e-9);
				found++;
			}
		assert_true(found >= 8);
		free(rows.v);
		/* a series with no file, beside one that has one (inside the
		 * daemon's -b: a path outside it is refused "Permission
		 * denied" by -B, a fault and not "no such series") */
		assert_true(strlen(loc.path) + 9 < sizeof(loc.path));
		strcat(loc.path, ".missing");
		assert_int_equal(be->ops->info(be, &loc, VG_CF_AVERAGE, &info), -ENOENT);
	}
}

/* remove deletes the series: absent afterwards, a second remove says so,
 * and an update answers its values missing until it is created again. */
static void test_remove(void **state)
{
	struct fixture *f = *state;

	for (size_t e = 0; e < NENGINES; e++) {
		struct vg_rrd_backend *be = f->be[e];
		struct vg_rrd_loc loc;
		int64_t last;

		create(be, &f->lay, "node4", "load.1", VG_KIND_GAUGE, MS(T0), &loc);
		assert_int_equal(be->ops->remove(be, &loc), 0);
		assert_int_equal(be->ops->last_ms(be, &loc, &last, 0), -ENOENT);
		assert_int_equal(be->ops->remove(be, &loc), -ENOENT);
		/* an update of a series whose file is gone: its values are
		 * missing (for the store to create the file again), not
		 * failed (backend.h) */
		struct vg_rrd_value v[2] = {{MS(T0 + 60), 1}, {MS(T0 + 120), 2}};
		struct vg_rrd_result res = {0};
		be->ops->update(be, &loc, v, 2, &res);
		assert_int_equal(res.missing, 2);
		assert_int_equal(res.written, 0);
		assert_int_equal(res.failed, 0);
		assert_int_equal(res.unavailable, 0);
		/* created again, the same values go in */
		assert_int_equal(be->ops->create(be, &loc, VG_KIND_GAUGE, MS(T0 + 60) - 59000,
						 &f->lay, (char[256]){0}, 256, 0),
				 0);
		memset(&res, 0, sizeof(res));
		be->ops->update(be, &loc, v, 2, &res);
		assert_int_equal(res.written, 2);
		assert_int_equal(res.missing, 0);
		assert_int_equal(be->ops->last_ms(be, &loc, &last, 0), 0);
		assert_true(last >= MS(T0 + 120));
	}
}

/* A file whose type directory is gone with it (host/ renamed away: what
 * an unmounted volume looks like) is out of reach, not deleted: its values answer
 * unavailable (dir_missing), never missing, so the store creates nothing
 * at the old path; once the directory is back the same values are
 * written to the real file. rrdcached: the daemon (with -R) answers the
 * UPDATE "No such file" either way, and its LIST of the directory tells
 * them apart. Fails without the check: the values answer missing. */
static void test_dir_gone(void **state)
{
	struct fixture *f = *state;

	for (size_t e = 0; e < NENGINES; e++) {
		struct vg_rrd_backend *be = f->be[e];
		struct vg_rrd_loc loc;
		char full[PATH_MAX * 2], dir[PATH_MAX * 2], away[PATH_MAX * 2 + 8];
		struct stat sb;
		int64_t last;

		create(be, &f->lay, "node6", "load.1", VG_KIND_GAUGE, MS(T0), &loc);
		if (engines[e].relative)
			snprintf(full, sizeof(full), "%s/%s", e == 1 ? daemon1.base : daemon2.base,
				 loc.path);
		else
			snprintf(full, sizeof(full), "%s", loc.path);
		snprintf(dir, sizeof(dir), "%s", full);
		*strrchr(dir, '/') = '\0';
		*strrchr(dir, '/') = '\0'; /* the type directory */
		snprintf(away, sizeof(away), "%s.away", dir);
		assert_int_equal(rename(dir, away), 0);

		struct vg_rrd_value v[2] = {{MS(T0 + 60), 1}, {MS(T0 + 120), 2}};
		struct vg_rrd_item it = {.loc = &loc, .v = v, .n = 2};
		update_items(be, &it, 1);
		assert_int_equal(it.res.unavailable, 2);
		assert_int_equal(it.res.dir_missing, 2);
		assert_int_equal(it.res.missing, 0);
		assert_int_equal(it.res.written, 0);
		assert_int_equal(it.res.failed, 0);
		assert_int_equal(stat(dir, &sb), -1);

		assert_int_equal(rename(away, dir), 0);
		update_items(be, &it, 1);
		assert_int_equal(it.res.written, 2);
		assert_int_equal(it.res.unavailable, 0);
		assert_int_equal(it.res.dir_missing, 0);
		assert_int_equal(be->ops->last_ms(be, &loc, &last, 0), 0);
		assert_int_equal(last, MS(T0 + 120) + (engines[e].ms_exact ? 0 : 999));
	}
}

/* A series' own directory removed (rm -r of one resource) while its type
 * directory is there: an operator's deletion, not a volume gone, so its
 * values answer missing (the store creates the file again), never
 * dir_missing; a create then makes the directory again. rrdcached: the
 * LIST of the series' directory answers "No such file", that of the type
 * directory passes. Fails without the fix (issue 14): they answered
 * unavailable, dir_missing, and waited forever. */
static void test_resource_dir_removed(void **state)
{
	struct fixture *f = *state;

	for (size_t e = 0; e < NENGINES; e++) {
		struct vg_rrd_backend *be = f->be[e];
		struct vg_rrd_loc loc;
		char full[PATH_MAX * 2], dir[PATH_MAX * 2 + 16];
		struct stat sb;
		int64_t last;

		create(be, &f->lay, "node7", "load.1", VG_KIND_GAUGE, MS(T0), &loc);
		if (engines[e].relative)
			snprintf(full, sizeof(full), "%s/%s", e == 1 ? daemon1.base : daemon2.base,
				 loc.path);
		else
			snprintf(full, sizeof(full), "%s", loc.path);
		snprintf(dir, sizeof(dir), "%s", full);
		*strrchr(dir, '/') = '\0';
		assert_int_equal(unlink(full), 0);
		assert_int_equal(rmdir(dir), 0);

		struct vg_rrd_value v[2] = {{MS(T0 + 60), 1}, {MS(T0 + 120), 2}};
		struct vg_rrd_item it = {.loc = &loc, .v = v, .n = 2};
		update_items(be, &it, 1);
		assert_int_equal(it.res.missing, 2);
		assert_int_equal(it.res.dir_missing, 0);
		assert_int_equal(it.res.unavailable, 0);
		assert_int_equal(it.res.written, 0);
		assert_int_equal(it.res.failed, 0);

		create(be, &f->lay, "node7", "load.1", VG_KIND_GAUGE, MS(T0 + 60), &loc);
		assert_int_equal(stat(full, &sb), 0);
		update_items(be, &it, 1);
		assert_int_equal(it.res.written, 2);
		assert_int_equal(be->ops->last_ms(be, &loc, &last, 0), 0);
		assert_int_equal(last, MS(T0 + 120) + (engines[e].ms_exact ? 0 : 999));
	}
}

/* The engine counts what it did. */
static void test_stats(void **state)
{
	struct fixture *f = *state;

	for (size_t e = 0; e < NENGINES; e++) {
		struct vg_rrd_backend *be = f->be[e];
		struct vg_rrd_backend_stats st;
		struct vg_rrd_loc loc;
		struct vg_rrd_value v = {MS(T0), 1};
		struct vg_rrd_result res = {0};

		create(be, &f->lay, "node5", "load.1", VG_KIND_GAUGE, MS(T0), &loc);
		be->ops->update(be, &loc, &v, 1, &res);
		be->ops->get_stats(be, &st);
		assert_int_equal(st.files_created, 1);
		assert_int_equal(st.calls, 1);
		assert_string_equal(be->ops->name, engines[e].name);
	}
}

/* The files engine reads info() from the file's header itself (one
 * pread, no librrd): it must say exactly what librrd's rrd_info_r says of
 * the same file, for every consolidation function, on a file with several
 * archives, fresh and after updates. */
static void info_by_librrd(const char *path, const char *cf, struct vg_rrd_info *d)
{
	rrd_info_t *info = rrd_info_r(path);
	long cf_of[32], pdp[32], rows[32];
	size_t maxidx = 0;

	assert_non_null(info);
	memset(d, 0, sizeof(*d));
	for (int k = 0; k < 32; k++)
		cf_of[k] = pdp[k] = rows[k] = -1;
	for (rrd_info_t *i = info; i; i = i->next) {
		unsigned idx;
		char field[32];

		if (!strcmp(i->key, "step"))
			d->step = i->value.u_cnt;
		else if (!strcmp(i->key, "last_update"))
			d->last_update = (time_t)i->value.u_cnt;
		else if (!strcmp(i->key, "ds[value].type"))
			d->kind = !strcmp(i->value.u_str, "GAUGE") ? VG_KIND_GAUGE : VG_KIND_COUNTER;
		else if (sscanf(i->key, "rra[%u].%31s", &idx, field) == 2 && idx < 32) {
			if (!strcmp(field, "cf"))
				cf_of[idx] = !strcmp(i->value.u_str, cf);
			else if (!strcmp(field, "pdp_per_row"))
				pdp[idx] = (long)i->value.u_cnt;
			else if (!strcmp(field, "rows"))
				rows[idx] = (long)i->value.u_cnt;
			if (idx + 1 > maxidx)
				maxidx = idx + 1;
		}
	}
	rrd_info_free(info);
	for (size_t k = 0; k < maxidx; k++) {
		if (cf_of[k] != 1)
			continue;
		struct vg_rrd_archive *r = &d->rra[d->nrra++];
		time_t res = (time_t)(pdp[k] * (long)d->step);
		r->res_s = (uint32_t)res;
		r->cal_start = d->last_update - d->last_update % res - res * rows[k];
	}
}

static void test_info_as_librrd(void **state)
{
	static const char *const cfs[] = {"AVERAGE", "MIN", "MAX"};
	struct fixture *f = *state;
	struct vg_rrd_backend *be = f->be[0]; /* files */
	struct vg_archive ar[VG_MAX_ARCHIVES];
	struct vg_rrd_layout lay = f->lay;
	struct vg_rrd_loc loc;
	struct vg_rrd_value v[30];
	struct vg_rrd_result res = {0};

	assert_string_equal(engines[0].name, "files");
	assert_int_equal(vg_config_parse_archives("1m:1d,5m:7d,1h:90d", ar, VG_MAX_ARCHIVES,
						  &lay.narchives),
			 0);
	lay.archives = ar;
	for (int kind = VG_KIND_GAUGE; kind <= VG_KIND_COUNTER; kind++) {
		const char *metric = kind == VG_KIND_GAUGE ? "g" : "c";
		create(be, &lay, "node9", metric, kind, MS(T0), &loc);
		for (int round = 0; round < 2; round++) {
			for (int c = VG_CF_AVERAGE; c <= VG_CF_MAX; c++) {
				struct vg_rrd_info got, want;
				assert_int_equal(be->ops->info(be, &loc, c, &got), 0);
				info_by_librrd(loc.path, cfs[c - VG_CF_AVERAGE], &want);
				assert_int_equal(got.kind, kind);
				assert_int_equal(got.kind, want.kind);
				assert_int_equal(got.step, want.step);
				assert_int_equal(got.last_update, want.last_update);
				assert_int_equal(got.nrra, want.nrra);
				assert_true(got.nrra >= 1);
				for (size_t k = 0; k < got.nrra; k++) {
					assert_int_equal(got.rra[k].res_s, want.rra[k].res_s);
					assert_int_equal(got.rra[k].cal_start, want.rra[k].cal_start);
				}
			}
			for (int i = 0; i < 30; i++)
				v[i] = (struct vg_rrd_value){MS(T0 + 60 * (i + 1) + 7), 10.0 * i};
			be->ops->update(be, &loc, v, 30, &res);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_locate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_info_as_librrd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_update_last, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates_and_errors_per_item, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_info_fetch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resource_dir_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
