#!/usr/bin/env bash
# billing_late_range_test.sh — late usage of a finalized month that cannot
# be billed, through the real collector, the API and the CLI.
#
# October is finalized; then an agent's spool delivers October usage of a
# flavor the card prices at 10^12 EUR an hour (a typo): ten hours, 10^13
# EUR, past the 10^12 currency units vigie bills. Its adjustment on
# November's invoice used to make acme's whole November draft a 422 and
# drop acme from the month's list. Now that adjustment alone is withheld:
# November's invoice answers (200) with acme's usage, named in its
# warnings; the month's list counts the warnings; the CLI says so on
# stderr and exits 0; the collector logs it once and counts it on
# /metrics; November can be finalized; and with the card fixed the
# adjustment is billed on December's draft (nothing was dropped).
#
# Data: the hand-written ledger (tests/fixtures/billing/ledger-2026-10.txt)
# replayed over the wire by bench/billing_replay, then a late ledger.
source "$(dirname "$0")/lib.sh"

LEDGER=$ROOT/tests/fixtures/billing/ledger-2026-10.txt
if ! bench_tool billing_replay; then
  skip "bench/billing_replay could not be built"
  done_testing
  exit 0
fi
REPLAY=$BENCH_TOOL

collector_ports
DATA=$TMP/data
# the ledger's card with x1.gold at $1 an hour
card() { sed "s/\"m1.small\": \"0.0200\"/\"x1.gold\": \"$1\", &/" \
  "$ROOT/tests/fixtures/billing/ratecard.json" >"$TMP/card.json"; }
card 1000000000000
printf '[billing]\nratecard = %s\n' "$TMP/card.json" >"$TMP/vigie.conf"
ADMIN=$("$BIN/vigie-collector" --data-dir "$DATA" --config "$TMP/vigie.conf" token create --admin 2>/dev/null | tail -1)
export VIGIE_TOKEN=$ADMIN
acurl() { curl -sS --max-time 10 -H "Authorization: Bearer $ADMIN" "$@"; }
acode() { curl -s -o "$TMP/body" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $ADMIN" "$@"; }

check "collector up with x1.gold at 10^12 EUR an hour" start_api_collector collector \
  --config "$TMP/vigie.conf" --data-dir "$DATA"
check "ledger replayed over the wire" "$REPLAY" send "$LEDGER" tcp://127.0.0.1:$PORT
for m in 2026-09 2026-10; do
  eq "$m finalized" "$(acode -X POST "$API/v1/invoices/finalize?month=$m")" 200
done
cat >"$TMP/late.txt" <<'EOF2'
ratecard card.json
host gold-host
instance i-gold project=acme name=gold flavor=x1.gold vcpus=1 ram_mb=2048 disk_gb=0
poll 2026-10-20T00:00:00Z i-gold=running
poll 2026-10-20T10:00:00Z
poll 2026-10-20T10:30:00Z i-gold=gone
EOF2
check "late October usage of x1.gold delivered" "$REPLAY" send "$TMP/late.txt" tcp://127.0.0.1:$PORT

W="adjustment for 2026-10 withheld: resource i-gold, line compute flavor:x1.gold (hour): its amount is past 10^12 currency units"
for f in json csv html; do
  eq "acme's November invoice ($f) answers" \
    "$(acode "$API/v1/invoices?project=acme&month=2026-11&format=$f")" 200
  check "... naming the withheld adjustment" grep -qF "$W" "$TMP/body"
done
acode "$API/v1/invoices?project=acme&month=2026-11" >/dev/null
eq "... billing acme's November usage, no line of i-gold" \
  "$(jq -r '[.total, ([.lines[] | select(.resource_id == "i-gold")] | length)] | join(" ")' "$TMP/body")" \
  "0.08 0"
eq "the month's list: acme listed with its warning, no error" \
  "$(acode "$API/v1/invoices?month=2026-11"):$(jq -r '.invoices[] | select(.project == "acme") | [.total, .warnings, (.error == null)] | join(" ")' "$TMP/body")" \
  "200:0.08 1 true"
"$BIN/vigie" --api "$API" invoice --month 2026-11 >"$TMP/cli.out" 2>"$TMP/cli.err"; rc=$?
eq "vigie invoice --month exits 0" "$rc" 0
check "... listing acme" grep -q "^acme .* 0.08" "$TMP/cli.out"
check "... saying it has a warning" grep -q "invoice: project acme: 1 warning on its invoice" "$TMP/cli.err"
"$BIN/vigie" --api "$API" invoice --project acme --month 2026-11 >"$TMP/cli.out" 2>"$TMP/cli.err"; rc=$?
eq "vigie invoice --project acme exits 0" "$rc" 0
check "... printing the warning" grep -qF "$W" "$TMP/cli.out"
eq "logged once for many answers" "$(grep -c "api: billing: 2026-11: 1 adjustment of late usage withheld" "$TMP/collector.log")" 1
check "... naming the project, the month adjusted, the resource and line" grep -q \
  "first: project acme, adjustment for 2026-10, resource i-gold, line compute flavor:x1.gold (hour) past 10^12" "$TMP/collector.log"
eq "counted on /metrics" \
  "$(acurl "$API/metrics" | grep -Ec '^vigie_billing_adjustments_withheld_total [1-9]')" 1
eq "November can be finalized" "$(acode -X POST "$API/v1/invoices/finalize?month=2026-11")" 200
eq "... its frozen invoice keeps the warning" \
  "$(acode "$API/v1/invoices?project=acme&month=2026-11"):$(grep -cF "$W" "$TMP/body")" "200:1"

# the card fixed (x1.gold at 0.10 an hour): December bills the adjustment
stop_pid "$COLLECTOR_PID"
card 0.10
check "collector up with the card fixed" start_api_collector collector2 \
  --config "$TMP/vigie.conf" --data-dir "$DATA"
acode "$API/v1/invoices?project=acme&month=2026-12" >/dev/null
eq "December bills the adjustment: 10 h x 0.10" \
  "$(jq -r '[.lines[] | select(.resource_id == "i-gold") | [.adjustment_for, .amount, .corrects_invoice] | join(" ")] | join(",")' "$TMP/body"):$(jq -r '.warnings | length' "$TMP/body")" \
  "2026-10 1.00 2026-10-0001:0"
done_testing
