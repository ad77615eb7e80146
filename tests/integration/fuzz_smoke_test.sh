#!/usr/bin/env bash
# fuzz_smoke_test.sh — a short libFuzzer pass over every fuzz target, so CI
# exercises them on each run (`make fuzz` runs them for longer).
exec bash "$(dirname "$0")/../fuzz/run.sh" "${FUZZ_SMOKE_SECONDS:-10}"
