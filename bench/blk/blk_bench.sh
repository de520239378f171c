#!/bin/sh
# bench/blk scenario: virtio-blk in the guest, ours against QEMU (-M pc, -enable-kvm,
# -device virtio-blk-pci on -drive aio=io_uring,cache=writeback), same kernel, initramfs, command
# line and image (256 MiB, written in full first), and the host running the same tool on the file.
# Run by bench/blk/run.sh (inside the nested test host unless /dev/kvm boots Linux here).
#
# The guest tool is blkbench (guest-kernel-config/initramfs/tools/blkbench.c, a small fio
# stand-in: QD threads, each with one pread/pwrite in flight, O_DIRECT on /dev/vda in the guest);
# phases of BLK_BENCH_SECS (5) s each: 4 KiB random read at QD 1 and QD 32, 1 MiB sequential read
# and write at QD 4. Host CPU per GiB: the VMM process's utime+stime (/proc/PID/stat) between the
# guest's start and end markers of a phase, divided by the GiB the phase moved; for the host
# itself, the tool's own CPU time. Both VMMs use the host page cache (cache=writeback) and one
# queue (1 vCPU). In the nested test host absolute figures are 50-100x below hardware: compare
# the ratios. The VMM configs run BLK_BENCH_ROUNDS (3) times, interleaved (vmm, qemu, vmm, ...), and
# the table shows each figure's median: one test host boot varies by up to 2x from run to run.
# needs: qemu
# timeout: 900
. "${TESTLIB:-$(dirname "$0")/../../tests/lib/scenario.sh}"
need_vmm
need_kvm

secs=${BLK_BENCH_SECS:-5}
k=$GUEST_DIR/bzImage
rd=$GUEST_DIR/initramfs.cpio.gz
base="console=ttyS0 reboot=k panic=-1 tsc=reliable no_timer_check"
img=$SCRATCH/bench.img
phases=${BLK_BENCH_PHASES:-rr4k_qd1 rr4k_qd32 sr1m sw1m rr4k_qd32_pc}
configs=${BLK_BENCH_CONFIGS:-vmm qemu host}
rounds=${BLK_BENCH_ROUNDS:-3}
args() { # PHASE: blkbench arguments after the path
	case $1 in
	rr4k_qd1) echo "randread 4 1 $secs" ;;
	rr4k_qd32 | rr4k_qd32_pc) echo "randread 4 32 $secs" ;;
	sr1m) echo "seqread 1024 4 $secs" ;;
	sw1m) echo "seqwrite 1024 4 $secs" ;;
	esac
}

log "image: 256 MiB written in full"
dd if=/dev/zero of="$img" bs=1M count=256 2>/dev/null || fail "cannot write $img"

gcmd=
for p in $phases; do
	case $p in
	# The ceiling of any virtual disk in this guest: the same reads from the guest's own page
	# cache (a 64 MiB file in its tmpfs root), no device at all.
	*_pc) gcmd="$gcmd dd if=/dev/zero of=/pc.img bs=1M count=64 2>/dev/null; echo @@start $p; blkbench /pc.img $(args $p) | sed 's/^/@@res $p /'; echo @@end $p; rm /pc.img;" ;;
	*) gcmd="$gcmd echo @@start $p; blkbench /dev/vda $(args $p) direct | sed 's/^/@@res $p /'; echo @@end $p;" ;;
	esac
done
gcmd="$gcmd sleep 1" # the last phase's CPU time is read before the VMM exits

launch() { # CONFIG
	case $1 in
	# shellcheck disable=SC2086
	vmm) exec "$VMM" run ${BLK_BENCH_VMM_ARGS:-} --mem 256M --cmdline "$base" --disk "$img" -- sh -c "$gcmd" ;;
	qemu)
		exec "$QEMU" -M pc -enable-kvm -cpu host -m 256 -smp 1 -nodefaults -no-user-config \
			-display none -no-reboot -serial stdio \
			-device isa-debug-exit,iobase=0x501,iosize=1 \
			-drive "file=$img,if=none,id=d0,format=raw,aio=io_uring,cache=writeback" \
			-device virtio-blk-pci,drive=d0 \
			-kernel "$k" -initrd "$rd" \
			-append "$base quiet vmm.cmd=$(b64 "$gcmd") vmm.tty=0" ;;
	esac
}

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)

res=$SCRATCH/results
: >"$res"
run_config() { # CONFIG
	_out=$SCRATCH/$1.out
	(launch "$1") </dev/null >"$_out" 2>"$SCRATCH/$1.err" &
	_pid=$!
	for p in $phases; do
		wait_for "^@@start $p[[:space:]]*$" "$_out" 300 || { cat "$_out" "$SCRATCH/$1.err"; fail "$1: no $p"; }
		_t0=$(ticks $_pid)
		wait_for "^@@end $p[[:space:]]*$" "$_out" 300 || { cat "$_out" "$SCRATCH/$1.err"; fail "$1: $p hung"; }
		_t1=$(ticks $_pid)
		_line=$(tr -d '\r' <"$_out" | grep "^@@res $p ") || { cat "$_out"; fail "$1: $p failed"; }
		echo "$1 $p $((_t1 - _t0)) ${_line#@@res $p }" >>"$res"
	done
	wait $_pid
	log "$1: exit status $?"
	grep -v '^\[' "$SCRATCH/$1.err" | head -60 || true
}

run_host() {
	zcat "$rd" | (mkdir -p "$SCRATCH/x" && cd "$SCRATCH/x" && cpio -id bin/blkbench 2>/dev/null)
	[ -x "$SCRATCH/x/bin/blkbench" ] || fail "blkbench not in the guest initramfs"
	for p in $phases; do
		case $p in *_pc) continue ;; esac
		_t0=$(awk '{ print $16 + $17 }' /proc/$$/stat)
		# shellcheck disable=SC2046
		_line=$("$SCRATCH/x/bin/blkbench" "$img" $(args $p)) || fail "host: $p failed"
		_t1=$(awk '{ print $16 + $17 }' /proc/$$/stat)
		echo "host $p $((_t1 - _t0)) $_line" >>"$res"
	done
}

r=1
while [ $r -le "$rounds" ]; do
	for c in $configs; do
		case $c in
		vmm) run_config vmm ;;
		qemu) [ -n "$QEMU" ] && [ -x "$QEMU" ] && run_config qemu ;;
		host) [ $r -gt 1 ] || run_host ;;
		esac
	done
	r=$((r + 1))
done
cat "$res"

# Table: one row per figure, one column per config.
awk -v hz="$hz" '
function val(s, k,   i, n, a) { n = split(s, a, " "); for (i = 1; i <= n; i++) if (index(a[i], k "=") == 1) return substr(a[i], length(k) + 2); return "" }
function add(arr, key, v) { arr[key, ++arr[key]] = v }
function median(arr, key,   n, i, j, t, a) {
	n = arr[key]; if (!n) return ""
	for (i = 1; i <= n; i++) a[i] = arr[key, i] + 0
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
	cfg = $1; ph = $2; t = $3; rest = $0
	add(I, cfg SUBSEP ph, val(rest, "iops")); add(M, cfg SUBSEP ph, val(rest, "mbps"))
	bytes = val(rest, "bytes"); if (bytes > 0 && t >= 0) add(C, cfg SUBSEP ph, t / hz / (bytes / 1073741824))
	if (!(cfg in seen)) { seen[cfg] = 1; order[++nc] = cfg }
}
END {
	for (k in I) if (split(k, kk, SUBSEP) == 2) { iops[kk[1], kk[2]] = median(I, k); mbps[kk[1], kk[2]] = median(M, k); cpu[kk[1], kk[2]] = median(C, k) }
	printf "median of %d round(s) per VMM config\n", rounds
	printf "%-34s", "figure"; for (c = 1; c <= nc; c++) printf " %12s", order[c]
	if (("vmm" in seen) && ("qemu" in seen)) printf " %10s", "vmm/qemu"
	printf "\n"
	row("4 KiB rand read QD1 (IOPS)", "rr4k_qd1", "iops")
	row("4 KiB rand read QD32 (IOPS)", "rr4k_qd32", "iops")
	row("1 MiB seq read QD4 (MB/s)", "sr1m", "mbps")
	row("1 MiB seq write QD4 (MB/s)", "sw1m", "mbps")
	row("4 KiB QD32, guest page cache (IOPS)", "rr4k_qd32_pc", "iops")
	row("CPU s/GiB, 4 KiB rand QD32", "rr4k_qd32", "cpu")
	row("CPU s/GiB, 1 MiB seq read", "sr1m", "cpu")
	row("CPU s/GiB, 1 MiB seq write", "sw1m", "cpu")
	if (("vmm", "rr4k_qd32") in iops && ("host", "rr4k_qd32") in iops && iops["host", "rr4k_qd32"] > 0)
		printf "vmm 4 KiB QD32 = %.1f%% of the host'"'"'s own figure\n", 100 * iops["vmm", "rr4k_qd32"] / iops["host", "rr4k_qd32"]
	if (("vmm", "rr4k_qd32_pc") in iops && iops["vmm", "rr4k_qd32_pc"] > 0) {
		printf "vmm 4 KiB QD32 = %.1f%% of the same guest reading its own page cache (no device: the ceiling)\n", 100 * iops["vmm", "rr4k_qd32"] / iops["vmm", "rr4k_qd32_pc"]
		if (("host", "rr4k_qd32") in iops && iops["host", "rr4k_qd32"] > 0)
			printf "guest page cache = %.1f%% of the host'"'"'s own figure (the nested guest'"'"'s CPU cost)\n", 100 * iops["vmm", "rr4k_qd32_pc"] / iops["host", "rr4k_qd32"]
	}
}
function fig(c, ph, what) { return what == "iops" ? iops[c, ph] : what == "mbps" ? mbps[c, ph] : cpu[c, ph] }
function row(name, ph, what,   c, v, a, b) {
	printf "%-34s", name
	for (c = 1; c <= nc; c++) {
		v = fig(order[c], ph, what)
		printf " %12s", what == "cpu" && v != "" ? sprintf("%.2f", v) : v
	}
	if (("vmm" in seen) && ("qemu" in seen)) {
		a = fig("vmm", ph, what); b = fig("qemu", ph, what)
		# CPU per GiB: lower is better, so the ratio is inverted (above 1: ours ahead).
		if (a > 0 && b > 0) printf " %9.2fx", what == "cpu" ? b / a : a / b
	}
	printf "\n"
}' rounds="$rounds" "$res"
log "ok"
