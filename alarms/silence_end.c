/*
 * silence_end.c — when a silence ends, alarms still firing notify once
 * (alarms/silence_end.h).
 *
 * Why: an alarm that went to alarm during a maintenance window was
 * silenced; if it is still in alarm when the window closes, nobody knows
 * unless we say so now (Alertmanager does the same when a silence
 * expires). Design: on the engine's tick, for each silence that ended and
 * was not handled, walk the alarms and their instances in alarm, match
 * them against that silence's matchers, queue a "repeat" notification
 * with the reason, flush (the notifications and their outbox rows commit
 * together), and only then mark the silence handled in its table. A
 * crash between the flush and that mark notifies again after the restart
 * (new notification ids): the window is one database write, as for the
 * outbox's delivered mark. Another silence still in force silences these
 * notifications too (they pass the same check at the flush).
 */
#include <stdio.h>
#include <string.h>

#include "alarms/engine_eval.h"
#include "alarms/engine_queue.h"
#include "alarms/silence_end.h"
#include "vigie/alarm_silence.h"

#define ENDS_PER_TICK 16 /* silences handled per tick (the rest next tick) */

void vg_alarm_silence_ends(struct vg_alarm_engine *e, int64_t now_ms)
{
	char id[40];

	if (!e->silences || e->o.silence_end_quiet)
		return;
	for (int n = 0; n < ENDS_PER_TICK &&
			vg_alarm_silences_ended_next(e->silences, now_ms, id);
	     n++) {
		size_t pos = 0;
		const struct vg_hmap_entry *en;
		char reason[160];

		snprintf(reason, sizeof(reason), "still in alarm when silence %s ended",
			 id);
		while ((en = vg_hmap_next(&e->alarms, &pos))) {
			struct alarm *a = en->value;
			size_t ip = 0;
			const struct vg_hmap_entry *ie;
			if (!a->def.enabled || !a->def.nactions[VG_ALARM_ALARM])
				continue;
			while ((ie = vg_hmap_next(&a->insts, &ip))) {
				struct inst *in = ie->value;
				struct res_info *r;
				struct vg_alarm_silence_subject sj = {0};
				if (in->ev.state != VG_ALARM_ALARM)
					continue;
				r = in->resource[0] ? vg_hmap_gets(&e->resources, in->resource)
						    : NULL;
				sj.project = a->def.project;
				sj.resource = in->resource[0] ? in->resource : NULL;
				sj.host = r ? r->host : NULL;
				sj.alarm = a->def.name;
				sj.severity = a->def.severity;
				sj.def = &a->def;
				if (vg_alarm_silences_match_id(e->silences, id, &sj))
					vg_alarm_notify_still_firing(e, in, reason, now_ms);
			}
		}
		if (vg_alarm_queue_flush(e))
			return; /* kept queued; the silence is handled next tick */
		vg_alarm_silences_set_handled(e->silences, id);
	}
}
