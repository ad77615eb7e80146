#!/usr/bin/env bash
# fd_limit_test.sh — the collector runs out of file descriptors.
#
# Unauthenticated peers fill the collector's descriptors (idle TCP
# connections to the agent port, each sending the SP handshake, and to the
# API) while an agent sends a batch every 0.1 s, its clock one minute a
# poll, so every batch needs its RRD files and often a new journal
# segment. The limit is the collector's own (prlimit on its pid, both
# soft and hard, as a unit's LimitNOFILE would set it). The collector must
# acknowledge nothing it could not journal (answer RETRY: the agent keeps
# the batch), never take a temporary shortage for a file's error (no
# write error, no *.kept segment), and once the peers leave, store every
# poll exactly once and in order. Also: at start the soft limit is raised
# to the hard one and said once. Needs prlimit and permission to set
# another process's limit (root or the same user).
source "$(dirname "$0")/lib.sh"

command -v prlimit >/dev/null || { skip "no prlimit"; done_testing; exit 0; }
command -v python3 >/dev/null || { skip "no python3"; done_testing; exit 0; }
trap 'cleanup_all' EXIT
cleanup_all() {
  local p
  [[ -n ${HOG_PID:-} ]] && kill -TERM "$HOG_PID" 2>/dev/null
  for p in "${_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${_pids[@]}"; do wait "$p" 2>/dev/null; done
  cleanup
}

collector_ports
DATA=$TMP/data
SPOOL=$TMP/spool
# 20 h ago, a minute per poll at 10 polls a second: never in the future
START=$(( ($(date +%s) - 72000) / 60 * 60 ))
printf '[storage]\nstep = 60\nheartbeat = 600\narchives = 1m:1d\n' >"$TMP/vigie.conf"
limit_of() { awk -v f="$2" '/Max open files/ { print $f }' "/proc/$1/limits"; }

# A low soft limit, the hard one above it: the start raises it.
start_api_collector collector --config "$TMP/vigie.conf" --data-dir "$DATA"
check "the collector answers" answers_health "$HPORT"
eq "the start raised the soft limit of open files to the hard one" \
  "$(limit_of "$COLLECTOR_PID" 4)" "$(limit_of "$COLLECTOR_PID" 5)"
check "and said so once" grep -q 'open files: limit' "$TMP/collector.log"
stop_pid "$COLLECTOR_PID"

# Now a low limit from the start, soft and hard (a unit's LimitNOFILE).
LIM=300
prlimit --nofile=$LIM:$LIM "$BIN/vigie-collector" --allow-unsigned --config "$TMP/vigie.conf" \
  --data-dir "$DATA" --listen "tcp://127.0.0.1:$PORT" --http "127.0.0.1:$HPORT" \
  --log-level debug >>"$TMP/collector.log" 2>&1 &
COLLECTOR_PID=$!
_pids+=("$COLLECTOR_PID")
check "the collector answers with $LIM open files" wait_for 20 answers_health "$HPORT"
http_limit=$(api /metrics | awk '$1 == "vigie_api_connections_limit" { print $2 }')
eq "the API holds at most (limit - 256) / 2 connections" "$http_limit" $(( (LIM - 256) / 2 ))
check "and says why" grep -q "http: at most $(( (LIM - 256) / 2 )) connections" "$TMP/collector.log"

start_agent agent --collector tcp://127.0.0.1:$PORT --libvirt test:///default --interval 0.1 \
  --host fd-host --spool "$SPOOL" --clock-start $START --clock-step 60 --log-level debug
accepted() { grep -c 'accepted batch host=fd-host' "$TMP/collector.log"; }
check "batches are stored" wait_for 30 bash -c "[[ \$(grep -c 'accepted batch host=fd-host' '$TMP/collector.log') -ge 5 ]]"

# Peers take every descriptor left: API connections first (their limit
# leaves the rest), then idle connections to the agent port.
python3 - "$PORT" "$HPORT" >"$TMP/hog.log" 2>&1 <<'EOF' &
import socket, sys, time
port, hport = int(sys.argv[1]), int(sys.argv[2])
held = []
for p, hello, n in ((hport, b"", 60), (port, b"\x00SP\x00\x00\x30\x00\x00", 400)):
    fails = 0
    for i in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", p), timeout=0.5)
            if hello:
                s.sendall(hello)
            held.append(s)
        except OSError:
            fails += 1
            if fails > 3:
                break
    print("port", p, "held", len(held), flush=True)
print("done", flush=True)
time.sleep(3600)
EOF
HOG_PID=$!
check "the peers hold their connections" wait_for 60 grep -q done "$TMP/hog.log"
diag "$(tr '\n' ' ' <"$TMP/hog.log"); collector fds: $(ls "/proc/$COLLECTOR_PID/fd" | wc -l) of $LIM"
n0=$(accepted)
spooled() { find "$SPOOL" -maxdepth 1 -name '*.vgb' | wc -l; }
# Each batch is either journaled (the segment open, its values waiting in
# the cache for their files) and acknowledged, or answered RETRY and
# spooled: both keep it.
check "the agent's batches go on while the collector has no descriptor" \
  wait_for 30 bash -c "(( \$(grep -c 'accepted batch host=fd-host' '$TMP/collector.log') - $n0 >= 30 ||
                          \$(find '$SPOOL' -maxdepth 1 -name '*.vgb' | wc -l) >= 10 ))"
check "collector still running" kill -0 "$COLLECTOR_PID"
cpu() { awk '{ print $14 + $15 }' "/proc/$COLLECTOR_PID/stat"; }
c0=$(cpu); sleep 2; c1=$(cpu)
diag "accepted while short: $(( $(accepted) - n0 )); spooled: $(spooled); collector CPU over 2 s at the limit: $(( (c1 - c0) * 100 / $(getconf CLK_TCK) / 2 ))% of a core"
if grep -q 'acknowledged anyway' "$TMP/collector.log"; then
  nok "no batch acknowledged that a consumer failed: $(grep -m1 'acknowledged anyway' "$TMP/collector.log")"
else
  ok "no batch acknowledged that a consumer failed"
fi

kill -TERM "$HOG_PID" 2>/dev/null; wait "$HOG_PID" 2>/dev/null; HOG_PID=
check "the spool drains once the peers leave" \
  wait_for 60 bash -c "[[ \$(find '$SPOOL' -maxdepth 1 -name '*.vgb' | wc -l) -le 1 ]]"
check "the API answers again" wait_for 20 answers_health "$HPORT"
metrics=$(api /metrics)
refused=$(awk '$1 == "vigie_api_connections_refused_total" { print $2 }' <<<"$metrics")
check "API connections over the limit were refused and counted ($refused)" test "${refused:-0}" -ge 1
file_errs=$(awk '/^vigie_store_write_errors_total\{reason="file"\}/ { print $2 }' <<<"$metrics")
eq "no value counted as a file's write error" "${file_errs:-0}" 0
stop_pid "$AGENT_PID"; rc=$?
eq "agent exits 0 on SIGTERM" "$rc" 0
eq "agent's spool is empty" "$(spooled)" 0
stop_pid "$COLLECTOR_PID"; rc=$?
eq "collector exits 0 on SIGTERM" "$rc" 0
eq "no journal segment kept (*.kept)" "$(find "$DATA/journal" -name '*.kept' | wc -l)" 0

seqs=$(grep -o 'accepted batch host=fd-host stream=[0-9a-f]* seq=[0-9]*' "$TMP/collector.log" | sed 's/.*seq=//')
n=$(grep -c . <<<"$seqs")
diag "accepted $n batches"
eq "no batch accepted twice" "$(sort -n <<<"$seqs" | uniq -d | wc -l)" 0
eq "batches accepted in order, none missing (1..$n)" "$(tr '\n' ' ' <<<"$seqs")" "$(seq 1 "$n" | tr '\n' ' ')"
# the last poll's minute is in its file: nothing acknowledged went missing
last=$(( START + 60 * (n - 1) ))
f=$(find "$DATA/rrd/host" -path '*fd-host*' -name '*.rrd' | head -1)
check "a host series was written ($f)" test -n "$f"
check "its file holds the last acknowledged poll" \
  bash -c "rrdtool lastupdate '$f' | grep -q '^$last'"
done_testing
