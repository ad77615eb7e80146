#!/usr/bin/env bash
# shared_state_test.sh — vigie-collector with its state in a real
# PostgreSQL server ([state] url), through the spine path: vigie-agent on
# libvirt's test driver -> collector -> registry rows in PostgreSQL (no
# registry.db, no tokens.db in the data dir) -> the API answers resources
# and measures, with an admin token made by `vigie-collector token create`
# on the shared state. A second collector on the same state and the same
# tokens.key (another data dir) answers the same resources with the same
# token and takes the agent over, also across a restart of the server;
# one started with another key refuses to start and names its key file.
# SKIP, with the reason, only when PostgreSQL cannot run on this machine.
source "$(dirname "$0")/lib.sh"

start_shared_state
# each component's tables live in its own schema (vigie/db.h): the
# registry's in vigie_registry, the tokens' in vigie_tokens
sql() { psql "$STATE" -X -q -A -t -v ON_ERROR_STOP=1 -c "SET search_path TO vigie_registry; $1"; }

URI=test:///default
UUID=6695eb01-f6a4-8304-79aa-97f2502e193f
NOW=$(date +%s)
START=$(( (NOW - 7200) / 60 * 60 ))
KEY=$TMP/tokens.key   # the tokens' key, "distributed" to both collectors

conf() { # NAME DATA_DIR LISTEN_PORT HTTP_PORT KEYFILE
  state_conf "$TMP/$1.conf" "$3" "$4" "$2" "$5" <<CONF
[log]
level = debug
CONF
}
P1=$(free_port); H1=$(free_port); P2=$(free_port); H2=$(free_port)
conf c1 "$TMP/data1" "$P1" "$H1" "$KEY"
conf c2 "$TMP/data2" "$P2" "$H2" "$KEY"

# the first admin token, offline, straight into the shared state
mkdir -p "$TMP/data1"
ADMIN_TOKEN=$("$BIN/vigie-collector" --config "$TMP/c1.conf" token create --admin --name it 2>"$TMP/token.err")
check "token create on the shared state prints a token" grep -q '^vgt_' <<<"$ADMIN_TOKEN"
eq "the token is a row of PostgreSQL" "$(sql 'SELECT count(*) FROM vigie_tokens.tokens')" 1
check "the key is a file (mode 0600)" test "$(stat -c %a "$KEY")" = 600
export VIGIE_TOKEN=$ADMIN_TOKEN

start_collector c1 --config "$TMP/c1.conf"
C1=$COLLECTOR_PID
API=http://127.0.0.1:$H1
check "collector answers /v1/health" wait_for 30 answers_health "$H1"
start_agent agent --collector tcp://127.0.0.1:$P1 --libvirt $URI --interval 0.2 \
  --host it-host --spool "$TMP/spool" --clock-start $START --clock-step 60
host_minutes() {
  local t
  t=$(api "/v1/resources/$UUID" | jq -r '.last_seen // empty') || return 1
  [[ -n $t ]] || return 1
  [[ $(( $(date -d "$t" +%s) - START )) -ge 840 ]]
}
check "15 simulated minutes of polls arrive within 30 s" wait_for 30 host_minutes
stop_pid "$AGENT_PID"

# ---- the state is in PostgreSQL, not in the data dir ----
check "no registry.db in the data dir" test ! -e "$TMP/data1/registry.db"
check "no tokens.db in the data dir" test ! -e "$TMP/data1/tokens.db"
eq "the instance is a row of PostgreSQL" \
  "$(sql "SELECT type || ' ' || host FROM resources WHERE id = '$UUID'")" "1 it-host"
check "the agent's stream is in the duplicate filter" \
  test "$(sql "SELECT max(last_seq) FROM streams WHERE host = 'it-host'")" -ge 15
eq "schema versions recorded" "$(sql "SELECT string_agg(component || '=' || version, ',' ORDER BY component) FROM (SELECT * FROM vigie_registry.vg_schema UNION ALL SELECT * FROM vigie_tokens.vg_schema) v WHERE component IN ('registry', 'tokens')")" \
  "registry=7,tokens=2"

# ---- the API answers from it ----
eq "the API lists the instance" \
  "$(api "/v1/resources?type=instance" | jq -r --arg u $UUID '.resources[] | select(.id==$u) | .name')" test
eq "the disk belongs to the instance" "$(api "/v1/resources/$UUID-vda" | jq -r .parent)" "$UUID"
m=$(api "/v1/measures?resource=$UUID&metric=memory.size&start=$START&end=$((START + 900))&granularity=60")
n=$(jq '.points | length' <<<"$m")
check "measures: >= 10 one-minute points (got $n)" test "$n" -ge 10
eq "a request without a token is refused" "$(ADMIN_TOKEN= api_code /v1/resources)" 401

# ---- a second collector on the same state and key ----
stop_pid "$C1"   # its last values are flushed into the shared state
start_collector c2 --config "$TMP/c2.conf"
API=http://127.0.0.1:$H2
check "second collector answers /v1/health" wait_for 30 answers_health "$H2"
eq "the same token works on the second collector" "$(api_code /v1/resources)" 200
eq "it lists the same instance" "$(api "/v1/resources/$UUID" | jq -r .host)" it-host
eq "with the last values the first one received" \
  "$(api "/v1/resources/$UUID" | jq -r '.metrics["memory.size"].last_time')" \
  "$(sql "SELECT to_char(to_timestamp(last_time_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM metrics WHERE resource_id = '$UUID' AND name = 'memory.size'")"
# the agent, moved to the second collector, goes on with its stream
start_agent agent2 --collector tcp://127.0.0.1:$P2 --libvirt $URI --interval 0.2 \
  --host it-host --spool "$TMP/spool" --clock-start $((START + 1800)) --clock-step 60
seq0=$(sql "SELECT max(last_seq) FROM streams WHERE host = 'it-host'")
more() { [[ $(sql "SELECT max(last_seq) FROM streams WHERE host = 'it-host'") -ge $((seq0 + 3)) ]]; }
check "the second collector acknowledges the agent's next batches" wait_for 30 more
# the server restarts (an immediate stop: a crash as the collector sees
# it): the batch in flight is answered RETRY, the next call reconnects;
# meanwhile /v1/health says the state database is down (/metrics, which
# checks its token there, answers 503)
eq "/v1/health: the state database is up and shared" \
  "$(curl -s "$API/v1/health" | jq -r '[.status, .state_db.state, .state_db.shared] | join(" ")')" "ok up true"
check "/metrics: vigie_state_db_up 1" bash -c "curl -s -H '$(api_auth)' '$API/metrics' | grep -qx 'vigie_state_db_up 1'"
check "/v1/health with an admin token has the state database's error field" \
  bash -c "curl -s -H '$(api_auth)' '$API/v1/health' | jq -e '.state_db | has(\"error\")'"
stop_postgres
# public route: the state, never the error text (it names the server,
# its port and user); no token can be checked with the server down, so
# an admin token gets the same answer: the text is in the collector's log
eq "/v1/health with the server down: degraded, state database down, no error text" \
  "$(curl -s "$API/v1/health" | jq -r '[.status, .state_db.state, (.state_db | has("error"))] | join(" ")')" "degraded down false"
check "... the collector's log has it" grep -q "health: the state database does not answer: ." "$TMP/c2.log"
# /metrics checks its token in the state database: it cannot answer then
eq "/metrics with the server down: 503 (the token cannot be checked)" "$(api_code /metrics)" 503
_pg_start
# the state_db ping reconnects at once, but the "cluster" view is what
# the node's last registry round saw (one round every lease / 3, 3.3 s
# here): degraded until its first round after the restart
health() { curl -s "$API/v1/health" | jq -r '[.status, .state_db.state] | join(" ")'; }
eq_within 15 "/v1/health once it is back: up again" "ok up" health
check "/metrics once it is back: vigie_state_db_up 1" wait_for 30 bash -c "curl -s -H '$(api_auth)' '$API/metrics' | grep -qx 'vigie_state_db_up 1'"
seq1=$(sql "SELECT max(last_seq) FROM streams WHERE host = 'it-host'")
more2() { [[ $(sql "SELECT max(last_seq) FROM streams WHERE host = 'it-host'") -ge $((seq1 + 3)) ]]; }
check "after a PostgreSQL restart the collector acknowledges again" wait_for 30 more2
check "the collector is still running" kill -0 "$COLLECTOR_PID"
stop_pid "$AGENT_PID"
eq "every batch the agent sent was acknowledged (its spool is empty)" \
  "$(ls "$TMP/spool"/*.vgb 2>/dev/null | wc -l)" 0
eq "a token made on the second collector is a row for both" \
  "$(curl -sS -X POST -H "$(api_auth)" -H 'Content-Type: application/json' \
      -d '{"project":"acme","name":"from-c2"}' "$API/v1/tokens" | jq -r '.token | startswith("vgt_")')" true
eq "two tokens in PostgreSQL" "$(sql 'SELECT count(*) FROM vigie_tokens.tokens')" 2

# ---- a collector with another key refuses ----
conf c3 "$TMP/data3" "$(free_port)" "$(free_port)" "$TMP/other.key"
"$BIN/vigie-collector" --allow-unsigned --config "$TMP/c3.conf" >"$TMP/c3.log" 2>&1 &
p3=$!
for _ in $(seq 100); do kill -0 $p3 2>/dev/null || break; sleep 0.1; done
if kill -0 $p3 2>/dev/null; then kill -KILL $p3; nok "a collector with another tokens.key stops"
else ok "a collector with another tokens.key stops"; fi
check "and names its key file" grep -q "$TMP/other.key: this key" "$TMP/c3.log"
done_testing
