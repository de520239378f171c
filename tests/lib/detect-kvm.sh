#!/usr/bin/env bash
# tests/lib/detect-kvm.sh [linux|firmware]: where guests of that kind run on this machine.
# Prints "direct" (on this host's /dev/kvm) or "testhost" (inside the nested test host under QEMU
# TCG, tests/testhost/) on stdout, and one line on stderr saying why. Default: linux.
#
# The machines of this project's kind differ (../shared/environment.md): /dev/kvm absent; PVM that
# runs CPL3 firmware natively; PVM that ignores IOPL, where CPL3 firmware triple-faults at its
# first port write. So:
#   linux:    direct only on hardware KVM (PVM cannot boot an unmodified Linux guest);
#   firmware: direct only when the probe firmware (firmware/probe.c: port writes from CPL3, then
#             exit status 42) really runs on this /dev/kvm.
#
# Forcing: VMM_TEST_MODE (linux) and KVM_TESTS_MODE (firmware) = direct|testhost.
# For tests of this script (tests/lib/test-detect-kvm.sh): KVM_DEV (default /dev/kvm),
# KVM_PVM_SYSFS (default /sys/module/kvm_pvm), KVM_PROBE (a command run instead of the probe
# firmware; its exit status and stderr are the probe's result).
set -euo pipefail

kind=${1:-linux}
root=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-$root/build}
dev=${KVM_DEV:-/dev/kvm}
pvm=${KVM_PVM_SYSFS:-/sys/module/kvm_pvm}
PROBE_STATUS=42

say() { # say MODE WHY
	echo "detect-kvm: $kind guests: $1 ($2)" >&2
	echo "$1"
	exit 0
}

case $kind in
linux) force=${VMM_TEST_MODE:-} forcevar=VMM_TEST_MODE ;;
firmware) force=${KVM_TESTS_MODE:-} forcevar=KVM_TESTS_MODE ;;
*) echo "usage: detect-kvm.sh [linux|firmware]" >&2; exit 2 ;;
esac
if [ -n "$force" ]; then
	case $force in direct | testhost) ;; *)
		echo "detect-kvm: $forcevar must be direct or testhost, not '$force'" >&2; exit 2 ;;
	esac
	say "$force" "forced by $forcevar"
fi

[ -e "$dev" ] || say testhost "there is no $dev"
[ -r "$dev" ] && [ -w "$dev" ] || say testhost "$dev is not read-write for $(id -un)"
if [ "$kind" = linux ]; then
	[ ! -d "$pvm" ] || say testhost "$dev is PVM (kvm_pvm), which cannot boot an unmodified Linux guest"
	say direct "$dev is hardware KVM: Linux guests run on it directly"
fi

# Firmware: prove the direct path before using it.
err=$(mktemp "${TMPDIR:-/tmp}/detect-kvm.XXXXXX")
trap 'rm -f "$err"' EXIT
set +e
if [ -n "${KVM_PROBE:-}" ]; then
	sh -c "$KVM_PROBE" </dev/null >/dev/null 2>"$err"
else
	vmm=${KVM_TESTS_VMM:-$B/vmm}
	probe=$B/firmware/probe.elf
	if [ ! -x "$vmm" ] || [ ! -r "$probe" ]; then
		make -s -C "$root" "$B/vmm" >/dev/null 2>&1
		make -s -C "$root" -f firmware/firmware.mk B="$B" "$probe" >/dev/null 2>&1
	fi
	timeout -k 2 20 "$vmm" run --firmware "$probe" --mem 64 --console none </dev/null \
		>/dev/null 2>"$err"
fi
rc=$?
set -e
[ $rc != $PROBE_STATUS ] || say direct "the probe firmware ran on $dev: CPL3 port I/O works$([ ! -d "$pvm" ] || echo ", PVM runs it natively")"
if grep -q 'ignores IOPL' "$err"; then
	say testhost "this $dev (PVM) ignores IOPL: the probe firmware faults at its first port write"
fi
first=$(grep -m1 . "$err" | cut -c1-160 || true)
[ $rc != 124 ] && [ $rc != 137 ] || first="no answer within 20 s"
say testhost "the probe firmware failed on $dev (exit $rc${first:+: $first})"
