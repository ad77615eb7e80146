/*
 * vigie — the rate card: what usage costs (billing/ratecard.c, documented
 * field by field in docs/billing.md).
 *
 * A JSON file: the currency and its minor unit digits, the minimum billed
 * length of a compute run, a list of global price sheets each valid from
 * a date, and per-project lists of sheets that override the global ones.
 * A sheet may set any subset of the prices; a later sheet inherits what it
 * does not set from the earlier sheets of the same list; a project's
 * effective prices at time t are the global sheets' effective prices at t
 * with the project's effective prices at t laid over them (per flavor,
 * per field; egress tiers are replaced as a whole).
 *
 * Every price is an exact decimal string ("0.0125") parsed into int64
 * micro-units; JSON numbers with a fraction are refused (they would pass
 * through a double). Loading validates everything and reports the first
 * problem as "PATH: $.prices[1].compute.vcpu_hour: must be ...".
 *
 * A loaded rate card is immutable: any number of threads may read it.
 */
#ifndef VIGIE_BILL_RATECARD_H
#define VIGIE_BILL_RATECARD_H

#include <stddef.h>
#include <stdint.h>

#define VG_BILL_RC_MAX_TIERS 16
#define VG_BILL_RC_MAX_SHEETS 256
#define VG_BILL_RC_DEFAULT_MIN_RUN_S 60
#define VG_BILL_GB 1000000000LL  /* network: 10^9 bytes */
#define VG_BILL_GIB 1073741824LL /* storage and RAM: 2^30 bytes */

struct vg_bill_rc_tier {
	int64_t up_to_bytes; /* cumulative upper bound in the month; -1 = none */
	int64_t price_micro; /* per GB */
};

struct vg_bill_rc_flavor {
	char *name;
	int64_t hour_micro; /* per instance-hour */
};

/* One sheet; has_* says which prices it sets. */
struct vg_bill_rc_sheet {
	int64_t valid_from_ms;
	size_t nflavors;
	struct vg_bill_rc_flavor *flavors;
	int has_vcpu_hour, has_ram_gib_hour, has_storage, has_egress,
		has_ingress;
	int64_t vcpu_hour_micro;         /* per vCPU-hour */
	int64_t ram_gib_hour_micro;      /* per GiB-of-RAM-hour */
	int64_t storage_gib_month_micro; /* per GiB-month */
	size_t ntiers;
	struct vg_bill_rc_tier tiers[VG_BILL_RC_MAX_TIERS];
	int64_t ingress_gb_micro; /* per GB received */
};

struct vg_bill_rc_list {
	size_t n;
	struct vg_bill_rc_sheet *sheets; /* strictly increasing valid_from_ms */
};

/* Who sends or receives an invoice. Every string may be NULL. */
#define VG_BILL_MAX_ADDRESS 6
struct vg_bill_party {
	char *name;                         /* legal name */
	char *address[VG_BILL_MAX_ADDRESS]; /* lines, naddress of them */
	size_t naddress;
	char *tax_id;    /* VAT number etc. */
	char country[3]; /* ISO 3166 alpha-2, "" unknown */
};

#define VG_BILL_MAX_TAX_RATES 64
struct vg_bill_rc_tax {
	char country[3];    /* ISO 3166 alpha-2, or "*" for any other */
	int64_t rate_micro; /* 200000 = 20 % */
};

/* The issuer of invoices ("issuer" in the card). */
struct vg_bill_rc_issuer {
	struct vg_bill_party party;
	char *number_prefix;    /* invoice numbers: prefix + sequence */
	int number_digits;      /* the sequence zero-padded to this width */
	int payment_terms_days; /* due date = issue date + this */
	size_t ntax;
	struct vg_bill_rc_tax tax[VG_BILL_MAX_TAX_RATES]; /* per country */
};

/* A project's billing profile: with one, its documents are invoices. */
struct vg_bill_rc_profile {
	struct vg_bill_party party;
	int has_tax_rate; /* the project's own rate beats the country's */
	int64_t tax_rate_micro;
	char *tax_note;         /* e.g. "VAT reverse charge", may be NULL */
	int payment_terms_days; /* -1: the issuer's */
};

struct vg_bill_rc_project {
	char *project;
	struct vg_bill_rc_list list;        /* may be empty (n = 0) */
	struct vg_bill_rc_profile *profile; /* NULL: none */
};

struct vg_bill_ratecard {
	char currency[4];   /* ISO 4217 code, "EUR" */
	int digits;         /* minor unit digits, 0..6 */
	int64_t min_run_ms; /* minimum billed length of a compute run */
	struct vg_bill_rc_list global;
	size_t nprojects;
	struct vg_bill_rc_project *projects; /* sorted by project */
	struct vg_bill_rc_issuer *issuer;    /* NULL: usage statements only */
};

/* The prices in force for one project at one time (views into the card,
 * valid while it lives). A field whose has_* is 0 is not priced. */
struct vg_bill_prices {
	const struct vg_bill_ratecard *rc;
	const struct vg_bill_rc_list *plist; /* the project's list or NULL */
	ptrdiff_t gi, pi;                    /* sheets in force (-1: none yet) */
	int64_t from_ms;                     /* these prices hold on [from_ms, until_ms) */
	int64_t until_ms;                    /* next valid_from of either list, or INT64_MAX */
	int has_vcpu_hour, has_ram_gib_hour, has_storage, has_egress,
		has_ingress;
	int64_t vcpu_hour_micro, ram_gib_hour_micro, storage_gib_month_micro,
		ingress_gb_micro;
	size_t ntiers;
	const struct vg_bill_rc_tier *tiers;
};

/* Load and validate a rate card file. On success *out is a new card
 * (free with vg_bill_ratecard_free). On error returns -EINVAL (invalid
 * content), -ENOENT/-EACCES (cannot read) or -ENOMEM, with one line in
 * err naming the file and the JSON path ("rc.json: $.currency: must be
 * a 3-letter ISO 4217 code such as \"EUR\"") or for a syntax error the
 * line and column ("rc.json:4:17: ..."). */
int vg_bill_ratecard_load(const char *path, struct vg_bill_ratecard **out, char *err,
			  size_t errlen);

/* Same from text; `name` stands for the path in messages. */
int vg_bill_ratecard_parse(const char *text, size_t len, const char *name,
			   struct vg_bill_ratecard **out, char *err, size_t errlen);

void vg_bill_ratecard_free(struct vg_bill_ratecard *rc); /* accepts NULL */

/* The effective prices of project (NULL: none of its own) at t_ms. */
void vg_bill_ratecard_prices(const struct vg_bill_ratecard *rc, const char *project,
			     int64_t t_ms, struct vg_bill_prices *out);

/* The billing profile of project, or NULL. */
const struct vg_bill_rc_profile *vg_bill_ratecard_profile(const struct vg_bill_ratecard *rc,
							  const char *project);

/* The tax rate for a customer with profile pf: the profile's own, else the
 * issuer's rate for the profile's country, else the issuer's "*" rate.
 * 1 and *rate_micro set if one applies, 0 if none. */
int vg_bill_ratecard_tax_rate(const struct vg_bill_ratecard *rc,
			      const struct vg_bill_rc_profile *pf, int64_t *rate_micro);

/* The per-hour price of flavor under p: 0, or -ENOENT if neither the
 * project's nor the global sheets in force name it. */
int vg_bill_prices_flavor(const struct vg_bill_prices *p, const char *flavor,
			  int64_t *hour_micro);

#endif
