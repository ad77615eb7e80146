#!/usr/bin/env bash
# storage_stats_test.sh — `vigie-collector storage stats`, what an operator
# runs to see the disk coming (docs/operations.md, "Watching the disk"):
# on the files backend it counts the registry's series and the series files
# actually under DATA_DIR/rrd, with their bytes and the free space, and
# exits 0; on the rrdcached backend, whose files are the daemons', it says
# on standard output that the collector cannot tell their bytes instead of
# printing an errno on standard error. `storage SUB --help` prints the
# usage on standard output and exits 0 for each subcommand. `storage marks`
# on sqlite state (no [state] url) exits 1 saying that marks need
# PostgreSQL, instead of listing none. Times come from the
# agent's synthetic clock.
. "$(dirname "$0")/lib.sh"

collector_ports
START=$(( ($(date +%s) - 12 * 3600) / 3600 * 3600 ))
stats() { "$BIN/vigie-collector" --config "$TMP/vigie.conf" --data-dir "$DATA" storage stats; }
# run_agent NAME: three polls of test:///default, delivered, then exit
run_agent() {
  start_agent "$1" --config "$(drain_conf)" --collector tcp://127.0.0.1:$PORT --libvirt test:///default \
    --proc "$ROOT/tests/fixtures/proc" --interval 0.2 --host st-host --spool "$TMP/spool-$1" \
    --clock-start $START --clock-step 60 --count 3
  wait "$AGENT_PID"
}

# ---- files backend ----
DATA=$TMP/data
printf '[storage]\nstep = 60\nheartbeat = 600\narchives = 1m:1d\n' >"$TMP/vigie.conf"
for c in stats convert flush move marks; do
  "$BIN/vigie-collector" --data-dir "$DATA" storage $c --help >"$TMP/h.out" 2>"$TMP/h.err"
  eq "storage $c --help exits 0" "$?" 0
  check "... and prints the usage on standard output" grep -q "storage $c" "$TMP/h.out"
done
check "collector starts (files backend)" start_api_collector collector --config "$TMP/vigie.conf" \
  --data-dir "$DATA"
run_agent agent
eq "the agent delivered its polls" "$?" 0
stop_pid "$COLLECTOR_PID"
# holding marks live in a PostgreSQL [state] url: on sqlite state the
# command says so and fails instead of listing "0 holding mark(s)"
for m in "" "release c2"; do
  "$BIN/vigie-collector" --config "$TMP/vigie.conf" --data-dir "$DATA" storage marks $m \
    >"$TMP/m.out" 2>"$TMP/m.err"
  eq "storage marks${m:+ $m} on sqlite state exits 1" "$?" 1
  check "... says on standard error that marks need a PostgreSQL [state] url" \
    grep -q "holding marks exist only in a PostgreSQL \[state\] url" "$TMP/m.err"
  check "... and lists nothing" bash -c "[[ ! -s '$TMP/m.out' ]]"
done
stats >"$TMP/s1.out" 2>"$TMP/s1.err"
eq "storage stats exits 0" "$?" 0
diag "$(cat "$TMP/s1.out" "$TMP/s1.err")"
files=$(find "$DATA/rrd" -name '*.rrd' | wc -l)
check "there are series files ($files)" bash -c "(( $files > 0 ))"
check "it counts the registry's series" grep -qx "series: $files (registry)" "$TMP/s1.out"
check "it counts the series files, their bytes and the free space" \
  grep -qE "^$DATA/rrd: $files series files, [1-9][0-9]* bytes, [0-9]+ bytes free$" "$TMP/s1.out"
check "it says nothing on standard error" bash -c "[[ ! -s '$TMP/s1.err' ]]"

# ---- rrdcached: the bytes are the daemon's ----
if ! command -v rrdcached >/dev/null; then
  skip "rrdcached not installed: storage stats on the rrdcached backend is not checked"
  done_testing; exit 0
fi
start_rrdcached st -R -O || { nok "rrdcached did not start"; done_testing; exit 1; }
DATA=$TMP/data2
printf '[storage]\nbackend = rrdcached\ndaemons = %s\nstep = 60\nheartbeat = 600\narchives = 1m:1d\n' \
  "$RRDCACHED_UNIX" >"$TMP/vigie.conf"
check "collector starts (rrdcached backend)" start_api_collector collector2 --config "$TMP/vigie.conf" \
  --data-dir "$DATA"
run_agent agent2
eq "the agent delivered its polls" "$?" 0
stats >"$TMP/s2.out" 2>"$TMP/s2.err"
eq "storage stats beside a running collector exits 0" "$?" 0
diag "$(cat "$TMP/s2.out" "$TMP/s2.err")"
check "it counts the registry's series" grep -qE '^series: [1-9][0-9]* \(registry\)$' "$TMP/s2.out"
check "it says the collector cannot tell the daemon's bytes" \
  grep -qF "$RRDCACHED_UNIX: bytes on disk, free space and growth not known to the collector ([storage] backend = rrdcached)" "$TMP/s2.out"
check "it prints no error" bash -c "[[ ! -s '$TMP/s2.err' ]]"
stop_pid "$COLLECTOR_PID"
done_testing
