#!/bin/sh
# Every `vmm ctl` command against a running Linux guest: info, pause, resume, balloon set / get /
# stats, memory, events and shutdown, with the replies checked against what the guest does (a
# paused guest stops printing; a resumed one goes on), plus the exit statuses of an error reply
# (1), a usage error (2) and a missing socket (2). docs/control.md is the contract.
# cost: 7
# timeout: 200
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_vmm

sock=$SCRATCH/ctl.sock
con=$SCRATCH/console.txt
ev=$SCRATCH/events.txt
vpid=''
epid=''

jstr() {
	grep -o "\"$1\":\"[^\"]*\"" | head -n1 | cut -d'"' -f4
}
cleanup() {
	st=$?
	[ -z "$epid" ] || kill -KILL "$epid" 2>/dev/null
	[ -z "$vpid" ] || kill -KILL "$vpid" 2>/dev/null
	[ "$st" = 0 ] || [ -n "$dumped" ] || dump
}
trap cleanup EXIT
# dump: scenario.sh's, plus the events this scenario collects.
dump() {
	dumped=1
	log "guest console (last 10 lines):"
	tr -d '\r' <"$con" | tail -n 10 | sed 's/^/    | /'
	log "events (last 10):"
	tail -n 10 "$ev" 2>/dev/null | sed 's/^/    > /'
	[ ! -s "$SCRATCH/vmm.err" ] || sed 's/^/    ! /' "$SCRATCH/vmm.err"
}
ticks() {
	tr -d '\r' <"$con" | grep -c '^@@tick'
}

# The guest prints a tick every 0.2 s, so pause and resume are visible from outside.
# shellcheck disable=SC2016 # expanded by the guest's shell
gcmd='i=0; while :; do echo "@@tick $i"; i=$((i + 1)); sleep 0.2; done'

log "vmm run --mem 256M --control $sock"
"$VMM" run --mem 256M --console "file:$con" --control "$sock" -- sh -c "$gcmd" \
	</dev/null >"$SCRATCH/vmm.out" 2>"$SCRATCH/vmm.err" &
vpid=$!
wait_until 30 test -S "$sock" || fail "control socket $sock did not appear"
[ "$(stat -c %a "$sock")" = 600 ] || fail "socket mode $(stat -c %a "$sock"), expected 600"

log "vmm ctl events (all events, in the background)"
"$VMM" ctl -s "$sock" events >"$ev" 2>"$SCRATCH/events.err" &
epid=$!
wait_for '^@@tick 3$' "$con" 120 || fail "the guest did not start ticking"

log "--- info"
ctl info || fail "info failed"
ctl --json info >"$SCRATCH/info.json" || fail "info --json failed"
assert_eq running "$(jstr state <"$SCRATCH/info.json")" "vm.info state"
assert_eq 1 "$(jnum vcpus <"$SCRATCH/info.json")" "vm.info vcpus"
assert_eq 256 "$(jnum memory_mib <"$SCRATCH/info.json")" "vm.info memory_mib"
[ "$(jnum uptime_ms <"$SCRATCH/info.json")" -gt 0 ] || fail "vm.info uptime_ms is 0 while running"
grep -q '"name":"virtio-balloon"' "$SCRATCH/info.json" || fail "vm.info lists no virtio-balloon"

log "--- pause"
ctl pause | tee "$SCRATCH/pause.txt" || fail "pause failed"
assert_line "$SCRATCH/pause.txt" paused "pause output"
ctl --json info >"$SCRATCH/info.json" || fail "info failed"
assert_eq paused "$(jstr state <"$SCRATCH/info.json")" "state after pause"
n0=$(ticks)
sleep 1.5 # a running guest ticks 7 times in this time
n1=$(ticks)
log "ticks while paused: $n0 -> $n1"
[ $((n1 - n0)) -le 1 ] || fail "the guest kept running while paused ($n0 -> $n1 ticks)"
ctl pause | tee "$SCRATCH/pause2.txt" || fail "second pause failed"
assert_line "$SCRATCH/pause2.txt" "paused (already)" "second pause output"

log "--- resume"
ctl resume | tee "$SCRATCH/resume.txt" || fail "resume failed"
assert_line "$SCRATCH/resume.txt" running "resume output"
more_ticks() { [ "$(ticks)" -ge $((n1 + 3)) ]; }
wait_until 20 more_ticks || fail "the guest did not run again after resume"
ctl --json resume >"$SCRATCH/resume2.json" || fail "second resume failed"
grep -q '"changed":false' "$SCRATCH/resume2.json" || fail "second resume: changed is not false"

log "--- balloon set / get"
ctl balloon set 32 || fail "balloon set 32 failed"
ctl --json balloon get >"$SCRATCH/get.json" || fail "balloon get failed"
assert_eq 32 "$(jnum target_mib <"$SCRATCH/get.json")" "target_mib after 'balloon set 32'"
ctl balloon set --guest 200M --wait --timeout 60s || fail "balloon set --guest 200M --wait failed"
ctl balloon get | tee "$SCRATCH/get.txt" || fail "balloon get failed"
ctl --json balloon get >"$SCRATCH/get.json" || fail "balloon get --json failed"
assert_eq 56 "$(jnum actual_mib <"$SCRATCH/get.json")" "actual_mib after --guest 200M --wait"
assert_eq 200 "$(jnum guest_mib <"$SCRATCH/get.json")" "guest_mib after --guest 200M --wait"

log "--- balloon stats"
ctl balloon stats || fail "balloon stats failed"
ctl --json balloon stats >"$SCRATCH/stats.json" || fail "balloon stats --json failed"
[ "$(jnum seq <"$SCRATCH/stats.json")" -ge 1 ] || fail "balloon.stats: no stats set received"
[ "$(jnum total_bytes <"$SCRATCH/stats.json")" -gt 0 ] || fail "balloon.stats: no total_bytes"

log "--- memory"
ctl memory || fail "memory failed"
ctl --json memory >"$SCRATCH/mem.json" || fail "memory --json failed"
[ "$(jnum ballooned_bytes <"$SCRATCH/mem.json")" -ge $((56 << 20)) ] ||
	fail "memory.stats ballooned_bytes below the 56 MiB balloon"
[ "$(jnum resident_bytes <"$SCRATCH/mem.json")" -gt 0 ] || fail "memory.stats resident_bytes is 0"

ctl balloon set 0 --wait --timeout 60s || fail "balloon set 0 --wait failed"

log "--- error replies and usage errors"
ctl balloon set 300 2>"$SCRATCH/err.txt"
rc=$?
cat "$SCRATCH/err.txt"
assert_eq 1 "$rc" "exit status of 'balloon set 300' on a 256 MiB guest"
grep -q invalid-argument "$SCRATCH/err.txt" || fail "'balloon set 300': no invalid-argument error"
ctl frobnicate 2>/dev/null
assert_eq 2 "$?" "exit status of an unknown command"
run_with_timeout 30 "$VMM" ctl -s "$SCRATCH/nosuch.sock" info 2>/dev/null
assert_eq 2 "$?" "exit status without a VMM at the socket"

log "--- events seen so far: $(wc -l <"$ev") ($(grep -c balloon.change "$ev") balloon.change)"
grep -v balloon.change "$ev"
grep -q 'vm.state state="paused"' "$ev" || fail "no vm.state paused event"
grep -q 'vm.state state="running"' "$ev" || fail "no vm.state running event"
grep -q 'balloon.change .*actual_mib=56' "$ev" || fail "no balloon.change event with actual_mib=56"
grep -q 'balloon.change .*actual_mib=0' "$ev" || fail "no balloon.change event back to 0"

log "--- shutdown"
ctl shutdown --timeout 10s || fail "shutdown failed"
wait_until 30 sh -c "! kill -0 $vpid 2>/dev/null" || fail "the VMM did not stop after shutdown"
wait "$vpid"
vrc=$?
vpid=
wait_until 10 sh -c "! kill -0 $epid 2>/dev/null" || fail "vmm ctl events did not end with the VM"
wait "$epid"
erc=$?
epid=
tail -n 3 "$ev"
assert_eq 0 "$erc" "exit status of 'vmm ctl events' after guest.exit"
grep -q "guest.exit status=$vrc\$" "$ev" || fail "no guest.exit event with the VMM's exit status $vrc"
[ ! -e "$sock" ] || fail "the socket file is still there after the VMM exited"
log "ok: every vmm ctl command worked against a running guest (VMM exit status $vrc)"
