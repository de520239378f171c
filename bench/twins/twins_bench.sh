#!/bin/sh
# bench/twins scenario (issue 15): two identical idle guests (same kernel, same initramfs, same
# command, 512 MiB each) started together, and the host memory the pair costs over a fixed
# window: for our VMM with KSM + free page reporting + the memory autopilot (--auto-balloon on),
# then for QEMU with -machine mem-merge=on + virtio-balloon free-page-reporting=on, one after the
# other in the same test host boot with the same KSM settings.
# Pair memory = PSS(A) + PSS(B) from /proc/PID/smaps_rollup: a page KSM merged between the two
# counts once (half in each), the shared zero page not at all. RSS counts a merged page in both.
# Each sample is printed as "@@csv CONFIG SECONDS PAIR_PSS_MIB PAIR_RSS_MIB" (bench/twins/run.sh
# turns them into a CSV and a PNG), then the pair memory at the end of the window, the fraction
# of the pair's RAM saved (1 - pair PSS / (2 x guest RAM)) and the ratio ours/QEMU.
# Environment: TWINS_WINDOW (seconds, default 90), TWINS_KSM_SCAN (pages_to_scan, 1000),
# TWINS_KSM_SLEEP (sleep_millisecs, 20), TWINS_ZERO_PAGES (use_zero_pages, 1), TWINS_VMM_ARGS
# (extra vmm run options, e.g. to compare a policy setting).
# needs: qemu
# timeout: 900
# shellcheck source=/dev/null
. "${TESTLIB:-$(dirname "$0")/../../tests/lib/scenario.sh}"
need_vmm
need_kvm

mem=512
window=${TWINS_WINDOW:-90}
ksm=/sys/kernel/mm/ksm
[ -w $ksm/run ] || skip "KSM is not available on this host ($ksm/run not writable)"
scan=${TWINS_KSM_SCAN:-1000}
sleep_ms=${TWINS_KSM_SLEEP:-20}
zero=${TWINS_ZERO_PAGES:-1}
echo "$scan" >$ksm/pages_to_scan
echo "$sleep_ms" >$ksm/sleep_millisecs
# use_zero_pages: an empty page is merged with the kernel's zero page (no KSM page to keep at all);
# writable only while KSM is not merging (run=2 unmerges, so set it before run=1).
echo 2 >$ksm/run
[ ! -w $ksm/use_zero_pages ] || echo "$zero" >$ksm/use_zero_pages 2>/dev/null
echo 1 >$ksm/run
echo "twins: KSM run=$(cat $ksm/run) pages_to_scan=$(cat $ksm/pages_to_scan) sleep_millisecs=$(cat $ksm/sleep_millisecs) use_zero_pages=$(cat $ksm/use_zero_pages 2>/dev/null || echo -)"
echo "twins: THP enabled=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo -)"

gcmd='echo @@up; sleep 3600'

launch() { # CONFIG N CONSOLE
	case $1 in
	vmm)
		# shellcheck disable=SC2086 # TWINS_VMM_ARGS is a list of options
		exec "$VMM" run --mem "${mem}M" --merge on --auto-balloon on ${TWINS_VMM_ARGS:-} \
			--control "$SCRATCH/$1-$2.sock" --console "file:$3" -- sh -c "$gcmd" ;;
	qemu)
		exec "$QEMU" -M pc,mem-merge=on -enable-kvm -cpu host -m "$mem" -smp 1 -nodefaults \
			-no-user-config -display none -no-reboot -serial "file:$3" \
			-device virtio-balloon-pci,free-page-reporting=on \
			-device isa-debug-exit,iobase=0x501,iosize=1 \
			-kernel "$GUEST_DIR/bzImage" -initrd "$GUEST_DIR/initramfs.cpio.gz" \
			-append "console=ttyS0 reboot=k panic=-1 quiet vmm.cmd=$(b64 "$gcmd") vmm.tty=0" ;;
	esac
}

# kib PID FIELD: a /proc/PID/smaps_rollup field in KiB (0 while the process is not there yet).
kib() {
	awk -v f="$2:" '$1 == f { print $2; found = 1 } END { if (!found) print 0 }' \
		"/proc/$1/smaps_rollup" 2>/dev/null || echo 0
}

# run CONFIG: start both guests at once, sample the pair every 2 s for the window, stop them;
# prints "@@csv" lines, then "PSS RSS MIN_PSS BOOTED" (MiB, at the end of the window).
run() {
	for n in 1 2; do
		: >"$SCRATCH/$1-$n.console"
		(launch "$1" "$n" "$SCRATCH/$1-$n.console") </dev/null >"$SCRATCH/$1-$n.out" 2>&1 &
		eval "_p$n=\$!"
	done
	_t=0
	_min=100000
	while [ $_t -le "$window" ]; do
		# shellcheck disable=SC2154 # _p1/_p2 set by eval above
		_pss=$((($(kib "$_p1" Pss) + $(kib "$_p2" Pss)) / 1024))
		_rss=$((($(kib "$_p1" Rss) + $(kib "$_p2" Rss)) / 1024))
		echo "@@csv $1 $_t $_pss $_rss"
		[ $_t -lt 10 ] || [ "$_pss" -ge "$_min" ] || _min=$_pss
		[ $_t -ge "$window" ] && break
		sleep 2
		_t=$((_t + 2))
	done
	_up=0
	for n in 1 2; do grep -q '^@@up' "$SCRATCH/$1-$n.console" && _up=$((_up + 1)); done
	log "$1: KSM pages_shared=$(cat $ksm/pages_shared) pages_sharing=$(cat $ksm/pages_sharing) zero_pages=$(cat $ksm/ksm_zero_pages 2>/dev/null || echo -) full_scans=$(cat $ksm/full_scans)"
	for n in 1 2; do
		eval "_p=\$_p$n"
		# shellcheck disable=SC2154
		log "$1 guest $n: Pss $(kib "$_p" Pss) kB, Rss $(kib "$_p" Rss) kB, Anonymous $(kib "$_p" Anonymous) kB, AnonHugePages $(kib "$_p" AnonHugePages) kB"
		if [ "$1" = vmm ] && "$VMM" ctl -s "$SCRATCH/$1-$n.sock" memory >"$SCRATCH/$1-$n.mem" 2>&1; then
			grep -E '^(resident_bytes|ballooned_bytes|reported_bytes|balloon\.(target_mib|actual_mib|stats\.[a-z_]*)|ksm\.(merging_pages|zero_pages|profit_bytes)|policy\.(inflates|deflates|last_why|last_guest_available_mib)) ' \
				"$SCRATCH/$1-$n.mem" | tr '\n' ' ' | sed "s/^/    $1 guest $n: /"
			echo
		fi
	done
	kill "$_p1" "$_p2" 2>/dev/null
	wait "$_p1" 2>/dev/null
	wait "$_p2" 2>/dev/null
	echo "$_pss $_rss $_min $_up"
}

configs=vmm
[ -z "$QEMU" ] || [ ! -x "$QEMU" ] || configs="vmm qemu"
for c in $configs; do
	log "running $c: two ${mem} MiB guests, window $window s"
	run "$c" | tee "$SCRATCH/$c.run" | grep -v '^[0-9]'
	tail -n1 "$SCRATCH/$c.run" >"$SCRATCH/$c.sum"
	# unmerge everything between the two VMMs, so the second starts from the same KSM state
	echo 2 >$ksm/run
	echo 1 >$ksm/run
done
echo
echo "twins: two idle ${mem} MiB guests (same kernel, initramfs, command), host memory of the pair after $window s"
echo "  (pair PSS = PSS(A) + PSS(B): KSM-merged pages count once; RSS counts them in each)"
printf '  %-5s %14s %14s %16s %12s %7s\n' config "pair PSS MiB" "pair RSS MiB" "min PSS MiB" "RAM saved" booted
for c in $configs; do
	read -r p r mn up <"$SCRATCH/$c.sum"
	saved=$(awk -v p="$p" -v m="$mem" 'BEGIN { printf "%.1f%%", 100 * (1 - p / (2 * m)) }')
	printf '  %-5s %14s %14s %16s %12s %7s\n' "$c" "$p" "$r" "$mn" "$saved" "$up/2"
done
read -r pv _ _ upv <"$SCRATCH/vmm.sum"
sv=$(awk -v p="$pv" -v m="$mem" 'BEGIN { print 1 - p / (2 * m) }')
echo "  vmm: $(awk -v s="$sv" 'BEGIN { printf "%.1f%%", 100 * s }') of the pair's RAM saved (goal >= 90%: $(awk -v s="$sv" 'BEGIN { print (s >= 0.9) ? "met" : "NOT met" }'))"
if [ -f "$SCRATCH/qemu.sum" ]; then
	read -r pq _ <"$SCRATCH/qemu.sum"
	echo "  ratio vmm / qemu pair PSS: $(awk -v a="$pv" -v b="$pq" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')"
fi
[ "$upv" = 2 ] || fail "not both vmm guests booted"
