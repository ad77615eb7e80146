/*
 * vigie — inhibition between alarms (alarms/inhibit.c): an alarm may name,
 * in "inhibits", other alarms of its project whose notifications it
 * suppresses while it fires ("host compute-7 down" silences the alarms
 * of the instances on compute-7). Called by the engine under its lock.
 */
#ifndef VIGIE_ALARM_INHIBIT_H
#define VIGIE_ALARM_INHIBIT_H

#include <stddef.h>

#include "alarms/engine_state.h"

#define VG_ALARM_MAX_INHIBITS 16

/* Whether a notification of alarm b about resource (may be NULL) on host
 * (may be NULL) is inhibited: 1 with the inhibiting alarm's name in by,
 * else 0. An alarm A that names b inhibits it when one of A's instances
 * is in alarm and is b's resource, or a resource on b's host, or is the
 * host itself (a host resource's id is its name), or A is a composite. */
int vg_alarm_inhibited(struct vg_alarm_engine *e, const struct alarm *b,
		       const char *resource, const char *host, char *by, size_t len);
void vg_alarm_inhibit_release(struct vg_alarm_engine *e);

#endif
