#!/usr/bin/env bash
# bench/state_rows.sh — rows the shared state database writes per agent
# batch, for the capacity model of docs/scaling.md.
#
# One vigie-collector on a PostgreSQL server started here ([state] url,
# with the hand-computed ledger's rate card so billing meters too), one
# vigie-agent on libvirt's test driver with DOMAINS domains (default 100,
# Nova metadata), POLLS polls (default 60) on a synthetic clock. Before
# and after: PostgreSQL's own counters (pg_stat_user_tables: rows
# inserted, updated, deleted per schema; pg_stat_database: commits).
# Also the tables' index and sequential scans (each a statement that read
# a table: the meter's row reads) and the server's CPU (the postmaster and
# every backend, waited-for or live, as bench/run.sh counts it).
# Prints per-batch and per-instance-poll figures, and the database's size.
#   VIGIE_BUILD=build bash bench/state_rows.sh
set -u
cd "$(dirname "$0")/.."
source tests/integration/lib.sh
DOMAINS=${DOMAINS:-100}
POLLS=${POLLS:-60}
start_postgres || { echo "PostgreSQL cannot run here: ${PG_SKIP:-start failed}"; exit 1; }
psql "$PG_URL" -X -q -c "CREATE DATABASE vigie" >/dev/null
STATE="host=$PG_DIR port=$PG_PORT user=vigie dbname=vigie"
{ echo "<node>"
  for ((i = 0; i < DOMAINS; i++)); do
    printf "<domain type='test'><name>vm%d</name><uuid>%08x-0000-4000-8000-%012x</uuid>" $i $i $i
    printf "<metadata><nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'><nova:name>vm%d</nova:name>" $i
    printf "<nova:flavor name='m1.small'><nova:memory>2048</nova:memory><nova:disk>20</nova:disk><nova:vcpus>2</nova:vcpus></nova:flavor>"
    printf "<nova:owner><nova:user uuid='u%d'>u</nova:user><nova:project uuid='p%d'>p</nova:project></nova:owner></nova:instance></metadata>" $((i % 10)) $((i % 10))
    printf "<memory unit='KiB'>2097152</memory><vcpu>2</vcpu><os><type arch='x86_64'>hvm</type></os><devices>"
    printf "<disk type='file' device='disk'><source file='/g/%d.img'/><target dev='vda' bus='virtio'/></disk>" $i
    printf "<interface type='ethernet'><mac address='52:54:00:00:%02x:%02x'/><target dev='tap%d'/></interface></devices></domain>\n" $((i >> 8)) $((i & 255)) $i
  done
  echo "</node>"; } >"$TMP/node.xml"
P=$(free_port); H=$(free_port)
cat >"$TMP/c.conf" <<CONF
[collector]
listen = tcp://127.0.0.1:$P
http = 127.0.0.1:$H
data_dir = $TMP/data
[state]
url = $STATE
[billing]
ratecard = $ROOT/tests/fixtures/billing/ratecard.json
CONF
mkdir -p "$TMP/data"
start_collector c --config "$TMP/c.conf"
wait_for 20 curl -sf -o /dev/null "http://127.0.0.1:$H/v1/health" || { echo "collector did not start"; exit 1; }
PM=$(head -1 "$PG_DIR/data/postmaster.pid")
pg_cpu() { # clock ticks of the server: postmaster (with waited-for children) + live children
  local p t
  t=$(awk '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); print f[12] + f[13] + f[14] + f[15] }' "/proc/$PM/stat")
  for p in $(pgrep -P "$PM"); do
    t=$((t + $(awk '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); print f[12] + f[13] }' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
counters() {
  psql "$STATE" -X -A -t -F' ' -c "SELECT schemaname, sum(n_tup_ins), sum(n_tup_upd), sum(n_tup_del), sum(coalesce(idx_scan, 0) + coalesce(seq_scan, 0)) FROM pg_stat_user_tables GROUP BY 1 ORDER BY 1"
  psql "$STATE" -X -A -t -c "SELECT 'commits ' || xact_commit FROM pg_stat_database WHERE datname = 'vigie'"
  echo "cpu $(pg_cpu)"
}
# a first poll creates the rows of every resource and metric: measured
# apart, then the steady state
printf '[agent]\ndrain_ms = 120000\nhost_fs = false\n' >"$TMP/agent.conf"
START=$(( ($(date +%s) - 86400) / 3600 * 3600 ))
"$BIN/vigie-agent" --config "$TMP/agent.conf" --collector "tcp://127.0.0.1:$P" --libvirt "test://$TMP/node.xml" \
  --interval 0.2 --host bench-host --spool "$TMP/spool" --clock-start $START --clock-step 10 --count 1 >>"$TMP/agent.log" 2>&1
sleep 11 # the registry writes last values every 10 s: let the first flush pass
psql "$STATE" -X -q -c "SELECT pg_stat_force_next_flush()" >/dev/null 2>&1
counters >"$TMP/before"
t0=$(date +%s%N)
"$BIN/vigie-agent" --config "$TMP/agent.conf" --collector "tcp://127.0.0.1:$P" --libvirt "test://$TMP/node.xml" \
  --interval 0.2 --host bench-host --spool "$TMP/spool" --clock-start $((START + 10)) --clock-step 10 --count "$POLLS" >>"$TMP/agent.log" 2>&1
stop_pid "$COLLECTOR_PID" # its last values are written at the stop
t1=$(date +%s%N)
sleep 1
counters >"$TMP/after"
echo "state_rows: $DOMAINS domains (instance + disk + vNIC each), $POLLS polls of 10 s (synthetic), $(( (t1 - t0) / 1000000 )) ms wall"
join <(sort "$TMP/before") <(sort "$TMP/after") | awk -v n="$POLLS" -v d="$DOMAINS" -v tck="$(getconf CLK_TCK)" '
  NF == 9 { ins = $6 - $2; upd = $7 - $3; del = $8 - $4; sc = $9 - $5; tot += ins + upd + del
            printf "  %-16s inserted %7d updated %7d deleted %6d  = %8.1f rows/batch, %6.3f rows per instance-poll; %7d scans = %6.3f per instance-poll\n", $1, ins, upd, del, (ins + upd + del) / n, (ins + upd + del) / n / d, sc, sc / n / d }
  NF == 3 && $1 == "commits" { printf "  commits %d = %.1f per batch\n", $3 - $2, ($3 - $2) / n }
  NF == 3 && $1 == "cpu" { printf "  server CPU %.2f s = %.1f ms per batch, %.0f us per instance-poll\n", ($3 - $2) / tck, ($3 - $2) / tck * 1000 / n, ($3 - $2) / tck * 1e6 / n / d }
  END { printf "  all schemas: %.1f rows per batch, %.3f rows per instance-poll\n", tot / n, tot / n / d }'
psql "$STATE" -X -A -t -c "SELECT 'database size ' || pg_size_pretty(pg_database_size('vigie')) || ' (' || pg_database_size('vigie') || ' bytes)'"
psql "$STATE" -X -A -t -F' ' -c "SELECT 'rows', schemaname, sum(n_live_tup) FROM pg_stat_user_tables GROUP BY 2 ORDER BY 2"
