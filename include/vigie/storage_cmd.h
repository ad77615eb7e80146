/*
 * vigie — `vigie-collector storage ...`: operator commands on the
 * store (collector/storage_cmd.c, storage_move.c, storage_flush.c).
 * Called by compose.c only. Each prints to out/err and returns the exit
 * status; none is thread-safe (a command runs alone in its process).
 */
#ifndef VIGIE_STORAGE_CMD_H
#define VIGIE_STORAGE_CMD_H

#include <stdio.h>

#include "vigie/config.h"

/* argv[0] is "storage". Returns the exit status (0, 1 failed, 2 usage). */
int vg_storage_command(const struct vg_config *cfg, int argc, char **argv,
		       FILE *out, FILE *err);

/* `storage move --from ADDR --to ADDR --from-dir DIR --to-dir DIR
 * (--series PATTERN | --all) [--dry-run]` (argv[1] is "move"): move
 * series between rrdcached daemons with the collector stopped, verify
 * each, record its new owner, then delete its source
 * (collector/storage_move.c). 0, 1 (a series failed: its source is kept),
 * 2 (usage). */
int vg_storage_move_command(const struct vg_config *cfg, int argc, char **argv,
			    FILE *out, FILE *err);

/* `storage flush [--timeout SECONDS]` (argv[1] is "flush"): have the
 * running collector write its cache (SIGUSR1) and wait for its answer;
 * with none running, replay a journal a crash left. 0, 1, 2 (usage). */
int vg_storage_flush_command(const struct vg_config *cfg, int argc, char **argv,
			     FILE *out, FILE *err);

struct vg_store;
/* The collector's side of SIGUSR1 (receiver thread, between batches):
 * vg_store_flush, then <data_dir>/flush.done replaced with when the flush
 * started (CLOCK_MONOTONIC ns), its status and how many values it wrote,
 * for the command to wait on. msg gets one line for the log. 0 or the
 * flush's (or the file's) -errno. */
int vg_storage_flush_serve(struct vg_store *s, const char *data_dir, char *msg,
			   size_t msglen);

#endif
