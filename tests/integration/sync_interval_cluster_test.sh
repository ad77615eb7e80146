#!/usr/bin/env bash
# sync_interval_cluster_test.sh — [storage] sync_interval in a cluster:
# two collectors on one PostgreSQL state and one rrdcached.
#
# With write-through a collector's values are taken by the daemon before
# the ack, and only a sync (a FLUSH of the files it wrote) lets it retire
# them from its journal. With sync_interval = 300s they wait up to 300 s
# taken but not FLUSHed, their only other copy in that collector's
# journal. If that collector then dies for good (its disk gone) and the
# daemon loses what it held (killed -9 and restarted without its -j
# journal, or with a journal that lacked them), nobody can send them
# again: the host's next collector never had them, and writes newer
# values. With the default 0 each batch is FLUSHed at once.
#
# 1. Both collectors refuse to start (exit 2, naming the key), and
#    `config check` refuses, with sync_interval = 300s (they started
#    before).
# 2. The default (0): collector 0 writes two minutes of NS series,
#    is killed -9 and its data directory removed; the daemon is killed -9
#    and restarted without its journal; collector 1 writes the third
#    minute: every file holds all three.
# 3. The same with sync_interval = 300s accepted through
#    sync_interval_single_writer = yes (the operator's word, broken here):
#    the second minute is lost, shown as a diagnostic (what the refusal
#    prevents; not a check: the test asserts what vigie promises).
source "$(dirname "$0")/lib_shared_daemon.sh"

NS=${NS:-20}
POLLS=1
start_shared_daemon
free_ports 'CP[0]' 'CH[0]' 'CP[1]' 'CH[1]'
mkdir -p "$TMP/c0" "$TMP/c1"

# conf I SYNC [EXTRA]: collector I's configuration, sync_interval SYNC
conf() {
  printf '[storage]\nbackend = rrdcached\ndaemons = 127.0.0.1:%s\narchives = 1m:6h\nsync_interval = %s\n%s\n' \
    "$RD_PORT" "$2" "${3:-}" |
    state_conf "$TMP/c$1.conf" "${CP[$1]}" "${CH[$1]}" "$TMP/c$1" "$TMP/tokens.key"
}

# 1. refused
for i in 0 1; do
  conf "$i" 300s
  timeout 20 "$BIN/vigie-collector" --allow-unsigned --config "$TMP/c$i.conf" \
    >"$TMP/r$i.out" 2>"$TMP/r$i.err"
  eq "collector $i with sync_interval = 300s: exit 2" "$?" 2
  check "... naming the key and the docs" \
    grep -qF 'sync_interval = 300s with a PostgreSQL [state] url and backend = rrdcached' "$TMP/r$i.err"
  timeout 20 "$BIN/vigie-collector" --allow-unsigned --config "$TMP/c$i.conf" config check \
    >"$TMP/k$i.out" 2>"$TMP/k$i.err"
  eq "... and config check says so (exit 2)" "$?" 2
  check "... naming the key" grep -qF 'sync_interval_single_writer = yes' "$TMP/k$i.err"
done

T=$(($(date -u +%s) / 60 * 60 - 600))
# minute FILE PREFIX M: NS series PREFIX<i>, minute M's values (i + 100 M)
minute() {
  local i
  for i in $(seq 1 "$NS"); do printf '%s%d load.1 %d %d\n' "$2" "$i" "$((i + 100 * $3))" "$((T + 60 * $3))"; done >"$1"
}
# put I FILE: the values of FILE through collector I's API
put() { "$BIN/vigie" --api "http://127.0.0.1:${CH[$1]}" put --project p1 --file "$2"; }
# taken I N: collector I wrote N values and holds none
taken() {
  [[ $(metric "$1" vigie_store_values_written_total) -ge $2 &&
    $(metric "$1" vigie_store_values_pending) -eq 0 ]]
}
# kept PREFIX: how many of the NS files hold minute 1's value (the second
# minute, i + 100) in its row; read from the files after the daemon stopped
kept() {
  local i f n=0
  for i in $(seq 1 "$NS"); do
    f=$RD_DIR/base/custom/$1$i/load.1.rrd
    env -u RRDCACHED_ADDRESS rrdtool fetch "$f" AVERAGE -r 60 -s "$T" -e "$((T + 120))" |
      awk -v t="$((T + 60))" -v v="$((i + 100))" -F': ' '$1 == t && $2 + 0 == v { f = 1 } END { exit !f }' &&
      n=$((n + 1))
  done
  echo "$n"
}

# scenario PREFIX SYNC [EXTRA]: collector 0 (SYNC, EXTRA) writes minutes 0
# and 1 of PREFIX<i>, dies with its disk; the daemon is killed -9 and comes
# back without its journal; collector 1 (0) writes minute 2; the daemon
# stopped; sets KEPT
scenario() {
  conf 0 "$2" "${3:-}"
  conf 1 0
  [[ -n ${ADMIN_TOKEN:-} ]] ||
    ADMIN_TOKEN=$("$BIN/vigie-collector" --config "$TMP/c0.conf" token create --admin --name it 2>>"$TMP/token.err")
  export VIGIE_TOKEN=$ADMIN_TOKEN
  start_collector c0 --config "$TMP/c0.conf"
  CPID[0]=$COLLECTOR_PID
  check "$1: collector 0 starts" wait_for 20 answers_health "${CH[0]}"
  minute "$TMP/$1.m0" "$1" 0
  minute "$TMP/$1.m1" "$1" 1
  check "$1: minute 0 acknowledged by collector 0" put 0 "$TMP/$1.m0"
  check "$1: minute 1 acknowledged by collector 0" put 0 "$TMP/$1.m1"
  check "$1: the daemon took them" wait_for 30 taken 0 $((2 * NS))
  kill -KILL "${CPID[0]}"; wait "${CPID[0]}" 2>/dev/null
  rm -rf "$TMP/c0" && mkdir -p "$TMP/c0" # its disk is gone
  kill -KILL "$RD_PID"; wait "$RD_PID" 2>/dev/null
  rm -f "$RD_DIR"/journal/*
  restart_rrdcached s "$RD_DIR" "$RD_PORT" -O -R || bail "rrdcached restarts"
  RD_PID=$RRDCACHED_PID
  start_collector c1 --config "$TMP/c1.conf"
  CPID[1]=$COLLECTOR_PID
  check "$1: collector 1 starts" wait_for 20 answers_health "${CH[1]}"
  minute "$TMP/$1.m2" "$1" 2
  check "$1: minute 2 acknowledged by collector 1" put 1 "$TMP/$1.m2"
  check "$1: the daemon took it" wait_for 30 taken 1 "$NS"
  kill -TERM "${CPID[1]}"; wait "${CPID[1]}" 2>/dev/null
  kill -TERM "$RD_PID"; wait "$RD_PID" 2>/dev/null # writes what it holds
  KEPT=$(kept "$1")
  restart_rrdcached s "$RD_DIR" "$RD_PORT" -O -R || bail "rrdcached restarts"
  RD_PID=$RRDCACHED_PID
}

# 2. the default: nothing lost
scenario a 0
eq "sync_interval = 0: every file holds the dead collector's last minute" "$KEPT" "$NS"
# 3. what the refusal prevents
scenario b 300s "sync_interval_single_writer = yes"
diag "sync_interval = 300s (forced): $KEPT of $NS files hold the dead collector's last minute"
done_testing
