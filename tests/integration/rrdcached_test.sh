#!/usr/bin/env bash
# rrdcached_test.sh — start_rrdcached (lib.sh) gives a working, confined
# daemon, and the standard tools reach it: what an operator does with
# `rrdtool ... --daemon` (fresh reads with plain rrdtool) on the unix
# socket and on the TCP port.
. "$(dirname "$0")/lib.sh"

command -v rrdcached >/dev/null || { echo "1..0 # SKIP rrdcached not installed"; exit 0; }
T0=1700000000
# librrd's client turns a relative name into an absolute one from its own
# working directory when it talks over a unix socket (it sends relative
# names as they are over TCP), so an operator runs rrdtool from the
# daemon's base dir, or names files by their absolute path inside it.

if start_rrdcached one -O; then ok "rrdcached answers on $RRDCACHED_UNIX and $RRDCACHED_TCP"
else nok "rrdcached did not start"; cat "$TMP/one.log"; done_testing; exit 1; fi

cd "$RRDCACHED_BASE" || exit 1
check "create through the unix socket" \
  rrdtool create x.rrd --daemon "$RRDCACHED_UNIX" -s 10 -b $T0 DS:v:GAUGE:20:U:U RRA:AVERAGE:0.5:1:100
eq "the file is in the daemon's base dir" "$(ls "$RRDCACHED_BASE")" "x.rrd"
if rrdtool create x.rrd --daemon "$RRDCACHED_UNIX" -s 10 -b $T0 DS:v:GAUGE:20:U:U \
     RRA:AVERAGE:0.5:1:100 2>"$TMP/err" || ! grep -q "File exists" "$TMP/err"; then
  nok "-O: a second create is refused ($(cat "$TMP/err"))"
else ok "-O: a second create is refused"; fi
if rrdtool create ../escape.rrd --daemon "$RRDCACHED_TCP" -s 10 DS:v:GAUGE:20:U:U \
     RRA:AVERAGE:0.5:1:100 2>"$TMP/err" || [[ -e $RRDCACHED_DIR/escape.rrd ]] ||
   ! grep -q "Permission denied" "$TMP/err"; then
  nok "-B: a create outside the base dir is refused"
else ok "-B: a create outside the base dir is refused"; fi

check "update through the TCP port" \
  rrdtool update x.rrd --daemon "$RRDCACHED_TCP" $((T0 + 10)):1.5 $((T0 + 20)):2.5
# the values wait in the daemon: the file itself has not moved yet
eq "the file on disk is not written yet" "$(rrdtool last "$RRDCACHED_BASE/x.rrd")" "$T0"
got=$(rrdtool fetch x.rrd AVERAGE --daemon "$RRDCACHED_UNIX" -s $T0 -e $((T0 + 20)) |
      awk -F': ' '/^[0-9]+:/ { printf "%s=%.2f ", $1, $2 }')
eq "rrdtool fetch --daemon sees the cached values" "$got" \
  "$((T0 + 10))=1.50 $((T0 + 20))=2.50 $((T0 + 30))=-nan "
eq "fetch flushed the file" "$(rrdtool last "$RRDCACHED_BASE/x.rrd")" "$((T0 + 20))"

pid=$RRDCACHED_PID
stop_pid "$pid"
if kill -0 "$pid" 2>/dev/null; then nok "the daemon stops on SIGTERM"; else ok "the daemon stops on SIGTERM"; fi
done_testing
