#!/usr/bin/env bash
# hostile_tenant_test.sh — a second tenant and a careless or hostile client
# against the real collector, on the promises of docs/api.md and
# docs/alarms.md that a first reading would not test:
#
#   - /v1/aggregates of a host metric without a type aggregates the hosts
#     (it took instances by default: an empty answer for every host.*);
#   - a tenant's alarm naming another tenant's resource id watches its own
#     project only: it stays insufficient_data, with no datapoint, while
#     the owner's identical alarm fires on the same samples;
#   - an alarm stream opened with a token that is then revoked ends at its
#     next event (it streamed the project's notifications for ever);
#   - a silence given both ends_at and duration is a 400 (duration was
#     dropped without a word), a number for either names that field;
#   - POST /v1/tokens for the project "*" says the project is bad;
#   - an invoice's Content-Disposition cannot be given parameters through
#     the project name ('x"; filename=evil.exe'), and the HTML invoice,
#     served from the console's origin, carries a sandboxing CSP;
#   - published ids and metric names that climb out of the tree ('..',
#     '../../etc') stay files inside the data directory;
#   - a published value past what the RRD files keep (1e307: value x
#     seconds overflows) is a 400, not a 200 that reads back null;
#   - POST /v1/measures names an unknown top-level field (a 400), as it
#     does a point's;
#   - one project holds at most 64 alarm streams (429 beyond, counted),
#     others still open theirs, and streams whose clients left give
#     their places back within seconds (they were held ~30 s, so opening
#     and dropping streams kept a project's places full).
#
# A real vigie-agent polls tests/fixtures/node-nova.xml (db1 in project
# "analytics", a host it-host) on a synthetic clock 20 minutes back.
source "$(dirname "$0")/lib.sh"

collector_ports
DATA=$TMP/data
NODE=$ROOT/tests/fixtures/node-nova.xml
DB=11111111-2222-3333-4444-555555555502
START=$(( $(date +%s) / 60 * 60 - 1200 ))
MONTH=$(date -u +%Y-%m)

offline_token ADMIN "$DATA" --admin
offline_token ANA "$DATA" --project analytics
offline_token SHOP "$DATA" --project shop
# as TOKEN ARGS...: curl with that token; -q: no .curlrc
as() { local t=$1; shift; curl -q -s --max-time 10 -H "Authorization: Bearer $t" "$@"; }
# stream_status TOKEN: the HTTP status of GET /v1/alarms/stream as TOKEN,
# from the answer's first line as soon as it comes: an open stream never
# ends by itself (curl, unbuffered, ends on the pipe's close at its next
# write: the stream's greeting), a refusal at once. --max-time is a hang
# guard, no timing bound.
stream_status() {
  curl -q -s -N -i --max-time 60 -H "Authorization: Bearer $1" "$API/v1/alarms/stream" |
    head -n 1 | awk '{ print $2 }'
}
code() { local t=$1; shift; as "$t" -o "$TMP/body" -w '%{http_code}' "$@"; }
post() { printf '%s' "$3" | code "$1" -X POST -H 'Content-Type: application/json' --data-binary @- "$API$2"; }

printf '[billing]\nratecard = %s\n' "$ROOT/tests/fixtures/billing/ratecard.json" >"$TMP/vigie.conf"
check "collector answers /v1/health" start_api_collector collector --config "$TMP/vigie.conf" \
  --data-dir "$DATA"

# ---- alarms made before the samples: the owner's and a spy's ----
ALARM='"metric":"cpu.util","resource":"'$DB'","period":60,"comparison":"lt","threshold":1000'
eq "analytics' alarm on its db1" \
  "$(post "$ANA" /v1/alarms "{\"name\":\"own-low\",$ALARM,\"actions\":{\"alarm\":[\"log://\"]}}")" 201
# accepted (an id not reported yet is a normal alarm), but it watches the
# id in its own project, where nothing has it
eq "shop's alarm naming analytics' db1 is accepted" \
  "$(post "$SHOP" /v1/alarms "{\"name\":\"spy-low\",$ALARM}")" 201

start_agent agent --config "$(drain_conf)" --collector tcp://127.0.0.1:$PORT --libvirt "test:///$NODE" --interval 0.05 \
  --host it-host --spool "$TMP/spool" --clock-start $START --clock-step 60 --count 8
wait "$AGENT_PID"; rc=$?
eq "agent delivered 8 polls and exited 0" "$rc" 0
check "the owner's alarm fires on db1's samples" wait_for 30 bash -c \
  "[[ \$(curl -q -s -H 'Authorization: Bearer $ANA' '$API/v1/alarms/own-low' | jq -r .state) == alarm ]]"
eq "the spy's alarm saw none of them" \
  "$(as "$SHOP" "$API/v1/alarms/spy-low" | jq -c '[.state, (.instances | length)]')" '["insufficient_data",0]'
eq "... and its history is its creation only" \
  "$(as "$SHOP" "$API/v1/alarms/spy-low/history" | jq -c '[.history[].type]')" '["creation"]'

# ---- a revoked token's open alarm stream ends ----
# (it was authorised once, at its request, and then fed the project's
# notifications for as long as the client held it)
REV=$("$BIN/vigie-collector" --data-dir "$DATA" token create --project analytics --name sse 2>/dev/null | grep '^vgt_')
REV_ID=$(cut -d_ -f2 <<<"$REV")
# (--max-time: hang guards, far beyond what the checks wait for)
curl -q -s -N --max-time 90 -H "Authorization: Bearer $REV" "$API/v1/alarms/stream" >"$TMP/sse.rev" &
rev_pid=$!
curl -q -s -N --max-time 120 -H "Authorization: Bearer $ANA" "$API/v1/alarms/stream" >"$TMP/sse.ana" &
ana_pid=$!
_pids+=("$rev_pid" "$ana_pid")
check "both streams are open" wait_for 30 bash -c "[[ -s '$TMP/sse.rev' && -s '$TMP/sse.ana' ]]"
eq "the token is revoked" "$(code "$ADMIN" -X DELETE "$API/v1/tokens/$REV_ID")" 200
eq "a test notification of analytics' alarm" "$(code "$ANA" -X POST "$API/v1/alarms/own-low/test")" 202
check "the live token's stream gets it" wait_for 60 grep -q '"type":"test"' "$TMP/sse.ana"
kill "$ana_pid" 2>/dev/null; wait "$ana_pid" 2>/dev/null
wait "$rev_pid"; rc=$?
# curl's 28 is its --max-time: the server never ended the stream
check "the revoked token's stream was ended by the server (curl exit $rc, not 28)" test "$rc" != 28
check "... without it" bash -c "! grep -q '\"type\":\"test\"' '$TMP/sse.rev'"

# ---- /v1/aggregates: without a type, the catalogue's type ----
W="start=$START&end=$((START + 600))&granularity=60"
eq "host.load.1 without a type is aggregated over the hosts" \
  "$(as "$ADMIN" "$API/v1/aggregates?metric=host.load.1&$W" | jq -c '[.type, (.groups | length), .groups[0].resources, .unit]')" \
  '["host",1,1,"count"]'
eq "hfs.used over the host file systems" \
  "$(as "$ADMIN" "$API/v1/aggregates?metric=hfs.used&$W" | jq -c '[.type, .groups[0].resources > 0]')" '["host_disk",true]'
eq "cpu.util over the instances, as before" \
  "$(as "$ANA" "$API/v1/aggregates?metric=cpu.util&$W" | jq -c '[.type, .groups[0].resources]')" '["instance",1]'
eq "a project token's host aggregate holds no host (they are the default project's)" \
  "$(as "$ANA" "$API/v1/aggregates?metric=host.load.1&$W" | jq -c '[.type, (.groups | length)]')" '["host",0]'

# ---- silences: the end said once ----
SIL='"matchers":{"host":"it-host"},"created_by":"ops","comment":"x"'
eq "ends_at and duration together are a 400" "$(post "$SHOP" /v1/silences "{$SIL,\"ends_at\":\"+2h\",\"duration\":\"1h\"}")" 400
eq "... naming duration" "$(jq -c '[.error.fields[].field]' "$TMP/body")" '["duration"]'
eq "a number as duration is a 400 naming duration" \
  "$(post "$SHOP" /v1/silences "{$SIL,\"duration\":3600}"; jq -c '[.error.fields[].field]' "$TMP/body")" '400["duration"]'
eq "a silence with a duration only is made" "$(post "$SHOP" /v1/silences "{$SIL,\"duration\":\"1h\"}")" 201

# ---- tokens: '*' is a bad project ----
eq "POST /v1/tokens for project '*' is a 400" "$(post "$ADMIN" /v1/tokens '{"project":"*"}')" 400
check "... that says the project is bad" grep -q 'bad project' "$TMP/body"
# " acme" lists and logs as "acme" but would be another tenant; so
# would "acme" + U+00A0 or U+3000 + "acme" (any Unicode white space at
# either end), which were taken
eq "POST /v1/tokens for project ' acme' is a 400" "$(post "$ADMIN" /v1/tokens '{"project":" acme"}')" 400
check "... that names the white space" grep -q 'begins or ends with white space' "$TMP/body"
eq "... and 'acme ' too" "$(post "$ADMIN" /v1/tokens '{"project":"acme "}')" 400
eq "... and 'acme' + U+00A0" "$(post "$ADMIN" /v1/tokens '{"project":"acme\u00a0"}')" 400
check "... that names the white space" grep -q 'begins or ends with white space' "$TMP/body"
eq "... and U+3000 + 'acme'" "$(post "$ADMIN" /v1/tokens '{"project":"\u3000acme"}')" 400
eq "... and 'acme' + U+200B (an invisible format character)" \
  "$(post "$ADMIN" /v1/tokens '{"project":"acme\u200b"}')" 400
eq "... but 'ac\u00a0me' (inside) is a project like any" \
  "$(post "$ADMIN" /v1/tokens '{"project":"ac\u00a0me"}')" 201
for p in ' acme' '\u3000acme' 'acme\u2003'; do
  eq "POST /v1/measures for project '$p' is a 400" \
    "$(post "$ADMIN" /v1/measures "{\"project\":\"$p\",\"measures\":[{\"resource\":\"r1\",\"metric\":\"m\",\"value\":1}]}")" 400
  check "... that names the white space" grep -q 'begins or ends with white space' "$TMP/body"
done
eq "an administrator's alarm for project 'acme' + U+00A0 is a 400" \
  "$(post "$ADMIN" /v1/alarms "{\"name\":\"nbsp\",\"project\":\"acme\\u00a0\",$ALARM}")" 400
check "... naming the project" grep -q '"field": *"project"' "$TMP/body"
SELALARM='"metric":"cpu.util","period":60,"comparison":"lt","threshold":1000'
eq "an administrator's alarm whose selector.project is 'acme' + U+00A0 is a 400" \
  "$(post "$ADMIN" /v1/alarms "{\"name\":\"selnbsp\",$SELALARM,\"selector\":{\"type\":\"instance\",\"project\":\"acme\\u00a0\"}}")" 400
check "... naming selector.project" grep -q '"field": *"selector.project"' "$TMP/body"
eq "... and an event alarm's event.project ' acme'" \
  "$(post "$ADMIN" /v1/alarms '{"name":"evsp","type":"event","event":{"kind":"crashed","project":" acme"}}')" 400
check "... naming event.project" grep -q '"field": *"event.project"' "$TMP/body"
eq "... but selector.project 'acme' in an alarm of project 'acme' is an alarm like any" \
  "$(post "$ADMIN" /v1/alarms "{\"name\":\"selacme\",\"project\":\"acme\",$SELALARM,\"selector\":{\"type\":\"instance\",\"project\":\"acme\"}}")" 201
eq "an administrator's silence for project 'acme' + U+00A0 is a 400" \
  "$(post "$ADMIN" /v1/silences '{"matchers":{"project":"acme\u00a0"},"duration":"1h","created_by":"ops","comment":"x"}')" 400
check "... naming the project" grep -q 'matchers.project' "$TMP/body"

# a misspelt top-level field was dropped without a word (a point's
# unknown field was already a 400)
eq "POST /v1/measures with an unknown top-level field is a 400" \
  "$(post "$ANA" /v1/measures '{"measures":[{"resource":"r1","metric":"m","value":1}],"projet":"x"}')" 400
check "... that names it" grep -q 'unknown field \\"projet\\"' "$TMP/body"

# ---- invoices: the file name and the HTML's policy ----
hdr() { as "$ADMIN" -D - -o /dev/null "$API/v1/invoices?month=$MONTH&$1" | tr -d '\r' | grep -i "^$2:"; }
cd_evil=$(hdr 'project=x%22%3B%20filename%3Devil.exe%3B%20a%3D%22&format=html' Content-Disposition)
diag "$cd_evil"
eq "a project name gives the Content-Disposition no parameter" \
  "$(grep -o ';' <<<"$cd_evil" | wc -l)" 1
check "... and no file name of its choosing" bash -c "! grep -q 'filename=evil' <<<'$cd_evil'"
eq "a UTF-8 project name is an ASCII file name" \
  "$(hdr 'project=%C3%A9t%C3%A9&format=csv' Content-Disposition)" \
  "Content-Disposition: inline; filename=\"invoice-$MONTH-__t__.csv\""
check "the HTML invoice is sandboxed" bash -c \
  "grep -q \"sandbox\" <<<'$(hdr 'project=analytics&format=html' Content-Security-Policy)'"
check "... and allows no script" bash -c \
  "grep -q \"default-src 'none'\" <<<\"\$(curl -q -s -D - -o /dev/null -H 'Authorization: Bearer $ANA' '$API/v1/invoices?month=$MONTH&project=analytics&format=html')\""

# ---- published names that climb out of the tree ----
for n in '..' '.' '../../etc' '../../../registry'; do
  eq "publishing on '$n' is stored" \
    "$(post "$ANA" /v1/measures "{\"measures\":[{\"resource\":\"$n\",\"metric\":\"$n\",\"value\":1}]}")" 200
done
eq "... and read back under its own name" \
  "$(as "$ANA" "$API/v1/resources/..%2F..%2Fetc" | jq -c '[.id, .type, .project]')" '["../../etc","custom","analytics"]'
check "no file left the data directory" bash -c \
  "[[ -z \$(find '$TMP' -path '$DATA' -prune -o -newer '$TMP/vigie.conf' -name '*.rrd' -print) && ! -e '$TMP/etc' && ! -e '$DATA/../registry.rrd' ]]"
check "shop cannot read it" bash -c "[[ \$(curl -q -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $SHOP' '$API/v1/resources/..%2F..%2Fetc') == 404 ]]"

# ---- huge values: kept, or refused; never a 200 that reads back null ----
big='{"measures":['
for i in 6 5 4 3; do big+="{\"resource\":\"big\",\"metric\":\"m.big\",\"value\":1e300,\"time\":\"-${i}m\"},"; done
eq "1e300 is stored" "$(post "$ANA" /v1/measures "${big%,}]}")" 200
eq "... and read back" \
  "$(as "$ANA" "$API/v1/measures?resource=big&metric=m.big&start=-7m&granularity=60" | jq '[.points[][1] | select(. != null)] | length > 0 and all(. > 9e299)')" true
eq "1e307 is a 400 (it was stored as unknown)" \
  "$(post "$ANA" /v1/measures '{"measures":[{"resource":"big","metric":"m.huge","value":1e307}]}')" 400

# ---- alarm streams: one project holds at most 64 ----
# (keepalives keep a stream past the idle timeout: one tenant from four
# addresses held every one of the API's 1,024 connections)
# the first streams of this test may still hold a place for a moment: a
# stream whose client left is noticed within a second (the server looks
# at idle streams' connections each second; it used to wait for a write
# to fail, two keepalives, ~30 s), so 10 s here, for a loaded machine
check "the earlier streams are gone" wait_for 30 bash -c "[[ \$(curl -q -s -H 'Authorization: Bearer $ADMIN' '$API/metrics' | awk '\$1 == \"vigie_alarms_sse_clients\" {print \$2}') == 0 ]]"
spids=()
for i in $(seq 64); do
  # --retry: 64 opened at once meet the per-project cap on requests in
  # flight ([collector] http_max_concurrent_per_project: a 429 with
  # Retry-After: 1, which curl retries); the cap on streams is the 65th's
  curl -q -s -N --retry 10 --max-time 600 -H "Authorization: Bearer $ANA" "$API/v1/alarms/stream" >"$TMP/sse.$i" &
  spids+=($!)
done
_pids+=("${spids[@]}")
check "64 streams of analytics are open" wait_for 30 bash -c \
  "for i in \$(seq 64); do grep -q 'vigie alarm notifications' '$TMP/sse.'\$i || exit 1; done"
refused() { as "$ADMIN" "$API/metrics" | awk '$1 == "vigie_alarms_sse_refused_total" {print $2}'; }
before=$(refused)
eq "analytics' 65th stream is a 429" \
  "$(as "$ANA" -o "$TMP/body" -w '%{http_code}' --max-time 5 "$API/v1/alarms/stream")" 429
check "... that says why" grep -q 'already follows 64' "$TMP/body"
eq "shop still opens one" \
  "$(stream_status "$SHOP")" 200
eq "... and so does the administrator" \
  "$(stream_status "$ADMIN")" 200
eq "the refusal is counted" "$(refused)" $((before + 1))
kill "${spids[@]}" 2>/dev/null
wait "${spids[@]}" 2>/dev/null
# the clients left: their places come back within about a second (they
# were held ~30 s, until the second keepalive's write failed, so opening
# and dropping streams kept a project's places full)
check "the departed streams give their places back once their clients left" wait_for 60 bash -c "[[ \$(curl -q -s -H 'Authorization: Bearer $ADMIN' '$API/metrics' | awk '\$1 == \"vigie_alarms_sse_clients\" {print \$2}') == 0 ]]"
eq "... and analytics opens a stream again" \
  "$(stream_status "$ANA")" 200

check "collector still running" kill -0 "$COLLECTOR_PID"
done_testing
