#!/bin/sh
# bench/autoballoon scenario (issue 15): one workload, our VMM with --auto-balloon on against QEMU
# (-M pc, virtio-balloon-pci with free-page-reporting=on and deflate-on-oom=on), same kernel,
# initramfs and command, one after the other in the same run. A 512 MiB guest fills 300 MiB,
# frees it, idles 45 s, then allocates 350 MiB. The VMM process's RSS is sampled every second;
# each sample is printed as "@@csv CONFIG SECONDS RSS_MIB" (bench/autoballoon/run.sh turns them into
# a CSV and a PNG), then the area under each curve (MiB*s) and their ratio.
# needs: qemu
# timeout: 1200
. "${TESTLIB:-$(dirname "$0")/../../tests/lib/scenario.sh}"
need_vmm
need_kvm

mem=512
# The guest prints what it uses (MemTotal - MemFree, MiB) each second: in the QEMU run, whose
# balloon never inflates, that is the workload's own floor (see the end).
# shellcheck disable=SC2016 # expanded by the guest's shell
gcmd='while :; do set -- $(grep -E "^Mem(Total|Free):" /proc/meminfo); echo "@@used $((($2 - $5) / 1024))"; sleep 1; done &
mount -t tmpfs -o size=470M tmpfs /mnt || exit 3
dd if=/dev/zero of=/mnt/a bs=1M count=300 2>/dev/null; echo @@filled; sleep 2; rm /mnt/a; echo @@freed
sleep 45; echo @@alloc
dd if=/dev/zero of=/mnt/b bs=1M count=350 2>/dev/null && echo @@alloc-ok || echo @@alloc-failed
sleep 5; echo @@end'

launch() { # CONFIG CONSOLE
	case $1 in
	vmm) exec "$VMM" run --mem "${mem}M" --auto-balloon on --console "file:$2" -- sh -c "$gcmd" ;;
	vmm-4k) exec "$VMM" run --mem "${mem}M" --hugepages off --auto-balloon on --console "file:$2" \
		-- sh -c "$gcmd" ;;
	qemu)
		exec "$QEMU" -M pc -enable-kvm -cpu host -m "$mem" -smp 1 -nodefaults -no-user-config \
			-display none -no-reboot -serial "file:$2" \
			-device virtio-balloon-pci,free-page-reporting=on,deflate-on-oom=on \
			-device isa-debug-exit,iobase=0x501,iosize=1 \
			-kernel "$GUEST_DIR/bzImage" -initrd "$GUEST_DIR/initramfs.cpio.gz" \
			-append "console=ttyS0 reboot=k panic=-1 quiet vmm.cmd=$(b64 "$gcmd") vmm.tty=0" ;;
	esac
}

# run CONFIG: launch, sample RSS each second until it exits; prints "area peak end alloc_ok".
run() {
	_con=$SCRATCH/$1.console
	: >"$_con"
	(launch "$1" "$_con") </dev/null >"$SCRATCH/$1.out" 2>&1 &
	_pid=$!
	_t=0
	_area=0
	_peak=0
	_low=100000
	_last=0
	while kill -0 "$_pid" 2>/dev/null && [ $_t -lt 600 ]; do
		_r=$(rss_mib "$_pid") # 0 while the launching shell has not exec'd yet
		echo "@@csv $1 $_t $_r"
		_area=$((_area + _r))
		[ "$_r" -le "$_peak" ] || _peak=$_r
		[ $_t -lt 5 ] || [ "$_r" -ge "$_low" ] || _low=$_r
		_last=$_r
		sleep 1
		_t=$((_t + 1))
	done
	kill "$_pid" 2>/dev/null
	wait "$_pid" 2>/dev/null
	_ok=no
	grep -q '^@@alloc-ok' "$_con" && _ok=yes
	echo "$_area $_peak $_low $_last $_ok $_t"
}

# vmm runs with the default huge pages (as QEMU, whose guest RAM gets transparent huge pages);
# vmm-4k with --hugepages off, the default before this round.
configs="vmm vmm-4k"
[ -z "$QEMU" ] || [ ! -x "$QEMU" ] || configs="vmm vmm-4k qemu"
for c in $configs; do
	log "running $c"
	run "$c" | tee "$SCRATCH/$c.run" | grep '^@@csv'
	tail -n1 "$SCRATCH/$c.run" >"$SCRATCH/$c.sum"
done
echo
echo "autoballoon: RSS of the VMM process, sampled every second (512 MiB guest: fill 300 MiB, free, idle 45 s, allocate 350 MiB)"
printf '  %-9s %12s %9s %9s %9s %11s %8s\n' config "area MiB*s" "peak MiB" "low MiB" "end MiB" "late alloc" "seconds"
for c in $configs; do
	read -r a p l e ok t <"$SCRATCH/$c.sum"
	printf '  %-9s %12s %9s %9s %9s %11s %8s\n' "$c" "$a" "$p" "$l" "$e" "$ok" "$t"
done
if [ -f "$SCRATCH/qemu.sum" ]; then
	read -r av _ <"$SCRATCH/vmm.sum"
	read -r aq _ <"$SCRATCH/qemu.sum"
	for v in vmm vmm-4k; do
		read -r av _ <"$SCRATCH/$v.sum"
		ratio=$(awk -v a="$av" -v b="$aq" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
		echo "  ratio $v / qemu area: ${ratio}x (goal <= 0.5x: $(awk -v r="$ratio" 'BEGIN { print (r + 0 <= 0.5 && r != "-") ? "met" : "NOT met" }'))"
	done
fi
# The floor: the area under the guest's own use (MemTotal - MemFree, sampled each second by the
# job) in the QEMU run, where no balloon takes memory. No VMM can hold less than what the guest
# uses without compressing live data, so floor / QEMU area is the best ratio any reclaim policy
# can reach on this workload (the VMM's own process memory comes on top).
if [ -f "$SCRATCH/qemu.sum" ]; then
	read -r aq _ <"$SCRATCH/qemu.sum"
	awk -v aq="$aq" '/^@@used [0-9]+/ { a += $2; n++ }
		END { printf "  floor: the guest'"'"'s own use in the QEMU run (MemTotal - MemFree, %d samples): %d MiB*s = %.2fx the QEMU area (the best ratio any policy can reach here)\n", n, a, (aq > 0 ? a / aq : 0) }' \
		"$SCRATCH/qemu.console"
fi
grep -q yes "$SCRATCH/vmm.sum" || fail "the late allocation failed under vmm --auto-balloon"
