/*
 * vigie — billing as the collector serves it (billing/service.c): the rate
 * card loaded at start-up and where the billing database is (billing.db,
 * or the shared PostgreSQL of [state] url), shared read-only by the API's
 * worker threads (query/api/api_invoices.c), which each open their own
 * connection per request.
 */
#ifndef VIGIE_BILL_SERVICE_H
#define VIGIE_BILL_SERVICE_H

#include <stddef.h>

#include "vigie/db.h"

#include "vigie/bill_ratecard.h"

struct vg_bill_service {
	char db_url[1024];           /* vg_bill_db_url */
	struct vg_bill_ratecard *rc; /* NULL: no rate card configured */
};

/* Load the rate card (ratecard_path may be NULL or "": invoices are then
 * refused with a clear message) and note the database: state_url if set
 * and not empty, else <data_dir>/billing.db. 0 or -errno with a message
 * in err (the rate card's own message). */
int vg_bill_service_open(const char *data_dir, const char *state_url,
			 const char *ratecard_path,
			 struct vg_bill_service **out, char *err,
			 size_t errlen);
void vg_bill_service_close(struct vg_bill_service *s); /* accepts NULL */

/* A new database connection for this thread (vg_db_close it). */
int vg_bill_service_db(const struct vg_bill_service *s, struct vg_db **out,
		       char *err, size_t errlen);

#endif
