/*
 * sign_fuzz.c — libFuzzer target for what common/sign.c parses: key file
 * contents, signed batch messages and signed acks.
 *
 * Invariants checked on every input: the key parser either gives a key of
 * VG_SIGN_KEY_MIN..VG_SIGN_KEY_MAX bytes or refuses with a reason; checking
 * any bytes as a signed batch or ack never crashes, and the collector's
 * verdict on them is a defined one;
 * a message the decoder accepts, once signed, verifies, decodes to the same
 * counts, and fails to verify under any other key.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/sign.h"
#include "vigie/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vg_keyring *kr;
	struct vg_key k, a = {.len = 32}, b = {.len = 32};
	const char *why = NULL;
	struct vg_batch *d = NULL, *d2 = NULL;

	for (int i = 0; i < 32; i++) {
		a.bytes[i] = (uint8_t)i;
		b.bytes[i] = (uint8_t)(0x80 + i);
	}
	if (!kr) {
		kr = vg_keyring_new();
		assert(kr && vg_keyring_add(kr, "a", &a) == 0 &&
		       vg_keyring_add(kr, "b", &b) == 0);
	}

	/* key files */
	if (vg_sign_key_parse(data, size, &k, &why) == 0)
		assert(k.len >= VG_SIGN_KEY_MIN && k.len <= VG_SIGN_KEY_MAX);
	else
		assert(why && k.len == 0);

	/* arbitrary bytes as a signed batch: a forged MAC never matches */
	(void)vg_sign_verify(&a, data, size);
	struct vg_sign_policy p = {.keys = kr, .require = 1, .window_ms = 1000};
	int v = vg_sign_check(&p, "a", 0, 0, data, size);
	assert(v >= 0 && v <= VG_SIGN_VERDICT_MAX);
	(void)vg_sign_mac(data, size);

	/* arbitrary bytes as an ack */
	uint8_t mac[VG_WIRE_MAC_LEN] = {0};
	(void)vg_sign_ack_verify(&a, mac, data, size);

	/* whatever decodes can be signed, verified and decoded again */
	if (vg_wire_decode(data, size, &d) == 0) {
		uint8_t *m = malloc(size ? size : 1);
		size_t len = size;
		assert(m);
		memcpy(m, data, size);
		if (vg_sign_batch(&a, &m, &len) == 0) {
			assert(vg_sign_verify(&a, m, len) == 0);
			assert(vg_sign_verify(&b, m, len) != 0);
			assert(vg_wire_decode(m, len, &d2) == 0);
			assert(d2->nsamples == d->nsamples && d2->nres == d->nres &&
			       d2->seq == d->seq && !strcmp(d2->host, d->host));
			vg_batch_free(d2);
			assert(vg_sign_check(&p, "a", 0, 0, m, len) == VG_SIGN_OK);
			p.window_ms = 0;
			assert(vg_sign_check(&p, "b", 0, 0, m, len) == VG_SIGN_WRONG_HOST);
		}
		free(m);
		vg_batch_free(d);
	}
	return 0;
}
