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

/* librrd's INFO of the file at PATH as rrdcached's INFO command prints it
 * (the same keys, types and value texts), into OUT (free with
 * vg_rrdcd_info_free): what a daemon reading that very file answers.
 * 0, -ENOENT, -EIO, -ENOMEM. */
int vg_rrd_file_info(const char *path, struct vg_rrdcd_info *out);

#endif
