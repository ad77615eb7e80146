#!/usr/bin/env bash
# shared_placement_test.sh — two collectors on one PostgreSQL state and
# shared rrdcached daemons agree on which daemon holds each series (the
# placement record in the shared state, collector/placement.c):
#  - collector c1 writes a host's series on daemons A and B; daemon C is
#    added to both collectors' lists (first in the list) and they restart;
#    the agent fails over to c2, which never wrote those series: no file
#    of them appears on C, every value lands in the original file, and
#    c2's API reads the values both collectors wrote;
#  - two agents send the same new instances' series to both collectors at
#    once while their daemon lists differ (a rolling configuration
#    change): each series is one file, on one daemon;
#  - `storage move` records the new owner in the shared record, and a
#    collector whose owners file still names the source follows it.
# SKIP, with the reason, only when PostgreSQL or rrdcached cannot run.
source "$(dirname "$0")/lib.sh"

require rrdcached jq
start_shared_state
sql() { psql "$STATE" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }

start_rrdcached a -R -O || bail "rrdcached A starts"
A=$RRDCACHED_UNIX A_BASE=$RRDCACHED_BASE
start_rrdcached b -R -O || bail "rrdcached B starts"
B=$RRDCACHED_TCP B_BASE=$RRDCACHED_BASE
start_rrdcached c -R -O || bail "rrdcached C starts"
C=$RRDCACHED_TCP C_BASE=$RRDCACHED_BASE
ok "three rrdcached daemons: A $A, B $B, C $C"

KEY=$TMP/tokens.key
START=$(( ($(date +%s) - 6 * 3600) / 3600 * 3600 ))
conf() { # NAME DATA_DIR LISTEN_PORT HTTP_PORT DAEMONS
  state_conf "$TMP/$1.conf" "$3" "$4" "$2" "$KEY" <<CONF
[storage]
backend = rrdcached
daemons = $5
step = 60
heartbeat = 600
archives = 1m:1d,5m:7d
CONF
}
P1=$(free_port); H1=$(free_port); P2=$(free_port); H2=$(free_port)
collector() { # NAME DATA PORT HTTP DAEMONS
  conf "$@"
  start_collector "$1" --config "$TMP/$1.conf"
  wait_for 20 answers_health "$4"
}
agent() { # NAME COLLECTOR_PORT HOST LIBVIRT CLOCK_START COUNT
  # the host's figures from a fixed /proc: every series in every poll
  start_agent "$1" --collector tcp://127.0.0.1:$2 --libvirt "$4" --interval 0.05 \
    --proc "$ROOT/tests/fixtures/proc" \
    --host "$3" --spool "$TMP/spool-$3" --clock-start "$5" --clock-step 60 --count "$6"
}
files() { (cd "$1" && find . -name '*.rrd' | sed 's|^\./||' | sort); }

mkdir -p "$TMP/data1" "$TMP/data2"
conf c1 "$TMP/data1" "$P1" "$H1" "$A, $B"
ADMIN_TOKEN=$("$BIN/vigie-collector" --config "$TMP/c1.conf" token create --admin --name it \
  2>"$TMP/token.err")
check "an admin token in the shared state" grep -q '^vgt_' <<<"$ADMIN_TOKEN"
export VIGIE_TOKEN=$ADMIN_TOKEN

# ---- c1 writes a host's series on A and B ----
check "c1 starts on daemons A and B" collector c1 "$TMP/data1" "$P1" "$H1" "$A, $B"
C1=$COLLECTOR_PID
agent ag1 "$P1" sp-host test:///default $START 20
wait "$AGENT_PID"
stop_pid "$C1"
{ files "$A_BASE"; files "$B_BASE"; } | sort >"$TMP/files.1"
n=$(wc -l <"$TMP/files.1")
check "the series are files on A and B ($n), none on C" \
  bash -c "[[ $n -ge 8 && -z \$(ls -A '$C_BASE') ]]"
eq "each has its row in the shared placement record" \
  "$(sql 'SELECT count(*) FROM vigie_storage.series_owners')" "$n"
bad=0
for f in $(cat "$TMP/files.1"); do
  [[ -e $A_BASE/$f ]] && owner=$A || owner=$B
  [[ $(sql "SELECT address FROM vigie_storage.series_owners WHERE name = '$f'") == "$owner" ]] ||
    { bad=$((bad + 1)); diag "$f: recorded on another daemon"; }
done
eq "the record names the daemon of every file" "$bad" 0

# ---- C is added (first in the list) and both restart; the agent fails
# over to c2, which never wrote these series ----
check "c1 restarts with C added" collector c1 "$TMP/data1" "$P1" "$H1" "$C, $A, $B"
C1=$COLLECTOR_PID
check "c2 starts with C added" collector c2 "$TMP/data2" "$P2" "$H2" "$C, $A, $B"
C2=$COLLECTOR_PID
agent ag2 "$P2" sp-host test:///default $((START + 1200)) 20
wait "$AGENT_PID"
eq "every batch was acknowledged by c2 (the agent's spool is empty)" \
  "$(ls "$TMP/spool-sp-host"/*.vgb 2>/dev/null | wc -l)" 0
API=http://127.0.0.1:$H2
UUID=6695eb01-f6a4-8304-79aa-97f2502e193f
pts=$(api "/v1/measures?resource=$UUID&metric=memory.size&start=$START&end=$((START + 2400))&granularity=60" |
  jq '[.points[] | select(.[1] != null)] | length')
check "c2's API reads what both collectors wrote ($pts one-minute points, want >= 36)" \
  test "${pts:-0}" -ge 36
early=$(api "/v1/measures?resource=$UUID&metric=memory.size&start=$START&end=$((START + 1140))&granularity=60" |
  jq '[.points[] | select(.[1] != null)] | length')
check "... including c1's minutes ($early)" test "${early:-0}" -ge 17
h=$(curl -sf "$API/v1/health")
eq "c2's /v1/health shows the shared placement record up" "$(jq -r .placement.state <<<"$h")" up
check "  with the series it claimed or looked up" \
  test "$(jq '.placement.claims + .placement.lookups' <<<"$h")" -ge 1
stop_pid "$C2"
stop_pid "$C1"
eq "no file on the new daemon C" "$(files "$C_BASE")" ""
{ files "$A_BASE"; files "$B_BASE"; } | sort >"$TMP/files.2"
check "the same files on A and B as before" cmp -s "$TMP/files.1" "$TMP/files.2"
late=0
for f in $(cat "$TMP/files.1"); do
  [[ -e $A_BASE/$f ]] && p=$A_BASE/$f || p=$B_BASE/$f
  if [[ $(rrdtool last "$p") -ge $((START + 1200 + 10 * 60)) ]]; then late=$((late + 1))
  else diag "$f: last update $(rrdtool last "$p")"; fi
done
eq "c2's values are in the original files (last update in c2's minutes)" "$late" "$n"

# ---- the race: the same new series, two collectors, two daemon lists
# (a rolling configuration change: c1 does not list C yet) ----
check "c1 restarts with A and B only" collector c1 "$TMP/data1" "$P1" "$H1" "$A, $B"
C1=$COLLECTOR_PID
check "c2 restarts with C, A and B" collector c2 "$TMP/data2" "$P2" "$H2" "$C, $A, $B"
C2=$COLLECTOR_PID
NODE=test://$ROOT/tests/fixtures/node-nova.xml
agent rx "$P1" race-x "$NODE" $((START + 3600)) 8
AX=$AGENT_PID
agent ry "$P2" race-y "$NODE" $((START + 3600)) 8
AY=$AGENT_PID
wait "$AY"
# a series c2 placed on C first waits on c1 (RETRY: c1 cannot create it
# where it does not know the daemon) until the change reaches c1
stop_pid "$C1"
check "c1 restarts with C added (the change completed)" \
  collector c1 "$TMP/data1" "$P1" "$H1" "$C, $A, $B"
C1=$COLLECTOR_PID
wait "$AX" # it stopped with what c1 could not take in its spool
agent rx2 "$P1" race-x "$NODE" $((START + 3600 + 8 * 60)) 1
wait "$AGENT_PID"
eq "agent race-x delivered everything to c1 (its spool is empty)" \
  "$(ls "$TMP/spool-race-x"/*.vgb 2>/dev/null | wc -l)" 0
stop_pid "$C1"
stop_pid "$C2"
{ files "$A_BASE"; files "$B_BASE"; files "$C_BASE"; } | grep '^instance/11111111-' | sort >"$TMP/race"
n_race=$(sort -u "$TMP/race" | wc -l)
check "the new instances' series were created ($n_race)" test "$n_race" -ge 10
eq "each is one file on one daemon" "$(sort "$TMP/race" | uniq -d)" ""
eq "the record names one daemon for each" \
  "$(sql "SELECT count(*) FROM vigie_storage.series_owners WHERE name LIKE 'instance/11111111-%'")" \
  "$n_race"
check "c2's log says nothing went wrong with placement" \
  bash -c "! grep -q 'storage placement' '$TMP/c2.log'"

# ---- storage move records the new owner in the shared record; c1, whose
# owners file still names the source, follows it at its start ----
files "$B_BASE" | grep '^instance/11111111-' >"$TMP/moving"
n_b=$(wc -l <"$TMP/moving")
n_c=$(files "$C_BASE" | grep -c '^instance/11111111-')
"$BIN/vigie-collector" --config "$TMP/c2.conf" storage move --from "$B" --to "$C" \
  --from-dir "$B_BASE" --to-dir "$C_BASE" --series 'instance/11111111-*' \
  >"$TMP/mv.out" 2>"$TMP/mv.err"
eq "storage move from B to C succeeds" "$?" 0
diag "$(cat "$TMP/mv.out")"
check "it moved the new instances' series B held ($n_b)" test "$n_b" -ge 1
eq "none of them is left on B" "$(files "$B_BASE" | grep -c '^instance/11111111-')" 0
eq "the shared record names C for each file on C" \
  "$(sql "SELECT count(*) FROM vigie_storage.series_owners WHERE name LIKE 'instance/11111111-%' AND address = '$C'")" \
  "$((n_b + n_c))"
check "c1 starts" collector c1 "$TMP/data1" "$P1" "$H1" "$C, $A, $B"
C1=$COLLECTOR_PID
check "c1 says its owners file disagreed and the shared record won" \
  grep -q "the owners file here says $B, the shared record says $C" "$TMP/c1.log"
API=http://127.0.0.1:$H1
f=$(grep '/memory\.' "$TMP/moving" | head -1)
if [[ -z $f ]]; then f=$(head -1 "$TMP/moving"); fi
id=$(cut -d/ -f2 <<<"$f"); metric=$(basename "$f" .rrd)
pts=$(api "/v1/measures?resource=$id&metric=$metric&start=$((START + 3500))&end=$((START + 4200))&granularity=60" |
  jq '[.points[] | select(.[1] != null)] | length')
check "c1's API reads a moved series from C ($f: $pts points)" test "${pts:-0}" -ge 5
stop_pid "$C1"
done_testing
