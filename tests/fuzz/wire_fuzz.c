/*
 * wire_fuzz.c — libFuzzer target for the batch decoder and ack decoder.
 *
 * Invariants checked on every input: decoding never crashes or leaks; a
 * decoded batch re-encodes, and decoding that again gives the same
 * counts, strings and values (the codec is a bijection on what it accepts);
 * split at a size the input picks (vg_wire_split, the agent's poll too big
 * for one message), every part encodes within that size with consecutive
 * seqs, and the parts plus what was left out are the batch, to the count.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_split(const struct vg_batch *b, size_t max)
{
	struct vg_batch **parts = NULL;
	struct vg_wire_split_stats st;
	size_t np = 0, nres = 0, nsamples = 0, nevents = 0, nattrs = 0, battrs = 0;
	int rc = vg_wire_split(b, max, &parts, &np, &st);

	assert(rc == 0 || rc == -ENOMEM);
	if (rc)
		return;
	assert(np >= 1);
	for (size_t k = 0; k < np; k++) {
		const struct vg_batch *p = parts[k];
		uint8_t *buf;
		size_t len;

		assert(p->seq == b->seq + k && strcmp(p->host, b->host) == 0);
		rc = vg_wire_encode(p, &buf, &len);
		assert(rc == 0 || rc == -ENOMEM);
		if (rc == 0) {
			/* an empty only part holds the host alone */
			assert(len <= max || (np == 1 && !p->nres && !p->nevents));
			free(buf);
		}
		nres += p->nres;
		nsamples += p->nsamples;
		nevents += p->nevents;
		for (size_t i = 0; i < p->nres; i++)
			nattrs += p->res[i].nattrs;
		vg_batch_free(parts[k]);
	}
	free(parts);
	for (size_t i = 0; i < b->nres; i++)
		battrs += b->res[i].nattrs;
	assert(nres + st.resources == b->nres);
	assert(nsamples + st.samples == b->nsamples);
	assert(nevents + st.events == b->nevents);
	assert(nattrs + st.attrs == battrs);
}

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
	check_split(b, 160 + (size_t)(b->seq % 2048)); /* seq: any value decodes */
	free(vg_batch_to_json(b));
	vg_batch_free(b);
	return 0;
}
