#!/usr/bin/env bash
# verified_wait_test.sh — [cluster] wait_verified with the real
# collectors: a host whose last batch was committed by a collector that
# has not verified it durable on the storage daemons is answered RETRY by
# the others until that collector's verified row covers the commit, or an
# operator releases the collector (docs/scaling.md "Closing the second").
#
# Why. An RRD takes only newer times: if the collector that acknowledged
# a host's last batch loses it on the daemon (a kill -9 of the daemon
# before its -j journal had it) after the next collector wrote newer
# values, nothing can put it back. With the wait on, the next collector
# writes nothing of the host until the previous one proved its values.
#
# Steps: two collectors on one PostgreSQL state and one rrdcached, with
# wait_verified = yes; an agent of test:/// domains. Each collector that
# commits writes its verified row (their composition wires it). Then the
# host's last batch is made, in the shared state, the commit of a
# collector that never comes back and never verified it ("gone-node", as
# a collector killed -9 right after its commit, ten minutes before the
# collectors' start: no connection of theirs can prove it): the host's next batches
# are answered RETRY (counted, listed in /v1/health as unverified, the
# node listed by `storage marks`), the agent spools; `storage marks
# release gone-node` ends the wait; the agent runs to the end and every
# series on the daemon holds one point per poll.
# SKIP, with the reason, only when PostgreSQL or rrdcached cannot run.
source "$(dirname "$0")/lib_shared_daemon.sh"

POLLS=${POLLS:-40}
DOMAINS=${DOMAINS:-3}
ACK_MS=${ACK_MS:-1000}
HOST=verified-host
start_shared_daemon
start_shared_collectors "[cluster]
lease = 2
wait_verified = yes"

start_test_agent 8100 3

# ---- the committing collector writes its verified row ----
covered() {
  [[ $(sql "SELECT count(*) FROM vigie_registry.streams s JOIN vigie_registry.verified v
            ON v.node = s.node WHERE s.host = '$HOST' AND v.upto_ms >= s.commit_ms") -ge 1 ]]
}
check "the host's commits name their collector" \
  test "$(sql "SELECT count(*) FROM vigie_registry.streams WHERE host = '$HOST' AND node IS NOT NULL AND commit_ms > 0")" -ge 1
check "its verified row covers them" wait_for 30 covered

# ---- the host's last batch: committed by a collector that is gone ----
unverified() { echo $(($(metric 0 vigie_receiver_batches_unverified_total) + $(metric 1 vigie_receiver_batches_unverified_total))); }
eq "no batch waited so far" "$(unverified)" 0
kill -STOP "$AG"
s=$(seq_now)
# dated 10 minutes back, before either collector started: no connection
# of theirs to the daemon predates it, so neither can prove gone-node's
# values itself (part 2, a FLUSH over a connection made before the
# commit: tests/unit/receiver_test.c test_verified_proof), and the wait
# is part 3's, whatever the load makes of the test's timing
sql "UPDATE vigie_registry.streams SET last_seq = $((s + 1)), node = 'gone-node',
     commit_ms = (extract(epoch FROM clock_timestamp()) * 1000)::bigint - 600000
     WHERE host = '$HOST' AND last_seq = $s" >/dev/null
kill -CONT "$AG"
diag "seq $((s + 1)) made gone-node's unverified commit"
waited() { [[ $(unverified) -ge 1 ]]; }
check "the host's next batches are answered RETRY (vigie_receiver_batches_unverified_total)" \
  wait_for 30 waited
sleep 2
eq "none of them is recorded" "$(seq_now)" "$((s + 1))"
held_json() {
  local i
  for i in 0 1; do
    curl -s --max-time 10 -H "$(api_auth)" "http://127.0.0.1:${CH[$i]}/v1/health" |
      jq -c '.cluster.held_elsewhere.hosts // [] | .[]'
  done
}
eq "/v1/health lists the host, waiting for gone-node's verified row" \
  "$(held_json | jq -r '"\(.host) \(.holder) \(.unverified)"' | sort -u)" "$HOST gone-node true"
out=$("$BIN/vigie-collector" --config "$TMP/c0.conf" storage marks 2>&1)
check "storage marks names gone-node behind its verified row" \
  grep -qP "^gone-node\tnever verified\t1 stream\(s\) behind$" <<<"$out"
out=$("$BIN/vigie-collector" --config "$TMP/c0.conf" storage marks release gone-node 2>&1)
check "storage marks release gone-node releases its unverified commits" \
  grep -q "released gone-node's unverified commits" <<<"$out"
check "the host's batches are recorded again" wait_for 30 reached $((s + 3))

# ---- the agent runs to the end ----
agent_ends "$AG" "$TMP/spool" 1500
eq "the shared registry ends at seq $POLLS" "$(seq_now)" "$POLLS"
for i in 0 1; do
  diag "collector $i: RETRY unverified $(metric "$i" vigie_receiver_batches_unverified_total)," \
    "verified row write failures $(metric "$i" vigie_receiver_verified_write_failures_total)"
  check "collector $i logged the wait once at most" \
    test "$(grep -c 'has not yet verified its values durable' "$TMP/c$i.log")" -le 1
done
stop_shared

# ---- every series: one point per poll ----
every_series_one_point
done_testing
