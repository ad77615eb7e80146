#!/usr/bin/env bash
# tests/layers_test.sh — the layers only point down (TAP).
#
# Every project header has one owner, and every source or header file of a
# component may include only headers of the layers it sits on:
#
#   common     common/, the shared contracts          -> common
#   agent      agent/                                  -> common
#   alarms     alarms/                                 -> common
#   billing    billing/                                -> common
#   collector  the collector core: collector/ but
#              compose.c (receiver, registry, store)   -> common
#   api        query/api/ (the HTTP API)               -> common, collector,
#                                                         alarms, billing
#   cli        query/cli/ (the vigie CLI)              -> common
#   root       collector/compose.c (vigie-collector's
#              main, the composition root)             -> all but agent, cli
#
# A header under include/vigie/ is its owner's public contract; a header
# beside a component's sources (agent/spool.h, query/api/api_handlers.h) is
# internal to that component, and no other component may include it (the
# root neither: it wires components through their contracts). Tests,
# benches and fuzz targets may include anything.
#
# A new header under include/vigie/ must be given an owner below, or this
# test fails: deciding which layer it belongs to is the point.
set -u
cd "$(dirname "$0")/.."

# ---- owners of the contracts in include/vigie/ -----------------------------
declare -A OWNER=(
	[batch.h]=common [catalog.h]=common [clock.h]=common [config.h]=common
	[dispatch.h]=common [hash.h]=common [log.h]=common [name.h]=common
	[sign.h]=common [sqlitedb.h]=common [wire.h]=common
	[array.h]=common [csv.h]=common [db.h]=common [fsutil.h]=common [hex.h]=common [hmap.h]=common
	[registry.h]=collector [lifecycle.h]=collector [storage_cmd.h]=collector [receiver.h]=collector [store.h]=collector [rrdcached.h]=collector [cluster.h]=collector
	[alarm.h]=alarms [alarm_engine.h]=alarms [alarm_exec.h]=alarms
	[alarm_outbox.h]=alarms [alarm_pub.h]=alarms
	[alarm_store.h]=alarms [alarm_stream.h]=alarms [alarm_silence.h]=alarms [alarm_lease.h]=alarms
	[bill.h]=billing [bill_invoice.h]=billing [bill_meter.h]=billing
	[bill_ratecard.h]=billing [bill_service.h]=billing [bill_usage.h]=billing
	[api.h]=api [api_static.h]=api [token.h]=api
)

# ---- what each layer may include --------------------------------------------
declare -A ALLOWED=(
	[common]="common"
	[agent]="common agent"
	[alarms]="common alarms"
	[billing]="common billing"
	[collector]="common collector"
	[api]="common collector alarms billing api"
	[cli]="common cli"
	[root]="common collector alarms billing api"
)

layer_of_file() { # path -> layer of a source or header file
	case $1 in
	collector/compose.c) echo root ;;
	common/*) echo common ;;
	agent/*) echo agent ;;
	alarms/*) echo alarms ;;
	billing/*) echo billing ;;
	collector/*) echo collector ;;
	query/api/*) echo api ;;
	query/cli/*) echo cli ;;
	# C generated at build time from query/api/prompb/*.proto ($(BUILD)/gen)
	prompb/*) echo api ;;
	include/vigie/*) echo "${OWNER[${1#include/vigie/}]:-}" ;;
	*) echo "" ;;
	esac
}

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }

files=$(ls common/*.[ch] agent/*.[ch] alarms/*.[ch] billing/*.[ch] \
	collector/*.[ch] query/api/*.[ch] query/cli/*.[ch] include/vigie/*.h 2>/dev/null)

# Every contract has an owner.
unowned=
for h in include/vigie/*.h; do
	[[ -n ${OWNER[${h#include/vigie/}]:-} ]] || unowned+=" $h"
done
if [[ -z $unowned ]]; then ok "every header in include/vigie/ has an owning layer"
else notok "no owning layer in tests/layers_test.sh for:$unowned"; fi

for f in $files; do
	layer=$(layer_of_file "$f")
	[[ -n $layer ]] || continue # reported above
	bad=
	while read -r inc; do
		case $inc in
		vigie/*) owner=${OWNER[${inc#vigie/}]:-}; public=1 ;;
		*) owner=$(layer_of_file "$inc"); public=0
		   [[ $owner == root || $owner == "" ]] && owner= ;;
		esac
		if [[ -z $owner ]]; then
			# a header beside the file itself ("x.h"), else unknown
			if [[ -f $(dirname "$f")/$inc ]]; then continue; fi
			bad+=" $inc (no owner)"; continue
		fi
		if [[ " ${ALLOWED[$layer]} " != *" $owner "* ]]; then
			bad+=" $inc ($owner)"
		elif [[ $public -eq 0 && $owner != "$layer" ]]; then
			bad+=" $inc (internal to $owner)"
		fi
	done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
	if [[ -z $bad ]]; then ok "$f ($layer) includes only: ${ALLOWED[$layer]}"
	else notok "$f ($layer) may include only ${ALLOWED[$layer]}, but includes:$bad"; fi
done

# The programs link only their layers: the CLI nothing of the server, the
# agent nothing of the collector (checked on the built binaries, when there
# are any: symbols a binary defines that a forbidden library defines too).
BUILD=${VIGIE_BUILD:-build}
defined() { nm -g --defined-only "$@" 2>/dev/null | awk 'NF == 3 {print $3}' | sort -u; }
check_links() { # binary, forbidden libraries...
	local bin=$BUILD/bin/$1; shift
	local libs=() l common
	for l in "$@"; do libs+=("$BUILD/lib/libvg$l.a"); done
	if [[ ! -x $bin ]]; then
		n=$((n + 1)); echo "ok $n - $1 links none of: $* # SKIP $bin not built"
		return
	fi
	common=$(comm -12 <(defined "$bin") <(defined "${libs[@]}") | head -5 | tr '\n' ' ')
	if [[ -z $common ]]; then ok "${bin##*/} links none of: $*"
	else notok "${bin##*/} links code of $* (e.g. $common)"; fi
}
check_links vigie api collector alarms billing agent
check_links vigie-agent api cli collector alarms billing

echo "1..$n"
[[ $failed -eq 0 ]]
