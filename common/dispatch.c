/*
 * dispatch.c — hands each accepted batch to every consumer, in order.
 *
 * The receiver knows only this interface; the registry, the RRD store, the
 * billing meter, the alarm engine and the live stream's publisher are
 * registered here by the collector's main.c. The
 * acknowledgement rule lives in include/vigie/dispatch.h.
 */
#include <errno.h>
#include <string.h>

#include "vigie/dispatch.h"

void vg_dispatch_init(struct vg_dispatch *d)
{
	memset(d, 0, sizeof(*d));
}

int vg_dispatch_add(struct vg_dispatch *d, const struct vg_consumer *c)
{
	if (d->n >= VG_DISPATCH_MAX)
		return -ENOSPC;
	d->consumers[d->n++] = *c;
	return 0;
}

int vg_dispatch_batch(struct vg_dispatch *d, const struct vg_batch *b)
{
	int first_err = 0;

	for (int i = 0; i < d->n; i++) {
		int rc = d->consumers[i].batch(d->consumers[i].ctx, b);
		if (rc == -EAGAIN)
			return -EAGAIN;
		if (rc < 0) {
			d->errors[i]++;
			if (!first_err)
				first_err = rc;
		}
	}
	return first_err;
}

void vg_dispatch_tick(struct vg_dispatch *d, int64_t now_ms)
{
	for (int i = 0; i < d->n; i++)
		if (d->consumers[i].tick)
			d->consumers[i].tick(d->consumers[i].ctx, now_ms);
}
