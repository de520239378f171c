#!/bin/sh
# --hugepages: guest RAM is 2 MiB-aligned either way; by default (and with --hugepages on) it is
# MADV_HUGEPAGE and the guest's touched memory is backed by huge pages (AnonHugePages of the guest
# RAM mapping in /proc/PID/smaps); with --hugepages off, and by default with --mem-limit (the
# compressed tier's 4 KiB discards would only split huge pages), it is MADV_NOHUGEPAGE and no
# transparent huge page backs it. The default guest's free page reporting order follows: order 7
# (512 KiB) on 4 KiB host pages, 9 (2 MiB) with huge pages.
# Skipped where the host has no THP.
# cost: 18
# timeout: 180
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm
[ -r /sys/kernel/mm/transparent_hugepage/enabled ] || skip "no transparent huge pages on this host"
grep -q '\[never\]' /sys/kernel/mm/transparent_hugepage/enabled && skip "THP is set to never here"

# guest_thp NAME [OPTIONS]: AnonHugePages (KiB) and VmFlags of the 256 MiB guest RAM mapping of a
# running guest that has touched 64 MiB, started with OPTIONS; into $SCRATCH/NAME.thp.
guest_thp() {
	_n=$1
	shift
	"$VMM" run "$@" -- sh -c \
		'memfill -m 64 -p text -w >/dev/null 2>&1 & sleep 3; echo thp-ready; sleep 60' \
		</dev/null >"$SCRATCH/$_n.out" 2>"$SCRATCH/$_n.err" &
	_pid=$!
	if ! wait_for '^thp-ready' "$SCRATCH/$_n.out" 120; then
		kill "$_pid"
		cat "$SCRATCH/$_n.err"
		fail "$_n ($*): the guest did not come up"
	fi
	awk -v lo=$((256 * 1024)) -v hi=$((256 * 1024 + 4096)) '
		/^[0-9a-f]+-[0-9a-f]+ / { start = $1 }
		/^Size:/ { size = $2 }
		/^AnonHugePages:/ { if (size >= lo && size <= hi) huge = $2 }
		/^VmFlags:/ { if (size >= lo && size <= hi) { flags = $0; at = start } }
		END { print huge + 0, at; print flags }' "/proc/$_pid/smaps" >"$SCRATCH/$_n.thp"
	kill "$_pid" 2>/dev/null
	wait "$_pid" 2>/dev/null
	sed "s/^/    $_n: /" "$SCRATCH/$_n.thp"
}

guest_thp default
read -r huge_def range_def <"$SCRATCH/default.thp"
grep -q ' hg' "$SCRATCH/default.thp" || fail "guest RAM is not MADV_HUGEPAGE by default"
[ "$huge_def" -ge 32768 ] || fail "only $huge_def KiB of guest RAM in huge pages by default"
guest_thp off --hugepages off
read -r huge_off range_off <"$SCRATCH/off.thp"
assert_eq 0 "$huge_off" "AnonHugePages (KiB) of guest RAM with --hugepages off"
grep -q ' nh' "$SCRATCH/off.thp" || fail "guest RAM is not MADV_NOHUGEPAGE with --hugepages off"
guest_thp limit --mem-limit 200M
grep -q ' nh' "$SCRATCH/limit.thp" || fail "guest RAM is not MADV_NOHUGEPAGE with --mem-limit"
guest_thp limit-on --mem-limit 200M --hugepages on
grep -q ' hg' "$SCRATCH/limit-on.thp" || fail "--hugepages on does not win over --mem-limit"
for r in "$range_off" "$range_def"; do
	[ $((0x${r%%-*} % 2097152)) = 0 ] || fail "guest RAM mapping $r is not 2 MiB-aligned"
done
order() { # OPTIONS: the guest's page_reporting_order
	run_with_timeout 60 "$VMM" run "$@" -- \
		cat /sys/module/page_reporting/parameters/page_reporting_order </dev/null 2>&1 | tr -d '\r'
}
assert_eq 7 "$(order --hugepages off)" "free page reporting order on 4 KiB host pages"
assert_eq 9 "$(order)" "free page reporting order with huge pages (the default)"
log "ok: default $huge_def KiB in huge pages, --hugepages off 0 KiB, off with --mem-limit; reporting orders 7 and 9"
