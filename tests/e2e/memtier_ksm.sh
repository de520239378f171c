#!/bin/sh
# memtier_ksm: KSM merging of guest RAM. Two guests booted from the same kernel and initramfs in
# one host, with KSM running (fast scan settings for the test, the old ones restored afterwards):
# memory.stats of each shows merged pages (ksm.merging_pages > 0) and the host-wide KSM state.
# cost: 8
# timeout: 420
# shellcheck source=/dev/null
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm
need_kvm

ksm=/sys/kernel/mm/ksm
[ -w $ksm/run ] || skip "KSM is not available on this host ($ksm/run not writable)"
old_run=$(cat $ksm/run) old_scan=$(cat $ksm/pages_to_scan) old_sleep=$(cat $ksm/sleep_millisecs)
pids=
restore() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	echo "$old_scan" >$ksm/pages_to_scan
	echo "$old_sleep" >$ksm/sleep_millisecs
	# 2 unmerges everything when KSM was off before.
	[ "$old_run" = 1 ] || echo 2 >$ksm/run
	echo "$old_run" >$ksm/run
	log "KSM settings restored: run=$(cat $ksm/run) pages_to_scan=$(cat $ksm/pages_to_scan) sleep_millisecs=$(cat $ksm/sleep_millisecs)"
}
trap restore EXIT
echo 5000 >$ksm/pages_to_scan
echo 20 >$ksm/sleep_millisecs
echo 1 >$ksm/run
log "KSM on: pages_to_scan=5000 sleep_millisecs=20 (were run=$old_run $old_scan $old_sleep)"

for n in 1 2; do
	log "guest $n: vmm run --mem 192M --control ... -- sh -c 'echo KSM-GUEST-UP; sleep 600'"
	"$VMM" run --mem 192M --control "$SCRATCH/ctl$n.sock" -- sh -c 'echo KSM-GUEST-UP; sleep 600' \
		</dev/null >"$SCRATCH/guest$n.out" 2>"$SCRATCH/guest$n.err" &
	pids="$pids $!"
done
field() { awk -v k="$2" '$1 == k { print $2; exit }' "$1"; }
# At least 2 MiB each: far more than either guest merges with itself (a few zero-filled pages);
# the shared kernel and initramfs pages are what both guests have in common.
min=${KSM_MIN_PAGES:-512}
merged() { # N: guest N reports at least $min merged pages
	"$VMM" ctl -s "$SCRATCH/ctl$1.sock" memory >"$SCRATCH/mem$1.txt" 2>/dev/null || return 1
	[ "$(field "$SCRATCH/mem$1.txt" ksm.merging_pages)" -ge "$min" ] 2>/dev/null
}
for n in 1 2; do
	wait_for KSM-GUEST-UP "$SCRATCH/guest$n.out" 120 || { cat "$SCRATCH"/guest*.err; fail "guest $n did not boot"; }
done
log "both guests booted; waiting for KSM to merge"
t0=$(now_ms)
wait_until 300 merged 1 || { cat "$SCRATCH"/guest*.err "$SCRATCH/mem1.txt"; fail "guest 1 shows fewer than $min merged pages"; }
wait_until 120 merged 2 || { cat "$SCRATCH"/guest*.err "$SCRATCH/mem2.txt"; fail "guest 2 shows fewer than $min merged pages"; }
log "both guests show >= $min merged pages after $(($(now_ms) - t0)) ms"
for n in 1 2; do
	grep -E '^ksm\.' "$SCRATCH/mem$n.txt" | sed "s/^/    guest $n: /"
	assert_eq true "$(field "$SCRATCH/mem$n.txt" ksm.mergeable)" "guest $n ksm.mergeable"
	assert_eq 1 "$(field "$SCRATCH/mem$n.txt" ksm.run)" "guest $n ksm.run"
	assert_eq 5000 "$(field "$SCRATCH/mem$n.txt" ksm.pages_to_scan)" "guest $n ksm.pages_to_scan"
done
log "host: pages_shared=$(cat $ksm/pages_shared) pages_sharing=$(cat $ksm/pages_sharing)"
log "ok"
