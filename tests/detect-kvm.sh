#!/usr/bin/env bash
# detect-kvm.sh: how Linux-guest tests run here. Prints "direct" when this host's /dev/kvm can boot
# Linux (it exists, we can open it read-write, and it is hardware KVM, not PVM), else "testhost"
# (the nested test host under QEMU TCG, tests/testhost/). One line on stderr says why.
# VMM_TEST_MODE=direct|testhost overrides the detection.
set -euo pipefail

if [ -n "${VMM_TEST_MODE:-}" ]; then
	case "$VMM_TEST_MODE" in
	direct | testhost) ;;
	*) echo "detect-kvm: VMM_TEST_MODE must be direct or testhost, not '$VMM_TEST_MODE'" >&2; exit 2 ;;
	esac
	echo "detect-kvm: $VMM_TEST_MODE (forced by VMM_TEST_MODE)" >&2
	echo "$VMM_TEST_MODE"
	exit 0
fi

if [ ! -e /dev/kvm ]; then
	why="there is no /dev/kvm"
elif [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	why="/dev/kvm is not read-write for $(id -un) (add the user to group kvm?)"
elif [ -d /sys/module/kvm_pvm ]; then
	why="/dev/kvm is PVM (kvm_pvm), which cannot boot an unmodified Linux guest"
else
	echo "detect-kvm: direct (/dev/kvm is hardware KVM: Linux guests run on it directly)" >&2
	echo direct
	exit 0
fi
echo "detect-kvm: testhost ($why: Linux guests run inside the nested test host)" >&2
echo testhost
