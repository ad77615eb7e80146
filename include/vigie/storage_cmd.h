/*
 * vigie — `vigie-collector storage ...`: operator commands on the
 * store (collector/storage_cmd.c). Called by compose.c only.
 */
#ifndef VIGIE_STORAGE_CMD_H
#define VIGIE_STORAGE_CMD_H

#include <stdio.h>

#include "vigie/config.h"

/* argv[0] is "storage". Returns the exit status (0, 1 failed, 2 usage). */
int vg_storage_command(const struct vg_config *cfg, int argc, char **argv,
		       FILE *out, FILE *err);

#endif
