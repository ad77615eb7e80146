#!/usr/bin/env bash
# alarm_bytes_test.sh — text that is not UTF-8 from outside reaches the
# alarms' JSON through the real binaries: an agent event whose detail
# holds bytes that are not UTF-8, sent over the real nanomsg wire
# (bench/alarms_send), fires an event alarm; its exec notifier is a real
# process that prints bytes that are not UTF-8 and exits 3. jansson
# refuses a string that is not UTF-8: without the cleaning
# (vg_text_clean) the transition's history row had no detail, the
# notification (webhook, SSE, exec stdin) had no "reason", the state row
# kept bytes that GET /v1/alarms/{id} could not put in its JSON, and the
# exec attempt's history row had no "error"; with the alarm store in
# PostgreSQL (alarm_bytes_pg_test.sh) the outcome could not be recorded
# at all and the command ran again at once, forever (131 runs in 30 s).
# Each bad byte is now a '?'.
source "$(dirname "$0")/lib.sh"

alarm_tools
collector_ports

DATA=$TMP/data
T0=$(( ($(date +%s) - 600) / 60 * 60 * 1000 ))

start_hook
cat >"$TMP/bad.sh" <<EOF
#!/bin/sh
cat >>"$TMP/exec.in"
echo >>"$TMP/exec.in"
printf 'out \377\376 end'
exit 3
EOF
chmod +x "$TMP/bad.sh"
cat >"$TMP/vigie.conf" <<EOF
[alarms]
retry_initial = 0.2
retry_max = 1
exec = bad: $TMP/bad.sh
exec_timeout = 5
EOF
# With ALARMS_ENGINE=postgresql (alarm_bytes_pg_test.sh) the alarm store,
# outbox included, is a PostgreSQL server of this test: it refuses text
# that is not UTF-8 in a UTF8 database.
state_engine "${ALARMS_ENGINE:-sqlite}" "$TMP/vigie.conf"
# an administrator's token in the alarm store's database (PostgreSQL's
# too), made before the collector starts, as alarms_test.sh does
TOK=$("$BIN/vigie-collector" --data-dir "$DATA" --config "$TMP/vigie.conf" token create --admin 2>/dev/null | tail -1)
post() { curl -sS --max-time 60 -H "Authorization: Bearer $TOK" -o "$TMP/post.out" -w '%{http_code}' -XPOST "$API$1" -d "$2"; }
metric() { curl -sf -H "Authorization: Bearer $TOK" "$API/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
is() { local want=$1; shift; [[ $("$@" 2>/dev/null) == "$want" ]]; }

check "collector starts with alarms" start_api_collector collector \
  --data-dir "$DATA" --config "$TMP/vigie.conf" --log-level debug
# lib.sh's api and api_code send ADMIN_TOKEN: this test's, which is in the
# alarm store's database (start_collector's own is made without the config)
ADMIN_TOKEN=$TOK

SSE=0
if [[ $(api_code /v1/alarms/stream?last_event_id=x) != 501 ]]; then
  SSE=1
  curl -sN --max-time 120 -H "Authorization: Bearer $TOK" "$API/v1/alarms/stream" >"$TMP/sse.out" 2>&1 &
  _pids+=($!)
  check "the SSE client is connected" wait_for 30 is 1 metric vigie_alarms_sse_clients
fi

# keep_firing_for: the instance stays in alarm while the test looks (with
# the default 0 it is back to ok at the next timer pass, half a second)
code=$(post /v1/alarms "{\"name\":\"vm-stopped\",\"type\":\"event\",\"event\":{\"kind\":\"stopped\"},\"keep_firing_for\":3600,
  \"actions\":{\"alarm\":[\"$HOOK\",\"exec://bad\"]}}")
eq "the event alarm is created" "$code" 201
ID=$(jq -r .id "$TMP/post.out")

# the detail: {"libvirt":"stopped","reason":"x<FF><FE>y"}
echo "$T0 instance vm1 cpu.util=1 event=2 detail={\"libvirt\":\"stopped\",\"reason\":\"x\\xff\\xfey\"}" |
  "$SEND" --collector tcp://127.0.0.1:$PORT --host h1 --stream 1 --seq 1 >"$TMP/send.out" 2>&1
eq "the batch with the event is acknowledged" "$?" 0
alarm_state() { api "/v1/alarms/$ID" | jq -r .state; }
check "the alarm fires on the event" wait_for 30 is alarm alarm_state

WANT='event stopped on vm1: {"libvirt":"stopped","reason":"x??y"}'
eq "GET /v1/alarms/{id} answers 200" "$(api_code "/v1/alarms/$ID")" 200
eq "its state_reason has a '?' for each bad byte" "$(api "/v1/alarms/$ID" | jq -r .state_reason)" "$WANT"
h=$(api "/v1/alarms/$ID/history?type=transition")
eq "the transition's history row keeps its reason" "$(jq -r '.history[0].detail.reason' <<<"$h")" "$WANT"
eq "... and the event's detail in reason_data" \
  "$(jq -r '.history[0].detail.reason_data.detail' <<<"$h")" '{"libvirt":"stopped","reason":"x??y"}'

check "the webhook got the notification" wait_for 30 grep -q '"current":"alarm"' "$TMP/hook.log"
body=$(grep '"current":"alarm"' "$TMP/hook.log" | head -1 | cut -d' ' -f4-)
eq "its reason is there" "$(jq -r .reason <<<"$body")" "$WANT"
if [[ $SSE == 1 ]]; then
  check "the SSE client got it with its reason" \
    wait_for 30 grep -qF "\"reason\":\"event stopped on vm1: " "$TMP/sse.out"
else
  skip "SSE: this build's HTTP layer cannot stream (501)"
fi
check "the exec command read the notification with its reason" \
  wait_for 30 grep -qF '"reason":"event stopped on vm1: ' "$TMP/exec.in"

exec_error() {
  api "/v1/alarms/$ID/history?type=notification" |
    jq -r '[.history[].detail | select(.action == "exec://bad" and .status == "retry") | .error] | first // empty'
}
has_exec_error() { [[ -n $(exec_error) ]]; }
check "the exec attempt is recorded as a retry" wait_for 30 has_exec_error
eq "with the command's output, a '?' for each bad byte" "$(exec_error)" "exit status 3: out ?? end"
eq "the history answers 200" "$(api_code "/v1/alarms/$ID/history")" 200

done_testing
