#!/usr/bin/env bash
# config_refusals_test.sh — the real vigie-collector given a bad value in
# its configuration file or on its command line: exit status 2, one line
# on standard error naming the file, line and key (or the flag's key), and
# nothing started: the data directory it was given is not even created.
# The values are ones that used to be refused only once the collector had
# opened its databases (exit 1, a log line naming neither file nor line):
# addresses, the storage backend and its write-through mode, the
# Alertmanager's URL, the HTTP API's address, the webhook fence's
# exceptions. And a duration out of its range ([storage] check_max).
source "$(dirname "$0")/lib.sh"

PORT=$(free_port)
n=0
# refused DESC WANT_IN_STDERR (config text on stdin) [ARGS...]
refused() {
  local desc=$1 want=$2; shift 2
  n=$((n + 1))
  local data=$TMP/data$n conf=$TMP/c$n.conf rc
  { printf '[collector]\ndata_dir = %s\nlisten = tcp://127.0.0.1:%s\nhttp = 127.0.0.1:0\n' \
      "$data" "$PORT"; cat; } >"$conf"
  timeout 20 "$BIN/vigie-collector" --allow-unsigned --config "$conf" "$@" \
    >"$TMP/out$n" 2>"$TMP/err$n"; rc=$?
  eq "$desc: exit 2" "$rc" 2
  if [[ $(wc -l <"$TMP/err$n") -eq 1 ]] && grep -qF -- "$want" "$TMP/err$n"; then
    ok "$desc: one line naming it"
  else
    nok "$desc: one line naming it (want '$want'; got: $(head -c 300 "$TMP/err$n"))"
  fi
  check "$desc: nothing started (no data directory)" test ! -e "$data"
}

refused "a listen URL of another scheme" "c1.conf:5: [collector] listen: 'http://x:1'" \
  <<<$'listen = http://x:1'
refused "a listen port beyond 65535" "c2.conf:5: [collector] listen" \
  <<<$'listen = tcp://127.0.0.1:99999'
refused "an unknown storage backend" "c3.conf:6: [storage] backend: 'bogus'" \
  <<<$'[storage]\nbackend = bogus'
refused "write_through maybe" "c4.conf:6: [storage] write_through" \
  <<<$'[storage]\nwrite_through = maybe'
refused "an ftp Alertmanager" "c5.conf:6: [alarms] alertmanager" \
  <<<$'[alarms]\nalertmanager = ftp://am:9093'
refused "a notify address without a port" "c6.conf:6: [alarms] notify" \
  <<<$'[alarms]\nnotify = tcp://127.0.0.1'
refused "a 300-byte line holding a bad value" "c7.conf:5: [collector] listen" \
  <<<"listen = tcp://127.0.0.1:$(printf '1%.0s' $(seq 290))"
refused "an HTTP address that is a host name" "[collector] http: 'example.com:80'" \
  <<<$'http = example.com:80'
refused "an HTTP port beyond 65535" "[collector] http: '127.0.0.1:99999'" </dev/null \
  --http 127.0.0.1:99999
refused "a webhook_allow entry that is no CIDR" "[alarms] webhook_allow: " \
  <<<$'[alarms]\nwebhook_allow = 10.0.0.0/8, 10.1.0.0/99'
refused "--listen with no port" "[collector] listen: 'tcp://h'" </dev/null --listen tcp://h
# [state] url that is no PostgreSQL address: it was taken as an sqlite
# file's path (relative to the working directory), the registry and
# billing's schemas clashed in it and the collector stopped (exit 1) on
# "no such column" after leaving that file behind
cd "$TMP" || exit 1
refused "a [state] url that is no PostgreSQL address" \
  "[state] url: '(not shown)' must be a PostgreSQL URL" <<<$'[state]\nurl = postgresq-typo'
cd "$ROOT" || exit 1
check "... and no file is left under its name" test ! -e "$TMP/postgresq-typo"
# [storage] daemons: a bad address started a collector that never
# reached it; one daemon listed twice started one unused twin
refused "a daemon address with a bad port" "[storage] daemons: '127.0.0.1:99999' has" \
  <<<$'[storage]\nbackend = rrdcached\ndaemons = 127.0.0.1:99999'
refused "one daemon listed twice" "[storage] daemons: " \
  <<<$'[storage]\nbackend = rrdcached\ndaemons = unix:/run/r.sock, /run/r.sock'
# tiers that are no multiple of the step (given after them): refused by
# the store once the data directory existed, exit 1
refused "an archive tier no multiple of the step" \
  "c$((n + 1)).conf: [archives] disk.*: tier 90s:86400s: its resolution is not a multiple of [storage] step (60 s)" \
  <<<$'[archives]\ndisk.* = 90s:1d\n[storage]\nstep = 60'
refused "default tiers no multiple of a step set later" "[storage] archives: tier 60s:" \
  <<<$'[storage]\nstep = 120'
# daemons without backend = rrdcached: the series silently went to files
refused "daemons set with the files backend" "[storage] daemons is set but backend is files" \
  <<<$'[storage]\ndaemons = 127.0.0.1:42217'
refused "a check_max of 0" "[storage] check_max: '0'" \
  <<<$'[storage]\ncheck_max = 0'
# the per-project cap on API requests in flight: out of range at its line;
# more than the workers (either key first) once both are read
refused "a per-project cap beyond 64" "c$((n + 1)).conf:5: [collector] http_max_concurrent_per_project: '65'" \
  <<<$'http_max_concurrent_per_project = 65'
refused "a per-project cap over http_threads" \
  "[collector] http_max_concurrent_per_project: 5 is more than [collector] http_threads (4)" \
  <<<$'http_max_concurrent_per_project = 5\nhttp_threads = 4'
# [storage] sync_interval in a cluster (a PostgreSQL state, rrdcached,
# write-through): a host's next collector writes newer values while this
# one's acknowledged ones wait unFLUSHed on the daemon, only in this
# one's journal besides; a daemon losing them loses them for good
# (docs/scaling.md "sync_interval in a cluster"). It started. Refused at
# the start and by `config check`, before any connection (the state's
# address here answers nothing).
SI=$'[state]\nurl = postgresql://127.0.0.1:1/vigie\n[storage]\nbackend = rrdcached\ndaemons = 127.0.0.1:1\nsync_interval = 300s'
refused "sync_interval with a shared state on rrdcached" \
  "[storage] sync_interval = 300s with a PostgreSQL [state] url and backend = rrdcached" <<<"$SI"
refused "... also by config check" "sync_interval = 0, or sync_interval_single_writer = yes" \
  <<<"$SI" config check
refused "... with write_through = yes" "docs/scaling.md \"sync_interval in a cluster\"" \
  <<<"$SI"$'\nwrite_through = yes'
# accepted: the interval 0, the operator's word that one collector writes
# the series, no shared state (one collector), no write-through
accepted() {
  local desc=$1 out rc
  n=$((n + 1))
  { printf '[collector]\ndata_dir = %s\nlisten = tcp://127.0.0.1:%s\nhttp = 127.0.0.1:0\n' \
      "$TMP/data$n" "$PORT"; cat; } >"$TMP/c$n.conf"
  out=$(timeout 20 "$BIN/vigie-collector" --allow-unsigned --config "$TMP/c$n.conf" config check 2>&1)
  rc=$?
  eq "$desc: configuration OK" "$rc $out" "0 configuration OK"
}
accepted "sync_interval 0 with a shared state" <<<"${SI%300s}0"
accepted "sync_interval_single_writer = yes" <<<"$SI"$'\nsync_interval_single_writer = yes'
accepted "sync_interval without a shared state" <<<"${SI#*vigie$'\n'}"
accepted "sync_interval without write-through" <<<"$SI"$'\nwrite_through = no'
done_testing
