#!/usr/bin/env bash
# storage_move_alias_test.sh — `vigie-collector storage move` between two
# addresses of ONE real rrdcached daemon (its unix socket and its TCP
# port, both listed in [storage] daemons: the collector cannot tell they
# are one daemon, and spreads new series over both), with a --to-dir that
# is not the daemon's -b directory.
#
# The verification reads the "after" view through --to: here that is the
# source daemon reading the source file, equal to the "before" view by
# construction. Before the fix every series of --from was "moved": its
# source deleted, its only copy left in the wrong directory where no
# daemon reads it; and the closing note told the operator to delete by
# hand the files of the series recorded on the TCP address, which are
# that same daemon's live files. Now --to answering for a name that
# --to-dir does not hold fails the series: every file stays where it was,
# nothing is recorded, no copy is left, and no live file is called stale.
. "$(dirname "$0")/lib.sh"

command -v rrdcached >/dev/null || { echo "1..0 # SKIP rrdcached not installed"; exit 0; }

start_rrdcached one -R -O || { nok "rrdcached did not start"; done_testing; exit 1; }
U=$RRDCACHED_UNIX T=$RRDCACHED_TCP BASE=$RRDCACHED_BASE
collector_ports
DATA=$TMP/data
START=$(( ($(date +%s) - 6 * 3600) / 3600 * 3600 ))
printf '[storage]\nbackend = rrdcached\ndaemons = %s, %s\nstep = 60\nheartbeat = 600\narchives = 1m:1d,5m:7d\n' \
  "$U" "$T" >"$TMP/vigie.conf"
check "the collector starts with the daemon listed as $U and $T" \
  start_api_collector collector --config "$TMP/vigie.conf" --data-dir "$DATA"
start_agent agent --config "$(drain_conf)" --collector tcp://127.0.0.1:$PORT --libvirt test:///default \
  --proc "$ROOT/tests/fixtures/proc" --interval 0.05 --host alias-host --spool "$TMP/spool" \
  --clock-start "$START" --clock-step 60 --count 10
wait "$AGENT_PID"
stop_pid "$COLLECTOR_PID"
sums() { (cd "$1" && find . -name '*.rrd' -print0 | sort -z | xargs -0 -r sha256sum); }
sums "$BASE" >"$TMP/sums.before"
n=$(wc -l <"$TMP/sums.before")
on_u=$(grep -c "^$U " "$DATA/journal/owners")
on_t=$(grep -c "^$T " "$DATA/journal/owners")
check "the series ($n) are files of the daemon, recorded under both addresses ($on_u, $on_t)" \
  bash -c "[[ $n -ge 8 && $on_u -ge 1 && $on_t -ge 1 ]]"
cp "$DATA/journal/owners" "$TMP/owners.before"

mkdir -p "$TMP/wrong"
"$BIN/vigie-collector" --config "$TMP/vigie.conf" --data-dir "$DATA" storage move \
  --from "$U" --to "$T" --from-dir "$BASE" --to-dir "$TMP/wrong" --all \
  >"$TMP/m.out" 2>"$TMP/m.err"
eq "the move fails" "$?" 1
check "it says --to answers for a file --to-dir lacks" \
  grep -q "answers for .* although --to-dir .* has no such file" "$TMP/m.err"
eq "... and moved none" "$(grep -o 'moved [0-9]* series' "$TMP/m.out")" "moved 0 series"
sums "$BASE" >"$TMP/sums.after"
check "every file of the daemon is intact, byte for byte" cmp -s "$TMP/sums.before" "$TMP/sums.after"
eq "the placement record is unchanged" "$(md5sum <"$DATA/journal/owners")" \
  "$(md5sum <"$TMP/owners.before")"
eq "no copy is left in the wrong directory" "$(find "$TMP/wrong" -name '*.rrd' | wc -l)" 0
if grep -q "delete it by hand" "$TMP/m.out"; then
  nok "no live file is called stale ($(grep 'delete it by hand' "$TMP/m.out"))"
else ok "no live file is called stale"; fi
done_testing
