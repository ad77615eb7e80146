/*
 * service.c — what the collector keeps for billing while it runs: the
 * rate card (immutable after loading, so API threads share it) and where
 * the billing database is (each request opens its own connection: they
 * are single-threaded; sqlite's WAL lets readers run beside the meter's
 * writes, PostgreSQL's MVCC does the same).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "vigie/bill_meter.h"
#include "vigie/bill_service.h"

int vg_bill_service_open(const char *data_dir, const char *state_url,
			 const char *ratecard_path,
			 struct vg_bill_service **out, char *err, size_t errlen)
{
	struct vg_bill_service *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	vg_bill_db_url(data_dir, state_url, s->db_url, sizeof(s->db_url));
	if (ratecard_path && *ratecard_path &&
	    (rc = vg_bill_ratecard_load(ratecard_path, &s->rc, err, errlen))) {
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void vg_bill_service_close(struct vg_bill_service *s)
{
	if (!s)
		return;
	vg_bill_ratecard_free(s->rc);
	free(s);
}

int vg_bill_service_db(const struct vg_bill_service *s, struct vg_db **out,
		       char *err, size_t errlen)
{
	return vg_bill_db_open(s->db_url, out, err, errlen);
}
