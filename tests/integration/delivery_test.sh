#!/usr/bin/env bash
# delivery_test.sh — at-least-once delivery, exactly-once storage, in order.
#
# The collector is killed (SIGKILL, no chance to flush) while the agent
# keeps polling; the agent spools; the collector restarts on the same data
# dir; every poll taken meanwhile must then arrive exactly once and in
# order. Observed three ways: the collector's debug log of accepted
# batches (each seq once, consecutive), the registry's record of the last
# acknowledged seq, and the RRD series (one point per simulated minute, no
# gap, no duplicate). The agent's synthetic clock makes each poll one
# simulated minute, so a lost poll would be a missing point.
source "$(dirname "$0")/lib.sh"

URI=test:///default
UUID=6695eb01-f6a4-8304-79aa-97f2502e193f
collector_ports
DATA=$TMP/data
START=$(( ($(date +%s) - 86400) / 60 * 60 ))
SPOOL=$TMP/spool
copts=(--listen tcp://127.0.0.1:$PORT --http 127.0.0.1:$HPORT --data-dir "$DATA" --log-level debug)

start_collector collector1 "${copts[@]}"
wait_for 30 curl -sf "$API/v1/health"
start_agent agent --collector tcp://127.0.0.1:$PORT --libvirt $URI --interval 0.1 \
  --host dl-host --spool "$SPOOL" --clock-start $START --clock-step 60 --log-level debug
accepted() { grep -ho 'accepted batch host=dl-host stream=[0-9a-f]* seq=[0-9]*' "$TMP"/collector*.log 2>/dev/null | sed 's/.*seq=//'; }
check "first batches stored" wait_for 30 bash -c "[[ \$(grep -c 'accepted batch host=dl-host' '$TMP/collector1.log') -ge 5 ]]"

kill -KILL "$COLLECTOR_PID"; wait "$COLLECTOR_PID" 2>/dev/null
spooled() { find "$SPOOL" -maxdepth 1 -name '*.vgb' | wc -l; }
check "agent spools while the collector is down" wait_for 30 bash -c "[[ \$(find '$SPOOL' -maxdepth 1 -name '*.vgb' | wc -l) -ge 10 ]]"
diag "spooled while down: $(spooled)"
check "agent is still running" kill -0 "$AGENT_PID"

start_collector collector2 "${copts[@]}"
check "spool drains after the collector returns" wait_for 30 bash -c "[[ \$(find '$SPOOL' -maxdepth 1 -name '*.vgb' | wc -l) -le 1 ]]"
sleep 0.5
stop_pid "$AGENT_PID"; rc=$?
eq "agent exits 0 on SIGTERM" "$rc" 0
sleep 0.3
check "agent flushed its spool before exiting" test "$(spooled)" -eq 0

seqs=$(accepted)
n=$(wc -l <<<"$seqs")
diag "accepted $n batches"
eq "no batch accepted twice" "$(sort -n <<<"$seqs" | uniq -d | wc -l)" 0
eq "batches accepted in order, none missing (1..$n)" "$(tr '\n' ' ' <<<"$seqs")" "$(seq 1 "$n" | tr '\n' ' ')"
stop_pid "$COLLECTOR_PID"
eq "registry remembers the last acknowledged seq" \
  "$(sqlite3 "$DATA/registry.db" "select last_seq from streams where host='dl-host'")" "$n"

# RRD: one point per simulated minute, first to last poll, no gaps.
f=$DATA/rrd/instance/$UUID/vcpus.rrd
pts=$(rrdtool fetch "$f" AVERAGE -r 60 -s $START -e $((START + 60 * (n + 2))) | awk -F': ' 'NF==2 && $2 !~ /nan/' | wc -l)
# The first poll only sets the file's start; each later poll closes one step.
check "vcpus has one point per poll after the first ($pts points for $n polls)" test "$pts" -ge $((n - 2)) -a "$pts" -le "$n"

# ---- a collector down for longer than the spool holds ----
# Spool bound 5: the oldest batches are dropped, counted and logged; the
# five newest arrive later, in order. The agent polls 20 times and then
# only delivers (drain_ms: up to 2 minutes), so the survivors read below
# are all it will send: an agent still polling every 0.1 s after the
# collector's return dropped more whenever the delivery lagged 0.5 s
# behind (a new host's files created on a loaded machine), and the
# batches from the survivors on were not consecutive (seen: 21 46 61..69).
printf '[agent]\nspool_max_batches = 5\ndrain_ms = 120000\n' > "$TMP/small-spool.conf"
SPOOL2=$TMP/spool2
start_agent agent2 --config "$TMP/small-spool.conf" --collector tcp://127.0.0.1:$PORT \
  --libvirt $URI --interval 0.1 --host dl-host2 --spool "$SPOOL2" \
  --clock-start $((START + 3600)) --clock-step 60 --count 20 --log-level debug
check "agent logs that its full spool dropped the oldest batch" \
  wait_for 30 grep -q 'spool full' "$TMP/agent2.log"
check "the agent has made its 20 polls and only delivers" \
  wait_for 60 grep -q 'stopping: delivering what is spooled' "$TMP/agent2.log"
# A new batch is written (fsync'd, renamed) before the oldest is unlinked,
# so for that instant the directory holds bound + 1 files.
check "the spool holds at most its bound (+1 while a batch is being put)" \
  test "$(find "$SPOOL2" -maxdepth 1 -name '*.vgb' | wc -l)" -le 6
before=$(find "$SPOOL2" -maxdepth 1 -name '*.vgb' -printf '%f\n' | sort | head -1 | sed 's/^0*//; s/\.vgb$//')
start_collector collector3 "${copts[@]}"
check "the spooled batches arrive after the collector returns" \
  wait_for 30 bash -c "grep -q 'accepted batch host=dl-host2' '$TMP/collector3.log'"
gone() { ! kill -0 "$AGENT_PID" 2>/dev/null; }
check "the agent delivers its spool and exits" wait_for 60 gone
stop_pid "$AGENT_PID"
seqs2=$(grep -ho 'accepted batch host=dl-host2 stream=[0-9a-f]* seq=[0-9]*' "$TMP/collector3.log" | sed 's/.*seq=//')
first2=$(head -1 <<<"$seqs2"); last2=$(tail -1 <<<"$seqs2")
diag "oldest spooled seq when the collector came back: $before; accepted $first2..$last2"
# The batch the sender already had in flight when the collector went away
# may still arrive first (it was never dropped); then come the batches
# still spooled, from the oldest survivor on.
n2=$(wc -l <<<"$seqs2")
eq "accepted in strictly increasing order, no repeat" "$(sort -n <<<"$seqs2" | uniq | tr '\n' ' ')" "$(tr '\n' ' ' <<<"$seqs2")"
check "batches were dropped: $n2 of the 20 polls' accepted (seq $first2 to $last2)" test "$n2" -lt 20
tail2=$(awk -v b="$before" '$1 >= b' <<<"$seqs2" | tr '\n' ' ')
eq "everything from the oldest survivor (seq $before) on arrived, consecutive" "$tail2" "$(seq "$(awk -v b="$before" '$1 >= b' <<<"$seqs2" | head -1)" "$last2" | tr '\n' ' ')"
stop_pid "$COLLECTOR_PID"
done_testing
