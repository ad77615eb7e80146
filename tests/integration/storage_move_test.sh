#!/usr/bin/env bash
# storage_move_test.sh — `vigie-collector storage move` between two real
# rrdcached daemons started here (one on its unix socket, one over TCP).
#
# A real agent writes through a collector whose only daemon is A; then B
# is added and the series are moved from A to B: first a move that cannot
# verify (--to-dir is not B's -b directory: the copy lands where B never
# reads it, a real operator mistake, no fault faked) leaves every source
# file, the placement record and B untouched; then the instances' series
# (--series), then the rest (--all; one series whose name B already holds
# as another file stays on A, untouched on both sides, until that file is
# gone and a run moves it too): A's files are gone, B holds the same
# bytes, `rrdtool fetch --daemon` on B prints what it printed on A before
# for every file, consolidation function and archive, and the API reads
# the same points through the restarted collector, which writes new
# values to B; a last run moves nothing.
. "$(dirname "$0")/lib.sh"

command -v rrdcached >/dev/null || { echo "1..0 # SKIP rrdcached not installed"; exit 0; }
command -v jq >/dev/null || { echo "1..0 # SKIP jq not installed"; exit 0; }

start_two_rrdcached

collector_ports
DATA=$TMP/data
START=$(( ($(date +%s) - 6 * 3600) / 3600 * 3600 ))
conf() { # DAEMONS
  printf '[storage]\nbackend = rrdcached\ndaemons = %s\nstep = 60\nheartbeat = 600\narchives = 1m:1d,5m:7d\n' \
    "$1" >"$TMP/vigie.conf"
}
collector() {
  start_api_collector collector --config "$TMP/vigie.conf" --data-dir "$DATA"
}
agent() { # CLOCK_START COUNT
  start_agent agent --config "$(drain_conf)" --collector tcp://127.0.0.1:$PORT --libvirt test:///default \
    --proc "$ROOT/tests/fixtures/proc" --interval 0.05 --host mv-host --spool "$TMP/spool" \
    --clock-start "$1" --clock-step 60 --count "$2"
  wait "$AGENT_PID"
}
files() { (cd "$1" && find . -name '*.rrd' | sed 's|^\./||' | sort); }
sums() { (cd "$1" && find . -name '*.rrd' -print0 | sort -z | xargs -0 -r sha256sum); }
# every file, function and archive through a daemon: DAEMON BASE (absolute
# names on a unix socket, relative over TCP: see rrdcached_test.sh), in one
# `rrdtool -` process; rrdcached answers from the finest archive covering
# the range: the last hour (1 min rows), the last days (5 min rows)
fetch_all() {
  local d=$1 base=$2 f cf s name
  for f in $(files "$base"); do
    name=$f; [[ $d == unix:* ]] && name=$base/$f
    for cf in AVERAGE MIN MAX; do
      for s in $((START - 600)) $((START - 3 * 86400)); do
        echo "fetch --daemon $d $name $cf -s $s -e $((START + 3600))"
      done
    done
  done | rrdtool - 2>&1 | sed 's/^OK u:.*/OK/'
}
# what the API reads of every series, both archives, every aggregation, with one
# curl for all the reads: id metric granularity aggregation points
api_all() {
  local id m g a q=() l=()
  for id in $(api "/v1/resources?limit=1000" | jq -r '.resources[].id' | sort); do
    for m in $(api "/v1/resources/$id" | jq -r '.metrics | keys[]'); do
      for g in 60 300; do
        for a in mean min max; do
          l+=("$id $m $g $a")
          q+=("$API/v1/measures?resource=$id&metric=$m&start=$START&end=$((START + 3600))&granularity=$g&aggregation=$a")
        done
      done
    done
  done
  paste -d' ' <(printf '%s\n' "${l[@]}") \
    <(curl -sS --max-time 60 -H "$(api_auth)" "${q[@]}" | jq -c .points)
}

# ---- data written through the collector, on A only ----
conf "$A"
check "the collector starts on daemon A" collector
agent $START 25
api_all >"$TMP/api.before"
n_series=$(wc -l <"$TMP/api.before")
diag "series x archives x aggregations read through the API: $n_series"
check "the API reads points of every series" \
  bash -c "[[ $n_series -ge 8 ]] && ! grep -q ' null$\| \[\]$' '$TMP/api.before'"
stop_pid "$COLLECTOR_PID"
files "$A_BASE" >"$TMP/files.a"
n=$(wc -l <"$TMP/files.a")
check "the series are files on A ($n), none on B" bash -c "[[ $n -ge 4 && -z \$(ls -A '$B_BASE') ]]"
fetch_all "$A" "$A_BASE" >"$TMP/fetch.before" 2>&1
sums "$A_BASE" >"$TMP/sums.before"
OWNERS=$DATA/journal/owners
cp "$OWNERS" "$TMP/owners.before"

move() { "$BIN/vigie-collector" --config "$TMP/vigie.conf" --data-dir "$DATA" storage move "$@"; }

# ---- B added; a move that cannot verify changes nothing ----
conf "$A, $B"
mkdir -p "$TMP/wrong"
move --from "$A" --to "$B" --from-dir "$A_BASE" --to-dir "$TMP/wrong" --all >"$TMP/m0.out" 2>"$TMP/m0.err"
eq "a move whose copy the destination daemon cannot read fails" "$?" 1
check "it says why, for each series" grep -q "is --to-dir .* -b directory" "$TMP/m0.err"
eq "... and moved none" "$(grep -o 'moved [0-9]* series' "$TMP/m0.out")" "moved 0 series"
sums "$A_BASE" >"$TMP/sums.0"
check "every source file is intact, byte for byte" cmp -s "$TMP/sums.0" "$TMP/sums.before"
eq "the placement record is unchanged" "$(md5sum <"$OWNERS")" "$(md5sum <"$TMP/owners.before")"
eq "no copy is left in the wrong directory" "$(files "$TMP/wrong" | wc -l)" 0
eq "nothing reached B" "$(ls -A "$B_BASE")" ""

# ---- the move, in two steps ----
move --from "$A" --to "$B" --from-dir "$A_BASE" --to-dir "$B_BASE" --series 'instance/*' \
  >"$TMP/m1.out" 2>"$TMP/m1.err"
eq "moving the instances' series succeeds" "$?" 0
n_inst=$(grep -c '^instance/' "$TMP/files.a")
eq "only they moved" "$(files "$B_BASE")" "$(grep '^instance/' "$TMP/files.a")"
diag "$(cat "$TMP/m1.out")"
# B already has a different file under the name of one of A's series
X=$(grep -v '^instance/' "$TMP/files.a" | head -1)
mkdir -p "$(dirname "$B_BASE/$X")"
cp "$B_BASE/$(files "$B_BASE" | head -1)" "$B_BASE/$X"
cp "$B_BASE/$X" "$TMP/planted"
move --from "$A" --to "$B" --from-dir "$A_BASE" --to-dir "$B_BASE" --all >"$TMP/m2.out" 2>"$TMP/m2.err"
eq "a series whose name B already holds (another file) fails the run" "$?" 1
check "... saying so" grep -q "$X exists and differs from the source: left alone" "$TMP/m2.err"
eq "... the rest moved ($((n - n_inst - 1)) series)" "$(grep -o 'moved [0-9]* series' "$TMP/m2.out")" "moved $((n - n_inst - 1)) series"
eq "... its source stays on A" "$(files "$A_BASE")" "$X"
check "... and B's file is untouched" cmp -s "$B_BASE/$X" "$TMP/planted"
rm "$B_BASE/$X"
move --from "$A" --to "$B" --from-dir "$A_BASE" --to-dir "$B_BASE" --all >"$TMP/m2b.out" 2>"$TMP/m2b.err"
eq "once it is gone, the last series moves" "$?" 0
eq "... one series" "$(grep -o 'moved [0-9]* series' "$TMP/m2b.out")" "moved 1 series"
[[ -s $TMP/m2b.err ]] && diag "stderr: $(head -3 "$TMP/m2b.err")"
eq "no series file is left on A" "$(files "$A_BASE")" ""
eq "B holds every series" "$(files "$B_BASE")" "$(cat "$TMP/files.a")"
sums "$B_BASE" >"$TMP/sums.after"
check "B's files are A's bytes" cmp -s "$TMP/sums.after" "$TMP/sums.before"
fetch_all "$B" "$B_BASE" >"$TMP/fetch.after" 2>&1
check "rrdtool fetch --daemon B prints what A printed, every function and archive" \
  cmp -s "$TMP/fetch.after" "$TMP/fetch.before"
last_owner() { awk '{ o[$2] = $1 } END { for (k in o) print o[k] }' "$OWNERS" | sort -u; }
eq "the placement record names B for every series" "$(last_owner)" "$B"

# ---- the collector reads and writes them on B ----
check "the collector starts with A and B" collector
api_all >"$TMP/api.after"
check "the API reads the same points as before the move" cmp -s "$TMP/api.after" "$TMP/api.before"
move --from "$B" --to "$A" --from-dir "$B_BASE" --to-dir "$A_BASE" --all >/dev/null 2>"$TMP/mr.err"
eq "no move beside a running collector" "$?" 1
check "... it says to stop it first" grep -q "in use by a running vigie-collector: stop it first" "$TMP/mr.err"
agent $((START + 25 * 60)) 5
stop_pid "$COLLECTOR_PID"
f=$(head -1 "$TMP/files.a")
eq "new values go to B (last update of $f)" "$(rrdtool last "$B_BASE/$f")" "$((START + 29 * 60))"
eq "and nothing is created again on A" "$(files "$A_BASE")" ""

move --from "$A" --to "$B" --from-dir "$A_BASE" --to-dir "$B_BASE" --all >"$TMP/m3.out" 2>&1
eq "a second run succeeds" "$?" 0
eq "... and moves nothing" "$(grep -o 'moved [0-9]* series' "$TMP/m3.out")" "moved 0 series"

move --from "$A" --to "$B" --from-dir "$B_BASE" --to-dir "$B_BASE/." --all >/dev/null 2>"$TMP/m5.err"
eq "--from-dir and --to-dir may not be one directory" "$?" 2
move --from "$A" --to "$TMP/nowhere" --from-dir "$A_BASE" --to-dir "$B_BASE" --all >/dev/null 2>"$TMP/m4.err"
eq "--to must be a configured daemon" "$?" 2
done_testing
