#!/bin/sh
# memtier_corrupt: integrity of the compressed tier. With the debug option
# --debug corrupt-store=0x1000000 the VMM flips a byte of the first page it compresses at or
# above 16 MiB (memtouch's text pages, which it keeps reading); the next fault-in of that page must
# stop the VM (exit status 1) with the checksum error, and the guest (memtouch, verifying its pages
# continuously) must never see wrong data.
# firmware: memtouch
# timeout: 240
# shellcheck source=/dev/null
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_kvm
sock=$SCRATCH/ctl.sock
out=$SCRATCH/memtouch.out
err=$SCRATCH/memtouch.err
log "vmm run --debug corrupt-store=0x1000000 --firmware memtouch.elf --mem 128 --cmdline 'mib=32 passes=1 hold=150'"
"$VMM" run --debug corrupt-store=0x1000000 --firmware "$FW_DIR/memtouch.elf" --mem 128 --console stdio \
	--control "$sock" --cmdline "mib=32 passes=1 hold=150" </dev/null >"$out" 2>"$err" &
pid=$!
show() { sed 's/^/    | /' "$out"; sed 's/^/    ! /' "$err"; }
wait_for '^memtouch: verify 1' "$out" 120 || { kill "$pid"; wait "$pid"; show; fail "memtouch did not fill"; }
# The reply may not arrive: the guest can hit the corrupted page before it is sent. Retry in case
# no page at or above 16 MiB was compressed (all hot or incompressible in that round).
for i in 1 2 3 4 5; do
	kill -0 "$pid" 2>/dev/null || break
	run_with_timeout 120 "$VMM" ctl -s "$sock" memory reclaim 0 --timeout 60s || true
	wait_until 20 sh -c "! kill -0 $pid 2>/dev/null" && break
done
wait_until 120 sh -c "! kill -0 $pid 2>/dev/null" || { kill "$pid"; wait "$pid"; show; fail "the VM did not stop"; }
wait "$pid"
rc=$?
show
assert_eq 1 "$rc" "vmm exit status after a corrupted fault-in"
grep -q 'test hook: flipped byte' "$err" || fail "the test hook did not run"
grep -q 'failed its integrity check (checksum mismatch' "$err" || fail "no checksum error in the vmm messages"
if grep -q ' [1-9][0-9]* bad pages' "$out"; then
	fail "the guest saw wrong data"
fi
if grep -q '^memtouch: PASS' "$out"; then
	fail "memtouch finished: the corrupted page was never faulted in"
fi
log "ok"
