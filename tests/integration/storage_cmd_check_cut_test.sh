#!/usr/bin/env bash
# storage_cmd_check_cut_test.sh — `vigie-collector storage flush` and
# `storage convert` with no collector running, on a data dir whose journal
# a collector killed (-9) left with values its rrdcached took and did not
# write yet, the daemon then killed (-9) and started again without its -j
# journal (it lost them: the check FORGETs the files and the values must
# come from the collector's journal; with the daemon untouched the check
# FLUSHes what it holds of ours and may finish within the bound, leaving
# nothing to wait), and [storage] check_max so small that the replay's check of
# the files (which each command's opening of the store runs) stops after
# one group of 32. The values past it wait with the daemon up: the
# commands must say that the check was cut short at [storage] check_max,
# naming the daemon up, not that the daemon "does not answer".
#
# Why. Both commands said "wait for a storage daemon that does not answer"
# whenever values waited, whatever the store had recorded as the cause:
# the operator looked for a daemon down that was not (the collector's
# start warning was fixed so in start_check_cut_test.sh; the commands now
# share its wording, vg_store_pending_cause). 1000 series, so that each
# opening (a few groups of 32 checked within the bound) leaves some unchecked. Then, the
# daemon killed, the same flush names it not answering, and so does the
# flush of a collector running (SIGUSR1; the cause passes through
# <data_dir>/flush.done), which said "some still cached: their storage
# daemon does not answer" without naming it. SKIP only without rrdcached
# or jq.
#
# And what the commands say stays true: "they stay in the journal". Each
# command's store tried the waiting values again once their 1 s back-off
# had passed (its storage thread, or its close): a command that lasted a
# second went on with the check, wrote them and retired the journal, so
# on a loaded machine the convert found nothing waiting and the collector
# started with the daemon down had opened no series (its third minute was
# answered 503: a series not opened, its daemon down). Both commands run
# here with their stderr a full pipe (held), blocked 1.5 s after writing
# their message: the journal's segment must still be there (fails before
# vg_store_pending_hold / vg_store_close_held).
source "$(dirname "$0")/lib.sh"
require rrdcached
command -v jq >/dev/null || { echo "1..0 # SKIP jq not installed"; exit 0; }

killed_collector_with_journal 1000

CUT="(up, the start replay's check of its files cut short at [storage] check_max, to go on at a later connection: $DAEMON)"
cmd() { "$BIN/vigie-collector" --config "$TMP/c.conf" --data-dir "$DATA" storage "$@"; }
# held OUT ERR ARGS...: the storage command ARGS... with its stderr a full
# pipe, so that writing its message blocks it for 1.5 s (past the 1 s
# back-off of the values it reports waiting) before it closes the store:
# what a loaded machine may do to it anyway. Sets rc.
held() {
  local out=$1 err=$2 fifo=$TMP/fifo pid; shift 2
  rm -f "$fifo"; mkfifo "$fifo"
  { wait_for 30 blocked; sleep 1.5; tr -d '\0' >"$err"; } <"$fifo" &
  local reader=$!
  head -c 65536 /dev/zero >"$fifo" # the pipe's 64 KiB: full
  "$BIN/vigie-collector" --config "$TMP/c.conf" --data-dir "$DATA" storage "$@" \
    >"$out" 2>"$fifo" &
  pid=$!
  echo "$pid" >"$TMP/held.pid"
  wait "$pid"; rc=$?
  wait "$reader"
}
# the command blocked writing to the full pipe (or already gone)
blocked() {
  local p; p=$(cat "$TMP/held.pid" 2>/dev/null) || return 1
  [[ -n $p ]] && { [[ $(cat "/proc/$p/wchan" 2>/dev/null) == *pipe_write ]] || ! kill -0 "$p" 2>/dev/null; }
}

rm -f "$TMP/held.pid"
held "$TMP/f.out" "$TMP/f.err" flush
diag "flush: $(cat "$TMP/f.out" "$TMP/f.err")"
eq "storage flush (no collector) fails: values wait" "$rc" 1
check "... naming the daemon up, its check cut short at [storage] check_max" grep -qF "$CUT" "$TMP/f.err"
check "... not as a daemon that does not answer" bash -c '! grep -q "not answering\|does not answer" "$1"' _ "$TMP/f.err"
# "they stay in the journal": the crash's segment is still there. Its
# close tried them again once their daemon's 1 s back-off had passed (a
# command that lasted a second, on a loaded machine): the check went on,
# the values were written, the journal retired, and what convert and the
# collector below found depended on timing
segs() { ls "$DATA/journal" | grep -c '\.vgj$'; }
eq "... and they stay in the journal, as said" "$(segs)" 1

rm -f "$TMP/held.pid"
held "$TMP/v.out" "$TMP/v.err" convert
diag "convert: $(cat "$TMP/v.out" "$TMP/v.err")"
eq "storage convert fails: values wait" "$rc" 1
check "... naming the daemon up, its check cut short at [storage] check_max" grep -qF "$CUT" "$TMP/v.err"
check "... not as a daemon that does not answer" bash -c '! grep -q "not answering\|does not answer" "$1"' _ "$TMP/v.err"
eq "... and they stay in the journal, as said" "$(segs)" 1

# the daemon down: a collector started with it down holds new values for
# it (its start replays the journal the commands left, which holds every
# series: each opened with its last update unknown; a series not opened
# would be answered 503, its last update unreadable with the daemon
# down); its flush (SIGUSR1, the cause through flush.done) names the
# daemon not answering, and so does the offline flush once it was killed
# (-9)
S_PID=$RRDCACHED_PID
kill "$S_PID"; wait "$S_PID" 2>/dev/null
check "the collector starts with the daemon down" \
  start_api_collector c3 --config "$TMP/c.conf" --data-dir "$DATA"
C=$COLLECTOR_PID
for i in $(seq 1 $NS); do printf 'node%d load.1 %d %d\n' "$i" "$((i + 200))" "$((T + 120))"; done >"$TMP/m3"
check "a third minute is published (held for the daemon)" "$BIN/vigie" --api "$API" put --project p1 --file "$TMP/m3"
cmd flush --timeout 60 >"$TMP/f3.out" 2>"$TMP/f3.err"
rc=$?
diag "running flush, daemon down: $(cat "$TMP/f3.out" "$TMP/f3.err")"
eq "storage flush of the running collector fails: values still cached" "$rc" 1
check "... saying why: the daemon not answering, named" \
  grep -qF "still cached, waiting for their storage daemon (not answering: $DAEMON" "$TMP/f3.out"
check "collector still running" kill -0 "$C"
kill -KILL "$C"; wait "$C" 2>/dev/null
cmd flush >"$TMP/f2.out" 2>"$TMP/f2.err"
diag "offline flush, daemon down: $(cat "$TMP/f2.out" "$TMP/f2.err")"
check "with the daemon down, the offline storage flush names it not answering" \
  grep -qF "(not answering: $DAEMON)" "$TMP/f2.err"
done_testing
