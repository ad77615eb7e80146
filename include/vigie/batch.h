/*
 * vigie — the batch: what one agent poll produced, in memory.
 *
 * A batch is the unit of delivery between agent and collector: one host,
 * one sequence number, one poll time, a list of resources (instance, disk,
 * nic, host, host disk, host nic), each with its samples, and a list of
 * lifecycle events. The agent builds one per poll; the wire decoder builds
 * one per received message; the collector's consumers read it.
 *
 * Ownership: a batch owns every string and array reachable from it (one
 * arena per batch). Pointers returned by accessors are valid until
 * vg_batch_free(). Building is append-only: vg_batch_resource() opens a
 * resource and the following vg_batch_sample()/vg_batch_attr() calls add
 * to that resource, so samples of one resource are contiguous.
 *
 * Not thread-safe: one thread builds or reads a batch at a time.
 */
#ifndef VIGIE_BATCH_H
#define VIGIE_BATCH_H

#include <stddef.h>
#include <stdint.h>

/* Resource types. Values are on the wire: never renumber. */
enum vg_rtype {
	VG_RT_INSTANCE = 1,
	VG_RT_DISK = 2, /* an instance's block device */
	VG_RT_NIC = 3,  /* an instance's vNIC */
	VG_RT_HOST = 4,
	VG_RT_HOST_DISK = 5,
	VG_RT_HOST_NIC = 6,
	/* A resource a project creates by publishing measures to it
	 * (POST /v1/measures, docs/api.md): no agent reports it, so it never
	 * travels on the agent wire (VG_RT_WIRE_MAX). */
	VG_RT_CUSTOM = 7,
};
#define VG_RT_MAX 7
#define VG_RT_WIRE_MAX 6 /* the types an agent batch may carry */

/* Sample kinds. COUNTER is a monotonically growing total (stored as a
 * rate per second, resets never give a negative rate); GAUGE is a level. */
enum vg_kind {
	VG_KIND_GAUGE = 1,
	VG_KIND_COUNTER = 2,
};

/* Resource state as seen by the agent at poll time. */
enum vg_rstate {
	VG_RSTATE_ACTIVE = 1, /* exists (running, paused or shut off) */
	VG_RSTATE_ENDED = 2,  /* vanished since the last poll */
};

/* Lifecycle events (billing relies on their own timestamps). On the wire. */
enum vg_event_type {
	VG_EV_STARTED = 1,
	VG_EV_STOPPED = 2,
	VG_EV_SUSPENDED = 3,
	VG_EV_RESUMED = 4,
	VG_EV_DEFINED = 5,
	VG_EV_UNDEFINED = 6,
	VG_EV_RESIZED = 7, /* flavor changed; detail carries the new flavor */
	VG_EV_GAP = 8,     /* the agent could not poll (libvirt down) */
};

struct vg_attr {
	const char *key;
	const char *value;
};

struct vg_sample {
	const char *metric; /* catalogue name, e.g. "cpu.time" */
	uint8_t kind;       /* enum vg_kind */
	double value;       /* SI base unit (seconds, bytes, counts, percent) */
};

struct vg_resource {
	uint8_t type;        /* enum vg_rtype */
	uint8_t state;       /* enum vg_rstate */
	const char *id;      /* globally unique: UUID, host name, uuid-device */
	const char *name;    /* human name, may be NULL */
	const char *parent;  /* owning resource id (disk/nic -> instance), or NULL */
	const char *project; /* may be NULL (collector uses "default") */
	const char *user;    /* may be NULL */
	const char *flavor;  /* may be NULL */
	int64_t time_ms;     /* when the samples were read, UTC ms since epoch */
	uint32_t first_attr, nattrs;
	uint32_t first_sample, nsamples;
};

struct vg_event {
	const char *resource; /* resource id */
	uint8_t type;         /* enum vg_event_type */
	int64_t time_ms;
	const char *detail; /* may be NULL; JSON text for RESIZED */
};

struct vg_batch {
	const char *host;
	uint64_t stream; /* random per agent spool: a new stream restarts seq */
	uint64_t seq;    /* 1, 2, 3 ... within a stream */
	int64_t time_ms; /* poll time */
	struct vg_resource *res;
	size_t nres;
	struct vg_sample *samples;
	size_t nsamples;
	struct vg_attr *attrs;
	size_t nattrs;
	struct vg_event *events;
	size_t nevents;
	/* 1: a project's published measures (POST /v1/measures), never an
	 * agent's: values only, no observation of its resources' state; the
	 * billing meter leaves such a batch out. Not on the wire. */
	int published;
	/* 1: this collector did not acknowledge the host's previous batch
	 * of the stream itself (the receiver's duplicate check asked the
	 * shared state: the host comes from another collector, or this one
	 * just started). Set by the receiver for the store
	 * (series.arrived_ms), which marks its journal record (journal.c
	 * "The arrival marker"). Not on the wire. */
	int arrived;
	/* the batch's deadline (vg_monotonic_ms; 0: none): set by the
	 * receiver for the consumers that bound their work by it (the
	 * registry's transaction: registry.c "Commits bounded by the
	 * deadline"). Not on the wire. */
	int64_t deadline_ms;
	/* private */
	size_t cap_res, cap_samples, cap_attrs, cap_events;
	struct vg_arena_chunk *arena;
};

/* Create an empty batch. host is copied. Returns NULL on out of memory. */
struct vg_batch *vg_batch_new(const char *host, uint64_t stream,
			      uint64_t seq, int64_t time_ms);

/* Free a batch and everything it owns. Accepts NULL. */
void vg_batch_free(struct vg_batch *b);

/* Copy a string into the batch's arena (NULL stays NULL). Returns NULL and
 * sets *err=-ENOMEM on failure when s != NULL. */
const char *vg_batch_strdup(struct vg_batch *b, const char *s, size_t len);

/* Open a new resource; strings are copied (any may be NULL but id).
 * Later sample/attr calls attach to it. Returns the resource (valid until
 * the next vg_batch_resource call) or NULL on out of memory. */
struct vg_resource *vg_batch_resource(struct vg_batch *b, uint8_t type,
				      const char *id, const char *name,
				      const char *parent, int64_t time_ms);

/* Set identity fields of the current resource (strings copied). */
int vg_batch_identity(struct vg_batch *b, const char *project,
		      const char *user, const char *flavor);

/* Add a sample / attribute to the current resource. 0 or -ENOMEM;
 * -EINVAL if no resource is open. metric is copied. */
int vg_batch_sample(struct vg_batch *b, const char *metric, uint8_t kind,
		    double value);
int vg_batch_attr(struct vg_batch *b, const char *key, const char *value);

/* Append a lifecycle event (strings copied). 0 or -ENOMEM. */
int vg_batch_event(struct vg_batch *b, const char *resource, uint8_t type,
		   int64_t time_ms, const char *detail);

/* Remove the resources for which drop(ctx, r) returns non-zero (called
 * once per resource, in order), with their samples and attributes; the
 * others keep their order and their strings. Events are kept. Returns the
 * number of resources removed. Never allocates, never fails. */
size_t vg_batch_remove_resources(struct vg_batch *b,
				 int (*drop)(void *ctx, const struct vg_resource *r),
				 void *ctx);

/* Remove the events for which drop(ctx, e) returns non-zero (called once
 * per event, in order); the others keep their order. Returns the number
 * removed. Never allocates, never fails. */
size_t vg_batch_remove_events(struct vg_batch *b,
			      int (*drop)(void *ctx, const struct vg_event *e),
			      void *ctx);

/* Accessors: r's nsamples samples / nattrs attributes. NULL when it has
 * none: a batch without any (published measures have no attributes) has
 * no array, and an offset added to NULL is undefined behaviour. */
static inline const struct vg_sample *
vg_resource_samples(const struct vg_batch *b, const struct vg_resource *r)
{
	return r->nsamples ? b->samples + r->first_sample : NULL;
}
static inline const struct vg_attr *
vg_resource_attrs(const struct vg_batch *b, const struct vg_resource *r)
{
	return r->nattrs ? b->attrs + r->first_attr : NULL;
}

/* Names for enums ("instance", "disk", "nic", "host", "host_disk",
 * "host_nic"; "gauge", "counter"; "started", ...). Unknown -> NULL. */
const char *vg_rtype_name(int type);
int vg_rtype_parse(const char *name); /* -EINVAL if unknown */
const char *vg_kind_name(int kind);
const char *vg_event_name(int type);

/* Render a batch as JSON text (for `vigie-agent --once` and debugging).
 * Returns a malloc'd string the caller frees, or NULL on out of memory. */
char *vg_batch_to_json(const struct vg_batch *b);

#endif
