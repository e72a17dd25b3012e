#!/usr/bin/env bash
# Runs a command on another kernel: boots one of Debian's kernels
# (scripts/vm/kernel.sh) under qemu, with this machine's root shared read
# only as the guest's root, and runs the command there, as root, in the
# current directory, with this shell's PATH, HOME, GO*, WEFT_* (and a few
# more) variables. The guest's console streams to stdout; the exit status is
# the command's.
#
#   scripts/vm/run.sh 6.1 -- bpftool feature probe
#   scripts/vm/run.sh 5.10 -- 'uname -r; ./bin/weft-agent -h'   (one word: a bash script)
#
# Several words are run as they are (no shell); a single word is a bash
# script. Inside the guest, writable places are tmpfs (/tmp, /run,
# /var/{tmp,log,cache}, /dev/shm) and $WEFT_VM_OUT, a folder that is the
# same path on the host and outlives the guest; everything else is the
# host's files, read only. There is no network but loopback.
#
# Environment:
#   WEFT_VM_KVM      1 use KVM (-enable-kvm -cpu host), 0 software emulation;
#                    unset: KVM when this machine has real hardware
#                    virtualisation (vmx/svm and kvm_intel/kvm_amd), else TCG
#   WEFT_VM_TIMEOUT  seconds before the guest is killed (default 3600)
#   WEFT_VM_MEM      guest memory (default 4G)
#   WEFT_VM_SMP      guest CPUs (default 2)
#   WEFT_VM_ENV      more variable names to pass on, space separated
#   WEFT_VM_APPEND   more kernel command line
#   WEFT_VM_OUT      the writable folder (default: a new one, removed after)
#
# One guest runs at a time on a machine (lock $WEFT_CACHE/vm.lock).
# Exit status: the command's; 124 when the guest was killed at the
# timeout; 125 when the guest did not get to run the command.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${WEFT_CACHE:-$HOME/.cache/weft}"
[[ "$CACHE" == /* ]] || CACHE="$PWD/$CACHE"

die() { echo "run.sh: $*" >&2; exit 125; }
usage() { die "usage: run.sh <5.10|6.1|6.12> -- <command...>"; }

[[ $# -ge 3 && "$2" == "--" ]] || usage
series="$1"
shift 2
[[ $EUID -eq 0 ]] || die "needs root (the guest runs the command as root on this machine's files)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found: run scripts/deps.sh"

# The guest mounts fresh tmpfs here: the host's files below are not seen.
for shadowed in /tmp /run /var/tmp /var/log /var/cache /dev/shm; do
	case "$PWD/" in
	"$shadowed"/*) die "the current directory $PWD is under $shadowed, which the guest mounts afresh (tmpfs): run from elsewhere" ;;
	esac
done

kdir="$("$here/kernel.sh" "$series")" || die "scripts/vm/kernel.sh $series failed"
release="$(cat "$kdir/release")"

# The run's folder: the command script, the exit status, and whatever the
# command writes to $WEFT_VM_OUT.
keep_out=1
out="${WEFT_VM_OUT:-}"
if [[ -z "$out" ]]; then
	out="$(mktemp -d "${TMPDIR:-/tmp}/weft-vm.XXXXXX")"
	keep_out=0
fi
mkdir -p "$out"
out="$(cd "$out" && pwd -P)"
rm -f "$out/status" "$out/cmd.sh"
cleanup() { [[ $keep_out == 1 ]] || rm -rf "$out"; }
trap cleanup EXIT

# The command script, run by bash in the chroot.
{
	echo "# written by scripts/vm/run.sh"
	names=(PATH HOME USER LOGNAME LANG LANGUAGE TZ TERM CGO_ENABLED ${WEFT_VM_ENV:-})
	while IFS= read -r name; do names+=("$name"); done < <(compgen -e | grep -E '^(GO|WEFT_|LC_)' || true)
	for name in "${names[@]}"; do
		[[ -v "$name" ]] && printf 'export %s=%q\n' "$name" "${!name}"
	done
	printf 'export WEFT_VM_OUT=%q WEFT_VM_KERNEL=%q\n' "$out" "$series"
	printf 'cd %q || exit 125\n' "$PWD"
	if [[ $# -eq 1 ]]; then
		printf '%s\n' "$1"
	else
		printf 'exec'
		printf ' %q' "$@"
		printf ' </dev/null\n'
	fi
} >"$out/cmd.sh"

accel=(-accel tcg,thread=multi -cpu max)
use_kvm="${WEFT_VM_KVM:-}"
if [[ -z "$use_kvm" ]]; then
	use_kvm=0
	if [[ -w /dev/kvm ]] && grep -qwE 'vmx|svm' /proc/cpuinfo && [[ -d /sys/module/kvm_intel || -d /sys/module/kvm_amd ]]; then
		use_kvm=1
	fi
fi
[[ "$use_kvm" == 1 ]] && accel=(-enable-kvm -cpu host)

timeout_s="${WEFT_VM_TIMEOUT:-3600}"
exec 9>"$CACHE/vm.lock"
if ! flock -n 9; then
	echo "run.sh: waiting for another guest on this machine to finish (lock $CACHE/vm.lock)" >&2
	flock 9
fi

echo "run.sh: booting $release ($([[ "$use_kvm" == 1 ]] && echo KVM || echo TCG)) for: $*" >&2
start=$SECONDS
# qemu runs in the background so that a signal to this script stops the
# guest too. The guest's tty ends lines with \r\n; tr gives plain lines.
fifo="$(mktemp -d "${TMPDIR:-/tmp}/weft-vm-console.XXXXXX")"
mkfifo "$fifo/console"
qemu_pid=
stop_guest() {
	[[ -n "$qemu_pid" ]] && kill "$qemu_pid" 2>/dev/null
	rm -rf "$fifo"
	cleanup
}
trap stop_guest EXIT
trap 'echo "run.sh: interrupted: stopping the guest" >&2; exit 130' INT TERM
tr -d '\r' <"$fifo/console" &
tr_pid=$!
# Kernel: a soft lockup panics (and so ends the guest at once, with the
# stacks on the console) instead of hanging until the timeout; loglevel 5
# shows warnings with their stacks. tsc=reliable: the guest kernels find
# TCG's vCPU TSCs "unsynchronized" and fall back to the HPET, which makes
# every clock read (Go reads it all the time) a system call and an emulated
# device access: measured, a kernel leg of the e2e tests ran ~1.5x slower.
# TCG's TSCs all derive from one virtual clock, so they are in step. stdin
# from /dev/null: qemu leaves the terminal alone.
timeout -k 10 "$timeout_s" qemu-system-x86_64 "${accel[@]}" \
	-m "${WEFT_VM_MEM:-4G}" -smp "${WEFT_VM_SMP:-2}" -nographic -no-reboot -nic none \
	-bios qboot.rom -kernel "$kdir/vmlinuz" -initrd "$kdir/initramfs.img" \
	-append "console=ttyS0 rdinit=/init panic=-1 softlockup_panic=1 tsc=reliable quiet loglevel=5 weft.out=$out weft.modules=$kdir/root/lib/modules/$release ${WEFT_VM_APPEND:-}" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-virtfs "local,path=$out,mount_tag=out,security_model=none" \
	</dev/null >"$fifo/console" 2>&1 &
qemu_pid=$!
set +e
wait "$qemu_pid"
qemu_rc=$?
set -e
qemu_pid=
wait "$tr_pid" || true
echo # the console's last line has no newline
if [[ $qemu_rc == 124 || $qemu_rc == 137 ]]; then
	echo "run.sh: guest killed after ${timeout_s} s (WEFT_VM_TIMEOUT)" >&2
	exit 124
fi
if [[ ! -f "$out/status" ]]; then
	echo "run.sh: the guest stopped before the command ended (qemu exit $qemu_rc: a kernel panic, or qemu failed); see its console above" >&2
	exit 125
fi
rc="$(cat "$out/status")"
echo "run.sh: $release: exit status $rc after $((SECONDS - start)) s" >&2
exit "$rc"
