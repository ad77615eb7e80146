#!/usr/bin/env bash
# tests/run.sh — run every test and print one summary line.
#
# Runs each unit test binary ($VIGIE_BUILD/tests/*_test, cmocka in TAP
# mode) and tests/*_test.sh (checks of the source tree, such as the
# layers), then the integration tests: the C ones that start the real
# daemons ($VIGIE_BUILD/tests/integration/*_test) and
# tests/integration/*.sh, then tests/e2e/*.sh (bash, TAP). Counts every
# "ok", "not ok" and "# SKIP" line; a program that exits non-zero without
# reporting a failure counts as one failure (a crash is a failure). Logs of
# each program go to $VIGIE_BUILD/test-logs/. Exit 1 if anything failed.
# Set TESTS=pattern to run only matching programs, TEST_GROUPS to a subset
# of "unit integration e2e" (the default: all three) to run only those
# groups (`make unit`). The group "cluster" (tests/cluster/, several
# minutes of real daemons and failures) runs only when named:
# TEST_GROUPS=cluster (`make cluster-test`). Each program gets TEST_TIMEOUT
# seconds (900 by default): a hung one fails instead of holding the run.
# KEEP_TMP=1 keeps each integration test's temp dirs (daemons' logs and
# data, named in its log as "# kept DIR"); KEEP_TMP=fail keeps them only
# for a test with a failed check (a flaky test run in a loop).
set -u
cd "$(dirname "$0")/.."
BUILD=${VIGIE_BUILD:-build}
export VIGIE_BUILD=$BUILD
LOGS=$BUILD/test-logs
mkdir -p "$LOGS"
pass=0 fail=0 skip=0
failed_names=()

# A sanitizer build (make SAN=1) is recognised by its binaries. Its
# sanitizer reports go to one file per process under $SANLOGS (the
# daemons' own logs live in a test's temp dir and are removed with it):
# run_one appends each report to the log of the test that made it and
# counts it as a failure, so a leak or error in a daemon fails its test.
# Leaks inside third-party libraries are suppressed by tests/lsan.supp;
# fast_unwind_on_malloc=0 records whole allocation stacks through code
# built without frame pointers (glibc, librrd), so a suppression matches
# the library that allocated, never a broad frame like vasprintf that
# vigie also calls. Bench helpers that a test builds get SAN=1 too.
SANLOGS=
if grep -qa __asan_init "$BUILD/bin/vigie-collector" 2>/dev/null; then
  export SAN=1
  SANLOGS=$(cd "$LOGS" && pwd)/sanitizer
  rm -rf "$SANLOGS"; mkdir -p "$SANLOGS"
  export ASAN_OPTIONS="log_path=$SANLOGS/asan:detect_leaks=1:fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export UBSAN_OPTIONS="log_path=$SANLOGS/ubsan:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
  export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
fi

run_one() { # name, command...
  local name=$1; shift
  local log="$LOGS/$name.log" t0=$SECONDS
  mkdir -p "$(dirname "$log")"
  # a hung test fails (exit 124) instead of holding the whole run
  CMOCKA_MESSAGE_OUTPUT=TAP timeout -k 10 "${TEST_TIMEOUT:-900}" "$@" >"$log" 2>&1
  local rc=$?
  [[ $rc -eq 124 ]] && echo "not ok - $name did not finish in ${TEST_TIMEOUT:-900} s (TEST_TIMEOUT)" >>"$log"
  local p f s r nsan=0
  if [[ -n $SANLOGS ]]; then
    for r in "$SANLOGS"/asan.* "$SANLOGS"/ubsan.*; do
      [[ -f $r ]] || continue
      nsan=$((nsan + 1))
      { echo "not ok - sanitizer report ${r##*/} (kept in $SANLOGS/${name//\//_}.${r##*/})"
        sed 's/^/# /' "$r"; } >>"$log"
      mv "$r" "$SANLOGS/${name//\//_}.${r##*/}"
    done
  fi
  # cmocka prints a skipped test as "not ok N # SKIP", TAP scripts as "ok N # SKIP"
  s=$(grep -cE '^(not )?ok [0-9]+.*# *SKIP' "$log")
  p=$(grep -E '^ok [0-9]+' "$log" | grep -cvE '# *SKIP')
  f=$(grep -E '^not ok [0-9]+' "$log" | grep -cvE '# *SKIP')
  f=$((f + nsan))
  if grep -qE '^1\.\.0 *# *SKIP' "$log"; then s=$((s + 1)); fi
  if [[ $rc -ne 0 && $f -eq 0 ]]; then f=1; echo "not ok - $name exited with status $rc" >>"$log"; fi
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
  local status=PASS
  [[ $s -gt 0 ]] && status="PASS ($s skipped)"
  [[ $f -gt 0 ]] && { status=FAIL; failed_names+=("$name"); }
  printf '%-32s %-20s %3d ok %3d failed %3d skipped %4ds\n' "$name" "$status" "$p" "$f" "$s" $((SECONDS - t0))
  if [[ $f -gt 0 ]]; then
    grep -E '^not ok|^# ' "$log" | head -20 | sed 's/^/    /'
    echo "    (full log: $log)"
  fi
  grep -E '^(not )?ok [0-9]+.*# *SKIP|^1\.\.0 *# *SKIP|^# skipped: ' "$log" | sed 's/^/    /'
}

pattern=${TESTS:-}
groups=" ${TEST_GROUPS:-unit integration e2e} "
want() { [[ $groups == *" $1 "* ]]; }
if want unit; then
  for t in "$BUILD"/tests/*_test; do
    n=$(basename "$t")
    # only binaries whose source is still a unit test (a build dir may
    # hold one from before a test moved to tests/integration/)
    [[ -x $t && -f tests/unit/$n.c ]] || continue
    [[ -n $pattern && $n != *$pattern* ]] && continue
    run_one "unit/$n" "$t"
  done
  # static checks of the source tree (the layers)
  for t in tests/*_test.sh; do
    [[ -f $t ]] || continue
    n=${t#tests/}; n=${n%.sh}
    [[ -n $pattern && $n != *$pattern* ]] && continue
    run_one "$n" bash "$t"
  done
fi
if want integration; then
  for t in "$BUILD"/tests/integration/*_test; do
    n=integration/$(basename "$t")
    [[ -x $t && -f tests/$n.c ]] || continue
    [[ -n $pattern && $n != *$pattern* ]] && continue
    run_one "$n" "$t"
  done
fi
for t in tests/integration/*_test.sh tests/e2e/*_test.sh tests/cluster/*_test.sh; do
  [[ -f $t ]] || continue
  n=${t#tests/}; n=${n%.sh}
  want "${n%%/*}" || continue
  [[ -n $pattern && $n != *$pattern* ]] && continue
  run_one "$n" bash "$t"
done

echo
[[ ${#failed_names[@]} -gt 0 ]] && echo "failed: ${failed_names[*]}"
echo "check: $pass passed, $fail failed, $skip skipped"
[[ $fail -eq 0 ]]
