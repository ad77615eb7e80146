#!/usr/bin/env bash
# alarms_cli_test.sh — `vigie alarms` against the real vigie-collector:
# create from a file and from stdin, list, show, disable and
# enable, update, history with the definition changes, watch following the
# SSE stream while a wire-level sender (bench/alarms_send) makes the alarm
# fire, delete, the alarm engine's self-metrics on /metrics, and the error
# cases: an invalid definition (exit 1, the API's field messages on one
# line), an unknown alarm (1), bad usage (2), nobody listening (3).
source "$(dirname "$0")/lib.sh"

if [[ ! -x $BIN/../bench/alarms_send ]]; then
  bench_make "$BUILD/bench/alarms_send" >"$TMP/make.log" 2>&1 ||
    { echo "1..0 # SKIP cannot build bench/alarms_send (see $TMP/make.log)"; cat "$TMP/make.log" >&2; exit 0; }
fi
SEND=$BIN/../bench/alarms_send
VIGIE=$BIN/vigie

collector_ports
export VIGIE_API=http://127.0.0.1:$HPORT
API=$VIGIE_API
DATA=$TMP/data
T0=$(( ($(date +%s) - 7200) / 60 * 60 * 1000 ))   # two hours ago, on a minute

check "collector starts" start_api_collector collector --data-dir "$DATA"
[[ -n ${VIGIE_TOKEN:-} ]] || { nok "an admin token for the CLI"; done_testing; exit 1; }

# v OUT ERR ARGS... : run the CLI, stdout to $TMP/OUT, stderr to $TMP/ERR; $? is its exit code
v() { local o=$1 e=$2; shift 2; "$VIGIE" "$@" >"$TMP/$o" 2>"$TMP/$e"; }

# ---- create: from a file, and from standard input ----
cat >"$TMP/cpu-high.json" <<'EOF'
{"name": "cpu-high", "severity": "critical", "description": "vm1 busy",
 "metric": "cpu.util", "resource": "vm1", "statistic": "average", "period": 60,
 "evaluation_periods": 3, "datapoints_to_alarm": 3,
 "comparison": "gt", "threshold": 90,
 "actions": {"alarm": ["log://"], "ok": ["log://"]}}
EOF
v out err alarms create --file "$TMP/cpu-high.json"; rc=$?
eq "create --file exits 0" "$rc" 0
check "create prints the new alarm's name and id" grep -qE '^created alarm cpu-high \(id [0-9a-f-]{36}\) in project default$' "$TMP/out"
ID=$(sed -nE 's/.*\(id ([0-9a-f-]+)\).*/\1/p' "$TMP/out")
echo '{"name":"mem-low","metric":"memory.rss","resource":"vm1","comparison":"lt","threshold":10,"severity":"low"}' |
  v out err alarms create --file -; rc=$?
eq "create --file - reads standard input" "$rc" 0

# ---- list and show ----
v out err alarms list; rc=$?
eq "list exits 0" "$rc" 0
eq "list is an aligned table with the header and both alarms" "$(cat "$TMP/out")" \
"NAME      PROJECT  RESOURCE  STATE              SEVERITY  METRIC      THRESHOLD  ENABLED
cpu-high  default  vm1       insufficient_data  critical  cpu.util    gt 90      true
mem-low   default  vm1       insufficient_data  low       memory.rss  lt 10      true"
v out err alarms list --json
eq "list --json has the API's shape" "$(jq -r '[.alarms[].name] | join(",")' "$TMP/out"),$(jq -r .next "$TMP/out")" "cpu-high,mem-low,null"
v out err alarms list --state alarm
eq "list --state alarm: nobody yet (header only)" "$(wc -l <"$TMP/out")" 1
v out err alarms show cpu-high; rc=$?
eq "show by name exits 0" "$rc" 0
check "show by name: the id" grep -q "^ID  *$ID$" "$TMP/out"
check "show: the condition" grep -q '^Condition  *gt 90$' "$TMP/out"
check "show: M of N" grep -q '^Datapoints  *3 of 3$' "$TMP/out"
v out err alarms show "$ID" --json
eq "show ID --json is the API's alarm" "$(jq -r '[.name, .state, .threshold] | join(" ")' "$TMP/out")" "cpu-high insufficient_data 90"

# ---- disable / enable / update ----
v out err alarms disable cpu-high; rc=$?
eq "disable" "$rc:$(cat "$TMP/out")" "0:disabled alarm cpu-high"
v out err alarms list
check "list shows it disabled" grep -qE '^cpu-high .* false$' "$TMP/out"
v out err alarms enable "$ID"; rc=$?
eq "enable (by id)" "$rc:$(cat "$TMP/out")" "0:enabled alarm cpu-high"
echo '{"description": "vm1 very busy"}' | v out err alarms update cpu-high --patch --file -; rc=$?
eq "update --patch" "$rc" 0
eq "the patched field changed, the rest stayed" \
  "$(curl -s -H "Authorization: Bearer $VIGIE_TOKEN" "$API/v1/alarms/cpu-high" | jq -r '[.description, .threshold] | join(" ")')" "vm1 very busy 90"

# ---- watch: one line per transition, as it happens ----
"$VIGIE" alarms watch >"$TMP/watch.out" 2>"$TMP/watch.err" &
WPID=$!; _pids+=("$WPID")
"$VIGIE" alarms watch --json --count 1 >"$TMP/watch1.out" 2>"$TMP/watch1.err" &
W1PID=$!; _pids+=("$W1PID")
subscribers() {
  curl -s -H "Authorization: Bearer $VIGIE_TOKEN" "$API/metrics" | awk '/^vigie_alarms_sse_clients / { print $2 }'
}
two_watchers() { [[ $(subscribers) -ge 2 ]]; } # (re-evaluated on every poll)
check "the watchers are subscribed (vigie_alarms_sse_clients on /metrics)" wait_for 30 two_watchers
{
  echo "$T0 instance vm1 cpu.util=50"
  echo "+60 instance vm1 cpu.util=91.2"
  echo "+60 instance vm1 cpu.util=94"
  echo "+60 instance vm1 cpu.util=97.5"
} | "$SEND" --collector tcp://127.0.0.1:$PORT --host h1 --stream 1 --seq 1 >"$TMP/send.out" 2>&1
check "the sender's batches are acknowledged" test $? -eq 0
check "watch printed the alarm transition" \
  wait_for 30 grep -q ' default/cpu-high critical ok -> alarm on vm1: 3 out of the last 3 datapoints \[91.2, 94.0, 97.5\] were greater than the threshold (90.0)$' "$TMP/watch.out"
check "watch printed the earlier transition to ok first" \
  bash -c "head -1 '$TMP/watch.out' | grep -q 'cpu-high critical insufficient_data -> ok on vm1'"
wait "$W1PID"; rc=$?
eq "watch --count 1 exits 0 after one notification" "$rc" 0
eq "watch --json prints the notification's JSON, one line" \
  "$(jq -r '[.alarm_name, .previous, .current, .resource] | join(" ")' "$TMP/watch1.out")" "cpu-high insufficient_data ok vm1"
kill -INT "$WPID"; wait "$WPID"; rc=$?
eq "Ctrl-C (SIGINT) ends watch with exit 0" "$rc" 0
eq "watch wrote nothing on stderr" "$(cat "$TMP/watch.err")" ""

v out err alarms list --state alarm
check "list --state alarm shows it" grep -qE '^cpu-high  default  vm1 +alarm  critical' "$TMP/out"

# ---- history: definition changes and transitions ----
v out err alarms history cpu-high; rc=$?
eq "history exits 0" "$rc" 0
eq "history has every definition change, oldest first" \
  "$(awk 'NR > 1 && $2 != "transition" { print $2 }' "$TMP/out" | paste -sd,)" "creation,disabled,enabled,update"
check "history shows the transition with its reason" \
  grep -qE '  transition  vm1 +ok -> alarm: 3 out of the last 3 datapoints' "$TMP/out"
v out err alarms history cpu-high --type transition --start $(( (T0 + 180000) / 1000 )) --json
eq "history --type --start filter (API time filters)" "$(jq '.history | length' "$TMP/out")" 1

# ---- /metrics: the alarm engine's self-metrics ----
m=$(curl -s -H "Authorization: Bearer $VIGIE_TOKEN" "$API/metrics")
eq "/metrics: alarms defined" "$(awk '/^vigie_alarms_defined / { print $2 }' <<<"$m")" 2
eq "/metrics: transitions counted" "$(awk '/^vigie_alarms_transitions_total / { print $2 }' <<<"$m")" 2
check "/metrics: one HELP and TYPE per alarm family" \
  test "$(grep -c '^# TYPE vigie_alarms_' <<<"$m")" -eq "$(grep -c '^# HELP vigie_alarms_' <<<"$m")"

# ---- errors ----
cat >"$TMP/bad.json" <<'EOF'
{"name": "bad name", "metric": "cpu.util", "resource": "vm1",
 "comparison": "bigger", "threshold": 1, "period": 7}
EOF
v out err alarms create --file "$TMP/bad.json"; rc=$?
eq "an invalid definition exits 1" "$rc" 1
eq "... with one line on stderr" "$(wc -l <"$TMP/err")" 1
check "... that carries the API's message for each field" \
  grep -qE "^vigie: invalid alarm \(3 problems\): .*comparison: must be one of gt, ge, lt, le, eq, ne.*; period: must be 60, 300, 3600.* \(HTTP 400\)$" "$TMP/err"
eq "... and nothing on stdout" "$(wc -c <"$TMP/out")" 0
v out err alarms create --file "$TMP/cpu-high.json"; rc=$?
eq "the same name again exits 1 (409)" "$rc:$(grep -c 'already exists.*(HTTP 409)' "$TMP/err")" "1:1"
echo '{"name": ' >"$TMP/typo.json"
v out err alarms create --file "$TMP/typo.json"; rc=$?
eq "a file that is not JSON is a usage error naming it" "$rc:$(grep -c 'typo.json: not valid JSON' "$TMP/err")" "2:1"
v out err alarms show ghost; rc=$?
eq "an unknown alarm exits 1 with the API's message" "$rc:$(cat "$TMP/err")" "1:vigie: no alarm 'ghost' (HTTP 404)"
v out err alarms list --state sleepy; rc=$?
eq "a bad --state is a usage error" "$rc" 2
v out err --api "http://127.0.0.1:$(free_port)" alarms list; rc=$?
eq "nobody listening exits 3" "$rc" 3
v out err --token vgt_0000000000000000_0000000000000000000000000000000000000000000000000000000000000000 alarms watch; rc=$?
eq "watch with a bad token exits 1 at once" "$rc" 1

# ---- delete ----
v out err alarms delete cpu-high; rc=$?
eq "delete" "$rc:$(cat "$TMP/out")" "0:deleted alarm cpu-high"
v out err alarms show cpu-high; rc=$?
eq "then show is a 404 (exit 1)" "$rc" 1
v out err alarms list
eq "list has the other alarm only" "$(awk 'NR > 1 { print $1 }' "$TMP/out")" mem-low

# ---- silences: create, list, expire; the API's field errors ----
echo '{"matchers": {"host": "compute-7", "severity": "critical"}, "duration": "2h",
 "created_by": "ops", "comment": "kernel update"}' | v out err alarms silence --file -; rc=$?
eq "silence --file - exits 0" "$rc" 0
check "silence prints the new silence" grep -qE '^created silence [0-9a-f-]{36} \(active until ' "$TMP/out"
SID=$(sed -nE 's/^created silence ([0-9a-f-]+).*/\1/p' "$TMP/out")
v out err alarms silences; rc=$?
check "silences lists it with who and why" grep -qE "^$SID  active  until .*\{\"host\":\"compute-7\",\"severity\":\"critical\"\}  by ops: kernel update$" "$TMP/out"
echo '{"matchers": {"hots": "x"}, "duration": "2h"}' | v out err alarms silence --file -; rc=$?
eq "an invalid silence exits 1" "$rc" 1
check "with every field's message" grep -q 'matchers.hots' "$TMP/err"
v out err alarms unsilence "$SID"; rc=$?
eq "unsilence" "$rc:$(cat "$TMP/out")" "0:expired silence $SID"
v out err alarms silences
eq "then silences lists nothing" "$(wc -c <"$TMP/out")" 0
v out err alarms unsilence; rc=$?
eq "unsilence without an id is a usage error" "$rc" 2

stop_pid "$COLLECTOR_PID"; rc=$?
eq "collector exits 0 on SIGTERM" "$rc" 0
done_testing
