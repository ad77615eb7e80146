/*
 * dispatch.c — hands each accepted batch to every consumer, in order.
 *
 * The receiver knows only this interface; the registry, the RRD store, the
 * billing meter, the alarm engine and the live stream's publisher are
 * registered here by the collector's compose.c. The order of the begin,
 * batch and end calls and the acknowledgement rule live in
 * include/vigie/dispatch.h.
 */
#include <errno.h>
#include <string.h>

#include "vigie/dispatch.h"

void vg_dispatch_init(struct vg_dispatch *d)
{
	memset(d, 0, sizeof(*d));
}

int vg_dispatch_add_hooks(struct vg_dispatch *d, const struct vg_consumer *c,
			  const struct vg_consumer_hooks *h)
{
	if (d->n >= VG_DISPATCH_MAX)
		return -ENOSPC;
	d->consumers[d->n] = *c;
	memset(&d->hooks[d->n], 0, sizeof(d->hooks[d->n]));
	if (h)
		d->hooks[d->n] = *h;
	d->n++;
	return 0;
}

int vg_dispatch_add(struct vg_dispatch *d, const struct vg_consumer *c)
{
	return vg_dispatch_add_hooks(d, c, NULL);
}

/* Fold consumer i's return rc into *out: -EAGAIN wins, else the first
 * error. */
static void fold(struct vg_dispatch *d, int i, int rc, int *out)
{
	if (rc == -EAGAIN) {
		*out = -EAGAIN;
		return;
	}
	if (rc < 0) {
		d->errors[i]++;
		if (!*out)
			*out = rc;
	}
}

int vg_dispatch_batch(struct vg_dispatch *d, const struct vg_batch *b)
{
	int out = 0, rc;

	for (int i = 0; i < d->n; i++)
		if (d->hooks[i].begin)
			d->hooks[i].begin(d->consumers[i].ctx, b);
	for (int i = 0; i < d->n && out != -EAGAIN; i++)
		fold(d, i, d->consumers[i].batch(d->consumers[i].ctx, b), &out);
	rc = out;
	for (int i = 0; i < d->n; i++)
		if (d->hooks[i].end)
			fold(d, i, d->hooks[i].end(d->consumers[i].ctx, b, rc), &out);
	return out;
}

/* Whether consumer i takes groups (both group hooks). */
static int grouped(const struct vg_dispatch *d, int i)
{
	return d->hooks[i].group_begin && d->hooks[i].group_end;
}

void vg_dispatch_group(struct vg_dispatch *d, const struct vg_batch *const *b,
		       size_t n, int *rcs)
{
	if (n == 1) {
		rcs[0] = vg_dispatch_batch(d, b[0]);
		return;
	}
	if (n > VG_DISPATCH_GROUP_MAX) {
		for (size_t k = 0; k < n; k++)
			rcs[k] = -EINVAL;
		return;
	}
	for (int i = 0; i < d->n; i++)
		if (grouped(d, i))
			d->hooks[i].group_begin(d->consumers[i].ctx, b, n);
	for (size_t k = 0; k < n; k++) {
		int out = 0, rc;

		for (int i = 0; i < d->n; i++)
			if (!grouped(d, i) && d->hooks[i].begin)
				d->hooks[i].begin(d->consumers[i].ctx, b[k]);
		for (int i = 0; i < d->n && out != -EAGAIN; i++)
			fold(d, i, d->consumers[i].batch(d->consumers[i].ctx, b[k]), &out);
		rc = out;
		for (int i = 0; i < d->n; i++)
			if (!grouped(d, i) && d->hooks[i].end)
				fold(d, i, d->hooks[i].end(d->consumers[i].ctx, b[k], rc), &out);
		rcs[k] = out;
	}
	for (int i = 0; i < d->n; i++) {
		if (!grouped(d, i))
			continue;
		int got[VG_DISPATCH_GROUP_MAX] = {0};

		d->hooks[i].group_end(d->consumers[i].ctx, b, n, got);
		for (size_t k = 0; k < n; k++)
			fold(d, i, got[k], &rcs[k]);
	}
}

void vg_dispatch_tick(struct vg_dispatch *d, int64_t now_ms)
{
	for (int i = 0; i < d->n; i++)
		if (d->consumers[i].tick)
			d->consumers[i].tick(d->consumers[i].ctx, now_ms);
}
