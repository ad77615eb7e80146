#!/usr/bin/env bash
# hostile_test.sh — the HTTP API of the real collector against hostile
# clients: query strings and paths built to break parsing, inject
# into SQL or rrdtool arguments or leave the data directory; oversize URIs,
# headers and bodies; deeply nested JSON; unknown methods; and slow clients
# that open connections and never finish a request (slowloris).
#
# Every answer must be a 4xx with a JSON error body (never a 5xx, a crash
# or a hang), real requests must keep being served while slow clients hold
# connections, and the server must close those connections after its idle
# timeout (VG_HTTP_TIMEOUT_S, 30 s; the slow clients are opened first so the
# wait overlaps the other checks); and one client address cannot hold more
# than a quarter of the connections (256): 127.0.0.1 holding that many is
# refused its next one while 127.0.0.2 is still served. The wire side (garbage batches, NaN,
# oversize messages, hostile names, 1,000 agents) is
# tests/integration/hostile_wire_test.c.
source "$(dirname "$0")/lib.sh"

URI=test:///default
UUID=6695eb01-f6a4-8304-79aa-97f2502e193f
collector_ports
DATA=$TMP/data
START=$(( ($(date +%s) - 7200) / 60 * 60 ))
SLOW=${HOSTILE_SLOW_CLIENTS:-64}
IDLE_TIMEOUT=${HOSTILE_IDLE_TIMEOUT:-30}

# An admin API token, made offline before the start.
TOKEN=$("$BIN/vigie-collector" --data-dir "$DATA" token create --admin 2>/dev/null | grep '^vgt_')
AUTH=(-H "Authorization: Bearer $TOKEN")
check "collector answers /v1/health" start_api_collector collector --data-dir "$DATA"

# ---- slow clients: open now, checked at the end ----
slow_fds=()
for _ in $(seq "$SLOW"); do
  exec {fd}<>"/dev/tcp/127.0.0.1/$HPORT" || break
  printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ' >&"$fd"
  slow_fds+=("$fd")
done
slow_t0=$SECONDS
eq "$SLOW slow clients hold connections" "${#slow_fds[@]}" "$SLOW"
# Served while they hold their connections: the answer comes, and every
# slow connection is still open after it (a server that served only once
# it had cut them off at the idle timeout would find none). --max-time is
# a hang guard beyond that timeout, no timing bound. `read -t 0` succeeds
# on a connection with something to read: data, or the server's EOF.
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time $((IDLE_TIMEOUT + 60)) "$API/v1/health")
held=0
for fd in "${slow_fds[@]}"; do read -r -t 0 -u "$fd" || held=$((held + 1)); done
eq "the API answers while they hold their connections (status, connections still held)" \
  "$code $held" "200 $SLOW"

# ---- some data to query ----
start_agent agent --config "$(drain_conf)" --collector tcp://127.0.0.1:$PORT --libvirt $URI --interval 0.05 \
  --host hostile-host --spool "$TMP/spool" --clock-start $START --clock-step 60 --count 5
wait "$AGENT_PID"; rc=$?
eq "agent delivered 5 polls and exited 0" "$rc" 0
check "the instance is registered" wait_for 30 curl -q -sf -o /dev/null "${AUTH[@]}" "$API/v1/resources/$UUID"

# ---- hostile requests ----
# hostile CODE_PATTERN DESC PATH [curl args...]: the status matches
# CODE_PATTERN (a bash glob) and the body is JSON.
hostile() {
  local want=$1 desc=$2 path=$3; shift 3
  local code
  # -q: no .curlrc (lib.sh may put a token there); AUTH decides
  code=$(curl -q -s --path-as-is -o "$TMP/body" -w '%{http_code}' --max-time 10 "${AUTH[@]}" "$@" "$API$path")
  if [[ $code == $want ]] && jq -e . "$TMP/body" >/dev/null 2>&1; then
    ok "$desc ($code)"
  else
    nok "$desc (got $code, want $want; body: $(head -c 200 "$TMP/body" 2>/dev/null))"
  fi
}
M="/v1/measures?resource=$UUID"
hostile 400 "negative limit" "/v1/resources?limit=-1"
hostile 400 "limit beyond 64 bits" "/v1/resources?limit=99999999999999999999999"
hostile 400 "limit in float syntax" "/v1/resources?limit=1e3"
hostile 400 "a NUL byte in a parameter" "/v1/resources?cursor=%00"
hostile "[24]0[04]" "a forged pagination cursor (keyset: it is only a position)" "/v1/resources?cursor=Zm9vYmFy"
hostile 400 "an unknown resource type" "/v1/resources?type=..%2F..%2Fetc"
hostile 200 "SQL in a filter is a plain string" "/v1/resources?name=%27%20OR%201%3D1%20--"
check "... and matches nothing" test "$(jq '.resources | length' "$TMP/body")" = 0
hostile 400 "an unknown parameter" "/v1/resources?bogus=1"
hostile 400 "a repeated parameter" "/v1/resources?limit=1&limit=2"
hostile 400 "a bad percent escape" "/v1/resources?name=%zz"
many=$(for i in $(seq 40); do printf 'p%d=1&' "$i"; done)
hostile 400 "40 query parameters" "/v1/resources?$many"
hostile 404 "an escaped path traversal as an id" "/v1/resources/..%2F..%2F..%2Fetc%2Fpasswd"
hostile 4?? "a raw path traversal" "/v1/resources/../../../etc/passwd"
hostile 404 "an overlong UTF-8 id" "/v1/resources/%c0%ae%c0%ae"
hostile 4?? "a NUL in a path segment" "/v1/resources/a%00b"
hostile 404 "too many path segments" "/v1$(printf '/x%.0s' $(seq 30))"
hostile 414 "a 5,000-byte URI" "/v1/resources?name=$(head -c 5000 /dev/zero | tr '\0' a)"
# Past libmicrohttpd's 32 KiB connection buffer the request line never
# reaches vigie: libmicrohttpd 0.9.75 answers its own 414, an HTML page,
# with no option to replace it (docs/api.md "Errors"). Pinned here so a
# change of either side is seen; the server goes on answering.
code=$(curl -q -s --path-as-is -o "$TMP/body" -w '%{http_code}' --max-time 10 "${AUTH[@]}" \
  "$API/v1/resources?name=$(head -c 40000 /dev/zero | tr '\0' a)")
if [[ $code == 414 ]] && curl -q -sf --max-time 10 "$API/v1/health" >/dev/null; then
  ok "a 40,000-byte URI: libmicrohttpd's own 414 ($(jq -e . "$TMP/body" >/dev/null 2>&1 && echo JSON || echo HTML)), and the server still answers"
else
  nok "a 40,000-byte URI (got $code; body: $(head -c 200 "$TMP/body" 2>/dev/null))"
fi
hostile 404 "an rrdtool DEF as a metric name" "$M&metric=DEF:x=%2Fetc%2Fpasswd:value:AVERAGE"
hostile 404 "a metric with a consolidation suffix" "$M&metric=cpu.time:AVERAGE"
hostile 404 "a metric that climbs out of the tree" "$M&metric=..%2F..%2F..%2Fregistry.db"
hostile 400 "a start time beyond 64 bits" "$M&metric=cpu.time&start=99999999999999999999999"
hostile 400 "a start time that is not a time" "$M&metric=cpu.time&start=yesterday%3Brm"
hostile 4?? "a window from 1970 to 2200" "$M&metric=cpu.time&start=1970-01-01&end=2200-01-01&granularity=60"
hostile 400 "granularity 0" "$M&metric=cpu.time&granularity=0"
hostile 400 "granularity 1e999" "$M&metric=cpu.time&granularity=1e999"
hostile 400 "an unknown aggregation" "$M&metric=cpu.time&aggregation=%3Cscript%3E"
# The SSE stream's resume point: an event id, 64 bits at most (strtoull
# took "-1" as 2^64 - 1 and saturated past 2^64: both were streams)
hostile 400 "a negative last_event_id" "/v1/alarms/stream?last_event_id=-1"
hostile 400 "a last_event_id beyond 64 bits" "/v1/alarms/stream?last_event_id=99999999999999999999999"
hostile 400 "a Last-Event-ID header with a sign" "/v1/alarms/stream" -H "Last-Event-ID: +5"
hostile 405 "DELETE on a read-only resource" "/v1/resources/$UUID" -X DELETE
hostile 405 "TRACE" "/v1/health" -X TRACE
hostile 4?? "a 10 MB body to a GET route" "/v1/resources" -X POST -H 'Content-Type: application/json' \
  --data-binary @<(head -c 10000000 /dev/zero | tr '\0' '[')
hostile 4?? "100,000 levels of nested JSON" "/v1/resources" -X POST -H 'Content-Type: application/json' \
  --data-binary @<(printf '%.0s[' $(seq 100000); printf '%.0s]' $(seq 100000))
# Hostile credentials: refused with a JSON 401, never a 5xx.
AUTH=()
hostile 401 "no token" "/v1/resources"
hostile 401 "a token of the right shape but wrong secret" "/v1/resources" \
  -H "Authorization: Bearer ${TOKEN%_*}_$(printf '0%.0s' $(seq 64))"
hostile 401 "a 6,000-byte bearer token" "/v1/resources" -H "Authorization: Bearer $(head -c 6000 /dev/zero | tr '\0' x)"
hostile 401 "Basic credentials" "/v1/resources" -H "Authorization: Basic YWRtaW46YWRtaW4="
hostile 401 "SQL as a token" "/v1/resources" -H "Authorization: Bearer ' OR 1=1 --"
# two credentials: this server took the first, a proxy in front may have
# checked the last; neither is chosen
hostile 400 "two Authorization headers" "/v1/resources" -H "Authorization: Bearer $TOKEN" \
  -H "Authorization: Bearer ${TOKEN%_*}_$(printf '0%.0s' $(seq 64))"
hostile 400 "the same token twice, one header in lower case" "/v1/resources" \
  -H "Authorization: Bearer $TOKEN" -H "authorization: Bearer $TOKEN"
AUTH=(-H "Authorization: Bearer $TOKEN")
# Headers beyond libmicrohttpd's memory limit: refused (4xx) or the
# connection is dropped; never a 5xx.
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "X-Big: $(head -c 100000 /dev/zero | tr '\0' b)" "$API/v1/health")
check "a 100 KB header is refused ($code)" bash -c "[[ $code == 4?? || $code == 000 ]]"
# Garbage instead of HTTP on the socket.
head -c 65536 /dev/urandom >"$TMP/noise"
timeout 5 bash -c "cat '$TMP/noise' >/dev/tcp/127.0.0.1/$HPORT" 2>/dev/null
check "random bytes on the HTTP port do not stop the server" curl -sf -o /dev/null --max-time 5 "$API/v1/health"
check "collector still running" kill -0 "$COLLECTOR_PID"

# ---- the slow clients are cut off after the idle timeout ----
# Waited for, not timed: each connection is read until the server's EOF,
# until the idle timeout plus a hang guard of 60 s from their opening.
wait_s=$(( IDLE_TIMEOUT - (SECONDS - slow_t0) ))
[[ $wait_s -gt 0 ]] && { diag "waiting ${wait_s}s for the ${IDLE_TIMEOUT}s idle timeout"; sleep "$wait_s"; }
end=$(( slow_t0 + IDLE_TIMEOUT + 60 ))
open=0
for fd in "${slow_fds[@]}"; do
  # Drain what the server said; EOF (status 1) means it closed the
  # connection; a time-out (status > 128) at the guard that it did not.
  while :; do
    IFS= read -r -t 0.2 -u "$fd" _; st=$?
    [[ $st -eq 0 ]] && continue
    [[ $st -le 128 || $SECONDS -ge $end ]] && break
  done
  [[ $st -gt 128 ]] && open=$((open + 1))
  exec {fd}>&-
done
eq "the server closed every idle slow connection" "$open" 0

# ---- one client address holds at most a quarter of the connections ----
# (VG_HTTP_CONN_LIMIT 1024 / 4 = 256, MHD_OPTION_PER_IP_CONNECTION_LIMIT;
# any 127.x.y.z is on loopback, so 127.0.0.2 is a second client address.)
PER_ADDR=256
conns_at_least() { # N: vigie_api_connections >= N, asked from 127.0.0.2
  local n
  n=$(curl -q -s --max-time 5 --interface 127.0.0.2 "${AUTH[@]}" "$API/metrics" |
        awk '$1 == "vigie_api_connections" { print int($2) }')
  [[ -n $n && $n -ge $1 ]]
}
if ! curl -q -sf -o /dev/null --max-time 5 --interface 127.0.0.2 "$API/v1/health"; then
  for _ in 1 2 3 4 5; do skip "no second loopback address (curl --interface 127.0.0.2 failed)"; done
else
  held=()
  for _ in $(seq "$PER_ADDR"); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$HPORT" || break
    printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ' >&"$fd"
    held+=("$fd")
  done
  eq "127.0.0.1 opens $PER_ADDR slow connections" "${#held[@]}" "$PER_ADDR"
  check "the server holds them all (vigie_api_connections >= $PER_ADDR, read from 127.0.0.2)" \
    wait_for 30 conns_at_least "$PER_ADDR"
  code=$(curl -q -s -o /dev/null -w '%{http_code}' --max-time 5 "${AUTH[@]}" "$API/v1/health")
  eq "127.0.0.1's next connection is refused" "$code" 000
  code=$(curl -q -s -o /dev/null -w '%{http_code}' --max-time 5 --interface 127.0.0.2 "${AUTH[@]}" "$API/v1/health")
  eq "a request from 127.0.0.2 is still served" "$code" 200
  for fd in "${held[@]}"; do exec {fd}>&-; done
  check "127.0.0.1 is served again once its connections close" \
    wait_for 30 curl -q -sf -o /dev/null --max-time 2 "$API/v1/health"
fi
check "/v1/health after all that" curl -sf -o /dev/null --max-time 5 "$API/v1/health"
stop_pid "$COLLECTOR_PID"; rc=$?
eq "collector exits 0 on SIGTERM" "$rc" 0
# bad input is rejected, counted and logged once: the first answer of each
# 4xx status at the default level, then one line per 1000 (fewer were sent)
eq "the many 400s above are one log line, at info, naming the request and why" \
  "$(grep -c ' info: http: rejected GET /v1/resources from 127.0.0.1: 400 .*(occurrence 1; logged 1st and every 1000th)$' "$TMP/collector.log") $(grep -c 'http: rejected .*: 400 ' "$TMP/collector.log")" "1 1"
if grep -E 'AddressSanitizer|runtime error|LeakSanitizer' "$TMP/collector.log" >/dev/null; then
  nok "no sanitizer report in the collector's log"
  grep -E -A5 'AddressSanitizer|runtime error|LeakSanitizer' "$TMP/collector.log" | head -20 | sed 's/^/# /'
else
  ok "no sanitizer report in the collector's log"
fi
done_testing
