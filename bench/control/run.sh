#!/usr/bin/env bash
# bench/control/run.sh [--socket PATH] [--requests N]
# Control-socket request round trip p50/p99 over 10,000 balloon.get requests, next to a raw Unix
# socket echo measured in the same run. Without --socket it serves the fake backend in-process
# (no KVM needed); with --socket PATH it measures a running VMM (vmm run --control PATH).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${B:-$root/build}/bench
mkdir -p "$out"
cd "$root"
gcc -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -O2 -g -o "$out/control_bench" \
	bench/control/control_bench.c vmm/control/server*.c vmm/control/parse.c vmm/control/reply.c vmm/control/line_reader.c tests/fake/control_fake.c \
	vmm/loop.c vmm/util.c -ljson-c
if [ "${1:-}" = --socket ]; then
	exec timeout -k 5 300 "$out/control_bench" "$@"
fi
exec timeout -k 5 300 "$out/control_bench" --self "$@"
