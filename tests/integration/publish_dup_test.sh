#!/usr/bin/env bash
# publish_dup_test.sh — two points of one series at one time in one
# POST /v1/measures (docs/api.md "Duplicates"): the first in the request's
# order is kept everywhere (the RRD file, /v1/resources/{id}/latest,
# last_value in /v1/resources, /metrics, the PUB stream the alarms also
# read) and the other is answered as a duplicate, stored nowhere; in either order, for a gauge and a counter
# (whose /metrics total must never be a value the file skipped). The same
# on both storage engines: local files and rrdcached. Times are whole
# minutes of the last hour, given in the requests: nothing waits.
source "$(dirname "$0")/lib.sh"
require rrdcached

NOW=$(date +%s)
T=$(( NOW / 60 * 60 - 1200 ))
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
as() { curl -q -s --max-time 20 -H "Authorization: Bearer $TOK" "$@"; }
post() { printf '%s' "$1" | as -X POST -H 'Content-Type: application/json' --data-binary @- "$API/v1/measures"; }
# pt RESOURCE METRIC KIND TIME VALUE: one element of "measures"
pt() { printf '{"resource":"%s","metric":"%s","kind":"%s","time":%s,"value":%s}' "$@"; }
# row RESOURCE METRIC TIME: the value stored for the point at TIME (the
# row that starts a step before it; a counter's rate), [] when none
row() {
  as "$API/v1/measures?resource=$1&metric=$2&start=$(iso $(($3 - 120)))&end=$(iso $3)&granularity=60" |
    jq -c --arg t "$(iso $(($3 - 60)))" '[.points[] | select(.[0] == $t) | .[1]]'
}
# prom FAMILY: "resource value" of each sample of FAMILY in /metrics
prom() {
  as "$API/metrics" | grep -E "^$1\{" | sed -E 's/.*resource="([^"]*)".* ([^ ]+)$/\1 \2/' | sort
}

scenario() { # NAME CONFIG_BODY
  local name=$1 data=$TMP/data-$1 r
  collector_ports NPORT
  printf '%b' "$2" >"$TMP/$name.conf"
  check "$name: the collector starts" start_api_collector "$name" --config "$TMP/$name.conf" \
    --data-dir "$data" --notify tcp://127.0.0.1:$NPORT
  TOK=$("$BIN/vigie-collector" --data-dir "$data" token create --project p 2>/dev/null)
  local sub=$TMP/$name.stream
  if command -v nanocat >/dev/null; then
    nanocat --sub --connect tcp://127.0.0.1:$NPORT --subscribe metric.p. -A >"$sub" 2>&1 &
    _pids+=($!)
    sleep 0.5 # the subscription reaches the PUB socket
  fi

  # ---- a gauge: 5 then 9 at T, 9 then 5 at T (another resource) ----
  r=$(post "{\"measures\":[$(pt d1 g gauge $((T - 60)) 1),$(pt d1 g gauge $T 5),$(pt d1 g gauge $T 9),
    $(pt d2 g gauge $((T - 60)) 1),$(pt d2 g gauge $T 9),$(pt d2 g gauge $T 5)]}")
  eq "$name: the second point at one time is a duplicate" "$(jq -c '[.stored,.duplicates]' <<<"$r")" "[4,2]"
  eq "$name: the file holds the first in the request's order" \
    "$(row d1 g $T)$(row d2 g $T)" "[5][9]"
  eq "$name: /latest gives it too" \
    "$(as "$API/v1/resources/d1/latest" | jq -c .metrics.g.value)$(as "$API/v1/resources/d2/latest" | jq -c .metrics.g.value)" "59"
  eq "$name: ... and last_value in /v1/resources" \
    "$(as "$API/v1/resources?type=custom" | jq -c '[.resources[] | .metrics.g.last_value]')" "[5,9]"
  eq "$name: ... and /metrics" \
    "$(prom vigie_g)" "$(printf 'd1 5\nd2 9')"
  # a point at T again in a later request: the store's rule, the same answer
  r=$(post "{\"measures\":[$(pt d1 g gauge $T 7)]}")
  eq "$name: a later request's point at that time is a duplicate" "$(jq -c '[.stored,.duplicates]' <<<"$r")" "[0,1]"
  eq "$name: ... and changes nothing" \
    "$(row d1 g $T)$(as "$API/v1/resources/d1/latest" | jq -c .metrics.g.value)" "[5]5"

  # ---- a counter: 600 then 6000 at T; the total is the stored one ----
  r=$(post "{\"measures\":[$(pt c1 n counter $((T - 60)) 0),$(pt c1 n counter $T 600),$(pt c1 n counter $T 6000)]}")
  eq "$name: counter: the second point at one time is a duplicate" "$(jq -c '[.stored,.duplicates]' <<<"$r")" "[2,1]"
  eq "$name: counter: the file's rate is the first point's" "$(row c1 n $T)" "[10]"
  eq "$name: counter: /metrics' total is the first point's" \
    "$(prom vigie_n_total)" "c1 600"
  eq "$name: counter: /latest's total too" \
    "$(as "$API/v1/resources/c1/latest" | jq -c .metrics.n.total)" 600
  # the stream (the alarms' input too) never sees the points dropped in
  # the first request: c1's points come after them on the one PUB
  # socket. (The later request's 7 at T, skipped by the store, is still
  # streamed: the consumers after the store get a batch whole.)
  if command -v nanocat >/dev/null; then
    check "$name: the stream carries the last request" wait_for 20 grep -q '^metric.p.c1.n ' "$sub"
    eq "$name: ... and of d1 and d2 at T only the points kept" \
      "$(grep -E "^metric.p.d[12].g .*\"time_ms\":${T}000" "$sub" | grep -v '"value":7,' | sed -E 's/^metric.p.(d[12]).*"value":([0-9.]+).*/\1 \2/' | sort | uniq -c | tr -s ' ')" \
      "$(printf ' 1 d1 5\n 1 d2 9')"
  else
    skip "$name: nanocat missing: the PUB stream is not checked"
  fi
  stop_pid "$COLLECTOR_PID"
}

scenario files '[storage]\nbackend = files\n'
start_rrdcached rc -R -O || bail "rrdcached did not start"
scenario rrdcached "[storage]\nbackend = rrdcached\ndaemons = $RRDCACHED_UNIX\n"
done_testing
