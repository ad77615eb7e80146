/*
 * api_seed.c — fill a data directory for the query API benchmark
 * (bench/api_bench.sh): one instance "bench-0" with a day of 1-minute
 * points (cpu.util, a gauge, and cpu.time, a counter), and N more
 * instances "inst-NNNNN" in the registry only (what the 1000-resource
 * list reads: ids, identity, metrics with their last values).
 *
 *   api_seed DATA_DIR [N_LIST=1000] [END_EPOCH=now rounded to the minute]
 *
 * Design: the same path as the collector (vg_registry_update and
 * vg_store_write_batch on hand-built batches), so the files and rows are
 * the real thing, without the wire or a running collector. Prints the
 * time range written, "start=EPOCH end=EPOCH", for the benchmark's URLs.
 * Exit 0, or 1 with a message.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/registry.h"
#include "vigie/store.h"

int main(int argc, char **argv)
{
	struct vg_config cfg;
	struct vg_store *store = NULL;
	struct vg_registry *reg = NULL;
	char err[512];
	long n = argc > 2 ? atol(argv[2]) : 1000;
	long long end = argc > 3 ? atoll(argv[3]) : (long long)time(NULL) / 60 * 60;
	long long start = end - 86400;

	if (argc < 2 || n < 0) {
		fprintf(stderr, "usage: api_seed DATA_DIR [N_LIST] [END_EPOCH]\n");
		return 2;
	}
	mkdir(argv[1], 0755);
	vg_config_defaults(&cfg);
	if (vg_store_open(argv[1], &cfg, &store, err, sizeof(err)) ||
	    vg_registry_open(argv[1], &reg, err, sizeof(err))) {
		fprintf(stderr, "api_seed: %s\n", err);
		return 1;
	}
	/* a day of polls, one a minute, for bench-0 */
	for (long k = 0; k <= 1440; k++) {
		int64_t t = (start + 60 * k) * 1000;
		struct vg_batch *b = vg_batch_new("bench-host", 1, (uint64_t)k + 1, t);

		vg_batch_resource(b, VG_RT_INSTANCE, "bench-0", "bench-0", NULL, t);
		vg_batch_identity(b, "bench", "u", "m1.small");
		vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE,
				50 + 40 * sin((double)k / 60.0));
		vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, 30.0 * k);
		if (vg_registry_update(reg, b) || vg_store_write_batch(store, b)) {
			fprintf(stderr, "api_seed: cannot write poll %ld\n", k);
			return 1;
		}
		vg_batch_free(b);
	}
	/* the list: registry rows only */
	for (long base = 0; base < n; base += 500) {
		int64_t t = end * 1000;
		struct vg_batch *b = vg_batch_new("bench-host", 2, (uint64_t)base + 1, t);

		for (long i = base; i < n && i < base + 500; i++) {
			char id[32];
			snprintf(id, sizeof(id), "inst-%05ld", i);
			vg_batch_resource(b, VG_RT_INSTANCE, id, id, NULL, t);
			vg_batch_identity(b, "bench", "u", i % 2 ? "m1.small" : "m1.large");
			vg_batch_attr(b, "az", "zone-a");
			vg_batch_sample(b, "cpu.util", VG_KIND_GAUGE, (double)(i % 100));
			vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, 1000.0 * i);
			vg_batch_sample(b, "memory.used", VG_KIND_GAUGE, 1e9);
		}
		if (vg_registry_update(reg, b)) {
			fprintf(stderr, "api_seed: cannot register instances\n");
			return 1;
		}
		vg_batch_free(b);
	}
	vg_registry_close(reg);
	vg_store_close(store);
	printf("start=%lld end=%lld\n", start, end);
	return 0;
}
