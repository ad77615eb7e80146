#!/usr/bin/env bash
# publish_shared_test.sh — the publish quota (publish_series_max, POST
# /v1/measures) of one collector after an agent's report, received by
# another collector of the same PostgreSQL state, took over a custom
# resource the project had published to.
#
# Why. Each collector keeps its projects' published-series counts in
# memory and counts them again from the registry after a takeover drops a
# custom resource's metric rows. It used to learn of takeovers from its
# own registry handle only, so a takeover received by another collector
# left its count too high: the project's series that were gone still
# counted, and it was refused (429) below its limit. The sum of the
# dropped rows is now in the shared state (the registry's custom_drops),
# read by every collector's quota.
#
# Two collectors on one PostgreSQL state (started by the test), each with
# publish_series_max = 3; project "shop" publishes two series to the id
# of an instance an agent has not reported yet, through collector 1; the
# agent (libvirt's test driver, tests/fixtures/node-nova.xml) reports to
# collector 2, whose registry takes the resource over; then shop
# publishes three new series through collector 1: within the limit
# (200), and a fourth is over it (429). SKIP, with the reason, only when
# PostgreSQL cannot run on this machine.
source "$(dirname "$0")/lib.sh"

start_shared_state
sql() { psql "$STATE" -X -q -A -t -c "SET search_path TO vigie_registry; $1" 2>/dev/null; }

NODE=$ROOT/tests/fixtures/node-nova.xml
WEB=11111111-2222-3333-4444-555555555501
AHEAD=$(($(date +%s) + 540)) # within the default max_future (10 min)
KEY=$TMP/tokens.key

conf() { # NAME DATA_DIR LISTEN_PORT HTTP_PORT
  cat >"$TMP/$1.conf" <<CONF
[collector]
listen = tcp://127.0.0.1:$3
http = 127.0.0.1:$4
data_dir = $2
publish_series_max = 3
[state]
url = $STATE
token_key = $KEY
CONF
}
P1=$(free_port); H1=$(free_port); P2=$(free_port); H2=$(free_port)
conf c1 "$TMP/data1" "$P1" "$H1"
conf c2 "$TMP/data2" "$P2" "$H2"
mkdir -p "$TMP/data1" "$TMP/data2"
ADMIN_TOKEN=$("$BIN/vigie-collector" --config "$TMP/c1.conf" token create --admin --name it 2>/dev/null)
SHOP=$("$BIN/vigie-collector" --config "$TMP/c1.conf" token create --project shop 2>/dev/null)
check "tokens made on the shared state" grep -q '^vgt_' <<<"$SHOP"
export VIGIE_TOKEN=$ADMIN_TOKEN

start_collector c1 --config "$TMP/c1.conf"
start_collector c2 --config "$TMP/c2.conf"
check "collector 1 answers /v1/health" wait_for 20 answers_health "$H1"
check "collector 2 answers /v1/health" wait_for 20 answers_health "$H2"

pub() { # HTTP_PORT BODY: the answer's status
  curl -q -s --max-time 20 -H "Authorization: Bearer $SHOP" -o /dev/null -w '%{http_code}' \
    -X POST "http://127.0.0.1:$1/v1/measures" -d "$2"
}
eq "shop publishes two series to the instance's future id (collector 1)" \
  "$(pub "$H1" "{\"measures\":[{\"resource\":\"$WEB\",\"metric\":\"squat.x\",\"value\":1,\"time\":$AHEAD},{\"resource\":\"$WEB\",\"metric\":\"squat.y\",\"value\":1,\"time\":$AHEAD}]}")" 200
eq "the resource is shop's custom resource" \
  "$(sql "SELECT type || ' ' || project FROM resources WHERE id = '$WEB'")" "7 shop"

start_agent agent --collector tcp://127.0.0.1:$P2 --libvirt "test:///$NODE" --interval 0.2 \
  --host it-host --spool "$TMP/spool"
taken() { [[ $(sql "SELECT type FROM resources WHERE id = '$WEB'") == 1 ]]; }
check "the agent's report (collector 2) takes the resource over" wait_for 30 taken
stop_pid "$AGENT_PID"
eq "shop's series on it are gone from the state" \
  "$(sql "SELECT count(*) FROM metrics WHERE resource_id = '$WEB' AND name LIKE 'squat.%'")" 0
eq "the dropped rows are summed in the shared state" \
  "$(sql "SELECT coalesce(sum(metrics), 0) FROM custom_drops")" 2

eq "three new series through collector 1: within publish_series_max (the two lost no longer count)" \
  "$(pub "$H1" '{"measures":[{"resource":"shop-q","metric":"a","value":1},{"resource":"shop-q","metric":"b","value":1},{"resource":"shop-q","metric":"c","value":1}]}')" 200
eq "a fourth is over it" \
  "$(pub "$H1" '{"measures":[{"resource":"shop-q","metric":"d","value":1}]}')" 429
check "collector 1 still answers" answers_health "$H1"
check "collector 2 still answers" answers_health "$H2"
stop_postgres
done_testing
