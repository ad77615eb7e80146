#!/usr/bin/env bash
# fuzz_smoke_test.sh — a short libFuzzer pass over every fuzz target, so CI
# exercises them on each run (`make fuzz` runs them for longer). Every
# target at FUZZ_SMOKE_SECONDS (default 5) each, one per core at a time,
# plus compiling the instrumented objects once into $VIGIE_BUILD/fuzz
# (reused while the sources do not change): about 25 s on 2 cores when
# the objects are there, a minute from a clean tree.
if ! command -v clang >/dev/null 2>&1; then
	echo "1..0 # SKIP clang (libFuzzer) is not installed"
	exit 0
fi
export FUZZ_BUILD=${FUZZ_BUILD:-${VIGIE_BUILD:-build}/fuzz}
exec bash "$(dirname "$0")/../fuzz/run.sh" "${FUZZ_SMOKE_SECONDS:-5}"
