#!/usr/bin/env bash
# stream_key_rotation_test.sh — the metric stream's key rotated on two
# collectors (one PostgreSQL, started by the test) by SIGHUP, one
# collector at a time, in the three steps of docs/operations.md
# ("Rotating the stream key"): accept the new key, sign with it, drop the
# old. After every reload a batch goes to one collector and every alarm
# changes state, those owned by the other collector too (they see it only
# through the stream): nothing is refused, no transition is missed. A bad
# key file on SIGHUP keeps the keys in use (logged, counted); a collector
# given another key has its stream refused (bad_signature).
# `config check` refuses a stream without a key, or with an unreadable
# one, and a missing agents' keys directory, with the words of the start,
# and exits 2.
# SKIP, with the reason, only when PostgreSQL cannot run on this machine.
source "$(dirname "$0")/lib.sh"

alarm_tools

need_postgres
sql() { "$PG_BIN/psql" -Atq -d "$PG_URL" -v ON_ERROR_STOP=1 -c "$1"; }

LEASE_S=2
NALARMS=6
T0=$(( ($(date +%s) - 7200) / 60 * 60 * 1000 ))   # two hours ago, on a minute

start_hook

# each collector its own copy of the key files, as configuration
# management would deliver them; the accept file does not exist yet
openssl rand -hex 32 >"$TMP/old.key"
openssl rand -hex 32 >"$TMP/new.key"
openssl rand -hex 32 >"$TMP/wrong.key"
chmod 600 "$TMP"/*.key
put() { cp "$1" "$2" && chmod 600 "$2"; } # KEY FILE
declare -a PORT HTTP STREAM PID
for i in 1 2; do
  put "$TMP/old.key" "$TMP/c$i.key"
  alarm_cluster_conf $i "stream_key_file = $TMP/c$i.key" "stream_accept_key_file = $TMP/c$i.accept"
done

# ---- config check: the start's refusals, before any start ----
sed -e '/^stream_key_file/d' -e '/^stream_accept_key_file/d' "$TMP/c1.conf" >"$TMP/nokey.conf"
out=$("$BIN/vigie-collector" --allow-unsigned --config "$TMP/nokey.conf" config check 2>&1); rc=$?
eq "config check: a stream without stream_key_file exits 2" "$rc" 2
check "  with the start's words" grep -q "is set without \[cluster\] stream_key_file: the metric stream would be unsigned" <<<"$out"
sed -e "s|^stream_key_file = .*|stream_key_file = $TMP/missing.key|" -e "s|^data_dir = .*|data_dir = $TMP/missing|" "$TMP/c1.conf" >"$TMP/missing.conf"
out=$("$BIN/vigie-collector" --allow-unsigned --config "$TMP/missing.conf" config check 2>&1); rc=$?
eq "config check: an unreadable stream_key_file exits 2" "$rc" 2
check "  naming the key and the file" grep -q "\[cluster\] stream_key_file: .*$TMP/missing.key" <<<"$out"
out=$(timeout 60 "$BIN/vigie-collector" --allow-unsigned --config "$TMP/missing.conf" 2>&1); rc=$?
check "  the start refuses it with the same words (rc $rc)" grep -q "\[cluster\] stream_key_file: .*$TMP/missing.key" <<<"$out"
out=$("$BIN/vigie-collector" --allow-unsigned --config "$TMP/c1.conf" config check 2>&1); rc=$?
eq "config check: the collectors' configuration passes" "$rc $out" "0 configuration OK"
out=$("$BIN/vigie-collector" --keys-dir "$TMP/nokeys" --config "$TMP/c1.conf" config check 2>&1); rc=$?
eq "config check: signatures required without a keys directory exits 2" "$rc" 2
check "  naming the directory" grep -q "keys directory $TMP/nokeys: " <<<"$out"
check "  and created nothing" test ! -e "$TMP/data1"

mkdir -p "$TMP/data1"
ADMIN=$("$BIN/vigie-collector" --config "$TMP/c1.conf" token create --admin --name it 2>"$TMP/token.err" | tail -1)
check "an admin token on the shared state" grep -q '^vgt_' <<<"$ADMIN"
acurl() { curl -sS --max-time 5 -H "Authorization: Bearer $ADMIN" "$@"; }

for i in 1 2; do
  "$BIN/vigie-collector" --allow-unsigned --config "$TMP/c$i.conf" >>"$TMP/c$i.log" 2>&1 &
  PID[i]=$!
  _pids+=("${PID[i]}")
done
for i in 1 2; do
  check "collector $i answers /v1/health" wait_for 30 curl -sf "http://127.0.0.1:${HTTP[i]}/v1/health"
done
# create K: alarm cpu-vmK on vmK, its id appended to $TMP/ids
create() {
  local code
  code=$(acurl -o "$TMP/post.out" -w '%{http_code}' -XPOST "http://127.0.0.1:${HTTP[1]}/v1/alarms" -d "{
    \"name\":\"cpu-vm$1\",\"metric\":\"cpu.util\",\"resource\":\"vm$1\",\"period\":60,
    \"evaluation_periods\":1,\"datapoints_to_alarm\":1,\"comparison\":\"gt\",\"threshold\":90,
    \"actions\":{\"alarm\":[\"$HOOK\"],\"ok\":[\"$HOOK\"]}}")
  [[ $code == 201 ]] && jq -r .id "$TMP/post.out" >>"$TMP/ids"
}
# the owners the lease rounds give the alarms with both collectors live
# (rendezvous hash of node and alarm id): the ids are random, so all six
# on one node would happen once in 32 runs; more alarms are created until
# each collector owns one, as the rotation needs (each collector must
# receive batches for its own alarms through the other's stream)
want() { "$OWNERBIN" node1 node2 <"$TMP/ids"; }
: >"$TMP/ids"
for k in $(seq $NALARMS); do create $k || break; done
while [[ $(want | sort -u | wc -l) -lt 2 && $NALARMS -lt 40 ]]; do
  NALARMS=$((NALARMS + 1))
  create $NALARMS || break
done
eq "$NALARMS alarms created, on both collectors by the hash" "$(wc -l <"$TMP/ids") $(want | sort -u | wc -l)" "$NALARMS 2"
subscribed() { local i; for i in 1 2; do
  grep -q "subscribed to node.'s metric stream" "$TMP/c$i.log" || return 1; done; }
check "each collector subscribes to the other's metric stream" wait_for 20 subscribed
# every alarm's live lease held by the owner the hash gives it: a lease
# counted as soon as it exists may be held by the collector that saw
# itself alone, until the other one's first rounds
paste -d' ' "$TMP/ids" <(want) | sort >"$TMP/want"
spread() {
  sql "SELECT alarm_id || ' ' || owner FROM vigie_alarms.alarm_leases WHERE expires_at > now()" | sort >"$TMP/leases"
  cmp -s "$TMP/leases" "$TMP/want"
}
check "every alarm has one live lease, the hash's owner's" wait_for 20 spread
diag "leases: $(cut -d' ' -f2 "$TMP/leases" | sort | uniq -c | tr -s ' \n' ' ')"
owners=$(sql "SELECT count(DISTINCT owner) FROM vigie_alarms.alarm_leases")
check "the alarms are spread over both collectors ($owners owners)" test "$owners" -eq 2
received() { curl -sf -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:${HTTP[$1]}/v1/health" | jq '.cluster.stream.received // 0'; }
WSEQ=0
warm() { # COLLECTOR: its stream reaches the other
  local o=$(( 3 - $1 )) r
  r=$(received $o)
  WSEQ=$((WSEQ + 1))
  echo "$((T0 - 600000 + WSEQ * 1000)) instance vm0 cpu.util=1" |
    "$SEND" --collector "tcp://127.0.0.1:${PORT[$1]}" --host warm --stream 1 --seq $WSEQ >/dev/null 2>&1
  sleep 0.2
  [[ $(received $o) -gt $r ]]
}
for i in 1 2; do check "collector $i's metric stream reaches the other" wait_for 20 warm $i; done

SEQ=0
MINUTE=0
# send VALUE COLLECTOR: one batch at the next minute, every vm
send() {
  local t=$((T0 + MINUTE * 60000)) k
  MINUTE=$((MINUTE + 1)); SEQ=$((SEQ + 1))
  {
    echo "$t instance vm1 cpu.util=$1"
    for k in $(seq 2 $NALARMS); do echo "& instance vm$k cpu.util=$1"; done
  } | "$SEND" --collector "tcp://127.0.0.1:${PORT[$2]}" --host h1 --stream 1 --seq $SEQ \
    >>"$TMP/send.out" 2>&1
}
delivered() { grep -c ' 200 ' "$TMP/hook.log" 2>/dev/null; }
upto() { [[ $(delivered) -ge $1 ]]; }
refused_total() { # COLLECTOR [REASON]
  acurl "http://127.0.0.1:${HTTP[$1]}/metrics" |
    awk -v r="${2:-}" '$1 ~ /^vigie_cluster_stream_refused_total/ && (r == "" || index($1, "\"" r "\"")) {n += $2} END {print n + 0}'
}
reloads() { # COLLECTOR RESULT
  acurl "http://127.0.0.1:${HTTP[$1]}/metrics" |
    awk -v r="$2" '$1 == "vigie_cluster_stream_key_reloads_total{result=\"" r "\"}" {print $2}'
}
hup() { # COLLECTOR: SIGHUP, until its reload is counted
  local ok=$(reloads $1 ok) err=$(reloads $1 error)
  kill -HUP "${PID[$1]}"
  wait_for 10 eval "[[ \$(reloads $1 ok) -gt $ok || \$(reloads $1 error) -gt $err ]]"
}

# every alarm to ok then alarm (a series' first sample leaves its period
# open: the second one closes both), the batches to each collector
check "minute 0 (50) acknowledged by collector 1" send 50 1
check "minute 1 (95) acknowledged by collector 2" send 95 2
N=$((2 * NALARMS))
check "  the ok, then alarm notifications are delivered" wait_for 20 upto $N

# ---- the rotation: three steps, one collector at a time ----
VALUE=50
step() { # DESCRIPTION COLLECTOR: SIGHUP it, then a batch to the other
  local o=$(( 3 - $2 ))
  check "$1: collector $2 reloads its keys on SIGHUP" hup $2
  check "  a batch to collector $o acknowledged" send $VALUE $o
  N=$((N + NALARMS))
  check "  every alarm's transition is delivered, the other node's too ($N)" wait_for 20 upto $N
  VALUE=$(( VALUE == 50 ? 95 : 50 ))
}
for i in 1 2; do put "$TMP/new.key" "$TMP/c$i.accept"; step "step 1 (accept the new key)" $i; done
for i in 1 2; do
  put "$TMP/new.key" "$TMP/c$i.key"; put "$TMP/old.key" "$TMP/c$i.accept"
  step "step 2 (sign with the new key, accept the old)" $i
done
for i in 1 2; do rm "$TMP/c$i.accept"; step "step 3 (drop the old key)" $i; done
eq "no stream message refused during the rotation" "$(( $(refused_total 1) + $(refused_total 2) ))" 0
eq "six reloads counted, none failed" "$(( $(reloads 1 ok) + $(reloads 2 ok) )) $(( $(reloads 1 error) + $(reloads 2 error) ))" "6 0"
check "  the reload logged" grep -q "SIGHUP: the metric stream's key reloaded from $TMP/c1.key" "$TMP/c1.log"
sleep 1 # anything doubled would arrive now
eq "  each notification once" "$(delivered)" "$N"

# ---- a bad new key file: the keys in use stay ----
echo 0011 >"$TMP/c1.key"; chmod 600 "$TMP/c1.key"
check "a too short key file on SIGHUP: collector 1 counts a failed reload" hup 1
eq "  once" "$(reloads 1 error)" 1
eq "  logged once, naming the file" "$(grep -c "SIGHUP: keeping the metric stream's keys loaded before: \[cluster\] stream_key_file: .*$TMP/c1.key" "$TMP/c1.log")" 1
check "  a batch to collector 1 acknowledged" send $VALUE 1
N=$((N + NALARMS))
check "  its transitions are still delivered (the new key kept)" wait_for 20 upto $N
eq "  nothing refused" "$(( $(refused_total 1) + $(refused_total 2) ))" 0

# ---- another key: refused ----
put "$TMP/wrong.key" "$TMP/c2.key"
check "collector 2 given another key reloads it" hup 2
WSEQ=100
bad_mac() { warm 2; [[ $(refused_total 1 bad_signature) -gt 0 ]]; }
check "  collector 1 refuses its stream (bad_signature)" wait_for 20 bad_mac
done_testing
