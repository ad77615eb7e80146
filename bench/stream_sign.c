/*
 * stream_sign.c — what signing the collectors' metric stream adds per
 * streamed sample (docs/benchmarks.md, "The signed metric stream").
 *
 * A message of the stream (collector/cluster.c) is an accepted batch
 * encoded in the agents' wire format, sent once, and decoded by each
 * peer. Signing adds one HMAC-SHA-256 over the message at the sender and
 * one at each subscriber (vigie/sign.h, libcrypto). This program builds
 * an agent-shaped batch (N instances of 20 samples each, with identity
 * and attributes), then alternates, ROUNDS times, a run of K messages
 * without signing (encode, decode: the stream's own work before) and one
 * with (encode, sign, check, decode), and prints the CPU time of each run
 * per sample (getrusage: user + system of this process). No sockets: the
 * nanomsg send and receive are the same bytes plus 32 either way.
 *
 * Usage: stream_sign [N [K [ROUNDS]]]   (defaults 50 1000 5)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_cpu.h"
#include "vigie/batch.h"
#include "vigie/sign.h"
#include "vigie/wire.h"

static struct vg_batch *agent_batch(int n)
{
	struct vg_batch *b = vg_batch_new("compute-17.example", 7, 42, 1795000020000LL);
	char id[64], name[64], metric[32];

	for (int i = 0; b && i < n; i++) {
		snprintf(id, sizeof(id), "5f1c0a2e-0000-4000-8000-%012d", i);
		snprintf(name, sizeof(name), "instance-%08x", i);
		if (!vg_batch_resource(b, 1, id, name, NULL, 1795000020000LL) ||
		    vg_batch_identity(b, "3f2a9c0d8e7b4a61", "u1", "m1.small") ||
		    vg_batch_attr(b, "image", "debian-12"))
			exit(1);
		for (int k = 0; k < 20; k++) {
			snprintf(metric, sizeof(metric), "metric.%d", k);
			if (vg_batch_sample(b, metric, k % 2 ? VG_KIND_COUNTER : VG_KIND_GAUGE,
					    1234567.0 + i * 20 + k))
				exit(1);
		}
	}
	return b;
}

/* K messages, signed or not; the CPU seconds they took. */
static double run(const struct vg_batch *b, const struct vg_key *key, int k)
{
	double t0 = bench_self_cpu_s();

	for (int i = 0; i < k; i++) {
		uint8_t *wire = NULL, *msg;
		size_t len = 0;
		struct vg_batch *got = NULL;
		if (vg_wire_encode(b, &wire, &len) || !(msg = realloc(wire, len + VG_WIRE_MAC_LEN)))
			exit(1);
		if (key && (vg_sign_hmac(key, msg, len, msg + len) ||
			    vg_sign_hmac_check(key, msg, len, msg + len)))
			exit(1);
		if (vg_wire_decode(msg, len, &got))
			exit(1);
		vg_batch_free(got);
		free(msg);
	}
	return bench_self_cpu_s() - t0;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 50, k = argc > 2 ? atoi(argv[2]) : 1000;
	int rounds = argc > 3 ? atoi(argv[3]) : 5;
	struct vg_key key = {32, "0123456789abcdef0123456789abcdef"};
	struct vg_batch *b = agent_batch(n);
	uint8_t *wire = NULL;
	size_t len = 0;
	double samples = (double)n * 20 * k;

	if (!b || n <= 0 || k <= 0 || rounds <= 0 || vg_wire_encode(b, &wire, &len))
		return 1;
	free(wire);
	printf("batch: %d instances, %d samples, %zu bytes; %d messages a run\n", n, n * 20,
	       len, k);
	run(b, &key, k / 10 + 1); /* warm up */
	for (int r = 0; r < rounds; r++) {
		double plain = run(b, NULL, k), sig = run(b, &key, k);
		printf("round %d: unsigned %.1f ns/sample, signed %.1f ns/sample, "
		       "added %.1f ns/sample (%.0f %%)\n",
		       r + 1, plain / samples * 1e9, sig / samples * 1e9,
		       (sig - plain) / samples * 1e9, (sig - plain) / plain * 100);
	}
	vg_batch_free(b);
	return 0;
}
