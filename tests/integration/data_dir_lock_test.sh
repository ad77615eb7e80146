#!/usr/bin/env bash
# data_dir_lock_test.sh — one process at a time owns a data directory
# (docs/operations.md, "Running the collector"). A second vigie-collector
# started on the data directory of a running one used to start as a
# write-through store without the journal: values it acknowledged went
# straight to the files, and the first collector's cached values of the
# same series, older, became duplicates at its next flush and vanished
# (acknowledged, then lost). It must refuse to start (exit 2, naming the
# directory and the holder's pid), and the first keeps every value.
# The commands documented beside a running collector keep working
# (token list/create, storage stats, storage flush); storage convert
# still refuses. Read-only commands on a data directory that does not
# exist (a typo) refuse and create nothing; the storage commands refuse
# (exit 2) a directory that exists but is no data directory.
source "$(dirname "$0")/lib.sh"

collector_ports P2 H2
DATA=$TMP/data
NOW=$(date +%s)
T=$((NOW / 60 * 60))
offline_token TOK "$DATA" --project acme
check "collector 1 starts" start_api_collector c1 --data-dir "$DATA"
C1=$COLLECTOR_PID
# point TIME VALUE [API [RESOURCE]]: POST /v1/measures of RESOURCE (dl1)
# metric v; prints the HTTP code
point() {
  curl -q -s -o /dev/null -w '%{http_code}' --max-time 20 -H "Authorization: Bearer $TOK" \
    -X POST -H 'Content-Type: application/json' \
    --data-binary "{\"measures\":[{\"resource\":\"${4:-dl1}\",\"metric\":\"v\",\"time\":$1,\"value\":$2}]}" \
    "${3:-$API}/v1/measures"
}

# ---- a second collector on the same directory ----
"$BIN/vigie-collector" --allow-unsigned --listen "tcp://127.0.0.1:$P2" --http "127.0.0.1:$H2" \
  --data-dir "$DATA" >"$TMP/c2.log" 2>&1 &
C2=$!
_pids+=("$C2")
gone() { ! kill -0 "$1" 2>/dev/null; }
wait_for 30 bash -c "! kill -0 $C2 2>/dev/null || curl -sf -o /dev/null --max-time 2 http://127.0.0.1:$H2/v1/health"
if gone "$C2"; then wait "$C2"; rc=$?; else rc=running; fi
eq "a second collector on a data directory in use exits 2" "$rc" 2
check "... saying the directory is in use" grep -qF "data directory $DATA is in use by another process" "$TMP/c2.log"
check "... naming the running collector's pid" grep -qF "(pid $C1," "$TMP/c2.log"
check "... and answers no API" bash -c "! curl -sf -o /dev/null --max-time 2 http://127.0.0.1:$H2/v1/health"
diag "$(tail -n 1 "$TMP/c2.log")"

# Batches keep coming to collector 1 (another series, every 0.2 s), so
# it keeps dl1's values cached rather than writing them once idle (1 s):
# the reviewer's sequence, where a second collector that ran took them.
( while :; do point "$(date +%s.%N)" 1 "$API" busy >/dev/null; sleep 0.2; done ) &
BUSY=$!
_pids+=("$BUSY")
eq "111 at -3m is acknowledged by collector 1" "$(point $((T - 180)) 111)" 200
eq "222 at -2m is acknowledged by collector 1" "$(point $((T - 120)) 222)" 200
if [[ $rc == running ]]; then
  diag "collector 2 runs; 333 at -1m to it: $(point $((T - 60)) 333 "http://127.0.0.1:$H2")"
else
  eq "333 at -1m is acknowledged by collector 1" "$(point $((T - 60)) 333)" 200
fi
kill "$BUSY"; wait "$BUSY" 2>/dev/null

# ---- the commands documented beside a running collector ----
"$BIN/vigie-collector" --data-dir "$DATA" storage flush >"$TMP/flush.out" 2>&1
eq "storage flush beside it exits 0" "$?" 0
diag "$(cat "$TMP/flush.out")"
check "... and names collector 1's pid" grep -qF "pid $C1)" "$TMP/flush.out"
eq "collector 1 keeps every acknowledged value" \
  "$(curl -q -s --max-time 20 -H "Authorization: Bearer $TOK" \
    "$API/v1/measures?resource=dl1&metric=v&start=$((T - 300))&end=$T&granularity=60" |
    jq -c '[.points[][1] | select(. != null)]')" "[111,222,333]"
eq "... none of them counted as a duplicate" \
  "$(api /metrics | awk '$1 == "vigie_store_values_duplicate_total" {print $2}')" 0
"$BIN/vigie-collector" --data-dir "$DATA" token list >"$TMP/tl.out" 2>"$TMP/tl.err"
eq "token list beside it exits 0" "$?" 0
check "... and lists the tokens" grep -q acme "$TMP/tl.out"
"$BIN/vigie-collector" --data-dir "$DATA" token create --project beside >/dev/null 2>&1
eq "token create beside it exits 0" "$?" 0
"$BIN/vigie-collector" --data-dir "$DATA" storage stats >"$TMP/st.out" 2>"$TMP/st.err"
eq "storage stats beside it exits 0 (it only reads)" "$?" 0
"$BIN/vigie-collector" --data-dir "$DATA" storage convert >/dev/null 2>"$TMP/cv.err"
eq "storage convert beside it exits 1" "$?" 1
check "... saying the directory is in use" grep -qF "$DATA is in use by a running vigie-collector" "$TMP/cv.err"
check "collector 1 still runs" kill -0 "$C1"
stop_pid "$C1"
eq "collector 1 stops cleanly" "$?" 0

# ---- read-only commands on a data directory that does not exist ----
for c in "token list" "token revoke ffffffffffffffff" "storage stats" "storage flush"; do
  "$BIN/vigie-collector" --data-dir "$TMP/typo" $c >/dev/null 2>"$TMP/typo.err"
  rc=$?
  check "$c on a missing data directory fails (exit $rc)" test "$rc" -ne 0
  check "... naming it" grep -qF "$TMP/typo" "$TMP/typo.err"
  check "... and creates nothing" test ! -e "$TMP/typo"
  rm -rf "$TMP/typo"
done

# ---- storage commands on a directory that is no data directory ----
# (they made journal/, registry.db and rrd/ in it and exited 0)
mkdir -p "$TMP/notdata"
echo keep >"$TMP/notdata/notes.txt"
for c in "storage stats" "storage flush" "storage convert"; do
  "$BIN/vigie-collector" --data-dir "$TMP/notdata" $c >/dev/null 2>"$TMP/nd.err"
  eq "$c on a directory that is no data directory exits 2" "$?" 2
  check "... saying so" grep -qF "$TMP/notdata is not a vigie data directory" "$TMP/nd.err"
  eq "... and creates nothing in it" "$(ls "$TMP/notdata")" notes.txt
done
done_testing
