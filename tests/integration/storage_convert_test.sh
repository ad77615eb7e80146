#!/usr/bin/env bash
# storage_convert_test.sh — `vigie-collector storage convert [--metric
# PATTERN]` walks the registry page by page and gives each series whose
# metric matches PATTERN (every series without it) the archives its rule
# names now: an agent's series are written with one archive, the
# configuration gains a second one, and convert with --metric 'cpu.*'
# changes exactly the cpu.* files (rrdtool info shows the new archive),
# then convert without a pattern changes the others and leaves the cpu.*
# ones as they are; --daemon/--dir (the rrdcached backend's, see
# storage_convert_rrdcached_test.sh) are refused here. Times come from the
# agent's synthetic clock.
. "$(dirname "$0")/lib.sh"

collector_ports
DATA=$TMP/data
RRD=$DATA/rrd
START=$(( ($(date +%s) - 12 * 3600) / 3600 * 3600 ))
conf() { printf '[storage]\nstep = 60\nheartbeat = 600\narchives = %s\n' "$1" >"$TMP/vigie.conf"; }
conf 1m:1d
check "collector starts" start_api_collector collector --config "$TMP/vigie.conf" --data-dir "$DATA"
start_agent agent --collector tcp://127.0.0.1:$PORT --libvirt test:///default \
  --proc "$ROOT/tests/fixtures/proc" --interval 0.2 --host cv-host --spool "$TMP/spool" \
  --clock-start $START --clock-step 60
ncpu() { find "$RRD" -name 'cpu.*.rrd' | wc -l; }
nall() { find "$RRD" -name '*.rrd' | wc -l; }
check "the agent's series are written (cpu.* and others)" wait_for 60 \
  bash -c "(( \$(find '$RRD' -name 'cpu.*.rrd' | wc -l) > 0 &&
              \$(find '$RRD' -name '*.rrd' ! -name 'cpu.*' | wc -l) > 0 ))"
stop_pid "$AGENT_PID"
stop_pid "$COLLECTOR_PID"
CPU=$(ncpu); ALL=$(nall); OTHER=$((ALL - CPU))
diag "series files: $CPU cpu.*, $OTHER others"
# the number of RRAs of a file: one per consolidation function per archive
rras() { rrdtool info "$1" | grep -c '^rra\[[0-9]*\]\.cf'; }
A_CPU=$(find "$RRD" -name 'cpu.*.rrd' | head -1)
A_OTHER=$(find "$RRD" -name '*.rrd' ! -name 'cpu.*' | head -1)
R0=$(rras "$A_CPU")

conf 1m:1d,5m:7d
convert() { "$BIN/vigie-collector" --config "$TMP/vigie.conf" --data-dir "$DATA" storage convert "$@"; }
convert --metric 'cpu.*' >"$TMP/c1.out" 2>"$TMP/c1.err"
eq "convert --metric 'cpu.*' succeeds" "$?" 0
diag "$(cat "$TMP/c1.out" "$TMP/c1.err")"
check "it converts exactly the cpu.* series" \
  grep -q "^converted $CPU series, 0 had their rule's archives already, 0 have no file, 0 failed" "$TMP/c1.out"
check "a cpu.* file has the new archive" bash -c "(( \$(rrdtool info '$A_CPU' | grep -c '^rra\[[0-9]*\]\.cf') > $R0 ))"
eq "another metric's file is untouched" "$(rras "$A_OTHER")" "$R0"

convert >"$TMP/c2.out" 2>"$TMP/c2.err"
eq "convert without a pattern succeeds" "$?" 0
diag "$(cat "$TMP/c2.out" "$TMP/c2.err")"
check "it converts the others and leaves the cpu.* series alone" \
  grep -q "^converted $OTHER series, $CPU had their rule's archives already, 0 have no file, 0 failed" "$TMP/c2.out"
check "the other file has the new archive too" bash -c "(( \$(rrdtool info '$A_OTHER' | grep -c '^rra\[[0-9]*\]\.cf') > $R0 ))"

convert --daemon 127.0.0.1:42217 --dir "$RRD" >/dev/null 2>"$TMP/c3.err"
eq "--daemon and --dir on the files backend: refused" "$?" 2
check "... saying they are for rrdcached" grep -q "are for \[storage\] backend = rrdcached" "$TMP/c3.err"
convert --daemon 127.0.0.1:42217 >/dev/null 2>&1
eq "--daemon without --dir: usage" "$?" 2
done_testing
