#!/usr/bin/env bash
# tests/package/deb_test.sh — the Debian packages, end to end:
# build them from a copy of the tree with dpkg-buildpackage, lint them,
# install them with dpkg -i, run both daemons as the vigie user with the
# command line of their units (no systemd here: setpriv, the unit's UMask),
# ask the API through the packaged CLI and its per-user cli.conf, then
# remove and purge them and check that nothing is left: no files, no
# state, no user.
#
# `make deb-test` (and .ci/run) runs it; not part of `make check` (it
# compiles the tree again and installs packages: a few minutes, as root).
# It refuses to run where vigie is installed outside the packages (a
# /etc/vigie or /var/lib/vigie it did not make) rather than remove it.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
TMP=$(mktemp -d /tmp/vigie-deb.XXXXXX)
n=0 pids=() made_libvirt_group=0
failed=0
ok()   { n=$((n + 1)); echo "ok $n - $*"; }
nok()  { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() { local d=$1; shift; if "$@" >/dev/null 2>&1; then ok "$d"; else nok "$d"; fi; }
diag() { echo "# $*"; }
PKGS=(vigie vigie-agent vigie-collector vigie-common)
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  dpkg -P "${PKGS[@]}" >/dev/null 2>&1
  [[ $made_libvirt_group == 1 ]] && groupdel libvirt 2>/dev/null
  if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "# kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

skip_all() { echo "1..0 # SKIP $*"; exit 0; }
[[ $(id -u) == 0 ]] || skip_all "needs root (dpkg -i)"
for t in dpkg-buildpackage dh setpriv curl; do
  command -v $t >/dev/null || skip_all "$t not installed (scripts/deps.sh)"
done
for p in "${PKGS[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q installed; then
    skip_all "$p is installed on this machine; not touching it"
  fi
done
for d in /etc/vigie /var/lib/vigie; do
  [[ -e $d ]] && skip_all "$d exists (vigie installed without packages?); not touching it"
done
getent passwd vigie >/dev/null && skip_all "a vigie user exists; not touching it"

# ---- build and lint -------------------------------------------------------
mkdir -p "$TMP/src"
git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C "$TMP/src"
t0=$SECONDS
if (cd "$TMP/src" && nice dpkg-buildpackage -us -uc -b -J"$(nproc)") >"$TMP/build.log" 2>&1; then
  ok "dpkg-buildpackage -us -uc -b ($((SECONDS - t0)) s)"
else
  nok "dpkg-buildpackage failed"; tail -20 "$TMP/build.log" | sed 's/^/# /'
  echo "1..$n"; exit 1
fi
debs=()
for p in "${PKGS[@]}"; do
  f=$(ls "$TMP"/${p}_*.deb 2>/dev/null | head -1)
  if [[ -n $f ]]; then ok "built $p"; debs+=("$f"); else nok "no $p package"; fi
done
check "vigie-collector declares its libraries (shlibs)" \
  bash -c "dpkg-deb -f '${debs[2]}' Depends | grep -q librrd"
if command -v lintian >/dev/null; then
  # Overrides live in debian/*.lintian-overrides, each with its reason.
  if lintian --fail-on error,warning "$TMP"/vigie_*.changes >"$TMP/lintian.log" 2>&1; then
    ok "lintian: no error, no warning"
  else
    nok "lintian"; grep -E '^[EW]:' "$TMP/lintian.log" | sed 's/^/# /'
  fi
else
  n=$((n + 1)); echo "ok $n # SKIP lintian not installed"
fi

# ---- install --------------------------------------------------------------
# The agent's user joins libvirt's group when it exists; make one if this
# machine has none (removed at the end).
if ! getent group libvirt >/dev/null; then groupadd --system libvirt && made_libvirt_group=1; fi
touch "$TMP/marker"
if dpkg -i "${debs[@]}" >"$TMP/install.log" 2>&1; then ok "dpkg -i"; else
  nok "dpkg -i"; tail -20 "$TMP/install.log" | sed 's/^/# /'; echo "1..$n"; exit 1
fi
check "vigie system user" bash -c 'getent passwd vigie | grep -q ":/var/lib/vigie:/usr/sbin/nologin$"'
check "vigie is in the libvirt group" bash -c 'id -nG vigie | grep -qw libvirt'
eq() { if [[ $2 == "$3" ]]; then ok "$1"; else nok "$1 (got '$2', want '$3')"; fi; }
eq "/var/lib/vigie owner and mode" "$(stat -c '%U:%G %a' /var/lib/vigie)" "vigie:vigie 750"
eq "/etc/vigie/keys owner and mode" "$(stat -c '%U:%G %a' /etc/vigie/keys)" "root:vigie 750"
check "agent.conf is a conffile" bash -c "dpkg-query -W -f='\${Conffiles}' vigie-agent | grep -q /etc/vigie/agent.conf"
check "collector.conf is a conffile" bash -c "dpkg-query -W -f='\${Conffiles}' vigie-collector | grep -q /etc/vigie/collector.conf"
for m in man1/vigie.1 man5/vigie.conf.5 man8/vigie-agent.8 man8/vigie-collector.8; do
  check "man page $m installed" test -s /usr/share/man/$m.gz
done
check "bash completion installed" test -s /usr/share/bash-completion/completions/vigie

# ---- run as the units do ----------------------------------------------------
free_port() {
  local p
  while :; do p=$((20000 + RANDOM % 12000)); ss -Htan "sport = :$p" | grep -q . || { echo "$p"; return; }; done
}
NN=$(free_port) HP=$(free_port)
# What an operator edits: the ports, libvirt's test driver, a fast poll,
# unsigned batches (the signing path has its own test, signed_test.sh).
sed -i "s|^listen = .*|listen = tcp://127.0.0.1:$NN|; s|^http = .*|http = 127.0.0.1:$HP|; s|^data_dir = .*|&\nrequire_signatures = false|" /etc/vigie/collector.conf
sed -i "s|^collector = .*|collector = tcp://127.0.0.1:$NN|; s|^libvirt = .*|libvirt = test:///default|; s|^interval = .*|interval = 1|" /etc/vigie/agent.conf
# ExecStart=, User=, UMask= of the installed unit, under setpriv.
run_unit() { # NAME
  local u=/lib/systemd/system/$1.service cmd user umask
  cmd=$(sed -n 's/^ExecStart=//p' "$u"); user=$(sed -n 's/^User=//p' "$u")
  umask=$(sed -n 's/^UMask=//p' "$u")
  (cd /var/lib/vigie && umask "$umask" && exec setpriv --reuid="$user" --regid="$user" \
    --init-groups --no-new-privs --inh-caps=-all --bounding-set=-all $cmd) \
    >"$TMP/$1.log" 2>&1 &
  pids+=($!)
}
run_unit vigie-collector
TOKEN=$(setpriv --reuid=vigie --regid=vigie --init-groups /usr/bin/vigie-collector \
  --config /etc/vigie/collector.conf token create --admin --name deb-test 2>"$TMP/token.err")
[[ $TOKEN == vgt_* ]] && ok "admin token made as the vigie user" || { nok "token create"; sed 's/^/# /' "$TMP/token.err"; }
run_unit vigie-agent
# The CLI reads the API and token from the user's cli.conf (mode 0600).
mkdir -p "$TMP/home/.config/vigie"
printf 'api = http://127.0.0.1:%s\ntoken = %s\n' "$HP" "$TOKEN" >"$TMP/home/.config/vigie/cli.conf"
chmod 600 "$TMP/home/.config/vigie/cli.conf"
cli() { env -u VIGIE_API -u VIGIE_TOKEN -u VIGIE_CONFIG HOME="$TMP/home" /usr/bin/vigie "$@"; }
for _ in $(seq 300); do cli health >/dev/null 2>&1 && break; sleep 0.2; done
check "the API answers (vigie health)" cli health
for _ in $(seq 300); do
  cli resources --type instance --output csv 2>/dev/null | grep -q ',test,' && break; sleep 0.2
done
out=$(cli resources --type instance --output csv 2>&1)
if grep -q ',test,' <<<"$out"; then ok "the agent's instance reached the API"; else nok "no instance in the API"; echo "$out" | sed 's/^/# /'; tail -5 "$TMP"/vigie-*.log | sed 's/^/# /'; fi
check "the console is served from /usr/share/vigie/www" \
  bash -c "curl -sf http://127.0.0.1:$HP/ | grep -qi '<html'"
for p in "${pids[@]}"; do
  eq "daemon $p runs as vigie" "$(ps -o user= -p "$p" 2>/dev/null | tr -d ' ')" vigie
done
eq "tokens.db mode" "$(stat -c %a /var/lib/vigie/tokens.db)" 600
eq "tokens.key mode" "$(stat -c %a /var/lib/vigie/tokens.key)" 600
check "spool directory exists" test -d /var/lib/vigie/spool
if grep -q "running as root" "$TMP"/vigie-*.log; then nok "a daemon thinks it runs as root"; else ok "no root warning"; fi
for p in "${pids[@]}"; do kill -TERM "$p"; done
for p in "${pids[@]}"; do
  for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && nok "daemon $p ignores SIGTERM" || ok "daemon $p stopped"
done
pids=()
# Files they made, read at rest (after the stop): while a series is being
# created, librrd's own temporary file ("<metric>.rrd.tmpXXXXXX") is 0644
# whatever the umask until the collector's chmod before its rename; it sits
# in the 0750 series directories, which others cannot enter (checked here
# too: every directory is in the find). A clean stop leaves none behind.
bad=$(find /var/lib/vigie \( ! -user vigie -o -perm /007 -o -perm /020 \) -printf '%m %u %p\n')
[[ -z $bad ]] && ok "every file in /var/lib/vigie is vigie's, none open to others" \
  || { nok "loose files in /var/lib/vigie"; echo "$bad" | sed 's/^/# /'; }
left=$(find /var/lib/vigie -name '*.tmp*' -printf '%m %u %p\n')
[[ -z $left ]] && ok "a clean stop leaves no temporary file" \
  || { nok "temporary files left after a clean stop"; echo "$left" | sed 's/^/# /'; }

# ---- remove, then purge -------------------------------------------------------
check "dpkg -r" dpkg -r "${PKGS[@]}"
check "programs gone after remove" bash -c '! ls /usr/bin/vigie /usr/bin/vigie-agent /usr/bin/vigie-collector 2>/dev/null | grep -q .'
check "configuration kept after remove" test -f /etc/vigie/collector.conf
check "state kept after remove" test -f /var/lib/vigie/tokens.db
check "dpkg -P" dpkg -P "${PKGS[@]}"
for d in /etc/vigie /var/lib/vigie /usr/share/vigie /lib/systemd/system/vigie-agent.service \
         /lib/systemd/system/vigie-collector.service /usr/share/doc/vigie-common; do
  check "$d gone after purge" test ! -e "$d"
done
check "vigie user gone" bash -c '! getent passwd vigie'
check "vigie group gone" bash -c '! getent group vigie'
check "no vigie package known to dpkg" bash -c "! dpkg-query -W ${PKGS[*]} 2>/dev/null | grep -q ."
left=$(find /etc /var /usr /lib /opt /srv /home /root -xdev -newer "$TMP/marker" -iname '*vigie*' 2>/dev/null)
[[ -z $left ]] && ok "no file named vigie made since the install is left" \
  || { nok "left behind"; echo "$left" | sed 's/^/# /'; }
echo "1..$n"
[[ $failed -eq 0 ]]
