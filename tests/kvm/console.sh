#!/bin/sh
# console: console output nobody reads must not stall the VMM (issue 12, item 5). The console
# firmware floods a FIFO that is held open but never read; vm.info, vm.shutdown, vm.pause and
# vm.resume over the control socket must still answer within 5 s each (a blocking write of the
# console used to hang the vCPU under the device lock, and vm.shutdown's SysRq, the loop thread
# and the control socket with it), and the VMM must exit (its flush at exit gives up). What did reach the FIFO must be whole lines in order.
# Then --console file:PATH is created mode 0600 and gets the whole output.
# firmware: console
# timeout: 180
# shellcheck source=/dev/null
. "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"
need_kvm
sock=$SCRATCH/ctl.sock
fifo=$SCRATCH/console.fifo
rm -f "$fifo" "$sock"
mkfifo "$fifo" || fail "mkfifo $fifo"
exec 3<>"$fifo" # the reader that never reads (and keeps the FIFO open)
"$VMM" run --firmware "$FW_DIR/console.elf" --mem 64 --console stdio --control "$sock" \
	--cmdline "nowait=1" </dev/null >"$fifo" 2>"$SCRATCH/err" &
pid=$!
trap 'kill -KILL $pid 2>/dev/null' EXIT
show_err() { [ ! -s "$SCRATCH/err" ] || sed 's/^/    ! /' "$SCRATCH/err"; }
wait_until 30 test -S "$sock" || { show_err; fail "control socket did not appear"; }

# The FIFO holds 64 KiB, the VMM buffers 16 KiB more and then drops what the firmware (which
# does not wait for THRE with nowait=1) writes, warning once. A VMM that blocks never gets there:
# the control commands below then find it hung.
wait_for 'guest output is dropped' "$SCRATCH/err" 90 || log "no drop warning after 90 s"

# timed WHAT CMD...: vmm ctl CMD within 5 s, output in $SCRATCH/ctl.out.
timed() {
	_what=$1
	shift
	_t0=$(now_ms)
	run_with_timeout 10 "$VMM" ctl -s "$sock" "$@" >"$SCRATCH/ctl.out" 2>&1
	_rc=$?
	_dt=$(($(now_ms) - _t0))
	log "$_what: status $_rc in $_dt ms: $(head -n1 "$SCRATCH/ctl.out")"
	[ $_rc = 0 ] || { show_err; fail "$_what: vmm ctl status $_rc (124: no answer)"; }
	assert_le "$_dt" 5000 "$_what answer time (ms)"
}
# vm.shutdown first: it sends SysRq through the UART, whose lock a vCPU blocked in write()
# would hold (a kick, as vm.pause sends, used to break that write and silence the console for
# good). The firmware ignores SysRq, so the host stops it after the timeout; pause and resume
# meanwhile.
timed vm.info info
timed vm.shutdown shutdown --timeout 8s
timed vm.pause pause
timed vm.info info
grep -q 'paused' "$SCRATCH/ctl.out" || fail "vm.info does not say paused: $(cat "$SCRATCH/ctl.out")"
timed vm.resume resume
wait_until 30 sh -c "! kill -0 $pid 2>/dev/null" || { show_err; fail "the VMM did not exit"; }
wait $pid
rc=$?
trap - EXIT
show_err
log "vmm exit status $rc"
assert_eq 0 "$rc" "vmm exit status after vm.shutdown"

# Drain the FIFO: a read-only end (opens at once: fd 3 is a writer), then fd 3 closes, so the
# reader sees EOF after the last byte.
exec 4<"$fifo"
exec 3<&-
cat <&4 >"$SCRATCH/drained"
exec 4<&-
bytes=$(wc -c <"$SCRATCH/drained")
log "the FIFO held $bytes bytes"
# A full pipe holds 16 pages, some partly used: at least 15 pages means it filled up.
assert_le 61440 "$bytes" "bytes in the console FIFO (it must have filled)"
tr -d '\r' <"$SCRATCH/drained" | grep '^console: line' | awk '
	{ lines[NR] = $0 }
	END {
		# Every complete line (not the last, maybe cut) is the next one the firmware printed.
		for (i = 1; i < NR; i++)
			if (lines[i] != sprintf("console: line %08d %s", i - 1, \
			    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-----------")) {
				printf "line %d is %s\n", i, lines[i]
				exit 1
			}
		if (NR < 2)
			exit 1
	}' || fail "the console output is not the firmware's lines in order"
grep -q 'guest output is dropped' "$SCRATCH/err" || fail "the console buffer never filled up"

# --console file:PATH: created 0600 (whatever the umask lets through), complete at exit.
con=$SCRATCH/console.txt
rm -f "$con"
(umask 022 && run_with_timeout 60 "$VMM" run --firmware "$FW_DIR/console.elf" --mem 64 \
	--console "file:$con" --cmdline "lines=300" </dev/null 2>"$SCRATCH/err2")
rc=$?
[ ! -s "$SCRATCH/err2" ] || sed 's/^/    ! /' "$SCRATCH/err2"
assert_eq 0 "$rc" "vmm exit status with --console file:"
assert_eq 600 "$(stat -c %a "$con")" "mode of the --console file"
assert_eq 302 "$(wc -l <"$con")" "lines in the --console file (banner, 300, PASS)"
assert_line "$con" "console: PASS" "console file"
log "ok"
