#!/bin/sh
# The memory autopilot (issue 15, README "Memory autopilot"): a 512 MiB guest fills and frees
# 300 MiB, idles, then allocates 350 MiB, with --auto-balloon on and no balloon or memory command
# (only an event subscriber and memory --watch). Two boots:
#   - the defaults (free page reporting on): host RSS must fall by >= 200 MiB during the idle
#     phase, the policy must have left alone memory reporting already returned
#     (policy.returned_skips), and the late allocation must succeed without an OOM kill;
#   - free-page-reporting=off, so only the balloon can return memory: the same RSS fall, the
#     policy must have inflated (memory.policy events, policy.inflates) and deflated when the guest
#     needed its memory back, and the late allocation must succeed without an OOM kill.
# cost: 300
# timeout: 600
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

# shellcheck disable=SC2016 # expanded by the guest's shell
gcmd='mount -t tmpfs -o size=470M tmpfs /mnt || exit 3
dd if=/dev/zero of=/mnt/a bs=1M count=300 2>/dev/null || exit 4
echo @@filled; sleep 2; rm /mnt/a; echo @@freed
sleep 45; echo @@alloc
dd if=/dev/zero of=/mnt/b bs=1M count=350 2>/dev/null && echo @@alloc-ok || echo @@alloc-failed
sleep 5; dmesg | grep -i -E "out of memory|oom-kill|killed process" | head -3; echo @@end; sleep 120'

# run_case NAME VMM-RUN-OPTION...: one boot of the workload; sets peak, low, inflates, deflates,
# skips.
run_case() {
	name=$1
	shift
	ev=$SCRATCH/events-$name.txt
	epid=''
	log "--- $name: vmm run --mem 512M $* --auto-balloon on"
	bg_vmm_start "$gcmd" --mem 512M "$@" --auto-balloon on
	"$VMM" ctl -s "$sock" events memory.policy >"$ev" 2>"$SCRATCH/events.err" &
	epid=$!
	"$VMM" ctl -s "$sock" memory --watch --interval 2s --json >"$SCRATCH/watch-$name.json" \
		2>"$SCRATCH/watch-$name.err" &
	wpid=$!
	# bg_vmm_cleanup looks at the status the scenario ends with, not at kill's
	trap 'rc=$?; kill "$epid" "$wpid" 2>/dev/null; (exit $rc); bg_vmm_cleanup' EXIT

	wait_for '^@@filled' "$con" 240 || { dump; fail "the guest did not fill 300 MiB"; }
	peak=$(rss_mib "$vpid")
	log "filled: host RSS $peak MiB"
	wait_for '^@@freed' "$con" 60 || { dump; fail "the guest did not free its memory"; }
	low=$peak
	t=0
	while [ $t -lt 40 ] && ! grep -q '^@@alloc' "$con"; do
		r=$(rss_mib "$vpid")
		[ "$r" -ge "$low" ] || low=$r
		sleep 1
		t=$((t + 1))
	done
	log "idle: host RSS fell from $peak MiB to $low MiB ($((peak - low)) MiB)"
	inflates=$(grep -c '"action":"inflate"' "$ev")
	log "memory.policy inflate decisions: $inflates; last: $(grep inflate "$ev" | tail -n1)"
	[ $((peak - low)) -ge 200 ] || { dump; fail "$name: host RSS fell by $((peak - low)) MiB (< 200 MiB)"; }

	ctl --json memory >"$SCRATCH/mem-$name.json" || fail "memory.stats failed"
	grep -q '"policy":{"enabled":true' "$SCRATCH/mem-$name.json" || fail "memory.stats shows no enabled policy"
	skips=$(jnum returned_skips <"$SCRATCH/mem-$name.json")
	log "policy.inflates $(jnum inflates <"$SCRATCH/mem-$name.json"), policy.returned_skips $skips"
	wait_for '^@@end' "$con" 240 || { dump; fail "the guest did not finish the late allocation"; }
	grep -q '^@@alloc-ok' "$con" || { dump; fail "the late 350 MiB allocation failed"; }
	if tr -d '\r' <"$con" | sed -n '/^@@alloc-ok/,/^@@end/p' | grep -q -i -E 'out of memory|oom-kill|killed process'; then
		dump
		fail "the guest had an OOM kill"
	fi
	deflates=$(grep -c '"action":"deflate"' "$ev")
	# Every decision shows the host's memory, the 100 ms watch's deflates included.
	! grep '"host_available_mib":0,' "$ev" | head -n1 | grep . ||
		fail "$name: a memory.policy event without the host's available memory"
	log "memory.policy deflate decisions: $deflates; last: $(grep deflate "$ev" | tail -n1)"
	log "policy timeline (time, guest available MiB, major faults, action, new target MiB, why):"
	sed -n 's/^\([0-9:.]*\) memory.policy .*"guest_available_mib":\([0-9]*\).*"major_faults":\([0-9]*\).*"action":"\([a-z]*\)","target_mib":\([0-9]*\).*"why":"\([^"]*\)".*/    \1 \2 \3 \4 \5 \6/p' "$ev"
	kill -INT "$wpid"
	wait "$wpid" || fail "memory --watch did not end cleanly on SIGINT (status $?)"
	nw=$(grep -c '"balloon_target_mib"' "$SCRATCH/watch-$name.json")
	log "memory --watch: $nw lines; first: $(head -n1 "$SCRATCH/watch-$name.json")"
	[ "$nw" -ge 10 ] || fail "memory --watch printed $nw lines"
	bg_vmm_shutdown
	kill "$epid" 2>/dev/null
	# the next boot's console and socket start afresh
	mv "$con" "$SCRATCH/console-$name.txt"
	rm -f "$sock"
	echo "$name: RSS -$((peak - low)) MiB idle, $inflates inflates, $deflates deflates, $skips periods left to reporting"
}

run_case defaults
[ "$skips" -ge 1 ] || fail "defaults: the policy never left alone memory that reporting had returned (policy.returned_skips 0)"
rss_defaults=$((peak - low))
run_case no-reporting --balloon on,free-page-reporting=off
[ "$inflates" -ge 1 ] || fail "no-reporting: the policy never inflated the balloon"
[ "$(jnum inflates <"$SCRATCH/mem-no-reporting.json")" -ge 1 ] || fail "memory.stats: policy.inflates is 0"
[ "$deflates" -ge 1 ] || fail "no-reporting: the policy never deflated when the guest needed memory"
echo "PASS autoballoon (defaults: RSS -$rss_defaults MiB idle; no reporting: RSS -$((peak - low)) MiB, $inflates inflates, $deflates deflates)"
