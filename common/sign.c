/*
 * sign.c — HMAC-SHA-256 signatures on batches and acks, per-host keys.
 *
 * Design. A signed message is the plain message with header flag bit 0
 * set, followed by HMAC-SHA-256(key, all preceding bytes) (32 bytes); the
 * MAC covers the header, so the flag, stream, seq and time cannot be
 * changed without the key. A signed ack's MAC covers the 24 ack bytes and
 * the MAC of the batch it answers, so an ack cannot be replayed for
 * another batch, nor forged. "VGB1" vs "VGA1" at the start of the MAC'd
 * bytes keeps the two kinds apart under one key.
 *
 * The collector's keyring is a sorted array of (host, key) looked up by
 * binary search; it is built once (vg_keyring_load) and then read-only.
 *
 * Invariants:
 *  - the MAC is libcrypto's HMAC(EVP_sha256()); every comparison of a MAC
 *    is CRYPTO_memcmp (constant time); key material is OPENSSL_cleanse'd
 *    before its memory is freed, including the read buffer of a key file.
 *  - a key file that "others" can read or write is never used.
 *  - vg_keyring_signer hashes at most max_work bytes per call.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "vigie/hex.h"
#include "vigie/name.h"
#include "vigie/sign.h"
#include "vigie/wire.h"

#define DEFAULT_MAX_SEARCH (16u << 20)

/* ---- keys ----------------------------------------------------------- */

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	       c == '\f';
}

int vg_sign_key_parse(const void *buf, size_t len, struct vg_key *out,
		      const char **why)
{
	const unsigned char *p = buf;
	size_t ndigits = 0;
	int text = 1;
	const char *dummy;

	if (!why)
		why = &dummy;
	memset(out, 0, sizeof(*out));
	if (!buf || len == 0) {
		*why = "is empty";
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		if (vg_hex_digit(p[i]) >= 0)
			ndigits++;
		else if (!is_space(p[i]))
			text = 0;
	}
	if (text) {
		if (ndigits % 2) {
			*why = "has an odd number of hex digits";
			return -EINVAL;
		}
		if (ndigits < 2 * VG_SIGN_KEY_MIN) {
			*why = "is too short (at least 64 hex digits = 32 bytes)";
			return -EINVAL;
		}
		if (ndigits > 2 * VG_SIGN_KEY_MAX) {
			*why = "is too long (at most 256 hex digits = 128 bytes)";
			return -EINVAL;
		}
		int hi = -1;
		for (size_t i = 0; i < len; i++) {
			int v = vg_hex_digit(p[i]);
			if (v < 0)
				continue;
			if (hi < 0) {
				hi = v;
			} else {
				out->bytes[out->len++] = (uint8_t)(hi << 4 | v);
				hi = -1;
			}
		}
		return 0;
	}
	if (len < VG_SIGN_KEY_MIN) {
		*why = "is too short (at least 32 raw bytes or 64 hex digits)";
		return -EINVAL;
	}
	if (len > VG_SIGN_KEY_MAX) {
		*why = "is too long for a raw key (at most 128 bytes)";
		return -EINVAL;
	}
	memcpy(out->bytes, p, len);
	out->len = len;
	return 0;
}

void vg_sign_key_wipe(struct vg_key *k)
{
	if (k)
		OPENSSL_cleanse(k, sizeof(*k));
}

int vg_sign_key_load(const char *path, struct vg_key *out, char *err,
		     size_t errlen)
{
	unsigned char buf[VG_SIGN_KEYFILE_MAX + 1];
	const char *why = NULL;
	struct stat st;
	size_t got = 0;
	int fd, rc;

	memset(out, 0, sizeof(*out));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "key file %s: cannot open: %s", path,
			 strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "key file %s: cannot stat: %s", path,
			 strerror(-rc));
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "key file %s: not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	if (st.st_mode & S_IRWXO) {
		snprintf(err, errlen,
			 "key file %s: refusing a key that others may read or "
			 "write (mode %04o); run: chmod 600 %s",
			 path,
			 (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -EPERM;
	}
	for (;;) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			snprintf(err, errlen, "key file %s: cannot read: %s",
				 path, strerror(-rc));
			close(fd);
			OPENSSL_cleanse(buf, sizeof(buf));
			return rc;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == sizeof(buf))
			break;
	}
	close(fd);
	if (got > VG_SIGN_KEYFILE_MAX) {
		snprintf(err, errlen, "key file %s: larger than %u bytes", path,
			 VG_SIGN_KEYFILE_MAX);
		OPENSSL_cleanse(buf, sizeof(buf));
		return -EINVAL;
	}
	rc = vg_sign_key_parse(buf, got, out, &why);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (rc)
		snprintf(err, errlen, "key file %s: %s", path, why);
	return rc;
}

/* ---- messages ------------------------------------------------------- */

/* HMAC-SHA-256 with libcrypto's one-shot HMAC() (not deprecated in
 * OpenSSL 3). */
static int hmac(const struct vg_key *k, const void *data, size_t len,
		uint8_t mac[VG_WIRE_MAC_LEN])
{
	unsigned int mlen = VG_WIRE_MAC_LEN;

	if (!HMAC(EVP_sha256(), k->bytes, (int)k->len, data, len, mac, &mlen))
		return -ENOMEM;
	return mlen == VG_WIRE_MAC_LEN ? 0 : -EINVAL;
}

int vg_sign_hmac(const struct vg_key *k, const void *data, size_t len,
		 uint8_t mac[VG_WIRE_MAC_LEN])
{
	return hmac(k, data, len, mac);
}

int vg_sign_hmac_check(const struct vg_key *k, const void *data, size_t len,
		       const uint8_t *mac)
{
	uint8_t want[VG_WIRE_MAC_LEN];
	int rc = hmac(k, data, len, want);

	if (!rc && CRYPTO_memcmp(want, mac, VG_WIRE_MAC_LEN))
		rc = -EKEYREJECTED;
	OPENSSL_cleanse(want, sizeof(want));
	return rc ? -EKEYREJECTED : 0;
}

/* The bytes an ack's MAC covers: the 24 ack bytes, then the batch MAC. */
static int ack_mac(const struct vg_key *k, const uint8_t *ack,
		   const uint8_t *batch_mac, uint8_t mac[VG_WIRE_MAC_LEN])
{
	uint8_t in[VG_WIRE_ACK_LEN + VG_WIRE_MAC_LEN];

	memcpy(in, ack, VG_WIRE_ACK_LEN);
	memcpy(in + VG_WIRE_ACK_LEN, batch_mac, VG_WIRE_MAC_LEN);
	return hmac(k, in, sizeof(in), mac);
}

static uint16_t flags_of(const uint8_t *p)
{
	return (uint16_t)(p[VG_WIRE_FLAGS_OFFSET] | p[VG_WIRE_FLAGS_OFFSET + 1] << 8);
}

static void set_flags(uint8_t *p, uint16_t f)
{
	p[VG_WIRE_FLAGS_OFFSET] = (uint8_t)f;
	p[VG_WIRE_FLAGS_OFFSET + 1] = (uint8_t)(f >> 8);
}

int vg_sign_is_signed(const void *msg, size_t len)
{
	if (!msg || vg_wire_peek(msg, len, NULL, NULL) != 0)
		return 0;
	return (flags_of(msg) & VG_WIRE_FLAG_SIGNED) != 0;
}

const uint8_t *vg_sign_mac(const void *msg, size_t len)
{
	if (!vg_sign_is_signed(msg, len) || len < 48 + VG_WIRE_MAC_LEN)
		return NULL;
	return (const uint8_t *)msg + len - VG_WIRE_MAC_LEN;
}

int vg_sign_batch(const struct vg_key *k, uint8_t **msg, size_t *len)
{
	size_t plain = *len;
	uint8_t *p;
	int rc;

	if ((rc = vg_wire_peek(*msg, *len, NULL, NULL)))
		return rc;
	if (flags_of(*msg) & VG_WIRE_FLAG_SIGNED) {
		if (plain < 48 + VG_WIRE_MAC_LEN)
			return -EBADMSG;
		plain -= VG_WIRE_MAC_LEN; /* re-sign: drop the old trailer */
	}
	p = realloc(*msg, plain + VG_WIRE_MAC_LEN);
	if (!p)
		return -ENOMEM;
	set_flags(p, flags_of(p) | VG_WIRE_FLAG_SIGNED);
	if ((rc = hmac(k, p, plain, p + plain))) {
		/* Give back a well-formed unsigned message. */
		set_flags(p, flags_of(p) & ~VG_WIRE_FLAG_SIGNED);
		*msg = p;
		*len = plain;
		return rc;
	}
	*msg = p;
	*len = plain + VG_WIRE_MAC_LEN;
	return 0;
}

int vg_sign_verify(const struct vg_key *k, const void *msg, size_t len)
{
	uint8_t mac[VG_WIRE_MAC_LEN];
	int rc;

	if (!vg_sign_is_signed(msg, len))
		return -ENODATA;
	if (len < 48 + VG_WIRE_MAC_LEN)
		return -EBADMSG;
	if (!k || k->len == 0)
		return -EKEYREJECTED;
	if ((rc = hmac(k, msg, len - VG_WIRE_MAC_LEN, mac)))
		return rc;
	rc = CRYPTO_memcmp(mac, (const uint8_t *)msg + len - VG_WIRE_MAC_LEN,
			   VG_WIRE_MAC_LEN)
		     ? -EKEYREJECTED
		     : 0;
	OPENSSL_cleanse(mac, sizeof(mac));
	return rc;
}

size_t vg_sign_ack(const struct vg_key *k, const uint8_t *batch_mac,
		   uint8_t *buf)
{
	set_flags(buf, VG_WIRE_FLAG_SIGNED);
	if (ack_mac(k, buf, batch_mac, buf + VG_WIRE_ACK_LEN)) {
		set_flags(buf, 0); /* could not sign: send it unsigned */
		return VG_WIRE_ACK_LEN;
	}
	return VG_WIRE_ACK_LEN + VG_WIRE_MAC_LEN;
}

int vg_sign_ack_verify(const struct vg_key *k, const uint8_t *batch_mac,
		       const void *ack, size_t len)
{
	const uint8_t *p = ack;
	uint8_t mac[VG_WIRE_MAC_LEN];
	int rc;

	if (len == VG_WIRE_ACK_LEN)
		return -ENODATA;
	if (len != VG_WIRE_ACK_LEN + VG_WIRE_MAC_LEN || !batch_mac ||
	    !(flags_of(p) & VG_WIRE_FLAG_SIGNED))
		return -EBADMSG;
	if (!k || k->len == 0)
		return -EKEYREJECTED;
	if ((rc = ack_mac(k, p, batch_mac, mac)))
		return rc;
	rc = CRYPTO_memcmp(mac, p + VG_WIRE_ACK_LEN, VG_WIRE_MAC_LEN) ? -EKEYREJECTED
								      : 0;
	OPENSSL_cleanse(mac, sizeof(mac));
	return rc;
}

/* ---- keyring -------------------------------------------------------- */

struct ring_entry {
	char *host;
	struct vg_key key;
};

struct vg_keyring {
	struct ring_entry *e; /* sorted by host (strcmp) */
	size_t n, cap;
};

struct vg_keyring *vg_keyring_new(void)
{
	return calloc(1, sizeof(struct vg_keyring));
}

size_t vg_keyring_count(const struct vg_keyring *kr)
{
	return kr ? kr->n : 0;
}

/* Index of host, or -(insertion point) - 1. */
static long ring_search(const struct vg_keyring *kr, const char *host)
{
	size_t lo = 0, hi = kr->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(kr->e[mid].host, host);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

int vg_keyring_add(struct vg_keyring *kr, const char *host,
		   const struct vg_key *k)
{
	long i;

	if (!kr || !host || !vg_name_valid(host) || !k ||
	    k->len < VG_SIGN_KEY_MIN || k->len > VG_SIGN_KEY_MAX)
		return -EINVAL;
	i = ring_search(kr, host);
	if (i >= 0) {
		kr->e[i].key = *k;
		return 0;
	}
	size_t at = (size_t)(-i - 1);
	if (kr->n == kr->cap) {
		size_t ncap = kr->cap ? kr->cap * 2 : 16;
		struct ring_entry *ne = calloc(ncap, sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		if (kr->n)
			memcpy(ne, kr->e, kr->n * sizeof(*ne));
		OPENSSL_cleanse(kr->e, kr->cap * sizeof(*kr->e));
		free(kr->e);
		kr->e = ne;
		kr->cap = ncap;
	}
	char *h = strdup(host);
	if (!h)
		return -ENOMEM;
	memmove(&kr->e[at + 1], &kr->e[at], (kr->n - at) * sizeof(*kr->e));
	kr->e[at].host = h;
	kr->e[at].key = *k;
	kr->n++;
	return 0;
}

const struct vg_key *vg_keyring_find(const struct vg_keyring *kr,
				     const char *host)
{
	long i;

	if (!kr || !host || !kr->n)
		return NULL;
	i = ring_search(kr, host);
	return i >= 0 ? &kr->e[i].key : NULL;
}

void vg_keyring_free(struct vg_keyring *kr)
{
	if (!kr)
		return;
	for (size_t i = 0; i < kr->n; i++)
		free(kr->e[i].host);
	if (kr->e)
		OPENSSL_cleanse(kr->e, kr->cap * sizeof(*kr->e));
	free(kr->e);
	free(kr);
}

static int has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a > b && !strcmp(s + a - b, suf);
}

int vg_keyring_load(const char *dir, struct vg_keyring **out, char *err,
		    size_t errlen)
{
	struct vg_keyring *kr;
	struct dirent *de;
	struct stat st;
	DIR *d;
	int rc = 0;

	*out = NULL;
	if (stat(dir, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "keys directory %s: %s", dir, strerror(-rc));
		return rc;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "keys directory %s: not a directory", dir);
		return -ENOTDIR;
	}
	if (st.st_mode & S_IWOTH) {
		snprintf(err, errlen,
			 "keys directory %s: refusing a directory anyone may "
			 "write to (mode %04o); run: chmod o-w %s",
			 dir,
			 (unsigned)(st.st_mode & 07777), dir);
		return -EPERM;
	}
	if (!(d = opendir(dir))) {
		rc = -errno;
		snprintf(err, errlen, "keys directory %s: %s", dir, strerror(-rc));
		return rc;
	}
	if (!(kr = vg_keyring_new())) {
		closedir(d);
		snprintf(err, errlen, "keys directory %s: out of memory", dir);
		return -ENOMEM;
	}
	while ((de = readdir(d))) {
		char host[VG_NAME_MAX + 1], stem[3 * VG_NAME_MAX + 1];
		char canon[3 * VG_NAME_MAX + 1];
		char path[4096];
		struct vg_key k;
		size_t sl;

		if (de->d_name[0] == '.' || !has_suffix(de->d_name, VG_SIGN_KEY_SUFFIX))
			continue;
		sl = strlen(de->d_name) - strlen(VG_SIGN_KEY_SUFFIX);
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
		    (int)sizeof(path)) {
			snprintf(err, errlen, "keys directory %s: path too long", dir);
			rc = -ENAMETOOLONG;
			break;
		}
		/* The stem must be exactly vg_name_escape(host): one file
		 * name per host, so no two files can claim the same host. */
		if (sl >= sizeof(stem) ||
		    (memcpy(stem, de->d_name, sl), stem[sl] = '\0',
		     vg_name_unescape(stem, host, sizeof(host)) < 0) ||
		    !vg_name_valid(host) ||
		    vg_name_escape(host, canon, sizeof(canon)) < 0 ||
		    strcmp(canon, stem)) {
			snprintf(err, errlen,
				 "key file %s: the name is not <host>.key with "
				 "the host escaped as in the data directory",
				 path);
			rc = -EINVAL;
			break;
		}
		if ((rc = vg_sign_key_load(path, &k, err, errlen)))
			break;
		rc = vg_keyring_add(kr, host, &k);
		vg_sign_key_wipe(&k);
		if (rc) {
			snprintf(err, errlen, "key file %s: %s", path,
				 rc == -ENOMEM ? "out of memory" : "invalid");
			break;
		}
	}
	closedir(d);
	if (rc) {
		vg_keyring_free(kr);
		return rc;
	}
	*out = kr;
	return 0;
}

int vg_keyring_signer(const struct vg_keyring *kr, const char *except,
		      const void *msg, size_t len, size_t max_work,
		      const char **host)
{
	size_t tries;

	if (!vg_sign_is_signed(msg, len))
		return -ENODATA;
	if (!kr || !kr->n)
		return -ENOENT;
	tries = kr->n - (except && vg_keyring_find(kr, except) ? 1 : 0);
	if (tries == 0)
		return -ENOENT;
	if (len > max_work / tries)
		return -E2BIG;
	for (size_t i = 0; i < kr->n; i++) {
		if (except && !strcmp(kr->e[i].host, except))
			continue;
		if (vg_sign_verify(&kr->e[i].key, msg, len) == 0) {
			*host = kr->e[i].host;
			return 0;
		}
	}
	return -ENOENT;
}

/* ---- verdict -------------------------------------------------------- */

enum vg_sign_verdict vg_sign_check(const struct vg_sign_policy *p,
				   const char *host, int64_t time_ms,
				   int64_t now_ms, const void *msg, size_t len)
{
	const struct vg_key *k = vg_keyring_find(p->keys, host);
	int is_signed = vg_sign_is_signed(msg, len);
	enum vg_sign_verdict v;

	if (!is_signed) {
		v = (k || p->require) ? VG_SIGN_UNSIGNED : VG_SIGN_UNCHECKED;
	} else if (!k) {
		v = p->require ? VG_SIGN_NO_KEY : VG_SIGN_UNCHECKED;
		if (v == VG_SIGN_NO_KEY) {
			const char *other;
			if (vg_keyring_signer(p->keys, NULL, msg, len,
					      p->max_search ? p->max_search
							    : DEFAULT_MAX_SEARCH,
					      &other) == 0)
				v = VG_SIGN_WRONG_HOST;
		}
	} else if (vg_sign_verify(k, msg, len) == 0) {
		v = VG_SIGN_OK;
	} else {
		const char *other;
		v = VG_SIGN_FORGED;
		if (vg_keyring_signer(p->keys, host, msg, len,
				      p->max_search ? p->max_search
						    : DEFAULT_MAX_SEARCH,
				      &other) == 0)
			v = VG_SIGN_WRONG_HOST;
	}
	if ((v == VG_SIGN_OK || v == VG_SIGN_UNCHECKED) && p->window_ms > 0) {
		/* Compare without overflow: both are i64 milliseconds. */
		int64_t d;
		if (__builtin_sub_overflow(time_ms, now_ms, &d) ||
		    d > p->window_ms || d < -p->window_ms)
			v = VG_SIGN_STALE;
	}
	return v;
}

const char *vg_sign_verdict_name(int v)
{
	static const char *const names[] = {
		"ok",
		"unchecked",
		"unsigned",
		"no key",
		"forged",
		"wrong host",
		"stale",
	};
	if (v < 0 || v > VG_SIGN_VERDICT_MAX)
		return "?";
	return names[v];
}
