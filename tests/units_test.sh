#!/usr/bin/env bash
# tests/units_test.sh — the systemd units run unprivileged and sandboxed:
# `systemd-analyze security --offline=yes` rates each unit in
# etc/systemd/ (with @BINDIR@ filled in, as make install does) at most 2.5
# for the collector and 3.5 for the agent, which must reach libvirt's
# socket and /proc. Works without systemd as PID 1; skipped (with the
# reason) where systemd-analyze is missing.
set -u
cd "$(dirname "$0")/.."
n=0
ok()  { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }

if ! command -v systemd-analyze >/dev/null; then
  echo "1..0 # SKIP systemd-analyze not installed (Debian package systemd)"
  exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

declare -A limit=([vigie-collector]=2.5 [vigie-agent]=3.5)
for u in vigie-collector vigie-agent; do
  sed 's|@BINDIR@|/usr/bin|g' "etc/systemd/$u.service" >"$tmp/$u.service"
  out=$(systemd-analyze security --offline=yes --no-pager "$tmp/$u.service" 2>&1)
  level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
  if [[ -z $level ]]; then
    nok "$u: systemd-analyze gave no exposure level"; echo "$out" | sed 's/^/# /' | tail -5
  elif awk -v l="$level" -v m="${limit[$u]}" 'BEGIN {exit !(l <= m)}'; then
    ok "$u exposure $level <= ${limit[$u]}"
  else
    nok "$u exposure $level > ${limit[$u]}"
    echo "$out" | grep '✗' | sed 's/^/# /'
  fi
  # Settings the score does not see but the issue asks for.
  for s in 'User=vigie' 'UMask=0027' 'StateDirectory=vigie' 'ProtectSystem=strict' \
           'NoNewPrivileges=yes' 'CapabilityBoundingSet=$'; do
    if grep -q "^$s" "etc/systemd/$u.service"; then ok "$u has ${s%\$}"; else nok "$u lacks ${s%\$}"; fi
  done
  # The unit's command line is the one the package test runs.
  grep -q "^ExecStart=@BINDIR@/$u --config /etc/vigie/${u#vigie-}.conf$" "etc/systemd/$u.service" \
    && ok "$u reads /etc/vigie/${u#vigie-}.conf" || nok "$u ExecStart changed: update tests/package/deb_test.sh"
done
echo "1..$n"
