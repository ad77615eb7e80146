/*
 * wire_test.c — the batch builder and the wire codec: round trip, string
 * interning, every rejection the decoder makes, and acks.
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
#include <jansson.h>

#include "vigie/name.h"
#include "vigie/wire.h"

static struct vg_batch *sample_batch(void)
{
	struct vg_batch *b = vg_batch_new("compute-1", 0x1122334455667788ull, 42,
					  1795000000123LL);
	assert_non_null(b);
	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, "6695eb01-f6a4-8304-79aa-97f2502e193f",
					  "test", NULL, 1795000000100LL));
	assert_int_equal(vg_batch_identity(b, "proj-a", "user-1", "m1.small"), 0);
	assert_int_equal(vg_batch_attr(b, "image", "cirros"), 0);
	assert_int_equal(vg_batch_sample(b, "cpu.time", VG_KIND_COUNTER, 12.5), 0);
	assert_int_equal(vg_batch_sample(b, "memory.size", VG_KIND_GAUGE, 2147483648.0), 0);
	assert_non_null(vg_batch_resource(b, VG_RT_DISK, "6695eb01-f6a4-8304-79aa-97f2502e193f-vda",
					  "vda", "6695eb01-f6a4-8304-79aa-97f2502e193f", 1795000000101LL));
	assert_int_equal(vg_batch_sample(b, "disk.read.bytes", VG_KIND_COUNTER, 4096), 0);
	assert_int_equal(vg_batch_event(b, "6695eb01-f6a4-8304-79aa-97f2502e193f", VG_EV_STARTED,
					1795000000000LL, NULL),
			 0);
	return b;
}

static void test_round_trip(void **state)
{
	struct vg_batch *b = sample_batch(), *d = NULL;
	uint8_t *buf;
	size_t len;

	assert_int_equal(vg_wire_encode(b, &buf, &len), 0);
	assert_true(len > 48);
	assert_int_equal(vg_wire_decode(buf, len, &d), 0);
	assert_string_equal(d->host, "compute-1");
	assert_true(d->stream == 0x1122334455667788ull);
	assert_int_equal(d->seq, 42);
	assert_int_equal(d->time_ms, 1795000000123LL);
	assert_int_equal(d->nres, 2);
	assert_int_equal(d->nsamples, 3);
	assert_int_equal(d->nevents, 1);
	const struct vg_resource *r = &d->res[0];
	assert_int_equal(r->type, VG_RT_INSTANCE);
	assert_string_equal(r->name, "test");
	assert_null(r->parent);
	assert_string_equal(r->project, "proj-a");
	assert_string_equal(r->user, "user-1");
	assert_string_equal(r->flavor, "m1.small");
	assert_int_equal(r->time_ms, 1795000000100LL);
	assert_int_equal(r->nattrs, 1);
	assert_string_equal(vg_resource_attrs(d, r)[0].value, "cirros");
	assert_int_equal(r->nsamples, 2);
	assert_string_equal(vg_resource_samples(d, r)[0].metric, "cpu.time");
	assert_true(vg_resource_samples(d, r)[0].value == 12.5);
	assert_int_equal(vg_resource_samples(d, r)[0].kind, VG_KIND_COUNTER);
	r = &d->res[1];
	assert_string_equal(r->parent, d->res[0].id);
	assert_int_equal(r->nsamples, 1);
	assert_true(vg_resource_samples(d, r)[0].value == 4096);
	assert_int_equal(d->events[0].type, VG_EV_STARTED);
	assert_null(d->events[0].detail);
	free(buf);
	vg_batch_free(b);
	vg_batch_free(d);
}

/* The same metric name on 1000 resources is stored once in the table. */
static void test_interning(void **state)
{
	struct vg_batch *b = vg_batch_new("h", 1, 1, 0);
	uint8_t *buf;
	size_t len;
	char id[32];

	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "res-%d", i);
		assert_non_null(vg_batch_resource(b, VG_RT_HOST_NIC, id, NULL, NULL, 0));
		assert_int_equal(vg_batch_sample(b, "a.fairly.long.metric.name.for.interning",
						 VG_KIND_GAUGE, i),
				 0);
	}
	assert_int_equal(vg_wire_encode(b, &buf, &len), 0);
	/* header + host + 1001 distinct ids/names + 1000*(44+13) */
	assert_true(len < 48 + 4 + 3 + 1000 * (2 + 8) + 2 + 40 + 1000 * 57 + 16);
	struct vg_batch *d;
	assert_int_equal(vg_wire_decode(buf, len, &d), 0);
	assert_true(vg_resource_samples(d, &d->res[999])[0].value == 999);
	free(buf);
	vg_batch_free(b);
	vg_batch_free(d);
}

static int decode_mutated(size_t off, uint8_t val)
{
	struct vg_batch *b = sample_batch(), *d = NULL;
	uint8_t *buf;
	size_t len;
	assert_int_equal(vg_wire_encode(b, &buf, &len), 0);
	assert_true(off < len);
	buf[off] = val;
	int rc = vg_wire_decode(buf, len, &d);
	assert_true(rc != 0 || d != NULL);
	vg_batch_free(d);
	vg_batch_free(b);
	free(buf);
	return rc;
}

static void test_rejections(void **state)
{
	struct vg_batch *b = sample_batch(), *d = (void *)1;
	uint8_t *buf;
	size_t len;
	assert_int_equal(vg_wire_encode(b, &buf, &len), 0);

	/* every truncation is rejected, never crashes */
	for (size_t l = 0; l < len; l++) {
		int rc = vg_wire_decode(buf, l, &d);
		assert_true(rc == -EBADMSG || rc == -EPROTONOSUPPORT);
		assert_null(d);
	}
	/* trailing garbage */
	uint8_t *big = malloc(len + 1);
	memcpy(big, buf, len);
	big[len] = 0;
	assert_int_equal(vg_wire_decode(big, len + 1, &d), -EBADMSG);
	free(big);
	/* oversize */
	assert_int_equal(vg_wire_decode(buf, VG_WIRE_MAX_MESSAGE + 1, &d), -E2BIG);

	assert_int_equal(decode_mutated(0, 'X'), -EPROTONOSUPPORT); /* magic */
	assert_int_equal(decode_mutated(4, 2), -EPROTONOSUPPORT);   /* version */
	assert_int_equal(decode_mutated(6, 2), -EBADMSG);           /* unknown flag */
	assert_int_equal(decode_mutated(7, 0x80), -EBADMSG);        /* unknown flag */
	/* flag "signed" without a trailer: the last 32 bytes are missing */
	assert_int_equal(decode_mutated(6, 1), -EBADMSG);
	assert_int_equal(decode_mutated(35, 0x7f), -E2BIG);   /* nstrings */
	assert_int_equal(decode_mutated(32, 0xff), -EBADMSG); /* nstrings > data */
	assert_int_equal(decode_mutated(48, 0xee), -EBADMSG); /* host index */

	/* find the first resource and corrupt its type, state and indices */
	uint32_t nstr = buf[32] | buf[33] << 8;
	size_t p = 52;
	for (uint32_t i = 0; i < nstr; i++)
		p += 2 + (buf[p] | buf[p + 1] << 8);
	assert_int_equal(decode_mutated(p, 9), -EBADMSG);        /* type */
	assert_int_equal(decode_mutated(p + 1, 7), -EBADMSG);    /* state */
	assert_int_equal(decode_mutated(p + 4, 0xff), -EBADMSG); /* id -> NO_STRING/out */
	assert_int_equal(decode_mutated(p + 36, 9), -EBADMSG);   /* sample count */
	free(buf);
	vg_batch_free(b);
}

static void test_non_finite_rejected(void **state)
{
	double bad[] = {NAN, INFINITY, -INFINITY};
	for (int i = 0; i < 3; i++) {
		struct vg_batch *b = vg_batch_new("h", 1, 1, 0), *d = NULL;
		uint8_t *buf;
		size_t len;
		vg_batch_resource(b, VG_RT_HOST, "h", NULL, NULL, 0);
		vg_batch_sample(b, "x", VG_KIND_GAUGE, bad[i]);
		assert_int_equal(vg_wire_encode(b, &buf, &len), 0);
		assert_int_equal(vg_wire_decode(buf, len, &d), -EBADMSG);
		free(buf);
		vg_batch_free(b);
	}
}

static void test_embedded_nul_and_long_string(void **state)
{
	struct vg_batch *b = vg_batch_new("h", 1, 1, 0), *d = NULL;
	uint8_t *buf;
	size_t len;
	char longname[VG_WIRE_MAX_STRING + 2];

	vg_batch_resource(b, VG_RT_HOST, "hXst", NULL, NULL, 0);
	assert_int_equal(vg_wire_encode(b, &buf, &len), 0);
	uint8_t *x = memmem(buf, len, "hXst", 4);
	assert_non_null(x);
	x[1] = '\0';
	assert_int_equal(vg_wire_decode(buf, len, &d), -EBADMSG);
	free(buf);
	vg_batch_free(b);

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	b = vg_batch_new("h", 1, 1, 0);
	vg_batch_resource(b, VG_RT_HOST, longname, NULL, NULL, 0);
	assert_int_equal(vg_wire_encode(b, &buf, &len), -EINVAL);
	vg_batch_free(b);
}

/* Decode what vg_wire_encode_unchecked made of b: the decoder's answer. */
static int decode_raw(struct vg_batch *b)
{
	struct vg_batch *d = NULL;
	uint8_t *buf;
	size_t len;
	int rc;

	assert_int_equal(vg_wire_encode_unchecked(b, &buf, &len), 0);
	rc = vg_wire_decode(buf, len, &d);
	assert_true(rc != 0 || d != NULL);
	vg_batch_free(d);
	free(buf);
	vg_batch_free(b);
	return rc;
}

enum { F_HOST,
       F_ID,
       F_NAME,
       F_PARENT,
       F_PROJECT,
       F_USER,
       F_FLAVOR,
       F_METRIC,
       F_KEY,
       F_VALUE,
       F_EVENT,
       F_N };

/* A one-resource batch with field f set to v (the others ordinary). */
static struct vg_batch *with(int f, const char *v)
{
	struct vg_batch *b = vg_batch_new(f == F_HOST ? v : "node", 1, 1, 1);

	vg_batch_resource(b, VG_RT_DISK, f == F_ID ? v : "inst-vda",
			  f == F_NAME ? v : "vda", f == F_PARENT ? v : "inst", 1);
	vg_batch_identity(b, f == F_PROJECT ? v : "p", f == F_USER ? v : "u",
			  f == F_FLAVOR ? v : "m1");
	vg_batch_attr(b, f == F_KEY ? v : "bus", f == F_VALUE ? v : "virtio");
	vg_batch_sample(b, f == F_METRIC ? v : "disk.read.bytes",
			VG_KIND_COUNTER, 1);
	vg_batch_event(b, f == F_EVENT ? v : "inst", VG_EV_STARTED, 1, NULL);
	return b;
}

/* Which names the decoder takes (docs/protocol.md "Names"): both ends
 * refuse control characters (C0, DEL, C1), hidden characters (Unicode
 * bidirectional controls, invisible format characters: a name that
 * displays as another), invalid UTF-8 and identity fields over
 * VG_NAME_MAX, with -EILSEQ. */
static void test_name_rules(void **state)
{
	char n200[VG_NAME_MAX + 1], n201[VG_NAME_MAX + 2], cjk[VG_NAME_MAX + 1],
		t1024[VG_WIRE_MAX_STRING + 1];
	const char *bad[] = {"a\nb", "tab\there", "esc\x1b]0;x\x07", "del\x7f",
			     "c1\xc2\x85", "c1\xc2\x9b[31m", "\xff\xfe",
			     "over\xc0\xaf", "surr\xed\xa0\x80", "big\xf4\x90\x80\x80",
			     "cut\xe4\xb8",
			     "shop\xe2\x80\xae"
			     "bew",                  /* U+202E RLO */
			     "shop\xe2\x81\xa7web",  /* U+2067 RLI */
			     "shop\xe2\x80\x8fweb",  /* U+200F RLM */
			     "shop\xe2\x80\x8bweb",  /* U+200B ZWSP */
			     "shop\xef\xbb\xbfweb"}; /* U+FEFF */
	struct vg_batch *b;
	uint8_t *buf;
	size_t len;

	memset(n200, ':', sizeof(n200) - 1);
	n200[sizeof(n200) - 1] = '\0';
	memset(n201, 'p', sizeof(n201) - 1);
	n201[sizeof(n201) - 1] = '\0';
	for (size_t i = 0; i + 3 <= VG_NAME_MAX; i += 3)
		memcpy(cjk + i, "\xe9\x9b\xb2", 3); /* U+96F2 */
	cjk[VG_NAME_MAX / 3 * 3] = '\0';
	memset(t1024, 'n', sizeof(t1024) - 1);
	t1024[sizeof(t1024) - 1] = '\0';

	/* the longest and widest names of every field are taken */
	for (int f = 0; f < F_N; f++) {
		assert_int_equal(decode_raw(with(f, n200)), 0);
		assert_int_equal(decode_raw(with(f, cjk)), 0);
	}
	assert_int_equal(decode_raw(with(F_NAME, t1024)), 0);
	assert_int_equal(decode_raw(with(F_VALUE, t1024)), 0);
	/* a project (user, flavor, ...) over 200 bytes is refused like an id */
	for (int f = 0; f < F_N; f++)
		if (f != F_NAME && f != F_VALUE)
			assert_int_equal(decode_raw(with(f, n201)), -EILSEQ);
	/* no control character, no invalid UTF-8, in any field */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		for (int f = 0; f < F_N; f++) {
			if (decode_raw(with(f, bad[i])) != -EILSEQ)
				fail_msg("field %d took bad name %zu", f, i);
		}
	/* and the encoder never produces what the decoder refuses */
	b = with(F_PROJECT, "a\nb");
	assert_int_equal(vg_wire_encode(b, &buf, &len), -EILSEQ);
	vg_batch_free(b);
	b = with(F_PROJECT, "shop\xe2\x80\xae"
			    "bew");
	assert_int_equal(vg_wire_encode(b, &buf, &len), -EILSEQ);
	vg_batch_free(b);
	b = with(F_PROJECT, n201);
	assert_int_equal(vg_wire_encode(b, &buf, &len), -EILSEQ);
	vg_batch_free(b);
	assert_non_null(strstr(vg_wire_strerror(-EILSEQ), "name"));
}

static void test_ack(void **state)
{
	uint8_t buf[VG_WIRE_ACK_LEN];
	struct vg_ack a = {VG_ACK_RETRY, 77, 99}, o;

	assert_int_equal(vg_wire_ack_encode(&a, buf), VG_WIRE_ACK_LEN);
	assert_int_equal(vg_wire_ack_decode(buf, sizeof(buf), &o), 0);
	assert_int_equal(o.status, VG_ACK_RETRY);
	assert_int_equal(o.stream, 77);
	assert_int_equal(o.seq, 99);
	assert_int_equal(vg_wire_ack_decode(buf, sizeof(buf) - 1, &o), -EBADMSG);
	buf[5] = 9;
	assert_int_equal(vg_wire_ack_decode(buf, sizeof(buf), &o), -EBADMSG);
	buf[0] = 'Z';
	assert_int_equal(vg_wire_ack_decode(buf, sizeof(buf), &o), -EPROTONOSUPPORT);
}

/* Header flag bit 0 ("signed"): the decoder accepts it and ignores the
 * 32-byte trailer, whatever it holds (sign.c checks it); a signed message
 * too short for its trailer, or with the trailer cut, is refused. */
static void test_signed_flag(void **state)
{
	struct vg_batch *b = sample_batch(), *d = NULL;
	uint8_t *buf, *sbuf;
	size_t len;

	assert_int_equal(vg_wire_encode(b, &buf, &len), 0);
	sbuf = malloc(len + VG_WIRE_MAC_LEN);
	memcpy(sbuf, buf, len);
	memset(sbuf + len, 0xa5, VG_WIRE_MAC_LEN);
	sbuf[VG_WIRE_FLAGS_OFFSET] |= VG_WIRE_FLAG_SIGNED;
	assert_int_equal(vg_wire_decode(sbuf, len + VG_WIRE_MAC_LEN, &d), 0);
	assert_string_equal(d->host, "compute-1");
	assert_int_equal(d->nsamples, 3);
	assert_int_equal(d->nevents, 1);
	vg_batch_free(d);
	d = NULL;
	/* one trailer byte short, or one extra byte: refused */
	assert_int_equal(vg_wire_decode(sbuf, len + VG_WIRE_MAC_LEN - 1, &d), -EBADMSG);
	assert_null(d);
	uint8_t *big = malloc(len + VG_WIRE_MAC_LEN + 1);
	memcpy(big, sbuf, len + VG_WIRE_MAC_LEN);
	big[len + VG_WIRE_MAC_LEN] = 0;
	assert_int_equal(vg_wire_decode(big, len + VG_WIRE_MAC_LEN + 1, &d), -EBADMSG);
	free(big);
	/* a bare signed header with less than a trailer after it */
	assert_int_equal(vg_wire_decode(sbuf, 48 + VG_WIRE_MAC_LEN - 1, &d), -EBADMSG);
	/* the unsigned message is still decoded as before */
	assert_int_equal(vg_wire_decode(buf, len, &d), 0);
	vg_batch_free(d);
	/* the trailer does not count towards the size limit, but only it */
	assert_int_equal(vg_wire_decode(sbuf, VG_WIRE_MAX_MESSAGE + VG_WIRE_MAC_LEN + 1, &d),
			 -E2BIG);
	free(sbuf);
	free(buf);
	vg_batch_free(b);
}

static void test_signed_ack_format(void **state)
{
	uint8_t buf[VG_WIRE_ACK_LEN + VG_WIRE_MAC_LEN];
	struct vg_ack a = {VG_ACK_OK, 5, 6}, o;

	assert_int_equal(vg_wire_ack_encode(&a, buf), VG_WIRE_ACK_LEN);
	memset(buf + VG_WIRE_ACK_LEN, 0x11, VG_WIRE_MAC_LEN);
	/* 56 bytes without the flag, 24 bytes with it: refused */
	assert_int_equal(vg_wire_ack_decode(buf, sizeof(buf), &o), -EBADMSG);
	buf[VG_WIRE_FLAGS_OFFSET] = VG_WIRE_FLAG_SIGNED;
	assert_int_equal(vg_wire_ack_decode(buf, VG_WIRE_ACK_LEN, &o), -EBADMSG);
	assert_int_equal(vg_wire_ack_decode(buf, sizeof(buf), &o), 0);
	assert_int_equal(o.status, VG_ACK_OK);
	assert_int_equal(o.stream, 5);
	assert_int_equal(o.seq, 6);
	buf[VG_WIRE_FLAGS_OFFSET] = 3; /* unknown flag */
	assert_int_equal(vg_wire_ack_decode(buf, sizeof(buf), &o), -EBADMSG);
	assert_int_equal(vg_wire_ack_decode(buf, sizeof(buf) + 0 - 1, &o), -EBADMSG);
}

static void test_json(void **state)
{
	struct vg_batch *b = sample_batch();
	char *s = vg_batch_to_json(b);
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "host")), "compute-1");
	json_t *r0 = json_array_get(json_object_get(j, "resources"), 0);
	assert_string_equal(json_string_value(json_object_get(r0, "type")), "instance");
	json_t *v = json_object_get(json_object_get(json_object_get(r0, "samples"), "memory.size"), "value");
	assert_true(json_real_value(v) == 2147483648.0);
	json_decref(j);
	free(s);
	vg_batch_free(b);
}

static void test_enum_names(void **state)
{
	assert_int_equal(vg_rtype_parse("host_disk"), VG_RT_HOST_DISK);
	assert_int_equal(vg_rtype_parse("bogus"), -EINVAL);
	assert_string_equal(vg_rtype_name(VG_RT_NIC), "nic");
	assert_null(vg_rtype_name(0));
	assert_string_equal(vg_event_name(VG_EV_GAP), "gap");
}

/* A resource's samples and attributes: NULL when it has none, also in a
 * batch with no array at all (published measures carry no attributes: an
 * offset added to the NULL array was undefined behaviour, found by
 * tests/fuzz/publish_fuzz.c under UBSan), and never another resource's. */
static void test_accessors_without_items(void **state)
{
	struct vg_batch *b = vg_batch_new("h", 1, 1, 1000);
	struct vg_resource *r;

	(void)state;
	assert_non_null(vg_batch_resource(b, VG_RT_CUSTOM, "c1", NULL, NULL, 1000));
	r = &b->res[0];
	assert_null(b->attrs);
	assert_null(vg_resource_attrs(b, r));
	assert_null(vg_resource_samples(b, r));
	assert_int_equal(vg_batch_sample(b, "m", VG_KIND_GAUGE, 1), 0);
	assert_int_equal(vg_batch_attr(b, "k", "v"), 0);
	assert_non_null(vg_batch_resource(b, VG_RT_CUSTOM, "c2", NULL, NULL, 1000));
	assert_string_equal(vg_resource_attrs(b, &b->res[0])[0].key, "k");
	assert_string_equal(vg_resource_samples(b, &b->res[0])[0].metric, "m");
	assert_null(vg_resource_attrs(b, &b->res[1]));
	assert_null(vg_resource_samples(b, &b->res[1]));
	vg_batch_free(b);
}

/* A poll too big for one message is cut into batches that each encode
 * within the limit, in order, with consecutive seqs, losing nothing but
 * what fits no message alone or breaks the name rules (counted). */
static void test_split(void **state)
{
	(void)state;
	enum { NRES = 3000,
	       NEV = 300,
	       MAX = 65536 };
	char id[64], big[VG_NAME_MAX + 50];
	struct vg_batch *b = vg_batch_new("compute-1", 7, 42, 1795000000000LL);

	assert_non_null(b);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	for (int i = 0; i < NRES; i++) {
		snprintf(id, sizeof(id), "inst-%05d", i);
		assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, id, "vm", NULL,
						  1795000000000LL + i));
		assert_int_equal(vg_batch_identity(b, "proj", NULL, "m1"), 0);
		assert_int_equal(vg_batch_attr(b, "image", id), 0);
		for (int k = 0; k < 5; k++)
			assert_int_equal(vg_batch_sample(b, k ? "memory.size" : "cpu.time",
							 VG_KIND_GAUGE, i * 10.0 + k),
					 0);
		if (i == 10) /* one sample whose metric breaks the rules */
			assert_int_equal(vg_batch_sample(b, big, VG_KIND_GAUGE, 1), 0);
		if (i == 20) /* 70 attributes: 6 beyond the limit */
			for (int k = 0; k < 69; k++) {
				char key[16];
				snprintf(key, sizeof(key), "k%d", k);
				assert_int_equal(vg_batch_attr(b, key, "v"), 0);
			}
	}
	/* a resource whose id breaks the rules, with 2 samples */
	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, big, NULL, NULL, 1795000000000LL));
	assert_int_equal(vg_batch_sample(b, "cpu.time", VG_KIND_GAUGE, 1), 0);
	assert_int_equal(vg_batch_sample(b, "cpu.time", VG_KIND_GAUGE, 2), 0);
	/* a resource that fits no message of MAX bytes on its own */
	assert_non_null(vg_batch_resource(b, VG_RT_INSTANCE, "huge", NULL, NULL, 1795000000000LL));
	for (int k = 0; k < MAX / 13; k++)
		assert_int_equal(vg_batch_sample(b, "cpu.time", VG_KIND_GAUGE, k), 0);
	assert_non_null(vg_batch_resource(b, VG_RT_HOST, "compute-1", NULL, NULL, 1795000000000LL));
	assert_int_equal(vg_batch_sample(b, "host.cpu.util", VG_KIND_GAUGE, 50), 0);
	for (int i = 0; i < NEV; i++) {
		snprintf(id, sizeof(id), "inst-%05d", i);
		assert_int_equal(vg_batch_event(b, id, VG_EV_STARTED, 1795000000000LL + i, NULL), 0);
	}

	uint8_t *buf = NULL;
	size_t len = 0;
	/* before, the whole poll was lost: 70 attributes on one resource */
	assert_int_equal(vg_wire_encode(b, &buf, &len), -E2BIG);

	struct vg_batch **parts = NULL;
	size_t nparts = 0;
	struct vg_wire_split_stats st;
	assert_int_equal(vg_wire_split(b, MAX, &parts, &nparts, &st), 0);
	assert_true(nparts > 5);
	assert_int_equal(st.resources, 2);
	assert_int_equal(st.samples, 1 + 2 + MAX / 13);
	assert_int_equal(st.attrs, 6);
	assert_int_equal(st.events, 0);

	size_t ri = 0, ei = 0, nsamples = 0;
	for (size_t p = 0; p < nparts; p++) {
		struct vg_batch *d = NULL;
		assert_int_equal(vg_wire_encode(parts[p], &buf, &len), 0);
		assert_true(len <= MAX);
		assert_int_equal(vg_wire_decode(buf, len, &d), 0);
		free(buf);
		assert_string_equal(d->host, "compute-1");
		assert_int_equal(d->stream, 7);
		assert_int_equal(d->seq, 42 + p);
		assert_int_equal(d->time_ms, 1795000000000LL);
		for (size_t i = 0; i < d->nres; i++, ri++) {
			const struct vg_resource *r = &d->res[i];
			const struct vg_sample *s = vg_resource_samples(d, r);
			if (ri < NRES) {
				snprintf(id, sizeof(id), "inst-%05zu", ri);
				assert_string_equal(r->id, id);
				assert_string_equal(r->project, "proj");
				assert_string_equal(r->flavor, "m1");
				assert_null(r->user);
				assert_int_equal(r->time_ms, 1795000000000LL + (int64_t)ri);
				assert_int_equal(r->nsamples, 5);
				assert_int_equal(r->nattrs, ri == 20 ? VG_WIRE_MAX_ATTRS_PER_RES : 1);
				assert_string_equal(vg_resource_attrs(d, r)[0].value, id);
				for (int k = 0; k < 5; k++)
					assert_true(s[k].value == ri * 10.0 + k);
			} else {
				assert_string_equal(r->id, "compute-1");
				assert_int_equal(r->type, VG_RT_HOST);
			}
			nsamples += r->nsamples;
		}
		for (size_t i = 0; i < d->nevents; i++, ei++) {
			snprintf(id, sizeof(id), "inst-%05zu", ei);
			assert_string_equal(d->events[i].resource, id);
			assert_int_equal(d->events[i].time_ms, 1795000000000LL + (int64_t)ei);
		}
		vg_batch_free(d);
		vg_batch_free(parts[p]);
	}
	free(parts);
	assert_int_equal(ri, NRES + 1);
	assert_int_equal(ei, NEV);
	assert_int_equal(nsamples, NRES * 5 + 1);
	vg_batch_free(b);

	/* a count limit, not the size: more events than one message holds */
	b = vg_batch_new("compute-1", 7, 1, 1795000000000LL);
	for (unsigned i = 0; i < VG_WIRE_MAX_EVENTS + 10; i++)
		assert_int_equal(vg_batch_event(b, "inst", VG_EV_STARTED, 1795000000000LL, NULL), 0);
	assert_int_equal(vg_wire_encode(b, &buf, &len), -E2BIG);
	assert_int_equal(vg_wire_split(b, 0, &parts, &nparts, &st), 0);
	assert_int_equal(nparts, 2);
	assert_int_equal(parts[0]->nevents, VG_WIRE_MAX_EVENTS);
	assert_int_equal(parts[1]->nevents, 10);
	assert_int_equal(parts[1]->seq, 2);
	for (size_t p = 0; p < nparts; p++) {
		assert_int_equal(vg_wire_encode(parts[p], &buf, &len), 0);
		free(buf);
		vg_batch_free(parts[p]);
	}
	free(parts);
	vg_batch_free(b);

	/* a batch that fits stays one part; an empty one too */
	b = sample_batch();
	assert_int_equal(vg_wire_split(b, 0, &parts, &nparts, &st), 0);
	assert_int_equal(nparts, 1);
	assert_int_equal(parts[0]->nres, 2);
	assert_int_equal(parts[0]->nsamples, 3);
	assert_int_equal(parts[0]->nevents, 1);
	assert_int_equal(parts[0]->seq, 42);
	vg_batch_free(parts[0]);
	free(parts);
	vg_batch_free(b);
	b = vg_batch_new("compute-1", 7, 5, 1795000000000LL);
	assert_int_equal(vg_wire_split(b, 0, &parts, &nparts, &st), 0);
	assert_int_equal(nparts, 1);
	assert_int_equal(parts[0]->nres, 0);
	vg_batch_free(parts[0]);
	free(parts);
	vg_batch_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_interning),
		cmocka_unit_test(test_rejections),
		cmocka_unit_test(test_non_finite_rejected),
		cmocka_unit_test(test_embedded_nul_and_long_string),
		cmocka_unit_test(test_name_rules),
		cmocka_unit_test(test_ack),
		cmocka_unit_test(test_signed_flag),
		cmocka_unit_test(test_signed_ack_format),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_enum_names),
		cmocka_unit_test(test_accessors_without_items),
		cmocka_unit_test(test_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
