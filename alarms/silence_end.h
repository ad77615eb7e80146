/*
 * vigie — what the engine does when a silence ends (alarms/silence_end.c).
 */
#ifndef VIGIE_ALARM_SILENCE_END_H
#define VIGIE_ALARM_SILENCE_END_H

#include <stdint.h>

#include "alarms/engine_state.h"

/* For every silence ended at now_ms and not handled yet: queue one
 * notification (a "repeat", reason naming the silence) for each alarm
 * instance it matched that is still in alarm and has alarm actions,
 * flush, then mark the silence handled. Under the engine lock. Does
 * nothing when the engine was opened with silence_end_quiet. */
void vg_alarm_silence_ends(struct vg_alarm_engine *e, int64_t now_ms);

#endif
