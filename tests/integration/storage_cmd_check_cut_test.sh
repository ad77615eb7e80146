#!/usr/bin/env bash
# storage_cmd_check_cut_test.sh — `vigie-collector storage flush` and
# `storage convert` with no collector running, on a data dir whose journal
# a collector killed (-9) left with values its rrdcached took and did not
# write yet, and [storage] check_max so small that the replay's check of
# the files (which each command's opening of the store runs) stops after
# one group of 32. The values past it wait with the daemon up: the
# commands must say that the check was cut short at [storage] check_max,
# naming the daemon up, not that the daemon "does not answer".
#
# Why. Both commands said "wait for a storage daemon that does not answer"
# whenever values waited, whatever the store had recorded as the cause:
# the operator looked for a daemon down that was not (the collector's
# start warning was fixed so in start_check_cut_test.sh; the commands now
# share its wording, vg_store_pending_cause). 1000 series, so that each
# opening (a few groups of 32 checked within the bound) leaves some unchecked. Then, the
# daemon killed, the same flush names it not answering, and so does the
# flush of a collector running (SIGUSR1; the cause passes through
# <data_dir>/flush.done), which said "some still cached: their storage
# daemon does not answer" without naming it. SKIP only without rrdcached
# or jq.
source "$(dirname "$0")/lib.sh"
require rrdcached
command -v jq >/dev/null || { echo "1..0 # SKIP jq not installed"; exit 0; }

NS=1000
start_rrdcached s -O -R || bail "rrdcached did not start ($(tail -3 "$TMP/s.log"))"
DAEMON=$RRDCACHED_TCP
collector_ports
DATA=$TMP/c
cat >"$TMP/c.conf" <<CONF
[collector]

[storage]
backend = rrdcached
daemons = $DAEMON
archives = 1m:6h
write_through = yes
sync_interval = 300
check_max = 0.001
CONF
check "the collector starts" start_api_collector c --config "$TMP/c.conf" --data-dir "$DATA"
C=$COLLECTOR_PID
m() { curl -sf --max-time 10 -H "Authorization: Bearer $ADMIN_TOKEN" "$API/metrics" 2>/dev/null |
  awk -v m="$1" 'index($0, m " ") == 1 || index($0, m "{") == 1 { v += $NF } END { print v + 0 }'; }
T=$(( $(date -u +%s) / 60 * 60 - 600 ))
for i in $(seq 1 $NS); do printf 'node%d load.1 %d %d\n' "$i" "$i" "$T"; done >"$TMP/m1"
for i in $(seq 1 $NS); do printf 'node%d load.1 %d %d\n' "$i" "$((i + 100))" "$((T + 60))"; done >"$TMP/m2"
check "the series are published" "$BIN/vigie" --api "$API" put --project p1 --file "$TMP/m1"
check "... and a second minute" "$BIN/vigie" --api "$API" put --project p1 --file "$TMP/m2"
written() { [[ $(m vigie_store_values_written_total) -ge $((2 * NS)) && $(m vigie_store_values_pending) -eq 0 ]]; }
check "the daemon took them (written through, not synced)" wait_for 30 written
kill -KILL "$C"; wait "$C" 2>/dev/null

CUT="(up, the start replay's check of its files cut short at [storage] check_max, to go on at a later connection: $DAEMON)"
cmd() { "$BIN/vigie-collector" --config "$TMP/c.conf" --data-dir "$DATA" storage "$@"; }

cmd flush >"$TMP/f.out" 2>"$TMP/f.err"
rc=$?
diag "flush: $(cat "$TMP/f.out" "$TMP/f.err")"
eq "storage flush (no collector) fails: values wait" "$rc" 1
check "... naming the daemon up, its check cut short at [storage] check_max" grep -qF "$CUT" "$TMP/f.err"
check "... not as a daemon that does not answer" bash -c '! grep -q "not answering\|does not answer" "$1"' _ "$TMP/f.err"

cmd convert >"$TMP/v.out" 2>"$TMP/v.err"
rc=$?
diag "convert: $(cat "$TMP/v.out" "$TMP/v.err")"
eq "storage convert fails: values wait" "$rc" 1
check "... naming the daemon up, its check cut short at [storage] check_max" grep -qF "$CUT" "$TMP/v.err"
check "... not as a daemon that does not answer" bash -c '! grep -q "not answering\|does not answer" "$1"' _ "$TMP/v.err"

# the daemon down: a collector started with it down holds new values for
# it; its flush (SIGUSR1, the cause through flush.done) names the daemon
# not answering, and so does the offline flush once it was killed (-9)
S_PID=$RRDCACHED_PID
kill "$S_PID"; wait "$S_PID" 2>/dev/null
check "the collector starts with the daemon down" \
  start_api_collector c3 --config "$TMP/c.conf" --data-dir "$DATA"
C=$COLLECTOR_PID
for i in $(seq 1 $NS); do printf 'node%d load.1 %d %d\n' "$i" "$((i + 200))" "$((T + 120))"; done >"$TMP/m3"
check "a third minute is published (held for the daemon)" "$BIN/vigie" --api "$API" put --project p1 --file "$TMP/m3"
cmd flush --timeout 60 >"$TMP/f3.out" 2>"$TMP/f3.err"
rc=$?
diag "running flush, daemon down: $(cat "$TMP/f3.out" "$TMP/f3.err")"
eq "storage flush of the running collector fails: values still cached" "$rc" 1
check "... saying why: the daemon not answering, named" \
  grep -qF "still cached, waiting for their storage daemon (not answering: $DAEMON" "$TMP/f3.out"
check "collector still running" kill -0 "$C"
kill -KILL "$C"; wait "$C" 2>/dev/null
cmd flush >"$TMP/f2.out" 2>"$TMP/f2.err"
diag "offline flush, daemon down: $(cat "$TMP/f2.out" "$TMP/f2.err")"
check "with the daemon down, the offline storage flush names it not answering" \
  grep -qF "(not answering: $DAEMON)" "$TMP/f2.err"
done_testing
