#!/usr/bin/env bash
# publish_body_bound_test.sh — what one POST /v1/measures may cost the
# collector in memory, whatever its body holds: the body is at most
# 16 MiB, but jansson takes about 250 bytes for an empty JSON object, so
# 16 MiB of "{}," (5.6 million objects) took 1.4 GB of the collector's
# memory before the count of measures refused the request (413). The
# body's shape is now counted before it is parsed
# (vg_pub_body_shape): such a body is a 413 that costs no parse.
#
# Measured by the collector's own peak resident size (VmHWM in
# /proc/PID/status), which a refusal before parsing leaves where it
# was; a bound, not a timing. The largest body that can be accepted
# (200,000 measures) is still taken.
source "$(dirname "$0")/lib.sh"
san_no_quarantine # the check below measures the collector's VmHWM
require python3 curl jq

collector_ports
DATA=$TMP/data
P=$("$BIN/vigie-collector" --data-dir "$DATA" token create --project bound 2>/dev/null)
check "collector answers /v1/health" start_api_collector collector --data-dir "$DATA"
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$COLLECTOR_PID/status"; }
code() { # BODYFILE: the status, the message in $TMP/answer
  curl -q -s --max-time 120 -o "$TMP/answer" -w '%{http_code}' -H "Authorization: Bearer $P" \
    -X POST --data-binary @"$1" "$API/v1/measures"
}

# 16 MiB of empty objects, then of commas' worth of numbers
python3 -c "
import sys
n = (16 * 1024 * 1024 - 32) // 3
sys.stdout.write('{\"measures\":[' + '{},' * (n - 1) + '{}]}')" >"$TMP/objects.json"
python3 -c "
import sys
n = (16 * 1024 * 1024 - 32) // 2
sys.stdout.write('{\"measures\":[{\"resource\":\"r\",\"metric\":\"m\",\"value\":1,\"x\":[' + '1,' * (n - 1) + '1]}]}')" \
  >"$TMP/numbers.json"
before=$(hwm_kb)
eq "16 MiB of empty objects is a 413" "$(code "$TMP/objects.json")" 413
grep -q 'more than 200000 measures' "$TMP/answer" && ok "the 413 says the limit" ||
  nok "the 413 says the limit ($(head -c 300 "$TMP/answer"))"
eq "16 MiB of numbers in one point is a 413" "$(code "$TMP/numbers.json")" 413
after=$(hwm_kb)
diag "VmHWM before ${before} kB, after ${after} kB"
# a parse of either body takes hundreds of MB; nothing parsed, the peak
# moves by the request buffers only (two 16 MiB bodies)
if ((after - before < 100 * 1024)); then ok "the refusals cost no parse (peak +$((after - before)) kB)"
else nok "the refusals cost no parse (peak +$((after - before)) kB, want < 100 MB)"; fi

# the largest request that can be accepted still is: 200,000 points
# (with five fields each: seven do not fit in 16 MiB)
python3 -c "
import json, time
t = int(time.time()) - 300000
print(json.dumps({'measures': [{'resource': 'rb', 'metric': 'm', 'value': 1, 'time': t + i,
  'kind': 'gauge'} for i in range(200000)]}, separators=(',', ':')))" >"$TMP/full.json"
eq "200,000 measures are taken" "$(code "$TMP/full.json")" 200
eq "all of them stored" "$(jq -c '[.stored,.duplicates]' "$TMP/answer")" "[200000,0]"
check "the collector is still up" answers_health "$HPORT"
done_testing
