#!/usr/bin/env bash
# alarm_groups_test.sh — grouped notifications with the real binaries:
# vigie-collector, a wire-level sender (bench/alarms_send) replaying ten
# instances crossing one threshold in the same minute, and a webhook
# receiver process (bench/alarms_hook). The collector is killed (kill -9)
# while the group waits for its group_wait: after the restart the
# receiver gets exactly one notification listing the ten members, and
# nothing more; the log gets one line for the group. With ALARMS_ENGINE=postgresql (alarm_groups_pg_test.sh)
# the alarm store lives in a PostgreSQL server this test starts.
source "$(dirname "$0")/lib.sh"

alarm_tools
command -v jq >/dev/null || { echo "1..0 # SKIP jq missing"; exit 0; }
WAIT_S=15 # group_wait: long enough to kill the collector inside it

collector_ports
DATA=$TMP/data
T0=$(( ($(date +%s) - 7200) / 60 * 60 * 1000 ))   # two hours ago, on a minute

start_hook
printf '[alarms]\nretry_initial = 0.2\nretry_max = 1\n' >"$TMP/vigie.conf"
state_engine "${ALARMS_ENGINE:-sqlite}" "$TMP/vigie.conf"
ADMIN=$("$BIN/vigie-collector" --data-dir "$DATA" --config "$TMP/vigie.conf" token create --admin 2>/dev/null | tail -1)
AUTH=()
[[ $ADMIN == vgt_* ]] && AUTH=(-H "Authorization: Bearer $ADMIN")
api() { curl -sS --max-time 5 "${AUTH[@]}" "$API$1"; }

start() {
  start_api_collector collector --data-dir "$DATA" --config "$TMP/vigie.conf" --log-level info
}
check "collector starts" start

code=$(curl -sS --max-time 5 "${AUTH[@]}" -o "$TMP/post.out" -w '%{http_code}' -XPOST "$API/v1/alarms" -d "{
  \"name\":\"cpu-high\",\"metric\":\"cpu.util\",\"selector\":{\"type\":\"instance\"},
  \"period\":60,\"evaluation_periods\":1,\"comparison\":\"gt\",\"threshold\":90,
  \"notify_group\":{\"by\":[\"alarm\",\"state\"],\"wait\":$WAIT_S,\"interval\":\"5m\"},
  \"actions\":{\"alarm\":[\"$HOOK\",\"log://\"]}}")
eq "a grouped alarm is created" "$code" 201

# ten instances above 90 % for two minutes: ten transitions to alarm
{
  for m in 0 1; do
    t=$((T0 + m * 60000))
    echo "$t instance vm0 cpu.util=95"
    for i in 1 2 3 4 5 6 7 8 9; do echo "& instance vm$i cpu.util=95"; done
  done
} | "$SEND" --collector tcp://127.0.0.1:$PORT --host h1 --stream 1 --seq 1 >"$TMP/send.out" 2>&1
check "the batches are acknowledged (transitions committed)" test $? -eq 0
g=$(api /v1/alarms/groups)
eq "two groups wait (webhook, log), each with the ten members" \
  "$(jq -r '[(.groups | length), (.groups | map(.members) | join(","))] | join(" ")' <<<"$g")" "2 10,10"
eq "nothing was sent yet" "$(wc -l <"$TMP/hook.log")" 0

kill -KILL "$COLLECTOR_PID"; wait "$COLLECTOR_PID" 2>/dev/null
check "collector restarts after kill -9 inside group_wait" start
eq "the group is still waiting after the restart" \
  "$(api /v1/alarms/groups | jq -r '.groups[0].members')" 10
check "the group notification arrives" wait_for $((WAIT_S + 20)) grep -q '"type":"group"' "$TMP/hook.log"
sleep 3 # longer than retry_max and a few ticks: a second send would show now
eq "exactly one request" "$(wc -l <"$TMP/hook.log")" 1
body=$(head -1 "$TMP/hook.log" | cut -d' ' -f4-)
eq "acknowledged 200, listing the ten members once each" \
  "$(head -1 "$TMP/hook.log" | cut -d' ' -f2) $(jq -r '[.count, (.notifications | map(.resource) | unique | length), .group.alarm, .group.state] | join(" ")' <<<"$body")" \
  "200 10 10 cpu-high alarm"
eq "no group waits any more" "$(api /v1/alarms/groups | jq '.groups | length')" 0
eq "the log got one line for the group, none per member" \
  "$(grep -c 'alarm group {"alarm":"cpu-high","state":"alarm"} of project default: 10 notifications:' "$TMP/collector.log") $(grep -c 'alarm default/cpu-high on vm' "$TMP/collector.log")" \
  "1 0"
h=$(api "/v1/alarms/cpu-high/history?type=transition")
eq "each member's transition is in the history" "$(jq '.history | length' <<<"$h")" 10

stop_pid "$COLLECTOR_PID"; rc=$?
eq "collector exits 0 on SIGTERM" "$rc" 0
done_testing
