#!/usr/bin/env bash
# bench/boot/run.sh: boot time and memory overhead, build/vmm against QEMU (-M microvm, -M pc)
# measured in the same run: see boot_bench.sh. Directly where /dev/kvm boots Linux (QEMU from
# PATH), else in one boot of the nested test host with QEMU inside it. BOOT_BENCH_RUNS=N (5);
# BOOT_BENCH_CONFIGS="vmm vmm-4k qemu-microvm" measures only those (default: all).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
B=${B:-$root/build}

mode=$("$root/tests/lib/detect-kvm.sh")
[ "$mode" != direct ] || exec "$root/tests/direct-run.sh" bench-boot 900 "$here/boot_bench.sh"
exec "$root/tests/testhost/run.sh" --with-qemu --stream --quiet-results \
	--env "BOOT_BENCH_RUNS=${BOOT_BENCH_RUNS:-5}" --env "BOOT_BENCH_CONFIGS=${BOOT_BENCH_CONFIGS:-}" \
	"$here/boot_bench.sh"
