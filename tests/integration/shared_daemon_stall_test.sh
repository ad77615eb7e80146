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
source "$(dirname "$0")/lib_shared_daemon.sh"

POLLS=${POLLS:-40}
DOMAINS=${DOMAINS:-20}
ACK_MS=4000
HOST=st-host
start_shared_daemon
# [agent] ack_timeout_ms here is what the collector bounds its
# write-through by: the agents' value
start_shared_collectors "[agent]
ack_timeout_ms = $ACK_MS"

agent_conf "$TMP/agent.conf"
node_xml "$TMP/node.xml" "$DOMAINS" vm 8000 00
start_host_agent agent "$TMP/agent.conf" "$TMP/node.xml" $HOST "$TMP/spool" 0.3
AG=$AGENT_PID
# SIGSTOP the daemon and wait until each of its threads is stopped (they
# stop one after the other; on a loaded machine one woken by a command
# could still answer it meanwhile)
all_stopped() { local f; for f in /proc/$RD_PID/task/*/stat; do
  [[ $(sed 's/.*) //' "$f" | cut -c1) == [Tt] ]] || return 1; done; }
stall_daemon() { kill -STOP "$RD_PID" && wait_for 30 all_stopped; }
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
agent_ends "$AG" "$TMP/spool" 1200
eq "the shared registry ends at seq $POLLS" "$(seq_now)" "$POLLS"

# ---- new series while the daemon is stalled ----
NEWHOST=st-new
PRIMARY=$(sed -n 's|.*sending to \(tcp://[0-9.:]*\).*|\1|p' "$TMP/agent.log" | head -1)
P=0; [[ $PRIMARY == "tcp://127.0.0.1:${CP[1]}" ]] && P=1
check "the first agent's primary is a collector ($PRIMARY)" test "$PRIMARY" = "tcp://127.0.0.1:${CP[$P]}"
# the storage thread's sync done: the daemon is stopped with the receiver's
# idle connections open and no other wait on it
synced() { [[ $(metric "$P" "vigie_storage_daemon_pending_files{daemon=\"127.0.0.1:$RD_PORT\"}") == 0 ]]; }
check "the primary's files are all flushed" wait_for 30 synced
retry0=$(metric "$P" 'vigie_store_batches_retry_total{reason="new_series"}')
cat >"$TMP/agent2.conf" <<CONF
[agent]
collectors = $PRIMARY
ack_timeout_ms = $ACK_MS
drain_ms = 120000
host_fs = false
CONF
node_xml "$TMP/node2.xml" "$DOMAINS" nvm 9000 01
check "the daemon is stopped" stall_daemon
diag "$(date -u +%T.%N | cut -c1-12) daemon stopped again; a new host's agent starts"
start_host_agent agent2 "$TMP/agent2.conf" "$TMP/node2.xml" $NEWHOST "$TMP/spool2" 0.3
AG2=$AGENT_PID
retries() { grep -c ': RETRY$' "$TMP/agent2.log"; }
retried() { [[ $(retries) -ge $1 ]]; }
check "the new host's batches are answered RETRY while the daemon is stopped" wait_for 40 retried 3
eq "nothing of the new host is acknowledged while the daemon is stopped" "$(seq_of $NEWHOST)" 0
kill -CONT "$RD_PID"
diag "$(date -u +%T.%N | cut -c1-12) daemon continues after $(retries) RETRY answer(s)"
agent_ends "$AG2" "$TMP/spool2" 1200 "the new host's agent"
eq "the shared registry ends at seq $POLLS for the new host" "$(seq_of $NEWHOST)" "$POLLS"
eq "no ack timeout for the new host's agent" "$(grep -c 'no ack in time' "$TMP/agent2.log")" 0
retry1=$(metric "$P" 'vigie_store_batches_retry_total{reason="new_series"}')
check "the RETRY of new series is counted ($retry0 -> $retry1)" test "$retry1" -gt "$retry0"

store_diag '^vigie_store_(values_(duplicate|resent)|batches_retry)'
stop_shared

# ---- every series: one point per poll ----
series_on_daemon
check "both hosts' instance series are on the daemon ($nser)" test "$nser" -ge 20
eq "the new host's domains have their series" "$(grep -c '^instance/0000000[0-9a-f]-0000-4000-9000' "$TMP/series.list" | awk '{print ($1 > 0)}')" 1
one_point_per_poll
grep -h -E 'did not acknowledge in time|back on this host|no ack in time' "$TMP/agent.log" "$TMP/agent2.log" | head -6 | while read -r l; do diag "$l"; done
done_testing
