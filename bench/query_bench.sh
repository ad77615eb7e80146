#!/usr/bin/env bash
# bench/query_bench.sh — queries across series, for `make bench`
# (bench/run.sh calls it) or alone:  VIGIE_BUILD=build bash bench/query_bench.sh
#
# 1. /v1/query: bench/query_seed writes 100 instances with a day of
#    one-minute cpu.util points (and their disks) on tmpfs; a real
#    vigie-collector serves it. Timed one request at a time
#    (bench/query_client, BENCH_QUERY_N requests each, after a warm-up):
#      measures   /v1/measures, one series, the day at 60 s (1441 points)
#      expr       /v1/query mean(cpu.util{type="instance"}, by=project)
#                 over the same day at 60 s: 100 series read, 2 answered
#      expr_math  /v1/query top(cpu.util{type="instance"} * 2, 5): 100
#                 series read, arithmetic, ranked, 5 answered
#    and under load with wrk (BENCH_QUERY_CONNS connections, 5 s each) for
#    throughput. Target: expr p99 < 50 ms unloaded.
# 2. Prometheus remote read: 1,000 instances with an hour of one-minute
#    points; one ReadRequest for every vigie_cpu_util series over that hour
#    (1,000 series, ~61,000 samples). Target: < 1 s (p99 of BENCH_READ_N).
# Prints "RESULT query ..." lines (appended to $VIGIE_BUILD/bench/results.txt)
# and met/MISSED per target; a missed target fails only with
# BENCH_QUERY_STRICT=1 (the machine is shared and noisy); a wrong answer
# always fails.
set -u
BUILD=${VIGIE_BUILD:-build}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
BASE=${BENCH_TMPFS_DIR:-/dev/shm}
N=${BENCH_QUERY_N:-200}
RN=${BENCH_READ_N:-20}
CONNS=${BENCH_QUERY_CONNS:-8}
STRICT=${BENCH_QUERY_STRICT:-0}
OUT=$BUILD/bench/results.txt
for f in "$BUILD/bench/query_seed" "$BUILD/bench/query_client" "$BUILD/bin/vigie-collector"; do
  [[ -x $f ]] || { echo "query_bench: $f missing (make bench builds it)" >&2; exit 1; }
done

. "$(dirname "$0")/lib.sh"
bench_dir query-bench
record() { echo "$*" >>"$OUT"; echo "$*"; }
kv() { awk -v k="$1" '{ for (i = 1; i <= NF; i++) { split($i, a, "="); if (a[1] == k) print a[2] } }' <<<"$2"; }
verdict() { # NAME VALUE LIMIT
  if awk -v v="$2" -v l="$3" 'BEGIN { exit !(v < l) }'; then echo "  $1: $2 ms < $3 ms: met"
  else echo "  $1: $2 ms, target < $3 ms: MISSED"; missed=1; fi
}
COLLECTOR=$BUILD/bin/vigie-collector
serve() { # DATA_DIR: start a collector on it, set API and TOKEN
  bench_collector "$1" "$1.log" && return 0
  echo "query_bench: the collector did not start ($1.log)" >&2
  exit 1
}
stop() { kill -TERM "$CPID" 2>/dev/null; wait "$CPID" 2>/dev/null; CPID=; }
fail=0 missed=0

# ---- 1. expressions over 100 series x 1 day ----
eval "$("$BUILD/bench/query_seed" "$DIR/d1" 100 86400)" || exit 1
serve "$DIR/d1"
S=$((start + 60)); E=$end   # a day of whole one-minute rows
U_MEAS="$API/v1/measures?resource=vm-00001&metric=cpu.util&start=$S&end=$E&granularity=60"
enc() { jq -rn --arg s "$1" '$s | @uri'; }
U_EXPR="$API/v1/query?start=$S&end=$E&granularity=60&expr=$(enc 'mean(cpu.util{type="instance"}, by=project)')"
U_MATH="$API/v1/query?start=$S&end=$E&granularity=60&expr=$(enc 'top(cpu.util{type="instance"} * 2, 5)')"
echo "/v1/query over 100 series x 1 day at 60 s vs /v1/measures for one series ($N requests each, one at a time)"
for case in measures:$U_MEAS:0 expr:$U_EXPR:2 expr_math:$U_MATH:5; do
  name=${case%%:*}; rest=${case#*:}; min=${rest##*:}; url=${rest%:*}
  "$BUILD/bench/query_client" get "$url" "$TOKEN" 5 "$min" >/dev/null || { fail=1; continue; }
  r=$("$BUILD/bench/query_client" get "$url" "$TOKEN" "$N" "$min") || { echo "  FAIL: $name"; fail=1; continue; }
  tput=
  if command -v wrk >/dev/null; then
    tput=$(wrk -t2 -c"$CONNS" -d5s -H "Authorization: Bearer $TOKEN" "$url" 2>/dev/null |
      awk '/Requests\/sec/ { print $2 }')
  fi
  record "RESULT query case=$name $r req_per_s=${tput:-na}"
  [[ $name == expr ]] && verdict "expr p99 (100 series x 1 day)" "$(kv p99_ms "$r")" 50
done
stop

# ---- 2. remote read of 1,000 series x 1 hour ----
eval "$("$BUILD/bench/query_seed" "$DIR/d2" 1000 3600)" || exit 1
serve "$DIR/d2"
echo "Prometheus remote read: every vigie_cpu_util series (1,000) over an hour ($RN requests, one at a time)"
"$BUILD/bench/query_client" read "$API" "$TOKEN" 2 $((start * 1000)) $((end * 1000)) vigie_cpu_util 1000 >/dev/null || fail=1
r=$("$BUILD/bench/query_client" read "$API" "$TOKEN" "$RN" $((start * 1000)) $((end * 1000)) vigie_cpu_util 1000) ||
  { echo "  FAIL: remote read"; fail=1; }
if [[ -n ${r:-} ]]; then
  record "RESULT query case=remote_read $r"
  verdict "remote read p99 (1,000 series x 1 hour)" "$(kv p99_ms "$r")" 1000
fi
stop
[[ $STRICT == 1 && $missed == 1 ]] && fail=1
exit $fail
