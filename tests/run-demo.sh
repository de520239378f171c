#!/usr/bin/env bash
# tests/run-demo.sh (make run): the demo of tests/testhost/demo.sh with build/vmm: boot the default
# guest, run a command in it, give memory back with the balloon. Directly where /dev/kvm boots
# Linux, else inside the nested test host (tests/lib/detect-kvm.sh).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-$root/build}

mode=$("$root/tests/lib/detect-kvm.sh")
if [ "$mode" = direct ]; then
	export VMM=$B/vmm GUEST_DIR=$B/guest TESTLIB=$root/tests/lib/scenario.sh TEST_MODE=direct
	scratch=$(mktemp -d "${TMPDIR:-/tmp}/vmm-demo.XXXXXX")
	trap 'rm -rf "$scratch"' EXIT
	cd "$scratch"
	SCRATCH=$scratch timeout -k 5 150 sh "$root/tests/testhost/demo.sh"
	exit
fi
echo "run: no hardware KVM here: booting the nested test host (QEMU TCG), then build/vmm inside it"
exec "$root/tests/testhost/run.sh" --stream --quiet-results "$root/tests/testhost/demo.sh"
