/*
 * api_invoices.c — GET /v1/invoices and POST /v1/invoices/finalize.
 *
 *   GET /v1/invoices?month=2026-10&project=acme[&format=json|csv|html]
 *       one project's invoice: the frozen document of a finalized month,
 *       else a draft computed now (with adjustments for late usage of
 *       earlier finalized months). csv and html are rendered from the
 *       same invoice.
 *   GET /v1/invoices?month=2026-10
 *       every project's invoice of the month, summarised (JSON only; a
 *       project-scoped token lists its own project only).
 *   POST /v1/invoices/finalize?month=2026-10
 *       freeze the month (docs/billing.md); refused to project-scoped
 *       tokens.
 *
 * Scope: a request scoped to a project (req->scope_project) sees only
 * that project's invoice; asking for another is a 404, as for resources.
 * Each request opens its own billing database connection (the rate card
 * is shared read-only).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/api/api_handlers.h"
#include "vigie/bill_invoice.h"
#include "vigie/bill_service.h"
#include "vigie/clock.h"
#include "vigie/log.h"
#include "vigie/name.h"

static uint64_t g_db_errors;

static int open_db(const struct vg_bill_service *svc, struct vg_http_resp *resp,
		   struct vg_db **db)
{
	char err[512];

	*db = NULL;
	if (!svc || !svc->rc)
		return vg_http_reply_error(resp, 503, "billing is not configured: "
						      "set [billing] ratecard in the "
						      "collector's configuration"),
		       -1;
	if (vg_bill_service_db(svc, db, err, sizeof(err))) {
		vg_log_limited(VG_LOG_WARN, &g_db_errors, "api: billing: %s", err);
		return vg_http_reply_error(resp, 503, "billing database unavailable, "
						      "retry shortly"),
		       -1;
	}
	return 0;
}

static uint64_t g_range_errors;

/* The JSON error object of an invoice past VG_BILL_MONEY_MAX, named by g
 * (month ms if g has none); logged once then every 1000th. NULL on out of
 * memory, msg filled either way. */
static json_t *range_error(const struct vg_bill_range *g, const char *ms, char *msg,
			   size_t len)
{
	const char *month = g->month[0] ? g->month : ms;

	snprintf(msg, len,
		 "an invoice of %s cannot be computed: project %s, resource %s, line "
		 "%s %s (%s): %s past 10^12 currency units, more than vigie bills; a "
		 "price of the rate card or a usage reported is implausible: fix the "
		 "card, or the usage of that resource",
		 month, g->project, g->resource, g->usage_type, g->item, g->unit,
		 g->sum ? "with it the invoice's lines come" : "its amount comes");
	vg_log_limited(VG_LOG_WARN, &g_range_errors,
		       "api: billing: %s: an invoice of project %s past 10^12 currency "
		       "units at resource %s, line %s %s (%s): check the rate card's "
		       "prices ([billing] ratecard) and the usage the agents report "
		       "(vCPUs, memory, disk sizes)",
		       month, g->project, g->resource, g->usage_type, g->item, g->unit);
	json_t *e = json_object();
	if (!e)
		return NULL;
	json_object_set_new(e, "code", json_integer(422));
	json_object_set_new(e, "message", json_string(msg));
	json_object_set_new(e, "reason", json_string("amount_out_of_range"));
	json_object_set_new(e, "month", json_string(month));
	json_object_set_new(e, "project", json_string(g->project));
	json_object_set_new(e, "resource", json_string(g->resource));
	json_object_set_new(e, "usage_type", json_string(g->usage_type));
	json_object_set_new(e, "item", json_string(g->item));
	json_object_set_new(e, "unit", json_string(g->unit));
	json_object_set_new(e, "sum", json_boolean(g->sum));
	return e;
}

static uint64_t g_withheld;

uint64_t vg_api_invoices_withheld(void)
{
	return __atomic_load_n(&g_withheld, __ATOMIC_RELAXED);
}

/* After a computation of month m's invoices that succeeded: adjustments
 * billing withheld (late usage of a finalized month past 10^12 currency
 * units, vg_bill_withheld_last) are in their invoices' warnings; the
 * operator hears of them here, logged once then every 1000th answer that
 * withheld any (counted: vigie_billing_adjustments_withheld_total). */
static void note_withheld(struct vg_bill_month m)
{
	const struct vg_bill_withheld *w = vg_bill_withheld_last();
	const struct vg_bill_range *g = &w->first;
	char ms[16];

	if (!w->n)
		return;
	vg_bill_month_format(m, ms, sizeof(ms));
	vg_log_limited(VG_LOG_WARN, &g_withheld,
		       "api: billing: %s: %zu adjustment%s of late usage withheld, not "
		       "billed (named in the invoices' warnings), first: project %s, "
		       "adjustment for %s, resource %s, line %s %s (%s) past 10^12 "
		       "currency units: check the rate card's prices ([billing] "
		       "ratecard) and the usage the agents report; each later draft "
		       "bills it once fixed",
		       ms, w->n, w->n == 1 ? "" : "s", g->project, g->month, g->resource,
		       g->usage_type, g->item, g->unit);
}

/* A billing error as an answer. -ERANGE: an amount of an invoice of
 * month m (of project, or of one of the month's projects) cannot be
 * represented: a line, or the lines together, past VG_BILL_MONEY_MAX
 * (vg_bill_invoice_totals), from a price of the rate card or a usage
 * stored before billing refused implausible ones. Not a server fault but
 * the data's, the operator's to fix: 422, naming the month, project,
 * resource and line (vg_bill_range_last), logged once then every 1000th.
 * Every other project's invoice is computed apart and unaffected (the
 * month's list answers them, with an error entry for this one). An
 * adjustment of late usage past the bound is not an error: it is
 * withheld (note_withheld). */
static int bill_reply_errno(struct vg_http_resp *resp, int rc, const char *what,
			    struct vg_bill_month m)
{
	char ms[16], msg[1024];

	if (rc != -ERANGE)
		return vg_api_reply_errno(resp, rc, what);
	vg_bill_month_format(m, ms, sizeof(ms));
	json_t *e = range_error(vg_bill_range_last(), ms, msg, sizeof(msg));
	json_t *o = e ? json_object() : NULL;
	int r;

	if (!o) {
		json_decref(e);
		r = vg_http_reply_error(resp, 422, "%s", msg);
	} else {
		json_object_set_new(o, "error", e);
		r = vg_http_reply_json(resp, 422, o);
	}
	/* range_error logged it (at warn, with what to check): not the
	 * server's "http: rejected" line as well */
	resp->logged = 1;
	return r;
}

static int month_param(struct vg_http_req *req, struct vg_http_resp *resp,
		       struct vg_bill_month *m)
{
	const char *v = vg_http_param(req, "month");
	if (!v)
		return vg_http_reply_error(resp, 400, "missing parameter 'month' "
						      "(a UTC month such as 2026-10)"),
		       -1;
	switch (vg_bill_month_parse(v, m)) {
	case 0:
		return 0;
	case -ERANGE:
		return vg_http_reply_error(resp, 400, "month '%.32s' out of range (1970-01 "
						      "to 9999-11: a month's end must be a "
						      "time up to 9999-12-31T23:59:59Z)",
					   v),
		       -1;
	default:
		return vg_http_reply_error(resp, 400, "bad month '%.32s' (YYYY-MM, "
						      "for example 2026-10)",
					   v),
		       -1;
	}
}

/* The month's list. A project whose invoice cannot be represented does
 * not hide the others: the answer is 200 with the others' invoices and,
 * in project order among them, an entry {"project", "project_name",
 * "error": {...}} carrying the same error object as that project's 422
 * (project_name as in the others' entries: the reported name or null). */
static int list(struct vg_db *db, const struct vg_bill_service *svc,
		struct vg_bill_month m, const char *project, struct vg_http_resp *resp)
{
	struct vg_bill_invoice **inv;
	struct vg_bill_range *broken;
	size_t n, nbroken, b = 0;
	char ms[16], buf[48], msg[1024];
	int rc = vg_bill_invoices_each(db, svc->rc, m, project, &inv, &n, &broken, &nbroken);

	if (rc)
		return bill_reply_errno(resp, rc, "invoices", m);
	note_withheld(m);
	vg_bill_month_format(m, ms, sizeof(ms));
	json_t *root = json_object(), *arr = json_array();
	json_object_set_new(root, "month", json_string(ms));
	json_object_set_new(root, "status", json_string(vg_bill_is_final(db, m) == 1 ? "final" : "draft"));
	for (size_t i = 0; i <= n; i++) {
		/* the broken projects before this invoice's (both sorted) */
		for (; b < nbroken && (i == n || strcmp(broken[b].project, inv[i]->project) < 0); b++) {
			json_t *o = json_object();
			json_object_set_new(o, "project", json_string(broken[b].project));
			json_object_set_new(o, "project_name",
					    broken[b].project_name[0]
						    ? json_string(broken[b].project_name)
						    : json_null());
			json_object_set_new(o, "error", range_error(&broken[b], ms, msg, sizeof(msg)));
			json_array_append_new(arr, o);
		}
		if (i == n)
			break;
		json_t *o = json_object();
		json_object_set_new(o, "project", json_string(inv[i]->project));
		json_object_set_new(o, "project_name", inv[i]->project_name ? json_string(inv[i]->project_name) : json_null());
		json_object_set_new(o, "invoice", json_string(inv[i]->number));
		json_object_set_new(o, "currency", json_string(inv[i]->currency));
		json_object_set_new(o, "lines", json_integer((json_int_t)inv[i]->nlines));
		json_object_set_new(o, "total", json_string(vg_bill_money_format(inv[i]->total_micro, inv[i]->digits, buf, sizeof(buf))));
		/* its warnings (unpriced usage, withheld adjustments): how many */
		json_object_set_new(o, "warnings", json_integer((json_int_t)inv[i]->nwarnings));
		json_array_append_new(arr, o);
		vg_bill_invoice_free(inv[i]);
	}
	free(inv);
	free(broken);
	json_object_set_new(root, "invoices", arr);
	return vg_http_reply_json(resp, 200, root);
}

/* A project name as a part of a file name in a header: a project may
 * hold '"', ';' or any UTF-8, which would end the quoted filename and add
 * parameters of the caller's choosing ('x"; filename=evil.exe'); every
 * byte but [A-Za-z0-9._-] becomes '_'. */
static const char *file_name_part(const char *s, char *out, size_t len)
{
	size_t i = 0;

	for (; *s && i + 1 < len; s++) {
		char c = *s;
		int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
		out[i++] = keep ? c : '_';
	}
	out[i] = '\0';
	return out;
}

int vg_api_invoices_answer(const struct vg_bill_service *svc,
			   struct vg_http_req *req, struct vg_http_resp *resp)
{
	const char *project = vg_http_param(req, "project");
	const char *fmt_s = vg_http_param(req, "format");
	struct vg_bill_month m;
	struct vg_db *db;
	char *body;
	size_t len;
	int fmt, rc;

	if (month_param(req, resp, &m))
		return 0;
	fmt = vg_bill_invoice_format_parse(fmt_s);
	if (fmt < 0)
		return vg_http_reply_error(resp, 400, "bad format '%.32s' (json, csv "
						      "or html)",
					   fmt_s);
	if (project && (!*project || !vg_name_valid(project)))
		return vg_http_reply_error(resp, 400, "bad project");
	if (req->scope_project && project && strcmp(project, req->scope_project))
		return vg_http_reply_error(resp, 404, "no invoice for project '%s'",
					   project);
	if (!project && fmt != VG_BILL_FMT_JSON)
		return vg_http_reply_error(resp, 400, "format '%s' needs a project",
					   fmt_s);
	if (open_db(svc, resp, &db))
		return 0;
	if (!project) { /* the list: a scoped token lists its project only */
		rc = list(db, svc, m, req->scope_project, resp);
		vg_db_close(db);
		return rc;
	}
	rc = vg_bill_invoice_text(db, svc->rc, m, project, fmt, &body, &len);
	vg_db_close(db);
	if (rc == -ENOENT)
		return vg_http_reply_error(resp, 404, "no invoice for project '%s' "
						      "in finalized month %s",
					   project,
					   vg_http_param(req, "month"));
	if (rc)
		return bill_reply_errno(resp, rc, "invoice", m);
	note_withheld(m);
	vg_http_reply_raw(resp, 200, vg_bill_invoice_format_mime(fmt), body, len);
	if (fmt != VG_BILL_FMT_JSON) {
		char fname[61];
		vg_http_resp_header(resp, "Content-Disposition",
				    "inline; filename=\"invoice-%s-%s.%s\"",
				    vg_http_param(req, "month"),
				    file_name_part(project, fname, sizeof(fname)),
				    fmt == VG_BILL_FMT_CSV ? "csv" : "html");
	}
	/* The HTML is served from the console's origin, where the console
	 * keeps its token: whatever a tenant's names could smuggle into it
	 * runs nothing and reaches nothing (a sandbox is its own origin). */
	if (fmt == VG_BILL_FMT_HTML)
		vg_http_resp_header(resp, "Content-Security-Policy",
				    "default-src 'none'; style-src 'unsafe-inline'; "
				    "frame-ancestors 'none'; sandbox");
	return 0;
}

int vg_api_finalize_answer(const struct vg_bill_service *svc,
			   struct vg_http_req *req, struct vg_http_resp *resp)
{
	struct vg_bill_month m;
	struct vg_db *db;
	size_t n;
	char ms[16];
	int rc;

	if (req->scope_project)
		return vg_http_reply_error(resp, 403, "a project-scoped token cannot "
						      "finalize a month");
	if (month_param(req, resp, &m) || open_db(svc, resp, &db))
		return 0;
	rc = vg_bill_finalize(db, svc->rc, m, req->now_ms ? req->now_ms : vg_now_ms(), &n);
	vg_db_close(db);
	vg_bill_month_format(m, ms, sizeof(ms));
	if (rc == -EALREADY)
		return vg_http_reply_error(resp, 409, "%s is already finalized", ms);
	if (rc == -EINVAL)
		return vg_http_reply_error(resp, 400, "%s has not ended yet", ms);
	if (rc)
		return bill_reply_errno(resp, rc, "invoices", m);
	note_withheld(m);
	vg_info("billing: finalized %s: %zu invoice%s", ms, n, n == 1 ? "" : "s");
	json_t *o = json_object();
	json_object_set_new(o, "month", json_string(ms));
	json_object_set_new(o, "status", json_string("final"));
	json_object_set_new(o, "invoices", json_integer((json_int_t)n));
	return vg_http_reply_json(resp, 200, o);
}

int vg_api_h_invoices(struct vg_http_req *req, struct vg_http_resp *resp)
{
	return vg_api_invoices_answer(vg_api_billing(req->ctx), req, resp);
}

int vg_api_h_invoices_finalize(struct vg_http_req *req, struct vg_http_resp *resp)
{
	return vg_api_finalize_answer(vg_api_billing(req->ctx), req, resp);
}
