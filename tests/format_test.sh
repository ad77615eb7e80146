#!/usr/bin/env bash
# tests/format_test.sh — the tree is as .clang-format writes it (TAP), so
# `make format` never rewrites code someone did not touch. On a failure,
# `make format` (or clang-format -i on the files named) fixes it. Also: no
# merge or patch leftover (*.orig, *.rej) is part of the tree.
cd "$(dirname "$0")/.."
echo "1..2"
if ! command -v clang-format >/dev/null 2>&1; then
	echo "ok 1 # SKIP clang-format is not installed"
elif out=$(FORMAT_MAX=0 bash scripts/format-check.sh 2>&1); then
	echo "ok 1 - every .c and .h file is as clang-format writes it"
else
	echo "not ok 1 - files differ from .clang-format (make format):"
	sed 's/^/#   /' <<<"$out"
fi
if [[ -e .git ]] && command -v git >/dev/null 2>&1; then
	left=$(git ls-files -- '*.orig' '*.rej' 2>/dev/null)
else
	left=$(find . -path ./build -prune -o \( -name '*.orig' -o -name '*.rej' \) -print)
fi
if [[ -z $left ]]; then
	echo "ok 2 - no merge or patch leftover (*.orig, *.rej) in the tree"
else
	echo "not ok 2 - merge or patch leftovers in the tree:"
	sed 's/^/#   /' <<<"$left"
fi
