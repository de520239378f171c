#!/usr/bin/env bash
# bench/blk/run.sh: virtio-blk throughput, build/vmm against QEMU (-device virtio-blk-pci,
# aio=io_uring) on the same image, and the host reading the file itself, in the same run: see
# blk_bench.sh. Directly where /dev/kvm boots Linux, else in one boot of the nested test host
# with QEMU inside it. BLK_BENCH_SECS=S per phase (5).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

mode=$("$root/tests/lib/detect-kvm.sh")
[ "$mode" != direct ] || exec "$root/tests/direct-run.sh" bench-blk 900 "$here/blk_bench.sh"
exec "$root/tests/testhost/run.sh" --with-qemu --stream --quiet-results \
	--env "BLK_BENCH_SECS=${BLK_BENCH_SECS:-5}" --env "BLK_BENCH_ROUNDS=${BLK_BENCH_ROUNDS:-}" \
	--env "BLK_BENCH_PHASES=${BLK_BENCH_PHASES:-}" --env "BLK_BENCH_CONFIGS=${BLK_BENCH_CONFIGS:-}" \
	--env "BLK_BENCH_VMM_ARGS=${BLK_BENCH_VMM_ARGS:-}" "$here/blk_bench.sh"
