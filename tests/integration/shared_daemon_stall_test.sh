#!/usr/bin/env bash
# shared_daemon_stall_test.sh — two collectors on one PostgreSQL state and
# one rrdcached (write-through: shared daemons); the daemon is stalled
# (SIGSTOP: it keeps its connections and answers nothing) while the
# primary collector's receiver holds verified connections to it, and an
# agent with ack_timeout_ms = 4000 sends to that primary.
#
# Why. The receiver writes each batch through to the daemon before its
# ack. A daemon that stalls behind a connection the receiver already holds
# used to hold the receiver for the client's I/O timeout (10 s): the ack
# came after the agent's ack timeout, the agent moved to the other
# collector, which wrote the host's newer values first, and the primary's
# older values could then be refused by the files (docs/scaling.md). The
# receiver's waits on a daemon are bounded by a quarter of
# [agent] ack_timeout_ms (here 1 s); what it could not write is left in the
# journal and cache to the storage thread.
#
# Checks: batches are acknowledged while the daemon is stopped, the agent
# never reports an ack timeout (it stays on its collector), and after
# SIGCONT every series of the domains holds one point per poll (rrdtool
# fetch on the daemon's files once both collectors and the daemon
# stopped cleanly): nothing lost, nothing written twice (a value written
# twice would be refused by RRD and counted, a missing one shows here).
# Without the bound the first batch after the SIGSTOP waits 10 s and the
# agent times out at 4 s.
#
# Then new series on the stalled daemon: with the first agent done (its
# collector's receiver holds idle verified connections), the daemon is
# stopped again and a second agent (another host, other domains: every
# series is new) sends to that collector. Opening a new series reads its
# last update and creates it on the daemon from the receiver; those waits
# are bounded too, and a timeout there answers the batch RETRY (nothing
# journaled or acknowledged; a create cut short is redone, never over an
# existing file). Checks: the second agent never reports an ack timeout,
# its batches are answered RETRY and nothing of its host is acknowledged
# while the daemon is stopped, the RETRY is counted
# (vigie_store_batches_retry_total{reason="new_series"}), and after
# SIGCONT every batch is stored: its series, like the first agent's, hold
# one point per poll. Without the bound on the opens the first batch
# waited 10 s on a held connection and the agent timed out at 4 s.
# SKIP, with the reason, only when PostgreSQL or rrdcached cannot run.
source "$(dirname "$0")/lib.sh"

require rrdcached jq
start_shared_state
sql() { psql "$STATE" -X -q -A -t -c "$1" 2>/dev/null; }

POLLS=${POLLS:-40}
DOMAINS=${DOMAINS:-20}
ACK_MS=4000
HOST=st-host
START=$(( ($(date -u +%s) - 6 * 3600) / 60 * 60 ))
END=$((START + (POLLS - 1) * 60))

start_rrdcached s -O -R || bail "rrdcached starts"
RD_DIR=$RRDCACHED_DIR RD_PID=$RRDCACHED_PID RD_PORT=$RRDCACHED_PORT
ok "rrdcached up (127.0.0.1:$RD_PORT)"

declare -a CP CH CPID
used=" "
for i in 0 1; do
  for v in P H; do
    p=$(free_port); while [[ $used == *" $p "* ]]; do p=$(free_port); done
    used+="$p "
    [[ $v == P ]] && CP[$i]=$p || CH[$i]=$p
  done
  # [agent] ack_timeout_ms here is what the collector bounds its
  # write-through by: the agents' value
  state_conf "$TMP/c$i.conf" "${CP[$i]}" "${CH[$i]}" "$TMP/c$i" "$TMP/tokens.key" <<CONF
[storage]
backend = rrdcached
daemons = 127.0.0.1:$RD_PORT
archives = 1m:6h
heartbeat = 90
[agent]
ack_timeout_ms = $ACK_MS
[log]
level = debug
CONF
  mkdir -p "$TMP/c$i"
done
ADMIN_TOKEN=$("$BIN/vigie-collector" --config "$TMP/c0.conf" token create --admin --name it 2>>"$TMP/token.err")
for i in 0 1; do
  start_collector "c$i" --config "$TMP/c$i.conf"
  CPID[$i]=$COLLECTOR_PID
  check "collector $i answers /v1/health" wait_for 20 answers_health "${CH[$i]}"
done

cat >"$TMP/agent.conf" <<CONF
[agent]
collectors = tcp://127.0.0.1:${CP[0]}, tcp://127.0.0.1:${CP[1]}
ack_timeout_ms = $ACK_MS
probe_interval_ms = 300
drain_ms = 120000
host_fs = false
CONF
{ echo "<node>"
  for ((i = 0; i < DOMAINS; i++)); do
    printf "<domain type='test'><name>vm%d</name><uuid>%08x-0000-4000-8000-%012x</uuid>" "$i" "$i" "$i"
    printf "<memory unit='KiB'>1048576</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices>"
    printf "<disk type='file' device='disk'><source file='/guest/vm%d.img'/><target dev='vda' bus='virtio'/></disk>" "$i"
    printf "<interface type='ethernet'><mac address='52:54:00:00:%02x:%02x'/><target dev='tap%d'/></interface></devices></domain>\n" \
      $((i >> 8)) $((i & 255)) "$i"
  done
  echo "</node>"; } >"$TMP/node.xml"
start_agent agent --config "$TMP/agent.conf" --libvirt "test://$TMP/node.xml" --interval 0.3 \
  --proc "$ROOT/tests/fixtures/proc" --host $HOST --spool "$TMP/spool" --clock-start "$START" \
  --clock-step 60 --count "$POLLS" --log-level debug
AG=$AGENT_PID
# SIGSTOP the daemon and wait until each of its threads is stopped (they
# stop one after the other; on a loaded machine one woken by a command
# could still answer it meanwhile)
all_stopped() { local f; for f in /proc/$RD_PID/task/*/stat; do
  [[ $(sed 's/.*) //' "$f" | cut -c1) == [Tt] ]] || return 1; done; }
stall_daemon() { kill -STOP "$RD_PID" && wait_for 10 all_stopped; }
seq_of() { sql "SELECT coalesce(max(last_seq), 0) FROM vigie_registry.streams WHERE host = '$1'"; }
seq_now() { seq_of "$HOST"; }
reached() { [[ $(seq_now) -ge $1 ]]; }
Q=$((POLLS / 4))
check "the agent's batches are acknowledged (seq >= $Q)" wait_for 60 reached $Q
moves_before=$(grep -c 'did not acknowledge in time' "$TMP/agent.log")

# ---- the daemon stalls behind the receiver's connections ----
check "the daemon is stopped" stall_daemon
s1=$(seq_now)
diag "$(date -u +%T.%N | cut -c1-12) daemon stopped at seq $s1"
check "batches are acknowledged while the daemon is stopped" wait_for 30 reached $((s1 + 6))
diag "$(date -u +%T.%N | cut -c1-12) seq $(seq_now) with the daemon stopped"
kill -CONT "$RD_PID"
moves=$(($(grep -c 'did not acknowledge in time' "$TMP/agent.log") - moves_before))
eq "no ack timeout while the daemon was stopped (the agent stayed)" "$moves" 0

# ---- the agent runs to the end ----
for _ in $(seq 1200); do kill -0 "$AG" 2>/dev/null || break; sleep 0.1; done
kill -0 "$AG" 2>/dev/null && kill -TERM "$AG"
wait "$AG"; eq "the agent exits 0 after $POLLS polls" "$?" 0
eq "its spool is empty (every batch acknowledged)" \
  "$(find "$TMP/spool" -maxdepth 1 -name '*.vgb' | wc -l)" 0
eq "the shared registry ends at seq $POLLS" "$(seq_now)" "$POLLS"

# ---- new series while the daemon is stalled ----
NEWHOST=st-new
PRIMARY=$(sed -n 's|.*sending to \(tcp://[0-9.:]*\).*|\1|p' "$TMP/agent.log" | head -1)
P=0; [[ $PRIMARY == "tcp://127.0.0.1:${CP[1]}" ]] && P=1
check "the first agent's primary is a collector ($PRIMARY)" test "$PRIMARY" = "tcp://127.0.0.1:${CP[$P]}"
metric() { curl -sf --max-time 10 -H "$(api_auth)" "http://127.0.0.1:${CH[$P]}/metrics" 2>/dev/null |
  awk -v m="$1" 'index($0, m " ") == 1 { v = $NF } END { print v + 0 }'; }
# the storage thread's sync done: the daemon is stopped with the receiver's
# idle connections open and no other wait on it
synced() { [[ $(metric "vigie_storage_daemon_pending_files{daemon=\"127.0.0.1:$RD_PORT\"}") == 0 ]]; }
check "the primary's files are all flushed" wait_for 30 synced
retry0=$(metric 'vigie_store_batches_retry_total{reason="new_series"}')
cat >"$TMP/agent2.conf" <<CONF
[agent]
collectors = $PRIMARY
ack_timeout_ms = $ACK_MS
drain_ms = 120000
host_fs = false
CONF
{ echo "<node>"
  for ((i = 0; i < DOMAINS; i++)); do
    printf "<domain type='test'><name>nvm%d</name><uuid>%08x-0000-4000-9000-%012x</uuid>" "$i" "$i" "$i"
    printf "<memory unit='KiB'>1048576</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices>"
    printf "<disk type='file' device='disk'><source file='/guest/nvm%d.img'/><target dev='vda' bus='virtio'/></disk>" "$i"
    printf "<interface type='ethernet'><mac address='52:54:00:01:%02x:%02x'/><target dev='tap%d'/></interface></devices></domain>\n" \
      $((i >> 8)) $((i & 255)) "$i"
  done
  echo "</node>"; } >"$TMP/node2.xml"
check "the daemon is stopped" stall_daemon
diag "$(date -u +%T.%N | cut -c1-12) daemon stopped again; a new host's agent starts"
start_agent agent2 --config "$TMP/agent2.conf" --libvirt "test://$TMP/node2.xml" --interval 0.3 \
  --proc "$ROOT/tests/fixtures/proc" --host $NEWHOST --spool "$TMP/spool2" --clock-start "$START" \
  --clock-step 60 --count "$POLLS" --log-level debug
AG2=$AGENT_PID
retries() { grep -c ': RETRY$' "$TMP/agent2.log"; }
retried() { [[ $(retries) -ge $1 ]]; }
check "the new host's batches are answered RETRY while the daemon is stopped" wait_for 40 retried 3
eq "nothing of the new host is acknowledged while the daemon is stopped" "$(seq_of $NEWHOST)" 0
kill -CONT "$RD_PID"
diag "$(date -u +%T.%N | cut -c1-12) daemon continues after $(retries) RETRY answer(s)"
for _ in $(seq 1200); do kill -0 "$AG2" 2>/dev/null || break; sleep 0.1; done
kill -0 "$AG2" 2>/dev/null && kill -TERM "$AG2"
wait "$AG2"; eq "the new host's agent exits 0 after $POLLS polls" "$?" 0
eq "its spool is empty (every batch acknowledged)" \
  "$(find "$TMP/spool2" -maxdepth 1 -name '*.vgb' | wc -l)" 0
eq "the shared registry ends at seq $POLLS for the new host" "$(seq_of $NEWHOST)" "$POLLS"
eq "no ack timeout for the new host's agent" "$(grep -c 'no ack in time' "$TMP/agent2.log")" 0
retry1=$(metric 'vigie_store_batches_retry_total{reason="new_series"}')
check "the RETRY of new series is counted ($retry0 -> $retry1)" test "$retry1" -gt "$retry0"

for i in 0 1; do
  m=$(curl -sf --max-time 10 -H "$(api_auth)" "http://127.0.0.1:${CH[$i]}/metrics" 2>/dev/null | grep -E '^vigie_store_(values_(duplicate|resent)|batches_retry)' | tr '\n' ' ')
  diag "collector $i: $m"
done
for i in 0 1; do stop_pid "${CPID[$i]}"; done
stop_pid "$RD_PID" # SIGTERM: rrdcached writes every file

# ---- every series: one point per poll ----
(cd "$RD_DIR/base" && find instance disk nic -name '*.rrd' 2>/dev/null | sort) >"$TMP/series.list"
nser=$(wc -l <"$TMP/series.list")
check "both hosts' instance series are on the daemon ($nser)" test "$nser" -ge 20
eq "the new host's domains have their series" "$(grep -c '^instance/0000000[0-9a-f]-0000-4000-9000' "$TMP/series.list" | awk '{print ($1 > 0)}')" 1
sed "s|^|fetch $RD_DIR/base/|; s|$| AVERAGE -r 60 -s $((START - 600)) -e $((END + 600))|" "$TMP/series.list" |
  rrdtool - 2>&1 | awk -v s="$START" -v e="$END" -v n="$POLLS" '
  FNR == NR { name[++nn] = $0; next }
  /^ *value/ { f++; inw[f] = 0; next }
  /^[0-9]+: / { t = $1 + 0; if ($2 == "nan" || $2 == "-nan") next
                if (t > s && t <= e) inw[f]++ }
  END { bad = 0
        for (i = 1; i <= f; i++) {
          want = name[i] ~ /\/cpu\.util\.rrd$/ ? n - 2 : n - 1
          if (inw[i] != want) {
            bad++
            if (bad <= 5) printf "%s: %d points in the polls (want %d)\n", name[i], inw[i], want > "/dev/stderr"
          }
        }
        printf "%d %d\n", f, bad }' "$TMP/series.list" - >"$TMP/points.out" 2>"$TMP/points.err"
read -r nf nbad <"$TMP/points.out"
eq "rrdtool read every file" "$nf" "$nser"
eq "every series holds one point per poll, none missing" "$nbad" 0
[[ -s $TMP/points.err ]] && diag "$(head -5 "$TMP/points.err")"
grep -h -E 'did not acknowledge in time|back on this host|no ack in time' "$TMP/agent.log" "$TMP/agent2.log" | head -6 | while read -r l; do diag "$l"; done
done_testing
