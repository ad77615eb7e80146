#!/usr/bin/env bash
# spine_test.sh — the whole metering path with the real binaries:
# vigie-agent (libvirt test driver + this host's /proc) -> nanomsg ->
# vigie-collector -> RRD files + registry -> HTTP API -> vigie CLI.
#
# The agent runs with a synthetic clock (one poll = one simulated minute,
# five polls a second), so twenty minutes of RRD data exist after a few
# seconds. Values are checked against what libvirt itself reports for the
# same domain (virsh), against rrdtool's own reading of the files, and
# between the API and the CLI.
source "$(dirname "$0")/lib.sh"

URI=test:///default
UUID=6695eb01-f6a4-8304-79aa-97f2502e193f
collector_ports
DATA=$TMP/data
NOW=$(date +%s)
START=$(( (NOW - 7200) / 60 * 60 ))   # two hours ago, on a minute boundary

check "collector answers /v1/health" start_api_collector collector \
  --data-dir "$DATA" --log-level debug
start_agent agent --collector tcp://127.0.0.1:$PORT --libvirt $URI --interval 0.2 \
  --host it-host --spool "$TMP/spool" --clock-start $START --clock-step 60

# 25 polls = 25 simulated minutes.
host_minutes() {
  local t
  t=$(api "/v1/resources/$UUID" | jq -r '.last_seen // empty') || return 1
  [[ -n $t ]] || return 1
  [[ $(( $(date -d "$t" +%s) - START )) -ge 1440 ]]
}
check "25 simulated minutes of polls arrive within 30 s" wait_for 30 host_minutes
stop_pid "$AGENT_PID"; rc=$?
eq "agent exits 0 on SIGTERM" "$rc" 0

# ---- resources ----
res=$(api "/v1/resources?limit=1000")
eq "instance listed with the domain's UUID" \
  "$(jq -r --arg u $UUID '.resources[] | select(.id==$u) | .type' <<<"$res")" instance
inst=$(api "/v1/resources/$UUID")
eq "instance name is the domain name" "$(jq -r .name <<<"$inst")" test
eq "instance project defaults to 'default'" "$(jq -r .project <<<"$inst")" default
eq "instance host is the agent's --host" "$(jq -r .host <<<"$inst")" it-host
eq "instance is active" "$(jq -r .state <<<"$inst")" active
eq "disk resource <uuid>-vda belongs to the instance" \
  "$(api "/v1/resources/$UUID-vda" | jq -r '.type + " " + .parent')" "disk $UUID"
eq "nic resource <uuid>-testnet0 belongs to the instance" \
  "$(api "/v1/resources/$UUID-testnet0" | jq -r '.type + " " + .parent')" "nic $UUID"
eq "host resource it-host" "$(api /v1/resources/it-host | jq -r .type)" host
eq "type filter returns only disks" \
  "$(api '/v1/resources?type=disk' | jq -r '[.resources[].type] | unique | join(",")')" disk

# ---- latest values agree with libvirt ----
last() { jq -r --arg m "$2" '.metrics[$m].last_value // "missing"' <<<"$1"; }
dominfo=$(virsh -c $URI dominfo test)
memkib=$(awk '/Used memory/ {print $3}' <<<"$dominfo")
eq "memory.size = libvirt's current memory" "$(last "$inst" memory.size | awk '{printf "%.0f", $1}')" $((memkib * 1024))
eq "vcpus = libvirt's CPU(s)" "$(last "$inst" vcpus | awk '{printf "%.0f", $1}')" "$(awk '/CPU\(s\)/ {print $2}' <<<"$dominfo")"
cpu=$(awk '/CPU time/ {sub("s","",$3); print $3}' <<<"$dominfo")
check "cpu.time agrees with libvirt (1e-6 relative: the test driver's counters grow with wall time)" \
  approx "$(last "$inst" cpu.time)" "$cpu" 1e-6
disk=$(api "/v1/resources/$UUID-vda")
blk=$(virsh -c $URI domblkstat test vda)
for pair in rd_req:disk.read.requests rd_bytes:disk.read.bytes wr_req:disk.write.requests wr_bytes:disk.write.bytes; do
  v=$(awk -v k="${pair%%:*}" '$2 == k {print $3}' <<<"$blk")
  check "${pair#*:} agrees with virsh domblkstat ${pair%%:*}" approx "$(last "$disk" "${pair#*:}")" "$v" 1e-6
done
nic=$(api "/v1/resources/$UUID-testnet0")
ifs=$(virsh -c $URI domifstat test testnet0)
for pair in rx_bytes:net.rx.bytes rx_packets:net.rx.packets tx_bytes:net.tx.bytes tx_packets:net.tx.packets; do
  v=$(awk -v k="${pair%%:*}" '$2 == k {print $3}' <<<"$ifs")
  check "${pair#*:} agrees with virsh domifstat ${pair%%:*}" approx "$(last "$nic" "${pair#*:}")" "$v" 1e-6
done
hostres=$(api /v1/resources/it-host)
memtotal=$(awk '/^MemTotal:/ {printf "%.0f", $2 * 1024}' /proc/meminfo)
eq "host.memory.total = /proc/meminfo MemTotal" "$(last "$hostres" host.memory.total | awk '{printf "%.0f", $1}')" "$memtotal"
check "host.cpu.idle is a percentage" awk -v v="$(last "$hostres" host.cpu.idle)" 'BEGIN { exit !(v >= 0 && v <= 100) }'

# ---- measures from the RRD files ----
m=$(api "/v1/measures?resource=$UUID&metric=memory.size&start=$START&end=$((START + 1500))&granularity=60")
n=$(jq '.points | length' <<<"$m")
check "memory.size has >= 20 one-minute points over 25 simulated minutes (got $n)" test "$n" -ge 20
eq "every memory.size point equals libvirt's memory" \
  "$(jq -r '[.points[][1]] | unique | map(tostring) | join(",")' <<<"$m")" "$((memkib * 1024))"
eq "measures report granularity 60" "$(jq -r .granularity <<<"$m")" 60
c=$(api "/v1/measures?resource=$UUID-vda&metric=disk.read.bytes&start=$START&end=$((START + 1500))&granularity=60")
eq "a counter comes out as a rate" "$(jq -r .kind <<<"$c")/$(jq -r .unit <<<"$c")" "counter/B/s"
check "counter rates are never negative" jq -e '(.points | length) > 0 and all(.points[]; .[1] >= 0)' <<<"$c"
m5=$(api "/v1/measures?resource=$UUID&metric=memory.size&start=$START&end=$((START + 1500))&granularity=300")
check "5-minute archive has points too" jq -e '.granularity == 300 and (.points | length) >= 3' <<<"$m5"

# ---- the files, read by rrdtool itself ----
f=$DATA/rrd/instance/$UUID/memory.size.rrd
check "RRD file laid out by type/resource/metric" test -f "$f"
fetch=$(rrdtool fetch "$f" AVERAGE -r 60 -s $START -e $((START + 1500)) | awk -F': ' 'NF==2 && $2 !~ /nan/ {printf "%d %.0f\n", $1 - 60, $2}')  # rrdtool prints interval ends; the API gives starts
apiv=$(jq -r '.points[] | "\(.[0]) \(.[1])"' <<<"$m" | while read -r t v; do printf '%d %.0f\n' "$(date -d "$t" +%s)" "$v"; done)
eq "rrdtool fetch agrees with the API, point for point" "$fetch" "$apiv"
bad=0; total=0
while IFS= read -r -d '' file; do
  total=$((total + 1))
  if ! err=$(rrdtool info "$file" 2>&1 >/dev/null); then
    bad=$((bad + 1)); echo "# rrdtool info $file: $err"
  fi
done < <(find "$DATA/rrd" -name '*.rrd' -print0)
check "rrdtool info reads all $total RRD files" test "$total" -gt 20 -a "$bad" -eq 0

# ---- the CLI ----
out=$("$BIN/vigie" --api "$API" resources 2>&1)
check "vigie resources lists the instance" grep -q "$UUID" <<<"$out"
cj=$("$BIN/vigie" --api "$API" measures "$UUID" memory.size --start $START --end $((START + 1500)) --granularity 60 --json)
eq "vigie measures --json returns what the API returns" "$(jq -c .points <<<"$cj")" "$(jq -c .points <<<"$m")"
"$BIN/vigie" --api "$API" measures nosuch memory.size >/dev/null 2>&1; rc=$?
eq "vigie exits 1 on an API error (unknown resource)" "$rc" 1
"$BIN/vigie" --api "http://127.0.0.1:1" resources >/dev/null 2>&1; rc=$?
eq "vigie exits 3 when it cannot connect" "$rc" 3

# ---- bad input: the collector counts, logs once and keeps serving ----
reply=$(timeout 5 nanocat --req --connect tcp://127.0.0.1:$PORT --data 'not a batch' --raw 2>/dev/null | head -c 4)
eq "garbage gets a REJECTED ack" "$reply" "VGA1"
head -c 100 /dev/urandom > "$TMP/rand.bin"
timeout 5 nanocat --req --connect tcp://127.0.0.1:$PORT --file "$TMP/rand.bin" --raw >/dev/null 2>&1
check "collector still alive after malformed messages" kill -0 "$COLLECTOR_PID"
eq "and still answers the API" "$(api_code /v1/health)" 200
check "the rejection is logged" grep -q -i 'reject' "$TMP/collector.log"

# ---- hostile names from the wire stay inside the data dir ----
evil="../../../../tmp/vigie-evil-$$"
start_agent evil --collector tcp://127.0.0.1:$PORT --libvirt $URI --interval 0.2 \
  --host "$evil" --spool "$TMP/spool-evil" --clock-start $START --clock-step 60
enc=$(jq -rn --arg s "$evil" '$s|@uri')
check "a host named '$evil' is stored and listed under its real name" \
  wait_for 30 bash -c "curl -sf -H '$(api_auth)' '$API/v1/resources/$enc' | jq -e '.type == \"host\"'"
stop_pid "$AGENT_PID"
check "nothing was written outside the data dir" test ! -e "/tmp/vigie-evil-$$"
outside=$(find "$DATA/rrd" -name '*.rrd' -exec realpath {} + | grep -vc "^$(realpath "$DATA")/rrd/" || true)
eq "every RRD file resolves inside data_dir/rrd" "$outside" 0

stop_pid "$COLLECTOR_PID"; rc=$?
eq "collector stops cleanly on SIGTERM" "$rc" 0
done_testing
