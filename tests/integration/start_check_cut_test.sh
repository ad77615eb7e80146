#!/usr/bin/env bash
# start_check_cut_test.sh — a collector on rrdcached killed (-9) with
# values its daemon took and did not write yet (write-through, no sync:
# the journal keeps them), the daemon then killed (-9) too and started
# again without its -j journal (it lost them), and the collector started
# again with [storage] check_max so small that the start replay's check
# of the files stops after one group of 32. The series past it wait in
# the cache with the daemon up; the start's warning must say so, not that
# the daemon "does not answer". (With the daemon untouched, the check
# FLUSHes what it still holds of ours: nothing to re-send, and the check
# may finish within the bound, leaving nothing to wait.)
#
# Why. The warning named "a storage daemon that does not answer (see
# /v1/health)" whenever replayed values waited, and /v1/health then
# showed every daemon up: the operator looked for a daemon down that was
# not. The store's own message said the check was cut short
# (rrdcached_replay_test test_store_replay_check_cut_says_so); the
# warning now names the daemon as up with its check cut short. And the
# values are written in the end (the check goes on at later
# connections). SKIP only without rrdcached or jq.
source "$(dirname "$0")/lib.sh"
require rrdcached
command -v jq >/dev/null || { echo "1..0 # SKIP jq not installed"; exit 0; }

killed_collector_with_journal 40 # series: more than one group of 32

start_api_collector c2 --config "$TMP/c.conf" --data-dir "$DATA"
check "started again, it answers" answers_health "$HPORT"
C=$COLLECTOR_PID
line=$(grep 'replayed values wait for a storage daemon' "$TMP/c2.log" | head -1)
diag "$line"
check "the start warns that replayed values wait for the daemon" test -n "$line"
check "... naming it up, its check cut short at [storage] check_max" \
  grep -qF "(up, the start replay's check of its files cut short at [storage] check_max, to go on at a later connection: $DAEMON)" <<<"$line"
check "... not as a daemon that does not answer" bash -c '! grep -q "not answering\|does not answer" <<<"$1"' _ "$line"
eq "/v1/health shows the daemon up" \
  "$(curl -sf --max-time 10 -H "Authorization: Bearer $ADMIN_TOKEN" "$API/v1/health" | jq -r '.storage[0].state')" up
drained() { [[ $(m vigie_store_values_pending) -eq 0 ]]; }
check "the held values are written at later connections" wait_for 60 drained
# what the daemon lost came back from the collector's journal: each file
# holds the second minute (read through the daemon, which FLUSHes first)
behind=0
for i in $(seq 1 "$NS"); do
  [[ $(rrdtool info --daemon "$RRDCACHED_UNIX" "$RRDCACHED_BASE/custom/node$i/load.1.rrd" |
    awk '$1 == "last_update" { print $3 }') -ge $((T + 60)) ]] || behind=$((behind + 1))
done
eq "... every file holds the second minute the daemon had lost" "$behind" 0
check "collector still running" kill -0 "$C"
done_testing
