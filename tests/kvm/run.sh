#!/usr/bin/env bash
# tests/kvm/run.sh [SCENARIO.sh...]: the firmware tier: freestanding guests (firmware/, built into
# build/firmware/NAME.elf) run by build/vmm, asserting on their console output and exit status.
#
# Runs every tests/kvm/*.sh scenario (except run.sh and fwlib.sh), or the ones given. A scenario
# is a POSIX sh script using tests/lib/scenario.sh and tests/kvm/fwlib.sh (prepended here); it
# declares the images it needs ("# firmware: NAME...") and may declare "# timeout: S" (default 30)
# and host-side test tools ("# tools: NAME...", build/tools/NAME from tests/tools/NAME.c, found
# as $TOOLS_DIR/NAME).
#
# Where (tests/lib/detect-kvm.sh firmware):
#   - this host's /dev/kvm runs the probe firmware (hardware KVM, or a PVM that honours IOPL=3):
#     here, one scenario after another;
#   - else the nested test host (tests/testhost/run.sh, QEMU TCG with emulated SVM), all
#     scenarios in one boot, the images embedded in the scenario scripts;
#   - else skip (exit 77) saying why.
# KVM_TESTS_MODE=direct|testhost forces a mode; KVM_TESTS_VMM tests another vmm binary;
# TESTHOST_RUN replaces tests/testhost/run.sh.
# Ends with "N passed, N failed[, N skipped]".
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
B=${B:-$root/build}
FW=$B/firmware
gen=$B/kvm/scenarios

scenarios=()
if [ $# -gt 0 ]; then
	scenarios=("$@")
else
	for s in "$here"/*.sh; do
		case "$(basename "$s")" in run.sh | fwlib.sh) ;; *) scenarios+=("$s") ;; esac
	done
fi
[ ${#scenarios[@]} -gt 0 ] || { echo "kvm: no scenarios"; echo "0 passed, 0 failed"; exit 77; }

skip() {
	echo "kvm: SKIP: $*"
	echo "0 passed, 0 failed, ${#scenarios[@]} skipped"
	exit 77
}

# --- where to run ----------------------------------------------------------------------------------
# tests/lib/detect-kvm.sh proves the direct path with a probe firmware (KVM_TESTS_MODE forces).
vmm=${KVM_TESTS_VMM:-$B/vmm}
mkdir -p "$B"
mode=$(B="$B" KVM_TESTS_VMM="$vmm" "$root/tests/lib/detect-kvm.sh" firmware 2>"$B/kvm-detect.txt") ||
	{ cat "$B/kvm-detect.txt"; echo "0 passed, 1 failed"; exit 1; }
why=$(sed 's/^detect-kvm: firmware guests: [a-z]* (//; s/)$//' "$B/kvm-detect.txt")
if [ "$mode" = testhost ]; then
	if ! command -v qemu-system-x86_64 >/dev/null; then
		skip "$why, and there is no qemu-system-x86_64 for the nested test host (make deps)"
	elif [ ! -x "$root/tests/testhost/run.sh" ]; then
		skip "$why, and there is no tests/testhost/run.sh"
	elif [ ! -r /usr/src/linux-source-6.1.tar.xz ] &&
		! ls -d "${VMM_CACHE:-$HOME/.cache/vmm}"/kernels/host-*/bzImage >/dev/null 2>&1; then
		skip "$why, and the nested test host kernel can be neither built (linux-source-6.1 missing: make deps) nor found in the cache"
	fi
	why="$why: using the nested test host"
fi
case $mode in direct | testhost) ;; *) echo "kvm: KVM_TESTS_MODE must be direct or testhost" >&2; exit 2 ;; esac
echo "kvm: ${#scenarios[@]} scenario(s), mode $mode: $why"

# --- images and scenario scripts -------------------------------------------------------------------
[ -x "$vmm" ] || { echo "kvm: $vmm missing (make all)"; echo "0 passed, 1 failed"; exit 1; }
make -s -C "$root" -f firmware/firmware.mk B="$B" firmware >&2 ||
	{ echo "kvm: building the firmware failed"; echo "0 passed, 1 failed"; exit 1; }
make -s -C "$root" B="$B" tools >&2 ||
	{ echo "kvm: building the test tools failed"; echo "0 passed, 1 failed"; exit 1; }

rm -rf "$gen" && mkdir -p "$gen"
generated=()
for s in "${scenarios[@]}"; do
	name=$(basename "$s" .sh)
	out=$gen/$name.sh
	{
		echo "#!/bin/sh"
		# Keep the scenario's own header lines (timeout, needs) where the runners look.
		grep -E '^# *(timeout|needs|firmware|tools):' "$s" || true
		echo ". \"\${TESTLIB:-$root/tests/lib/scenario.sh}\""
		if [ "$mode" = testhost ]; then
			# shellcheck disable=SC2016 # expanded inside the test host
			printf '%s\n' 'FW_DIR=$SCRATCH/fw' 'mkdir -p "$FW_DIR"'
			# shellcheck disable=SC2013 # image names are words
			for fw in $(sed -n 's/^# *firmware: *//p' "$s"); do
				[ -r "$FW/$fw.elf" ] || {
					echo "kvm: $s needs $FW/$fw.elf, which is not built" >&2
					echo "0 passed, 1 failed" >&2
					exit 1
				}
				strip -o "$gen/$fw.stripped" "$FW/$fw.elf"
				echo "base64 -d <<'@@FW@@' | gunzip >\"\$FW_DIR/$fw.elf\""
				gzip -9c "$gen/$fw.stripped" | base64
				echo "@@FW@@"
			done
			# shellcheck disable=SC2016 # expanded inside the test host
			printf '%s\n' 'TOOLS_DIR=$SCRATCH/tools' 'mkdir -p "$TOOLS_DIR"'
			# shellcheck disable=SC2013 # tool names are words
			for t in $(sed -n 's/^# *tools: *//p' "$s"); do
				[ -x "$B/tools/$t" ] || {
					echo "kvm: $s needs $B/tools/$t, which is not built (make tools)" >&2
					echo "0 passed, 1 failed" >&2
					exit 1
				}
				echo "base64 -d <<'@@TOOL@@' | gunzip >\"\$TOOLS_DIR/$t\" && chmod +x \"\$TOOLS_DIR/$t\""
				gzip -9c "$B/tools/$t" | base64
				echo "@@TOOL@@"
			done
		else
			echo "FW_DIR=$FW"
			echo "TOOLS_DIR=$B/tools"
		fi
		cat "$here/fwlib.sh"
		# The scenario itself, without its shebang and its own sourcing of scenario.sh.
		grep -vE '^#!|^\. "\$\{TESTLIB' "$s"
	} >"$out"
	generated+=("$out")
done

if [ "$mode" = testhost ]; then
	# A build directory of our own (the vmm binary only): the test host's work files do not
	# collide with an e2e run, and the initramfs stays small (no guest kernel).
	thb=$B/kvm/testhost
	mkdir -p "$thb"
	ln -sf "$(readlink -f "$vmm")" "$thb/vmm"
	runner=${TESTHOST_RUN:-$root/tests/testhost/run.sh}
	opts=(--timeout 30)
	# (the runner itself boots the test host with tsc_early_khz: see tests/testhost/run.sh)
	B=$thb exec "$runner" "${opts[@]}" "${generated[@]}"
fi

# --- direct mode: one scenario at a time, each under its own deadline ---------------------------
export VMM=$vmm GUEST_DIR=$B/guest TESTLIB=$root/tests/lib/scenario.sh TEST_MODE=direct
export QEMU=${QEMU-$(command -v qemu-system-x86_64 || true)}
# shellcheck source=../lib/run-direct.sh
. "$root/tests/lib/run-direct.sh"
run_direct "$B/kvm/logs" kvm 30 "${generated[@]}" # all skipped (77): the tier is a skip
