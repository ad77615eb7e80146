#!/usr/bin/env bash
# cluster_test.sh — one cloud on several nodes, with failures, checked end
# to end (TAP; `make cluster-test`, called by .ci/run).
#
# The topology of docs/scaling.md on loopback, all real processes started
# here: one PostgreSQL server (the shared state: registry, tokens, alarms,
# billing), two rrdcached daemons (the series, placed by rendezvous
# hashing), three vigie-collector processes on that state and those
# daemons, and $HOSTS vigie-agent processes (default 3) on libvirt's test
# driver, each with its own node file of $DOMAINS domains (default 100:
# a few hundred in all, with Nova metadata for billing), sending to all
# three collectors ([agent] collectors) on a synthetic clock (one poll =
# one minute) for $POLLS polls each, with a rate card.
#
# During the run, each at a point of progress read from the shared
# registry (never after a sleep): kill -9 of the collector that is the
# primary of the first host, and its restart once another collector
# acknowledged that host's batches (the time between the two is printed
# as FAILOVER_MS for bench/run.sh); kill -9 of one rrdcached and its
# restart on the same sockets and journal; an immediate stop and restart
# of PostgreSQL. The agents run to the end of their polls and exit only
# with an empty spool ([agent] drain_ms): every batch was acknowledged.
#
# Afterwards:
#  - exactly once: every host's stream ends at seq $POLLS in the shared
#    registry; across the three collectors' logs no batch was accepted
#    twice (a re-sent batch is answered DUPLICATE by the shared state);
#  - every series of every domain is a file on exactly one daemon; the
#    set of series is the single-collector run's; each file holds one
#    point per poll, at the poll's minute, no more, none missing (heartbeat
#    90 s with a 60 s step: a lost poll leaves an unknown point, RRD does
#    not bridge it), and memory.size equals the test driver's value (the
#    node file's <memory>) at every point;
#  - the three collectors' APIs answer the same resource list and the same
#    measures, byte for byte;
#  - invoices: every collector answers the same documents; the
#    hand-computed ledger (tests/fixtures/billing), replayed through one
#    collector of the cluster and through a single collector (sqlite
#    state, local files, no failures), gives the same invoices byte for
#    byte, matching the ledger; the agents' own instances, replayed into
#    that single collector by agents of the same hosts, node files and
#    synthetic clock, give the same invoices but for the network-egress
#    lines (the test driver's interface counters follow the wall clock);
#  - alarms: one alarm over every instance (memory.size > 0: one
#    transition to alarm per instance) with a webhook receiver; the
#    collectors must report alarm leases in /v1/health (to an admin token:
#    alarm ownership by leases), and each transition must be notified
#    exactly once.
# Skipped with the reason only when PostgreSQL or rrdcached cannot run.
#
# Knobs: HOSTS, DOMAINS, POLLS, INTERVAL (seconds between polls), ACK_MS;
# FAULTS (a subset of "collector rrdcached postgres", to tell their
# effects apart); OVERLAP=1 kills the storage daemon without waiting for
# the first host to return to its restarted collector (a host changing
# collector while a daemon is down); FLUSH_DEPTH sets the collectors'
# [storage] flush_depth, SYNC_INTERVAL their [storage] sync_interval
# (e.g. 300s; default 0, a sync per batch; set with
# sync_interval_single_writer = yes, which a cluster refuses to start
# without: an experiment), WAIT_VERIFIED their [cluster]
# wait_verified (unset: the default, yes with rrdcached: a host new to a
# collector waits for its previous collector's verified row unless it
# proves it, docs/scaling.md "Closing the second"; no: nobody waits).
# KEEP_TMP=1 keeps every log and file.
# tests/cluster/rate.sh runs it several at a time and counts each check's
# passes (docs/scaling.md, "The cluster test side by side").
#
# What it guards (docs/scaling.md, "Why collectors sharing daemons write
# through" and "The receiver never waits on a storage daemon's fault"):
# when a host changes collector, the other collector writes the host's
# newer values at once, so any acknowledged value the first one had not
# yet given its daemon would be refused as older than the file (an RRD
# only moves forward in time) and the series would miss points. With
# write-through that can only happen to values waiting for a daemon that
# is down; the check "every series holds one point per poll" finds it.
# A host moving because its collector's receiver waited on the killed
# rrdcached lost polls 20-21 of a series here once;
# tests/integration/shared_daemon_fault_test.sh reproduces that case. A
# host that moves for a cause of its own (a late ack on a loaded machine)
# while its collector holds its values for the killed daemon is answered
# RETRY by the others until those values are written (holding marks in
# the shared state, docs/scaling.md; tests/integration/held_host_test.sh;
# vigie_receiver_batches_held_elsewhere_total counts it).
source "$(dirname "$0")/../integration/lib.sh"

HOSTS=${HOSTS:-3}
DOMAINS=${DOMAINS:-100}
# 90 polls (36 s at 0.4 s): the faults come one after the other while the
# agents still poll; with 60 (24 s) two runs at a time (load ~4) saw the
# agents end before the storage daemon's kill, whose checks then had no
# batch to look at ("/v1/health shows the storage daemon down" failed in
# 3 of 4 runs, tests/cluster/rate.sh PAR=2)
POLLS=${POLLS:-90}
INTERVAL=${INTERVAL:-0.4}
ACK_MS=${ACK_MS:-3000}
HOOKBIN=$BIN/../bench/alarms_hook
# the 10th of last month, 00:00 UTC: a month both runs bill the same way
START=$(date -u -d "$(date -u +%Y-%m-10) -1 month" +%s)
MONTH=$(date -u -d "@$START" +%Y-%m)
END=$((START + (POLLS - 1) * 60))

require rrdcached jq
start_shared_state
sql() { psql "$STATE" -X -q -A -t -c "$1" 2>/dev/null; }
ok "PostgreSQL up ($PG_BIN)"

# ---- two storage daemons; a restart reuses their sockets and journal ----
declare -a RD_DIR RD_PORT RD_PID
for i in 0 1; do
  start_rrdcached "s$i" -O -R || bail "rrdcached $i starts"
  RD_DIR[$i]=$RRDCACHED_DIR; RD_PORT[$i]=$RRDCACHED_PORT; RD_PID[$i]=$RRDCACHED_PID
done
ok "two rrdcached daemons up (127.0.0.1:${RD_PORT[0]}, 127.0.0.1:${RD_PORT[1]})"
restart_daemon() { # INDEX: the same listeners, base dir and journal
  local rc
  restart_rrdcached "s$1" "${RD_DIR[$1]}" "${RD_PORT[$1]}" -O -R; rc=$?
  RD_PID[$1]=$RRDCACHED_PID
  return $rc
}

# ---- the rate card, the node files ----
# the hand-computed ledger's rate card (flavour hours, vCPU, RAM, storage,
# network egress tiers): the ledger is replayed into both runs below
CARD=$ROOT/tests/fixtures/billing/ratecard.json
LEDGER=$ROOT/tests/fixtures/billing/ledger-2026-10.txt
REPLAY=$BIN/../bench/billing_replay
mem_kib() { echo $((1048576 * (1 + $1 % 4))); } # domain index -> <memory>
gen_node() { # FILE HOST_INDEX
  local f=$1 h=$2 i
  { echo "<node>"
    for ((i = 0; i < DOMAINS; i++)); do
      printf "<domain type='test'><name>h%d-vm%d</name><uuid>%08x-%04x-4000-8000-%012x</uuid>" "$h" "$i" "$i" "$h" "$i"
      printf "<metadata><nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'><nova:name>h%d-vm%d</nova:name>" "$h" "$i"
      printf "<nova:flavor name='%s'><nova:memory>%d</nova:memory><nova:disk>20</nova:disk><nova:vcpus>%d</nova:vcpus></nova:flavor>" \
        "$( ((i % 2)) && echo m1.medium || echo m1.small)" $(($(mem_kib "$i") / 1024)) $((1 + i % 2))
      printf "<nova:owner><nova:user uuid='u%d'>user%d</nova:user><nova:project uuid='p%d'>proj%d</nova:project></nova:owner></nova:instance></metadata>" \
        $((i % 3)) $((i % 3)) $((i % 3)) $((i % 3))
      printf "<memory unit='KiB'>%d</memory><currentMemory unit='KiB'>%d</currentMemory><vcpu>%d</vcpu><os><type arch='x86_64'>hvm</type></os><devices>" \
        "$(mem_kib "$i")" "$(mem_kib "$i")" $((1 + i % 2))
      printf "<disk type='file' device='disk'><source file='/guest/h%d-vm%d.img'/><target dev='vda' bus='virtio'/></disk>" "$h" "$i"
      printf "<interface type='ethernet'><mac address='52:54:%02x:00:%02x:%02x'/><target dev='tap%d'/></interface></devices></domain>\n" \
        "$h" $((i >> 8)) $((i & 255)) "$i"
    done
    echo "</node>"; } >"$f"
}
for ((h = 0; h < HOSTS; h++)); do gen_node "$TMP/node$h.xml" $h; done
check "the test driver lists the node file's $DOMAINS domains" \
  test "$(virsh -q -c "test://$TMP/node0.xml" list --all 2>/dev/null | grep -c running)" -eq "$DOMAINS"

# ---- three collectors on the shared state and daemons ----
declare -a CP CH CS CPID
used=" "
# the collectors' metric stream is signed with one shared key
openssl rand -hex 32 >"$TMP/cluster.key"
chmod 600 "$TMP/cluster.key"
for i in 0 1 2; do
  for v in P H S; do
    p=$(free_port); while [[ $used == *" $p "* ]]; do p=$(free_port); done
    used+="$p "
    case $v in P) CP[$i]=$p ;; H) CH[$i]=$p ;; S) CS[$i]=$p ;; esac
  done
  state_conf "$TMP/c$i.conf" "${CP[$i]}" "${CH[$i]}" "$TMP/c$i" "$TMP/tokens.key" <<CONF
[storage]
backend = rrdcached
daemons = 127.0.0.1:${RD_PORT[0]}, 127.0.0.1:${RD_PORT[1]}
archives = 1m:6h
heartbeat = 90
${FLUSH_DEPTH:+flush_depth = $FLUSH_DEPTH}
${SYNC_INTERVAL:+sync_interval = $SYNC_INTERVAL}
${SYNC_INTERVAL:+sync_interval_single_writer = yes}
[billing]
ratecard = $CARD
[cluster]
stream = tcp://127.0.0.1:${CS[$i]}
stream_key_file = $TMP/cluster.key
lease = 2s
${WAIT_VERIFIED:+wait_verified = $WAIT_VERIFIED}
[log]
level = debug
CONF
done
mkdir -p "$TMP/c0"
ADMIN_TOKEN=$("$BIN/vigie-collector" --config "$TMP/c0.conf" token create --admin --name cluster 2>>"$TMP/token.err")
export VIGIE_TOKEN=$ADMIN_TOKEN
collector() { # INDEX LOGNAME
  start_collector "$2" --config "$TMP/c$1.conf"
  CPID[$1]=$COLLECTOR_PID
}
for i in 0 1 2; do collector $i "c$i-a"; done
for i in 0 1 2; do
  check "collector $i answers /v1/health" wait_for 20 answers_health "${CH[$i]}"
done
API=http://127.0.0.1:${CH[0]}

# ---- the alarm over every instance, its webhook receiver ----
LEASES=0
health_has_leases() { # the alarm-ownership feature reports its leases here
  curl -sf --max-time 5 -H "$(api_auth)" "http://127.0.0.1:${CH[0]}/v1/health" |
    jq -e '[paths | map(tostring) | join(".") | select(test("lease"))] | length > 0' >/dev/null
}
health_has_leases && LEASES=1
HOOK=
if [[ -x $HOOKBIN ]]; then
  "$HOOKBIN" --port 0 --port-file "$TMP/hook.port" --log "$TMP/hook.log" 2>"$TMP/hook.err" &
  _pids+=($!)
  wait_for 30 test -s "$TMP/hook.port" && HOOK=http://127.0.0.1:$(cat "$TMP/hook.port")/alarm
fi
if [[ -n $HOOK ]]; then
  # an alarm belongs to one project: one per project of the node files
  codes=
  for p in p0 p1 p2; do
    codes+=$(curl -s -o "$TMP/alarm-$p.json" -w '%{http_code}' --max-time 10 -H "$(api_auth)" \
      -H 'Content-Type: application/json' -X POST "$API/v1/alarms" \
      -d "{\"name\":\"mem-seen\",\"project\":\"$p\",\"metric\":\"memory.size\",\"selector\":{\"type\":\"instance\"},\"comparison\":\"gt\",\"threshold\":0,\"actions\":{\"alarm\":[\"$HOOK\"]}}")
  done
  eq "an alarm over every instance of each project, with a webhook" "$codes" 201201201
fi

# ---- the agents ----
URLS="tcp://127.0.0.1:${CP[0]}, tcp://127.0.0.1:${CP[1]}, tcp://127.0.0.1:${CP[2]}"
cat >"$TMP/agent.conf" <<CONF
[agent]
collectors = $URLS
ack_timeout_ms = $ACK_MS
probe_interval_ms = 500
drain_ms = 300000
host_fs = false
CONF
declare -a APID
for ((h = 0; h < HOSTS; h++)); do
  start_agent "agent$h" --config "$TMP/agent.conf" --libvirt "test://$TMP/node$h.xml" \
    --interval "$INTERVAL" --host "h$h" --spool "$TMP/spool$h" --clock-start "$START" \
    --clock-step 60 --count "$POLLS" --log-level debug
  APID[$h]=$AGENT_PID
done
# the lowest last seq over the hosts, from the shared registry
progress() {
  local n
  n=$(sql "SELECT CASE WHEN count(*) < $HOSTS THEN 0 ELSE min(s) END FROM
    (SELECT host, max(last_seq) AS s FROM vigie_registry.streams GROUP BY host) x")
  echo "${n:-0}"
}
reached() { [[ $(progress) -ge $1 ]]; }
host_seq() { sql "SELECT coalesce(max(last_seq), 0) FROM vigie_registry.streams WHERE host = '$1'"; }

# FAULTS: which failures to inject (default all three), to tell their
# effects apart
FAULTS=" ${FAULTS:-collector rrdcached postgres} "
fault() { [[ $FAULTS == *" $1 "* ]]; }

# ---- kill -9 the first host's primary collector; restart it ----
# the failures happen at these points of the run (seqs every host reached)
Q=$((POLLS / 6)); [[ $Q -ge 2 ]] || Q=2
check "every host's batches are acknowledged (seq >= $Q)" wait_for 120 reached $Q
purl=$(grep -o 'sending to tcp://127.0.0.1:[0-9]*' "$TMP/agent0.log" | head -1 | sed 's/sending to //')
PRI=-1
for i in 0 1 2; do [[ $purl == "tcp://127.0.0.1:${CP[$i]}" ]] && PRI=$i; done
check "host h0's primary is one of the three ($purl)" test "$PRI" -ge 0
[[ $PRI -ge 0 ]] || PRI=0
PRI_KILLED=0
if fault collector; then
  s0=$(host_seq h0)
  t0=$(date +%s%N)
  kill -KILL "${CPID[$PRI]}"; wait "${CPID[$PRI]}" 2>/dev/null
  t1=
  for _ in $(seq 1200); do # 60 s at most
    # acknowledged after the kill: by another collector (the shared state)
    if [[ $(host_seq h0) -gt $((s0 + 1)) ]]; then t1=$(date +%s%N); break; fi
    sleep 0.05
  done
  check "h0's batches are acknowledged by another collector after the kill -9" test -n "$t1"
  [[ -n $t1 ]] && diag "FAILOVER_MS=$(( (t1 - t0) / 1000000 )) (kill -9 of h0's primary -> its batches acknowledged elsewhere, seen in the shared registry; ack_timeout_ms=$ACK_MS)"
  r0=$(date +%s%N)
  collector "$PRI" "c$PRI-b"
  check "the killed collector restarts on the shared state" wait_for 20 answers_health "${CH[$PRI]}"
  # how long its start took, also past the bound (a failure then says
  # whether it was slow or stuck): the API listens once the store opened,
  # and the store's start replay reads the last update of every series
  # its journal holds, one series after the other (a FLUSH and an INFO
  # each: ~2,600 series of one host's batch; 10 s at load 5, 16 s at
  # load 14 on 2 cores, 2026-12-07)
  wait_for 100 answers_health "${CH[$PRI]}"
  diag "RESTART_MS=$(( ($(date +%s%N) - r0) / 1000000 )) (the killed collector started again -> /v1/health answered; load $(cut -d' ' -f1-3 /proc/loadavg))"
  # h0 returns to it before the next failure: no host changes collector
  # while a storage daemon is down (OVERLAP=1 skips this wait; see below)
  if [[ ${OVERLAP:-0} != 1 ]]; then
    check "h0's agent returns to its restarted primary" \
      wait_for 60 grep -q "back on this host's primary collector" "$TMP/agent0.log"
  fi
  PRI_KILLED=1
fi

# ---- kill -9 one storage daemon; restart it ----
check "the cluster goes on (seq >= $((2 * Q)))" wait_for 120 reached $((2 * Q))
if fault rrdcached; then
  kill -KILL "${RD_PID[1]}"; wait "${RD_PID[1]}" 2>/dev/null
  sleep 1 # a second of a dead daemon: its series wait in the collectors' journals
  health_down() { # a collector that wrote to it since sees it down
    local i # (the daemons' addresses: to an admin token only)
    for i in 0 1 2; do
      curl -sf --max-time 5 -H "$(api_auth)" "http://127.0.0.1:${CH[$i]}/v1/health" |
        jq -e --arg a "127.0.0.1:${RD_PORT[1]}" '.storage | map(select(.address == $a and .state == "down")) | length > 0' >/dev/null && return 0
    done
    return 1
  }
  check "/v1/health shows the storage daemon down" wait_for 20 health_down
  check "the daemon restarts on its sockets and journal" restart_daemon 1
fi

# ---- restart PostgreSQL (an immediate stop: a crash as the clients see it) ----
check "the cluster goes on after the daemon's restart (seq >= $((3 * Q)))" wait_for 120 reached $((3 * Q))
# alarm leases the collectors took from each other (ownership moves),
# summed over the three; "?" when one does not answer /metrics
leases_taken() {
  local i v s=0
  for i in 0 1 2; do
    for _ in $(seq 20); do
      v=$(curl -sf --max-time 10 -H "$(api_auth)" "http://127.0.0.1:${CH[$i]}/metrics" |
        awk '$1 == "vigie_alarms_leases_taken_total" {printf "%d", $2}')
      [[ -n $v ]] && break
      sleep 0.25
    done
    [[ -n $v ]] || { echo "?"; return; }
    s=$((s + v))
  done
  echo "$s"
}
taken0=$(leases_taken)
fault postgres && check "PostgreSQL restarts" restart_postgres
check "batches are acknowledged after PostgreSQL's restart (seq >= $((4 * Q)))" wait_for 120 reached $((4 * Q))

# ---- the agents run to the end, spools empty ----
for ((h = 0; h < HOSTS; h++)); do
  for _ in $(seq 3000); do kill -0 "${APID[$h]}" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "${APID[$h]}" 2>/dev/null; then nok "agent h$h finished its $POLLS polls within 300 s"; kill -TERM "${APID[$h]}"; fi
  wait "${APID[$h]}"; rc=$?
  eq "agent h$h exits 0 after $POLLS polls" "$rc" 0
  eq "agent h$h's spool is empty (every batch acknowledged)" \
    "$(find "$TMP/spool$h" -maxdepth 1 -name '*.vgb' | wc -l)" 0
done

# a diag, not a check: a collector stalled past its 2 s lease on this
# loaded machine rightly loses its alarms (tests/unit/alarm_lease_test.c
# checks that the restart itself moves none)
if fault postgres; then
  taken1=$(leases_taken)
  [[ $taken0 != "?" && $taken1 != "?" ]] && taken1=$((taken1 - taken0))
  diag "alarm leases taken from PostgreSQL's restart to the end: $taken1 (0 unless a collector stalled past its lease)"
fi

# ---- exactly once: the registry and the collectors' logs ----
for ((h = 0; h < HOSTS; h++)); do
  eq "h$h: the shared registry ends at seq $POLLS, one stream" \
    "$(sql "SELECT count(*) || ' ' || max(last_seq) FROM vigie_registry.streams WHERE host = 'h$h'")" "1 $POLLS"
done
accepted() { cat "$TMP"/c?-?.log | grep -o 'accepted batch host=h[0-9]* stream=[0-9a-f]* seq=[0-9]*' | sed 's/accepted batch //'; }
eq "no batch accepted by two collectors" "$(accepted | sort | uniq -d | wc -l)" 0
nacc=$(accepted | sort -u | wc -l)
# a collector killed between its commit and its log lines loses those
# lines: one per batch of the group it committed (vg_registry_commit_group
# records a turn's batches at once, two of one stream never in one group,
# and each agent has one batch in flight), so at most one per host (seen:
# h0's seq 33 and h1's seq 17, answered DUPLICATE by the collector each
# agent moved to, logged nowhere)
check "every batch accepted once in the logs ($nacc of $((HOSTS * POLLS)), at most $HOSTS lines lost to the kill)" \
  test "$nacc" -ge $((HOSTS * POLLS - HOSTS)) -a "$nacc" -le $((HOSTS * POLLS))
diag "duplicates answered: $(cat "$TMP"/c?-?.log | grep -c 'duplicate batch'); per collector accepted: $(for f in "$TMP"/c?-?.log; do printf '%s=%s ' "$(basename "$f" .log)" "$(grep -c 'accepted batch' "$f")"; done)"

# ---- the hand-computed ledger, replayed through one collector of the cluster ----
LC=$(( (PRI + 1) % 3 ))
check "the billing ledger replayed into collector $LC, every batch acknowledged" \
  "$REPLAY" send "$LEDGER" "tcp://127.0.0.1:${CP[$LC]}"

# ---- the same answers from every collector's API ----
# GET URL: the body; a 503 (an API thread's first read after the state
# database's restart, docs/operations.md "Shared state") is retried after
# its Retry-After, a few times
get() {
  local n code
  for n in 1 2 3 4 5 6; do
    code=$(curl -sS -o "$TMP/get.out" -w '%{http_code}' --max-time 30 -H "$(api_auth)" "$1")
    [[ $code == 503 ]] || break
    sleep 1
  done
  cat "$TMP/get.out"
}
for i in 0 1 2; do
  a="http://127.0.0.1:${CH[$i]}"
  get "$a/v1/resources?type=instance&limit=1000" |
    jq -S -c '[.resources[] | select(.host | test("^h[0-9]+$")) | {id, name, host, project, flavor, state}] | sort_by(.id)' >"$TMP/res$i.json"
  : >"$TMP/meas$i.json"
  for id in $(printf '%08x-0000-4000-8000-%012x %08x-0001-4000-8000-%012x' 0 0 7 7); do
    for m in memory.size cpu.time vcpus; do
      get "$a/v1/measures?resource=$id&metric=$m&start=$((START - 60))&end=$((END + 60))&granularity=60" |
        jq -S -c . >>"$TMP/meas$i.json"
    done
  done
done
eq "collector 0 lists every instance" "$(jq length "$TMP/res0.json")" $((HOSTS * DOMAINS))
for i in 1 2; do
  check "collector $i answers the same resource list as collector 0" cmp -s "$TMP/res0.json" "$TMP/res$i.json"
  check "collector $i answers the same measures as collector 0" cmp -s "$TMP/meas0.json" "$TMP/meas$i.json"
done
# as rrdtool's reading below: a point per poll after the first, and the
# first poll's own minute only if librrd knew enough of it (the file
# starts 1 s before the first value)
napi=$(head -1 "$TMP/meas0.json" | jq '[.points[] | select(.[1] != null)] | length')
check "measures: memory.size of h0-vm0 has a point per poll through the API (got $napi, want $((POLLS - 1)) or $POLLS)" \
  test "$napi" -ge $((POLLS - 1)) -a "$napi" -le "$POLLS"
for i in 0 1 2; do
  if [[ -n $ADMIN_TOKEN ]]; then
    for p in p0 p1 p2; do
      get "http://127.0.0.1:${CH[$i]}/v1/invoices?project=$p&month=$MONTH" >"$TMP/inv-c$i-$p.json"
    done
    for p in acme beta; do
      get "http://127.0.0.1:${CH[$i]}/v1/invoices?project=$p&month=2026-10" >"$TMP/inv-c$i-$p.json"
    done
  fi
done
for i in 1 2; do
  check "collector $i answers the same invoices as collector 0" \
    bash -c "for p in p0 p1 p2 acme beta; do cmp -s '$TMP/inv-c0-'\$p.json '$TMP/inv-c$i-'\$p.json || exit 1; done"
done

# ---- alarms: each transition notified exactly once (with leases) ----
# On a wrong count, what it takes to tell why (diag lines, only then): the
# instances with more than one transition per host; for three of them
# every transition (sample time, when recorded, the node whose transaction
# wrote it, from the feed's rows, and the reason) and every webhook
# delivery; the agents' collector changes, the collectors' cluster and
# lease lines, and each collector's stream counters.
alarm_diag() {
  local r t rec tr nid reason node ms st key body
  # first, in a few lines (a failed test's summary shows its first 20
  # lines of diag): notifications sent twice (a delivery's mark rolled
  # back), the collectors' failed alarm writes, the server's deadlocks
  awk '$2 == 200 {print $3}' "$TMP/hook.ok" | sort | uniq -d >"$TMP/twice.list"
  diag "notification ids delivered more than once: $(wc -l <"$TMP/twice.list")$(for key in $(head -2 "$TMP/twice.list"); do
    printf ' %s at %s ms' "${key:0:8}" "$(awk -v k="$key" '$3 == k {printf "%s%s", s, $1; s = ","}' "$TMP/hook.ok")"; done)"
  diag "collectors' failed alarm writes: $(cat "$TMP"/c?-?.log | grep -cE 'cannot record .* deliveries|cannot write alarms.db') (first: $(cat "$TMP"/c?-?.log |
    grep -hE 'cannot record .* deliveries|cannot write alarms.db' | sort | head -1 | cut -c1-200)); PostgreSQL deadlocks: $(grep -c 'deadlock detected' "$PG_DIR/server.log" 2>/dev/null)"
  jq -r '.history[].resource' "$TMP"/hist-p?.json | sort | uniq -c | awk '$1 > 1 {print $2}' >"$TMP/multi.list"
  diag "instances with more than one transition: $(wc -l <"$TMP/multi.list") (per host: $(cut -d- -f2 "$TMP/multi.list" | sort | uniq -c | awk '{printf "h%d=%d ", $2, $1}'))"
  for r in $(head -3 "$TMP/multi.list"); do
    diag "instance $r: transitions (sample time, recorded, previous -> current, written by, reason)"
    jq -r --arg r "$r" '.history[] | select(.resource == $r) |
      [.time, .recorded_at, .detail.previous + " -> " + .detail.current, .detail.notification_id,
       (.detail.reason // "" | .[0:160])] | @tsv' "$TMP"/hist-p?.json |
      while IFS=$'\t' read -r t rec tr nid reason; do
        node=$(sql "SELECT node FROM vigie_alarms.peer_notices WHERE strpos(body, '$nid') > 0 LIMIT 1")
        diag "  $t $rec $tr by ${node:-?}: $reason"
      done
    diag "instance $r: webhook deliveries (received ms, status, key, current, timestamp)"
    grep -F "\"resource\":\"$r\"" "$TMP/hook.log" | while read -r ms st key body; do
      diag "  $ms $st $key $(jq -r '[.current, .timestamp] | @tsv' <<<"$body" 2>/dev/null)"
    done
  done
  diag "agents' collector changes:"
  grep -H -E 'did not acknowledge in time|back on this host|not acknowledging|acknowledges again' "$TMP"/agent?.log |
    sed "s|$TMP/||" | head -20 | while read -r l; do diag "  $l"; done
  diag "collectors' cluster and lease lines:"
  grep -H -E 'now evaluates|lease|subscribed|metric stream|cluster:|taking over|state database|did not reach' "$TMP"/c?-?.log |
    sed "s|$TMP/||" | head -80 | while read -r l; do diag "  $l"; done
  for i in 0 1 2; do
    diag "collector $i: $(get "http://127.0.0.1:${CH[$i]}/metrics" |
      grep -E '^vigie_(cluster_stream|alarms_(takeovers|leases_taken|fenced|samples_late|kept_periods|unseen))' | tr '\n' ' ')"
  done
}
if [[ -n $HOOK ]]; then
  delivered() { [[ $(grep '"current":"alarm"' "$TMP/hook.log" 2>/dev/null | awk '$2 == 200' | wc -l) -ge $((HOSTS * DOMAINS)) ]]; }
  # with leases, every transition's notification is due: wait for them
  [[ $LEASES == 1 ]] && wait_for 120 delivered
  ntrans=0
  for p in p0 p1 p2; do
    id=$(jq -r .id "$TMP/alarm-$p.json")
    get "$API/v1/alarms/$id/history?type=transition&limit=1000" >"$TMP/hist-$p.json"
    n=$(jq '.history | length' "$TMP/hist-$p.json")
    ntrans=$((ntrans + ${n:-0}))
  done
  # hook.log: <ms> <status> <Idempotency-Key> <body>; 2xx answers only
  grep '"current":"alarm"' "$TMP/hook.log" 2>/dev/null | awk '$2 == 200' >"$TMP/hook.ok"
  ndeliv=$(wc -l <"$TMP/hook.ok")
  nkeys=$(awk '{print $3}' "$TMP/hook.ok" | sort -u | wc -l)
  nres=$(cut -d' ' -f4- "$TMP/hook.ok" | jq -r .resource 2>/dev/null | sort -u | wc -l)
  diag "alarm transitions in history: $ntrans; webhook deliveries to alarm: $ndeliv ($nkeys notification ids) for $nres instances"
  if [[ $LEASES == 1 ]]; then
    eq "alarms: one transition per instance in history" "$ntrans" $((HOSTS * DOMAINS))
    eq "alarms: each transition notified exactly once (deliveries, ids, instances)" \
      "$ndeliv $nkeys $nres" "$((HOSTS * DOMAINS)) $((HOSTS * DOMAINS)) $((HOSTS * DOMAINS))"
    if [[ $ntrans != $((HOSTS * DOMAINS)) || "$ndeliv $nkeys" != "$((HOSTS * DOMAINS)) $((HOSTS * DOMAINS))" ]]; then
      alarm_diag
    fi
  else
    nok "alarm ownership: no alarm lease in /v1/health (admin token): exactly-once alarm notifications not checked"
  fi
else
  skip "alarm webhook receiver ($HOOKBIN) not built: make $BUILD/bench/alarms_hook"
fi

# ---- each node's cost (docs/benchmarks.md, "Failover in a cluster") ----
# CPU of each collector process (the restarted one since its restart) per
# sample it received from agents; it also evaluated its peers' batches
# from the metric stream. Reported, never asserted (a loaded machine).
tick=$(getconf CLK_TCK)
for i in 0 1 2; do
  read -r ut st < <(awk '{print $14, $15}' "/proc/${CPID[$i]}/stat" 2>/dev/null) || continue
  m=$(get "http://127.0.0.1:${CH[$i]}/metrics")
  smp=$(awk '$1 == "vigie_collector_samples_received_total" {print $2}' <<<"$m")
  peer=$(awk '$1 == "vigie_cluster_stream_received_total" {print $2}' <<<"$m")
  # values re-sent from the journal to a daemon that lost them, and
  # values refused as already stored (a restart's re-sends; rates, never
  # asserted: how often the daemon's fault cost a re-send)
  diag "STORE node=$i resent=$(awk '$1 == "vigie_store_values_resent_total" {print $2}' <<<"$m") duplicate=$(awk '$1 == "vigie_store_values_duplicate_total" {print $2}' <<<"$m")"
  diag "NODE_COST node=$i cpu_s=$(awk -v a="$ut" -v b="$st" -v t="$tick" 'BEGIN{printf "%.2f", (a + b) / t}') samples=${smp:-0} peer_batches=${peer:-0} cpu_us_per_sample=$(awk -v a="$ut" -v b="$st" -v t="$tick" -v n="${smp:-0}" 'BEGIN{printf "%.1f", (n > 0 ? (a + b) / t * 1e6 / n : 0)}')"
done

# ---- stop the collectors; the daemons write everything to their files ----
for i in 0 1 2; do stop_pid "${CPID[$i]}"; done
for i in 0 1; do stop_pid "${RD_PID[$i]}"; done # SIGTERM: rrdcached flushes every file

# ---- the single-collector reference run: same hosts, nodes, clock ----
RP=$(free_port); RH=$(free_port); while [[ $RH == "$RP" ]]; do RH=$(free_port); done
cat >"$TMP/ref.conf" <<CONF
[collector]
listen = tcp://127.0.0.1:$RP
http = 127.0.0.1:$RH
data_dir = $TMP/ref
[storage]
archives = 1m:6h
heartbeat = 90
[billing]
ratecard = $CARD
CONF
ADMIN_TOKEN=
start_collector ref --config "$TMP/ref.conf" --data-dir "$TMP/ref"
REF=$COLLECTOR_PID
check "the single reference collector answers" wait_for 20 answers_health "$RH"
sed "s|^collectors = .*|collectors = tcp://127.0.0.1:$RP|" "$TMP/agent.conf" >"$TMP/agent-ref.conf"
declare -a RPID
for ((h = 0; h < HOSTS; h++)); do
  start_agent "ref-agent$h" --config "$TMP/agent-ref.conf" --libvirt "test://$TMP/node$h.xml" \
    --interval 0.05 --host "h$h" --spool "$TMP/ref-spool$h" --clock-start "$START" \
    --clock-step 60 --count "$POLLS"
  RPID[$h]=$AGENT_PID
done
rok=1
for ((h = 0; h < HOSTS; h++)); do
  wait "${RPID[$h]}" || rok=0
  [[ $(find "$TMP/ref-spool$h" -maxdepth 1 -name '*.vgb' | wc -l) -eq 0 ]] || rok=0
done
eq "the reference agents delivered every batch" "$rok" 1
check "the billing ledger replayed into the single collector" \
  "$REPLAY" send "$LEDGER" "tcp://127.0.0.1:$RP"
for p in p0 p1 p2 acme beta; do
  m=$MONTH; [[ $p == acme || $p == beta ]] && m=2026-10
  curl -sS --max-time 30 -H "Authorization: Bearer $ADMIN_TOKEN" \
    "http://127.0.0.1:$RH/v1/invoices?project=$p&month=$m" >"$TMP/inv-ref-$p.json"
done
# the same batches (the ledger's): the same documents, byte for byte
for p in acme beta; do
  check "$p's 2026-10 invoice from the cluster equals the single collector's, byte for byte" \
    cmp -s "$TMP/inv-c0-$p.json" "$TMP/inv-ref-$p.json"
done
check "and both match the hand-computed ledger" \
  "$REPLAY" check "$LEDGER" 2026-10 "$TMP/inv-c0-acme.json" "$TMP/inv-c0-beta.json"
# the agents' batches: the same hosts, node files and synthetic clock,
# but the test driver's interface counters follow the wall clock, so
# the network-egress lines' byte counts differ between two runs; every
# other line (flavour hours, vCPU, RAM, storage: what both runs' batches
# carry identically) and the rest of the document must be equal
noegress() { jq -S 'del(.lines[] | select(.usage_type == "network-egress")) | del(.subtotals["network-egress"])' "$1"; }
for p in p0 p1 p2; do
  check "$p's $MONTH invoice has instance lines ($(jq -r '.total // .error.message // "?"' "$TMP/inv-ref-$p.json"))" \
    jq -e '[.lines[] | select(.usage_type != "network-egress")] | length > 0' "$TMP/inv-ref-$p.json"
  check "$p's $MONTH invoice from the cluster equals the single collector's but for the egress bytes" \
    cmp -s <(noegress "$TMP/inv-c0-$p.json") <(noegress "$TMP/inv-ref-$p.json")
done
stop_pid "$REF"

# ---- every series on exactly one daemon, one point per poll ----
series() { # DIR: the domains' series, relative paths
  (cd "$1" && find instance disk nic -name '*.rrd' 2>/dev/null) | grep -- '-4000-8000-' | sort
}
series "${RD_DIR[0]}/base" >"$TMP/s0.list"
series "${RD_DIR[1]}/base" >"$TMP/s1.list"
series "$TMP/ref/rrd" >"$TMP/ref.list"
sort "$TMP/s0.list" "$TMP/s1.list" >"$TMP/all.list"
nser=$(wc -l <"$TMP/all.list")
eq "no series is on both daemons" "$(uniq -d "$TMP/all.list" | wc -l)" 0
check "both daemons hold series ($(wc -l <"$TMP/s0.list") + $(wc -l <"$TMP/s1.list"))" \
  test -s "$TMP/s0.list" -a -s "$TMP/s1.list"
check "the daemons hold the single collector's series ($nser, $((HOSTS * DOMAINS)) domains)" \
  cmp -s "$TMP/all.list" "$TMP/ref.list"
eq "the shared registry names as many series" \
  "$(sql "SELECT count(*) FROM vigie_registry.metrics m JOIN vigie_registry.resources r ON r.id = m.resource_id WHERE r.type IN (1, 2, 3) AND r.host ~ '^h[0-9]+$'")" "$nser"
# one rrdtool process reads every file (pipe mode): per file the count of
# known points in (START, END] at the 1-minute tier (a gauge may also
# have one at START itself, a rate cannot) and the count outside
# [START, END]
# cpu.util is a rate the agent derives from two polls: its first value is
# at the second poll, and the point of that minute is unknown, so it has
# one point fewer
cat "$TMP/s0.list" "$TMP/s1.list" >"$TMP/order.list"
{ for i in 0 1; do
    sed "s|^|fetch ${RD_DIR[$i]}/base/|; s|$| AVERAGE -r 60 -s $((START - 600)) -e $((END + 600))|" "$TMP/s$i.list"
  done; } | rrdtool - 2>&1 | awk -v s="$START" -v e="$END" -v n="$POLLS" '
  FNR == NR { name[++nn] = $0; next }
  /^ *value/ { f++; inw[f] = 0; outw[f] = 0; next }
  /^[0-9]+: / { t = $1 + 0; if ($2 == "nan" || $2 == "-nan") { if (t > s && t <= e) miss[f] = miss[f] " " (t - s) / 60 + 1; next }
                if (t > s && t <= e) inw[f]++; else if (t != s) outw[f]++ }
  END { bad = 0
        for (i = 1; i <= f; i++) {
          want = name[i] ~ /\/cpu\.util\.rrd$/ ? n - 2 : n - 1
          if (inw[i] != want || outw[i] != 0) {
            bad++
            if (bad <= 5) printf "%s: %d points in the polls (want %d), %d outside; unknown at poll(s)%s\n", name[i], inw[i], want, outw[i], substr(miss[i], 1, 80) > "/dev/stderr"
          }
        }
        printf "%d %d\n", f, bad }' "$TMP/order.list" - >"$TMP/points.out" 2>"$TMP/points.err"
read -r nf nbad <"$TMP/points.out"
eq "rrdtool read every file" "$nf" "$nser"
eq "every series holds one point per poll, none missing, none outside the polls" "$nbad" 0
[[ -s $TMP/points.err ]] && diag "$(head -3 "$TMP/points.err")"
# On a wrong count, what tells a lost value from an extra one (diag lines,
# only then): for three of the series, the polls (1 = START) of every
# value sent to their daemon, in its -j journal's order (rrdcached
# journals each UPDATE before checking its times, so a value it refused as
# older shows too), "F" where a collector's check FORGOT the file's
# cached values and "W" each write of the file, then the file's last
# update. A value sent once and never again after an F is lost if its
# poll is unknown. A cpu.util point at poll 2 (seen once: 59 points of
# 58) is its first value's minute, unknown in a file created a second
# before that value (librrd counts the 59 s before the file as unknown,
# and a point more than half unknown is unknown); known, it needs either
# a value sent for poll 1, which the agents never derive (the journal
# shows it), or a file created more than 30 s before its first value
# (a create of its own, none in the journal: only a collector's CREATE
# -b would say)
if [[ -s $TMP/points.err ]]; then
  head -3 "$TMP/points.err" | while IFS=: read -r f _; do
    d=0; grep -qx "$f" "$TMP/s1.list" && d=1
    seqs=$(cat "${RD_DIR[$d]}"/journal/rrd.journal.* 2>/dev/null |
      awk -v s="$START" -v f="$f" '$2 != f && substr($2, length($2) - length(f)) != "/" f { next }
                         $1 == "update" { for (k = 3; k <= NF; k++) { split($k, a, ":"); printf "%d ", (a[1] - s) / 60 + 1 } }
                         $1 == "forget" { printf "F " } $1 == "wrote" { printf "W " }')
    diag "$f (daemon $d): last update at poll $(( ($(rrdtool last "${RD_DIR[$d]}/base/$f" 2>/dev/null || echo "$START") - START) / 60 + 1 )); the daemon's journal: ${seqs:0:600}"
  done
  # the losses a collector's check found and could not repair (values a
  # restarted daemon lost, newer ones of another collector's taken
  # first: docs/scaling.md "What holds now"; or, found by a start replay,
  # journaled values maybe never sent)
  diag "collectors' overtaken files: $(grep -h -c -E "lost this collector|lacks this collector's journaled" "$TMP"/c?-?.log 2>/dev/null | tr '\n' ' ')"
  grep -H -E "lost this collector|lacks this collector's journaled" "$TMP"/c?-?.log 2>/dev/null | sed "s|$TMP/||" | head -5 |
    while read -r l; do diag "  $l"; done
fi
# memory.size at every point: the node file's <memory> in bytes
badmem=0
for ((h = 0; h < HOSTS; h++)); do
  for ((i = 0; i < DOMAINS; i++)); do
    f=instance/$(printf '%08x-%04x-4000-8000-%012x' "$i" "$h" "$i")/memory.size.rrd
    d=0; grep -qx "$f" "$TMP/s1.list" && d=1
    echo "fetch ${RD_DIR[$d]}/base/$f AVERAGE -r 60 -s $START -e $END"
  done
done | rrdtool - 2>&1 | awk -v s="$START" '/^[0-9]+: / && $1 + 0 > s && $2 != "nan" && $2 != "-nan" { printf "%.0f\n", $2 }' >"$TMP/mem.vals"
want=$(for ((h = 0; h < HOSTS; h++)); do for ((i = 0; i < DOMAINS; i++)); do
  for ((k = 1; k < POLLS; k++)); do echo $(($(mem_kib $i) * 1024)); done; done; done | md5sum)
eq "memory.size is the test driver's value at every poll of every instance" \
  "$(md5sum <"$TMP/mem.vals")" "$want"
done_testing
