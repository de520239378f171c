#!/bin/sh
# bench/console scenario: the time a job printing CONSOLE_BENCH_MIB MiB (default 3: seq output,
# deterministic) takes through `vmm run -- CMD`, from launch to exit, for
#   vmm          virtio-console ports (the default without a terminal)
#   vmm-16550    our 16550 UART (--vconsole off): one port exit per byte
#   qemu-16550   QEMU -M pc with -serial stdio, the same kernel, initramfs and command line
# plus each configuration running `true` (boot and exit only), so "output time" = job - true.
# Each output is checked byte-exact (sha256) for vmm; a run longer than CONSOLE_BENCH_TIMEOUT
# seconds (default 900) is stopped and reported as a lower bound (">"), with the rate at which
# its bytes were arriving.
# Prints the times and the ratios; goal: vmm >= 10x faster than vmm-16550.
# needs: qemu
# timeout: 3000
. "${TESTLIB:-$(dirname "$0")/../../tests/lib/scenario.sh}"
need_vmm
need_kvm

mib=${CONSOLE_BENCH_MIB:-3}
limit=${CONSOLE_BENCH_TIMEOUT:-900}
mem_mib=256
bytes=$((mib * 1048576))
job="seq 1 $((mib * 170000)) | head -c $bytes"
sh -c "$job" >"$SCRATCH/expected"
want=$(sha256sum <"$SCRATCH/expected" | cut -d' ' -f1)
[ "$(wc -c <"$SCRATCH/expected")" = "$bytes" ] || fail "the job prints $(wc -c <"$SCRATCH/expected") bytes, not $bytes"

have_qemu=0
if [ -n "$QEMU" ] && [ -x "$QEMU" ]; then
	have_qemu=1
else
	log "no QEMU here ($TEST_MODE mode): measuring vmm only"
fi
configs="vmm vmm-16550"
[ $have_qemu = 0 ] || configs="$configs qemu-16550"

# launch CONFIG CMD: exec CONFIG with the guest command CMD; stdout = the job's output.
launch() {
	case "$1" in
	vmm) exec "$VMM" run --mem "${mem_mib}M" -- sh -c "$2" ;;
	vmm-16550) exec "$VMM" run --vconsole off --mem "${mem_mib}M" -- sh -c "$2" ;;
	qemu-16550)
		# What vmm run puts on the command line for -- CMD without a terminal.
		exec "$QEMU" -M pc -enable-kvm -cpu host -m "$mem_mib" -smp 1 -nodefaults \
			-no-user-config -display none -no-reboot -serial stdio \
			-device isa-debug-exit,iobase=0x501,iosize=1 \
			-kernel "$GUEST_DIR/bzImage" -initrd "$GUEST_DIR/initramfs.cpio.gz" \
			-append "console=ttyS0 reboot=k panic=-1 tsc=reliable no_timer_check quiet vmm.cmd=$(b64 "$2") vmm.tty=0" ;;
	esac
}

# run_once CONFIG CMD OUT: print the ms from launch to exit, or ">LIMIT_MS" when it was stopped
# (run_with_timeout: the deadline is in seconds of the clock, not of a polling loop).
run_once() {
	_t0=$(now_ms)
	run_with_timeout "$limit" launch "$1" "$2" </dev/null >"$3" 2>"$3.err"
	_rc=$?
	_t1=$(now_ms)
	if [ $_rc = 124 ]; then
		echo ">$((limit * 1000))"
	else
		echo $((_t1 - _t0))
	fi
}

ms() { echo "${1#>}"; }

for c in $configs; do
	t=$(run_once "$c" true "$SCRATCH/$c.true")
	echo "$t" >"$SCRATCH/$c.boot"
	log "$c: boot and exit (true): $t ms"
done
for c in $configs; do
	log "$c: the $mib MiB job..."
	t=$(run_once "$c" "$job" "$SCRATCH/$c.out")
	echo "$t" >"$SCRATCH/$c.job"
	got=$(sha256sum <"$SCRATCH/$c.out" | cut -d' ' -f1)
	exact=no
	[ "$got" = "$want" ] && exact=yes
	echo "$exact" >"$SCRATCH/$c.exact"
	log "$c: $t ms, $(wc -c <"$SCRATCH/$c.out") bytes out, byte-exact: $exact"
	[ "$exact" = yes ] || tail -c 300 "$SCRATCH/$c.out.err"
done

ratio() { # A B: A/B with one decimal, ">" when A is a lower bound
	_p=
	case $1 in '>'*) _p='>' ;; esac
	awk -v a="$(ms "$1")" -v b="$(ms "$2")" -v p="$_p" \
		'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%s%.1f", p, a / b; else print "-" }'
}
sub() { # JOB BOOT: output time, keeps a ">"
	_p=
	case $1 in '>'*) _p='>' ;; esac
	echo "$_p$(($(ms "$1") - $(ms "$2")))"
}

echo
echo "console: a job printing $mib MiB ($bytes bytes) through vmm run -- CMD ($TEST_MODE, ${mem_mib} MiB, 1 vCPU)"
printf '  %-12s %12s %12s %14s %10s %s\n' configuration "job ms" "true ms" "output ms" "KiB/s" "byte-exact"
for c in $configs; do
	j=$(cat "$SCRATCH/$c.job")
	b=$(cat "$SCRATCH/$c.boot")
	o=$(sub "$j" "$b")
	# A run that was stopped counts the bytes it got by then (its rate, not the job's).
	n=$(wc -c <"$SCRATCH/$c.out")
	rate=$(awk -v o="$(ms "$o")" -v n="$n" 'BEGIN { if (o > 0) printf "%.0f", n / 1024 / (o / 1000); else print "-" }')
	echo "$rate" >"$SCRATCH/$c.rate"
	echo "$o" >"$SCRATCH/$c.output"
	printf '  %-12s %12s %12s %14s %10s %s\n' "$c" "$j" "$b" "$o" "$rate" "$(cat "$SCRATCH/$c.exact")"
done
for c in $configs; do
	case $(cat "$SCRATCH/$c.job") in
	'>'*) echo "  $c stopped after ${limit} s; at its $(cat "$SCRATCH/$c.rate") KiB/s the job's output would take $(awk -v r="$(cat "$SCRATCH/$c.rate")" -v n="$bytes" 'BEGIN { if (r > 0) printf "%.0f", n / 1024 / r; else print "?" }') s" ;;
	esac
done
v=$(cat "$SCRATCH/vmm.job")
vo=$(cat "$SCRATCH/vmm.output")
for c in vmm-16550 qemu-16550; do
	[ -f "$SCRATCH/$c.job" ] || continue
	echo "  ratio $c / vmm: job $(ratio "$(cat "$SCRATCH/$c.job")" "$v")x, output $(ratio "$(cat "$SCRATCH/$c.output")" "$vo")x"
done
[ "$(cat "$SCRATCH/vmm.exact")" = yes ] || fail "vmm's output was not byte-exact"
r=$(ratio "$(cat "$SCRATCH/vmm-16550.job")" "$v")
if awk -v r="${r#>}" 'BEGIN { exit !(r >= 10) }'; then
	echo "goal: the $mib MiB job >= 10x faster than through our 16550: met (${r}x)"
else
	echo "goal: the $mib MiB job >= 10x faster than through our 16550: NOT met (${r}x)"
fi
