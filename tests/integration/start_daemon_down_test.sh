#!/usr/bin/env bash
# start_daemon_down_test.sh — a collector on rrdcached is killed (-9)
# while it holds acknowledged values its storage daemon, down, has not
# taken, and is started again while the daemon is still down. It must
# come up and serve as it does when a daemon goes down while it runs:
# answer the API (the daemon down in /v1/health, reads of its series
# 503 naming it), keep the replayed values in its cache and journal,
# acknowledge agents (RETRY only at the cache or journal bound); and when
# the daemon starts, write every acknowledged value once, in order, and
# let its journal go.
#
# Why. The start replays the journal a crash left; it used to need every
# daemon to answer (it read each series' last update there first), so a
# start with a daemon down exited ("store: replaying the journal ...
# does not answer") and relied on systemd to start it again until the
# daemon came back: no API, no acks, its agents spooling meanwhile. Now
# a series whose daemon does not answer at the replay takes its values
# into the cache with its last update unknown, as the running store
# keeps values its daemon did not take; when the daemon answers, the
# values its file already holds (written before the kill) are found as
# already stored and skipped, the rest written.
#
# One collector, sqlite state, write-behind (the single collector's
# default; start_daemon_down_wt_test.sh runs it writing through, as
# collectors sharing daemons do: WRITE_THROUGH=yes). The several-collector case, with holding marks, is
# held_host_kill_early_test.sh. SKIP only without rrdcached or jq.
source "$(dirname "$0")/lib_shared_daemon.sh"
require rrdcached jq

POLLS=${POLLS:-50}
DOMAINS=${DOMAINS:-2}
WRITE_THROUGH=${WRITE_THROUGH:-no}
HOST=sdd-host
START=$(( ($(date -u +%s) - 6 * 3600) / 60 * 60 ))
END=$((START + (POLLS - 1) * 60))
start_rrdcached s -O -R || bail "rrdcached starts"
RD_DIR=$RRDCACHED_DIR RD_PORT=$RRDCACHED_PORT RD_PID=$RRDCACHED_PID
DAEMON=127.0.0.1:$RD_PORT
ok "rrdcached up ($DAEMON)"

collector_ports
DATA=$TMP/c
cat >"$TMP/c.conf" <<CONF
[collector]
listen = tcp://127.0.0.1:$PORT
http = 127.0.0.1:$HPORT
data_dir = $DATA
[storage]
backend = rrdcached
daemons = $DAEMON
archives = 1m:6h
heartbeat = 90
write_through = $WRITE_THROUGH
[agent]
ack_timeout_ms = 2000
[log]
level = debug
CONF
api_token_for "$DATA"
start_collector c --config "$TMP/c.conf"
C=$COLLECTOR_PID
check "the collector answers /v1/health" wait_for 20 answers_health "$HPORT"

cat >"$TMP/agent.conf" <<CONF
[agent]
collectors = tcp://127.0.0.1:$PORT
ack_timeout_ms = 2000
drain_ms = 120000
host_fs = false
CONF
node_xml "$TMP/node.xml" "$DOMAINS" vm 8100 01
start_host_agent agent "$TMP/agent.conf" "$TMP/node.xml" $HOST "$TMP/spool" 0.4
AG=$AGENT_PID

m() { # NAME: the collector's metric NAME, summed over its labels (0: none)
  curl -sf --max-time 10 -H "$(api_auth)" "http://127.0.0.1:$HPORT/metrics" 2>/dev/null |
    awk -v m="$1" 'index($0, m " ") == 1 || index($0, m "{") == 1 { v += $NF } END { print v + 0 }'
}
acked() { # batches stored and acknowledged OK
  curl -sf --max-time 10 -H "$(api_auth)" "http://127.0.0.1:$HPORT/metrics" 2>/dev/null |
    awk '$1 == "vigie_collector_batches_received_total" { n += $2 }
         $1 ~ /^vigie_collector_batches_(duplicate|retry|refused|rejected)_total$/ { n -= $2 }
         END { print n + 0 }'
}
acked_ge() { [[ $(acked) -ge $1 ]]; }
segments() { find "$DATA/journal" -maxdepth 1 -name '*.vgj' | wc -l; }
running() { kill -0 "$C" 2>/dev/null; }

# every series exists (cpu.util from the second poll on) before the daemon dies
check "the agent's first batches are stored" wait_for 60 acked_ge 4

# ---- the daemon dies; the collector acknowledges, holding the values ----
kill -KILL "$RD_PID"; wait "$RD_PID" 2>/dev/null
a0=$(acked)
check "batches are acknowledged while the daemon is down" wait_for 30 acked_ge $((a0 + 3))
kill -STOP "$AG" # no batch half-way when the collector dies
sleep 0.5
held=$(m vigie_store_values_pending)
check "the collector holds values for the daemon ($held)" test "$held" -gt 0
kill -KILL "$C"; wait "$C" 2>/dev/null
kill -CONT "$AG"
check "its journal holds them ($(segments) segment(s))" test "$(segments)" -gt 0
diag "collector killed holding $held values; the daemon is still down"
# the offline flush replays the journal too: it cannot write those values
# and must say so, and leave them in the journal
out=$("$BIN/vigie-collector" --config "$TMP/c.conf" storage flush 2>&1); rc=$?
eq "storage flush with no collector and the daemon down fails" "$rc" 1
check "... saying the values wait for the daemon" grep -q "wait for a storage daemon" <<<"$out"
check "... and leaves them in the journal" test "$(segments)" -gt 0

# ---- started again with the daemon still down: it comes up ----
start_collector c2 --config "$TMP/c.conf"
C=$COLLECTOR_PID
up_or_gone() { answers_health "$HPORT" || ! running; }
wait_for 60 up_or_gone
check "the collector answers /v1/health with the daemon down" answers_health "$HPORT"
sleep 2
if running; then ok "it is still running"
else nok "it is still running ($(grep -E ' error: ' "$TMP/c2.log" | tail -1 | cut -c1-200))"; fi
curl -s --max-time 10 -H "$(api_auth)" "http://127.0.0.1:$HPORT/v1/health" >"$TMP/h.json"
diag "$(jq -c '{status, storage}' "$TMP/h.json" 2>/dev/null)"
eq "/v1/health is degraded" "$(jq -r .status "$TMP/h.json" 2>/dev/null)" degraded
eq "... showing the daemon down (admin token: with its address)" \
  "$(jq -r '.storage[0] | "\(.address) \(.state)"' "$TMP/h.json" 2>/dev/null)" "$DAEMON down"
# the route is public: without a token, the state but no address or error
curl -s --max-time 10 "http://127.0.0.1:$HPORT/v1/health" >"$TMP/h0.json"
eq "without a token: degraded, the daemon down, no address nor error" \
  "$(jq -r '[.status, .storage[0].state, (.storage[0] | has("address") or has("error"))] | join(" ")' "$TMP/h0.json" 2>/dev/null)" \
  "degraded down false"
check "... and the daemon's address appears nowhere in it" bash -c "! grep -qF '$DAEMON' '$TMP/h0.json'"
Q="/v1/measures?resource=$HOST&metric=host.instances&start=$START&end=$((END + 600))&granularity=60"
code=$(curl -s -o "$TMP/m.json" -w '%{http_code}' --max-time 30 -H "$(api_auth)" "http://127.0.0.1:$HPORT$Q")
eq "a read of a series on the daemon answers 503" "$code" 503
check "... naming the daemon" grep -qF "storage daemon $DAEMON" "$TMP/m.json"
pend=$(m vigie_store_values_pending)
check "the replayed values wait in its cache ($pend)" test "$pend" -ge "$held"
check "... and in its journal" test "$(segments)" -gt 0
check "the log says they wait for the daemon" grep -q "wait for a storage daemon" "$TMP/c2.log"
a1=$(acked)
check "the agent's batches are acknowledged again" wait_for 60 acked_ge $((a1 + 3))
eq "none was answered RETRY" "$(m vigie_collector_batches_retry_total)" 0
check "the collector still holds values for the daemon" test "$(m vigie_store_values_pending)" -gt 0
sleep 1
check "... and its journal too" test "$(segments)" -gt 0

# ---- the daemon starts: everything is written once, the journal goes ----
restart_rrdcached s "$RD_DIR" "$RD_PORT" -O -R || nok "the daemon restarts"
RD_PID=$RRDCACHED_PID
if ! running; then # the old build: started again as systemd would
  start_collector c3 --config "$TMP/c.conf"
  C=$COLLECTOR_PID
  wait_for 60 answers_health "$HPORT"
fi
agent_ends "$AG" "$TMP/spool" 1500
drained() { [[ $(m vigie_store_values_pending) -eq 0 && $(segments) -eq 0 ]]; }
check "every value is written and the journal drained" wait_for 60 drained
eq "no value failed to be written" "$(m vigie_store_write_errors_total)" 0
eq "no journal segment was kept" "$(find "$DATA/journal" -name '*.kept' | wc -l)" 0
curl -s --max-time 10 "http://127.0.0.1:$HPORT/v1/health" >"$TMP/h.json"
eq "/v1/health shows the daemon up" "$(jq -r '.storage[0].state' "$TMP/h.json" 2>/dev/null)" up
code=$(curl -s -o "$TMP/m.json" -w '%{http_code}' --max-time 30 -H "$(api_auth)" "http://127.0.0.1:$HPORT$Q")
eq "the read answers 200" "$code" 200
diag "duplicates skipped: $(m vigie_store_values_duplicate_total), replayed: $(grep -o 'recovered from an unclean stop: [0-9]* values' "$TMP/c2.log" | tail -1)"
stop_pid "$C"
stop_pid "$RD_PID"

# ---- every series: one point per poll ----
every_series_one_point
done_testing
