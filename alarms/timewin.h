/*
 * vigie — time constraints of an alarm (alarms/timewin.c): Aodh's
 * time_constraints, windows outside of which the alarm does not notify.
 *
 *   "time_constraints": [{"name": "business-hours",
 *                         "start": "0 9 * * 1-5",   cron: min hour dom mon dow
 *                         "duration": 32400,        seconds (or "9h")
 *                         "timezone": "Europe/Paris"}]   default "UTC"
 *
 * A window opens at every minute the cron expression matches, in the
 * timezone's local time (system tz database, /usr/share/zoneinfo), and
 * lasts duration. With constraints, a notification is sent only inside
 * one of the windows; outside, the transition is recorded, not notified.
 * The local time of the whole window is taken at the offset of the
 * moment checked (a window spanning a daylight-saving change is off by
 * the change for its part before it).
 *
 * Thread-safety: vg_alarm_timewin_inside takes a process-wide lock while
 * it sets TZ (nothing else in vigie reads the local time).
 */
#ifndef VIGIE_ALARM_TIMEWIN_H
#define VIGIE_ALARM_TIMEWIN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define VG_TIMEWIN_MAX 8 /* constraints per alarm */
#define VG_TIMEWIN_MAX_DURATION_S (7 * 86400)

/* Check v (the JSON value of "time_constraints") and normalise it into a
 * new array *out (duration in seconds, timezone filled in). 0, or -EINVAL
 * with one line in err naming the entry and field. */
int vg_alarm_timewin_parse(const json_t *v, json_t **out, char *err, size_t errlen);

/* Whether now_ms is inside one of the windows of tc (the normalised
 * array; NULL or empty: always). 1 inside, 0 outside. */
int vg_alarm_timewin_inside(const json_t *tc, int64_t now_ms);

#endif
