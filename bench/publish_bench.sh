#!/usr/bin/env bash
# bench/publish_bench.sh — custom-metric ingest through the HTTP API
# (POST /v1/measures), for `make bench` (bench/run.sh calls it) or alone:
#   VIGIE_BUILD=build bash bench/publish_bench.sh
#
# A real vigie-collector with its data directory on disk (BENCH_PUBLISH_DIR,
# default /var/tmp: the journal's fdatasync is real, so a 200 means the
# values are on disk, as the API promises). CLIENTS curl processes post at
# once, each REQS requests in sequence of 20,000 points (250 series of its
# own x 80 timestamps a second apart, later each request, so nothing is a
# duplicate). Bodies are written before the clock starts. Every answer
# must be a 200 whose "stored" is 20,000; the rate is points / wall time
# of the posting. Target: >= 100,000 points/s. Prints "RESULT publish ..."
# (appended to $VIGIE_BUILD/bench/results.txt); a missed target fails only
# with BENCH_PUBLISH_STRICT=1 (the machine is shared); a wrong answer always
# fails.
set -u
BUILD=${VIGIE_BUILD:-build}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
BASE=${BENCH_PUBLISH_DIR:-/var/tmp}
CLIENTS=${BENCH_PUBLISH_CLIENTS:-4}
REQS=${BENCH_PUBLISH_REQS:-10}
STRICT=${BENCH_PUBLISH_STRICT:-0}
OUT=$BUILD/bench/results.txt
[[ -x $BUILD/bin/vigie-collector ]] || { echo "publish_bench: $BUILD/bin/vigie-collector missing" >&2; exit 1; }
mkdir -p "$BUILD/bench"

DIR=$(mktemp -d "$BASE/vigie-publish-bench.XXXXXX")
CPID=
cleanup() {
  [[ -n $CPID ]] && { kill -TERM "$CPID" 2>/dev/null; wait "$CPID" 2>/dev/null; }
  rm -rf "$DIR"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HPORT=$(port); PORT=$(port)
TOKEN=$("$BUILD/bin/vigie-collector" --data-dir "$DIR/data" token create --project bench 2>/dev/null)
printf '[collector]\npublish_series_max = 100000\npublish_points_per_s = 10000000\n' >"$DIR/vigie.conf"
"$BUILD/bin/vigie-collector" --allow-unsigned --config "$DIR/vigie.conf" --data-dir "$DIR/data" \
  --listen tcp://127.0.0.1:$PORT --http 127.0.0.1:$HPORT --log-level warn >"$DIR/collector.log" 2>&1 &
CPID=$!
for _ in $(seq 100); do curl -q -sf "http://127.0.0.1:$HPORT/v1/health" >/dev/null && break; sleep 0.1; done

T0=$(( $(date +%s) - 7200 ))
python3 - "$DIR" "$CLIENTS" "$REQS" "$T0" <<'PY'
import sys
d, clients, reqs, t0 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for c in range(clients):
    for r in range(reqs):
        pts = []
        for k in range(80):
            t = t0 + r * 80 + k
            for res in range(5):
                for m in range(50):
                    pts.append('{"resource":"bench-%d-%d","metric":"app.m%d","time":%d,"value":%d}' % (c, res, m, t, k))
        open('%s/body-%d-%d.json' % (d, c, r), 'w').write('{"measures":[' + ','.join(pts) + ']}')
PY
client() { # client C: its requests in order, one answer a line
  local c=$1 r
  for r in $(seq 0 $((REQS - 1))); do
    curl -q -s --max-time 120 -H "Authorization: Bearer $TOKEN" -X POST \
      --data-binary @"$DIR/body-$c-$r.json" "http://127.0.0.1:$HPORT/v1/measures"
    echo
  done >"$DIR/answers-$c"
}
start=$(date +%s.%N)
pids=()
for c in $(seq 0 $((CLIENTS - 1))); do client "$c" & pids+=($!); done
wait "${pids[@]}"
end=$(date +%s.%N)

total=$((CLIENTS * REQS * 20000))
good=$(cat "$DIR"/answers-* | grep -c '"stored":20000,"duplicates":0')
rate=$(python3 -c "print(int($total / ($end - $start)))")
secs=$(python3 -c "print('%.2f' % ($end - $start))")
syncs=$(grep -o 'journal [0-9]* bytes in [0-9]* syncs' "$DIR/collector.log" | tail -1)
line="RESULT publish points=$total requests=$((CLIENTS * REQS)) clients=$CLIENTS seconds=$secs points_per_s=$rate all_200=$([[ $good == $((CLIENTS * REQS)) ]] && echo yes || echo no) dir=$BASE"
echo "$line"; echo "$line" >>"$OUT"
fail=0
if [[ $good != $((CLIENTS * REQS)) ]]; then
  echo "  FAIL: $good of $((CLIENTS * REQS)) answers were a 200 storing 20000 points"; head -c 300 "$DIR"/answers-0; fail=1
fi
if (( rate >= 100000 )); then echo "  met: >= 100,000 points/s"; else
  echo "  MISSED: >= 100,000 points/s"; [[ $STRICT == 1 ]] && fail=1; fi
exit $fail
