# tests/e2e/lib/tap.sh — TAP output and cleanup stack for the e2e tests
# (sourced).
#
# TAP: every check prints one "ok N - ..." or "not ok N - ..." line, the plan
# "1..N" comes last (TAP allows a trailing plan), diagnostics are "# ..."
# lines. A test that cannot run at all prints "1..0 # SKIP reason" and exits 0:
# visible, never a silent pass.
#
# Cleanup: e2e_defer CMD... pushes a command; on EXIT (also after a failure,
# INT or TERM) the commands run last-in first-out, each once, errors ignored,
# so what was started last (agent, guests) is stopped before what it runs on
# (libvirtd, the throw-away configuration).

_e2e_tap_n=0
_e2e_tap_failed=0
_e2e_defer=()

e2e_ok()   { _e2e_tap_n=$((_e2e_tap_n + 1)); echo "ok $_e2e_tap_n - $*"; }
e2e_nok()  {
	_e2e_tap_n=$((_e2e_tap_n + 1)); _e2e_tap_failed=$((_e2e_tap_failed + 1))
	echo "not ok $_e2e_tap_n - $*"
}
e2e_skip() { _e2e_tap_n=$((_e2e_tap_n + 1)); echo "ok $_e2e_tap_n # SKIP $*"; }
e2e_diag() { local l; while IFS= read -r l; do echo "# $l"; done <<<"$*"; }
# e2e_check DESC CMD... : ok when CMD succeeds
e2e_check() { local d=$1; shift; if "$@"; then e2e_ok "$d"; else e2e_nok "$d"; fi; }
# e2e_skip_all REASON : the whole test cannot run here
e2e_skip_all() { echo "1..0 # SKIP $*"; exit 0; }
e2e_done() { echo "1..$_e2e_tap_n"; [[ $_e2e_tap_failed -eq 0 ]]; }

# e2e_diag_file FILE [LINES] : the tail of a log as diagnostics
e2e_diag_file() {
	[[ -s $1 ]] || return 0
	echo "# --- last ${2:-15} lines of $1"
	tail -n "${2:-15}" "$1" | sed 's/^/#   /'
}

e2e_defer() { _e2e_defer+=("$*"); }
_e2e_run_deferred() {
	local i
	for ((i = ${#_e2e_defer[@]} - 1; i >= 0; i--)); do
		eval "${_e2e_defer[i]}" >/dev/null 2>&1 || true
	done
	_e2e_defer=()
}
trap _e2e_run_deferred EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# e2e_wait_for SECONDS CMD... : run CMD every 0.25 s until it succeeds or
# SECONDS pass. 0 on success, 1 on timeout.
e2e_wait_for() {
	local limit=$1 end; shift
	end=$(($(date +%s%N) + limit * 1000000000))
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[[ $(date +%s%N) -lt $end ]] || return 1
		sleep 0.25
	done
}

# e2e_alive PID : the process exists and has not exited. A child of this
# shell (or an orphan that PID 1 has not reaped yet) stays a zombie after it
# exits, and kill -0 succeeds on a zombie; a zombie thread-group leader whose
# other threads still run has not exited, though.
e2e_alive() {
	local st th
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ -n $st ]] || return 1
	[[ $st != Z* ]] && return 0
	th=$(awk '/^Threads:/ { print $2 }' "/proc/$1/status" 2>/dev/null)
	[[ ${th:-1} -gt 1 ]]
}

# e2e_stop_pid PID [SECONDS] : SIGTERM a process we started, wait for it to
# go (default 10 s), then SIGKILL. 0 if it went on SIGTERM.
e2e_stop_pid() {
	local p=$1 limit=${2:-10} i
	[[ -n $p ]] || return 0
	kill -TERM "$p" 2>/dev/null || return 0
	for ((i = 0; i < limit * 10; i++)); do
		e2e_alive "$p" || return 0
		sleep 0.1
	done
	kill -KILL "$p" 2>/dev/null
	return 1
}

# e2e_free_port : a loopback TCP port below the kernel's ephemeral range
# (32768-60999), in no TCP state: a port in that range can be taken by an
# outgoing connection between this check and the collector's bind (a CI run
# failed so: "Address already in use")
e2e_free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		ss -Htan "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
	done
}
