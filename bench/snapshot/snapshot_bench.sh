#!/bin/sh
# bench/snapshot scenario (issue 14), in one run on one host: ours and QEMU (-M microvm,
# -enable-kvm, the same kernel, initramfs and command line), each running the same job, a loop
# printing "tick N" on the serial console every 0.2 s.
#   - snapshot: ours `vmm ctl snapshot create DIR --stop`, QEMU QMP migrate to a file (it pauses the guest at the end)
#     (qmp_migrate); the time, and the file's apparent and allocated size.
#   - restore to first guest output: launch to the first "tick" line of the restored guest
#     (ours `vmm run --restore DIR`, QEMU `-incoming "exec:cat FILE"`), against our own cold boot
#     of the same job (launch to its first tick), SNAPSHOT_BENCH_RUNS (3) runs each, median.
#   - the CI fast path: `vmm run --restore IDLE -- true` (a snapshot of --await-command) against
#     a cold `vmm run -- true`, launch to exit.
#   - clones: 3 restores of one snapshot running at once: the sum of their Pss against the Rss of
#     the one guest they were snapshotted from.
# needs: qemu
# timeout: 1200
. "${TESTLIB:-$(dirname "$0")/../../tests/lib/scenario.sh}"
need_vmm
need_kvm
: "${BENCH_BIN:?BENCH_BIN (qmp_migrate) not set: run bench/snapshot/run.sh}"

runs=${SNAPSHOT_BENCH_RUNS:-3}
mem_mib=256
k=$GUEST_DIR/bzImage
rd=$GUEST_DIR/initramfs.cpio.gz
base="console=ttyS0 quiet"
# shellcheck disable=SC2016 # expanded by the guest's shell
job='i=0; while :; do echo "tick $i"; i=$((i + 1)); sleep 0.2; done'
qemu_cmdline="$base quiet vmm.cmd=$(b64 "$job") vmm.tty=0"
microvm_bios=
for f in /usr/share/qemu/qboot.rom /usr/share/qemu/bios-microvm.bin; do
	[ -r "$f" ] && { microvm_bios=$f; break; }
done
have_qemu=0
[ -n "$QEMU" ] && [ -x "$QEMU" ] && [ -n "$microvm_bios" ] && have_qemu=1
[ $have_qemu = 1 ] || log "no QEMU microvm here: measuring vmm only"

qemu() { # ARGS...: QEMU microvm with the job's kernel, initramfs and command line
	exec "$QEMU" -M microvm,x-option-roms=off,isa-serial=on,rtc=on -enable-kvm -cpu host \
		-m "$mem_mib" -smp 1 -nodefaults -no-user-config -display none -no-reboot \
		-bios "$microvm_bios" -kernel "$k" -initrd "$rd" -append "$qemu_cmdline" "$@"
}

qemu_sh() { qemu "$@"; } # a command name for time_first_tick (qemu execs)

# first_tick T0 COPY: read the console on stdin, print ms from T0 (now_ms) to the first line
# starting with "tick" (or "fail" at EOF / after 120 s), copy it all to COPY.
first_tick() {
	_ft=$(timeout 120 awk -v t0="$1" -v copy="$2" '
		!done && /^tick/ {
			getline u < "/proc/uptime"; close("/proc/uptime")
			split(u, f, " "); printf "%d\n", f[1] * 1000 - t0; done = 1; exit
		}
		{ print >>copy }
		END { if (!done) print "fail" }')
	echo "${_ft:-fail}"
}

# time_first_tick COPY CMD...: launch CMD (its output through a fifo), print the ms to its first
# "tick" line (first_tick), then kill it: the job ticks forever.
time_first_tick() {
	_copy=$1
	shift
	rm -f "$SCRATCH/tick.fifo"
	mkfifo "$SCRATCH/tick.fifo"
	_t0=$(now_ms)
	"$@" </dev/null >"$SCRATCH/tick.fifo" 2>>"$SCRATCH/launch.err" &
	_p=$!
	first_tick "$_t0" "$_copy" <"$SCRATCH/tick.fifo"
	kill -KILL "$_p" 2>/dev/null
	wait "$_p" 2>/dev/null
}

median() {
	grep -v fail | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
alloc_bytes() { echo $(($(du -k "$1" | cut -f1) * 1024)); }

# --- ours: the snapshot of a ticking guest ---------------------------------------------------
sock=$SCRATCH/orig.sock
"$VMM" run --mem "${mem_mib}M" --vconsole off --cmdline "$base" --control "$sock" \
	--console "file:$SCRATCH/orig.con" -- sh -c "$job" </dev/null 2>"$SCRATCH/orig.err" &
orig=$!
wait_for '^tick 5' "$SCRATCH/orig.con" 180 || { cat "$SCRATCH/orig.err"; fail "our guest did not tick"; }
one_rss=$(rss_mib "$orig")
t0=$(now_ms)
"$VMM" ctl -s "$sock" --json snapshot create "$SCRATCH/snap" --stop >"$SCRATCH/snap.json" ||
	fail "snapshot create failed"
snap_ms=$(($(now_ms) - t0))
wait "$orig"
pause_ms=$(jnum pause_ms <"$SCRATCH/snap.json")
vmm_app=$(stat -c %s "$SCRATCH/snap/memory")
vmm_alloc=$(alloc_bytes "$SCRATCH/snap/memory")
state_bytes=$(stat -c %s "$SCRATCH/snap/state")

# --- QEMU: migrate a ticking guest to a file --------------------------------------------------
if [ $have_qemu = 1 ]; then
	(qemu -qmp "unix:$SCRATCH/qmp.sock,server=on,wait=off" -serial "file:$SCRATCH/q.con") \
		</dev/null >/dev/null 2>"$SCRATCH/q.err" &
	qpid=$!
	wait_for '^tick 5' "$SCRATCH/q.con" 180 || { cat "$SCRATCH/q.err"; fail "QEMU's guest did not tick"; }
	t0=$(now_ms)
	"$BENCH_BIN/qmp_migrate" "$SCRATCH/qmp.sock" "$SCRATCH/q.mig" >"$SCRATCH/q.mig.out" ||
		fail "QEMU migrate to a file failed: $(cat "$SCRATCH/q.mig.out")"
	q_snap_ms=$(($(now_ms) - t0))
	wait "$qpid"
	q_app=$(stat -c %s "$SCRATCH/q.mig")
	q_alloc=$(alloc_bytes "$SCRATCH/q.mig")
fi

# --- the CI fast path: an idle guest waiting for its command ---------------------------------
"$VMM" run --await-command --mem "${mem_mib}M" --cmdline "$base" --control "$SCRATCH/idle.sock" \
	--console "file:$SCRATCH/idle.con" </dev/null >/dev/null 2>"$SCRATCH/idle.err" &
idle=$!
wait_for 'awaiting command' "$SCRATCH/idle.con" 180 || { cat "$SCRATCH/idle.err"; fail "idle guest"; }
"$VMM" ctl -s "$SCRATCH/idle.sock" snapshot create "$SCRATCH/idle" --stop >/dev/null ||
	fail "snapshot of the idle guest failed"
wait "$idle"

# --- timings, interleaved ---------------------------------------------------------------------
i=1
while [ "$i" -le "$runs" ]; do
	time_first_tick "$SCRATCH/cold.con" "$VMM" run --mem "${mem_mib}M" --vconsole off \
		--cmdline "$base" -- sh -c "$job" >>"$SCRATCH/cold.times"
	time_first_tick "$SCRATCH/restore.con" "$VMM" run --restore "$SCRATCH/snap" \
		>>"$SCRATCH/restore.times"
	if [ $have_qemu = 1 ]; then
		time_first_tick "$SCRATCH/qi.con" qemu_sh -serial stdio -incoming "exec:cat $SCRATCH/q.mig" \
			>>"$SCRATCH/qemu.times"
	fi
	t0=$(now_ms)
	"$VMM" run --mem "${mem_mib}M" --cmdline "$base" -- true </dev/null >/dev/null 2>&1
	echo $(($(now_ms) - t0)) >>"$SCRATCH/cold_job.times"
	t0=$(now_ms)
	"$VMM" run --restore "$SCRATCH/idle" -- true </dev/null >/dev/null 2>>"$SCRATCH/fast.err"
	rc=$?
	[ "$rc" = 0 ] && echo $(($(now_ms) - t0)) >>"$SCRATCH/fast_job.times"
	[ "$rc" = 0 ] || { echo fail >>"$SCRATCH/fast_job.times"; log "fast path run $i: status $rc"; }
	log "run $i: cold $(tail -n1 "$SCRATCH/cold.times") ms, restore $(tail -n1 "$SCRATCH/restore.times") ms, qemu -incoming $(tail -n1 "$SCRATCH/qemu.times" 2>/dev/null) ms, job cold $(tail -n1 "$SCRATCH/cold_job.times") ms, job from snapshot $(tail -n1 "$SCRATCH/fast_job.times") ms"
	i=$((i + 1))
done

# --- 3 clones at once -------------------------------------------------------------------------
pids=
for n in 1 2 3; do
	"$VMM" run --restore "$SCRATCH/snap" --console "file:$SCRATCH/clone.$n" </dev/null \
		2>"$SCRATCH/clone.$n.err" &
	pids="$pids $!"
done
for n in 1 2 3; do
	wait_for '^tick' "$SCRATCH/clone.$n" 120 || { cat "$SCRATCH/clone.$n.err"; fail "clone $n did not run"; }
done
sleep 2
pss=0
for p in $pids; do pss=$((pss + $(pss_mib "$p"))); done
# shellcheck disable=SC2086 # a list of pids
kill $pids 2>/dev/null
wait

cold=$(median <"$SCRATCH/cold.times")
rest=$(median <"$SCRATCH/restore.times")
qinc=$(median <"$SCRATCH/qemu.times" 2>/dev/null)
cj=$(median <"$SCRATCH/cold_job.times")
fj=$(median <"$SCRATCH/fast_job.times")
echo
echo "snapshot ($TEST_MODE, ${mem_mib} MiB guest, 1 vCPU, a job printing a tick every 0.2 s):"
printf '  %-26s %10s %12s %12s\n' "" "time ms" "file MiB" "allocated"
printf '  %-26s %10s %12s %12s   (guest paused %s ms; state file %s bytes)\n' "vmm snapshot create" \
	"$snap_ms" "$(mib "$vmm_app")" "$(mib "$vmm_alloc")" "$pause_ms" "$state_bytes"
[ $have_qemu = 0 ] || printf '  %-26s %10s %12s %12s\n' "qemu migrate to file" "$q_snap_ms" \
	"$(mib "$q_app")" "$(mib "$q_alloc")"
echo
echo "launch to the first guest output (median of $runs):"
printf '  %-34s %8s ms   runs: %s\n' "vmm cold boot" "$cold" "$(tr '\n' ' ' <"$SCRATCH/cold.times")"
printf '  %-34s %8s ms   runs: %s\n' "vmm --restore" "$rest" "$(tr '\n' ' ' <"$SCRATCH/restore.times")"
[ $have_qemu = 0 ] || printf '  %-34s %8s ms   runs: %s\n' "qemu microvm -incoming from file" "$qinc" \
	"$(tr '\n' ' ' <"$SCRATCH/qemu.times")"
echo "  restore / our cold boot: $(ratio "$rest" "$cold")x; restore / qemu -incoming: $(ratio "$rest" "$qinc")x"
echo
echo "the CI fast path, launch to exit of 'true' (median of $runs):"
printf '  %-34s %8s ms\n' "vmm run -- true (cold boot)" "$cj" "vmm run --restore IDLE -- true" "$fj"
echo "  from the snapshot / cold: $(ratio "$fj" "$cj")x"
echo
echo "3 clones of one snapshot running at once: Pss sum ${pss} MiB; the guest they were taken from: Rss ${one_rss} MiB ($(ratio "$pss" "$one_rss")x)"
echo
[ "$rest" != - ] || fail "no restore reached its first output"
if [ "$cold" != - ] && [ $((rest * 10)) -le "$cold" ]; then
	echo "goal: restore <= 10% of our cold boot: met ($rest vs $cold ms)"
else
	echo "goal: restore <= 10% of our cold boot: NOT met ($rest vs $cold ms, $(ratio "$rest" "$cold")x)"
fi
if [ "$qinc" != - ] && [ -n "$qinc" ]; then
	if [ "$rest" -lt "$qinc" ]; then
		echo "goal: restore ahead of QEMU: met ($rest vs $qinc ms)"
	else
		echo "goal: restore ahead of QEMU: NOT met ($rest vs $qinc ms)"
	fi
fi
if [ $((pss * 2)) -le $((one_rss * 3)) ]; then
	echo "goal: 3 clones <= 1.5x one guest: met (${pss} vs ${one_rss} MiB)"
else
	echo "goal: 3 clones <= 1.5x one guest: NOT met (${pss} vs ${one_rss} MiB, $(ratio "$pss" "$one_rss")x)"
fi
