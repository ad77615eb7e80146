#!/usr/bin/env bash
# storage_convert_kill_test.sh — `vigie-collector storage convert` killed
# (SIGKILL) at each step of a series' conversion, then run again: nothing
# is lost, nothing is left beside the files, and the run says what it
# removed. Files backend, then rrdcached (--daemon --dir).
#
# Why. A conversion killed half-way left FILE.vigie-convert.old (the
# rrdcached backend's undo link) or librrd's temporary file, and the next
# run failed the series ("put it back over the file or delete it") or
# never looked. Now the file itself is never written until a checked,
# converted copy is renamed over it (vg_rrd_file_convert_safe, steps:
# linked, tuned, checked, renamed): a kill anywhere leaves the file whole
# (old, or converted and checked) and at most a side file nothing reads,
# which the next run removes first, also for a series that needs no
# conversion any more.
#
# The steps are microseconds apart, too short to hit with a kill from
# outside: the test-only environment variable VIGIE_TEST_CONVERT_KILL=STEP
# makes the command kill itself with SIGKILL right after STEP (rrd_file.c);
# the kill is as real as kill -9. A kill inside librrd's modify (its
# temporary file written half) cannot be caused so: the test writes such a
# file itself (a truncated copy under librrd's temporary name), and the
# leftovers of versions before this one (FILE.vigie-convert.old, the file
# itself or another one; librrd's in-place temporary FILE + 6 letters).
# Each step converts to a rule with one more archive, so every run has
# something to convert; the 1 min archive's rows of every file and
# consolidation function must print as before (rrdtool fetch, compared as
# text). After the kill at "tuned" the collector runs and writes more
# values before the next convert: the file is the one it writes, and
# those values survive too. SKIP of the rrdcached half only without
# rrdcached.
. "$(dirname "$0")/lib.sh"

collector_ports
DATA=$TMP/data
RRD=$DATA/rrd
START=$(( ($(date +%s) - 12 * 3600) / 3600 * 3600 ))
RULES=(1m:1d 1m:1d,5m:7d 1m:1d,5m:7d,1h:30d 1m:1d,5m:7d,1h:30d,1d:365d 1m:1d,5m:7d,1h:30d,1d:730d
  1m:1d,5m:14d,1h:30d,1d:730d)
conf() { printf '[storage]\nstep = 60\nheartbeat = 600\narchives = %s\n' "$1" >"$TMP/vigie.conf"; }
agent() { # CLOCK_START COUNT
  start_agent agent --config "$(drain_conf)" --collector tcp://127.0.0.1:$PORT --libvirt test:///default \
    --proc "$ROOT/tests/fixtures/proc" --interval 0.05 --host kv-host --spool "$TMP/spool" \
    --clock-start "$1" --clock-step 60 --count "$2"
  wait "$AGENT_PID"
}
files() { (cd "$1" && find . -name '*.rrd' | sed 's|^\./||' | sort); }
# everything a kill or an older version may leave beside a series file
leftovers() { find "$1" \( -name '*.vigie-convert*' -o -regex '.*\.rrd[A-Za-z0-9]\{6\}' \) | sort; }
# the 1 min rows of every file and function (the fetch prints %e of the
# exact doubles)
fetch_files() {
  local f cf
  for f in $(files "$RRD"); do
    for cf in AVERAGE MIN MAX; do
      echo "fetch $RRD/$f $cf -r 60 -s $((START - 600)) -e $((START + 3600))"
    done
  done | rrdtool - 2>&1 | sed 's/^OK u:.*/OK/'
}
convert() { "$BIN/vigie-collector" --config "$TMP/vigie.conf" --data-dir "$DATA" storage convert "$@"; }
rras() { rrdtool info "$1" | grep -c '^rra\[[0-9]*\]\.cf'; }
tiers() { tr ',' '\n' <<<"$1" | wc -l; } # RULE: its archives, 3 RRAs each
# The two halves of a round, for either backend: TAG names it in the
# checks, DIR holds its files, the convert runs with CONVERT_ARGS.
# killed TAG DIR STEP OUT: the convert killed after STEP, what it leaves
# (in $left)
killed() {
  VIGIE_TEST_CONVERT_KILL=$3 convert "${CONVERT_ARGS[@]}" >"$4" 2>&1
  eq "$1 the convert is killed after step $3" "$?" 137
  left=$(leftovers "$2")
  diag "$1 left: ${left:-nothing}"
  if [[ $3 == renamed ]]; then
    eq "$1 killed after the rename: nothing is left" "$left" ""
  else
    check "$1 it leaves the side file" grep -q '\.vigie-convert$' <<<"$left"
  fi
}
# rerun TAG STEP OUT ERR: the next convert succeeds, removing the side file
rerun() {
  convert "${CONVERT_ARGS[@]}" >"$3" 2>"$4"
  eq "$1 the next convert succeeds" "$?" 0
  diag "$1 $(cat "$3" "$4")"
  [[ $2 == renamed ]] || check "$1 ... saying it removed the side file" \
    grep -q "leftovers of a conversion killed before its end: removed .*\.vigie-convert" "$3"
}
# converted TAG DIR FETCH BEFORE RULE WHAT: nothing left, FETCH prints
# BEFORE again (the check says WHAT), every file has RULE's archives
converted() {
  local f bad=0
  eq "$1 nothing is left beside the files" "$(leftovers "$2")" ""
  "$3" >"$TMP/fetch.after"
  check "$1 $6" cmp -s "$TMP/fetch.after" "$4"
  for f in $(files "$2"); do (( $(rras "$2/$f") == 3 * $(tiers "$5") )) || bad=1; done
  eq "$1 every file has the rule's archives" "$bad" 0
}

# ---- files backend ------------------------------------------------------------------
conf "${RULES[0]}"
check "collector starts (files backend)" start_api_collector collector --config "$TMP/vigie.conf" --data-dir "$DATA"
agent $START 30
stop_pid "$COLLECTOR_PID"
N=$(files "$RRD" | wc -l)
check "the agent's series are written ($N files)" test "$N" -gt 2
fetch_files >"$TMP/f.0"
check "the fetches read values" bash -c "grep -c '[0-9]e[+-]' '$TMP/f.0' | awk '{ exit !(\$1 > 100) }'"

CONVERT_ARGS=()
i=0
for step in linked tuned checked renamed; do
  i=$((i + 1))
  conf "${RULES[$i]}"
  fetch_files >"$TMP/f.before"
  killed "[$step]" "$RRD" "$step" "$TMP/k$i.out"
  if [[ $step != renamed ]]; then
    first=${left%.vigie-convert}
    check "[$step] ... and the file itself is whole, unconverted" \
      bash -c "(( \$(rrdtool info '$first' | grep -c '^rra\[[0-9]*\]\.cf') == 3 * $(tiers "${RULES[$((i - 1))]}") ))"
  fi
  if [[ $step == tuned ]]; then
    # the collector runs in between: it writes the file, not the side file
    check "[$step] the collector starts after the kill" \
      start_api_collector collector --config "$TMP/vigie.conf" --data-dir "$DATA"
    agent $((START + 30 * 60)) 3
    stop_pid "$COLLECTOR_PID"
    fetch_files >"$TMP/f.before"
    check "[$step] ... and writes new values" bash -c "! cmp -s '$TMP/f.before' '$TMP/f.0'"
  fi
  rerun "[$step]" "$step" "$TMP/c$i.out" "$TMP/c$i.err"
  if [[ $step != renamed ]]; then
    check "[$step] ... and converts every series" grep -q "^converted $N series, 0 had" "$TMP/c$i.out"
  else
    check "[$step] ... and converts the others" grep -q "^converted $((N - 1)) series, 1 had" "$TMP/c$i.out"
  fi
  converted "[$step]" "$RRD" fetch_files "$TMP/f.before" "${RULES[$i]}" \
    "every 1 min row of every file and function prints as before"
done

# a kill inside librrd's modify, and what versions before this one left
f1=$(files "$RRD" | sed -n 1p) f2=$(files "$RRD" | sed -n 2p) f3=$(files "$RRD" | sed -n 3p)
head -c 2000 "$RRD/$f1" >"$RRD/$f1.vigie-convertAb3dE9" # librrd's, of the side file
head -c 2000 "$RRD/$f1" >"$RRD/${f1}Qw7rT2"              # librrd's, converting in place
ln "$RRD/$f2" "$RRD/$f2.vigie-convert.old"              # the undo link, the file itself
fetch_files >"$TMP/f.before"
convert >"$TMP/c9.out" 2>"$TMP/c9.err"
eq "with the leftovers of a kill inside librrd and of older versions: succeeds" "$?" 0
diag "$(cat "$TMP/c9.out" "$TMP/c9.err")"
check "... removing librrd's temporary file of the side file" grep -qF "removed $RRD/$f1.vigie-convertAb3dE9" "$TMP/c9.out"
check "... and of an in-place conversion" grep -qF "removed $RRD/${f1}Qw7rT2" "$TMP/c9.out"
check "... and the undo link that is the file itself" \
  grep -qF "removed (a link to the file itself) $RRD/$f2.vigie-convert.old" "$TMP/c9.out"
eq "... nothing is left" "$(leftovers "$RRD")" ""
fetch_files >"$TMP/f.after"
check "... every 1 min row prints as before" cmp -s "$TMP/f.after" "$TMP/f.before"
cp "$RRD/$f3" "$RRD/$f3.vigie-convert.old" # another file: which is right is not known
convert >"$TMP/c10.out" 2>"$TMP/c10.err"
eq "an undo link that is another file: the series fails" "$?" 1
check "... naming it, left alone" \
  grep -qF "left alone (an older version's conversion stopped after replacing the file, before its check: put it back over the file or delete it) $RRD/$f3.vigie-convert.old" "$TMP/c10.err"
check "... still there" test -f "$RRD/$f3.vigie-convert.old"
rm -f "$RRD/$f3.vigie-convert.old"

# ---- rrdcached --------------------------------------------------------------------------
if ! command -v rrdcached >/dev/null; then
  skip "rrdcached not installed"
  done_testing
  exit 0
fi
start_rrdcached r -R -O || { nok "rrdcached did not start"; done_testing; exit 1; }
D=$RRDCACHED_TCP BASE=$RRDCACHED_BASE
DATA=$TMP/data2
rconf() { printf '[storage]\nbackend = rrdcached\ndaemons = %s\nstep = 60\nheartbeat = 600\narchives = %s\n' \
  "$D" "$1" >"$TMP/vigie.conf"; }
fetch_daemon() {
  local f cf
  for f in $(files "$BASE"); do
    for cf in AVERAGE MIN MAX; do
      echo "fetch --daemon $D $f $cf -s $((START - 600)) -e $((START + 3600))"
    done
  done | rrdtool - 2>&1 | sed 's/^OK u:.*/OK/'
}
rconf "${RULES[0]}"
check "collector starts (rrdcached)" start_api_collector collector2 --config "$TMP/vigie.conf" --data-dir "$DATA"
agent $START 30
stop_pid "$COLLECTOR_PID"
N=$(files "$BASE" | wc -l)
check "the daemon holds the series ($N files)" test "$N" -gt 2
CONVERT_ARGS=(--daemon "$D" --dir "$BASE")
i=0
for step in linked tuned checked renamed; do
  i=$((i + 1))
  rconf "${RULES[$i]}"
  fetch_daemon >"$TMP/d.before"
  killed "[rrdcached $step]" "$BASE" "$step" "$TMP/rk$i.out"
  rerun "[rrdcached $step]" "$step" "$TMP/rc$i.out" "$TMP/rc$i.err"
  converted "[rrdcached $step]" "$BASE" fetch_daemon "$TMP/d.before" "${RULES[$i]}" \
    "rrdtool fetch --daemon prints every 1 min row as before"
done
done_testing
