#!/usr/bin/env bash
# prom_read_test.sh — Prometheus remote read end to end: Debian's real `prometheus`
# (2.42) with `remote_read` pointing at a real vigie-collector answers
# PromQL over vigie's history, the same numbers as vigie's own API, and a
# project token's Prometheus sees only that project.
#
# Data: bench/query_seed writes two hours of one-minute polls ending at the
# last whole minute: 6 instances vm-00000..vm-00005 (p1 even, p2 odd;
# cpu.util = i + minute % 10), their disks reading (i+1)*100 B/s, and a p1
# instance whose name attempts a label injection. Two Prometheus servers
# (empty local storage in $TMP, read_recent: true so every range goes to
# vigie) use an admin token and a p1 token. Queries go through Prometheus's
# HTTP API (/api/v1/query, /api/v1/query_range) and are compared with
# /v1/measures and /v1/aggregates.
source "$(dirname "$0")/lib.sh"

command -v prometheus >/dev/null || { skip "prometheus not installed (scripts/deps.sh)"; done_testing; exit 0; }
SEED=$ROOT/$BUILD/bench/query_seed
[[ -x $SEED ]] || { nok "$SEED missing (make $BUILD/bench/query_seed)"; done_testing; exit 1; }

DATA=$TMP/data
HPORT=$(free_port); NPORT=$(free_port); PA=$(free_port); PP=$(free_port)
API=http://127.0.0.1:$HPORT
eval "$("$SEED" "$DATA" 6 7200 --evil)"   # sets start= end=
T=$((end - 1800))                         # a whole minute inside the data

ADMIN=$("$BIN/vigie-collector" --data-dir "$DATA" token create --admin --name it 2>/dev/null)
P1=$("$BIN/vigie-collector" --data-dir "$DATA" token create --project p1 --name graf 2>/dev/null)
start_collector collector --listen tcp://127.0.0.1:$NPORT --http 127.0.0.1:$HPORT --data-dir "$DATA"
check "collector answers" wait_for 30 curl -q -sf "$API/v1/health"

# start_prom NAME PORT TOKEN
start_prom() {
  mkdir -p "$TMP/$1"
  cat >"$TMP/$1/prometheus.yml" <<EOF
global:
  scrape_interval: 1m
remote_read:
  - url: $API/api/v1/read
    read_recent: true
    authorization:
      credentials: $3
EOF
  prometheus --config.file "$TMP/$1/prometheus.yml" --storage.tsdb.path "$TMP/$1/tsdb" \
    --web.listen-address 127.0.0.1:$2 >"$TMP/$1.log" 2>&1 &
  _pids+=($!)
}
start_prom prom-admin "$PA" "$ADMIN"
start_prom prom-p1 "$PP" "$P1"
check "prometheus (admin token) is ready" wait_for 30 curl -q -sf "http://127.0.0.1:$PA/-/ready"
check "prometheus (p1 token) is ready" wait_for 30 curl -q -sf "http://127.0.0.1:$PP/-/ready"

as() { curl -q -s --max-time 20 -H "Authorization: Bearer $1" "${@:2}"; }
# promq PORT QUERY [TIME]: the instant query's JSON
promq() { curl -q -s --max-time 30 "http://127.0.0.1:$1/api/v1/query" --data-urlencode "query=$2" --data-urlencode "time=${3:-$T}"; }
# close A B: |A - B| <= 1e-6 * max(1, |B|)
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; if (m < 1) m = 1; exit !(a != "" && b != "" && d <= 1e-6 * m) }'; }

# ---- an instant selector: the same value as /v1/measures at T ----
got=$(promq "$PA" 'vigie_cpu_util{resource="vm-00003"}' | jq -r '.data.result[0].value[1]')
want=$(as "$ADMIN" "$API/v1/measures?resource=vm-00003&metric=cpu.util&start=$((T - 300))&end=$T&granularity=60" |
  jq -r --arg t "$(date -u -d @$T +%FT%TZ)" '.points[] | select(.[0] == $t) | .[1]')
diag "vigie_cpu_util{resource=vm-00003} at T: prometheus $got, vigie $want"
check "instant value equals /v1/measures" close "$got" "$want"

labels=$(promq "$PA" 'vigie_cpu_util{resource="vm-00003"}' | jq -c '.data.result[0].metric')
diag "labels: $labels"
eq "labels of an instance" "$labels" \
  '{"__name__":"vigie_cpu_util","flavor":"large","host":"h3","name":"vm-00003","project":"p2","resource":"vm-00003","type":"instance"}'
labels=$(promq "$PA" 'vigie_disk_read_bytes_total{resource="vm-00003-vda"}' | jq -c '.data.result[0].metric | [.device, .parent, .type]')
eq "a disk has device and parent" "$labels" '["vda","vm-00003","disk"]'

# ---- avg by (project): the same as /v1/aggregates ----
for p in p1 p2; do
  got=$(promq "$PA" 'avg by (project) (vigie_cpu_util{resource=~"vm-0.*"})' | jq -r --arg p $p '.data.result[] | select(.metric.project == $p) | .value[1]')
  want=$(as "$ADMIN" "$API/v1/aggregates?metric=cpu.util&group_by=project&project=$p&start=$((T - 300))&end=$T&granularity=60" |
    jq -r --arg t "$(date -u -d @$T +%FT%TZ)" '.groups[0].points[] | select(.[0] == $t) | .[1]')
  # the evil instance (p1, cpu.util 7) is left out by the regex; /v1/aggregates has it
  if [[ $p == p1 ]]; then want=$(awk -v w="$want" 'BEGIN { printf "%.10g", (w * 4 - 7) / 3 }'); fi
  diag "avg by (project) $p: prometheus $got, vigie $want"
  check "avg by (project) for $p equals /v1/aggregates" close "$got" "$want"
done

# ---- rate() of a counter: the stored rate ----
got=$(promq "$PA" 'rate(vigie_disk_read_bytes_total{resource="vm-00004-vda"}[10m])' | jq -r '.data.result[0].value[1]')
want=$(as "$ADMIN" "$API/v1/measures?resource=vm-00004-vda&metric=disk.read.bytes&start=$((T - 600))&end=$T&granularity=60" | jq -r '.points[-1][1]')
diag "rate: prometheus $got, vigie $want"
check "rate() of a counter equals the stored rate (500 B/s)" \
  awk -v a="$got" -v b="$want" 'BEGIN { exit !(b == 500 && a > 499.9 && a < 500.1) }'

# ---- a range query: every step equals /v1/measures ----
R0=$((T - 3600)); R1=$T
pr=$(curl -q -s --max-time 30 "http://127.0.0.1:$PA/api/v1/query_range" \
  --data-urlencode 'query=vigie_cpu_util{resource="vm-00002"}' --data-urlencode "start=$R0" \
  --data-urlencode "end=$R1" --data-urlencode step=60 | jq -c '[.data.result[0].values[] | [.[0], (.[1] | tonumber)]]')
vm=$(as "$ADMIN" "$API/v1/measures?resource=vm-00002&metric=cpu.util&start=$R0&end=$R1&granularity=60" |
  jq -c '[.points[] | [(.[0] | fromdateiso8601), .[1]]]')
eq "range query: 61 steps" "$(jq length <<<"$pr")" 61
eq "range query equals /v1/measures point for point" "$pr" "$vm"

# ---- the p1 token's Prometheus sees p1 only ----
eq "p1: projects seen" "$(promq "$PP" 'count by (project) (vigie_cpu_util)' | jq -c '[.data.result[].metric.project]')" '["p1"]'
eq "p1: p1's instances (3 + the evil one)" "$(promq "$PP" 'count(vigie_cpu_util)' | jq -r '.data.result[0].value[1]')" 4
eq "p1: a matcher on p2 finds nothing" "$(promq "$PP" 'vigie_cpu_util{project="p2"}' | jq '.data.result | length')" 0
eq "p1: a regex over every project finds only p1" \
  "$(promq "$PP" 'count by (project) (vigie_cpu_util{project=~".*"})' | jq -c '[.data.result[].metric.project]')" '["p1"]'
eq "p1: p2's resource by id finds nothing" "$(promq "$PP" 'vigie_cpu_util{resource="vm-00001"}' | jq '.data.result | length')" 0
eq "admin: both projects" "$(promq "$PA" 'count by (project) (vigie_cpu_util)' | jq -c '[.data.result[].metric.project] | sort')" '["p1","p2"]'

# series lookups (Grafana's label_values(metric, label)) go through remote read too
eq "p1: /api/v1/series finds p1's instances" \
  "$(curl -q -s --max-time 30 "http://127.0.0.1:$PP/api/v1/series" --data-urlencode 'match[]=vigie_cpu_util' \
     --data-urlencode "start=$((T - 600))" --data-urlencode "end=$T" | jq '[.data[] | select(.project == "p1")] | length')" 4
# (Prometheus 2.42 does not ask remote read for label names or values:
# /api/v1/labels and /api/v1/label/X/values list local data only)

# ---- label injection: the hostile name stays one value ----
ev=$(promq "$PP" 'vigie_cpu_util{resource="vm-evil"}' | jq -c '.data.result[0].metric')
diag "evil: $ev"
eq "an injected name is one label value" "$(jq -r .name <<<"$ev")" 'evil",project="p2",x="y'
eq "... and the project stays p1" "$(jq -r .project <<<"$ev")" p1
eq "... and adds no label" "$(jq -r 'has("x")' <<<"$ev")" false
eq "the injected name matches exactly" \
  "$(promq "$PP" 'count(vigie_cpu_util{name="evil\",project=\"p2\",x=\"y"})' | jq -r '.data.result[0].value[1]')" 1

# ---- hostile requests straight to /api/v1/read ----
code() { as "$1" -o /dev/null -w '%{http_code}' "${@:2}"; }
eq "no token: 401" "$(curl -q -s -o /dev/null -w '%{http_code}' -X POST --data-binary x "$API/api/v1/read")" 401
eq "garbage body: 400" "$(code "$ADMIN" -X POST --data-binary 'not snappy' "$API/api/v1/read")" 400
head -c $((2 << 20)) /dev/zero >"$TMP/big"
eq "a 2 MiB body: 413" "$(code "$ADMIN" -X POST -H 'Content-Type: application/x-protobuf' --data-binary @"$TMP/big" "$API/api/v1/read")" 413
# GET is the endpoint's 405 with Allow: POST, not the web console's 404
eq "GET: 405" "$(code "$ADMIN" "$API/api/v1/read")" 405
check "GET: Allow: POST" bash -c "curl -q -s -D - -o /dev/null -H 'Authorization: Bearer $ADMIN' '$API/api/v1/read' | grep -qi '^Allow: POST'"
check "collector still answers" curl -q -sf "$API/v1/health"
done_testing
