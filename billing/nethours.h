/*
 * nethours.h — a network line's quantity hour by hour (billing/invoice.c),
 * for billing/finalize.c only: what names the hours an adjustment of a
 * network line changed.
 *
 * An invoice line of network usage sums one vNIC's bytes over a month in
 * one tier (egress tiers fill in time order per project), so it keeps one
 * piece over its hours; its adjustment needs the hours themselves. The
 * same pricing as vg_bill_invoice_compute, kept per hour instead of summed
 * per line: each hour's quantity per line key, with the vNIC's measured
 * bytes that hour (tx for egress, rx for ingress), so a changed hour can
 * be told apart as late usage or as a tier filled differently.
 *
 * A vg_bill_net_hours owns what it points to. Not thread-safe per object.
 */
#ifndef VIGIE_BILL_NETHOURS_H
#define VIGIE_BILL_NETHOURS_H

#include <stddef.h>
#include <stdint.h>

#include "vigie/bill_invoice.h"

struct vg_bill_net_hour {
	size_t key;       /* index in keys */
	int64_t hour_ms;  /* start of the UTC hour */
	vg_bill_u128 qty; /* base units (bytes) of the line in that hour */
	int64_t bytes;    /* the vNIC's measured bytes that hour */
	size_t res;       /* the vNIC, in the usage priced */
	int ut;           /* VG_BILL_UT_EGRESS or VG_BILL_UT_INGRESS */
};

struct vg_bill_net_hours {
	size_t nkeys;
	char **keys; /* line keys ("n-web|network-egress|egress-tier-2|0.09"), sorted */
	size_t n;
	struct vg_bill_net_hour *h; /* by key, then hour */
};

/* Price the network usage of u (month m, one project) hour by hour.
 * *out is overwritten. 0 or -ENOMEM. */
int vg_bill_net_hours(const struct vg_bill_usage *u, const struct vg_bill_ratecard *rc,
		      struct vg_bill_month m, const char *project, struct vg_bill_net_hours *out);

/* Free what h owns and zero it. Accepts zeroed. */
void vg_bill_net_hours_clear(struct vg_bill_net_hours *h);

#endif
