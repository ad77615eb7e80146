/*
 * wire_fuzz.c — libFuzzer target for the batch decoder and ack decoder.
 *
 * Invariants checked on every input: decoding never crashes or leaks; a
 * decoded batch re-encodes, and decoding that again gives the same
 * counts, strings and values (the codec is a bijection on what it accepts).
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vg_batch *b = NULL, *c = NULL;
	struct vg_ack ack;
	uint8_t *buf;
	size_t len;

	(void)vg_wire_ack_decode(data, size, &ack);
	if (vg_wire_decode(data, size, &b) != 0) {
		assert(b == NULL);
		return 0;
	}
	int rc = vg_wire_encode(b, &buf, &len);
	assert(rc == 0 || rc == -ENOMEM);
	if (rc == 0) {
		assert(vg_wire_decode(buf, len, &c) == 0);
		assert(c->nres == b->nres && c->nsamples == b->nsamples &&
		       c->nevents == b->nevents && c->seq == b->seq);
		assert(strcmp(c->host, b->host) == 0);
		for (size_t i = 0; i < b->nres; i++)
			assert(strcmp(c->res[i].id, b->res[i].id) == 0);
		for (size_t i = 0; i < b->nsamples; i++)
			assert(c->samples[i].value == b->samples[i].value);
		vg_batch_free(c);
		free(buf);
	}
	free(vg_batch_to_json(b));
	vg_batch_free(b);
	return 0;
}
