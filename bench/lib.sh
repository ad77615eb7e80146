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
