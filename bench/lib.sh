# bench/lib.sh — what the benchmark scripts that start their own
# collector share (sourced by api_bench.sh and query_bench.sh).

# bench_dir NAME: a fresh directory "$BASE/vigie-NAME.XXXXXX" in DIR,
# removed on exit after the collector whose pid the script puts in CPID
# (if any) has stopped.
bench_dir() {
  DIR=$(mktemp -d "$BASE/vigie-$1.XXXXXX")
  CPID=
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  [[ -n $CPID ]] && { kill -TERM "$CPID" 2>/dev/null; wait "$CPID" 2>/dev/null; }
  rm -rf "$DIR"
}

free_port() { # a loopback TCP port below the ephemeral range, in no TCP state
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    ss -Htan "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
  done
}

# bench_collector DATA LOG [ARGS...]: an administrator's token made offline
# for the data dir DATA in TOKEN, then $COLLECTOR (by default this build's
# vigie-collector) started on DATA with ARGS, agents and API on free
# loopback ports, its output in LOG; its pid in CPID (bench_cleanup stops
# it), its API's URL in API. Returns 1 when its /v1/health does not answer
# within 10 s.
bench_collector() {
  local data=$1 log=$2 bin=${COLLECTOR:-$BUILD/bin/vigie-collector} hp np
  shift 2
  TOKEN=$("$bin" --data-dir "$data" token create --admin --name bench 2>/dev/null)
  hp=$(free_port); np=$(free_port)
  "$bin" --allow-unsigned --listen "tcp://127.0.0.1:$np" --http "127.0.0.1:$hp" \
    --data-dir "$data" "$@" >"$log" 2>&1 &
  CPID=$!
  API=http://127.0.0.1:$hp
  for _ in $(seq 100); do curl -q -sf "$API/v1/health" >/dev/null && return 0; sleep 0.1; done
  return 1
}
