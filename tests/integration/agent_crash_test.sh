#!/usr/bin/env bash
# agent_crash_test.sh — kill -9 the agent at random moments, ten times,
# mid-poll and mid-spool (crash safety of the agent's spool).
#
# The agent polls the libvirt test driver every 50 ms (real clock) and
# spools each batch before sending it; it is SIGKILLed 100..900 ms after
# each start and restarted on the same spool. Afterwards (one clean stop
# to flush): the collector accepted every batch at most once and in
# strictly increasing order of one stream (a poll killed before its batch
# was spooled leaves no batch, so gaps are allowed and reported); the
# spool is empty and nothing went to rejected/ (no torn batch file was
# ever sent); every spooled batch that existed at a kill was delivered.
source "$(dirname "$0")/lib.sh"

collector_ports
DATA=$TMP/data
SPOOL=$TMP/spool
KILLS=${AGENT_KILLS:-10}

check "collector answers" start_api_collector collector --data-dir "$DATA" --log-level debug

at_kill=()
for i in $(seq "$KILLS"); do
  start_agent "agent$i" --collector tcp://127.0.0.1:$PORT --libvirt test:///default \
    --interval 0.05 --host ac-host --spool "$SPOOL"
  sleep "0.$((1 + RANDOM % 9))"
  kill -KILL "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null
  # what was spooled (complete files only) when it died
  at_kill+=($(find "$SPOOL" -maxdepth 1 -name '*.vgb' -printf '%f\n' | sed 's/\.vgb$//; s/^0*//'))
done
diag "$KILLS kills; batches spooled at a kill: ${#at_kill[@]}"
start_agent final --collector tcp://127.0.0.1:$PORT --libvirt test:///default \
  --interval 0.05 --host ac-host --spool "$SPOOL"
check "the agent restarts on the same spool" wait_for 30 grep -q 'polling' "$TMP/final.log"
sleep 0.5
check "and drains it" \
  wait_for 20 bash -c "[[ \$(find '$SPOOL' -maxdepth 1 -name '*.vgb' | wc -l) -le 2 ]]"
stop_pid "$AGENT_PID"; rc=$?
eq "agent exits 0 on SIGTERM" "$rc" 0
eq "spool is empty" "$(find "$SPOOL" -maxdepth 1 -name '*.vgb' | wc -l)" 0
eq "no batch was rejected (no torn batch file was sent)" \
  "$(find "$SPOOL/rejected" -type f 2>/dev/null | wc -l)" 0
eq "no leftover temporary files in the spool" \
  "$(find "$SPOOL" -maxdepth 1 -type f ! -name '*.vgb' ! -name state ! -name lock | wc -l)" 0
stop_pid "$COLLECTOR_PID"

lines=$(grep -ho 'accepted batch host=ac-host stream=[0-9a-f]* seq=[0-9]*' "$TMP"/collector.log)
streams=$(sed 's/.*stream=\([0-9a-f]*\).*/\1/' <<<"$lines" | sort -u | wc -l)
seqs=$(sed 's/.*seq=//' <<<"$lines")
n=$(grep -c . <<<"$seqs")
diag "accepted $n batches, last seq $(tail -1 <<<"$seqs")"
# a loaded machine or a sanitizer build polls fewer times in the same
# seconds: the point is that batches flowed across the kills
check "batches were accepted ($n)" test "$n" -ge 5
eq "one stream across every restart (the spool's state survives kill -9)" "$streams" 1
eq "no batch accepted twice" "$(sort -n <<<"$seqs" | uniq -d | wc -l)" 0
eq "accepted in strictly increasing order" "$(sort -n <<<"$seqs" | tr '\n' ' ')" "$(tr '\n' ' ' <<<"$seqs")"
gaps=$(awk 'NR > 1 && $1 != prev + 1 { g += $1 - prev - 1 } { prev = $1 } END { print g + 0 }' <<<"$seqs")
diag "sequence numbers never used (polls killed before their batch was spooled): $gaps"
missing=0
for s in "${at_kill[@]}"; do grep -qx "$s" <<<"$seqs" || missing=$((missing + 1)); done
eq "every batch spooled at a kill was delivered" "$missing" 0
eq "registry's last seq is the last accepted" \
  "$(sqlite3 "$DATA/registry.db" "select last_seq from streams where host='ac-host'")" "$(tail -1 <<<"$seqs")"
done_testing
