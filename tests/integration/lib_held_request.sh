# tests/integration/lib_held_request.sh — the set-up of the tests of the
# per-project cap on requests in flight, and the request that holds a
# place in it (sourced; sources lib.sh).
#
# Why a file of its own: cli_retry_test.sh and console_busy_test.sh both
# start a collector with [collector] http_max_concurrent_per_project = 1
# and http_queue_per_project = 0 (no queue) over one rrdcached, publish
# one point of project shop, and fill a token's one place with a real
# request: a GET /v1/measures of that point while the daemon is stopped
# (SIGSTOP: it keeps its connections and answers nothing), which waits for
# the daemon, up to the collector's 10 s bound on a daemon's answer.
# SIGCONT ends it. Only what they refuse meanwhile (the CLI, the console)
# differs.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# start_capped_collector NAME: rrdcached NAME (-R; RRDCACHED_PID), the
# collector capped at one request in flight per project with no queue
# (a request over the cap is the 429 at once), TOK a token of
# project shop, which publishes q1 depth 5 (two checks)
start_capped_collector() {
  start_rrdcached "$1" -R || bail "rrdcached did not start ($(tail -3 "$TMP/$1.log"))"
  collector_ports
  DATA=$TMP/data
  # no queue (http_queue_per_project = 0): what is tested is the client's
  # handling of the cap's 429, which the queue would make wait first
  printf '[collector]\nhttp_max_concurrent_per_project = 1\nhttp_queue_per_project = 0\n[storage]\nbackend = rrdcached\ndaemons = %s\n' \
    "$RRDCACHED_UNIX" >"$TMP/vigie.conf"
  check "collector starts (cap of 1 request in flight per project)" \
    start_api_collector collector --config "$TMP/vigie.conf" --data-dir "$DATA"
  offline_token TOK "$DATA" --project shop
  check "shop publishes a point" "$BIN/vigie" --api "$API" --token "$TOK" put q1 depth 5 --time -2m
}

# metric NAME: its value on /metrics, read with the admin token (the admin
# tokens have a bucket of their own)
metric() { curl -q -s --max-time 10 -H "Authorization: Bearer $ADMIN_TOKEN" "$API/metrics" |
  awk -v n="$1" '$1 == n {print $2}'; }
all_stopped() { local f; for f in /proc/$RRDCACHED_PID/task/*/stat; do
  [[ $(sed 's/.*) //' "$f" | cut -c1) == [Tt] ]] || return 1; done; }
# hold TOKEN NAME: the daemon stopped, a GET of q1 with TOKEN waits for it,
# holding that token's place; its answer goes to $TMP/held.NAME, its HTTP
# code to $TMP/held.NAME.code. It waits only on a connection the
# collector already holds (a new one's PING gives up in 1 s, then 503:
# /v1/health would list the daemon down): a read first leaves one idle,
# and a GET answered at once anyway (the storage thread took that
# connection meanwhile) is tried again. A hold is one still waiting 2 s
# on (and, when HOLD_ALSO names a command, for which it succeeds then).
# Sets HELD (the curl's pid); returns 1 after 5 tries.
hold() {
  local try
  for try in 1 2 3 4 5; do
    wait_for 30 bash -c "curl -q -s -o /dev/null -w '%{http_code}' --max-time 20 \
      -H 'Authorization: Bearer $1' '$API/v1/measures?resource=q1&metric=depth&start=-1h' |
      grep -qx 200" || return 1
    kill -STOP "$RRDCACHED_PID" && wait_for 30 all_stopped || return 1
    curl -q -s -o "$TMP/held.$2" -w '%{http_code}' --max-time 60 -H "Authorization: Bearer $1" \
      "$API/v1/measures?resource=q1&metric=depth&start=-1h" >"$TMP/held.$2.code" &
    HELD=$!
    _pids+=("$HELD")
    sleep 2
    kill -0 "$HELD" 2>/dev/null && ${HOLD_ALSO:-true} && return 0
    diag "hold $2, try $try: answered at once ($(cat "$TMP/held.$2.code" "$TMP/held.$2" 2>&1))"
    kill -CONT "$RRDCACHED_PID"
    wait "$HELD"
  done
  return 1
}
# release: the daemon goes on, the held request ends
release() { kill -CONT "$RRDCACHED_PID"; wait "$HELD" 2>/dev/null; }
