#!/usr/bin/env bash
# unlisted_daemon_test.sh — a series recorded on a storage daemon that was
# taken out of [storage] daemons before its series were moved (what
# docs/scaling.md "Adding or removing a storage node" warns against) is not
# created again elsewhere: the API answers 503 with Retry-After, and the
# message says why (the daemon is not listed) instead of blaming an
# "(unknown)" daemon that "does not answer": it names the recorded
# daemon's address, and /v1/health, /metrics and `vigie-collector storage
# stats` report the series recorded on it. Times come from the agent's
# synthetic clock.
. "$(dirname "$0")/lib.sh"

command -v rrdcached >/dev/null || { echo "1..0 # SKIP rrdcached not installed"; exit 0; }
command -v jq >/dev/null || { echo "1..0 # SKIP jq not installed"; exit 0; }
collector_ports
START=$(( ($(date +%s) - 12 * 3600) / 3600 * 3600 ))
start_rrdcached a -R -O || { nok "rrdcached a did not start"; done_testing; exit 1; }
A=$RRDCACHED_UNIX
start_rrdcached b -R -O || { nok "rrdcached b did not start"; done_testing; exit 1; }
B=$RRDCACHED_UNIX
DATA=$TMP/data
conf() { printf '[storage]\nbackend = rrdcached\ndaemons = %s\nstep = 60\nheartbeat = 600\narchives = 1m:1d\n' \
  "$1" >"$TMP/vigie.conf"; }
conf "$A"
check "collector starts on daemon a" start_api_collector collector --config "$TMP/vigie.conf" \
  --data-dir "$DATA"
start_agent agent --config "$(drain_conf)" --collector tcp://127.0.0.1:$PORT --libvirt test:///default \
  --proc "$ROOT/tests/fixtures/proc" --interval 0.2 --host ud-host --spool "$TMP/spool" \
  --clock-start $START --clock-step 60 --count 3
wait "$AGENT_PID"
eq "the agent delivered its polls" "$?" 0
stop_pid "$COLLECTOR_PID"
# daemon a leaves the list while it still holds the series
conf "$B"
check "collector starts on daemon b only" start_api_collector collector2 --config "$TMP/vigie.conf" \
  --data-dir "$DATA"
Q="/v1/measures?resource=ud-host&metric=host.instances&start=$START&end=$((START + 600))&granularity=60"
code=$(curl -s -o "$TMP/m.json" -D "$TMP/m.hdr" -w '%{http_code}' -H "Authorization: Bearer $ADMIN_TOKEN" \
  "http://127.0.0.1:$HPORT$Q")
eq "a series on an unlisted daemon answers 503" "$code" 503
diag "$(cat "$TMP/m.json")"
check "... with Retry-After" grep -qi '^Retry-After:' "$TMP/m.hdr"
check "... naming the recorded daemon, not in [storage] daemons" \
  grep -qF "is recorded on the storage daemon $A, which is not in [storage] daemons" "$TMP/m.json"
check "... naming no '(unknown)' daemon" bash -c "! grep -qF '(unknown)' '$TMP/m.json'"
G="/v1/graph?resource=ud-host&metric=host.instances&start=$START&end=$((START + 600))"
code=$(curl -s -o "$TMP/g.json" -w '%{http_code}' -H "Authorization: Bearer $ADMIN_TOKEN" \
  "http://127.0.0.1:$HPORT$G")
eq "its graph answers 503 too" "$code" 503
check "... naming the recorded daemon" grep -qF "storage daemon $A, which is not" "$TMP/g.json"
check "nothing was created on daemon b" bash -c "[[ ! -e '$RRDCACHED_BASE/host/ud-host/host.instances.rrd' ]]"
# the operator sees the orphaned placements: health, /metrics, storage stats
curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$HPORT/v1/health" >"$TMP/h.json"
diag "$(jq -c '{status, reason, unlisted_daemons}' "$TMP/h.json")"
eq "/v1/health is degraded" "$(jq -r .status "$TMP/h.json")" degraded
eq "... listing the unlisted daemon" "$(jq -r '.unlisted_daemons[0].address' "$TMP/h.json")" "$A"
check "... with the series recorded on it" \
  test "$(jq -r '.unlisted_daemons[0].series' "$TMP/h.json")" -ge 10
# the route is public: without a token, the series count but no address
curl -s "http://127.0.0.1:$HPORT/v1/health" >"$TMP/h0.json"
eq "without a token: degraded, the count of series, no address" \
  "$(jq -r '[.status, (.unlisted_daemons[0].series >= 10), (.unlisted_daemons[0] | has("address"))] | join(" ")' "$TMP/h0.json")" \
  "degraded true false"
check "... and no daemon address appears in it" bash -c "! grep -qF '$A' '$TMP/h0.json'"
check "/metrics counts them" bash -c "curl -s -H 'Authorization: Bearer $ADMIN_TOKEN' \
  http://127.0.0.1:$HPORT/metrics | grep -E '^vigie_storage_unlisted_series\\{daemon=\"$A\"\\} [1-9]'"
"$BIN/vigie-collector" --config "$TMP/vigie.conf" --data-dir "$DATA" storage stats \
  >"$TMP/stats.out" 2>&1
diag "$(grep -F "$A" "$TMP/stats.out")"
check "storage stats beside the collector names it" \
  grep -qE "^$A: [1-9][0-9]* series recorded on it, not in \[storage\] daemons" "$TMP/stats.out"
stop_pid "$COLLECTOR_PID"
"$BIN/vigie-collector" --config "$TMP/vigie.conf" --data-dir "$DATA" storage stats \
  >"$TMP/stats2.out" 2>&1
check "storage stats with the collector stopped names it" \
  grep -qE "^$A: [1-9][0-9]* series recorded on it, not in \[storage\] daemons" "$TMP/stats2.out"
done_testing
