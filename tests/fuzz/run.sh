#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] — build every tests/fuzz/*_fuzz.c with clang's
# libFuzzer + ASan + UBSan and run each for SECONDS (default 60; `make fuzz`
# uses FUZZ_SECONDS). Crashes are written to build-fuzz/crashes/<target>/;
# turn each into a regression test under tests/unit. Prints TAP, one line
# per target, so tests/run.sh can run a short pass in `make check`.
set -u
cd "$(dirname "$0")/../.."
SECS=${1:-${FUZZ_SECONDS:-60}}
OUT=build-fuzz
mkdir -p "$OUT"
CFLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -Iinclude $(pkg-config --cflags jansson libcrypto) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
LIBS="$(pkg-config --libs jansson inih libcrypto) -lm -lpthread"
n=0; rc_all=0
for src in tests/fuzz/*_fuzz.c; do
  t=$(basename "$src" .c); name=${t%_fuzz}; n=$((n + 1))
  corpus=$OUT/corpus/$name; mkdir -p "$corpus" "$OUT/crashes/$name"
  cp -n tests/fuzz/corpus/$name/* "$corpus"/ 2>/dev/null
  if ! clang $CFLAGS "$src" common/*.c -o "$OUT/$t" $LIBS >"$OUT/$t.build.log" 2>&1; then
    echo "not ok $n - $t builds (see $OUT/$t.build.log)"; rc_all=1; continue
  fi
  if "$OUT/$t" -max_total_time="$SECS" -max_len=65536 -artifact_prefix="$OUT/crashes/$name/" \
       "$corpus" >"$OUT/$t.log" 2>&1; then
    echo "ok $n - $t ran ${SECS}s: $(grep -o 'Done [0-9]* runs' "$OUT/$t.log" | tail -1)"
  else
    echo "not ok $n - $t found a crash: $(ls "$OUT/crashes/$name" | head -3 | tr '\n' ' ') (log $OUT/$t.log)"
    rc_all=1
  fi
done
echo "1..$n"
exit $rc_all
