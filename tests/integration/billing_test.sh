#!/usr/bin/env bash
# billing_test.sh — the hand-written ledger over the real wire protocol.
#
# The month of tests/fixtures/billing/ledger-2026-10.txt is replayed with
# its own timestamps into a running collector (bench/billing_replay sends
# each batch as an agent would and waits for its ack); the invoices the
# HTTP API and the CLI then give must match the hand-computed lines and
# totals of the ledger, to the cent (the same check the unit test makes
# on the meter directly). Then the month is finalized through the CLI and
# must re-render byte-identically; a bad rate card stops start-up with the
# file and JSON path named.
# With BILLING_ENGINE=postgresql (tests/integration/billing_pg_test.sh) the
# collector keeps billing in a PostgreSQL server this test starts
# ([state] url) instead of billing.db: the same checks must pass.
source "$(dirname "$0")/lib.sh"

LEDGER=$ROOT/tests/fixtures/billing/ledger-2026-10.txt
CARD=$ROOT/tests/fixtures/billing/ratecard.json
if ! bench_tool billing_replay; then
  skip "bench/billing_replay could not be built"
  done_testing
  exit 0
fi
REPLAY=$BENCH_TOOL

collector_ports
DATA=$TMP/data
printf '[billing]\nratecard = %s\n' "$CARD" >"$TMP/vigie.conf"
state_engine "${BILLING_ENGINE:-sqlite}" "$TMP/vigie.conf"
# API tokens: an admin token for everything below, and one
# scoped to project beta to check that it sees only beta's invoices.
ADMIN=$("$BIN/vigie-collector" --data-dir "$DATA" --config "$TMP/vigie.conf" token create --admin 2>/dev/null | tail -1)
BETA=$("$BIN/vigie-collector" --data-dir "$DATA" --config "$TMP/vigie.conf" token create --project beta 2>/dev/null | tail -1)
export VIGIE_TOKEN=$ADMIN
# curl with the admin token (or the one in $TOK)
acurl() { curl -sS --max-time 10 -H "Authorization: Bearer ${TOK:-$ADMIN}" "$@"; }
acode() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "Authorization: Bearer ${TOK:-$ADMIN}" "$@"; }

check "collector up with the rate card" start_api_collector collector --config "$TMP/vigie.conf" \
  --data-dir "$DATA"

check "ledger replayed over the wire, every batch acknowledged" \
  "$REPLAY" send "$LEDGER" tcp://127.0.0.1:$PORT

for m in 2026-09 2026-10 2026-11; do
  files=()
  for p in acme beta; do
    acurl "$API/v1/invoices?project=$p&month=$m" >"$TMP/$p-$m.json"
    files+=("$TMP/$p-$m.json")
  done
  out=$("$REPLAY" check "$LEDGER" "$m" "${files[@]}" 2>&1); rc=$?
  [[ $rc == 0 ]] || diag "$out"
  eq "$m invoices through the API match the hand-computed ledger" "$rc" 0
done

"$BIN/vigie" --api "$API" invoice --project acme --month 2026-10 >"$TMP/cli.json"; rc=$?
eq "vigie invoice exits 0" "$rc" 0
check "vigie invoice prints the API's document byte for byte" cmp -s "$TMP/cli.json" "$TMP/acme-2026-10.json"
eq "acme's October total" "$(jq -r .total "$TMP/cli.json")" "86.46"
eq "beta's October total" "$(jq -r .total "$TMP/beta-2026-10.json")" "12.13"
list=$("$BIN/vigie" --api "$API" invoice --month 2026-10)
check "vigie invoice --month lists both projects" grep -q "acme.*86.46" <<<"$list"
eq "CSV: a header and one row per line (16 + 1)" \
  "$("$BIN/vigie" --api "$API" invoice --project acme --month 2026-10 --format csv | wc -l)" 17
eq "CSV content type" "$(acurl -o /dev/null -w '%{content_type}' "$API/v1/invoices?project=acme&month=2026-10&format=csv")" \
  "text/csv; charset=utf-8"
acurl "$API/v1/invoices?project=acme&month=2026-10&format=html" >"$TMP/acme.html"
check "HTML is a printable page with the total" grep -q '<td class="n">86.46</td>' "$TMP/acme.html"
eq "bad month is a 400" "$(acode "$API/v1/invoices?project=acme&month=2026-13")" 400
# 9999-12 would end at 10000-01-01T00:00:00Z, past every time the API takes
eq "month 9999-12 is a 400 (out of range)" "$(acode "$API/v1/invoices?project=acme&month=9999-12")" 400
check "... saying the range" grep -q "out of range (1970-01 to 9999-11" \
  <<<"$(acurl "$API/v1/invoices?month=9999-12")"
eq "finalizing 9999-12 is a 400" "$(acode -X POST "$API/v1/invoices/finalize?month=9999-12")" 400
"$BIN/vigie" --api "$API" invoice --project acme --month 9999-12 >"$TMP/far.out" 2>"$TMP/far.err"; rc=$?
eq "vigie invoice --month 9999-12 fails (exit 1), printing nothing" "$rc:$(wc -c <"$TMP/far.out")" "1:0"
check "... and says the range" grep -q "out of range (1970-01 to 9999-11" "$TMP/far.err"
eq "month 9999-11 is served, ending at 9999-12-01" \
  "$(acurl "$API/v1/invoices?project=acme&month=9999-11" | jq -r '.period.end')" "9999-12-01T00:00:00Z"
eq "finalizing a month that has not ended is a 400" \
  "$(acode -X POST "$API/v1/invoices/finalize?month=2099-01")" 400
TOK=$BETA
eq "a beta token reads beta's invoice" "$(acode "$API/v1/invoices?project=beta&month=2026-10")" 200
eq "a beta token gets 404 for acme's" "$(acode "$API/v1/invoices?project=acme&month=2026-10")" 404
eq "a beta token's list holds beta only" \
  "$(acurl "$API/v1/invoices?month=2026-10" | jq -r '[.invoices[].project] | join(",")')" beta
eq "a beta token cannot finalize" "$(acode -X POST "$API/v1/invoices/finalize?month=2026-10")" 403
TOK=

"$BIN/vigie" --api "$API" invoice finalize --month 2026-10 >"$TMP/fin.txt"; rc=$?
eq "vigie invoice finalize exits 0" "$rc" 0
check "finalize reports two invoices" grep -q "2 invoice" "$TMP/fin.txt"
acurl "$API/v1/invoices?project=acme&month=2026-10" >"$TMP/final1.json"
acurl "$API/v1/invoices?project=acme&month=2026-10" >"$TMP/final2.json"
eq "the finalized invoice is final and numbered" "$(jq -r '.status + " " + .invoice' "$TMP/final1.json")" "final 2026-10-0001"
check "re-rendering a finalized invoice is byte-identical" cmp -s "$TMP/final1.json" "$TMP/final2.json"
check "and still matches the ledger" "$REPLAY" check "$LEDGER" 2026-10 "$TMP/final1.json" "$TMP/beta-2026-10.json"
"$BIN/vigie" --api "$API" invoice finalize --month 2026-10 >/dev/null 2>"$TMP/fin2.err"; rc=$?
eq "finalizing twice is refused (exit 1)" "$rc" 1
check "with a message saying so" grep -q "already finalized" "$TMP/fin2.err"
stop_pid "$COLLECTOR_PID"
if [[ ${BILLING_ENGINE:-sqlite} == postgresql ]]; then
  check "no billing.db beside the shared database" test ! -e "$DATA/billing.db"
  check "the invoices are in PostgreSQL" \
    test "$("$PG_BIN/psql" -Atq -d "$PG_URL" -c "SELECT count(*) FROM vigie_billing.invoices WHERE month = '2026-10'")" = 2
  check "the collector stated its bound on waits for billing locks (a quarter of the default ack timeout)" \
    grep -q "billing: a batch waits at most 1250 ms for billing locks another collector holds" "$TMP/collector.log"
fi

# A bad rate card stops start-up, naming the file and the JSON path.
sed 's/"0.0200"/0.02/' "$CARD" >"$TMP/bad.json"
printf '[billing]\nratecard = %s\n' "$TMP/bad.json" >"$TMP/bad.conf"
"$BIN/vigie-collector" --allow-unsigned --config "$TMP/bad.conf" --listen tcp://127.0.0.1:$PORT \
  --http 127.0.0.1:$HPORT --data-dir "$TMP/data2" 2>"$TMP/bad.err" & bpid=$!
_pids+=("$bpid")
wait "$bpid"; rc=$?
eq "a bad rate card: exit 2" "$rc" 2
check "the message names the file and the field" \
  grep -q "bad.json: \$.prices\[0\].compute.flavors\[\"m1.small\"\]: must be a decimal string" "$TMP/bad.err"
done_testing
