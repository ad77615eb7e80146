/*
 * vigie — the metric catalogue (docs/metrics.md is its prose form).
 *
 * Every metric the agent produces has one entry: name, resource type, unit
 * (SI base units: "s", "B", "count", "%", "B/s"...), kind and a one-line
 * description. The collector uses it for units in API responses; a metric
 * not in the catalogue is still stored (unit "") so newer agents work with
 * older collectors.
 */
#ifndef VIGIE_CATALOG_H
#define VIGIE_CATALOG_H

#include <stddef.h>

struct vg_metric_def {
	const char *name;
	int rtype;        /* enum vg_rtype */
	const char *unit; /* of the stored value: counters are rates, so a
			     counter in "B" is queried in "B/s" */
	int kind;         /* enum vg_kind */
	const char *description;
};

/* The whole table (terminated by an entry with name == NULL). */
extern const struct vg_metric_def vg_catalog[];

/* Find by name and resource type; NULL if not in the catalogue. */
const struct vg_metric_def *vg_catalog_find(int rtype, const char *name);

/* The resource types the catalogue defines name for, as a mask of
 * (1u << rtype); 0 when name is not a catalogue metric (or NULL). The
 * query endpoints use it so that a catalogue name means the agent's metric
 * unless a request names another type: a project may publish cpu.util on
 * its custom resources, and those must not rank or aggregate with the
 * instances' by default. Pure, thread-safe. */
unsigned vg_catalog_rtypes(const char *name);

/* Unit of the queried value: for a counter "<unit>/s", for a gauge the
 * unit itself ("s/s" for cpu.time). buf >= 32 bytes. */
const char *vg_catalog_query_unit(const struct vg_metric_def *d, char *buf,
				  size_t len);

#endif
