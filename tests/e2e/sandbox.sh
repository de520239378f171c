#!/bin/sh
# The sandbox on a real VMM with a Linux guest (README "Sandbox"): with the default --seccomp on,
# /proc shows Seccomp 2 and NoNewPrivs 1 for the process and every one of its threads, and the
# guest's work goes through every thread role (balloon inflate/deflate and stats, free page
# reporting, a memory.reclaim through the compressed tier, guest refaults) without a forbidden
# call; then --seccomp-test ROLE proves, for each role, that a forbidden call stops the VMM with
# status 159 and a line naming the role and the call.
# cost: 40
# timeout: 400
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

# The guest dirties 48 MiB, frees it, and keeps reading a file so refaults happen.
# shellcheck disable=SC2016 # expanded by the guest's shell
gcmd='dd if=/dev/urandom of=/tmp/f bs=1M count=48 2>/dev/null; echo @@filled;
while :; do cat /tmp/f >/dev/null; sleep 1; done'
bg_vmm_start "$gcmd" --mem 256M --balloon stats=on,stats-period=1
wait_for '^@@filled' "$con" 180 || { dump; fail "the guest did not fill its memory"; }

log "--- /proc/$vpid: Seccomp and NoNewPrivs, process and threads"
assert_eq 2 "$(awk '/^Seccomp:/ { print $2 }' "/proc/$vpid/status")" "process Seccomp"
assert_eq 1 "$(awk '/^NoNewPrivs:/ { print $2 }' "/proc/$vpid/status")" "process NoNewPrivs"
nthreads=0
for t in /proc/"$vpid"/task/*; do
	nthreads=$((nthreads + 1))
	assert_eq 2 "$(awk '/^Seccomp:/ { print $2 }' "$t/status")" "thread $(cat "$t/comm") Seccomp"
done
log "$nthreads threads, each with a filter"
[ "$nthreads" -ge 4 ] || fail "expected >= 4 threads (loop, vcpu, events, uffd, reclaim), got $nthreads"

log "--- every thread role at work"
ctl balloon set 96 --wait --timeout 60s || fail "balloon inflate to 96 MiB failed"
ctl balloon set 0 --wait --timeout 60s || fail "balloon deflate failed"
ctl balloon stats >/dev/null || fail "balloon stats failed"
ctl memory reclaim 40M --timeout 120s >"$SCRATCH/reclaim.txt" 2>&1 ||
	{ cat "$SCRATCH/reclaim.txt"; fail "memory reclaim failed"; }
sed 's/^/    reclaim: /' "$SCRATCH/reclaim.txt"
ctl memory >/dev/null || fail "memory stats failed"
ctl info >/dev/null || fail "info failed"
sleep 3 # the guest refaults reclaimed pages (userfaultfd thread)
kill -0 "$vpid" 2>/dev/null || { dump; fail "the VMM died under its filters"; }
grep -q seccomp "$SCRATCH/vmm.err" && { dump; fail "a seccomp message with --seccomp on"; }
bg_vmm_shutdown
# The guest's init ends the command with SIGTERM: its status 143 is vmm's (159 would be seccomp).
assert_eq 143 "$bg_rc" "vmm exit status after shutdown"
grep -q seccomp "$SCRATCH/vmm.err" && { dump; fail "a seccomp message during shutdown"; }

log "--- a forbidden call on each role"
for role in loop vcpu events userfaultfd reclaim; do
	rc=0
	run_with_timeout 120 "$VMM" run --mem 128M --seccomp-test "$role" --console none -- true \
		</dev/null >"$SCRATCH/$role.out" 2>"$SCRATCH/$role.err" || rc=$?
	assert_eq 159 "$rc" "exit status with --seccomp-test $role"
	grep -q "seccomp: the $role thread made a forbidden system call: getppid" "$SCRATCH/$role.err" ||
		{ cat "$SCRATCH/$role.err"; fail "no message naming the $role thread"; }
	log "$role: status 159, $(grep -o 'the [a-z]* thread made.*getppid' "$SCRATCH/$role.err")"
done
log "--- --seccomp off: no filter"
"$VMM" run --mem 128M --seccomp off --console none -- true </dev/null || fail "--seccomp off run failed"
log "--- a bare --balloon means on (issue 15, CLI habits)"
"$VMM" run --mem 128M --balloon --console none -- sh -c 'test -d /sys/bus/virtio/drivers/virtio_balloon/virtio*' \
	</dev/null || fail "vmm run --balloon -- CMD: no virtio-balloon in the guest"
echo "PASS sandbox"
