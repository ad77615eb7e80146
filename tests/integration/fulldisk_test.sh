#!/usr/bin/env bash
# fulldisk_test.sh — the collector's data directory fills up.
#
# The data directory is a 1 MiB tmpfs, far too small for the series the
# agent sends (test:///default plus this host's /proc). Once it is full the
# collector must stop acknowledging (answer RETRY, so the agent keeps its
# batches in its spool), say why in its log, keep serving the API, and,
# when space returns (the tmpfs grows to 64 MiB), store everything that
# waited: every poll exactly once and in order, every RRD file readable by
# `rrdtool info`, the registry intact (PRAGMA integrity_check). Needs root
# to mount the tmpfs; skipped otherwise.
source "$(dirname "$0")/lib.sh"

DATA=$TMP/data
mkdir -p "$DATA"
if ! mount -t tmpfs -o size=1m,mode=0755 vigie-fulldisk "$DATA" 2>/dev/null; then
  skip "cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)"
  done_testing
  exit 0
fi
unmount_data() { umount "$DATA" 2>/dev/null || umount -l "$DATA" 2>/dev/null; }
trap 'cleanup_all' EXIT
cleanup_all() {
  local p
  for p in "${_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${_pids[@]}"; do wait "$p" 2>/dev/null; done
  unmount_data
  cleanup
}

collector_ports
SPOOL=$TMP/spool
START=$(( ($(date +%s) - 7200) / 60 * 60 ))
printf '[storage]\nstep = 60\nheartbeat = 600\narchives = 1m:1d\n' >"$TMP/vigie.conf"

check "collector starts on a 1 MiB data directory" start_api_collector collector --config "$TMP/vigie.conf" \
  --data-dir "$DATA" --log-level debug
start_agent agent --collector tcp://127.0.0.1:$PORT --libvirt test:///default --interval 0.1 \
  --host fd-host --spool "$SPOOL" --clock-start $START --clock-step 60 --log-level debug
spooled() { find "$SPOOL" -maxdepth 1 -name '*.vgb' | wc -l; }
check "the disk fills up" wait_for 20 bash -c "[[ \$(df --output=avail -k '$DATA' | tail -1) -lt 64 ]]"
check "the agent spools while the collector answers RETRY" \
  wait_for 20 bash -c "[[ \$(find '$SPOOL' -maxdepth 1 -name '*.vgb' | wc -l) -ge 10 ]]"
diag "spooled while full: $(spooled); data dir: $(df -h --output=used,avail "$DATA" | tail -1)"
check "the agent was told to retry" grep -q 'asked to retry' "$TMP/agent.log"
if grep -qiE 'no space|disk full|storage full' "$TMP/collector.log"; then
  ok "the collector says why it does not acknowledge"
else
  nok "the collector says why it does not acknowledge (no 'no space'/'disk full' in its log)"
fi
check "the API still answers while the disk is full" curl -sf -o /dev/null --max-time 5 "$API/v1/health"
check "collector still running" kill -0 "$COLLECTOR_PID"
check "no batch was rejected" bash -c "[[ ! -d '$SPOOL/rejected' || -z \$(ls -A '$SPOOL/rejected') ]]"

mount -o remount,size=64m "$DATA"
check "the spool drains once space returns" \
  wait_for 60 bash -c "[[ \$(find '$SPOOL' -maxdepth 1 -name '*.vgb' | wc -l) -le 1 ]]"
stop_pid "$AGENT_PID"; rc=$?
eq "agent exits 0 on SIGTERM" "$rc" 0
sleep 0.3
eq "agent's spool is empty" "$(spooled)" 0
stop_pid "$COLLECTOR_PID"; rc=$?
eq "collector exits 0 on SIGTERM" "$rc" 0

seqs=$(grep -o 'accepted batch host=fd-host stream=[0-9a-f]* seq=[0-9]*' "$TMP/collector.log" | sed 's/.*seq=//')
n=$(grep -c . <<<"$seqs")
diag "accepted $n batches"
check "some batches were accepted" test "$n" -ge 10
eq "no batch accepted twice" "$(sort -n <<<"$seqs" | uniq -d | wc -l)" 0
eq "batches accepted in order, none missing (1..$n)" "$(tr '\n' ' ' <<<"$seqs")" "$(seq 1 "$n" | tr '\n' ' ')"
eq "registry remembers the last acknowledged seq" \
  "$(sqlite3 "$DATA/registry.db" "select last_seq from streams where host='fd-host'")" "$n"
eq "registry passes PRAGMA integrity_check" "$(sqlite3 "$DATA/registry.db" 'PRAGMA integrity_check')" ok
bad=0; files=0
while IFS= read -r -d '' f; do
  files=$((files + 1))
  rrdtool info "$f" >/dev/null 2>&1 || { bad=$((bad + 1)); diag "unreadable: $f"; }
done < <(find "$DATA/rrd" -name '*.rrd' -print0)
check "rrd files were written ($files)" test "$files" -ge 10
eq "rrdtool info reads every file" "$bad" 0
eq "no half-created file is left" "$(find "$DATA" -name '*.tmp' | wc -l)" 0
done_testing
