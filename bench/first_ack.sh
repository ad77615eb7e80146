#!/usr/bin/env bash
# first_ack.sh — how long a new compute host waits for its first batch to
# be acknowledged by a collector on rrdcached (docs/benchmarks.md "A new
# host's first batch").
#
# A real rrdcached (write-through, -O), a collector on it with the
# default [agent] ack_timeout_ms (5000: the receiver's opens of new series
# bounded at 1250 ms a batch), and an agent on a libvirt test:/// node of
# N domains (a disk and a vNIC each), --count 1: it polls once, then
# drains, and exits as soon as its spool is empty, i.e. when its first
# batch was acknowledged. Printed: the agent's run time (start to exit),
# the RETRY answers the collector gave for new series, and the load.
#
#   VIGIE_BUILD=build bash bench/first_ack.sh [N]
source "$(dirname "$0")/../tests/integration/lib.sh"

N=${1:-300}
collector_ports
start_rrdcached d -R -O >/dev/null || { echo "rrdcached did not start" >&2; exit 1; }
{ echo "<node>"
  for ((i = 0; i < N; i++)); do
    printf "<domain type='test'><name>vm%d</name><uuid>%08x-0000-4000-8000-%012x</uuid>" "$i" "$i" "$i"
    printf "<memory unit='KiB'>1048576</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices>"
    printf "<disk type='file' device='disk'><source file='/guest/vm%d.img'/><target dev='vda' bus='virtio'/></disk>" "$i"
    printf "<interface type='ethernet'><mac address='52:54:00:00:%02x:%02x'/><target dev='tap%d'/></interface></devices></domain>\n" \
      $((i >> 8)) $((i & 255)) "$i"
  done
  echo "</node>"; } >"$TMP/node.xml"
printf '[storage]\nbackend = rrdcached\ndaemons = %s\n' "$RRDCACHED_UNIX" >"$TMP/collector.conf"
printf '[agent]\ncollector = tcp://127.0.0.1:%s\nhost_fs = false\ndrain_ms = 300000\n' "$PORT" >"$TMP/agent.conf"
start_api_collector collector --config "$TMP/collector.conf" --data-dir "$TMP/data" ||
  { echo "collector did not start" >&2; exit 1; }
t0=$(date +%s.%N)
start_agent agent --config "$TMP/agent.conf" --libvirt "test://$TMP/node.xml" --interval 1 \
  --host first-ack --spool "$TMP/spool" --count 1
wait "$AGENT_PID"
rc=$?
t1=$(date +%s.%N)
m=$(curl -sf --max-time 5 -H "$(api_auth)" "$API/metrics")
retry=$(awk '/^vigie_store_batches_retry_total\{reason="new_series"\}/ { n += $2 } END { print n + 0 }' <<<"$m")
series=$(find "$RRDCACHED_BASE" -name "*.rrd" | wc -l); left=$(find "$TMP/spool" -maxdepth 1 -name "*.vgb" | wc -l)
printf 'N=%d series=%d spool_left=%d agent_rc=%d first_ack_s=%.2f new_series_retries=%d load="%s"\n' \
  "$N" "$series" "$left" "$rc" "$(echo "$t1 - $t0" | bc)" "$retry" "$(uptime | sed 's/.*load average: //')"
