#!/usr/bin/env bash
# billing_pg_test.sh — billing_test.sh with the collector's billing state
# in a PostgreSQL server the test starts ([state] url): the hand-written
# ledger over the wire must give the same invoices, to the cent, and
# finalize the same way (skipped with the reason when PostgreSQL cannot
# run here).
BILLING_ENGINE=postgresql exec bash "$(dirname "$0")/billing_test.sh" "$@"
