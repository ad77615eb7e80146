#!/usr/bin/env bash
# agent_drain_test.sh — an agent's changes of collector are logged while it
# drains its spool after its last poll, as they are while it polls.
#
# One agent with two collectors ([agent] collectors), neither up at first,
# polls once (--count 1) and then drains (drain_ms): its primary does not
# acknowledge within ack_timeout_ms and it fails over to the other one,
# which must be logged ("did not acknowledge in time: batches now go to");
# then a collector starts on the primary's port, takes the batch, and
# the agent logs that it acknowledges again, exits 0 with an empty spool.
# Before the drain was watched, the agent logged nothing of the kind after
# its last poll: the cluster test (tests/cluster/cluster_test.sh), whose
# agents on a loaded machine often finish polling before every batch is
# acknowledged, waited in vain for "back on this host's primary
# collector" and injected its later faults after the last batch.
source "$(dirname "$0")/lib.sh"

free_ports P0 P1 HP
cat >"$TMP/agent.conf" <<CONF
[agent]
collectors = tcp://127.0.0.1:$P0, tcp://127.0.0.1:$P1
ack_timeout_ms = 1000
probe_interval_ms = 200
drain_ms = 60000
host_fs = false
CONF
start_agent agent --config "$TMP/agent.conf" --libvirt test:///default --interval 0.1 \
  --host drain-host --spool "$TMP/spool" --count 1 --log-level debug
APID=$AGENT_PID
check "the agent names its primary" wait_for 30 grep -q "primary by rendezvous hashing" "$TMP/agent.log"
purl=$(grep -o 'sending to tcp://127.0.0.1:[0-9]*' "$TMP/agent.log" | head -1 | sed 's/sending to //')
sport=$P1; [[ $purl == "tcp://127.0.0.1:$P1" ]] && sport=$P0
pport=${purl##*:}
check "the agent polled its one poll and drains" wait_for 30 grep -q "stopping: delivering what is spooled" "$TMP/agent.log"
check "while draining, its failover to the other collector is logged" \
  wait_for 30 grep -q "collector $purl did not acknowledge in time: batches now go to tcp://127.0.0.1:$sport" "$TMP/agent.log"

start_collector c --listen "tcp://127.0.0.1:$pport" --http "127.0.0.1:$HP" --data-dir "$TMP/data" \
  --log-level debug
check "a collector on the primary's port answers" wait_for 20 answers_health "$HP"
check "while draining, the primary's ack is logged" \
  wait_for 30 grep -q "collector $purl acknowledges again" "$TMP/agent.log"
for _ in $(seq 300); do kill -0 "$APID" 2>/dev/null || break; sleep 0.1; done
wait "$APID"; rc=$?
eq "the agent exits 0 once the batch is acknowledged" "$rc" 0
eq "its spool is empty" "$(find "$TMP/spool" -maxdepth 1 -name '*.vgb' | wc -l)" 0
check "the collector accepted the batch" grep -q "accepted batch host=drain-host" "$TMP/c.log"
done_testing
