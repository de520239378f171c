#!/usr/bin/env bash
# bench/boot/run.sh: boot time and memory overhead, build/vmm against QEMU (-M microvm, -M pc)
# measured in the same run: see boot_bench.sh. Directly where /dev/kvm boots Linux (QEMU from
# PATH), else in one boot of the nested test host with QEMU inside it. BOOT_BENCH_RUNS=N (5).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
B=${B:-$root/build}

mode=$("$root/tests/detect-kvm.sh")
if [ "$mode" = direct ]; then
	export VMM=$B/vmm GUEST_DIR=$B/guest TESTLIB=$root/tests/testhost/lib.sh TEST_MODE=direct
	scratch=$(mktemp -d "${TMPDIR:-/tmp}/bench-boot.XXXXXX")
	trap 'rm -rf "$scratch"' EXIT
	cd "$scratch"
	SCRATCH=$scratch exec timeout -k 10 900 sh "$here/boot_bench.sh"
fi
exec "$root/tests/testhost/run.sh" --with-qemu --stream --quiet-results \
	--env "BOOT_BENCH_RUNS=${BOOT_BENCH_RUNS:-5}" "$here/boot_bench.sh"
