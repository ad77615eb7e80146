#!/usr/bin/env bash
# held_host_test.sh — two collectors on one PostgreSQL state and one
# rrdcached; while the daemon is down the collector the host is on
# acknowledges its host's batches with their values held in its journal
# and cache, then stops answering (kill -STOP: an ack slower than the
# agent's ack timeout, as a loaded machine gives), so the host's next
# batches go to the other collector. Every acknowledged value must be in
# its file once.
#
# Why. An RRD takes only values newer than its last update. If the
# second collector stored the host's newer batches (they too wait for
# the daemon in its cache) and wrote them when the daemon is back, the
# first collector's older values, reaching the files after them, were refused as
# duplicates: acknowledged values lost (the cluster test's last loss,
# docs/scaling.md). The holder marks the host in the shared state while
# it holds values a daemon has not taken; the other collector answers the
# host's batches RETRY (vigie_receiver_batches_held_elsewhere_total)
# until the holder wrote them and cleared its mark.
#
# Steps: the host's first batches go to both collectors (the one taking
# them is stopped for a moment), so each knows every series; the daemon is
# killed (-9); a collector acknowledges batches holding their values
# (its mark is in the state: the test reads which one it names); it is
# stopped; the agent moves to the other
# collector, which answers RETRY while the mark holds; the daemon is
# restarted and the other collector's cache drains (before the fix it
# wrote the host's newer values here); the holder continues, writes its
# values and clears its mark; the agent runs to the end. Checks: the
# other collector answered RETRY for the held host, the mark is gone at
# the end, the agent's spool is empty, and every series holds one point
# per poll (rrdtool fetch on the daemon's files). SKIP, with the reason,
# only when PostgreSQL or rrdcached cannot run.
source "$(dirname "$0")/lib_shared_daemon.sh"

POLLS=${POLLS:-60}
DOMAINS=${DOMAINS:-3}
ACK_MS=${ACK_MS:-1000}
HOST=held-host
start_shared_daemon
# a holding mark lasts [cluster] hold_max (6 h) unless renewed: far
# longer than the holder is stopped here, however loaded the machine
start_shared_collectors

start_test_agent 8000 2

# ---- each collector learns the host's series (files verified) ----
both_collectors_learn
received() { [[ $(metric "$1" vigie_collector_batches_received_total) -ge $2 ]]; }

# ---- the daemon dies: a collector acknowledges, holding the values ----
kill_daemon_until_marked
# which collector the mark names (its node name ends with its listen
# address): the host can have moved while the daemon was down (an ack
# slower than the agent's timeout on a loaded machine), and then the
# first collector that acknowledged its batches holding values is its
# holder — the other's mark of the same moment is refused (one holder at
# a time). The holder is the collector stopped below, whichever it is.
h=$(holder_idx)
diag "held by: $(holder) (collector $h)"
# P: the holder, S: the other
if [[ $h == 1 ]]; then P=1 S=0; else P=0 S=1; fi

# ---- the holder stops answering: the host's batches go to the other ----
ss=$(metric "$S" vigie_collector_samples_received_total) # its acknowledged samples
kill -STOP "${CPID[$P]}"
# the mark may have changed hands between the check above and the stop:
# read it again now that its holder cannot renew, clear or move it (it
# lasts far longer than the stop)
eq "the stopped collector holds the host's mark" "$(holder_idx)" "$P"
s1=$(seq_now)
rs=$(metric "$S" vigie_collector_batches_received_total)
check "the other collector gets the host's batches" wait_for 30 received "$S" $((rs + 3))
# ---- the daemon is back; the other collector writes what it holds ----
restart_rrdcached s "$RD_DIR" "$RD_PORT" -O -R || nok "the daemon restarts"
RD_PID=$RRDCACHED_PID
drained() { [[ $(metric "$S" vigie_store_values_pending) -eq 0 ]]; }
check "the other collector holds no value for the daemon" wait_for 30 drained
sleep 1 # its storage thread's writes reach the daemon
held_n=$(metric "$S" vigie_receiver_batches_held_elsewhere_total)
diag "while the holder was stopped: seq $s1 -> $(seq_now), the other answered $held_n batches RETRY (held)"
check "the other collector answered the held host's batches RETRY" test "$held_n" -ge 1
eq "it acknowledged none of them" "$(metric "$S" vigie_collector_samples_received_total)" "$ss"
if ((held_n < 1)); then # what each collector said of its marks (level = debug)
  for i in 0 1; do
    diag "collector $i (listen ${CP[$i]}): $(grep -E 'acknowledged with values|may move again|answered RETRY' \
      "$TMP/c$i.log" | cut -c12-20,37-110 | head -6 | tr '\n' ';')"
  done
fi
kill -CONT "${CPID[$P]}"
unmarked() { [[ -z $(holder) ]]; }
check "the holder wrote its values and cleared its mark" wait_for 60 unmarked

# ---- the agent runs to the end ----
agent_ends "$AG" "$TMP/spool" 1500
eq "the shared registry ends at seq $POLLS" "$(seq_now)" "$POLLS"
for i in 0 1; do
  diag "collector $i: duplicate values $(metric "$i" vigie_store_values_duplicate_total)," \
    "held elsewhere $(metric "$i" vigie_receiver_batches_held_elsewhere_total)"
done
stop_shared

# ---- every series: one point per poll ----
every_series_one_point
done_testing
