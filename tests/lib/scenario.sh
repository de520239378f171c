# shellcheck shell=sh
# Helpers for test scenarios (tests/e2e/*.sh, tests/testhost/*.sh). POSIX sh: scenarios run under
# busybox sh inside the nested test host and under /bin/sh directly on a host with hardware KVM.
#
#   . "${TESTLIB:-$(dirname "$0")/../lib/scenario.sh}"     (from tests/e2e/, tests/kvm/, tests/testhost/)
#
# The runners export: VMM (the vmm binary), GUEST_DIR (bzImage, vmlinux, initramfs.cpio.gz),
# QEMU (qemu-system-x86_64, empty when unavailable), TEST_MODE (direct|testhost), SCRATCH (an
# empty per-scenario directory, also the working directory), TESTLIB (this file).
# Exit status of a scenario: 0 pass, 77 skip, anything else fail.

: "${VMM:=build/vmm}"
: "${GUEST_DIR:=build/guest}"
: "${TEST_MODE:=direct}"
if [ -z "${QEMU+set}" ]; then
	QEMU=$(command -v qemu-system-x86_64 2>/dev/null || true)
fi
if [ -z "${SCRATCH:-}" ]; then
	SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/scenario.XXXXXX")
fi
export VMM GUEST_DIR TEST_MODE QEMU SCRATCH

# now_ms: milliseconds since boot (monotonic, same clock inside and outside the test host).
now_ms() {
	awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime
}

_lib_t0=$(now_ms)

# log MSG...: a line with the seconds since the scenario started.
log() {
	printf '[%6s] %s\n' "$(awk -v t0="$_lib_t0" '{ printf "%.1f", $1 - t0 / 1000 }' /proc/uptime)" "$*"
}

# fail MSG...: report and end the scenario as failed.
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}

# skip MSG...: end the scenario as skipped (exit 77).
skip() {
	printf 'SKIP: %s\n' "$*" >&2
	exit 77
}

# assert_eq EXPECTED ACTUAL [WHAT]: fail unless the two strings are equal.
assert_eq() {
	[ "$1" = "$2" ] || fail "${3:-value}: expected '$1', got '$2'"
}

# assert_le A B [WHAT]: fail unless integer A <= integer B.
assert_le() {
	[ "$1" -le "$2" ] || fail "${3:-value}: expected $1 <= $2"
}

# assert_line FILE LINE [WHAT]: fail unless FILE has a line exactly LINE (a trailing CR ignored).
assert_line() {
	tr -d '\r' <"$1" | grep -qxF -e "$2" || fail "${3:-output}: no line '$2' in $1"
}

# wait_for PATTERN FILE TIMEOUT_S: poll until FILE has a line matching the basic regex PATTERN.
# Returns 0 when found, 1 (with a log line) after TIMEOUT_S seconds.
wait_for() {
	_wf_end=$(($(now_ms) + $3 * 1000))
	while ! grep -q -e "$1" "$2" 2>/dev/null; do
		if [ "$(now_ms)" -ge "$_wf_end" ]; then
			log "wait_for: '$1' not in $2 after $3 s"
			return 1
		fi
		sleep 0.1
	done
	return 0
}

# wait_until TIMEOUT_S CMD...: poll CMD (every 0.1 s) until it succeeds; 1 after TIMEOUT_S.
wait_until() {
	_wu_t=$1
	_wu_end=$(($(now_ms) + _wu_t * 1000))
	shift
	until "$@"; do
		if [ "$(now_ms)" -ge "$_wu_end" ]; then
			log "wait_until: '$*' still false after $_wu_t s"
			return 1
		fi
		sleep 0.1
	done
}

# run_with_timeout SECS CMD...: run CMD (stdin passed through) with a deadline. Returns CMD's
# status, or 124 when it had to be killed (SIGTERM, then SIGKILL 3 s later).
run_with_timeout() {
	_rwt_t=$1
	shift
	_rwt_flag=$SCRATCH/.timeout.$$.$(now_ms)
	exec 9<&0
	"$@" <&9 9<&- &
	_rwt_pid=$!
	exec 9<&-
	(
		trap 'kill "$_rwt_s" 2>/dev/null; exit 0' TERM
		sleep "$_rwt_t" &
		_rwt_s=$!
		wait "$_rwt_s"
		: >"$_rwt_flag"
		kill -TERM "$_rwt_pid" 2>/dev/null
		sleep 3 &
		_rwt_s=$!
		wait "$_rwt_s"
		kill -KILL "$_rwt_pid" 2>/dev/null
	) >/dev/null 2>&1 </dev/null &
	_rwt_w=$!
	wait "$_rwt_pid"
	_rwt_rc=$?
	kill -TERM "$_rwt_w" 2>/dev/null
	wait "$_rwt_w" 2>/dev/null
	if [ -e "$_rwt_flag" ]; then
		rm -f "$_rwt_flag"
		log "run_with_timeout: killed after $_rwt_t s: $*"
		return 124
	fi
	return "$_rwt_rc"
}

# expect_setup_error WHAT SUBSTRING CMD...: CMD (stdin /dev/null, 60 s deadline) must exit with
# status 2 and exactly one stderr line containing SUBSTRING (what every setup error of vmm is).
expect_setup_error() {
	_what=$1 _want=$2
	shift 2
	run_with_timeout 60 "$@" </dev/null >"$SCRATCH/out" 2>"$SCRATCH/err"
	_rc=$?
	sed 's/^/stderr: /' "$SCRATCH/err"
	assert_eq 2 "$_rc" "$_what: exit status"
	assert_eq 1 "$(wc -l <"$SCRATCH/err")" "$_what: stderr lines"
	grep -qF -e "$_want" "$SCRATCH/err" || fail "$_what: stderr lacks '$_want'"
}

# rss_kib PID [FIELD]: a /proc/PID/status field in KiB (default VmRSS; e.g. RssAnon, VmSwap).
rss_kib() {
	awk -v f="${2:-VmRSS}:" '$1 == f { print $2; found = 1 } END { if (!found) print 0 }' \
		"/proc/$1/status"
}

# rss_mib PID [FIELD]: the same in MiB (rounded down).
rss_mib() {
	echo $(($(rss_kib "$@") / 1024))
}

# pss_mib PID [FIELD]: a /proc/PID/smaps_rollup field in MiB (default Pss; e.g. Rss, Anonymous).
pss_mib() {
	awk -v f="${2:-Pss}:" '$1 == f { print int($2 / 1024); found = 1 } END { if (!found) print 0 }' \
		"/proc/$1/smaps_rollup"
}

# host_cpu_ns PID: CPU time (ns) of the process's threads that are not vCPUs (vmm: vcpuN;
# QEMU: "CPU N/KVM"), from /proc/PID/task/*/schedstat.
host_cpu_ns() {
	for _t in /proc/"$1"/task/*; do
		case "$(cat "$_t/comm" 2>/dev/null)" in vcpu* | CPU*) continue ;; esac
		cut -d' ' -f1 "$_t/schedstat" 2>/dev/null
	done | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

# b64 STRING: base64 of STRING on one line (what the vmm puts in vmm.cmd=).
b64() {
	printf '%s' "$1" | base64 | tr -d '\n'
}

# need_qemu: skip the scenario unless qemu-system-x86_64 is available ($QEMU).
need_qemu() {
	[ -n "$QEMU" ] && [ -x "$QEMU" ] ||
		skip "qemu-system-x86_64 not available here (mode $TEST_MODE; the test host has it only with --with-qemu)"
}

# need_kvm: skip the scenario unless /dev/kvm is usable.
need_kvm() {
	[ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] || skip "no usable /dev/kvm"
}

# need_vmm: fail unless the vmm binary and the default guest are there.
need_vmm() {
	[ -x "$VMM" ] || fail "vmm binary $VMM missing (make all)"
	for _f in bzImage initramfs.cpio.gz; do
		[ -s "$GUEST_DIR/$_f" ] || fail "default guest $GUEST_DIR/$_f missing (make guest)"
	done
}

# --- A VMM in the background, started by bg_vmm_start: sock (control socket), con (console
# file) and vpid (the vmm's pid, empty once reaped); an EXIT trap cleans up.
# jnum NAME: the first integer value of JSON field NAME on stdin.
jnum() {
	grep -o "\"$1\":-\{0,1\}[0-9]*" | head -n1 | cut -d: -f2
}
# ctl ARGS...: vmm ctl on $sock with a 30 s deadline.
ctl() {
	run_with_timeout 30 "$VMM" ctl -s "$sock" "$@"
}
# dump: print the guest console and the vmm's stderr (once per failure).
dumped=
dump() {
	dumped=1
	log "guest console:"
	tr -d '\r' <"$con" | sed 's/^/    | /'
	[ ! -s "$SCRATCH/vmm.err" ] || sed 's/^/    ! /' "$SCRATCH/vmm.err"
}
# bg_vmm_cleanup: EXIT trap: kill a vmm still running; on failure show what the guest printed.
bg_vmm_cleanup() {
	st=$?
	[ -z "$vpid" ] || kill -KILL "$vpid" 2>/dev/null
	[ "$st" = 0 ] || [ -n "$dumped" ] || dump
}
# bg_vmm_start GUEST_CMD [VMM RUN OPTION...]: start `vmm run OPTIONS --console file:$con
# --control $sock -- sh -c GUEST_CMD` in the background (stdout/stderr in $SCRATCH/vmm.out and
# vmm.err), set the EXIT trap, and wait up to 30 s for the control socket.
bg_vmm_start() {
	_gcmd=$1
	shift
	sock=$SCRATCH/ctl.sock
	con=$SCRATCH/console.txt
	trap bg_vmm_cleanup EXIT
	"$VMM" run "$@" --console "file:$con" --control "$sock" -- sh -c "$_gcmd" \
		</dev/null >"$SCRATCH/vmm.out" 2>"$SCRATCH/vmm.err" &
	vpid=$!
	wait_until 30 test -S "$sock" || { dump; fail "control socket $sock did not appear"; }
}
# bg_vmm_shutdown [SHUTDOWN OPTION...]: `vmm ctl shutdown`, wait up to 30 s for the vmm to exit and
# reap it; its exit status is left in bg_rc.
bg_vmm_shutdown() {
	ctl shutdown "$@" || fail "vmm ctl shutdown failed"
	wait_until 30 sh -c "! kill -0 $vpid 2>/dev/null" || fail "the VMM did not stop after shutdown"
	wait "$vpid"
	bg_rc=$?
	vpid=
}
