/*
 * catalog_test.c — the metric catalogue: the names the lead's tests rely
 * on exist with the right unit and kind, every entry is complete and
 * unique, "N" segments match numbers only, and query units are rates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vigie/batch.h"
#include "vigie/catalog.h"

struct want {
	int rtype;
	const char *name, *unit;
	int kind;
};

static void test_contract_names(void **state)
{
	static const struct want w[] = {
		{VG_RT_INSTANCE, "cpu.time", "s", VG_KIND_COUNTER},
		{VG_RT_INSTANCE, "cpu.util", "%", VG_KIND_GAUGE},
		{VG_RT_INSTANCE, "vcpus", "count", VG_KIND_GAUGE},
		{VG_RT_INSTANCE, "memory.size", "B", VG_KIND_GAUGE},
		{VG_RT_INSTANCE, "memory.used", "B", VG_KIND_GAUGE},
		{VG_RT_INSTANCE, "memory.rss", "B", VG_KIND_GAUGE},
		{VG_RT_INSTANCE, "power.state", "state", VG_KIND_GAUGE},
		{VG_RT_DISK, "disk.read.requests", "count", VG_KIND_COUNTER},
		{VG_RT_DISK, "disk.read.bytes", "B", VG_KIND_COUNTER},
		{VG_RT_DISK, "disk.write.requests", "count", VG_KIND_COUNTER},
		{VG_RT_DISK, "disk.write.bytes", "B", VG_KIND_COUNTER},
		{VG_RT_DISK, "disk.queue.length", "count", VG_KIND_GAUGE},
		{VG_RT_NIC, "net.rx.bytes", "B", VG_KIND_COUNTER},
		{VG_RT_NIC, "net.rx.packets", "count", VG_KIND_COUNTER},
		{VG_RT_NIC, "net.tx.bytes", "B", VG_KIND_COUNTER},
		{VG_RT_NIC, "net.tx.packets", "count", VG_KIND_COUNTER},
		{VG_RT_NIC, "net.rx.errors", "count", VG_KIND_COUNTER},
		{VG_RT_NIC, "net.rx.drops", "count", VG_KIND_COUNTER},
		{VG_RT_NIC, "net.tx.errors", "count", VG_KIND_COUNTER},
		{VG_RT_NIC, "net.tx.drops", "count", VG_KIND_COUNTER},
		{VG_RT_HOST, "host.cpu.user", "%", VG_KIND_GAUGE},
		{VG_RT_HOST, "host.cpu.system", "%", VG_KIND_GAUGE},
		{VG_RT_HOST, "host.cpu.idle", "%", VG_KIND_GAUGE},
		{VG_RT_HOST, "host.cpu.iowait", "%", VG_KIND_GAUGE},
		{VG_RT_HOST, "host.cpu.steal", "%", VG_KIND_GAUGE},
		{VG_RT_HOST, "host.load.1", "count", VG_KIND_GAUGE},
		{VG_RT_HOST, "host.load.5", "count", VG_KIND_GAUGE},
		{VG_RT_HOST, "host.load.15", "count", VG_KIND_GAUGE},
		{VG_RT_HOST, "host.memory.total", "B", VG_KIND_GAUGE},
		{VG_RT_HOST, "host.memory.available", "B", VG_KIND_GAUGE},
		{VG_RT_HOST, "host.memory.used", "B", VG_KIND_GAUGE},
		{VG_RT_HOST, "host.memory.cached", "B", VG_KIND_GAUGE},
		{VG_RT_HOST_DISK, "hdisk.queue.length", "count", VG_KIND_GAUGE},
		{VG_RT_HOST_NIC, "hnic.rx.bytes", "B", VG_KIND_COUNTER},
	};
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		const struct vg_metric_def *d = vg_catalog_find(w[i].rtype, w[i].name);
		if (!d)
			fail_msg("%s missing", w[i].name);
		assert_string_equal(d->unit, w[i].unit);
		assert_int_equal(d->kind, w[i].kind);
	}
}

static void test_entries_complete_and_unique(void **state)
{
	size_t n = 0;

	for (const struct vg_metric_def *d = vg_catalog; d->name; d++, n++) {
		assert_true(d->rtype >= VG_RT_INSTANCE && d->rtype <= VG_RT_MAX);
		assert_true(d->kind == VG_KIND_GAUGE || d->kind == VG_KIND_COUNTER);
		assert_non_null(d->unit);
		assert_true(strlen(d->unit) > 0);
		assert_non_null(d->description);
		assert_true(strlen(d->description) > 3);
		for (const struct vg_metric_def *e = d + 1; e->name; e++)
			if (e->rtype == d->rtype && !strcmp(e->name, d->name))
				fail_msg("duplicate %s", d->name);
	}
	assert_true(n >= 80);
}

static void test_find(void **state)
{
	/* resource type matters */
	assert_null(vg_catalog_find(VG_RT_DISK, "cpu.time"));
	assert_null(vg_catalog_find(VG_RT_INSTANCE, "no.such.metric"));
	assert_null(vg_catalog_find(VG_RT_INSTANCE, NULL));
	/* N matches a number, only a number, and a whole segment */
	const struct vg_metric_def *d = vg_catalog_find(VG_RT_INSTANCE, "vcpu.0.time");
	assert_non_null(d);
	assert_string_equal(d->name, "vcpu.N.time");
	assert_non_null(vg_catalog_find(VG_RT_INSTANCE, "vcpu.127.time"));
	assert_null(vg_catalog_find(VG_RT_INSTANCE, "vcpu.N.time2"));
	assert_null(vg_catalog_find(VG_RT_INSTANCE, "vcpu.x.time"));
	assert_null(vg_catalog_find(VG_RT_INSTANCE, "vcpu..time"));
	assert_null(vg_catalog_find(VG_RT_INSTANCE, "vcpu.1"));
	assert_null(vg_catalog_find(VG_RT_INSTANCE, "vcpu.1.time.x"));
	/* an 'N' inside a word is literal */
	assert_null(vg_catalog_find(VG_RT_HOST_NIC, "hNic.rx.bytes"));
}

static void test_query_unit(void **state)
{
	char buf[32];

	assert_string_equal(vg_catalog_query_unit(vg_catalog_find(VG_RT_INSTANCE, "cpu.time"),
						  buf, sizeof(buf)),
			    "s/s");
	assert_string_equal(vg_catalog_query_unit(vg_catalog_find(VG_RT_DISK, "disk.read.bytes"),
						  buf, sizeof(buf)),
			    "B/s");
	assert_string_equal(vg_catalog_query_unit(vg_catalog_find(VG_RT_INSTANCE, "cpu.util"),
						  buf, sizeof(buf)),
			    "%");
	assert_string_equal(vg_catalog_query_unit(NULL, buf, sizeof(buf)), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_contract_names),
		cmocka_unit_test(test_entries_complete_and_unique),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_query_unit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
