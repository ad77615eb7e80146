#!/usr/bin/env bash
# scripts/demo.sh LIBVIRT_URI INTERVAL BUILD_DIR — `make demo`.
#
# Runs vigie-collector and vigie-agent in the foreground on this machine,
# against LIBVIRT_URI (default: libvirt's built-in test driver, no daemon
# needed) and this host's /proc, with a fresh data dir. Prints how to look
# at the data once the first batch is stored. Ctrl-C stops both cleanly.
set -uo pipefail
LIBVIRT=${1:-test:///default}
INTERVAL=${2:-2}
BUILD=${3:-build}
BIN=$BUILD/bin
DATA=${VIGIE_DEMO_DIR:-$(mktemp -d /tmp/vigie-demo.XXXXXX)}
HTTP=${VIGIE_DEMO_HTTP:-127.0.0.1:7480}
LISTEN=${VIGIE_DEMO_LISTEN:-tcp://127.0.0.1:7470}
API=http://$HTTP

mkdir -p "$DATA"
echo "vigie demo: data in $DATA, libvirt $LIBVIRT, interval ${INTERVAL}s"
# The API wants a bearer token: an admin token, made offline in the data dir
# (only its HMAC is stored; the CLI reads it from $VIGIE_TOKEN).
TOKEN=$("$BIN/vigie-collector" --data-dir "$DATA" token create --admin --name demo 2>/dev/null) || {
  echo "vigie demo: cannot create an API token in $DATA" >&2; exit 1; }
export VIGIE_TOKEN=$TOKEN
# --allow-unsigned: the demo's agent has no key (docs/security.md)
"$BIN/vigie-collector" --allow-unsigned --listen "$LISTEN" --http "$HTTP" --data-dir "$DATA" &
cpid=$!
"$BIN/vigie-agent" --collector "$LISTEN" --libvirt "$LIBVIRT" --interval "$INTERVAL" \
  --spool "$DATA/spool" &
apid=$!

stop() {
  trap - INT TERM
  echo; echo "vigie demo: stopping"
  kill -TERM "$apid" 2>/dev/null; wait "$apid" 2>/dev/null
  kill -TERM "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null
  echo "vigie demo: stopped (data kept in $DATA)"
  exit 0
}
trap stop INT TERM

# Wait (at most 3 intervals + start-up) for the first instance to be stored.
deadline=$((SECONDS + 10 + 3 * ${INTERVAL%.*}))
inst=""
while [[ $SECONDS -lt $deadline ]]; do
  if ! kill -0 "$cpid" 2>/dev/null || ! kill -0 "$apid" 2>/dev/null; then
    echo "vigie demo: a daemon exited; see the messages above" >&2
    kill "$cpid" "$apid" 2>/dev/null; exit 1
  fi
  inst=$(curl -sf -H "Authorization: Bearer $TOKEN" "$API/v1/resources?type=instance" 2>/dev/null | jq -r '.resources[0].id // empty' 2>/dev/null)
  [[ -n $inst ]] && break
  sleep 0.5
done
CLI=$BIN/vigie
[[ $HTTP == 127.0.0.1:7480 ]] || CLI="$CLI --api $API"
# The console signs in from the URL's fragment (#token=..., kept in the
# browser's session storage and dropped from the address bar; the fragment is never
# sent to the server), so a first-time user lands signed in.
echo "vigie demo: web console, signed in: $API/#token=$TOKEN"
if [[ -z $inst ]]; then
  echo "vigie demo: no instance reported yet (is $LIBVIRT reachable?)" >&2
else
  cat <<MSG

  ------------------------------------------------------------------
  vigie is collecting. Open the web console (signed in):

    $API/#token=$TOKEN

  In another terminal, try:

    export VIGIE_TOKEN=$TOKEN   # the demo's admin API token
    curl -s -H "Authorization: Bearer \$VIGIE_TOKEN" '$API/v1/resources?type=instance' | jq
    curl -s -H "Authorization: Bearer \$VIGIE_TOKEN" '$API/v1/resources/$inst/latest' | jq
    curl -s -H "Authorization: Bearer \$VIGIE_TOKEN" '$API/metrics' | head
    $CLI resources
    $CLI show $inst
    $CLI measures $inst cpu.util --start -10m --sparkline
    $CLI stats $inst cpu.util --start -1h --period 300 --statistics Average,p99
    $CLI top
    $CLI graph -o cpu.png $inst cpu.util --start -1h

  Latest values are there now; measures fill at each minute boundary
  (1-minute RRD step). rrdtool reads the files: ls $DATA/rrd
  Ctrl-C stops both daemons.
  ------------------------------------------------------------------

MSG
fi
wait -n "$cpid" "$apid"
echo "vigie demo: a daemon exited" >&2
kill -TERM "$cpid" "$apid" 2>/dev/null
wait
exit 1
