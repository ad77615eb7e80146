#!/usr/bin/env bash
# cli_retry_test.sh — the vigie CLI against the per-project cap on
# requests in flight ([collector] http_max_concurrent_per_project = 1
# here) of a real collector: a request refused with 429 and Retry-After is
# asked again (query/cli/cli_http.c), so a script's `vigie` succeeds once
# the project's other request is answered, and fails with one line naming
# the cap when it never is within --retry-wait.
#
# What holds the project's one place is real: a GET /v1/measures of a
# series on a storage daemon (rrdcached) that is stopped (SIGSTOP: it
# keeps its connections and answers nothing) waits for the daemon, up to
# the collector's 10 s bound on a daemon's answer. SIGCONT ends it.
#
#   - held: `vigie resources` (GET) and `vigie put` (POST: the cap's 429
#     is answered before anything runs, so it is repeated too) are
#     refused (counted in vigie_api_requests_refused_total), then served
#     once the daemon answers the held request: both exit 0;
#   - held again, `vigie --retry-wait 2 resources` gives up (exit 1) after
#     its retries, its one line saying so and naming
#     http_max_concurrent_per_project; the held request was still
#     running then.
# Without the retries the first 429 ends the CLI (exit 1): the first
# checks fail. SKIP, with the reason, when rrdcached or jq is missing.
source "$(dirname "$0")/lib_held_request.sh"
require rrdcached
command -v jq >/dev/null || { echo "1..0 # SKIP jq not installed"; exit 0; }

start_capped_collector cr
vig() { "$BIN/vigie" --api "$API" --token "$TOK" "$@"; }

refused() { metric 'vigie_api_requests_refused_total{reason="project_concurrency"}'; }
# shop's requests in flight is N (the scrape counts itself)
in_flight_is() { [[ $(metric vigie_api_requests_in_flight) == $(($1 + 1)) ]]; }
# hold "$TOK" N (lib_held_request.sh): a hold is also shop's one request
# in flight
HOLD_ALSO="in_flight_is 1"
# more_refused N: more than N of shop's requests were refused so far
more_refused() { local r; r=$(refused); [[ -n $r ]] && ((r > $1)); }

# ---- the held request ends: the CLI is served ----
check "a GET waiting for the stopped daemon holds shop's one place" hold "$TOK" 1
r0=$(refused)
(vig resources >"$TMP/res.out" 2>"$TMP/res.err"; echo $? >"$TMP/res.rc") &
c1=$!
(vig put q2 depth 7 --time -2m >"$TMP/put.out" 2>"$TMP/put.err"; echo $? >"$TMP/put.rc") &
c2=$!
_pids+=("$c1" "$c2")
check "vigie resources and vigie put are refused meanwhile (429)" \
  wait_for 30 more_refused $((r0 + 1))
kill -CONT "$RRDCACHED_PID"
wait "$HELD"
eq "the held request is answered once the daemon goes on" "$(cat "$TMP/held.1.code")" 200
wait "$c1" "$c2"
eq "vigie resources succeeds once it is (exit 0)" "$(cat "$TMP/res.rc")" 0
check "... listing q1" grep -q '^q1 ' "$TMP/res.out"
check "... and saying nothing on stderr" test ! -s "$TMP/res.err"
eq "vigie put (POST) succeeds too: the cap's 429 ran nothing, so it was sent again" \
  "$(cat "$TMP/put.rc")" 0
check "... and the API stored its point (once: one answer)" grep -qx 'stored 1, duplicates 0, resources created 1 (project shop)' "$TMP/put.out"
diag "refused meanwhile: $(($(refused) - r0))"

# ---- the held request does not end in time: the CLI gives up ----
check "held again" hold "$TOK" 2
t0=$SECONDS
"$BIN/vigie" --api "$API" --token "$TOK" --retry-wait 2 resources >"$TMP/res2.out" 2>"$TMP/res2.err"
eq "vigie --retry-wait 2 resources gives up (exit 1)" "$?" 1
diag "$(cat "$TMP/res2.err")"
check "... with the API's message" grep -q 'too many requests in flight for this project (at most 1 at once)' "$TMP/res2.err"
check "... saying it gave up after its retries" grep -q '(HTTP 429); gave up after 3 tries over 2 s' "$TMP/res2.err"
check "... naming the cap" grep -q '\[collector\] http_max_concurrent_per_project' "$TMP/res2.err"
eq "... on one line" "$(wc -l <"$TMP/res2.err")" 1
check "... printing nothing" test ! -s "$TMP/res2.out"
check "the held request was still waiting then" kill -0 "$HELD"
diag "gave up after $((SECONDS - t0)) s"
kill -CONT "$RRDCACHED_PID"
wait "$HELD"
check "held a third time" hold "$TOK" 3
"$BIN/vigie" --api "$API" --token "$TOK" --retry-wait 0 resources >/dev/null 2>"$TMP/res3.err"
eq "vigie --retry-wait 0 never retries: refused at once (exit 1), naming the cap" \
  "$?:$(cat "$TMP/res3.err")" \
  "1:vigie: too many requests in flight for this project (at most 1 at once); retry when one of them is answered (HTTP 429); the API asks to retry in 1 s; the collector's cap on requests in flight is [collector] http_max_concurrent_per_project"
kill -CONT "$RRDCACHED_PID"
wait "$HELD"
check "collector still running" kill -0 "$COLLECTOR_PID"
done_testing
