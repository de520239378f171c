#!/usr/bin/env bash
# bench/balloon/run.sh: balloon inflate/deflate speed (GiB/s) with the Linux driver, build/vmm
# against QEMU in the same run, and the host-side discard cost per GiB against plain madvise
# (see balloon_bench.sh). Directly where /dev/kvm boots Linux (QEMU from PATH), else in one boot
# of the nested test host with QEMU inside it. BALLOON_BENCH_RUNS=N (3), BALLOON_BENCH_POLL_MS=MS
# (10).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
B=${B:-$root/build}
out=$B/bench/balloon
mkdir -p "$out/bin" "$out/gen"

for t in balloon_timer madvise_bench; do
	gcc -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -O2 -static -o "$out/bin/$t" "$here/$t.c"
done

mode=$("$root/tests/lib/detect-kvm.sh")
if [ "$mode" = direct ]; then
	BENCH_BIN=$out/bin exec "$root/tests/direct-run.sh" bench-balloon 1500 "$here/balloon_bench.sh"
fi
# The test host gets its own work directory (the vmm and guest linked in), so this does not
# collide with an e2e or kvm run using build/testhost.
th=$out/testhost-build
mkdir -p "$th"
ln -sfn "$(readlink -f "$B/vmm")" "$th/vmm"
ln -sfn "$(readlink -f "$B/guest")" "$th/guest"
"$here/embed.sh" "$out/gen/balloon_bench.sh" "$here/balloon_bench.sh" "$out/bin/balloon_timer" \
	"$out/bin/madvise_bench"
B=$th exec "$root/tests/testhost/run.sh" --with-qemu --stream --quiet-results \
	--env "BALLOON_BENCH_RUNS=${BALLOON_BENCH_RUNS:-3}" \
	--env "BALLOON_BENCH_POLL_MS=${BALLOON_BENCH_POLL_MS:-10}" "$out/gen/balloon_bench.sh"
