#!/usr/bin/env bash
# storage_flush_test.sh — fresh reads with plain rrdtool on the files
# backend: while an agent keeps sending, the collector caches values
# (write-behind), so `rrdtool last FILE` lags what the collector took;
# `vigie-collector storage flush` (SIGUSR1 to the running collector) writes
# the cache, waits for the collector's answer, and then plain rrdtool sees
# every value taken before it. With no collector running the command says
# so. The same with the rrdcached backend: the flush sends the cache to the
# daemon, and `rrdtool fetch --daemon` sees it. Times come from the agent's
# synthetic clock (one poll = one minute).
. "$(dirname "$0")/lib.sh"

command -v jq >/dev/null || { echo "1..0 # SKIP jq not installed"; exit 0; }
collector_ports
DATA=$TMP/data
START=$(( ($(date +%s) - 12 * 3600) / 3600 * 3600 ))
# flush_depth 256: a series is written after 256 values (or 300 s, or when
# no batch came for a second), so while the agent sends, values wait
printf '[storage]\nstep = 60\nheartbeat = 600\narchives = 1m:1d\nflush_depth = 256\n' >"$TMP/vigie.conf"
check "collector starts (files backend)" start_api_collector collector --config "$TMP/vigie.conf" \
  --data-dir "$DATA"
start_agent agent --collector tcp://127.0.0.1:$PORT --libvirt test:///default \
  --proc "$ROOT/tests/fixtures/proc" --interval 0.2 --host fl-host --spool "$TMP/spool" \
  --clock-start $START --clock-step 60
FILE=$DATA/rrd/host/fl-host/host.instances.rrd
# the newest poll the collector took (the registry's last_seen: no store
# read, so nothing is flushed by asking)
taken() { date -d "$(api /v1/resources/fl-host | jq -r .last_seen)" +%s 2>/dev/null; }
on_disk() { rrdtool last "$FILE" 2>/dev/null || echo 0; }
lagging() { local t; t=$(taken) && [[ -n $t ]] && (( t >= START + 8 * 60 && $(on_disk) < t )); }
if wait_for 60 lagging; then
  T=$(taken)
  ok "plain rrdtool lags the collector: file at $(( ($(on_disk) - START) / 60 )) min, taken $(( (T - START) / 60 )) min"
else
  nok "plain rrdtool lags the collector (file $(on_disk), taken $(taken))"
  T=$(taken)
fi
flush() { "$BIN/vigie-collector" --config "$TMP/vigie.conf" --data-dir "$DATA" storage flush "$@"; }
flush --timeout 60 >"$TMP/f1.out" 2>"$TMP/f1.err"
eq "storage flush succeeds" "$?" 0
diag "$(cat "$TMP/f1.out" "$TMP/f1.err")"
n=$(grep -o '[0-9]* cached values written' "$TMP/f1.out" | cut -d' ' -f1)
check "it reports the cached values the collector wrote" bash -c "[[ ${n:-0} -gt 0 ]]"
check "plain rrdtool sees the newest value taken before the flush" bash -c "(( $(on_disk) >= T ))"
check "rrdtool fetch reads it" bash -c "rrdtool fetch '$FILE' AVERAGE -s $((T - 120)) -e $T | grep -q '^$T: [0-9]'"
check "the collector logged it" grep -q "SIGUSR1: flushed" "$TMP/collector.log"
check "... saying none is left cached (not that a daemon does not answer)" \
  bash -c "grep 'SIGUSR1: flushed' '$TMP/collector.log' | head -1 | grep -q 'none left cached'"
check "the collector keeps running" kill -0 "$COLLECTOR_PID"
# a timeout past what the wait can count (it overflowed to an instant
# "did not report a flush", exit 1, while the collector flushed)
for t in 9223372036854775807 99999999999999999999 86401 0 -5 ''; do
  flush --timeout "$t" >"$TMP/ft.out" 2>&1
  eq "storage flush --timeout '$t' is a usage error" "$?" 2
  check "... naming the bound" grep -q -- '--timeout takes seconds from 1 to 86400' "$TMP/ft.out"
done
kill -USR1 "$COLLECTOR_PID"
check "a plain SIGUSR1 flushes too (and does not stop it)" wait_for 20 bash -c \
  "[[ \$(grep -c 'SIGUSR1: flushed' '$TMP/collector.log') -ge 2 ]] && kill -0 $COLLECTOR_PID"
stop_pid "$AGENT_PID"
stop_pid "$COLLECTOR_PID"
flush >"$TMP/f2.out" 2>&1
eq "with no collector running it succeeds" "$?" 0
check "... and says nothing is cached" grep -q "no vigie-collector runs on" "$TMP/f2.out"

# ---- rrdcached: the flush sends the cache to the daemon, where
# `rrdtool fetch --daemon` sees it ----
if ! command -v rrdcached >/dev/null; then
  skip "rrdcached not installed: the rrdcached backend's flush is not checked"
  done_testing; exit 0
fi
start_rrdcached fl -R -O || { nok "rrdcached did not start"; done_testing; exit 1; }
DATA=$TMP/data2
printf '[storage]\nbackend = rrdcached\ndaemons = %s\nstep = 60\nheartbeat = 600\narchives = 1m:1d\nflush_depth = 256\n' \
  "$RRDCACHED_UNIX" >"$TMP/vigie.conf"
check "collector starts (rrdcached backend)" start_api_collector collector2 --config "$TMP/vigie.conf" \
  --data-dir "$DATA"
start_agent agent2 --collector tcp://127.0.0.1:$PORT --libvirt test:///default \
  --proc "$ROOT/tests/fixtures/proc" --interval 0.2 --host fl-host --spool "$TMP/spool2" \
  --clock-start $START --clock-step 60
# over the unix socket rrdtool wants the absolute name (rrdcached_test.sh)
FILE=$RRDCACHED_BASE/host/fl-host/host.instances.rrd
seen() { rrdtool fetch --daemon "$RRDCACHED_UNIX" "$FILE" AVERAGE -s $(($1 - 120)) -e "$1" 2>/dev/null |
  grep -q "^$1: [0-9]"; }
lagging() { local t; t=$(taken) && [[ -n $t ]] && (( t >= START + 8 * 60 )) && ! seen "$t"; }
if wait_for 60 lagging; then ok "rrdtool fetch --daemon lags the collector"
else nok "rrdtool fetch --daemon lags the collector"; fi
T=$(taken)
flush --timeout 60 >"$TMP/f3.out" 2>&1
eq "storage flush succeeds" "$?" 0
diag "$(cat "$TMP/f3.out")"
check "rrdtool fetch --daemon sees the newest value taken before the flush" seen "$T"
done_testing
