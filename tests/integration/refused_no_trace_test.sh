#!/usr/bin/env bash
# refused_no_trace_test.sh — a batch the store refuses leaves no trace.
# A real collector on one rrdcached (the files of new series are created
# there); the daemon is then stopped, so the store cannot create a new
# series and refuses every batch that names one (RETRY to an agent, 503
# to POST /v1/measures). What such a batch named must not appear:
#   - POST /v1/measures of a new custom resource: 503, and GET
#     /v1/resources/{id} is a 404 (no phantom resource in the registry);
#   - POST /v1/measures of a known resource, a known metric (a new value)
#     and a new one: 503, the resource lists no new metric and keeps its
#     last_value and last_seen;
#   - an agent batch of a new host answered RETRY: none of its resources
#     is listed;
#   - once the daemon is back, the same request is stored (200) and its
#     resource and values appear.
# Before the fix the registry took each batch before the store refused it
# (collector/compose.c registered it first): every check of "not listed"
# and "unchanged" failed. SKIP when rrdcached or jq is missing.
. "$(dirname "$0")/lib.sh"

command -v rrdcached >/dev/null || { echo "1..0 # SKIP rrdcached not installed"; exit 0; }
command -v jq >/dev/null || { echo "1..0 # SKIP jq not installed"; exit 0; }
collector_ports
start_rrdcached a -R -O || bail "rrdcached did not start ($(tail -3 "$TMP/a.log"))"
DIR_A=$RRDCACHED_DIR PORT_A=$RRDCACHED_PORT
DATA=$TMP/data
printf '[storage]\nbackend = rrdcached\ndaemons = %s\n' "$RRDCACHED_UNIX" >"$TMP/vigie.conf"
check "collector starts" start_api_collector collector --config "$TMP/vigie.conf" --data-dir "$DATA"

# post BODY: POST /v1/measures as project p1; the answer in $TMP/post.json,
# the HTTP code on stdout
post() {
  curl -s -o "$TMP/post.json" -w '%{http_code}' --max-time 30 -X POST \
    -H "Authorization: Bearer $ADMIN_TOKEN" "$API/v1/measures" -d "$1"
}
T1=$(($(date +%s) - 180)) T2=$(($(date +%s) - 60))
eq "a first point is stored while the daemon runs" \
  "$(post "{\"project\":\"p1\",\"measures\":[{\"resource\":\"known\",\"metric\":\"m1\",\"value\":1,\"time\":$T1}]}")" 200
api /v1/resources/known >"$TMP/known0.json"
eq "... its resource lists m1 with last_value 1" "$(jq -c '[.metrics.m1.last_value, (.metrics | keys)]' "$TMP/known0.json")" '[1,["m1"]]'

stop_pid "$RRDCACHED_PID"
NEW="{\"project\":\"p1\",\"measures\":[{\"resource\":\"phantom\",\"metric\":\"m1\",\"value\":7,\"time\":$T2}]}"
eq "a point of a new resource is refused (503) while the daemon is down" "$(post "$NEW")" 503
diag "$(cat "$TMP/post.json")"
eq "... and the resource is not registered (404)" "$(api_code /v1/resources/phantom)" 404
eq "... nor listed" "$(api '/v1/resources?type=custom' | jq -c '[.resources[].id]')" '["known"]'
MORE="{\"project\":\"p1\",\"measures\":[{\"resource\":\"known\",\"metric\":\"m1\",\"value\":99,\"time\":$T2},
  {\"resource\":\"known\",\"metric\":\"m2\",\"value\":5,\"time\":$T2}]}"
eq "a new value of m1 with a new metric m2 is refused (503)" "$(post "$MORE")" 503
api /v1/resources/known >"$TMP/known1.json"
eq "... known lists no m2" "$(jq -c '.metrics | keys' "$TMP/known1.json")" '["m1"]'
eq "... m1 keeps its last_value and last_time" "$(jq -c '.metrics.m1 | [.last_value, .last_time]' "$TMP/known1.json")" \
  "$(jq -c '.metrics.m1 | [.last_value, .last_time]' "$TMP/known0.json")"
eq "... known keeps its last_seen" "$(jq -r .last_seen "$TMP/known1.json")" "$(jq -r .last_seen "$TMP/known0.json")"

# the agent path: a new host's batch answered RETRY registers nothing
# (vigie_collector_batches_retry_total counts the two 503s too: the log
# line of a RETRY is rate-limited)
retries() { api /metrics | awk '$1 == "vigie_collector_batches_retry_total" {print $2}'; }
r0=$(retries)
more_retries() { [[ $(retries) -gt $r0 ]]; }
start_agent agent --collector "tcp://127.0.0.1:$PORT" --libvirt test:///default \
  --proc "$ROOT/tests/fixtures/proc" --interval 0.2 --host nt-host --spool "$TMP/spool" --count 1
check "the agent's batch is answered RETRY" wait_for 60 more_retries
eq "... its host is not registered (404)" "$(api_code /v1/resources/nt-host)" 404
eq "... nor any resource of it" "$(api "/v1/resources?host=nt-host" | jq -c '.resources | length')" 0
stop_pid "$AGENT_PID"

restart_rrdcached a "$DIR_A" "$PORT_A" -R -O || bail "rrdcached did not restart"
stored() { [[ $(post "$NEW") == 200 ]]; }
check "once the daemon is back the same request is stored (200)" wait_for 60 stored
eq "... and the resource is registered with its value" \
  "$(api /v1/resources/phantom | jq -c '.metrics.m1.last_value')" 7
done_testing
