#!/usr/bin/env bash
# tenants_test.sh — tenants end to end: bearer tokens, tenant isolation over
# every endpoint of the real collector, tokens made and revoked offline
# while it runs, the graph injection attempts, /metrics, the CLI, and TLS.
#
# A real vigie-agent polls tests/fixtures/node-nova.xml (libvirt's test
# driver): web1 in project bbbb...b1 (Nova metadata), db1 in "analytics",
# idle1 and the host in "default". Tokens: an admin token and one for
# "analytics", both made offline before the start. Then a second collector
# serves HTTPS with a self-signed certificate made here by openssl.
source "$(dirname "$0")/lib.sh"

collector_ports
DATA=$TMP/data
NODE=$ROOT/tests/fixtures/node-nova.xml
WEB=11111111-2222-3333-4444-555555555501
DB=11111111-2222-3333-4444-555555555502
P_WEB=bbbbbbbb0000000000000000000000b1
START=$(( $(date +%s) / 60 * 60 - 3600 ))   # synthetic clock: an hour ago

ADMIN=$("$BIN/vigie-collector" --data-dir "$DATA" token create --admin --name it 2>/dev/null)
ANA=$("$BIN/vigie-collector" --data-dir "$DATA" token create --project analytics 2>/dev/null)
eq "offline token create prints one token" "$(grep -c '^vgt_[0-9a-f]\{16\}_[0-9a-f]\{64\}$' <<<"$ADMIN"$'\n'"$ANA")" 2
check "tokens.db and tokens.key are private (0600)" \
  bash -c "[[ \$(stat -c %a '$DATA/tokens.db') == 600 && \$(stat -c %a '$DATA/tokens.key') == 600 ]]"
check "the plain token is not stored" bash -c "! grep -qa '${ADMIN#vgt_*_}' '$DATA/tokens.db'"

# as-token TOKEN ARGS... : curl with that token ("" = none); -q: no .curlrc
as() { local t=$1; shift; if [[ -n $t ]]; then curl -q -s --max-time 10 -H "Authorization: Bearer $t" "$@"; else curl -q -s --max-time 10 "$@"; fi; }
code() { local t=$1; shift; as "$t" -o /dev/null -w '%{http_code}' "$@"; }

printf '[billing]\nratecard = %s\n' "$ROOT/tests/fixtures/billing/ratecard.json" >"$TMP/vigie.conf"
check "collector answers /v1/health without a token" start_api_collector collector --config "$TMP/vigie.conf" \
  --data-dir "$DATA"
start_agent agent --collector tcp://127.0.0.1:$PORT --libvirt "test:///$NODE" --interval 0.1 \
  --host it-host --spool "$TMP/spool" --clock-start $START --clock-step 60
check "the agent's resources arrive" wait_for 20 bash -c \
  "[[ \$(curl -q -s -H 'Authorization: Bearer $ADMIN' '$API/v1/resources/$DB/latest' | jq -r '.metrics[\"cpu.time\"].value // \"null\"') != null ]]"
sleep 1
stop_pid "$AGENT_PID"

# ---- 401: no token, a bad token, on every protected endpoint ----
ENDPOINTS=(
  "/v1/resources" "/v1/resources/$WEB" "/v1/resources/$WEB/latest"
  "/v1/measures?resource=$WEB&metric=cpu.util&start=-2h"
  "/v1/statistics?resource=$WEB&metric=cpu.util&start=-2h"
  "/v1/aggregates?metric=cpu.util&start=-2h" "/v1/top?metric=cpu.util"
  "/v1/graph?resource=$WEB&metric=cpu.util&start=-2h" "/metrics" "/v1/tokens"
  "/v1/alarms" "/v1/invoices?project=$P_WEB&month=2026-10"
)
bad401=0 badwww=0
for e in "${ENDPOINTS[@]}"; do
  [[ $(code "" "$API$e") == 401 ]] || { bad401=1; diag "no token: $e"; }
  [[ $(code "vgt_0000000000000000_$(printf '0%.0s' $(seq 64))" "$API$e") == 401 ]] || { bad401=1; diag "forged: $e"; }
  as "" -D - -o /dev/null "$API$e" | grep -qi '^WWW-Authenticate: Bearer realm="vigie"' || badwww=1
done
eq "every protected endpoint is a 401 without a valid token (${#ENDPOINTS[@]} endpoints)" $bad401 0
eq "every 401 carries WWW-Authenticate: Bearer" $badwww 0
eq "a 401 is JSON" "$(as "" "$API/metrics" | jq -r .error.code)" 401
eq "the admin token reads every endpoint" \
  "$(for e in "${ENDPOINTS[@]}"; do code "$ADMIN" "$API$e"; echo; done | sort -u | tr '\n' ' ')" "200 "

# ---- isolation: the analytics token on webshop's data ----
for e in "/v1/resources/$WEB" "/v1/resources/$WEB/latest" "/v1/resources/$WEB-vda" \
         "/v1/measures?resource=$WEB&metric=cpu.util&start=-2h" \
         "/v1/statistics?resource=$WEB&metric=cpu.util&start=-2h&period=600" \
         "/v1/graph?resource=$WEB&metric=cpu.util&start=-2h" \
         "/v1/graph?resource=$DB&metric=cpu.util&resource2=$WEB&metric2=cpu.util"; do
  eq "analytics gets 404 for webshop's ${e%%\?*}" "$(code "$ANA" "$API$e")" 404
done
ghost=$(as "$ANA" "$API/v1/resources/$WEB/latest" | jq -r .error.message)
eq "the 404 reads as for a resource that does not exist" "$ghost" "no resource '$WEB'"
eq "analytics lists its own instance only" \
  "$(as "$ANA" "$API/v1/resources?type=instance" | jq -r '[.resources[].id] | join(",")')" "$DB"
eq "asking for webshop's project is an empty list" \
  "$(as "$ANA" "$API/v1/resources?project=$P_WEB" | jq '.resources | length')" 0
eq "a cursor past webshop's id pages through analytics only" \
  "$(as "$ANA" "$API/v1/resources?cursor=$WEB&limit=1000" | jq -r '[.resources[].project] | unique | join(",")')" analytics
eq "top: analytics' own instance" \
  "$(as "$ANA" "$API/v1/top?metric=cpu.util" | jq -r '[.resources[].id] | join(",")')" "$DB"
eq "top for webshop's project: nothing" \
  "$(as "$ANA" "$API/v1/top?metric=cpu.util&project=$P_WEB" | jq '.resources | length')" 0
eq "aggregates by project: analytics only" \
  "$(as "$ANA" "$API/v1/aggregates?metric=cpu.util&start=-2h&group_by=project" | jq -r '[.groups[].project] | join(",")')" analytics
eq "the admin's aggregate has both projects" \
  "$(as "$ADMIN" "$API/v1/aggregates?metric=cpu.util&start=-2h&group_by=project" | jq -r '[.groups[].project] | sort | join(",")')" "analytics,$P_WEB"
as "$ANA" "$API/metrics" >"$TMP/m.ana"
as "$ADMIN" "$API/metrics" >"$TMP/m.admin"
check "/metrics for analytics has its series" \
  grep -q "^vigie_cpu_util{resource=\"$DB\",type=\"instance\",project=\"analytics\"" "$TMP/m.ana"
eq "/metrics for analytics has no other project's series" \
  "$(grep -v '^#' "$TMP/m.ana" | grep -vc 'project="analytics"')" 0
eq "/metrics for analytics has no collector self-metrics" "$(grep -c 'vigie_collector_\|vigie_store_' "$TMP/m.ana")" 0
check "/metrics for the admin: webshop's series" grep -q "project=\"$P_WEB\"" "$TMP/m.admin"
check "/metrics for the admin: the collector's counters" \
  grep -q '^vigie_collector_batches_received_total [1-9]' "$TMP/m.admin"
check "/metrics for the admin: RRD write latency" grep -q '^vigie_store_write_seconds_count [1-9]' "$TMP/m.admin"
eq "/metrics: one TYPE line per family" \
  "$(grep '^# TYPE' "$TMP/m.admin" | sort | uniq -d | wc -l)" 0
eq "tokens are admin-only (403)" "$(code "$ANA" "$API/v1/tokens")" 403
# alarms and invoices obey the same scope
code "$ADMIN" -o "$TMP/alarm.json" -XPOST "$API/v1/alarms" \
  -d "{\"name\":\"web-cpu\",\"project\":\"$P_WEB\",\"metric\":\"cpu.util\",\"resource\":\"$WEB\",\"comparison\":\"gt\",\"threshold\":99}" >/dev/null
eq "analytics does not list webshop's alarm" \
  "$(as "$ANA" "$API/v1/alarms" | jq -r '[.alarms[].name] | index("web-cpu")')" null
eq "analytics gets 404 for webshop's alarm" "$(code "$ANA" "$API/v1/alarms/web-cpu")" 404
eq "the admin reads it" "$(code "$ADMIN" "$API/v1/alarms/web-cpu")" 200
eq "analytics gets 404 for webshop's invoice" \
  "$(code "$ANA" "$API/v1/invoices?project=$P_WEB&month=2026-10")" 404

# ---- tokens made and revoked offline while the collector runs ----
LATE=$("$BIN/vigie-collector" --data-dir "$DATA" token create --project "$P_WEB" 2>/dev/null)
eq "a token made offline works at once" "$(code "$LATE" "$API/v1/resources/$WEB")" 200
"$BIN/vigie-collector" --data-dir "$DATA" token revoke "$(cut -d_ -f2 <<<"$LATE")" >/dev/null 2>&1
eq "revoked offline: refused at the next request" "$(code "$LATE" "$API/v1/resources/$WEB")" 401
check "token list names both scopes, never a secret" bash -c \
  "out=\$('$BIN/vigie-collector' --data-dir '$DATA' token list); grep -q analytics <<<\"\$out\" && ! grep -q '${ANA#vgt_*_}' <<<\"\$out\""

# ---- the CLI over the API (VIGIE_TOKEN) ----
export VIGIE_TOKEN=$ADMIN
NEW=$("$BIN/vigie" --api "$API" token create --project analytics --name cli 2>/dev/null)
eq "vigie token create prints a token" "$(grep -c '^vgt_' <<<"$NEW")" 1
eq "vigie with that token sees analytics" \
  "$(VIGIE_TOKEN=$NEW "$BIN/vigie" --api "$API" resources --type instance --json | jq -r '[.resources[].id] | join(",")')" "$DB"
"$BIN/vigie" --api "$API" token revoke "$(cut -d_ -f2 <<<"$NEW")" >/dev/null; rc=$?
eq "vigie token revoke exits 0" $rc 0
VIGIE_TOKEN=$NEW "$BIN/vigie" --api "$API" resources >/dev/null 2>"$TMP/cli.err"; rc=$?
eq "a revoked token: exit 1" $rc 1
check "... with one line naming the 401" grep -qx "vigie: invalid or revoked token (HTTP 401)" "$TMP/cli.err"
"$BIN/vigie" --api "$API" top --once >"$TMP/top.out"; rc=$?
eq "vigie top --once exits 0" $rc 0
check "vigie top lists the busy instances" grep -q "$DB" "$TMP/top.out"
"$BIN/vigie" --api "$API" stats "$DB" cpu.util --start -2h --period 600 >"$TMP/stats.out"; rc=$?
eq "vigie stats exits 0" $rc 0
check "vigie stats prints periods" grep -q '^20[0-9-]*T[0-9:]*Z  *[0-9]' "$TMP/stats.out"
"$BIN/vigie" --api "$API" graph -o "$TMP/g.png" "$DB" cpu.util "$WEB" cpu.util --start -2h >/dev/null; rc=$?
eq "vigie graph exits 0" $rc 0
eq "vigie graph writes a PNG" "$(head -c 4 "$TMP/g.png" | tail -c 3)" PNG

# ---- graph: user text never reaches rrd_graph's language ----
G="$API/v1/graph?resource=$DB&metric=cpu.util&start=-2h"
eq "a title with ':' and a newline is refused" "$(code "$ADMIN" "$G&title=a%3Ab%0APRINT%3Av0%3AAVERAGE%3A%25lf")" 400
eq "a legend trying DEF:x=/etc/passwd is drawn as text" \
  "$(code "$ADMIN" "$G&legend=x%3ADEF%3Ax%3D%2Fetc%2Fpasswd%3Avalue%3AAVERAGE")" 200
eq "a legend with a backslash escape is refused" "$(code "$ADMIN" "$G&legend=%5Cg")" 400
eq "a metric name cannot name another file" "$(code "$ADMIN" "$API/v1/graph?resource=$DB&metric=..%2F..%2F..%2Fetc%2Fpasswd")" 404

stop_pid "$COLLECTOR_PID"; rc=$?
eq "collector exits 0 on SIGTERM" "$rc" 0

# ---- TLS (libmicrohttpd with GnuTLS) ----
if ! command -v openssl >/dev/null; then
  skip "openssl missing: no TLS test"
else
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1
  TPORT=$(free_port); THPORT=$(free_port)
  TAPI=https://127.0.0.1:$THPORT
  printf '[collector]\ntls_cert = %s\ntls_key = %s\n' "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/tls.conf"
  start_collector tls --config "$TMP/tls.conf" --listen tcp://127.0.0.1:$TPORT \
    --http 127.0.0.1:$THPORT --data-dir "$DATA"
  check "HTTPS: /v1/health with the self-signed CA" wait_for 30 curl -q -sf --cacert "$TMP/cert.pem" "$TAPI/v1/health"
  eq "HTTPS: a token works" "$(code "$ADMIN" --cacert "$TMP/cert.pem" "$TAPI/v1/resources/$DB")" 200
  eq "HTTPS: no token is still a 401" "$(code "" --cacert "$TMP/cert.pem" "$TAPI/v1/resources/$DB")" 401
  curl -q -s --max-time 5 "$TAPI/v1/health" >/dev/null 2>&1; rc=$?
  eq "HTTPS: an unknown CA is refused by curl (exit 60)" $rc 60
  eq "plain HTTP to the TLS port gets no answer" "$(curl -q -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$THPORT/v1/health")" 000
  "$BIN/vigie" --api "$TAPI" --cacert "$TMP/cert.pem" health >/dev/null; rc=$?
  eq "vigie --cacert over HTTPS exits 0" $rc 0
  "$BIN/vigie" --api "$TAPI" health >/dev/null 2>"$TMP/tls.err"; rc=$?
  eq "vigie without the CA exits 3" $rc 3
  check "... naming TLS" grep -q "TLS" "$TMP/tls.err"
  stop_pid "$COLLECTOR_PID"
  printf '[collector]\ntls_cert = %s\n' "$TMP/cert.pem" >"$TMP/half.conf"
  "$BIN/vigie-collector" --allow-unsigned --config "$TMP/half.conf" --listen tcp://127.0.0.1:$TPORT \
    --http 127.0.0.1:$THPORT --data-dir "$DATA" >"$TMP/half.log" 2>&1; rc=$?
  eq "a certificate without a key stops start-up (exit 2)" $rc 2
  check "... saying so" grep -q "TLS needs both tls_cert and tls_key" "$TMP/half.log"
  printf '[collector]\ntls_cert = %s\ntls_key = %s\n' "$TMP/cert.pem" "$TMP/nope.pem" >"$TMP/bad.conf"
  "$BIN/vigie-collector" --allow-unsigned --config "$TMP/bad.conf" --listen tcp://127.0.0.1:$TPORT \
    --http 127.0.0.1:$THPORT --data-dir "$DATA" >"$TMP/bad.log" 2>&1; rc=$?
  eq "an unreadable key stops start-up (exit 2)" $rc 2
  check "... naming the file" grep -q "\[collector\] tls_key: $TMP/nope.pem: No such file" "$TMP/bad.log"
fi

done_testing
