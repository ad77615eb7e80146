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
# Each program's wall time goes at the end of its log ("# duration: 12.3 s")
# and the run ends with the 15 slowest programs (where CI's time goes).
# KEEP_TMP=1 keeps each test's temp dirs (daemons' logs and data, named
# in its log as "# kept DIR"); KEEP_TMP=fail keeps them only for a test
# with a failed check (a flaky test run in a loop). Without it they are
# removed, also after a failed check (docs/testing.md).
# TEST_JOBS=N runs up to N programs at once (default 1; `make check` and
# `make SAN=1 check` use one per core): each test starts its daemons on
# ports it claims (docs/testing.md) in its own temp dirs, so tests do not
# meet; most of their time is waiting on daemons, so two at a time on
# two cores take ~60 % of the serial wall time. The e2e group (real QEMU
# guests under the host's libvirtd) runs alone, after every other
# program. The others start longest first (tests/durations.txt, below).
# Summary lines come in the order programs finish; the counts are the
# same.
set -u
cd "$(dirname "$0")/.."
BUILD=${VIGIE_BUILD:-build}
export VIGIE_BUILD=$BUILD
LOGS=$BUILD/test-logs
mkdir -p "$LOGS"
pass=0 fail=0 skip=0
failed_names=()
durations=() # "MILLISECONDS NAME" of each program run

# A sanitizer build (make SAN=1) is recognised by its binaries. Its
# sanitizer reports go to one file per process under $SANLOGS (the
# daemons' own logs live in a test's temp dir and are removed with it):
# run_one appends each report to the log of the test that made it and
# counts it as a failure, so a leak or error in a daemon fails its test.
# Leaks inside third-party libraries are suppressed by tests/lsan.supp.
# Those of librrd's graphing (rrd_graph_v, and fontconfig under it) need
# whole allocation stacks (fast_unwind_on_malloc=0): the leaked buffers
# come from glibc's vasprintf, called by librrd, both built without frame
# pointers, and the fast unwinder shows no librrd frame; a suppression must
# match the library that allocated, never a broad frame like vasprintf that
# vigie also calls. Whole stacks make every allocation 2-4 times slower
# (http_test 15 s -> 40 s, alarm_engine_test 16 s -> 43 s), so only the
# programs that can render a graph get them: those whose source mentions
# "graph" (GET /v1/graph, `vigie graph`, the console page) and those in
# WHOLE_STACK_TESTS (fuzz_smoke runs api_query_fuzz, which renders
# graphs). The others run with the fast unwinder and the suppressions
# above the "whole stacks only" line of tests/lsan.supp, so an unreadable
# stack can never match a librrd suppression. A program left out by
# mistake fails with a leak "in __vasprintf_internal" and nothing under
# it: add it to WHOLE_STACK_TESTS. ASAN_OPTIONS=fast_unwind_on_malloc=0
# in the environment gives every program whole stacks (the caller's
# ASAN_OPTIONS come last and win). Bench helpers that a test builds get
# SAN=1 too.
WHOLE_STACK_TESTS=" fuzz_smoke_test "
SANLOGS=
if grep -qa __asan_init "$BUILD/bin/vigie-collector" 2>/dev/null; then
  export SAN=1
  SANLOGS=$(cd "$LOGS" && pwd)/sanitizer
  rm -rf "$SANLOGS"; mkdir -p "$SANLOGS"
  SAN_ASAN_CALLER=${ASAN_OPTIONS:-}
  SAN_LSAN_CALLER=${LSAN_OPTIONS:-}
  SAN_UBSAN_CALLER=${UBSAN_OPTIONS:-}
  sed '/^# *-* *whole stacks only/,$d' tests/lsan.supp >"$SANLOGS/lsan-fast.supp"
fi
# san_env NAME: ASAN_OPTIONS, LSAN_OPTIONS and UBSAN_OPTIONS for that
# program, its reports (and its daemons') in a directory of its own, so
# that programs running side by side (TEST_JOBS) each get their own
san_env() {
  local n=${1##*/} whole=0 supp src dir=$SANLOGS/run.${1//\//_}
  mkdir -p "$dir"
  SAN_ASAN_OWN="log_path=$dir/asan:detect_leaks=1"
  export UBSAN_OPTIONS="log_path=$dir/ubsan:print_stacktrace=1${SAN_UBSAN_CALLER:+:$SAN_UBSAN_CALLER}"
  [[ $WHOLE_STACK_TESTS == *" $n "* ]] && whole=1
  for src in "tests/$1.c" "tests/$1.sh"; do
    [[ -f $src ]] && grep -q graph "$src" && whole=1
  done
  if [[ $whole == 1 ]]; then
    supp=$PWD/tests/lsan.supp
    ASAN_OPTIONS="$SAN_ASAN_OWN:fast_unwind_on_malloc=0"
  else
    supp=$SANLOGS/lsan-fast.supp
    ASAN_OPTIONS="$SAN_ASAN_OWN:fast_unwind_on_malloc=1"
  fi
  export ASAN_OPTIONS="$ASAN_OPTIONS${SAN_ASAN_CALLER:+:$SAN_ASAN_CALLER}"
  export LSAN_OPTIONS="suppressions=$supp:print_suppressions=0${SAN_LSAN_CALLER:+:$SAN_LSAN_CALLER}"
}

run_one() { # name, command...
  local name=$1; shift
  local log="$LOGS/$name.log" t0=$SECONDS us0=${EPOCHREALTIME/./}
  mkdir -p "$(dirname "$log")"
  [[ -n $SANLOGS ]] && san_env "$name"
  # a hung test fails (exit 124) instead of holding the whole run
  CMOCKA_MESSAGE_OUTPUT=TAP timeout -k 10 "${TEST_TIMEOUT:-900}" "$@" >"$log" 2>&1
  local rc=$? ms=$(((${EPOCHREALTIME/./} - us0) / 1000))
  [[ $rc -eq 124 ]] && echo "not ok - $name did not finish in ${TEST_TIMEOUT:-900} s (TEST_TIMEOUT)" >>"$log"
  printf '# duration: %d.%d s\n' $((ms / 1000)) $((ms % 1000 / 100)) >>"$log"
  # CPU time of the program and of the children it waited for (its
  # daemons, stopped by its cleanup): with the duration, how much of its
  # time it waits (a run's whole CPU time against its wall time says
  # whether more TEST_JOBS would help)
  local tm=
  times >"$log.times" # not in a subshell: its times would be its own
  { read -r _; read -r tm; } <"$log.times"; rm -f "$log.times"
  [[ $tm =~ ^([0-9]+)m([0-9.]+)s\ ([0-9]+)m([0-9.]+)s$ ]] &&
    awk -v um="${BASH_REMATCH[1]}" -v us="${BASH_REMATCH[2]}" -v sm="${BASH_REMATCH[3]}" -v ss="${BASH_REMATCH[4]}" \
      'BEGIN { printf "# cpu: %.1f s (user %.1f, system %.1f)\n", um * 60 + us + sm * 60 + ss, um * 60 + us, sm * 60 + ss }' >>"$log"
  local p f s r nsan=0
  if [[ -n $SANLOGS ]]; then
    for r in "$SANLOGS/run.${name//\//_}"/asan.* "$SANLOGS/run.${name//\//_}"/ubsan.*; do
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
  echo "$p $f $s $ms" >"$LOGS/$name.res"
  local status=PASS
  [[ $s -gt 0 ]] && status="PASS ($s skipped)"
  [[ $f -gt 0 ]] && status=FAIL
  printf '%-32s %-20s %3d ok %3d failed %3d skipped %4ds\n' "$name" "$status" "$p" "$f" "$s" $((SECONDS - t0))
  if [[ $f -gt 0 ]]; then
    grep -E '^not ok|^# ' "$log" | head -20 | sed 's/^/    /'
    echo "    (full log: $log)"
  fi
  grep -E '^(not )?ok [0-9]+.*# *SKIP|^1\.\.0 *# *SKIP|^# skipped: ' "$log" | sed 's/^/    /'
}

# The programs run through launch (at most TEST_JOBS at once); each one's
# run_one prints its summary to $LOGS/NAME.out and its counts to
# $LOGS/NAME.res, which collect adds up once it has finished.
JOBS=${TEST_JOBS:-1}
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || JOBS=1
declare -A job_name=()
collect() { # name
  local name=$1 p=0 f=1 s=0 ms=0
  [[ -f $LOGS/$name.res ]] && read -r p f s ms <"$LOGS/$name.res"
  [[ -f $LOGS/$name.out ]] && cat "$LOGS/$name.out"
  rm -f "$LOGS/$name.res" "$LOGS/$name.out"
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
  durations+=("$ms $name")
  [[ $f -gt 0 ]] && failed_names+=("$name")
}
# wait for one program to finish (any, or all with "all") and collect it
reap() {
  local pid
  while [[ ${#job_name[@]} -gt 0 ]]; do
    wait -n -p pid "${!job_name[@]}"
    [[ -n ${pid:-} && -n ${job_name[$pid]:-} ]] || continue
    collect "${job_name[$pid]}"
    unset "job_name[$pid]"
    [[ ${1:-} == all ]] || return 0
  done
}
launch() { # name, command...
  local name=$1
  mkdir -p "$(dirname "$LOGS/$name")"
  rm -f "$LOGS/$name.res"
  while [[ ${#job_name[@]} -ge $JOBS ]]; do reap; done
  run_one "$@" >"$LOGS/$name.out" 2>&1 &
  job_name[$!]=$name
}

# Longest first: the programs of the unit and integration groups are
# queued, then launched in order of their expected wall time, longest
# first, so that the run does not end with one long program running alone
# while the other job slots are idle. A program's expected time is its
# "# duration:" in its log of the previous run in this build directory,
# else its line in tests/durations.txt (seconds and name, from a whole
# run: each run writes $LOGS/durations.txt in that format), else
# DEFAULT_MS. Only the start order changes: every program still runs,
# and the counts are the same.
DEFAULT_MS=10000
declare -A hint_ms=()
if [[ -f tests/durations.txt ]]; then
  while read -r sec n; do
    [[ $sec =~ ^([0-9]+)(\.([0-9]))?[0-9]*$ && -n ${n:-} ]] || continue
    hint_ms[$n]=$((10#${BASH_REMATCH[1]} * 1000 + 10#${BASH_REMATCH[3]:-0} * 100))
  done <tests/durations.txt
fi
expected_ms() { # name
  local d
  d=$(grep -E '^# duration: [0-9]+\.[0-9] s$' "$LOGS/$1.log" 2>/dev/null | tail -n 1)
  if [[ $d =~ ([0-9]+)\.([0-9]) ]]; then
    echo $((10#${BASH_REMATCH[1]} * 1000 + 10#${BASH_REMATCH[2]} * 100))
  else
    echo "${hint_ms[$1]:-$DEFAULT_MS}"
  fi
}
queue=() # "EXPECTED_MS NAME", one per queued program
declare -A queue_cmd=() # name -> the program: a binary, or a .sh run by bash
enqueue() { # name, file
  queue+=("$(expected_ms "$1") $1")
  queue_cmd[$1]=$2
}
launch_queue() {
  local e n order
  mapfile -t order < <(printf '%s\n' "${queue[@]}" | sort -k1,1rn -k2,2)
  for e in "${order[@]}"; do
    n=${e#* }
    if [[ ${queue_cmd[$n]} == *.sh ]]; then
      launch "$n" bash "${queue_cmd[$n]}"
    else
      launch "$n" "${queue_cmd[$n]}"
    fi
  done
  queue=()
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
    enqueue "unit/$n" "$t"
  done
  # static checks of the source tree (the layers)
  for t in tests/*_test.sh; do
    [[ -f $t ]] || continue
    n=${t#tests/}; n=${n%.sh}
    [[ -n $pattern && $n != *$pattern* ]] && continue
    enqueue "$n" "$t"
  done
fi
if want integration; then
  for t in "$BUILD"/tests/integration/*_test; do
    n=integration/$(basename "$t")
    [[ -x $t && -f tests/$n.c ]] || continue
    [[ -n $pattern && $n != *$pattern* ]] && continue
    enqueue "$n" "$t"
  done
  for t in tests/integration/*_test.sh; do
    [[ -f $t ]] || continue
    n=${t#tests/}; n=${n%.sh}
    [[ -n $pattern && $n != *$pattern* ]] && continue
    enqueue "$n" "$t"
  done
fi
[[ ${#queue[@]} -gt 0 ]] && launch_queue
# e2e and cluster programs run alone (real guests; several daemons each),
# after the others
for t in tests/e2e/*_test.sh tests/cluster/*_test.sh; do
  [[ -f $t ]] || continue
  n=${t#tests/}; n=${n%.sh}
  want "${n%%/*}" || continue
  [[ -n $pattern && $n != *$pattern* ]] && continue
  reap all
  launch "$n" bash "$t"
  reap all
done
reap all

# every program's wall time, longest first, in the format of
# tests/durations.txt (copy it there after a whole run to update the hints)
if [[ ${#durations[@]} -gt 0 ]]; then
  printf '%s\n' "${durations[@]}" | sort -k1,1rn -k2,2 |
    awk '{ printf "%.1f %s\n", $1 / 1000, $2 }' >"$LOGS/durations.txt"
fi
if [[ ${#durations[@]} -gt 1 ]]; then
  echo
  echo "slowest (wall time; also at the end of each log):"
  printf '%s\n' "${durations[@]}" | sort -rn | head -15 |
    awk '{ printf "  %7.1f s  %s\n", $1 / 1000, $2 }'
fi

echo
[[ ${#failed_names[@]} -gt 0 ]] && echo "failed: ${failed_names[*]}"
echo "check: $pass passed, $fail failed, $skip skipped"
[[ $fail -eq 0 ]]
