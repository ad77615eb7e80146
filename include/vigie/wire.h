/*
 * vigie — the wire format between agent and collector (docs/protocol.md).
 *
 * Two messages travel over a nanomsg REQ/REP pair: the agent's REQ carries
 * one encoded batch, the collector's REP carries one acknowledgement.
 * Everything is little-endian, versioned by a 4-byte magic and a version
 * byte. Strings live once in a per-message string table and are referred
 * to by index, so metric names repeated over hundreds of resources cost
 * four bytes each.
 *
 * Decoding is defensive: every length and index is bounds-checked against
 * the message and the limits below before it is used; a bad message is
 * rejected with a specific negative errno and never partially applied.
 * All functions are thread-safe (no shared state).
 */
#ifndef VIGIE_WIRE_H
#define VIGIE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "vigie/batch.h"

#define VG_WIRE_VERSION 1
#define VG_WIRE_BATCH_MAGIC "VGB1"
#define VG_WIRE_ACK_MAGIC "VGA1"
#define VG_WIRE_NO_STRING 0xffffffffu

/* Header flags (u16 at byte VG_WIRE_FLAGS_OFFSET of a batch or an ack).
 * SIGNED: the message ends with a VG_WIRE_MAC_LEN-byte HMAC-SHA-256
 * trailer (docs/protocol.md, "Signed messages"; vigie/sign.h makes and
 * checks it). The decoders accept the flag and ignore the trailer: they
 * never verify it. Any other flag bit is rejected. */
#define VG_WIRE_FLAGS_OFFSET 6
#define VG_WIRE_FLAG_SIGNED 0x0001u
#define VG_WIRE_MAC_LEN 32

/* Limits enforced by the decoder (and the encoder, so an agent never
 * produces what a collector would refuse). */
#define VG_WIRE_MAX_MESSAGE (16u << 20) /* bytes */
#define VG_WIRE_MAX_STRINGS (1u << 20)
#define VG_WIRE_MAX_STRING 1024u /* bytes per string */
#define VG_WIRE_MAX_RESOURCES (1u << 18)
#define VG_WIRE_MAX_SAMPLES (1u << 22)
#define VG_WIRE_MAX_EVENTS (1u << 16)
#define VG_WIRE_MAX_ATTRS_PER_RES 64u

/* Names (vigie/name.h, docs/protocol.md "Names"), checked by both ends:
 *  - host, resource id, metric, attribute key, an event's resource:
 *    vg_name_valid (1..VG_NAME_MAX bytes);
 *  - parent, project, user, flavor: absent, empty or vg_name_valid;
 *  - a resource's display name, an attribute's value: absent, empty or
 *    vg_text_valid up to VG_WIRE_MAX_STRING bytes;
 *  - an event's detail (JSON text): only the string table's rules.
 * Every name the decoder accepts is storable (vg_name_component). */

/* Acknowledgement status. On the wire. */
enum vg_ack_status {
	VG_ACK_OK = 0,        /* stored; drop it from the spool */
	VG_ACK_DUPLICATE = 1, /* already stored earlier; drop it */
	VG_ACK_RETRY = 2,     /* not stored (storage busy/full); resend later */
	VG_ACK_REJECTED = 3,  /* malformed or refused; never resend as is */
};

struct vg_ack {
	uint8_t status; /* enum vg_ack_status */
	uint64_t stream;
	uint64_t seq;
};

/* Encode a batch. On success *out is a malloc'd buffer of *len bytes that
 * the caller frees. Errors: -ENOMEM, -E2BIG (a limit above is exceeded),
 * -EINVAL (a string contains a NUL byte or is too long), -EILSEQ (a name
 * breaks the rules above). */
int vg_wire_encode(const struct vg_batch *b, uint8_t **out, size_t *len);

/* vg_wire_encode without the name rules: what a hostile or careless peer
 * can send. For tests and fuzzers only; agents use vg_wire_encode. */
int vg_wire_encode_unchecked(const struct vg_batch *b, uint8_t **out,
			     size_t *len);

/* What vg_wire_split left out. A resource counts its attributes and
 * samples in attrs and samples too. */
struct vg_wire_split_stats {
	size_t resources; /* fits no message alone, or its id, name, parent
			   * or identity breaks the name rules */
	size_t attrs;     /* key or value breaks the rules; beyond
			   * VG_WIRE_MAX_ATTRS_PER_RES */
	size_t samples;   /* metric name breaks the rules */
	size_t events;    /* fits no message alone, a bad resource name or
			   * a detail over VG_WIRE_MAX_STRING bytes */
};

/* Cut b into batches that each vg_wire_encode within max_bytes (0 or more
 * than VG_WIRE_MAX_MESSAGE: VG_WIRE_MAX_MESSAGE) and every count limit
 * above, for a poll too big for one message (vg_wire_encode: -E2BIG) or
 * holding a name that breaks the rules (-EILSEQ). The parts keep b's
 * order: its resources (each whole: its attributes and samples with it),
 * then its events; each has b's host, stream and time_ms, and part i has
 * seq b->seq + i. What fits no message alone or breaks the name rules is
 * left out and counted in *st; everything else is in exactly one part.
 * On success *parts is a malloc'd array of *nparts >= 1 batches (only one,
 * empty, if everything was left out): the caller frees each with
 * vg_batch_free and the array with free. Errors: -EILSEQ (b's host breaks
 * the rules: nothing can be sent), -ENOMEM (nothing is returned).
 * Thread-safe for distinct outputs; b is only read. */
int vg_wire_split(const struct vg_batch *b, size_t max_bytes,
		  struct vg_batch ***parts, size_t *nparts,
		  struct vg_wire_split_stats *st);

/* Decode a batch message. On success *out is a new batch the caller frees
 * with vg_batch_free. A message with VG_WIRE_FLAG_SIGNED is decoded without
 * its trailer (the signature is NOT checked here: see vigie/sign.h).
 * Errors: -EBADMSG (malformed, truncated, bad index, bad enum, non-finite
 * value, unknown flag), -EPROTONOSUPPORT (unknown magic/version), -E2BIG
 * (over a limit; VG_WIRE_MAX_MESSAGE does not count the trailer),
 * -EILSEQ (a name breaks the rules above), -ENOMEM. */
int vg_wire_decode(const void *buf, size_t len, struct vg_batch **out);

/* Peek at a message's header without decoding it; fills what it can.
 * Returns 0 if the header is a batch header, else as vg_wire_decode. */
int vg_wire_peek(const void *buf, size_t len, uint64_t *stream,
		 uint64_t *seq);

/* Acknowledgements: fixed 24 bytes. encode writes into buf (>= 24 bytes)
 * and returns the length (an unsigned ack; vg_sign_ack appends the
 * trailer); decode returns 0 or -EBADMSG/-EPROTONOSUPPORT. decode accepts
 * 24 bytes without VG_WIRE_FLAG_SIGNED or VG_WIRE_ACK_LEN +
 * VG_WIRE_MAC_LEN bytes with it, and does not check the trailer. */
#define VG_WIRE_ACK_LEN 24
size_t vg_wire_ack_encode(const struct vg_ack *a, uint8_t *buf);
int vg_wire_ack_decode(const void *buf, size_t len, struct vg_ack *a);

/* Human-readable text for a vg_wire_* error code. */
const char *vg_wire_strerror(int err);

#endif
