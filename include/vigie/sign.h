/*
 * vigie — signed batches: per-host HMAC-SHA-256 keys, signing, checking.
 *
 * An agent that has a key signs every batch it sends: it sets
 * VG_WIRE_FLAG_SIGNED in the header and appends HMAC-SHA-256(key, every
 * preceding byte of the message). The collector holds one key per host (a
 * directory of key files), and before it stores anything checks that the
 * batch is signed with the key of the host the batch names. Its ack to a
 * signed batch is signed too, bound to the batch's MAC, so an agent never
 * drops a batch on a forged "OK". docs/protocol.md ("Signed messages")
 * has the bytes; docs/security.md the threat model.
 *
 * The MAC is OpenSSL's (libcrypto HMAC with EVP_sha256), never
 * hand-written; comparisons are constant-time (CRYPTO_memcmp); key bytes
 * are wiped (OPENSSL_cleanse) when freed.
 *
 * Key files: <keys_dir>/<host escaped by vg_name_escape>.key holding at
 * least VG_SIGN_KEY_MIN bytes of randomness, either as hex digits (any
 * whitespace ignored; `openssl rand -hex 32 > host.key`) or as raw bytes.
 * A key file readable or writable by "others" (mode & 007), or not a
 * regular file, is refused with an error naming the file.
 *
 * Thread-safety: everything here is pure or reads only what it is given;
 * a keyring is read-only after loading and may be shared by threads.
 */
#ifndef VIGIE_SIGN_H
#define VIGIE_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "vigie/wire.h"

#define VG_SIGN_KEY_MIN 32       /* bytes of key material, at least */
#define VG_SIGN_KEY_MAX 128      /* bytes of key material, at most */
#define VG_SIGN_KEYFILE_MAX 1024 /* bytes in a key file, at most */
#define VG_SIGN_KEY_SUFFIX ".key"

struct vg_key {
	size_t len;
	uint8_t bytes[VG_SIGN_KEY_MAX];
};

/* ---- keys ----------------------------------------------------------- */

/* Parse the contents of a key file: if it holds only hex digits and
 * whitespace, the digits (an even number, >= 2*VG_SIGN_KEY_MIN) are the
 * key; otherwise the bytes as they are (>= VG_SIGN_KEY_MIN). 0, or
 * -EINVAL with *why set to a static reason. Pure. */
int vg_sign_key_parse(const void *buf, size_t len, struct vg_key *out,
		      const char **why);

/* Read and parse the key file at path. Refuses (-EPERM) a file whose mode
 * lets "others" read or write it, and (-EINVAL) a file that is not a
 * regular file, is larger than VG_SIGN_KEYFILE_MAX or does not parse.
 * 0, or -errno with a one-line message naming the file in err. */
int vg_sign_key_load(const char *path, struct vg_key *out, char *err,
		     size_t errlen);

/* Overwrite a key's bytes (accepts NULL). */
void vg_sign_key_wipe(struct vg_key *k);

/* ---- messages ------------------------------------------------------- */

/* Sign an encoded batch message in place: *msg (malloc'd, *len bytes, as
 * vg_wire_encode made it) is reallocated to *len + VG_WIRE_MAC_LEN, the
 * SIGNED flag is set and the trailer appended. A message already signed is
 * re-signed (its old trailer replaced), so a spooled batch can be signed
 * again with a new key. 0, -EPROTONOSUPPORT/-EBADMSG (not a batch
 * message), -ENOMEM (then *msg is unchanged). */
int vg_sign_batch(const struct vg_key *k, uint8_t **msg, size_t *len);

/* HMAC-SHA-256(k, data) into mac (VG_WIRE_MAC_LEN bytes), for messages
 * other than batches and acks that carry a MAC under one key (the
 * collectors' metric stream, collector/cluster.c). 0, -ENOMEM, -EINVAL. */
int vg_sign_hmac(const struct vg_key *k, const void *data, size_t len,
		 uint8_t mac[VG_WIRE_MAC_LEN]);
/* Whether mac (VG_WIRE_MAC_LEN bytes) is HMAC-SHA-256(k, data), compared
 * in constant time: 0, or -EKEYREJECTED (also when hashing fails). */
int vg_sign_hmac_check(const struct vg_key *k, const void *data, size_t len,
		       const uint8_t *mac);

/* Whether msg is a batch message with the SIGNED flag: 1 or 0. */
int vg_sign_is_signed(const void *msg, size_t len);

/* Check a batch message's trailer with key k. 0 when it matches,
 * -ENODATA when the message is not signed, -EBADMSG when it is too short
 * to be a signed batch, -EKEYREJECTED when the MAC does not match. */
int vg_sign_verify(const struct vg_key *k, const void *msg, size_t len);

/* The trailer of a signed message (NULL if msg is not signed). */
const uint8_t *vg_sign_mac(const void *msg, size_t len);

/* Acks. vg_sign_ack turns an encoded 24-byte ack in buf (which must have
 * room for VG_WIRE_ACK_LEN + VG_WIRE_MAC_LEN bytes) into a signed one:
 * SIGNED flag set, trailer = HMAC(key, the 24 ack bytes || batch_mac),
 * where batch_mac is the trailer of the signed batch it answers. Returns
 * the new length. vg_sign_ack_verify checks a received ack the same way:
 * 0, -ENODATA (not signed), -EBADMSG (bad length), -EKEYREJECTED. */
size_t vg_sign_ack(const struct vg_key *k, const uint8_t *batch_mac,
		   uint8_t *buf);
int vg_sign_ack_verify(const struct vg_key *k, const uint8_t *batch_mac,
		       const void *ack, size_t len);

/* ---- the collector's keyring ---------------------------------------- */

struct vg_keyring;

/* Load every "*.key" file of dir (other names, and names starting with
 * '.', are ignored); a file's name without the suffix, unescaped with
 * vg_name_unescape, is the host it belongs to. Refuses a directory that
 * "others" may write to, and fails on the first bad file (no partial
 * keyring). An empty directory gives an empty keyring. 0 or -errno with a
 * one-line message naming the file in err. Free with vg_keyring_free. */
int vg_keyring_load(const char *dir, struct vg_keyring **out, char *err,
		    size_t errlen);

/* An empty keyring (e.g. signatures not configured). NULL on ENOMEM. */
struct vg_keyring *vg_keyring_new(void);

/* Add or replace host's key (copied). 0, -EINVAL (host not a valid
 * name, key too short), -ENOMEM. For tests and for vg_keyring_load. */
int vg_keyring_add(struct vg_keyring *kr, const char *host,
		   const struct vg_key *k);

size_t vg_keyring_count(const struct vg_keyring *kr); /* NULL -> 0 */

/* The key of host, or NULL. Valid until vg_keyring_free. */
const struct vg_key *vg_keyring_find(const struct vg_keyring *kr,
				     const char *host);

/* Which other host's key a signed message verifies under, trying each key
 * of the keyring except `except`'s — at most max_work bytes of hashing in
 * all (len times the keys tried), so a flood of forged messages cannot
 * turn this into a CPU sink. 0 with *host set (valid until
 * vg_keyring_free), -ENOENT (no key matches), -E2BIG (too much work:
 * nothing tried), -ENODATA (not signed). */
int vg_keyring_signer(const struct vg_keyring *kr, const char *except,
		      const void *msg, size_t len, size_t max_work,
		      const char **host);

/* Wipe the keys and free (accepts NULL). */
void vg_keyring_free(struct vg_keyring *kr);

/* ---- the collector's verdict on one batch ---------------------------- */

enum vg_sign_verdict {
	VG_SIGN_OK = 0,         /* signed with the host's key, in time */
	VG_SIGN_UNCHECKED = 1,  /* unsigned and no key for the host, while
				  * signatures are not required: accept */
	VG_SIGN_UNSIGNED = 2,   /* unsigned, but required or host has a key */
	VG_SIGN_NO_KEY = 3,     /* signed, no key for this host, required */
	VG_SIGN_FORGED = 4,     /* MAC matches no key we tried */
	VG_SIGN_WRONG_HOST = 5, /* MAC is another host's key */
	VG_SIGN_STALE = 6,      /* poll time outside the time window */
};
#define VG_SIGN_VERDICT_MAX 6

struct vg_sign_policy {
	const struct vg_keyring *keys; /* may be NULL (no keys) */
	int require;                   /* refuse unsigned batches and unknown hosts */
	int64_t window_ms;             /* |batch time - now| allowed; 0 = no check */
	size_t max_search;             /* vg_keyring_signer's max_work; 0 = 16 MiB */
};

/* Decide about one decoded batch: host and time_ms as decoded from msg,
 * now_ms the collector's clock. A host that has a key must always sign,
 * required or not. A signed batch from a host without a key is accepted
 * (VG_SIGN_UNCHECKED) only when not required. The time window applies to
 * every batch once the signature is settled. Pure apart from hashing. */
enum vg_sign_verdict vg_sign_check(const struct vg_sign_policy *p,
				   const char *host, int64_t time_ms,
				   int64_t now_ms, const void *msg, size_t len);

/* "ok", "unchecked", "unsigned", "no key", "forged", "wrong host",
 * "stale"; "?" for anything else. */
const char *vg_sign_verdict_name(int v);

#endif
