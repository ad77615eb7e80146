#!/usr/bin/env bash
# migration_test.sh — a live migration seen by two real agents, billed as
# one run.
#
# Two vigie-agents (hosts node-a and node-b) poll two libvirt test-driver
# nodes written here. mig1 runs on node-a; then its domain disappears from
# node-a's file and appears in node-b's, and both agents reopen their
# connection (SIGHUP: the test driver re-reads its file). The test driver
# sends no lifecycle events for this, so this is the polls-only path:
# node-a reports the domain vanished, node-b sees it appear within the same
# poll window. billing.db must hold one run for mig1 (one START, no STOP or
# DELETE), owned by node-b; node-a's later reports cannot end it. Then mig1
# vanishes from node-b: that ends it.
source "$(dirname "$0")/lib.sh"

MIG=22222222-3333-4444-5555-666666666601
OTHER=22222222-3333-4444-5555-666666666602
dom() { # NAME UUID
  cat <<XML
  <domain type='test'>
    <name>$1</name>
    <uuid>$2</uuid>
    <memory unit='KiB'>1048576</memory>
    <vcpu placement='static'>1</vcpu>
    <os><type arch='x86_64'>hvm</type></os>
    <devices>
      <disk type='file' device='disk'>
        <source file='/srv/$1.img'/>
        <target dev='vda' bus='virtio'/>
      </disk>
    </devices>
  </domain>
XML
}
node() { # FILE DOMAINS... (name:uuid)
  local f=$1 d; shift
  { echo "<node><cpu><mhz>2000</mhz><model>i686</model><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads></cpu><memory>8388608</memory>"
    for d in "$@"; do dom "${d%%:*}" "${d#*:}"; done
    echo "</node>"; } >"$f.new"
  mv "$f.new" "$f"
}
node "$TMP/node-a.xml" "mig1:$MIG"
node "$TMP/node-b.xml" "other1:$OTHER"

PORT=$(free_port)
DATA=$TMP/data
DB=$DATA/billing.db
printf '[billing]\nratecard = %s\n' "$ROOT/tests/fixtures/billing/ratecard.json" >"$TMP/vigie.conf"
start_collector collector --config "$TMP/vigie.conf" --listen tcp://127.0.0.1:$PORT --data-dir "$DATA"
start_agent agent-a --collector tcp://127.0.0.1:$PORT --libvirt "test:///$TMP/node-a.xml" \
  --interval 0.2 --host node-a --spool "$TMP/spool-a"
A=$AGENT_PID
start_agent agent-b --collector tcp://127.0.0.1:$PORT --libvirt "test:///$TMP/node-b.xml" \
  --interval 0.2 --host node-b --spool "$TMP/spool-b"
B=$AGENT_PID

q() { sqlite3 -cmd '.timeout 5000' "$DB" "$1" 2>/dev/null; }
kinds() { # RESOURCE: its transition kinds in time order (1 create, 2 stop, 4 start, 6 delete)
  q "SELECT group_concat(kind, ' ') FROM (SELECT kind FROM transitions WHERE resource='$1' ORDER BY time_ms, kind)"
}
check "both hosts' instances are metered" wait_for 20 bash -c \
  "[[ \$(sqlite3 -cmd '.timeout 5000' '$DB' \"SELECT count(*) FROM resources WHERE type=1 AND host IN ('node-a','node-b')\" 2>/dev/null) == 2 ]]"
eq "mig1 runs on node-a" "$(q "SELECT host FROM resources WHERE id='$MIG'")" node-a
sleep 1

# the move: gone from node-a, running on node-b; both reconnect
node "$TMP/node-a.xml"
node "$TMP/node-b.xml" "other1:$OTHER" "mig1:$MIG"
kill -HUP "$A" "$B"
check "node-b takes mig1 over" wait_for 20 bash -c \
  "[[ \$(sqlite3 -cmd '.timeout 5000' '$DB' \"SELECT host FROM resources WHERE id='$MIG'\" 2>/dev/null) == node-b ]]"
check "node-a reopened its node, without mig1" wait_for 30 grep -q "SIGHUP: reopening" "$TMP/agent-a.log"
sleep 2 # ten more polls from both hosts, node-a's vanish report among them
eq "one run across both hosts: created and started once, never stopped" "$(kinds "$MIG")" "1 4"
eq "its disk is one piece of storage too" "$(kinds "$MIG-vda")" "1"
eq "still owned by node-b" "$(q "SELECT host FROM resources WHERE id='$MIG'")" node-b
eq "the other instance is untouched" "$(kinds "$OTHER")" "1 4"

# gone from node-b as well: now it ends
node "$TMP/node-b.xml" "other1:$OTHER"
kill -HUP "$B"
check "node-b's report ends mig1" wait_for 20 bash -c \
  "[[ \$(sqlite3 -cmd '.timeout 5000' '$DB' \"SELECT group_concat(kind, ' ') FROM (SELECT kind FROM transitions WHERE resource='$MIG' ORDER BY time_ms, kind)\" 2>/dev/null) == '1 4 2 6' ]]"
stop_pid "$A"; stop_pid "$B"; stop_pid "$COLLECTOR_PID"
done_testing
