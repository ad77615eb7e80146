#!/usr/bin/env bash
# Install every Debian package vigie needs to build, test, demo and bench.
# Idempotent: asks dpkg first and calls apt-get only for what is missing.
# Called by `make demo`, `make check`, `make bench`, `make fuzz` and
# `make valgrind`.
set -euo pipefail

PKGS=(
  # build
  build-essential pkg-config
  # libraries (headers + runtime)
  libvirt-dev librrd-dev libnanomsg-dev libjansson-dev libsqlite3-dev
  libmicrohttpd-dev libcurl4-openssl-dev libssl-dev libcmocka-dev
  libpq-dev
  # Prometheus remote read: protobuf-c (protoc-c generates C at build time), snappy
  libprotobuf-c-dev protobuf-c-compiler libsnappy-dev
  # tools the tests and the demo drive
  libvirt-clients rrdtool rrdcached nanomsg-utils sqlite3 curl jq procps iproute2
  # the two tests that hold many slow uploads open (body_before_token,
  # publish_body_bound) drive raw sockets from python3
  python3
  # a PostgreSQL server the tests start themselves (initdb/pg_ctl into a
  # temp dir; the package's own cluster is never used)
  postgresql
  # the remote read end-to-end test runs Debian's real Prometheus against vigie
  prometheus
  # the API benchmark (wrk) and the TLS test (openssl makes a self-signed cert)
  wrk openssl
  # fuzzing (libFuzzer) and sanitizer runtimes; memcheck for `make valgrind`
  clang libclang-rt-14-dev valgrind
  # the benchmarks' opt-in profiler (BENCH_PERF in bench/store_backends.c,
  # docs/benchmarks.md "Where the CPU goes now, both sides")
  linux-perf
  # the style gate (tests/format_test.sh): clang-format 14 writes the tree
  clang-format
  # real QEMU guests under libvirtd for tests/e2e (TCG, no KVM needed)
  libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils
  # a real browser for the web console test (tests/integration/console_test.sh)
  # and `vigie invoice --pdf` (its print-to-PDF); pdftotext checks the PDF
  chromium poppler-utils
  # man pages (docs/man/*.scd), the Debian packages (make deb, make deb-test)
  # and the units' exposure check (systemd-analyze, tests/units_test.sh)
  scdoc debhelper dpkg-dev fakeroot lintian systemd
)

missing=()
for p in "${PKGS[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$st" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
