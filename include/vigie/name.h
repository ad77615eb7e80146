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
 * Thread-safe, no allocation.
 */
#ifndef VIGIE_NAME_H
#define VIGIE_NAME_H

#include <stddef.h>

/* Longest name accepted from the wire for an id, metric or host. */
#define VG_NAME_MAX 200

/* Escape `name` into out (outlen bytes, including the NUL). Returns the
 * length written, -EINVAL for an empty name or one longer than
 * VG_NAME_MAX, -ENAMETOOLONG if out is too small (3*VG_NAME_MAX+1 always
 * suffices). */
int vg_name_escape(const char *name, char *out, size_t outlen);

/* Inverse of vg_name_escape. Returns length or -EINVAL. */
int vg_name_unescape(const char *esc, char *out, size_t outlen);

/* Whether a name is acceptable at all: 1..VG_NAME_MAX bytes, valid UTF-8,
 * no control characters. 1 if valid, 0 if not. */
int vg_name_valid(const char *name);

#endif
