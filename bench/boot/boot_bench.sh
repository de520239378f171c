#!/bin/sh
# bench/boot scenario: boot time (launch to the guest's /init marker) and VMM memory overhead,
# ours against QEMU (-M microvm and -M pc, -enable-kvm), same kernel, initramfs and command line,
# measured in the same run on the same host. Run by bench/boot/run.sh (inside the nested test host
# unless /dev/kvm boots Linux here).
#
# Boot time: BOOT_BENCH_RUNS (default 5) launches per configuration, interleaved, each timed from
# just before the launch to the console line "vmm-guest: init" (the guest /init's first line,
# vmm.verbose=1), read off /proc/uptime by the process reading the console (10 ms resolution).
# The guest then runs `true` and stops the VM (vmm: exit port; QEMU: isa-debug-exit on the same
# port). Overhead: one more launch per configuration that stays up; once the guest has run its
# command, the process's Rss minus the Rss of its guest RAM mapping, from /proc/PID/smaps (the
# mapping of the guest's size), so what is left is the VMM's own code, heap, stacks and devices.
# needs: qemu
# timeout: 900
. "${TESTLIB:-$(dirname "$0")/../../tests/lib/scenario.sh}"
need_vmm
need_kvm

runs=${BOOT_BENCH_RUNS:-5}
mem_mib=256
k=$GUEST_DIR/bzImage
pvh=$GUEST_DIR/vmlinux
rd=$GUEST_DIR/initramfs.cpio.gz
# The command line a user of their own kernel passes (issue 14): no tsc=reliable/no_timer_check,
# so the VMM, not the command line, must let the guest skip its timer calibration and checks.
# BOOT_BENCH_CMDLINE replaces it (vmm.verbose=1 is always added: it prints the /init marker).
base="${BOOT_BENCH_CMDLINE:-console=ttyS0 quiet} vmm.verbose=1"
# What vmm run adds to --cmdline for `-- CMD` with stdin not a terminal; QEMU gets the same line.
guest_cmdline() { # CMD
	echo "$base quiet vmm.cmd=$(b64 "$1") vmm.tty=0"
}

have_qemu=0
if [ -n "$QEMU" ] && [ -x "$QEMU" ]; then
	have_qemu=1
else
	log "no QEMU here ($TEST_MODE mode): measuring vmm only"
fi
microvm_bios=
for f in /usr/share/qemu/qboot.rom /usr/share/qemu/bios-microvm.bin; do
	[ -r "$f" ] && { microvm_bios=$f; break; }
done

# launch CONFIG CMD: exec CONFIG (call it in a subshell: a pipeline or &), stdout = console.
launch() {
	_cl=$(guest_cmdline "$2")
	case "$1" in
	vmm) exec "$VMM" run --mem "${mem_mib}M" --cmdline "$base" -- sh -c "$2" ;;
	vmm-huge) exec "$VMM" run --hugepages on --mem "${mem_mib}M" --cmdline "$base" -- sh -c "$2" ;;
	vmm-pvh) exec "$VMM" run --mem "${mem_mib}M" --kernel "$pvh" --initrd "$rd" --cmdline "$base" \
		-- sh -c "$2" ;;
	qemu-microvm | qemu-microvm-pvh)
		_kern=$k
		[ "$1" = qemu-microvm ] || _kern=$pvh
		exec "$QEMU" -M microvm,x-option-roms=off,isa-serial=on,rtc=on -enable-kvm -cpu host \
			-m "$mem_mib" -smp 1 -nodefaults -no-user-config -display none -no-reboot \
			-bios "$microvm_bios" -serial stdio \
			-device isa-debug-exit,iobase=0x501,iosize=1 \
			-kernel "$_kern" -initrd "$rd" -append "$_cl" ;;
	qemu-pc)
		exec "$QEMU" -M pc -enable-kvm -cpu host -m "$mem_mib" -smp 1 -nodefaults \
			-no-user-config -display none -no-reboot -serial stdio \
			-device isa-debug-exit,iobase=0x501,iosize=1 \
			-kernel "$k" -initrd "$rd" -append "$_cl" ;;
	esac
}

# vmm-huge: --hugepages on (QEMU backs guest RAM with MADV_HUGEPAGE by default; vmm does not).
configs="vmm vmm-huge vmm-pvh"
[ $have_qemu = 0 ] || configs="$configs qemu-microvm qemu-microvm-pvh qemu-pc"
[ $have_qemu = 0 ] || [ -n "$microvm_bios" ] || {
	log "no qboot.rom / bios-microvm.bin: skipping -M microvm"
	configs="vmm vmm-huge vmm-pvh qemu-pc"
}

# boot_once CONFIG: print the ms from launch to the /init marker (or "fail").
boot_once() {
	_t0=$(now_ms)
	launch "$1" true </dev/null 2>"$SCRATCH/$1.err" |
		timeout 120 awk -v t0="$_t0" -v copy="$SCRATCH/$1.console" '
			!done && /vmm-guest: init/ {
				getline u < "/proc/uptime"; close("/proc/uptime")
				split(u, f, " "); printf "%d\n", f[1] * 1000 - t0; done = 1
			}
			{ print >>copy }
			END { if (!done) print "fail" }'
}

median() { # numbers on stdin
	sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

log "boot time: $runs runs per configuration ($configs), interleaved"
i=1
while [ $i -le "$runs" ]; do
	for c in $configs; do
		t=$(boot_once "$c")
		echo "$t" >>"$SCRATCH/$c.times"
		log "run $i $c: ${t} ms"
		if [ "$t" = fail ]; then
			log "$c did not reach the /init marker; its console and stderr:"
			tail -n 15 "$SCRATCH/$c.console" 2>/dev/null
			cat "$SCRATCH/$c.err"
		fi
	done
	i=$((i + 1))
done

# overhead CONFIG: VmRSS, guest RAM Rss, overhead (KiB) of a running guest.
overhead() {
	launch "$1" 'echo bench-ready; sleep 60' </dev/null >"$SCRATCH/$1.ovh" 2>&1 &
	_pid=$!
	if ! wait_for "^bench-ready" "$SCRATCH/$1.ovh" 120; then
		kill "$_pid" 2>/dev/null
		wait "$_pid" 2>/dev/null
		echo "fail"
		return
	fi
	sleep 2
	_rss=$(rss_kib "$_pid")
	_guest=$(awk -v lo=$((mem_mib * 1024)) -v hi=$((mem_mib * 1024 + 4096)) '
		/^Size:/ { size = $2 } /^Rss:/ { if (size >= lo && size <= hi) sum += $2 }
		END { print sum + 0 }' "/proc/$_pid/smaps")
	kill "$_pid" 2>/dev/null
	wait "$_pid" 2>/dev/null
	echo "$_rss $_guest $((_rss - _guest))"
}

for c in $configs; do
	case $c in *-pvh) continue ;; esac
	# shellcheck disable=SC2046 # three numbers, split on purpose
	set -- $(overhead "$c")
	echo "$*" >"$SCRATCH/$c.overhead"
	log "overhead $c: VmRSS ${1:-?} KiB, guest RAM Rss ${2:-?} KiB, VMM ${3:-?} KiB"
done

echo
echo "boot: launch to the guest's /init marker, median of $runs runs ($TEST_MODE; the same kernel," \
	"initramfs and command line \"$base\"; ${mem_mib} MiB, 1 vCPU)"
printf '  %-18s %10s   %s\n' configuration "median ms" "runs (ms)"
for c in $configs; do
	printf '  %-18s %10s   %s\n' "$c" "$(grep -v fail "$SCRATCH/$c.times" | median)" \
		"$(tr '\n' ' ' <"$SCRATCH/$c.times")"
done
ratio() { # A B: A/B with two decimals
	awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'
}
vm=$(grep -v fail "$SCRATCH/vmm.times" | median)
vp=$(grep -v fail "$SCRATCH/vmm-pvh.times" | median)
if [ $have_qemu = 1 ]; then
	vh=$(grep -v fail "$SCRATCH/vmm-huge.times" | median)
	for q in qemu-microvm qemu-pc; do
		[ -f "$SCRATCH/$q.times" ] || continue
		qt=$(grep -v fail "$SCRATCH/$q.times" | median)
		echo "  ratio $q / vmm (bzImage): $(ratio "$qt" "$vm")x; $q / vmm-huge: $(ratio "$qt" "$vh")x"
	done
	[ ! -f "$SCRATCH/qemu-microvm-pvh.times" ] ||
		echo "  ratio qemu-microvm-pvh / vmm-pvh (vmlinux): $(ratio "$(grep -v fail "$SCRATCH/qemu-microvm-pvh.times" | median)" "$vp")x"
fi
echo
echo "memory overhead: process VmRSS minus its guest RAM mapping's Rss (smaps), guest idle after boot"
printf '  %-18s %10s %14s %12s\n' configuration "VmRSS KiB" "guest RAM KiB" "overhead"
for c in $configs; do
	[ -f "$SCRATCH/$c.overhead" ] || continue
	read -r r g o <"$SCRATCH/$c.overhead"
	[ "$r" != fail ] || { printf '  %-18s %s\n' "$c" "failed to boot"; continue; }
	printf '  %-18s %10s %14s %8s KiB (%s MiB)\n' "$c" "$r" "$g" "$o" \
		"$(awk -v o="$o" 'BEGIN { printf "%.1f", o / 1024 }')"
done

# Verdicts on the goals (reported; the bench fails only if vmm itself did not boot).
[ "$vm" != - ] || fail "vmm did not boot"
if [ $have_qemu = 1 ] && [ -f "$SCRATCH/qemu-microvm.times" ]; then
	qm=$(grep -v fail "$SCRATCH/qemu-microvm.times" | median)
	for v in "vmm:$vm" "vmm-huge:$vh"; do
		if [ "$qm" != - ] && [ "${v#*:}" != - ] && [ "$((2 * ${v#*:}))" -le "$qm" ]; then
			echo "goal: boot <= 0.5x QEMU microvm: met by ${v%%:*} (${v#*:} ms vs $qm ms)"
		else
			echo "goal: boot <= 0.5x QEMU microvm: NOT met by ${v%%:*} (${v#*:} ms vs $qm ms," \
				"ratio $(ratio "${v#*:}" "$qm"))"
		fi
	done
fi
read -r r g o <"$SCRATCH/vmm.overhead"
if [ "$r" != fail ] && [ "$o" -lt 3072 ]; then
	echo "goal: VMM overhead under 3 MiB: met ($o KiB)"
else
	echo "goal: VMM overhead under 3 MiB: NOT met (${o:-?} KiB)"
fi
