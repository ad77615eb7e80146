#!/usr/bin/env bash
# alarm_leases_test.sh — three collectors on one PostgreSQL (started by the
# test), each alarm evaluated by exactly one of them: the alarm leases
# spread the alarms over the live collectors, the metric stream brings
# each owner the samples that other collectors received, and every
# transition reaches the webhook receiver exactly once with the right
# previous state. Then the owner of an alarm is killed with -9 right
# after the batch that should make its alarms fire reaches another
# collector: a surviving collector takes its leases over, reloads their
# states and replays the periods it kept, so each transition is still
# notified exactly once (none missed, none doubled).
# A fourth collector given a live node's name holds no lease and says so.
# Every collector's SSE stream carries every transition once, whichever
# collector decided it, with the body the webhook got; a project token's
# stream carries only its project's.
# Batches go to the collectors in turn (as an agent failing over would
# send them), so a collector evaluating only what it received itself
# would decide from partial data (previous states wrong).
# SKIP, with the reason, only when PostgreSQL cannot run on this machine.
source "$(dirname "$0")/lib.sh"

alarm_tools

need_postgres
sql() { "$PG_BIN/psql" -Atq -d "$PG_URL" -v ON_ERROR_STOP=1 -c "$1"; }

LEASE_S=2
NALARMS=12
T0=$(( ($(date +%s) - 7200) / 60 * 60 * 1000 ))   # two hours ago, on a minute

start_hook

declare -a PORT HTTP STREAM PID
# the collectors' metric stream is signed with one shared key
openssl rand -hex 32 >"$TMP/cluster.key"
chmod 600 "$TMP/cluster.key"
for i in 1 2 3; do alarm_cluster_conf $i "stream_key_file = $TMP/cluster.key"; done
mkdir -p "$TMP/data1"
ADMIN=$("$BIN/vigie-collector" --config "$TMP/c1.conf" token create --admin --name it 2>"$TMP/token.err" | tail -1)
check "an admin token on the shared state" grep -q '^vgt_' <<<"$ADMIN"
acurl() { curl -sS --max-time 5 -H "Authorization: Bearer $ADMIN" "$@"; }

# a stream without a key does not start (unsigned only when asked for)
sed -e '/^stream_key_file/d' -e "s|^data_dir = .*|data_dir = $TMP/nokey|" \
  -e "s|^listen = .*|listen = tcp://127.0.0.1:$(free_port)|" \
  -e "s|^http = .*|http = 127.0.0.1:$(free_port)|" \
  -e "s|^stream = .*|stream = tcp://127.0.0.1:$(free_port)|" "$TMP/c1.conf" >"$TMP/nokey.conf"
mkdir -p "$TMP/nokey"
out=$(timeout 60 "$BIN/vigie-collector" --allow-unsigned --config "$TMP/nokey.conf" 2>&1)
rc=$?
check "a [cluster] stream without stream_key_file: the collector stops (rc $rc)" \
  test "$rc" -ne 0 -a "$rc" -ne 124
check "... saying which key is missing" grep -q "stream_key_file" <<<"$out"

for i in 1 2 3; do
  "$BIN/vigie-collector" --allow-unsigned --config "$TMP/c$i.conf" >>"$TMP/c$i.log" 2>&1 &
  PID[i]=$!
  _pids+=("${PID[i]}")
done
for i in 1 2 3; do
  check "collector $i answers /v1/health" wait_for 30 curl -sf "http://127.0.0.1:${HTTP[i]}/v1/health"
done

# the alarms, created on the first collector (the others load them),
# their ids in $TMP/ids
: >"$TMP/ids"
for k in $(seq $NALARMS); do
  code=$(acurl -o "$TMP/post.out" -w '%{http_code}' -XPOST "http://127.0.0.1:${HTTP[1]}/v1/alarms" -d "{
    \"name\":\"cpu-vm$k\",\"metric\":\"cpu.util\",\"resource\":\"vm$k\",\"period\":60,
    \"evaluation_periods\":1,\"datapoints_to_alarm\":1,\"comparison\":\"gt\",\"threshold\":90,
    \"actions\":{\"alarm\":[\"$HOOK\"],\"ok\":[\"$HOOK\"]}}")
  [[ $code == 201 ]] || break
  jq -r .id "$TMP/post.out" >>"$TMP/ids"
done
eq "$NALARMS alarms created" "$code" 201

# every collector subscribed to both peers' streams, every alarm leased
subscribed() { local i; for i in 1 2 3; do
  [[ $(grep -c "subscribed to node.'s metric stream" "$TMP/c$i.log") -ge 2 ]] || return 1; done; }
check "each collector subscribes to its two peers' metric streams" wait_for 20 subscribed
# every alarm's live lease held by the owner the rendezvous hash gives it
# with the three collectors live (bench/alarms_owner): a lease counted as
# soon as it exists may still be held by a collector that saw itself
# alone, until the others' first rounds. The ids are random: all twelve
# on one node by the hash would happen 3 / 3^12 of the runs (1 in 177147)
"$OWNERBIN" node1 node2 node3 <"$TMP/ids" | paste -d' ' "$TMP/ids" - | sort >"$TMP/want"
leased() {
  sql "SELECT alarm_id || ' ' || owner FROM vigie_alarms.alarm_leases WHERE expires_at > now()" | sort >"$TMP/leases"
  cmp -s "$TMP/leases" "$TMP/want"
}
check "every alarm has one live lease, the hash's owner's" wait_for 20 leased
owners=$(sql "SELECT count(DISTINCT owner) FROM vigie_alarms.alarm_leases")
check "the alarms are spread over the collectors ($owners owners)" test "$owners" -ge 2
diag "leases: $(sql "SELECT string_agg(owner || '=' || n, ' ') FROM (SELECT owner, count(*) n FROM vigie_alarms.alarm_leases GROUP BY owner ORDER BY owner) x")"
# nanomsg connects in the background and a PUB socket drops what it
# sends before: a batch of a resource no alarm watches, from another
# host, goes to each collector until both others received one
received() { curl -sf -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:${HTTP[$1]}/v1/health" | jq '.cluster.stream.received // 0'; }
WSEQ=0
warm() { # COLLECTOR: its stream reaches both peers
  local i=$1 a=$(( $1 % 3 + 1 )) b=$(( ($1 + 1) % 3 + 1 )) ra rb
  ra=$(received $a); rb=$(received $b)
  WSEQ=$((WSEQ + 1))
  echo "$((T0 - 600000 + WSEQ * 1000)) instance vm0 cpu.util=1" |
    "$SEND" --collector "tcp://127.0.0.1:${PORT[i]}" --host warm --stream 1 --seq $WSEQ >/dev/null 2>&1
  sleep 0.2
  [[ $(received $a) -gt $ra && $(received $b) -gt $rb ]]
}
for i in 1 2 3; do
  check "collector $i's metric stream reaches both peers" wait_for 20 warm $i
done

# SSE on every collector (each owns only some of the alarms), and two
# project tokens' streams on collector 1: the alarms' project, another
OTHER=$("$BIN/vigie-collector" --config "$TMP/c1.conf" token create --project other 2>>"$TMP/token.err" | tail -1)
DEFP=$("$BIN/vigie-collector" --config "$TMP/c1.conf" token create --project default 2>>"$TMP/token.err" | tail -1)
sse() { # NAME TOKEN COLLECTOR
  curl -sN --max-time 600 -H "Authorization: Bearer $2" \
    "http://127.0.0.1:${HTTP[$3]}/v1/alarms/stream" >"$TMP/sse.$1" 2>/dev/null &
  _pids+=($!)
}
for i in 1 2 3; do sse c$i "$ADMIN" $i; done
sse other "$OTHER" 1
sse default "$DEFP" 1
sse_clients() { curl -sf -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:${HTTP[$1]}/metrics" |
  awk '$1 == "vigie_alarms_sse_clients" {print $2}'; }
check "the SSE clients are connected" wait_for 30 eval \
  '[[ $(sse_clients 1) == 3 && $(sse_clients 2) == 1 && $(sse_clients 3) == 1 ]]'
sse_events() { grep -c '^event: alarm$' "$TMP/sse.$1"; }

SEQ=0
# send MINUTE VALUE COLLECTOR: one batch, every vm at that sample time
send() {
  local t=$((T0 + $1 * 60000)) k
  SEQ=$((SEQ + 1))
  {
    echo "$t instance vm1 cpu.util=$2"
    for k in $(seq 2 $NALARMS); do echo "& instance vm$k cpu.util=$2"; done
  } | "$SEND" --collector "tcp://127.0.0.1:${PORT[$3]}" --host h1 --stream 1 --seq $SEQ \
    >>"$TMP/send.out" 2>&1
}
delivered() { grep -c ' 200 ' "$TMP/hook.log" 2>/dev/null; }
upto() { [[ $(delivered) -ge $1 ]]; }

# ---- all three running: one transition per alarm per batch ----
# (a series' first sample leaves its period open: the second one, a
# minute later, closes both)
check "minute 0 (50) acknowledged by collector 1" send 0 50 1
check "minute 1 (95) acknowledged by collector 2" send 1 95 2
check "  the ok, then alarm notifications are delivered" wait_for 20 upto $((2 * NALARMS))
check "minute 2 (50) acknowledged by collector 3" send 2 50 3
check "  its $NALARMS ok notifications are delivered" wait_for 20 upto $((3 * NALARMS))

# ---- SSE: every collector's stream has every notification once ----
# (another collector's decisions reach a stream at that collector's next
# cluster round, a third of a lease later at most)
awk '$2 == 200' "$TMP/hook.log" | cut -d' ' -f4- | jq -c . | sort >"$TMP/hook.bodies"
for i in 1 2 3; do
  check "collector $i's SSE stream has the $((3 * NALARMS)) notifications" \
    wait_for 20 eval "[[ \$(sse_events c$i) -ge $((3 * NALARMS)) ]]"
done
sleep 1 # anything doubled would arrive now
for i in 1 2 3; do
  sed -n 's/^data: //p' "$TMP/sse.c$i" | jq -c . | sort >"$TMP/sse.c$i.bodies"
  eq "  collector $i: each once" "$(jq -r .notification_id "$TMP/sse.c$i.bodies" | sort | uniq -d | wc -l)" 0
  eq "  collector $i: the bodies the webhook got (the same notification ids)" \
    "$(diff "$TMP/hook.bodies" "$TMP/sse.c$i.bodies" | grep -c '^[<>]')" 0
  # in each alarm's order: previous states chain
  bad=$(sed -n 's/^data: //p' "$TMP/sse.c$i" | jq -rs 'group_by(.alarm_name) | map(map(.previous + ">" + .current) | join(" ")) | .[]' |
    grep -vc '^insufficient_data>ok ok>alarm alarm>ok$')
  eq "  collector $i: each alarm's in order" "$bad" 0
done
eq "the default project's stream has them all" "$(sse_events default)" $((3 * NALARMS))
eq "another project's stream has none" "$(sse_events other)" 0

# ---- kill -9 the owner of cpu-vm1, then the deciding batch elsewhere ----
VID=$(acurl "http://127.0.0.1:${HTTP[1]}/v1/alarms/cpu-vm1" | jq -r .id)
victim=$(sql "SELECT owner FROM vigie_alarms.alarm_leases WHERE alarm_id = '$VID'")
v=${victim#node}
check "the owner of cpu-vm1 is one of the collectors ($victim)" test -n "${PID[v]:-}"
lost=$(sql "SELECT count(*) FROM vigie_alarms.alarm_leases WHERE owner = '$victim'")
kill -KILL "${PID[v]}"
k0=$(sql "SELECT extract(epoch FROM clock_timestamp())")
s1=$(( v % 3 + 1 )); s2=$(( s1 % 3 + 1 ))   # the survivors
check "minute 3 (95) acknowledged by a survivor (collector $s1)" send 3 95 $s1
taken() { [[ $(sql "SELECT count(*) FROM vigie_alarms.alarm_leases WHERE owner <> '$victim' AND expires_at > now()") == "$NALARMS" ]]; }
check "the $lost alarm(s) of $victim are taken over by the survivors" wait_for 30 taken
k1=$(sql "SELECT extract(epoch FROM clock_timestamp())")
diag "takeover: $(awk -v a="$k0" -v b="$k1" 'BEGIN{printf "%.1f", b - a}') s after the kill -9 (lease ${LEASE_S} s: at most 4/3 of it expected, 2 x lease promised)"
check "  every alarm's notification of minute 3 is delivered" wait_for 20 upto $((4 * NALARMS))
check "minute 4 (50) acknowledged by collector $s2" send 4 50 $s2
check "  and its ok notifications" wait_for 20 upto $((5 * NALARMS))
sleep 1 # anything doubled would arrive now

# ---- exactly once, in order, with the right previous state ----
eq "every notification id delivered once" \
  "$(awk '$2 == 200 {print $3}' "$TMP/hook.log" | sort | uniq -d | wc -l)" 0
eq "$((5 * NALARMS)) deliveries in all" "$(delivered)" $((5 * NALARMS))
seqs=$(awk '$2 == 200' "$TMP/hook.log" | cut -d' ' -f4- |
  jq -rs 'group_by(.alarm_name) | map([.[0].alarm_name, (sort_by(.timestamp_ms) | map(.previous + ">" + .current) | join(" "))] | join(": ")) | .[]')
# (in the order of the deciding periods: two collectors' delivery workers
# may deliver one alarm's notifications at once, so arrival order is not
# theirs; docs/alarms.md, "Delivery order")
want="insufficient_data>ok ok>alarm alarm>ok ok>alarm alarm>ok"
bad=$(grep -vc ": $want\$" <<<"$seqs")
eq "each alarm: $want" "$bad" 0
[[ $bad == 0 ]] || diag "$seqs"
# the survivors' streams: the dead owner's notifications and the new
# owners', each once, in each alarm's order
awk '$2 == 200' "$TMP/hook.log" | cut -d' ' -f4- | jq -c . | sort >"$TMP/hook.bodies"
for i in $s1 $s2; do
  check "collector $i's SSE stream has all $((5 * NALARMS)) notifications" \
    wait_for 20 eval "[[ \$(sse_events c$i) -ge $((5 * NALARMS)) ]]"
  sed -n 's/^data: //p' "$TMP/sse.c$i" | jq -c . | sort >"$TMP/sse.c$i.bodies"
  eq "  collector $i: the bodies the webhook got, each once" \
    "$(diff "$TMP/hook.bodies" "$TMP/sse.c$i.bodies" | grep -c '^[<>]')" 0
  bad=$(sed -n 's/^data: //p' "$TMP/sse.c$i" | jq -rs 'group_by(.alarm_name) | map(map(.previous + ">" + .current) | join(" ")) | .[]' |
    grep -vc "^$want\$")
  eq "  collector $i: each alarm's in order, across the takeover" "$bad" 0
done
eq "the history holds each transition once" \
  "$(sql "SELECT count(*) FROM vigie_alarms.history WHERE type = 'transition'")" $((5 * NALARMS))
for i in $s1 $s2; do
  check "collector $i is still running" kill -0 "${PID[i]}"
done

# ---- each node's view of the cluster ----
h1=$(curl -sf -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:${HTTP[s1]}/v1/health")
h2=$(curl -sf -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:${HTTP[s2]}/v1/health")
eq "/v1/health names the node (admin token)" "$(jq -r .cluster.node <<<"$h1")" "node$s1"
eq "  the state database is reachable" "$(jq -r .cluster.state_database <<<"$h1")" reachable
eq "  the live nodes are the two survivors" \
  "$(jq -r '[.cluster.nodes[].node] | sort | join(" ")' <<<"$h1")" \
  "$(printf '%s\n' node$s1 node$s2 | sort | paste -sd' ')"
eq "  the survivors' leases cover every alarm" \
  "$(( $(jq .cluster.alarm_leases <<<"$h1") + $(jq .cluster.alarm_leases <<<"$h2") ))" $NALARMS
check "  the stream received peers' batches" test "$(jq .cluster.stream.received <<<"$h2")" -ge 1
# the route is public: without a token, the live nodes' count and ages,
# no node name nor address
h0=$(curl -sf "http://127.0.0.1:${HTTP[s1]}/v1/health")
eq "without a token: two live nodes, none named, no address, no lease or stream count" \
  "$(jq -r '[(.cluster.nodes | length), (.cluster | has("node")), ([.cluster.nodes[] | has("node") or has("stream") or has("api")] | any), (.cluster | has("alarm_leases") or has("stream"))] | join(" ")' <<<"$h0")" \
  "2 false false false"
m=$(curl -sf -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:${HTTP[s1]}/metrics")
eq "/metrics: leases held" "$(awk '$1 == "vigie_alarms_leases_held" {print $2}' <<<"$m")" \
  "$(jq .cluster.alarm_leases <<<"$h1")"
m2=$(curl -sf -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:${HTTP[s2]}/metrics")
taken_total() { awk '$1 == "vigie_alarms_leases_taken_total" {print $2}' <<<"$1"; }
eq "/metrics: the survivors took the $lost lease(s) of $victim (leases taken), no other" \
  "$(( $(taken_total "$m") + $(taken_total "$m2") ))" "$lost"
check "/metrics: each live node's last heartbeat" grep -q "vigie_cluster_node_last_seen_seconds{node=\"node$s2\"}" <<<"$m"
# the killed node's stream may still be dialled (for a lease after the
# rounds stop listing it): at least the survivor's
check "/metrics: subscribed to the other survivor's stream" \
  test "$(awk '$1 == "vigie_cluster_stream_peers" {print $2}' <<<"$m")" -ge 1
# the stream is signed with the shared key: peers' batches taken, none refused
check "/metrics: peers' signed batches received" \
  test "$(awk '$1 == "vigie_cluster_stream_received_total" {print $2}' <<<"$m")" -gt 0
eq "/metrics: no stream message refused" \
  "$(awk '$1 ~ /^vigie_cluster_stream_refused_total/ {n += $2} END {print n + 0}' <<<"$m$m2")" 0

# ---- a second collector configured with a live node's name ----
# it must not act on that node's leases (both would evaluate its alarms):
# it keeps storing what it receives, evaluates no alarm, says why
P4=$(free_port); H4=$(free_port)
sed -e "s|^listen = .*|listen = tcp://127.0.0.1:$P4|" -e "s|^http = .*|http = 127.0.0.1:$H4|" \
  -e "s|^data_dir = .*|data_dir = $TMP/data4|" -e "s|^node = .*|node = node$s2|" \
  -e "/^stream = /d" "$TMP/c1.conf" >"$TMP/c4.conf"
"$BIN/vigie-collector" --allow-unsigned --config "$TMP/c4.conf" >>"$TMP/c4.log" 2>&1 &
PID4=$!
_pids+=("$PID4")
h4() { curl -sf -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$H4/v1/health"; }
check "a collector named like a live one (node$s2) starts" wait_for 30 h4
refused() { [[ $(h4 | jq -r .cluster.node_name) == "held by another collector" ]]; }
check "  its /v1/health says another collector holds the name" wait_for 30 refused
h=$(h4)
eq "  and is degraded" "$(jq -r .status <<<"$h")" degraded
eq "  it holds no alarm lease" "$(jq .cluster.alarm_leases <<<"$h")" 0
check "  its log names the node and the other holder" \
  grep -q "node name node$s2 is held by another collector (api 127.0.0.1:${HTTP[s2]}" "$TMP/c4.log"
eq "  node$s2 still holds its name" \
  "$(curl -sf "http://127.0.0.1:${HTTP[s2]}/v1/health" | jq -r .cluster.node_name)" held
eq "  /metrics counts the refused rounds" \
  "$(curl -sf -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$H4/metrics" |
    awk '$1 == "vigie_cluster_node_name_conflicts_total" {print ($2 > 0)}')" 1
stop_pid "$PID4"
fresh=$(sql "SELECT extract(epoch FROM now() - last_seen) < $LEASE_S FROM vigie_cluster.nodes WHERE node = 'node$s2'")
eq "  its clean stop leaves node$s2's row alive" "$fresh" t

# ---- a clean stop hands the alarms over at once ----
stop_pid "${PID[s1]}"; rc=$?
eq "collector $s1 stops cleanly on SIGTERM" "$rc" 0
eq "  releasing its leases" "$(sql "SELECT count(*) FROM vigie_alarms.alarm_leases WHERE owner = 'node$s1'")" 0
all_s2() { [[ $(sql "SELECT count(*) FROM vigie_alarms.alarm_leases WHERE owner = 'node$s2' AND expires_at > now()") == "$NALARMS" ]]; }
check "  the last collector takes every alarm" wait_for 20 all_s2
done_testing
