#!/usr/bin/env bash
# shared_daemon_fault_test.sh — two collectors on one PostgreSQL state
# and one rrdcached; the daemon is killed (-9), restarted on its journal
# and stalled at once (SIGSTOP: it takes connections and answers
# nothing) while an agent of $DOMAINS domains (default 60: ~1,500
# series) sends to its primary collector. Every acknowledged value must be in its
# file once.
#
# Why. While a daemon is down the primary acknowledges the batches with
# their values in its journal and cache (docs/operations.md "Storage on
# rrdcached"). If the primary's receiver thread then waits on that daemon
# (connecting to it, or verifying on a new connection every file sent to
# it before its restart) past the agent's ack timeout, the agent moves to
# the other collector, which writes the host's newer values to the files
# first; the primary's older values then reach files that have moved past
# them, and an RRD refuses them: acknowledged values lost to a single
# fault (the cluster test lost polls 20-21 of a series this way). The
# receiver must never wait on a daemon: what needs a connection is left
# to the storage thread.
#
# Checks: the agent's batches are all acknowledged (spool empty) and the
# agent never changed collector during the fault; afterwards every series
# of the domains holds one point per poll, none missing (rrdtool fetch
# on the daemon's files, after both collectors and the daemon stopped
# cleanly). The host's figures come from a fixed /proc, so every series
# is in every poll: a series new to a collector while the daemon is down
# is answered RETRY (it cannot be created), which is not this test's case.
# Before the fix (the primary's receiver reconnecting and checking the
# ~1,500 files sent before the restart itself) the agent moved and series
# missed minutes. A daemon that stalls behind a connection the receiver
# already holds is shared_daemon_stall_test.sh's case (here the storage
# thread would have to reconnect in the moment between the restart and
# the SIGSTOP). SKIP, with the reason, only when PostgreSQL
# or rrdcached cannot run.
source "$(dirname "$0")/lib_shared_daemon.sh"

POLLS=${POLLS:-40}
DOMAINS=${DOMAINS:-60}
# 3 s, not 1.5: the first batch creates ~1,500 files, and under load it
# took more than 1.5 s, the agent moved to the other collector, which then
# created the series; its primary, back for the next batch, had never
# opened them, and a series new to a collector while the daemon is down is
# answered RETRY (above): 30 s of RETRY, not the case under test (1 of 42
# runs three at a time). The receiver's bound on the daemon is 1.25 s
# (the collectors' default), still well below either.
ACK_MS=${ACK_MS:-3000}
HOST=sd-host
start_shared_daemon
start_shared_collectors

agent_conf "$TMP/agent.conf"
node_xml "$TMP/node.xml" "$DOMAINS" vm 8000 00
start_host_agent agent "$TMP/agent.conf" "$TMP/node.xml" $HOST "$TMP/spool" 0.3
AG=$AGENT_PID
Q=$((POLLS / 5))
check "the agent's batches are acknowledged (seq >= $Q)" wait_for 60 reached $Q
moves_before=$(grep -c 'did not acknowledge in time' "$TMP/agent.log")

# ---- kill -9 the daemon: batches go on, their values wait ----
kill -KILL "$RD_PID"; wait "$RD_PID" 2>/dev/null
s0=$(seq_now)
diag "$(date -u +%T.%N | cut -c1-12) daemon killed at seq $s0"
check "batches are acknowledged while the daemon is down" wait_for 30 reached $((s0 + 3))
# ---- it restarts (its -j journal replayed) and stalls at once ----
restart_rrdcached s "$RD_DIR" "$RD_PORT" -O -R || nok "the daemon restarts"
RD_PID=$RRDCACHED_PID
kill -STOP "$RD_PID"
s1=$(seq_now)
diag "$(date -u +%T.%N | cut -c1-12) daemon restarted and stopped at seq $s1"
check "batches are acknowledged while the daemon is stalled" wait_for 30 reached $((s1 + 6))
kill -CONT "$RD_PID"
diag "$(date -u +%T.%N | cut -c1-12) daemon continued at seq $(seq_now)"
moves=$(($(grep -c 'did not acknowledge in time' "$TMP/agent.log") - moves_before))
eq "the agent stayed on its collector through the daemon's fault" "$moves" 0

# ---- the agent runs to the end ----
agent_ends "$AG" "$TMP/spool" 1200
eq "the shared registry ends at seq $POLLS" "$(seq_now)" "$POLLS"
store_diag '^vigie_store_values_(duplicate|resent)'
stop_shared

# ---- every series: one point per poll ----
series_on_daemon
check "the instance's series are on the daemon ($nser)" test "$nser" -ge 10
one_point_per_poll
grep -h -E 'did not acknowledge in time|back on this host' "$TMP/agent.log" | head -6 | while read -r l; do diag "$l"; done
done_testing
