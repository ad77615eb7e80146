#!/usr/bin/env bash
# console_busy_test.sh — the web console (query/www/app.js) in a real
# headless chromium against a real collector whose per-project cap on
# requests in flight ([collector] http_max_concurrent_per_project = 1) is
# full: the page says whose requests fill it, by the 429 error's reason
# (docs/api.md, "Requests in flight per project"), while it waits and
# once its retries are spent.
#
# Why. The console retried the cap's 429 and then showed only the API's
# message, and nothing while it waited: a user saw an empty page for
# about 15 s, then "too many requests in flight for this project", with
# no word of which cap or what to do, and the admin tokens' cap
# (admin_concurrency) read the same as a project's.
#
# What holds the one place is real, as in cli_retry_test.sh: a GET
# /v1/measures of a series on a storage daemon (rrdcached) that is
# stopped (SIGSTOP) waits for it, up to the collector's 10 s bound. Held
# by a project token, the console with that token is refused with reason
# project_concurrency; held by an admin token, the console with an admin
# token is refused with admin_concurrency. chromium runs with virtual
# time (--virtual-time-budget): the page's waits between retries (about
# 15 s in all) pass at once, so both dumps are taken while the real
# request still holds the place (checked after each run; a run that
# outlived the hold is done again). The first dump is cut after 3 s of
# virtual time, mid-retries: the waiting line (#busy) names the reason;
# the second after 30 s: the retries are spent and the page's error
# names it. SKIP, with the reason, without rrdcached, jq or chromium.
source "$(dirname "$0")/lib_held_request.sh"
require rrdcached
command -v jq >/dev/null || { echo "1..0 # SKIP jq not installed"; exit 0; }
CHROME=$(command -v chromium || command -v chromium-browser || true)
[[ -n $CHROME ]] || { echo "1..0 # SKIP chromium is not installed (scripts/deps.sh installs it)"; exit 0; }
BROWSER_MAXT=${BROWSER_MAXT:-300}
PROFILE=$TMP/chromium
browser() { # browser BUDGET_MS URL: the DOM after BUDGET_MS of virtual time
  rm -rf "$PROFILE"
  timeout "$BROWSER_MAXT" "$CHROME" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$PROFILE" \
    --window-size=1280,1100 --virtual-time-budget="$1" --dump-dom "$2" 2>>"$TMP/chromium.log"
}
if ! browser 1000 "data:text/html,<p id=x>alive</p>" | grep -q alive; then
  echo "1..0 # SKIP chromium cannot start here: $(grep -v dbus "$TMP/chromium.log" | tail -1)"
  exit 0
fi

start_capped_collector cb
# hold TOKEN NAME, release: lib_held_request.sh
# page TOKEN BUDGET OUT: the console's DOM while TOKEN's place is held,
# taken again (at most 3 runs) if the hold ended before chromium did
page() {
  local run
  for run in 1 2 3; do
    hold "$1" page || return 1
    browser "$2" "$API/#/?token=$1" >"$3"
    if kill -0 "$HELD" 2>/dev/null; then
      release
      return 0
    fi
    diag "the hold ended before chromium did (run $run): again"
    release
  done
  return 1
}
# the note's text, entities and tags left as chromium prints them
has() { grep -qF -- "$2" "$1"; }

for who in project admin; do
  if [[ $who == project ]]; then T=$TOK; else T=$ADMIN_TOKEN; fi
  reason=${who}_concurrency
  r0=$(metric "vigie_api_requests_refused_total{reason=\"$reason\"}")
  check "[$who] the console mid-retries, the $who's place held" page "$T" 3000 "$TMP/$who.wait.html"
  check "[$who] ... shows the waiting line naming the reason $reason" \
    has "$TMP/$who.wait.html" "data-reason=\"$reason\""
  check "[$who] ... in words" has "$TMP/$who.wait.html" "Waiting: "
  check "[$who] ... and the cap" has "$TMP/$who.wait.html" \
    "([collector] http_max_concurrent_per_project; reason $reason); asking again"
  check "[$who] the console once its retries are spent, the place held" \
    page "$T" 30000 "$TMP/$who.done.html"
  diag "[$who] $(grep -o 'the collector is busy[^<]*' "$TMP/$who.done.html" | head -1)"
  check "[$who] ... says the collector is busy, naming the reason $reason" \
    has "$TMP/$who.done.html" "the collector is busy: "
  check "[$who] ... whose requests fill the cap" has "$TMP/$who.done.html" \
    "$([[ $who == project ]] && echo 'this project already has' || echo 'the admin tokens already have') as many requests in flight as the collector allows ([collector] http_max_concurrent_per_project; reason $reason), still refused after 9 tries"
  check "[$who] ... and what to do" has "$TMP/$who.done.html" "reload the page in a moment"
  check "[$who] ... the waiting line is gone" bash -c '! grep -q "id=\"busy\"" "$1"' _ "$TMP/$who.done.html"
  r1=$(metric "vigie_api_requests_refused_total{reason=\"$reason\"}")
  check "[$who] the collector counted the console's refusals as $reason ($r0 -> $r1)" \
    test "${r1:-0}" -gt "${r0:-0}"
done
check "collector still running" kill -0 "$COLLECTOR_PID"
done_testing
