#!/usr/bin/env bash
# tests/load/run.sh [--socket PATH] [control_load options...]
#
# The control-socket load test: 32 clients x 1,000 requests each, zero failed requests, no leak.
#  - Without --socket: builds tests/load/control_load.c with the control sources twice (ASan +
#    LeakSanitizer, and plain for valgrind) and runs it against its in-process server over the
#    fake backend (no KVM needed): balloon.get, the command mix, and the mix pipelined 8 deep.
#    A leak, an ASan error or one failed request fails the run.
#  - With --socket PATH: the same load against a running VMM (vmm run --control PATH). To check
#    the VMM for leaks, run that VMM under valgrind or build it with -fsanitize=address.
# Every step is bounded by a timeout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${B:-$root/build}/load
mkdir -p "$out"
cd "$root"

srcs=(tests/load/control_load.c vmm/control/server*.c vmm/control/parse.c vmm/control/reply.c vmm/control/line_reader.c tests/fake/control_fake.c
	vmm/loop.c vmm/util.c)
cflags=(-std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -g)

if [ "${1:-}" = --socket ]; then
	[ $# -ge 2 ] || { echo "usage: $0 [--socket PATH] [options]" >&2; exit 2; }
	gcc "${cflags[@]}" -O2 -o "$out/control_load" "${srcs[@]}" -ljson-c
	exec timeout -k 5 300 "$out/control_load" "$@"
fi

gcc "${cflags[@]}" -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
	-o "$out/control_load-asan" "${srcs[@]}" -ljson-c
gcc "${cflags[@]}" -O1 -o "$out/control_load" "${srcs[@]}" -ljson-c

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1
echo "== ASan/LSan: 32 x 1000 balloon.get"
timeout -k 5 300 "$out/control_load-asan" --self "$@"
echo "== ASan/LSan: 32 x 1000 command mix"
timeout -k 5 300 "$out/control_load-asan" --self --mix "$@"
echo "== ASan/LSan: 32 x 1000 command mix, 8 requests in flight per client"
timeout -k 5 300 "$out/control_load-asan" --self --mix --window 8 "$@"

if command -v valgrind >/dev/null; then
	echo "== valgrind memcheck: 32 x 1000 command mix"
	timeout -k 5 900 valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
		--errors-for-leak-kinds=definite,indirect --error-exitcode=3 \
		"$out/control_load" --self --mix "$@"
else
	echo "== valgrind not installed: skipped (LeakSanitizer above covers leaks)"
fi
echo "control load: PASS"
