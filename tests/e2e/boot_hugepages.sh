#!/bin/sh
# --hugepages: guest RAM is 2 MiB-aligned either way; by default it is MADV_NOHUGEPAGE (no
# transparent huge page backs it, so balloon and reclaim discards return memory at once), and with
# --hugepages on it is MADV_HUGEPAGE and the guest's touched memory is backed by huge pages
# (AnonHugePages of the guest RAM mapping in /proc/PID/smaps). The default guest's free page
# reporting order follows: order 7 (512 KiB) on 4 KiB host pages, 9 (2 MiB) with huge pages.
# Skipped where the host has no THP.
# cost: 18
# timeout: 180
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm
[ -r /sys/kernel/mm/transparent_hugepage/enabled ] || skip "no transparent huge pages on this host"
grep -q '\[never\]' /sys/kernel/mm/transparent_hugepage/enabled && skip "THP is set to never here"

# guest_thp FLAG: AnonHugePages (KiB) and VmFlags of the 256 MiB guest RAM mapping of a running
# guest that has touched 64 MiB, started with --hugepages FLAG.
guest_thp() {
	"$VMM" run --hugepages "$1" -- sh -c \
		'memfill -m 64 -p text -w >/dev/null 2>&1 & sleep 3; echo thp-ready; sleep 60' \
		</dev/null >"$SCRATCH/$1.out" 2>"$SCRATCH/$1.err" &
	_pid=$!
	if ! wait_for '^thp-ready' "$SCRATCH/$1.out" 120; then
		kill "$_pid"
		cat "$SCRATCH/$1.err"
		fail "--hugepages $1: the guest did not come up"
	fi
	awk -v lo=$((256 * 1024)) -v hi=$((256 * 1024 + 4096)) '
		/^[0-9a-f]+-[0-9a-f]+ / { start = $1 }
		/^Size:/ { size = $2 }
		/^AnonHugePages:/ { if (size >= lo && size <= hi) huge = $2 }
		/^VmFlags:/ { if (size >= lo && size <= hi) { flags = $0; at = start } }
		END { print huge + 0, at; print flags }' "/proc/$_pid/smaps" >"$SCRATCH/$1.thp"
	kill "$_pid" 2>/dev/null
	wait "$_pid" 2>/dev/null
	sed "s/^/    --hugepages $1: /" "$SCRATCH/$1.thp"
}

guest_thp off
read -r huge_off range_off <"$SCRATCH/off.thp"
assert_eq 0 "$huge_off" "AnonHugePages (KiB) of guest RAM by default"
grep -q ' nh' "$SCRATCH/off.thp" || fail "guest RAM is not MADV_NOHUGEPAGE by default"
guest_thp on
read -r huge_on range_on <"$SCRATCH/on.thp"
grep -q ' hg' "$SCRATCH/on.thp" || fail "guest RAM is not MADV_HUGEPAGE with --hugepages on"
[ "$huge_on" -ge 32768 ] || fail "only $huge_on KiB of guest RAM in huge pages with --hugepages on"
for r in "$range_off" "$range_on"; do
	[ $((0x${r%%-*} % 2097152)) = 0 ] || fail "guest RAM mapping $r is not 2 MiB-aligned"
done
order() { # FLAG: the guest's page_reporting_order
	run_with_timeout 60 "$VMM" run --hugepages "$1" -- \
		cat /sys/module/page_reporting/parameters/page_reporting_order </dev/null 2>&1 | tr -d '\r'
}
assert_eq 7 "$(order off)" "free page reporting order on 4 KiB host pages"
assert_eq 9 "$(order on)" "free page reporting order with --hugepages on"
log "ok: default 0 KiB in huge pages, --hugepages on $huge_on KiB; reporting orders 7 and 9"
