/*
 * sign_test.c — signed batches and acks (common/sign.c): key files and
 * their permissions, the MAC against an independent test vector, every
 * tampered byte refused, acks bound to their batch, the keyring, and the
 * collector's verdict for unsigned, forged, wrong-host and stale batches.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "vigie/name.h"
#include "vigie/sign.h"
#include "vigie/wire.h"

/* ---- helpers -------------------------------------------------------- */

static struct vg_key key_of(uint8_t seed)
{
	struct vg_key k = {.len = 32};
	for (int i = 0; i < 32; i++)
		k.bytes[i] = (uint8_t)(seed + i);
	return k;
}

static void hexify(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

/* An encoded batch of host `host` with one resource and sample. */
static uint8_t *encoded(const char *host, uint64_t seq, int64_t t, size_t *len)
{
	struct vg_batch *b = vg_batch_new(host, 7, seq, t);
	uint8_t *buf;

	assert_non_null(b);
	assert_non_null(vg_batch_resource(b, VG_RT_HOST, host, NULL, NULL, t));
	assert_int_equal(vg_batch_sample(b, "host.cpu.idle", VG_KIND_GAUGE, 97.5), 0);
	assert_int_equal(vg_wire_encode(b, &buf, len), 0);
	vg_batch_free(b);
	return buf;
}

static uint8_t *signed_msg(const struct vg_key *k, const char *host,
			   int64_t t, size_t *len)
{
	uint8_t *m = encoded(host, 1, t, len);
	assert_int_equal(vg_sign_batch(k, &m, len), 0);
	return m;
}

struct tmpdir {
	char path[64];
};

static void tmpdir_make(struct tmpdir *d)
{
	snprintf(d->path, sizeof(d->path), "/tmp/vigie-sign-test.XXXXXX");
	assert_non_null(mkdtemp(d->path));
	chmod(d->path, 0700);
}

static void tmpdir_rm(struct tmpdir *d)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->path);
	assert_int_equal(system(cmd), 0);
}

static void write_file(const char *path, const void *data, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static const char HEX64[] =
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/* ---- key parsing ---------------------------------------------------- */

static void test_key_parse(void **state)
{
	struct vg_key k;
	const char *why = NULL;
	struct vg_key want = key_of(0);

	/* hex, one line with a newline (openssl rand -hex 32) */
	char text[256];
	snprintf(text, sizeof(text), "%s\n", HEX64);
	assert_int_equal(vg_sign_key_parse(text, strlen(text), &k, &why), 0);
	assert_int_equal(k.len, 32);
	assert_memory_equal(k.bytes, want.bytes, 32);
	/* hex wrapped like xxd -p, upper case, CRLF */
	const char *wrapped = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D\r\n"
			      "1E1F\r\n";
	assert_int_equal(vg_sign_key_parse(wrapped, strlen(wrapped), &k, &why), 0);
	assert_memory_equal(k.bytes, want.bytes, 32);
	/* odd digits, too short, too long, empty */
	assert_int_equal(vg_sign_key_parse(HEX64, 63, &k, &why), -EINVAL);
	assert_non_null(strstr(why, "odd"));
	assert_int_equal(vg_sign_key_parse(HEX64, 62, &k, &why), -EINVAL);
	assert_non_null(strstr(why, "short"));
	char longhex[2 * VG_SIGN_KEY_MAX + 3];
	memset(longhex, 'a', sizeof(longhex) - 1);
	longhex[sizeof(longhex) - 1] = '\0';
	assert_int_equal(vg_sign_key_parse(longhex, 2 * VG_SIGN_KEY_MAX, &k, &why), 0);
	assert_int_equal(k.len, VG_SIGN_KEY_MAX);
	assert_int_equal(vg_sign_key_parse(longhex, 2 * VG_SIGN_KEY_MAX + 2, &k, &why),
			 -EINVAL);
	assert_int_equal(vg_sign_key_parse("", 0, &k, &why), -EINVAL);
	assert_int_equal(vg_sign_key_parse("\n\n", 2, &k, &why), -EINVAL);
	/* raw bytes: taken as they are, >= 32 */
	uint8_t raw[40];
	for (int i = 0; i < 40; i++)
		raw[i] = (uint8_t)(0xf0 ^ i * 37);
	assert_int_equal(vg_sign_key_parse(raw, 40, &k, &why), 0);
	assert_int_equal(k.len, 40);
	assert_memory_equal(k.bytes, raw, 40);
	assert_int_equal(vg_sign_key_parse(raw, 31, &k, &why), -EINVAL);
	assert_non_null(strstr(why, "short"));
	uint8_t rawbig[VG_SIGN_KEY_MAX + 1] = {0xff};
	assert_int_equal(vg_sign_key_parse(rawbig, sizeof(rawbig), &k, &why), -EINVAL);
	/* a passphrase is not hex: raw, and a short one is refused */
	assert_int_equal(vg_sign_key_parse("correct horse", 13, &k, &why), -EINVAL);
	/* a NULL why is allowed */
	assert_int_equal(vg_sign_key_parse("", 0, &k, NULL), -EINVAL);
}

static void test_key_load_permissions(void **state)
{
	struct tmpdir d;
	struct vg_key k;
	char path[128], err[512];

	tmpdir_make(&d);
	snprintf(path, sizeof(path), "%s/a.key", d.path);
	write_file(path, HEX64, 64, 0600);
	assert_int_equal(vg_sign_key_load(path, &k, err, sizeof(err)), 0);
	assert_int_equal(k.len, 32);
	write_file(path, HEX64, 64, 0640); /* group may read: a service group */
	assert_int_equal(vg_sign_key_load(path, &k, err, sizeof(err)), 0);
	write_file(path, HEX64, 64, 0644); /* world-readable: refused */
	assert_int_equal(vg_sign_key_load(path, &k, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "chmod 600"));
	assert_int_equal(k.len, 0);
	write_file(path, HEX64, 64, 0602); /* world-writable: refused */
	assert_int_equal(vg_sign_key_load(path, &k, err, sizeof(err)), -EPERM);
	/* missing, a directory, too large, unparsable: errors name the file */
	snprintf(path, sizeof(path), "%s/none.key", d.path);
	assert_int_equal(vg_sign_key_load(path, &k, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
	assert_int_equal(vg_sign_key_load(d.path, &k, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "regular"));
	char big[VG_SIGN_KEYFILE_MAX + 10];
	memset(big, 'z', sizeof(big));
	snprintf(path, sizeof(path), "%s/big.key", d.path);
	write_file(path, big, sizeof(big), 0600);
	assert_int_equal(vg_sign_key_load(path, &k, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "larger"));
	snprintf(path, sizeof(path), "%s/short.key", d.path);
	write_file(path, "abcd\n", 5, 0600);
	assert_int_equal(vg_sign_key_load(path, &k, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "short.key: is too short"));
	tmpdir_rm(&d);
}

/* ---- batches -------------------------------------------------------- */

/* The bytes of docs/protocol.md's test vector, computed independently
 * (Python's hmac module over the bytes the protocol describes). */
static void test_known_answer(void **state)
{
	struct vg_batch *b = vg_batch_new("kat-host", 1, 1, 1795000000000LL);
	struct vg_key k = key_of(0);
	uint8_t *m;
	size_t len;
	char hex[2 * 200];

	assert_int_equal(vg_wire_encode(b, &m, &len), 0);
	assert_int_equal(vg_sign_batch(&k, &m, &len), 0);
	assert_int_equal(len, 62 + 32);
	hexify(m, 62, hex);
	assert_string_equal(hex, "564742310101010001000000000000000100000000000000005e56eea10100"
				 "00010000000000000000000000000000000000000008006b61742d686f7374");
	hexify(m + 62, 32, hex);
	assert_string_equal(hex, "b2181d85fa8187310215f2f1628ce89921ec226f29029a2919d07636c7880e2e");
	assert_int_equal(vg_sign_verify(&k, m, len), 0);
	assert_memory_equal(vg_sign_mac(m, len), m + 62, 32);

	/* the OK ack to it (stream 1, seq 1) */
	uint8_t ack[VG_WIRE_ACK_LEN + VG_WIRE_MAC_LEN];
	struct vg_ack a = {VG_ACK_OK, 1, 1};
	vg_wire_ack_encode(&a, ack);
	assert_int_equal(vg_sign_ack(&k, m + 62, ack), sizeof(ack));
	hexify(ack + VG_WIRE_ACK_LEN, 32, hex);
	assert_string_equal(hex, "22d216896ea1f5710b4b82bf3a521c6edf33fad97bdcf1f8b9897f351bc151e4");
	free(m);
	vg_batch_free(b);
}

static void test_sign_round_trip(void **state)
{
	struct vg_key k = key_of(1), other = key_of(2);
	struct vg_batch *d = NULL;
	size_t len, plain_len;
	uint8_t *plain = encoded("compute-1", 3, 1795000000000LL, &plain_len);
	uint8_t *m = malloc(plain_len);

	memcpy(m, plain, plain_len);
	len = plain_len;
	assert_int_equal(vg_sign_is_signed(m, len), 0);
	assert_int_equal(vg_sign_verify(&k, m, len), -ENODATA);
	assert_null(vg_sign_mac(m, len));
	assert_int_equal(vg_sign_batch(&k, &m, &len), 0);
	assert_int_equal(len, plain_len + VG_WIRE_MAC_LEN);
	assert_int_equal(vg_sign_is_signed(m, len), 1);
	assert_int_equal(vg_sign_verify(&k, m, len), 0);
	assert_int_equal(vg_sign_verify(&other, m, len), -EKEYREJECTED);
	/* everything but the flag and the trailer is the plain message */
	assert_memory_equal(m + 8, plain + 8, plain_len - 8);
	assert_int_equal(vg_wire_decode(m, len, &d), 0);
	assert_string_equal(d->host, "compute-1");
	assert_int_equal(d->seq, 3);
	vg_batch_free(d);
	/* re-signing with another key replaces the trailer, no growth */
	assert_int_equal(vg_sign_batch(&other, &m, &len), 0);
	assert_int_equal(len, plain_len + VG_WIRE_MAC_LEN);
	assert_int_equal(vg_sign_verify(&other, m, len), 0);
	assert_int_equal(vg_sign_verify(&k, m, len), -EKEYREJECTED);
	/* a signed message cut short of its trailer */
	assert_int_equal(vg_sign_verify(&k, m, 48 + 31), -EBADMSG);
	/* not a batch at all */
	uint8_t junk[64] = "GARBAGE";
	uint8_t *jm = malloc(64);
	size_t jl = 64;
	memcpy(jm, junk, 64);
	assert_int_equal(vg_sign_batch(&k, &jm, &jl), -EPROTONOSUPPORT);
	assert_int_equal(vg_sign_verify(&k, jm, jl), -ENODATA);
	free(jm);
	free(m);
	free(plain);
}

/* Flipping any single bit of a signed message makes it fail to verify
 * (or, for the flag bit, turns it into an unsigned message). */
static void test_every_bit_tampered(void **state)
{
	struct vg_key k = key_of(9);
	size_t len;
	uint8_t *m = signed_msg(&k, "compute-9", 1795000000000LL, &len);

	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			m[i] ^= (uint8_t)(1 << bit);
			int rc = vg_sign_verify(&k, m, len);
			if (i == VG_WIRE_FLAGS_OFFSET && bit == 0)
				assert_int_equal(rc, -ENODATA);
			else if (i < 6) /* magic, version, type: not a batch */
				assert_true(rc == -ENODATA);
			else
				assert_int_equal(rc, -EKEYREJECTED);
			m[i] ^= (uint8_t)(1 << bit);
		}
	}
	assert_int_equal(vg_sign_verify(&k, m, len), 0);
	/* truncation or extension by a byte */
	assert_int_equal(vg_sign_verify(&k, m, len - 1), -EKEYREJECTED);
	uint8_t *m2 = malloc(len + 1);
	memcpy(m2, m, len);
	m2[len] = 0;
	assert_int_equal(vg_sign_verify(&k, m2, len + 1), -EKEYREJECTED);
	free(m2);
	free(m);
}

static void test_ack_bound_to_batch(void **state)
{
	struct vg_key k = key_of(5), other = key_of(6);
	size_t l1, l2;
	uint8_t *m1 = signed_msg(&k, "h1", 1000, &l1);
	uint8_t *m2 = signed_msg(&k, "h1", 2000, &l2);
	const uint8_t *mac1 = vg_sign_mac(m1, l1), *mac2 = vg_sign_mac(m2, l2);
	uint8_t ack[VG_WIRE_ACK_LEN + VG_WIRE_MAC_LEN];
	struct vg_ack a = {VG_ACK_OK, 7, 1}, o;

	assert_non_null(mac1);
	vg_wire_ack_encode(&a, ack);
	assert_int_equal(vg_sign_ack_verify(&k, mac1, ack, VG_WIRE_ACK_LEN), -ENODATA);
	assert_int_equal(vg_sign_ack(&k, mac1, ack), sizeof(ack));
	assert_int_equal(vg_wire_ack_decode(ack, sizeof(ack), &o), 0);
	assert_int_equal(o.status, VG_ACK_OK);
	assert_int_equal(vg_sign_ack_verify(&k, mac1, ack, sizeof(ack)), 0);
	/* for another batch, under another key, tampered status: refused */
	assert_int_equal(vg_sign_ack_verify(&k, mac2, ack, sizeof(ack)), -EKEYREJECTED);
	assert_int_equal(vg_sign_ack_verify(&other, mac1, ack, sizeof(ack)), -EKEYREJECTED);
	ack[5] = VG_ACK_DUPLICATE;
	assert_int_equal(vg_sign_ack_verify(&k, mac1, ack, sizeof(ack)), -EKEYREJECTED);
	ack[5] = VG_ACK_OK;
	ack[20] ^= 1; /* seq */
	assert_int_equal(vg_sign_ack_verify(&k, mac1, ack, sizeof(ack)), -EKEYREJECTED);
	ack[20] ^= 1;
	assert_int_equal(vg_sign_ack_verify(&k, mac1, ack, sizeof(ack) - 1), -EBADMSG);
	assert_int_equal(vg_sign_ack_verify(&k, NULL, ack, sizeof(ack)), -EBADMSG);
	free(m1);
	free(m2);
}

/* ---- keyring -------------------------------------------------------- */

static void test_keyring_add_find(void **state)
{
	struct vg_keyring *kr = vg_keyring_new();
	char host[32];

	assert_int_equal(vg_keyring_count(kr), 0);
	assert_null(vg_keyring_find(kr, "x"));
	for (int i = 499; i >= 0; i--) {
		struct vg_key k = key_of((uint8_t)i);
		snprintf(host, sizeof(host), "node-%03d", i * 7 % 500);
		assert_int_equal(vg_keyring_add(kr, host, &k), 0);
	}
	assert_int_equal(vg_keyring_count(kr), 500);
	for (int i = 0; i < 500; i++) {
		snprintf(host, sizeof(host), "node-%03d", i);
		assert_non_null(vg_keyring_find(kr, host));
	}
	assert_null(vg_keyring_find(kr, "node-500"));
	assert_null(vg_keyring_find(kr, ""));
	/* replace keeps the count */
	struct vg_key k = key_of(200);
	assert_int_equal(vg_keyring_add(kr, "node-000", &k), 0);
	assert_int_equal(vg_keyring_count(kr), 500);
	assert_memory_equal(vg_keyring_find(kr, "node-000")->bytes, k.bytes, 32);
	/* invalid host names and short keys */
	assert_int_equal(vg_keyring_add(kr, "", &k), -EINVAL);
	assert_int_equal(vg_keyring_add(kr, "a\nb", &k), -EINVAL);
	struct vg_key shortk = {.len = 16};
	assert_int_equal(vg_keyring_add(kr, "s", &shortk), -EINVAL);
	assert_int_equal(vg_keyring_count(NULL), 0);
	assert_null(vg_keyring_find(NULL, "x"));
	vg_keyring_free(kr);
	vg_keyring_free(NULL);
}

static void test_keyring_load_dir(void **state)
{
	struct tmpdir d;
	struct vg_keyring *kr = NULL;
	char path[1024], err[1024], esc[3 * VG_NAME_MAX + 1];

	tmpdir_make(&d);
	/* empty directory: empty keyring */
	assert_int_equal(vg_keyring_load(d.path, &kr, err, sizeof(err)), 0);
	assert_int_equal(vg_keyring_count(kr), 0);
	vg_keyring_free(kr);

	snprintf(path, sizeof(path), "%s/compute-1.key", d.path);
	write_file(path, HEX64, 64, 0600);
	/* a hostile host name, escaped the way the data directory does */
	assert_true(vg_name_escape("../evil host", esc, sizeof(esc)) > 0);
	snprintf(path, sizeof(path), "%s/%s.key", d.path, esc);
	write_file(path, HEX64, 64, 0600);
	snprintf(path, sizeof(path), "%s/README", d.path);
	write_file(path, "not a key", 9, 0644);
	snprintf(path, sizeof(path), "%s/.compute-2.key.swp", d.path);
	write_file(path, "x", 1, 0644);
	assert_int_equal(vg_keyring_load(d.path, &kr, err, sizeof(err)), 0);
	assert_int_equal(vg_keyring_count(kr), 2);
	assert_non_null(vg_keyring_find(kr, "compute-1"));
	assert_non_null(vg_keyring_find(kr, "../evil host"));
	vg_keyring_free(kr);

	/* a non-canonical escape would give a host a second file: refused */
	snprintf(path, sizeof(path), "%s/compute%%2D1.key", d.path);
	write_file(path, HEX64, 64, 0600);
	kr = (void *)1;
	assert_int_equal(vg_keyring_load(d.path, &kr, err, sizeof(err)), -EINVAL);
	assert_null(kr);
	assert_non_null(strstr(err, "compute%2D1.key"));
	unlink(path);

	/* one world-readable key fails the whole load, naming it */
	snprintf(path, sizeof(path), "%s/compute-3.key", d.path);
	write_file(path, HEX64, 64, 0644);
	assert_int_equal(vg_keyring_load(d.path, &kr, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "compute-3.key"));
	chmod(path, 0600);
	assert_int_equal(vg_keyring_load(d.path, &kr, err, sizeof(err)), 0);
	assert_int_equal(vg_keyring_count(kr), 3);
	vg_keyring_free(kr);

	/* a world-writable directory is refused; a missing one too */
	chmod(d.path, 0777);
	assert_int_equal(vg_keyring_load(d.path, &kr, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, d.path));
	chmod(d.path, 0700);
	snprintf(path, sizeof(path), "%s/nope", d.path);
	assert_int_equal(vg_keyring_load(path, &kr, err, sizeof(err)), -ENOENT);
	snprintf(path, sizeof(path), "%s/compute-1.key", d.path);
	assert_int_equal(vg_keyring_load(path, &kr, err, sizeof(err)), -ENOTDIR);
	tmpdir_rm(&d);
}

static void test_keyring_signer(void **state)
{
	struct vg_keyring *kr = vg_keyring_new();
	struct vg_key ka = key_of(10), kb = key_of(20), kc = key_of(30);
	const char *who = NULL;
	size_t len, plen;

	vg_keyring_add(kr, "a", &ka);
	vg_keyring_add(kr, "b", &kb);
	vg_keyring_add(kr, "c", &kc);
	uint8_t *m = signed_msg(&kb, "a", 1000, &len); /* b signs as "a" */
	assert_int_equal(vg_keyring_signer(kr, "a", m, len, 1 << 20, &who), 0);
	assert_string_equal(who, "b");
	/* b itself excluded: nobody else */
	assert_int_equal(vg_keyring_signer(kr, "b", m, len, 1 << 20, &who), -ENOENT);
	/* the work bound: 2 keys x len bytes must fit */
	assert_int_equal(vg_keyring_signer(kr, "a", m, len, 2 * len - 1, &who), -E2BIG);
	assert_int_equal(vg_keyring_signer(kr, "a", m, len, 2 * len, &who), 0);
	uint8_t *p = encoded("a", 1, 1000, &plen);
	assert_int_equal(vg_keyring_signer(kr, "a", p, plen, 1 << 20, &who), -ENODATA);
	free(p);
	free(m);
	vg_keyring_free(kr);
}

/* ---- the collector's verdict ------------------------------------------ */

static void test_verdicts(void **state)
{
	struct vg_keyring *kr = vg_keyring_new();
	struct vg_key ka = key_of(10), kb = key_of(20), kx = key_of(99);
	const int64_t now = 1795000000000LL;
	struct vg_sign_policy req = {.keys = kr, .require = 1};
	struct vg_sign_policy opt = {.keys = kr, .require = 0};
	struct vg_sign_policy none = {.keys = NULL, .require = 0};
	struct vg_sign_policy none_req = {.keys = NULL, .require = 1};
	size_t l;
	uint8_t *m;

	vg_keyring_add(kr, "a", &ka);
	vg_keyring_add(kr, "b", &kb);

	/* signed by a's key as a */
	m = signed_msg(&ka, "a", now, &l);
	assert_int_equal(vg_sign_check(&req, "a", now, now, m, l), VG_SIGN_OK);
	assert_int_equal(vg_sign_check(&opt, "a", now, now, m, l), VG_SIGN_OK);
	assert_int_equal(vg_sign_check(&none, "a", now, now, m, l), VG_SIGN_UNCHECKED);
	assert_int_equal(vg_sign_check(&none_req, "a", now, now, m, l), VG_SIGN_NO_KEY);
	free(m);
	/* unsigned */
	m = encoded("a", 1, now, &l);
	assert_int_equal(vg_sign_check(&req, "a", now, now, m, l), VG_SIGN_UNSIGNED);
	/* a host with a key must sign even when not required */
	assert_int_equal(vg_sign_check(&opt, "a", now, now, m, l), VG_SIGN_UNSIGNED);
	/* a host without a key may send unsigned when not required */
	free(m);
	m = encoded("z", 1, now, &l);
	assert_int_equal(vg_sign_check(&opt, "z", now, now, m, l), VG_SIGN_UNCHECKED);
	assert_int_equal(vg_sign_check(&none, "z", now, now, m, l), VG_SIGN_UNCHECKED);
	assert_int_equal(vg_sign_check(&req, "z", now, now, m, l), VG_SIGN_UNSIGNED);
	free(m);
	/* forged: signed with a key nobody has */
	m = signed_msg(&kx, "a", now, &l);
	assert_int_equal(vg_sign_check(&req, "a", now, now, m, l), VG_SIGN_FORGED);
	assert_int_equal(vg_sign_check(&opt, "a", now, now, m, l), VG_SIGN_FORGED);
	free(m);
	/* wrong host: b's key, claiming to be a */
	m = signed_msg(&kb, "a", now, &l);
	assert_int_equal(vg_sign_check(&req, "a", now, now, m, l), VG_SIGN_WRONG_HOST);
	free(m);
	/* wrong host: b's key, claiming a host that has no key */
	m = signed_msg(&kb, "z", now, &l);
	assert_int_equal(vg_sign_check(&req, "z", now, now, m, l), VG_SIGN_WRONG_HOST);
	assert_int_equal(vg_sign_check(&opt, "z", now, now, m, l), VG_SIGN_UNCHECKED);
	free(m);
	/* a signed unknown host no key matches, required: no key */
	m = signed_msg(&kx, "z", now, &l);
	assert_int_equal(vg_sign_check(&req, "z", now, now, m, l), VG_SIGN_NO_KEY);
	free(m);
	/* search too costly: forged rather than wrong host, nothing hashed */
	struct vg_sign_policy tight = {.keys = kr, .require = 1, .max_search = 10};
	m = signed_msg(&kb, "a", now, &l);
	assert_int_equal(vg_sign_check(&tight, "a", now, now, m, l), VG_SIGN_FORGED);
	free(m);
	vg_keyring_free(kr);
}

static void test_time_window(void **state)
{
	struct vg_keyring *kr = vg_keyring_new();
	struct vg_key ka = key_of(10);
	const int64_t now = 1795000000000LL, w = 3600 * 1000LL;
	struct vg_sign_policy p = {.keys = kr, .require = 1, .window_ms = w};
	struct vg_sign_policy off = {.keys = kr, .require = 1, .window_ms = 0};
	size_t l;
	uint8_t *m;

	vg_keyring_add(kr, "a", &ka);
	m = signed_msg(&ka, "a", now, &l);
	assert_int_equal(vg_sign_check(&p, "a", now, now, m, l), VG_SIGN_OK);
	assert_int_equal(vg_sign_check(&p, "a", now + w, now, m, l), VG_SIGN_OK);
	assert_int_equal(vg_sign_check(&p, "a", now - w, now, m, l), VG_SIGN_OK);
	assert_int_equal(vg_sign_check(&p, "a", now + w + 1, now, m, l), VG_SIGN_STALE);
	assert_int_equal(vg_sign_check(&p, "a", now - w - 1, now, m, l), VG_SIGN_STALE);
	assert_int_equal(vg_sign_check(&p, "a", INT64_MIN, now, m, l), VG_SIGN_STALE);
	assert_int_equal(vg_sign_check(&p, "a", INT64_MAX, now, m, l), VG_SIGN_STALE);
	assert_int_equal(vg_sign_check(&p, "a", INT64_MAX, INT64_MIN, m, l), VG_SIGN_STALE);
	assert_int_equal(vg_sign_check(&p, "a", INT64_MIN, INT64_MAX, m, l), VG_SIGN_STALE);
	/* 0 = off: synthetic clocks in tests replay the past */
	assert_int_equal(vg_sign_check(&off, "a", 0, now, m, l), VG_SIGN_OK);
	/* a forged batch stays forged, whatever its time */
	struct vg_key kx = key_of(99);
	free(m);
	m = signed_msg(&kx, "a", now, &l);
	assert_int_equal(vg_sign_check(&p, "a", now - w - 1, now, m, l), VG_SIGN_FORGED);
	free(m);
	vg_keyring_free(kr);
}

static void test_verdict_names(void **state)
{
	assert_string_equal(vg_sign_verdict_name(VG_SIGN_OK), "ok");
	assert_string_equal(vg_sign_verdict_name(VG_SIGN_WRONG_HOST), "wrong host");
	assert_string_equal(vg_sign_verdict_name(VG_SIGN_STALE), "stale");
	assert_string_equal(vg_sign_verdict_name(-1), "?");
	assert_string_equal(vg_sign_verdict_name(VG_SIGN_VERDICT_MAX + 1), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_parse),
		cmocka_unit_test(test_key_load_permissions),
		cmocka_unit_test(test_known_answer),
		cmocka_unit_test(test_sign_round_trip),
		cmocka_unit_test(test_every_bit_tampered),
		cmocka_unit_test(test_ack_bound_to_batch),
		cmocka_unit_test(test_keyring_add_find),
		cmocka_unit_test(test_keyring_load_dir),
		cmocka_unit_test(test_keyring_signer),
		cmocka_unit_test(test_verdicts),
		cmocka_unit_test(test_time_window),
		cmocka_unit_test(test_verdict_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
