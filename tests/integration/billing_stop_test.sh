#!/usr/bin/env bash
# billing_stop_test.sh — a collector stopped (SIGSTOP) exactly inside a
# batch's billing transaction, holding that host's billing locks, while
# another collector on the same PostgreSQL state takes over the hosts.
#
# Why. A meter stopped inside its transaction keeps its advisory locks
# (billing/meter.c "Bounded lock waits"). The other collector, given a
# batch of that host (its agent failing over), used to wait for them in
# its receiver thread and acknowledge nothing of any host until the
# stopped one resumed. With [billing] lock_timeout_ms such a batch is
# rolled back and answered RETRY after the bound, counted in
# vigie_billing_lock_timeouts_total, and the other hosts' batches go on.
#
# The fault. A SIGSTOP from outside lands inside a batch's billing
# transaction only by chance (it lasts a few milliseconds), so collector
# 0 runs with VIGIE_TEST_BILLING_PAUSE=ledger-a:5: its meter stops its
# own process in the 5th batch of host ledger-a, after that batch's
# locks were granted and its rows read, before its writes and COMMIT (a
# test-only hook, read only when set).
#
# Steps. Two collectors (0 and 1) on one PostgreSQL state; two hosts
# replayed from the hand-written ledger (tests/fixtures/billing), each by
# bench/billing_replay sending to collector 0 first and failing over to
# collector 1 after an ack timeout, as an agent with two collectors does:
#   - host ledger-a (the ledger as written) until collector 0 stops
#     itself inside its 5th batch; the stopped collector must hold
#     advisory locks in pg_locks;
#   - host ledger-b (the same month with other resource ids, projects
#     acme2 and beta2 priced as acme and beta) is replayed whole while
#     collector 0 stays stopped: collector 1 must store and acknowledge
#     every batch of it (the replay ends 0), answer ledger-a's batch
#     RETRY (vigie_collector_batches_retry_total) and count the lock
#     waits past the bound (vigie_billing_lock_timeouts_total);
#   - SIGCONT: collector 0 commits the batch it held; ledger-a's replay
#     ends 0;
#   - every batch is recorded once (the shared registry's last seq of
#     each host is its number of batches; the collectors' accepted
#     batches add up to both ledgers'), and the invoices of 2026-09,
#     -10 and -11 of both ledgers' projects, read from both collectors,
#     are the hand-computed ones to the cent (bench/billing_replay
#     check): what a single collector gives for the same batches
#     (billing_test.sh), so nothing was metered twice or lost.
# Without the bound (LOCK_MS=3600000, the largest lock_timeout_ms, or the
# code before b0cd1db) collector 1's receiver waits behind the stopped
# one's locks and ledger-b's replay gives up (each batch unanswered, 20
# ack timeouts): "ledger-b's replay ends while collector 0 is stopped"
# fails, bounded by that.
# SKIP, with the reason, only when PostgreSQL cannot run here.
source "$(dirname "$0")/lib.sh"

LOCK_MS=${LOCK_MS:-400}
ACK_MS=${ACK_MS:-1500}
LEDGER=$ROOT/tests/fixtures/billing/ledger-2026-10.txt
CARD=$ROOT/tests/fixtures/billing/ratecard.json
require jq
if ! bench_tool billing_replay; then
  skip "bench/billing_replay could not be built"
  done_testing
  exit 0
fi
REPLAY=$BENCH_TOOL
start_shared_state
sql() { psql "$STATE" -X -q -A -t -c "$1" 2>/dev/null; }

# ---- the two hosts' ledgers and the rate card of both ----
# ledger-b: other resource ids (i-web -> ix-web, ...), host, projects
sed -e 's/ledger-host/ledger-a/' "$LEDGER" >"$TMP/ledger-a.txt"
sed -e 's/ledger-host/ledger-b/' -e 's/\b\([idn]\)-\([a-z]\)/\1x-\2/g' \
  -e 's/\bacme\b/acme2/g' -e 's/\bbeta\b/beta2/g' "$LEDGER" >"$TMP/ledger-b.txt"
# (their "ratecard ratecard.json" is beside them: this one)
jq '.projects.beta2 = .projects.beta' "$CARD" >"$TMP/ratecard.json"
NA=$(grep -c '^poll ' "$LEDGER") # a batch per poll, numbered from 1
check "ledger-b differs from ledger-a in every resource id" \
  test "$(grep -c 'x-' "$TMP/ledger-b.txt")" -gt 20

# ---- two collectors on the state; collector 0 stops itself inside ----
free_ports 'CP[0]' 'CH[0]' 'CP[1]' 'CH[1]'
for i in 0 1; do
  state_conf "$TMP/c$i.conf" "${CP[$i]}" "${CH[$i]}" "$TMP/c$i" "$TMP/tokens.key" <<CONF
[billing]
ratecard = $TMP/ratecard.json
lock_timeout_ms = $LOCK_MS
[log]
level = debug
CONF
  mkdir -p "$TMP/c$i"
done
ADMIN_TOKEN=$("$BIN/vigie-collector" --config "$TMP/c0.conf" token create --admin --name it 2>>"$TMP/token.err")
VIGIE_TEST_BILLING_PAUSE=ledger-a:5 start_collector c0 --config "$TMP/c0.conf"
C0=$COLLECTOR_PID
start_collector c1 --config "$TMP/c1.conf"
C1=$COLLECTOR_PID
for i in 0 1; do
  check "collector $i answers /v1/health" wait_for 30 answers_health "${CH[$i]}"
done
check "collector 0 logs the test's fault" grep -q "VIGIE_TEST_BILLING_PAUSE is set" "$TMP/c0.log"
metric() { # I NAME: collector I's metric NAME, 0 when absent
  curl -sf --max-time 10 -H "$(api_auth)" "http://127.0.0.1:${CH[$1]}/metrics" 2>/dev/null |
    awk -v m="$2" 'index($0, m " ") == 1 { v = $NF } END { print v + 0 }'
}
accepted() { # I: the batches collector I stored (received less other answers)
  curl -sf --max-time 10 -H "$(api_auth)" "http://127.0.0.1:${CH[$1]}/metrics" 2>/dev/null |
    awk '$1 == "vigie_collector_batches_received_total" { n += $2 }
         $1 ~ /^vigie_collector_batches_(duplicate|retry|refused|rejected)_total$/ { n -= $2 }
         END { print n + 0 }'
}
URLS=("tcp://127.0.0.1:${CP[0]}" "tcp://127.0.0.1:${CP[1]}")
export BILLING_REPLAY_ACK_MS=$ACK_MS BILLING_REPLAY_RETRY_S=600

# ---- host ledger-a until collector 0 stops inside its 5th batch ----
"$REPLAY" send "$TMP/ledger-a.txt" "${URLS[@]}" >"$TMP/replay-a.out" 2>"$TMP/replay-a.err" &
RA=$!
_pids+=("$RA")
stopped() { [[ $(awk '{ print $3 }' "/proc/$C0/stat" 2>/dev/null) == T ]]; }
check "collector 0 stops itself inside ledger-a's 5th batch" wait_for 60 stopped
held=$(sql "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
diag "sessions in a transaction: $(sql "SELECT string_agg(state, ',') FROM pg_stat_activity WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()")"
check "its billing transaction holds advisory locks ($held)" test "${held:-0}" -gt 0
seq_of() { sql "SELECT coalesce(max(last_seq), 0) FROM vigie_registry.streams WHERE host = '$1'"; }
eq "ledger-a's batches up to the 4th are recorded" "$(seq_of ledger-a)" 4

# ---- host ledger-b whole, while collector 0 stays stopped ----
waits() { [[ $(metric 1 vigie_billing_lock_timeouts_total) -ge 1 ]]; }
check "collector 1 is given ledger-a's 5th batch and its lock wait passes the bound" \
  wait_for 60 waits
"$REPLAY" send "$TMP/ledger-b.txt" "${URLS[@]}" >"$TMP/replay-b.out" 2>"$TMP/replay-b.err" &
RB=$!
_pids+=("$RB")
# the bound here: ledger-b's replay gives up after 20 unanswered sends of
# a batch (2 x 20 x ACK_MS); without the bound it waits on collector 1
ended() { ! kill -0 "$RB" 2>/dev/null; }
wait_for $((45 * ACK_MS / 1000 + 60)) ended
if ended; then wait "$RB"; rb=$?; else rb=timeout; fi
eq "ledger-b's replay ends while collector 0 is stopped, every batch acknowledged" "$rb" 0
check "collector 0 is still stopped" stopped
# collector 0 stopped, only collector 1 can have recorded them
eq "the shared registry records ledger-b's last batch" "$(seq_of ledger-b)" "$NA"
eq "ledger-a is still at its 4th batch" "$(seq_of ledger-a)" 4
check "ledger-b failed over to collector 1 (its replay says so)" \
  grep -q "no answer from ${URLS[0]}" "$TMP/replay-b.err"
r1=$(metric 1 vigie_collector_batches_retry_total)
check "collector 1 answered ledger-a's batch RETRY ($r1 times)" test "$r1" -ge 1
l1=$(metric 1 vigie_billing_lock_timeouts_total)
check "... counting its lock waits past the bound in /metrics ($l1)" test "$l1" -ge 1
check "collector 1 logged the episode once" \
  test "$(grep -c 'waited [0-9]* ms for billing locks' "$TMP/c1.log")" -eq 1

# ---- collector 0 resumes: the batch it held commits, ledger-a ends ----
kill -CONT "$C0"
wait_for $((45 * ACK_MS / 1000 + 60)) bash -c "! kill -0 $RA 2>/dev/null"
if kill -0 "$RA" 2>/dev/null; then ra=timeout; else wait "$RA"; ra=$?; fi
eq "ledger-a's replay ends, every batch acknowledged" "$ra" 0
diag "ledger-a: $(tail -1 "$TMP/replay-a.out"); ledger-b: $(tail -1 "$TMP/replay-b.out")"
eq "the shared registry records ledger-a's last batch" "$(seq_of ledger-a)" "$NA"
# (collector 0 may still be answering what waited in its socket while
# it was stopped: DUPLICATE)
both_accepted() { echo $(($(accepted 0) + $(accepted 1))); }
eq_within 30 "every batch stored once over both collectors" $((2 * NA)) both_accepted
check "collector 0 answers /v1/health again" answers_health "${CH[0]}"
eq "no advisory lock is left" "$(sql "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")" 0

# ---- the invoices: the hand-computed ones, from both collectors ----
for i in 0 1; do
  for m in 2026-09 2026-10 2026-11; do
    for l in a b; do
      files=()
      for p in acme beta; do
        [[ $l == b ]] && p=${p}2
        curl -sS --max-time 30 -H "$(api_auth)" \
          "http://127.0.0.1:${CH[$i]}/v1/invoices?project=$p&month=$m" >"$TMP/inv-$i-$p-$m.json"
        files+=("$TMP/inv-$i-$p-$m.json")
      done
      out=$("$REPLAY" check "$TMP/ledger-$l.txt" "$m" "${files[@]}" 2>&1); rc=$?
      [[ $rc == 0 ]] || diag "$out"
      eq "collector $i: ledger-$l's $m invoices are the hand-computed ones" "$rc" 0
    done
  done
done
eq "acme's October total, the ledger's" "$(jq -r .total "$TMP/inv-1-acme-2026-10.json")" 86.46
eq "acme2's October total, the same" "$(jq -r .total "$TMP/inv-1-acme2-2026-10.json")" 86.46
stop_pid "$C0"
stop_pid "$C1"
done_testing
