#!/usr/bin/env bash
# squat_test.sh — a project that publishes (POST /v1/measures) to an id an
# agent has not reported yet creates a custom resource of that id; when
# the agent then reports its instance or its host under that id, the
# agent's identity must win, so the publishing project never reads
# another project's instance (or a hypervisor's metrics) through the
# resource it created — even when its point was dated up to max_future
# ahead, which makes the agent's reports older than the resource's
# identity; and the metrics the project had published there are no
# longer listed on the agent's resource, nor counted against the
# project's publish_series_max.
#
# A real collector and a real vigie-agent polling
# tests/fixtures/node-nova.xml (web1 belongs to project bbbb...b1); the
# squatter is a token of project "shop".
source "$(dirname "$0")/lib.sh"

collector_ports
DATA=$TMP/data
NODE=$ROOT/tests/fixtures/node-nova.xml
WEB=11111111-2222-3333-4444-555555555501
WEBPROJ=bbbbbbbb0000000000000000000000b1
AHEAD=$(($(date +%s) + 540)) # within the default max_future (10 min)

SHOP=$("$BIN/vigie-collector" --data-dir "$DATA" token create --project shop 2>/dev/null)
as() { local t=$1; shift; curl -q -s --max-time 20 -H "Authorization: Bearer $t" "$@"; }
publish() { # ID: one point of metric squat.x on ID, dated AHEAD
  as "$SHOP" -o /dev/null -w '%{http_code}' -X POST "$API/v1/measures" \
    -d "{\"measures\":[{\"resource\":\"$1\",\"metric\":\"squat.x\",\"value\":1,\"time\":$AHEAD}]}"
}

# a small publish_series_max: the series the agent took from shop must
# leave shop's count, or shop reaches its 429 early
printf '[collector]\npublish_series_max = 3\n' >"$TMP/vigie.conf"
check "collector answers /v1/health" start_api_collector collector --config "$TMP/vigie.conf" --data-dir "$DATA"

eq "shop creates a custom resource under the instance's future id" "$(publish "$WEB")" 200
eq "shop creates a custom resource under the host's future id" "$(publish it-host)" 200

start_agent agent --collector tcp://127.0.0.1:$PORT --libvirt "test:///$NODE" --interval 0.2 \
  --host it-host --spool "$TMP/spool"
check "the agent's instance is reported" wait_for 20 bash -c \
  "[[ \$(curl -q -s -H 'Authorization: Bearer $ADMIN_TOKEN' '$API/v1/resources/$WEB' | jq -r .metrics[\\\"cpu.util\\\"].last_value) != null ]]"
stop_pid "$AGENT_PID"

eq "the instance is the agent's: its type and project" \
  "$(api "/v1/resources/$WEB" | jq -c '[.type,.project,.host]')" "[\"instance\",\"$WEBPROJ\",\"it-host\"]"
eq "the host is the agent's" "$(api /v1/resources/it-host | jq -r .type)" host
eq "the instance lists none of shop's metrics, only the agent's" \
  "$(api "/v1/resources/$WEB" | jq -c '[(.metrics | has("squat.x")), (.metrics | has("cpu.util"))]')" '[false,true]'
eq "nor does the host" "$(api /v1/resources/it-host | jq '.metrics | has("squat.x")')" false
eq "shop does not read the other project's instance" \
  "$(as "$SHOP" -o /dev/null -w '%{http_code}' "$API/v1/resources/$WEB")" 404
eq "shop does not read the host" "$(as "$SHOP" -o /dev/null -w '%{http_code}' "$API/v1/resources/it-host")" 404
eq "shop's resource list holds neither" "$(as "$SHOP" "$API/v1/resources" | jq -c '[.resources[].id]')" '[]'
eq "shop may not publish to the instance any more" "$(publish "$WEB")" 403
eq "the two series the agent took no longer count against shop's publish_series_max" \
  "$(as "$SHOP" -o /dev/null -w '%{http_code}' -X POST "$API/v1/measures" \
    -d '{"measures":[{"resource":"shop-q","metric":"a","value":1},{"resource":"shop-q","metric":"b","value":1},{"resource":"shop-q","metric":"c","value":1}]}')" 200
eq "a fourth series is over it" \
  "$(as "$SHOP" -o /dev/null -w '%{http_code}' -X POST "$API/v1/measures" \
    -d '{"measures":[{"resource":"shop-q","metric":"d","value":1}]}')" 429
check "collector still answers" curl -q -sf "$API/v1/health"
done_testing
