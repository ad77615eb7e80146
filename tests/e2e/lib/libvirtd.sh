# tests/e2e/lib/libvirtd.sh — a libvirtd for real QEMU guests, started with a
# throw-away configuration and stopped again (sourced after lib/tap.sh).
#
# Why: the e2e test needs qemu:///system with guests under TCG on machines
# without systemd (CI containers, developer VMs). Facts this relies on are in
# /work/shared/MACHINE-NOTES.md, verified here on Debian 12 / libvirt 9.0:
#  - the QEMU driver refuses to initialise unless its compiled-in user and
#    group exist, whatever qemu.conf says; on Debian 12 both are
#    "libvirt-qemu" (libvirtd logs "Failed to parse group 'libvirt-qemu'"
#    otherwise, so a group "kvm" alone is not enough). Created if missing and
#    deleted again at the end when this script created them.
#  - qemu.conf must say user/group root, dynamic_ownership = 0 and
#    security_driver = "none" (no AppArmor/SELinux, no chown of our images).
#  - virtlogd must run before libvirtd (QEMU's stdio goes through it).
#
# Design: the machine's /etc/libvirt is never written. libvirtd only reads
# qemu.conf from /etc/libvirt (no option or environment variable moves it
# for qemu:///system), so libvirtd and virtlogd are started in a private
# mount namespace (unshare -m) in which a temporary tree is bind-mounted over
# /etc/libvirt, /var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt.
# /run/libvirt stays shared: it holds the sockets that virsh and the agent
# outside the namespace connect to, and the QEMU pid files the agent reads.
# A libvirtd restarted later gets a new namespace with the same binds; guests
# started by the first one keep running and are reconnected to, because
# their monitor sockets live in the same (bound) directory.
# When mount namespaces are not available the script falls back to writing
# /etc/libvirt/qemu.conf after backing it up, and restores it on exit.
#
# Invariants: a daemon that was already running is used as it is and never
# stopped or restarted (E2E_LV_OWN=0); everything this script creates (user,
# group, directories, config, daemons) is undone on exit through e2e_defer,
# and only that; two e2e runs never share the daemon (a lock in /run/lock).

E2E_LV_URI=${E2E_LV_URI:-qemu:///system}
E2E_LV_OWN=0         # 1: this test started libvirtd (and may restart it)
E2E_LV_MODE=""       # ns | etc | existing
E2E_LV_ROOT=""       # the throw-away tree
E2E_LV_REASON=""     # why libvirtd cannot run here (for the SKIP line)
E2E_LV_PIDFILE=/run/libvirtd.pid
E2E_VL_PIDFILE=/run/virtlogd.pid
_e2e_lv_lockfd=""

e2e_lv_answers() { timeout 15 virsh -c "$E2E_LV_URI" version >/dev/null 2>&1; }

# pid from a daemon's pid file if that process is alive and is COMM
_e2e_lv_pid() {
	local f=$1 comm=$2 p
	[[ -r $f ]] || return 1
	p=$(cat "$f" 2>/dev/null) || return 1
	[[ $p =~ ^[0-9]+$ ]] || return 1
	[[ $(ps -o comm= -p "$p" 2>/dev/null) == "$comm" ]] || return 1
	echo "$p"
}

# run CMD... with the throw-away directories in place, without the lock's
# file descriptor (a daemon that inherited it would hold the lock after the
# test, and libvirtd passes its descriptors on to QEMU)
_e2e_lv_run() {
	if [[ $E2E_LV_MODE == ns ]]; then
		unshare --mount --propagation private -- /bin/sh -c '
			r=$1; shift
			mount --bind "$r/etc" /etc/libvirt &&
			mount --bind "$r/lib" /var/lib/libvirt &&
			mount --bind "$r/log" /var/log/libvirt &&
			mount --bind "$r/cache" /var/cache/libvirt &&
			exec "$@"' sh "$E2E_LV_ROOT" "$@" {_e2e_lv_lockfd}>&-
	else
		"$@" {_e2e_lv_lockfd}>&-
	fi
}

# the last meaningful error libvirtd logged (for a SKIP or failure message)
_e2e_lv_last_error() {
	grep -h ' error : ' "$E2E_LV_ROOT"/log/libvirtd.log 2>/dev/null |
		grep -vE 'dnsmasq|GDBus|system bus|udevGetDMIData|dmidecode|virNetSocketReadWire' |
		tail -n 1 | sed 's/^[^:]*: [0-9]*: error : //'
}

_e2e_lv_mkdir() { # DIR : create it if missing; remove it (and contents) on exit
	[[ -d $1 ]] && return 0
	mkdir -p "$1" || return 1
	e2e_defer "rm -rf -- '$1'"
}

_e2e_lv_ensure_account() {
	if ! getent group libvirt-qemu >/dev/null; then
		groupadd --system libvirt-qemu || return 1
		e2e_defer "getent group libvirt-qemu >/dev/null && groupdel libvirt-qemu"
	fi
	if ! getent passwd libvirt-qemu >/dev/null; then
		useradd --system --no-create-home --home-dir /var/lib/libvirt \
			--shell /usr/sbin/nologin --gid libvirt-qemu libvirt-qemu || return 1
		e2e_defer "userdel libvirt-qemu"
	fi
}

_e2e_lv_write_config() {
	local r=$E2E_LV_ROOT
	mkdir -p "$r/etc" "$r/lib" "$r/log" "$r/cache" || return 1
	cat >"$r/etc/qemu.conf" <<-EOF || return 1
	# throw-away qemu.conf written by tests/e2e/lib/libvirtd.sh
	user = "root"
	group = "root"
	dynamic_ownership = 0
	security_driver = "none"
	EOF
	cat >"$r/libvirtd.conf" <<-EOF || return 1
	# throw-away libvirtd.conf written by tests/e2e/lib/libvirtd.sh
	log_outputs = "3:file:$r/log/libvirtd.log"
	auth_unix_ro = "none"
	auth_unix_rw = "none"
	EOF
	cat >"$r/virtlogd.conf" <<-EOF || return 1
	log_outputs = "3:file:$r/log/virtlogd.log"
	EOF
}

# remove what appeared in DIR since LIST (ls -A output) was taken
_e2e_lv_remove_new() {
	local dir=$1 list=$2 e
	for e in "$dir"/* "$dir"/.[!.]*; do
		[[ -e $e ]] || continue
		grep -qxF -- "${e##*/}" <<<"$list" || rm -rf -- "$e"
	done
}

# /etc/libvirt/qemu.conf when there is no mount namespace: back up, write,
# restore on exit; whatever libvirtd creates in /etc/libvirt (nwfilter/,
# secrets/, qemu/...) is removed again
_e2e_lv_install_qemu_conf() {
	local f=/etc/libvirt/qemu.conf
	_e2e_lv_etc_before=$(ls -A /etc/libvirt)
	e2e_defer '_e2e_lv_remove_new /etc/libvirt "$_e2e_lv_etc_before"'
	if [[ -e $f ]]; then
		cp -p "$f" "$E2E_LV_ROOT/qemu.conf.orig" || return 1
		e2e_defer "cp -p '$E2E_LV_ROOT/qemu.conf.orig' '$f'"
	else
		e2e_defer "rm -f '$f'"
	fi
	cp "$E2E_LV_ROOT/etc/qemu.conf" "$f"
}

# Start libvirtd (ours) and wait until qemu:///system answers (<= 30 s). A
# virsh that connects while the daemon still probes QEMU blocks until it is
# ready, hence the long per-call timeout in e2e_lv_answers.
e2e_lv_start() {
	_e2e_lv_run libvirtd -d --config "$E2E_LV_ROOT/libvirtd.conf" \
		>>"$E2E_LV_ROOT/log/libvirtd.out" 2>&1 || return 1
	e2e_wait_for 30 e2e_lv_answers
}

# Stop our libvirtd (SIGTERM, then SIGKILL after 15 s). Running guests stay.
e2e_lv_stop() {
	local p
	[[ $E2E_LV_OWN == 1 ]] || return 1
	p=$(_e2e_lv_pid "$E2E_LV_PIDFILE" libvirtd) || return 0
	e2e_stop_pid "$p" 15
}

# Restart our libvirtd; 1 if it is not ours or does not come back.
e2e_lv_restart() {
	[[ $E2E_LV_OWN == 1 ]] || return 1
	e2e_lv_stop
	e2e_lv_start
}

# e2e_lv_setup ROOT : make qemu:///system answer. 0 when it does; 1 with
# E2E_LV_REASON set when libvirtd cannot run on this machine.
e2e_lv_setup() {
	local b p
	E2E_LV_ROOT=$1
	if [[ $(id -u) -ne 0 ]]; then
		E2E_LV_REASON="qemu:///system needs root"; return 1
	fi
	for b in libvirtd virtlogd virsh qemu-system-x86_64 unshare; do
		if ! command -v "$b" >/dev/null; then
			E2E_LV_REASON="$b not installed (scripts/deps.sh installs libvirt-daemon, libvirt-daemon-driver-qemu, qemu-system-x86, libvirt-clients)"
			return 1
		fi
	done
	mkdir -p /run/lock
	exec {_e2e_lv_lockfd}>/run/lock/vigie-e2e.lock
	if ! flock -w 60 "$_e2e_lv_lockfd"; then
		E2E_LV_REASON="another vigie e2e run holds /run/lock/vigie-e2e.lock"
		return 1
	fi
	if e2e_lv_answers; then
		E2E_LV_MODE=existing
		return 0
	fi
	if p=$(_e2e_lv_pid "$E2E_LV_PIDFILE" libvirtd); then
		E2E_LV_REASON="a libvirtd (pid $p) runs but $E2E_LV_URI does not answer"
		return 1
	fi

	_e2e_lv_write_config || { E2E_LV_REASON="cannot write $E2E_LV_ROOT"; return 1; }
	_e2e_lv_ensure_account || { E2E_LV_REASON="cannot create user/group libvirt-qemu"; return 1; }
	for b in /etc/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt /run/libvirt; do
		_e2e_lv_mkdir "$b" || { E2E_LV_REASON="cannot create $b"; return 1; }
	done
	# E2E_LV_NO_NS=1 forces the fallback (to test it on a machine that has
	# mount namespaces)
	if [[ ${E2E_LV_NO_NS:-0} != 1 ]] && unshare --mount --propagation private -- \
		mount --bind "$E2E_LV_ROOT/etc" /etc/libvirt 2>/dev/null; then
		E2E_LV_MODE=ns
	else
		E2E_LV_MODE=etc
		_e2e_lv_install_qemu_conf || { E2E_LV_REASON="cannot write /etc/libvirt/qemu.conf"; return 1; }
	fi

	if ! _e2e_lv_pid "$E2E_VL_PIDFILE" virtlogd >/dev/null; then
		_e2e_lv_run virtlogd -d --config "$E2E_LV_ROOT/virtlogd.conf" \
			>>"$E2E_LV_ROOT/log/virtlogd.out" 2>&1
		e2e_defer "_e2e_lv_stop_virtlogd"
		e2e_wait_for 10 _e2e_lv_pid "$E2E_VL_PIDFILE" virtlogd
	fi
	E2E_LV_OWN=1
	e2e_defer "e2e_lv_stop"
	if ! e2e_lv_start; then
		E2E_LV_REASON="libvirtd did not answer on $E2E_LV_URI within 30 s: $(_e2e_lv_last_error)"
		return 1
	fi
	return 0
}

_e2e_lv_stop_virtlogd() {
	local p
	p=$(_e2e_lv_pid "$E2E_VL_PIDFILE" virtlogd) || return 0
	e2e_stop_pid "$p" 10
}
