#!/usr/bin/env bash
# publish_sparse_test.sh — measures published less often than the agents'
# [storage] heartbeat (600 s) read back (docs/api.md, "How published
# points read back"): a gauge published every 15 minutes and one published
# once a day, one POST /v1/measures per point with its own time, read in
# GET /v1/measures at 60 s and 3600 s, each row holding the value of the
# point that ends its interval (RRD's GAUGE with a heartbeat longer than
# the step: [storage] publish_heartbeat), and the first point of a series
# in the step before it (its file starts one step before it), also when it
# falls in the middle of its step. The same on both storage engines: local
# files and rrdcached. Times are in the last days, given in the requests:
# nothing waits for the wall clock.
source "$(dirname "$0")/lib.sh"
require rrdcached

NOW=$(date +%s)
H=$(( NOW / 3600 * 3600 - 3 * 3600 ))   # a whole hour, 3 h ago
D=$(( NOW / 86400 * 86400 - 8 * 86400 )) # a midnight, 8 days ago
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
as() { curl -q -s --max-time 20 -H "Authorization: Bearer $TOK" "$@"; }
pub() { # RESOURCE TIME VALUE: one point, one request; prints .stored
  printf '{"measures":[{"resource":"%s","metric":"size","time":"%s","value":%s}]}' \
    "$1" "$(iso "$2")" "$3" |
    as -X POST -H 'Content-Type: application/json' --data-binary @- "$API/v1/measures" | jq -c .stored
}
# rows RESOURCE START END GRANULARITY: the rows read as [[time, value]...]
rows() {
  local r
  r=$(as "$API/v1/measures?resource=$1&metric=size&start=$(iso "$2")&end=$(iso "$3")&granularity=$4")
  jq -ce '[.points[] | [.[0], .[1]]]' <<<"$r" 2>/dev/null || echo "$r"
}
# runs RESOURCE START END GRANULARITY: the values read, as [value, rows]
# runs in time order (15 rows of 20 then 15 rows of 30: [[20,15],[30,15]])
runs() {
  local r
  r=$(as "$API/v1/measures?resource=$1&metric=size&start=$(iso "$2")&end=$(iso "$3")&granularity=$4")
  jq -ce '[.points[][1]] | reduce .[] as $v ([]; if length > 0 and .[-1][0] == $v
      then .[-1][1] += 1 else . + [[$v, 1]] end)' <<<"$r" 2>/dev/null || echo "$r"
}

scenario() { # NAME CONFIG_BODY
  local name=$1 data=$TMP/data-$1
  collector_ports
  printf '%b' "$2" >"$TMP/$name.conf"
  check "$name: the collector starts" start_api_collector "$name" --config "$TMP/$name.conf" \
    --data-dir "$data"
  TOK=$("$BIN/vigie-collector" --data-dir "$data" token create --project backups 2>/dev/null)

  # ---- every 15 minutes: 10 at H, 20 at H+15m, ... 50 at H+60m ----
  local ok=1 i
  for i in 0 1 2 3 4; do
    [[ $(pub q15 $((H + 900 * i)) $((10 * (i + 1)))) == 1 ]] || ok=0
  done
  eq "$name: five points 15 min apart, one request each, stored" "$ok" 1
  eq "$name: read at 60 s, each row holds the point that ends its interval" \
    "$(runs q15 $((H - 120)) $((H + 3540)) 60)" "[[10,1],[20,15],[30,15],[40,15],[50,15]]"
  eq "$name: the first point fills the step before it" \
    "$(rows q15 $((H - 120)) $((H - 60)) 60)" "[[\"$(iso $((H - 60)))\",10]]"
  eq "$name: read at 3600 s, the hour is the average of its intervals" \
    "$(rows q15 $((H - 3600)) $((H + 3600)) 3600)" "[[\"$(iso "$H")\",35]]"

  # ---- a first point in the middle of its step: 7 at H+20 s fills the
  # step before it, 40 s of the row H-60 ----
  eq "$name: a first point 20 s into its step is stored" "$(pub mid $((H + 20)) 7)" 1
  eq "$name: ... and read in the row before, which holds 40 s of it" \
    "$(rows mid $((H - 120)) $((H - 60)) 60)" "[[\"$(iso $((H - 60)))\",7]]"

  # ---- once a day: 100 at D, 200 at D+1d, 300 at D+2d, 400 at D+3d ----
  ok=1
  for i in 0 1 2 3; do
    [[ $(pub daily $((D + 86400 * i)) $((100 * (i + 1)))) == 1 ]] || ok=0
  done
  eq "$name: four points a day apart stored" "$ok" 1
  eq "$name: read at 3600 s, each day's hours hold the point that ends the day" \
    "$(runs daily $((D - 3600)) $((D + 3 * 86400)) 3600)" "[[200,24],[300,24],[400,24]]"
  eq "$name: read at 60 s around a day's point" \
    "$(runs daily $((D + 86400 - 120)) $((D + 86400 + 60)) 60)" "[[200,2],[300,2]]"
  eq "$name: the daily series' first point is read back" \
    "$(rows daily $((D - 120)) $((D - 60)) 60)" "[[\"$(iso $((D - 60)))\",100]]"
  # a gap longer than publish_heartbeat stays unknown: 500 at D+3d+60 s
  # would fill a minute; one 3 days after D+3d fills nothing
  eq "$name: a point more than publish_heartbeat after the last one is stored" \
    "$(pub daily $((D + 6 * 86400)) 700)" 1
  eq "$name: ... and fills no row (a gap stays a gap)" \
    "$(rows daily $((D + 5 * 86400)) $((D + 6 * 86400)) 3600)" "[]"
  stop_pid "$COLLECTOR_PID"
}

scenario files '[storage]\nbackend = files\n'
if command -v rrdtool >/dev/null; then
  f=$(find "$TMP/data-files" -path '*q15*' -name '*.rrd' | head -1)
  eq "files: the published series' heartbeat is publish_heartbeat (2 days)" \
    "$(rrdtool info "$f" 2>/dev/null | sed -n 's/^ds\[value\].minimal_heartbeat = //p')" 172800
else
  skip "rrdtool (the CLI) is not installed"
fi
start_rrdcached rc -R -O || bail "rrdcached did not start"
scenario rrdcached "[storage]\nbackend = rrdcached\ndaemons = $RRDCACHED_UNIX\n"
done_testing
