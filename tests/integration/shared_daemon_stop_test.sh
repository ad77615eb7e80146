#!/usr/bin/env bash
# shared_daemon_stop_test.sh — a collector stopped (SIGTERM) at once after
# its storage daemon came back writes the values it held for it before it
# exits. Two collectors on one PostgreSQL state and one rrdcached; the
# daemon is killed (-9) while an agent sends; once the agent ended its
# polls the daemon restarts and both collectors are stopped right away.
#
# Why. While the daemon is down or stalled the host's collector
# acknowledges the batches with their values in its journal and cache,
# and its storage thread tries the daemon again every second or two
# (each series waits RETRY_UNREACHABLE_MS after a failed write, the
# backend answers the daemon unreachable during its back-off). The stop's
# last write went over the cache once: every series still in that wait
# was skipped, although the daemon answered again, and the collector
# exited with them in its journal. The files then lacked every poll after
# the fault until the collector's next start replayed them: 2 of 11 runs
# of shared_daemon_fault_test.sh under load (its agent, after a failover
# of its first batch, sent a backlog and ended about a second after the
# daemon continued), and every run of this test. docs/scaling.md "Adding
# or removing a collector": SIGTERM writes what the journal holds.
#
# Checks: every batch acknowledged (spool empty); after the stop of both
# collectors and of the daemon, every series holds one point per poll
# (rrdtool fetch on the daemon's files) and no collector's journal holds
# a segment. SKIP, with the reason, only when PostgreSQL or rrdcached
# cannot run.
source "$(dirname "$0")/lib_shared_daemon.sh"

POLLS=${POLLS:-12}
DOMAINS=${DOMAINS:-10}
ACK_MS=${ACK_MS:-3000}
HOST=sd-stop
start_shared_daemon
start_shared_collectors

agent_conf "$TMP/agent.conf"
node_xml "$TMP/node.xml" "$DOMAINS" vm 8100 01
start_host_agent agent "$TMP/agent.conf" "$TMP/node.xml" $HOST "$TMP/spool" 0.3
AG=$AGENT_PID
check "the agent's batches are acknowledged (seq >= 3)" wait_for 60 reached 3

# ---- kill -9 the daemon: batches go on, their values wait ----
kill -KILL "$RD_PID"; wait "$RD_PID" 2>/dev/null
s0=$(seq_now)
diag "daemon killed at seq $s0"
check "batches are acknowledged while the daemon is down" wait_for 30 reached $((s0 + 3))
# ---- the agent ends while the daemon is down ----
agent_ends "$AG" "$TMP/spool" 600
eq "the shared registry ends at seq $POLLS" "$(seq_now)" "$POLLS"
# the storage threads' tries fail meanwhile: their back-off grows
sleep 2
# ---- the daemon restarts and both collectors are stopped at once ----
restart_rrdcached s "$RD_DIR" "$RD_PORT" -O -R || nok "the daemon restarts"
RD_PID=$RRDCACHED_PID
kill -TERM "${CPID[0]}" "${CPID[1]}"
stop_shared

# ---- every series: one point per poll; no journal left ----
series_on_daemon
check "the instance's series are on the daemon ($nser)" test "$nser" -ge 10
one_point_per_poll
eq "no collector's journal holds a segment" \
  "$(find "$TMP/c0/journal" "$TMP/c1/journal" -name '*.vgj' 2>/dev/null | wc -l)" 0
grep -h 'store: values flushed' "$TMP/c0.log" "$TMP/c1.log" | while read -r l; do diag "$l"; done
done_testing
