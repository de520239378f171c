#!/bin/sh
# bench/balloon-native scenario: balloon inflate and deflate throughput driven by the `balloon`
# firmware (firmware/balloon.c: a freestanding driver at CPL3, so nearly all the time is the
# device's and the host's) for 1 GiB, next to plain madvise(MADV_DONTNEED) over the same 1 GiB
# in a host process on the same host. The ratio inflate / madvise is the figure of merit (1.0:
# as fast as the raw kernel primitive). Run by bench/balloon-native/run.sh; BENCH_BIN holds
# balloon.elf and madvise_bench.
#
# The firmware touches its 1 GiB pool (so it is resident), inflates it in 256-PFN buffers (1 MiB
# each, `depth` buffers in flight; Linux keeps 1), then deflates it, timing each with the TSC
# (calibrated against the PIT). madvise_bench maps and touches 1 GiB, then discards it in 1 MiB
# calls (the ranges the device discards: one merged range per buffer) and in one call.
# timeout: 900
. "${TESTLIB:-$(dirname "$0")/../../tests/lib/scenario.sh}"
[ -x "$VMM" ] || fail "vmm binary $VMM missing (make all)"
need_kvm
: "${BENCH_BIN:?BENCH_BIN (balloon.elf, madvise_bench) not set: run bench/balloon-native/run.sh}"

mib=1024
depths=${BALLOON_NATIVE_DEPTHS:-1 16}
opts="--mem $((mib + 256))M --balloon stats=off,free-page-reporting=off,deflate-on-oom=off"

# rate FILE WHAT: pages/s of the firmware's "balloon: WHAT N pages in X us: P pages/s" line.
rate() {
	sed -n "s/^balloon: $2 [0-9]* pages in [0-9]* us: \([0-9]*\) pages\/s.*/\1/p" "$1" | head -n1
}
gibs() { # PAGES_PER_S
	awk -v p="$1" 'BEGIN { printf "%.3f", p * 4096 / 1073741824 }'
}

for d in $depths; do
	out=$SCRATCH/fw-depth$d.out
	log "vmm run --firmware balloon.elf $opts --cmdline 'mib=$mib depth=$d oom=0 stats=0 report=0'"
	# shellcheck disable=SC2086 # opts is words
	run_with_timeout 600 "$VMM" run --firmware "$BENCH_BIN/balloon.elf" $opts \
		--cmdline "mib=$mib depth=$d oom=0 stats=0 report=0" </dev/null >"$out" 2>"$out.err"
	rc=$?
	sed 's/^/    | /' "$out"
	[ ! -s "$out.err" ] || sed 's/^/    ! /' "$out.err"
	[ $rc = 0 ] || fail "balloon firmware (depth $d): vmm exit status $rc"
	grep -q '^balloon: PASS' "$out" || fail "balloon firmware (depth $d) did not pass"
done

log "madvise_bench: $mib MiB, 1 MiB calls and one call"
"$BENCH_BIN/madvise_bench" --mib $mib --chunk-kib 1024 --chunk-kib 0 --reps 3 |
	tee "$SCRATCH/madvise.txt" || fail "madvise_bench failed"
mad() { # CHUNK_KIB: gib_per_s
	grep " chunk_kib=$1 " "$SCRATCH/madvise.txt" | tr ' ' '\n' | sed -n 's/^gib_per_s=//p'
}
m1=$(mad 1024)
mall=$(mad $((mib * 1024)))

echo
echo "balloon-native: $mib MiB inflate/deflate by the balloon firmware (CPL3 driver, 256-PFN" \
	"buffers), vs madvise(MADV_DONTNEED) of 1 GiB in a host process ($TEST_MODE)"
printf '  %-28s %12s %12s %22s\n' "" "inflate GiB/s" "deflate GiB/s" "inflate / madvise 1 MiB"
for d in $depths; do
	out=$SCRATCH/fw-depth$d.out
	i=$(gibs "$(rate "$out" inflate)") o=$(gibs "$(rate "$out" deflate)")
	printf '  %-28s %12s %12s %22s\n' "vmm, $d buffer(s) in flight" "$i" "$o" \
		"$(awk -v a="$i" -v b="$m1" 'BEGIN { printf "%.2f", a / b }')"
done
printf '  %-28s %12s\n' "madvise, 1 MiB per call" "$m1"
printf '  %-28s %12s\n' "madvise, one 1 GiB call" "$mall"
echo "  (deflate needs no host call: the guest's next touch faults in a zero page)"
