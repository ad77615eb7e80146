#!/usr/bin/env bash
# storage_move_wait_test.sh — the values that arrive for series while
# they are moved wait, and reach the new daemon, each exactly once
# (docs/operations.md "Moving series between daemons": the collector is
# stopped for the move, agents spool meanwhile and deliver afterwards).
#
# Two real rrdcached daemons and a real agent: the agent polls ten minutes
# of its clock through a collector whose only daemon is A; the collector
# stops and the agent polls ten more minutes, which wait in its spool;
# with them waiting, every series moves from A to B; the collector starts
# again with both daemons, the agent's spool drains, and
# `rrdtool fetch --daemon` through B then holds, for every series, one
# value a minute over the twenty minutes, the last ten included, with the
# first ten as they were before the move; A holds nothing, the collector
# refused no value and a daemon rejected none. Then the values a
# write-behind collector acknowledged and had not written when it was
# killed -9 (its journal holds them) wait too: moving the series back to A
# replays the journal to B first, A's files hold them, and the polls the
# agent spooled meanwhile follow after the start: thirty minutes on A.
. "$(dirname "$0")/lib.sh"

require rrdcached

start_two_rrdcached
collector_ports
DATA=$TMP/data
SPOOL=$TMP/spool
START=$(( ($(date +%s) - 6 * 3600) / 3600 * 3600 ))
END=$((START + 19 * 60)) # the last poll's time
conf() { # DAEMONS [MORE [storage] LINES]
  printf '[storage]\nbackend = rrdcached\ndaemons = %s\nstep = 60\nheartbeat = 600\narchives = 1m:1d,5m:7d\n%s' \
    "$1" "${2:-}" >"$TMP/vigie.conf"
}
collector() {
  start_api_collector collector --config "$TMP/vigie.conf" --data-dir "$DATA"
}
agent() { # CLOCK_START COUNT [INTERVAL], in the background (AGENT_PID)
  start_agent agent --config "$(drain_conf)" --collector tcp://127.0.0.1:$PORT --libvirt test:///default \
    --proc "$ROOT/tests/fixtures/proc" --interval "${3:-0.05}" --host mw-host --spool "$SPOOL" \
    --clock-start "$1" --clock-step 60 --count "$2"
}
files() { (cd "$1" && find . -name '*.rrd' | sed 's|^\./||' | sort); }
spooled() { find "$SPOOL" -maxdepth 1 -name '*.vgb' | wc -l; }
# the 1-minute rows of every series from START to END through a daemon:
# DAEMON BASE (absolute names on a unix socket, relative over TCP), one
# line a row: "FILE TIME: VALUES"
rows() {
  local d=$1 base=$2 f name
  for f in $(files "$base"); do
    name=$f; [[ $d == unix:* ]] && name=$base/$f
    rrdtool fetch --daemon "$d" "$name" AVERAGE -r 60 -s $((START - 60)) -e "$END" |
      awk -v f="$f" -v s="$START" -v e="$END" '$1 ~ /:$/ && $1 + 0 >= s && $1 + 0 <= e { print f, $0 }'
  done
}
# the rows that hold a value (a rate's first poll has none)
known() { grep -v -i 'nan' "$@"; }
# the series of ROWS with an unknown row after a known one
gaps() { awk '{ if (tolower($0) ~ /nan/) { if (k[$1]) g[$1] = 1 } else k[$1] = 1 } END { for (f in g) print f }' "$1"; }

# ---- ten polls through a collector writing to A ----
conf "$A"
check "the collector starts on daemon A" collector
agent "$START" 10
wait "$AGENT_PID"
eq "the agent delivered its ten polls" "$?" 0
stop_pid "$COLLECTOR_PID"
files "$A_BASE" >"$TMP/files.a"
n=$(wc -l <"$TMP/files.a")
check "the series are files on A ($n)" test "$n" -ge 4
rows "$A" "$A_BASE" >"$TMP/rows.before"

# ---- ten more polls wait in the agent's spool while the series move ----
agent $((START + 10 * 60)) 10
eq_within 30 "with the collector stopped, the agent's next ten polls wait in its spool" 10 spooled
conf "$A, $B"
"$BIN/vigie-collector" --config "$TMP/vigie.conf" --data-dir "$DATA" storage move \
  --from "$A" --to "$B" --from-dir "$A_BASE" --to-dir "$B_BASE" --all >"$TMP/move.out" 2>"$TMP/move.err"
eq "every series moves from A to B meanwhile" "$?:$(grep -o 'moved [0-9]* series' "$TMP/move.out")" "0:moved $n series"
[[ -s $TMP/move.err ]] && diag "stderr: $(head -3 "$TMP/move.err")"
eq "... and B holds them" "$(files "$B_BASE")" "$(cat "$TMP/files.a")"
eq "the ten polls still wait" "$(spooled)" 10
f=$(head -1 "$TMP/files.a")
eq "... none of them on B yet (last update of $f)" \
  "$(rrdtool last --daemon "$B" "$f")" "$((START + 9 * 60))"

# ---- the collector starts with A and B: the waiting values reach B ----
check "the collector starts with A and B" collector
wait "$AGENT_PID"
eq "the agent delivered its spool and exited" "$?" 0
eq "... its spool is empty" "$(spooled)" 0
stop_pid "$COLLECTOR_PID"
eq "nothing is created again on A" "$(files "$A_BASE")" ""
rows "$B" "$B_BASE" >"$TMP/rows.after"
eq "B has one row a minute for every series, twenty minutes" \
  "$(cut -d' ' -f1,2 "$TMP/rows.after" | sort -u | wc -l):$(wc -l <"$TMP/rows.after")" "$((20 * n)):$((20 * n))"
eq "no series misses a minute once its first poll gave it a value" "$(gaps "$TMP/rows.after")" ""
first10() { awk -v e=$((START + 10 * 60)) '$2 + 0 < e' "$1"; }
eq "the first ten minutes are as they were on A" "$(first10 "$TMP/rows.after")" "$(first10 "$TMP/rows.before")"
eq "every series has its last ten minutes' values on B" \
  "$(awk -v s=$((START + 10 * 60)) '$2 + 0 >= s' "$TMP/rows.after" | known | cut -d' ' -f1 | sort | uniq -c |
    awk '$1 == 10' | wc -l)" "$n"
eq "rrdtool last on B is the last poll for every series" \
  "$(for s in $(cat "$TMP/files.a"); do rrdtool last --daemon "$B" "$s"; done | sort -u)" "$END"
# the collector's exit lines, one a run: the run after the move took the
# ten waiting polls, each once, and wrote as many values as the first
# run did for its ten
runs() { grep -o 'batches received [0-9]*, rejected [0-9]*, duplicate [0-9]*, retry [0-9]*; samples [0-9]*; values written [0-9]*, duplicate [0-9]*, refused [0-9]*, write errors [0-9]*' "$TMP/collector.log"; }
diag "$(runs | tr '\n' ';')"
eq "the collector took the ten waiting polls once, and wrote as many values as for the first ten" \
  "$(runs | sed -n 2p)" "$(runs | sed -n 1p)"
check "... none refused, duplicate or failed" \
  grep -q 'rejected 0, duplicate 0, retry 0;.*duplicate 0, refused 0, write errors 0' <<<"$(runs | sed -n 2p)"
check "B rejected no update" bash -c "! grep -i -E 'illegal|minimum one second' '$TMP/b.log'"

# ---- values a killed collector acknowledged wait in its journal ----
# write-behind: the collector acknowledges polls, holding their values in
# its cache and journal (a series' values wait for 64 of them, 5 min, or
# 1 s without a batch: the agent sends one every 0.3 s), and is killed -9
# after three; the agent spools the rest. Moving the series back to A
# replays the journal to B first, so the acknowledged values move with
# the files; the spooled ones reach A after the start.
conf "$A, $B" $'write_through = no\n'
check "a write-behind collector starts with A and B" collector
agent $((START + 20 * 60)) 10 0.3
received() { [[ $(curl -s --max-time 5 -H "$(api_auth)" "$API/metrics" |
  awk '$1 == "vigie_collector_batches_received_total" { print $2 }') -ge $1 ]]; }
check "it acknowledges polls" wait_for 30 received 3
kill -KILL "$COLLECTOR_PID"; wait "$COLLECTOR_PID" 2>/dev/null
diag "killed -9; journal segments: $(find "$DATA/journal" -name '*.vgj' | wc -l)"
eq "their values are not on B: they wait in the collector's journal (last update of $f)" \
  "$(rrdtool last --daemon "$B" "$f")" "$END"
"$BIN/vigie-collector" --config "$TMP/vigie.conf" --data-dir "$DATA" storage move \
  --from "$B" --to "$A" --from-dir "$B_BASE" --to-dir "$A_BASE" --all >"$TMP/move2.out" 2>"$TMP/move2.err"
eq "every series moves back to A" "$?:$(grep -o 'moved [0-9]* series' "$TMP/move2.out")" "0:moved $n series"
[[ -s $TMP/move2.err ]] && diag "stderr: $(head -3 "$TMP/move2.err")"
eq "... B holds none" "$(files "$B_BASE")" ""
last_a=$(rrdtool last --daemon "$A" "$A_BASE/$f")
check "A holds the acknowledged polls ($f: last update minute $(((last_a - START) / 60)))" \
  test "$last_a" -ge $((START + 22 * 60))
check "the collector starts again with A and B" collector
wait "$AGENT_PID"
eq "the agent delivered its spool and exited" "$?:$(spooled)" "0:0"
stop_pid "$COLLECTOR_PID"
END2=$((START + 29 * 60))
eq "rrdtool last on A is the last poll for every series" \
  "$(for s in $(cat "$TMP/files.a"); do rrdtool last --daemon "$A" "$A_BASE/$s"; done | sort -u)" "$END2"
END=$END2 rows "$A" "$A_BASE" >"$TMP/rows.journal"
eq "A has the thirty minutes, each series without a gap" \
  "$(wc -l <"$TMP/rows.journal"):$(gaps "$TMP/rows.journal")" "$((30 * n)):"
eq "... the last ten with a value for every series" \
  "$(awk -v s=$((START + 20 * 60)) '$2 + 0 >= s' "$TMP/rows.journal" | known | cut -d' ' -f1 | sort | uniq -c |
    awk '$1 == 10' | wc -l)" "$n"
diag "$(runs | tail -1)"
check "the restarted collector refused no value and failed no write" \
  grep -q 'refused 0, write errors 0$' <<<"$(runs | tail -1)"
check "A rejected no update" bash -c "! grep -i -E 'illegal|minimum one second' '$TMP/a.log'"
done_testing
