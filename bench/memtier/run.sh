#!/usr/bin/env bash
# bench/memtier/run.sh [--no-testhost]: the compressed tier's figures (docs: README "Memory").
#  1. On this host, no KVM (build/bench/memtier_bench): lz4 and zstd compression/decompression
#     MB/s per core and ratio on one page set like the e2e guest's, the lz4/zstd command-line tools'
#     ratio on the same bytes, and fault-in latency through userfaultfd in-process.
#  2. In one boot of the nested test host (bench/memtier/testhost.sh, with QEMU inside): fault-in
#     latency p50/p99 under a firmware guest, and RSS saved for the realistic 512 MiB guest by
#     `memory reclaim 128M`, next to the same guest under QEMU with KSM (mem-merge=on).
# Every wait is bounded; the test host part takes about 10-20 minutes on 2 cores.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
B=${B:-$root/build}
out=$B/bench
mkdir -p "$out"
cd "$root"

gcc -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -O2 -g -o "$out/memtier_bench" \
	bench/memtier/memtier_bench.c vmm/mem/*.c vmm/util.c -llz4 -lzstd
bins=()
for f in "$B/vmm" "$B/guest/vmlinux" /usr/bin/qemu-system-x86_64 /bin/busybox; do
	[ -r "$f" ] && bins+=(--bin "$f")
done
set=$out/memtier-pageset.bin
echo "== host: page-by-page compression as the tier does it, and fault-in through userfaultfd"
timeout -k 5 300 "$out/memtier_bench" --out "$set" "${bins[@]}"
size=$(stat -c %s "$set")
echo "== host: the command-line tools on the same $((size / 1048576)) MiB (whole stream: matches across pages)"
for t in "lz4 -1" "zstd -1" "zstd -3"; do
	c=$(timeout 300 $t -c -q "$set" | wc -c)
	awk -v t="$t" -v s="$size" -v c="$c" 'BEGIN { printf "%-8s ratio %.2fx (%d -> %d bytes)\n", t, s / c, s, c }'
done
rm -f "$set"

[ "${1:-}" != --no-testhost ] || exit 0
if [ ! -x "$B/vmm" ] || [ ! -s "$B/guest/bzImage" ] || [ ! -s "$B/firmware/memtouch.elf" ]; then
	echo "== test host part skipped: needs build/vmm, build/guest and build/firmware (make all guest)"
	exit 0
fi
echo "== nested test host: firmware fault-in latency; RSS saved, vmm tier vs QEMU + KSM"
# Our own build directory: no collision with a concurrent e2e run's work files.
thb=$B/bench/memtier-testhost
mkdir -p "$thb"
ln -sfn "$(readlink -f "$B/vmm")" "$thb/vmm"
ln -sfn "$(readlink -f "$B/guest")" "$thb/guest"
scen=$thb/memtier_bench.sh
{
	echo "#!/bin/sh"
	grep -E '^# *timeout:' "$here/testhost.sh"
	echo ". \"\${TESTLIB}\""
	# shellcheck disable=SC2016 # expanded inside the test host
	printf '%s\n' 'FW_DIR=$SCRATCH/fw' 'mkdir -p "$FW_DIR"'
	strip -o "$thb/memtouch.stripped" "$B/firmware/memtouch.elf"
	echo "base64 -d <<'@@FW@@' | gunzip >\"\$FW_DIR/memtouch.elf\""
	gzip -9c "$thb/memtouch.stripped" | base64
	echo "@@FW@@"
	grep -vE '^#!|^\. "\$\{TESTLIB' "$here/testhost.sh"
} >"$scen"
B=$thb "$root/tests/testhost/run.sh" --with-qemu --mem 3072 "$scen" || true
grep '^RESULT' "$thb/testhost/logs/memtier_bench.log" | sed 's/^RESULT /  /' ||
	echo "  (no results: see $thb/testhost/logs/memtier_bench.log)"
