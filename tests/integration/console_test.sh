#!/usr/bin/env bash
# console_test.sh — the web console (query/www/) in a real headless browser.
#
# The real collector (with a rate card, an alarm and, when the build has
# tokens, an admin and a project token) is fed by the real agent on
# libvirt's test driver with a synthetic clock (one poll = one simulated
# minute), so half an hour of data exists after a few seconds. Debian's
# chromium then loads each view with --dump-dom (the token is passed once
# in the URL fragment, which app.js moves to sessionStorage) and the test
# asserts on what the page shows, compared with what the API says: the
# instance with its CPU, disk and network numbers; the instance page's
# graphs, loaded, whose URLs answer 200 image/png (or, on a collector
# without /v1/graph, SVG charts with points); the alarms with their
# states; the invoices with their totals and warning counts, and an
# entry that cannot be computed by its project's name; the sign-in box
# without a token; another project's token seeing nothing; the names people know
# (a second agent's Nova instance by display name and project name, the
# ids under them, in the lists and on its page). The file server is
# checked with curl: types, the Content-Security-Policy, and traversal,
# hidden files, unknown types and a symlink out of the www dir refused.
# Screenshots of each view are kept in $VIGIE_BUILD/test-logs/console/.
#
# If chromium is missing or cannot start here, the browser checks are
# reported as skipped with the reason.
source "$(dirname "$0")/lib.sh"

URI=test:///default
UUID=6695eb01-f6a4-8304-79aa-97f2502e193f
WEB=11111111-2222-3333-4444-555555555501 P_WEB=bbbbbbbb0000000000000000000000b1
SHOTS=$ROOT/$BUILD/test-logs/console
[[ $BUILD = /* ]] && SHOTS=$BUILD/test-logs/console
mkdir -p "$SHOTS"
collector_ports
DATA=$TMP/data
NOW=$(date +%s)
START=$(( (NOW - 7200) / 60 * 60 ))   # two hours ago, on a minute boundary
MONTH=$(date -u -d "@$START" +%Y-%m)

# The console is served from a copy of query/www named by [collector]
# www_dir, with traps added next to it: a symlink out of the directory, a
# hidden file and a file of an unknown type.
WWW=$TMP/www
cp -r "$ROOT/query/www" "$WWW"
echo "outside secret" >"$TMP/outside.txt"
ln -s "$TMP/outside.txt" "$WWW/evil.txt"
echo "hidden" >"$WWW/.hidden.txt"
echo "notes" >"$WWW/notes.md"
mkdir -p "$DATA"
cat >"$TMP/vigie.conf" <<EOF
[collector]
www_dir = $WWW
[billing]
ratecard = $TMP/ratecard.json
EOF
# The ledger's rate card, less its per-vCPU and per-GiB-RAM prices, so the
# test domain (no flavor) is usage without a price: project default's
# invoice carries warnings. Project analytics (db1 of the Nova host, 4
# vCPUs) pays 10^12 EUR a vCPU-hour: past 10^12 EUR in half an hour, its
# invoice cannot be computed and the month's list has an error entry for
# it (docs/api.md, billing_range_test.sh).
jq 'del(.prices[0].compute.vcpu_hour, .prices[0].compute.ram_gib_hour) |
    .projects.analytics = {prices: [{valid_from: "2026-01-01",
      compute: {vcpu_hour: "1000000000000", ram_gib_hour: "1000000000000"}}]}' \
  "$ROOT/tests/fixtures/billing/ratecard.json" >"$TMP/ratecard.json"

# ---- tokens, when this build has them -----------------------------------------
TOKEN= OTHER=
if TOKEN=$("$BIN/vigie-collector" --data-dir "$DATA" token create --admin --name console-test 2>/dev/null); then
  TOKEN=$(grep -o 'vgt_[0-9a-f_]*' <<<"$TOKEN" | head -1)
  OTHER=$("$BIN/vigie-collector" --data-dir "$DATA" token create --project nobody --name other 2>/dev/null |
    grep -o 'vgt_[0-9a-f_]*' | head -1)
fi
AUTH=()
# Deadlines here are safety nets, never what is asserted: a loaded machine
# (load 29 seen) makes the collector, rrdtool and chromium many times
# slower, and a request or browser cut short only looks like a wrong
# answer. MAXT bounds one HTTP request, BROWSER_MAXT one chromium run.
MAXT=${MAXT:-60}
BROWSER_MAXT=${BROWSER_MAXT:-300}
[[ -n $TOKEN ]] && AUTH=(-H "Authorization: Bearer $TOKEN")
api() { curl -sS --max-time "$MAXT" "${AUTH[@]}" "$API$1"; }

extra=()
"$BIN/vigie-collector" --help 2>&1 | grep -q -- --allow-unsigned && extra+=(--allow-unsigned)
check "collector answers /v1/health" start_api_collector collector --config "$TMP/vigie.conf" \
  --data-dir "$DATA" "${extra[@]}"
check "collector logs the www_dir it serves" grep -q "web console: serving $(cd "$WWW" && pwd -P)" "$TMP/collector.log"

# An alarm that fires on the test domain's CPU (about 0.17 %) and one that
# stays OK, created before the data arrives so both are evaluated. Each
# has missing_data "ignore": once the agents stop, the engine's timer
# closes periods without data as the wall clock runs (docs/alarms.md
# "Evaluation"), and with the default a loaded machine slow enough to
# reach the alarms view minutes later would find them insufficient_data;
# what is asserted is the state the data decided.
ALARMS=0
code=$(curl -s -o "$TMP/alarm.json" -w '%{http_code}' --max-time "$MAXT" "${AUTH[@]}" -XPOST "$API/v1/alarms" \
  -d "{\"name\":\"cpu-busy\",\"severity\":\"critical\",\"metric\":\"cpu.util\",\"resource\":\"$UUID\",
       \"statistic\":\"average\",\"period\":60,\"evaluation_periods\":3,\"datapoints_to_alarm\":2,
       \"comparison\":\"gt\",\"threshold\":0.01,\"missing_data\":\"ignore\"}")
if [[ $code == 201 ]]; then
  ALARMS=1
  curl -s -o /dev/null --max-time "$MAXT" "${AUTH[@]}" -XPOST "$API/v1/alarms" \
    -d "{\"name\":\"cpu-idle\",\"metric\":\"cpu.util\",\"resource\":\"$UUID\",\"comparison\":\"gt\",\"threshold\":99,\"missing_data\":\"ignore\"}"
  # an alarm on the Nova instance: the list names what it watches
  curl -s -o /dev/null --max-time "$MAXT" "${AUTH[@]}" -XPOST "$API/v1/alarms" \
    -d "{\"name\":\"web-idle\",\"metric\":\"cpu.util\",\"resource\":\"$WEB\",\"comparison\":\"gt\",\"threshold\":99,\"missing_data\":\"ignore\"}"
  # a group alarm: one evaluation across every instance
  curl -s -o /dev/null --max-time "$MAXT" "${AUTH[@]}" -XPOST "$API/v1/alarms" \
    -d "{\"name\":\"fleet-busy\",\"metric\":\"cpu.util\",\"selector\":{\"type\":\"instance\"},
         \"group\":{\"statistic\":\"average\"},\"comparison\":\"gt\",\"threshold\":99,\"cooldown\":300,\"missing_data\":\"ignore\"}"
fi

start_agent agent --collector tcp://127.0.0.1:$PORT --libvirt $URI --interval 0.2 \
  --host console-host --spool "$TMP/spool" --clock-start $START --clock-step 60
AGENT1=$AGENT_PID
# a second host whose domains carry Nova's metadata: web1 is
# "web-frontend-1" of project "webshop" (tests/fixtures/node-nova.xml)
start_agent agent-nova --collector tcp://127.0.0.1:$PORT --libvirt "test://$ROOT/tests/fixtures/node-nova.xml" \
  --interval 0.2 --host nova-host --spool "$TMP/spool-nova" --clock-start $START --clock-step 60
minutes() {
  local t
  t=$(api "/v1/resources/$UUID" | jq -r '.last_seen // empty') || return 1
  [[ -n $t ]] && [[ $(( $(date -d "$t" +%s) - START )) -ge 1800 ]]
}
check "30 simulated minutes of polls arrive" wait_for 180 minutes
nova_named() { [[ $(api "/v1/resources/$WEB" | jq -r '.attributes.display_name // empty') == web-frontend-1 ]]; }
check "the Nova host's instance arrives with its display name" wait_for 120 nova_named
stop_pid "$AGENT_PID"
stop_pid "$AGENT1"
# the last batches are stored and their alarms evaluated (before their
# ack): the page and the API read the same data from here on. A batch the
# agents sent before they stopped may still be on its way: wait until the
# collector has received none for a second, however long that takes.
received() { curl -s --max-time "$MAXT" "${AUTH[@]}" "$API/metrics" | awk '/^vigie_collector_batches_received_total /{print $2}'; }
settled() { local a; a=$(received); sleep 1; [[ -n $a && $a == "$(received)" ]]; }
check "the collector has received the agents' last batches" wait_for 120 settled

# ---- the file server -----------------------------------------------------------------
hdr() { curl -s -D - -o /dev/null --max-time "$MAXT" "$@"; }
h=$(hdr "$API/")
check "GET / is 200 text/html" grep -qi '^content-type: text/html' <<<"$h"
check "GET / carries the Content-Security-Policy" \
  grep -qi "^content-security-policy: default-src 'self'; img-src 'self' data: blob:" <<<"$h"
check "GET / is not framable" grep -qi '^x-frame-options: DENY' <<<"$h"
eq "index.html is the console's" "$(curl -s "$API/" | grep -c 'src="/app.js"')" 1
eq "app.js is text/javascript" "$(curl -s -o /dev/null -w '%{content_type}' "$API/app.js")" "text/javascript; charset=utf-8"
eq "style.css is text/css" "$(curl -s -o /dev/null -w '%{content_type}' "$API/style.css")" "text/css; charset=utf-8"
check "app.js is the file on disk" cmp -s <(curl -s "$API/app.js") "$WWW/app.js"
for bad in "/../outside.txt" "/..%2f..%2foutside.txt" "/%2e%2e/%2e%2e/etc/passwd" "/%252e%252e/etc/passwd" \
           "/evil.txt" "/.hidden.txt" "/notes.md" "/etc/passwd" "/%c0%ae%c0%ae/etc/passwd"; do
  code=$(curl -s --path-as-is -o "$TMP/body" -w '%{http_code}' --max-time "$MAXT" "$API$bad")
  if [[ $code == 404 ]] && ! grep -q "secret\|root:" "$TMP/body"; then ok "refused: $bad (404)"
  else nok "refused: $bad (got $code: $(head -c 100 "$TMP/body"))"; fi
done
eq "an unknown API path is still the JSON 404" \
  "$(curl -s "$API/v1/nothing" | jq -r '.error.message')" "no such endpoint: /v1/nothing"
eq "POST / is 405" "$(curl -s -o /dev/null -w '%{http_code}' -XPOST "$API/")" 405

# ---- the browser ------------------------------------------------------------------------
CHROME=$(command -v chromium || command -v chromium-browser || true)
PROFILE=$TMP/chromium
browser() { # browser OUT_FLAG URL: one headless run with a fresh profile
  rm -rf "$PROFILE"
  timeout "$BROWSER_MAXT" "$CHROME" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$PROFILE" \
    --window-size=1280,1100 --virtual-time-budget=20000 "$@" 2>>"$TMP/chromium.log"
}
why=
if [[ -z $CHROME ]]; then
  why="chromium is not installed (scripts/deps.sh installs it)"
elif ! browser --dump-dom "data:text/html,<p id=x>alive</p>" | grep -q alive; then
  why="chromium cannot start here: $(grep -v dbus "$TMP/chromium.log" | tail -1)"
fi
if [[ -n $why ]]; then
  skip "the console in a browser: $why"
  done_testing
  exit 0
fi

frag() { # the fragment for a view, with the token when there is one
  local v=$1 sep='?'
  [[ $v == *\?* ]] && sep='&'
  [[ -n $TOKEN ]] && v="$v${sep}token=$TOKEN"
  echo "$API/#$v"
}
# dom NAME VIEW: dump the DOM of a view once it says it is ready
dom() {
  local out="$TMP/$1.html" try
  for try in 1 2 3; do
    browser --dump-dom "$(frag "$2")" >"$out"
    grep -q 'data-state="ready"\|data-state="login"' "$out" && break
  done
  cat "$out"
}
shot() { browser --screenshot="$SHOTS/$1.png" "$(frag "$2")" >/dev/null; }
# attr HTML SELECTOR-REGEX ATTR: the first value of ATTR in tags matching
attr() { grep -o "<[^>]*$2[^>]*>" <<<"$1" | head -1 | grep -o " $3=\"[^\"]*\"" | cut -d'"' -f2; }
text() { # text of the element with class/id marker: <td class="num disk-read" ...>TEXT</td>
  grep -o "$2[^>]*>[^<]*<" <<<"$1" | head -1 | sed 's/.*>\(.*\)</\1/'
}
pos() { awk -v v="$1" 'BEGIN { exit !(v + 0 > 0) }'; }
lacks() { ! grep -q -- "$1" "$2"; } # lacks PATTERN FILE

# ---- instances ----
d=$(dom instances "/")
check "instances view reaches its ready state" grep -q '<body data-state="ready" data-view="instances"' <<<"$d"
row=$(grep -o "<tr data-id=\"$UUID\".*</tr>" <<<"$d" | sed 's#</tr>.*#</tr>#')
check "the instance's UUID is listed" test -n "$row"
check "... with its name, linked to its page" grep -q "href=\"#/instance/$UUID\">test</a>" <<<"$row"
check "... with its host" grep -q '<td>console-host</td>' <<<"$row"
inst=$(api "/v1/resources/$UUID")
cpu_api=$(jq -r '.metrics["cpu.util"].last_value' <<<"$inst")
cpu_page=$(attr "$row" 'class="num cpu"' data-value)
check "CPU shown is the API's cpu.util ($cpu_page vs $cpu_api)" approx "${cpu_page:-x}" "$cpu_api" 1e-9
pct=$(printf '%.1f %%' "$cpu_api")
check "CPU reads '$pct'" grep -q "</span>$pct</td>" <<<"$row"
for c in disk-read disk-write net-in net-out; do
  v=$(attr "$row" "class=\"num $c\"" data-value)
  t=$(text "$row" "class=\"num $c\"")
  if pos "${v:-0}" && [[ $t == *B/s ]]; then ok "$c shows a rate: $t"; else nok "$c shows a rate (value '$v', text '$t')"; fi
done
# the disk read rate the page shows is the API's: the last 1-minute rate
# of disk.read.bytes (the test driver's counters grow with wall time)
end=$(jq -r .last_seen <<<"$inst")
rate=$(api "/v1/measures?resource=$UUID-vda&metric=disk.read.bytes&start=$(date -u -d "$end - 10 min" +%FT%TZ)&end=$end&granularity=60" |
  jq '[.points[] | select(.[1] != null)] | last | .[1]')
v=$(attr "$row" 'class="num disk-read"' data-value)
check "disk read equals the API's latest rate ($v vs $rate, 5%)" approx "${v:-0}" "$rate" 0.05
# the names people know: web1's display name and its project's name, the
# ids under them
row=$(grep -o "<tr data-id=\"$WEB\".*</tr>" <<<"$d" | sed 's#</tr>.*#</tr>#')
check "a Nova instance is listed by its display name" grep -q "href=\"#/instance/$WEB\">web-frontend-1</a><div class=\"uuid\">$WEB</div>" <<<"$row"
check "... and its project by name, the id under it" \
  grep -q "<td class=\"project\"><div class=\"name\">webshop</div><div class=\"uuid\">$P_WEB</div></td>" <<<"$row"
check "... not by libvirt's domain name" lacks '>web1<' <(echo "$row")
d2=$(dom named "/?q=webshop")
check "the filter finds instances by project name" grep -q "<tr data-id=\"$WEB\"" <<<"$d2"
check "... and only those" lacks "<tr data-id=\"$UUID\"" <(echo "$d2")
shot instances "/"

# ---- one instance ----
d=$(dom instance "/instance/$UUID?range=1h")
check "instance view reaches its ready state" grep -q 'data-state="ready" data-view="instance"' <<<"$d"
check "instance page names the instance" grep -q '<h1 id="instance-name">test' <<<"$d"
check "instance page shows the UUID" grep -q "<dd>$UUID</dd>" <<<"$d"
check "range 1h is selected" grep -q 'class="active">1h</a>' <<<"$d"
panels=$(grep -o '<figure class="panel"' <<<"$d" | wc -l)
check "four graph panels: CPU, memory, disk vda, network testnet0 ($panels)" test "$panels" -ge 4
check "the disk panel is vda's" grep -q '<figcaption>Disk vda' <<<"$d"
imgs=$(grep -o '<img class="graph"[^>]*>' <<<"$d")
if [[ -n $imgs ]]; then
  n=$(grep -c . <<<"$imgs")
  eq "every graph image loaded ($n)" "$(grep -c 'data-state="loaded"' <<<"$imgs")" "$n"
  check "graph images are shown through blob: URLs" grep -q 'src="blob:' <<<"$imgs"
  src=$(grep -o 'data-src="[^"]*"' <<<"$imgs" | head -1 | cut -d'"' -f2 | sed 's/&amp;/\&/g')
  got=$(curl -s -o "$TMP/graph.png" -w '%{http_code} %{content_type}' --max-time "$MAXT" "${AUTH[@]}" "$API$src")
  eq "the first graph's URL answers 200 image/png" "$got" "200 image/png"
  eq "... and is a PNG" "$(head -c 8 "$TMP/graph.png" | od -An -c | tr -d ' \n')" '211PNG\r\n032\n'
  w=$(grep -o 'data-width="[0-9]*"' <<<"$imgs" | head -1 | cut -d'"' -f2)
  check "... which the browser decoded (width ${w:-?})" test "${w:-0}" -gt 100
else
  svgs=$(grep -o '<svg class="graph svg"[^>]*>' <<<"$d")
  diag "no /v1/graph on this collector: the console draws SVG from /v1/measures"
  eq "graphs drawn as SVG (no /v1/graph yet)" "$(grep -c . <<<"$svgs")" "$panels"
  check "the CPU graph has points" grep -q 'data-points="[1-9]' <<<"$(head -1 <<<"$svgs")"
fi
shot instance "/instance/$UUID?range=1h"
d=$(dom instance6h "/instance/$UUID?range=6h")
check "range 6h is selected on reload" grep -q 'class="active">6h</a>' <<<"$d"
check "the 6h range ends at the instance's last data" grep -q "$(date -u -d "$end" '+%Y-%m-%d %H:%M') UTC</span>" <<<"$(grep -o '<nav class="ranges".*</nav>' <<<"$d")"
if [[ -n $imgs ]]; then
  imgs6=$(grep -o '<img class="graph"[^>]*>' <<<"$d")
  eq "6h graphs loaded" "$(grep -c 'data-state="loaded"' <<<"$imgs6")" "$(grep -c . <<<"$imgs6")"
fi
d=$(dom instance-named "/instance/$WEB?range=1h")
check "a Nova instance's page is titled by its display name" grep -q '<h1 id="instance-name">web-frontend-1' <<<"$d"
check "... and names its project with the id" grep -q "<dd>webshop ($P_WEB)</dd>" <<<"$d"
check "... and libvirt's domain name" grep -q '<dt>Domain</dt><dd>web1</dd>' <<<"$d"
d=$(dom ghost "/instance/no-such-instance")
check "an unknown instance says so" grep -q 'No such instance' <<<"$d"

# ---- alarms ----
if [[ $ALARMS == 1 ]]; then
  curl -s -o /dev/null --max-time "$MAXT" "${AUTH[@]}" -XPOST "$API/v1/silences" -d \
    '{"matchers": {"host": "compute-9"}, "duration": "2h", "created_by": "console-test", "comment": "window-for-the-console"}'
fi
d=$(dom alarms "/alarms")
check "alarms view reaches its ready state" grep -q 'data-state="ready" data-view="alarms"' <<<"$d"
if [[ $ALARMS == 1 ]]; then
  for name in cpu-busy cpu-idle; do
    want=$(api "/v1/alarms?name=$name" | jq -r '.alarms[0].state')
    r=$(grep -o "<tr data-id=[^>]*>.\{0,300\}>$name<" <<<"$d" | head -1)
    shown=$(grep -o 'class="badge [a-z_]*"' <<<"$r" | head -1 | cut -d' ' -f2 | tr -d '"')
    eq "alarm $name shows its state ($want)" "$shown" "$want"
  done
  eq "cpu-busy is firing" "$(api "/v1/alarms?name=cpu-busy" | jq -r '.alarms[0].state')" alarm
  r=$(grep -o "<tr data-id=[^>]*>.\{0,300\}>web-idle<.\{0,600\}" <<<"$d" | head -1)
  check "an alarm on one resource names it as people know it, the id under it" \
    grep -q "<td class=\"watches\"><div class=\"name\">web-frontend-1</div><div class=\"uuid\">$WEB</div></td>" <<<"$r"
  r=$(grep -o "<tr data-id=[^>]*>.\{0,600\}>fleet-busy<.\{0,600\}" <<<"$d" | head -1)
  check "the group alarm is marked as one, with its cooldown" grep -q 'group alarm, cooldown 300 s' <<<"$r"
  check "the group alarm's condition says across the group" grep -q 'average across the group of average cpu.util gt 99' <<<"$r"
  check "the firing count is 1" grep -q 'data-state="alarm"><span class="label">Firing</span><span class="big">1<' <<<"$d"
  check "the silences in force are listed, with a form for a new one" \
    grep -q '<td>host=compute-9</td>.*<td>console-test</td><td>window-for-the-console</td>.*Expire.*id="silence-form"' <<<"$d"
else
  check "alarms section says it is not available" grep -q 'Alarms: not available' <<<"$d"
fi
shot alarms "/alarms"

# ---- invoices ----
# analytics' name as the agents would report it (db1 carries vigie's own
# metadata, without one), with markup in it: the list shows it as text
check "a name for project analytics" sqlite3 -cmd ".timeout 10000" "$DATA/billing.db" \
  "INSERT OR REPLACE INTO bill_project_names(project,name,updated_ms) VALUES('analytics','Data & <i>Lake</i>',1)"
d=$(dom invoices "/invoices?month=$MONTH")
check "invoices view reaches its ready state" grep -q 'data-state="ready" data-view="invoices"' <<<"$d"
list=$(api "/v1/invoices?month=$MONTH")
if jq -e '.invoices' <<<"$list" >/dev/null 2>&1; then
  total=$(jq -r '.invoices[] | select(.project=="default") | .total' <<<"$list")
  r=$(grep -o '<tr data-project="default">.*</tr>' <<<"$d" | sed 's#</tr>.*#</tr>#')
  check "project default's invoice is listed" test -n "$r"
  check "... with the API's total ($total)" grep -q ">$total EUR<" <<<"$r"
  eq "the list names webshop's project" "$(jq -r ".invoices[] | select(.project==\"$P_WEB\") | .project_name" <<<"$list")" webshop
  r=$(grep -o "<tr data-project=\"$P_WEB\">.*</tr>" <<<"$d" | sed 's#</tr>.*#</tr>#')
  check "... and the page shows its name, the id under it" grep -q ">webshop</a><div class=\"uuid\">$P_WEB</div>" <<<"$r"
  # the warnings count of each invoice, marked when there are any
  nw=$(jq -r '.invoices[] | select(.project=="default") | .warnings' <<<"$list")
  check "project default's invoice has warnings (unpriced compute: $nw)" pos "${nw:-0}"
  r=$(grep -o '<tr data-project="default">.*</tr>' <<<"$d" | sed 's#</tr>.*#</tr>#')
  check "... and the page shows their count" grep -q "<td class=\"num warnings warn\" data-warnings=\"$nw\">$nw</td>" <<<"$r"
  r=$(grep -o "<tr data-project=\"$P_WEB\">.*</tr>" <<<"$d" | sed 's#</tr>.*#</tr>#')
  eq "webshop's invoice has none, and the page says 0" \
    "$(jq -r ".invoices[] | select(.project==\"$P_WEB\") | .warnings" <<<"$list"):$(grep -o '<td class="num warnings[^"]*"[^>]*>[^<]*<' <<<"$r")" \
    '0:<td class="num warnings" data-warnings="0">0<'
  # an entry that cannot be computed: its project's name (escaped), the
  # id under it, and the error in place of its figures
  eq "analytics' invoice cannot be computed, its entry named" \
    "$(jq -r '.invoices[] | select(.project=="analytics") | [.error.reason, .project_name] | join(" ")' <<<"$list")" \
    "amount_out_of_range Data & <i>Lake</i>"
  r=$(grep -o '<tr data-project="analytics">.*</tr>' <<<"$d" | sed 's#</tr>.*#</tr>#')
  check "... and the page shows that name as text, the id under it, then the error" \
    grep -q '>Data &amp; &lt;i&gt;Lake&lt;/i&gt;</a><div class="uuid">analytics</div></td><td colspan="4" class="error">an invoice of .* cannot be computed: project analytics' <<<"$r"
  check "... no markup of it in the page" lacks '<i>Lake' "$TMP/invoices.html"
  "$BIN/vigie" --api "$API" ${TOKEN:+--token "$TOKEN"} invoice --month "$MONTH" >"$TMP/cli.out" 2>"$TMP/cli.err"
  cli=$(cat "$TMP/cli.out")
  check "vigie invoice --month names the project beside its id" grep -q "^$P_WEB  *webshop  *DRAFT-$MONTH-" <<<"$cli"
  d=$(dom invoice "/invoices?month=$MONTH&project=default")
  inv=$(api "/v1/invoices?month=$MONTH&project=default")
  eq "invoice page shows the total" "$(text "$d" 'id="invoice-total"')" "$(jq -r '.total + " " + .currency' <<<"$inv")"
  eq "invoice page shows every line" "$(grep -o '<tbody>.*</tbody>' <<<"$d" | grep -o '<tr>' | wc -l)" "$(jq '.lines | length' <<<"$inv")"
  shot invoice "/invoices?month=$MONTH&project=default"
else
  check "invoices section says it is not available" grep -q 'Invoices: not available' <<<"$d"
fi

# ---- query: an expression box with a graph ----
QE='mean(cpu.util, by=project)'
d=$(dom query "/query?expr=$(jq -rn --arg s "$QE" '$s | @uri')&range=6h")
check "query view reaches its ready state" grep -q 'data-state="ready" data-view="query"' <<<"$d"
qa=$(api "/v1/query?expr=$(jq -rn --arg s "$QE" '$s | @uri')&start=-6h")
eq "query view draws one legend entry per series of /v1/query" \
  "$(grep -o '<span class="legend" data-key="[^"]*"' <<<"$d" | sed 's/.*data-key="\([^"]*\)"/\1/' | sort | tr '\n' ' ')" \
  "$(jq -r '[.series[].key | if . == "" then "(all)" else . end] | sort | join(" ")' <<<"$qa") "
check "... and a chart with points" pos "$(attr "$d" 'class="graph svg"' data-points)"
d=$(dom query-error "/query?expr=$(jq -rn --arg s 'sum(cpu.util' '$s | @uri')")
check "an expression error shows the server's message" grep -q 'id="expr-error"' <<<"$d"
check "... with a caret under the position" grep -q '<pre class="caret">sum(cpu.util' <<<"$d"
shot query "/query?expr=$(jq -rn --arg s "$QE" '$s | @uri')&range=6h"

# ---- tokens ----
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time "$MAXT" "$API/v1/resources")
if [[ $code == 401 && -n $TOKEN ]]; then
  saved=$TOKEN; TOKEN=
  d=$(dom login "/")
  shot login "/"
  TOKEN=$saved
  check "without a token the sign-in box shows" grep -q '<body data-state="login"' <<<"$d"
  check "... and no instance data" lacks "$UUID" "$TMP/login.html"
  if [[ -n $OTHER ]]; then
    saved=$TOKEN; TOKEN=$OTHER
    d=$(dom other "/")
    TOKEN=$saved
    check "another project's token sees the console" grep -q 'data-state="ready" data-view="instances"' <<<"$d"
    check "... but not this project's instance" lacks "$UUID" "$TMP/other.html"
  fi
  check "the header shows which token is in use" grep -q "token …${TOKEN: -4}" "$TMP/instances.html"
else
  skip "sign-in and project isolation in the console: this collector does not require tokens yet"
fi

for f in instances instance alarms; do
  check "screenshot $f.png written" test -s "$SHOTS/$f.png"
done
done_testing
