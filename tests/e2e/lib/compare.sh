# tests/e2e/lib/compare.sh — sample virsh and the vigie API side by side,
# then compare (sourced after lib/tap.sh and lib/libvirtd.sh).
#
# Why: the agent's values must agree with what libvirt itself reports for
# the same guest over the same window. Both sides read counters that only
# grow while a guest runs, at different moments, so the comparison is by
# bracketing rather than by a fudge factor:
#
#   The sampler runs `virsh domstats --raw` every E2E_SAMPLE_S seconds and
#   records the wall-clock time just before (b) and just after (e) each call,
#   so each virsh value was read at some moment in [b, e]; likewise for the
#   guests' QEMU processes' /proc/PID/stat and /proc/PID/io. At the same
#   cadence, in a loop of its own, it reads GET /v1/resources/{id} for the
#   guests' resources and
#   records every metric's (last_time, last_value), i.e. what the agent read
#   at last_time.
#
#   Counter check: for an agent value v stamped t, the last virsh sample that
#   ended before t - slack read a value lo <= v, and the first that began
#   after t + precision + slack read hi >= v, because the counter is
#   monotonic. So lo <= v <= hi must hold exactly (up to float formatting);
#   and therefore the agent's delta over the window lies between the virsh
#   deltas lo_end - hi_start and hi_end - lo_start. "precision" is 1 s when
#   last_time has whole seconds (the API formats ISO 8601 without fractions:
#   the agent's real read time is in [t, t + 1)), 0 when it has fractions.
#   "slack" (E2E_SLACK, default 0.5 s) covers the agent stamping a poll at a
#   slightly different moment than the libvirt call that read the value.
#
#   Rate check (cpu.util, disk.queue.length: gauges the agent derives from
#   two polls): the agent's mean over the window against virsh's rate over
#   the same window, interpolated linearly between virsh samples. Tolerance
#   = rate x (2 x (precision + slack) / window + 5 %) + an absolute floor:
#   the window's two ends are each known to within precision + slack, and the
#   unweighted mean of per-poll values differs from the time-weighted one by
#   a few per cent when poll intervals jitter. (The RRD minute checked through
#   /v1/measures in qemu_test.sh needs no such allowance: see there.)
#
# Files: the sampler appends to $E2E_CMP_DIR/live/, e2e_cmp_freeze copies
# complete lines to $E2E_CMP_DIR/ where the comparisons read them:
# virsh.tsv (b, e, domain, key, value; /proc values under proc.* keys),
# api.tsv (id, metric, t, value, precision, last_time text, poll time) and
# state.tsv (poll time, id, state, last_seen epoch).

E2E_SAMPLE_S=${E2E_SAMPLE_S:-0.5}
# e2e_now VAR : VAR = now, in epoch seconds with fractions ("." whatever
# the locale says), from bash's clock: no process, as on a loaded machine
# every process the sampler starts delays its next sample
e2e_now() { printf -v "$1" %s "${EPOCHREALTIME/,/.}"; }
E2E_SLACK=${E2E_SLACK:-0.5}
E2E_CMP_DIR=""
_e2e_sampler_pids=""

# jq: ISO 8601 (with or without fractions, Z or +00:00) or epoch -> seconds
E2E_JQ_EPOCH='def epoch: if type == "number" then (if . > 100000000000 then . / 1000 else . end)
  elif type == "string" then
    (sub("\\+00:?00$"; "Z")
     | capture("^(?<s>[0-9-]+T[0-9:]+)(?<f>\\.[0-9]+)?Z$")
     | ((.s + "Z") | fromdateiso8601) + (("0" + (.f // "")) | tonumber))
  else null end;
def precision: if type == "string" and test("\\.[0-9]+") then 0 else 1 end;'

# e2e_virsh_snapshot : append one domstats sample to virsh.tsv
e2e_virsh_snapshot() {
	local b e out
	e2e_now b
	out=$(timeout 5 virsh -c "$E2E_LV_URI" domstats --raw 2>/dev/null) || return 1
	e2e_now e
	awk -v b="$b" -v e="$e" '
		/^Domain: / { d = $0; sub(/^Domain: \047/, "", d); sub(/\047$/, "", d); next }
		/=/ { k = $1; sub(/=.*/, "", k); v = $0; sub(/^[^=]*=/, "", v)
		      gsub(/^[ \t]+/, "", k); printf "%s\t%s\t%s\t%s\t%s\n", b, e, d, k, v }
	' <<<"$out" >>"$E2E_CMP_DIR/virsh.tsv"
}

# e2e_proc_snapshot NAME PID : append the QEMU process's own counters, as
# /proc reports them, to virsh.tsv under pseudo-keys (the agent's
# "hypervisor overhead" metrics come from the same files):
#   proc.cpu.ticks = utime + stime (stat fields 14 and 15, USER_HZ ticks),
#   proc.io.<field> for every line of /proc/PID/io (syscr, write_bytes...)
e2e_proc_snapshot() {
	local b e st io
	e2e_now b
	st=$(cat "/proc/$2/stat" 2>/dev/null) || return 1
	io=$(cat "/proc/$2/io" 2>/dev/null) || return 1
	e2e_now e
	# after "pid (comm) " the fields start at 3 (state): utime is the 12th
	awk -v b="$b" -v e="$e" -v d="$1" '
		{ printf "%s\t%s\t%s\tproc.cpu.ticks\t%.0f\n", b, e, d, $12 + $13 }
	' <<<"${st##*) }" >>"$E2E_CMP_DIR/virsh.tsv"
	awk -v b="$b" -v e="$e" -v d="$1" '
		{ k = $1; sub(/:$/, "", k); printf "%s\t%s\t%s\tproc.io.%s\t%s\n", b, e, d, k, $2 }
	' <<<"$io" >>"$E2E_CMP_DIR/virsh.tsv"
}

# e2e_api_snapshot API ID... : append every metric of each resource to api.tsv
e2e_api_snapshot() {
	local api=$1 id body now; shift
	for id in "$@"; do
		e2e_now now
		body=$(curl -sf --max-time 2 "$api/v1/resources/$id") || continue
		jq -r --arg id "$id" --arg now "$now" "$E2E_JQ_EPOCH"'
			(.metrics // {}) | to_entries[]
			| select(.value.last_value != null and .value.last_time != null)
			| [$id, .key, (.value.last_time | epoch), .value.last_value,
			   (.value.last_time | precision), .value.last_time, $now] | @tsv
		' <<<"$body" >>"$E2E_CMP_DIR/api.tsv" 2>/dev/null
		jq -r --arg id "$id" --arg now "$now" "$E2E_JQ_EPOCH"'
			[$now, $id, (.state // "?"), ((.last_seen // 0) | epoch)] | @tsv
		' <<<"$body" >>"$E2E_CMP_DIR/state.tsv" 2>/dev/null
	done
}

# e2e_sampler_start DIR API ID... : sample into DIR/live in the background
# until stopped; e2e_cmp_freeze copies what is there for the comparisons.
# Two loops side by side, virsh and /proc in one, the API in the other:
# each is a string of processes, and on a loaded machine one loop doing
# both took 10-25 s per round.
e2e_sampler_start() {
	E2E_CMP_DIR=$1; local api=$2 live=$1/live g; shift 2
	mkdir -p "$live"
	: >"$live/virsh.tsv"; : >"$live/api.tsv"; : >"$live/state.tsv"
	(
		trap - EXIT
		E2E_CMP_DIR=$live
		while :; do
			e2e_virsh_snapshot
			for g in "${!E2E_GUEST_PID[@]}"; do
				e2e_proc_snapshot "$g" "${E2E_GUEST_PID[$g]}"
			done
			sleep "$E2E_SAMPLE_S"
		done
	) &
	_e2e_sampler_pids=$!
	if [[ -n $api ]]; then
		(
			trap - EXIT
			E2E_CMP_DIR=$live
			while :; do
				e2e_api_snapshot "$api" "$@"
				sleep "$E2E_SAMPLE_S"
			done
		) &
		_e2e_sampler_pids+=" $!"
	fi
	e2e_defer "e2e_sampler_stop"
}

# e2e_cmp_freeze : copy the complete lines sampled so far for the comparisons
# (the sampler may be in the middle of appending a line)
e2e_cmp_freeze() {
	local f n
	for f in virsh.tsv api.tsv state.tsv; do
		n=$(wc -l <"$E2E_CMP_DIR/live/$f")
		head -n "$n" "$E2E_CMP_DIR/live/$f" >"$E2E_CMP_DIR/$f"
	done
}

e2e_sampler_stop() {
	local p
	for p in $_e2e_sampler_pids; do
		kill -TERM "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	_e2e_sampler_pids=""
}

# e2e_virsh_delta DOM KEY : last - first value of KEY in virsh.tsv, and the
# seconds between those samples ("DELTA SECONDS")
e2e_virsh_delta() {
	awk -F'\t' -v d="$1" -v k="$2" '
		$3 == d && $4 == k { if (!n++) { v0 = $5; t0 = $1 } v1 = $5; t1 = $1 }
		END { if (n < 2) { print "0 0"; exit } printf "%.0f %.1f\n", v1 - v0, t1 - t0 }
	' "$E2E_CMP_DIR/virsh.tsv"
}

# e2e_agent_has ID METRIC : the agent reported METRIC for ID at least once
e2e_agent_has() {
	awk -F'\t' -v id="$1" -v m="$2" '$1 == id && $2 == m { f = 1; exit } END { exit !f }' \
		"$E2E_CMP_DIR/api.tsv"
}

# e2e_cmp_counter DOM KEYS SCALE ID METRIC
#   KEYS: virsh keys joined with "+" (summed); SCALE: multiplies virsh values
#   into the agent's unit (1e-9 for ns -> s).
# Prints: checked bad t_first v_first t_last v_last dmin dmax message
# (dmin..dmax: the virsh bounds of the agent's delta between its first and
# last checked samples).
e2e_cmp_counter() {
	awk -F'\t' -v dom="$1" -v keys="$2" -v scale="$3" -v id="$4" -v m="$5" \
	    -v slack="$E2E_SLACK" '
	BEGIN { nk = split(keys, K, "+"); for (i = 1; i <= nk; i++) want[K[i]] = 1 }
	FILENAME == ARGV[1] {
		if ($3 != dom || !($4 in want)) next
		s = $1 SUBSEP $2
		if (!(s in idx)) { n++; idx[s] = n; B[n] = $1 + 0; E[n] = $2 + 0 }
		j = idx[s]; V[j] += $5 * scale; C[j]++
		next
	}
	$1 == id && $2 == m {
		key = $3 SUBSEP $4
		if (key in seen) next
		seen[key] = 1; k++; T[k] = $3 + 0; A[k] = $4 + 0; P[k] = $5 + 0
	}
	END {
		checked = 0; bad = 0; msg = ""
		for (i = 1; i <= k; i++) {
			hl = 0; hh = 0
			for (j = 1; j <= n; j++) {
				if (C[j] != nk) continue
				if (E[j] <= T[i] - slack) { lo = V[j]; hl = 1 }
				if (!hh && B[j] >= T[i] + P[i] + slack) { hi = V[j]; hh = 1 }
			}
			if (!hl || !hh) continue
			checked++
			eps = 1e-9 * (hi > 1 ? hi : 1)
			if (A[i] < lo - eps || A[i] > hi + eps) {
				bad++
				if (msg == "")
					msg = sprintf("agent %.10g at t=%.0f outside virsh [%.10g, %.10g]", A[i], T[i], lo, hi)
			}
			if (checked == 1) { ft = T[i]; fv = A[i]; flo = lo; fhi = hi }
			lt = T[i]; lv = A[i]; llo = lo; lhi = hi
		}
		if (!checked) { printf "0\t0\t0\t0\t0\t0\t0\t0\t%d agent samples, none inside the virsh window\n", k; exit }
		printf "%d\t%d\t%.0f\t%.10g\t%.0f\t%.10g\t%.10g\t%.10g\t%s\n",
			checked, bad, ft, fv, lt, lv, llo - fhi, lhi - flo, msg
	}' "$E2E_CMP_DIR/virsh.tsv" "$E2E_CMP_DIR/api.tsv"
}

# e2e_virsh_rate DOM KEYS SCALE T0 T1 : virsh's mean rate of change of
# (sum of KEYS) x SCALE between T0 and T1 (epoch seconds), linear
# interpolation between samples (each placed mid-way through its call).
e2e_virsh_rate() {
	awk -F'\t' -v dom="$1" -v keys="$2" -v scale="$3" -v t0="$4" -v t1="$5" '
	BEGIN { nk = split(keys, K, "+"); for (i = 1; i <= nk; i++) want[K[i]] = 1 }
	$3 == dom && ($4 in want) {
		s = $1 SUBSEP $2
		if (!(s in idx)) { n++; idx[s] = n; M[n] = ($1 + $2) / 2 }
		j = idx[s]; V[j] += $5 * scale; C[j]++
	}
	function at(t,   j, p, q) {
		p = 0
		for (j = 1; j <= n; j++) {
			if (C[j] != nk) continue
			if (M[j] <= t) p = j
			else { q = j; break }
		}
		if (!p || !q) return "none"
		return V[p] + (V[q] - V[p]) * (t - M[p]) / (M[q] - M[p])
	}
	END {
		a = at(t0); b = at(t1)
		if (a == "none" || b == "none" || t1 <= t0) { print "none"; exit }
		printf "%.6g\n", (b - a) / (t1 - t0)
	}' "$E2E_CMP_DIR/virsh.tsv"
}

# e2e_agent_mean ID METRIC : "MEAN N T_FIRST T_LAST PRECISION" of the agent's
# distinct samples that virsh covers (the first sample only opens the window:
# each value describes the interval that ends at its time)
e2e_agent_mean() {
	local vb ve
	read -r vb ve < <(awk -F'\t' 'NR == 1 { b = $2 } { e = $1 } END { printf "%.3f %.3f\n", b, e }' \
		"$E2E_CMP_DIR/virsh.tsv")
	awk -F'\t' -v id="$1" -v m="$2" -v vb="$vb" -v ve="$ve" -v slack="$E2E_SLACK" '
	$1 == id && $2 == m {
		key = $3 SUBSEP $4
		if (key in seen) next
		seen[key] = 1
		t = $3 + 0; p = $5 + 0
		if (t - slack < vb || t + p + slack > ve) next
		k++
		if (k == 1) { t0 = t; prec = p; next }
		sum += $4; t1 = t
	}
	END {
		if (k < 3) { print "none 0 0 0 1"; exit }
		printf "%.6g %d %.0f %.0f %d\n", sum / (k - 1), k - 1, t0, t1, prec
	}' "$E2E_CMP_DIR/api.tsv"
}

# e2e_within GOT WANT REL ABS : |GOT - WANT| <= |WANT| * REL + ABS
e2e_within() {
	awk -v g="$1" -v w="$2" -v r="$3" -v a="$4" 'BEGIN {
		d = g - w; if (d < 0) d = -d; m = w < 0 ? -w : w
		exit !(d <= m * r + a) }'
}

# e2e_rel_tol PRECISION WINDOW_S : the relative tolerance described above
e2e_rel_tol() {
	awk -v p="$1" -v w="$2" -v s="$E2E_SLACK" 'BEGIN {
		if (w <= 0) w = 1; printf "%.3f\n", 2 * (p + s) / w + 0.05 }'
}
