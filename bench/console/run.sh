#!/usr/bin/env bash
# bench/console/run.sh: a job's 3 MiB log through `vmm run -- CMD`: virtio-console (the default)
# against our 16550 (--vconsole off) and QEMU's 16550 (-serial stdio), measured in the same run:
# see console_bench.sh. Directly where /dev/kvm boots Linux (QEMU from PATH), else in one boot of
# the nested test host with QEMU inside it. CONSOLE_BENCH_MIB=N (3), CONSOLE_BENCH_TIMEOUT=S (900).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

mode=$("$root/tests/lib/detect-kvm.sh")
[ "$mode" != direct ] || exec "$root/tests/direct-run.sh" bench-console 3000 "$here/console_bench.sh"
exec "$root/tests/testhost/run.sh" --with-qemu --stream --quiet-results \
	--env "CONSOLE_BENCH_MIB=${CONSOLE_BENCH_MIB:-3}" \
	--env "CONSOLE_BENCH_TIMEOUT=${CONSOLE_BENCH_TIMEOUT:-900}" "$here/console_bench.sh"
