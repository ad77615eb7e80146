#!/usr/bin/env bash
# tests/completion_test.sh — bash completion for vigie:
# sourcing query/cli/vigie.bash-completion registers it (`complete -p`),
# and scripted completions (COMP_WORDS/COMP_CWORD, as bash sets them)
# offer the commands, each command's options from its --help, the
# subcommands of alarms and token, and fixed values such as --output's.
set -u
cd "$(dirname "$0")/.."
BIN=$PWD/${VIGIE_BUILD:-build}/bin
n=0
ok()  { n=$((n + 1)); echo "ok $n - $*"; }
nok() { n=$((n + 1)); echo "not ok $n - $*"; }
[[ -x $BIN/vigie ]] || { echo "1..0 # SKIP $BIN/vigie not built"; exit 0; }
export PATH=$BIN:$PATH

# shellcheck source=../query/cli/vigie.bash-completion
source query/cli/vigie.bash-completion
spec=$(complete -p vigie 2>&1)
[[ $spec == "complete -F _vigie vigie" ]] && ok "complete -p vigie: $spec" || nok "complete -p vigie: '$spec'"

# complete WORDS... : what _vigie offers for the last word (one line)
complete_words() {
  COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()
  COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
  _vigie vigie "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
  printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}
expect() { # DESC GOT WANT
  if [[ $2 == "$3" ]]; then ok "$1"; else nok "$1 (got '$2', want '$3')"; fi
}
has() { # DESC GOT WORD...
  local d=$1 got=" $2 " w; shift 2
  for w in "$@"; do [[ $got == *" $w "* ]] || { nok "$d (no '$w' in '$got')"; return; }; done
  ok "$d"
}

has "commands" "$(complete_words vigie '')" resources show measures top alarms invoice token graph
expect "a command's prefix" "$(complete_words vigie re)" "resources"
has "global options" "$(complete_words vigie --)" --api --token --output --timeout --cacert
has "resources' options from its --help" "$(complete_words vigie resources --)" \
  --type --host --project --name --limit --json --output
has "global options after a command too (vigie(1))" "$(complete_words vigie latest --)" \
  --api --token --timeout --retry-wait --cacert --output
expect "option prefix" "$(complete_words vigie top --as)" "--asc"
expect "--output values" "$(complete_words vigie resources --output '')" "csv json table"
expect "--type values" "$(complete_words vigie resources --type host)" "host host_disk host_nic"
has "alarms subcommands" "$(complete_words vigie alarms '')" list show create history watch
has "alarms history's options" "$(complete_words vigie alarms history --)" --start --end --type --limit
has "alarms list and show take --ids" "$(complete_words vigie alarms list --; complete_words vigie alarms show --)" --ids --project
has "token subcommands" "$(complete_words vigie token '')" create list revoke
expect "global options before the command are skipped" \
  "$(complete_words vigie --api http://x:1 --output csv lat)" "latest"
expect "a value is not completed as a command" "$(complete_words vigie --token '')" ""
echo "1..$n"
