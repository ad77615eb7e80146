#!/usr/bin/env bash
# config_check_test.sh — `vigie-collector config check` refuses what the
# start refuses, with the same line and exit 2, and the start refuses it
# before it creates anything: a rate card that is missing or wrong (a
# negative price, tiers that go down, a currency in lower case), a TLS
# certificate without its key (it was exit 1 with no key nor file named)
# or that is no PEM file, backend = rrdcached without daemons, a
# heartbeat or publish_heartbeat shorter than the step. The check
# used to say "configuration OK" for each. A good configuration of the
# same keys passes.
source "$(dirname "$0")/lib.sh"

PORT=$(free_port)
CARD=$ROOT/tests/fixtures/billing/ratecard.json
n=0
# PEM in form only: the check reads the files, it starts no TLS
printf -- '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n' >"$TMP/cert.pem"
printf -- '-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n' >"$TMP/key.pem"
# refused DESC WANT_IN_STDERR (config text on stdin)
refused() {
  local desc=$1 want=$2 conf out rc
  n=$((n + 1))
  conf=$TMP/c$n.conf
  { printf '[collector]\ndata_dir = %s\nlisten = tcp://127.0.0.1:%s\nhttp = 127.0.0.1:0\n' \
      "$TMP/data$n" "$PORT"; cat; } >"$conf"
  out=$("$BIN/vigie-collector" --allow-unsigned --config "$conf" config check 2>&1); rc=$?
  eq "$desc: config check exits 2" "$rc" 2
  check "$desc: config check names it ($want)" grep -qF -- "$want" <<<"$out"
  timeout 20 "$BIN/vigie-collector" --allow-unsigned --config "$conf" >"$TMP/start$n.out" 2>&1; rc=$?
  eq "$desc: the start exits 2" "$rc" 2
  eq "$desc: with the same line" "$(cat "$TMP/start$n.out")" "$out"
  check "$desc: nothing created (no data directory)" test ! -e "$TMP/data$n"
}

refused "a rate card that does not exist" \
  "c1.conf: [billing] ratecard: $TMP/nonexistent.json: cannot read the rate card" \
  <<<"[billing]"$'\n'"ratecard = $TMP/nonexistent.json"
sed 's/"0.0200"/"-1"/' "$CARD" >"$TMP/neg.json"
refused "a negative price" 'neg.json: $.prices[0].compute.flavors["m1.small"]' \
  <<<"[billing]"$'\n'"ratecard = $TMP/neg.json"
sed 's/"up_to_gb": 1,/"up_to_gb": 20,/' "$CARD" >"$TMP/tiers.json"
refused "egress tiers that go down" 'tiers.json: $.prices[0].network.egress_gb' \
  <<<"[billing]"$'\n'"ratecard = $TMP/tiers.json"
sed 's/"currency": "EUR"/"currency": "eur"/' "$CARD" >"$TMP/cur.json"
refused "a currency in lower case" 'cur.json: $.currency' \
  <<<"[billing]"$'\n'"ratecard = $TMP/cur.json"
refused "tls_cert without tls_key" \
  "[collector] tls_cert = /etc/hostname is set without tls_key: TLS needs both tls_cert and tls_key" \
  <<<$'tls_cert = /etc/hostname'
refused "tls_key without tls_cert" "[collector] tls_key = $TMP/k.pem is set without tls_cert" \
  <<<"tls_key = $TMP/k.pem"
refused "a certificate that is no PEM file" "[collector] tls_cert: /etc/hostname: not a PEM file" \
  <<<$'tls_cert = /etc/hostname\ntls_key = /etc/hostname'
refused "a key file that does not exist" "[collector] tls_key: $TMP/nope.pem: No such file" \
  <<<"tls_cert = $TMP/cert.pem"$'\n'"tls_key = $TMP/nope.pem"
refused "backend rrdcached without daemons" "[storage] backend = rrdcached needs [storage] daemons" \
  <<<$'[storage]\nbackend = rrdcached'
# storage keys the store refused only once the data directory existed
# (exit 1, "store: bad step, heartbeat or archives", no key named)
refused "a heartbeat below the step" \
  "c$((n + 1)).conf: [storage] heartbeat (59 s) is shorter than [storage] step (60 s)" \
  <<<$'[storage]\nheartbeat = 59'
refused "a one-day step under the default heartbeat" \
  "[storage] heartbeat (600 s) is shorter than [storage] step (86400 s)" \
  <<<$'[storage]\nstep = 86400\narchives = 1d:400d'
refused "a publish_heartbeat below the step" \
  "[storage] publish_heartbeat (10 s) is shorter than [storage] step (60 s)" \
  <<<$'[storage]\npublish_heartbeat = 10'
refused "an [archives] rule off the step" \
  "[archives] disk.*: tier 90s:86400s: its resolution is not a multiple of [storage] step" \
  <<<$'[archives]\ndisk.* = 90s:1d'

# the same keys, right: passes, and creates nothing either
printf '[collector]\ndata_dir = %s\ntls_cert = %s\ntls_key = %s\n[billing]\nratecard = %s\n' \
  "$TMP/good" "$TMP/cert.pem" "$TMP/key.pem" "$CARD" >"$TMP/good.conf"
out=$("$BIN/vigie-collector" --allow-unsigned --config "$TMP/good.conf" config check 2>&1); rc=$?
eq "a good rate card and TLS pair: configuration OK" "$rc $out" "0 configuration OK"
check "... and no data directory" test ! -e "$TMP/good"
done_testing
