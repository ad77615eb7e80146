#!/usr/bin/env bash
# rate.sh — how often the cluster scenario's checks pass on a loaded
# machine: tests/cluster/cluster_test.sh run PAR at a time (default 3),
# ROUNDS rounds (default 1), each run with its own PostgreSQL, rrdcached
# daemons, collectors and agents (their own temp dirs and free loopback
# ports, lib.sh), the scenario's knobs (FAULTS, OVERLAP, ...) passed
# through. Not part of `make check` or `make cluster-test`: a measurement
# (docs/scaling.md, "What each failure costs").
#
# Writes to OUT (default /tmp/vigie-clrate.XXXXXX): run-R-J.tap (each run's
# TAP output), load.log (uptime every 10 s while runs go on), and for each
# run with a failed check (or a non-zero exit) its whole temp dir (the
# collectors', agents' and daemons' logs, the daemons' files) as
# run-R-J.tmp and PostgreSQL's log as run-R-J.pg.log, copied before the
# next round starts; a passing run's dirs are removed (KEEP_LOGS=1 keeps
# its logs, run-R-J.logs/). Prints one line per
# run (pass/fail, the failed checks) and a summary per check.
#
#   PAR=3 ROUNDS=2 FAULTS=rrdcached VIGIE_BUILD=build bash tests/cluster/rate.sh
#
# The bench binaries the scenario needs (bench/alarms_hook,
# bench/billing_replay) must be built first (see tests/cluster/cluster_test.sh).
set -u
cd "$(dirname "$0")/../.."
PAR=${PAR:-3}
ROUNDS=${ROUNDS:-1}
OUT=${OUT:-$(mktemp -d /tmp/vigie-clrate.XXXXXX)}
mkdir -p "$OUT"
export VIGIE_BUILD=${VIGIE_BUILD:-build}
echo "# out: $OUT; PAR=$PAR ROUNDS=$ROUNDS FAULTS=${FAULTS:-(all)} OVERLAP=${OVERLAP:-0}"

(while :; do echo "$(date -u +%T) $(uptime | sed 's/.*load average: //')"; sleep 10; done) >>"$OUT/load.log" &
LOADPID=$!
trap 'kill $LOADPID 2>/dev/null' EXIT

for ((r = 1; r <= ROUNDS; r++)); do
  tag=$(date -u +%H%M%S)
  echo "# round $r at $tag: load $(uptime | sed 's/.*load average: //')"
  declare -a pids=()
  for ((j = 1; j <= PAR; j++)); do
    KEEP_TMP=1 nice bash tests/cluster/cluster_test.sh >"$OUT/run-$tag-$j.tap" 2>&1 &
    pids[$j]=$!
  done
  for ((j = 1; j <= PAR; j++)); do
    wait "${pids[$j]}"; rc=$?
    f=$OUT/run-$tag-$j.tap
    tmp=$(sed -n 's/^# kept \(\/tmp\/vigie-it\..*\)/\1/p' "$f" | tail -1)
    pg=$(sed -n 's/^# kept \(\/tmp\/vigie-pg\..*\)/\1/p' "$f" | tail -1)
    nok=$(grep -c '^not ok' "$f")
    nok_all=$(grep -c '^ok' "$f")
    if [[ $rc -ne 0 || $nok -ne 0 ]]; then
      [[ -n $tmp && -d $tmp ]] && mv "$tmp" "$OUT/run-$tag-$j.tmp"
      [[ -n $pg && -f $pg/server.log ]] && cp "$pg/server.log" "$OUT/run-$tag-$j.pg.log"
      echo "run-$tag-$j: FAIL rc=$rc ok=$nok_all not_ok=$nok"
      grep '^not ok' "$f" | sed 's/^/#   /'
    else
      echo "run-$tag-$j: pass ok=$nok_all"
      # KEEP_LOGS=1: a passing run's logs too (not its daemons' files)
      if [[ ${KEEP_LOGS:-0} == 1 && -n $tmp && -d $tmp ]]; then
        mkdir -p "$OUT/run-$tag-$j.logs" && cp "$tmp"/*.log "$OUT/run-$tag-$j.logs/" 2>/dev/null
      fi
    fi
    [[ -n $tmp && -d $tmp ]] && rm -rf "$tmp"
    [[ -n $pg && -d $pg ]] && rm -rf "$pg"
  done
done

# per check: passes and failures over every run, keyed by the check's
# description without its parenthesised figures (which vary from run to
# run; a check's number depends on FAULTS), in the order first seen
echo "# per check (runs passed / runs that reached it):"
for f in "$OUT"/run-*.tap; do
  grep -E '^(not )?ok [0-9]+ ' "$f" | sed -E 's/^(ok|not ok) [0-9]+ (- )?/\1\t/; s/ \((got )?[^)]*\)//g'
done | awk -F'\t' '{ k = $2; if (!(k in n)) order[++nk] = k; n[k]++; if ($1 == "ok") p[k]++ }
  END { for (i = 1; i <= nk; i++) { k = order[i]; printf "#  %-7s %s\n", (p[k] + 0) "/" n[k], k } }'
