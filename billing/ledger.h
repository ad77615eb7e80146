/*
 * vigie — a usage ledger: a month of instances, disks, vNICs and lifecycle
 * events written by hand as text, with the invoice lines it must produce
 * (billing/ledger.c; the format is described at the top of
 * tests/fixtures/billing/ledger-2026-10.txt and in docs/billing.md).
 *
 * The ledger turns into real vg_batch objects, one per "poll" line (the
 * events written before a poll travel in its batch, as the agent sends
 * them), so the same month can be fed to the meter directly (unit tests)
 * or over the wire to a running collector (bench/billing_replay). Its
 * "expect"/"total"/"lines" records are checked against computed invoices.
 *
 * A ledger owns its batches. Not thread-safe per object.
 */
#ifndef VIGIE_BILL_LEDGER_H
#define VIGIE_BILL_LEDGER_H

#include <stddef.h>
#include <stdio.h>

#include "vigie/batch.h"
#include "vigie/bill_invoice.h"

struct vg_bill_ledger_expect {
	int kind; /* 'e' line, 't' total, 'n' line count, 'x' the
				document: item is what ("document", "tax",
				"due", "instance", "service"), resource its
				argument, rate/amount what is expected */
	struct vg_bill_month month;
	char *project;
	char *resource, *item, *rate, *quantity, *amount; /* 'e' */
	size_t nlines;                                    /* 'n' */
	int lineno;
};

/* A month finalized once the first `after` batches are applied, with the
 * rate card in force at that point of the file. */
struct vg_bill_ledger_final {
	size_t after;
	struct vg_bill_month month;
	int64_t at_ms;
	char *ratecard;
};

struct vg_bill_ledger {
	char *ratecard; /* path of the rate card (resolved) */
	char *host;
	size_t nbatches;
	struct vg_batch **batches;
	size_t nexpect;
	struct vg_bill_ledger_expect *expect;
	size_t nfinal;
	struct vg_bill_ledger_final *final;
};

/* Parse a ledger file. 0, or -EINVAL/-ENOENT/-ENOMEM with "FILE:LINE:
 * reason" in err. */
int vg_bill_ledger_load(const char *path, struct vg_bill_ledger **out, char *err,
			size_t errlen);
void vg_bill_ledger_free(struct vg_bill_ledger *l); /* accepts NULL */

/* Months that have expectations (distinct, sorted) into out[max]. */
size_t vg_bill_ledger_months(const struct vg_bill_ledger *l, struct vg_bill_month *out,
			     size_t max);

/* Check month m's invoices (any order) against the ledger. Writes one line
 * per mismatch to report (may be NULL) and returns the number of
 * mismatches (0: every expectation holds). */
int vg_bill_ledger_check(const struct vg_bill_ledger *l, struct vg_bill_month m,
			 struct vg_bill_invoice *const *inv, size_t n, FILE *report);

#endif
