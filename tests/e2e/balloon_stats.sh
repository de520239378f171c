#!/bin/sh
# virtio-balloon statistics (VIRTIO_BALLOON_F_STATS_VQ, virtio 1.2 §5.5.6.3) with the real Linux
# driver: `vmm ctl balloon stats` must report free, available and total memory within 10% of
# what the guest's /proc/meminfo says (printed into the console right after a marker), and the
# fault and swap counters must be there.
# timeout: 150
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

# The first free page reporting pass after boot holds free pages off the free lists while they are
# reported (MemFree then reads up to ~half of RAM low): meminfo is read once it has settled.
# shellcheck disable=SC2016 # expanded by the guest's shell
gcmd='sleep 4; echo "@@meminfo"
cat /proc/meminfo
echo "@@meminfo-end"
sleep 600'

log "vmm run --mem 256M (default balloon options: stats on)"
bg_vmm_start "$gcmd" --mem 256M
wait_for '^@@meminfo-end' "$con" 120 || { dump; fail "the guest did not print /proc/meminfo"; }

ctl balloon stats || fail "vmm ctl balloon stats failed"
ctl --json balloon stats >"$SCRATCH/stats.json" || fail "vmm ctl --json balloon stats failed"
cat "$SCRATCH/stats.json"
grep -q '"fresh":true' "$SCRATCH/stats.json" || fail "balloon.stats did not get a fresh set from the guest"
[ "$(jnum seq <"$SCRATCH/stats.json")" -ge 1 ] || fail "balloon.stats: no set received (seq 0)"

# meminfo KEY: the guest's /proc/meminfo value in bytes.
meminfo() {
	tr -d '\r' <"$con" | sed -n '/^@@meminfo$/,/^@@meminfo-end$/p' |
		awk -v k="$1:" '$1 == k { printf "%d\n", $2 * 1024; exit }'
}
# within10 WHAT DEVICE_BYTES GUEST_BYTES
within10() {
	{ [ -n "$2" ] && [ -n "$3" ]; } || fail "$1: missing value (stats '$2', meminfo '$3')"
	d=$(($2 - $3))
	[ $d -ge 0 ] || d=$((-d))
	log "$1: balloon.stats $(($2 / 1024)) KiB, /proc/meminfo $(($3 / 1024)) KiB" \
		"(off by $((d * 1000 / $3 / 10)).$((d * 1000 / $3 % 10))%)"
	[ $((d * 10)) -le "$3" ] || fail "$1: balloon.stats $2 is not within 10% of /proc/meminfo $3"
}
within10 free "$(jnum free_bytes <"$SCRATCH/stats.json")" "$(meminfo MemFree)"
within10 available "$(jnum available_bytes <"$SCRATCH/stats.json")" "$(meminfo MemAvailable)"
within10 total "$(jnum total_bytes <"$SCRATCH/stats.json")" "$(meminfo MemTotal)"
# The fault and swap counters (the auto-balloon's pressure signal) come only from a guest kernel
# with CONFIG_VM_EVENT_COUNTERS; a guest that ran programs has taken minor faults.
grep -q '"major_faults":' "$SCRATCH/stats.json" || fail "balloon.stats has no major_faults (guest kernel without VM event counters?)"
grep -q '"swap_in_bytes":' "$SCRATCH/stats.json" || fail "balloon.stats has no swap_in_bytes"
[ "$(jnum minor_faults <"$SCRATCH/stats.json")" -gt 0 ] 2>/dev/null || fail "balloon.stats: no minor faults counted"

bg_vmm_shutdown --timeout 10s
log "ok: balloon stats match the guest's /proc/meminfo within 10%"
