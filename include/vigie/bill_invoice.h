/*
 * vigie — invoices: computing them from usage and a rate card
 * (billing/invoice.c), rendering them (billing/render.c) and freezing them
 * (billing/finalize.c).
 *
 * An invoice is one project's charges for one UTC month: line items
 * (resource id and name, usage type, item, description, usage start and
 * end, quantity and unit, rate, amount), subtotals per usage type and the
 * total. Each line aggregates every interval of one resource, usage type,
 * item and rate in the month; its amount is computed once from the exact
 * quantity (integer base units) and rounded half-up to the currency's
 * minor unit; the total is the sum of the rounded lines. Documented in
 * docs/billing.md.
 *
 * An invoice owns all its strings. Not thread-safe per object.
 */
#ifndef VIGIE_BILL_INVOICE_H
#define VIGIE_BILL_INVOICE_H

#include <stddef.h>
#include <stdint.h>

#include "vigie/db.h"

#include "vigie/bill.h"
#include "vigie/bill_ratecard.h"
#include "vigie/bill_usage.h"

enum vg_bill_usage_type {
	VG_BILL_UT_COMPUTE = 0,
	VG_BILL_UT_STORAGE = 1,
	VG_BILL_UT_EGRESS = 2,
	VG_BILL_UT_INGRESS = 3,
	VG_BILL_UT_ADJUSTMENT = 4,
};
#define VG_BILL_UT_N 5

/* "compute", "storage", "network-egress", "network-ingress",
 * "adjustment"; NULL if out of range. */
const char *vg_bill_usage_type_name(int ut);
int vg_bill_usage_type_parse(const char *s); /* -EINVAL if unknown */

/* One stretch of time a line's quantity comes from, at a constant rate
 * of use (a run at one flavor, a disk at one size; a network line is one
 * piece over its hours). qty is in the line's base units. */
struct vg_bill_piece {
	int64_t start_ms, end_ms;
	vg_bill_u128 qty;
};

/* At most this many pieces are kept per line; a line with more keeps
 * none (its adjustments then name the span where the lines' spans differ). */
#define VG_BILL_MAX_PIECES 64

/* What an adjustment's slice of a network line is: hours whose measured
 * bytes changed (late usage), or hours whose bytes did not change but
 * fall in another egress tier now (usage that changed earlier in the
 * month filled the tiers before them). */
enum vg_bill_slice_why {
	VG_BILL_SLICE_USAGE = 0,
	VG_BILL_SLICE_TIER = 1,
};

/* One contiguous stretch of hours of a network line whose billed
 * quantity changed, by qty base units (qty_neg: fewer). */
struct vg_bill_slice {
	int64_t start_ms, end_ms;
	vg_bill_u128 qty;
	int qty_neg;
	int why; /* enum vg_bill_slice_why */
};

/* At most this many slices are listed on an adjustment line; more are
 * counted in the description, not listed. */
#define VG_BILL_MAX_SLICES 32

struct vg_bill_invoice_line {
	char *key; /* unique in the invoice: resource|type|item|rate */
	char *resource_id;
	char *resource_name; /* may be NULL */
	int usage_type;      /* enum vg_bill_usage_type */
	char *item;          /* "flavor:m1.small", "vcpu", "ram", "disk",
				 "root-disk", "egress-tier-2", "ingress",
				 "unpriced:..." */
	char *description;
	int64_t start_ms, end_ms; /* usage start and end within the month */
	vg_bill_u128 qty;         /* in base units (base_unit), magnitude */
	int qty_neg;              /* adjustment lines: the quantity is negative */
	vg_bill_u128 qty_den;     /* base units per billed unit */
	char *unit;               /* billed unit: "hour", "vCPU-hour", "GiB-hour",
				 "GiB-month", "GB" */
	char *base_unit;          /* "ms", "vCPU-ms", "MiB-ms", "byte-ms", "byte" */
	int64_t rate_micro;       /* price per billed unit */
	int64_t amount_micro;     /* rounded to the minor unit */
	char *adjusted_type;      /* adjustment lines: the usage type adjusted */
	char *adjustment_for;     /* adjustment lines: "2026-10" */
	int minimum_runs;         /* runs shorter than the minimum, billed at it */
	int64_t minimum_added_ms; /* time added by the minimum (in qty) */
	char *instance_id;        /* the instance the resource belongs to (itself
				 for an instance; NULL: resource_id) */
	char *instance_name;      /* its name, may be NULL */
	char *corrects;           /* adjustment lines: the number of the frozen
				 invoice corrected; NULL if the month had
				 none for this project */
	char *split;              /* why this line is apart from the one above it
				 (same resource and usage type): "price
				 change", "resize", "tier", "root disk";
				 NULL for the first */
	/* usage lines: the pieces the quantity is made of, in time order
	 * (npieces 0: not known, e.g. a document written before pieces
	 * were kept); adjustment lines: those of the corrected line after
	 * the correction, what a later adjustment is measured against */
	size_t npieces;
	struct vg_bill_piece *pieces;
	/* adjustment lines of network usage: the hours that changed, in
	 * time order, their quantities summing to the line's (nslices 0:
	 * not known; the line then spans from the first to the last change
	 * its pieces show) */
	size_t nslices;
	struct vg_bill_slice *slices;
};

/* What the document is (docs/billing.md "Invoices and usage statements"). */
enum vg_bill_doc {
	VG_BILL_DOC_STATEMENT = 0,   /* no billing profile: usage only */
	VG_BILL_DOC_INVOICE = 1,     /* a profile, total >= 0 */
	VG_BILL_DOC_CREDIT_NOTE = 2, /* a profile, total < 0 */
};

struct vg_bill_invoice {
	char *number; /* "2026-10-0001" (final), "DRAFT-2026-10-3f9a1c2e07"
				 (10 hex digits of SHA-256 over month and
				 project: no project id);
				 with an issuer's number_prefix, final
				 invoices and credit notes are prefix +
				 the issuer's sequence ("VC-000042") */
	char *project;
	char *project_name; /* the name people know it by; NULL if unknown */
	struct vg_bill_month month;
	char currency[4];
	int digits;
	int final;            /* 1 once finalized */
	int64_t finalized_ms; /* -1 for drafts */
	size_t nlines;
	struct vg_bill_invoice_line *lines;
	int64_t subtotal_micro[VG_BILL_UT_N];
	int64_t total_micro;
	size_t nwarnings;
	char **warnings; /* usage that had no price, etc. */
	/* the document (vg_bill_invoice_document) */
	int doc;                     /* enum vg_bill_doc */
	struct vg_bill_party issuer; /* owned copies; name NULL: none */
	struct vg_bill_party customer;
	int64_t issue_ms, due_ms; /* -1 until finalized (and statements) */
	int payment_terms_days;   /* -1: none */
	int has_tax;
	int64_t tax_rate_micro; /* 200000 = 20 % */
	int64_t tax_micro;      /* on the rounded total, rounded once */
	char *tax_note;
	int64_t amount_due_micro; /* total + tax */
	/* private */
	size_t caplines;
};

/* A new empty invoice (draft number, no lines). NULL on out of memory. */
struct vg_bill_invoice *vg_bill_invoice_new(const char *project, struct vg_bill_month m,
					    const struct vg_bill_ratecard *rc);
void vg_bill_invoice_free(struct vg_bill_invoice *inv); /* accepts NULL */

/* Append a copy of line (its strings are copied). 0 or -ENOMEM. */
int vg_bill_invoice_add_line(struct vg_bill_invoice *inv,
			     const struct vg_bill_invoice_line *line);
/* Add a warning (copied; duplicates and more than VG_BILL_MAX_WARNINGS
 * are dropped). 0 or -ENOMEM. */
#define VG_BILL_MAX_WARNINGS 32
int vg_bill_invoice_warn(struct vg_bill_invoice *inv, const char *msg);
/* Recompute subtotals and the total from the lines, then the tax (if
 * has_tax: round_half_up(|total| x rate) to the minor unit, with the
 * total's sign), the amount due, and for invoices whether it is a credit
 * note (total < 0). 0, or -ERANGE when the lines' amounts, added in
 * absolute value, pass VG_BILL_MONEY_MAX (10^12 currency units: prices
 * no real card holds; a line vg_bill_amount saturated is one): the
 * figures are then not to be shown (subtotals, total, tax and amount due
 * are left partial or zero). */
int vg_bill_invoice_totals(struct vg_bill_invoice *inv);

/* What the last -ERANGE of vg_bill_invoice_totals on this thread was
 * about (every function below that returns -ERANGE has it from there):
 * the invoice's month and project, and the line: its resource, usage
 * type, item and unit. sum = 0: that line's amount alone passes
 * VG_BILL_MONEY_MAX; 1: it is the line with which the lines' amounts,
 * added in absolute value, pass it. Thread-local (the API's threads each
 * compute their own invoices): valid until the thread's next -ERANGE;
 * zeroed (month "") before any. project_name: the name the agents report
 * for the project (vg_bill_names_fill), set only in the broken entries of
 * vg_bill_invoices_each; "" when none (a name is never empty). */
struct vg_bill_range {
	char month[16];
	char project[256];
	char project_name[256];
	char resource[256];
	char usage_type[32];
	char item[128];
	char unit[32];
	int sum;
};
const struct vg_bill_range *vg_bill_range_last(void);
/* Fill *g (zeroed first) for line l of project's invoice of month
 * ("YYYY-MM"; NULLs are ""); sum as in struct vg_bill_range. */
void vg_bill_range_set(struct vg_bill_range *g, const char *month, const char *project,
		       const struct vg_bill_invoice_line *l, int sum);

/* Adjustments withheld by the last draft computation on this thread
 * (vg_bill_invoices, vg_bill_invoices_each, vg_bill_invoice_from_db,
 * vg_bill_invoice_text of a draft, vg_bill_finalize): late usage of a
 * finalized month whose adjustment cannot be represented (its amount,
 * or with it the invoice's lines, past VG_BILL_MONEY_MAX) is left off
 * the draft, named in that invoice's warnings, and stays due: every
 * later draft computes it again until the card or the usage is fixed
 * (docs/billing.md, "Late usage that cannot be billed"). n: how many
 * (all projects together); first: the first of them, as a vg_bill_range
 * whose month is the month adjusted (F, not the draft's) and whose
 * usage_type is the adjusted line's. Thread-local; reset (n = 0) by each
 * such computation, valid until the thread's next one. */
struct vg_bill_withheld {
	size_t n;
	struct vg_bill_range first;
};
const struct vg_bill_withheld *vg_bill_withheld_last(void);

/* Make inv an invoice or credit note if rc gives its project a billing
 * profile (issuer and customer copied, tax rate, payment terms), else a
 * usage statement; then vg_bill_invoice_totals. 0, -ENOMEM or -ERANGE. */
int vg_bill_invoice_document(struct vg_bill_invoice *inv, const struct vg_bill_ratecard *rc);

/* Copy/free a party (strings duplicated). 0 or -ENOMEM. */
int vg_bill_party_copy(struct vg_bill_party *dst, const struct vg_bill_party *src);
void vg_bill_party_free(struct vg_bill_party *p);

/* Price the usage of month m for one project. *out always gets an
 * invoice (possibly without lines). 0, -ENOMEM, or -ERANGE (amounts past
 * VG_BILL_MONEY_MAX, see vg_bill_invoice_totals; *out stays NULL). */
int vg_bill_invoice_compute(const struct vg_bill_usage *u, const struct vg_bill_ratecard *rc,
			    struct vg_bill_month m, const char *project,
			    struct vg_bill_invoice **out);

/* Price every project with usage in u: *out is a malloc'd array of *n
 * invoices sorted by project (free each, then the array). A project's
 * invoice whose amounts pass VG_BILL_MONEY_MAX is there all the same,
 * its totals not computed: vg_bill_invoice_totals on it says -ERANGE
 * (one project's cannot fail the others'). */
int vg_bill_invoice_compute_all(const struct vg_bill_usage *u,
				const struct vg_bill_ratecard *rc, struct vg_bill_month m,
				struct vg_bill_invoice ***out, size_t *n);

/* ---- rendering (billing/render.c) ------------------------------------------- */

enum vg_bill_invoice_format {
	VG_BILL_FMT_JSON = 0,
	VG_BILL_FMT_CSV = 1,
	VG_BILL_FMT_HTML = 2,
};
int vg_bill_invoice_format_parse(const char *s); /* "json"/"csv"/"html" or -EINVAL */
const char *vg_bill_invoice_format_mime(int fmt);

/* Render inv. *out is malloc'd text (NUL-terminated, caller frees), *len
 * its length. Deterministic: the same invoice renders to the same bytes.
 * 0 or -ENOMEM. */
int vg_bill_invoice_render(const struct vg_bill_invoice *inv, int fmt, char **out,
			   size_t *len);

/* Read back what vg_bill_invoice_render wrote as JSON. 0, -EBADMSG, -ENOMEM. */
int vg_bill_invoice_from_json(const char *text, size_t len,
			      struct vg_bill_invoice **out);

/* ---- drafts, finalization, adjustments (billing/finalize.c) ---------------- */

/* The invoice of project for month m: the frozen one if m is finalized,
 * otherwise a draft computed now from the database, with adjustment lines
 * for late usage of earlier finalized months (see docs/billing.md).
 * -ENOENT if m is finalized and has no invoice for project; -ERANGE if a
 * draft's amounts pass VG_BILL_MONEY_MAX (vg_bill_invoice_totals). */
int vg_bill_invoice_from_db(struct vg_db *db, const struct vg_bill_ratecard *rc,
			    struct vg_bill_month m, const char *project,
			    struct vg_bill_invoice **out);

/* Same, as rendered text. For a finalized month the JSON is the stored
 * document itself (byte-identical on every call). */
int vg_bill_invoice_text(struct vg_db *db, const struct vg_bill_ratecard *rc,
			 struct vg_bill_month m, const char *project, int fmt,
			 char **out, size_t *len);

/* Finalize month m: compute every project's invoice (with adjustments),
 * number them "YYYY-MM-NNNN" in project order, store their JSON and mark
 * the month final, in one transaction. now_ms must be at or after the
 * month's end. *count gets the number of invoices. -EALREADY if already
 * final, -EINVAL if the month has not ended, -EAGAIN if busy, -ERANGE
 * (nothing stored) if an invoice's amounts pass VG_BILL_MONEY_MAX. */
int vg_bill_finalize(struct vg_db *db, const struct vg_bill_ratecard *rc,
		     struct vg_bill_month m, int64_t now_ms, size_t *count);

/* ---- project names (billing/names.c) ----------------------------------- */

/* Record that project is called name as of time_ms (kept only if newer
 * than what is stored and different). NULL or empty name: nothing. 0 or
 * -errno. Runs inside the caller's transaction if one is open. */
int vg_bill_names_put(struct vg_db *db, const char *project, const char *name,
		      int64_t time_ms);

/* Set project_name on each of the n invoices that has none, from the
 * table (no row: left NULL; the table is billing schema step 2). 0 or -errno. */
int vg_bill_names_fill(struct vg_db *db, struct vg_bill_invoice **inv, size_t n);

/* ---- invoice number sequences (billing/numbers.c) ------------------------ */

/* The next number of issuer's sequence (1, 2, ...), inside the caller's
 * transaction: it is used only if that transaction commits. 0 or -errno. */
int vg_bill_numbers_next(struct vg_db *db, const char *issuer, int64_t *out);

/* 1 if m is finalized, 0 if not, -errno. */
int vg_bill_is_final(struct vg_db *db, struct vg_bill_month m);

/* Every project's invoice of month m (project NULL), or one project's:
 * the frozen ones of a finalized month, else drafts with adjustments.
 * *out is a malloc'd array of *n invoices sorted by project (free each,
 * then the array). 0 or -errno. */
int vg_bill_invoices(struct vg_db *db, const struct vg_bill_ratecard *rc,
		     struct vg_bill_month m, const char *project,
		     struct vg_bill_invoice ***out, size_t *n);

/* The same, except that a draft whose amounts cannot be represented
 * (vg_bill_invoice_totals' -ERANGE) does not fail the others: it is left
 * out of *out and what is past (its vg_bill_range: month, project, line)
 * is in *broken, a malloc'd array of *nbroken sorted by project (free()
 * it; NULL when none). One broken project cannot hide the month's other
 * invoices from the operator. A finalized month has none broken. 0 or
 * -errno (then *out and *broken are NULL). */
int vg_bill_invoices_each(struct vg_db *db, const struct vg_bill_ratecard *rc,
			  struct vg_bill_month m, const char *project,
			  struct vg_bill_invoice ***out, size_t *n,
			  struct vg_bill_range **broken, size_t *nbroken);

#endif
