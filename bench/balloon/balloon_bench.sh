#!/bin/sh
# bench/balloon scenario: balloon inflate and deflate speed with the real Linux driver, our VMM
# against QEMU (-M pc -device virtio-balloon-pci, QMP `balloon`), same kernel, initramfs and
# command line, in the same run on the same host; and the host-side discard cost per GiB against
# plain madvise(MADV_DONTNEED) of the same ranges. Run by bench/balloon/run.sh (inside the nested
# test host unless /dev/kvm boots Linux here); BENCH_BIN holds balloon_timer and madvise_bench.
#
# Each run, per VMM: a 256 MiB guest fills, verifies and frees 160 MiB (memfill), so guest RAM
# is resident in the host; then balloon_timer sets "the guest keeps 64 MiB" (a 192 MiB balloon)
# and polls `actual` every 10 ms until it reaches the target (inflate), then sets 256 MiB
# (deflate) the same way. Both VMMs offer the same features (stats only: QEMU's defaults; our
# free page reporting and deflate-on-OOM are turned off so reporting cannot discard first).
# Host-side cost: CPU time of the VMM's non-vCPU threads (schedstat) during the inflate, minus
# the cost of answering the polls (measured on the idle guest just before), per GiB ballooned.
# needs: qemu
# timeout: 1500
. "${TESTLIB:-$(dirname "$0")/../../tests/lib/scenario.sh}"
need_vmm
need_kvm
: "${BENCH_BIN:?BENCH_BIN (balloon_timer, madvise_bench) not set: run bench/balloon/run.sh}"

runs=${BALLOON_BENCH_RUNS:-3}
mem=256 keep=64 fill=160
balloon_mib=$((mem - keep))
poll_ms=${BALLOON_BENCH_POLL_MS:-10}
base="console=ttyS0 reboot=k panic=-1 tsc=reliable no_timer_check"
gcmd="memfill -m $fill -p random >/dev/null && echo @@filled; sleep 900"

have_qemu=0
if [ -n "$QEMU" ] && [ -x "$QEMU" ]; then
	have_qemu=1
	configs="vmm qemu"
else
	log "no QEMU here ($TEST_MODE mode): measuring vmm only"
	configs=vmm
fi

pid=
cleanup() {
	[ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null
}
trap cleanup EXIT

# start CONFIG: launch the guest in the background; sets pid, sock, con, proto.
start() {
	con=$SCRATCH/$1.console sock=$SCRATCH/$1.sock
	rm -f "$con" "$sock"
	case $1 in
	vmm)
		proto=--vmm
		"$VMM" run --mem "${mem}M" --balloon free-page-reporting=off,deflate-on-oom=off \
			--console "file:$con" --control "$sock" -- sh -c "$gcmd" \
			</dev/null >"$SCRATCH/$1.out" 2>&1 &
		;;
	qemu)
		proto=--qmp
		"$QEMU" -M pc -enable-kvm -cpu host -m "$mem" -smp 1 -nodefaults -no-user-config \
			-display none -no-reboot -serial "file:$con" -device virtio-balloon-pci \
			-qmp "unix:$sock,server=on,wait=off" \
			-kernel "$GUEST_DIR/bzImage" -initrd "$GUEST_DIR/initramfs.cpio.gz" \
			-append "$base quiet vmm.cmd=$(b64 "$gcmd") vmm.tty=0" \
			</dev/null >"$SCRATCH/$1.out" 2>&1 &
		;;
	esac
	pid=$!
}

stop() {
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	pid=
}

# field NAME: NAME=VALUE from the line on stdin.
field() {
	tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1
}

# run_one CONFIG RUN: one measurement; appends a line to $SCRATCH/CONFIG.runs:
#   in_ms in_polls in_cpu_ns out_ms out_polls out_cpu_ns poll_cpu_ns rss0_kib rss1_kib calls bytes
run_one() {
	start "$1"
	if ! wait_for '^@@filled' "$con" 300; then
		log "$1: the guest did not fill $fill MiB; console and output:"
		tail -n 20 "$con" "$SCRATCH/$1.out" 2>/dev/null
		stop
		return 1
	fi
	wait_until 30 test -S "$sock" || { stop; return 1; }
	rss0=$(rss_kib "$pid")
	thp=$(pss_mib "$pid" AnonHugePages)
	# The cost of answering polls, on the idle guest.
	c0=$(host_cpu_ns "$pid")
	idle=$("$BENCH_BIN/balloon_timer" "$proto" "$sock" --idle-ms 1000 --poll-ms "$poll_ms") ||
		{ stop; return 1; }
	c1=$(host_cpu_ns "$pid")
	ipolls=$(echo "$idle" | field polls)
	poll_ns=$(((c1 - c0) / ipolls))

	c2=$(host_cpu_ns "$pid")
	inf=$("$BENCH_BIN/balloon_timer" "$proto" "$sock" --guest-mib $keep --poll-ms "$poll_ms" \
		--timeout 120) || { log "$1: inflate: $inf"; stop; return 1; }
	c3=$(host_cpu_ns "$pid")
	rss1=$(rss_kib "$pid")
	calls=- bytes=-
	if [ "$1" = vmm ]; then
		"$VMM" ctl -s "$sock" --json memory >"$SCRATCH/mem.json"
		calls=$(grep -o '"discard_calls":[0-9]*' "$SCRATCH/mem.json" | cut -d: -f2)
		bytes=$(grep -o '"ballooned_bytes":[0-9]*' "$SCRATCH/mem.json" | cut -d: -f2)
	fi
	c4=$(host_cpu_ns "$pid")
	def=$("$BENCH_BIN/balloon_timer" "$proto" "$sock" --guest-mib $mem --poll-ms "$poll_ms" \
		--timeout 120) || { log "$1: deflate: $def"; stop; return 1; }
	c5=$(host_cpu_ns "$pid")
	stop
	in_ms=$(echo "$inf" | field elapsed_ms) out_ms=$(echo "$def" | field elapsed_ms)
	log "run $2 $1: inflate ${in_ms} ms ($(echo "$inf" | field polls) polls)," \
		"deflate ${out_ms} ms, RSS $((rss0 / 1024)) -> $((rss1 / 1024)) MiB," \
		"non-vCPU CPU $(((c3 - c2) / 1000000)) ms inflating (poll cost $((poll_ns / 1000)) us)," \
		"THP-backed before: $thp MiB"
	echo "$in_ms $(echo "$inf" | field polls) $((c3 - c2)) $out_ms $(echo "$def" | field polls)" \
		"$((c5 - c4)) $poll_ns $rss0 $rss1 $calls $bytes" >>"$SCRATCH/$1.runs"
}

log "balloon bench: $runs run(s) per VMM ($configs), interleaved; guest ${mem} MiB fills and" \
	"frees ${fill} MiB, then a ${balloon_mib} MiB balloon"
i=1
while [ $i -le "$runs" ]; do
	for c in $configs; do
		run_one "$c" $i || log "run $i $c: failed"
	done
	i=$((i + 1))
done
[ -s "$SCRATCH/vmm.runs" ] || fail "no successful vmm run"

# col CONFIG N: the median of column N over the runs.
col() {
	[ -s "$SCRATCH/$1.runs" ] || { echo -; return; }
	awk -v n="$2" '{ print $n }' "$SCRATCH/$1.runs" | sort -n |
		awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
calc() { # EXPR with a b c...: awk arithmetic, "-" if any input is "-"
	_e=$1
	shift
	case " $* " in *" - "*) echo -; return ;; esac
	awk -v a="$1" -v b="${2:-0}" -v c="${3:-0}" -v d="${4:-0}" "BEGIN { printf $_e }"
}
gib=$(calc '"%.6f", a / 1024' $balloon_mib)

# The raw primitive, in the same host: madvise over 192 MiB, in the ranges our device used
# (the average merged range), in one call, and one 4 KiB page per call (QEMU's way).
calls=$(col vmm 10) bytes=$(col vmm 11)
avg_kib=$(awk -v a="$bytes" -v b="$calls" 'BEGIN { k = int(a / b / 4096) * 4; if (k < 4) k = 4; print k }')
log "madvise_bench: ${balloon_mib} MiB in ${avg_kib} KiB ranges, one range, 4 KiB pages"
"$BENCH_BIN/madvise_bench" --mib $balloon_mib --chunk-kib "$avg_kib" --chunk-kib 0 \
	--chunk-kib 4 --reps 3 | tee "$SCRATCH/madvise.txt" || fail "madvise_bench failed"
mad() { # CHUNK_KIB: ms_per_gib of that line
	grep " chunk_kib=$1 " "$SCRATCH/madvise.txt" | field ms_per_gib
}
mad_same=$(mad "$avg_kib")
mad_one=$(mad $((balloon_mib * 1024)))
mad_page=$(mad 4)

echo
echo "balloon: ${balloon_mib} MiB inflate and deflate, Linux guest (${mem} MiB, 1 vCPU, filled and" \
	"freed ${fill} MiB first), median of $runs run(s), polling actual every ${poll_ms} ms ($TEST_MODE)"
printf '  %-6s %10s %10s %10s %10s %12s %16s\n' vmm "inflate ms" "GiB/s" "deflate ms" "GiB/s" \
	"RSS drop MiB" "host CPU ms/GiB"
for c in $configs; do
	[ -s "$SCRATCH/$c.runs" ] || { printf '  %-6s %s\n' "$c" "no successful run"; continue; }
	im=$(col "$c" 1) om=$(col "$c" 4)
	hc=$(calc '"%.1f", (a - b * c) / 1e6 / d' "$(col "$c" 3)" "$(col "$c" 2)" "$(col "$c" 7)" "$gib")
	printf '  %-6s %10.1f %10.3f %10.1f %10.3f %12d %16s\n' "$c" "$im" \
		"$(calc '"%.4f", b / (a / 1000)' "$im" "$gib")" "$om" \
		"$(calc '"%.4f", b / (a / 1000)' "$om" "$gib")" \
		"$(calc '"%d", (a - b) / 1024' "$(col "$c" 8)" "$(col "$c" 9)")" "$hc"
	eval "in_$c=$im out_$c=$om hc_$c=$hc"
done
# Each poll costs the VMM CPU time that the guest, on the same (single) test host CPU, waits
# for; without it (each poll's measured cost subtracted from the elapsed time):
for c in $configs; do
	[ -s "$SCRATCH/$c.runs" ] || continue
	eval "cin_$c=$(calc '"%.1f", a - b * c / 1e6' "$(col "$c" 1)" "$(col "$c" 2)" "$(col "$c" 7)")"
	eval "cout_$c=$(calc '"%.1f", a - b * c / 1e6' "$(col "$c" 4)" "$(col "$c" 5)" "$(col "$c" 7)")"
	eval "echo \"  $c, poll cost removed: inflate \$cin_$c ms, deflate \$cout_$c ms" \
		"(poll cost $(calc '"%.0f", a / 1000' "$(col "$c" 7)") us each)\""
done
# shellcheck disable=SC2154 # in_*, out_*, cin_*, cout_*, hc_* are set by eval above
if [ $have_qemu = 1 ] && [ -s "$SCRATCH/qemu.runs" ]; then
	echo "  ratio vmm/qemu speed: inflate $(calc '"%.2f", b / a' "$in_vmm" "$in_qemu")x," \
		"deflate $(calc '"%.2f", b / a' "$out_vmm" "$out_qemu")x; poll cost removed:" \
		"inflate $(calc '"%.2f", b / a' "$cin_vmm" "$cin_qemu")x," \
		"deflate $(calc '"%.2f", b / a' "$cout_vmm" "$cout_qemu")x"
	echo "  host CPU per GiB inflated: qemu/vmm $(calc '"%.2f", b / a' "$hc_vmm" "$hc_qemu")x"
fi
echo
# shellcheck disable=SC2154
echo "discard cost per GiB (host side), same host:"
echo "  vmm inflate, non-vCPU CPU minus polls:  ${hc_vmm} ms/GiB (${calls} discard calls, ${avg_kib} KiB average range)"
echo "  vmm inflate, end to end (guest included): $(calc '"%.1f", a / b' "$in_vmm" "$gib") ms/GiB"
echo "  madvise(MADV_DONTNEED), same ranges:      ${mad_same} ms/GiB"
echo "  madvise, one call over the whole range:   ${mad_one} ms/GiB"
echo "  madvise, one 4 KiB page per call:         ${mad_page} ms/GiB (what QEMU does per PFN)"
echo "  ratio vmm host-side cost / madvise same ranges: $(calc '"%.2f", a / b' "$hc_vmm" "$mad_same")x"
