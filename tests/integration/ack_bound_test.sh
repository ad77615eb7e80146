#!/usr/bin/env bash
# ack_bound_test.sh — the collector tells the operator the bound its
# receiver keeps on a storage daemon, and whether it comes from the
# agents' ack timeout or a default.
#
# Why. With the rrdcached backend the receiver waits on a daemon at most
# a quarter of [agent] ack_timeout_ms, so that a batch is acknowledged
# within the agents' ack timeout even when a daemon stalls. The agents'
# timeout is in their configuration; the collector reads the same key
# from its own, and nothing on the wire carries it. A collector whose
# configuration lacks the key used the default (5000 ms, a bound of
# 1250 ms) silently: agents with a shorter timeout then failed over
# whenever a daemon was slow, with nothing in the log to say why. Now the
# start-up log states the bound, as info when the key is set and as a
# warning naming the key when it is the default.
#
# A real rrdcached and the collector started twice on it: without the
# key (the warning, 1250 ms), with ack_timeout_ms = 2000 (info, 500 ms).
# And the files backend has no such bound: no line.
source "$(dirname "$0")/lib.sh"

collector_ports
start_rrdcached a -R -O || { nok "rrdcached did not start"; done_testing; exit 1; }
conf() { # FILE [AGENT SECTION LINES]
  printf '[storage]\nbackend = rrdcached\ndaemons = %s\nstep = 60\nheartbeat = 600\narchives = 1m:1d\n%s' \
    "$RRDCACHED_UNIX" "$2" >"$1"
}
bound_line() { grep 'receiver waits at most' "$TMP/$1.log"; }

conf "$TMP/default.conf" ""
check "collector starts without [agent] ack_timeout_ms" start_api_collector c-default \
  --config "$TMP/default.conf" --data-dir "$TMP/data1"
line=$(bound_line c-default)
check "it warns that the bound is the default's" grep -q ' warn: ' <<<"$line"
check "... naming 1250 ms and the key to set" \
  grep -q '1250 ms.*\[agent\] ack_timeout_ms = 5000, the default' <<<"$line"
stop_pid "$COLLECTOR_PID"

conf "$TMP/set.conf" $'[agent]\nack_timeout_ms = 2000\n'
check "collector starts with [agent] ack_timeout_ms = 2000" start_api_collector c-set \
  --config "$TMP/set.conf" --data-dir "$TMP/data2"
line=$(bound_line c-set)
check "it states the bound as info" grep -q ' info: ' <<<"$line"
check "... 500 ms, a quarter of 2000" grep -q '500 ms.*ack_timeout_ms = 2000' <<<"$line"
stop_pid "$COLLECTOR_PID"

check "collector starts on the files backend" start_api_collector c-files --data-dir "$TMP/data3"
eq "no bound line there (no daemon to wait on)" "$(bound_line c-files | wc -l)" 0
stop_pid "$COLLECTOR_PID"
done_testing
