/*
 * vigie — the alarm engine's definitions (alarms/engine_defs.c): what the
 * lifecycle (engine.c) needs of them. The API entry points (create,
 * update, delete...) are the public ones in vigie/alarm_engine.h.
 */
#ifndef VIGIE_ALARMS_ENGINE_DEFS_H
#define VIGIE_ALARMS_ENGINE_DEFS_H

#include <stddef.h>

#include "alarms/engine_state.h"

/* Load the definitions and instance states from alarms.db into e (at
 * open, before any batch). A stored definition that no longer validates
 * is logged and skipped. 0, or the store's error with a message in err. */
int vg_alarm_defs_load(struct vg_alarm_engine *e, char *err, size_t errlen);
/* Load the stored definition id (another collector created it), or the
 * stored states of one alarm's instances over the ones in memory (a
 * takeover). 0 or -errno. */
int vg_alarm_defs_load_one(struct vg_alarm_engine *e, const char *id);
/* Drop alarm a from memory only (changed or deleted on another collector;
 * the caller reindexes). */
void vg_alarm_defs_forget(struct vg_alarm_engine *e, struct alarm *a);
int vg_alarm_defs_load_states(struct vg_alarm_engine *e, const char *alarm_id);
/* The stored states of the alarms another node owns that had a
 * transition recorded since since_ms, over the ones in memory (what the
 * API shows). 0 or -errno. */
int vg_alarm_defs_refresh_unowned(struct vg_alarm_engine *e, int64_t since_ms);

#endif
