#!/bin/sh
# bench/slowdown scenario (issue 15): what the memory autopilot costs a busy guest. Two copies of
# the same 512 MiB guest (same kernel, initramfs, command) run side by side, one without the
# policy ("off") and one with --auto-balloon on ("on"). Each runs memhash (guest-kernel-config/
# initramfs/tools/memhash.c: map 200 MiB, 4 passes that read, hash and rewrite every word, timed
# from CLOCK_MONOTONIC inside the guest) RUNS times, each run started by a line on the guest's
# stdin (through the virtio console) after IDLE seconds in which neither guest runs memhash.
# The idle gap is what makes the test hard for the policy: while the guest idles, the memory the
# last run freed is above the band, and a policy that ballooned it (down to about 20% of RAM
# available) made each run start by needing memory the balloon holds. ROUNDS boots of the guests.
# SLOWDOWN_MODE=alternate (the default, and the goal's figure): run i goes to one guest, then to
# the other once it finished (off first in odd runs, on first in even ones, so that a drift in
# the machine's load cancels out), so each run has the test host's CPU to itself, as the same
# program would with the policy off. SLOWDOWN_MODE=together: run i starts in both guests at the
# same moment; they share the test host's single vCPU, so every stall of the "on" guest (waiting
# for a deflate) gives the "off" guest more CPU and the slowdown errs high: a stress figure.
# A third guest, "aa", runs without the policy too (an A/A control, SLOWDOWN_AA=0 leaves it
# out): the median of its per-run ratios aa/off is what the test host's noise alone makes of two
# identical guests, printed beside the slowdown so that a figure within it is read as such.
# The order of the guests rotates from run to run (off on aa, on aa off, aa off on).
# Prints every run as "@@run CONFIG ROUND I ELAPSED_MS FIRST_PASS_MS", then the median time
# of each guest, the median of the per-run ratios on/off (and aa/off), the slowdown in percent
# (goal: < 3%), and the CPU time each VMM's own threads (all but its vCPU threads) used in the
# round: what the policy's reads and timers cost the host, free of the run-to-run noise.
# Environment: SLOWDOWN_MODE (alternate), SLOWDOWN_ROUNDS (6), SLOWDOWN_AA (1), SLOWDOWN_RUNS (runs per boot, 4), SLOWDOWN_IDLE (s, 12),
# SLOWDOWN_MIB (200), SLOWDOWN_PASSES (4), SLOWDOWN_VMM_ARGS (extra options for the "on" guest,
# e.g. policy settings to compare), SLOWDOWN_EVENTS (non-empty: print every memory.policy event,
# with the test host's uptime, next to the runs' spans "ROUND I GO_S DONE_S").
# timeout: 1500
# shellcheck source=/dev/null
. "${TESTLIB:-$(dirname "$0")/../../tests/lib/scenario.sh}"
need_vmm
need_kvm

mem=512
mode=${SLOWDOWN_MODE:-alternate}
case $mode in alternate | together) ;; *) fail "SLOWDOWN_MODE must be alternate or together, not '$mode'" ;; esac
rounds=${SLOWDOWN_ROUNDS:-6}
configs="off on"
[ "${SLOWDOWN_AA:-1}" = 0 ] || configs="off on aa"
runs=${SLOWDOWN_RUNS:-4}
idle=${SLOWDOWN_IDLE:-12}
mib=${SLOWDOWN_MIB:-200}
passes=${SLOWDOWN_PASSES:-4}
gcmd="echo @@up; i=0; while [ \$i -lt $runs ]; do read -r go || exit 4
memhash --mib $mib --passes $passes || exit 3; i=\$((i + 1)); done; echo @@end; sleep 3600"

# start CONFIG ROUND FD: one guest in the background, its stdin a FIFO this shell holds open on
# FD (7, 8 or 9); sets $pid_CONFIG.
start() {
	mkfifo "$SCRATCH/$1-$2.in"
	eval "exec $3<>\"\$SCRATCH/$1-$2.in\""
	: >"$SCRATCH/$1-$2.console"
	# shellcheck disable=SC2086 # SLOWDOWN_VMM_ARGS is a list of options
	if [ "$1" != on ]; then set -- "$1" "$2"; else set -- "$1" "$2" --auto-balloon on ${SLOWDOWN_VMM_ARGS:-}; fi
	_c=$1 _r=$2
	shift 2
	"$VMM" run --mem "${mem}M" "$@" --control "$SCRATCH/$_c-$_r.sock" -- sh -c "$gcmd" \
		<"$SCRATCH/$_c-$_r.in" >"$SCRATCH/$_c-$_r.console" 2>"$SCRATCH/$_c-$_r.err" &
	eval "pid_$_c=\$!"
}

# runs_done CONFIG ROUND N: the guest printed at least N memhash lines.
runs_done() {
	[ "$(grep -c '^memhash: ' "$SCRATCH/$1-$2.console")" -ge "$3" ]
}

# wait_run CONFIG ROUND I: wait until run I of that guest finished, polled once a second
# (wait_until's 0.1 s would take test host CPU from the guests).
wait_run() {
	_w=0
	while ! runs_done "$1" "$2" "$3" && [ $_w -lt 900 ]; do sleep 1; _w=$((_w + 1)); done
	runs_done "$1" "$2" "$3" || { cat "$SCRATCH/$1-$2.console" "$SCRATCH/$1-$2.err" >&2; fail "$1 round $2: run $3 did not finish"; }
}

# own_cpu_ms PID: the CPU time (ms) the VMM's threads other than its vCPU threads (the main
# loop, the uffd and reclaim workers) used so far.
own_cpu_ms() {
	echo $(($(host_cpu_ns "$1") / 1000000))
}

# finish CONFIG ROUND: print the guest's state and its @@run lines, stop it.
finish() {
	_p=0
	eval "_p=\$pid_$1"
	if "$VMM" ctl -s "$SCRATCH/$1-$2.sock" memory >"$SCRATCH/$1-$2.mem" 2>/dev/null; then
		grep -E '^(balloon\.(target_mib|actual_mib|inflated_pages|deflated_pages)|policy\.(inflates|deflates|last_why)) ' \
			"$SCRATCH/$1-$2.mem" | tr -s ' ' | tr '\n' ' ' | sed "s/^/  $1 round $2 at the end: /"
		echo
	fi
	kill "$_p" 2>/dev/null
	wait "$_p" 2>/dev/null
	_i=0
	tr -d '\r' <"$SCRATCH/$1-$2.console" |
		sed -n 's/^memhash: .*elapsed_ms=\([0-9]*\) first_pass_ms=\([0-9]*\).*/\1 \2/p' |
		while read -r e f; do
			_i=$((_i + 1))
			echo "@@run $1 $2 $_i $e $f"
		done | tee -a "$SCRATCH/runs"
}

: >"$SCRATCH/runs"
: >"$SCRATCH/spans"
r=1
while [ $r -le "$rounds" ]; do
	if [ "$mode" = together ]; then
		log "round $r: guests $configs side by side, $runs x (all idle $idle s, then memhash --mib $mib --passes $passes in all at once)"
	else
		log "round $r: guests $configs, $runs x (all idle $idle s, then memhash --mib $mib --passes $passes in one guest after the other)"
	fi
	start off "$r" 7
	start on "$r" 8
	case $configs in *aa) start aa "$r" 9 ;; esac
	for c in $configs; do
		wait_for '^@@up' "$SCRATCH/$c-$r.console" 180 || { cat "$SCRATCH/$c-$r.err" >&2; fail "$c round $r: no boot"; }
		eval "cpu0_$c=\$(own_cpu_ms \"\$pid_$c\")"
	done
	t0=$(cut -d' ' -f1 /proc/uptime)
	# the policy's decisions, each with the test host's uptime (s) in front
	"$VMM" ctl -s "$SCRATCH/on-$r.sock" events memory.policy </dev/null 2>/dev/null |
		awk '{ getline u <"/proc/uptime"; close("/proc/uptime"); split(u, a, " "); print a[1], $0; fflush() }' \
			>"$SCRATCH/on-$r.events" &
	evpid=$!
	i=1
	while [ $i -le "$runs" ]; do
		sleep "$idle"
		if [ "$mode" = together ]; then
			echo go >&7
			echo go >&8
			case $configs in *aa) echo go >&9 ;; esac
			go=$(cut -d' ' -f1 /proc/uptime)
			for c in $configs; do wait_run "$c" "$r" "$i"; done
			echo "$r $i $go $(cut -d' ' -f1 /proc/uptime)" >>"$SCRATCH/spans"
		else
			# rotate the order: off on aa, on aa off, aa off on (off on, on off without aa)
			# shellcheck disable=SC2086 # a list of words
			set -- $configs
			_k=$(((r + i) % $#))
			while [ "$_k" -gt 0 ]; do
				_f=$1
				shift
				set -- "$@" "$_f"
				_k=$((_k - 1))
			done
			for c in "$@"; do
				case $c in off) echo go >&7 ;; on) echo go >&8 ;; aa) echo go >&9 ;; esac
				go=$(cut -d' ' -f1 /proc/uptime)
				wait_run "$c" "$r" "$i"
				[ "$c" != on ] || echo "$r $i $go $(cut -d' ' -f1 /proc/uptime)" >>"$SCRATCH/spans"
			done
		fi
		i=$((i + 1))
	done
	kill "$evpid" 2>/dev/null
	go_s=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%d", b - a }')
	# what the policy did during each run (from the go to the poll that saw it done)
	awk -v r="$r" 'FNR == NR { if ($1 == r) { g[$2] = $3; d[$2] = $4; n = $2 } next }
		{ for (i = 1; i <= n; i++) if ($1 >= g[i] && $1 <= d[i]) {
			if ($0 ~ /"action":"inflate"/) inf[i]++
			if ($0 ~ /"action":"deflate"/) def[i]++ } }
		END { for (i = 1; i <= n; i++) printf "  on round %d run %d: %.0f s, policy inflates %d, deflates %d during it\n", r, i, d[i] - g[i], inf[i], def[i] }' \
		"$SCRATCH/spans" "$SCRATCH/on-$r.events"
	if [ -n "${SLOWDOWN_EVENTS:-}" ]; then
		sed "s/^/  round $r span: /" "$SCRATCH/spans"
		sed "s/^/  on round $r event: /" "$SCRATCH/on-$r.events"
	fi
	for c in $configs; do
		_c0=0
		eval "_p=\$pid_$c _c0=\$cpu0_$c"
		echo "@@cpu $c $r $(($(own_cpu_ms "$_p") - _c0)) $go_s" | tee -a "$SCRATCH/cpu"
	done
	for c in $configs; do finish "$c" "$r"; done
	exec 7>&- 8>&- 9>&-
	r=$((r + 1))
done

# median CONFIG COLUMN: the median of a column of the @@run lines (5: elapsed, 6: first pass).
median() {
	awk -v c="$1" -v k="$2" '$2 == c { print $k }' "$SCRATCH/runs" | sort -n |
		awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
want=$((rounds * runs))
for c in $configs; do
	n=$(grep -c "^@@run $c " "$SCRATCH/runs")
	[ "$n" = "$want" ] || fail "expected $want runs of $c, got $n"
done
# ratio CONFIG: the median of the ratios CONFIG/off of each pair of runs (same round, same index:
# side by side, or one right after the other).
ratio() {
	awk -v c="$1" '{ t[$2, $3, $4] = $5 } END { for (k in t) { split(k, a, SUBSEP); if (a[1] == c && t["off", a[2], a[3]] > 0) print t[k] / t["off", a[2], a[3]] } }' \
		"$SCRATCH/runs" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
pct() { awk -v r="$1" 'BEGIN { printf "%.1f", 100 * (r - 1) }'; }
echo
if [ "$mode" = together ]; then how="side by side (SLOWDOWN_MODE=together)"; else how="one run at a time (SLOWDOWN_MODE=alternate)"; fi
echo "slowdown: memhash ($mib MiB, $passes passes, each after $idle s idle) in $mem MiB guests ($configs), $how, $want runs each"
printf '  %-34s %10s %14s %15s %20s\n' "" "median ms" "first pass ms" "vs off (ratios)" "VMM threads CPU ms/s"
for c in $configs; do
	case $c in off) what="off: policy off" ;; on) what="on: --auto-balloon on" ;; aa) what="aa: policy off (A/A control)" ;; esac
	vs=-
	[ "$c" = off ] || vs="$(pct "$(ratio "$c")")%"
	# the VMM's own threads' CPU per second of the rounds' run phases (boot excluded)
	cpu=$(awk -v c="$c" '$2 == c { ms += $4; s += $5 } END { printf "%.1f", (s > 0 ? ms / s : 0) }' "$SCRATCH/cpu")
	printf '  %-34s %10s %14s %15s %20s\n' "$what" "$(median "$c" 5)" "$(median "$c" 6)" "$vs" "$cpu"
done
echo "  all runs (ms): $(for c in $configs; do printf '%s ' "$c"; awk -v c="$c" '$2 == c { printf "%s ", $5 }' "$SCRATCH/runs"; done)"
pctr=$(pct "$(ratio on)")
noise=
case $configs in *aa) noise="; the A/A control aa/off: $(pct "$(ratio aa)")% (what noise alone gives here)" ;; esac
echo "  slowdown (median of the per-run ratios on/off) ${pctr}% (goal < 3%: $(awk -v p="$pctr" 'BEGIN { print (p < 3) ? "met" : "NOT met" }'))$noise"
