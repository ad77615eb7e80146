#!/usr/bin/env bash
# spool_lock_test.sh — one agent at a time owns a spool directory
# (docs/operations.md, "Running the agent"). Spool files are named by
# sequence number only and the state file holds one stream id and
# next_seq: two agents on one spool shared the stream, wrote the same
# names (one host's batches overwrote the other's while the collector was
# down) and the overwritten ones were lost or sent twice. A second agent
# on a spool in use must refuse to start (exit 2, naming the directory and
# the holder's pid); the first keeps running and its batches arrive.
source "$(dirname "$0")/lib.sh"

collector_ports P HP
SPOOL=$TMP/spool
start_agent a --collector "tcp://127.0.0.1:$P" --libvirt test:///default --interval 0.5 \
  --host hostA --spool "$SPOOL"
A=$AGENT_PID
check "agent A starts and spools" wait_for 30 test -f "$SPOOL/state"

start_agent b --collector "tcp://127.0.0.1:$P" --libvirt test:///default --interval 0.5 \
  --host hostB --spool "$SPOOL"
B=$AGENT_PID
gone() { ! kill -0 "$1" 2>/dev/null; }
wait_for 10 gone "$B"
if gone "$B"; then wait "$B"; rc=$?; else rc=running; fi
eq "a second agent on a spool in use exits 2" "$rc" 2
check "... saying the spool directory is in use" \
  grep -qF "spool directory $SPOOL is in use by another agent" "$TMP/b.log"
check "... naming the running agent's pid" grep -qF "(pid $A," "$TMP/b.log"
diag "$(tail -n 1 "$TMP/b.log")"
[[ $rc == running ]] && stop_pid "$B"
check "agent A keeps running" kill -0 "$A"

start_collector c --listen "tcp://127.0.0.1:$P" --http "127.0.0.1:$HP" --data-dir "$TMP/data" \
  --log-level debug
check "the collector answers" wait_for 30 answers_health "$HP"
check "agent A's batches arrive" wait_for 30 grep -q "accepted batch host=hostA" "$TMP/c.log"
check "no batch of hostB arrives" bash -c "! grep -q 'host=hostB' '$TMP/c.log'"
stop_pid "$A"; rc=$?
eq "agent A stops cleanly" "$rc" 0

# The lock goes with its holder: the next agent on the spool starts.
start_agent b2 --collector "tcp://127.0.0.1:$P" --libvirt test:///default --interval 0.5 \
  --host hostC --spool "$SPOOL"
B2=$AGENT_PID
check "once A stopped, another agent owns the spool" \
  wait_for 30 grep -q "accepted batch host=hostC" "$TMP/c.log"
sleep 1
check "... and keeps running" kill -0 "$B2"
stop_pid "$B2"
done_testing
