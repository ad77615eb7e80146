/*
 * vigie — turning names from the wire into safe file names.
 *
 * Resource ids, metric names and host names arrive from the network. They
 * become path components under the data directory, so the mapping must be
 * (1) confined: the result never contains '/', NUL, or is "." / ".."
 * and never starts with '.'; (2) injective: two different names never map
 * to the same file (so a hostile agent cannot overwrite another's series);
 * (3) readable for ordinary names (UUIDs, "vda", "cpu.time" are unchanged).
 * Rule: bytes [A-Za-z0-9_-] pass; '.' passes except as the first byte;
 * every other byte, including '%', becomes %XX (upper-case hex).
 * A path component must also fit the file system's limit (255 bytes), and
 * a 200-byte name of 3-byte characters escapes to 600: vg_name_component
 * keeps the escaped form when it fits VG_NAME_COMPONENT_MAX and otherwise
 * writes a readable prefix of it, '~' and the SHA-256 of the whole name in
 * hex. '~' never appears in an escaped form (it escapes to %7E), so the
 * two shapes never meet; two long names meet only if SHA-256 collides.
 *
 * Which characters a name may hold (docs/protocol.md "Names"): valid
 * UTF-8 (shortest form, no surrogates, at most U+10FFFF) without control
 * characters: no C0 (U+0000..U+001F), no DEL (U+007F), no C1
 * (U+0080..U+009F), and no hidden character (vg_char_hidden: the Unicode
 * bidirectional controls and the invisible format characters, with which
 * one tenant's name could display as another's). Free text (a display
 * name, an attribute's value) follows the same character rule with its
 * own length limit.
 * Thread-safe, no allocation.
 */
#ifndef VIGIE_NAME_H
#define VIGIE_NAME_H

#include <stddef.h>
#include <stdint.h>

/* Longest name accepted from the wire for an id, metric or host. */
#define VG_NAME_MAX 200

/* Longest path component vg_name_component writes (bytes, without the
 * NUL): the store adds at most ".rrd.tmp" and librrd's 6-byte mkstemp
 * suffix, and all of it must fit in NAME_MAX (255). Names whose escaped
 * form fits keep it, so files written before the rule existed keep their
 * paths. */
#define VG_NAME_COMPONENT_MAX 239
#define VG_NAME_HASH_HEX 64 /* hex digits of the SHA-256 in a long form */

/* Escape `name` into out (outlen bytes, including the NUL). Returns the
 * length written, -EINVAL for an empty name or one longer than
 * VG_NAME_MAX, -ENAMETOOLONG if out is too small (3*VG_NAME_MAX+1 always
 * suffices). */
int vg_name_escape(const char *name, char *out, size_t outlen);

/* Inverse of vg_name_escape. Returns length or -EINVAL. */
int vg_name_unescape(const char *esc, char *out, size_t outlen);

/* The path component of a valid name: vg_name_escape's form if it is at
 * most VG_NAME_COMPONENT_MAX bytes, else its longest prefix that ends
 * between two escapes and leaves room, then '~' and VG_NAME_HASH_HEX
 * lower-case hex digits of SHA-256(name). out needs
 * VG_NAME_COMPONENT_MAX + 1 bytes. Returns the length written, -EINVAL
 * for a name vg_name_valid refuses, -ENAMETOOLONG if out is too small.
 * Not invertible when hashed: callers that need the name keep it. */
int vg_name_component(const char *name, char *out, size_t outlen);

/* Whether code point cp is a hidden character, which no name or text
 * may hold: the bidirectional controls U+061C, U+200E, U+200F,
 * U+202A..U+202E, U+2066..U+2069, and the invisible format characters
 * U+00AD, U+180E, U+200B..U+200D, U+2060..U+2064, U+206A..U+206F,
 * U+FEFF, U+FFF9..U+FFFB, U+E0000..U+E007F (tags). They draw nothing or
 * reorder what follows, so "abc" + U+202E + "lortnoc" displays as another
 * name. 1 if hidden, 0 if not. */
int vg_char_hidden(uint32_t cp);

/* Whether a name is acceptable at all: 1..VG_NAME_MAX bytes, valid UTF-8,
 * no control characters (C0, DEL, C1), no hidden character
 * (vg_char_hidden). 1 if valid, 0 if not. */
int vg_name_valid(const char *name);

/* Whether name begins or ends with a character that draws as white
 * space: U+0020, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F,
 * U+205F, U+3000 (Unicode White_Space that the character rule lets
 * through) and the blank fillers U+115F, U+1160, U+2800, U+3164, U+FFA0.
 * 1 if it does, 0 if not (or not valid UTF-8 there). */
int vg_name_blank_end(const char *name);

/* Whether a project name is acceptable where one is given (a token's
 * scope, an administrator's measures, alarm and silence): vg_name_valid
 * and not vg_name_blank_end, since " acme" or "acme" + U+00A0 lists and
 * logs as "acme" but is another tenant. (The invisible format
 * characters, U+200B among them, vg_name_valid refuses anywhere.) 1 if
 * valid, 0 if not. */
int vg_project_name_valid(const char *name);

/* The part of name (valid UTF-8, NUL-terminated) without the
 * characters vg_name_blank_end looks for at either end: *start is set to
 * its first byte inside name, the return is its length in bytes (0 when
 * name is only such characters, or NULL). The rest is name's own bytes:
 * if name is vg_name_valid, so is the part. For a project an agent
 * reports, which the wire takes as "acme" rather than a tenant the API
 * never lets anyone name (docs/protocol.md "Names"). Thread-safe. */
size_t vg_name_trim_blank(const char *name, const char **start);

/* The same character rule for free text of 1..maxlen bytes (maxlen 0:
 * no length limit). 1 if valid, 0 if not. */
int vg_text_valid(const char *text, size_t maxlen);

/* Copy text into out (max + 1 bytes) so that it follows the character
 * rule: every byte that is not part of a valid character without control
 * characters becomes '?', and so does each hidden character (one '?' for
 * its bytes), and the copy ends at a character boundary at
 * most max bytes in. Returns the length written. For agents, whose names
 * come from libvirt and Nova metadata (a domain name may hold a newline),
 * and for any outside bytes put in JSON (jansson refuses a string that is
 * not UTF-8): the API's error messages, an event's detail in an alarm's
 * reason, an exec notifier's output in the outbox's history. The result
 * is never longer than text, so out may not be text itself but may be
 * a buffer of strlen(text) + 1 bytes. */
size_t vg_text_clean(const char *text, char *out, size_t max);

/* The length of the longest prefix of s (NUL-terminated, NULL taken as
 * "") of at most max bytes that does not end inside a UTF-8 character:
 * the cut never leaves a lead byte without its continuation bytes. For
 * quoting part of a client's string in a JSON error or reason as
 * "%.*s" (a plain "%.60s" can cut a character in two, and jansson
 * refuses a string that is not UTF-8). Only the boundary is looked at:
 * a prefix of valid UTF-8 is valid UTF-8, other bytes stay as they are.
 * It must see the byte after the cut: to cut what snprintf wrote into a
 * buffer (already cut at its size), give max at most the size minus 5. */
size_t vg_utf8_prefix(const char *s, size_t max);

#endif
