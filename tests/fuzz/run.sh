#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] — build every tests/fuzz/*_fuzz.c with clang's
# libFuzzer + ASan + UBSan and run each for SECONDS (default 60; `make fuzz`
# uses FUZZ_SECONDS). Crashes are written to $OUT/crashes/<target>/;
# turn each into a regression test under tests/unit and a seed under
# tests/fuzz/corpus/<target>/. Prints TAP, one line per target, so
# tests/run.sh can run a short pass in `make check`.
#
# Each target links common/ plus exactly the sources listed for it in
# target_srcs below. Objects are compiled once per source into
# $OUT/obj/ (instrumented, -fsanitize=fuzzer-no-link) and reused by every
# target and every later run until the source or a header changes.
#
# Environment: FUZZ_SECONDS (default run time), FUZZ_BUILD (output dir,
# default build-fuzz; give each concurrent user its own), FUZZ_TARGETS
# (space-separated names such as "ratecard api_query": run only those).
set -u
cd "$(dirname "$0")/../.."
SECS=${1:-${FUZZ_SECONDS:-60}}
OUT=${FUZZ_BUILD:-build-fuzz}
mkdir -p "$OUT/obj"

# The collector's server side minus its composition root: what the API
# targets need (query/api/: http.c, the handlers, tokens; and what they
# call: the collector core, alarms, billing).
# The Prometheus remote read messages are generated C (protoc-c), made
# here under $OUT/gen as the Makefile makes them under build/gen.
mkdir -p "$OUT/gen"
for p in query/api/prompb/*.proto; do
	g=$OUT/gen/prompb/$(basename "$p" .proto).pb-c.c
	[[ -f $g && $g -nt $p ]] || protoc-c --c_out="$OUT/gen" -Iquery/api "$p" || exit 1
done
SERVER_SRCS="$(ls collector/*.c alarms/*.c billing/*.c query/api/*.c $OUT/gen/prompb/*.pb-c.c |
	grep -v -e '^collector/compose\.c$')"

target_srcs() { # name -> extra sources beyond common/*.c
	case $1 in
	ratecard) echo billing/ratecard.c billing/money.c ;;
	api_query | api_body | expr | publish | silence_body) echo $SERVER_SRCS ;;
	*) ;; # wire, config, sign; alarm_rule includes alarms/rule.c itself
	esac
}
target_pkgs() { # name -> pkg-config packages to link
	case $1 in
	api_query | api_body | expr | publish | silence_body)
		echo jansson libcrypto sqlite3 libmicrohttpd librrd nanomsg libcurl libprotobuf-c libpq ;;
	*) echo jansson libcrypto sqlite3 libpq ;; # common/ opens sqlite files
	esac
}

ALL_PKGS="jansson libcrypto sqlite3 libmicrohttpd librrd nanomsg libcurl libprotobuf-c libpq"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -Iinclude -I. -I$OUT/gen $(pkg-config --cflags $ALL_PKGS) $SAN"

# obj SRC -> its object path
obj() { local s=${1//\//_}; echo "$OUT/obj/${s%.c}.o"; }

# Compile what is missing or stale (older than its source or than the
# newest header), one compiler per core.
build_objs() { # sources...
	local hdr todo=() s o
	hdr=$(ls -t include/vigie/*.h agent/*.h alarms/*.h billing/*.h collector/*.h query/*/*.h 2>/dev/null | head -1)
	for s in "$@"; do
		o=$(obj "$s")
		[[ -f $o && $o -nt $s && $o -nt $hdr ]] || todo+=("$s")
	done
	[[ ${#todo[@]} -eq 0 ]] && return 0
	for s in "${todo[@]}"; do echo "$s $(obj "$s")"; done |
		xargs -n 2 -P "$(nproc)" sh -c \
			'clang '"$CFLAGS"' -fsanitize=fuzzer-no-link -c "$0" -o "$1" || exit 255'
}

# Which targets, then: every object any of them needs compiled at once
# (one compiler per core), each target linked, then the fuzzers run, at
# most FUZZ_JOBS (default: one per core) at a time. Each fuzzer is
# single-threaded and gets its SECS seconds of wall time whatever runs
# beside it, so on an idle machine each does as many runs as alone; the
# TAP lines come out in the targets' order.
JOBS=${FUZZ_JOBS:-$(nproc)}
names=() all_srcs=()
for src in tests/fuzz/*_fuzz.c; do
	t=$(basename "$src" .c); name=${t%_fuzz}
	if [[ -n ${FUZZ_TARGETS:-} && " $FUZZ_TARGETS " != *" $name "* ]]; then
		continue
	fi
	names+=("$name")
	all_srcs+=($(ls common/*.c) $(target_srcs "$name"))
done
# a source that fails here fails again below, in the log of each target
# that needs it
build_objs $(printf '%s\n' "${all_srcs[@]}" | sort -u) >"$OUT/obj/build.log" 2>&1

# throttle: wait while JOBS background jobs run
throttle() { while [[ $(jobs -rp | wc -l) -ge $JOBS ]]; do wait -n; done; }

for name in "${names[@]}"; do
	t=${name}_fuzz src=tests/fuzz/${name}_fuzz.c
	srcs="$(ls common/*.c) $(target_srcs "$name")"
	objs=""
	for s in $srcs; do objs="$objs $(obj "$s")"; done
	rm -f "$OUT/$t.built"
	throttle
	{ build_objs $srcs >"$OUT/$t.build.log" 2>&1 &&
	  clang $CFLAGS -fsanitize=fuzzer "$src" $objs -o "$OUT/$t" \
		$(pkg-config --libs $(target_pkgs "$name")) -lsnappy -lm -lpthread \
		>>"$OUT/$t.build.log" 2>&1 && touch "$OUT/$t.built"; } &
done
wait

for name in "${names[@]}"; do
	t=${name}_fuzz corpus=$OUT/corpus/$name
	rm -f "$OUT/$t.ok"
	[[ -f $OUT/$t.built ]] || continue
	mkdir -p "$corpus" "$OUT/crashes/$name"
	cp -n tests/fuzz/corpus/$name/* "$corpus"/ 2>/dev/null
	throttle
	"$OUT/$t" -max_total_time="$SECS" -max_len=65536 -timeout=10 \
		-artifact_prefix="$OUT/crashes/$name/" "$corpus" >"$OUT/$t.log" 2>&1 &&
		touch "$OUT/$t.ok" &
done
wait

n=0; rc_all=0
for name in "${names[@]}"; do
	t=${name}_fuzz; n=$((n + 1))
	if [[ ! -f $OUT/$t.built ]]; then
		echo "not ok $n - $t builds (see $OUT/$t.build.log, $OUT/obj/build.log)"
		rc_all=1
	elif [[ -f $OUT/$t.ok ]]; then
		echo "ok $n - $t ran ${SECS}s: $(grep -o 'Done [0-9]* runs' "$OUT/$t.log" | tail -1)"
	else
		echo "not ok $n - $t found a crash: $(ls "$OUT/crashes/$name" | head -3 | tr '\n' ' ') (log $OUT/$t.log)"
		rc_all=1
	fi
done
echo "1..$n"
exit $rc_all
