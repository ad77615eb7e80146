#!/usr/bin/env bash
# held_host_kill_test.sh — the holder of a host's holding mark is killed
# (-9) while the storage daemon is down, and stays dead longer than the
# [cluster] lease; the daemon comes back before the holder does. Every
# acknowledged value must be in its file once.
#
# Why. The killed collector's journal holds acknowledged values of the
# host that only it can replay (docs/scaling.md "Holding marks"). Its
# mark used to lapse one lease after its last renewal: the other
# collector then took the host's newer batches and wrote them to the
# restarted daemon, and the holder's older values, replayed from its
# journal when it came back, were refused as older than the files
# (acknowledged values lost: 27 of 40 points of every series here). A
# mark now lasts [cluster] hold_max past its last renewal (hours): the
# other collector answers the host RETRY while the holder is away (the
# agent spools), the holder renews its marks at its restart while its
# journal's values wait, writes them, and clears them.
#
# Steps: as held_host_test.sh until a collector holds the host's mark
# (lease = 2 s here); the holder is killed (-9); for three leases the
# other collector must answer the host RETRY and show the holder in
# /v1/health; the daemon is restarted and the other collector must still
# store none of the host's batches; the holder restarts, replays its
# journal, clears its mark; the agent runs to the end; every series holds
# one point per poll. held_host_kill_early_test.sh runs the same with
# the holder started again before the daemon (HOLDER_FIRST=1): it must
# come up with the daemon down (/v1/health shows it down, reads answer
# 503, its replayed values held, its mark kept), and write them and let
# its journal go when the daemon is back. Then
# `vigie-collector storage marks` lists a mark
# of a node that will not return and `storage marks release` deletes it.
# SKIP, with the reason, only when PostgreSQL or rrdcached cannot run.
source "$(dirname "$0")/lib_shared_daemon.sh"

# 60 polls, 0.4 s apart: the agent still polls when the daemon is killed
# after the set-up, even on a loaded machine
POLLS=${POLLS:-60}
DOMAINS=${DOMAINS:-3}
ACK_MS=${ACK_MS:-1000}
LEASE=2
HOST=held-host
start_shared_daemon
start_shared_collectors "[cluster]
lease = $LEASE"

start_test_agent 8000 2

# ---- each collector learns the host's series (as held_host_test.sh) ----
both_collectors_learn
received() { [[ $(metric "$1" vigie_collector_batches_received_total) -ge $2 ]]; }

# ---- the daemon dies: a collector acknowledges, holding the values ----
kill_daemon_until_marked
# the holder is the collector killed below, whichever it is: stopped
# first, so that the mark read again names it (its holder can no longer
# move or clear it), then killed
h=$(holder_idx)
if [[ $h == 1 ]]; then P=1 S=0; else P=0 S=1; fi
kill -STOP "${CPID[$P]}"
eq "the stopped collector holds the host's mark" "$(holder_idx)" "$P"
ss=$(metric "$S" vigie_collector_samples_received_total) # its acknowledged samples
kill -KILL "${CPID[$P]}"; wait "${CPID[$P]}" 2>/dev/null
s1=$(seq_now)
diag "holder collector $P ($(holder)) killed at seq $s1; daemon down since seq $s0"

# ---- three leases without the holder: the host waits ----
rs=$(metric "$S" vigie_collector_batches_received_total)
check "the other collector gets the host's batches" wait_for 30 received "$S" $((rs + 3))
sleep $((3 * LEASE))
held_n=$(metric "$S" vigie_receiver_batches_held_elsewhere_total)
check "the other collector answers the host RETRY past the lease" test "$held_n" -ge 1
eq "it stored none of the host's batches" "$(metric "$S" vigie_collector_samples_received_total)" "$ss"
hj=$(curl -s --max-time 10 -H "$(api_auth)" "http://127.0.0.1:${CH[$S]}/v1/health")
eq "its /v1/health lists the host held by the dead holder (admin token)" \
  "$(jq -r '.cluster.held_elsewhere | "\(.count) \(.hosts | map("\(.host) \(.holder)") | join(","))"' <<<"$hj")" \
  "1 $HOST $(holder)"
# the route is public: without a token, the count but no host name
hj=$(curl -s --max-time 10 "http://127.0.0.1:${CH[$S]}/v1/health")
eq "without a token it counts the host and names none" \
  "$(jq -r '.cluster.held_elsewhere | "\(.count) \(has("hosts"))"' <<<"$hj")" "1 false"

# restart_holder: start the holder again as systemd does
# (Restart=on-failure): a start whose journal replay finds the daemon not
# answering yet (restarting, or slow on a loaded machine) exits, and is
# started again a moment later
up_or_gone() { answers_health "${CH[$P]}" || ! kill -0 "${CPID[$P]}" 2>/dev/null; }
restart_holder() {
  local tries
  for tries in 1 2 3 4 5 6; do
    start_collector "c$P" --config "$TMP/c$P.conf"
    CPID[$P]=$COLLECTOR_PID
    wait_for 180 up_or_gone # a start still running is never doubled
    kill -0 "${CPID[$P]}" 2>/dev/null && break
    diag "the holder's start $tries exited: $(grep -E ' error: ' "$TMP/c$P.log" | tail -1 | cut -c1-160)"
    sleep 1
  done
  check "the holder answers /v1/health again" answers_health "${CH[$P]}"
}
unmarked() { [[ -z $(holder) ]]; }
if [[ ${HOLDER_FIRST:-0} == 0 ]]; then
  # ---- the daemon is back, the holder is not: still nothing taken ----
  restart_rrdcached s "$RD_DIR" "$RD_PORT" -O -R || nok "the daemon restarts"
  RD_PID=$RRDCACHED_PID
  rs=$(metric "$S" vigie_collector_batches_received_total)
  check "the other collector gets the host's batches again" wait_for 30 received "$S" $((rs + 3))
  sleep $((2 * LEASE))
  eq "it still stored none of them" "$(metric "$S" vigie_collector_samples_received_total)" "$ss"
  eq "the mark still names the dead holder" "$(holder_idx)" "$P"

  # ---- the holder restarts: its journal's values, then its mark goes ----
  restart_holder
  check "the holder wrote its journal's values and cleared its mark" wait_for 60 unmarked
else
  # ---- the holder is started again first, the daemon still down. Its
  # start replays its journal: the values for the daemon stay held in its
  # cache and journal, and it comes up as it runs when a daemon goes down
  # (it used to exit, "replaying the journal ... does not answer", and
  # rely on systemd to start it again until the daemon answered). It
  # renews the mark it left; the mark must stay. ----
  start_collector "c$P" --config "$TMP/c$P.conf"
  CPID[$P]=$COLLECTOR_PID
  wait_for 60 up_or_gone
  check "the holder answers /v1/health with the daemon down" answers_health "${CH[$P]}"
  sleep $((2 * LEASE))
  if kill -0 "${CPID[$P]}" 2>/dev/null; then running=1; ok "the holder stays up"
  else running=0; nok "the holder stays up ($(grep -E ' error: ' "$TMP/c$P.log" | tail -1 | cut -c1-160))"; fi
  hj=$(curl -s --max-time 10 "http://127.0.0.1:${CH[$P]}/v1/health")
  eq "its /v1/health shows the daemon down" "$(jq -r '.storage[0].state' <<<"$hj" 2>/dev/null)" down
  code=$(curl -s -o "$TMP/read.json" -w '%{http_code}' --max-time 30 -H "$(api_auth)" \
    "http://127.0.0.1:${CH[$P]}/v1/measures?resource=$HOST&metric=host.instances&start=$START&end=$END&granularity=60")
  eq "a read of a series on the daemon answers 503" "$code" 503
  check "... naming the daemon" grep -qF "storage daemon 127.0.0.1:$RD_PORT" "$TMP/read.json"
  check "its replayed values wait in its cache" test "$(metric "$P" vigie_store_values_pending)" -gt 0
  check "... and its journal" test "$(find "$TMP/c$P/journal" -maxdepth 1 -name '*.vgj' | wc -l)" -gt 0
  eq "the holder's mark stays while the daemon is down" "$(holder_idx)" "$P"
  eq "the other collector stored none of the host's batches" \
    "$(metric "$S" vigie_collector_samples_received_total)" "$ss"
  restart_rrdcached s "$RD_DIR" "$RD_PORT" -O -R || nok "the daemon restarts"
  RD_PID=$RRDCACHED_PID
  ((running)) || restart_holder # as systemd would
  check "the holder wrote its values and cleared its mark" wait_for 60 unmarked
fi

# ---- the agent runs to the end ----
agent_ends "$AG" "$TMP/spool" 1500
eq "the shared registry ends at seq $POLLS" "$(seq_now)" "$POLLS"
for i in 0 1; do
  diag "collector $i: duplicate values $(metric "$i" vigie_store_values_duplicate_total)," \
    "held elsewhere $(metric "$i" vigie_receiver_batches_held_elsewhere_total)"
done

# the last batches may wait in a collector's cache for a moment (its
# connection to the restarted daemon not verified yet), under its mark:
# both write them before the stop, whichever it is
written() { [[ -z $(holder) && $(metric 0 vigie_store_values_pending) -eq 0 &&
  $(metric 1 vigie_store_values_pending) -eq 0 ]]; }
check "every value is written and no mark is left" wait_for 60 written
drained() { [[ $(find "$TMP/c$P/journal" -maxdepth 1 -name '*.vgj' | wc -l) -eq 0 ]]; }
check "the holder's journal drained" wait_for 60 drained

# ---- a node that will not return: the operator releases its marks ----
sql "INSERT INTO vigie_registry.held(host, node, until_ms) VALUES ('gone-host', 'gone-node', 9000000000000)"
out=$("$BIN/vigie-collector" --config "$TMP/c$S.conf" storage marks 2>&1)
check "storage marks lists the mark" grep -q "gone-host.*gone-node" <<<"$out"
out=$("$BIN/vigie-collector" --config "$TMP/c$S.conf" storage marks release gone-node 2>&1)
eq "storage marks release deletes it" "$out" "released 1 holding mark(s) of gone-node"
eq "no mark is left" "$(sql "SELECT count(*) FROM vigie_registry.held")" 0
out=$("$BIN/vigie-collector" --config "$TMP/c$S.conf" storage marks release Gone-node 2>"$TMP/rel.err")
eq "a release matching no mark says released 0 ..." "$out" "released 0 holding mark(s) of Gone-node"
check "... and says on stderr that the node holds none" \
  grep -q "no holding mark of 'Gone-node'" "$TMP/rel.err"
stop_shared

# ---- every series: one point per poll ----
every_series_one_point
done_testing
