#!/usr/bin/env bash
# storage_convert_rrdcached_test.sh — `vigie-collector storage convert
# --daemon ADDR --dir DIR` on the rrdcached backend, with two real daemons
# started here (A on its unix socket, B over TCP) holding an agent's
# series written with one archive (1m:1d).
#
# The configuration gains a 5m:7d archive. Without --daemon the command
# converts nothing and says what it needs; with a directory that is not
# A's -b directory (an empty one) every series of A fails, naming the
# directory, and no file changes; then A's series are converted through
# A's directory (B's counted and left alone, byte for byte), then B's.
# Every file has the new archive (`rrdtool info`), and `rrdtool fetch
# --daemon` prints, for every file and consolidation function, the 1 min
# archive's rows exactly as before (the fetch prints %e of the exact
# doubles; the answer of the same range before and after, compared as
# text). The collector then writes new values to the converted files.
. "$(dirname "$0")/lib.sh"

command -v rrdcached >/dev/null || { echo "1..0 # SKIP rrdcached not installed"; exit 0; }

start_two_rrdcached

collector_ports
DATA=$TMP/data
START=$(( ($(date +%s) - 6 * 3600) / 3600 * 3600 ))
conf() { # ARCHIVES
  printf '[storage]\nbackend = rrdcached\ndaemons = %s, %s\nstep = 60\nheartbeat = 600\narchives = %s\n' \
    "$A" "$B" "$1" >"$TMP/vigie.conf"
}
agent() { # CLOCK_START COUNT
  start_agent agent --config "$(drain_conf)" --collector tcp://127.0.0.1:$PORT --libvirt test:///default \
    --proc "$ROOT/tests/fixtures/proc" --interval 0.05 --host cv-host --spool "$TMP/spool" \
    --clock-start "$1" --clock-step 60 --count "$2"
  wait "$AGENT_PID"
}
files() { (cd "$1" && find . -name '*.rrd' | sed 's|^\./||' | sort); }
sums() { (cd "$1" && find . -name '*.rrd' -print0 | sort -z | xargs -0 -r sha256sum); }
rras() { rrdtool info "$1" | grep -c '^rra\[[0-9]*\]\.cf'; }
# every file and function of both daemons through the daemon (absolute
# names on a unix socket, relative over TCP), the last 2 hours: the 1 min
# archive answers, before and after
fetch_all() {
  local d base f cf name
  for d in "$A" "$B"; do
    base=$A_BASE; [[ $d == "$B" ]] && base=$B_BASE
    for f in $(files "$base"); do
      name=$f; [[ $d == unix:* ]] && name=$base/$f
      for cf in AVERAGE MIN MAX; do
        echo "fetch --daemon $d $name $cf -s $((START - 600)) -e $((START + 3600))"
      done
    done
  done | rrdtool - 2>&1 | sed 's/^OK u:.*/OK/'
}

conf 1m:1d
check "the collector starts on daemons A and B" start_api_collector collector --config "$TMP/vigie.conf" --data-dir "$DATA"
agent $START 40
stop_pid "$COLLECTOR_PID"
NA=$(files "$A_BASE" | wc -l) NB=$(files "$B_BASE" | wc -l)
check "both daemons hold series ($NA on A, $NB on B)" bash -c "(( $NA > 0 && $NB > 0 ))"
fetch_all >"$TMP/fetch.before"
check "the fetches read values" bash -c "grep -c '[0-9]e[+-]' '$TMP/fetch.before' | awk '{ exit !(\$1 > 100) }'"
sums "$A_BASE" >"$TMP/a.before"; sums "$B_BASE" >"$TMP/b.before"
R0=$(rras "$A_BASE/$(files "$A_BASE" | head -1)")

conf 1m:1d,5m:7d
convert() { "$BIN/vigie-collector" --config "$TMP/vigie.conf" --data-dir "$DATA" storage convert "$@"; }
convert >"$TMP/c0.out" 2>"$TMP/c0.err"
eq "without --daemon the command fails" "$?" 1
check "... saying what it needs" grep -q "give --daemon ADDR --dir DIR" "$TMP/c0.err"
mkdir -p "$TMP/wrong"
convert --daemon "$A" --dir "$TMP/wrong" >"$TMP/c1.out" 2>"$TMP/c1.err"
eq "a directory that is not A's -b directory fails" "$?" 1
check "... for each of A's series, naming it" \
  bash -c "(( \$(grep -c \"is it $A's -b directory?\" '$TMP/c1.err') == $NA ))"
check "... and converts none" grep -q "^converted 0 series, 0 had their rule's archives already, 0 have no file, $NA failed; $NB on other daemons" "$TMP/c1.out"
sums "$A_BASE" >"$TMP/a.1"
check "A's files are unchanged, byte for byte" cmp -s "$TMP/a.1" "$TMP/a.before"
convert --daemon "$A" --dir "$A_BASE" >"$TMP/c2.out" 2>"$TMP/c2.err"
eq "converting A's series through A's directory succeeds" "$?" 0
diag "$(cat "$TMP/c2.out" "$TMP/c2.err")"
check "... all $NA of them, B's left" grep -q "^converted $NA series, 0 had their rule's archives already, 0 have no file, 0 failed; $NB on other daemons" "$TMP/c2.out"
sums "$B_BASE" >"$TMP/b.2"
check "B's files are unchanged, byte for byte" cmp -s "$TMP/b.2" "$TMP/b.before"
convert --daemon "$B" --dir "$B_BASE" >"$TMP/c3.out" 2>"$TMP/c3.err"
eq "then B's" "$?" 0
check "... all $NB of them, A's already done" grep -q "^converted $NB series, 0 had their rule's archives already, 0 have no file, 0 failed; $NA on other daemons" "$TMP/c3.out"
bad=0
for f in $(files "$A_BASE"); do (( $(rras "$A_BASE/$f") > R0 )) || bad=1; done
for f in $(files "$B_BASE"); do (( $(rras "$B_BASE/$f") > R0 )) || bad=1; done
eq "every file has the new archive" "$bad" 0
fetch_all >"$TMP/fetch.after"
check "rrdtool fetch --daemon prints every 1 min row as before, every file and function" \
  cmp -s "$TMP/fetch.after" "$TMP/fetch.before"
eq "no undo link is left" "$(find "$A_BASE" "$B_BASE" -name '*.vigie-convert.old' | wc -l)" 0
convert --daemon "$A" --dir "$A_BASE" >"$TMP/c4.out" 2>&1
check "a second run converts nothing" grep -q "^converted 0 series, $NA had their rule's archives already" "$TMP/c4.out"

check "the collector starts again" start_api_collector collector --config "$TMP/vigie.conf" --data-dir "$DATA"
agent $((START + 40 * 60)) 3
stop_pid "$COLLECTOR_PID"
f=$(files "$A_BASE" | head -1)
eq "new values reach the converted files (last update of $f)" "$(rrdtool last "$A_BASE/$f")" "$((START + 42 * 60))"
done_testing
