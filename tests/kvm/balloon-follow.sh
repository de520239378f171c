#!/bin/sh
# balloon-follow: the firmware driver tracks num_pages (config generation + ISR) while the host
# moves the target through the control socket: take 64 MiB (host RSS must drop), then give it
# back; the firmware exits 0 once the balloon went up and came back to empty.
# firmware: balloon
# timeout: 60
# shellcheck source=/dev/null
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_kvm
sock=$SCRATCH/ctl.sock
out=$SCRATCH/balloon.out
args="mode=follow follow-timeout=45 touch-mib=72"
log "vmm run --firmware balloon.elf --mem 128 --control ... --cmdline '$args'"
"$VMM" run --firmware "$FW_DIR/balloon.elf" --mem 128 --console stdio --control "$sock" \
	--cmdline "$args" </dev/null >"$out" 2>"$SCRATCH/balloon.err" &
pid=$!
show() { sed 's/^/    | /' "$out"; sed 's/^/    ! /' "$SCRATCH/balloon.err"; }
stop() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; show; }
wait_for "args '" "$out" 20 || { stop; fail "the firmware did not start"; }
if ! fw_args_supported balloon "$args"; then
	stop
	skip "this vmm does not pass --cmdline to firmware (vmm/main.c), so follow mode cannot be selected"
fi
wait_for '^balloon: following num_pages' "$out" 20 || { stop; fail "follow mode did not start"; }
before=$(rss_mib "$pid")
log "vmm RSS before inflating: $before MiB"
run_with_timeout 40 "$VMM" ctl -s "$sock" balloon set 64 --wait --timeout 30 ||
	{ stop; fail "balloon set 64 --wait failed"; }
"$VMM" ctl -s "$sock" balloon get
after=$(rss_mib "$pid")
log "vmm RSS with a 64 MiB balloon: $after MiB"
[ $((before - after)) -ge 48 ] || { stop; fail "host RSS dropped by $((before - after)) MiB, expected >= 48"; }
# No --wait: the firmware ends the VM as soon as the balloon is empty again.
run_with_timeout 20 "$VMM" ctl -s "$sock" balloon set 0 || { stop; fail "balloon set 0 failed"; }
wait_until 30 sh -c "! kill -0 $pid 2>/dev/null" || { stop; fail "the firmware did not deflate and exit"; }
wait "$pid"
rc=$?
show
[ $rc = 0 ] || fail "vmm exit status $rc"
assert_line "$out" "balloon: PASS" "balloon console"
