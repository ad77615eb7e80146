#!/usr/bin/env bash
# publish_test.sh — measures a project publishes (POST /v1/measures) end to
# end on the real collector: every validation answer, cross-project writes
# refused, an agent instance's identity kept, the series read back through
# GET /v1/measures and POST /v1/query, an alarm on a custom metric that
# fires, and a kill -9 right after a 200 losing nothing.
#
# A real vigie-agent polls tests/fixtures/node-nova.xml: db1 belongs to
# project "analytics", web1 to the webshop project. Times are whole
# minutes of the last hour, so nothing waits for the wall clock.
source "$(dirname "$0")/lib.sh"

collector_ports NPORT
DATA=$TMP/data
NODE=$ROOT/tests/fixtures/node-nova.xml
WEB=11111111-2222-3333-4444-555555555501
DB=11111111-2222-3333-4444-555555555502
NOW=$(date +%s)
T0=$(( NOW / 60 * 60 - 3600 ))
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

ANA=$("$BIN/vigie-collector" --data-dir "$DATA" token create --project analytics 2>/dev/null)
SHOP=$("$BIN/vigie-collector" --data-dir "$DATA" token create --project shop 2>/dev/null)
as() { local t=$1; shift; curl -q -s --max-time 20 -H "Authorization: Bearer $t" "$@"; }
# post TOKEN BODY / code TOKEN BODY: the body through stdin (it may be
# longer than an argument may be)
post() { printf '%s' "$2" | as "$1" -X POST -H 'Content-Type: application/json' --data-binary @- "$API/v1/measures"; }
code() { printf '%s' "$2" | as "$1" -o /dev/null -w '%{http_code}' -X POST --data-binary @- "$API/v1/measures"; }

# http_max_concurrent_per_project at the workers (4): the 8 publishes at
# once below are about the points bucket, not the per-project cap (its
# own tests: http_test, api_cap_test)
printf '[collector]\npublish_series_max = 20\npublish_points_per_s = 100\nhttp_max_concurrent_per_project = 4\n' >"$TMP/vigie.conf"
check "collector answers /v1/health" start_api_collector collector --config "$TMP/vigie.conf" \
  --data-dir "$DATA" --notify tcp://127.0.0.1:$NPORT
if command -v nanocat >/dev/null; then
  nanocat --sub --connect tcp://127.0.0.1:$NPORT --subscribe metric.analytics.app-queue. -A >"$TMP/nanocat.metric" 2>&1 &
  _pids+=($!)
  sleep 0.5 # the subscription reaches the PUB socket
fi
start_agent agent --collector tcp://127.0.0.1:$PORT --libvirt "test:///$NODE" --interval 0.2 \
  --host it-host --spool "$TMP/spool"
check "the agent's instances arrive" wait_for 20 bash -c \
  "[[ \$(curl -q -s -H 'Authorization: Bearer $ADMIN_TOKEN' '$API/v1/resources/$DB' | jq -r .host) == it-host ]]"
stop_pid "$AGENT_PID"

# ---- a custom resource: created by the first write, read back ----
body='{"measures":['
for i in $(seq 0 9); do
  body+="{\"resource\":\"app-queue\",\"metric\":\"queue.depth\",\"unit\":\"1\",\"time\":\"$(iso $((T0 + 60 * i)))\",\"value\":$((i * 10))},"
done
body+="{\"resource\":\"app-queue\",\"metric\":\"jobs.done\",\"kind\":\"counter\",\"time\":$((T0)),\"value\":0},"
body+="{\"resource\":\"app-queue\",\"metric\":\"jobs.done\",\"kind\":\"counter\",\"time\":$((T0 + 60)),\"value\":600}]}"
r=$(post "$ANA" "$body")
eq "a batch of 12 points is stored" "$(jq -c '[.stored,.duplicates,.resources_created]' <<<"$r")" "[12,0,1]"
eq "the custom resource is the project's, of type custom" \
  "$(as "$ANA" "$API/v1/resources/app-queue" | jq -c '[.type,.project]')" '["custom","analytics"]'
# each row holds the point that ends it; the first point (0 at T0) fills
# the step before it (a published series starts one step before its
# first point, docs/api.md "How published points read back")
eq "GET /v1/measures reads the custom gauge" \
  "$(as "$ANA" "$API/v1/measures?resource=app-queue&metric=queue.depth&start=$(iso $T0)&end=$(iso $((T0 + 540)))&granularity=60" | jq -c '[.points[][1]]')" \
  "[10,20,30,40,50,60,70,80,90]"
eq "... and its first point, in the step before it" \
  "$(as "$ANA" "$API/v1/measures?resource=app-queue&metric=queue.depth&start=$(iso $((T0 - 120)))&end=$(iso $((T0 - 60)))&granularity=60" | jq -c '.points')" \
  "[[\"$(iso $((T0 - 60)))\",0]]"
eq "a counter is stored as a rate" \
  "$(as "$ANA" "$API/v1/measures?resource=app-queue&metric=jobs.done&start=$(iso $T0)&end=$(iso $((T0 + 60)))&granularity=60" | jq -c '[.points[][1]]')" "[10]"
# ---- units: stored with the series, read back ----
eq "the published unit is stored with its series (none given: \"\")" \
  "$(as "$ANA" "$API/v1/resources/app-queue" | jq -c '[.metrics["queue.depth"].unit, .metrics["jobs.done"].unit]')" '["1",""]'
eq "... and in the resource list" \
  "$(as "$ANA" "$API/v1/resources?type=custom" | jq -r '(if type == "array" then . else .resources end)[] | select(.id == "app-queue") | .metrics["queue.depth"].unit')" 1
eq "GET /v1/measures gives the published unit" \
  "$(as "$ANA" "$API/v1/measures?resource=app-queue&metric=queue.depth&start=$(iso $T0)&end=$(iso $((T0 + 60)))&granularity=60" | jq -r .unit)" 1
eq "a series stored without a unit takes the first one published" \
  "$(code "$ANA" "{\"measures\":[{\"resource\":\"app-queue\",\"metric\":\"jobs.done\",\"kind\":\"counter\",\"unit\":\"jobs\",\"time\":$((T0 + 120)),\"value\":1200}]}")" 200
eq "... and a counter's unit reads as a rate" \
  "$(as "$ANA" "$API/v1/measures?resource=app-queue&metric=jobs.done&start=$(iso $T0)&end=$(iso $((T0 + 60)))&granularity=60" | jq -r .unit)" jobs/s
eq "a series keeps its unit (another: 409)" \
  "$(code "$ANA" '{"measures":[{"resource":"app-queue","metric":"queue.depth","unit":"ms","value":1}]}')" 409
eq "the same unit again, or none, is taken" \
  "$(code "$ANA" "{\"measures\":[{\"resource\":\"app-queue\",\"metric\":\"queue.depth\",\"unit\":\"1\",\"time\":$((T0 + 600)),\"value\":100},{\"resource\":\"app-queue\",\"metric\":\"queue.depth\",\"time\":$((T0 + 660)),\"value\":110}]}")" 200
eq "two units for one series in a request: 400" \
  "$(code "$ANA" '{"measures":[{"resource":"u2","metric":"x","unit":"a","value":1},{"resource":"u2","metric":"x","unit":"b","time":"-1m","value":1}]}')" 400
eq "POST /v1/query reads it too" \
  "$(as "$ANA" -X POST --data-binary "{\"expr\":\"queue.depth{id=\\\"app-queue\\\"} * 2\",\"start\":\"$(iso $T0)\",\"end\":\"$(iso $((T0 + 120)))\",\"granularity\":60}" "$API/v1/query" | jq -c '[.series[0].points[][1]]' 2>/dev/null)" "[20,40,60]"
if command -v nanocat >/dev/null; then
  check "published points are streamed on the PUB socket's metric topic" wait_for 30 \
    grep -q '^metric.analytics.app-queue.queue.depth {.*"type":"custom"' "$TMP/nanocat.metric"
else
  skip "nanocat missing: the PUB stream is not checked"
fi
r=$(post "$ANA" "$body")
eq "the same batch again: every point a duplicate" "$(jq -c '[.stored,.duplicates]' <<<"$r")" "[0,12]"

# ---- the project's agent instance: a new metric, identity unchanged ----
before=$(as "$ANA" "$API/v1/resources/$DB" | jq -c '[.host,.project,.flavor,.name,.type]')
eq "a metric on the project's own instance is taken" \
  "$(code "$ANA" "{\"measures\":[{\"resource\":\"$DB\",\"metric\":\"app.latency\",\"unit\":\"ms\",\"value\":250}]}")" 200
eq "its host, project, flavor, name and type are unchanged" \
  "$(as "$ANA" "$API/v1/resources/$DB" | jq -c '[.host,.project,.flavor,.name,.type]')" "$before"
eq "the instance's own metric has its published unit, the agent's the catalogue's" \
  "$(as "$ANA" "$API/v1/resources/$DB" | jq -c '[.metrics["app.latency"].unit, .metrics["cpu.time"].unit]')" '["ms","s"]'
eq "an agent's catalogue metric of the instance is refused" \
  "$(code "$ANA" "{\"measures\":[{\"resource\":\"$DB\",\"metric\":\"cpu.util\",\"value\":1}]}")" 403

# ---- cross-project writes ----
eq "another project's instance is refused (403)" \
  "$(code "$ANA" "{\"measures\":[{\"resource\":\"$WEB\",\"metric\":\"x\",\"value\":1}]}")" 403
eq "another project's custom resource is refused (403)" \
  "$(code "$SHOP" "{\"measures\":[{\"resource\":\"app-queue\",\"metric\":\"x\",\"value\":1}]}")" 403
eq "an agent's disk is refused (403)" \
  "$(code "$ANA" "{\"measures\":[{\"resource\":\"$DB-vda\",\"metric\":\"x\",\"value\":1}]}")" 403
eq "a project token naming another project is refused" \
  "$(code "$ANA" '{"project":"shop","measures":[{"resource":"s1","metric":"x","value":1}]}')" 403
# "*" is every project to silences and alarm selectors: no resource's
eq "an administrator cannot publish into the project \"*\" (400)" \
  "$(code "$ADMIN_TOKEN" '{"project":"*","measures":[{"resource":"star-1","metric":"x","value":1}]}')" 400
eq "one refused point refuses the whole request" \
  "$(code "$SHOP" "{\"measures\":[{\"resource\":\"shop-1\",\"metric\":\"x\",\"value\":1},{\"resource\":\"app-queue\",\"metric\":\"x\",\"value\":1}]}")" 403
eq "... and nothing of it was written" "$(as "$SHOP" -o /dev/null -w '%{http_code}' "$API/v1/resources/shop-1")" 404
eq "the refused writes left app-queue as it was" \
  "$(as "$ANA" "$API/v1/resources/app-queue" | jq -c '[.project, (.metrics|keys)]')" '["analytics",["jobs.done","queue.depth"]]'
eq "no instance is created by a write" \
  "$(code "$ANA" '{"measures":[{"resource":"new-vm","type":"instance","metric":"x","value":1}]}')" 404

# ---- validation ----
bad() { eq "refused ($2): $1" "$(code "$ANA" "$3")" "$2"; }
bad "not JSON" 400 '{"measures":['
bad "no measures array" 400 '{"points":[]}'
bad "empty batch" 400 '{"measures":[]}'
bad "a control character in a resource id" 400 '{"measures":[{"resource":"a\u0001b","metric":"x","value":1}]}'
bad "a metric name over 200 bytes" 400 "{\"measures\":[{\"resource\":\"r\",\"metric\":\"$(printf 'm%.0s' $(seq 201))\",\"value\":1}]}"
bad "a unit over 32 bytes" 400 "{\"measures\":[{\"resource\":\"r\",\"metric\":\"x\",\"unit\":\"$(printf 'u%.0s' $(seq 33))\",\"value\":1}]}"
bad "a NaN (as a string)" 400 '{"measures":[{"resource":"r","metric":"x","value":"NaN"}]}'
bad "an infinite value (overflowing)" 400 '{"measures":[{"resource":"r","metric":"x","value":1e999}]}'
bad "a bad kind" 400 '{"measures":[{"resource":"r","metric":"x","kind":"derive","value":1}]}'
bad "a negative counter" 400 '{"measures":[{"resource":"r","metric":"c","kind":"counter","value":-5}]}'
bad "an unknown field" 400 '{"measures":[{"resource":"r","metric":"x","value":1,"colour":"red"}]}'
bad "a time beyond max_future" 400 "{\"measures\":[{\"resource\":\"r\",\"metric\":\"x\",\"time\":$((NOW + 3600)),\"value\":1}]}"
bad "a time older than the archives" 400 "{\"measures\":[{\"resource\":\"r\",\"metric\":\"x\",\"time\":$((NOW - 500 * 86400)),\"value\":1}]}"
bad "a time before 1970-01-02" 400 '{"measures":[{"resource":"r","metric":"x","time":5,"value":1}]}'
bad "two kinds for one series" 400 '{"measures":[{"resource":"r","metric":"x","value":1},{"resource":"r","metric":"x","kind":"counter","time":"-1m","value":1}]}'
bad "a kind other than the stored series'" 409 '{"measures":[{"resource":"app-queue","metric":"queue.depth","kind":"counter","value":1}]}'
eq "no resource came of the refused requests" "$(as "$ANA" -o /dev/null -w '%{http_code}' "$API/v1/resources/r")" 404
eq "the error names the point and the field" \
  "$(post "$ANA" '{"measures":[{"resource":"r","metric":"x","value":1},{"resource":"r","metric":"x","value":"1"}]}' | jq -r .error.message)" \
  'measures[1]: "value" must be a finite number'
eq "seconds as a string are a 400 that names the point" \
  "$(post "$ANA" "{\"measures\":[{\"resource\":\"r\",\"metric\":\"x\",\"time\":\"-1m\",\"value\":1},{\"resource\":\"r\",\"metric\":\"x\",\"time\":\"$((NOW - 60))\",\"value\":1}]}" | jq -r .error.message | cut -d: -f1-2)" \
  'measures[1]: "time" must be a number'
big=$(head -c $((17 << 20)) /dev/zero | tr '\0' ' ')
eq "a body over 16 MiB is a 413" "$(code "$ANA" "$big")" 413

# ---- limits: series and points per second ----
many='{"measures":['
for i in $(seq 1 30); do many+="{\"resource\":\"lim\",\"metric\":\"m$i\",\"value\":1},"; done
many="${many%,}]}"
eq "more new series than publish_series_max is a 429" "$(code "$SHOP" "$many")" 429
eq "... with Retry-After" "$(printf '%s' "$many" | as "$SHOP" -D - -o /dev/null -X POST --data-binary @- "$API/v1/measures" | grep -ci '^Retry-After:')" 1
# 8 requests of 100 points at once against a 100-point bucket: however
# slow the machine, they cannot all pass (the bucket's timing itself is
# tests/unit/publish_test.c's)
pts='{"measures":['
for i in $(seq 1 100); do pts+="{\"resource\":\"rate\",\"metric\":\"m\",\"time\":$((T0 + i)),\"value\":$i},"; done
pts="${pts%,}]}"
cpids=()
for k in $(seq 8); do
  printf '%s' "$pts" | as "$SHOP" -D "$TMP/h$k" -o /dev/null -X POST --data-binary @- "$API/v1/measures" &
  cpids+=($!)
done
wait "${cpids[@]}"
n429=$(grep -l '^HTTP/1.1 429' "$TMP"/h? | wc -l)
check "points over publish_points_per_s are a 429 (got $n429 of 8)" test "$n429" -ge 1
eq "every 429 says Retry-After" "$(grep -li '^Retry-After: [0-9]' $(grep -l '^HTTP/1.1 429' "$TMP"/h?) | wc -l)" "$n429"
big='{"measures":['
for i in $(seq 1 101); do big+="{\"resource\":\"rate\",\"metric\":\"m\",\"time\":$((T0 - i)),\"value\":$i},"; done
eq "a request over a second's worth of points is a 413" "$(code "$SHOP" "${big%,}]}")" 413

# ---- the CLI: vigie put ----
V() { "$BIN/vigie" --api "$API" --token "$ANA" "$@"; }
eq "vigie put publishes one point" "$(V put cli-res temp 21.5 --time -2m --unit C)" \
  "stored 1, duplicates 0, resources created 1 (project analytics)"
eq "vigie put --time SECONDS sends them as a number" \
  "$(V put cli-res secs 21 --time $((NOW - 150)) --json | jq -c '[.stored,.duplicates]')" "[1,0]"
eq "vigie put --file - reads lines" \
  "$(printf 'cli-res temp 22 -1m\n# a comment\ncli-res hum 40 -1m\n' | V put --file - --json | jq -c '[.stored,.resources_created]')" "[2,0]"
eq "vigie put: a bad line is a usage error (2)" "$(printf 'cli-res temp\n' | V put --file - 2>/dev/null; echo $?)" 2
# a line past the old 1,024-byte buffer was cut in two: the tail of a long
# comment was published as a point of its own
eq "vigie put: a long comment line publishes nothing" \
  "$(printf '#%01100dcli-tail m 5\ncli-res temp 23 -30s\n' 0 | V put --file - --json | jq -c '[.stored,.resources_created]')" "[1,0]"
eq "... and no resource came of its tail" "$(as "$ANA" -o /dev/null -w '%{http_code}' "$API/v1/resources/cli-tail")" 404
check "a bad VALUE in a line says so" bash -c \
  "printf 'cli-res temp nan\n' | '$BIN/vigie' --api '$API' --token '$ANA' put --file - 2>&1 | grep -q 'line 1: VALUE is not a finite decimal'"
# a JSON body says its own kind, unit and project: flags that would be
# dropped, or would replace the body's project, are usage errors
printf '{"measures":[{"resource":"cli-res","metric":"temp","value":24}]}' >"$TMP/put.json"
eq "vigie put --file JSON --kind counter is a usage error (2)" \
  "$(V put --file "$TMP/put.json" --kind counter 2>/dev/null; echo $?)" 2
printf '{"project":"analytics","measures":[{"resource":"cli-res","metric":"temp","value":24}]}' >"$TMP/put.json"
eq "vigie put --file JSON-with-project --project is a usage error (2)" \
  "$(V put --file "$TMP/put.json" --project web 2>/dev/null; echo $?)" 2
# strtod's other numbers: hex (0x10 was stored as 16), blanks, infinity
for v in 0x10 ' 5' -inf infinity 1e999 nan; do
  eq "vigie put: VALUE '$v' is a usage error (2)" "$(V put cli-res temp "$v" 2>/dev/null; echo $?)" 2
done
eq "vigie put: another project's resource is an API error (1)" \
  "$(V put "$WEB" x 1 >/dev/null 2>&1; echo $?)" 1

# ---- an alarm on a custom metric fires ----
ALARM_DOC=$(as "$ANA" -X POST --data-binary '{"name":"queue-deep","metric":"queue.depth","resource":"app-queue","statistic":"maximum","period":60,"evaluation_periods":1,"datapoints_to_alarm":1,"comparison":"gt","threshold":500,"actions":{"alarm":["log://"]}}' "$API/v1/alarms")
ALARM=$(jq -r .id <<<"$ALARM_DOC")
[[ $ALARM != null ]] || diag "$ALARM_DOC"
check "an alarm on the custom metric is created" test -n "$ALARM" -a "$ALARM" != null
# one point a minute over the last periods, all above the threshold
code "$ANA" "{\"measures\":[$(for s in 170 130 90 50 10; do printf '{"resource":"app-queue","metric":"queue.depth","time":"-%ss","value":900},' $s; done | sed 's/,$//')]}" >/dev/null
check "it fires" wait_for 90 bash -c \
  "[[ \$(curl -q -s -H 'Authorization: Bearer $ANA' '$API/v1/alarms/$ALARM' | jq -r .state) == alarm ]]"

# ---- a 200 means journaled: kill -9 right after, restart, read back ----
crash='{"measures":['
for i in $(seq 0 59); do crash+="{\"resource\":\"crash-1\",\"metric\":\"v\",\"time\":$((T0 + 60 * i)),\"value\":$i},"; done
crash="${crash%,}]}"
eq "60 points stored" "$(post "$ANA" "$crash" | jq .stored)" 60
kill -KILL "$COLLECTOR_PID"; wait "$COLLECTOR_PID" 2>/dev/null
check "the collector restarts" start_api_collector collector2 --config "$TMP/vigie.conf" \
  --data-dir "$DATA"
eq "every point of the acknowledged request is there after the kill -9" \
  "$(as "$ANA" "$API/v1/measures?resource=crash-1&metric=v&start=$(iso $T0)&end=$(iso $((T0 + 3540)))&granularity=60" | jq '[.points[][1]] | add')" 1770
eq "a published unit survives the kill -9 and a point without one" \
  "$(code "$ANA" '{"measures":[{"resource":"app-queue","metric":"queue.depth","value":5}]}') $(as "$ANA" "$API/v1/resources/app-queue" | jq -r '.metrics["queue.depth"].unit')" "200 1"
stop_pid "$COLLECTOR_PID"
done_testing
