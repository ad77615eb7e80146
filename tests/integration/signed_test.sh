#!/usr/bin/env bash
# signed_test.sh — signed agents end to end with the real binaries.
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
#    named); neither does a collector with such a key;
#  - batches crafted byte by byte (docs/protocol.md: header, host, HMAC
#    trailer made with openssl) and sent with nanocat, a known number of
#    each kind (malformed, oversize, unsigned, forged, wrong host, no key,
#    stale, future, replayed): every one gets its answer and GET /metrics
#    counts exactly that many under vigie_collector_batches_rejected_total
#    {reason=...} (and duplicates for the replays); the PUB socket's
#    counters are exposed too.
source "$(dirname "$0")/lib.sh"

URI=test:///default
collector_ports NPORT
MAX_MESSAGE=262144
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
# An admin API token for /metrics; a clock-skew window (so a stale batch
# can be refused; the agents' synthetic clocks stay well inside it) and a
# small max_message (so an oversize one is cheap to send).
TOKEN=$("$BIN/vigie-collector" --data-dir "$DATA" token create --admin 2>/dev/null | grep '^vgt_')
AUTH=(-H "Authorization: Bearer $TOKEN")
cat >"$TMP/vigie.conf" <<CONF
[collector]
max_clock_skew = 2d
max_message_bytes = $MAX_MESSAGE
CONF

start_secure() { # NAME: the collector with signatures required
  "$BIN/vigie-collector" --config "$TMP/vigie.conf" --keys-dir "$KEYS" \
    --listen tcp://127.0.0.1:$PORT --notify tcp://127.0.0.1:$NPORT \
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
check "collector starts with signatures required" wait_for 30 curl -sf -o /dev/null "http://127.0.0.1:$HPORT/v1/health"
check "it loaded both keys" grep -q '2 agent key(s) from' "$TMP/collector.log"

# ---- the right key ----
agent good sg-good --key-file "$TMP/good.key"
GOOD_PID=$AGENT_PID
check "the agent says it signs" wait_for 30 grep -q '(signed)' "$TMP/good.log"
check "signed batches are stored (registry seq >= 10)" \
  wait_for 20 bash -c "[[ \$(sqlite3 '$DATA/registry.db' \"select coalesce(max(last_seq),0) from streams where host='sg-good'\" 2>/dev/null) -ge 10 ]]"
check "its RRD files exist" test -d "$DATA/rrd/host/sg-good"

# ---- another host's key: refused, kept, then fixed ----
agent other sg-other --key-file "$TMP/stolen.key"
OTHER_PID=$AGENT_PID
check "a batch signed with a key that is not the host's is refused" \
  wait_for 30 grep -q 'refused batch host=sg-other.*forged' "$TMP/collector.log"
check "the agent keeps those batches spooled (>= 5)" \
  wait_for 30 bash -c "[[ \$(find '$TMP/spool-other' -maxdepth 1 -name '*.vgb' | wc -l) -ge 5 ]]"
eq "and moves none to rejected/ (the refusal was not signed with its key)" "$(rejected other)" 0
check "the agent says why" wait_for 30 grep -q 'without a valid signature' "$TMP/other.log"
eq "nothing of sg-other is stored" "$(last_seq sg-other)" 0
# A node that holds sg-good's key and claims to be sg-other.
cp "$TMP/good.key" "$TMP/wrong-host.key"
agent wronghost sg-other --key-file "$TMP/wrong-host.key"
WH_PID=$AGENT_PID
check "a batch signed with another host's key is refused as wrong host" \
  wait_for 30 grep -q "refused batch host=sg-other.*another host's key" "$TMP/collector.log"
stop_pid "$WH_PID"
eq "nothing of sg-other is stored (still)" "$(last_seq sg-other)" 0
# The operator installs the key the agent really has, and reloads.
cp "$TMP/stolen.key" "$KEYS/sg-other.key"; chmod 600 "$KEYS/sg-other.key"
kill -HUP "$COLLECTOR_PID"
check "SIGHUP reloads the keys" wait_for 30 grep -q 'SIGHUP: 2 agent key(s) loaded' "$TMP/collector.log"
check "then the spooled batches drain" \
  wait_for 60 bash -c "[[ \$(find '$TMP/spool-other' -maxdepth 1 -name '*.vgb' | wc -l) -le 1 ]]"
check "and are stored" test "$(last_seq sg-other)" -ge 5

# ---- no key ----
agent nokey sg-nokey
check "an unsigned batch is refused" wait_for 30 grep -q 'refused batch host=sg-nokey.*not signed' "$TMP/collector.log"
check "an agent without a key moves refused batches to rejected/" \
  wait_for 30 bash -c "[[ \$(find '$TMP/spool-nokey/rejected' -name '*.vgb' 2>/dev/null | wc -l) -ge 1 ]]"
stop_pid "$AGENT_PID"

# ---- permissions ----
cp "$TMP/good.key" "$TMP/loose.key"; chmod 644 "$TMP/loose.key"
"$BIN/vigie-agent" --collector tcp://127.0.0.1:$PORT --libvirt $URI --host sg-good \
  --spool "$TMP/spool-loose" --key-file "$TMP/loose.key" >"$TMP/loose.log" 2>&1
eq "an agent refuses a key file others can read (exit 2)" "$?" 2
check "naming it" grep -q 'loose.key.*chmod 600' "$TMP/loose.log"

# it polls every 0.1 s: on a busy machine (or a sanitizer build) the
# collector may be behind; every batch it made reaches the collector
check "the signing agent's spool drains" \
  wait_for 60 bash -c "[[ \$(find '$TMP/spool-good' -maxdepth 1 -name '*.vgb' | wc -l) -le 1 ]]"
stop_pid "$GOOD_PID"; rc=$?
eq "the signing agent exits 0" "$rc" 0
check "its spool holds at most the batch of its last poll" test "$(spooled good)" -le 1
eq "and none was rejected" "$(rejected good)" 0
stop_pid "$OTHER_PID"
# ---- every refusal counted, by reason, on /metrics ----
# le BYTES N: N as BYTES little-endian bytes, in hex
le() { local i out=; for ((i = 0; i < $1; i++)); do out+=$(printf '%02x' $(( ($2 >> (8 * i)) & 255 ))); done; echo "$out"; }
# craft FILE HOST STREAM SEQ TIME_MS [KEYHEX]: an empty batch (header,
# host, one string), signed with KEYHEX when given: flag bit 0 set and the
# HMAC-SHA-256 of every byte before it appended (docs/protocol.md; checked
# against its test vector below).
craft() {
  local f=$1 host=$2 key=${6:-}
  { echo "56474231 01 01 $(le 2 $([[ -n $key ]] && echo 1 || echo 0)) $(le 8 "$3") $(le 8 "$4") $(le 8 "$5")"
    echo "$(le 4 1) $(le 4 0) $(le 4 0) $(le 4 0) $(le 4 0) $(le 2 ${#host}) $(printf %s "$host" | xxd -p | tr -d '\n')"
  } | xxd -r -p >"$f"
  if [[ -n $key ]]; then
    openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary <"$f" >"$f.mac" && cat "$f.mac" >>"$f"
  fi
}
# send FILE: one request; prints the ack's status byte (00 OK, 01
# DUPLICATE, 03 REJECTED; "none" without an answer)
send() {
  local st
  st=$(timeout 10 nanocat --req --connect "tcp://127.0.0.1:$PORT" -F "$1" --raw --recv-timeout 5 2>/dev/null |
         xxd -p | tr -d '\n' | cut -c11-12)
  echo "${st:-none}"
}
scrape() { curl -s --max-time 5 "${AUTH[@]}" "$API/metrics" >"$1"; }
val() { # FILE SAMPLE: the sample's value (0 when absent)
  awk -v k="$2" '$1 == k { v = $2 } END { print v + 0 }' "$1"
}
REASONS=(malformed oversize unsigned forged wrong_host no_key stale future clock_unset)
declare -A WANT=([malformed]=2 [oversize]=1 [unsigned]=2 [forged]=3 [wrong_host]=1
                 [no_key]=1 [stale]=1 [future]=1 [clock_unset]=0)
NOW_MS=$(( $(date +%s) * 1000 ))
GOOD_KEY=$(cat "$TMP/good.key"); OTHER_KEY=$(cat "$KEYS/sg-other.key")
RANDOM_KEY=$(openssl rand -hex 32)
S=$(( 0x7e57 ))  # a stream no agent uses
if ! command -v nanocat >/dev/null || ! command -v xxd >/dev/null; then
  for _ in $(seq 14); do skip "crafted batches need nanocat and xxd"; done
else
  craft "$TMP/kat.vgb" kat-host 1 1 1795000000000 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
  eq "the batch crafter reproduces the protocol's signed test vector" \
    "$(xxd -p "$TMP/kat.vgb" | tr -d '\n' | tail -c 64)" b2181d85fa8187310215f2f1628ce89921ec226f29029a2919d07636c7880e2e
  scrape "$TMP/m0"
  printf 'not a batch' >"$TMP/b.garbage"
  craft "$TMP/b.full" sg-good $S 1 $NOW_MS "$GOOD_KEY"; head -c 50 "$TMP/b.full" >"$TMP/b.truncated"
  head -c $((MAX_MESSAGE + 100)) /dev/zero >"$TMP/b.oversize"
  craft "$TMP/b.unsigned" sg-good $S 2 $NOW_MS
  craft "$TMP/b.forged" sg-good $S 3 $NOW_MS "$RANDOM_KEY"
  craft "$TMP/b.wronghost" sg-good $S 4 $NOW_MS "$OTHER_KEY"
  craft "$TMP/b.nokey" sg-stranger $S 5 $NOW_MS "$RANDOM_KEY"
  craft "$TMP/b.stale" sg-good $S 6 $((NOW_MS - 3 * 86400000)) "$GOOD_KEY"
  craft "$TMP/b.future" sg-good $S 7 $((NOW_MS + 3600000)) "$GOOD_KEY"
  craft "$TMP/b.good" sg-good $S 8 $NOW_MS "$GOOD_KEY"
  got=
  for f in garbage truncated oversize unsigned unsigned forged forged forged \
           wronghost nokey stale future; do
    got+="$(send "$TMP/b.$f") "
  done
  eq "each crafted bad batch is answered REJECTED" "$got" "$(printf '03 %.0s' $(seq 12))"
  eq "a good signed batch, then replayed twice: OK, DUPLICATE, DUPLICATE" \
    "$(send "$TMP/b.good") $(send "$TMP/b.good") $(send "$TMP/b.good")" "00 01 01"
  scrape "$TMP/m1"
  bad=; sum0=0; sum1=0
  for r in "${REASONS[@]}"; do
    k="vigie_collector_batches_rejected_total{reason=\"$r\"}"
    grep -qF "$k " "$TMP/m1" || bad+=" $r:absent"
    a=$(val "$TMP/m0" "$k"); b=$(val "$TMP/m1" "$k")
    sum0=$((sum0 + a)); sum1=$((sum1 + b))
    [[ $((b - a)) == "${WANT[$r]}" ]] || bad+=" $r:$((b - a))/${WANT[$r]}"
  done
  eq "/metrics counts each kind exactly as sent (reason:got/want)" "${bad:-none}" none
  eq "the reasons add up to every rejection sent" "$((sum1 - sum0))" 12
  n="vigie_collector_batches_received_total"
  eq "every crafted batch is received once" "$(( $(val "$TMP/m1" $n) - $(val "$TMP/m0" $n) ))" 15
  n="vigie_collector_batches_duplicate_total"
  eq "the two replays are counted as duplicates" "$(( $(val "$TMP/m1" $n) - $(val "$TMP/m0" $n) ))" 2
  n='vigie_collector_batches_refused_total{reason="forged"}'
  eq "the older ..._refused_total name still counts (forged)" \
    "$(( $(val "$TMP/m1" "$n") - $(val "$TMP/m0" "$n") ))" 3
  check "one TYPE line for the rejected family" \
    test "$(grep -c '^# TYPE vigie_collector_batches_rejected_total counter$' "$TMP/m1")" = 1
  check "the PUB socket's messages are counted (the agents' metric stream)" \
    awk '$1 == "vigie_alarms_pub_messages_total{topic=\"metric\"}" && $2 > 0 { f = 1 } END { exit !f }' "$TMP/m1"
  eq "no PUB message dropped (queue full)" "$(val "$TMP/m1" 'vigie_alarms_pub_dropped_total{reason="queue_full"}')" 0
  eq "no PUB send error" "$(val "$TMP/m1" 'vigie_alarms_pub_dropped_total{reason="send_error"}')" 0
  check "the PUB queue gauge is exposed" grep -q '^vigie_alarms_pub_queued_bytes ' "$TMP/m1"
  check "SSE losses are exposed" grep -q '^vigie_alarms_sse_lost_total ' "$TMP/m1"
fi
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
