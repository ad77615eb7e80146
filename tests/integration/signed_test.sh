#!/usr/bin/env bash
# signed_test.sh — signed agents end to end with the real binaries (issue 8).
#
# A collector with require_signatures on and a keys directory; agents on
# the libvirt test driver with a synthetic clock:
#  - an agent with its host's key delivers (every batch acknowledged with a
#    signed ack, stored, spool empty);
#  - an agent holding another host's key is refused ("wrong host"); since
#    the refusal is not signed with its key it keeps its batches spooled
#    (nothing moved to rejected/) and says so; after the operator fixes
#    the key and sends SIGHUP, the spool drains;
#  - an agent without a key is refused ("not signed") and, having no key to
#    check answers with, moves its batches to rejected/;
#  - an agent whose key file others can read does not start (exit 2, file
#    named); neither does a collector with such a key.
source "$(dirname "$0")/lib.sh"

URI=test:///default
PORT=$(free_port); HPORT=$(free_port)
while [[ $HPORT == "$PORT" ]]; do HPORT=$(free_port); done
DATA=$TMP/data
KEYS=$TMP/keys
START=$(( ($(date +%s) - 7200) / 60 * 60 ))
mkdir -p "$KEYS"; chmod 700 "$KEYS"
umask 077
openssl rand -hex 32 >"$KEYS/sg-good.key"
openssl rand -hex 32 >"$KEYS/sg-other.key"
openssl rand -hex 32 >"$TMP/stolen.key"      # not the key the collector has for sg-other
cp "$KEYS/sg-good.key" "$TMP/good.key"
umask 022

start_secure() { # NAME: the collector with signatures required
  "$BIN/vigie-collector" --keys-dir "$KEYS" --listen tcp://127.0.0.1:$PORT \
    --http 127.0.0.1:$HPORT --data-dir "$DATA" --log-level debug >>"$TMP/$1.log" 2>&1 &
  COLLECTOR_PID=$!
  _pids+=("$COLLECTOR_PID")
}
agent() { # NAME HOST [ARGS...]: an agent polling fast on a synthetic clock
  local name=$1 host=$2; shift 2
  start_agent "$name" --collector tcp://127.0.0.1:$PORT --libvirt $URI --interval 0.1 \
    --host "$host" --spool "$TMP/spool-$name" --clock-start $START --clock-step 60 \
    --log-level debug "$@"
}
spooled() { find "$TMP/spool-$1" -maxdepth 1 -name '*.vgb' | wc -l; }
rejected() { find "$TMP/spool-$1/rejected" -name '*.vgb' 2>/dev/null | wc -l; }
last_seq() { sqlite3 "$DATA/registry.db" "select coalesce(max(last_seq),0) from streams where host='$1'" 2>/dev/null || echo 0; }

start_secure collector
check "collector starts with signatures required" wait_for 10 curl -sf -o /dev/null "http://127.0.0.1:$HPORT/v1/health"
check "it loaded both keys" grep -q '2 agent key(s) from' "$TMP/collector.log"

# ---- the right key ----
agent good sg-good --key-file "$TMP/good.key"
GOOD_PID=$AGENT_PID
check "the agent says it signs" wait_for 5 grep -q '(signed)' "$TMP/good.log"
check "signed batches are stored (registry seq >= 10)" \
  wait_for 20 bash -c "[[ \$(sqlite3 '$DATA/registry.db' \"select coalesce(max(last_seq),0) from streams where host='sg-good'\" 2>/dev/null) -ge 10 ]]"
check "its RRD files exist" test -d "$DATA/rrd/host/sg-good"

# ---- another host's key: refused, kept, then fixed ----
agent other sg-other --key-file "$TMP/stolen.key"
OTHER_PID=$AGENT_PID
check "a batch signed with a key that is not the host's is refused" \
  wait_for 10 grep -q 'refused batch host=sg-other.*forged' "$TMP/collector.log"
check "the agent keeps those batches spooled (>= 5)" \
  wait_for 10 bash -c "[[ \$(find '$TMP/spool-other' -maxdepth 1 -name '*.vgb' | wc -l) -ge 5 ]]"
eq "and moves none to rejected/ (the refusal was not signed with its key)" "$(rejected other)" 0
check "the agent says why" wait_for 5 grep -q 'without a valid signature' "$TMP/other.log"
eq "nothing of sg-other is stored" "$(last_seq sg-other)" 0
# A node that holds sg-good's key and claims to be sg-other.
cp "$TMP/good.key" "$TMP/wrong-host.key"
agent wronghost sg-other --key-file "$TMP/wrong-host.key"
WH_PID=$AGENT_PID
check "a batch signed with another host's key is refused as wrong host" \
  wait_for 10 grep -q "refused batch host=sg-other.*another host's key" "$TMP/collector.log"
stop_pid "$WH_PID"
eq "nothing of sg-other is stored (still)" "$(last_seq sg-other)" 0
# The operator installs the key the agent really has, and reloads.
cp "$TMP/stolen.key" "$KEYS/sg-other.key"; chmod 600 "$KEYS/sg-other.key"
kill -HUP "$COLLECTOR_PID"
check "SIGHUP reloads the keys" wait_for 5 grep -q 'SIGHUP: 2 agent key(s) loaded' "$TMP/collector.log"
check "then the spooled batches drain" \
  wait_for 30 bash -c "[[ \$(find '$TMP/spool-other' -maxdepth 1 -name '*.vgb' | wc -l) -le 1 ]]"
check "and are stored" test "$(last_seq sg-other)" -ge 5

# ---- no key ----
agent nokey sg-nokey
check "an unsigned batch is refused" wait_for 10 grep -q 'refused batch host=sg-nokey.*not signed' "$TMP/collector.log"
check "an agent without a key moves refused batches to rejected/" \
  wait_for 10 bash -c "[[ \$(find '$TMP/spool-nokey/rejected' -name '*.vgb' 2>/dev/null | wc -l) -ge 1 ]]"
stop_pid "$AGENT_PID"

# ---- permissions ----
cp "$TMP/good.key" "$TMP/loose.key"; chmod 644 "$TMP/loose.key"
"$BIN/vigie-agent" --collector tcp://127.0.0.1:$PORT --libvirt $URI --host sg-good \
  --spool "$TMP/spool-loose" --key-file "$TMP/loose.key" >"$TMP/loose.log" 2>&1
eq "an agent refuses a key file others can read (exit 2)" "$?" 2
check "naming it" grep -q 'loose.key.*chmod 600' "$TMP/loose.log"

stop_pid "$GOOD_PID"; rc=$?
eq "the signing agent exits 0" "$rc" 0
eq "its spool is empty" "$(spooled good)" 0
stop_pid "$OTHER_PID"
stop_pid "$COLLECTOR_PID"; rc=$?
eq "collector exits 0" "$rc" 0
check "refusals are counted by reason" \
  grep -qE 'batches refused: unsigned [1-9][0-9]*, forged [1-9][0-9]*, wrong host [1-9][0-9]*' "$TMP/collector.log"
chmod 644 "$KEYS/sg-good.key"
"$BIN/vigie-collector" --keys-dir "$KEYS" --listen tcp://127.0.0.1:$PORT \
  --http 127.0.0.1:$HPORT --data-dir "$DATA" >"$TMP/loose-collector.log" 2>&1
eq "a collector refuses a key file others can read (exit 2)" "$?" 2
check "naming it" grep -q 'sg-good.key' "$TMP/loose-collector.log"
done_testing
