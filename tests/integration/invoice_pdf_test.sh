#!/usr/bin/env bash
# invoice_pdf_test.sh — the invoice as paper: the HTML page printed by
# headless Chromium at A4 (the page's print CSS) through `vigie invoice
# --pdf`, read back with pdftotext.
#
# The documents ledger (tests/fixtures/billing/ledger-2026-07.txt, with
# its issuer and billing profiles) is replayed over the wire into a real
# collector and July is finalized (numbers from the issuer's sequence,
# issue date today, due in 30 days). Then `vigie invoice --pdf` prints
# fr-co's July invoice
# and lab's usage statement; the PDFs must be A4, and every figure must be
# whole on one line of the text (no amount, rate, quantity or date wrapped
# mid-number), with the parties, the tax line and the amount due.
source "$(dirname "$0")/lib.sh"

CHROME=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $CHROME ]] || ! command -v pdftotext >/dev/null || ! command -v pdfinfo >/dev/null; then
  skip "chromium or poppler-utils (pdftotext, pdfinfo) missing: scripts/deps.sh installs them"
  done_testing
  exit 0
fi
LEDGER=$ROOT/tests/fixtures/billing/ledger-2026-07.txt
CARD=$ROOT/tests/fixtures/billing/ratecard-invoice.json
bench_tool billing_replay
REPLAY=$BENCH_TOOL

collector_ports
printf '[billing]\nratecard = %s\n' "$CARD" >"$TMP/vigie.conf"
check "collector up with the invoicing rate card" start_api_collector collector --config "$TMP/vigie.conf" \
  --data-dir "$TMP/data"
check "documents ledger replayed over the wire" "$REPLAY" send "$LEDGER" tcp://127.0.0.1:$PORT

"$BIN/vigie" --api "$API" invoice finalize --month 2026-07 >/dev/null 2>&1
eq "July finalized: numbered from the issuer's sequence" \
  "$(curl -sS -H "Authorization: Bearer $ADMIN_TOKEN" "$API/v1/invoices?project=fr-co&month=2026-07" | jq -r '.invoice + " " + .issue_date + " " + .due_date')" \
  "VC-000002 $(date -u +%F) $(date -u -d '+30 days' +%F)"
cd "$TMP" || exit 1
"$BIN/vigie" --api "$API" invoice --project fr-co --month 2026-07 --pdf fr.pdf >"$TMP/pdf.out" 2>"$TMP/pdf.err"; rc=$?
eq "vigie invoice --pdf exits 0" "$rc" 0
[[ $rc == 0 ]] || diag "$(cat "$TMP/pdf.err")"
check "it says what it wrote" grep -q "^wrote fr.pdf (" "$TMP/pdf.out"
check "a PDF file" bash -c "head -c 5 '$TMP/fr.pdf' | grep -q '%PDF-'"
check "A4 pages (the print CSS's @page size)" bash -c "pdfinfo '$TMP/fr.pdf' | grep -q '^Page size:.*(A4)'"
pdftotext -layout fr.pdf fr.txt
check "the document says it is an invoice, with its number" grep -q "Invoice VC-000002" fr.txt
check "issue date, due date and terms" bash -c "grep -q 'Issue date' fr.txt && grep -q 'Due date' fr.txt && grep -q '30 days' fr.txt"
check "issuer and customer" bash -c "grep -q 'Vigie Cloud SAS' fr.txt && grep -q 'Fromagerie Dupont SARL' fr.txt && grep -q 'FR00987654321' fr.txt"
check "the tax line: 20 % on the rounded total" grep -Eq "Tax 20 % on 3\.02 +0\.60" fr.txt
check "the amount due" grep -Eq "Amount due EUR +3\.62" fr.txt
# every figure of the JSON document appears whole in the text
curl -sS -H "Authorization: Bearer $ADMIN_TOKEN" "$API/v1/invoices?project=fr-co&month=2026-07" >fr.json
missing=0
while read -r v; do
  grep -qF -- "$v" fr.txt || { missing=$((missing + 1)); diag "not whole on one line: $v"; }
done < <(jq -r '.lines[] | .quantity, .rate, .amount, .usage_start, .usage_end, .resource_id' fr.json; jq -r '.total, .amount_due, .tax[].amount' fr.json)
eq "no value wrapped mid-number (every quantity, rate, amount, date and id whole)" "$missing" 0

"$BIN/vigie" --api "$API" invoice --project lab --month 2026-07 --pdf lab.pdf >/dev/null 2>&1; rc=$?
eq "a usage statement prints too" "$rc" 0
pdftotext -layout lab.pdf lab.txt
check "and says it is not an invoice" grep -q "This is a usage statement, not an invoice" lab.txt
check "without an amount due" bash -c "! grep -q 'Amount due' lab.txt"

eq "--pdf needs --project (usage error 2)" \
  "$("$BIN/vigie" --api "$API" invoice --month 2026-07 --pdf x.pdf >/dev/null 2>&1; echo $?)" 2
VIGIE_CHROMIUM=/nonexistent/chromium "$BIN/vigie" --api "$API" invoice --project lab --month 2026-07 \
  --pdf y.pdf >/dev/null 2>"$TMP/nochrome.err"; rc=$?
eq "no browser: exit 1" "$rc" 1
check "with a message naming what to install" grep -q "Chromium not found" "$TMP/nochrome.err"
stop_pid "$COLLECTOR_PID"
done_testing
