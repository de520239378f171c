#!/bin/sh
# bench/console startup: what the virtio-console ports cost a job that prints nothing.
# First one run of the boot, not counted (--vconsole off: the first vmm run of a test host boot
# was slower whatever its configuration). Then STARTUP_BENCH_RUNS rounds (default 5), each
# running `vmm run -- true` with --vconsole on and off (launch to exit, ms), then the same with
# vmm.verbose=1 vmm.stamp=1, whose markers give the guest's uptime at the init's steps: "init"
# (the kernel's boot), "command" -> the job's first instruction (the port probe and vmm-console's
# opens of the ports), and the traced run's ms outside the guest's clock (launch to exit minus
# the guest's uptime at "command done": vmm's setup, the guest's stop, vmm's teardown). Prints
# the medians per configuration. A second binary named vmm-before
# next to vmm (two builds compared in one boot) is measured the same way, interleaved.
# Run: tests/e2e/run.sh bench/console/startup_bench.sh (directly where /dev/kvm boots Linux).
# timeout: 1200
. "${TESTLIB:-$(dirname "$0")/../../tests/lib/scenario.sh}"
need_vmm

runs=${STARTUP_BENCH_RUNS:-5}
base="console=ttyS0 reboot=k panic=-1 tsc=reliable no_timer_check"
dir=$(dirname "$VMM")
bins=vmm
[ -x "$dir/vmm-before" ] && bins="vmm-before vmm"

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }
# up_ms FILE MARKER: the guest's uptime (ms) printed with MARKER in FILE (the first markers
# come before the init turns off the console's CR/LF translation).
up_ms() { tr -d '\r' <"$1" | sed -n "s/^vmm-guest: \[\([0-9.]*\)\] $2\$/\1/p" | awk '{ printf "%d\n", $1 * 1000 }'; }

t0=$(now_ms)
run_with_timeout 120 "$VMM" run --mem 256M --vconsole off -- true </dev/null >/dev/null 2>&1
log "first run of this boot (--vconsole off, not counted): status $?, $(($(now_ms) - t0)) ms"

i=0
while [ $i -lt "$runs" ]; do
	for b in $bins; do
		for v in on off; do
			t0=$(now_ms)
			run_with_timeout 120 "$dir/$b" run --mem 256M --vconsole $v -- true \
				</dev/null >/dev/null 2>"$SCRATCH/err"
			rc=$?
			t=$(($(now_ms) - t0))
			[ $rc = 0 ] || { cat "$SCRATCH/err"; fail "$b run --vconsole $v -- true: status $rc"; }
			echo "$t" >>"$SCRATCH/$b.$v.ms"
			t0=$(now_ms)
			run_with_timeout 120 "$dir/$b" run --mem 256M --vconsole $v --cmdline "$base vmm.verbose=1 vmm.stamp=1" \
				-- sh -c 'read -r up _ </proc/uptime; echo "vmm-guest: [$up] job start"' \
				</dev/null >"$SCRATCH/trace" 2>&1
			tv=$(($(now_ms) - t0))
			init=$(up_ms "$SCRATCH/trace" init)
			cmd=$(up_ms "$SCRATCH/trace" command)
			job=$(up_ms "$SCRATCH/trace" "job start")
			[ -n "$init" ] && [ -n "$cmd" ] && [ -n "$job" ] ||
				{ cat "$SCRATCH/trace"; fail "$b --vconsole $v: markers missing"; }
			echo "$init" >>"$SCRATCH/$b.$v.init"
			done_ms=$(up_ms "$SCRATCH/trace" "command done: status 0")
			echo $((job - cmd)) >>"$SCRATCH/$b.$v.start"
			# Outside the guest's clock: vmm's setup before it, its stop and exit after.
			echo $((tv - ${done_ms:-0})) >>"$SCRATCH/$b.$v.outside"
			log "round $((i + 1)) $b --vconsole $v: $t ms; traced run $tv ms: guest init at $init ms, command -> job $((job - cmd)) ms, done at ${done_ms:--} ms"
		done
	done
	i=$((i + 1))
done

echo
echo "console startup: vmm run -- true, medians of $runs ($TEST_MODE); guest ms from its uptime"
printf '  %-10s %-9s %10s %14s %16s %20s\n' binary vconsole "launch-exit" "guest: init" \
	"command -> job" "traced: outside guest"
for b in $bins; do
	for v in on off; do
		printf '  %-10s %-9s %10s %14s %16s %20s\n' "$b" "$v" "$(median <"$SCRATCH/$b.$v.ms")" \
			"$(median <"$SCRATCH/$b.$v.init")" "$(median <"$SCRATCH/$b.$v.start")" \
			"$(median <"$SCRATCH/$b.$v.outside")"
	done
	echo "  $b: the ports cost $(($(median <"$SCRATCH/$b.on.ms") - $(median <"$SCRATCH/$b.off.ms"))) ms launch to exit"
done
