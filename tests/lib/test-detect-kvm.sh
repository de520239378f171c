#!/usr/bin/env bash
# tests/lib/test-detect-kvm.sh: tests/lib/detect-kvm.sh on faked machine states (no KVM needed):
# each of the three states of ../shared/environment.md ("Machines of this kind differ") plus
# hardware KVM, a probe that hangs and the forcing variables. Ends with "N passed, N failed".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
detect=$here/detect-kvm.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-detect.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/pvm"
: >"$tmp/kvm"
passed=0 failed=0

# check NAME KIND EXPECTED-MODE WHY-PATTERN [VAR=VALUE...]
check() {
	local name=$1 kind=$2 want=$3 why=$4 got err
	shift 4
	got=$(env -u VMM_TEST_MODE -u KVM_TESTS_MODE "$@" "$detect" "$kind" 2>"$tmp/err")
	err=$(cat "$tmp/err")
	if [ "$got" = "$want" ] && grep -qE -- "$why" <<<"$err"; then
		passed=$((passed + 1))
		echo "ok   $name: $got ($err)"
	else
		failed=$((failed + 1))
		echo "FAIL $name: got '$got', want '$want'; stderr '$err' should match '$why'"
	fi
}

absent=(KVM_DEV="$tmp/none" KVM_PVM_SYSFS="$tmp/pvm")
pvm=(KVM_DEV="$tmp/kvm" KVM_PVM_SYSFS="$tmp/pvm")
hw=(KVM_DEV="$tmp/kvm" KVM_PVM_SYSFS="$tmp/no-pvm")
# What vmm prints for the probe on a PVM that ignores IOPL (vmm/vcpu.c, diagnose_shutdown).
iopl='echo "vmm: error: guest triple fault (KVM_EXIT_SHUTDOWN)" >&2; echo "vmm: error: this /dev/kvm (PVM) ignores IOPL: port I/O from CPL3 firmware faults" >&2; exit 1'

# State 1: /dev/kvm absent (kvm_pvm loaded but refusing to bind).
check "absent, firmware" firmware testhost "there is no" "${absent[@]}" KVM_PROBE="exit 42"
check "absent, linux" linux testhost "there is no" "${absent[@]}"
# State 2: PVM that honours IOPL=3: firmware runs directly, Linux does not.
check "pvm+iopl, firmware" firmware direct "probe firmware ran.*PVM runs it natively" \
	"${pvm[@]}" KVM_PROBE="exit 42"
check "pvm+iopl, linux" linux testhost "PVM" "${pvm[@]}"
# State 3: PVM that ignores IOPL: the probe triple-faults, both kinds use the test host.
check "pvm-no-iopl, firmware" firmware testhost "ignores IOPL" "${pvm[@]}" KVM_PROBE="$iopl"
check "pvm-no-iopl, linux" linux testhost "PVM" "${pvm[@]}"
# Hardware KVM: everything direct.
check "hardware, firmware" firmware direct "probe firmware ran" "${hw[@]}" KVM_PROBE="exit 42"
check "hardware, linux" linux direct "hardware KVM" "${hw[@]}"
# A probe that fails some other way, or never answers, is not trusted either.
check "probe fails" firmware testhost "probe firmware failed.*exit 3: boom" "${pvm[@]}" \
	KVM_PROBE="echo boom >&2; exit 3"
check "probe hangs" firmware testhost "probe firmware failed.*exit 124" "${pvm[@]}" \
	KVM_PROBE="exit 124"
# Forcing wins over detection.
check "forced firmware" firmware direct "forced by KVM_TESTS_MODE" "${absent[@]}" \
	KVM_TESTS_MODE=direct
check "forced linux" linux direct "forced by VMM_TEST_MODE" "${pvm[@]}" VMM_TEST_MODE=direct

echo "$passed passed, $failed failed"
[ $failed = 0 ]
