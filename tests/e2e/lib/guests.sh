# tests/e2e/lib/guests.sh — the tiny guests of the e2e test (sourced after
# lib/tap.sh and lib/libvirtd.sh).
#
# Nothing is downloaded: the "spinner" boots a 1 MiB raw image whose boot
# sector is assembled here from guest/bootsect.S (binutils' as and ld, part
# of build-essential); the "net" guest has no disk and boots its e1000's
# iPXE ROM (package ipxe-qemu, a dependency of qemu-system-x86).
# Guests are transient (virsh create): nothing is written to the daemon's
# configuration, and a destroyed guest is gone. Every guest started here is
# destroyed on exit (e2e_defer), by name, also after a failure.

E2E_GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../guest" && pwd)

# e2e_build_boot_disk OUT : OUT becomes a 1 MiB raw disk whose first sector
# is guest/bootsect.S; 0 or 1 with the reason on stderr
e2e_build_boot_disk() {
	local out=$1 w
	w=$(dirname "$out")
	as --32 -o "$w/bootsect.o" "$E2E_GUEST_DIR/bootsect.S" || return 1
	ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$w/bootsect.bin" \
		"$w/bootsect.o" || return 1
	if [[ $(stat -c %s "$w/bootsect.bin") -ne 512 ]]; then
		echo "bootsect.bin is not 512 bytes" >&2; return 1
	fi
	if [[ $(od -An -tx1 -j510 -N2 "$w/bootsect.bin" | tr -d ' ') != 55aa ]]; then
		echo "bootsect.bin lacks the 55aa signature" >&2; return 1
	fi
	rm -f "$out"
	truncate -s 1M "$out" || return 1
	dd if="$w/bootsect.bin" of="$out" conv=notrunc status=none || return 1
	# a daemon that is not ours may run QEMU as another user
	chmod 0666 "$out"
}

# e2e_guest_xml TEMPLATE NAME [DISK] : the domain XML on stdout
e2e_guest_xml() {
	sed -e "s|@NAME@|$2|g" -e "s|@DISK@|${3:-}|g" "$E2E_GUEST_DIR/$1.xml.in"
}

declare -A E2E_GUEST_PID=()

# e2e_guest_start XMLFILE NAME : create the transient guest, destroy on exit.
# Remembers its QEMU pid, so that it can be killed even if libvirtd (and its
# pid files under /run/libvirt) is gone by then.
e2e_guest_start() {
	local p
	e2e_defer "e2e_guest_destroy '$2'"
	virsh -c "$E2E_LV_URI" create "$1" >/dev/null || return 1
	p=$(cat "/run/libvirt/qemu/$2.pid" 2>/dev/null)
	[[ $p =~ ^[0-9]+$ ]] && E2E_GUEST_PID[$2]=$p
	return 0
}

# e2e_guest_destroy NAME : destroy it; if libvirtd does not answer, kill the
# QEMU process started for it (checked by its command line: the pid may
# have been reused)
e2e_guest_destroy() {
	local p=${E2E_GUEST_PID[$1]:-}
	timeout 20 virsh -c "$E2E_LV_URI" destroy "$1" >/dev/null 2>&1
	[[ -n $p ]] || return 0
	if tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q -- "guest=$1,"; then
		kill -KILL "$p"
	fi
	return 0
}

e2e_guest_uuid() { virsh -c "$E2E_LV_URI" domuuid "$1" 2>/dev/null | head -n 1; }
e2e_guest_running() { [[ $(virsh -c "$E2E_LV_URI" domstate "$1" 2>/dev/null | head -n 1) == running ]]; }
# e2e_guest_ifname NAME : the host-side name of its first interface (vnetN)
e2e_guest_ifname() {
	virsh -c "$E2E_LV_URI" domiflist "$1" 2>/dev/null | awk 'NR > 2 && NF { print $1; exit }'
}
