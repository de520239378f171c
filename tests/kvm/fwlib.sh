# shellcheck shell=sh
# Helpers for firmware scenarios (tests/kvm/*.sh), prepended to each scenario by tests/kvm/run.sh
# after tests/lib/scenario.sh. POSIX sh (busybox inside the nested test host).
#
# FW_DIR holds the firmware images (NAME.elf); run.sh sets it (build/firmware directly, or the
# scenario's scratch directory where the embedded images were unpacked in the test host).

: "${FW_DIR:=build/firmware}"

# In the nested test host, KVM cannot enter any guest when that kernel failed to calibrate its
# TSC (KVM_RUN spins on the clock update forever): say so instead of timing out.
if [ "$TEST_MODE" = testhost ] && dmesg 2>/dev/null | grep -q 'could not calculate TSC khz'; then
	fail "the test host kernel could not calibrate its TSC (dmesg: 'Marking TSC unstable due to could not calculate TSC khz'), so its KVM cannot run guests: boot it with tsc_early_khz=<host kHz> (tests/kvm/run.sh passes it when tests/testhost/run.sh has --append) or give it ACPI (HPET/PM timer)"
fi

# fw_run NAME TIMEOUT_S [vmm run options...]: run firmware NAME under the vmm with a deadline;
# console output in $SCRATCH/NAME.out (also copied to the scenario log), vmm messages in
# $SCRATCH/NAME.err. Returns the vmm's exit status (the firmware's exit code), 124 on timeout.
fw_run() {
	_fw=$1
	_t=$2
	shift 2
	[ -r "$FW_DIR/$_fw.elf" ] || fail "firmware $FW_DIR/$_fw.elf missing (make firmware)"
	log "vmm run --firmware $_fw.elf $*"
	run_with_timeout "$_t" "$VMM" run --firmware "$FW_DIR/$_fw.elf" --console stdio "$@" \
		</dev/null >"$SCRATCH/$_fw.out" 2>"$SCRATCH/$_fw.err"
	_rc=$?
	sed 's/^/    | /' "$SCRATCH/$_fw.out"
	[ ! -s "$SCRATCH/$_fw.err" ] || sed 's/^/    ! /' "$SCRATCH/$_fw.err"
	log "$_fw: vmm exit status $_rc"
	return $_rc
}

# fw_expect NAME TIMEOUT_S [vmm run options...]: fw_run, then require exit status 0 and the
# line "NAME: PASS" on the console.
fw_expect() {
	_name=$1
	fw_run "$@"
	_rc=$?
	[ $_rc = 0 ] || fail "$_name: vmm exit status $_rc, expected 0"
	assert_line "$SCRATCH/$_name.out" "$_name: PASS" "$_name console"
}

# fw_args_supported NAME ARGS: the vmm passed --cmdline ARGS to firmware NAME (it echoes them).
fw_args_supported() {
	grep -qF "args '$2'" "$SCRATCH/$1.out" 2>/dev/null
}

# fw_field FILE PATTERN: the first line of FILE matching PATTERN (basic regex), for figures.
fw_field() {
	grep -m1 -e "$2" "$1" | tr -d '\r'
}
