/*
 * inhibit.c — inhibition between alarms (alarms/inhibit.h).
 *
 * Design: a reverse index "project NUL name" -> the alarms that name it
 * in "inhibits", rebuilt when the engine's definition generation (e->gen,
 * bumped by every create, update, delete, enable and disable) moved.
 * Without any "inhibits" the index is empty and a check is one hash
 * lookup; with them, only the inhibiting alarms' instances are looked at.
 * Order within one batch matters: an inhibiting alarm decided after the
 * notification it would inhibit (same batch, later sample) does not
 * inhibit it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alarms/inhibit.h"

static void index_free(struct vg_alarm_engine *e)
{
	size_t pos = 0;
	const struct vg_hmap_entry *en;

	while ((en = vg_hmap_next(&e->inhib, &pos))) {
		struct list *l = en->value;
		free(l->a);
		free(l);
	}
	vg_hmap_release(&e->inhib);
}

static void index_build(struct vg_alarm_engine *e)
{
	size_t pos = 0;
	const struct vg_hmap_entry *en;

	index_free(e);
	vg_hmap_init(&e->inhib);
	while ((en = vg_hmap_next(&e->alarms, &pos))) {
		struct alarm *a = en->value;
		if (!a->def.enabled)
			continue;
		for (size_t i = 0; i < a->def.ninhibits; i++) {
			char k[600];
			size_t kl = key2(k, sizeof(k), a->def.project, a->def.inhibits[i]);
			struct list *l;
			if (!kl)
				continue;
			if (!(l = vg_hmap_get(&e->inhib, k, kl))) {
				if (!(l = calloc(1, sizeof(*l))))
					continue;
				if (vg_hmap_put(&e->inhib, k, kl, l, NULL)) {
					free(l);
					continue;
				}
			}
			if (l->n == l->cap) {
				size_t cap = l->cap ? 2 * l->cap : 4;
				struct alarm **n = realloc(l->a, cap * sizeof(*n));
				if (!n)
					continue;
				l->a = n;
				l->cap = cap;
			}
			l->a[l->n++] = a;
		}
	}
	e->inhib_gen = e->gen;
}

int vg_alarm_inhibited(struct vg_alarm_engine *e, const struct alarm *b,
		       const char *resource, const char *host, char *by, size_t len)
{
	char k[600];
	size_t kl;
	struct list *l;

	if (e->inhib_gen != e->gen)
		index_build(e);
	if (!vg_hmap_count(&e->inhib))
		return 0;
	kl = key2(k, sizeof(k), b->def.project, b->def.name);
	if (!kl || !(l = vg_hmap_get(&e->inhib, k, kl)))
		return 0;
	for (size_t i = 0; i < l->n; i++) {
		const struct alarm *a = l->a[i];
		size_t pos = 0;
		const struct vg_hmap_entry *en;
		if (a == b)
			continue;
		while ((en = vg_hmap_next(&a->insts, &pos))) {
			const struct inst *in = en->value;
			const struct res_info *r;
			if (in->ev.state != VG_ALARM_ALARM)
				continue;
			r = in->resource[0] ? vg_hmap_gets(&e->resources, in->resource) : NULL;
			if (!in->resource[0] ||
			    (resource && !strcmp(in->resource, resource)) ||
			    (host && !strcmp(in->resource, host)) ||
			    (host && r && r->host && !strcmp(r->host, host))) {
				snprintf(by, len, "%s", a->def.name);
				return 1;
			}
		}
	}
	return 0;
}

void vg_alarm_inhibit_release(struct vg_alarm_engine *e)
{
	index_free(e);
}
