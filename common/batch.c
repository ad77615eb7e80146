/*
 * batch.c — the in-memory batch and its builder.
 *
 * Design: one arena per batch holds every string (bump allocation in
 * chunks, freed all at once), and four growable arrays hold resources,
 * samples, attributes and events. A resource refers to its samples and
 * attributes by index range, so growing an array never leaves a dangling
 * pointer inside the batch.
 *
 * Invariant: samples and attributes of resource i occupy
 * [first_sample, first_sample + nsamples) and are contiguous, because they
 * can only be appended to the most recently opened resource.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "vigie/array.h"
#include "vigie/batch.h"
#include "vigie/clock.h"

struct vg_arena_chunk {
	struct vg_arena_chunk *next;
	size_t used, cap;
	char data[];
};

#define ARENA_CHUNK 8192

static char *arena_alloc(struct vg_batch *b, size_t n)
{
	struct vg_arena_chunk *c = b->arena;

	if (!c || c->cap - c->used < n) {
		size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;

		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->next = b->arena;
		c->used = 0;
		c->cap = cap;
		b->arena = c;
	}
	char *p = c->data + c->used;
	c->used += n;
	return p;
}

const char *vg_batch_strdup(struct vg_batch *b, const char *s, size_t len)
{
	if (!s)
		return NULL;
	char *p = arena_alloc(b, len + 1);
	if (!p)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

static const char *dup0(struct vg_batch *b, const char *s, int *err)
{
	if (!s)
		return NULL;
	const char *p = vg_batch_strdup(b, s, strlen(s));
	if (!p)
		*err = -ENOMEM;
	return p;
}

struct vg_batch *vg_batch_new(const char *host, uint64_t stream, uint64_t seq,
			      int64_t time_ms)
{
	struct vg_batch *b = calloc(1, sizeof(*b));
	int err = 0;

	if (!b)
		return NULL;
	b->stream = stream;
	b->seq = seq;
	b->time_ms = time_ms;
	b->host = dup0(b, host ? host : "", &err);
	if (err) {
		vg_batch_free(b);
		return NULL;
	}
	return b;
}

void vg_batch_free(struct vg_batch *b)
{
	if (!b)
		return;
	struct vg_arena_chunk *c = b->arena;
	while (c) {
		struct vg_arena_chunk *n = c->next;
		free(c);
		c = n;
	}
	free(b->res);
	free(b->samples);
	free(b->attrs);
	free(b->events);
	free(b);
}

struct vg_resource *vg_batch_resource(struct vg_batch *b, uint8_t type,
				      const char *id, const char *name,
				      const char *parent, int64_t time_ms)
{
	int err = 0;

	if (!id || vg_array_grow((void **)&b->res, &b->cap_res, b->nres + 1,
				 sizeof(*b->res)))
		return NULL;
	struct vg_resource *r = &b->res[b->nres];
	memset(r, 0, sizeof(*r));
	r->type = type;
	r->state = VG_RSTATE_ACTIVE;
	r->time_ms = time_ms;
	r->id = dup0(b, id, &err);
	r->name = dup0(b, name, &err);
	r->parent = dup0(b, parent, &err);
	r->first_sample = (uint32_t)b->nsamples;
	r->first_attr = (uint32_t)b->nattrs;
	if (err)
		return NULL;
	b->nres++;
	return r;
}

size_t vg_batch_remove_resources(struct vg_batch *b,
				 int (*drop)(void *ctx, const struct vg_resource *r),
				 void *ctx)
{
	size_t nr = 0, ns = 0, na = 0, removed = 0;

	/* Ranges are ascending (the invariant above), so every kept range
	 * moves down or stays: memmove in order never overwrites one not yet
	 * moved. */
	for (size_t i = 0; i < b->nres; i++) {
		struct vg_resource r = b->res[i];

		if (drop(ctx, &r)) {
			removed++;
			continue;
		}
		if (r.nsamples)
			memmove(b->samples + ns, b->samples + r.first_sample,
				r.nsamples * sizeof(*b->samples));
		if (r.nattrs)
			memmove(b->attrs + na, b->attrs + r.first_attr,
				r.nattrs * sizeof(*b->attrs));
		r.first_sample = (uint32_t)ns;
		r.first_attr = (uint32_t)na;
		ns += r.nsamples;
		na += r.nattrs;
		b->res[nr++] = r;
	}
	b->nres = nr;
	b->nsamples = ns;
	b->nattrs = na;
	return removed;
}

size_t vg_batch_remove_events(struct vg_batch *b,
			      int (*drop)(void *ctx, const struct vg_event *e),
			      void *ctx)
{
	size_t n = 0;

	for (size_t i = 0; i < b->nevents; i++)
		if (!drop(ctx, &b->events[i]))
			b->events[n++] = b->events[i];
	n = b->nevents - n;
	b->nevents -= n;
	return n;
}

int vg_batch_identity(struct vg_batch *b, const char *project,
		      const char *user, const char *flavor)
{
	int err = 0;

	if (!b->nres)
		return -EINVAL;
	struct vg_resource *r = &b->res[b->nres - 1];
	r->project = dup0(b, project, &err);
	r->user = dup0(b, user, &err);
	r->flavor = dup0(b, flavor, &err);
	return err;
}

int vg_batch_sample(struct vg_batch *b, const char *metric, uint8_t kind,
		    double value)
{
	int err = 0;

	if (!b->nres || !metric)
		return -EINVAL;
	if (vg_array_grow((void **)&b->samples, &b->cap_samples, b->nsamples + 1,
			  sizeof(*b->samples)))
		return -ENOMEM;
	struct vg_sample *s = &b->samples[b->nsamples];
	s->metric = dup0(b, metric, &err);
	if (err)
		return err;
	s->kind = kind;
	s->value = value;
	b->nsamples++;
	b->res[b->nres - 1].nsamples++;
	return 0;
}

int vg_batch_attr(struct vg_batch *b, const char *key, const char *value)
{
	int err = 0;

	if (!b->nres || !key || !value)
		return -EINVAL;
	if (vg_array_grow((void **)&b->attrs, &b->cap_attrs, b->nattrs + 1,
			  sizeof(*b->attrs)))
		return -ENOMEM;
	struct vg_attr *a = &b->attrs[b->nattrs];
	a->key = dup0(b, key, &err);
	a->value = dup0(b, value, &err);
	if (err)
		return err;
	b->nattrs++;
	b->res[b->nres - 1].nattrs++;
	return 0;
}

int vg_batch_event(struct vg_batch *b, const char *resource, uint8_t type,
		   int64_t time_ms, const char *detail)
{
	int err = 0;

	if (!resource)
		return -EINVAL;
	if (vg_array_grow((void **)&b->events, &b->cap_events, b->nevents + 1,
			  sizeof(*b->events)))
		return -ENOMEM;
	struct vg_event *e = &b->events[b->nevents];
	e->resource = dup0(b, resource, &err);
	e->detail = dup0(b, detail, &err);
	e->type = type;
	e->time_ms = time_ms;
	if (err)
		return err;
	b->nevents++;
	return 0;
}

static const char *const rtype_names[] = {
	[VG_RT_INSTANCE] = "instance",
	[VG_RT_DISK] = "disk",
	[VG_RT_NIC] = "nic",
	[VG_RT_HOST] = "host",
	[VG_RT_HOST_DISK] = "host_disk",
	[VG_RT_HOST_NIC] = "host_nic",
	[VG_RT_CUSTOM] = "custom",
};

const char *vg_rtype_name(int type)
{
	if (type < 1 || type > VG_RT_MAX)
		return NULL;
	return rtype_names[type];
}

int vg_rtype_parse(const char *name)
{
	for (int i = 1; name && i <= VG_RT_MAX; i++)
		if (!strcmp(name, rtype_names[i]))
			return i;
	return -EINVAL;
}

const char *vg_kind_name(int kind)
{
	switch (kind) {
	case VG_KIND_GAUGE: return "gauge";
	case VG_KIND_COUNTER: return "counter";
	}
	return NULL;
}

const char *vg_event_name(int type)
{
	static const char *const names[] = {
		NULL,
		"started",
		"stopped",
		"suspended",
		"resumed",
		"defined",
		"undefined",
		"resized",
		"gap",
	};
	if (type < 1 || type > VG_EV_GAP)
		return NULL;
	return names[type];
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

char *vg_batch_to_json(const struct vg_batch *b)
{
	char tbuf[32];
	json_t *root = json_object(), *res = json_array(), *evs = json_array();

	json_object_set_new(root, "host", json_string(b->host));
	json_object_set_new(root, "stream", json_integer((json_int_t)b->stream));
	json_object_set_new(root, "seq", json_integer((json_int_t)b->seq));
	json_object_set_new(root, "time",
			    json_string(vg_time_format(b->time_ms, tbuf, sizeof(tbuf))));
	json_object_set_new(root, "time_ms", json_integer(b->time_ms));
	for (size_t i = 0; i < b->nres; i++) {
		const struct vg_resource *r = &b->res[i];
		json_t *o = json_object(), *m = json_object(), *a = json_object();
		json_object_set_new(o, "type", json_string(vg_rtype_name(r->type) ? vg_rtype_name(r->type) : "unknown"));
		json_object_set_new(o, "id", json_string(r->id));
		json_object_set_new(o, "name", str_or_null(r->name));
		json_object_set_new(o, "parent", str_or_null(r->parent));
		json_object_set_new(o, "project", str_or_null(r->project));
		json_object_set_new(o, "user", str_or_null(r->user));
		json_object_set_new(o, "flavor", str_or_null(r->flavor));
		json_object_set_new(o, "state", json_string(r->state == VG_RSTATE_ENDED ? "ended" : "active"));
		json_object_set_new(o, "time_ms", json_integer(r->time_ms));
		const struct vg_attr *at = vg_resource_attrs(b, r);
		for (uint32_t k = 0; k < r->nattrs; k++)
			json_object_set_new(a, at[k].key, json_string(at[k].value));
		json_object_set_new(o, "attributes", a);
		const struct vg_sample *s = vg_resource_samples(b, r);
		for (uint32_t k = 0; k < r->nsamples; k++) {
			json_t *v = json_object();
			json_object_set_new(v, "kind", json_string(vg_kind_name(s[k].kind) ? vg_kind_name(s[k].kind) : "unknown"));
			json_object_set_new(v, "value", json_real(s[k].value));
			json_object_set_new(m, s[k].metric, v);
		}
		json_object_set_new(o, "samples", m);
		json_array_append_new(res, o);
	}
	for (size_t i = 0; i < b->nevents; i++) {
		const struct vg_event *e = &b->events[i];
		json_t *o = json_object();
		json_object_set_new(o, "resource", json_string(e->resource));
		json_object_set_new(o, "type", json_string(vg_event_name(e->type) ? vg_event_name(e->type) : "unknown"));
		json_object_set_new(o, "time_ms", json_integer(e->time_ms));
		json_object_set_new(o, "detail", str_or_null(e->detail));
		json_array_append_new(evs, o);
	}
	json_object_set_new(root, "resources", res);
	json_object_set_new(root, "events", evs);
	char *out = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	return out;
}
