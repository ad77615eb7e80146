# tests/integration/lib.sh — helpers for integration tests (sourced).
#
# TAP output, free loopback ports, starting the real daemons on a private
# temp dir, bounded waiting, and cleanup of everything on exit (also on
# failure). Binaries come from $VIGIE_BUILD/bin.
set -u
BUILD=${VIGIE_BUILD:-build}
if [[ $BUILD = /* ]]; then BIN=$BUILD/bin # make bench passes an absolute path
else BIN=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/$BUILD/bin; fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TMP=$(mktemp -d /tmp/vigie-it.XXXXXX)
_tap_n=0
_tap_failed=0
_pids=()

ok()   { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $*"; }
nok()  { _tap_n=$((_tap_n + 1)); _tap_failed=$((_tap_failed + 1)); echo "not ok $_tap_n - $*"; }
skip() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n # SKIP $*"; }
# check DESC CMD... : ok if CMD succeeds
check() { local d=$1; shift; if "$@" >/dev/null; then ok "$d"; else nok "$d"; fi; }
# eq DESC GOT WANT
eq() { if [[ "$2" == "$3" ]]; then ok "$1"; else nok "$1 (got '$2', want '$3')"; fi; }
# eq_within SECONDS DESC WANT CMD...: eq on CMD's output once it is WANT
# (polled every 0.2 s), or on its last output when SECONDS have passed:
# for a state a daemon reaches on its own schedule
eq_within() {
  local limit=$1 d=$2 want=$3 got; shift 3
  local end=$((SECONDS + limit))
  while :; do
    got=$("$@" 2>/dev/null)
    [[ $got == "$want" || $SECONDS -ge $end ]] && break
    sleep 0.2
  done
  eq "$d" "$got" "$want"
}
done_testing() { echo "1..$_tap_n"; }
diag() { echo "# $*"; }
# bail DESC: a failed set-up step ends the test (not ok DESC, the plan)
bail() { nok "$1"; done_testing; exit 1; }
# require TOOL...: the whole test is skipped, naming the tool, when one
# is not installed
require() {
  local t
  for t; do command -v "$t" >/dev/null || { echo "1..0 # SKIP $t not installed"; exit 0; }; done
}
# san_no_quarantine: for a test that measures a daemon's memory (VmRSS,
# VmHWM). Under AddressSanitizer (make SAN=1) a freed block waits in its
# quarantine (256 MB by default) and the kernel counts it: a body buffer
# grown by reallocation left each smaller copy there (seen: +281 MB for
# 3 bodies of 8 MiB). Without the quarantine what is measured is again
# what the daemon keeps; a no-op in other builds
san_no_quarantine() {
  [[ ${SAN:-0} == 1 ]] || return 0
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0"
}

# _keep_tmp: whether cleanup keeps the temp dirs (logs, data): KEEP_TMP=1
# always, KEEP_TMP=fail only when a check failed (a flaky test run in a
# loop keeps its failing runs alone)
_keep_tmp() { [[ ${KEEP_TMP:-0} == 1 || (${KEEP_TMP:-0} == fail && $_tap_failed -gt 0) ]]; }
cleanup() {
  local p
  for p in "${_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${_pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  if [[ -n ${PG_DIR:-} ]]; then
    stop_postgres
    if _keep_tmp; then echo "# kept $PG_DIR"; else rm -rf "$PG_DIR"; fi
  fi
  if _keep_tmp; then echo "# kept $TMP"; else rm -rf "$TMP"; fi
  _free_ports_release
}
trap cleanup EXIT

# free_port: a loopback TCP port below the ephemeral range, in no TCP state,
# reserved for this test until it exits: tests running side by side (the
# cluster scenario several at a time, tests/cluster/rate.sh) pick ports
# before their daemons bind them, and a test restarts a killed daemon on
# its old port, so each port is also claimed by a directory
# $PORTS_DIR/PORT holding the test's pid (mkdir is atomic), taken over
# only from a test that is gone (under flock on $PORTS_DIR/.takeover, so
# two takers cannot both win); cleanup() removes this test's claims. C
# tests claim theirs the same way (tests/support/free_port.h,
# docs/testing.md)
PORTS_DIR=${TMPDIR:-/tmp}/vigie-ports
free_port() {
  local p o
  mkdir -p "$PORTS_DIR" 2>/dev/null
  while :; do
    p=$((20000 + RANDOM % 12000))
    ss -Htan "sport = :$p" 2>/dev/null | grep -q . && continue
    if ! mkdir "$PORTS_DIR/$p" 2>/dev/null; then
      o=$(cat "$PORTS_DIR/$p/pid" 2>/dev/null)
      [[ -n $o ]] && kill -0 "$o" 2>/dev/null && continue
      # a claim whose test is gone (or not written yet: skip it)
      [[ -n $o ]] || continue
      { flock 9 && [[ $(cat "$PORTS_DIR/$p/pid" 2>/dev/null) == "$o" ]] &&
          ! kill -0 "$o" 2>/dev/null && rm -rf "$PORTS_DIR/$p"; } 9>"$PORTS_DIR/.takeover"
      mkdir "$PORTS_DIR/$p" 2>/dev/null || continue
    fi
    echo $$ >"$PORTS_DIR/$p/pid"
    echo "$p"; return
  done
}
_free_ports_release() {
  local d
  for d in "$PORTS_DIR"/*/; do
    [[ $(cat "$d/pid" 2>/dev/null) == "$$" ]] && rm -rf "$d"
  done
}

# free_ports VAR...: a free loopback port (free_port) in each variable VAR,
# no two the same
free_ports() {
  local v p taken=" "
  for v; do
    p=$(free_port)
    while [[ $taken == *" $p "* ]]; do p=$(free_port); done
    taken+="$p "
    printf -v "$v" %s "$p"
  done
}
# collector_ports [VAR...]: the ports of the collector most tests start:
# PORT for its agents (--listen), HPORT for its API (--http) and API, the
# API's URL; each VAR gets one more port (e.g. --notify), all distinct
# bench_tool NAME: the path of the bench program NAME of this build (made
# now if its sources changed; make rebuilds only then), in $BENCH_TOOL;
# returns 1 (the caller skips, with the reason) when it cannot be built
bench_tool() {
  BENCH_TOOL=$ROOT/$BUILD/bench/$1
  [[ $BUILD = /* ]] && BENCH_TOOL=$BUILD/bench/$1
  bench_make "$BUILD/bench/$1" >/dev/null 2>&1
  [[ -x $BENCH_TOOL ]]
}
# bench_make TARGET...: make them, one test program at a time (programs
# run side by side: two makes of one target at once break each other's
# objects; make check builds them first anyway)
bench_make() {
  local lock=$ROOT/$BUILD
  [[ $BUILD = /* ]] && lock=$BUILD
  mkdir -p "$lock" && lock=$lock/.bench-make.lock
  flock "$lock" make -s -C "$ROOT" BUILD="$BUILD" "$@"
}

collector_ports() {
  free_ports PORT HPORT "$@"
  API=http://127.0.0.1:$HPORT
}
# alarm_tools: SEND, HOOKBIN and OWNERBIN, the wire-level sender, the
# webhook receiver and the alarms' rendezvous owners of this build
# (bench/alarms_send, bench/alarms_hook, bench/alarms_owner), made now
# when missing; the test skipped (make's log on stderr) when they cannot
# be built. start_hook: the webhook receiver on a free port, answering
# every POST with the status in $TMP/status (200 until the test writes
# another), logging to $TMP/hook.log; HOOK its URL; the test ended as
# failed when it does not start within 30 s
alarm_tools() {
  SEND=$BIN/../bench/alarms_send
  HOOKBIN=$BIN/../bench/alarms_hook
  OWNERBIN=$BIN/../bench/alarms_owner
  [[ -x $SEND && -x $HOOKBIN && -x $OWNERBIN ]] && return 0
  bench_make "$BUILD/bench/alarms_send" "$BUILD/bench/alarms_hook" "$BUILD/bench/alarms_owner" \
    >"$TMP/make.log" 2>&1 && return 0
  echo "1..0 # SKIP cannot build bench/alarms_send, alarms_hook, alarms_owner (see $TMP/make.log)"
  cat "$TMP/make.log" >&2
  exit 0
}
start_hook() {
  echo 200 >"$TMP/status"
  "$HOOKBIN" --port 0 --port-file "$TMP/hook.port" --log "$TMP/hook.log" \
    --status-file "$TMP/status" 2>"$TMP/hook.err" &
  _pids+=($!)
  wait_for 30 test -s "$TMP/hook.port" || bail "webhook receiver starts"
  HOOK=http://127.0.0.1:$(cat "$TMP/hook.port")/alarm
}
# alarm_cluster_conf I [LINE...]: collector I of the alarm tests' cluster
# on the PostgreSQL of need_postgres: free ports in PORT[I], HTTP[I] and
# STREAM[I] (the caller's arrays), its configuration in $TMP/cI.conf
# (data in $TMP/dataI, node nodeI, leases of $LEASE_S seconds, quick
# webhook retries, debug log), each LINE added to its [cluster] section
# (the metric stream's key files)
alarm_cluster_conf() {
  local i=$1; shift
  PORT[i]=$(free_port); HTTP[i]=$(free_port); STREAM[i]=$(free_port)
  { cat <<CONF
[collector]
listen = tcp://127.0.0.1:${PORT[i]}
http = 127.0.0.1:${HTTP[i]}
data_dir = $TMP/data$i
[state]
url = $PG_URL
token_key = $TMP/tokens.key
[cluster]
node = node$i
stream = tcp://127.0.0.1:${STREAM[i]}
CONF
    printf '%s\n' "$@"
    cat <<CONF
lease = ${LEASE_S}s
[alarms]
retry_initial = 0.2
retry_max = 1
[log]
level = debug
CONF
  } >"$TMP/c$i.conf"
}
# start_api_collector NAME ARGS...: start_collector NAME on PORT and HPORT
# (collector_ports) with ARGS, then wait up to 20 s for its /v1/health;
# returns 1 if it does not answer (a test's `check "..." start_api_collector`)
start_api_collector() {
  local name=$1; shift
  start_collector "$name" --listen "tcp://127.0.0.1:$PORT" --http "127.0.0.1:$HPORT" "$@"
  wait_for 20 answers_health "$HPORT"
}

# start_collector NAME ARGS... ; sets COLLECTOR_PID, logs to $TMP/NAME.log
# (with --allow-unsigned: these tests' agents have no keys; signed agents
# are tested by tests/integration/auth_test.c and signed_test.sh)
# The API needs a bearer token: the first time a data dir is
# used, start_collector makes an admin token offline (vigie-collector token
# create) into $ADMIN_TOKEN; api/api_code send it, the CLI gets it through
# $VIGIE_TOKEN. Tests that need other tokens make their own.
api_token_for() { # DATA_DIR
  [[ -f $1/.test-admin-token ]] || {
    mkdir -p "$1"
    "$BIN/vigie-collector" --data-dir "$1" token create --admin --name tests \
      >"$1/.test-admin-token" 2>/dev/null || return 1
  }
  ADMIN_TOKEN=$(cat "$1/.test-admin-token")
  export VIGIE_TOKEN=${VIGIE_TOKEN:-$ADMIN_TOKEN}
}
# offline_token VAR DATA_DIR ARGS...: VAR = a token made offline
# (vigie-collector token create ARGS); a failure ends the test naming the
# command's error, instead of every later request failing 401 with an
# empty token
offline_token() {
  local var=$1 d=$2 out err; shift 2
  err=$(mktemp)
  out=$("$BIN/vigie-collector" --data-dir "$d" token create "$@" 2>"$err" | grep '^vgt_')
  [[ -n $out ]] || bail "token create $* (stderr: $(head -c 500 "$err"))"
  rm -f "$err"
  printf -v "$var" '%s' "$out"
}
start_collector() {
  local name=$1; shift
  local a prev=
  for a in "$@"; do [[ $prev == --data-dir ]] && api_token_for "$a"; prev=$a; done
  "$BIN/vigie-collector" --allow-unsigned "$@" >>"$TMP/$name.log" 2>&1 &
  COLLECTOR_PID=$!
  _pids+=("$COLLECTOR_PID")
}
start_agent() {
  local name=$1; shift
  "$BIN/vigie-agent" "$@" >>"$TMP/$name.log" 2>&1 &
  AGENT_PID=$!
  _pids+=("$AGENT_PID")
}
# drain_conf: the path of an agent configuration that only sets [agent]
# drain_ms = 120000, for an agent with --count whose batches the test
# expects delivered when it exits. Its default drain (2 s) gives up while a
# collector creates a new host's files on a loaded machine and leaves
# batches in the spool (failover_test's warm-up failed so); the drain ends
# as soon as the spool is empty.
drain_conf() {
  [[ -f $TMP/drain.conf ]] || printf '[agent]\ndrain_ms = 120000\n' >"$TMP/drain.conf"
  echo "$TMP/drain.conf"
}
stop_pid() { # SIGTERM, wait up to 10 s; returns the exit status (137 if killed)
  local p=$1
  kill -TERM "$p" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null
}

# answers_health HTTP_PORT: the collector there answers /v1/health (2xx)
answers_health() { curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$1/v1/health"; }

# wait_for SECONDS CMD... : poll CMD every 0.2 s until it succeeds
wait_for() {
  local limit=$1; shift
  local end=$((SECONDS + limit))
  while [[ $SECONDS -lt $end ]]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

# start_rrdcached NAME [ARGS...]: a private rrdcached (Debian's, or
# $RRDCACHED) in the foreground as our child, so cleanup() ends it (also on
# failure): base dir $TMP/rrdcached-NAME/base confined with -B, journal
# (-j) beside it, a unix socket and a loopback TCP port. Values wait in its
# cache for an hour (-w 3600 -f 7200) unless flushed. ARGS are more options
# (e.g. -O). Sets RRDCACHED_PID, RRDCACHED_DIR, RRDCACHED_BASE,
# RRDCACHED_SOCK, RRDCACHED_UNIX (unix:SOCK), RRDCACHED_PORT, RRDCACHED_TCP
# (127.0.0.1:PORT); logs to $TMP/NAME.log. Returns 1 if it does not answer
# on both sockets within 10 s.
# restart_rrdcached NAME DIR PORT [ARGS...]: the same daemon again (after
# a kill) on the dir, sockets and journal start_rrdcached gave it (its
# RRDCACHED_DIR and RRDCACHED_PORT), the journal replayed; sets
# RRDCACHED_PID; returns 1 if it does not answer within 20 s.
_rrdcached_up() { # SOCK PORT
  [[ -S $1 ]] && (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null
}
_rrdcached_run() { # NAME DIR PORT SECONDS [ARGS...]
  local name=$1 dir=$2 port=$3 secs=$4; shift 4
  rm -f "$dir/sock" "$dir/pid"
  "${RRDCACHED:-rrdcached}" -g -l "unix:$dir/sock" -l "127.0.0.1:$port" \
    -b "$dir/base" -B -j "$dir/journal" -p "$dir/pid" \
    -w 3600 -f 7200 "$@" >>"$TMP/$name.log" 2>&1 &
  RRDCACHED_PID=$!
  _pids+=("$RRDCACHED_PID")
  wait_for "$secs" _rrdcached_up "$dir/sock" "$port"
}
start_rrdcached() {
  local name=$1; shift
  RRDCACHED_DIR=$TMP/rrdcached-$name
  RRDCACHED_BASE=$RRDCACHED_DIR/base
  RRDCACHED_SOCK=$RRDCACHED_DIR/sock
  RRDCACHED_UNIX=unix:$RRDCACHED_SOCK
  RRDCACHED_PORT=$(free_port)
  RRDCACHED_TCP=127.0.0.1:$RRDCACHED_PORT
  mkdir -p "$RRDCACHED_BASE" "$RRDCACHED_DIR/journal"
  _rrdcached_run "$name" "$RRDCACHED_DIR" "$RRDCACHED_PORT" 10 "$@"
}
restart_rrdcached() {
  local name=$1 dir=$2 port=$3; shift 3
  _rrdcached_run "$name" "$dir" "$port" 20 "$@"
}
# start_two_rrdcached: the two daemons of the tests that move or convert
# series between daemons (-R -O): A reached on its unix socket, B over TCP
# (both kinds of address in one test); sets A, A_BASE, B, B_BASE; one ok,
# or the test ends (not ok naming the daemon that did not start)
start_two_rrdcached() {
  start_rrdcached a -R -O || { nok "rrdcached A did not start"; done_testing; exit 1; }
  A=$RRDCACHED_UNIX A_BASE=$RRDCACHED_BASE
  start_rrdcached b -R -O || { nok "rrdcached B did not start"; done_testing; exit 1; }
  B=$RRDCACHED_TCP B_BASE=$RRDCACHED_BASE
  ok "two rrdcached daemons: A on $A, B on $B"
}

# start_postgres: a private PostgreSQL server (the twin of
# tests/unit/pg_harness.h). initdb -A trust -U vigie into its own dir
# (outside $TMP, which only we may enter; as the postgres user when we are
# root: initdb refuses root), pg_ctl -w start on a free port with its unix
# socket in that dir and listen_addresses=127.0.0.1; extra server options
# in $PG_OPTS. Sets PG_DIR, PG_PORT, PG_BIN, PG_URL (libpq conninfo over
# the socket, user vigie, dbname postgres) and PG_TCP_URL. Returns 1 with
# the reason in PG_SKIP when it cannot run here (no binaries; root without
# a postgres user): report `skip "$PG_SKIP"`; returns 2 (a failure) when
# it should run and does not. cleanup stops it (pg_ctl stop -m immediate)
# and removes its dir, also on failure. stop_postgres / restart_postgres:
# the same immediate stop (a crash, as clients see it) and a start on the
# same port, to test reconnection.
_pg_as() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
_pg_start() {
  (cd "$PG_DIR" && _pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 ${PG_OPTS:-}" start) \
    >>"$PG_DIR/setup.log" 2>&1 && wait_for 30 "$PG_BIN/pg_isready" -q -d "$PG_URL"
}
start_postgres() {
  PG_SKIP=
  PG_BIN=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
  if [[ -z $PG_BIN || ! -x $PG_BIN/initdb || ! -x $PG_BIN/pg_ctl ]]; then
    PG_SKIP="PostgreSQL server binaries not found (install postgresql or set PG_BINDIR)"
    return 1
  fi
  if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    PG_SKIP="running as root (initdb refuses) and there is no postgres user"
    return 1
  fi
  PG_DIR=$(mktemp -d /tmp/vigie-pg.XXXXXX) || return 2
  [[ $(id -u) -eq 0 ]] && chown postgres: "$PG_DIR"
  PG_PORT=$(free_port)
  PG_URL="host=$PG_DIR port=$PG_PORT user=vigie dbname=postgres"
  PG_TCP_URL="postgresql://vigie@127.0.0.1:$PG_PORT/postgres"
  if ! (cd "$PG_DIR" && _pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U vigie -E UTF8 \
      --no-locale --no-sync) >>"$PG_DIR/setup.log" 2>&1; then
    diag "initdb failed: $(tail -3 "$PG_DIR/setup.log")"
    return 2
  fi
  _pg_start || { diag "PostgreSQL did not start: $(tail -3 "$PG_DIR/server.log")"; return 2; }
}
stop_postgres() {
  [[ -n ${PG_DIR:-} && -f $PG_DIR/data/postmaster.pid ]] || return 0
  (cd "$PG_DIR" && _pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop) \
    >>"$PG_DIR/setup.log" 2>&1 || true
}
restart_postgres() { stop_postgres; _pg_start; }
# need_postgres: start_postgres for a test that is about PostgreSQL: the
# whole test skipped with the reason when PostgreSQL cannot run here,
# ended as failed when it should and does not
need_postgres() {
  local rc
  start_postgres; rc=$?
  if [[ $rc -eq 1 ]]; then echo "1..0 # SKIP $PG_SKIP"; exit 0; fi
  [[ $rc -eq 0 ]] || bail "PostgreSQL starts"
}

# state_engine ENGINE CONF: the state of a test that runs on sqlite and
# again, as its _pg variant, on PostgreSQL (ENGINE: the variant's
# ALARMS_ENGINE or BILLING_ENGINE). With ENGINE postgresql: start_postgres,
# a check that it started and its [state] url appended to the
# configuration CONF; the test ended with a SKIP naming the reason when
# PostgreSQL cannot run here. Any other ENGINE (sqlite): nothing.
state_engine() {
  [[ $1 == postgresql ]] || return 0
  local rc
  start_postgres; rc=$?
  if [[ $rc == 1 ]]; then
    skip "$PG_SKIP"
    done_testing
    exit 0
  fi
  eq "PostgreSQL started" "$rc" 0
  printf '[state]\nurl = %s\n' "$PG_URL" >>"$2"
}

# start_shared_state: the shared state of several collectors, the way
# every test of them begins: start_postgres (the test skipped with the
# reason when PostgreSQL cannot run here, ended as failed when it should
# and does not) and a database vigie in it; sets STATE, its conninfo (the
# [state] url). state_conf FILE LISTEN_PORT HTTP_PORT DATA_DIR KEYFILE
# writes a collector's configuration on it: [collector] (agents on
# tcp://127.0.0.1:LISTEN_PORT, the API on 127.0.0.1:HTTP_PORT) and [state]
# (url $STATE, token_key KEYFILE), then whatever stdin holds (more
# sections; </dev/null for none).
start_shared_state() {
  need_postgres
  psql "$PG_URL" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE vigie" >/dev/null ||
    bail "CREATE DATABASE vigie"
  STATE="host=$PG_DIR port=$PG_PORT user=vigie dbname=vigie"
}
state_conf() {
  { cat <<CONF
[collector]
listen = tcp://127.0.0.1:$2
http = 127.0.0.1:$3
data_dir = $4
[state]
url = $STATE
token_key = $5
CONF
    cat; } >"$1"
}

ADMIN_TOKEN=
api_auth() { [[ -n $ADMIN_TOKEN ]] && echo "Authorization: Bearer $ADMIN_TOKEN" || echo "X-No-Token: 1"; }
api() { curl -sS --max-time 30 -H "$(api_auth)" "$API$1"; }
api_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H "$(api_auth)" "$API$1"; }

# approx A B RELTOL : |A-B| <= RELTOL*max(|A|,|B|)
approx() {
  awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d;
    m = a < 0 ? -a : a; n = b < 0 ? -b : b; if (n > m) m = n;
    exit !(d <= t * m) }'
}

# A collector on one rrdcached (write-through, sync_interval = 300,
# [storage] check_max = 0.001) that wrote two minutes of $1 series through,
# not synced, and was killed -9: its journal holds them all, for a start
# or a command whose check of the daemon's files is cut short
# (start_check_cut_test, storage_cmd_check_cut_test). Then the daemon is
# killed -9 too and started again without its -j journal (a daemon run
# without one, or whose journal was lost): it lost every value of ours it
# held unwritten, so the check FORGETs the files for real and the values
# must come back from the collector's journal. With the daemon untouched
# the check FLUSHes what it still holds of ours (a collector restart is
# no daemon restart), and a check that has nothing to re-send may well
# finish within the bound. Sets NS, DAEMON, DATA, T (the first minute),
# $TMP/c.conf and m NAME (a /metrics sum).
killed_collector_with_journal() {
  NS=$1
  start_rrdcached s -O -R || bail "rrdcached did not start ($(tail -3 "$TMP/s.log"))"
  DAEMON=$RRDCACHED_TCP
  collector_ports
  DATA=$TMP/c
  cat >"$TMP/c.conf" <<CONF
[collector]

[storage]
backend = rrdcached
daemons = $DAEMON
archives = 1m:6h
write_through = yes
sync_interval = 300
check_max = 0.001
CONF
  check "the collector starts" start_api_collector c --config "$TMP/c.conf" --data-dir "$DATA"
  C=$COLLECTOR_PID
  m() { curl -sf --max-time 10 -H "Authorization: Bearer $ADMIN_TOKEN" "$API/metrics" 2>/dev/null |
    awk -v m="$1" 'index($0, m " ") == 1 || index($0, m "{") == 1 { v += $NF } END { print v + 0 }'; }
  T=$(( $(date -u +%s) / 60 * 60 - 600 ))
  local i
  for i in $(seq 1 "$NS"); do printf 'node%d load.1 %d %d\n' "$i" "$i" "$T"; done >"$TMP/m1"
  for i in $(seq 1 "$NS"); do printf 'node%d load.1 %d %d\n' "$i" "$((i + 100))" "$((T + 60))"; done >"$TMP/m2"
  check "the series are published" "$BIN/vigie" --api "$API" put --project p1 --file "$TMP/m1"
  check "... and a second minute" "$BIN/vigie" --api "$API" put --project p1 --file "$TMP/m2"
  written() { [[ $(m vigie_store_values_written_total) -ge $((2 * NS)) && $(m vigie_store_values_pending) -eq 0 ]]; }
  check "the daemon took them (written through, not synced)" wait_for 30 written
  diag "written $(m vigie_store_values_written_total), journal segments $(find "$DATA/journal" -name '*.vgj' | wc -l)"
  kill -KILL "$C"; wait "$C" 2>/dev/null
  local rd_dir=$RRDCACHED_DIR
  kill -KILL "$RRDCACHED_PID"; wait "$RRDCACHED_PID" 2>/dev/null
  rm -f "$rd_dir"/journal/*
  restart_rrdcached s "$rd_dir" "$RRDCACHED_PORT" -O -R || bail "rrdcached did not restart ($(tail -3 "$TMP/s.log"))"
  # what the files hold (read without the daemon, which holds nothing)
  local held=0 f
  for i in $(seq 1 $((NS < 40 ? NS : 40))); do
    f=$RRDCACHED_BASE/custom/node$i/load.1.rrd
    [[ $(env -u RRDCACHED_ADDRESS rrdtool info "$f" | awk '$1 == "last_update" { print $3 }') -lt $((T + 60)) ]] ||
      held=$((held + 1))
  done
  eq "the daemon lost them: no file (of the first 40) holds the second minute" "$held" 0
}
