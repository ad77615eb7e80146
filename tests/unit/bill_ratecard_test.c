/*
 * bill_ratecard_test.c — rate card loading: every field validated with a
 * message naming the file and JSON path; inheritance between sheets;
 * project overrides; price spans for splitting lines.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "vigie/bill_ratecard.h"
#include "vigie/clock.h"

static int64_t T(const char *iso)
{
	int64_t ms;
	assert_int_equal(vg_time_parse(iso, 0, &ms), 0);
	return ms;
}

static const char good[] =
	"{\"currency\":\"EUR\",\"minor_unit_digits\":2,"
	"\"prices\":[{\"valid_from\":\"2026-01-01\","
	"  \"compute\":{\"flavors\":{\"m1.small\":\"0.02\",\"m1.large\":\"0.08\"},"
	"    \"vcpu_hour\":\"0.015\",\"ram_gib_hour\":\"0.005\"},"
	"  \"storage\":{\"gib_month\":\"0.10\"},"
	"  \"network\":{\"egress_gb\":[{\"up_to_gb\":1,\"price\":\"0\"},{\"price\":\"0.09\"}]}},"
	" {\"valid_from\":\"2026-10-16T00:00:00Z\",\"compute\":{\"flavors\":{\"m1.small\":\"0.03\"}}}],"
	"\"projects\":{\"beta\":{\"prices\":[{\"valid_from\":\"2026-10-20\","
	"  \"storage\":{\"gib_month\":\"0.05\"},\"compute\":{\"flavors\":{\"m1.large\":\"0.07\"}}}]}}}";

static void test_good(void **state)
{
	struct vg_bill_ratecard *rc;
	struct vg_bill_prices p;
	char err[256];
	int64_t h;
	(void)state;

	if (vg_bill_ratecard_parse(good, sizeof(good) - 1, "rc.json", &rc, err, sizeof(err)))
		fail_msg("%s", err);
	assert_string_equal(rc->currency, "EUR");
	assert_int_equal(rc->digits, 2);
	assert_int_equal(rc->min_run_ms, 60000);

	vg_bill_ratecard_prices(rc, "acme", T("2026-10-10T00:00:00Z"), &p);
	assert_int_equal(vg_bill_prices_flavor(&p, "m1.small", &h), 0);
	assert_int_equal(h, 20000);
	assert_int_equal(p.until_ms, T("2026-10-16T00:00:00Z"));
	assert_int_equal(p.from_ms, T("2026-01-01"));
	assert_int_equal(vg_bill_prices_flavor(&p, "c1.custom", &h), -ENOENT);
	assert_true(p.has_storage && p.storage_gib_month_micro == 100000);
	assert_int_equal(p.ntiers, 2);
	assert_int_equal(p.tiers[0].up_to_bytes, 1000000000LL);
	assert_int_equal(p.tiers[1].up_to_bytes, -1);
	assert_false(p.has_ingress);

	/* the second sheet inherits everything but m1.small */
	vg_bill_ratecard_prices(rc, "acme", T("2026-10-17T00:00:00Z"), &p);
	assert_int_equal(vg_bill_prices_flavor(&p, "m1.small", &h), 0);
	assert_int_equal(h, 30000);
	assert_int_equal(vg_bill_prices_flavor(&p, "m1.large", &h), 0);
	assert_int_equal(h, 80000);
	assert_int_equal(p.until_ms, INT64_MAX);

	/* beta's overrides from Oct 20 lie over the global sheets */
	vg_bill_ratecard_prices(rc, "beta", T("2026-10-17T00:00:00Z"), &p);
	assert_int_equal(p.until_ms, T("2026-10-20"));
	assert_int_equal(p.storage_gib_month_micro, 100000);
	vg_bill_ratecard_prices(rc, "beta", T("2026-10-21T00:00:00Z"), &p);
	assert_int_equal(p.storage_gib_month_micro, 50000);
	assert_int_equal(vg_bill_prices_flavor(&p, "m1.large", &h), 0);
	assert_int_equal(h, 70000);
	assert_int_equal(vg_bill_prices_flavor(&p, "m1.small", &h), 0);
	assert_int_equal(h, 30000);
	assert_int_equal(p.from_ms, T("2026-10-20"));

	/* before every sheet: nothing priced */
	vg_bill_ratecard_prices(rc, "acme", T("2025-01-01"), &p);
	assert_false(p.has_storage);
	assert_int_equal(vg_bill_prices_flavor(&p, "m1.small", &h), -ENOENT);
	vg_bill_ratecard_free(rc);
}

/* The card with `from` replaced by `to` must fail with `want` in the
 * message. */
static void bad_case(const char *from, const char *to, const char *want)
{
	char text[4096], err[512];
	struct vg_bill_ratecard *rc = NULL;
	const char *p = strstr(good, from);

	assert_non_null(p);
	snprintf(text, sizeof(text), "%.*s%s%s", (int)(p - good), good, to,
		 p + strlen(from));
	int r = vg_bill_ratecard_parse(text, strlen(text), "rc.json", &rc, err, sizeof(err));
	if (r != -EINVAL || !strstr(err, want))
		fail_msg("replacing %s by %s: rc %d, message '%s', wanted '%s'", from,
			 to, r, err, want);
	assert_null(rc);
}

static void test_errors_name_the_field(void **state)
{
	(void)state;
	bad_case("\"EUR\"", "\"euro\"", "rc.json: $.currency: invalid: must be a 3-letter ISO 4217 code");
	bad_case("\"minor_unit_digits\":2", "\"minor_unit_digits\":7", "$.minor_unit_digits: must be an integer from 0 to 6");
	bad_case("\"m1.small\":\"0.02\"", "\"m1.small\":0.02",
		 "$.prices[0].compute.flavors[\"m1.small\"]: must be a decimal string");
	bad_case("\"m1.small\":\"0.02\"", "\"m1.small\":\"0.0200001\"",
		 "$.prices[0].compute.flavors[\"m1.small\"]: \"0.0200001\": at most 6 decimals");
	bad_case("\"vcpu_hour\":\"0.015\"", "\"vcpu_hour\":\"-1\"",
		 "$.prices[0].compute.vcpu_hour: \"-1\" is not a non-negative decimal");
	bad_case("\"gib_month\":\"0.10\"", "\"gib_monthly\":\"0.10\"",
		 "$.prices[0].storage.gib_monthly: unknown key (expected one of: gib_month)");
	bad_case("{\"up_to_gb\":1,\"price\":\"0\"}", "{\"up_to_gb\":1}",
		 "$.prices[0].network.egress_gb[0]: missing \"price\"");
	bad_case("{\"price\":\"0.09\"}", "{\"up_to_gb\":5,\"price\":\"0.09\"}",
		 "$.prices[0].network.egress_gb[1]: the last tier has no \"up_to_gb\"");
	bad_case("{\"up_to_gb\":1,\"price\":\"0\"},{\"price\":\"0.09\"}",
		 "{\"up_to_gb\":5,\"price\":\"0\"},{\"up_to_gb\":5,\"price\":\"0\"},{\"price\":\"0.09\"}",
		 "$.prices[0].network.egress_gb[1].up_to_gb: must be greater than the previous tier's (5)");
	bad_case("\"2026-10-16T00:00:00Z\"", "\"2025-10-16T00:00:00Z\"",
		 "$.prices[1].valid_from: must be later than the previous sheet's");
	bad_case("\"2026-10-16T00:00:00Z\"", "\"yesterday\"",
		 "$.prices[1].valid_from: must be a date such as");
	bad_case("{\"valid_from\":\"2026-10-20\",", "{",
		 "$.projects[\"beta\"].prices[0].valid_from: missing");
	bad_case("\"currency\":\"EUR\",", "\"currency\":\"EUR\",\"currency\":\"USD\",",
		 "rc.json:1:");
	bad_case("\"projects\"", "\"project\"", "$.project: unknown key");
	/* issuer and billing profiles name their fields too */
	bad_case("\"projects\"", "\"issuer\":{\"name\":\"X\",\"tax_rates\":{\"FR\":\"1.5\"}},\"projects\"",
		 "$.issuer.tax_rates[\"FR\"]: a tax rate is a fraction from 0 to 1");
	bad_case("\"projects\"", "\"issuer\":{\"address\":[]},\"projects\"",
		 "$.issuer.name: missing: the legal name");
	bad_case("\"projects\"", "\"issuer\":{\"name\":\"X\",\"country\":\"France\"},\"projects\"",
		 "$.issuer.country: must be an ISO 3166 alpha-2 country code");
	bad_case("\"projects\":{", "\"projects\":{\"p9\":{\"billing_profile\":{\"name\":\"P\",\"vat\":\"1\"}},",
		 "$.projects[\"p9\"].billing_profile.vat: unknown key");
}

static void test_load_file(void **state)
{
	struct vg_bill_ratecard *rc;
	char err[512];
	(void)state;
	assert_int_equal(vg_bill_ratecard_load("tests/fixtures/billing/ratecard.json", &rc, err,
					       sizeof(err)),
			 0);
	assert_int_equal(rc->global.n, 2);
	assert_int_equal(rc->nprojects, 1);
	vg_bill_ratecard_free(rc);
	assert_int_equal(vg_bill_ratecard_load("/nonexistent/rc.json", &rc, err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/rc.json: cannot read the rate card"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_errors_name_the_field),
		cmocka_unit_test(test_load_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
