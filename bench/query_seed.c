/*
 * query_seed.c — fill a data directory with many series over a time range,
 * for the /v1/query and remote read benchmarks (bench/query_bench.sh) and
 * the Prometheus end-to-end test (tests/integration/prom_read_test.sh).
 *
 *   query_seed DATA_DIR N_INSTANCES SECONDS [END_EPOCH=now rounded to the
 *              minute] [--evil]
 *
 * Instance i ("vm-NNNNN", project p1 for even i and p2 for odd i, host
 * h(i%4), flavor small/large, metadata az=zone-(i%2)) reports one poll a
 * minute over [END - SECONDS, END]: cpu.util = i % 100 + (minute % 10)
 * (a gauge), and its disk "vm-NNNNN-vda" reads at (i + 1) * 100 B/s
 * (disk.read.bytes, a counter). --evil adds an instance of p1 whose name
 * tries a label injection: evil",project="p2",x="y.
 *
 * Design: the same path as the collector (vg_registry_update and
 * vg_store_write_batch on hand-built batches, one batch per poll and host),
 * so files and rows are the real thing. Prints "start=EPOCH end=EPOCH".
 * Exit 0, or 1 with a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/registry.h"
#include "vigie/store.h"

#define EVIL_NAME "evil\",project=\"p2\",x=\"y"

int main(int argc, char **argv)
{
	struct vg_config cfg;
	struct vg_store *store = NULL;
	struct vg_registry *reg = NULL;
	char err[512];
	long n = argc > 2 ? atol(argv[2]) : 0;
	long secs = argc > 3 ? atol(argv[3]) : 0;
	long long end = argc > 4 && argv[4][0] != '-' ? atoll(argv[4])
						      : (long long)time(NULL) / 60 * 60;
	int evil = argc > 4 && !strcmp(argv[argc - 1], "--evil");
	long long start = end - secs;
	uint64_t seq = 0;

	if (argc < 4 || n < 1 || secs < 60) {
		fprintf(stderr, "usage: query_seed DATA_DIR N_INSTANCES SECONDS "
				"[END_EPOCH] [--evil]\n");
		return 2;
	}
	mkdir(argv[1], 0755);
	vg_config_defaults(&cfg);
	if (vg_store_open(argv[1], &cfg, &store, err, sizeof(err)) ||
	    vg_registry_open(argv[1], &reg, err, sizeof(err))) {
		fprintf(stderr, "query_seed: %s\n", err);
		return 1;
	}
	for (long long t_s = start; t_s <= end; t_s += 60) {
		long minute = (long)((t_s - start) / 60);
		int64_t t = t_s * 1000;
		for (int h = 0; h < 4; h++) {
			char host[8];
			struct vg_batch *b;
			snprintf(host, sizeof(host), "h%d", h);
			b = vg_batch_new(host, 1, ++seq, t);
			for (long i = h; i < n; i += 4) {
				char id[32], disk[40], az[16];
				snprintf(id, sizeof(id), "vm-%05ld", i);
				snprintf(disk, sizeof(disk), "%s-vda", id);
				snprintf(az, sizeof(az), "zone-%ld", i % 2);
				vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, t);
				vg_batch_identity(b, i % 2 ? "p2" : "p1", "u",
						  i % 3 ? "small" : "large");
				vg_batch_attr(b, "az", az);
				vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE,
						(double)(i % 100 + minute % 10));
				vg_batch_resource(b, VG_RT_DISK, disk, "vda", id, t);
				vg_batch_identity(b, i % 2 ? "p2" : "p1", "u", NULL);
				vg_batch_sample(b, "disk.read.bytes", VG_KIND_COUNTER,
						(double)(i + 1) * 100 * (double)(t_s - start));
			}
			if (evil && h == 0) {
				vg_batch_resource(b, VG_RT_INSTANCE, "vm-evil",
						  EVIL_NAME, NULL, t);
				vg_batch_identity(b, "p1", "u", "small");
				vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, 7);
			}
			if (vg_registry_update(reg, b) ||
			    vg_store_write_batch(store, b)) {
				fprintf(stderr, "query_seed: cannot write the poll "
						"at %lld\n",
					t_s);
				return 1;
			}
			vg_batch_free(b);
		}
	}
	vg_registry_close(reg);
	vg_store_close(store);
	printf("start=%lld end=%lld\n", start, end);
	return 0;
}
