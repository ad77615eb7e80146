#!/usr/bin/env bash
# storage_move_cluster_test.sh — `vigie-collector storage move` with two
# collectors on one PostgreSQL state and two rrdcached daemons.
#
# The move takes its own data directory's journal lock, so it refuses
# beside its own running collector; nothing kept the other collectors
# out. One of them running, or started (a restart, systemd's
# Restart=on-failure) during the move, writes a series the move copied and
# has not yet recorded to the source daemon, whose FORGET and unlink
# then drop those values; and a collector holding acknowledged values a
# daemon has not taken (a holding mark) replays them at its next start.
# Now the move refuses (exit 1, naming them) while a collector of the
# state was seen within [cluster] lease or a holding mark exists, and
# looks again before each group of series it records. The move itself
# with everything stopped still moves (storage_move_test.sh covers the
# rest).
source "$(dirname "$0")/lib.sh"

require rrdcached jq
start_shared_state
start_two_rrdcached
free_ports 'CP0' 'CH0' 'CP1' 'CH1'
for i in 0 1; do
  p=CP$i h=CH$i
  printf '[storage]\nbackend = rrdcached\ndaemons = %s, %s\narchives = 1m:6h\n' "$A" "$B" |
    state_conf "$TMP/c$i.conf" "${!p}" "${!h}" "$TMP/c$i" "$TMP/tokens.key"
  mkdir -p "$TMP/c$i"
done
ADMIN_TOKEN=$("$BIN/vigie-collector" --config "$TMP/c0.conf" token create --admin --name it 2>>"$TMP/token.err")
export VIGIE_TOKEN=$ADMIN_TOKEN
start_collector c0 --config "$TMP/c0.conf"
C0=$COLLECTOR_PID
check "collector 0 answers" wait_for 20 answers_health "$CH0"
start_collector c1 --config "$TMP/c1.conf"
C1=$COLLECTOR_PID
check "collector 1 answers" wait_for 20 answers_health "$CH1"

T=$(($(date -u +%s) / 60 * 60 - 600))
for i in $(seq 1 40); do printf 'node%d load.1 %d %d\n' "$i" "$i" "$T"; done >"$TMP/m0"
check "40 series written through collector 0" \
  "$BIN/vigie" --api "http://127.0.0.1:$CH0" put --project p1 --file "$TMP/m0"
on_a() { (cd "$A_BASE" && find . -name '*.rrd' | wc -l); }
check "some are on daemon A" wait_for 20 test "$(on_a)" -gt 0
NA=$(on_a)
diag "$NA of 40 series on A"

# move RUN: storage move A -> B from collector 0's data directory
move() {
  timeout 120 "$BIN/vigie-collector" --config "$TMP/c0.conf" storage move --from "$A" --to "$B" \
    --from-dir "$A_BASE" --to-dir "$B_BASE" --all >"$TMP/move$1.out" 2>"$TMP/move$1.err"
}

kill -TERM "$C0"; wait "$C0" 2>/dev/null
move 1
eq "collector 1 running: the move refuses (exit 1)" "$?" 1
check "... naming the running collector" grep -q "collector(s) of the shared state are running" "$TMP/move1.err"
eq "... and nothing left A" "$(on_a)" "$NA"

kill -TERM "$C1"; wait "$C1" 2>/dev/null
# a collector (killed, never back) holding values a daemon has not taken
psql "$STATE" -X -q -c "INSERT INTO vigie_registry.held VALUES ('h9', 'gone-node', \
  $(($(date +%s) * 1000 + 3600000)))" >/dev/null
move 2
eq "a holding mark: the move refuses (exit 1)" "$?" 1
check "... naming the mark" grep -q "holding mark(s) (gone-node holds h9)" "$TMP/move2.err"
eq "... and nothing left A" "$(on_a)" "$NA"

check "the mark released" "$BIN/vigie-collector" --config "$TMP/c0.conf" storage marks release gone-node
move 3
eq "every collector stopped, no mark: the move moves (exit 0)" "$?" 0
check "... saying so" grep -q "^moved $NA series" "$TMP/move3.out"
eq "... and A is empty" "$(on_a)" 0
done_testing
