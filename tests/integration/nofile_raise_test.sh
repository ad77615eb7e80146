#!/usr/bin/env bash
# nofile_raise_test.sh — both daemons raise their soft limit of open files
# to the hard one at start and say it once (docs/operations.md "Open
# files"). Started with a soft limit of 256 and a hard one of 4096, as a
# supervisor without LimitNOFILE may leave them, each must run with 4096:
# the agent did not raise its own. Needs prlimit.
source "$(dirname "$0")/lib.sh"

command -v prlimit >/dev/null || { skip "no prlimit"; done_testing; exit 0; }
trap 'cleanup_all' EXIT
cleanup_all() {
  local p
  for p in "${_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${_pids[@]}"; do wait "$p" 2>/dev/null; done
  cleanup
}

collector_ports APORT
limit_of() { awk -v f="$2" '/Max open files/ { print $f }' "/proc/$1/limits"; }
printf '[storage]\nstep = 60\nheartbeat = 600\narchives = 1m:1d\n' >"$TMP/vigie.conf"

prlimit --nofile=256:4096 "$BIN/vigie-collector" --allow-unsigned --config "$TMP/vigie.conf" \
  --data-dir "$TMP/data" --listen "tcp://127.0.0.1:$PORT" --http "127.0.0.1:$HPORT" \
  >>"$TMP/collector.log" 2>&1 &
COLLECTOR_PID=$!
_pids+=("$COLLECTOR_PID")
check "the collector answers" wait_for 20 answers_health "$HPORT"
eq "the collector runs with its soft limit raised to the hard one" \
  "$(limit_of "$COLLECTOR_PID" 4):$(limit_of "$COLLECTOR_PID" 5)" "4096:4096"
eq "and said so once" "$(grep -c 'open files: limit 4096' "$TMP/collector.log")" 1

# the agent sends to a port nobody listens on: it polls and spools
prlimit --nofile=256:4096 "$BIN/vigie-agent" --collector "tcp://127.0.0.1:$APORT" \
  --libvirt test:///default --interval 1 --host nofile-host --spool "$TMP/spool" \
  >>"$TMP/agent.log" 2>&1 &
AGENT_PID=$!
_pids+=("$AGENT_PID")
check "the agent runs" wait_for 20 grep -q 'polling test:///default' "$TMP/agent.log"
eq "the agent runs with its soft limit raised to the hard one" \
  "$(limit_of "$AGENT_PID" 4):$(limit_of "$AGENT_PID" 5)" "4096:4096"
eq "and said so once" "$(grep -c 'open files: limit 4096' "$TMP/agent.log")" 1
diag "$(grep 'open files' "$TMP/agent.log" "$TMP/collector.log")"

done_testing
