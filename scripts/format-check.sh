#!/usr/bin/env bash
# scripts/format-check.sh — how far the tree is from .clang-format: the
# number of source lines `make format` would change, in total and for the
# files that differ most. The style file describes the code as written, so
# the count is 0 (tests/format_test.sh); it is a report (exit 0), unless
# FORMAT_MAX is set and the count is above it (exit 1). `make format-check`.
set -u
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "format-check: skipped, clang-format is not installed (make deps)"; exit 0; }
total=0 files=0 report=()
while IFS= read -r f; do
  n=$(clang-format --style=file "$f" | diff -- "$f" - | grep -c '^<')
  if [[ $n -gt 0 ]]; then
    total=$((total + n)); files=$((files + 1)); report+=("$n $f")
  fi
done < <(git ls-files '*.c' '*.h')
if [[ $files -gt 0 ]]; then
  printf '%s\n' "${report[@]}" | sort -rn | head -10 | awk '{printf "  %5d  %s\n", $1, $2}'
fi
echo "format-check: $total line(s) in $files file(s) would change ($(git ls-files '*.c' '*.h' | wc -l) files checked)"
[[ -z ${FORMAT_MAX:-} || $total -le $FORMAT_MAX ]]
