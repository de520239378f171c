#!/usr/bin/env bash
# bench/control-vmm/run.sh: the control socket of a real VMM under load (tests/load/control_load:
# 32 clients x 1,000 requests, zero failures) and its balloon.get round trip p50/p99
# (bench/control/control_bench), see control_vmm.sh. bench/control/run.sh and tests/load/run.sh
# measure the same without a VM (fake backend); this runs them against `vmm run --control`:
# directly where /dev/kvm boots Linux, else in one boot of the nested test host.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
B=${B:-$root/build}
out=$B/bench/control-vmm
mkdir -p "$out/bin" "$out/gen"
cd "$root"

# Static, so the test host needs no json-c (the --self code is linked in but unused here).
common=(vmm/control/server*.c vmm/control/parse.c vmm/control/reply.c vmm/control/line_reader.c tests/fake/control_fake.c vmm/loop.c vmm/util.c)
cflags=(-std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -O2 -static)
gcc "${cflags[@]}" -o "$out/bin/control_load" tests/load/control_load.c "${common[@]}" -ljson-c
gcc "${cflags[@]}" -o "$out/bin/control_bench" bench/control/control_bench.c "${common[@]}" -ljson-c

mode=$("$root/tests/lib/detect-kvm.sh")
if [ "$mode" = direct ]; then
	BENCH_BIN=$out/bin exec "$root/tests/direct-run.sh" bench-control-vmm 1200 "$here/control_vmm.sh"
fi
th=$out/testhost-build
mkdir -p "$th"
ln -sfn "$(readlink -f "$B/vmm")" "$th/vmm"
ln -sfn "$(readlink -f "$B/guest")" "$th/guest"
"$root/bench/balloon/embed.sh" "$out/gen/control_vmm.sh" "$here/control_vmm.sh" \
	"$out/bin/control_load" "$out/bin/control_bench"
B=$th exec "$root/tests/testhost/run.sh" --stream --quiet-results "$out/gen/control_vmm.sh"
