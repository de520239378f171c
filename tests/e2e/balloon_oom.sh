#!/bin/sh
# Deflate-on-OOM (VIRTIO_BALLOON_F_DEFLATE_ON_OOM) with the real Linux driver: with the balloon
# leaving the guest (256 MiB) only 48 MiB, a guest program allocating 150 MiB must succeed
# without an OOM kill: the driver's OOM notifier gives the balloon back 1 MiB at a time instead.
# The guest starts allocating only on the host's word: the host grows the balloon by 1 MiB once
# it has read back the full 208 MiB, and the guest sees that in /proc/vmstat (balloon_inflate -
# balloon_deflate, in pages). Waiting on MemFree instead raced the inflation: on a slow machine
# the allocation began at 186 MiB, deflate-on-OOM set in and 208 MiB was never reached.
# cost: 10
# timeout: 400
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

# shellcheck disable=SC2016 # expanded by the guest's shell
gcmd='mf() { awk "/^MemFree:/ { print int(\$2 / 1024) }" /proc/meminfo; }
bp() { awk "/^balloon_inflate / { i = \$2 } /^balloon_deflate / { d = \$2 } END { print i - d }" /proc/vmstat; }
grep -q "^balloon_inflate " /proc/vmstat || { echo "@@no-vmstat-balloon"; exit 21; }
echo "@@ready memfree=$(mf)"
n=0; while [ "$(bp)" -lt 53504 ]; do sleep 0.1; n=$((n + 1)); [ $n -lt 1800 ] || { echo "@@timeout balloon=$(bp)"; exit 20; }; done
echo "@@inflated memfree=$(mf) balloon_pages=$(bp)"
memfill -m 150 -p random; rc=$?
echo "@@memfill rc=$rc memfree=$(mf)"
dmesg | grep -i -e "killed process" -e "oom-kill" -e "out of memory" | sed "s/^/@@oom /"
echo "@@done"
sleep 600'

log "vmm run --mem 256M (default balloon options: deflate-on-oom on)"
bg_vmm_start "$gcmd" --mem 256M
wait_for '^@@ready' "$con" 120 || { dump; fail "the guest did not start its command"; }

log "vmm ctl balloon set --guest 48M --wait --timeout 25s (balloon 208 MiB)"
ctl balloon set --guest 48M --wait --timeout 25s || { dump; fail "balloon set --guest 48M --wait failed"; }
ctl --json balloon get >"$SCRATCH/get1.json" || fail "balloon get failed"
cat "$SCRATCH/get1.json"
assert_eq $((208 * 256)) "$(jnum actual_pages <"$SCRATCH/get1.json")" "actual_pages after inflating"
tr -d '\r' <"$con" | grep -q '^@@inflated' && { dump; fail "the guest began allocating before the host's word"; }

log "vmm ctl balloon set --guest 47M (the guest's word to allocate 150 MiB: memfill -m 150)"
ctl balloon set --guest 47M || fail "balloon set --guest 47M failed"
wait_for '^@@done' "$con" 300 || { dump; fail "the guest's 150 MiB allocation did not finish"; }
ctl --json balloon get >"$SCRATCH/get2.json" || fail "balloon get failed"
ctl --json memory >"$SCRATCH/mem.json" || fail "vmm ctl memory failed"
cat "$SCRATCH/get2.json" "$SCRATCH/mem.json"
dump
tr -d '\r' <"$con" | grep -q '^@@oom' && fail "the guest's kernel log shows an OOM kill"
tr -d '\r' <"$con" | grep -q '^memfill: result=ok mib=150 ' || fail "memfill -m 150 did not succeed"
tr -d '\r' <"$con" | grep -q '^@@memfill rc=0 ' || fail "memfill -m 150 exited with an error"
after=$(jnum actual_pages <"$SCRATCH/get2.json")
[ "$after" -lt $((209 * 256)) ] || fail "actual_pages is still $after: the balloon did not deflate on OOM"
log "deflate-on-OOM: actual $((209 * 256)) -> $after pages ($(((209 * 256 - after) / 256)) MiB given back);" \
	"deflated_pages total $(jnum deflated_pages <"$SCRATCH/mem.json")"

bg_vmm_shutdown --timeout 10s
log "ok: 150 MiB allocated with a 209 MiB balloon, no OOM kill"
