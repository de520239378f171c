#!/usr/bin/env bash
# bench/snapshot/run.sh: snapshot create time and size, restore to first guest output against our
# cold boot and QEMU's migrate-to-file / -incoming, the CI fast path (--await-command), and the
# memory of 3 clones of one snapshot: see snapshot_bench.sh. Directly where /dev/kvm boots Linux
# (QEMU from PATH), else in one boot of the nested test host with QEMU inside it.
# SNAPSHOT_BENCH_RUNS=N (3).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
B=${B:-$root/build}
out=$B/bench/snapshot
mkdir -p "$out/bin" "$out/gen"
gcc -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -O2 -static -o "$out/bin/qmp_migrate" \
	"$here/qmp_migrate.c"

mode=$("$root/tests/lib/detect-kvm.sh")
if [ "$mode" = direct ]; then
	BENCH_BIN=$out/bin exec "$root/tests/direct-run.sh" bench-snapshot 1200 "$here/snapshot_bench.sh"
fi
th=$out/testhost-build
mkdir -p "$th"
ln -sfn "$(readlink -f "$B/vmm")" "$th/vmm"
ln -sfn "$(readlink -f "$B/guest")" "$th/guest"
"$root/bench/balloon/embed.sh" "$out/gen/snapshot_bench.sh" "$here/snapshot_bench.sh" \
	"$out/bin/qmp_migrate"
B=$th exec "$root/tests/testhost/run.sh" --with-qemu --stream --quiet-results --mem 4096 \
	--env "SNAPSHOT_BENCH_RUNS=${SNAPSHOT_BENCH_RUNS:-3}" "$out/gen/snapshot_bench.sh"
