#!/usr/bin/env bash
# resources_cursor_test.sh — GET /v1/resources' "next" is the last id of
# the page, as is (docs/api.md "GET /v1/resources"): a client sends it
# back URL-encoded like any query value, as the CLI and the web console
# do (curl -G --data-urlencode). Ids holding &, +, % and # (a published custom resource may have
# them) page through without a skip or a repeat.
source "$(dirname "$0")/lib.sh"

NOW=$(date +%s)
T=$(( NOW / 60 * 60 - 600 ))
collector_ports
DATA=$TMP/data
check "collector answers /v1/health" start_api_collector collector --data-dir "$DATA"
TOK=$("$BIN/vigie-collector" --data-dir "$DATA" token create --project p 2>/dev/null)
as() { curl -q -s --max-time 20 -H "Authorization: Bearer $TOK" "$@"; }
ID1='a&b+c%d#e'
ID2='a&b+c%d#e2'
ID3='z'
body=$(jq -cn --arg a "$ID1" --arg b "$ID2" --arg c "$ID3" --argjson t "$T" \
  '{measures: [$a, $b, $c] | map({resource: ., metric: "g", time: $t, value: 1})}')
eq "three custom resources, two with &+%# in their ids" \
  "$(printf '%s' "$body" | as -X POST --data-binary @- "$API/v1/measures" | jq -c .resources_created)" 3

# page [CURSOR]: [ids of a page of one, its next], as JSON
page() {
  if [[ $# -gt 0 ]]; then
    as -G --data-urlencode "cursor=$1" "$API/v1/resources?type=custom&limit=1"
  else
    as "$API/v1/resources?type=custom&limit=1"
  fi | jq -c '[[.resources[].id], .next]'
}
p1=$(page)
eq "page 1: the first id, next is that id as is (not encoded)" "$p1" "[[\"$ID1\"],\"$ID1\"]"
n=$(jq -r '.[1]' <<<"$p1")
p2=$(page "$n")
eq "page 2 (cursor URL-encoded): the next id" "$p2" "[[\"$ID2\"],\"$ID2\"]"
p3=$(page "$(jq -r '.[1]' <<<"$p2")")
eq "page 3: the last id" "$(jq -c '.[0]' <<<"$p3")" "[\"$ID3\"]"
done_testing
