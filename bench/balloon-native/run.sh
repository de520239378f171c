#!/usr/bin/env bash
# bench/balloon-native/run.sh: balloon inflate/deflate throughput (GiB/s) driven by the balloon
# firmware for 1 GiB, next to plain madvise(MADV_DONTNEED) of 1 GiB in a host process (see
# balloon_native_bench.sh). On /dev/kvm when the probe firmware runs there (tests/lib/detect-kvm.sh
# firmware: hardware KVM, or PVM that honours IOPL), else in one boot of the nested test host. BALLOON_NATIVE_DEPTHS="1 16".
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
B=${B:-$root/build}
out=$B/bench/balloon-native
mkdir -p "$out/bin" "$out/gen"

gcc -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -O2 -static -o "$out/bin/madvise_bench" \
	"$root/bench/balloon/madvise_bench.c"
make -s -C "$root" -f firmware/firmware.mk B="$B" "$B/firmware/balloon.elf"
strip -o "$out/bin/balloon.elf" "$B/firmware/balloon.elf"
depths=${BALLOON_NATIVE_DEPTHS:-1 16}

if [ "$(B="$B" "$root/tests/lib/detect-kvm.sh" firmware)" = direct ]; then
	BENCH_BIN=$out/bin BALLOON_NATIVE_DEPTHS=$depths exec "$root/tests/direct-run.sh" \
		bench-balloon-native 900 "$here/balloon_native_bench.sh"
fi
command -v qemu-system-x86_64 >/dev/null ||
	{ echo "balloon-native: SKIP: no usable /dev/kvm and no qemu-system-x86_64 for the test host"; exit 0; }
# Its own test host work directory (the vmm and guest linked in), apart from build/testhost.
th=$out/testhost-build
mkdir -p "$th"
ln -sfn "$(readlink -f "$B/vmm")" "$th/vmm"
ln -sfn "$(readlink -f "$B/guest")" "$th/guest"
"$root/bench/balloon/embed.sh" "$out/gen/balloon_native_bench.sh" "$here/balloon_native_bench.sh" \
	"$out/bin/balloon.elf" "$out/bin/madvise_bench"
B=$th exec "$root/tests/testhost/run.sh" --stream --quiet-results --mem 3072 \
	--env "BALLOON_NATIVE_DEPTHS=$depths" "$out/gen/balloon_native_bench.sh"
