#!/usr/bin/env bash
# bench/crash_soak.sh [CYCLES] — the kill -9 crash test of `make check`
# (tests/integration/crash_test.c: a sender streams batches while the collector is
# SIGKILLed at random moments; afterwards every acknowledged value must be
# in the RRD files at its own time, `rrdtool info` must read every file,
# PRAGMA integrity_check must pass, every alarm transition must reach the
# test's webhook receiver once (a re-send of the same id only across a
# kill) and the compute usage in billing.db must equal what was sent), run
# for longer: CYCLES kills (default 100, about three minutes), ROUNDS times
# over fresh data directories (default 1).
# Needs `make all unit-tests` first; uses $VIGIE_BUILD (default build).
set -u
cd "$(dirname "$0")/.."
BUILD=${VIGIE_BUILD:-build}
CYCLES=${1:-${CRASH_CYCLES:-100}}
ROUNDS=${ROUNDS:-1}
T=$BUILD/tests/integration/crash_test
[[ -x $T ]] || { echo "crash_soak: $T missing (make all unit-tests)" >&2; exit 1; }
rc_all=0
for r in $(seq "$ROUNDS"); do
  t0=$SECONDS
  if VIGIE_BUILD=$BUILD CRASH_CYCLES=$CYCLES "$T" >"$BUILD/crash_soak.$r.log" 2>&1; then
    echo "ok $r - $CYCLES kills in $((SECONDS - t0)) s: $(grep -o '[0-9]* kills, .*databases' "$BUILD/crash_soak.$r.log")"
    grep -E '^# (alarms|billing|store opened)' "$BUILD/crash_soak.$r.log"
  else
    echo "not ok $r - see $BUILD/crash_soak.$r.log"
    grep -E 'ERROR|error:|FAILED' "$BUILD/crash_soak.$r.log" | head -5 | sed 's/^/# /'
    rc_all=1
  fi
done
echo "1..$ROUNDS"
exit $rc_all
