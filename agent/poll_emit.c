/*
 * poll_emit.c — how a poll writes into its batch (agent/poll_state.h):
 * a resource, its attributes, identity and samples, under the
 * collector's name rules.
 *
 * Design: a struct vg_poll_emit carries the batch, the first error and a
 * skip flag; every writer is a no-op once either is set, so the code that
 * walks domains and the host writes straight through without checking
 * each call, and reads e->err once at the end.
 *
 * Invariants: a resource whose id or parent breaks the name rules of
 * vigie/wire.h is left out with all its samples (the collector would
 * refuse the whole batch for it), logged at most once per 1000; other
 * strings from libvirt and Nova metadata are cleaned, never refused
 * (a project also loses white space at its ends);
 * non-finite values are never written.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "agent/poll_state.h"
#include "vigie/log.h"
#include "vigie/name.h"
#include "vigie/wire.h"

/* Names from libvirt and Nova metadata made to follow the collector's
 * rules (docs/protocol.md "Names"): vg_text_clean into out (max + 1
 * bytes). NULL and "" stay as they are. */
static const char *clean(const char *in, char *out, size_t max)
{
	if (!in || !*in || vg_text_valid(in, max))
		return in;
	vg_text_clean(in, out, max);
	return out;
}

void vg_poll_sample(struct vg_poll_emit *e, const char *metric, int kind, double v)
{
	if (e->err || e->skip || !isfinite(v))
		return;
	e->err = vg_batch_sample(e->b, metric, (uint8_t)kind, v);
}

void vg_poll_attr(struct vg_poll_emit *e, const char *key, const char *value)
{
	char buf[VG_WIRE_MAX_STRING + 1];

	if (e->err || e->skip || !value || !vg_name_valid(key))
		return;
	e->err = vg_batch_attr(e->b, key, clean(value, buf, VG_WIRE_MAX_STRING));
}

void vg_poll_attr_long(struct vg_poll_emit *e, const char *key, long v)
{
	char buf[32];

	if (v < 0)
		return;
	snprintf(buf, sizeof(buf), "%ld", v);
	vg_poll_attr(e, key, buf);
}

struct vg_resource *vg_poll_resource(struct vg_poll_emit *e, int type, const char *id,
				     const char *name, const char *parent,
				     int64_t t)
{
	char buf[VG_WIRE_MAX_STRING + 1];
	struct vg_resource *r;

	if (e->err)
		return NULL;
	e->skip = !vg_name_valid(id) ||
		  (parent && *parent && !vg_name_valid(parent));
	if (e->skip) {
		static uint64_t n_skipped; /* log lines, one per 1000 */
		char shown[VG_NAME_MAX + 1];

		vg_text_clean(id, shown, VG_NAME_MAX);
		vg_log_limited(VG_LOG_WARN, &n_skipped,
			       "left out %s '%s': its id or its parent's breaks "
			       "the collector's name rules (docs/protocol.md)",
			       vg_rtype_name(type) ? vg_rtype_name(type) : "?",
			       shown);
		return NULL;
	}
	r = vg_batch_resource(e->b, (uint8_t)type, id,
			      clean(name, buf, VG_WIRE_MAX_STRING), parent, t);
	if (!r)
		e->err = -ENOMEM;
	return r;
}

/* A project from the domain's metadata without white space at either
 * end (into pb, VG_NAME_MAX + 1 bytes): "acme " is billed as acme, not as
 * a project the API lets nobody name or query (docs/protocol.md "Names");
 * only white space is "default". Logged first, then every 1000th. */
static const char *project_of(const char *project, char *pb)
{
	static uint64_t n_trimmed; /* log lines, one per 1000 */
	const char *p, *start;
	size_t n;

	if (!project)
		return "default";
	p = clean(project, pb, VG_NAME_MAX);
	if (!vg_name_blank_end(p))
		return p;
	n = vg_name_trim_blank(p, &start);
	vg_log_limited(VG_LOG_WARN, &n_trimmed,
		       "a domain's project '%s' begins or ends with white space: "
		       "reported as '%.*s' (fix the domain's metadata)",
		       p, (int)(n ? n : 7), n ? start : "default");
	if (!n)
		return "default";
	memmove(pb, start, n);
	pb[n] = '\0';
	return pb;
}

void vg_poll_identity(struct vg_poll_emit *e, const char *project, const char *user,
		      const char *flavor)
{
	char pb[VG_NAME_MAX + 1], ub[VG_NAME_MAX + 1], fb[VG_NAME_MAX + 1];

	if (e->err || e->skip)
		return;
	e->err = vg_batch_identity(e->b, project_of(project, pb),
				   clean(user, ub, VG_NAME_MAX),
				   clean(flavor, fb, VG_NAME_MAX));
}
