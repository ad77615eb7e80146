#!/usr/bin/env bash
# tests/format_test.sh — the tree is as .clang-format writes it (TAP), so
# `make format` never rewrites code someone did not touch. On a failure,
# `make format` (or clang-format -i on the files named) fixes it.
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null 2>&1; then
	echo "1..0 # SKIP clang-format is not installed"
	exit 0
fi
echo "1..1"
if out=$(FORMAT_MAX=0 bash scripts/format-check.sh 2>&1); then
	echo "ok 1 - every .c and .h file is as clang-format writes it"
else
	echo "not ok 1 - files differ from .clang-format (make format):"
	sed 's/^/#   /' <<<"$out"
fi
