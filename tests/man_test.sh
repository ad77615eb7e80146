#!/usr/bin/env bash
# tests/man_test.sh — the man pages (docs/man/*.scd) say what the programs
# do: every flag in a daemon's --help is in its man page and in
# docs/operations.md, and the page names no flag the program lacks; every
# flag of `vigie --help` and of each `vigie COMMAND --help` (and of the
# alarms, token and invoice subcommands' --help) is in vigie(1) and the
# reverse; the collector's `token --help` and `storage SUB --help` flags are
# in vigie-collector(8); every configuration key of common/config.c's key table
# is in vigie.conf(5) and docs/operations.md, under its section, and those
# name no other key. The pages build with scdoc (skipped without it).
set -u
cd "$(dirname "$0")/.."
BIN=${VIGIE_BUILD:-build}/bin
n=0
ok()  { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
flags() { grep -oE -- '--[a-z][a-z0-9-]*' | sort -u; }
# same DESC A B: the two sorted lists are equal (else the differences)
same() {
  local d
  d=$(comm -3 <(sed '/^$/d' <<<"$2") <(sed '/^$/d' <<<"$3") | tr -d '\t' | tr '\n' ' ')
  if [[ -z $d ]]; then ok "$1"; else nok "$1 (only in one: $d)"; fi
}
# within DESC SUB SUPER: every line of SUB is in SUPER
within() {
  local d
  d=$(comm -23 <(sed '/^$/d' <<<"$2") <(sed '/^$/d' <<<"$3") | tr '\n' ' ')
  if [[ -z $d ]]; then ok "$1"; else nok "$1 (missing: $d)"; fi
}

for p in vigie-agent vigie-collector vigie; do
  [[ -x $BIN/$p ]] || { echo "1..0 # SKIP $BIN/$p not built"; exit 0; }
done

# The daemons: --help against the page, and against operations.md's row.
for p in vigie-agent vigie-collector; do
  help=$("$BIN/$p" --help)
  if [[ $p == vigie-collector ]]; then
    help+=$'\n'$("$BIN/$p" --data-dir /nonexistent token --help 2>&1)
    for s in stats convert move flush marks; do
      help+=$'\n'$("$BIN/$p" --data-dir /nonexistent storage $s --help 2>&1)
    done
  fi
  same "$p(8) documents exactly the flags of --help" \
    "$(flags <<<"$help")" "$(flags <"docs/man/$p.8.scd")"
  within "docs/operations.md documents every flag of $p --help" \
    "$(flags <<<"$("$BIN/$p" --help)")" "$(grep "^| \`$p\`" docs/operations.md | flags)"
done

# The CLI: the global options and every command's.
cmds=$("$BIN/vigie" --help | awk '/^Commands:/ {on = 1; next} /^$/ {on = 0} on {print $1}')
[[ -n $cmds ]] && ok "vigie --help lists commands" || nok "vigie --help lists no command"
all=$("$BIN/vigie" --help | flags)
for c in $cmds; do all+=$'\n'$("$BIN/vigie" "$c" --help 2>&1 | flags); done
for s in list show create update delete enable disable history watch test groups \
  silences silence unsilence; do
  all+=$'\n'$("$BIN/vigie" alarms "$s" --help 2>&1 | flags)
done
for s in create list revoke; do all+=$'\n'$("$BIN/vigie" token "$s" --help 2>&1 | flags); done
all+=$'\n'$("$BIN/vigie" invoice finalize --help 2>&1 | flags)
all=$(sort -u <<<"$all")
# Options every command takes, named once in vigie(1)'s global section.
same "vigie(1) documents exactly the flags of vigie's --help texts" \
  "$(sort -u <<<"$all"$'\n--json\n--output\n--api\n--token\n--help')" \
  "$(flags <docs/man/vigie.1.scd)"
for c in $cmds; do
  grep -q "^\*$c\*" docs/man/vigie.1.scd && ok "vigie(1) has command $c" || nok "vigie(1) lacks command $c"
done
within "docs/operations.md names vigie's global options" \
  "$("$BIN/vigie" --help | sed -n '/^Options:/,/^$/p' | flags)" \
  "$(grep '^| `vigie`' docs/operations.md | flags)"

# Configuration keys: section and key from the table in common/config.c.
keys=$(sed -n '/^static const struct key keys\[\] = {/,/^};/p' common/config.c |
  sed -nE 's/^[[:space:]]*(S\(|U\(|\{)"([a-z]+)", "([a-z_]+)".*/\2 \3/p' | sort -u)
[[ $(wc -l <<<"$keys") -gt 20 ]] && ok "config.c's key table read ($(wc -l <<<"$keys") keys)" \
  || nok "config.c's key table not found"
man=$(awk '/^# \[/ {sec = substr($2, 2, length($2) - 2); next}
  /^# / {sec = ""} sec != "" && /^\*[a-z\\_]+\* / {k = $1; gsub(/[*\\]/, "", k); print sec, k}' \
  docs/man/vigie.conf.5.scd | sort -u)
same "vigie.conf(5) documents exactly config.c's keys" "$keys" "$man"
ops=$(sed -nE 's/^\| ([a-z]+) \| `([a-z_]+)` \|.*/\1 \2/p' docs/operations.md | sort -u)
same "docs/operations.md documents exactly config.c's keys" "$keys" "$ops"

if command -v scdoc >/dev/null; then
  for f in docs/man/*.scd; do
    if scdoc <"$f" >/dev/null 2>&1; then ok "scdoc builds $f"; else nok "scdoc fails on $f"; fi
  done
else
  n=$((n + 1)); echo "ok $n # SKIP scdoc not installed"
fi
echo "1..$n"
