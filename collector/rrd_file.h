/*
 * rrd_file.h — librrd operations on one series file that both engines
 * need (private to the collector core): the conversion to a new layout
 * (`vigie-collector storage convert`), done by the files backend on its
 * own files and by the rrdcached backend on a daemon's files reached
 * through a directory (collector/backend_rrdcached.c), so the rows both
 * layouts share go through one piece of code whichever engine holds them.
 *
 * Not thread-safe: librrd's modify parses its arguments with getopt
 * (global state), so these are for the single-threaded command only.
 */
#ifndef VIGIE_COLLECTOR_RRD_FILE_H
#define VIGIE_COLLECTOR_RRD_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "collector/backend.h"
#include "vigie/rrdcached.h"

/* Give the file at PATH the archives of LAY (each tier with AVERAGE, MIN
 * and MAX), keeping its data source's state and every row of the archives
 * both layouts have (same function and resolution) that the new one
 * still retains, bit for bit; new archives are filled from the old ones,
 * others deleted (librrd's modify: RRA#k:=rows, RRA:..., DELRRA:k). The
 * new file replaces the old one by a rename, with the old one's mode and,
 * run as root, its owner. Nothing to do answers 0 too. 0, -ENOENT,
 * -EINVAL (a layout librrd cannot take), -EAGAIN (no space), -EIO; msg
 * gets why. */
int vg_rrd_file_convert(const char *path, const struct vg_rrd_layout *lay, char *msg,
			size_t msglen);

/* The conversion that a kill at any point leaves safe (`storage convert`,
 * both engines). PATH stays the authoritative file throughout:
 *   1. PATH is hard-linked to PATH.vigie-convert (the side name);
 *   2. the side name is converted (vg_rrd_file_convert: librrd writes
 *      PATH.vigie-convertXXXXXX and renames it over the side name, so
 *      PATH's inode is never written);
 *   3. CHECK (if not NULL) verifies the converted side file (the
 *      rrdcached backend reads it through the daemon); nonzero: the side
 *      file is removed, PATH untouched, and that is returned;
 *   4. the side file is renamed over PATH (the one step that changes
 *      PATH, atomic) and the directory synced.
 * A kill before 4 leaves PATH as it was and a side file (or librrd's
 * temporary file of it) that nothing reads; after 4, nothing. The side
 * name existing already (a run killed so) is EEXIST: call
 * vg_rrd_file_conv_cleanup first. For tests only, the environment
 * variable VIGIE_TEST_CONVERT_KILL=linked|tuned|checked|renamed makes
 * the process kill itself (SIGKILL) right after that step. 0 or -errno
 * as vg_rrd_file_convert; msg gets why. */
int vg_rrd_file_convert_safe(const char *path, const struct vg_rrd_layout *lay,
			     int (*check)(void *ctx, const char *side, char *why, size_t whylen),
			     void *ctx, char *msg, size_t msglen);

/* Remove what a conversion killed before its end left beside PATH:
 * PATH.vigie-convert and librrd's temporary files of it
 * (PATH.vigie-convertXXXXXX), and librrd's temporary file of PATH itself
 * (PATH + six letters or digits: an in-place modify, as versions before
 * the side name did, interrupted; no series file has such a name, they
 * end in .rrd). None of them was ever PATH, which holds every value
 * written. PATH.vigie-convert.old, the undo link of those versions'
 * rrdcached conversion: removed when it is PATH's own inode (killed
 * before the converted file replaced it), renamed back to PATH when PATH
 * is missing; a different file (killed after the replacement, before the
 * check) is left alone and answered -EEXIST, note naming it (put it back
 * over PATH or delete it by hand, as before). NOTE gets what was done ("" if
 * nothing). The number of files removed or put back, or -errno. */
int vg_rrd_file_conv_cleanup(const char *path, char *note, size_t notelen);

/* librrd's INFO of the file at PATH as rrdcached's INFO command prints it
 * (the same keys, types and value texts), into OUT (free with
 * vg_rrdcd_info_free): what a daemon reading that very file answers.
 * 0, -ENOENT, -EIO, -ENOMEM. */
int vg_rrd_file_info(const char *path, struct vg_rrdcd_info *out);

/* D's archives of one consolidation function, from D's step, kind and
 * last update (set by the caller) and, for each of the file's N archives
 * k, whether its function is that one (cf_of[k] == 1), its pdp per row
 * and its rows (-1 or 0: unknown, skipped): appended to d->rra (at most
 * 32) with their resolution and the oldest time they cover, as both
 * engines' info reads them from a header or from INFO. 0, or -EIO when
 * D's step or kind is unset or no archive has the function. No state:
 * thread-safe. */
int vg_rrd_info_archives(struct vg_rrd_info *d, size_t n, const long *cf_of, const long *pdp,
			 const long *rows);

/* The last update of the RRD file at PATH in ms, from its header
 * (librrd's live_head keeps microseconds, rounded here to the nearest
 * millisecond: librrd keeps "S.229" as 228999 us; rrd_last_r, used for a
 * layout the header read does not know, gives whole seconds). Both
 * engines: the files backend's last update, and the rrdcached backend's
 * read-back of a sync where the daemon's files are seen here ([storage]
 * daemon_base). Thread-safe (no librrd state but for that fallback's
 * error, which is per thread). 0, -ENOENT, -EAGAIN (out of file
 * descriptors: it passes), -EIO. */
int vg_rrd_file_last_ms(const char *path, int64_t *out);

#endif
