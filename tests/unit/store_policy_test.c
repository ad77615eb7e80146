/*
 * store_policy_test.c — archive policies: [archives] rules are parsed in
 * file order with errors naming file:line:key, and a new series gets the
 * archives of the first rule matching its metric name (else [storage]
 * archives), seen in the archives its file really has.
 *
 * An existing series is converted to its rule's archives with every
 * stored row of the archives both layouts have kept bit for bit: on the
 * files backend, and on the rrdcached backend through a real daemon
 * started here (the file converted in its -b directory, refused when the
 * directory is not the one the daemon reads).
 *
 * Time is driven through sample timestamps, never slept.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/store.h"

#include "collector/rrd_view.h"
#include "rrdcached_harness.h"

/* A resource id that would leave the directory if it were a path. */
#define HOSTILE "../../vm 2/.."

#define T0 1699999980LL
#define MS(s) ((int64_t)(s)*1000)

static const char conf[] =
	"[storage]\n"
	"archives = 1m:1d,5m:7d,1h:30d\n"
	"[archives]\n"
	"cpu.* = 1m:1d,1h:30d\n"
	"net.*.errors = 5m:7d\n"
	"cpu.time = 5m:2d\n"; /* shadowed by cpu.*: first match wins */

static void rm_rf(const char *dir)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static void test_config_rules(void **state)
{
	struct vg_config c;
	char err[256] = "";

	(void)state;
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, conf, "t.conf", err, sizeof(err)), 0);
	assert_int_equal(c.npolicies, 3);
	assert_string_equal(c.policies[0].pattern, "cpu.*");
	assert_int_equal(c.policies[0].narchives, 2);
	assert_int_equal(c.policies[0].archives[1].resolution_s, 3600);
	assert_string_equal(c.policies[1].pattern, "net.*.errors");
	assert_int_equal(c.policies[1].archives[0].retention_s, 7 * 86400);
	/* keep_ended: 90 days unless set; 0 keeps forever */
	assert_true(c.storage_keep_ended_s == 90 * 86400.0);
	assert_int_equal(vg_config_load_string(&c, "[storage]\nkeep_ended = 0\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_true(c.storage_keep_ended_s == 0);
	/* sync_interval: 0 (per batch) unless set; a duration */
	assert_true(c.storage_sync_interval_s == 0);
	assert_int_equal(vg_config_load_string(&c, "[storage]\nsync_interval = 15m\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_true(c.storage_sync_interval_s == 900);
	assert_int_equal(vg_config_load_string(&c, "[storage]\nsync_interval = 0\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_true(c.storage_sync_interval_s == 0);

	/* errors name the file, the line and the key */
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, "[archives]\n\ncpu.* = 1m\n",
					       "bad.conf", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "bad.conf:3: [archives] cpu.*: '1m'"));
	assert_int_equal(vg_config_load_string(&c, "[storage]\nkeep_ended = soon\n",
					       "bad.conf", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "bad.conf:2: [storage] keep_ended"));
	/* a plain number is seconds: "90" meant for days would have
	 * deleted every ended resource's series at the next sweep */
	assert_int_equal(vg_config_load_string(&c, "[storage]\nkeep_ended = 90\n",
					       "bad.conf", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "bad.conf:2: [storage] keep_ended: '90' must be 0 (off) "
				    "or a duration of 1h to 36600 days, e.g. 90d"));
	assert_int_equal(vg_config_load_string(&c, "[storage]\nkeep_ended = 59m\n",
					       "bad.conf", err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(vg_config_load_string(&c, "[storage]\nkeep_ended = 1h\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_true(c.storage_keep_ended_s == 3600);
	assert_int_equal(vg_config_load_string(&c, "[storage]\nsync_interval = 2d\n",
					       "bad.conf", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "bad.conf:2: [storage] sync_interval"));
}

/* Whether the series has an archive of resolution res_s. */
static int has_archive(struct vg_store *s, const char *metric, uint32_t res_s)
{
	struct vg_series out;
	int rc = vg_store_fetch(s, VG_RT_INSTANCE, "vm-1", metric, VG_CF_AVERAGE,
				MS(T0), MS(T0 + 600), res_s, 1, &out);

	vg_series_free(&out);
	assert_true(rc == 0 || rc == -EINVAL);
	return rc == 0;
}

static void test_first_match(void **state)
{
	struct vg_config c;
	struct vg_store *s;
	struct vg_batch *b;
	char dir[64], err[256] = "";

	(void)state;
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, conf, "t.conf", err, sizeof(err)), 0);
	snprintf(dir, sizeof(dir), "/tmp/vigie-policy-test.XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(vg_store_open(dir, &c, &s, err, sizeof(err)), 0);

	assert_string_equal(vg_store_policy_name(s, "cpu.time"), "cpu.*");
	assert_string_equal(vg_store_policy_name(s, "net.0.rx.errors"), "net.*.errors");
	assert_string_equal(vg_store_policy_name(s, "net.0.rx.bytes"), "default");
	assert_string_equal(vg_store_policy_name(s, "memory.used"), "default");

	for (int i = 0; i < 3; i++) {
		b = vg_batch_new("h1", 1, (uint64_t)i + 1, MS(T0 + 60 * i));
		vg_batch_resource(b, VG_RT_INSTANCE, "vm-1", NULL, NULL, MS(T0 + 60 * i));
		vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, 10.0 * i);
		vg_batch_sample(b, "net.0.rx.errors", VG_KIND_COUNTER, i);
		vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 100);
		assert_int_equal(vg_store_write_batch(s, b), 0);
		vg_batch_free(b);
	}
	/* cpu.*: 1m and 1h, not the 5m of the default nor of cpu.time */
	assert_true(has_archive(s, "cpu.time", 60));
	assert_false(has_archive(s, "cpu.time", 300));
	assert_true(has_archive(s, "cpu.time", 3600));
	/* net.*.errors: 5m only */
	assert_false(has_archive(s, "net.0.rx.errors", 60));
	assert_true(has_archive(s, "net.0.rx.errors", 300));
	assert_false(has_archive(s, "net.0.rx.errors", 3600));
	/* no rule: [storage] archives */
	assert_true(has_archive(s, "memory.used", 60));
	assert_true(has_archive(s, "memory.used", 300));
	assert_true(has_archive(s, "memory.used", 3600));
	vg_store_close(s);
	rm_rf(dir);
}

static void test_bad_rule_refused(void **state)
{
	struct vg_config c;
	struct vg_store *s = NULL;
	char dir[64], err[256] = "";

	(void)state;
	vg_config_defaults(&c);
	/* 90 s is not a multiple of the 60 s step */
	assert_int_equal(vg_config_load_string(&c, "[archives]\ndisk.* = 90s:1d\n",
					       "t.conf", err, sizeof(err)),
			 0);
	snprintf(dir, sizeof(dir), "/tmp/vigie-policy-test.XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(vg_store_open(dir, &c, &s, err, sizeof(err)), -EINVAL);
	assert_null(s);
	assert_non_null(strstr(err, "[archives] disk.*"));
	rm_rf(dir);
}

/* Every row of every archive and consolidation function of a series. */
struct dump {
	struct vg_series a[3][3]; /* [cf][60, 300, 3600] */
	int rc[3][3];
};

static void dump_all(struct vg_store *s, const char *metric, int64_t from,
		     int64_t to, struct dump *d)
{
	static const uint32_t res[3] = {60, 300, 3600};

	for (int cf = 0; cf < 3; cf++)
		for (int r = 0; r < 3; r++)
			d->rc[cf][r] = vg_store_fetch(s, VG_RT_INSTANCE, "vm-1", metric, cf,
						      from, to, res[r], 1, &d->a[cf][r]);
}

/* After a rule gave cpu.* a 1h archive: memory.used needs no conversion;
 * cpu.time is converted, and then has its rule's archives (converting it
 * again changes nothing); every row of its 1m and 5m archives is as in
 * BEFORE (dump_all of it before the rule changed), bit for bit, and its
 * new 1h archive exists. Frees BEFORE's series. */
static void converted_keeps_rows(struct vg_store *s, int64_t end, struct dump *before)
{
	struct dump after;
	char msg[1024] = "";
	int changed = -1;

	assert_int_equal(vg_store_convert_series(s, VG_RT_INSTANCE, "vm-1", "memory.used",
						 &changed, msg, sizeof(msg)),
			 0);
	assert_int_equal(changed, 0);
	if (vg_store_convert_series(s, VG_RT_INSTANCE, "vm-1", "cpu.time", &changed,
				    msg, sizeof(msg)))
		fail_msg("convert: %s", msg);
	assert_int_equal(changed, 1);
	assert_int_equal(vg_store_convert_series(s, VG_RT_INSTANCE, "vm-1", "cpu.time",
						 &changed, msg, sizeof(msg)),
			 0);
	assert_int_equal(changed, 0); /* it has them now */
	dump_all(s, "cpu.time", MS(T0), end, &after);
	for (int cf = 0; cf < 3; cf++) {
		/* the 1m and 5m archives: every stored row, bit for bit */
		for (int r = 0; r < 2; r++) {
			assert_int_equal(before->rc[cf][r], 0);
			assert_int_equal(after.rc[cf][r], 0);
			assert_true(before->a[cf][r].n >= 100);
			assert_int_equal(before->a[cf][r].n, after.a[cf][r].n);
			for (size_t k = 0; k < before->a[cf][r].n; k++) {
				const struct vg_point *p = &before->a[cf][r].points[k],
						      *q = &after.a[cf][r].points[k];
				assert_int_equal(p->time_ms, q->time_ms);
				if (memcmp(&p->value, &q->value, sizeof(double)))
					fprintf(stderr, "cf %d r %d k %zu/%zu t %lld: %.17g vs %.17g\n", cf, r, k, before->a[cf][r].n, (long long)p->time_ms, p->value, q->value);
				assert_memory_equal(&p->value, &q->value, sizeof(double));
			}
		}
		/* the new 1h archive exists now */
		assert_int_equal(before->rc[cf][2], -EINVAL);
		assert_int_equal(after.rc[cf][2], 0);
		for (int r = 0; r < 3; r++) {
			vg_series_free(&before->a[cf][r]);
			vg_series_free(&after.a[cf][r]);
		}
	}
}

static void test_convert_keeps_values(void **state)
{
	struct vg_config c;
	struct vg_store *s;
	struct dump before, after;
	char dir[64], err[256] = "";
	int64_t end = MS(T0 + 60 * 600);

	(void)state;
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, "[storage]\narchives = 1m:1d,5m:7d\n",
					       "t.conf", err, sizeof(err)),
			 0);
	snprintf(dir, sizeof(dir), "/tmp/vigie-policy-test.XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(vg_store_open(dir, &c, &s, err, sizeof(err)), 0);
	/* 10 hours of a gauge and a counter, one a minute */
	for (int i = 0; i < 600; i++) {
		struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)i + 1, MS(T0 + 60 * i));
		vg_batch_resource(b, VG_RT_INSTANCE, "vm-1", NULL, NULL, MS(T0 + 60 * i));
		vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, 7.0 * i * i);
		vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 1000 + (i % 17) * 3.5);
		assert_int_equal(vg_store_write_batch(s, b), 0);
		vg_batch_free(b);
	}
	dump_all(s, "cpu.time", MS(T0), end, &before);
	/* a rule changes: the existing series keeps its layout ... */
	vg_store_close(s);
	assert_int_equal(vg_config_load_string(&c, "[archives]\ncpu.* = 1m:2d,5m:7d,1h:30d\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_int_equal(vg_store_open(dir, &c, &s, err, sizeof(err)), 0);
	assert_int_equal(vg_store_fetch(s, VG_RT_INSTANCE, "vm-1", "cpu.time", 0, MS(T0),
					end, 3600, 1, &after.a[0][0]),
			 -EINVAL);
	/* ... until converted; a series whose rule did not change is left alone */
	converted_keeps_rows(s, end, &before);
	/* and it still takes new values */
	{
		struct vg_batch *b = vg_batch_new("h1", 1, 1000, MS(T0 + 60 * 600));
		struct vg_store_stats st;
		vg_batch_resource(b, VG_RT_INSTANCE, "vm-1", NULL, NULL, MS(T0 + 60 * 600));
		vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, 7.0 * 600 * 600);
		assert_int_equal(vg_store_write_batch(s, b), 0);
		vg_batch_free(b);
		assert_int_equal(vg_store_flush(s), 0);
		vg_store_get_stats(s, &st);
		assert_int_equal(st.write_errors, 0);
	}
	vg_store_close(s);
	rm_rf(dir);
}

/* The rrdcached backend: the same conversion through the daemon's -b
 * directory, verified through the daemon; refused, with every file as
 * it was, when the directory given is not the daemon's. */
static void sh(const char *fmt, ...)
{
	char cmd[16384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("%s failed", cmd);
}

static void path_of(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, len, fmt, ap);
	va_end(ap);
}

static void test_convert_rrdcached(void **state)
{
	static const char *const extra[] = {"-O", "-R", NULL};
	struct hrd_daemon d;
	struct vg_config c;
	struct vg_store *s;
	struct dump before;
	char dir[64], conf_s[512], err[256] = "", msg[1024] = "", other[PATH_MAX];
	char file[PATH_MAX], saved[PATH_MAX];
	int changed = -1, rc;
	int64_t end = MS(T0 + 60 * 600);

	(void)state;
	if ((rc = hrd_start(&d, NULL, extra))) {
		if (rc == -ENOENT || rc == -ECHILD)
			skip();
		fail_msg("rrdcached: %s", strerror(-rc));
	}
	snprintf(conf_s, sizeof(conf_s),
		 "[storage]\nbackend = rrdcached\ndaemons = %s\narchives = 1m:1d,5m:7d\n",
		 d.tcp_addr);
	vg_config_defaults(&c);
	assert_int_equal(vg_config_load_string(&c, conf_s, "t.conf", err, sizeof(err)), 0);
	snprintf(dir, sizeof(dir), "/tmp/vigie-policy-test.XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(vg_store_open(dir, &c, &s, err, sizeof(err)), 0);
	for (int i = 0; i < 600; i++) {
		struct vg_batch *b = vg_batch_new("h1", 1, (uint64_t)i + 1, MS(T0 + 60 * i));
		vg_batch_resource(b, VG_RT_INSTANCE, "vm-1", NULL, NULL, MS(T0 + 60 * i));
		vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, 7.0 * i * i);
		vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 1000 + (i % 17) * 3.5);
		vg_batch_resource(b, VG_RT_INSTANCE, HOSTILE, NULL, NULL, MS(T0 + 60 * i));
		vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, 3.0 * i);
		assert_int_equal(vg_store_write_batch(s, b), 0);
		vg_batch_free(b);
	}
	dump_all(s, "cpu.time", MS(T0), end, &before);
	vg_store_close(s);
	assert_int_equal(vg_config_load_string(&c, "[archives]\ncpu.* = 1m:2d,5m:7d,1h:30d\n",
					       "t.conf", err, sizeof(err)),
			 0);
	assert_int_equal(vg_store_open(dir, &c, &s, err, sizeof(err)), 0);
	assert_int_equal(vg_store_path(s, VG_RT_INSTANCE, "vm-1", "cpu.time", file, sizeof(file)),
			 0);
	/* the daemon wrote its cache out at the close: keep the file's bytes */
	path_of(saved, sizeof(saved), "%s/saved.rrd", d.dir);
	sh("cp '%s/%s' '%s'", d.base, file, saved);
	/* what the daemon shows of it, to check the check below */
	struct vg_rrdcd *rc_c = NULL;
	struct vg_rrd_view *vb = calloc(1, sizeof(*vb)), *va = calloc(1, sizeof(*va));
	assert_non_null(vb);
	assert_non_null(va);
	assert_int_equal(vg_rrdcd_connect(d.tcp_addr, 10000, &rc_c), 0);
	assert_int_equal(vg_rrd_view_take(rc_c, file, vb, msg, sizeof(msg)), 0);

	/* without the daemon's directory the engine cannot */
	assert_int_equal(vg_store_convert_series(s, VG_RT_INSTANCE, "vm-1", "cpu.time", &changed,
						 msg, sizeof(msg)),
			 -ENOTSUP);
	assert_int_equal(vg_store_convert_at(s, "127.0.0.1:1", d.base, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "not one of [storage] daemons"));

	/* a directory that is not the daemon's: no such file there */
	path_of(other, sizeof(other), "%s/other", d.dir);
	assert_int_equal(mkdir(other, 0755), 0);
	assert_int_equal(vg_store_convert_at(s, d.tcp_addr, other, err, sizeof(err)), 0);
	assert_int_equal(vg_store_convert_series(s, VG_RT_INSTANCE, "vm-1", "cpu.time", &changed,
						 msg, sizeof(msg)),
			 -EIO);
	assert_non_null(strstr(msg, "-b directory?"));
	/* a copy of the daemon's files: converted under the side name, which
	 * the daemon does not see, so removed; the copy's file never changed */
	sh("rm -rf '%s' && cp -a '%s' '%s'", other, d.base, other);
	assert_int_equal(vg_store_convert_series(s, VG_RT_INSTANCE, "vm-1", "cpu.time", &changed,
						 msg, sizeof(msg)),
			 -EIO);
	assert_non_null(strstr(msg, "the daemon does not see the converted file"));
	sh("cmp -s '%s/%s' '%s' && cmp -s '%s/%s' '%s' && ! ls %s/%s.vigie-convert* 2>/dev/null",
	   other, file, saved, d.base, file, saved, other, file);
	/* a stale copy (its file has a later update than the daemon's): not
	 * the file the daemon reads, so not even converted */
	sh("rrdtool update '%s/%s' %lld:1", other, file, (long long)T0 + 60 * 700);
	assert_int_equal(vg_store_convert_series(s, VG_RT_INSTANCE, "vm-1", "cpu.time", &changed,
						 msg, sizeof(msg)),
			 -EIO);
	assert_non_null(strstr(msg, "is not the file the daemon reads: INFO last_update"));
	sh("test $(rrdtool info '%s/%s' | grep -c '^rra.*cf') -eq 6", other, file);
	/* a symbolic link on the way (to the daemon's own files): refused */
	sh("rm -rf '%s' && mkdir '%s' && ln -s '%s/instance' '%s/instance'",
	   other, other, d.base, other);
	assert_int_equal(vg_store_convert_series(s, VG_RT_INSTANCE, "vm-1", "cpu.time", &changed,
						 msg, sizeof(msg)),
			 -EIO);
	assert_non_null(strstr(msg, "symbolic link"));
	sh("cmp -s '%s/%s' '%s'", d.base, file, saved);

	/* the daemon's directory */
	assert_int_equal(vg_store_convert_at(s, d.tcp_addr, d.base, err, sizeof(err)), 0);
	converted_keeps_rows(s, end, &before);
	sh("! ls '%s/%s.vigie-convert.old' 2>/dev/null", d.base, file);

	/* the check itself: it holds for the converted file, and a row, a
	 * consolidation state or a layout that differ each fail it */
	{
		const struct vg_archive *ra = c.policies[0].archives;
		size_t rn = c.policies[0].narchives, j;
		assert_int_equal(vg_rrd_view_take(rc_c, file, va, msg, sizeof(msg)), 0);
		assert_int_equal(vg_rrd_view_kept(vb, va, ra, rn, 60, msg, sizeof(msg)), 1);
		assert_int_equal(vg_rrd_view_kept(vb, va, c.archives, c.narchives, 60, msg,
						  sizeof(msg)),
				 0);
		assert_non_null(strstr(msg, "not the rule's"));
		for (j = 0; j < va->nf && (va->rra[j].res_s != 60 || strcmp(va->rra[j].cf, "MAX"));
		     j++)
			;
		assert_true(j < va->nf && va->f[j].nrows > 10);
		double *v = &va->f[j].values[va->f[j].nrows - 5], keep = *v;
		assert_false(isnan(keep));
		*v = nextafter(keep, INFINITY); /* one ulp */
		assert_int_equal(vg_rrd_view_kept(vb, va, ra, rn, 60, msg, sizeof(msg)), 0);
		assert_non_null(strstr(msg, "MAX archive of 60 s: row"));
		*v = keep;
		char *cdp = NULL;
		for (size_t i = 0; i < va->info.n; i++)
			if (!strcmp(va->info.items[i].key, "ds[value].last_ds"))
				cdp = va->info.items[i].value;
		assert_non_null(cdp);
		char was = cdp[0];
		cdp[0] = cdp[0] == '9' ? '8' : '9';
		assert_int_equal(vg_rrd_view_kept(vb, va, ra, rn, 60, msg, sizeof(msg)), 0);
		assert_non_null(strstr(msg, "ds[value].last_ds"));
		cdp[0] = was;
		assert_int_equal(vg_rrd_view_kept(vb, va, ra, rn, 60, msg, sizeof(msg)), 1);
		vg_rrd_view_free(vb);
		vg_rrd_view_free(va);
		free(vb);
		free(va);
		vg_rrdcd_close(rc_c);
	}
	/* its 1 min tier grown to keep as long as the 5 min one: the 5 min
	 * archive is still read alone through the daemon, and kept */
	assert_int_equal(vg_config_load_string(&c, "[archives]\ncpu.* = 1m:7d,5m:7d,1h:30d\n",
					       "t.conf", err, sizeof(err)),
			 0);
	vg_store_close(s);
	assert_int_equal(vg_store_open(dir, &c, &s, err, sizeof(err)), 0);
	assert_int_equal(vg_store_convert_at(s, d.tcp_addr, d.base, err, sizeof(err)), 0);
	if (vg_store_convert_series(s, VG_RT_INSTANCE, "vm-1", "cpu.time", &changed, msg,
				    sizeof(msg)))
		fail_msg("convert to 1m:7d: %s", msg);
	assert_int_equal(changed, 1);
	/* a hostile id: its file is converted inside the directory */
	{
		char hf[PATH_MAX], real[PATH_MAX], base[PATH_MAX];
		if (vg_store_convert_series(s, VG_RT_INSTANCE, HOSTILE, "cpu.time", &changed, msg,
					    sizeof(msg)))
			fail_msg("convert %s: %s", HOSTILE, msg);
		assert_int_equal(changed, 1);
		assert_int_equal(vg_store_path(s, VG_RT_INSTANCE, HOSTILE, "cpu.time", hf,
					       sizeof(hf)),
				 0);
		path_of(base, sizeof(base), "%s/%s", d.base, hf);
		assert_non_null(realpath(base, real));
		assert_non_null(realpath(d.base, base));
		assert_int_equal(strncmp(real, base, strlen(base)), 0);
		assert_int_equal(real[strlen(base)], '/');
		sh("test $(ls -A '%s' | wc -l) -eq 1", d.base); /* instance/ only */
	}
	/* the daemon writes the converted file */
	{
		struct vg_batch *b = vg_batch_new("h1", 1, 1000, MS(T0 + 60 * 600));
		struct vg_store_stats st;
		vg_batch_resource(b, VG_RT_INSTANCE, "vm-1", NULL, NULL, MS(T0 + 60 * 600));
		vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, 7.0 * 600 * 600);
		assert_int_equal(vg_store_write_batch(s, b), 0);
		vg_batch_free(b);
		assert_int_equal(vg_store_flush(s), 0);
		vg_store_get_stats(s, &st);
		assert_int_equal(st.write_errors, 0);
	}
	vg_store_close(s);
	hrd_cleanup(&d);
	rm_rf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_rules),
		cmocka_unit_test(test_first_match),
		cmocka_unit_test(test_bad_rule_refused),
		cmocka_unit_test(test_convert_keeps_values),
		cmocka_unit_test(test_convert_rrdcached),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
