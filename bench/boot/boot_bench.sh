#!/bin/sh
# bench/boot scenario: boot time (launch to the guest's /init marker) and VMM memory overhead,
# ours against QEMU (-M microvm and -M pc, -enable-kvm), same kernel, initramfs and command line,
# measured in the same run on the same host. Run by bench/boot/run.sh (inside the nested test host
# unless /dev/kvm boots Linux here).
#
# Boot time: BOOT_BENCH_RUNS (default 5) launches per configuration, interleaved, each timed from
# just before the launch to the console line "vmm-guest: init" (the guest /init's first line,
# vmm.verbose=1), read off /proc/uptime by the process reading the console (10 ms resolution).
# The guest's init prints its own clock ("vmm-guest: clock S", /proc/uptime at /init); the guest
# then prints it once more from its command and stops the VM (vmm: exit port; QEMU: isa-debug-exit on the same port); launch to the
# VMM process's exit is timed too.
# Exit counts: one more launch of each of vmm, vmm-4k and qemu-microvm, counted by KVM itself
# (the vCPU's binary stats: vmm --debug exit-stats; QEMU: QMP query-stats at the same point),
# and for vmm the exits to userspace by reason and port (exit-stats lines).
# Overhead: one more launch per configuration that stays up; once the guest has run its
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

VMM_OPTS='' QEMU_OPTS='' # extra options of the exit-count launches
# launch CONFIG CMD: exec CONFIG (call it in a subshell: a pipeline or &), stdout = console.
# shellcheck disable=SC2086 # VMM_OPTS/QEMU_OPTS: options, split on purpose
launch() {
	_cl=$(guest_cmdline "$2")
	case "$1" in
	vmm) exec "$VMM" run $VMM_OPTS --mem "${mem_mib}M" --cmdline "$base" -- sh -c "$2" ;;
	vmm-4k) exec "$VMM" run $VMM_OPTS --hugepages off --mem "${mem_mib}M" --cmdline "$base" \
		-- sh -c "$2" ;;
	vmm-pvh) exec "$VMM" run --mem "${mem_mib}M" --kernel "$pvh" --initrd "$rd" --cmdline "$base" \
		-- sh -c "$2" ;;
	qemu-microvm | qemu-microvm-pvh)
		_kern=$k
		[ "$1" = qemu-microvm ] || _kern=$pvh
		exec "$QEMU" -M microvm,x-option-roms=off,isa-serial=on,rtc=on -enable-kvm -cpu host \
			-m "$mem_mib" -smp 1 -nodefaults -no-user-config -display none -no-reboot \
			-bios "$microvm_bios" -serial stdio $QEMU_OPTS \
			-device isa-debug-exit,iobase=0x501,iosize=1 \
			-kernel "$_kern" -initrd "$rd" -append "$_cl" ;;
	kvmtool)
		exec "$LKVM" run -k "$k" -i "$rd" -m "$mem_mib" -c 1 --console serial \
			-p "$_cl" ;;
	qemu-pc)
		exec "$QEMU" -M pc -enable-kvm -cpu host -m "$mem_mib" -smp 1 -nodefaults \
			-no-user-config -display none -no-reboot -serial stdio \
			-device isa-debug-exit,iobase=0x501,iosize=1 \
			-kernel "$k" -initrd "$rd" -append "$_cl" ;;
	esac
}

# vmm: huge pages (the default, as QEMU backs guest RAM with MADV_HUGEPAGE); vmm-4k: --hugepages off.
configs="vmm vmm-4k vmm-pvh"
[ $have_qemu = 0 ] || configs="$configs qemu-microvm qemu-microvm-pvh qemu-pc"
[ $have_qemu = 0 ] || [ -n "$microvm_bios" ] || {
	log "no qboot.rom / bios-microvm.bin: skipping -M microvm"
	configs="vmm vmm-4k vmm-pvh qemu-pc"
}
LKVM=$(command -v lkvm || command -v kvmtool || true)
[ -z "$LKVM" ] || configs="$configs kvmtool"
# BOOT_BENCH_CONFIGS: only these configurations (e.g. "vmm vmm-4k qemu-microvm" for more runs).
[ -z "${BOOT_BENCH_CONFIGS:-}" ] || configs=$BOOT_BENCH_CONFIGS

# What the guest runs: its own clock (seconds since its kernel's clock started) as one line.
# shellcheck disable=SC2016 # expanded by the guest's shell
guest_clock_cmd='echo guest-clock $(cut -d" " -f1 /proc/uptime)'

# boot_once CONFIG: print the ms from launch to the /init marker, the guest's clock at its
# command in ms and the ms from launch to the VMM's exit ("fail" when the marker never came, "-"
# for a clock not seen).
boot_once() {
	_t0=$(now_ms)
	_r=$(launch "$1" "$guest_clock_cmd" </dev/null 2>"$SCRATCH/$1.err" |
		timeout 120 awk -v t0="$_t0" -v copy="$SCRATCH/$1.console" '
			!done && /vmm-guest: init/ {
				getline u < "/proc/uptime"; close("/proc/uptime")
				split(u, f, " "); init = int(f[1] * 1000 - t0); done = 1
			}
			/vmm-guest: clock [0-9.]+/ { sub(/.*vmm-guest: clock /, ""); clock = int($1 * 1000) }
			{ print >>copy }
			END { if (!done) print "fail"; else print init, (clock == "" ? "-" : clock) }')
	[ "$_r" = fail ] && echo fail || echo "$_r $(($(now_ms) - _t0))"
}

median() { # numbers on stdin
	sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

log "boot time: $runs runs per configuration ($configs), interleaved"
i=1
while [ $i -le "$runs" ]; do
	for c in $configs; do
		t=$(boot_once "$c")
		# shellcheck disable=SC2086 # three figures, split on purpose
		set -- $t
		echo "$1" >>"$SCRATCH/$c.times"
		case ${2:--} in [0-9]*) echo "$2" >>"$SCRATCH/$c.clock" ;; esac
		[ -z "${3:-}" ] || echo "$3" >>"$SCRATCH/$c.exit"
		log "run $i $c: $1 ms to /init, guest clock ${2:--} ms, ${3:--} ms to exit"
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

# exits CONFIG: one more boot to the guest's command, KVM's vCPU counters as "kvm NAME VALUE"
# lines in $SCRATCH/CONFIG.kvm (vmm: --debug exit-stats, whose other lines go to CONFIG.exits;
# QEMU: QMP query-stats over a pipe once the guest printed its clock).
exits() {
	case $1 in
	vmm*)
		VMM_OPTS="--debug exit-stats"
		(launch "$1" "$guest_clock_cmd") </dev/null >/dev/null 2>"$SCRATCH/$1.exits"
		VMM_OPTS=''
		sed -n 's/^exit-stats: vcpu 0 kvm /kvm /p' "$SCRATCH/$1.exits" >"$SCRATCH/$1.kvm"
		;;
	qemu-microvm)
		rm -f "$SCRATCH"/qmp.*
		mkfifo "$SCRATCH/qmp.in" "$SCRATCH/qmp.out"
		QEMU_OPTS="-chardev pipe,id=qmp,path=$SCRATCH/qmp -mon chardev=qmp,mode=control"
		(launch "$1" "$guest_clock_cmd; echo bench-stats; sleep 60") </dev/null \
			>"$SCRATCH/$1.exits" 2>&1 &
		_pid=$!
		QEMU_OPTS=''
		if wait_for '^bench-stats' "$SCRATCH/$1.exits" 120; then
			printf '%s\n' '{"execute":"qmp_capabilities"}' \
				'{"execute":"query-stats","arguments":{"target":"vcpu","providers":[{"provider":"kvm"}]}}' \
				>"$SCRATCH/qmp.in"
			timeout 5 cat "$SCRATCH/qmp.out" >"$SCRATCH/qmp.reply" 2>/dev/null
		fi
		kill "$_pid" 2>/dev/null
		wait "$_pid" 2>/dev/null
		tr '{' '\n' <"$SCRATCH/qmp.reply" 2>/dev/null |
			sed -n 's/.*"name": "\([a-z_0-9]*\)", "value": \([0-9]*\)}.*/kvm \1 \2/p' >"$SCRATCH/$1.kvm"
		;;
	esac
}
exit_configs="vmm vmm-4k"
[ $have_qemu = 0 ] || [ -z "$microvm_bios" ] || exit_configs="$exit_configs qemu-microvm"
for c in $exit_configs; do
	exits "$c"
	log "exit counts $c: $(awk '$2 == "exits" { print $3 }' "$SCRATCH/$c.kvm") KVM exits"
done

for c in $configs; do
	case $c in *-pvh) continue ;; esac
	# shellcheck disable=SC2046 # three numbers, split on purpose
	set -- $(overhead "$c")
	echo "$*" >"$SCRATCH/$c.overhead"
	log "overhead $c: VmRSS ${1:-?} KiB, guest RAM Rss ${2:-?} KiB, VMM ${3:-?} KiB"
done

echo
echo "boot: launch to the guest's /init marker and the guest's own clock at /init (its kernel's"
echo "  boot), medians of $runs runs ($TEST_MODE; the same kernel, initramfs and command line"
echo "  \"$base\"; ${mem_mib} MiB, 1 vCPU); outside = launch to /init minus the guest's clock:"
echo "  the VMM's start, firmware, kernel load and decompression; to exit: launch to the VMM's exit"
med() { grep -v fail "$SCRATCH/$1.times" 2>/dev/null | median; } # CONFIG: ms to /init
clk() { median <"$SCRATCH/$1.clock" 2>/dev/null || echo -; }      # CONFIG: guest clock ms
ext() { median <"$SCRATCH/$1.exit" 2>/dev/null || echo -; }       # CONFIG: ms to exit
printf '  %-18s %9s %9s %9s %9s   %s\n' configuration "to /init" "guest" "outside" "to exit" \
	"runs (ms to /init)"
for c in $configs; do
	_t=$(med "$c")
	_g=$(clk "$c")
	_o=-
	[ "$_t" = - ] || [ "$_g" = - ] || _o=$((_t - _g))
	printf '  %-18s %9s %9s %9s %9s   %s\n' "$c" "$_t" "$_g" "$_o" "$(ext "$c")" \
		"$(tr '\n' ' ' <"$SCRATCH/$c.times")"
done
ratio() { # A B: A/B with two decimals
	awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'
}
vm=$(med vmm)
g_vmm=$(clk vmm)
for q in qemu-microvm qemu-pc kvmtool; do
	[ -f "$SCRATCH/$q.times" ] || continue
	qt=$(med "$q")
	qg=$(clk "$q")
	echo "  ratio vmm / $q: $(ratio "$vm" "$qt")x to /init, $(ratio "$g_vmm" "$qg")x guest clock," \
		"$(ratio "$(ext vmm)" "$(ext "$q")")x to exit;" \
		"vmm-4k / $q: $(ratio "$(med vmm-4k)" "$qt")x"
done
[ ! -f "$SCRATCH/qemu-microvm-pvh.times" ] ||
	echo "  ratio vmm-pvh / qemu-microvm-pvh (vmlinux): $(ratio "$(med vmm-pvh)" "$(med qemu-microvm-pvh)")x"

echo
echo "exits of one boot to the guest's command, counted by KVM (vCPU binary stats)"
printf '  %-22s' counter
for c in $exit_configs; do printf ' %12s' "$c"; done
echo
for n in exits io_exits mmio_exits halt_exits irq_exits irq_window_exits insn_emulation pf_taken \
	pf_fixed host_state_reload; do
	printf '  %-22s' "$n"
	for c in $exit_configs; do
		printf ' %12s' "$(awk -v n="$n" '$2 == n { v = $3 } END { print v != "" ? v : NR ? 0 : "-" }' \
			"$SCRATCH/$c.kvm" 2>/dev/null)"
	done
	echo
done
for c in vmm vmm-4k; do
	[ -f "$SCRATCH/$c.exits" ] || continue
	echo "  $c exits to userspace: $(sed -n 's/^exit-stats: vcpu 0 userspace-exits \([0-9]*\) handling-us \([0-9]*\)/\1 (\2 us handling them)/p' "$SCRATCH/$c.exits");" \
		"by reason: $(sed -n 's/^exit-stats: vcpu 0 reason //p' "$SCRATCH/$c.exits" | tr '\n' ' ')"
done
if [ -f "$SCRATCH/vmm.exits" ]; then
	echo "  vmm busiest ports (in/out): $(sed -n 's/^exit-stats: vcpu 0 port \(0x[0-9a-f]*\) in \([0-9]*\) out \([0-9]*\)/\1 \2\/\3,/p' "$SCRATCH/vmm.exits" | head -8 | tr '\n' ' ')"
	echo "  vmm busiest MMIO (read/write): $(sed -n 's/^exit-stats: vcpu 0 mmio \(0x[0-9a-f]*\) read \([0-9]*\) write \([0-9]*\)/\1 \2\/\3,/p' "$SCRATCH/vmm.exits" | head -4 | tr '\n' ' ')"
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
	qm=$(med qemu-microvm)
	g_qemu_microvm=$(clk qemu-microvm)
	for v in "vmm:$vm" "vmm-4k:$(med vmm-4k)"; do
		if [ "$qm" != - ] && [ "${v#*:}" != - ] && [ "$((2 * ${v#*:}))" -le "$qm" ]; then
			echo "goal: boot <= 0.5x QEMU microvm: met by ${v%%:*} (${v#*:} ms vs $qm ms)"
		else
			echo "goal: boot <= 0.5x QEMU microvm: NOT met by ${v%%:*} (${v#*:} ms vs $qm ms," \
				"ratio $(ratio "${v#*:}" "$qm"))"
		fi
	done
	# What holds it back: the guest's own boot. 0.5x needs vmm's launch to /init at qm/2; what
	# vmm spends outside the guest's clock leaves the guest that much minus it.
	if [ "$qm" != - ] && [ "$vm" != - ] && [ "$g_vmm" != - ] && [ "$g_qemu_microvm" != - ] &&
		[ "$((2 * vm))" -gt "$qm" ]; then
		echo "  held back by the guest's own boot: its clock reads $g_vmm ms under vmm and" \
			"$g_qemu_microvm ms under microvm (the same kernel; under vmm it also probes the PCI bus and" \
			"its virtio devices, microvm has none); vmm spends $((vm - g_vmm)) ms" \
			"outside it, microvm $((qm - g_qemu_microvm)) ms. 0.5x needs /init by $((qm / 2)) ms," \
			"a guest boot of $((qm / 2 - (vm - g_vmm))) ms: $(ratio "$((qm / 2 - (vm - g_vmm)))" "$g_vmm")x" \
			"of what the kernel takes now"
	fi
fi
read -r r g o <"$SCRATCH/vmm.overhead"
if [ "$r" != fail ] && [ "$o" -lt 3072 ]; then
	echo "goal: VMM overhead under 3 MiB: met ($o KiB)"
else
	echo "goal: VMM overhead under 3 MiB: NOT met (${o:-?} KiB)"
fi
