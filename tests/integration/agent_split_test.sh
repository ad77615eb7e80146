#!/usr/bin/env bash
# agent_split_test.sh — a poll too big for one batch reaches the collector
# whole, as several batches, instead of being lost.
#
# The agent polls a libvirt test:/// node of 60 domains (each with a disk
# and a vNIC) with [agent] max_batch_bytes = 4096, far below one poll's
# size (a real host reaches the protocol's 16 MiB with tens of thousands
# of domains), twice. Before, such a poll failed to encode (E2BIG) and
# every value of it was dropped; now it goes as several batches of
# consecutive seqs, the same stream and poll time. Checks: the collector,
# whose max_message_bytes is 4096 too, rejected none; their seqs are consecutive and
# accepted in order, no batch was rejected or left in the spool, and the
# collector knows all 60 instances, their disks and vNICs, the host, and
# the last instance's values.
source "$(dirname "$0")/lib.sh"

N=60
collector_ports
DATA=$TMP/data
{ echo "<node>"
  for ((i = 0; i < N; i++)); do
    printf "<domain type='test'><name>vm%d</name><uuid>%08x-0000-4000-8000-%012x</uuid>" "$i" "$i" "$i"
    printf "<memory unit='KiB'>1048576</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices>"
    printf "<disk type='file' device='disk'><source file='/guest/vm%d.img'/><target dev='vda' bus='virtio'/></disk>" "$i"
    printf "<interface type='ethernet'><mac address='52:54:00:00:%02x:%02x'/><target dev='tap%d'/></interface></devices></domain>\n" \
      $((i >> 8)) $((i & 255)) "$i"
  done
  echo "</node>"; } >"$TMP/node.xml"
cat >"$TMP/agent.conf" <<CONF
[agent]
collector = tcp://127.0.0.1:$PORT
max_batch_bytes = 4096
host_fs = false
drain_ms = 60000
CONF

# the collector refuses (REJECTED) any message over the same bound
printf '[collector]\nmax_message_bytes = 4096\n' >"$TMP/collector.conf"
check "collector answers" start_api_collector collector --config "$TMP/collector.conf" \
  --data-dir "$DATA" --log-level debug
start_agent agent --config "$TMP/agent.conf" --libvirt "test://$TMP/node.xml" --interval 1 \
  --host split-host --spool "$TMP/spool" --count 2 --log-level debug
APID=$AGENT_PID
for _ in $(seq 900); do kill -0 "$APID" 2>/dev/null || break; sleep 0.1; done
wait "$APID"; rc=$?
eq "the agent exits 0 after its two polls" "$rc" 0
check "it says a poll went as several batches" grep -q "does not fit one batch of 4096 bytes: sent as" "$TMP/agent.log"
check "nothing was left out" bash -c "! grep -q 'left out' '$TMP/agent.log'"
eq "its spool is empty" "$(find "$TMP/spool" -maxdepth 1 -name '*.vgb' | wc -l)" 0
eq "no batch was rejected" "$(find "$TMP/spool/rejected" -type f 2>/dev/null | wc -l)" 0

lines=$(grep -o 'accepted batch host=split-host stream=[0-9a-f]* seq=[0-9]*' "$TMP/collector.log")
seqs=$(sed 's/.*seq=//' <<<"$lines")
n=$(grep -c . <<<"$seqs")
diag "the collector accepted $n batches for 2 polls"
check "the two polls went as more than 2 batches ($n)" test "$n" -gt 4
eq "consecutive seqs from 1, accepted in order" "$(tr '\n' ' ' <<<"$seqs")" "$(seq -s ' ' 1 "$n") "
eq "one stream" "$(sed 's/.*stream=\([0-9a-f]*\).*/\1/' <<<"$lines" | sort -u | wc -l)" 1
eq "the collector (max_message_bytes 4096) rejected none" \
  "$(curl -sf --max-time 5 -H "$(api_auth)" "$API/metrics" | awk '$1 == "vigie_collector_batches_rejected_total" { n += $2 } END { print n + 0 }')" 0

count_type() { api "/v1/resources?type=$1&host=split-host&limit=1000" | jq '.resources | length'; }
eq "the collector knows all $N instances" "$(count_type instance)" "$N"
eq "all $N disks" "$(count_type disk)" "$N"
eq "all $N vNICs" "$(count_type nic)" "$N"
eq "and the host" "$(count_type host)" 1
last=$(printf '%08x-0000-4000-8000-%012x' $((N - 1)) $((N - 1)))
check "the last instance has values (cpu.time)" \
  bash -c "curl -sf --max-time 5 -H '$(api_auth)' '$API/v1/resources/$last' | jq -e '.metrics[\"memory.size\"] // .metrics[\"cpu.time\"]'"
check "the host's self-metric agent.batch.split counts the split polls" \
  bash -c "curl -sf --max-time 5 -H '$(api_auth)' '$API/v1/resources/split-host' | jq -e '.metrics[\"agent.batch.split\"]'"
done_testing
